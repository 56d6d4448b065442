/* SPDX-License-Identifier: Apache-2.0 */
/* Handshake state machine: both roles against each other in memory, every
 * status path, malformed input to both roles, and the socket driver with
 * deadlines over socketpairs. Real erl peers: test_handshake_erl.c. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "control/handshake.h"
#include "control/handshake_io.h"
#include "edist/error.h"

#define A_NAME "alice@127.0.0.1"
#define B_NAME "bob@127.0.0.1"
#define COOKIE "SECRETCOOKIE"

static void cfg_init(edi_hs_config *a, edi_hs_config *b)
{
    memset(a, 0, sizeof *a);
    memset(b, 0, sizeof *b);
    a->role = EDI_HS_INITIATOR;
    a->our_name = A_NAME;
    a->our_creation = 0x11111111;
    a->peer_name = B_NAME;
    a->cookie = COOKIE;
    b->role = EDI_HS_ACCEPTOR;
    b->our_name = B_NAME;
    b->our_creation = 0x22222222;
    b->cookie = COOKIE;
}

/* Move pending output from one machine into the other. Returns how many
 * bytes moved. With one_byte, feed them one at a time. */
static size_t transfer(edi_hs *from, edi_hs *to, bool one_byte)
{
    size_t len;
    const uint8_t *out = edi_hs_output(from, &len);
    if (len == 0)
        return 0;
    uint8_t copy[EDI_HS_TX_BYTES];
    memcpy(copy, out, len);
    edi_hs_output_done(from, len);
    size_t off = 0;
    while (off < len && edi_hs_want(to) > 0) {
        size_t n = one_byte ? 1 : len - off, used = 0;
        edi_hs_feed(to, copy + off, n, &used);
        off += used;
        if (used == 0)
            break;
    }
    return len;
}

/* Run both until nothing moves. */
static void pump(edi_hs *a, edi_hs *b, bool one_byte)
{
    for (int i = 0; i < 20; i++) {
        size_t moved = transfer(a, b, one_byte) + transfer(b, a, one_byte);
        if (edi_hs_get_state(b) == EDI_HS_WAIT_OLD_CONN)
            edi_hs_old_conn_gone(b);
        if (moved == 0 && edi_hs_output(b, NULL) == NULL)
            break;
    }
}

static void run_pair(edi_hs_config *ca, edi_hs_config *cb, edi_hs *a, edi_hs *b)
{
    assert_int_equal(edi_hs_init(b, cb), 0);
    assert_int_equal(edi_hs_init(a, ca), 0);
    pump(a, b, false);
}

static void test_constants(void **state)
{
    (void)state;
    assert_true(EDI_DFLAGS_MANDATORY_25 == 0x1070f94);
    /* What the brief lists, and no atom cache. */
    uint64_t f = EDI_DFLAGS_EDIST_DEFAULT;
    assert_true((f & EDI_DFLAGS_MANDATORY_25) == EDI_DFLAGS_MANDATORY_25);
    assert_true(f & EDI_DFLAG_SPAWN);
    assert_true(f & EDI_DFLAG_ALIAS);
    assert_true(f & EDI_DFLAG_V4_NC);
    assert_true(f & EDI_DFLAG_FRAGMENTS);
    assert_true(f & EDI_DFLAG_MANDATORY_25_DIGEST);
    assert_false(f & EDI_DFLAG_DIST_HDR_ATOM_CACHE);
    assert_false(f & EDI_DFLAG_ATOM_CACHE);
    assert_false(f & EDI_DFLAG_PUBLISHED);
    assert_true(edi_dflags_expand(EDI_DFLAG_MANDATORY_25_DIGEST) ==
                (EDI_DFLAGS_MANDATORY_25 | EDI_DFLAG_MANDATORY_25_DIGEST));
    char buf[64];
    size_t need = edi_dflags_format(EDI_DFLAG_PUBLISHED | EDI_DFLAG_ALIAS |
                                        ((uint64_t)1 << 40),
                                    buf, sizeof buf);
    assert_string_equal(buf, "PUBLISHED|ALIAS|0x10000000000");
    assert_int_equal(need, strlen(buf));
    char tiny[8];
    edi_dflags_format(EDI_DFLAG_PUBLISHED | EDI_DFLAG_ALIAS, tiny, sizeof tiny);
    assert_true(strlen(tiny) < sizeof tiny);
}

static void test_digest_vectors(void **state)
{
    (void)state;
    /* Reference values from erlang:md5/1 on OTP 25. */
    static const uint8_t v1[16] = {232, 50, 107, 173, 137, 103, 108, 218,
                                   223, 41, 251, 83,  140, 143, 43,  12};
    static const uint8_t v2[16] = {190, 236, 53, 204, 46, 142, 23,  13,
                                   156, 69,  41, 28,  92, 30,  180, 117};
    uint8_t d[16];
    assert_int_equal(edi_hs_digest("COOKIE", 6, 12345, d), 0);
    assert_memory_equal(d, v1, 16);
    assert_int_equal(edi_hs_digest("abc", 3, 4294967295u, d), 0);
    assert_memory_equal(d, v2, 16);
}

static void test_success_visible(void **state)
{
    (void)state;
    edi_hs_config ca, cb;
    edi_hs a, b;
    cfg_init(&ca, &cb);
    run_pair(&ca, &cb, &a, &b);
    assert_int_equal(edi_hs_get_state(&a), EDI_HS_DONE);
    assert_int_equal(edi_hs_get_state(&b), EDI_HS_DONE);
    const edi_hs_result *ra = edi_hs_get_result(&a);
    const edi_hs_result *rb = edi_hs_get_result(&b);
    assert_non_null(ra);
    assert_non_null(rb);
    assert_string_equal(ra->peer_name, B_NAME);
    assert_string_equal(rb->peer_name, A_NAME);
    assert_int_equal(ra->peer_creation, 0x22222222);
    assert_int_equal(rb->peer_creation, 0x11111111);
    uint64_t want = EDI_DFLAGS_EDIST_DEFAULT | EDI_DFLAG_PUBLISHED;
    assert_true(ra->flags == want);
    assert_true(rb->flags == want);
    assert_false(ra->hidden);
    assert_false(rb->peer_hidden);
    assert_int_equal(ra->role, EDI_HS_INITIATOR);
    assert_int_equal(rb->role, EDI_HS_ACCEPTOR);
    assert_false(ra->simultaneous);
    /* Nothing left over on either side. */
    assert_null(edi_hs_output(&a, NULL));
    assert_null(edi_hs_output(&b, NULL));
    assert_int_equal(edi_hs_want(&a), 0);
    edi_hs_wipe(&a);
    edi_hs_wipe(&b);
}

static void test_success_byte_at_a_time(void **state)
{
    (void)state;
    edi_hs_config ca, cb;
    edi_hs a, b;
    cfg_init(&ca, &cb);
    assert_int_equal(edi_hs_init(&b, &cb), 0);
    assert_int_equal(edi_hs_init(&a, &ca), 0);
    pump(&a, &b, true);
    assert_int_equal(edi_hs_get_state(&a), EDI_HS_DONE);
    assert_int_equal(edi_hs_get_state(&b), EDI_HS_DONE);
}

static void test_hidden_both_ways(void **state)
{
    (void)state;
    for (int who = 0; who < 2; who++) {
        edi_hs_config ca, cb;
        edi_hs a, b;
        cfg_init(&ca, &cb);
        if (who == 0)
            ca.hidden = true;
        else
            cb.hidden = true;
        run_pair(&ca, &cb, &a, &b);
        const edi_hs_result *ra = edi_hs_get_result(&a);
        const edi_hs_result *rb = edi_hs_get_result(&b);
        assert_non_null(ra);
        assert_non_null(rb);
        assert_true(ra->hidden);
        assert_true(rb->hidden);
        assert_false(ra->flags & EDI_DFLAG_PUBLISHED);
        assert_int_equal(rb->peer_hidden, who == 0);
        assert_int_equal(ra->peer_hidden, who == 1);
    }
}

static void test_wrong_cookie(void **state)
{
    (void)state;
    edi_hs_config ca, cb;
    edi_hs a, b;
    cfg_init(&ca, &cb);
    cb.cookie = "OTHERCOOKIE";
    run_pair(&ca, &cb, &a, &b);
    assert_int_equal(edi_hs_get_state(&b), EDI_HS_FAILED);
    assert_int_equal(edi_hs_error_code(&b), EDIST_EAUTH);
    assert_non_null(strstr(edi_hs_error(&b), "cookie mismatch with " A_NAME));
    /* The acceptor closes silently, as OTP does: the initiator learns it
     * from the close right after its reply. */
    assert_int_equal(edi_hs_get_state(&a), EDI_HS_RUNNING);
    assert_int_equal(edi_hs_eof(&a), EDIST_EAUTH);
    assert_non_null(strstr(edi_hs_error(&a), "cookie mismatch with " B_NAME));
    assert_non_null(strstr(edist_last_error(), "cookie mismatch"));
}

static void test_tampered_ack(void **state)
{
    (void)state;
    edi_hs_config ca, cb;
    edi_hs a, b;
    cfg_init(&ca, &cb);
    assert_int_equal(edi_hs_init(&b, &cb), 0);
    assert_int_equal(edi_hs_init(&a, &ca), 0);
    transfer(&a, &b, false); /* name */
    transfer(&b, &a, false); /* status + challenge */
    transfer(&a, &b, false); /* reply */
    assert_int_equal(edi_hs_get_state(&b), EDI_HS_DONE);
    size_t len;
    uint8_t ack[32];
    const uint8_t *out = edi_hs_output(&b, &len);
    assert_int_equal(len, 19);
    memcpy(ack, out, len);
    ack[10] ^= 1;
    size_t used;
    assert_int_equal(edi_hs_feed(&a, ack, len, &used), EDIST_EAUTH);
    assert_non_null(strstr(edi_hs_error(&a), "invalid challenge ack"));
    /* A failed machine takes nothing more. */
    assert_int_equal(edi_hs_feed(&a, ack, len, &used), EDIST_EAUTH);
    assert_int_equal(used, 0);
}

static void test_per_node_cookies(void **state)
{
    (void)state;
    edi_cookies *ta, *tb;
    assert_int_equal(edi_cookies_new("DEFAULT_A", &ta), 0);
    assert_int_equal(edi_cookies_new("DEFAULT_B", &tb), 0);
    /* A uses "PAIR" towards B, B expects "PAIR" from A: defaults differ. */
    assert_int_equal(edi_cookies_set(ta, B_NAME, "PAIR"), 0);
    assert_int_equal(edi_cookies_set(tb, A_NAME, "PAIR"), 0);
    edi_hs_config ca, cb;
    edi_hs a, b;
    cfg_init(&ca, &cb);
    ca.cookie = cb.cookie = NULL;
    ca.cookies = ta;
    cb.cookies = tb;
    run_pair(&ca, &cb, &a, &b);
    assert_int_equal(edi_hs_get_state(&a), EDI_HS_DONE);
    assert_int_equal(edi_hs_get_state(&b), EDI_HS_DONE);
    /* Forget B's entry: B falls back to its default and refuses A. */
    assert_int_equal(edi_cookies_set(tb, A_NAME, NULL), 0);
    run_pair(&ca, &cb, &a, &b);
    assert_int_equal(edi_hs_error_code(&b), EDIST_EAUTH);
    /* No cookie at all for the peer. */
    assert_int_equal(edi_cookies_set_default(tb, NULL), 0);
    assert_int_equal(edi_hs_init(&b, &cb), 0);
    assert_int_equal(edi_hs_init(&a, &ca), 0);
    pump(&a, &b, false);
    assert_int_equal(edi_hs_error_code(&b), EDIST_ENOTFOUND);
    edi_cookies_free(ta);
    edi_cookies_free(tb);
}

/* ---- connection-table hooks (a stub table: one decision) ---- */

struct stub_table {
    edi_hs_decision decision;
    bool still_pending;
    int accept_calls;
    int pending_calls;
    char seen_name[EDI_HS_NAME_MAX_BYTES + 1];
    bool seen_hidden;
    bool seen_dynamic;
};

static edi_hs_decision stub_accept(void *ctx, const edi_hs_peer *peer)
{
    struct stub_table *t = ctx;
    t->accept_calls++;
    snprintf(t->seen_name, sizeof t->seen_name, "%s", peer->name);
    t->seen_hidden = peer->hidden;
    t->seen_dynamic = peer->dynamic_name;
    return t->decision;
}

static bool stub_still_pending(void *ctx, const char *peer)
{
    struct stub_table *t = ctx;
    (void)peer;
    t->pending_calls++;
    return t->still_pending;
}

static void run_with_table(struct stub_table *t, edi_hs *a, edi_hs *b)
{
    edi_hs_config ca, cb;
    cfg_init(&ca, &cb);
    cb.accept = stub_accept;
    ca.still_pending = stub_still_pending;
    ca.hook_ctx = cb.hook_ctx = t;
    run_pair(&ca, &cb, a, b);
}

static void test_simultaneous(void **state)
{
    (void)state;
    /* The greater name keeps its own attempt. */
    assert_int_equal(edi_hs_resolve_simultaneous("b@h", "a@h"),
                     EDI_HS_REFUSE_SIMULTANEOUS);
    assert_int_equal(edi_hs_resolve_simultaneous("a@h", "b@h"),
                     EDI_HS_GO_SIMULTANEOUS);
    assert_int_equal(edi_hs_resolve_simultaneous("ab@h", "a@h"),
                     EDI_HS_REFUSE_SIMULTANEOUS);
    assert_int_equal(edi_hs_resolve_simultaneous("a@h", "a@hh"),
                     EDI_HS_GO_SIMULTANEOUS);

    struct stub_table t = {.decision = EDI_HS_GO_SIMULTANEOUS};
    edi_hs a, b;
    run_with_table(&t, &a, &b);
    assert_int_equal(t.accept_calls, 1);
    assert_string_equal(t.seen_name, A_NAME);
    assert_int_equal(edi_hs_get_state(&a), EDI_HS_DONE);
    assert_true(edi_hs_get_result(&a)->simultaneous);
    assert_true(edi_hs_get_result(&b)->simultaneous);

    t = (struct stub_table){.decision = EDI_HS_REFUSE_SIMULTANEOUS};
    run_with_table(&t, &a, &b);
    assert_int_equal(edi_hs_error_code(&b), EDIST_EEXIST);
    assert_int_equal(edi_hs_error_code(&a), EDIST_EEXIST);
    assert_non_null(strstr(edi_hs_error(&a), "nok"));
}

static void test_alive(void **state)
{
    (void)state;
    struct stub_table t = {.decision = EDI_HS_ALREADY_UP,
                           .still_pending = true};
    edi_hs_config ca, cb;
    edi_hs a, b;
    cfg_init(&ca, &cb);
    cb.accept = stub_accept;
    ca.still_pending = stub_still_pending;
    ca.hook_ctx = cb.hook_ctx = &t;
    assert_int_equal(edi_hs_init(&b, &cb), 0);
    assert_int_equal(edi_hs_init(&a, &ca), 0);
    for (int i = 0; i < 6; i++) {
        transfer(&a, &b, false);
        transfer(&b, &a, false);
    }
    /* Verified, but held until the old connection is gone. */
    assert_int_equal(t.pending_calls, 1);
    assert_int_equal(edi_hs_get_state(&b), EDI_HS_WAIT_OLD_CONN);
    assert_int_equal(edi_hs_get_state(&a), EDI_HS_RUNNING);
    assert_int_equal(edi_hs_want(&b), 0);
    assert_int_equal(edi_hs_old_conn_gone(&b), 0);
    assert_int_equal(edi_hs_old_conn_gone(&b), EDIST_EINVAL);
    transfer(&b, &a, false);
    assert_int_equal(edi_hs_get_state(&a), EDI_HS_DONE);
    assert_true(edi_hs_get_result(&a)->replaced_old);
    assert_true(edi_hs_get_result(&b)->replaced_old);

    t = (struct stub_table){.decision = EDI_HS_ALREADY_UP,
                            .still_pending = false};
    run_with_table(&t, &a, &b);
    assert_int_equal(edi_hs_error_code(&a), EDIST_EEXIST);
    assert_int_equal(edi_hs_error_code(&b), EDIST_EEXIST);
    assert_non_null(strstr(edi_hs_error(&b), "false"));
}

static void test_not_allowed_and_busy(void **state)
{
    (void)state;
    struct stub_table t = {.decision = EDI_HS_NOT_ALLOWED};
    edi_hs a, b;
    run_with_table(&t, &a, &b);
    assert_int_equal(edi_hs_error_code(&b), EDIST_EAUTH);
    assert_int_equal(edi_hs_error_code(&a), EDIST_EAUTH);
    assert_non_null(strstr(edi_hs_error(&a), "not_allowed"));

    t = (struct stub_table){.decision = EDI_HS_BUSY};
    run_with_table(&t, &a, &b);
    assert_int_equal(edi_hs_error_code(&b), EDIST_EEXIST);
    assert_null(edi_hs_output(&b, NULL)); /* closes without a word */
    assert_int_equal(edi_hs_eof(&a), EDIST_ECLOSED);

    t = (struct stub_table){.decision = (edi_hs_decision)42};
    run_with_table(&t, &a, &b);
    assert_int_equal(edi_hs_error_code(&b), EDIST_EINVAL);
}

static void test_name_me(void **state)
{
    (void)state;
    struct stub_table t = {.decision = EDI_HS_GO};
    edi_hs_config ca, cb;
    edi_hs a, b;
    cfg_init(&ca, &cb);
    ca.name_me = true;
    ca.our_name = "127.0.0.1";
    cb.accept = stub_accept;
    cb.hook_ctx = &t;
    run_pair(&ca, &cb, &a, &b);
    assert_int_equal(edi_hs_get_state(&a), EDI_HS_DONE);
    assert_int_equal(edi_hs_get_state(&b), EDI_HS_DONE);
    const edi_hs_result *ra = edi_hs_get_result(&a);
    const edi_hs_result *rb = edi_hs_get_result(&b);
    assert_true(t.seen_dynamic);
    assert_string_equal(ra->our_name, rb->peer_name);
    assert_string_equal(ra->our_name, t.seen_name);
    assert_non_null(strstr(ra->our_name, "@127.0.0.1"));
    assert_true(ra->our_name[0] != '@');
    assert_int_equal(ra->our_creation, rb->peer_creation);
    assert_true(ra->hidden && rb->hidden);
    /* Acceptor-only or bad host configs are refused. */
    cb.name_me = true;
    assert_int_equal(edi_hs_init(&b, &cb), EDIST_EINVAL);
    ca.our_name = "x@127.0.0.1";
    assert_int_equal(edi_hs_init(&a, &ca), EDIST_EINVAL);
}

static void test_bad_config(void **state)
{
    (void)state;
    edi_hs_config ca, cb;
    edi_hs h;
    cfg_init(&ca, &cb);
    assert_int_equal(edi_hs_init(&h, NULL), EDIST_EINVAL);
    ca.our_name = "noatsign";
    assert_int_equal(edi_hs_init(&h, &ca), EDIST_EINVAL);
    assert_int_equal(edi_hs_get_state(&h), EDI_HS_FAILED);
    cfg_init(&ca, &cb);
    ca.peer_name = NULL;
    assert_int_equal(edi_hs_init(&h, &ca), EDIST_EINVAL);
    cfg_init(&ca, &cb);
    ca.peer_name = "two@@host";
    assert_int_equal(edi_hs_init(&h, &ca), EDIST_EINVAL);
    cfg_init(&ca, &cb);
    ca.cookie = NULL;
    assert_int_equal(edi_hs_init(&h, &ca), EDIST_EINVAL);
    cfg_init(&ca, &cb);
    ca.cookie = "";
    assert_int_equal(edi_hs_init(&h, &ca), EDIST_EINVAL);
    cfg_init(&ca, &cb);
    ca.flags_remove = EDI_DFLAG_UTF8_ATOMS;
    assert_int_equal(edi_hs_init(&h, &ca), EDIST_EINVAL);
    cfg_init(&ca, &cb);
    ca.role = 0;
    assert_int_equal(edi_hs_init(&h, &ca), EDIST_EINVAL);
    /* Optional flags can be removed and added. */
    cfg_init(&ca, &cb);
    ca.flags_remove = EDI_DFLAG_FRAGMENTS;
    ca.flags_add = EDI_DFLAG_UNICODE_IO;
    uint64_t f = edi_hs_our_flags(&ca);
    assert_false(f & EDI_DFLAG_FRAGMENTS);
    assert_true(f & EDI_DFLAG_UNICODE_IO);
    assert_true(f & EDI_DFLAG_PUBLISHED);
}

/* ---- malformed input to the acceptor ---- */

static size_t frame(uint8_t *out, const uint8_t *payload, size_t len)
{
    out[0] = (uint8_t)(len >> 8);
    out[1] = (uint8_t)len;
    memcpy(out + 2, payload, len);
    return len + 2;
}

/* A send_name payload with the given flags, name length field and name
 * bytes (nlen may lie). */
static size_t name_msg(uint8_t *p, uint64_t flags, uint16_t nlen,
                       const char *name, size_t name_bytes)
{
    p[0] = 'N';
    for (int i = 0; i < 8; i++)
        p[1 + i] = (uint8_t)(flags >> (56 - 8 * i));
    memset(p + 9, 0, 4);
    p[13] = (uint8_t)(nlen >> 8);
    p[14] = (uint8_t)nlen;
    memcpy(p + 15, name, name_bytes);
    return 15 + name_bytes;
}

static int feed_acceptor(const uint8_t *bytes, size_t len, bool then_eof,
                         edi_hs *b)
{
    edi_hs_config ca, cb;
    cfg_init(&ca, &cb);
    assert_int_equal(edi_hs_init(b, &cb), 0);
    size_t used = 0;
    int rc = edi_hs_feed(b, bytes, len, &used);
    assert_true(used <= len);
    if (rc == 0 && then_eof)
        rc = edi_hs_eof(b);
    return rc;
}

static void test_acceptor_malformed(void **state)
{
    (void)state;
    uint8_t buf[70000], p[70000];
    edi_hs b;
    uint64_t good = EDI_DFLAGS_EDIST_DEFAULT | EDI_DFLAG_PUBLISHED;
    size_t n;

    /* Garbage: "GET / HTTP/1.1" reads as a 18245-byte frame of tag '/'. */
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(
        feed_acceptor((const uint8_t *)http, strlen(http), true, &b),
        EDIST_EPROTO);
    assert_non_null(strstr(edi_hs_error(&b), "middle of a handshake frame"));

    /* Empty frame. */
    static const uint8_t zero[2] = {0, 0};
    assert_int_equal(feed_acceptor(zero, 2, false, &b), EDIST_EPROTO);
    assert_non_null(strstr(edi_hs_error(&b), "frame length"));

    /* Truncated header, truncated frame, clean close. */
    assert_int_equal(feed_acceptor(zero, 1, true, &b), EDIST_EPROTO);
    n = name_msg(p, good, 5, "a@b.c", 5);
    size_t fl = frame(buf, p, n);
    assert_int_equal(feed_acceptor(buf, fl - 3, true, &b), EDIST_EPROTO);
    assert_int_equal(feed_acceptor(buf, 0, true, &b), EDIST_ECLOSED);

    /* Wrong tags: the old 'n' handshake and nonsense. */
    p[0] = 'n';
    fl = frame(buf, p, n);
    assert_int_equal(feed_acceptor(buf, fl, false, &b), EDIST_EPROTO);
    assert_non_null(strstr(edi_hs_error(&b), "pre-OTP 23"));
    p[0] = 'x';
    fl = frame(buf, p, n);
    assert_int_equal(feed_acceptor(buf, fl, false, &b), EDIST_EPROTO);
    assert_non_null(strstr(edi_hs_error(&b), "0x78"));

    /* Too short for a send_name. */
    fl = frame(buf, (const uint8_t *)"N1234567", 8);
    assert_int_equal(feed_acceptor(buf, fl, false, &b), EDIST_EPROTO);

    /* Oversized name (300 bytes), and a length that lies. */
    char big[300];
    memset(big, 'x', sizeof big);
    big[10] = '@';
    n = name_msg(p, good, 300, big, 300);
    fl = frame(buf, p, n);
    assert_int_equal(feed_acceptor(buf, fl, false, &b), EDIST_EPROTO);
    assert_non_null(strstr(edi_hs_error(&b), "oversized node name"));
    n = name_msg(p, good, 200, "a@b", 3);
    fl = frame(buf, p, n);
    assert_int_equal(feed_acceptor(buf, fl, false, &b), EDIST_EPROTO);
    assert_non_null(strstr(edi_hs_error(&b), "exceeds"));

    /* Bad names. */
    const char *bad[] = {"nohost", "@host",  "name@",
                         "a@b@c",  "a\nb@c", "a\0b@c"};
    size_t bad_len[] = {6, 5, 5, 5, 5, 5};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        n = name_msg(p, good, (uint16_t)bad_len[i], bad[i], bad_len[i]);
        fl = frame(buf, p, n);
        assert_int_equal(feed_acceptor(buf, fl, false, &b), EDIST_EPROTO);
        assert_non_null(strstr(edi_hs_error(&b), "bad node name"));
    }

    /* Missing mandatory flags: refused with not_allowed and a reason. */
    n = name_msg(p, EDI_DFLAG_PUBLISHED | EDI_DFLAG_EXTENDED_REFERENCES, 5,
                 "a@b.c", 5);
    fl = frame(buf, p, n);
    assert_int_equal(feed_acceptor(buf, fl, false, &b), EDIST_EUNSUPPORTED);
    assert_non_null(strstr(edi_hs_error(&b), "a@b.c lacks"));
    assert_non_null(strstr(edi_hs_error(&b), "HANDSHAKE_23"));
    assert_null(strstr(edi_hs_error(&b), "EXTENDED_REFERENCES"));
    size_t olen;
    const uint8_t *out = edi_hs_output(&b, &olen);
    assert_int_equal(olen, 14);
    assert_memory_equal(out, "\0\x0csnot_allowed", 14);

    /* MANDATORY_25_DIGEST alone stands for the whole set. */
    n = name_msg(p, EDI_DFLAG_MANDATORY_25_DIGEST, 5, "a@b.c", 5);
    fl = frame(buf, p, n);
    assert_int_equal(feed_acceptor(buf, fl, false, &b), 0);
    assert_int_equal(edi_hs_get_state(&b), EDI_HS_RUNNING);
    out = edi_hs_output(&b, &olen);
    assert_memory_equal(out, "\0\x03sok\0", 6);

    /* Extra bytes after the name are ignored, even a 65535-byte frame. */
    n = name_msg(p, good, 5, "a@b.c", 5);
    memset(p + n, 0xEE, 65535 - n);
    fl = frame(buf, p, 65535);
    assert_int_equal(feed_acceptor(buf, fl, false, &b), 0);
    assert_string_equal(b.res.peer_name, "a@b.c");
    assert_int_equal(edi_hs_want(&b), 2); /* next: the reply's header */

    /* After the name, a reply of the wrong size or tag. */
    static const uint8_t short_reply[] = {0, 5, 'r', 1, 2, 3, 4};
    assert_int_equal(edi_hs_feed(&b, short_reply, sizeof short_reply, NULL),
                     EDIST_EPROTO);
    assert_non_null(strstr(edi_hs_error(&b), "challenge_reply"));
    assert_int_equal(feed_acceptor(buf, fl, false, &b), 0);
    uint8_t reply[23] = {0, 21, 'R'};
    assert_int_equal(edi_hs_feed(&b, reply, sizeof reply, NULL), EDIST_EPROTO);
    /* Right shape, wrong digest. */
    assert_int_equal(feed_acceptor(buf, fl, false, &b), 0);
    reply[2] = 'r';
    assert_int_equal(edi_hs_feed(&b, reply, sizeof reply, NULL), EDIST_EAUTH);
    assert_non_null(strstr(edi_hs_error(&b), "cookie mismatch with a@b.c"));

    /* Dynamic-name request with a bad host. */
    n = name_msg(p, good | EDI_DFLAG_NAME_ME, 5, "a@b.c", 5);
    fl = frame(buf, p, n);
    assert_int_equal(feed_acceptor(buf, fl, false, &b), EDIST_EPROTO);
    assert_non_null(strstr(edi_hs_error(&b), "bad host"));
}

/* ---- malformed input to the initiator ---- */

static int feed_initiator(const uint8_t *bytes, size_t len, edi_hs *a)
{
    edi_hs_config ca, cb;
    cfg_init(&ca, &cb);
    assert_int_equal(edi_hs_init(a, &ca), 0);
    edi_hs_output_done(a, 1000);
    return edi_hs_feed(a, bytes, len, NULL);
}

static size_t challenge_msg(uint8_t *p, uint64_t flags, const char *name)
{
    size_t nlen = strlen(name);
    p[0] = 'N';
    for (int i = 0; i < 8; i++)
        p[1 + i] = (uint8_t)(flags >> (56 - 8 * i));
    memset(p + 9, 7, 8);
    p[17] = (uint8_t)(nlen >> 8);
    p[18] = (uint8_t)nlen;
    memcpy(p + 19, name, nlen);
    return 19 + nlen;
}

static void test_initiator_malformed(void **state)
{
    (void)state;
    uint8_t buf[600], p[600];
    edi_hs a;
    size_t fl;
    uint64_t good = EDI_DFLAGS_EDIST_DEFAULT | EDI_DFLAG_PUBLISHED;

    /* Unknown, too long, wrong-tag and unexpected named: statuses. */
    fl = frame(buf, (const uint8_t *)"sbogus", 6);
    assert_int_equal(feed_initiator(buf, fl, &a), EDIST_EPROTO);
    assert_non_null(strstr(edi_hs_error(&a), "unknown status \"bogus\""));
    fl = frame(buf, (const uint8_t *)"sok_simultaneous_and_more", 25);
    assert_int_equal(feed_initiator(buf, fl, &a), EDIST_EPROTO);
    fl = frame(buf, (const uint8_t *)"xok", 3);
    assert_int_equal(feed_initiator(buf, fl, &a), EDIST_EPROTO);
    fl = frame(buf, (const uint8_t *)"snamed:\0\x03x@y\0\0\0\1", 16);
    assert_int_equal(feed_initiator(buf, fl, &a), EDIST_EPROTO);
    fl = frame(buf, (const uint8_t *)"sok\0", 4);
    assert_int_equal(feed_initiator(buf, fl, &a), EDIST_EPROTO);

    /* A good status, then bad challenges. */
    static const uint8_t ok[] = {0, 3, 's', 'o', 'k'};
    memcpy(buf, ok, sizeof ok);
    size_t n = challenge_msg(p, good, "mallory@127.0.0.1");
    fl = frame(buf + 5, p, n);
    assert_int_equal(feed_initiator(buf, 5 + fl, &a), EDIST_EPROTO);
    assert_non_null(strstr(edi_hs_error(&a), "wrong node"));

    n = challenge_msg(p, EDI_DFLAG_PUBLISHED, B_NAME);
    fl = frame(buf + 5, p, n);
    assert_int_equal(feed_initiator(buf, 5 + fl, &a), EDIST_EUNSUPPORTED);
    assert_non_null(strstr(edi_hs_error(&a), "lacks"));

    n = challenge_msg(p, good, B_NAME);
    p[17] = 1; /* name length 256+ */
    fl = frame(buf + 5, p, n);
    assert_int_equal(feed_initiator(buf, 5 + fl, &a), EDIST_EPROTO);

    fl = frame(buf + 5, (const uint8_t *)"N", 1);
    assert_int_equal(feed_initiator(buf, 5 + fl, &a), EDIST_EPROTO);

    /* A good challenge with extra bytes, then a malformed ack. */
    n = challenge_msg(p, good, B_NAME);
    memcpy(p + n, "extra", 5);
    fl = frame(buf + 5, p, n + 5);
    assert_int_equal(feed_initiator(buf, 5 + fl, &a), 0);
    size_t olen;
    const uint8_t *out = edi_hs_output(&a, &olen);
    assert_int_equal(olen, 23);
    assert_int_equal(out[2], 'r');
    static const uint8_t long_ack[] = {0, 18, 'a'};
    assert_int_equal(edi_hs_feed(&a, long_ack, sizeof long_ack, NULL),
                     EDIST_EPROTO);

    /* Peer closes before the status: ECLOSED, before the ack: EAUTH. */
    assert_int_equal(feed_initiator(buf, 0, &a), 0);
    assert_int_equal(edi_hs_eof(&a), EDIST_ECLOSED);
    assert_non_null(strstr(edi_hs_error(&a), "status"));
    assert_int_equal(feed_initiator(buf, 5 + fl, &a), 0);
    assert_int_equal(edi_hs_eof(&a), EDIST_EAUTH);
    assert_int_equal(edi_hs_timeout(&a), EDIST_EAUTH); /* stays failed */
}

/* The machine must not swallow what follows the handshake. */
static void test_no_overread(void **state)
{
    (void)state;
    edi_hs_config ca, cb;
    edi_hs a, b;
    cfg_init(&ca, &cb);
    assert_int_equal(edi_hs_init(&b, &cb), 0);
    assert_int_equal(edi_hs_init(&a, &ca), 0);
    transfer(&a, &b, false);
    transfer(&b, &a, false);
    transfer(&a, &b, false);
    size_t len;
    const uint8_t *out = edi_hs_output(&b, &len);
    uint8_t buf[64];
    memcpy(buf, out, len);
    memset(buf + len, 0, 4); /* a tick right behind the ack */
    size_t used = 99;
    assert_int_equal(edi_hs_feed(&a, buf, len + 4, &used), 0);
    assert_int_equal(used, len);
    assert_int_equal(edi_hs_get_state(&a), EDI_HS_DONE);
    assert_int_equal(edi_hs_feed(&a, buf + len, 4, &used), 0);
    assert_int_equal(used, 0);
}

/* ---- the socket driver ---- */

struct io_peer {
    edi_hs hs;
    int fd;
    int64_t deadline_ms;
    int rc;
};

static void *io_thread(void *arg)
{
    struct io_peer *p = arg;
    p->rc = edi_hs_io_run(&p->hs, p->fd, p->deadline_ms);
    return NULL;
}

static void test_io_pair(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    edi_hs_config ca, cb;
    cfg_init(&ca, &cb);
    struct io_peer acc = {.fd = sv[1]};
    assert_int_equal(edi_hs_init(&acc.hs, &cb), 0);
    acc.deadline_ms = edi_hs_io_now_ms() + 5000;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, io_thread, &acc), 0);
    edi_hs a;
    assert_int_equal(edi_hs_init(&a, &ca), 0);
    int rc = edi_hs_io_run(&a, sv[0], edi_hs_io_now_ms() + 5000);
    pthread_join(th, NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(acc.rc, 0);
    assert_string_equal(edi_hs_get_result(&a)->peer_name, B_NAME);
    /* Bytes after the handshake stay in the socket for the data plane. */
    static const uint8_t tick[4] = {0};
    assert_int_equal(write(sv[1], tick, 4), 4);
    uint8_t got[8];
    assert_int_equal(read(sv[0], got, sizeof got), 4);
    close(sv[0]);
    close(sv[1]);
}

static void test_io_silent_peer(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    edi_hs_config ca, cb;
    cfg_init(&ca, &cb);
    edi_hs b;
    assert_int_equal(edi_hs_init(&b, &cb), 0);
    int64_t t0 = edi_hs_io_now_ms();
    int rc = edi_hs_io_run(&b, sv[1], t0 + 300);
    int64_t took = edi_hs_io_now_ms() - t0;
    assert_int_equal(rc, EDIST_ETIMEDOUT);
    assert_true(took >= 290 && took < 2000);
    assert_non_null(strstr(edist_last_error(), "timed out waiting for its "
                                               "name"));
    /* Half a frame, then silence. */
    static const uint8_t half[] = {0, 20, 'N', 0, 0};
    assert_int_equal(write(sv[0], half, sizeof half), (ssize_t)sizeof half);
    assert_int_equal(edi_hs_init(&b, &cb), 0);
    rc = edi_hs_io_run(&b, sv[1], edi_hs_io_now_ms() + 200);
    assert_int_equal(rc, EDIST_ETIMEDOUT);
    assert_non_null(strstr(edi_hs_error(&b), "frame incomplete"));
    close(sv[0]);
    close(sv[1]);
}

static void test_io_garbage_and_close(void **state)
{
    (void)state;
    int sv[2];
    edi_hs_config ca, cb;
    cfg_init(&ca, &cb);
    edi_hs b;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    static const uint8_t junk[] = {0, 3, 'z', 'z', 'z'};
    assert_int_equal(write(sv[0], junk, sizeof junk), (ssize_t)sizeof junk);
    assert_int_equal(edi_hs_init(&b, &cb), 0);
    assert_int_equal(edi_hs_io_run(&b, sv[1], edi_hs_io_now_ms() + 2000),
                     EDIST_EPROTO);
    close(sv[0]);
    close(sv[1]);

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[0]);
    assert_int_equal(edi_hs_init(&b, &cb), 0);
    assert_int_equal(edi_hs_io_run(&b, sv[1], edi_hs_io_now_ms() + 2000),
                     EDIST_ECLOSED);
    close(sv[1]);

    /* Initiator whose peer closes after our name: ECLOSED, not EAUTH. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    edi_hs a;
    assert_int_equal(edi_hs_init(&a, &ca), 0);
    assert_int_equal(shutdown(sv[1], SHUT_WR), 0);
    assert_int_equal(edi_hs_io_run(&a, sv[0], edi_hs_io_now_ms() + 2000),
                     EDIST_ECLOSED);
    close(sv[0]);
    close(sv[1]);

    /* The refusal status reaches the peer before the close. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    uint8_t p[64], f[70];
    size_t n = name_msg(p, EDI_DFLAG_PUBLISHED, 5, "a@b.c", 5);
    size_t fl = frame(f, p, n);
    assert_int_equal(write(sv[0], f, fl), (ssize_t)fl);
    assert_int_equal(edi_hs_init(&b, &cb), 0);
    assert_int_equal(edi_hs_io_run(&b, sv[1], edi_hs_io_now_ms() + 2000),
                     EDIST_EUNSUPPORTED);
    assert_non_null(strstr(edist_last_error(), "lacks"));
    uint8_t got[32];
    assert_int_equal(read(sv[0], got, sizeof got), 14);
    assert_memory_equal(got + 2, "snot_allowed", 12);
    close(sv[0]);
    close(sv[1]);
}

static void test_io_connect_errors(void **state)
{
    (void)state;
    int fd = -1;
    assert_int_equal(edi_hs_io_connect_tcp("not-an-ip", 1, 0, &fd),
                     EDIST_EINVAL);
    /* A port nobody listens on (bound, not listening). */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(0x7f000001)};
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t sl = sizeof sa;
    getsockname(s, (struct sockaddr *)&sa, &sl);
    int rc = edi_hs_io_connect_tcp("127.0.0.1", ntohs(sa.sin_port),
                                   edi_hs_io_now_ms() + 2000, &fd);
    assert_int_equal(rc, EDIST_ECLOSED);
    assert_int_equal(listen(s, 1), 0);
    rc = edi_hs_io_connect_tcp("127.0.0.1", ntohs(sa.sin_port),
                               edi_hs_io_now_ms() + 2000, &fd);
    assert_int_equal(rc, 0);
    close(fd);
    close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constants),
        cmocka_unit_test(test_digest_vectors),
        cmocka_unit_test(test_success_visible),
        cmocka_unit_test(test_success_byte_at_a_time),
        cmocka_unit_test(test_hidden_both_ways),
        cmocka_unit_test(test_wrong_cookie),
        cmocka_unit_test(test_tampered_ack),
        cmocka_unit_test(test_per_node_cookies),
        cmocka_unit_test(test_simultaneous),
        cmocka_unit_test(test_alive),
        cmocka_unit_test(test_not_allowed_and_busy),
        cmocka_unit_test(test_name_me),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_acceptor_malformed),
        cmocka_unit_test(test_initiator_malformed),
        cmocka_unit_test(test_no_overread),
        cmocka_unit_test(test_io_pair),
        cmocka_unit_test(test_io_silent_peer),
        cmocka_unit_test(test_io_garbage_and_close),
        cmocka_unit_test(test_io_connect_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
