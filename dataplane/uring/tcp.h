/* SPDX-License-Identifier: Apache-2.0 */
/* io_uring TCP data path: listeners and TCP connections on a shard's
 * reactor (dataplane/reactor/loop.h), receiving into a pool of buffers
 * registered with the kernel as a provided-buffer ring, framing (RAW for
 * the handshake, U32 after) and batched sends from bounded queues.
 *
 * The data path lives on one loop: edi_tcp_setup() puts it there with a
 * configuration (pool size, limits); the first listen, connect or adopt on
 * a loop without it does so with the defaults. It submits its requests to
 * the reactor's ring and is polled by it (deferred callbacks, sends flushed
 * once per iteration). Everything here is loop-thread only (or setup,
 * before the loop runs), except edi_rxbuf_ref/unref (rxbuf.h).
 *
 * Callbacks run on the loop thread, never from inside the edi_* call that
 * caused them (no reentrancy surprises), and may call any loop-thread
 * function, including closing the connection the callback is about.
 *
 * Errors: 0 (or a count) on success, negative edist_err on failure, with
 * detail in edist_last_error() of the calling thread. Events worth a line
 * go to the loop's log.
 *
 * Memory is bounded everywhere: receive buffers are a fixed pool and each
 * connection's send queue has a byte limit and pushes back with
 * EDIST_EAGAIN. */
#ifndef EDI_URING_TCP_H
#define EDI_URING_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "dataplane/reactor/loop.h"
#include "dataplane/reactor/rxbuf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct edi_conn edi_conn;
typedef struct edi_listener edi_listener;

/* ---- configuration ------------------------------------------------------ */

/* Kernel features of the data path; edi_tcp_features() tells which are in
 * use and config.disable_features turns some off (to test the fallbacks).
 * The reactor's own are bits 3 and 4 (reactor/loop.h). */
enum {
    EDI_FEAT_BUF_RING = 1u << 0,        /* provided-buffer ring (5.19+): required */
    EDI_FEAT_RECV_MULTISHOT = 1u << 1,  /* multishot recv (6.0+); else one-shot
                                         * recv with buffer select */
    EDI_FEAT_ACCEPT_MULTISHOT = 1u << 2,/* multishot accept (5.19+) */
};

typedef struct edi_tcp_config {
    uint32_t rx_buffer_bytes;        /* one receive buffer (default 64 KiB) */
    uint32_t rx_buffer_count;        /* buffers in the ring, power of 2 <= 32768 (default 64) */
    uint64_t max_frame_bytes;        /* U32 frames above this = protocol error (default 256 MiB) */
    size_t raw_max_bytes;            /* RAW mode: unconsumed bytes kept at most (default 64 KiB) */
    size_t send_queue_limit_bytes;   /* per connection (default 1 MiB) */
    unsigned disable_features;       /* EDI_FEAT_* to leave unused (default 0) */
    /* A connection that received within this long is also read with a
     * non-blocking recv() every loop iteration. The armed io_uring
     * receive completes through task work the loop runs when it next
     * enters the kernel; reading the socket directly, as a busy-polling
     * loop does anyway, saves about 5 us a round trip here. Costs one
     * syscall per such connection per iteration. Default 0: never. */
    uint32_t rx_poll_us;
    /* Connections closed gracefully whose sockets are still open (the
     * peer has yet to take the tail, or to close its side) at most: for a
     * new one, the oldest that only waits for its peer to close is reset,
     * else the oldest still flushing. Each holds a descriptor however
     * briefly its owner knew it (a refused handshake). Default 256. */
    uint32_t max_closing;
    /* Tests: multishot receives ask for something the kernel refuses
     * (EINVAL), as a kernel without them answers. */
    bool test_multishot_einval;
} edi_tcp_config;

/* Fills c with the defaults above. */
void edi_tcp_config_default(edi_tcp_config *c);

/* Puts the TCP data path on loop: the receive buffer ring, registered with
 * the loop's io_uring, and a poll source. config may be NULL for the
 * defaults. Loop thread (or setup). Returns 0, EDIST_EINVAL (bad config,
 * or the loop has it already), EDIST_ENOMEM, or EDIST_EUNSUPPORTED (no
 * buffer rings: detail says why). It goes with the loop (edi_loop_free
 * closes what is left without callbacks; receive buffers still referenced
 * stay valid until their last edi_rxbuf_unref()). */
int edi_tcp_setup(edi_loop *loop, const edi_tcp_config *config);

/* EDI_FEAT_* bits in use by the loop's TCP data path (0 without one). */
unsigned edi_tcp_features(const edi_loop *loop);

/* Loop thread: true when the free receive buffers are running low (below
 * a quarter of the pool): then the views held are copied out, so that
 * connections keep reading. Holding many buffers makes the ring run dry:
 * then connections stop receiving (TCP backpressure) until buffers come
 * back; a pool buffer released on another thread is queued back and
 * wakes the loop. */
bool edi_loop_rx_low(const edi_loop *loop);

/* Loop thread: hold = true stops reading every connection of the loop
 * (TCP holds their senders back) until it is called with false: for a
 * node whose received work has nowhere to go (another shard too slow to
 * take it). Receives in flight still complete. New connections are held
 * too. Counted in edi_tcp_stats.rx_holds. */
void edi_tcp_rx_hold(edi_loop *loop, bool hold);

/* ---- listening ------------------------------------------------------------ */

/* Called for each accepted socket; the callee owns fd (adopt it with
 * edi_conn_adopt or close it). peer is the remote address. */
typedef void (*edi_accept_fn)(edi_listener *l, int fd,
                              const struct sockaddr_storage *peer, void *user);

/* Listens on ip (IPv4 or IPv6 literal, NULL = "0.0.0.0") and port (0 =
 * ephemeral), with SO_REUSEADDR; *bound_port (may be NULL) gets the port.
 * Accepts with multishot accept when available. Loop thread (or setup).
 * Returns 0, EDIST_EINVAL (bad ip), EDIST_EIO (socket/bind/listen failed:
 * detail), EDIST_ENOMEM, or an error of setting up the data path. */
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
    /* U32 mode: one complete frame (len 0 = tick). May switch framing.
     * A frame inside one kernel receive buffer is a view into it (no
     * copy); one spanning buffers was reassembled into a heap rxbuf. */
    void (*on_frame)(edi_conn *c, void *user, const edi_frame *f);
    /* The send queue went from "full" (a send returned EDIST_EAGAIN) to
     * below half its limit. Called once per EAGAIN episode. */
    void (*on_writable)(edi_conn *c, void *user);
    /* The kernel took bytes of the send queue; queued_bytes are left.
     * Runs on every send completion: keep it cheap. May close c. */
    void (*on_sent)(edi_conn *c, void *user, size_t queued_bytes);
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
 * (fd < 0, ops or ops->on_close missing), or an error of setting up the
 * data path. */
int edi_conn_adopt(edi_loop *loop, int fd, const edi_conn_ops *ops,
                   void *user, edi_conn **out);

/* Starts an asynchronous TCP connect to ip:port (literal address); the
 * connection exists at once (sends are queued and go out once connected).
 * timeout_ms 0 = none. Success: on_connected, then receiving in RAW mode.
 * Failure (refused, unreachable, timeout): on_close(EDIST_EIO or
 * EDIST_ETIMEDOUT). Loop thread. Returns 0, EDIST_EINVAL (bad ip),
 * EDIST_EIO (no socket), EDIST_ENOMEM, or an error of setting up the data
 * path. */
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
int edi_conn_send_raw(edi_conn *c, const void *data, size_t len);
int edi_conn_send_frame(edi_conn *c, const void *data, size_t len);
int edi_conn_send_frame_owned(edi_conn *c, const void *head, size_t head_len,
                              const void *body, size_t body_len,
                              edi_release_fn release, void *release_arg,
                              unsigned flags);
/* Zero-copy framing: the caller encodes one U32 frame straight into the
 * connection's transmit memory.
 *
 * edi_conn_frame_reserve: room for a frame of at most max_len payload
 *     bytes at the tail of the current copy chunk (the one the copying
 *     sends use, so consecutive small frames, reserved or copied, go out
 *     as one iovec); a reservation that does not fit starts a new chunk.
 *     *payload gets where the payload goes (the length header is written
 *     by the commit). The queue limit is checked here, against max_len:
 *     EDIST_EAGAIN and on_writable as for the other sends; flags as for
 *     edi_conn_send_frame_owned. Returns 0, EDIST_EAGAIN, EDIST_ECLOSED,
 *     EDIST_EINVAL (max_len over 4 GiB), EDIST_ENOMEM.
 * edi_conn_frame_commit: queues the frame with its final payload length
 *     len (<= max_len; 0 is a tick). Returns 0, EDIST_ECLOSED (the
 *     connection closed since the reserve: nothing queued), EDIST_EINVAL
 *     (no reservation open, or len > max_len).
 * Commit in the callback that reserved: any other send on the connection
 * or a new reserve abandons an uncommitted reservation (nothing is queued,
 * the room is reused, and a late commit returns EDIST_EINVAL). */
int edi_conn_frame_reserve(edi_conn *c, size_t max_len, unsigned flags,
                           uint8_t **payload);
int edi_conn_frame_commit(edi_conn *c, size_t len);
/* Bytes queued and not yet acknowledged by the kernel. */
size_t edi_conn_send_queue_bytes(const edi_conn *c);

/* Graceful close: stops delivering received data, flushes the send queue,
 * then sends FIN; on_close(0) once everything was written, or
 * on_close(EDIST_ETIMEDOUT) if not flushed within timeout_ms (0 = 5 s).
 * After on_close(0) the loop keeps draining the socket until the peer
 * closes too or the deadline passes (closing with unread bytes would send
 * a reset that can destroy the data just sent). With max_closing
 * connections in either phase, one is reset: the oldest draining, else
 * the oldest still flushing (on_close(ETIMEDOUT)). New sends return
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
    /* issue 9, zero-copy framing */
    uint64_t sends_partial;           /* sends the kernel took only part of
                                       * (the rest went in the next one) */
} edi_conn_stats;

typedef struct edi_tcp_stats {
    uint64_t bytes_in, bytes_out, frames_in, frames_out;
    uint64_t frames_reassembled, reassembled_bytes;
    uint64_t rx_buffers_total;        /* pool size */
    uint64_t rx_buffers_held;         /* out of the kernel ring now */
    uint64_t rx_starved;              /* ENOBUFS episodes */
    uint64_t rx_holds;                /* edi_tcp_rx_hold(true) episodes */
    uint64_t rx_polled_reads;         /* reads of rx_poll_us that got bytes */
    uint64_t direct_sends;            /* sendmsg() of a hot connection, not
                                       * through io_uring */
    uint64_t send_eagain;
    uint64_t conns_open, conns_closed, accepts;
    uint64_t conns_closing;           /* now: closed gracefully, socket open */
    uint64_t closes_cut;              /* of them reset at max_closing */
    uint64_t tx_chunks_allocated;     /* transmit chunks ever allocated (the
                                       * rest were reused) */
} edi_tcp_stats;

void edi_conn_get_stats(const edi_conn *c, edi_conn_stats *out);
/* All zero for a loop without the TCP data path. */
void edi_tcp_get_stats(const edi_loop *loop, edi_tcp_stats *out);

#ifdef __cplusplus
}
#endif
#endif
