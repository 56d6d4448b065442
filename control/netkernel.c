/* SPDX-License-Identifier: Apache-2.0 */
/* The net kernel's life (new, shutdown, free), its configuration hooks,
 * stats, the ticker and housekeeping, and the helpers all its parts share:
 * rate-limited log lines and the terms it builds. */
#include "control/netkernel_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ---- logging ------------------------------------------------------------- */

static const char *const rl_what[NK_RL_COUNT] = {
    [NK_RL_EVICTED] = "connections evicted before their name",
    [NK_RL_REFUSED] = "incoming connections refused",
    [NK_RL_FIRST_MESSAGE] = "connections closed without a name in time",
    [NK_RL_INCOMING_FAILED] = "failed incoming handshakes",
};

static bool ratelog_take(edi_nk *nk, nk_rl_kind kind)
{
    return edi_ratelimit_take(&nk->ratelog[kind], edi_loop_now_ms(nk->loop),
                              NK_LOG_BURST, NK_LOG_INTERVAL_MS);
}

/* A line that a peer can make us write: rate-limited per kind; the first
 * line after a suppression says how many were left out. */
__attribute__((format(printf, 4, 5))) void
edi_nki_log_limited(edi_nk *nk, nk_rl_kind kind, edist_log_level lvl,
                    const char *fmt, ...)
{
    if (!edi_log_on(&nk->cfg.log, lvl))
        return;
    edi_ratelimit *r = &nk->ratelog[kind];
    if (!ratelog_take(nk, kind)) {
        r->suppressed++;
        return;
    }
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (r->suppressed && n >= 0 && (size_t)n < sizeof line)
        snprintf(line + n, sizeof line - (size_t)n,
                 " (and %llu more %s not logged one by one)",
                 (unsigned long long)r->suppressed, rl_what[kind]);
    r->suppressed = 0;
    nk_log(nk, lvl, "%s", line);
}

/* Housekeeping: tell the number of lines left out once the budget allows,
 * so that a burst that ends is accounted for. */
static void ratelog_flush(edi_nk *nk)
{
    for (int k = 0; k < NK_RL_COUNT; k++) {
        edi_ratelimit *r = &nk->ratelog[k];
        if (!r->suppressed || !ratelog_take(nk, (nk_rl_kind)k))
            continue;
        nk_log(nk,
               k == NK_RL_EVICTED || k == NK_RL_REFUSED ? EDIST_LOG_WARNING
                                                        : EDIST_LOG_INFO,
               "%llu more %s (not logged one by one)",
               (unsigned long long)r->suppressed, rl_what[k]);
        r->suppressed = 0;
    }
}

/* "name@host" or the address when the name is not known yet. */
const char *edi_nki_link_label(const edi_link *l)
{
    return l->peer_name[0] ? l->peer_name : l->addr;
}

/* ---- tick decision ------------------------------------------------------- */

edi_tick_action edi_tick_check(edi_tick_state *st, uint64_t read_total,
                               uint64_t written_total, bool send_queue_empty,
                               bool peer_hidden, uint32_t intensity)
{
    bool read_any = read_total != st->read_seen;
    bool wrote_any = written_total != st->written_seen;
    st->read_seen = read_total;
    st->written_seen = written_total;
    if (read_any) {
        st->silent = 0;
    } else if (++st->silent >= intensity) {
        /* dist_util: nothing read during the last `intensity` ticks. */
        return EDI_TICK_TIMEOUT;
    }
    if ((!wrote_any && send_queue_empty) || (peer_hidden && !read_any))
        return EDI_TICK_SEND;
    return EDI_TICK_NOTHING;
}

/* ---- terms we build ------------------------------------------------------ */

edist_atom edi_nki_self_atom(const edi_nk *nk)
{
    edist_atom a = {
        .ptr = nk->name, .len = (uint32_t)strlen(nk->name), .latin1 = 0};
    return a;
}

/* A fresh reference of this node. Three words as erts makes them; the
 * first holds 18 significant bits. */
void edi_nki_make_ref(edi_nk *nk, uint32_t words[3])
{
    uint64_t c = ++nk->ref_counter;
    words[0] = (uint32_t)(c & 0x3ffff);
    words[1] = (uint32_t)(c >> 18);
    words[2] = nk->ref_salt;
}

int edi_nki_enc_ref(edi_nk *nk, edist_buf *b, const uint32_t words[3])
{
    edist_ref r = {
        .node = edi_nki_self_atom(nk), .creation = nk->cfg.creation, .len = 3};
    memcpy(r.ids, words, 3 * sizeof words[0]);
    return edist_enc_ref(b, &r);
}

int edi_nki_enc_pid(edi_nk *nk, edist_buf *b, uint32_t id)
{
    edist_pid p = {.node = edi_nki_self_atom(nk),
                   .id = id,
                   .serial = 0,
                   .creation = nk->cfg.creation};
    return edist_enc_pid(b, &p);
}

edist_term_view edi_nki_buf_view(const edist_buf *b, size_t from)
{
    edist_term_view v = {.ptr = b->data + from, .len = b->len - from};
    return v;
}

/* ---- ticks and housekeeping ---------------------------------------------- */

static void tick_all(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    edi_nk *nk = arg;
    /* Ticks first, then the links that timed out, from the head after
     * each: the nodedown callbacks of one may end the next. */
    for (edi_link *l = nk->links; l != NULL; l = l->next) {
        l->tick_expired = false;
        if (l->phase == L_UP && l->conn && !l->dead) {
            edi_tick_action a =
                edi_tick_check(&l->tick, l->frames_in, l->frames_out,
                               edi_conn_send_queue_bytes(l->conn) == 0 &&
                                   edi_sendq_idle(l->data.sq),
                               l->hidden, EDI_NK_TICK_INTENSITY);
            if (a == EDI_TICK_TIMEOUT) {
                l->tick_expired = true;
            } else if (a == EDI_TICK_SEND) {
                if (edi_conn_send_frame(l->conn, NULL, 0) == 0) {
                    l->frames_out++;
                    l->tick.written_seen =
                        l->frames_out; /* a tick is not traffic */
                    nk->stats.ticks_sent++;
                    l->data.ticks_out++;
                }
            }
        }
    }
    for (edi_link *l = nk->links; l != NULL;) {
        if (!l->tick_expired || l->dead) {
            l = l->next;
            continue;
        }
        l->tick_expired = false;
        nk_log(nk, EDIST_LOG_WARNING,
               "%s not responding: nothing received for %u ms, removing the connection",
               l->peer_name, nk->cfg.ticktime_ms);
        edi_nki_link_down(l, "net_tick_timeout", false);
        l = nk->links;
    }
}

static void housekeeping(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    edi_nk *nk = arg;
    uint64_t now = edi_loop_now_ms(nk->loop);
    ratelog_flush(nk);
    edi_peer *p = nk->table.head;
    while (p) {
        edi_peer *next = p->list_next;
        if (p->state == EDI_PEER_PENDING && !p->owner &&
            p->orphan_deadline_ms && now >= p->orphan_deadline_ms) {
            char detail[EDI_HS_NAME_MAX_BYTES + 80];
            snprintf(detail, sizeof detail,
                     "%s refused our connection and did not connect to us",
                     p->name);
            edi_nki_peer_waiters_done(nk, p, EDIST_ETIMEDOUT, detail);
        }
        p = next;
    }
}

/* ---- the process runtime and the message handler ------------------------- */

void edi_nk_set_fastlane(edi_nk *nk, const edi_nk_fastlane *f)
{
    nk->fast = *f;
    if (!nk->fast.setup_ms)
        nk->fast.setup_ms = 10000;
    if (!nk->fast.hold_limit_bytes)
        nk->fast.hold_limit_bytes = (size_t)64 << 20;
}

void edi_nk_set_runtime(edi_nk *nk, const edi_nk_rt_ops *ops, void *user)
{
    nk->rt_ops = ops;
    nk->rt_user = user;
    for (edi_link *l = nk->links; l; l = l->next)
        if (l->phase == L_UP && !l->dead && !l->keyed)
            edi_nki_link_set_key(nk, l);
}

void edi_nk_set_message_handler(edi_nk *nk, edist_node_message_fn fn,
                                void *user)
{
    nk->msg_fn = fn;
    nk->msg_user = user;
}

/* ---- stats --------------------------------------------------------------- */

void edi_nk_get_stats(const edi_nk *nk, edist_node_stats *out)
{
    *out = nk->stats;
    edi_lane_stats ls;
    edi_lane_get_stats(nk->tcp_lane, &ls);
    out->lane_queue_full = ls.tx_eagain;
    out->send_queue_bytes = 0;
    out->send_queue_bytes_max_peer = 0;
    for (const edi_link *l = nk->links; l; l = l->next) {
        uint64_t b = edi_sendq_bytes(l->data.sq);
        out->send_queue_bytes += b;
        if (b > out->send_queue_bytes_max_peer)
            out->send_queue_bytes_max_peer = b;
    }
}

int edi_nk_get_peer_stats(const edi_nk *nk, const char *peer,
                          edist_node_peer_stats *out)
{
    memset(out, 0, sizeof *out);
    edi_link *l = edi_nki_up_link((edi_nk *)nk, peer ? peer : "");
    if (!l)
        return edist_set_error(EDIST_ENOTFOUND, "not connected to %s",
                               peer ? peer : "");
    edi_sendq_stats q;
    edi_sendq_get_stats(l->data.sq, &q);
    out->flags = l->flags;
    out->send_queue_bytes = q.bytes_pending;
    out->send_queue_messages = q.messages_pending;
    out->send_queue_senders = q.senders_active;
    out->send_queue_limit_bytes = q.limit_bytes;
    out->send_queue_max_bytes = q.max_bytes_pending;
    out->sends_busy = q.refused;
    out->messages_sent = l->data.messages_out;
    out->fragments_sent = l->data.fragments_out;
    out->fragmented_messages_sent = l->data.fragmented_out;
    out->messages_received = l->data.messages_in;
    out->fragments_received = l->data.fragments_in;
    out->fragmented_messages_received = l->data.fragmented_in;
    out->send_sequences_waited = q.sequences_waited;
    out->reassembly_sequences = edi_dist_reasm_open_sequences(l->data.reasm);
    out->reassembly_bytes = edi_dist_reasm_buffered_bytes(l->data.reasm);
    out->bytes_sent = l->data.bytes_out;
    out->bytes_received = l->data.bytes_in;
    out->ticks_sent = l->data.ticks_out;
    out->ticks_received = l->data.ticks_in;
    out->connection_id = l->peer ? l->peer->conn_id : 0;
    if (l->data.send_wait) {
        const edi_hist *h = l->data.send_wait;
        out->send_wait_count = atomic_load_explicit(&h->count, memory_order_relaxed);
        out->send_wait_p50_ns = edi_hist_quantile(h, 0.50);
        out->send_wait_p90_ns = edi_hist_quantile(h, 0.90);
        out->send_wait_p99_ns = edi_hist_quantile(h, 0.99);
        out->send_wait_p999_ns = edi_hist_quantile(h, 0.999);
        out->send_wait_max_ns = atomic_load_explicit(&h->max, memory_order_relaxed);
    }
    return 0;
}

/* ---- life ---------------------------------------------------------------- */

int edi_nk_new(const edi_nk_config *cfg, edi_nk **out)
{
    if (!cfg || !cfg->loop || !cfg->name || !cfg->cookies)
        return edist_set_error(EDIST_EINVAL, "net kernel: incomplete config");
    edi_nk *nk = calloc(1, sizeof *nk);
    if (!nk)
        return edist_set_error(EDIST_ENOMEM, "net kernel: no memory");
    nk->cfg = *cfg;
    snprintf(nk->name, sizeof nk->name, "%s", cfg->name);
    nk->cfg.name = nk->name;
    nk->loop = cfg->loop;
    if (!nk->cfg.ticktime_ms)
        nk->cfg.ticktime_ms = EDIST_NODE_TICKTIME_MS_DEFAULT;
    if (!nk->cfg.setuptime_ms)
        nk->cfg.setuptime_ms = EDIST_NODE_SETUPTIME_MS_DEFAULT;
    if (!nk->cfg.first_message_time_ms)
        nk->cfg.first_message_time_ms =
            EDIST_NODE_FIRST_MESSAGE_TIME_MS_DEFAULT;
    if (nk->cfg.first_message_time_ms > nk->cfg.setuptime_ms)
        nk->cfg.first_message_time_ms = nk->cfg.setuptime_ms;
    if (!nk->cfg.close_flush_ms)
        nk->cfg.close_flush_ms = EDIST_NODE_CLOSE_FLUSH_MS_DEFAULT;
    if (!nk->cfg.max_handshakes)
        nk->cfg.max_handshakes = EDIST_NODE_MAX_HANDSHAKES_DEFAULT;
    if (!nk->cfg.max_handshakes_per_address)
        nk->cfg.max_handshakes_per_address =
            EDIST_NODE_MAX_HANDSHAKES_PER_ADDRESS_DEFAULT;
    int rc = edi_ct_init(&nk->table, 0);
    if (rc) {
        free(nk);
        return rc;
    }
    edist_buf_init(&nk->out);
    edist_buf_init(&nk->scratch);
    if (getrandom(&nk->ref_salt, sizeof nk->ref_salt, 0) != sizeof nk->ref_salt)
        nk->ref_salt = (uint32_t)edi_now_ms() ^ (uint32_t)(uintptr_t)nk;
    nk->next_pid_id = NK_FIRST_SPAWN_PID_ID;
    edist_pid self = {.node = edi_nki_self_atom(nk),
                      .id = EDI_NK_SELF_PID_ID,
                      .serial = 0,
                      .creation = nk->cfg.creation};
    rc = edi_dist_pid_view(&self, &nk->self_scratch, &nk->self_pid);
    if (rc == 0) {
        edist_pid kernel = self;
        kernel.id = EDI_NK_KERNEL_PID_ID;
        rc = edi_dist_pid_view(&kernel, &nk->kernel_scratch, &nk->kernel_pid);
    }
    if (rc == 0 && nk->cfg.fragment_bytes &&
        nk->cfg.fragment_bytes < EDI_SENDQ_FRAGMENT_BYTES_MIN)
        rc = edist_set_error(
            EDIST_EINVAL, "fragment size %zu below the minimum %u",
            nk->cfg.fragment_bytes, EDI_SENDQ_FRAGMENT_BYTES_MIN);
    if (rc == 0)
        rc = edi_lane_open(&edi_tcp_lane_ops, nk->loop, NULL,
                           &edi_nki_data_handler, nk, &nk->tcp_lane);
    if (rc) {
        edi_ct_destroy(&nk->table);
        edist_buf_free(&nk->out);
        edist_buf_free(&nk->scratch);
        free(nk);
        return rc;
    }
    size_t frag = nk->cfg.fragment_bytes ? nk->cfg.fragment_bytes
                                         : EDI_SENDQ_FRAGMENT_BYTES_DEFAULT;
    nk->tx_watermark =
        frag > NK_TX_WATERMARK_MIN_BYTES ? frag : NK_TX_WATERMARK_MIN_BYTES;
    edi_timer_init(&nk->tick_timer);
    edi_timer_init(&nk->housekeeping_timer);
    edi_timer_init(&nk->shutdown_timer);
    uint32_t interval = nk->cfg.ticktime_ms / EDI_NK_TICK_INTENSITY;
    if (interval == 0)
        interval = 1;
    edi_loop_timer_start(nk->loop, &nk->tick_timer, interval, interval,
                         tick_all, nk);
    edi_loop_timer_start(nk->loop, &nk->housekeeping_timer, NK_HOUSEKEEPING_MS,
                         NK_HOUSEKEEPING_MS, housekeeping, nk);
    *out = nk;
    return 0;
}

static void shutdown_finish(edi_nk *nk)
{
    edi_nk_done_fn done = nk->shutdown_done;
    nk->shutdown_done = NULL;
    edi_loop_timer_cancel(nk->loop, &nk->shutdown_timer);
    if (done)
        done(nk->shutdown_arg, 0, "");
}

void edi_nki_shutdown_check(edi_nk *nk)
{
    if (nk->shutting_down && nk->shutdown_done && nk->conns_open == 0 &&
        !nk->links)
        shutdown_finish(nk);
}

static void shutdown_grace(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    shutdown_finish(arg);
}

void edi_nk_shutdown(edi_nk *nk, uint32_t grace_ms, edi_nk_done_fn done,
                     void *arg)
{
    nk->shutting_down = true;
    nk->shutdown_done = done;
    nk->shutdown_arg = arg;
    edi_loop_timer_start(nk->loop, &nk->shutdown_timer, grace_ms ? grace_ms : 1,
                         0, shutdown_grace, nk);
    /* as a failed connection: a monitor_node waiting for one hears nodedown */
    while (nk->ops)
        edi_nki_op_connected(nk, nk->ops, EDIST_ECLOSED, "node is stopping");
    /* From the head after each: the callbacks of one may end the next. */
    for (edi_link *l = nk->links; l != NULL;) {
        if (l->dead) {
            l = l->next;
            continue;
        }
        if (l->phase == L_UP)
            edi_nki_link_down(l, "disconnect", true);
        else
            edi_nki_link_fail(l, EDIST_ECLOSED, "node is stopping");
        l = nk->links;
    }
    edi_nki_shutdown_check(nk);
}

void edi_nk_free(edi_nk *nk)
{
    if (!nk)
        return;
    /* Called with the loop stopped (not running any callback) and before
     * it is freed. Our timers live in our memory: take them out of the
     * loop's heap before that memory goes. The connections go with the
     * loop, without callbacks, so links still waiting for on_close go
     * now. */
    /* Resolver threads still running finish their getaddrinfo and post
     * nothing; posts already queued are dropped with the loop. */
    atomic_store(&nk->freeing, true);
    while (nk->lookups) {
        nk_lookup *lk = nk->lookups;
        nk->lookups = lk->next;
        if (lk->link)
            lk->link->lookup = NULL; /* the links are freed below */
        pthread_join(lk->thread, NULL);
        free(lk);
    }
    edi_loop_timer_cancel(nk->loop, &nk->tick_timer);
    edi_loop_timer_cancel(nk->loop, &nk->housekeeping_timer);
    edi_loop_timer_cancel(nk->loop, &nk->shutdown_timer);
    for (nk_op *o = nk->ops; o; o = o->next)
        edi_loop_timer_cancel(nk->loop, &o->timer);
    edi_link *lists[2] = {nk->links, nk->dead_links};
    for (int i = 0; i < 2; i++) {
        edi_link *l = lists[i];
        while (l) {
            edi_link *n = l->next;
            edi_loop_timer_cancel(nk->loop, &l->setup_timer);
            edi_loop_timer_cancel(nk->loop, &l->data.pump_timer);
            edi_nki_lane_free(l); /* its lane link goes with the lane */
            edi_nki_fire_writable(l, EDIST_ECLOSED, "node stopped");
            if (l->lookup)
                l->lookup->link = NULL;
            edi_hs_wipe(&l->hs);
            edi_dist_reasm_free(l->data.reasm);
            /* Units the connections hold are released at edi_loop_free;
             * the detached queue lives until then. */
            edi_sendq_detach(l->data.sq);
            free(l->data.send_wait);
            free(l);
            l = n;
        }
    }
    while (nk->ops) {
        nk_op *o = nk->ops;
        nk->ops = o->next;
        free(o);
    }
    for (size_t i = 0; i < nk->sub_count; i++)
        free(nk->subs[i]);
    /* Its links' connections are aborted without callbacks. */
    edi_lane_close(nk->tcp_lane);
    edi_ct_destroy(&nk->table);
    edist_buf_free(&nk->out);
    edist_buf_free(&nk->scratch);
    free(nk->by_key);
    free(nk);
}
