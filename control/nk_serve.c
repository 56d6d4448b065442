/* SPDX-License-Identifier: Apache-2.0 */
/* Received messages: what the node answers itself (replies to its own
 * calls, net_kernel's is_auth, monitors nobody serves, erpc spawns),
 * everything else handed to the runtime or the message handler. */
#include "control/netkernel_internal.h"

#include <stdio.h>

/* ---- serving: net_kernel, monitors, erpc spawns -------------------------- */

/* One of the node's own pseudo-processes (the node's, or its net
 * kernel's): replies to our calls come to them. */
static bool is_self(edi_nk *nk, const edist_pid *p)
{
    return (p->id == EDI_NK_SELF_PID_ID || p->id == EDI_NK_KERNEL_PID_ID) &&
           p->serial == 0 && p->creation == nk->cfg.creation &&
           edist_atom_eq(&p->node, nk->name);
}

/* The destination of m, decoded by the parser. */
static bool to_self(edi_nk *nk, const edi_dist_msg *m)
{
    return m->to_is_pid && is_self(nk, &m->to_pid);
}

static bool view_is_atom(edist_term_view v, const char *name)
{
    edist_atom a;
    return edi_dist_view_atom(v, &a) == 0 && edist_atom_eq(&a, name);
}

/* Cursor over a message's payload (never compressed: erts sends no
 * compressed distribution terms, and the builders refuse them). */
static int payload_cursor(const edi_dist_msg *m, edist_cursor *c)
{
    if (!m->payload.ptr)
        return EDIST_ENOTFOUND;
    edist_cursor_init(c, m->payload.ptr, m->payload.len);
    return 0;
}

static void hand_over(edi_nk *nk, edi_link *l, const edi_dist_msg *m,
                      edi_rxbuf *rxbuf)
{
    if (!nk->msg_fn && nk->rt_ops && nk->rt_ops->dispatch) {
        nk->dispatching++;
        int rc = nk->rt_ops->dispatch(nk->rt_user, l->peer_name, l->flags, m,
                                      rxbuf);
        nk->dispatching--;
        if (rc == EDIST_ENOTFOUND) {
            edist_atom name = {0};
            edi_dist_view_atom(m->to_name, &name);
            nk->stats.messages_dropped++;
            nk_log(nk, EDIST_LOG_DEBUG, "dropped %s to %.*s from %s (no such "
                   "process)", edi_dop_name(m->op), (int)name.len,
                   name.ptr ? name.ptr : "", l->peer_name);
        }
        return;
    }
    if (nk->msg_fn) {
        /* The handler gets a term it can walk: erts decodes a message when
         * its receiver reads it and kills the connection if it cannot
         * (bad_dist_ext); a message nobody receives is dropped unread. */
        size_t at = 0;
        int vrc = m->payload.ptr
                      ? edist_term_validate(m->payload.ptr, m->payload.len, &at)
                      : 0;
        if (vrc) {
            char why[300];
            snprintf(why, sizeof why, "bad %s payload (%s at byte %zu of %zu)",
                     edi_dop_name(m->op), edist_strerror(vrc), at,
                     m->payload.len);
            edi_nki_link_down_why(l, "connection_closed", false, why);
            return;
        }
        edist_node_message msg = {
            .peer = l->peer_name,
            .op = m->op,
            .control = m->control.ptr,
            .control_len = m->control.len,
            .payload = m->payload.ptr,
            .payload_len = m->payload.len,
        };
        nk->dispatching++;
        nk->msg_fn(nk->msg_user, &msg);
        nk->dispatching--;
        return;
    }
    nk->stats.messages_dropped++;
    nk_log(nk, EDIST_LOG_DEBUG, "dropped %s from %s (no process runtime yet)",
           edi_dop_name(m->op), l->peer_name);
}

/* A reply {Tag, Reply} to one of our calls, or something for the handler. */
static void message_to_self(edi_nk *nk, edi_link *l, const edi_dist_msg *m,
                            edi_rxbuf *rxbuf)
{
    edist_cursor c;
    uint32_t arity;
    edist_ref ref;
    nk_op *o = NULL;
    if (payload_cursor(m, &c) == 0 && edist_dec_tuple(&c, &arity) == 0 &&
        arity == 2 && edist_dec_ref(&c, &ref) == 0)
        o = edi_nki_op_find_ref(nk, OP_PING, &ref);
    if (o) {
        edist_atom a;
        int yes = edist_dec_atom(&c, &a) == 0 && edist_atom_eq(&a, "yes");
        char detail[EDI_HS_NAME_MAX_BYTES + 64];
        snprintf(detail, sizeof detail, "%s did not answer yes", o->peer);
        edi_nki_op_finish(nk, o, yes ? 0 : EDIST_EAUTH, yes ? NULL : detail);
    } else {
        hand_over(nk, l, m, rxbuf);
    }
}

/* {M, F, Args, []}: one stack frame, as erts reports undef. */
static void enc_frame(edist_buf *s, edist_atom m, edist_atom f,
                      edist_term_view args)
{
    edist_enc_list(s, 1);
    edist_enc_tuple(s, 4);
    edist_enc_atom(s, m.ptr, m.len);
    edist_enc_atom(s, f.ptr, f.len);
    edist_enc_raw(s, args.ptr, args.len);
    edist_enc_nil(s);
    edist_enc_nil(s);
}

/* Encode the exit reason of the process a spawn request would have run.
 * Only what is_alive and nodes checks of a node without its runtime need:
 * erpc:execute_call(Ref, erlang, nodes|node|is_alive, []); the process
 * runtime replaces this table. */
static bool spawn_result(edi_nk *nk, const edi_dist_msg *m, edist_cursor *args,
                         edist_term_view args_view, edist_buf *s)
{
    uint32_t n;
    edist_term_view ref, a;
    edist_atom mod, fun;
    bool execute_call = edist_atom_eq(&m->spawn_module, "erpc") &&
                        edist_atom_eq(&m->spawn_function, "execute_call") &&
                        m->spawn_arity == 4;
    bool execute_cast = edist_atom_eq(&m->spawn_module, "erpc") &&
                        edist_atom_eq(&m->spawn_function, "execute_cast") &&
                        m->spawn_arity == 3;
    if (execute_cast) {
        edist_enc_atomz(s, "normal");
        return true;
    }
    if (execute_call && edist_dec_list(args, &n) == 0 && n == 4 &&
        edist_dec_term(args, &ref) == 0 && edist_dec_atom(args, &mod) == 0 &&
        edist_dec_atom(args, &fun) == 0 && edist_dec_term(args, &a) == 0) {
        bool no_args = a.len == 1 && a.ptr[0] == EDIST_TAG_NIL;
        bool erlang = edist_atom_eq(&mod, "erlang");
        if (erlang && no_args &&
            (edist_atom_eq(&fun, "nodes") || edist_atom_eq(&fun, "node") ||
             edist_atom_eq(&fun, "is_alive"))) {
            edist_enc_tuple(s, 3);
            edist_enc_raw(s, ref.ptr, ref.len);
            edist_enc_atomz(s, "return");
            if (edist_atom_eq(&fun, "nodes"))
                edi_nki_enc_nodes(nk, s, EDIST_NODES_VISIBLE);
            else if (edist_atom_eq(&fun, "node"))
                edist_enc_atomz(s, nk->name);
            else
                edist_enc_atomz(s, "true");
            return true;
        }
        /* {Ref, error, undef, [{M, F, A, []}]} as erpc reports it. */
        edist_enc_tuple(s, 4);
        edist_enc_raw(s, ref.ptr, ref.len);
        edist_enc_atomz(s, "error");
        edist_enc_atomz(s, "undef");
        enc_frame(s, mod, fun, a);
        return false;
    }
    /* Any other function: the process dies at once with undef. */
    edist_enc_tuple(s, 2);
    edist_enc_atomz(s, "undef");
    enc_frame(s, m->spawn_module, m->spawn_function, args_view);
    return false;
}

static void serve_spawn(edi_nk *nk, edi_link *l, const edi_dist_msg *m,
                        edi_rxbuf *rxbuf)
{
    if (!nk->msg_fn && nk->rt_ops && nk->rt_ops->has_export &&
        nk->rt_ops->has_export(nk->rt_user, &m->spawn_module,
                               &m->spawn_function, m->spawn_arity)) {
        hand_over(nk, l, m, rxbuf);
        return;
    }
    bool want_link = false, want_monitor = false;
    edist_cursor oc;
    uint32_t n;
    edist_cursor_init(&oc, m->options.ptr, m->options.len);
    if (m->options.ptr && edist_dec_list(&oc, &n) == 0) {
        for (uint32_t i = 0; i < n; i++) {
            edist_term_info info;
            if (edist_peek(&oc, &info))
                break;
            edist_atom a;
            uint32_t ar;
            edist_cursor save = oc;
            if (info.type == EDIST_TYPE_ATOM && edist_dec_atom(&oc, &a) == 0) {
                want_link |= edist_atom_eq(&a, "link");
                want_monitor |= edist_atom_eq(&a, "monitor");
                continue;
            }
            if (info.type == EDIST_TYPE_TUPLE &&
                edist_dec_tuple(&oc, &ar) == 0 && ar >= 1 &&
                edist_dec_atom(&oc, &a) == 0 && edist_atom_eq(&a, "monitor"))
                want_monitor = true;
            oc = save;
            if (edist_skip(&oc))
                break;
        }
    }
    edist_cursor args;
    edist_term_view args_view = {0};
    if (payload_cursor(m, &args) == 0) {
        args_view.ptr = args.data + args.pos;
        args_view.len = edist_cursor_remaining(&args);
    }
    edist_buf *s = &nk->scratch;
    edist_buf_reset(s);
    uint32_t pid_id = nk->next_pid_id;
    edi_nki_enc_pid(nk, s, pid_id);
    size_t reason_at = s->len;
    nk->next_pid_id = nk->next_pid_id == UINT32_MAX ? NK_FIRST_SPAWN_PID_ID
                                                    : nk->next_pid_id + 1;
    bool builtin = false;
    if (args_view.ptr)
        builtin = spawn_result(nk, m, &args, args_view, s);
    else
        edist_enc_atomz(s, "badarg");
    if (!builtin && nk->msg_fn) {
        /* Not ours to answer: whoever installed a handler may. */
        hand_over(nk, l, m, rxbuf);
        return;
    }
    edist_term_view pid = {.ptr = s->data, .len = reason_at};
    edist_term_view reason = edi_nki_buf_view(s, reason_at);
    uint32_t flags = (want_link ? EDI_SPAWN_FLAG_LINK : 0) |
                     (want_monitor ? EDI_SPAWN_FLAG_MONITOR : 0);
    edist_buf_reset(&nk->out);
    edi_dist_build_spawn_reply(&nk->out, l->flags, NULL, m->ref, m->from, flags,
                               pid);
    /* The reply, then the exit: one stream, the new process's. */
    if (edi_nki_send_built(nk, l, pid_id, true) != 0)
        return;
    if (want_monitor) {
        edist_buf_reset(&nk->out);
        edi_dist_build_monitor_p_exit(&nk->out, l->flags, pid, m->from, m->ref,
                                      reason);
        if (edi_nki_send_built(nk, l, pid_id, true) != 0)
            return;
    }
    if (want_link) {
        edist_buf_reset(&nk->out);
        edi_dist_build_exit(&nk->out, l->flags, NULL, pid, m->from, reason);
        edi_nki_send_built(nk, l, pid_id, true);
    }
}

static void reply_noproc_monitor(edi_nk *nk, edi_link *l, const edi_dist_msg *m)
{
    uint8_t noproc[16];
    edist_buf b;
    edist_buf_init_fixed(&b, noproc, sizeof noproc);
    edist_enc_atomz(&b, "noproc");
    edist_buf_reset(&nk->out);
    edi_dist_build_monitor_p_exit(&nk->out, l->flags, m->to, m->from, m->ref,
                                  edi_nki_buf_view(&b, 0));
    edi_nki_send_built(nk, l, EDI_NK_KERNEL_PID_ID, true);
}

/* Does a process of the runtime own the registered name in view v? */
static bool rt_owns_name(edi_nk *nk, edist_term_view v)
{
    edist_atom a;
    return !nk->msg_fn && nk->rt_ops && nk->rt_ops->has_name &&
           edi_dist_view_atom(v, &a) == 0 &&
           nk->rt_ops->has_name(nk->rt_user, &a);
}

/* One received message: what the node itself answers (its own
 * pseudo-processes, net_kernel while no process has that name, spawn
 * requests), else the runtime's. rxbuf holds the bytes m's payload points
 * into (NULL: valid during the call only); its other views may be the
 * reassembler's copy, valid during the call only. */
void edi_nki_dispatch(edi_nk *nk, edi_link *l, const edi_dist_msg *m,
                      edi_rxbuf *rxbuf)
{
    switch (m->sig) {
    case EDI_SIG_SEND:
        if (to_self(nk, m))
            message_to_self(nk, l, m, rxbuf);
        else
            hand_over(nk, l, m, rxbuf);
        return;
    case EDI_SIG_REG_SEND:
        /* The lane agreement (nk_lane.c) is the kernel's, at dispatch:
         * a switch must take effect between the messages around it. A
         * switch feeds the held lane frames to this link's reassembler
         * before it returns, so m may be gone then: nothing reads it
         * after. */
        if (m->payload.ptr && edi_nki_lane_message(nk, l, m))
            return;
        if (!rt_owns_name(nk, m->to_name) &&
            view_is_atom(m->to_name, "net_kernel")) {
            edist_term_view from, tag;
            if (edi_dist_match_is_auth(m, &from, &tag, NULL) == 1) {
                uint8_t yes[8];
                edist_buf b;
                edist_buf_init_fixed(&b, yes, sizeof yes);
                edist_enc_atomz(&b, "yes");
                edist_buf_reset(&nk->out);
                edi_dist_build_gen_reply(&nk->out, l->flags, nk->kernel_pid,
                                         from, tag, edi_nki_buf_view(&b, 0));
                edi_nki_send_built(nk, l, EDI_NK_KERNEL_PID_ID, true);
                nk_log(nk, EDIST_LOG_DEBUG, "is_auth from %s: yes",
                       l->peer_name);
                return;
            }
        }
        hand_over(nk, l, m, rxbuf);
        return;
    case EDI_SIG_MONITOR:
    case EDI_SIG_DEMONITOR:
        /* gen:call monitors {net_kernel, Node} before its call: a monitor
         * of a process that exists needs no answer. Anything else that
         * nobody serves gets DOWN noproc at once, as erts answers. */
        if (!rt_owns_name(nk, m->to) &&
            (view_is_atom(m->to, "net_kernel") || to_self(nk, m)))
            return;
        if (m->sig == EDI_SIG_MONITOR && !nk->msg_fn && !nk->rt_ops)
            reply_noproc_monitor(nk, l, m);
        else
            hand_over(nk, l, m, rxbuf);
        return;
    case EDI_SIG_SPAWN_REQUEST:
        serve_spawn(nk, l, m, rxbuf);
        return;
    default:
        hand_over(nk, l, m, rxbuf);
        return;
    }
}
