#ifndef CTTUNE_CKMOD_SHIM_H
#define CTTUNE_CKMOD_SHIM_H

#include <libkmod.h>
#include <stdarg.h>

/* libkmod's log function: drops its lines. Its default prints
 * "libkmod: ERROR ..." on stderr ahead of cttune's own one-line error, which
 * carries the same errno with a fix. A C function because the callback takes
 * a va_list. */
static inline void cttune_kmod_discard_log(void *data, int priority, const char *file, int line, const char *fn,
                                           const char *format, va_list args) {
    (void)data, (void)priority, (void)file, (void)line, (void)fn, (void)format, (void)args;
}

/* Installs the function above; set in C since Swift imports the va_list
 * parameter of the callback type differently from the definition. */
static inline void cttune_kmod_silence(struct kmod_ctx *ctx) { kmod_set_log_fn(ctx, cttune_kmod_discard_log, 0); }

#endif
