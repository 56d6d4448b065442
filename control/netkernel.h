/* SPDX-License-Identifier: Apache-2.0 */
/* The net kernel: what OTP's net_kernel and dist_util do for one node, on
 * one io_uring loop (dataplane/uring/loop.h).
 *
 * - Connections: outgoing (port mapper lookup on the peer's host through
 *   the loop, TCP connect, handshake as initiator) and incoming (accepted
 *   sockets, handshake as acceptor), both driven by the handshake state
 *   machine in RAW framing and switched to U32 framing once up. The
 *   connection table (conn_table.h) resolves simultaneous connects and
 *   replaced connections as net_kernel does.
 * - Liveness: dist_util's ticker. Every ticktime/4 each connection that
 *   wrote nothing in the interval (or, for a hidden peer, read nothing)
 *   gets a tick; one that read nothing for 4 intervals in a row is down
 *   (net_tick_timeout). A closed socket is down at once
 *   (connection_closed). A handshake not done within the setup time is
 *   dropped; an incoming one whose peer has not sent its name within the
 *   first-message time too.
 * - Membership: nodes() selectors, nodeup/nodedown subscriptions with
 *   reasons, monitor_node, disconnect, per-node cookies.
 * - Until the process runtime exists, the messages the node itself must
 *   answer: net_kernel's is_auth call (net_adm:ping), monitors of the
 *   registered name net_kernel, and spawn requests of
 *   erpc:execute_call(Ref, erlang, nodes|node|is_alive, []). Everything
 *   else goes to an
 *   optional message handler, or is counted and dropped.
 * - Sending: every frame for a peer goes through that connection's send
 *   scheduler (dist_sendq.h) and is pumped into the socket a fragment or
 *   two at a time, so large messages interleave with other senders'
 *   traffic and a peer that does not read pushes back (EDIST_EAGAIN).
 *   Receiving: fragments are reassembled within a byte limit; any bad
 *   frame closes the connection, as erts does.
 * - Transitive connection is global's (runtime/services_global.c), as
 *   between BEAM nodes.
 *
 * Loop thread only (or the creating thread before the loop runs). Done
 * callbacks run on the loop thread, possibly before the starting call
 * returns. */
#ifndef EDIST_CONTROL_NETKERNEL_H
#define EDIST_CONTROL_NETKERNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/log.h"
#include "control/conn_table.h"
#include "control/cookie.h"
#include "control/dist_sendq.h"
#include "dataplane/lane.h"
#include "dataplane/uring/tcp.h"
#include "edist/node.h"

typedef struct edi_nk edi_nk;

typedef struct edi_nk_config {
    edi_loop *loop;
    const char *name; /* our full name */
    uint32_t creation;
    bool hidden;
    edi_cookies *cookies; /* borrowed; must outlive the kernel */
    uint16_t epmd_port;   /* where peers' port mappers listen */
    uint32_t ticktime_ms;
    uint32_t setuptime_ms;
    bool connect_all;
    /* Per peer: bytes held for sending at most (0: EDI_SENDQ_LIMIT_BYTES_
     * DEFAULT), fragment size of outgoing messages (0: erts' 64 KiB), and
     * bytes of partially received fragmented messages at most (0: the
     * reassembler's default, 64 MiB). */
    size_t send_queue_limit_bytes;
    size_t fragment_bytes;
    uint32_t send_open_sequences; /* 0: EDI_SENDQ_OPEN_SEQUENCES_DEFAULT */
    size_t reassembly_limit_bytes;
    size_t max_message_bytes; /* one incoming message (0: the total above) */
    edi_log log; /* the node's logger (base/log.h) */
    /* Admission of incoming connections (edist_node_config); 0: the
     * EDIST_NODE_* defaults. */
    uint32_t first_message_time_ms;
    uint32_t max_handshakes;
    uint32_t max_handshakes_per_address;
    uint32_t close_flush_ms; /* a graceful close, at most (0: the default) */
} edi_nk_config;

int edi_nk_new(const edi_nk_config *cfg, edi_nk **out);
/* Frees everything. Call with the loop stopped but not yet freed (timers
 * are taken out of it); its connections are freed with the loop, without
 * callbacks. */
void edi_nk_free(edi_nk *nk);

/* Hand an accepted socket from ip:port to the kernel (it owns fd from
 * here on). Admission: when the incoming handshakes in progress (overall,
 * or from ip) are at their limit, the oldest of that scope that has not
 * sent its name is closed to make room; when every one there has, fd is
 * closed instead. */
void edi_nk_accept(edi_nk *nk, int fd, const char *ip, uint16_t port);

/* Completion of an asynchronous request: err 0 or a negative edist_err
 * with a detail line. */
typedef void (*edi_nk_done_fn)(void *arg, int err, const char *detail);

/* Connect to peer unless connected (net_kernel:connect_node). done runs
 * once: 0 when the connection is up. timeout_ms 0: the setup time. */
int edi_nk_connect(edi_nk *nk, const char *peer, uint32_t timeout_ms,
                   edi_nk_done_fn done, void *arg);
/* net_adm:ping: connect, then the is_auth gen_server call. done: 0 = pong. */
int edi_nk_ping(edi_nk *nk, const char *peer, uint32_t timeout_ms,
                edi_nk_done_fn done, void *arg);
/* erlang:disconnect_node: close the connection (nodedown reason
 * `disconnect`, queued output flushed first). A connection still being
 * set up (port mapper lookup, handshake, or an orphaned simultaneous
 * attempt) is aborted: whoever waits for it fails with EDIST_ECLOSED, and
 * there is no nodedown (it never was up). EDIST_ENOTFOUND if there is
 * neither. */
int edi_nk_disconnect(edi_nk *nk, const char *peer);

/* nodes(Selectors): a malloc'd sorted list. */
int edi_nk_nodes(edi_nk *nk, unsigned selectors, edist_node_list *out);
/* Is peer connected (up) now? Loop thread. */
bool edi_nk_is_up(edi_nk *nk, const char *peer);

int edi_nk_monitor_nodes(edi_nk *nk, unsigned kinds, edist_node_event_fn fn,
                         void *user, uint64_t *handle);
int edi_nk_monitor_node(edi_nk *nk, const char *peer, edist_node_event_fn fn,
                        void *user, uint64_t *handle);
int edi_nk_demonitor(edi_nk *nk, uint64_t handle);

void edi_nk_set_message_handler(edi_nk *nk, edist_node_message_fn fn,
                                void *user);

/* ---- sending --------------------------------------------------------------
 * Every frame for a peer goes through the connection's send scheduler
 * (dist_sendq.h): per-sender order, large messages fragmented and
 * interleaved round robin with other senders, a per-peer byte limit that
 * refuses sends with EDIST_EAGAIN. A sender is a pseudo-process of this
 * node: its pid <Node.Id.0> is the From of what it sends and its id the
 * stream (and SequenceId) its messages are ordered by. Ids: 1 the node's
 * own process (edist_node_send_reg), 2 the net kernel (pings, is_auth
 * replies, nodes queries, monitor answers), 100 and up the short-lived
 * processes that answer spawn requests; the process runtime will pass its
 * pids' ids. */
#define EDI_NK_SELF_PID_ID 1u
#define EDI_NK_KERNEL_PID_ID 2u

/* REG_SEND {6, <Node.sender.0>, '', name} + payload (encoded term without
 * 131) to peer, from the pseudo-process `sender` (0 = EDI_NK_SELF_PID_ID).
 * 0, EDIST_ENOTFOUND (not connected), EDIST_EAGAIN (the peer's queue is
 * full: wait with edi_nk_when_writable or the writable handler),
 * EDIST_EINVAL, EDIST_ENOMEM. */
int edi_nk_send_reg_from(edi_nk *nk, const char *peer, uint32_t sender,
                         const char *name, const uint8_t *payload, size_t len);
/* The same from EDI_NK_SELF_PID_ID. */
int edi_nk_send_reg(edi_nk *nk, const char *peer, const char *name,
                    const uint8_t *payload, size_t len);

/* Called on the loop thread when a peer that refused a send (EDIST_EAGAIN)
 * has drained to half its limit (from a timer, never from inside a send).
 * NULL removes it. */
typedef void (*edi_nk_writable_fn)(void *user, const char *peer);
void edi_nk_set_writable_handler(edi_nk *nk, edi_nk_writable_fn fn, void *user);
/* One-shot: done(arg, 0) once peer's queue drained after a refusal, or
 * done(arg, EDIST_ECLOSED) when the connection goes down first (from a
 * timer or the link's end, never from inside this call). Returns 0
 * (registered; *id identifies it), 1 (no refusal is pending: nothing
 * registered, retry the send), EDIST_ENOTFOUND (not connected),
 * EDIST_EAGAIN (too many waiters). */
int edi_nk_when_writable(edi_nk *nk, const char *peer, edi_nk_done_fn done,
                         void *arg, uint64_t *id);
/* Forget a waiter (no call). No-op if it already fired. */
void edi_nk_cancel_writable(edi_nk *nk, uint64_t id);

void edi_nk_get_stats(const edi_nk *nk, edist_node_stats *out);
/* Counters of the connection to peer (up or being replaced).
 * EDIST_ENOTFOUND if there is none. */
int edi_nk_get_peer_stats(const edi_nk *nk, const char *peer,
                          edist_node_peer_stats *out);

/* Orderly stop: no new connections; every connection is closed (queued
 * output flushed first), each reported as nodedown `disconnect`. done runs
 * once all are closed or after grace_ms. */
void edi_nk_shutdown(edi_nk *nk, uint32_t grace_ms, edi_nk_done_fn done,
                     void *arg);


/* ---- the process runtime's side (runtime/node_dispatch.c) ---------------------------
 * Once set, every distribution message the node itself does not answer
 * (its interim pseudo-processes: is_auth, ping replies, nodes queries) goes
 * to dispatch (unless an application message handler is set:
 * edi_nk_set_message_handler keeps precedence), with the received frame's rxbuf (NULL when the message was
 * reassembled from fragments: then its bytes are valid during the call
 * only; otherwise edi_rxbuf_ref() keeps them). peer_flags: the
 * connection's negotiated flags. node_down runs when a connection that
 * was up goes down, before the nodedown subscribers. Loop thread. */
typedef struct edi_nk_rt_ops {
    /* Returns EDIST_ENOTFOUND when no local process took the message
     * (counted as dropped), else 0. */
    int (*dispatch)(void *user, const char *peer, uint64_t peer_flags,
                    const edi_dist_msg *m, edi_rxbuf *rxbuf);
    void (*node_down)(void *user, const char *peer);
    /* Is module:function/arity exported by the runtime? Spawn requests of
     * anything else are answered by the node's interim table (erpc
     * execute_call of erlang:node/nodes/is_alive, undef otherwise). */
    bool (*has_export)(void *user, const edist_atom *module,
                       const edist_atom *function, uint32_t arity);
    /* Is a local process registered as name? The node's interim answers
     * for net_kernel (is_auth, monitors of it) give way to a registered
     * process of that name. */
    bool (*has_name)(void *user, const edist_atom *name);
    /* The runtime's key for a peer (its node index), given to the link
     * when it comes up: edi_nk_send_signal finds it by that key. */
    int (*peer_key)(void *user, const char *peer, uint32_t *key);
} edi_nk_rt_ops;
void edi_nk_set_runtime(edi_nk *nk, const edi_nk_rt_ops *ops, void *user);

/* A second lane for edist peers (a DPDK port; issue 10). After the
 * handshake the kernel offers it to each peer it connected to; a peer
 * with a lane of the same medium accepts, each side opens a link towards
 * the other's address (link_open: frames it sends carry tx_token, frames
 * for it rx_token, user is the link's; the lane is opened with
 * edi_nk_fast_handler, whose on_up the link calls once it carried frames
 * both ways), and each side moves its data there behind a switch written on
 * TCP. See nk_lane.c. Loop thread, before any peer is up. */
#define EDI_NK_FAST_ADDR_MAX 32
typedef int (*edi_nk_fast_open_fn)(edi_lane *lane, const uint8_t *peer_addr,
                                   size_t peer_addr_len, uint64_t tx_token,
                                   uint64_t rx_token, size_t peer_frame_max,
                                   void *user, edi_lane_link **out);
typedef struct edi_nk_fastlane {
    edi_lane *lane;
    const char *medium;        /* an atom in the offer: memif, af_xdp, ... */
    size_t frame_max;          /* our largest frame, told to the peer (the
                                * link takes the smaller of both) */
    uint8_t addr[EDI_NK_FAST_ADDR_MAX]; /* ours on the lane */
    size_t addr_len;
    edi_nk_fast_open_fn link_open;
    /* False (a sentence in why) once the lane can carry nothing more:
     * no offers, offers refused. May be NULL: always usable. */
    bool (*usable)(edi_lane *lane, char *why, size_t cap);
    uint32_t setup_ms;         /* agreement and probe, at most (0: 10000:
                                * a memif link takes seconds to come up) */
    size_t hold_limit_bytes;   /* lane frames held before the peer's switch
                                * (0: 64 MiB); from half of it the link's
                                * window is closed, past it the peer goes
                                * down */
    /* Closes (true) or reopens a link's receive window (frames held
     * before the peer's switch). May be NULL: no window to close. */
    void (*link_hold)(edi_lane_link *link, bool hold);
    /* A test hook: our on_up waits until the peer's switch is read, and
     * our setup time runs out right before it (the race of a timeout
     * after the peer switched, made certain). */
    bool test_setup_race;
    /* A test hook: the peer's switch, read from TCP, takes effect this
     * many ms later (TCP lagging behind the lane). 0: none. */
    uint32_t test_switch_lag_ms;
} edi_nk_fastlane;
void edi_nk_set_fastlane(edi_nk *nk, const edi_nk_fastlane *f);
/* The handler the second lane must be opened with. */
extern const edi_lane_handler edi_nk_fast_handler;
/* Each peer with a link on the second lane: its name, the link, and where
 * the agreement is ("setup", "peer_switched", "switched": our data on
 * it). Loop thread; fn must not close links. */
typedef void (*edi_nk_lane_link_fn)(void *ctx, const char *peer, edi_lane_link *link,
                                    const char *state);
void edi_nk_lane_links(edi_nk *nk, edi_nk_lane_link_fn fn, void *ctx);
/* The negotiated flags of the up connection to peer; EDIST_ENOTFOUND if
 * not connected. admit_len > 0: also EDIST_EAGAIN (counted as a refused
 * send) when a frame of at least admit_len bytes would be refused by the
 * peer's queue now, so that a sender waiting for room need not build the
 * frame to find out (the send itself may still be refused by its last
 * few header bytes). One lookup for both: this is on every send. */
int edi_nk_peer_flags(edi_nk *nk, const char *peer, size_t admit_len,
                      uint64_t *flags);
/* Queue a frame built with the dist_build.h builders (length prefix included)
 * for peer on the stream of sender (a process id: per-sender order).
 * force: a reply the peer waits for, past a full queue (bounded). 0,
 * EDIST_ENOTFOUND (not connected), EDIST_EAGAIN, EDIST_ECLOSED. */
int edi_nk_send_frame(edi_nk *nk, const char *peer, uint64_t sender,
                      const edist_buf *frame, bool force);

/* Builds one frame (u32 length prefix included) for a peer with the
 * given negotiated flags into out, which may be a fixed buffer: a buffer
 * error (edist_buf_error) means "needs more room". */
typedef int (*edi_nk_build_fn)(void *arg, edist_buf *out, uint64_t peer_flags);
/* The send path of the runtime's signals: build one frame for the up
 * peer keyed `key` from the stream of sender, at most max_bytes long (a
 * bigger one is built again into a growable buffer). While the peer's
 * scheduler holds nothing, a frame of up to 16 KiB is encoded straight
 * into the connection's send memory (no copy, no allocation, batched
 * into one sendmsg with its neighbours); otherwise it is built once and
 * queued in the scheduler. Admission as edi_nk_send_frame. 0,
 * EDIST_ENOTFOUND (no up link with that key), EDIST_EAGAIN,
 * EDIST_ECLOSED, or the builder's error. *backlogged (on 0): the frame
 * waits in the scheduler, the lane took no more for now. */
int edi_nk_send_signal(edi_nk *nk, uint32_t key, uint64_t sender,
                       size_t max_bytes, edi_nk_build_fn build, void *arg,
                       bool force, bool *backlogged);
/* A frame [head][body] for the up peer keyed `key`, body not copied: the
 * lane takes it while the peer's scheduler is idle and the frame needs no
 * fragments, and calls release(release_arg, body) once done with it.
 * EDIST_EAGAIN (or the lane's error): not taken, the body is still the
 * caller's (send it the copying way); EDIST_ENOTFOUND: not up. */
int edi_nk_send_owned(edi_nk *nk, uint32_t key, const uint8_t *head,
                      size_t head_len, const void *body, size_t body_len,
                      edi_release_fn release, void *release_arg);
/* The head of a frame for a peer with these flags, *len bytes; NULL when
 * only the general builder can write it. */
typedef const uint8_t *(*edi_nk_head_fn)(void *arg, uint64_t peer_flags, size_t *len);
/* A message's one call while the up peer keyed `key` has nothing in its
 * scheduler: [head][body] copied straight into the lane's transmit
 * memory, or, when the lane has no room, queued in the scheduler (as
 * edi_nk_send_signal, with *backlogged). 0, an error of the scheduler's
 * (EDIST_EAGAIN: busy), or EDI_NK_NOT_TAKEN with nothing done (not up,
 * the scheduler holds some, more than one unit, no head, the lane's own
 * error): take the general path, which says why. */
#define EDI_NK_NOT_TAKEN 1
int edi_nk_send_copy(edi_nk *nk, uint32_t key, uint64_t sender, edi_nk_head_fn head,
                     void *arg, const void *body, size_t body_len, bool *backlogged);
/* edi_nk_peer_flags by key. */
int edi_nk_key_flags(edi_nk *nk, uint32_t key, size_t admit_len,
                     uint64_t *flags);

/* ---- the ticker's decision, pure (dist_util:send_tick/2) ----------------- */

typedef struct edi_tick_state {
    uint64_t read_seen;    /* frames received when last checked */
    uint64_t written_seen; /* frames sent when last checked */
    uint32_t silent;       /* consecutive intervals with nothing read */
} edi_tick_state;

typedef enum edi_tick_action {
    EDI_TICK_NOTHING = 0,
    EDI_TICK_SEND,    /* send a tick (4 zero bytes) */
    EDI_TICK_TIMEOUT, /* nothing read for `intensity` intervals: down */
} edi_tick_action;

/* One tick interval passed. read_total / written_total: frames (ticks
 * included) received and sent on the connection so far; send_queue_empty:
 * nothing waiting to be written; peer_hidden: a hidden peer (a primitive C
 * node only ticks back when it receives a tick, so it is ticked whenever
 * nothing was read). Updates st. */
edi_tick_action edi_tick_check(edi_tick_state *st, uint64_t read_total,
                               uint64_t written_total, bool send_queue_empty,
                               bool peer_hidden, uint32_t intensity);

/* The net_kernel tick intensity (ticks per ticktime). */
#define EDI_NK_TICK_INTENSITY 4u

#endif
