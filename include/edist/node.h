/* SPDX-License-Identifier: Apache-2.0 */
/* An edist node: a name in an Erlang cluster ("foo@host"), its connections
 * to other nodes (edist and BEAM alike), their liveness (ticks), and the
 * membership queries and subscriptions of net_kernel.
 *
 * Threads. A node runs shard threads of its own (config.shards, default
 * 1); every piece of node state (connections, the listener, the port
 * mapper client) lives on shard 0's, the others run processes. The functions below may be called from any thread:
 * they hand the request to the shard and, where a result is needed, wait
 * for it (bounded by a timeout). Callbacks (log, node events, messages,
 * writable) run
 * on the shard thread: they must return quickly, and may call only the
 * non-blocking functions marked "callback-safe" below; a blocking call from
 * a callback returns EDIST_EINVAL instead of deadlocking.
 *
 * Errors: 0 (or a count) on success, a negative edist_err otherwise, with
 * detail in edist_last_error() of the calling thread. */
#ifndef EDIST_NODE_H
#define EDIST_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edist/error.h"
#include "edist/log.h" /* edist_log_level, edist_log_fn */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct edist_node edist_node;

/* ---- configuration ------------------------------------------------------- */
/* How this node's data travels to other edist nodes. BEAM peers, the
 * handshake and the ticks always use TCP. */
typedef enum edist_transport {
    EDIST_TRANSPORT_TCP = 0,  /* the io_uring TCP lane */
    EDIST_TRANSPORT_DPDK = 1, /* a DPDK port (dpdk_eal_args, dpdk_port) for
                               * edist peers that have one too; TCP when
                               * EAL or the port cannot start (one log line
                               * says why) */
} edist_transport;

typedef enum edist_idle {
    EDIST_IDLE_ADAPTIVE = 0, /* spin briefly, then sleep in the kernel */
    EDIST_IDLE_BUSY = 1,     /* never sleep: one core per shard */
    EDIST_IDLE_SLEEP = 2,    /* sleep as soon as there is nothing to do */
} edist_idle;

/* Fill with edist_node_config_init() first: it sets every default. */
struct edist_runtime; /* edist/proc.h */

typedef struct edist_node_config {
    /* "foo", "foo@host". Short names (long_names false) behave as
     * `erl -sname`: a bare name gets this host's short name; a host part
     * must not contain dots. Long names behave as `erl -name`: a bare name
     * gets this host's fully qualified name (an error if it has none); the
     * host may be an IP address. Required. */
    const char *name;
    bool long_names;
    /* The default cookie; NULL: $HOME/.erlang.cookie (created when absent,
     * as erl does). home_dir overrides $HOME for that lookup. */
    const char *cookie;
    const char *home_dir;
    /* Connect as a hidden node: not in others' nodes(), and every
     * connection of this node is hidden on both sides. */
    bool hidden;
    /* Where to accept distribution connections: NULL means every
     * interface; port 0 an ephemeral one. */
    const char *listen_address;
    uint16_t listen_port;
    /* Port mapper port; 0: $ERL_EPMD_PORT or 4369. If no port mapper
     * answers there, the node starts the embedded one as a detached daemon
     * (it outlives the node while other nodes are registered with it; see
     * epmd_address and epmd_idle_exit_ms below). */
    uint16_t epmd_port;
    bool start_epmd; /* default true; false: fail if none answers */
    /* Register with the port mapper (default true). false: a client-only
     * node, as erl_call makes: it can connect out, nobody can look it up,
     * and its creation is random. */
    bool publish;
    /* net_kernel's net_ticktime (default 60 s) and net_setuptime (7 s),
     * in milliseconds. Tick interval = ticktime / 4; a peer silent for a
     * whole ticktime is declared down (net_tick_timeout). */
    uint32_t net_ticktime_ms;
    uint32_t net_setuptime_ms;
    /* global (edist/global.h) syncs with every visible node met and
     * connects to the nodes they know, building the mesh as between BEAM
     * nodes (default true). false: as erl -connect_all false, names are
     * kept but nobody is synced with. */
    bool connect_all;
    /* Per peer, outgoing: bytes the node may hold for sending (queued
     * messages, the unsent rest of fragmented ones, and what the socket
     * has not taken yet). A send that would go above it is refused with
     * EDIST_EAGAIN (erts' busy_dist_port), unless the queue is empty: one
     * message of any size is always accepted. 0: 64 MiB. */
    size_t send_queue_limit_bytes;
    /* Messages larger than this go out in fragments when the peer accepts
     * them (DFLAG_FRAGMENTS), interleaved with other senders' messages.
     * 0: 64 KiB as erts; at least 1024. */
    size_t fragment_bytes;
    /* Per peer, outgoing: fragmented messages being sent at once at most
     * (a receiver bounds them too: edist at 1024); the first fragment of
     * another waits, in order, for one to end (counted in the peer's
     * send_sequences_waited). 0: 256. */
    uint32_t send_open_sequences;
    /* Per peer, incoming: bytes of partially received fragmented messages
     * at most; a peer going over it is disconnected. 0: 2 GiB. */
    size_t reassembly_limit_bytes;
    /* One incoming message term (whole frame or reassembled from
     * fragments; its control message and framing get 1 MiB more) at
     * most; a peer sending a larger one is disconnected (nodedown,
     * noconnection to everyone watching), with a log line. 0: 1 GiB. */
    size_t max_message_bytes;
    /* Receive buffers of 64 KiB shared by every connection (a power of
     * 2, at most 32768). Messages are handed to processes as views of
     * them only while the receiver takes them at once; anything queued
     * is copied out, so a process that does not receive never holds
     * them. 0: 64; at least 8. */
    uint32_t rx_buffers;
    /* Mailboxes. A local send to a mailbox holding mailbox_messages
     * messages or mailbox_bytes payload bytes is refused (EDIST_EAGAIN:
     * the sender is held back). Messages from other nodes cannot be
     * pushed back without stalling every process behind the same
     * connection, so they are taken up to the hard limits; the message
     * that would go over a hard limit kills the receiving process with
     * reason mailbox_overflow (its links and monitors see it; nothing
     * after it is delivered). 0: 1,000,000 messages, 1 GiB, 16,000,000
     * messages, 4 GiB. */
    uint32_t mailbox_messages;
    uint64_t mailbox_bytes;
    uint32_t mailbox_hard_messages;
    uint64_t mailbox_hard_bytes;
    /* Processes: live ones at most (a spawn past it fails: system_limit
     * to a remote spawner) and each green process's stack (a frame that
     * overruns it hits the guard page: the node dies with one line). 0:
     * the runtime's defaults (1,048,576; 64 KiB). */
    uint32_t max_processes;
    size_t stack_bytes;
    /* Sends and signals of thread processes queued to the shard at most,
     * and their payload bytes: beyond either edist_send returns
     * EDIST_EAGAIN to the thread (held back). 0: 65,536 and 64 MiB. */
    uint32_t max_pending_requests;
    uint64_t max_pending_bytes;
    /* A process with a full mailbox waiting in a selective receive that
     * matches nothing: after this long it takes messages from other
     * shards past its soft limit (up to the hard one; counted in
     * shard_past_soft_limit), since what it waits for may be behind them
     * on a ring it holds back. 0: 100 ms. */
    uint32_t receive_grace_ms;
    /* The node's services (echo, net_kernel, rex, pg) are started again
     * when they end, unless one ended more than service_restarts times
     * in service_restart_period_ms: then it stays down, with a line
     * (restarts counted in service_restarts). 0: 5 times (at most 64)
     * in 10 s. */
    uint32_t service_restarts;
    uint32_t service_restart_period_ms;
    /* A signal (send, link, monitor, spawn) to a node not connected yet
     * starts the connection and waits for it, copied: at most this many
     * signals and bytes wait at once (each record counted whole: header,
     * payload and names). Past either the signal fails as if the node
     * were down (noconnection to a link or monitor), counted in
     * auto_connect_refused. 0: 262,144 and 64 MiB. */
    uint32_t auto_connect_max_signals;
    uint64_t auto_connect_max_bytes;
    /* global's calls to the other nodes' name servers (a lock, a
     * registration on every node) wait this long for an answer besides
     * watching the callee; past it the node counts as not answering
     * (global_call_timeouts in edist:stats/0). 0: 10 s. */
    uint32_t global_call_timeout_ms;
    edist_idle idle;
    edist_log_fn log;
    void *log_user;
    edist_log_level log_level; /* default EDIST_LOG_INFO */
    /* The node's standard output, for what its processes print
     * (edist_demo:hello/0): one line without its newline, to be written
     * and flushed at once. Called on the node's thread; must not block
     * long. NULL: such output is discarded. */
    void (*output)(void *user, const char *line, size_t len);
    void *output_user;
    /* Publish the node's counters (edist:stats/0) every stats_interval_ms
     * to a file only this user can read, for `edist stat --local`: in
     * stats_dir, or NULL: $XDG_RUNTIME_DIR/edist, else
     * /dev/shm/edist-UID. 0: not published (the default; `edist node`
     * publishes every second). The file goes when the node stops. A
     * directory that is not this user's alone (0700, not a link) is not
     * used: the node runs without publishing, with a warning line. */
    uint32_t stats_interval_ms;
    const char *stats_dir;
    /* Called once during edist_node_start, on the caller's thread, with
     * the node's runtime, before the node serves any connection: export
     * the functions peers may call here (edist_export_function), so no
     * call finds them missing (undef). Only exports: the shards do not
     * run yet, so spawning and registering wait until start returns. A
     * non-zero return fails the start with it. NULL: nothing. */
    int (*setup)(struct edist_runtime *rt, void *user);
    void *setup_user;
    /* Start the services every node exposes (echo, net_kernel, rex, the
     * erpc / erlang / edist_demo exports; shared/CONTRACT.md). Default
     * true. */
    bool services;
    /* Admission of incoming connections before authentication. A peer
     * that connected must send its name (send_name, the first handshake
     * message) within first_message_time_ms (default 2 s; never longer
     * than net_setuptime_ms), or it is closed. At most max_handshakes
     * incoming handshakes are in progress at once (default 256), and at
     * most max_handshakes_per_address from one source address (default
     * 64). A newcomer that finds either full closes the oldest
     * connection of that scope that has not sent its name yet (as the
     * port mapper closes its oldest non-registration); only when every
     * one there has sent its name is the newcomer refused. 0: default. */
    uint32_t first_message_time_ms;
    uint32_t max_handshakes;
    uint32_t max_handshakes_per_address;
    /* The embedded port mapper, when this node starts it. */
    /* Where it listens: addresses separated by commas or spaces, the
     * loopback always added, as epmd's -address. NULL: $ERL_EPMD_ADDRESS,
     * or every interface when that is unset too (as epmd). */
    const char *epmd_address;
    /* It serves other nodes too (a real erl may register with it) and
     * stays while any node is registered; once none has been (and no
     * connection has been open) for this long, it exits. 0:
     * EDIST_NODE_EPMD_IDLE_EXIT_MS_DEFAULT. */
    uint32_t epmd_idle_exit_ms;
    /* Shards (edist/proc.h, edist_runtime_config): threads running the
     * node's processes. Shard 0 also runs the node itself (connections,
     * the listener, the port mapper client) and its services. 0:
     * $EDIST_SHARDS, else 1. shard_cores "C0,C1,...": pin shard i to CPU
     * Ci (NULL: $EDIST_SHARD_CORES, else none). shard_ring_entries:
     * records per ring between two shards (0: 4096). */
    uint32_t shards;
    const char *shard_cores;
    uint32_t shard_ring_entries;
    /* Per peer, bytes its data lane holds for transmit (messages written
     * in place; on TCP the connection's queue). Past it messages wait in
     * the peer's send scheduler, up to send_queue_limit_bytes.
     * 0: EDIST_NODE_LANE_QUEUE_LIMIT_BYTES_DEFAULT. */
    size_t lane_queue_limit_bytes;
    /* Signals shard 0 keeps queued for other shards whose rings are full
     * (a shard too busy to take them). Past it the node stops reading
     * its connections, so that peers are held back by TCP, until a
     * quarter of it is left. 0: EDIST_NODE_SHARD_BACKLOG_LIMIT_DEFAULT. */
    uint32_t shard_backlog_limit;
    /* The data plane between edist nodes (issue 10). dpdk_eal_args: the
     * EAL arguments (e.g. "--no-pci --vdev=net_memif0,role=server,
     * socket=/run/edist/m.sock,socket-abstract=no"); edist adds
     * --no-huge without hugepages and its own --file-prefix unless given.
     * dpdk_port: the device to use (e.g. "net_memif0", or a PCI address). */
    edist_transport transport;
    const char *dpdk_eal_args;
    const char *dpdk_port;
    /* The DPDK lane's limits (0: the default named beside each).
     * dpdk_hold_limit_bytes: lane bytes a peer may send before we read its
     * switch on TCP; from half of it its window closes, past it the peer
     * goes down (64 MiB; at least twice the receive window plus 64 KiB).
     * dpdk_setup_ms: the agreement and the link coming up, at most, then
     * both sides stay on TCP (10 s: a memif client takes seconds).
     * The link protocol per peer (dataplane/link/link.h):
     * dpdk_send_buffer_bytes, sent and not yet acknowledged (8 MiB);
     * dpdk_recv_window_bytes, the peer may send beyond our ack (4 MiB);
     * dpdk_kernel_window_bytes, the same on a port over a kernel
     * interface, af_xdp or af_packet (128 KiB: the protocol has no
     * congestion window, and more overflowed a veth's queues);
     * dpdk_rto_min_us, dpdk_rto_max_us, the retransmission timeout's
     * bounds (100 us, 2 ms at least on memif; 100 ms);
     * dpdk_idle_ping_ms, a ping after this long without a frame (10 ms);
     * dpdk_dead_after_ms, nothing from the peer this long and the link is
     * dead, the peer down (2 s). */
    uint64_t dpdk_hold_limit_bytes;
    uint32_t dpdk_setup_ms;
    uint64_t dpdk_send_buffer_bytes;
    uint32_t dpdk_recv_window_bytes;
    uint32_t dpdk_kernel_window_bytes;
    uint32_t dpdk_rto_min_us, dpdk_rto_max_us;
    uint32_t dpdk_idle_ping_ms, dpdk_dead_after_ms;
    /* A graceful close (disconnect, node stop) waits at most this long for
     * the peer to take what was sent: the TCP connection's queue, and
     * after a lane switch the lane's acknowledgements (then a line saying
     * how much was not). A node stop first waits as long at most for the
     * sends its thread processes made (edist_send returned for them) to
     * leave the runtime, and after the close as long again for the peers
     * to close their side (until then their bytes are read, so that the
     * close is no reset that destroys what they have not yet taken): at
     * most three times this plus 1 s.
     * 0: EDIST_NODE_CLOSE_FLUSH_MS_DEFAULT. */
    uint32_t close_flush_ms;
    /* Connections closed gracefully whose sockets still wait for the peer
     * (to take what was sent, to close its side) at most: past
     * it the oldest is reset. A refused handshake is closed this way, so
     * this bounds the descriptors refused peers hold. 0:
     * EDIST_NODE_MAX_CLOSING_CONNECTIONS_DEFAULT. */
    uint32_t max_closing_connections;
    /* Freed receive buffers of large messages (32 KiB to
     * rx_recycle_max_bytes) kept for the next ones, at most
     * rx_recycle_buffers of them (at most
     * EDIST_NODE_RX_RECYCLE_BUFFERS_MAX): the pages of a new buffer cost
     * a fault each. Process-wide: the last node started sets them.
     * 0: the defaults (8, 8 MiB); EDIST_NODE_RX_RECYCLE_NONE buffers:
     * none kept. */
    uint32_t rx_recycle_buffers;
    size_t rx_recycle_max_bytes;
    /* The DPDK lane's framing. dpdk_udp_address ("a.b.c.d"): this node's
     * IPv4 address on the lane, whose frames then travel in UDP/IPv4
     * (routable; the lane answers ARP for the address) from
     * dpdk_udp_port (0: 4370); NULL: Ethernet frames of edist's own
     * EtherType. Both nodes of a pair must frame alike (else that peer
     * stays on TCP). dpdk_gateway_mac ("xx:xx:xx:xx:xx:xx"), with UDP: the
     * next hop for every peer on a routed network; NULL: the peer's MAC. */
    const char *dpdk_udp_address;
    uint16_t dpdk_udp_port;
    const char *dpdk_gateway_mac;
    /* The DPDK port's buffers (mbufs), for the frames it receives and
     * sends; 0: 8191. Received messages wait in mailboxes as views of
     * them: past half the pool held, the queued ones are copied out
     * (lane_pool_lows). */
    uint32_t dpdk_pool_mbufs;
} edist_node_config;

#define EDIST_NODE_TICKTIME_MS_DEFAULT 60000u
#define EDIST_NODE_SEND_QUEUE_LIMIT_BYTES_DEFAULT ((size_t)64 << 20)
#define EDIST_NODE_LANE_QUEUE_LIMIT_BYTES_DEFAULT ((size_t)32 << 20)
#define EDIST_NODE_SHARD_BACKLOG_LIMIT_DEFAULT 65536u
#define EDIST_NODE_CLOSE_FLUSH_MS_DEFAULT 2000u
#define EDIST_NODE_AUTO_CONNECT_MAX_SIGNALS_DEFAULT 262144u
#define EDIST_NODE_AUTO_CONNECT_MAX_BYTES_DEFAULT ((size_t)64 << 20)
#define EDIST_NODE_GLOBAL_CALL_TIMEOUT_MS_DEFAULT 10000u
#define EDIST_NODE_SERVICE_RESTARTS_DEFAULT 5u
#define EDIST_NODE_SERVICE_RESTARTS_MAX 64u
#define EDIST_NODE_SERVICE_RESTART_PERIOD_MS_DEFAULT 10000u
#define EDIST_NODE_FRAGMENT_BYTES_DEFAULT ((size_t)64 << 10)
#define EDIST_NODE_REASSEMBLY_LIMIT_BYTES_DEFAULT ((size_t)2 << 30)
#define EDIST_NODE_MAX_MESSAGE_BYTES_DEFAULT ((size_t)1 << 30)
#define EDIST_NODE_RX_BUFFERS_DEFAULT 64u
#define EDIST_NODE_RX_RECYCLE_BUFFERS_DEFAULT 8u
#define EDIST_NODE_RX_RECYCLE_BUFFERS_MAX 1024u
#define EDIST_NODE_RX_RECYCLE_NONE UINT32_MAX
#define EDIST_NODE_RX_RECYCLE_MAX_BYTES_DEFAULT ((size_t)8 << 20)
#define EDIST_NODE_SETUPTIME_MS_DEFAULT 7000u
#define EDIST_NODE_FIRST_MESSAGE_TIME_MS_DEFAULT 2000u
#define EDIST_NODE_MAX_HANDSHAKES_DEFAULT 256u
#define EDIST_NODE_MAX_HANDSHAKES_PER_ADDRESS_DEFAULT 64u
#define EDIST_NODE_MAX_CLOSING_CONNECTIONS_DEFAULT 256u
/* The embedded port mapper. */
#define EDIST_NODE_EPMD_IDLE_EXIT_MS_DEFAULT 5000u
/* Timeout of the blocking calls below when they are given 0 or less. */
#define EDIST_NODE_CALL_TIMEOUT_MS_DEFAULT 10000

void edist_node_config_init(edist_node_config *cfg);

/* ---- lifetime ------------------------------------------------------------ */

/* Start a node: resolve its name, load the cookie, listen, start the shard
 * thread, and register with the port mapper. When this returns 0 the node is
 * "ready": registered, and reachable by other nodes. The config is copied.
 * Errors: EDIST_EINVAL (bad name or option), EDIST_EAUTH (cookie file
 * unusable), EDIST_EIO (cannot listen, no port mapper), EDIST_EEXIST (the
 * name is registered already). Blocks for the port mapper exchange. */
int edist_node_start(const edist_node_config *cfg, edist_node **out);

/* Disconnect every peer cleanly (what processes sent before goes out
 * first, within close_flush_ms three times), unregister, stop the thread,
 * free.
 * NULL is a no-op. Not from a callback. */
void edist_node_stop(edist_node *node);

/* The node's process runtime (edist/proc.h): its processes are the node's
 * pids, reachable from other nodes; it runs on the node's shards and lives
 * as long as the node. One handle for every shard: edist_runtime_spawn
 * and edist_proc_attach_thread with it spread round robin over them.
 * NULL for NULL. */
struct edist_runtime *edist_node_runtime(edist_node *node);

/* Callback-safe getters (constant for the node's life). */
const char *edist_node_name(const edist_node *node); /* "foo@host" */
uint32_t edist_node_creation(const edist_node *node);
uint16_t edist_node_listen_port(const edist_node *node);
bool edist_node_is_hidden(const edist_node *node);

/* is_alive(): true while the node is started (it always is: a stopped node
 * is freed). Callback-safe. */
bool edist_node_is_alive(const edist_node *node);

/* ---- connections --------------------------------------------------------- */

/* net_kernel:connect_node/1: connect to peer ("name@host") unless already
 * connected, and wait for the outcome. 0 when connected; EDIST_EAUTH (the
 * cookies differ), EDIST_ENOTFOUND (the peer's port mapper does not know
 * the name), EDIST_EIO (unreachable), EDIST_ETIMEDOUT, EDIST_EINVAL (bad
 * name, or connecting to ourselves). timeout_ms <= 0: the default. */
int edist_node_connect(edist_node *node, const char *peer, int timeout_ms);

/* net_adm:ping/1: connect if needed, then make the gen_server call
 * {is_auth, ThisNode} to {net_kernel, Peer} and wait for `yes`. 0 = pong;
 * any error = pang (the connection errors of edist_node_connect,
 * EDIST_EAUTH for an answer other than yes, or EDIST_ETIMEDOUT). On pang
 * the connection is disconnected, as net_adm:ping does (also one that was
 * up before, or still being set up). */
int edist_node_ping(edist_node *node, const char *peer, int timeout_ms);

/* erlang:disconnect_node/1. 0, or EDIST_ENOTFOUND if neither connected
 * nor connecting. Subscribers see nodedown with reason `disconnect`. A
 * connection still being set up is aborted (those waiting for it, e.g.
 * edist_node_connect, fail with EDIST_ECLOSED; no nodedown: it never was
 * up). Note: OTP 25's net_kernel leaves a pending connection alone and
 * answers false; edist aborts it so that a disconnect is never followed by
 * a nodeup of the attempt it meant to stop. Callback-safe. */
int edist_node_disconnect(edist_node *node, const char *peer);

/* erlang:set_cookie/1,2: peer NULL sets the default cookie, else the cookie
 * for connections to and from peer only. Callback-safe. */
int edist_node_set_cookie(edist_node *node, const char *peer,
                          const char *cookie);

/* ---- membership ---------------------------------------------------------- */

/* The selectors of erlang:nodes/1, combined with |. */
#define EDIST_NODES_VISIBLE 0x1u
#define EDIST_NODES_HIDDEN 0x2u
#define EDIST_NODES_CONNECTED 0x4u /* = VISIBLE | HIDDEN today */
#define EDIST_NODES_THIS 0x8u

typedef struct edist_node_list {
    size_t count;
    char **names; /* count NUL-terminated names, sorted */
} edist_node_list;

/* Fill *out with the nodes the selectors ask for (only connections that
 * are up). Free with edist_node_list_free. Callback-safe. */
int edist_node_nodes(edist_node *node, unsigned selectors,
                     edist_node_list *out);
void edist_node_list_free(edist_node_list *list);

/* A node event, as net_kernel:monitor_nodes(true, [nodedown_reason,
 * {node_type, all}]) reports them. */
typedef struct edist_node_event {
    bool up;            /* nodeup or nodedown */
    const char *node;   /* the peer */
    bool hidden;        /* the connection is hidden */
    const char *reason; /* nodedown only: connection_closed,
                           net_tick_timeout, disconnect,
                           connection_setup_failed (monitor_node only), ... */
    uint64_t flags;     /* nodeup: the negotiated distribution flags */
    /* the connection's id (monitor_nodes' connection_id): nodeup and
     * nodedown of one connection carry the same one, and a later
     * connection to the same node has another */
    uint64_t connection_id;
} edist_node_event;

typedef void (*edist_node_event_fn)(void *user, const edist_node_event *ev);

/* Subscribe to nodeup/nodedown of every peer whose connection is of the
 * given kinds (EDIST_NODES_VISIBLE and/or EDIST_NODES_HIDDEN; 0 means
 * visible, as monitor_nodes(true) does). *handle identifies the
 * subscription. Callback-safe. At most EDIST_NODE_MAX_MONITORS at once. */
#define EDIST_NODE_MAX_MONITORS 1024
int edist_node_monitor_nodes(edist_node *node, unsigned kinds,
                             edist_node_event_fn fn, void *user,
                             uint64_t *handle);
/* erlang:monitor_node(Peer, true): one nodedown event when the connection
 * to peer goes down. If not connected, a connection is attempted; if that
 * fails, nodedown comes at once (reason connection_setup_failed or why).
 * EDIST_ECLOSED once the node is stopping (its nodedowns are the stop's).
 * Callback-safe (the attempt runs in the background). */
int edist_node_monitor_node(edist_node *node, const char *peer,
                            edist_node_event_fn fn, void *user,
                            uint64_t *handle);
/* Cancel either kind of subscription. After it returns (from any thread
 * other than the shard's) the callback is not running and will not run
 * again. EDIST_ENOTFOUND if unknown or already fired. */
int edist_node_demonitor(edist_node *node, uint64_t handle);

/* ---- messages (until the process runtime exists) ------------------------- */

/* A distribution message the node itself does not handle. Views are valid
 * during the callback only. */
typedef struct edist_node_message {
    const char *peer;       /* node it came from */
    int op;                 /* control message number (2 SEND, 6 REG_SEND...) */
    const uint8_t *control; /* the control tuple, encoded (no 131) */
    size_t control_len;
    const uint8_t *payload; /* the message term (no 131), or NULL */
    size_t payload_len;
} edist_node_message;

typedef void (*edist_node_message_fn)(void *user, const edist_node_message *m);

/* Install (fn non-NULL) or remove the handler. Callback-safe. */
int edist_node_set_message_handler(edist_node *node, edist_node_message_fn fn,
                                   void *user);

/* Send a message to the process registered as `name` on peer (REG_SEND),
 * from the node's own pseudo-process <Node.1.0>. payload is an encoded term
 * (no 131). The peer must be connected (EDIST_ENOTFOUND otherwise);
 * EDIST_EAGAIN when its send queue is full (see the options below for how
 * to wait). Callback-safe. */
int edist_node_send_reg(edist_node *node, const char *peer, const char *name,
                        const uint8_t *payload, size_t payload_len);

/* Sending, in detail. Each sender (a pseudo-process of this node until the
 * process runtime exists) has its own ordered stream: its messages reach
 * the peer in the order sent, and a message larger than fragment_bytes
 * goes out in fragments, round robin with the other senders' messages, so
 * a small message from another sender is not held up behind it. When the
 * peer's queue is over send_queue_limit_bytes a send is refused with
 * EDIST_EAGAIN (busy_dist_port); the sender waits either
 *   - by blocking: opts.wait_ms > 0 waits up to that long for room and
 *     sends then (EDIST_ETIMEDOUT if none came; EDIST_ECLOSED if the
 *     connection went down meanwhile); not from a callback (EDIST_EINVAL);
 *   - or by callback: edist_node_set_writable_handler's function is called
 *     (shard thread) once the peer's queue has drained to half the limit
 *     after a refusal; send again from there or from any thread. */
typedef struct edist_node_send_opts {
    /* The sending pseudo-process: From is <Node.sender.0>, and the id
     * orders its messages. 0: the node's own (1). Use 3..99: 2 is the
     * node's net_kernel (EDIST_EINVAL), 100 and up are the processes that
     * answer spawn requests. */
    uint32_t sender;
    /* 0: EDIST_EAGAIN at once when the queue is full; > 0: block up to
     * wait_ms for room. */
    int wait_ms;
} edist_node_send_opts;

/* edist_node_send_reg with options (opts NULL: the defaults above).
 * Callback-safe when opts->wait_ms is 0. */
int edist_node_send_reg_opts(edist_node *node, const char *peer,
                             const char *name, const uint8_t *payload,
                             size_t payload_len,
                             const edist_node_send_opts *opts);

typedef void (*edist_node_writable_fn)(void *user, const char *peer);
/* Install (fn non-NULL) or remove the writable handler. Callback-safe. */
int edist_node_set_writable_handler(edist_node *node, edist_node_writable_fn fn,
                                    void *user);

/* ---- counters ------------------------------------------------------------ */
typedef struct edist_node_stats {
    uint64_t connections_up; /* now */
    uint64_t nodeups;        /* since start */
    uint64_t nodedowns;
    uint64_t handshakes_refused; /* wrong cookie, garbage, timeouts, ... */
    uint64_t ticks_sent;
    uint64_t ticks_received;
    uint64_t messages_received;
    uint64_t messages_sent;
    uint64_t messages_dropped; /* unknown, no handler */
    uint64_t bytes_received;
    uint64_t bytes_sent;
    /* Outgoing queues (see edist_node_send_opts). */
    uint64_t send_queue_bytes;          /* now, all peers */
    uint64_t send_queue_bytes_max_peer; /* now, the fullest peer */
    uint64_t sends_busy;                /* sends refused with EDIST_EAGAIN */
    uint64_t fragments_sent;
    uint64_t fragmented_messages_sent;
    uint64_t fragments_received;
    uint64_t fragmented_messages_received;
    /* Shared receive buffers (edist_node_config.rx_buffers). */
    uint64_t rx_buffers;          /* the pool's size */
    uint64_t rx_buffers_held;     /* now: out of the kernel's ring */
    uint64_t rx_starved;          /* times a connection paused: none free */
    /* Connections closed because a peer's message went over
     * max_message_bytes or reassembly_limit_bytes. */
    uint64_t messages_over_limit;
    /* Admission of incoming connections (edist_node_config); each is also
     * in handshakes_refused. */
    uint64_t handshakes_evicted;         /* closed to make room */
    uint64_t handshakes_evicted_named;   /* of them: named, silent since */
    uint64_t first_message_timeouts;     /* no name within the deadline */
    uint64_t handshakes_refused_address; /* its address had no room */
    uint64_t handshakes_refused_full;    /* every handshake doing work */
    /* Handshakes by outcome: incoming ones completed, and failures by
     * reason (each failure is also in handshakes_refused). */
    uint64_t handshakes_accepted;
    uint64_t handshakes_refused_auth;     /* wrong cookie, or not allowed */
    uint64_t handshakes_refused_protocol; /* garbage, a broken message */
    uint64_t handshakes_timed_out;        /* no name, or no setup, in time */
    /* The send path (issue 9). */
    uint64_t messages_in_place;   /* written straight into a lane */
    uint64_t lane_queue_full;     /* a lane had no room (lane_queue_limit_bytes):
                                   * the message waited in the scheduler */
    uint64_t messages_uncopied;   /* owned payloads (edist_send_owned,
                                   * edist_send_buf) sent without a copy */
    uint64_t rx_polled_reads;     /* busy idling: reads of an active
                                   * connection made by the shard itself */
    uint64_t rx_holds;            /* times the node stopped reading its
                                   * connections (shard_backlog_limit) */
    uint64_t closing_connections; /* now: closed gracefully, socket open */
    uint64_t closes_cut;          /* of them reset at max_closing_connections */
    uint64_t shard_backlog;       /* now: signals shard 0 keeps queued for
                                   * other shards */
    uint64_t shard_backlog_max;   /* the most at once */
    /* Auto-connection (auto_connect_max_signals, auto_connect_max_bytes). */
    uint64_t auto_connect_waiting;       /* now: signals waiting for a connection */
    uint64_t auto_connect_waiting_bytes; /* now: their bytes */
    uint64_t auto_connect_waiting_max;   /* the most signals at once */
    uint64_t auto_connect_refused;       /* signals failed: the wait was full */
    /* The second lane (transport dpdk). */
    uint64_t lane_switches;       /* peers our data moved to it for */
    uint64_t lane_peer_switches;  /* peers whose data moved to it */
    uint64_t lane_setups_failed;  /* agreements given up: TCP stays */
    uint64_t lane_setup_timeouts; /* setup times run out with our link open
                                   * (an abort asked of the peer) */
    uint64_t lane_aborts_declined; /* ... answered by the peer's switch: the
                                    * lane stays */
    uint64_t lane_held_bytes_max; /* most lane bytes held at once before a
                                   * peer's switch */
    uint64_t lane_hold_overflows; /* peers down: held past dpdk_hold_limit */
    uint64_t lane_close_unacked;  /* graceful closes after a switch that
                                   * ended at close_flush_ms with lane bytes
                                   * not acknowledged */
    uint64_t lane_offers_withheld; /* peers not offered the lane: its port
                                    * can carry nothing more (the node said
                                    * why) */
    /* Large receive buffers kept for reuse (rx_recycle_*; process-wide). */
    uint64_t rx_recycle_held;       /* now */
    uint64_t rx_recycle_held_bytes; /* now */
    uint64_t rx_recycle_reused;     /* taken instead of a new buffer */
    uint64_t rx_recycle_freed;      /* freed: all kept already, or too large */
} edist_node_stats;

/* Callback-safe. Counters of connections that went down are kept in the
 * totals (except the "now" values). */
int edist_node_get_stats(edist_node *node, edist_node_stats *out);

/* The connection to one peer. */
typedef struct edist_node_peer_stats {
    uint64_t flags;               /* negotiated distribution flags */
    uint64_t send_queue_bytes;    /* held for the peer now */
    uint64_t send_queue_messages; /* messages not fully written now */
    uint64_t send_queue_senders;  /* senders with something waiting now */
    uint64_t send_queue_limit_bytes;
    uint64_t send_queue_max_bytes; /* high-water mark */
    uint64_t sends_busy;           /* sends refused with EDIST_EAGAIN */
    uint64_t messages_sent;
    uint64_t fragments_sent;
    uint64_t fragmented_messages_sent;
    uint64_t messages_received;
    uint64_t fragments_received;
    uint64_t fragmented_messages_received;
    uint64_t send_sequences_waited; /* first fragments that waited for one
                                     * of 256 open sequences to end */
    uint64_t reassembly_sequences; /* open now */
    uint64_t reassembly_bytes;     /* buffered now */
    uint64_t bytes_sent;           /* distribution messages, framed */
    uint64_t bytes_received;
    uint64_t ticks_sent;
    uint64_t ticks_received;
    uint64_t connection_id;        /* as edist_node_event.connection_id */
    /* How long messages to the peer waited in its send scheduler until
     * the connection had taken all of each (its fragments too; a message
     * written in place into the lane counts as 0), from a log-linear
     * histogram (16 buckets per power of two, within 6.25%): how many,
     * percentiles and the largest, in nanoseconds. */
    uint64_t send_wait_count;
    uint64_t send_wait_p50_ns, send_wait_p90_ns, send_wait_p99_ns, send_wait_p999_ns;
    uint64_t send_wait_max_ns;
} edist_node_peer_stats;

/* EDIST_ENOTFOUND if not connected to peer. Callback-safe. */
int edist_node_get_peer_stats(edist_node *node, const char *peer,
                              edist_node_peer_stats *out);

#ifdef __cplusplus
}
#endif
#endif
