/* SPDX-License-Identifier: Apache-2.0 */
/* Private to dataplane/uring: the structures behind tcp.h, shared by
 * tcp.c (the data path's per-loop state and its place in the reactor),
 * rxpool.c (receive buffer pool) and conn.c (listeners, connections,
 * framing, send queues). */
#ifndef EDI_URING_INTERNAL_H
#define EDI_URING_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "dataplane/reactor/ring.h"
#include "dataplane/uring/tcp.h"

/* The buffer group id of the loop's provided-buffer ring (one per ring). */
#define EDI_BGID 1
/* iovecs in one sendmsg: enough to batch many small frames per syscall,
 * well under IOV_MAX (1024). */
#define EDI_TX_IOV_MAX 64
/* Copied sends are packed into chunks of this size (bigger frames get a
 * chunk of their own size). */
#define EDI_TX_CHUNK_BYTES (64u * 1024u)

/* ---- receive buffers (rxpool.c) ------------------------------------------ */

/* The pool's buffers are OWNED rxbufs (dataplane/reactor/rxbuf.h) whose id
 * is their buffer id in the kernel ring. */
typedef struct edi_pool {
    /* loop thread only while the loop lives */
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    uint8_t *mem;
    size_t mem_bytes;
    struct edi_rxbuf *bufs;
    uint32_t count, size_bytes, mask;
    uint32_t in_ring;         /* buffers the kernel may fill */
    /* Free buffers kept out of the kernel ring for reads the loop makes
     * itself (edi_tcp_config.rx_poll_us): up to spare_target of them. */
    struct edi_rxbuf *spare;
    uint32_t nspare, spare_target;
    atomic_ulong owner;       /* pthread_self() of the loop thread */
    edi_loop *loop;
    /* held = out of the kernel ring (being delivered or referenced).
     * Changed by the loop thread while alive, under mu once dead. */
    uint64_t held;
    /* Buffers whose last reference was dropped on another thread wait
     * here for the loop thread (the only producer of the kernel ring). */
    pthread_mutex_t mu;
    struct edi_rxbuf *returned;
    atomic_int returned_nonempty;
    atomic_int alive;
} edi_pool;

int edi_pool_new(edi_loop *loop, uint32_t count, uint32_t size_bytes,
                 edi_pool **out);
/* Loop is going away: unregister nothing (the ring is torn down by the
 * caller), free the pool now or when its last held buffer comes back. */
void edi_pool_release(edi_pool *p);
/* A CQE handed us buffer bid: it now has one reference (the caller's). */
edi_rxbuf *edi_pool_take(edi_pool *p, uint16_t bid);
/* Loop thread: a free buffer outside the kernel ring, with one reference,
 * for a read of our own; NULL when none is spare. */
edi_rxbuf *edi_pool_take_spare(edi_pool *p);
/* Free buffers, in the kernel ring or spare. */
static inline uint32_t edi_pool_free_count(const edi_pool *p)
{
    return p->in_ring + p->nspare;
}
/* Buffers in the ring from which starved receives are armed again. */
static inline uint32_t edi_pool_rearm_threshold(const edi_pool *p)
{
    return p->count / 8 ? p->count / 8 : 1;
}
/* Below a quarter free, or connections starved with too few buffers in
 * the ring to arm them again (the spares kept for busy polling's own
 * reads count as free but arm nothing: with 8 buffers, 2 spare, 6 held
 * and none in the ring, no receive came back and nothing was copied
 * out), the views held are copied out, so that every connection keeps
 * reading. */
static inline bool edi_pool_low(const edi_pool *p, uint32_t nstarved)
{
    return edi_pool_free_count(p) < p->count / 4 ||
           (nstarved > 0 && p->in_ring < edi_pool_rearm_threshold(p));
}
/* Loop thread: move buffers released elsewhere back into the ring.
 * Returns how many. */
uint32_t edi_pool_drain_returned(edi_pool *p);

/* ---- the data path's state on one loop (tcp.c) --------------------------- */

typedef struct edi_tcp {
    edi_loop *loop;
    edi_tcp_config cfg;
    unsigned features;
    edi_pool *pool;

    /* connections */
    edi_conn *conns;           /* all live or dying connections */
    edi_conn *dirty;           /* have bytes to send */
    edi_conn *deferred;        /* on_close / rx kick / on_writable pending */
    edi_conn *starved;         /* receive stopped: ring ran dry */
    /* closed gracefully, socket still open (flushing or lingering),
     * oldest first */
    edi_conn *closing_head, *closing_tail;
    uint32_t nclosing;
    /* received within cfg.rx_poll_us: read by the loop every iteration */
    edi_conn **hot;
    uint32_t nhot, hot_cap;
    uint32_t hot_work;         /* reads of the last flush that got bytes */
    bool rx_held;              /* edi_tcp_rx_hold */
    edi_listener *listeners;
    uint32_t nstarved;

    edi_tcp_stats st;

    /* "connection closed" lines: a peer can trigger them (resets). */
    edi_ratelimit close_log;

    /* the reactor polls this: deferred work, starved receives, flush */
    edi_poll_source poll;

    /* where lingering connections' bytes go, unread (arm_discard) */
    uint8_t discard[4096];

    /* transmit chunks of the standard size, kept for reuse */
    struct txchunk *chunk_free;
    uint32_t chunk_free_count;
} edi_tcp;

/* Standard transmit chunks kept for reuse per shard (4 MiB). */
#define EDI_TX_CHUNK_CACHE 64u
/* Frees the kept chunks (teardown, after every connection). */
void edi_tcp_chunks_free(edi_tcp *tcp);

/* The loop's TCP state, set up with the defaults if it has none yet.
 * Returns 0 or what edi_tcp_setup returns. */
int edi_tcp_get(edi_loop *loop, edi_tcp **out);

/* ---- connections (conn.c) ------------------------------------------------- */

/* Per iteration: deferred callbacks, re-arm starved receives, flush sends. */
uint32_t edi_conn_run_deferred(edi_tcp *tcp);
void edi_conn_rearm_starved(edi_tcp *tcp);
/* edi_tcp_rx_hold for tcp. */
void edi_conn_rx_hold(edi_tcp *tcp, bool hold);
/* Reads every hot connection once (non-blocking); returns how many got
 * bytes. */
uint32_t edi_conn_poll_hot(edi_tcp *tcp);
void edi_conn_flush(edi_tcp *tcp);
/* Loop teardown: free every connection and listener without callbacks. */
void edi_conn_free_all(edi_tcp *tcp);

#endif
