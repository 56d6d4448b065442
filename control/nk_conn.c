/* SPDX-License-Identifier: Apache-2.0 */
/* A distribution connection's callbacks: the handshake (its hooks, its
 * output), the link going up, received frames and the close. */
#include "control/netkernel_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the node-up line ---------------------------------------------------- */

/* The few negotiated flags worth a glance in a node-up line. */
static void flags_summary(uint64_t flags, char *buf, size_t cap)
{
    static const struct {
        uint64_t bit;
        const char *name;
    } notable[] = {
        {EDI_DFLAG_FRAGMENTS, "fragments"},
        {EDI_DFLAG_SPAWN, "spawn"},
        {EDI_DFLAG_ALIAS, "alias"},
        {EDI_DFLAG_UNLINK_ID, "unlink_id"},
        {EDI_DFLAG_V4_NC, "v4_nc"},
        {EDI_DFLAG_EXIT_PAYLOAD, "exit_payload"},
        {EDI_DFLAG_SEND_SENDER, "send_sender"},
        {EDI_DFLAG_DIST_MONITOR_NAME, "monitor_name"},
    };
    size_t n =
        (size_t)snprintf(buf, cap, "flags 0x%llx", (unsigned long long)flags);
    const char *sep = " (";
    for (size_t i = 0; i < sizeof notable / sizeof notable[0] && n < cap; i++) {
        if (flags & notable[i].bit) {
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", sep,
                                  notable[i].name);
            sep = " ";
        }
    }
    if (n < cap && sep[0] == ' ' && sep[1] == '\0')
        snprintf(buf + n, cap - n, ")");
}

/* ---- handshake hooks ----------------------------------------------------- */

static edi_hs_decision hook_accept(void *ctx, const edi_hs_peer *hp)
{
    edi_link *l = ctx;
    edi_nk *nk = l->nk;
    snprintf(l->peer_name, sizeof l->peer_name, "%s", hp->name);
    if (!l->named) {
        /* Past the first message: no longer evictable, and the rest of
         * the setup time applies. */
        l->named = true;
        uint64_t now = edi_loop_now_ms(nk->loop);
        l->named_ms = now;
        uint64_t end = l->started_ms + nk->cfg.setuptime_ms;
        edi_loop_timer_start(nk->loop, &l->setup_timer,
                             end > now ? end - now : 1, 0,
                             edi_nki_setup_timeout, l);
    }
    if (!strcmp(hp->name, nk->name)) {
        nk_log(nk, EDIST_LOG_INFO, "connection from %s claims our own name %s",
               l->addr, hp->name);
        return EDI_HS_NOT_ALLOWED;
    }
    if (nk->shutting_down)
        return EDI_HS_NOT_ALLOWED;
    edi_peer *p = edi_ct_find(&nk->table, hp->name);
    edi_hs_decision d = edi_ct_decide_incoming(p, nk->name, hp->name);
    switch (d) {
    case EDI_HS_GO:
        if (!p && edi_ct_add(&nk->table, hp->name, &p) != 0) {
            nk_log(nk, EDIST_LOG_WARNING, "connection from %s (%s): %s",
                   l->addr, hp->name, edist_last_error());
            return EDI_HS_NOT_ALLOWED;
        }
        p->owner = l;
        l->peer = p;
        break;
    case EDI_HS_GO_SIMULTANEOUS: {
        /* Our own attempt loses: net_kernel kills its setup process and
         * hands the entry (and whoever waits on it) to this one. */
        edi_link *old = p->owner;
        p->owner = l;
        l->peer = p;
        nk_log(nk, EDIST_LOG_DEBUG,
               "simultaneous connect with %s: the incoming one wins", hp->name);
        if (old) {
            old->peer = NULL;
            edi_nki_link_fail(old, EDIST_EEXIST, "simultaneous connect lost");
        }
        break;
    }
    case EDI_HS_ALREADY_UP:
        p->state = EDI_PEER_UP_PENDING;
        p->pending = l;
        l->peer = p;
        break;
    default:
        break;
    }
    return d;
}

static bool hook_still_pending(void *ctx, const char *peer_name)
{
    edi_link *l = ctx;
    return edi_ct_still_pending(edi_ct_find(&l->nk->table, peer_name), l);
}

void edi_nki_hs_config(edi_nk *nk, edi_link *l, edi_hs_config *c)
{
    memset(c, 0, sizeof *c);
    c->role = l->role;
    c->our_name = nk->name;
    c->our_creation = nk->cfg.creation;
    c->hidden = nk->cfg.hidden;
    c->peer_name = l->role == EDI_HS_INITIATOR ? l->peer_name : NULL;
    c->cookies = nk->cfg.cookies;
    c->accept = hook_accept;
    c->still_pending = hook_still_pending;
    c->hook_ctx = l;
}

/* Send what the handshake queued. */
void edi_nki_hs_flush(edi_link *l)
{
    size_t len;
    const uint8_t *out = edi_hs_output(&l->hs, &len);
    if (!out || !len || !l->conn)
        return;
    if (edi_conn_send_raw(l->conn, out, len) == 0)
        edi_hs_output_done(&l->hs, len);
}

/* ---- up ------------------------------------------------------------------ */

void edi_nki_handshake_done(edi_link *l)
{
    edi_nk *nk = l->nk;
    const edi_hs_result *r = edi_hs_get_result(&l->hs);
    edi_peer *p = l->peer;
    if (!r || !p || p->owner != l || p->state != EDI_PEER_PENDING) {
        edi_nki_link_fail(l, EDIST_EEXIST,
                          "handshake finished for an entry it no longer owns");
        return;
    }
    if (nk->shutting_down) {
        edi_nki_link_fail(l, EDIST_ECLOSED, "node is stopping");
        return;
    }
    edi_dist_reasm_limits rl = {
        .max_total_bytes = nk->cfg.reassembly_limit_bytes,
        .max_message_bytes = nk->cfg.max_message_bytes,
    };
    int rc = edi_dist_reasm_create(&rl, &l->data.reasm);
    if (rc) {
        edi_nki_link_fail(l, rc, "no memory for the reassembler");
        return;
    }
    uint64_t flags = edi_dflags_expand(r->flags);
    edi_sendq_config qc = {
        .flags = flags,
        .fragment_bytes = nk->cfg.fragment_bytes,
        .limit_bytes = nk->cfg.send_queue_limit_bytes,
        .open_sequences = nk->cfg.send_open_sequences,
        .ops = &edi_nki_sq_ops,
        .user = l,
    };
    /* the histogram first: the scheduler times messages into it */
    l->data.send_wait = malloc(sizeof *l->data.send_wait);
    if (l->data.send_wait)
        edi_hist_init(l->data.send_wait);
    rc = edi_sendq_new(&qc, &l->data.sq);
    if (rc) {
        edi_nki_link_fail(l, rc, "no memory for the send queue");
        return;
    }
    snprintf(l->peer_name, sizeof l->peer_name, "%s", r->peer_name);
    l->phase = L_UP;
    edi_nki_link_set_key(nk, l);
    l->hidden = r->hidden;
    l->flags = flags;
    edi_nki_incoming_remove(l);
    edi_loop_timer_cancel(nk->loop, &l->setup_timer);
    /* The data lane: on TCP it wraps this connection, which from now on
     * carries U32 frames (ticks go on it directly). */
    rc = edi_tcp_lane_link_wrap(nk->tcp_lane, l->conn, l, &l->data.link);
    if (rc) {
        edi_nki_link_fail(l, rc, "no memory for the data lane");
        return;
    }
    l->data.on_control_conn = true;
    l->data.tx = l->data.link;
    l->tick.read_seen = l->frames_in;
    l->tick.written_seen = l->frames_out;
    l->tick.silent = 0;
    edi_hs_wipe(&l->hs);
    p->state = EDI_PEER_UP;
    p->hidden = r->hidden;
    p->flags = l->flags;
    p->creation = r->peer_creation;
    p->up_since_ms = edi_loop_now_ms(nk->loop);
    p->conn_id = ++nk->last_conn_id;
    p->orphan_deadline_ms = 0;
    nk->stats.nodeups++;
    if (l->role == EDI_HS_ACCEPTOR)
        nk->stats.handshakes_accepted++;
    nk->stats.connections_up++;
    char fl[256];
    flags_summary(l->flags, fl, sizeof fl);
    nk_log(nk, EDIST_LOG_INFO, "node up: %s (%s, %s %s, %s)", p->name,
           r->hidden ? "hidden" : "visible",
           l->role == EDI_HS_INITIATOR ? "connected to" : "accepted from",
           l->addr, fl);
    edi_nki_emit_event(nk, true, p->name, r->hidden, NULL, l->flags, p->conn_id);
    /* Waiters: the entry may have been dropped by a callback above. */
    p = edi_ct_find(&nk->table, r->peer_name);
    if (p && p->owner == l) {
        edi_peer_waiter *w = edi_ct_take_waiters(p);
        while (w) {
            edi_peer_waiter *n = w->next;
            nk_op *o = edi_nki_op_find(nk, w->id);
            free(w);
            if (o) {
                edi_nki_op_connected(nk, o, 0, "");
            }
            w = n;
        }
    }
    if (!l->dead)
        edi_nki_lane_offer(l);
}

/* ---- connection callbacks ------------------------------------------------ */

static size_t on_bytes(edi_conn *c, void *user, const uint8_t *data, size_t len)
{
    (void)c;
    edi_link *l = user;
    if (l->dead)
        return len;
    size_t total = 0;
    while (total < len && edi_hs_get_state(&l->hs) == EDI_HS_RUNNING) {
        size_t used = 0;
        int rc = edi_hs_feed(&l->hs, data + total, len - total, &used);
        total += used;
        if (l->dead) /* a hook failed this link */
            return len;
        if (rc < 0)
            break;
        edi_nki_hs_flush(l);
        if (used == 0)
            break;
    }
    switch (edi_hs_get_state(&l->hs)) {
    case EDI_HS_FAILED:
        edi_nki_link_fail(l, edi_hs_error_code(&l->hs), edi_hs_error(&l->hs));
        return len;
    case EDI_HS_DONE:
        edi_nki_hs_flush(l);
        edi_nki_handshake_done(l);
        return total;
    case EDI_HS_WAIT_OLD_CONN:
        edi_nki_hs_flush(l);
        if (l->phase != L_WAIT_OLD) {
            l->phase = L_WAIT_OLD;
            edi_peer *p = l->peer;
            if (p && p->state == EDI_PEER_UP_PENDING && p->pending == l &&
                p->owner) {
                /* net_kernel's wait_pending: kill the old controller; its
                 * nodedown lets this one go on (edi_nki_link_down). */
                edi_nki_link_down(p->owner, "connection_closed", false);
            } else if (p && p->state == EDI_PEER_PENDING && p->owner == l) {
                /* the old one went by itself meanwhile */
                edi_nki_old_conn_gone(l);
            } else {
                edi_nki_link_fail(l, EDIST_EEXIST,
                                  "replaced connection lost its entry");
            }
        }
        return total;
    case EDI_HS_RUNNING:
        break;
    }
    return total;
}

/* Connection c of l is gone (its on_close, or the end of the data lane
 * link that wrapped it). */
static void conn_gone(edi_link *l, edi_conn *c, int reason)
{
    edi_nk *nk = l->nk;
    if (reason == EDIST_ENOMEM)
        nk->stats.messages_over_limit++; /* a frame over max_frame_bytes */
    /* This conn still counts as open during the bookkeeping below, so
     * that nothing frees l under our feet. */
    bool mine = c == l->conn;
    if (mine)
        l->conn = NULL;
    edi_nki_lane_conn_gone(l, c);
    if (!l->dead && mine) {
        if (l->phase == L_UP) {
            edi_nki_link_down(l, "connection_closed", false);
        } else if (l->role == EDI_HS_INITIATOR && !l->connected) {
            char detail[600];
            snprintf(detail, sizeof detail, "cannot connect to %s: %s", l->addr,
                     edist_last_error()[0] ? edist_last_error()
                                           : edist_strerror(reason));
            edi_nki_link_fail(l, EDIST_EIO, detail);
        } else {
            int rc = edi_hs_eof(&l->hs);
            edi_nki_link_fail(l, rc ? rc : EDIST_ECLOSED, edi_hs_error(&l->hs));
        }
    }
    l->conns_open--;
    nk->conns_open--;
    edi_nki_link_maybe_free(l);
    edi_nki_shutdown_check(nk);
}

static void on_close(edi_conn *c, void *user, int reason)
{
    conn_gone(user, c, reason);
}

/* ---- the data lane's callbacks ------------------------------------------ */

static void data_frame(edi_lane_link *link, void *user, const edi_frame *f)
{
    (void)link;
    edi_nki_data_in(user, f);
}

void edi_nki_data_in(edi_link *l, const edi_frame *f)
{
    edi_nk *nk = l->nk;
    if (l->dead)
        return;
    l->frames_in++;
    if (f->len == 0) {
        nk->stats.ticks_received++;
        l->data.ticks_in++;
        return;
    }
    nk->stats.bytes_received += f->len;
    l->data.bytes_in += f->len;
    if (f->len >= 2 && f->data[0] == EDIST_TAG_VERSION &&
        (f->data[1] == EDI_DIST_FRAG_HEADER ||
         f->data[1] == EDI_DIST_FRAG_CONT)) {
        l->data.fragments_in++;
        nk->stats.fragments_received++;
    }
    edi_dist_delivery d;
    int rc = edi_dist_reasm_feed(l->data.reasm, f->data, f->len, &d);
    if (rc < 0) {
        /* erts kills the connection on every kind of bad input after the
         * handshake (dist.c erts_net_message: data_error, decode_error,
         * invalid_message; a fragment of an unknown sequence or out of
         * order too); so do we, with one line saying why. */
        char why[512];
        if (rc == EDIST_ENOMEM)
            nk->stats.messages_over_limit++; /* message or reassembly limit */
        snprintf(why, sizeof why, "bad distribution message (%s): %s",
                 edist_strerror(rc), edist_last_error());
        edi_nki_link_down_why(l, "connection_closed", false, why);
        return;
    }
    if (rc == 0)
        return;
    l->data.messages_in++;
    if (d.owned) {
        l->data.fragmented_in++;
        nk->stats.fragmented_messages_received++;
    }
    nk->stats.messages_received++;
    /* A reassembled message is handed on in its own buffer (no copy):
     * the receiving process may keep it as long as it likes. */
    edi_rxbuf *owned = d.owned ? edi_rxbuf_adopt(d.owned, d.owned_len) : NULL;
    edi_nki_dispatch(nk, l, d.msg,
                     d.owned ? owned : f->rxbuf); /* NULL: copied */
    if (owned)
        edi_rxbuf_unref(owned);
    else
        free(d.owned);
}

void edi_nki_data_writable(edi_lane_link *link, void *user)
{
    (void)link;
    edi_nki_arm_pump(user);
}

static void data_closed(edi_lane_link *link, void *user, int reason)
{
    edi_link *l = user;
    edi_nk *nk = l->nk;
    l->data.link = NULL;
    if (l->data.tx == link)
        l->data.tx = NULL;
    if (l->data.on_control_conn) {
        /* the same socket: the control connection ended too */
        conn_gone(l, edi_tcp_lane_link_conn(link), reason);
        return;
    }
    if (!l->dead && l->phase == L_UP)
        edi_nki_link_down(l, "connection_closed", false);
    l->conns_open--;
    nk->conns_open--;
    edi_nki_link_maybe_free(l);
    edi_nki_shutdown_check(nk);
}

/* The lane took some of its queue: the scheduler hands it more once it
 * is below the watermark (on_writable alone says "below half its room",
 * which may be far above the watermark: the scheduler would wait for a
 * send that never comes). */
void edi_nki_data_sent(edi_lane_link *link, void *user, size_t pending_bytes)
{
    (void)pending_bytes; /* what waits to be sent is what counts here */
    edi_link *l = user;
    /* Only the lane our data goes on paces the scheduler (after a switch
     * the TCP lane still reports what it sends before it). */
    if (l->data.tx == link && l->data.sq && edi_sendq_bytes(l->data.sq) > 0 &&
        edi_lane_tx_queued(link) < l->nk->tx_watermark)
        edi_nki_arm_pump(l);
}

const edi_lane_handler edi_nki_data_handler = {
    .on_frame = data_frame,
    .on_writable = edi_nki_data_writable,
    .on_closed = data_closed,
    .on_sent = edi_nki_data_sent,
};

static void on_connected(edi_conn *c, void *user)
{
    (void)c;
    edi_link *l = user;
    l->connected = true;
}

const edi_conn_ops edi_nki_dist_ops = {
    .on_connected = on_connected,
    .on_bytes = on_bytes,
    .on_close = on_close,
};
