/* SPDX-License-Identifier: Apache-2.0 */
/* The services every node exposes (runtime/services.h, CONTRACT.md), seen
 * from another node: two runtimes a@host and b@host wired as the node wires
 * them (rt_pair.h), each with its services started. The test thread is a
 * process of a@host and talks to b@host's echo, net_kernel and rex and
 * spawns erpc:execute_call/4 there as OTP's erpc:call does. Every expected
 * result is OTP text (what OTP 25 gives for the same call, checked with
 * erl) parsed and compared with edist_term_equal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* cmocka needs the headers above first */
#include <cmocka.h>

#include "runtime/services.h"
#include "runtime/services_internal.h"

static void after_start(void *s);
#define RT_PAIR_AFTER_START(s) after_start(s)
#include "edist/pg.h"
#include "rt_pair.h"

static edist_procid g_main;
static uint64_t g_base_a, g_base_b; /* processes of each side at rest */

/* ---- the node's side of the services: callbacks -------------------------- */

static pthread_mutex_t g_print_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_printed[256];
static int g_print_count;

static void print_line(void *user, const char *line, size_t len)
{
    (void)user;
    pthread_mutex_lock(&g_print_mu);
    snprintf(g_printed, sizeof g_printed, "%.*s", (int)len, line);
    g_print_count++;
    pthread_mutex_unlock(&g_print_mu);
}

static int nodes_of_b(void *user, unsigned which, edi_services_node_fn add,
                      void *ctx)
{
    (void)user;
    if (which & EDI_NODES_KNOWN) {
        add(ctx, "a@host", 6);
        add(ctx, "h@host", 6);
        add(ctx, "k@host", 6);
        return 0;
    }
    if (which & EDI_NODES_VISIBLE)
        add(ctx, "a@host", 6);
    if (which & EDI_NODES_HIDDEN)
        add(ctx, "h@host", 6);
    return 0;
}

/* ---- test exports on b@host ---------------------------------------------- */

/* t:fail/0: a C function that fails (negative return). */
static int ex_fail(void *user, const edist_term_view *args, uint32_t arity,
                   edist_buf *result)
{
    (void)user, (void)args, (void)arity, (void)result;
    return EDIST_EINVAL;
}

/* t:recv/0: returns the first message its process receives. */
static int ex_recv(void *user, const edist_term_view *args, uint32_t arity,
                   edist_buf *result)
{
    (void)user, (void)args, (void)arity;
    edist_term_view m;
    int rc = edist_receive(NULL, NULL, -1, &m);
    return rc ? rc : edist_enc_raw(result, m.ptr, m.len);
}

/* t:raise/0: error foo with a stack of its own (in caller memory: raise
 * does not return, so nothing may wait to be freed after it). */
static int ex_raise(void *user, const edist_term_view *args, uint32_t arity,
                    edist_buf *result)
{
    (void)user, (void)args, (void)arity, (void)result;
    uint8_t rm[16], sm[128];
    edist_buf r, st;
    edist_buf_init_fixed(&r, rm, sizeof rm);
    edist_buf_init_fixed(&st, sm, sizeof sm);
    edist_parse_error pe;
    static const char rt[] = "foo", stt[] = "[{t, inner, 2, [{line, 7}]}]";
    if (edist_term_parse(rt, sizeof rt - 1, &r, NULL, &pe) != 0 ||
        edist_term_parse(stt, sizeof stt - 1, &st, NULL, &pe) != 0)
        return EDIST_EINVAL;
    return edi_raise(EDI_RAISE_ERROR, r.data, r.len, st.data, st.len);
}

/* t:bad/0: "returns" bytes that are not a term. */
static int ex_bad(void *user, const edist_term_view *args, uint32_t arity,
                  edist_buf *result)
{
    (void)user, (void)args, (void)arity;
    return edist_buf_append(result, "\x68\x05\x61", 3);
}

static void after_start(void *arg)
{
    side *s = arg;
    edi_services_config cfg = {.print_line = print_line};
    if (s == &B) {
        cfg.nodes = nodes_of_b;
        assert_int_equal(
            edist_export_function(s->rt, "t", "fail", 0, ex_fail, NULL), 0);
        assert_int_equal(
            edist_export_function(s->rt, "t", "recv", 0, ex_recv, NULL), 0);
        assert_int_equal(
            edist_export_function(s->rt, "t", "raise", 0, ex_raise, NULL), 0);
        assert_int_equal(
            edist_export_function(s->rt, "t", "bad", 0, ex_bad, NULL), 0);
    }
    edi_services *svc = NULL;
    assert_int_equal(edi_services_start(s->rt, &cfg, &svc), 0);
    assert_non_null(svc);
    s->svc = svc;
}

/* ---- terms as OTP text --------------------------------------------------- */

static const edist_text_opts g_opts = {.local_node = "a@host",
                                       .local_creation = 1};

/* Text of a term (pids and refs of a@host in their local form), in one of
 * a few rotating buffers. */
static const char *show(edist_term_view v)
{
    static char ring[8][8192];
    static int next;
    char *out = ring[next++ % 8];
    edist_buf b;
    edist_buf_init(&b);
    edist_term_print(v.ptr, v.len, &b, &g_opts);
    const char *t = edist_buf_cstr(&b);
    snprintf(out, 8192, "%s", t ? t : "<unprintable>");
    edist_buf_free(&b);
    return out;
}

static const char *show_ref(const edist_ref *r)
{
    enc_small e;
    return show(enc_ref(&e, r));
}

static const char *show_pid(edist_procid p)
{
    enc_small e;
    return show(enc_pid(&e, p));
}

static edist_buf vparse(const char *fmt, va_list ap)
{
    char *text = NULL;
    if (vasprintf(&text, fmt, ap) < 0)
        abort();
    edist_buf b;
    edist_buf_init(&b);
    edist_parse_error pe;
    if (edist_term_parse(text, strlen(text), &b, &g_opts, &pe) != 0) {
        fprintf(stderr, "bad test term %s: %s\n", text, pe.message);
        abort();
    }
    free(text);
    return b;
}

__attribute__((format(printf, 1, 2))) static edist_buf parse(const char *fmt,
                                                             ...)
{
    va_list ap;
    va_start(ap, fmt);
    edist_buf b = vparse(fmt, ap);
    va_end(ap);
    return b;
}

/* Is v exactly the term the text says? Prints both when not. */
__attribute__((format(printf, 2, 3))) static bool is(edist_term_view v,
                                                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    edist_buf want = vparse(fmt, ap);
    va_end(ap);
    bool eq = v.ptr && edist_term_equal(v.ptr, v.len, want.data, want.len) == 1;
    if (!eq)
        fprintf(stderr, "got      %s\nexpected %s\n",
                v.ptr ? show(v) : "(nothing)",
                show((edist_term_view){want.data, want.len}));
    edist_buf_free(&want);
    return eq;
}

/* {Name, 'b@host'} ! Term */
__attribute__((format(printf, 2, 3))) static void send_b(const char *name,
                                                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    edist_buf b = vparse(fmt, ap);
    va_end(ap);
    assert_int_equal(edist_send_name_node(name, "b@host", b.data, b.len), 0);
    edist_buf_free(&b);
}

/* The next message (any), or a null view after 5 s. */
static edist_term_view next_msg(int64_t timeout_ms)
{
    edist_term_view m = {NULL, 0};
    if (edist_receive(NULL, NULL, timeout_ms, &m) != 0)
        m.ptr = NULL;
    return m;
}

static uint64_t procs(side *s)
{
    edist_runtime_stats st;
    assert_int_equal(edist_runtime_get_stats(s->rt, &st), 0);
    return st.processes;
}

/* Wait until side s has n processes again (the workers of a call end
 * just after its reply). */
static void settle(side *s, uint64_t n)
{
    uint64_t now = 0;
    for (int i = 0; i < 400 && (now = procs(s)) != n; i++)
        usleep(5000);
    assert_int_equal(now, n);
}

static void quiet_mailbox(void)
{
    edist_term_view m = next_msg(50);
    if (m.ptr)
        fprintf(stderr, "stray message %s\n", show(m));
    assert_null(m.ptr);
}

/* ---- erpc as OTP's erpc:call does it ------------------------------------- */

typedef struct call {
    char ref[128];    /* the Ref of [Ref, M, F, A], as text */
    edist_procid pid; /* the execute_call process */
    edist_ref req;    /* the spawn request = the monitor */
} call;

/* spawn_request(b@host, erpc, execute_call, [Ref, M, F, A], [monitor])
 * with mfa the text "M, F, A". */
static void erpc_start(const char *mfa, call *c)
{
    edist_ref r;
    assert_int_equal(edist_make_ref(&r), 0);
    snprintf(c->ref, sizeof c->ref, "%s", show_ref(&r));
    edist_buf args = parse("[%s, %s]", c->ref, mfa);
    edist_spawn_opts o = {.monitor = true};
    assert_int_equal(edist_spawn_remote("b@host", "erpc", "execute_call",
                                        args.data, args.len, &o, 5000, &c->pid,
                                        &c->req),
                     0);
    edist_buf_free(&args);
}

/* ... and its DOWN reason (valid until the next receive). */
static edist_term_view erpc_down(call *c)
{
    edist_term_view reason = {NULL, 0};
    assert_int_equal(recv_down(&c->req, 5000, &reason), 0);
    return reason;
}

static edist_term_view erpc(const char *mfa, call *c)
{
    erpc_start(mfa, c);
    return erpc_down(c);
}

/* ---- setup --------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    A.peer = &B;
    B.peer = &A;
    atomic_store(&connected, 1);
    start_side(&A, 1);
    start_side(&B, 2);
    if (edist_proc_attach_thread(A.rt, 0, &g_main) != 0)
        return -1;
    /* the services' processes: echo, net_kernel, rex, pg,
     * global_name_server with its locker and registrar, their keeper
     * (and this thread on a@host) */
    g_base_a = procs(&A);
    g_base_b = procs(&B);
    return g_base_b == 8 && g_base_a == 9 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    edist_proc_detach_thread(NULL, 0);
    stop_side(&A);
    stop_side(&B);
    edi_services_free(A.svc);
    edi_services_free(B.svc);
    return atomic_load(&buffers_live) == 0 ? 0 : -1;
}

/* ---- echo ---------------------------------------------------------------- */

static void test_echo(void **state)
{
    (void)state;
    static const char *const corpus[] = {
        "hello",
        "42",
        "-7",
        "123456789012345678901234567890",
        "3.25",
        "[]",
        "\"text\"",
        "<<1,2,3>>",
        "{a, [1, {b, <<\"x\">>}], #{k => v}}",
        "'Zürich'",
        "[1 | 2]",
        "<<\"a binary long enough to travel by reference, not copied\">>",
    };
    char self[128];
    snprintf(self, sizeof self, "%s", show_pid(g_main));
    for (size_t i = 0; i < sizeof corpus / sizeof corpus[0]; i++) {
        send_b("echo", "{%s, %s}", self, corpus[i]);
        edist_term_view m = next_msg(5000);
        assert_true(is(m, "%s", corpus[i]));
    }
    /* a ref and our own pid come back as themselves */
    edist_ref r;
    edist_make_ref(&r);
    send_b("echo", "{%s, {%s, %s}}", self, self, show_ref(&r));
    assert_true(is(next_msg(5000), "{%s, %s}", self, show_ref(&r)));
    /* anything else is ignored (and does not stop echo) */
    send_b("echo", "{notapid, x}");
    send_b("echo", "lonely_atom");
    send_b("echo", "{%s, x, y}", self);
    send_b("echo", "{%s, after_junk}", self);
    assert_true(is(next_msg(5000), "after_junk"));
    quiet_mailbox();
}

/* ---- net_kernel ---------------------------------------------------------- */

static void test_is_auth(void **state)
{
    (void)state;
    char self[128];
    snprintf(self, sizeof self, "%s", show_pid(g_main));
    /* as gen:call does it: monitor {net_kernel, Node}, call, demonitor */
    static const char *const tags[] = {"%s", "[alias | %s]"};
    for (size_t i = 0; i < 2; i++) {
        edist_ref mref;
        assert_int_equal(edist_monitor_name("net_kernel", "b@host", &mref), 0);
        char tag[160];
        snprintf(tag, sizeof tag, tags[i], show_ref(&mref));
        send_b("net_kernel", "{'$gen_call', {%s, %s}, {is_auth, 'a@host'}}",
               self, tag);
        assert_true(is(next_msg(5000), "{%s, yes}", tag));
        /* the monitor by name was active: the demonitor finds it */
        assert_int_equal(edist_demonitor(&mref, EDIST_DEMONITOR_FLUSH), 1);
    }
    /* other calls and junk are ignored */
    send_b("net_kernel", "{'$gen_call', {%s, t}, {connect, 'x@host'}}", self);
    send_b("net_kernel", "junk");
    quiet_mailbox();
    edist_procid nk;
    assert_int_equal(edist_runtime_whereis(B.rt, "net_kernel", &nk), 0);
}

/* ---- rex ----------------------------------------------------------------- */

/* M, F, A and what rpc.erl answers (OTP 25, checked against erl). */
static const char *const rex_cases[][2] = {
    {"edist_demo, add, [1, 2]", "3"},
    {"nomod, nofun, [1, 2]",
     "{badrpc, {'EXIT', {undef, [{nomod, nofun, [1, 2], []}]}}}"},
    {"edist_demo, nofun, []",
     "{badrpc, {'EXIT', {undef, [{edist_demo, nofun, [], []}]}}}"},
    {"edist_demo, crash, [boom]", "{badrpc, {'EXIT', boom}}"},
    {"edist_demo, crash, [normal]", "{badrpc, {'EXIT', normal}}"},
    {"erlang, throw, [foo]", "foo"},
    {"erlang, error, [foo]",
     "{badrpc, {'EXIT', {foo, [{erlang, error, [foo], []}]}}}"},
    {"erlang, exit, [foo]", "{badrpc, {'EXIT', foo}}"},
    {"erlang, node, []", "'b@host'"},
    {"edist_demo, echo, [{x, \"y\", <<\"z\">>}]", "{x, \"y\", <<\"z\">>}"},
    {"edist_demo, add, [a, 1]",
     "{badrpc, {'EXIT', {badarith, [{edist_demo, add, [a, 1], []}]}}}"},
};

static void test_rex_call_face(void **state)
{
    (void)state;
    char self[128];
    snprintf(self, sizeof self, "%s", show_pid(g_main));
    for (size_t i = 0; i < sizeof rex_cases / sizeof rex_cases[0]; i++) {
        /* what erl_call and ei_rpc send; GroupLeader is the atom user */
        send_b("rex", "{%s, {call, %s, user}}", self, rex_cases[i][0]);
        assert_true(is(next_msg(5000), "{rex, %s}", rex_cases[i][1]));
    }
    /* rex survives, and its workers are gone */
    send_b("rex", "{%s, {call, edist_demo, add, [40, 2], user}}", self);
    assert_true(is(next_msg(5000), "{rex, 42}"));
    settle(&B, g_base_b);
    quiet_mailbox();
}

static void test_rex_gen_face(void **state)
{
    (void)state;
    char self[128];
    snprintf(self, sizeof self, "%s", show_pid(g_main));
    for (size_t i = 0; i < sizeof rex_cases / sizeof rex_cases[0]; i++) {
        edist_ref mref;
        assert_int_equal(edist_monitor_name("rex", "b@host", &mref), 0);
        char tag[160];
        snprintf(tag, sizeof tag, i % 2 ? "[alias | %s]" : "%s",
                 show_ref(&mref));
        /* rpc:block_call */
        send_b("rex", "{'$gen_call', {%s, %s}, {block_call, %s, user}}", self,
               tag, rex_cases[i][0]);
        assert_true(is(next_msg(5000), "{%s, %s}", tag, rex_cases[i][1]));
        assert_int_equal(edist_demonitor(&mref, EDIST_DEMONITOR_FLUSH), 1);
    }
    /* the call request of old rpc:call, a group leader pid */
    send_b("rex",
           "{'$gen_call', {%s, t1}, {call, edist_demo, add, [2, 3], %s}}", self,
           self);
    assert_true(is(next_msg(5000), "{t1, 5}"));
    /* cast: nothing comes back, the function runs */
    send_b("rex",
           "{'$gen_cast', {cast, edist_demo, reply, [%s, casted], user}}",
           self);
    assert_true(is(next_msg(5000), "casted"));
    /* features_request, as rpc.erl asks it */
    send_b("rex", "{%s, features_request}", self);
    assert_true(is(next_msg(5000), "{features_reply, 'b@host', [erpc]}"));
    /* send and sbcast */
    send_b("rex", "{%s, {send, echo, hi}}", self); /* echo gets {Self, hi} */
    assert_true(is(next_msg(5000), "hi"));
    send_b("rex", "{%s, {send, nobody, hi}}", self);
    assert_true(
        is(next_msg(5000), "{rex, 'b@host', {nonexisting_name, nobody}}"));
    send_b("rex", "{%s, {sbcast, echo, {%s, hey}}}", self, self);
    assert_int_equal(recv_text("hey", 5000, NULL), 0);
    assert_int_equal(recv_text("{rex, 'b@host', 'b@host'}", 5000, NULL), 0);
    /* unknown requests are ignored */
    send_b("rex", "{'$gen_call', {%s, t2}, stop}", self);
    send_b("rex", "whatever");
    quiet_mailbox();
    settle(&B, g_base_b);
}

/* ---- erpc:execute_call/4 ------------------------------------------------- */

static void test_erpc_results(void **state)
{
    (void)state;
    call c;
    assert_true(
        is(erpc("edist_demo, add, [1, 2]", &c), "{%s, return, 3}", c.ref));
    assert_int_equal(c.pid.node, B.index);
    assert_true(is(erpc("nomod, nofun, [1, 2]", &c),
                   "{%s, error, undef, [{nomod, nofun, [1, 2], []}]}", c.ref));
    assert_true(
        is(erpc("edist_demo, crash, [boom]", &c), "{%s, exit, boom}", c.ref));
    assert_true(is(erpc("edist_demo, crash, [{shutdown, [1, 2]}]", &c),
                   "{%s, exit, {shutdown, [1, 2]}}", c.ref));
    assert_true(is(erpc("edist_demo, crash, [normal]", &c),
                   "{%s, exit, normal}", c.ref));
    assert_true(
        is(erpc("erlang, throw, [foo]", &c), "{%s, throw, foo}", c.ref));
    assert_true(is(erpc("erlang, error, [foo]", &c),
                   "{%s, error, foo, [{erlang, error, [foo], []}]}", c.ref));
    assert_true(is(erpc("erlang, exit, [foo]", &c), "{%s, exit, foo}", c.ref));
    assert_true(is(erpc("edist_demo, add, [a, 1]", &c),
                   "{%s, error, badarith, [{edist_demo, add, [a, 1], []}]}",
                   c.ref));
    assert_true(is(
        erpc("edist_demo, sleep, [-1]", &c),
        "{%s, error, timeout_value, [{edist_demo, sleep, [-1], []}]}", c.ref));
    assert_true(is(erpc("edist_demo, echo, [[1, 2.5, <<\"three\">>, {4}]]", &c),
                   "{%s, return, [1, 2.5, <<\"three\">>, {4}]}", c.ref));
    assert_true(is(erpc("edist_demo, echo, [\"abc\"]", &c),
                   "{%s, return, \"abc\"}", c.ref));
    /* arguments as a string (STRING_EXT on the wire) */
    assert_true(
        is(erpc("edist_demo, add, [7, 8]", &c), "{%s, return, 15}", c.ref));
    assert_true(
        is(erpc("edist_demo, add, \"\\1\\2\"", &c), "{%s, return, 3}", c.ref));
    /* erlang:* */
    assert_true(
        is(erpc("erlang, node, []", &c), "{%s, return, 'b@host'}", c.ref));
    assert_true(
        is(erpc("erlang, is_alive, []", &c), "{%s, return, true}", c.ref));
    assert_true(
        is(erpc("erlang, nodes, []", &c), "{%s, return, ['a@host']}", c.ref));
    assert_true(is(erpc("erlang, nodes, [hidden]", &c),
                   "{%s, return, ['h@host']}", c.ref));
    assert_true(is(erpc("erlang, nodes, [[this, connected]]", &c),
                   "{%s, return, ['b@host', 'a@host', 'h@host']}", c.ref));
    assert_true(is(erpc("erlang, nodes, [known]", &c),
                   "{%s, return, ['b@host', 'a@host', 'h@host', 'k@host']}",
                   c.ref));
    assert_true(is(erpc("erlang, nodes, [[]]", &c), "{%s, return, []}", c.ref));
    assert_true(is(erpc("erlang, nodes, [bogus]", &c),
                   "{%s, error, badarg, [{erlang, nodes, [bogus], []}]}",
                   c.ref));
    /* apply's own argument errors */
    assert_true(is(erpc("edist_demo, add, notalist", &c),
                   "{%s, error, badarg, [{erlang, apply, [edist_demo, add, "
                   "notalist], []}]}",
                   c.ref));
    assert_true(is(erpc("edist_demo, add, [1 | 2]", &c),
                   "{%s, error, badarg, [{erlang, apply, [edist_demo, add, [1 "
                   "| 2]], []}]}",
                   c.ref));
    assert_true(
        is(erpc("\"mod\", add, [1]", &c),
           "{%s, error, badarg, [{erlang, apply, [\"mod\", add, [1]], []}]}",
           c.ref));
    {
        char many[2048] = "edist_demo, add, [";
        for (int i = 0; i < 256; i++)
            strcat(many, i ? ",0" : "0");
        strcat(many, "]");
        assert_true(
            is(erpc(many, &c), "{%s, error, {erpc, system_limit}}", c.ref));
    }
    /* C functions that fail, raise with a stack, return garbage */
    assert_true(is(erpc("t, fail, []", &c),
                   "{%s, error, {edist_error, einval}, [{t, fail, [], []}]}",
                   c.ref));
    assert_true(is(erpc("t, raise, []", &c),
                   "{%s, error, foo, [{t, inner, 2, [{line, 7}]}]}", c.ref));
    assert_true(is(erpc("t, bad, []", &c),
                   "{%s, error, {edist_error, etrunc}, [{t, bad, [], []}]}", c.ref));
    settle(&B, g_base_b);
    quiet_mailbox();
}

static const char *const add_vectors[][3] = {
    {"1", "2", "3"},
    {"18446744073709551616", "18446744073709551616", "36893488147419103232"},
    {"123456789012345678901234567890", "987654321098765432109876543210",
     "1111111110111111111011111111100"},
    {"-123456789012345678901234567890", "123456789012345678901234567891", "1"},
    {"9223372036854775807", "1", "9223372036854775808"},
    {"-9223372036854775808", "-1", "-9223372036854775809"},
    {"18446744073709551615", "-18446744073709551616", "-1"},
    {"1455428565004863093618902384493306497288094420592170563459455876547493568"
     "7622524125920961121874445691118538159955887574637547510391404866929774571"
     "8921773427823433158419120765536610198213840157598554853892256499754024901"
     "9664116831899915010424760884596797279819869454180432027486612482117483398"
     "2509190335174467627930429399116544304369172677070020697287955090819664042"
     "5338921571293316568559870845121133328067132170701239967995835212682384168"
     "8814713950817208293761749894508259719664946570648993402761407697940817777"
     "9637114354728780748374038537533465966842488213314066139444305874765548360"
     "3144141890006567217223554270198636103730385125376",
     "-1",
     "1455428565004863093618902384493306497288094420592170563459455876547493568"
     "7622524125920961121874445691118538159955887574637547510391404866929774571"
     "8921773427823433158419120765536610198213840157598554853892256499754024901"
     "9664116831899915010424760884596797279819869454180432027486612482117483398"
     "2509190335174467627930429399116544304369172677070020697287955090819664042"
     "5338921571293316568559870845121133328067132170701239967995835212682384168"
     "8814713950817208293761749894508259719664946570648993402761407697940817777"
     "9637114354728780748374038537533465966842488213314066139444305874765548360"
     "3144141890006567217223554270198636103730385125375"},
    {"-126238304966058622268417487065116999845484776053576109500509161826268184"
     "1362026988015515680137613807175340545348511641386489045279316051605276880"
     "9525956360593996436471601951598339920996245957854217210014993776393858121"
     "9604072733422507180056009672540900709554109516816573779593326332288314873"
     "2515590778530684449778648033919625808006827600178495892819376379934455393"
     "6642835676182106526742310214944762837569186221071720202524163030311855918"
     "8678304314076943801692528246980959705901641444238894928620825482303431806"
     "9556902263087734268295039009305293951812087395919671958415360531431457753"
     "07050594328881077553168201547776",
     "1262383049660586222684174870651169998454847760535761095005091618262681841"
     "3620269880155156801376138071753405453485116413864890452793160516052768809"
     "5259563605939964364716019515983399209962459578542172100149937763938581219"
     "6040727334225071800560096725409007095541095168165737795933263322883148732"
     "5155907785306844497786480339196258080068276001784958928193763799344553936"
     "6428356761821065267423102149447628375691862210717202025241630303118559188"
     "6783043140769438016925282469809597059016414442388949286208254823034318069"
     "5569022630877342682950390093052939518120873959196719584153605314314577530"
     "7050594328881077553168201547776",
     "0"},
    {"-1180591620717411303424", "1180591620717411303429", "5"},
    {"-18446744073709551871", "-1", "-18446744073709551872"},
    {"0",
     "-203703597633448608626844568840937816105146839366593625063614044935438129"
     "9763336706183397376",
     "-203703597633448608626844568840937816105146839366593625063614044935438129"
     "9763336706183397376"},
    {"255", "1", "256"},
    {"2147483647", "1", "2147483648"},
    {"-2147483648", "-1", "-2147483649"},
    {"-145542856500486309361890238449330649728809442059217056345945587654749356"
     "8762252412592096112187444569111853815995588757463754751039140486692977457"
     "1892177342782343315841912076553661019821384015759855485389225649975402490"
     "1966411683189991501042476088459679727981986945418043202748661248211748339"
     "8250919033517446762793042939911654430436917267707002069728795509081966404"
     "2533892157129331656855987084512113332806713217070123996799583521268238416"
     "8881471395081720829376174989450825971966494657064899340276140769794081777"
     "7963711435472878074837403853753346596684248821331406613944430587476554836"
     "03144141890006567217223554270198636103730385125375",
     "-145542856500486309361890238449330649728809442059217056345945587654749356"
     "8762252412592096112187444569111853815995588757463754751039140486692977457"
     "1892177342782343315841912076553661019821384015759855485389225649975402490"
     "1966411683189991501042476088459679727981986945418043202748661248211748339"
     "8250919033517446762793042939911654430436917267707002069728795509081966404"
     "2533892157129331656855987084512113332806713217070123996799583521268238416"
     "8881471395081720829376174989450825971966494657064899340276140769794081777"
     "7963711435472878074837403853753346596684248821331406613944430587476554836"
     "03144141890006567217223554270198636103730385125376",
     "-291085713000972618723780476898661299457618884118434112691891175309498713"
     "7524504825184192224374889138223707631991177514927509502078280973385954914"
     "3784354685564686631683824153107322039642768031519710970778451299950804980"
     "3932823366379983002084952176919359455963973890836086405497322496423496679"
     "6501838067034893525586085879823308860873834535414004139457591018163932808"
     "5067784314258663313711974169024226665613426434140247993599167042536476833"
     "7762942790163441658752349978901651943932989314129798680552281539588163555"
     "5927422870945756149674807707506693193368497642662813227888861174953109672"
     "06288283780013134434447108540397272207460770250751"},
};

static void test_erpc_bignum_add(void **state)
{
    (void)state;
    call c;
    for (size_t i = 0; i < sizeof add_vectors / sizeof add_vectors[0]; i++) {
        char mfa[4096];
        snprintf(mfa, sizeof mfa, "edist_demo, add, [%s, %s]",
                 add_vectors[i][0], add_vectors[i][1]);
        assert_true(
            is(erpc(mfa, &c), "{%s, return, %s}", c.ref, add_vectors[i][2]));
    }
}

/* edi_services_int_add directly: the vectors byte for byte (canonical
 * encoding, as term_to_binary gives it), then properties on random
 * integers of up to 64 bytes. */
static void test_int_add(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof add_vectors / sizeof add_vectors[0]; i++) {
        edist_buf a = parse("%s", add_vectors[i][0]),
                  b = parse("%s", add_vectors[i][1]);
        edist_buf want = parse("%s", add_vectors[i][2]), got;
        edist_buf_init(&got);
        assert_int_equal(edi_services_int_add((edist_term_view){a.data, a.len},
                                              (edist_term_view){b.data, b.len},
                                              &got),
                         0);
        assert_int_equal(got.len, want.len);
        assert_memory_equal(got.data, want.data, want.len);
        edist_buf_free(&a);
        edist_buf_free(&b);
        edist_buf_free(&want);
        edist_buf_free(&got);
    }
    srand(7);
    for (int i = 0; i < 2000; i++) {
        uint8_t mag[3][64];
        edist_buf x[3];
        for (int k = 0; k < 3; k++) {
            size_t n = (size_t)(rand() % 65);
            for (size_t j = 0; j < n; j++)
                mag[k][j] = (uint8_t)rand();
            edist_buf_init(&x[k]);
            edist_enc_big(&x[k], rand() & 1, mag[k], n);
        }
        edist_term_view a = {x[0].data, x[0].len}, b = {x[1].data, x[1].len},
                        c = {x[2].data, x[2].len};
        edist_buf ab, ba, ab_c, bc, a_bc, neg, zero;
        edist_buf *all[] = {&ab, &ba, &ab_c, &bc, &a_bc, &neg, &zero};
        for (size_t k = 0; k < 7; k++)
            edist_buf_init(all[k]);
        /* commutative, associative, a + (-a) = 0 */
        assert_int_equal(edi_services_int_add(a, b, &ab), 0);
        assert_int_equal(edi_services_int_add(b, a, &ba), 0);
        assert_int_equal(
            edi_services_int_add((edist_term_view){ab.data, ab.len}, c, &ab_c),
            0);
        assert_int_equal(edi_services_int_add(b, c, &bc), 0);
        assert_int_equal(
            edi_services_int_add(a, (edist_term_view){bc.data, bc.len}, &a_bc),
            0);
        assert_int_equal(edist_term_equal(ab.data, ab.len, ba.data, ba.len), 1);
        assert_int_equal(ab_c.len, a_bc.len);
        assert_memory_equal(ab_c.data, a_bc.data, a_bc.len);
        edist_cursor cur;
        int sign;
        const uint8_t *m;
        size_t n;
        uint8_t tmp[8];
        edist_cursor_init(&cur, a.ptr, a.len);
        assert_int_equal(edist_dec_integer(&cur, &sign, &m, &n, tmp), 0);
        edist_enc_big(&neg, !sign, m, n);
        assert_int_equal(edi_services_int_add(
                             a, (edist_term_view){neg.data, neg.len}, &zero),
                         0);
        assert_int_equal(zero.len, 2); /* SMALL_INTEGER 0 */
        assert_int_equal(zero.data[0], EDIST_TAG_SMALL_INTEGER);
        assert_int_equal(zero.data[1], 0);
        for (size_t k = 0; k < 7; k++)
            edist_buf_free(all[k]);
        for (int k = 0; k < 3; k++)
            edist_buf_free(&x[k]);
    }
    /* not integers */
    edist_buf a = term("1"), f = term("1.5"), out;
    edist_buf_init(&out);
    assert_int_equal(edi_services_int_add((edist_term_view){a.data, a.len},
                                          (edist_term_view){f.data, f.len},
                                          &out),
                     EDIST_ETYPE);
    edist_buf_free(&a);
    edist_buf_free(&f);
    edist_buf_free(&out);
}

/* ---- erpc:execute_cast/3 ------------------------------------------------- */

/* spawn_request(b@host, erpc, execute_cast, [M, F, A], [monitor]): the
 * exit reason of the cast's process. */
static edist_term_view cast_down(const char *mfa)
{
    edist_buf args = parse("[%s]", mfa);
    edist_spawn_opts o = {.monitor = true};
    edist_procid pid;
    edist_ref req;
    assert_int_equal(edist_spawn_remote("b@host", "erpc", "execute_cast",
                                        args.data, args.len, &o, 5000, &pid,
                                        &req),
                     0);
    edist_buf_free(&args);
    edist_term_view reason = {NULL, 0};
    assert_int_equal(recv_down(&req, 5000, &reason), 0);
    return reason;
}

static void test_erpc_cast(void **state)
{
    (void)state;
    char self[128];
    snprintf(self, sizeof self, "%s", show_pid(g_main));
    char mfa[256];
    snprintf(mfa, sizeof mfa, "edist_demo, reply, [%s, {response, 3}]", self);
    /* the function ran (its message is here first), the process ended
     * normally */
    edist_buf args = parse("[%s]", mfa);
    edist_ref req;
    assert_int_equal(edist_spawn_request("b@host", "erpc", "execute_cast",
                                         args.data, args.len, NULL, &req),
                     0);
    edist_buf_free(&args);
    assert_int_equal(recv_text("{spawn_reply, _, ok, _}", 5000, NULL), 0);
    assert_true(is(next_msg(5000), "{response, 3}"));
    assert_true(is(cast_down(mfa), "normal"));
    assert_true(is(next_msg(5000), "{response, 3}"));
    /* exceptions end the process as erpc.erl's execute_cast ends it */
    assert_true(is(cast_down("edist_demo, crash, [boom]"), "boom"));
    assert_true(is(cast_down("erlang, error, [foo]"),
                   "{{exception, {foo, [{erlang, error, [foo], []}]}}, "
                   "[{erpc, execute_cast, 3, []}]}"));
    assert_true(is(cast_down("erlang, throw, [foo]"),
                   "{{nocatch, foo}, [{erpc, execute_cast, 3, []}]}"));
    assert_true(is(cast_down("nomod, nofun, []"),
                   "{{exception, {undef, [{nomod, nofun, [], []}]}}, "
                   "[{erpc, execute_cast, 3, []}]}"));
    settle(&B, g_base_b);
    quiet_mailbox();
}

/* ---- edist_demo ---------------------------------------------------------- */

static int printed(char *out, size_t cap)
{
    pthread_mutex_lock(&g_print_mu);
    int n = g_print_count;
    snprintf(out, cap, "%s", g_printed);
    pthread_mutex_unlock(&g_print_mu);
    return n;
}

static void test_demo_hello_reply(void **state)
{
    (void)state;
    char line[256];
    int before = printed(line, sizeof line);
    call c;
    assert_true(
        is(erpc("edist_demo, hello, []", &c), "{%s, return, ok}", c.ref));
    /* printed on b@host, before the function returned */
    assert_int_equal(printed(line, sizeof line), before + 1);
    assert_string_equal(line, "Hello from b@host");
    /* spawn(b@host, edist_demo, hello, []) prints too */
    edist_buf nil = term("[]");
    edist_spawn_opts o = {.monitor = true};
    edist_procid pid;
    edist_ref req;
    edist_term_view reason;
    assert_int_equal(edist_spawn_remote("b@host", "edist_demo", "hello",
                                        nil.data, nil.len, &o, 5000, &pid,
                                        &req),
                     0);
    edist_buf_free(&nil);
    assert_int_equal(recv_down(&req, 5000, &reason), 0);
    assert_true(is(reason, "normal"));
    assert_int_equal(printed(line, sizeof line), before + 2);
    /* reply/2 sends to the caller: {response, 3} arrives before the DOWN */
    char mfa[256];
    snprintf(mfa, sizeof mfa, "edist_demo, reply, [%s, {response, 3}]",
             show_pid(g_main));
    erpc_start(mfa, &c);
    assert_true(is(next_msg(5000), "{response, 3}"));
    assert_true(is(erpc_down(&c), "{%s, return, ok}", c.ref));
    assert_true(is(
        erpc("edist_demo, reply, [notapid, x]", &c),
        "{%s, error, badarg, [{edist_demo, reply, [notapid, x], []}]}", c.ref));
    quiet_mailbox();
}

/* sleep/1 waits in receive-after: other processes of b@host go on. Had
 * the sleep held the shard, the other calls would have been answered
 * only after it, with the sleeper gone. */
static void test_demo_sleep_yields(void **state)
{
    (void)state;
    uint64_t t0 = now_ms();
    call slow, fast;
    erpc_start("edist_demo, sleep, [1000]", &slow);
    /* while it sleeps: another call, echo and rex all answer */
    assert_true(is(erpc("edist_demo, add, [1, 2]", &fast), "{%s, return, 3}",
                   fast.ref));
    char self[128];
    snprintf(self, sizeof self, "%s", show_pid(g_main));
    send_b("echo", "{%s, ping}", self);
    assert_true(is(next_msg(5000), "ping"));
    send_b("rex", "{%s, {call, edist_demo, add, [2, 2], user}}", self);
    assert_true(is(next_msg(5000), "{rex, 4}"));
    /* the sleeper (and its worker) still sleep */
    assert_true(edist_runtime_is_alive(B.rt, slow.pid));
    assert_int_equal(procs(&B), g_base_b + 2);
    assert_true(is(erpc_down(&slow), "{%s, return, ok}", slow.ref));
    assert_true(now_ms() - t0 >= 1000);
    settle(&B, g_base_b);
    quiet_mailbox();
}

static _Atomic int g_linked_pid_set;
static edist_procid g_linked_pid;

/* spawn_request(b@host, erpc, execute_call, [r, t, recv, []], [link]),
 * then exit(bye). */
static void linked_caller(void *arg)
{
    (void)arg;
    edist_buf args = term("[r, t, recv, []]");
    edist_spawn_opts o = {.link = true};
    edist_procid pid;
    edist_ref req;
    int rc = edist_spawn_remote("b@host", "erpc", "execute_call", args.data,
                                args.len, &o, 5000, &pid, &req);
    edist_buf_free(&args);
    if (rc == 0) {
        g_linked_pid = pid;
        atomic_store(&g_linked_pid_set, 1);
    }
    static const uint8_t bye[] = {EDIST_TAG_SMALL_ATOM_UTF8, 3, 'b', 'y', 'e'};
    edist_exit(bye, sizeof bye);
}

/* The execute_call process stands for the function's process: messages
 * to it reach the function, exit signals end both. */
static void test_erpc_process_semantics(void **state)
{
    (void)state;
    call c;
    erpc_start("t, recv, []", &c);
    assert_int_equal(send_text(c.pid, "{hello, 1}"), 0);
    assert_true(is(erpc_down(&c), "{%s, return, {hello, 1}}", c.ref));
    /* exit(Pid, normal) is ignored; exit(Pid, shutdown) ends it (and the
     * worker with it), with the reason itself, as in erts */
    erpc_start("t, recv, []", &c);
    edist_buf r = term("normal");
    assert_int_equal(edist_exit_signal(c.pid, r.data, r.len), 0);
    edist_buf_free(&r);
    usleep(30000);
    assert_int_equal(procs(&B), g_base_b + 2);
    r = term("shutdown");
    assert_int_equal(edist_exit_signal(c.pid, r.data, r.len), 0);
    edist_buf_free(&r);
    assert_true(is(erpc_down(&c), "shutdown"));
    settle(&B, g_base_b);
    erpc_start("edist_demo, sleep, [infinity]", &c);
    r = term("kill");
    assert_int_equal(edist_exit_signal(c.pid, r.data, r.len), 0);
    edist_buf_free(&r);
    assert_true(is(erpc_down(&c), "killed"));
    settle(&B, g_base_b);
    /* a linked caller that dies takes the call with it: a process of
     * a@host spawns t:recv/0 through erpc with link, then exits */
    atomic_store(&g_linked_pid_set, 0);
    edist_procid caller;
    assert_int_equal(
        edist_runtime_spawn(A.rt, linked_caller, NULL, NULL, &caller), 0);
    for (int i = 0; i < 500 && !atomic_load(&g_linked_pid_set); i++)
        usleep(2000);
    assert_true(atomic_load(&g_linked_pid_set));
    assert_int_equal(g_linked_pid.node, B.index);
    settle(&B, g_base_b);
    assert_false(edist_runtime_is_alive(B.rt, g_linked_pid));
    settle(&A, g_base_a);
    quiet_mailbox();
}

static void *raise_outside(void *arg)
{
    *(int *)arg = edi_raise(EDI_RAISE_THROW, "\x61\x01", 2, NULL, 0);
    return NULL;
}

/* edi_raise outside erpc: the process ends as an uncaught exception ends
 * an Erlang process. */
static void test_raise_plain_spawn(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"throw", "{{nocatch, foo}, []}"},
        {"error", "{foo, []}"},
        {"exit", "foo"},
    };
    edist_buf args = term("[foo]");
    for (size_t i = 0; i < 3; i++) {
        edist_spawn_opts o = {.monitor = true};
        edist_procid pid;
        edist_ref req;
        edist_term_view reason;
        assert_int_equal(edist_spawn_remote("b@host", "erlang", cases[i][0],
                                            args.data, args.len, &o, 5000, &pid,
                                            &req),
                         0);
        assert_int_equal(recv_down(&req, 5000, &reason), 0);
        assert_true(is(reason, "%s", cases[i][1]));
    }
    edist_buf_free(&args);
    /* bad arguments; not from a process */
    assert_int_equal(edi_raise(EDI_RAISE_THROW, "\x61\x01", 0, NULL, 0),
                     EDIST_EINVAL);
    assert_int_equal(edi_raise(EDI_RAISE_THROW, "\x68\x02", 2, NULL, 0),
                     EDIST_ETRUNC);
    pthread_t t;
    int rc = 0;
    assert_int_equal(pthread_create(&t, NULL, raise_outside, &rc), 0);
    pthread_join(t, NULL);
    assert_int_equal(rc, EDIST_EINVAL);
    quiet_mailbox();
}

/* ---- start errors, and a node that is not alive -------------------------- */

static _Atomic int g_probe_done;
static char g_probe_text[256];

/* In a process of a runtime without distribution: erpc of is_alive/0 and
 * node/0 on its own node (the Ref of execute_call may be any term). */
static void alive_probe(void *arg)
{
    (void)arg;
    static const char *const calls[] = {"[r, erlang, is_alive, []]",
                                        "[r, erlang, node, []]"};
    size_t off = 0;
    for (size_t i = 0; i < 2; i++) {
        edist_buf args = term(calls[i]), text;
        edist_spawn_opts o = {.monitor = true};
        edist_procid pid;
        edist_ref req;
        edist_term_view reason = {NULL, 0};
        edist_buf_init(&text);
        if (edist_spawn_remote(NULL, "erpc", "execute_call", args.data,
                               args.len, &o, 5000, &pid, &req) == 0 &&
            recv_down(&req, 5000, &reason) == 0)
            edist_term_print(reason.ptr, reason.len, &text, NULL);
        const char *t = edist_buf_cstr(&text);
        off += (size_t)snprintf(g_probe_text + off, sizeof g_probe_text - off,
                                "%s%s", i ? " " : "", t ? t : "?");
        edist_buf_free(&text);
        edist_buf_free(&args);
    }
    atomic_store(&g_probe_done, 1);
}

/* A service that ends is started again under its name (it stayed gone
 * until the node restarted: a peer's exit signal, or a mailbox_overflow,
 * took pg and every member with it); one that ends six times in 10 s
 * stays down, and global_name_server is not started again (its peers
 * would not sync with a new one). */
static bool whereis_other(edist_runtime *rt, const char *name, edist_procid old,
                          edist_procid *now)
{
    for (int i = 0; i < 1000; i++) {
        if (edist_runtime_whereis(rt, name, now) == 0 && !edist_procid_equal(*now, old))
            return true;
        usleep(2000);
    }
    return false;
}

/* The keeper's count of restarts once it reached want (it counts after
 * the new process took the name, so a moment after whereis sees it). */
static uint64_t restarts_once(uint64_t want)
{
    const edi_services *svc = A.svc;
    for (int i = 0; i < 1000 && atomic_load(&svc->restarts) < want; i++)
        usleep(2000);
    return atomic_load(&svc->restarts);
}

static void test_services_restarted(void **state)
{
    (void)state;
    edist_procid pg1, pg2;
    assert_int_equal(edist_runtime_whereis(A.rt, "pg", &pg1), 0);
    assert_int_equal(edist_exit_signal(pg1, EDIST_REASON_KILL.ptr, EDIST_REASON_KILL.len), 0);
    assert_true(whereis_other(A.rt, "pg", pg1, &pg2));
    assert_int_equal(restarts_once(1), 1);
    /* the new one serves */
    uint8_t g[] = {EDIST_TAG_SMALL_ATOM_UTF8, 2, 'g', '1'};
    assert_int_equal(edist_pg_join(g, sizeof g, g_main), 0);
    edist_buf out;
    edist_buf_init(&out);
    assert_int_equal(edist_pg_get_members(g, sizeof g, &out), 0);
    edist_cursor c;
    uint32_t n = 0;
    edist_procid member;
    edist_cursor_init(&c, out.data, out.len);
    assert_int_equal(edist_dec_list(&c, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(edist_dec_procid(&c, &member), 0);
    assert_true(edist_procid_equal(member, g_main));
    edist_buf_free(&out);
    /* five more ends in a row: the sixth in 10 s stays down */
    for (int i = 0; i < 5; i++) {
        edist_procid now;
        assert_int_equal(edist_exit_signal(pg2, EDIST_REASON_KILL.ptr, EDIST_REASON_KILL.len),
                         0);
        if (i < 4) {
            assert_true(whereis_other(A.rt, "pg", pg2, &now));
            pg2 = now;
        }
    }
    usleep(100000);
    edist_procid none;
    assert_int_equal(edist_runtime_whereis(A.rt, "pg", &none), EDIST_ENOTFOUND);
    assert_int_equal(restarts_once(5), 5);
    /* the others are still kept */
    edist_procid rex1, rex2;
    assert_int_equal(edist_runtime_whereis(A.rt, "rex", &rex1), 0);
    assert_int_equal(edist_exit_signal(rex1, EDIST_REASON_KILL.ptr, EDIST_REASON_KILL.len), 0);
    assert_true(whereis_other(A.rt, "rex", rex1, &rex2));
    assert_int_equal(restarts_once(6), 6);
    edist_procid gl;
    assert_int_equal(edist_runtime_whereis(A.rt, "global_name_server", &gl), 0);
    assert_int_equal(edist_exit_signal(gl, EDIST_REASON_KILL.ptr, EDIST_REASON_KILL.len), 0);
    usleep(100000);
    assert_int_equal(edist_runtime_whereis(A.rt, "global_name_server", &none), EDIST_ENOTFOUND);
    assert_int_equal(restarts_once(6), 6);
}

/* The keeper's bound is an option (service_restarts): with 1, a
 * service's first end is repaired and its second, within the period,
 * leaves it down. */
static void test_service_restarts_option(void **state)
{
    (void)state;
    edist_runtime *rt;
    edist_runtime_config pc;
    edist_runtime_config_init(&pc);
    assert_int_equal(edist_runtime_start(&pc, &rt), 0);
    edi_services_config cfg = {.service_restarts = 1, .service_restart_period_ms = 60000};
    edi_services *svc = NULL;
    assert_int_equal(edi_services_start(rt, &cfg, &svc), 0);
    edist_procid self, e1, e2, none = EDIST_PROCID_NULL;
    assert_int_equal(edist_proc_attach_thread(rt, 0, &self), 0); /* to send exits */
    assert_true(whereis_other(rt, "echo", none, &e1));
    assert_int_equal(edist_exit_signal(e1, EDIST_REASON_KILL.ptr, EDIST_REASON_KILL.len), 0);
    assert_true(whereis_other(rt, "echo", e1, &e2));
    assert_int_equal(edist_exit_signal(e2, EDIST_REASON_KILL.ptr, EDIST_REASON_KILL.len), 0);
    /* no third echo, however long the keeper takes to decide */
    assert_false(whereis_other(rt, "echo", e2, &none));
    assert_int_equal(atomic_load(&svc->restarts), 1);
    edist_proc_detach_thread(NULL, 0);
    edist_runtime_stop(rt);
    edi_services_free(svc);
}

static void test_start_errors(void **state)
{
    (void)state;
    edi_services *dup = NULL;
    edi_services_config cfg = {.disable = EDI_SERVICE_EXPORTS};
    assert_int_equal(edi_services_start(B.rt, &cfg, &dup), EDIST_EEXIST);
    assert_non_null(dup); /* freed after the runtime, as on success */
    edi_services_free(dup);
    assert_int_equal(edi_services_start(NULL, &cfg, &dup), EDIST_EINVAL);
    assert_null(dup);
    settle(&B, g_base_b);

    /* a runtime without distribution: is_alive() is false, node() is
     * nonode@nohost; services may be started from any thread */
    edist_runtime *rt;
    edist_runtime_config pc;
    edist_runtime_config_init(&pc);
    assert_int_equal(edist_runtime_start(&pc, &rt), 0);
    edi_services *svc = NULL;
    assert_int_equal(edi_services_start(rt, NULL, &svc), 0);
    edist_procid probe;
    assert_int_equal(edist_runtime_spawn(rt, alive_probe, NULL, NULL, &probe),
                     0);
    for (int i = 0; i < 500 && !atomic_load(&g_probe_done); i++)
        usleep(2000);
    assert_true(atomic_load(&g_probe_done));
    assert_string_equal(g_probe_text,
                        "{r,return,false} {r,return,nonode@nohost}");
    edist_runtime_stop(rt);
    edi_services_free(svc);
}

/* ---- pg ------------------------------------------------------------------- */

static void free_pattern(void *p)
{
    edist_pattern_free(p);
}

static void pg_idle(void *arg)
{
    (void)arg;
    edist_pattern *p = pattern("never");
    edist_at_exit(free_pattern, p);
    edist_term_view m;
    edist_receive(p, NULL, -1, &m);
}

/* On b@host: {pg_view, get_members(g1)} to main. */
static void b_reports_members(void *arg)
{
    (void)arg;
    edist_buf g = term("g1"), out;
    edist_buf_init(&out);
    if (edist_pg_get_members(g.data, g.len, &out) == 0) {
        edist_buf msg;
        edist_buf_init(&msg);
        edist_enc_tuple(&msg, 2);
        edist_enc_atom(&msg, "pg_view", 7);
        edist_enc_raw(&msg, out.data, out.len);
        edist_send(g_main, msg.data, msg.len);
        edist_buf_free(&msg);
    }
    edist_buf_free(&out);
    edist_buf_free(&g);
}

/* Members as b@host sees them equal want (a list of pids, as text), within
 * a few seconds. */
static int b_sees(const char *want)
{
    edist_buf w = parse("%s", want);
    int eq = 0;
    for (int i = 0; i < 100 && eq != 1; i++) {
        edist_procid p;
        assert_int_equal(edist_runtime_spawn(B.rt, b_reports_members, NULL, NULL, &p), 0);
        edist_term_view m = {0};
        assert_int_equal(recv_text("{pg_view, _}", 5000, &m), 0);
        edist_cursor c;
        uint32_t n;
        edist_term_view list;
        edist_cursor_init(&c, m.ptr, m.len);
        assert_int_equal(edist_dec_tuple(&c, &n), 0);
        assert_int_equal(edist_skip(&c), 0);
        assert_int_equal(edist_dec_term(&c, &list), 0);
        eq = edist_term_equal(list.ptr, list.len, w.data, w.len);
        if (eq != 1)
            usleep(20000);
    }
    edist_buf_free(&w);
    return eq == 1;
}

static bool members_are(const char *group, bool local, const char *want)
{
    edist_buf g = term(group), out;
    edist_buf_init(&out);
    int rc = local ? edist_pg_get_local_members(g.data, g.len, &out)
                   : edist_pg_get_members(g.data, g.len, &out);
    bool eq = rc == 0 && is((edist_term_view){out.data, out.len}, "%s", want);
    edist_buf_free(&g);
    edist_buf_free(&out);
    return eq;
}

/* The C API against a@host's scope process, and b@host's scope seeing
 * a@host's members through the pg protocol (discover, sync, join, leave). */
static void test_pg(void **state)
{
    (void)state;
    char want[256];
    edist_procid m1, m2, far;
    assert_int_equal(edist_runtime_spawn(A.rt, pg_idle, NULL, NULL, &m1), 0);
    assert_int_equal(edist_runtime_spawn(A.rt, pg_idle, NULL, NULL, &m2), 0);
    assert_int_equal(edist_runtime_spawn(B.rt, pg_idle, NULL, NULL, &far), 0);
    edist_buf g1 = term("g1"), g2 = term("{group, 2}");
    assert_int_equal(edist_pg_join(g1.data, g1.len, m1), 0);
    assert_int_equal(edist_pg_join(g1.data, g1.len, m2), 0);
    assert_int_equal(edist_pg_join(g1.data, g1.len, m1), 0); /* twice */
    assert_int_equal(edist_pg_join(g2.data, g2.len, m2), 0);
    char s1[64], s2[64];
    snprintf(s1, sizeof s1, "%s", show_pid(m1));
    snprintf(s2, sizeof s2, "%s", show_pid(m2));
    snprintf(want, sizeof want, "[%s, %s, %s]", s1, s2, s1);
    assert_true(members_are("g1", false, want));
    assert_true(members_are("g1", true, want));
    assert_true(members_are("nogroup", false, "[]"));
    edist_buf out;
    edist_buf_init(&out);
    assert_int_equal(edist_pg_which_groups(&out), 0);
    edist_term_view groups = {out.data, out.len};
    assert_true(like(groups, "[g1, {group, 2}]"));
    /* b@host learns them through the protocol */
    assert_true(b_sees(want));
    /* leave: one join at a time, then not_joined */
    assert_int_equal(edist_pg_leave(g1.data, g1.len, m1), 0);
    snprintf(want, sizeof want, "[%s, %s]", s2, s1);
    assert_true(members_are("g1", false, want));
    assert_true(b_sees(want));
    assert_int_equal(edist_pg_leave(g1.data, g1.len, m1), 0);
    assert_int_equal(edist_pg_leave(g1.data, g1.len, m1), EDIST_ENOTFOUND);
    /* errors: a pid of another node, not a term; a dead local pid is
     * joined, as pg.erl checks only its node, and its monitor's DOWN
     * takes it out again */
    assert_int_equal(edist_pg_join(g1.data, g1.len, far), EDIST_EINVAL);
    edist_procid dead = m1;
    dead.serial += 7;
    assert_int_equal(edist_pg_join(g1.data, g1.len, dead), 0);
    snprintf(want, sizeof want, "[%s]", s2);
    for (int i = 0; i < 200 && !members_are("g1", false, want); i++)
        usleep(10 * 1000);
    assert_true(members_are("g1", false, want));
    assert_int_equal(edist_pg_join("\x83\x68", 2, m1), EDIST_EINVAL);
    assert_int_equal(edist_pg_join(NULL, 0, m1), EDIST_EINVAL);
    /* a member that dies leaves every group, here and on b@host */
    assert_int_equal(edist_exit_signal(m2, EDIST_REASON_KILL.ptr, EDIST_REASON_KILL.len), 0);
    for (int i = 0; i < 100 && !members_are("g1", false, "[]"); i++)
        usleep(20000);
    assert_true(members_are("g1", false, "[]"));
    assert_true(members_are("{group, 2}", false, "[]"));
    assert_true(b_sees("[]"));
    /* and the emptied groups are gone */
    assert_int_equal(edist_pg_which_groups(&out), 0);
    groups = (edist_term_view){out.data, out.len};
    assert_true(like(groups, "[]"));
    edist_buf_free(&out);
    edist_buf_free(&g1);
    edist_buf_free(&g2);
}

/* A scope that takes 5.5 s to answer: the pg calls wait, as pg.erl's
 * gen_server calls with infinity do. They gave up after 5 s, while the
 * scope still acted on the request, and its late reply stayed in the
 * caller's mailbox. */
static void slow_scope(void *arg)
{
    (void)arg;
    edist_pattern *p = pattern("{'$gen_call', {From, Tag}, _}");
    edist_at_exit(free_pattern, p);
    edist_term_view vars[2] = {{0}}, m;
    if (edist_receive(p, vars, 10000, &m) != 0)
        return;
    edist_term_view fromv = vars[edist_pattern_var_index(p, "From")];
    edist_term_view tagv = vars[edist_pattern_var_index(p, "Tag")];
    edist_cursor c;
    edist_procid from;
    edist_cursor_init(&c, fromv.ptr, fromv.len);
    if (edist_dec_procid(&c, &from) != 0)
        return;
    uint8_t mem[256];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    edist_enc_tuple(&b, 2);
    edist_enc_raw(&b, tagv.ptr, tagv.len);
    edist_enc_atomz(&b, "ok");
    edist_pattern *never = pattern("never");
    edist_at_exit(free_pattern, never);
    edist_term_view none;
    edist_receive(never, NULL, 5500, &none); /* busy elsewhere */
    edist_send(from, b.data, b.len);
}

static void test_pg_slow_scope(void **state)
{
    (void)state;
    edist_procid scope, member;
    assert_int_equal(edist_runtime_spawn(A.rt, slow_scope, NULL, NULL, &scope), 0);
    assert_int_equal(edist_register("slowpg", scope), 0);
    assert_int_equal(edist_runtime_spawn(A.rt, pg_idle, NULL, NULL, &member), 0);
    edist_buf g = term("g1");
    uint64_t t0 = edi_now_ms();
    int rc = edist_pg_join_in("slowpg", g.data, g.len, member);
    uint64_t took = edi_now_ms() - t0;
    print_message("a scope 5.5 s slow: join returned %d after %llu ms\n", rc,
                  (unsigned long long)took);
    assert_int_equal(rc, 0);
    assert_true(took >= 5000);
    /* and nothing late is left behind */
    assert_int_equal(edist_receive(NULL, NULL, 200, &(edist_term_view){0}), EDIST_ETIMEDOUT);
    edist_buf_free(&g);
}

/* The pg counters of side x. */
static uint64_t pg_stat(side *x, _Atomic uint64_t *(*field)(edi_pg_stats *))
{
    return atomic_load(field(&((edi_services *)x->svc)->pg_stats));
}
static _Atomic uint64_t *f_groups(edi_pg_stats *p) { return &p->groups; }
static _Atomic uint64_t *f_members(edi_pg_stats *p) { return &p->members; }
static _Atomic uint64_t *f_lookups(edi_pg_stats *p) { return &p->group_lookups; }
static _Atomic uint64_t *f_compares(edi_pg_stats *p) { return &p->group_compares; }

/* Side x's scope holds n groups, within a few seconds. */
static bool groups_become(side *x, uint64_t n)
{
    for (int i = 0; i < 500 && pg_stat(x, f_groups) != n; i++)
        usleep(20000);
    return pg_stat(x, f_groups) == n;
}

#define PG_MANY 5000

/* Thousands of groups cost a constant number of term comparisons each
 * (groups are found by hash), on the side that joins them and on the side
 * that hears of them; a group is one group whatever encoding names it. */
static void test_pg_many_groups(void **state)
{
    (void)state;
    edist_procid m1, m2;
    assert_int_equal(edist_runtime_spawn(A.rt, pg_idle, NULL, NULL, &m1), 0);
    assert_int_equal(edist_runtime_spawn(A.rt, pg_idle, NULL, NULL, &m2), 0);
    for (int i = 1; i <= PG_MANY; i++) {
        char text[32];
        snprintf(text, sizeof text, "{g, %d}", i);
        edist_buf g = term(text);
        assert_int_equal(edist_pg_join(g.data, g.len, m1), 0);
        edist_buf_free(&g);
    }
    /* g1 as ATOM_EXT, SMALL_ATOM_EXT and SMALL_ATOM_UTF8_EXT: one group */
    assert_int_equal(edist_pg_join("\x64\x00\x02g1", 5, m2), 0);
    assert_int_equal(edist_pg_join("\x83\x73\x02g1", 5, m2), 0);
    char want[128];
    snprintf(want, sizeof want, "[%s, %s]", show_pid(m2), show_pid(m2));
    assert_true(members_are("g1", false, want));
    snprintf(want, sizeof want, "[%s]", show_pid(m1));
    assert_true(members_are("{g, 1}", false, want));
    assert_true(members_are("{g, 2500}", true, want));
    assert_true(members_are("{g, 5000}", false, want));
    assert_true(members_are("{g, 5001}", false, "[]"));
    edist_buf out;
    edist_buf_init(&out);
    assert_int_equal(edist_pg_which_groups(&out), 0);
    edist_cursor c;
    uint32_t n = 0;
    edist_cursor_init(&c, out.data, out.len);
    assert_int_equal(edist_dec_list(&c, &n), 0);
    assert_int_equal(n, PG_MANY + 1);
    edist_buf_free(&out);
    /* a@host: every call looked its group up once; comparisons only with
     * the group of the same hash (a linear scan makes ~n/2 per lookup) */
    uint64_t lookups = pg_stat(&A, f_lookups), compares = pg_stat(&A, f_compares);
    fprintf(stderr, "a@host: %llu lookups, %llu comparisons\n", (unsigned long long)lookups,
            (unsigned long long)compares);
    assert_true(lookups >= PG_MANY + 6);
    assert_true(compares <= lookups);
    assert_int_equal(pg_stat(&A, f_groups), PG_MANY + 1);
    assert_int_equal(pg_stat(&A, f_members), PG_MANY + 2);
    /* b@host hears of every join */
    assert_true(groups_become(&B, PG_MANY + 1));
    assert_true(pg_stat(&B, f_compares) <= pg_stat(&B, f_lookups));
    /* m1 dies: one leave of 5000 groups, on both sides */
    assert_int_equal(edist_exit_signal(m1, EDIST_REASON_KILL.ptr, EDIST_REASON_KILL.len), 0);
    assert_true(groups_become(&A, 1));
    assert_true(groups_become(&B, 1));
    assert_int_equal(pg_stat(&A, f_members), 2);
    lookups = pg_stat(&B, f_lookups);
    compares = pg_stat(&B, f_compares);
    fprintf(stderr, "b@host: %llu lookups, %llu comparisons\n", (unsigned long long)lookups,
            (unsigned long long)compares);
    assert_true(lookups >= 2 * PG_MANY);
    assert_true(compares <= lookups);
    assert_int_equal(edist_exit_signal(m2, EDIST_REASON_KILL.ptr, EDIST_REASON_KILL.len), 0);
    assert_true(groups_become(&A, 0));
    assert_true(groups_become(&B, 0));
    assert_int_equal(pg_stat(&B, f_members), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_is_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rex_call_face, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rex_gen_face, setup, teardown),
        cmocka_unit_test_setup_teardown(test_erpc_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_erpc_bignum_add, setup, teardown),
        cmocka_unit_test(test_int_add),
        cmocka_unit_test_setup_teardown(test_erpc_cast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_demo_hello_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_demo_sleep_yields, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_erpc_process_semantics, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_raise_plain_spawn, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_start_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_slow_scope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_services_restarted, setup, teardown),
        cmocka_unit_test(test_service_restarts_option),
        cmocka_unit_test_setup_teardown(test_pg_many_groups, setup, teardown),
    };
    return cmocka_run_group_tests_name("runtime_services", tests, NULL, NULL);
}
