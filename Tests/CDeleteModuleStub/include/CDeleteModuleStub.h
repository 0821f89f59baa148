#ifndef CTTUNE_DELETE_MODULE_STUB_H
#define CTTUNE_DELETE_MODULE_STUB_H

/* Test-only stand-in for glibc's delete_module(2) wrapper. libkmod calls the
 * dynamic symbol delete_module, so defining it in the test binary interposes
 * it: no module is ever really unloaded, every call is recorded, and a chosen
 * module can be made to fail with a chosen errno. Not thread-safe: use it from
 * one serialized suite. */

/* Forgets recorded calls and failures. */
void cttune_stub_reset(void);
/* Makes delete_module(module) fail with error_number (EBUSY, ENOSYS, EPERM…). */
void cttune_stub_fail(const char *module, int error_number);
/* Number of delete_module calls since the last reset (at most 64 are kept). */
int cttune_stub_call_count(void);
/* The module name of call `index`, or NULL. */
const char *cttune_stub_call_name(int index);
/* The flags of call `index`, or -1. */
int cttune_stub_call_flags(int index);

#endif
