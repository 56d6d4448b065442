/* SPDX-License-Identifier: Apache-2.0 */
/* The result line of `edist bench pair`'s driver: one FIELD=VALUE per
 * field of bench_pair_result, written by the driver and read back by the
 * orchestrator from one list of fields (bench_pair.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_pair.h"

size_t bench_pair_result_format(const bench_pair_result *r, char *line,
                                size_t cap)
{
    size_t need = 0;
    int n = snprintf(line, cap, "%s", BENCH_PAIR_RESULT_PREFIX);
    need += n > 0 ? (size_t)n : 0;
    /* Reals as %.17g: they read back to the same double. */
#define BENCH_PAIR_U(name)                                                     \
    n = snprintf(need < cap ? line + need : NULL, need < cap ? cap - need : 0, \
                 " " #name "=%" PRIu64, r->name);                              \
    need += n > 0 ? (size_t)n : 0;
#define BENCH_PAIR_F(name)                                                     \
    n = snprintf(need < cap ? line + need : NULL, need < cap ? cap - need : 0, \
                 " " #name "=%.17g", r->name);                                 \
    need += n > 0 ? (size_t)n : 0;
    BENCH_PAIR_RESULT_FIELDS(BENCH_PAIR_U, BENCH_PAIR_F)
#undef BENCH_PAIR_U
#undef BENCH_PAIR_F
    return need;
}

/* The text after " name=" in line, or NULL. */
static const char *field(const char *line, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = line; (p = strstr(p, name)) != NULL; p += len)
        if (p > line && p[-1] == ' ' && p[len] == '=')
            return p + len + 1;
    return NULL;
}

static bool ends_field(const char *end)
{
    return *end == ' ' || *end == '\0' || *end == '\n';
}

int bench_pair_result_parse(const char *line, bench_pair_result *r)
{
    if (strncmp(line, BENCH_PAIR_RESULT_PREFIX,
                strlen(BENCH_PAIR_RESULT_PREFIX)) != 0)
        return -1;
    memset(r, 0, sizeof *r);
    const char *v;
    char *end;
#define BENCH_PAIR_U(name)                                                     \
    if (!(v = field(line, #name)) || *v < '0' || *v > '9')                     \
        return -1;                                                             \
    errno = 0;                                                                 \
    r->name = strtoull(v, &end, 10);                                           \
    if (errno || !ends_field(end))                                             \
        return -1;
#define BENCH_PAIR_F(name)                                                     \
    if (!(v = field(line, #name)))                                             \
        return -1;                                                             \
    r->name = strtod(v, &end);                                                 \
    if (end == v || !ends_field(end))                                          \
        return -1;
    BENCH_PAIR_RESULT_FIELDS(BENCH_PAIR_U, BENCH_PAIR_F)
#undef BENCH_PAIR_U
#undef BENCH_PAIR_F
    return 0;
}
