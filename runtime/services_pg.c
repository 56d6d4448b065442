/* SPDX-License-Identifier: Apache-2.0 */
/* The `pg` scope process (OTP 23+ kernel pg.erl's protocol, default scope)
 * and the client calls of include/edist/pg.h.
 *
 * Between the scope processes of the nodes (plain messages):
 *   {discover, Peer}                     "I am a scope process": answered
 *                                        with a sync, and, from a peer not
 *                                        known yet, with a discover back;
 *   {'$gen_cast', {sync, Peer, Groups}}  all of Peer's local members,
 *                                        [{Group, [Pid]}]: replaces what
 *                                        we knew of Peer;
 *   {join, Peer, Group, Pid | [Pid]}
 *   {leave, Peer, Pid | [Pid], [Group]}
 * A discover goes to {pg, Node} for every visible node at start and on
 * every nodeup. Each peer scope process is monitored: its DOWN (it ended,
 * or its node went away) drops its members. Each local member is
 * monitored: its DOWN broadcasts a leave.
 *
 * Local callers use gen_server calls: {join_local, Group, PidOrPids} and
 * {leave_local, Group, PidOrPids} as pg.erl takes them, plus
 * {get_members, Group}, {get_local_members, Group} and which_groups
 * (pg.erl answers those from an ETS table instead).
 *
 * State: groups in a hash table keyed by their term (edist_term_hash,
 * which agrees with =:=, so one group sent in different encodings is one
 * group), each with its memberships (pid, origin) in join order; peer
 * scopes and local members in hash tables keyed by pid. A message costs
 * what it names: a join, a lookup or a leave costs O(1) plus the size of
 * the group it names (a leave searches that group, as pg.erl's
 * lists:delete does), never the number of groups. What concerns a whole
 * peer (its sync, its DOWN) is a pass over all the groups, and a peer
 * with no members skips it. The seed of every hash is random, so that a
 * peer cannot choose groups that collide. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "edist/pg.h"
#include "base/grow.h"
#include "runtime/runtime_internal.h"
#include "runtime/services_internal.h"

/* As pg.erl's calls (gen_server:call(Scope, _, infinity)): the scope is
 * monitored, so a scope that ends ends the call. */
#define PG_CALL_TIMEOUT_MS (-1)

/* One membership: pid joined the group once. origin -1: a local member;
 * otherwise the index of the peer scope that told us. */
typedef struct pg_member {
    edist_procid pid;
    int32_t origin;
} pg_member;

/* A group with members: in st->groups by the hash of its term, and in
 * the list st->first..last in creation order (which_groups). It goes when
 * its last member does, so churning group names cost nothing. */
typedef struct pg_group {
    edi_hnode h;
    struct pg_group *prev, *next;
    pg_member *members; /* in join order, newest last */
    uint32_t n, cap;
    uint32_t locals; /* members with origin -1 */
    /* its entry in st->changes while a message is handled (monitors) */
    uint64_t change_epoch;
    uint32_t change_idx;
    size_t len;
    uint8_t term[]; /* encoded */
} pg_group;

/* A subscription (pg:monitor_scope/1, pg:monitor/2): its ref is the
 * monitor of the subscriber, which ends it. In st->mons_by_ref; a group
 * monitor also in st->mons_by_group, a scope monitor in the scope list. */
typedef struct pg_mon {
    edi_hnode by_ref, by_group;
    struct pg_mon *prev, *next; /* scope monitors */
    edist_ref ref;
    edist_procid pid;
    bool whole_scope;
    size_t glen;
    uint8_t group[]; /* encoded; empty for a scope monitor */
} pg_mon;

/* What one message changed in one group, told to the monitors when the
 * message is done: joins and leaves of the same pid cancel out (a sync
 * replaces a peer's members wholesale). */
typedef struct pg_change {
    edist_procid *joins, *leaves;
    uint32_t nj, nl, cj, cl;
    uint8_t *term;
    size_t len;
} pg_change;

/* A peer scope process; its index in st->peers is the origin of what it
 * told us. A slot whose scope went down is reused (free list). */
typedef struct pg_peer {
    edi_hnode h; /* st->peer_index by scope pid, while live */
    edist_procid scope;
    edist_ref mref;
    bool live;
    int32_t index;     /* in st->peers */
    int32_t next_free; /* free slots: the next one */
    uint64_t members;  /* memberships it told us of */
} pg_peer;

/* A monitored local member, with the group of each of its joins. */
typedef struct pg_local {
    edi_hnode h; /* st->locals by pid */
    edist_procid pid;
    edist_ref mref;
    pg_group **joins; /* oldest first; a group once per join */
    uint32_t n, cap;
} pg_local;

enum {
    PP_DISCOVER, /* {discover, Peer} */
    PP_SYNC,     /* {'$gen_cast', {sync, Peer, Groups}} */
    PP_JOIN,     /* {join, Peer, Group, Pids} */
    PP_LEAVE,    /* {leave, Peer, Pids, Groups} */
    PP_DOWN,     /* {'DOWN', Ref, process, Pid, _} */
    PP_NODEUP,   /* {nodeup, Node} */
    PP_CALL,     /* {'$gen_call', {From, Tag}, Req} */
    PP_COUNT
};

static const char *const pg_pattern_text[PP_COUNT] = {
    [PP_DISCOVER] = "{discover, Peer}",
    [PP_SYNC] = "{'$gen_cast', {sync, Peer, Groups}}",
    [PP_JOIN] = "{join, Peer, Group, Pids}",
    [PP_LEAVE] = "{leave, Peer, Pids, Groups}",
    [PP_DOWN] = "{'DOWN', Ref, process, Pid, _}",
    [PP_NODEUP] = "{nodeup, Node}",
    [PP_CALL] = "{'$gen_call', {From, Tag}, Req}",
};
static edi_svc_patterns pg_patterns = EDI_SVC_PATTERNS(pg_pattern_text);

typedef struct pg_state {
    edi_services *s;
    char scope[EDIST_ATOM_MAX_BYTES + 1]; /* its registered name */
    edist_pattern *const *pat; /* pg_patterns */
    edi_htab mons_by_ref, mons_by_group;
    pg_mon *scope_mons;
    size_t nmons;
    pg_change *changes;
    size_t nchanges, changes_cap;
    uint64_t change_epoch;
    edist_procid self;
    uint64_t seed;
    edi_htab groups;
    pg_group *first, *last;
    pg_peer **peers;
    size_t npeers, peers_cap;
    int32_t free_peer; /* -1: none */
    edi_htab peer_index;
    edi_htab locals;
    edist_buf out, tmp;
} pg_state;

static edist_term_view var_of(const pg_state *st, int p, const edist_term_view *vars,
                              const char *name)
{
    int i = edist_pattern_var_index(st->pat[p], name);
    return i < 0 ? (edist_term_view){0} : vars[i];
}

static void count(_Atomic uint64_t *counter, int64_t delta)
{
    atomic_fetch_add_explicit(counter, (uint64_t)delta, memory_order_relaxed);
}

static void pg_free(void *arg)
{
    pg_state *st = arg;
    edi_pg_stats *ps = &st->s->pg_stats;
    for (pg_group *g = st->first, *next; g; g = next) {
        next = g->next;
        count(&ps->members, -(int64_t)g->n);
        count(&ps->groups, -1);
        free(g->members);
        free(g);
    }
    for (size_t i = 0; i < st->npeers; i++)
        free(st->peers[i]);
    free(st->peers);
    for (size_t b = 0; st->locals.buckets && b <= st->locals.mask; b++) {
        for (edi_hnode *x = st->locals.buckets[b], *next; x; x = next) {
            next = x->next;
            free(((pg_local *)x)->joins);
            free(x);
        }
    }
    edi_htab_destroy(&st->groups);
    edi_htab_destroy(&st->peer_index);
    edi_htab_destroy(&st->locals);
    for (size_t b = 0; st->mons_by_ref.buckets && b <= st->mons_by_ref.mask; b++) {
        for (edi_hnode *x = st->mons_by_ref.buckets[b], *next; x; x = next) {
            next = x->next;
            free(x); /* by_ref is first */
        }
    }
    edi_htab_destroy(&st->mons_by_ref);
    edi_htab_destroy(&st->mons_by_group);
    for (size_t i = 0; i < st->nchanges; i++) {
        free(st->changes[i].joins);
        free(st->changes[i].leaves);
        free(st->changes[i].term);
    }
    free(st->changes);
    edist_buf_free(&st->out);
    edist_buf_free(&st->tmp);
    free(st);
}

/* ---- what monitors are told ----------------------------------------------------- */

/* A join (or leave) of pid in g, kept until the message is done. */
static void change_note(pg_state *st, pg_group *g, bool join, edist_procid pid)
{
    if (st->nmons == 0)
        return;
    pg_change *c;
    if (g->change_epoch == st->change_epoch && g->change_idx < st->nchanges) {
        c = &st->changes[g->change_idx];
    } else {
        if (edi_grow((void **)&st->changes, &st->changes_cap, st->nchanges, sizeof *st->changes))
            return;
        c = &st->changes[st->nchanges];
        memset(c, 0, sizeof *c);
        c->term = malloc(g->len);
        if (!c->term)
            return;
        memcpy(c->term, g->term, g->len);
        c->len = g->len;
        g->change_epoch = st->change_epoch;
        g->change_idx = (uint32_t)st->nchanges++;
    }
    edist_procid **arr = join ? &c->joins : &c->leaves;
    uint32_t *n = join ? &c->nj : &c->nl, *cap = join ? &c->cj : &c->cl;
    if (edi_grow32((void **)arr, cap, *n, sizeof **arr) == 0)
        (*arr)[(*n)++] = pid;
}

/* {Ref, join|leave, Group, Pids} to m */
static void mon_send(pg_state *st, const pg_mon *m, const char *action, const pg_change *c,
                     const edist_procid *pids, uint32_t n)
{
    edist_buf *b = &st->tmp;
    edist_buf_reset(b);
    edist_enc_tuple(b, 4);
    edist_enc_ref(b, &m->ref);
    edist_enc_atomz(b, action);
    edist_enc_raw(b, c->term, c->len);
    if (n)
        edist_enc_list(b, n);
    for (uint32_t i = 0; i < n; i++)
        edist_enc_procid(b, pids[i]);
    edist_enc_nil(b);
    if (edist_buf_error(b) == 0)
        edi_svc_send(st->s, m->pid, b->data, b->len, EDI_SVC_FORCE);
}

static void notify(pg_state *st, const char *action, const pg_change *c, const edist_procid *pids,
                   uint32_t n)
{
    if (n == 0)
        return;
    for (pg_mon *m = st->scope_mons; m; m = m->next)
        mon_send(st, m, action, c, pids, n);
    uint64_t h;
    if (edist_term_hash(c->term, c->len, st->seed, &h) != 0)
        return;
    for (edi_hnode *x = edi_htab_next_with(&st->mons_by_group, h, NULL); x;
         x = edi_htab_next_with(&st->mons_by_group, h, x)) {
        pg_mon *m = (pg_mon *)((char *)x - offsetof(pg_mon, by_group));
        if (edist_term_equal(m->group, m->glen, c->term, c->len) == 1)
            mon_send(st, m, action, c, pids, n);
    }
}

/* The message is done: leaves, then joins, each group's once. */
static void changes_flush(pg_state *st)
{
    for (size_t i = 0; i < st->nchanges; i++) {
        pg_change *c = &st->changes[i];
        /* a pid that left and joined again (a sync) did not change:
         * cancel pairs (quadratic in one group's change, with monitors
         * only) */
        for (uint32_t l = 0; l < c->nl; l++)
            for (uint32_t j = 0; j < c->nj; j++)
                if (edist_procid_equal(c->leaves[l], c->joins[j])) {
                    c->leaves[l--] = c->leaves[--c->nl];
                    c->joins[j] = c->joins[--c->nj];
                    break;
                }
        notify(st, "leave", c, c->leaves, c->nl);
        notify(st, "join", c, c->joins, c->nj);
        free(c->joins);
        free(c->leaves);
        free(c->term);
    }
    st->nchanges = 0;
    st->change_epoch++;
}

static uint64_t ref_hash(const pg_state *st, const edist_ref *r)
{
    uint8_t mem[EDIST_ATOM_MAX_BYTES + 64];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    edist_enc_ref(&b, r);
    return edi_hash_bytes(b.data, b.len, st->seed);
}

static pg_mon *mon_find(pg_state *st, const edist_ref *r)
{
    uint64_t h = ref_hash(st, r);
    for (edi_hnode *x = edi_htab_next_with(&st->mons_by_ref, h, NULL); x;
         x = edi_htab_next_with(&st->mons_by_ref, h, x))
        if (edist_ref_equal(&((pg_mon *)x)->ref, r))
            return (pg_mon *)x;
    return NULL;
}

/* A subscription of pid: to the whole scope (group NULL) or a group. The
 * monitor of pid is its ref. */
static pg_mon *mon_add(pg_state *st, edist_procid pid, const edist_term_view *group)
{
    size_t glen = group ? group->len : 0;
    uint64_t gh = 0;
    if (group && edist_term_hash(group->ptr, group->len, st->seed, &gh) != 0)
        return NULL;
    pg_mon *m = calloc(1, sizeof *m + glen);
    if (!m)
        return NULL;
    if (edist_monitor(pid, &m->ref) != 0) {
        free(m);
        return NULL;
    }
    m->pid = pid;
    m->whole_scope = !group;
    m->glen = glen;
    if (group)
        memcpy(m->group, group->ptr, glen);
    if (edi_htab_insert(&st->mons_by_ref, &m->by_ref, ref_hash(st, &m->ref)) != 0 ||
        (group && edi_htab_insert(&st->mons_by_group, &m->by_group, gh) != 0)) {
        if (group)
            edi_htab_remove(&st->mons_by_ref, &m->by_ref);
        edist_demonitor(&m->ref, EDIST_DEMONITOR_FLUSH);
        free(m);
        return NULL;
    }
    if (!group) {
        m->next = st->scope_mons;
        if (st->scope_mons)
            st->scope_mons->prev = m;
        st->scope_mons = m;
    }
    st->nmons++;
    return m;
}

static void mon_remove(pg_state *st, pg_mon *m, bool demonitor)
{
    if (demonitor)
        edist_demonitor(&m->ref, EDIST_DEMONITOR_FLUSH);
    edi_htab_remove(&st->mons_by_ref, &m->by_ref);
    if (m->whole_scope) {
        if (m->prev)
            m->prev->next = m->next;
        else
            st->scope_mons = m->next;
        if (m->next)
            m->next->prev = m->prev;
    } else {
        edi_htab_remove(&st->mons_by_group, &m->by_group);
    }
    st->nmons--;
    free(m);
}

/* ---- groups and memberships --------------------------------------------------- */

/* The group g (hash h), or NULL. *bad: g could not be compared with a
 * group of the same hash (a term =:= rejects, such as a map with a key
 * twice, which no BEAM sends): such a term must not get a group of its
 * own, or copies of it would pile up under one hash. */
static pg_group *group_find(pg_state *st, edist_term_view g, uint64_t h, bool *bad)
{
    edi_pg_stats *ps = &st->s->pg_stats;
    count(&ps->group_lookups, 1);
    for (edi_hnode *x = edi_htab_next_with(&st->groups, h, NULL); x;
         x = edi_htab_next_with(&st->groups, h, x)) {
        pg_group *gr = (pg_group *)x;
        count(&ps->group_compares, 1);
        int eq = edist_term_equal(gr->term, gr->len, g.ptr, g.len);
        if (eq == 1)
            return gr;
        if (eq < 0)
            *bad = true;
    }
    return NULL;
}

/* The group named g, or NULL (none, or g is not a term). */
static pg_group *group_get(pg_state *st, edist_term_view g)
{
    uint64_t h;
    bool bad = false;
    if (edist_term_hash(g.ptr, g.len, st->seed, &h) != 0)
        return NULL;
    return group_find(st, g, h, &bad);
}

/* The group named g, made if new (then without members: the caller adds
 * them, or drops it with group_drop_unused). NULL: no memory, or g is not
 * a term. */
static pg_group *group_intern(pg_state *st, edist_term_view g)
{
    uint64_t h;
    bool bad = false;
    if (edist_term_hash(g.ptr, g.len, st->seed, &h) != 0)
        return NULL;
    pg_group *gr = group_find(st, g, h, &bad);
    if (gr || bad)
        return gr;
    gr = malloc(sizeof *gr + g.len);
    if (!gr)
        return NULL;
    memset(gr, 0, sizeof *gr);
    gr->len = g.len;
    memcpy(gr->term, g.ptr, g.len);
    if (edi_htab_insert(&st->groups, &gr->h, h) != 0) {
        free(gr);
        return NULL;
    }
    gr->prev = st->last;
    if (st->last)
        st->last->next = gr;
    else
        st->first = gr;
    st->last = gr;
    count(&st->s->pg_stats.groups, 1);
    return gr;
}

/* Free g if nothing names it. */
static void group_drop_unused(pg_state *st, pg_group *g)
{
    if (g->n > 0)
        return;
    edi_htab_remove(&st->groups, &g->h);
    if (g->prev)
        g->prev->next = g->next;
    else
        st->first = g->next;
    if (g->next)
        g->next->prev = g->prev;
    else
        st->last = g->prev;
    count(&st->s->pg_stats.groups, -1);
    free(g->members);
    free(g);
}

static void origin_count(pg_state *st, int32_t origin, int delta)
{
    if (origin < 0)
        return;
    st->peers[origin]->members += (uint64_t)(int64_t)delta;
}

static int member_add(pg_state *st, pg_group *g, int32_t origin, edist_procid pid)
{
    if (edi_grow32((void **)&g->members, &g->cap, g->n, sizeof *g->members))
        return EDIST_ENOMEM;
    g->members[g->n++] = (pg_member){pid, origin};
    change_note(st, g, true, pid);
    g->locals += origin < 0;
    origin_count(st, origin, 1);
    count(&st->s->pg_stats.members, 1);
    return 0;
}

/* Remove the newest membership (origin, pid) of g; order is kept. The
 * caller drops g if it is left empty. */
static bool member_remove_one(pg_state *st, pg_group *g, int32_t origin, edist_procid pid)
{
    for (uint32_t i = g->n; i-- > 0;) {
        pg_member *m = &g->members[i];
        if (m->origin == origin && edist_procid_equal(m->pid, pid)) {
            change_note(st, g, false, pid);
            memmove(m, m + 1, (g->n - i - 1) * sizeof *m);
            g->n--;
            g->locals -= origin < 0;
            origin_count(st, origin, -1);
            count(&st->s->pg_stats.members, -1);
            return true;
        }
    }
    return false;
}

/* Every membership that peer `origin` told us of goes (its scope went
 * down, or its sync replaces them). keep_empty: groups left empty stay
 * (the sync that follows refills most; the caller drops the rest), so
 * that the changes told to monitors are per group, not per struct. */
static void drop_origin(pg_state *st, int32_t origin, bool keep_empty)
{
    if (st->peers[origin]->members == 0)
        return;
    for (pg_group *g = st->first, *next; g; g = next) {
        next = g->next;
        uint32_t w = 0;
        for (uint32_t r = 0; r < g->n; r++) {
            if (g->members[r].origin != origin)
                g->members[w++] = g->members[r];
            else
                change_note(st, g, false, g->members[r].pid);
        }
        count(&st->s->pg_stats.members, -(int64_t)(g->n - w));
        g->n = w;
        if (!keep_empty)
            group_drop_unused(st, g);
    }
    st->peers[origin]->members = 0;
}

/* Call fn for each pid of v: a pid, or a proper list of pids, the last
 * one first if last_first (a join: members are listed newest first, and
 * pg.erl lists a joined list ahead of the others in its own order).
 * EDIST_ETYPE for anything else (nothing is called then). */
static int for_each_pid(edist_term_view v, bool last_first,
                        int (*fn)(void *ctx, edist_procid pid), void *ctx)
{
    edist_cursor c;
    edist_procid one;
    edist_cursor_init(&c, v.ptr, v.len);
    if (edist_dec_procid(&c, &one) == 0)
        return fn(ctx, one);
    /* validate first so that a bad list changes nothing */
    uint32_t n;
    if (edist_dec_list(&c, &n) != 0)
        return EDIST_ETYPE;
    edist_procid *all = n > 1 ? malloc(n * sizeof *all) : &one;
    if (!all)
        return EDIST_ENOMEM;
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++)
        if (edist_dec_procid(&c, &all[i]) != 0)
            rc = EDIST_ETYPE;
    if (rc == 0 && n > 0 && edist_dec_nil(&c) != 0)
        rc = EDIST_ETYPE;
    for (uint32_t k = 0; k < n && rc == 0; k++)
        rc = fn(ctx, all[last_first ? n - 1 - k : k]);
    if (all != &one)
        free(all);
    return rc;
}

/* ---- peers and local members -------------------------------------------------- */

static int32_t peer_find(const pg_state *st, edist_procid scope)
{
    uint64_t h = edi_svc_pid_hash(scope, st->seed);
    for (edi_hnode *x = edi_htab_next_with(&st->peer_index, h, NULL); x;
         x = edi_htab_next_with(&st->peer_index, h, x))
        if (edist_procid_equal(((pg_peer *)x)->scope, scope))
            return ((pg_peer *)x)->index;
    return -1;
}

/* A new peer scope, monitored: its index, or a negative edist_err. */
static int32_t peer_add(pg_state *st, edist_procid scope)
{
    pg_peer *p;
    if (st->free_peer >= 0) {
        p = st->peers[st->free_peer];
        st->free_peer = p->next_free;
    } else {
        if (st->npeers >= INT32_MAX ||
            edi_grow((void **)&st->peers, &st->peers_cap, st->npeers, sizeof *st->peers))
            return EDIST_ENOMEM;
        p = calloc(1, sizeof *p);
        if (!p)
            return EDIST_ENOMEM;
        p->index = (int32_t)st->npeers;
        st->peers[st->npeers++] = p;
    }
    p->scope = scope;
    p->members = 0;
    int rc = edist_monitor(scope, &p->mref);
    if (rc == 0 && (rc = edi_htab_insert(&st->peer_index, &p->h, edi_svc_pid_hash(scope, st->seed))) != 0)
        edist_demonitor(&p->mref, EDIST_DEMONITOR_FLUSH);
    if (rc) {
        p->next_free = st->free_peer;
        st->free_peer = p->index;
        return rc;
    }
    p->live = true;
    return p->index;
}

/* Peer i went down: what it told us goes, and its slot is free. */
static void peer_gone(pg_state *st, int32_t i)
{
    pg_peer *p = st->peers[i];
    drop_origin(st, i, false);
    edi_htab_remove(&st->peer_index, &p->h);
    p->live = false;
    p->next_free = st->free_peer;
    st->free_peer = i;
}

static pg_local *local_find(const pg_state *st, edist_procid pid)
{
    uint64_t h = edi_svc_pid_hash(pid, st->seed);
    for (edi_hnode *x = edi_htab_next_with(&st->locals, h, NULL); x;
         x = edi_htab_next_with(&st->locals, h, x))
        if (edist_procid_equal(((pg_local *)x)->pid, pid))
            return (pg_local *)x;
    return NULL;
}

/* The local member pid, monitored from its first join on; NULL: no memory
 * (or the monitor failed). */
static pg_local *local_get(pg_state *st, edist_procid pid)
{
    pg_local *l = local_find(st, pid);
    if (l)
        return l;
    l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->pid = pid;
    if (edist_monitor(pid, &l->mref) != 0) {
        free(l);
        return NULL;
    }
    if (edi_htab_insert(&st->locals, &l->h, edi_svc_pid_hash(pid, st->seed)) != 0) {
        edist_demonitor(&l->mref, EDIST_DEMONITOR_FLUSH);
        free(l);
        return NULL;
    }
    return l;
}

static void local_forget(pg_state *st, pg_local *l, bool demonitor)
{
    if (demonitor)
        edist_demonitor(&l->mref, EDIST_DEMONITOR_FLUSH);
    edi_htab_remove(&st->locals, &l->h);
    free(l->joins);
    free(l);
}


/* ---- sending ----------------------------------------------------------------- */

/* A full queue to a peer (busy_dist_port) holds the scope process back, as
 * erts suspends pg.erl's sender: a dropped join or leave would leave the
 * views apart for good. A connection that goes away ends the wait. As
 * pg.erl sends with [noconnect], nothing here sets up a connection. */
static int send_waiting(pg_state *st, edist_procid to, const edist_buf *m)
{
    int rc = edist_buf_error(m);
    return rc ? rc : edi_svc_send(st->s, to, m->data, m->len, EDI_SVC_WAIT_NOCONNECT);
}

static int send_out(pg_state *st, edist_procid to)
{
    return send_waiting(st, to, &st->out);
}

/* The message in st->out to every known peer. */
static void broadcast(pg_state *st)
{
    for (size_t i = 0; i < st->npeers; i++)
        if (st->peers[i]->live)
            send_waiting(st, st->peers[i]->scope, &st->out);
}

static void begin_discover(pg_state *st)
{
    edist_buf_reset(&st->out);
    edist_enc_tuple(&st->out, 2);
    edist_enc_atom(&st->out, "discover", 8);
    edist_enc_procid(&st->out, st->self);
}

static void add_discover_target(void *ctx, const char *name, size_t len)
{
    pg_state *st = ctx;
    char node[EDIST_ATOM_MAX_BYTES + 1];
    if (len >= sizeof node)
        return;
    memcpy(node, name, len);
    node[len] = '\0';
    if (edist_buf_error(&st->out) == 0)
        edi_svc_send_name(st->s, st->scope, node, st->out.data, st->out.len,
                          EDI_SVC_WAIT_NOCONNECT);
}

/* [Pid] of g (local members only or all), newest first. */
static void enc_members(edist_buf *b, const pg_group *g, bool local_only)
{
    uint32_t n = !g ? 0 : local_only ? g->locals : g->n;
    if (n) {
        edist_enc_list(b, n);
        for (uint32_t i = g->n; i-- > 0;)
            if (!local_only || g->members[i].origin < 0)
                edist_enc_procid(b, g->members[i].pid);
    }
    edist_enc_nil(b);
}

/* {'$gen_cast', {sync, Self, [{Group, [Pid]}]}} to peer. */
static void send_sync(pg_state *st, edist_procid peer)
{
    edist_buf *b = &st->out;
    edist_buf_reset(b);
    edi_svc_enc_cast(b);
    edist_enc_tuple(b, 3);
    edist_enc_atom(b, "sync", 4);
    edist_enc_procid(b, st->self);
    uint32_t ngroups = 0;
    for (const pg_group *g = st->first; g; g = g->next) {
        if (g->locals == 0)
            continue;
        if (ngroups++ == 0)
            edist_buf_reset(&st->tmp);
        edist_enc_tuple(&st->tmp, 2);
        edist_enc_raw(&st->tmp, g->term, g->len);
        enc_members(&st->tmp, g, true);
    }
    if (ngroups) {
        edist_enc_list(b, ngroups);
        edist_enc_raw(b, st->tmp.data, st->tmp.len);
    }
    edist_enc_nil(b);
    send_out(st, peer);
}

/* ---- messages from peers ------------------------------------------------------- */

static void on_discover(pg_state *st, edist_procid peer)
{
    send_sync(st, peer);
    if (peer_find(st, peer) >= 0)
        return;
    if (peer_add(st, peer) < 0)
        return;
    begin_discover(st);
    send_out(st, peer);
}

typedef struct remote_join {
    pg_state *st;
    pg_group *group;
    int32_t origin;
} remote_join;

static int join_remote_pid(void *ctx, edist_procid pid)
{
    remote_join *j = ctx;
    return member_add(j->st, j->group, j->origin, pid);
}

static void on_sync(pg_state *st, edist_procid peer, edist_term_view groups)
{
    int32_t p = peer_find(st, peer);
    if (p < 0 && (p = peer_add(st, peer)) < 0)
        return;
    bool had = st->peers[p]->members > 0;
    drop_origin(st, p, true);
    edist_cursor c;
    edist_cursor_init(&c, groups.ptr, groups.len);
    uint32_t n;
    if (edist_dec_list(&c, &n) != 0)
        n = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t arity;
        edist_term_view g, pids;
        if (edist_dec_tuple(&c, &arity) != 0 || arity != 2 || edist_dec_term(&c, &g) != 0 ||
            edist_dec_term(&c, &pids) != 0)
            break;
        pg_group *gr = group_intern(st, g);
        if (!gr)
            break;
        remote_join j = {st, gr, p};
        for_each_pid(pids, true, join_remote_pid, &j);
        if (!had)
            group_drop_unused(st, gr);
    }
    if (had)
        for (pg_group *g = st->first, *next; g; g = next) {
            next = g->next;
            group_drop_unused(st, g);
        }
}

static void on_join(pg_state *st, edist_procid peer, edist_term_view group,
                    edist_term_view pids)
{
    /* A join from a scope we do not know (yet, or any more) is dropped,
     * as pg.erl does: its sync will tell. */
    int32_t p = peer_find(st, peer);
    if (p < 0)
        return;
    pg_group *gr = group_intern(st, group);
    if (!gr)
        return;
    remote_join j = {st, gr, p};
    for_each_pid(pids, true, join_remote_pid, &j);
    group_drop_unused(st, gr);
}

typedef struct remote_leave {
    pg_state *st;
    int32_t origin;
    edist_term_view groups;
} remote_leave;

static int leave_remote_pid(void *ctx, edist_procid pid)
{
    remote_leave *l = ctx;
    edist_cursor c;
    edist_cursor_init(&c, l->groups.ptr, l->groups.len);
    uint32_t n;
    if (edist_dec_list(&c, &n) != 0)
        return EDIST_ETYPE;
    for (uint32_t i = 0; i < n; i++) {
        edist_term_view g;
        if (edist_dec_term(&c, &g) != 0)
            return EDIST_ETYPE;
        pg_group *gr = group_get(l->st, g);
        if (gr && member_remove_one(l->st, gr, l->origin, pid))
            group_drop_unused(l->st, gr);
    }
    return 0;
}

static void on_leave(pg_state *st, edist_procid peer, edist_term_view pids,
                     edist_term_view groups)
{
    int32_t p = peer_find(st, peer);
    if (p < 0)
        return;
    remote_leave l = {st, p, groups};
    for_each_pid(pids, false, leave_remote_pid, &l);
}

static void on_down(pg_state *st, edist_term_view refv, edist_procid pid)
{
    edist_ref ref;
    pg_mon *m;
    bool has_ref = edi_svc_ref(refv, &ref) == 0;
    if (has_ref && (m = mon_find(st, &ref)) != NULL) {
        mon_remove(st, m, false); /* a subscriber ended */
        return;
    }
    /* Only the DOWN of our own monitor: anyone can send a message shaped
     * like one, and one naming a member or a peer's scope would drop them
     * everywhere (pg.erl matches the ref too). */
    if (!has_ref)
        return;
    pg_local *l = local_find(st, pid);
    if (l && edist_ref_equal(&l->mref, &ref)) {
        /* {leave, Self, Pid, Groups}: every group it was in, once per join */
        edist_buf_reset(&st->tmp);
        uint32_t n = l->n;
        for (uint32_t i = 0; i < n; i++)
            edist_enc_raw(&st->tmp, l->joins[i]->term, l->joins[i]->len);
        /* A group's last join by pid is the last of its entries in
         * l->joins: once it is left empty nothing later names it. */
        for (uint32_t i = 0; i < n; i++) {
            pg_group *g = l->joins[i];
            if (member_remove_one(st, g, -1, pid))
                group_drop_unused(st, g);
        }
        local_forget(st, l, false);
        if (n == 0)
            return;
        edist_buf *b = &st->out;
        edist_buf_reset(b);
        edist_enc_tuple(b, 4);
        edist_enc_atom(b, "leave", 5);
        edist_enc_procid(b, st->self);
        edist_enc_procid(b, pid);
        edist_enc_list(b, n);
        edist_enc_raw(b, st->tmp.data, st->tmp.len);
        edist_enc_nil(b);
        broadcast(st);
        return;
    }
    int32_t p = peer_find(st, pid);
    if (p >= 0 && edist_ref_equal(&st->peers[p]->mref, &ref))
        peer_gone(st, p);
}

/* ---- local calls ------------------------------------------------------------------- */

typedef struct local_op {
    pg_state *st;
    pg_group *group;
    int done; /* pids acted on */
} local_op;

/* A pid of this node, as pg.erl checks: one that has just ended is
 * joined all the same, and its monitor's DOWN takes it out again. */
static int check_local(void *ctx, edist_procid pid)
{
    local_op *op = ctx;
    return pid.node == edi_rt_node_index(op->st->s->rt) ? 0 : EDIST_EINVAL;
}

static int join_local_pid(void *ctx, edist_procid pid)
{
    local_op *op = ctx;
    pg_state *st = op->st;
    pg_local *l = local_get(st, pid);
    if (!l || edi_grow32((void **)&l->joins, &l->cap, l->n, sizeof *l->joins) ||
        member_add(st, op->group, -1, pid)) {
        if (l && l->n == 0)
            local_forget(st, l, true);
        return EDIST_ENOMEM;
    }
    l->joins[l->n++] = op->group;
    op->done++;
    return 0;
}

static int leave_local_pid(void *ctx, edist_procid pid)
{
    local_op *op = ctx;
    pg_state *st = op->st;
    if (!member_remove_one(st, op->group, -1, pid))
        return 0;
    op->done++;
    pg_local *l = local_find(st, pid);
    if (!l)
        return 0;
    for (uint32_t i = l->n; i-- > 0;) {
        if (l->joins[i] == op->group) {
            memmove(&l->joins[i], &l->joins[i + 1], (l->n - i - 1) * sizeof *l->joins);
            l->n--;
            break;
        }
    }
    if (l->n == 0)
        local_forget(st, l, true);
    return 0;
}

/* {join|leave, Self, Group, Pids} / {leave, Self, Pids, [Group]}. */
static void broadcast_change(pg_state *st, bool join, edist_term_view group,
                             edist_term_view pids)
{
    edist_buf *b = &st->out;
    edist_buf_reset(b);
    edist_enc_tuple(b, 4);
    edist_enc_atomz(b, join ? "join" : "leave");
    edist_enc_procid(b, st->self);
    if (join) {
        edist_enc_raw(b, group.ptr, group.len);
        edist_enc_raw(b, pids.ptr, pids.len);
    } else {
        edist_enc_raw(b, pids.ptr, pids.len);
        edist_enc_list(b, 1);
        edist_enc_raw(b, group.ptr, group.len);
        edist_enc_nil(b);
    }
    broadcast(st);
}

static void enc_which_groups(pg_state *st, edist_buf *b)
{
    uint32_t n = 0;
    for (const pg_group *g = st->first; g; g = g->next) {
        if (n++ == 0)
            edist_buf_reset(&st->tmp);
        edist_enc_raw(&st->tmp, g->term, g->len);
    }
    if (n) {
        edist_enc_list(b, n);
        edist_enc_raw(b, st->tmp.data, st->tmp.len);
    }
    edist_enc_nil(b);
}

/* The reply to one call, appended to st->out (reset); badarg for
 * requests not understood. True when a join or leave changed something:
 * the peers must hear of it. */
static void start_scope(pg_state *st, edist_term_view name, edist_buf *b);

static bool handle_call(pg_state *st, const edist_procid *from, edist_term_view req,
                        edist_term_view *group, edist_term_view *pids, bool *join)
{
    edist_buf *b = &st->out;
    edist_cursor c;
    edist_cursor_init(&c, req.ptr, req.len);
    uint32_t arity = 0;
    edist_atom what = {0};
    bool tuple = edist_dec_tuple(&c, &arity) == 0 && arity >= 2 &&
                 edist_dec_atom(&c, &what) == 0 && edist_dec_term(&c, group) == 0;
    if (tuple && arity == 3 && edist_dec_term(&c, pids) == 0 &&
        (edist_atom_eq(&what, "join_local") || edist_atom_eq(&what, "leave_local"))) {
        *join = edist_atom_eq(&what, "join_local");
        local_op op = {st, NULL, 0};
        if (for_each_pid(*pids, false, check_local, &op) != 0) {
            edist_enc_atom(b, "badarg", 6);
            return false;
        }
        op.group = *join ? group_intern(st, *group) : group_get(st, *group);
        if (op.group) {
            for_each_pid(*pids, *join, *join ? join_local_pid : leave_local_pid, &op);
            group_drop_unused(st, op.group);
        } else if (*join) {
            edist_enc_atom(b, "error", 5); /* out of memory */
            return false;
        }
        if (!*join && op.done == 0) {
            edist_enc_atom(b, "not_joined", 10);
            return false;
        }
        edist_enc_atom(b, "ok", 2);
        return op.done > 0;
    }
    if (tuple && arity == 2 && edist_atom_eq(&what, "get_members")) {
        enc_members(b, group_get(st, *group), false);
        return false;
    }
    if (tuple && arity == 2 && edist_atom_eq(&what, "get_local_members")) {
        enc_members(b, group_get(st, *group), true);
        return false;
    }
    if (tuple && arity == 2 && edist_atom_eq(&what, "monitor") && from) {
        /* {monitor, Group} -> {Ref, Members} */
        pg_mon *m = mon_add(st, *from, group);
        if (!m) {
            edist_enc_atom(b, "error", 5);
            return false;
        }
        edist_enc_tuple(b, 2);
        edist_enc_ref(b, &m->ref);
        enc_members(b, group_get(st, *group), false);
        return false;
    }
    if (tuple && arity == 2 && edist_atom_eq(&what, "demonitor")) {
        edist_ref ref;
        pg_mon *m = edi_svc_ref(*group, &ref) == 0 ? mon_find(st, &ref) : NULL;
        if (m)
            mon_remove(st, m, true);
        edist_enc_atomz(b, m ? "ok" : "false");
        return false;
    }
    if (tuple && arity == 2 && edist_atom_eq(&what, "start_scope")) {
        /* ours (edist_pg_start_scope), not pg.erl's: this node's callers
         * only, or any peer could start processes here without end */
        if (from && from->node == edi_rt_node_index(st->s->rt))
            start_scope(st, *group, b);
        else
            edist_enc_atom(b, "badarg", 6);
        return false;
    }
    edist_cursor_init(&c, req.ptr, req.len);
    if (edist_dec_atom(&c, &what) == 0 && edist_atom_eq(&what, "which_groups")) {
        enc_which_groups(st, b);
        return false;
    }
    if (edist_atom_eq(&what, "monitor") && from) {
        /* monitor_scope -> {Ref, #{Group => Members}} */
        pg_mon *m = mon_add(st, *from, NULL);
        if (!m) {
            edist_enc_atom(b, "error", 5);
            return false;
        }
        uint32_t n = 0;
        for (const pg_group *g = st->first; g; g = g->next)
            n++;
        edist_enc_tuple(b, 2);
        edist_enc_ref(b, &m->ref);
        edist_enc_map(b, n);
        for (const pg_group *g = st->first; g; g = g->next) {
            edist_enc_raw(b, g->term, g->len);
            enc_members(b, g, false);
        }
        return false;
    }
    edist_enc_atom(b, "badarg", 6);
    return false;
}

static void on_call(pg_state *st, edist_term_view from_v, edist_term_view tag,
                    edist_term_view req)
{
    edist_procid from;
    if (edi_svc_pid(from_v, &from) != 0)
        return;
    edist_buf_reset(&st->out);
    edist_term_view group = {0}, pids = {0};
    bool join = false;
    bool changed = handle_call(st, &from, req, &group, &pids, &join);
    /* a reply as pg.erl's (noconnect: a caller whose node went needs none) */
    if (edist_buf_error(&st->out) == 0)
        edi_svc_reply(st->s, from, tag, st->out.data, st->out.len, EDI_SVC_WAIT_NOCONNECT);
    if (changed)
        broadcast_change(st, join, group, pids);
}

/* ---- the process ------------------------------------------------------------------------ */

static void pg_run(edi_services *s, const char *scope)
{
    pg_state *st = calloc(1, sizeof *st);
    if (!st)
        return;
    st->s = s;
    snprintf(st->scope, sizeof st->scope, "%s", scope);
    st->self = edist_self();
    if (getrandom(&st->seed, sizeof st->seed, GRND_NONBLOCK) != (ssize_t)sizeof st->seed)
        st->seed = edi_now_ns();
    edi_htab_init(&st->groups);
    edi_htab_init(&st->peer_index);
    edi_htab_init(&st->locals);
    edi_htab_init(&st->mons_by_ref);
    edi_htab_init(&st->mons_by_group);
    st->change_epoch = 1;
    st->free_peer = -1;
    edist_buf_init(&st->out);
    edist_buf_init(&st->tmp);
    if (edist_at_exit(pg_free, st) != 0) {
        pg_free(st);
        return;
    }
    if (!(st->pat = edi_svc_patterns_get(&pg_patterns)))
        return;
    if (s->cfg.monitor_nodes)
        s->cfg.monitor_nodes(s->cfg.user, st->self, 0);
    if (s->cfg.nodes) {
        begin_discover(st);
        s->cfg.nodes(s->cfg.user, EDI_NODES_VISIBLE, add_discover_target, st);
    }
    for (;;) {
        edist_term_view m, vars[4];
        if (edist_receive(NULL, NULL, -1, &m) != 0)
            continue;
        int which = -1;
        for (int i = 0; i < PP_COUNT && which < 0; i++) {
            memset(vars, 0, sizeof vars);
            if (edist_match(st->pat[i], m.ptr, m.len, vars) == 1)
                which = i;
        }
#define V(name) var_of(st, which, vars, name)
        edist_procid peer;
        switch (which) {
        case PP_DISCOVER:
            if (edi_svc_pid(V("Peer"), &peer) == 0)
                on_discover(st, peer);
            break;
        case PP_SYNC:
            if (edi_svc_pid(V("Peer"), &peer) == 0)
                on_sync(st, peer, V("Groups"));
            break;
        case PP_JOIN:
            if (edi_svc_pid(V("Peer"), &peer) == 0)
                on_join(st, peer, V("Group"), V("Pids"));
            break;
        case PP_LEAVE:
            if (edi_svc_pid(V("Peer"), &peer) == 0)
                on_leave(st, peer, V("Pids"), V("Groups"));
            break;
        case PP_DOWN:
            if (edi_svc_pid(V("Pid"), &peer) == 0)
                on_down(st, V("Ref"), peer);
            break;
        case PP_NODEUP: {
            edist_term_view node = V("Node");
            edist_cursor c;
            edist_atom a;
            edist_cursor_init(&c, node.ptr, node.len);
            if (edist_dec_atom(&c, &a) == 0) {
                begin_discover(st);
                add_discover_target(st, a.ptr, a.len);
            }
            break;
        }
        case PP_CALL:
            on_call(st, V("From"), V("Tag"), V("Req"));
            break;
        default:
            break; /* nodedown and anything else: ignored */
        }
#undef V
        if (st->nchanges)
            changes_flush(st);
    }
}

void edi_svc_pg_main(void *arg)
{
    pg_run(arg, "pg");
}

/* A scope started with pg:start/1 (edist_pg_start_scope). */
typedef struct scope_start {
    edi_services *s;
    char name[EDIST_ATOM_MAX_BYTES + 1];
    bool abandoned; /* its name could not be registered: just end */
} scope_start;

static void scope_main(void *arg)
{
    scope_start x = *(scope_start *)arg;
    free(arg);
    if (!x.abandoned)
        pg_run(x.s, x.name);
}

/* {start_scope, Name}: {ok, Pid}, or {error, {already_started, Pid}} as
 * pg:start/1 answers when the name is taken. */
static void start_scope(pg_state *st, edist_term_view name, edist_buf *b)
{
    scope_start *x = calloc(1, sizeof *x);
    edist_cursor c;
    edist_cursor_init(&c, name.ptr, name.len);
    if (!x || edist_dec_atom_copy(&c, x->name, sizeof x->name) != 0) {
        free(x);
        edist_enc_atom(b, "badarg", 6);
        return;
    }
    x->s = st->s;
    char name_copy[sizeof x->name];
    memcpy(name_copy, x->name, sizeof name_copy); /* x goes to the new process */
    edist_procid pid;
    if (edist_runtime_whereis(st->s->rt, name_copy, &pid) == 0) {
        free(x);
        edist_enc_tuple(b, 2);
        edist_enc_atom(b, "error", 5);
        edist_enc_tuple(b, 2);
        edist_enc_atom(b, "already_started", 15);
        edist_enc_procid(b, pid);
        return;
    }
    if (edi_rt_spawn_here(st->s->rt, scope_main, x, &pid) != 0) {
        free(x);
        edist_enc_atom(b, "error", 5);
        return;
    }
    /* registered before it runs: nothing can take the name between */
    if (edist_runtime_register(st->s->rt, name_copy, pid) != 0) {
        /* it has not run yet (same shard, and we have not yielded): it
         * frees x and ends when it does */
        x->abandoned = true;
        edist_enc_atom(b, "error", 5);
        return;
    }
    edist_enc_tuple(b, 2);
    edist_enc_atom(b, "ok", 2);
    edist_enc_procid(b, pid);
}

/* ---- the client calls (include/edist/pg.h) ------------------------------------------------ */

#define DEFAULT_SCOPE "pg"

/* gen_server:call(Scope, Req): the reply term appended to out (reset). */
static int pg_call(const char *scope, edist_buf *req, edist_buf *out)
{
    int rc = edist_buf_error(req);
    if (rc)
        return rc;
    if (!scope || !*scope)
        return edist_set_error(EDIST_EINVAL, "pg: no scope");
    rc = edi_svc_call(NULL, scope, NULL, NULL, req->data, req->len, out, PG_CALL_TIMEOUT_MS);
    if (rc == EDIST_ECLOSED)
        return edist_set_error(EDIST_ENOTFOUND, "pg: no scope process %s on this node", scope);
    if (rc == EDIST_ETIMEDOUT)
        return edist_set_error(rc, "pg: no answer from the scope process %s", scope);
    return rc;
}

static int group_view(const void *group, size_t len, edist_term_view *v)
{
    return edi_svc_term_arg("pg", "group", group, len, v);
}

/* {Op, Group} or {Op, Group, Pid} to the scope; the reply in out. */
static int pg_request(const char *scope, const char *op, const void *group, size_t len,
                      const edist_procid *pid, edist_buf *out)
{
    edist_term_view g = {0};
    int rc = group_view(group, len, &g);
    if (rc)
        return rc;
    edist_buf req;
    edist_buf_init(&req);
    edist_enc_tuple(&req, pid ? 3 : 2);
    edist_enc_atomz(&req, op);
    edist_enc_raw(&req, g.ptr, g.len);
    if (pid)
        edist_enc_procid(&req, *pid);
    rc = pg_call(scope, &req, out);
    edist_buf_free(&req);
    return rc;
}

static int join_or_leave(const char *scope, const char *op, const void *group, size_t len,
                         edist_procid pid)
{
    edist_buf r;
    edist_buf_init(&r);
    int rc = pg_request(scope, op, group, len, &pid, &r);
    if (rc == 0) {
        edist_term_view v = {r.data, r.len};
        if (edi_term_is_atom(v, "not_joined"))
            rc = edist_set_error(EDIST_ENOTFOUND, "pg: the process had not joined the group");
        else if (!edi_term_is_atom(v, "ok"))
            rc = edist_set_error(EDIST_EINVAL, "pg: not a live process of this node");
    }
    edist_buf_free(&r);
    return rc;
}

int edist_pg_join_in(const char *scope, const void *group, size_t len, edist_procid pid)
{
    return join_or_leave(scope, "join_local", group, len, pid);
}

int edist_pg_leave_in(const char *scope, const void *group, size_t len, edist_procid pid)
{
    return join_or_leave(scope, "leave_local", group, len, pid);
}

int edist_pg_get_members_in(const char *scope, const void *group, size_t len, edist_buf *out)
{
    if (!out)
        return edist_set_error(EDIST_EINVAL, "pg: no output");
    return pg_request(scope, "get_members", group, len, NULL, out);
}

int edist_pg_get_local_members_in(const char *scope, const void *group, size_t len,
                                  edist_buf *out)
{
    if (!out)
        return edist_set_error(EDIST_EINVAL, "pg: no output");
    return pg_request(scope, "get_local_members", group, len, NULL, out);
}

int edist_pg_which_groups_in(const char *scope, edist_buf *out)
{
    if (!out)
        return edist_set_error(EDIST_EINVAL, "pg: no output");
    edist_buf req;
    edist_buf_init(&req);
    edist_enc_atom(&req, "which_groups", 12);
    int rc = pg_call(scope, &req, out);
    edist_buf_free(&req);
    return rc;
}

int edist_pg_join(const void *group, size_t len, edist_procid pid)
{
    return edist_pg_join_in(DEFAULT_SCOPE, group, len, pid);
}

int edist_pg_leave(const void *group, size_t len, edist_procid pid)
{
    return edist_pg_leave_in(DEFAULT_SCOPE, group, len, pid);
}

int edist_pg_get_members(const void *group, size_t len, edist_buf *out)
{
    return edist_pg_get_members_in(DEFAULT_SCOPE, group, len, out);
}

int edist_pg_get_local_members(const void *group, size_t len, edist_buf *out)
{
    return edist_pg_get_local_members_in(DEFAULT_SCOPE, group, len, out);
}

int edist_pg_which_groups(edist_buf *out)
{
    return edist_pg_which_groups_in(DEFAULT_SCOPE, out);
}

int edist_pg_start_scope(const char *scope, edist_procid *pid)
{
    if (!scope || !*scope)
        return edist_set_error(EDIST_EINVAL, "pg: no scope name");
    edist_buf req, out;
    edist_buf_init(&req);
    edist_buf_init(&out);
    edist_enc_tuple(&req, 2);
    edist_enc_atom(&req, "start_scope", 11);
    edist_enc_atomz(&req, scope);
    int rc = pg_call(DEFAULT_SCOPE, &req, &out);
    edist_cursor c;
    uint32_t ar;
    edist_atom tag;
    edist_procid p = EDIST_PROCID_NULL;
    if (rc == 0) {
        edist_cursor_init(&c, out.data, out.len);
        if (edist_dec_tuple(&c, &ar) != 0 || ar != 2 || edist_dec_atom(&c, &tag) != 0)
            rc = edist_set_error(EDIST_ENOMEM, "pg: the scope %s could not be started", scope);
        else if (edist_atom_eq(&tag, "ok"))
            rc = edist_dec_procid(&c, &p);
        else
            rc = edist_set_error(EDIST_EEXIST, "pg: the name %s is taken", scope);
    }
    if (pid)
        *pid = p;
    edist_buf_free(&req);
    edist_buf_free(&out);
    return rc;
}

int edist_pg_monitor(const char *scope, const void *group, size_t len, edist_ref *ref,
                     edist_buf *out)
{
    if (!ref || !out)
        return edist_set_error(EDIST_EINVAL, "pg: no output");
    edist_buf req, r;
    edist_buf_init(&req);
    edist_buf_init(&r);
    int rc = 0;
    if (group) {
        edist_term_view g = {0};
        if ((rc = group_view(group, len, &g)) != 0)
            return rc;
        edist_enc_tuple(&req, 2);
        edist_enc_atom(&req, "monitor", 7);
        edist_enc_raw(&req, g.ptr, g.len);
    } else {
        edist_enc_atom(&req, "monitor", 7);
    }
    rc = pg_call(scope ? scope : DEFAULT_SCOPE, &req, &r);
    edist_cursor c;
    uint32_t ar;
    edist_term_view rest;
    if (rc == 0) {
        edist_cursor_init(&c, r.data, r.len);
        if (edist_dec_tuple(&c, &ar) != 0 || ar != 2 || edist_dec_ref(&c, ref) != 0 ||
            edist_dec_term(&c, &rest) != 0) {
            rc = edist_set_error(EDIST_ENOMEM, "pg: the monitor could not be set");
        } else {
            edist_buf_reset(out);
            rc = edist_buf_append(out, rest.ptr, rest.len);
        }
    }
    edist_buf_free(&req);
    edist_buf_free(&r);
    return rc;
}

int edist_pg_demonitor(const char *scope, const edist_ref *ref)
{
    if (!ref)
        return edist_set_error(EDIST_EINVAL, "pg: no ref");
    edist_buf req, r;
    edist_buf_init(&req);
    edist_buf_init(&r);
    edist_enc_tuple(&req, 2);
    edist_enc_atom(&req, "demonitor", 9);
    edist_enc_ref(&req, ref);
    int rc = pg_call(scope ? scope : DEFAULT_SCOPE, &req, &r);
    bool was = rc == 0 && edi_term_is_atom((edist_term_view){r.data, r.len}, "ok");
    edist_buf_free(&req);
    edist_buf_free(&r);
    if (rc)
        return rc;
    /* as pg:demonitor/2: what was told before is flushed */
    uint8_t mem[EDIST_ATOM_MAX_BYTES + 64];
    edist_buf rb;
    edist_buf_init_fixed(&rb, mem, sizeof mem);
    edist_enc_ref(&rb, ref);
    static const char *const texts[] = {"{R, _, _, _}"};
    static edi_svc_patterns told = EDI_SVC_PATTERNS(texts);
    edist_pattern *const *p = edi_svc_patterns_get(&told);
    for (;;) {
        edist_term_view vars[1] = {{rb.data, rb.len}}, m;
        if (!p || edist_receive(p[0], vars, 0, &m) != 0)
            break;
    }
    return was ? 0 : edist_set_error(EDIST_ENOTFOUND, "pg: no such monitor");
}

/* ---- pg:* and edist_demo:pg_join/1 exports --------------------------------------------------- */

/* Every pg:F/N has a form with the scope first, pg:F/N+1: each export
 * serves both. The scope in scope, and *args moved past it; an exception
 * badarg when it is not an atom. */
static int scope_of(const edist_term_view **args, uint32_t arity, uint32_t unscoped, char *scope,
                    size_t cap)
{
    if (arity == unscoped) {
        snprintf(scope, cap, "%s", DEFAULT_SCOPE);
        return 0;
    }
    int rc = edi_svc_atom_arg((*args)[0], scope, cap);
    if (rc == 0)
        (*args)++;
    return rc;
}

#define SCOPE_OR_RAISE(unscoped)                                                                   \
    char scope[EDIST_ATOM_MAX_BYTES + 1];                                                          \
    (void)user;                                                                                    \
    int scope_rc = scope_of(&args, arity, (unscoped), scope, sizeof scope);                        \
    if (scope_rc)                                                                                  \
        return scope_rc

/* pg.erl's ensure_local: pids (a pid or a list) holds only pids of this
 * node; else *bad is the first that is not (the whole term when it is
 * neither a pid nor a list). */
static bool all_local(edist_term_view pids, edist_term_view *bad)
{
    uint32_t here = edist_self().node;
    edist_cursor c;
    edist_procid p;
    uint32_t n;
    *bad = pids;
    edist_cursor_init(&c, pids.ptr, pids.len);
    if (edist_dec_procid(&c, &p) == 0)
        return p.node == here;
    edist_cursor_init(&c, pids.ptr, pids.len);
    if (edist_dec_list(&c, &n) != 0)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        edist_term_view el;
        edist_cursor ec;
        if (edist_dec_term(&c, &el) != 0)
            return false;
        edist_cursor_init(&ec, el.ptr, el.len);
        if (edist_dec_procid(&ec, &p) != 0 || p.node != here) {
            *bad = el;
            return false;
        }
    }
    return true;
}

/* pg:join/leave with a pid or a list of pids, in scope: the reply
 * (ok | not_joined) in result, or an exception: error {nolocal, Bad} as
 * pg.erl's for a pid of another node or a term that is no pid, badarg
 * otherwise. */
static int ex_join_leave(const char *scope, bool join, edist_term_view group,
                         edist_term_view pids, edist_buf *result)
{
    edist_term_view bad;
    if (!all_local(pids, &bad)) {
        /* on the stack: a raise does not return (a Bad too large for it
         * is reported as badarg) */
        uint8_t mem[1024];
        edist_buf e;
        edist_buf_init_fixed(&e, mem, sizeof mem);
        edist_enc_tuple(&e, 2);
        edist_enc_atomz(&e, "nolocal");
        edist_enc_raw(&e, bad.ptr, bad.len);
        return edist_buf_error(&e) ? edi_raise_error_atom("badarg")
                                   : edi_raise(EDI_RAISE_ERROR, e.data, e.len, NULL, 0);
    }
    edist_buf req, r;
    edist_buf_init(&req);
    edist_buf_init(&r);
    edist_enc_tuple(&req, 3);
    edist_enc_atomz(&req, join ? "join_local" : "leave_local");
    edist_enc_raw(&req, group.ptr, group.len);
    edist_enc_raw(&req, pids.ptr, pids.len);
    int rc = pg_call(scope, &req, &r);
    edist_term_view v = {r.data, r.len};
    bool ok = rc == 0 && (edi_term_is_atom(v, "ok") || (!join && edi_term_is_atom(v, "not_joined")));
    if (ok)
        rc = edist_enc_raw(result, r.data, r.len);
    edist_buf_free(&req);
    edist_buf_free(&r);
    return ok ? rc : edi_raise_error_atom("badarg");
}

static int ex_pg_join(void *user, const edist_term_view *args, uint32_t arity, edist_buf *result)
{
    SCOPE_OR_RAISE(2);
    return ex_join_leave(scope, true, args[0], args[1], result);
}

static int ex_pg_leave(void *user, const edist_term_view *args, uint32_t arity, edist_buf *result)
{
    SCOPE_OR_RAISE(2);
    return ex_join_leave(scope, false, args[0], args[1], result);
}

static int ex_pg_members(void *user, const edist_term_view *args, uint32_t arity,
                         edist_buf *result)
{
    SCOPE_OR_RAISE(1);
    return edist_pg_get_members_in(scope, args[0].ptr, args[0].len, result);
}

static int ex_pg_local_members(void *user, const edist_term_view *args, uint32_t arity,
                               edist_buf *result)
{
    SCOPE_OR_RAISE(1);
    return edist_pg_get_local_members_in(scope, args[0].ptr, args[0].len, result);
}

static int ex_pg_which_groups(void *user, const edist_term_view *args, uint32_t arity,
                              edist_buf *result)
{
    SCOPE_OR_RAISE(0);
    return edist_pg_which_groups_in(scope, result);
}

/* pg:start(Scope): {ok, Pid} or {error, {already_started, Pid}} */
static int ex_pg_start(void *user, const edist_term_view *args, uint32_t arity,
                       edist_buf *result)
{
    SCOPE_OR_RAISE(0); /* pg:start/1 has only the scoped form */
    edist_procid pid;
    int rc = edist_pg_start_scope(scope, &pid);
    if (rc && rc != EDIST_EEXIST)
        return rc;
    if (rc == EDIST_EEXIST && edist_whereis(scope, &pid) != 0)
        return edi_raise_error_atom("badarg");
    edist_enc_tuple(result, 2);
    if (rc == 0) {
        edist_enc_atom(result, "ok", 2);
    } else {
        edist_enc_atom(result, "error", 5);
        edist_enc_tuple(result, 2);
        edist_enc_atom(result, "already_started", 15);
    }
    return edist_enc_procid(result, pid);
}

static int ex_demo_pg_join(void *user, const edist_term_view *args, uint32_t arity,
                           edist_buf *result)
{
    (void)user;
    (void)arity;
    edist_procid pid;
    int rc = edist_spawn(edi_svc_idle_main, NULL, &pid);
    if (rc)
        return rc;
    rc = edist_pg_join(args[0].ptr, args[0].len, pid);
    if (rc) {
        edist_exit_signal(pid, EDIST_REASON_KILL.ptr, EDIST_REASON_KILL.len);
        return rc;
    }
    return edist_enc_procid(result, pid);
}

int edi_svc_export_pg(edi_services *s)
{
    static const edi_svc_export table[] = {
        {"pg", "join", 2, ex_pg_join},
        {"pg", "leave", 2, ex_pg_leave},
        {"pg", "get_members", 1, ex_pg_members},
        {"pg", "get_local_members", 1, ex_pg_local_members},
        {"pg", "which_groups", 0, ex_pg_which_groups},
        {"pg", "join", 3, ex_pg_join},
        {"pg", "leave", 3, ex_pg_leave},
        {"pg", "get_members", 2, ex_pg_members},
        {"pg", "get_local_members", 2, ex_pg_local_members},
        {"pg", "which_groups", 1, ex_pg_which_groups},
        {"pg", "start", 1, ex_pg_start},
        {"edist_demo", "pg_join", 1, ex_demo_pg_join},
    };
    return edi_svc_export_table(s, table, sizeof table / sizeof table[0]);
}
