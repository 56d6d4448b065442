/* SPDX-License-Identifier: Apache-2.0 */
/* Splitting large distribution messages into fragments (sender). Wire
 * forms, thread safety and errors: see dist_msg.h. */
#ifndef EDIST_CONTROL_DIST_FRAG_H
#define EDIST_CONTROL_DIST_FRAG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "control/dist_msg.h"
#include "edist/term.h"

/* ---- fragmenting (sender) ------------------------------------------------ */

/* Splits one header-form frame produced by edi_dist_build_* (a connection
 * with DFLAG_FRAGMENTS) into fragments, as erts does: the first fragment is
 * 131, 69, SequenceId, FragmentId = count, 0 (no atom cache refs), then the
 * bytes of the control tuple and the start of the payload; continuations
 * are 131, 70, SequenceId, FragmentId, more payload bytes; ids count down to
 * 1. The control tuple is never split (erts decodes it from the first
 * fragment alone). Each fragment carries frag_bytes body bytes (the first
 * counts the control tuple, and is bigger only when the control tuple alone
 * is), the last the rest. The frame must stay unchanged and alive until the
 * last fragment is taken. Other frames (other senders) may be sent between
 * fragments; one sender must finish its sequence before starting another
 * with the same SequenceId. */
typedef struct edi_dist_frag {
    const uint8_t *body; /* control tuple + payload in the frame */
    size_t body_len;
    size_t ctl_len;
    size_t taken; /* body bytes already handed out */
    size_t frag_bytes;
    uint64_t sequence_id;
    uint64_t count;            /* total fragments */
    uint64_t next_fragment_id; /* counts down; 0 when done */
} edi_dist_frag;

/* Would a frame of frame_len bytes (u32 prefix included) be split for a
 * connection with these flags at this fragment size (0 = default)? 1 or 0. */
int edi_dist_needs_fragments(size_t frame_len, uint64_t flags,
                             size_t frag_bytes);

/* Prepare to split frame (frame_len bytes from edi_dist_build_*, u32 prefix
 * included, header form). sequence_id must be non-zero (erts treats 0 as
 * "not fragmented") and unique among the sender's open sequences on the
 * connection (erts uses the sending pid; edist: any per-process id);
 * frag_bytes 0 means EDI_DIST_FRAGMENT_BYTES_DEFAULT. Returns the number of
 * fragments (>= 1; 1 means: send the frame as it is — frag_next then hands
 * out the unchanged 131, 68 frame), or EDIST_EINVAL (not a header-form frame
 * or sequence_id 0). */
int64_t edi_dist_frag_init(edi_dist_frag *f, const uint8_t *frame,
                           size_t frame_len, uint64_t sequence_id,
                           size_t frag_bytes);

/* Append the next fragment as a whole frame (u32 length included) to out.
 * Returns 1 if more fragments remain, 0 if that was the last, EDIST_EINVAL
 * when already done, or an error from out (nothing consumed). */
int edi_dist_frag_next(edi_dist_frag *f, edist_buf *out);

/* Zero-copy variant: the next fragment as 2 iovecs, iov[0] = hdr (which
 * this fills: u32 length + fragment header) and iov[1] = a slice of the
 * frame, and consumes it. Returns 1 if more fragments remain, 0 if that was
 * the last, EDIST_EINVAL when already done. */
#define EDI_DIST_FRAG_HDR_MAX_BYTES 23 /* u32 + 131, 69, u64, u64, 0 */
int edi_dist_frag_next_iov(edi_dist_frag *f,
                           uint8_t hdr[EDI_DIST_FRAG_HDR_MAX_BYTES],
                           struct iovec iov[2]);

#endif
