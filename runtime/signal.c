/* SPDX-License-Identifier: Apache-2.0 */
/* Signals between processes: links, monitors, exit signals, the teardown
 * of an ended process, the entry points for signals from other nodes, and
 * spawning exported functions.
 *
 * Erlang's rules, as erts applies them (checked against OTP 25):
 * - exit/2 with `kill`: the target ends with `killed`, trapping or not.
 * - exit/2 with `normal`: ignored unless the target traps exits (then
 *   {'EXIT', From, normal}), or is the sender itself (then it ends).
 * - any other exit signal (exit/2, or a linked process ending): a trapping
 *   target gets {'EXIT', From, Reason}; otherwise a `normal` link exit is
 *   ignored and anything else ends the target with Reason. A link exit of
 *   `kill` is an ordinary reason (only exit/2's is untrappable); a process
 *   killed by `kill` propagates `killed`.
 * - link to a process that does not exist: an exit signal `noproc` if the
 *   caller traps exits, else the noproc error (EDIST_ENOTFOUND).
 * - monitor of a process or name that does not exist: DOWN with `noproc`.
 *
 * A local link is one record in both processes' lists and in rt->links
 * (keyed by the unordered pair); a monitor is one record in the watcher's
 * and the target's lists (when local) and in rt->monitors (by reference).
 * A process's teardown walks its lists: nothing is searched. */
#include <stdlib.h>
#include <string.h>

#include "base/grow.h"
#include "runtime/runtime_internal.h"

#define NEED_SELF(p)                                                                      \
    edi_proc *p = edi_current;                                                            \
    if (!p)                                                                               \
        return edist_set_error(EDIST_EINVAL, "%s: the caller is not a process", __func__)

/* ---- link records ------------------------------------------------------------------- */

static inline edi_link **lnext(edi_link *l, const edi_proc *p)
{
    return p == l->ap ? &l->a_next : &l->b_next;
}
static inline edi_link **lprev(edi_link *l, const edi_proc *p)
{
    return p == l->ap ? &l->a_prev : &l->b_prev;
}

static void link_list_insert(edi_proc *p, edi_link *l)
{
    *lnext(l, p) = p->links;
    *lprev(l, p) = NULL;
    if (p->links)
        *lprev(p->links, p) = l;
    p->links = l;
}

static void link_list_remove(edi_proc *p, edi_link *l)
{
    edi_link *prev = *lprev(l, p), *next = *lnext(l, p);
    if (prev)
        *lnext(prev, p) = next;
    else
        p->links = next;
    if (next)
        *lprev(next, p) = prev;
}

static uint64_t link_hash(edist_procid a, edist_procid b)
{
    edist_procid k[2];
    if (memcmp(&a, &b, sizeof a) <= 0) {
        k[0] = a;
        k[1] = b;
    } else {
        k[0] = b;
        k[1] = a;
    }
    return edi_hash_bytes(k, sizeof k, 0x11);
}

static edi_link *link_find(edi_rt *rt, edist_procid a, edist_procid b)
{
    uint64_t h = link_hash(a, b);
    for (edi_hnode *n = edi_htab_next_with(&rt->links, h, NULL); n;
         n = edi_htab_next_with(&rt->links, h, n)) {
        edi_link *l = (edi_link *)n;
        if ((edist_procid_equal(l->a, a) && edist_procid_equal(l->b, b)) ||
            (edist_procid_equal(l->a, b) && edist_procid_equal(l->b, a)))
            return l;
    }
    return NULL;
}

static void link_free(edi_rt *rt, edi_link *l)
{
    if (l->ap)
        link_list_remove(l->ap, l);
    if (l->bp)
        link_list_remove(l->bp, l);
    edi_htab_remove(&rt->links, &l->h);
    free(l);
}

int edi_link_add(edi_rt *rt, edi_proc *ap, edist_procid b, edi_proc *bp)
{
    edist_procid a = edi_proc_pid(ap);
    if (link_find(rt, a, b))
        return 0;
    edi_link *l = calloc(1, sizeof *l);
    if (!l)
        return edist_set_error(EDIST_ENOMEM, "link: no memory");
    l->a = a;
    l->b = b;
    l->ap = ap;
    l->bp = bp;
    if (edi_htab_insert(&rt->links, &l->h, link_hash(a, b)) != 0) {
        free(l);
        return edist_set_error(EDIST_ENOMEM, "link: no memory");
    }
    link_list_insert(ap, l);
    if (bp)
        link_list_insert(bp, l);
    return 0;
}

/* Frees l; was it active (not waiting for its unlink's ack)? An
 * inactive link counts as gone: no exit through it either way. */
static bool link_drop(edi_rt *rt, edi_link *l)
{
    bool active = !l->unlinking;
    link_free(rt, l);
    return active;
}

bool edi_link_remove(edi_rt *rt, edist_procid a, edist_procid b)
{
    edi_link *l = link_find(rt, a, b);
    if (!l)
        return false;
    link_free(rt, l);
    return true;
}

/* ---- monitor records ------------------------------------------------------------------ */

static void mon_list_insert(edi_mon **head, edi_mon *m, bool watcher_side)
{
    if (watcher_side) {
        m->w_next = *head;
        m->w_prev = NULL;
        if (*head)
            (*head)->w_prev = m;
    } else {
        m->t_next = *head;
        m->t_prev = NULL;
        if (*head)
            (*head)->t_prev = m;
    }
    *head = m;
}

int edi_mon_add(edi_rt *rt, const edi_refkey *ref, edist_procid watcher, edi_proc *wp,
                edist_procid target, edi_proc *tp, uint32_t name_node, const char *name,
                edi_mon **out)
{
    edi_mon *m = calloc(1, sizeof *m);
    if (!m)
        return edist_set_error(EDIST_ENOMEM, "monitor: no memory");
    if (name && !(m->name = strdup(name))) {
        free(m);
        return edist_set_error(EDIST_ENOMEM, "monitor: no memory");
    }
    m->ref = *ref;
    m->watcher = watcher;
    m->target = target;
    m->name_node = name_node;
    m->wp = wp;
    m->tp = tp;
    if (edi_htab_insert(&rt->monitors, &m->h, edi_refkey_hash(ref)) != 0) {
        free(m->name);
        free(m);
        return edist_set_error(EDIST_ENOMEM, "monitor: no memory");
    }
    if (wp)
        mon_list_insert(&wp->mons_out, m, true);
    if (tp)
        mon_list_insert(&tp->mons_in, m, false);
    if (out)
        *out = m;
    return 0;
}

edi_mon *edi_mon_find(edi_rt *rt, const edi_refkey *k)
{
    uint64_t h = edi_refkey_hash(k);
    for (edi_hnode *n = edi_htab_next_with(&rt->monitors, h, NULL); n;
         n = edi_htab_next_with(&rt->monitors, h, n)) {
        edi_mon *m = (edi_mon *)n;
        if (edi_refkey_equal(&m->ref, k))
            return m;
    }
    return NULL;
}

/* Out of the table and both lists, still allocated: a hook called with
 * it may take its node down (a peer that does not read), and that node
 * down must not find it (nor free it, nor send it a DOWN). */
static void mon_detach(edi_rt *rt, edi_mon *m)
{
    if (m->wp) {
        if (m->w_prev)
            m->w_prev->w_next = m->w_next;
        else
            m->wp->mons_out = m->w_next;
        if (m->w_next)
            m->w_next->w_prev = m->w_prev;
    }
    if (m->tp) {
        if (m->t_prev)
            m->t_prev->t_next = m->t_next;
        else
            m->tp->mons_in = m->t_next;
        if (m->t_next)
            m->t_next->t_prev = m->t_prev;
    }
    edi_htab_remove(&rt->monitors, &m->h);
}

static void mon_free(edi_mon *m)
{
    free(m->name);
    free(m);
}

void edi_mon_unlink(edi_rt *rt, edi_mon *m)
{
    mon_detach(rt, m);
    mon_free(m);
}

/* ---- messages the runtime makes ------------------------------------------------------------- */

typedef int (*enc_fn)(edist_buf *b, const void *ctx);

/* Encode with fn and deliver to p as a signal (never refused for a full
 * mailbox). Small messages are built on the stack. */
static int deliver_built(edi_rt *rt, edi_proc *p, enc_fn fn, const void *ctx)
{
    uint8_t stack[256];
    edist_buf b;
    edist_buf_init_fixed(&b, stack, sizeof stack);
    int rc = fn(&b, ctx);
    if (rc == EDIST_ENOSPC) {
        edist_buf_init(&b);
        rc = fn(&b, ctx);
    }
    if (rc) {
        if (!b.fixed)
            edist_buf_free(&b);
        return rc;
    }
    edi_msg *m = edi_msg_for(rt, p, b.data, b.len);
    if (!b.fixed)
        edist_buf_free(&b);
    if (!m)
        return edist_set_error(EDIST_ENOMEM, "signal: no memory");
    return edi_deliver(rt, p, m, EDI_LIMIT_NONE);
}

typedef struct exit_msg {
    edist_procid from;
    edist_term_view reason;
} exit_msg;

static int enc_exit(edist_buf *b, const void *ctx)
{
    const exit_msg *e = ctx;
    edist_enc_tuple(b, 3);
    edist_enc_atom(b, "EXIT", 4);
    edist_enc_procid(b, e->from);
    edist_enc_raw(b, e->reason.ptr, e->reason.len);
    return edist_buf_error(b);
}

int edi_deliver_exit_msg(edi_rt *rt, edi_proc *p, edist_procid from, edist_term_view reason)
{
    exit_msg e = {from, reason};
    return deliver_built(rt, p, enc_exit, &e);
}

typedef struct down_msg {
    const edi_refkey *ref;
    edist_procid target;
    const char *name;
    uint32_t name_node;
    edist_term_view reason;
} down_msg;

static int enc_down(edist_buf *b, const void *ctx)
{
    const down_msg *d = ctx;
    edist_ref r;
    edi_refkey_to_ref(d->ref, &r);
    edist_enc_tuple(b, 5);
    edist_enc_atom(b, "DOWN", 4);
    edist_enc_ref(b, &r);
    edist_enc_atom(b, "process", 7);
    if (d->name) {
        size_t nl;
        const char *node = edi_rt_node_name(d->name_node, &nl);
        edist_enc_tuple(b, 2);
        edist_enc_atom(b, d->name, strlen(d->name));
        edist_enc_atom(b, node, nl);
    } else {
        edist_enc_procid(b, d->target);
    }
    edist_enc_raw(b, d->reason.ptr, d->reason.len);
    return edist_buf_error(b);
}

static int deliver_down(edi_rt *rt, edi_proc *p, const edi_refkey *ref, edist_procid target,
                        const char *name, uint32_t name_node, edist_term_view reason)
{
    down_msg d = {ref, target, name, name_node, reason};
    return deliver_built(rt, p, enc_down, &d);
}

int edi_send_down(edi_rt *rt, edi_mon *m, edist_term_view reason)
{
    if (m->wp)
        return deliver_down(rt, m->wp, &m->ref, m->target, m->name, m->name_node, reason);
    edist_ref r;
    edi_refkey_to_ref(&m->ref, &r);
    return edi_out_monitor_exit(rt, m->target, m->watcher, m->name, &r, reason);
}

/* ---- exit signals ------------------------------------------------------------------------------- */

void edi_exit_signal(edi_rt *rt, edi_proc *p, edist_procid from, edist_term_view reason,
                     bool link)
{
    if (p->state >= EDI_ST_EXITING)
        return;
    if (!link && edi_term_is_atom(reason, "kill")) {
        edi_sched_kill(rt, p, EDIST_REASON_KILLED);
        return;
    }
    if (p->trap_exit) {
        edi_deliver_exit_msg(rt, p, from, reason);
        return;
    }
    if (edi_term_is_atom(reason, "normal")) {
        if (!link && edist_procid_equal(from, edi_proc_pid(p)))
            edi_sched_kill(rt, p, EDIST_REASON_NORMAL);
        return;
    }
    edi_sched_kill(rt, p, reason);
}

/* ---- teardown -------------------------------------------------------------------------------------- */

void edi_teardown(edi_rt *rt, edi_proc *p)
{
    edist_procid me = edi_proc_pid(p);
    edist_term_view reason = p->exit_reason;
    if (!reason.ptr)
        reason = EDIST_REASON_NORMAL;
    edi_proc_unlist(rt, p);
    edi_name_drop(rt, p);
    if (p->recv_timer) {
        edi_loop_timer_cancel(rt->loop, p->recv_timer);
        p->recv_timer = NULL;
    }
    edi_link *l;
    while ((l = p->links) != NULL) {
        edi_proc *op = l->ap == p ? l->bp : l->ap;
        edist_procid other = l->ap == p ? l->b : l->a;
        bool active = link_drop(rt, l);
        if (op)
            edi_exit_signal(rt, op, me, reason, true);
        else if (active)
            edi_out_exit(rt, me, other, reason, false);
    }
    /* Each monitor detached before the hook that tells its other end:
     * the hook may take that node down, which goes through the tables. */
    edi_mon *m;
    while ((m = p->mons_out) != NULL) {
        mon_detach(rt, m);
        if (!m->tp) { /* on another shard or node */
            edist_ref r;
            edi_refkey_to_ref(&m->ref, &r);
            edi_out_demonitor(rt, me, m->target, m->name_node, m->name, &r);
        }
        mon_free(m);
    }
    while ((m = p->mons_in) != NULL) {
        mon_detach(rt, m);
        edi_send_down(rt, m, reason);
        mon_free(m);
    }
    while (p->n_at_exit > 0) {
        p->n_at_exit--;
        p->at_exit[p->n_at_exit].fn(p->at_exit[p->n_at_exit].arg);
    }
    free(p->at_exit);
    p->at_exit = NULL;
    if (p->kind == EDI_PROC_GREEN) {
        edi_mbox_clear(&p->mbox, &rt->pool);
        if (p->current) {
            edi_msg_free(&rt->pool, p->current);
            p->current = NULL;
        }
    } else {
        edi_thread_proc *t = p->thr;
        t->reason = malloc(reason.len);
        if (t->reason) {
            memcpy(t->reason, reason.ptr, reason.len);
            t->reason_len = reason.len;
        }
        /* release: the thread reads the reason after seeing dead. */
        atomic_store_explicit(&t->dead, 1, memory_order_release);
        atomic_fetch_add(&t->seq, 1);
        edi_futex_wake(&t->seq);
    }
    if (p->reason_owned)
        free((void *)p->exit_reason.ptr);
    p->exit_reason.ptr = NULL;
    p->reason_owned = 0;
    p->state = EDI_ST_DEAD;
    EDI_COUNT_ADD(rt->exited, 1);
    edi_proc_release(rt, p);
}

/* After a signal the calling green process sent to itself: leave now if
 * it ended. */
static void exit_if_ended(edi_proc *self)
{
    if (self->kind == EDI_PROC_GREEN && self->state == EDI_ST_EXITING)
        edi_sched_exit_current(self->rt, self);
}

static inline bool thread_dead(edi_proc *p)
{
    return p->kind == EDI_PROC_THREAD &&
           atomic_load_explicit(&p->thr->dead, memory_order_acquire);
}

/* ---- exit/2 ------------------------------------------------------------------------------------------ */

typedef struct sig_ctx {
    edi_proc *self;
    edist_procid pid;
    edist_term_view reason;
    const char *name;
    uint32_t node;
    edi_refkey ref;
    unsigned flags;
} sig_ctx;

static int do_exit2(edi_rt *rt, void *arg)
{
    sig_ctx *c = arg;
    if (c->self->state >= EDI_ST_EXITING)
        return edist_set_error(EDIST_ECLOSED, "exit: the calling process has ended");
    edist_procid me = edi_proc_pid(c->self);
    if (edi_rt_owns(rt, c->pid)) {
        edi_proc *p = edi_proc_alive(rt, c->pid);
        if (p)
            edi_exit_signal(rt, p, me, c->reason, false);
        return 0;
    }
    edi_out_exit(rt, me, c->pid, c->reason, true);
    return 0;
}

int edist_exit_signal(edist_procid pid, const void *reason, size_t len)
{
    NEED_SELF(self);
    if (!reason || len == 0)
        return edist_set_error(EDIST_EINVAL, "exit: no reason");
    const uint8_t *r = reason;
    if (r[0] == EDIST_TAG_VERSION && len > 1) {
        r++;
        len--;
    }
    sig_ctx c = {.self = self, .pid = pid, .reason = {r, len}};
    int rc = edi_rt_run(self->rt, do_exit2, &c);
    exit_if_ended(self);
    return rc;
}

/* ---- links ------------------------------------------------------------------------------------------------ */

static int do_link(edi_rt *rt, void *arg)
{
    sig_ctx *c = arg;
    edi_proc *self = c->self;
    if (self->state >= EDI_ST_EXITING)
        return edist_set_error(EDIST_ECLOSED, "link: the calling process has ended");
    edist_procid me = edi_proc_pid(self);
    if (edist_procid_equal(me, c->pid))
        return 0;
    edi_proc *p = NULL;
    bool dead = false;
    if (edi_rt_owns(rt, c->pid)) {
        p = edi_proc_alive(rt, c->pid);
        dead = !p;
    } else if (edi_rt_is_local(rt, c->pid)) {
        /* Of another shard: a look at its table tells a dead pid now, as
         * on one shard (one that dies meanwhile answers noproc). */
        edi_rt *owner = edi_rt_owner(rt, c->pid);
        dead = !owner || !edi_proc_probe(owner, c->pid);
    }
    if (dead) {
        if (self->trap_exit)
            return edi_deliver_exit_msg(rt, self, c->pid, EDIST_REASON_NOPROC);
        return edist_set_error(EDIST_ENOTFOUND, "link: noproc");
    }
    if (p)
        return edi_link_add(rt, self, c->pid, p);
    edi_link *l = link_find(rt, me, c->pid);
    if (l && !l->unlinking)
        return 0;
    int rc = 0;
    if (l)
        l->unlinking = 0; /* linked again before the unlink's ack: active */
    else if ((rc = edi_link_add(rt, self, c->pid, NULL)) != 0)
        return rc;
    rc = edi_out_link(rt, me, c->pid);
    /* Unreachable node: the link breaks at once, as erts does (unless the
     * node went down inside the hook: that broke it already). */
    if (rc && edi_link_remove(rt, me, c->pid))
        edi_exit_signal(rt, self, c->pid, EDIST_REASON_NOCONNECTION, true);
    return 0;
}

int edist_link(edist_procid pid)
{
    NEED_SELF(self);
    if (edist_procid_is_null(pid))
        return edist_set_error(EDIST_EINVAL, "link: no pid");
    sig_ctx c = {.self = self, .pid = pid};
    int rc = edi_rt_run(self->rt, do_link, &c);
    exit_if_ended(self);
    return rc;
}

/* A link to a process of this shard goes at once (one record). Any other
 * waits, inactive, for the other end's acknowledgement of this unlink. */
static int do_unlink(edi_rt *rt, void *arg)
{
    sig_ctx *c = arg;
    edist_procid me = edi_proc_pid(c->self);
    edi_link *l = link_find(rt, me, c->pid);
    if (!l || l->unlinking)
        return 0;
    if (l->bp || edi_rt_owns(rt, c->pid)) {
        link_free(rt, l);
        return 0;
    }
    uint64_t id = ++rt->unlink_ids;
    l->unlinking = id;
    /* Not sent (no connection): nobody else will acknowledge it (the hook
     * may have done so, or taken the node down and the record with it). */
    if (edi_out_unlink(rt, me, c->pid, id) != 0)
        edi_rt_unlink_ack_in(rt, c->pid, me, id);
    return 0;
}

int edist_unlink(edist_procid pid)
{
    NEED_SELF(self);
    sig_ctx c = {.self = self, .pid = pid};
    return edi_rt_run(self->rt, do_unlink, &c);
}

/* ---- monitors ---------------------------------------------------------------------------------------------- */

static int do_monitor(edi_rt *rt, void *arg)
{
    sig_ctx *c = arg;
    edi_proc *self = c->self;
    if (self->state >= EDI_ST_EXITING)
        return edist_set_error(EDIST_ECLOSED, "monitor: the calling process has ended");
    edist_procid me = edi_proc_pid(self);
    edi_make_refkey(rt, &c->ref);
    const char *name = c->name;
    edist_procid target = c->pid;
    if (name ? c->node == rt->node_index : edi_rt_is_local(rt, c->pid)) {
        edi_proc *p = NULL;
        bool found = true;
        if (name)
            found = edi_name_lookup(rt, name, strlen(name), &target) == 0;
        if (found && edi_rt_owns(rt, target)) {
            p = edi_proc_alive(rt, target);
            found = p != NULL;
        } else if (found) {
            /* Of another shard: a dead one gets its DOWN now, as here. */
            edi_rt *owner = edi_rt_owner(rt, target);
            found = owner && edi_proc_probe(owner, target);
        }
        if (!found)
            return deliver_down(rt, self, &c->ref, c->pid, name, c->node, EDIST_REASON_NOPROC);
        if (p)
            return edi_mon_add(rt, &c->ref, me, self, target, p, c->node, name, NULL);
    }
    edi_mon *m;
    int rc = edi_mon_add(rt, &c->ref, me, self, target, NULL, c->node, name, &m);
    if (rc)
        return rc;
    edist_ref r;
    edi_refkey_to_ref(&c->ref, &r);
    rc = edi_out_monitor(rt, me, target, c->node, name, &r);
    /* Unreachable: DOWN noconnection now, unless the node went down
     * inside the hook, which fired the monitor already. */
    if (rc && (m = edi_mon_find(rt, &c->ref)) != NULL) {
        edi_mon_unlink(rt, m);
        return deliver_down(rt, self, &c->ref, c->pid, name, c->node,
                            EDIST_REASON_NOCONNECTION);
    }
    return 0;
}

int edist_monitor(edist_procid pid, edist_ref *ref)
{
    NEED_SELF(self);
    if (!ref || edist_procid_is_null(pid))
        return edist_set_error(EDIST_EINVAL, "monitor: no pid or ref output");
    sig_ctx c = {.self = self, .pid = pid, .node = pid.node};
    int rc = edi_rt_run(self->rt, do_monitor, &c);
    if (rc == 0)
        edi_refkey_to_ref(&c.ref, ref);
    return rc;
}

int edist_monitor_name(const char *name, const char *node, edist_ref *ref)
{
    NEED_SELF(self);
    if (!ref || !name || !edi_atom_text_ok(name, strlen(name)))
        return edist_set_error(EDIST_EINVAL, "monitor: bad name or no ref output");
    uint32_t n = self->rt->node_index;
    if (node) {
        int rc = edi_rt_node_intern(node, strlen(node), &n);
        if (rc)
            return rc;
    }
    sig_ctx c = {.self = self, .name = name, .node = n};
    int rc = edi_rt_run(self->rt, do_monitor, &c);
    if (rc == 0)
        edi_refkey_to_ref(&c.ref, ref);
    return rc;
}

/* Is m {'DOWN', Ref, _, _, _} for ref k? */
static bool is_down_for(const edi_msg *m, const edi_refkey *k)
{
    if (m->notice)
        return false;
    edist_cursor c;
    edist_cursor_init(&c, m->data, m->len);
    uint32_t arity;
    edist_atom a;
    edist_ref r;
    edi_refkey mk;
    if (edist_dec_tuple(&c, &arity) || arity != 5 || edist_dec_atom(&c, &a) || a.len != 4 ||
        memcmp(a.ptr, "DOWN", 4) != 0 || edist_dec_ref(&c, &r) || edi_refkey_from_ref(&r, &mk))
        return false;
    return edi_refkey_equal(&mk, k);
}

static void flush_down(edi_rt *rt, edi_mbox *box, const edi_refkey *k, bool thread)
{
    for (edi_msg **prev = &box->head; *prev; prev = &(*prev)->next) {
        if (is_down_for(*prev, k)) {
            edi_msg *m = edi_mbox_unlink(box, prev);
            edi_msg_free(thread ? NULL : &rt->pool, m);
            return;
        }
    }
}

static int do_demonitor(edi_rt *rt, void *arg)
{
    sig_ctx *c = arg;
    edi_mon *m = edi_mon_find(rt, &c->ref);
    int active = 0;
    if (m && m->wp == c->self) {
        mon_detach(rt, m); /* before the hook: see mon_detach */
        if (!m->tp) {
            edist_ref r;
            edi_refkey_to_ref(&m->ref, &r);
            edi_out_demonitor(rt, m->watcher, m->target, m->name_node, m->name, &r);
        }
        mon_free(m);
        active = 1;
    }
    if ((c->flags & EDIST_DEMONITOR_FLUSH) && c->self->kind == EDI_PROC_GREEN)
        flush_down(rt, &c->self->mbox, &c->ref, false);
    return active;
}

int edist_demonitor(const edist_ref *ref, unsigned flags)
{
    NEED_SELF(self);
    if (!ref)
        return edist_set_error(EDIST_EINVAL, "demonitor: no ref");
    sig_ctx c = {.self = self, .flags = flags};
    int rc = edi_refkey_from_ref(ref, &c.ref);
    if (rc)
        return rc;
    rc = edi_rt_run(self->rt, do_demonitor, &c);
    if (rc >= 0 && (flags & EDIST_DEMONITOR_FLUSH) && self->kind == EDI_PROC_THREAD) {
        /* The monitor is gone on the shard: any DOWN for it was pushed
         * before; take everything and drop it. */
        edi_thread_proc *t = self->thr;
        edi_msg *m = edi_mpsc_take(&t->inbox);
        while (m) {
            edi_msg *n = m->next;
            edi_mbox_append(&t->box, m);
            m = n;
        }
        uint32_t before = t->box.count;
        uint64_t before_bytes = t->box.bytes;
        flush_down(self->rt, &t->box, &c.ref, true);
        if (t->box.count < before) {
            atomic_fetch_sub_explicit(&t->queued, before - t->box.count, memory_order_relaxed);
            atomic_fetch_sub_explicit(&t->queued_bytes, before_bytes - t->box.bytes,
                                      memory_order_relaxed);
        }
    }
    return rc;
}

/* ---- signals from other nodes ---------------------------------------------------------------------------- */

/* A message from the network for a process of another shard: passed on
 * as a copy, or (a large one in a buffer nobody needs back at once) a
 * reference; it counts as taken. */
static int deliver_elsewhere(edi_rt *rt, edist_procid from, edist_procid to,
                             const edi_rt_incoming *msg)
{
    bool view = msg->len > EDI_MSG_INLINE_BYTES && msg->ref && !msg->scarce;
    edi_msg *m = view ? edi_msg_external(&rt->pool, msg->data, msg->len, msg->unref, msg->owner)
                      : edi_msg_copy(&rt->pool, msg->data, msg->len);
    if (!m) {
        edi_rt_log(rt, EDIST_LOG_ERROR, "no memory for a message of %zu bytes to <0.%u.%u>",
                   msg->len, to.id, to.serial);
        EDI_COUNT_ADD(rt->dropped, 1);
        return EDIST_ENOMEM;
    }
    if (view)
        msg->ref(msg->owner);
    if (edi_out_send_msg(rt, from, to, m, EDI_LIMIT_HARD, false) != 0) {
        EDI_COUNT_ADD(rt->dropped, 1);
        edi_msg_free(&rt->pool, m);
    }
    return 0;
}

int edi_rt_deliver(edi_rt *rt, edist_procid from, edist_procid to, const edi_rt_incoming *msg)
{
    if (edi_rt_elsewhere(rt, to))
        return deliver_elsewhere(rt, from, to, msg);
    edi_proc *p = edi_proc_alive(rt, to);
    if (!p) {
        EDI_COUNT_ADD(rt->dropped, 1);
        return EDIST_ENOTFOUND;
    }
    edi_msg *m;
    edi_msg_pool *pool = p->kind == EDI_PROC_GREEN ? &rt->pool : NULL;
    bool large = msg->len > EDI_MSG_INLINE_BYTES;
    /* A thread process takes its messages on its own time (its queue
     * cannot be copied out from here): it never gets a view of a shared
     * receive buffer. */
    bool view = large && msg->ref && !msg->copy_now &&
                !(msg->scarce && p->kind == EDI_PROC_THREAD);
    if (!view) {
        m = edi_msg_copy(pool, msg->data, msg->len);
        if (m && large && msg->scarce)
            EDI_COUNT_ADD(rt->copied_out, 1);
    } else {
        m = edi_msg_external(pool, msg->data, msg->len, msg->unref, msg->owner);
        if (m)
            msg->ref(msg->owner);
    }
    if (!m) {
        /* Nowhere to put it: the receiver exits rather than miss it. */
        edi_rt_log(rt, EDIST_LOG_ERROR, "no memory for a message of %zu bytes to <0.%u.%u>",
                   msg->len, to.id, to.serial);
        EDI_COUNT_ADD(rt->dropped, 1);
        edi_sched_kill(rt, p, EDIST_REASON_KILLED);
        return EDIST_ENOMEM;
    }
    int rc = edi_deliver(rt, p, m, EDI_LIMIT_HARD);
    /* A queued view is listed, so that it can be copied out when the
     * receive buffers run low (edi_rt_rx_pressure): a process that does
     * not receive never keeps the network from reading. (Only green
     * receivers get views; m is in their mailbox now.) */
    if (rc == 0 && view && msg->scarce)
        edi_msg_scarce_queued(&rt->pool, m);
    return rc;
}

void edi_rt_rx_pressure(edi_rt *rt)
{
    EDI_COUNT_ADD(rt->copied_out, edi_msg_unshare_queued(&rt->pool));
}

int edi_rt_deliver_name(edi_rt *rt, edist_procid from, const char *name, size_t name_len,
                        const edi_rt_incoming *msg)
{
    edist_procid pid;
    if (edi_name_lookup(rt, name, name_len, &pid) != 0) {
        EDI_COUNT_ADD(rt->dropped, 1);
        return EDIST_ENOTFOUND;
    }
    return edi_rt_deliver(rt, from, pid, msg);
}

int edi_rt_link_in(edi_rt *rt, edist_procid from, edist_procid to)
{
    if (edi_rt_elsewhere(rt, to) && edi_out_link(rt, from, to) != EDIST_ENOTFOUND)
        return 0;
    edi_proc *p = edi_proc_alive(rt, to);
    if (!p) {
        edi_out_exit(rt, to, from, EDIST_REASON_NOPROC, false);
        return EDIST_ENOTFOUND;
    }
    return edi_link_add(rt, p, from, NULL);
}

int edi_rt_unlink_in(edi_rt *rt, edist_procid from, edist_procid to, uint64_t id)
{
    if (edi_rt_elsewhere(rt, to))
        return edi_out_unlink(rt, from, to, id);
    edi_link *l = link_find(rt, to, from);
    bool removed = l && (!l->unlinking || id == 0);
    if (removed)
        link_free(rt, l);
    /* Answered from here, the owner's shard: in order with what `to` sent
     * `from` before (a LINK of a re-link must not follow the ack). */
    if (id)
        edi_out_unlink_ack(rt, to, from, id);
    return removed ? 0 : EDIST_ENOTFOUND;
}

int edi_rt_unlink_ack_in(edi_rt *rt, edist_procid from, edist_procid to, uint64_t id)
{
    if (edi_rt_elsewhere(rt, to))
        return edi_out_unlink_ack(rt, from, to, id);
    edi_link *l = link_find(rt, to, from);
    if (!l || l->unlinking != id)
        return EDIST_ENOTFOUND; /* linked again since, or gone */
    link_free(rt, l);
    return 0;
}

int edi_rt_exit_in(edi_rt *rt, edist_procid from, edist_procid to, edist_term_view reason,
                   bool exit2)
{
    if (edi_rt_elsewhere(rt, to))
        return edi_out_exit(rt, from, to, reason, exit2);
    edi_proc *p = edi_proc_alive(rt, to);
    if (!p)
        return EDIST_ENOTFOUND;
    if (!exit2) {
        edi_link *l = link_find(rt, to, from);
        if (!l || !link_drop(rt, l))
            return 0; /* no link (any more, or being unlinked): nothing to break */
    }
    edi_exit_signal(rt, p, from, reason, !exit2);
    return 0;
}

int edi_rt_monitor_in(edi_rt *rt, edist_procid watcher, edist_procid target, const char *name,
                      const edist_ref *ref)
{
    edi_refkey k;
    int rc = edi_refkey_from_ref(ref, &k);
    if (rc)
        return rc;
    /* By name: the name says which process (and so which shard). */
    edist_procid pid = target;
    if (name && edist_procid_is_null(pid) && edi_name_lookup(rt, name, strlen(name), &pid) != 0)
        pid = EDIST_PROCID_NULL;
    if (!edist_procid_is_null(pid) && edi_rt_elsewhere(rt, pid) &&
        edi_out_monitor(rt, watcher, pid, rt->node_index, name, ref) != EDIST_ENOTFOUND)
        return 0;
    edi_proc *p = edist_procid_is_null(pid) ? NULL : edi_proc_alive(rt, pid);
    if (!p || p->state >= EDI_ST_EXITING) {
        edi_out_monitor_exit(rt, target, watcher, name, ref, EDIST_REASON_NOPROC);
        return EDIST_ENOTFOUND;
    }
    return edi_mon_add(rt, &k, watcher, NULL, edi_proc_pid(p), p, rt->node_index, name, NULL);
}

int edi_rt_demonitor_in(edi_rt *rt, edist_procid watcher, edist_procid target,
                        const edist_ref *ref)
{
    if (!edist_procid_is_null(target) && edi_rt_elsewhere(rt, target))
        return edi_out_demonitor(rt, watcher, target, rt->node_index, NULL, ref);
    /* By name (no target): the monitor is where the name was then. */
    if (edist_procid_is_null(target))
        edi_out_demonitor_all(rt, watcher, ref);
    return edi_rt_demonitor_here(rt, watcher, ref);
}

int edi_rt_demonitor_here(edi_rt *rt, edist_procid watcher, const edist_ref *ref)
{
    edi_refkey k;
    int rc = edi_refkey_from_ref(ref, &k);
    if (rc)
        return rc;
    edi_mon *m = edi_mon_find(rt, &k);
    if (!m || m->wp || !edist_procid_equal(m->watcher, watcher))
        return EDIST_ENOTFOUND;
    edi_mon_unlink(rt, m);
    return 0;
}

int edi_rt_monitor_exit_in(edi_rt *rt, edist_procid target, edist_procid watcher,
                           const edist_ref *ref, edist_term_view reason)
{
    if (edi_rt_elsewhere(rt, watcher))
        return edi_out_monitor_exit(rt, target, watcher, NULL, ref, reason);
    edi_refkey k;
    int rc = edi_refkey_from_ref(ref, &k);
    if (rc)
        return rc;
    edi_mon *m = edi_mon_find(rt, &k);
    if (!m || !m->wp || !edist_procid_equal(m->watcher, watcher))
        return EDIST_ENOTFOUND;
    edi_send_down(rt, m, reason);
    edi_mon_unlink(rt, m);
    return 0;
}

typedef struct spawn_reply_msg {
    const edist_ref *req;
    bool ok;
    edist_procid pid;
    edist_term_view error;
} spawn_reply_msg;

static int enc_spawn_reply(edist_buf *b, const void *ctx)
{
    const spawn_reply_msg *s = ctx;
    edist_enc_tuple(b, 4);
    edist_enc_atom(b, "spawn_reply", 11);
    edist_enc_ref(b, s->req);
    if (s->ok) {
        edist_enc_atom(b, "ok", 2);
        edist_enc_procid(b, s->pid);
    } else {
        edist_enc_atom(b, "error", 5);
        edist_enc_raw(b, s->error.ptr, s->error.len);
    }
    return edist_buf_error(b);
}

/* ---- pending spawn_requests -------------------------------------------------------------------- */

/* A spawn_request sent to another node, until its SPAWN_REPLY arrives or
 * that node goes down (then the requester gets noconnection at once, as
 * erts answers: never a wait for the caller's own timeout). */
typedef struct spawn_pending {
    edi_hnode h;
    edi_refkey req;
    edist_procid from;
    uint32_t node;
    uint8_t reply;  /* edist_spawn_reply */
    bool abandoned; /* the late reply is undone, not delivered */
} spawn_pending;

static bool reply_wanted(unsigned reply, bool ok)
{
    switch (reply) {
    case EDIST_SPAWN_REPLY_NO:
        return false;
    case EDIST_SPAWN_REPLY_ERROR_ONLY:
        return !ok;
    case EDIST_SPAWN_REPLY_SUCCESS_ONLY:
        return ok;
    default:
        return true;
    }
}

static spawn_pending *spawn_pending_find(edi_rt *rt, const edi_refkey *k, edist_procid from)
{
    uint64_t hash = edi_refkey_hash(k);
    for (edi_hnode *x = edi_htab_next_with(&rt->spawn_reqs, hash, NULL); x;
         x = edi_htab_next_with(&rt->spawn_reqs, hash, x)) {
        spawn_pending *sp = (spawn_pending *)x;
        if (edi_refkey_equal(&sp->req, k) && edist_procid_equal(sp->from, from))
            return sp;
    }
    return NULL;
}

static int spawn_pending_add(edi_rt *rt, const edi_refkey *k, edist_procid from, uint32_t node,
                             unsigned reply)
{
    spawn_pending *sp = malloc(sizeof *sp);
    if (!sp)
        return edist_set_error(EDIST_ENOMEM, "spawn_request: out of memory");
    sp->req = *k;
    sp->from = from;
    sp->node = node;
    sp->reply = (uint8_t)reply;
    sp->abandoned = false;
    int rc = edi_htab_insert(&rt->spawn_reqs, &sp->h, edi_refkey_hash(k));
    if (rc)
        free(sp);
    return rc;
}

void edi_spawn_reqs_clear(edi_rt *rt)
{
    for (size_t b = 0; rt->spawn_reqs.buckets && b <= rt->spawn_reqs.mask; b++) {
        edi_hnode *x = rt->spawn_reqs.buckets[b];
        rt->spawn_reqs.buckets[b] = NULL;
        while (x) {
            edi_hnode *next = x->next;
            free(x);
            x = next;
        }
    }
    rt->spawn_reqs.count = 0;
}

/* Every spawn_request to node that is still unanswered fails with
 * noconnection. */
static void spawn_reqs_node_down(edi_rt *rt, uint32_t node)
{
    if (rt->spawn_reqs.count == 0)
        return;
    /* Take them out of the table first (chained through h.next, no
     * allocation), then answer each. */
    edi_hnode *down = NULL;
    for (size_t b = 0; rt->spawn_reqs.buckets && b <= rt->spawn_reqs.mask; b++) {
        edi_hnode *x = rt->spawn_reqs.buckets[b];
        while (x) {
            edi_hnode *next = x->next;
            if (((spawn_pending *)x)->node == node) {
                edi_htab_remove(&rt->spawn_reqs, x);
                x->next = down;
                down = x;
            }
            x = next;
        }
    }
    while (down) {
        spawn_pending *sp = (spawn_pending *)down;
        down = down->next;
        edist_ref r;
        edi_refkey_to_ref(&sp->req, &r);
        edi_proc *p = sp->abandoned ? NULL : edi_proc_alive(rt, sp->from);
        if (p && reply_wanted(sp->reply, false)) {
            spawn_reply_msg m = {&r, false, EDIST_PROCID_NULL, EDIST_REASON_NOCONNECTION};
            deliver_built(rt, p, enc_spawn_reply, &m);
        }
        free(sp);
    }
}

/* Entries of a table that a node going down affects are gathered before
 * any is acted on, because acting (ending processes) changes the table.
 * The first NODE_DOWN_BATCH go on the caller's stack, so the walk always
 * makes progress; beyond that the array grows on the heap. If memory runs
 * out, *more is set: the caller acts on what was gathered (which takes those
 * entries out of the table) and gathers again, so nothing is skipped. */
enum { NODE_DOWN_BATCH = 32 };

typedef bool (*node_down_match)(edi_hnode *x, uint32_t node);

static size_t gather(edi_htab *t, node_down_match match, uint32_t node,
                     edi_hnode **batch, edi_hnode ***out, bool *more)
{
    edi_hnode **all = batch;
    size_t n = 0, cap = NODE_DOWN_BATCH;
    *more = false;
    for (size_t b = 0; t->buckets && b <= t->mask; b++) {
        for (edi_hnode *x = t->buckets[b]; x; x = x->next) {
            if (!match(x, node))
                continue;
            if (n == cap) {
                edi_hnode **g = all == batch ? malloc(2 * cap * sizeof *g)
                                             : realloc(all, 2 * cap * sizeof *g);
                if (!g) {
                    *more = true;
                    *out = all;
                    return n;
                }
                if (all == batch)
                    memcpy(g, batch, n * sizeof *g);
                all = g;
                cap *= 2;
            }
            all[n++] = x;
        }
    }
    *out = all;
    return n;
}

static bool link_to_node(edi_hnode *x, uint32_t node)
{
    const edi_link *l = (const edi_link *)x;
    return !l->bp && l->b.node == node;
}

/* Ours of theirs fire; theirs of ours are dropped. */
static bool monitor_on_node(edi_hnode *x, uint32_t node)
{
    const edi_mon *m = (const edi_mon *)x;
    bool theirs = !m->wp && m->watcher.node == node;
    bool ours = m->wp && !m->tp &&
                (m->name ? m->name_node == node : m->target.node == node);
    return theirs || ours;
}

void edi_rt_node_down(edi_rt *rt, uint32_t node)
{
    /* Every shard: each after what this one passed it before. */
    edi_out_node_down(rt, node);
    edi_rt_node_down_here(rt, node);
}

uint32_t edi_rt_node_downs(const edi_rt *rt, uint32_t node)
{
    return node < rt->node_downs_cap ? rt->node_downs[node] : 0;
}

static void node_downs_count(edi_rt *rt, uint32_t node)
{
    uint32_t had = rt->node_downs_cap;
    if (edi_grow32((void **)&rt->node_downs, &rt->node_downs_cap, node,
                   sizeof *rt->node_downs) != 0)
        return; /* uncounted: such links go on as before the count */
    memset(rt->node_downs + had, 0, (rt->node_downs_cap - had) * sizeof *rt->node_downs);
    rt->node_downs[node]++;
}

void edi_rt_node_down_here(edi_rt *rt, uint32_t node)
{
    node_downs_count(rt, node);
    spawn_reqs_node_down(rt, node);

    edi_hnode *batch[NODE_DOWN_BATCH], **xs;
    bool more;
    do {
        size_t n = gather(&rt->links, link_to_node, node, batch, &xs, &more);
        for (size_t i = 0; i < n; i++) {
            edi_link *l = (edi_link *)xs[i];
            edi_proc *p = l->ap;
            edist_procid from = l->b;
            if (link_drop(rt, l))
                edi_exit_signal(rt, p, from, EDIST_REASON_NOCONNECTION, true);
        }
        if (xs != batch)
            free(xs);
    } while (more);
    do {
        size_t n = gather(&rt->monitors, monitor_on_node, node, batch, &xs, &more);
        for (size_t i = 0; i < n; i++) {
            edi_mon *m = (edi_mon *)xs[i];
            if (m->wp)
                edi_send_down(rt, m, EDIST_REASON_NOCONNECTION);
            edi_mon_unlink(rt, m);
        }
        if (xs != batch)
            free(xs);
    } while (more);
}

int edi_rt_spawn_reply_in(edi_rt *rt, edist_procid to, const edist_ref *req_id, bool ok,
                          edist_procid pid, edist_term_view error, unsigned flags)
{
    if (edi_rt_elsewhere(rt, to))
        return edi_out_spawn_reply(rt, to, req_id, ok, pid, error, flags);
    /* A reply to a request not pending (already answered noconnection
     * when its node went down) is stale: undone as for a requester that
     * is gone, and so is the reply to an abandoned request. */
    edi_refkey rk;
    spawn_pending *sp = edi_refkey_from_ref(req_id, &rk) == 0 ? spawn_pending_find(rt, &rk, to)
                                                                : NULL;
    unsigned reply = EDIST_SPAWN_REPLY_YES;
    bool abandoned = false;
    if (sp) {
        reply = sp->reply;
        abandoned = sp->abandoned;
        edi_htab_remove(&rt->spawn_reqs, &sp->h);
        free(sp);
    }
    edi_proc *p = sp && !abandoned ? edi_proc_alive(rt, to) : NULL;
    if (!p) {
        /* Nobody waits for it: undo what the other side set up. */
        if (ok && (flags & EDI_SPAWN_LINK))
            edi_out_exit(rt, to, pid, abandoned ? EDI_REASON_ABANDONED : EDIST_REASON_NOPROC,
                         false);
        if (ok && (flags & EDI_SPAWN_MONITOR))
            edi_out_demonitor(rt, to, pid, pid.node, NULL, req_id);
        return EDIST_ENOTFOUND;
    }
    if (ok) {
        if (flags & EDI_SPAWN_LINK) {
            int rc = edi_link_add(rt, p, pid, NULL);
            if (rc)
                return rc;
        }
        if (flags & EDI_SPAWN_MONITOR) {
            edi_refkey k;
            int rc = edi_refkey_from_ref(req_id, &k);
            if (rc == 0)
                rc = edi_mon_add(rt, &k, to, p, pid, NULL, pid.node, NULL, NULL);
            if (rc)
                return rc;
        }
    }
    if (!reply_wanted(reply, ok))
        return 0;
    spawn_reply_msg s = {req_id, ok, pid, error};
    return deliver_built(rt, p, enc_spawn_reply, &s);
}

typedef struct abandon_ctx {
    edi_proc *self;
    edi_refkey req;
} abandon_ctx;

static int do_spawn_request_abandon(edi_rt *rt, void *arg)
{
    abandon_ctx *c = arg;
    spawn_pending *sp = spawn_pending_find(rt, &c->req, edi_proc_pid(c->self));
    if (!sp || sp->abandoned)
        return 0;
    /* Kept until the reply or the node's going down, so that the reply
     * is recognised and undone. */
    sp->abandoned = true;
    return 1;
}

int edist_spawn_request_abandon(const edist_ref *req)
{
    NEED_SELF(self);
    abandon_ctx c = {self, {0}};
    if (!req || edi_refkey_from_ref(req, &c.req) != 0)
        return edist_set_error(EDIST_EINVAL, "spawn_request_abandon: bad reference");
    return edi_rt_run(self->rt, do_spawn_request_abandon, &c);
}

/* ---- spawning exported functions -------------------------------------------------------------------- */

typedef struct export_start {
    edist_exported_fn fn; /* NULL: undefined, exit with reason */
    void *user;
    const char *module, *function; /* copies, in this block */
    uint32_t arity;
    edist_term_view *args;
    edist_term_view reason;
    edist_buf result;
} export_start;

static void export_start_free(void *arg)
{
    export_start *s = arg;
    edist_buf_free(&s->result);
    free(s);
}

int edi_enc_export_error(edist_buf *b, int code)
{
    edist_enc_tuple(b, 2);
    edist_enc_atom(b, "edist_error", 11);
    edist_enc_atomz(b, edist_error_name(code));
    return edist_buf_error(b);
}

static void export_main(void *arg)
{
    export_start *s = arg;
    if (!s->fn)
        edist_exit(s->reason.ptr, s->reason.len);
    int rc = edi_export_call(s->fn, s->user, s->module, s->function, s->args, s->arity,
                             &s->result);
    if (rc < 0) {
        uint8_t tmp[64];
        edist_buf b;
        edist_buf_init_fixed(&b, tmp, sizeof tmp);
        if (edi_enc_export_error(&b, rc) == 0)
            edist_exit(b.data, b.len);
        edist_exit(EDIST_REASON_KILLED.ptr, EDIST_REASON_KILLED.len);
    }
}

/* Count the elements of a proper list; ETYPE otherwise. */
static int args_arity(edist_term_view args, uint32_t *arity)
{
    edist_cursor c;
    edist_cursor_init(&c, args.ptr, args.len);
    edist_term_info info;
    int rc = edist_peek(&c, &info);
    if (rc)
        return rc;
    if (info.type == EDIST_TYPE_NIL) {
        *arity = 0;
        return edist_skip(&c) == 0 && c.pos == args.len ? 0 : EDIST_EBADTERM;
    }
    if (info.type != EDIST_TYPE_LIST)
        return edist_set_error(EDIST_ETYPE, "spawn: the arguments are not a list");
    if (info.count > 255)
        return edist_set_error(EDIST_EINVAL, "spawn: more than 255 arguments");
    if (info.tag == EDIST_TAG_STRING) {
        *arity = (uint32_t)info.count;
        return edist_skip(&c) == 0 && c.pos == args.len ? 0 : EDIST_EBADTERM;
    }
    uint32_t n;
    rc = edist_dec_list(&c, &n);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < n; i++)
        if ((rc = edist_skip(&c)) != 0)
            return rc;
    if (edist_dec_nil(&c) != 0 || c.pos != args.len)
        return edist_set_error(EDIST_ETYPE, "spawn: the arguments are not a proper list");
    *arity = n;
    return 0;
}

static int enc_undef(edist_buf *b, const char *m, const char *f, edist_term_view args)
{
    edist_enc_tuple(b, 2);
    edist_enc_atom(b, "undef", 5);
    edist_enc_list(b, 1);
    edist_enc_tuple(b, 4);
    edist_enc_atom(b, m, strlen(m));
    edist_enc_atom(b, f, strlen(f));
    edist_enc_raw(b, args.ptr, args.len);
    edist_enc_nil(b);
    edist_enc_nil(b);
    return edist_buf_error(b);
}

/* Spawn module:function(args...) on the shard. */
static int spawn_export_on(edi_rt *rt, const char *module, const char *function,
                           edist_term_view args, size_t stack_bytes, edi_proc **child)
{
    uint32_t arity = 0;
    int rc = args_arity(args, &arity);
    if (rc)
        return rc;
    edist_exported_fn fn = NULL;
    void *user = NULL;
    bool known = edist_export_lookup(rt, module, function, arity, &fn, &user) == 0;
    /* One block: the struct, the views, 2 bytes per byte-list element,
     * a copy of the arguments (and the undef reason), the names. */
    edist_buf reason;
    edist_buf_init(&reason);
    if (!known && (rc = enc_undef(&reason, module, function, args)) != 0) {
        edist_buf_free(&reason);
        return rc;
    }
    size_t module_len = strlen(module), function_len = strlen(function);
    size_t bytes = sizeof(export_start) + arity * sizeof(edist_term_view) + 2u * arity +
                   args.len + reason.len + module_len + 1 + function_len + 1;
    export_start *s = calloc(1, bytes);
    if (!s) {
        edist_buf_free(&reason);
        return edist_set_error(EDIST_ENOMEM, "spawn: no memory");
    }
    s->fn = known ? fn : NULL;
    s->user = user;
    s->arity = arity;
    s->args = (edist_term_view *)(s + 1);
    uint8_t *ints = (uint8_t *)(s->args + arity);
    uint8_t *copy = ints + 2u * arity;
    memcpy(copy, args.ptr, args.len);
    if (!known) {
        memcpy(copy + args.len, reason.data, reason.len);
        s->reason.ptr = copy + args.len;
        s->reason.len = reason.len;
    }
    char *names = (char *)copy + args.len + reason.len;
    memcpy(names, module, module_len + 1);
    memcpy(names + module_len + 1, function, function_len + 1);
    s->module = names;
    s->function = names + module_len + 1;
    edist_buf_free(&reason);
    edist_buf_init(&s->result);
    edist_cursor c;
    edist_cursor_init(&c, copy, args.len);
    edist_term_info info;
    edist_peek(&c, &info);
    if (info.type == EDIST_TYPE_LIST && info.tag == EDIST_TAG_STRING) {
        const uint8_t *bytes_in;
        size_t n;
        edist_dec_string(&c, &bytes_in, &n);
        for (uint32_t i = 0; i < arity; i++) {
            ints[2 * i] = EDIST_TAG_SMALL_INTEGER;
            ints[2 * i + 1] = bytes_in[i];
            s->args[i].ptr = ints + 2 * i;
            s->args[i].len = 2;
        }
    } else if (arity > 0) {
        uint32_t n;
        edist_dec_list(&c, &n);
        for (uint32_t i = 0; i < arity; i++)
            edist_dec_term(&c, &s->args[i]);
    }
    edi_proc *p;
    rc = edi_proc_spawn(rt, export_main, s, stack_bytes, &p);
    if (rc) {
        export_start_free(s);
        return rc;
    }
    /* Freed however the process ends, even before it ran. */
    p->at_exit = malloc(EDI_AT_EXIT_MAX * sizeof *p->at_exit);
    if (!p->at_exit) {
        edi_sched_kill(rt, p, EDIST_REASON_KILLED);
        export_start_free(s);
        return edist_set_error(EDIST_ENOMEM, "spawn: no memory");
    }
    p->at_exit[0].fn = export_start_free;
    p->at_exit[0].arg = s;
    p->n_at_exit = 1;
    *child = p;
    return 0;
}

typedef struct export_ctx {
    edi_proc *parent;
    edist_procid remote_parent;
    const char *module, *function;
    edist_term_view args;
    edist_spawn_opts opts;
    unsigned flags;
    const edist_ref *monitor_ref_in;
    edist_procid pid;
    edi_refkey ref;
} export_ctx;

static int do_spawn_export(edi_rt *rt, void *arg)
{
    export_ctx *c = arg;
    if (c->parent->state >= EDI_ST_EXITING)
        return edist_set_error(EDIST_ECLOSED, "spawn: the calling process has ended");
    edi_proc *child;
    int rc = spawn_export_on(rt, c->module, c->function, c->args, c->opts.stack_bytes, &child);
    if (rc)
        return rc;
    c->pid = edi_proc_pid(child);
    if (c->opts.link && (rc = edi_link_add(rt, c->parent, c->pid, child)) != 0)
        goto undo;
    if (c->opts.monitor) {
        edi_make_refkey(rt, &c->ref);
        rc = edi_mon_add(rt, &c->ref, edi_proc_pid(c->parent), c->parent, c->pid, child, 0,
                         NULL, NULL);
        if (rc)
            goto undo;
    }
    return 0;
undo:
    edi_link_remove(rt, edi_proc_pid(c->parent), c->pid);
    edi_sched_kill(rt, child, EDIST_REASON_KILLED);
    return rc;
}

int edist_spawn_export(const char *module, const char *function, const void *args,
                       size_t args_len, const edist_spawn_opts *opts, edist_procid *pid,
                       edist_ref *monitor_ref)
{
    NEED_SELF(self);
    if (!module || !function || !args || args_len == 0)
        return edist_set_error(EDIST_EINVAL, "spawn_export: missing argument");
    if (thread_dead(self))
        return edist_set_error(EDIST_ECLOSED, "spawn: the calling process has ended");
    const uint8_t *a = args;
    if (a[0] == EDIST_TAG_VERSION && args_len > 1) {
        a++;
        args_len--;
    }
    export_ctx c;
    memset(&c, 0, sizeof c);
    c.parent = self;
    c.module = module;
    c.function = function;
    c.args.ptr = a;
    c.args.len = args_len;
    if (opts)
        c.opts = *opts;
    if (c.opts.monitor && !monitor_ref)
        return edist_set_error(EDIST_EINVAL, "spawn_export: monitor without a ref output");
    int rc = edi_rt_run(self->rt, do_spawn_export, &c);
    if (rc)
        return rc;
    if (pid)
        *pid = c.pid;
    if (c.opts.monitor)
        edi_refkey_to_ref(&c.ref, monitor_ref);
    return 0;
}

int edi_rt_spawn_export_for(edi_rt *rt, edist_procid parent, const char *module,
                            const char *function, edist_term_view args, unsigned flags,
                            const edist_ref *monitor_ref, edist_procid *pid)
{
    edi_proc *child;
    int rc = spawn_export_on(rt, module, function, args, 0, &child);
    if (rc)
        return rc;
    edist_procid cp = edi_proc_pid(child);
    if (flags & EDI_SPAWN_LINK) {
        rc = edi_link_add(rt, child, parent, NULL);
        if (rc)
            goto undo;
    }
    if ((flags & EDI_SPAWN_MONITOR) && monitor_ref) {
        edi_refkey k;
        rc = edi_refkey_from_ref(monitor_ref, &k);
        if (rc == 0)
            rc = edi_mon_add(rt, &k, parent, NULL, cp, child, rt->node_index, NULL, NULL);
        if (rc)
            goto undo;
    }
    *pid = cp;
    return 0;
undo:
    /* Quietly: the parent never heard of it. */
    edi_link_remove(rt, cp, parent);
    edi_sched_kill(rt, child, EDIST_REASON_KILLED);
    return rc;
}

/* ---- spawn_request ---------------------------------------------------------------------------------- */

typedef struct request_ctx {
    edi_proc *self;
    uint32_t node;
    const char *module, *function;
    edist_term_view args;
    unsigned flags;
    unsigned reply; /* edist_spawn_reply */
    edi_refkey req;
} request_ctx;

static int do_spawn_request(edi_rt *rt, void *arg)
{
    request_ctx *c = arg;
    edi_proc *self = c->self;
    if (self->state >= EDI_ST_EXITING)
        return edist_set_error(EDIST_ECLOSED, "spawn_request: the calling process has ended");
    edist_procid me = edi_proc_pid(self);
    edi_make_refkey(rt, &c->req);
    edist_ref r;
    edi_refkey_to_ref(&c->req, &r);
    if (c->node == rt->node_index) {
        edi_proc *child;
        int rc = spawn_export_on(rt, c->module, c->function, c->args, 0, &child);
        if (rc) {
            static const uint8_t limit[] = {EDIST_TAG_SMALL_ATOM_UTF8, 12, 's', 'y', 's', 't',
                                            'e', 'm', '_', 'l', 'i', 'm', 'i', 't'};
            static const uint8_t badarg[] = {EDIST_TAG_SMALL_ATOM_UTF8, 6, 'b', 'a',
                                             'd', 'a', 'r', 'g'};
            edist_term_view why = rc == EDIST_ENOMEM ? (edist_term_view){limit, sizeof limit}
                                                     : (edist_term_view){badarg, sizeof badarg};
            if (!reply_wanted(c->reply, false))
                return 0;
            spawn_reply_msg m = {&r, false, EDIST_PROCID_NULL, why};
            return deliver_built(rt, self, enc_spawn_reply, &m);
        }
        edist_procid cp = edi_proc_pid(child);
        if ((c->flags & EDI_SPAWN_LINK) && (rc = edi_link_add(rt, self, cp, child)) != 0)
            return rc;
        if ((c->flags & EDI_SPAWN_MONITOR) &&
            (rc = edi_mon_add(rt, &c->req, me, self, cp, child, rt->node_index, NULL, NULL)) != 0)
            return rc;
        if (!reply_wanted(c->reply, true))
            return 0;
        spawn_reply_msg m = {&r, true, cp, {NULL, 0}};
        return deliver_built(rt, self, enc_spawn_reply, &m);
    }
    int rc = spawn_pending_add(rt, &c->req, me, c->node, c->reply);
    if (rc)
        return rc;
    rc = edi_out_spawn_request(rt, me, c->node, &r, c->module, c->function, c->args,
                               c->flags);
    /* As erts answers for a node it cannot reach (unless the node went
     * down inside the hook, which answered it already). */
    if (rc && spawn_pending_find(rt, &c->req, me))
        return edi_rt_spawn_reply_in(rt, me, &r, false, EDIST_PROCID_NULL,
                                     EDIST_REASON_NOCONNECTION, 0);
    return 0;
}

int edist_spawn_request(const char *node, const char *module, const char *function,
                        const void *args, size_t args_len, const edist_spawn_opts *opts,
                        edist_ref *req)
{
    NEED_SELF(self);
    if (!module || !function || !args || args_len == 0 || !req ||
        !edi_atom_text_ok(module, strlen(module)) || !edi_atom_text_ok(function, strlen(function)))
        return edist_set_error(EDIST_EINVAL, "spawn_request: missing or bad argument");
    if (thread_dead(self))
        return edist_set_error(EDIST_ECLOSED, "spawn_request: the calling process has ended");
    request_ctx c;
    memset(&c, 0, sizeof c);
    c.self = self;
    c.node = self->rt->node_index;
    if (node) {
        int rc = edi_rt_node_intern(node, strlen(node), &c.node);
        if (rc)
            return rc;
    }
    const uint8_t *a = args;
    if (a[0] == EDIST_TAG_VERSION && args_len > 1) {
        a++;
        args_len--;
    }
    uint32_t arity;
    c.args.ptr = a;
    c.args.len = args_len;
    int rc = args_arity(c.args, &arity);
    if (rc)
        return rc;
    c.module = module;
    c.function = function;
    if (opts && opts->link)
        c.flags |= EDI_SPAWN_LINK;
    if (opts && opts->monitor)
        c.flags |= EDI_SPAWN_MONITOR;
    if (opts) {
        if ((unsigned)opts->reply > EDIST_SPAWN_REPLY_SUCCESS_ONLY)
            return edist_set_error(EDIST_EINVAL, "spawn_request: bad reply option");
        c.reply = opts->reply;
    }
    rc = edi_rt_run(self->rt, do_spawn_request, &c);
    if (rc)
        return rc;
    edi_refkey_to_ref(&c.req, req);
    return 0;
}

/* erts_internal:crasher: what a spawn to a node that cannot be reached
 * returns, so that the caller's link or monitor reports the reason. */
static void crasher_main(void *arg)
{
    const edist_term_view *reason = arg;
    edist_exit(reason->ptr, reason->len);
}

int edist_spawn_remote(const char *node, const char *module, const char *function,
                       const void *args, size_t args_len, const edist_spawn_opts *opts,
                       int64_t timeout_ms, edist_procid *pid, edist_ref *req)
{
    edist_spawn_opts o = {0};
    if (opts)
        o = *opts;
    o.reply = EDIST_SPAWN_REPLY_YES;
    edist_ref r;
    int rc = edist_spawn_request(node, module, function, args, args_len, &o, &r);
    if (rc)
        return rc;
    /* {spawn_reply, Req, Status, Result} with Req bound. */
    static const char text[] = "{spawn_reply, Req, Status, Result}";
    edist_pattern *p;
    edist_parse_error pe;
    rc = edist_pattern_compile(text, sizeof text - 1, &p, &pe);
    if (rc)
        return rc;
    uint8_t refbuf[64];
    edist_buf b;
    edist_buf_init_fixed(&b, refbuf, sizeof refbuf);
    edist_enc_ref(&b, &r);
    edist_term_view vars[3];
    memset(vars, 0, sizeof vars);
    int ri = edist_pattern_var_index(p, "Req"), si = edist_pattern_var_index(p, "Status"),
        xi = edist_pattern_var_index(p, "Result");
    vars[ri].ptr = b.data;
    vars[ri].len = b.len;
    edist_term_view m;
    rc = edist_receive(p, vars, timeout_ms, &m);
    /* Abandoned, the request leaves nothing behind; if it was answered in
     * the meantime, its reply is queued and taken now. */
    if (rc == EDIST_ETIMEDOUT && edist_spawn_request_abandon(&r) == 0)
        rc = edist_receive(p, vars, 0, &m);
    edist_term_view status = vars[si], result = vars[xi];
    edist_pattern_free(p);
    if (rc)
        return rc == EDIST_ETIMEDOUT
                   ? edist_set_error(rc, "spawn on %s: no reply", node ? node : "this node")
                   : rc;
    if (edi_term_is_atom(status, "ok")) {
        edist_cursor c;
        edist_cursor_init(&c, result.ptr, result.len);
        rc = edist_dec_procid(&c, pid);
        if (rc == 0 && req)
            *req = r;
        return rc;
    }
    static const uint8_t notsup[] = {EDIST_TAG_SMALL_ATOM_UTF8, 6, 'n', 'o', 't', 's', 'u', 'p'};
    static const edist_term_view notsup_reason = {notsup, sizeof notsup};
    const edist_term_view *crash = NULL;
    if (edi_term_is_atom(result, "noconnection"))
        crash = &EDIST_REASON_NOCONNECTION;
    else if (edi_term_is_atom(result, "notsup"))
        crash = &notsup_reason;
    if (crash) {
        o.stack_bytes = 0;
        return edist_spawn_opt(crasher_main, (void *)crash, &o, pid, req);
    }
    edist_buf why;
    edist_buf_init(&why);
    edist_term_print(result.ptr, result.len, &why, NULL);
    rc = edist_set_error(EDIST_EPROTO, "spawn on %s failed: %s", node ? node : "this node",
                         edist_buf_cstr(&why) ? edist_buf_cstr(&why) : "?");
    edist_buf_free(&why);
    return rc;
}
