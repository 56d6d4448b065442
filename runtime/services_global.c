/* SPDX-License-Identifier: Apache-2.0 */
/* OTP 25's `global` (kernel global.erl, protocol version 8): the name
 * server, its locker and its registrar, and the calls of
 * include/edist/global.h. docs/DESIGN.md ("global") has the protocol.
 *
 * Three processes on shard 0 share one state (they run one at a time on
 * the shard's thread, and only the server changes the tables):
 *   global_name_server  (registered) every message from other nodes, the
 *                       node events, the tables of names and locks. It
 *                       never waits.
 *   the locker          locks the two partitions when a connection is
 *                       synced (one multi_call per step), and passes the
 *                       new nodes on to the nodes we knew before.
 *   the registrar       runs register and unregister under the lock
 *                       {global, Registrar} on every known node.
 * The locker and the registrar wait for answers from other nodes; the
 * server answers them meanwhile, so a node can lock itself. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/grow.h"
#include "base/rand.h"
#include "edist/global.h"
#include "edist/node.h" /* EDIST_NODE_GLOBAL_CALL_TIMEOUT_MS_DEFAULT */
#include "edist/rpc.h"
#include "runtime/runtime_internal.h"
#include "runtime/services_internal.h"

#define GL_VSN 8
#define GL_NODE_MAX 256
/* Client calls wait as global.erl's (infinity): the server is monitored,
 * so one that ends answers the call; a timeout would tell a caller "no"
 * while the server, behind a long-held lock, still registers the name. */
#define GL_CLIENT_TIMEOUT_MS (-1)
#define GL_POP_VSN 7 /* lost_connection and remove_connection from this one */

/* ---- state ------------------------------------------------------------------- */

typedef struct gl_name {
    edi_hnode by_name, by_pid;
    struct gl_name *prev, *next;
    edist_procid pid;
    edist_ref mref;
    uint8_t *method; /* encoded, passed on as it came */
    size_t method_len;
    size_t len;
    uint8_t term[]; /* the name, encoded */
} gl_name;

typedef struct gl_holder {
    edist_procid pid;
    edist_ref mref;
} gl_holder;

/* A lock: {ResourceId, LockRequesterId} and its holders. Few at a time
 * (one per transaction in flight), so kept in a list. */
typedef struct gl_lock {
    struct gl_lock *next;
    edist_buf rid, req;
    gl_holder *holders;
    uint32_t n, cap;
} gl_lock;

typedef struct gl_known {
    char node[GL_NODE_MAX];
    int vsn;
    /* monitor of {global_name_server, Node} (global's sync_other): its
     * DOWN noconnection before the node was ever up since it became
     * known is global's extra nodedown (we could not reach it) */
    edist_ref mref;
    bool mon;
    bool up_seen; /* connected since it became known */
} gl_known;

/* A sync under way with one peer (global.erl's per-node dictionary). */
typedef struct gl_session {
    char node[GL_NODE_MAX];
    int64_t my_tag;
    edist_buf his_tag; /* encoded */
    bool pending;      /* his init_connect came */
    int his_vsn;
    edist_procid his_locker;
    bool lock_set;
    edist_buf lock_id;
    bool have_exchange; /* his names came before our lock was set */
    edist_buf exchange;
    bool have_ops; /* we resolved his names */
    edist_buf ops; /* elements of a list */
    uint32_t ops_n;
    bool have_resolved; /* his resolved came before our ops */
    edist_buf resolved, his_known;
    /* Clashes whose method is a fun of the user's, resolved as global's
     * resolver does, by global:resolve_it on the node of our pid, in a
     * process of their own (resolver_main): {Name, HisPid, HisMethod,
     * OurPid, OurMethod} elements. Our resolved message, its elements in
     * res_out so far, waits for them. */
    edist_buf pend;
    uint32_t pend_n;
    edist_buf res_out;
    uint32_t res_n;
    uint64_t resolve_token; /* nonzero: that resolver's answer is awaited */
    edist_procid resolver;  /* it, monitored: its end without an answer */
    edist_ref resolver_mref; /* leaves the clashes to the default */
} gl_session;

typedef struct gl_waiter {
    edist_procid from;
    edist_buf tag;
} gl_waiter;

/* A lost_connection handled: NodeA lost NodeB, as of XCreation and
 * OpId; kept an hour as global keeps it (repeats of it are dropped). */
typedef struct gl_pop_seen {
    char a[GL_NODE_MAX], b[GL_NODE_MAX];
    int64_t xcre, op;
    uint64_t saved_ms;
} gl_pop_seen;
#define GL_POP_SEEN_KEEP_MS (60 * 60 * 1000)
/* Pairs remembered at most: every pair of a 64-node cluster fits, and a
 * peer naming ever new pairs cannot grow it (or the scan) without end. */
#define GL_POP_SEEN_MAX 4096

typedef struct gl_state {
    edi_services *s;
    char me[GL_NODE_MAX];
    edist_procid server, locker, registrar;
    uint64_t seed, rng;
    edi_htab names, pids;
    gl_name *first, *last;
    size_t name_count;
    gl_lock *locks;
    /* the `global` lock went with its holder (DOWN, node down), not by
     * del_lock: ops that come under no lock are then stale (global's
     * global_lock_down) */
    bool global_lock_down;
    gl_known *known;
    size_t known_n, known_cap;
    uint64_t known_epoch; /* changes with Known: the registrar retries */
    gl_session *sess;
    size_t sess_n, sess_cap;
    int64_t last_tag;
    gl_waiter *sync_waiters;
    size_t sync_n, sync_cap;
    /* prevent_overlapping_partitions */
    int64_t pop_creation, pop_op;
    gl_pop_seen *pop_seen; /* lost_connection messages handled */
    size_t pop_seen_n, pop_seen_cap;
    char (*removing)[GL_NODE_MAX];
    size_t removing_n, removing_cap;
    edist_pattern *const *pat; /* server_patterns */
    edist_buf out, tmp, tmp2;
} gl_state;


/* ---- small helpers ---------------------------------------------------------------- */

static void gcount(_Atomic uint64_t *c, int64_t d)
{
    atomic_fetch_add_explicit(c, (uint64_t)d, memory_order_relaxed);
}

static int64_t call_timeout_ms(const edi_services *s)
{
    return s->cfg.global_call_timeout_ms ? s->cfg.global_call_timeout_ms
                                         : EDIST_NODE_GLOBAL_CALL_TIMEOUT_MS_DEFAULT;
}

static bool view_eq(edist_term_view a, const void *b, size_t blen)
{
    return a.ptr && edist_term_equal(a.ptr, a.len, b, blen) == 1;
}

static int view_atom(edist_term_view v, char *out, size_t cap)
{
    edist_cursor c;
    edist_cursor_init(&c, v.ptr, v.len);
    return v.ptr ? edist_dec_atom_copy(&c, out, cap) : EDIST_EINVAL;
}

static int view_int(edist_term_view v, int64_t *out)
{
    edist_cursor c;
    edist_cursor_init(&c, v.ptr, v.len);
    return v.ptr ? edist_dec_int64(&c, out) : EDIST_EINVAL;
}

static int node_cmp(const char *a, const char *b)
{
    return strcmp(a, b); /* atom order of plain node names */
}

/* The send of a cast or reply: never dropped; to a node not connected a
 * cast connects (gen_server:cast does). */
static void send_pid(gl_state *st, edist_procid to, const edist_buf *b)
{
    if (edist_buf_error(b) == 0)
        edi_svc_send(st->s, to, b->data, b->len, EDI_SVC_FORCE);
}

static void send_server(gl_state *st, const char *node, const edist_buf *b, bool noconnect)
{
    if (edist_buf_error(b) != 0)
        return;
    if (strcmp(node, st->me) == 0) {
        edist_send(st->server, b->data, b->len);
        return;
    }
    edi_svc_send_name(st->s, "global_name_server", node, b->data, b->len,
                      noconnect ? EDI_SVC_WAIT_NOCONNECT : EDI_SVC_WAIT);
}

/* A list's head: nothing for an empty one (its nil follows the elements). */
static void enc_list_head(edist_buf *b, size_t n)
{
    if (n)
        edist_enc_list(b, (uint32_t)n);
}


/* ---- the tables --------------------------------------------------------------------- */

static gl_name *name_find(gl_state *st, const void *term, size_t len)
{
    uint64_t h;
    if (edist_term_hash(term, len, st->seed, &h) != 0)
        return NULL;
    for (edi_hnode *n = edi_htab_next_with(&st->names, h, NULL); n;
         n = edi_htab_next_with(&st->names, h, n)) {
        gl_name *e = (gl_name *)((char *)n - offsetof(gl_name, by_name));
        if (edist_term_equal(e->term, e->len, term, len) == 1)
            return e;
    }
    return NULL;
}

static void name_remove(gl_state *st, gl_name *e)
{
    edi_htab_remove(&st->names, &e->by_name);
    edi_htab_remove(&st->pids, &e->by_pid);
    if (e->prev)
        e->prev->next = e->next;
    else
        st->first = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        st->last = e->prev;
    edist_demonitor(&e->mref, EDIST_DEMONITOR_FLUSH);
    st->name_count--;
    gcount(&st->s->global_stats.names, -1);
    free(e->method);
    free(e);
}

/* Name -> Pid, replacing what was there; the pid is monitored. */
static int name_insert(gl_state *st, edist_term_view name, edist_procid pid,
                       edist_term_view method)
{
    gl_name *old = name_find(st, name.ptr, name.len);
    if (old)
        name_remove(st, old);
    uint64_t h;
    if (edist_term_hash(name.ptr, name.len, st->seed, &h) != 0)
        return EDIST_EINVAL;
    gl_name *e = calloc(1, sizeof *e + name.len);
    if (!e)
        return EDIST_ENOMEM;
    if (method.len) {
        e->method = malloc(method.len);
        if (!e->method) {
            free(e);
            return EDIST_ENOMEM;
        }
        memcpy(e->method, method.ptr, method.len);
        e->method_len = method.len;
    }
    memcpy(e->term, name.ptr, name.len);
    e->len = name.len;
    e->pid = pid;
    if (edist_monitor(pid, &e->mref) != 0)
        memset(&e->mref, 0, sizeof e->mref);
    edi_htab_insert(&st->names, &e->by_name, h);
    edi_htab_insert(&st->pids, &e->by_pid, edi_svc_pid_hash(pid, st->seed));
    e->prev = st->last;
    if (st->last)
        st->last->next = e;
    else
        st->first = e;
    st->last = e;
    st->name_count++;
    gcount(&st->s->global_stats.names, 1);
    return 0;
}

/* The name goes, if it is there. */
static void name_delete(gl_state *st, edist_term_view name)
{
    gl_name *e = name_find(st, name.ptr, name.len);
    if (e)
        name_remove(st, e);
}

/* An insert under a `global` lock: kept if that lock is still set
 * (global's lock_still_set); else what it would have replaced goes too,
 * as global's insert-then-delete leaves it, and it is counted. */
static void name_insert_under(gl_state *st, bool still_set, edist_term_view name,
                              edist_procid pid, edist_term_view method)
{
    if (still_set) {
        name_insert(st, name, pid, method);
        return;
    }
    name_delete(st, name);
    gcount(&st->s->global_stats.stale_ops, 1);
}

/* Every name of pid goes (it ended). */
static void names_of_pid_remove(gl_state *st, edist_procid pid)
{
    uint64_t h = edi_svc_pid_hash(pid, st->seed);
    edi_hnode *n = edi_htab_next_with(&st->pids, h, NULL);
    while (n) {
        edi_hnode *next = edi_htab_next_with(&st->pids, h, n);
        gl_name *e = (gl_name *)((char *)n - offsetof(gl_name, by_pid));
        if (edist_procid_equal(e->pid, pid))
            name_remove(st, e);
        n = next;
    }
}

static gl_lock *lock_find(gl_state *st, edist_term_view rid)
{
    for (gl_lock *l = st->locks; l; l = l->next)
        if (view_eq(rid, l->rid.data, l->rid.len))
            return l;
    return NULL;
}

static gl_lock *global_lock(gl_state *st)
{
    uint8_t mem[16];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    edist_enc_atom(&b, "global", 6);
    return lock_find(st, (edist_term_view){b.data, b.len});
}

static bool lock_held_by(const gl_lock *l, edist_procid pid)
{
    for (uint32_t i = 0; i < l->n; i++)
        if (edist_procid_equal(l->holders[i].pid, pid))
            return true;
    return false;
}

static void lock_free(gl_state *st, gl_lock *l)
{
    for (gl_lock **p = &st->locks; *p; p = &(*p)->next)
        if (*p == l) {
            *p = l->next;
            break;
        }
    edist_buf_free(&l->rid);
    edist_buf_free(&l->req);
    free(l->holders);
    free(l);
}

static bool is_global_rid(const gl_lock *l)
{
    return edi_term_is_atom((edist_term_view){l->rid.data, l->rid.len}, "global");
}

/* down: the holder ended (or its node went), not del_lock. */
static void holder_drop(gl_state *st, gl_lock *l, uint32_t i, bool down)
{
    edist_demonitor(&l->holders[i].mref, EDIST_DEMONITOR_FLUSH);
    l->holders[i] = l->holders[--l->n];
    if (l->n == 0) {
        if (is_global_rid(l))
            st->global_lock_down = down;
        lock_free(st, l);
    }
}

/* set_lock {RId, ReqId} for pid: true when free, or held with the same
 * ReqId (pid joins the holders). */
static bool lock_set(gl_state *st, edist_term_view rid, edist_term_view req, edist_procid pid)
{
    gl_lock *l = lock_find(st, rid);
    if (l) {
        if (!view_eq(req, l->req.data, l->req.len))
            return false;
        if (lock_held_by(l, pid))
            return true;
    } else {
        l = calloc(1, sizeof *l);
        if (!l)
            return false;
        edist_buf_init(&l->rid);
        edist_buf_init(&l->req);
        edist_buf_append(&l->rid, rid.ptr, rid.len);
        edist_buf_append(&l->req, req.ptr, req.len);
        l->next = st->locks;
        st->locks = l;
    }
    if (edi_grow32((void **)&l->holders, &l->cap, l->n, sizeof *l->holders)) {
        if (l->n == 0)
            lock_free(st, l);
        return false;
    }
    gl_holder *h = &l->holders[l->n++];
    h->pid = pid;
    if (edist_monitor(pid, &h->mref) != 0)
        memset(&h->mref, 0, sizeof h->mref);
    return true;
}

static void lock_del(gl_state *st, edist_term_view rid, edist_term_view req, edist_procid pid)
{
    gl_lock *l = lock_find(st, rid);
    if (!l || !view_eq(req, l->req.data, l->req.len))
        return;
    for (uint32_t i = 0; i < l->n; i++)
        if (edist_procid_equal(l->holders[i].pid, pid)) {
            holder_drop(st, l, i, false);
            return;
        }
}

static void holders_of_pid_drop(gl_state *st, edist_procid pid)
{
    gl_lock *l = st->locks;
    while (l) {
        gl_lock *next = l->next;
        for (uint32_t i = 0; i < l->n; i++)
            if (edist_procid_equal(l->holders[i].pid, pid)) {
                holder_drop(st, l, i, true); /* may free l */
                break;
            }
        l = next;
    }
}

/* ---- Known and the sessions -------------------------------------------------------- */

static gl_known *known_find(gl_state *st, const char *node)
{
    for (size_t i = 0; i < st->known_n; i++)
        if (strcmp(st->known[i].node, node) == 0)
            return &st->known[i];
    return NULL;
}

static bool known_add(gl_state *st, const char *node, int vsn)
{
    if (strcmp(node, st->me) == 0 || known_find(st, node))
        return false;
    if (edi_grow((void **)&st->known, &st->known_cap, st->known_n, sizeof *st->known))
        return false;
    gl_known *k = &st->known[st->known_n++];
    snprintf(k->node, sizeof k->node, "%s", node);
    k->vsn = vsn;
    k->up_seen = st->s->cfg.connected && st->s->cfg.connected(st->s->cfg.user, node);
    /* connects if need be (after the in_sync sent before it) */
    k->mon = edist_monitor_name("global_name_server", node, &k->mref) == 0;
    st->known_epoch++;
    gcount(&st->s->global_stats.known, 1);
    return true;
}

static void known_remove(gl_state *st, const char *node)
{
    gl_known *k = known_find(st, node);
    if (!k)
        return;
    if (k->mon)
        edist_demonitor(&k->mref, EDIST_DEMONITOR_FLUSH);
    *k = st->known[--st->known_n];
    st->known_epoch++;
    gcount(&st->s->global_stats.known, -1);
}

static gl_session *sess_find(gl_state *st, const char *node)
{
    for (size_t i = 0; i < st->sess_n; i++)
        if (strcmp(st->sess[i].node, node) == 0)
            return &st->sess[i];
    return NULL;
}

static void sess_bufs(gl_session *x, void (*fn)(edist_buf *))
{
    fn(&x->his_tag);
    fn(&x->lock_id);
    fn(&x->exchange);
    fn(&x->ops);
    fn(&x->resolved);
    fn(&x->his_known);
    fn(&x->pend);
    fn(&x->res_out);
}

/* {Kind, Node, {Tag, Arg}} to the locker: Tag is the session's, so that
 * the locker never takes what concerns an ended session for a later one
 * with the same node. */
static void tell_locker(gl_state *st, const char *kind, const char *node, int64_t tag,
                        const edist_buf *arg)
{
    edist_buf b;
    edist_buf_init(&b);
    edist_enc_tuple(&b, 3);
    edist_enc_atomz(&b, kind);
    edist_enc_atomz(&b, node);
    edist_enc_tuple(&b, 2);
    edist_enc_int(&b, tag);
    if (arg)
        edist_enc_raw(&b, arg->data, arg->len);
    else
        edist_enc_nil(&b);
    if (edist_buf_error(&b) == 0)
        edist_send(st->locker, b.data, b.len);
    edist_buf_free(&b);
}

static void sync_waiters_check(gl_state *st);

/* A resolver still running for x: stopped (as global's cancel_locker
 * kills its resolver), its answer and end no longer awaited. */
static void resolver_stop(gl_session *x)
{
    if (!x->resolve_token)
        return;
    x->resolve_token = 0;
    edist_demonitor(&x->resolver_mref, EDIST_DEMONITOR_FLUSH);
    edist_exit_signal(x->resolver, EDIST_REASON_KILL.ptr, EDIST_REASON_KILL.len);
}

static void sess_end(gl_state *st, gl_session *x, bool cancel_locker)
{
    resolver_stop(x);
    /* the locker may be locking for it (initiating), or holding */
    if (cancel_locker)
        gcount(&st->s->global_stats.syncs_ended, 1);
    if (cancel_locker)
        tell_locker(st, "cancel", x->node, x->my_tag, NULL);
    sess_bufs(x, edist_buf_free);
    size_t i = (size_t)(x - st->sess);
    st->sess[i] = st->sess[--st->sess_n];
    sync_waiters_check(st);
}

/* {init_connect, {8, MyTag}, Me, {locker, no_longer_a_pid, #{}, Locker}} */
static void send_init_connect(gl_state *st, gl_session *x)
{
    edist_buf *b = &st->out;
    edist_buf_reset(b);
    edi_svc_enc_cast(b);
    edist_enc_tuple(b, 4);
    edist_enc_atom(b, "init_connect", 12);
    edist_enc_tuple(b, 2);
    edist_enc_int(b, GL_VSN);
    edist_enc_int(b, x->my_tag);
    edist_enc_atomz(b, st->me);
    edist_enc_tuple(b, 4);
    edist_enc_atom(b, "locker", 6);
    edist_enc_atom(b, "no_longer_a_pid", 15);
    edist_enc_map(b, 0);
    edist_enc_procid(b, st->locker);
    send_server(st, x->node, b, false);
}

static gl_session *sess_start(gl_state *st, const char *node)
{
    if (edi_grow((void **)&st->sess, &st->sess_cap, st->sess_n, sizeof *st->sess))
        return NULL;
    gl_session *x = &st->sess[st->sess_n++];
    memset(x, 0, sizeof *x);
    snprintf(x->node, sizeof x->node, "%s", node);
    sess_bufs(x, edist_buf_init);
    x->my_tag = ++st->last_tag;
    send_init_connect(st, x);
    return x;
}

/* A new tag and a new init_connect (global's restart_connect). */
static void sess_restart(gl_state *st, gl_session *x)
{
    char node[GL_NODE_MAX];
    snprintf(node, sizeof node, "%s", x->node);
    sess_end(st, x, true);
    sess_start(st, node);
}

/* ---- sync waiters ------------------------------------------------------------------ */

static void reply(gl_state *st, edist_procid from, edist_term_view tag, const edist_buf *value)
{
    if (edist_buf_error(value) == 0)
        edi_svc_reply(st->s, from, tag, value->data, value->len, EDI_SVC_FORCE);
}

static void reply_atom(gl_state *st, edist_procid from, edist_term_view tag, const char *atom)
{
    uint8_t mem[64];
    edist_buf v;
    edist_buf_init_fixed(&v, mem, sizeof mem);
    edist_enc_atomz(&v, atom);
    reply(st, from, tag, &v);
}

static void sync_waiters_check(gl_state *st)
{
    if (st->sess_n != 0 || st->sync_n == 0)
        return;
    for (size_t i = 0; i < st->sync_n; i++) {
        gl_waiter *w = &st->sync_waiters[i];
        reply_atom(st, w->from, (edist_term_view){w->tag.data, w->tag.len}, "ok");
        edist_buf_free(&w->tag);
    }
    st->sync_n = 0;
}

/* ---- names between nodes ------------------------------------------------------------ */

/* Every name as {Name, Pid, Method}, a list appended to b. */
static void enc_all_names(gl_state *st, edist_buf *b)
{
    enc_list_head(b, st->name_count);
    for (gl_name *e = st->first; e; e = e->next) {
        edist_enc_tuple(b, 3);
        edist_enc_raw(b, e->term, e->len);
        edist_enc_procid(b, e->pid);
        if (e->method_len)
            edist_enc_raw(b, e->method, e->method_len);
        else
            edist_enc_export(b, "global", 6, "random_exit_name", 16, 3);
    }
    edist_enc_nil(b);
}

/* Known as [{Node, Vsn}], the peer left out. */
static void enc_known_pairs(gl_state *st, edist_buf *b, const char *except)
{
    uint32_t n = 0;
    for (size_t i = 0; i < st->known_n; i++)
        n += !except || strcmp(st->known[i].node, except) != 0;
    if (n) {
        edist_enc_list(b, n);
        for (size_t i = 0; i < st->known_n; i++) {
            if (except && strcmp(st->known[i].node, except) == 0)
                continue;
            edist_enc_tuple(b, 2);
            edist_enc_atomz(b, st->known[i].node);
            edist_enc_int(b, st->known[i].vsn);
        }
    }
    edist_enc_nil(b);
}

/* One element of a nodes list ({Node, Vsn} or Node): its name. */
static int node_of_elem(edist_term_view v, char *node, size_t cap, int *vsn)
{
    edist_cursor c;
    edist_cursor_init(&c, v.ptr, v.len);
    uint32_t arity;
    *vsn = 0;
    if (edist_dec_tuple(&c, &arity) == 0) {
        if (arity != 2 || edist_dec_atom_copy(&c, node, cap) != 0)
            return EDIST_EINVAL;
        int64_t x;
        if (edist_dec_int64(&c, &x) == 0)
            *vsn = (int)x;
        return 0;
    }
    edist_cursor_init(&c, v.ptr, v.len);
    return edist_dec_atom_copy(&c, node, cap);
}

/* The elements of a list term: *n and a cursor on the first. */
static int list_open(edist_term_view v, edist_cursor *c, uint32_t *n)
{
    if (!v.ptr)
        return EDIST_EINVAL;
    edist_cursor_init(c, v.ptr, v.len);
    if (edist_dec_nil(c) == 0) {
        *n = 0;
        return 0;
    }
    edist_cursor_init(c, v.ptr, v.len);
    if (edist_dec_string(c, &(const uint8_t *){0}, &(size_t){0}) == 0)
        return EDIST_EINVAL; /* a string is never a list of terms here */
    edist_cursor_init(c, v.ptr, v.len);
    return edist_dec_list(c, n);
}

/* {Name, Pid, Method} */
static int dec_name_triple(edist_term_view t, edist_term_view *name, edist_procid *pid,
                           edist_term_view *method)
{
    edist_cursor c;
    uint32_t arity;
    edist_cursor_init(&c, t.ptr, t.len);
    if (edist_dec_tuple(&c, &arity) != 0 || arity < 2)
        return EDIST_EINVAL;
    edist_term_view pv;
    if (edist_dec_term(&c, name) != 0 || edist_dec_term(&c, &pv) != 0 || edi_svc_pid(pv, pid) != 0)
        return EDIST_EINVAL;
    method->ptr = NULL;
    method->len = 0;
    if (arity >= 3 && edist_dec_term(&c, method) != 0)
        return EDIST_EINVAL;
    return 0;
}

static int dec_lock_id(edist_term_view id, edist_term_view *rid, edist_term_view *req);

/* global's lock_still_set for ops that came under the `global` lock
 * lock_id ({global, LockRequesterId}, from a sync or a peer's new_nodes):
 * that lock is still set, or none is and the last did not go with its
 * holder. Otherwise the ops are stale: a node that took the lock went
 * down and came back, and its delayed new_nodes would install names no
 * lock protects. */
static bool lock_still_set_for(gl_state *st, edist_term_view lock_id)
{
    gl_lock *g = global_lock(st);
    if (!g)
        return !st->global_lock_down;
    edist_term_view rid, rq;
    return dec_lock_id(lock_id, &rid, &rq) == 0 && edi_term_is_atom(rid, "global") &&
           view_eq(rq, g->req.data, g->req.len);
}

/* The same for a registration from pid (a registrar of another node). */
static bool lock_still_held_by(gl_state *st, edist_procid pid)
{
    gl_lock *g = global_lock(st);
    return g ? lock_held_by(g, pid) : !st->global_lock_down;
}

/* Apply [{insert, {Name, Pid, Method}} | {delete, Name}]: inserts first,
 * then deletes (global's do_ops). Ops that came under a lock no longer
 * set (lock_still_set_for) insert nothing, and the names they would have
 * replaced go, as global's insert-then-delete leaves them. */
static void do_ops(gl_state *st, edist_term_view ops, edist_term_view lock_id)
{
    bool still_set = lock_still_set_for(st, lock_id);
    for (int pass = 0; pass < 2; pass++) {
        edist_cursor c;
        uint32_t n;
        if (list_open(ops, &c, &n) != 0)
            return;
        for (uint32_t i = 0; i < n; i++) {
            edist_term_view op;
            if (edist_dec_term(&c, &op) != 0)
                return;
            edist_cursor oc;
            uint32_t arity;
            char kind[16];
            edist_cursor_init(&oc, op.ptr, op.len);
            if (edist_dec_tuple(&oc, &arity) != 0 || arity != 2 ||
                edist_dec_atom_copy(&oc, kind, sizeof kind) != 0)
                continue;
            edist_term_view arg;
            if (edist_dec_term(&oc, &arg) != 0)
                continue;
            if (pass == 0 && strcmp(kind, "insert") == 0) {
                edist_term_view name, method;
                edist_procid pid;
                if (dec_name_triple(arg, &name, &pid, &method) == 0)
                    name_insert_under(st, still_set, name, pid, method);
            } else if (pass == 1 && strcmp(kind, "delete") == 0) {
                name_delete(st, arg);
            }
        }
    }
}

/* {Min, Max} of two pids as global's minmax: by node name. */
static void minmax(edist_procid a, edist_procid b, edist_procid *min, edist_procid *max)
{
    if (node_cmp(edist_procid_node(a), edist_procid_node(b)) < 0) {
        *min = a;
        *max = b;
    } else {
        *min = b;
        *max = a;
    }
}

/* The resolver from C, if one is set: 0 and *keep. */
/* The resolver from C (NULL: none), set from any thread. */
static edist_global_resolve_fn c_resolver(edi_services *s, void **user)
{
    pthread_mutex_lock(&s->resolver_mu);
    edist_global_resolve_fn fn = s->resolver;
    *user = s->resolver_user;
    pthread_mutex_unlock(&s->resolver_mu);
    return fn;
}

static int user_resolve(edi_services *s, edist_term_view name, edist_procid a, edist_procid b,
                        edist_procid *keep)
{
    void *user;
    edist_global_resolve_fn fn = c_resolver(s, &user);
    if (!fn)
        return EDIST_ENOTFOUND;
    edist_procid k = EDIST_PROCID_NULL;
    if (fn(user, name, a, b, &k) != 0)
        return EDIST_EINVAL;
    if (!edist_procid_is_null(k) && !edist_procid_equal(k, a) && !edist_procid_equal(k, b))
        return EDIST_EINVAL; /* neither of them: the default decides */
    *keep = k;
    return 0;
}

/* global's own methods, when the name's method is one of them as an
 * external fun (fun global:F/3, what OTP sends for the defaults and what
 * edist sends): which, or GL_METHOD_OTHER (a fun of the user's, which
 * cannot run here: random_exit_name stands in). */
typedef enum gl_method {
    GL_METHOD_OTHER = 0,
    GL_METHOD_EXIT,   /* random_exit_name: the other is killed */
    GL_METHOD_NOTIFY, /* random_notify_name: the other is told */
    GL_METHOD_ALL,    /* notify_all_name: both told, neither keeps it */
} gl_method;

static gl_method method_of(edist_term_view method)
{
    edist_cursor c;
    edist_export e;
    if (!method.ptr)
        return GL_METHOD_OTHER;
    edist_cursor_init(&c, method.ptr, method.len);
    if (edist_dec_export(&c, &e) != 0 || e.arity != 3 || e.module.len != 6 ||
        memcmp(e.module.ptr, "global", 6) != 0)
        return GL_METHOD_OTHER;
    if (e.function.len == 18 && !memcmp(e.function.ptr, "random_notify_name", 18))
        return GL_METHOD_NOTIFY;
    if (e.function.len == 15 && !memcmp(e.function.ptr, "notify_all_name", 15))
        return GL_METHOD_ALL;
    return GL_METHOD_EXIT;
}

/* {global_name_conflict, Name} or, with other, {..., Name, Other} to pid. */
static void tell_conflict(edist_procid to, edist_term_view name, const edist_procid *other)
{
    edist_buf b;
    edist_buf_init(&b);
    edist_enc_tuple(&b, other ? 3 : 2);
    edist_enc_atom(&b, "global_name_conflict", 20);
    edist_enc_raw(&b, name.ptr, name.len);
    if (other)
        edist_enc_procid(&b, *other);
    if (edist_buf_error(&b) == 0)
        edist_send(to, b.data, b.len);
    edist_buf_free(&b);
}

/* Resolve a clash of name between a and b as the method says (global's
 * resolve_it): the pid that keeps the name, or null (none). The C
 * resolver, when one is set, decides instead. */
static edist_procid resolve_by(edi_services *s, edist_term_view name, edist_term_view method,
                               edist_procid a, edist_procid b)
{
    edist_procid keep, min, max;
    if (user_resolve(s, name, a, b, &keep) == 0)
        return keep;
    minmax(a, b, &min, &max);
    switch (method_of(method)) {
    case GL_METHOD_NOTIFY:
        tell_conflict(max, name, NULL);
        return min;
    case GL_METHOD_ALL:
        tell_conflict(a, name, &b);
        tell_conflict(b, name, &a);
        return EDIST_PROCID_NULL;
    case GL_METHOD_EXIT:
    case GL_METHOD_OTHER:
        break;
    }
    edi_rt_log(s->rt, EDIST_LOG_WARNING,
               "global: name conflict: a name held on %s and on %s; terminating the one on %s",
               edist_procid_node(a), edist_procid_node(b), edist_procid_node(max));
    edist_exit_signal(max, EDIST_REASON_KILL.ptr, EDIST_REASON_KILL.len);
    return min;
}

static edist_procid resolve_clash(gl_state *st, edist_term_view name, edist_term_view method,
                                  edist_procid a, edist_procid b)
{
    gcount(&st->s->global_stats.clashes, 1);
    return resolve_by(st->s, name, method, a, b);
}

/* A name's method as it travels: global's default when it has none. */
static void enc_method(edist_buf *b, edist_term_view method)
{
    if (method.len)
        edist_enc_raw(b, method.ptr, method.len);
    else
        edist_enc_export(b, "global", 6, "random_exit_name", 16, 3);
}

static void enc_insert(edist_buf *b, edist_term_view name, edist_procid pid, edist_term_view method)
{
    edist_enc_tuple(b, 2);
    edist_enc_atom(b, "insert", 6);
    edist_enc_tuple(b, 3);
    edist_enc_raw(b, name.ptr, name.len);
    edist_enc_procid(b, pid);
    enc_method(b, method);
}

static void sync_finish(gl_state *st, gl_session *x);

/* A clash is ours to resolve, and its method is a fun of the user's that
 * runs on the node of our pid (not this one), with no resolver from C:
 * global:resolve_it there decides, as global's resolver asks it to. */
static bool resolved_there(gl_state *st, edist_term_view method, edist_procid mine)
{
    void *user;
    return !c_resolver(st->s, &user) && method_of(method) == GL_METHOD_OTHER &&
           strcmp(edist_procid_node(mine), st->me) != 0;
}

static void enc_delete(edist_buf *b, edist_term_view name)
{
    edist_enc_tuple(b, 2);
    edist_enc_atom(b, "delete", 6);
    edist_enc_raw(b, name.ptr, name.len);
}

/* keep (or null: none) stays with the name: an op for us or for him. */
static void clash_outcome(gl_session *x, edist_term_view name, edist_procid his,
                          edist_term_view his_method, edist_procid mine,
                          edist_term_view my_method, edist_procid keep)
{
    if (edist_procid_is_null(keep)) { /* gone on both sides */
        enc_delete(&x->ops, name);
        x->ops_n++;
        enc_delete(&x->res_out, name);
        x->res_n++;
    } else if (edist_procid_equal(keep, his)) {
        enc_insert(&x->ops, name, his, his_method);
        x->ops_n++;
    } else if (edist_procid_equal(keep, mine)) {
        enc_insert(&x->res_out, name, mine, my_method);
        x->res_n++;
    }
}

/* Our half is done: the resolved message to him, and the sync finished
 * if his came already (x may be gone then). */
static void exchange_done(gl_state *st, gl_session *x)
{
    x->have_ops = true;
    edist_buf *b = &st->out;
    edist_buf_reset(b);
    edi_svc_enc_cast(b);
    edist_enc_tuple(b, 7);
    edist_enc_atom(b, "resolved", 8);
    edist_enc_atomz(b, st->me);
    if (x->res_n) {
        edist_enc_list(b, x->res_n);
        edist_enc_raw(b, x->res_out.data, x->res_out.len);
    }
    edist_enc_nil(b);
    enc_known_pairs(st, b, x->node);
    edist_enc_atom(b, "unused", 6);
    edist_enc_nil(b);
    edist_enc_raw(b, x->his_tag.data, x->his_tag.len);
    send_server(st, x->node, b, false);
    if (x->have_resolved)
        sync_finish(st, x);
}

/* ---- the resolver: global:resolve_it on the node of our pid --------------------------- */

/* A clash left to the resolver: {Name, HisPid, HisMethod, OurPid,
 * OurMethod} as x->pend holds it. */
typedef struct gl_pending {
    edist_term_view name, hisv, his_method, minev, my_method;
    edist_procid his, mine;
} gl_pending;

/* The next of x->pend's elements at c. */
static int dec_pending(edist_cursor *c, gl_pending *p)
{
    edist_term_view t;
    edist_cursor tc;
    uint32_t ar;
    if (edist_dec_term(c, &t) != 0)
        return EDIST_EINVAL;
    edist_cursor_init(&tc, t.ptr, t.len);
    if (edist_dec_tuple(&tc, &ar) != 0 || ar != 5 || edist_dec_term(&tc, &p->name) != 0 ||
        edist_dec_term(&tc, &p->hisv) != 0 || edist_dec_term(&tc, &p->his_method) != 0 ||
        edist_dec_term(&tc, &p->minev) != 0 || edist_dec_term(&tc, &p->my_method) != 0 ||
        edi_svc_pid(p->hisv, &p->his) != 0 || edi_svc_pid(p->minev, &p->mine) != 0)
        return EDIST_EINVAL;
    return 0;
}

typedef struct gl_resolve_job {
    char peer[GL_NODE_MAX];
    uint64_t token;
    edist_buf pend, args, result, answers, answer;
    uint32_t n;
    int64_t timeout_ms;
} gl_resolve_job;

static void resolve_job_free(void *arg)
{
    gl_resolve_job *j = arg;
    edist_buf_free(&j->pend);
    edist_buf_free(&j->args);
    edist_buf_free(&j->result);
    edist_buf_free(&j->answers);
    edist_buf_free(&j->answer);
    free(j);
}

/* Each clash's answer in order, then {edist_resolved, Peer, Token,
 * Answers} to the server. A call that fails answers {badrpc, Reason}. */
static void resolver_main(void *arg)
{
    gl_resolve_job *j = arg;
    bool guarded = edist_at_exit(resolve_job_free, j) == 0;
    edist_buf *answers = &j->answers;
    edist_cursor c;
    edist_cursor_init(&c, j->pend.data, j->pend.len);
    uint32_t done = 0;
    for (gl_pending p; done < j->n && dec_pending(&c, &p) == 0; done++) {
        edist_buf_reset(&j->args);
        edist_enc_list(&j->args, 4);
        edist_enc_raw(&j->args, p.my_method.ptr, p.my_method.len);
        edist_enc_raw(&j->args, p.name.ptr, p.name.len);
        edist_enc_raw(&j->args, p.hisv.ptr, p.hisv.len);
        edist_enc_raw(&j->args, p.minev.ptr, p.minev.len);
        edist_enc_nil(&j->args);
        edist_rpc_status status;
        int rc = edist_buf_error(&j->args);
        if (rc == 0)
            rc = edist_rpc_call(edist_procid_node(p.mine), "global", "resolve_it", j->args.data,
                                j->args.len, j->timeout_ms, &j->result, &status);
        if (rc == 0) {
            edist_enc_raw(answers, j->result.data, j->result.len);
        } else {
            edist_enc_tuple(answers, 2);
            edist_enc_atom(answers, "badrpc", 6);
            edist_enc_atom(answers, "failed", 6);
        }
    }
    edist_buf *b = &j->answer;
    edist_buf_reset(b);
    edi_svc_enc_cast(b);
    edist_enc_tuple(b, 4);
    edist_enc_atom(b, "edist_resolved", 14);
    edist_enc_atomz(b, j->peer);
    edist_enc_uint(b, j->token);
    if (done)
        edist_enc_list(b, done);
    edist_enc_raw(b, answers->data, answers->len);
    edist_enc_nil(b);
    /* not sent: the server, which monitors us, decides at our end */
    if (edist_buf_error(b) == 0)
        edist_send_name("global_name_server", b->data, b->len);
    if (!guarded)
        resolve_job_free(j);
}

/* Starts the resolver for x's pending clashes; 0, or the error (then the
 * caller resolves them here). */
static int resolver_start(gl_state *st, gl_session *x)
{
    gl_resolve_job *j = calloc(1, sizeof *j);
    if (!j)
        return EDIST_ENOMEM;
    snprintf(j->peer, sizeof j->peer, "%s", x->node);
    uint64_t token = 0;
    if (getrandom(&token, sizeof token, 0) != (ssize_t)sizeof token || token == 0)
        token = ((uint64_t)edi_now_ns() << 1) | 1;
    j->token = token;
    j->n = x->pend_n;
    /* global's rpc waits as long as the fun runs; the call ends if that
     * node goes down, and a session that ends kills us */
    j->timeout_ms = -1;
    edist_buf_init(&j->pend);
    edist_buf_init(&j->args);
    edist_buf_init(&j->result);
    edist_buf_init(&j->answers);
    edist_buf_init(&j->answer);
    edist_buf_append(&j->pend, x->pend.data, x->pend.len);
    edist_procid pid;
    int rc = edist_buf_error(&j->pend);
    if (rc == 0)
        rc = edi_rt_spawn_here(st->s->rt, resolver_main, j, &pid);
    if (rc) {
        resolve_job_free(j);
        return rc;
    }
    /* it has not run yet (this shard, and the server has not yielded) */
    if ((rc = edist_monitor(pid, &x->resolver_mref)) != 0) {
        edist_exit_signal(pid, EDIST_REASON_KILL.ptr, EDIST_REASON_KILL.len);
        return rc;
    }
    x->resolver = pid;
    x->resolve_token = token;
    return 0;
}

/* The pending clashes decided: by the answers of their nodes' resolve_it
 * (global's exchange_names: his pid, ours, none; a badrpc keeps his; any
 * other answer deletes the name, with a line), or here when answers is
 * NULL (the resolver could not start). */
static void pending_decide(gl_state *st, gl_session *x, edist_term_view *answers, uint32_t an)
{
    edist_cursor c, ac;
    edist_cursor_init(&c, x->pend.data, x->pend.len);
    if (answers)
        edist_cursor_init(&ac, answers->ptr, answers->len);
    gl_pending p;
    for (uint32_t i = 0; i < x->pend_n && dec_pending(&c, &p) == 0; i++) {
        edist_term_view name = p.name, his_method = p.his_method, my_method = p.my_method,
                        a = {0};
        edist_procid his = p.his, mine = p.mine, keep;
        if (!answers || i >= an || edist_dec_term(&ac, &a) != 0) {
            keep = resolve_by(st->s, name, my_method, his, mine);
        } else if (edi_svc_pid(a, &keep) == 0 &&
                   (edist_procid_equal(keep, his) || edist_procid_equal(keep, mine))) {
            /* the pid resolve_it chose */
        } else if (edi_term_is_atom(a, "none")) {
            keep = EDIST_PROCID_NULL;
        } else {
            edist_cursor bc;
            uint32_t bar;
            edist_atom tag;
            edist_cursor_init(&bc, a.ptr, a.len);
            bool badrpc = edist_dec_tuple(&bc, &bar) == 0 && bar == 2 &&
                          edist_dec_atom(&bc, &tag) == 0 && tag.len == 6 &&
                          memcmp(tag.ptr, "badrpc", 6) == 0;
            edi_rt_log(st->s->rt, EDIST_LOG_INFO,
                       badrpc ? "global: resolving a name conflict on %s failed (badrpc): "
                                "the pid on %s keeps the name"
                              : "global: the resolve method on %s answered neither pid "
                                "nor none: the name is deleted%s",
                       edist_procid_node(mine), badrpc ? edist_procid_node(his) : "");
            keep = badrpc ? his : EDIST_PROCID_NULL;
        }
        clash_outcome(x, name, his, his_method, mine, my_method, keep);
    }
    edist_buf_reset(&x->pend);
    x->pend_n = 0;
}

/* {edist_resolved, Peer, Token, Answers} from our resolver. */
static void on_resolver_done(gl_state *st, edist_cursor *c)
{
    edist_term_view nodev, tokenv, answers;
    char node[GL_NODE_MAX];
    uint64_t token;
    edist_cursor tc, lc;
    uint32_t an;
    if (edist_dec_term(c, &nodev) != 0 || edist_dec_term(c, &tokenv) != 0 ||
        edist_dec_term(c, &answers) != 0 || view_atom(nodev, node, sizeof node) != 0)
        return;
    edist_cursor_init(&tc, tokenv.ptr, tokenv.len);
    gl_session *x = sess_find(st, node);
    if (!x || x->resolve_token == 0 || edist_dec_uint64(&tc, &token) != 0 ||
        token != x->resolve_token || list_open(answers, &lc, &an) != 0)
        return; /* an ended session's, or not ours */
    edist_demonitor(&x->resolver_mref, EDIST_DEMONITOR_FLUSH);
    x->resolve_token = 0;
    edist_term_view rest = {lc.data + lc.pos, lc.len - lc.pos};
    pending_decide(st, x, &rest, an);
    exchange_done(st, x);
}

/* A resolver's DOWN before its answer (true), else false: the clashes
 * it had left go to the default, and the sync goes on. */
static bool on_resolver_down(gl_state *st, const edist_ref *r)
{
    for (size_t i = 0; i < st->sess_n; i++) {
        gl_session *x = &st->sess[i];
        if (!x->resolve_token || !edist_ref_equal(&x->resolver_mref, r))
            continue;
        x->resolve_token = 0;
        edi_rt_log(st->s->rt, EDIST_LOG_WARNING,
                   "global: the resolver of name conflicts with %s ended without an answer: "
                   "the default resolves them", x->node);
        pending_decide(st, x, NULL, 0);
        exchange_done(st, x);
        return true;
    }
    return false;
}

/* His names against ours: what we apply (x->ops), and what we resolved
 * for him (the resolved message, sent once every clash is decided; x
 * may be gone after, when that finished the sync). */
static void exchange_names(gl_state *st, gl_session *x, edist_term_view names)
{
    resolver_stop(x); /* a repeated exchange: the last one's answer is stale */
    edist_buf_reset(&x->ops);
    x->ops_n = 0;
    edist_buf_reset(&x->res_out);
    x->res_n = 0;
    edist_buf_reset(&x->pend);
    x->pend_n = 0;
    edist_cursor c;
    uint32_t n;
    if (list_open(names, &c, &n) == 0) {
        for (uint32_t i = 0; i < n; i++) {
            edist_term_view t, name, method;
            edist_procid pid;
            if (edist_dec_term(&c, &t) != 0)
                break;
            if (dec_name_triple(t, &name, &pid, &method) != 0)
                continue;
            gl_name *e = name_find(st, name.ptr, name.len);
            if (e && edist_procid_equal(e->pid, pid))
                continue;
            if (!e) {
                enc_insert(&x->ops, name, pid, method);
                x->ops_n++;
                continue;
            }
            if (node_cmp(st->me, x->node) > 0)
                continue; /* he resolves it */
            /* as global: the method registered with our pid decides */
            edist_procid mine = e->pid;
            edist_term_view my_method = {e->method, e->method_len};
            if (resolved_there(st, my_method, mine)) {
                gcount(&st->s->global_stats.clashes, 1);
                edist_enc_tuple(&x->pend, 5);
                edist_enc_raw(&x->pend, name.ptr, name.len);
                edist_enc_procid(&x->pend, pid);
                enc_method(&x->pend, method);
                edist_enc_procid(&x->pend, mine);
                enc_method(&x->pend, my_method);
                x->pend_n++;
                continue;
            }
            edist_procid keep = resolve_clash(st, name, my_method, pid, mine);
            clash_outcome(x, name, pid, method, mine, my_method, keep);
        }
    }
    if (x->pend_n && resolver_start(st, x) == 0)
        return; /* exchange_done when its answers come */
    if (x->pend_n)
        pending_decide(st, x, NULL, 0);
    exchange_done(st, x);
}

/* {'$gen_cast', {in_sync, Me, true}} to each node (connecting to it). */
static void sync_others(gl_state *st, edist_term_view nodes)
{
    edist_cursor c;
    uint32_t n;
    if (list_open(nodes, &c, &n) != 0)
        return;
    for (uint32_t i = 0; i < n; i++) {
        edist_term_view t;
        char node[GL_NODE_MAX];
        int vsn;
        if (edist_dec_term(&c, &t) != 0)
            return;
        if (node_of_elem(t, node, sizeof node, &vsn) != 0 || strcmp(node, st->me) == 0)
            continue;
        edist_buf *b = &st->tmp2;
        edist_buf_reset(b);
        edi_svc_enc_cast(b);
        edist_enc_tuple(b, 3);
        edist_enc_atom(b, "in_sync", 7);
        edist_enc_atomz(b, st->me);
        edist_enc_atom(b, "true", 4);
        send_server(st, node, b, false);
    }
}

/* Both halves are in: apply, pass the new nodes on (the locker, still
 * holding the lock, tells the nodes we knew), and know the peer. */
static void sync_finish(gl_state *st, gl_session *x)
{
    char peer[GL_NODE_MAX];
    snprintf(peer, sizeof peer, "%s", x->node);
    /* Ops = ours ++ his resolved (counted as copied: his list may be
     * malformed) */
    edist_buf all, elems;
    edist_buf_init(&all);
    edist_buf_init(&elems);
    edist_cursor c;
    uint32_t hn = 0, copied = 0;
    edist_term_view hr = {x->resolved.data, x->resolved.len};
    if (list_open(hr, &c, &hn) != 0)
        hn = 0;
    for (uint32_t i = 0; i < hn; i++, copied++) {
        edist_term_view t;
        if (edist_dec_term(&c, &t) != 0)
            break;
        edist_enc_raw(&elems, t.ptr, t.len);
    }
    enc_list_head(&all, x->ops_n + copied);
    edist_enc_raw(&all, x->ops.data, x->ops.len);
    edist_enc_raw(&all, elems.data, elems.len);
    edist_enc_nil(&all);
    /* NewNodes = [{Peer, Vsn} | HisKnown] */
    edist_buf nn;
    edist_buf_init(&nn);
    edist_buf_reset(&elems);
    edist_term_view hk = {x->his_known.data, x->his_known.len};
    uint32_t kn = 0, good = 0;
    if (list_open(hk, &c, &kn) != 0)
        kn = 0;
    for (uint32_t i = 0; i < kn; i++) {
        edist_term_view t;
        char node[GL_NODE_MAX];
        int vsn;
        if (edist_dec_term(&c, &t) != 0)
            break;
        if (node_of_elem(t, node, sizeof node, &vsn) != 0)
            continue;
        edist_enc_tuple(&elems, 2);
        edist_enc_atomz(&elems, node);
        edist_enc_int(&elems, vsn);
        good++;
    }
    edist_enc_list(&nn, good + 1);
    edist_enc_tuple(&nn, 2);
    edist_enc_atomz(&nn, x->node);
    edist_enc_int(&nn, x->his_vsn ? x->his_vsn : GL_VSN);
    edist_enc_raw(&nn, elems.data, elems.len);
    edist_enc_nil(&nn);
    edist_buf_free(&elems);
    sync_others(st, hk);
    do_ops(st, (edist_term_view){all.data, all.len},
           (edist_term_view){x->lock_id.data, x->lock_id.len});
    /* sessions with his known nodes end: they become ours */
    if (list_open(hk, &c, &kn) == 0)
        for (uint32_t i = 0; i < kn; i++) {
            edist_term_view t;
            char node[GL_NODE_MAX];
            int vsn;
            if (edist_dec_term(&c, &t) != 0)
                break;
            gl_session *o;
            if (node_of_elem(t, node, sizeof node, &vsn) == 0 && strcmp(node, peer) != 0 &&
                (o = sess_find(st, node)))
                sess_end(st, o, true);
        }
    x = sess_find(st, peer); /* the ends above moved the sessions */
    gcount(&st->s->global_stats.syncs, 1);
    if (!x) {
        edist_buf_free(&all);
        edist_buf_free(&nn);
        return;
    }
    /* to the locker: {new_nodes, Me, Ops, [], NewNodes, [{vsn, V}, {lock, LockId}]}
     * for the nodes known before, and those nodes */
    edist_buf arg;
    edist_buf_init(&arg);
    edist_enc_tuple(&arg, 2);
    edi_svc_enc_cast(&arg);
    edist_enc_tuple(&arg, 6);
    edist_enc_atom(&arg, "new_nodes", 9);
    edist_enc_atomz(&arg, st->me);
    edist_enc_raw(&arg, all.data, all.len);
    edist_enc_nil(&arg);
    edist_enc_raw(&arg, nn.data, nn.len);
    edist_enc_list(&arg, 2);
    edist_enc_tuple(&arg, 2);
    edist_enc_atom(&arg, "vsn", 3);
    edist_enc_int(&arg, x->his_vsn ? x->his_vsn : GL_VSN);
    edist_enc_tuple(&arg, 2);
    edist_enc_atom(&arg, "lock", 4);
    edist_enc_raw(&arg, x->lock_id.data, x->lock_id.len);
    edist_enc_nil(&arg);
    enc_known_pairs(st, &arg, NULL);
    tell_locker(st, "sync_done", x->node, x->my_tag, &arg);
    edist_buf_free(&arg);
    /* add_to_known(NewNodes) */
    edist_term_view nv = {nn.data, nn.len};
    if (list_open(nv, &c, &kn) == 0)
        for (uint32_t i = 0; i < kn; i++) {
            edist_term_view t;
            char node[GL_NODE_MAX];
            int vsn;
            if (edist_dec_term(&c, &t) != 0)
                break;
            if (node_of_elem(t, node, sizeof node, &vsn) == 0)
                known_add(st, node, vsn);
        }
    edist_buf_free(&all);
    edist_buf_free(&nn);
    sess_end(st, x, false);
}

/* ---- the server's messages ------------------------------------------------------------ */

enum {
    P_CAST,       /* {'$gen_cast', Req} */
    P_CALL,       /* {'$gen_call', {From, Tag}, Req} */
    P_NODEUP,     /* {nodeup, Node, Info} */
    P_NODEDOWN,   /* {nodedown, Node, Info} */
    P_DOWN,       /* {'DOWN', Ref, process, Pid, Reason} */
    P_ACK,        /* {init_connect_ack, Node, YourTag, MyTag} */
    P_CANCEL,     /* {cancel_connect, Node, Tag} */
    P_LOST,       /* {lost_connection, A, XCre, OpId, B} */
    P_REMOVE,     /* {remove_connection, Node} */
    P_LOCK_IS_SET,/* {lock_is_set, Node, Tag, LockId}: from our locker */
    P_GAVE_UP,    /* {locker_gave_up, Node, Tag}: from our locker */
    P_COUNT
};

static const char *const pattern_text[P_COUNT] = {
    [P_CAST] = "{'$gen_cast', Req}",
    [P_CALL] = "{'$gen_call', {From, Tag}, Req}",
    [P_NODEUP] = "{nodeup, Node, Info}",
    [P_NODEDOWN] = "{nodedown, Node, Info}",
    [P_DOWN] = "{'DOWN', Ref, process, Pid, Reason}",
    [P_ACK] = "{init_connect_ack, Node, YourTag, MyTag}",
    [P_CANCEL] = "{cancel_connect, Node, Tag}",
    [P_LOST] = "{lost_connection, A, XCre, OpId, B}",
    [P_REMOVE] = "{remove_connection, Node}",
    [P_LOCK_IS_SET] = "{lock_is_set, Node, Tag, LockId}",
    [P_GAVE_UP] = "{locker_gave_up, Node, Tag}",
};
static edi_svc_patterns server_patterns = EDI_SVC_PATTERNS(pattern_text);

static edist_term_view var(gl_state *st, int p, const edist_term_view *vars, const char *name)
{
    int i = edist_pattern_var_index(st->pat[p], name);
    return i < 0 ? (edist_term_view){0} : vars[i];
}

static bool tag_is_mine(const gl_session *x, edist_term_view tag)
{
    int64_t t;
    return view_int(tag, &t) == 0 && t == x->my_tag;
}

static void on_nodeup(gl_state *st, const char *node)
{
    gl_known *k = known_find(st, node);
    if (k)
        k->up_seen = true;
    if (st->s->cfg.global_passive || k || sess_find(st, node))
        return;
    sess_start(st, node);
}

static void pop_lost_send(gl_state *st, const char *lost);

static bool removing_take(gl_state *st, const char *node)
{
    for (size_t i = 0; i < st->removing_n; i++)
        if (strcmp(st->removing[i], node) == 0) {
            memcpy(st->removing[i], st->removing[--st->removing_n], GL_NODE_MAX);
            return true;
        }
    return false;
}

static void removing_add(gl_state *st, const char *node)
{
    for (size_t i = 0; i < st->removing_n; i++)
        if (strcmp(st->removing[i], node) == 0)
            return;
    if (edi_grow((void **)&st->removing, &st->removing_cap, st->removing_n, GL_NODE_MAX))
        return;
    snprintf(st->removing[st->removing_n++], GL_NODE_MAX, "%s", node);
}

/* What goes with a node: its session, its place in Known, its names and
 * its lock holders (their monitors fire too; this does not wait for
 * them). removed: it was removed on purpose (no lost_connection). */
static void forget_node(gl_state *st, const char *node, bool removed)
{
    gl_session *x = sess_find(st, node);
    bool was_known = known_find(st, node) != NULL;
    if (x)
        sess_end(st, x, true);
    known_remove(st, node);
    for (gl_name *e = st->first, *next; e; e = next) {
        next = e->next;
        if (strcmp(edist_procid_node(e->pid), node) == 0)
            name_remove(st, e);
    }
    for (gl_lock *l = st->locks, *next; l; l = next) {
        next = l->next;
        for (uint32_t i = 0; i < l->n;)
            if (strcmp(edist_procid_node(l->holders[i].pid), node) == 0) {
                bool last = l->n == 1;
                holder_drop(st, l, i, true);
                if (last)
                    break;
            } else {
                i++;
            }
    }
    if (!removed && was_known)
        pop_lost_send(st, node);
}

static void on_nodedown(gl_state *st, const char *node)
{
    bool removed = removing_take(st, node);
    forget_node(st, node, removed);
}

/* ---- prevent_overlapping_partitions ------------------------------------------------- */

static void pop_multicast(gl_state *st, const edist_buf *msg, const char *except)
{
    for (size_t i = 0; i < st->known_n; i++)
        if (st->known[i].vsn >= GL_POP_VSN && (!except || strcmp(st->known[i].node, except) != 0))
            send_server(st, st->known[i].node, msg, true);
    for (size_t i = 0; i < st->sess_n; i++)
        if (st->sess[i].pending && st->sess[i].his_vsn >= GL_POP_VSN && !known_find(st, st->sess[i].node) &&
            (!except || strcmp(st->sess[i].node, except) != 0))
            send_server(st, st->sess[i].node, msg, true);
}

/* We lost the connection to node: tell the others, who then drop
 * theirs to it (a partition stays fully connected). */
static void pop_lost_send(gl_state *st, const char *lost)
{
    edist_buf *b = &st->tmp;
    edist_buf_reset(b);
    edist_enc_tuple(b, 5);
    edist_enc_atom(b, "lost_connection", 15);
    edist_enc_atomz(b, st->me);
    edist_enc_int(b, st->pop_creation);
    edist_enc_int(b, ++st->pop_op);
    edist_enc_atomz(b, lost);
    gcount(&st->s->global_stats.lost_connections, 1);
    pop_multicast(st, b, lost);
}

/* Is this lost_connection new (then it is kept, replacing what was kept
 * for the same pair)? Entries older than an hour go. */
static bool pop_seen_take(gl_state *st, const char *a, const char *b, int64_t xcre, int64_t op)
{
    uint64_t now = edi_now_ms();
    gl_pop_seen *hit = NULL;
    for (size_t i = 0; i < st->pop_seen_n;) {
        gl_pop_seen *e = &st->pop_seen[i];
        if (now - e->saved_ms > GL_POP_SEEN_KEEP_MS) {
            *e = st->pop_seen[--st->pop_seen_n];
            continue;
        }
        if (strcmp(e->a, a) == 0 && strcmp(e->b, b) == 0)
            hit = e;
        i++;
    }
    if (hit && hit->xcre == xcre && op <= hit->op)
        return true;
    if (!hit && st->pop_seen_n >= GL_POP_SEEN_MAX) {
        /* full (a peer naming ever new pairs): the oldest goes */
        size_t oldest = 0;
        for (size_t i = 1; i < st->pop_seen_n; i++)
            if (st->pop_seen[i].saved_ms < st->pop_seen[oldest].saved_ms)
                oldest = i;
        hit = &st->pop_seen[oldest];
        snprintf(hit->a, sizeof hit->a, "%s", a);
        snprintf(hit->b, sizeof hit->b, "%s", b);
    }
    if (!hit) {
        if (edi_grow((void **)&st->pop_seen, &st->pop_seen_cap, st->pop_seen_n,
                     sizeof *st->pop_seen))
            return false; /* handled, but not remembered */
        hit = &st->pop_seen[st->pop_seen_n++];
        snprintf(hit->a, sizeof hit->a, "%s", a);
        snprintf(hit->b, sizeof hit->b, "%s", b);
    }
    hit->xcre = xcre;
    hit->op = op;
    hit->saved_ms = now;
    return false;
}

static void on_lost_connection(gl_state *st, const edist_term_view *vars)
{
    char a[GL_NODE_MAX], bnode[GL_NODE_MAX];
    int64_t xcre, op;
    if (view_atom(var(st, P_LOST, vars, "A"), a, sizeof a) != 0 ||
        view_atom(var(st, P_LOST, vars, "B"), bnode, sizeof bnode) != 0 ||
        view_int(var(st, P_LOST, vars, "XCre"), &xcre) != 0 ||
        view_int(var(st, P_LOST, vars, "OpId"), &op) != 0)
        return;
    if (pop_seen_take(st, a, bnode, xcre, op))
        return; /* handled already */
    edist_buf *m = &st->tmp;
    edist_buf_reset(m);
    edist_enc_tuple(m, 5);
    edist_enc_atom(m, "lost_connection", 15);
    edist_enc_atomz(m, a);
    edist_enc_int(m, xcre);
    edist_enc_int(m, op);
    edist_enc_atomz(m, bnode);
    pop_multicast(st, m, a);
    const char *rm = strcmp(bnode, st->me) == 0 ? a : bnode;
    if (!known_find(st, rm) && !sess_find(st, rm))
        return;
    edist_buf *r = &st->tmp2;
    edist_buf_reset(r);
    edist_enc_tuple(r, 2);
    edist_enc_atom(r, "remove_connection", 17);
    edist_enc_atomz(r, st->me);
    send_server(st, rm, r, true);
    char keep[GL_NODE_MAX];
    snprintf(keep, sizeof keep, "%s", rm);
    removing_add(st, keep);
    forget_node(st, keep, true);
}

static void on_remove_connection(gl_state *st, const char *node)
{
    if (!known_find(st, node) && !sess_find(st, node))
        return;
    removing_add(st, node);
    forget_node(st, node, true);
    gcount(&st->s->global_stats.removed_connections, 1);
    if (st->s->cfg.disconnect)
        st->s->cfg.disconnect(st->s->cfg.user, node);
}

/* ---- casts --------------------------------------------------------------------------- */

static void on_init_connect(gl_state *st, edist_cursor *c)
{
    edist_term_view vt, nodev, init;
    if (edist_dec_term(c, &vt) != 0 || edist_dec_term(c, &nodev) != 0 || edist_dec_term(c, &init) != 0)
        return;
    char node[GL_NODE_MAX];
    if (view_atom(nodev, node, sizeof node) != 0)
        return;
    edist_cursor vc;
    uint32_t ar;
    int64_t vsn;
    edist_term_view tag;
    edist_cursor_init(&vc, vt.ptr, vt.len);
    if (edist_dec_tuple(&vc, &ar) != 0 || ar < 2 || edist_dec_int64(&vc, &vsn) != 0 ||
        edist_dec_term(&vc, &tag) != 0)
        return;
    if (vsn > GL_VSN)
        vsn = GL_VSN;
    edist_procid his_locker = EDIST_PROCID_NULL;
    edist_cursor ic;
    edist_cursor_init(&ic, init.ptr, init.len);
    if (edist_dec_tuple(&ic, &ar) == 0 && ar == 4) {
        edist_term_view skip, lk;
        for (int i = 0; i < 3; i++)
            edist_dec_term(&ic, &skip);
        if (edist_dec_term(&ic, &lk) == 0)
            edi_svc_pid(lk, &his_locker);
    }
    gl_session *x = sess_find(st, node);
    if (!x) {
        if (known_find(st, node) || st->s->cfg.global_passive)
            return; /* synced already (his session ends with our in_sync),
                       or we sync with no one */
        /* Only a node we are connected to: a session for any other name
         * would never end (no nodedown comes for it), and sync would wait
         * for it forever. */
        if (st->s->cfg.connected && !st->s->cfg.connected(st->s->cfg.user, node))
            return;
        x = sess_start(st, node);
        if (!x)
            return;
    } else if (x->pending) {
        /* a second init_connect: his side restarted; so do we */
        edist_buf *b = &st->tmp;
        edist_buf_reset(b);
        edist_enc_tuple(b, 3);
        edist_enc_atom(b, "cancel_connect", 14);
        edist_enc_atomz(b, st->me);
        edist_enc_raw(b, tag.ptr, tag.len);
        send_server(st, node, b, true);
        sess_restart(st, x);
        return;
    }
    edist_buf_reset(&x->his_tag);
    edist_buf_append(&x->his_tag, tag.ptr, tag.len);
    x->his_vsn = (int)vsn;
    x->his_locker = his_locker;
    x->pending = true;
    edist_buf *b = &st->tmp;
    edist_buf_reset(b);
    edist_enc_tuple(b, 4);
    edist_enc_atom(b, "init_connect_ack", 16);
    edist_enc_atomz(b, st->me);
    edist_enc_raw(b, tag.ptr, tag.len);
    edist_enc_int(b, x->my_tag);
    send_server(st, node, b, true);
}

static void on_lock_set_cast(gl_state *st, edist_cursor *c, uint32_t arity)
{
    edist_term_view lk, isset, known, tag = {0};
    if (edist_dec_term(c, &lk) != 0 || edist_dec_term(c, &isset) != 0 || edist_dec_term(c, &known) != 0)
        return;
    if (arity == 5 && edist_dec_term(c, &tag) != 0)
        return;
    edist_procid locker;
    if (edi_svc_pid(lk, &locker) != 0)
        return;
    const char *node = edist_procid_node(locker);
    gl_session *x = sess_find(st, node);
    if (!x || (arity == 5 && !tag_is_mine(x, tag)))
        return;
    uint8_t mem[8];
    edist_buf v;
    edist_buf_init_fixed(&v, mem, sizeof mem);
    edist_enc_bool(&v, edi_svc_is_atom(isset, "true"));
    tell_locker(st, "lock_set", node, x->my_tag, &v);
}

static void on_exchange(gl_state *st, edist_cursor *c)
{
    edist_term_view nodev, names, skip, tag;
    char node[GL_NODE_MAX];
    if (edist_dec_term(c, &nodev) != 0 || edist_dec_term(c, &names) != 0 ||
        edist_dec_term(c, &skip) != 0 || edist_dec_term(c, &tag) != 0 ||
        view_atom(nodev, node, sizeof node) != 0)
        return;
    gl_session *x = sess_find(st, node);
    if (!x || !tag_is_mine(x, tag))
        return;
    if (!x->lock_set) {
        edist_buf_reset(&x->exchange);
        edist_buf_append(&x->exchange, names.ptr, names.len);
        x->have_exchange = true;
        return;
    }
    exchange_names(st, x, names);
}

static void on_resolved(gl_state *st, edist_cursor *c)
{
    edist_term_view nodev, resolved, known, skip, ext, tag;
    char node[GL_NODE_MAX];
    if (edist_dec_term(c, &nodev) != 0 || edist_dec_term(c, &resolved) != 0 ||
        edist_dec_term(c, &known) != 0 || edist_dec_term(c, &skip) != 0 ||
        edist_dec_term(c, &ext) != 0 || edist_dec_term(c, &tag) != 0 ||
        view_atom(nodev, node, sizeof node) != 0)
        return;
    gl_session *x = sess_find(st, node);
    if (!x || !tag_is_mine(x, tag))
        return;
    edist_buf_reset(&x->resolved);
    edist_buf_append(&x->resolved, resolved.ptr, resolved.len);
    edist_buf_reset(&x->his_known);
    edist_buf_append(&x->his_known, known.ptr, known.len);
    x->have_resolved = true;
    if (x->have_ops)
        sync_finish(st, x);
}

/* {lock, LockId} of new_nodes' ExtraInfo ([{vsn, V}, {lock, LockId}]);
 * empty when it has none. */
static edist_term_view extra_lock(edist_term_view extra)
{
    edist_cursor c;
    uint32_t n;
    if (list_open(extra, &c, &n) == 0)
        for (uint32_t i = 0; i < n; i++) {
            edist_term_view t, key, val;
            edist_cursor tc;
            uint32_t arity;
            if (edist_dec_term(&c, &t) != 0)
                break;
            edist_cursor_init(&tc, t.ptr, t.len);
            if (edist_dec_tuple(&tc, &arity) == 0 && arity == 2 &&
                edist_dec_term(&tc, &key) == 0 && edist_dec_term(&tc, &val) == 0 &&
                edi_term_is_atom(key, "lock"))
                return val;
        }
    return (edist_term_view){NULL, 0};
}

static void on_new_nodes(gl_state *st, edist_cursor *c)
{
    edist_term_view nodev, ops, ext, nodes, extra;
    if (edist_dec_term(c, &nodev) != 0 || edist_dec_term(c, &ops) != 0 ||
        edist_dec_term(c, &ext) != 0 || edist_dec_term(c, &nodes) != 0 ||
        edist_dec_term(c, &extra) != 0)
        return;
    /* add_to_known; the nodes added get our in_sync */
    edist_buf added;
    edist_buf_init(&added);
    uint32_t an = 0;
    edist_cursor nc;
    uint32_t n;
    if (list_open(nodes, &nc, &n) == 0)
        for (uint32_t i = 0; i < n; i++) {
            edist_term_view t;
            char node[GL_NODE_MAX];
            int vsn;
            if (edist_dec_term(&nc, &t) != 0)
                break;
            if (node_of_elem(t, node, sizeof node, &vsn) == 0 && known_add(st, node, vsn)) {
                edist_enc_atomz(&added, node);
                an++;
                gl_session *o = sess_find(st, node);
                if (o)
                    sess_end(st, o, true);
            }
        }
    edist_buf l;
    edist_buf_init(&l);
    if (an) {
        edist_enc_list(&l, an);
        edist_enc_raw(&l, added.data, added.len);
    }
    edist_enc_nil(&l);
    sync_others(st, (edist_term_view){l.data, l.len});
    do_ops(st, ops, extra_lock(extra));
    edist_buf_free(&l);
    edist_buf_free(&added);
}

static void on_in_sync(gl_state *st, edist_cursor *c)
{
    edist_term_view nodev;
    char node[GL_NODE_MAX];
    if (edist_dec_term(c, &nodev) != 0 || view_atom(nodev, node, sizeof node) != 0)
        return;
    gl_session *x = sess_find(st, node);
    if (x)
        sess_end(st, x, true);
}

static void on_cast(gl_state *st, edist_term_view req)
{
    edist_cursor c;
    uint32_t arity;
    char kind[32];
    edist_cursor_init(&c, req.ptr, req.len);
    if (edist_dec_tuple(&c, &arity) != 0 || arity < 1 || edist_dec_atom_copy(&c, kind, sizeof kind) != 0)
        return;
    if (strcmp(kind, "init_connect") == 0 && arity == 4)
        on_init_connect(st, &c);
    else if (strcmp(kind, "lock_set") == 0 && (arity == 5 || arity == 4))
        on_lock_set_cast(st, &c, arity);
    else if (strcmp(kind, "exchange") == 0 && arity == 5)
        on_exchange(st, &c);
    else if (strcmp(kind, "resolved") == 0 && arity == 7)
        on_resolved(st, &c);
    else if (strcmp(kind, "new_nodes") == 0 && arity == 6)
        on_new_nodes(st, &c);
    else if (strcmp(kind, "in_sync") == 0 && arity == 3)
        on_in_sync(st, &c);
    else if (strcmp(kind, "edist_resolved") == 0 && arity == 4)
        on_resolver_done(st, &c);
    /* anything else (async_del_name and the like of old releases): ignored */
}

/* ---- calls ---------------------------------------------------------------------------- */

/* {RId, ReqId} */
static int dec_lock_id(edist_term_view id, edist_term_view *rid, edist_term_view *req)
{
    edist_cursor c;
    uint32_t ar;
    edist_cursor_init(&c, id.ptr, id.len);
    if (edist_dec_tuple(&c, &ar) != 0 || ar != 2 || edist_dec_term(&c, rid) != 0 ||
        edist_dec_term(&c, req) != 0)
        return EDIST_EINVAL;
    return 0;
}

static void on_call(gl_state *st, edist_term_view fromv, edist_term_view tag, edist_term_view req)
{
    edist_procid from;
    if (edi_svc_pid(fromv, &from) != 0)
        return;
    edist_cursor c;
    uint32_t arity = 0;
    char kind[32] = "";
    edist_cursor_init(&c, req.ptr, req.len);
    if (edist_dec_tuple(&c, &arity) != 0) {
        edist_cursor_init(&c, req.ptr, req.len);
        if (edist_dec_atom_copy(&c, kind, sizeof kind) == 0 && strcmp(kind, "registered_names") == 0) {
            edist_buf *b = &st->out;
            edist_buf_reset(b);
            enc_list_head(b, st->name_count);
            for (gl_name *e = st->first; e; e = e->next)
                edist_enc_raw(b, e->term, e->len);
            edist_enc_nil(b);
            reply(st, from, tag, b);
        } else if (strcmp(kind, "known_nodes") == 0) {
            /* a client's lock: {CallTimeoutMs, [Me | Known]} */
            edist_buf *b = &st->out;
            edist_buf_reset(b);
            edist_enc_tuple(b, 2);
            edist_enc_int(b, call_timeout_ms(st->s));
            edist_enc_list(b, (uint32_t)st->known_n + 1);
            edist_enc_atomz(b, st->me);
            for (size_t i = 0; i < st->known_n; i++)
                edist_enc_atomz(b, st->known[i].node);
            edist_enc_nil(b);
            reply(st, from, tag, b);
        } else if (strcmp(kind, "sync") == 0) {
            if (st->sess_n == 0) {
                reply_atom(st, from, tag, "ok");
            } else {
                /* each waiter is a waiting process: bounded by them once
                 * those that gave up and ended are dropped (a session with
                 * a peer that never answers can last until nodedown) */
                for (size_t i = 0; i < st->sync_n;) {
                    gl_waiter *w = &st->sync_waiters[i];
                    if (edi_rt_is_local((edi_rt *)st->s->rt, w->from) &&
                        !edist_is_process_alive(w->from)) {
                        edist_buf_free(&w->tag);
                        *w = st->sync_waiters[--st->sync_n];
                        continue;
                    }
                    i++;
                }
                if (edi_grow((void **)&st->sync_waiters, &st->sync_cap, st->sync_n,
                             sizeof *st->sync_waiters)) {
                    reply_atom(st, from, tag, "ok");
                    return;
                }
                gl_waiter *w = &st->sync_waiters[st->sync_n++];
                w->from = from;
                edist_buf_init(&w->tag);
                edist_buf_append(&w->tag, tag.ptr, tag.len);
            }
        } else {
            reply_atom(st, from, tag, "badarg");
        }
        return;
    }
    if (arity < 1 || edist_dec_atom_copy(&c, kind, sizeof kind) != 0) {
        reply_atom(st, from, tag, "badarg");
        return;
    }
    edist_term_view a1 = {0}, a2 = {0}, a3 = {0};
    if (arity >= 2)
        edist_dec_term(&c, &a1);
    if (arity >= 3)
        edist_dec_term(&c, &a2);
    if (arity >= 4)
        edist_dec_term(&c, &a3);
    if ((strcmp(kind, "set_lock") == 0 || strcmp(kind, "del_lock") == 0) && arity == 2) {
        edist_term_view rid, rq;
        if (dec_lock_id(a1, &rid, &rq) != 0) {
            reply_atom(st, from, tag, "false");
            return;
        }
        if (kind[0] == 's') {
            reply_atom(st, from, tag, lock_set(st, rid, rq, from) ? "true" : "false");
        } else {
            lock_del(st, rid, rq, from);
            reply_atom(st, from, tag, "true");
        }
    } else if ((strcmp(kind, "register") == 0 && arity == 4) ||
               (strcmp(kind, "register_ext") == 0 && arity == 5)) {
        edist_procid pid;
        /* under a `global` lock someone else holds, the name does not
         * stay (global's lock check) */
        if (edi_svc_pid(a2, &pid) == 0)
            name_insert_under(st, lock_still_held_by(st, from), a1, pid, a3);
        reply_atom(st, from, tag, "yes");
    } else if (strcmp(kind, "unregister") == 0 && arity == 2) {
        name_delete(st, a1);
        reply_atom(st, from, tag, "ok");
    } else if (strcmp(kind, "whereis") == 0 && arity == 2) {
        gl_name *e = name_find(st, a1.ptr, a1.len);
        edist_buf *b = &st->out;
        edist_buf_reset(b);
        if (e)
            edist_enc_procid(b, e->pid);
        else
            edist_enc_atom(b, "undefined", 9);
        reply(st, from, tag, b);
    } else if (strcmp(kind, "registrar") == 0 && arity == 4) {
        /* {registrar, Op, Name, Pid}: ours (edist_global_register_name and
         * friends), not global.erl's: this node's callers only, with a
         * pid; the registrar answers the caller */
        edist_procid p;
        if (from.node != edi_rt_node_index(st->s->rt) || edi_svc_pid(a3, &p) != 0) {
            reply_atom(st, from, tag, "badarg");
            return;
        }
        edist_buf *b = &st->out;
        edist_buf_reset(b);
        edist_enc_tuple(b, 6);
        edist_enc_atom(b, "req", 3);
        edist_enc_procid(b, from);
        edist_enc_raw(b, tag.ptr, tag.len);
        edist_enc_raw(b, a1.ptr, a1.len);
        edist_enc_raw(b, a2.ptr, a2.len);
        edist_enc_raw(b, a3.ptr, a3.len);
        send_pid(st, st->registrar, b);
    } else {
        reply_atom(st, from, tag, "badarg");
    }
}

static void on_nodedown(gl_state *st, const char *node);

/* The DOWN of a Known node's monitor (true), else false. noconnection
 * with the node not connected and never up since it became known: we
 * could not reach it, or it went down before we learned of it (global's
 * extra_nodedown, after a line); up before: its nodedown does the rest;
 * connected again meanwhile: a new monitor. noproc: no global there; it
 * stays known, unwatched. */
static bool on_known_down(gl_state *st, const edist_ref *r, edist_term_view reason)
{
    for (size_t i = 0; i < st->known_n; i++) {
        gl_known *k = &st->known[i];
        if (!k->mon || !edist_ref_equal(&k->mref, r))
            continue;
        k->mon = false;
        if (!edi_term_is_atom(reason, "noconnection"))
            return true;
        if (st->s->cfg.connected && st->s->cfg.connected(st->s->cfg.user, k->node)) {
            k->mon = edist_monitor_name("global_name_server", k->node, &k->mref) == 0;
            return true;
        }
        if (k->up_seen)
            return true;
        char node[GL_NODE_MAX];
        snprintf(node, sizeof node, "%s", k->node);
        edi_rt_log(st->s->rt, EDIST_LOG_WARNING, "global: failed to connect to %s", node);
        on_nodedown(st, node);
        return true;
    }
    return false;
}

static void on_down(gl_state *st, edist_term_view pidv)
{
    edist_procid pid;
    if (edi_svc_pid(pidv, &pid) != 0)
        return;
    names_of_pid_remove(st, pid);
    holders_of_pid_drop(st, pid);
}

static void on_lock_is_set(gl_state *st, edist_term_view nodev, edist_term_view tag,
                           edist_term_view lock_id)
{
    char node[GL_NODE_MAX];
    int64_t t = 0;
    if (view_atom(nodev, node, sizeof node) != 0 || view_int(tag, &t) != 0)
        return;
    gl_session *x = sess_find(st, node);
    if (!x || !x->pending || x->my_tag != t) {
        tell_locker(st, "cancel", node, t, NULL);
        return;
    }
    x->lock_set = true;
    edist_buf_reset(&x->lock_id);
    edist_buf_append(&x->lock_id, lock_id.ptr, lock_id.len);
    edist_buf *b = &st->out;
    edist_buf_reset(b);
    edi_svc_enc_cast(b);
    edist_enc_tuple(b, 5);
    edist_enc_atom(b, "exchange", 8);
    edist_enc_atomz(b, st->me);
    enc_all_names(st, b);
    edist_enc_nil(b);
    edist_enc_raw(b, x->his_tag.data, x->his_tag.len);
    send_server(st, node, b, false);
    if (x->have_exchange) {
        edist_buf names;
        edist_buf_init(&names);
        edist_buf_append(&names, x->exchange.data, x->exchange.len);
        exchange_names(st, x, (edist_term_view){names.data, names.len});
        edist_buf_free(&names);
    }
}

/* ---- multi_call (the locker's and the registrar's) ----------------------------------- */

/* What a caller of the servers needs (not the shared state: a client on
 * any shard makes calls too). s NULL: sends as a plain process. */
typedef struct gl_caller {
    edi_services *s;
    char me[GL_NODE_MAX];
    /* an answer's wait (global_call_timeout_ms; global's own is infinity,
     * ended by the callee's DOWN, which the call watches too) */
    int64_t timeout_ms;
    /* scratch of the calls: in the process's heap state, so that a
     * process killed in a call leaves nothing behind */
    edist_buf req, ans;
} gl_caller;

/* gen_server:multi_call([node], global_name_server, Req): true when the
 * answer is `true`, `yes` or `ok`, and for a node that is gone (no
 * connection, no server): multi_call's bad nodes, which global.erl's
 * set_lock_on_nodes passes over (a known node we cannot reach refused
 * every lock for good). One that did not answer in time: false. */
static bool call_one(gl_caller *k, const char *node, const edist_buf *req)
{
    bool local = strcmp(node, k->me) == 0;
    int rc = edi_svc_call(k->s, "global_name_server", local ? NULL : node, node, req->data,
                          req->len, &k->ans, k->timeout_ms);
    if (rc == EDIST_ECLOSED && !local)
        return true;
    edist_term_view v = {k->ans.data, k->ans.len};
    bool ok = rc == 0 && (edi_term_is_atom(v, "true") || edi_term_is_atom(v, "yes") ||
                          edi_term_is_atom(v, "ok"));
    if (k->s && rc == EDIST_ETIMEDOUT)
        gcount(&k->s->global_stats.call_timeouts, 1);
    if (k->s && !ok)
        gcount(&k->s->global_stats.lock_refusals, 1);
    return ok;
}

static void enc_lock_req(edist_buf *b, const char *op, const edist_buf *lock_id)
{
    edist_buf_reset(b);
    edist_enc_tuple(b, 2);
    edist_enc_atomz(b, op);
    edist_enc_raw(b, lock_id->data, lock_id->len);
}

/* The nodes to lock: me and Known (a snapshot), boss (the greatest) first. */
typedef struct gl_nodes {
    char (*v)[GL_NODE_MAX];
    size_t n;
} gl_nodes;

static void nodes_boss_first(gl_nodes *out);

static int nodes_snapshot(gl_state *st, const char *extra, gl_nodes *out)
{
    out->v = malloc((st->known_n + 2) * GL_NODE_MAX);
    if (!out->v)
        return EDIST_ENOMEM;
    out->n = 0;
    snprintf(out->v[out->n++], GL_NODE_MAX, "%s", st->me);
    for (size_t i = 0; i < st->known_n; i++)
        snprintf(out->v[out->n++], GL_NODE_MAX, "%s", st->known[i].node);
    if (extra && !known_find(st, extra) && strcmp(extra, st->me) != 0)
        snprintf(out->v[out->n++], GL_NODE_MAX, "%s", extra);
    nodes_boss_first(out);
    return 0;
}

static void nodes_boss_first(gl_nodes *out)
{
    size_t boss = 0;
    for (size_t i = 1; i < out->n; i++)
        if (node_cmp(out->v[i], out->v[boss]) > 0)
            boss = i;
    if (boss) {
        char t[GL_NODE_MAX];
        memcpy(t, out->v[0], GL_NODE_MAX);
        memcpy(out->v[0], out->v[boss], GL_NODE_MAX);
        memcpy(out->v[boss], t, GL_NODE_MAX);
    }
}

/* set_lock on every node, boss first; on a refusal what was taken is
 * given back. */
static bool lock_nodes(gl_caller *k, const gl_nodes *ns, const edist_buf *lock_id)
{
    enc_lock_req(&k->req, "set_lock", lock_id);
    size_t got = 0;
    bool ok = true;
    for (; got < ns->n; got++)
        if (!call_one(k, ns->v[got], &k->req)) {
            ok = false;
            break;
        }
    if (!ok) {
        /* the node that refused or did not answer too: a set_lock that
         * timed out may still be granted, and a del_lock where nothing is
         * held does nothing */
        enc_lock_req(&k->req, "del_lock", lock_id);
        for (size_t i = got < ns->n ? got + 1 : got; i-- > 0;)
            call_one(k, ns->v[i], &k->req);
    }
    return ok;
}

/* del_lock on every node, the boss last. */
static void unlock_nodes(gl_caller *k, const gl_nodes *ns, const edist_buf *lock_id)
{
    enc_lock_req(&k->req, "del_lock", lock_id);
    for (size_t i = ns->n; i-- > 0;)
        call_one(k, ns->v[i], &k->req);
}

/* s NULL: a client's caller, whose timeout comes with the known nodes. */
static void caller_init(gl_caller *k, edi_services *s, const char *me)
{
    k->s = s;
    k->timeout_ms = s ? call_timeout_ms(s) : EDIST_NODE_GLOBAL_CALL_TIMEOUT_MS_DEFAULT;
    snprintf(k->me, sizeof k->me, "%s", me);
    edist_buf_init(&k->req);
    edist_buf_init(&k->ans);
}

static void caller_free(gl_caller *k)
{
    edist_buf_free(&k->req);
    edist_buf_free(&k->ans);
}

/* ---- the locker ----------------------------------------------------------------------- */

/* {global, lists:sort([A, B])} */
static void enc_connect_lock_id(edist_buf *b, edist_procid a, edist_procid c)
{
    uint8_t ma[EDIST_ATOM_MAX_BYTES + 64], mc[EDIST_ATOM_MAX_BYTES + 64];
    edist_buf ea, ec;
    edist_buf_init_fixed(&ea, ma, sizeof ma);
    edist_buf_init_fixed(&ec, mc, sizeof mc);
    edist_enc_procid(&ea, a);
    edist_enc_procid(&ec, c);
    int cmp = 0;
    edist_term_compare(ea.data, ea.len, ec.data, ec.len, &cmp);
    edist_buf_reset(b);
    edist_enc_tuple(b, 2);
    edist_enc_atom(b, "global", 6);
    edist_enc_list(b, 2);
    edist_enc_raw(b, cmp <= 0 ? ea.data : ec.data, cmp <= 0 ? ea.len : ec.len);
    edist_enc_raw(b, cmp <= 0 ? ec.data : ea.data, cmp <= 0 ? ec.len : ea.len);
    edist_enc_nil(b);
}

/* {lock_set, Locker, IsSet, Known, HisTag} to the peer of x. Everything
 * is copied out of x before the send, which may wait (and the server may
 * end or move the session meanwhile). */
static void cast_lock_set(gl_state *st, gl_session *x, bool set)
{
    char node[GL_NODE_MAX];
    snprintf(node, sizeof node, "%s", x->node);
    edist_buf b;
    edist_buf_init(&b);
    edi_svc_enc_cast(&b);
    edist_enc_tuple(&b, 5);
    edist_enc_atom(&b, "lock_set", 8);
    edist_enc_procid(&b, st->locker);
    edist_enc_bool(&b, set);
    enc_list_head(&b, st->known_n);
    for (size_t i = 0; i < st->known_n; i++)
        edist_enc_atomz(&b, st->known[i].node);
    edist_enc_nil(&b);
    edist_enc_raw(&b, x->his_tag.data, x->his_tag.len);
    send_server(st, node, &b, false);
    edist_buf_free(&b);
}

/* The locker's state, in its heap (freed at its end, however it ends). */
typedef struct gl_locker {
    gl_state *st;
    gl_caller k;
    const edist_pattern *about; /* {Kind, Node, Arg} with Node bound */
    const edist_pattern *not_there; /* {lock_set, Locker, false, Known}: sent to us */
    edist_buf lock_id, node_atom;
    gl_nodes ns;  /* the nodes locked for the sync under way */
    gl_nodes old; /* the nodes told of the new ones (new_nodes) */
    edist_buf cast; /* that new_nodes message */
    int64_t tag;  /* the session it is for (its my_tag) */
    bool again;   /* the peer asked again meanwhile (a new session) */
    char again_peer[GL_NODE_MAX];
} gl_locker;

/* The session the locker works for, if it is still the same one. */
static gl_session *locker_sess(gl_locker *L, const char *peer)
{
    gl_session *x = sess_find(L->st, peer);
    return x && x->my_tag == L->tag ? x : NULL;
}

/* {Tag, Arg} of a message from the server: the tag, and Arg. */
static bool locker_msg(edist_term_view v, int64_t *tag, edist_term_view *arg)
{
    edist_cursor c;
    uint32_t ar;
    edist_cursor_init(&c, v.ptr, v.len);
    return edist_dec_tuple(&c, &ar) == 0 && ar == 2 && edist_dec_int64(&c, tag) == 0 &&
           edist_dec_term(&c, arg) == 0;
}

/* The lock is set on both sides: the server exchanges the names; we wait
 * for the end (sync_done: pass the new nodes on first) and unlock. */
static void locker_hold(gl_locker *L, const char *peer, gl_nodes *ns)
{
    gl_state *st = L->st;
    edist_buf b;
    edist_buf_init(&b);
    edist_enc_tuple(&b, 4);
    edist_enc_atom(&b, "lock_is_set", 11);
    edist_enc_atomz(&b, peer);
    edist_enc_int(&b, L->tag);
    edist_enc_raw(&b, L->lock_id.data, L->lock_id.len);
    if (edist_buf_error(&b) == 0)
        edist_send(st->server, b.data, b.len);
    edist_buf_free(&b);
    for (;;) {
        edist_term_view vars[4] = {{0}}, m, arg;
        vars[edist_pattern_var_index(L->about, "Node")] =
            (edist_term_view){L->node_atom.data, L->node_atom.len};
        if (edist_receive(L->about, vars, -1, &m) != 0)
            continue;
        edist_term_view kind = vars[edist_pattern_var_index(L->about, "Kind")];
        int64_t tag;
        if (!locker_msg(vars[edist_pattern_var_index(L->about, "Arg")], &tag, &arg))
            continue;
        if (tag != L->tag) {
            /* a new session with the same peer asked: after this one */
            if (edi_term_is_atom(kind, "lock_set") && edi_term_is_atom(arg, "true")) {
                L->again = true;
                snprintf(L->again_peer, sizeof L->again_peer, "%s", peer);
            }
            continue;
        }
        if (edi_term_is_atom(kind, "cancel"))
            break;
        if (!edi_term_is_atom(kind, "sync_done"))
            continue;
        /* Arg = {NewNodesCast, OldKnown} */
        edist_cursor c;
        uint32_t ar, n;
        edist_term_view cast, old;
        edist_cursor_init(&c, arg.ptr, arg.len);
        if (edist_dec_tuple(&c, &ar) == 0 && ar == 2 && edist_dec_term(&c, &cast) == 0 &&
            edist_dec_term(&c, &old) == 0 && list_open(old, &c, &n) == 0) {
            /* copied into the locker's state: sends may wait (or end it) */
            edist_buf_reset(&L->cast);
            edist_buf_append(&L->cast, cast.ptr, cast.len);
            gl_nodes *on = &L->old;
            free(on->v);
            on->v = malloc((size_t)n * GL_NODE_MAX + 1);
            on->n = 0;
            for (uint32_t i = 0; on->v && i < n; i++) {
                edist_term_view t;
                int vsn;
                if (edist_dec_term(&c, &t) != 0)
                    break;
                if (node_of_elem(t, on->v[on->n], GL_NODE_MAX, &vsn) == 0 &&
                    strcmp(on->v[on->n], peer) != 0)
                    on->n++;
            }
            for (size_t i = 0; i < on->n; i++)
                send_server(st, on->v[i], &L->cast, false);
        }
        break;
    }
    unlock_nodes(&L->k, ns, &L->lock_id);
}

/* Lock our partition (and, initiating, the peer) for a sync with peer. */
static bool locker_lock(gl_locker *L, gl_session *x, bool with_peer, gl_nodes *ns)
{
    gl_state *st = L->st;
    L->tag = x->my_tag;
    enc_connect_lock_id(&L->lock_id, st->locker, x->his_locker);
    edist_buf_reset(&L->node_atom);
    edist_enc_atomz(&L->node_atom, x->node);
    if (nodes_snapshot(st, with_peer ? x->node : NULL, ns) != 0)
        return false;
    if (lock_nodes(&L->k, ns, &L->lock_id))
        return true;
    free(ns->v);
    ns->v = NULL;
    return false;
}

/* His locker asked (lock_set true) while we were not waiting for him. */
static void locker_respond(gl_locker *L, const char *peer)
{
    gl_state *st = L->st;
    gl_session *x = sess_find(st, peer);
    if (!x || !x->pending || x->lock_set)
        return;
    bool ok = locker_lock(L, x, false, &L->ns);
    x = locker_sess(L, peer); /* the server ran meanwhile */
    if (x)
        cast_lock_set(st, x, ok);
    if (ok && x)
        locker_hold(L, peer, &L->ns);
    else if (ok)
        unlock_nodes(&L->k, &L->ns, &L->lock_id);
    free(L->ns.v);
    L->ns.v = NULL;
}

/* Start a sync: lock both partitions, then ask his locker. */
static void locker_initiate(gl_locker *L)
{
    gl_state *st = L->st;
    if (global_lock(st))
        return; /* a registration or another sync is under way */
    size_t cand = 0, pick = SIZE_MAX;
    for (size_t i = 0; i < st->sess_n; i++) {
        gl_session *x = &st->sess[i];
        if (x->pending && !x->lock_set && !edist_procid_is_null(x->his_locker) &&
            !known_find(st, x->node) && edi_splitmix64(&st->rng) % ++cand == 0)
            pick = i;
    }
    if (pick == SIZE_MAX)
        return;
    char peer[GL_NODE_MAX];
    snprintf(peer, sizeof peer, "%s", st->sess[pick].node);
    if (!locker_lock(L, &st->sess[pick], true, &L->ns))
        return;
    gl_session *x = locker_sess(L, peer);
    if (!x) {
        unlock_nodes(&L->k, &L->ns, &L->lock_id);
        free(L->ns.v);
        L->ns.v = NULL;
        return;
    }
    cast_lock_set(st, x, true);
    /* his answer: a lock_set of this session (true: his side is locked),
     * his locker's "not there" (sent to us directly), or a cancel */
    bool set = false, done = false;
    uint64_t deadline = edi_now_ms() + (uint64_t)L->k.timeout_ms;
    while (!done && edi_now_ms() < deadline) {
        edist_term_view vars[4] = {{0}}, m, arg;
        vars[edist_pattern_var_index(L->about, "Node")] =
            (edist_term_view){L->node_atom.data, L->node_atom.len};
        if (edist_receive(L->about, vars, 20, &m) == 0) {
            edist_term_view kind = vars[edist_pattern_var_index(L->about, "Kind")];
            int64_t tag;
            if (!locker_msg(vars[edist_pattern_var_index(L->about, "Arg")], &tag, &arg) ||
                tag != L->tag)
                continue;
            if (edi_term_is_atom(kind, "cancel"))
                done = true;
            else if (edi_term_is_atom(kind, "lock_set"))
                done = true, set = edi_term_is_atom(arg, "true");
            continue;
        }
        edist_term_view nv[3] = {{0}};
        if (edist_receive(L->not_there, nv, 0, &m) == 0) {
            edist_procid from;
            if (edi_svc_pid(nv[edist_pattern_var_index(L->not_there, "L")], &from) == 0 &&
                strcmp(edist_procid_node(from), peer) == 0)
                done = true; /* refused */
        }
    }
    bool answered = done;
    if (set && locker_sess(L, peer))
        locker_hold(L, peer, &L->ns);
    else
        unlock_nodes(&L->k, &L->ns, &L->lock_id);
    free(L->ns.v);
    L->ns.v = NULL;
    if (!answered) {
        /* global waits forever here; we wait the call timeout, then have
         * both sides start the sync over (his locker may have locked his
         * side after all and wait for a cancel) */
        edist_buf b;
        uint8_t mem[GL_NODE_MAX + 32];
        edist_buf_init_fixed(&b, mem, sizeof mem);
        edist_enc_tuple(&b, 3);
        edist_enc_atom(&b, "locker_gave_up", 14);
        edist_enc_atomz(&b, peer);
        edist_enc_int(&b, L->tag);
        if (edist_buf_error(&b) == 0)
            edist_send(st->server, b.data, b.len);
    }
}

static void locker_free(void *arg)
{
    gl_locker *L = arg;
    caller_free(&L->k);
    edist_buf_free(&L->lock_id);
    edist_buf_free(&L->node_atom);
    edist_buf_free(&L->cast);
    free(L->ns.v);
    free(L->old.v);
    free(L);
}

static void locker_main(void *arg)
{
    gl_state *st = arg;
    gl_locker *Lp = calloc(1, sizeof *Lp);
    if (!Lp)
        return;
    Lp->st = st;
    edist_buf_init(&Lp->cast);
    edist_buf_init(&Lp->lock_id);
    edist_buf_init(&Lp->node_atom);
    caller_init(&Lp->k, st->s, st->me);
    if (edist_at_exit(locker_free, Lp) != 0) {
        locker_free(Lp);
        return;
    }
    static const char *const texts[] = {"{Kind, Node, Arg}", "{lock_set, L, false, _}"};
    static edi_svc_patterns locker_patterns = EDI_SVC_PATTERNS(texts);
    edist_pattern *const *pats = edi_svc_patterns_get(&locker_patterns);
    if (!pats)
        return;
    Lp->about = pats[0];
    Lp->not_there = pats[1];
#define L (*Lp)
    for (;;) {
        if (L.again) {
            /* asked during a sync we held: at once, if that session
             * still waits (not after the next message or idle wait) */
            char again[GL_NODE_MAX];
            L.again = false;
            snprintf(again, sizeof again, "%s", L.again_peer);
            locker_respond(&L, again);
            continue;
        }
        /* global's pace: 200 ms alone, more with more nodes to lock */
        int64_t wait = st->known_n == 0 ? 200 : 1000 + 100 * (int64_t)st->known_n;
        if (wait > 3000)
            wait = 3000;
        wait = wait / 2 + (int64_t)(edi_splitmix64(&st->rng) % (uint64_t)(wait / 2 + 1));
        edist_term_view vars[4] = {{0}}, m, arg;
        /* everything: what is not a request (late answers of calls that
         * timed out, a stray "not there") is dropped */
        int rc = edist_receive(NULL, NULL, wait, &m);
        if (rc == EDIST_ETIMEDOUT) {
            locker_initiate(&L);
            continue;
        }
        if (rc || edist_match(L.about, m.ptr, m.len, vars) != 1)
            continue;
        edist_term_view kind = vars[edist_pattern_var_index(L.about, "Kind")];
        char peer[GL_NODE_MAX];
        int64_t tag;
        if (edi_term_is_atom(kind, "lock_set") &&
            locker_msg(vars[edist_pattern_var_index(L.about, "Arg")], &tag, &arg) &&
            edi_term_is_atom(arg, "true") &&
            view_atom(vars[edist_pattern_var_index(L.about, "Node")], peer, sizeof peer) == 0) {
            gl_session *x = sess_find(st, peer);
            if (x && x->my_tag == tag)
                locker_respond(&L, peer);
        }
        /* a cancel or sync_done of a sync we no longer hold: nothing */
    }
#undef L
}

/* ---- the registrar -------------------------------------------------------------------- */

/* The registrar's state, in its heap (freed at its end). */
typedef struct gl_registrar {
    gl_caller k;
    const edist_pattern *req;
    edist_buf lock_id, call;
    gl_nodes ns;
    edist_message *keep; /* the request being served */
} gl_registrar;

static void registrar_free(void *arg)
{
    gl_registrar *r = arg;
    caller_free(&r->k);
    edist_buf_free(&r->lock_id);
    edist_buf_free(&r->call);
    free(r->ns.v);
    edist_message_free(r->keep);
    free(r);
}

/* trans_all_known: the lock {global, Registrar} on me and every known
 * node; if Known changed meanwhile, again. */
static void registrar_lock(gl_state *st, gl_registrar *r)
{
    for (unsigned times = 0;; times++) {
        uint64_t epoch = st->known_epoch;
        if (nodes_snapshot(st, NULL, &r->ns) != 0)
            return;
        if (lock_nodes(&r->k, &r->ns, &r->lock_id) && epoch == st->known_epoch)
            return;
        if (epoch != st->known_epoch)
            unlock_nodes(&r->k, &r->ns, &r->lock_id);
        free(r->ns.v);
        r->ns.v = NULL;
        uint64_t cap = times < 6 ? 125u << times : 8000;
        edist_sleep_ms((int64_t)(edi_splitmix64(&st->rng) % cap));
    }
}

static void registrar_main(void *arg)
{
    gl_state *st = arg;
    gl_registrar *r = calloc(1, sizeof *r);
    if (!r)
        return;
    caller_init(&r->k, st->s, st->me);
    edist_buf_init(&r->lock_id);
    edist_buf_init(&r->call);
    if (edist_at_exit(registrar_free, r) != 0) {
        registrar_free(r);
        return;
    }
    static const char *const texts[] = {"{req, From, Tag, Op, Name, Pid}"};
    static edi_svc_patterns registrar_patterns = EDI_SVC_PATTERNS(texts);
    edist_pattern *const *pats = edi_svc_patterns_get(&registrar_patterns);
    if (!pats)
        return;
    r->req = pats[0];
    edist_enc_tuple(&r->lock_id, 2);
    edist_enc_atom(&r->lock_id, "global", 6);
    edist_enc_procid(&r->lock_id, edist_self());
    for (;;) {
        edist_term_view vars[8] = {{0}}, m;
        /* everything: late answers of calls that timed out (their tags
         * match nothing any more) are dropped, not left to pile up */
        if (edist_receive(NULL, NULL, -1, &m) != 0 ||
            edist_match(r->req, m.ptr, m.len, vars) != 1)
            continue;
        edist_message_free(r->keep);
        r->keep = NULL;
        if (edist_msg_keep(&r->keep) != 0)
            continue;
        edist_term_view t = edist_message_term(r->keep);
        memset(vars, 0, sizeof vars);
        if (edist_match(r->req, t.ptr, t.len, vars) != 1)
            continue;
        edist_procid from, pid = EDIST_PROCID_NULL;
        edist_term_view tag = vars[edist_pattern_var_index(r->req, "Tag")];
        edist_term_view op = vars[edist_pattern_var_index(r->req, "Op")];
        edist_term_view name = vars[edist_pattern_var_index(r->req, "Name")];
        edi_svc_pid(vars[edist_pattern_var_index(r->req, "Pid")], &pid);
        if (edi_svc_pid(vars[edist_pattern_var_index(r->req, "From")], &from) != 0)
            continue;
        registrar_lock(st, r);
        const char *answer = "yes";
        edist_buf *call = &r->call;
        edist_buf_reset(call);
        if (edi_term_is_atom(op, "unregister")) {
            answer = "ok";
            edist_enc_tuple(call, 2);
            edist_enc_atom(call, "unregister", 10);
            edist_enc_raw(call, name.ptr, name.len);
        } else {
            if (edi_term_is_atom(op, "register") && name_find(st, name.ptr, name.len))
                answer = "no";
            edist_enc_tuple(call, 4);
            edist_enc_atom(call, "register", 8);
            edist_enc_raw(call, name.ptr, name.len);
            edist_enc_procid(call, pid);
            edist_enc_export(call, "global", 6, "random_exit_name", 16, 3);
        }
        if (r->ns.v && strcmp(answer, "no") != 0)
            for (size_t i = 0; i < r->ns.n; i++)
                call_one(&r->k, r->ns.v[i], call);
        if (r->ns.v) {
            unlock_nodes(&r->k, &r->ns, &r->lock_id);
            free(r->ns.v);
            r->ns.v = NULL;
        } else {
            answer = "no";
        }
        reply_atom(st, from, tag, answer);
    }
}

/* ---- the server ----------------------------------------------------------------------- */

static void gl_free(void *arg)
{
    gl_state *st = arg;
    while (st->first)
        name_remove(st, st->first);
    while (st->locks)
        lock_free(st, st->locks);
    edi_htab_destroy(&st->names);
    edi_htab_destroy(&st->pids);
    while (st->sess_n)
        sess_end(st, &st->sess[0], false);
    free(st->sess);
    gcount(&st->s->global_stats.known, -(int64_t)st->known_n);
    free(st->known);
    for (size_t i = 0; i < st->sync_n; i++)
        edist_buf_free(&st->sync_waiters[i].tag);
    free(st->sync_waiters);
    free(st->removing);
    free(st->pop_seen);
    edist_buf_free(&st->out);
    edist_buf_free(&st->tmp);
    edist_buf_free(&st->tmp2);
    free(st);
}

static void add_nodeup(void *ctx, const char *name, size_t len)
{
    gl_state *st = ctx;
    char node[GL_NODE_MAX];
    if (len >= sizeof node)
        return;
    memcpy(node, name, len);
    node[len] = 0;
    on_nodeup(st, node);
}

void edi_svc_global_main(void *arg)
{
    edi_services *s = arg;
    gl_state *st = calloc(1, sizeof *st);
    if (!st)
        return;
    st->s = s;
    st->server = edist_self();
    snprintf(st->me, sizeof st->me, "%s", edist_runtime_node(s->rt));
    if (getrandom(&st->seed, sizeof st->seed, GRND_NONBLOCK) != (ssize_t)sizeof st->seed)
        st->seed = edi_now_ns();
    st->rng = st->seed ^ 0x5DEECE66Dull;
    st->pop_creation = (int64_t)((edist_runtime_creation(s->rt) & 0xffffffffu) |
                                 ((edi_splitmix64(&st->rng) & 0x3fffffu) << 32));
    edi_htab_init(&st->names);
    edi_htab_init(&st->pids);
    edist_buf_init(&st->out);
    edist_buf_init(&st->tmp);
    edist_buf_init(&st->tmp2);
    if (edist_at_exit(gl_free, st) != 0) {
        free(st);
        return;
    }
    if (!(st->pat = edi_svc_patterns_get(&server_patterns)))
        return;
    if (edi_rt_spawn_here(s->rt, locker_main, st, &st->locker) != 0)
        return;
    if (edi_rt_spawn_here(s->rt, registrar_main, st, &st->registrar) != 0) {
        /* the locker runs on st: it must not outlive it */
        edist_exit_signal(st->locker, EDIST_REASON_KILL.ptr, EDIST_REASON_KILL.len);
        return;
    }
    /* the locker and registrar hold locks on other nodes: they are
     * linked to us, and a server that ends takes them along */
    edist_link(st->locker);
    edist_link(st->registrar);
    if (s->cfg.monitor_nodes)
        s->cfg.monitor_nodes(s->cfg.user, st->server, EDI_MN_INFO | EDI_MN_CONN_ID);
    if (s->cfg.nodes)
        s->cfg.nodes(s->cfg.user, EDI_NODES_VISIBLE, add_nodeup, st);
    for (;;) {
        edist_term_view m, vars[6];
        if (edist_receive(NULL, NULL, -1, &m) != 0)
            continue;
        int which = -1;
        for (int i = 0; i < P_COUNT && which < 0; i++) {
            memset(vars, 0, sizeof vars);
            if (edist_match(st->pat[i], m.ptr, m.len, vars) == 1)
                which = i;
        }
        char node[GL_NODE_MAX];
        switch (which) {
        case P_CAST:
            on_cast(st, var(st, which, vars, "Req"));
            break;
        case P_CALL:
            on_call(st, var(st, which, vars, "From"), var(st, which, vars, "Tag"),
                    var(st, which, vars, "Req"));
            break;
        case P_NODEUP:
            if (view_atom(var(st, which, vars, "Node"), node, sizeof node) == 0)
                on_nodeup(st, node);
            break;
        case P_NODEDOWN:
            if (view_atom(var(st, which, vars, "Node"), node, sizeof node) == 0)
                on_nodedown(st, node);
            break;
        case P_DOWN: {
            /* ours (a known node's server, a resolver), else a name's */
            edist_ref ref;
            bool has_ref = edi_svc_ref(var(st, which, vars, "Ref"), &ref) == 0;
            if (!has_ref || (!on_known_down(st, &ref, var(st, which, vars, "Reason")) &&
                             !on_resolver_down(st, &ref)))
                on_down(st, var(st, which, vars, "Pid"));
            break;
        }
        case P_ACK:
            break; /* global only checks it; a mismatch shows as a cancel */
        case P_CANCEL:
            if (view_atom(var(st, which, vars, "Node"), node, sizeof node) == 0) {
                gl_session *x = sess_find(st, node);
                if (x && tag_is_mine(x, var(st, which, vars, "Tag")))
                    sess_restart(st, x);
            }
            break;
        case P_LOST:
            on_lost_connection(st, vars);
            break;
        case P_REMOVE:
            if (view_atom(var(st, which, vars, "Node"), node, sizeof node) == 0)
                on_remove_connection(st, node);
            break;
        case P_LOCK_IS_SET:
            on_lock_is_set(st, var(st, which, vars, "Node"), var(st, which, vars, "Tag"),
                           var(st, which, vars, "LockId"));
            break;
        case P_GAVE_UP:
            /* Our locker asked his to lock and got no answer in time. His
             * may have locked his side meanwhile and wait for a cancel that
             * only his server sends: tell it to start over (as a restarted
             * init_connect does), and start over ourselves. */
            if (view_atom(var(st, which, vars, "Node"), node, sizeof node) == 0) {
                gl_session *x = sess_find(st, node);
                if (x && tag_is_mine(x, var(st, which, vars, "Tag")) && !x->lock_set) {
                    edist_buf *b = &st->tmp;
                    edist_buf_reset(b);
                    edist_enc_tuple(b, 3);
                    edist_enc_atom(b, "cancel_connect", 14);
                    edist_enc_atomz(b, st->me);
                    edist_enc_raw(b, x->his_tag.data, x->his_tag.len);
                    send_server(st, node, b, true);
                    sess_restart(st, x);
                }
            }
            break;
        default:
            break;
        }
    }
}

/* ---- the client calls (include/edist/global.h) ------------------------------------------- */

static int gl_call(const edist_buf *req, edist_buf *out, int timeout_ms)
{
    int rc = edist_buf_error(req);
    if (rc)
        return rc;
    rc = edi_svc_call(NULL, "global_name_server", NULL, NULL, req->data, req->len, out,
                      timeout_ms);
    if (rc == EDIST_ECLOSED)
        return edist_set_error(EDIST_ENOTFOUND, "global: no global_name_server on this node");
    if (rc == EDIST_ETIMEDOUT)
        return edist_set_error(rc, "global: no answer from global_name_server");
    return rc;
}

static int name_view(const void *name, size_t len, edist_term_view *v)
{
    return edi_svc_term_arg("global", "name", name, len, v);
}

/* A client call's request and reply buffers, held: a caller killed in
 * the call leaves nothing behind. Both or neither. */
static int gl_bufs_hold(edist_buf **req, edist_buf **out)
{
    *req = edi_svc_buf_hold();
    *out = edi_svc_buf_hold();
    if (*req && *out)
        return 0;
    edi_svc_buf_release(*req);
    edi_svc_buf_release(*out);
    return edist_set_error(EDIST_ENOMEM, "global: no memory");
}

static int registrar_op(const char *op, const void *name, size_t len, edist_procid pid)
{
    edist_term_view n;
    int rc = name_view(name, len, &n);
    if (rc)
        return rc;
    edist_buf *req, *out;
    if ((rc = gl_bufs_hold(&req, &out)) != 0)
        return rc;
    edist_enc_tuple(req, 4);
    edist_enc_atom(req, "registrar", 9);
    edist_enc_atomz(req, op);
    edist_enc_raw(req, n.ptr, n.len);
    edist_enc_procid(req, pid);
    rc = gl_call(req, out, GL_CLIENT_TIMEOUT_MS);
    if (rc == 0 && edi_term_is_atom((edist_term_view){out->data, out->len}, "no"))
        rc = edist_set_error(EDIST_EEXIST, "global: the name is registered already");
    edi_svc_buf_release(req);
    edi_svc_buf_release(out);
    return rc;
}

int edist_global_register_name(const void *name, size_t len, edist_procid pid)
{
    return registrar_op("register", name, len, pid);
}

int edist_global_re_register_name(const void *name, size_t len, edist_procid pid)
{
    return registrar_op("re_register", name, len, pid);
}

int edist_global_unregister_name(const void *name, size_t len)
{
    return registrar_op("unregister", name, len, EDIST_PROCID_NULL);
}

int edist_global_whereis_name(const void *name, size_t len, edist_procid *pid)
{
    edist_term_view n;
    int rc = name_view(name, len, &n);
    if (rc)
        return rc;
    edist_buf *req, *out;
    if ((rc = gl_bufs_hold(&req, &out)) != 0)
        return rc;
    edist_enc_tuple(req, 2);
    edist_enc_atom(req, "whereis", 7);
    edist_enc_raw(req, n.ptr, n.len);
    rc = gl_call(req, out, GL_CLIENT_TIMEOUT_MS);
    if (rc == 0) {
        edist_cursor c;
        edist_cursor_init(&c, out->data, out->len);
        if (edist_dec_procid(&c, pid) != 0)
            rc = EDIST_ENOTFOUND;
    }
    edi_svc_buf_release(req);
    edi_svc_buf_release(out);
    return rc;
}

int edist_global_send(const void *name, size_t len, const void *msg, size_t msg_len)
{
    edist_procid pid;
    int rc = edist_global_whereis_name(name, len, &pid);
    if (rc == EDIST_ENOTFOUND)
        return edist_set_error(rc, "global: no process is registered under the name");
    if (rc)
        return rc;
    return edist_send(pid, msg, msg_len);
}

int edist_global_registered_names(edist_buf *out)
{
    if (!out)
        return edist_set_error(EDIST_EINVAL, "global: no output");
    uint8_t mem[32]; /* fixed: nothing to leave behind */
    edist_buf req;
    edist_buf_init_fixed(&req, mem, sizeof mem);
    edist_enc_atom(&req, "registered_names", 16);
    return gl_call(&req, out, GL_CLIENT_TIMEOUT_MS);
}

int edist_global_sync(int timeout_ms)
{
    uint8_t mem[16], ans[64]; /* fixed: nothing to leave behind */
    edist_buf req, out;
    edist_buf_init_fixed(&req, mem, sizeof mem);
    edist_buf_init_fixed(&out, ans, sizeof ans);
    edist_enc_atom(&req, "sync", 4);
    return gl_call(&req, &out, timeout_ms);
}

/* set_lock/del_lock on this node and the nodes its server knows, as a
 * caller of their servers (the lock's holder is the calling process). */
/* A client's lock calls: everything on the heap in one block, freed by
 * the process's end if it is killed while it waits. */
typedef struct gl_lock_job {
    edist_buf lid, req, out;
    gl_caller k;
    gl_nodes ns;
} gl_lock_job;

static void lock_job_free(void *arg)
{
    gl_lock_job *j = arg;
    free(j->ns.v);
    caller_free(&j->k);
    edist_buf_free(&j->lid);
    edist_buf_free(&j->req);
    edist_buf_free(&j->out);
    free(j);
}

static int lock_op(const char *op, const void *id, size_t len, int retries)
{
    edist_term_view v;
    int rc = name_view(id, len, &v);
    if (rc)
        return rc;
    edist_term_view rid, rq;
    if (dec_lock_id(v, &rid, &rq) != 0)
        return edist_set_error(EDIST_EINVAL, "global: a lock id is {ResourceId, LockRequesterId}");
    gl_lock_job *j = calloc(1, sizeof *j);
    if (!j)
        return edist_set_error(EDIST_ENOMEM, "global: no memory");
    edist_buf_init(&j->lid);
    edist_buf_init(&j->req);
    edist_buf_init(&j->out);
    caller_init(&j->k, NULL, "");
    bool guarded = edi_svc_guard(lock_job_free, j);
    gl_caller *k = &j->k;
    gl_nodes *ns = &j->ns;
    edist_buf_append(&j->lid, v.ptr, v.len);
    edist_enc_atom(&j->req, "known_nodes", 11);
    uint64_t rng = edi_now_ns();
    rc = EDIST_EAGAIN;
    for (int t = 0; retries < 0 || t <= retries; t++) {
        /* {CallTimeoutMs, [Me | Known]} */
        int crc = gl_call(&j->req, &j->out, GL_CLIENT_TIMEOUT_MS);
        edist_cursor c;
        uint32_t n, arity;
        int64_t tmo;
        edist_term_view list;
        edist_cursor_init(&c, j->out.data, j->out.len);
        if (crc == 0 && edist_dec_tuple(&c, &arity) == 0 && arity == 2 &&
            edist_dec_int64(&c, &tmo) == 0 && tmo > 0 && edist_dec_term(&c, &list) == 0)
            k->timeout_ms = tmo;
        else
            list = (edist_term_view){NULL, 0};
        if (crc || list_open(list, &c, &n) != 0 || n == 0) {
            rc = crc ? crc : EDIST_EPROTO;
            break;
        }
        free(ns->v);
        ns->v = malloc(n * GL_NODE_MAX);
        ns->n = 0;
        if (!ns->v) {
            rc = EDIST_ENOMEM;
            break;
        }
        for (uint32_t i = 0; i < n; i++)
            if (edist_dec_atom_copy(&c, ns->v[ns->n], GL_NODE_MAX) == 0)
                ns->n++;
        snprintf(k->me, sizeof k->me, "%s", ns->v[0]);
        nodes_boss_first(ns);
        if (op[0] == 'd') {
            unlock_nodes(k, ns, &j->lid);
            rc = 0;
            break;
        }
        if (lock_nodes(k, ns, &j->lid)) {
            rc = 0;
            break;
        }
        rc = EDIST_EAGAIN;
        if (retries >= 0 && t == retries)
            break;
        uint64_t cap = t < 6 ? 125u << t : 8000;
        edist_sleep_ms((int64_t)(edi_splitmix64(&rng) % cap));
    }
    edi_svc_unguard(lock_job_free, j, guarded);
    lock_job_free(j);
    if (rc == EDIST_EAGAIN)
        return edist_set_error(rc, "global: the lock is held by another requester");
    return rc;
}

int edist_global_set_lock(const void *id, size_t len, int retries)
{
    return lock_op("set_lock", id, len, retries);
}

int edist_global_del_lock(const void *id, size_t len)
{
    return lock_op("del_lock", id, len, 0);
}

int edist_global_trans(const void *id, size_t len, int (*fn)(void *arg), void *arg,
                       int retries, int *result)
{
    if (!fn)
        return edist_set_error(EDIST_EINVAL, "global: trans without a function");
    int rc = edist_global_set_lock(id, len, retries);
    if (rc)
        return rc;
    int r = fn(arg);
    if (result)
        *result = r;
    /* fn ran: 0 whatever the release says (a lock not released here goes
     * with this process at the latest), so no caller runs fn twice */
    edist_global_del_lock(id, len);
    return 0;
}

/* ---- global:* and edist_demo:global_register/1 exports --------------------------------- */

static int ex_whereis(void *user, const edist_term_view *args, uint32_t arity, edist_buf *result)
{
    (void)user;
    (void)arity;
    edist_procid pid;
    int rc = edist_global_whereis_name(args[0].ptr, args[0].len, &pid);
    if (rc == EDIST_ENOTFOUND)
        return edist_enc_atom(result, "undefined", 9);
    if (rc)
        return rc;
    return edist_enc_procid(result, pid);
}

static int ex_register(void *user, const edist_term_view *args, uint32_t arity, edist_buf *result)
{
    (void)user;
    (void)arity;
    edist_procid pid;
    if (edi_svc_pid(args[1], &pid) != 0)
        return edi_raise_error_atom("badarg");
    int rc = edist_global_register_name(args[0].ptr, args[0].len, pid);
    if (rc == EDIST_EEXIST)
        return edist_enc_atom(result, "no", 2);
    if (rc)
        return rc;
    return edist_enc_atom(result, "yes", 3);
}

static int ex_re_register(void *user, const edist_term_view *args, uint32_t arity,
                          edist_buf *result)
{
    (void)user;
    (void)arity;
    edist_procid pid;
    if (edi_svc_pid(args[1], &pid) != 0)
        return edi_raise_error_atom("badarg");
    int rc = edist_global_re_register_name(args[0].ptr, args[0].len, pid);
    if (rc)
        return rc;
    return edist_enc_atom(result, "yes", 3);
}

static int ex_unregister(void *user, const edist_term_view *args, uint32_t arity,
                         edist_buf *result)
{
    (void)user;
    (void)arity;
    int rc = edist_global_unregister_name(args[0].ptr, args[0].len);
    if (rc)
        return rc;
    return edist_enc_atom(result, "ok", 2);
}

static int ex_registered(void *user, const edist_term_view *args, uint32_t arity,
                         edist_buf *result)
{
    (void)user;
    (void)args;
    (void)arity;
    return edist_global_registered_names(result);
}

static int ex_send(void *user, const edist_term_view *args, uint32_t arity, edist_buf *result)
{
    (void)user;
    (void)arity;
    edist_procid pid;
    int rc = edist_global_whereis_name(args[0].ptr, args[0].len, &pid);
    if (rc == EDIST_ENOTFOUND) {
        /* global:send/2 exits {badarg, {Name, Msg}} */
        edist_buf r;
        edist_buf_init(&r);
        edist_enc_tuple(&r, 2);
        edist_enc_atom(&r, "badarg", 6);
        edist_enc_tuple(&r, 2);
        edist_enc_raw(&r, args[0].ptr, args[0].len);
        edist_enc_raw(&r, args[1].ptr, args[1].len);
        rc = edi_raise(EDI_RAISE_EXIT, r.data, r.len, NULL, 0);
        edist_buf_free(&r);
        return rc;
    }
    if (rc)
        return rc;
    if ((rc = edist_send(pid, args[1].ptr, args[1].len)) != 0)
        return rc;
    return edist_enc_procid(result, pid);
}

static int ex_sync(void *user, const edist_term_view *args, uint32_t arity, edist_buf *result)
{
    (void)user;
    (void)args;
    (void)arity;
    int rc = edist_global_sync(-1);
    if (rc)
        return rc;
    return edist_enc_atom(result, "ok", 2);
}

/* global:resolve_it(Method, Name, Pid1, Pid2), which a node that resolves
 * a clash calls on the node of its own pid: random_exit_name whatever
 * the method (its fun cannot run here). */
static int ex_resolve_it(void *user, const edist_term_view *args, uint32_t arity,
                         edist_buf *result)
{
    (void)arity;
    edist_procid a, b;
    if (edi_svc_pid(args[2], &a) != 0 || edi_svc_pid(args[3], &b) != 0)
        return edi_raise_error_atom("badarg");
    edist_procid keep = resolve_by(user, args[1], args[0], a, b);
    return edist_procid_is_null(keep) ? edist_enc_atom(result, "none", 4)
                                      : edist_enc_procid(result, keep);
}

static int ex_demo_global_register(void *user, const edist_term_view *args, uint32_t arity,
                                   edist_buf *result)
{
    (void)user;
    (void)arity;
    edist_procid pid;
    int rc = edist_spawn(edi_svc_idle_main, NULL, &pid);
    if (rc)
        return rc;
    rc = edist_global_register_name(args[0].ptr, args[0].len, pid);
    if (rc) {
        edist_exit_signal(pid, EDIST_REASON_KILL.ptr, EDIST_REASON_KILL.len);
        if (rc == EDIST_EEXIST)
            return edist_enc_atom(result, "no", 2);
        return rc;
    }
    return edist_enc_atom(result, "yes", 3);
}

int edi_svc_export_global(edi_services *s)
{
    static const edi_svc_export table[] = {
        {"global", "whereis_name", 1, ex_whereis},
        {"global", "register_name", 2, ex_register},
        {"global", "re_register_name", 2, ex_re_register},
        {"global", "unregister_name", 1, ex_unregister},
        {"global", "registered_names", 0, ex_registered},
        {"global", "send", 2, ex_send},
        {"global", "sync", 0, ex_sync},
        {"global", "resolve_it", 4, ex_resolve_it},
        {"edist_demo", "global_register", 1, ex_demo_global_register},
    };
    return edi_svc_export_table(s, table, sizeof table / sizeof table[0]);
}
