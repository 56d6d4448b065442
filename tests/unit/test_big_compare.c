/* SPDX-License-Identifier: Apache-2.0 */
/* Bignum text conversion, exact term order, =:= and the term hash that
 * agrees with it. Expected values come from erl (OTP 25.2.3); the
 * generators are described next to the data. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "edist/term.h"

/* ---- bignum text -------------------------------------------------------- */

/* 7^1183 (1000 digits) as printed by erl OTP 25: integer_to_list(X),
 * integer_to_list(-X, 16), integer_to_list(X, 36). */
static const char pow7_dec[] =
    "563613434889214650141073473923437633642460261117127556190533853415141761"
    "630042950931205930697048760487563702821145649755414816349786970820519277"
    "047206745345715014847521136881596477776504559243681322840753551417012025"
    "190810122986692683588036185539977317861124348626725240399638484688705693"
    "249324354676894295700068978844702338234532915879275578094006057361307355"
    "022432824824010954135061124624184015922805637831061421885130575750666177"
    "782142188933069474365621671673991039426833623751075983992142547087091001"
    "720736277635075950891589092115280832212381028873686741204969845884946924"
    "611184867485583980818034475843404893610707532233598280913565793477741279"
    "675676906211504355157830182178843214914212752420329823396243962596237357"
    "089859146893449039333877997217811636869067354097643488625045489597685072"
    "497430584403602595686950928885994396741662165488557357089572935785155506"
    "796899331069896060449050708255809876816452935892366147446266863231472965"
    "8750424180657299187516027095462689136416623174753140505686044343";
static const char pow7_neg_hex[] =
    "-2251480E86B1FD75CA84070A54A3EDBC776F36D305758F61786F38A0D8B514504C7F66D"
    "8BCF40C3054F59D930A325324DB214CEDCA87EEDEEA29EB0300121AA898B4A59C1F39AF5"
    "DF42B558EF09CBECC49B16A12B57F814FB48C50D88CEDA27042D7C7DDDB05D345A73EF26"
    "A1969DD35EB5DD676CB6DF971B2A95469B7F5D416590C9B508A40858D9B554D6C26A2F84"
    "C303061AFD9F101502C2E8A86BBB94F6DA6196C49836D9AF07C00EF14C2399737E5B94EC"
    "68530E2228CA7FE41AA612E1E03850A6AD5838B9FA9449D2BD8E1B46BBA82E7B88ABDAB8"
    "E51A62B2DFBACF708C70DE34153822EDF3946BF19EF6F815874D37EE48A4AAA7CA7358F6"
    "35F43B572EC6D4B864D88EC9ECA47FE5568E8D75D2C82605A5670B5E09E9E412BDE1AEB4"
    "EE566DA261000A5B545AE9DAB738FCCEB64737BA440DE68535322C48B492930D18373823"
    "53EDB4DFCB6D9510233ACB5C8E7ABD530678FD8473C9310C0ECBE93A00D60F53F09E985D"
    "49E14643338FD70283A317F8333CDB4991133946611212590A1BA4D1971A249A4FD68E10"
    "0F6423EB8CFFE90E125D923EA0031C6460B7EEB7";
static const char pow7_b36[] =
    "40WIPFR1R5BQ6DJRLKWV820A2V9A5N5X0UYNV9SQJK00Z3WUQ7VXH1UQ14121E4R1AY19J00"
    "IAJFRB71E56GCUNAGAQMIB6Y984JXP394VR1I3BCBU135THM24PESS1PYZRFLMS37XJQ6CN0"
    "AAPX1OEEWDYHSH2IY0QJGX0DZ2RJ2CNG1OVB7E30UVR3YFOKB8ZXHNLH01BR74OYNWEP89GH"
    "LY07E8VA2UA9OARTRCZ6F69PIBPQHGDKXU4PIGP6PSAPNPY5M8MIFDYA7K0JCZ14F3ATGDQ8"
    "UF518LGYQW7Y6N1LJTQUJ2KNJXR83B52FWRSVH1M8C1MPN1JM0U6DSUYL1Q5S49VO20BD73L"
    "KOQ6RIRFVJO089LA2INH35O8PE5FZIQY670RNYGN8KLBJZ3AD4BYHKF9ZZU8NGKR6PD58OXO"
    "SOQAF4U2YC4FKBTPAYRC0U5TBW70PHI703H40GUIDLVBDHN7IUQMLQD8MY9WLC3BGS0VKJRL"
    "5FM4QVNWC7MMYYPI294SEHLP18M5ZJKIVW2KZ6N48UNN763BGPQ2NAKB0QK2Z28EVK9O1J9H"
    "PY7FTA5UL097WELXCO72C3Y2EBSIS3532CA2T358AAPZTCA43I5PICSBMFL8RCI1QK7";

/* Parses text; returns the error or 0 with the magnitude in *mag. */
static int parse(const char *text, int *neg, edist_buf *mag)
{
    edist_buf_reset(mag);
    return edist_big_from_text(text, strlen(text), neg, mag);
}

/* Decimal text of sign + magnitude as a NUL-terminated string in *out. */
static const char *to_dec(int neg, const uint8_t *mag, size_t n, edist_buf *out)
{
    edist_buf_reset(out);
    assert_int_equal(edist_big_to_decimal(neg, mag, n, out), 0);
    return edist_buf_cstr(out);
}

/* text -> magnitude -> decimal must give back `expect`. */
static void check_round_trip(const char *text, const char *expect)
{
    edist_buf mag, out;
    edist_buf_init(&mag);
    edist_buf_init(&out);
    int neg = 42;
    assert_int_equal(parse(text, &neg, &mag), 0);
    if (mag.len > 0)
        assert_int_not_equal(mag.data[mag.len - 1], 0); /* normalised */
    else
        assert_int_equal(neg, 0); /* zero has no sign */
    assert_string_equal(to_dec(neg, mag.data, mag.len, &out), expect);
    edist_buf_free(&mag);
    edist_buf_free(&out);
}

static void big_small_values(void **state)
{
    (void)state;
    check_round_trip("0", "0");
    check_round_trip("-0", "0");
    check_round_trip("+000", "0");
    check_round_trip("1", "1");
    check_round_trip("-1", "-1");
    check_round_trip("999999999", "999999999");
    check_round_trip("1000000000", "1000000000");
    check_round_trip("4294967296", "4294967296");
    check_round_trip("18446744073709551616", "18446744073709551616");
    check_round_trip("-18446744073709551616", "-18446744073709551616");
    check_round_trip("0000123", "123");

    /* 2^64 is 0x01 followed by eight zero bytes, little-endian. */
    edist_buf mag;
    edist_buf_init(&mag);
    int neg = 0;
    assert_int_equal(parse("-18446744073709551616", &neg, &mag), 0);
    static const uint8_t two64[9] = {0, 0, 0, 0, 0, 0, 0, 0, 1};
    assert_int_equal(neg, 1);
    assert_int_equal(mag.len, 9);
    assert_memory_equal(mag.data, two64, 9);
    edist_buf_free(&mag);
}

static void big_power_of_ten(void **state)
{
    (void)state;
    char text[102];
    text[0] = '1';
    memset(text + 1, '0', 100);
    text[101] = 0;
    edist_buf mag, out;
    edist_buf_init(&mag);
    edist_buf_init(&out);
    int neg = 1;
    assert_int_equal(parse(text, &neg, &mag), 0);
    assert_int_equal(neg, 0);
    assert_int_equal(mag.len, 42); /* 10^100 < 2^333 */
    assert_string_equal(to_dec(0, mag.data, mag.len, &out), text);
    assert_string_equal(to_dec(1, mag.data, mag.len, &out) + 1, text);
    assert_int_equal(out.data[0], '-');
    edist_buf_free(&mag);
    edist_buf_free(&out);
}

/* 7^k by schoolbook multiplication on little-endian bytes: an independent
 * reference for the converters. */
static size_t pow7(uint8_t *mag, size_t cap, unsigned k)
{
    size_t n = 1;
    mag[0] = 1;
    while (k--) {
        unsigned carry = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned v = mag[i] * 7u + carry;
            mag[i] = (uint8_t)v;
            carry = v >> 8;
        }
        if (carry) {
            assert_true(n < cap);
            mag[n++] = (uint8_t)carry;
        }
    }
    return n;
}

static void big_thousand_digits(void **state)
{
    (void)state;
    static uint8_t ref[512];
    size_t n = pow7(ref, sizeof ref, 1183);
    edist_buf mag, out;
    edist_buf_init(&mag);
    edist_buf_init(&out);

    assert_int_equal(strlen(pow7_dec), 1000);
    assert_string_equal(to_dec(0, ref, n, &out), pow7_dec);
    assert_int_equal(strlen(to_dec(1, ref, n, &out)), 1001);
    assert_int_equal(out.data[0], '-');

    int neg = 1;
    assert_int_equal(parse(pow7_dec, &neg, &mag), 0);
    assert_int_equal(neg, 0);
    assert_int_equal(mag.len, n);
    assert_memory_equal(mag.data, ref, n);

    /* erl's "-2251480E..." as -16#2251480E... */
    size_t hex_len = strlen(pow7_neg_hex) + 3;
    char *hex = malloc(hex_len + 1);
    assert_non_null(hex);
    memcpy(hex, "-16#", 4);
    memcpy(hex + 4, pow7_neg_hex + 1, strlen(pow7_neg_hex));
    edist_buf_reset(&mag);
    assert_int_equal(edist_big_from_text(hex, hex_len, &neg, &mag), 0);
    assert_int_equal(neg, 1);
    assert_int_equal(mag.len, n);
    assert_memory_equal(mag.data, ref, n);
    free(hex);

    char *b36 = malloc(strlen(pow7_b36) + 4);
    assert_non_null(b36);
    strcpy(b36, "36#");
    strcat(b36, pow7_b36);
    for (char *p = b36 + 3; *p; p++) /* digits are case-insensitive */
        if (*p >= 'A' && *p <= 'Z' && (p - b36) % 2)
            *p = (char)(*p - 'A' + 'a');
    assert_int_equal(parse(b36, &neg, &mag), 0);
    assert_int_equal(mag.len, n);
    assert_memory_equal(mag.data, ref, n);
    free(b36);

    edist_buf_free(&mag);
    edist_buf_free(&out);
}

static void big_to_decimal_inputs(void **state)
{
    (void)state;
    edist_buf out;
    edist_buf_init(&out);
    static const uint8_t padded[] = {0x2c, 0x01, 0, 0, 0}; /* 300, zero-padded */
    assert_string_equal(to_dec(1, padded, sizeof padded, &out), "-300");
    static const uint8_t zeros[] = {0, 0, 0};
    assert_string_equal(to_dec(1, zeros, sizeof zeros, &out), "0"); /* never -0 */
    assert_string_equal(to_dec(1, NULL, 0, &out), "0");
    static const uint8_t max64[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_string_equal(to_dec(0, max64, 8, &out), "18446744073709551615");
    /* Appends to what the buffer holds. */
    edist_buf_reset(&out);
    assert_int_equal(edist_buf_append(&out, "x=", 2), 0);
    assert_int_equal(edist_big_to_decimal(0, padded, 2, &out), 0);
    assert_string_equal(edist_buf_cstr(&out), "x=300");
    /* Errors: bad arguments, full fixed buffer. */
    assert_int_equal(edist_big_to_decimal(0, NULL, 3, &out), EDIST_EINVAL);
    assert_int_equal(edist_big_to_decimal(0, padded, 2, NULL), EDIST_EINVAL);
    uint8_t mem[2];
    edist_buf fixed;
    edist_buf_init_fixed(&fixed, mem, sizeof mem);
    assert_int_equal(edist_big_to_decimal(0, padded, 2, &fixed), EDIST_ENOSPC);
    edist_buf_free(&out);
}

static void big_bases_and_separators(void **state)
{
    (void)state;
    check_round_trip("16#FF", "255");
    check_round_trip("16#ff", "255");
    check_round_trip("-16#ff_ff", "-65535");
    check_round_trip("2#1010", "10");
    check_round_trip("36#zZ", "1295");
    check_round_trip("8#777", "511");
    check_round_trip("1_000_000", "1000000");
    check_round_trip("1_6#F_F", "255"); /* erl_scan takes separators in the base too */
    check_round_trip("016#10", "16");
    check_round_trip("10#1_2", "12");
    check_round_trip("2#11111111111111111111111111111111111111111111111111111111111111111",
                     "36893488147419103231");
    check_round_trip("36#zzzzzzzzzzzzzzzzzzzz", "13367494538843734067838845976575");
}

static void big_syntax_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "-", "+", "+-1", " 1", "1 ", "1__0", "_1", "1_", "16#", "#1",
        "16#_F", "16#F_", "37#1", "1#1", "0#0", "2#2", "10#a", "1.0", "1e3",
        "0x10", "16##1", "_16#1", "12a", "999999999999999999999#1",
    };
    edist_buf mag;
    edist_buf_init(&mag);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int neg = 7;
        if (parse(bad[i], &neg, &mag) != EDIST_ESYNTAX)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(mag.len, 0);
        assert_int_equal(neg, 7); /* untouched on error */
    }
    /* Length, not NUL, delimits the text. */
    int neg;
    assert_int_equal(edist_big_from_text("12\0" "3", 4, &neg, &mag), EDIST_ESYNTAX);
    assert_int_equal(edist_big_from_text("123", 2, &neg, &mag), 0);
    assert_int_equal(mag.len, 1);
    assert_int_equal(mag.data[0], 12);
    assert_int_equal(edist_big_from_text(NULL, 1, &neg, &mag), EDIST_EINVAL);
    assert_int_equal(edist_big_from_text("1", 1, NULL, &mag), EDIST_EINVAL);
    assert_int_equal(edist_big_from_text("1", 1, &neg, NULL), EDIST_EINVAL);
    edist_buf_free(&mag);
}

/* ---- term order ------------------------------------------------------------ */

struct order_case {
    int rank;
    size_t len;
    const char *bytes;
};

/* Generated with erl (OTP 25.2.3): each entry's bytes are an encoded term
 * (several deliberately non-canonical: INTEGER_EXT 5, bignums with high zero
 * bytes, ATOM_EXT, PID_EXT, NEW_PORT_EXT, a map written in reverse key
 * order, nested LIST_EXT, BIT_BINARY_EXT with junk
 * in its unused bits). erl decoded each with binary_to_term, sorted them
 * by exact term order (the order of two keys in a two-key map:
 * maps:keys(#{A => 0, B => 0})), and gave =:= terms one rank. */
static const struct order_case order_cases[] = {
    {0, 12, "\x6e\x09\x01\x00\x00\x00\x00\x00\x00\x00\x00\x40"}, /* -1180591620717411303424 */
    {1, 5, "\x62\xff\xff\xfe\xd4"}, /* -300 */
    {2, 5, "\x62\xff\xff\xff\xff"}, /* -1 */
    {3, 2, "\x61\x00"}, /* 0 */
    {3, 5, "\x6e\x02\x01\x00\x00"}, /* 0 */
    {4, 2, "\x61\x01"}, /* 1 */
    {5, 5, "\x62\x00\x00\x00\x05"}, /* 5 */
    {5, 2, "\x61\x05"}, /* 5 */
    {6, 6, "\x6e\x03\x00\x07\x00\x00"}, /* 7 */
    {6, 2, "\x61\x07"}, /* 7 */
    {7, 2, "\x61\xff"}, /* 255 */
    {8, 5, "\x62\x00\x00\x01\x00"}, /* 256 */
    {9, 7, "\x6e\x04\x00\x00\x00\x00\x80"}, /* 2147483648 */
    {10, 12, "\x6e\x09\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"}, /* 18446744073709551616 */
    {11, 12, "\x6e\x09\x00\x00\x00\x00\x00\x00\x00\x00\x00\x40"}, /* 1180591620717411303424 */
    /* 1180591620717411303424 */
    {11, 16, "\x6f\x00\x00\x00\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x40\x00"},
    {12, 9, "\x46\xfe\x41\xeb\x2d\x66\x00\x58\x35"}, /* -1.5e300 */
    {13, 9, "\x46\xc0\x04\x00\x00\x00\x00\x00\x00"}, /* -2.5 */
    {14, 9, "\x46\x80\x00\x00\x00\x00\x00\x00\x00"}, /* -0.0 */
    {14, 9, "\x46\x00\x00\x00\x00\x00\x00\x00\x00"}, /* 0.0 */
    {15, 9, "\x46\x3f\xe0\x00\x00\x00\x00\x00\x00"}, /* 0.5 */
    {16, 9, "\x46\x3f\xf0\x00\x00\x00\x00\x00\x00"}, /* 1.0 */
    {17, 9, "\x46\x40\x04\x00\x00\x00\x00\x00\x00"}, /* 2.5 */
    /* 3.0 */
    {18, 32, "\x63\x33\x2e\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30\x30"
      "\x30\x30\x30\x30\x30\x30\x65\x2b\x30\x00\x00\x00\x00\x00\x00\x00"},
    {19, 9, "\x46\x7e\x37\xe4\x3c\x88\x00\x75\x9c"}, /* 1.0e300 */
    {20, 2, "\x77\x00"}, /* '' */
    {21, 3, "\x77\x01\x61"}, /* a */
    {22, 4, "\x77\x02\x61\x62"}, /* ab */
    {22, 5, "\x64\x00\x02\x61\x62"}, /* ab */
    {23, 3, "\x77\x01\x62"}, /* b */
    {24, 4, "\x77\x02\x7a\x7a"}, /* zz */
    {25, 4, "\x64\x00\x01\xe9"}, /* ? */
    {25, 4, "\x77\x02\xc3\xa9"}, /* ? */
    {26, 4, "\x77\x02\xc4\x80"}, /* '\x{100}' */
    /* #Ref<8364.0.1.2> */
    {27, 24, "\x5a\x00\x03\x77\x03\x61\x40\x68\x00\x00\x00\x01\x00\x00\x00\x02"
      "\x00\x00\x00\x01\x00\x00\x00\x00"},
    /* #Ref<8364.1.2> */
    {27, 20, "\x5a\x00\x02\x77\x03\x61\x40\x68\x00\x00\x00\x01\x00\x00\x00\x02"
      "\x00\x00\x00\x01"},
    /* #Ref<8364.0.2.1> */
    {28, 24, "\x5a\x00\x03\x77\x03\x61\x40\x68\x00\x00\x00\x01\x00\x00\x00\x01"
      "\x00\x00\x00\x02\x00\x00\x00\x00"},
    {29, 16, "\x5a\x00\x01\x77\x03\x62\x40\x68\x00\x00\x00\x01\x00\x00\x00\x00"}, /* #Ref<8370.0> */
    /* #Fun<m.0.5> */
    {30, 58, "\x70\x00\x00\x00\x39\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
      "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x77\x01"
      "\x6d\x61\x00\x62\x00\x00\x00\x05\x58\x77\x03\x61\x40\x68\x00\x00"
      "\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01"},
    /* #Fun<m.0.5> */
    {31, 61, "\x70\x00\x00\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
      "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x01\x77\x01"
      "\x6d\x61\x00\x62\x00\x00\x00\x05\x58\x77\x03\x61\x40\x68\x00\x00"
      "\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x77\x01\x61"},
    /* #Fun<m.0.5> */
    {32, 61, "\x70\x00\x00\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
      "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x01\x77\x01"
      "\x6d\x61\x00\x62\x00\x00\x00\x05\x58\x77\x03\x61\x40\x68\x00\x00"
      "\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x77\x01\x62"},
    /* #Fun<m.0.0> */
    {33, 58, "\x70\x00\x00\x00\x39\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
      "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x77\x01"
      "\x6d\x61\x00\x62\x00\x00\x00\x00\x58\x77\x03\x61\x40\x68\x00\x00"
      "\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01"},
    /* #Fun<n.0.0> */
    {34, 58, "\x70\x00\x00\x00\x39\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
      "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x77\x01"
      "\x6e\x61\x00\x62\x00\x00\x00\x00\x58\x77\x03\x61\x40\x68\x00\x00"
      "\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01"},
    /* fun lists:sort/1 */
    {35, 16, "\x71\x77\x05\x6c\x69\x73\x74\x73\x77\x04\x73\x6f\x72\x74\x61\x01"},
    /* fun lists:sort/2 */
    {36, 16, "\x71\x77\x05\x6c\x69\x73\x74\x73\x77\x04\x73\x6f\x72\x74\x61\x02"},
    {37, 14, "\x71\x77\x04\x6d\x61\x70\x73\x77\x03\x67\x65\x74\x61\x02"}, /* fun maps:get/2 */
    /* #Port<8364.0> */
    {38, 18, "\x78\x77\x03\x61\x40\x68\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
      "\x00\x01"},
    {39, 14, "\x59\x77\x03\x61\x40\x68\x00\x00\x00\x05\x00\x00\x00\x01"}, /* #Port<8364.5> */
    /* #Port<8364.5> */
    {39, 18, "\x78\x77\x03\x61\x40\x68\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00"
      "\x00\x01"},
    /* #Port<8364.1> */
    {40, 18, "\x78\x77\x03\x61\x40\x68\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00"
      "\x00\x02"},
    /* #Port<8370.0> */
    {41, 18, "\x78\x77\x03\x62\x40\x68\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
      "\x00\x00"},
    /* <8370.1.0> */
    {42, 18, "\x58\x77\x03\x62\x40\x68\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"
      "\x00\x01"},
    /* <8364.2.0> */
    {43, 18, "\x58\x77\x03\x61\x40\x68\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00"
      "\x00\x01"},
    {43, 15, "\x67\x77\x03\x61\x40\x68\x00\x00\x00\x02\x00\x00\x00\x00\x01"}, /* <8364.2.0> */
    /* <8364.2.0> */
    {44, 18, "\x58\x77\x03\x61\x40\x68\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00"
      "\x00\x02"},
    /* <8364.0.1> */
    {45, 18, "\x58\x77\x03\x61\x40\x68\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00"
      "\x00\x01"},
    {46, 2, "\x68\x00"}, /* {} */
    {47, 6, "\x68\x01\x77\x02\x7a\x7a"}, /* {zz} */
    {48, 6, "\x68\x02\x61\x01\x61\x02"}, /* {1,2} */
    {48, 9, "\x69\x00\x00\x00\x02\x61\x01\x61\x02"}, /* {1,2} */
    {49, 13, "\x68\x02\x61\x01\x46\x40\x00\x00\x00\x00\x00\x00\x00"}, /* {1,2.0} */
    {50, 13, "\x68\x02\x46\x3f\xf0\x00\x00\x00\x00\x00\x00\x61\x02"}, /* {1.0,2} */
    {51, 11, "\x68\x03\x77\x01\x61\x77\x01\x62\x77\x01\x63"}, /* {a,b,c} */
    {52, 5, "\x74\x00\x00\x00\x00"}, /* #{} */
    {53, 10, "\x74\x00\x00\x00\x01\x61\x01\x77\x01\x61"}, /* #{1 => a} */
    /* #{1.0 => a} */
    {54, 17, "\x74\x00\x00\x00\x01\x46\x3f\xf0\x00\x00\x00\x00\x00\x00\x77\x01"
      "\x61"},
    /* #{2 => a,1.0 => b} */
    {55, 22, "\x74\x00\x00\x00\x02\x61\x02\x77\x01\x61\x46\x3f\xf0\x00\x00\x00"
      "\x00\x00\x00\x77\x01\x62"},
    /* #{2 => a,2.0 => b} */
    {56, 22, "\x74\x00\x00\x00\x02\x61\x02\x77\x01\x61\x46\x40\x00\x00\x00\x00"
      "\x00\x00\x00\x77\x01\x62"},
    {57, 15, "\x74\x00\x00\x00\x02\x77\x01\x61\x61\x01\x77\x01\x62\x61\x02"}, /* #{a => 1,b => 2} */
    {57, 15, "\x74\x00\x00\x00\x02\x77\x01\x62\x61\x02\x77\x01\x61\x61\x01"}, /* #{a => 1,b => 2} */
    {58, 15, "\x74\x00\x00\x00\x02\x77\x01\x61\x61\x01\x77\x01\x62\x61\x03"}, /* #{a => 1,b => 3} */
    {59, 15, "\x74\x00\x00\x00\x02\x77\x01\x61\x61\x01\x77\x01\x63\x61\x00"}, /* #{a => 1,c => 0} */
    /* #{#{1 => 1} => b,#{1 => 2} => a} */
    {60, 29, "\x74\x00\x00\x00\x02\x74\x00\x00\x00\x01\x61\x01\x61\x01\x77\x01"
      "\x62\x74\x00\x00\x00\x01\x61\x01\x61\x02\x77\x01\x61"},
    /* #{#{1 => 1} => b,#{1 => 2} => a} */
    {60, 29, "\x74\x00\x00\x00\x02\x74\x00\x00\x00\x01\x61\x01\x61\x02\x77\x01"
      "\x61\x74\x00\x00\x00\x01\x61\x01\x61\x01\x77\x01\x62"},
    /* #{16 => 32,18 => 36,5 => 10,19 => 38,27 => 54,...} */
    {61, 137, "\x74\x00\x00\x00\x21\x61\x21\x61\x42\x61\x0c\x61\x18\x61\x17\x61"
      "\x2e\x61\x1d\x61\x3a\x61\x1e\x61\x3c\x61\x1a\x61\x34\x61\x1f\x61"
      "\x3e\x61\x0b\x61\x16\x61\x09\x61\x12\x61\x20\x61\x40\x61\x19\x61"
      "\x32\x61\x1c\x61\x38\x61\x06\x61\x0c\x61\x0d\x61\x1a\x61\x14\x61"
      "\x28\x61\x0f\x61\x1e\x61\x0e\x61\x1c\x61\x02\x61\x04\x61\x07\x61"
      "\x0e\x61\x01\x61\x02\x61\x08\x61\x10\x61\x03\x61\x06\x61\x11\x61"
      "\x22\x61\x16\x61\x2c\x61\x15\x61\x2a\x61\x04\x61\x08\x61\x18\x61"
      "\x30\x61\x0a\x61\x14\x61\x1b\x61\x36\x61\x13\x61\x26\x61\x05\x61"
      "\x0a\x61\x12\x61\x24\x61\x10\x61\x20"},
    /* #{16 => 32,18 => 36,5 => 10,19 => 38,27 => 54,...} */
    {62, 138, "\x74\x00\x00\x00\x21\x61\x21\x61\x42\x61\x0c\x61\x18\x61\x17\x61"
      "\x2e\x61\x1d\x61\x3a\x61\x1e\x61\x3c\x61\x1a\x61\x34\x61\x1f\x61"
      "\x3e\x61\x0b\x61\x16\x61\x09\x61\x12\x61\x20\x61\x40\x61\x19\x61"
      "\x32\x61\x1c\x61\x38\x61\x06\x61\x0c\x61\x0d\x61\x1a\x61\x14\x61"
      "\x28\x61\x0f\x61\x1e\x61\x0e\x61\x1c\x61\x02\x61\x04\x61\x07\x61"
      "\x0e\x61\x01\x61\x02\x61\x08\x61\x10\x61\x03\x61\x06\x61\x11\x77"
      "\x01\x78\x61\x16\x61\x2c\x61\x15\x61\x2a\x61\x04\x61\x08\x61\x18"
      "\x61\x30\x61\x0a\x61\x14\x61\x1b\x61\x36\x61\x13\x61\x26\x61\x05"
      "\x61\x0a\x61\x12\x61\x24\x61\x10\x61\x20"},
    {63, 1, "\x6a"}, /* [] */
    {63, 3, "\x6b\x00\x00"}, /* [] */
    {64, 11, "\x6c\x00\x00\x00\x01\x62\xff\xff\xff\xff\x6a"}, /* [-1] */
    {65, 11, "\x6c\x00\x00\x00\x02\x61\x01\x61\x02\x61\x03"}, /* [1,2|3] */
    {66, 12, "\x6c\x00\x00\x00\x02\x61\x01\x61\x02\x77\x01\x61"}, /* [1,2|a] */
    {67, 6, "\x6b\x00\x03\x01\x02\x03"}, /* [1,2,3] */
    {67, 12, "\x6c\x00\x00\x00\x03\x61\x01\x61\x02\x61\x03\x6a"}, /* [1,2,3] */
    /* [1,2,3] */
    {67, 18, "\x6c\x00\x00\x00\x01\x61\x01\x6c\x00\x00\x00\x01\x61\x02\x6b\x00"
      "\x01\x03"},
    {68, 7, "\x6b\x00\x04\x01\x02\x03\x04"}, /* [1,2,3,4] */
    {69, 17, "\x6c\x00\x00\x00\x02\x61\x01\x46\x40\x00\x00\x00\x00\x00\x00\x00\x6a"}, /* [1,2.0] */
    {70, 6, "\x6b\x00\x03\x61\x62\x63"}, /* "abc" */
    {71, 11, "\x6c\x00\x00\x00\x01\x62\x00\x00\x01\x2c\x6a"}, /* [300] */
    {72, 11, "\x6c\x00\x00\x00\x01\x77\x01\x61\x77\x01\x62"}, /* [a|b] */
    {73, 9, "\x6c\x00\x00\x00\x01\x77\x01\x61\x6a"}, /* [a] */
    {74, 8, "\x6c\x00\x00\x00\x01\x68\x00\x6a"}, /* [{}] */
    {75, 7, "\x6c\x00\x00\x00\x01\x6a\x6a"}, /* [[]] */
    {76, 5, "\x6d\x00\x00\x00\x00"}, /* <<>> */
    {77, 7, "\x4d\x00\x00\x00\x01\x02\x00"}, /* <<0:2>> */
    {78, 7, "\x6d\x00\x00\x00\x02\x01\x02"}, /* <<1,2>> */
    {79, 9, "\x4d\x00\x00\x00\x03\x01\x01\x02\x00"}, /* <<1,2,0:1>> */
    {80, 7, "\x4d\x00\x00\x00\x01\x01\x80"}, /* <<1:1>> */
    {80, 7, "\x4d\x00\x00\x00\x01\x01\xff"}, /* <<1:1>> */
    {81, 6, "\x6d\x00\x00\x00\x01\x80"}, /* <<128>> */
    {82, 6, "\x6d\x00\x00\x00\x01\xff"}, /* <<"?">> */
    {83, 7, "\x6d\x00\x00\x00\x02\xff\x00"}, /* <<255,0>> */
};

#define N_ORDER (sizeof order_cases / sizeof *order_cases)

static int sign(int v)
{
    return (v > 0) - (v < 0);
}

static int cmp_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
    int r = 99;
    int rc = edist_term_compare(a, alen, b, blen, &r);
    assert_int_equal(rc, 0);
    assert_true(r >= -1 && r <= 1);
    return r;
}

static void order_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ORDER; i++) {
        const struct order_case *x = &order_cases[i];
        for (size_t j = 0; j < N_ORDER; j++) {
            const struct order_case *y = &order_cases[j];
            int want = sign(x->rank - y->rank);
            int got = cmp_bytes(x->bytes, x->len, y->bytes, y->len);
            if (got != want)
                fail_msg("compare(#%zu, #%zu) = %d, erl says %d", i, j, got, want);
            int eq = edist_term_equal(x->bytes, x->len, y->bytes, y->len);
            if (eq != (want == 0))
                fail_msg("equal(#%zu, #%zu) = %d", i, j, eq);
        }
    }
}

/* The same table through the external forms: 131 + term, and compressed. */
static void order_external_forms(void **state)
{
    (void)state;
    for (size_t i = 0; i + 1 < N_ORDER; i++) {
        const struct order_case *x = &order_cases[i], *y = &order_cases[i + 1];
        edist_buf ext, z;
        edist_buf_init(&ext);
        edist_buf_init(&z);
        assert_int_equal(edist_enc_version(&ext), 0);
        assert_int_equal(edist_buf_append(&ext, x->bytes, x->len), 0);
        assert_int_equal(edist_term_compress(ext.data, ext.len, 6, &z), 0);
        assert_int_equal(z.data[1], EDIST_TAG_COMPRESSED);
        int want = sign(x->rank - y->rank);
        assert_int_equal(cmp_bytes(ext.data, ext.len, y->bytes, y->len), want);
        assert_int_equal(cmp_bytes(y->bytes, y->len, z.data, z.len), -want);
        assert_int_equal(cmp_bytes(z.data, z.len, ext.data, ext.len), 0);
        assert_int_equal(edist_term_equal(z.data, z.len, x->bytes, x->len), 1);
        assert_int_equal(edist_term_equal(z.data, z.len, z.data, z.len), 1);
        edist_buf_free(&ext);
        edist_buf_free(&z);
    }
}

#define T(s) s, sizeof(s) - 1

static void equal_across_encodings(void **state)
{
    (void)state;
    /* ATOM_EXT vs SMALL_ATOM_UTF8_EXT vs ATOM_UTF8_EXT: 'abc' */
    assert_int_equal(edist_term_equal(T("\x64\x00\x03" "abc"), T("\x77\x03" "abc")), 1);
    assert_int_equal(edist_term_equal(T("\x76\x00\x03" "abc"), T("\x73\x03" "abc")), 1);
    assert_int_equal(edist_term_equal(T("\x64\x00\x03" "abc"), T("\x77\x03" "abd")), 0);
    /* latin-1 e-acute vs its UTF-8 form; vs U+0100 */
    assert_int_equal(edist_term_equal(T("\x64\x00\x01\xe9"), T("\x77\x02\xc3\xa9")), 1);
    assert_int_equal(cmp_bytes(T("\x64\x00\x01\xe9"), T("\x77\x02\xc4\x80")), -1);
    /* STRING_EXT vs LIST_EXT [1,2] */
    assert_int_equal(edist_term_equal(T("\x6b\x00\x02\x01\x02"),
                                      T("\x6c\x00\x00\x00\x02\x61\x01\x61\x02\x6a")), 1);
    assert_int_equal(edist_term_equal(T("\x6b\x00\x02\x01\x02"),
                                      T("\x6c\x00\x00\x00\x02\x61\x01\x61\x03\x6a")), 0);
    /* INTEGER_EXT 5 vs SMALL_INTEGER_EXT 5 vs SMALL_BIG 5 with zero bytes */
    assert_int_equal(edist_term_equal(T("\x62\x00\x00\x00\x05"), T("\x61\x05")), 1);
    assert_int_equal(edist_term_equal(T("\x6e\x04\x00\x05\x00\x00\x00"), T("\x61\x05")), 1);
    assert_int_equal(edist_term_equal(T("\x6f\x00\x00\x00\x02\x00\x05\x00"),
                                      T("\x62\x00\x00\x00\x05")), 1);
    /* -5 as INTEGER_EXT and as SMALL_BIG; negative zero bignum is 0 */
    assert_int_equal(edist_term_equal(T("\x62\xff\xff\xff\xfb"), T("\x6e\x01\x01\x05")), 1);
    assert_int_equal(edist_term_equal(T("\x6e\x01\x01\x00"), T("\x61\x00")), 1);
    /* 1 vs 1.0: == in Erlang, but not =:= and 1 sorts first; 3 < 2.5 too */
    assert_int_equal(edist_term_equal(T("\x61\x01"), T("\x46\x3f\xf0\x00\x00\x00\x00\x00\x00")), 0);
    assert_int_equal(cmp_bytes(T("\x61\x01"), T("\x46\x3f\xf0\x00\x00\x00\x00\x00\x00")), -1);
    assert_int_equal(cmp_bytes(T("\x61\x03"), T("\x46\x40\x04\x00\x00\x00\x00\x00\x00")), -1);
    /* -0.0 =:= 0.0 in OTP 25 */
    assert_int_equal(edist_term_equal(T("\x46\x80\x00\x00\x00\x00\x00\x00\x00"),
                                      T("\x46\x00\x00\x00\x00\x00\x00\x00\x00")), 1);
    /* LIST_EXT of 0 elements (never written by erts) is refused; an
     * empty STRING_EXT is [] */
    assert_int_equal(edist_term_equal(T("\x6c\x00\x00\x00\x00\x61\x07"), T("\x61\x07")),
                     EDIST_EBADTERM);
    assert_int_equal(edist_term_equal(T("\x6b\x00\x00"), T("\x6a")), 1);
    /* Version byte accepted on either side */
    assert_int_equal(edist_term_equal(T("\x83\x61\x05"), T("\x62\x00\x00\x00\x05")), 1);
}

/* A 40-key map in ascending key order against the same map in descending
 * order (erts writes maps over 32 keys in hash order, so any order must
 * work), then with one value changed. */
static void encode_map(edist_buf *b, int descending, int changed_key)
{
    edist_buf_reset(b);
    assert_int_equal(edist_enc_map(b, 40), 0);
    for (int i = 0; i < 40; i++) {
        int k = descending ? 39 - i : i;
        if (k % 2) { /* mix key types: integers and tuples */
            assert_int_equal(edist_enc_int(b, k), 0);
        } else {
            assert_int_equal(edist_enc_tuple(b, 1), 0);
            assert_int_equal(edist_enc_int(b, k), 0);
        }
        assert_int_equal(edist_enc_int(b, k == changed_key ? -1 : k * 2), 0);
    }
}

static void maps_in_any_key_order(void **state)
{
    (void)state;
    edist_buf a, b;
    edist_buf_init(&a);
    edist_buf_init(&b);
    encode_map(&a, 0, -1);
    encode_map(&b, 1, -1);
    assert_int_equal(cmp_bytes(a.data, a.len, b.data, b.len), 0);
    assert_int_equal(edist_term_equal(a.data, a.len, b.data, b.len), 1);
    /* Values compare in key order: the smallest key's value decides first. */
    encode_map(&b, 1, 38); /* {38} => -1 instead of 76 */
    assert_int_equal(cmp_bytes(a.data, a.len, b.data, b.len), 1);
    encode_map(&a, 1, 0); /* {0} => -1: an earlier key wins */
    assert_int_equal(cmp_bytes(a.data, a.len, b.data, b.len), -1);
    edist_buf_free(&a);
    edist_buf_free(&b);
}

/* n nested 1-tuples around an integer leaf. */
static uint8_t *nested_tuples(size_t n, uint8_t leaf, size_t *len)
{
    uint8_t *p = malloc(2 * n + 2);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        p[2 * i] = 0x68;
        p[2 * i + 1] = 1;
    }
    p[2 * n] = 0x61;
    p[2 * n + 1] = leaf;
    *len = 2 * n + 2;
    return p;
}

static void depth_limit(void **state)
{
    (void)state;
    size_t la, lb;
    uint8_t *a = nested_tuples(EDIST_DEFAULT_MAX_DEPTH, 1, &la);
    uint8_t *b = nested_tuples(EDIST_DEFAULT_MAX_DEPTH, 2, &lb);
    int r = 0;
    assert_int_equal(edist_term_compare(a, la, b, lb, &r), 0);
    assert_int_equal(r, -1);
    free(a);
    free(b);
    a = nested_tuples(EDIST_DEFAULT_MAX_DEPTH + 1, 1, &la);
    b = nested_tuples(EDIST_DEFAULT_MAX_DEPTH + 1, 2, &lb);
    assert_int_equal(edist_term_compare(a, la, b, lb, &r), EDIST_EDEPTH);
    assert_int_equal(edist_term_equal(a, la, b, lb), EDIST_EDEPTH);
    free(a);
    free(b);

    /* A long list written as nested one-element LIST_EXTs is not deep. */
    size_t n = 2 * EDIST_DEFAULT_MAX_DEPTH;
    uint8_t *l = malloc(7 * n + 1);
    assert_non_null(l);
    for (size_t i = 0; i < n; i++)
        memcpy(l + 7 * i, "\x6c\x00\x00\x00\x01\x61\x01", 7);
    l[7 * n] = 0x6a;
    uint8_t *m = malloc(7 * n + 1);
    assert_non_null(m);
    memcpy(m, l, 7 * n + 1);
    m[7 * n - 1] = 2; /* last element differs */
    assert_int_equal(edist_term_compare(l, 7 * n + 1, m, 7 * n + 1, &r), 0);
    assert_int_equal(r, -1);
    free(l);
    free(m);
}

static void malformed_input(void **state)
{
    (void)state;
    int r = 5;
    static const uint8_t one[] = {0x61, 0x01};
    assert_int_equal(edist_term_compare(one, 0, one, 2, &r), EDIST_ETRUNC);
    assert_int_equal(edist_term_compare(NULL, 2, one, 2, &r), EDIST_EINVAL);
    assert_int_equal(edist_term_compare(one, 2, one, 2, NULL), EDIST_EINVAL);
    assert_int_equal(edist_term_equal(one, 2, NULL, 2), EDIST_EINVAL);
    assert_int_equal(edist_term_compare(T("\x68\x02\x61\x01"), T("\x61\x01"), &r),
                     EDIST_ETRUNC);
    assert_int_equal(edist_term_compare(T("\x61\x01"), T("\x01"), &r), EDIST_EBADTAG);
    assert_int_equal(edist_term_compare(T("\x61\x01\x61"), T("\x61\x01"), &r),
                     EDIST_EBADTERM); /* bytes after the term */
    assert_int_equal(edist_term_compare(T("\x83"), T("\x61\x01"), &r), EDIST_ETRUNC);
    assert_int_equal(edist_term_compare(T("\x77\x01\xff"), T("\x61\x01"), &r),
                     EDIST_EBADTERM); /* atom not UTF-8 */
    assert_int_equal(edist_term_compare(T("\x52\x01"), T("\x61\x01"), &r),
                     EDIST_EUNSUPPORTED); /* atom cache reference */
    assert_int_equal(edist_term_compare(T("\x83\x50\x00\x00\x00\x02\x78\x9c"),
                                        T("\x61\x01"), &r), EDIST_ECOMPRESS);
    assert_int_equal(r, 5); /* untouched on error */
    /* Broken after the first difference: still an error, not a result. */
    assert_int_equal(edist_term_compare(T("\x68\x02\x61\x01\x61"),
                                        T("\x68\x02\x61\x02\x61\x01"), &r), EDIST_ETRUNC);
    /* The same malformed bytes on both sides are not equal, just malformed. */
    assert_int_equal(edist_term_equal(T("\x68\x02\x61\x01"), T("\x68\x02\x61\x01")),
                     EDIST_ETRUNC);
    /* A map with one key twice is rejected, as binary_to_term does. */
    static const char dup[] = "\x74\x00\x00\x00\x02" "\x77\x01\x61\x61\x01" "\x77\x01\x61\x61\x02";
    static const char ab[] = "\x74\x00\x00\x00\x02" "\x77\x01\x61\x61\x01" "\x77\x01\x62\x61\x02";
    assert_int_equal(edist_term_equal(T(dup), T(ab)), EDIST_EBADTERM);
    assert_int_equal(edist_term_compare(T(ab), T(dup), &r), EDIST_EBADTERM);
    /* A fun whose Size disagrees with its free variables. */
    static const char fun[] =
        "\x70\x00\x00\x00\x2c\x00" "0123456789abcdef" "\x00\x00\x00\x00\x00\x00\x00\x01"
        "\x77\x01\x6d\x61\x00\x61\x00\x58\x77\x01\x6e\x00\x00\x00\x01\x00\x00\x00\x00"
        "\x00\x00\x00\x00" "\x61\x01" "\x61\x02";
    assert_int_equal(edist_term_compare(fun, sizeof fun - 1, T("\x61\x01"), &r),
                     EDIST_EBADTERM);
}

/* ---- the term hash ----------------------------------------------------------- */

static uint64_t hash_of(const void *t, size_t len, uint64_t seed)
{
    uint64_t h = 0;
    int rc = edist_term_hash(t, len, seed, &h);
    if (rc != 0)
        fail_msg("edist_term_hash: %d", rc);
    return h;
}

static const uint64_t seeds[] = {0, 1, UINT64_C(0x8badf00d5eed1234)};

/* Over erl's table: terms of one rank (=:=, whatever their encodings)
 * hash equal, under every seed; terms of different ranks do not collide
 * (the table is fixed, so this is not left to chance). */
static void hash_agrees_with_order_table(void **state)
{
    (void)state;
    for (size_t s = 0; s < sizeof seeds / sizeof *seeds; s++) {
        for (size_t i = 0; i < N_ORDER; i++) {
            const struct order_case *x = &order_cases[i];
            uint64_t hx = hash_of(x->bytes, x->len, seeds[s]);
            for (size_t j = 0; j < N_ORDER; j++) {
                const struct order_case *y = &order_cases[j];
                uint64_t hy = hash_of(y->bytes, y->len, seeds[s]);
                if ((hx == hy) != (x->rank == y->rank))
                    fail_msg("seed %zu: hash(#%zu) %s hash(#%zu), ranks %d and %d", s, i,
                             hx == hy ? "==" : "!=", j, x->rank, y->rank);
            }
        }
    }
    /* another seed, another function */
    assert_true(hash_of(T("\x77\x01" "a"), 0) != hash_of(T("\x77\x01" "a"), 1));
}

/* The external forms (131 + term, and compressed) hash as the term. */
static void hash_external_forms(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ORDER; i++) {
        const struct order_case *x = &order_cases[i];
        edist_buf ext, z;
        edist_buf_init(&ext);
        edist_buf_init(&z);
        assert_int_equal(edist_enc_version(&ext), 0);
        assert_int_equal(edist_buf_append(&ext, x->bytes, x->len), 0);
        assert_int_equal(edist_term_compress(ext.data, ext.len, 6, &z), 0);
        uint64_t h = hash_of(x->bytes, x->len, 7);
        assert_true(hash_of(ext.data, ext.len, 7) == h);
        assert_true(hash_of(z.data, z.len, 7) == h);
        edist_buf_free(&ext);
        edist_buf_free(&z);
    }
}

/* A NEW_FUN_EXT of module m with one free variable (the integer fv);
 * =:= ignores arity, uniq, old_index and the creator pid. */
static void enc_fun(edist_buf *b, uint8_t arity, uint8_t uniq, uint32_t index,
                    int64_t old_index, int64_t old_uniq, uint32_t pid_id, int64_t fv)
{
    edist_buf_reset(b);
    uint8_t head[30] = {0x70, 0, 0, 0, 0, arity};
    memset(head + 6, uniq, 16);
    head[22] = (uint8_t)(index >> 24);
    head[23] = (uint8_t)(index >> 16);
    head[24] = (uint8_t)(index >> 8);
    head[25] = (uint8_t)index;
    head[29] = 1; /* NumFree */
    assert_int_equal(edist_buf_append(b, head, sizeof head), 0);
    edist_pid pid = {{"a@h", 3, 0}, pid_id, 0, 1};
    assert_int_equal(edist_enc_atom(b, "m", 1), 0);
    assert_int_equal(edist_enc_int(b, old_index), 0);
    assert_int_equal(edist_enc_int(b, old_uniq), 0);
    assert_int_equal(edist_enc_pid(b, &pid), 0);
    assert_int_equal(edist_enc_int(b, fv), 0);
    uint32_t size = (uint32_t)b->len - 1;
    b->data[1] = (uint8_t)(size >> 24);
    b->data[2] = (uint8_t)(size >> 16);
    b->data[3] = (uint8_t)(size >> 8);
    b->data[4] = (uint8_t)size;
}

/* equal(a, b) is want, and so is hash(a) == hash(b). */
static void same_as_equal(const void *a, size_t alen, const void *b, size_t blen, int want)
{
    assert_int_equal(edist_term_equal(a, alen, b, blen), want);
    for (size_t s = 0; s < sizeof seeds / sizeof *seeds; s++)
        assert_int_equal(hash_of(a, alen, seeds[s]) == hash_of(b, blen, seeds[s]), want);
}

static void hash_across_encodings(void **state)
{
    (void)state;
    /* one group atom as ATOM_EXT, SMALL_ATOM_EXT, ATOM_UTF8_EXT and
     * SMALL_ATOM_UTF8_EXT (what a BEAM peer may send) */
    same_as_equal(T("\x64\x00\x05" "group"), T("\x77\x05" "group"), 1);
    same_as_equal(T("\x73\x05" "group"), T("\x76\x00\x05" "group"), 1);
    same_as_equal(T("\x64\x00\x05" "group"), T("\x76\x00\x05" "group"), 1);
    same_as_equal(T("\x64\x00\x05" "group"), T("\x77\x05" "grouq"), 0);
    /* latin-1 beyond ASCII against UTF-8: 'caf\xe9' */
    same_as_equal(T("\x73\x04" "caf\xe9"), T("\x77\x05" "caf\xc3\xa9"), 1);
    same_as_equal(T("\x64\x00\x04" "caf\xe9"), T("\x76\x00\x05" "caf\xc3\xa9"), 1);
    same_as_equal(T("\x73\x01\xff"), T("\x77\x02\xc3\xbf"), 1);
    /* {group, 1} with the atom in two forms and the integer in three */
    same_as_equal(T("\x68\x02\x64\x00\x01g\x61\x01"), T("\x68\x02\x77\x01g\x62\x00\x00\x00\x01"), 1);
    same_as_equal(T("\x69\x00\x00\x00\x02\x77\x01g\x6e\x02\x00\x01\x00"),
                  T("\x68\x02\x73\x01g\x61\x01"), 1);
    /* a pid whose node name is latin-1 in one and UTF-8 in the other;
     * PID_EXT and NEW_PID_EXT */
    same_as_equal(T("\x67\x64\x00\x03" "a@h" "\x00\x00\x00\x05\x00\x00\x00\x00\x02"),
                  T("\x58\x77\x03" "a@h" "\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x02"), 1);
    same_as_equal(T("\x67\x64\x00\x03" "a@h" "\x00\x00\x00\x05\x00\x00\x00\x00\x02"),
                  T("\x58\x77\x03" "a@h" "\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x03"), 0);
    /* a ref as NEW_REFERENCE_EXT and as NEWER_REFERENCE_EXT with a high
     * zero word */
    same_as_equal(T("\x72\x00\x01\x77\x03" "a@h" "\x02\x00\x00\x00\x09"),
                  T("\x5a\x00\x02\x64\x00\x03" "a@h" "\x00\x00\x00\x02\x00\x00\x00\x09"
                    "\x00\x00\x00\x00"), 1);
    /* lists: STRING_EXT, LIST_EXT, segments; the empty string is [] */
    same_as_equal(T("\x6b\x00\x02\x01\x02"), T("\x6c\x00\x00\x00\x02\x61\x01\x61\x02\x6a"), 1);
    same_as_equal(T("\x6c\x00\x00\x00\x01\x61\x01\x6b\x00\x01\x02"),
                  T("\x6b\x00\x02\x01\x02"), 1);
    same_as_equal(T("\x6c\x00\x00\x00\x01\x61\x01\x6c\x00\x00\x00\x01\x61\x02\x6b\x00\x00"),
                  T("\x6b\x00\x02\x01\x02"), 1);
    same_as_equal(T("\x6b\x00\x00"), T("\x6a"), 1);
    same_as_equal(T("\x6b\x00\x02\x00\x01"), T("\x6c\x00\x00\x00\x02\x61\x00\x61\x01\x6a"), 1);
    same_as_equal(T("\x6c\x00\x00\x00\x01\x61\x01\x6a"), T("\x6c\x00\x00\x00\x01\x61\x01\x6b\x00\x00"), 1);
    same_as_equal(T("\x6c\x00\x00\x00\x02\x61\x01\x61\x02\x6a"),
                  T("\x6c\x00\x00\x00\x01\x61\x01\x61\x02"), 0); /* [1,2] vs [1|2] */
    same_as_equal(T("\x6c\x00\x00\x00\x01\x6a\x6a"), T("\x6a"), 0); /* [[]] vs [] */
    same_as_equal(T("\x6c\x00\x00\x00\x01\x6a\x6a"), T("\x6c\x00\x00\x00\x01\x6a\x6b\x00\x00"), 1);
    /* a binary as BINARY_EXT and BIT_BINARY_EXT of 8 bits; unused bits */
    same_as_equal(T("\x6d\x00\x00\x00\x02\x01\x02"), T("\x4d\x00\x00\x00\x02\x08\x01\x02"), 1);
    same_as_equal(T("\x4d\x00\x00\x00\x01\x03\xa0"), T("\x4d\x00\x00\x00\x01\x03\xbf"), 1);
    same_as_equal(T("\x4d\x00\x00\x00\x01\x03\xa0"), T("\x4d\x00\x00\x00\x01\x04\xa0"), 0);
    /* floats: FLOAT_EXT against NEW_FLOAT_EXT; 1 is not 1.0 */
    same_as_equal(T("\x63" "1.00000000000000000000e+00" "\x00\x00\x00\x00\x00"),
                  T("\x46\x3f\xf0\x00\x00\x00\x00\x00\x00"), 1);
    same_as_equal(T("\x61\x01"), T("\x46\x3f\xf0\x00\x00\x00\x00\x00\x00"), 0);
    /* ports: NEW_PORT_EXT and V4_PORT_EXT */
    same_as_equal(T("\x59\x77\x03" "a@h" "\x00\x00\x00\x05\x00\x00\x00\x01"),
                  T("\x78\x64\x00\x03" "a@h" "\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x01"), 1);
    /* funs: what =:= ignores, and what it does not */
    edist_buf a, b;
    edist_buf_init(&a);
    edist_buf_init(&b);
    enc_fun(&a, 1, 0x11, 3, 0, 77, 5, 42);
    enc_fun(&b, 2, 0x22, 3, 9, 77, 6, 42);
    same_as_equal(a.data, a.len, b.data, b.len, 1);
    enc_fun(&b, 1, 0x11, 3, 0, 77, 5, 43); /* free variable */
    same_as_equal(a.data, a.len, b.data, b.len, 0);
    enc_fun(&b, 1, 0x11, 4, 0, 77, 5, 42); /* Index */
    same_as_equal(a.data, a.len, b.data, b.len, 0);
    enc_fun(&b, 1, 0x11, 3, 0, 78, 5, 42); /* OldUniq */
    same_as_equal(a.data, a.len, b.data, b.len, 0);
    /* maps: pairs in any order, nested */
    encode_map(&a, 0, -1);
    encode_map(&b, 1, -1);
    same_as_equal(a.data, a.len, b.data, b.len, 1);
    encode_map(&b, 1, 38);
    same_as_equal(a.data, a.len, b.data, b.len, 0);
    same_as_equal(T("\x74\x00\x00\x00\x02\x77\x01\x61\x61\x01\x77\x01\x62\x61\x02"),
                  T("\x74\x00\x00\x00\x02\x77\x01\x62\x61\x01\x77\x01\x61\x61\x02"), 0);
    same_as_equal(T("\x68\x02\x74\x00\x00\x00\x02\x77\x01\x61\x61\x01\x64\x00\x01\x62\x61\x02\x6a"),
                  T("\x68\x02\x74\x00\x00\x00\x02\x73\x01\x62\x61\x02\x77\x01\x61\x61\x01\x6a"), 1);
    edist_buf_free(&a);
    edist_buf_free(&b);
}

static void hash_limits_and_errors(void **state)
{
    (void)state;
    uint64_t h = 5;
    static const uint8_t one[] = {0x61, 0x01};
    assert_int_equal(edist_term_hash(one, 0, 0, &h), EDIST_ETRUNC);
    assert_int_equal(edist_term_hash(NULL, 2, 0, &h), EDIST_EINVAL);
    assert_int_equal(edist_term_hash(one, 2, 0, NULL), EDIST_EINVAL);
    assert_int_equal(edist_term_hash(T("\x68\x02\x61\x01"), 0, &h), EDIST_ETRUNC);
    assert_int_equal(edist_term_hash(T("\x61\x01\x61"), 0, &h), EDIST_EBADTERM);
    assert_int_equal(edist_term_hash(T("\x77\x01\xff"), 0, &h), EDIST_EBADTERM);
    assert_int_equal(edist_term_hash(T("\x52\x01"), 0, &h), EDIST_EUNSUPPORTED);
    assert_true(h == 5); /* untouched on error */
    /* deep nesting: up to the limit, and one more */
    size_t la, lb;
    uint8_t *a = nested_tuples(EDIST_DEFAULT_MAX_DEPTH, 1, &la);
    uint8_t *b = nested_tuples(EDIST_DEFAULT_MAX_DEPTH, 2, &lb);
    assert_true(hash_of(a, la, 0) != hash_of(b, lb, 0));
    free(a);
    free(b);
    a = nested_tuples(EDIST_DEFAULT_MAX_DEPTH + 1, 1, &la);
    assert_int_equal(edist_term_hash(a, la, 0, &h), EDIST_EDEPTH);
    free(a);
    /* a long list of nested one-element LIST_EXTs is not deep, and hashes
     * as the same list in one LIST_EXT */
    size_t n = 2 * EDIST_DEFAULT_MAX_DEPTH;
    uint8_t *l = malloc(7 * n + 1);
    uint8_t *flat = malloc(2 * n + 6);
    assert_non_null(l);
    assert_non_null(flat);
    for (size_t i = 0; i < n; i++) {
        memcpy(l + 7 * i, "\x6c\x00\x00\x00\x01\x61\x01", 7);
        memcpy(flat + 5 + 2 * i, "\x61\x01", 2);
    }
    l[7 * n] = 0x6a;
    memcpy(flat, "\x6c", 1);
    flat[1] = (uint8_t)(n >> 24);
    flat[2] = (uint8_t)(n >> 16);
    flat[3] = (uint8_t)(n >> 8);
    flat[4] = (uint8_t)n;
    flat[5 + 2 * n] = 0x6a;
    assert_true(hash_of(l, 7 * n + 1, 3) == hash_of(flat, 2 * n + 6, 3));
    free(l);
    free(flat);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(big_small_values),
        cmocka_unit_test(big_power_of_ten),
        cmocka_unit_test(big_thousand_digits),
        cmocka_unit_test(big_to_decimal_inputs),
        cmocka_unit_test(big_bases_and_separators),
        cmocka_unit_test(big_syntax_errors),
        cmocka_unit_test(order_table),
        cmocka_unit_test(order_external_forms),
        cmocka_unit_test(equal_across_encodings),
        cmocka_unit_test(maps_in_any_key_order),
        cmocka_unit_test(depth_limit),
        cmocka_unit_test(malformed_input),
        cmocka_unit_test(hash_agrees_with_order_table),
        cmocka_unit_test(hash_external_forms),
        cmocka_unit_test(hash_across_encodings),
        cmocka_unit_test(hash_limits_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
