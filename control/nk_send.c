/* SPDX-License-Identifier: Apache-2.0 */
/* Sending on an up link: admission against the per-peer limit, the send
 * scheduler pumped into the connection, frames written in place, and the
 * senders waiting for room. */
#include "control/netkernel_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- sending ------------------------------------------------------------- */

/* Hand the connection units from the scheduler while its own queue is
 * short. Each unit is an owned body: the scheduler's release runs when the
 * socket took it, and its on_progress brings us back here. */
static void link_pump(edi_link *l)
{
    edi_nk *nk = l->nk;
    if (!l->conn || !l->sq || l->dead || l->phase != L_UP)
        return;
    while (edi_conn_send_queue_bytes(l->conn) < nk->tx_watermark) {
        edi_sendq_unit u;
        if (!edi_sendq_next(l->sq, &u))
            break;
        /* FORCE: the scheduler already applied the peer's limit, and the
         * connection's queue is kept short here. */
        int rc = edi_conn_send_frame_owned(l->conn, u.head, u.head_len, u.body,
                                           u.body_len, edi_sendq_release, u.msg,
                                           EDI_SEND_FORCE);
        if (rc) {
            /* The unit goes nowhere. Closing: the connection's end takes
             * the rest. Anything else (no memory) would leave a hole in
             * the stream, possibly inside a fragment sequence: drop the
             * connection rather than send a corrupt one. */
            edi_sendq_release(u.msg, u.body);
            if (rc != EDIST_ECLOSED) {
                char why[160];
                snprintf(why, sizeof why, "cannot queue output: %s",
                         edist_strerror(rc));
                edi_nki_link_down_why(l, "connection_closed", false, why);
            }
            break;
        }
        l->frames_out++;
        if (u.kind != EDI_SENDQ_WHOLE) {
            l->fragments_out++;
            nk->stats.fragments_sent++;
            if (u.kind == EDI_SENDQ_FRAG_FIRST) {
                l->fragmented_out++;
                nk->stats.fragmented_messages_sent++;
            }
        }
    }
}

void edi_nki_fire_writable(edi_link *l, int err, const char *detail)
{
    edi_nk *nk = l->nk;
    nk_wwait *w = l->wwait_head;
    l->wwait_head = l->wwait_tail = NULL;
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
    if (!l->writable_pending || l->dead)
        return;
    l->writable_pending = false;
    char peer[EDI_HS_NAME_MAX_BYTES + 1];
    snprintf(peer, sizeof peer, "%s", l->peer_name);
    edi_nki_fire_writable(l, 0, "");
    if (nk->writable_fn && !l->dead) {
        nk->dispatching++;
        nk->writable_fn(nk->writable_user, peer);
        nk->dispatching--;
    }
}

static void arm_pump(edi_link *l)
{
    if (!l->dead && !edi_timer_armed(&l->pump_timer))
        edi_loop_timer_start(l->nk->loop, &l->pump_timer, 0, 0, pump_timer_fn,
                             l);
}

/* Scheduler callbacks: inside the connection's completion handling, so
 * only arm the pump (it runs in this same loop iteration). */
static void sq_progress(void *user)
{
    arm_pump(user);
}

static void sq_writable(void *user)
{
    edi_link *l = user;
    l->writable_pending = true;
    arm_pump(l);
}

const edi_sendq_ops edi_nki_sq_ops = {
    .on_progress = sq_progress,
    .on_writable = sq_writable,
};

/* Bytes pending for the peer: what the scheduler holds (its units in the
 * connection included) plus what was written straight into the
 * connection. Units are counted twice while the connection holds them:
 * the bound errs on the safe side. */
size_t edi_nki_link_pending(const edi_link *l)
{
    return edi_sendq_bytes(l->sq) + edi_conn_send_queue_bytes(l->conn);
}

/* busy_dist_port: a frame of len bytes finds room unless the peer's
 * pending bytes would pass the limit (one frame of any size fits when
 * nothing is pending). Forced frames (replies the peer waits for) pass,
 * up to NK_FORCED_QUEUE_MAX_BYTES more; a peer that lets even those pile
 * up does not read and is dropped. */
static int link_admit(edi_nk *nk, edi_link *l, size_t len, bool force)
{
    size_t pending = edi_nki_link_pending(l);
    size_t limit = edi_sendq_limit(l->sq);
    if (force) {
        if (pending <= limit + NK_FORCED_QUEUE_MAX_BYTES)
            return 0;
        char why[160];
        snprintf(why, sizeof why,
                 "it does not read its replies (%zu bytes queued)", pending);
        edi_nki_link_down_why(l, "connection_closed", false, why);
        return edist_set_error(EDIST_ECLOSED, "peer does not read");
    }
    if (pending == 0 || (len <= limit && pending <= limit - len))
        return 0;
    l->want_writable = true;
    l->sends_busy++;
    nk->stats.sends_busy++;
    return edist_set_error(EDIST_EAGAIN,
                           "send queue to %s full (%zu bytes pending, limit "
                           "%zu)",
                           l->peer_name, pending, limit);
}

static void arm_pump(edi_link *l);

/* The connection wrote some of its queue. */
void edi_nki_on_sent(edi_conn *c, void *user, size_t queued_bytes)
{
    (void)c;
    (void)queued_bytes;
    edi_link *l = user;
    if (!l->want_writable || l->dead || !l->sq ||
        edi_nki_link_pending(l) > edi_sendq_limit(l->sq) / 2)
        return;
    l->want_writable = false;
    l->writable_pending = true;
    arm_pump(l);
}

/* Queue the frame built in nk->out (u32 prefix included) on l from the
 * pseudo-process `stream`, and pump. Control replies the peer waits for
 * are forced past a full queue (bounded: each answers one request the
 * peer made, and a peer that never reads is dropped); other frames get
 * EDIST_EAGAIN. */
static int send_buf(edi_nk *nk, edi_link *l, uint64_t stream,
                    const edist_buf *out, bool force)
{
    if (edist_buf_error(out))
        return edist_buf_error(out);
    if (!l->conn || !l->sq || l->phase != L_UP || l->dead)
        return edist_set_error(EDIST_ECLOSED, "connection to %s is down",
                               edi_nki_link_label(l));
    size_t len = out->len;
    int rc = link_admit(nk, l, len, force);
    if (rc)
        return rc;
    /* Admitted: the scheduler takes it whatever its own count says (the
     * bytes in the connection are counted above). */
    rc = edi_sendq_push(l->sq, stream, out->data, len, EDI_SENDQ_FORCE);
    if (rc)
        return rc;
    l->messages_out++;
    nk->stats.messages_sent++;
    nk->stats.bytes_sent += len;
    link_pump(l);
    return 0;
}

int edi_nki_send_built(edi_nk *nk, edi_link *l, uint64_t stream, bool force)
{
    return send_buf(nk, l, stream, &nk->out, force);
}

/* Everything still queued goes to the connection (before a graceful
 * close flushes it): memory the queue held anyway, now referenced by the
 * connection until written or dropped with it. */
void edi_nki_link_drain_all(edi_link *l)
{
    edi_sendq_unit u;
    while (l->conn && l->sq && edi_sendq_next(l->sq, &u)) {
        if (edi_conn_send_frame_owned(l->conn, u.head, u.head_len, u.body,
                                      u.body_len, edi_sendq_release, u.msg,
                                      EDI_SEND_FORCE) != 0) {
            edi_sendq_release(u.msg, u.body);
            break;
        }
    }
}

/* ---- sending for the runtime: by key, by name, whole frames -------------- */

int edi_nk_peer_flags(edi_nk *nk, const char *peer, size_t admit_len,
                      uint64_t *flags)
{
    edi_link *l = edi_nki_up_link(nk, peer ? peer : "");
    if (!l || l->phase != L_UP || l->dead)
        return edist_set_error(EDIST_ENOTFOUND, "not connected to %s",
                               peer ? peer : "");
    *flags = l->flags;
    if (admit_len && l->conn && l->sq)
        return link_admit(nk, l, admit_len, false);
    return 0;
}

/* Frames this small are written in place when the scheduler is idle; a
 * bigger one goes through it (fragments, fair turns between senders). */
#define NK_DIRECT_MAX_BYTES (16u * 1024u)

int edi_nk_send_signal(edi_nk *nk, uint32_t key, uint64_t sender,
                       size_t max_bytes, edi_nk_build_fn build, void *arg,
                       bool force)
{
    edi_link *l = key < nk->by_key_cap ? nk->by_key[key] : NULL;
    if (!l)
        return edist_set_error(EDIST_ENOTFOUND, "not connected to node %u",
                               key);
    if (!l->conn || !l->sq || l->phase != L_UP || l->dead)
        return edist_set_error(EDIST_ECLOSED, "connection to %s is down",
                               edi_nki_link_label(l));
    int rc = link_admit(nk, l, max_bytes, force);
    if (rc)
        return rc;
    if (edi_sendq_bytes(l->sq) == 0 && max_bytes <= NK_DIRECT_MAX_BYTES &&
        max_bytes <= edi_sendq_fragment_bytes(l->sq)) {
        /* Nothing waits in the scheduler, so the connection's order is the
         * senders' order: encode straight into its send memory. */
        uint8_t *p;
        if ((rc = edi_conn_frame_reserve(l->conn, max_bytes, EDI_SEND_FORCE,
                                         &p)) != 0)
            return rc;
        edist_buf b;
        edist_buf_init_fixed(&b, p, max_bytes);
        rc = build(arg, &b, l->flags | EDI_DIST_BUILD_BARE);
        if (rc == 0 && (rc = edi_conn_frame_commit(l->conn, b.len)) == 0) {
            l->frames_out++;
            l->messages_out++;
            nk->stats.messages_sent++;
            nk->stats.bytes_sent += b.len + 4; /* with its length */
            return 0;
        }
        if (!edist_buf_error(&b))
            return rc; /* not a question of room */
    }
    edist_buf_reset(&nk->out);
    rc = build(arg, &nk->out, l->flags);
    if (rc)
        return rc;
    return send_buf(nk, l, sender ? sender : EDI_NK_SELF_PID_ID, &nk->out,
                    force);
}

int edi_nk_key_flags(edi_nk *nk, uint32_t key, size_t admit_len,
                     uint64_t *flags)
{
    edi_link *l = key < nk->by_key_cap ? nk->by_key[key] : NULL;
    if (!l || !l->conn || !l->sq || l->phase != L_UP || l->dead)
        return edist_set_error(EDIST_ENOTFOUND, "not connected to node %u",
                               key);
    *flags = l->flags;
    return admit_len ? link_admit(nk, l, admit_len, false) : 0;
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
    if (!l || !l->sq)
        return edist_set_error(EDIST_ENOTFOUND, "not connected to %s",
                               peer ? peer : "");
    if (!done)
        return edist_set_error(EDIST_EINVAL, "when_writable: no callback");
    /* No refusal pending (the queue drained since): retry at once. */
    if (!l->writable_pending && !l->want_writable && !edi_sendq_refused(l->sq))
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
    if (l->wwait_tail)
        l->wwait_tail->next = w;
    else
        l->wwait_head = w;
    l->wwait_tail = w;
    nk->wwait_count++;
    if (id)
        *id = w->id;
    return 0;
}

void edi_nk_cancel_writable(edi_nk *nk, uint64_t id)
{
    for (edi_link *l = nk->links; l; l = l->next) {
        nk_wwait *prev = NULL;
        for (nk_wwait *w = l->wwait_head; w; prev = w, w = w->next) {
            if (w->id != id)
                continue;
            if (prev)
                prev->next = w->next;
            else
                l->wwait_head = w->next;
            if (l->wwait_tail == w)
                l->wwait_tail = prev;
            nk->wwait_count--;
            free(w);
            return;
        }
    }
}
