/* SPDX-License-Identifier: Apache-2.0 */
/* The DPDK lane's wire framing (dataplane/dpdk/encap.h): what is written
 * is matched back; UDP/IPv4 headers carry the right lengths and checksum;
 * frames not for us, malformed or fragmented are refused; addresses of the
 * other framing are refused; ARP requests for our address are answered. (test_encap_kernel.sh checks the same frames
 * against the Linux kernel's own IPv4/UDP.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/bytes.h"
#include "dataplane/dpdk/encap.h"
#include "edist/error.h"

static const uint8_t MAC_A[6] = {0x02, 0, 0, 0, 0, 0xa};
static const uint8_t MAC_B[6] = {0x02, 0, 0, 0, 0, 0xb};

static void make(edi_encap *e, bool udp, const uint8_t mac[6], const char *ip,
                 uint16_t port)
{
    memset(e, 0, sizeof *e);
    e->udp = udp;
    memcpy(e->mac, mac, 6);
    if (udp) {
        assert_int_equal(edi_encap_parse_ipv4(ip, e->ip), 0);
        e->port = port;
    }
}

/* a's frame of n body bytes for b, written as the lane writes it */
static size_t frame_for(const edi_encap *a, const edi_encap *b, uint8_t *f,
                        size_t n, uint64_t flow)
{
    uint8_t addr[EDI_ENCAP_ADDR_MAX];
    size_t alen = edi_encap_addr(b, addr);
    edi_encap_peer p;
    assert_int_equal(edi_encap_peer_of(a, addr, alen, flow, &p), 0);
    size_t h = edi_encap_header_bytes(a);
    for (size_t i = 0; i < n; i++)
        f[h + i] = (uint8_t)(i * 7 + 1);
    edi_encap_write(a, &p, f, h + n);
    return h + n;
}

static uint16_t sum16(const uint8_t *p, size_t n)
{
    uint32_t s = 0;
    for (size_t i = 0; i < n; i += 2)
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
}

static void test_ethernet(void **state)
{
    (void)state;
    edi_encap a, b;
    make(&a, false, MAC_A, NULL, 0);
    make(&b, false, MAC_B, NULL, 0);
    uint8_t addr[EDI_ENCAP_ADDR_MAX];
    assert_int_equal(edi_encap_addr(&b, addr), 6);
    uint8_t f[200];
    size_t len = frame_for(&a, &b, f, 100, 1);
    assert_int_equal(len, 114);
    assert_memory_equal(f, MAC_B, 6);
    assert_memory_equal(f + 6, MAC_A, 6);
    assert_int_equal(edi_get_be16(f + 12), EDI_DPDK_ETHERTYPE);
    size_t body;
    assert_int_equal(edi_encap_match(&b, f, len, &body), 14);
    assert_int_equal(body, 100);
    f[13] ^= 1; /* another EtherType */
    assert_int_equal(edi_encap_match(&b, f, len, &body), 0);
    assert_int_equal(edi_encap_match(&b, f, 13, &body), 0);
}

static void test_udp_roundtrip(void **state)
{
    (void)state;
    edi_encap a, b;
    make(&a, true, MAC_A, "10.88.1.1", 4370);
    make(&b, true, MAC_B, "10.88.1.2", 5000);
    uint8_t addr[EDI_ENCAP_ADDR_MAX];
    assert_int_equal(edi_encap_addr(&b, addr), 12);
    assert_memory_equal(addr, MAC_B, 6);
    assert_memory_equal(addr + 6, "\x0a\x58\x01\x02", 4);
    assert_int_equal(edi_get_be16(addr + 10), 5000);
    uint8_t f[2000];
    size_t len = frame_for(&a, &b, f, 1000, 12345);
    assert_int_equal(len, 1042);
    const uint8_t *ip = f + 14, *udp = f + 34;
    assert_int_equal(edi_get_be16(f + 12), 0x0800);
    assert_int_equal(ip[0], 0x45);
    assert_int_equal(edi_get_be16(ip + 2), 1028); /* 20 + 8 + 1000 */
    assert_int_equal(ip[9], 17);
    assert_int_equal(sum16(ip, 20), 0xffff); /* a right checksum */
    assert_memory_equal(ip + 12, "\x0a\x58\x01\x01", 4);
    assert_memory_equal(ip + 16, "\x0a\x58\x01\x02", 4);
    uint16_t sport = edi_get_be16(udp);
    assert_true(sport >= 49152);
    assert_int_equal(edi_get_be16(udp + 2), 5000);
    assert_int_equal(edi_get_be16(udp + 4), 1008);
    size_t body;
    assert_int_equal(edi_encap_match(&b, f, len, &body), 42);
    assert_int_equal(body, 1000);
    /* Ethernet pads short frames: the datagram's length counts */
    len = frame_for(&a, &b, f, 4, 1);
    memset(f + len, 0, 60 - len);
    assert_int_equal(edi_encap_match(&b, f, 60, &body), 42);
    assert_int_equal(body, 4);
    /* another link, another source port (a NIC's hash spreads them) */
    frame_for(&a, &b, f, 4, 2);
    assert_int_not_equal(edi_get_be16(udp), sport);
}

/* b's view of a frame from a after fix(), the IPv4 checksum made right
 * again when asked */
static size_t match_after(void (*fix)(uint8_t *f), bool resum)
{
    edi_encap a, b;
    make(&a, true, MAC_A, "10.88.1.1", 4370);
    make(&b, true, MAC_B, "10.88.1.2", 4370);
    uint8_t f[200];
    size_t len = frame_for(&a, &b, f, 50, 1);
    fix(f);
    if (resum) {
        edi_put_be16(f + 24, 0);
        edi_put_be16(f + 24, (uint16_t)~sum16(f + 14, 20));
    }
    size_t body;
    return edi_encap_match(&b, f, len, &body);
}

static void fix_none(uint8_t *f) { (void)f; }
static void fix_bad_sum(uint8_t *f) { f[24] ^= 0x10; }
static void fix_other_ip(uint8_t *f) { f[33] = 9; }
static void fix_other_port(uint8_t *f) { f[37] ^= 1; }
static void fix_tcp(uint8_t *f) { f[23] = 6; }
static void fix_more_fragments(uint8_t *f) { f[20] |= 0x20; }
static void fix_fragment_offset(uint8_t *f) { f[21] = 1; }
static void fix_ipv6_version(uint8_t *f) { f[14] = 0x65; }
static void fix_short_ihl(uint8_t *f) { f[14] = 0x44; }
static void fix_total_long(uint8_t *f) { edi_put_be16(f + 16, 1500); }
static void fix_udp_long(uint8_t *f) { edi_put_be16(f + 38, 60); }
static void fix_udp_short(uint8_t *f) { edi_put_be16(f + 38, 7); }

static void test_udp_refused(void **state)
{
    (void)state;
    assert_int_equal(match_after(fix_none, false), 42);
    assert_int_equal(match_after(fix_bad_sum, false), 0);
    assert_int_equal(match_after(fix_other_ip, true), 0);
    assert_int_equal(match_after(fix_other_port, false), 0);
    assert_int_equal(match_after(fix_tcp, true), 0);
    assert_int_equal(match_after(fix_more_fragments, true), 0);
    assert_int_equal(match_after(fix_fragment_offset, true), 0);
    assert_int_equal(match_after(fix_ipv6_version, true), 0);
    assert_int_equal(match_after(fix_short_ihl, true), 0);
    assert_int_equal(match_after(fix_total_long, true), 0);
    assert_int_equal(match_after(fix_udp_long, false), 0);
    assert_int_equal(match_after(fix_udp_short, false), 0);
    /* our own EtherType is not ours with UDP framing */
    edi_encap e;
    make(&e, true, MAC_B, "10.88.1.2", 4370);
    uint8_t f[64] = {0};
    edi_put_be16(f + 12, EDI_DPDK_ETHERTYPE);
    size_t body;
    assert_int_equal(edi_encap_match(&e, f, sizeof f, &body), 0);
    assert_int_equal(edi_encap_match(&e, f, 41, &body), 0);
}

/* An IPv4 header with options (as a router may add) is taken: the body
 * starts after them. */
static void test_udp_ip_options(void **state)
{
    (void)state;
    edi_encap b;
    make(&b, true, MAC_B, "10.88.1.2", 4370);
    uint8_t f[100] = {0};
    edi_put_be16(f + 12, 0x0800);
    uint8_t *ip = f + 14;
    ip[0] = 0x46; /* 24 bytes */
    edi_put_be16(ip + 2, 24 + 8 + 10);
    ip[8] = 64;
    ip[9] = 17;
    memcpy(ip + 12, "\x0a\x58\x01\x01", 4);
    memcpy(ip + 16, "\x0a\x58\x01\x02", 4);
    ip[20] = 1; /* NOPs */
    ip[21] = 1;
    ip[22] = 1;
    ip[23] = 0;
    edi_put_be16(ip + 10, (uint16_t)~sum16(ip, 24));
    uint8_t *udp = ip + 24;
    edi_put_be16(udp, 50000);
    edi_put_be16(udp + 2, 4370);
    edi_put_be16(udp + 4, 18);
    size_t body;
    assert_int_equal(edi_encap_match(&b, f, 14 + 24 + 8 + 10, &body), 46);
    assert_int_equal(body, 10);
}

static void test_addresses(void **state)
{
    (void)state;
    edi_encap eth, udp;
    make(&eth, false, MAC_A, NULL, 0);
    make(&udp, true, MAC_A, "192.0.2.7", 4370);
    uint8_t a6[EDI_ENCAP_ADDR_MAX], a12[EDI_ENCAP_ADDR_MAX];
    edi_encap_addr(&eth, a6);
    edi_encap_addr(&udp, a12);
    edi_encap_peer p;
    /* the other framing's address: refused, the peer stays on TCP */
    assert_int_equal(edi_encap_peer_of(&udp, a6, 6, 1, &p), EDIST_EINVAL);
    assert_int_equal(edi_encap_peer_of(&eth, a12, 12, 1, &p), EDIST_EINVAL);
    assert_int_equal(edi_encap_peer_of(&eth, a6, 6, 1, &p), 0);
    assert_memory_equal(p.mac, MAC_A, 6);
    /* port 0 is no port */
    edi_put_be16(a12 + 10, 0);
    assert_int_equal(edi_encap_peer_of(&udp, a12, 12, 1, &p), EDIST_EINVAL);
    edi_put_be16(a12 + 10, 4370);
    /* through a router: its MAC for every peer */
    udp.via_gateway = true;
    assert_int_equal(edi_encap_parse_mac("02:aa:bb:cc:dd:ee", udp.gateway_mac), 0);
    assert_int_equal(edi_encap_peer_of(&udp, a12, 12, 1, &p), 0);
    assert_memory_equal(p.mac, "\x02\xaa\xbb\xcc\xdd\xee", 6);
    assert_memory_equal(p.ip, "\xc0\x00\x02\x07", 4);
    uint8_t ip[4], mac[6];
    assert_int_equal(edi_encap_parse_ipv4("10.0.0.256", ip), EDIST_EINVAL);
    assert_int_equal(edi_encap_parse_ipv4("10.0.0", ip), EDIST_EINVAL);
    assert_int_equal(edi_encap_parse_mac("02:aa:bb:cc:dd", mac), EDIST_EINVAL);
    assert_int_equal(edi_encap_parse_mac("02:aa:bb:cc:dd:eeX", mac), EDIST_EINVAL);
    assert_int_equal(edi_encap_parse_mac("2:aa:bb:cc:dd:ee", mac), EDIST_EINVAL);
    /* scanf's %x would take these: a sign, a blank */
    assert_int_equal(edi_encap_parse_mac("-1:-1:-1:-1:-1:-1", mac), EDIST_EINVAL);
    assert_int_equal(edi_encap_parse_mac(" 1:02:03:04:05:06", mac), EDIST_EINVAL);
    assert_int_equal(edi_encap_parse_mac("0A:0b:0c:0d:0e:0F", mac), 0);
    assert_memory_equal(mac, "\x0a\x0b\x0c\x0d\x0e\x0f", 6);
}

/* An ARP request for our address gets a reply to the asker; others,
 * replies and Ethernet framing get none. */
static void test_arp(void **state)
{
    (void)state;
    edi_encap e;
    make(&e, true, MAC_B, "10.88.1.2", 4370);
    uint8_t req[60] = {0};
    memset(req, 0xff, 6);
    memcpy(req + 6, MAC_A, 6);
    edi_put_be16(req + 12, 0x0806);
    uint8_t *a = req + 14;
    edi_put_be16(a, 1);
    edi_put_be16(a + 2, 0x0800);
    a[4] = 6;
    a[5] = 4;
    edi_put_be16(a + 6, 1);
    memcpy(a + 8, MAC_A, 6);
    memcpy(a + 14, "\x0a\x58\x01\x01", 4);
    memcpy(a + 24, "\x0a\x58\x01\x02", 4);
    uint8_t r[EDI_ENCAP_ARP_REPLY_BYTES];
    assert_int_equal(edi_encap_arp_reply(&e, req, sizeof req, r), 60);
    assert_memory_equal(r, MAC_A, 6);
    assert_memory_equal(r + 6, MAC_B, 6);
    assert_int_equal(edi_get_be16(r + 12), 0x0806);
    const uint8_t *p = r + 14;
    assert_memory_equal(p, "\x00\x01\x08\x00\x06\x04\x00\x02", 8);
    assert_memory_equal(p + 8, MAC_B, 6);
    assert_memory_equal(p + 14, "\x0a\x58\x01\x02", 4);
    assert_memory_equal(p + 18, MAC_A, 6);
    assert_memory_equal(p + 24, "\x0a\x58\x01\x01", 4);
    /* not for us, not a request, cut short, or no UDP framing: silence */
    a[27] = 3;
    assert_int_equal(edi_encap_arp_reply(&e, req, sizeof req, r), 0);
    a[27] = 2;
    edi_put_be16(a + 6, 2);
    assert_int_equal(edi_encap_arp_reply(&e, req, sizeof req, r), 0);
    edi_put_be16(a + 6, 1);
    assert_int_equal(edi_encap_arp_reply(&e, req, 41, r), 0);
    assert_int_equal(edi_encap_arp_reply(&e, req, 42, r), 60);
    /* unicast: to us, yes; to another station, no (as the kernel) */
    memcpy(req, MAC_B, 6);
    assert_int_equal(edi_encap_arp_reply(&e, req, sizeof req, r), 60);
    memcpy(req, MAC_A, 6);
    assert_int_equal(edi_encap_arp_reply(&e, req, sizeof req, r), 0);
    memset(req, 0xff, 6);
    e.udp = false;
    assert_int_equal(edi_encap_arp_reply(&e, req, sizeof req, r), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ethernet),
        cmocka_unit_test(test_udp_roundtrip),
        cmocka_unit_test(test_udp_refused),
        cmocka_unit_test(test_udp_ip_options),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_arp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
