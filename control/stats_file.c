/* SPDX-License-Identifier: Apache-2.0 */
#include "control/stats_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edist/error.h"

int edi_stats_dir(const char *dir, char *out, size_t cap)
{
    int n;
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (dir && dir[0])
        n = snprintf(out, cap, "%s", dir);
    else if (xdg && xdg[0] == '/')
        n = snprintf(out, cap, "%s/edist", xdg);
    else
        n = snprintf(out, cap, "/dev/shm/edist-%ld", (long)getuid());
    if (n < 0 || (size_t)n >= cap)
        return edist_set_error(EDIST_ENOSPC, "stats directory name too long");
    return 0;
}

int edi_stats_path(const char *dir, const char *node, char *out, size_t cap)
{
    char d[512];
    int rc = edi_stats_dir(dir, d, sizeof d);
    if (rc)
        return rc;
    int n = snprintf(out, cap, "%s/%s.stats", d, node);
    if (n < 0 || (size_t)n >= cap)
        return edist_set_error(EDIST_ENOSPC, "stats file name too long");
    return 0;
}

int edi_stats_dir_make(const char *dir)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return edist_set_error(EDIST_EIO, "cannot make %s: %s", dir, strerror(errno));
    struct stat st; /* lstat: a link someone else planted is not ours */
    if (lstat(dir, &st) != 0)
        return edist_set_error(EDIST_EIO, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077))
        return edist_set_error(EDIST_EAUTH,
                               "%s is not a directory of this user alone (mode 0700)", dir);
    return 0;
}

int edi_stats_write(const char *path, const void *term, size_t len)
{
    char tmp[1100];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return edist_set_error(EDIST_ENOSPC, "stats file name too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return edist_set_error(EDIST_EIO, "%s: %s", tmp, strerror(errno));
    const uint8_t *p = term;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return edist_set_error(EDIST_EIO, "%s: %s", tmp, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return edist_set_error(EDIST_EIO, "%s: %s", path, strerror(e));
    }
    return 0;
}
