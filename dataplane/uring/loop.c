/* SPDX-License-Identifier: Apache-2.0 */
/* The shard loop: one io_uring, completions dispatched to connections,
 * posted work from other threads, timers, and the idle strategy. */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "dataplane/uring/uring_internal.h"
#include "edist/error.h"

/* Posted functions run per batch taken under the lock at once. */
#define POST_BATCH 256
/* A CQ this many times the SQ: multishot receives produce many CQEs per SQE. */
#define CQ_PER_SQ 8

void edi_loop_config_default(edi_loop_config *c)
{
    memset(c, 0, sizeof(*c));
    c->idle = EDI_IDLE_ADAPTIVE;
    c->spin_us = 50;
    c->yield_us = 300;
    c->ring_entries = 256;
    c->rx_buffer_bytes = 64u * 1024u;
    c->rx_buffer_count = 64;
    c->max_frame_bytes = 256ull * 1024 * 1024;
    c->raw_max_bytes = 64u * 1024u;
    c->send_queue_limit_bytes = 1024u * 1024u;
    c->post_queue_len = 4096;
}

static bool is_pow2(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

uint64_t edi_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void update_now(edi_loop *loop)
{
    loop->now_ns = now_ns();
    loop->now_ms = loop->now_ns / 1000000u;
}

uint64_t edi_loop_now_ms(const edi_loop *loop) { return loop->now_ms; }
unsigned edi_loop_features(const edi_loop *loop) { return loop->features; }

int edi_loop_on_thread(const edi_loop *loop)
{
    return atomic_load_explicit(&loop->thread, memory_order_relaxed) ==
           (unsigned long)pthread_self();
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

void edi_loop_log(edi_loop *loop, const char *fmt, ...)
{
    if (loop->cfg.log == NULL)
        return;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    loop->cfg.log(loop->cfg.log_user, line);
}

struct io_uring_sqe *edi_loop_sqe(edi_loop *loop)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->ring);
    if (sqe == NULL) {
        io_uring_submit(&loop->ring);
        sqe = io_uring_get_sqe(&loop->ring);
    }
    return sqe;
}

void edi_loop_wake(edi_loop *loop)
{
    /* seq_cst load: pairs with the seq_cst store of sleeping = 1 in
     * loop_wait, after which the loop re-checks every wake source (Dekker):
     * either we see it asleep and write, or it sees our work. */
    if (atomic_load(&loop->sleeping)) {
        uint64_t one = 1;
        ssize_t rc = write(loop->efd, &one, sizeof(one));
        (void)rc; /* only fails if the counter would overflow: already awake */
    }
}

static void arm_eventfd(edi_loop *loop)
{
    struct io_uring_sqe *sqe = edi_loop_sqe(loop);
    if (sqe == NULL)
        return;
    io_uring_prep_read(sqe, loop->efd, &loop->efd_value, sizeof(loop->efd_value), 0);
    io_uring_sqe_set_data(sqe, &loop->efd_op);
    loop->efd_armed = true;
}

int edi_loop_new(const edi_loop_config *config, edi_loop **out)
{
    *out = NULL;
    edi_loop_config cfg;
    if (config != NULL)
        cfg = *config;
    else
        edi_loop_config_default(&cfg);
    if (!is_pow2(cfg.ring_entries) || cfg.ring_entries > 32768 ||
        !is_pow2(cfg.rx_buffer_count) || cfg.rx_buffer_count > 32768 ||
        cfg.rx_buffer_bytes < 64 || cfg.post_queue_len == 0 ||
        cfg.max_frame_bytes == 0 || cfg.max_frame_bytes > UINT32_MAX ||
        cfg.send_queue_limit_bytes == 0 || cfg.raw_max_bytes == 0 ||
        cfg.idle > EDI_IDLE_SLEEP)
        return edist_set_error(EDIST_EINVAL, "uring: bad loop config");

    edi_loop *loop = calloc(1, sizeof(*loop));
    if (loop == NULL)
        return edist_set_error(EDIST_ENOMEM, "uring: loop alloc");
    loop->cfg = cfg;
    loop->efd = -1;
    loop->efd_op.kind = EDI_OP_EVENTFD;
    atomic_init(&loop->stop, 0);
    atomic_init(&loop->sleeping, 0);
    atomic_init(&loop->post_count, 0);
    atomic_init(&loop->thread, (unsigned long)pthread_self());
    pthread_mutex_init(&loop->post_mu, NULL);
    update_now(loop);

    loop->posts = calloc(cfg.post_queue_len, sizeof(*loop->posts));
    if (loop->posts == NULL) {
        pthread_mutex_destroy(&loop->post_mu);
        free(loop);
        return edist_set_error(EDIST_ENOMEM, "uring: post queue alloc");
    }

    /* COOP_TASKRUN (5.19): completions are posted when the loop enters the
     * kernel instead of interrupting it; liburing's peek notices the
     * TASKRUN flag and enters when work is pending. Older kernels reject
     * the flags: retry without. */
    struct io_uring_params params;
    int rc = -EINVAL;
    if (!(cfg.disable_features & EDI_FEAT_COOP_TASKRUN)) {
        memset(&params, 0, sizeof(params));
        params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN |
                       IORING_SETUP_TASKRUN_FLAG;
        params.cq_entries = cfg.ring_entries * CQ_PER_SQ;
        rc = io_uring_queue_init_params(cfg.ring_entries, &loop->ring, &params);
        if (rc == 0)
            loop->features |= EDI_FEAT_COOP_TASKRUN;
    }
    if (rc == -EINVAL) {
        memset(&params, 0, sizeof(params));
        params.flags = IORING_SETUP_CQSIZE;
        params.cq_entries = cfg.ring_entries * CQ_PER_SQ;
        rc = io_uring_queue_init_params(cfg.ring_entries, &loop->ring, &params);
    }
    if (rc < 0) {
        free(loop->posts);
        pthread_mutex_destroy(&loop->post_mu);
        free(loop);
        return edist_set_error(EDIST_EUNSUPPORTED,
                               "uring: io_uring_queue_init: %s", strerror(-rc));
    }
    if (params.features & IORING_FEAT_EXT_ARG)
        loop->features |= EDI_FEAT_EXT_ARG;

    rc = edi_pool_new(loop, &loop->ring, cfg.rx_buffer_count, cfg.rx_buffer_bytes,
                      &loop->pool);
    if (rc < 0) {
        io_uring_queue_exit(&loop->ring);
        free(loop->posts);
        pthread_mutex_destroy(&loop->post_mu);
        free(loop);
        return rc;
    }
    loop->features |= EDI_FEAT_BUF_RING;
    /* multishot recv came in 6.0, multishot accept in 5.19, the buffer
     * ring in 5.19: with a buffer ring, accept is there; recv is tried and
     * falls back to one-shot on EINVAL (see conn.c). */
    loop->features |= EDI_FEAT_RECV_MULTISHOT | EDI_FEAT_ACCEPT_MULTISHOT;
    loop->features &= ~(cfg.disable_features & ~(unsigned)EDI_FEAT_EXT_ARG);
    loop->features |= EDI_FEAT_BUF_RING; /* required: cannot be disabled */
    loop->st.rx_buffers_total = cfg.rx_buffer_count;

    /* Blocking eventfd: io_uring waits for readability itself; a
     * non-blocking one would complete the read at once with EAGAIN. */
    loop->efd = eventfd(0, EFD_CLOEXEC);
    if (loop->efd < 0) {
        int e = errno;
        edi_pool_release(loop->pool);
        io_uring_queue_exit(&loop->ring);
        free(loop->posts);
        pthread_mutex_destroy(&loop->post_mu);
        free(loop);
        return edist_set_error(EDIST_EIO, "uring: eventfd: %s", strerror(e));
    }
    arm_eventfd(loop);
    io_uring_submit(&loop->ring);
    *out = loop;
    return 0;
}

void edi_loop_free(edi_loop *loop)
{
    if (loop == NULL)
        return;
    edi_conn_free_all(loop);
    /* Pool first: after this no other thread will write to efd. */
    edi_pool_release(loop->pool);
    io_uring_queue_exit(&loop->ring);
    close(loop->efd);
    free(loop->posts);
    free(loop->heap);
    pthread_mutex_destroy(&loop->post_mu);
    free(loop);
}

void edi_loop_stop(edi_loop *loop)
{
    atomic_store(&loop->stop, 1);
    uint64_t one = 1;
    ssize_t rc = write(loop->efd, &one, sizeof(one));
    (void)rc;
}

void edi_loop_set_poller(edi_loop *loop, const edi_loop_poller *poller)
{
    if (poller)
        loop->poller = *poller;
    else
        memset(&loop->poller, 0, sizeof loop->poller);
}

int edi_loop_post(edi_loop *loop, edi_post_fn fn, void *arg)
{
    if (fn == NULL)
        return edist_set_error(EDIST_EINVAL, "uring: post of NULL fn");
    pthread_mutex_lock(&loop->post_mu);
    if (loop->post_len == loop->cfg.post_queue_len) {
        atomic_fetch_add_explicit(&loop->posts_refused, 1, memory_order_relaxed);
        pthread_mutex_unlock(&loop->post_mu);
        return EDIST_EAGAIN;
    }
    uint32_t i = (loop->post_head + loop->post_len) % loop->cfg.post_queue_len;
    loop->posts[i].fn = fn;
    loop->posts[i].arg = arg;
    loop->post_len++;
    atomic_fetch_add_explicit(&loop->posts_total, 1, memory_order_relaxed);
    /* seq_cst: ordered before the load of sleeping in edi_loop_wake. */
    atomic_fetch_add(&loop->post_count, 1);
    pthread_mutex_unlock(&loop->post_mu);
    edi_loop_wake(loop);
    return 0;
}

static uint32_t run_posts(edi_loop *loop)
{
    if (atomic_load_explicit(&loop->post_count, memory_order_acquire) == 0)
        return 0;
    edi_post_ent batch[POST_BATCH];
    uint32_t n;
    pthread_mutex_lock(&loop->post_mu);
    n = loop->post_len < POST_BATCH ? loop->post_len : POST_BATCH;
    for (uint32_t k = 0; k < n; k++) {
        batch[k] = loop->posts[loop->post_head];
        loop->post_head = (loop->post_head + 1) % loop->cfg.post_queue_len;
    }
    loop->post_len -= n;
    atomic_fetch_sub(&loop->post_count, n);
    pthread_mutex_unlock(&loop->post_mu);
    for (uint32_t k = 0; k < n; k++)
        batch[k].fn(loop, batch[k].arg);
    return n;
}

/* ---- timers ---------------------------------------------------------------- */

static bool timer_before(const edi_timer *a, const edi_timer *b)
{
    return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->seq < b->seq);
}

static void heap_set(edi_loop *loop, uint32_t i, edi_timer *t)
{
    loop->heap[i] = t;
    t->heap_index = i;
}

static void heap_up(edi_loop *loop, uint32_t i)
{
    edi_timer *t = loop->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!timer_before(t, loop->heap[parent]))
            break;
        heap_set(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_set(loop, i, t);
}

static void heap_down(edi_loop *loop, uint32_t i)
{
    edi_timer *t = loop->heap[i];
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        const edi_timer *best = t;
        if (l < loop->heap_len && timer_before(loop->heap[l], best)) {
            m = l;
            best = loop->heap[l];
        }
        if (r < loop->heap_len && timer_before(loop->heap[r], best))
            m = r;
        if (m == i)
            break;
        heap_set(loop, i, loop->heap[m]);
        i = m;
    }
    heap_set(loop, i, t);
}

static void heap_remove(edi_loop *loop, edi_timer *t)
{
    uint32_t i = t->heap_index;
    t->heap_index = UINT32_MAX;
    loop->heap_len--;
    if (i == loop->heap_len)
        return;
    heap_set(loop, i, loop->heap[loop->heap_len]);
    heap_down(loop, i);
    heap_up(loop, loop->heap[i]->heap_index);
}

static int heap_insert(edi_loop *loop, edi_timer *t)
{
    if (loop->heap_len == loop->heap_cap) {
        uint32_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        edi_timer **h = realloc(loop->heap, cap * sizeof(*h));
        if (h == NULL)
            return edist_set_error(EDIST_ENOMEM, "uring: timer heap");
        loop->heap = h;
        loop->heap_cap = cap;
    }
    t->seq = loop->timer_seq++;
    heap_set(loop, loop->heap_len++, t);
    heap_up(loop, t->heap_index);
    return 0;
}

void edi_timer_init(edi_timer *t)
{
    memset(t, 0, sizeof(*t));
    t->heap_index = UINT32_MAX;
}

int edi_timer_armed(const edi_timer *t) { return t->heap_index != UINT32_MAX; }

int edi_loop_timer_start(edi_loop *loop, edi_timer *t, uint64_t delay_ms,
                         uint64_t period_ms, edi_timer_fn fn, void *arg)
{
    if (fn == NULL)
        return edist_set_error(EDIST_EINVAL, "uring: timer without fn");
    if (edi_timer_armed(t))
        heap_remove(loop, t);
    /* fresh clock: a timer started from outside the loop (setup) or late
     * in a long iteration must not fire early */
    update_now(loop);
    t->due_ms = loop->now_ms + delay_ms;
    t->period_ms = period_ms;
    t->fn = fn;
    t->arg = arg;
    return heap_insert(loop, t);
}

void edi_loop_timer_cancel(edi_loop *loop, edi_timer *t)
{
    if (edi_timer_armed(t))
        heap_remove(loop, t);
}

static uint32_t run_timers(edi_loop *loop)
{
    /* At most as many as were armed at the start: a timer re-armed with
     * delay 0 from its own callback waits for the next iteration. */
    uint32_t budget = loop->heap_len, fired = 0;
    while (budget-- > 0 && loop->heap_len > 0) {
        edi_timer *t = loop->heap[0];
        if (t->due_ms > loop->now_ms)
            break;
        heap_remove(loop, t);
        if (t->period_ms > 0) {
            t->due_ms += t->period_ms;
            if (t->due_ms <= loop->now_ms)
                t->due_ms = loop->now_ms + t->period_ms;
            if (heap_insert(loop, t) < 0)
                edi_loop_log(loop, "uring: periodic timer dropped: out of memory");
        }
        loop->st.timers_fired++;
        fired++;
        t->fn(loop, t, t->arg);
    }
    return fired;
}

/* ---- completions and iterations ------------------------------------------- */

static uint32_t reap(edi_loop *loop)
{
    struct io_uring_cqe *cqes[64];
    uint32_t total = 0;
    for (;;) {
        unsigned n = io_uring_peek_batch_cqe(&loop->ring, cqes, 64);
        if (n == 0)
            break;
        for (unsigned i = 0; i < n; i++) {
            struct io_uring_cqe *cqe = cqes[i];
            edi_op *op = io_uring_cqe_get_data(cqe);
            if (op == NULL)
                continue;
            switch (op->kind) {
            case EDI_OP_EVENTFD:
                loop->efd_armed = false;
                loop->st.wakeups++;
                arm_eventfd(loop);
                break;
            case EDI_OP_ACCEPT:
                edi_listener_handle_cqe(loop, op, cqe);
                break;
            default:
                edi_conn_handle_cqe(loop, op, cqe);
                break;
            }
        }
        /* handlers are done with these CQEs (they copied what they need) */
        io_uring_cq_advance(&loop->ring, n);
        total += n;
    }
    loop->st.cqes += total;
    return total;
}

/* One pass without waiting; returns the number of things that happened. */
static uint32_t iterate(edi_loop *loop)
{
    uint32_t n = 0;
    update_now(loop);
    loop->st.iterations++;
    n += edi_pool_drain_returned(loop->pool);
    n += reap(loop);
    n += run_posts(loop);
    n += run_timers(loop);
    if (loop->poller.poll)
        n += loop->poller.poll(loop->poller.arg);
    n += edi_conn_run_deferred(loop);
    edi_conn_rearm_starved(loop);
    edi_conn_flush(loop);
    if (io_uring_sq_ready(&loop->ring) > 0)
        io_uring_submit(&loop->ring);
    return n;
}

/* Block until a completion, a wake-up or the next timer, at most
 * timeout_ns (UINT64_MAX = no limit). */
static int loop_wait(edi_loop *loop, uint64_t timeout_ns)
{
    if (loop->heap_len > 0) {
        uint64_t due_ns = loop->heap[0]->due_ms * 1000000u;
        uint64_t now = now_ns();
        uint64_t until = due_ns > now ? due_ns - now : 0;
        if (until < timeout_ns)
            timeout_ns = until;
    }
    if (timeout_ns == 0)
        return 0;
    /* seq_cst store, then re-check every wake source: pairs with the
     * seq_cst loads in edi_loop_wake (see there). */
    atomic_store(&loop->sleeping, 1);
    if (atomic_load(&loop->stop) || atomic_load(&loop->post_count) > 0 ||
        atomic_load(&loop->pool->returned_nonempty) ||
        io_uring_cq_ready(&loop->ring) > 0 || loop->deferred != NULL ||
        (loop->poller.pending && loop->poller.pending(loop->poller.arg))) {
        atomic_store(&loop->sleeping, 0);
        return 0;
    }
    loop->st.sleeps++;
    struct io_uring_cqe *cqe;
    int rc;
    if (timeout_ns == UINT64_MAX) {
        rc = io_uring_submit_and_wait(&loop->ring, 1);
    } else {
        struct __kernel_timespec ts;
        ts.tv_sec = (long long)(timeout_ns / 1000000000u);
        ts.tv_nsec = (long long)(timeout_ns % 1000000000u);
        rc = io_uring_submit_and_wait_timeout(&loop->ring, &cqe, 1, &ts, NULL);
    }
    atomic_store(&loop->sleeping, 0);
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
        return edist_set_error(EDIST_EIO, "uring: wait: %s", strerror(-rc));
    return 0;
}

static void become_loop_thread(edi_loop *loop)
{
    unsigned long self = (unsigned long)pthread_self();
    atomic_store_explicit(&loop->thread, self, memory_order_relaxed);
    atomic_store_explicit(&loop->pool->owner, self, memory_order_relaxed);
}

int edi_loop_run_once(edi_loop *loop, int timeout_ms)
{
    become_loop_thread(loop);
    uint32_t n = iterate(loop);
    if (n > 0 || timeout_ms == 0)
        return (int)(n > INT_MAX ? INT_MAX : n);
    uint64_t t = timeout_ms < 0 ? UINT64_MAX : (uint64_t)timeout_ms * 1000000u;
    int rc = loop_wait(loop, t);
    if (rc < 0)
        return rc;
    n = iterate(loop);
    return (int)(n > INT_MAX ? INT_MAX : n);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

int edi_loop_run(edi_loop *loop)
{
    become_loop_thread(loop);
    uint64_t idle_since_ns = 0;
    const uint64_t spin_ns = (uint64_t)loop->cfg.spin_us * 1000u;
    const uint64_t yield_ns = (uint64_t)loop->cfg.yield_us * 1000u;
    while (!atomic_load_explicit(&loop->stop, memory_order_acquire)) {
        uint32_t n = iterate(loop);
        if (n > 0) {
            idle_since_ns = 0;
            continue;
        }
        int rc = 0;
        switch (loop->cfg.idle) {
        case EDI_IDLE_BUSY:
            cpu_relax();
            break;
        case EDI_IDLE_SLEEP:
            rc = loop_wait(loop, UINT64_MAX);
            break;
        case EDI_IDLE_ADAPTIVE: {
            uint64_t t = loop->now_ns;
            if (idle_since_ns == 0)
                idle_since_ns = t;
            uint64_t idle = t - idle_since_ns;
            if (idle < spin_ns)
                cpu_relax();
            else if (idle < yield_ns)
                sched_yield();
            else
                rc = loop_wait(loop, UINT64_MAX);
            break;
        }
        }
        if (rc < 0)
            return rc;
    }
    atomic_store(&loop->stop, 0);
    return 0;
}

void edi_loop_get_stats(const edi_loop *loop, edi_loop_stats *out)
{
    *out = loop->st;
    out->rx_buffers_held = loop->pool->held;
    out->posts = atomic_load_explicit(&loop->posts_total, memory_order_relaxed);
    out->post_eagain = atomic_load_explicit(&loop->posts_refused, memory_order_relaxed);
}
