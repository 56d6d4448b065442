/* SPDX-License-Identifier: Apache-2.0 */
/* The exported functions of every node (shared/CONTRACT.md): erlang:node/0,
 * nodes/0, nodes/1, is_alive/0, disconnect_node/1, throw/1, error/1,
 * exit/1, net_adm:ping/1 and
 * edist_demo:hello/0, add/2, echo/1, reply/2, sleep/1, crash/1, and
 * edist:stats/0 (the counters `edist stat` prints). Each runs
 * in the process that calls it (spawned by a remote spawn, or erpc's and
 * rex's apply worker). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime_internal.h"
#include "runtime/services_internal.h"

/* ---- erlang:* ------------------------------------------------------------ */

static int ex_node(void *user, const edist_term_view *args, uint32_t arity,
                   edist_buf *result)
{
    (void)args;
    (void)arity;
    edi_services *s = user;
    return edist_enc_atomz(result, edist_runtime_node(s->rt));
}

typedef struct names_acc {
    edist_buf elems;
    uint32_t count;
} names_acc;

static void add_name(void *ctx, const char *name, size_t len)
{
    names_acc *acc = ctx;
    if (edist_enc_atom(&acc->elems, name, len) == 0)
        acc->count++;
}

/* [this node (with_self) | the nodes the node names for `which`] */
static int enc_nodes(edi_services *s, unsigned which, bool with_self,
                     edist_buf *result)
{
    names_acc acc;
    edist_buf_init(&acc.elems);
    acc.count = 0;
    if (with_self)
        add_name(&acc, edist_runtime_node(s->rt),
                 strlen(edist_runtime_node(s->rt)));
    int rc = 0;
    if (which && s->cfg.nodes)
        rc = s->cfg.nodes(s->cfg.user, which, add_name, &acc);
    if (rc == 0)
        rc = edist_buf_error(&acc.elems);
    if (rc == 0 && acc.count > 0) {
        edist_enc_list(result, acc.count);
        edist_enc_raw(result, acc.elems.data, acc.elems.len);
    }
    if (rc == 0)
        rc = edist_enc_nil(result);
    edist_buf_free(&acc.elems);
    return rc;
}

static int ex_nodes0(void *user, const edist_term_view *args, uint32_t arity,
                     edist_buf *result)
{
    (void)args;
    (void)arity;
    return enc_nodes(user, EDI_NODES_VISIBLE, false, result);
}

/* One argument of nodes/1: the bits it asks for, or -1. */
static int nodes_arg(edist_term_view v, unsigned *which, bool *self)
{
    static const struct {
        const char *atom;
        unsigned bits;
    } kinds[] = {{"visible", EDI_NODES_VISIBLE},
                 {"hidden", EDI_NODES_HIDDEN},
                 {"connected", EDI_NODES_CONNECTED},
                 {"known", EDI_NODES_KNOWN}};
    if (edi_svc_is_atom(v, "this")) {
        *self = true;
        return 0;
    }
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (edi_svc_is_atom(v, kinds[i].atom)) {
            *which |= kinds[i].bits;
            return 0;
        }
    }
    return -1;
}

/* nodes(Arg | [Arg]) with Arg visible | hidden | connected | this | known. */
static int ex_nodes1(void *user, const edist_term_view *args, uint32_t arity,
                     edist_buf *result)
{
    (void)arity;
    unsigned which = 0;
    bool self = false;
    edist_cursor c;
    edist_cursor_init(&c, args[0].ptr, args[0].len);
    edist_term_info info;
    int bad = edist_peek(&c, &info) != 0;
    if (!bad && info.type == EDIST_TYPE_LIST && info.tag == EDIST_TAG_LIST) {
        uint32_t n;
        bad = edist_dec_list(&c, &n) != 0;
        for (uint32_t i = 0; !bad && i < n; i++) {
            edist_term_view e;
            bad =
                edist_dec_term(&c, &e) != 0 || nodes_arg(e, &which, &self) != 0;
        }
        bad = bad || edist_dec_nil(&c) != 0;
    } else if (!bad && info.type != EDIST_TYPE_NIL) {
        bad = nodes_arg(args[0], &which, &self) != 0;
    }
    if (bad)
        return edi_raise_error_atom("badarg");
    /* known includes this node, as in erts */
    return enc_nodes(user, which, self || (which & EDI_NODES_KNOWN), result);
}

/* net_adm:ping(Node), as net_adm does it: the is_auth call to
 * {net_kernel, Node}, which sets up the connection; pang when it fails
 * or gets no answer within 10 s (the connection is then dropped). */
static int ex_ping(void *user, const edist_term_view *args, uint32_t arity,
                   edist_buf *result)
{
    (void)arity;
    edi_services *s = user;
    char node[256];
    int rc = edi_svc_atom_arg(args[0], node, sizeof node);
    if (rc)
        return rc;
    if (strcmp(node, edist_runtime_node(s->rt)) == 0)
        return edist_enc_atom(result, "pong", 4);
    edist_buf req, out;
    edist_buf_init(&req);
    edist_buf_init(&out);
    edist_enc_tuple(&req, 2);
    edist_enc_atom(&req, "is_auth", 7);
    edist_enc_atomz(&req, edist_runtime_node(s->rt));
    bool pong = edist_buf_error(&req) == 0 &&
                edi_svc_call(s, "net_kernel", node, NULL, req.data, req.len, &out, 10000) == 0 &&
                edi_term_is_atom((edist_term_view){out.data, out.len}, "yes");
    edist_buf_free(&req);
    edist_buf_free(&out);
    if (!pong && s->cfg.disconnect)
        s->cfg.disconnect(s->cfg.user, node);
    return pong ? edist_enc_atom(result, "pong", 4) : edist_enc_atom(result, "pang", 4);
}

/* erlang:disconnect_node(Node): true when it was connected (erts says
 * ignored for a node it never knew; false here). */
static int ex_disconnect(void *user, const edist_term_view *args, uint32_t arity,
                         edist_buf *result)
{
    (void)arity;
    edi_services *s = user;
    char node[256];
    int rc = edi_svc_atom_arg(args[0], node, sizeof node);
    if (rc)
        return rc;
    bool was = s->cfg.connected ? s->cfg.connected(s->cfg.user, node) : false;
    if (was && s->cfg.disconnect)
        s->cfg.disconnect(s->cfg.user, node);
    return edist_enc_bool(result, was);
}

static int ex_is_alive(void *user, const edist_term_view *args, uint32_t arity,
                       edist_buf *result)
{
    (void)args;
    (void)arity;
    edi_services *s = user;
    bool alive = s->cfg.is_alive
                     ? s->cfg.is_alive(s->cfg.user)
                     : strcmp(edist_runtime_node(s->rt), "nonode@nohost") != 0;
    return edist_enc_bool(result, alive);
}

static int ex_throw(void *user, const edist_term_view *args, uint32_t arity,
                    edist_buf *result)
{
    (void)user;
    (void)arity;
    (void)result;
    return edi_raise(EDI_RAISE_THROW, args[0].ptr, args[0].len, NULL, 0);
}

static int ex_error(void *user, const edist_term_view *args, uint32_t arity,
                    edist_buf *result)
{
    (void)user;
    (void)arity;
    (void)result;
    return edi_raise(EDI_RAISE_ERROR, args[0].ptr, args[0].len, NULL, 0);
}

static int ex_exit(void *user, const edist_term_view *args, uint32_t arity,
                   edist_buf *result)
{
    (void)user;
    (void)arity;
    (void)result;
    return edi_raise(EDI_RAISE_EXIT, args[0].ptr, args[0].len, NULL, 0);
}

/* ---- integers of any size ------------------------------------------------ */

static size_t trim(const uint8_t *mag, size_t n)
{
    while (n && mag[n - 1] == 0)
        n--;
    return n;
}

/* Compare magnitudes (trimmed). */
static int mag_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    if (an != bn)
        return an < bn ? -1 : 1;
    for (size_t i = an; i-- > 0;)
        if (a[i] != b[i])
            return a[i] < b[i] ? -1 : 1;
    return 0;
}

int edi_services_int_add(edist_term_view a, edist_term_view b, edist_buf *out)
{
    edist_cursor ca, cb;
    edist_cursor_init(&ca, a.ptr, a.len);
    edist_cursor_init(&cb, b.ptr, b.len);
    int64_t x, y, sum;
    if (edist_dec_int64(&ca, &x) == 0 && edist_dec_int64(&cb, &y) == 0 &&
        !__builtin_add_overflow(x, y, &sum))
        return edist_enc_int(out, sum);
    edist_cursor_init(&ca, a.ptr, a.len);
    edist_cursor_init(&cb, b.ptr, b.len);
    int an, bn;
    const uint8_t *am, *bm;
    size_t al, bl;
    uint8_t at[8], bt[8];
    if (edist_dec_integer(&ca, &an, &am, &al, at) != 0 ||
        edist_dec_integer(&cb, &bn, &bm, &bl, bt) != 0)
        return edist_set_error(EDIST_ETYPE, "add: not an integer");
    al = trim(am, al);
    bl = trim(bm, bl);
    size_t cap = (al > bl ? al : bl) + 1;
    uint8_t *r = malloc(cap);
    if (!r)
        return edist_set_error(EDIST_ENOMEM, "add: no memory");
    int negative;
    if (an == bn) {
        /* same sign: |a| + |b| */
        unsigned carry = 0;
        for (size_t i = 0; i < cap; i++) {
            unsigned d = carry + (i < al ? am[i] : 0u) + (i < bl ? bm[i] : 0u);
            r[i] = (uint8_t)d;
            carry = d >> 8;
        }
        negative = an;
    } else {
        /* opposite signs: the larger magnitude minus the smaller, with
         * the larger one's sign */
        int c = mag_cmp(am, al, bm, bl);
        if (c < 0) {
            const uint8_t *tm = am;
            am = bm;
            bm = tm;
            size_t tl = al;
            al = bl;
            bl = tl;
            an = bn;
        }
        unsigned borrow = 0;
        for (size_t i = 0; i < cap; i++) {
            int d = (int)(i < al ? am[i] : 0u) - (int)(i < bl ? bm[i] : 0u) -
                    (int)borrow;
            borrow = d < 0;
            r[i] = (uint8_t)(d + (borrow ? 256 : 0));
        }
        negative = c == 0 ? 0 : an;
    }
    int rc = edist_enc_big(out, negative, r, cap);
    free(r);
    return rc;
}

/* ---- edist_demo:* -------------------------------------------------------- */

static int ex_hello(void *user, const edist_term_view *args, uint32_t arity,
                    edist_buf *result)
{
    (void)args;
    (void)arity;
    (void)result;
    edi_services *s = user;
    if (s->cfg.print_line) {
        char line[EDIST_ATOM_MAX_BYTES + 16];
        int n = snprintf(line, sizeof line, "Hello from %s",
                         edist_runtime_node(s->rt));
        if (n > 0)
            s->cfg.print_line(s->cfg.user, line,
                              (size_t)n < sizeof line ? (size_t)n
                                                      : sizeof line - 1);
    }
    return 0;
}

static int ex_add(void *user, const edist_term_view *args, uint32_t arity,
                  edist_buf *result)
{
    (void)user;
    (void)arity;
    int rc = edi_services_int_add(args[0], args[1], result);
    if (rc == EDIST_ETYPE)
        return edi_raise_error_atom("badarith"); /* as 1 + a */
    return rc;
}

static int ex_echo(void *user, const edist_term_view *args, uint32_t arity,
                   edist_buf *result)
{
    (void)user;
    (void)arity;
    return edist_enc_raw(result, args[0].ptr, args[0].len);
}

static int ex_reply(void *user, const edist_term_view *args, uint32_t arity,
                    edist_buf *result)
{
    (void)arity;
    (void)result;
    edist_procid to;
    if (edi_svc_pid(args[0], &to) != 0)
        return edi_raise_error_atom("badarg");
    /* A full mailbox or send queue pushes back: wait for room. */
    int rc = edi_svc_send(user, to, args[1].ptr, args[1].len, EDI_SVC_WAIT);
    /* Like Pid ! Msg, a send to a node that cannot be reached is no
     * error. */
    return rc == EDIST_ECLOSED ? 0 : rc;
}

static int ex_sleep(void *user, const edist_term_view *args, uint32_t arity,
                    edist_buf *result)
{
    (void)user;
    (void)arity;
    (void)result;
    if (edi_svc_is_atom(args[0], "infinity"))
        return edist_sleep_ms(-1);
    edist_cursor c;
    edist_cursor_init(&c, args[0].ptr, args[0].len);
    int64_t ms;
    if (edist_dec_int64(&c, &ms) != 0 || ms < 0)
        return edi_raise_error_atom("timeout_value"); /* as timer:sleep(-1) */
    return edist_sleep_ms(ms);
}

static int ex_crash(void *user, const edist_term_view *args, uint32_t arity,
                    edist_buf *result)
{
    (void)user;
    (void)arity;
    (void)result;
    return edist_exit(args[0].ptr, args[0].len);
}

/* ---- edist:stats/0 ---------------------------------------------------------- */

void edi_services_stat(edist_buf *b, uint32_t *n, const char *key, uint64_t v)
{
    edist_enc_atomz(b, key);
    edist_enc_uint(b, v);
    (*n)++;
}

/* A map of counters: the runtime's, and the node's when it has any
 * (edist stat prints it). */
int edi_services_stats(edi_services *s, edist_buf *result)
{
    edist_runtime_stats rs;
    int rc = edist_runtime_get_stats(s->rt, &rs);
    if (rc)
        return rc;
    edist_buf pairs;
    edist_buf_init(&pairs);
    uint32_t n = 0;
    edist_enc_atom(&pairs, "node", 4);
    edist_enc_atomz(&pairs, edist_runtime_node(s->rt));
    n++;
    edi_services_stat(&pairs, &n, "processes", rs.processes);
    edi_services_stat(&pairs, &n, "spawned", rs.spawned);
    edi_services_stat(&pairs, &n, "exited", rs.exited);
    edi_services_stat(&pairs, &n, "context_switches", rs.context_switches);
    edi_services_stat(&pairs, &n, "local_messages", rs.messages_sent);
    edi_services_stat(&pairs, &n, "local_messages_dropped", rs.messages_dropped);
    edi_services_stat(&pairs, &n, "mailbox_overflows", rs.mailbox_overflows);
    edi_services_stat(&pairs, &n, "messages_copied_out", rs.messages_copied_out);
    edi_services_stat(&pairs, &n, "mailbox_busy", rs.mailbox_busy);
    edi_services_stat(&pairs, &n, "requests_refused", rs.requests_refused);
    /* Shards: totals, then shard_stats => [#{...} per shard]. */
    edi_services_stat(&pairs, &n, "shards", rs.shards);
    edi_services_stat(&pairs, &n, "shard_records_sent", rs.shard_records_sent);
    edi_services_stat(&pairs, &n, "shard_records_received", rs.shard_records_received);
    edi_services_stat(&pairs, &n, "shard_ring_full", rs.shard_ring_full);
    edi_services_stat(&pairs, &n, "shard_senders_held", rs.shard_senders_held);
    edi_services_stat(&pairs, &n, "shard_ring_holds", rs.shard_ring_holds);
    edi_services_stat(&pairs, &n, "shard_past_soft_limit", rs.shard_past_soft_limit);
    edist_enc_atomz(&pairs, "shard_stats");
    edist_enc_list(&pairs, (uint32_t)rs.shards);
    for (uint32_t i = 0; rc == 0 && i < rs.shards; i++) {
        edist_runtime_stats ss;
        rc = edist_runtime_get_shard_stats(s->rt, i, &ss);
        if (rc)
            break;
        uint32_t k = 0;
        edist_enc_map(&pairs, 7);
        edi_services_stat(&pairs, &k, "processes", ss.processes);
        edi_services_stat(&pairs, &k, "local_messages", ss.messages_sent);
        edi_services_stat(&pairs, &k, "records_sent", ss.shard_records_sent);
        edi_services_stat(&pairs, &k, "records_received", ss.shard_records_received);
        edi_services_stat(&pairs, &k, "ring_full", ss.shard_ring_full);
        edi_services_stat(&pairs, &k, "senders_held", ss.shard_senders_held);
        edi_services_stat(&pairs, &k, "ring_holds", ss.shard_ring_holds);
    }
    edist_enc_nil(&pairs);
    n++;
    if (rc) {
        edist_buf_free(&pairs);
        return rc;
    }
    /* pg's scope */
    edi_services_stat(&pairs, &n, "pg_groups", atomic_load(&s->pg_stats.groups));
    edi_services_stat(&pairs, &n, "pg_members", atomic_load(&s->pg_stats.members));
    edi_services_stat(&pairs, &n, "pg_group_lookups", atomic_load(&s->pg_stats.group_lookups));
    edi_services_stat(&pairs, &n, "pg_group_compares", atomic_load(&s->pg_stats.group_compares));
    const edi_global_stats *g = &s->global_stats;
    edi_services_stat(&pairs, &n, "global_names", atomic_load(&g->names));
    edi_services_stat(&pairs, &n, "global_known_nodes", atomic_load(&g->known));
    edi_services_stat(&pairs, &n, "global_syncs", atomic_load(&g->syncs));
    edi_services_stat(&pairs, &n, "global_syncs_ended", atomic_load(&g->syncs_ended));
    edi_services_stat(&pairs, &n, "global_clashes", atomic_load(&g->clashes));
    edi_services_stat(&pairs, &n, "global_stale_ops", atomic_load(&g->stale_ops));
    edi_services_stat(&pairs, &n, "global_lock_refusals", atomic_load(&g->lock_refusals));
    edi_services_stat(&pairs, &n, "global_call_timeouts", atomic_load(&g->call_timeouts));
    edi_services_stat(&pairs, &n, "global_lost_connections", atomic_load(&g->lost_connections));
    edi_services_stat(&pairs, &n, "global_removed_connections",
                      atomic_load(&g->removed_connections));
    /* service replies that found a peer's queue full */
    edi_services_stat(&pairs, &n, "service_sends_waited", s->sends_waited);
    edi_services_stat(&pairs, &n, "service_sends_forced", s->sends_forced);
    edi_services_stat(&pairs, &n, "service_restarts", atomic_load(&s->restarts));
    if (s->cfg.stats)
        rc = s->cfg.stats(s->cfg.user, &pairs, &n);
    if (rc == 0)
        rc = edist_buf_error(&pairs);
    if (rc == 0) {
        edist_enc_map(result, n);
        rc = edist_enc_raw(result, pairs.data, pairs.len);
    }
    edist_buf_free(&pairs);
    return rc;
}

static int ex_stats(void *user, const edist_term_view *args, uint32_t arity, edist_buf *result)
{
    (void)args;
    (void)arity;
    return edi_services_stats(user, result);
}

int edi_svc_export_demo(edi_services *s)
{
    static const edi_svc_export table[] = {
        {"erlang", "node", 0, ex_node},
        {"erlang", "nodes", 0, ex_nodes0},
        {"erlang", "nodes", 1, ex_nodes1},
        {"erlang", "is_alive", 0, ex_is_alive},
        {"erlang", "disconnect_node", 1, ex_disconnect},
        {"net_adm", "ping", 1, ex_ping},
        {"erlang", "throw", 1, ex_throw},
        {"erlang", "error", 1, ex_error},
        {"erlang", "exit", 1, ex_exit},
        {"edist_demo", "hello", 0, ex_hello},
        {"edist_demo", "add", 2, ex_add},
        {"edist_demo", "echo", 1, ex_echo},
        {"edist_demo", "reply", 2, ex_reply},
        {"edist_demo", "sleep", 1, ex_sleep},
        {"edist_demo", "crash", 1, ex_crash},
        {"edist", "stats", 0, ex_stats},
    };
    return edi_svc_export_table(s, table, sizeof table / sizeof table[0]);
}
