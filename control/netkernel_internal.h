/* SPDX-License-Identifier: Apache-2.0 */
/* The net kernel's parts (control/netkernel.c and control/nk_*.c): the
 * structures they share and the functions one part calls in another,
 * named edi_nki_*. Private to those files; the rest of the project uses
 * control/netkernel.h. */
#ifndef EDIST_CONTROL_NETKERNEL_INTERNAL_H
#define EDIST_CONTROL_NETKERNEL_INTERNAL_H

#include "control/netkernel.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>

#include "base/histogram.h"
#include "control/dist_build.h"
#include "control/dist_msg.h"
#include "control/dist_reasm.h"
#include "dataplane/uring/tcp_lane.h"
#include "edist/term.h"

/* Pending requests (pings, connects) at once. */
#define NK_MAX_OPS 4096u
/* Housekeeping (orphaned pending entries) runs this often. */
#define NK_HOUSEKEEPING_MS 500u
/* Replies the node owes a peer (is_auth, spawn replies) go past a full
 * send queue, up to this many bytes above its limit. */
#define NK_FORCED_QUEUE_MAX_BYTES (8u * 1024u * 1024u)
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

/* The data lane of an up peer: where its distribution messages go and
 * come from, apart from the control connection (handshake, ticks) that set
 * it up. On TCP both are one socket (the lane link wraps the control
 * connection once the handshake is done); a peer's data can move to
 * another lane without the control side changing. */
typedef enum nk_fast_state {
    NK_FAST_OFFERED = 1, /* initiator: offer sent, no answer yet */
    NK_FAST_PROBING,     /* our lane link is open, not proven yet */
    NK_FAST_SWITCHED,    /* our data goes on the lane */
    NK_FAST_FAILED,      /* given up: TCP only */
} nk_fast_state;
typedef struct nk_fast nk_fast; /* nk_lane.c */

typedef struct nk_data {
    edi_lane_link *link;    /* NULL: none (not up yet, or gone) */
    edi_lane_link *tx;      /* where our data goes: link, or the second
                             * lane's once switched (nk_lane.c) */
    nk_fast *fast;          /* the agreement on a second lane, or NULL */
    bool on_control_conn;   /* link wraps the control connection (TCP) */
    edi_dist_reasm *reasm;
    /* Sending: the scheduler, the timer that pumps it into the lane
     * (armed from its callbacks, which run inside the lane's completions),
     * and the blocked senders. */
    edi_sendq *sq;
    edi_timer pump_timer;
    bool writable_pending;
    struct nk_wwait *wwait_head, *wwait_tail;
    /* Counters for edi_nk_get_peer_stats. */
    uint64_t messages_in, fragments_in, fragmented_in;
    uint64_t messages_out, fragments_out, fragmented_out;
    uint64_t bytes_in, bytes_out, ticks_in, ticks_out;
    /* How long each message to the peer waited in its scheduler until
     * the connection had taken all of it (messages written in place into
     * the lane waited for nothing: 0). */
    edi_hist *send_wait;
} nk_data;

struct edi_link {
    edi_nk *nk;
    edi_link *next, *prev; /* nk->links: every link not yet dead */
    edi_conn *conn;        /* control connection: handshake, ticks */
    edi_conn *epmd_conn;   /* L_LOOKUP */
    struct nk_lookup *lookup; /* L_LOOKUP: the host name being resolved */
    int conns_open;        /* of conn/epmd_conn, not yet on_close'd */
    bool dead;             /* bookkeeping done; waits for on_close */
    bool tick_expired;     /* tick_all: nothing received for the tick time */
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
    uint64_t frames_in, frames_out; /* ticks included: the ticker reads them */
    edi_tick_state tick;
    bool hidden;
    uint64_t flags;
    nk_data data;          /* once up */
    /* Admission (acceptor): on nk's list of incoming handshakes, oldest
     * first, until up or dead; named once its send_name arrived (at
     * named_ms). */
    bool incoming, named;
    uint64_t named_ms;
    edi_link *in_next, *in_prev;
    /* The runtime's key for the peer (its node index) while up: senders
     * find the link by it without a name lookup. */
    uint32_t key;
    bool keyed;
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
    OP_MONITOR_NODE,
} op_kind;

typedef struct nk_op {
    edi_nk *nk;
    uint64_t id;
    op_kind kind;
    char peer[EDI_HS_NAME_MAX_BYTES + 1];
    edi_nk_done_fn done;
    void *arg;
    uint32_t ref[3];     /* PING tag (our node, creation) */
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
    uint64_t last_conn_id; /* the last connection id given */
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
    /* The lane the peers' data travels on once up (TCP: wrapping each
     * peer's control connection). */
    edi_lane *tcp_lane;
    /* A second lane for edist peers (edi_nk_set_fastlane), or none. */
    edi_nk_fastlane fast;
};

/* The kernel's lines, through the node's logger (base/log.h). */
#define nk_log(nk, ...) edi_logf(&(nk)->cfg.log, __VA_ARGS__)

/* netkernel.c */
__attribute__((format(printf, 4, 5))) void
edi_nki_log_limited(edi_nk *nk, nk_rl_kind kind, edist_log_level lvl,
                    const char *fmt, ...);
const char *edi_nki_link_label(const edi_link *l);
edist_atom edi_nki_self_atom(const edi_nk *nk);
void edi_nki_make_ref(edi_nk *nk, uint32_t words[3]);
int edi_nki_enc_ref(edi_nk *nk, edist_buf *b, const uint32_t words[3]);
int edi_nki_enc_pid(edi_nk *nk, edist_buf *b, uint32_t id);
edist_term_view edi_nki_buf_view(const edist_buf *b, size_t from);
void edi_nki_shutdown_check(edi_nk *nk);

/* nk_ops.c */
nk_op *edi_nki_op_find(edi_nk *nk, uint64_t id);
nk_op *edi_nki_op_find_ref(edi_nk *nk, op_kind kind, const edist_ref *r);
nk_op *edi_nki_op_new(edi_nk *nk, op_kind kind, const char *peer,
                      edi_nk_done_fn done, void *arg, uint32_t timeout_ms);
void edi_nki_op_finish(edi_nk *nk, nk_op *o, int err, const char *detail);
void edi_nki_op_connected(edi_nk *nk, nk_op *o, int err, const char *detail);
bool edi_nki_valid_peer(edi_nk *nk, const char *peer);

/* nk_nodes.c */
void edi_nki_subs_sweep(edi_nk *nk);
nk_sub *edi_nki_sub_find(edi_nk *nk, uint64_t handle);
void edi_nki_fire_one(edi_nk *nk, nk_sub *s, const edist_node_event *ev);
void edi_nki_emit_event(edi_nk *nk, bool up, const char *peer, bool hidden,
                        const char *reason, uint64_t flags, uint64_t conn_id);
edi_link *edi_nki_up_link(edi_nk *nk, const char *peer);
void edi_nki_enc_nodes(edi_nk *nk, edist_buf *s, unsigned selectors);

/* nk_lane.c */
void edi_nki_lane_offer(edi_link *l);
/* REG_SEND to_name: true when it was the lane's (handled). */
bool edi_nki_lane_message(edi_nk *nk, edi_link *l, const edi_dist_msg *m);
/* A graceful close of l, whose data went on the lane: the lane link
 * is flushed and conn (the control connection) closed only once the
 * peer acknowledged everything sent on it, or after close_flush_ms
 * (one line then). True: it took conn over. */
bool edi_nki_lane_linger(edi_link *l, edi_conn *conn);
/* conn closed: no longer to be closed by a linger. */
void edi_nki_lane_conn_gone(edi_link *l, edi_conn *c);
/* The peer is going down: its lane link is closed (unless lingering). */
void edi_nki_lane_drop(edi_link *l);
/* The link is freed. */
void edi_nki_lane_free(edi_link *l);
const char *edi_nki_lane_name(const edi_link *l);

/* nk_conn.c: the data lane's callbacks, for whichever lane carries the
 * peer's data: a frame of it; room again; the lane took some (on_sent). */
void edi_nki_data_in(edi_link *l, const edi_frame *f);
void edi_nki_data_writable(edi_lane_link *link, void *user);
void edi_nki_data_sent(edi_lane_link *link, void *user, size_t pending_bytes);

/* nk_send.c */
void edi_nki_fire_writable(edi_link *l, int err, const char *detail);
extern const edi_sendq_ops edi_nki_sq_ops;
void edi_nki_arm_pump(edi_link *l);
int edi_nki_send_built(edi_nk *nk, edi_link *l, uint64_t stream, bool force);
/* 0, or why a unit could not be queued (it and the rest are lost to
 * this lane then: the caller takes the link down or says so). */
int edi_nki_link_drain_all(edi_link *l);

/* nk_link.c */
void edi_nki_link_maybe_free(edi_link *l);
void edi_nki_incoming_remove(edi_link *l);
void edi_nki_link_set_key(edi_nk *nk, edi_link *l);
void edi_nki_old_conn_gone(edi_link *l);
void edi_nki_link_down(edi_link *l, const char *reason, bool graceful);
void edi_nki_link_down_why(edi_link *l, const char *reason, bool graceful,
                           const char *why);
void edi_nki_link_fail(edi_link *l, int err, const char *detail);
void edi_nki_peer_waiters_done(edi_nk *nk, edi_peer *p, int err,
                               const char *detail);
void edi_nki_setup_timeout(edi_loop *loop, edi_timer *t, void *arg);
edi_link *edi_nki_link_new(edi_nk *nk, edi_hs_role role);

/* nk_conn.c */
void edi_nki_hs_config(edi_nk *nk, edi_link *l, edi_hs_config *c);
void edi_nki_hs_flush(edi_link *l);
void edi_nki_handshake_done(edi_link *l);
extern const edi_conn_ops edi_nki_dist_ops;
extern const edi_lane_handler edi_nki_data_handler;

/* nk_connect.c */
void edi_nki_want_connection(edi_nk *nk, const char *peer, nk_op *op);

/* nk_serve.c */
void edi_nki_dispatch(edi_nk *nk, edi_link *l, const edi_dist_msg *m,
                      edi_rxbuf *rxbuf);

#endif
