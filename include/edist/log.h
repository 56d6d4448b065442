/* SPDX-License-Identifier: Apache-2.0 */
/* Log levels and the log callback an application gives a node or a runtime
 * (edist_node_config.log, edist_runtime_config.log). edist never prints: a
 * line reaches the application only through this callback. */
#ifndef EDIST_LOG_H
#define EDIST_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum edist_log_level {
    EDIST_LOG_ERROR = 0,
    EDIST_LOG_WARNING = 1,
    EDIST_LOG_INFO = 2,  /* node up/down, refused handshakes, ready */
    EDIST_LOG_DEBUG = 3, /* dropped messages, every tick decision */
} edist_log_level;

/* One line, no newline. Called on the shard thread (and, for start-up
 * lines, on the thread calling edist_node_start). */
typedef void (*edist_log_fn)(void *user, edist_log_level level,
                             const char *line);

#ifdef __cplusplus
}
#endif
#endif
