/* SPDX-License-Identifier: Apache-2.0 */
#include "base/log.h"

#include <stdio.h>

void edi_vlogf(const edi_log *log, edist_log_level level, const char *fmt,
               va_list ap)
{
    if (!edi_log_on(log, level))
        return;
    char line[EDI_LOG_LINE_BYTES];
    vsnprintf(line, sizeof line, fmt, ap);
    log->sink(log->user, level, line);
}

void edi_logf(const edi_log *log, edist_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    edi_vlogf(log, level, fmt, ap);
    va_end(ap);
}

int edi_ratelimit_take(edi_ratelimit *r, uint64_t now_ms, unsigned burst,
                       uint64_t interval_ms)
{
    uint64_t t = r->next_ms > now_ms ? r->next_ms : now_ms;
    if (burst > 0 && t > now_ms + (uint64_t)(burst - 1) * interval_ms)
        return 0;
    r->next_ms = t + interval_ms;
    return 1;
}
