/* SPDX-License-Identifier: Apache-2.0 */
/* The shard reactor: one io_uring to wait on, completions dispatched to the
 * op each carries, posted work from other threads, timers, poll sources,
 * fd watches and the idle strategy. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "dataplane/reactor/ring.h"
#include "edist/error.h"

/* Posted functions run per batch taken under the lock at once. */
#define POST_BATCH 256
/* A CQ this many times the SQ: multishot receives produce many CQEs per SQE. */
#define CQ_PER_SQ 8
/* Modules one loop can carry (TCP, a DPDK port, ...). */
#define MODULES_MAX 8

typedef struct edi_post_ent {
    edi_post_fn fn;
    void *arg;
} edi_post_ent;

struct edi_fd_watch {
    edi_loop *loop;
    edi_op op;
    int fd;
    unsigned events;
    edi_fd_fn fn;
    void *arg;
    bool armed;              /* a poll request is in the kernel */
    bool active;             /* the owner still wants callbacks */
    bool in_cb;              /* inside fn: an unwatch must not free it */
    bool failed;             /* ended by an error: no longer armed */
    edi_fd_watch *prev, *next; /* loop->watches */
};

struct edi_loop {
    struct io_uring ring;
    edi_loop_config cfg;
    unsigned features;
    uint64_t now_ms;
    uint64_t now_ns;
    bool freeing;              /* edi_loop_free: own completions ignored */

    /* wake-ups: an eventfd read is kept armed in the ring */
    int efd;
    uint64_t efd_value;
    edi_op efd_op;
    bool efd_armed;
    atomic_int stop;
    atomic_int sleeping;

    atomic_ulong thread;       /* pthread_self() of the loop thread */
    atomic_ullong posts_total, posts_refused; /* any thread */

    /* posts: bounded ring under post_mu; post_count read without the lock
     * to decide whether to look */
    pthread_mutex_t post_mu;
    edi_post_ent *posts;
    uint32_t post_head, post_len;
    atomic_uint post_count;

    /* timers: binary min-heap on (due_ms, seq) */
    edi_timer **heap;
    uint32_t heap_len, heap_cap;
    uint64_t timer_seq;

    /* poll sources in the order added; a removed one leaves a NULL until
     * the slots are compacted outside the polling phase */
    edi_poll_source **polls;
    uint32_t npolls, polls_cap, polls_live;
    bool polling, polls_holes;

    edi_fd_watch *watches;     /* active or waiting for the kernel */

    struct {
        const edi_loop_module *m;
        void *state;
    } modules[MODULES_MAX];
    uint32_t nmodules;

    edi_loop_stats st;
};

void edi_loop_config_default(edi_loop_config *c)
{
    memset(c, 0, sizeof(*c));
    c->idle = EDI_IDLE_ADAPTIVE;
    c->spin_us = 50;
    c->yield_us = 300;
    c->ring_entries = 256;
    c->post_queue_len = 4096;
    c->poll_budget = 64;
}

static bool is_pow2(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

static void update_now(edi_loop *loop)
{
    loop->now_ns = edi_now_ns();
    loop->now_ms = loop->now_ns / 1000000u;
}

uint64_t edi_loop_now_ms(const edi_loop *loop) { return loop->now_ms; }
uint64_t edi_loop_now_ns(const edi_loop *loop) { return loop->now_ns; }
unsigned edi_loop_features(const edi_loop *loop) { return loop->features; }

int edi_loop_on_thread(const edi_loop *loop)
{
    return atomic_load_explicit(&loop->thread, memory_order_relaxed) ==
           (unsigned long)pthread_self();
}

struct io_uring *edi_loop_ring(edi_loop *loop) { return &loop->ring; }

void edi_loop_log(edi_loop *loop, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    edi_vlogf(&loop->cfg.log, EDIST_LOG_INFO, fmt, ap);
    va_end(ap);
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

static void on_eventfd(edi_loop *loop, edi_op *op, struct io_uring_cqe *cqe);

static void arm_eventfd(edi_loop *loop)
{
    struct io_uring_sqe *sqe = edi_loop_sqe(loop);
    if (sqe == NULL)
        return;
    io_uring_prep_read(sqe, loop->efd, &loop->efd_value, sizeof(loop->efd_value), 0);
    io_uring_sqe_set_data(sqe, &loop->efd_op);
    loop->efd_armed = true;
}

static void on_eventfd(edi_loop *loop, edi_op *op, struct io_uring_cqe *cqe)
{
    (void)op;
    (void)cqe;
    loop->efd_armed = false;
    if (loop->freeing)
        return;
    loop->st.wakeups++;
    arm_eventfd(loop);
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
        cfg.post_queue_len == 0 || cfg.poll_budget == 0 || cfg.idle > EDI_IDLE_SLEEP)
        return edist_set_error(EDIST_EINVAL, "reactor: bad loop config");

    edi_loop *loop = calloc(1, sizeof(*loop));
    if (loop == NULL)
        return edist_set_error(EDIST_ENOMEM, "reactor: loop alloc");
    loop->cfg = cfg;
    loop->efd = -1;
    loop->efd_op.fn = on_eventfd;
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
        return edist_set_error(EDIST_ENOMEM, "reactor: post queue alloc");
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
                               "reactor: io_uring_queue_init: %s", strerror(-rc));
    }
    if (params.features & IORING_FEAT_EXT_ARG)
        loop->features |= EDI_FEAT_EXT_ARG;

    /* Blocking eventfd: io_uring waits for readability itself; a
     * non-blocking one would complete the read at once with EAGAIN. */
    loop->efd = eventfd(0, EFD_CLOEXEC);
    if (loop->efd < 0) {
        int e = errno;
        io_uring_queue_exit(&loop->ring);
        free(loop->posts);
        pthread_mutex_destroy(&loop->post_mu);
        free(loop);
        return edist_set_error(EDIST_EIO, "reactor: eventfd: %s", strerror(e));
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
    loop->freeing = true;
    /* Newest first: a module may use what an older one provides. After
     * this no module's pool wakes the loop from another thread. */
    while (loop->nmodules > 0) {
        loop->nmodules--;
        loop->modules[loop->nmodules].m->fini(loop, loop->modules[loop->nmodules].state);
    }
    io_uring_queue_exit(&loop->ring);
    /* the kernel is done with every watch now */
    while (loop->watches != NULL) {
        edi_fd_watch *w = loop->watches;
        loop->watches = w->next;
        free(w);
    }
    close(loop->efd);
    free(loop->posts);
    free(loop->heap);
    free(loop->polls);
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

int edi_loop_post(edi_loop *loop, edi_post_fn fn, void *arg)
{
    if (fn == NULL)
        return edist_set_error(EDIST_EINVAL, "reactor: post of NULL fn");
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
            return edist_set_error(EDIST_ENOMEM, "reactor: timer heap");
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
        return edist_set_error(EDIST_EINVAL, "reactor: timer without fn");
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
    /* Only timers armed before this pass: one armed (or re-armed) with
     * delay 0 from a callback waits for the next iteration, so the polls
     * run in between (the scheduler's kick, re-armed by a process that
     * yields to the loop, used to fire again at once: the heap's (due,
     * seq) order puts every newer timer behind the older due ones). */
    uint64_t seq0 = loop->timer_seq;
    uint32_t fired = 0;
    while (loop->heap_len > 0) {
        edi_timer *t = loop->heap[0];
        if (t->due_ms > loop->now_ms || t->seq >= seq0)
            break;
        heap_remove(loop, t);
        if (t->period_ms > 0) {
            t->due_ms += t->period_ms;
            if (t->due_ms <= loop->now_ms)
                t->due_ms = loop->now_ms + t->period_ms;
            if (heap_insert(loop, t) < 0)
                edi_loop_log(loop, "reactor: periodic timer dropped: out of memory");
        }
        loop->st.timers_fired++;
        fired++;
        t->fn(loop, t, t->arg);
    }
    return fired;
}

/* ---- poll sources ------------------------------------------------------------ */

void edi_poll_source_init(edi_poll_source *s, const char *name, edi_poll_fn poll,
                          edi_poll_flush_fn flush, edi_poll_pending_fn pending,
                          void *arg)
{
    memset(s, 0, sizeof(*s));
    s->name = name;
    s->poll = poll;
    s->flush = flush;
    s->pending = pending;
    s->arg = arg;
    s->index = UINT32_MAX;
}

/* Closes the holes left by removals; not while the slots are walked. */
static void polls_compact(edi_loop *loop)
{
    uint32_t j = 0;
    for (uint32_t i = 0; i < loop->npolls; i++) {
        edi_poll_source *s = loop->polls[i];
        if (s == NULL)
            continue;
        s->index = j;
        loop->polls[j++] = s;
    }
    loop->npolls = j;
    loop->polls_holes = false;
}

int edi_loop_poll_add(edi_loop *loop, edi_poll_source *s)
{
    if (s->poll == NULL || s->index != UINT32_MAX)
        return edist_set_error(EDIST_EINVAL, "reactor: poll source without poll fn or added twice");
    if (loop->npolls == loop->polls_cap) {
        uint32_t cap = loop->polls_cap ? loop->polls_cap * 2 : 8;
        edi_poll_source **p = realloc(loop->polls, cap * sizeof(*p));
        if (p == NULL)
            return edist_set_error(EDIST_ENOMEM, "reactor: poll list");
        loop->polls = p;
        loop->polls_cap = cap;
    }
    s->index = loop->npolls;
    loop->polls[loop->npolls++] = s;
    loop->polls_live++;
    return 0;
}

void edi_loop_poll_remove(edi_loop *loop, edi_poll_source *s)
{
    if (s->index == UINT32_MAX)
        return;
    loop->polls[s->index] = NULL;
    s->index = UINT32_MAX;
    loop->polls_live--;
    loop->polls_holes = true;
    if (!loop->polling)
        polls_compact(loop);
}

/* Every source once, then every flush; slots are read afresh each step, as
 * a callback may add or remove sources (the array may move). */
static uint32_t run_polls(edi_loop *loop)
{
    if (loop->npolls == 0)
        return 0;
    uint32_t total = 0;
    loop->polling = true;
    for (uint32_t i = 0; i < loop->npolls; i++) {
        edi_poll_source *s = loop->polls[i];
        if (s == NULL)
            continue;
        uint32_t n = s->poll(loop, s->arg, loop->cfg.poll_budget);
        s->work += n;
        total += n;
    }
    for (uint32_t i = 0; i < loop->npolls; i++) {
        edi_poll_source *s = loop->polls[i];
        if (s != NULL && s->flush != NULL)
            s->flush(loop, s->arg);
    }
    loop->polling = false;
    if (loop->polls_holes)
        polls_compact(loop);
    loop->st.poll_work += total;
    return total;
}

static bool polls_pending(edi_loop *loop)
{
    for (uint32_t i = 0; i < loop->npolls; i++) {
        edi_poll_source *s = loop->polls[i];
        if (s != NULL && s->pending != NULL && s->pending(s->arg))
            return true;
    }
    return false;
}

/* ---- fd watches ------------------------------------------------------------------ */

static void fd_watch_free(edi_fd_watch *w)
{
    edi_loop *loop = w->loop;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        loop->watches = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    free(w);
}

static int fd_watch_arm(edi_fd_watch *w)
{
    struct io_uring_sqe *sqe = edi_loop_sqe(w->loop);
    if (sqe == NULL)
        return edist_set_error(EDIST_EIO, "reactor: fd watch: submission queue unusable");
    io_uring_prep_poll_multishot(sqe, w->fd, w->events);
    io_uring_sqe_set_data(sqe, &w->op);
    w->armed = true;
    return 0;
}

static void on_fd_ready(edi_loop *loop, edi_op *op, struct io_uring_cqe *cqe)
{
    edi_fd_watch *w = edi_container_of(op, edi_fd_watch, op);
    if (!(cqe->flags & IORING_CQE_F_MORE))
        w->armed = false;
    if (loop->freeing)
        return; /* freed with the loop */
    if (!w->active) {
        /* unwatched: this is the poll's last completion */
        if (!w->armed)
            fd_watch_free(w);
        return;
    }
    w->in_cb = true;
    if (cqe->res > 0) {
        loop->st.fd_events++;
        w->fn(loop, w, w->fd, (unsigned)cqe->res, w->arg);
    } else if (cqe->res < 0) {
        /* EBADF and the like: the watch is over; the owner hears it once
         * and still unwatches. */
        w->failed = true;
        edi_loop_log(loop, "reactor: fd %d no longer watched: %s", w->fd,
                     strerror(-cqe->res));
        w->fn(loop, w, w->fd, POLLERR, w->arg);
    }
    w->in_cb = false;
    if (!w->active) {
        /* unwatched from its callback */
        if (!w->armed)
            fd_watch_free(w);
        return;
    }
    /* The kernel may end a multishot poll on its own (e.g. when the CQ
     * overflowed): start another. */
    if (!w->armed && !w->failed && fd_watch_arm(w) < 0) {
        w->failed = true;
        edi_loop_log(loop, "reactor: fd %d no longer watched: %s", w->fd,
                     edist_last_error());
        w->fn(loop, w, w->fd, POLLERR, w->arg);
    }
}

int edi_loop_fd_watch(edi_loop *loop, int fd, unsigned events, edi_fd_fn fn,
                      void *arg, edi_fd_watch **out)
{
    *out = NULL;
    if (fd < 0 || fn == NULL || events == 0)
        return edist_set_error(EDIST_EINVAL, "reactor: fd watch needs an fd, events and fn");
    edi_fd_watch *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return edist_set_error(EDIST_ENOMEM, "reactor: fd watch alloc");
    w->loop = loop;
    w->op.fn = on_fd_ready;
    w->fd = fd;
    w->events = events;
    w->fn = fn;
    w->arg = arg;
    int rc = fd_watch_arm(w);
    if (rc < 0) {
        free(w);
        return rc;
    }
    w->active = true;
    w->next = loop->watches;
    if (loop->watches != NULL)
        loop->watches->prev = w;
    loop->watches = w;
    loop->st.fd_watches++;
    *out = w;
    return 0;
}

void edi_loop_fd_unwatch(edi_fd_watch *w)
{
    if (w == NULL || !w->active)
        return;
    edi_loop *loop = w->loop;
    w->active = false;
    loop->st.fd_watches--;
    if (!w->armed) {
        if (!w->in_cb) /* else on_fd_ready frees it on return */
            fd_watch_free(w);
        return;
    }
    /* The poll's last completion (ECANCELED) frees it. */
    struct io_uring_sqe *sqe = edi_loop_sqe(loop);
    if (sqe != NULL) {
        io_uring_prep_poll_remove(sqe, (uint64_t)(uintptr_t)&w->op);
        io_uring_sqe_set_data(sqe, NULL);
    }
}

/* ---- modules ------------------------------------------------------------------------ */

int edi_loop_module_attach(edi_loop *loop, const edi_loop_module *m, void *state)
{
    if (m == NULL || m->fini == NULL || edi_loop_module_state(loop, m) != NULL)
        return edist_set_error(EDIST_EINVAL, "reactor: module %s attached twice or without fini",
                               m && m->name ? m->name : "?");
    if (loop->nmodules == MODULES_MAX)
        return edist_set_error(EDIST_ENOMEM, "reactor: no module slot left for %s",
                               m->name ? m->name : "?");
    loop->modules[loop->nmodules].m = m;
    loop->modules[loop->nmodules].state = state;
    loop->nmodules++;
    return 0;
}

void *edi_loop_module_state(const edi_loop *loop, const edi_loop_module *m)
{
    for (uint32_t i = 0; i < loop->nmodules; i++)
        if (loop->modules[i].m == m)
            return loop->modules[i].state;
    return NULL;
}

/* ---- completions and iterations ------------------------------------------- */

/* Hands every ready completion to its op; returns how many. */
static uint32_t reap(edi_loop *loop)
{
    struct io_uring_cqe *cqes[64];
    uint32_t total = 0;
    for (;;) {
        unsigned n = io_uring_peek_batch_cqe(&loop->ring, cqes, 64);
        if (n == 0)
            break;
        for (unsigned i = 0; i < n; i++) {
            edi_op *op = io_uring_cqe_get_data(cqes[i]);
            if (op != NULL)
                op->fn(loop, op, cqes[i]);
        }
        /* handlers are done with these CQEs (they copied what they need) */
        io_uring_cq_advance(&loop->ring, n);
        total += n;
    }
    loop->st.cqes += total;
    return total;
}

unsigned edi_loop_reap_wait(edi_loop *loop, uint64_t timeout_ns)
{
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts;
    ts.tv_sec = (long long)(timeout_ns / 1000000000u);
    ts.tv_nsec = (long long)(timeout_ns % 1000000000u);
    (void)io_uring_submit_and_wait_timeout(&loop->ring, &cqe, 1, &ts, NULL);
    return reap(loop);
}

/* One pass without waiting; returns the amount of work done. */
static uint32_t iterate(edi_loop *loop)
{
    uint32_t n = 0;
    update_now(loop);
    loop->st.iterations++;
    n += reap(loop);
    n += run_posts(loop);
    n += run_timers(loop);
    n += run_polls(loop);
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
        uint64_t now = edi_now_ns();
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
        io_uring_cq_ready(&loop->ring) > 0 || polls_pending(loop)) {
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
        return edist_set_error(EDIST_EIO, "reactor: wait: %s", strerror(-rc));
    return 0;
}

static void become_loop_thread(edi_loop *loop)
{
    atomic_store_explicit(&loop->thread, (unsigned long)pthread_self(),
                          memory_order_relaxed);
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
            edi_cpu_relax();
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
                edi_cpu_relax();
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
    out->poll_sources = loop->polls_live;
    out->posts = atomic_load_explicit(&loop->posts_total, memory_order_relaxed);
    out->post_eagain = atomic_load_explicit(&loop->posts_refused, memory_order_relaxed);
}
