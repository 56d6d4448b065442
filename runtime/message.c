/* SPDX-License-Identifier: Apache-2.0 */
/* Sending and receiving.
 *
 * Green senders deliver straight into the target's mailbox on the shard
 * thread. If the target is blocked in receive, the sender checks the new
 * message against the target's pattern right away (the pattern and the
 * capture array live on the blocked receiver's stack, which stays put):
 * the receiver is woken only for a message it will take, so a selective
 * receive costs no context switch per message it skips.
 *
 * Thread senders hand their messages (and all their other signals) to the
 * shard through the request queue, so that what one process sends to
 * another arrives in the order sent, messages and signals alike. A thread
 * process's mailbox is an atomic list the shard pushes to; its thread
 * takes the whole list at once and scans it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/runtime_internal.h"

#define THREAD_SPIN_CHECK_EVERY 64

/* Encoded term bytes of a message or reason: a leading 131 is skipped;
 * compressed terms are inflated into *scratch. */
static int term_bytes(const void *term, size_t len, edist_buf *scratch, const uint8_t **out,
                      size_t *out_len)
{
    if (!term || len == 0)
        return edist_set_error(EDIST_EINVAL, "send: empty term");
    const uint8_t *p = term;
    /* Refused here, on every shard: past this point it would only fail
     * where the message is built for another node, after send said ok. */
    if (p[0] == EDIST_TAG_COMPRESSED)
        return edist_set_error(EDIST_EINVAL,
                               "send: a compressed term without its version byte");
    if (p[0] == EDIST_TAG_VERSION) {
        if (len > 1 && p[1] == EDIST_TAG_COMPRESSED) {
            edist_cursor c;
            int rc = edist_cursor_init_ext(&c, p, len, scratch);
            if (rc)
                return rc;
            *out = c.data;
            *out_len = c.len;
            return 0;
        }
        p++;
        len--;
        if (len == 0)
            return edist_set_error(EDIST_EINVAL, "send: empty term");
        /* 131 131 80: the builders strip a second version byte, then
         * refuse what is behind it (inflated only behind the first) */
        if (len > 1 && p[0] == EDIST_TAG_VERSION && p[1] == EDIST_TAG_COMPRESSED)
            return edist_set_error(EDIST_EINVAL,
                                   "send: a compressed term behind two version bytes");
    }
    *out = p;
    *out_len = len;
    return 0;
}

edi_msg *edi_msg_for(edi_rt *rt, const edi_proc *p, const void *data, size_t len)
{
    return edi_msg_copy(p->kind == EDI_PROC_GREEN ? &rt->pool : NULL, data, len);
}

static void thread_notify(edi_thread_proc *t)
{
    /* seq_cst increment then load: pairs with the waiter's seq_cst
     * increment of sleepers then load of seq (thread_wait). */
    atomic_fetch_add(&t->seq, 1);
    if (atomic_load(&t->sleepers))
        edi_futex_wake(&t->seq);
}

/* Would one more message of len bytes overflow a mailbox holding count
 * messages of bytes bytes, under limit? An empty mailbox takes any one
 * message, so that a message larger than the byte limit is not refused
 * forever. */
static bool mailbox_full(const edi_rt *rt, edi_limit limit, uint32_t count, uint64_t bytes,
                         size_t len)
{
    uint32_t max_count;
    uint64_t max_bytes;
    switch (limit) {
    case EDI_LIMIT_SOFT:
        max_count = rt->cfg.max_mailbox_messages;
        max_bytes = rt->cfg.max_mailbox_bytes;
        break;
    case EDI_LIMIT_HARD:
        max_count = rt->cfg.max_mailbox_messages_hard;
        max_bytes = rt->cfg.max_mailbox_bytes_hard;
        break;
    default:
        return false;
    }
    return count >= max_count || (count > 0 && bytes + len > max_bytes);
}

bool edi_mailbox_at_soft_limit(const edi_rt *rt, const edi_proc *p)
{
    return p->mbox.refused || mailbox_full(rt, EDI_LIMIT_SOFT, p->mbox.count, p->mbox.bytes, 0);
}

/* mailbox_overflow lines: one a second at most, then the count left out. */
#define OVERFLOW_LOG_INTERVAL_MS 1000u

/* A message that cannot be pushed back found p's mailbox at a hard limit:
 * p exits with reason mailbox_overflow (untrappable, as erts' kill at
 * max_heap_size), so the loss is seen by p's links and monitors and
 * nothing later reaches p: no gap. */
static int mailbox_overflow(edi_rt *rt, edi_proc *p, edi_msg *m, uint32_t count,
                            uint64_t bytes)
{
    edi_msg_free(&rt->pool, m);
    EDI_COUNT_ADD(rt->dropped, 1);
    EDI_COUNT_ADD(rt->mailbox_overflows, 1);
    edi_ratelimit *rl = &rt->overflow_log;
    if (edi_ratelimit_take(rl, edi_now_ms(), 1, OVERFLOW_LOG_INTERVAL_MS)) {
        edist_procid pid = edi_proc_pid(p);
        char more[64] = "";
        if (rl->suppressed)
            snprintf(more, sizeof more, "; %llu more since the last line",
                     (unsigned long long)rl->suppressed);
        edi_rt_log(rt, EDIST_LOG_WARNING,
                   "process <0.%u.%u> killed: mailbox_overflow (%u messages, %llu bytes "
                   "queued; hard limits %u messages, %llu bytes)%s",
                   pid.id, pid.serial, count, (unsigned long long)bytes,
                   rt->cfg.max_mailbox_messages_hard,
                   (unsigned long long)rt->cfg.max_mailbox_bytes_hard, more);
        rl->suppressed = 0;
    } else {
        rl->suppressed++;
    }
    edi_sched_kill(rt, p, EDIST_REASON_MAILBOX_OVERFLOW);
    return EDIST_ENOTFOUND;
}

/* A local sender is held back (it retries or waits): counted each time. */
static int mailbox_busy(edi_rt *rt)
{
    EDI_COUNT_ADD(rt->mailbox_busy, 1);
    return EDIST_EAGAIN;
}

int edi_deliver(edi_rt *rt, edi_proc *p, edi_msg *m, edi_limit limit)
{
    if (p->state >= EDI_ST_EXITING) {
        edi_msg_free(&rt->pool, m);
        EDI_COUNT_ADD(rt->dropped, 1);
        return EDIST_ENOTFOUND;
    }
    if (p->kind == EDI_PROC_THREAD) {
        edi_thread_proc *t = p->thr;
        uint32_t count = atomic_load_explicit(&t->queued, memory_order_relaxed);
        uint64_t bytes = atomic_load_explicit(&t->queued_bytes, memory_order_relaxed);
        if (mailbox_full(rt, limit, count, bytes, m->len))
            return limit == EDI_LIMIT_SOFT ? mailbox_busy(rt)
                                           : mailbox_overflow(rt, p, m, count, bytes);
        if (m->alloc == EDI_MSG_POOL) {
            /* The thread frees what it receives: no pool entries there. */
            edi_msg *h = malloc(sizeof *h);
            if (!h) {
                edi_msg_free(&rt->pool, m);
                EDI_COUNT_ADD(rt->dropped, 1);
                return edist_set_error(EDIST_ENOMEM, "send: no memory");
            }
            *h = *m;
            h->alloc = EDI_MSG_HEAP;
            if (!m->ext)
                h->data = h->u.inl;
            m->ext = 0; /* the payload moved to h */
            edi_msg_free(&rt->pool, m);
            m = h;
        }
        atomic_fetch_add_explicit(&t->queued, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&t->queued_bytes, m->len, memory_order_relaxed);
        edi_mpsc_push(&t->inbox, m);
        thread_notify(t);
        EDI_COUNT_ADD(rt->sent, 1);
        return 0;
    }
    if (mailbox_full(rt, limit, p->mbox.count, p->mbox.bytes, m->len)) {
        if (limit != EDI_LIMIT_SOFT)
            return mailbox_overflow(rt, p, m, p->mbox.count, p->mbox.bytes);
        p->mbox.refused = true;
        /* held back by a ring: its own mailbox full ends the hold */
        if (p->x_held && p->state == EDI_ST_WAITING && p->recv_pattern == EDI_PATTERN_NEVER)
            edi_sched_make_runnable(rt, p);
        return mailbox_busy(rt);
    }
    edi_msg **prev = p->mbox.tailp;
    edi_mbox_append(&p->mbox, m);
    EDI_COUNT_ADD(rt->sent, 1);
    if (p->state == EDI_ST_WAITING && !p->recv_match) {
        const edist_pattern *pat = p->recv_pattern;
        if (pat == EDI_PATTERN_NEVER) {
            /* held back by a ring: its own mailbox full ends the hold */
            if (p->x_held && edi_mailbox_at_soft_limit(rt, p))
                edi_sched_make_runnable(rt, p);
            return 0;
        }
        if (!pat || edist_match(pat, m->data, m->len, p->recv_vars) == 1) {
            p->recv_match = m;
            p->recv_match_prev = prev;
            edi_sched_make_runnable(rt, p);
        }
    }
    return 0;
}

/* How a send treats a full destination. */
typedef enum send_how {
    SEND_NORMAL, /* local: held back at the soft limit; remote: busy_dist_port */
    SEND_FORCED, /* past both limits (bounded per peer by the node) */
    SEND_RELAY,  /* local: up to the hard limit, as from the network */
} send_how;

static int send_view(edi_rt *rt, edist_procid from, edist_procid to, const uint8_t *data,
                     size_t len, edist_release_fn release, void *owner, send_how how,
                     const edist_term_view *alias)
{
    bool force = how == SEND_FORCED;
    edi_limit limit = force ? EDI_LIMIT_NONE : how == SEND_RELAY ? EDI_LIMIT_HARD : EDI_LIMIT_SOFT;
    if (edi_rt_owns(rt, to)) {
        edi_proc *p = edi_proc_alive(rt, to);
        if (!p) {
            if (release)
                release(owner, data);
            EDI_COUNT_ADD(rt->dropped, 1);
            return 0;
        }
        edi_msg_pool *pool = p->kind == EDI_PROC_GREEN ? &rt->pool : NULL;
        edi_msg *m = release ? edi_msg_external(pool, data, len, release, owner)
                             : edi_msg_copy(pool, data, len);
        if (!m) {
            if (release)
                release(owner, data);
            return edist_set_error(EDIST_ENOMEM, "send: no memory");
        }
        int rc = edi_deliver(rt, p, m, limit);
        if (rc == EDIST_EAGAIN) {
            edi_msg_free(&rt->pool, m); /* releases an owned payload */
            return edist_set_error(EDIST_EAGAIN, "send: the mailbox of <0.%u.%u> is full",
                                   to.id, to.serial);
        }
        return rc == EDIST_ENOTFOUND ? 0 : rc;
    }
    /* Another shard's or another node's. A green sender that a backed-up
     * ring would hold while its own mailbox is full could wait for itself
     * (the ring may be stuck on a mailbox whose owner waits for this one
     * to receive): it is answered at once, as for a full mailbox here. */
    edi_proc *self = edi_current;
    if (how == SEND_NORMAL && self && self->kind == EDI_PROC_GREEN && self->rt == rt &&
        edi_x_busy(rt, to) && edi_mailbox_at_soft_limit(rt, self)) {
        if (release)
            release(owner, data);
        mailbox_busy(rt);
        return edist_set_error(EDIST_EAGAIN,
                               "send: the ring to the shard of <0.%u.%u> is backed up and "
                               "the sender's own mailbox is full: receive, then send again",
                               to.id, to.serial);
    }
    edi_rt_payload pl = {data, len, release, owner, force, {NULL, 0}};
    if (alias)
        pl.alias = *alias;
    int rc = edi_out_send(rt, from, to, &pl, limit);
    if (how != SEND_NORMAL)
        rt->yield_due = false; /* a relayed or forced send never yields */
    if (rc == 0) {
        if (how == SEND_NORMAL)
            edi_x_hold(rt, to); /* behind a full ring: wait for it */
        return 0;
    }
    if (release)
        release(owner, data);
    if (rc == EDIST_ENOTFOUND) { /* a pid of this node that no shard has */
        EDI_COUNT_ADD(rt->dropped, 1);
        return 0;
    }
    if (rc == EDIST_ECLOSED)
        return edist_set_error(rc, "send: no connection to %s", edist_procid_node(to));
    return rc;
}

int edi_send_view(edi_rt *rt, edist_procid from, edist_procid to, const uint8_t *data,
                  size_t len, edist_release_fn release, void *owner)
{
    return send_view(rt, from, to, data, len, release, owner, SEND_NORMAL, NULL);
}

/* ---- sends from threads ------------------------------------------------------------ */

typedef struct send_req {
    edi_req req;
    edist_procid from;
    edist_procid to;
    edi_msg *msg;       /* heap entry */
    char *name;         /* {Name, Node} sends; NULL: to pid */
    uint32_t name_node;
    size_t bytes;       /* counted in rt->reqs_pending_bytes */
} send_req;

static int send_req_run(edi_rt *rt, edi_req *r)
{
    send_req *s = (send_req *)r;
    edi_msg *m = s->msg;
    edist_procid to = s->to;
    bool local = s->name ? s->name_node == rt->node_index : edi_rt_is_local(rt, s->to);
    if (local && s->name && edi_name_lookup(rt, s->name, strlen(s->name), &to) != 0) {
        EDI_COUNT_ADD(rt->dropped, 1);
        edi_msg_free(NULL, m);
    } else if (local && edi_rt_owns(rt, to)) {
        edi_proc *p = edi_proc_alive(rt, to);
        if (!p) {
            EDI_COUNT_ADD(rt->dropped, 1);
            edi_msg_free(NULL, m);
        } else if (edi_deliver(rt, p, m, EDI_LIMIT_SOFT) == EDIST_EAGAIN) {
            return EDIST_EAGAIN; /* stall: keeps m, retried in order */
        }
    } else {
        /* Another shard's, or another node's (the node takes the entry's
         * bytes; the entry goes when done). A ring too far behind holds
         * the thread back as a full mailbox does. */
        edist_procid where = local || !s->name ? to : (edist_procid){.node = s->name_node};
        if (edi_x_busy(rt, where))
            return EDIST_EAGAIN;
        int rc = s->name && !local
                     ? edi_out_reg_send_msg(rt, s->from, s->name_node, s->name, m)
                     : edi_out_send_msg(rt, s->from, to, m, EDI_LIMIT_SOFT, false);
        rt->yield_due = false; /* a thread is held back by its own queue */
        /* The peer's queue is full (busy_dist_port): the thread's requests
         * wait, in order, as a green sender would; never dropped. */
        if (rc == EDIST_EAGAIN)
            return EDIST_EAGAIN; /* stall: keeps m, retried in order */
        if (rc != 0) { /* no connection: dropped, as erts drops it */
            EDI_COUNT_ADD(rt->dropped, 1);
            edi_msg_free(NULL, m);
        }
    }
    atomic_fetch_sub_explicit(&rt->reqs_pending_bytes, s->bytes, memory_order_relaxed);
    free(s->name);
    return 0;
}

static int thread_send(edi_rt *rt, edist_procid from, edist_procid to, const char *name,
                       uint32_t name_node, const uint8_t *data, size_t len,
                       edist_release_fn release, void *owner)
{
    send_req *s = calloc(1, sizeof *s);
    edi_msg *m = NULL;
    char *nm = NULL;
    if (s) {
        m = release ? edi_msg_external(NULL, data, len, release, owner)
                    : edi_msg_copy(NULL, data, len);
        if (name)
            nm = strdup(name);
    }
    if (!s || !m || (name && !nm)) {
        free(s);
        free(nm);
        if (m)
            edi_msg_free(NULL, m);
        else if (release)
            release(owner, data);
        return edist_set_error(EDIST_ENOMEM, "send: no memory");
    }
    s->req.fn = send_req_run;
    s->from = from;
    s->to = to;
    s->msg = m;
    s->name = nm;
    s->name_node = name_node;
    s->bytes = len;
    uint64_t queued = atomic_fetch_add_explicit(&rt->reqs_pending_bytes, len,
                                                memory_order_relaxed);
    bool over = queued > 0 && queued + len > rt->cfg.max_pending_bytes;
    if (over)
        atomic_fetch_add_explicit(&rt->reqs_refused, 1, memory_order_relaxed);
    int rc = over ? edist_set_error(EDIST_EAGAIN, "runtime: %llu bytes of sends already queued "
                                                  "to the shard",
                                    (unsigned long long)queued)
                  : edi_rt_call(rt, &s->req, false);
    if (rc == EDIST_EAGAIN) {
        atomic_fetch_sub_explicit(&rt->reqs_pending_bytes, len, memory_order_relaxed);
        edi_msg_free(NULL, m);
        free(nm);
        free(s);
    }
    return rc;
}

/* ---- public sends ------------------------------------------------------------------- */

#define NEED_SELF(p)                                                                      \
    edi_proc *p = edi_current;                                                            \
    if (!p)                                                                               \
        return edist_set_error(EDIST_EINVAL, "%s: the caller is not a process", __func__)

static int send_common(edi_rt *rt, edi_proc *self, edist_procid to, const void *term,
                       size_t len, edist_release_fn release, void *owner)
{
    const uint8_t *d = NULL;
    size_t n = 0;
    edist_buf scratch;
    edist_buf_init(&scratch);
    int rc = term_bytes(term, len, &scratch, &d, &n);
    if (rc) {
        if (release)
            release(owner, term);
        return rc;
    }
    if (scratch.data) {
        /* Inflated: the copy is what goes, and the original is done. */
        if (release)
            release(owner, term);
        release = NULL;
    }
    edist_procid from = self ? edi_proc_pid(self) : EDIST_PROCID_NULL;
    if (self && self->kind == EDI_PROC_THREAD &&
        atomic_load_explicit(&self->thr->dead, memory_order_acquire)) {
        if (release)
            release(owner, term);
        edist_buf_free(&scratch);
        return edist_set_error(EDIST_ECLOSED, "send: the calling process has ended");
    }
    if ((self && self->kind == EDI_PROC_GREEN) || (!self && edi_rt_on_shard(rt)))
        rc = edi_send_view(rt, from, to, d, n, release, owner);
    else
        rc = thread_send(rt, from, to, NULL, 0, d, n, release, owner);
    edist_buf_free(&scratch);
    return rc;
}

int edist_send(edist_procid to, const void *term, size_t len)
{
    NEED_SELF(self);
    /* The common case inline: a green process, a small local message. */
    const uint8_t *d = term;
    edi_rt *rt = self->rt;
    if (self->kind == EDI_PROC_GREEN && d && len > 1 && len <= EDI_MSG_INLINE_BYTES &&
        d[0] != EDIST_TAG_VERSION && d[0] != EDIST_TAG_COMPRESSED && edi_rt_owns(rt, to)) {
        edi_proc *p = edi_proc_alive(rt, to);
        if (!p) {
            EDI_COUNT_ADD(rt->dropped, 1);
            return 0;
        }
        edi_msg *m = p->kind == EDI_PROC_GREEN ? edi_msg_pool_copy(&rt->pool, d, len) : NULL;
        if (!m && !(m = edi_msg_for(rt, p, d, len)))
            return edist_set_error(EDIST_ENOMEM, "send: no memory");
        int rc = edi_deliver(rt, p, m, EDI_LIMIT_SOFT);
        if (rc == EDIST_EAGAIN) {
            edi_msg_free(&rt->pool, m);
            return edist_set_error(EDIST_EAGAIN, "send: the mailbox of <0.%u.%u> is full",
                                   to.id, to.serial);
        }
        return 0;
    }
    /* A small message to another node from shard 0: one call to the lane
     * (rt_hook_send_small), or the general path when that cannot. */
    size_t skip = d && len > 1 && d[0] == EDIST_TAG_VERSION;
    if (self->kind == EDI_PROC_GREEN && d && len > 1 && to.node != rt->node_index &&
        rt->shard == 0 && rt->hooks.send_small && !edi_rt_quiet(rt) &&
        d[skip] != EDIST_TAG_VERSION && d[skip] != EDIST_TAG_COMPRESSED) {
        int rc = rt->hooks.send_small(rt->hooks.user, edi_proc_pid(self), to, d + skip,
                                      len - skip);
        if (rc <= 0) {
            if (rc == 0 && rt->yield_due)
                edi_x_hold(rt, to); /* yields to the loop, as after any send */
            return rc;
        }
    }
    return send_common(rt, self, to, term, len, NULL, NULL);
}

static int send_green(edist_procid to, const void *term, size_t len, send_how how,
                      const edist_term_view *alias)
{
    NEED_SELF(self);
    if (self->kind != EDI_PROC_GREEN)
        return edist_set_error(EDIST_EINVAL, "send: the caller is not a green process");
    const uint8_t *d = NULL;
    size_t n = 0;
    edist_buf scratch;
    edist_buf_init(&scratch);
    int rc = term_bytes(term, len, &scratch, &d, &n);
    if (rc == 0)
        rc = send_view(self->rt, edi_proc_pid(self), to, d, n, NULL, NULL, how, alias);
    edist_buf_free(&scratch);
    return rc;
}

int edi_send_forced(edist_procid to, const void *term, size_t len)
{
    return send_green(to, term, len, SEND_FORCED, NULL);
}

int edi_send_relay(edist_procid to, const void *term, size_t len)
{
    return send_green(to, term, len, SEND_RELAY, NULL);
}

int edi_send_relay_alias(edist_procid to, edist_term_view alias, const void *term, size_t len)
{
    return send_green(to, term, len, SEND_RELAY, &alias);
}

int edi_send_forced_alias(edist_procid to, edist_term_view alias, const void *term, size_t len)
{
    return send_green(to, term, len, SEND_FORCED, &alias);
}

int edist_send_owned(edist_procid to, const void *term, size_t len, edist_release_fn release,
                     void *owner)
{
    edi_proc *self = edi_current;
    if (!self) {
        if (release)
            release(owner, term);
        return edist_set_error(EDIST_EINVAL, "send_owned: the caller is not a process");
    }
    if (!release)
        return send_common(self->rt, self, to, term, len, NULL, NULL);
    return send_common(self->rt, self, to, term, len, release, owner);
}

int edist_send_buf(edist_procid to, edist_buf *b)
{
    if (!b)
        return edist_set_error(EDIST_EINVAL, "send_buf: no buffer");
    if (b->err || b->fixed || !b->data || b->len == 0) {
        int rc = b->err ? b->err : EDIST_EINVAL;
        if (!b->fixed)
            edist_buf_free(b);
        return edist_set_error(rc, "send_buf: the buffer holds no term");
    }
    uint8_t *data = b->data;
    size_t len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return edist_send_owned(to, data, len, edi_release_free, data);
}

int edist_runtime_send(edist_runtime *rt, edist_procid to, const void *term, size_t len)
{
    if (!rt)
        return edist_set_error(EDIST_EINVAL, "runtime_send: no runtime");
    /* On a shard's thread: from there. From any other thread: straight to
     * the shard that owns `to` (shard 0 for another node's). */
    edi_rt *h = edi_rt_here(rt);
    if (!h) {
        h = edi_rt_owner(rt, to);
        if (!h)
            h = rt->g->rt[0];
    }
    return send_common(h, NULL, to, term, len, NULL, NULL);
}

typedef struct name_send_ctx {
    edist_procid from;
    const char *name;
    uint32_t node;
    const uint8_t *data;
    size_t len;
    bool must_exist;
} name_send_ctx;

static int do_send_name(edi_rt *rt, void *arg)
{
    name_send_ctx *c = arg;
    if (c->node == rt->node_index) {
        edist_procid pid;
        if (edi_name_lookup(rt, c->name, strlen(c->name), &pid) != 0) {
            if (c->must_exist)
                return edist_set_error(EDIST_ENOTFOUND, "send: no process is registered as %s",
                                       c->name);
            EDI_COUNT_ADD(rt->dropped, 1);
            return 0;
        }
        return edi_send_view(rt, c->from, pid, c->data, c->len, NULL, NULL);
    }
    edi_rt_payload pl = {c->data, c->len, NULL, NULL, false, {NULL, 0}};
    int rc = edi_out_reg_send(rt, c->from, c->node, c->name, &pl);
    if (rc == 0)
        edi_x_hold(rt, (edist_procid){.node = c->node});
    if (rc == EDIST_ECLOSED)
        return edist_set_error(rc, "send: no connection to %s",
                               edi_rt_node_name(c->node, NULL));
    return rc;
}

static int send_name_common(edi_rt *rt, edi_proc *self, const char *name, const char *node,
                            const void *term, size_t len, bool must_exist)
{
    if (!name || !edi_atom_text_ok(name, strlen(name)))
        return edist_set_error(EDIST_EINVAL, "send: bad name");
    uint32_t node_index = rt->node_index;
    if (node) {
        int rc = edi_rt_node_intern(node, strlen(node), &node_index);
        if (rc)
            return rc;
    }
    edist_buf scratch;
    edist_buf_init(&scratch);
    name_send_ctx c = {self ? edi_proc_pid(self) : EDIST_PROCID_NULL, name, node_index, NULL, 0,
                       must_exist};
    int rc = term_bytes(term, len, &scratch, &c.data, &c.len);
    if (rc)
        return rc;
    bool on_shard = self ? self->kind == EDI_PROC_GREEN : edi_rt_on_shard(rt);
    if (on_shard || must_exist)
        rc = edi_rt_run(rt, do_send_name, &c); /* badarg must be known now */
    else
        rc = thread_send(rt, c.from, EDIST_PROCID_NULL, name, node_index, c.data, c.len, NULL,
                         NULL);
    edist_buf_free(&scratch);
    return rc;
}

int edist_send_name(const char *name, const void *term, size_t len)
{
    NEED_SELF(self);
    return send_name_common(self->rt, self, name, NULL, term, len, true);
}

int edist_send_name_node(const char *name, const char *node, const void *term, size_t len)
{
    NEED_SELF(self);
    return send_name_common(self->rt, self, name, node, term, len, false);
}

int edist_runtime_send_name(edist_runtime *rt, const char *name, const void *term, size_t len)
{
    if (!rt)
        return edist_set_error(EDIST_EINVAL, "runtime_send_name: no runtime");
    edi_rt *h = edi_rt_here(rt);
    return send_name_common(h ? h : rt, NULL, name, NULL, term, len, true);
}

/* ---- receiving ---------------------------------------------------------------------- */

static inline bool matches(const edist_pattern *pat, const edi_msg *m, edist_term_view *vars)
{
    if (m->notice)
        return false;
    return !pat || edist_match(pat, m->data, m->len, vars) == 1;
}

static void recv_timeout(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    edi_proc *p = arg;
    p->recv_timer = NULL;
    if (p->state != EDI_ST_WAITING)
        return;
    p->timed_out = 1;
    edi_sched_make_runnable(p->rt, p);
}

/* Block the running green process until a message matching its pattern
 * arrives (then 1) or timeout_ms passes (then 0). */
static int green_wait(edi_rt *rt, edi_proc *p, const edist_pattern *pat, edist_term_view *vars,
                      int64_t timeout_ms)
{
    edi_timer timer;
    p->recv_pattern = pat;
    p->recv_vars = vars;
    p->recv_match = NULL;
    p->timed_out = 0;
    p->recv_since_ms = edi_now_ms();
    if (timeout_ms > 0) {
        edi_timer_init(&timer);
        if (edi_loop_timer_start(rt->loop, &timer, (uint64_t)timeout_ms, 0, recv_timeout, p) ==
            0)
            p->recv_timer = &timer;
    }
    edi_sched_block(rt, p);
    if (p->recv_timer) {
        edi_loop_timer_cancel(rt->loop, p->recv_timer);
        p->recv_timer = NULL;
    }
    p->recv_pattern = NULL;
    p->recv_vars = NULL;
    return p->recv_match != NULL;
}

static int green_receive(edi_proc *p, const edist_pattern *pat, edist_term_view *vars,
                         int64_t timeout_ms, edist_term_view *out)
{
    edi_rt *rt = p->rt;
    if (p->current) {
        edi_msg_release(&rt->pool, p->current);
        p->current = NULL;
    }
    edi_msg *m;
    edi_msg **prev = &p->mbox.head;
    while ((m = *prev) != NULL) {
        if (matches(pat, m, vars))
            goto take;
        prev = &m->next;
    }
    if (timeout_ms == 0 || !green_wait(rt, p, pat, vars, timeout_ms))
        return EDIST_ETIMEDOUT;
    prev = p->recv_match_prev;
    p->recv_match = NULL;
take:
    m = edi_mbox_unlink(&p->mbox, prev);
    if (m->scarce)
        edi_msg_scarce_taken(&rt->pool, m);
    p->current = m;
    out->ptr = m->data;
    out->len = m->len;
    return 0;
}

/* A thread process: move what the shard pushed into the ordered list. */
static void thread_take(edi_thread_proc *t)
{
    edi_msg *m = edi_mpsc_take(&t->inbox);
    while (m) {
        edi_msg *n = m->next;
        edi_mbox_append(&t->box, m);
        m = n;
    }
}

/* Wait until something is pushed, or the deadline (mono ns) passes. */
static void thread_wait(edi_thread_proc *t, uint64_t deadline_ns)
{
    uint32_t seq0 = atomic_load(&t->seq);
    if (atomic_load_explicit(&t->inbox.top, memory_order_relaxed) || atomic_load(&t->dead))
        return;
    uint64_t now = edi_now_ns();
    uint64_t spin_end = now + (uint64_t)t->spin_us * 1000u;
    unsigned k = 0;
    while (now < spin_end && now < deadline_ns) {
        if (atomic_load_explicit(&t->seq, memory_order_relaxed) != seq0)
            return;
        edi_cpu_relax();
        if (++k % THREAD_SPIN_CHECK_EVERY == 0)
            now = edi_now_ns();
    }
    if (now >= deadline_ns)
        return;
    /* seq_cst: pairs with thread_notify (see there). */
    atomic_fetch_add(&t->sleepers, 1);
    seq0 = atomic_load(&t->seq);
    if (!atomic_load(&t->inbox.top) && !atomic_load(&t->dead))
        edi_futex_wait(&t->seq, seq0,
                       deadline_ns == UINT64_MAX ? UINT64_MAX : deadline_ns - now);
    atomic_fetch_sub(&t->sleepers, 1);
}

static int thread_receive(edi_proc *p, const edist_pattern *pat, edist_term_view *vars,
                          int64_t timeout_ms, edist_term_view *out)
{
    edi_thread_proc *t = p->thr;
    if (p->current) {
        edi_msg_free(NULL, p->current);
        p->current = NULL;
    }
    uint64_t deadline = UINT64_MAX;
    if (timeout_ms > 0)
        deadline = edi_now_ns() + (uint64_t)timeout_ms * 1000000u;
    edi_msg **prev = &t->box.head;
    for (;;) {
        if (atomic_load_explicit(&t->dead, memory_order_acquire))
            return edist_set_error(EDIST_ECLOSED, "receive: the process has ended");
        thread_take(t);
        edi_msg *m;
        while ((m = *prev) != NULL) {
            if (matches(pat, m, vars)) {
                m = edi_mbox_unlink(&t->box, prev);
                atomic_fetch_sub_explicit(&t->queued, 1, memory_order_relaxed);
                atomic_fetch_sub_explicit(&t->queued_bytes, m->len, memory_order_relaxed);
                p->current = m;
                out->ptr = m->data;
                out->len = m->len;
                return 0;
            }
            prev = &m->next;
        }
        if (timeout_ms == 0 || (timeout_ms > 0 && edi_now_ns() >= deadline))
            return EDIST_ETIMEDOUT;
        thread_wait(t, deadline);
    }
}

int edist_receive(const edist_pattern *pattern, edist_term_view *vars, int64_t timeout_ms,
                  edist_term_view *msg)
{
    NEED_SELF(self);
    if (!msg)
        return edist_set_error(EDIST_EINVAL, "receive: no message output");
    if (pattern == EDI_PATTERN_NEVER)
        return edist_set_error(EDIST_EINVAL, "receive: bad pattern");
    if (self->kind == EDI_PROC_GREEN)
        return green_receive(self, pattern, vars, timeout_ms, msg);
    return thread_receive(self, pattern, vars, timeout_ms, msg);
}

int edist_sleep_ms(int64_t ms)
{
    NEED_SELF(self);
    if (self->kind == EDI_PROC_THREAD) {
        if (ms < 0)
            return edist_set_error(EDIST_EINVAL, "sleep: a thread process cannot sleep forever");
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0) {
        }
        return 0;
    }
    if (ms == 0) {
        edi_sched_yield(self->rt, self);
        return 0;
    }
    green_wait(self->rt, self, EDI_PATTERN_NEVER, NULL, ms);
    return 0;
}

int edist_msg_keep(edist_message **out)
{
    NEED_SELF(self);
    edi_msg *m = self->current;
    if (!m)
        return edist_set_error(EDIST_ENOTFOUND, "msg_keep: no message was received");
    /* A kept message may live long: it must not hold a shared receive
     * buffer. */
    int u = edi_msg_unshare(&self->rt->pool, m);
    if (u < 0)
        return edist_set_error(u, "msg_keep: no memory");
    if (u == 1)
        EDI_COUNT_ADD(self->rt->copied_out, 1);
    if (m->alloc == EDI_MSG_POOL) {
        /* Kept messages may be freed anywhere: off the shard's pool. */
        edi_msg *h = malloc(sizeof *h);
        if (!h)
            return edist_set_error(EDIST_ENOMEM, "msg_keep: no memory");
        *h = *m;
        h->alloc = EDI_MSG_HEAP;
        if (!m->ext)
            h->data = h->u.inl;
        m->ext = 0;
        edi_msg_free(&self->rt->pool, m);
        m = h;
    }
    self->current = NULL;
    *out = (edist_message *)m;
    return 0;
}

edist_term_view edist_message_term(const edist_message *msg)
{
    const edi_msg *m = (const edi_msg *)msg;
    edist_term_view v = {m->data, m->len};
    return v;
}

void edist_message_free(edist_message *msg)
{
    if (msg)
        edi_msg_free(NULL, (edi_msg *)msg);
}

int64_t edist_mailbox_length(void)
{
    NEED_SELF(self);
    if (self->kind == EDI_PROC_GREEN)
        return self->mbox.count;
    thread_take(self->thr);
    return self->thr->box.count;
}
