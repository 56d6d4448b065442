/* SPDX-License-Identifier: Apache-2.0 */
/* Selective-receive patterns: edist_pattern_compile, edist_match and the
 * variable helpers. Messages are built with edist_term_parse or by hand when
 * a non-canonical encoding is the point. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* cmocka needs the headers above first */
#include <cmocka.h>

#include "edist/term.h"

typedef struct msg {
    edist_buf b;
} msg;

static void make(msg *m, const char *text)
{
    edist_buf_init(&m->b);
    edist_parse_error pe;
    int rc = edist_term_parse(text, strlen(text), &m->b, NULL, &pe);
    if (rc != 0)
        print_error("%s: %s\n", text, pe.message);
    assert_int_equal(rc, 0);
}

static edist_pattern *compile(const char *text)
{
    edist_pattern *p = NULL;
    edist_parse_error pe;
    int rc = edist_pattern_compile(text, strlen(text), &p, &pe);
    if (rc != 0)
        print_error("%s: %s\n", text, pe.message);
    assert_int_equal(rc, 0);
    assert_non_null(p);
    return p;
}

/* The message of the last match_text call: captured views point into it,
 * so it lives until the next call. */
static edist_buf held;

/* Match text against the message text; vars are cleared first. */
static int match_text(const char *pattern, const char *message,
                      edist_term_view *vars)
{
    edist_pattern *p = compile(pattern);
    msg m;
    make(&m, message);
    edist_buf_free(&held);
    held = m.b;
    uint32_t n = edist_pattern_var_count(p);
    if (vars)
        memset(vars, 0, n * sizeof *vars);
    int rc = edist_match(p, held.data, held.len, vars);
    edist_pattern_free(p);
    return rc;
}

static void assert_view_is(const edist_term_view *v, const char *text)
{
    msg m;
    make(&m, text);
    assert_non_null(v->ptr);
    assert_int_equal(edist_term_equal(v->ptr, v->len, m.b.data, m.b.len), 1);
    edist_buf_free(&m.b);
}

static void doc_example_response(void **state)
{
    (void)state;
    edist_pattern *p = compile("{response, Ref, Value}");
    assert_int_equal(edist_pattern_var_count(p), 2);
    int ref = edist_pattern_var_index(p, "Ref");
    int value = edist_pattern_var_index(p, "Value");
    assert_int_equal(ref, 0);
    assert_int_equal(value, 1);

    msg good, other_ref, mine;
    make(&good, "{response, #Ref<0.1.2.3>, {ok, [1,2,3]}}");
    make(&other_ref, "{response, #Ref<0.1.2.4>, {ok, [1,2,3]}}");
    make(&mine, "#Ref<0.1.2.3>");

    /* Ref unbound: both captured, as views into the message */
    edist_term_view vars[2] = {{0}};
    assert_int_equal(edist_match(p, good.b.data, good.b.len, vars), 1);
    assert_view_is(&vars[ref], "#Ref<0.1.2.3>");
    assert_view_is(&vars[value], "{ok, [1,2,3]}");
    assert_true(vars[value].ptr > good.b.data &&
                vars[value].ptr + vars[value].len == good.b.data + good.b.len);

    /* Ref bound: only that reply matches; Value stays unbound on a miss */
    memset(vars, 0, sizeof vars);
    vars[ref].ptr = mine.b.data;
    vars[ref].len = mine.b.len;
    assert_int_equal(edist_match(p, other_ref.b.data, other_ref.b.len, vars),
                     0);
    assert_null(vars[value].ptr);
    assert_ptr_equal(vars[ref].ptr, mine.b.data);
    assert_int_equal(edist_match(p, good.b.data, good.b.len, vars), 1);
    assert_view_is(&vars[value], "{ok, [1,2,3]}");

    /* the external form (leading 131) is accepted too */
    uint8_t ext[128];
    ext[0] = EDIST_TAG_VERSION;
    memcpy(ext + 1, good.b.data, good.b.len);
    memset(vars, 0, sizeof vars);
    assert_int_equal(edist_match(p, ext, good.b.len + 1, vars), 1);
    assert_ptr_equal(vars[ref].ptr, ext + 1 + 2 + 10); /* after {, response */

    edist_buf_free(&good.b);
    edist_buf_free(&other_ref.b);
    edist_buf_free(&mine.b);
    edist_pattern_free(p);
}

static void nested_patterns(void **state)
{
    (void)state;
    edist_term_view v[3];
    const char *pat = "{event, [X, {point, Y}], #{kind := Z}}";
    assert_int_equal(match_text(pat,
                                "{event, [1, {point, 2.5}], "
                                "#{a => b, kind => click}}",
                                v),
                     1);
    assert_view_is(&v[0], "1");
    assert_view_is(&v[1], "2.5");
    assert_view_is(&v[2], "click");
    assert_int_equal(match_text(pat,
                                "{event, [1, {point, 2.5}, 3], "
                                "#{kind => click}}",
                                v),
                     0);
    assert_null(v[0].ptr);
    assert_null(v[1].ptr);
    assert_int_equal(
        match_text(pat, "{event, [1, {line, 2.5}], #{kind => x}}", v), 0);
    assert_int_equal(
        match_text(pat, "{event, [1, {point, 2}], #{kin => x}}", v), 0);
    assert_null(v[2].ptr);
}

static void repeated_variables(void **state)
{
    (void)state;
    edist_term_view v[1];
    assert_int_equal(match_text("{X, X}", "{[a, {b}], [a, {b}]}", v), 1);
    assert_view_is(&v[0], "[a, {b}]");
    assert_int_equal(match_text("{X, X}", "{1, 2}", v), 0);
    assert_null(v[0].ptr);
    assert_int_equal(match_text("{X, [X | _]}", "{a, [a, b]}", v), 1);

    /* equal terms in different encodings: 'abc' as ATOM_EXT (latin-1) and as
     * SMALL_ATOM_UTF8_EXT; [1,2] as LIST_EXT and as STRING_EXT */
    const uint8_t msg1[] = {104, 2,   100, 0,   3,   'a', 'b',
                            'c', 119, 3,   'a', 'b', 'c'};
    edist_pattern *p = compile("{X, X}");
    memset(v, 0, sizeof v);
    assert_int_equal(edist_match(p, msg1, sizeof msg1, v), 1);
    assert_ptr_equal(v[0].ptr, msg1 + 2);
    const uint8_t msg2[] = {104, 2, 108, 0,   0, 0, 2, 97, 1,
                            97,  2, 106, 107, 0, 2, 1, 2};
    memset(v, 0, sizeof v);
    assert_int_equal(edist_match(p, msg2, sizeof msg2, v), 1);
    edist_pattern_free(p);

    /* literals too: "ab" in a pattern equals a LIST_EXT [97,98] */
    const uint8_t msg3[] = {104, 2, 119, 2,  'o', 'k', 108, 0,
                            0,   0, 2,   97, 97,  97,  98,  106};
    p = compile("{ok, \"ab\"}");
    assert_int_equal(edist_match(p, msg3, sizeof msg3, NULL), 1);
    edist_pattern_free(p);
}

static void anonymous_and_underscore_names(void **state)
{
    (void)state;
    edist_pattern *p = compile("{_, _Skip, _, Keep}");
    assert_int_equal(edist_pattern_var_count(p), 2); /* `_` never binds */
    assert_string_equal(edist_pattern_var_name(p, 0), "_Skip");
    assert_string_equal(edist_pattern_var_name(p, 1), "Keep");
    assert_null(edist_pattern_var_name(p, 2));
    assert_int_equal(edist_pattern_var_index(p, "_"), EDIST_ENOTFOUND);
    assert_int_equal(edist_pattern_var_index(p, "Nope"), EDIST_ENOTFOUND);
    edist_pattern_free(p);

    edist_term_view v[2];
    assert_int_equal(match_text("{_, _Skip, _, Keep}", "{1, 2, 3, 4}", v), 1);
    assert_view_is(&v[0], "2");
    assert_view_is(&v[1], "4");
    /* `_Name` binds like Erlang: twice means equal */
    assert_int_equal(match_text("{_A, _A}", "{1, 2}", v), 0);
    assert_int_equal(match_text("{_, _}", "{1, 2}", NULL), 1);
    assert_int_equal(match_text("_", "{1, 2}", NULL), 1);
}

static void wrong_shape_fails_fast(void **state)
{
    (void)state;
    edist_term_view v[1];
    assert_int_equal(match_text("{a, X}", "{a, b, c}", v), 0);
    assert_int_equal(match_text("{a, X}", "{a}", v), 0);
    assert_int_equal(match_text("{a, X}", "[a, b]", v), 0);
    assert_int_equal(match_text("[X]", "[]", v), 0);
    assert_int_equal(match_text("#{a := X}", "{a, 1}", v), 0);
    assert_int_equal(match_text("#{a := X}", "#{}", v), 0);
    assert_null(v[0].ptr);

    /* The arity check rejects without reading the elements, which may even
     * be malformed; likewise a `_` at the end is never read. */
    const uint8_t bad_tail[] = {104, 3, 119, 1, 'a', 97, 1, 0xFF, 0xFF};
    edist_pattern *p = compile("{a, X, Y, Z}");
    edist_term_view vars[3] = {{0}};
    assert_int_equal(edist_match(p, bad_tail, sizeof bad_tail, vars), 0);
    edist_pattern_free(p);
    p = compile("{a, X, _}");
    assert_int_equal(edist_match(p, bad_tail, sizeof bad_tail, vars), 1);
    assert_int_equal(vars[0].len, 2);
    edist_pattern_free(p);
    /* ...but a variable there must be read, and the bytes are rejected */
    p = compile("{a, _, Y}");
    memset(vars, 0, sizeof vars);
    assert_true(edist_match(p, bad_tail, sizeof bad_tail, vars) < 0);
    assert_null(vars[0].ptr);
    edist_pattern_free(p);
}

static void integers_and_floats_differ(void **state)
{
    (void)state;
    assert_int_equal(match_text("{n, 1}", "{n, 1.0}", NULL), 0);
    assert_int_equal(match_text("{n, 1.0}", "{n, 1}", NULL), 0);
    assert_int_equal(match_text("{n, 1}", "{n, 1}", NULL), 1);
    edist_term_view v[1];
    assert_int_equal(match_text("{X, X}", "{1, 1.0}", v), 0);
    /* big integers compare by value, not by encoding width */
    const uint8_t big_one[] = {104, 2, 119, 1, 'n', 110, 2, 0, 1, 0};
    edist_pattern *p = compile("{n, 1}");
    assert_int_equal(edist_match(p, big_one, sizeof big_one, NULL), 1);
    edist_pattern_free(p);
}

static void map_patterns(void **state)
{
    (void)state;
    edist_term_view v[2];
    assert_int_equal(match_text("#{a := X, 1 := Y}",
                                "#{1 => one, 1.0 => float, a => [x], z => 0}",
                                v),
                     1);
    assert_view_is(&v[0], "[x]");
    assert_view_is(&v[1], "one");
    assert_int_equal(
        match_text("#{1.0 := Y, a := X}", "#{1 => one, a => b}", v), 0);
    assert_int_equal(match_text("#{}", "#{a => 1}", NULL), 1);
    assert_int_equal(match_text("{#{k := V}, V}", "{#{k => 7}, 7}", v), 1);
    assert_int_equal(match_text("{#{k := V}, V}", "{#{k => 7}, 8}", v), 0);

    edist_pattern *p = NULL;
    edist_parse_error pe;
    const char *dup = "#{a := 1, a := X}";
    assert_int_equal(edist_pattern_compile(dup, strlen(dup), &p, &pe),
                     EDIST_ESYNTAX);
    assert_null(p);
    assert_int_equal(pe.column, 11);
    assert_non_null(strstr(pe.message, "duplicate key"));
    const char *arrow = "#{a => X}";
    assert_int_equal(edist_pattern_compile(arrow, strlen(arrow), &p, &pe),
                     EDIST_ESYNTAX);
    assert_non_null(strstr(pe.message, ":="));
    const char *var_key = "#{K := 1}";
    assert_int_equal(edist_pattern_compile(var_key, strlen(var_key), &p, &pe),
                     EDIST_ESYNTAX);
    assert_non_null(strstr(pe.message, "keys must be literals"));
}

static void list_patterns(void **state)
{
    (void)state;
    edist_term_view v[2];
    assert_int_equal(match_text("[H | T]", "[{a}, {b}]", v),
                     EDIST_EUNSUPPORTED);
    assert_null(v[0].ptr); /* nothing left captured after an error */
    assert_int_equal(match_text("[H | T]", "[{a} | {b}]", v), 1);
    assert_view_is(&v[0], "{a}");
    assert_view_is(&v[1], "{b}");
    assert_int_equal(match_text("[H, I]", "[{a}, {b}]", v), 1);
    assert_view_is(&v[1], "{b}");
    assert_int_equal(match_text("[a, b | _]", "[a, b, c, d]", NULL), 1);
    assert_int_equal(match_text("{[a, b | _], x}", "{[a, b, c | d], x}", NULL),
                     1);
    assert_int_equal(match_text("[a, b | _]", "[a]", NULL), 0);
    assert_int_equal(match_text("[a, b]", "[a, b, c]", NULL), 0);
    assert_int_equal(match_text("[$a | T]", "[97, x]", v), EDIST_EUNSUPPORTED);
    /* STRING_EXT elements are bytes: they compare, but cannot be captured */
    assert_int_equal(match_text("[$a, _, $c]", "\"abc\"", NULL), 1);
    assert_int_equal(match_text("[$a, X]", "\"ab\"", v), EDIST_EUNSUPPORTED);
    assert_int_equal(match_text("{X, [X, 2]}", "{1, [1, 2]}", v), 1);
    assert_int_equal(match_text("{X, [X, 2]}", "{3, [1, 2]}", v), 0);
}

static void malformed_messages(void **state)
{
    (void)state;
    edist_pattern *p = compile("{response, Ref, Value}");
    edist_term_view v[2] = {{0}};
    const uint8_t truncated[] = {104, 3, 119, 8, 'r', 'e', 's', 'p'};
    assert_true(edist_match(p, truncated, sizeof truncated, v) < 0);
    const uint8_t bad_tag[] = {0xEE, 1, 2};
    assert_true(edist_match(p, bad_tag, sizeof bad_tag, v) < 0);
    assert_int_equal(edist_match(p, bad_tag, 0, v), EDIST_ETRUNC);
    const uint8_t compressed[] = {131, 80, 0, 0, 0, 1, 0x78, 0x9c};
    assert_int_equal(edist_match(p, compressed, sizeof compressed, v),
                     EDIST_EUNSUPPORTED);
    assert_int_equal(edist_match(p, bad_tag, sizeof bad_tag, NULL),
                     EDIST_EINVAL);
    assert_int_equal(edist_match(NULL, bad_tag, sizeof bad_tag, v),
                     EDIST_EINVAL);
    /* a bound variable must hold an encoded term */
    msg m;
    make(&m, "{response, x, y}");
    v[0].ptr = bad_tag;
    v[0].len = sizeof bad_tag;
    assert_true(edist_match(p, m.b.data, m.b.len, v) < 0);
    assert_null(v[1].ptr);
    edist_buf_free(&m.b);
    edist_pattern_free(p);
}

static void malformed_patterns(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc;
        const char *message;
    } cases[] = {
        {"{a, X", EDIST_ESYNTAX, "expected ',' or '}'"},
        {"<<X:8>>", EDIST_ESYNTAX,
         "binary segments in patterns must be literals"},
        {"fun M:f/1", EDIST_ESYNTAX, "literal atoms"},
        {"X Y", EDIST_ESYNTAX, "expected end of input"},
        {"", EDIST_ESYNTAX, "expected a term"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        edist_pattern *p = (edist_pattern *)&p; /* must be reset */
        edist_parse_error pe;
        int rc = edist_pattern_compile(cases[i].text, strlen(cases[i].text), &p,
                                       &pe);
        assert_int_equal(rc, cases[i].rc);
        assert_null(p);
        assert_non_null(strstr(pe.message, cases[i].message));
    }
    assert_int_equal(edist_pattern_compile("X", 1, NULL, NULL), EDIST_EINVAL);
    assert_int_equal(edist_pattern_var_count(NULL), 0);
    assert_int_equal(edist_pattern_var_index(NULL, "X"), EDIST_EINVAL);
    edist_pattern_free(NULL);

    /* literal-only patterns need no vars array */
    edist_pattern *p = compile("{ok, <<\"bin\">>, #{a := 1}}");
    assert_int_equal(edist_pattern_var_count(p), 0);
    msg m;
    make(&m, "{ok, <<\"bin\">>, #{a => 1, b => 2}}");
    assert_int_equal(edist_match(p, m.b.data, m.b.len, NULL), 1);
    edist_buf_free(&m.b);
    edist_pattern_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(doc_example_response),
        cmocka_unit_test(nested_patterns),
        cmocka_unit_test(repeated_variables),
        cmocka_unit_test(anonymous_and_underscore_names),
        cmocka_unit_test(wrong_shape_fails_fast),
        cmocka_unit_test(integers_and_floats_differ),
        cmocka_unit_test(map_patterns),
        cmocka_unit_test(list_patterns),
        cmocka_unit_test(malformed_messages),
        cmocka_unit_test(malformed_patterns),
    };
    edist_buf_init(&held);
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    edist_buf_free(&held);
    return failed;
}
