/* SPDX-License-Identifier: Apache-2.0 */
/* Private to dataplane/uring: the structures behind loop.h, shared by
 * loop.c (ring, idle, timers, posts), rxbuf.c (receive buffer pool) and
 * conn.c (listeners, connections, framing, send queues). */
#ifndef EDI_URING_INTERNAL_H
#define EDI_URING_INTERNAL_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "dataplane/uring/loop.h"

/* The buffer group id of the loop's provided-buffer ring (one per ring). */
#define EDI_BGID 1
/* iovecs in one sendmsg: enough to batch many small frames per syscall,
 * well under IOV_MAX (1024). */
#define EDI_TX_IOV_MAX 64
/* Copied sends are packed into chunks of this size (bigger frames get a
 * chunk of their own size). */
#define EDI_TX_CHUNK_BYTES (64u * 1024u)

/* What a CQE's user_data points at. user_data 0 is a completion we do not
 * care about (cancel requests). */
enum edi_op_kind {
    EDI_OP_EVENTFD = 1,
    EDI_OP_ACCEPT,
    EDI_OP_CONNECT,
    EDI_OP_RECV,
    EDI_OP_SEND,
};
typedef struct edi_op {
    uint8_t kind;
} edi_op;

#define edi_container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* ---- receive buffers (rxbuf.c) ------------------------------------------ */

/* POOL: a kernel ring buffer; HEAP: header and data in one block;
 * ADOPTED: data is a separate malloc'd block taken over (a reassembled
 * message), freed with it. */
enum { EDI_RXBUF_POOL = 1, EDI_RXBUF_HEAP = 2, EDI_RXBUF_ADOPTED = 3 };

struct edi_pool;

struct edi_rxbuf {
    atomic_uint refs;
    uint8_t kind;
    uint16_t bid;             /* pool buffers: id in the kernel ring */
    struct edi_pool *pool;    /* pool buffers only */
    struct edi_rxbuf *next;   /* on the pool's returned list */
    uint8_t *data;
    size_t cap;
};

typedef struct edi_pool {
    /* loop thread only while the loop lives */
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    uint8_t *mem;
    size_t mem_bytes;
    struct edi_rxbuf *bufs;
    uint32_t count, size_bytes, mask;
    uint32_t in_ring;         /* buffers the kernel may fill */
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

int edi_pool_new(edi_loop *loop, struct io_uring *ring, uint32_t count,
                 uint32_t size_bytes, edi_pool **out);
/* Loop is going away: unregister nothing (the ring is torn down by the
 * caller), free the pool now or when its last held buffer comes back. */
void edi_pool_release(edi_pool *p);
/* A CQE handed us buffer bid: it now has one reference (the caller's). */
edi_rxbuf *edi_pool_take(edi_pool *p, uint16_t bid);
/* Loop thread: move buffers released elsewhere back into the ring.
 * Returns how many. */
uint32_t edi_pool_drain_returned(edi_pool *p);
/* A heap rxbuf of cap bytes with one reference, or NULL. */
edi_rxbuf *edi_rxbuf_heap_new(size_t cap);
/* Grow a heap rxbuf that nobody else references yet; NULL on failure (the
 * old one is still valid then). */
edi_rxbuf *edi_rxbuf_heap_grow(edi_rxbuf *b, size_t cap);

/* ---- the loop (loop.c) ---------------------------------------------------- */

typedef struct edi_post_ent {
    edi_post_fn fn;
    void *arg;
} edi_post_ent;

struct edi_loop {
    struct io_uring ring;
    edi_loop_config cfg;
    unsigned features;
    uint64_t now_ms;
    uint64_t now_ns;

    /* wake-ups: an eventfd read is kept armed in the ring */
    int efd;
    uint64_t efd_value;
    edi_op efd_op;
    bool efd_armed;
    atomic_int stop;
    atomic_int sleeping;

    atomic_ulong thread;       /* pthread_self() of the loop thread */
    atomic_ullong posts_total, posts_refused; /* any thread */

    /* posts: bounded ring under post_mu; post_count read without the lock
     * to decide whether to look */
    pthread_mutex_t post_mu;
    edi_post_ent *posts;
    uint32_t post_head, post_len;
    atomic_uint post_count;

    /* timers: binary min-heap on (due_ms, seq) */
    edi_timer **heap;
    uint32_t heap_len, heap_cap;
    uint64_t timer_seq;

    edi_pool *pool;

    /* connections */
    edi_conn *conns;           /* all live or dying connections */
    edi_conn *dirty;           /* have bytes to send */
    edi_conn *deferred;        /* on_close / rx kick / on_writable pending */
    edi_conn *starved;         /* receive stopped: ring ran dry */
    edi_listener *listeners;
    uint32_t nstarved;

    edi_loop_stats st;

    /* "connection closed" lines: a peer can trigger them (resets). */
    edi_ratelimit close_log;

    /* Shards: the cross-shard rings' poller (loop.h). */
    edi_loop_poller poller;
};

/* Returns an SQE, submitting pending ones first if the SQ is full; NULL
 * only if the ring is broken. */
struct io_uring_sqe *edi_loop_sqe(edi_loop *loop);
void edi_loop_log(edi_loop *loop, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- connections (conn.c) ------------------------------------------------- */

void edi_conn_handle_cqe(edi_loop *loop, edi_op *op, struct io_uring_cqe *cqe);
void edi_listener_handle_cqe(edi_loop *loop, edi_op *op,
                             struct io_uring_cqe *cqe);
/* Per iteration: deferred callbacks, re-arm starved receives, flush sends. */
uint32_t edi_conn_run_deferred(edi_loop *loop);
void edi_conn_rearm_starved(edi_loop *loop);
void edi_conn_flush(edi_loop *loop);
/* Loop teardown: free every connection and listener without callbacks. */
void edi_conn_free_all(edi_loop *loop);

#endif
