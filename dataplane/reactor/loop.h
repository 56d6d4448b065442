/* SPDX-License-Identifier: Apache-2.0 */
/* The shard reactor: one event loop per shard thread, apart from any
 * medium. It has an io_uring to wait on (and for the data paths built on
 * it to submit to, see ring.h), an eventfd to be woken through, timers,
 * work posted from other threads, the idle strategy, and a list of things
 * to poll every iteration (a lane, a DPDK port, a ring from another
 * shard). The io_uring TCP data path (dataplane/uring/tcp.h) is one such
 * user; the reactor knows nothing of sockets.
 *
 * Everything a loop owns is touched by one thread only: the thread that
 * calls edi_loop_run()/edi_loop_run_once() (the "loop thread"). Before the
 * first run, the thread that created the loop may set it up (timers, poll
 * sources, a TCP listener). The only calls allowed from any other thread
 * are marked "thread-safe" below: edi_loop_post(), edi_loop_wake(),
 * edi_loop_stop() (also async-signal-safe), edi_now_ms().
 *
 * Callbacks (timers, posted functions, poll sources, fd watches) run on
 * the loop thread, never from inside the edi_* call that caused them.
 *
 * Errors: 0 (or a count) on success, negative edist_err on failure, with
 * detail in edist_last_error() of the calling thread. Nothing sets errno
 * for the caller and nothing prints: events worth a line go to config.log.
 *
 * One iteration: completions of the ring (each carries its handler),
 * posted work, due timers, every poll source (in the order added), then
 * every poll source's flush (batched output goes out once per iteration,
 * after everything that could add to it), then one submit. */
#ifndef EDI_REACTOR_LOOP_H
#define EDI_REACTOR_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/clock.h"
#include "base/log.h" /* edi_log, edi_ratelimit */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct edi_loop edi_loop;

/* ---- configuration ------------------------------------------------------ */

typedef enum edi_idle_mode {
    EDI_IDLE_ADAPTIVE = 0, /* spin spin_us, sched_yield until yield_us, then
                            * block in the kernel until work or next timer */
    EDI_IDLE_BUSY = 1,     /* never block: lowest latency, one core burnt */
    EDI_IDLE_SLEEP = 2,    /* block as soon as there is nothing to do */
} edi_idle_mode;

/* Kernel features of the reactor's ring; edi_loop_features() tells which
 * are in use and config.disable_features turns some off (to test the
 * fallbacks). The TCP data path has its own (bits 0..2, uring/tcp.h). */
enum {
    EDI_FEAT_EXT_ARG = 1u << 3,         /* wait with timeout in one syscall (5.11+);
                                         * informative, cannot be disabled */
    EDI_FEAT_COOP_TASKRUN = 1u << 4,    /* completions without IPIs (5.19+) */
};

typedef struct edi_loop_config {
    edi_idle_mode idle;              /* default ADAPTIVE */
    uint32_t spin_us;                /* adaptive: busy spin this long idle (default 50) */
    uint32_t yield_us;               /* adaptive: sched_yield until this long idle (default 300) */
    uint32_t ring_entries;           /* SQ size, power of 2 (default 256) */
    uint32_t post_queue_len;         /* edi_loop_post capacity (default 4096) */
    unsigned disable_features;       /* EDI_FEAT_* to leave unused (default 0) */
    edi_log log;                     /* one INFO line per significant event
                                      * (base/log.h); zero: none */
    /* issue 9: the poll list */
    uint32_t poll_budget;            /* work offered to a poll source per call (default 64) */
} edi_loop_config;

/* Fills c with the defaults above. */
void edi_loop_config_default(edi_loop_config *c);

/* ---- loop lifecycle ----------------------------------------------------- */

/* Creates a loop (io_uring, eventfd). config may be NULL for defaults. Any
 * thread. Returns 0, EDIST_EINVAL (bad config), EDIST_ENOMEM, EDIST_EIO
 * (no eventfd), or EDIST_EUNSUPPORTED (no io_uring: detail says why). */
int edi_loop_new(const edi_loop_config *config, edi_loop **out);

/* Frees the loop. Call from the loop thread (or any thread once no thread
 * runs it). Modules attached to it are finished first, newest first (the
 * TCP data path closes its listeners and connections without callbacks);
 * fd watches end without callbacks; posts still queued are dropped. */
void edi_loop_free(edi_loop *loop);

/* Runs until edi_loop_stop(). Returns 0 when stopped, or a negative
 * edist_err if the ring failed. The calling thread becomes the loop thread. */
int edi_loop_run(edi_loop *loop);

/* One iteration: completes what is ready, runs posted work, due timers and
 * the poll sources, flushes; if nothing was ready, blocks up to timeout_ms
 * (0 = do not wait, -1 = until something happens) and iterates once more.
 * The idle strategy applies to edi_loop_run only. Returns the amount of
 * work done (>= 0) or a negative edist_err. */
int edi_loop_run_once(edi_loop *loop, int timeout_ms);

/* Makes edi_loop_run() return soon. Thread-safe and async-signal-safe
 * (an atomic store and an eventfd write). The stop request is consumed
 * when edi_loop_run returns; calling run again runs again. */
void edi_loop_stop(edi_loop *loop);

/* Runs fn(loop, arg) on the loop thread soon, in post order. Thread-safe
 * (not async-signal-safe); wakes a sleeping loop. Returns 0 or EDIST_EAGAIN
 * when the bounded queue is full (fn will not run). Posts still queued at
 * edi_loop_free are dropped (fn not called). */
typedef void (*edi_post_fn)(edi_loop *loop, void *arg);
int edi_loop_post(edi_loop *loop, edi_post_fn fn, void *arg);

/* Wakes the loop if it sleeps. Thread-safe. For work handed to the loop
 * without edi_loop_post: publish it first (where a poll source's pending
 * check sees it), then wake; the loop checks pending after announcing that
 * it sleeps, so one of the two sees the other. */
void edi_loop_wake(edi_loop *loop);

/* Monotonic clock. edi_now_ms/edi_now_ns (base/clock.h) read the clock
 * (thread-safe); edi_loop_now_ms/_ns are the loop's cached values,
 * refreshed every iteration. */
uint64_t edi_loop_now_ms(const edi_loop *loop);
uint64_t edi_loop_now_ns(const edi_loop *loop);

/* EDI_FEAT_* bits in use by this loop's ring. Any thread after creation. */
unsigned edi_loop_features(const edi_loop *loop);

/* True when called on the loop thread (the one running or set up the loop). */
int edi_loop_on_thread(const edi_loop *loop);

/* ---- timers ----------------------------------------------------------------
 * The owner provides the memory of an edi_timer (embed it in its own
 * struct): no allocation, and cancel is always safe, also after the timer
 * fired, and from inside its own callback. Loop thread only. */
typedef struct edi_timer edi_timer;
typedef void (*edi_timer_fn)(edi_loop *loop, edi_timer *t, void *arg);
struct edi_timer {
    /* private to the loop */
    uint64_t due_ms;
    uint64_t period_ms;
    uint64_t seq;        /* tie-break: same due time fires in start order */
    edi_timer_fn fn;
    void *arg;
    uint32_t heap_index; /* UINT32_MAX when not armed */
};

/* Zeroes t into the disarmed state (a zeroed struct is NOT disarmed). */
void edi_timer_init(edi_timer *t);
/* Arms t: fires fn after delay_ms, then every period_ms if period_ms > 0.
 * Re-arming an armed timer moves it. Returns 0 or EDIST_ENOMEM (heap full:
 * the heap grows, so only on allocation failure). */
int edi_loop_timer_start(edi_loop *loop, edi_timer *t, uint64_t delay_ms,
                         uint64_t period_ms, edi_timer_fn fn, void *arg);
/* Disarms t (no-op if not armed). */
void edi_loop_timer_cancel(edi_loop *loop, edi_timer *t);
/* 1 if t is armed. */
int edi_timer_armed(const edi_timer *t);

/* ---- poll sources ------------------------------------------------------------
 * Things the loop polls every iteration: a lane's receive queue, a DPDK
 * port, a ring fed by another shard. The owner provides the memory (embed
 * it) and fills it with edi_poll_source_init. Loop thread (or setup).
 *
 * poll(loop, arg, budget): do up to about budget units of work (frames,
 *     messages: the source decides what a unit is) and return how many
 *     were done; 0 tells the loop this source is idle. Required.
 * flush(loop, arg): optional; called once per iteration after every
 *     source was polled: hand what was batched meanwhile to the medium
 *     (one sendmsg, one tx burst).
 * pending(arg): optional; called when the loop is about to sleep, after
 *     it announced so (see edi_loop_wake): true keeps it awake. A source
 *     fed from other threads must say here whether anything waits, or a
 *     wake-up can be lost; one fed only through the ring needs none.
 *
 * Adding and removing are allowed from any callback, a source's own
 * included; a source removed during an iteration is not called again. */
typedef struct edi_poll_source edi_poll_source;
typedef uint32_t (*edi_poll_fn)(edi_loop *loop, void *arg, uint32_t budget);
typedef void (*edi_poll_flush_fn)(edi_loop *loop, void *arg);
typedef bool (*edi_poll_pending_fn)(void *arg);
struct edi_poll_source {
    const char *name;
    edi_poll_fn poll;
    edi_poll_flush_fn flush;
    edi_poll_pending_fn pending;
    void *arg;
    /* private to the loop */
    uint32_t index;      /* UINT32_MAX when not added */
    uint64_t work;       /* units reported, over its life */
};

void edi_poll_source_init(edi_poll_source *s, const char *name, edi_poll_fn poll,
                          edi_poll_flush_fn flush, edi_poll_pending_fn pending,
                          void *arg);
/* Returns 0, EDIST_EINVAL (no poll function, or already added), or
 * EDIST_ENOMEM. */
int edi_loop_poll_add(edi_loop *loop, edi_poll_source *s);
/* No-op if not added. */
void edi_loop_poll_remove(edi_loop *loop, edi_poll_source *s);

/* ---- fd watches ----------------------------------------------------------------
 * The reactor's ring watches fd (POLL_ADD, multishot) so that a source the
 * ring does not otherwise see, such as a DPDK rx-interrupt eventfd, wakes
 * a sleeping shard. fn runs on the loop thread with the poll bits that
 * became ready (events: POLLIN etc. from poll.h); it must consume what made
 * fd ready (read the eventfd), since readiness is reported once per
 * wake-up of the fd, not for as long as it lasts. A watch that fails
 * (a bad fd) calls fn once with POLLERR and watches no more; the owner
 * still unwatches it. The reactor allocates the watch (the kernel may
 * still complete on it after the owner is done with it) and frees it once
 * the kernel has. Loop thread (or setup). */
typedef struct edi_fd_watch edi_fd_watch;
typedef void (*edi_fd_fn)(edi_loop *loop, edi_fd_watch *w, int fd,
                          unsigned revents, void *arg);
/* Returns 0, EDIST_EINVAL (fd < 0, no fn or no events), EDIST_ENOMEM,
 * EDIST_EIO (the ring is unusable). */
int edi_loop_fd_watch(edi_loop *loop, int fd, unsigned events, edi_fd_fn fn,
                      void *arg, edi_fd_watch **out);
/* Stops watching: no callback after this call (also from inside the
 * watch's own callback). The fd stays the owner's, who may close it once
 * this returns. NULL is a no-op. */
void edi_loop_fd_unwatch(edi_fd_watch *w);

/* ---- modules ---------------------------------------------------------------------
 * Per-loop state of a data path built on the reactor (the TCP data path,
 * a DPDK port), found again by its descriptor. fini runs from
 * edi_loop_free, newest module first, while the ring still works: it ends
 * the module's kernel requests (edi_loop_reap_wait in ring.h) and frees
 * its state; no callbacks to the module's users then. */
typedef struct edi_loop_module {
    const char *name;
    void (*fini)(edi_loop *loop, void *state);
} edi_loop_module;

/* Returns 0, EDIST_EINVAL (already attached), EDIST_ENOMEM (no slot left:
 * a loop has a few). Loop thread (or setup). */
int edi_loop_module_attach(edi_loop *loop, const edi_loop_module *m, void *state);
/* The state attached for m, or NULL. */
void *edi_loop_module_state(const edi_loop *loop, const edi_loop_module *m);

/* ---- statistics (loop thread; post to read from elsewhere) -------------- */

typedef struct edi_loop_stats {
    uint64_t iterations, sleeps, wakeups;
    uint64_t cqes;
    uint64_t posts, post_eagain, timers_fired;
    /* issue 9: the poll list */
    uint64_t poll_sources;            /* added now */
    uint64_t poll_work;               /* units the poll sources reported */
    uint64_t fd_watches;              /* active now */
    uint64_t fd_events;               /* fd watch callbacks */
} edi_loop_stats;

void edi_loop_get_stats(const edi_loop *loop, edi_loop_stats *out);

#ifdef __cplusplus
}
#endif
#endif
