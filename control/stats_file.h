/* SPDX-License-Identifier: Apache-2.0 */
/* Where a node publishes its counters for `edist stat --local`, so an
 * operator reads them without joining the cluster and without the
 * cookie: $XDG_RUNTIME_DIR/edist/NAME@HOST.stats, or
 * /dev/shm/edist-UID/NAME@HOST.stats without it; the directory is the
 * user's alone (0700), the file 0600. The file holds one encoded term,
 * {edist_stats, UnixTimeMs, Stats}, Stats as edist:stats/0 returns it,
 * replaced whole (written aside, then renamed) at each publish. */
#ifndef EDI_STATS_FILE_H
#define EDI_STATS_FILE_H

#include <stddef.h>

/* The directory (dir NULL: the default above) into out. 0, or
 * EDIST_ENOSPC. */
int edi_stats_dir(const char *dir, char *out, size_t cap);
/* The file of node "name@host" in that directory. 0 or EDIST_ENOSPC. */
int edi_stats_path(const char *dir, const char *node, char *out, size_t cap);
/* Create the directory if needed (0700) and check it is ours, not open
 * to others and not a symbolic link. 0, EDIST_EIO or EDIST_EAUTH. */
int edi_stats_dir_make(const char *dir);
/* Replace the file with term (len bytes): written to PATH.tmp, then
 * renamed over PATH. 0 or EDIST_EIO. */
int edi_stats_write(const char *path, const void *term, size_t len);

#endif
