/* SPDX-License-Identifier: Apache-2.0 */
/* Link frames on the wire (see encap.h). */
#include "dataplane/dpdk/encap.h"

#include <arpa/inet.h>
#include <string.h>

#include "base/bytes.h"
#include "edist/error.h"

#define ETHERTYPE_IPV4 0x0800u
#define IPV4_HEADER_BYTES 20u
#define UDP_HEADER_BYTES 8u
#define IPPROTO_UDP_NUMBER 17u
#define IPV4_TTL 64u
/* Source ports per link: the dynamic range's upper half. */
#define SRC_PORT_BASE 49152u
#define SRC_PORT_SPAN 16384u

size_t edi_encap_addr(const edi_encap *e, uint8_t out[EDI_ENCAP_ADDR_MAX])
{
    memcpy(out, e->mac, 6);
    if (!e->udp)
        return 6;
    memcpy(out + 6, e->ip, 4);
    edi_put_be16(out + 10, e->port);
    return 12;
}

int edi_encap_peer_of(const edi_encap *e, const uint8_t *addr, size_t len,
                      uint64_t flow, edi_encap_peer *out)
{
    memset(out, 0, sizeof *out);
    if (len != (e->udp ? 12u : 6u))
        return edist_set_error(EDIST_EINVAL,
                               "DPDK lane: the peer's address (%zu bytes) is not "
                               "of our framing (%s)",
                               len, e->udp ? "UDP/IPv4, 12 bytes" : "Ethernet, 6 bytes");
    memcpy(out->mac, e->udp && e->via_gateway ? e->gateway_mac : addr, 6);
    if (e->udp) {
        memcpy(out->ip, addr + 6, 4);
        out->port = edi_get_be16(addr + 10);
        if (out->port == 0)
            return edist_set_error(EDIST_EINVAL, "DPDK lane: the peer's UDP port is 0");
        out->src_port = (uint16_t)(SRC_PORT_BASE + flow % SRC_PORT_SPAN);
    }
    return 0;
}

/* The Internet checksum of an IPv4 header (RFC 791, 1071): 0 over a
 * header that carries a right one. */
static uint16_t ipv4_checksum(const uint8_t *h, size_t len)
{
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += edi_get_be16(h + i);
    while (sum >> 16)
        sum = (sum & 0xffffu) + (sum >> 16);
    return (uint16_t)~sum;
}

void edi_encap_write(const edi_encap *e, const edi_encap_peer *p, uint8_t *frame,
                     size_t frame_len)
{
    memcpy(frame, p->mac, 6);
    memcpy(frame + 6, e->mac, 6);
    if (!e->udp) {
        edi_put_be16(frame + 12, EDI_DPDK_ETHERTYPE);
        return;
    }
    edi_put_be16(frame + 12, ETHERTYPE_IPV4);
    uint8_t *ip = frame + EDI_DPDK_ETH_HEADER_BYTES;
    size_t ip_len = frame_len - EDI_DPDK_ETH_HEADER_BYTES;
    ip[0] = 0x45; /* version 4, 5 words */
    ip[1] = 0;    /* DSCP, ECN */
    edi_put_be16(ip + 2, (uint16_t)ip_len);
    edi_put_be16(ip + 4, 0);      /* identification: never fragmented */
    edi_put_be16(ip + 6, 0x4000); /* don't fragment */
    ip[8] = IPV4_TTL;
    ip[9] = IPPROTO_UDP_NUMBER;
    edi_put_be16(ip + 10, 0);
    memcpy(ip + 12, e->ip, 4);
    memcpy(ip + 16, p->ip, 4);
    edi_put_be16(ip + 10, ipv4_checksum(ip, IPV4_HEADER_BYTES));
    uint8_t *udp = ip + IPV4_HEADER_BYTES;
    edi_put_be16(udp, p->src_port);
    edi_put_be16(udp + 2, p->port);
    edi_put_be16(udp + 4, (uint16_t)(ip_len - IPV4_HEADER_BYTES));
    edi_put_be16(udp + 6, 0);
}

size_t edi_encap_match(const edi_encap *e, const uint8_t *frame, size_t len,
                       size_t *body_len)
{
    *body_len = 0;
    if (len < EDI_DPDK_ETH_HEADER_BYTES)
        return 0;
    uint16_t type = edi_get_be16(frame + 12);
    if (!e->udp) {
        if (type != EDI_DPDK_ETHERTYPE)
            return 0;
        *body_len = len - EDI_DPDK_ETH_HEADER_BYTES;
        return EDI_DPDK_ETH_HEADER_BYTES;
    }
    if (type != ETHERTYPE_IPV4 || len < EDI_ENCAP_UDP_HEADER_BYTES)
        return 0;
    const uint8_t *ip = frame + EDI_DPDK_ETH_HEADER_BYTES;
    size_t room = len - EDI_DPDK_ETH_HEADER_BYTES;
    size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
    size_t total = edi_get_be16(ip + 2);
    if ((ip[0] >> 4) != 4 || ihl < IPV4_HEADER_BYTES || total > room ||
        total < ihl + UDP_HEADER_BYTES || ip[9] != IPPROTO_UDP_NUMBER ||
        (edi_get_be16(ip + 6) & 0x3fff) != 0 /* MF or an offset: a fragment */ ||
        memcmp(ip + 16, e->ip, 4) != 0 || ipv4_checksum(ip, ihl) != 0)
        return 0;
    const uint8_t *udp = ip + ihl;
    size_t udp_len = edi_get_be16(udp + 4);
    if (edi_get_be16(udp + 2) != e->port || udp_len < UDP_HEADER_BYTES ||
        udp_len > total - ihl)
        return 0;
    *body_len = udp_len - UDP_HEADER_BYTES;
    return EDI_DPDK_ETH_HEADER_BYTES + ihl + UDP_HEADER_BYTES;
}

#define ETHERTYPE_ARP 0x0806u
#define ARP_BYTES 28u /* Ethernet and IPv4: hardware 1, sizes 6 and 4 */

size_t edi_encap_arp_reply(const edi_encap *e, const uint8_t *frame, size_t len,
                           uint8_t out[EDI_ENCAP_ARP_REPLY_BYTES])
{
    if (!e->udp || len < EDI_DPDK_ETH_HEADER_BYTES + ARP_BYTES ||
        edi_get_be16(frame + 12) != ETHERTYPE_ARP)
        return 0;
    /* to everyone or to us, as the kernel's ARP takes them */
    static const uint8_t broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    if (memcmp(frame, broadcast, 6) != 0 && memcmp(frame, e->mac, 6) != 0)
        return 0;
    const uint8_t *a = frame + EDI_DPDK_ETH_HEADER_BYTES;
    if (edi_get_be16(a) != 1 || edi_get_be16(a + 2) != ETHERTYPE_IPV4 || a[4] != 6 ||
        a[5] != 4 || edi_get_be16(a + 6) != 1 /* a request */ ||
        memcmp(a + 24, e->ip, 4) != 0)
        return 0;
    memset(out, 0, EDI_ENCAP_ARP_REPLY_BYTES);
    memcpy(out, a + 8, 6); /* to the asker */
    memcpy(out + 6, e->mac, 6);
    edi_put_be16(out + 12, ETHERTYPE_ARP);
    uint8_t *r = out + EDI_DPDK_ETH_HEADER_BYTES;
    memcpy(r, a, 6);      /* hardware and protocol types and sizes */
    edi_put_be16(r + 6, 2); /* a reply */
    memcpy(r + 8, e->mac, 6);
    memcpy(r + 14, e->ip, 4);
    memcpy(r + 18, a + 8, 10); /* the asker's MAC and address */
    return EDI_ENCAP_ARP_REPLY_BYTES;
}

int edi_encap_parse_ipv4(const char *text, uint8_t ip[4])
{
    struct in_addr a;
    if (!text || inet_pton(AF_INET, text, &a) != 1)
        return edist_set_error(EDIST_EINVAL, "'%s' is not an IPv4 address",
                               text ? text : "");
    memcpy(ip, &a.s_addr, 4); /* network order: the wire's */
    return 0;
}

int edi_encap_parse_mac(const char *text, uint8_t mac[6])
{
    /* exactly xx:xx:xx:xx:xx:xx (scanf's %x takes signs and blanks too) */
    bool ok = text && strlen(text) == 17;
    for (int i = 0; ok && i < 6; i++) {
        int hi = edi_hex_digit(text[3 * i]), lo = edi_hex_digit(text[3 * i + 1]);
        ok = hi >= 0 && lo >= 0 && (i == 5 || text[3 * i + 2] == ':');
        if (ok)
            mac[i] = (uint8_t)(hi << 4 | lo);
    }
    if (!ok)
        return edist_set_error(EDIST_EINVAL, "'%s' is not a MAC address (xx:xx:xx:xx:xx:xx)",
                               text ? text : "");
    return 0;
}
