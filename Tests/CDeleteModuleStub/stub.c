#include "CDeleteModuleStub.h"

#include <errno.h>
#include <string.h>

enum { max_calls = 64, max_name = 64 };

static char recorded_names[max_calls][max_name];
static int recorded_flags[max_calls];
static int recorded_count;
static char failing_module[max_name];
static int failing_errno;

void cttune_stub_reset(void) {
    recorded_count = 0;
    failing_module[0] = '\0';
    failing_errno = 0;
}

void cttune_stub_fail(const char *module, int error_number) {
    strncpy(failing_module, module, max_name - 1);
    failing_module[max_name - 1] = '\0';
    failing_errno = error_number;
}

int cttune_stub_call_count(void) { return recorded_count; }

const char *cttune_stub_call_name(int index) {
    return index >= 0 && index < recorded_count && index < max_calls ? recorded_names[index] : NULL;
}

int cttune_stub_call_flags(int index) {
    return index >= 0 && index < recorded_count && index < max_calls ? recorded_flags[index] : -1;
}

/* Same signature as glibc's wrapper; libkmod's kmod_module_remove_module calls it. */
int delete_module(const char *name, unsigned int flags) {
    if (recorded_count < max_calls) {
        strncpy(recorded_names[recorded_count], name, max_name - 1);
        recorded_names[recorded_count][max_name - 1] = '\0';
        recorded_flags[recorded_count] = (int)flags;
    }
    recorded_count++;
    if (failing_errno != 0 && strcmp(name, failing_module) == 0) {
        errno = failing_errno;
        return -1;
    }
    return 0;
}
