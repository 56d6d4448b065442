/* SPDX-License-Identifier: Apache-2.0 */
/* Preloaded by bench/instructions.sh into benchmarks run under callgrind;
 * not part of edist.
 *
 * Valgrind runs one thread at a time and hands its lock over only in the
 * system calls it knows can block. Valgrind 3.19 does not count
 * io_uring_enter among them, so a shard that sleeps in io_uring_enter keeps
 * the lock and the thread that would wake it never runs again: the program
 * hangs. These definitions replace liburing's waiting calls: they submit,
 * wait in poll() (which valgrind knows blocks) until enough completions are
 * ready, then call liburing's own function, which returns at once. The
 * waiting itself is left out of the count (CALLGRIND_TOGGLE_COLLECT, which
 * acts on the calling thread only): how often it polls depends on the
 * clock, not on the code measured. */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <valgrind/callgrind.h>

/* Between two checks for completions that the kernel defers until this
 * thread enters io_uring (COOP_TASKRUN) and so may not wake poll(). */
#define POLL_INTERVAL_MS 1

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void *real(const char *name)
{
    void *fn = dlsym(RTLD_NEXT, name);
    if (fn == NULL)
        abort(); /* liburing not linked: nothing to replace */
    return fn;
}

/* Submits what is queued, then waits until wait_nr completions are ready
 * or ts (relative; NULL: no limit) has passed. False: timed out. */
static bool submit_and_wait_ready(struct io_uring *ring, unsigned wait_nr,
                                  const struct __kernel_timespec *ts)
{
    int rc = io_uring_submit(ring);
    if (rc < 0)
        return true; /* let liburing's own call report it */
    CALLGRIND_TOGGLE_COLLECT;
    uint64_t deadline_ns = UINT64_MAX;
    if (ts != NULL)
        deadline_ns = now_ns() + (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
    bool ready;
    for (;;) {
        io_uring_get_events(ring); /* runs deferred completion work */
        ready = io_uring_cq_ready(ring) >= wait_nr;
        if (ready || now_ns() >= deadline_ns)
            break;
        struct pollfd p = {.fd = ring->ring_fd, .events = POLLIN};
        (void)poll(&p, 1, POLL_INTERVAL_MS);
    }
    CALLGRIND_TOGGLE_COLLECT;
    return ready;
}

int io_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr)
{
    static int (*fn)(struct io_uring *, unsigned);
    if (fn == NULL)
        fn = (int (*)(struct io_uring *, unsigned))real("io_uring_submit_and_wait");
    if (wait_nr > 0)
        (void)submit_and_wait_ready(ring, wait_nr, NULL);
    return fn(ring, wait_nr);
}

int io_uring_submit_and_wait_timeout(struct io_uring *ring, struct io_uring_cqe **cqe_ptr,
                                     unsigned wait_nr, struct __kernel_timespec *ts,
                                     sigset_t *sigmask)
{
    static int (*fn)(struct io_uring *, struct io_uring_cqe **, unsigned,
                     struct __kernel_timespec *, sigset_t *);
    if (fn == NULL)
        fn = (int (*)(struct io_uring *, struct io_uring_cqe **, unsigned,
                      struct __kernel_timespec *, sigset_t *))real(
            "io_uring_submit_and_wait_timeout");
    if (wait_nr > 0 && !submit_and_wait_ready(ring, wait_nr, ts))
        return -ETIME;
    return fn(ring, cqe_ptr, wait_nr, ts, sigmask);
}

int io_uring_wait_cqes(struct io_uring *ring, struct io_uring_cqe **cqe_ptr, unsigned wait_nr,
                       struct __kernel_timespec *ts, sigset_t *sigmask)
{
    static int (*fn)(struct io_uring *, struct io_uring_cqe **, unsigned,
                     struct __kernel_timespec *, sigset_t *);
    if (fn == NULL)
        fn = (int (*)(struct io_uring *, struct io_uring_cqe **, unsigned,
                      struct __kernel_timespec *, sigset_t *))real("io_uring_wait_cqes");
    if (wait_nr > 0 && !submit_and_wait_ready(ring, wait_nr, ts))
        return -ETIME;
    return fn(ring, cqe_ptr, wait_nr, ts, sigmask);
}

int io_uring_wait_cqe_timeout(struct io_uring *ring, struct io_uring_cqe **cqe_ptr,
                              struct __kernel_timespec *ts)
{
    static int (*fn)(struct io_uring *, struct io_uring_cqe **, struct __kernel_timespec *);
    if (fn == NULL)
        fn = (int (*)(struct io_uring *, struct io_uring_cqe **,
                      struct __kernel_timespec *))real("io_uring_wait_cqe_timeout");
    if (!submit_and_wait_ready(ring, 1, ts))
        return -ETIME;
    return fn(ring, cqe_ptr, ts);
}

/* Behind the inline io_uring_wait_cqe and io_uring_wait_cqe_nr. */
int __io_uring_get_cqe(struct io_uring *ring, struct io_uring_cqe **cqe_ptr, unsigned submit,
                       unsigned wait_nr, sigset_t *sigmask)
{
    static int (*fn)(struct io_uring *, struct io_uring_cqe **, unsigned, unsigned, sigset_t *);
    if (fn == NULL)
        fn = (int (*)(struct io_uring *, struct io_uring_cqe **, unsigned, unsigned,
                      sigset_t *))real("__io_uring_get_cqe");
    if (wait_nr > 0)
        (void)submit_and_wait_ready(ring, wait_nr, NULL);
    return fn(ring, cqe_ptr, submit, wait_nr, sigmask);
}
