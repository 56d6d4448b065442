/* SPDX-License-Identifier: Apache-2.0 */
/* EPMD wire format: encoders against bytes written out by hand from the
 * protocol description, parsers on every truncation and on malformed
 * input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "control/epmd_proto.h"
#include "edist/error.h"

static void test_alive2_req_bytes(void **state)
{
    (void)state;
    const uint8_t extra[] = {9, 8};
    edi_epmd_node_fields f = {.port = 0x1234,
                              .node_type = 77,
                              .protocol = 0,
                              .highest_version = 6,
                              .lowest_version = 5,
                              .name = (const uint8_t *)"abc",
                              .name_len = 3,
                              .extra = extra,
                              .extra_len = 2};
    uint8_t buf[64];
    static const uint8_t want[] = {0, 18, 'x', 0x12, 0x34, 77,  0, 0, 6, 0,
                                   5, 0,  3,   'a',  'b',  'c', 0, 2, 9, 8};
    assert_int_equal(edi_epmd_encode_alive2_req(buf, sizeof buf, &f),
                     sizeof want);
    assert_memory_equal(buf, want, sizeof want);
    assert_int_equal(edi_epmd_encode_alive2_req(buf, sizeof want - 1, &f),
                     EDIST_ENOSPC);

    /* And it parses back. */
    size_t body;
    assert_int_equal(edi_epmd_frame_length(buf, sizeof want, &body), 0);
    assert_int_equal(body, 18);
    edi_epmd_request rq;
    assert_int_equal(edi_epmd_parse_request(buf + 2, body, &rq), 0);
    assert_int_equal(rq.type, EDI_EPMD_ALIVE2_REQ);
    assert_int_equal(rq.alive.port, 0x1234);
    assert_int_equal(rq.alive.node_type, 77);
    assert_int_equal(rq.alive.highest_version, 6);
    assert_int_equal(rq.alive.lowest_version, 5);
    assert_int_equal(rq.alive.name_len, 3);
    assert_memory_equal(rq.alive.name, "abc", 3);
    assert_int_equal(rq.alive.extra_len, 2);
    assert_memory_equal(rq.alive.extra, extra, 2);

    /* Every truncation of the body is malformed, never an overread. */
    for (size_t n = 1; n < body; n++)
        assert_int_equal(edi_epmd_parse_request(buf + 2, n, &rq), EDIST_EPROTO);
    /* Trailing bytes are ignored, as epmd does. */
    uint8_t longer[64];
    memcpy(longer, buf + 2, body);
    longer[body] = 0x55;
    assert_int_equal(edi_epmd_parse_request(longer, body + 1, &rq), 0);

    /* Limits on what we send. */
    f.name_len = 0;
    assert_int_equal(edi_epmd_encode_alive2_req(buf, sizeof buf, &f),
                     EDIST_EINVAL);
    f.name_len = 3;
    f.extra_len = EDI_EPMD_MAX_EXTRA_BYTES + 1;
    assert_int_equal(edi_epmd_encode_alive2_req(buf, sizeof buf, &f),
                     EDIST_EINVAL);
}

static void test_other_requests(void **state)
{
    (void)state;
    uint8_t buf[16];
    static const uint8_t pp[] = {0, 4, 'z', 'f', 'o', 'o'};
    assert_int_equal(
        edi_epmd_encode_port_please2_req(buf, sizeof buf, "foo", 3), sizeof pp);
    assert_memory_equal(buf, pp, sizeof pp);
    static const uint8_t names[] = {0, 1, 'n'};
    assert_int_equal(
        edi_epmd_encode_simple_req(buf, sizeof buf, EDI_EPMD_NAMES_REQ), 3);
    assert_memory_equal(buf, names, 3);
    assert_int_equal(
        edi_epmd_encode_simple_req(buf, sizeof buf, EDI_EPMD_ALIVE2_REQ),
        EDIST_EINVAL);
    static const uint8_t stop[] = {0, 3, 's', 'a', 'b'};
    assert_int_equal(edi_epmd_encode_stop_req(buf, sizeof buf, "ab", 2),
                     sizeof stop);
    assert_memory_equal(buf, stop, sizeof stop);

    edi_epmd_request rq;
    /* An old client's trailing NUL is dropped. */
    static const uint8_t pp_nul[] = {'z', 'f', 'o', 'o', 0};
    assert_int_equal(edi_epmd_parse_request(pp_nul, sizeof pp_nul, &rq), 0);
    assert_int_equal(rq.name_len, 3);
    static const uint8_t pp_only_nul[] = {'z', 0};
    assert_int_equal(edi_epmd_parse_request(pp_only_nul, 2, &rq), EDIST_EPROTO);
    static const uint8_t unknown[] = {'Q'};
    assert_int_equal(edi_epmd_parse_request(unknown, 1, &rq), EDIST_EBADTAG);
    assert_int_equal(edi_epmd_parse_request(unknown, 0, &rq), EDIST_EPROTO);
    static const uint8_t kill[] = {'k', 1, 2};
    assert_int_equal(edi_epmd_parse_request(kill, sizeof kill, &rq), 0);
    assert_int_equal(rq.type, EDI_EPMD_KILL_REQ);
}

static void test_frame_length(void **state)
{
    (void)state;
    size_t body = 0;
    static const uint8_t one[] = {0};
    assert_int_equal(edi_epmd_frame_length(one, 1, &body), EDIST_ETRUNC);
    static const uint8_t zero[] = {0, 0};
    assert_int_equal(edi_epmd_frame_length(zero, 2, &body), EDIST_EPROTO);
    static const uint8_t max[] = {0x0b, 0xf1};
    assert_int_equal(edi_epmd_frame_length(max, 2, &body), 0);
    assert_int_equal(body, EDI_EPMD_MAX_REQUEST_BYTES);
    static const uint8_t over[] = {0x0b, 0xf2};
    assert_int_equal(edi_epmd_frame_length(over, 2, &body), EDIST_EPROTO);
}

static void test_check_name(void **state)
{
    (void)state;
    assert_int_equal(edi_epmd_check_name((const uint8_t *)"node", 4), 0);
    assert_int_equal(
        edi_epmd_check_name((const uint8_t *)"\xc3\xa9t\xc3\xa9", 5), 0);
    assert_int_equal(
        edi_epmd_check_name((const uint8_t *)"\xf0\x9f\x98\x80", 4), 0);
    assert_int_equal(edi_epmd_check_name((const uint8_t *)"", 0), EDIST_EINVAL);
    assert_int_equal(edi_epmd_check_name((const uint8_t *)"a\0b", 3),
                     EDIST_EINVAL);
    /* Overlong, surrogate, beyond U+10FFFF, stray continuation, cut. */
    assert_int_equal(edi_epmd_check_name((const uint8_t *)"\xc0\xaf", 2),
                     EDIST_EINVAL);
    assert_int_equal(edi_epmd_check_name((const uint8_t *)"\xe0\x80\xaf", 3),
                     EDIST_EINVAL);
    assert_int_equal(edi_epmd_check_name((const uint8_t *)"\xed\xa0\x80", 3),
                     EDIST_EINVAL);
    assert_int_equal(
        edi_epmd_check_name((const uint8_t *)"\xf4\x90\x80\x80", 4),
        EDIST_EINVAL);
    assert_int_equal(edi_epmd_check_name((const uint8_t *)"\x80", 1),
                     EDIST_EINVAL);
    assert_int_equal(edi_epmd_check_name((const uint8_t *)"\xe2\x82", 2),
                     EDIST_EINVAL);
    /* 255 characters pass, 256 do not; 255 four-byte characters = 1020 bytes.
     */
    uint8_t name[1024];
    memset(name, 'a', sizeof name);
    assert_int_equal(edi_epmd_check_name(name, 255), 0);
    assert_int_equal(edi_epmd_check_name(name, 256), EDIST_EINVAL);
    for (int i = 0; i < 255; i++)
        memcpy(name + 4 * i, "\xf0\x9f\x98\x80", 4);
    assert_int_equal(edi_epmd_check_name(name, 1020), 0);
    assert_int_equal(edi_epmd_check_name(name, 1021), EDIST_EINVAL);
}

static void test_alive2_resp(void **state)
{
    (void)state;
    uint8_t buf[8];
    static const uint8_t x[] = {118, 0, 0x12, 0x34, 0x56, 0x78};
    assert_int_equal(
        edi_epmd_encode_alive2_resp(buf, sizeof buf, 1, 0, 0x12345678), 6);
    assert_memory_equal(buf, x, 6);
    static const uint8_t old[] = {121, 1, 0, 99};
    assert_int_equal(edi_epmd_encode_alive2_resp(buf, sizeof buf, 0, 1, 99), 4);
    assert_memory_equal(buf, old, 4);

    uint8_t result;
    uint32_t creation;
    size_t used;
    for (size_t n = 0; n < 6; n++)
        assert_int_equal(
            edi_epmd_parse_alive2_resp(x, n, &result, &creation, &used),
            EDIST_ETRUNC);
    assert_int_equal(
        edi_epmd_parse_alive2_resp(x, 6, &result, &creation, &used), 0);
    assert_int_equal(creation, 0x12345678);
    assert_int_equal(used, 6);
    assert_int_equal(
        edi_epmd_parse_alive2_resp(old, 4, &result, &creation, &used), 0);
    assert_int_equal(result, 1);
    assert_int_equal(creation, 99);
    static const uint8_t bad[] = {'w', 0};
    assert_int_equal(
        edi_epmd_parse_alive2_resp(bad, 2, &result, &creation, &used),
        EDIST_EPROTO);
}

static void test_port2_resp(void **state)
{
    (void)state;
    uint8_t buf[64];
    const uint8_t extra[] = {7};
    edi_epmd_node_fields f = {.port = 5555,
                              .node_type = 72,
                              .highest_version = 6,
                              .lowest_version = 6,
                              .name = (const uint8_t *)"n1",
                              .name_len = 2,
                              .extra = extra,
                              .extra_len = 1};
    static const uint8_t want[] = {119, 0, 0x15, 0xb3, 72,  0, 0, 6, 0,
                                   6,   0, 2,    'n',  '1', 0, 1, 7};
    int n = edi_epmd_encode_port2_resp(buf, sizeof buf, &f);
    assert_int_equal(n, sizeof want);
    assert_memory_equal(buf, want, sizeof want);

    edi_epmd_node_fields g;
    size_t used;
    for (size_t k = 0; k < sizeof want; k++)
        assert_int_equal(edi_epmd_parse_port2_resp(want, k, &g, &used),
                         EDIST_ETRUNC);
    assert_int_equal(edi_epmd_parse_port2_resp(want, sizeof want, &g, &used),
                     0);
    assert_int_equal(used, sizeof want);
    assert_int_equal(g.port, 5555);
    assert_int_equal(g.node_type, 72);
    assert_int_equal(g.name_len, 2);
    assert_memory_equal(g.name, "n1", 2);
    assert_int_equal(g.extra_len, 1);

    assert_int_equal(edi_epmd_encode_port2_resp(buf, sizeof buf, NULL), 2);
    assert_int_equal(edi_epmd_parse_port2_resp(buf, 2, &g, &used),
                     EDIST_ENOTFOUND);
    assert_int_equal(used, 2);

    /* A name length beyond the limit is refused before waiting for it. */
    uint8_t huge[14] = {119, 0, 0, 1, 77, 0, 0, 6, 0, 6, 0xff, 0xff};
    assert_int_equal(edi_epmd_parse_port2_resp(huge, sizeof huge, &g, &used),
                     EDIST_EPROTO);
}

static void test_names_lines(void **state)
{
    (void)state;
    uint8_t buf[64];
    int n = edi_epmd_encode_names_line(buf, sizeof buf, (const uint8_t *)"foo",
                                       3, 1234);
    assert_int_equal(n, 22);
    assert_memory_equal(buf, "name foo at port 1234\n", 22);
    n = edi_epmd_encode_names_line(buf, sizeof buf, (const uint8_t *)"z", 1, 0);
    assert_memory_equal(buf, "name z at port 0\n", (size_t)n);
    assert_int_equal(
        edi_epmd_encode_names_line(buf, 10, (const uint8_t *)"foo", 3, 1),
        EDIST_ENOSPC);

    static const char text[] =
        "name a b at port 7 at port 65535\nname x at port 65536\nbad\n";
    const uint8_t *p = (const uint8_t *)text;
    size_t len = sizeof text - 1, used;
    const uint8_t *name;
    size_t nl;
    uint16_t port;
    assert_int_equal(
        edi_epmd_parse_names_line(p, len, &name, &nl, &port, &used), 0);
    assert_int_equal(nl, 13); /* the last " at port " splits name and port */
    assert_memory_equal(name, "a b at port 7", 13);
    assert_int_equal(port, 65535);
    p += used, len -= used;
    assert_int_equal(
        edi_epmd_parse_names_line(p, len, &name, &nl, &port, &used),
        EDIST_EPROTO);
    p += used, len -= used;
    assert_int_equal(
        edi_epmd_parse_names_line(p, len, &name, &nl, &port, &used),
        EDIST_EPROTO);
    p += used, len -= used;
    assert_int_equal(len, 0);
    assert_int_equal(edi_epmd_parse_names_line((const uint8_t *)"name x", 6,
                                               &name, &nl, &port, &used),
                     EDIST_ETRUNC);
    uint32_t ep;
    static const uint8_t hdr[] = {0, 0, 0x11, 0x11};
    assert_int_equal(edi_epmd_parse_names_header(hdr, 3, &ep), EDIST_ETRUNC);
    assert_int_equal(edi_epmd_parse_names_header(hdr, 4, &ep), 0);
    assert_int_equal(ep, 4369);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alive2_req_bytes),
        cmocka_unit_test(test_other_requests),
        cmocka_unit_test(test_frame_length),
        cmocka_unit_test(test_check_name),
        cmocka_unit_test(test_alive2_resp),
        cmocka_unit_test(test_port2_resp),
        cmocka_unit_test(test_names_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
