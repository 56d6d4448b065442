/* SPDX-License-Identifier: Apache-2.0 */
/* A node's options, each settable three ways under one name: a key in an
 * INI file (section [node], or before any section), an environment
 * variable EDIST_<KEY>, and a command-line flag --<key> (underscores
 * written as dashes). Precedence: flag > environment > file > default,
 * whatever the order the sources are read in. edi_node_options_format()
 * lists each effective value and where it came from (--print-config).
 *
 * Options (key: meaning):
 *   sname          short node name, NAME or NAME@HOST (as erl -sname)
 *   name           long node name, NAME or NAME@HOST (as erl -name)
 *   cookie         the cookie (default: $HOME/.erlang.cookie)
 *   hidden         connect as a hidden node (bool)
 *   listen_address address to accept connections on (default: any)
 *   listen_port    port to accept connections on (default: ephemeral)
 *   epmd_port      port mapper port (default $ERL_EPMD_PORT or 4369)
 *   start_epmd     start the embedded port mapper if none answers (bool)
 *   ticktime       net_ticktime in seconds (decimals allowed; default 60)
 *   setuptime      net_setuptime in seconds (decimals allowed; default 7)
 *   connect_all    global syncs with the nodes met and connects to theirs
 *                  (bool, default true)
 *   transport      tcp | dpdk (edist peers over a DPDK port; see below)
 *   idle           adaptive | busy | sleep
 *   log_level      error | warning | info | debug
 *   rx_buffers     receive buffers of 64 KiB shared by all connections
 *                  (a power of 2; default 64)
 *   rx_recycle_buffers, rx_recycle_max_bytes  freed buffers of large
 *                  messages kept for reuse, process-wide (default 8, 8M;
 *                  0 buffers: none kept)
 *   max_message_bytes       one incoming message at most (default 1G)
 *   reassembly_limit_bytes  per peer, fragments held at most (default 2G)
 *   send_queue_limit_bytes  per peer, bytes held for sending (default 64M)
 *   lane_queue_limit_bytes  per peer, bytes its data lane holds, written
 *                  in place (default 32M); more waits in the scheduler
 *   mailbox_messages, mailbox_bytes  local sends are held back above
 *                  these (default 1000000, 1G)
 *   mailbox_hard_messages, mailbox_hard_bytes  messages from other nodes
 *                  above these kill the receiver with mailbox_overflow
 *                  (default 16000000, 4G)
 *   max_processes  live processes at most (default 1048576)
 *   stack_bytes    a green process's stack (default 64K)
 *   max_pending_requests, max_pending_bytes  thread processes' sends
 *                  queued to the shard (default 65536, 64M)
 *   config         the INI file to read (flag and environment only)
 *   first_message_time  seconds an incoming peer has to send its name
 *                  (default 2; at most the setup time)
 *   max_handshakes incoming handshakes in progress at once (default 256)
 *   max_handshakes_per_address  of them from one address (default 64)
 *   epmd_address   addresses of the embedded port mapper (default
 *                  $ERL_EPMD_ADDRESS, else every interface)
 *   epmd_idle_exit seconds the embedded port mapper stays with no node
 *                  registered (default 5)
 *   shards         threads running the node's processes (default 1, at
 *                  most 64); shard 0 also runs the connections
 *   shard_cores    CPU numbers to pin shard i to, "C0,C1,..." (default:
 *                  not pinned)
 *   shard_ring_entries  records per ring between two shards (a power of
 *                  2, 64..1048576; default 4096)
 *   shard_backlog_limit  records shard 0 keeps for slow shards before it
 *                  stops reading its peers (default 65536)
 *   dpdk_eal_args  EAL arguments for transport dpdk (--vdev=..., -a PCI)
 *   dpdk_port      the DPDK device edist peers are reached on
 *   dpdk_udp_address  this node's IPv4 address on the lane: its frames
 *                  travel in UDP/IPv4 (routable) instead of Ethernet
 *                  frames of edist's EtherType (default: Ethernet)
 *   dpdk_udp_port  the UDP port with dpdk_udp_address (default 4370)
 *   dpdk_gateway_mac  with UDP: the MAC every lane frame is sent to (the
 *                  router of a routed network; default: the peer's own)
 *   dpdk_pool_mbufs  the port's buffers, for frames received and sent
 *                  (default 8191, 1024 .. 1048576; past half of them held
 *                  by mailboxes, queued messages are copied out)
 *   dpdk_hold_limit_bytes  lane bytes from a peer held until its switch
 *                  is read on TCP (default 64M; at least twice
 *                  dpdk_recv_window_bytes plus 64K)
 *   dpdk_setup_time  seconds for the lane agreement and link (default 10)
 *   dpdk_send_buffer_bytes  per peer, sent on the lane and not yet
 *                  acknowledged (default 8M)
 *   dpdk_recv_window_bytes  per peer, what it may send beyond our ack
 *                  (default 4M, 16K .. 1G)
 *   dpdk_kernel_window_bytes  the same on a port over a kernel interface,
 *                  af_xdp or af_packet (default 128K, 16K .. 1G: no
 *                  congestion window, so it must fit the kernel's queues)
 *   dpdk_rto_min_us, dpdk_rto_max_us  the lane's retransmission timeout
 *                  bounds in microseconds (default 100, 2000 at least on
 *                  memif; 100000)
 *   dpdk_idle_ping  seconds without a frame before a ping (default 0.01)
 *   dpdk_dead_after  seconds without a frame before the lane link, and
 *                  the peer, is down (default 2)
 *   close_flush_time  seconds a graceful close waits for the peer to take
 *                  what was sent (default 2; a node stop takes 1 s more)
 *   max_closing_connections  connections closed gracefully whose sockets
 *                  wait for the peer at most (default 256); past it the
 *                  oldest draining one is reset, else the oldest flushing
 *   auto_connect_max_signals, auto_connect_max_bytes  signals waiting for
 *                  a connection they started, at most (default 262144,
 *                  64M); past them a signal fails with noconnection
 *   global_call_timeout  seconds global waits for another node's name
 *                  server to answer (default 10)
 *   send_open_sequences  per peer, fragmented messages being sent at
 *                  once (default 256, at most 1024: what an edist
 *                  receiver takes); more wait for one to end
 *   receive_grace_time  seconds a process with a full mailbox waits in a
 *                  selective receive before taking messages past its
 *                  soft limit (default 0.1)
 *   service_restarts, service_restart_period  a service (echo,
 *                  net_kernel, rex, pg) that ends is started again,
 *                  unless it ended more often than this in the period
 *                  (default 5, at most 64, in 10 seconds)
 *   publish_stats  write the node's counters to a file for `edist stat
 *                  --local` (bool, default true)
 *   stats_interval seconds between two writes of it (default 1)
 *   stats_dir      its directory (default $XDG_RUNTIME_DIR/edist, else
 *                  /dev/shm/edist-UID)
 * Sizes take a K, M or G suffix (powers of 1024).
 * Booleans: true/false, yes/no, on/off, 1/0; a bare flag (--hidden) means
 * true.
 *
 * Pure data handling, no I/O except reading the named file. Not
 * thread-safe: one owner. */
#ifndef EDIST_CONTROL_NODE_CONFIG_H
#define EDIST_CONTROL_NODE_CONFIG_H

#include <limits.h>
#include <stddef.h>

#include "edist/node.h"

typedef enum edi_opt_source {
    EDI_OPT_DEFAULT = 0,
    EDI_OPT_FILE = 1,
    EDI_OPT_ENV = 2,
    EDI_OPT_FLAG = 3,
} edi_opt_source;

typedef enum edi_opt_id {
    EDI_OPT_SNAME = 0,
    EDI_OPT_NAME,
    EDI_OPT_COOKIE,
    EDI_OPT_HIDDEN,
    EDI_OPT_LISTEN_ADDRESS,
    EDI_OPT_LISTEN_PORT,
    EDI_OPT_EPMD_PORT,
    EDI_OPT_START_EPMD,
    EDI_OPT_TICKTIME,
    EDI_OPT_SETUPTIME,
    EDI_OPT_CONNECT_ALL,
    EDI_OPT_TRANSPORT,
    EDI_OPT_IDLE,
    EDI_OPT_LOG_LEVEL,
    EDI_OPT_RX_BUFFERS,
    EDI_OPT_RX_RECYCLE_BUFFERS,
    EDI_OPT_RX_RECYCLE_MAX_BYTES,
    EDI_OPT_MAX_MESSAGE_BYTES,
    EDI_OPT_REASSEMBLY_LIMIT_BYTES,
    EDI_OPT_SEND_QUEUE_LIMIT_BYTES,
    EDI_OPT_MAILBOX_MESSAGES,
    EDI_OPT_MAILBOX_BYTES,
    EDI_OPT_MAILBOX_HARD_MESSAGES,
    EDI_OPT_MAILBOX_HARD_BYTES,
    EDI_OPT_MAX_PROCESSES,
    EDI_OPT_STACK_BYTES,
    EDI_OPT_MAX_PENDING_REQUESTS,
    EDI_OPT_MAX_PENDING_BYTES,
    EDI_OPT_CONFIG,
    /* Admission of incoming connections. */
    EDI_OPT_FIRST_MESSAGE_TIME,
    EDI_OPT_MAX_HANDSHAKES,
    EDI_OPT_MAX_HANDSHAKES_PER_ADDRESS,
    /* The embedded port mapper. */
    EDI_OPT_EPMD_ADDRESS,
    EDI_OPT_EPMD_IDLE_EXIT,
    /* Shards. */
    EDI_OPT_SHARDS,
    EDI_OPT_SHARD_CORES,
    EDI_OPT_SHARD_RING_ENTRIES,
    EDI_OPT_LANE_QUEUE_LIMIT_BYTES,
    EDI_OPT_SHARD_BACKLOG_LIMIT,
    /* The DPDK lane. */
    EDI_OPT_DPDK_EAL_ARGS,
    EDI_OPT_DPDK_PORT,
    EDI_OPT_DPDK_HOLD_LIMIT_BYTES,
    EDI_OPT_DPDK_SETUP_TIME,
    EDI_OPT_DPDK_SEND_BUFFER_BYTES,
    EDI_OPT_DPDK_RECV_WINDOW_BYTES,
    EDI_OPT_DPDK_KERNEL_WINDOW_BYTES,
    EDI_OPT_DPDK_RTO_MIN_US,
    EDI_OPT_DPDK_RTO_MAX_US,
    EDI_OPT_DPDK_IDLE_PING,
    EDI_OPT_DPDK_DEAD_AFTER,
    EDI_OPT_DPDK_UDP_ADDRESS,
    EDI_OPT_DPDK_UDP_PORT,
    EDI_OPT_DPDK_GATEWAY_MAC,
    EDI_OPT_DPDK_POOL_MBUFS,
    EDI_OPT_CLOSE_FLUSH_TIME,
    EDI_OPT_MAX_CLOSING_CONNECTIONS,
    EDI_OPT_AUTO_CONNECT_MAX_SIGNALS,
    EDI_OPT_AUTO_CONNECT_MAX_BYTES,
    EDI_OPT_GLOBAL_CALL_TIMEOUT,
    EDI_OPT_SEND_OPEN_SEQUENCES,
    EDI_OPT_RECEIVE_GRACE_TIME,
    EDI_OPT_SERVICE_RESTARTS,
    EDI_OPT_SERVICE_RESTART_PERIOD,
    EDI_OPT_STATS_INTERVAL,
    EDI_OPT_STATS_DIR,
    EDI_OPT_PUBLISH_STATS,
    EDI_OPT_COUNT
} edi_opt_id;

#define EDI_OPT_TEXT_BYTES 256

typedef struct edi_node_options {
    char value[EDI_OPT_COUNT][EDI_OPT_TEXT_BYTES]; /* "" = unset */
    edi_opt_source source[EDI_OPT_COUNT];
    char origin[EDI_OPT_COUNT][PATH_MAX + 32]; /* "file F:LINE", "env X" ... */
    /* Filled by edi_node_options_to_config(); strings point into value. */
    edist_node_config cfg;
} edi_node_options;

/* Defaults only. */
void edi_node_options_init(edi_node_options *o);

/* Option id for a key ("listen_port"), or -1. */
int edi_node_option_id(const char *key);
const char *edi_node_option_key(edi_opt_id id);

/* Set one option from a source; ignored (returns 0) when a source of higher
 * precedence already set it. Checks the value's syntax: EDIST_EINVAL with
 * detail naming the option and origin. origin_detail may be NULL. */
int edi_node_options_set(edi_node_options *o, edi_opt_id id, const char *value,
                         edi_opt_source src, const char *origin_detail);

/* Read EDIST_<KEY> for every option from the environment. */
int edi_node_options_load_env(edi_node_options *o);

/* Read an INI file (inih). EDIST_EIO if it cannot be opened,
 * EDIST_EINVAL with "FILE:LINE: ..." for a syntax error, an unknown key or
 * a bad value. */
int edi_node_options_load_file(edi_node_options *o, const char *path);

/* Parse command-line flags from argv[0..argc): "--key value", "--key=value",
 * bare "--bool-key". Arguments that are not flags are left for the caller:
 * their indexes go to positional[] (at most max_positional, else
 * EDIST_EINVAL). Unknown flags: EDIST_EINVAL. "--print-config" sets
 * *print_config (may be NULL: then it is an unknown flag). */
int edi_node_options_parse_args(edi_node_options *o, int argc, char **argv,
                                int *positional, int max_positional,
                                int *n_positional, int *print_config);

/* All sources in order: flags from argv (already parsed into o), then the
 * environment, then the config file named by the config option, so that
 * precedence is respected. Convenience for the CLI. */
int edi_node_options_load_all(edi_node_options *o);

/* Fill o->cfg from the effective values (names, times in ms, enums).
 * EDIST_EINVAL if both sname and name are set or neither is and
 * require_name. */
int edi_node_options_to_config(edi_node_options *o, int require_name);

/* One "key = value  (origin)" line per option into buf, the cookie masked.
 * Returns the length needed (like snprintf). */
size_t edi_node_options_format(const edi_node_options *o, char *buf,
                               size_t cap);

#endif
