/* SPDX-License-Identifier: Apache-2.0 */
/* The process runtime wired to the net kernel, outgoing: the runtime's
 * hooks build distribution messages for the connection to the target's
 * node and queue them on the sending process's stream (its pid id:
 * per-sender order, PROTOCOL-NOTES §4). All on the loop thread. A hook for
 * a node we are not connected to fails: the runtime then answers with
 * noconnection itself. Incoming messages: node_dispatch.c. */
#include "runtime/node_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/dist_flags.h"

int edi_node_pid_view(edist_procid p, edi_dist_term_scratch *s,
                      edist_term_view *out)
{
    edist_pid pid;
    edist_procid_to_pid(p, &pid);
    return edi_dist_pid_view(&pid, s, out);
}

/* Peer name of an interned node index, and that connection's flags;
 * admit_len > 0: EDIST_EAGAIN if a message of
 * that size finds no room in the peer's queue (refused before its frame
 * is built: a sender waiting for room, as the services do, would
 * otherwise copy a large message on every try). */
static int rt_peer(edist_node *n, uint32_t node, char *peer, size_t cap,
                   uint64_t *flags, size_t admit_len)
{
    size_t len = 0;
    peer[0] = 0;
    const char *name = edi_rt_node_name(node, &len);
    if (!name || len == 0 || len >= cap)
        return edist_set_error(EDIST_ENOTFOUND, "unknown node %u", node);
    memcpy(peer, name, len);
    peer[len] = 0;
    return edi_nk_peer_flags(n->nk, peer, admit_len, flags);
}

static int rt_queue(edist_node *n, const char *peer, edist_procid sender,
                    bool force)
{
    return edi_nk_send_frame(n->nk, peer, sender.id, &n->rt_frame, force);
}

/* ---- auto-connection ------------------------------------------------------
 * A signal for a node we are not connected to starts the connection (as
 * erts auto-connects) and waits, copied, until it is up; then the hook runs
 * again. If the connection fails, the signals are dropped and the node is
 * reported down to the runtime: links and monitors made meanwhile fire with
 * noconnection. Signals that only undo or answer (unlink, a link's exit,
 * demonitor, a monitor's DOWN) start no connection, but while one is under
 * way they wait behind what was sent before them, in order. Bounded:
 * beyond the limits a hook fails at once (the runtime then answers
 * noconnection itself). */
/* Bounded by auto_connect_max_signals and auto_connect_max_bytes (each
 * record counted whole: its header, payload and names; 168 bytes for a
 * monitor of a pid on x86-64). A node that learns 10,000 global names of nodes it is
 * not yet connected to monitors each pid at once. */
typedef enum rt_kind {
    RK_SEND = 1,
    RK_REG_SEND,
    RK_LINK,
    RK_EXIT2,
    RK_MONITOR,
    RK_SPAWN,
    /* Only behind an attempt already under way (they start none): they
     * undo or answer what waits before them, and must not overtake it. */
    RK_UNLINK,
    RK_EXIT,
    RK_DEMONITOR,
    RK_MONITOR_EXIT,
} rt_kind;

typedef struct rt_deferred {
    struct rt_deferred *next;
    rt_kind kind;
    edist_procid a, b;
    uint32_t node;
    unsigned sflags;
    uint64_t unlink_id; /* RK_UNLINK */
    bool by_name;
    /* copies after the payload in data[], or NULL */
    const char *name, *module, *function;
    uint8_t ref_bytes[64];
    size_t ref_len;
    size_t len;  /* the payload's */
    size_t size; /* the whole record's, as counted */
    uint8_t data[];
} rt_deferred;

typedef struct rt_connecting {
    edi_hnode h; /* n->connecting, by node index */
    edist_node *n;
    uint32_t node;
    char peer[EDI_HS_NAME_MAX_BYTES + 1];
    bool posted, finished, starting;
    int result;
    rt_deferred *head, *tail;
} rt_connecting;

static int rt_hook_send(void *user, edist_procid from, edist_procid to,
                        const edi_rt_payload *msg);
static int rt_hook_reg_send(void *user, edist_procid from, uint32_t node,
                            const char *name, const edi_rt_payload *msg);
static int rt_hook_link(void *user, edist_procid from, edist_procid to);
static int rt_hook_unlink(void *user, edist_procid from, edist_procid to, uint64_t id);
static int rt_hook_exit(void *user, edist_procid from, edist_procid to,
                        edist_term_view reason);
static int rt_hook_exit2(void *user, edist_procid from, edist_procid to,
                         edist_term_view reason);
static int rt_hook_monitor(void *user, edist_procid watcher,
                           edist_procid target, uint32_t node,
                           const char *name, const edist_ref *ref);
static int rt_hook_demonitor(void *user, edist_procid watcher,
                             edist_procid target, uint32_t node,
                             const char *name, const edist_ref *ref);
static int rt_hook_monitor_exit(void *user, edist_procid target,
                                edist_procid watcher, const char *name,
                                const edist_ref *ref, edist_term_view reason);
static int rt_hook_spawn_request(void *user, edist_procid from, uint32_t node,
                                 const edist_ref *req_id, const char *module,
                                 const char *function, edist_term_view args,
                                 unsigned sflags);

static void rt_deferred_free_all(edist_node *n, rt_connecting *c)
{
    rt_deferred *d = c->head;
    while (d) {
        rt_deferred *next = d->next;
        n->deferred_count--;
        n->deferred_bytes -= d->size;
        free(d);
        d = next;
    }
    c->head = c->tail = NULL;
}

/* Node indexes are handed out in order, never chosen by a peer: a fixed
 * seed spreads them as well as any. */
static uint64_t rt_node_hash(uint32_t node)
{
    return edi_hash_bytes(&node, sizeof node, 0x636f6e6e);
}

/* The attempt to connect to node, or NULL. */
static rt_connecting *rt_connecting_find(edist_node *n, uint32_t node)
{
    if (n->connecting.count == 0)
        return NULL;
    uint64_t h = rt_node_hash(node);
    for (edi_hnode *x = edi_htab_next_with(&n->connecting, h, NULL); x;
         x = edi_htab_next_with(&n->connecting, h, x))
        if (((rt_connecting *)x)->node == node)
            return (rt_connecting *)x;
    return NULL;
}

static void rt_connecting_unlink(edist_node *n, rt_connecting *c)
{
    edi_htab_remove(&n->connecting, &c->h);
}

/* At node_free: attempts whose completion never ran (the loop stopped). */
void edi_node_connecting_free_all(edist_node *n)
{
    for (size_t b = 0; n->connecting.buckets && b <= n->connecting.mask; b++) {
        edi_hnode *x = n->connecting.buckets[b];
        n->connecting.buckets[b] = NULL;
        while (x) {
            edi_hnode *next = x->next;
            rt_deferred_free_all(n, (rt_connecting *)x);
            free(x);
            x = next;
        }
    }
    edi_htab_destroy(&n->connecting);
}

/* Replay (or drop) the signals of a finished connection attempt, from a
 * post: never inside a hook or the net kernel's callbacks. */
static void rt_connect_finish(edi_loop *loop, void *arg)
{
    (void)loop;
    rt_connecting *c = arg;
    edist_node *n = c->n;
    rt_connecting_unlink(n, c);
    if (c->result) {
        rt_deferred_free_all(n, c);
        edi_rt_node_down(n->rt, c->node);
        free(c);
        return;
    }
    rt_deferred *d = c->head;
    c->head = c->tail = NULL;
    while (d) {
        rt_deferred *next = d->next;
        edist_ref ref;
        edist_cursor rc;
        edist_cursor_init(&rc, d->ref_bytes, d->ref_len);
        bool has_ref = d->ref_len && edist_dec_ref(&rc, &ref) == 0;
        edist_term_view v = {.ptr = d->data, .len = d->len};
        /* Forced: what waited for the connection is already bounded
         * (auto_connect_max_*) and cannot wait again without a gap; past
         * the forced allowance the connection goes down, visibly. */
        edi_rt_payload p = {.data = d->data, .len = d->len, .force = true};
        switch (d->kind) {
        case RK_SEND:
            rt_hook_send(n, d->a, d->b, &p);
            break;
        case RK_REG_SEND:
            rt_hook_reg_send(n, d->a, d->node, d->name, &p);
            break;
        case RK_LINK:
            rt_hook_link(n, d->a, d->b);
            break;
        case RK_UNLINK:
            rt_hook_unlink(n, d->a, d->b, d->unlink_id);
            break;
        case RK_EXIT:
            rt_hook_exit(n, d->a, d->b, v);
            break;
        case RK_EXIT2:
            rt_hook_exit2(n, d->a, d->b, v);
            break;
        case RK_MONITOR:
            if (has_ref)
                rt_hook_monitor(n, d->a, d->b, d->node,
                                d->by_name ? d->name : NULL, &ref);
            break;
        case RK_DEMONITOR:
            if (has_ref)
                rt_hook_demonitor(n, d->a, d->b, d->node,
                                  d->by_name ? d->name : NULL, &ref);
            break;
        case RK_MONITOR_EXIT:
            if (has_ref)
                rt_hook_monitor_exit(n, d->a, d->b, d->by_name ? d->name : NULL,
                                     &ref, v);
            break;
        case RK_SPAWN:
            if (has_ref)
                rt_hook_spawn_request(n, d->a, d->node, &ref, d->module,
                                      d->function, v, d->sflags);
            break;
        }
        n->deferred_count--;
        n->deferred_bytes -= d->size;
        free(d);
        d = next;
    }
    free(c);
}

static void rt_connect_done(void *arg, int err, const char *detail)
{
    (void)detail;
    rt_connecting *c = arg;
    c->result = err;
    c->finished = true;
    if (edi_loop_post(c->n->loop, rt_connect_finish, c) == 0)
        c->posted = true;
    else if (!c->starting)
        rt_connect_finish(c->n->loop, c); /* no room to post: now */
}

/* Queue one signal for peer, starting the connection if none is under
 * way. Returns 0 (accepted) or a negative edist_err. */
static int rt_defer(edist_node *n, const char *peer, uint32_t node,
                    const rt_deferred *tmpl, const void *data, size_t len)
{
    const char *texts[3] = {tmpl->name, tmpl->module, tmpl->function};
    size_t text_len[3], size = sizeof(rt_deferred) + len;
    for (int i = 0; i < 3; i++) {
        text_len[i] = texts[i] ? strlen(texts[i]) + 1 : 0;
        size += text_len[i];
    }
    if (atomic_load(&n->stopping))
        return edist_set_error(EDIST_ECLOSED, "not connected to %s", peer);
    if (n->deferred_count >= edi_node_auto_connect_max_signals(n) ||
        n->deferred_bytes + size > edi_node_auto_connect_max_bytes(n)) {
        n->auto_connect_refused++;
        return edist_set_error(EDIST_ECLOSED,
                               "not connected to %s, and %zu signals (%zu bytes) already "
                               "wait for connections (auto_connect_max_signals, "
                               "auto_connect_max_bytes)",
                               peer, n->deferred_count, n->deferred_bytes);
    }
    rt_deferred *d = malloc(size);
    if (!d)
        return edist_set_error(EDIST_ENOMEM, "no memory");
    *d = *tmpl;
    d->next = NULL;
    d->len = len;
    d->size = size;
    if (len)
        memcpy(d->data, data, len);
    char *text = (char *)d->data + len;
    const char **slots[3] = {&d->name, &d->module, &d->function};
    for (int i = 0; i < 3; i++) {
        if (!texts[i])
            continue;
        memcpy(text, texts[i], text_len[i]);
        *slots[i] = text;
        text += text_len[i];
    }
    rt_connecting *c = rt_connecting_find(n, node);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) {
            free(d);
            return edist_set_error(EDIST_ENOMEM, "no memory");
        }
        c->n = n;
        c->node = node;
        snprintf(c->peer, sizeof c->peer, "%s", peer);
        if (edi_htab_insert(&n->connecting, &c->h, rt_node_hash(node)) != 0) {
            free(c);
            free(d);
            return edist_set_error(EDIST_ENOMEM, "no memory");
        }
        /* A completion inside edi_nk_connect is posted, never run inside
         * this hook; if it cannot be posted, the signal fails now. */
        c->starting = true;
        int rc = edi_nk_connect(n->nk, peer, 0, rt_connect_done, c);
        c->starting = false;
        if (rc || (c->finished && !c->posted)) {
            rt_connecting_unlink(n, c);
            free(c);
            free(d);
            return rc ? rc : edist_set_error(EDIST_ECLOSED, "not connected");
        }
    }
    if (c->tail)
        c->tail->next = d;
    else
        c->head = d;
    c->tail = d;
    n->deferred_count++;
    n->deferred_bytes += size;
    if (n->deferred_count > n->deferred_count_max)
        n->deferred_count_max = n->deferred_count;
    return 0;
}

/* Does a signal that starts no connection (unlink, a link's exit,
 * demonitor, a monitor's DOWN) wait behind an attempt under way? What
 * waits there was sent before it: a link replayed after its unlink went
 * out would stay, a monitor after its demonitor leak. */
static bool rt_waits_behind(edist_node *n, const char *peer, uint32_t node)
{
    return peer[0] && rt_connecting_find(n, node) != NULL;
}

/* Does a signal for peer wait for a connection: not connected (worth
 * connecting), or signals of an attempt that just came up are still to be
 * replayed (this one must not overtake them)? */
static bool rt_can_defer_n(edist_node *n, int rc, const char *peer, uint32_t node)
{
    return rc == EDIST_ENOTFOUND ? peer[0] != '\0' : rt_waits_behind(n, peer, node);
}

/* A ref into a deferred record; false if it does not fit. */
static bool rt_defer_ref(rt_deferred *t, const edist_ref *ref)
{
    edist_buf rb;
    edist_buf_init_fixed(&rb, t->ref_bytes, sizeof t->ref_bytes);
    if (edist_enc_ref(&rb, ref) != 0 || edist_buf_error(&rb))
        return false;
    t->ref_len = rb.len;
    return true;
}

/* A message on the send path: built once, by the net kernel, into
 * whatever memory will carry it. */
typedef struct rt_msg_build {
    edi_send_memo *memo;            /* a send to a pid: its pids */
    edist_term_view from, to_name;  /* reg_send; from: alias send too */
    edist_term_view msg;
    edist_term_view alias;          /* ALIAS_SEND to it (not empty) */
    bool by_name;
} rt_msg_build;

/* The memo for a send from -> to: its pids, and the head of the last one. */
static edi_send_memo *rt_send_memo(edist_node *n, edist_procid from,
                                   edist_procid to)
{
    edi_send_memo *sm = &n->send_memo;
    if (!edist_procid_equal(sm->from, from) || !edist_procid_equal(sm->to, to)) {
        sm->from = from;
        sm->to = to;
        edist_procid_to_pid(from, &sm->from_pid);
        edist_procid_to_pid(to, &sm->to_pid);
        sm->head_len = 0;
    }
    return sm;
}

/* The memo's head for a link's flags: its length, 0 for node names only
 * the general builder writes. */
static size_t rt_memo_head(edi_send_memo *sm, uint64_t flags)
{
    uint64_t head_flags = flags & ~(uint64_t)EDI_DIST_BUILD_BARE;
    if (sm->head_len == 0 || sm->head_flags != head_flags) {
        if (edi_dist_build_send_pids_head(sm->head, sizeof sm->head, flags,
                                          &sm->from_pid, &sm->to_pid,
                                          &sm->head_len) != 0)
            sm->head_len = 0;
        sm->head_flags = head_flags;
    }
    return sm->head_len;
}

static int rt_build_msg(void *arg, edist_buf *out, uint64_t flags)
{
    const rt_msg_build *b = arg;
    if (b->alias.len)
        return edi_dist_build_alias_send(out, flags, NULL, b->from, b->alias, b->msg);
    if (b->by_name)
        return edi_dist_build_reg_send(out, flags, NULL, b->from, b->to_name,
                                       b->msg);
    edi_send_memo *sm = b->memo;
    if (rt_memo_head(sm, flags)) {
        int rc = edi_dist_build_send_headed(out, flags, sm->head, sm->head_len,
                                            b->msg);
        if (rc != EDIST_EAGAIN)
            return rc;
    }
    return edi_dist_build_send_pids(out, flags, &sm->from_pid, &sm->to_pid,
                                    b->msg);
}

/* The frame's bytes at most: length prefix, header, control tuple and its
 * op, the two terms, the message and its version byte. */
static size_t rt_msg_max_bytes(const rt_msg_build *b)
{
    size_t terms = b->alias.len  ? b->from.len + b->alias.len
                   : b->by_name ? b->from.len + b->to_name.len
                                : 2 * (3 + 12) + b->memo->from_pid.node.len +
                                      b->memo->to_pid.node.len;
    return 4 + 3 + 2 + 2 + terms + 1 + b->msg.len + 8;
}

/* Not connected (or still connecting): the signal waits, copied, for the
 * connection the runtime's first signal starts. */
static int rt_msg_defer(edist_node *n, edist_procid from, edist_procid to,
                        uint32_t node, const char *name,
                        const edi_rt_payload *msg, int rc)
{
    char peer[EDI_HS_NAME_MAX_BYTES + 1];
    uint64_t flags;
    int prc = rt_peer(n, node, peer, sizeof peer, &flags, 0);
    if (!rt_can_defer_n(n, prc, peer, node))
        return prc ? prc : rc;
    rt_deferred t = {.kind = name ? RK_REG_SEND : RK_SEND, .a = from, .b = to,
                     .node = node};
    if (name) {
        if (strlen(name) >= 256)
            return edist_set_error(EDIST_EINVAL, "name too long");
        t.name = name;
    }
    rc = rt_defer(n, peer, node, &t, msg->data, msg->len);
    if (rc == 0 && msg->release)
        msg->release(msg->owner, msg->data);
    return rc;
}

/* Owned payloads from this size go to the lane uncopied. */
#define RT_OWNED_MIN_BYTES 512u

static int rt_send_msg(edist_node *n, edist_procid from, edist_procid to,
                       uint32_t node, const char *name,
                       const edi_rt_payload *msg)
{
    edi_dist_term_scratch fs, ts;
    /* Filled field by field: zeroing the whole of it (rep stos) was a
     * tenth of a 64-byte stream's sending time. */
    rt_msg_build b;
    b.msg = (edist_term_view){.ptr = msg->data, .len = msg->len};
    b.by_name = name != NULL;
    b.memo = NULL;
    b.alias = (edist_term_view){NULL, 0};
    int rc = 0;
    uint64_t peer_flags;
    if (!name && msg->alias.len && edi_nk_key_flags(n->nk, node, 0, &peer_flags) == 0 &&
        (peer_flags & EDI_DFLAG_ALIAS)) {
        /* a reply to a caller's alias: gone with its call, it is dropped
         * there, not left in the caller's mailbox */
        rc = edi_node_pid_view(from, &fs, &b.from);
        b.alias = msg->alias;
    } else if (name) {
        rc = edi_node_pid_view(from, &fs, &b.from);
        if (rc == 0)
            rc = edi_dist_atom_view(name, strlen(name), &ts, &b.to_name);
    } else {
        b.memo = rt_send_memo(n, from, to);
    }
    if (rc)
        return rc;
    /* Signals waiting for the connection go first. */
    if (n->connecting.count && rt_connecting_find(n, node))
        return rt_msg_defer(n, from, to, node, name, msg, EDIST_ENOTFOUND);
    /* A payload the runtime handed over (edist_send_owned, edist_send_buf)
     * goes to the lane as it is, behind a header built here: no copy.
     * Small ones are cheaper copied than given an iovec of their own. */
    if (!name && !b.alias.len && msg->release && msg->len >= RT_OWNED_MIN_BYTES &&
        msg->data[0] != EDIST_TAG_VERSION) {
        uint64_t flags;
        size_t head_len;
        if (edi_nk_key_flags(n->nk, node, 0, &flags) == 0 &&
            (head_len = rt_memo_head(b.memo, flags)) != 0 &&
            edi_nk_send_owned(n->nk, node, b.memo->head, head_len, msg->data, msg->len,
                              msg->release, msg->owner) == 0)
            return 0;
    }
    bool backlogged;
    rc = edi_nk_send_signal(n->nk, node, from.id, rt_msg_max_bytes(&b),
                            rt_build_msg, &b, msg->force, &backlogged);
    if (rc == EDIST_ENOTFOUND)
        return rt_msg_defer(n, from, to, node, name, msg, rc);
    if (rc == 0 && msg->release)
        msg->release(msg->owner, msg->data); /* copied on the way out */
    if (rc == 0 && backlogged)
        edi_rt_yield_after_send(n->rt);
    return rc;
}

static int rt_hook_send(void *user, edist_procid from, edist_procid to,
                        const edi_rt_payload *msg)
{
    return rt_send_msg(user, from, to, to.node, NULL, msg);
}

static const uint8_t *rt_small_head(void *arg, uint64_t flags, size_t *len)
{
    edi_send_memo *sm = arg;
    *len = rt_memo_head(sm, flags);
    return *len ? sm->head : NULL;
}

/* Pid ! Msg, the express way: see edi_rt_hooks.send_small. A peer still
 * connecting has signals waiting: the general path. */
static int rt_hook_send_small(void *user, edist_procid from, edist_procid to,
                              const uint8_t *msg, size_t len)
{
    edist_node *n = user;
    if (n->connecting.count)
        return EDI_NK_NOT_TAKEN;
    bool backlogged;
    int rc = edi_nk_send_copy(n->nk, to.node, from.id, rt_small_head,
                              rt_send_memo(n, from, to), msg, len, &backlogged);
    if (rc == 0 && backlogged)
        edi_rt_yield_after_send(n->rt);
    return rc;
}

static int rt_hook_reg_send(void *user, edist_procid from, uint32_t node,
                            const char *name, const edi_rt_payload *msg)
{
    return rt_send_msg(user, from, EDIST_PROCID_NULL, node, name, msg);
}

typedef enum rt_pair_op { RT_LINK, RT_UNLINK, RT_UNLINK_ACK } rt_pair_op;

/* LINK, UNLINK_ID (id) and UNLINK_ID_ACK (id). */
static int rt_pair(edist_node *n, rt_pair_op op, edist_procid from,
                   edist_procid to, uint64_t id)
{
    char peer[EDI_HS_NAME_MAX_BYTES + 1];
    uint64_t flags = 0;
    edi_dist_term_scratch fs, ts;
    edist_term_view fv, tv;
    int rc = rt_peer(n, to.node, peer, sizeof peer, &flags, 0);
    /* An ack answers an unlink that came on the connection there is: with
     * none, the peer's end of the link went with it. */
    if (op != RT_UNLINK_ACK && (op == RT_LINK ? rt_can_defer_n(n, rc, peer, to.node)
                                              : rt_waits_behind(n, peer, to.node))) {
        rt_deferred t = {.kind = op == RT_LINK ? RK_LINK : RK_UNLINK, .a = from, .b = to,
                         .unlink_id = id};
        return rt_defer(n, peer, to.node, &t, NULL, 0);
    }
    if (rc == 0 && !(rc = edi_node_pid_view(from, &fs, &fv)) &&
        !(rc = edi_node_pid_view(to, &ts, &tv))) {
        edist_buf_reset(&n->rt_frame);
        if (op == RT_LINK)
            rc = edi_dist_build_link(&n->rt_frame, flags, fv, tv);
        else if (op == RT_UNLINK_ACK && !(flags & EDI_DFLAG_UNLINK_ID))
            return 0; /* it sent a plain UNLINK: nothing to answer */
        else if (op == RT_UNLINK_ACK)
            rc = edi_dist_build_unlink_id_ack(&n->rt_frame, flags, id, fv, tv);
        else if (flags & EDI_DFLAG_UNLINK_ID)
            rc = edi_dist_build_unlink_id(&n->rt_frame, flags, id, fv, tv);
        else
            rc = edi_dist_build_unlink(&n->rt_frame, flags, fv, tv);
        if (rc == 0)
            rc = rt_queue(n, peer, from, true);
    }
    /* An unlink that went out without an id (the old protocol), or did
     * not go out at all, has nobody to acknowledge it: done here. */
    if (op == RT_UNLINK && (rc != 0 || !(flags & EDI_DFLAG_UNLINK_ID)))
        edi_rt_unlink_ack_in(n->rt, to, from, id);
    return rc;
}

static int rt_hook_link(void *user, edist_procid from, edist_procid to)
{
    return rt_pair(user, RT_LINK, from, to, 0);
}

static int rt_hook_unlink(void *user, edist_procid from, edist_procid to, uint64_t id)
{
    return rt_pair(user, RT_UNLINK, from, to, id);
}

static int rt_hook_unlink_ack(void *user, edist_procid from, edist_procid to, uint64_t id)
{
    return rt_pair(user, RT_UNLINK_ACK, from, to, id);
}

static int rt_exit_any(edist_node *n, bool exit2, edist_procid from,
                       edist_procid to, edist_term_view reason)
{
    char peer[EDI_HS_NAME_MAX_BYTES + 1];
    uint64_t flags;
    edi_dist_term_scratch fs, ts;
    edist_term_view fv, tv;
    int rc = rt_peer(n, to.node, peer, sizeof peer, &flags, 0);
    if (exit2 ? rt_can_defer_n(n, rc, peer, to.node) : rt_waits_behind(n, peer, to.node)) {
        rt_deferred t = {.kind = exit2 ? RK_EXIT2 : RK_EXIT, .a = from, .b = to};
        return rt_defer(n, peer, to.node, &t, reason.ptr, reason.len);
    }
    if (rc || (rc = edi_node_pid_view(from, &fs, &fv)) ||
        (rc = edi_node_pid_view(to, &ts, &tv)))
        return rc;
    edist_buf_reset(&n->rt_frame);
    rc = exit2 ? edi_dist_build_exit2(&n->rt_frame, flags, NULL, fv, tv, reason)
               : edi_dist_build_exit(&n->rt_frame, flags, NULL, fv, tv, reason);
    return rc ? rc : rt_queue(n, peer, from, true);
}

static int rt_hook_exit(void *user, edist_procid from, edist_procid to,
                        edist_term_view reason)
{
    return rt_exit_any(user, false, from, to, reason);
}

static int rt_hook_exit2(void *user, edist_procid from, edist_procid to,
                         edist_term_view reason)
{
    return rt_exit_any(user, true, from, to, reason);
}

static int rt_mon_any(edist_node *n, bool demon, edist_procid watcher,
                      edist_procid target, uint32_t node, const char *name,
                      const edist_ref *ref)
{
    char peer[EDI_HS_NAME_MAX_BYTES + 1];
    uint64_t flags;
    edi_dist_term_scratch ws, ts, rs;
    edist_term_view wv, tv, rv;
    uint32_t where = name ? node : target.node;
    int rc = rt_peer(n, where, peer, sizeof peer, &flags, 0);
    if ((demon ? rt_waits_behind(n, peer, where) : rt_can_defer_n(n, rc, peer, where)) &&
        (!name || strlen(name) < 256)) {
        rt_deferred t = {.kind = demon ? RK_DEMONITOR : RK_MONITOR, .a = watcher,
                         .b = target, .node = node, .by_name = name != NULL, .name = name};
        if (rt_defer_ref(&t, ref))
            return rt_defer(n, peer, where, &t, NULL, 0);
    }
    if (rc || (rc = edi_node_pid_view(watcher, &ws, &wv)) ||
        (rc = edi_dist_ref_view(ref, &rs, &rv)))
        return rc;
    rc = name ? edi_dist_atom_view(name, strlen(name), &ts, &tv)
              : edi_node_pid_view(target, &ts, &tv);
    if (rc)
        return rc;
    edist_buf_reset(&n->rt_frame);
    rc = demon ? edi_dist_build_demonitor_p(&n->rt_frame, flags, wv, tv, rv)
               : edi_dist_build_monitor_p(&n->rt_frame, flags, wv, tv, rv);
    return rc ? rc : rt_queue(n, peer, watcher, true);
}

static int rt_hook_monitor(void *user, edist_procid watcher,
                           edist_procid target, uint32_t node,
                           const char *name, const edist_ref *ref)
{
    return rt_mon_any(user, false, watcher, target, node, name, ref);
}

static int rt_hook_demonitor(void *user, edist_procid watcher,
                             edist_procid target, uint32_t node,
                             const char *name, const edist_ref *ref)
{
    return rt_mon_any(user, true, watcher, target, node, name, ref);
}

static int rt_hook_monitor_exit(void *user, edist_procid target,
                                edist_procid watcher, const char *name,
                                const edist_ref *ref, edist_term_view reason)
{
    edist_node *n = user;
    char peer[EDI_HS_NAME_MAX_BYTES + 1];
    uint64_t flags;
    edi_dist_term_scratch ws, ts, rs;
    edist_term_view wv, tv, rv;
    int rc = rt_peer(n, watcher.node, peer, sizeof peer, &flags, 0);
    if (rt_waits_behind(n, peer, watcher.node) && (!name || strlen(name) < 256)) {
        rt_deferred t = {.kind = RK_MONITOR_EXIT, .a = target, .b = watcher,
                         .node = watcher.node, .by_name = name != NULL, .name = name};
        if (rt_defer_ref(&t, ref))
            return rt_defer(n, peer, watcher.node, &t, reason.ptr, reason.len);
    }
    if (rc || (rc = edi_node_pid_view(watcher, &ws, &wv)) ||
        (rc = edi_dist_ref_view(ref, &rs, &rv)))
        return rc;
    /* A monitor by name reports the name as the one that went down. */
    rc = name ? edi_dist_atom_view(name, strlen(name), &ts, &tv)
              : edi_node_pid_view(target, &ts, &tv);
    if (rc)
        return rc;
    edist_buf_reset(&n->rt_frame);
    rc = edi_dist_build_monitor_p_exit(&n->rt_frame, flags, tv, wv, rv,
                                       reason);
    return rc ? rc : rt_queue(n, peer, target, true);
}

static int rt_hook_spawn_request(void *user, edist_procid from, uint32_t node,
                                 const edist_ref *req_id, const char *module,
                                 const char *function, edist_term_view args,
                                 unsigned sflags)
{
    edist_node *n = user;
    char peer[EDI_HS_NAME_MAX_BYTES + 1];
    uint64_t flags;
    edi_dist_term_scratch fs, rs;
    edist_term_view fv, rv;
    int rc = rt_peer(n, node, peer, sizeof peer, &flags, 0);
    if (rt_can_defer_n(n, rc, peer, node) && strlen(module) < 256 &&
        strlen(function) < 256) {
        rt_deferred t = {.kind = RK_SPAWN, .a = from, .node = node,
                         .sflags = sflags, .module = module, .function = function};
        if (rt_defer_ref(&t, req_id))
            return rt_defer(n, peer, node, &t, args.ptr, args.len);
    }
    if (rc || (rc = edi_node_pid_view(from, &fs, &fv)) ||
        (rc = edi_dist_ref_view(req_id, &rs, &rv)))
        return rc;
    /* The argument count: the list's length (a proper list). */
    edist_cursor c;
    uint32_t count = 0;
    edist_cursor_init(&c, args.ptr, args.len);
    if (edist_dec_list(&c, &count) != 0)
        count = 0;
    uint8_t ob[64];
    edist_buf o;
    edist_buf_init_fixed(&o, ob, sizeof ob);
    unsigned nopt = ((sflags & EDI_SPAWN_LINK) ? 1u : 0u) +
                    ((sflags & EDI_SPAWN_MONITOR) ? 1u : 0u);
    if (nopt)
        edist_enc_list(&o, nopt);
    if (sflags & EDI_SPAWN_LINK)
        edist_enc_atomz(&o, "link");
    if (sflags & EDI_SPAWN_MONITOR)
        edist_enc_atomz(&o, "monitor");
    edist_enc_nil(&o);
    edist_term_view ov = {.ptr = o.data, .len = o.len};
    edist_buf_reset(&n->rt_frame);
    /* Our pid as group leader: io of the remote process is not served. */
    rc = edi_dist_build_spawn_request(&n->rt_frame, flags, NULL, rv, fv, fv,
                                      module, function, count, ov, args);
    return rc ? rc : rt_queue(n, peer, from, true);
}

const edi_rt_hooks edi_node_rt_hooks = {
    .send = rt_hook_send,
    .send_small = rt_hook_send_small,
    .reg_send = rt_hook_reg_send,
    .link = rt_hook_link,
    .unlink = rt_hook_unlink,
    .unlink_ack = rt_hook_unlink_ack,
    .exit = rt_hook_exit,
    .exit2 = rt_hook_exit2,
    .monitor = rt_hook_monitor,
    .demonitor = rt_hook_demonitor,
    .monitor_exit = rt_hook_monitor_exit,
    .spawn_request = rt_hook_spawn_request,
};
