/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers of the runtime tests. Test bodies run in green processes, where
 * cmocka's assertions cannot be used (they longjmp to the runner's
 * thread): they record their first failure with CHECK instead, and the
 * main thread, itself a process (attached), asserts that none happened
 * once the body reports `done`. */
#ifndef EDIST_TESTS_PROC_TEST_UTIL_H
#define EDIST_TESTS_PROC_TEST_UTIL_H

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "edist/edist.h"

static char g_fail[1024];

__attribute__((unused)) static void fail_at(const char *file, int line, const char *what)
{
    if (!g_fail[0])
        snprintf(g_fail, sizeof g_fail, "%s:%d: %s", file, line, what);
}

#define CHECK(c)                                                                          \
    do {                                                                                  \
        if (!(c))                                                                         \
            fail_at(__FILE__, __LINE__, #c);                                              \
    } while (0)

#define CHECK_RC(expr, want)                                                              \
    do {                                                                                  \
        long long rc_ = (long long)(expr);                                                \
        if (rc_ != (long long)(want)) {                                                   \
            char w_[512];                                                                 \
            snprintf(w_, sizeof w_, "%s = %lld, expected %lld (%s)", #expr, rc_,          \
                     (long long)(want), edist_last_error());                              \
            fail_at(__FILE__, __LINE__, w_);                                              \
        }                                                                                 \
    } while (0)

/* An encoded term from Erlang text (exits the program on a bad literal:
 * the test itself is wrong). */
__attribute__((unused)) static edist_buf term(const char *text)
{
    edist_buf b;
    edist_buf_init(&b);
    edist_parse_error pe;
    if (edist_term_parse(text, strlen(text), &b, NULL, &pe) != 0) {
        fprintf(stderr, "bad test term %s: %s\n", text, pe.message);
        abort();
    }
    return b;
}

__attribute__((unused)) static edist_pattern *pattern(const char *text)
{
    edist_pattern *p = NULL;
    edist_parse_error pe;
    if (edist_pattern_compile(text, strlen(text), &p, &pe) != 0) {
        fprintf(stderr, "bad test pattern %s: %s\n", text, pe.message);
        abort();
    }
    return p;
}

/* Send a term written as text. */
__attribute__((unused)) static int send_text(edist_procid to, const char *text)
{
    edist_buf b = term(text);
    int rc = edist_send(to, b.data, b.len);
    edist_buf_free(&b);
    return rc;
}

/* Does v match the pattern text (with no bound variables)? */
__attribute__((unused)) static int like(edist_term_view v, const char *pat_text)
{
    edist_pattern *p = pattern(pat_text);
    edist_term_view vars[16];
    memset(vars, 0, sizeof vars);
    int rc = edist_match(p, v.ptr, v.len, vars);
    edist_pattern_free(p);
    return rc == 1;
}

/* Receive a message matching pat_text, where the variable named `bind`
 * (may be NULL) is bound to the encoded term `value`. */
__attribute__((unused)) static int recv_bound(const char *pat_text, const char *bind,
                                              edist_term_view value, int64_t timeout_ms,
                                              edist_term_view *msg)
{
    edist_pattern *p = pattern(pat_text);
    edist_term_view vars[16];
    memset(vars, 0, sizeof vars);
    if (bind) {
        int i = edist_pattern_var_index(p, bind);
        if (i < 0) {
            fprintf(stderr, "no variable %s in %s\n", bind, pat_text);
            abort();
        }
        vars[i] = value;
    }
    edist_term_view m;
    int rc = edist_receive(p, vars, timeout_ms, &m);
    edist_pattern_free(p);
    if (rc == 0 && msg)
        *msg = m;
    return rc;
}

__attribute__((unused)) static int recv_text(const char *pat_text, int64_t timeout_ms,
                                             edist_term_view *msg)
{
    edist_term_view unused = {NULL, 0};
    return recv_bound(pat_text, NULL, unused, timeout_ms, msg);
}

/* An encoded pid / ref, for binding variables. */
typedef struct enc_small {
    uint8_t b[128];
    edist_term_view v;
} enc_small;

__attribute__((unused)) static edist_term_view enc_pid(enc_small *e, edist_procid p)
{
    edist_buf b;
    edist_buf_init_fixed(&b, e->b, sizeof e->b);
    edist_enc_procid(&b, p);
    e->v.ptr = e->b;
    e->v.len = b.len;
    return e->v;
}

__attribute__((unused)) static edist_term_view enc_ref(enc_small *e, const edist_ref *r)
{
    edist_buf b;
    edist_buf_init_fixed(&b, e->b, sizeof e->b);
    edist_enc_ref(&b, r);
    e->v.ptr = e->b;
    e->v.len = b.len;
    return e->v;
}

/* Receive the DOWN of ref and return its reason view (0 or an error). */
__attribute__((unused)) static int recv_down(const edist_ref *ref, int64_t timeout_ms,
                                             edist_term_view *reason)
{
    enc_small e;
    edist_term_view msg;
    edist_pattern *p = pattern("{'DOWN', R, process, _, Reason}");
    edist_term_view vars[4];
    memset(vars, 0, sizeof vars);
    vars[edist_pattern_var_index(p, "R")] = enc_ref(&e, ref);
    int rc = edist_receive(p, vars, timeout_ms, &msg);
    if (rc == 0 && reason)
        *reason = vars[edist_pattern_var_index(p, "Reason")];
    edist_pattern_free(p);
    return rc;
}

__attribute__((unused)) static uint64_t now_ms(void)
{
    return edi_now_ms();
}

#endif
