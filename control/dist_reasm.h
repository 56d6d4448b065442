/* SPDX-License-Identifier: Apache-2.0 */
/* Reassembly of fragmented distribution messages (receiver). Wire forms,
 * views, thread safety and errors: see dist_msg.h. */
#ifndef EDIST_CONTROL_DIST_REASM_H
#define EDIST_CONTROL_DIST_REASM_H

#include <stddef.h>
#include <stdint.h>

#include "control/dist_msg.h"

/* ---- fragment reassembly (receiver) -------------------------------------- */

/* Bounds for one connection's reassembler. Zero fields take the defaults. */
typedef struct edi_dist_reasm_limits {
    /* Sum of the buffers of all open sequences (default 64 MiB). */
    size_t max_total_bytes;
    /* Size of one reassembled message (default = max_total_bytes). */
    size_t max_message_bytes;
    /* Sequences open at the same time (default 1024; erts sends one open
     * sequence per sending process). */
    uint32_t max_sequences;
} edi_dist_reasm_limits;

#define EDI_DIST_REASM_MAX_TOTAL_BYTES_DEFAULT ((size_t)64 << 20)
#define EDI_DIST_REASM_MAX_SEQUENCES_DEFAULT 1024u

typedef struct edi_dist_reasm edi_dist_reasm;

/* Create a reassembler for one connection; limits may be NULL (defaults).
 * Returns 0 or EDIST_ENOMEM. */
int edi_dist_reasm_create(const edi_dist_reasm_limits *limits,
                          edi_dist_reasm **out);
/* Frees all partial sequences and r (NULL is fine). */
void edi_dist_reasm_free(edi_dist_reasm *r);

/* Result of edi_dist_reasm_feed. */
typedef struct edi_dist_delivery {
    /* The message, valid until the next feed: &parsed, or the
     * reassembler's own copy of a repeating control message (its payload
     * in the frame, its other views in that copy). */
    const edi_dist_msg *msg;
    edi_dist_msg parsed;
    /* NULL when the payload points into the frame given to feed (an
     * unfragmented frame: valid while that frame is). Otherwise the
     * reassembled buffer, malloc'ed, that msg's views point into: the caller
     * owns it and frees it with free() after use. */
    uint8_t *owned;
    size_t owned_len;
} edi_dist_delivery;

/* Feed one received frame payload (non-empty; any form). Returns
 *   1  a complete message: *out filled (see owned above);
 *   0  a fragment was stored; nothing to deliver yet;
 *   <0 error; the connection should be closed (the reassembler stays
 *      consistent and may be freed or fed again):
 *      EDIST_EPROTO  continuation of an unknown sequence, a FragmentId that
 *                    is not the expected next one (ids count down by one to
 *                    1), a first fragment for a sequence already open,
 *                    FragmentId 0, or a parse error in the completed message;
 *      EDIST_ENOMEM  a limit above was exceeded or allocation failed (the
 *                    offending sequence is dropped);
 *      EDIST_EINVAL  empty frame (a tick: the caller's) or NULL argument;
 *      parse errors as edi_dist_parse for unfragmented frames.
 * An unfragmented message to a process or name leaves its header and
 * control message in the reassembler: the next frame with the same bytes
 * before its payload is not parsed again (the result is the same, with
 * the control views in the reassembler's copy and a memo). Beyond
 * that, an unfragmented frame never touches the reassembler's state, nor does a
 * first fragment with FragmentId 1 (a whole message: parsed in place, owned
 * NULL). A sequence that fails (out of order, over a limit, bad message) is
 * dropped and its memory released. */
int edi_dist_reasm_feed(edi_dist_reasm *r, const uint8_t *frame, size_t len,
                        edi_dist_delivery *out);

/* Introspection for counters and tests. */
uint32_t edi_dist_reasm_open_sequences(const edi_dist_reasm *r);
size_t edi_dist_reasm_buffered_bytes(const edi_dist_reasm *r);

#endif
