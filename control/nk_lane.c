/* SPDX-License-Identifier: Apache-2.0 */
/* A peer's data moves from TCP to a second lane (a DPDK port) when both
 * nodes have one: the agreement runs on the control connection, as
 * distribution messages to the reserved name `edist_lane` from the
 * kernel's pid (a BEAM peer has no such name and drops them, as erts
 * drops a message to an unregistered name):
 *
 *   initiator -> {edist_lane, offer, Medium, Addr, TokenI, FrameMax}
 *   acceptor  -> {edist_lane, accept, Addr, TokenA, FrameMax} (or refuse, Why)
 *
 * FrameMax is the largest link frame the sender's port carries and takes;
 * each link sends frames of at most the smaller of both (a frame the peer
 * cannot take would be lost each time it is sent, while the small ones,
 * pings and acks, pass). An offer without it (a node from before) gets an
 * acceptance without it, and the side assumes its own; a node from before
 * ignores our offer, and after setup_ms the pair stays on TCP.
 *
 * Each side opens a link on its lane towards the other's address; frames
 * it sends carry the other's token, frames for it its own. The link
 * proves both directions (on_up); then that side writes
 * {edist_lane, switch} on TCP, after everything it queued there, and its
 * data goes on the lane from then on. Frames that come on the lane before
 * the peer's switch was read from TCP are held, then dispatched in order:
 * per sender, what went on TCP comes first, then what went on the lane.
 * Ticks stay on TCP. A lane link that dies takes the peer down (the
 * alternative, moving back to TCP, would need the lane's unacknowledged
 * data replayed there in order: not worth a second mechanism).
 *
 * Giving up before a switch is agreed, not decided alone: a side whose
 * setup time ran out before its link came up sends
 *
 *   {edist_lane, abort}  ->  {edist_lane, aborted}  (the peer gave up too)
 *
 * and keeps its link until the answer. A peer that already switched sends
 * nothing back: its switch, written before it read the abort, reaches us
 * first and we stay on the lane. So both sides end on TCP, or both on the
 * lane; never one side's data on a lane the other closed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "control/netkernel_internal.h"

#define LANE_NAME "edist_lane"

typedef struct nk_held {
    struct nk_held *next;
    edi_rxbuf *rxbuf;
    const uint8_t *data;
    size_t len;
} nk_held;

struct nk_fast {
    nk_fast_state state;
    edi_lane_link *link;
    bool up;                /* on_up: both directions proven */
    bool peer_switched;     /* the peer's switch was read from TCP */
    uint64_t rx_token, tx_token;
    nk_held *held_head, *held_tail;
    size_t held_bytes;
    bool held_window_closed; /* the link's window, closed while we hold */
    bool aborting;          /* our abort sent, the peer's answer awaited */
    bool up_deferred;       /* test hook: on_up kept until the peer's switch */
    bool switch_lagged;     /* test hook: the peer's switch read, acted on later */
    edi_timer lag_timer;
    edi_timer timer;        /* setup deadline; at a close, the flush's */
    /* A graceful close after our switch: the control connection, closed
     * once the lane has delivered everything (edi_nki_lane_linger). */
    edi_conn *linger_conn;
    bool lingering;
};

static uint64_t new_token(void)
{
    uint64_t t = 0;
    while (t == 0)
        if (getrandom(&t, sizeof t, 0) != sizeof t)
            t = (uint64_t)edi_now_ns() * 0x9e3779b97f4a7c15ull;
    return t;
}

/* {edist_lane, Tag, ...} to the peer's edist_lane, from our kernel pid,
 * built in nk->out. */
static int build_lane_msg(edi_nk *nk, edi_link *l, const edist_buf *payload)
{
    uint8_t name_mem[32];
    edist_buf name;
    edist_buf_init_fixed(&name, name_mem, sizeof name_mem);
    edist_enc_atomz(&name, LANE_NAME);
    edist_buf_reset(&nk->out);
    edi_dist_build_reg_send(&nk->out, l->flags, NULL, nk->kernel_pid,
                            edi_nki_buf_view(&name, 0), edi_nki_buf_view(payload, 0));
    return edist_buf_error(&nk->out);
}

/* The same, through the scheduler (force: a few dozen bytes the peer must
 * see). */
static int send_lane_msg(edi_nk *nk, edi_link *l, const edist_buf *payload)
{
    int rc = build_lane_msg(nk, l, payload);
    return rc ? rc : edi_nki_send_built(nk, l, EDI_NK_KERNEL_PID_ID, true);
}

/* Units the scheduler has not handed out (drain_all stops at a refusal). */
static bool sendq_left(const edi_link *l)
{
    return l->data.sq && !edi_sendq_idle(l->data.sq);
}

static void enc_head(edist_buf *b, uint32_t arity, const char *tag)
{
    edist_enc_tuple(b, arity);
    edist_enc_atomz(b, LANE_NAME);
    edist_enc_atomz(b, tag);
}

static void held_free(nk_fast *f)
{
    while (f->held_head) {
        nk_held *h = f->held_head;
        f->held_head = h->next;
        edi_rxbuf_unref(h->rxbuf);
        free(h);
    }
    f->held_tail = NULL;
    f->held_bytes = 0;
}

/* Gives up on the lane for this peer (its data stays on TCP). Only
 * before either side switched: see the callers. */
static void give_up(edi_link *l, const char *why)
{
    edi_nk *nk = l->nk;
    nk_fast *f = l->data.fast;
    nk_log(nk, EDIST_LOG_INFO, "%s: no %s lane (%s); its data stays on TCP",
           l->peer_name, nk->fast.medium, why);
    nk->stats.lane_setups_failed++;
    f->state = NK_FAST_FAILED;
    edi_loop_timer_cancel(nk->loop, &f->timer);
    if (f->link)
        edi_lane_link_close(f->link); /* on_closed finishes */
    held_free(f);
}

static void send_tag(edi_nk *nk, edi_link *l, const char *tag)
{
    uint8_t mem[64];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    enc_head(&b, 2, tag);
    (void)send_lane_msg(nk, l, &b);
}

/* Our setup time ran out before our link came up. Without an open link
 * the peer cannot have switched (its link needs ours): give up now and
 * tell it. With one, the peer may have switched already: ask it to give
 * up and wait for its answer (see the top). */
static void setup_timeout(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    edi_link *l = arg;
    edi_nk *nk = l->nk;
    nk_fast *f = l->data.fast;
    if (f->state == NK_FAST_OFFERED) {
        give_up(l, "the peer did not answer the offer");
        send_tag(nk, l, "abort"); /* if it accepts meanwhile */
        return;
    }
    if (f->state != NK_FAST_PROBING || f->up || f->peer_switched || f->aborting)
        return;
    nk->stats.lane_setup_timeouts++;
    f->aborting = true;
    nk_log(nk, EDIST_LOG_INFO,
           "%s: the %s lane did not come up in %u ms; asking the peer to give "
           "it up", l->peer_name, nk->fast.medium, nk->fast.setup_ms);
    send_tag(nk, l, "abort");
}

/* ---- the lane link's callbacks ------------------------------------------ */

static void fast_frame(edi_lane_link *link, void *user, const edi_frame *fr)
{
    (void)link;
    edi_link *l = user;
    nk_fast *f = l->data.fast;
    if (l->dead || !f)
        return;
    if (f->peer_switched) {
        edi_nki_data_in(l, fr);
        return;
    }
    /* Before the peer's switch was read from TCP: kept, in order. The
     * peer wrote its switch before its first frame here, so this wait is
     * the TCP stream's lag behind the lane; bounded all the same. */
    edi_nk *nk = l->nk;
    if (f->held_bytes + fr->len > nk->fast.hold_limit_bytes) {
        nk->stats.lane_hold_overflows++;
        edi_nki_link_down_why(l, "connection_closed", false,
                              "lane frames held too long waiting for the "
                              "peer's switch on TCP");
        return;
    }
    nk_held *h = malloc(sizeof *h);
    if (!h) {
        edi_nki_link_down_why(l, "connection_closed", false,
                              "no memory to hold a lane frame");
        return;
    }
    /* A port's buffer (scarce) is copied: held until TCP brings the
     * switch, a stream's frames would otherwise take the port's whole
     * pool long before the window closes at half the hold limit. */
    edi_rxbuf *rb = fr->rxbuf;
    const uint8_t *data = fr->data;
    if (rb && edi_rxbuf_scarce(rb)) {
        uint8_t *copy = malloc(fr->len ? fr->len : 1);
        rb = copy ? edi_rxbuf_adopt(copy, fr->len) : NULL;
        if (!rb) {
            free(copy);
            free(h);
            edi_nki_link_down_why(l, "connection_closed", false,
                                  "no memory to hold a lane frame");
            return;
        }
        memcpy(copy, fr->data, fr->len);
        data = copy;
    } else {
        edi_rxbuf_ref(rb);
    }
    *h = (nk_held){.rxbuf = rb, .data = data, .len = fr->len};
    if (f->held_tail)
        f->held_tail->next = h;
    else
        f->held_head = h;
    f->held_tail = h;
    f->held_bytes += fr->len;
    if (f->held_bytes > nk->stats.lane_held_bytes_max)
        nk->stats.lane_held_bytes_max = f->held_bytes;
    /* Past half the limit the peer holds back (its window closes), so
     * what it has in flight still fits: a TCP stream slow to bring the
     * switch (our reads held, shard_backlog_limit) is no disconnect. */
    if (!f->held_window_closed && f->held_bytes >= nk->fast.hold_limit_bytes / 2 &&
        nk->fast.link_hold && f->link) {
        f->held_window_closed = true;
        nk->fast.link_hold(f->link, true);
    }
}

static void do_switch(edi_link *l, edi_lane_link *link);

/* Our side of the lane works both ways: our data moves to it, unless we
 * asked the peer to give it up and wait for its answer. */
static void fast_up(edi_lane_link *link, void *user)
{
    edi_link *l = user;
    edi_nk *nk = l->nk;
    nk_fast *f = l->data.fast;
    if (l->dead || !f || f->up || f->state != NK_FAST_PROBING)
        return;
    if (nk->fast.test_setup_race && !f->peer_switched) {
        f->up_deferred = true; /* see edi_nk_fastlane.test_setup_race */
        return;
    }
    f->up = true;
    edi_loop_timer_cancel(nk->loop, &f->timer);
    if (f->aborting)
        return; /* the peer's answer decides: on_switch or on_aborted */
    do_switch(l, link);
}

/* Our data moves to link. The switch goes straight into the TCP lane,
 * after everything already there; what the scheduler still holds goes on
 * the new lane, after it. */
static void do_switch(edi_link *l, edi_lane_link *link)
{
    edi_nk *nk = l->nk;
    nk_fast *f = l->data.fast;
    /* Everything the scheduler holds goes on TCP first, all of it; then
     * the switch, straight into the TCP lane right behind it. (Through
     * the scheduler it would take its turn among the senders' queued
     * units, and some of those would follow it on TCP while later ones
     * of the same sender went on the lane ahead of them.) */
    int drained = edi_nki_link_drain_all(l);
    if (l->dead)
        return;
    if (drained) {
        /* a message would be missing from the stream before the switch */
        char why[160];
        snprintf(why, sizeof why, "cannot queue output before the lane switch: %s",
                 edist_strerror(drained));
        edi_nki_link_down_why(l, "connection_closed", false, why);
        return;
    }
    uint8_t mem[64];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    enc_head(&b, 2, "switch");
    int rc = sendq_left(l) ? EDIST_EIO : build_lane_msg(nk, l, &b);
    size_t taken = 0;
    if (rc == 0) {
        /* nk->out starts with the u32 length; the lane frames it itself */
        edi_lane_txframe sw = {.head = nk->out.data + 4, .head_len = nk->out.len - 4,
                               .force = true};
        rc = edi_lane_tx_batch(l->data.tx, &sw, 1, &taken);
    }
    if (rc || taken != 1) {
        edi_nki_link_down_why(l, "connection_closed", false,
                              "cannot write the lane switch on TCP");
        return;
    }
    l->data.messages_out++;
    l->data.bytes_out += nk->out.len;
    nk->stats.messages_sent++;
    nk->stats.bytes_sent += nk->out.len;
    l->data.tx = link;
    f->state = NK_FAST_SWITCHED;
    nk->stats.lane_switches++;
    nk_log(nk, EDIST_LOG_INFO, "%s: data on the %s lane", l->peer_name,
           nk->fast.medium);
    edi_nki_arm_pump(l);
}

static void linger_end(edi_link *l, bool timed_out);

static void fast_sent(edi_lane_link *link, void *user, size_t pending_bytes)
{
    edi_link *l = user;
    if (l->data.fast && l->data.fast->lingering && pending_bytes == 0) {
        linger_end(l, false);
        return;
    }
    edi_nki_data_sent(link, user, pending_bytes);
}

static void fast_closed(edi_lane_link *link, void *user, int reason)
{
    edi_link *l = user;
    edi_nk *nk = l->nk;
    nk_fast *f = l->data.fast;
    f->link = NULL;
    if (f->lingering) {
        /* gone before it delivered everything: say so, close TCP now */
        f->lingering = false;
        edi_loop_timer_cancel(nk->loop, &f->timer);
        nk_log(nk, EDIST_LOG_WARNING,
               "%s: the %s lane closed (%s) before it delivered what was sent "
               "on it; closing", l->peer_name, nk->fast.medium,
               reason ? edist_strerror(reason) : "closed");
        if (f->linger_conn)
            edi_conn_close(f->linger_conn, nk->cfg.close_flush_ms);
        f->linger_conn = NULL;
    }
    if (l->data.tx == link)
        l->data.tx = NULL;
    if (f->held_head && !l->dead && l->phase == L_UP) {
        /* Frames held prove the peer switched (none come before): the link
         * acknowledged them, so the peer counts them delivered. They wait
         * for its switch on TCP, go to their processes then, and the peer
         * goes down after them (on_switch): its later data was on the lane.
         * Meanwhile nothing more goes out (no lane: sends fail as for a
         * connection that is down). */
        edi_loop_timer_cancel(nk->loop, &f->timer);
        nk_log(nk, EDIST_LOG_WARNING,
               "%s: the %s lane closed (%s) holding %zu bytes the peer sent after "
               "its switch, which TCP has not brought yet: delivered once it does, "
               "then the connection closes", l->peer_name, nk->fast.medium,
               reason ? edist_strerror(reason) : "closed", f->held_bytes);
    } else if (!l->dead && l->phase == L_UP &&
               (f->state == NK_FAST_SWITCHED || f->peer_switched)) {
        /* Once either side switched, data may be lost with the lane: the
         * peer goes down, as for a dead connection. Before, TCP goes on. */
        char why[160];
        snprintf(why, sizeof why, "the %s lane went down: %s", nk->fast.medium,
                 reason ? edist_strerror(reason) : "closed");
        edi_nki_link_down_why(l, "connection_closed", false, why);
    } else if (f->state != NK_FAST_FAILED && !l->dead) {
        give_up(l, reason ? edist_strerror(reason) : "the lane link closed");
    }
    l->conns_open--;
    nk->conns_open--;
    edi_nki_link_maybe_free(l);
    edi_nki_shutdown_check(nk);
}

const edi_lane_handler edi_nk_fast_handler = {
    .on_frame = fast_frame,
    .on_writable = edi_nki_data_writable,
    .on_closed = fast_closed,
    .on_sent = fast_sent,
    .on_up = fast_up,
};

static int open_link(edi_link *l, const uint8_t *addr, size_t addr_len,
                     uint64_t peer_frame_max)
{
    edi_nk *nk = l->nk;
    nk_fast *f = l->data.fast;
    int rc = nk->fast.link_open(nk->fast.lane, addr, addr_len, f->tx_token,
                                f->rx_token, (size_t)peer_frame_max, l, &f->link);
    if (rc)
        return rc;
    l->conns_open++; /* until on_closed */
    nk->conns_open++;
    f->state = NK_FAST_PROBING;
    return 0;
}

/* ---- the agreement ------------------------------------------------------- */

static nk_fast *fast_new(edi_link *l)
{
    nk_fast *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    edi_timer_init(&f->timer);
    edi_timer_init(&f->lag_timer);
    f->rx_token = new_token();
    l->data.fast = f;
    edi_loop_timer_start(l->nk->loop, &f->timer, l->nk->fast.setup_ms, 0,
                         setup_timeout, l);
    return f;
}

void edi_nki_lane_offer(edi_link *l)
{
    edi_nk *nk = l->nk;
    if (!nk->fast.lane || l->role != EDI_HS_INITIATOR || l->data.fast)
        return;
    char why[256];
    if (nk->fast.usable && !nk->fast.usable(nk->fast.lane, why, sizeof why)) {
        nk->stats.lane_offers_withheld++; /* the node said why, once */
        return;
    }
    nk_fast *f = fast_new(l);
    if (!f)
        return; /* no memory: TCP it is */
    f->state = NK_FAST_OFFERED;
    uint8_t mem[128];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    enc_head(&b, 6, "offer");
    edist_enc_atomz(&b, nk->fast.medium);
    edist_enc_binary(&b, nk->fast.addr, nk->fast.addr_len);
    edist_enc_uint(&b, f->rx_token);
    edist_enc_uint(&b, nk->fast.frame_max);
    if (send_lane_msg(nk, l, &b) != 0)
        give_up(l, "cannot send the offer");
}

static void send_refuse(edi_nk *nk, edi_link *l, const char *why)
{
    uint8_t mem[96];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    enc_head(&b, 3, "refuse");
    edist_enc_atomz(&b, why);
    (void)send_lane_msg(nk, l, &b);
}

static void on_offer(edi_nk *nk, edi_link *l, edist_cursor *c, bool has_frame_max)
{
    edist_atom medium;
    const uint8_t *addr;
    size_t addr_len;
    uint64_t token, frame_max = 0;
    if (edist_dec_atom(c, &medium) || edist_dec_binary(c, &addr, &addr_len) ||
        edist_dec_uint64(c, &token) || token == 0 || addr_len == 0 ||
        addr_len > EDI_NK_FAST_ADDR_MAX ||
        (has_frame_max && (edist_dec_uint64(c, &frame_max) || frame_max == 0))) {
        nk_log(nk, EDIST_LOG_WARNING, "%s: malformed lane offer ignored", l->peer_name);
        return;
    }
    char why[256];
    if (!nk->fast.lane) {
        send_refuse(nk, l, "no_lane");
        return;
    }
    if (nk->fast.usable && !nk->fast.usable(nk->fast.lane, why, sizeof why)) {
        send_refuse(nk, l, "port_unusable"); /* we said why, once */
        return;
    }
    if (!edist_atom_eq(&medium, nk->fast.medium)) {
        send_refuse(nk, l, "other_medium");
        return;
    }
    if (l->role != EDI_HS_ACCEPTOR || l->data.fast) {
        send_refuse(nk, l, "unexpected");
        return;
    }
    nk_fast *f = fast_new(l);
    if (!f) {
        send_refuse(nk, l, "no_memory");
        return;
    }
    f->tx_token = token;
    int rc = open_link(l, addr, addr_len, frame_max);
    if (rc) {
        send_refuse(nk, l, "cannot_open");
        give_up(l, edist_last_error());
        return;
    }
    uint8_t mem[128];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    /* in the offer's form: a node from before FrameMax takes only that */
    enc_head(&b, has_frame_max ? 5 : 4, "accept");
    edist_enc_binary(&b, nk->fast.addr, nk->fast.addr_len);
    edist_enc_uint(&b, f->rx_token);
    if (has_frame_max)
        edist_enc_uint(&b, nk->fast.frame_max);
    if (send_lane_msg(nk, l, &b) != 0)
        give_up(l, "cannot send the acceptance");
}

static void on_accept(edi_nk *nk, edi_link *l, edist_cursor *c, bool has_frame_max)
{
    nk_fast *f = l->data.fast;
    const uint8_t *addr;
    size_t addr_len;
    uint64_t token, frame_max = 0;
    if (!f || f->state != NK_FAST_OFFERED) {
        nk_log(nk, EDIST_LOG_WARNING, "%s: lane acceptance without an offer ignored",
               l->peer_name);
        return;
    }
    if (edist_dec_binary(c, &addr, &addr_len) || edist_dec_uint64(c, &token) ||
        token == 0 || addr_len == 0 || addr_len > EDI_NK_FAST_ADDR_MAX ||
        (has_frame_max && (edist_dec_uint64(c, &frame_max) || frame_max == 0))) {
        give_up(l, "malformed acceptance");
        return;
    }
    f->tx_token = token;
    if (open_link(l, addr, addr_len, frame_max) != 0)
        give_up(l, edist_last_error());
}

static void on_refuse(edi_nk *nk, edi_link *l, edist_cursor *c)
{
    (void)nk;
    nk_fast *f = l->data.fast;
    edist_atom why;
    char w[64] = "refused";
    if (edist_dec_atom(c, &why) == 0 && why.len < sizeof w - 10)
        snprintf(w, sizeof w, "refused: %.*s", (int)why.len, why.ptr);
    if (f && f->state == NK_FAST_OFFERED)
        give_up(l, w);
}

/* The peer's data goes on the lane from here: what it sent there so far
 * is dispatched now, after everything it sent on TCP before. */
static void on_switch(edi_nk *nk, edi_link *l);

static void switch_lag_end(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    edi_link *l = arg;
    if (!l->dead && l->data.fast)
        on_switch(l->nk, l);
}

static void on_switch(edi_nk *nk, edi_link *l)
{
    nk_fast *f = l->data.fast;
    if (!f || (!f->link && !f->held_head)) {
        edi_nki_link_down_why(l, "connection_closed", false,
                              "the peer switched to a lane we do not have");
        return;
    }
    if (nk->fast.test_switch_lag_ms && !f->switch_lagged) {
        /* the hook: TCP lags behind the lane by this much */
        f->switch_lagged = true;
        edi_loop_timer_start(nk->loop, &f->lag_timer, nk->fast.test_switch_lag_ms, 0,
                             switch_lag_end, l);
        return;
    }
    if (nk->fast.test_setup_race && !f->peer_switched && f->state == NK_FAST_PROBING) {
        /* the hook: our setup time runs out right before the switch */
        edi_loop_timer_cancel(nk->loop, &f->timer);
        setup_timeout(nk->loop, &f->timer, l);
    }
    f->peer_switched = true;
    nk->stats.lane_peer_switches++;
    if (f->aborting) {
        /* It switched before it read our abort: the lane stays. */
        f->aborting = false;
        nk->stats.lane_aborts_declined++;
        nk_log(nk, EDIST_LOG_INFO,
               "%s: the peer moved its data to the %s lane before it read our "
               "abort; the lane stays", l->peer_name, nk->fast.medium);
    }
    while (f->held_head && !l->dead) {
        nk_held *h = f->held_head;
        f->held_head = h->next;
        if (!f->held_head)
            f->held_tail = NULL;
        f->held_bytes -= h->len;
        edi_frame fr = {.data = h->data, .len = h->len, .rxbuf = h->rxbuf};
        edi_nki_data_in(l, &fr);
        edi_rxbuf_unref(h->rxbuf);
        free(h);
    }
    if (l->dead)
        return;
    if (!f->link) {
        /* the lane closed while it held these (fast_closed) */
        char why[160];
        snprintf(why, sizeof why, "the %s lane went down before the peer's switch was read",
                 nk->fast.medium);
        edi_nki_link_down_why(l, "connection_closed", false, why);
        return;
    }
    if (f->held_window_closed && f->link) {
        f->held_window_closed = false;
        nk->fast.link_hold(f->link, false);
    }
    if (f->up_deferred && f->link) {
        f->up_deferred = false;
        fast_up(f->link, l);
    } else if (f->up && f->state == NK_FAST_PROBING && f->link) {
        do_switch(l, f->link); /* came up while we waited for an answer */
    }
}

/* The peer's setup time ran out: we give up too, unless we switched
 * already (then our switch, ahead of this on TCP, answers it). */
static void on_abort(edi_nk *nk, edi_link *l)
{
    nk_fast *f = l->data.fast;
    if (f && f->state == NK_FAST_SWITCHED)
        return;
    if (f && f->state != NK_FAST_FAILED)
        give_up(l, "the peer's setup time ran out");
    send_tag(nk, l, "aborted");
}

/* The peer gave up on our abort: so do we. */
static void on_aborted(edi_link *l)
{
    nk_fast *f = l->data.fast;
    if (!f || !f->aborting || f->state == NK_FAST_FAILED)
        return;
    f->aborting = false;
    give_up(l, "its setup time ran out; the peer agreed");
}

bool edi_nki_lane_message(edi_nk *nk, edi_link *l, const edi_dist_msg *m)
{
    edist_cursor c;
    edist_atom a;
    const edist_term_view *to_name = &m->to_name, *payload = &m->payload;
    edist_cursor_init(&c, to_name->ptr, to_name->len);
    if (edist_dec_atom(&c, &a) || !edist_atom_eq(&a, LANE_NAME))
        return false;
    /* Only the peer's kernel speaks for its lane: from anyone else (any
     * process of the peer can send to {edist_lane, Node}) it is a message
     * to a name nobody has, dropped as erts drops those. */
    if (!m->from_is_pid || m->from_pid.id != EDI_NK_KERNEL_PID_ID || m->from_pid.serial != 0 ||
        !edist_atom_eq(&m->from_pid.node, l->peer_name))
        return false;
    uint32_t arity;
    edist_cursor_init(&c, payload->ptr, payload->len);
    if (edist_dec_tuple(&c, &arity) || arity < 2 || edist_dec_atom(&c, &a) ||
        !edist_atom_eq(&a, LANE_NAME) || edist_dec_atom(&c, &a)) {
        nk_log(nk, EDIST_LOG_WARNING, "%s: malformed lane message ignored", l->peer_name);
        return true;
    }
    if (edist_atom_eq(&a, "offer") && (arity == 6 || arity == 5))
        on_offer(nk, l, &c, arity == 6);
    else if (edist_atom_eq(&a, "accept") && (arity == 5 || arity == 4))
        on_accept(nk, l, &c, arity == 5);
    else if (edist_atom_eq(&a, "refuse") && arity == 3)
        on_refuse(nk, l, &c);
    else if (edist_atom_eq(&a, "switch") && arity == 2)
        on_switch(nk, l);
    else if (edist_atom_eq(&a, "abort") && arity == 2)
        on_abort(nk, l);
    else if (edist_atom_eq(&a, "aborted") && arity == 2)
        on_aborted(l);
    else
        nk_log(nk, EDIST_LOG_WARNING, "%s: unknown lane message ignored", l->peer_name);
    return true;
}

/* The end of a graceful close: the lane link goes, then the control
 * connection, flushed as for TCP. */
static void linger_end(edi_link *l, bool timed_out)
{
    nk_fast *f = l->data.fast;
    edi_nk *nk = l->nk;
    f->lingering = false;
    edi_loop_timer_cancel(nk->loop, &f->timer);
    if (timed_out && f->link) {
        nk->stats.lane_close_unacked++;
        nk_log(nk, EDIST_LOG_WARNING,
               "%s: %zu bytes on the %s lane not acknowledged %u ms after the "
               "close; closing anyway", l->peer_name, edi_lane_tx_pending(f->link),
               nk->fast.medium, nk->cfg.close_flush_ms);
    }
    edi_conn *c = f->linger_conn;
    f->linger_conn = NULL;
    if (f->link)
        edi_lane_link_close(f->link); /* on_closed finishes (conns_open) */
    if (c)
        edi_conn_close(c, nk->cfg.close_flush_ms);
}

static void linger_timeout(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    edi_link *l = arg;
    if (l->data.fast && l->data.fast->lingering)
        linger_end(l, true);
}

bool edi_nki_lane_linger(edi_link *l, edi_conn *conn)
{
    nk_fast *f = l->data.fast;
    if (!f || f->state != NK_FAST_SWITCHED || !f->link || !conn)
        return false;
    /* What comes from the peer now has nowhere to go (l is dead). */
    held_free(f);
    f->linger_conn = conn;
    f->lingering = true;
    edi_lane_tx_flush(f->link);
    if (edi_lane_tx_pending(f->link) == 0)
        linger_end(l, false);
    else
        edi_loop_timer_start(l->nk->loop, &f->timer, l->nk->cfg.close_flush_ms, 0,
                             linger_timeout, l);
    return true;
}

void edi_nki_lane_conn_gone(edi_link *l, edi_conn *c)
{
    nk_fast *f = l->data.fast;
    if (f && f->linger_conn == c)
        f->linger_conn = NULL;
}

void edi_nki_lane_drop(edi_link *l)
{
    nk_fast *f = l->data.fast;
    if (!f || f->lingering)
        return;
    edi_loop_timer_cancel(l->nk->loop, &f->timer);
    edi_loop_timer_cancel(l->nk->loop, &f->lag_timer);
    held_free(f);
    if (f->link) {
        edi_lane_link *k = f->link;
        if (l->data.tx == k)
            l->data.tx = NULL;
        edi_lane_link_close(k); /* on_closed finishes (conns_open) */
    }
}

void edi_nki_lane_free(edi_link *l)
{
    nk_fast *f = l->data.fast;
    if (!f)
        return;
    edi_loop_timer_cancel(l->nk->loop, &f->timer);
    edi_loop_timer_cancel(l->nk->loop, &f->lag_timer);
    held_free(f);
    free(f);
    l->data.fast = NULL;
}

const char *edi_nki_lane_name(const edi_link *l)
{
    const nk_fast *f = l->data.fast;
    return f && f->state == NK_FAST_SWITCHED ? l->nk->fast.medium : "tcp";
}

void edi_nk_lane_links(edi_nk *nk, edi_nk_lane_link_fn fn, void *ctx)
{
    for (edi_link *l = nk->links; l; l = l->next) {
        nk_fast *f = l->data.fast;
        if (!l->dead && f && f->link)
            fn(ctx, l->peer_name, f->link,
               f->state == NK_FAST_SWITCHED ? "switched" : f->peer_switched ? "peer_switched"
                                                                          : "setup");
    }
}
