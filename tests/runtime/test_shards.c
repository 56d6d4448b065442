/* SPDX-License-Identifier: Apache-2.0 */
/* A runtime of two shards (issue 9): Erlang's guarantees between processes
 * of different shards exactly as within one.
 *
 *   order      10,000 numbered messages from a process on shard 0 to one
 *              on shard 1 arrive in order, through rings small enough to
 *              fill (the sender is held back, nothing is lost), and the
 *              sender's exit signal arrives after the last of them
 *   links      link, EXIT to a trapping process, a non-trapping one dying
 *              of a linked exit, unlink, noproc for a dead pid, exit/2
 *   monitors   DOWN with the reason, DOWN noproc, by registered name,
 *              demonitor
 *   alive      is_process_alive after exit(Pid, kill) sent from the same
 *              process: false (the question follows the signal)
 *   names      one table for every shard: register (also another shard's
 *              process), whereis, send by name, dropped at exit
 *   mailbox    a full mailbox on the other shard holds the sender back
 *              and loses nothing; two processes whose full mailboxes hold
 *              each other's rings are not held (EAGAIN), and finish
 *   threads    attached threads spread over the shards and talk in order;
 *              the shard counters
 *   node down  a link, a monitor and a spawn request for another node, on
 *              their way to shard 0 when that node goes down, end with
 *              noconnection and are not handed to the network after it
 *
 * Processes are placed on a given shard with the runtime's internal
 * edi_rt_spawn_here (edist_runtime_spawn spreads them round robin). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* cmocka needs the headers above first */
#include <cmocka.h>

#include "proc_test_util.h"
#include "runtime/runtime_internal.h"

static edist_runtime *rt;
static edist_procid g_main;

#define RING_ENTRIES 64u /* small: rings fill and the backlogs work */
#define ORDER_COUNT 10000

static int setup(void **state)
{
    (void)state;
    g_fail[0] = '\0';
    edist_runtime_config cfg;
    edist_runtime_config_init(&cfg);
    cfg.shards = 2;
    cfg.shard_ring_entries = RING_ENTRIES;
    if (edist_runtime_start(&cfg, &rt) != 0) {
        fprintf(stderr, "runtime_start: %s\n", edist_last_error());
        return -1;
    }
    if (edist_proc_attach_thread(rt, 0, &g_main) != 0) {
        fprintf(stderr, "attach: %s\n", edist_last_error());
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    edist_proc_detach_thread(NULL, 0);
    edist_runtime_stop(rt);
    rt = NULL;
    return 0;
}

static uint32_t shard_of(edist_procid pid)
{
    return edi_rt_owner(rt, pid)->shard;
}

static edist_procid spawn_on(uint32_t shard, edist_proc_fn fn, void *arg)
{
    edist_procid pid;
    assert_int_equal(edi_rt_spawn_here(rt->g->rt[shard], fn, arg, &pid), 0);
    assert_int_equal(shard_of(pid), shard);
    return pid;
}

/* exit(Atom): encoded on the stack, which a green exit abandons (a heap
 * buffer would leak). */
static void exit_atom(const char *atom)
{
    uint8_t mem[64];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    edist_enc_atomz(&b, atom);
    edist_exit(b.data, b.len);
}

static void done(void)
{
    send_text(g_main, "done");
}

/* Wait for `done` from the test's processes, then report their failures. */
static void wait_done(int count)
{
    for (int i = 0; i < count; i++) {
        int rc = recv_text("done", 60000, NULL);
        if (g_fail[0])
            fail_msg("%s", g_fail);
        assert_int_equal(rc, 0);
    }
    if (g_fail[0])
        fail_msg("%s", g_fail);
}

static int send_int_pair(edist_procid to, const char *tag, int64_t n)
{
    uint8_t mem[64];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    edist_enc_tuple(&b, 2);
    edist_enc_atomz(&b, tag);
    edist_enc_int(&b, n);
    return edist_send(to, b.data, b.len);
}

static int send_pid_pair(edist_procid to, const char *tag, edist_procid pid)
{
    uint8_t mem[128];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    edist_enc_tuple(&b, 2);
    edist_enc_atomz(&b, tag);
    edist_enc_procid(&b, pid);
    return edist_send(to, b.data, b.len);
}

/* The pid in a {Tag, Pid} message (waits for it). */
static edist_procid recv_pid(const char *tag_pattern)
{
    edist_term_view m;
    edist_procid pid = EDIST_PROCID_NULL;
    if (recv_text(tag_pattern, 10000, &m) != 0)
        return pid;
    edist_cursor c;
    uint32_t n;
    edist_atom a;
    edist_cursor_init(&c, m.ptr, m.len);
    if (edist_dec_tuple(&c, &n) == 0 && n == 2 && edist_dec_atom(&c, &a) == 0)
        edist_dec_procid(&c, &pid);
    return pid;
}

/* ---- order ------------------------------------------------------------------ */

static edist_procid order_receiver_pid;

/* Shard 1: 10,000 {seq, N} in order, then the sender's EXIT. It first
 * keeps its shard busy (no yield: the shard does not take its rings) until
 * the sender has been held back, so that the ring fills and the backlog
 * and the hold are exercised whatever the speed of each side. */
static void order_receiver(void *arg)
{
    (void)arg;
    edist_trap_exit(true);
    uint64_t deadline = now_ms() + 20000;
    for (;;) {
        edist_runtime_stats s0;
        if (edist_runtime_get_shard_stats(edist_self_runtime(), 0, &s0) == 0 &&
            s0.shard_senders_held > 0)
            break;
        if (now_ms() > deadline) {
            CHECK(!"the sender was never held back");
            break;
        }
    }
    edist_pattern *p = pattern("{seq, N}");
    int idx = edist_pattern_var_index(p, "N");
    int64_t expect = 1;
    for (int i = 0; i < ORDER_COUNT; i++) {
        edist_term_view vars[2] = {{0}}, m;
        if (edist_receive(p, vars, 30000, &m) != 0) {
            CHECK(!"a numbered message did not arrive");
            break;
        }
        edist_cursor c;
        int64_t n = -1;
        edist_cursor_init(&c, vars[idx].ptr, vars[idx].len);
        edist_dec_int64(&c, &n);
        if (n != expect) {
            char what[128];
            snprintf(what, sizeof what, "message %lld arrived where %lld was due",
                     (long long)n, (long long)expect);
            fail_at(__FILE__, __LINE__, what);
            break;
        }
        expect++;
    }
    edist_pattern_free(p);
    /* The sender's exit signal, sent after its last message, comes after
     * it: nothing else is in the mailbox before it. */
    edist_term_view m;
    CHECK(edist_receive(NULL, NULL, 30000, &m) == 0 && like(m, "{'EXIT', _, all_sent}"));
    CHECK(expect == ORDER_COUNT + 1);
    done();
}

/* Shard 0: link, 10,000 messages without a pause, exit. */
static void order_sender(void *arg)
{
    (void)arg;
    CHECK_RC(edist_link(order_receiver_pid), 0);
    for (int i = 1; i <= ORDER_COUNT; i++)
        CHECK_RC(send_int_pair(order_receiver_pid, "seq", i), 0);
    done();
    exit_atom("all_sent");
}

static void test_order_across_shards(void **state)
{
    (void)state;
    order_receiver_pid = spawn_on(1, order_receiver, NULL);
    spawn_on(0, order_sender, NULL);
    wait_done(2);
    edist_runtime_stats st, s0, s1;
    assert_int_equal(edist_runtime_get_stats(rt, &st), 0);
    assert_int_equal(st.shards, 2);
    assert_int_equal(edist_runtime_get_shard_stats(rt, 0, &s0), 0);
    assert_int_equal(edist_runtime_get_shard_stats(rt, 1, &s1), 0);
    assert_int_equal(edist_runtime_get_shard_stats(rt, 2, &s1), EDIST_EINVAL);
    assert_int_equal(edist_runtime_get_shard_stats(rt, 1, &s1), 0);
    /* Every message crossed on a ring; a ring of 64 filled and the sender
     * was held back rather than anything dropped. */
    assert_true(s0.shard_records_sent >= ORDER_COUNT);
    assert_true(s1.shard_records_received >= ORDER_COUNT);
    assert_true(s0.shard_ring_full > 0);
    assert_true(s0.shard_senders_held > 0);
    assert_int_equal(st.messages_dropped, 0);
    assert_int_equal(st.shard_records_sent, st.shard_records_received);
}

/* ---- links ---------------------------------------------------------------------- */

/* Shard 1: {die, Reason} -> exit with Reason; bye first when asked. */
static void dier(void *arg)
{
    (void)arg;
    edist_term_view m;
    for (;;) {
        if (edist_receive(NULL, NULL, 30000, &m) != 0)
            return;
        if (like(m, "{die, _}")) {
            edist_cursor c;
            uint32_t n;
            edist_term_view tag, reason;
            edist_cursor_init(&c, m.ptr, m.len);
            edist_dec_tuple(&c, &n);
            edist_dec_term(&c, &tag);
            edist_dec_term(&c, &reason);
            edist_exit(reason.ptr, reason.len);
        }
        if (like(m, "{bye_to, _}")) {
            edist_procid to = EDIST_PROCID_NULL;
            edist_cursor c;
            uint32_t n;
            edist_atom a;
            edist_cursor_init(&c, m.ptr, m.len);
            edist_dec_tuple(&c, &n);
            edist_dec_atom(&c, &a);
            edist_dec_procid(&c, &to);
            send_text(to, "bye");
            exit_atom("foo");
        }
    }
}

static edist_procid dier_on_1(void)
{
    return spawn_on(1, dier, NULL);
}

static edist_procid dead_on_1(void)
{
    edist_procid p = spawn_on(1, dier, NULL);
    edist_ref ref;
    assert_int_equal(edist_monitor(p, &ref), 0);
    assert_int_equal(send_text(p, "{die, gone}"), 0);
    assert_int_equal(recv_down(&ref, 10000, NULL), 0);
    return p;
}

typedef struct link_job {
    edist_procid b, c, d, dead;
} link_job;

/* Shard 0. */
static void links_body(void *arg)
{
    link_job *j = arg;
    CHECK(edist_trap_exit(true) == 0);
    /* EXIT from a linked process on the other shard */
    CHECK_RC(edist_link(j->b), 0);
    CHECK_RC(send_text(j->b, "{die, boom}"), 0);
    CHECK(recv_text("{'EXIT', _, boom}", 10000, NULL) == 0);
    /* a dead pid of the other shard: trapping, {'EXIT', Pid, noproc}... */
    CHECK_RC(edist_link(j->dead), 0);
    CHECK(recv_text("{'EXIT', _, noproc}", 10000, NULL) == 0);
    /* ... not trapping, the noproc error at once, as within a shard */
    CHECK(edist_trap_exit(false) == 1);
    CHECK_RC(edist_link(j->dead), EDIST_ENOTFOUND);
    CHECK(edist_trap_exit(true) == 0);
    /* unlinked before its exit: nothing comes after its last message */
    CHECK_RC(edist_link(j->c), 0);
    CHECK_RC(edist_unlink(j->c), 0);
    CHECK_RC(send_pid_pair(j->c, "bye_to", edist_self()), 0);
    CHECK(recv_text("bye", 10000, NULL) == 0);
    CHECK(recv_text("{'EXIT', _, _}", 300, NULL) == EDIST_ETIMEDOUT);
    /* exit/2 kill, untrappable, across shards */
    edist_ref ref;
    CHECK_RC(edist_monitor(j->d, &ref), 0);
    edist_buf k = term("kill");
    CHECK_RC(edist_exit_signal(j->d, k.data, k.len), 0);
    edist_buf_free(&k);
    edist_term_view why;
    CHECK(recv_down(&ref, 10000, &why) == 0 && like(why, "killed"));
    done();
}

/* Shard 1, not trapping: linked to a shard-0 process that ends with boom. */
static void linked_victim(void *arg)
{
    edist_procid *partner = arg;
    CHECK_RC(edist_link(*partner), 0);
    send_text(g_main, "linked");
    edist_term_view m;
    edist_receive(NULL, NULL, 30000, &m); /* killed before */
    CHECK(!"the victim outlived its link");
}

static void test_links_across_shards(void **state)
{
    (void)state;
    link_job j = {dier_on_1(), dier_on_1(), dier_on_1(), dead_on_1()};
    spawn_on(0, links_body, &j);
    wait_done(1);
    /* A non-trapping process dies of its partner's exit on the other shard. */
    edist_procid partner = spawn_on(0, dier, NULL);
    edist_procid victim = spawn_on(1, linked_victim, &partner);
    assert_int_equal(recv_text("linked", 10000, NULL), 0);
    edist_ref ref;
    assert_int_equal(edist_monitor(victim, &ref), 0);
    assert_int_equal(send_text(partner, "{die, boom}"), 0);
    edist_term_view why;
    assert_int_equal(recv_down(&ref, 10000, &why), 0);
    assert_true(like(why, "boom"));
    if (g_fail[0])
        fail_msg("%s", g_fail);
}

/* A's unlink of B waits in ring 0->1 while B unlinks A and links again:
 * as erts, A's link stays, inactive, until B acknowledges the unlink, so
 * B's LINK finds it and is ignored; B's re-link is undone by A's unlink
 * when it comes. Both end unlinked, and a new link from A holds. edist
 * dropped A's link at once: B's LINK set it again on A's side only, and
 * A's next link was a no-op that B never heard of. */
static _Atomic int cross_go, cross_done;

/* Shard 1, trapping: {peer, A} -> ready; holds its shard (A's unlink
 * stays in the ring) until A has unlinked; unlinks A and links again. */
static void cross_b(void *arg)
{
    (void)arg;
    CHECK(edist_trap_exit(true) == 0);
    edist_procid a = recv_pid("{peer, _}");
    CHECK(!edist_procid_is_null(a));
    CHECK_RC(send_text(a, "ready"), 0);
    while (!atomic_load(&cross_go))
        ; /* green and not yielding: shard 1 reads no ring */
    CHECK_RC(edist_unlink(a), 0);
    CHECK_RC(edist_link(a), 0);
    atomic_store(&cross_done, 1);
    CHECK(recv_text("ping", 10000, NULL) == 0);
    CHECK_RC(send_text(a, "pong"), 0);
    CHECK(recv_text("{'EXIT', _, _}", 300, NULL) == EDIST_ETIMEDOUT);
    CHECK(recv_text("{die, _}", 10000, NULL) == 0);
    exit_atom("probe");
}

/* Shard 0, trapping. */
static void cross_a(void *arg)
{
    edist_procid b = *(edist_procid *)arg;
    CHECK(edist_trap_exit(true) == 0);
    CHECK_RC(edist_link(b), 0);
    CHECK_RC(send_pid_pair(b, "peer", edist_self()), 0);
    CHECK(recv_text("ready", 10000, NULL) == 0);
    CHECK_RC(edist_unlink(b), 0);
    atomic_store(&cross_go, 1);
    while (!atomic_load(&cross_done))
        ;
    /* B's unlink and link, then (after A's unlink reached B) its ack,
     * then the pong */
    CHECK_RC(send_text(b, "ping"), 0);
    CHECK(recv_text("pong", 10000, NULL) == 0);
    CHECK(recv_text("{'EXIT', _, _}", 300, NULL) == EDIST_ETIMEDOUT);
    /* unlinked on both sides: a new link is made and holds */
    CHECK_RC(edist_link(b), 0);
    CHECK_RC(send_text(b, "{die, probe}"), 0);
    CHECK(recv_text("{'EXIT', _, probe}", 10000, NULL) == 0);
    done();
}

static void test_unlink_crossing_across_shards(void **state)
{
    (void)state;
    atomic_store(&cross_go, 0);
    atomic_store(&cross_done, 0);
    edist_procid b = spawn_on(1, cross_b, NULL);
    spawn_on(0, cross_a, &b);
    wait_done(1);
}

/* ---- monitors -------------------------------------------------------------------------- */

static void monitors_body(void *arg)
{
    link_job *j = arg;
    edist_ref r1, r2, r3;
    edist_term_view why, m;
    /* by pid: DOWN with the reason */
    CHECK_RC(edist_monitor(j->b, &r1), 0);
    CHECK_RC(send_text(j->b, "{die, {shutdown, 7}}"), 0);
    CHECK(recv_down(&r1, 10000, &why) == 0 && like(why, "{shutdown, 7}"));
    /* a dead pid: DOWN noproc */
    CHECK_RC(edist_monitor(j->dead, &r2), 0);
    CHECK(recv_down(&r2, 10000, &why) == 0 && like(why, "noproc"));
    /* by registered name (on shard 1): DOWN names it */
    CHECK_RC(edist_register("shard1_named", j->c), 0);
    CHECK_RC(edist_monitor_name("shard1_named", NULL, &r3), 0);
    CHECK_RC(send_text(j->c, "{die, named_exit}"), 0);
    CHECK(recv_text("{'DOWN', _, process, {shard1_named, _}, named_exit}", 10000, &m) == 0);
    /* demonitor: no DOWN after it */
    edist_ref r4;
    CHECK_RC(edist_monitor(j->d, &r4), 0);
    CHECK_RC(edist_demonitor(&r4, 0), 1);
    CHECK_RC(send_text(j->d, "{die, unseen}"), 0);
    CHECK(recv_text("{'DOWN', _, _, _, unseen}", 300, NULL) == EDIST_ETIMEDOUT);
    done();
}

static void test_monitors_across_shards(void **state)
{
    (void)state;
    link_job j = {dier_on_1(), dier_on_1(), dier_on_1(), dead_on_1()};
    spawn_on(0, monitors_body, &j);
    wait_done(1);
    edist_procid pid;
    assert_int_equal(edist_runtime_whereis(rt, "shard1_named", &pid), EDIST_ENOTFOUND);
}

/* ---- is_process_alive ------------------------------------------------------------------ */

static void alive_body(void *arg)
{
    link_job *j = arg;
    CHECK(edist_is_process_alive(j->b));
    CHECK(!edist_is_process_alive(j->dead));
    /* The question travels behind the kill sent just before it. */
    edist_buf k = term("kill");
    CHECK_RC(edist_exit_signal(j->b, k.data, k.len), 0);
    edist_buf_free(&k);
    CHECK(!edist_is_process_alive(j->b));
    done();
}

static void test_alive_after_kill(void **state)
{
    (void)state;
    link_job j = {dier_on_1(), EDIST_PROCID_NULL, EDIST_PROCID_NULL, dead_on_1()};
    spawn_on(0, alive_body, &j);
    wait_done(1);
    /* The same from a thread process attached to the other shard than b. */
    link_job j2 = {spawn_on(shard_of(g_main) ^ 1, dier, NULL), EDIST_PROCID_NULL,
                   EDIST_PROCID_NULL, EDIST_PROCID_NULL};
    assert_true(edist_is_process_alive(j2.b));
    edist_buf k = term("kill");
    assert_int_equal(edist_exit_signal(j2.b, k.data, k.len), 0);
    edist_buf_free(&k);
    assert_false(edist_is_process_alive(j2.b));
}

/* ---- names ------------------------------------------------------------------------------ */

/* Shard 1: registers itself, answers {ping, From} with pong, then ends. */
static void named_server(void *arg)
{
    (void)arg;
    CHECK_RC(edist_register("srv_on_1", edist_self()), 0);
    send_text(g_main, "registered");
    edist_procid from = recv_pid("{ping, _}");
    send_text(from, "pong");
    recv_text("stop", 30000, NULL);
}

static void names_body(void *arg)
{
    edist_procid *other = arg;
    edist_procid pid;
    CHECK_RC(edist_whereis("srv_on_1", &pid), 0);
    CHECK(shard_of(pid) == 1);
    uint8_t mem[64];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    edist_enc_tuple(&b, 2);
    edist_enc_atomz(&b, "ping");
    edist_enc_procid(&b, edist_self());
    CHECK_RC(edist_send_name("srv_on_1", b.data, b.len), 0);
    CHECK(recv_text("pong", 10000, NULL) == 0);
    /* register a process of the other shard from here */
    CHECK_RC(edist_register("other_from_0", *other), 0);
    CHECK_RC(edist_register("other_again", *other), EDIST_EEXIST);
    CHECK_RC(edist_register("srv_on_1", edist_self()), EDIST_EEXIST);
    CHECK_RC(edist_whereis("other_from_0", &pid), 0);
    CHECK(edist_procid_equal(pid, *other));
    CHECK_RC(edist_send_name("other_from_0", "\x64\x00\x02hi", 5), 0);
    char **names = NULL;
    int64_t n = edist_registered(edist_self_runtime(), &names);
    int seen = 0;
    for (int64_t i = 0; i < n; i++)
        seen += !strcmp(names[i], "srv_on_1") || !strcmp(names[i], "other_from_0");
    edist_names_free(names, (size_t)n);
    CHECK(seen == 2);
    done();
}

static void test_names_node_wide(void **state)
{
    (void)state;
    edist_procid srv = spawn_on(1, named_server, NULL);
    assert_int_equal(recv_text("registered", 10000, NULL), 0);
    edist_procid other = spawn_on(1, dier, NULL);
    spawn_on(0, names_body, &other);
    wait_done(1);
    /* Names go with their processes, whichever shard registered them. */
    edist_ref r1, r2;
    assert_int_equal(edist_monitor(srv, &r1), 0);
    assert_int_equal(edist_monitor(other, &r2), 0);
    assert_int_equal(send_text(srv, "stop"), 0);
    assert_int_equal(send_text(other, "{die, normal}"), 0);
    assert_int_equal(recv_down(&r1, 10000, NULL), 0);
    assert_int_equal(recv_down(&r2, 10000, NULL), 0);
    edist_procid pid;
    assert_int_equal(edist_runtime_whereis(rt, "srv_on_1", &pid), EDIST_ENOTFOUND);
    assert_int_equal(edist_runtime_whereis(rt, "other_from_0", &pid), EDIST_ENOTFOUND);
}

/* ---- a full mailbox on the other shard ------------------------------------------------------ */

#define FLOOD_COUNT 1000

/* Set by the test: the receiver starts taking its messages (a message
 * could not tell it: its mailbox is full). */
static _Atomic int receive_go;

static void slow_receiver(void *arg)
{
    (void)arg;
    while (!atomic_load(&receive_go))
        edist_sleep_ms(2);
    edist_pattern *p = pattern("{n, N}");
    int idx = edist_pattern_var_index(p, "N");
    int64_t expect = 1;
    for (int i = 0; i < FLOOD_COUNT; i++) {
        edist_term_view vars[2] = {{0}}, m;
        if (edist_receive(p, vars, 30000, &m) != 0)
            break;
        edist_cursor c;
        int64_t n = -1;
        edist_cursor_init(&c, vars[idx].ptr, vars[idx].len);
        edist_dec_int64(&c, &n);
        if (n != expect)
            break;
        expect++;
    }
    edist_pattern_free(p);
    CHECK(expect == FLOOD_COUNT + 1);
    done();
}

static void flood_sender(void *arg)
{
    edist_procid *to = arg;
    for (int i = 1; i <= FLOOD_COUNT; i++)
        CHECK_RC(send_int_pair(*to, "n", i), 0);
    send_text(g_main, "flood_sent");
}

/* The setup's runtime again, with mailboxes of 10 messages, or (bytes >
 * 0) of that many bytes, at most. */
static void restart_mailboxes_grace(void **state, uint64_t bytes, uint32_t grace_ms)
{
    teardown(state);
    edist_runtime_config cfg;
    edist_runtime_config_init(&cfg);
    cfg.shards = 2;
    cfg.shard_ring_entries = RING_ENTRIES;
    cfg.receive_grace_ms = grace_ms;
    if (bytes)
        cfg.max_mailbox_bytes = bytes;
    else
        cfg.max_mailbox_messages = 10;
    assert_int_equal(edist_runtime_start(&cfg, &rt), 0);
    assert_int_equal(edist_proc_attach_thread(rt, 0, &g_main), 0);
}

static void restart_mailboxes(void **state, uint64_t bytes)
{
    restart_mailboxes_grace(state, bytes, 0);
}

static void restart_small_mailboxes(void **state)
{
    restart_mailboxes(state, 0);
}

static void test_full_mailbox_across_shards(void **state)
{
    (void)state;
    restart_small_mailboxes(state);
    atomic_store(&receive_go, 0);
    edist_procid recv = spawn_on(1, slow_receiver, NULL);
    spawn_on(0, flood_sender, &recv);
    /* The receiver takes nothing yet: its shard lets the ring wait, the
     * sender is held back and does not finish. */
    edist_runtime_stats s0, s1;
    for (int i = 0; i < 10000; i++) {
        assert_int_equal(edist_runtime_get_shard_stats(rt, 0, &s0), 0);
        assert_int_equal(edist_runtime_get_shard_stats(rt, 1, &s1), 0);
        if (s1.shard_ring_holds > 0 && s0.shard_senders_held > 0)
            break;
        usleep(1000);
    }
    assert_true(s1.shard_ring_holds > 0);
    assert_true(s0.shard_senders_held > 0);
    assert_int_equal(recv_text("flood_sent", 0, NULL), EDIST_ETIMEDOUT);
    atomic_store(&receive_go, 1);
    assert_int_equal(recv_text("flood_sent", 30000, NULL), 0);
    wait_done(1);
    edist_runtime_stats st;
    assert_int_equal(edist_runtime_get_stats(rt, &st), 0);
    assert_int_equal(st.messages_dropped, 0);
}

/* 11 messages {s, N} to a mailbox of 10: the last waits on the ring. */
static void send_eleven(edist_procid to)
{
    for (int i = 1; i <= 11; i++)
        CHECK_RC(send_int_pair(to, "s", i), 0);
}

/* Until the mailbox (of 10) is full and an 11th message waits on the
 * ring. */
static void wait_full_and_one(void)
{
    while (edist_mailbox_length() < 10)
        edist_sleep_ms(1);
    edist_sleep_ms(50);
}

/* The same for a selective receive: a process with a full mailbox waits
 * for {reply, _}, which comes on the ring behind a message it does not
 * match. It waited out its timeout (forever, with none). */
static void eleven_then_reply(void *arg)
{
    send_eleven(*(edist_procid *)arg);
    CHECK_RC(send_int_pair(*(edist_procid *)arg, "reply", 0), 0);
    done();
}

static _Atomic int64_t selective_waited_ms;

static void full_selective(void *arg)
{
    (void)arg;
    wait_full_and_one();
    edist_pattern *p = pattern("{reply, _}");
    edist_term_view m;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_RC(edist_receive(p, NULL, 10000, &m), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    atomic_store(&selective_waited_ms, (t1.tv_sec - t0.tv_sec) * 1000 +
                                           (t1.tv_nsec - t0.tv_nsec) / 1000000);
    edist_pattern_free(p);
    CHECK(edist_mailbox_length() == 11);
    done();
}

static void test_selective_receive_with_full_mailbox(void **state)
{
    restart_small_mailboxes(state);
    static edist_procid receiver;
    receiver = spawn_on(1, full_selective, NULL);
    spawn_on(0, eleven_then_reply, &receiver);
    wait_done(2);
    edist_runtime_stats st;
    assert_int_equal(edist_runtime_get_stats(rt, &st), 0);
    assert_int_equal(st.shard_past_soft_limit, 2);
    assert_int_equal(st.messages_dropped, 0);
}

/* The wait is the option receive_grace_time: the reply comes no sooner. */
static void test_selective_receive_grace_option(void **state)
{
    restart_mailboxes_grace(state, 0, 1500);
    static edist_procid receiver;
    receiver = spawn_on(1, full_selective, NULL);
    spawn_on(0, eleven_then_reply, &receiver);
    wait_done(2);
    /* whole milliseconds on both clocks: 1,499 may show */
    assert_true(atomic_load(&selective_waited_ms) >= 1400);
    edist_runtime_stats st;
    assert_int_equal(edist_runtime_get_stats(rt, &st), 0);
    assert_int_equal(st.shard_past_soft_limit, 2);
}

/* A thread's send that waits for a backed-up ring when the runtime stops
 * goes as to an ended process: its owned payload is released (a review
 * suspected the stop's last run of it waited again and leaked it). */
static _Atomic int owned_released;

static void count_release(void *owner, const void *term)
{
    (void)owner;
    (void)term;
    atomic_fetch_add(&owned_released, 1);
}

static void test_stop_with_thread_send_waiting(void **state)
{
    restart_small_mailboxes(state);
    atomic_store(&receive_go, 0);
    atomic_store(&owned_released, 0);
    static edist_procid recv;
    recv = spawn_on(1, slow_receiver, NULL);
    spawn_on(0, flood_sender, &recv);
    edist_runtime_stats s0;
    for (int i = 0; i < 10000; i++) {
        assert_int_equal(edist_runtime_get_shard_stats(rt, 0, &s0), 0);
        if (s0.shard_senders_held > 0)
            break;
        usleep(1000);
    }
    assert_true(s0.shard_senders_held > 0);
    /* this thread (a process of shard 0): its send waits for the ring */
    static const uint8_t term[] = {97, 1};
    assert_int_equal(edist_send_owned(recv, term, sizeof term, count_release, NULL), 0);
    usleep(20000);
    assert_int_equal(atomic_load(&owned_released), 0);
    /* stopped with this thread attached: its detach would wait for the
     * send, behind it */
    edist_runtime_stop(rt);
    rt = NULL;
    assert_int_equal(atomic_load(&owned_released), 1);
    assert_int_equal(edist_proc_detach_thread(NULL, 0), 0);
    assert_int_equal(setup(state), 0);
}

/* ---- two full mailboxes, each on the other's ring ------------------------------ */

#define SWAP_COUNT 2000

static _Atomic int swap_eagains;

/* Takes the peer's {s, N} waiting now (or, with wait_ms, the next), in
 * order; false on a gap. */
static bool swap_take(edist_pattern *p, int idx, int *got, int64_t wait_ms)
{
    edist_term_view vars[2] = {{0}}, m;
    while (edist_receive(p, vars, wait_ms, &m) == 0) {
        edist_cursor c;
        int64_t n = -1;
        edist_cursor_init(&c, vars[idx].ptr, vars[idx].len);
        edist_dec_int64(&c, &n);
        if (n != *got + 1)
            return false;
        (*got)++;
        memset(vars, 0, sizeof vars);
        if (wait_ms)
            return true;
    }
    return true;
}

/* Sends the peer SWAP_COUNT {s, N} without receiving first, so that both
 * mailboxes fill (10 at most) and both rings back up; a send answered
 * EAGAIN (the sender's own mailbox is full) receives what is there, then
 * sends again. Then takes the rest. */
static void swapper(void *arg)
{
    edist_procid peer = *(edist_procid *)arg;
    if (edist_procid_equal(peer, EDIST_PROCID_NULL))
        peer = recv_pid("{peer, _}");
    else /* first on the ring to it, before any {s, N} fills its mailbox */
        CHECK_RC(send_pid_pair(peer, "peer", edist_self()), 0);
    CHECK(!edist_procid_equal(peer, EDIST_PROCID_NULL));
    edist_pattern *p = pattern("{s, N}");
    int idx = edist_pattern_var_index(p, "N");
    int got = 0;
    bool in_order = true;
    for (int i = 1; i <= SWAP_COUNT && in_order; i++) {
        int rc;
        while ((rc = send_int_pair(peer, "s", i)) == EDIST_EAGAIN) {
            atomic_fetch_add(&swap_eagains, 1);
            CHECK(strstr(edist_last_error(), "own mailbox is full") != NULL);
            in_order = swap_take(p, idx, &got, 0);
        }
        CHECK_RC(rc, 0);
    }
    while (in_order && got < SWAP_COUNT) {
        int before = got;
        in_order = swap_take(p, idx, &got, 30000);
        if (got == before)
            break; /* nothing for 30 s */
    }
    CHECK(in_order);
    CHECK(got == SWAP_COUNT);
    edist_pattern_free(p);
    done();
}

/* Two processes on two shards send each other more than a mailbox and a
 * ring hold, neither receiving first. Each ring waits on a full mailbox
 * whose owner the other ring holds back: before, both stayed blocked for
 * good. A sender whose own mailbox is full is not held: it is answered
 * EAGAIN, receives, and both finish with everything in order. */
static void full_both_ways(void **state, uint64_t bytes)
{
    restart_mailboxes(state, bytes);
    atomic_store(&swap_eagains, 0);
    static edist_procid none, first;
    none = EDIST_PROCID_NULL;
    first = spawn_on(1, swapper, &none);
    spawn_on(0, swapper, &first);
    wait_done(2);
    print_message("sends answered EAGAIN (own mailbox full, ring backed up): %d\n",
                  atomic_load(&swap_eagains));
    assert_true(atomic_load(&swap_eagains) > 0);
    edist_runtime_stats st;
    assert_int_equal(edist_runtime_get_stats(rt, &st), 0);
    assert_int_equal(st.messages_dropped, 0);
}

static void test_full_mailboxes_both_ways(void **state)
{
    full_both_ways(state, 0);
}

/* ---- is_process_alive with a full mailbox -------------------------------------------- */

static _Atomic(edist_procid *) asker_peer;

/* Shard 0: 11 messages to a mailbox of 10 (the last waits at the head of
 * the ring to shard 1), then alive until told. */
static void eleven_sender(void *arg)
{
    send_eleven(*(edist_procid *)arg);
    CHECK_RC(recv_text("stop", 60000, NULL), 0);
    done();
}

/* Shard 1: once its mailbox is full and the 11th message waits, asks
 * whether the sender lives: the answer comes on the ring that waits. */
static void full_asker(void *arg)
{
    (void)arg;
    wait_full_and_one();
    edist_procid *peer = atomic_load(&asker_peer);
    CHECK(peer != NULL);
    if (peer) {
        CHECK(edist_is_process_alive(*peer));
        CHECK_RC(send_text(*peer, "stop"), 0);
    }
    CHECK(edist_mailbox_length() == 11); /* the 11th came past the limit */
    done();
}

/* A process whose mailbox is full asks another shard whether a process
 * lives, while a message for it waits at the head of the ring from that
 * shard: the answer comes on that ring, behind it. It used to wait for
 * good (and the ring with it, and everything the node passes that
 * shard); a process waiting for such an answer now takes the message past
 * its soft limit (up to the hard one), as a sender held by its own full
 * mailbox is never held. */
static void test_alive_with_full_mailbox(void **state)
{
    restart_small_mailboxes(state);
    static edist_procid asker, sender;
    atomic_store(&asker_peer, NULL);
    asker = spawn_on(1, full_asker, NULL);
    sender = spawn_on(0, eleven_sender, &asker);
    atomic_store(&asker_peer, &sender);
    wait_done(2);
    edist_runtime_stats st;
    assert_int_equal(edist_runtime_get_stats(rt, &st), 0);
    assert_int_equal(st.shard_past_soft_limit, 1);
    assert_int_equal(st.messages_dropped, 0);
}

/* The same, the mailboxes full by bytes (about ten of these messages).
 * A mailbox refuses the message that would take it past its bytes, so it
 * never holds more than them, and "its own mailbox is full" must mean
 * that a message was refused since the last one was taken: judged by its
 * bytes, it never was, and both processes stayed held for good. */
static void test_full_mailboxes_both_ways_bytes(void **state)
{
    full_both_ways(state, 100);
}

/* ---- thread processes ------------------------------------------------------------------------ */

typedef struct thread_job {
    edist_procid me, peer;
    _Atomic int ready;
    _Atomic int *go;
    int got;
} thread_job;

#define THREAD_COUNT 2000

static void *talker(void *arg)
{
    thread_job *j = arg;
    if (edist_proc_attach_thread(rt, 0, &j->me) != 0)
        return NULL;
    atomic_store(&j->ready, 1);
    while (!atomic_load(j->go))
        usleep(1000);
    for (int i = 1; i <= THREAD_COUNT; i++)
        while (send_int_pair(j->peer, "t", i) == EDIST_EAGAIN)
            usleep(100);
    edist_pattern *p = pattern("{t, N}");
    int idx = edist_pattern_var_index(p, "N");
    for (int i = 1; i <= THREAD_COUNT; i++) {
        edist_term_view vars[2] = {{0}}, m;
        if (edist_receive(p, vars, 30000, &m) != 0)
            break;
        edist_cursor c;
        int64_t n = -1;
        edist_cursor_init(&c, vars[idx].ptr, vars[idx].len);
        edist_dec_int64(&c, &n);
        if (n != i)
            break;
        j->got = i;
    }
    edist_pattern_free(p);
    edist_proc_detach_thread(NULL, 0);
    return NULL;
}

static void test_threads_across_shards(void **state)
{
    (void)state;
    _Atomic int go = 0;
    thread_job a = {.go = &go}, b = {.go = &go};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, talker, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, talker, &b), 0);
    while (!atomic_load(&a.ready) || !atomic_load(&b.ready))
        usleep(1000);
    /* Attached round robin: one on each shard. */
    assert_int_not_equal(shard_of(a.me), shard_of(b.me));
    a.peer = b.me;
    b.peer = a.me;
    atomic_store(&go, 1);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.got, THREAD_COUNT);
    assert_int_equal(b.got, THREAD_COUNT);
}

/* ---- a node down while a link to that node is on its way to shard 0 ---------- */

/* A runtime with node hooks that count the links and monitors handed to
 * "the network" (each one would go on a new connection). */
static edi_loop *hk_loop;
static pthread_t hk_thread;
static _Atomic int hk_links, hk_monitors, hk_spawns, hk_linked;
static uint32_t hk_remote_node;

static int hk_link(void *user, edist_procid from, edist_procid to)
{
    (void)user, (void)from, (void)to;
    atomic_fetch_add(&hk_links, 1);
    return 0;
}

static int hk_monitor(void *user, edist_procid watcher, edist_procid target, uint32_t node,
                      const char *name, const edist_ref *ref)
{
    (void)user, (void)watcher, (void)target, (void)node, (void)name, (void)ref;
    atomic_fetch_add(&hk_monitors, 1);
    return 0;
}

static _Atomic int hk_ready;

static void hk_on_ready(edi_loop *loop, void *arg)
{
    (void)loop, (void)arg;
    atomic_store(&hk_ready, 1);
}

static int hk_spawn(void *user, edist_procid from, uint32_t node, const edist_ref *req_id,
                    const char *module, const char *function, edist_term_view args,
                    unsigned flags)
{
    (void)user, (void)from, (void)node, (void)req_id, (void)module, (void)function;
    (void)args, (void)flags;
    atomic_fetch_add(&hk_spawns, 1);
    return 0;
}

static void *hk_loop_main(void *arg)
{
    (void)arg;
    edi_loop_run(hk_loop);
    return NULL;
}

static int setup_hooks(void **state)
{
    (void)state;
    g_fail[0] = '\0';
    atomic_store(&hk_links, 0);
    atomic_store(&hk_monitors, 0);
    atomic_store(&hk_spawns, 0);
    atomic_store(&hk_linked, 0);
    edi_loop_config lc;
    edi_loop_config_default(&lc);
    if (edi_loop_new(&lc, &hk_loop) != 0)
        return -1;
    edist_runtime_config pc;
    edist_runtime_config_init(&pc);
    pc.node_name = "hk@host";
    pc.creation = 1;
    pc.shards = 2;
    edi_rt_hooks h = {.link = hk_link, .monitor = hk_monitor, .spawn_request = hk_spawn};
    edi_rt_config rc = {.loop = hk_loop, .proc = &pc, .hooks = &h};
    edi_rt *r;
    if (edi_rt_new(&rc, &r) != 0 ||
        edi_rt_node_intern("x@host", 6, &hk_remote_node) != 0) {
        fprintf(stderr, "hooks runtime: %s\n", edist_last_error());
        return -1;
    }
    rt = r;
    if (pthread_create(&hk_thread, NULL, hk_loop_main, NULL) != 0)
        return -1;
    /* the loop runs on its thread before this one attaches */
    atomic_store(&hk_ready, 0);
    if (edi_loop_post(hk_loop, hk_on_ready, NULL) != 0)
        return -1;
    while (!atomic_load(&hk_ready))
        usleep(1000);
    if (edist_proc_attach_thread(rt, 0, &g_main) != 0) {
        fprintf(stderr, "attach: %s\n", edist_last_error());
        return -1;
    }
    return 0;
}

static void hk_free(edi_loop *loop, void *arg)
{
    (void)arg;
    edi_rt_free(rt);
    edi_loop_stop(loop);
}

static int teardown_hooks(void **state)
{
    (void)state;
    edist_proc_detach_thread(NULL, 0);
    if (edi_loop_post(hk_loop, hk_free, NULL) != 0)
        return -1;
    pthread_join(hk_thread, NULL);
    edi_loop_free(hk_loop);
    rt = NULL;
    return 0;
}

static edist_procid hk_remote(void)
{
    return (edist_procid){.node = hk_remote_node, .id = 77, .serial = 0, .creation = 1};
}

/* Shard 1: links to and monitors a pid of x@host (records to shard 0, which
 * is busy), then waits for both to end with noconnection. */
static void hk_linker(void *arg)
{
    (void)arg;
    edist_trap_exit(true);
    edist_ref ref;
    CHECK_RC(edist_link(hk_remote()), 0);
    CHECK_RC(edist_monitor(hk_remote(), &ref), 0);
    edist_ref req;
    static const char nil[] = "\x6a";
    CHECK_RC(edist_spawn_request("x@host", "m", "f", nil, 1, NULL, &req), 0);
    atomic_store(&hk_linked, 1);
    edist_term_view m;
    CHECK(recv_text("{'EXIT', _, noconnection}", 10000, &m) == 0);
    CHECK(recv_text("{'DOWN', _, process, _, noconnection}", 10000, &m) == 0);
    CHECK(recv_text("{spawn_reply, _, error, noconnection}", 10000, &m) == 0);
    /* once each: nothing else came */
    CHECK(edist_receive(NULL, NULL, 200, &m) == EDIST_ETIMEDOUT);
    done();
}

/* Shard 0: keeps its shard from taking its rings until the linker's
 * records wait there, then has x@host go down (as the net kernel does,
 * on this shard), and returns: the rings are taken after it. */
static void hk_node_goes_down(void *arg)
{
    (void)arg;
    uint64_t deadline = now_ms() + 10000;
    while (!atomic_load(&hk_linked) && now_ms() < deadline)
        usleep(1000);
    CHECK(atomic_load(&hk_linked));
    edi_rt_node_down(edist_self_runtime(), hk_remote_node);
    done();
}

/* A link, a monitor and a spawn request a shard made for another node
 * travel to shard 0 as records; the node went down before shard 0 took
 * them, and the shard that made them ends them (noconnection) when it
 * takes the node down. Shard 0 must not hand them to the network then: a
 * connection made since would carry a link the process no longer has (the
 * peer's end would stay), a monitor that already fired, and a spawn the
 * requester was told failed (it would run, unknown to anyone). */
static void test_node_down_overtakes_link(void **state)
{
    (void)state;
    spawn_on(0, hk_node_goes_down, NULL);
    spawn_on(1, hk_linker, NULL);
    wait_done(2);
    usleep(100 * 1000);
    assert_int_equal(atomic_load(&hk_links), 0);
    assert_int_equal(atomic_load(&hk_monitors), 0);
    assert_int_equal(atomic_load(&hk_spawns), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order_across_shards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_links_across_shards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unlink_crossing_across_shards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_monitors_across_shards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alive_after_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_node_wide, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_mailbox_across_shards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_mailboxes_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_mailboxes_both_ways_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alive_with_full_mailbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_selective_receive_with_full_mailbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_selective_receive_grace_option, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_thread_send_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_across_shards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_down_overtakes_link, setup_hooks,
                                        teardown_hooks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
