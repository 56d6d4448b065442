/* SPDX-License-Identifier: Apache-2.0 */
/* The in-process loopback lane, for tests: a link pair joins two loopback
 * lanes (on one loop or on two loops of different threads); frames are
 * queued in memory and delivered when the receiving lane is polled, whole
 * and in order, never lost. Transmitted frames become visible to the peer
 * at the batch boundary: edi_lane_tx_flush or the end of the sender's loop
 * iteration. Each direction of a pair is bounded (frames and bytes, queued
 * or in the sender's unflushed batch): beyond, transmits return
 * EDIST_EAGAIN and on_writable follows once the receiver has taken half
 * of what was queued. Every frame has its own heap buffer (a reservation
 * allocates one; a batch frame is copied and its body released at once):
 * simple, not fast.
 *
 * Closing a link: what it sent still arrives, then the peer's on_closed
 * says EDIST_ECLOSED; frames still queued towards the closed end are
 * dropped (counted in the lane's drops). Both lanes' loops must outlive
 * the pair. */
#ifndef EDI_LANE_LOOPBACK_H
#define EDI_LANE_LOOPBACK_H

#include "dataplane/lane.h"

typedef struct edi_loopback_params {
    uint32_t max_frames;      /* per direction (default 1024) */
    size_t max_bytes;         /* per direction, payload (default 1 MiB); a
                               * frame alone may exceed it */
    size_t max_frame_bytes;   /* largest frame (default 1 MiB) */
} edi_loopback_params;

void edi_loopback_params_default(edi_loopback_params *p);

/* open's params: edi_loopback_params, NULL for the defaults. The bounds of
 * a direction are those of the sending lane. */
extern const edi_lane_ops edi_loopback_lane_ops;

/* Joins lanes a and b (both loopback lanes) with a new link on each, whose
 * users are user_a and user_b. Call on the loop thread when both lanes are
 * on one loop, or before their loops run. Returns 0, EDIST_EINVAL (not
 * loopback lanes), EDIST_ENOMEM. */
int edi_loopback_link_pair(edi_lane *a, void *user_a, edi_lane *b, void *user_b,
                           edi_lane_link **link_a, edi_lane_link **link_b);

#endif
