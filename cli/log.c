/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const level_names[] = {"error", "warning", "info", "debug"};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char last[1024];
static const void *last_user;
static unsigned long repeats;
static struct timespec first_repeat;

static void stamp(const struct timespec *ts, char *out, size_t cap)
{
    struct tm tm;
    localtime_r(&ts->tv_sec, &tm);
    char day[32];
    strftime(day, sizeof day, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out, cap, "%s.%03ld", day, ts->tv_nsec / 1000000L);
}

static void flush_repeats(const struct timespec *now, const char *component)
{
    if (!repeats)
        return;
    char when[48];
    stamp(now, when, sizeof when);
    fprintf(stderr, "%s info %s: (the line above repeated %lu more times)\n", when, component,
            repeats);
    repeats = 0;
}

static void flush_at_exit(void);
static void register_flush(void)
{
    atexit(flush_at_exit);
}

/* A burst of one line told at the program's end if nothing came after. */
static void flush_at_exit(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    pthread_mutex_lock(&mu);
    flush_repeats(&now, last_user ? (const char *)last_user : "edist");
    pthread_mutex_unlock(&mu);
}

void cli_log(void *user, edist_log_level level, const char *line)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_flush);
    const char *component = user ? user : "edist";
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    pthread_mutex_lock(&mu);
    if (last_user == user && strcmp(last, line) == 0) {
        if (repeats == 0)
            first_repeat = now;
        repeats++;
        /* a storm of one line: told once a second */
        if (now.tv_sec > first_repeat.tv_sec)
            flush_repeats(&now, component);
        pthread_mutex_unlock(&mu);
        return;
    }
    flush_repeats(&now, last_user ? (const char *)last_user : component);
    snprintf(last, sizeof last, "%s", line);
    last_user = user;
    char when[48];
    stamp(&now, when, sizeof when);
    fprintf(stderr, "%s %s %s: %s\n", when,
            level_names[level <= EDIST_LOG_DEBUG ? level : EDIST_LOG_DEBUG], component, line);
    fflush(stderr);
    pthread_mutex_unlock(&mu);
}

void cli_log_quiet(void *user, edist_log_level level, const char *line)
{
    if (level <= EDIST_LOG_WARNING)
        cli_log(user, level, line);
}
