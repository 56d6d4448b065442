/* SPDX-License-Identifier: Apache-2.0 */
/* The edist link protocol: an ordered, reliable, flow-controlled byte
 * stream between two nodes over a medium of frames that may be lost,
 * repeated, reordered or delayed (DPDK af_xdp, af_packet, NICs; memif too,
 * which loses nothing: one mechanism everywhere, see docs/DESIGN.md).
 *
 * Named edi_rlink ("reliable link"): edi_link is already a peer
 * connection in control/ and a process link in runtime/.
 *
 * A pure state machine: no DPDK, no sockets, no threads, no clock. The
 * owner (the DPDK lane) passes the time in, hands received frames to
 * edi_rlink_input, calls edi_rlink_poll after an iteration's inputs and
 * appends and whenever edi_rlink_next_deadline_ns has passed; frames go out
 * through a small medium interface (edi_rlink_medium).
 *
 * The stream carries what the TCP lane carries: messages as [u32 big-endian
 * length][payload], length 0 a tick. Stream offsets (64-bit) are the
 * sequence numbers. Many messages share a frame; large ones span frames.
 * The receiver deframes the in-order bytes (uring/deframe.h, U32 mode): a
 * message inside one frame reaches on_message as a view into that frame's
 * rxbuf (no copy), one spanning frames is reassembled into a heap rxbuf.
 *
 * Sender: appended messages are copied once into the link's send buffer
 * (bounded: send_buffer_bytes) and stay there until the peer acknowledges
 * them; frames are built from it straight into the medium's transmit
 * memory, and rebuilt from it on retransmit, so unacknowledged data never
 * pins medium buffers (mbufs). At most the peer's advertised window beyond
 * its ack is in flight.
 *
 * Wire format (after the medium's own header), big-endian, 40 bytes then
 * the data:
 *    0 u16 magic 0xED11        2 u8 version 1     3 u8 type (EDI_RLINK_T_*)
 *    4 u32 len     data bytes after the header (DATA: > 0; others: 0)
 *    8 u64 token   the link's, agreed on the control connection
 *   16 u64 seq     DATA: stream offset of the first data byte;
 *                  NAK: first missing offset; PING/PONG: the ping's stamp
 *   24 u64 ack     next stream offset the sender of the frame expects
 *   32 u32 window  bytes beyond ack it accepts
 *   36 u32 nak_len NAK: bytes missing from seq (> 0); others: 0
 * Bytes after header + len are ignored (Ethernet pads short frames).
 * Every frame carries ack and window, so acks ride on reverse traffic.
 *
 * Callbacks run inside edi_rlink_input / edi_rlink_poll on the caller's
 * thread; they may call edi_rlink_send, edi_rlink_set_recv_window and the
 * getters, never input, poll or free. Not thread-safe: a link belongs to
 * one thread. Times need not be strictly monotonic across calls (a cached
 * loop time after a fresher one is fine): an earlier time counts as no
 * time passed.
 * Errors: 0 or a negative edist_err, with detail in edist_last_error(). */
#ifndef EDI_DATAPLANE_RLINK_H
#define EDI_DATAPLANE_RLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataplane/reactor/rxbuf.h"

#define EDI_RLINK_MAGIC 0xED11u
#define EDI_RLINK_VERSION 1u
#define EDI_RLINK_HDR_BYTES 40u

typedef enum edi_rlink_type {
    EDI_RLINK_T_DATA = 1,
    EDI_RLINK_T_ACK = 2,
    EDI_RLINK_T_NAK = 3,
    EDI_RLINK_T_PING = 4,
    EDI_RLINK_T_PONG = 5,
} edi_rlink_type;

/* A frame header, decoded. */
typedef struct edi_rlink_hdr {
    uint8_t type;
    uint32_t len;
    uint64_t token;
    uint64_t seq;
    uint64_t ack;
    uint32_t window;
    uint32_t nak_len;
} edi_rlink_hdr;

/* Why a frame was refused by the parser (0: well formed). */
typedef enum edi_rlink_bad {
    EDI_RLINK_OK = 0,
    EDI_RLINK_BAD_SHORT, /* shorter than the header, or than header + len */
    EDI_RLINK_BAD_MAGIC,
    EDI_RLINK_BAD_VERSION,
    EDI_RLINK_BAD_TYPE,
    EDI_RLINK_BAD_FIELDS, /* len / nak_len not as the type requires, or an
                           * offset range that wraps 64 bits */
} edi_rlink_bad;

/* Writes h into out[0..EDI_RLINK_HDR_BYTES). */
void edi_rlink_hdr_encode(uint8_t *out, const edi_rlink_hdr *h);
/* Parses and validates frame[0..len) (the token is not checked here: that
 * is the link's). Returns EDI_RLINK_OK with *h filled, or why not. */
edi_rlink_bad edi_rlink_hdr_decode(const uint8_t *frame, size_t len,
                                   edi_rlink_hdr *h);

/* ---- the medium --------------------------------------------------------- */

/* Transmit memory for one frame: the link writes up to cap bytes at data
 * (for DPDK: an mbuf's data room after the Ethernet header) and gives
 * handle back with the frame's length. */
typedef struct edi_rlink_txbuf {
    uint8_t *data;
    size_t cap;
    void *handle;
} edi_rlink_txbuf;

typedef struct edi_rlink_medium {
    /* A buffer for one frame: 0, or EDIST_EAGAIN when the medium has none
     * now (counted in tx_no_buffer; the link tries again at its next
     * poll). Required. */
    int (*tx_alloc)(void *medium, edi_rlink_txbuf *out);
    /* Queues the frame of len bytes written into the buffer of handle;
     * the buffer is the medium's again, sent or not. len 0: the buffer
     * comes back unused (its cap was not above EDI_RLINK_HDR_BYTES).
     * Required. */
    void (*tx_send)(void *medium, void *handle, size_t len);
    /* The frames queued by this poll go out now. May be NULL. */
    void (*tx_flush)(void *medium);
    /* Largest frame (header + data) the medium carries, after its own
     * header; more than EDI_RLINK_HDR_BYTES. */
    size_t max_frame_bytes;
    void *medium;
    /* Optional, the three or none: a medium that transmits from memory of
     * its own gives the link its send buffer, and a frame then carries
     * its data by reference to that buffer instead of a copy. The link
     * changes no byte of it before the peer acknowledged it (a frame
     * still queued with acknowledged bytes only carries what the peer
     * discards).
     * ring_alloc: bytes (a power of two), or NULL: the link maps its own
     * and copies. tx_attach: [p, p+n) of that memory to follow what was
     * written into the frame of handle (tx_send's len then counts both);
     * 0, or nonzero: the frame goes back unsent and the link tries again
     * at its next poll, as for tx_alloc's EDIST_EAGAIN. ring_free: the
     * link is done with the memory (frames still queued may hold it).
     * Data under attach_min_bytes is copied all the same. */
    uint8_t *(*ring_alloc)(void *medium, size_t bytes);
    int (*tx_attach)(void *medium, void *handle, const uint8_t *p, size_t n);
    void (*ring_free)(void *medium, uint8_t *ring);
    size_t attach_min_bytes;
} edi_rlink_medium;

/* ---- the link ----------------------------------------------------------- */

typedef struct edi_rlink edi_rlink;

typedef struct edi_rlink_callbacks {
    /* A message arrived, in order: a view valid during the call (len 0 is
     * a tick); edi_rxbuf_ref(msg->rxbuf) to keep it. Required. */
    void (*on_message)(void *user, const edi_frame *msg);
    /* Room in the send buffer again after edi_rlink_send returned
     * EDIST_EAGAIN: once per such refusal, when the refused message fits.
     * May be NULL. */
    void (*on_writable)(void *user);
    /* The link is dead, once: EDIST_ETIMEDOUT (nothing from the peer for
     * dead_after_ns), EDIST_ENOMEM (a message over max_message_bytes, or
     * reassembly out of memory), EDIST_EPROTO (the peer's stream is not
     * [u32 length][payload]). Detail in edist_last_error(). The link then
     * stops: input is ignored, send returns EDIST_ECLOSED, poll does
     * nothing. May be NULL. */
    void (*on_dead)(void *user, int reason);
} edi_rlink_callbacks;

typedef struct edi_rlink_config {
    uint64_t token;             /* frames with another token are refused */
    size_t send_buffer_bytes;   /* appended, not yet acknowledged (4 MiB) */
    uint32_t recv_window_bytes; /* advertised: bytes beyond the ack (4 MiB) */
    /* out-of-order frames held (8192): each pins its receive buffer (an
     * mbuf), so the lane keeps this below its pool's share per link */
    uint32_t max_held_frames;
    uint64_t max_message_bytes; /* larger is fatal, EDIST_ENOMEM (256 MiB) */
    uint64_t ack_delay_ns;      /* a standalone ACK at most this late (20 us) */
    uint32_t ack_every_frames;  /* ... or after this many DATA frames (8) */
    uint64_t rto_initial_ns;    /* before any RTT sample (1 ms) */
    uint64_t rto_min_ns;        /* (100 us) */
    uint64_t rto_max_ns;        /* backoff cap (100 ms) */
    uint64_t idle_ping_ns;  /* PING after this long without a frame (10 ms) */
    uint64_t dead_after_ns; /* dead after this long without one (2 s) */
} edi_rlink_config;

typedef struct edi_rlink_stats {
    /* frames of every type; DATA bytes counted once per byte of stream */
    uint64_t frames_out, frames_in;
    uint64_t data_frames_out, data_frames_in;
    uint64_t bytes_out, bytes_in;       /* stream bytes sent new / delivered */
    uint64_t messages_out, messages_in; /* ticks included */
    uint64_t acks_out, pings_out, pongs_out;
    uint64_t retransmits, retransmit_bytes; /* DATA frames rebuilt */
    uint64_t rto_expired;                   /* retransmission timeouts */
    /* naks_ignored: stale, or repeated within an RTT */
    uint64_t naks_sent, naks_received, naks_ignored;
    uint64_t duplicates;   /* DATA frames with nothing new */
    uint64_t out_of_order; /* DATA frames held for a gap */
    uint64_t held_now, held_max;
    uint64_t beyond_window; /* DATA refused: past the advertised window */
    uint64_t held_full;     /* DATA refused: max_held_frames held */
    uint64_t held_dropped;  /* held frames let go (edi_rlink_drop_held) */
    uint64_t window_stalls; /* sends held back by the peer's window */
    uint64_t window_probes; /* PINGs sent to a closed window */
    uint64_t send_eagain, send_too_big;
    uint64_t reserve_copies; /* reservations staged across the ring's end */
    uint64_t tx_no_buffer;   /* the medium had no transmit buffer */
    uint64_t bad_frames;     /* total refused, by reason: */
    uint64_t bad_short, bad_magic, bad_version, bad_type, bad_fields;
    uint64_t bad_token; /* another link's, or stray */
    uint64_t bad_ack;   /* acks or NAKs bytes never sent */
    uint64_t rtt_samples, srtt_ns, rttvar_ns, rto_ns;
    uint64_t send_buffer_bytes; /* in use now */
    /* DATA frames whose bytes the medium carried from the send buffer
     * itself (tx_attach), not copied into the frame */
    uint64_t data_frames_by_ref;
} edi_rlink_stats;

/* Defaults above, token 0. */
void edi_rlink_config_default(edi_rlink_config *c);

/* A link with cfg (copied), sending through medium (copied; its functions
 * must stay valid) and calling cb with user. now_ns starts the liveness
 * clock. Returns 0, EDIST_EINVAL (a zero limit, a medium frame too small
 * for the header, a missing callback), EDIST_ENOMEM. */
int edi_rlink_new(const edi_rlink_config *cfg, const edi_rlink_medium *medium,
                  const edi_rlink_callbacks *cb, void *user, uint64_t now_ns,
                  edi_rlink **out);
/* Frees the link, dropping its held frames and send buffer. */
void edi_rlink_free(edi_rlink *l);

/* Appends one message [u32 length][head][body] (head_len + body_len bytes
 * of payload, 0 for a tick) to the stream; it goes out at the next poll.
 * All or nothing: 0, EDIST_EAGAIN (no room now: on_writable follows),
 * EDIST_ENOMEM (larger than the whole send buffer or than
 * max_message_bytes: never fits), EDIST_ECLOSED (dead). */
int edi_rlink_send(edi_rlink *l, const void *head, size_t head_len,
                   const void *body, size_t body_len);

/* The same, encoded in place (the lane's tx_reserve/tx_commit): *payload
 * gets max_len writable bytes for the payload, inside the send buffer,
 * or, where the ring wraps, in a staging area that commit copies in
 * (counted in reserve_copies). Returns as edi_rlink_send, for a message
 * of max_len bytes. One reservation at a time: a send or another reserve
 * abandons it. */
int edi_rlink_reserve(edi_rlink *l, size_t max_len, uint8_t **payload);
/* Appends the reserved message with its final payload length (at most
 * max_len). 0, or EDIST_EINVAL without a reservation or for a longer
 * len. */
int edi_rlink_commit(edi_rlink *l, size_t len);

/* A frame from the medium: f->data[0..len) after the medium's header, in
 * f->rxbuf, which the link references while it holds the frame out of
 * order or delivers views into it. Bad frames are counted and dropped.
 * Delivers messages (on_message) and acknowledgements (on_writable). */
void edi_rlink_input(edi_rlink *l, uint64_t now_ns, const edi_frame *f);

/* Does what is due at now_ns: retransmissions (NAKed, timed out), new
 * data the peer's window allows (appended messages fill frames up to the
 * medium's size), NAKs, the ACK, PONG and PING, liveness (on_dead). Call
 * after an iteration's inputs and sends, and when the deadline passed. */
void edi_rlink_poll(edi_rlink *l, uint64_t now_ns);

/* When edi_rlink_poll has something to do next (<= now when it has work
 * now); UINT64_MAX once dead. */
uint64_t edi_rlink_next_deadline_ns(const edi_rlink *l);

/* Shrinks or reopens the receive window (at most recv_window_bytes): a
 * receiver that must not take more (its pool runs low) closes it with 0.
 * A change goes to the peer in an ACK at the next poll. The right edge
 * already advertised never moves left (as in TCP): what the peer sent
 * within it is still taken, so a close holds the peer back after at most
 * one window more, and nothing in flight is refused. */
void edi_rlink_set_recv_window(edi_rlink *l, uint32_t bytes);
/* Lets go of the frames held out of order (their receive buffers are
 * wanted elsewhere): the sender's timeout sends them again. The count. */
uint32_t edi_rlink_drop_held(edi_rlink *l);

bool edi_rlink_dead(const edi_rlink *l);
/* Bytes appended and not yet acknowledged. */
size_t edi_rlink_unacked_bytes(const edi_rlink *l);
/* The stream offset the peer acknowledged: it only grows. */
uint64_t edi_rlink_acked_offset(const edi_rlink *l);
/* Bytes appended and not yet sent once (what the next poll frames, as
 * far as the peer's window allows). */
size_t edi_rlink_unsent_bytes(const edi_rlink *l);
/* The stream offset sent once so far: it only grows. */
uint64_t edi_rlink_sent_offset(const edi_rlink *l);
void edi_rlink_get_stats(const edi_rlink *l, edi_rlink_stats *out);

#endif
