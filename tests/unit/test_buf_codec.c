/* SPDX-License-Identifier: Apache-2.0 */
/* Buffers, encoder, decoder cursor and compression. Expected bytes come from
 * OTP 25: term_to_binary(T, [{minor_version, 2}]) with the 131 removed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "edist/term.h"

/* ---- reference encodings from erts ------------------------------------- */
static const uint8_t e_0[] = {97,0};
static const uint8_t e_255[] = {97,255};
static const uint8_t e_256[] = {98,0,0,1,0};
static const uint8_t e_m1[] = {98,255,255,255,255};
static const uint8_t e_i32max[] = {98,127,255,255,255};
static const uint8_t e_2p31[] = {110,4,0,0,0,0,128};
static const uint8_t e_i32min[] = {98,128,0,0,0};
static const uint8_t e_i32min_m1[] = {110,4,1,1,0,0,128};
static const uint8_t e_i64max[] = {110,8,0,255,255,255,255,255,255,255,127};
static const uint8_t e_i64min[] = {110,8,1,0,0,0,0,0,0,0,128};
static const uint8_t e_u64max[] = {110,8,0,255,255,255,255,255,255,255,255};
static const uint8_t e_2p64[] = {110,9,0,0,0,0,0,0,0,0,0,1};
static const uint8_t e_m2p64[] = {110,9,1,0,0,0,0,0,0,0,0,1};
static const uint8_t e_f1[] = {70,63,240,0,0,0,0,0,0};
static const uint8_t e_fm0[] = {70,128,0,0,0,0,0,0,0};
static const uint8_t e_f1e300[] = {70,126,55,228,60,136,0,117,156};
static const uint8_t e_atom_a[] = {119,1,97};
static const uint8_t e_atom_he[] = {119,3,104,195,169};
static const uint8_t e_atom_true[] = {119,4,116,114,117,101};
static const uint8_t e_tuple0[] = {104,0};
static const uint8_t e_tuple_a1[] = {104,2,119,1,97,97,1};
static const uint8_t e_nil[] = {106};
static const uint8_t e_str_abc[] = {107,0,3,97,98,99};
static const uint8_t e_improper[] = {108,0,0,0,2,97,1,97,2,97,3};
static const uint8_t e_list_mixed[] = {108,0,0,0,3,97,1,119,1,97,70,64,4,0,0,0,0,0,0,106};
static const uint8_t e_bin0[] = {109,0,0,0,0};
static const uint8_t e_bin12[] = {109,0,0,0,2,1,2};
static const uint8_t e_bits3[] = {77,0,0,0,1,3,224};
static const uint8_t e_bits9[] = {77,0,0,0,2,1,255,128};
static const uint8_t e_map1[] = {116,0,0,0,1,119,1,97,97,1};
static const uint8_t e_map0[] = {116,0,0,0,0};
static const uint8_t e_export[] = {113,119,5,108,105,115,116,115,119,3,109,97,112,97,2};
static const uint8_t e_nested[] = {104,3,119,2,111,107,108,0,0,0,2,104,2,119,1,120,109,0,
    0,0,2,104,105,116,0,0,0,1,119,1,107,106,106,98,255,255,255,251};
/* Node 'a@b': erts re-encodes these unchanged (checked with binary_to_term). */
static const uint8_t e_pid[] = {88,119,3,97,64,98,0,0,0,1,0,0,0,2,0,0,0,3};
static const uint8_t e_port[] = {89,119,3,97,64,98,0,0,0,5,0,0,0,3};
static const uint8_t e_v4port[] = {120,119,3,97,64,98,0,0,1,0,0,0,0,5,0,0,0,3};
static const uint8_t e_ref3[] = {90,0,3,119,3,97,64,98,0,0,0,3,0,0,0,1,0,0,0,2,0,0,0,3};
static const uint8_t e_ref5[] = {90,0,5,119,3,97,64,98,0,0,0,3,0,0,0,1,0,0,0,2,0,0,0,3,
    0,0,0,4,0,0,0,5};
/* Older forms erts still decodes (it re-encodes them as the ones above). */
static const uint8_t o_pid[] = {103,119,3,97,64,98,0,0,0,1,0,0,0,2,3};
static const uint8_t o_port[] = {102,119,3,97,64,98,0,0,0,5,3};
static const uint8_t o_newref[] = {114,0,3,119,3,97,64,98,3,0,0,0,1,0,0,0,2,0,0,0,3};
static const uint8_t o_ref[] = {101,119,3,97,64,98,0,0,0,1,3};
static const uint8_t o_atom[] = {100,0,3,97,64,98};
static const uint8_t o_float[] = {99,49,46,53,48,48,48,48,48,48,48,48,48,48,48,48,48,48,
    48,48,48,48,48,101,43,48,48,0,0,0,0,0};
/* h1fun:f(7) where f(X) -> fun() -> X end; and a fun closing over another. */
static const uint8_t e_fun1[] = {112,0,0,0,73,0,123,108,109,123,20,28,192,87,247,106,53,
    66,6,59,187,156,0,0,0,0,0,0,0,1,119,5,104,49,102,117,110,97,0,98,3,219,99,107,88,119,
    13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,9,0,0,0,0,0,0,0,0,97,7};
static const uint8_t e_fun_nested[] = {112,0,0,0,148,0,123,108,109,123,20,28,192,87,247,
    106,53,66,6,59,187,156,0,0,0,0,0,0,0,1,119,5,104,49,102,117,110,97,0,98,3,219,99,107,
    88,119,13,110,111,110,111,100,101,64,110,111,104,111,115,116,0,0,0,9,0,0,0,0,0,0,0,0,
    112,0,0,0,76,0,123,108,109,123,20,28,192,87,247,106,53,66,6,59,187,156,0,0,0,0,0,0,0,
    1,119,5,104,49,102,117,110,97,0,98,3,219,99,107,88,119,13,110,111,110,111,100,101,64,
    110,111,104,111,115,116,0,0,0,9,0,0,0,0,0,0,0,0,104,1,119,1,97};
/* term_to_binary(<<"a" x 30>>, [compressed]) */
static const uint8_t x_compressed[] = {131,80,0,0,0,35,120,156,203,101,96,96,144,75,196,
    11,0,194,221,11,234};

#define B(a) a, sizeof a

typedef struct sample {
    const uint8_t *bytes;
    size_t len;
} sample;

static const sample valid_samples[] = {
    {B(e_0)}, {B(e_256)}, {B(e_m1)}, {B(e_2p31)}, {B(e_i64min)}, {B(e_2p64)},
    {B(e_f1)}, {B(e_atom_a)}, {B(e_atom_he)}, {B(e_tuple_a1)}, {B(e_str_abc)},
    {B(e_improper)}, {B(e_list_mixed)}, {B(e_bin12)}, {B(e_bits3)}, {B(e_map1)},
    {B(e_export)}, {B(e_nested)}, {B(e_pid)}, {B(e_port)}, {B(e_v4port)},
    {B(e_ref3)}, {B(e_ref5)}, {B(o_pid)}, {B(o_port)}, {B(o_newref)}, {B(o_ref)},
    {B(o_atom)}, {B(o_float)}, {B(e_fun1)}, {B(e_fun_nested)},
};

static void expect_bytes(edist_buf *b, const uint8_t *exp, size_t n)
{
    assert_int_equal(edist_buf_error(b), 0);
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, exp, n);
    edist_buf_reset(b);
}

static edist_atom atom_of(const char *s)
{
    edist_atom a = {s, (uint32_t)strlen(s), 0};
    return a;
}

/* ---- buffers ----------------------------------------------------------- */

static void test_buf_growable(void **state)
{
    (void)state;
    edist_buf b;
    edist_buf_init(&b);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(edist_buf_append(&b, "xy", 2), 0);
    assert_int_equal(b.len, 20000);
    assert_true(b.cap >= b.len);
    assert_string_equal(edist_buf_cstr(&b) + 19996, "xyxy");
    edist_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(edist_buf_reserve(&b, 100000), 0);
    assert_true(b.cap - b.len >= 100000);
    edist_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(edist_enc_nil(&b), 0); /* usable after free */
    edist_buf_free(&b);
    /* a size nothing can hold is ENOMEM, and sticky */
    assert_int_equal(edist_buf_reserve(&b, SIZE_MAX), EDIST_ENOMEM);
    assert_int_equal(edist_enc_nil(&b), EDIST_ENOMEM);
    assert_null(edist_buf_cstr(&b));
    edist_buf_free(&b);
}

static void test_buf_fixed_overflow(void **state)
{
    (void)state;
    uint8_t mem[8];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    assert_int_equal(edist_enc_int(&b, 1000), 0); /* 5 bytes */
    assert_int_equal(edist_enc_int(&b, 1000), EDIST_ENOSPC);
    assert_int_equal(b.len, 5);
    /* sticky: even a 1-byte term now fails, and so does cstr */
    assert_int_equal(edist_enc_nil(&b), EDIST_ENOSPC);
    assert_int_equal(edist_buf_error(&b), EDIST_ENOSPC);
    assert_null(edist_buf_cstr(&b));
    edist_buf_reset(&b);
    assert_int_equal(edist_enc_nil(&b), 0);
    assert_ptr_equal(b.data, mem);
    assert_int_equal(edist_buf_append(&b, "1234567", 7), 0);
    assert_null(edist_buf_cstr(&b)); /* no room for the NUL */
    edist_buf_free(&b); /* caller memory: not freed */
    assert_ptr_equal(b.data, mem);
}

/* ---- encoder against erts ---------------------------------------------- */

static void test_encode_numbers(void **state)
{
    (void)state;
    edist_buf b;
    edist_buf_init(&b);
    edist_enc_int(&b, 0); expect_bytes(&b, B(e_0));
    edist_enc_int(&b, 255); expect_bytes(&b, B(e_255));
    edist_enc_int(&b, 256); expect_bytes(&b, B(e_256));
    edist_enc_int(&b, -1); expect_bytes(&b, B(e_m1));
    edist_enc_int(&b, INT32_MAX); expect_bytes(&b, B(e_i32max));
    edist_enc_int(&b, (int64_t)INT32_MAX + 1); expect_bytes(&b, B(e_2p31));
    edist_enc_int(&b, INT32_MIN); expect_bytes(&b, B(e_i32min));
    edist_enc_int(&b, (int64_t)INT32_MIN - 1); expect_bytes(&b, B(e_i32min_m1));
    edist_enc_int(&b, INT64_MAX); expect_bytes(&b, B(e_i64max));
    edist_enc_int(&b, INT64_MIN); expect_bytes(&b, B(e_i64min));
    edist_enc_uint(&b, UINT64_MAX); expect_bytes(&b, B(e_u64max));
    edist_enc_uint(&b, 255); expect_bytes(&b, B(e_255));
    const uint8_t m2p64[] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0}; /* high zeros dropped */
    edist_enc_big(&b, 0, m2p64, sizeof m2p64); expect_bytes(&b, B(e_2p64));
    edist_enc_big(&b, 1, m2p64, sizeof m2p64); expect_bytes(&b, B(e_m2p64));
    const uint8_t small[] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    edist_enc_big(&b, 1, small, sizeof small); expect_bytes(&b, B(e_m1));
    edist_enc_big(&b, 1, NULL, 0); expect_bytes(&b, B(e_0)); /* -0 is 0 */
    /* 2^2400: 301 magnitude bytes, LARGE_BIG */
    uint8_t mag[301] = {0};
    mag[300] = 1;
    assert_int_equal(edist_enc_big(&b, 0, mag, sizeof mag), 0);
    assert_int_equal(b.len, 6 + 301);
    const uint8_t head[] = {111, 0, 0, 1, 45, 0};
    assert_memory_equal(b.data, head, sizeof head);
    edist_buf_reset(&b);
    /* decimal text goes through big.c's parser */
    const uint8_t e_dec[] = {110,13,1,210,10,63,78,238,224,115,195,246,15,233,142,1};
    const char *dec = "-123456789012345678901234567890";
    edist_enc_int_decimal(&b, dec, strlen(dec)); expect_bytes(&b, B(e_dec));
    edist_enc_int_decimal(&b, "255", 3); expect_bytes(&b, B(e_255));
    assert_true(edist_enc_int_decimal(&b, "12x", 3) < 0);
    assert_true(edist_buf_error(&b) < 0);
    edist_buf_reset(&b);
    edist_enc_double(&b, 1.0); expect_bytes(&b, B(e_f1));
    edist_enc_double(&b, -0.0); expect_bytes(&b, B(e_fm0));
    edist_enc_double(&b, 1.0e300); expect_bytes(&b, B(e_f1e300));
    assert_int_equal(edist_enc_double(&b, NAN), EDIST_EINVAL);
    edist_buf_reset(&b);
    assert_int_equal(edist_enc_double(&b, INFINITY), EDIST_EINVAL);
    assert_int_equal(b.len, 0);
    edist_buf_free(&b);
}

static void test_encode_atoms(void **state)
{
    (void)state;
    edist_buf b;
    edist_buf_init(&b);
    edist_enc_atomz(&b, "a"); expect_bytes(&b, B(e_atom_a));
    edist_enc_atom(&b, "h\xc3\xa9", 3); expect_bytes(&b, B(e_atom_he));
    edist_enc_bool(&b, 1); expect_bytes(&b, B(e_atom_true));
    char big[1100];
    memset(big, 'x', 255);
    assert_int_equal(edist_enc_atom(&b, big, 255), 0);
    assert_int_equal(b.data[0], 119);
    assert_int_equal(b.data[1], 255);
    edist_buf_reset(&b);
    assert_int_equal(edist_enc_atom(&b, big, 256), EDIST_EBADTERM);
    edist_buf_reset(&b);
    /* 128 x U+00E9: 128 characters in 256 bytes -> ATOM_UTF8_EXT */
    for (int i = 0; i < 128; i++)
        memcpy(big + 2 * i, "\xc3\xa9", 2);
    assert_int_equal(edist_enc_atom(&b, big, 256), 0);
    const uint8_t head[] = {118, 1, 0, 0xc3, 0xa9};
    assert_memory_equal(b.data, head, sizeof head);
    assert_int_equal(b.len, 3 + 256);
    edist_buf_reset(&b);
    /* 255 x U+1F600 = 1020 bytes is the longest atom; one more is too many */
    for (int i = 0; i < 256; i++)
        memcpy(big + 4 * i, "\xf0\x9f\x98\x80", 4);
    assert_int_equal(edist_enc_atom(&b, big, 1020), 0);
    edist_buf_reset(&b);
    assert_int_equal(edist_enc_atom(&b, big, 1024), EDIST_EBADTERM);
    edist_buf_reset(&b);
    static const char *const bad_utf8[] = {
        "\xc0\x80", "\xe0\x80\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x80",
        "\xc3", "\xe2\x82", "\xff", "\xf8\x88\x80\x80\x80",
    };
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof *bad_utf8; i++) {
        edist_buf_reset(&b);
        assert_int_equal(edist_enc_atomz(&b, bad_utf8[i]), EDIST_EBADTERM);
    }
    edist_buf_free(&b);
}

static void test_encode_containers(void **state)
{
    (void)state;
    edist_buf b;
    edist_buf_init(&b);
    edist_enc_tuple(&b, 0); expect_bytes(&b, B(e_tuple0));
    edist_enc_tuple(&b, 2); edist_enc_atomz(&b, "a"); edist_enc_int(&b, 1);
    expect_bytes(&b, B(e_tuple_a1));
    edist_enc_tuple(&b, 256);
    const uint8_t large[] = {105, 0, 0, 1, 0};
    expect_bytes(&b, B(large));
    edist_enc_nil(&b); expect_bytes(&b, B(e_nil));
    edist_enc_string(&b, "abc", 3); expect_bytes(&b, B(e_str_abc));
    edist_enc_string(&b, "", 0); expect_bytes(&b, B(e_nil));
    edist_enc_list(&b, 2); edist_enc_int(&b, 1); edist_enc_int(&b, 2); edist_enc_int(&b, 3);
    expect_bytes(&b, B(e_improper));
    edist_enc_list(&b, 3); edist_enc_int(&b, 1); edist_enc_atomz(&b, "a");
    edist_enc_double(&b, 2.5); edist_enc_nil(&b);
    expect_bytes(&b, B(e_list_mixed));
    assert_int_equal(edist_enc_list(&b, 0), EDIST_EINVAL);
    edist_buf_reset(&b);
    edist_enc_binary(&b, "", 0); expect_bytes(&b, B(e_bin0));
    edist_enc_binary(&b, "\x01\x02", 2); expect_bytes(&b, B(e_bin12));
    edist_enc_bitstring(&b, "\xff", 1, 3); expect_bytes(&b, B(e_bits3)); /* low bits zeroed */
    edist_enc_bitstring(&b, "\xff\xff", 2, 1); expect_bytes(&b, B(e_bits9));
    edist_enc_bitstring(&b, "\x01\x02", 2, 8); expect_bytes(&b, B(e_bin12));
    assert_int_equal(edist_enc_bitstring(&b, "\x01", 1, 0), EDIST_EINVAL);
    edist_buf_reset(&b);
    assert_int_equal(edist_enc_bitstring(&b, "\x01", 1, 9), EDIST_EINVAL);
    edist_buf_reset(&b);
    assert_int_equal(edist_enc_bitstring(&b, "", 0, 3), EDIST_EINVAL);
    edist_buf_reset(&b);
    edist_enc_map(&b, 0); expect_bytes(&b, B(e_map0));
    edist_enc_map(&b, 1); edist_enc_atomz(&b, "a"); edist_enc_int(&b, 1);
    expect_bytes(&b, B(e_map1));
    edist_enc_export(&b, "lists", 5, "map", 3, 2); expect_bytes(&b, B(e_export));
    assert_int_equal(edist_enc_export(&b, "lists", 5, "map", 3, 256), EDIST_EINVAL);
    edist_buf_reset(&b);
    assert_int_equal(edist_enc_export(&b, "\xff", 1, "map", 3, 1), EDIST_EBADTERM);
    assert_int_equal(b.len, 0);
    edist_buf_reset(&b);
    /* {ok, [{x, <<"hi">>}, #{k => []}], -5} */
    edist_enc_tuple(&b, 3);
    edist_enc_atomz(&b, "ok");
    edist_enc_list(&b, 2);
    edist_enc_tuple(&b, 2); edist_enc_atomz(&b, "x"); edist_enc_binary(&b, "hi", 2);
    edist_enc_map(&b, 1); edist_enc_atomz(&b, "k"); edist_enc_nil(&b);
    edist_enc_nil(&b);
    edist_enc_int(&b, -5);
    expect_bytes(&b, B(e_nested));
    edist_enc_raw(&b, e_nested, sizeof e_nested); expect_bytes(&b, B(e_nested));
    edist_buf_free(&b);
}

static void test_encode_long_strings(void **state)
{
    (void)state;
    edist_buf b;
    edist_buf_init(&b);
    uint8_t *s = malloc(65536);
    assert_non_null(s);
    for (size_t i = 0; i < 65536; i++)
        s[i] = (uint8_t)i;
    assert_int_equal(edist_enc_string(&b, s, 65535), 0);
    assert_int_equal(b.len, 3 + 65535);
    assert_int_equal(b.data[0], 107);
    edist_cursor c;
    edist_cursor_init(&c, b.data, b.len);
    const uint8_t *v;
    size_t n;
    assert_int_equal(edist_dec_string(&c, &v, &n), 0);
    assert_int_equal(n, 65535);
    assert_memory_equal(v, s, n);
    edist_buf_reset(&b);
    /* 65536 elements: LIST_EXT of SMALL_INTEGER_EXT and a nil tail */
    assert_int_equal(edist_enc_string(&b, s, 65536), 0);
    assert_int_equal(b.len, 5 + 2 * 65536 + 1);
    edist_cursor_init(&c, b.data, b.len);
    uint32_t k;
    assert_int_equal(edist_dec_string(&c, &v, &n), EDIST_ETYPE);
    assert_int_equal(edist_dec_list(&c, &k), 0);
    assert_int_equal(k, 65536);
    for (uint32_t i = 0; i < k; i++) {
        uint64_t x;
        assert_int_equal(edist_dec_uint64(&c, &x), 0);
        assert_int_equal(x, s[i]);
    }
    assert_int_equal(edist_dec_nil(&c), 0);
    assert_int_equal(edist_cursor_remaining(&c), 0);
    free(s);
    edist_buf_free(&b);
}

static void test_encode_pid_port_ref(void **state)
{
    (void)state;
    edist_buf b;
    edist_buf_init(&b);
    edist_pid pid = {atom_of("a@b"), 1, 2, 3};
    edist_enc_pid(&b, &pid); expect_bytes(&b, B(e_pid));
    edist_port port = {atom_of("a@b"), 5, 3};
    edist_enc_port(&b, &port); expect_bytes(&b, B(e_port));
    port.id = (uint64_t)1 << 40 | 5;
    edist_enc_port(&b, &port); expect_bytes(&b, B(e_v4port));
    edist_ref r = {atom_of("a@b"), 3, 3, {1, 2, 3, 4, 5}};
    edist_enc_ref(&b, &r); expect_bytes(&b, B(e_ref3));
    r.len = 5;
    edist_enc_ref(&b, &r); expect_bytes(&b, B(e_ref5));
    r.len = 6;
    assert_int_equal(edist_enc_ref(&b, &r), EDIST_EINVAL);
    edist_buf_reset(&b);
    r.len = 0;
    assert_int_equal(edist_enc_ref(&b, &r), EDIST_EINVAL);
    edist_buf_reset(&b);
    /* a latin-1 node name from an old peer is re-encoded as UTF-8 */
    edist_pid lpid = {{"\xe9", 1, 1}, 1, 2, 3};
    assert_int_equal(edist_enc_pid(&b, &lpid), 0);
    const uint8_t lhead[] = {88, 119, 2, 0xc3, 0xa9};
    assert_memory_equal(b.data, lhead, sizeof lhead);
    edist_buf_free(&b);
}

/* ---- decoder ------------------------------------------------------------ */

static void test_decode_integers(void **state)
{
    (void)state;
    static const struct { const uint8_t *b; size_t n; int64_t v; } cases[] = {
        {B(e_0), 0}, {B(e_255), 255}, {B(e_256), 256}, {B(e_m1), -1},
        {B(e_i32max), INT32_MAX}, {B(e_2p31), (int64_t)INT32_MAX + 1},
        {B(e_i32min), INT32_MIN}, {B(e_i32min_m1), (int64_t)INT32_MIN - 1},
        {B(e_i64max), INT64_MAX}, {B(e_i64min), INT64_MIN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        edist_cursor c;
        edist_cursor_init(&c, cases[i].b, cases[i].n);
        int64_t v;
        assert_int_equal(edist_dec_int64(&c, &v), 0);
        assert_true(v == cases[i].v);
        assert_int_equal(c.pos, cases[i].n);
    }
    edist_cursor c;
    uint64_t u;
    int64_t v;
    edist_cursor_init(&c, B(e_u64max));
    assert_int_equal(edist_dec_int64(&c, &v), EDIST_ERANGE);
    assert_int_equal(c.pos, 0);
    assert_int_equal(edist_dec_uint64(&c, &u), 0);
    assert_true(u == UINT64_MAX);
    edist_cursor_init(&c, B(e_m1));
    assert_int_equal(edist_dec_uint64(&c, &u), EDIST_ERANGE);
    assert_int_equal(c.pos, 0);
    /* INTEGER_EXT: the fast path's edges, and one cut short */
    static const uint8_t e_i256[] = {98, 0, 0, 1, 0};
    static const uint8_t e_imax[] = {98, 0x7f, 0xff, 0xff, 0xff};
    static const uint8_t e_icut[] = {98, 0, 0, 1};
    edist_cursor_init(&c, B(e_i256));
    assert_int_equal(edist_dec_uint64(&c, &u), 0);
    assert_true(u == 256);
    assert_int_equal(c.pos, 5);
    edist_cursor_init(&c, B(e_imax));
    assert_int_equal(edist_dec_uint64(&c, &u), 0);
    assert_true(u == 0x7fffffffu);
    edist_cursor_init(&c, B(e_icut));
    assert_int_equal(edist_dec_uint64(&c, &u), EDIST_ETRUNC);
    assert_int_equal(c.pos, 0);
    edist_cursor_init(&c, B(e_2p64));
    assert_int_equal(edist_dec_uint64(&c, &u), EDIST_ERANGE);
    assert_int_equal(edist_dec_int64(&c, &v), EDIST_ERANGE);
    int neg;
    const uint8_t *mag;
    size_t n;
    uint8_t tmp[8];
    assert_int_equal(edist_dec_integer(&c, &neg, &mag, &n, tmp), 0);
    assert_int_equal(neg, 0);
    assert_int_equal(n, 9);
    assert_int_equal(mag[8], 1);
    edist_cursor_init(&c, B(e_i32min));
    assert_int_equal(edist_dec_integer(&c, &neg, &mag, &n, tmp), 0);
    assert_int_equal(neg, 1);
    assert_int_equal(n, 4);
    assert_ptr_equal(mag, tmp);
    assert_int_equal(mag[3], 0x80);
    /* non-canonical: SMALL_BIG -0 with zero bytes, and INT64 in LARGE_BIG */
    const uint8_t negzero[] = {110, 2, 1, 0, 0};
    edist_cursor_init(&c, B(negzero));
    assert_int_equal(edist_dec_integer(&c, &neg, &mag, &n, tmp), 0);
    assert_int_equal(neg, 0);
    assert_int_equal(n, 0);
    edist_cursor_init(&c, B(negzero));
    assert_int_equal(edist_dec_int64(&c, &v), 0);
    assert_true(v == 0);
    const uint8_t large7[] = {111, 0, 0, 0, 2, 1, 7, 0};
    edist_cursor_init(&c, B(large7));
    assert_int_equal(edist_dec_int64(&c, &v), 0);
    assert_true(v == -7);
    /* round trip of extremes through the encoder */
    const int64_t ext[] = {INT64_MIN, INT64_MIN + 1, -2147483649LL, INT32_MIN, -256,
                           -1, 0, 1, 255, 256, INT32_MAX, 2147483648LL, INT64_MAX};
    edist_buf b;
    edist_buf_init(&b);
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
        edist_enc_int(&b, ext[i]);
    edist_enc_uint(&b, UINT64_MAX);
    edist_cursor_init(&c, b.data, b.len);
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
        assert_int_equal(edist_dec_int64(&c, &v), 0);
        assert_true(v == ext[i]);
    }
    assert_int_equal(edist_dec_uint64(&c, &u), 0);
    assert_true(u == UINT64_MAX);
    edist_buf_free(&b);
}

static void test_decode_floats(void **state)
{
    (void)state;
    edist_cursor c;
    double d;
    edist_cursor_init(&c, B(e_fm0));
    assert_int_equal(edist_dec_double(&c, &d), 0);
    assert_true(d == 0.0 && signbit(d));
    edist_cursor_init(&c, B(e_f1e300));
    assert_int_equal(edist_dec_double(&c, &d), 0);
    assert_true(d == 1.0e300);
    edist_cursor_init(&c, B(o_float));
    assert_int_equal(edist_dec_double(&c, &d), 0);
    assert_true(d == 1.5);
    const uint8_t nan[] = {70, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0};
    const uint8_t inf[] = {70, 0xff, 0xf0, 0, 0, 0, 0, 0, 0};
    uint8_t old_inf[32] = {99, 'i', 'n', 'f'};
    uint8_t old_junk[32] = {99, 'x'};
    const sample bad[] = {{B(nan)}, {B(inf)}, {B(old_inf)}, {B(old_junk)}};
    for (size_t i = 0; i < 4; i++) {
        edist_cursor_init(&c, bad[i].bytes, bad[i].len);
        assert_int_equal(edist_dec_double(&c, &d), EDIST_EBADTERM);
        assert_int_equal(c.pos, 0);
        assert_int_equal(edist_skip(&c), EDIST_EBADTERM);
        assert_int_equal(edist_term_validate(bad[i].bytes, bad[i].len, NULL),
                         EDIST_EBADTERM);
    }
    edist_cursor_init(&c, B(e_0));
    assert_int_equal(edist_dec_double(&c, &d), EDIST_ETYPE);
}

static void test_decode_atoms(void **state)
{
    (void)state;
    edist_cursor c;
    edist_atom a;
    char out[16];
    edist_cursor_init(&c, B(e_atom_he));
    assert_int_equal(edist_dec_atom(&c, &a), 0);
    assert_int_equal(a.len, 3);
    assert_int_equal(a.latin1, 0);
    assert_true(edist_atom_eq(&a, "h\xc3\xa9"));
    assert_false(edist_atom_eq(&a, "h"));
    /* latin-1 ATOM_EXT 'hé' and SMALL_ATOM_EXT */
    const uint8_t lat[] = {100, 0, 2, 'h', 0xe9};
    const uint8_t slat[] = {115, 1, 'z'};
    edist_cursor_init(&c, B(lat));
    assert_int_equal(edist_dec_atom(&c, &a), 0);
    assert_int_equal(a.latin1, 1);
    assert_true(edist_atom_eq(&a, "h\xc3\xa9"));
    assert_false(edist_atom_eq(&a, "h\xc3"));
    assert_int_equal(edist_atom_to_utf8(&a, out, sizeof out), 3);
    assert_string_equal(out, "h\xc3\xa9");
    assert_int_equal(edist_atom_to_utf8(&a, out, 3), EDIST_ENOSPC);
    edist_cursor_init(&c, B(lat));
    assert_int_equal(edist_dec_atom_copy(&c, out, 3), EDIST_ENOSPC);
    assert_int_equal(c.pos, 0);
    assert_int_equal(edist_dec_atom_copy(&c, out, 4), 0);
    assert_string_equal(out, "h\xc3\xa9");
    edist_cursor_init(&c, B(slat));
    assert_int_equal(edist_dec_atom_copy(&c, out, sizeof out), 0);
    assert_string_equal(out, "z");
    /* booleans */
    edist_cursor_init(&c, B(e_atom_true));
    assert_int_equal(edist_dec_bool(&c), 1);
    edist_cursor_init(&c, B(e_atom_a));
    assert_int_equal(edist_dec_bool(&c), EDIST_ETYPE);
    assert_int_equal(c.pos, 0);
    /* round trip of long and unicode atoms */
    edist_buf b;
    edist_buf_init(&b);
    char big[1020];
    memset(big, 'q', 255);
    edist_enc_atom(&b, big, 255);
    for (int i = 0; i < 255; i++)
        memcpy(big + 4 * i, "\xf0\x9f\x98\x80", 4);
    edist_enc_atom(&b, big, 1020);
    edist_cursor_init(&c, b.data, b.len);
    assert_int_equal(edist_dec_atom(&c, &a), 0);
    assert_int_equal(a.len, 255);
    assert_int_equal(edist_dec_atom(&c, &a), 0);
    assert_int_equal(a.len, 1020);
    assert_memory_equal(a.ptr, big, 1020);
    edist_buf_free(&b);
    /* malformed: bad UTF-8, 256 characters, latin-1 over 255 bytes */
    const uint8_t bad1[] = {119, 2, 0xc0, 0x80};
    const uint8_t bad2[] = {118, 0, 3, 0xed, 0xa0, 0x80};
    const uint8_t bad3[] = {119, 1, 0x80};
    uint8_t bad4[3 + 256] = {118, 1, 0};
    memset(bad4 + 3, 'x', 256);
    uint8_t bad5[3 + 256] = {100, 1, 0};
    memset(bad5 + 3, 'x', 256);
    const sample bad[] = {{B(bad1)}, {B(bad2)}, {B(bad3)}, {B(bad4)}, {B(bad5)}};
    for (size_t i = 0; i < 5; i++) {
        edist_cursor_init(&c, bad[i].bytes, bad[i].len);
        assert_int_equal(edist_dec_atom(&c, &a), EDIST_EBADTERM);
        assert_int_equal(c.pos, 0);
        assert_int_equal(edist_skip(&c), EDIST_EBADTERM);
    }
    edist_cursor_init(&c, B(bad1));
    edist_dec_atom(&c, &a);
    assert_int_equal(c.err_offset, 2);
    assert_non_null(strstr(edist_last_error(), "offset 2"));
}

static void test_decode_containers(void **state)
{
    (void)state;
    edist_cursor c;
    uint32_t n;
    int64_t v;
    edist_atom a;
    const uint8_t *p;
    size_t len;
    unsigned bits;
    edist_cursor_init(&c, B(e_nested));
    assert_int_equal(edist_dec_tuple(&c, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(edist_dec_atom(&c, &a), 0);
    assert_true(edist_atom_eq(&a, "ok"));
    assert_int_equal(edist_dec_list(&c, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(edist_dec_tuple(&c, &n), 0);
    assert_int_equal(edist_dec_atom(&c, &a), 0);
    assert_int_equal(edist_dec_binary(&c, &p, &len), 0);
    assert_int_equal(len, 2);
    assert_memory_equal(p, "hi", 2);
    assert_int_equal(edist_dec_map(&c, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(edist_dec_atom(&c, &a), 0);
    assert_int_equal(edist_dec_list(&c, &n), 0); /* [] as a list of 0 */
    assert_int_equal(n, 0);
    assert_int_equal(edist_dec_nil(&c), 0); /* the tail */
    assert_int_equal(edist_dec_int64(&c, &v), 0);
    assert_true(v == -5);
    assert_int_equal(edist_cursor_remaining(&c), 0);
    assert_int_equal(edist_dec_nil(&c), EDIST_ETRUNC);
    /* bit strings */
    edist_cursor_init(&c, B(e_bits9));
    assert_int_equal(edist_dec_binary(&c, &p, &len), EDIST_ETYPE);
    assert_int_equal(edist_dec_bitstring(&c, &p, &len, &bits), 0);
    assert_int_equal(len, 2);
    assert_int_equal(bits, 1);
    edist_cursor_init(&c, B(e_bin0));
    assert_int_equal(edist_dec_bitstring(&c, &p, &len, &bits), 0);
    assert_int_equal(len, 0);
    assert_int_equal(bits, 8);
    edist_buf b;
    edist_buf_init(&b);
    for (unsigned k = 1; k <= 7; k++)
        edist_enc_bitstring(&b, "\xab\xff", 2, k);
    edist_cursor_init(&c, b.data, b.len);
    for (unsigned k = 1; k <= 7; k++) {
        assert_int_equal(edist_dec_bitstring(&c, &p, &len, &bits), 0);
        assert_int_equal(bits, k);
        assert_int_equal(p[1], (uint8_t)(0xff00u >> k));
    }
    edist_buf_free(&b);
    const uint8_t bits0[] = {77, 0, 0, 0, 1, 0, 5};
    const uint8_t bits9[] = {77, 0, 0, 0, 1, 9, 5};
    const uint8_t bits_empty[] = {77, 0, 0, 0, 0, 3};
    const sample bad[] = {{B(bits0)}, {B(bits9)}, {B(bits_empty)}};
    for (size_t i = 0; i < 3; i++) {
        edist_cursor_init(&c, bad[i].bytes, bad[i].len);
        assert_int_equal(edist_dec_bitstring(&c, &p, &len, &bits), EDIST_EBADTERM);
        assert_int_equal(edist_skip(&c), EDIST_EBADTERM);
        assert_int_equal(c.err_offset, 5);
    }
    /* erts reads a LIST_EXT of 0 elements as its tail alone, but our *n = 0
     * means "no tail follows": refused everywhere, consistently */
    const uint8_t list0[] = {108, 0, 0, 0, 0, 97, 1};
    assert_int_equal(edist_term_validate(B(list0), NULL), EDIST_EBADTERM);
    edist_cursor_init(&c, B(list0));
    assert_int_equal(edist_dec_list(&c, &n), EDIST_EBADTERM);
    assert_int_equal(c.pos, 0);
    /* STRING_EXT is not a LIST_EXT header */
    edist_cursor_init(&c, B(e_str_abc));
    assert_int_equal(edist_dec_list(&c, &n), EDIST_ETYPE);
}

static void test_decode_pid_port_ref_fun(void **state)
{
    (void)state;
    edist_cursor c;
    edist_pid pid;
    edist_port port;
    edist_ref r;
    const sample pids[] = {{B(e_pid)}, {B(o_pid)}};
    for (size_t i = 0; i < 2; i++) {
        edist_cursor_init(&c, pids[i].bytes, pids[i].len);
        assert_int_equal(edist_dec_pid(&c, &pid), 0);
        assert_true(edist_atom_eq(&pid.node, "a@b"));
        assert_int_equal(pid.id, 1);
        assert_int_equal(pid.serial, 2);
        assert_int_equal(pid.creation, 3);
        assert_int_equal(edist_cursor_remaining(&c), 0);
    }
    const sample ports[] = {{B(e_port)}, {B(o_port)}, {B(e_v4port)}};
    for (size_t i = 0; i < 3; i++) {
        edist_cursor_init(&c, ports[i].bytes, ports[i].len);
        assert_int_equal(edist_dec_port(&c, &port), 0);
        assert_true(port.id == (i == 2 ? ((uint64_t)1 << 40 | 5) : 5));
        assert_int_equal(port.creation, 3);
    }
    const sample refs[] = {{B(e_ref3)}, {B(o_newref)}, {B(o_ref)}, {B(e_ref5)}};
    const uint32_t words[] = {3, 3, 1, 5};
    for (size_t i = 0; i < 4; i++) {
        edist_cursor_init(&c, refs[i].bytes, refs[i].len);
        assert_int_equal(edist_dec_ref(&c, &r), 0);
        assert_int_equal(r.len, words[i]);
        assert_int_equal(r.creation, 3);
        assert_int_equal(r.ids[0], 1);
        assert_int_equal(r.ids[words[i] - 1], words[i]);
    }
    /* re-encoding old forms gives erts's modern forms */
    edist_buf b;
    edist_buf_init(&b);
    edist_cursor_init(&c, B(o_newref));
    edist_dec_ref(&c, &r);
    edist_enc_ref(&b, &r);
    expect_bytes(&b, B(e_ref3));
    edist_buf_free(&b);
    uint8_t ref6[sizeof e_ref5 + 4];
    memcpy(ref6, e_ref5, sizeof e_ref5);
    ref6[2] = 6;
    edist_cursor_init(&c, B(ref6));
    assert_int_equal(edist_dec_ref(&c, &r), EDIST_EBADTERM);
    uint8_t ref0[sizeof e_ref3];
    memcpy(ref0, e_ref3, sizeof e_ref3);
    ref0[2] = 0;
    edist_cursor_init(&c, B(ref0));
    assert_int_equal(edist_skip(&c), EDIST_EBADTERM);
    /* export and funs */
    edist_export x;
    edist_cursor_init(&c, B(e_export));
    assert_int_equal(edist_dec_export(&c, &x), 0);
    assert_true(edist_atom_eq(&x.module, "lists"));
    assert_true(edist_atom_eq(&x.function, "map"));
    assert_int_equal(x.arity, 2);
    edist_fun f;
    edist_cursor_init(&c, B(e_fun1));
    assert_int_equal(edist_dec_fun(&c, &f), 0);
    assert_ptr_equal(f.bytes, e_fun1);
    assert_int_equal(f.len, sizeof e_fun1);
    assert_true(edist_atom_eq(&f.module, "h1fun"));
    assert_int_equal(f.num_free, 1);
    assert_int_equal(f.arity, 0);
    assert_true(f.old_index == 0);
    assert_true(f.old_uniq == 64709483);
    assert_int_equal(edist_cursor_remaining(&c), 0);
    edist_cursor_init(&c, B(e_fun_nested));
    assert_int_equal(edist_dec_fun(&c, &f), 0);
    edist_term_info info;
    edist_cursor_init(&c, B(e_fun_nested));
    assert_int_equal(edist_peek(&c, &info), 0);
    assert_int_equal(info.type, EDIST_TYPE_FUN);
    /* a Size one byte off either way no longer matches the contents */
    uint8_t fun_bad[sizeof e_fun_nested + 1];
    memcpy(fun_bad, e_fun_nested, sizeof e_fun_nested);
    fun_bad[sizeof e_fun_nested] = 106;
    for (int delta = -1; delta <= 1; delta += 2) {
        fun_bad[4] = (uint8_t)(e_fun_nested[4] + delta);
        edist_cursor_init(&c, B(fun_bad));
        assert_true(edist_dec_fun(&c, &f) < 0);
        assert_true(edist_skip(&c) < 0);
        assert_int_equal(c.pos, 0);
    }
    /* the inner fun's size is wrong */
    memcpy(fun_bad, e_fun_nested, sizeof e_fun_nested);
    fun_bad[72 + 4] -= 1;
    assert_true(edist_term_validate(fun_bad, sizeof e_fun_nested, NULL) < 0);
}

static void test_peek_and_term_view(void **state)
{
    (void)state;
    static const struct { const uint8_t *b; size_t n; edist_type t; uint64_t count; } cases[] = {
        {B(e_255), EDIST_TYPE_INTEGER, 1}, {B(e_2p64), EDIST_TYPE_INTEGER, 9},
        {B(e_f1), EDIST_TYPE_FLOAT, 0}, {B(e_atom_he), EDIST_TYPE_ATOM, 3},
        {B(e_tuple_a1), EDIST_TYPE_TUPLE, 2}, {B(e_map1), EDIST_TYPE_MAP, 1},
        {B(e_nil), EDIST_TYPE_NIL, 0}, {B(e_str_abc), EDIST_TYPE_LIST, 3},
        {B(e_improper), EDIST_TYPE_LIST, 2}, {B(e_bin12), EDIST_TYPE_BINARY, 2},
        {B(e_ref5), EDIST_TYPE_REF, 5}, {B(e_pid), EDIST_TYPE_PID, 0},
        {B(e_v4port), EDIST_TYPE_PORT, 0}, {B(e_export), EDIST_TYPE_FUN, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        edist_cursor c;
        edist_term_info info;
        edist_cursor_init(&c, cases[i].b, cases[i].n);
        assert_int_equal(edist_peek(&c, &info), 0);
        assert_int_equal(info.type, cases[i].t);
        assert_int_equal(info.tag, cases[i].b[0]);
        assert_int_equal(info.count, cases[i].count);
        assert_int_equal(c.pos, 0);
    }
    edist_cursor c;
    edist_term_view v;
    edist_term_info info;
    uint32_t n;
    edist_cursor_init(&c, B(e_nested));
    edist_dec_tuple(&c, &n);
    edist_skip(&c);
    assert_int_equal(edist_dec_term(&c, &v), 0);
    assert_ptr_equal(v.ptr, e_nested + 6);
    assert_int_equal(v.len, sizeof e_nested - 6 - 5);
    const uint8_t trunc[] = {108, 0};
    edist_cursor_init(&c, B(trunc));
    assert_int_equal(edist_peek(&c, &info), EDIST_ETRUNC);
    const uint8_t unknown[] = {0};
    edist_cursor_init(&c, B(unknown));
    assert_int_equal(edist_peek(&c, &info), EDIST_EBADTAG);
}

/* ---- malformed input ----------------------------------------------------- */

static void test_truncation_every_prefix(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof valid_samples / sizeof *valid_samples; i++) {
        const sample *s = &valid_samples[i];
        assert_int_equal(edist_term_validate(s->bytes, s->len, NULL), 0);
        for (size_t k = 0; k < s->len; k++) {
            /* a copy of exactly k bytes, so ASan catches any over-read */
            uint8_t *cp = malloc(k ? k : 1);
            assert_non_null(cp);
            memcpy(cp, s->bytes, k);
            size_t off = SIZE_MAX;
            assert_true(edist_term_validate(cp, k, &off) < 0);
            assert_true(off <= k);
            edist_cursor c;
            edist_cursor_init(&c, cp, k);
            assert_true(edist_skip(&c) < 0);
            assert_int_equal(c.pos, 0);
            assert_true(c.err_offset <= k);
            free(cp);
        }
        /* trailing bytes make it not one term */
        uint8_t *more = malloc(s->len + 1);
        assert_non_null(more);
        memcpy(more, s->bytes, s->len);
        more[s->len] = 106;
        size_t off = 0;
        assert_int_equal(edist_term_validate(more, s->len + 1, &off), EDIST_EBADTERM);
        assert_int_equal(off, s->len);
        free(more);
    }
}

static void test_bad_tags(void **state)
{
    (void)state;
    const uint8_t tags[] = {0, 1, 69, 80, 121, 131, 255};
    for (size_t i = 0; i < sizeof tags; i++) {
        uint8_t t[4] = {tags[i], 0, 0, 0};
        edist_cursor c;
        edist_cursor_init(&c, t, sizeof t);
        assert_int_equal(edist_skip(&c), EDIST_EBADTAG);
        int64_t v;
        assert_int_equal(edist_dec_int64(&c, &v), EDIST_EBADTAG);
        assert_int_equal(c.err_offset, 0);
    }
    const uint8_t cache[] = {82, 0};
    edist_cursor c;
    edist_cursor_init(&c, B(cache));
    assert_int_equal(edist_skip(&c), EDIST_EUNSUPPORTED);
    /* a tag inside a container reports its own offset */
    const uint8_t inner[] = {104, 2, 97, 1, 200};
    edist_cursor_init(&c, B(inner));
    assert_int_equal(edist_skip(&c), EDIST_EBADTAG);
    assert_int_equal(c.err_offset, 4);
    assert_int_equal(c.pos, 0);
    /* wrong type: ETYPE, not advanced */
    uint32_t n;
    edist_cursor_init(&c, B(e_atom_a));
    assert_int_equal(edist_dec_tuple(&c, &n), EDIST_ETYPE);
    assert_int_equal(edist_dec_map(&c, &n), EDIST_ETYPE);
    assert_int_equal(c.pos, 0);
}

static void test_huge_counts(void **state)
{
    (void)state;
    const uint8_t list[] = {108, 255, 255, 255, 255, 97, 1, 97, 1, 106};
    const uint8_t tuple[] = {105, 255, 255, 255, 255, 97, 1};
    const uint8_t map[] = {116, 128, 0, 0, 0, 97, 1, 97, 1};
    const uint8_t bin[] = {109, 255, 255, 255, 255, 1, 2};
    const uint8_t big[] = {111, 255, 255, 255, 255, 0, 1};
    const uint8_t str[] = {107, 255, 255, 1};
    const uint8_t atom[] = {118, 255, 255, 'a'};
    const uint8_t stuple[] = {104, 3, 97, 1, 97};
    const uint8_t fun[] = {112, 255, 255, 255, 255, 0};
    const sample bad[] = {{B(list)}, {B(tuple)}, {B(map)}, {B(bin)}, {B(big)},
                          {B(str)}, {B(atom)}, {B(stuple)}, {B(fun)}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        edist_cursor c;
        edist_cursor_init(&c, bad[i].bytes, bad[i].len);
        assert_int_equal(edist_skip(&c), EDIST_ETRUNC);
        assert_int_equal(c.pos, 0);
    }
    edist_cursor c;
    uint32_t n;
    edist_cursor_init(&c, B(list));
    assert_int_equal(edist_dec_list(&c, &n), EDIST_ETRUNC);
    assert_int_equal(c.err_offset, 0);
    edist_cursor_init(&c, B(tuple));
    assert_int_equal(edist_dec_tuple(&c, &n), EDIST_ETRUNC);
    edist_cursor_init(&c, B(map));
    assert_int_equal(edist_dec_map(&c, &n), EDIST_ETRUNC);
    const uint8_t *p;
    size_t len;
    edist_cursor_init(&c, B(bin));
    assert_int_equal(edist_dec_binary(&c, &p, &len), EDIST_ETRUNC);
}

/* ---- nesting without stack ---------------------------------------------- */

#define DEEP_LEVELS 200000

static void *deep_walk(void *arg)
{
    const edist_buf *b = arg;
    intptr_t ok = 1;
    ok &= edist_term_validate(b->data, b->len, NULL) == 0;
    edist_cursor c;
    edist_cursor_init(&c, b->data, b->len);
    ok &= edist_skip(&c) == 0 && c.pos == b->len;
    /* cut short: must fail, not crash */
    ok &= edist_term_validate(b->data, b->len - 1, NULL) == EDIST_ETRUNC;
    return (void *)ok;
}

static void run_on_small_stack(edist_buf *b)
{
    pthread_attr_t attr;
    pthread_t th;
    void *ok = NULL;
    assert_int_equal(pthread_attr_init(&attr), 0);
    /* 64 KiB: far too little for one frame per level of 200,000 */
    assert_int_equal(pthread_attr_setstacksize(&attr, 64 * 1024), 0);
    assert_int_equal(pthread_create(&th, &attr, deep_walk, b), 0);
    assert_int_equal(pthread_join(th, &ok), 0);
    pthread_attr_destroy(&attr);
    assert_true((intptr_t)ok == 1);
}

static void test_deep_nesting(void **state)
{
    (void)state;
    edist_buf b;
    edist_buf_init(&b);
    /* [[[...[]...]]] as LIST_EXT heads */
    for (int i = 0; i < DEEP_LEVELS; i++)
        edist_enc_list(&b, 1);
    edist_enc_nil(&b);
    for (int i = 0; i < DEEP_LEVELS; i++)
        edist_enc_nil(&b);
    assert_int_equal(edist_buf_error(&b), 0);
    run_on_small_stack(&b);
    edist_buf_reset(&b);
    /* {{{...{a, 1}...}, 2}, 3} mixed tuples and maps */
    for (int i = 0; i < DEEP_LEVELS; i++) {
        if (i % 2)
            edist_enc_tuple(&b, 2);
        else {
            edist_enc_map(&b, 1);
            edist_enc_int(&b, i);
        }
    }
    edist_enc_atomz(&b, "a");
    for (int i = 0; i < DEEP_LEVELS / 2; i++)
        edist_enc_int(&b, i);
    assert_int_equal(edist_buf_error(&b), 0);
    run_on_small_stack(&b);
    edist_buf_free(&b);
}

/* ---- compression --------------------------------------------------------- */

static void test_compress_round_trip(void **state)
{
    (void)state;
    edist_buf plain, z, back;
    edist_buf_init(&plain);
    edist_buf_init(&z);
    edist_buf_init(&back);
    /* matches erts's term_to_binary(<<"a" x 30>>, [compressed]) */
    edist_enc_version(&plain);
    edist_enc_binary(&plain, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 30);
    assert_int_equal(edist_term_compress(plain.data, plain.len, 6, &z), 0);
    assert_int_equal(z.len, sizeof x_compressed);
    assert_memory_equal(z.data, x_compressed, z.len);
    assert_int_equal(edist_term_uncompress(z.data, z.len, &back), 0);
    assert_int_equal(back.len, plain.len);
    assert_memory_equal(back.data, plain.data, plain.len);
    /* uncompressed input passes through */
    edist_buf_reset(&back);
    assert_int_equal(edist_term_uncompress(plain.data, plain.len, &back), 0);
    assert_memory_equal(back.data, plain.data, plain.len);
    /* a cursor over a compressed term reads the inflated bytes */
    edist_buf scratch;
    edist_buf_init(&scratch);
    edist_cursor c;
    const uint8_t *p;
    size_t len;
    assert_int_equal(edist_cursor_init_ext(&c, B(x_compressed), &scratch), 0);
    assert_int_equal(edist_dec_binary(&c, &p, &len), 0);
    assert_int_equal(len, 30);
    assert_int_equal(edist_cursor_init_ext(&c, B(x_compressed), NULL), EDIST_EINVAL);
    assert_int_equal(edist_cursor_init_ext(&c, plain.data, plain.len, NULL), 0);
    assert_int_equal(edist_dec_binary(&c, &p, &len), 0);
    assert_int_equal(edist_cursor_init_ext(&c, e_0, sizeof e_0, NULL), EDIST_EVERSION);
    assert_int_equal(edist_term_validate(B(x_compressed), NULL), 0);
    assert_int_equal(edist_term_compress(plain.data, plain.len, 10, &z), EDIST_EINVAL);
    /* a large, very compressible term */
    edist_buf_reset(&plain);
    edist_buf_reset(&z);
    edist_enc_version(&plain);
    uint8_t *zeros = calloc(1, 1 << 20);
    assert_non_null(zeros);
    edist_enc_binary(&plain, zeros, 1 << 20);
    free(zeros);
    assert_int_equal(edist_term_compress(plain.data, plain.len, 9, &z), 0);
    assert_true(z.len < plain.len / 500);
    assert_int_equal(edist_cursor_init_ext(&c, z.data, z.len, &scratch), 0);
    assert_int_equal(edist_dec_binary(&c, &p, &len), 0);
    assert_int_equal(len, 1 << 20);
    edist_buf_free(&scratch);
    edist_buf_free(&plain);
    edist_buf_free(&z);
    edist_buf_free(&back);
}

static void test_compress_malformed(void **state)
{
    (void)state;
    edist_buf out;
    edist_buf_init(&out);
    uint8_t t[sizeof x_compressed + 1];
    /* declared size 1 GiB + 1, 2^32-1, and more than the data can hold */
    const uint32_t sizes[] = {(1u << 30) + 1, UINT32_MAX, 1032 * 15 + 1, 34, 36, 0};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        memcpy(t, x_compressed, sizeof x_compressed);
        t[2] = (uint8_t)(sizes[i] >> 24);
        t[3] = (uint8_t)(sizes[i] >> 16);
        t[4] = (uint8_t)(sizes[i] >> 8);
        t[5] = (uint8_t)sizes[i];
        edist_buf_reset(&out);
        assert_true(edist_term_uncompress(t, sizeof x_compressed, &out) < 0);
        assert_int_equal(out.len, 0);
        assert_true(edist_term_validate(t, sizeof x_compressed, NULL) < 0);
    }
    /* every truncation, a corrupted byte, a trailing byte */
    for (size_t k = 0; k < sizeof x_compressed; k++) {
        edist_buf_reset(&out);
        assert_true(edist_term_uncompress(x_compressed, k, &out) < 0);
    }
    memcpy(t, x_compressed, sizeof x_compressed);
    t[10] ^= 0x55;
    edist_buf_reset(&out);
    assert_true(edist_term_uncompress(t, sizeof x_compressed, &out) < 0);
    memcpy(t, x_compressed, sizeof x_compressed);
    t[sizeof x_compressed] = 0;
    edist_buf_reset(&out);
    assert_int_equal(edist_term_uncompress(t, sizeof t, &out), EDIST_ECOMPRESS);
    /* a real bomb: 4 MiB of zeros behind a 1 GiB + 1 declared size */
    edist_buf plain, z;
    edist_buf_init(&plain);
    edist_buf_init(&z);
    edist_enc_version(&plain);
    uint8_t *zeros = calloc(1, 1 << 22);
    assert_non_null(zeros);
    edist_enc_binary(&plain, zeros, 1 << 22);
    free(zeros);
    assert_int_equal(edist_term_compress(plain.data, plain.len, 9, &z), 0);
    z.data[2] = 0x40;
    z.data[3] = z.data[4] = 0;
    z.data[5] = 1;
    edist_buf_reset(&out);
    assert_true(edist_term_uncompress(z.data, z.len, &out) < 0);
    assert_true(out.cap < (1u << 24)); /* never allocated the declared size */
    /* inflated bytes that are two terms, not one */
    edist_buf_reset(&plain);
    edist_buf_reset(&z);
    edist_enc_version(&plain);
    edist_enc_nil(&plain);
    edist_enc_nil(&plain);
    assert_int_equal(edist_term_compress(plain.data, plain.len, 6, &z), 0);
    edist_buf_reset(&out);
    assert_int_equal(edist_term_uncompress(z.data, z.len, &out), EDIST_EBADTERM);
    edist_cursor c;
    edist_buf scratch;
    edist_buf_init(&scratch);
    assert_int_equal(edist_cursor_init_ext(&c, z.data, z.len, &scratch), EDIST_EBADTERM);
    edist_buf_free(&scratch);
    edist_buf_free(&plain);
    edist_buf_free(&z);
    edist_buf_free(&out);
}

/* ---- fixes found by the OTP corpus --------------------------------------- */

static void test_port_new_vs_v4(void **state)
{
    (void)state;
    edist_buf b;
    edist_buf_init(&b);
    /* erts: NEW_PORT_EXT below 2^28, V4_PORT_EXT from 2^28 (checked in erl) */
    edist_port port = {atom_of("a@b"), ((uint64_t)1 << 28) - 1, 7};
    const uint8_t e_new[] = {89,119,3,97,64,98,15,255,255,255,0,0,0,7};
    edist_enc_port(&b, &port); expect_bytes(&b, B(e_new));
    port.id = (uint64_t)1 << 28;
    const uint8_t e_v4[] = {120,119,3,97,64,98,0,0,0,0,16,0,0,0,0,0,0,7};
    edist_enc_port(&b, &port); expect_bytes(&b, B(e_v4));
    edist_cursor c;
    edist_port back;
    edist_cursor_init(&c, B(e_v4));
    assert_int_equal(edist_dec_port(&c, &back), 0);
    assert_true(back.id == port.id);
    edist_buf_free(&b);
}

static void test_empty_bitstring(void **state)
{
    (void)state;
    /* binary_to_term(<<131,77,0,0,0,0,0>>) is <<>>: 0 bytes, 0 bits */
    const uint8_t empty[] = {77, 0, 0, 0, 0, 0};
    edist_cursor c;
    const uint8_t *p;
    size_t len;
    unsigned bits;
    assert_int_equal(edist_term_validate(B(empty), NULL), 0);
    edist_cursor_init(&c, B(empty));
    assert_int_equal(edist_skip(&c), 0);
    assert_int_equal(c.pos, sizeof empty);
    edist_cursor_init(&c, B(empty));
    assert_int_equal(edist_dec_bitstring(&c, &p, &len, &bits), 0);
    assert_int_equal(len, 0);
    assert_int_equal(bits, 8); /* the empty binary, as BINARY_EXT gives it */
    edist_cursor_init(&c, B(empty));
    assert_int_equal(edist_dec_binary(&c, &p, &len), 0);
    assert_int_equal(len, 0);
    assert_int_equal(c.pos, sizeof empty);
    edist_term_info info;
    edist_cursor_init(&c, B(empty));
    assert_int_equal(edist_peek(&c, &info), 0);
    assert_int_equal(info.type, EDIST_TYPE_BINARY);
    assert_int_equal(info.count, 0);
    edist_item it;
    assert_int_equal(edist_dec_next(&c, &it), 0);
    assert_int_equal(it.type, EDIST_TYPE_BINARY);
    assert_int_equal(it.count, 0);
    assert_int_equal(it.last_bits, 8);
    assert_int_equal(edist_term_equal(B(empty), B(e_bin0)), 1);
    /* erts refuses 0 bytes with 1..8 bits and 1 byte with 0 bits: so do we */
    const uint8_t zero_bytes_bits[] = {77, 0, 0, 0, 0, 8};
    const uint8_t one_byte_zero_bits[] = {77, 0, 0, 0, 1, 0, 5};
    const sample bad[] = {{B(zero_bytes_bits)}, {B(one_byte_zero_bits)}};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(edist_term_validate(bad[i].bytes, bad[i].len, NULL),
                         EDIST_EBADTERM);
        edist_cursor_init(&c, bad[i].bytes, bad[i].len);
        assert_int_equal(edist_dec_bitstring(&c, &p, &len, &bits), EDIST_EBADTERM);
        assert_int_equal(edist_dec_binary(&c, &p, &len), EDIST_EBADTERM);
        assert_int_equal(edist_dec_next(&c, &it), EDIST_EBADTERM);
        assert_int_equal(c.err_offset, 5);
        assert_int_equal(c.pos, 0);
    }
}

/* ---- edist_dec_next -------------------------------------------------------- */

/* What edist_dec_next must give, computed with the individual getters. */
static int next_by_getters(edist_cursor *c, edist_item *it)
{
    size_t p = c->pos;
    uint8_t tag = p < c->len ? c->data[p] : 0;
    edist_term_info info;
    int rc = edist_peek(c, &info);
    if (rc == 0) {
        it->type = info.type;
        it->tag = tag;
    }
    switch (tag) {
    case EDIST_TAG_SMALL_INTEGER: case EDIST_TAG_INTEGER:
    case EDIST_TAG_SMALL_BIG: case EDIST_TAG_LARGE_BIG: {
        int64_t v;
        rc = edist_dec_int64(c, &v);
        if (rc == 0) {
            it->big = 0;
            it->i = v;
        } else if (rc == EDIST_ERANGE) {
            int neg;
            const uint8_t *mag;
            size_t n;
            uint8_t tmp[8];
            rc = edist_dec_integer(c, &neg, &mag, &n, tmp);
            assert_int_equal(rc, 0);
            it->big = 1;
            it->negative = (uint8_t)neg;
            it->bytes = mag;
            it->count = n;
        }
        return rc;
    }
    case EDIST_TAG_NEW_FLOAT: case EDIST_TAG_FLOAT:
        return edist_dec_double(c, &it->f);
    case EDIST_TAG_SMALL_ATOM_UTF8: case EDIST_TAG_ATOM_UTF8:
    case EDIST_TAG_SMALL_ATOM: case EDIST_TAG_ATOM: {
        edist_atom a;
        if ((rc = edist_dec_atom(c, &a)) == 0) {
            it->bytes = (const uint8_t *)a.ptr;
            it->count = a.len;
            it->latin1 = a.latin1;
        }
        return rc;
    }
    case EDIST_TAG_SMALL_TUPLE: case EDIST_TAG_LARGE_TUPLE:
    case EDIST_TAG_MAP: case EDIST_TAG_LIST: {
        uint32_t n = 0;
        rc = tag == EDIST_TAG_MAP ? edist_dec_map(c, &n)
           : tag == EDIST_TAG_LIST ? edist_dec_list(c, &n) : edist_dec_tuple(c, &n);
        it->count = n;
        return rc;
    }
    case EDIST_TAG_NIL:
        return edist_dec_nil(c);
    case EDIST_TAG_STRING: {
        size_t n = 0;
        rc = edist_dec_string(c, &it->bytes, &n);
        it->count = n;
        return rc;
    }
    case EDIST_TAG_BINARY: case EDIST_TAG_BIT_BINARY: {
        size_t n = 0;
        unsigned bits = 0;
        rc = edist_dec_bitstring(c, &it->bytes, &n, &bits);
        it->count = n;
        it->last_bits = (uint8_t)bits;
        return rc;
    }
    default: {
        /* pids, ports, refs, funs (each with its getter), unknown tags */
        union { edist_pid pid; edist_port port; edist_ref ref; edist_export x;
                edist_fun f; } u;
        switch (tag) {
        case EDIST_TAG_NEW_PID: case EDIST_TAG_PID:
            rc = edist_dec_pid(c, &u.pid);
            break;
        case EDIST_TAG_V4_PORT: case EDIST_TAG_NEW_PORT: case EDIST_TAG_PORT:
            rc = edist_dec_port(c, &u.port);
            break;
        case EDIST_TAG_NEWER_REFERENCE: case EDIST_TAG_NEW_REFERENCE:
        case EDIST_TAG_REFERENCE:
            rc = edist_dec_ref(c, &u.ref);
            break;
        case EDIST_TAG_EXPORT: rc = edist_dec_export(c, &u.x); break;
        case EDIST_TAG_NEW_FUN: rc = edist_dec_fun(c, &u.f); break;
        default: rc = edist_dec_nil(c); break; /* the wrong-tag error */
        }
        if (rc == 0) {
            it->bytes = c->data + p;
            it->count = c->pos - p;
        }
        return rc;
    }
    }
}

static void expect_same_item(const edist_item *a, const edist_item *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->tag, b->tag);
    switch (a->type) {
    case EDIST_TYPE_INTEGER:
        assert_int_equal(a->big, b->big);
        if (!a->big) {
            assert_true(a->i == b->i);
            return;
        }
        assert_int_equal(a->negative, b->negative);
        break;
    case EDIST_TYPE_FLOAT:
        assert_memory_equal(&a->f, &b->f, sizeof a->f);
        return;
    case EDIST_TYPE_ATOM:
        assert_int_equal(a->latin1, b->latin1);
        break;
    case EDIST_TYPE_TUPLE: case EDIST_TYPE_MAP:
        assert_int_equal(a->count, b->count);
        return;
    case EDIST_TYPE_NIL:
        return;
    case EDIST_TYPE_LIST:
        assert_int_equal(a->count, b->count);
        if (a->tag == EDIST_TAG_LIST)
            return;
        break;
    case EDIST_TYPE_BINARY:
        assert_int_equal(a->last_bits, b->last_bits);
        break;
    default:
        break;
    }
    assert_int_equal(a->count, b->count);
    assert_ptr_equal(a->bytes, b->bytes);
}

/* Reads d[0..len) item by item with edist_dec_next, edist_dec_next_slow and
 * the getters in lockstep: same codes, offsets, positions and items; never
 * advanced on error. The input is a copy of exactly len bytes, so ASan sees
 * any read past the end. Returns the number of items read. */
static size_t lockstep(const uint8_t *src, size_t len)
{
    uint8_t *d = malloc(len ? len : 1);
    assert_non_null(d);
    memcpy(d, src, len);
    edist_cursor a, s, g;
    edist_cursor_init(&a, d, len);
    edist_cursor_init(&s, d, len);
    edist_cursor_init(&g, d, len);
    size_t items = 0;
    for (;;) {
        edist_item ia, is, ig;
        size_t at = a.pos;
        int ra = edist_dec_next(&a, &ia);
        int rs = edist_dec_next_slow(&s, &is);
        int rg = next_by_getters(&g, &ig);
        if (ra != rg || rs != rg) {
            fprintf(stderr, "at %zu of", at);
            for (size_t k = 0; k < len; k++)
                fprintf(stderr, " %u", d[k]);
            fprintf(stderr, ": next %d, slow %d, getters %d\n", ra, rs, rg);
        }
        assert_int_equal(ra, rg);
        assert_int_equal(rs, rg);
        assert_int_equal(a.pos, g.pos);
        assert_int_equal(s.pos, g.pos);
        if (ra < 0) {
            assert_int_equal(a.pos, at);
            assert_int_equal(a.err_offset, g.err_offset);
            assert_int_equal(s.err_offset, g.err_offset);
            break;
        }
        assert_true(a.pos > at);
        expect_same_item(&ia, &ig);
        expect_same_item(&is, &ig);
        items++;
    }
    free(d);
    return items;
}

/* More forms for the lockstep tests: integer edges (fast and slow paths),
 * bignums that do not fit, non-canonical forms, atoms of every kind. */
static const uint8_t n_big9[] = {110,9,1,1,2,3,4,5,6,7,8,9};
static const uint8_t n_big0[] = {110,0,1};
static const uint8_t n_bigneg0[] = {110,2,1,0,0};
static const uint8_t n_u64max_neg[] = {110,8,1,255,255,255,255,255,255,255,255};
static const uint8_t n_2p63_neg[] = {110,8,1,0,0,0,0,0,0,0,128};
static const uint8_t n_2p63[] = {110,8,0,0,0,0,0,0,0,0,128};
static const uint8_t n_large_small[] = {111,0,0,0,3,0,1,2,0};
static const uint8_t n_large_huge[] = {111,0,0,0,12,0,1,2,3,4,5,6,7,8,9,10,11,0};
static const uint8_t n_atom_utf8[] = {118,0,3,104,195,169};
static const uint8_t n_atom_bad[] = {119,2,195,40};
static const uint8_t n_atom_long[] = {119,9,'a','b','c','d','e','f','g','h','i'};
static const uint8_t n_latin1[] = {115,2,'h',0xe9};
static const uint8_t n_ltuple[] = {105,0,0,0,1,106};
static const uint8_t n_float_nan[] = {70,0x7f,0xf8,0,0,0,0,0,0};
static const uint8_t n_bits_empty[] = {77,0,0,0,0,0};
/* [1, -1, 2^40, -2^40, 2^63-1, "ab", 1.5, <<>>, {}, #{}] tail 'x' */
static const uint8_t n_mixed_list[] = {108,0,0,0,10, 97,1, 98,255,255,255,255,
    110,6,0,0,0,0,0,0,1, 110,6,1,0,0,0,0,0,1, 110,8,0,255,255,255,255,255,255,255,127,
    107,0,2,97,98, 70,63,248,0,0,0,0,0,0, 109,0,0,0,0, 104,0, 116,0,0,0,0,
    119,1,120};

static const sample next_samples[] = {
    {B(n_big9)}, {B(n_big0)}, {B(n_bigneg0)}, {B(n_u64max_neg)}, {B(n_2p63_neg)},
    {B(n_2p63)}, {B(n_large_small)}, {B(n_large_huge)}, {B(n_atom_utf8)},
    {B(n_atom_bad)}, {B(n_atom_long)}, {B(n_latin1)}, {B(n_ltuple)},
    {B(n_float_nan)}, {B(n_bits_empty)}, {B(n_mixed_list)}, {B(e_u64max)},
    {B(e_i64max)}, {B(e_i64min)}, {B(e_i32min_m1)}, {B(e_fm0)}, {B(e_bin0)},
    {B(e_bits9)}, {B(e_map0)}, {B(e_tuple0)}, {B(e_nil)},
};

static void test_dec_next_types(void **state)
{
    (void)state;
    edist_cursor c;
    edist_item it;
    /* the mixed list, item by item */
    edist_cursor_init(&c, B(n_mixed_list));
    assert_int_equal(edist_dec_next(&c, &it), 0);
    assert_int_equal(it.type, EDIST_TYPE_LIST);
    assert_int_equal(it.tag, EDIST_TAG_LIST);
    assert_int_equal(it.count, 10);
    const int64_t ints[] = {1, -1, (int64_t)1 << 40, -((int64_t)1 << 40), INT64_MAX};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(edist_dec_next(&c, &it), 0);
        assert_int_equal(it.type, EDIST_TYPE_INTEGER);
        assert_int_equal(it.big, 0);
        assert_true(it.i == ints[i]);
    }
    assert_int_equal(edist_dec_next(&c, &it), 0);
    assert_int_equal(it.type, EDIST_TYPE_LIST);
    assert_int_equal(it.tag, EDIST_TAG_STRING);
    assert_int_equal(it.count, 2);
    assert_memory_equal(it.bytes, "ab", 2);
    assert_int_equal(edist_dec_next(&c, &it), 0);
    assert_int_equal(it.type, EDIST_TYPE_FLOAT);
    assert_true(it.f == 1.5);
    assert_int_equal(edist_dec_next(&c, &it), 0);
    assert_int_equal(it.type, EDIST_TYPE_BINARY);
    assert_int_equal(it.count, 0);
    assert_int_equal(it.last_bits, 8);
    assert_int_equal(edist_dec_next(&c, &it), 0);
    assert_int_equal(it.type, EDIST_TYPE_TUPLE);
    assert_int_equal(it.count, 0);
    assert_int_equal(edist_dec_next(&c, &it), 0);
    assert_int_equal(it.type, EDIST_TYPE_MAP);
    assert_int_equal(it.count, 0);
    assert_int_equal(edist_dec_next(&c, &it), 0);
    assert_int_equal(it.type, EDIST_TYPE_ATOM);
    assert_int_equal(it.count, 1);
    assert_int_equal(it.bytes[0], 'x');
    assert_int_equal(edist_cursor_remaining(&c), 0);
    assert_int_equal(edist_dec_next(&c, &it), EDIST_ETRUNC);
    /* a bignum that does not fit int64: the magnitude, normalised */
    edist_cursor_init(&c, B(n_large_huge));
    assert_int_equal(edist_dec_next(&c, &it), 0);
    assert_int_equal(it.big, 1);
    assert_int_equal(it.negative, 0);
    assert_int_equal(it.count, 11); /* 12 bytes, the high one zero */
    assert_ptr_equal(it.bytes, n_large_huge + 6);
    edist_cursor_init(&c, B(e_u64max));
    assert_int_equal(edist_dec_next(&c, &it), 0);
    assert_int_equal(it.big, 1);
    assert_int_equal(it.count, 8);
    edist_cursor_init(&c, B(n_2p63_neg)); /* -2^63 fits */
    assert_int_equal(edist_dec_next(&c, &it), 0);
    assert_int_equal(it.big, 0);
    assert_true(it.i == INT64_MIN);
    edist_cursor_init(&c, B(n_2p63)); /* 2^63 does not */
    assert_int_equal(edist_dec_next(&c, &it), 0);
    assert_int_equal(it.big, 1);
    edist_cursor_init(&c, B(n_bigneg0)); /* "-0" is 0 */
    assert_int_equal(edist_dec_next(&c, &it), 0);
    assert_int_equal(it.big, 0);
    assert_true(it.i == 0);
    /* atoms: UTF-8, latin-1 */
    edist_cursor_init(&c, B(n_atom_utf8));
    assert_int_equal(edist_dec_next(&c, &it), 0);
    assert_int_equal(it.type, EDIST_TYPE_ATOM);
    assert_int_equal(it.latin1, 0);
    assert_int_equal(it.count, 3);
    edist_cursor_init(&c, B(n_latin1));
    assert_int_equal(edist_dec_next(&c, &it), 0);
    assert_int_equal(it.latin1, 1);
    assert_int_equal(it.count, 2);
    /* a bit string */
    edist_cursor_init(&c, B(e_bits9));
    assert_int_equal(edist_dec_next(&c, &it), 0);
    assert_int_equal(it.type, EDIST_TYPE_BINARY);
    assert_int_equal(it.count, 2);
    assert_int_equal(it.last_bits, 1);
    /* pids, ports, refs, funs: a view of the whole term for the getter */
    const sample views[] = {{B(e_pid)}, {B(o_pid)}, {B(e_port)}, {B(e_v4port)},
                            {B(o_port)}, {B(e_ref5)}, {B(o_newref)}, {B(o_ref)},
                            {B(e_export)}, {B(e_fun1)}, {B(e_fun_nested)}};
    const edist_type vtypes[] = {EDIST_TYPE_PID, EDIST_TYPE_PID, EDIST_TYPE_PORT,
        EDIST_TYPE_PORT, EDIST_TYPE_PORT, EDIST_TYPE_REF, EDIST_TYPE_REF,
        EDIST_TYPE_REF, EDIST_TYPE_FUN, EDIST_TYPE_FUN, EDIST_TYPE_FUN};
    for (size_t i = 0; i < sizeof views / sizeof *views; i++) {
        edist_cursor_init(&c, views[i].bytes, views[i].len);
        assert_int_equal(edist_dec_next(&c, &it), 0);
        assert_int_equal(it.type, vtypes[i]);
        assert_int_equal(it.tag, views[i].bytes[0]);
        assert_ptr_equal(it.bytes, views[i].bytes);
        assert_int_equal(it.count, views[i].len);
        assert_int_equal(c.pos, views[i].len);
    }
    edist_cursor sub;
    edist_pid pid;
    edist_cursor_init(&c, B(e_pid));
    assert_int_equal(edist_dec_next(&c, &it), 0);
    edist_cursor_init(&sub, it.bytes, it.count);
    assert_int_equal(edist_dec_pid(&sub, &pid), 0);
    assert_int_equal(pid.serial, 2);
}

static void test_dec_next_errors(void **state)
{
    (void)state;
    edist_cursor c;
    edist_item it;
    /* empty input, unknown tag, atom cache ref, old fun, truncated forms */
    edist_cursor_init(&c, NULL, 0);
    assert_int_equal(edist_dec_next(&c, &it), EDIST_ETRUNC);
    const uint8_t unknown[] = {0, 0};
    const uint8_t cache[] = {82, 0};
    const uint8_t oldfun[] = {117, 0, 0, 0, 0};
    const uint8_t trunc_int[] = {98, 0, 0, 1};
    const uint8_t trunc_small[] = {97};
    const uint8_t list0[] = {108, 0, 0, 0, 0, 106};
    const uint8_t list_long[] = {108, 0, 0, 0, 3, 97, 1, 106};
    const uint8_t map_long[] = {116, 0, 0, 0, 3, 97, 1, 97, 1};
    const uint8_t atom_long[] = {119, 5, 'a', 'b'};
    const struct { const uint8_t *b; size_t n; int rc; size_t off; } bad[] = {
        {B(unknown), EDIST_EBADTAG, 0}, {B(cache), EDIST_EUNSUPPORTED, 0},
        {B(oldfun), EDIST_EUNSUPPORTED, 0}, {B(trunc_int), EDIST_ETRUNC, 0},
        {B(trunc_small), EDIST_ETRUNC, 0}, {B(list0), EDIST_EBADTERM, 1},
        {B(list_long), EDIST_ETRUNC, 0}, {B(map_long), EDIST_ETRUNC, 0},
        {B(atom_long), EDIST_ETRUNC, 0}, {B(n_atom_bad), EDIST_EBADTERM, 2},
        {B(n_float_nan), EDIST_EBADTERM, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        edist_cursor_init(&c, bad[i].b, bad[i].n);
        c.err_offset = 99;
        assert_int_equal(edist_dec_next(&c, &it), bad[i].rc);
        assert_int_equal(c.pos, 0);
        assert_int_equal(c.err_offset, bad[i].off);
        assert_int_equal(edist_dec_next_slow(&c, &it), bad[i].rc);
        assert_int_equal(c.pos, 0);
    }
    /* inside a term: the offset of the bad element, cursor on it */
    const uint8_t inner[] = {104, 2, 97, 1, 200};
    edist_cursor_init(&c, B(inner));
    assert_int_equal(edist_dec_next(&c, &it), 0);
    assert_int_equal(edist_dec_next(&c, &it), 0);
    assert_int_equal(edist_dec_next(&c, &it), EDIST_EBADTAG);
    assert_int_equal(c.pos, 4);
    assert_int_equal(c.err_offset, 4);
}

/* Every valid and extra sample, every prefix of it, and every byte of it
 * replaced by values that hit length, sign and tag edges: edist_dec_next,
 * its slow twin and the getters agree item by item. */
static void test_dec_next_matches_getters(void **state)
{
    (void)state;
    static const uint8_t values[] = {0, 1, 2, 7, 8, 9, 11, 97, 98, 104, 106, 107,
        108, 109, 110, 111, 116, 119, 127, 128, 192, 255};
    const sample *sets[] = {valid_samples, next_samples};
    const size_t counts[] = {sizeof valid_samples / sizeof *valid_samples,
                             sizeof next_samples / sizeof *next_samples};
    size_t items = 0;
    for (size_t set = 0; set < 2; set++) {
        for (size_t i = 0; i < counts[set]; i++) {
            const sample *s = &sets[set][i];
            uint8_t tmp[256];
            assert_true(s->len <= sizeof tmp);
            for (size_t k = 0; k <= s->len; k++)
                items += lockstep(s->bytes, k);
            for (size_t pos = 0; pos < s->len; pos++) {
                for (size_t v = 0; v < sizeof values; v++) {
                    memcpy(tmp, s->bytes, s->len);
                    tmp[pos] = values[v];
                    items += lockstep(tmp, s->len);
                }
            }
        }
    }
    assert_true(items > 10000);
}

/* ---- inline encoder fast paths --------------------------------------------
 * One operation of each inline encoder (and its edge values), run through
 * the inline function and through its _slow twin, into buffers at every
 * interesting boundary: exactly full, one byte short (fixed: sticky ENOSPC,
 * nothing written), and growable with one byte too few left. */

typedef struct enc_op {
    int kind;
    int64_t v;
    const char *s;
    size_t len;
} enc_op;

enum { OP_VERSION, OP_NIL, OP_INT, OP_DOUBLE, OP_ATOM, OP_TUPLE, OP_LIST, OP_MAP,
       OP_BINARY };

static int apply_op(edist_buf *b, const enc_op *op, int slow)
{
    double f;
    switch (op->kind) {
    case OP_VERSION: return slow ? edist_enc_version_slow(b) : edist_enc_version(b);
    case OP_NIL: return slow ? edist_enc_nil_slow(b) : edist_enc_nil(b);
    case OP_INT: return slow ? edist_enc_int_slow(b, op->v) : edist_enc_int(b, op->v);
    case OP_DOUBLE:
        memcpy(&f, &op->v, sizeof f);
        return slow ? edist_enc_double_slow(b, f) : edist_enc_double(b, f);
    case OP_ATOM:
        return slow ? edist_enc_atom_slow(b, op->s, op->len)
                    : edist_enc_atom(b, op->s, op->len);
    case OP_TUPLE:
        return slow ? edist_enc_tuple_slow(b, (uint32_t)op->v)
                    : edist_enc_tuple(b, (uint32_t)op->v);
    case OP_LIST:
        return slow ? edist_enc_list_slow(b, (uint32_t)op->v)
                    : edist_enc_list(b, (uint32_t)op->v);
    case OP_MAP:
        return slow ? edist_enc_map_slow(b, (uint32_t)op->v)
                    : edist_enc_map(b, (uint32_t)op->v);
    default:
        return slow ? edist_enc_binary_slow(b, op->s, op->len)
                    : edist_enc_binary(b, op->s, op->len);
    }
}

static int64_t double_bits(double f)
{
    int64_t v;
    memcpy(&v, &f, sizeof v);
    return v;
}

static void check_op(const enc_op *op)
{
    /* reference bytes from the slow twin into a growable buffer */
    edist_buf ref;
    edist_buf_init(&ref);
    int rc = apply_op(&ref, op, 1);
    size_t n = ref.len;
    for (int slow = 0; slow <= 1; slow++) {
        /* growable from empty */
        edist_buf g;
        edist_buf_init(&g);
        assert_int_equal(apply_op(&g, op, slow), rc);
        assert_int_equal(g.len, n);
        if (n)
            assert_memory_equal(g.data, ref.data, n);
        edist_buf_free(&g);
        if (rc < 0)
            continue;
        /* fixed, exactly full: memory of exactly n bytes for ASan */
        uint8_t *mem = malloc(n);
        assert_non_null(mem);
        edist_buf f;
        edist_buf_init_fixed(&f, mem, n);
        assert_int_equal(apply_op(&f, op, slow), 0);
        assert_int_equal(f.len, n);
        assert_memory_equal(mem, ref.data, n);
        /* then full: ENOSPC (a 1-byte term needs room too), and sticky */
        assert_int_equal(edist_enc_nil(&f), EDIST_ENOSPC);
        assert_int_equal(apply_op(&f, op, slow), EDIST_ENOSPC);
        assert_int_equal(f.len, n);
        free(mem);
        /* fixed, one byte short: ENOSPC, nothing appended, sticky */
        mem = malloc(n);
        assert_non_null(mem);
        edist_buf_init_fixed(&f, mem, n - 1);
        assert_int_equal(apply_op(&f, op, slow), EDIST_ENOSPC);
        assert_int_equal(f.len, 0);
        assert_int_equal(edist_buf_error(&f), EDIST_ENOSPC);
        assert_int_equal(edist_enc_nil(&f), EDIST_ENOSPC);
        free(mem);
        /* after 3 bytes, in a buffer of 3 + n (fast path off the start) */
        mem = malloc(3 + n);
        assert_non_null(mem);
        edist_buf_init_fixed(&f, mem, 3 + n);
        assert_int_equal(edist_buf_append(&f, "abc", 3), 0);
        assert_int_equal(apply_op(&f, op, slow), 0);
        assert_int_equal(f.len, 3 + n);
        assert_memory_equal(mem + 3, ref.data, n);
        free(mem);
        /* growable with one byte too few left: it grows */
        edist_buf_init(&g);
        assert_int_equal(edist_buf_reserve(&g, n + 100), 0);
        size_t fill = g.cap - (n - 1);
        uint8_t *zeros = calloc(1, fill);
        assert_non_null(zeros);
        assert_int_equal(edist_buf_append(&g, zeros, fill), 0);
        free(zeros);
        size_t cap_before = g.cap;
        assert_int_equal(apply_op(&g, op, slow), 0);
        assert_true(g.cap > cap_before);
        assert_int_equal(g.len, fill + n);
        assert_memory_equal(g.data + fill, ref.data, n);
        /* and a buffer already in error stays in it */
        g.err = EDIST_ENOMEM;
        size_t len_before = g.len;
        assert_int_equal(apply_op(&g, op, slow), EDIST_ENOMEM);
        assert_int_equal(g.len, len_before);
        edist_buf_free(&g);
    }
    edist_buf_free(&ref);
}

static void test_enc_fast_path_boundaries(void **state)
{
    (void)state;
    static char text[300];
    memset(text, 'q', sizeof text);
    const int64_t ints[] = {0, 1, 255, 256, -1, INT32_MAX, INT32_MIN,
        (int64_t)INT32_MAX + 1, (int64_t)INT32_MIN - 1, (int64_t)1 << 39,
        -((int64_t)1 << 47), (int64_t)1 << 55, INT64_MAX, INT64_MIN, INT64_MIN + 1};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
        check_op(&(enc_op){OP_INT, ints[i], NULL, 0});
    check_op(&(enc_op){OP_VERSION, 0, NULL, 0});
    check_op(&(enc_op){OP_NIL, 0, NULL, 0});
    check_op(&(enc_op){OP_DOUBLE, double_bits(1.5), NULL, 0});
    check_op(&(enc_op){OP_DOUBLE, double_bits(-0.0), NULL, 0});
    check_op(&(enc_op){OP_DOUBLE, double_bits(NAN), NULL, 0});      /* EINVAL */
    check_op(&(enc_op){OP_DOUBLE, double_bits(-INFINITY), NULL, 0}); /* EINVAL */
    /* atoms of every length the word copy distinguishes, and the limits */
    for (size_t len = 0; len <= 20; len++)
        check_op(&(enc_op){OP_ATOM, 0, text, len});
    check_op(&(enc_op){OP_ATOM, 0, text, 255});
    check_op(&(enc_op){OP_ATOM, 0, text, 256});            /* EBADTERM */
    check_op(&(enc_op){OP_ATOM, 0, NULL, 0});              /* '' */
    check_op(&(enc_op){OP_ATOM, 0, NULL, 1});              /* EINVAL */
    check_op(&(enc_op){OP_ATOM, 0, "h\xc3\xa9llo w\xc3\xb6rld", 14}); /* UTF-8 */
    check_op(&(enc_op){OP_ATOM, 0, "abcdefgh\xff", 9});    /* EBADTERM */
    check_op(&(enc_op){OP_ATOM, 0, "\xc3\xa9", 2});
    const int64_t counts[] = {0, 1, 255, 256, UINT32_MAX};
    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++) {
        check_op(&(enc_op){OP_TUPLE, counts[i], NULL, 0});
        check_op(&(enc_op){OP_LIST, counts[i], NULL, 0}); /* 0: EINVAL */
        check_op(&(enc_op){OP_MAP, counts[i], NULL, 0});
    }
    check_op(&(enc_op){OP_BINARY, 0, text, 0});
    check_op(&(enc_op){OP_BINARY, 0, NULL, 0});
    check_op(&(enc_op){OP_BINARY, 0, text, 1});
    check_op(&(enc_op){OP_BINARY, 0, text, 300});
    check_op(&(enc_op){OP_BINARY, 0, NULL, 3});            /* EINVAL */
}

/* Random values of every size class: the inline encoder writes what its
 * slow twin writes, and edist_dec_next reads back the value. */
static void test_enc_int_random(void **state)
{
    (void)state;
    uint64_t x = 0x9E3779B97F4A7C15u;
    edist_buf fast, slow;
    edist_buf_init(&fast);
    edist_buf_init(&slow);
    int64_t vals[4000];
    for (size_t i = 0; i < 4000; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        uint64_t r = x * 0x2545F4914F6CDD1Du;
        unsigned bits = (unsigned)(r % 64) + 1;
        uint64_t u = bits == 64 ? r : r & ((UINT64_C(1) << bits) - 1);
        memcpy(&vals[i], &u, sizeof u);
        if (r & 1 && vals[i] != INT64_MIN)
            vals[i] = -vals[i];
        assert_int_equal(edist_enc_int(&fast, vals[i]), 0);
        assert_int_equal(edist_enc_int_slow(&slow, vals[i]), 0);
    }
    assert_int_equal(fast.len, slow.len);
    assert_memory_equal(fast.data, slow.data, fast.len);
    assert_int_equal(lockstep(fast.data, fast.len), 4000);
    edist_cursor c;
    edist_cursor_init(&c, fast.data, fast.len);
    for (size_t i = 0; i < 4000; i++) {
        edist_item it;
        assert_int_equal(edist_dec_next(&c, &it), 0);
        assert_int_equal(it.big, 0);
        assert_true(it.i == vals[i]);
    }
    edist_buf_free(&fast);
    edist_buf_free(&slow);
}

/* Context added to an error by passing the error itself as an argument
 * (as callers do) keeps both parts whole. */
static void test_error_with_context(void **state)
{
    (void)state;
    assert_int_equal(edist_set_error(EDIST_EIO, "cannot reach %s", "port 1"), EDIST_EIO);
    assert_int_equal(edist_set_error(EDIST_EEXIST, "cannot register x: %s", edist_last_error()),
                     EDIST_EEXIST);
    assert_string_equal(edist_last_error(), "cannot register x: cannot reach port 1");
    assert_int_equal(edist_set_error(EDIST_EAGAIN, "%s", edist_last_error()), EDIST_EAGAIN);
    assert_string_equal(edist_last_error(), "cannot register x: cannot reach port 1");
    edist_clear_error();
    assert_string_equal(edist_last_error(), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_with_context),
        cmocka_unit_test(test_buf_growable),
        cmocka_unit_test(test_buf_fixed_overflow),
        cmocka_unit_test(test_encode_numbers),
        cmocka_unit_test(test_encode_atoms),
        cmocka_unit_test(test_encode_containers),
        cmocka_unit_test(test_encode_long_strings),
        cmocka_unit_test(test_encode_pid_port_ref),
        cmocka_unit_test(test_decode_integers),
        cmocka_unit_test(test_decode_floats),
        cmocka_unit_test(test_decode_atoms),
        cmocka_unit_test(test_decode_containers),
        cmocka_unit_test(test_decode_pid_port_ref_fun),
        cmocka_unit_test(test_peek_and_term_view),
        cmocka_unit_test(test_truncation_every_prefix),
        cmocka_unit_test(test_bad_tags),
        cmocka_unit_test(test_huge_counts),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_compress_round_trip),
        cmocka_unit_test(test_compress_malformed),
        cmocka_unit_test(test_port_new_vs_v4),
        cmocka_unit_test(test_empty_bitstring),
        cmocka_unit_test(test_dec_next_types),
        cmocka_unit_test(test_dec_next_errors),
        cmocka_unit_test(test_dec_next_matches_getters),
        cmocka_unit_test(test_enc_fast_path_boundaries),
        cmocka_unit_test(test_enc_int_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
