/* SPDX-License-Identifier: Apache-2.0 */
/* The edist program's one log format, for the node, the port mapper and
 * the clients alike, on stderr:
 *   2026-12-06 23:51:30.075 warning edist node: the message
 * (local time, level, component, message). A line repeated at once is
 * written once, then "(the line above repeated N more times)" when
 * another line comes, when it has repeated for over a second, or at the
 * program's exit. */
#ifndef EDIST_CLI_LOG_H
#define EDIST_CLI_LOG_H

#include "edist/log.h"

/* An edist_log_fn: user is the component ("edist node"). Any thread. */
void cli_log(void *user, edist_log_level level, const char *line);
/* The same, but only warnings and errors: a client's log. */
void cli_log_quiet(void *user, edist_log_level level, const char *line);

#endif
