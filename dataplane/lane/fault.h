/* SPDX-License-Identifier: Apache-2.0 */
/* A lane around any other lane that drops, duplicates, reorders and delays
 * frames at given rates, for testing what sits above a lane (the link
 * protocol of a lossy medium must repair all four). The faults hit frames
 * as the inner lane delivers them, so a wrapper acts on what its end
 * receives: wrap both ends for both directions. Transmits pass through to
 * the inner link untouched.
 *
 * Each frame the inner lane delivers draws four numbers from a seeded
 * generator (the same seed and the same frames give the same faults) and,
 * in this order:
 *   drop     (drop_ppm): never delivered;
 *   dup      (dup_ppm): delivered twice, wherever it is delivered;
 *   delay    (delay_ppm): held delay_ns (by now_ns), then delivered, after
 *            frames that arrived meanwhile;
 *   reorder  (reorder_ppm): held until the next frame of its link was
 *            delivered, then delivered (one held per link; if no frame
 *            follows before the wrapper's next poll, it is delivered then,
 *            in order, and counted in reorder_unpaired, not reordered).
 * Frames held (delayed or reordered) keep their buffer referenced; at most
 * max_held at once: beyond, a frame meant to be held is delivered at once
 * and counted in hold_full. Every fault is counted (edi_fault_lane_stats).
 *
 * The wrapper owns the inner lane (it opens and closes it) and polls it
 * itself. Links: make the inner link the medium's way (on
 * edi_fault_lane_inner()), then wrap it, in the same callback, before the
 * loop delivers anything on it. */
#ifndef EDI_LANE_FAULT_H
#define EDI_LANE_FAULT_H

#include "dataplane/lane.h"

typedef struct edi_fault_config {
    uint64_t seed;
    uint32_t drop_ppm, dup_ppm, delay_ppm, reorder_ppm; /* per million frames */
    uint64_t delay_ns;            /* how long a delayed frame is held (default 1 ms) */
    uint32_t max_held;            /* frames held at once (default 1024) */
    /* The clock of the delays (default: the loop's, refreshed each
     * iteration; a loop timer wakes it when a delay ends). A test may give
     * its own to control time. */
    uint64_t (*now_ns)(void *user);
    void *now_user;
} edi_fault_config;

/* open's params. */
typedef struct edi_fault_params {
    const edi_lane_ops *inner_ops;
    const void *inner_params;     /* the inner lane's open params */
    edi_fault_config faults;
} edi_fault_params;

/* Zero rates (transparent), seed 1, the defaults above. */
void edi_fault_config_default(edi_fault_config *c);

extern const edi_lane_ops edi_fault_lane_ops;

/* The wrapped lane, to make inner links on. */
edi_lane *edi_fault_lane_inner(edi_lane *lane);

/* Makes inner (a link of the inner lane, just made) a link of the wrapper
 * with user; the inner link's user becomes the wrapper's. Returns 0,
 * EDIST_EINVAL (not a fault lane, or inner not of its inner lane),
 * EDIST_ENOMEM. */
int edi_fault_lane_link_wrap(edi_lane *lane, edi_lane_link *inner, void *user,
                             edi_lane_link **out);

typedef struct edi_fault_stats {
    uint64_t frames_seen;         /* frames the inner lane delivered */
    uint64_t dropped, duplicated, delayed, reordered;
    uint64_t reorder_unpaired;    /* held for reordering, nothing overtook it */
    uint64_t hold_full;           /* delay or reorder not done: max_held reached */
    uint64_t held_now, held_max;
    uint64_t dropped_at_close;    /* held when their link or the lane closed */
    uint64_t dropped_unwrapped;   /* arrived on an inner link not wrapped yet */
} edi_fault_stats;

void edi_fault_lane_get_stats(const edi_lane *lane, edi_fault_stats *out);

#endif
