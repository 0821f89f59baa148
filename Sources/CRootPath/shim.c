#define _GNU_SOURCE
#include "CRootPath.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

_Static_assert(CRootPath_pathOnly == O_PATH, "O_PATH differs from the value exported to Swift");

/* The kernel's own limit on links followed in one lookup (MAXSYMLINKS). */
enum { CRootPath_maxLinks = 40 };

int CRootPath_open(int rootfd, const char *path, int flags, mode_t mode) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(unsigned int)flags;
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    for (;;) {
        long fd = syscall(SYS_openat2, rootfd, path, &how, sizeof how);
        if (fd >= 0) return (int)fd;
        if (errno == EINTR) continue;
        /* EAGAIN: a concurrent rename raced the lookup (RESOLVE_IN_ROOT
         * refuses to guess); the walk below gives the same answer. */
        if (errno == ENOSYS || errno == EAGAIN) return CRootPath_openWalking(rootfd, path, flags, mode);
        return -1;
    }
}

/* Appends `name` (length n) to the resolved path `out` (length *used). */
static int CRootPath_push(char *out, size_t *used, const char *name, size_t n) {
    if (*used + 1 + n + 1 > PATH_MAX) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (*used > 0) out[(*used)++] = '/';
    memcpy(out + *used, name, n);
    *used += n;
    out[*used] = '\0';
    return 0;
}

static void CRootPath_pop(char *out, size_t *used) {
    char *slash = memrchr(out, '/', *used);
    *used = slash ? (size_t)(slash - out) : 0;
    out[*used] = '\0';
}

int CRootPath_openWalking(int rootfd, const char *path, int flags, mode_t mode) {
    /* `pending` holds what is left to resolve; `resolved` the components
     * found so far, relative to the root and free of links, so openat on it
     * from rootfd follows no link. */
    char pending[PATH_MAX], resolved[PATH_MAX] = "";
    size_t used = 0;
    int links = 0;
    if (strlen(path) >= sizeof pending) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(pending, path);
    char *cursor = pending;
    while (*cursor) {
        while (*cursor == '/') cursor++;
        if (!*cursor) break;
        char *end = strchrnul(cursor, '/');
        size_t n = (size_t)(end - cursor);
        int last = 1;
        for (char *rest = end; *rest; rest++)
            if (*rest != '/') last = 0;
        if (n == 1 && cursor[0] == '.') {
            cursor = end;
            continue;
        }
        if (n == 2 && cursor[0] == '.' && cursor[1] == '.') {
            CRootPath_pop(resolved, &used);  /* ".." at the top stays at the top */
            cursor = end;
            continue;
        }
        size_t before = used;
        if (CRootPath_push(resolved, &used, cursor, n) != 0) return -1;
        struct stat info;
        if (fstatat(rootfd, resolved, &info, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT && last) break;  /* may be created below */
            return -1;
        }
        if (!S_ISLNK(info.st_mode) || (last && (flags & O_NOFOLLOW))) {
            cursor = end;
            continue;
        }
        if (++links > CRootPath_maxLinks) {
            errno = ELOOP;
            return -1;
        }
        char target[PATH_MAX];
        ssize_t length = readlinkat(rootfd, resolved, target, sizeof target - 1);
        if (length < 0) return -1;
        target[length] = '\0';
        /* The link's target, then what followed the link. */
        char next[PATH_MAX];
        size_t restLength = strlen(end);
        if ((size_t)length + restLength + 1 > sizeof next) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(next, target, (size_t)length);
        memcpy(next + length, end, restLength + 1);
        strcpy(pending, next);
        cursor = pending;
        if (target[0] == '/') {
            used = 0;  /* absolute: from the root */
            resolved[0] = '\0';
        } else {
            used = before;  /* relative: from the link's directory */
            resolved[used] = '\0';
        }
    }
    /* Every component but possibly a missing last one is a checked
     * non-link, so O_NOFOLLOW only refuses a link that appeared since. */
    const char *final = used ? resolved : ".";
    int fd;
    do {
        fd = openat(rootfd, final, flags | O_NOFOLLOW, mode);
    } while (fd < 0 && errno == EINTR);
    return fd;
}
