/* SPDX-License-Identifier: Apache-2.0 */
/* The runtime's interface to the node (runtime_internal.h): two runtimes,
 * a@host and b@host, each on its own loop thread, wired together the way
 * the node wires a runtime to a connection: every hook of one side posts
 * the signal to the other side's loop, which calls the matching entry
 * point. Messages cross as refcounted buffers handed over without a copy.
 * Then the "connection" goes down and both sides get node_down.
 *
 * The test thread is a process of a@host (attached). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* cmocka needs the headers above first */
#include <cmocka.h>

#include "rt_pair.h"

static edist_procid g_main;
static edist_pattern *g_never;

/* ---- setup ---------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    A.peer = &B;
    B.peer = &A;
    atomic_store(&connected, 1);
    atomic_store(&swallow_spawns, 0);
    atomic_store(&down_in_hook, 0);
    start_side(&A, 1);
    start_side(&B, 2);
    if (edist_proc_attach_thread(A.rt, 0, &g_main) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    edist_proc_detach_thread(NULL, 0);
    stop_side(&A);
    stop_side(&B);
    return 0;
}

/* ---- processes of b@host ----------------------------------------------------------- */

static void free_pattern(void *p)
{
    edist_pattern_free(p);
}

/* {From, Msg} -> Msg to From; stop -> exit(stopped). */
static void echo_b(void *arg)
{
    (void)arg;
    edist_register("echo_b", edist_self());
    edist_pattern *p = pattern("{From, Msg}");
    edist_at_exit(free_pattern, p);
    int fi = edist_pattern_var_index(p, "From"), mi = edist_pattern_var_index(p, "Msg");
    for (;;) {
        edist_term_view vars[2] = {{0}}, m;
        if (edist_receive(NULL, NULL, -1, &m) != 0)
            break;
        if (like(m, "stop"))
            break;
        if (edist_match(p, m.ptr, m.len, vars) != 1)
            continue;
        edist_cursor c;
        edist_cursor_init(&c, vars[fi].ptr, vars[fi].len);
        edist_procid from;
        if (edist_dec_procid(&c, &from) == 0)
            edist_send(from, vars[mi].ptr, vars[mi].len);
    }
    edist_buf r = term("stopped");
    uint8_t copy[32];
    memcpy(copy, r.data, r.len);
    size_t n = r.len;
    edist_buf_free(&r);
    edist_exit(copy, n);
}

static void idle_b(void *arg)
{
    (void)arg;
    edist_term_view m;
    edist_receive(g_never, NULL, -1, &m);
}

/* Exits with the reason given as text after a short while. */
static void exit_later(void *arg)
{
    edist_sleep_ms(30);
    edist_buf r = term((const char *)arg);
    uint8_t copy[64];
    memcpy(copy, r.data, r.len);
    size_t n = r.len;
    edist_buf_free(&r);
    edist_exit(copy, n);
}

/* Monitors the pid it is given; when the DOWN comes, registers saw_down. */
static void watch_main(void *arg)
{
    edist_procid *who = arg;
    edist_ref ref;
    edist_monitor(*who, &ref);
    if (recv_text("{'DOWN', _, process, _, noconnection}", -1, NULL) == 0)
        edist_register("saw_down", edist_self());
    idle_b(NULL);
}

/* Sends exit/2 {from_b} to the pid it is given. */
static void exit2_sender(void *arg)
{
    edist_procid *who = arg;
    edist_buf r = term("{from_b}");
    edist_exit_signal(*who, r.data, r.len);
    edist_buf_free(&r);
}

static int ex_hello(void *user, const edist_term_view *args, uint32_t arity, edist_buf *result)
{
    (void)user;
    (void)result;
    edist_cursor c;
    edist_cursor_init(&c, args[0].ptr, args[0].len);
    edist_procid to;
    if (arity != 1 || edist_dec_procid(&c, &to) != 0)
        return EDIST_EINVAL;
    uint8_t out[64];
    edist_buf b;
    edist_buf_init_fixed(&b, out, sizeof out);
    edist_enc_tuple(&b, 2);
    edist_enc_atom(&b, "hello_from", 10);
    edist_enc_atomz(&b, edist_runtime_node(edist_self_runtime()));
    return edist_send(to, b.data, b.len);
}

static int ex_nothing(void *user, const edist_term_view *args, uint32_t arity,
                      edist_buf *result)
{
    (void)user, (void)args, (void)arity, (void)result;
    return 0;
}

static edist_procid spawn_b(edist_proc_fn fn, void *arg)
{
    edist_procid p;
    assert_int_equal(edist_runtime_spawn(B.rt, fn, arg, NULL, &p), 0);
    return p;
}

static int reason_is(edist_term_view r, const char *text)
{
    edist_buf b = term(text);
    int eq = edist_term_equal(r.ptr, r.len, b.data, b.len);
    edist_buf_free(&b);
    return eq == 1;
}

/* ---- the tests ------------------------------------------------------------------------ */

static void test_messages(void **state)
{
    (void)state;
    edist_procid echo = spawn_b(echo_b, NULL);
    usleep(20000);
    assert_int_equal(echo.node, B.index);
    assert_string_equal(edist_procid_node(echo), "b@host");
    /* to a pid; the reply comes back over the wire, without a copy for
     * a large term */
    uint8_t out[256];
    edist_buf b;
    edist_buf_init_fixed(&b, out, sizeof out);
    edist_enc_tuple(&b, 2);
    edist_enc_procid(&b, g_main);
    /* past the 104 bytes a mailbox entry holds inline */
    static const char big[] = "a payload long enough to be referenced, not copied, "
                              "which takes more than the hundred and four bytes inline";
    edist_enc_binary(&b, big, sizeof big - 1);
    assert_int_equal(edist_send(echo, b.data, b.len), 0);
    edist_term_view m;
    assert_int_equal(edist_receive(NULL, NULL, 5000, &m), 0);
    assert_true(like(m, "<<\"a payload long enough to be referenced, not copied, which takes "
                        "more than the hundred and four bytes inline\">>"));
    assert_true(atomic_load(&buffers_live) >= 1); /* held by the message */
    /* {Name, Node} */
    edist_buf_init_fixed(&b, out, sizeof out);
    edist_enc_tuple(&b, 2);
    edist_enc_procid(&b, g_main);
    edist_enc_atom(&b, "by_name", 7);
    assert_int_equal(edist_send_name_node("echo_b", "b@host", b.data, b.len), 0);
    assert_int_equal(recv_text("by_name", 5000, &m), 0);
    /* the large message was released at the next receive */
    usleep(20000);
    assert_int_equal(atomic_load(&buffers_live), 0);
    /* unknown name on the other node: dropped quietly */
    assert_int_equal(edist_send_name_node("nobody", "b@host", b.data, b.len), 0);
    assert_int_equal(send_text(echo, "stop"), 0);
}

static void test_monitors_and_links(void **state)
{
    (void)state;
    edist_ref ref;
    edist_term_view reason, m;
    enc_small e;

    /* by pid: exit/2 across with a custom reason */
    edist_procid idle = spawn_b(idle_b, NULL);
    assert_int_equal(edist_monitor(idle, &ref), 0);
    edist_buf r = term("{bye, 1}");
    assert_int_equal(edist_exit_signal(idle, r.data, r.len), 0);
    edist_buf_free(&r);
    assert_int_equal(recv_bound("{'DOWN', _, process, P, {bye, 1}}", "P", enc_pid(&e, idle), 5000,
                                &m),
                     0);
    assert_false(edi_rt_is_local(A.rt, idle));

    /* by name: the DOWN names {echo_b, 'b@host'} */
    edist_procid echo = spawn_b(echo_b, NULL);
    usleep(20000);
    assert_int_equal(edist_monitor_name("echo_b", "b@host", &ref), 0);
    usleep(20000);
    assert_int_equal(send_text(echo, "stop"), 0);
    assert_int_equal(recv_text("{'DOWN', _, process, {echo_b, 'b@host'}, stopped}", 5000, &m),
                     0);

    /* noproc from the other side: pid and name */
    edist_procid ghost = idle; /* dead now */
    assert_int_equal(edist_monitor(ghost, &ref), 0);
    assert_int_equal(recv_down(&ref, 5000, &reason), 0);
    assert_true(reason_is(reason, "noproc"));
    assert_int_equal(edist_monitor_name("nobody", "b@host", &ref), 0);
    assert_int_equal(recv_text("{'DOWN', _, process, {nobody, 'b@host'}, noproc}", 5000, &m), 0);

    /* demonitor: no DOWN afterwards */
    idle = spawn_b(idle_b, NULL);
    assert_int_equal(edist_monitor(idle, &ref), 0);
    assert_int_equal(edist_demonitor(&ref, 0), 1);
    edist_buf k = term("kill");
    assert_int_equal(edist_exit_signal(idle, k.data, k.len), 0);
    assert_int_equal(recv_down(&ref, 100, &reason), EDIST_ETIMEDOUT);

    /* links across: the remote process's exit reaches a trapping main */
    edist_trap_exit(true);
    edist_procid later = spawn_b(exit_later, "{link_reason, 7}");
    assert_int_equal(edist_link(later), 0);
    assert_int_equal(recv_bound("{'EXIT', P, {link_reason, 7}}", "P", enc_pid(&e, later), 5000,
                                &m),
                     0);
    /* link to a dead remote pid: noproc */
    assert_int_equal(edist_link(idle), 0);
    assert_int_equal(recv_bound("{'EXIT', P, noproc}", "P", enc_pid(&e, idle), 5000, &m), 0);
    /* unlink: the exit no longer reaches us */
    later = spawn_b(exit_later, "{link_reason, 8}");
    assert_int_equal(edist_link(later), 0);
    assert_int_equal(edist_unlink(later), 0);
    assert_int_equal(recv_text("{'EXIT', _, {link_reason, 8}}", 200, &m), EDIST_ETIMEDOUT);
    /* exit/2 from b@host to main */
    spawn_b(exit2_sender, &g_main);
    assert_int_equal(recv_text("{'EXIT', _, {from_b}}", 5000, &m), 0);
    /* main dies -> linked remote process dies (not trapping) */
    edist_trap_exit(false);
    edist_buf_free(&k);
}

static void test_spawn_request(void **state)
{
    (void)state;
    assert_int_equal(edist_export_function(B.rt, "t", "hello", 1, ex_hello, NULL), 0);
    uint8_t out[128];
    edist_buf b;
    edist_buf_init_fixed(&b, out, sizeof out);
    edist_enc_list(&b, 1);
    edist_enc_procid(&b, g_main);
    edist_enc_nil(&b);
    edist_spawn_opts o = {.monitor = true};
    edist_procid pid;
    edist_ref ref;
    edist_term_view m, reason;
    assert_int_equal(
        edist_spawn_remote("b@host", "t", "hello", b.data, b.len, &o, 5000, &pid, &ref), 0);
    assert_int_equal(pid.node, B.index);
    assert_int_equal(recv_text("{hello_from, 'b@host'}", 5000, &m), 0);
    assert_int_equal(recv_down(&ref, 5000, &reason), 0);
    assert_true(reason_is(reason, "normal"));
    /* unknown function: spawned, exits undef */
    assert_int_equal(
        edist_spawn_remote("b@host", "t", "nope", b.data, b.len, &o, 5000, &pid, &ref), 0);
    assert_int_equal(recv_down(&ref, 5000, &reason), 0);
    assert_true(like(reason, "{undef, [{t, nope, [_], []}]}"));
    /* bad arguments: an error reply */
    edist_buf bad = term("[x | y]");
    assert_int_equal(edist_spawn_remote("b@host", "t", "hello", bad.data, bad.len, NULL, 5000,
                                        &pid, &ref),
                     EDIST_ETYPE);
    edist_buf_free(&bad);
    /* on this node, the same call works locally */
    assert_int_equal(edist_export_function(A.rt, "t", "hello", 1, ex_hello, NULL), 0);
    assert_int_equal(edist_spawn_remote(NULL, "t", "hello", b.data, b.len, &o, 5000, &pid, &ref),
                     0);
    assert_int_equal(recv_text("{hello_from, 'a@host'}", 5000, &m), 0);
    assert_int_equal(recv_down(&ref, 5000, &reason), 0);
}

static void test_node_down(void **state)
{
    (void)state;
    edist_ref r1, r2;
    edist_term_view m;
    enc_small e;
    edist_procid linked = spawn_b(idle_b, NULL);
    edist_procid watched = spawn_b(idle_b, NULL);
    edist_procid named = spawn_b(echo_b, NULL);
    edist_procid watcher_b = spawn_b(watch_main, &g_main);
    (void)named;
    (void)watcher_b;
    usleep(20000);
    edist_trap_exit(true);
    assert_int_equal(edist_link(linked), 0);
    assert_int_equal(edist_monitor(watched, &r1), 0);
    assert_int_equal(edist_monitor_name("echo_b", "b@host", &r2), 0);
    usleep(20000);
    /* the connection goes down: each side hears it */
    atomic_store(&connected, 0);
    sig *da = sig_new(S_NODE_DOWN), *db = sig_new(S_NODE_DOWN);
    da->node = B.index;
    da->to = &A;
    db->node = A.index;
    db->to = &B;
    assert_int_equal(edi_loop_post(A.loop, deliver, da), 0);
    assert_int_equal(edi_loop_post(B.loop, deliver, db), 0);
    assert_int_equal(recv_bound("{'EXIT', P, noconnection}", "P", enc_pid(&e, linked), 5000, &m),
                     0);
    assert_int_equal(recv_bound("{'DOWN', R, process, _, noconnection}", "R", enc_ref(&e, &r1),
                                5000, &m),
                     0);
    assert_int_equal(recv_text("{'DOWN', _, process, {echo_b, 'b@host'}, noconnection}", 5000, &m),
                     0);
    /* b@host's process that watched main heard it too */
    edist_procid p;
    int rc = EDIST_ENOTFOUND;
    for (int i = 0; i < 100 && rc != 0; i++) {
        usleep(10000);
        rc = edist_runtime_whereis(B.rt, "saw_down", &p);
    }
    assert_int_equal(rc, 0);
    /* on b@host, the process linked to main got noconnection too (and it
     * does not trap exits); the merely watched one lives on */
    assert_false(edist_runtime_is_alive(B.rt, linked));
    assert_true(edist_runtime_is_alive(B.rt, watched));
    /* with the connection down, a monitor fires at once */
    assert_int_equal(edist_monitor(watched, &r1), 0);
    assert_int_equal(recv_down(&r1, 5000, NULL), 0);
    edist_trap_exit(false);
}

/* More links and monitors to one node than fit the first gathering batch:
 * every one must hear noconnection (none skipped, none twice). */
static void test_node_down_many(void **state)
{
    (void)state;
    enum { N = 100 };
    edist_ref refs[N];
    edist_term_view m;
    edist_trap_exit(true);
    for (int i = 0; i < N; i++) {
        assert_int_equal(edist_link(spawn_b(idle_b, NULL)), 0);
        assert_int_equal(edist_monitor(spawn_b(idle_b, NULL), &refs[i]), 0);
    }
    usleep(50000);
    atomic_store(&connected, 0);
    sig *d = sig_new(S_NODE_DOWN);
    d->node = B.index;
    d->to = &A;
    assert_int_equal(edi_loop_post(A.loop, deliver, d), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(recv_text("{'EXIT', _, noconnection}", 5000, &m), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(recv_down(&refs[i], 5000, NULL), 0);
    /* and nothing more: each fired once */
    assert_int_equal(recv_text("{'EXIT', _, noconnection}", 100, &m), EDIST_ETIMEDOUT);
    edist_trap_exit(false);
}

static void post_node_down(side *to, uint32_t node)
{
    sig *d = sig_new(S_NODE_DOWN);
    d->node = node;
    d->to = to;
    assert_int_equal(edi_loop_post(to->loop, deliver, d), 0);
}

static void *node_down_later(void *arg)
{
    (void)arg;
    usleep(100000);
    atomic_store(&connected, 0);
    post_node_down(&A, B.index);
    return NULL;
}

/* A spawn_request whose node goes down before it replies fails at once
 * with noconnection (as erts answers), not at the caller's timeout; a
 * late reply to it is dropped. */
static void test_spawn_request_node_down(void **state)
{
    (void)state;
    edist_term_view m;
    enc_small e;
    edist_buf args = term("[]");
    atomic_store(&swallow_spawns, 1);
    edist_ref req;
    edist_spawn_opts o = {.monitor = true, .link = true};
    assert_int_equal(edist_spawn_request("b@host", "t", "f", args.data, args.len, &o, &req), 0);
    /* b@host never answers: nothing yet */
    assert_int_equal(recv_text("{spawn_reply, _, _, _}", 100, &m), EDIST_ETIMEDOUT);
    uint64_t t0 = now_ms();
    atomic_store(&connected, 0);
    post_node_down(&A, B.index);
    assert_int_equal(recv_bound("{spawn_reply, R, error, noconnection}", "R", enc_ref(&e, &req),
                                5000, &m),
                     0);
    assert_true(now_ms() - t0 < 1000);
    /* a late reply for it (stale) does not reach the caller again */
    sig *late = sig_new(S_SPAWN_REPLY);
    late->to = &A;
    late->target = g_main;
    late->ref = req;
    late->ok = false;
    late->data = rc_new("\x77\x06" "badarg", 8);
    assert_int_equal(edi_loop_post(A.loop, deliver, late), 0);
    assert_int_equal(recv_text("{spawn_reply, _, _, _}", 100, &m), EDIST_ETIMEDOUT);

    /* spawn_monitor/4 (edist_spawn_remote) blocked on the reply returns as
     * soon as the node goes down, long before its timeout, and as Erlang:
     * a local pid that exits noconnection, monitored with the request id */
    atomic_store(&connected, 1);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, node_down_later, NULL), 0);
    edist_procid pid;
    edist_spawn_opts mon = {.monitor = true};
    edist_term_view reason;
    t0 = now_ms();
    assert_int_equal(
        edist_spawn_remote("b@host", "t", "f", args.data, args.len, &mon, 10000, &pid, &req), 0);
    assert_true(now_ms() - t0 < 5000);
    pthread_join(t, NULL);
    assert_int_equal(pid.node, A.index);
    assert_int_equal(recv_down(&req, 5000, &reason), 0);
    assert_true(reason_is(reason, "noconnection"));
    /* spawn_link/4 to a node that cannot be reached at all: the link
     * breaks with noconnection (trapped here) */
    atomic_store(&swallow_spawns, 0);
    edist_trap_exit(true);
    edist_spawn_opts lnk = {.link = true};
    assert_int_equal(
        edist_spawn_remote("b@host", "t", "f", args.data, args.len, &lnk, 10000, &pid, NULL), 0);
    assert_int_equal(recv_bound("{'EXIT', P, noconnection}", "P", enc_pid(&e, pid), 5000, &m),
                     0);
    edist_trap_exit(false);
    atomic_store(&swallow_spawns, 0);
    edist_buf_free(&args);
}

/* Reports the first message it gets (trapping exits) to main as
 * {got, Msg}. */
static void report_one(void *arg)
{
    (void)arg;
    edist_trap_exit(true);
    edist_term_view m;
    if (edist_receive(NULL, NULL, -1, &m) != 0)
        return;
    edist_buf b;
    edist_buf_init(&b);
    edist_enc_tuple(&b, 2);
    edist_enc_atom(&b, "got", 3);
    edist_enc_raw(&b, m.ptr, m.len);
    edist_send(g_main, b.data, b.len);
    edist_buf_free(&b);
}

/* spawn_request_abandon: true once, then false; the late reply reaches
 * nobody, and the process created with the link option gets an exit
 * signal `abandoned` from the requester. */
static void test_spawn_request_abandon(void **state)
{
    (void)state;
    edist_term_view m;
    enc_small e;
    edist_buf args = term("[]");
    atomic_store(&swallow_spawns, 1);
    edist_ref req;
    edist_spawn_opts o = {.monitor = true, .link = true};
    assert_int_equal(edist_spawn_request("b@host", "t", "f", args.data, args.len, &o, &req), 0);
    assert_int_equal(edist_spawn_request_abandon(&req), 1);
    assert_int_equal(edist_spawn_request_abandon(&req), 0);
    /* b@host's answer comes late: its new process is linked to us */
    edist_procid child = spawn_b(report_one, NULL);
    sig *link = sig_new(S_LINK);
    link->to = &B;
    link->from = g_main;
    link->target = child;
    assert_int_equal(edi_loop_post(B.loop, deliver, link), 0);
    sig *late = sig_new(S_SPAWN_REPLY);
    late->to = &A;
    late->target = g_main;
    late->ref = req;
    late->ok = true;
    late->from = child;
    late->flags = EDI_SPAWN_LINK | EDI_SPAWN_MONITOR;
    assert_int_equal(edi_loop_post(A.loop, deliver, late), 0);
    assert_int_equal(recv_bound("{got, {'EXIT', P, abandoned}}", "P", enc_pid(&e, g_main), 5000,
                                &m),
                     0);
    assert_int_equal(recv_text("{spawn_reply, _, _, _}", 100, &m), EDIST_ETIMEDOUT);
    /* a request already answered is not outstanding */
    atomic_store(&swallow_spawns, 0);
    assert_int_equal(edist_export_function(B.rt, "t", "f", 0, ex_nothing, NULL), 0);
    assert_int_equal(edist_spawn_request("b@host", "t", "f", args.data, args.len, NULL, &req), 0);
    assert_int_equal(recv_bound("{spawn_reply, R, ok, _}", "R", enc_ref(&e, &req), 5000, &m), 0);
    assert_int_equal(edist_spawn_request_abandon(&req), 0);
    edist_buf_free(&args);
}

/* {reply, Reply}: which replies reach the caller, on another node and on
 * this one; a monitor is set up whether or not the success is told. */
static void test_spawn_request_reply_option(void **state)
{
    (void)state;
    edist_term_view m, reason;
    enc_small e;
    edist_buf args = term("[]");
    edist_ref req;
    assert_int_equal(edist_export_function(A.rt, "t", "f", 0, ex_nothing, NULL), 0);
    assert_int_equal(edist_export_function(B.rt, "t", "f", 0, ex_nothing, NULL), 0);
    const char *nodes[] = {"b@host", NULL};
    for (int i = 0; i < 2; i++) {
        edist_spawn_opts no = {.monitor = true, .reply = EDIST_SPAWN_REPLY_NO};
        assert_int_equal(
            edist_spawn_request(nodes[i], "t", "f", args.data, args.len, &no, &req), 0);
        assert_int_equal(recv_down(&req, 5000, &reason), 0);
        assert_true(reason_is(reason, "normal"));
        assert_int_equal(recv_text("{spawn_reply, _, _, _}", 50, &m), EDIST_ETIMEDOUT);
        edist_spawn_opts err_only = {.reply = EDIST_SPAWN_REPLY_ERROR_ONLY};
        assert_int_equal(
            edist_spawn_request(nodes[i], "t", "f", args.data, args.len, &err_only, &req), 0);
        assert_int_equal(recv_text("{spawn_reply, _, _, _}", 100, &m), EDIST_ETIMEDOUT);
        edist_spawn_opts ok_only = {.reply = EDIST_SPAWN_REPLY_SUCCESS_ONLY};
        assert_int_equal(
            edist_spawn_request(nodes[i], "t", "f", args.data, args.len, &ok_only, &req), 0);
        assert_int_equal(recv_bound("{spawn_reply, R, ok, _}", "R", enc_ref(&e, &req), 5000, &m),
                         0);
    }
    /* failures: error_only tells, success_only does not */
    atomic_store(&connected, 0);
    edist_spawn_opts err_only = {.reply = EDIST_SPAWN_REPLY_ERROR_ONLY};
    assert_int_equal(edist_spawn_request("b@host", "t", "f", args.data, args.len, &err_only, &req),
                     0);
    assert_int_equal(
        recv_bound("{spawn_reply, R, error, noconnection}", "R", enc_ref(&e, &req), 5000, &m), 0);
    edist_spawn_opts ok_only = {.reply = EDIST_SPAWN_REPLY_SUCCESS_ONLY};
    assert_int_equal(edist_spawn_request("b@host", "t", "f", args.data, args.len, &ok_only, &req),
                     0);
    assert_int_equal(recv_text("{spawn_reply, _, _, _}", 100, &m), EDIST_ETIMEDOUT);
    edist_spawn_opts bad = {.reply = (edist_spawn_reply)7};
    assert_int_equal(edist_spawn_request("b@host", "t", "f", args.data, args.len, &bad, &req),
                     EDIST_EINVAL);
    atomic_store(&connected, 1);
    edist_buf_free(&args);
}

/* Monitors the pid it is given, says so, and waits. */
static void monitor_it(void *arg)
{
    edist_procid *who = arg;
    edist_ref ref;
    edist_monitor(*who, &ref);
    send_text(g_main, "monitoring");
    idle_b(NULL);
}

/* Monitors b's pid it is given, says so, waits for `go`, then exits. */
static void monitor_then_exit(void *arg)
{
    edist_procid *who = arg;
    edist_ref ref;
    edist_monitor(*who, &ref);
    send_text(g_main, "monitoring");
    recv_text("go", -1, NULL);
}

/* A hook that takes its node down inside itself (a peer that does not
 * read, past its queue's bound) ran the runtime's node down while the
 * caller still held the monitor it was telling the peer about: that
 * monitor was freed twice, and DOWN or EXIT noconnection came twice (or
 * for a monitor being removed), and a spawn_request failed although
 * answered. Each case: one answer, no second, nothing freed twice
 * (ASan). */
static void test_node_down_inside_hooks(void **state)
{
    (void)state;
    edist_ref ref;
    edist_term_view m;
    enc_small e;
    edist_procid idle = spawn_b(idle_b, NULL);
    edist_trap_exit(true);

    /* monitor: one DOWN noconnection */
    atomic_store(&down_in_hook, 1);
    assert_int_equal(edist_monitor(idle, &ref), 0);
    assert_int_equal(recv_text("{'DOWN', _, process, _, noconnection}", 1000, &m), 0);
    assert_int_equal(edist_receive(NULL, NULL, 200, &m), EDIST_ETIMEDOUT);

    /* link: one EXIT noconnection */
    assert_int_equal(edist_link(idle), 0);
    assert_int_equal(recv_bound("{'EXIT', P, noconnection}", "P", enc_pid(&e, idle), 1000, &m),
                     0);
    assert_int_equal(edist_receive(NULL, NULL, 200, &m), EDIST_ETIMEDOUT);

    /* demonitor: the monitor goes quietly, no DOWN for it */
    atomic_store(&down_in_hook, 0);
    assert_int_equal(edist_monitor(idle, &ref), 0);
    atomic_store(&down_in_hook, 1);
    assert_int_equal(edist_demonitor(&ref, 0), 1);
    assert_int_equal(edist_receive(NULL, NULL, 200, &m), EDIST_ETIMEDOUT);

    /* spawn_request: accepted, answered noconnection once */
    edist_ref req;
    static const char nil[] = "\x6a";
    assert_int_equal(edist_spawn_request("b@host", "t", "f", nil, 1, NULL, &req), 0);
    assert_int_equal(recv_text("{spawn_reply, _, error, noconnection}", 1000, &m), 0);
    assert_int_equal(edist_receive(NULL, NULL, 200, &m), EDIST_ETIMEDOUT);

    /* a process of a@host ends holding a monitor of b's pid, and one of
     * its own watched from b@host: both told through the failing hooks */
    atomic_store(&down_in_hook, 0);
    edist_procid p;
    assert_int_equal(edist_runtime_spawn(A.rt, monitor_then_exit, &idle, NULL, &p), 0);
    assert_int_equal(recv_text("monitoring", 5000, &m), 0);
    static edist_procid watched;
    watched = p;
    spawn_b(monitor_it, &watched);
    assert_int_equal(recv_text("monitoring", 5000, &m), 0);
    usleep(20000);
    atomic_store(&down_in_hook, 1);
    assert_int_equal(send_text(p, "go"), 0);
    for (int i = 0; i < 200 && edist_runtime_is_alive(A.rt, p); i++)
        usleep(5000);
    assert_false(edist_runtime_is_alive(A.rt, p));
    atomic_store(&down_in_hook, 0);
    /* a@host still works with b@host */
    edist_procid other = spawn_b(idle_b, NULL);
    edist_term_view reason;
    assert_int_equal(edist_monitor(other, &ref), 0);
    edist_buf k = term("kill");
    assert_int_equal(edist_exit_signal(other, k.data, k.len), 0);
    edist_buf_free(&k);
    assert_int_equal(recv_down(&ref, 5000, &reason), 0);
    assert_true(reason_is(reason, "killed"));
    edist_trap_exit(false);
}

int main(void)
{
    g_never = pattern("never");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_monitors_and_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spawn_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_down_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spawn_request_node_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spawn_request_abandon, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spawn_request_reply_option, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_down_inside_hooks, setup, teardown),
    };
    int rc = cmocka_run_group_tests_name("runtime_hooks", tests, NULL, NULL);
    edist_pattern_free(g_never);
    return rc;
}
