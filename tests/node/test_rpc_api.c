/* SPDX-License-Identifier: Apache-2.0 */
/* The rpc API (include/edist/rpc.h) with real peers (r2): from a thread
 * attached to edist node A (and from a green process of A), rpc:call,
 * erpc:call and erpc:cast against
 * - edist node B (in-process, its services on),
 * - a real erl node (our own epmd on a free port, HOME in a temp dir, the
 *   erl node ended by pid in the teardown),
 * - A itself (node NULL and A's own name),
 * - a node that does not exist.
 * Expected results are what OTP 25's rpc:call / erpc:call give for the same
 * call (text parsed and compared with edist_term_equal; where a stack trace
 * follows, the printed prefix). */
#include "n4_util.h"

#include "edist/proc.h"
#include "edist/rpc.h"

static char erl_short[64], erl_full[128];
static edist_node *node_a, *node_b;

/* ---- helpers ------------------------------------------------------------- */

static void parse(const char *text, edist_buf *out)
{
    edist_buf_init(out);
    edist_parse_error perr;
    memset(&perr, 0, sizeof perr);
    int rc = edist_term_parse(text, strlen(text), out, NULL, &perr);
    if (rc)
        print_message("cannot parse %s\n", text);
    assert_int_equal(rc, 0);
}

/* The printed term without spaces. */
static void text_of(const edist_buf *t, char *out, size_t cap)
{
    edist_buf s;
    edist_buf_init(&s);
    assert_int_equal(edist_term_print(t->data, t->len, &s, NULL), 0);
    size_t j = 0;
    for (size_t i = 0; i < s.len && j + 1 < cap; i++)
        if (s.data[i] != ' ' && s.data[i] != '\n')
            out[j++] = (char)s.data[i];
    out[j] = 0;
    edist_buf_free(&s);
}

/* rpc:call with args as text; checks status and the exact result. */
static void call_is(const char *node, const char *m, const char *f,
                    const char *args, int64_t timeout_ms,
                    edist_rpc_status want_status, const char *want)
{
    edist_buf a, r, w;
    parse(args, &a);
    parse(want, &w);
    edist_buf_init(&r);
    edist_rpc_status st = 99;
    int rc = edist_rpc_call(node, m, f, a.data, a.len, timeout_ms, &r, &st);
    if (rc)
        print_message("%s:%s%s: %s: %s\n", m, f, args, edist_strerror(rc),
                      edist_last_error());
    assert_int_equal(rc, 0);
    char got[1024];
    text_of(&r, got, sizeof got);
    if (st != want_status || edist_term_equal(r.data, r.len, w.data, w.len) != 1)
        print_message("%s:%s%s on %s: got %s (status %d), want %s\n", m, f,
                      args, node ? node : "self", got, (int)st, want);
    assert_int_equal(st, want_status);
    assert_int_equal(edist_term_equal(r.data, r.len, w.data, w.len), 1);
    edist_buf_free(&a);
    edist_buf_free(&r);
    edist_buf_free(&w);
}

/* rpc:call whose printed result (no spaces) starts with prefix. */
static void call_starts(const char *node, const char *m, const char *f,
                        const char *args, edist_rpc_status want_status,
                        const char *prefix)
{
    edist_buf a, r;
    parse(args, &a);
    edist_buf_init(&r);
    edist_rpc_status st = 99;
    assert_int_equal(edist_rpc_call(node, m, f, a.data, a.len, 10000, &r, &st),
                     0);
    char got[2048];
    text_of(&r, got, sizeof got);
    if (st != want_status || strncmp(got, prefix, strlen(prefix)))
        print_message("%s:%s%s: got %s (status %d), want %s...\n", m, f, args,
                      got, (int)st, prefix);
    assert_int_equal(st, want_status);
    assert_int_equal(strncmp(got, prefix, strlen(prefix)), 0);
    edist_buf_free(&a);
    edist_buf_free(&r);
}

static void attach(void)
{
    edist_procid self;
    /* A test that failed half-way left its thread attached. */
    edist_proc_detach_thread(NULL, 0);
    assert_int_equal(
        edist_proc_attach_thread(edist_node_runtime(node_a), 0, &self), 0);
}

static void detach(void)
{
    assert_int_equal(edist_proc_detach_thread(NULL, 0), 0);
}

/* Nothing of the calls is left in the mailbox (a DOWN, a spawn_reply). */
static void mailbox_clean_after(int ms)
{
    edist_term_view m;
    int rc = edist_receive(NULL, NULL, ms, &m);
    if (rc == 0) {
        edist_buf t;
        edist_buf_init(&t);
        edist_buf_append(&t, m.ptr, m.len);
        char got[512];
        text_of(&t, got, sizeof got);
        print_message("stray message: %s\n", got);
        edist_buf_free(&t);
    }
    assert_int_equal(rc, EDIST_ETIMEDOUT);
}

/* What every peer answers the same way (erlang:throw/error/exit exist on
 * both kinds of node). */
static void common_calls(const char *node, const char *echo_m,
                         const char *echo_f)
{
    /* bignums both ways (echo_m:echo_f(X) returns X) */
    call_is(node, echo_m, echo_f,
            "[[123456789012345678901234567890, -98765432109876543210]]", 5000,
            EDIST_RPC_OK,
            "[123456789012345678901234567890, -98765432109876543210]");
    /* undef: {badrpc, {'EXIT', {undef, [{M, F, Args, []} | _]}}} */
    call_starts(node, "no_such_mod", "nofun", "[1]", EDIST_RPC_BADRPC,
                "{badrpc,{'EXIT',{undef,[{no_such_mod,nofun,[1],[]}");
    /* exit: {badrpc, {'EXIT', Reason}} */
    call_is(node, "erlang", "exit", "[boom]", 5000, EDIST_RPC_BADRPC,
            "{badrpc, {'EXIT', boom}}");
    /* error: {badrpc, {'EXIT', {Reason, Stack}}} */
    call_starts(node, "erlang", "error", "[{bad, 1}]", EDIST_RPC_BADRPC,
                "{badrpc,{'EXIT',{{bad,1},[");
    /* a thrown value comes back as the value, except {'EXIT', _} */
    call_is(node, "erlang", "throw", "[{thrown, 7}]", 5000, EDIST_RPC_OK,
            "{thrown, 7}");
    call_is(node, "erlang", "throw", "[{'EXIT', t}]", 5000, EDIST_RPC_BADRPC,
            "{badrpc, {'EXIT', t}}");
    /* and so is a value {'EXIT', _} (rpc.erl's RPCIFY); erl's echo here
     * is lists:flatten, so there erlang:hd returns it */
    if (strcmp(echo_m, "lists") != 0)
        call_is(node, echo_m, echo_f, "[{'EXIT', r}]", 5000, EDIST_RPC_BADRPC,
                "{badrpc, {'EXIT', r}}");
    else
        call_is(node, "erlang", "hd", "[[{'EXIT', r}]]", 5000, EDIST_RPC_BADRPC,
                "{badrpc, {'EXIT', r}}");

    /* erpc:call's raw classes */
    edist_buf a, r;
    parse("[boom]", &a);
    edist_buf_init(&r);
    edist_erpc_class cls;
    assert_int_equal(edist_erpc_call(node, "erlang", "exit", a.data, a.len,
                                     5000, &r, &cls),
                     0);
    assert_int_equal(cls, EDIST_ERPC_EXIT);
    char got[1024];
    text_of(&r, got, sizeof got);
    assert_string_equal(got, "{exception,boom}");
    assert_int_equal(edist_erpc_call(node, "erlang", "error", a.data, a.len,
                                     5000, &r, &cls),
                     0);
    assert_int_equal(cls, EDIST_ERPC_ERROR);
    text_of(&r, got, sizeof got);
    assert_int_equal(strncmp(got, "{exception,boom,[", 17), 0);
    assert_int_equal(edist_erpc_call(node, "erlang", "throw", a.data, a.len,
                                     5000, &r, &cls),
                     0);
    assert_int_equal(cls, EDIST_ERPC_THROW);
    text_of(&r, got, sizeof got);
    assert_string_equal(got, "boom");
    edist_buf_free(&a);
    edist_buf_free(&r);
}

/* A call that outlives its timeout: {badrpc, timeout} in about the
 * timeout, nothing left behind, and the next call works. */
static void timeout_call(const char *node, const char *m, const char *f)
{
    int64_t t0 = peers_now_ms();
    call_is(node, m, f, "[3000]", 300, EDIST_RPC_BADRPC, "{badrpc, timeout}");
    int64_t took = peers_now_ms() - t0;
    assert_true(took >= 250);
    assert_true(took < 2500);
    /* Timeout 0: the spawn reply cannot be here yet (from another node):
     * the request is abandoned, and its late reply and DOWN never come. */
    call_is(node, m, f, "[100]", 0, EDIST_RPC_BADRPC, "{badrpc, timeout}");
    mailbox_clean_after(3500); /* past the sleeps: no late reply or DOWN */
}

/* erpc:cast of m:f(Self, Msg), a function that sends {cast_ok, Tag} to us. */
static void cast_reaches_us(const char *node, const char *m, const char *f,
                            const char *tag)
{
    edist_buf a, msg;
    edist_buf_init(&a);
    edist_buf_init(&msg);
    edist_enc_tuple(&msg, 2);
    edist_enc_atomz(&msg, "cast_ok");
    edist_enc_atomz(&msg, tag);
    edist_enc_list(&a, 2);
    edist_enc_procid(&a, edist_self());
    edist_enc_raw(&a, msg.data, msg.len);
    edist_enc_nil(&a);
    assert_int_equal(edist_buf_error(&a), 0);
    assert_int_equal(edist_rpc_cast(node, m, f, a.data, a.len), 0);
    edist_term_view got;
    assert_int_equal(edist_receive(NULL, NULL, 10000, &got), 0);
    assert_int_equal(edist_term_equal(got.ptr, got.len, msg.data, msg.len), 1);
    mailbox_clean_after(300); /* no spawn reply was asked for */
    edist_buf_free(&a);
    edist_buf_free(&msg);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_edist_peer(void **state)
{
    (void)state;
    const char *b = edist_node_name(node_b);
    attach();
    call_is(b, "edist_demo", "add", "[1, 2]", 5000, EDIST_RPC_OK, "3");
    char want[200];
    snprintf(want, sizeof want, "'%s'", b);
    call_is(b, "erlang", "node", "[]", 5000, EDIST_RPC_OK, want);
    common_calls(b, "edist_demo", "echo");
    /* edist_demo:crash(R) exits with R */
    call_is(b, "edist_demo", "crash", "[oops]", 5000, EDIST_RPC_BADRPC,
            "{badrpc, {'EXIT', oops}}");
    /* A message that is not the call's stays queued, in place. */
    uint8_t mine[] = {EDIST_TAG_SMALL_ATOM_UTF8, 4, 'm', 'i', 'n', 'e'};
    assert_int_equal(edist_send(edist_self(), mine, sizeof mine), 0);
    call_is(b, "edist_demo", "echo", "[x]", 5000, EDIST_RPC_OK, "x");
    edist_term_view m;
    assert_int_equal(edist_receive(NULL, NULL, 1000, &m), 0);
    assert_int_equal(edist_term_equal(m.ptr, m.len, mine, sizeof mine), 1);
    timeout_call(b, "edist_demo", "sleep");
    call_is(b, "edist_demo", "add", "[20, 22]", 5000, EDIST_RPC_OK, "42");
    cast_reaches_us(b, "edist_demo", "reply", "b");
    detach();
}

static void test_erl_peer(void **state)
{
    (void)state;
    attach();
    call_is(erl_full, "erlang", "+", "[1, 2]", 10000, EDIST_RPC_OK, "3");
    char want[200];
    snprintf(want, sizeof want, "'%s'", erl_full);
    call_is(erl_full, "erlang", "node", "[]", 5000, EDIST_RPC_OK, want);
    call_is(erl_full, "erlang", "*",
            "[123456789012345678901234567890, 1000000000000]", 5000,
            EDIST_RPC_OK, "123456789012345678901234567890000000000000");
    common_calls(erl_full, "lists", "flatten");
    timeout_call(erl_full, "timer", "sleep");
    cast_reaches_us(erl_full, "erlang", "send", "erl");
    detach();
}

static void test_own_node(void **state)
{
    (void)state;
    const char *a = edist_node_name(node_a);
    attach();
    call_is(NULL, "edist_demo", "add", "[2, 3]", 5000, EDIST_RPC_OK, "5");
    call_is(a, "edist_demo", "add", "[2, 4]", 5000, EDIST_RPC_OK, "6");
    char want[200];
    snprintf(want, sizeof want, "'%s'", a);
    call_is(a, "erlang", "node", "[]", 5000, EDIST_RPC_OK, want);
    common_calls(a, "edist_demo", "echo");
    timeout_call(NULL, "edist_demo", "sleep");
    cast_reaches_us(NULL, "edist_demo", "reply", "self");
    detach();
}

static void test_nodedown_and_bad_calls(void **state)
{
    (void)state;
    char nosuch[128];
    full_of("r2_no_such_node", nosuch, sizeof nosuch);
    edist_buf a, r;
    parse("[]", &a);
    edist_buf_init(&r);
    edist_rpc_status st;
    /* Not a process (a test that failed half-way left it attached). */
    edist_proc_detach_thread(NULL, 0);
    assert_int_equal(edist_rpc_call(NULL, "erlang", "node", a.data, a.len,
                                    1000, &r, &st),
                     EDIST_EINVAL);
    assert_int_equal(edist_rpc_cast(NULL, "erlang", "node", a.data, a.len),
                     EDIST_EINVAL);
    attach();
    int64_t t0 = peers_now_ms();
    call_is(nosuch, "erlang", "node", "[]", 10000, EDIST_RPC_BADRPC,
            "{badrpc, nodedown}");
    assert_true(peers_now_ms() - t0 < 9000); /* not the timeout */
    /* A cast to it is no error (as in Erlang) and leaves nothing behind. */
    assert_int_equal(edist_rpc_cast(nosuch, "erlang", "node", a.data, a.len), 0);
    /* Args that are not a list; names that are not atoms. */
    uint8_t one[] = {EDIST_TAG_SMALL_INTEGER, 1};
    assert_int_equal(edist_rpc_call(NULL, "erlang", "node", one, sizeof one,
                                    1000, &r, &st),
                     EDIST_EINVAL);
    assert_int_equal(edist_rpc_call(NULL, "", "node", a.data, a.len, 1000, &r,
                                    &st),
                     EDIST_EINVAL);
    assert_int_equal(edist_rpc_call(NULL, "erlang", "node", a.data, a.len,
                                    1000, &r, NULL),
                     EDIST_EINVAL);
    assert_int_equal(edist_rpc_cast(NULL, "erlang", "node", one, sizeof one),
                     EDIST_EINVAL);
    mailbox_clean_after(500);
    detach();
    edist_buf_free(&a);
    edist_buf_free(&r);
}

/* A green process of A calls B and the erl node and sends us the
 * results. */
static edist_procid g_parent;

static void green_caller(void *arg)
{
    (void)arg;
    const char *nodes[2] = {edist_node_name(node_b), erl_full};
    const char *mods[2] = {"edist_demo", "erlang"};
    const char *funs[2] = {"echo", "abs"};
    uint8_t args[] = {EDIST_TAG_LIST, 0, 0, 0, 1, EDIST_TAG_SMALL_INTEGER, 41,
                      EDIST_TAG_NIL};
    for (int i = 0; i < 2; i++) {
        edist_buf r;
        edist_buf_init(&r);
        edist_rpc_status st = 99;
        int rc = edist_rpc_call(nodes[i], mods[i], funs[i], args, sizeof args,
                                10000, &r, &st);
        if (rc || st != EDIST_RPC_OK)
            edist_buf_reset(&r);
        edist_send(g_parent, r.data ? (const void *)r.data : "", r.len);
        edist_buf_free(&r);
    }
}

static void test_green_caller(void **state)
{
    (void)state;
    attach();
    g_parent = edist_self();
    edist_procid p;
    assert_int_equal(edist_spawn(green_caller, NULL, &p), 0);
    for (int i = 0; i < 2; i++) {
        edist_term_view m;
        assert_int_equal(edist_receive(NULL, NULL, 15000, &m), 0);
        uint8_t want[] = {EDIST_TAG_SMALL_INTEGER, 41};
        assert_int_equal(edist_term_equal(m.ptr, m.len, want, sizeof want), 1);
    }
    detach();
}

/* ---- setup ---------------------------------------------------------------- */

static n4_log log_a, log_b;

/* A node name longer than 107 bytes: the call's reference (which holds
 * it) no longer fit the buffer the reply is matched with, and every call
 * failed after the function had run. */
static void test_long_node_name(void **state)
{
    (void)state;
    char name[200];
    int n = snprintf(name, sizeof name, "r2long%d_", (int)getpid());
    memset(name + n, 'x', 150 - (size_t)n);
    name[150] = '\0';
    edist_node_config cfg;
    edist_node_config_init(&cfg);
    cfg.cookie = N4_COOKIE;
    cfg.name = name;
    cfg.listen_address = PEERS_HOST;
    cfg.start_epmd = false;
    edist_node *l = NULL;
    assert_int_equal(edist_node_start(&cfg, &l), 0);
    edist_procid self;
    edist_proc_detach_thread(NULL, 0);
    assert_int_equal(edist_proc_attach_thread(edist_node_runtime(l), 0, &self), 0);
    call_is(NULL, "edist_demo", "add", "[2, 3]", 5000, EDIST_RPC_OK, "5");
    call_is(edist_node_name(l), "edist_demo", "add", "[2, 4]", 5000, EDIST_RPC_OK, "6");
    edist_proc_detach_thread(NULL, 0);
    edist_node_stop(l);
}

static int group_setup(void **state)
{
    (void)state;
    if (n4_group_setup("rpc-api"))
        return -1;
    peers_unique_name(erl_short, sizeof erl_short, "r2erl");
    full_of(erl_short, erl_full, sizeof erl_full);
    start_erl(erl_short, NULL, 60);
    pthread_mutex_init(&log_a.mu, NULL);
    pthread_mutex_init(&log_b.mu, NULL);
    node_a = n4_start_node("r2a", &log_a, NULL);
    node_b = n4_start_node("r2b", &log_b, NULL);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    edist_node_stop(node_a);
    edist_node_stop(node_b);
    return n4_group_teardown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edist_peer),
        cmocka_unit_test(test_erl_peer),
        cmocka_unit_test(test_own_node),
        cmocka_unit_test(test_nodedown_and_bad_calls),
        cmocka_unit_test(test_green_caller),
        cmocka_unit_test(test_long_node_name),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
