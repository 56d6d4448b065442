/* SPDX-License-Identifier: Apache-2.0 */
/* Processes: the runtime's life, the process table, spawning, exiting,
 * thread processes, and the queue that carries requests from other
 * threads to the shard.
 *
 * The process table maps a pid's id to a slot {process, serial}. Ids of
 * ended processes are reused first-in first-out (as late as possible) and
 * each reuse bumps the slot's serial, so an old pid never reaches the new
 * process. Id 0 is never used: the all-zero pid means "none". */
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define EDI_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EDI_ASAN 1
#endif
#endif
#ifdef EDI_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

#define PROC_FREE_MAX 4096u
#define MSG_POOL_MAX 65536u
#define DEFAULT_MAX_PROCESSES (1u << 20)
#define DEFAULT_MAX_MAILBOX 1000000u
#define DEFAULT_MAX_MAILBOX_BYTES (1ull << 30)
#define DEFAULT_MAX_MAILBOX_HARD 16000000u
#define DEFAULT_MAX_MAILBOX_BYTES_HARD (4ull << 30)
#define DEFAULT_MAX_PENDING 65536u
#define DEFAULT_MAX_PENDING_BYTES (64ull << 20)
#define DEFAULT_RECEIVE_GRACE_MS 100u
/* How long a thread retries posting to a loop whose post queue is full,
 * and how soon a stalled request queue is retried. */
#define POST_RETRY_LIMIT_MS 1000u
#define STALL_RETRY_MS 1u
#define STALL_RETRY_MAX_MS 16u

static const char never_sentinel;
const edist_pattern *const EDI_PATTERN_NEVER = (const edist_pattern *)&never_sentinel;

/* ---- configuration ------------------------------------------------------------------- */

void edist_runtime_config_init(edist_runtime_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->stack_bytes = 64u * 1024u;
    cfg->max_processes = DEFAULT_MAX_PROCESSES;
    cfg->max_mailbox_messages = DEFAULT_MAX_MAILBOX;
    cfg->max_mailbox_bytes = DEFAULT_MAX_MAILBOX_BYTES;
    cfg->max_mailbox_messages_hard = DEFAULT_MAX_MAILBOX_HARD;
    cfg->max_mailbox_bytes_hard = DEFAULT_MAX_MAILBOX_BYTES_HARD;
    cfg->max_pending_requests = DEFAULT_MAX_PENDING;
    cfg->max_pending_bytes = DEFAULT_MAX_PENDING_BYTES;
    cfg->idle = EDIST_IDLE_ADAPTIVE;
    cfg->log_level = EDIST_LOG_INFO;
}

/* ---- process table --------------------------------------------------------------------
 * Slots are indexed by the local id: a pid's id without its shard bits. */

static inline edi_slot *slot_at(const edi_rt *rt, uint32_t local)
{
    uint32_t c = local / EDI_PTAB_CHUNK_SLOTS;
    if (c >= rt->nchunks)
        return NULL;
    edi_slot *chunk = atomic_load_explicit(&rt->chunks[c], memory_order_relaxed);
    return chunk ? &chunk[local % EDI_PTAB_CHUNK_SLOTS] : NULL;
}

static int table_alloc(edi_rt *rt, edi_proc *p)
{
    /* The limit is the node's, over every shard. */
    uint32_t live = atomic_fetch_add_explicit(&rt->g->live, 1, memory_order_relaxed);
    if (live >= rt->cfg.max_processes) {
        atomic_fetch_sub_explicit(&rt->g->live, 1, memory_order_relaxed);
        return edist_set_error(EDIST_ENOMEM, "spawn: the process limit (%u) is reached",
                               rt->cfg.max_processes);
    }
    uint32_t id;
    edi_slot *s;
    /* Prefer fresh ids while the table is young, so ids are reused as
     * late as possible; then the oldest freed one. */
    if (rt->free_head && rt->next_unused >= rt->cfg.max_processes) {
        id = rt->free_head;
        s = slot_at(rt, id);
        rt->free_head = s->next_free;
        if (!rt->free_head)
            rt->free_tail = 0;
    } else if (rt->next_unused < rt->id_limit) {
        id = rt->next_unused;
        uint32_t c = id / EDI_PTAB_CHUNK_SLOTS;
        if (!atomic_load_explicit(&rt->chunks[c], memory_order_relaxed)) {
            edi_slot *chunk = calloc(EDI_PTAB_CHUNK_SLOTS, sizeof(edi_slot));
            if (!chunk) {
                atomic_fetch_sub_explicit(&rt->g->live, 1, memory_order_relaxed);
                return edist_set_error(EDIST_ENOMEM, "spawn: no memory for the process table");
            }
            /* release: pairs with the acquire load in edi_proc_probe (the
             * zeroed slots are seen before the chunk). */
            atomic_store_explicit(&rt->chunks[c], chunk, memory_order_release);
        }
        rt->next_unused++;
        s = slot_at(rt, id);
    } else if (rt->free_head) {
        id = rt->free_head;
        s = slot_at(rt, id);
        rt->free_head = s->next_free;
        if (!rt->free_head)
            rt->free_tail = 0;
    } else {
        atomic_fetch_sub_explicit(&rt->g->live, 1, memory_order_relaxed);
        return edist_set_error(EDIST_ENOMEM, "spawn: no process id left");
    }
    atomic_store_explicit(&s->proc, p, memory_order_relaxed);
    s->next_free = 0;
    p->id = (id << rt->id_bits) | rt->shard;
    p->serial = atomic_load_explicit(&s->serial, memory_order_relaxed);
    EDI_COUNT_ADD(rt->live, 1);
    return 0;
}

static void table_free(edi_rt *rt, edi_proc *p)
{
    uint32_t local = p->id >> rt->id_bits;
    edi_slot *s = slot_at(rt, local);
    if (!s || atomic_load_explicit(&s->proc, memory_order_relaxed) != p)
        return;
    atomic_store_explicit(&s->proc, NULL, memory_order_relaxed);
    atomic_store_explicit(&s->serial, atomic_load_explicit(&s->serial, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    s->next_free = 0;
    if (rt->free_tail)
        slot_at(rt, rt->free_tail)->next_free = local;
    else
        rt->free_head = local;
    rt->free_tail = local;
    EDI_COUNT_ADD(rt->live, -1);
    atomic_fetch_sub_explicit(&rt->g->live, 1, memory_order_relaxed);
}

bool edi_proc_probe(edi_rt *owner, edist_procid pid)
{
    if (!edi_rt_owns(owner, pid) || pid.creation != owner->creation || pid.id == 0)
        return false;
    uint32_t local = pid.id >> owner->id_bits;
    uint32_t c = local / EDI_PTAB_CHUNK_SLOTS;
    if (c >= owner->nchunks)
        return false;
    /* acquire: pairs with the release store of the chunk in table_alloc. */
    edi_slot *chunk = atomic_load_explicit(&owner->chunks[c], memory_order_acquire);
    if (!chunk)
        return false;
    edi_slot *s = &chunk[local % EDI_PTAB_CHUNK_SLOTS];
    /* relaxed: a hint; the owner acts on what it finds when the signal
     * arrives. */
    return atomic_load_explicit(&s->proc, memory_order_relaxed) != NULL &&
           atomic_load_explicit(&s->serial, memory_order_relaxed) == pid.serial;
}

/* ---- process structs -------------------------------------------------------------- */

static edi_proc *proc_alloc(edi_rt *rt)
{
    edi_proc *p = rt->proc_free;
    if (p) {
        rt->proc_free = p->runq_next;
        rt->proc_free_count--;
        memset(p, 0, sizeof *p);
    } else {
        p = calloc(1, sizeof *p);
        if (!p)
            return NULL;
    }
    p->rt = rt;
    edi_mbox_init(&p->mbox);
    return p;
}

static void proc_struct_free(edi_rt *rt, edi_proc *p)
{
    if (rt->proc_free_count < PROC_FREE_MAX) {
        p->runq_next = rt->proc_free;
        rt->proc_free = p;
        rt->proc_free_count++;
    } else {
        free(p);
    }
}

/* Called by the teardown (and by the run queue for a process torn down
 * while queued): the slot is already free. */
void edi_proc_release(edi_rt *rt, edi_proc *p)
{
    if (p->in_runq) {
        p->state = EDI_ST_DEAD; /* the run queue releases it when popped */
        return;
    }
    if (p->kind == EDI_PROC_GREEN) {
        if (p->stack_lo) {
            edi_stack_put(rt->stacks, p->stack_lo, p->stack_bytes, !p->canary);
            p->stack_lo = NULL;
        }
        proc_struct_free(rt, p);
    } else if (atomic_fetch_sub(&p->thr->refs, 1) == 1) {
        edi_thread_proc_free(p);
    }
}

/* Called from teardown once the process is out of every table. */
void edi_proc_unlist(edi_rt *rt, edi_proc *p)
{
    table_free(rt, p);
}

static void proc_entry(void *arg)
{
#ifdef EDI_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    edi_proc *p = arg;
    p->fn(p->arg);
    edist_exit(EDIST_REASON_NORMAL.ptr, EDIST_REASON_NORMAL.len);
}

int edi_proc_spawn(edi_rt *rt, edist_proc_fn fn, void *arg, size_t stack_bytes,
                   edi_proc **out)
{
    if (!fn)
        return edist_set_error(EDIST_EINVAL, "spawn: no function");
    edi_proc *p = proc_alloc(rt);
    if (!p)
        return edist_set_error(EDIST_ENOMEM, "spawn: no memory");
    bool guarded = true;
    int rc = edi_stack_get(rt->stacks, stack_bytes, &p->stack_lo, &p->stack_bytes, &guarded);
    if (rc) {
        proc_struct_free(rt, p);
        return rc;
    }
    p->canary = !guarded;
    rc = table_alloc(rt, p);
    if (rc) {
        edi_stack_put(rt->stacks, p->stack_lo, p->stack_bytes, guarded);
        proc_struct_free(rt, p);
        return rc;
    }
    p->kind = EDI_PROC_GREEN;
    p->fn = fn;
    p->arg = arg;
    p->sp = edi_ctx_init(p->stack_lo + p->stack_bytes, proc_entry, p);
    EDI_COUNT_ADD(rt->spawned, 1);
    edi_sched_make_runnable(rt, p);
    *out = p;
    return 0;
}

/* ---- requests from other threads ---------------------------------------------------- */

bool edi_rt_on_shard(const edi_rt *rt)
{
    return edi_loop_on_thread(rt->loop);
}

static void complete(edi_req *r, int rc)
{
    edi_req_complete(r, rc);
}

void edi_req_complete(edi_req *r, int rc)
{
    if (r->sync) {
        r->rc = rc;
        /* release: the caller reads rc (and its outputs) after seeing
         * done with an acquire load. */
        atomic_store_explicit(&r->done, 1, memory_order_release);
        edi_futex_wake(&r->done);
    } else {
        free(r);
    }
}

static void drain_requests(edi_rt *rt);

static void retry_stalled(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    drain_requests(arg);
}

/* The senders with a stalled request, one entry each: a request of one
 * of them waits behind it. Few (one per held-back thread), so a scan of
 * them, not of every stalled request, decides. */
static bool sender_stalled(const edi_rt *rt, const void *sender)
{
    for (uint32_t i = 0; i < rt->n_stalled_senders; i++)
        if (rt->stalled_senders[i] == sender)
            return true;
    if (rt->stalled_senders_lost) /* out of memory once: ask the list */
        for (const edi_req *r = rt->stalled; r; r = r->next)
            if (r->sender == sender)
                return true;
    return false;
}

static void stall(edi_rt *rt, edi_req *r)
{
    r->next = NULL;
    if (rt->stalled_tail)
        rt->stalled_tail->next = r;
    else
        rt->stalled = r;
    rt->stalled_tail = r;
    if (sender_stalled(rt, r->sender))
        return;
    if (rt->n_stalled_senders == rt->cap_stalled_senders) {
        uint32_t cap = rt->cap_stalled_senders ? rt->cap_stalled_senders * 2 : 8;
        const void **a = realloc(rt->stalled_senders, cap * sizeof *a);
        if (!a) {
            rt->stalled_senders_lost = true;
            return;
        }
        rt->stalled_senders = a;
        rt->cap_stalled_senders = cap;
    }
    rt->stalled_senders[rt->n_stalled_senders++] = r->sender;
}

static void drain_requests(edi_rt *rt)
{
    /* Cleared before taking: a request pushed from now on posts again. */
    atomic_store(&rt->reqs_posted, 0);
    edi_req *fresh = NULL;
    edi_req *r = atomic_exchange_explicit(&rt->reqs, NULL, memory_order_acquire);
    while (r) { /* newest first: reverse */
        edi_req *n = r->next;
        r->next = fresh;
        fresh = r;
        r = n;
    }
    /* Stalled ones first: they are older than anything their senders
     * made since. */
    edi_req *list = rt->stalled;
    edi_req *old_tail = rt->stalled_tail;
    if (list)
        rt->stalled_tail->next = fresh;
    else
        list = fresh;
    rt->stalled = rt->stalled_tail = NULL;
    rt->n_stalled_senders = 0;
    rt->stalled_senders_lost = false;
    bool retried = old_tail != NULL, progress = false;
    while (list) {
        r = list;
        list = r->next;
        bool was_stalled = retried;
        if (r == old_tail)
            retried = false; /* the rest are fresh */
        if (!r->sync && r->take_no == 0)
            r->take_no = ++rt->reqs_taken; /* first taken: in posting order */
        if (rt->stalled && sender_stalled(rt, r->sender)) {
            stall(rt, r); /* behind its sender's stalled request */
            continue;
        }
        int rc = r->fn(rt, r);
        if (rc == EDIST_EAGAIN && !r->sync) {
            stall(rt, r);
            continue;
        }
        if (rc == EDI_REQ_LATER && r->sync)
            continue; /* another shard answers it (edi_req_complete) */
        progress |= was_stalled;
        if (!r->sync)
            atomic_fetch_sub(&rt->reqs_pending, 1);
        /* Thread processes that ended in this request end now, before the
         * caller hears back. */
        if (rt->sched.dying_head)
            edi_sched_reap(rt);
        complete(r, rc);
    }
    /* The oldest request not done: the stalled list keeps the shard's
     * order (stalled ones are taken first and stall again at its end). */
    uint64_t oldest = rt->reqs_taken + 1;
    for (const edi_req *s = rt->stalled; s; s = s->next)
        if (!s->sync) {
            oldest = s->take_no;
            break;
        }
    atomic_store_explicit(&rt->reqs_oldest_open, oldest, memory_order_release);
    /* Retry soon after progress, less often while nothing moves (a peer
     * that stopped reading), so that held-back requests cost the shard
     * little. */
    if (progress || !old_tail)
        rt->stall_retry_ms = STALL_RETRY_MS;
    else if (rt->stall_retry_ms < STALL_RETRY_MAX_MS)
        rt->stall_retry_ms *= 2;
    if (rt->stalled && !edi_timer_armed(&rt->retry))
        edi_loop_timer_start(rt->loop, &rt->retry, rt->stall_retry_ms, 0, retry_stalled, rt);
}

static void post_drain(edi_loop *loop, void *arg)
{
    (void)loop;
    drain_requests(arg);
}

/* The identity of a thread that is no process: requests are ordered
 * (and held back behind a stalled one) per sender, and threads are
 * apart from each other as processes are. A number, odd (never a
 * process's address), never reused: a thread-local's address is, by the
 * next thread on the same stack. */
static _Atomic uint64_t thread_senders;
static _Thread_local uintptr_t thread_sender;

int edi_rt_call(edi_rt *rt, edi_req *req, bool sync)
{
    req->sync = sync;
    req->take_no = 0;
    if (!edi_current && !thread_sender)
        thread_sender = (uintptr_t)(2 * atomic_fetch_add(&thread_senders, 1) + 1);
    req->sender = edi_current ? (const void *)edi_current : (const void *)thread_sender;
    if (edi_rt_on_shard(rt)) {
        int rc = req->fn(rt, req);
        if (!sync)
            free(req);
        return rc;
    }
    if (!sync) {
        uint32_t n = atomic_fetch_add(&rt->reqs_pending, 1);
        if (n >= rt->cfg.max_pending_requests) {
            atomic_fetch_sub(&rt->reqs_pending, 1);
            atomic_fetch_add_explicit(&rt->reqs_refused, 1, memory_order_relaxed);
            return edist_set_error(EDIST_EAGAIN, "runtime: %u requests already queued to the shard",
                                   n);
        }
        atomic_fetch_add_explicit(&rt->reqs_async, 1, memory_order_relaxed);
    }
    atomic_store_explicit(&req->done, 0, memory_order_relaxed);
    edi_req *top = atomic_load_explicit(&rt->reqs, memory_order_relaxed);
    do {
        req->next = top;
        /* release: pairs with the acquire exchange in drain_requests. */
    } while (!atomic_compare_exchange_weak_explicit(&rt->reqs, &top, req, memory_order_release,
                                                    memory_order_relaxed));
    if (atomic_exchange(&rt->reqs_posted, 1) == 0) {
        uint64_t start = edi_now_ns();
        while (edi_loop_post(rt->loop, post_drain, rt) == EDIST_EAGAIN) {
            if (edi_now_ns() - start > (uint64_t)POST_RETRY_LIMIT_MS * 1000000u) {
                /* The loop does not take posts: let the next request try
                 * again; this one stays queued. */
                atomic_store(&rt->reqs_posted, 0);
                break;
            }
            sched_yield();
        }
    }
    if (!sync)
        return 0;
    while (atomic_load_explicit(&req->done, memory_order_acquire) == 0)
        edi_futex_wait(&req->done, 0, UINT64_MAX);
    return req->rc;
}

typedef struct closure_req {
    edi_req req;
    int (*fn)(edi_rt *rt, void *ctx);
    void *ctx;
    char detail[256];
} closure_req;

static int closure_run(edi_rt *rt, edi_req *r)
{
    closure_req *c = (closure_req *)r;
    int rc = c->fn(rt, c->ctx);
    if (rc < 0)
        snprintf(c->detail, sizeof c->detail, "%s", edist_last_error());
    return rc;
}

int edi_rt_run(edi_rt *rt, int (*fn)(edi_rt *rt, void *ctx), void *ctx)
{
    if (edi_rt_on_shard(rt))
        return fn(rt, ctx);
    closure_req c;
    memset(&c, 0, sizeof c);
    c.req.fn = closure_run;
    c.fn = fn;
    c.ctx = ctx;
    int rc = edi_rt_call(rt, &c.req, true);
    if (rc < 0)
        edist_set_error(rc, "%s", c.detail);
    return rc;
}

/* ---- the runtime -------------------------------------------------------------------- */

/* shards 0: $EDIST_SHARDS, else 1. */
static int resolve_shards(uint32_t shards, uint32_t *out)
{
    if (shards == 0) {
        const char *env = getenv("EDIST_SHARDS");
        shards = 1;
        if (env && env[0]) {
            char *end;
            unsigned long v = strtoul(env, &end, 10);
            if (*end || v == 0 || v > EDIST_MAX_SHARDS)
                return edist_set_error(EDIST_EINVAL,
                                       "runtime: EDIST_SHARDS must be 1..%u, not '%s'",
                                       EDIST_MAX_SHARDS, env);
            shards = (uint32_t)v;
        }
    }
    if (shards > EDIST_MAX_SHARDS)
        return edist_set_error(EDIST_EINVAL, "runtime: %u shards (at most %u)", shards,
                               EDIST_MAX_SHARDS);
    *out = shards;
    return 0;
}

/* The runtime's configuration with every default applied. */
static int config_resolve(const edist_runtime_config *in, edist_runtime_config *c)
{
    if (in)
        *c = *in;
    else
        edist_runtime_config_init(c);
    if (c->max_processes == 0)
        c->max_processes = DEFAULT_MAX_PROCESSES;
    if (c->max_processes > EDI_PROC_MAX_LIMIT)
        c->max_processes = EDI_PROC_MAX_LIMIT;
    if (c->max_mailbox_messages == 0)
        c->max_mailbox_messages = DEFAULT_MAX_MAILBOX;
    if (c->max_mailbox_bytes == 0)
        c->max_mailbox_bytes = DEFAULT_MAX_MAILBOX_BYTES;
    if (c->max_mailbox_messages_hard == 0)
        c->max_mailbox_messages_hard = DEFAULT_MAX_MAILBOX_HARD;
    if (c->max_mailbox_bytes_hard == 0)
        c->max_mailbox_bytes_hard = DEFAULT_MAX_MAILBOX_BYTES_HARD;
    /* The soft limit is never above the hard one. */
    if (c->max_mailbox_messages > c->max_mailbox_messages_hard)
        c->max_mailbox_messages = c->max_mailbox_messages_hard;
    if (c->max_mailbox_bytes > c->max_mailbox_bytes_hard)
        c->max_mailbox_bytes = c->max_mailbox_bytes_hard;
    if (c->max_pending_requests == 0)
        c->max_pending_requests = DEFAULT_MAX_PENDING;
    if (c->max_pending_bytes == 0)
        c->max_pending_bytes = DEFAULT_MAX_PENDING_BYTES;
    if (c->receive_grace_ms == 0)
        c->receive_grace_ms = DEFAULT_RECEIVE_GRACE_MS;
    if (c->shard_ring_entries == 0)
        c->shard_ring_entries = EDI_SHARD_RING_ENTRIES_DEFAULT;
    uint32_t e = c->shard_ring_entries;
    if (e < 64 || e > (1u << 20) || (e & (e - 1)))
        return edist_set_error(EDIST_EINVAL,
                               "runtime: shard_ring_entries must be a power of 2 from 64 to "
                               "1048576, not %u",
                               e);
    if (!c->shard_cores)
        c->shard_cores = getenv("EDIST_SHARD_CORES");
    return resolve_shards(c->shards, &c->shards);
}

/* One shard on loop: index of n (id_bits wide). cfg is resolved; the
 * strings it points to belong to the first shard. */
static int shard_new(const edist_runtime_config *cfg, edi_loop *loop, const edi_rt_hooks *hooks,
                     edi_shards *g, uint32_t index, uint32_t id_bits, edi_rt **out)
{
    *out = NULL;
    edi_rt *rt = calloc(1, sizeof *rt);
    if (!rt)
        return edist_set_error(EDIST_ENOMEM, "runtime: no memory");
    rt->cfg = *cfg;
    rt->log = (edi_log){rt->cfg.log, rt->cfg.log_user, rt->cfg.log_level};
    rt->stall_retry_ms = STALL_RETRY_MS;
    atomic_init(&rt->reqs_oldest_open, 1);
    const char *name = rt->cfg.node_name ? rt->cfg.node_name : "nonode@nohost";
    size_t nlen = strlen(name);
    if (nlen == 0 || nlen > EDIST_ATOM_MAX_BYTES || !strchr(name, '@')) {
        free(rt);
        return edist_set_error(EDIST_EINVAL, "runtime: bad node name '%s'", name);
    }
    memcpy(rt->node_name, name, nlen + 1);
    rt->cfg.node_name = rt->node_name;
    rt->cfg.shard_cores = NULL; /* the caller's: read once, at start */
    int rc = edi_rt_node_intern(rt->node_name, nlen, &rt->node_index);
    if (rc) {
        free(rt);
        return rc;
    }
    rt->creation = rt->cfg.creation;
    rt->loop = loop;
    if (hooks) {
        rt->hooks = *hooks;
        rt->has_hooks = true;
    }
    rt->g = g;
    rt->shard = index;
    rt->nshards = g->n;
    rt->id_bits = id_bits;
    rt->id_mask = (1u << id_bits) - 1;
    /* Local ids below this: a pid's id stays under 2^28 with the shard's
     * bits, and ids are handed out fresh up to max_processes. */
    uint32_t limit = EDI_PROC_ID_LIMIT >> id_bits;
    if (rt->cfg.max_processes + 1 < limit)
        limit = rt->cfg.max_processes + 1;
    rt->id_limit = limit;
    rt->nchunks = (limit + EDI_PTAB_CHUNK_SLOTS - 1) / EDI_PTAB_CHUNK_SLOTS;
    rt->chunks = calloc(rt->nchunks, sizeof *rt->chunks);
    if (!rt->chunks) {
        free(rt);
        return edist_set_error(EDIST_ENOMEM, "runtime: no memory");
    }
    edi_sched_init(rt);
    edi_timer_init(&rt->retry);
    edi_msg_pool_init(&rt->pool, MSG_POOL_MAX);
    edi_htab_init(&rt->links);
    edi_htab_init(&rt->monitors);
    edi_htab_init(&rt->spawn_reqs);
    rt->next_unused = 1; /* id 0 is "no process" */
    rc = edi_stacks_new(rt->cfg.stack_bytes, &rt->stacks);
    if (rc) {
        free(rt->chunks);
        free(rt);
        return rc;
    }
    rt->cfg.stack_bytes = edi_stacks_default_bytes(rt->stacks);
    *out = rt;
    return 0;
}

static void shard_free(edi_rt *rt);

int edi_rt_new(const edi_rt_config *cfg, edi_rt **out)
{
    *out = NULL;
    if (!cfg || !cfg->loop)
        return edist_set_error(EDIST_EINVAL, "runtime: no loop");
    edist_runtime_config c;
    int rc = config_resolve(cfg->proc, &c);
    if (rc)
        return rc;
    uint32_t bits = 0;
    while ((1u << bits) < c.shards)
        bits++;
    edi_shards *g = calloc(1, sizeof *g);
    if (!g)
        return edist_set_error(EDIST_ENOMEM, "runtime: no memory");
    g->n = c.shards;
    /* Round robin from shard 1: shard 0 also carries the node (its
     * connections and services). */
    atomic_init(&g->next_spawn, 1);
    atomic_init(&g->next_attach, 1);
    edi_registry_init(g);
    for (uint32_t i = 0; i < g->n; i++) {
        edi_loop *loop = cfg->loop;
        if (i > 0) {
            edi_loop_config lc;
            edi_loop_config_default(&lc);
            lc.idle = c.idle == EDIST_IDLE_BUSY    ? EDI_IDLE_BUSY
                      : c.idle == EDIST_IDLE_SLEEP ? EDI_IDLE_SLEEP
                                                   : EDI_IDLE_ADAPTIVE;
            lc.log = c.log ? (edi_log){c.log, c.log_user, c.log_level}
                           : (edi_log){0};
            /* No sockets on these shards: no TCP module, no receive pool. */
            rc = edi_loop_new(&lc, &loop);
            if (rc)
                break;
        }
        rc = shard_new(&c, loop, cfg->hooks, g, i, bits, &g->rt[i]);
        if (rc) {
            if (i > 0)
                edi_loop_free(loop);
            break;
        }
        g->rt[i]->own_loop = i > 0;
    }
    if (rc == 0)
        rc = edi_shards_start(g, c.shard_cores, c.shard_ring_entries);
    if (rc) {
        char detail[256];
        snprintf(detail, sizeof detail, "%s", edist_last_error());
        edi_shards_free(g);
        return edist_set_error(rc, "%s", detail);
    }
    *out = g->rt[0];
    return 0;
}

edi_loop *edi_rt_loop(const edi_rt *rt)
{
    return rt->loop;
}

uint32_t edi_rt_node_index(const edi_rt *rt)
{
    return rt->node_index;
}

const char *edist_runtime_node(const edist_runtime *rt)
{
    return rt->node_name;
}

uint32_t edist_runtime_creation(const edist_runtime *rt)
{
    return rt->creation;
}

/* End every process without signals (the runtime goes away). */
static void end_all(edi_rt *rt)
{
    /* Quietly: nothing to other shards either. */
    atomic_store(&rt->g->quiet, 1);
    edi_sched_stop_all(rt);
    for (uint32_t c = 0; c < rt->nchunks; c++) {
        edi_slot *chunk = atomic_load_explicit(&rt->chunks[c], memory_order_relaxed);
        if (!chunk)
            continue;
        for (uint32_t i = 0; i < EDI_PTAB_CHUNK_SLOTS; i++) {
            edi_proc *p = atomic_load_explicit(&chunk[i].proc, memory_order_relaxed);
            if (!p)
                continue;
            if (p->state < EDI_ST_EXITING)
                edi_sched_kill(rt, p, EDIST_REASON_KILLED);
        }
    }
    /* Quietly: no hooks (the node is going away), then tear down. */
    rt->has_hooks = false;
    edi_sched_reap(rt);
    /* The run queue may still hold released structs. */
    edi_proc *p = rt->sched.runq_head;
    while (p) {
        edi_proc *n = p->runq_next;
        p->in_runq = 0;
        if (p->state == EDI_ST_DEAD)
            edi_proc_release(rt, p);
        p = n;
    }
    rt->sched.runq_head = rt->sched.runq_tail = NULL;
}

/* Everything of one shard, once its loop no longer runs (or on it). */
static void shard_free(edi_rt *rt)
{
    if (!rt)
        return;
    end_all(rt);
    /* Requests nobody will run: synchronous callers hear ECLOSED. */
    drain_requests(rt); /* runs them: the processes are gone, so they fail */
    edi_req *r = rt->stalled;
    while (r) {
        edi_req *n = r->next;
        if (r->fn == NULL || r->sync) {
            complete(r, EDIST_ECLOSED);
        } else {
            /* An undeliverable send: its function frees its message when
             * the target is gone, which it is now. */
            r->fn(rt, r);
            complete(r, EDIST_ECLOSED);
        }
        r = n;
    }
    rt->stalled = rt->stalled_tail = NULL;
    if (edi_timer_armed(&rt->retry))
        edi_loop_timer_cancel(rt->loop, &rt->retry);
    for (uint32_t c = 0; c < rt->nchunks; c++)
        free(atomic_load_explicit(&rt->chunks[c], memory_order_relaxed));
    free(rt->chunks);
    free(rt->stalled_senders);
    edi_proc *p = rt->proc_free;
    while (p) {
        edi_proc *n = p->runq_next;
        free(p);
        p = n;
    }
    edi_htab_destroy(&rt->links);
    edi_htab_destroy(&rt->monitors);
    edi_spawn_reqs_clear(rt);
    edi_htab_destroy(&rt->spawn_reqs);
    free(rt->node_downs);
    edi_msg_pool_drain(&rt->pool);
    edi_stacks_free(rt->stacks);
    edi_loop *loop = rt->own_loop && rt->shard > 0 ? rt->loop : NULL;
    free(rt);
    if (loop)
        edi_loop_free(loop);
}

void edi_rt_shard_free(edi_rt *rt)
{
    shard_free(rt);
}

void edi_rt_free(edi_rt *rt)
{
    if (!rt)
        return;
    /* The other shards stop and go with the group; this one (shard 0,
     * whose loop the caller owns) too. */
    edi_shards_free(rt->g);
}

/* ---- a runtime with its own thread ------------------------------------------------------ */

static void *shard_main(void *arg)
{
    edi_rt *rt = arg;
    edi_rt_shard_thread_init(rt);
    int rc = edi_loop_run(rt->loop);
    if (rc)
        edi_rt_log(rt, EDIST_LOG_ERROR, "runtime loop failed: %s: %s", edist_strerror(rc),
                   edist_last_error());
    return NULL;
}

typedef struct ready_wait {
    _Atomic uint32_t done;
} ready_wait;

static void post_ready(edi_loop *loop, void *arg)
{
    (void)loop;
    ready_wait *w = arg;
    atomic_store(&w->done, 1);
    edi_futex_wake(&w->done);
}

/* Start a shard's thread on its loop and wait until the loop runs there:
 * from then on edi_loop_on_thread tells callers apart. */
int edi_rt_start_thread(edi_rt *rt, pthread_t *thread)
{
    int rc = pthread_create(thread, NULL, shard_main, rt);
    if (rc)
        return edist_set_error(EDIST_EIO, "runtime: cannot start shard %u's thread", rt->shard);
    ready_wait w;
    atomic_init(&w.done, 0);
    while (edi_loop_post(rt->loop, post_ready, &w) == EDIST_EAGAIN)
        sched_yield();
    while (atomic_load(&w.done) == 0)
        edi_futex_wait(&w.done, 0, UINT64_MAX);
    return 0;
}

static void post_stop(edi_loop *loop, void *arg)
{
    edi_rt *rt = arg;
    end_all(rt);
    edi_loop_stop(loop);
}

/* Stop a shard's thread: its processes end (quietly) on it first. */
void edi_rt_stop_thread(edi_rt *rt, pthread_t thread)
{
    while (edi_loop_post(rt->loop, post_stop, rt) == EDIST_EAGAIN)
        sched_yield();
    pthread_join(thread, NULL);
}

int edist_runtime_start(const edist_runtime_config *cfg, edist_runtime **out)
{
    if (!out)
        return edist_set_error(EDIST_EINVAL, "runtime_start: no output");
    *out = NULL;
    edist_runtime_config def;
    if (!cfg) {
        edist_runtime_config_init(&def);
        cfg = &def;
    }
    edi_loop_config lc;
    edi_loop_config_default(&lc);
    lc.idle = cfg->idle == EDIST_IDLE_BUSY    ? EDI_IDLE_BUSY
              : cfg->idle == EDIST_IDLE_SLEEP ? EDI_IDLE_SLEEP
                                              : EDI_IDLE_ADAPTIVE;
    /* No sockets here: no TCP data path, so no receive pool. */
    edi_loop *loop;
    int rc = edi_loop_new(&lc, &loop);
    if (rc)
        return rc;
    edi_rt_config rc_cfg = {.loop = loop, .proc = cfg, .hooks = NULL};
    edi_rt *rt;
    rc = edi_rt_new(&rc_cfg, &rt);
    if (rc) {
        edi_loop_free(loop);
        return rc;
    }
    rt->own_loop = true;
    rc = edi_rt_start_thread(rt, &rt->thread);
    if (rc) {
        edi_rt_free(rt);
        edi_loop_free(loop);
        return rc;
    }
    rt->thread_started = true;
    *out = rt;
    return 0;
}

void edist_runtime_stop(edist_runtime *rt)
{
    if (!rt)
        return;
    rt = rt->g->rt[0];
    if (rt->own_loop && edi_rt_here(rt)) {
        /* From one of its own processes it would wait for itself. */
        edi_rt_log(rt, EDIST_LOG_ERROR,
                   "edist_runtime_stop called from the runtime's own thread: ignored");
        return;
    }
    edi_loop *loop = rt->loop;
    if (rt->own_loop && rt->thread_started) {
        /* Quiet first: no signals between shards that are stopping. */
        atomic_store(&rt->g->quiet, 1);
        edi_rt_stop_thread(rt, rt->thread);
    }
    bool own = rt->own_loop;
    edi_rt_free(rt);
    if (own)
        edi_loop_free(loop);
}

/* Adds rt's counters to o. exact: on rt's thread, or it does not run;
 * else they are read as they are (relaxed), from another shard. */
void edi_rt_stats_add(edi_rt *rt, edist_runtime_stats *o, bool exact)
{
#define RD(x) (exact ? (x) : __atomic_load_n(&(x), __ATOMIC_RELAXED))
    o->processes += RD(rt->live);
    o->spawned += RD(rt->spawned);
    o->exited += RD(rt->exited);
    o->context_switches += RD(rt->switches);
    o->messages_sent += RD(rt->sent);
    o->messages_dropped += RD(rt->dropped);
    o->mailbox_overflows += RD(rt->mailbox_overflows);
    o->messages_copied_out += RD(rt->copied_out);
    o->mailbox_busy += RD(rt->mailbox_busy);
    o->requests_refused += atomic_load_explicit(&rt->reqs_refused, memory_order_relaxed);
    for (uint32_t d = 0; rt->xout && d < rt->nshards; d++) {
        o->shard_records_sent += RD(rt->xout[d].pushed);
        o->shard_records_received += RD(rt->xin[d].applied);
    }
    o->shard_ring_full += RD(rt->x_ring_full);
    o->shard_senders_held += RD(rt->x_senders_held);
    o->shard_ring_holds += RD(rt->x_holds);
    o->shard_past_soft_limit += RD(rt->x_past_soft_limit);
#undef RD
    /* The stack pool has no relaxed copy of its counts: a sibling shard
     * (which never waits for another) leaves them out. */
    if (!exact)
        return;
    uint64_t reserved, free_, guarded;
    edi_stacks_stats(rt->stacks, &reserved, &free_, &guarded);
    o->stacks_reserved += reserved;
    o->stacks_free += free_;
    o->guard_pages += guarded;
}

typedef struct stats_ctx {
    edist_runtime_stats *out;
} stats_ctx;

static int do_stats(edi_rt *rt, void *arg)
{
    stats_ctx *c = arg;
    edi_rt_stats_add(rt, c->out, true);
    return 0;
}

/* Add shard s's counters: on its thread (waiting for it) unless the
 * caller is another shard, which never waits for a sibling. */
static int shard_stats(edi_rt *s, edist_runtime_stats *out)
{
    edi_rt *here = edi_rt_here(s);
    if (here && here != s) {
        edi_rt_stats_add(s, out, false);
        return 0;
    }
    stats_ctx c = {out};
    return edi_rt_run(s, do_stats, &c);
}

int edist_runtime_get_stats(edist_runtime *rt, edist_runtime_stats *out)
{
    if (!rt || !out)
        return edist_set_error(EDIST_EINVAL, "runtime_get_stats: no runtime");
    memset(out, 0, sizeof *out);
    for (uint32_t i = 0; i < rt->g->n; i++) {
        int rc = shard_stats(rt->g->rt[i], out);
        if (rc)
            return rc;
    }
    out->shards = rt->g->n;
    return 0;
}

int edist_runtime_get_shard_stats(edist_runtime *rt, uint32_t shard, edist_runtime_stats *out)
{
    if (!rt || !out)
        return edist_set_error(EDIST_EINVAL, "runtime_get_shard_stats: no runtime");
    if (shard >= rt->g->n)
        return edist_set_error(EDIST_EINVAL, "runtime_get_shard_stats: no shard %u (of %u)",
                               shard, rt->g->n);
    memset(out, 0, sizeof *out);
    int rc = shard_stats(rt->g->rt[shard], out);
    out->shards = shard;
    return rc;
}

/* ---- self ------------------------------------------------------------------------------ */

edist_procid edist_self(void)
{
    edi_proc *p = edi_current;
    return p ? edi_proc_pid(p) : EDIST_PROCID_NULL;
}

edist_runtime *edist_self_runtime(void)
{
    edi_proc *p = edi_current;
    return p ? p->rt : NULL;
}

#define NEED_SELF(p)                                                                      \
    edi_proc *p = edi_current;                                                            \
    if (!p)                                                                               \
        return edist_set_error(EDIST_EINVAL, "%s: the caller is not a process", __func__)

/* A thread process killed by a signal: every call says so. */
static inline int thread_dead(edi_proc *p)
{
    return p->kind == EDI_PROC_THREAD &&
           atomic_load_explicit(&p->thr->dead, memory_order_acquire);
}

/* ---- spawning ------------------------------------------------------------------------------ */

typedef struct spawn_ctx {
    edi_proc *parent; /* NULL: none */
    edist_proc_fn fn;
    void *arg;
    edist_spawn_opts opts;
    edist_procid pid;
    edist_ref ref;
} spawn_ctx;

static int do_spawn(edi_rt *rt, void *arg)
{
    spawn_ctx *c = arg;
    if (c->parent && (c->parent->state >= EDI_ST_EXITING))
        return edist_set_error(EDIST_ECLOSED, "spawn: the calling process has ended");
    edi_proc *child;
    int rc = edi_proc_spawn(rt, c->fn, c->arg, c->opts.stack_bytes, &child);
    if (rc)
        return rc;
    c->pid = edi_proc_pid(child);
    if (c->parent) {
        edist_procid me = edi_proc_pid(c->parent);
        if (c->opts.link && (rc = edi_link_add(rt, c->parent, c->pid, child)) != 0)
            goto undo;
        if (c->opts.monitor) {
            edi_refkey k;
            edi_make_refkey(rt, &k);
            edi_mon *m;
            rc = edi_mon_add(rt, &k, me, c->parent, c->pid, child, 0, NULL, &m);
            if (rc)
                goto undo;
            edi_refkey_to_ref(&k, &c->ref);
        }
    }
    return 0;
undo:
    /* It never ran: end it quietly (its link, if any, goes with it). */
    edi_link_remove(rt, edi_proc_pid(c->parent), c->pid);
    edi_sched_kill(rt, child, EDIST_REASON_KILLED);
    return rc;
}

int edist_spawn_opt(edist_proc_fn fn, void *arg, const edist_spawn_opts *opts, edist_procid *pid,
                    edist_ref *monitor_ref)
{
    NEED_SELF(self);
    if (thread_dead(self))
        return edist_set_error(EDIST_ECLOSED, "spawn: the calling process has ended");
    spawn_ctx c;
    memset(&c, 0, sizeof c);
    c.parent = self;
    c.fn = fn;
    c.arg = arg;
    if (opts)
        c.opts = *opts;
    if (c.opts.monitor && !monitor_ref)
        return edist_set_error(EDIST_EINVAL, "spawn: monitor without a ref output");
    int rc = edi_rt_run(self->rt, do_spawn, &c);
    if (rc)
        return rc;
    if (pid)
        *pid = c.pid;
    if (c.opts.monitor)
        *monitor_ref = c.ref;
    return 0;
}

int edist_spawn(edist_proc_fn fn, void *arg, edist_procid *pid)
{
    return edist_spawn_opt(fn, arg, NULL, pid, NULL);
}

int edist_spawn_link(edist_proc_fn fn, void *arg, edist_procid *pid)
{
    edist_spawn_opts o = {.link = true};
    return edist_spawn_opt(fn, arg, &o, pid, NULL);
}

int edist_spawn_monitor(edist_proc_fn fn, void *arg, edist_procid *pid, edist_ref *monitor_ref)
{
    edist_spawn_opts o = {.monitor = true};
    return edist_spawn_opt(fn, arg, &o, pid, monitor_ref);
}

/* Spawn on shard rt exactly. */
static int spawn_on(edist_runtime *rt, edist_proc_fn fn, void *arg, const edist_spawn_opts *opts,
                    edist_procid *pid)
{
    spawn_ctx c;
    memset(&c, 0, sizeof c);
    c.fn = fn;
    c.arg = arg;
    if (opts) {
        if (opts->link || opts->monitor)
            return edist_set_error(EDIST_EINVAL,
                                   "runtime_spawn: link and monitor need a calling process");
        c.opts = *opts;
    }
    int rc = edi_rt_run(rt, do_spawn, &c);
    if (rc == 0 && pid)
        *pid = c.pid;
    return rc;
}

int edist_runtime_spawn(edist_runtime *rt, edist_proc_fn fn, void *arg,
                        const edist_spawn_opts *opts, edist_procid *pid)
{
    if (!rt)
        return edist_set_error(EDIST_EINVAL, "runtime_spawn: no runtime");
    /* From a shard's thread, there (it never waits for a sibling); from
     * other threads, round robin over the shards. */
    edi_rt *on = edi_rt_here(rt);
    return spawn_on(on ? on : edi_rt_next_spawn(rt), fn, arg, opts, pid);
}

int edi_rt_spawn_here(edi_rt *rt, edist_proc_fn fn, void *arg, edist_procid *pid)
{
    return spawn_on(rt, fn, arg, NULL, pid);
}

/* ---- exiting -------------------------------------------------------------------------------- */

typedef struct exit_ctx {
    edi_proc *self;
    edist_term_view reason;
} exit_ctx;

static int do_exit_self(edi_rt *rt, void *arg)
{
    exit_ctx *c = arg;
    edi_sched_kill(rt, c->self, c->reason);
    return 0;
}

int edist_exit(const void *reason, size_t len)
{
    NEED_SELF(self);
    if (!reason || len == 0)
        return edist_set_error(EDIST_EINVAL, "exit: no reason");
    const uint8_t *r = reason;
    if (r[0] == EDIST_TAG_VERSION && len > 1) {
        r++;
        len--;
    }
    edist_term_view v = {r, len};
    if (self->kind == EDI_PROC_GREEN) {
        edi_sched_kill(self->rt, self, v);
        edi_sched_exit_current(self->rt, self);
    }
    if (thread_dead(self))
        return 0;
    exit_ctx c = {self, v};
    return edi_rt_run(self->rt, do_exit_self, &c);
}

typedef struct flag_ctx {
    edi_proc *self;
    bool on;
} flag_ctx;

static int do_trap_exit(edi_rt *rt, void *arg)
{
    (void)rt;
    flag_ctx *c = arg;
    int old = c->self->trap_exit;
    c->self->trap_exit = c->on;
    return old;
}

int edist_trap_exit(bool on)
{
    NEED_SELF(self);
    if (self->kind == EDI_PROC_GREEN) {
        int old = self->trap_exit;
        self->trap_exit = on;
        return old;
    }
    if (thread_dead(self))
        return edist_set_error(EDIST_ECLOSED, "trap_exit: the process has ended");
    flag_ctx c = {self, on};
    return edi_rt_run(self->rt, do_trap_exit, &c);
}

typedef struct at_exit_ctx {
    edi_proc *self;
    void (*fn)(void *);
    void *arg;
} at_exit_ctx;

static int do_at_exit(edi_rt *rt, void *arg)
{
    (void)rt;
    at_exit_ctx *c = arg;
    edi_proc *p = c->self;
    if (p->state >= EDI_ST_EXITING)
        return edist_set_error(EDIST_ECLOSED, "at_exit: the process has ended");
    if (p->n_at_exit >= EDI_AT_EXIT_MAX)
        return edist_set_error(EDIST_ENOMEM, "at_exit: at most %d functions", EDI_AT_EXIT_MAX);
    if (!p->at_exit) {
        p->at_exit = malloc(EDI_AT_EXIT_MAX * sizeof *p->at_exit);
        if (!p->at_exit)
            return edist_set_error(EDIST_ENOMEM, "at_exit: no memory");
    }
    p->at_exit[p->n_at_exit].fn = c->fn;
    p->at_exit[p->n_at_exit].arg = c->arg;
    p->n_at_exit++;
    return 0;
}

static int do_at_exit_cancel(edi_rt *rt, void *arg)
{
    (void)rt;
    at_exit_ctx *c = arg;
    edi_proc *p = c->self;
    for (uint8_t i = p->n_at_exit; i-- > 0;) {
        if (p->at_exit[i].fn != c->fn || p->at_exit[i].arg != c->arg)
            continue;
        memmove(&p->at_exit[i], &p->at_exit[i + 1],
                (size_t)(p->n_at_exit - i - 1) * sizeof *p->at_exit);
        p->n_at_exit--;
        return 0;
    }
    return edist_set_error(EDIST_ENOTFOUND, "at_exit: no such function registered");
}

int edist_at_exit_cancel(void (*fn)(void *arg), void *arg)
{
    NEED_SELF(self);
    at_exit_ctx c = {self, fn, arg};
    return edi_rt_run(self->rt, do_at_exit_cancel, &c);
}

int edist_at_exit(void (*fn)(void *arg), void *arg)
{
    NEED_SELF(self);
    if (!fn)
        return edist_set_error(EDIST_EINVAL, "at_exit: no function");
    at_exit_ctx c = {self, fn, arg};
    return edi_rt_run(self->rt, do_at_exit, &c);
}

int edist_yield(void)
{
    NEED_SELF(self);
    if (self->kind != EDI_PROC_GREEN)
        return 0;
    /* Alone, it waits for the network or a timer: let the loop poll now
     * rather than after the scheduler's whole slice budget (4,096 yields,
     * ~0.4 ms here), which a polling process would add to every wait. */
    if (!self->rt->sched.runq_head)
        edi_sched_yield_to_loop(self->rt, self);
    else
        edi_sched_yield(self->rt, self);
    return 0;
}

typedef struct alive_ctx {
    edist_procid pid;
} alive_ctx;

static int do_alive(edi_rt *rt, void *arg)
{
    alive_ctx *c = arg;
    return edi_proc_alive(rt, c->pid) != NULL;
}

bool edist_runtime_is_alive(edist_runtime *rt, edist_procid pid)
{
    if (!rt)
        return false;
    edi_rt *owner = edi_rt_owner(rt, pid);
    if (!owner)
        return false;
    /* A shard's thread does not wait for a sibling: it looks at its table. */
    edi_rt *here = edi_rt_here(rt);
    if (here && here != owner)
        return edi_proc_probe(owner, pid);
    alive_ctx c = {pid};
    return edi_rt_run(owner, do_alive, &c) == 1;
}

typedef struct alive_req {
    edi_req req;
    edist_procid pid;
} alive_req;

/* A thread process's question, on its shard after its earlier signals. */
static int alive_req_run(edi_rt *rt, edi_req *r)
{
    alive_req *a = (alive_req *)r;
    if (edi_rt_owns(rt, a->pid))
        return edi_proc_alive(rt, a->pid) != NULL;
    return edi_x_alive(rt, a->pid, r);
}

bool edist_is_process_alive(edist_procid pid)
{
    edi_proc *self = edi_current;
    if (!self)
        return false;
    edi_rt *rt = self->rt;
    if (!edi_rt_elsewhere(rt, pid))
        return edist_runtime_is_alive(rt, pid);
    /* Another shard's: asked there, after what the caller sent it. */
    if (self->kind == EDI_PROC_GREEN)
        return edi_x_alive(rt, pid, NULL) == 1;
    alive_req a;
    memset(&a, 0, sizeof a);
    a.req.fn = alive_req_run;
    a.pid = pid;
    return edi_rt_call(rt, &a.req, true) == 1;
}

/* ---- thread processes ------------------------------------------------------------------------ */

typedef struct attach_ctx {
    uint32_t spin_us;
    edi_proc *proc;
} attach_ctx;

static int do_attach(edi_rt *rt, void *arg)
{
    attach_ctx *c = arg;
    edi_proc *p = calloc(1, sizeof *p);
    edi_thread_proc *t = calloc(1, sizeof *t);
    if (!p || !t) {
        free(p);
        free(t);
        return edist_set_error(EDIST_ENOMEM, "attach: no memory");
    }
    p->rt = rt;
    p->kind = EDI_PROC_THREAD;
    p->thr = t;
    edi_mbox_init(&p->mbox);
    edi_mbox_init(&t->box);
    t->scan_prev = &t->box.head;
    t->spin_us = c->spin_us;
    atomic_init(&t->refs, 2);
    int rc = table_alloc(rt, p);
    if (rc) {
        free(p);
        free(t);
        return rc;
    }
    p->state = EDI_ST_RUNNING;
    EDI_COUNT_ADD(rt->spawned, 1);
    c->proc = p;
    return 0;
}

int edist_proc_attach_thread(edist_runtime *rt, uint32_t spin_us, edist_procid *pid)
{
    if (!rt)
        return edist_set_error(EDIST_EINVAL, "attach: no runtime");
    if (edi_current)
        return edist_set_error(EDIST_EINVAL, "attach: the thread is a process already");
    if (edi_rt_here(rt))
        return edist_set_error(EDIST_EINVAL, "attach: not on the shard thread");
    attach_ctx c = {spin_us, NULL};
    rt = edi_rt_next_attach(rt); /* round robin over the shards */
    int rc = edi_rt_run(rt, do_attach, &c);
    if (rc)
        return rc;
    edi_current = c.proc;
    if (pid)
        *pid = edi_proc_pid(c.proc);
    return 0;
}

void edi_thread_proc_free(edi_proc *p)
{
    edi_thread_proc *t = p->thr;
    edi_msg *m = edi_mpsc_take(&t->inbox);
    while (m) {
        edi_msg *n = m->next;
        edi_msg_free(NULL, m);
        m = n;
    }
    edi_mbox_clear(&t->box, NULL);
    if (p->current)
        edi_msg_free(NULL, p->current);
    free(t->reason);
    free(t);
    free(p->at_exit);
    free(p);
}

int edist_proc_detach_thread(const void *reason, size_t len)
{
    edi_proc *self = edi_current;
    if (!self || self->kind != EDI_PROC_THREAD)
        return edist_set_error(EDIST_EINVAL, "detach: the thread is not attached");
    if (!thread_dead(self)) {
        edist_term_view v = EDIST_REASON_NORMAL;
        if (reason && len > 0) {
            v.ptr = reason;
            v.len = len;
            if (v.ptr[0] == EDIST_TAG_VERSION && v.len > 1) {
                v.ptr++;
                v.len--;
            }
        }
        exit_ctx c = {self, v};
        edi_rt_run(self->rt, do_exit_self, &c);
    }
    edi_current = NULL;
    if (atomic_fetch_sub(&self->thr->refs, 1) == 1)
        edi_thread_proc_free(self);
    return 0;
}

int edist_proc_exit_reason(edist_term_view *reason)
{
    edi_proc *self = edi_current;
    if (!self || self->kind != EDI_PROC_THREAD)
        return edist_set_error(EDIST_EINVAL, "exit_reason: the thread is not attached");
    if (!thread_dead(self))
        return edist_set_error(EDIST_ENOTFOUND, "exit_reason: the process is alive");
    reason->ptr = self->thr->reason;
    reason->len = self->thr->reason_len;
    return 0;
}
