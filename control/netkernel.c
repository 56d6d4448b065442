/* SPDX-License-Identifier: Apache-2.0 */
#include "control/netkernel.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "control/dist_build.h"
#include "control/dist_msg.h"
#include "control/dist_reasm.h"
#include "control/epmd_proto.h"
#include "edist/term.h"

/* Pending requests (pings, connects, nodes queries) at once. */
#define NK_MAX_OPS 4096u
/* A transitive nodes() query gives up after this long. */
#define NK_NODES_QUERY_TIMEOUT_MS 10000u
/* Housekeeping (orphaned pending entries) runs this often. */
#define NK_HOUSEKEEPING_MS 500u
/* Replies the node owes a peer (is_auth, spawn replies) go past a full
 * send queue, up to this many bytes above its limit. */
#define NK_FORCED_QUEUE_MAX_BYTES (8u * 1024u * 1024u)
/* Graceful close of one connection: flush for at most this long. */
#define NK_CLOSE_FLUSH_MS 2000u
/* Where the ids of the short-lived processes that answer spawn requests
 * start (1 and 2: EDI_NK_SELF_PID_ID, EDI_NK_KERNEL_PID_ID). */
#define NK_FIRST_SPAWN_PID_ID 100u
/* The scheduler hands the socket more only while the connection's own
 * queue holds less than this (and at least a fragment): enough to keep
 * one sendmsg busy, little enough that a small message from another
 * sender overtakes a big one after a fragment or two. */
#define NK_TX_WATERMARK_MIN_BYTES (16u * 1024u)
/* Writable waiters (blocked sends) at once, all peers. */
#define NK_MAX_WRITABLE_WAITERS 4096u
/* Lines a peer can make us write (admission, failed incoming handshakes):
 * per kind, a burst of this many, then one per interval; the rest are
 * counted and their number logged. */
#define NK_LOG_BURST 10u
#define NK_LOG_INTERVAL_MS 1000u

typedef enum link_phase {
    L_LOOKUP = 1, /* asking the peer host's port mapper */
    L_HANDSHAKE,  /* connecting / handshaking */
    L_WAIT_OLD,   /* acceptor: verified; the old connection must go first */
    L_UP,
} link_phase;

struct edi_link {
    edi_nk *nk;
    edi_link *next, *prev; /* nk->links: every link not yet dead */
    edi_conn *conn;        /* distribution socket */
    edi_conn *epmd_conn;   /* L_LOOKUP */
    struct nk_lookup *lookup; /* L_LOOKUP: the host name being resolved */
    int conns_open;        /* of conn/epmd_conn, not yet on_close'd */
    bool dead;             /* bookkeeping done; waits for on_close */
    bool connected;        /* initiator: the TCP connect succeeded */
    edi_hs_role role;
    link_phase phase;
    edi_peer *peer; /* entry this link owns or waits for (may be NULL) */
    char peer_name[EDI_HS_NAME_MAX_BYTES + 1];
    char ip[INET6_ADDRSTRLEN];
    char addr[INET6_ADDRSTRLEN + 48]; /* for log lines */
    uint64_t started_ms;
    edi_hs hs;
    edi_timer setup_timer;
    edi_dist_reasm *reasm;
    uint64_t frames_in, frames_out;
    edi_tick_state tick;
    bool hidden;
    uint64_t flags;
    /* Sending (once up): the scheduler, the timer that pumps it into the
     * connection (armed from its callbacks, which run inside the
     * connection's completions), and the blocked senders. */
    edi_sendq *sq;
    edi_timer pump_timer;
    bool writable_pending;
    struct nk_wwait *wwait_head, *wwait_tail;
    /* Counters for edi_nk_get_peer_stats. */
    uint64_t messages_in, fragments_in, fragmented_in;
    uint64_t messages_out, fragments_out, fragmented_out;
    /* Admission (acceptor): on nk's list of incoming handshakes, oldest
     * first, until up or dead; named once its send_name arrived. */
    bool incoming, named;
    edi_link *in_next, *in_prev;
    /* The runtime's key for the peer (its node index) while up: senders
     * find the link by it without a name lookup. */
    uint32_t key;
    bool keyed;
    /* A send was refused by the pending-bytes limit: tell the waiters
     * once the bytes pending fell to half of it. */
    bool want_writable;
    uint64_t sends_busy;
};

typedef struct nk_wwait {
    uint64_t id;
    edi_nk_done_fn done;
    void *arg;
    struct nk_wwait *next;
} nk_wwait;

typedef enum op_kind {
    OP_CONNECT = 1,
    OP_PING,
    OP_NODES_QUERY,
    OP_MONITOR_NODE,
} op_kind;

typedef struct nk_op {
    edi_nk *nk;
    uint64_t id;
    op_kind kind;
    char peer[EDI_HS_NAME_MAX_BYTES + 1];
    edi_nk_done_fn done;
    void *arg;
    uint32_t ref[3];     /* PING tag / NODES_QUERY ReqId (our node, creation) */
    uint64_t sub_handle; /* OP_MONITOR_NODE */
    edi_timer timer;
    struct nk_op *next, *prev;
} nk_op;

/* Lines a peer can trigger, rate-limited per kind. */
typedef enum nk_rl_kind {
    NK_RL_EVICTED = 0,
    NK_RL_REFUSED,
    NK_RL_FIRST_MESSAGE,
    NK_RL_INCOMING_FAILED,
    NK_RL_COUNT
} nk_rl_kind;

typedef struct nk_sub {
    uint64_t handle;
    bool one_node; /* monitor_node: fires once for peer */
    unsigned kinds;
    char peer[EDI_HS_NAME_MAX_BYTES + 1];
    edist_node_event_fn fn;
    void *user;
    bool removed;
} nk_sub;

/* A host name resolved off the loop thread: getaddrinfo may wait seconds
 * for a DNS server, and the loop must not. The list and `link` belong to
 * the loop thread; the resolver thread only fills ip/rc/err, then posts. */
typedef struct nk_lookup {
    edi_nk *nk;
    edi_link *link; /* NULL once the link is gone */
    struct nk_lookup *next, *prev;
    pthread_t thread;
    char host[256];
    char ip[INET6_ADDRSTRLEN];
    int rc;
    char err[300];
} nk_lookup;

struct edi_nk {
    edi_nk_config cfg;
    char name[EDI_HS_NAME_MAX_BYTES + 1];
    edi_loop *loop;
    edi_conn_table table;
    edi_link *links;      /* live links */
    edi_link *dead_links; /* killed, waiting for their sockets' on_close */
    nk_lookup *lookups;   /* resolver threads not yet joined */
    _Atomic bool freeing; /* resolver threads: do not post any more */
    size_t conns_open;    /* all conns not yet on_close'd */
    nk_op *ops;
    size_t op_count;
    uint64_t next_id;
    nk_sub *subs[EDIST_NODE_MAX_MONITORS];
    size_t sub_count;
    int dispatching;
    edist_node_message_fn msg_fn;
    void *msg_user;
    edi_timer tick_timer;
    edi_timer housekeeping_timer;
    uint64_t ref_counter;
    uint32_t ref_salt;
    uint32_t next_pid_id;
    edist_buf out;     /* frames being built */
    edist_buf scratch; /* payloads being built */
    edi_dist_term_scratch self_scratch;
    edist_term_view self_pid; /* <N.1.0> */
    edi_dist_term_scratch kernel_scratch;
    edist_term_view kernel_pid; /* <N.2.0> */
    size_t tx_watermark;
    edi_nk_writable_fn writable_fn;
    void *writable_user;
    size_t wwait_count;
    bool shutting_down;
    edi_nk_done_fn shutdown_done;
    void *shutdown_arg;
    edi_timer shutdown_timer;
    edist_node_stats stats;
    /* The process runtime (edi_nk_set_runtime). */
    const edi_nk_rt_ops *rt_ops;
    void *rt_user;
    /* Admission: incoming handshakes in progress, oldest first; and the
     * rate limits of the lines peers can trigger. */
    edi_link *in_head, *in_tail;
    size_t in_count;
    edi_ratelimit ratelog[NK_RL_COUNT];
    /* Up links by their runtime key (edi_nk_send_signal). */
    edi_link **by_key;
    uint32_t by_key_cap;
};

static const edi_conn_ops dist_ops;
static const edi_conn_ops epmd_ops;

/* ---- logging ------------------------------------------------------------- */

/* The kernel's lines, through the node's logger (base/log.h). */
#define nk_log(nk, ...) edi_logf(&(nk)->cfg.log, __VA_ARGS__)

static const char *const rl_what[NK_RL_COUNT] = {
    [NK_RL_EVICTED] = "connections evicted before their name",
    [NK_RL_REFUSED] = "incoming connections refused",
    [NK_RL_FIRST_MESSAGE] = "connections closed without a name in time",
    [NK_RL_INCOMING_FAILED] = "failed incoming handshakes",
};

static bool ratelog_take(edi_nk *nk, nk_rl_kind kind)
{
    return edi_ratelimit_take(&nk->ratelog[kind], edi_loop_now_ms(nk->loop),
                              NK_LOG_BURST, NK_LOG_INTERVAL_MS);
}

/* A line that a peer can make us write: rate-limited per kind; the first
 * line after a suppression says how many were left out. */
__attribute__((format(printf, 4, 5))) static void
nk_log_limited(edi_nk *nk, nk_rl_kind kind, edist_log_level lvl,
               const char *fmt, ...)
{
    if (!edi_log_on(&nk->cfg.log, lvl))
        return;
    edi_ratelimit *r = &nk->ratelog[kind];
    if (!ratelog_take(nk, kind)) {
        r->suppressed++;
        return;
    }
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (r->suppressed && n >= 0 && (size_t)n < sizeof line)
        snprintf(line + n, sizeof line - (size_t)n,
                 " (and %llu more %s not logged one by one)",
                 (unsigned long long)r->suppressed, rl_what[kind]);
    r->suppressed = 0;
    nk_log(nk, lvl, "%s", line);
}

/* Housekeeping: tell the number of lines left out once the budget allows,
 * so that a burst that ends is accounted for. */
static void ratelog_flush(edi_nk *nk)
{
    for (int k = 0; k < NK_RL_COUNT; k++) {
        edi_ratelimit *r = &nk->ratelog[k];
        if (!r->suppressed || !ratelog_take(nk, (nk_rl_kind)k))
            continue;
        nk_log(nk,
               k == NK_RL_EVICTED || k == NK_RL_REFUSED ? EDIST_LOG_WARNING
                                                        : EDIST_LOG_INFO,
               "%llu more %s (not logged one by one)",
               (unsigned long long)r->suppressed, rl_what[k]);
        r->suppressed = 0;
    }
}

/* "name@host" or the address when the name is not known yet. */
static const char *link_label(const edi_link *l)
{
    return l->peer_name[0] ? l->peer_name : l->addr;
}

/* The few negotiated flags worth a glance in a node-up line. */
static void flags_summary(uint64_t flags, char *buf, size_t cap)
{
    static const struct {
        uint64_t bit;
        const char *name;
    } notable[] = {
        {EDI_DFLAG_FRAGMENTS, "fragments"},
        {EDI_DFLAG_SPAWN, "spawn"},
        {EDI_DFLAG_ALIAS, "alias"},
        {EDI_DFLAG_UNLINK_ID, "unlink_id"},
        {EDI_DFLAG_V4_NC, "v4_nc"},
        {EDI_DFLAG_EXIT_PAYLOAD, "exit_payload"},
        {EDI_DFLAG_SEND_SENDER, "send_sender"},
        {EDI_DFLAG_DIST_MONITOR_NAME, "monitor_name"},
    };
    size_t n =
        (size_t)snprintf(buf, cap, "flags 0x%llx", (unsigned long long)flags);
    const char *sep = " (";
    for (size_t i = 0; i < sizeof notable / sizeof notable[0] && n < cap; i++) {
        if (flags & notable[i].bit) {
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", sep,
                                  notable[i].name);
            sep = " ";
        }
    }
    if (n < cap && sep[0] == ' ' && sep[1] == '\0')
        snprintf(buf + n, cap - n, ")");
}

/* ---- tick decision ------------------------------------------------------- */

edi_tick_action edi_tick_check(edi_tick_state *st, uint64_t read_total,
                               uint64_t written_total, bool send_queue_empty,
                               bool peer_hidden, uint32_t intensity)
{
    bool read_any = read_total != st->read_seen;
    bool wrote_any = written_total != st->written_seen;
    st->read_seen = read_total;
    st->written_seen = written_total;
    if (read_any) {
        st->silent = 0;
    } else if (++st->silent >= intensity) {
        /* dist_util: nothing read during the last `intensity` ticks. */
        return EDI_TICK_TIMEOUT;
    }
    if ((!wrote_any && send_queue_empty) || (peer_hidden && !read_any))
        return EDI_TICK_SEND;
    return EDI_TICK_NOTHING;
}

/* ---- terms we build ------------------------------------------------------ */

static edist_atom self_atom(const edi_nk *nk)
{
    edist_atom a = {
        .ptr = nk->name, .len = (uint32_t)strlen(nk->name), .latin1 = 0};
    return a;
}

/* A fresh reference of this node. Three words as erts makes them; the
 * first holds 18 significant bits. */
static void make_ref(edi_nk *nk, uint32_t words[3])
{
    uint64_t c = ++nk->ref_counter;
    words[0] = (uint32_t)(c & 0x3ffff);
    words[1] = (uint32_t)(c >> 18);
    words[2] = nk->ref_salt;
}

static int enc_ref(edi_nk *nk, edist_buf *b, const uint32_t words[3])
{
    edist_ref r = {
        .node = self_atom(nk), .creation = nk->cfg.creation, .len = 3};
    memcpy(r.ids, words, 3 * sizeof words[0]);
    return edist_enc_ref(b, &r);
}

static int enc_pid(edi_nk *nk, edist_buf *b, uint32_t id)
{
    edist_pid p = {.node = self_atom(nk),
                   .id = id,
                   .serial = 0,
                   .creation = nk->cfg.creation};
    return edist_enc_pid(b, &p);
}

static edist_term_view buf_view(const edist_buf *b, size_t from)
{
    edist_term_view v = {.ptr = b->data + from, .len = b->len - from};
    return v;
}

/* ---- ops ----------------------------------------------------------------- */

static nk_op *op_find(edi_nk *nk, uint64_t id)
{
    for (nk_op *o = nk->ops; o; o = o->next)
        if (o->id == id)
            return o;
    return NULL;
}

static nk_op *op_find_ref(edi_nk *nk, op_kind kind, const edist_ref *r)
{
    if (r->len != 3 || r->creation != nk->cfg.creation ||
        !edist_atom_eq(&r->node, nk->name))
        return NULL;
    for (nk_op *o = nk->ops; o; o = o->next)
        if (o->kind == kind && !memcmp(o->ref, r->ids, sizeof o->ref))
            return o;
    return NULL;
}

static void op_timeout(edi_loop *loop, edi_timer *t, void *arg);
static void op_connected(edi_nk *nk, nk_op *o, int err, const char *detail);

static nk_op *op_new(edi_nk *nk, op_kind kind, const char *peer,
                     edi_nk_done_fn done, void *arg, uint32_t timeout_ms)
{
    if (nk->op_count >= NK_MAX_OPS) {
        edist_set_error(EDIST_EAGAIN, "too many requests in progress (%u)",
                        NK_MAX_OPS);
        return NULL;
    }
    nk_op *o = calloc(1, sizeof *o);
    if (!o) {
        edist_set_error(EDIST_ENOMEM, "no memory for a request");
        return NULL;
    }
    o->nk = nk;
    o->id = ++nk->next_id;
    o->kind = kind;
    snprintf(o->peer, sizeof o->peer, "%s", peer);
    o->done = done;
    o->arg = arg;
    edi_timer_init(&o->timer);
    if (timeout_ms)
        edi_loop_timer_start(nk->loop, &o->timer, timeout_ms, 0, op_timeout, o);
    o->next = nk->ops;
    if (nk->ops)
        nk->ops->prev = o;
    nk->ops = o;
    nk->op_count++;
    o->prev = NULL;
    return o;
}

static int disconnect_peer(edi_nk *nk, const char *peer, bool only_up);

/* Completes o: unlinks, runs done once, frees. */
static void op_finish(edi_nk *nk, nk_op *o, int err, const char *detail)
{
    edi_loop_timer_cancel(nk->loop, &o->timer);
    if (o->prev)
        o->prev->next = o->next;
    else
        nk->ops = o->next;
    if (o->next)
        o->next->prev = o->prev;
    nk->op_count--;
    /* detail may live in edist_last_error(), which a disconnect reuses. */
    char d[600];
    snprintf(d, sizeof d, "%s", detail ? detail : "");
    if (o->kind == OP_PING && err && !nk->shutting_down) {
        /* net_adm:ping: anything but {ok, yes} is pang, and pang calls
         * erlang:disconnect_node first. o is off the list already, so the
         * requests that disconnect fails do not include it. */
        disconnect_peer(nk, o->peer, true);
    }
    if (o->done)
        o->done(o->arg, err, d);
    free(o);
}

/* ---- subscriptions ------------------------------------------------------- */

static void subs_sweep(edi_nk *nk)
{
    if (nk->dispatching)
        return;
    size_t j = 0;
    for (size_t i = 0; i < nk->sub_count; i++) {
        if (nk->subs[i]->removed)
            free(nk->subs[i]);
        else
            nk->subs[j++] = nk->subs[i];
    }
    nk->sub_count = j;
}

static nk_sub *sub_find(edi_nk *nk, uint64_t handle)
{
    for (size_t i = 0; i < nk->sub_count; i++)
        if (nk->subs[i]->handle == handle && !nk->subs[i]->removed)
            return nk->subs[i];
    return NULL;
}

static void fire_one(edi_nk *nk, nk_sub *s, const edist_node_event *ev)
{
    nk->dispatching++;
    s->fn(s->user, ev);
    nk->dispatching--;
}

/* nodeup / nodedown to every subscriber that asked for this kind of node;
 * nodedown also fires (and ends) the monitor_node subscriptions of peer. */
static void emit_event(edi_nk *nk, bool up, const char *peer, bool hidden,
                       const char *reason, uint64_t flags)
{
    edist_node_event ev = {.up = up,
                           .node = peer,
                           .hidden = hidden,
                           .reason = up ? NULL : reason,
                           .flags = flags};
    unsigned kind = hidden ? EDIST_NODES_HIDDEN : EDIST_NODES_VISIBLE;
    nk->dispatching++;
    size_t n = nk->sub_count; /* subscriptions made by callbacks wait */
    for (size_t i = 0; i < n; i++) {
        nk_sub *s = nk->subs[i];
        if (s->removed)
            continue;
        if (s->one_node) {
            if (up || strcmp(s->peer, peer) != 0)
                continue;
            s->removed = true;
            s->fn(s->user, &ev);
        } else if (s->kinds & kind) {
            s->fn(s->user, &ev);
        }
    }
    nk->dispatching--;
    subs_sweep(nk);
}

/* ---- sending ------------------------------------------------------------- */

static void link_down(edi_link *l, const char *reason, bool graceful);
static void link_down_why(edi_link *l, const char *reason, bool graceful,
                          const char *why);

/* Hand the connection units from the scheduler while its own queue is
 * short. Each unit is an owned body: the scheduler's release runs when the
 * socket took it, and its on_progress brings us back here. */
static void link_pump(edi_link *l)
{
    edi_nk *nk = l->nk;
    if (!l->conn || !l->sq || l->dead || l->phase != L_UP)
        return;
    while (edi_conn_send_queue_bytes(l->conn) < nk->tx_watermark) {
        edi_sendq_unit u;
        if (!edi_sendq_next(l->sq, &u))
            break;
        /* FORCE: the scheduler already applied the peer's limit, and the
         * connection's queue is kept short here. */
        int rc = edi_conn_send_frame_owned(l->conn, u.head, u.head_len, u.body,
                                           u.body_len, edi_sendq_release, u.msg,
                                           EDI_SEND_FORCE);
        if (rc) {
            /* The unit goes nowhere. Closing: the connection's end takes
             * the rest. Anything else (no memory) would leave a hole in
             * the stream, possibly inside a fragment sequence: drop the
             * connection rather than send a corrupt one. */
            edi_sendq_release(u.msg, u.body);
            if (rc != EDIST_ECLOSED) {
                char why[160];
                snprintf(why, sizeof why, "cannot queue output: %s",
                         edist_strerror(rc));
                link_down_why(l, "connection_closed", false, why);
            }
            break;
        }
        l->frames_out++;
        if (u.kind != EDI_SENDQ_WHOLE) {
            l->fragments_out++;
            nk->stats.fragments_sent++;
            if (u.kind == EDI_SENDQ_FRAG_FIRST) {
                l->fragmented_out++;
                nk->stats.fragmented_messages_sent++;
            }
        }
    }
}

static void fire_writable(edi_link *l, int err, const char *detail)
{
    edi_nk *nk = l->nk;
    nk_wwait *w = l->wwait_head;
    l->wwait_head = l->wwait_tail = NULL;
    while (w) {
        nk_wwait *n = w->next;
        nk->wwait_count--;
        w->done(w->arg, err, detail);
        free(w);
        w = n;
    }
}

static void pump_timer_fn(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    edi_link *l = arg;
    edi_nk *nk = l->nk;
    link_pump(l);
    if (!l->writable_pending || l->dead)
        return;
    l->writable_pending = false;
    char peer[EDI_HS_NAME_MAX_BYTES + 1];
    snprintf(peer, sizeof peer, "%s", l->peer_name);
    fire_writable(l, 0, "");
    if (nk->writable_fn && !l->dead) {
        nk->dispatching++;
        nk->writable_fn(nk->writable_user, peer);
        nk->dispatching--;
    }
}

static void arm_pump(edi_link *l)
{
    if (!l->dead && !edi_timer_armed(&l->pump_timer))
        edi_loop_timer_start(l->nk->loop, &l->pump_timer, 0, 0, pump_timer_fn,
                             l);
}

/* Scheduler callbacks: inside the connection's completion handling, so
 * only arm the pump (it runs in this same loop iteration). */
static void sq_progress(void *user)
{
    arm_pump(user);
}

static void sq_writable(void *user)
{
    edi_link *l = user;
    l->writable_pending = true;
    arm_pump(l);
}

static const edi_sendq_ops sq_ops = {
    .on_progress = sq_progress,
    .on_writable = sq_writable,
};

/* Bytes pending for the peer: what the scheduler holds (its units in the
 * connection included) plus what was written straight into the
 * connection. Units are counted twice while the connection holds them:
 * the bound errs on the safe side. */
static size_t link_pending(const edi_link *l)
{
    return edi_sendq_bytes(l->sq) + edi_conn_send_queue_bytes(l->conn);
}

/* busy_dist_port: a frame of len bytes finds room unless the peer's
 * pending bytes would pass the limit (one frame of any size fits when
 * nothing is pending). Forced frames (replies the peer waits for) pass,
 * up to NK_FORCED_QUEUE_MAX_BYTES more; a peer that lets even those pile
 * up does not read and is dropped. */
static int link_admit(edi_nk *nk, edi_link *l, size_t len, bool force)
{
    size_t pending = link_pending(l);
    size_t limit = edi_sendq_limit(l->sq);
    if (force) {
        if (pending <= limit + NK_FORCED_QUEUE_MAX_BYTES)
            return 0;
        char why[160];
        snprintf(why, sizeof why,
                 "it does not read its replies (%zu bytes queued)", pending);
        link_down_why(l, "connection_closed", false, why);
        return edist_set_error(EDIST_ECLOSED, "peer does not read");
    }
    if (pending == 0 || (len <= limit && pending <= limit - len))
        return 0;
    l->want_writable = true;
    l->sends_busy++;
    nk->stats.sends_busy++;
    return edist_set_error(EDIST_EAGAIN,
                           "send queue to %s full (%zu bytes pending, limit "
                           "%zu)",
                           l->peer_name, pending, limit);
}

static void arm_pump(edi_link *l);

/* The connection wrote some of its queue. */
static void on_sent(edi_conn *c, void *user, size_t queued_bytes)
{
    (void)c;
    (void)queued_bytes;
    edi_link *l = user;
    if (!l->want_writable || l->dead || !l->sq ||
        link_pending(l) > edi_sendq_limit(l->sq) / 2)
        return;
    l->want_writable = false;
    l->writable_pending = true;
    arm_pump(l);
}

/* Queue the frame built in nk->out (u32 prefix included) on l from the
 * pseudo-process `stream`, and pump. Control replies the peer waits for
 * are forced past a full queue (bounded: each answers one request the
 * peer made, and a peer that never reads is dropped); other frames get
 * EDIST_EAGAIN. */
static int send_buf(edi_nk *nk, edi_link *l, uint64_t stream,
                    const edist_buf *out, bool force)
{
    if (edist_buf_error(out))
        return edist_buf_error(out);
    if (!l->conn || !l->sq || l->phase != L_UP || l->dead)
        return edist_set_error(EDIST_ECLOSED, "connection to %s is down",
                               link_label(l));
    size_t len = out->len;
    int rc = link_admit(nk, l, len, force);
    if (rc)
        return rc;
    /* Admitted: the scheduler takes it whatever its own count says (the
     * bytes in the connection are counted above). */
    rc = edi_sendq_push(l->sq, stream, out->data, len, EDI_SENDQ_FORCE);
    if (rc)
        return rc;
    l->messages_out++;
    nk->stats.messages_sent++;
    nk->stats.bytes_sent += len;
    link_pump(l);
    return 0;
}

static int send_built(edi_nk *nk, edi_link *l, uint64_t stream, bool force)
{
    return send_buf(nk, l, stream, &nk->out, force);
}

/* Everything still queued goes to the connection (before a graceful
 * close flushes it): memory the queue held anyway, now referenced by the
 * connection until written or dropped with it. */
static void link_drain_all(edi_link *l)
{
    edi_sendq_unit u;
    while (l->conn && l->sq && edi_sendq_next(l->sq, &u)) {
        if (edi_conn_send_frame_owned(l->conn, u.head, u.head_len, u.body,
                                      u.body_len, edi_sendq_release, u.msg,
                                      EDI_SEND_FORCE) != 0) {
            edi_sendq_release(u.msg, u.body);
            break;
        }
    }
}

/* ---- link lifetime ------------------------------------------------------- */

static void link_maybe_free(edi_link *l)
{
    if (!l->dead || l->conns_open > 0)
        return;
    edi_nk *nk = l->nk;
    if (l->prev)
        l->prev->next = l->next;
    else
        nk->dead_links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    if (l->lookup)
        l->lookup->link = NULL;
    edi_hs_wipe(&l->hs);
    edi_dist_reasm_free(l->reasm);
    edi_sendq_detach(l->sq);
    free(l);
}

static void shutdown_check(edi_nk *nk);

/* Off the list of incoming handshakes (up, or gone). */
static void incoming_remove(edi_link *l)
{
    edi_nk *nk = l->nk;
    if (!l->incoming)
        return;
    if (l->in_prev)
        l->in_prev->in_next = l->in_next;
    else
        nk->in_head = l->in_next;
    if (l->in_next)
        l->in_next->in_prev = l->in_prev;
    else
        nk->in_tail = l->in_prev;
    l->in_next = l->in_prev = NULL;
    l->incoming = false;
    nk->in_count--;
}

static void peer_waiters_done(edi_nk *nk, edi_peer *p, int err,
                              const char *detail);

/* An up link gets the runtime's key for its peer. Without one (no
 * runtime, no memory) senders take the lookup by name. */
static void link_set_key(edi_nk *nk, edi_link *l)
{
    uint32_t key;
    if (!nk->rt_ops || !nk->rt_ops->peer_key ||
        nk->rt_ops->peer_key(nk->rt_user, l->peer_name, &key) != 0)
        return;
    if (key >= nk->by_key_cap) {
        uint32_t cap = nk->by_key_cap ? nk->by_key_cap : 64;
        while (cap <= key)
            cap *= 2;
        edi_link **t = realloc(nk->by_key, cap * sizeof *t);
        if (!t)
            return;
        memset(t + nk->by_key_cap, 0, (cap - nk->by_key_cap) * sizeof *t);
        nk->by_key = t;
        nk->by_key_cap = cap;
    }
    nk->by_key[key] = l;
    l->key = key;
    l->keyed = true;
}

/* Bookkeeping done: take l out of the kernel's lists and close its
 * sockets (flushing what is queued when graceful). */
static void link_kill(edi_link *l, bool graceful)
{
    edi_nk *nk = l->nk;
    if (l->dead)
        return;
    l->dead = true;
    if (l->keyed && nk->by_key[l->key] == l)
        nk->by_key[l->key] = NULL;
    l->keyed = false;
    incoming_remove(l);
    edi_loop_timer_cancel(nk->loop, &l->setup_timer);
    edi_loop_timer_cancel(nk->loop, &l->pump_timer);
    /* A graceful close flushes what was queued (shutdown, disconnect):
     * hand the connection the rest first. The scheduler lets go of
     * whatever is left; units the connection holds are released by it. */
    if (graceful && l->phase == L_UP)
        link_drain_all(l);
    edi_sendq_detach(l->sq);
    l->sq = NULL;
    l->writable_pending = false;
    if (l->prev)
        l->prev->next = l->next;
    else
        nk->links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->prev = NULL;
    l->next = nk->dead_links;
    if (nk->dead_links)
        nk->dead_links->prev = l;
    nk->dead_links = l;
    if (l->epmd_conn)
        edi_conn_abort(l->epmd_conn, 0);
    if (l->conn) {
        if (graceful)
            edi_conn_close(l->conn, NK_CLOSE_FLUSH_MS);
        else
            edi_conn_abort(l->conn, 0);
    }
    l->epmd_conn = NULL;
    l->conn = NULL;
    /* Blocked senders learn the connection is gone (their callbacks may
     * not use l). */
    char detail[EDI_HS_NAME_MAX_BYTES + 64];
    snprintf(detail, sizeof detail, "connection to %s went down",
             link_label(l));
    fire_writable(l, EDIST_ECLOSED, detail);
    if (l->conns_open == 0)
        link_maybe_free(l);
}

static void fail_peer_ops(edi_nk *nk, const char *peer, int err,
                          const char *detail)
{
    nk_op *o = nk->ops;
    while (o) {
        nk_op *n = o->next;
        if ((o->kind == OP_PING || o->kind == OP_NODES_QUERY) &&
            !strcmp(o->peer, peer))
            op_finish(nk, o, err, detail);
        o = n;
    }
}

static void handshake_done(edi_link *l);
static void hs_flush(edi_link *l);
static void link_fail(edi_link *l, int err, const char *detail);

/* The acceptor l verified a peer we had a connection to, and that old
 * connection is gone now: finish (net_kernel's wait_pending answered). */
static void old_conn_gone(edi_link *l)
{
    l->phase = L_HANDSHAKE;
    if (edi_hs_old_conn_gone(&l->hs) != 0) {
        link_fail(l, EDIST_EPROTO,
                  "handshake: cannot continue after the old connection");
        return;
    }
    hs_flush(l);
    if (edi_hs_get_state(&l->hs) == EDI_HS_DONE)
        handshake_done(l);
}

/* A connection that was up is gone. */
static void link_down(edi_link *l, const char *reason, bool graceful)
{
    link_down_why(l, reason, graceful, NULL);
}

/* The same; why (may be NULL) says what went wrong, in the one line that
 * reports it (a warning then, not the routine node-down line). */
static void link_down_why(edi_link *l, const char *reason, bool graceful,
                          const char *why)
{
    edi_nk *nk = l->nk;
    if (l->dead)
        return;
    edi_peer *p = l->peer;
    char name[EDI_HS_NAME_MAX_BYTES + 1];
    snprintf(name, sizeof name, "%s", l->peer_name);
    bool hidden = l->hidden;
    link_kill(l, graceful);
    if (!p || p->owner != l)
        return;
    nk->stats.nodedowns++;
    if (nk->stats.connections_up)
        nk->stats.connections_up--;
    if (why)
        nk_log(nk, EDIST_LOG_WARNING, "node down: %s (%s): %s", name, reason,
               why);
    else
        nk_log(nk, EDIST_LOG_INFO, "node down: %s (%s)", name, reason);
    edi_link *waiting = p->state == EDI_PEER_UP_PENDING ? p->pending : NULL;
    if (waiting) {
        p->state = EDI_PEER_PENDING;
        p->owner = waiting;
        p->pending = NULL;
    } else {
        p->owner = NULL;
        edi_peer_waiter *w = p->waiters;
        p->waiters = NULL;
        edi_ct_remove(&nk->table, p);
        while (w) { /* cannot happen for an UP entry; be safe */
            edi_peer_waiter *n = w->next;
            free(w);
            w = n;
        }
    }
    char detail[EDI_HS_NAME_MAX_BYTES + 64];
    snprintf(detail, sizeof detail, "connection to %s went down (%s)", name,
             reason);
    fail_peer_ops(nk, name, EDIST_ECLOSED, detail);
    if (nk->rt_ops && nk->rt_ops->node_down)
        nk->rt_ops->node_down(nk->rt_user, name);
    emit_event(nk, false, name, hidden, reason, 0);
    if (waiting && !waiting->dead && waiting->phase == L_WAIT_OLD)
        old_conn_gone(waiting);
    shutdown_check(nk);
}

/* A connection that never came up failed. */
static void link_fail(edi_link *l, int err, const char *detail)
{
    edi_nk *nk = l->nk;
    if (l->dead)
        return;
    edi_peer *p = l->peer;
    bool owner = p && p->owner == l && p->state == EDI_PEER_PENDING;
    bool quiet = err == EDIST_EEXIST; /* lost a simultaneous connect: normal */
    if (!quiet) {
        nk->stats.handshakes_refused++;
        /* "dropped" when it ran out of time, "refused" when we said no. */
        const char *what = err == EDIST_ETIMEDOUT ? "dropped"
                           : err == EDIST_ECLOSED ? "closed"
                                                  : "refused";
        if (l->role == EDI_HS_ACCEPTOR)
            nk_log_limited(nk,
                           !l->named && err == EDIST_ETIMEDOUT
                               ? NK_RL_FIRST_MESSAGE
                               : NK_RL_INCOMING_FAILED,
                           EDIST_LOG_INFO, "connection from %s %s: %s", l->addr,
                           what, detail);
        else
            nk_log(nk, EDIST_LOG_INFO, "connection to %s failed: %s",
                   l->peer_name, detail);
    } else {
        nk_log(nk, EDIST_LOG_DEBUG, "connection %s %s dropped: %s",
               l->role == EDI_HS_ACCEPTOR ? "from" : "to", link_label(l),
               detail);
    }
    /* Whatever the machine queued last (nok, not_allowed) tells the peer
     * why; send it before closing. */
    bool flush = false;
    if (l->conn && l->phase != L_LOOKUP) {
        size_t len;
        const uint8_t *out = edi_hs_output(&l->hs, &len);
        if (out && len && edi_conn_send_raw(l->conn, out, len) == 0) {
            edi_hs_output_done(&l->hs, len);
            flush = true;
        }
    }
    link_kill(l, flush);
    if (p && p->pending == l && p->state == EDI_PEER_UP_PENDING) {
        p->state = EDI_PEER_UP;
        p->pending = NULL;
    } else if (owner) {
        p->owner = NULL;
        if (err == EDIST_EEXIST && l->role == EDI_HS_INITIATOR) {
            /* The peer's own attempt to reach us wins the simultaneous
             * connect: keep the entry (and its waiters) for it. */
            p->orphan_deadline_ms =
                edi_loop_now_ms(nk->loop) + nk->cfg.setuptime_ms;
        } else {
            peer_waiters_done(nk, p, err, detail);
        }
    }
    shutdown_check(nk);
}

/* The pending entry p is resolved with err: tell its waiters, drop it. */
static void peer_waiters_done(edi_nk *nk, edi_peer *p, int err,
                              const char *detail)
{
    edi_peer_waiter *w = edi_ct_take_waiters(p);
    edi_ct_remove(&nk->table, p);
    while (w) {
        edi_peer_waiter *n = w->next;
        nk_op *o = op_find(nk, w->id);
        free(w);
        if (o) {
            /* Ops react to the connect outcome (see op_connected). */
            op_connected(nk, o, err, detail);
        }
        w = n;
    }
}

static void setup_timeout(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    edi_link *l = arg;
    if (l->dead)
        return;
    char detail[512];
    if (l->phase == L_LOOKUP) {
        snprintf(detail, sizeof detail,
                 l->lookup ? "cannot resolve the host of %s within %u ms"
                           : "no answer from the port mapper of %s within %u ms",
                 l->peer_name, l->nk->cfg.setuptime_ms);
        link_fail(l, EDIST_ETIMEDOUT, detail);
        return;
    }
    int rc = edi_hs_timeout(&l->hs);
    /* An incoming connection's first deadline is the short one for its
     * name (hook_accept moves it on to the setup time). */
    bool first = l->role == EDI_HS_ACCEPTOR && !l->named;
    if (first)
        l->nk->stats.first_message_timeouts++;
    snprintf(detail, sizeof detail, "%s (%s %u ms)", edi_hs_error(&l->hs),
             first ? "first message time" : "setup time",
             first ? l->nk->cfg.first_message_time_ms
                   : l->nk->cfg.setuptime_ms);
    link_fail(l, rc ? rc : EDIST_ETIMEDOUT, detail);
}

static edi_link *link_new(edi_nk *nk, edi_hs_role role)
{
    edi_link *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->nk = nk;
    l->role = role;
    l->started_ms = edi_loop_now_ms(nk->loop);
    edi_timer_init(&l->setup_timer);
    edi_timer_init(&l->pump_timer);
    l->next = nk->links;
    if (nk->links)
        nk->links->prev = l;
    nk->links = l;
    edi_loop_timer_start(nk->loop, &l->setup_timer, nk->cfg.setuptime_ms, 0,
                         setup_timeout, l);
    return l;
}

/* ---- handshake hooks ----------------------------------------------------- */

static edi_hs_decision hook_accept(void *ctx, const edi_hs_peer *hp)
{
    edi_link *l = ctx;
    edi_nk *nk = l->nk;
    snprintf(l->peer_name, sizeof l->peer_name, "%s", hp->name);
    if (!l->named) {
        /* Past the first message: no longer evictable, and the rest of
         * the setup time applies. */
        l->named = true;
        uint64_t now = edi_loop_now_ms(nk->loop);
        uint64_t end = l->started_ms + nk->cfg.setuptime_ms;
        edi_loop_timer_start(nk->loop, &l->setup_timer,
                             end > now ? end - now : 1, 0, setup_timeout, l);
    }
    if (!strcmp(hp->name, nk->name)) {
        nk_log(nk, EDIST_LOG_INFO, "connection from %s claims our own name %s",
               l->addr, hp->name);
        return EDI_HS_NOT_ALLOWED;
    }
    if (nk->shutting_down)
        return EDI_HS_NOT_ALLOWED;
    edi_peer *p = edi_ct_find(&nk->table, hp->name);
    edi_hs_decision d = edi_ct_decide_incoming(p, nk->name, hp->name);
    switch (d) {
    case EDI_HS_GO:
        if (!p && edi_ct_add(&nk->table, hp->name, &p) != 0) {
            nk_log(nk, EDIST_LOG_WARNING, "connection from %s (%s): %s",
                   l->addr, hp->name, edist_last_error());
            return EDI_HS_NOT_ALLOWED;
        }
        p->owner = l;
        l->peer = p;
        break;
    case EDI_HS_GO_SIMULTANEOUS: {
        /* Our own attempt loses: net_kernel kills its setup process and
         * hands the entry (and whoever waits on it) to this one. */
        edi_link *old = p->owner;
        p->owner = l;
        l->peer = p;
        nk_log(nk, EDIST_LOG_DEBUG,
               "simultaneous connect with %s: the incoming one wins", hp->name);
        if (old) {
            old->peer = NULL;
            link_fail(old, EDIST_EEXIST, "simultaneous connect lost");
        }
        break;
    }
    case EDI_HS_ALREADY_UP:
        p->state = EDI_PEER_UP_PENDING;
        p->pending = l;
        l->peer = p;
        break;
    default:
        break;
    }
    return d;
}

static bool hook_still_pending(void *ctx, const char *peer_name)
{
    edi_link *l = ctx;
    return edi_ct_still_pending(edi_ct_find(&l->nk->table, peer_name), l);
}

static void hs_config(edi_nk *nk, edi_link *l, edi_hs_config *c)
{
    memset(c, 0, sizeof *c);
    c->role = l->role;
    c->our_name = nk->name;
    c->our_creation = nk->cfg.creation;
    c->hidden = nk->cfg.hidden;
    c->peer_name = l->role == EDI_HS_INITIATOR ? l->peer_name : NULL;
    c->cookies = nk->cfg.cookies;
    c->accept = hook_accept;
    c->still_pending = hook_still_pending;
    c->hook_ctx = l;
}

/* Send what the handshake queued. */
static void hs_flush(edi_link *l)
{
    size_t len;
    const uint8_t *out = edi_hs_output(&l->hs, &len);
    if (!out || !len || !l->conn)
        return;
    if (edi_conn_send_raw(l->conn, out, len) == 0)
        edi_hs_output_done(&l->hs, len);
}

/* ---- up ------------------------------------------------------------------ */

static void start_nodes_query(edi_nk *nk, edi_link *l);

static void handshake_done(edi_link *l)
{
    edi_nk *nk = l->nk;
    const edi_hs_result *r = edi_hs_get_result(&l->hs);
    edi_peer *p = l->peer;
    if (!r || !p || p->owner != l || p->state != EDI_PEER_PENDING) {
        link_fail(l, EDIST_EEXIST,
                  "handshake finished for an entry it no longer owns");
        return;
    }
    if (nk->shutting_down) {
        link_fail(l, EDIST_ECLOSED, "node is stopping");
        return;
    }
    edi_dist_reasm_limits rl = {
        .max_total_bytes = nk->cfg.reassembly_limit_bytes,
        .max_message_bytes = nk->cfg.max_message_bytes,
    };
    int rc = edi_dist_reasm_create(&rl, &l->reasm);
    if (rc) {
        link_fail(l, rc, "no memory for the reassembler");
        return;
    }
    uint64_t flags = edi_dflags_expand(r->flags);
    edi_sendq_config qc = {
        .flags = flags,
        .fragment_bytes = nk->cfg.fragment_bytes,
        .limit_bytes = nk->cfg.send_queue_limit_bytes,
        .ops = &sq_ops,
        .user = l,
    };
    rc = edi_sendq_new(&qc, &l->sq);
    if (rc) {
        link_fail(l, rc, "no memory for the send queue");
        return;
    }
    snprintf(l->peer_name, sizeof l->peer_name, "%s", r->peer_name);
    l->phase = L_UP;
    link_set_key(nk, l);
    l->hidden = r->hidden;
    l->flags = flags;
    incoming_remove(l);
    edi_loop_timer_cancel(nk->loop, &l->setup_timer);
    edi_conn_set_framing(l->conn, EDI_FRAMING_U32);
    l->tick.read_seen = l->frames_in;
    l->tick.written_seen = l->frames_out;
    l->tick.silent = 0;
    edi_hs_wipe(&l->hs);
    p->state = EDI_PEER_UP;
    p->hidden = r->hidden;
    p->flags = l->flags;
    p->creation = r->peer_creation;
    p->up_since_ms = edi_loop_now_ms(nk->loop);
    p->orphan_deadline_ms = 0;
    nk->stats.nodeups++;
    nk->stats.connections_up++;
    char fl[256];
    flags_summary(l->flags, fl, sizeof fl);
    nk_log(nk, EDIST_LOG_INFO, "node up: %s (%s, %s %s, %s)", p->name,
           r->hidden ? "hidden" : "visible",
           l->role == EDI_HS_INITIATOR ? "connected to" : "accepted from",
           l->addr, fl);
    emit_event(nk, true, p->name, r->hidden, NULL, l->flags);
    /* Waiters: the entry may have been dropped by a callback above. */
    p = edi_ct_find(&nk->table, r->peer_name);
    if (p && p->owner == l) {
        edi_peer_waiter *w = edi_ct_take_waiters(p);
        while (w) {
            edi_peer_waiter *n = w->next;
            nk_op *o = op_find(nk, w->id);
            free(w);
            if (o) {
                op_connected(nk, o, 0, "");
            }
            w = n;
        }
    }
    if (!l->dead && nk->cfg.connect_all && !nk->cfg.hidden && !l->hidden &&
        (l->flags & EDI_DFLAG_SPAWN))
        start_nodes_query(nk, l);
}

/* ---- connection callbacks ------------------------------------------------ */

static size_t on_bytes(edi_conn *c, void *user, const uint8_t *data, size_t len)
{
    (void)c;
    edi_link *l = user;
    if (l->dead)
        return len;
    size_t total = 0;
    while (total < len && edi_hs_get_state(&l->hs) == EDI_HS_RUNNING) {
        size_t used = 0;
        int rc = edi_hs_feed(&l->hs, data + total, len - total, &used);
        total += used;
        if (l->dead) /* a hook failed this link */
            return len;
        if (rc < 0)
            break;
        hs_flush(l);
        if (used == 0)
            break;
    }
    switch (edi_hs_get_state(&l->hs)) {
    case EDI_HS_FAILED:
        link_fail(l, edi_hs_error_code(&l->hs), edi_hs_error(&l->hs));
        return len;
    case EDI_HS_DONE:
        hs_flush(l);
        handshake_done(l);
        return total;
    case EDI_HS_WAIT_OLD_CONN:
        hs_flush(l);
        if (l->phase != L_WAIT_OLD) {
            l->phase = L_WAIT_OLD;
            edi_peer *p = l->peer;
            if (p && p->state == EDI_PEER_UP_PENDING && p->pending == l &&
                p->owner) {
                /* net_kernel's wait_pending: kill the old controller; its
                 * nodedown lets this one go on (link_down). */
                link_down(p->owner, "connection_closed", false);
            } else if (p && p->state == EDI_PEER_PENDING && p->owner == l) {
                old_conn_gone(l); /* the old one went by itself meanwhile */
            } else {
                link_fail(l, EDIST_EEXIST,
                          "replaced connection lost its entry");
            }
        }
        return total;
    case EDI_HS_RUNNING:
        break;
    }
    return total;
}

static void dispatch(edi_nk *nk, edi_link *l, const edi_dist_msg *m,
                     edi_rxbuf *rxbuf);

static void on_frame(edi_conn *c, void *user, const edi_frame *f)
{
    (void)c;
    edi_link *l = user;
    edi_nk *nk = l->nk;
    if (l->dead)
        return;
    l->frames_in++;
    if (f->len == 0) {
        nk->stats.ticks_received++;
        return;
    }
    nk->stats.bytes_received += f->len;
    if (f->len >= 2 && f->data[0] == EDIST_TAG_VERSION &&
        (f->data[1] == EDI_DIST_FRAG_HEADER ||
         f->data[1] == EDI_DIST_FRAG_CONT)) {
        l->fragments_in++;
        nk->stats.fragments_received++;
    }
    edi_dist_delivery d;
    int rc = edi_dist_reasm_feed(l->reasm, f->data, f->len, &d);
    if (rc < 0) {
        /* erts kills the connection on every kind of bad input after the
         * handshake (dist.c erts_net_message: data_error, decode_error,
         * invalid_message; a fragment of an unknown sequence or out of
         * order too); so do we, with one line saying why. */
        char why[512];
        if (rc == EDIST_ENOMEM)
            nk->stats.messages_over_limit++; /* message or reassembly limit */
        snprintf(why, sizeof why, "bad distribution message (%s): %s",
                 edist_strerror(rc), edist_last_error());
        link_down_why(l, "connection_closed", false, why);
        return;
    }
    if (rc == 0)
        return;
    l->messages_in++;
    if (d.owned) {
        l->fragmented_in++;
        nk->stats.fragmented_messages_received++;
    }
    nk->stats.messages_received++;
    /* A reassembled message is handed on in its own buffer (no copy):
     * the receiving process may keep it as long as it likes. */
    edi_rxbuf *owned = d.owned ? edi_rxbuf_adopt(d.owned, d.owned_len) : NULL;
    dispatch(nk, l, &d.msg, d.owned ? owned : f->rxbuf); /* NULL: copied */
    if (owned)
        edi_rxbuf_unref(owned);
    else
        free(d.owned);
}

static void on_close(edi_conn *c, void *user, int reason)
{
    edi_link *l = user;
    edi_nk *nk = l->nk;
    if (reason == EDIST_ENOMEM)
        nk->stats.messages_over_limit++; /* a frame over max_frame_bytes */
    /* This conn still counts as open during the bookkeeping below, so
     * that nothing frees l under our feet. */
    bool mine = c == l->conn;
    if (mine)
        l->conn = NULL;
    if (!l->dead && mine) {
        if (l->phase == L_UP) {
            link_down(l, "connection_closed", false);
        } else if (l->role == EDI_HS_INITIATOR && !l->connected) {
            char detail[600];
            snprintf(detail, sizeof detail, "cannot connect to %s: %s", l->addr,
                     edist_last_error()[0] ? edist_last_error()
                                           : edist_strerror(reason));
            link_fail(l, EDIST_EIO, detail);
        } else {
            int rc = edi_hs_eof(&l->hs);
            link_fail(l, rc ? rc : EDIST_ECLOSED, edi_hs_error(&l->hs));
        }
    }
    l->conns_open--;
    nk->conns_open--;
    link_maybe_free(l);
    shutdown_check(nk);
}

static void on_connected(edi_conn *c, void *user)
{
    (void)c;
    edi_link *l = user;
    l->connected = true;
}

static const edi_conn_ops dist_ops = {
    .on_connected = on_connected,
    .on_bytes = on_bytes,
    .on_frame = on_frame,
    .on_sent = on_sent,
    .on_close = on_close,
};

/* ---- outgoing: port mapper lookup through the loop ----------------------- */

static void epmd_connected(edi_conn *c, void *user)
{
    edi_link *l = user;
    char shortname[EDI_HS_NAME_MAX_BYTES + 1];
    snprintf(shortname, sizeof shortname, "%s", l->peer_name);
    char *at = strchr(shortname, '@');
    if (at)
        *at = '\0';
    uint8_t req[EDI_HS_NAME_MAX_BYTES + 8];
    int n = edi_epmd_encode_port_please2_req(req, sizeof req, shortname,
                                             strlen(shortname));
    if (n < 0 || edi_conn_send_raw(c, req, (size_t)n) != 0)
        link_fail(l, EDIST_EIO, "cannot send the port mapper request");
}

static void start_dist_connect(edi_link *l, uint16_t port);

static size_t epmd_bytes(edi_conn *c, void *user, const uint8_t *data,
                         size_t len)
{
    edi_link *l = user;
    if (l->dead || c != l->epmd_conn)
        return len;
    edi_epmd_node_fields f;
    size_t used = 0;
    int rc = edi_epmd_parse_port2_resp(data, len, &f, &used);
    if (rc == EDIST_ETRUNC)
        return 0;
    l->epmd_conn = NULL;
    edi_conn_abort(c, 0);
    char detail[600];
    if (rc == EDIST_ENOTFOUND) {
        snprintf(detail, sizeof detail,
                 "the port mapper on %s knows no node named %s", l->ip,
                 l->peer_name);
        link_fail(l, EDIST_ENOTFOUND, detail);
        return len;
    }
    if (rc < 0) {
        snprintf(detail, sizeof detail,
                 "bad answer from the port mapper on %s: %s", l->ip,
                 edist_last_error());
        link_fail(l, EDIST_EPROTO, detail);
        return len;
    }
    if (f.highest_version < 6 || f.lowest_version > 6) {
        snprintf(detail, sizeof detail,
                 "%s speaks distribution versions %u..%u, edist only 6",
                 l->peer_name, f.lowest_version, f.highest_version);
        link_fail(l, EDIST_EUNSUPPORTED, detail);
        return len;
    }
    start_dist_connect(l, f.port);
    return len;
}

static void epmd_close(edi_conn *c, void *user, int reason)
{
    edi_link *l = user;
    edi_nk *nk = l->nk;
    if (!l->dead && c == l->epmd_conn) {
        l->epmd_conn = NULL;
        char detail[600];
        if (reason == EDIST_ECLOSED)
            snprintf(detail, sizeof detail,
                     "the port mapper on %s closed without answering about %s",
                     l->ip, l->peer_name);
        else
            snprintf(detail, sizeof detail,
                     "cannot reach the port mapper on %s port %u: %s", l->ip,
                     nk->cfg.epmd_port, edist_strerror(reason));
        link_fail(l, reason == EDIST_ECLOSED ? EDIST_ECLOSED : EDIST_EIO,
                  detail);
    }
    l->conns_open--;
    nk->conns_open--;
    link_maybe_free(l);
    shutdown_check(nk);
}

static const edi_conn_ops epmd_ops = {
    .on_connected = epmd_connected,
    .on_bytes = epmd_bytes,
    .on_close = epmd_close,
};

static void start_dist_connect(edi_link *l, uint16_t port)
{
    edi_nk *nk = l->nk;
    snprintf(l->addr, sizeof l->addr, "%s:%u", l->ip, port);
    uint64_t now = edi_loop_now_ms(nk->loop);
    uint64_t left = l->started_ms + nk->cfg.setuptime_ms > now
                        ? l->started_ms + nk->cfg.setuptime_ms - now
                        : 1;
    edi_hs_config hc;
    hs_config(nk, l, &hc);
    int rc = edi_hs_init(&l->hs, &hc);
    if (rc) {
        link_fail(l, rc, edi_hs_error(&l->hs));
        return;
    }
    l->phase = L_HANDSHAKE;
    rc = edi_loop_connect(nk->loop, l->ip, port, left, &dist_ops, l, &l->conn);
    if (rc) {
        char detail[600];
        snprintf(detail, sizeof detail, "cannot connect to %s: %s", l->addr,
                 edist_last_error());
        link_fail(l, rc, detail);
        return;
    }
    l->conns_open++;
    nk->conns_open++;
    hs_flush(l); /* send_name goes out once connected */
}

/* The peer's host as an IPv4 (else IPv6) literal. Blocking: called on a
 * resolver thread. */
static int resolve_host(const char *host, char *ip, size_t cap)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    hints.ai_family = AF_INET;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        hints.ai_family = AF_UNSPEC;
        rc = getaddrinfo(host, NULL, &hints, &res);
    }
    if (rc != 0 || !res)
        return edist_set_error(EDIST_EIO, "cannot resolve host %s: %s", host,
                               gai_strerror(rc));
    const void *a =
        res->ai_family == AF_INET
            ? (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr
            : (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr;
    inet_ntop(res->ai_family, a, ip, (socklen_t)cap);
    freeaddrinfo(res);
    return 0;
}

/* The host is known as an address: ask its port mapper for the peer. */
static void lookup_port(edi_link *l)
{
    edi_nk *nk = l->nk;
    int rc = edi_loop_connect(nk->loop, l->ip, nk->cfg.epmd_port,
                              nk->cfg.setuptime_ms, &epmd_ops, l, &l->epmd_conn);
    if (rc) {
        char detail[600];
        snprintf(detail, sizeof detail,
                 "cannot reach the port mapper on %s: %s", l->ip,
                 edist_last_error());
        link_fail(l, rc, detail);
        return;
    }
    l->conns_open++;
    nk->conns_open++;
}

static void lookup_unlist(edi_nk *nk, nk_lookup *lk)
{
    if (lk->prev)
        lk->prev->next = lk->next;
    else
        nk->lookups = lk->next;
    if (lk->next)
        lk->next->prev = lk->prev;
}

/* Loop thread: the resolver thread is done. */
static void lookup_done(edi_loop *loop, void *arg)
{
    (void)loop;
    nk_lookup *lk = arg;
    pthread_join(lk->thread, NULL);
    lookup_unlist(lk->nk, lk);
    edi_link *l = lk->link;
    if (l) {
        l->lookup = NULL;
        if (!l->dead) {
            if (lk->rc) {
                link_fail(l, lk->rc, lk->err);
            } else {
                snprintf(l->ip, sizeof l->ip, "%s", lk->ip);
                lookup_port(l);
            }
        }
    }
    free(lk);
}

static void *lookup_main(void *arg)
{
    nk_lookup *lk = arg;
    lk->rc = resolve_host(lk->host, lk->ip, sizeof lk->ip);
    if (lk->rc)
        snprintf(lk->err, sizeof lk->err, "%s", edist_last_error());
    /* A full post queue is brief; a node being freed joins us instead. */
    while (!atomic_load(&lk->nk->freeing) &&
           edi_loop_post(lk->nk->loop, lookup_done, lk) == EDIST_EAGAIN)
        usleep(1000);
    return NULL;
}

/* Resolve l's host: at once for an address literal, else on a thread. */
static int lookup_start(edi_link *l, const char *host)
{
    struct in6_addr a6;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1) {
        snprintf(l->ip, sizeof l->ip, "%s", host);
        lookup_port(l);
        return 0;
    }
    if (strlen(host) >= sizeof ((nk_lookup *)0)->host)
        return edist_set_error(EDIST_EINVAL, "host name too long: %s", host);
    nk_lookup *lk = calloc(1, sizeof *lk);
    if (!lk)
        return edist_set_error(EDIST_ENOMEM, "no memory to resolve %s", host);
    lk->nk = l->nk;
    lk->link = l;
    snprintf(lk->host, sizeof lk->host, "%s", host);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256u * 1024u); /* getaddrinfo and NSS */
    int err = pthread_create(&lk->thread, &attr, lookup_main, lk);
    pthread_attr_destroy(&attr);
    if (err) {
        free(lk);
        return edist_set_error(EDIST_ENOMEM, "cannot start a resolver thread for %s", host);
    }
    l->lookup = lk;
    lk->next = l->nk->lookups;
    if (lk->next)
        lk->next->prev = lk;
    l->nk->lookups = lk;
    return 0;
}

/* A new outgoing attempt owning p. */
static void start_outgoing(edi_nk *nk, edi_peer *p)
{
    edi_link *l = link_new(nk, EDI_HS_INITIATOR);
    if (!l) {
        peer_waiters_done(nk, p, EDIST_ENOMEM, "no memory for a connection");
        return;
    }
    snprintf(l->peer_name, sizeof l->peer_name, "%s", p->name);
    l->peer = p;
    p->owner = l;
    l->phase = L_LOOKUP;
    const char *host = strchr(p->name, '@') + 1;
    snprintf(l->addr, sizeof l->addr, "%s", host);
    int rc = lookup_start(l, host);
    if (rc) {
        char detail[600];
        snprintf(detail, sizeof detail, "%s", edist_last_error());
        link_fail(l, rc, detail);
    }
}

/* Make sure a connection to peer is up or under way; op (may be 0) waits
 * for the outcome. */
static void want_connection(edi_nk *nk, const char *peer, nk_op *op)
{
    edi_peer *p = edi_ct_find(&nk->table, peer);
    if (p && (p->state == EDI_PEER_UP || p->state == EDI_PEER_UP_PENDING)) {
        if (op) {
            op_connected(nk, op, 0, "");
        }
        return;
    }
    bool fresh = false;
    if (!p) {
        int rc = edi_ct_add(&nk->table, peer, &p);
        if (rc) {
            if (op) {
                char detail[300];
                snprintf(detail, sizeof detail, "%s", edist_last_error());
                op_connected(nk, op, rc, detail);
            }
            return;
        }
        fresh = true;
    }
    if (op && edi_ct_add_waiter(p, op->id) != 0) {
        op_connected(nk, op, EDIST_ENOMEM, "no memory");
        if (fresh)
            edi_ct_remove(&nk->table, p);
        return;
    }
    if (fresh || (p->state == EDI_PEER_PENDING && !p->owner &&
                  p->orphan_deadline_ms == 0))
        start_outgoing(nk, p);
}

/* ---- incoming ------------------------------------------------------------ */

/* Admission before authentication, as the port mapper does it: an
 * unauthenticated peer may hold a slot only while it is worth keeping.
 * When the scope a newcomer would overfill (its address, else the whole
 * table) is full, that scope's oldest connection that has not sent its
 * name makes room; that one is the likeliest to be idle or hostile, and
 * one that has sent its name is doing real work. Only a scope in which
 * every connection has sent its name refuses the newcomer. False: fd
 * must be closed. */
static bool admit(edi_nk *nk, const char *ip, const char *addr)
{
    if (nk->shutting_down) {
        nk->stats.handshakes_refused++;
        nk_log_limited(nk, NK_RL_REFUSED, EDIST_LOG_WARNING,
                       "connection from %s refused: the node is stopping",
                       addr);
        return false;
    }
    size_t from_ip = 0;
    edi_link *oldest = NULL, *oldest_from_ip = NULL;
    for (edi_link *l = nk->in_head; l; l = l->in_next) {
        bool same = !strcmp(l->ip, ip);
        from_ip += same;
        if (!l->named && !oldest)
            oldest = l;
        if (!l->named && same && !oldest_from_ip)
            oldest_from_ip = l;
    }
    bool address_full = from_ip >= nk->cfg.max_handshakes_per_address;
    if (!address_full && nk->in_count < nk->cfg.max_handshakes)
        return true;
    char scope[INET6_ADDRSTRLEN + 96];
    if (address_full)
        snprintf(scope, sizeof scope,
                 "%zu handshakes in progress from %s "
                 "(max_handshakes_per_address)",
                 from_ip, ip);
    else
        snprintf(scope, sizeof scope,
                 "%zu handshakes in progress (max_handshakes)", nk->in_count);
    edi_link *victim = address_full ? oldest_from_ip : oldest;
    if (!victim) {
        nk->stats.handshakes_refused++;
        if (address_full)
            nk->stats.handshakes_refused_address++;
        else
            nk->stats.handshakes_refused_full++;
        nk_log_limited(nk, NK_RL_REFUSED, EDIST_LOG_WARNING,
                       "connection from %s refused: %s, each past its name",
                       addr, scope);
        return false;
    }
    nk->stats.handshakes_evicted++;
    nk->stats.handshakes_refused++;
    nk_log_limited(nk, NK_RL_EVICTED, EDIST_LOG_WARNING,
                   "connection from %s evicted before it sent its name: %s; "
                   "making room for %s",
                   victim->addr, scope, addr);
    /* It owns no table entry and nobody waits for it. */
    link_kill(victim, false);
    return true;
}

void edi_nk_accept(edi_nk *nk, int fd, const char *ip, uint16_t port)
{
    char addr[INET6_ADDRSTRLEN + 8];
    snprintf(addr, sizeof addr, "%s:%u", ip, port);
    if (!admit(nk, ip, addr)) {
        close(fd);
        shutdown_check(nk);
        return;
    }
    edi_link *l = link_new(nk, EDI_HS_ACCEPTOR);
    if (!l) {
        close(fd);
        return;
    }
    l->phase = L_HANDSHAKE;
    snprintf(l->ip, sizeof l->ip, "%s", ip);
    snprintf(l->addr, sizeof l->addr, "%s", addr);
    l->incoming = true;
    l->in_prev = nk->in_tail;
    if (nk->in_tail)
        nk->in_tail->in_next = l;
    else
        nk->in_head = l;
    nk->in_tail = l;
    nk->in_count++;
    edi_loop_timer_start(nk->loop, &l->setup_timer,
                         nk->cfg.first_message_time_ms, 0, setup_timeout, l);
    edi_hs_config hc;
    hs_config(nk, l, &hc);
    if (edi_hs_init(&l->hs, &hc) != 0) {
        close(fd);
        link_fail(l, edi_hs_error_code(&l->hs), edi_hs_error(&l->hs));
        return;
    }
    if (edi_conn_adopt(nk->loop, fd, &dist_ops, l, &l->conn) != 0) {
        link_fail(l, EDIST_ENOMEM, "cannot adopt the socket");
        return;
    }
    l->conns_open++;
    nk->conns_open++;
}

/* ---- ticks and housekeeping ---------------------------------------------- */

static void tick_all(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    edi_nk *nk = arg;
    edi_link *l = nk->links;
    while (l) {
        edi_link *next = l->next;
        if (l->phase == L_UP && l->conn) {
            edi_tick_action a =
                edi_tick_check(&l->tick, l->frames_in, l->frames_out,
                               edi_conn_send_queue_bytes(l->conn) == 0 &&
                                   edi_sendq_idle(l->sq),
                               l->hidden, EDI_NK_TICK_INTENSITY);
            if (a == EDI_TICK_TIMEOUT) {
                nk_log(nk, EDIST_LOG_WARNING,
                       "%s not responding: nothing received for %u ms, "
                       "removing the connection",
                       l->peer_name, nk->cfg.ticktime_ms);
                link_down(l, "net_tick_timeout", false);
            } else if (a == EDI_TICK_SEND) {
                if (edi_conn_send_frame(l->conn, NULL, 0) == 0) {
                    l->frames_out++;
                    l->tick.written_seen =
                        l->frames_out; /* a tick is not traffic */
                    nk->stats.ticks_sent++;
                }
            }
        }
        l = next;
    }
}

static void housekeeping(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    edi_nk *nk = arg;
    uint64_t now = edi_loop_now_ms(nk->loop);
    ratelog_flush(nk);
    edi_peer *p = nk->table.head;
    while (p) {
        edi_peer *next = p->list_next;
        if (p->state == EDI_PEER_PENDING && !p->owner &&
            p->orphan_deadline_ms && now >= p->orphan_deadline_ms) {
            char detail[EDI_HS_NAME_MAX_BYTES + 80];
            snprintf(detail, sizeof detail,
                     "%s refused our connection and did not connect to us",
                     p->name);
            peer_waiters_done(nk, p, EDIST_ETIMEDOUT, detail);
        }
        p = next;
    }
}

/* ---- ops: connect, ping, nodes query ------------------------------------- */

static void send_ping(edi_nk *nk, nk_op *o);

static void op_connected(edi_nk *nk, nk_op *o, int err, const char *detail)
{
    switch (o->kind) {
    case OP_CONNECT:
        op_finish(nk, o, err, detail);
        break;
    case OP_PING:
        if (err)
            op_finish(nk, o, err, detail);
        else
            send_ping(nk, o);
        break;
    case OP_MONITOR_NODE:
        if (err) {
            nk_sub *s = sub_find(nk, o->sub_handle);
            if (s) {
                s->removed = true;
                edist_node_event ev = {.up = false,
                                       .node = o->peer,
                                       .reason = "connection_setup_failed"};
                fire_one(nk, s, &ev);
                subs_sweep(nk);
            }
        }
        op_finish(nk, o, err, detail);
        break;
    case OP_NODES_QUERY:
        op_finish(nk, o, err, detail);
        break;
    }
}

static void op_timeout(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    nk_op *o = arg;
    edi_nk *nk = o->nk;
    char detail[EDI_HS_NAME_MAX_BYTES + 64];
    snprintf(detail, sizeof detail, "no answer from %s in time", o->peer);
    if (o->kind == OP_MONITOR_NODE) {
        op_connected(nk, o, EDIST_ETIMEDOUT, detail);
        return;
    }
    op_finish(nk, o, EDIST_ETIMEDOUT, detail);
}

static bool valid_peer(edi_nk *nk, const char *peer)
{
    if (!peer || !edi_hs_node_name_ok(peer, strlen(peer))) {
        edist_set_error(EDIST_EINVAL, "bad node name '%s'",
                        peer ? peer : "(null)");
        return false;
    }
    (void)nk;
    return true;
}

int edi_nk_connect(edi_nk *nk, const char *peer, uint32_t timeout_ms,
                   edi_nk_done_fn done, void *arg)
{
    if (!valid_peer(nk, peer))
        return EDIST_EINVAL;
    if (!strcmp(peer, nk->name))
        return edist_set_error(EDIST_EINVAL, "%s is this node", peer);
    if (nk->shutting_down)
        return edist_set_error(EDIST_ECLOSED, "node is stopping");
    nk_op *o = op_new(nk, OP_CONNECT, peer, done, arg,
                      timeout_ms ? timeout_ms : nk->cfg.setuptime_ms + 1000);
    if (!o)
        return EDIST_EAGAIN; /* op_new said why */
    want_connection(nk, peer, o);
    return 0;
}

int edi_nk_ping(edi_nk *nk, const char *peer, uint32_t timeout_ms,
                edi_nk_done_fn done, void *arg)
{
    if (!valid_peer(nk, peer))
        return EDIST_EINVAL;
    if (!strcmp(peer, nk->name)) {
        done(arg, 0, ""); /* net_adm:ping(node()) is pong */
        return 0;
    }
    if (nk->shutting_down)
        return edist_set_error(EDIST_ECLOSED, "node is stopping");
    nk_op *o =
        op_new(nk, OP_PING, peer, done, arg,
               timeout_ms ? timeout_ms : EDIST_NODE_CALL_TIMEOUT_MS_DEFAULT);
    if (!o)
        return EDIST_EAGAIN; /* op_new said why */
    make_ref(nk, o->ref);
    want_connection(nk, peer, o);
    return 0;
}

static edi_link *up_link(edi_nk *nk, const char *peer)
{
    edi_peer *p = edi_ct_find(&nk->table, peer);
    if (!p || (p->state != EDI_PEER_UP && p->state != EDI_PEER_UP_PENDING) ||
        !p->owner)
        return NULL;
    return p->owner;
}

bool edi_nk_is_up(edi_nk *nk, const char *peer)
{
    return up_link(nk, peer) != NULL;
}

/* REG_SEND {'$gen_call', {Self, Ref}, {is_auth, ThisNode}} to net_kernel. */
static void send_ping(edi_nk *nk, nk_op *o)
{
    edi_link *l = up_link(nk, o->peer);
    if (!l) {
        op_finish(nk, o, EDIST_ECLOSED, "connection went down");
        return;
    }
    edist_buf *s = &nk->scratch;
    edist_buf_reset(s);
    edist_enc_atomz(s, "net_kernel");
    size_t msg_at = s->len;
    edist_enc_tuple(s, 3);
    edist_enc_atomz(s, "$gen_call");
    edist_enc_tuple(s, 2);
    enc_pid(nk, s, EDI_NK_KERNEL_PID_ID);
    enc_ref(nk, s, o->ref);
    edist_enc_tuple(s, 2);
    edist_enc_atomz(s, "is_auth");
    edist_enc_atomz(s, nk->name);
    if (edist_buf_error(s)) {
        op_finish(nk, o, edist_buf_error(s), "cannot encode the ping");
        return;
    }
    edist_term_view name = {.ptr = s->data, .len = msg_at};
    edist_buf_reset(&nk->out);
    edi_dist_build_reg_send(&nk->out, l->flags, NULL, nk->kernel_pid, name,
                            buf_view(s, msg_at));
    int rc = send_built(nk, l, EDI_NK_KERNEL_PID_ID, true);
    if (rc)
        op_finish(nk, o, rc, edist_last_error());
}

/* SPAWN_REQUEST erpc:execute_call(Ref, erlang, nodes, []) with a monitor:
 * the answer comes back as the DOWN reason {Ref, return, Nodes}. */
static void start_nodes_query(edi_nk *nk, edi_link *l)
{
    nk_op *o = op_new(nk, OP_NODES_QUERY, l->peer_name, NULL, NULL,
                      NK_NODES_QUERY_TIMEOUT_MS);
    if (!o)
        return;
    make_ref(nk, o->ref);
    uint32_t call_ref[3];
    make_ref(nk, call_ref);
    edist_buf *s = &nk->scratch;
    edist_buf_reset(s);
    enc_ref(nk, s, o->ref);
    size_t opts_at = s->len;
    edist_enc_list(s, 1);
    edist_enc_atomz(s, "monitor");
    edist_enc_nil(s);
    size_t args_at = s->len;
    edist_enc_list(s, 4);
    enc_ref(nk, s, call_ref);
    edist_enc_atomz(s, "erlang");
    edist_enc_atomz(s, "nodes");
    edist_enc_nil(s);
    edist_enc_nil(s);
    edist_term_view req = {.ptr = s->data, .len = opts_at};
    edist_term_view opts = {.ptr = s->data + opts_at, .len = args_at - opts_at};
    edist_buf_reset(&nk->out);
    edi_dist_build_spawn_request(&nk->out, l->flags, NULL, req, nk->kernel_pid,
                                 nk->kernel_pid, "erpc", "execute_call", 4,
                                 opts, buf_view(s, args_at));
    int rc = send_built(nk, l, EDI_NK_KERNEL_PID_ID, false);
    if (rc) {
        nk_log(nk, EDIST_LOG_DEBUG, "cannot ask %s for its nodes: %s",
               l->peer_name, edist_strerror(rc));
        op_finish(nk, o, rc, NULL);
    }
}

/* The answer to a nodes query: connect to every node we lack. */
static void nodes_answer(edi_nk *nk, nk_op *o, edist_cursor *c)
{
    char from[EDI_HS_NAME_MAX_BYTES + 1];
    snprintf(from, sizeof from, "%s", o->peer);
    op_finish(nk, o, 0, NULL);
    uint32_t arity, n;
    edist_atom tag;
    if (edist_dec_tuple(c, &arity) || arity != 3 || edist_skip(c) ||
        edist_dec_atom(c, &tag) || !edist_atom_eq(&tag, "return") ||
        edist_dec_list(c, &n)) {
        nk_log(nk, EDIST_LOG_DEBUG,
               "%s answered the nodes query with something else", from);
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        char name[EDI_HS_NAME_MAX_BYTES + 1];
        if (edist_dec_atom_copy(c, name, sizeof name) < 0)
            return;
        if (!strcmp(name, nk->name) || edi_ct_find(&nk->table, name) ||
            !edi_hs_node_name_ok(name, strlen(name)))
            continue;
        nk_log(nk, EDIST_LOG_INFO, "connecting to %s (a node of %s)", name,
               from);
        want_connection(nk, name, NULL);
    }
}

/* ---- serving: net_kernel, monitors, erpc spawns -------------------------- */

/* One of the node's own pseudo-processes (the node's, or its net
 * kernel's): replies to our calls come to them. */
static bool is_self(edi_nk *nk, const edist_pid *p)
{
    return (p->id == EDI_NK_SELF_PID_ID || p->id == EDI_NK_KERNEL_PID_ID) &&
           p->serial == 0 && p->creation == nk->cfg.creation &&
           edist_atom_eq(&p->node, nk->name);
}

/* The destination of m, decoded by the parser. */
static bool to_self(edi_nk *nk, const edi_dist_msg *m)
{
    return m->to_is_pid && is_self(nk, &m->to_pid);
}

static bool view_is_atom(edist_term_view v, const char *name)
{
    edist_atom a;
    return edi_dist_view_atom(v, &a) == 0 && edist_atom_eq(&a, name);
}

/* Cursor over a message's payload (never compressed: erts sends no
 * compressed distribution terms, and the builders refuse them). */
static int payload_cursor(const edi_dist_msg *m, edist_cursor *c)
{
    if (!m->payload.ptr)
        return EDIST_ENOTFOUND;
    edist_cursor_init(c, m->payload.ptr, m->payload.len);
    return 0;
}

static void hand_over(edi_nk *nk, edi_link *l, const edi_dist_msg *m,
                      edi_rxbuf *rxbuf)
{
    if (!nk->msg_fn && nk->rt_ops && nk->rt_ops->dispatch) {
        nk->dispatching++;
        int rc = nk->rt_ops->dispatch(nk->rt_user, l->peer_name, l->flags, m,
                                      rxbuf);
        nk->dispatching--;
        if (rc == EDIST_ENOTFOUND) {
            edist_atom name = {0};
            edi_dist_view_atom(m->to_name, &name);
            nk->stats.messages_dropped++;
            nk_log(nk, EDIST_LOG_DEBUG, "dropped %s to %.*s from %s (no such "
                   "process)", edi_dop_name(m->op), (int)name.len,
                   name.ptr ? name.ptr : "", l->peer_name);
        }
        return;
    }
    if (nk->msg_fn) {
        /* The handler gets a term it can walk: erts decodes a message when
         * its receiver reads it and kills the connection if it cannot
         * (bad_dist_ext); a message nobody receives is dropped unread. */
        size_t at = 0;
        int vrc = m->payload.ptr
                      ? edist_term_validate(m->payload.ptr, m->payload.len, &at)
                      : 0;
        if (vrc) {
            char why[300];
            snprintf(why, sizeof why, "bad %s payload (%s at byte %zu of %zu)",
                     edi_dop_name(m->op), edist_strerror(vrc), at,
                     m->payload.len);
            link_down_why(l, "connection_closed", false, why);
            return;
        }
        edist_node_message msg = {
            .peer = l->peer_name,
            .op = m->op,
            .control = m->control.ptr,
            .control_len = m->control.len,
            .payload = m->payload.ptr,
            .payload_len = m->payload.len,
        };
        nk->dispatching++;
        nk->msg_fn(nk->msg_user, &msg);
        nk->dispatching--;
        return;
    }
    nk->stats.messages_dropped++;
    nk_log(nk, EDIST_LOG_DEBUG, "dropped %s from %s (no process runtime yet)",
           edi_dop_name(m->op), l->peer_name);
}

/* A reply {Tag, Reply} to one of our calls, or something for the handler. */
static void message_to_self(edi_nk *nk, edi_link *l, const edi_dist_msg *m,
                            edi_rxbuf *rxbuf)
{
    edist_cursor c;
    uint32_t arity;
    edist_ref ref;
    nk_op *o = NULL;
    if (payload_cursor(m, &c) == 0 && edist_dec_tuple(&c, &arity) == 0 &&
        arity == 2 && edist_dec_ref(&c, &ref) == 0)
        o = op_find_ref(nk, OP_PING, &ref);
    if (o) {
        edist_atom a;
        int yes = edist_dec_atom(&c, &a) == 0 && edist_atom_eq(&a, "yes");
        char detail[EDI_HS_NAME_MAX_BYTES + 64];
        snprintf(detail, sizeof detail, "%s did not answer yes", o->peer);
        op_finish(nk, o, yes ? 0 : EDIST_EAUTH, yes ? NULL : detail);
    } else {
        hand_over(nk, l, m, rxbuf);
    }
}

/* The DOWN of a monitor we set: the answer of a nodes query. */
static void monitor_exit_to_self(edi_nk *nk, edi_link *l, const edi_dist_msg *m,
                                 edi_rxbuf *rxbuf)
{
    edist_ref ref;
    nk_op *o = NULL;
    if (edi_dist_view_ref(m->ref, &ref) == 0)
        o = op_find_ref(nk, OP_NODES_QUERY, &ref);
    if (!o) {
        hand_over(nk, l, m, rxbuf);
        return;
    }
    edist_cursor c;
    int rc;
    if (m->op == EDI_DOP_PAYLOAD_MONITOR_P_EXIT) {
        rc = payload_cursor(m, &c);
    } else {
        edist_cursor_init(&c, m->reason.ptr, m->reason.len);
        rc = m->reason.ptr ? 0 : EDIST_ENOTFOUND;
    }
    if (rc == 0)
        nodes_answer(nk, o, &c);
    else
        op_finish(nk, o, rc, NULL);
}

static void spawn_reply_to_self(edi_nk *nk, edi_link *l, const edi_dist_msg *m,
                                edi_rxbuf *rxbuf)
{
    edist_ref ref;
    nk_op *o = NULL;
    if (edi_dist_view_ref(m->ref, &ref) == 0)
        o = op_find_ref(nk, OP_NODES_QUERY, &ref);
    if (!o) {
        hand_over(nk, l, m, rxbuf);
        return;
    }
    edist_atom err;
    if (edi_dist_view_atom(m->result, &err) == 0) {
        nk_log(nk, EDIST_LOG_DEBUG, "%s refused the nodes query: %.*s", o->peer,
               (int)err.len, err.ptr);
        op_finish(nk, o, EDIST_EUNSUPPORTED, NULL);
    }
    /* A pid: the answer follows as the monitor's DOWN. */
}

/* {M, F, Args, []}: one stack frame, as erts reports undef. */
static void enc_frame(edist_buf *s, edist_atom m, edist_atom f,
                      edist_term_view args)
{
    edist_enc_list(s, 1);
    edist_enc_tuple(s, 4);
    edist_enc_atom(s, m.ptr, m.len);
    edist_enc_atom(s, f.ptr, f.len);
    edist_enc_raw(s, args.ptr, args.len);
    edist_enc_nil(s);
    edist_enc_nil(s);
}

static void enc_nodes(edi_nk *nk, edist_buf *s, unsigned selectors);

/* Encode the exit reason of the process a spawn request would have run.
 * Only what transitive connection and is_alive checks need is served:
 * erpc:execute_call(Ref, erlang, nodes|node|is_alive, []); the process
 * runtime replaces this table. */
static bool spawn_result(edi_nk *nk, const edi_dist_msg *m, edist_cursor *args,
                         edist_term_view args_view, edist_buf *s)
{
    uint32_t n;
    edist_term_view ref, a;
    edist_atom mod, fun;
    bool execute_call = edist_atom_eq(&m->spawn_module, "erpc") &&
                        edist_atom_eq(&m->spawn_function, "execute_call") &&
                        m->spawn_arity == 4;
    bool execute_cast = edist_atom_eq(&m->spawn_module, "erpc") &&
                        edist_atom_eq(&m->spawn_function, "execute_cast") &&
                        m->spawn_arity == 3;
    if (execute_cast) {
        edist_enc_atomz(s, "normal");
        return true;
    }
    if (execute_call && edist_dec_list(args, &n) == 0 && n == 4 &&
        edist_dec_term(args, &ref) == 0 && edist_dec_atom(args, &mod) == 0 &&
        edist_dec_atom(args, &fun) == 0 && edist_dec_term(args, &a) == 0) {
        bool no_args = a.len == 1 && a.ptr[0] == EDIST_TAG_NIL;
        bool erlang = edist_atom_eq(&mod, "erlang");
        if (erlang && no_args &&
            (edist_atom_eq(&fun, "nodes") || edist_atom_eq(&fun, "node") ||
             edist_atom_eq(&fun, "is_alive"))) {
            edist_enc_tuple(s, 3);
            edist_enc_raw(s, ref.ptr, ref.len);
            edist_enc_atomz(s, "return");
            if (edist_atom_eq(&fun, "nodes"))
                enc_nodes(nk, s, EDIST_NODES_VISIBLE);
            else if (edist_atom_eq(&fun, "node"))
                edist_enc_atomz(s, nk->name);
            else
                edist_enc_atomz(s, "true");
            return true;
        }
        /* {Ref, error, undef, [{M, F, A, []}]} as erpc reports it. */
        edist_enc_tuple(s, 4);
        edist_enc_raw(s, ref.ptr, ref.len);
        edist_enc_atomz(s, "error");
        edist_enc_atomz(s, "undef");
        enc_frame(s, mod, fun, a);
        return false;
    }
    /* Any other function: the process dies at once with undef. */
    edist_enc_tuple(s, 2);
    edist_enc_atomz(s, "undef");
    enc_frame(s, m->spawn_module, m->spawn_function, args_view);
    return false;
}

static void serve_spawn(edi_nk *nk, edi_link *l, const edi_dist_msg *m,
                        edi_rxbuf *rxbuf)
{
    if (!nk->msg_fn && nk->rt_ops && nk->rt_ops->has_export &&
        nk->rt_ops->has_export(nk->rt_user, &m->spawn_module,
                               &m->spawn_function, m->spawn_arity)) {
        hand_over(nk, l, m, rxbuf);
        return;
    }
    bool want_link = false, want_monitor = false;
    edist_cursor oc;
    uint32_t n;
    edist_cursor_init(&oc, m->options.ptr, m->options.len);
    if (m->options.ptr && edist_dec_list(&oc, &n) == 0) {
        for (uint32_t i = 0; i < n; i++) {
            edist_term_info info;
            if (edist_peek(&oc, &info))
                break;
            edist_atom a;
            uint32_t ar;
            edist_cursor save = oc;
            if (info.type == EDIST_TYPE_ATOM && edist_dec_atom(&oc, &a) == 0) {
                want_link |= edist_atom_eq(&a, "link");
                want_monitor |= edist_atom_eq(&a, "monitor");
                continue;
            }
            if (info.type == EDIST_TYPE_TUPLE &&
                edist_dec_tuple(&oc, &ar) == 0 && ar >= 1 &&
                edist_dec_atom(&oc, &a) == 0 && edist_atom_eq(&a, "monitor"))
                want_monitor = true;
            oc = save;
            if (edist_skip(&oc))
                break;
        }
    }
    edist_cursor args;
    edist_term_view args_view = {0};
    if (payload_cursor(m, &args) == 0) {
        args_view.ptr = args.data + args.pos;
        args_view.len = edist_cursor_remaining(&args);
    }
    edist_buf *s = &nk->scratch;
    edist_buf_reset(s);
    uint32_t pid_id = nk->next_pid_id;
    enc_pid(nk, s, pid_id);
    size_t reason_at = s->len;
    nk->next_pid_id = nk->next_pid_id == UINT32_MAX ? NK_FIRST_SPAWN_PID_ID
                                                    : nk->next_pid_id + 1;
    bool builtin = false;
    if (args_view.ptr)
        builtin = spawn_result(nk, m, &args, args_view, s);
    else
        edist_enc_atomz(s, "badarg");
    if (!builtin && nk->msg_fn) {
        /* Not ours to answer: whoever installed a handler may. */
        hand_over(nk, l, m, rxbuf);
        return;
    }
    edist_term_view pid = {.ptr = s->data, .len = reason_at};
    edist_term_view reason = buf_view(s, reason_at);
    uint32_t flags = (want_link ? EDI_SPAWN_FLAG_LINK : 0) |
                     (want_monitor ? EDI_SPAWN_FLAG_MONITOR : 0);
    edist_buf_reset(&nk->out);
    edi_dist_build_spawn_reply(&nk->out, l->flags, NULL, m->ref, m->from, flags,
                               pid);
    /* The reply, then the exit: one stream, the new process's. */
    if (send_built(nk, l, pid_id, true) != 0)
        return;
    if (want_monitor) {
        edist_buf_reset(&nk->out);
        edi_dist_build_monitor_p_exit(&nk->out, l->flags, pid, m->from, m->ref,
                                      reason);
        if (send_built(nk, l, pid_id, true) != 0)
            return;
    }
    if (want_link) {
        edist_buf_reset(&nk->out);
        edi_dist_build_exit(&nk->out, l->flags, NULL, pid, m->from, reason);
        send_built(nk, l, pid_id, true);
    }
}

static void reply_noproc_monitor(edi_nk *nk, edi_link *l, const edi_dist_msg *m)
{
    uint8_t noproc[16];
    edist_buf b;
    edist_buf_init_fixed(&b, noproc, sizeof noproc);
    edist_enc_atomz(&b, "noproc");
    edist_buf_reset(&nk->out);
    edi_dist_build_monitor_p_exit(&nk->out, l->flags, m->to, m->from, m->ref,
                                  buf_view(&b, 0));
    send_built(nk, l, EDI_NK_KERNEL_PID_ID, true);
}

/* Does a process of the runtime own the registered name in view v? */
static bool rt_owns_name(edi_nk *nk, edist_term_view v)
{
    edist_atom a;
    return !nk->msg_fn && nk->rt_ops && nk->rt_ops->has_name &&
           edi_dist_view_atom(v, &a) == 0 &&
           nk->rt_ops->has_name(nk->rt_user, &a);
}

/* One received message: what the node itself answers (its own
 * pseudo-processes, net_kernel while no process has that name, spawn
 * requests), else the runtime's. rxbuf holds the bytes m points into
 * (NULL: they are valid during the call only). */
static void dispatch(edi_nk *nk, edi_link *l, const edi_dist_msg *m,
                     edi_rxbuf *rxbuf)
{
    switch (m->sig) {
    case EDI_SIG_SEND:
        if (to_self(nk, m))
            message_to_self(nk, l, m, rxbuf);
        else
            hand_over(nk, l, m, rxbuf);
        return;
    case EDI_SIG_REG_SEND:
        if (!rt_owns_name(nk, m->to_name) &&
            view_is_atom(m->to_name, "net_kernel")) {
            edist_term_view from, tag;
            if (edi_dist_match_is_auth(m, &from, &tag, NULL) == 1) {
                uint8_t yes[8];
                edist_buf b;
                edist_buf_init_fixed(&b, yes, sizeof yes);
                edist_enc_atomz(&b, "yes");
                edist_buf_reset(&nk->out);
                edi_dist_build_gen_reply(&nk->out, l->flags, nk->kernel_pid,
                                         from, tag, buf_view(&b, 0));
                send_built(nk, l, EDI_NK_KERNEL_PID_ID, true);
                nk_log(nk, EDIST_LOG_DEBUG, "is_auth from %s: yes",
                       l->peer_name);
                return;
            }
        }
        hand_over(nk, l, m, rxbuf);
        return;
    case EDI_SIG_MONITOR:
    case EDI_SIG_DEMONITOR:
        /* gen:call monitors {net_kernel, Node} before its call: a monitor
         * of a process that exists needs no answer. Anything else that
         * nobody serves gets DOWN noproc at once, as erts answers. */
        if (!rt_owns_name(nk, m->to) &&
            (view_is_atom(m->to, "net_kernel") || to_self(nk, m)))
            return;
        if (m->sig == EDI_SIG_MONITOR && !nk->msg_fn && !nk->rt_ops)
            reply_noproc_monitor(nk, l, m);
        else
            hand_over(nk, l, m, rxbuf);
        return;
    case EDI_SIG_MONITOR_EXIT:
        if (to_self(nk, m))
            monitor_exit_to_self(nk, l, m, rxbuf);
        else
            hand_over(nk, l, m, rxbuf);
        return;
    case EDI_SIG_SPAWN_REPLY:
        if (to_self(nk, m))
            spawn_reply_to_self(nk, l, m, rxbuf);
        else
            hand_over(nk, l, m, rxbuf);
        return;
    case EDI_SIG_SPAWN_REQUEST:
        serve_spawn(nk, l, m, rxbuf);
        return;
    default:
        hand_over(nk, l, m, rxbuf);
        return;
    }
}

void edi_nk_set_runtime(edi_nk *nk, const edi_nk_rt_ops *ops, void *user)
{
    nk->rt_ops = ops;
    nk->rt_user = user;
    for (edi_link *l = nk->links; l; l = l->next)
        if (l->phase == L_UP && !l->dead && !l->keyed)
            link_set_key(nk, l);
}

int edi_nk_peer_flags(edi_nk *nk, const char *peer, size_t admit_len,
                      uint64_t *flags)
{
    edi_link *l = up_link(nk, peer ? peer : "");
    if (!l || l->phase != L_UP || l->dead)
        return edist_set_error(EDIST_ENOTFOUND, "not connected to %s",
                               peer ? peer : "");
    *flags = l->flags;
    if (admit_len && l->conn && l->sq)
        return link_admit(nk, l, admit_len, false);
    return 0;
}

/* Frames this small are written in place when the scheduler is idle; a
 * bigger one goes through it (fragments, fair turns between senders). */
#define NK_DIRECT_MAX_BYTES (16u * 1024u)

int edi_nk_send_signal(edi_nk *nk, uint32_t key, uint64_t sender,
                       size_t max_bytes, edi_nk_build_fn build, void *arg,
                       bool force)
{
    edi_link *l = key < nk->by_key_cap ? nk->by_key[key] : NULL;
    if (!l)
        return edist_set_error(EDIST_ENOTFOUND, "not connected to node %u",
                               key);
    if (!l->conn || !l->sq || l->phase != L_UP || l->dead)
        return edist_set_error(EDIST_ECLOSED, "connection to %s is down",
                               link_label(l));
    int rc = link_admit(nk, l, max_bytes, force);
    if (rc)
        return rc;
    if (edi_sendq_bytes(l->sq) == 0 && max_bytes <= NK_DIRECT_MAX_BYTES &&
        max_bytes <= edi_sendq_fragment_bytes(l->sq)) {
        /* Nothing waits in the scheduler, so the connection's order is the
         * senders' order: encode straight into its send memory. */
        uint8_t *p;
        if ((rc = edi_conn_frame_reserve(l->conn, max_bytes, EDI_SEND_FORCE,
                                         &p)) != 0)
            return rc;
        edist_buf b;
        edist_buf_init_fixed(&b, p, max_bytes);
        rc = build(arg, &b, l->flags | EDI_DIST_BUILD_BARE);
        if (rc == 0 && (rc = edi_conn_frame_commit(l->conn, b.len)) == 0) {
            l->frames_out++;
            l->messages_out++;
            nk->stats.messages_sent++;
            nk->stats.bytes_sent += b.len + 4; /* with its length */
            return 0;
        }
        if (!edist_buf_error(&b))
            return rc; /* not a question of room */
    }
    edist_buf_reset(&nk->out);
    rc = build(arg, &nk->out, l->flags);
    if (rc)
        return rc;
    return send_buf(nk, l, sender ? sender : EDI_NK_SELF_PID_ID, &nk->out,
                    force);
}

int edi_nk_key_flags(edi_nk *nk, uint32_t key, size_t admit_len,
                     uint64_t *flags)
{
    edi_link *l = key < nk->by_key_cap ? nk->by_key[key] : NULL;
    if (!l || !l->conn || !l->sq || l->phase != L_UP || l->dead)
        return edist_set_error(EDIST_ENOTFOUND, "not connected to node %u",
                               key);
    *flags = l->flags;
    return admit_len ? link_admit(nk, l, admit_len, false) : 0;
}

int edi_nk_send_frame(edi_nk *nk, const char *peer, uint64_t sender,
                      const edist_buf *frame, bool force)
{
    edi_link *l = up_link(nk, peer ? peer : "");
    if (!l)
        return edist_set_error(EDIST_ENOTFOUND, "not connected to %s",
                               peer ? peer : "");
    return send_buf(nk, l, sender ? sender : EDI_NK_SELF_PID_ID, frame, force);
}

/* ---- membership ---------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool selected(const edi_peer *p, unsigned sel)
{
    if (p->state != EDI_PEER_UP && p->state != EDI_PEER_UP_PENDING)
        return false;
    if (sel & EDIST_NODES_CONNECTED)
        return true;
    return p->hidden ? (sel & EDIST_NODES_HIDDEN) != 0
                     : (sel & EDIST_NODES_VISIBLE) != 0;
}

int edi_nk_nodes(edi_nk *nk, unsigned selectors, edist_node_list *out)
{
    out->count = 0;
    out->names = NULL;
    size_t n = (selectors & EDIST_NODES_THIS) ? 1 : 0;
    for (edi_peer *p = nk->table.head; p; p = p->list_next)
        n += selected(p, selectors);
    if (n == 0)
        return 0;
    char **names = calloc(n, sizeof *names);
    if (!names)
        return edist_set_error(EDIST_ENOMEM, "nodes: no memory");
    size_t i = 0;
    if (selectors & EDIST_NODES_THIS)
        names[i++] = strdup(nk->name);
    for (edi_peer *p = nk->table.head; p; p = p->list_next)
        if (selected(p, selectors))
            names[i++] = strdup(p->name);
    for (size_t k = 0; k < n; k++) {
        if (!names[k]) {
            for (size_t j = 0; j < n; j++)
                free(names[j]);
            free(names);
            return edist_set_error(EDIST_ENOMEM, "nodes: no memory");
        }
    }
    qsort(names, n, sizeof *names, cmp_str);
    out->count = n;
    out->names = names;
    return 0;
}

static void enc_nodes(edi_nk *nk, edist_buf *s, unsigned selectors)
{
    size_t n = 0;
    for (edi_peer *p = nk->table.head; p; p = p->list_next)
        n += selected(p, selectors);
    if (n == 0) {
        edist_enc_nil(s);
        return;
    }
    edist_enc_list(s, (uint32_t)n);
    for (edi_peer *p = nk->table.head; p; p = p->list_next)
        if (selected(p, selectors))
            edist_enc_atomz(s, p->name);
    edist_enc_nil(s);
}

static int sub_add(edi_nk *nk, nk_sub **out)
{
    subs_sweep(nk);
    if (nk->sub_count >= EDIST_NODE_MAX_MONITORS)
        return edist_set_error(EDIST_ENOMEM, "too many node monitors (%d)",
                               EDIST_NODE_MAX_MONITORS);
    nk_sub *s = calloc(1, sizeof *s);
    if (!s)
        return edist_set_error(EDIST_ENOMEM, "no memory for a monitor");
    s->handle = ++nk->next_id;
    nk->subs[nk->sub_count++] = s;
    *out = s;
    return 0;
}

int edi_nk_monitor_nodes(edi_nk *nk, unsigned kinds, edist_node_event_fn fn,
                         void *user, uint64_t *handle)
{
    if (!fn)
        return edist_set_error(EDIST_EINVAL, "monitor_nodes: no callback");
    nk_sub *s = NULL; /* set by sub_add on success; for -O3 -Werror */
    int rc = sub_add(nk, &s);
    if (rc)
        return rc;
    s->kinds = kinds & (EDIST_NODES_VISIBLE | EDIST_NODES_HIDDEN);
    if (!s->kinds)
        s->kinds = EDIST_NODES_VISIBLE;
    s->fn = fn;
    s->user = user;
    if (handle)
        *handle = s->handle;
    return 0;
}

int edi_nk_monitor_node(edi_nk *nk, const char *peer, edist_node_event_fn fn,
                        void *user, uint64_t *handle)
{
    if (!fn)
        return edist_set_error(EDIST_EINVAL, "monitor_node: no callback");
    if (!valid_peer(nk, peer))
        return EDIST_EINVAL;
    nk_sub *s = NULL; /* set by sub_add on success; for -O3 -Werror */
    int rc = sub_add(nk, &s);
    if (rc)
        return rc;
    s->one_node = true;
    snprintf(s->peer, sizeof s->peer, "%s", peer);
    s->fn = fn;
    s->user = user;
    if (handle)
        *handle = s->handle;
    if (up_link(nk, peer) || !strcmp(peer, nk->name))
        return 0;
    /* Not connected: try, and report nodedown if that fails. */
    nk_op *o = op_new(nk, OP_MONITOR_NODE, peer, NULL, NULL,
                      nk->cfg.setuptime_ms + 1000);
    if (!o) {
        s->removed = true;
        subs_sweep(nk);
        return EDIST_EAGAIN; /* op_new said why */
    }
    o->sub_handle = s->handle;
    want_connection(nk, peer, o);
    return 0;
}

int edi_nk_demonitor(edi_nk *nk, uint64_t handle)
{
    nk_sub *s = sub_find(nk, handle);
    if (!s)
        return edist_set_error(EDIST_ENOTFOUND, "no monitor %llu",
                               (unsigned long long)handle);
    s->removed = true;
    subs_sweep(nk);
    return 0;
}

/* erlang:disconnect_node. only_up: leave a connection being set up
 * alone (what a failed ping may disconnect: only what was up). */
static int disconnect_peer(edi_nk *nk, const char *peer, bool only_up)
{
    edi_peer *p = edi_ct_find(&nk->table, peer ? peer : "");
    if (p && (p->state == EDI_PEER_UP || p->state == EDI_PEER_UP_PENDING) &&
        p->owner) {
        link_down(p->owner, "disconnect", true);
        return 0;
    }
    if (!p || only_up || p->state != EDI_PEER_PENDING)
        return edist_set_error(EDIST_ENOTFOUND, "not connected to %s",
                               peer ? peer : "");
    /* Being set up: abort the attempt (port mapper lookup or handshake,
     * ours or the peer's), or an entry orphaned by a lost simultaneous
     * connect. Its waiters fail; no nodedown, it never was up. */
    char detail[EDI_HS_NAME_MAX_BYTES + 80];
    snprintf(detail, sizeof detail,
             "aborted by disconnect_node while being set up");
    if (p->owner) {
        link_fail(p->owner, EDIST_ECLOSED, detail);
    } else {
        nk_log(nk, EDIST_LOG_INFO, "connection to %s %s", p->name, detail);
        peer_waiters_done(nk, p, EDIST_ECLOSED, detail);
    }
    return 0;
}

int edi_nk_disconnect(edi_nk *nk, const char *peer)
{
    return disconnect_peer(nk, peer, false);
}

void edi_nk_set_message_handler(edi_nk *nk, edist_node_message_fn fn,
                                void *user)
{
    nk->msg_fn = fn;
    nk->msg_user = user;
}

int edi_nk_send_reg_from(edi_nk *nk, const char *peer, uint32_t sender,
                         const char *name, const uint8_t *payload, size_t len)
{
    edi_link *l = up_link(nk, peer ? peer : "");
    if (!l)
        return edist_set_error(EDIST_ENOTFOUND, "not connected to %s",
                               peer ? peer : "");
    if (!name || !payload || !len)
        return edist_set_error(EDIST_EINVAL, "send_reg: no name or payload");
    if (sender == 0)
        sender = EDI_NK_SELF_PID_ID;
    edi_dist_term_scratch sc, fc;
    edist_term_view to, from = nk->self_pid;
    int rc = edi_dist_atom_view(name, strlen(name), &sc, &to);
    if (rc)
        return rc;
    if (sender != EDI_NK_SELF_PID_ID) {
        edist_pid p = {.node = self_atom(nk),
                       .id = sender,
                       .serial = 0,
                       .creation = nk->cfg.creation};
        if ((rc = edi_dist_pid_view(&p, &fc, &from)) != 0)
            return rc;
    }
    edist_term_view msg = {.ptr = payload, .len = len};
    edist_buf_reset(&nk->out);
    edi_dist_build_reg_send(&nk->out, l->flags, NULL, from, to, msg);
    return send_built(nk, l, sender, false);
}

int edi_nk_send_reg(edi_nk *nk, const char *peer, const char *name,
                    const uint8_t *payload, size_t len)
{
    return edi_nk_send_reg_from(nk, peer, EDI_NK_SELF_PID_ID, name, payload,
                                len);
}

void edi_nk_set_writable_handler(edi_nk *nk, edi_nk_writable_fn fn, void *user)
{
    nk->writable_fn = fn;
    nk->writable_user = user;
}

int edi_nk_when_writable(edi_nk *nk, const char *peer, edi_nk_done_fn done,
                         void *arg, uint64_t *id)
{
    edi_link *l = up_link(nk, peer ? peer : "");
    if (!l || !l->sq)
        return edist_set_error(EDIST_ENOTFOUND, "not connected to %s",
                               peer ? peer : "");
    if (!done)
        return edist_set_error(EDIST_EINVAL, "when_writable: no callback");
    /* No refusal pending (the queue drained since): retry at once. */
    if (!l->writable_pending && !l->want_writable && !edi_sendq_refused(l->sq))
        return 1;
    if (nk->wwait_count >= NK_MAX_WRITABLE_WAITERS)
        return edist_set_error(EDIST_EAGAIN, "too many blocked senders (%u)",
                               NK_MAX_WRITABLE_WAITERS);
    nk_wwait *w = calloc(1, sizeof *w);
    if (!w)
        return edist_set_error(EDIST_ENOMEM, "no memory for a waiter");
    w->id = ++nk->next_id;
    w->done = done;
    w->arg = arg;
    if (l->wwait_tail)
        l->wwait_tail->next = w;
    else
        l->wwait_head = w;
    l->wwait_tail = w;
    nk->wwait_count++;
    if (id)
        *id = w->id;
    return 0;
}

void edi_nk_cancel_writable(edi_nk *nk, uint64_t id)
{
    for (edi_link *l = nk->links; l; l = l->next) {
        nk_wwait *prev = NULL;
        for (nk_wwait *w = l->wwait_head; w; prev = w, w = w->next) {
            if (w->id != id)
                continue;
            if (prev)
                prev->next = w->next;
            else
                l->wwait_head = w->next;
            if (l->wwait_tail == w)
                l->wwait_tail = prev;
            nk->wwait_count--;
            free(w);
            return;
        }
    }
}

void edi_nk_get_stats(const edi_nk *nk, edist_node_stats *out)
{
    *out = nk->stats;
    out->send_queue_bytes = 0;
    out->send_queue_bytes_max_peer = 0;
    for (const edi_link *l = nk->links; l; l = l->next) {
        uint64_t b = edi_sendq_bytes(l->sq);
        out->send_queue_bytes += b;
        if (b > out->send_queue_bytes_max_peer)
            out->send_queue_bytes_max_peer = b;
    }
}

int edi_nk_get_peer_stats(const edi_nk *nk, const char *peer,
                          edist_node_peer_stats *out)
{
    memset(out, 0, sizeof *out);
    edi_link *l = up_link((edi_nk *)nk, peer ? peer : "");
    if (!l)
        return edist_set_error(EDIST_ENOTFOUND, "not connected to %s",
                               peer ? peer : "");
    edi_sendq_stats q;
    edi_sendq_get_stats(l->sq, &q);
    out->flags = l->flags;
    out->send_queue_bytes = l->conn ? link_pending(l) : q.bytes_pending;
    out->send_queue_messages = q.messages_pending;
    out->send_queue_senders = q.senders_active;
    out->send_queue_limit_bytes = q.limit_bytes;
    out->send_queue_max_bytes = q.max_bytes_pending;
    out->sends_busy = q.refused + l->sends_busy;
    out->messages_sent = l->messages_out;
    out->fragments_sent = l->fragments_out;
    out->fragmented_messages_sent = l->fragmented_out;
    out->messages_received = l->messages_in;
    out->fragments_received = l->fragments_in;
    out->fragmented_messages_received = l->fragmented_in;
    out->reassembly_sequences = edi_dist_reasm_open_sequences(l->reasm);
    out->reassembly_bytes = edi_dist_reasm_buffered_bytes(l->reasm);
    return 0;
}

/* ---- life ---------------------------------------------------------------- */

int edi_nk_new(const edi_nk_config *cfg, edi_nk **out)
{
    if (!cfg || !cfg->loop || !cfg->name || !cfg->cookies)
        return edist_set_error(EDIST_EINVAL, "net kernel: incomplete config");
    edi_nk *nk = calloc(1, sizeof *nk);
    if (!nk)
        return edist_set_error(EDIST_ENOMEM, "net kernel: no memory");
    nk->cfg = *cfg;
    snprintf(nk->name, sizeof nk->name, "%s", cfg->name);
    nk->cfg.name = nk->name;
    nk->loop = cfg->loop;
    if (!nk->cfg.ticktime_ms)
        nk->cfg.ticktime_ms = EDIST_NODE_TICKTIME_MS_DEFAULT;
    if (!nk->cfg.setuptime_ms)
        nk->cfg.setuptime_ms = EDIST_NODE_SETUPTIME_MS_DEFAULT;
    if (!nk->cfg.first_message_time_ms)
        nk->cfg.first_message_time_ms =
            EDIST_NODE_FIRST_MESSAGE_TIME_MS_DEFAULT;
    if (nk->cfg.first_message_time_ms > nk->cfg.setuptime_ms)
        nk->cfg.first_message_time_ms = nk->cfg.setuptime_ms;
    if (!nk->cfg.max_handshakes)
        nk->cfg.max_handshakes = EDIST_NODE_MAX_HANDSHAKES_DEFAULT;
    if (!nk->cfg.max_handshakes_per_address)
        nk->cfg.max_handshakes_per_address =
            EDIST_NODE_MAX_HANDSHAKES_PER_ADDRESS_DEFAULT;
    int rc = edi_ct_init(&nk->table, 0);
    if (rc) {
        free(nk);
        return rc;
    }
    edist_buf_init(&nk->out);
    edist_buf_init(&nk->scratch);
    if (getrandom(&nk->ref_salt, sizeof nk->ref_salt, 0) != sizeof nk->ref_salt)
        nk->ref_salt = (uint32_t)edi_now_ms() ^ (uint32_t)(uintptr_t)nk;
    nk->next_pid_id = NK_FIRST_SPAWN_PID_ID;
    edist_pid self = {.node = self_atom(nk),
                      .id = EDI_NK_SELF_PID_ID,
                      .serial = 0,
                      .creation = nk->cfg.creation};
    rc = edi_dist_pid_view(&self, &nk->self_scratch, &nk->self_pid);
    if (rc == 0) {
        edist_pid kernel = self;
        kernel.id = EDI_NK_KERNEL_PID_ID;
        rc = edi_dist_pid_view(&kernel, &nk->kernel_scratch, &nk->kernel_pid);
    }
    if (rc == 0 && nk->cfg.fragment_bytes &&
        nk->cfg.fragment_bytes < EDI_SENDQ_FRAGMENT_BYTES_MIN)
        rc = edist_set_error(
            EDIST_EINVAL, "fragment size %zu below the minimum %u",
            nk->cfg.fragment_bytes, EDI_SENDQ_FRAGMENT_BYTES_MIN);
    if (rc) {
        edi_ct_destroy(&nk->table);
        edist_buf_free(&nk->out);
        edist_buf_free(&nk->scratch);
        free(nk);
        return rc;
    }
    size_t frag = nk->cfg.fragment_bytes ? nk->cfg.fragment_bytes
                                         : EDI_SENDQ_FRAGMENT_BYTES_DEFAULT;
    nk->tx_watermark =
        frag > NK_TX_WATERMARK_MIN_BYTES ? frag : NK_TX_WATERMARK_MIN_BYTES;
    edi_timer_init(&nk->tick_timer);
    edi_timer_init(&nk->housekeeping_timer);
    edi_timer_init(&nk->shutdown_timer);
    uint32_t interval = nk->cfg.ticktime_ms / EDI_NK_TICK_INTENSITY;
    if (interval == 0)
        interval = 1;
    edi_loop_timer_start(nk->loop, &nk->tick_timer, interval, interval,
                         tick_all, nk);
    edi_loop_timer_start(nk->loop, &nk->housekeeping_timer, NK_HOUSEKEEPING_MS,
                         NK_HOUSEKEEPING_MS, housekeeping, nk);
    *out = nk;
    return 0;
}

static void shutdown_finish(edi_nk *nk)
{
    edi_nk_done_fn done = nk->shutdown_done;
    nk->shutdown_done = NULL;
    edi_loop_timer_cancel(nk->loop, &nk->shutdown_timer);
    if (done)
        done(nk->shutdown_arg, 0, "");
}

static void shutdown_check(edi_nk *nk)
{
    if (nk->shutting_down && nk->shutdown_done && nk->conns_open == 0 &&
        !nk->links)
        shutdown_finish(nk);
}

static void shutdown_grace(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    shutdown_finish(arg);
}

void edi_nk_shutdown(edi_nk *nk, uint32_t grace_ms, edi_nk_done_fn done,
                     void *arg)
{
    nk->shutting_down = true;
    nk->shutdown_done = done;
    nk->shutdown_arg = arg;
    edi_loop_timer_start(nk->loop, &nk->shutdown_timer, grace_ms ? grace_ms : 1,
                         0, shutdown_grace, nk);
    while (nk->ops)
        op_finish(nk, nk->ops, EDIST_ECLOSED, "node is stopping");
    edi_link *l = nk->links;
    while (l) {
        edi_link *next = l->next;
        if (l->phase == L_UP)
            link_down(l, "disconnect", true);
        else
            link_fail(l, EDIST_ECLOSED, "node is stopping");
        l = next;
    }
    shutdown_check(nk);
}

void edi_nk_free(edi_nk *nk)
{
    if (!nk)
        return;
    /* Called with the loop stopped (not running any callback) and before
     * it is freed. Our timers live in our memory: take them out of the
     * loop's heap before that memory goes. The connections go with the
     * loop, without callbacks, so links still waiting for on_close go
     * now. */
    /* Resolver threads still running finish their getaddrinfo and post
     * nothing; posts already queued are dropped with the loop. */
    atomic_store(&nk->freeing, true);
    while (nk->lookups) {
        nk_lookup *lk = nk->lookups;
        nk->lookups = lk->next;
        if (lk->link)
            lk->link->lookup = NULL; /* the links are freed below */
        pthread_join(lk->thread, NULL);
        free(lk);
    }
    edi_loop_timer_cancel(nk->loop, &nk->tick_timer);
    edi_loop_timer_cancel(nk->loop, &nk->housekeeping_timer);
    edi_loop_timer_cancel(nk->loop, &nk->shutdown_timer);
    for (nk_op *o = nk->ops; o; o = o->next)
        edi_loop_timer_cancel(nk->loop, &o->timer);
    edi_link *lists[2] = {nk->links, nk->dead_links};
    for (int i = 0; i < 2; i++) {
        edi_link *l = lists[i];
        while (l) {
            edi_link *n = l->next;
            edi_loop_timer_cancel(nk->loop, &l->setup_timer);
            edi_loop_timer_cancel(nk->loop, &l->pump_timer);
            fire_writable(l, EDIST_ECLOSED, "node stopped");
            if (l->lookup)
                l->lookup->link = NULL;
            edi_hs_wipe(&l->hs);
            edi_dist_reasm_free(l->reasm);
            /* Units the connections hold are released at edi_loop_free;
             * the detached queue lives until then. */
            edi_sendq_detach(l->sq);
            free(l);
            l = n;
        }
    }
    while (nk->ops) {
        nk_op *o = nk->ops;
        nk->ops = o->next;
        free(o);
    }
    for (size_t i = 0; i < nk->sub_count; i++)
        free(nk->subs[i]);
    edi_ct_destroy(&nk->table);
    edist_buf_free(&nk->out);
    edist_buf_free(&nk->scratch);
    free(nk->by_key);
    free(nk);
}
