#ifndef CTTUNE_CROOTPATH_H
#define CTTUNE_CROOTPATH_H

#include <sys/types.h>

/*
 * Opens a path as if the directory `rootfd` were "/": an absolute symbolic
 * link, and ".." at the top, stay inside it (openat2(2) with RESOLVE_IN_ROOT,
 * Linux 5.6). This is how `cttune --root DIR` reads and writes an image tree
 * without ever reaching the running system through a link such as
 * DIR/proc -> /proc.
 *
 * Why C: openat2 has no glibc wrapper, and Swift cannot call the variadic
 * syscall(2). Where the kernel lacks openat2 (ENOSYS) the same resolution is
 * done component by component with openat/readlinkat, each step checked.
 *
 * Returns a descriptor, or -1 with errno set (ELOOP for a link loop or a
 * magic link, ENOENT when a component is missing inside the root).
 */
/* O_PATH (open for fstat and as a directory to resolve from, not for I/O):
 * Swift's Glibc module is built without _GNU_SOURCE and lacks it. */
static const int CRootPath_pathOnly = 010000000;

int CRootPath_open(int rootfd, const char *path, int flags, mode_t mode);

/*
 * The component-by-component resolution alone (what CRootPath_open falls
 * back to without openat2), so tests exercise it on any kernel.
 */
int CRootPath_openWalking(int rootfd, const char *path, int flags, mode_t mode);

#endif
