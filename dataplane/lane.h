/* SPDX-License-Identifier: Apache-2.0 */
/* Lanes: one interface for every medium that carries frames between nodes,
 * a table of functions per medium in the manner of Aeron's media bindings.
 * A lane (edi_lane) is one instance of a medium on one shard's reactor; a
 * link (edi_lane_link) is one peer on that lane. Implementations: the
 * io_uring TCP lane (uring/tcp_lane.h, over connections already set up by
 * the handshake), an in-process loopback for tests (lane/loopback.h), and a
 * fault-injecting wrapper around any lane (lane/fault.h); DPDK comes next.
 *
 * A frame is a unit the lane delivers whole and in order on a link, unless
 * the medium (or the fault wrapper) loses, repeats or reorders it: TCP
 * never does, a datagram medium may, and the link protocol above must then
 * repair it.
 *
 * Transmit, three ways, all in order on the link:
 *   - encoded in place: edi_lane_tx_reserve() gives writable memory for one
 *     frame inside the lane's own transmit memory, edi_lane_tx_commit()
 *     queues it with its final length; edi_lane_tx_copy() does both for a
 *     frame of two pieces already encoded;
 *   - a batch of frames {head, body}: head copied, body not (released
 *     through its release function once the lane no longer needs it);
 *   - edi_lane_tx_flush(): a batch boundary: what was queued goes to the
 *     medium now. Without it, a lane hands its frames to the medium at the
 *     end of the loop iteration at the latest (it is a poll source with a
 *     flush), so many frames share one system call or burst.
 * Room: a transmit the lane has no room for returns EDIST_EAGAIN and takes
 * nothing; on_writable follows once there is room. A closed link returns
 * EDIST_ECLOSED.
 *
 * Receive: the reactor polls the lane (or a completion arrives on its
 * ring) and each frame goes to the handler's on_frame as a view {data, len}
 * into a refcounted buffer (edi_frame, reactor/rxbuf.h): take a reference
 * to keep it past the callback.
 *
 * Threads: a lane and its links belong to the thread of their loop (or the
 * thread setting them up before it runs). Callbacks run on that thread,
 * never from inside the call that caused them, and may call any lane
 * function, including closing the link they are about, but not closing
 * the whole lane.
 *
 * Errors: 0 (or a count) on success, negative edist_err with detail in
 * edist_last_error() on failure. */
#ifndef EDI_DATAPLANE_LANE_H
#define EDI_DATAPLANE_LANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataplane/reactor/loop.h"
#include "dataplane/reactor/rxbuf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct edi_lane edi_lane;
typedef struct edi_lane_link edi_lane_link;
typedef struct edi_lane_ops edi_lane_ops;

/* What a lane tells its user; user is the link's (given when the link was
 * made, or by edi_lane_link_set_user). */
typedef struct edi_lane_handler {
    /* A frame arrived on link. Required. */
    void (*on_frame)(edi_lane_link *link, void *user, const edi_frame *f);
    /* There is room again after a transmit returned EDIST_EAGAIN; once per
     * such episode. May be NULL. */
    void (*on_writable)(edi_lane_link *link, void *user);
    /* The link is gone, exactly once (unless the whole lane was closed):
     * reason 0 after edi_lane_link_close, EDIST_ECLOSED when the peer
     * closed, or the medium's error (as edi_conn's on_close). The link is
     * invalid once this returns. May be NULL. */
    void (*on_closed)(edi_lane_link *link, void *user, int reason);
    /* The medium took some of link's transmit queue, or the peer
     * acknowledged some; pending_bytes are left (edi_lane_tx_pending;
     * edi_lane_tx_queued tells how many of them wait to be sent). For a
     * sender that paces itself below the lane's room (on_writable only
     * says "below half of it"). Runs on every transmit completion: keep
     * it cheap. May be NULL. */
    void (*on_sent)(edi_lane_link *link, void *user, size_t pending_bytes);
    /* The link has proven it carries frames both ways (a medium that must
     * find its peer first, as a DPDK port does); once. TCP and loopback
     * links are usable from the start and never call it. May be NULL. */
    void (*on_up)(edi_lane_link *link, void *user);
} edi_lane_handler;

/* One frame of a batch: [head][body] as one frame. head is copied; body is
 * not: it stays the caller's until release(release_arg, body) is called,
 * once the lane is done with it (written, copied, or the link died), and
 * is not touched after that. release may be NULL (body outlives the
 * lane's use of it). */
typedef struct edi_lane_txframe {
    const void *head;
    size_t head_len;
    const void *body;
    size_t body_len;
    edi_release_fn release;
    void *release_arg;
    /* Taken past the room limit: for what must not be refused, e.g. the
     * rest of a queue handed over before a graceful close. */
    bool force;
} edi_lane_txframe;

typedef struct edi_lane_stats {
    uint64_t frames_out, bytes_out;   /* frames taken for transmit, payload bytes */
    uint64_t frames_in, bytes_in;     /* frames delivered to on_frame */
    uint64_t tx_eagain;               /* transmits refused for want of room */
    uint64_t tx_flushes;              /* edi_lane_tx_flush calls */
    uint64_t drops;                   /* frames the lane lost or threw away */
    uint64_t links_opened, links_closed;
} edi_lane_stats;

/* The function table of a medium. Every entry but poll, tx_flush and
 * get_stats is required. params is the medium's own open parameters (see
 * its header); NULL for its defaults. */
struct edi_lane_ops {
    const char *name;
    int (*open)(edi_loop *loop, const void *params, const edi_lane_handler *h,
                void *user, edi_lane **out);
    /* Frees the lane; its links close without callbacks (their peers see
     * the close as the medium shows it). */
    void (*close)(edi_lane *lane);
    /* Closes one link: flushed as far as the medium allows, then
     * on_closed(0). */
    void (*link_close)(edi_lane_link *link);
    int (*tx_reserve)(edi_lane_link *link, size_t max_len, uint8_t **frame);
    int (*tx_commit)(edi_lane_link *link, size_t len);
    /* [head][body] copied as one frame. NULL: reserve, copy, commit. */
    int (*tx_copy)(edi_lane_link *link, const void *head, size_t head_len,
                   const void *body, size_t body_len);
    int (*tx_batch)(edi_lane_link *link, const edi_lane_txframe *frames,
                    size_t n, size_t *accepted);
    int (*tx_flush)(edi_lane_link *link);
    /* Delivers up to about budget frames; returns the work done. NULL for
     * a medium whose frames arrive as completions on the reactor's ring. */
    uint32_t (*poll)(edi_lane *lane, uint32_t budget);
    /* Adds what the medium counts itself to out (already filled with the
     * generic counters). */
    void (*get_stats)(const edi_lane *lane, edi_lane_stats *out);
    /* Bytes taken for transmit on link that the lane is not done with:
     * not yet handed to the medium, or, on a lane with its own delivery
     * protocol, not yet acknowledged (a graceful close waits for 0).
     * NULL: 0. */
    size_t (*tx_pending)(const edi_lane_link *link);
    /* Of those, the bytes not yet sent once: what a sender that paces
     * itself looks at (bytes in flight delay nobody's next message).
     * NULL: tx_pending's. */
    size_t (*tx_queued)(const edi_lane_link *link);
};

/* ---- using a lane ------------------------------------------------------------ */

/* Opens a lane of medium ops on loop; h (copied) and user for all its
 * links. Returns 0 or the medium's error (EDIST_EINVAL for bad params,
 * EDIST_ENOMEM, ...). */
int edi_lane_open(const edi_lane_ops *ops, edi_loop *loop, const void *params,
                  const edi_lane_handler *h, void *user, edi_lane **out);
void edi_lane_close(edi_lane *lane);
const char *edi_lane_name(const edi_lane *lane);
edi_loop *edi_lane_loop(const edi_lane *lane);
void *edi_lane_user(const edi_lane *lane);

/* Links are made by each medium its own way (the TCP lane wraps a
 * connection, the loopback pairs two lanes); then they are all alike. */
void edi_lane_link_close(edi_lane_link *link);
edi_lane *edi_lane_link_lane(const edi_lane_link *link);
void *edi_lane_link_user(const edi_lane_link *link);
void edi_lane_link_set_user(edi_lane_link *link, void *user);

/* Encoded in place: room for one frame of at most max_len bytes inside the
 * lane's transmit memory (*frame), then the commit with its length
 * (<= max_len). Commit in the callback that reserved; any other transmit
 * on the link abandons an uncommitted reservation (nothing is sent, and a
 * late commit returns EDIST_EINVAL). Reserve: 0, EDIST_EAGAIN,
 * EDIST_ECLOSED, EDIST_EINVAL (max_len too big for the medium),
 * EDIST_ENOMEM. Commit: 0, EDIST_ECLOSED, EDIST_EINVAL. */
int edi_lane_tx_reserve(edi_lane_link *link, size_t max_len, uint8_t **frame);
int edi_lane_tx_commit(edi_lane_link *link, size_t len);

/* [head][body] copied into one frame: a small message's one call. As
 * reserve (nothing taken on an error). */
int edi_lane_tx_copy(edi_lane_link *link, const void *head, size_t head_len,
                     const void *body, size_t body_len);

/* Takes frames[0..n) in order until one does not fit: *accepted (may be
 * NULL) says how many were taken; their bodies are the lane's now, the
 * others' still the caller's. Returns 0 when all were taken, EDIST_EAGAIN
 * when not (on_writable follows), EDIST_ECLOSED, EDIST_EINVAL,
 * EDIST_ENOMEM (frames before the failing one were taken). */
int edi_lane_tx_batch(edi_lane_link *link, const edi_lane_txframe *frames,
                      size_t n, size_t *accepted);

/* A batch boundary: hand what was queued to the medium now. 0 or
 * EDIST_ECLOSED. */
int edi_lane_tx_flush(edi_lane_link *link);

/* Bytes taken that the lane is not done with (0 for a closed link). */
size_t edi_lane_tx_pending(const edi_lane_link *link);
/* Bytes taken and not yet sent once (0 for a closed link). */
size_t edi_lane_tx_queued(const edi_lane_link *link);

/* Delivers what arrived, up to about budget frames; the reactor calls it
 * every iteration (the lane is a poll source), tests may too. Returns the
 * work done. */
uint32_t edi_lane_poll(edi_lane *lane, uint32_t budget);

void edi_lane_get_stats(const edi_lane *lane, edi_lane_stats *out);
void edi_lane_link_get_stats(const edi_lane_link *link, edi_lane_stats *out);

/* ---- for implementations --------------------------------------------------
 * A medium embeds edi_lane / edi_lane_link first in its own structs and
 * uses these helpers. The generic calls above keep the counters of
 * transmits (taken, refused with want_writable set, flushes); the helpers
 * those of deliveries and links. */

struct edi_lane {
    const edi_lane_ops *ops;
    edi_loop *loop;
    edi_lane_handler h;
    void *user;
    void (*flush)(edi_lane *lane); /* end of iteration: every link's batch */
    bool (*pending)(edi_lane *lane); /* work fed by other threads waits */
    edi_poll_source poll;     /* added when the medium polls or flushes */
    edi_lane_stats st;
};

struct edi_lane_link {
    edi_lane *lane;
    void *user;
    bool closed;              /* no transmit any more */
    bool want_writable;       /* a transmit met EDIST_EAGAIN */
    edi_lane_stats st;
};

/* Fills lane and adds it to the loop's poll list when the medium polls or
 * flushes. flush: hand every link's batch to the medium, at the end of an
 * iteration; pending: tell a loop about to sleep that frames wait (for a
 * medium fed by other threads, see edi_poll_source); both may be NULL.
 * Returns 0 or EDIST_ENOMEM. */
int edi_lane_init(edi_lane *lane, const edi_lane_ops *ops, edi_loop *loop,
                  const edi_lane_handler *h, void *user,
                  void (*flush)(edi_lane *lane), bool (*pending)(edi_lane *lane));
/* Takes the lane off the poll list (if on it). */
void edi_lane_fini(edi_lane *lane);
void edi_lane_link_init(edi_lane_link *link, edi_lane *lane, void *user);
/* A frame for the user: counted, then on_frame. */
void edi_lane_deliver(edi_lane_link *link, const edi_frame *f);
/* Room again: on_writable if a transmit met EDIST_EAGAIN since. */
void edi_lane_writable(edi_lane_link *link);
/* The medium took some of link's queue (pending_bytes left): tells the
 * handler's on_sent. */
void edi_lane_sent(edi_lane_link *link, size_t pending_bytes);
/* The link proved both directions: the handler's on_up. */
void edi_lane_up(edi_lane_link *link);
/* The link is gone: counted, then on_closed. The caller frees the link
 * after. */
void edi_lane_link_gone(edi_lane_link *link, int reason);

#ifdef __cplusplus
}
#endif
#endif
