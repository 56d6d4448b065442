/* SPDX-License-Identifier: Apache-2.0 */
/* The shard reactor on its own, without any medium: timers, posts from
 * other threads, poll sources (order, budget, flush after every poll,
 * removal and addition from callbacks, a source fed by another thread),
 * an fd watch waking a sleeping loop, modules finished with the loop. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "dataplane/reactor/loop.h"
#include "edist/error.h"

#define WAIT_MS 20000

#define WAIT_UNTIL(cond)                                           \
    do {                                                           \
        uint64_t wait_deadline_ = edi_now_ms() + WAIT_MS;          \
        while (!(cond) && edi_now_ms() < wait_deadline_)           \
            usleep(200);                                           \
        assert_true(cond);                                         \
    } while (0)

/* ---- a loop on its own thread ------------------------------------------------------ */

typedef struct rt_thread {
    edi_loop *loop;
    pthread_t th;
    int rc;
} rt_thread;

static void *rt_main(void *a)
{
    rt_thread *t = a;
    t->rc = edi_loop_run(t->loop);
    return NULL;
}

static void rt_start(rt_thread *t, edi_idle_mode idle)
{
    memset(t, 0, sizeof(*t));
    edi_loop_config cfg;
    edi_loop_config_default(&cfg);
    cfg.idle = idle;
    assert_int_equal(edi_loop_new(&cfg, &t->loop), 0);
    assert_int_equal(pthread_create(&t->th, NULL, rt_main, t), 0);
}

static void rt_stop(rt_thread *t)
{
    edi_loop_stop(t->loop);
    pthread_join(t->th, NULL);
    assert_int_equal(t->rc, 0);
    edi_loop_free(t->loop);
}

typedef struct call {
    void (*fn)(edi_loop *, void *);
    void *arg;
    atomic_int done;
} call;

static void call_tramp(edi_loop *l, void *a)
{
    call *c = a;
    assert_true(edi_loop_on_thread(l));
    c->fn(l, c->arg);
    atomic_store(&c->done, 1);
}

/* Runs fn on the loop thread and waits for it. */
static void call_on(rt_thread *t, void (*fn)(edi_loop *, void *), void *arg)
{
    call c = { fn, arg, 0 };
    assert_int_equal(edi_loop_post(t->loop, call_tramp, &c), 0);
    WAIT_UNTIL(atomic_load(&c.done));
}

static void stats_fn(edi_loop *l, void *a) { edi_loop_get_stats(l, a); }

static void get_stats(rt_thread *t, edi_loop_stats *st)
{
    call_on(t, stats_fn, st);
}

/* ---- timers ------------------------------------------------------------------------------ */

typedef struct tlog {
    char order[64];
    int n;
    int periodic_left;
    edi_timer a, b, c, p, self_cancel;
} tlog;

static void t_mark(edi_loop *loop, edi_timer *t, void *arg)
{
    tlog *g = arg;
    char id = t == &g->a ? 'a' : t == &g->b ? 'b' : t == &g->c ? 'c' : '?';
    g->order[g->n++] = id;
    (void)loop;
}

static void t_periodic(edi_loop *loop, edi_timer *t, void *arg)
{
    tlog *g = arg;
    g->order[g->n++] = 'p';
    if (--g->periodic_left == 0)
        edi_loop_timer_cancel(loop, t); /* from its own callback */
}

static void t_never(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    tlog *g = arg;
    g->order[g->n++] = 'X';
}

/* Driven with run_once from the test thread (the loop thread then). */
static void test_reactor_timers(void **state)
{
    (void)state;
    edi_loop *loop;
    assert_int_equal(edi_loop_new(NULL, &loop), 0);
    tlog g;
    memset(&g, 0, sizeof(g));
    edi_timer_init(&g.a);
    edi_timer_init(&g.b);
    edi_timer_init(&g.c);
    edi_timer_init(&g.p);
    edi_timer_init(&g.self_cancel);
    g.periodic_left = 3;
    /* same due time fires in start order; a moved timer fires once */
    assert_int_equal(edi_loop_timer_start(loop, &g.b, 20, 0, t_mark, &g), 0);
    assert_int_equal(edi_loop_timer_start(loop, &g.c, 20, 0, t_mark, &g), 0);
    assert_int_equal(edi_loop_timer_start(loop, &g.a, 1000, 0, t_mark, &g), 0);
    assert_int_equal(edi_loop_timer_start(loop, &g.a, 5, 0, t_mark, &g), 0);
    assert_int_equal(edi_loop_timer_start(loop, &g.p, 30, 10, t_periodic, &g), 0);
    assert_int_equal(edi_loop_timer_start(loop, &g.self_cancel, 10, 0, t_never, &g), 0);
    edi_loop_timer_cancel(loop, &g.self_cancel);
    assert_false(edi_timer_armed(&g.self_cancel));
    assert_int_equal(edi_loop_timer_start(loop, &g.p, 30, 0, NULL, &g), EDIST_EINVAL);
    uint64_t deadline = edi_now_ms() + WAIT_MS;
    while (g.n < 6 && edi_now_ms() < deadline)
        assert_true(edi_loop_run_once(loop, 100) >= 0);
    assert_string_equal(g.order, "abcppp");
    assert_false(edi_timer_armed(&g.p));
    edi_loop_stats st;
    edi_loop_get_stats(loop, &st);
    assert_int_equal(st.timers_fired, 6);
    edi_loop_free(loop);
}

/* ---- posts from other threads --------------------------------------------------------- */

#define POSTERS 4
#define POSTS_EACH 20000

typedef struct posts {
    rt_thread *t;
    uint64_t next[POSTERS];    /* loop thread: next sequence per poster */
    atomic_int bad;
    atomic_ullong ran, eagain;
} posts;

typedef struct post_item {
    posts *ps;
    int poster;
    uint64_t seq;
} post_item;

static post_item items[POSTERS][POSTS_EACH];

static void post_fn(edi_loop *loop, void *arg)
{
    post_item *it = arg;
    if (!edi_loop_on_thread(loop) || it->ps->next[it->poster] != it->seq)
        atomic_store(&it->ps->bad, 1);
    it->ps->next[it->poster] = it->seq + 1;
    atomic_fetch_add(&it->ps->ran, 1);
}

typedef struct poster_arg {
    posts *ps;
    int id;
} poster_arg;

static void *poster_main(void *a)
{
    poster_arg *pa = a;
    for (uint64_t k = 0; k < POSTS_EACH; k++) {
        post_item *it = &items[pa->id][k];
        it->ps = pa->ps;
        it->poster = pa->id;
        it->seq = k;
        while (edi_loop_post(pa->ps->t->loop, post_fn, it) == EDIST_EAGAIN) {
            atomic_fetch_add(&pa->ps->eagain, 1);
            usleep(50);
        }
    }
    return NULL;
}

static void test_reactor_posts_from_threads(void **state)
{
    (void)state;
    rt_thread t;
    rt_start(&t, EDI_IDLE_SLEEP);
    static posts ps;
    memset(&ps, 0, sizeof(ps));
    ps.t = &t;
    pthread_t th[POSTERS];
    poster_arg pa[POSTERS];
    for (int i = 0; i < POSTERS; i++) {
        pa[i].ps = &ps;
        pa[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, poster_main, &pa[i]), 0);
    }
    for (int i = 0; i < POSTERS; i++)
        pthread_join(th[i], NULL);
    WAIT_UNTIL(atomic_load(&ps.ran) == (uint64_t)POSTERS * POSTS_EACH);
    assert_int_equal(atomic_load(&ps.bad), 0);
    edi_loop_stats st;
    get_stats(&t, &st);
    /* every post counted, the stats one included */
    assert_int_equal(st.posts, (uint64_t)POSTERS * POSTS_EACH + 1);
    assert_int_equal(st.post_eagain, atomic_load(&ps.eagain));
    assert_int_equal(edi_loop_post(t.loop, NULL, NULL), EDIST_EINVAL);
    rt_stop(&t);
}

/* ---- poll sources ---------------------------------------------------------------------- */

typedef struct src_log {
    char seq[256];
    size_t n;
    uint32_t budget_seen;
    edi_poll_source a, b, c, d;
    int a_work;        /* what a reports per poll */
    int b_remove_self; /* b removes itself in its next poll */
    int a_remove_c;    /* a removes c in its next poll */
    int a_add_d;       /* a adds d in its next poll */
} src_log;

static void rec(src_log *g, char c)
{
    if (g->n + 1 < sizeof(g->seq))
        g->seq[g->n++] = c;
}

static uint32_t poll_a(edi_loop *loop, void *arg, uint32_t budget)
{
    src_log *g = arg;
    rec(g, 'A');
    g->budget_seen = budget;
    if (g->a_remove_c) {
        g->a_remove_c = 0;
        edi_loop_poll_remove(loop, &g->c);
    }
    if (g->a_add_d) {
        g->a_add_d = 0;
        assert_int_equal(edi_loop_poll_add(loop, &g->d), 0);
    }
    return (uint32_t)g->a_work;
}

static uint32_t poll_b(edi_loop *loop, void *arg, uint32_t budget)
{
    (void)budget;
    src_log *g = arg;
    rec(g, 'B');
    if (g->b_remove_self) {
        g->b_remove_self = 0;
        edi_loop_poll_remove(loop, &g->b);
    }
    return 0;
}

static uint32_t poll_c(edi_loop *loop, void *arg, uint32_t budget)
{
    (void)loop;
    (void)budget;
    rec(arg, 'C');
    return 0;
}

static uint32_t poll_d(edi_loop *loop, void *arg, uint32_t budget)
{
    (void)loop;
    (void)budget;
    rec(arg, 'D');
    return 1;
}

static void flush_a(edi_loop *loop, void *arg)
{
    (void)loop;
    rec(arg, 'a');
}

static void flush_c(edi_loop *loop, void *arg)
{
    (void)loop;
    rec(arg, 'c');
}

static void test_reactor_poll_sources(void **state)
{
    (void)state;
    edi_loop_config cfg;
    edi_loop_config_default(&cfg);
    cfg.poll_budget = 32;
    edi_loop *loop;
    assert_int_equal(edi_loop_new(&cfg, &loop), 0);
    src_log g;
    memset(&g, 0, sizeof(g));
    edi_poll_source_init(&g.a, "a", poll_a, flush_a, NULL, &g);
    edi_poll_source_init(&g.b, "b", poll_b, NULL, NULL, &g);
    edi_poll_source_init(&g.c, "c", poll_c, flush_c, NULL, &g);
    edi_poll_source_init(&g.d, "d", poll_d, NULL, NULL, &g);
    assert_int_equal(edi_loop_poll_add(loop, &g.a), 0);
    assert_int_equal(edi_loop_poll_add(loop, &g.b), 0);
    assert_int_equal(edi_loop_poll_add(loop, &g.c), 0);
    assert_int_equal(edi_loop_poll_add(loop, &g.a), EDIST_EINVAL); /* twice */
    edi_poll_source bad;
    edi_poll_source_init(&bad, "bad", NULL, NULL, NULL, NULL);
    assert_int_equal(edi_loop_poll_add(loop, &bad), EDIST_EINVAL);
    edi_loop_stats st;
    edi_loop_get_stats(loop, &st);
    assert_int_equal(st.poll_sources, 3);

    /* every source polled in order, then the flushes */
    g.a_work = 5;
    assert_int_equal(edi_loop_run_once(loop, 0), 5);
    assert_string_equal(g.seq, "ABCac");
    assert_int_equal(g.budget_seen, 32);

    /* idle sources: run_once(0) reports no work */
    g.n = 0;
    memset(g.seq, 0, sizeof(g.seq));
    g.a_work = 0;
    assert_int_equal(edi_loop_run_once(loop, 0), 0);
    assert_string_equal(g.seq, "ABCac");

    /* b removes itself, a removes c before its turn and adds d: this
     * iteration polls A B D (d added at the end), flushes a */
    g.n = 0;
    memset(g.seq, 0, sizeof(g.seq));
    g.b_remove_self = 1;
    g.a_remove_c = 1;
    g.a_add_d = 1;
    assert_int_equal(edi_loop_run_once(loop, 0), 1);
    assert_string_equal(g.seq, "ABDa");
    g.n = 0;
    memset(g.seq, 0, sizeof(g.seq));
    assert_int_equal(edi_loop_run_once(loop, 0), 1);
    assert_string_equal(g.seq, "ADa");
    edi_loop_get_stats(loop, &st);
    assert_int_equal(st.poll_sources, 2);
    assert_int_equal(st.poll_work, 5 + 1 + 1);
    assert_int_equal(g.a.work, 5);
    assert_int_equal(g.d.work, 2);
    edi_loop_poll_remove(loop, &g.b); /* not added: no-op */
    edi_loop_poll_remove(loop, &g.a);
    edi_loop_poll_remove(loop, &g.d);
    edi_loop_get_stats(loop, &st);
    assert_int_equal(st.poll_sources, 0);
    edi_loop_free(loop);
}

/* A source fed by another thread: items go into a locked queue, then the
 * producer wakes the loop; pending() tells a loop about to sleep that
 * items wait. The loop sleeps between bursts (SLEEP mode). */
#define XFEED_ITEMS 20000

typedef struct xfeed {
    pthread_mutex_t mu;
    uint32_t queued;            /* under mu */
    atomic_ullong consumed;     /* by the loop */
    atomic_int bad;
    edi_poll_source src;
} xfeed;

static uint32_t xfeed_poll(edi_loop *loop, void *arg, uint32_t budget)
{
    xfeed *x = arg;
    if (!edi_loop_on_thread(loop))
        atomic_store(&x->bad, 1);
    pthread_mutex_lock(&x->mu);
    uint32_t n = x->queued < budget ? x->queued : budget;
    x->queued -= n;
    pthread_mutex_unlock(&x->mu);
    atomic_fetch_add(&x->consumed, n);
    return n;
}

static bool xfeed_pending(void *arg)
{
    xfeed *x = arg;
    pthread_mutex_lock(&x->mu);
    bool any = x->queued > 0;
    pthread_mutex_unlock(&x->mu);
    return any;
}

static void xfeed_add(edi_loop *loop, void *arg)
{
    xfeed *x = arg;
    assert_int_equal(edi_loop_poll_add(loop, &x->src), 0);
}

static void xfeed_remove(edi_loop *loop, void *arg)
{
    xfeed *x = arg;
    edi_loop_poll_remove(loop, &x->src);
}

static void test_reactor_poll_source_other_thread(void **state)
{
    (void)state;
    rt_thread t;
    rt_start(&t, EDI_IDLE_SLEEP);
    xfeed x;
    memset(&x, 0, sizeof(x));
    pthread_mutex_init(&x.mu, NULL);
    edi_poll_source_init(&x.src, "xfeed", xfeed_poll, NULL, xfeed_pending, &x);
    call_on(&t, xfeed_add, &x);
    edi_loop_stats st0, st1;
    get_stats(&t, &st0);
    uint64_t produced = 0;
    while (produced < XFEED_ITEMS) {
        uint32_t burst = 1 + (uint32_t)(produced % 97);
        pthread_mutex_lock(&x.mu);
        x.queued += burst;
        pthread_mutex_unlock(&x.mu);
        produced += burst;
        edi_loop_wake(t.loop);
        if (produced % 7 == 0)
            usleep(100); /* let it fall asleep now and then */
    }
    WAIT_UNTIL(atomic_load(&x.consumed) == produced);
    get_stats(&t, &st1);
    print_message("%llu items; %llu sleeps, %llu wake-ups\n",
                  (unsigned long long)produced,
                  (unsigned long long)(st1.sleeps - st0.sleeps),
                  (unsigned long long)(st1.wakeups - st0.wakeups));
    assert_true(st1.sleeps > st0.sleeps);
    assert_true(st1.poll_work - st0.poll_work == produced);
    assert_int_equal(atomic_load(&x.bad), 0);
    call_on(&t, xfeed_remove, &x);
    rt_stop(&t);
    pthread_mutex_destroy(&x.mu);
}

/* ---- fd watch ---------------------------------------------------------------------------- */

typedef struct fdw {
    int efd;
    edi_fd_watch *w;
    atomic_int events, errors, wrong_thread;
    atomic_ullong counted;       /* eventfd values read */
    int unwatch_at;              /* unwatch from the callback at this event */
} fdw;

static void fdw_fn(edi_loop *loop, edi_fd_watch *w, int fd, unsigned revents, void *arg)
{
    fdw *f = arg;
    if (!edi_loop_on_thread(loop) || w != f->w)
        atomic_store(&f->wrong_thread, 1);
    if (revents & POLLERR) {
        atomic_fetch_add(&f->errors, 1);
        return;
    }
    uint64_t v;
    if (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
        atomic_fetch_add(&f->counted, v); /* consumed: the next write wakes again */
    int n = atomic_fetch_add(&f->events, 1) + 1;
    if (n == f->unwatch_at) {
        edi_loop_fd_unwatch(w);
        f->w = NULL;
    }
}

static void fdw_watch(edi_loop *loop, void *arg)
{
    fdw *f = arg;
    assert_int_equal(edi_loop_fd_watch(loop, f->efd, POLLIN, fdw_fn, f, &f->w), 0);
}

static void fdw_unwatch(edi_loop *loop, void *arg)
{
    (void)loop;
    fdw *f = arg;
    edi_loop_fd_unwatch(f->w);
    f->w = NULL;
}

static void fdw_bad_args(edi_loop *loop, void *arg)
{
    (void)arg;
    edi_fd_watch *w = NULL;
    assert_int_equal(edi_loop_fd_watch(loop, -1, POLLIN, fdw_fn, NULL, &w), EDIST_EINVAL);
    assert_int_equal(edi_loop_fd_watch(loop, 0, 0, fdw_fn, NULL, &w), EDIST_EINVAL);
    assert_int_equal(edi_loop_fd_watch(loop, 0, POLLIN, NULL, NULL, &w), EDIST_EINVAL);
    assert_null(w);
    edi_loop_fd_unwatch(NULL);
}

/* Gives the loop (SLEEP mode, nothing to do) time to block in the kernel;
 * the sleeps counter checks afterwards that it did. */
static void let_it_sleep(void) { usleep(50 * 1000); }

static void test_reactor_fd_watch_wakes_sleeping_loop(void **state)
{
    (void)state;
    rt_thread t;
    rt_start(&t, EDI_IDLE_SLEEP);
    fdw f;
    memset(&f, 0, sizeof(f));
    f.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(f.efd >= 0);
    f.unwatch_at = 3;
    call_on(&t, fdw_bad_args, NULL);
    call_on(&t, fdw_watch, &f);
    edi_loop_stats st0, st1;
    get_stats(&t, &st0);
    assert_int_equal(st0.fd_watches, 1);
    /* Nothing else can wake it: no timers, no posts, SLEEP mode. Each
     * write must wake the loop through the ring's poll of the fd. */
    for (int k = 1; k <= 3; k++) {
        let_it_sleep();
        uint64_t v = (uint64_t)k;
        assert_int_equal(write(f.efd, &v, sizeof(v)), (ssize_t)sizeof(v));
        WAIT_UNTIL(atomic_load(&f.events) == k);
    }
    assert_int_equal(atomic_load(&f.counted), 1 + 2 + 3);
    /* unwatched from its third callback: a fourth write is not seen */
    let_it_sleep();
    uint64_t v = 4;
    assert_int_equal(write(f.efd, &v, sizeof(v)), (ssize_t)sizeof(v));
    usleep(100 * 1000);
    assert_int_equal(atomic_load(&f.events), 3);
    get_stats(&t, &st1);
    print_message("fd watch: %d events, %llu sleeps, %llu eventfd wake-ups of the loop\n",
                  atomic_load(&f.events), (unsigned long long)(st1.sleeps - st0.sleeps),
                  (unsigned long long)(st1.wakeups - st0.wakeups));
    assert_int_equal(st1.fd_events - st0.fd_events, 3);
    assert_int_equal(st1.fd_watches, 0);
    assert_true(st1.sleeps - st0.sleeps >= 3);
    assert_int_equal(atomic_load(&f.wrong_thread), 0);

    /* watch again, unwatch from outside, then close the fd */
    uint64_t drain;
    (void)!read(f.efd, &drain, sizeof(drain));
    call_on(&t, fdw_watch, &f);
    call_on(&t, fdw_unwatch, &f);
    assert_int_equal(write(f.efd, &v, sizeof(v)), (ssize_t)sizeof(v));
    usleep(50 * 1000);
    assert_int_equal(atomic_load(&f.events), 3);
    close(f.efd);

    /* a watch that fails (no such fd) says so once; the owner unwatches */
    fdw g;
    memset(&g, 0, sizeof(g));
    g.efd = 1000000; /* above any open fd here */
    call_on(&t, fdw_watch, &g);
    WAIT_UNTIL(atomic_load(&g.errors) == 1);
    call_on(&t, fdw_unwatch, &g);
    get_stats(&t, &st1);
    assert_int_equal(st1.fd_watches, 0);
    rt_stop(&t);
}

/* A watch still active when the loop is freed goes with it, without a
 * callback. */
static void test_reactor_fd_watch_freed_with_loop(void **state)
{
    (void)state;
    edi_loop *loop;
    assert_int_equal(edi_loop_new(NULL, &loop), 0);
    fdw f;
    memset(&f, 0, sizeof(f));
    f.efd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK); /* ready at once */
    fdw_watch(loop, &f);
    edi_loop_free(loop);
    assert_int_equal(atomic_load(&f.events), 0);
    close(f.efd);
}

/* ---- modules ------------------------------------------------------------------------------ */

typedef struct modlog {
    char order[8];
    int n;
} modlog;

static void fini_x(edi_loop *loop, void *state)
{
    (void)loop;
    modlog *m = state;
    m->order[m->n++] = 'x';
}

static void fini_y(edi_loop *loop, void *state)
{
    (void)loop;
    modlog *m = state;
    m->order[m->n++] = 'y';
}

static const edi_loop_module mod_x = { "x", fini_x };
static const edi_loop_module mod_y = { "y", fini_y };
static const edi_loop_module mod_bad = { "bad", NULL };

static void test_reactor_modules(void **state)
{
    (void)state;
    edi_loop *loop;
    assert_int_equal(edi_loop_new(NULL, &loop), 0);
    modlog m;
    memset(&m, 0, sizeof(m));
    assert_null(edi_loop_module_state(loop, &mod_x));
    assert_int_equal(edi_loop_module_attach(loop, &mod_x, &m), 0);
    assert_int_equal(edi_loop_module_attach(loop, &mod_y, &m), 0);
    assert_int_equal(edi_loop_module_attach(loop, &mod_x, &m), EDIST_EINVAL);
    assert_int_equal(edi_loop_module_attach(loop, &mod_bad, &m), EDIST_EINVAL);
    assert_ptr_equal(edi_loop_module_state(loop, &mod_y), &m);
    edi_loop_free(loop);
    assert_string_equal(m.order, "yx"); /* newest first */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reactor_timers),
        cmocka_unit_test(test_reactor_posts_from_threads),
        cmocka_unit_test(test_reactor_poll_sources),
        cmocka_unit_test(test_reactor_poll_source_other_thread),
        cmocka_unit_test(test_reactor_fd_watch_wakes_sleeping_loop),
        cmocka_unit_test(test_reactor_fd_watch_freed_with_loop),
        cmocka_unit_test(test_reactor_modules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
