/* SPDX-License-Identifier: Apache-2.0 */
/* The process runtime, local semantics: context switches, spawn and exit,
 * mailboxes and selective receive, links and exit signals, monitors,
 * registered names, thread processes, exports.
 *
 * Each test starts a runtime; the main thread attaches itself as a
 * process, runs the test's body in a green process (or several) and waits
 * for it to say `done`; the body records failures with CHECK. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* cmocka needs the headers above first */
#include <cmocka.h>

#include "proc_test_util.h"

static edist_runtime *rt;
static edist_procid g_main;

static int start_with(const edist_runtime_config *cfg)
{
    g_fail[0] = '\0';
    if (edist_runtime_start(cfg, &rt) != 0) {
        fprintf(stderr, "runtime_start: %s\n", edist_last_error());
        return -1;
    }
    if (edist_proc_attach_thread(rt, 0, &g_main) != 0) {
        fprintf(stderr, "attach: %s\n", edist_last_error());
        return -1;
    }
    return 0;
}

static int setup(void **state)
{
    (void)state;
    return start_with(NULL);
}

static int teardown(void **state)
{
    (void)state;
    edist_proc_detach_thread(NULL, 0);
    edist_runtime_stop(rt);
    rt = NULL;
    return 0;
}

static void done(void)
{
    send_text(g_main, "done");
}

/* Run body(arg) in a green process and wait for its `done`. */
static void run(edist_proc_fn body, void *arg)
{
    edist_procid pid;
    assert_int_equal(edist_runtime_spawn(rt, body, arg, NULL, &pid), 0);
    int rc = recv_text("done", 30000, NULL);
    if (g_fail[0])
        fail_msg("%s", g_fail);
    assert_int_equal(rc, 0);
}

static edist_term_view atom_view(enc_small *e, const char *a)
{
    edist_buf b;
    edist_buf_init_fixed(&b, e->b, sizeof e->b);
    edist_enc_atomz(&b, a);
    e->v.ptr = e->b;
    e->v.len = b.len;
    return e->v;
}

static void exit_atom(const char *a)
{
    enc_small e;
    edist_term_view v = atom_view(&e, a);
    edist_exit(v.ptr, v.len);
}

static void exit_text(const char *text)
{
    edist_buf b = term(text);
    uint8_t copy[256];
    memcpy(copy, b.data, b.len);
    size_t n = b.len;
    edist_buf_free(&b);
    edist_exit(copy, n);
}

static int reason_is(edist_term_view r, const char *text)
{
    edist_buf b = term(text);
    int eq = edist_term_equal(r.ptr, r.len, b.data, b.len);
    edist_buf_free(&b);
    return eq == 1;
}

/* Compiled once (a process ended while blocked cannot free its own). */
static edist_pattern *g_never, *g_go;

/* A process that waits forever (until a signal ends it). */
static void idle_forever(void *arg)
{
    (void)arg;
    edist_term_view m;
    for (;;)
        edist_receive(g_never, NULL, -1, &m);
}

/* ---- context switch ---------------------------------------------------------------------- */

#define PAIRS 200
#define ROUNDS 1000

typedef struct pong_arg {
    int rounds;
} pong_arg;

static void ponger(void *arg)
{
    pong_arg *a = arg;
    edist_pattern *p = pattern("{ping, From, N}");
    int from_i = edist_pattern_var_index(p, "From");
    int n_i = edist_pattern_var_index(p, "N");
    for (int i = 0; i < a->rounds; i++) {
        edist_term_view vars[2] = {{0}}, m;
        if (edist_receive(p, vars, 10000, &m) != 0) {
            CHECK(!"ponger timed out");
            break;
        }
        edist_cursor c;
        edist_cursor_init(&c, vars[from_i].ptr, vars[from_i].len);
        edist_procid from;
        CHECK_RC(edist_dec_procid(&c, &from), 0);
        uint8_t out[32];
        edist_buf b;
        edist_buf_init_fixed(&b, out, sizeof out);
        edist_enc_tuple(&b, 2);
        edist_enc_atom(&b, "pong", 4);
        edist_enc_raw(&b, vars[n_i].ptr, vars[n_i].len);
        CHECK_RC(edist_send(from, b.data, b.len), 0);
    }
    edist_pattern_free(p);
}

static _Atomic int pingers_ok;

static void pinger(void *arg)
{
    edist_procid *collector = arg;
    pong_arg pa = {ROUNDS};
    edist_procid peer;
    CHECK_RC(edist_spawn(ponger, &pa, &peer), 0);
    edist_procid me = edist_self();
    edist_pattern *p = pattern("{pong, N}");
    int ok = 1;
    for (int i = 0; i < ROUNDS; i++) {
        uint8_t out[64];
        edist_buf b;
        edist_buf_init_fixed(&b, out, sizeof out);
        edist_enc_tuple(&b, 3);
        edist_enc_atom(&b, "ping", 4);
        edist_enc_procid(&b, me);
        edist_enc_int(&b, i);
        CHECK_RC(edist_send(peer, b.data, b.len), 0);
        edist_term_view vars[1] = {{0}}, m;
        if (edist_receive(p, vars, 10000, &m) != 0) {
            ok = 0;
            break;
        }
        edist_cursor c;
        edist_cursor_init(&c, vars[0].ptr, vars[0].len);
        int64_t n;
        if (edist_dec_int64(&c, &n) != 0 || n != i)
            ok = 0;
    }
    edist_pattern_free(p);
    if (ok)
        atomic_fetch_add(&pingers_ok, 1);
    send_text(*collector, "pinged");
}

static void pingpong_body(void *arg)
{
    (void)arg;
    edist_procid me = edist_self();
    atomic_store(&pingers_ok, 0);
    for (int i = 0; i < PAIRS; i++)
        CHECK_RC(edist_spawn(pinger, &me, NULL), 0);
    for (int i = 0; i < PAIRS; i++)
        CHECK_RC(recv_text("pinged", 20000, NULL), 0);
    done();
}

static void test_pingpong(void **state)
{
    (void)state;
    edist_runtime_stats before, after;
    assert_int_equal(edist_runtime_get_stats(rt, &before), 0);
    run(pingpong_body, NULL);
    assert_int_equal(atomic_load(&pingers_ok), PAIRS);
    assert_int_equal(edist_runtime_get_stats(rt, &after), 0);
    /* Each round trip blocks both sides once. */
    assert_true(after.context_switches - before.context_switches >= 2u * PAIRS * ROUNDS);
    assert_true(after.messages_sent - before.messages_sent >= 2u * PAIRS * ROUNDS);
}

/* Floating-point state survives switches: each process keeps its own
 * rounding mode (MXCSR is callee-saved state). */
static void fp_proc(void *arg)
{
    edist_procid *collector = arg;
    volatile double x = 1.0;
    for (int i = 0; i < 100; i++) {
        x = x * 1.000001 + 0.5;
        edist_yield();
    }
    CHECK(x > 50.0);
    send_text(*collector, "fp");
}

static void fp_body(void *arg)
{
    (void)arg;
    edist_procid me = edist_self();
    for (int i = 0; i < 10; i++)
        CHECK_RC(edist_spawn(fp_proc, &me, NULL), 0);
    for (int i = 0; i < 10; i++)
        CHECK_RC(recv_text("fp", 5000, NULL), 0);
    done();
}

static void test_yield_fp(void **state)
{
    (void)state;
    run(fp_body, NULL);
}

/* ---- stacks ----------------------------------------------------------------------------- */

static volatile uintptr_t frame_at[2];

static __attribute__((noinline)) uint64_t recurse(int depth)
{
    volatile uint8_t frame[512];
    frame[0] = (uint8_t)depth;
    frame[511] = (uint8_t)(depth >> 8);
    if (depth < 2)
        frame_at[depth] = (uintptr_t)&frame[0];
    if (depth == 0)
        return frame[0];
    return recurse(depth - 1) + frame[511] + 1;
}

typedef struct deep_arg {
    int depth;
    edist_procid collector;
} deep_arg;

static void deep_proc(void *arg)
{
    deep_arg *a = arg;
    uint64_t r = recurse(a->depth);
    CHECK(r >= (uint64_t)a->depth);
    send_text(a->collector, "deep");
}

static void deep_body(void *arg)
{
    (void)arg;
    /* The size of one frame (sanitizers make them larger), then ~75% of
     * a 64 KiB default stack and ~90% of a 1 MiB one. */
    recurse(1);
    size_t frame = (size_t)(frame_at[1] - frame_at[0]);
    CHECK(frame >= 512 && frame < 4096);
    deep_arg small = {(int)(48 * 1024 / frame), edist_self()};
    deep_arg big = {(int)(920 * 1024 / frame), edist_self()};
    CHECK_RC(edist_spawn(deep_proc, &small, NULL), 0);
    edist_spawn_opts o = {.stack_bytes = 1024 * 1024};
    CHECK_RC(edist_spawn_opt(deep_proc, &big, &o, NULL, NULL), 0);
    CHECK_RC(recv_text("deep", 5000, NULL), 0);
    CHECK_RC(recv_text("deep", 5000, NULL), 0);
    done();
}

static void test_deep_recursion(void **state)
{
    (void)state;
    run(deep_body, NULL);
    edist_runtime_stats st;
    assert_int_equal(edist_runtime_get_stats(rt, &st), 0);
    /* Every stack got its guard page on this kernel (MADV_GUARD_INSTALL
     * or mprotect within budget). */
    assert_int_equal(st.guard_pages, st.stacks_reserved);
}

/* ---- a node that dies -----------------------------------------------------------------------
 * Each case runs the helper program test_proc_overflow (its path comes
 * from meson) in one of its modes as a child node, and checks its stderr
 * and how it ended. */

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

typedef struct child_end {
    char out[16384];
    int status;
    char line[4096]; /* the node's own line ("edist: ..."), if exactly one */
    int lines;       /* how many such lines */
} child_end;

static void run_helper(const char *mode, child_end *e)
{
    const char *helper = getenv("EDIST_OVERFLOW_HELPER");
    assert_non_null(helper);
    memset(e, 0, sizeof *e);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    char *argv[] = {(char *)helper, (char *)mode, NULL};
    pid_t pid;
    extern char **environ;
    assert_int_equal(posix_spawn(&pid, helper, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    /* Read to the end (a sanitizer's report can be long): a closed pipe
     * would kill the child with SIGPIPE. */
    size_t n = 0;
    char rest[4096];
    ssize_t r;
    while ((r = n < sizeof e->out - 1 ? read(fds[0], e->out + n, sizeof e->out - 1 - n)
                                      : read(fds[0], rest, sizeof rest)) > 0)
        if (n < sizeof e->out - 1)
            n += (size_t)r;
    e->out[n] = '\0';
    close(fds[0]);
    assert_int_equal(waitpid(pid, &e->status, 0), pid);
    for (const char *l = e->out; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
        if (strncmp(l, "edist: ", 7) != 0)
            continue;
        if (e->lines++ == 0) {
            const char *end = strchr(l, '\n');
            size_t len = end ? (size_t)(end - l) : strlen(l);
            if (len >= sizeof e->line)
                len = sizeof e->line - 1;
            memcpy(e->line, l, len);
        }
    }
}

/* The node died of sig. Under AddressSanitizer its handler takes the
 * signals it handles (SIGSEGV, SIGBUS, SIGFPE) after our line, reports
 * them and exits with status 1, or aborts (SIGABRT) when ASAN_OPTIONS has
 * abort_on_error=1, as the project's test run sets. */
static void assert_died_of(const child_end *e, int sig)
{
#ifdef TEST_ASAN
    if (sig != SIGABRT && strstr(e->out, "AddressSanitizer:DEADLYSIGNAL") &&
        ((WIFEXITED(e->status) && WEXITSTATUS(e->status) == 1) ||
         (WIFSIGNALED(e->status) && WTERMSIG(e->status) == SIGABRT)))
        return;
#endif
    if (!WIFSIGNALED(e->status) || WTERMSIG(e->status) != sig)
        fail_msg("status %#x, not death by signal %d; output: %.600s", e->status, sig, e->out);
}

static void assert_line_has(const child_end *e, const char *const *parts)
{
    if (e->lines != 1)
        fail_msg("%d lines from the node, not 1; output: %.600s", e->lines, e->out);
    for (; *parts; parts++)
        if (!strstr(e->line, *parts))
            fail_msg("no \"%s\" in the node's line: %s", *parts, e->line);
}

/* A guard page hit kills the node with one clear line. */
static void test_stack_overflow_aborts(void **state)
{
    (void)state;
    child_end e;
    run_helper("recurse", &e);
    assert_died_of(&e, SIGSEGV);
    const char *parts[] = {"node crashy@localhost: stack overflow: process <0.",
                           "> running the C function at 0x", "65536-byte stack", NULL};
    assert_line_has(&e, parts);
}

/* An export's 70 KiB frame, touched only at its far end, hits the 4 KiB
 * guard (stack clash probes) rather than landing in the neighbouring
 * process's stack; the line names the export. */
static void test_big_frame_hits_guard(void **state)
{
    (void)state;
    child_end e;
    run_helper("big-frame", &e);
    assert_died_of(&e, SIGSEGV);
    const char *parts[] = {"node crashy@localhost: stack overflow: process <0.",
                           "> running edist_test:big_frame/0 overran its 65536-byte stack",
                           "(guard page hit)", NULL};
    assert_line_has(&e, parts);
}

/* A crash in an export: one line naming the process and the export, then
 * death by the original signal. */
static void test_export_crash_named(void **state)
{
    (void)state;
    child_end e;
    run_helper("null", &e);
    assert_died_of(&e, SIGSEGV);
    const char *parts[] = {"node crashy@localhost: process <0.",
                           "> running edist_test:null_deref/0 crashed with SIGSEGV at address 0x0",
                           "the node dies", NULL};
    assert_line_has(&e, parts);
}

/* abort() in an export: the same line, then death by SIGABRT (raised
 * again with the default action, not turned into another signal). */
static void test_export_abort_named(void **state)
{
    (void)state;
    child_end e;
    run_helper("abort", &e);
    assert_died_of(&e, SIGABRT);
    const char *parts[] = {"node crashy@localhost: process <0.",
                           "> running edist_test:abort_now/0 crashed with SIGABRT; ",
                           "the node dies", NULL};
    assert_line_has(&e, parts);
}

/* ---- spawn and exit ------------------------------------------------------------------------- */

static void exits_normal(void *arg)
{
    (void)arg;
}

static void exits_custom(void *arg)
{
    (void)arg;
    exit_text("{custom, 42, \"text\"}");
}

static void nested_exit(int depth)
{
    if (depth == 0) {
        exit_atom("from_deep");
        return;
    }
    nested_exit(depth - 1);
    CHECK(!"exit returned");
}

static void exits_nested(void *arg)
{
    (void)arg;
    nested_exit(20);
}

static void spawn_exit_body(void *arg)
{
    (void)arg;
    edist_procid pid;
    edist_ref ref;
    edist_term_view reason;

    CHECK_RC(edist_spawn_monitor(exits_normal, NULL, &pid, &ref), 0);
    CHECK(edist_is_process_alive(pid));
    CHECK_RC(recv_down(&ref, 5000, &reason), 0);
    CHECK(reason_is(reason, "normal"));
    CHECK(!edist_is_process_alive(pid));

    CHECK_RC(edist_spawn_monitor(exits_custom, NULL, &pid, &ref), 0);
    CHECK_RC(recv_down(&ref, 5000, &reason), 0);
    CHECK(reason_is(reason, "{custom, 42, \"text\"}"));

    CHECK_RC(edist_spawn_monitor(exits_nested, NULL, &pid, &ref), 0);
    CHECK_RC(recv_down(&ref, 5000, &reason), 0);
    CHECK(reason_is(reason, "from_deep"));

    /* The DOWN names the pid. */
    enc_small e;
    CHECK_RC(edist_spawn_monitor(exits_normal, NULL, &pid, &ref), 0);
    edist_term_view msg;
    CHECK_RC(recv_bound("{'DOWN', _, process, P, normal}", "P", enc_pid(&e, pid), 5000, &msg),
             0);

    /* Many at once. */
    for (int i = 0; i < 1000; i++)
        CHECK_RC(edist_spawn(exits_normal, NULL, NULL), 0);
    done();
}

static void test_spawn_exit(void **state)
{
    (void)state;
    run(spawn_exit_body, NULL);
    edist_runtime_stats st;
    assert_int_equal(edist_runtime_get_stats(rt, &st), 0);
    assert_true(st.spawned >= 1005);
    assert_true(st.exited >= 1004);
}

/* ---- mailboxes ------------------------------------------------------------------------------ */

#define ORDER_N 10000

static void sender_n(void *arg)
{
    edist_procid *to = arg;
    for (int i = 0; i < ORDER_N; i++) {
        uint8_t out[16];
        edist_buf b;
        edist_buf_init_fixed(&b, out, sizeof out);
        edist_enc_int(&b, i);
        CHECK_RC(edist_send(*to, b.data, b.len), 0);
        if (i % 1000 == 0)
            edist_yield();
    }
}

static void order_body(void *arg)
{
    (void)arg;
    edist_procid me = edist_self();
    CHECK_RC(edist_spawn(sender_n, &me, NULL), 0);
    for (int i = 0; i < ORDER_N; i++) {
        edist_term_view m;
        if (edist_receive(NULL, NULL, 5000, &m) != 0) {
            CHECK(!"receive timed out");
            break;
        }
        edist_cursor c;
        edist_cursor_init(&c, m.ptr, m.len);
        int64_t v = -1;
        CHECK_RC(edist_dec_int64(&c, &v), 0);
        if (v != i) {
            CHECK(v == i);
            break;
        }
    }
    CHECK_RC(edist_mailbox_length(), 0);
    /* Large messages: copied once into one block, or handed over. */
    edist_buf big;
    edist_buf_init(&big);
    static uint8_t blob[100000];
    memset(blob, 7, sizeof blob);
    edist_enc_binary(&big, blob, sizeof blob);
    CHECK_RC(edist_send(me, big.data, big.len), 0);
    size_t big_len = big.len;
    CHECK_RC(edist_send_buf(me, &big), 0);
    CHECK(big.data == NULL);
    CHECK_RC(edist_mailbox_length(), 2);
    for (int k = 0; k < 2; k++) {
        edist_term_view m;
        CHECK_RC(edist_receive(NULL, NULL, 0, &m), 0);
        CHECK(m.len == big_len);
        const uint8_t *bytes;
        size_t n;
        edist_cursor c;
        edist_cursor_init(&c, m.ptr, m.len);
        CHECK_RC(edist_dec_binary(&c, &bytes, &n), 0);
        CHECK(n == sizeof blob && bytes[99999] == 7);
    }
    /* A 131-prefixed external term is accepted. */
    uint8_t ext[] = {131, EDIST_TAG_SMALL_INTEGER, 5};
    CHECK_RC(edist_send(me, ext, sizeof ext), 0);
    edist_term_view m;
    CHECK_RC(edist_receive(NULL, NULL, 0, &m), 0);
    CHECK(m.len == 2 && m.ptr[1] == 5);
    done();
}

static void test_mailbox_order(void **state)
{
    (void)state;
    run(order_body, NULL);
}

static _Atomic int released;

static void count_release(void *owner, const void *data)
{
    (void)data;
    free(owner);
    atomic_fetch_add(&released, 1);
}

static void owned_body(void *arg)
{
    (void)arg;
    edist_procid me = edist_self();
    /* Zero copy: the receiver sees the sender's bytes themselves. */
    edist_buf b = term("{owned, <<\"0123456789012345678901234567890123456789xyz\">>}");
    uint8_t *mem = malloc(b.len);
    memcpy(mem, b.data, b.len);
    CHECK_RC(edist_send_owned(me, mem, b.len, count_release, mem), 0);
    edist_term_view m;
    CHECK_RC(edist_receive(NULL, NULL, 0, &m), 0);
    CHECK(m.ptr == mem);
    CHECK(atomic_load(&released) == 0);
    /* released at the next receive */
    CHECK_RC(edist_receive(NULL, NULL, 0, &m), EDIST_ETIMEDOUT);
    CHECK(atomic_load(&released) == 1);
    /* to a dead process: released at once */
    edist_procid dead;
    CHECK_RC(edist_spawn(exits_normal, NULL, &dead), 0);
    edist_yield();
    mem = malloc(b.len);
    memcpy(mem, b.data, b.len);
    CHECK_RC(edist_send_owned(dead, mem, b.len, count_release, mem), 0);
    CHECK(atomic_load(&released) == 2);
    /* kept beyond the next receive */
    CHECK_RC(edist_send(me, b.data, b.len), 0);
    CHECK_RC(edist_receive(NULL, NULL, 0, &m), 0);
    edist_message *kept;
    CHECK_RC(edist_msg_keep(&kept), 0);
    CHECK_RC(send_text(me, "small"), 0);
    CHECK_RC(edist_receive(NULL, NULL, 0, &m), 0);
    CHECK(like(m, "small"));
    edist_term_view kv = edist_message_term(kept);
    CHECK(like(kv, "{owned, _}"));
    edist_message_free(kept);
    edist_buf_free(&b);
    done();
}

static void test_send_owned(void **state)
{
    (void)state;
    atomic_store(&released, 0);
    run(owned_body, NULL);
}

/* ---- selective receive ----------------------------------------------------------------------- */

static void late_sender(void *arg)
{
    edist_procid *to = arg;
    edist_sleep_ms(20);
    send_text(*to, "{noise, 1}");
    send_text(*to, "{noise, 2}");
    edist_sleep_ms(20);
    send_text(*to, "{wanted, 3}");
}

static void selective_body(void *arg)
{
    (void)arg;
    edist_procid me = edist_self();
    edist_term_view m;

    /* Out of order: the first match is taken, the rest keep their order. */
    send_text(me, "a");
    send_text(me, "{b, 1}");
    send_text(me, "c");
    send_text(me, "{b, 2}");
    CHECK_RC(recv_text("c", 0, &m), 0);
    CHECK(like(m, "c"));
    CHECK_RC(recv_text("{b, X}", 0, &m), 0);
    CHECK(like(m, "{b, 1}"));
    CHECK_RC(edist_receive(NULL, NULL, 0, &m), 0);
    CHECK(like(m, "a"));
    CHECK_RC(edist_receive(NULL, NULL, 0, &m), 0);
    CHECK(like(m, "{b, 2}"));

    /* after 0 */
    uint64_t t0;
    CHECK_RC(recv_text("nothing", 0, &m), EDIST_ETIMEDOUT);

    /* after 60 */
    send_text(me, "unrelated");
    t0 = now_ms();
    CHECK_RC(recv_text("nothing", 60, &m), EDIST_ETIMEDOUT);
    uint64_t waited = now_ms() - t0;
    CHECK(waited >= 59 && waited < 5000);
    CHECK_RC(edist_mailbox_length(), 1);
    CHECK_RC(recv_text("unrelated", 0, &m), 0);

    /* Bound variables: only the reply with our reference. */
    edist_ref mine, other;
    CHECK_RC(edist_make_ref(&mine), 0);
    CHECK_RC(edist_make_ref(&other), 0);
    CHECK(!edist_ref_equal(&mine, &other));
    enc_small e1, e2;
    edist_term_view r1 = enc_ref(&e1, &mine), r2 = enc_ref(&e2, &other);
    for (int k = 0; k < 2; k++) {
        edist_term_view r = k == 0 ? r2 : r1;
        uint8_t out[128];
        edist_buf b;
        edist_buf_init_fixed(&b, out, sizeof out);
        edist_enc_tuple(&b, 3);
        edist_enc_atom(&b, "reply", 5);
        edist_enc_raw(&b, r.ptr, r.len);
        edist_enc_int(&b, k == 0 ? 111 : 222);
        CHECK_RC(edist_send(me, b.data, b.len), 0);
    }
    edist_pattern *p = pattern("{reply, Ref, Value}");
    edist_term_view vars[2] = {{0}};
    vars[edist_pattern_var_index(p, "Ref")] = r1;
    CHECK_RC(edist_receive(p, vars, 0, &m), 0);
    edist_term_view value = vars[edist_pattern_var_index(p, "Value")];
    CHECK(reason_is(value, "222"));
    edist_pattern_free(p);
    CHECK_RC(recv_text("{reply, _, 111}", 0, &m), 0);

    /* Woken only by the match while waiting (noise arrives first). */
    CHECK_RC(edist_spawn(late_sender, &me, NULL), 0);
    CHECK_RC(recv_text("{wanted, N}", 5000, &m), 0);
    CHECK(like(m, "{wanted, 3}"));
    CHECK_RC(edist_mailbox_length(), 2);
    CHECK_RC(recv_text("{noise, 1}", 0, &m), 0);
    CHECK_RC(recv_text("{noise, 2}", 0, &m), 0);

    /* A malformed message never matches a pattern, and stays. */
    uint8_t bad[] = {EDIST_TAG_SMALL_TUPLE, 2, EDIST_TAG_SMALL_INTEGER};
    CHECK_RC(edist_send(me, bad, sizeof bad), 0);
    CHECK_RC(recv_text("{_, _}", 0, &m), EDIST_ETIMEDOUT);
    CHECK_RC(edist_receive(NULL, NULL, 0, &m), 0);
    CHECK(m.len == sizeof bad);

    /* sleep */
    t0 = now_ms();
    CHECK_RC(edist_sleep_ms(30), 0);
    CHECK(now_ms() - t0 >= 29);
    done();
}

static void test_selective_receive(void **state)
{
    (void)state;
    run(selective_body, NULL);
}

/* ---- links and exit signals --------------------------------------------------------------------- */

typedef struct link_case {
    int mode;
    edist_procid report; /* who hears what happened */
    edist_procid other;  /* filled by the middle process */
} link_case;

static void child_exit_after(void *arg)
{
    edist_sleep_ms(10);
    exit_text((const char *)arg);
}

/* A middle process: spawn_link a child that exits with arg, then wait
 * to be ended; when trapping, forward what arrives. */
typedef struct middle_arg {
    bool trap;
    const char *child_reason;
    edist_procid report;
} middle_arg;

static void middle(void *arg)
{
    middle_arg *a = arg;
    edist_trap_exit(a->trap);
    edist_procid child;
    CHECK_RC(edist_spawn_link(child_exit_after, (void *)a->child_reason, &child), 0);
    edist_term_view m;
    if (edist_receive(NULL, NULL, 500, &m) == 0) {
        uint8_t out[512];
        edist_buf b;
        edist_buf_init_fixed(&b, out, sizeof out);
        edist_enc_tuple(&b, 2);
        edist_enc_atom(&b, "got", 3);
        edist_enc_raw(&b, m.ptr, m.len);
        edist_send(a->report, b.data, b.len);
        edist_receive(NULL, NULL, 500, &m); /* linger: do not exit normal at once */
    }
    exit_atom("survived");
}

/* Spawn middle(trap, reason) monitored; return the DOWN reason text check
 * and whether a `got` message arrived matching got_pat (NULL: none). */
static void link_scenario(bool trap, const char *child_reason, const char *want_down,
                          const char *got_pat)
{
    middle_arg a = {trap, child_reason, edist_self()};
    edist_procid pid;
    edist_ref ref;
    CHECK_RC(edist_spawn_monitor(middle, &a, &pid, &ref), 0);
    edist_term_view reason, m;
    CHECK_RC(recv_down(&ref, 5000, &reason), 0);
    if (!reason_is(reason, want_down)) {
        char w[256];
        snprintf(w, sizeof w, "link scenario trap=%d child=%s: unexpected DOWN reason", trap,
                 child_reason);
        fail_at(__FILE__, __LINE__, w);
    }
    if (got_pat) {
        char p[256];
        snprintf(p, sizeof p, "{got, %s}", got_pat);
        CHECK_RC(recv_text(p, 0, &m), 0);
    } else {
        CHECK_RC(recv_text("{got, _}", 0, &m), EDIST_ETIMEDOUT);
    }
}

static void links_body(void *arg)
{
    (void)arg;
    /* normal link exit: ignored / message */
    link_scenario(false, "normal", "survived", NULL);
    link_scenario(true, "normal", "survived", "{'EXIT', _, normal}");
    /* custom reason: propagates / message */
    link_scenario(false, "{bad, 1}", "{bad, 1}", NULL);
    link_scenario(true, "{bad, 1}", "survived", "{'EXIT', _, {bad, 1}}");
    /* exit(kill) of a linked process: an ordinary reason through links */
    link_scenario(false, "kill", "kill", NULL);
    link_scenario(true, "kill", "survived", "{'EXIT', _, kill}");
    done();
}

static void test_links(void **state)
{
    (void)state;
    run(links_body, NULL);
}

static void trapper(void *arg)
{
    edist_procid *report = arg;
    edist_trap_exit(true);
    edist_term_view m;
    for (;;) {
        if (edist_receive(NULL, NULL, -1, &m) != 0)
            return;
        uint8_t out[512];
        edist_buf b;
        edist_buf_init_fixed(&b, out, sizeof out);
        edist_enc_tuple(&b, 2);
        edist_enc_atom(&b, "trapped", 7);
        edist_enc_raw(&b, m.ptr, m.len);
        edist_send(*report, b.data, b.len);
    }
}

static void self_exit_normal(void *arg)
{
    bool trap = arg != NULL;
    edist_trap_exit(trap);
    enc_small e;
    edist_term_view n = atom_view(&e, "normal");
    edist_exit_signal(edist_self(), n.ptr, n.len);
    edist_term_view m;
    if (trap && edist_receive(NULL, NULL, 100, &m) == 0 && like(m, "{'EXIT', _, normal}"))
        exit_atom("trapped_self");
    exit_atom("survived");
}

static void self_kill(void *arg)
{
    (void)arg;
    edist_trap_exit(true);
    enc_small e;
    edist_term_view k = atom_view(&e, "kill");
    edist_exit_signal(edist_self(), k.ptr, k.len);
    exit_atom("survived");
}

static void exit2_body(void *arg)
{
    (void)arg;
    edist_procid me = edist_self(), pid, pid2;
    edist_ref ref, ref2;
    edist_term_view reason, m;
    enc_small e, ep;

    /* exit(P, normal): no effect on a non-trapping process */
    CHECK_RC(edist_spawn_monitor(idle_forever, NULL, &pid, &ref), 0);
    edist_term_view normal = atom_view(&e, "normal");
    CHECK_RC(edist_exit_signal(pid, normal.ptr, normal.len), 0);
    CHECK_RC(recv_down(&ref, 50, &reason), EDIST_ETIMEDOUT);
    CHECK(edist_is_process_alive(pid));
    /* a custom reason ends it */
    edist_buf r = term("{shutdown, please}");
    CHECK_RC(edist_exit_signal(pid, r.data, r.len), 0);
    CHECK_RC(recv_down(&ref, 5000, &reason), 0);
    CHECK(reason_is(reason, "{shutdown, please}"));

    /* trapping: {'EXIT', From, Reason} for normal and custom; kill is not
     * trappable and gives killed */
    CHECK_RC(edist_spawn_monitor(trapper, &me, &pid, &ref), 0);
    edist_yield(); /* let it set trap_exit */
    CHECK_RC(edist_exit_signal(pid, normal.ptr, normal.len), 0);
    CHECK_RC(recv_bound("{trapped, {'EXIT', F, normal}}", "F", enc_pid(&ep, me), 5000, &m), 0);
    CHECK_RC(edist_exit_signal(pid, r.data, r.len), 0);
    CHECK_RC(recv_text("{trapped, {'EXIT', _, {shutdown, please}}}", 5000, &m), 0);
    /* a process linked to the trapper, trapping too, sees killed */
    CHECK_RC(edist_spawn_monitor(trapper, &me, &pid2, &ref2), 0);
    edist_yield();
    CHECK_RC(edist_link(pid2), 0); /* me - pid2 */
    CHECK_RC(edist_unlink(pid2), 0);
    edist_term_view kill = atom_view(&e, "kill");
    CHECK_RC(edist_exit_signal(pid, kill.ptr, kill.len), 0);
    CHECK_RC(recv_down(&ref, 5000, &reason), 0);
    CHECK(reason_is(reason, "killed"));
    CHECK(!edist_is_process_alive(pid));
    CHECK_RC(edist_exit_signal(pid2, kill.ptr, kill.len), 0);
    CHECK_RC(recv_down(&ref2, 5000, &reason), 0);

    /* killed propagates as killed through a link to a trapping process */
    edist_procid a, b;
    CHECK_RC(edist_spawn(trapper, &me, &b), 0);
    edist_yield();
    CHECK_RC(edist_spawn_monitor(idle_forever, NULL, &a, &ref), 0);
    /* link a and b: from b's side we cannot; use exit propagation via me:
     * me links to a and traps, then a is killed: me gets killed. */
    edist_trap_exit(true);
    CHECK_RC(edist_link(a), 0);
    CHECK_RC(edist_exit_signal(a, kill.ptr, kill.len), 0);
    CHECK_RC(recv_bound("{'EXIT', A, killed}", "A", enc_pid(&ep, a), 5000, &m), 0);
    CHECK_RC(recv_down(&ref, 5000, &reason), 0);
    CHECK(reason_is(reason, "killed"));
    edist_trap_exit(false);
    CHECK_RC(edist_exit_signal(b, kill.ptr, kill.len), 0);

    /* exit(self(), normal): ends a non-trapping caller; a trapping one
     * gets the message */
    CHECK_RC(edist_spawn_monitor(self_exit_normal, NULL, &pid, &ref), 0);
    CHECK_RC(recv_down(&ref, 5000, &reason), 0);
    CHECK(reason_is(reason, "normal"));
    CHECK_RC(edist_spawn_monitor(self_exit_normal, (void *)1, &pid, &ref), 0);
    CHECK_RC(recv_down(&ref, 5000, &reason), 0);
    CHECK(reason_is(reason, "trapped_self"));
    /* exit(self(), kill) while trapping: killed */
    CHECK_RC(edist_spawn_monitor(self_kill, NULL, &pid, &ref), 0);
    CHECK_RC(recv_down(&ref, 5000, &reason), 0);
    CHECK(reason_is(reason, "killed"));

    /* exit/2 to a dead pid: fine */
    CHECK_RC(edist_exit_signal(pid, kill.ptr, kill.len), 0);
    edist_buf_free(&r);
    done();
}

static void test_exit_signals(void **state)
{
    (void)state;
    run(exit2_body, NULL);
}

static void link_dead_notrap(void *arg)
{
    edist_procid *dead = arg;
    int rc = edist_link(*dead);
    exit_atom(rc == EDIST_ENOTFOUND ? "noproc_error" : "linked");
}

static void link_dead_trap(void *arg)
{
    edist_procid *dead = arg;
    edist_trap_exit(true);
    int rc = edist_link(*dead);
    edist_term_view m;
    enc_small e;
    if (rc == 0 && recv_bound("{'EXIT', D, noproc}", "D", enc_pid(&e, *dead), 100, &m) == 0)
        exit_atom("noproc_message");
    exit_atom("other");
}

typedef struct pair_arg {
    edist_procid peer;
    edist_procid report;
} pair_arg;

/* Links itself to peer, then idles. */
static void linker(void *arg)
{
    pair_arg *a = arg;
    CHECK_RC(edist_link(a->peer), 0);
    send_text(a->report, "linked");
    idle_forever(NULL);
}

static void link_rules_body(void *arg)
{
    (void)arg;
    edist_procid me = edist_self(), dead, pid, pid2;
    edist_ref ref, ref2;
    edist_term_view reason;

    CHECK_RC(edist_spawn(exits_normal, NULL, &dead), 0);
    edist_yield();
    CHECK(!edist_is_process_alive(dead));
    CHECK_RC(edist_spawn_monitor(link_dead_notrap, &dead, &pid, &ref), 0);
    CHECK_RC(recv_down(&ref, 5000, &reason), 0);
    CHECK(reason_is(reason, "noproc_error"));
    CHECK_RC(edist_spawn_monitor(link_dead_trap, &dead, &pid, &ref), 0);
    CHECK_RC(recv_down(&ref, 5000, &reason), 0);
    CHECK(reason_is(reason, "noproc_message"));

    /* link to self: nothing */
    CHECK_RC(edist_link(me), 0);

    /* Links are bidirectional: the linked side made the link, its peer's
     * death (custom reason via exit/2) ends it. */
    CHECK_RC(edist_spawn_monitor(idle_forever, NULL, &pid, &ref), 0);
    pair_arg pa = {pid, me};
    CHECK_RC(edist_spawn_monitor(linker, &pa, &pid2, &ref2), 0);
    CHECK_RC(recv_text("linked", 5000, NULL), 0);
    edist_buf r = term("{custom, reason}");
    CHECK_RC(edist_exit_signal(pid, r.data, r.len), 0);
    CHECK_RC(recv_down(&ref, 5000, &reason), 0);
    CHECK(reason_is(reason, "{custom, reason}"));
    CHECK_RC(recv_down(&ref2, 5000, &reason), 0);
    CHECK(reason_is(reason, "{custom, reason}"));

    /* unlink: the peer's death no longer reaches us */
    CHECK_RC(edist_spawn_monitor(idle_forever, NULL, &pid, &ref), 0);
    CHECK_RC(edist_link(pid), 0);
    CHECK_RC(edist_link(pid), 0); /* twice: still one link */
    CHECK_RC(edist_unlink(pid), 0);
    CHECK_RC(edist_exit_signal(pid, r.data, r.len), 0);
    CHECK_RC(recv_down(&ref, 5000, &reason), 0);
    edist_term_view m;
    CHECK_RC(edist_receive(NULL, NULL, 20, &m), EDIST_ETIMEDOUT);
    CHECK(edist_is_process_alive(me));
    edist_buf_free(&r);
    done();
}

static void test_link_rules(void **state)
{
    (void)state;
    run(link_rules_body, NULL);
}

/* ---- monitors ------------------------------------------------------------------------------- */

static void registered_idle(void *arg)
{
    CHECK_RC(edist_register((const char *)arg, edist_self()), 0);
    idle_forever(NULL);
}

static void monitors_body(void *arg)
{
    (void)arg;
    edist_procid pid, dead;
    edist_ref ref, ref2;
    edist_term_view reason, m;
    enc_small e;

    /* noproc for a dead pid and an unknown name */
    CHECK_RC(edist_spawn(exits_normal, NULL, &dead), 0);
    edist_yield();
    CHECK_RC(edist_monitor(dead, &ref), 0);
    CHECK_RC(recv_bound("{'DOWN', R, process, _, noproc}", "R", enc_ref(&e, &ref), 0, &m), 0);
    CHECK_RC(edist_monitor_name("nobody_here", NULL, &ref), 0);
    CHECK_RC(recv_text("{'DOWN', _, process, {nobody_here, 'nonode@nohost'}, noproc}", 0, &m),
             0);

    /* by name: the DOWN names {Name, Node} */
    CHECK_RC(edist_spawn(registered_idle, "watched_one", &pid), 0);
    edist_yield();
    CHECK_RC(edist_monitor_name("watched_one", "nonode@nohost", &ref), 0);
    CHECK_RC(edist_monitor(pid, &ref2), 0); /* and by pid */
    edist_buf r = term("bye");
    CHECK_RC(edist_exit_signal(pid, r.data, r.len), 0);
    CHECK_RC(recv_bound("{'DOWN', R, process, {watched_one, 'nonode@nohost'}, bye}", "R",
                        enc_ref(&e, &ref), 5000, &m),
             0);
    CHECK_RC(recv_bound("{'DOWN', R, process, P, bye}", "R", enc_ref(&e, &ref2), 5000, &m), 0);

    /* demonitor: no DOWN afterwards; 1 while active, 0 after */
    CHECK_RC(edist_spawn(idle_forever, NULL, &pid), 0);
    CHECK_RC(edist_monitor(pid, &ref), 0);
    CHECK_RC(edist_demonitor(&ref, 0), 1);
    CHECK_RC(edist_demonitor(&ref, 0), 0);
    CHECK_RC(edist_exit_signal(pid, r.data, r.len), 0);
    CHECK_RC(recv_down(&ref, 30, &reason), EDIST_ETIMEDOUT);

    /* demonitor with flush removes a DOWN already queued */
    CHECK_RC(edist_spawn(idle_forever, NULL, &pid), 0);
    CHECK_RC(edist_monitor(pid, &ref), 0);
    CHECK_RC(edist_monitor(pid, &ref2), 0);
    CHECK_RC(edist_exit_signal(pid, r.data, r.len), 0);
    edist_sleep_ms(10); /* both DOWNs are queued now */
    CHECK_RC(edist_mailbox_length(), 2);
    CHECK_RC(edist_demonitor(&ref, EDIST_DEMONITOR_FLUSH), 0);
    CHECK_RC(edist_mailbox_length(), 1);
    CHECK_RC(recv_down(&ref2, 0, &reason), 0);
    CHECK(reason_is(reason, "bye"));
    edist_buf_free(&r);

    /* a monitor dies with its watcher: the target keeps no record */
    CHECK_RC(edist_spawn(idle_forever, NULL, &pid), 0);
    done();
}

static void test_monitors(void **state)
{
    (void)state;
    run(monitors_body, NULL);
}

/* ---- registered names ------------------------------------------------------------------------- */

static void names_body(void *arg)
{
    (void)arg;
    edist_procid me = edist_self(), pid, found;
    edist_term_view m;
    CHECK_RC(edist_register("main_body", me), 0);
    CHECK_RC(edist_whereis("main_body", &found), 0);
    CHECK(edist_procid_equal(found, me));
    CHECK_RC(edist_register("main_body", me), EDIST_EEXIST);   /* taken */
    CHECK_RC(edist_register("second_name", me), EDIST_EEXIST); /* one name each */
    CHECK_RC(edist_register("undefined", me), EDIST_EINVAL);
    CHECK_RC(edist_send_name("main_body", "\x77\x02hi", 4), 0);
    CHECK_RC(recv_text("hi", 0, &m), 0);
    CHECK_RC(edist_send_name_node("main_body", "nonode@nohost", "\x77\x02ho", 4), 0);
    CHECK_RC(recv_text("ho", 0, &m), 0);
    /* Name ! Msg to nobody: badarg; {Name, node()} ! Msg: dropped */
    CHECK_RC(edist_send_name("nobody", "\x77\x02hi", 4), EDIST_ENOTFOUND);
    CHECK_RC(edist_send_name_node("nobody", NULL, "\x77\x02hi", 4), 0);
    CHECK_RC(edist_unregister("main_body"), 0);
    CHECK_RC(edist_unregister("main_body"), EDIST_ENOTFOUND);
    CHECK_RC(edist_whereis("main_body", &found), EDIST_ENOTFOUND);
    /* a name dies with its process */
    CHECK_RC(edist_spawn(registered_idle, "short_lived", &pid), 0);
    edist_yield();
    CHECK_RC(edist_whereis("short_lived", &found), 0);
    CHECK(edist_procid_equal(found, pid));
    char **names;
    int64_t n = edist_registered(edist_self_runtime(), &names);
    CHECK(n == 1 && strcmp(names[0], "short_lived") == 0);
    edist_names_free(names, (size_t)n);
    edist_ref ref;
    CHECK_RC(edist_monitor(pid, &ref), 0);
    edist_buf r = term("bye");
    CHECK_RC(edist_exit_signal(pid, r.data, r.len), 0);
    edist_buf_free(&r);
    CHECK_RC(recv_down(&ref, 5000, NULL), 0);
    CHECK_RC(edist_whereis("short_lived", &found), EDIST_ENOTFOUND);
    CHECK(edist_registered(edist_self_runtime(), &names) == 0);
    edist_names_free(names, 0);
    /* register another live process; dead ones cannot be */
    CHECK_RC(edist_spawn(idle_forever, NULL, &pid), 0);
    CHECK_RC(edist_register("other", pid), 0);
    CHECK_RC(edist_register("ghost", found), EDIST_ENOTFOUND);
    done();
}

static void test_names(void **state)
{
    (void)state;
    run(names_body, NULL);
    edist_procid p;
    assert_int_equal(edist_runtime_whereis(rt, "other", &p), 0);
    assert_int_equal(edist_runtime_unregister(rt, "other"), 0);
}

/* ---- thread processes ------------------------------------------------------------------------ */

#define MILLION 1000000
#define WINDOW 1000

static void free_pattern(void *p)
{
    edist_pattern_free(p);
}

static void echo_proc(void *arg)
{
    (void)arg;
    edist_pattern *p = pattern("{From, N}");
    edist_at_exit(free_pattern, p); /* it ends killed */
    int fi = edist_pattern_var_index(p, "From");
    for (;;) {
        edist_term_view vars[2] = {{0}}, m;
        if (edist_receive(p, vars, -1, &m) != 0)
            break;
        edist_cursor c;
        edist_cursor_init(&c, vars[fi].ptr, vars[fi].len);
        edist_procid from;
        if (edist_dec_procid(&c, &from) != 0)
            continue;
        /* echo the whole message back */
        while (edist_send(from, m.ptr, m.len) == EDIST_EAGAIN)
            edist_yield();
    }
}

static void test_thread_million(void **state)
{
    (void)state;
    edist_procid echo;
    assert_int_equal(edist_runtime_spawn(rt, echo_proc, NULL, NULL, &echo), 0);
    uint64_t t0 = now_ms();
    int64_t sent = 0, got = 0;
    uint8_t out[64];
    while (got < MILLION) {
        while (sent < MILLION && sent - got < WINDOW) {
            edist_buf b;
            edist_buf_init_fixed(&b, out, sizeof out);
            edist_enc_tuple(&b, 2);
            edist_enc_procid(&b, g_main);
            edist_enc_int(&b, sent);
            int rc = edist_send(echo, b.data, b.len);
            if (rc == EDIST_EAGAIN)
                break;
            assert_int_equal(rc, 0);
            sent++;
        }
        edist_term_view m;
        assert_int_equal(edist_receive(NULL, NULL, 10000, &m), 0);
        edist_cursor c;
        edist_cursor_init(&c, m.ptr, m.len);
        uint32_t arity;
        edist_procid from;
        int64_t n = -1;
        assert_int_equal(edist_dec_tuple(&c, &arity), 0);
        assert_int_equal(edist_dec_procid(&c, &from), 0);
        assert_int_equal(edist_dec_int64(&c, &n), 0);
        assert_int_equal(n, got); /* in order */
        got++;
    }
    uint64_t ms = now_ms() - t0;
    print_message("thread <-> green: %d messages each way in %llu ms\n", MILLION,
                  (unsigned long long)ms);
    edist_buf k = term("kill");
    assert_int_equal(edist_exit_signal(echo, k.data, k.len), 0);
    edist_buf_free(&k);
    assert_false(edist_is_process_alive(echo));
}

typedef struct killed_thread {
    edist_runtime *rt;
    edist_procid pid;
    _Atomic int attached;
    int receive_rc;
    int reason_ok;
    int send_rc;
} killed_thread;

static void *victim_thread(void *arg)
{
    killed_thread *k = arg;
    if (edist_proc_attach_thread(k->rt, 50, &k->pid) != 0)
        return NULL;
    atomic_store(&k->attached, 1);
    edist_term_view m;
    k->receive_rc = edist_receive(g_never, NULL, -1, &m);
    edist_term_view reason;
    if (edist_proc_exit_reason(&reason) == 0)
        k->reason_ok = reason_is(reason, "{terminated, by_test}");
    k->send_rc = edist_send(k->pid, "\x77\x01x", 3);
    edist_proc_detach_thread(NULL, 0);
    return NULL;
}

static void test_thread_killed(void **state)
{
    (void)state;
    killed_thread k;
    memset(&k, 0, sizeof k);
    k.rt = rt;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, victim_thread, &k), 0);
    while (!atomic_load(&k.attached))
        usleep(1000);
    edist_ref ref;
    assert_int_equal(edist_monitor(k.pid, &ref), 0);
    assert_int_equal(edist_link(k.pid), 0);
    edist_trap_exit(true);
    edist_buf r = term("{terminated, by_test}");
    assert_int_equal(edist_exit_signal(k.pid, r.data, r.len), 0);
    edist_buf_free(&r);
    pthread_join(th, NULL);
    assert_int_equal(k.receive_rc, EDIST_ECLOSED);
    assert_true(k.reason_ok);
    assert_int_equal(k.send_rc, EDIST_ECLOSED);
    edist_term_view reason, m;
    assert_int_equal(recv_down(&ref, 5000, &reason), 0);
    assert_true(reason_is(reason, "{terminated, by_test}"));
    assert_int_equal(recv_text("{'EXIT', _, {terminated, by_test}}", 5000, &m), 0);
    edist_trap_exit(false);
    assert_false(edist_runtime_is_alive(rt, k.pid));
}

static void *detacher(void *arg)
{
    killed_thread *k = arg;
    if (edist_proc_attach_thread(k->rt, 0, &k->pid) != 0)
        return NULL;
    edist_procid again;
    k->receive_rc = edist_proc_attach_thread(k->rt, 0, &again); /* twice: refused */
    atomic_store(&k->attached, 1);
    edist_term_view m;
    edist_receive(g_go, NULL, 5000, &m);
    edist_buf r = term("{detached, ok}");
    edist_proc_detach_thread(r.data, r.len);
    edist_buf_free(&r);
    return NULL;
}

static void test_thread_detach(void **state)
{
    (void)state;
    killed_thread k;
    memset(&k, 0, sizeof k);
    k.rt = rt;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, detacher, &k), 0);
    while (!atomic_load(&k.attached))
        usleep(1000);
    assert_int_equal(k.receive_rc, EDIST_EINVAL);
    edist_ref ref;
    assert_int_equal(edist_monitor(k.pid, &ref), 0);
    assert_int_equal(send_text(k.pid, "go"), 0);
    pthread_join(th, NULL);
    edist_term_view reason;
    assert_int_equal(recv_down(&ref, 5000, &reason), 0);
    assert_true(reason_is(reason, "{detached, ok}"));
}

/* ---- exports ---------------------------------------------------------------------------------- */

static int ex_reply(void *user, const edist_term_view *args, uint32_t arity, edist_buf *result)
{
    (void)user;
    (void)result;
    if (arity != 2)
        return EDIST_EINVAL;
    edist_cursor c;
    edist_cursor_init(&c, args[0].ptr, args[0].len);
    edist_procid to;
    if (edist_dec_procid(&c, &to) != 0)
        return EDIST_EINVAL;
    return edist_send(to, args[1].ptr, args[1].len);
}

static int ex_add(void *user, const edist_term_view *args, uint32_t arity, edist_buf *result)
{
    edist_procid *to = user;
    int64_t a, b;
    edist_cursor c;
    edist_cursor_init(&c, args[0].ptr, args[0].len);
    if (arity != 2 || edist_dec_int64(&c, &a))
        return EDIST_EINVAL;
    edist_cursor_init(&c, args[1].ptr, args[1].len);
    if (edist_dec_int64(&c, &b))
        return EDIST_EINVAL;
    edist_enc_int(result, a + b);
    uint8_t out[32];
    edist_buf o;
    edist_buf_init_fixed(&o, out, sizeof out);
    edist_enc_tuple(&o, 2);
    edist_enc_atom(&o, "sum", 3);
    edist_enc_int(&o, a + b);
    return edist_send(*to, o.data, o.len);
}

static int ex_crash(void *user, const edist_term_view *args, uint32_t arity, edist_buf *result)
{
    (void)user;
    (void)result;
    (void)arity;
    edist_exit(args[0].ptr, args[0].len);
    return 0;
}

static edist_procid export_collector;

static void exports_body(void *arg)
{
    (void)arg;
    edist_procid me = edist_self(), pid;
    edist_ref ref;
    edist_term_view m, reason;
    export_collector = me;
    edist_runtime *r = edist_self_runtime();
    edist_exported_fn fn;
    void *user;
    CHECK_RC(edist_export_lookup(r, "edist_demo", "reply", 2, &fn, &user), 0);
    CHECK(fn == ex_reply);
    CHECK_RC(edist_export_lookup(r, "edist_demo", "reply", 3, &fn, &user), EDIST_ENOTFOUND);
    CHECK_RC(edist_export_lookup(r, "edist_demo", "nope", 2, &fn, &user), EDIST_ENOTFOUND);

    /* spawn(edist_demo, reply, [Self, hello]) */
    uint8_t out[128];
    edist_buf b;
    edist_buf_init_fixed(&b, out, sizeof out);
    edist_enc_list(&b, 2);
    edist_enc_procid(&b, me);
    edist_enc_atom(&b, "hello", 5);
    edist_enc_nil(&b);
    CHECK_RC(edist_spawn_export("edist_demo", "reply", b.data, b.len, NULL, &pid, NULL), 0);
    CHECK_RC(recv_text("hello", 5000, &m), 0);

    /* [1, 2] travels as a byte string: each element is an argument */
    edist_buf args = term("[1, 2]");
    edist_spawn_opts mon = {.monitor = true};
    CHECK_RC(edist_spawn_export("edist_demo", "add", args.data, args.len, &mon, &pid, &ref), 0);
    CHECK_RC(recv_text("{sum, 3}", 5000, &m), 0);
    CHECK_RC(recv_down(&ref, 5000, &reason), 0);
    CHECK(reason_is(reason, "normal"));
    edist_buf_free(&args);

    /* crash/1 exits with its argument */
    args = term("[{my, reason}]");
    CHECK_RC(edist_spawn_export("edist_demo", "crash", args.data, args.len, &mon, &pid, &ref), 0);
    CHECK_RC(recv_down(&ref, 5000, &reason), 0);
    CHECK(reason_is(reason, "{my, reason}"));
    edist_buf_free(&args);

    /* unknown: the process exits with undef, as erts */
    args = term("[1, foo]");
    CHECK_RC(edist_spawn_export("edist_demo", "nope", args.data, args.len, &mon, &pid, &ref), 0);
    CHECK_RC(recv_down(&ref, 5000, &reason), 0);
    CHECK(reason_is(reason, "{undef, [{edist_demo, nope, [1, foo], []}]}"));
    edist_buf_free(&args);
    /* not a list */
    args = term("{1, 2}");
    CHECK(edist_spawn_export("edist_demo", "add", args.data, args.len, NULL, &pid, NULL) < 0);
    edist_buf_free(&args);
    done();
}

static void test_exports(void **state)
{
    (void)state;
    assert_int_equal(edist_export_function(rt, "edist_demo", "reply", 2, ex_reply, NULL), 0);
    assert_int_equal(edist_export_function(rt, "edist_demo", "add", 2, ex_add, &export_collector),
                     0);
    assert_int_equal(edist_export_function(rt, "edist_demo", "crash", 1, ex_crash, NULL), 0);
    assert_int_equal(edist_export_function(rt, "bad module", "x", 300, ex_crash, NULL),
                     EDIST_EINVAL);
    run(exports_body, NULL);
}

/* ---- pids, refs, limits, errors ---------------------------------------------------------------- */

static void remote_send_body(void *arg)
{
    edist_procid *rp = arg;
    CHECK_RC(edist_send(*rp, "\x61\x01", 2), EDIST_ECLOSED);
    CHECK_RC(edist_send_name_node("x", "other@host", "\x61\x01", 2), EDIST_ECLOSED);
    done();
}

static void test_pids_and_refs(void **state)
{
    (void)state;
    edist_procid me = edist_self();
    assert_false(edist_procid_is_null(me));
    assert_string_equal(edist_procid_node(me), "nonode@nohost");
    assert_int_equal(me.node, 0);
    /* round trip through the codec */
    uint8_t out[128];
    edist_buf b;
    edist_buf_init_fixed(&b, out, sizeof out);
    assert_int_equal(edist_enc_procid(&b, me), 0);
    edist_cursor c;
    edist_cursor_init(&c, b.data, b.len);
    edist_procid back;
    assert_int_equal(edist_dec_procid(&c, &back), 0);
    assert_true(edist_procid_equal(me, back));
    /* a remote pid interns its node */
    edist_pid remote = {{"other@host", 10, 0}, 5, 0, 77};
    edist_procid rp;
    assert_int_equal(edist_procid_from_pid(&remote, &rp), 0);
    assert_string_equal(edist_procid_node(rp), "other@host");
    assert_int_equal(edist_node_name_index("other@host", 10), (int64_t)rp.node);
    edist_pid v;
    edist_procid_to_pid(rp, &v);
    assert_int_equal(v.id, 5);
    assert_int_equal(v.creation, 77);
    /* refs: 3 words of this node, unique */
    edist_ref r1, r2;
    assert_int_equal(edist_make_ref(&r1), 0);
    assert_int_equal(edist_runtime_make_ref(rt, &r2), 0);
    assert_int_equal(r1.len, 3);
    assert_true(r1.ids[0] < (1u << 18));
    assert_false(edist_ref_equal(&r1, &r2));
    assert_true(edist_ref_equal(&r1, &r1));
    /* without distribution: sends to other nodes fail (a thread's sends
     * are queued: it cannot know), links and monitors fire noconnection */
    assert_int_equal(edist_send(rp, "\x61\x01", 2), 0);
    run(remote_send_body, &rp);
    edist_ref mref;
    assert_int_equal(edist_monitor(rp, &mref), 0);
    edist_term_view reason, m;
    assert_int_equal(recv_down(&mref, 1000, &reason), 0);
    assert_true(reason_is(reason, "noconnection"));
    edist_trap_exit(true);
    assert_int_equal(edist_link(rp), 0);
    assert_int_equal(recv_text("{'EXIT', _, noconnection}", 1000, &m), 0);
    edist_trap_exit(false);
    assert_int_equal(edist_send_name_node("x", "other@host", "\x61\x01", 2), 0); /* queued */
}

static void test_errors(void **state)
{
    (void)state;
    /* not a process: another thread */
    edist_procid p = EDIST_PROCID_NULL;
    edist_term_view m;
    edist_proc_detach_thread(NULL, 0);
    assert_true(edist_procid_is_null(edist_self()));
    assert_int_equal(edist_spawn(exits_normal, NULL, &p), EDIST_EINVAL);
    assert_int_equal(edist_receive(NULL, NULL, 0, &m), EDIST_EINVAL);
    assert_int_equal(edist_send(p, "\x61\x01", 2), EDIST_EINVAL);
    assert_int_equal(edist_link(p), EDIST_EINVAL);
    assert_int_equal(edist_trap_exit(true), EDIST_EINVAL);
    assert_int_equal(edist_proc_detach_thread(NULL, 0), EDIST_EINVAL);
    assert_int_equal(edist_runtime_spawn(rt, NULL, NULL, NULL, &p), EDIST_EINVAL);
    edist_spawn_opts o = {.link = true};
    assert_int_equal(edist_runtime_spawn(rt, exits_normal, NULL, &o, &p), EDIST_EINVAL);
    /* runtime-level calls work from anywhere */
    assert_int_equal(edist_runtime_spawn(rt, idle_forever, NULL, NULL, &p), 0);
    assert_true(edist_runtime_is_alive(rt, p));
    assert_int_equal(edist_runtime_send(rt, p, "\x61\x01", 2), 0);
    assert_int_equal(edist_runtime_register(rt, "idler", p), 0);
    assert_int_equal(edist_runtime_send_name(rt, "idler", "\x61\x01", 2), 0);
    assert_int_equal(edist_runtime_send_name(rt, "nobody", "\x61\x01", 2), EDIST_ENOTFOUND);
    assert_int_equal(edist_proc_attach_thread(rt, 0, &g_main), 0);
    assert_int_equal(edist_send(p, NULL, 0), EDIST_EINVAL);
    assert_int_equal(edist_exit(NULL, 0), EDIST_EINVAL);
    assert_int_equal(edist_receive(NULL, NULL, 0, NULL), EDIST_EINVAL);
    edist_ref r;
    assert_int_equal(edist_monitor(EDIST_PROCID_NULL, &r), EDIST_EINVAL);
    assert_int_equal(edist_monitor_name("", NULL, &r), EDIST_EINVAL);
    assert_int_equal(edist_link(EDIST_PROCID_NULL), EDIST_EINVAL);
}

static void restart_with(const edist_runtime_config *cfg)
{
    edist_proc_detach_thread(NULL, 0);
    edist_runtime_stop(rt);
    assert_int_equal(start_with(cfg), 0);
}

static void test_process_limit_and_stale_pids(void **state)
{
    (void)state;
    edist_runtime_config cfg;
    edist_runtime_config_init(&cfg);
    cfg.max_processes = 4;
    cfg.shards = 1; /* ids are reused within a shard's table */
    restart_with(&cfg);
    /* main is one process; 3 more fit */
    edist_procid p[4];
    for (int i = 0; i < 3; i++)
        assert_int_equal(edist_runtime_spawn(rt, idle_forever, NULL, NULL, &p[i]), 0);
    assert_int_equal(edist_runtime_spawn(rt, idle_forever, NULL, NULL, &p[3]), EDIST_ENOMEM);
    edist_ref ref;
    assert_int_equal(edist_monitor(p[0], &ref), 0);
    edist_buf k = term("kill");
    assert_int_equal(edist_exit_signal(p[0], k.data, k.len), 0);
    edist_buf_free(&k);
    edist_term_view reason;
    assert_int_equal(recv_down(&ref, 5000, &reason), 0);
    assert_true(reason_is(reason, "killed"));
    /* the freed id is reused with a new serial: the old pid never
     * reaches the new process */
    edist_procid q;
    assert_int_equal(edist_runtime_spawn(rt, idle_forever, NULL, NULL, &q), 0);
    assert_int_equal(q.id, p[0].id);
    assert_int_not_equal(q.serial, p[0].serial);
    assert_false(edist_runtime_is_alive(rt, p[0]));
    assert_true(edist_runtime_is_alive(rt, q));
    edist_runtime_stats st;
    assert_int_equal(edist_runtime_get_stats(rt, &st), 0);
    uint64_t dropped = st.messages_dropped;
    assert_int_equal(edist_send(p[0], "\x61\x01", 2), 0);
    assert_int_equal(edist_runtime_get_stats(rt, &st), 0);
    assert_int_equal(st.messages_dropped, dropped + 1);
}

/* A thread flooding a full mailbox is held back (its own later requests
 * wait behind), other threads are not; nothing is lost. */
static _Atomic int consume_go, flood_sync_done;

static void slow_consumer(void *arg)
{
    edist_procid *report = arg;
    while (!atomic_load(&consume_go))
        edist_sleep_ms(2);
    int n = 0;
    edist_term_view m;
    while (edist_receive(NULL, NULL, 300, &m) == 0)
        n++;
    uint8_t out[32];
    edist_buf b;
    edist_buf_init_fixed(&b, out, sizeof out);
    edist_enc_tuple(&b, 2);
    edist_enc_atom(&b, "got", 3);
    edist_enc_int(&b, n);
    edist_send(*report, b.data, b.len);
}

typedef struct flooder {
    edist_procid target;
    int sent;
    _Atomic int flooded;
} flooder;

static void *flood_thread(void *arg)
{
    flooder *f = arg;
    edist_procid me;
    if (edist_proc_attach_thread(rt, 0, &me) != 0)
        return NULL;
    for (int i = 0; i < 20; i++)
        if (edist_send(f->target, "\x61\x01", 2) == 0)
            f->sent++;
    atomic_store(&f->flooded, 1);
    edist_is_process_alive(f->target); /* waits behind the stalled sends */
    atomic_store(&flood_sync_done, 1);
    edist_proc_detach_thread(NULL, 0);
    return NULL;
}

/* A runtime with mailboxes of 10, a consumer that waits for consume_go,
 * and a thread (fn) flooding it, held back once this returns. */
static void start_flood(flooder *f, void *(*fn)(void *), pthread_t *th)
{
    edist_runtime_config cfg;
    edist_runtime_config_init(&cfg);
    cfg.max_mailbox_messages = 10;
    restart_with(&cfg);
    atomic_store(&consume_go, 0);
    assert_int_equal(edist_runtime_spawn(rt, slow_consumer, &g_main, NULL, &f->target), 0);
    assert_int_equal(pthread_create(th, NULL, fn, f), 0);
    while (!atomic_load(&f->flooded))
        usleep(1000);
    usleep(20000);
}

static void test_thread_backpressure(void **state)
{
    (void)state;
    atomic_store(&flood_sync_done, 0);
    flooder f = {0};
    pthread_t th;
    start_flood(&f, flood_thread, &th);
    /* another thread's calls go through while the flooder is held */
    assert_true(edist_runtime_is_alive(rt, f.target));
    assert_int_equal(atomic_load(&flood_sync_done), 0);
    atomic_store(&consume_go, 1);
    pthread_join(th, NULL);
    assert_int_equal(f.sent, 20);
    assert_int_equal(atomic_load(&flood_sync_done), 1);
    edist_term_view m;
    assert_int_equal(recv_text("{got, 20}", 5000, &m), 0);
}

/* Threads that are no process are each their own sender: one held back
 * by a full mailbox (its send waits in the shard's queue) does not hold
 * back another one's calls. They all counted as one sender, and an
 * is_alive from a second thread waited until the mailbox drained. */
static _Atomic int unattached_asked;

static void *unattached_flood(void *arg)
{
    flooder *f = arg;
    for (int i = 0; i < 20; i++)
        if (edist_runtime_send(rt, f->target, "\x61\x01", 2) == 0)
            f->sent++;
    atomic_store(&f->flooded, 1);
    return NULL;
}

static void *unattached_ask(void *arg)
{
    flooder *f = arg;
    atomic_store(&unattached_asked, edist_runtime_is_alive(rt, f->target) ? 1 : -1);
    return NULL;
}

static void test_unattached_threads_apart(void **state)
{
    (void)state;
    atomic_store(&unattached_asked, 0);
    flooder f = {0};
    pthread_t th, ask;
    start_flood(&f, unattached_flood, &th);
    assert_int_equal(pthread_create(&ask, NULL, unattached_ask, &f), 0);
    for (int i = 0; i < 2000 && atomic_load(&unattached_asked) == 0; i++)
        usleep(1000);
    /* answered while the flood still waits for the consumer */
    assert_int_equal(atomic_load(&unattached_asked), 1);
    atomic_store(&consume_go, 1);
    pthread_join(ask, NULL);
    pthread_join(th, NULL);
    assert_int_equal(f.sent, 20);
    edist_term_view m;
    assert_int_equal(recv_text("{got, 20}", 5000, &m), 0);
}

/* A thread's sends queued to the shard past max_pending_requests, or
 * past max_pending_bytes, are refused with EDIST_EAGAIN and counted. The
 * sends come from a thread that is no process (the test's own thread
 * would wait behind them for its statistics). */
typedef struct pending_job {
    edist_procid target;
    int n, len, refused;
    const void *msg;
    char error[256];
} pending_job;

static void *pending_sender(void *arg)
{
    pending_job *j = arg;
    for (int i = 0; i < j->n; i++) {
        int rc = edist_runtime_send(rt, j->target, i == j->n - 1 ? j->msg : "\x61\x01",
                                    i == j->n - 1 ? (size_t)j->len : 2);
        if (rc == EDIST_EAGAIN) {
            j->refused++;
            snprintf(j->error, sizeof j->error, "%s", edist_last_error());
        }
        usleep(2000); /* taken (or stalled) before the next */
    }
    return NULL;
}

static void run_pending(pending_job *j)
{
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, pending_sender, j), 0);
    pthread_join(th, NULL);
}

static void test_pending_limits_counted(void **state)
{
    (void)state;
    edist_runtime_config cfg;
    edist_runtime_config_init(&cfg);
    cfg.max_mailbox_messages = 10;
    cfg.max_pending_requests = 2;
    cfg.max_pending_bytes = 1024;
    restart_with(&cfg);
    /* 10 fill the mailbox, 2 wait queued, the 13th is refused */
    atomic_store(&consume_go, 0);
    pending_job j = {.n = 13, .len = 2, .msg = "\x61\x01"};
    assert_int_equal(edist_runtime_spawn(rt, slow_consumer, &g_main, NULL, &j.target), 0);
    run_pending(&j);
    assert_int_equal(j.refused, 1);
    assert_non_null(strstr(j.error, "requests already queued"));
    edist_runtime_stats st;
    assert_int_equal(edist_runtime_get_stats(rt, &st), 0);
    assert_int_equal(st.requests_refused, 1);
    atomic_store(&consume_go, 1);
    edist_term_view m;
    assert_int_equal(recv_text("{got, 12}", 5000, &m), 0);
    /* 10 fill it, 1 waits; then 2,000 bytes while 2 wait: refused */
    static uint8_t big[2048] = {109, 0, 0, 7, 200}; /* a binary of 1,992 */
    atomic_store(&consume_go, 0);
    pending_job k = {.n = 12, .len = 1997, .msg = big};
    assert_int_equal(edist_runtime_spawn(rt, slow_consumer, &g_main, NULL, &k.target), 0);
    run_pending(&k);
    assert_int_equal(k.refused, 1);
    assert_non_null(strstr(k.error, "bytes of sends already queued"));
    assert_int_equal(edist_runtime_get_stats(rt, &st), 0);
    assert_int_equal(st.requests_refused, 2);
    atomic_store(&consume_go, 1);
    assert_int_equal(recv_text("{got, 11}", 5000, &m), 0);
}

/* A green process's own mailbox limit, from green senders. */
static void flood_body(void *arg)
{
    edist_procid *target = arg;
    int refused = 0;
    for (int i = 0; i < 20; i++)
        if (edist_send(*target, "\x61\x01", 2) == EDIST_EAGAIN)
            refused++;
    CHECK(refused == 10);
    done();
}

static void test_mailbox_limit(void **state)
{
    (void)state;
    edist_runtime_config cfg;
    edist_runtime_config_init(&cfg);
    cfg.max_mailbox_messages = 10;
    /* The refusal a sender on the receiver's shard gets at once; across
     * shards the ring holds the sender back instead (test_shards.c). */
    cfg.shards = 1;
    restart_with(&cfg);
    edist_procid target;
    assert_int_equal(edist_runtime_spawn(rt, idle_forever, NULL, NULL, &target), 0);
    run(flood_body, &target);
}

/* The byte limit: 100-byte messages into a 1000-byte mailbox. */
static int send_hundreds(edist_procid to, int n)
{
    uint8_t msg[100] = {EDIST_TAG_BINARY, 0, 0, 0, 95};
    int refused = 0;
    for (int i = 0; i < n; i++)
        if (edist_send(to, msg, sizeof msg) == EDIST_EAGAIN)
            refused++;
    return refused;
}

static void flood_bytes_body(void *arg)
{
    edist_procid *target = arg;
    CHECK(send_hundreds(*target, 20) == 10);
    /* an empty mailbox takes one message larger than the limit */
    edist_procid other;
    CHECK_RC(edist_spawn(idle_forever, NULL, &other), 0);
    static uint8_t big[5000] = {EDIST_TAG_BINARY, 0, 0, 0x13, 0x83};
    CHECK_RC(edist_send(other, big, sizeof big), 0);
    CHECK_RC(edist_send(other, big, sizeof big), EDIST_EAGAIN);
    done();
}

static _Atomic int thread_refused;

static void flood_thread_bytes(void *arg)
{
    (void)arg;
    atomic_store(&thread_refused, send_hundreds(g_main, 20));
}

static void test_mailbox_byte_limit(void **state)
{
    (void)state;
    edist_runtime_config cfg;
    edist_runtime_config_init(&cfg);
    cfg.max_mailbox_bytes = 1000;
    cfg.shards = 1; /* as test_mailbox_limit */
    restart_with(&cfg);
    edist_procid target;
    assert_int_equal(edist_runtime_spawn(rt, idle_forever, NULL, NULL, &target), 0);
    run(flood_bytes_body, &target);
    /* a thread process's mailbox; twice, so that receiving gave the bytes
     * back */
    for (int round = 0; round < 2; round++) {
        atomic_store(&thread_refused, -1);
        edist_procid flooder;
        assert_int_equal(edist_runtime_spawn(rt, flood_thread_bytes, NULL, NULL, &flooder), 0);
        while (atomic_load(&thread_refused) < 0)
            usleep(1000);
        assert_int_equal(atomic_load(&thread_refused), 10);
        edist_term_view m;
        for (int i = 0; i < 10; i++)
            assert_int_equal(edist_receive(NULL, NULL, 1000, &m), 0);
        assert_int_equal(edist_receive(NULL, NULL, 0, &m), EDIST_ETIMEDOUT);
    }
    /* every refusal was counted */
    edist_runtime_stats st;
    assert_int_equal(edist_runtime_get_stats(rt, &st), 0);
    assert_true(st.mailbox_busy >= 20);
}

static _Atomic int at_exit_ran;

static void note_exit(void *arg)
{
    atomic_fetch_add(&at_exit_ran, (int)(intptr_t)arg);
}

static void with_at_exit(void *arg)
{
    (void)arg;
    CHECK_RC(edist_at_exit(note_exit, (void *)1), 0);
    CHECK_RC(edist_at_exit(note_exit, (void *)10), 0);
    /* taken back: it must not run (and a second cancel finds nothing) */
    CHECK_RC(edist_at_exit(note_exit, (void *)100), 0);
    CHECK_RC(edist_at_exit_cancel(note_exit, (void *)100), 0);
    CHECK_RC(edist_at_exit_cancel(note_exit, (void *)100), EDIST_ENOTFOUND);
    idle_forever(NULL);
}

static void test_at_exit(void **state)
{
    (void)state;
    atomic_store(&at_exit_ran, 0);
    edist_procid p;
    edist_ref ref;
    edist_spawn_opts o = {0};
    assert_int_equal(edist_runtime_spawn(rt, with_at_exit, NULL, &o, &p), 0);
    assert_int_equal(edist_monitor(p, &ref), 0);
    usleep(20000);
    edist_buf k = term("kill");
    assert_int_equal(edist_exit_signal(p, k.data, k.len), 0);
    edist_buf_free(&k);
    assert_int_equal(recv_down(&ref, 5000, NULL), 0);
    assert_int_equal(atomic_load(&at_exit_ran), 11);
    assert_true(g_fail[0] == '\0');
}

/* A process killed while it waits with a timeout: its timer (on its own
 * stack) must not fire into a recycled stack. */
static void waits_with_timeout(void *arg)
{
    (void)arg;
    edist_term_view m;
    edist_receive(g_never, NULL, 150, &m);
    exit_atom("timed_out");
}

static void test_kill_while_timed_wait(void **state)
{
    (void)state;
    edist_buf k = term("kill");
    for (int round = 0; round < 20; round++) {
        edist_procid p;
        edist_ref ref;
        assert_int_equal(edist_runtime_spawn(rt, waits_with_timeout, NULL, NULL, &p), 0);
        assert_int_equal(edist_monitor(p, &ref), 0);
        usleep(2000);
        assert_int_equal(edist_exit_signal(p, k.data, k.len), 0);
        edist_term_view reason;
        assert_int_equal(recv_down(&ref, 5000, &reason), 0);
        assert_true(reason_is(reason, "killed"));
        /* reuse the stacks while the dead timers would have been due */
        assert_int_equal(edist_runtime_spawn(rt, idle_forever, NULL, NULL, &p), 0);
    }
    usleep(300000);
    /* and one that is not killed times out */
    edist_procid p;
    edist_ref ref;
    assert_int_equal(edist_runtime_spawn(rt, waits_with_timeout, NULL, NULL, &p), 0);
    assert_int_equal(edist_monitor(p, &ref), 0);
    edist_term_view reason;
    assert_int_equal(recv_down(&ref, 5000, &reason), 0);
    assert_true(reason_is(reason, "timed_out"));
    edist_buf_free(&k);
}

int main(void)
{
    g_never = pattern("never_sent_anywhere");
    g_go = pattern("go");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stack_overflow_aborts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_frame_hits_guard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_export_crash_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_export_abort_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pingpong, setup, teardown),
        cmocka_unit_test_setup_teardown(test_yield_fp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_recursion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spawn_exit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mailbox_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_owned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_selective_receive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_signals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_monitors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thread_million, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thread_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thread_detach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pids_and_refs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_limit_and_stale_pids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thread_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unattached_threads_apart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_limits_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mailbox_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mailbox_byte_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_at_exit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_while_timed_wait, setup, teardown),
    };
    int rc = cmocka_run_group_tests_name("runtime", tests, NULL, NULL);
    edist_pattern_free(g_never);
    edist_pattern_free(g_go);
    return rc;
}
