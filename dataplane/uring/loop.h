/* SPDX-License-Identifier: Apache-2.0 */
/* io_uring TCP data path: one event loop per shard thread.
 *
 * An edi_loop owns one io_uring, a pool of receive buffers registered with
 * the kernel as a provided-buffer ring, its timers, listeners and TCP
 * connections. Everything a loop owns is touched by one thread only: the
 * thread that calls edi_loop_run()/edi_loop_run_once() (the "loop thread").
 * Before the first run, the thread that created the loop may set it up
 * (listen, connect, adopt, timers). The only calls allowed from any other
 * thread are marked "thread-safe" below: edi_loop_post(), edi_loop_stop()
 * (also async-signal-safe), edi_rxbuf_ref()/edi_rxbuf_unref(), edi_now_ms().
 *
 * Callbacks (ops, timers, posted functions) run on the loop thread, never
 * from inside the edi_* call that caused them (no reentrancy surprises),
 * and may call any loop-thread function, including closing the connection
 * the callback is about.
 *
 * Errors: 0 (or a count) on success, negative edist_err on failure, with
 * detail in edist_last_error() of the calling thread. Nothing sets errno
 * for the caller and nothing prints: events worth a line go to config.log.
 *
 * Memory is bounded everywhere: receive buffers are a fixed pool, the post
 * queue and each connection's send queue have byte/entry limits and push
 * back with EDIST_EAGAIN. */
#ifndef EDI_URING_LOOP_H
#define EDI_URING_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct edi_loop edi_loop;
typedef struct edi_conn edi_conn;
typedef struct edi_listener edi_listener;
typedef struct edi_rxbuf edi_rxbuf;

/* ---- configuration ------------------------------------------------------ */

typedef enum edi_idle_mode {
    EDI_IDLE_ADAPTIVE = 0, /* spin spin_us, sched_yield until yield_us, then
                            * block in the kernel until work or next timer */
    EDI_IDLE_BUSY = 1,     /* never block: lowest latency, one core burnt */
    EDI_IDLE_SLEEP = 2,    /* block as soon as there is nothing to do */
} edi_idle_mode;

/* Kernel/liburing features; edi_loop_features() tells which are in use and
 * config.disable_features turns some off (to test the fallbacks). */
enum {
    EDI_FEAT_BUF_RING = 1u << 0,        /* provided-buffer ring (5.19+): required */
    EDI_FEAT_RECV_MULTISHOT = 1u << 1,  /* multishot recv (6.0+); else one-shot
                                         * recv with buffer select */
    EDI_FEAT_ACCEPT_MULTISHOT = 1u << 2,/* multishot accept (5.19+) */
    EDI_FEAT_EXT_ARG = 1u << 3,         /* wait with timeout in one syscall (5.11+);
                                         * informative, cannot be disabled */
    EDI_FEAT_COOP_TASKRUN = 1u << 4,    /* completions without IPIs (5.19+) */
};

typedef void (*edi_log_fn)(void *user, const char *line);

typedef struct edi_loop_config {
    edi_idle_mode idle;              /* default ADAPTIVE */
    uint32_t spin_us;                /* adaptive: busy spin this long idle (default 50) */
    uint32_t yield_us;               /* adaptive: sched_yield until this long idle (default 300) */
    uint32_t ring_entries;           /* SQ size, power of 2 (default 256) */
    uint32_t rx_buffer_bytes;        /* one receive buffer (default 64 KiB) */
    uint32_t rx_buffer_count;        /* buffers in the ring, power of 2 <= 32768 (default 64) */
    uint64_t max_frame_bytes;        /* U32 frames above this = protocol error (default 256 MiB) */
    size_t raw_max_bytes;            /* RAW mode: unconsumed bytes kept at most (default 64 KiB) */
    size_t send_queue_limit_bytes;   /* per connection (default 1 MiB) */
    uint32_t post_queue_len;         /* edi_loop_post capacity (default 4096) */
    unsigned disable_features;       /* EDI_FEAT_* to leave unused (default 0) */
    edi_log_fn log;                  /* one line per significant event; may be NULL */
    void *log_user;
} edi_loop_config;

/* Fills c with the defaults above. */
void edi_loop_config_default(edi_loop_config *c);

/* ---- loop lifecycle ----------------------------------------------------- */

/* Creates a loop (io_uring, eventfd, receive buffer ring). config may be
 * NULL for defaults. Any thread. Returns 0, EDIST_EINVAL (bad config),
 * EDIST_ENOMEM, or EDIST_EUNSUPPORTED (no io_uring or no buffer rings:
 * detail says why). */
int edi_loop_new(const edi_loop_config *config, edi_loop **out);

/* Frees the loop. Call from the loop thread (or any thread once no thread
 * runs it). Remaining listeners and connections are closed without their
 * callbacks; owned send buffers are released through their release
 * functions. Receive buffers still referenced by the owner stay valid until
 * their last edi_rxbuf_unref() (the pool is freed then). */
void edi_loop_free(edi_loop *loop);

/* Runs until edi_loop_stop(). Returns 0 when stopped, or a negative
 * edist_err if the ring failed. The calling thread becomes the loop thread. */
int edi_loop_run(edi_loop *loop);

/* One iteration: completes what is ready, runs due timers and posted work,
 * flushes sends; if nothing was ready, blocks up to timeout_ms (0 = do not
 * wait, -1 = until something happens) and iterates once more. The idle
 * strategy applies to edi_loop_run only. Returns the number of events
 * handled (>= 0) or a negative edist_err. */
int edi_loop_run_once(edi_loop *loop, int timeout_ms);

/* Makes edi_loop_run() return soon. Thread-safe and async-signal-safe
 * (an atomic store and an eventfd write). The stop request is consumed
 * when edi_loop_run returns; calling run again runs again. */
void edi_loop_stop(edi_loop *loop);

/* Runs fn(loop, arg) on the loop thread soon, in post order. Thread-safe
 * (not async-signal-safe); wakes a sleeping loop. Returns 0 or EDIST_EAGAIN
 * when the bounded queue is full (fn will not run). Posts still queued at
 * edi_loop_free are dropped (fn not called). */
typedef void (*edi_post_fn)(edi_loop *loop, void *arg);
int edi_loop_post(edi_loop *loop, edi_post_fn fn, void *arg);

/* Wakes the loop if it sleeps (a no-op otherwise: a loop that is awake
 * polls everything anyway). Thread-safe. For other threads that hand the
 * loop work through memory it polls (a poller's rings, below). */
void edi_loop_wake(edi_loop *loop);

/* One poller per loop (the shard's cross-shard rings): poll runs on the
 * loop thread every iteration and returns how much it did (0: nothing);
 * pending, called after the loop has said it is going to sleep, returns
 * true when there is work after all (then it does not sleep). A producer
 * that gives the poller work calls edi_loop_wake after publishing it:
 * pending must order its reads after the loop's seq_cst store of its
 * sleeping flag (a seq_cst fence), which pairs with the wake's seq_cst load
 * of that flag. Loop thread or before the first run; NULL removes it. */
typedef struct edi_loop_poller {
    uint32_t (*poll)(void *arg);
    bool (*pending)(void *arg);
    void *arg;
} edi_loop_poller;
void edi_loop_set_poller(edi_loop *loop, const edi_loop_poller *poller);

/* Monotonic clock in ms. edi_now_ms reads the clock (thread-safe);
 * edi_loop_now_ms is the loop's cached value, refreshed every iteration. */
uint64_t edi_now_ms(void);
uint64_t edi_loop_now_ms(const edi_loop *loop);

/* EDI_FEAT_* bits in use by this loop. Any thread after creation. */
unsigned edi_loop_features(const edi_loop *loop);

/* True when called on the loop thread (the one running or set up the loop). */
int edi_loop_on_thread(const edi_loop *loop);

/* ---- timers ----------------------------------------------------------------
 * The owner provides the memory of an edi_timer (embed it in its own
 * struct): no allocation, and cancel is always safe, also after the timer
 * fired, and from inside its own callback. Loop thread only. */
typedef struct edi_timer edi_timer;
typedef void (*edi_timer_fn)(edi_loop *loop, edi_timer *t, void *arg);
struct edi_timer {
    /* private to the loop */
    uint64_t due_ms;
    uint64_t period_ms;
    uint64_t seq;        /* tie-break: same due time fires in start order */
    edi_timer_fn fn;
    void *arg;
    uint32_t heap_index; /* UINT32_MAX when not armed */
};

/* Zeroes t into the disarmed state (a zeroed struct is NOT disarmed). */
void edi_timer_init(edi_timer *t);
/* Arms t: fires fn after delay_ms, then every period_ms if period_ms > 0.
 * Re-arming an armed timer moves it. Returns 0 or EDIST_ENOMEM (heap full:
 * the heap grows, so only on allocation failure). */
int edi_loop_timer_start(edi_loop *loop, edi_timer *t, uint64_t delay_ms,
                         uint64_t period_ms, edi_timer_fn fn, void *arg);
/* Disarms t (no-op if not armed). */
void edi_loop_timer_cancel(edi_loop *loop, edi_timer *t);
/* 1 if t is armed. */
int edi_timer_armed(const edi_timer *t);

/* ---- receive buffers ----------------------------------------------------- */

/* A frame delivered in U32 mode: a view {data, len} inside rxbuf. The view
 * is valid during on_frame; to keep it longer take a reference with
 * edi_rxbuf_ref(f->rxbuf) and drop it with edi_rxbuf_unref() when done.
 * rxbuf is never NULL. A frame inside one kernel receive buffer points into
 * that buffer (no copy); a frame spanning buffers was reassembled into an
 * allocated rxbuf (same refcounting). len == 0 is a tick. */
typedef struct edi_frame {
    const uint8_t *data;
    size_t len;
    edi_rxbuf *rxbuf;
} edi_frame;

/* Reference counting, thread-safe (a process on another thread may hold a
 * message). A pool buffer returns to the kernel ring when its last reference
 * is dropped (via the loop thread: dropping it elsewhere queues it back and
 * wakes the loop). Holding many buffers makes the ring run dry: then
 * connections stop receiving (TCP backpressure) until buffers come back. */
void edi_rxbuf_ref(edi_rxbuf *b);
void edi_rxbuf_unref(edi_rxbuf *b);

/* A refcounted rxbuf that takes over data (malloc'd, len bytes): freed
 * with the last reference. NULL when out of memory (data is not freed
 * then). Any thread. */
edi_rxbuf *edi_rxbuf_adopt(void *data, size_t len);

/* True for a buffer of the loop's shared receive pool: every connection
 * needs those back, so views a holder may keep long (messages queued in
 * mailboxes) must be copied out when the pool runs low. Heap and adopted
 * buffers cost only memory. Any thread. */
bool edi_rxbuf_scarce(const edi_rxbuf *b);

/* Loop thread: true when the free receive buffers are running low (below
 * a quarter of the pool): then the views held are copied out, so that
 * connections keep reading. */
bool edi_loop_rx_low(const edi_loop *loop);

/* ---- listening ------------------------------------------------------------ */

/* Called for each accepted socket; the callee owns fd (adopt it with
 * edi_conn_adopt or close it). peer is the remote address. */
typedef void (*edi_accept_fn)(edi_listener *l, int fd,
                              const struct sockaddr_storage *peer, void *user);

/* Listens on ip (IPv4 or IPv6 literal, NULL = "0.0.0.0") and port (0 =
 * ephemeral), with SO_REUSEADDR; *bound_port (may be NULL) gets the port.
 * Accepts with multishot accept when available. Loop thread (or setup).
 * Returns 0, EDIST_EINVAL (bad ip), EDIST_EIO (socket/bind/listen failed:
 * detail), EDIST_ENOMEM. */
int edi_loop_listen(edi_loop *loop, const char *ip, uint16_t port,
                    edi_accept_fn on_accept, void *user,
                    edi_listener **out, uint16_t *bound_port);
/* Stops listening and frees l (the socket closes once the kernel returns
 * the pending accept). No callback after this call. Loop thread. */
void edi_listener_close(edi_listener *l);

/* ---- connections ---------------------------------------------------------- */

typedef enum edi_framing {
    EDI_FRAMING_RAW = 0, /* on_bytes sees the byte stream (handshake) */
    EDI_FRAMING_U32 = 1, /* [u32 big-endian len][payload] -> on_frame */
} edi_framing;

/* Callbacks of a connection; any may be NULL except on_close. user is the
 * value given at creation or by edi_conn_set_user. */
typedef struct edi_conn_ops {
    /* Outgoing connect finished successfully (never called on failure: a
     * failed or timed-out connect calls on_close instead). */
    void (*on_connected)(edi_conn *c, void *user);
    /* RAW mode: bytes arrived. Return how many were consumed (0..len);
     * the rest is kept and offered again, with new bytes appended, next
     * time (at most raw_max_bytes kept, beyond that EDIST_EPROTO). data is
     * only valid during the call. The callee may switch to U32 before
     * returning: the bytes after the consumed ones are then parsed as
     * frames at once. */
    size_t (*on_bytes)(edi_conn *c, void *user, const uint8_t *data,
                       size_t len);
    /* U32 mode: one complete frame (len 0 = tick). May switch framing. */
    void (*on_frame)(edi_conn *c, void *user, const edi_frame *f);
    /* The send queue went from "full" (a send returned EDIST_EAGAIN) to
     * below half its limit. Called once per EAGAIN episode. */
    void (*on_writable)(edi_conn *c, void *user);
    /* Called exactly once; afterwards c is invalid (the loop frees it once
     * the kernel returns its buffers). reason: 0 local close completed
     * (edi_conn_close flushed everything, or edi_conn_abort(c, 0)),
     * EDIST_ECLOSED peer closed at a frame boundary (RAW: any EOF),
     * EDIST_EPROTO peer closed mid-frame, oversized frame, RAW overflow,
     * EDIST_EIO socket error (detail in edist_last_error()),
     * EDIST_ETIMEDOUT connect or graceful-close deadline passed,
     * EDIST_ENOMEM reassembly allocation failed, or the reason given to
     * edi_conn_abort. Unsent data is dropped; owned send buffers are
     * released once the kernel no longer reads them, which may be after
     * on_close returns. */
    void (*on_close)(edi_conn *c, void *user, int reason);
} edi_conn_ops;

/* Takes ownership of a connected stream socket fd (also on failure: fd is
 * closed then) and starts receiving in RAW mode. Sets TCP_NODELAY and
 * clears O_NONBLOCK (io_uring waits for readiness itself). ops must stay
 * valid while c lives. Loop thread. Returns 0, EDIST_ENOMEM, EDIST_EINVAL
 * (fd < 0, ops or ops->on_close missing). */
int edi_conn_adopt(edi_loop *loop, int fd, const edi_conn_ops *ops,
                   void *user, edi_conn **out);

/* Starts an asynchronous TCP connect to ip:port (literal address); the
 * connection exists at once (sends are queued and go out once connected).
 * timeout_ms 0 = none. Success: on_connected, then receiving in RAW mode.
 * Failure (refused, unreachable, timeout): on_close(EDIST_EIO or
 * EDIST_ETIMEDOUT). Loop thread. Returns 0, EDIST_EINVAL (bad ip),
 * EDIST_EIO (no socket), EDIST_ENOMEM. */
int edi_loop_connect(edi_loop *loop, const char *ip, uint16_t port,
                     uint64_t timeout_ms, const edi_conn_ops *ops,
                     void *user, edi_conn **out);

/* Framing mode; may change at any time, also from inside on_bytes/on_frame
 * (takes effect for the next byte not yet delivered). */
void edi_conn_set_framing(edi_conn *c, edi_framing mode);
edi_framing edi_conn_framing(const edi_conn *c);

void edi_conn_set_user(edi_conn *c, void *user);
void *edi_conn_user(const edi_conn *c);
void edi_conn_set_ops(edi_conn *c, const edi_conn_ops *ops);
edi_loop *edi_conn_loop(const edi_conn *c);
/* The socket (for getsockopt/getpeername only: never read, write or
 * close it). */
int edi_conn_fd(const edi_conn *c);

/* Sending. All loop thread. Frames are sent in the order queued, batched
 * (one sendmsg with many iovecs per connection per iteration), one send in
 * flight per connection, partial sends continued. Each send checks the
 * queue limit: if the queue is not empty and queued + new bytes would
 * exceed send_queue_limit_bytes, the call returns EDIST_EAGAIN, queues
 * nothing, and on_writable follows once the queue drains below half.
 * (A single frame larger than the limit is accepted into an empty queue.)
 * After edi_conn_close/abort, or once closed, sends return EDIST_ECLOSED.
 *
 * edi_conn_send_raw:   copies len bytes, no framing (handshake).
 * edi_conn_send_frame: copies, prepending [u32 big-endian len]; len 0 sends
 *                      a tick; data may be NULL when len is 0.
 * edi_conn_send_frame_owned: one frame [u32 len(head)+len(body)][head][body]
 *     where head (may be empty) is copied and body is NOT: it must stay
 *     valid and unchanged until release(release_arg, body) is called (on
 *     the loop thread) once the bytes are written, or the connection dies,
 *     or at edi_loop_free. On any error return release is NOT called: the
 *     caller still owns body. flags: EDI_SEND_FORCE ignores the queue limit
 *     (use sparingly: for things that must not be refused, e.g. an exit
 *     signal already promised; memory stays the caller's responsibility). */
enum { EDI_SEND_FORCE = 1u << 0 };
typedef void (*edi_release_fn)(void *release_arg, const void *body);
int edi_conn_send_raw(edi_conn *c, const void *data, size_t len);
int edi_conn_send_frame(edi_conn *c, const void *data, size_t len);
int edi_conn_send_frame_owned(edi_conn *c, const void *head, size_t head_len,
                              const void *body, size_t body_len,
                              edi_release_fn release, void *release_arg,
                              unsigned flags);
/* Bytes queued and not yet acknowledged by the kernel. */
size_t edi_conn_send_queue_bytes(const edi_conn *c);

/* Graceful close: stops delivering received data, flushes the send queue,
 * then sends FIN; on_close(0) once everything was written, or
 * on_close(EDIST_ETIMEDOUT) if not flushed within timeout_ms (0 = 5 s).
 * After on_close(0) the loop keeps draining the socket until the peer
 * closes too or the deadline passes (closing with unread bytes would send
 * a reset that can destroy the data just sent). New sends return
 * EDIST_ECLOSED at once. Idempotent. Loop thread. */
void edi_conn_close(edi_conn *c, uint64_t timeout_ms);
/* Immediate close: drops unsent data; on_close(reason) follows from the
 * loop (never from inside this call). Idempotent (first reason wins).
 * Loop thread. */
void edi_conn_abort(edi_conn *c, int reason);

/* ---- statistics (loop thread; post to read from elsewhere) -------------- */

typedef struct edi_conn_stats {
    uint64_t bytes_in, bytes_out;     /* payload bytes on the wire */
    uint64_t frames_in, frames_out;   /* U32 frames delivered / queued (ticks included) */
    uint64_t ticks_in;
    uint64_t frames_reassembled;      /* frames copied because they spanned buffers */
    uint64_t send_eagain;             /* sends refused by the queue limit */
    uint64_t rx_starved;              /* times receive paused: ring ran dry */
    uint64_t send_queue_bytes;        /* now */
    uint64_t sends;                   /* sendmsg calls (batches) */
    uint64_t max_iov_per_send;        /* largest batch (iovecs) in one send */
} edi_conn_stats;

typedef struct edi_loop_stats {
    uint64_t iterations, sleeps, wakeups;
    uint64_t cqes;
    uint64_t bytes_in, bytes_out, frames_in, frames_out;
    uint64_t frames_reassembled, reassembled_bytes;
    uint64_t rx_buffers_total;        /* pool size */
    uint64_t rx_buffers_held;         /* out of the kernel ring now */
    uint64_t rx_starved;              /* ENOBUFS episodes */
    uint64_t send_eagain;
    uint64_t posts, post_eagain, timers_fired;
    uint64_t conns_open, conns_closed, accepts;
} edi_loop_stats;

void edi_conn_get_stats(const edi_conn *c, edi_conn_stats *out);
void edi_loop_get_stats(const edi_loop *loop, edi_loop_stats *out);

/* ---- rate-limited log lines ------------------------------------------------
 * For lines a peer can trigger: a burst of `burst` lines, then one per
 * interval_ms (next_ms is the virtual time of the next allowed line). The
 * owner counts what it leaves out in `suppressed` and says so in a later
 * line. */
typedef struct edi_ratelimit {
    uint64_t next_ms;
    uint64_t suppressed;
} edi_ratelimit;

/* 1: log this line (a slot is taken); 0: leave it out. */
int edi_ratelimit_take(edi_ratelimit *r, uint64_t now_ms, unsigned burst,
                       uint64_t interval_ms);

#ifdef __cplusplus
}
#endif
#endif
