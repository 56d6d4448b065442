/* SPDX-License-Identifier: Apache-2.0 */
/* The calls other threads make into the node: posted to the loop, waited
 * for with a timeout (inline on the loop thread for the callback-safe
 * ones); sends blocked on a full queue; the public calls made through
 * them. */
#include "runtime/node_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dataplane/reactor/rxbuf.h"
#include "dataplane/uring/tcp.h"

/* How long a stop may take to say goodbye: the close's flush time, and
 * this much for the rest. */
#define NODE_STOP_SLACK_MS 1000u
/* Slack added to a call's own timeout before the waiting thread gives up
 * on the loop (the loop times the operation itself). */
#define NODE_CALL_SLACK_MS 2000

typedef enum call_kind {
    C_CONNECT = 1,
    C_PING,
    C_DISCONNECT,
    C_SET_COOKIE,
    C_NODES,
    C_MONITOR_NODES,
    C_MONITOR_NODE,
    C_DEMONITOR,
    C_SET_HANDLER,
    C_SET_WRITABLE,
    C_SEND_REG,
    C_STATS,
    C_PEER_STATS,
    C_STOP,
} call_kind;

/* ---- calls into the loop ------------------------------------------------- */

typedef struct api_call {
    atomic_int refs; /* the waiting thread and the loop */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rc;
    char detail[512];
    edist_node *node;
    call_kind kind;
    char peer[EDI_HS_NAME_MAX_BYTES + 1];
    char text[EDI_HS_NAME_MAX_BYTES + 1]; /* cookie or registered name */
    bool has_peer;
    uint32_t timeout_ms;
    unsigned selectors;
    edist_node_list list;
    edist_node_event_fn event_fn;
    edist_node_message_fn msg_fn;
    edist_node_writable_fn writable_fn;
    void *user;
    uint64_t handle;
    uint8_t *payload;
    size_t payload_len;
    uint32_t sender;
    /* A blocked send (wait_ms > 0): the loop retries it when the peer
     * drains, and gives up at wait_timer. */
    int wait_ms;
    edi_timer wait_timer;
    uint64_t wait_id;
    uint64_t stop_deadline_ns; /* C_STOP: the end of close_flush_ms */
    edi_rt_mark *stop_mark;    /* C_STOP: the runtime's work to wait for */
    bool stop_records;         /* C_STOP: requests done, records marked */
    int stop_err;              /* C_STOP: the net kernel's shutdown result */
    char stop_detail[160];
    edist_node_stats stats;
    edist_node_peer_stats peer_stats;
} api_call;

static api_call *call_new(edist_node *n, call_kind kind)
{
    api_call *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    atomic_init(&c->refs, 2);
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    c->node = n;
    c->kind = kind;
    edi_timer_init(&c->wait_timer);
    return c;
}

static void call_unref(api_call *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    edist_node_list_free(&c->list);
    free(c->payload);
    free(c->stop_mark);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

/* The loop's side is finished with c: publish the result. */
static void call_complete(api_call *c, int rc, const char *detail)
{
    pthread_mutex_lock(&c->mu);
    c->rc = rc;
    snprintf(c->detail, sizeof c->detail, "%s", detail ? detail : "");
    c->done = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    call_unref(c);
}

static void call_done_cb(void *arg, int err, const char *detail)
{
    call_complete(arg, err, detail);
}

static void stop_done(void *arg, int err, const char *detail);
static void stop_after_thread_sends(edi_loop *loop, edi_timer *t, void *arg);

/* ---- blocked sends (loop thread) ----------------------------------------- */

static void send_wait_done(void *arg, int err, const char *detail);

/* Retry c's send; on EDIST_EAGAIN wait for the peer to drain again.
 * Completes c unless it is left waiting. */
static void send_retry(api_call *c)
{
    edi_nk *nk = c->node->nk;
    for (;;) {
        edist_clear_error();
        int rc = edi_nk_send_reg_from(nk, c->peer, c->sender, c->text,
                                      c->payload, c->payload_len);
        if (rc == EDIST_EAGAIN) {
            rc = edi_nk_when_writable(nk, c->peer, send_wait_done, c,
                                      &c->wait_id);
            if (rc == 0)
                return; /* waiting */
            if (rc == 1)
                continue; /* drained meanwhile */
        }
        edi_loop_timer_cancel(c->node->loop, &c->wait_timer);
        call_complete(c, rc, rc ? edist_last_error() : "");
        return;
    }
}

static void send_wait_done(void *arg, int err, const char *detail)
{
    api_call *c = arg;
    c->wait_id = 0;
    if (err) {
        edi_loop_timer_cancel(c->node->loop, &c->wait_timer);
        call_complete(c, err, detail);
        return;
    }
    send_retry(c);
}

static void send_wait_timeout(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    api_call *c = arg;
    if (c->wait_id)
        edi_nk_cancel_writable(c->node->nk, c->wait_id);
    c->wait_id = 0;
    char detail[EDI_HS_NAME_MAX_BYTES + 80];
    snprintf(detail, sizeof detail,
             "the send queue to %s did not drain within %d ms", c->peer,
             c->wait_ms);
    call_complete(c, EDIST_ETIMEDOUT, detail);
}

static void writable_cb(void *user, const char *peer)
{
    edist_node *n = user;
    edist_node_writable_fn fn = n->writable_fn;
    if (fn)
        fn(n->writable_user, peer);
}

/* Runs on the loop thread. */
static void call_run(edi_loop *loop, void *arg)
{
    (void)loop;
    api_call *c = arg;
    edist_node *n = c->node;
    edi_nk *nk = n->nk;
    int rc = 0;
    edist_clear_error();
    switch (c->kind) {
    case C_CONNECT:
        rc = edi_nk_connect(nk, c->peer, c->timeout_ms, call_done_cb, c);
        if (rc == 0)
            return; /* completes through call_done_cb */
        break;
    case C_PING:
        rc = edi_nk_ping(nk, c->peer, c->timeout_ms, call_done_cb, c);
        if (rc == 0)
            return;
        break;
    case C_DISCONNECT:
        rc = edi_nk_disconnect(nk, c->peer);
        break;
    case C_SET_COOKIE:
        rc = c->has_peer ? edi_cookies_set(n->cookies, c->peer, c->text)
                         : edi_cookies_set_default(n->cookies, c->text);
        break;
    case C_NODES:
        rc = edi_nk_nodes(nk, c->selectors, &c->list);
        break;
    case C_MONITOR_NODES:
        rc = edi_nk_monitor_nodes(nk, c->selectors, c->event_fn, c->user,
                                  &c->handle);
        break;
    case C_MONITOR_NODE:
        rc = edi_nk_monitor_node(nk, c->peer, c->event_fn, c->user, &c->handle);
        break;
    case C_DEMONITOR:
        rc = edi_nk_demonitor(nk, c->handle);
        break;
    case C_SET_HANDLER:
        edi_nk_set_message_handler(nk, c->msg_fn, c->user);
        break;
    case C_SET_WRITABLE:
        n->writable_fn = c->writable_fn;
        n->writable_user = c->user;
        edi_nk_set_writable_handler(nk, c->writable_fn ? writable_cb : NULL, n);
        break;
    case C_SEND_REG:
        rc = edi_nk_send_reg_from(nk, c->peer, c->sender, c->text, c->payload,
                                  c->payload_len);
        if (rc == EDIST_EAGAIN && c->wait_ms > 0) {
            if (edi_loop_timer_start(n->loop, &c->wait_timer,
                                     (uint64_t)c->wait_ms, 0, send_wait_timeout,
                                     c) != 0)
                break;
            send_retry(c);
            return; /* completes from send_retry or later */
        }
        break;
    case C_STATS: {
        edi_nk_get_stats(nk, &c->stats);
        edi_tcp_stats ts;
        edi_tcp_get_stats(n->loop, &ts);
        c->stats.rx_buffers = ts.rx_buffers_total;
        c->stats.rx_buffers_held = ts.rx_buffers_held;
        c->stats.rx_starved = ts.rx_starved;
        edi_rxbuf_recycle_stats rs;
        edi_rxbuf_recycle_stats_get(&rs);
        c->stats.rx_recycle_held = rs.held;
        c->stats.rx_recycle_held_bytes = rs.held_bytes;
        c->stats.rx_recycle_reused = rs.reused;
        c->stats.rx_recycle_freed = rs.freed;
        c->stats.rx_polled_reads = ts.rx_polled_reads;
        c->stats.rx_holds = ts.rx_holds;
        c->stats.closing_connections = ts.conns_closing;
        c->stats.closes_cut = ts.closes_cut;
        c->stats.shard_backlog = edi_rt_xbacklog(n->rt);
        c->stats.shard_backlog_max = n->backlog_max;
        c->stats.auto_connect_waiting = n->deferred_count;
        c->stats.auto_connect_waiting_bytes = n->deferred_bytes;
        c->stats.auto_connect_waiting_max = n->deferred_count_max;
        c->stats.auto_connect_refused = n->auto_connect_refused;
        break;
    }
    case C_PEER_STATS:
        rc = edi_nk_get_peer_stats(nk, c->peer, &c->peer_stats);
        break;
    case C_STOP:
        if (n->listener) {
            edi_listener_close(n->listener);
            n->listener = NULL;
        }
        c->stop_deadline_ns = edi_now_ns() + (uint64_t)edi_node_close_flush_ms(n) * 1000000u;
        c->stop_mark = malloc(sizeof *c->stop_mark);
        if (c->stop_mark)
            edi_rt_mark_requests(n->rt, c->stop_mark);
        stop_after_thread_sends(n->loop, &c->wait_timer, c);
        return;
    }
    call_complete(c, rc, rc ? edist_last_error() : "");
}

/* A graceful stop first lets what the runtime held when it began reach
 * the net kernel, within close_flush_ms: the requests of thread processes
 * queued by then (sends, queued or held back by a busy peer: edist_send
 * returned 0 for them), every one up to the last queued then, in each
 * shard's order; then the records the rings to shard 0 had taken by the
 * time those were done (they carry those sends to the node). Work
 * started later does not make it wait longer. Then the net kernel flushes its own
 * queues, in close_flush_ms of its own. Stopped at once, a busy peer lost
 * all but ~1,000 of 50,000 sends of a thread process; with only the
 * requests waited for, the last ~16 (on their way from its shard). */
static void stop_after_thread_sends(edi_loop *loop, edi_timer *t, void *arg)
{
    api_call *c = arg;
    edist_node *n = c->node;
    edi_rt_mark *m = c->stop_mark;
    bool done = m == NULL; /* no memory for the mark: no wait */
    if (!done && !c->stop_records && edi_rt_requests_done(n->rt, m)) {
        edi_rt_mark_records(n->rt, m);
        c->stop_records = true;
    }
    if (!done && c->stop_records)
        done = edi_rt_records_done(n->rt, m);
    if (!done && edi_now_ns() < c->stop_deadline_ns) {
        edi_loop_timer_start(loop, t, 1, 0, stop_after_thread_sends, c);
        return;
    }
    if (!done)
        edi_logf(&n->log, EDIST_LOG_WARNING,
                 "stop: sends of thread processes or between shards still held back in "
                 "the runtime after close_flush_time (%u ms); what is left is dropped "
                 "(counted in dropped)",
                 edi_node_close_flush_ms(n));
    free(c->stop_mark);
    c->stop_mark = NULL;
    edi_nk_shutdown(n->nk, edi_node_close_flush_ms(n) + NODE_STOP_SLACK_MS, stop_done, c);
}

/* The connections closed gracefully still drain what their peers send
 * until those close too (or their close time passes): the loop runs on
 * until none is left. Stopped at once, the unread bytes made each close a
 * reset, which destroys the tail still in our socket that the flush had
 * just handed over. */
static void stop_after_closing(edi_loop *loop, edi_timer *t, void *arg)
{
    api_call *c = arg;
    edist_node *n = c->node;
    edi_tcp_stats ts;
    edi_tcp_get_stats(loop, &ts);
    if (ts.conns_closing > 0 && edi_now_ns() < c->stop_deadline_ns) {
        edi_loop_timer_start(loop, t, 1, 0, stop_after_closing, c);
        return;
    }
    edi_loop_stop(n->loop);
    call_complete(c, c->stop_err, c->stop_detail);
}

static void stop_done(void *arg, int err, const char *detail)
{
    api_call *c = arg;
    edist_node *n = c->node;
    /* Unregister last: peers learn we are gone from the connections
     * closing, and the name stays ours until then. */
    if (n->epmd_conn) {
        edi_conn_abort(n->epmd_conn, 0);
        n->epmd_conn = NULL;
    }
    c->stop_err = err;
    snprintf(c->stop_detail, sizeof c->stop_detail, "%s", detail ? detail : "");
    c->stop_deadline_ns = edi_now_ns() + (uint64_t)edi_node_close_flush_ms(n) * 1000000u;
    stop_after_closing(n->loop, &c->wait_timer, c);
}

/* Blocking calls may not run on the loop thread: they would wait for the
 * loop that is running them. */
static int call_blocking_check(edist_node *n)
{
    if (!n)
        return edist_set_error(EDIST_EINVAL, "no node");
    if (edi_loop_on_thread(n->loop))
        return edist_set_error(
            EDIST_EINVAL,
            "blocking node call from the node's own thread (a callback)");
    return 0;
}

/* Run c on the loop and wait up to wait_ms for it. Consumes the caller's
 * reference. From the loop thread, runs inline (callback-safe calls). */
static int call_exec_mode(api_call *c, int wait_ms, bool allow_inline)
{
    edist_node *n = c->node;
    if (allow_inline && edi_loop_on_thread(n->loop)) {
        call_run(n->loop, c);
    } else if (edi_loop_post(n->loop, call_run, c) != 0) {
        call_unref(c); /* the loop's reference */
        call_unref(c);
        return edist_set_error(EDIST_EAGAIN,
                               "node is busy (request queue full)");
    }
    /* The condition variable waits on CLOCK_MONOTONIC, edi_now_ns's. */
    uint64_t due_ns = edi_now_ns() + (uint64_t)wait_ms * 1000000u;
    struct timespec ts = {.tv_sec = (time_t)(due_ns / 1000000000u),
                          .tv_nsec = (long)(due_ns % 1000000000u)};
    pthread_mutex_lock(&c->mu);
    while (!c->done) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT)
            break;
    }
    bool done = c->done;
    int rc = c->rc;
    char detail[sizeof c->detail];
    memcpy(detail, c->detail, sizeof detail);
    pthread_mutex_unlock(&c->mu);
    if (!done)
        return edist_set_error(EDIST_ETIMEDOUT,
                               "node did not answer within %d ms", wait_ms);
    if (rc)
        return edist_set_error(rc, "%s", detail);
    return 0;
}

static int call_exec(api_call *c, int wait_ms)
{
    return call_exec_mode(c, wait_ms, true);
}

static int timeout_or_default(int timeout_ms)
{
    return timeout_ms > 0 ? timeout_ms : EDIST_NODE_CALL_TIMEOUT_MS_DEFAULT;
}

static int copy_name(char *dst, size_t cap, const char *src, const char *what)
{
    if (!src || strlen(src) >= cap)
        return edist_set_error(EDIST_EINVAL, "bad %s", what);
    memcpy(dst, src, strlen(src) + 1);
    return 0;
}

static int peer_call(edist_node *node, call_kind kind, const char *peer,
                     int timeout_ms)
{
    int rc = call_blocking_check(node);
    if (rc)
        return rc;
    api_call *c = call_new(node, kind);
    if (!c)
        return edist_set_error(EDIST_ENOMEM, "no memory");
    if (copy_name(c->peer, sizeof c->peer, peer, "node name")) {
        call_unref(c);
        call_unref(c);
        return EDIST_EINVAL;
    }
    int t = timeout_or_default(timeout_ms);
    c->timeout_ms = (uint32_t)t;
    rc = call_exec(c, t + NODE_CALL_SLACK_MS);
    call_unref(c);
    return rc;
}

int edist_node_connect(edist_node *node, const char *peer, int timeout_ms)
{
    return peer_call(node, C_CONNECT, peer, timeout_ms);
}

int edist_node_ping(edist_node *node, const char *peer, int timeout_ms)
{
    return peer_call(node, C_PING, peer, timeout_ms);
}

/* For the callback-safe calls: run (inline on the loop thread, else
 * posted) and wait the default time. */
static int quick_call(api_call *c)
{
    return call_exec(c, EDIST_NODE_CALL_TIMEOUT_MS_DEFAULT);
}

#define NEW_CALL(node, kind)                                                   \
    api_call *c;                                                               \
    if (!(node))                                                               \
        return edist_set_error(EDIST_EINVAL, "no node");                       \
    c = call_new((node), (kind));                                              \
    if (!c)                                                                    \
    return edist_set_error(EDIST_ENOMEM, "no memory")

#define DROP_BOTH(c)                                                           \
    do {                                                                       \
        call_unref(c);                                                         \
        call_unref(c);                                                         \
    } while (0)

int edist_node_disconnect(edist_node *node, const char *peer)
{
    NEW_CALL(node, C_DISCONNECT);
    if (copy_name(c->peer, sizeof c->peer, peer, "node name")) {
        DROP_BOTH(c);
        return EDIST_EINVAL;
    }
    int rc = quick_call(c);
    call_unref(c);
    return rc;
}

int edist_node_set_cookie(edist_node *node, const char *peer,
                          const char *cookie)
{
    int rc = edi_cookie_check(cookie);
    if (rc)
        return rc;
    NEW_CALL(node, C_SET_COOKIE);
    if ((peer && copy_name(c->peer, sizeof c->peer, peer, "node name")) ||
        copy_name(c->text, sizeof c->text, cookie, "cookie")) {
        DROP_BOTH(c);
        return EDIST_EINVAL;
    }
    c->has_peer = peer != NULL;
    rc = quick_call(c);
    call_unref(c);
    return rc;
}

int edist_node_nodes(edist_node *node, unsigned selectors, edist_node_list *out)
{
    if (!out)
        return edist_set_error(EDIST_EINVAL, "nodes: no output");
    out->count = 0;
    out->names = NULL;
    NEW_CALL(node, C_NODES);
    c->selectors = selectors;
    int rc = quick_call(c);
    if (rc == 0) {
        pthread_mutex_lock(&c->mu);
        *out = c->list;
        c->list.count = 0;
        c->list.names = NULL;
        pthread_mutex_unlock(&c->mu);
    }
    call_unref(c);
    return rc;
}

void edist_node_list_free(edist_node_list *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++)
        free(list->names[i]);
    free(list->names);
    list->names = NULL;
    list->count = 0;
}

int edist_node_monitor_nodes(edist_node *node, unsigned kinds,
                             edist_node_event_fn fn, void *user,
                             uint64_t *handle)
{
    NEW_CALL(node, C_MONITOR_NODES);
    c->selectors = kinds;
    c->event_fn = fn;
    c->user = user;
    int rc = quick_call(c);
    if (rc == 0 && handle)
        *handle = c->handle;
    call_unref(c);
    return rc;
}

int edist_node_monitor_node(edist_node *node, const char *peer,
                            edist_node_event_fn fn, void *user,
                            uint64_t *handle)
{
    NEW_CALL(node, C_MONITOR_NODE);
    if (copy_name(c->peer, sizeof c->peer, peer, "node name")) {
        DROP_BOTH(c);
        return EDIST_EINVAL;
    }
    c->event_fn = fn;
    c->user = user;
    int rc = quick_call(c);
    if (rc == 0 && handle)
        *handle = c->handle;
    call_unref(c);
    return rc;
}

int edist_node_demonitor(edist_node *node, uint64_t handle)
{
    NEW_CALL(node, C_DEMONITOR);
    c->handle = handle;
    int rc = quick_call(c);
    call_unref(c);
    return rc;
}

int edist_node_set_message_handler(edist_node *node, edist_node_message_fn fn,
                                   void *user)
{
    NEW_CALL(node, C_SET_HANDLER);
    c->msg_fn = fn;
    c->user = user;
    int rc = quick_call(c);
    call_unref(c);
    return rc;
}

int edist_node_send_reg(edist_node *node, const char *peer, const char *name,
                        const uint8_t *payload, size_t payload_len)
{
    return edist_node_send_reg_opts(node, peer, name, payload, payload_len,
                                    NULL);
}

int edist_node_send_reg_opts(edist_node *node, const char *peer,
                             const char *name, const uint8_t *payload,
                             size_t payload_len,
                             const edist_node_send_opts *opts)
{
    if (!payload || !payload_len)
        return edist_set_error(EDIST_EINVAL, "send_reg: no payload");
    if (opts && opts->sender == EDI_NK_KERNEL_PID_ID)
        return edist_set_error(
            EDIST_EINVAL, "sender %u is the node's net_kernel", opts->sender);
    int wait_ms = opts && opts->wait_ms > 0 ? opts->wait_ms : 0;
    if (wait_ms > 0) {
        int rc = call_blocking_check(node);
        if (rc)
            return rc;
    }
    NEW_CALL(node, C_SEND_REG);
    c->sender = opts ? opts->sender : 0;
    c->wait_ms = wait_ms;
    if (copy_name(c->peer, sizeof c->peer, peer, "node name") ||
        copy_name(c->text, sizeof c->text, name, "registered name")) {
        DROP_BOTH(c);
        return EDIST_EINVAL;
    }
    c->payload = malloc(payload_len);
    if (!c->payload) {
        DROP_BOTH(c);
        return edist_set_error(EDIST_ENOMEM, "no memory");
    }
    memcpy(c->payload, payload, payload_len);
    c->payload_len = payload_len;
    /* The loop gives up at wait_ms itself; wait a little longer here. */
    int rc = wait_ms > 0
                 ? call_exec(c, wait_ms + EDIST_NODE_CALL_TIMEOUT_MS_DEFAULT)
                 : quick_call(c);
    call_unref(c);
    return rc;
}

int edist_node_set_writable_handler(edist_node *node, edist_node_writable_fn fn,
                                    void *user)
{
    NEW_CALL(node, C_SET_WRITABLE);
    c->writable_fn = fn;
    c->user = user;
    int rc = quick_call(c);
    call_unref(c);
    return rc;
}

int edist_node_get_peer_stats(edist_node *node, const char *peer,
                              edist_node_peer_stats *out)
{
    if (!out)
        return edist_set_error(EDIST_EINVAL, "peer stats: no output");
    memset(out, 0, sizeof *out);
    NEW_CALL(node, C_PEER_STATS);
    if (copy_name(c->peer, sizeof c->peer, peer, "node name")) {
        DROP_BOTH(c);
        return EDIST_EINVAL;
    }
    int rc = quick_call(c);
    if (rc == 0) {
        pthread_mutex_lock(&c->mu);
        *out = c->peer_stats;
        pthread_mutex_unlock(&c->mu);
    }
    call_unref(c);
    return rc;
}

int edist_node_get_stats(edist_node *node, edist_node_stats *out)
{
    if (!out)
        return edist_set_error(EDIST_EINVAL, "stats: no output");
    NEW_CALL(node, C_STATS);
    int rc = quick_call(c);
    if (rc == 0) {
        pthread_mutex_lock(&c->mu);
        *out = c->stats;
        pthread_mutex_unlock(&c->mu);
    }
    call_unref(c);
    return rc;
}

int edi_node_call_wait_running(edist_node *n)
{
    api_call *c = call_new(n, C_STATS);
    int rc = c ? call_exec_mode(c, EDIST_NODE_CALL_TIMEOUT_MS_DEFAULT, false)
               : edist_set_error(EDIST_ENOMEM, "no memory");
    if (c)
        call_unref(c);
    return rc;
}

bool edi_node_call_stop(edist_node *n)
{
    api_call *c = call_new(n, C_STOP);
    bool waited = false;
    if (c) {
        /* the runtime's flush, the net kernel's, the connections' drain */
        int rc = call_exec(c, (int)(3 * edi_node_close_flush_ms(n) + NODE_STOP_SLACK_MS) +
                                  NODE_CALL_SLACK_MS);
        call_unref(c);
        waited = rc == 0;
    }
    return waited;
}
