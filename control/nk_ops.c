/* SPDX-License-Identifier: Apache-2.0 */
/* The net kernel's requests: connect and ping,
 * each a pending op finished by the connect outcome, an answer or a
 * timeout; and disconnect_node. */
#include "control/netkernel_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- ops ----------------------------------------------------------------- */

nk_op *edi_nki_op_find(edi_nk *nk, uint64_t id)
{
    for (nk_op *o = nk->ops; o; o = o->next)
        if (o->id == id)
            return o;
    return NULL;
}

nk_op *edi_nki_op_find_ref(edi_nk *nk, op_kind kind, const edist_ref *r)
{
    if (r->len != 3 || r->creation != nk->cfg.creation ||
        !edist_atom_eq(&r->node, nk->name))
        return NULL;
    for (nk_op *o = nk->ops; o; o = o->next)
        if (o->kind == kind && !memcmp(o->ref, r->ids, sizeof o->ref))
            return o;
    return NULL;
}

static void op_timeout(edi_loop *loop, edi_timer *t, void *arg);

nk_op *edi_nki_op_new(edi_nk *nk, op_kind kind, const char *peer,
                      edi_nk_done_fn done, void *arg, uint32_t timeout_ms)
{
    if (nk->op_count >= NK_MAX_OPS) {
        edist_set_error(EDIST_EAGAIN, "too many requests in progress (%u)",
                        NK_MAX_OPS);
        return NULL;
    }
    nk_op *o = calloc(1, sizeof *o);
    if (!o) {
        edist_set_error(EDIST_ENOMEM, "no memory for a request");
        return NULL;
    }
    o->nk = nk;
    o->id = ++nk->next_id;
    o->kind = kind;
    snprintf(o->peer, sizeof o->peer, "%s", peer);
    o->done = done;
    o->arg = arg;
    edi_timer_init(&o->timer);
    if (timeout_ms)
        edi_loop_timer_start(nk->loop, &o->timer, timeout_ms, 0, op_timeout, o);
    o->next = nk->ops;
    if (nk->ops)
        nk->ops->prev = o;
    nk->ops = o;
    nk->op_count++;
    o->prev = NULL;
    return o;
}

static int disconnect_peer(edi_nk *nk, const char *peer, bool only_up);

/* Completes o: unlinks, runs done once, frees. */
void edi_nki_op_finish(edi_nk *nk, nk_op *o, int err, const char *detail)
{
    edi_loop_timer_cancel(nk->loop, &o->timer);
    if (o->prev)
        o->prev->next = o->next;
    else
        nk->ops = o->next;
    if (o->next)
        o->next->prev = o->prev;
    nk->op_count--;
    /* detail may live in edist_last_error(), which a disconnect reuses. */
    char d[600];
    snprintf(d, sizeof d, "%s", detail ? detail : "");
    if (o->kind == OP_PING && err && !nk->shutting_down) {
        /* net_adm:ping: anything but {ok, yes} is pang, and pang calls
         * erlang:disconnect_node first. o is off the list already, so the
         * requests that disconnect fails do not include it. */
        disconnect_peer(nk, o->peer, true);
    }
    if (o->done)
        o->done(o->arg, err, d);
    free(o);
}

/* ---- ops: connect, ping --------------------------------------------------- */

static void send_ping(edi_nk *nk, nk_op *o);

void edi_nki_op_connected(edi_nk *nk, nk_op *o, int err, const char *detail)
{
    switch (o->kind) {
    case OP_CONNECT:
        edi_nki_op_finish(nk, o, err, detail);
        break;
    case OP_PING:
        if (err)
            edi_nki_op_finish(nk, o, err, detail);
        else
            send_ping(nk, o);
        break;
    case OP_MONITOR_NODE:
        if (err) {
            nk_sub *s = edi_nki_sub_find(nk, o->sub_handle);
            if (s) {
                s->removed = true;
                edist_node_event ev = {.up = false,
                                       .node = o->peer,
                                       .reason = "connection_setup_failed"};
                edi_nki_fire_one(nk, s, &ev);
                edi_nki_subs_sweep(nk);
            }
        }
        edi_nki_op_finish(nk, o, err, detail);
        break;
    }
}

static void op_timeout(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    nk_op *o = arg;
    edi_nk *nk = o->nk;
    char detail[EDI_HS_NAME_MAX_BYTES + 64];
    snprintf(detail, sizeof detail, "no answer from %s in time", o->peer);
    if (o->kind == OP_MONITOR_NODE) {
        edi_nki_op_connected(nk, o, EDIST_ETIMEDOUT, detail);
        return;
    }
    edi_nki_op_finish(nk, o, EDIST_ETIMEDOUT, detail);
}

bool edi_nki_valid_peer(edi_nk *nk, const char *peer)
{
    if (!peer || !edi_hs_node_name_ok(peer, strlen(peer))) {
        edist_set_error(EDIST_EINVAL, "bad node name '%s'",
                        peer ? peer : "(null)");
        return false;
    }
    (void)nk;
    return true;
}

int edi_nk_connect(edi_nk *nk, const char *peer, uint32_t timeout_ms,
                   edi_nk_done_fn done, void *arg)
{
    if (!edi_nki_valid_peer(nk, peer))
        return EDIST_EINVAL;
    if (!strcmp(peer, nk->name))
        return edist_set_error(EDIST_EINVAL, "%s is this node", peer);
    if (nk->shutting_down)
        return edist_set_error(EDIST_ECLOSED, "node is stopping");
    nk_op *o =
        edi_nki_op_new(nk, OP_CONNECT, peer, done, arg,
                       timeout_ms ? timeout_ms : nk->cfg.setuptime_ms + 1000);
    if (!o)
        return EDIST_EAGAIN; /* edi_nki_op_new said why */
    edi_nki_want_connection(nk, peer, o);
    return 0;
}

int edi_nk_ping(edi_nk *nk, const char *peer, uint32_t timeout_ms,
                edi_nk_done_fn done, void *arg)
{
    if (!edi_nki_valid_peer(nk, peer))
        return EDIST_EINVAL;
    if (!strcmp(peer, nk->name)) {
        done(arg, 0, ""); /* net_adm:ping(node()) is pong */
        return 0;
    }
    if (nk->shutting_down)
        return edist_set_error(EDIST_ECLOSED, "node is stopping");
    nk_op *o = edi_nki_op_new(nk, OP_PING, peer, done, arg,
                              timeout_ms ? timeout_ms
                                         : EDIST_NODE_CALL_TIMEOUT_MS_DEFAULT);
    if (!o)
        return EDIST_EAGAIN; /* edi_nki_op_new said why */
    edi_nki_make_ref(nk, o->ref);
    edi_nki_want_connection(nk, peer, o);
    return 0;
}

/* REG_SEND {'$gen_call', {Self, Ref}, {is_auth, ThisNode}} to net_kernel. */
static void send_ping(edi_nk *nk, nk_op *o)
{
    edi_link *l = edi_nki_up_link(nk, o->peer);
    if (!l) {
        edi_nki_op_finish(nk, o, EDIST_ECLOSED, "connection went down");
        return;
    }
    edist_buf *s = &nk->scratch;
    edist_buf_reset(s);
    edist_enc_atomz(s, "net_kernel");
    size_t msg_at = s->len;
    edist_enc_tuple(s, 3);
    edist_enc_atomz(s, "$gen_call");
    edist_enc_tuple(s, 2);
    edi_nki_enc_pid(nk, s, EDI_NK_KERNEL_PID_ID);
    edi_nki_enc_ref(nk, s, o->ref);
    edist_enc_tuple(s, 2);
    edist_enc_atomz(s, "is_auth");
    edist_enc_atomz(s, nk->name);
    if (edist_buf_error(s)) {
        edi_nki_op_finish(nk, o, edist_buf_error(s), "cannot encode the ping");
        return;
    }
    edist_term_view name = {.ptr = s->data, .len = msg_at};
    edist_buf_reset(&nk->out);
    edi_dist_build_reg_send(&nk->out, l->flags, NULL, nk->kernel_pid, name,
                            edi_nki_buf_view(s, msg_at));
    int rc = edi_nki_send_built(nk, l, EDI_NK_KERNEL_PID_ID, true);
    if (rc)
        edi_nki_op_finish(nk, o, rc, edist_last_error());
}

/* ---- disconnect ---------------------------------------------------------- */

/* erlang:disconnect_node. only_up: leave a connection being set up
 * alone (what a failed ping may disconnect: only what was up). */
static int disconnect_peer(edi_nk *nk, const char *peer, bool only_up)
{
    edi_peer *p = edi_ct_find(&nk->table, peer ? peer : "");
    if (p && (p->state == EDI_PEER_UP || p->state == EDI_PEER_UP_PENDING) &&
        p->owner) {
        edi_nki_link_down(p->owner, "disconnect", true);
        return 0;
    }
    if (!p || only_up || p->state != EDI_PEER_PENDING)
        return edist_set_error(EDIST_ENOTFOUND, "not connected to %s",
                               peer ? peer : "");
    /* Being set up: abort the attempt (port mapper lookup or handshake,
     * ours or the peer's), or an entry orphaned by a lost simultaneous
     * connect. Its waiters fail; no nodedown, it never was up. */
    char detail[EDI_HS_NAME_MAX_BYTES + 80];
    snprintf(detail, sizeof detail,
             "aborted by disconnect_node while being set up");
    if (p->owner) {
        edi_nki_link_fail(p->owner, EDIST_ECLOSED, detail);
    } else {
        nk_log(nk, EDIST_LOG_INFO, "connection to %s %s", p->name, detail);
        edi_nki_peer_waiters_done(nk, p, EDIST_ECLOSED, detail);
    }
    return 0;
}

int edi_nk_disconnect(edi_nk *nk, const char *peer)
{
    return disconnect_peer(nk, peer, false);
}
