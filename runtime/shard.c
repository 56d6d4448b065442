/* SPDX-License-Identifier: Apache-2.0 */
/* Shards: N threads, each with its own loop, scheduler, processes, message
 * pool, links and monitors, and the signals between them.
 *
 * A pid names its shard (runtime_internal.h). A signal for a process of
 * another shard is a 64-byte record (edi_xrec) pushed on the SPSC ring
 * from this shard to that one: one ring per ordered pair, so what a
 * process sends another (messages, links, exits, monitors, DOWNs) arrives
 * in the order sent, as within one shard. The receiving shard takes its
 * rings every loop iteration, in batches, and acts on each record with the
 * same entry points the node uses for signals from other nodes: to a
 * shard, the others look like remote signal sources of its own node.
 *
 * Shard 0 also runs the node's net kernel (every peer connection is owned
 * by it for now): a signal for another node from shard k > 0 goes to shard
 * 0 as a record, and shard 0 calls the node's hook; what the hook cannot
 * do (no connection) is answered back as the runtime answers it locally
 * (noconnection exit, DOWN, spawn_reply).
 *
 * Full rings. A record that finds its ring full waits in the producer's
 * backlog, behind which every later record to that shard queues, so order
 * holds and nothing is dropped; a green process that sends while the
 * backlog is long is held back (blocked) until it drains, and a thread's
 * send waits as for a full mailbox. A record the consumer cannot act on
 * yet (a full mailbox, a peer's full send queue) stays at the head of its
 * ring: that ring waits, in order, and is retried on a backing-off timer.
 *
 * Wake-ups. A producer wakes the consumer's loop once per batch (after the
 * loop iteration that pushed), and only if it sleeps; a consumer that made
 * room wakes a producer that is waiting for it. Both are the Dekker pattern
 * of edi_loop_wake: see the fences in flush_wakes/shard_pending and
 * flush_backlogs/drain. */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/ring/spsc.h"
#include "runtime/runtime_internal.h"

_Static_assert(sizeof(edi_xrec) == 64, "a cross-shard record is one cache line");

/* Records taken from one ring per poll, before the loop looks at its other
 * work again. */
#define XBATCH_RECORDS 256u
/* A green sender is held back once this many records wait behind a full
 * ring to one shard, until fewer than the second number do. */
#define HOLD_BACKLOG_RECORDS 256u
#define HOLD_RESUME_RECORDS 64u
/* A ring whose head record cannot be acted on is retried after this long,
 * doubling while nothing moves. */
#define XHOLD_RETRY_MS 1u
#define XHOLD_RETRY_MAX_MS 16u

/* What a record points to when a signal carries more than two pids. */
typedef struct edi_xblob {
    edi_refkey ref;
    bool has_ref;
    bool ok;
    uint32_t node;
    unsigned sflags;
    edist_procid pid;
    edi_msg *msg;                  /* EDI_X_REG_SEND */
    const char *name, *module, *function; /* in data, or NULL */
    edist_term_view term;          /* reason, args or error, in data */
    uint8_t data[];
} edi_xblob;

static edi_xblob *blob_new(const edist_ref *ref, const char *name, const char *module,
                           const char *function, edist_term_view term)
{
    size_t nl = name ? strlen(name) + 1 : 0, ml = module ? strlen(module) + 1 : 0,
           fl = function ? strlen(function) + 1 : 0;
    edi_xblob *b = calloc(1, sizeof *b + nl + ml + fl + term.len);
    if (!b)
        return NULL;
    if (ref) {
        if (edi_refkey_from_ref(ref, &b->ref) != 0) {
            free(b);
            return NULL;
        }
        b->has_ref = true;
    }
    uint8_t *d = b->data;
    if (name) {
        memcpy(d, name, nl);
        b->name = (const char *)d;
        d += nl;
    }
    if (module) {
        memcpy(d, module, ml);
        b->module = (const char *)d;
        d += ml;
    }
    if (function) {
        memcpy(d, function, fl);
        b->function = (const char *)d;
        d += fl;
    }
    if (term.len) {
        memcpy(d, term.ptr, term.len);
        b->term.ptr = d;
        b->term.len = term.len;
    }
    return b;
}

/* The record's memory goes: it was not acted on (the group is going
 * away, or no memory to queue it). */
static void xrec_free(edi_msg_pool *pool, const edi_xrec *r)
{
    switch (r->kind) {
    case EDI_X_SEND:
        edi_msg_free(pool, r->ptr);
        break;
    case EDI_X_REG_SEND: {
        edi_xblob *b = r->ptr;
        if (b && b->msg)
            edi_msg_free(pool, b->msg);
        free(b);
        break;
    }
    case EDI_X_EXIT: {
        edist_term_view v = {r->ptr, (size_t)r->len};
        if (!edi_reason_static(v))
            free(r->ptr);
        break;
    }
    case EDI_X_ALIVE:
    case EDI_X_ALIVE_REPLY:
        if (r->ptr)
            edi_req_complete(r->ptr, EDIST_ECLOSED); /* its thread waits */
        break;
    default:
        free(r->ptr);
        break;
    }
}

/* ---- the group ------------------------------------------------------------------ */

edi_rt *edi_rt_here(const edi_rt *rt)
{
    const edi_shards *g = rt->g;
    for (uint32_t i = 0; i < g->n; i++)
        if (g->rt[i] && edi_loop_on_thread(g->rt[i]->loop))
            return g->rt[i];
    return NULL;
}

edi_rt *edi_rt_owner(const edi_rt *rt, edist_procid pid)
{
    if (pid.node != rt->node_index)
        return NULL;
    uint32_t s = pid.id & rt->id_mask;
    return s < rt->nshards ? rt->g->rt[s] : NULL;
}

edi_rt *edi_rt_next_spawn(edi_rt *rt)
{
    edi_shards *g = rt->g;
    return g->rt[atomic_fetch_add_explicit(&g->next_spawn, 1, memory_order_relaxed) % g->n];
}

edi_rt *edi_rt_next_attach(edi_rt *rt)
{
    edi_shards *g = rt->g;
    return g->rt[atomic_fetch_add_explicit(&g->next_attach, 1, memory_order_relaxed) % g->n];
}

bool edi_rt_quiet(const edi_rt *rt)
{
    return atomic_load_explicit(&rt->g->quiet, memory_order_relaxed) != 0;
}

void edi_rt_shard_thread_init(edi_rt *rt)
{
    const edi_shards *g = rt->g;
    if (rt->shard >= g->ncores || g->cores[rt->shard] < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(g->cores[rt->shard], &set);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    if (rc)
        edi_rt_log(rt, EDIST_LOG_WARNING, "shard %u: cannot pin its thread to CPU %d: %s",
                   rt->shard, g->cores[rt->shard], strerror(rc));
}

/* "C0,C1,...": CPU numbers, one per shard from shard 0. */
static int parse_cores(edi_shards *g, const char *text)
{
    for (uint32_t i = 0; i < EDI_SHARDS_MAX; i++)
        g->cores[i] = -1;
    g->ncores = 0;
    if (!text || !text[0])
        return 0;
    const char *p = text;
    for (;;) {
        while (*p == ' ')
            p++;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v >= CPU_SETSIZE || g->ncores >= EDI_SHARDS_MAX)
            return edist_set_error(EDIST_EINVAL,
                                   "shard_cores: '%s' is not a list of CPU numbers (0..%d), "
                                   "one per shard",
                                   text, CPU_SETSIZE - 1);
        g->cores[g->ncores++] = (int)v;
        p = end;
        while (*p == ' ')
            p++;
        if (!*p)
            return 0;
        if (*p != ',')
            return edist_set_error(EDIST_EINVAL,
                                   "shard_cores: '%s' is not a comma-separated list", text);
        p++;
    }
}

static uint32_t shard_poll(edi_loop *loop, void *arg, uint32_t budget);
static void shard_flush(edi_loop *loop, void *arg);
static bool shard_pending(void *arg);
static void retry_held(edi_loop *loop, edi_timer *t, void *arg);

int edi_shards_start(edi_shards *g, const char *cores, uint32_t ring_entries)
{
    int rc = parse_cores(g, cores);
    if (rc)
        return rc;
    g->ring_entries = ring_entries;
    if (g->n == 1)
        return 0; /* no rings, no poller: one shard costs what it always did */
    uint32_t n = g->n;
    g->rings = calloc((size_t)n * n, sizeof *g->rings);
    g->want_room = calloc((size_t)n * n, sizeof *g->want_room);
    if (!g->rings || !g->want_room)
        return edist_set_error(EDIST_ENOMEM, "shards: no memory");
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < n; j++)
            if (i != j && (rc = edi_ring_spsc_new(ring_entries, sizeof(edi_xrec),
                                                  &g->rings[i * n + j])) != 0)
                return rc;
    for (uint32_t i = 0; i < n; i++) {
        edi_rt *rt = g->rt[i];
        rt->xout = calloc(n, sizeof *rt->xout);
        rt->xin = calloc(n, sizeof *rt->xin);
        if (!rt->xout || !rt->xin)
            return edist_set_error(EDIST_ENOMEM, "shards: no memory");
        for (uint32_t j = 0; j < n; j++) {
            edi_timer_init(&rt->xin[j].retry);
            rt->xin[j].rt = rt;
            rt->xin[j].from = j;
            rt->xin[j].retry_ms = XHOLD_RETRY_MS;
            if (i == j)
                continue;
            rt->xout[j].ring = g->rings[i * n + j];
            rt->xin[j].ring = g->rings[j * n + i];
        }
        edi_poll_source_init(&rt->xpoll, "shard rings", shard_poll,
                             shard_flush, shard_pending, rt);
        if ((rc = edi_loop_poll_add(rt->loop, &rt->xpoll)) != 0)
            return rc;
    }
    for (uint32_t i = 1; i < n; i++) {
        rc = edi_rt_start_thread(g->rt[i], &g->threads[i]);
        if (rc)
            return rc;
        g->thread_started[i] = true;
    }
    return 0;
}

void edi_shards_free(edi_shards *g)
{
    if (!g)
        return;
    atomic_store(&g->quiet, 1);
    for (uint32_t i = 1; i < g->n; i++)
        if (g->thread_started[i])
            edi_rt_stop_thread(g->rt[i], g->threads[i]);
    uint32_t n = g->n;
    edi_xout *outs[EDI_SHARDS_MAX] = {0};
    edi_xin *ins[EDI_SHARDS_MAX] = {0};
    for (uint32_t i = 0; i < n; i++) {
        edi_rt *rt = g->rt[i];
        if (!rt)
            continue;
        outs[i] = rt->xout;
        ins[i] = rt->xin;
        /* No loop runs these any more (or this is shard 0's thread). */
        if (n > 1) /* one shard has no rings to poll */
            edi_loop_poll_remove(rt->loop, &rt->xpoll);
        for (uint32_t j = 0; ins[i] && j < n; j++)
            edi_loop_timer_cancel(rt->loop, &ins[i][j].retry);
    }
    for (uint32_t i = 0; i < n; i++)
        edi_rt_shard_free(g->rt[i]);
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t j = 0; outs[i] && j < n; j++) {
            edi_xwait *w = outs[i][j].backlog;
            while (w) {
                edi_xwait *next = w->next;
                xrec_free(NULL, &w->rec);
                free(w);
                w = next;
            }
            free(outs[i][j].waiters);
        }
        free(outs[i]);
        free(ins[i]);
    }
    for (size_t k = 0; g->rings && k < (size_t)n * n; k++) {
        edi_xrec r;
        while (g->rings[k] && edi_ring_spsc_pop(g->rings[k], &r))
            xrec_free(NULL, &r);
        edi_ring_spsc_free(g->rings[k]);
    }
    free(g->rings);
    free((void *)g->want_room);
    edi_registry_destroy(g);
    free(g);
}

/* ---- producing ------------------------------------------------------------------ */

static void xpush(edi_rt *rt, uint32_t dest, const edi_xrec *r)
{
    edi_xout *o = &rt->xout[dest];
    o->wake = true;
    rt->xwake = true;
    if (!o->backlog && edi_ring_spsc_push(o->ring, r)) {
        EDI_COUNT_ADD(o->pushed, 1);
        return;
    }
    /* Full (or records wait already): behind them, in order. */
    edi_xwait *w = malloc(sizeof *w);
    if (!w) {
        edi_rt_log(rt, EDIST_LOG_ERROR,
                   "shard %u: no memory to queue a signal for shard %u: dropped", rt->shard,
                   dest);
        EDI_COUNT_ADD(rt->dropped, 1);
        xrec_free(&rt->pool, r);
        return;
    }
    w->next = NULL;
    w->rec = *r;
    if (o->backlog_tail)
        o->backlog_tail->next = w;
    else
        o->backlog = w;
    o->backlog_tail = w;
    o->backlog_count++;
    rt->xbacklog++;
    EDI_COUNT_ADD(o->pushed, 1);
    EDI_COUNT_ADD(rt->x_ring_full, 1);
}

/* Where a signal for target (a pid; null with node for a name) goes:
 * ROUTE_PUSH to *dest, ROUTE_HOOK (call the node's hook here), or an
 * error: EDIST_ECLOSED (no distribution, or the group is going away),
 * EDIST_ENOTFOUND (a pid of this node no shard has). */
enum { ROUTE_HOOK = 0, ROUTE_PUSH = 1 };

static int route(edi_rt *rt, uint32_t node, edist_procid target, uint32_t *dest)
{
    if (edi_rt_quiet(rt))
        return EDIST_ECLOSED;
    if (node == rt->node_index) {
        uint32_t d = target.id & rt->id_mask;
        if (d >= rt->nshards || d == rt->shard)
            return EDIST_ENOTFOUND;
        *dest = d;
        return ROUTE_PUSH;
    }
    if (!rt->has_hooks)
        return EDIST_ECLOSED;
    if (rt->shard == 0)
        return ROUTE_HOOK;
    *dest = 0;
    return ROUTE_PUSH;
}

static void xmsg_release(void *owner, const void *data)
{
    (void)data;
    edi_msg_free(NULL, owner);
}

/* Shard 0: the node's send hook for a message entry. 0: taken; else m is
 * the caller's. */
static int hook_send_msg(edi_rt *rt, edist_procid from, edist_procid to, edi_msg *m,
                         bool force)
{
    if (!rt->hooks.send)
        return EDIST_ECLOSED;
    edi_rt_payload pl = {m->data, m->len, xmsg_release, m, force, {NULL, 0}};
    return rt->hooks.send(rt->hooks.user, from, to, &pl);
}

int edi_out_send_msg(edi_rt *rt, edist_procid from, edist_procid to, edi_msg *m,
                     edi_limit limit, bool force)
{
    uint32_t dest;
    int rc = route(rt, to.node, to, &dest);
    if (rc == ROUTE_HOOK)
        return hook_send_msg(rt, from, to, m, force);
    if (rc < 0)
        return rc;
    edi_xrec r = {.kind = EDI_X_SEND, .limit = (uint8_t)limit, .force = force,
                  .from = from, .to = to, .ptr = m};
    xpush(rt, dest, &r);
    return 0;
}

static edi_msg *msg_of(edi_rt *rt, const edi_rt_payload *msg)
{
    return msg->release ? edi_msg_external(&rt->pool, msg->data, msg->len, msg->release,
                                           msg->owner)
                        : edi_msg_copy(&rt->pool, msg->data, msg->len);
}

int edi_out_send(edi_rt *rt, edist_procid from, edist_procid to, const edi_rt_payload *msg,
                 edi_limit limit)
{
    uint32_t dest;
    int rc = route(rt, to.node, to, &dest);
    if (rc == ROUTE_HOOK)
        return rt->hooks.send ? rt->hooks.send(rt->hooks.user, from, to, msg) : EDIST_ECLOSED;
    if (rc < 0)
        return rc;
    edi_msg *m = msg_of(rt, msg);
    if (!m)
        return edist_set_error(EDIST_ENOMEM, "send: no memory");
    edi_xrec r = {.kind = EDI_X_SEND, .limit = (uint8_t)limit, .force = msg->force,
                  .from = from, .to = to, .ptr = m};
    xpush(rt, dest, &r);
    return 0;
}

static int hook_reg_send_msg(edi_rt *rt, edist_procid from, uint32_t node, const char *name,
                             edi_msg *m)
{
    if (!rt->hooks.reg_send)
        return EDIST_ECLOSED;
    edi_rt_payload pl = {m->data, m->len, xmsg_release, m, false, {NULL, 0}};
    return rt->hooks.reg_send(rt->hooks.user, from, node, name, &pl);
}

int edi_out_reg_send_msg(edi_rt *rt, edist_procid from, uint32_t node, const char *name,
                         edi_msg *m)
{
    uint32_t dest;
    int rc = route(rt, node, EDIST_PROCID_NULL, &dest);
    if (rc == ROUTE_HOOK)
        return hook_reg_send_msg(rt, from, node, name, m);
    if (rc < 0)
        return rc;
    edi_xblob *b = blob_new(NULL, name, NULL, NULL, (edist_term_view){NULL, 0});
    if (!b)
        return edist_set_error(EDIST_ENOMEM, "send: no memory");
    b->msg = m;
    b->node = node;
    edi_xrec r = {.kind = EDI_X_REG_SEND, .from = from, .node = node, .ptr = b};
    xpush(rt, dest, &r);
    return 0;
}

int edi_out_reg_send(edi_rt *rt, edist_procid from, uint32_t node, const char *name,
                     const edi_rt_payload *msg)
{
    uint32_t dest;
    int rc = route(rt, node, EDIST_PROCID_NULL, &dest);
    if (rc == ROUTE_HOOK)
        return rt->hooks.reg_send ? rt->hooks.reg_send(rt->hooks.user, from, node, name, msg)
                                  : EDIST_ECLOSED;
    if (rc < 0)
        return rc;
    edi_msg *m = msg_of(rt, msg);
    if (!m)
        return edist_set_error(EDIST_ENOMEM, "send: no memory");
    rc = edi_out_reg_send_msg(rt, from, node, name, m);
    if (rc) {
        if (m->ext)
            m->u.x.release = NULL; /* the caller keeps the payload */
        edi_msg_free(&rt->pool, m);
    }
    return rc;
}

/* Link, unlink and its acknowledgement: two pids and an unlink id. */
static int out_pair(edi_rt *rt, uint8_t kind, edist_procid from, edist_procid to, uint64_t id)
{
    uint32_t dest;
    int rc = route(rt, to.node, to, &dest);
    if (rc == ROUTE_HOOK) {
        void *u = rt->hooks.user;
        switch (kind) {
        case EDI_X_LINK:
            return rt->hooks.link ? rt->hooks.link(u, from, to) : EDIST_ECLOSED;
        case EDI_X_UNLINK:
            return rt->hooks.unlink ? rt->hooks.unlink(u, from, to, id) : EDIST_ECLOSED;
        default:
            return rt->hooks.unlink_ack ? rt->hooks.unlink_ack(u, from, to, id) : EDIST_ECLOSED;
        }
    }
    if (rc < 0)
        return rc;
    edi_xrec r = {.kind = kind, .from = from, .to = to, .len = id,
                  .downs = edi_rt_node_downs(rt, to.node)};
    xpush(rt, dest, &r);
    return 0;
}

int edi_out_link(edi_rt *rt, edist_procid from, edist_procid to)
{
    return out_pair(rt, EDI_X_LINK, from, to, 0);
}

int edi_out_unlink(edi_rt *rt, edist_procid from, edist_procid to, uint64_t id)
{
    return out_pair(rt, EDI_X_UNLINK, from, to, id);
}

int edi_out_unlink_ack(edi_rt *rt, edist_procid from, edist_procid to, uint64_t id)
{
    return out_pair(rt, EDI_X_UNLINK_ACK, from, to, id);
}

int edi_out_exit(edi_rt *rt, edist_procid from, edist_procid to, edist_term_view reason,
                 bool exit2)
{
    uint32_t dest;
    int rc = route(rt, to.node, to, &dest);
    if (rc == ROUTE_HOOK) {
        if (exit2)
            return rt->hooks.exit2 ? rt->hooks.exit2(rt->hooks.user, from, to, reason)
                                   : EDIST_ECLOSED;
        return rt->hooks.exit ? rt->hooks.exit(rt->hooks.user, from, to, reason)
                              : EDIST_ECLOSED;
    }
    if (rc < 0)
        return rc;
    void *copy = (void *)reason.ptr;
    if (!edi_reason_static(reason)) {
        copy = malloc(reason.len ? reason.len : 1);
        if (!copy)
            return edist_set_error(EDIST_ENOMEM, "exit: no memory");
        memcpy(copy, reason.ptr, reason.len);
    }
    edi_xrec r = {.kind = EDI_X_EXIT, .flags = exit2, .from = from, .to = to, .ptr = copy,
                  .len = reason.len};
    xpush(rt, dest, &r);
    return 0;
}

static int out_mon(edi_rt *rt, uint8_t kind, edist_procid watcher, edist_procid target,
                   uint32_t node, const char *name, const edist_ref *ref)
{
    uint32_t where = name ? node : target.node, dest;
    int rc = route(rt, where, target, &dest);
    if (rc == ROUTE_HOOK) {
        int (*hook)(void *, edist_procid, edist_procid, uint32_t, const char *,
                    const edist_ref *) =
            kind == EDI_X_MONITOR ? rt->hooks.monitor : rt->hooks.demonitor;
        return hook ? hook(rt->hooks.user, watcher, target, node, name, ref) : EDIST_ECLOSED;
    }
    if (rc < 0)
        return rc;
    edi_xblob *b = blob_new(ref, name, NULL, NULL, (edist_term_view){NULL, 0});
    if (!b)
        return edist_set_error(EDIST_ENOMEM, "monitor: no memory");
    b->node = node;
    edi_xrec r = {.kind = kind, .from = watcher, .to = target, .node = where, .ptr = b,
                  .downs = edi_rt_node_downs(rt, where)};
    xpush(rt, dest, &r);
    return 0;
}

void edi_out_demonitor_all(edi_rt *rt, edist_procid watcher, const edist_ref *ref)
{
    if (rt->nshards == 1 || edi_rt_quiet(rt))
        return;
    for (uint32_t d = 0; d < rt->nshards; d++) {
        if (d == rt->shard)
            continue;
        edi_xblob *b = blob_new(ref, NULL, NULL, NULL, (edist_term_view){NULL, 0});
        if (!b)
            return;
        edi_xrec r = {.kind = EDI_X_DEMONITOR, .from = watcher, .node = rt->node_index,
                      .ptr = b};
        xpush(rt, d, &r);
    }
}

int edi_out_monitor(edi_rt *rt, edist_procid watcher, edist_procid target, uint32_t node,
                    const char *name, const edist_ref *ref)
{
    return out_mon(rt, EDI_X_MONITOR, watcher, target, node, name, ref);
}

int edi_out_demonitor(edi_rt *rt, edist_procid watcher, edist_procid target, uint32_t node,
                      const char *name, const edist_ref *ref)
{
    return out_mon(rt, EDI_X_DEMONITOR, watcher, target, node, name, ref);
}

int edi_out_monitor_exit(edi_rt *rt, edist_procid target, edist_procid watcher,
                         const char *name, const edist_ref *ref, edist_term_view reason)
{
    uint32_t dest;
    int rc = route(rt, watcher.node, watcher, &dest);
    if (rc == ROUTE_HOOK)
        return rt->hooks.monitor_exit ? rt->hooks.monitor_exit(rt->hooks.user, target, watcher,
                                                               name, ref, reason)
                                      : EDIST_ECLOSED;
    if (rc < 0)
        return rc;
    edi_xblob *b = blob_new(ref, name, NULL, NULL, reason);
    if (!b)
        return edist_set_error(EDIST_ENOMEM, "monitor: no memory");
    edi_xrec r = {.kind = EDI_X_MONITOR_EXIT, .from = target, .to = watcher, .ptr = b};
    xpush(rt, dest, &r);
    return 0;
}

int edi_out_spawn_request(edi_rt *rt, edist_procid from, uint32_t node,
                          const edist_ref *req_id, const char *module, const char *function,
                          edist_term_view args, unsigned flags)
{
    uint32_t dest;
    int rc = route(rt, node, EDIST_PROCID_NULL, &dest);
    if (rc == ROUTE_HOOK)
        return rt->hooks.spawn_request
                   ? rt->hooks.spawn_request(rt->hooks.user, from, node, req_id, module,
                                             function, args, flags)
                   : EDIST_ECLOSED;
    if (rc < 0)
        return rc;
    edi_xblob *b = blob_new(req_id, NULL, module, function, args);
    if (!b)
        return edist_set_error(EDIST_ENOMEM, "spawn_request: no memory");
    b->sflags = flags;
    b->node = node;
    edi_xrec r = {.kind = EDI_X_SPAWN_REQUEST, .from = from, .node = node, .ptr = b,
                  .downs = edi_rt_node_downs(rt, node)};
    xpush(rt, dest, &r);
    return 0;
}

/* SPAWN_REPLY for a process of another shard (a reply that came in on
 * shard 0, or shard 0's answer to a request it could not send). */
int edi_out_spawn_reply(edi_rt *rt, edist_procid to, const edist_ref *req_id, bool ok,
                        edist_procid pid, edist_term_view error, unsigned flags)
{
    uint32_t dest;
    int rc = route(rt, to.node, to, &dest);
    if (rc != ROUTE_PUSH)
        return rc < 0 ? rc : EDIST_ENOTFOUND;
    edi_xblob *b = blob_new(req_id, NULL, NULL, NULL, ok ? (edist_term_view){NULL, 0} : error);
    if (!b)
        return edist_set_error(EDIST_ENOMEM, "spawn_reply: no memory");
    b->ok = ok;
    b->pid = pid;
    b->sflags = flags;
    edi_xrec r = {.kind = EDI_X_SPAWN_REPLY, .to = to, .ptr = b};
    xpush(rt, dest, &r);
    return 0;
}

void edi_out_named(edi_rt *rt, edist_procid pid)
{
    uint32_t dest;
    if (route(rt, pid.node, pid, &dest) != ROUTE_PUSH)
        return;
    edi_xrec r = {.kind = EDI_X_NAMED, .to = pid};
    xpush(rt, dest, &r);
}

void edi_out_node_down(edi_rt *rt, uint32_t node)
{
    if (rt->nshards == 1 || edi_rt_quiet(rt))
        return;
    for (uint32_t d = 0; d < rt->nshards; d++) {
        if (d == rt->shard)
            continue;
        edi_xrec r = {.kind = EDI_X_NODE_DOWN, .node = node};
        xpush(rt, d, &r);
    }
}

int edi_x_alive(edi_rt *rt, edist_procid pid, edi_req *req)
{
    uint32_t dest;
    int rc = route(rt, pid.node, pid, &dest);
    if (rc == EDIST_ENOTFOUND)
        return 0; /* no shard has it */
    if (rc != ROUTE_PUSH)
        return rc < 0 ? rc : 0;
    edi_proc *self = req ? NULL : edi_current;
    if (!req && (!self || self->kind != EDI_PROC_GREEN || self->rt != rt))
        return edist_set_error(EDIST_EINVAL, "is_process_alive: not from a process");
    edi_xrec r = {.kind = EDI_X_ALIVE, .from = self ? edi_proc_pid(self) : EDIST_PROCID_NULL,
                  .to = pid, .ptr = req, .node = rt->shard /* where to answer */};
    xpush(rt, dest, &r);
    if (req)
        return EDI_REQ_LATER;
    self->x_answer = -1;
    while (self->x_answer < 0 && !edi_rt_quiet(rt)) {
        self->recv_pattern = EDI_PATTERN_NEVER;
        self->recv_vars = NULL;
        self->recv_match = NULL;
        edi_sched_block(rt, self);
        self->recv_pattern = NULL;
    }
    return self->x_answer > 0;
}

/* The shard a signal for `to` leaves this one for (this one: none). */
static uint32_t dest_shard(const edi_rt *rt, edist_procid to)
{
    if (to.node != rt->node_index)
        return 0;
    uint32_t d = to.id & rt->id_mask;
    return d < rt->nshards ? d : rt->shard;
}

uint32_t edi_rt_xbacklog(const edi_rt *rt)
{
    return rt->xbacklog;
}

static uint32_t shard_count(const edi_rt *rt) { return rt->g ? rt->g->n : 1; }
static const edi_rt *shard_at(const edi_rt *rt, uint32_t i) { return rt->g ? rt->g->rt[i] : rt; }

/* Requests are numbered as a shard takes them, in posting order, so the
 * count queued at the mark is the number of the last one to wait for. */
void edi_rt_mark_requests(const edi_rt *rt, edi_rt_mark *m)
{
    for (uint32_t i = 0; i < shard_count(rt); i++)
        m->reqs[i] = atomic_load_explicit(&shard_at(rt, i)->reqs_async, memory_order_acquire);
}

bool edi_rt_requests_done(const edi_rt *rt, const edi_rt_mark *m)
{
    for (uint32_t i = 0; i < shard_count(rt); i++)
        /* acquire: what the shard did for them (records pushed toward
         * shard 0) is seen by the record mark after this */
        if (atomic_load_explicit(&shard_at(rt, i)->reqs_oldest_open, memory_order_acquire) <=
            m->reqs[i])
            return false;
    return true;
}

void edi_rt_mark_records(const edi_rt *rt, edi_rt_mark *m)
{
    for (uint32_t i = 1; i < shard_count(rt); i++)
        m->records[i] = __atomic_load_n(&shard_at(rt, i)->xout[0].pushed, __ATOMIC_RELAXED);
}

bool edi_rt_records_done(const edi_rt *rt, const edi_rt_mark *m)
{
    for (uint32_t i = 1; i < shard_count(rt); i++)
        if (__atomic_load_n(&shard_at(rt, 0)->xin[i].applied, __ATOMIC_RELAXED) < m->records[i])
            return false;
    return true;
}

bool edi_x_busy(edi_rt *rt, edist_procid to)
{
    if (rt->nshards == 1)
        return false;
    uint32_t d = dest_shard(rt, to);
    return d != rt->shard && rt->xout[d].backlog_count >= HOLD_BACKLOG_RECORDS;
}

void edi_rt_yield_after_send(edi_rt *rt)
{
    rt->yield_due = true;
}

void edi_x_hold(edi_rt *rt, edist_procid to)
{
    edi_proc *self = edi_current;
    bool green = self && self->kind == EDI_PROC_GREEN && self->rt == rt;
    if (rt->yield_due) {
        rt->yield_due = false;
        if (green)
            edi_sched_yield_to_loop(rt, self);
    }
    if (rt->nshards == 1 || !green)
        return;
    uint32_t d = dest_shard(rt, to);
    if (d == rt->shard)
        return;
    edi_xout *o = &rt->xout[d];
    if (o->backlog_count < HOLD_BACKLOG_RECORDS || edi_mailbox_at_soft_limit(rt, self))
        return;
    EDI_COUNT_ADD(rt->x_senders_held, 1);
    edist_procid me = edi_proc_pid(self);
    /* Its own mailbox filling up ends the hold too (edi_deliver wakes it):
     * the ring may be stuck on a process that waits for this one. */
    self->x_held = 1;
    while (o->backlog_count >= HOLD_RESUME_RECORDS && !edi_rt_quiet(rt) &&
           self->state == EDI_ST_RUNNING && !edi_mailbox_at_soft_limit(rt, self)) {
        if (o->n_waiters == o->cap_waiters) {
            uint32_t cap = o->cap_waiters ? o->cap_waiters * 2 : 8;
            edist_procid *a = realloc(o->waiters, cap * sizeof *a);
            if (!a) {
                edi_sched_yield(rt, self); /* no memory to wait: poll instead */
                continue;
            }
            o->waiters = a;
            o->cap_waiters = cap;
        }
        o->waiters[o->n_waiters++] = me;
        /* Nothing but the poller wakes a process waiting on this
         * sentinel (edi_deliver leaves it alone). */
        self->recv_pattern = EDI_PATTERN_NEVER;
        self->recv_vars = NULL;
        self->recv_match = NULL;
        edi_sched_block(rt, self);
        self->recv_pattern = NULL;
    }
    self->x_held = 0;
}

/* ---- consuming --------------------------------------------------------------------- */

/* The node's hooks failed for a forwarded signal: answer as the runtime
 * answers it on the sender's own shard. */
static int apply(edi_rt *rt, edi_xrec *r)
{
    switch (r->kind) {
    case EDI_X_SEND: {
        edi_msg *m = r->ptr;
        if (edi_rt_owns(rt, r->to)) {
            edi_proc *p = edi_proc_alive(rt, r->to);
            if (!p) {
                EDI_COUNT_ADD(rt->dropped, 1);
                edi_msg_free(&rt->pool, m);
                return 0;
            }
            /* EDIST_EAGAIN: a full mailbox (soft limit): m stays, the
             * ring waits. Unless p waits for an answer (is_process_alive
             * from another shard, or a selective receive that nothing
             * in its mailbox matches, for receive_grace_ms: a call that
             * is answered soon keeps its senders held back): it may come
             * on this very ring, behind m, and p would never receive; it
             * takes m up to the hard limit, as a sender its own full
             * mailbox holds back is never held. */
            int rc = edi_deliver(rt, p, m, (edi_limit)r->limit);
            if (rc == EDIST_EAGAIN && p->kind == EDI_PROC_GREEN &&
                (p->x_answer < 0 ||
                 (p->state == EDI_ST_WAITING && p->recv_pattern &&
                  p->recv_pattern != EDI_PATTERN_NEVER &&
                  edi_now_ms() - p->recv_since_ms >= rt->cfg.receive_grace_ms))) {
                EDI_COUNT_ADD(rt->x_past_soft_limit, 1);
                rc = edi_deliver(rt, p, m, EDI_LIMIT_HARD);
            }
            return rc == EDIST_EAGAIN ? EDIST_EAGAIN : 0;
        }
        int rc = r->to.node != rt->node_index && rt->shard == 0 && rt->has_hooks
                     ? hook_send_msg(rt, r->from, r->to, m, r->force)
                     : EDIST_ECLOSED;
        if (rc == EDIST_EAGAIN)
            return rc; /* the peer's queue is full (busy_dist_port): wait */
        if (rc) {
            EDI_COUNT_ADD(rt->dropped, 1); /* no connection: dropped, as erts drops it */
            edi_msg_free(&rt->pool, m);
        }
        return 0;
    }
    case EDI_X_REG_SEND: {
        edi_xblob *b = r->ptr;
        int rc = rt->shard == 0 && rt->has_hooks
                     ? hook_reg_send_msg(rt, r->from, b->node, b->name, b->msg)
                     : EDIST_ECLOSED;
        if (rc == EDIST_EAGAIN)
            return rc;
        if (rc) {
            EDI_COUNT_ADD(rt->dropped, 1);
            edi_msg_free(&rt->pool, b->msg);
        }
        free(b);
        return 0;
    }
    case EDI_X_LINK:
        if (edi_rt_is_local(rt, r->to))
            edi_rt_link_in(rt, r->from, r->to);
        else if (r->downs != edi_rt_node_downs(rt, r->to.node))
            ; /* its node went down since: the sender's shard ends it */
        else if (edi_out_link(rt, r->from, r->to) != 0)
            /* Unreachable node: the link breaks at once, as erts does. */
            edi_rt_exit_in(rt, r->to, r->from, EDIST_REASON_NOCONNECTION, false);
        return 0;
    case EDI_X_UNLINK:
        if (edi_rt_is_local(rt, r->to))
            edi_rt_unlink_in(rt, r->from, r->to, r->len);
        else
            edi_out_unlink(rt, r->from, r->to, r->len); /* the hook acks what it cannot send */
        return 0;
    case EDI_X_UNLINK_ACK:
        if (edi_rt_is_local(rt, r->to))
            edi_rt_unlink_ack_in(rt, r->from, r->to, r->len);
        else
            edi_out_unlink_ack(rt, r->from, r->to, r->len);
        return 0;
    case EDI_X_EXIT: {
        edist_term_view reason = {r->ptr, (size_t)r->len};
        if (edi_rt_is_local(rt, r->to))
            edi_rt_exit_in(rt, r->from, r->to, reason, r->flags != 0);
        else
            edi_out_exit(rt, r->from, r->to, reason, r->flags != 0);
        if (!edi_reason_static(reason))
            free(r->ptr);
        return 0;
    }
    case EDI_X_MONITOR: {
        edi_xblob *b = r->ptr;
        edist_ref ref;
        edi_refkey_to_ref(&b->ref, &ref);
        if (r->node == rt->node_index) {
            edi_rt_monitor_in(rt, r->from, r->to, b->name, &ref);
        } else if (r->downs != edi_rt_node_downs(rt, r->node)) {
            /* its node went down since: the watcher's shard fires it */
        } else if (edi_out_monitor(rt, r->from, r->to, r->node, b->name, &ref) != 0) {
            /* As do_monitor answers for an unreachable node. */
            edi_rt_monitor_exit_in(rt, r->to, r->from, &ref, EDIST_REASON_NOCONNECTION);
        }
        free(b);
        return 0;
    }
    case EDI_X_DEMONITOR: {
        edi_xblob *b = r->ptr;
        edist_ref ref;
        edi_refkey_to_ref(&b->ref, &ref);
        if (r->node == rt->node_index)
            edi_rt_demonitor_here(rt, r->from, &ref);
        else
            edi_out_demonitor(rt, r->from, r->to, r->node, b->name, &ref);
        free(b);
        return 0;
    }
    case EDI_X_MONITOR_EXIT: {
        edi_xblob *b = r->ptr;
        edist_ref ref;
        edi_refkey_to_ref(&b->ref, &ref);
        if (edi_rt_is_local(rt, r->to))
            edi_rt_monitor_exit_in(rt, r->from, r->to, &ref, b->term);
        else
            edi_out_monitor_exit(rt, r->from, r->to, b->name, &ref, b->term);
        free(b);
        return 0;
    }
    case EDI_X_SPAWN_REQUEST: {
        edi_xblob *b = r->ptr;
        edist_ref ref;
        edi_refkey_to_ref(&b->ref, &ref);
        /* its node went down since: the requester's shard answered it */
        if (r->downs == edi_rt_node_downs(rt, b->node) &&
            edi_out_spawn_request(rt, r->from, b->node, &ref, b->module, b->function, b->term,
                                  b->sflags) != 0)
            edi_rt_spawn_reply_in(rt, r->from, &ref, false, EDIST_PROCID_NULL,
                                  EDIST_REASON_NOCONNECTION, 0);
        free(b);
        return 0;
    }
    case EDI_X_SPAWN_REPLY: {
        edi_xblob *b = r->ptr;
        edist_ref ref;
        edi_refkey_to_ref(&b->ref, &ref);
        edi_rt_spawn_reply_in(rt, r->to, &ref, b->ok, b->pid, b->term, b->sflags);
        free(b);
        return 0;
    }
    case EDI_X_NODE_DOWN:
        edi_rt_node_down_here(rt, r->node);
        return 0;
    case EDI_X_NAMED:
        edi_name_marked(rt, r->to);
        return 0;
    case EDI_X_ALIVE: {
        /* The answer goes back on our ring to the asker's shard, after
         * what the asker sent here before the question. */
        edi_xrec a = {.kind = EDI_X_ALIVE_REPLY, .to = r->from, .ptr = r->ptr,
                      .flags = edi_proc_alive(rt, r->to) != NULL};
        xpush(rt, r->node, &a);
        return 0;
    }
    case EDI_X_ALIVE_REPLY:
        if (r->ptr) {
            edi_req_complete(r->ptr, r->flags);
        } else {
            edi_proc *p = edi_proc_alive(rt, r->to);
            if (p && p->x_answer < 0) {
                p->x_answer = (int8_t)r->flags;
                if (p->state == EDI_ST_WAITING && p->recv_pattern == EDI_PATTERN_NEVER &&
                    !p->recv_timer)
                    edi_sched_make_runnable(rt, p);
            }
        }
        return 0;
    default:
        return 0;
    }
}

static void hold_ring(edi_rt *rt, edi_xin *in)
{
    in->held = true;
    EDI_COUNT_ADD(rt->x_holds, 1);
    edi_loop_timer_start(rt->loop, &in->retry, in->retry_ms, 0, retry_held, in);
    if (in->retry_ms < XHOLD_RETRY_MAX_MS)
        in->retry_ms *= 2;
}

static void retry_held(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    edi_xin *in = arg;
    in->held = false; /* the next poll tries the head record again */
}

static uint32_t drain(edi_rt *rt)
{
    edi_shards *g = rt->g;
    uint32_t total = 0, n = rt->nshards;
    for (uint32_t src = 0; src < n; src++) {
        edi_xin *in = &rt->xin[src];
        if (src == rt->shard || in->held)
            continue;
        uint32_t avail = edi_ring_spsc_readable(in->ring);
        if (avail == 0)
            continue;
        uint32_t take = avail < XBATCH_RECORDS ? avail : XBATCH_RECORDS, i = 0;
        for (; i < take; i++) {
            if (apply(rt, edi_ring_spsc_peek(in->ring, i)) == EDIST_EAGAIN) {
                hold_ring(rt, in);
                break;
            }
        }
        if (i == 0)
            continue;
        if (!in->held)
            in->retry_ms = XHOLD_RETRY_MS; /* moving again */
        edi_ring_spsc_consume(in->ring, i);
        EDI_COUNT_ADD(in->applied, i);
        total += i;
        /* seq_cst fence: pairs with the producer's fence in
         * flush_backlogs, between its store of want_room and its look at
         * the ring's room: either it sees the room we just made, or we see
         * its flag and wake it. */
        atomic_thread_fence(memory_order_seq_cst);
        _Atomic uint32_t *want = &g->want_room[src * n + rt->shard];
        if (atomic_load_explicit(want, memory_order_relaxed)) {
            atomic_store_explicit(want, 0, memory_order_relaxed);
            edi_loop_wake(g->rt[src]->loop);
        }
    }
    return total;
}

/* ---- the poller ---------------------------------------------------------------------- */

static void wake_waiters(edi_rt *rt, edi_xout *o)
{
    uint32_t k = o->n_waiters;
    o->n_waiters = 0;
    for (uint32_t i = 0; i < k; i++) {
        edi_proc *p = edi_proc_lookup(rt, o->waiters[i]);
        if (p && p->state == EDI_ST_WAITING && p->recv_pattern == EDI_PATTERN_NEVER &&
            !p->recv_timer)
            edi_sched_make_runnable(rt, p);
    }
}

static uint32_t flush_backlogs(edi_rt *rt)
{
    uint32_t moved = 0, n = rt->nshards;
    for (uint32_t d = 0; d < n && rt->xbacklog; d++) {
        edi_xout *o = &rt->xout[d];
        while (o->backlog && edi_ring_spsc_push(o->ring, &o->backlog->rec)) {
            edi_xwait *w = o->backlog;
            o->backlog = w->next;
            if (!o->backlog)
                o->backlog_tail = NULL;
            free(w);
            o->backlog_count--;
            rt->xbacklog--;
            o->wake = true;
            rt->xwake = true;
            moved++;
        }
        if (o->n_waiters && o->backlog_count < HOLD_RESUME_RECORDS)
            wake_waiters(rt, o);
        if (o->backlog) {
            /* Still full: ask the consumer to wake us once it made room.
             * seq_cst fence: pairs with the consumer's fence in drain
             * (see there). */
            _Atomic uint32_t *want = &rt->g->want_room[rt->shard * n + d];
            atomic_store_explicit(want, 1, memory_order_relaxed);
            atomic_thread_fence(memory_order_seq_cst);
        }
    }
    return moved;
}

static void flush_wakes(edi_rt *rt)
{
    if (!rt->xwake)
        return;
    rt->xwake = false;
    /* seq_cst fence: pairs with the consumer's fence in shard_pending,
     * after its store of "sleeping": either it sees what we pushed, or
     * edi_loop_wake sees it asleep and wakes it. */
    atomic_thread_fence(memory_order_seq_cst);
    for (uint32_t d = 0; d < rt->nshards; d++) {
        edi_xout *o = &rt->xout[d];
        if (!o->wake)
            continue;
        o->wake = false;
        edi_loop_wake(rt->g->rt[d]->loop);
    }
}

static uint32_t shard_poll(edi_loop *loop, void *arg, uint32_t budget)
{
    (void)loop;
    (void)budget; /* drain takes its own batch per ring */
    edi_rt *rt = arg;
    uint32_t n = 0;
    if (rt->xbacklog)
        n += flush_backlogs(rt);
    n += drain(rt);
    /* Answers made while draining may have found a ring full too. */
    if (rt->xbacklog)
        n += flush_backlogs(rt);
    flush_wakes(rt);
    return n;
}

/* After every source polled: a wake for what they pushed meanwhile. */
static void shard_flush(edi_loop *loop, void *arg)
{
    (void)loop;
    flush_wakes(arg);
}

static bool shard_pending(void *arg)
{
    edi_rt *rt = arg;
    /* seq_cst fence: pairs with the producers' fence in flush_wakes (the
     * loop stored "sleeping" just before calling us). */
    atomic_thread_fence(memory_order_seq_cst);
    if (rt->xwake)
        return true;
    for (uint32_t s = 0; s < rt->nshards; s++) {
        if (s == rt->shard)
            continue;
        if (!rt->xin[s].held && edi_ring_spsc_readable(rt->xin[s].ring) > 0)
            return true;
        if (rt->xout[s].backlog && edi_ring_spsc_room(rt->xout[s].ring) > 0)
            return true;
    }
    return false;
}
