/* SPDX-License-Identifier: Apache-2.0 */
/* The lane's framing (dataplane/dpdk/encap.h) on the command line, for
 * test_encap_kernel.sh, which checks it against the kernel's IPv4/UDP:
 *   test_encap_tool frame SRC_MAC DST_MAC SRC_IP DST_IP DST_PORT FLOW HEX
 *     prints, in hex, the UDP/IPv4 frame a lane at SRC_IP (port 4370)
 *     sends to the peer at DST_IP:DST_PORT carrying the bytes HEX;
 *   test_encap_tool match OUR_IP OUR_PORT HEX
 *     prints "ours HEADER BODY_HEX" if a lane at OUR_IP:OUR_PORT takes the
 *     frame HEX, else "not ours";
 *   test_encap_tool arp OUR_MAC OUR_IP HEX
 *     prints the lane's ARP reply to the frame HEX in hex, or "none".
 * Exit 0, or 2 for bad arguments. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/dpdk/encap.h"

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = strlen(s) / 2;
    if (n > cap || strlen(s) % 2)
        exit(2);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            exit(2);
        out[i] = (uint8_t)v;
    }
    return n;
}

static void hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
}

int main(int argc, char **argv)
{
    static uint8_t f[70000], body[70000];
    edi_encap e = {.udp = true};
    if (argc == 9 && !strcmp(argv[1], "frame")) {
        uint8_t dst_mac[6], dst_ip[4];
        if (edi_encap_parse_mac(argv[2], e.mac) || edi_encap_parse_mac(argv[3], dst_mac) ||
            edi_encap_parse_ipv4(argv[4], e.ip) || edi_encap_parse_ipv4(argv[5], dst_ip))
            return 2;
        e.port = EDI_ENCAP_UDP_PORT_DEFAULT;
        uint8_t addr[EDI_ENCAP_ADDR_MAX];
        memcpy(addr, dst_mac, 6);
        memcpy(addr + 6, dst_ip, 4);
        unsigned port = (unsigned)strtoul(argv[6], NULL, 10);
        addr[10] = (uint8_t)(port >> 8);
        addr[11] = (uint8_t)port;
        edi_encap_peer p;
        if (edi_encap_peer_of(&e, addr, sizeof addr, strtoull(argv[7], NULL, 10), &p))
            return 2;
        size_t h = edi_encap_header_bytes(&e);
        size_t n = unhex(argv[8], f + h, sizeof f - h);
        edi_encap_write(&e, &p, f, h + n);
        hex(f, h + n);
        printf("\n");
        return 0;
    }
    if (argc == 5 && !strcmp(argv[1], "match")) {
        if (edi_encap_parse_ipv4(argv[2], e.ip))
            return 2;
        e.port = (uint16_t)strtoul(argv[3], NULL, 10);
        size_t n = unhex(argv[4], f, sizeof f);
        size_t body_len;
        size_t h = edi_encap_match(&e, f, n, &body_len);
        if (h == 0) {
            printf("not ours\n");
            return 0;
        }
        memcpy(body, f + h, body_len);
        printf("ours %zu ", h);
        hex(body, body_len);
        printf("\n");
        return 0;
    }
    if (argc == 5 && !strcmp(argv[1], "arp")) {
        if (edi_encap_parse_mac(argv[2], e.mac) || edi_encap_parse_ipv4(argv[3], e.ip))
            return 2;
        size_t n = unhex(argv[4], f, sizeof f);
        uint8_t reply[EDI_ENCAP_ARP_REPLY_BYTES];
        size_t r = edi_encap_arp_reply(&e, f, n, reply);
        if (r == 0)
            printf("none\n");
        else {
            hex(reply, r);
            printf("\n");
        }
        return 0;
    }
    fprintf(stderr, "usage: see the top of test_encap_tool.c\n");
    return 2;
}
