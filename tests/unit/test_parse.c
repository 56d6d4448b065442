/* SPDX-License-Identifier: Apache-2.0 */
/* edist_term_parse: Erlang text -> canonical ETF. Expected bytes come from
 * OTP 25: term_to_binary(T, [{minor_version, 2}]) after its 131 byte, with T
 * from erl_scan + erl_parse:parse_term on the same text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka needs the headers above first */
#include <cmocka.h>

#include "edist/term.h"

static const struct {
    const char *text;
    const char *hex; /* expected encoding */
} erl_table[] = {
    {"0", "6100"},
    {"255", "61ff"},
    {"256", "6200000100"},
    {"-1", "62ffffffff"},
    {"-2147483648", "6280000000"},
    {"2147483647", "627fffffff"},
    {"2147483648", "6e040000000080"},
    {"-2147483649", "6e040101000080"},
    {"9223372036854775807", "6e0800ffffffffffffff7f"},
    {"9223372036854775808", "6e08000000000000000080"},
    {"-9223372036854775809", "6e08010100000000000080"},
    {"18446744073709551616", "6e0900000000000000000001"},
    {"123456789012345678901234567890123456789012345678901234567890",
     "6e1900d20a3fce96f1cf8c9cb4378c37a4873f17621ebce404f5aa13"},
    {"-123456789012345678901234567890123456789012345678901234567890",
     "6e1901d20a3fce96f1cf8c9cb4378c37a4873f17621ebce404f5aa13"},
    {"16#FF", "61ff"},
    {"16#ff_ff", "620000ffff"},
    {"2#1010", "610a"},
    {"36#zz", "620000050f"},
    {"16#FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
     "6e1400ffffffffffffffffffffffffffffffffffffffff"},
    {"-16#80", "62ffffff80"},
    {"1_000_000", "62000f4240"},
    {"+5", "6105"},
    {"- 5", "62fffffffb"},
    {"-(1)", "62ffffffff"},
    {"((a))", "770161"},
    {"- $a", "62ffffff9f"},
    {"$a", "6161"},
    {"$\\n", "610a"},
    {"$\\t", "6109"},
    {"$\\s", "6120"},
    {"$\\e", "611b"},
    {"$\\d", "617f"},
    {"$\\b", "6108"},
    {"$\\f", "610c"},
    {"$\\r", "610d"},
    {"$\\v", "610b"},
    {"$\\\\", "615c"},
    {"$\\'", "6127"},
    {"$\\\"", "6122"},
    {"$\\x41", "6141"},
    {"$\\x{41}", "6141"},
    {"$\\x{10FFFF}", "620010ffff"},
    {"$\\101", "6141"},
    {"$\\7", "6107"},
    {"$\\0", "6100"},
    {"$\\^a", "6101"},
    {"$\\^Z", "611a"},
    {"$\\z", "617a"},
    {"$ ", "6120"},
    {"$é", "61e9"},
    {"$€", "62000020ac"},
    {"1.5", "463ff8000000000000"},
    {"-1.5e10", "46c20bf08eb0000000"},
    {"1.0e-5", "463ee4f8b588e368f1"},
    {"1.0E5", "4640f86a0000000000"},
    {"1.0e+5", "4640f86a0000000000"},
    {"0.1", "463fb999999999999a"},
    {"1.7976931348623157e308", "467fefffffffffffff"},
    {"4.9e-324", "460000000000000001"},
    {"1.0e-400", "460000000000000000"},
    {"-0.0", "468000000000000000"},
    {"1_0.5_5", "46402519999999999a"},
    {"atom", "770461746f6d"},
    {"'Quoted atom'", "770b51756f7465642061746f6d"},
    {"'a\\nb\\x{263A}'", "7706610a62e298ba"},
    {"'é'", "7702c3a9"},
    {"école", "7706c3a9636f6c65"},
    {"true", "770474727565"},
    {"a@b_C9", "77066140625f4339"},
    {"'fun'", "770366756e"},
    {"''", "7700"},
    {"\"abc\"", "6b0003616263"},
    {"\"a\\\"b\\\\c\"", "6b00056122625c63"},
    {"\"\\x{263A}\"", "6c00000001620000263a6a"},
    {"\"é\"", "6b0001e9"},
    {"\"ab\" \"cd\"", "6b000461626364"},
    {"\"\"", "6a"},
    {"\"\\101\\x42\\^c\\s\"", "6b000441420320"},
    {"[]", "6a"},
    {"[97,98,99]", "6b0003616263"},
    {"[256]", "6c0000000162000001006a"},
    {"[1|2]", "6c0000000161016102"},
    {"[1,2|[3,4]]", "6b000401020304"},
    {"[1|[2|[3|[]]]]", "6b0003010203"},
    {"[$a|\"bc\"]", "6b0003616263"},
    {"[\"a\"|\"b\"]", "6c000000026b00016161626a"},
    {"[a|b]", "6c00000001770161770162"},
    {"[[]]", "6c000000016a6a"},
    {"[-1]", "6c0000000162ffffffff6a"},
    {"{}", "6800"},
    {"{a,b,c}", "6803770161770162770163"},
    {"{1,{2,{3}}}", "680261016802610268016103"},
    {"<<>>", "6d00000000"},
    {"<<1,2,300>>", "6d0000000301022c"},
    {"<<\"abc\">>", "6d00000003616263"},
    {"<<\"€\"/utf8>>", "6d00000003e282ac"},
    {"<<\"€\">>", "6d00000001ac"},
    {"<<8364/utf8>>", "6d00000003e282ac"},
    {"<<1:3>>", "4d000000010320"},
    {"<<-1:70>>", "4d0000000906fffffffffffffffffc"},
    {"<<16#123:12/little>>", "4d00000002042310"},
    {"<<1.5/float>>", "6d000000083ff8000000000000"},
    {"<<1.5:32/float>>", "6d000000043fc00000"},
    {"<<1.5:16/float>>", "6d000000023e00"},
    {"<<1.5:32/float-little>>", "6d000000040000c03f"},
    {"<<1/float>>", "6d000000083ff0000000000000"},
    {"<<1:8/unit:8>>", "6d000000080000000000000001"},
    {"<<\"ab\"/utf16-little>>", "6d0000000461006200"},
    {"<<128512/utf16>>", "6d00000004d83dde00"},
    {"<<\"ab\"/utf32>>", "6d000000080000006100000062"},
    {"<<<<1:3>>/bits, 1:5>>", "6d0000000121"},
    {"<<<<1,2,3>>:2/binary>>", "6d000000020102"},
    {"<<65520.0:16/float>>", "6d000000027c00"},
    {"<<1.0e300:32/float>>", "6d000000047f800000"},
    {"<<-300:16/big-signed-integer>>", "6d00000002fed4"},
    {"<<-123456789012345678901234567890:100/little>>",
     "4d0000000d042ef5c0b1111f8c3c09f01671e0"},
    {"#{}", "7400000000"},
    {"#{b => 1, a => 2}", "740000000277016161027701626101"},
    {"#{1.0 => a, 1 => b, x => c}",
     "74000000036101770162463ff0000000000000770161770178770163"},
    {"#{a => 1, a => 2}", "74000000017701616102"},
    {"#{[] => 1, {} => 2, <<>> => 3, \"a\" => 4, a => 5, 1 => 6, 1.5 => 7}",
     "740000000761016106463ff800000000000061077701616105680061026a6101"
     "6b00016161046d000000006103"},
    {"#{#{b=>1,a=>2} => x, #{a=>1} => y}",
     "7400000002740000000177016161017701797400000002770161610277016261"
     "01770178"},
    {"#{\"ab\" => 1, \"a\" => 2, [1] => 3, [0,1] => 4}",
     "74000000046b0002000161046b00010161036b00016161026b000261626101"},
    {"fun erlang:abs/1", "71770665726c616e6777036162736101"},
    {"{ok, [1, 2], #{k => \"v\"}, <<\"b\">>}.",
     "680477026f6b6b00020102740000000177016b6b0001766d0000000162"},
};

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex) / 2;
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

/* Parse text (NUL-terminated) with default options; returns the result and
 * leaves the bytes in *b. */
static int parse(const char *text, edist_buf *b, edist_parse_error *pe)
{
    edist_buf_init(b);
    return edist_term_parse(text, strlen(text), b, NULL, pe);
}

static void assert_parses_to(const char *text, const uint8_t *want,
                             size_t want_len)
{
    edist_buf b;
    edist_parse_error pe;
    int rc = parse(text, &b, &pe);
    if (rc != 0)
        print_error("%s: rc %d at %u:%u: %s\n", text, rc, pe.line, pe.column,
                    pe.message);
    assert_int_equal(rc, 0);
    if (b.len != want_len || memcmp(b.data, want, want_len) != 0)
        print_error("%s: bytes differ from erl\n", text);
    assert_int_equal(b.len, want_len);
    assert_memory_equal(b.data, want, want_len);
    edist_buf_free(&b);
}

static void matches_erl_term_to_binary(void **state)
{
    (void)state;
    uint8_t want[256];
    for (size_t i = 0; i < sizeof erl_table / sizeof erl_table[0]; i++) {
        size_t n = unhex(erl_table[i].hex, want, sizeof want);
        assert_parses_to(erl_table[i].text, want, n);
    }
}

static void string_and_integer_list_are_one_term(void **state)
{
    (void)state;
    edist_buf a, b;
    assert_int_equal(parse("\"abc\"", &a, NULL), 0);
    assert_int_equal(parse("[97, 98, 99]", &b, NULL), 0);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    assert_int_equal(a.data[0], EDIST_TAG_STRING);
    edist_buf_free(&a);
    edist_buf_free(&b);
}

/* 65535 byte-sized elements are a STRING_EXT, one more is a LIST_EXT. */
static void long_strings_become_lists(void **state)
{
    (void)state;
    for (size_t n = 65535; n <= 65536; n++) {
        char *text = malloc(n + 3);
        assert_non_null(text);
        text[0] = '"';
        memset(text + 1, 'a', n);
        text[n + 1] = '"';
        text[n + 2] = '\0';
        edist_buf b;
        assert_int_equal(parse(text, &b, NULL), 0);
        if (n == 65535) {
            assert_int_equal(b.len, 3 + n);
            assert_int_equal(b.data[0], EDIST_TAG_STRING);
        } else {
            assert_int_equal(b.len, 5 + 2 * n + 1);
            assert_int_equal(b.data[0], EDIST_TAG_LIST);
            assert_int_equal(b.data[5], EDIST_TAG_SMALL_INTEGER);
            assert_int_equal(b.data[b.len - 1], EDIST_TAG_NIL);
        }
        edist_buf_free(&b);
        free(text);
    }
}

/* More than 32 keys: erts uses hash order there; we still sort. */
static void large_maps_are_sorted(void **state)
{
    (void)state;
    char text[1024];
    size_t at = (size_t)snprintf(text, sizeof text, "#{");
    for (int k = 40; k >= 1; k--)
        at += (size_t)snprintf(text + at, sizeof text - at, "%d => %d%s", k, k,
                               k > 1 ? ", " : "}");
    edist_buf b;
    assert_int_equal(parse(text, &b, NULL), 0);
    assert_int_equal(b.len, 5 + 40 * 4);
    assert_int_equal(b.data[0], EDIST_TAG_MAP);
    assert_int_equal(b.data[4], 40);
    for (int k = 1; k <= 40; k++) {
        assert_int_equal(b.data[5 + 4 * (k - 1) + 1], k);
        assert_int_equal(b.data[5 + 4 * (k - 1) + 3], k);
    }
    edist_buf_free(&b);
}

static void local_identifiers(void **state)
{
    (void)state;
    /* erl: list_to_pid("<0.85.0>"), list_to_port("#Port<0.5>"),
     * list_to_ref("#Ref<0.1.2.3>") on nonode@nohost */
    uint8_t want[64];
    size_t n = unhex("58770d6e6f6e6f6465406e6f686f7374000000550000000000000000",
                     want, sizeof want);
    assert_parses_to("<0.85.0>", want, n);
    n = unhex("59770d6e6f6e6f6465406e6f686f73740000000500000000", want,
              sizeof want);
    assert_parses_to("#Port<0.5>", want, n);
    n = unhex("5a0003770d6e6f6e6f6465406e6f686f7374000000000000000300000002"
              "00000001",
              want, sizeof want);
    assert_parses_to("#Ref<0.1.2.3>", want, n);

    edist_text_opts opts = {.local_node = "a@b", .local_creation = 7};
    edist_buf b;
    edist_buf_init(&b);
    const char *text = "[<0.1.2>, #Port<0.4294967296>, #Ref<0.9.8>]";
    assert_int_equal(edist_term_parse(text, strlen(text), &b, &opts, NULL), 0);
    edist_cursor c;
    edist_cursor_init(&c, b.data, b.len);
    uint32_t count;
    edist_pid pid;
    edist_port port;
    edist_ref ref;
    assert_int_equal(edist_dec_list(&c, &count), 0);
    assert_int_equal(count, 3);
    assert_int_equal(edist_dec_pid(&c, &pid), 0);
    assert_int_equal(edist_atom_eq(&pid.node, "a@b"), 1);
    assert_int_equal(pid.id, 1);
    assert_int_equal(pid.serial, 2);
    assert_int_equal(pid.creation, 7);
    assert_int_equal(edist_dec_port(&c, &port), 0);
    assert_true(port.id == 4294967296u);
    assert_int_equal(port.creation, 7);
    assert_int_equal(edist_dec_ref(&c, &ref), 0);
    assert_int_equal(ref.len, 2);
    assert_int_equal(ref.ids[0], 8); /* printed last-word first */
    assert_int_equal(ref.ids[1], 9);
    assert_int_equal(edist_dec_nil(&c), 0);
    edist_buf_free(&b);
}

static void comments_lines_and_final_dot(void **state)
{
    (void)state;
    const uint8_t want[] = {104, 2, 119, 1, 97, 119, 1, 98};
    assert_parses_to("% leading\n{a, % inline\n b}.  % trailing\n", want,
                     sizeof want);
    assert_parses_to("{a,b}.", want, sizeof want);
    assert_parses_to("\t{ a ,\r\n b }\n.\n", want, sizeof want);
}

static void syntax_errors_say_where(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint32_t line, column;
        const char *message; /* a substring */
    } cases[] = {
        {"{a, b", 1, 6, "expected ',' or '}' after tuple element"},
        {"{a b}", 1, 4, "expected ',' or '}' after tuple element"},
        {"[1,\n 2 3]", 2, 4, "expected ',', '|' or ']' after list element"},
        {"[1 | 2, 3]", 1, 7, "expected ']' after list tail"},
        {"\"abc", 1, 1, "unterminated string"},
        {"{ok,\n  'abc}", 2, 3, "unterminated quoted atom"},
        {"{ok, X}", 1, 6, "variables are not allowed in terms: X"},
        {"[_Ignored]", 1, 2, "variables are not allowed in terms: _Ignored"},
        {"1e5", 1, 2, "a float needs a fraction"},
        {"1.0e", 1, 1, "malformed float"},
        {"1.0e999", 1, 1, "float out of range"},
        {"37#1", 1, 1, "invalid base"},
        {"\"\\x{D800}\"", 1, 2, "not a valid character"},
        {"\"a\\xZZ\"", 1, 3, "malformed \\x escape"},
        {"#{a := 1}", 1, 5, "':=' is only valid in map patterns"},
        {"#{a => }", 1, 8, "expected a term"},
        {"<<1:7/float>>", 1, 3, "float segments must be 16, 32 or 64 bits"},
        {"<<\"a\"/binary>>", 1, 3, "cannot be a binary"},
        {"<<a>>", 1, 3, "binary segments must be"},
        {"<<1/utf8-unit:8>>", 1, 3, "take no size or unit"},
        {"case", 1, 1, "reserved word 'case'"},
        {"fun a/1", 1, 6, "expected ':'"},
        /* ~w's own text for funs that erl_scan/erl_parse refuse too:
         * reserved words and non-ASCII atoms are left unquoted, the latter
         * written one character per UTF-8 byte (fun 'a\x{e9}':c/1). */
        {"fun bxor:c/1", 1, 5, "reserved word 'bxor'"},
        {"fun m:div/1", 1, 7, "reserved word 'div'"},
        {"fun a\xc3\x83\xc2\xa9:c/1", 1, 7, "expected ':'"},
        {"<1.2.3>", 1, 1, "only local identifiers"},
        {"#Fun<erl_eval.6.1>", 1, 1, "local funs"},
        {"- a", 1, 1, "sign can only be applied to a number"},
        {"-(-1)", 1, 1, "sign can only be applied to a number"},
        {"#rec{}", 1, 2, "records are not supported"},
        {"{'\xc3\xa9', x y}", 1, 9, "expected ','"},
        {"\"\xff\"", 1, 2, "invalid UTF-8"},
        {"'\\x{263A}\xc3", 1, 10, "invalid UTF-8"},
        {"\xc5\x9d", 1, 1, "illegal character"},
        {"", 1, 1, "expected a term, found end of input"},
        {"a.b", 1, 3, "expected end of input"},
        {"(1", 1, 3, "expected ')'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        edist_buf b;
        edist_parse_error pe;
        int rc = parse(cases[i].text, &b, &pe);
        if (rc != EDIST_ESYNTAX || pe.line != cases[i].line ||
            pe.column != cases[i].column ||
            !strstr(pe.message, cases[i].message))
            print_error("%s: rc %d at %u:%u: %s\n", cases[i].text, rc, pe.line,
                        pe.column, pe.message);
        assert_int_equal(rc, EDIST_ESYNTAX);
        assert_int_equal(pe.line, cases[i].line);
        assert_int_equal(pe.column, cases[i].column);
        assert_non_null(strstr(pe.message, cases[i].message));
        assert_int_equal(b.len, 0);
        edist_buf_free(&b);
    }
    /* column counts characters, offset counts bytes */
    edist_buf b;
    edist_parse_error pe;
    assert_int_equal(parse("{'\xc3\xa9', x y}", &b, &pe), EDIST_ESYNTAX);
    assert_int_equal(pe.offset, 9);
    edist_buf_free(&b);
    /* a NULL perr is fine */
    edist_buf_init(&b);
    assert_int_equal(edist_term_parse("{", 1, &b, NULL, NULL), EDIST_ESYNTAX);
    edist_buf_free(&b);
}

static char *nested(size_t depth, char open, const char *inner, char close)
{
    size_t ilen = strlen(inner);
    char *s = malloc(2 * depth + ilen + 1);
    assert_non_null(s);
    memset(s, open, depth);
    memcpy(s + depth, inner, ilen);
    memset(s + depth + ilen, close, depth);
    s[2 * depth + ilen] = '\0';
    return s;
}

static void depth_is_bounded_without_recursion(void **state)
{
    (void)state;
    edist_text_opts opts = {.max_depth = 3};
    edist_buf b;
    edist_buf_init(&b);
    edist_parse_error pe;
    assert_int_equal(edist_term_parse("[[[1]]]", 7, &b, &opts, &pe), 0);
    edist_buf_reset(&b);
    assert_int_equal(edist_term_parse("[[[{1}]]]", 9, &b, &opts, &pe),
                     EDIST_EDEPTH);
    assert_int_equal(pe.column, 4);
    edist_buf_free(&b);

    /* Deep but allowed: the parser and encoder keep their own stacks. */
    char *deep = nested(50000, '[', "#{k => <<1>>}", ']');
    assert_int_equal(parse(deep, &b, NULL), 0);
    assert_int_equal(b.len, 50000 * 6 + 14);
    edist_buf_free(&b);
    free(deep);

    deep = nested(EDIST_DEFAULT_MAX_DEPTH + 1, '{', "", '}');
    assert_int_equal(parse(deep, &b, NULL), EDIST_EDEPTH);
    edist_buf_free(&b);
    free(deep);
}

static void bad_arguments_and_buffers(void **state)
{
    (void)state;
    edist_buf b;
    edist_buf_init(&b);
    assert_int_equal(edist_term_parse("a", 1, NULL, NULL, NULL), EDIST_EINVAL);
    assert_int_equal(edist_term_parse(NULL, 1, &b, NULL, NULL), EDIST_EINVAL);
    assert_int_equal(edist_term_parse(NULL, 0, &b, NULL, NULL), EDIST_ESYNTAX);

    /* Appends after what the buffer holds. */
    assert_int_equal(edist_buf_append(&b, "x", 1), 0);
    assert_int_equal(edist_term_parse("1", 1, &b, NULL, NULL), 0);
    assert_int_equal(b.len, 3);
    assert_int_equal(b.data[1], EDIST_TAG_SMALL_INTEGER);
    edist_buf_free(&b);

    uint8_t mem[4];
    edist_buf fixed;
    edist_buf_init_fixed(&fixed, mem, sizeof mem);
    assert_int_equal(edist_term_parse("{a,b}", 5, &fixed, NULL, NULL),
                     EDIST_ENOSPC);
    assert_int_equal(edist_term_parse("1", 1, &fixed, NULL, NULL),
                     EDIST_ENOSPC); /* sticky */
}

static void huge_binary_literals_are_refused(void **state)
{
    (void)state;
    edist_buf b;
    edist_parse_error pe;
    assert_int_equal(parse("<<0:100000000000>>", &b, &pe), EDIST_ENOMEM);
    assert_non_null(strstr(pe.message, "too large"));
    edist_buf_free(&b);
    assert_int_equal(parse("<<0:80000>>", &b, NULL), 0);
    assert_int_equal(b.len, 5 + 10000);
    edist_buf_free(&b);
}

/* #{#{#{...} => 2, z => 1} => 2, z => 1}: each level re-encodes its key to
 * sort it, so the work is bounded (linear in the input) rather than let
 * grow quadratically. */
static char *nested_map_keys(int depth)
{
    char *s = malloc((size_t)depth * 12 + 2);
    assert_non_null(s);
    size_t at = 0;
    for (int i = 0; i < depth; i++)
        at += (size_t)sprintf(s + at, "#{z=>1,");
    s[at++] = '1';
    for (int i = 0; i < depth; i++)
        at += (size_t)sprintf(s + at, "=>2}");
    s[at] = '\0';
    return s;
}

static void map_key_sorting_work_is_bounded(void **state)
{
    (void)state;
    edist_buf b;
    edist_parse_error pe;
    char *text = nested_map_keys(30);
    assert_int_equal(parse(text, &b, &pe), 0);
    assert_int_equal(b.data[0], EDIST_TAG_MAP);
    assert_int_equal(b.data[5], EDIST_TAG_SMALL_ATOM_UTF8); /* z < any map */
    edist_buf_free(&b);
    free(text);
    text = nested_map_keys(5000);
    assert_int_equal(parse(text, &b, &pe), EDIST_ENOMEM);
    assert_non_null(strstr(pe.message, "nest too deeply"));
    edist_buf_free(&b);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matches_erl_term_to_binary),
        cmocka_unit_test(string_and_integer_list_are_one_term),
        cmocka_unit_test(long_strings_become_lists),
        cmocka_unit_test(large_maps_are_sorted),
        cmocka_unit_test(local_identifiers),
        cmocka_unit_test(comments_lines_and_final_dot),
        cmocka_unit_test(syntax_errors_say_where),
        cmocka_unit_test(depth_is_bounded_without_recursion),
        cmocka_unit_test(bad_arguments_and_buffers),
        cmocka_unit_test(huge_binary_literals_are_refused),
        cmocka_unit_test(map_key_sorting_work_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
