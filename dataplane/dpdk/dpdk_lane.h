/* SPDX-License-Identifier: Apache-2.0 */
/* The DPDK lane: edist links over one DPDK port (dataplane/dpdk/dpdk.h),
 * each carried by the edist link protocol (dataplane/link/link.h), which
 * makes the port's frames an ordered, reliable, flow-controlled stream of
 * distribution messages: what a lane link delivers is what the TCP lane
 * delivers. A link is made for one peer, by its lane address (Ethernet,
 * or UDP/IPv4: encap.h) and the tokens agreed on the control connection
 * (control/nk_lane.c); frames of
 * unknown tokens are refused and counted. The lane is a poll source of
 * its shard: each iteration it takes a burst from the port, feeds the
 * links, runs their timers, and at the end of the iteration turns what
 * was sent into frames and hands them to the port.
 *
 * A link calls on_up once it has heard from its peer and had one of its
 * own frames answered: both directions work.
 *
 * Idling: DPDK ports have no completion to wake a sleeping loop, so the
 * lane keeps a 1 ms timer: a busy-polling shard (what this lane is for)
 * polls it every iteration, an adaptive one at least every millisecond.
 *
 * Built only with DPDK (EDIST_HAVE_DPDK). Loop thread only. */
#ifndef EDI_DPDK_LANE_H
#define EDI_DPDK_LANE_H

#include "dataplane/dpdk/dpdk.h"
#include "dataplane/lane.h"
#include "dataplane/link/link.h"

typedef struct edi_dpdk_lane_params {
    /* The port: opened by the lane (the EAL must be up), closed with it. */
    edi_dpdk_port_config port;
    /* The link protocol's settings for every link (token set per link). */
    edi_rlink_config link;
    /* The receive window instead of link.recv_window_bytes on a port over
     * a kernel interface (af_xdp, af_packet): the protocol has no
     * congestion window, so what is in flight must fit the kernel's
     * queues (EDI_DPDK_KERNEL_WINDOW_BYTES_DEFAULT, dpdk/medium.h). */
    uint32_t kernel_window_bytes;
    /* Faults injected into received frames, per million, seeded (tests:
     * memif loses nothing, the protocol's repair must show on a real
     * port all the same). 0: none. */
    uint32_t rx_drop_ppm, rx_dup_ppm, rx_reorder_ppm;
    uint64_t fault_seed;
    /* The framing (encap.h): Ethernet by default; encap.udp for UDP/IPv4
     * from encap.ip and encap.port. encap.mac is the port's, filled in. */
    edi_encap encap;
} edi_dpdk_lane_params;

void edi_dpdk_lane_params_default(edi_dpdk_lane_params *p);

extern const edi_lane_ops edi_dpdk_lane_ops;

/* A link to the peer at peer_addr (its lane address, encap.h): tx_token
 * and rx_token as agreed (the link protocol's token is both combined, so
 * both ends compute the same); its frames at most the smaller of ours and
 * peer_frame_max (the peer's edi_dpdk_lane_frame_max; 0: ours). Has the
 * signature of edi_nk_fast_open_fn. 0, EDIST_EINVAL (also: the peer's
 * frames too small), EDIST_EEXIST (a link with those tokens),
 * EDIST_ENOMEM. */
int edi_dpdk_lane_link_open(edi_lane *lane, const uint8_t *peer_addr,
                            size_t peer_addr_len, uint64_t tx_token,
                            uint64_t rx_token, size_t peer_frame_max, void *user,
                            edi_lane_link **out);
/* False, with a sentence in why, when the lane's port can carry nothing
 * any more until the process restarts (edi_dpdk_port_usable): the node
 * then offers its lane to nobody, and refuses offers. Any thread. */
bool edi_dpdk_lane_usable(edi_lane *lane, char *why, size_t cap);
/* The largest link frame our port carries and takes (after its framing):
 * told to the peer in the lane agreement. */
size_t edi_dpdk_lane_frame_max(const edi_lane *lane);

/* Our lane address (encap.h: 6 bytes, or 12 with UDP) into out; its
 * length. */
size_t edi_dpdk_lane_addr(const edi_lane *lane, uint8_t out[EDI_ENCAP_ADDR_MAX]);
/* The lane's framing, as it is (our MAC filled in). */
const edi_encap *edi_dpdk_lane_encap(const edi_lane *lane);
/* What kind of port, as offers name it: memif, af_xdp, af_packet, or nic
 * (from the device name). */
const char *edi_dpdk_lane_medium(const edi_lane *lane);

typedef struct edi_dpdk_lane_stats {
    edi_dpdk_port_stats port;
    uint64_t links;            /* open now */
    uint64_t rx_unknown_token; /* frames for no link of ours */
    uint64_t rx_early;         /* frames for a link of ours not started yet
                                * (the peer's port was up first): sent again */
    uint64_t rx_short;         /* frames too short for a link header */
    uint64_t rx_foreign;       /* frames not of our framing (UDP: not
                                * to our address and port, or malformed) */
    uint64_t arp_replies;      /* UDP: ARP requests for our address answered */
    uint64_t tx_lost;          /* frames the port would not queue (the link
                                * protocol sends them again; an ARP asker
                                * asks again) */
    uint64_t injected_drops, injected_dups, injected_reorders;
    uint64_t window_closes; /* receive holds taken (lane-wide or a link's) */
    uint64_t links_dead;    /* links the protocol declared dead */
    /* The link protocol's counters, summed over the open links. */
    edi_rlink_stats link;
} edi_dpdk_lane_stats;
void edi_dpdk_lane_get_stats(const edi_lane *lane, edi_dpdk_lane_stats *out);

/* The port's pool is low (edi_dpdk_port_pool_low): received frames kept
 * as views (mailboxes) must be copied out, or the port can neither
 * receive nor send. */
bool edi_dpdk_lane_pool_low(const edi_lane *lane);

/* Receive holds: a held link's receive window is closed (0), so its
 * peer sends nothing beyond the edge it was last given (what it had in
 * flight is still taken: an advertised edge never moves left) and probes
 * until the window reopens. The lane-wide hold (the node's read hold:
 * shard_backlog_limit) covers every link, those opened later too; a
 * link's own (its owner holds frames, e.g. before the peer's switch)
 * just that link. The window reopens when neither holds. */
void edi_dpdk_lane_rx_hold(edi_lane *lane, bool hold);
void edi_dpdk_lane_link_hold(edi_lane_link *link, bool hold);
/* One link's protocol counters; false while its protocol waits for the
 * port (nothing counted yet). */
bool edi_dpdk_lane_link_stats(const edi_lane_link *link, edi_rlink_stats *out);

#endif
