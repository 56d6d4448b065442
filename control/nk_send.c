/* SPDX-License-Identifier: Apache-2.0 */
/* Sending on an up link: admission against the per-peer limit, the send
 * scheduler pumped into the connection, frames written in place, and the
 * senders waiting for room. */
#include "control/netkernel_internal.h"

#include "base/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- sending ------------------------------------------------------------- */

static bool data_up(const edi_link *l)
{
    return l->data.tx && l->data.sq && l->phase == L_UP && !l->dead;
}

/* A unit of the scheduler as a lane frame: its body is not copied and is
 * released through the scheduler once the lane is done with it. Forced:
 * the scheduler applied the peer's limit already. */
static edi_lane_txframe unit_frame(const edi_sendq_unit *u)
{
    return (edi_lane_txframe){
        .head = u->head, .head_len = u->head_len,
        .body = u->body, .body_len = u->body_len,
        .release = edi_sendq_release, .release_arg = u->msg,
        .force = true,
    };
}

/* Hand the lane units from the scheduler while its own queue is short
 * (a fragment or two: then a small message from another sender overtakes
 * a big one soon). Each unit is an uncopied body: the scheduler's release
 * runs when the lane is done with it, and its on_progress brings us back
 * here; a lane without room calls on_writable, which does too. */
/* One unit from the scheduler into the lane, counted. 0, or why not (the
 * unit is released then: it went nowhere). */
static int unit_out(edi_link *l, edi_sendq_unit *u)
{
    edi_nk *nk = l->nk;
    edi_lane_txframe f = unit_frame(u);
    size_t taken = 0;
    int rc = edi_lane_tx_batch(l->data.tx, &f, 1, &taken);
    if (rc || taken != 1) {
        edi_sendq_release(u->msg, u->body);
        return rc ? rc : EDIST_ENOMEM;
    }
    l->frames_out++;
    if (u->kind != EDI_SENDQ_WHOLE) {
        l->data.fragments_out++;
        nk->stats.fragments_sent++;
        if (u->kind == EDI_SENDQ_FRAG_FIRST) {
            l->data.fragmented_out++;
            nk->stats.fragmented_messages_sent++;
        }
    }
    return 0;
}

static void link_pump(edi_link *l)
{
    edi_nk *nk = l->nk;
    if (!data_up(l))
        return;
    /* the lane's queue is kept short here */
    while (edi_lane_tx_queued(l->data.tx) < nk->tx_watermark) {
        edi_sendq_unit u;
        if (!edi_sendq_next(l->data.sq, &u))
            break;
        int rc = unit_out(l, &u);
        if (rc) {
            /* Closing: the lane's end takes the rest. Anything else (no
             * memory) would leave a hole in the stream, possibly inside
             * a fragment sequence: drop the connection rather than send
             * a corrupt one. */
            if (rc != EDIST_ECLOSED) {
                char why[160];
                snprintf(why, sizeof why, "cannot queue output: %s", edist_strerror(rc));
                edi_nki_link_down_why(l, "connection_closed", false, why);
            }
            break;
        }
    }
}

void edi_nki_fire_writable(edi_link *l, int err, const char *detail)
{
    edi_nk *nk = l->nk;
    nk_wwait *w = l->data.wwait_head;
    l->data.wwait_head = l->data.wwait_tail = NULL;
    while (w) {
        nk_wwait *n = w->next;
        nk->wwait_count--;
        w->done(w->arg, err, detail);
        free(w);
        w = n;
    }
}

static void pump_timer_fn(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    edi_link *l = arg;
    edi_nk *nk = l->nk;
    link_pump(l);
    if (!l->data.writable_pending || l->dead)
        return;
    l->data.writable_pending = false;
    char peer[EDI_HS_NAME_MAX_BYTES + 1];
    snprintf(peer, sizeof peer, "%s", l->peer_name);
    edi_nki_fire_writable(l, 0, "");
    if (nk->writable_fn && !l->dead) {
        nk->dispatching++;
        nk->writable_fn(nk->writable_user, peer);
        nk->dispatching--;
    }
}

void edi_nki_arm_pump(edi_link *l)
{
    if (!l->dead && !edi_timer_armed(&l->data.pump_timer))
        edi_loop_timer_start(l->nk->loop, &l->data.pump_timer, 0, 0,
                             pump_timer_fn, l);
}

/* Scheduler callbacks: inside the lane's completion handling, so only arm
 * the pump (it runs in this same loop iteration). */
static void sq_progress(void *user)
{
    edi_nki_arm_pump(user);
}

static void sq_writable(void *user)
{
    edi_link *l = user;
    l->data.writable_pending = true;
    edi_nki_arm_pump(l);
}

static uint64_t sq_now_ns(void *user)
{
    (void)user;
    return edi_now_ns();
}

static void sq_sent(void *user, uint64_t waited_ns)
{
    edi_link *l = user;
    if (l->data.send_wait)
        edi_hist_record(l->data.send_wait, waited_ns);
}

const edi_sendq_ops edi_nki_sq_ops = {
    .on_progress = sq_progress,
    .on_writable = sq_writable,
    .now_ns = sq_now_ns,
    .on_sent = sq_sent,
};

/* busy_dist_port is the scheduler's limit (it counts every byte it holds
 * for the peer); forced frames (replies the peer waits for) pass it, up
 * to NK_FORCED_QUEUE_MAX_BYTES more: a peer that lets even those pile up
 * does not read and is dropped. */
static int forced_room(edi_link *l)
{
    if (edi_sendq_bytes(l->data.sq) <=
        edi_sendq_limit(l->data.sq) + NK_FORCED_QUEUE_MAX_BYTES)
        return 0;
    char why[160];
    snprintf(why, sizeof why,
             "it does not read its replies (%zu bytes queued)",
             edi_sendq_bytes(l->data.sq));
    edi_nki_link_down_why(l, "connection_closed", false, why);
    return edist_set_error(EDIST_ECLOSED, "peer does not read");
}

/* Queue the frame built in nk->out (u32 prefix included) on l from the
 * pseudo-process `stream`, and pump. Control replies the peer waits for
 * are forced past a full queue (bounded); other frames get
 * EDIST_EAGAIN. */
static int send_buf(edi_nk *nk, edi_link *l, uint64_t stream,
                    const edist_buf *out, bool force)
{
    if (edist_buf_error(out))
        return edist_buf_error(out);
    if (!data_up(l))
        return edist_set_error(EDIST_ECLOSED, "connection to %s is down",
                               edi_nki_link_label(l));
    size_t len = out->len;
    int rc = force ? forced_room(l) : 0;
    if (rc)
        return rc;
    rc = edi_sendq_push(l->data.sq, stream, out->data, len,
                        force ? EDI_SENDQ_FORCE : 0);
    if (rc == EDIST_EAGAIN)
        nk->stats.sends_busy++;
    if (rc)
        return rc;
    l->data.messages_out++;
    l->data.bytes_out += len;
    nk->stats.messages_sent++;
    nk->stats.bytes_sent += len;
    link_pump(l);
    return 0;
}

int edi_nki_send_built(edi_nk *nk, edi_link *l, uint64_t stream, bool force)
{
    return send_buf(nk, l, stream, &nk->out, force);
}

/* Everything still queued goes to the lane (before a graceful close
 * flushes it): memory the queue held anyway, now referenced by the lane
 * until written or dropped with it. */
int edi_nki_link_drain_all(edi_link *l)
{
    edi_sendq_unit u;
    while (l->data.tx && l->data.sq && edi_sendq_next(l->data.sq, &u)) {
        int rc = unit_out(l, &u);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- sending for the runtime: by key, by name, whole frames -------------- */

/* busy_dist_port asked before a frame is built: a sender waiting for
 * room need not build (and copy) its message on every try. */
static int admit(edi_nk *nk, edi_link *l, size_t len)
{
    int rc = edi_sendq_admit(l->data.sq, len);
    if (rc == EDIST_EAGAIN)
        nk->stats.sends_busy++;
    return rc;
}

/* The up link of the runtime's key, or NULL. */
static edi_link *key_link(edi_nk *nk, uint32_t key)
{
    edi_link *l = key < nk->by_key_cap ? nk->by_key[key] : NULL;
    return l && data_up(l) ? l : NULL;
}

/* A frame of frame_bytes (its length included) went to the lane without
 * the scheduler. */
static void count_in_place(edi_nk *nk, edi_link *l, size_t frame_bytes)
{
    l->frames_out++;
    l->data.messages_out++;
    nk->stats.messages_sent++;
    nk->stats.messages_in_place++;
    nk->stats.bytes_sent += frame_bytes;
    l->data.bytes_out += frame_bytes;
    if (l->data.send_wait)
        edi_hist_record(l->data.send_wait, 0);
}

int edi_nk_peer_flags(edi_nk *nk, const char *peer, size_t admit_len,
                      uint64_t *flags)
{
    edi_link *l = edi_nki_up_link(nk, peer ? peer : "");
    if (!l || l->phase != L_UP || l->dead)
        return edist_set_error(EDIST_ENOTFOUND, "not connected to %s",
                               peer ? peer : "");
    *flags = l->flags;
    return admit_len && l->data.sq ? admit(nk, l, admit_len) : 0;
}

/* Frames this small are written in place when the scheduler is idle; a
 * bigger one goes through it (fragments, fair turns between senders). */
#define NK_DIRECT_MAX_BYTES (16u * 1024u)

/* The frame built in nk->out goes to l's scheduler (the lane took no
 * more): *backlogged when it waits there. */
static int queue_out(edi_nk *nk, edi_link *l, uint64_t sender, bool force, bool *backlogged)
{
    int rc = send_buf(nk, l, sender ? sender : EDI_NK_SELF_PID_ID, &nk->out, force);
    *backlogged = rc == 0 && !l->dead && l->data.sq && edi_sendq_bytes(l->data.sq) > 0;
    return rc;
}

int edi_nk_send_signal(edi_nk *nk, uint32_t key, uint64_t sender,
                       size_t max_bytes, edi_nk_build_fn build, void *arg,
                       bool force, bool *backlogged)
{
    *backlogged = false;
    edi_link *l = key < nk->by_key_cap ? nk->by_key[key] : NULL;
    if (!l)
        return edist_set_error(EDIST_ENOTFOUND, "not connected to node %u",
                               key);
    if (!data_up(l))
        return edist_set_error(EDIST_ECLOSED, "connection to %s is down",
                               edi_nki_link_label(l));
    int rc;
    if (edi_sendq_bytes(l->data.sq) == 0 && max_bytes <= NK_DIRECT_MAX_BYTES &&
        max_bytes <= edi_sendq_fragment_bytes(l->data.sq)) {
        /* Nothing waits in the scheduler, so the lane's order is the
         * senders' order: encode straight into its transmit memory. A lane
         * without room leaves the frame to the scheduler (it waits there,
         * in order, up to the peer's limit). */
        uint8_t *p;
        rc = edi_lane_tx_reserve(l->data.tx, max_bytes, &p);
        if (rc == 0) {
            edist_buf b;
            edist_buf_init_fixed(&b, p, max_bytes);
            rc = build(arg, &b, l->flags | EDI_DIST_BUILD_BARE);
            if (rc == 0 &&
                (rc = edi_lane_tx_commit(l->data.tx, b.len)) == 0) {
                count_in_place(nk, l, 4 + b.len);
                return 0;
            }
            if (!edist_buf_error(&b))
                return rc; /* not a question of room */
        } else if (rc != EDIST_EAGAIN) {
            return rc;
        }
    }
    edist_buf_reset(&nk->out);
    rc = build(arg, &nk->out, l->flags);
    if (rc)
        return rc;
    return queue_out(nk, l, sender, force, backlogged);
}

int edi_nk_send_copy(edi_nk *nk, uint32_t key, uint64_t sender, edi_nk_head_fn head,
                     void *arg, const void *body, size_t body_len, bool *backlogged)
{
    *backlogged = false;
    edi_link *l = key_link(nk, key);
    if (!l || edi_sendq_bytes(l->data.sq) != 0)
        return EDI_NK_NOT_TAKEN;
    size_t head_len;
    const uint8_t *h = head(arg, l->flags, &head_len);
    size_t len = head_len + body_len;
    if (!h || len > NK_DIRECT_MAX_BYTES || len > edi_sendq_fragment_bytes(l->data.sq))
        return EDI_NK_NOT_TAKEN;
    int rc = edi_lane_tx_copy(l->data.tx, h, head_len, body, body_len);
    if (rc == 0) {
        count_in_place(nk, l, 4 + len);
        return 0;
    }
    if (rc != EDIST_EAGAIN)
        return EDI_NK_NOT_TAKEN;
    /* No room (counted once, by the lane): the scheduler keeps it, in
     * order, as edi_nk_send_signal does with a frame the lane refused. */
    edist_buf_reset(&nk->out);
    rc = edi_dist_build_send_headed(&nk->out, l->flags, h, head_len,
                                    (edist_term_view){body, body_len});
    if (rc)
        return rc == EDIST_EAGAIN ? EDI_NK_NOT_TAKEN : rc;
    return queue_out(nk, l, sender, false, backlogged);
}

int edi_nk_send_owned(edi_nk *nk, uint32_t key, const uint8_t *head,
                      size_t head_len, const void *body, size_t body_len,
                      edi_release_fn release, void *release_arg)
{
    edi_link *l = key_link(nk, key);
    if (!l)
        return edist_set_error(EDIST_ENOTFOUND, "not connected to node %u",
                               key);
    /* Behind the scheduler, or in fragments: the copying path. */
    if (edi_sendq_bytes(l->data.sq) != 0 ||
        head_len + body_len > edi_sendq_fragment_bytes(l->data.sq))
        return EDIST_EAGAIN;
    edi_lane_txframe f = {.head = head, .head_len = head_len,
                          .body = body, .body_len = body_len,
                          .release = release, .release_arg = release_arg};
    size_t taken = 0;
    int rc = edi_lane_tx_batch(l->data.tx, &f, 1, &taken);
    if (rc || taken != 1)
        return rc ? rc : EDIST_EAGAIN; /* not taken: still the caller's */
    count_in_place(nk, l, 4 + head_len + body_len);
    nk->stats.messages_uncopied++;
    return 0;
}

int edi_nk_key_flags(edi_nk *nk, uint32_t key, size_t admit_len,
                     uint64_t *flags)
{
    edi_link *l = key_link(nk, key);
    if (!l)
        return edist_set_error(EDIST_ENOTFOUND, "not connected to node %u",
                               key);
    *flags = l->flags;
    return admit_len ? admit(nk, l, admit_len) : 0;
}

int edi_nk_send_frame(edi_nk *nk, const char *peer, uint64_t sender,
                      const edist_buf *frame, bool force)
{
    edi_link *l = edi_nki_up_link(nk, peer ? peer : "");
    if (!l)
        return edist_set_error(EDIST_ENOTFOUND, "not connected to %s",
                               peer ? peer : "");
    return send_buf(nk, l, sender ? sender : EDI_NK_SELF_PID_ID, frame, force);
}

/* ---- named sends and writable waiters ------------------------------------ */

int edi_nk_send_reg_from(edi_nk *nk, const char *peer, uint32_t sender,
                         const char *name, const uint8_t *payload, size_t len)
{
    edi_link *l = edi_nki_up_link(nk, peer ? peer : "");
    if (!l)
        return edist_set_error(EDIST_ENOTFOUND, "not connected to %s",
                               peer ? peer : "");
    if (!name || !payload || !len)
        return edist_set_error(EDIST_EINVAL, "send_reg: no name or payload");
    if (sender == 0)
        sender = EDI_NK_SELF_PID_ID;
    edi_dist_term_scratch sc, fc;
    edist_term_view to, from = nk->self_pid;
    int rc = edi_dist_atom_view(name, strlen(name), &sc, &to);
    if (rc)
        return rc;
    if (sender != EDI_NK_SELF_PID_ID) {
        edist_pid p = {.node = edi_nki_self_atom(nk),
                       .id = sender,
                       .serial = 0,
                       .creation = nk->cfg.creation};
        if ((rc = edi_dist_pid_view(&p, &fc, &from)) != 0)
            return rc;
    }
    edist_term_view msg = {.ptr = payload, .len = len};
    edist_buf_reset(&nk->out);
    edi_dist_build_reg_send(&nk->out, l->flags, NULL, from, to, msg);
    return edi_nki_send_built(nk, l, sender, false);
}

int edi_nk_send_reg(edi_nk *nk, const char *peer, const char *name,
                    const uint8_t *payload, size_t len)
{
    return edi_nk_send_reg_from(nk, peer, EDI_NK_SELF_PID_ID, name, payload,
                                len);
}

void edi_nk_set_writable_handler(edi_nk *nk, edi_nk_writable_fn fn, void *user)
{
    nk->writable_fn = fn;
    nk->writable_user = user;
}

int edi_nk_when_writable(edi_nk *nk, const char *peer, edi_nk_done_fn done,
                         void *arg, uint64_t *id)
{
    edi_link *l = edi_nki_up_link(nk, peer ? peer : "");
    if (!l || !l->data.sq)
        return edist_set_error(EDIST_ENOTFOUND, "not connected to %s",
                               peer ? peer : "");
    if (!done)
        return edist_set_error(EDIST_EINVAL, "when_writable: no callback");
    /* No refusal pending (the queue drained since): retry at once. */
    if (!l->data.writable_pending && !edi_sendq_refused(l->data.sq))
        return 1;
    if (nk->wwait_count >= NK_MAX_WRITABLE_WAITERS)
        return edist_set_error(EDIST_EAGAIN, "too many blocked senders (%u)",
                               NK_MAX_WRITABLE_WAITERS);
    nk_wwait *w = calloc(1, sizeof *w);
    if (!w)
        return edist_set_error(EDIST_ENOMEM, "no memory for a waiter");
    w->id = ++nk->next_id;
    w->done = done;
    w->arg = arg;
    if (l->data.wwait_tail)
        l->data.wwait_tail->next = w;
    else
        l->data.wwait_head = w;
    l->data.wwait_tail = w;
    nk->wwait_count++;
    if (id)
        *id = w->id;
    return 0;
}

void edi_nk_cancel_writable(edi_nk *nk, uint64_t id)
{
    for (edi_link *l = nk->links; l; l = l->next) {
        nk_wwait *prev = NULL;
        for (nk_wwait *w = l->data.wwait_head; w; prev = w, w = w->next) {
            if (w->id != id)
                continue;
            if (prev)
                prev->next = w->next;
            else
                l->data.wwait_head = w->next;
            if (l->data.wwait_tail == w)
                l->data.wwait_tail = prev;
            nk->wwait_count--;
            free(w);
            return;
        }
    }
}
