/* SPDX-License-Identifier: Apache-2.0 */
/* The one leveled logger. Library code never prints: it formats a line and
 * hands it to the sink the application gave (edist_node_config.log,
 * edist_runtime_config.log). The node builds one edi_log from its config
 * and gives a copy to each layer (loop, net kernel, runtime); a layer
 * writes with edi_logf(&its_log, level, ...), usually through a short
 * local name (nk_log, edi_rt_log, edi_loop_log). */
#ifndef EDI_BASE_LOG_H
#define EDI_BASE_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edist/log.h"

/* Longest line handed to a sink, with its terminating NUL; longer lines
 * are cut. */
#define EDI_LOG_LINE_BYTES 1024u

/* Where lines go. All zero: nowhere (and a zero level keeps only
 * errors), so a layer built without a node is silent. */
typedef struct edi_log {
    edist_log_fn sink;     /* NULL: lines are dropped unformatted */
    void *user;            /* the sink's first argument */
    edist_log_level level; /* lines above it are dropped unformatted */
} edi_log;

/* Whether a line at level would reach the sink: for a caller that has
 * work to do before it can log (a rate limit to charge, a name to
 * print). */
static inline bool edi_log_on(const edi_log *log, edist_log_level level)
{
    return log->sink != NULL && level <= log->level;
}

/* Formats one line and hands it to the sink, on the calling thread;
 * nothing when edi_log_on() is false. Any thread (the sink must cope). */
void edi_logf(const edi_log *log, edist_log_level level, const char *fmt,
              ...) __attribute__((format(printf, 3, 4)));
void edi_vlogf(const edi_log *log, edist_log_level level, const char *fmt,
               va_list ap) __attribute__((format(printf, 3, 0)));

/* ---- rate-limited lines ----------------------------------------------------
 * For lines a peer can trigger: a burst of `burst` lines, then one per
 * interval_ms (next_ms is the virtual time of the next allowed line). The
 * owner counts what it leaves out in `suppressed` and says so in a later
 * line. */
typedef struct edi_ratelimit {
    uint64_t next_ms;
    uint64_t suppressed;
} edi_ratelimit;

/* 1: log this line (a slot is taken); 0: leave it out. */
int edi_ratelimit_take(edi_ratelimit *r, uint64_t now_ms, unsigned burst,
                       uint64_t interval_ms);

#endif
