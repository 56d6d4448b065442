/* SPDX-License-Identifier: Apache-2.0 */
/* What the node's files share. The node is split by concept:
 *   node.c           configuration, start-up (name, cookie, listener, port
 *                    mapper), the shard thread, stop, getters
 *   node_signals.c   the runtime's outgoing signals (hooks) and the
 *                    auto-connection that defers them
 *   node_dispatch.c  incoming distribution messages into the runtime
 *   node_services.c  what the services ask of the node
 *   node_calls.c     calls into the loop from other threads, blocked sends,
 *                    and the public calls made through them
 * Names shared between these files start with edi_node_. */
#ifndef EDI_NODE_INTERNAL_H
#define EDI_NODE_INTERNAL_H

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "base/log.h"
#include "control/cookie.h"
#include "control/dist_build.h"
#include "control/handshake.h"
#include "control/netkernel.h"
#include "edist/node.h"
#include "runtime/runtime_internal.h"
#include "runtime/services.h"

/* The last send to a pid that went through the node (loop thread): its
 * pids with their node names, and the frame head built for them. A
 * process streaming to one process sends the same head every time, and
 * looking up the names and writing the head for each message was a
 * quarter of a 64-byte stream's sending time. */
typedef struct edi_send_memo {
    edist_procid from, to;
    edist_pid from_pid, to_pid;
    uint64_t head_flags; /* the flags head was built for */
    size_t head_len;     /* 0: none */
    uint8_t head[EDI_DIST_SEND_HEAD_MAX_BYTES];
} edi_send_memo;

struct edist_node {
    edist_node_config cfg; /* strings below are copies */
    char name[EDI_HS_NAME_MAX_BYTES + 1];
    char listen_address[INET6_ADDRSTRLEN];
    uint32_t creation;
    uint16_t listen_port;
    uint16_t epmd_port;
    edi_cookies *cookies;
    edi_loop *loop;
    edi_nk *nk;
    edi_listener *listener;
    edi_conn *epmd_conn;
    edist_node_writable_fn writable_fn; /* loop thread */
    void *writable_user;
    pthread_t thread;
    bool thread_started;
    atomic_bool stopping; /* set by edist_node_stop, read on the loop */
    /* The process runtime on the node's loop, and what its hooks use to
     * build frames (loop thread). */
    edi_rt *rt;
    edi_services *services;
    char stats_path[1024]; /* the published counters' file, or "" */
    /* processes told of nodeup/nodedown (services' monitor_nodes):
     * each one its own net kernel subscription; loop thread */
    struct node_sub *node_subs;
    edist_buf rt_frame;
    edi_send_memo send_memo;
    /* Auto-connection: signals for nodes being connected to (loop
     * thread), bounded; the attempts by node index (looked at on every
     * remote signal while any is under way). */
    edi_htab connecting;
    size_t deferred_count, deferred_bytes;
    size_t deferred_count_max;     /* the most at once */
    uint64_t auto_connect_refused; /* signals failed: the wait was full */

    /* base: the one logger, from cfg.log, log_user and log_level; the
     * loop, the net kernel and the runtime get a copy. */
    edi_log log;

    /* Receive buffers: whether the pool ran low, decided once an
     * iteration after the processes ran (edi_node_rx_watch). */
    bool rx_low;
    bool rx_held;               /* reading stopped: shard_backlog_limit */
    uint32_t backlog_max;       /* shard 0's backlog at its peak */
    /* The DPDK lane's pool seen low (rx_watch): times, and now */
    uint64_t lane_pool_lows;
    bool lane_pool_was_low;
    bool lane_unusable_said;        /* the port's end was logged */
    uint64_t lane_usable_checked_ms; /* when it was last looked at */
    edi_poll_source rx_watch;

    /* transport dpdk: the lane edist peers' data moves to, or NULL. */
    edi_lane *dpdk_lane;
};

/* Auto-connection's bounds (the option or its default). */
static inline size_t edi_node_auto_connect_max_signals(const edist_node *n)
{
    return n->cfg.auto_connect_max_signals ? n->cfg.auto_connect_max_signals
                                           : EDIST_NODE_AUTO_CONNECT_MAX_SIGNALS_DEFAULT;
}
static inline size_t edi_node_auto_connect_max_bytes(const edist_node *n)
{
    return n->cfg.auto_connect_max_bytes ? (size_t)n->cfg.auto_connect_max_bytes
                                         : EDIST_NODE_AUTO_CONNECT_MAX_BYTES_DEFAULT;
}

/* The close's flush time (close_flush_ms or its default). */
static inline uint32_t edi_node_close_flush_ms(const edist_node *n)
{
    return n->cfg.close_flush_ms ? n->cfg.close_flush_ms : EDIST_NODE_CLOSE_FLUSH_MS_DEFAULT;
}

/* node_signals.c: the runtime's hooks, with n as their user. */
extern const edi_rt_hooks edi_node_rt_hooks;
/* A local process id as a distribution pid term, encoded in s. */
int edi_node_pid_view(edist_procid p, edi_dist_term_scratch *s,
                      edist_term_view *out);
/* At node_free: attempts whose completion never ran (the loop stopped). */
void edi_node_connecting_free_all(edist_node *n);

/* node_dispatch.c: what the net kernel hands the runtime, with n as user. */
extern const edi_nk_rt_ops edi_node_nk_ops;

/* node_services.c: start the services (cfg.services) on n's runtime. */
int edi_node_services_start(edist_node *n);
/* The services' node event subscribers (after the net kernel is freed). */
void edi_node_subs_free(edist_node *n);

/* node_calls.c */
/* Wait (never inline) until the loop runs on its thread: from then on
 * edi_loop_on_thread() tells callers apart. */
int edi_node_call_wait_running(edist_node *n);
/* Say goodbye on the loop: close the listener, let the runtime's held
 * sends reach the net kernel (close_flush_ms at most), shut the net
 * kernel down (close_flush_ms + 1 s at most), unregister, stop the loop.
 * False if the loop did not finish that in time (or could not be asked). */
bool edi_node_call_stop(edist_node *n);

#endif
