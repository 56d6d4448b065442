/* SPDX-License-Identifier: Apache-2.0 */
/* Shared helpers of the test_uring* programs: loops on their own threads,
 * synchronous calls into a loop thread, a configurable test connection
 * (echo, verify, hold buffers, pump frames with backpressure), and plain
 * blocking sockets for byte-exact peers. */
#ifndef TEST_URING_HARNESS_H
#define TEST_URING_HARNESS_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "dataplane/uring/tcp.h"
#include "edist/error.h"

#define WAIT_MS 20000

#define WAIT_UNTIL(cond)                                           \
    do {                                                           \
        uint64_t wait_deadline_ = edi_now_ms() + WAIT_MS;          \
        while (!(cond) && edi_now_ms() < wait_deadline_)           \
            usleep(200);                                           \
        assert_true(cond);                                         \
    } while (0)

/* ---- loop threads ------------------------------------------------------------ */

typedef struct lt {
    edi_loop *loop;
    pthread_t th;
    int rc;
} lt;

/* A test loop's reactor and TCP data path configurations. */
typedef struct lt_config {
    edi_loop_config loop;
    edi_tcp_config tcp;
} lt_config;

static void lt_config_default(lt_config *c)
{
    edi_loop_config_default(&c->loop);
    edi_tcp_config_default(&c->tcp);
}

static void *lt_main(void *a)
{
    lt *t = a;
    t->rc = edi_loop_run(t->loop);
    return NULL;
}

static void lt_start(lt *t, const lt_config *cfg)
{
    memset(t, 0, sizeof(*t));
    assert_int_equal(edi_loop_new(cfg ? &cfg->loop : NULL, &t->loop), 0);
    assert_int_equal(edi_tcp_setup(t->loop, cfg ? &cfg->tcp : NULL), 0);
    assert_int_equal(pthread_create(&t->th, NULL, lt_main, t), 0);
}

static void lt_stop(lt *t)
{
    edi_loop_stop(t->loop);
    pthread_join(t->th, NULL);
    assert_int_equal(t->rc, 0);
    edi_loop_free(t->loop);
    t->loop = NULL;
}

typedef struct call {
    void (*fn)(void *);
    void *arg;
    atomic_int done;
} call;

static void call_tramp(edi_loop *l, void *a)
{
    call *c = a;
    assert_true(edi_loop_on_thread(l));
    c->fn(c->arg);
    atomic_store(&c->done, 1);
}

/* Runs fn(arg) on the loop thread and waits for it. */
static void call_on(lt *t, void (*fn)(void *), void *arg)
{
    call c;
    c.fn = fn;
    c.arg = arg;
    atomic_init(&c.done, 0);
    assert_int_equal(edi_loop_post(t->loop, call_tramp, &c), 0);
    WAIT_UNTIL(atomic_load(&c.done));
}

/* ---- payload patterns --------------------------------------------------------- */

static void fill(uint8_t *p, size_t len, uint64_t seq)
{
    for (size_t j = 0; j < len; j++)
        p[j] = (uint8_t)(seq * 131u + j * 7u + (j >> 8));
    if (len >= 8)
        memcpy(p, &seq, 8);
}

static int check(const uint8_t *p, size_t len, uint64_t seq)
{
    if (len >= 8) {
        uint64_t s;
        memcpy(&s, p, 8);
        if (s != seq)
            return -1;
    }
    for (size_t j = len >= 8 ? 8 : 0; j < len; j++)
        if (p[j] != (uint8_t)(seq * 131u + j * 7u + (j >> 8)))
            return -1;
    return 0;
}

/* ---- test connections -------------------------------------------------------- */

enum {
    TC_VERIFY = 1, /* check frames against the pattern in order */
    TC_ECHO = 2,   /* send every frame back without copying it */
    TC_HOLD = 4,   /* keep a reference to every frame while hold is set */
    /* take 50 us over every frame and start a timer meanwhile (which
     * moves the loop's clock on mid-iteration), as a handshake step may */
    TC_SLOW = 8,
};

#define TC_MAX_HELD 100000

typedef struct tconn {
    lt *t;
    edi_conn *c;
    unsigned behavior;
    edi_framing initial_mode;
    /* what the peer should send us: frame k has size sizes[k % nsizes],
     * or fixed_len when nsizes is 0 */
    const size_t *sizes;
    size_t nsizes;
    size_t fixed_len;
    /* receive side */
    atomic_int connected, closed, reason, bad;
    atomic_ullong frames, ticks, bytes;
    uint64_t next_seq;
    atomic_int hold;
    edi_rxbuf **held;
    atomic_size_t nheld;
    /* send side (pump) */
    uint64_t to_send, sent;
    uint8_t *scratch;
    size_t scratch_len;
    atomic_ullong eagain, writable;
    atomic_int pump_done;
    int close_when_sent;
    /* pump with edi_conn_frame_reserve/commit (encoding in place, reserving
     * reserve_extra bytes more than it writes) instead of copying sends */
    int reserve;
    size_t reserve_extra;
} tconn;

static size_t tc_len(const tconn *tc, uint64_t k)
{
    return tc->nsizes ? tc->sizes[k % tc->nsizes] : tc->fixed_len;
}

static void tc_pump(tconn *tc)
{
    while (tc->sent < tc->to_send) {
        size_t len = tc_len(tc, tc->sent);
        int rc;
        if (tc->reserve) {
            uint8_t *p = NULL;
            rc = edi_conn_frame_reserve(tc->c, len + tc->reserve_extra, 0, &p);
            if (rc == 0) {
                fill(p, len, tc->sent);
                rc = edi_conn_frame_commit(tc->c, len);
            }
        } else {
            assert_true(len <= tc->scratch_len);
            fill(tc->scratch, len, tc->sent);
            rc = edi_conn_send_frame(tc->c, tc->scratch, len);
        }
        if (rc == EDIST_EAGAIN) {
            atomic_fetch_add(&tc->eagain, 1);
            return; /* on_writable resumes */
        }
        assert_int_equal(rc, 0);
        tc->sent++;
    }
    atomic_store(&tc->pump_done, 1);
    if (tc->close_when_sent)
        edi_conn_close(tc->c, 10000);
}

static void release_unref(void *arg, const void *body)
{
    (void)body;
    edi_rxbuf_unref(arg);
}

static void tc_on_connected(edi_conn *c, void *user)
{
    tconn *tc = user;
    edi_conn_set_framing(c, tc->initial_mode);
    atomic_store(&tc->connected, 1);
    if (tc->to_send > 0)
        tc_pump(tc);
}

static void slow_timer_fn(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    (void)arg;
}

static void tc_on_frame(edi_conn *c, void *user, const edi_frame *f)
{
    tconn *tc = user;
    if (f->len == 0)
        atomic_fetch_add(&tc->ticks, 1);
    if (tc->behavior & TC_VERIFY) {
        if (f->len != tc_len(tc, tc->next_seq) ||
            check(f->data, f->len, tc->next_seq) != 0) {
            if (!atomic_load(&tc->bad))
                print_message("frame %llu: bad (len %zu, expected %zu)\n",
                              (unsigned long long)tc->next_seq, f->len,
                              tc_len(tc, tc->next_seq));
            atomic_store(&tc->bad, 1);
        }
        tc->next_seq++;
    }
    if (tc->behavior & TC_ECHO) {
        edi_rxbuf_ref(f->rxbuf);
        int rc = edi_conn_send_frame_owned(c, NULL, 0, f->data, f->len,
                                           release_unref, f->rxbuf, EDI_SEND_FORCE);
        if (rc < 0) {
            edi_rxbuf_unref(f->rxbuf);
            atomic_store(&tc->bad, 1);
        }
    }
    if ((tc->behavior & TC_HOLD) && atomic_load(&tc->hold)) {
        size_t n = atomic_load(&tc->nheld);
        assert_true(n < TC_MAX_HELD);
        edi_rxbuf_ref(f->rxbuf);
        tc->held[n] = f->rxbuf;
        atomic_store(&tc->nheld, n + 1);
    }
    if (tc->behavior & TC_SLOW) {
        uint64_t until = edi_now_ns() + 50000;
        while (edi_now_ns() < until)
            ;
        edi_timer t;
        edi_timer_init(&t);
        if (edi_loop_timer_start(tc->t->loop, &t, 1000, 0, slow_timer_fn, NULL) == 0)
            edi_loop_timer_cancel(tc->t->loop, &t);
    }
    atomic_fetch_add(&tc->bytes, f->len);
    atomic_fetch_add(&tc->frames, 1);
}

static void tc_on_writable(edi_conn *c, void *user)
{
    (void)c;
    tconn *tc = user;
    atomic_fetch_add(&tc->writable, 1);
    tc_pump(tc);
}

static void tc_on_close(edi_conn *c, void *user, int reason)
{
    (void)c;
    tconn *tc = user;
    atomic_store(&tc->reason, reason);
    atomic_store(&tc->closed, 1);
    tc->c = NULL;
}

static const edi_conn_ops tc_ops = {
    .on_connected = tc_on_connected,
    .on_frame = tc_on_frame,
    .on_writable = tc_on_writable,
    .on_close = tc_on_close,
};

static void tc_init(tconn *tc, lt *t, unsigned behavior)
{
    memset(tc, 0, sizeof(*tc));
    tc->t = t;
    tc->behavior = behavior;
    tc->initial_mode = EDI_FRAMING_U32;
    atomic_init(&tc->reason, 1);
    if (behavior & TC_HOLD) {
        tc->held = calloc(TC_MAX_HELD, sizeof(*tc->held));
        assert_non_null(tc->held);
    }
}

static void tc_fini(tconn *tc)
{
    free(tc->held);
    free(tc->scratch);
}

/* A server: one listener whose accepted connection becomes `srv`. */
typedef struct server {
    lt *t;
    edi_listener *l;
    uint16_t port;
    tconn *srv;
    const edi_conn_ops *ops; /* tc_ops unless set */
    atomic_int accepted;
} server;

static void srv_on_accept(edi_listener *l, int fd,
                          const struct sockaddr_storage *peer, void *user)
{
    (void)l;
    server *s = user;
    assert_int_equal(peer->ss_family, AF_INET);
    edi_conn *c;
    assert_int_equal(edi_conn_adopt(s->t->loop, fd, s->ops ? s->ops : &tc_ops,
                                    s->srv, &c), 0);
    s->srv->c = c;
    edi_conn_set_framing(c, s->srv->initial_mode);
    atomic_store(&s->srv->connected, 1);
    atomic_fetch_add(&s->accepted, 1);
    if (s->srv->to_send > 0)
        tc_pump(s->srv);
}

static void srv_listen_fn(void *a)
{
    server *s = a;
    assert_int_equal(edi_loop_listen(s->t->loop, "127.0.0.1", 0, srv_on_accept, s,
                                     &s->l, &s->port), 0);
    assert_true(s->port != 0);
}

static void srv_close_fn(void *a)
{
    server *s = a;
    edi_listener_close(s->l);
    s->l = NULL;
}

static void server_start(server *s, lt *t, tconn *srv, const edi_conn_ops *ops)
{
    memset(s, 0, sizeof(*s));
    s->t = t;
    s->srv = srv;
    s->ops = ops;
    call_on(t, srv_listen_fn, s);
}

typedef struct connect_args {
    tconn *tc;
    uint16_t port;
    int rc;
    uint64_t timeout_ms; /* 0: 5000 */
} connect_args;

static void connect_fn(void *a)
{
    connect_args *ca = a;
    ca->rc = edi_loop_connect(ca->tc->t->loop, "127.0.0.1", ca->port,
                              ca->timeout_ms ? ca->timeout_ms : 5000, &tc_ops, ca->tc,
                              &ca->tc->c);
}

static void tc_connect(tconn *tc, uint16_t port)
{
    connect_args ca = { tc, port, 1, 0 };
    call_on(tc->t, connect_fn, &ca);
    assert_int_equal(ca.rc, 0);
    WAIT_UNTIL(atomic_load(&tc->connected) || atomic_load(&tc->closed));
    assert_true(atomic_load(&tc->connected));
}

static void tc_pump_fn(void *a) { tc_pump(a); }

static void tc_start_pump(tconn *tc, uint64_t n, size_t scratch_len)
{
    tc->to_send = n;
    tc->scratch = malloc(scratch_len ? scratch_len : 1);
    tc->scratch_len = scratch_len;
    assert_non_null(tc->scratch);
    call_on(tc->t, tc_pump_fn, tc);
}

static void tc_abort_fn(void *a)
{
    tconn *tc = a;
    if (tc->c != NULL)
        edi_conn_abort(tc->c, 0);
}

/* Closes tc (if still open) and waits for its on_close. */
static void tc_abort_wait(tconn *tc)
{
    call_on(tc->t, tc_abort_fn, tc);
    WAIT_UNTIL(atomic_load(&tc->closed));
}

typedef struct stats_args {
    lt *t;
    tconn *tc;
    edi_loop_stats ls;
    edi_conn_stats cs;
    edi_tcp_stats ts;
} stats_args;

static void stats_fn(void *a)
{
    stats_args *sa = a;
    edi_loop_get_stats(sa->t->loop, &sa->ls);
    edi_tcp_get_stats(sa->t->loop, &sa->ts);
    memset(&sa->cs, 0, sizeof(sa->cs));
    if (sa->tc != NULL && sa->tc->c != NULL)
        edi_conn_get_stats(sa->tc->c, &sa->cs);
}

static void get_stats(lt *t, tconn *tc, edi_loop_stats *ls, edi_conn_stats *cs)
{
    stats_args sa;
    memset(&sa, 0, sizeof(sa));
    sa.t = t;
    sa.tc = tc;
    call_on(t, stats_fn, &sa);
    if (ls != NULL)
        *ls = sa.ls;
    if (cs != NULL)
        *cs = sa.cs;
}

/* The loop's TCP data path counters, read on the loop thread. */
static void get_tcp_stats(lt *t, edi_tcp_stats *ts)
{
    stats_args sa;
    memset(&sa, 0, sizeof(sa));
    sa.t = t;
    call_on(t, stats_fn, &sa);
    *ts = sa.ts;
}

/* ---- plain blocking sockets ------------------------------------------------------ */

/* A plain socket connected to port; rcvbuf > 0 shrinks its receive buffer
 * first (the window a peer that does not read offers). */
static int plain_connect_rcvbuf(uint16_t port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (rcvbuf > 0)
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static int plain_connect(uint16_t port)
{
    return plain_connect_rcvbuf(port, 0);
}

/* A listening plain socket on an ephemeral port. */
static int plain_listen(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 8), 0);
    socklen_t l = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        assert_true(w > 0);
        b += w;
        n -= (size_t)w;
    }
}

static void read_all(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n > 0) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        assert_true(r > 0);
        b += r;
        n -= (size_t)r;
    }
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#endif
