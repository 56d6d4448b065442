/* SPDX-License-Identifier: Apache-2.0 */
/* The process runtime wired to the net kernel, incoming: messages arriving
 * from peers go to the runtime's entry points, their payloads handed over
 * as views of the receive buffer (referenced, not copied). All on the loop
 * thread. Outgoing signals: node_signals.c. */
#include "runtime/node_internal.h"

#include <string.h>

#include "control/dist_msg.h"
#include "dataplane/reactor/rxbuf.h"

static void rt_rxbuf_ref(void *owner)
{
    edi_rxbuf_ref(owner);
}

static void rt_rxbuf_unref(void *owner, const void *data)
{
    (void)data;
    edi_rxbuf_unref(owner);
}

static int rt_view_procid(edist_term_view v, edist_procid *out)
{
    edist_pid pid;
    int rc = edi_dist_view_pid(v, &pid);
    return rc ? rc : edist_procid_from_pid(&pid, out);
}

static unsigned rt_spawn_opts(edist_term_view opts)
{
    unsigned f = 0;
    edist_cursor oc;
    uint32_t n;
    if (!opts.ptr)
        return 0;
    edist_cursor_init(&oc, opts.ptr, opts.len);
    if (edist_dec_list(&oc, &n) != 0)
        return 0;
    for (uint32_t i = 0; i < n; i++) {
        edist_term_info info;
        if (edist_peek(&oc, &info))
            break;
        edist_atom a;
        uint32_t ar;
        edist_cursor save = oc;
        if (info.type == EDIST_TYPE_ATOM && edist_dec_atom(&oc, &a) == 0) {
            if (edist_atom_eq(&a, "link"))
                f |= EDI_SPAWN_LINK;
            if (edist_atom_eq(&a, "monitor"))
                f |= EDI_SPAWN_MONITOR;
            continue;
        }
        if (info.type == EDIST_TYPE_TUPLE && edist_dec_tuple(&oc, &ar) == 0 &&
            ar >= 1 && edist_dec_atom(&oc, &a) == 0 &&
            edist_atom_eq(&a, "monitor"))
            f |= EDI_SPAWN_MONITOR;
        oc = save;
        if (edist_skip(&oc))
            break;
    }
    return f;
}

static void rt_spawn_in(edist_node *n, const char *peer, uint64_t flags,
                        const edi_dist_msg *m)
{
    edist_procid parent;
    edist_ref req;
    if (rt_view_procid(m->from, &parent) || edi_dist_view_ref(m->ref, &req))
        return;
    unsigned sf = rt_spawn_opts(m->options);
    char mod[256], fun[256];
    if (m->spawn_module.len >= sizeof mod || m->spawn_function.len >= sizeof fun)
        return;
    memcpy(mod, m->spawn_module.ptr, m->spawn_module.len);
    mod[m->spawn_module.len] = 0;
    memcpy(fun, m->spawn_function.ptr, m->spawn_function.len);
    fun[m->spawn_function.len] = 0;
    edist_term_view args = m->payload;
    static const uint8_t nil = EDIST_TAG_NIL;
    if (!args.ptr) {
        args.ptr = &nil;
        args.len = 1;
    }
    edist_procid pid;
    /* The reply goes first on the new process's stream, so that the
     * exit/DOWN it may send at once follows it (the process runs only
     * once this handler returns to the loop). */
    int rc = edi_rt_spawn_export_for(n->rt, parent, mod, fun, args, sf, &req,
                                     &pid);
    edi_dist_term_scratch ps, es;
    edist_term_view result;
    uint32_t rf = 0;
    if (rc == 0) {
        edi_node_pid_view(pid, &ps, &result);
        rf = ((sf & EDI_SPAWN_LINK) ? EDI_SPAWN_FLAG_LINK : 0) |
             ((sf & EDI_SPAWN_MONITOR) ? EDI_SPAWN_FLAG_MONITOR : 0);
    } else {
        const char *why = rc == EDIST_ENOMEM ? "system_limit" : "badarg";
        edi_dist_atom_view(why, strlen(why), &es, &result);
        pid = EDIST_PROCID_NULL;
    }
    edist_buf_reset(&n->rt_frame);
    if (edi_dist_build_spawn_reply(&n->rt_frame, flags, NULL, m->ref, m->from,
                                   rf, result) == 0)
        edi_nk_send_frame(n->nk, peer, rc == 0 ? pid.id : EDI_NK_SELF_PID_ID,
                          &n->rt_frame, true);
}

/* A message's payload as the runtime takes it: a view of the shared
 * receive buffer it arrived in; while the pool is low (node.c's rx_watch
 * copies the queued ones out) it is copied in: queued messages never
 * starve the sockets. */
static inline edi_rt_incoming rt_incoming(const edist_node *n, const edi_dist_msg *m,
                                          edi_rxbuf *rxbuf)
{
    bool scarce = rxbuf && edi_rxbuf_scarce(rxbuf);
    return (edi_rt_incoming){
        .data = m->payload.ptr,
        .len = m->payload.len,
        .ref = rxbuf ? rt_rxbuf_ref : NULL,
        .unref = rxbuf ? rt_rxbuf_unref : NULL,
        .owner = rxbuf,
        .scarce = scarce,
        .copy_now = scarce && n->rx_low,
    };
}

static int rt_deliver(edist_node *n, edist_procid from, edist_procid to, const edi_dist_msg *m,
                      edi_rxbuf *rxbuf)
{
    edi_rt_incoming in = rt_incoming(n, m, rxbuf);
    return edi_rt_deliver(n->rt, from, to, &in) == EDIST_ENOTFOUND ? EDIST_ENOTFOUND : 0;
}

/* Every signal but a stream's message (rt_dispatch). Kept out of line:
 * its buffers and cases cost a stream's every message a large frame. */
__attribute__((noinline)) static int rt_signal(edist_node *n, const char *peer, uint64_t flags,
                                               const edi_dist_msg *m, edi_rxbuf *rxbuf)
{
    edist_procid from = EDIST_PROCID_NULL, to = EDIST_PROCID_NULL;
    edi_rt_incoming in = rt_incoming(n, m, rxbuf);
    edist_ref ref;
    edist_term_view reason = m->reason;
    if (!reason.ptr)
        reason = m->payload;
    /* from and to were decoded by the parser; their node names are
     * interned here, once per repeating control message (the memo). */
    bool has_from, has_to;
    if (m->memo && m->memo->resolved) {
        has_from = m->memo->has_from;
        has_to = m->memo->has_to;
        from = m->memo->from;
        to = m->memo->to;
    } else {
        has_from = m->from_is_pid &&
                   edist_procid_from_pid(&m->from_pid, &from) == 0;
        has_to = m->to_is_pid && edist_procid_from_pid(&m->to_pid, &to) == 0;
        if (m->memo && has_from == m->from_is_pid && has_to == m->to_is_pid)
            *m->memo = (edi_dist_memo){.resolved = true, .has_from = has_from,
                                       .has_to = has_to, .from = from, .to = to};
    }
    switch (m->sig) {
    case EDI_SIG_SEND:
        if (!m->payload.ptr)
            return 0;
        if (!has_to)
            return 0; /* ALIAS_SEND: aliases are not served yet */
        return rt_deliver(n, from, to, m, rxbuf);
    case EDI_SIG_REG_SEND: {
        edist_atom name;
        if (!m->payload.ptr || edi_dist_view_atom(m->to_name, &name))
            return 0;
        return edi_rt_deliver_name(n->rt, from, name.ptr, name.len, &in) ==
                       EDIST_ENOTFOUND
                   ? EDIST_ENOTFOUND
                   : 0;
    }
    case EDI_SIG_LINK:
        if (has_from && has_to)
            edi_rt_link_in(n->rt, from, to);
        return 0;
    case EDI_SIG_UNLINK:
        if (!has_from || !has_to)
            return 0;
        /* The ack comes from the shard of `to`, after what it sent before. */
        edi_rt_unlink_in(n->rt, from, to, m->op == EDI_DOP_UNLINK_ID ? m->unlink_id : 0);
        return 0;
    case EDI_SIG_UNLINK_ACK:
        if (has_from && has_to)
            edi_rt_unlink_ack_in(n->rt, from, to, m->unlink_id);
        return 0;
    case EDI_SIG_EXIT:
    case EDI_SIG_EXIT2:
        if (reason.ptr && has_from && has_to)
            edi_rt_exit_in(n->rt, from, to, reason, m->sig == EDI_SIG_EXIT2);
        return 0;
    case EDI_SIG_MONITOR: {
        edist_atom name;
        char nm[256];
        if (!has_from || edi_dist_view_ref(m->ref, &ref))
            return 0;
        if (edi_dist_view_atom(m->to, &name) == 0) {
            if (name.len >= sizeof nm)
                return 0;
            memcpy(nm, name.ptr, name.len);
            nm[name.len] = 0;
            edi_rt_monitor_in(n->rt, from, EDIST_PROCID_NULL, nm, &ref);
        } else if (has_to) {
            edi_rt_monitor_in(n->rt, from, to, NULL, &ref);
        }
        return 0;
    }
    case EDI_SIG_DEMONITOR:
        if (!has_from || edi_dist_view_ref(m->ref, &ref))
            return 0;
        /* by name: to stays null, the ref says which */
        edi_rt_demonitor_in(n->rt, from, to, &ref);
        return 0;
    case EDI_SIG_MONITOR_EXIT:
        /* from stays null for a monitor made by name */
        if (reason.ptr && has_to && edi_dist_view_ref(m->ref, &ref) == 0)
            edi_rt_monitor_exit_in(n->rt, from, to, &ref, reason);
        return 0;
    case EDI_SIG_SPAWN_REQUEST:
        rt_spawn_in(n, peer, flags, m);
        return 0;
    case EDI_SIG_SPAWN_REPLY: {
        edist_procid pid = EDIST_PROCID_NULL;
        if (!has_to || edi_dist_view_ref(m->ref, &ref))
            return 0;
        bool ok = rt_view_procid(m->result, &pid) == 0;
        unsigned f = ((m->flags & EDI_SPAWN_FLAG_LINK) ? EDI_SPAWN_LINK : 0) |
                     ((m->flags & EDI_SPAWN_FLAG_MONITOR) ? EDI_SPAWN_MONITOR
                                                          : 0);
        edi_rt_spawn_reply_in(n->rt, to, &ref, ok, pid, m->result, f);
        return 0;
    }
    default:
        return 0; /* GROUP_LEADER, ALTACT_SIG_SEND: not served */
    }
}

/* A stream's message (its control message repeated, its pids resolved
 * once, in the memo) goes straight to the mailbox. */
static int rt_dispatch(void *user, const char *peer, uint64_t flags,
                       const edi_dist_msg *m, edi_rxbuf *rxbuf)
{
    const edi_dist_memo *mm = m->memo;
    if (m->sig == EDI_SIG_SEND && mm && mm->resolved && mm->has_to && m->payload.ptr)
        return rt_deliver(user, mm->from, mm->to, m, rxbuf);
    return rt_signal(user, peer, flags, m, rxbuf);
}

static void rt_node_down(void *user, const char *peer)
{
    edist_node *n = user;
    uint32_t idx;
    if (edi_rt_node_intern(peer, strlen(peer), &idx) == 0)
        edi_rt_node_down(n->rt, idx);
}

static bool rt_has_export(void *user, const edist_atom *module,
                          const edist_atom *function, uint32_t arity)
{
    edist_node *n = user;
    char mod[256], fun[256];
    if (module->len >= sizeof mod || function->len >= sizeof fun)
        return false;
    memcpy(mod, module->ptr, module->len);
    mod[module->len] = 0;
    memcpy(fun, function->ptr, function->len);
    fun[function->len] = 0;
    return edist_export_lookup((edist_runtime *)n->rt, mod, fun, arity, NULL,
                               NULL) == 0;
}

static bool rt_has_name(void *user, const edist_atom *name)
{
    edist_node *n = user;
    char nm[256];
    edist_procid pid;
    if (name->len >= sizeof nm)
        return false;
    memcpy(nm, name->ptr, name->len);
    nm[name->len] = 0;
    return edist_runtime_whereis((edist_runtime *)n->rt, nm, &pid) == 0;
}

static int rt_peer_key(void *user, const char *peer, uint32_t *key)
{
    (void)user;
    return edi_rt_node_intern(peer, strlen(peer), key);
}

const edi_nk_rt_ops edi_node_nk_ops = {
    .peer_key = rt_peer_key,
    .dispatch = rt_dispatch,
    .node_down = rt_node_down,
    .has_export = rt_has_export,
    .has_name = rt_has_name,
};
