/* SPDX-License-Identifier: Apache-2.0 */
/* ~w printer: text compared with what OTP 25's io_lib:format("~w", [T])
 * returns (vectors generated once with erl), plus malformed input, depth
 * limits, buffers and the node numbers of remote pids/ports/refs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "edist/term.h"

typedef struct print_vector {
    const char *hex;  /* external term (131 ...) */
    const char *text; /* expected output, UTF-8 */
} print_vector;

typedef struct float_vector {
    uint64_t bits;
    const char *text;
} float_vector;

/* Generated with erl (OTP 25.2.3): hex is the external term,
 * text is io_lib:format("~w", [binary_to_term(Bytes)]) as UTF-8. */
static const print_vector erl_vectors[] = {
    /* byte list */
    {"836B0003616263",
     "[97,98,99]"},
    /* nested lists */
    {"836C000000036B000201026A6C000000016B0001036A6A",
     "[[1,2],[],[[3]]]"},
    /* binary */
    {"836D00000003010203",
     "<<1,2,3>>"},
    /* empty binary */
    {"836D00000000",
     "<<>>"},
    /* bitstring */
    {"834D0000000304010230",
     "<<1,2,3:4>>"},
    /* 3-bit bitstring */
    {"834D000000010320",
     "<<1:3>>"},
    /* 7-bit */
    {"834D0000000107FE",
     "<<127:7>>"},
    /* map in encoded order */
    {"83740000000461017701626102770164463FE0000000000000770163463FF0000000000000770161",
     "#{1 => b,2 => d,0.5 => c,1.0 => a}"},
    /* nested map */
    {"83740000000277016174000000006A68027701786D00000000",
     "#{a => #{},[] => {x,<<>>}}"},
    /* improper list */
    {"836C0000000161016102",
     "[1|2]"},
    /* improper nested */
    {"836C000000027701616C000000017701627701636801770164",
     "[a,[b|c]|{d}]"},
    /* tuples */
    {"8368036800680161016803610161026103",
     "{{},{1},{1,2,3}}"},
    /* integers */
    {"836C00000008610061FF620000010062FFFFFFFF627FFFFFFF62800000006E0400000000806E0401010000806A",
     "[0,255,256,-1,2147483647,-2147483648,2147483648,-2147483649]"},
    /* 64-bit edges */
    {"836C000000056E0800FFFFFFFFFFFFFF7F6E080100000000000000806E0800FFFFFFFFFFFFFFFF6E09000000000000000000016E09010000000000000000016A",
     "[9223372036854775807,-9223372036854775808,18446744073709551615,18446744073709551616,-18446744073709551616]"},
    /* bignum */
    {"836C000000026E1A0000000000000000000000000000000000000000000000000000016E260139300000000000000000000000000000000000000000000000000000000000000000000000106A",
     "[1606938044258990275541962092341162602522202993782792835301376,-2037035976334486086268445688409378161051468393665936250636140449354381299763336706183409721]"},
    /* reserved words quoted */
    {"836C000000087703616E647702696677077265636569766577066F72656C73657703786F72770366756E7703656E64770563617463686A",
     "['and','if','receive','orelse','xor','fun','end','catch']"},
    /* feature keywords not quoted in OTP 25 */
    {"836C0000000277056D617962657704656C73656A",
     "[maybe,else]"},
    /* plain atoms */
    {"836C0000000977026F6B770474727565770661425F3940787703612E627705557070657277025F7877023961770077036120626A",
     "[ok,true,aB_9@x,'a.b','Upper','_x','9a','','a b']"},
    /* latin-1 letters */
    {"836C000000097702C39F7702C380770361C3807702C3BF7702C39E7702C3B7770361C3B7770361C3977702C3A96A",
     "[\303\237,'\303\200',a\303\200,\303\277,'\303\236','\303\267','a\303\267','a\303\227',\303\251]"},
    /* non-latin-1 escaped */
    {"836C000000037706E697A5E69CAC770361C4807704F09F98806A",
     "['\\x{65E5}\\x{672C}','a\\x{100}','\\x{1F600}']"},
    /* atom escapes */
    {"837717275C0A0D090B080C1B7F00011FC280C29FC2A0C3BF2220",
     "'\\'\\\\\\n\\r\\t\\v\\b\\f\\e\\d\\000\\001\\037\\200\\237\302\240\303\277\" '"},
    /* floats */
    {"836C0000000B463FF0000000000000463FB999999999999A467E37E43C8800759C464415AF1D78B58C4046444B1AE4D6E2EF50464341C37937E080004640FE240000000000468000000000000000460000000000000000463F1A36E2EB1C432D463EE4F8B588E368F16A",
     "[1.0,0.1,1.0e300,1.0e20,1.0e21,1.0e16,123456.0,-0.0,0.0,0.0001,1.0e-5]"},
    /* tricky floats */
    {"836C0000000D460000000000000001460010000000000000467FEFFFFFFFFFFFFF463FD3333333333334464059000000000000464480F0CF064DD59246434000000000000046433FFFFFFFFFFFFF46430C6BF5263400004643E56A95319D63E146408F400000000000463F1F75104D551D6946BFF80000000000006A",
     "[5.0e-324,2.2250738585072014e-308,1.7976931348623157e308,0.30000000000000004,100.0,1.0e22,9.007199254740992e15,9007199254740991.0,1.0e15,1.2345678901234567e19,1.0e3,1.2e-4,-1.5]"},
    /* export funs */
    {"836C000000037177056C6973747377036D6170610271770665726C616E6777012B61027177034D6F64770366756E61006A",
     "[fun lists:map/2,fun erlang:'+'/2,fun 'Mod':fun/0]"},
    /* local pid */
    {"8358770D6E6F6E6F6465406E6F686F7374000000090000000000000000",
     "<0.9.0>"},
    /* local port */
    {"8359770D6E6F6E6F6465406E6F686F73740000000000000000",
     "#Port<0.0>"},
    /* local ref */
    {"835A0003770D6E6F6E6F6465406E6F686F73740000000000029B9A28E00001E4B1FE6D",
     "#Ref<0.3836870253.685768705.170906>"},
    /* mixed */
    {"8368046C0000000161016102740000000177016B6C000000026D0000000178463FF80000000000006A62FFFFFFF9770151",
     "{[1|2],#{k => [<<120>>,1.5]},-7,'Q'}"},
    /* list tail that is a STRING_EXT */
    {"836C0000000161016B00020102",
     "[1,1,2]"},
    /* list tail that is an empty STRING_EXT */
    {"836C0000000161016B0000",
     "[1]"},
    /* list tail that is a list */
    {"836C0000000161016C00000001610264000178",
     "[1,2|x]"},
    /* list tail that is a tuple */
    {"836C00000001610168016A",
     "[1|{[]}]"},
    /* empty STRING_EXT */
    {"836B0000",
     "[]"},
    /* bignum minus zero */
    {"836E010100",
     "0"},
    /* bignum with a leading zero byte */
    {"836E02010500",
     "-5"},
    /* LARGE_BIG small value */
    {"836F000000010007",
     "7"},
    /* INTEGER_EXT small value */
    {"836200000005",
     "5"},
    /* FLOAT_EXT */
    {"8363312E3530303030303030303030303030303030303030652B30300000000000",
     "1.5"},
    /* ATOM_EXT latin-1 control */
    {"83640003618062",
     "'a\\200b'"},
    /* SMALL_ATOM_EXT latin-1 letter */
    {"83730361FF62",
     "a\303\277b"},
    /* ATOM_EXT latin-1 capital */
    {"83640001C0",
     "'\303\200'"},
    /* BIT_BINARY_EXT of 8 bits */
    {"834D0000000108FF",
     "<<255>>"},
    /* BIT_BINARY_EXT 3 bits */
    {"834D000000020301E0",
     "<<1,7:3>>"},
    /* PID_EXT */
    {"836764000D6E6F6E6F6465406E6F686F7374000000070000000800",
     "<0.7.8>"},
    /* NEW_PID_EXT */
    {"8358770D6E6F6E6F6465406E6F686F7374000000070000000800000003",
     "<0.7.8>"},
    /* PORT_EXT */
    {"8366770D6E6F6E6F6465406E6F686F73740000000700",
     "#Port<0.7>"},
    /* NEW_PORT_EXT */
    {"8359770D6E6F6E6F6465406E6F686F73740000000700000000",
     "#Port<0.7>"},
    /* V4_PORT_EXT */
    {"8378770D6E6F6E6F6465406E6F686F7374000000000000000700000000",
     "#Port<0.7>"},
    /* REFERENCE_EXT (1 word, padded) */
    {"8365770D6E6F6E6F6465406E6F686F73740000000700",
     "#Ref<0.0.0.7>"},
    /* NEW_REFERENCE_EXT of 2 words (padded) */
    {"83720002770D6E6F6E6F6465406E6F686F7374000000000700000008",
     "#Ref<0.0.8.7>"},
    /* NEWER_REFERENCE_EXT 3 words */
    {"835A0003770D6E6F6E6F6465406E6F686F737400000000000000070000000800000009",
     "#Ref<0.9.8.7>"},
    /* export fun, erts quoting */
    {"8371760003466F6F7600076261722062617A6101",
     "fun 'Foo':'bar baz'/1"},
    /* export fun, no reserved words in erts */
    {"83717600026966760003656E646101",
     "fun if:end/1"},
    /* export fun, '@' quoted by erts */
    {"83717600016D7600036140626101",
     "fun m:'a@b'/1"},
    /* export fun, erts escapes */
    {"83717600016D76000F275C0A0C090D080B1B007FC280C29F61FF",
     "fun m:'\\'\\\\\\n\\f\\t\\r\\b\\v\\033\\000\177\\200\\237'/255"},
    /* export fun, latin-1 letter: UTF-8 bytes as characters */
    {"83717600016D760002C39F6101",
     "fun m:\303\203\302\237/1"},
    /* export fun, quoted latin-1 */
    {"8371760002C38076000361C3806101",
     "fun '\303\203\302\200':a\303\203\302\200/1"},
    /* export fun, non-latin-1 */
    {"8371760003E697A5760001666101",
     "fun '\303\246\302\227\302\245':f/1"},
    /* local fun */
    {"83700000004501A02476DCE9F2F14E80EEB8F81847C74400000000000000007703683276610062050123B658770D6E6F6E6F6465406E6F686F7374000000090000000000000000",
     "#Fun<h2v.0.83960758>"},
    /* local fun, module never quoted */
    {"837000000046010000000000000000000000000000000000000005000000007600036120626103620000303958770D6E6F6E6F6465406E6F686F7374000000070000000800000000",
     "#Fun<a b.3.12345>"},
    /* local fun, non-latin-1 module */
    {"83700000004301000000000000000000000000000000000000000500000000760003E697A56103610558770D6E6F6E6F6465406E6F686F7374000000070000000800000000",
     "#Fun<\303\246\302\227\302\245.3.5>"},
    /* local fun, ATOM_EXT module, 32-bit negative numbers */
    {"837000000047010000000000000000000000000000000000000005000000006400016162FFFFFFFF628000000058770D6E6F6E6F6465406E6F686F7374000000070000000800000000",
     "#Fun<a.-1.-2147483648>"},
    /* compressed */
    {"835000000710789CCB60CC616060D44961604E4C4A1E2547C95172941C2547C99149660100F468D2B8",
     "{[abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc,abc]}"},
};
/* Generated with erl (OTP 25.2.3): IEEE bits and io_lib:format("~w", [F]). */
static const float_vector erl_floats[] = {
    {UINT64_C(0x0000000000000001), "5.0e-324"},
    {UINT64_C(0x0000000000000002), "1.0e-323"},
    {UINT64_C(0x0000000000000003), "1.5e-323"},
    {UINT64_C(0x000FFFFFFFFFFFFF), "2.225073858507201e-308"},
    {UINT64_C(0x0010000000000000), "2.2250738585072014e-308"},
    {UINT64_C(0x7FEFFFFFFFFFFFFF), "1.7976931348623157e308"},
    {UINT64_C(0x7FE0000000000000), "8.98846567431158e307"},
    {UINT64_C(0x3FD3333333333334), "0.30000000000000004"},
    {UINT64_C(0x44B52D02C7E14AF6), "1.0e23"},
    {UINT64_C(0x433FFFFFFFFFFFFF), "9007199254740991.0"},
    {UINT64_C(0x4340000000000001), "9.007199254740994e15"},
    {UINT64_C(0x0000000000000058), "4.35e-322"},
    {UINT64_C(0x3FD3333333333333), "0.3"},
    {UINT64_C(0x3FE5555555555555), "0.6666666666666666"},
    {UINT64_C(0x3FD5555555555555), "0.3333333333333333"},
    {UINT64_C(0x3E7AD7F29ABCAF48), "1.0e-7"},
    {UINT64_C(0x405EDD2F1A9FBE77), "123.456"},
    {UINT64_C(0x54B249AD2594C37D), "1.0e100"},
    {UINT64_C(0x3F0A36E2EB1C432D), "5.0e-5"},
    {UINT64_C(0x3FE0000000000000), "0.5"},
    {UINT64_C(0x416312D000000000), "1.0e7"},
    {UINT64_C(0x41678C29DCCCCCCD), "12345678.9"},
    {UINT64_C(0x3F33A92A30553262), "3.0000000000000003e-4"},
    {UINT64_C(0x400921FB54442D18), "3.141592653589793"},
    {UINT64_C(0x4005BF0A8B145769), "2.718281828459045"},
    {UINT64_C(0x4351C37937E08000), "2.0e16"},
    {UINT64_C(0x4376345785D8A000), "1.0e17"},
    {UINT64_C(0x44DFE185CA57C517), "6.02214076e23"},
    {UINT64_C(0x41B1DE784A000000), "299792458.0"},
    {UINT64_C(0x0EFCBA1D7F50324E), "1.7646309072477805e-236"},
    {UINT64_C(0x73D6C2F841739BA7), "1.018542643855133e250"},
    {UINT64_C(0x74AA1012DE363840), "9.554043886121953e253"},
    {UINT64_C(0x3C2D773CCB9C3285), "7.98671334510707e-19"},
    {UINT64_C(0x5D24400833230263), "4.8229826913278536e140"},
    {UINT64_C(0x15CAB214DC1A2495), "1.0643222259007681e-203"},
    {UINT64_C(0x0F1F5DC2A0AECD30), "7.707011766242746e-236"},
    {UINT64_C(0x35D4A797D159E1C0), "2.2082018865335736e-49"},
    {UINT64_C(0x29D8EC4393E1F66F), "4.2448293398921254e-107"},
    {UINT64_C(0x74F3B8916C1C43FF), "2.313367287653492e255"},
    {UINT64_C(0x2DAC6C7713D50979), "1.1162764843902195e-88"},
    {UINT64_C(0x00F537CB8F942F96), "4.834458165747333e-304"},
    {UINT64_C(0x7658A96DF0E6F56F), "1.2133933541591468e262"},
    {UINT64_C(0x15F5093B97AE8AD1), "6.709458125937739e-203"},
    {UINT64_C(0x3198F5B031FEE1FA), "9.041088487862866e-70"},
    {UINT64_C(0x69CA27C1588F8345), "4.0041166605947754e201"},
    {UINT64_C(0x6C7BC4B8CA5F9301), "3.7392842954037767e214"},
    {UINT64_C(0x4F777A9B230C35DB), "6.637388484303674e74"},
    {UINT64_C(0x41DE991B716035CB), "2053402053.5032833"},
    {UINT64_C(0x7A0CC411A0461810), "8.158754481279847e279"},
    {UINT64_C(0x25978AED659DA032), "1.3585569137036173e-127"},
    {UINT64_C(0x05DB67978B58B16E), "1.8871586274536344e-280"},
    {UINT64_C(0x1D87F5FFD5D631DB), "2.0316840319790444e-166"},
    {UINT64_C(0x27B66DE62E7E1E29), "2.2236032212248416e-117"},
    {UINT64_C(0x69BAFF8D1E17F827), "2.0665822157321845e201"},
    {UINT64_C(0x09ABE83BDE1479B0), "4.4312829537861294e-262"},
    {UINT64_C(0x6EFDADED7F20189C), "4.3943227272074913e226"},
    {UINT64_C(0x17305634881B9F1E), "5.463717258494008e-197"},
    {UINT64_C(0x3064E6DFA7AA5AA8), "1.444095211773017e-75"},
    {UINT64_C(0x59249D939B1DB967), "2.6617229482124487e121"},
    {UINT64_C(0x5DD32DF6B04B9A75), "9.35526845484522e143"},
    {UINT64_C(0x747C2546075465A1), "1.2896946055370869e253"},
    {UINT64_C(0x1276025FD4C6DB25), "9.742017518883415e-220"},
    {UINT64_C(0x0A4C69542ADB7732), "4.6196279072262234e-259"},
    {UINT64_C(0x0597E1A9FFE13B59), "1.0278403738738348e-281"},
    {UINT64_C(0x55FEA1922788BAF6), "1.7563117228948733e106"},
    {UINT64_C(0x12B306F572F8344A), "1.3475275288471262e-218"},
    {UINT64_C(0x6F3966B694C8F875), "6.017434539866772e227"},
    {UINT64_C(0x0BB19615A928216F), "2.398707703246862e-252"},
    {UINT64_C(0x15AA331A33FDC32C), "2.6113670600570382e-204"},
    {UINT64_C(0x8000000000000001), "-5.0e-324"},
    {UINT64_C(0x8000000000000002), "-1.0e-323"},
    {UINT64_C(0x8000000000000003), "-1.5e-323"},
    {UINT64_C(0x800FFFFFFFFFFFFF), "-2.225073858507201e-308"},
    {UINT64_C(0x8010000000000000), "-2.2250738585072014e-308"},
    {UINT64_C(0xFFEFFFFFFFFFFFFF), "-1.7976931348623157e308"},
};

/* ---- helpers ------------------------------------------------------------ */

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex) / 2;
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) {
        char byte[3] = {hex[2 * i], hex[2 * i + 1], 0};
        out[i] = (uint8_t)strtoul(byte, NULL, 16);
    }
    return n;
}

/* Prints and returns the result code; *text gets the output as a C string. */
static int print_bytes(const uint8_t *term, size_t len, edist_buf *out,
                       const edist_text_opts *opts)
{
    edist_buf_reset(out);
    return edist_term_print(term, len, out, opts);
}

static void assert_prints(const uint8_t *term, size_t len, const char *expected)
{
    edist_buf out;
    edist_buf_init(&out);
    assert_int_equal(print_bytes(term, len, &out, NULL), 0);
    assert_string_equal(edist_buf_cstr(&out), expected);
    edist_buf_free(&out);
}

static int print_hex(const char *hex, edist_buf *out, const edist_text_opts *opts)
{
    uint8_t term[512];
    size_t len = unhex(hex, term, sizeof term);
    return print_bytes(term, len, out, opts);
}

/* ---- erl vectors ----------------------------------------------------------- */

static void erl_vectors_match(void **state)
{
    (void)state;
    uint8_t term[2048];
    for (size_t i = 0; i < sizeof erl_vectors / sizeof erl_vectors[0]; i++) {
        size_t len = unhex(erl_vectors[i].hex, term, sizeof term);
        assert_prints(term, len, erl_vectors[i].text);
        /* The same term without its version byte prints the same. */
        if (term[1] != EDIST_TAG_COMPRESSED)
            assert_prints(term + 1, len - 1, erl_vectors[i].text);
    }
}

static void erl_floats_match(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof erl_floats / sizeof erl_floats[0]; i++) {
        uint8_t term[9] = {EDIST_TAG_NEW_FLOAT};
        for (int k = 0; k < 8; k++)
            term[1 + k] = (uint8_t)(erl_floats[i].bits >> (56 - 8 * k));
        assert_prints(term, sizeof term, erl_floats[i].text);
    }
}

/* Encoder round trip: doubles built in C print as OTP would. */
static void encoded_doubles(void **state)
{
    (void)state;
    static const struct { double v; const char *text; } cases[] = {
        {1.0, "1.0"}, {-2.5, "-2.5"}, {1e21, "1.0e21"}, {0.1 + 0.2, "0.30000000000000004"},
        {9007199254740993.0, "9.007199254740992e15"}, {1e-5, "1.0e-5"}, {0.001, "0.001"},
    };
    edist_buf b, out;
    edist_buf_init(&b);
    edist_buf_init(&out);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        edist_buf_reset(&b);
        assert_int_equal(edist_enc_double(&b, cases[i].v), 0);
        assert_int_equal(print_bytes(b.data, b.len, &out, NULL), 0);
        assert_string_equal(edist_buf_cstr(&out), cases[i].text);
    }
    edist_buf_free(&b);
    edist_buf_free(&out);
}

/* ---- maps keep the encoded order ------------------------------------------ */

/* erts sorts small maps while decoding and prints maps of more than 32 keys
 * in its internal hash order; the printer shows pairs as encoded, which is
 * erts' order for everything term_to_binary writes with up to 32 keys. */
static void map_pairs_in_encoded_order(void **state)
{
    (void)state;
    static const uint8_t map[] = {116, 0, 0, 0, 2, 119, 1, 'b', 97, 1, 119, 1, 'a', 97, 2};
    assert_prints(map, sizeof map, "#{b => 1,a => 2}");
}

/* ---- remote nodes --------------------------------------------------------- */

static void remote_node_numbers(void **state)
{
    (void)state;
    edist_buf out;
    edist_buf_init(&out);
    /* <N.7.8> of foo@host, as SMALL_ATOM_UTF8 and as latin-1 ATOM_EXT */
    assert_int_equal(print_hex("83587708666F6F40686F7374000000070000000800000001", &out, NULL), 0);
    char first[64];
    snprintf(first, sizeof first, "%s", edist_buf_cstr(&out));
    unsigned node = 0, id = 0, serial = 0;
    assert_int_equal(sscanf(first, "<%u.%u.%u>", &node, &id, &serial), 3);
    assert_true(node >= 1 && node <= 65535);
    assert_int_equal(id, 7);
    assert_int_equal(serial, 8);
    assert_int_equal(print_hex("8358640008666F6F40686F7374000000070000000800000002", &out, NULL), 0);
    assert_string_equal(edist_buf_cstr(&out), first);
    /* Another node gets another number (for these two names). */
    assert_int_equal(print_hex("8358770862617240686F7374000000070000000800000001", &out, NULL), 0);
    assert_string_not_equal(edist_buf_cstr(&out), first);
    /* With local_node = foo@host the same pid is local. */
    edist_text_opts opts = {.local_node = "foo@host"};
    assert_int_equal(print_hex("83587708666F6F40686F7374000000070000000800000001", &out, &opts), 0);
    assert_string_equal(edist_buf_cstr(&out), "<0.7.8>");
    /* ...and nonode@nohost is then remote. */
    assert_int_equal(print_hex("8358770D6E6F6E6F6465406E6F686F7374000000090000000000000000",
                               &out, &opts), 0);
    assert_string_not_equal(edist_buf_cstr(&out), "<0.9.0>");

    /* Remote refs print exactly their words (erts pads only local ones). */
    char expected[64];
    assert_int_equal(print_hex("835A00017708666F6F40686F73740000000100000007", &out, NULL), 0);
    snprintf(expected, sizeof expected, "#Ref<%u.7>", node);
    assert_string_equal(edist_buf_cstr(&out), expected);
    assert_int_equal(print_hex("835A00047708666F6F40686F7374000000010000000700000008000000090000000A",
                               &out, NULL), 0);
    snprintf(expected, sizeof expected, "#Ref<%u.10.9.8.7>", node);
    assert_string_equal(edist_buf_cstr(&out), expected);
    /* Ports (V4 with a 64-bit id). */
    assert_int_equal(print_hex("83787708666F6F40686F7374000000012345678900000001", &out, NULL), 0);
    snprintf(expected, sizeof expected, "#Port<%u.4886718345>", node);
    assert_string_equal(edist_buf_cstr(&out), expected);
    edist_buf_free(&out);
}

/* ---- malformed input ------------------------------------------------------ */

static void malformed_input_fails(void **state)
{
    (void)state;
    static const struct { const char *hex; int err; } cases[] = {
        {"", EDIST_ETRUNC},
        {"83", EDIST_ETRUNC},
        {"68026101", EDIST_ETRUNC},              /* tuple of 2, one element */
        {"6C000000016101", EDIST_ETRUNC},        /* list without its tail */
        {"FF", EDIST_EBADTAG},
        {"6801FF", EDIST_EBADTAG},               /* bad tag inside a tuple */
        {"610161", EDIST_EBADTERM},              /* bytes after the term */
        {"7705616263", EDIST_ETRUNC},            /* atom longer than input */
        {"7701FF", EDIST_EBADTERM},              /* atom is not UTF-8 */
        {"467FF8000000000000", EDIST_EBADTERM},  /* NaN */
        {"4D0000000109FF", EDIST_EBADTERM},      /* 9 bits in the last byte */
        {"7400000001610161", EDIST_ETRUNC},      /* map value missing */
        {"8350000000080000", EDIST_ECOMPRESS},   /* bad zlib data */
        /* LIST_EXT of 0 elements: erts reads it as its tail but never
         * writes it; the decoder refuses it (docs/DESIGN.md). */
        {"836C0000000064000161", EDIST_EBADTERM},
        {"836C0000000161016C0000000064000178", EDIST_EBADTERM},
    };
    edist_buf out;
    edist_buf_init(&out);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = print_hex(cases[i].hex, &out, NULL);
        if (rc != cases[i].err)
            fail_msg("case %zu (%s): got %d, want %d", i, cases[i].hex, rc, cases[i].err);
        assert_int_equal(out.len, 0);
    }
    assert_int_equal(edist_term_print(NULL, 1, &out, NULL), EDIST_EINVAL);
    assert_int_equal(edist_term_print("\x6a", 1, NULL, NULL), EDIST_EINVAL);
    edist_buf_free(&out);
}

/* Output is appended; a failure leaves what was there before untouched. */
static void appends_and_rolls_back(void **state)
{
    (void)state;
    edist_buf out;
    edist_buf_init(&out);
    assert_int_equal(edist_buf_append(&out, "x=", 2), 0);
    static const uint8_t good[] = {104, 2, 97, 1, 106};
    static const uint8_t bad[] = {104, 3, 97, 1, 106};
    assert_int_equal(edist_term_print(good, sizeof good, &out, NULL), 0);
    assert_string_equal(edist_buf_cstr(&out), "x={1,[]}");
    assert_int_equal(edist_term_print(bad, sizeof bad, &out, NULL), EDIST_ETRUNC);
    assert_string_equal(edist_buf_cstr(&out), "x={1,[]}");
    edist_buf_free(&out);
}

static void fixed_buffer_too_small(void **state)
{
    (void)state;
    uint8_t mem[8];
    edist_buf out;
    edist_buf_init_fixed(&out, mem, sizeof mem);
    static const uint8_t list[] = {107, 0, 3, 1, 2, 3}; /* "[1,2,3]" fits */
    assert_int_equal(edist_term_print(list, sizeof list, &out, NULL), 0);
    assert_int_equal(out.len, 7);
    static const uint8_t longer[] = {107, 0, 3, 100, 200, 255};
    edist_buf_reset(&out);
    assert_int_equal(edist_term_print(longer, sizeof longer, &out, NULL), EDIST_ENOSPC);
    assert_int_equal(out.len, 0);
}

/* ---- depth ------------------------------------------------------------------ */

/* depth nested 1-tuples around [] */
static uint8_t *nested_tuples(size_t depth, size_t *len)
{
    uint8_t *t = malloc(2 * depth + 1);
    assert_non_null(t);
    for (size_t i = 0; i < depth; i++) {
        t[2 * i] = EDIST_TAG_SMALL_TUPLE;
        t[2 * i + 1] = 1;
    }
    t[2 * depth] = EDIST_TAG_NIL;
    *len = 2 * depth + 1;
    return t;
}

static void depth_limit_option(void **state)
{
    (void)state;
    edist_text_opts opts = {.max_depth = 3};
    edist_buf out;
    edist_buf_init(&out);
    size_t len;
    uint8_t *t = nested_tuples(3, &len);
    assert_int_equal(print_bytes(t, len, &out, &opts), 0);
    assert_string_equal(edist_buf_cstr(&out), "{{{[]}}}");
    free(t);
    t = nested_tuples(4, &len);
    assert_int_equal(print_bytes(t, len, &out, &opts), EDIST_EDEPTH);
    assert_int_equal(out.len, 0);
    free(t);
    /* A map value counts as one level too. */
    static const uint8_t map[] = {116, 0, 0, 0, 1, 97, 1, 104, 1, 104, 1, 106};
    assert_int_equal(print_bytes(map, sizeof map, &out, &opts), 0);
    assert_string_equal(edist_buf_cstr(&out), "#{1 => {{[]}}}");
    opts.max_depth = 2;
    assert_int_equal(print_bytes(map, sizeof map, &out, &opts), EDIST_EDEPTH);
    edist_buf_free(&out);
}

/* The default limit (100000) is reached without using the C stack. */
static void default_depth_limit(void **state)
{
    (void)state;
    edist_buf out;
    edist_buf_init(&out);
    size_t len;
    uint8_t *t = nested_tuples(EDIST_DEFAULT_MAX_DEPTH, &len);
    assert_int_equal(print_bytes(t, len, &out, NULL), 0);
    assert_int_equal(out.len, 2 * (size_t)EDIST_DEFAULT_MAX_DEPTH + 2);
    assert_memory_equal(out.data, "{{{", 3);
    assert_memory_equal(out.data + EDIST_DEFAULT_MAX_DEPTH - 1, "{[]}", 4);
    free(t);
    t = nested_tuples(EDIST_DEFAULT_MAX_DEPTH + 1, &len);
    assert_int_equal(print_bytes(t, len, &out, NULL), EDIST_EDEPTH);
    free(t);
    edist_buf_free(&out);
}

/* A chain of LIST_EXT tails is one flat list and costs no depth. */
static void list_tail_chain_is_flat(void **state)
{
    (void)state;
    const size_t links = 200000;
    size_t len = links * 7 + 1;
    uint8_t *t = malloc(len);
    assert_non_null(t);
    for (size_t i = 0; i < links; i++) {
        uint8_t *p = t + 7 * i;
        p[0] = EDIST_TAG_LIST;
        p[1] = p[2] = p[3] = 0;
        p[4] = 1;
        p[5] = EDIST_TAG_SMALL_INTEGER;
        p[6] = 7;
    }
    t[len - 1] = EDIST_TAG_NIL;
    edist_buf out;
    edist_buf_init(&out);
    edist_text_opts opts = {.max_depth = 1};
    assert_int_equal(print_bytes(t, len, &out, &opts), 0);
    assert_int_equal(out.len, 2 * links + 1);
    assert_memory_equal(out.data, "[7,7,", 5);
    assert_memory_equal(out.data + out.len - 4, "7,7]", 4);
    assert_int_equal(print_bytes(t, len - 1, &out, &opts), EDIST_ETRUNC);
    free(t);
    edist_buf_free(&out);
}

/* ---- large output ----------------------------------------------------------- */

static void megabyte_binary(void **state)
{
    (void)state;
    const size_t n = 1u << 20;
    uint8_t *t = malloc(n + 5);
    assert_non_null(t);
    t[0] = EDIST_TAG_BINARY;
    t[1] = 0;
    t[2] = 0x10;
    t[3] = t[4] = 0;
    memset(t + 5, 255, n);
    edist_buf out;
    edist_buf_init(&out);
    assert_int_equal(print_bytes(t, n + 5, &out, NULL), 0);
    assert_int_equal(out.len, 4 * n - 1 + 4);
    assert_memory_equal(out.data + out.len - 10, ",255,255>>", 10);
    free(t);
    edist_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(erl_vectors_match),
        cmocka_unit_test(erl_floats_match),
        cmocka_unit_test(encoded_doubles),
        cmocka_unit_test(map_pairs_in_encoded_order),
        cmocka_unit_test(remote_node_numbers),
        cmocka_unit_test(malformed_input_fails),
        cmocka_unit_test(appends_and_rolls_back),
        cmocka_unit_test(fixed_buffer_too_small),
        cmocka_unit_test(depth_limit_option),
        cmocka_unit_test(default_depth_limit),
        cmocka_unit_test(list_tail_chain_is_flat),
        cmocka_unit_test(megabyte_binary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
