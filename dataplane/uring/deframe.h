/* SPDX-License-Identifier: Apache-2.0 */
/* The receive side of a stream connection as a pure state machine: bytes
 * in (one chunk per receive buffer), events out. No sockets, no io_uring,
 * no clock: conn.c drives it with kernel receive buffers, the tests and
 * the fuzzer with plain memory.
 *
 * Two modes, switchable at any time (also from inside an event):
 *   RAW: the bytes are offered to the consumer (EDI_DEFRAME_BYTES), which
 *        says how many it consumed. The rest is staged (at most
 *        raw_max_bytes, beyond that a protocol error) and offered again,
 *        with new bytes appended, until consumed. Bytes are staged only
 *        while the consumer waits for more: when it switches to U32, the
 *        bytes after the consumed ones are framed at once (in place when
 *        they are in the chunk, from a copy when they were staged).
 *   U32: [u32 big-endian length][payload] frames. A frame inside one chunk
 *        is a view into that chunk (no copy); a frame spanning chunks is
 *        reassembled into a buffer from the allocation callbacks that grows
 *        as bytes arrive (a peer announcing a huge frame does not make us
 *        allocate it before sending it); length 0 is a tick; a length above
 *        max_frame_bytes is an error (a limit).
 *
 * Ownership: chunks stay the caller's; a frame or bytes event points into
 * memory valid during the event only. A reassembled frame hands its buffer
 * to the event handler, which must release it (the conn keeps its rxbuf
 * reference model this way: the buffer is an rxbuf with one reference).
 *
 * Errors (EDI_DEFRAME_ERROR, then the deframer is halted: no more events):
 * EDIST_ENOMEM for a frame over max_frame_bytes or when an allocation
 * fails (limits the owner counts), EDIST_EPROTO for RAW bytes beyond
 * raw_max_bytes. Nothing here prints or logs.
 *
 * Not thread-safe: one deframer belongs to one thread (the loop thread for
 * conn.c). Event handlers may call set_mode and halt, never feed. */
#ifndef EDI_URING_DEFRAME_H
#define EDI_URING_DEFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum edi_deframe_mode {
    EDI_DEFRAME_RAW = 0,
    EDI_DEFRAME_U32 = 1,
} edi_deframe_mode;

typedef enum edi_deframe_kind {
    EDI_DEFRAME_BYTES = 1,   /* RAW: data[0..len) offered; the handler
                              * returns how many it consumed (0..len) */
    EDI_DEFRAME_FRAME,       /* U32 frame in place: data[0..len) lies in
                              * buf at offset (see buf) */
    EDI_DEFRAME_TICK,        /* U32 frame of length 0 (data = position in
                              * buf, len 0) */
    EDI_DEFRAME_REASSEMBLED, /* U32 frame that spanned chunks: data[0..len)
                              * lies in buf, which the handler now owns */
    EDI_DEFRAME_ERROR,       /* err + detail; the deframer is halted */
} edi_deframe_kind;

typedef struct edi_deframe_event {
    edi_deframe_kind kind;
    const uint8_t *data;
    size_t len;
    /* FRAME/TICK: where the frame lies. in_chunk: in the chunk being fed,
     * buf is the chunk's handle given to edi_deframe_feed and offset
     * counts from the chunk's first byte. Otherwise it lies in a private
     * copy of staged RAW bytes (framed after a switch to U32): buf is that
     * copy (from the allocation callbacks, owned by the deframer, released
     * after the event; a handler that keeps the view takes its own
     * reference, as with the chunk's buffer) and offset counts from its
     * first byte. REASSEMBLED: buf holds the payload, owned by the handler
     * from now on. BYTES: in_chunk tells whether data is in the chunk
     * (else in the staging area); buf/offset are not set. */
    void *buf;
    size_t offset;
    bool in_chunk;
    int err;            /* ERROR: EDIST_EPROTO or EDIST_ENOMEM */
    const char *detail; /* ERROR: one line, valid during the event */
} edi_deframe_event;

/* Returns the bytes consumed for EDI_DEFRAME_BYTES (more than len counts
 * as len); ignored for the other kinds. */
typedef size_t (*edi_deframe_fn)(void *user, const edi_deframe_event *ev);

/* Buffers for reassembly and for framing staged bytes: the caller decides
 * what they are (conn.c: heap rxbufs with one reference). alloc returns a
 * handle for cap_bytes (> 0) of memory and sets *data, or NULL. grow
 * resizes a handle nobody else holds yet (may move it), NULL on failure
 * with the old handle still valid. release drops the deframer's hold. */
typedef struct edi_deframe_alloc {
    void *(*alloc)(void *user, size_t cap_bytes, uint8_t **data);
    void *(*grow)(void *user, void *buf, size_t cap_bytes, uint8_t **data);
    void (*release)(void *user, void *buf);
} edi_deframe_alloc;

/* Reassembly buffers as heap rxbufs (dataplane/reactor/rxbuf.h): a
 * reassembled frame is then referenced like a view into a received
 * buffer, whatever the medium (the TCP lane, the link protocol). */
extern const edi_deframe_alloc edi_deframe_rxbufs;

typedef struct edi_deframe_config {
    uint64_t max_frame_bytes; /* U32: larger frames are EDIST_ENOMEM */
    size_t raw_max_bytes;     /* RAW: staged bytes kept at most (> 0) */
    /* U32: a reassembly buffer starts at most this big and grows as bytes
     * arrive (0: 1 MiB); small values let tests reach the growth */
    size_t asm_initial_bytes;
    const edi_deframe_alloc *alloc; /* must stay valid while d lives */
    edi_deframe_fn on_event;
    void *user; /* for on_event and alloc */
} edi_deframe_config;

/* Private: embedded by the owner to avoid an allocation per connection. */
typedef struct edi_deframe {
    edi_deframe_config cfg;
    edi_deframe_mode mode;
    bool halted;
    uint8_t hdr[4]; /* U32 header split across chunks */
    uint8_t hdr_have;
    void *asm_buf; /* frame being reassembled, or NULL */
    uint8_t *asm_data;
    size_t asm_cap, asm_len, asm_have;
    uint8_t *raw; /* RAW bytes offered but not consumed */
    size_t raw_len, raw_cap;
    char detail[128];
} edi_deframe;

/* Starts in RAW mode. cfg is copied. */
void edi_deframe_init(edi_deframe *d, const edi_deframe_config *cfg);

/* Feeds the next chunk of the stream: chunk[0..len), whose handle (any
 * value, e.g. the receive buffer) is echoed in events for frames inside
 * it. len 0 re-offers staged bytes (after a mode switch made outside an
 * event). Events are emitted from inside this call, in stream order. A
 * halted deframer ignores the call. */
void edi_deframe_feed(edi_deframe *d, void *chunk_buf, const uint8_t *chunk,
                      size_t len);

/* Takes effect for the next byte not yet delivered. */
void edi_deframe_set_mode(edi_deframe *d, edi_deframe_mode mode);
edi_deframe_mode edi_deframe_get_mode(const edi_deframe *d);

/* U32 mode with part of a frame (header or payload) received. */
bool edi_deframe_mid_frame(const edi_deframe *d);
/* RAW bytes staged (offered, not consumed). */
size_t edi_deframe_staged_bytes(const edi_deframe *d);
/* Bytes fed and not yet delivered in an event: staged RAW bytes, a partial
 * header, or the header and payload received of a frame in reassembly. */
size_t edi_deframe_pending_bytes(const edi_deframe *d);
bool edi_deframe_halted(const edi_deframe *d);

/* Stops for good: partial state is dropped (a frame in reassembly is
 * released), later feeds do nothing. Idempotent; may be called from an
 * event handler (the event's data stays valid until it returns). */
void edi_deframe_halt(edi_deframe *d);

/* Halts and frees the staging memory. d may be re-initialised after. */
void edi_deframe_fini(edi_deframe *d);

#endif
