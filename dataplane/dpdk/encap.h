/* SPDX-License-Identifier: Apache-2.0 */
/* How the DPDK lane wraps its link frames on the wire: in an Ethernet
 * frame of edist's own EtherType (one L2 segment: memif, a veth, one
 * switch), or in UDP/IPv4 (routable; NICs can spread UDP over receive
 * queues by its ports, once the lane uses several). Plain C over byte
 * buffers, no DPDK: the lane, its tests and the fuzzer share it.
 *
 * A lane's address, as the lane agreement carries it (control/nk_lane.c):
 * 6 bytes, its MAC, for Ethernet framing; 12 for UDP: MAC, IPv4 address,
 * UDP port (network order). Both ends must frame alike: an address of the
 * other form is refused, and that peer stays on TCP. */
#ifndef EDI_DPDK_ENCAP_H
#define EDI_DPDK_ENCAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* edist's EtherType: 0x88B5, the first of IEEE 802's two "local
 * experimental" EtherTypes (0x88B5/0x88B6), meant for protocols on a
 * link of one's own, never assigned to anyone: nothing else on a veth or
 * memif uses it, and switches forward it like any other. */
#define EDI_DPDK_ETHERTYPE 0x88B5u
#define EDI_DPDK_ETH_HEADER_BYTES 14u
/* Ethernet, IPv4 without options, UDP. */
#define EDI_ENCAP_UDP_HEADER_BYTES 42u
#define EDI_ENCAP_ADDR_MAX 12u
/* The UDP port a node's lane takes when its configuration names none. */
#define EDI_ENCAP_UDP_PORT_DEFAULT 4370u

typedef struct edi_encap {
    bool udp;
    uint8_t mac[6];
    uint8_t ip[4];    /* udp: ours */
    uint16_t port;    /* udp: ours */
    /* udp: frames to every peer go to this MAC (the router of a routed
     * network) instead of the peer's own. */
    bool via_gateway;
    uint8_t gateway_mac[6];
} edi_encap;

/* Where one link's frames go. */
typedef struct edi_encap_peer {
    uint8_t mac[6]; /* the next hop */
    uint8_t ip[4];
    uint16_t port;
    uint16_t src_port; /* ours, per link: NICs hash links apart by it */
} edi_encap_peer;

/* Header bytes before a link frame: 14 or 42. */
static inline size_t edi_encap_header_bytes(const edi_encap *e)
{
    return e->udp ? EDI_ENCAP_UDP_HEADER_BYTES : EDI_DPDK_ETH_HEADER_BYTES;
}

/* Our address (6 or 12 bytes) into out; its length. */
size_t edi_encap_addr(const edi_encap *e, uint8_t out[EDI_ENCAP_ADDR_MAX]);

/* A peer from its address. flow picks our source port for the link (its
 * low bits, in the dynamic range). 0, or EDIST_EINVAL when the address
 * is not of our form (Ethernet with UDP, or the other way round). */
int edi_encap_peer_of(const edi_encap *e, const uint8_t *addr, size_t len,
                      uint64_t flow, edi_encap_peer *out);

/* Writes the header of a frame of frame_len bytes in all (header
 * included) at frame: for UDP its lengths and the IPv4 checksum (the UDP
 * checksum is 0: none, as IPv4 allows; Ethernet's FCS covers the wire). */
void edi_encap_write(const edi_encap *e, const edi_encap_peer *p, uint8_t *frame,
                     size_t frame_len);

/* A received frame: if it is ours, the header's length (*body_len gets the
 * link frame's length: for UDP what the datagram carries, without the
 * padding short Ethernet frames get), else 0. Ours: our EtherType; or
 * IPv4 (options allowed) with a valid header checksum, not a fragment,
 * UDP, to our address and port, lengths within the frame. */
size_t edi_encap_match(const edi_encap *e, const uint8_t *frame, size_t len,
                       size_t *body_len);

/* UDP framing: a DPDK port has no kernel to answer ARP, so the lane does,
 * for its own address (a router, or a kernel host, on the segment must
 * learn our MAC before it sends us anything). If frame is an ARP request
 * for e's address, broadcast or to our MAC, the reply (from our MAC and
 * address, to the asker, padded to Ethernet's 60 bytes) is written to
 * out; its length, else 0. */
#define EDI_ENCAP_ARP_REPLY_BYTES 60u
size_t edi_encap_arp_reply(const edi_encap *e, const uint8_t *frame, size_t len,
                           uint8_t out[EDI_ENCAP_ARP_REPLY_BYTES]);

/* "a.b.c.d" into ip (0, or EDIST_EINVAL); "xx:xx:xx:xx:xx:xx" into mac. */
int edi_encap_parse_ipv4(const char *text, uint8_t ip[4]);
int edi_encap_parse_mac(const char *text, uint8_t mac[6]);

#endif
