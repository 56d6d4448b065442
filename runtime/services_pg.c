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
 * State: flat arrays searched linearly (entries are (group, pid, origin)
 * triples); groups are compared as terms (=:=). Sized for the hundreds
 * to low thousands of members a scope usually holds. */
#include <stdlib.h>
#include <string.h>

#include "edist/pg.h"
#include "runtime/runtime_internal.h"
#include "runtime/services_internal.h"

#define PG_CALL_TIMEOUT_MS 5000

/* A group with members; a slot whose term is NULL is free (a group goes
 * when its last member does, so churning group names cost nothing). */
typedef struct pg_group {
    uint8_t *term; /* encoded, owned */
    size_t len;
    size_t members; /* entries naming it */
} pg_group;

/* One membership: pid joined group once. origin -1: a local member;
 * otherwise the index of the peer scope that told us. */
typedef struct pg_entry {
    uint32_t group;
    int32_t origin;
    edist_procid pid;
} pg_entry;

typedef struct pg_peer {
    edist_procid scope;
    edist_ref mref;
    bool live;
} pg_peer;

/* A monitored local member. */
typedef struct pg_local {
    edist_procid pid;
    edist_ref mref;
} pg_local;

typedef struct pg_state {
    edi_services *s;
    edist_procid self;
    pg_group *groups;
    size_t ngroups, groups_cap;
    pg_entry *entries;
    size_t nentries, entries_cap;
    pg_peer *peers;
    size_t npeers, peers_cap;
    pg_local *locals;
    size_t nlocals, locals_cap;
    edist_buf out, tmp;
} pg_state;

/* Grow *arr to hold one more element of size sz. */
static int grow(void **arr, size_t *cap, size_t n, size_t sz)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, ncap * sz);
    if (!p)
        return EDIST_ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

static void pg_free(void *arg)
{
    pg_state *st = arg;
    for (size_t i = 0; i < st->ngroups; i++)
        free(st->groups[i].term);
    free(st->groups);
    free(st->entries);
    free(st->peers);
    free(st->locals);
    edist_buf_free(&st->out);
    edist_buf_free(&st->tmp);
    free(st);
}

/* ---- groups and entries ---------------------------------------------------- */

static int64_t group_find(const pg_state *st, edist_term_view g)
{
    for (size_t i = 0; i < st->ngroups; i++)
        if (st->groups[i].term &&
            edist_term_equal(st->groups[i].term, st->groups[i].len, g.ptr, g.len) == 1)
            return (int64_t)i;
    return -1;
}

static int64_t group_intern(pg_state *st, edist_term_view g)
{
    int64_t i = group_find(st, g);
    if (i >= 0)
        return i;
    size_t slot = st->ngroups;
    for (size_t j = 0; j < st->ngroups && slot == st->ngroups; j++)
        if (!st->groups[j].term)
            slot = j;
    if (slot == st->ngroups &&
        grow((void **)&st->groups, &st->groups_cap, st->ngroups, sizeof *st->groups))
        return EDIST_ENOMEM;
    uint8_t *copy = malloc(g.len);
    if (!copy)
        return EDIST_ENOMEM;
    memcpy(copy, g.ptr, g.len);
    st->groups[slot] = (pg_group){copy, g.len, 0};
    if (slot == st->ngroups)
        st->ngroups++;
    return (int64_t)slot;
}

/* Free group gi's slot if nothing names it (interned for a join that
 * added nobody). */
static void group_drop_unused(pg_state *st, uint32_t gi)
{
    pg_group *g = &st->groups[gi];
    if (g->members == 0) {
        free(g->term);
        g->term = NULL;
    }
}

/* One entry naming group gi is gone. */
static void group_unref(pg_state *st, uint32_t gi)
{
    st->groups[gi].members--;
    group_drop_unused(st, gi);
}

static int entry_add(pg_state *st, uint32_t group, int32_t origin, edist_procid pid)
{
    if (grow((void **)&st->entries, &st->entries_cap, st->nentries, sizeof *st->entries))
        return EDIST_ENOMEM;
    st->entries[st->nentries++] = (pg_entry){group, origin, pid};
    st->groups[group].members++;
    return 0;
}

/* Remove one entry of (group, origin, pid); order is kept (newest last). */
static bool entry_remove_one(pg_state *st, uint32_t group, int32_t origin, edist_procid pid)
{
    for (size_t i = st->nentries; i-- > 0;) {
        pg_entry *e = &st->entries[i];
        if (e->group == group && e->origin == origin && edist_procid_equal(e->pid, pid)) {
            memmove(e, e + 1, (st->nentries - i - 1) * sizeof *e);
            st->nentries--;
            group_unref(st, group);
            return true;
        }
    }
    return false;
}

/* Remove every entry for which drop(e) is true. */
static void entries_filter(pg_state *st, bool (*drop)(const pg_entry *e, const void *ctx),
                           const void *ctx)
{
    size_t w = 0;
    for (size_t r = 0; r < st->nentries; r++) {
        if (drop(&st->entries[r], ctx))
            group_unref(st, st->entries[r].group);
        else
            st->entries[w++] = st->entries[r];
    }
    st->nentries = w;
}

static bool local_entry_of(const pg_entry *e, const void *ctx)
{
    return e->origin < 0 && edist_procid_equal(e->pid, *(const edist_procid *)ctx);
}

static bool from_origin(const pg_entry *e, const void *ctx)
{
    return e->origin == *(const int32_t *)ctx;
}

/* Call fn for each pid of v: a pid, or a proper list of pids. EDIST_ETYPE
 * for anything else (nothing is called then). */
static int for_each_pid(edist_term_view v, int (*fn)(void *ctx, edist_procid pid), void *ctx)
{
    edist_cursor c;
    edist_procid one;
    edist_cursor_init(&c, v.ptr, v.len);
    if (edist_dec_procid(&c, &one) == 0)
        return fn(ctx, one);
    /* validate first so that a bad list changes nothing */
    for (int pass = 0; pass < 2; pass++) {
        edist_cursor_init(&c, v.ptr, v.len);
        uint32_t n;
        if (edist_dec_list(&c, &n) != 0)
            return EDIST_ETYPE;
        for (uint32_t i = 0; i < n; i++) {
            edist_procid p;
            if (edist_dec_procid(&c, &p) != 0)
                return EDIST_ETYPE;
            if (pass == 1) {
                int rc = fn(ctx, p);
                if (rc)
                    return rc;
            }
        }
        if (n > 0 && edist_dec_nil(&c) != 0)
            return EDIST_ETYPE;
    }
    return 0;
}

/* ---- peers and local members -------------------------------------------------- */

static int64_t peer_find(const pg_state *st, edist_procid scope)
{
    for (size_t i = 0; i < st->npeers; i++)
        if (st->peers[i].live && edist_procid_equal(st->peers[i].scope, scope))
            return (int64_t)i;
    return -1;
}

static int64_t peer_add(pg_state *st, edist_procid scope)
{
    size_t slot = st->npeers;
    for (size_t i = 0; i < st->npeers; i++)
        if (!st->peers[i].live) {
            slot = i;
            break;
        }
    if (slot == st->npeers &&
        grow((void **)&st->peers, &st->peers_cap, st->npeers, sizeof *st->peers))
        return EDIST_ENOMEM;
    pg_peer *p = &st->peers[slot];
    p->scope = scope;
    p->live = true;
    int rc = edist_monitor(scope, &p->mref);
    if (rc) {
        p->live = false;
        return rc;
    }
    if (slot == st->npeers)
        st->npeers++;
    return (int64_t)slot;
}

static int64_t local_find(const pg_state *st, edist_procid pid)
{
    for (size_t i = 0; i < st->nlocals; i++)
        if (edist_procid_equal(st->locals[i].pid, pid))
            return (int64_t)i;
    return -1;
}

static bool has_local_entries(const pg_state *st, edist_procid pid)
{
    for (size_t i = 0; i < st->nentries; i++)
        if (st->entries[i].origin < 0 && edist_procid_equal(st->entries[i].pid, pid))
            return true;
    return false;
}

static void local_forget(pg_state *st, size_t i, bool demonitor)
{
    if (demonitor)
        edist_demonitor(&st->locals[i].mref, EDIST_DEMONITOR_FLUSH);
    st->locals[i] = st->locals[--st->nlocals];
}

/* ---- sending ----------------------------------------------------------------- */

/* A full queue to a peer (busy_dist_port) holds the scope process back, as
 * erts suspends pg.erl's sender: a dropped join or leave would leave the
 * views apart for good. A connection that goes away ends the wait. */
static int send_waiting(pg_state *st, edist_procid to, const edist_buf *m)
{
    int rc = edist_buf_error(m);
    return rc ? rc : edi_svc_send(st->s, to, m->data, m->len, EDI_SVC_WAIT);
}

static int send_out(pg_state *st, edist_procid to)
{
    return send_waiting(st, to, &st->out);
}

/* The message in st->out to every known peer. */
static void broadcast(pg_state *st)
{
    for (size_t i = 0; i < st->npeers; i++)
        if (st->peers[i].live)
            send_waiting(st, st->peers[i].scope, &st->out);
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
        edi_svc_send_name(st->s, "pg", node, st->out.data, st->out.len);
}

/* {'$gen_cast', {sync, Self, [{Group, [Pid]}]}} to peer. */
static void send_sync(pg_state *st, edist_procid peer)
{
    edist_buf *b = &st->out;
    edist_buf_reset(b);
    edist_enc_tuple(b, 2);
    edist_enc_atom(b, "$gen_cast", 9);
    edist_enc_tuple(b, 3);
    edist_enc_atom(b, "sync", 4);
    edist_enc_procid(b, st->self);
    uint32_t ngroups = 0;
    for (size_t g = 0; g < st->ngroups; g++) {
        uint32_t n = 0;
        for (size_t i = 0; i < st->nentries; i++)
            n += st->entries[i].group == g && st->entries[i].origin < 0;
        if (n == 0)
            continue;
        if (ngroups++ == 0)
            edist_buf_reset(&st->tmp);
        edist_enc_tuple(&st->tmp, 2);
        edist_enc_raw(&st->tmp, st->groups[g].term, st->groups[g].len);
        edist_enc_list(&st->tmp, n);
        for (size_t i = st->nentries; i-- > 0;)
            if (st->entries[i].group == g && st->entries[i].origin < 0)
                edist_enc_procid(&st->tmp, st->entries[i].pid);
        edist_enc_nil(&st->tmp);
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
    uint32_t group;
    int32_t origin;
} remote_join;

static int join_remote_pid(void *ctx, edist_procid pid)
{
    remote_join *j = ctx;
    return entry_add(j->st, j->group, j->origin, pid);
}

static void on_sync(pg_state *st, edist_procid peer, edist_term_view groups)
{
    int64_t p = peer_find(st, peer);
    if (p < 0 && (p = peer_add(st, peer)) < 0)
        return;
    int32_t origin = (int32_t)p;
    entries_filter(st, from_origin, &origin);
    edist_cursor c;
    edist_cursor_init(&c, groups.ptr, groups.len);
    uint32_t n;
    if (edist_dec_list(&c, &n) != 0)
        return;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t arity;
        edist_term_view g, pids;
        if (edist_dec_tuple(&c, &arity) != 0 || arity != 2 || edist_dec_term(&c, &g) != 0 ||
            edist_dec_term(&c, &pids) != 0)
            return;
        int64_t gi = group_intern(st, g);
        if (gi < 0)
            return;
        remote_join j = {st, (uint32_t)gi, origin};
        for_each_pid(pids, join_remote_pid, &j);
        group_drop_unused(st, (uint32_t)gi);
    }
}

static void on_join(pg_state *st, edist_procid peer, edist_term_view group,
                    edist_term_view pids)
{
    /* A join from a scope we do not know (yet, or any more) is dropped,
     * as pg.erl does: its sync will tell. */
    int64_t p = peer_find(st, peer);
    if (p < 0)
        return;
    int64_t gi = group_intern(st, group);
    if (gi < 0)
        return;
    remote_join j = {st, (uint32_t)gi, (int32_t)p};
    for_each_pid(pids, join_remote_pid, &j);
    group_drop_unused(st, (uint32_t)gi);
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
        int64_t gi = group_find(l->st, g);
        if (gi >= 0)
            entry_remove_one(l->st, (uint32_t)gi, l->origin, pid);
    }
    return 0;
}

static void on_leave(pg_state *st, edist_procid peer, edist_term_view pids,
                     edist_term_view groups)
{
    int64_t p = peer_find(st, peer);
    if (p < 0)
        return;
    remote_leave l = {st, (int32_t)p, groups};
    for_each_pid(pids, leave_remote_pid, &l);
}

static void on_down(pg_state *st, edist_procid pid)
{
    int64_t li = local_find(st, pid);
    if (li >= 0) {
        /* {leave, Self, Pid, Groups}: every group it was in, once per join */
        edist_buf_reset(&st->tmp);
        uint32_t n = 0;
        for (size_t i = 0; i < st->nentries; i++) {
            const pg_entry *e = &st->entries[i];
            if (local_entry_of(e, &pid)) {
                edist_enc_raw(&st->tmp, st->groups[e->group].term, st->groups[e->group].len);
                n++;
            }
        }
        entries_filter(st, local_entry_of, &pid);
        local_forget(st, (size_t)li, false);
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
    int64_t p = peer_find(st, pid);
    if (p >= 0) {
        int32_t origin = (int32_t)p;
        entries_filter(st, from_origin, &origin);
        st->peers[p].live = false;
    }
}

/* ---- local calls ------------------------------------------------------------------- */

typedef struct local_op {
    pg_state *st;
    uint32_t group;
    int done; /* pids acted on */
} local_op;

static int check_local(void *ctx, edist_procid pid)
{
    local_op *op = ctx;
    return pid.node == edi_rt_node_index(op->st->s->rt) && edist_is_process_alive(pid)
               ? 0
               : EDIST_EINVAL;
}

static int join_local_pid(void *ctx, edist_procid pid)
{
    local_op *op = ctx;
    pg_state *st = op->st;
    if (local_find(st, pid) < 0) {
        if (grow((void **)&st->locals, &st->locals_cap, st->nlocals, sizeof *st->locals))
            return EDIST_ENOMEM;
        pg_local *l = &st->locals[st->nlocals];
        l->pid = pid;
        int rc = edist_monitor(pid, &l->mref);
        if (rc)
            return rc;
        st->nlocals++;
    }
    int rc = entry_add(st, op->group, -1, pid);
    if (rc == 0)
        op->done++;
    return rc;
}

static int leave_local_pid(void *ctx, edist_procid pid)
{
    local_op *op = ctx;
    pg_state *st = op->st;
    if (!entry_remove_one(st, op->group, -1, pid))
        return 0;
    op->done++;
    if (!has_local_entries(st, pid)) {
        int64_t li = local_find(st, pid);
        if (li >= 0)
            local_forget(st, (size_t)li, true);
    }
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

/* [Pid] of group gi (local only or all), newest first. */
static void enc_members(pg_state *st, edist_buf *b, int64_t gi, bool local_only)
{
    uint32_t n = 0;
    for (size_t i = 0; gi >= 0 && i < st->nentries; i++)
        n += st->entries[i].group == gi && (!local_only || st->entries[i].origin < 0);
    if (n) {
        edist_enc_list(b, n);
        for (size_t i = st->nentries; i-- > 0;)
            if (st->entries[i].group == gi && (!local_only || st->entries[i].origin < 0))
                edist_enc_procid(b, st->entries[i].pid);
    }
    edist_enc_nil(b);
}

static void enc_which_groups(pg_state *st, edist_buf *b)
{
    uint32_t n = 0;
    for (size_t g = 0; g < st->ngroups; g++) {
        if (!st->groups[g].term)
            continue;
        if (n++ == 0)
            edist_buf_reset(&st->tmp);
        edist_enc_raw(&st->tmp, st->groups[g].term, st->groups[g].len);
    }
    if (n) {
        edist_enc_list(b, n);
        edist_enc_raw(b, st->tmp.data, st->tmp.len);
    }
    edist_enc_nil(b);
}

/* The reply to one call, appended to st->out after "{Tag,"; badarg for
 * requests not understood. True when a join or leave changed something:
 * the peers must hear of it. */
static bool handle_call(pg_state *st, edist_term_view req, edist_term_view *group,
                        edist_term_view *pids, bool *join)
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
        local_op op = {st, 0, 0};
        if (for_each_pid(*pids, check_local, &op) != 0) {
            edist_enc_atom(b, "badarg", 6);
            return false;
        }
        int64_t gi = *join ? group_intern(st, *group) : group_find(st, *group);
        if (gi >= 0) {
            op.group = (uint32_t)gi;
            for_each_pid(*pids, *join ? join_local_pid : leave_local_pid, &op);
            if (*join)
                group_drop_unused(st, (uint32_t)gi);
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
        enc_members(st, b, group_find(st, *group), false);
        return false;
    }
    if (tuple && arity == 2 && edist_atom_eq(&what, "get_local_members")) {
        enc_members(st, b, group_find(st, *group), true);
        return false;
    }
    edist_cursor_init(&c, req.ptr, req.len);
    if (edist_dec_atom(&c, &what) == 0 && edist_atom_eq(&what, "which_groups")) {
        enc_which_groups(st, b);
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
    edist_enc_tuple(&st->out, 2);
    edist_enc_raw(&st->out, tag.ptr, tag.len);
    edist_term_view group = {0}, pids = {0};
    bool join = false;
    bool changed = handle_call(st, req, &group, &pids, &join);
    send_out(st, from);
    if (changed)
        broadcast_change(st, join, group, pids);
}

/* ---- the process ------------------------------------------------------------------------ */

void edi_svc_pg_main(void *arg)
{
    edi_services *s = arg;
    pg_state *st = calloc(1, sizeof *st);
    if (!st)
        return;
    st->s = s;
    st->self = edist_self();
    edist_buf_init(&st->out);
    edist_buf_init(&st->tmp);
    if (edist_at_exit(pg_free, st) != 0) {
        pg_free(st);
        return;
    }
    if (s->cfg.monitor_nodes)
        s->cfg.monitor_nodes(s->cfg.user, st->self);
    if (s->cfg.nodes) {
        begin_discover(st);
        s->cfg.nodes(s->cfg.user, EDI_NODES_VISIBLE, add_discover_target, st);
    }
    for (;;) {
        edist_term_view m, vars[4];
        if (edist_receive(NULL, NULL, -1, &m) != 0)
            continue;
        int which = -1;
        for (int i = EDI_PAT_PG_DISCOVER; i <= EDI_PAT_PG_CALL && which < 0; i++) {
            memset(vars, 0, sizeof vars);
            if (edist_match(s->pat[i], m.ptr, m.len, vars) == 1)
                which = i;
        }
        edist_procid peer;
        switch (which) {
        case EDI_PAT_PG_DISCOVER:
            if (edi_svc_pid(edi_svc_var(s, which, vars, "Peer"), &peer) == 0)
                on_discover(st, peer);
            break;
        case EDI_PAT_PG_SYNC:
            if (edi_svc_pid(edi_svc_var(s, which, vars, "Peer"), &peer) == 0)
                on_sync(st, peer, edi_svc_var(s, which, vars, "Groups"));
            break;
        case EDI_PAT_PG_JOIN:
            if (edi_svc_pid(edi_svc_var(s, which, vars, "Peer"), &peer) == 0)
                on_join(st, peer, edi_svc_var(s, which, vars, "Group"), edi_svc_var(s, which, vars, "Pids"));
            break;
        case EDI_PAT_PG_LEAVE:
            if (edi_svc_pid(edi_svc_var(s, which, vars, "Peer"), &peer) == 0)
                on_leave(st, peer, edi_svc_var(s, which, vars, "Pids"), edi_svc_var(s, which, vars, "Groups"));
            break;
        case EDI_PAT_PG_DOWN:
            if (edi_svc_pid(edi_svc_var(s, which, vars, "Pid"), &peer) == 0)
                on_down(st, peer);
            break;
        case EDI_PAT_PG_NODEUP: {
            edist_term_view node = edi_svc_var(s, which, vars, "Node");
            edist_cursor c;
            edist_atom a;
            edist_cursor_init(&c, node.ptr, node.len);
            if (edist_dec_atom(&c, &a) == 0) {
                begin_discover(st);
                add_discover_target(st, a.ptr, a.len);
            }
            break;
        }
        case EDI_PAT_PG_CALL:
            on_call(st, edi_svc_var(s, which, vars, "From"), edi_svc_var(s, which, vars, "Tag"),
                    edi_svc_var(s, which, vars, "Req"));
            break;
        default:
            break; /* nodedown and anything else: ignored */
        }
    }
}

/* ---- the client calls (include/edist/pg.h) ------------------------------------------------ */

/* gen_server:call(pg, Req): the reply term appended to out (reset). */
static int pg_call(edist_buf *req, edist_buf *out)
{
    int rc = edist_buf_error(req);
    if (rc)
        return rc;
    edist_procid self = edist_self();
    if (edist_procid_is_null(self))
        return edist_set_error(EDIST_EINVAL, "pg: the caller is not a process");
    edist_ref ref;
    if ((rc = edist_make_ref(&ref)) != 0)
        return rc;
    edist_buf call;
    edist_buf_init(&call);
    edist_enc_tuple(&call, 3);
    edist_enc_atom(&call, "$gen_call", 9);
    edist_enc_tuple(&call, 2);
    edist_enc_procid(&call, self);
    edist_enc_ref(&call, &ref);
    edist_enc_raw(&call, req->data, req->len);
    rc = edist_buf_error(&call);
    if (rc == 0)
        rc = edist_send_name("pg", call.data, call.len);
    edist_buf_free(&call);
    if (rc == EDIST_ENOTFOUND)
        return edist_set_error(rc, "pg: no pg scope process on this node");
    if (rc)
        return rc;
    static const char text[] = "{R, Reply}";
    edist_pattern *p;
    edist_parse_error pe;
    if ((rc = edist_pattern_compile(text, sizeof text - 1, &p, &pe)) != 0)
        return rc;
    uint8_t refbuf[64];
    edist_buf rb;
    edist_buf_init_fixed(&rb, refbuf, sizeof refbuf);
    edist_enc_ref(&rb, &ref);
    edist_term_view vars[2] = {{0}};
    vars[edist_pattern_var_index(p, "R")] = (edist_term_view){rb.data, rb.len};
    edist_term_view m;
    rc = edist_receive(p, vars, PG_CALL_TIMEOUT_MS, &m);
    edist_term_view reply = vars[edist_pattern_var_index(p, "Reply")];
    edist_pattern_free(p);
    if (rc == EDIST_ETIMEDOUT)
        return edist_set_error(rc, "pg: no answer from the scope process");
    if (rc)
        return rc;
    edist_buf_reset(out);
    return edist_buf_append(out, reply.ptr, reply.len);
}

static int group_view(const void *group, size_t len, edist_term_view *v)
{
    const uint8_t *g = group;
    if (!g || len == 0)
        return edist_set_error(EDIST_EINVAL, "pg: no group");
    if (g[0] == EDIST_TAG_VERSION && len > 1) {
        g++;
        len--;
    }
    edist_cursor c;
    edist_cursor_init(&c, g, len);
    edist_term_view t;
    if (edist_dec_term(&c, &t) != 0 || t.len != len)
        return edist_set_error(EDIST_EINVAL, "pg: the group is not one encoded term");
    *v = t;
    return 0;
}

/* {Op, Group} or {Op, Group, Pid} to the scope; the reply in out. */
static int pg_request(const char *op, const void *group, size_t len, const edist_procid *pid,
                      edist_buf *out)
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
    rc = pg_call(&req, out);
    edist_buf_free(&req);
    return rc;
}

static int join_or_leave(const char *op, const void *group, size_t len, edist_procid pid)
{
    edist_buf r;
    edist_buf_init(&r);
    int rc = pg_request(op, group, len, &pid, &r);
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

int edist_pg_join(const void *group, size_t len, edist_procid pid)
{
    return join_or_leave("join_local", group, len, pid);
}

int edist_pg_leave(const void *group, size_t len, edist_procid pid)
{
    return join_or_leave("leave_local", group, len, pid);
}

int edist_pg_get_members(const void *group, size_t len, edist_buf *out)
{
    if (!out)
        return edist_set_error(EDIST_EINVAL, "pg: no output");
    return pg_request("get_members", group, len, NULL, out);
}

int edist_pg_get_local_members(const void *group, size_t len, edist_buf *out)
{
    if (!out)
        return edist_set_error(EDIST_EINVAL, "pg: no output");
    return pg_request("get_local_members", group, len, NULL, out);
}

int edist_pg_which_groups(edist_buf *out)
{
    if (!out)
        return edist_set_error(EDIST_EINVAL, "pg: no output");
    edist_buf req;
    edist_buf_init(&req);
    edist_enc_atom(&req, "which_groups", 12);
    int rc = pg_call(&req, out);
    edist_buf_free(&req);
    return rc;
}

/* ---- pg:* and edist_demo:pg_join/1 exports --------------------------------------------------- */

static int ex_pg_join(void *user, const edist_term_view *args, uint32_t arity, edist_buf *result)
{
    (void)user;
    (void)arity;
    edist_procid pid;
    if (edi_svc_pid(args[1], &pid) != 0 || edist_pg_join(args[0].ptr, args[0].len, pid) != 0)
        return edi_raise_error_atom("badarg");
    return edist_enc_atom(result, "ok", 2);
}

static int ex_pg_leave(void *user, const edist_term_view *args, uint32_t arity, edist_buf *result)
{
    (void)user;
    (void)arity;
    edist_procid pid;
    if (edi_svc_pid(args[1], &pid) != 0)
        return edi_raise_error_atom("badarg");
    int rc = edist_pg_leave(args[0].ptr, args[0].len, pid);
    if (rc && rc != EDIST_ENOTFOUND)
        return edi_raise_error_atom("badarg");
    return rc ? edist_enc_atom(result, "not_joined", 10) : edist_enc_atom(result, "ok", 2);
}

static int ex_pg_members(void *user, const edist_term_view *args, uint32_t arity,
                         edist_buf *result)
{
    (void)user;
    (void)arity;
    return edist_pg_get_members(args[0].ptr, args[0].len, result);
}

static int ex_pg_local_members(void *user, const edist_term_view *args, uint32_t arity,
                               edist_buf *result)
{
    (void)user;
    (void)arity;
    return edist_pg_get_local_members(args[0].ptr, args[0].len, result);
}

static int ex_pg_which_groups(void *user, const edist_term_view *args, uint32_t arity,
                              edist_buf *result)
{
    (void)user;
    (void)args;
    (void)arity;
    return edist_pg_which_groups(result);
}

/* A member that lives until it is told `stop` or killed (other messages
 * are dropped). Nothing allocated: a kill leaves nothing behind. */
static void member_main(void *arg)
{
    (void)arg;
    edist_term_view m;
    while (edist_receive(NULL, NULL, -1, &m) == 0 && !edi_term_is_atom(m, "stop"))
        ;
}

static int ex_demo_pg_join(void *user, const edist_term_view *args, uint32_t arity,
                           edist_buf *result)
{
    (void)user;
    (void)arity;
    edist_procid pid;
    int rc = edist_spawn(member_main, NULL, &pid);
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
    static const struct {
        const char *module, *function;
        uint32_t arity;
        edist_exported_fn fn;
    } table[] = {
        {"pg", "join", 2, ex_pg_join},
        {"pg", "leave", 2, ex_pg_leave},
        {"pg", "get_members", 1, ex_pg_members},
        {"pg", "get_local_members", 1, ex_pg_local_members},
        {"pg", "which_groups", 0, ex_pg_which_groups},
        {"edist_demo", "pg_join", 1, ex_demo_pg_join},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        int rc = edist_export_function(s->rt, table[i].module, table[i].function,
                                       table[i].arity, table[i].fn, s);
        if (rc)
            return rc;
    }
    return 0;
}
