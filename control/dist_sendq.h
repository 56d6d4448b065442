/* SPDX-License-Identifier: Apache-2.0 */
/* The send scheduler of one distribution connection: which bytes go to the
 * socket next, so that one large message does not hold up small ones from
 * other senders, and so that a peer that does not read pushes back on
 * senders instead of growing our memory.
 *
 * - Streams. Every frame is pushed with a sender id (non-zero): one id per
 *   sending process. A sender's frames leave in the order pushed, and a
 *   sender's fragmented message is finished before its next message starts
 *   (PROTOCOL-NOTES §4: the receiver keys fragments by SequenceId, and the
 *   sender id is the SequenceId).
 * - Round robin. Streams with something to send take turns; a turn hands
 *   out one unit: a whole frame, or ONE fragment of a message larger than
 *   the fragment size when the peer negotiated DFLAG_FRAGMENTS (fragmenter
 *   of dist_msg.h, zero-copy: a unit is a small copied header plus a slice
 *   of the frame). A small message pushed behind a 10 MiB one from another
 *   sender therefore waits for at most one fragment per other active
 *   stream, plus what the owner already gave the socket.
 * - Pacing is the owner's: it takes units with edi_sendq_next() only while
 *   its connection's queue is short (a fragment or two), hands each to the
 *   connection as an owned body, and calls edi_sendq_release() once the
 *   connection is done with it; on_progress then says "pump again".
 * - Backpressure (busy_dist_port). bytes_pending counts every byte the
 *   queue holds for the peer: queued frames, the unsent rest of fragmented
 *   ones, and units handed out but not yet released. A push that would
 *   take it above limit_bytes is refused with EDIST_EAGAIN (unless the
 *   queue is empty: one message of any size always fits, as erts accepts
 *   any message while the port is not busy), and on_writable follows once
 *   bytes_pending fell to half the limit.
 *
 * Pure bookkeeping over memory: no sockets, no clocks of its own (the
 * owner's, if given, times each message), no logging. One
 * thread (the connection's loop thread) owns a queue; nothing blocks.
 * Errors: 0 or a negative edist_err with detail via edist_set_error(). */
#ifndef EDIST_CONTROL_DIST_SENDQ_H
#define EDIST_CONTROL_DIST_SENDQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/dist_frag.h"

typedef struct edi_sendq edi_sendq;
typedef struct edi_sendq_msg edi_sendq_msg;

/* Per-peer defaults: the fragment size of erts, and a pending-bytes limit
 * that lets a few large messages be in flight at once (see DESIGN.md:
 * unlike erts' 1 MiB busy limit it also counts the unsent rest of
 * fragmented messages, which erts keeps in the sending process). */
#define EDI_SENDQ_FRAGMENT_BYTES_DEFAULT EDI_DIST_FRAGMENT_BYTES_DEFAULT
#define EDI_SENDQ_LIMIT_BYTES_DEFAULT ((size_t)64 << 20)
#define EDI_SENDQ_FRAGMENT_BYTES_MIN 1024u

/* Fragment sequences open at once at most, by default (a message whose
 * first fragment would open one more waits, in order, for one to end): a
 * receiver bounds them too (edist's reassembler at 1024, EDIST_ENOMEM
 * past it), and a thousand senders of large messages in turns would
 * otherwise open one each. */
#define EDI_SENDQ_OPEN_SEQUENCES_DEFAULT 256u

typedef struct edi_sendq_ops {
    /* A unit was released: the owner may hand out more. Runs inside
     * edi_sendq_release (i.e. inside the connection's completion
     * handling): schedule the pump, do not push or take units here. */
    void (*on_progress)(void *user);
    /* A push was refused (EDIST_EAGAIN) and bytes_pending has since
     * fallen to limit_bytes / 2 or below. Once per refusal episode. Same
     * context rule as on_progress. */
    void (*on_writable)(void *user);
    /* Optional, both or neither: the owner's clock, read when a message
     * is pushed and when its last unit is released (written, or dropped
     * with the connection: then not told), and how long the message took
     * between the two (the scheduler itself reads no clock). */
    uint64_t (*now_ns)(void *user);
    void (*on_sent)(void *user, uint64_t waited_ns);
} edi_sendq_ops;

typedef struct edi_sendq_config {
    uint64_t flags;           /* the connection's negotiated flags */
    size_t fragment_bytes;    /* 0: default; else >= the minimum */
    size_t limit_bytes;       /* 0: default */
    uint32_t open_sequences;  /* 0: EDI_SENDQ_OPEN_SEQUENCES_DEFAULT */
    const edi_sendq_ops *ops; /* may be NULL */
    void *user;
} edi_sendq_config;

/* Returns 0, EDIST_EINVAL (fragment size below the minimum), or
 * EDIST_ENOMEM. */
int edi_sendq_new(const edi_sendq_config *cfg, edi_sendq **out);

/* The owner is done with q (connection gone): frames not handed out yet
 * are dropped now; units handed out stay valid until released (the
 * connection releases them when it dies); q is freed with the last one.
 * No callback runs after this. NULL is a no-op. */
void edi_sendq_detach(edi_sendq *q);

/* Push flags. FORCE: ignore the limit (for replies the peer waits for;
 * the caller bounds those itself). */
#define EDI_SENDQ_FORCE 1u

/* Queue a copy of one whole frame from edi_dist_build_* (u32 length
 * prefix included) from sender (non-zero). Returns 0, EDIST_EAGAIN (over
 * the limit: nothing queued, on_writable will follow), EDIST_EINVAL
 * (sender 0, frame shorter than 5 bytes or its prefix disagrees with
 * len), EDIST_ENOMEM, EDIST_ECLOSED (detached). */
int edi_sendq_push(edi_sendq *q, uint64_t sender, const uint8_t *frame,
                   size_t len, unsigned flags);

/* Service replies: would a push of a frame of at least len
 * bytes be refused now? EDIST_EAGAIN (counted and answered with
 * on_writable as a refused push is), else 0. Lets a sender that waits for
 * room retry without building its frame each time. */
int edi_sendq_admit(edi_sendq *q, size_t len);

/* The same without a copy: frame must stay valid and unchanged until
 * release(arg, frame) is called (once; on the owner's thread, or at the
 * latest when the connection that holds the last unit is freed). On an
 * error return release is NOT called: the caller still owns frame. */
typedef void (*edi_sendq_release_fn)(void *arg, const uint8_t *frame);
int edi_sendq_push_owned(edi_sendq *q, uint64_t sender, const uint8_t *frame,
                         size_t len, edi_sendq_release_fn release, void *arg,
                         unsigned flags);

/* One unit to write as a frame: [u32 head_len + body_len][head][body] (the
 * connection writes the u32, see edi_conn_send_frame_owned). head (may be
 * empty) points into the unit itself: copy it before the unit goes out of
 * scope. body points into the message frame and stays valid until
 * edi_sendq_release(msg, body). */
typedef enum edi_sendq_kind {
    EDI_SENDQ_WHOLE = 0,  /* an unfragmented frame */
    EDI_SENDQ_FRAG_FIRST, /* 131, 69 ... */
    EDI_SENDQ_FRAG_CONT,  /* 131, 70 ... */
} edi_sendq_kind;

typedef struct edi_sendq_unit {
    const uint8_t *head;
    size_t head_len;
    const uint8_t *body;
    size_t body_len;
    edi_sendq_msg *msg;
    uint64_t sender;
    edi_sendq_kind kind;
    bool last; /* the message's last unit */
    uint8_t hdr[EDI_DIST_FRAG_HDR_MAX_BYTES];
} edi_sendq_unit;

/* The next unit in round-robin order into *u: 1, or 0 when nothing waits
 * (or detached). Every unit handed out must be released. */
int edi_sendq_next(edi_sendq *q, edi_sendq_unit *u);

/* The unit of msg whose body is `body` is done with (written, or dropped
 * with its connection). Has the signature of edi_release_fn so it can be
 * given to edi_conn_send_frame_owned directly (release_arg = msg). */
void edi_sendq_release(void *msg, const void *body);

/* Nothing left to hand out (units may still be out). */
bool edi_sendq_idle(const edi_sendq *q);
/* A push was refused and on_writable has not followed yet. */
bool edi_sendq_refused(const edi_sendq *q);
/* Bytes held for the peer now (see above). */
size_t edi_sendq_bytes(const edi_sendq *q);
size_t edi_sendq_limit(const edi_sendq *q);
/* Messages above this size are sent in fragments. */
size_t edi_sendq_fragment_bytes(const edi_sendq *q);

typedef struct edi_sendq_stats {
    uint64_t bytes_pending;    /* now: see above */
    uint64_t messages_pending; /* now: pushed and not fully released */
    uint64_t senders_active;   /* now: streams with something to hand out */
    uint64_t units_out;        /* now: handed out, not released */
    uint64_t limit_bytes;
    uint64_t pushed;    /* since creation */
    uint64_t refused;   /* pushes refused with EDIST_EAGAIN */
    uint64_t units;     /* units handed out */
    uint64_t fragments; /* of which fragments */
    uint64_t fragmented_messages;
    /* Messages whose first fragment waited for one of the open
     * sequences (open_sequences at most) to end. */
    uint64_t sequences_waited;
    uint64_t max_bytes_pending; /* high-water mark */
} edi_sendq_stats;

void edi_sendq_get_stats(const edi_sendq *q, edi_sendq_stats *out);

#endif
