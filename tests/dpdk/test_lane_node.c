/* SPDX-License-Identifier: Apache-2.0 */
/* An edist node with a DPDK lane, for test_node_lane.sh:
 *   test_lane_node serve NAME COOKIE ADDRESS DEVICE EAL_ARGS
 *   test_lane_node drive NAME COOKIE ADDRESS DEVICE EAL_ARGS PEER
 * Both listen on ADDRESS, use the port mapper on its default port, tick
 * every second (net_ticktime 4 s) and log to stderr.
 * serve exports t:echo/1 and t:hold/1 (sends {held, self()} to its
 * argument, then waits for {die, Reason} and exits with Reason), registers
 * `techo` ({From, Msg} -> {echo, self(), Msg} to From), `tsink` (drops
 * everything) and `tslow` (never receives), prints "ready", runs until
 * killed.
 * drive connects to PEER, waits until both moved their data to the lane
 * (lane_switches, lane_peer_switches), then does what a user does between
 * nodes, printing "ok WHAT" for each: a send to {techo, PEER} and to the
 * pid that answered, rpc:call of t:echo, spawn_link of t:hold on PEER and
 * its exit signal (trapped), spawn_monitor of t:hold and its DOWN, a
 * with LANE_SLOW_FLOOD set, 900,000 messages to {tslow, PEER} (never
 * receives) and an echo after them; a monitor of {tsink, PEER}; then
 * prints "done" and streams {seq, N,
 * <<Pad>>} to {tsink, PEER} until the monitor's DOWN comes, prints "down
 * DOWN after MS ms" (MS: since the last send that worked), stays up 6 s
 * more, stops its node and exits 0.
 * Any failure: "FAIL: ..." and exit 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edist/edist.h"

#define STEP_TIMEOUT_MS 10000
/* To a process that never receives: more than a default port pool's 8191
 * frames hold (~90 of these a frame on memif, fewer on the others), and
 * fewer than a mailbox's soft limit (1,000,000) */
#define SLOW_MESSAGES 900000
#define SWITCH_TIMEOUT_MS 30000

static void log_line(void *user, edist_log_level level, const char *line)
{
    (void)user;
    (void)level;
    fprintf(stderr, "%s\n", line);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int die(const char *what)
{
    printf("FAIL: %s: %s\n", what, edist_last_error());
    exit(1);
}

/* ---- serve ------------------------------------------------------------- */

static int x_echo(void *user, const edist_term_view *args, uint32_t arity,
                  edist_buf *result)
{
    (void)user;
    (void)arity;
    return edist_enc_raw(result, args[0].ptr, args[0].len);
}

static int x_hold(void *user, const edist_term_view *args, uint32_t arity,
                  edist_buf *result)
{
    (void)user;
    (void)arity;
    (void)result;
    edist_cursor c;
    edist_procid to;
    edist_cursor_init(&c, args[0].ptr, args[0].len);
    if (edist_dec_procid(&c, &to))
        return EDIST_EINVAL;
    edist_buf m;
    edist_buf_init(&m);
    edist_enc_tuple(&m, 2);
    edist_enc_atomz(&m, "held");
    edist_enc_procid(&m, edist_self());
    int rc = edist_send(to, m.data, m.len);
    edist_buf_free(&m);
    if (rc)
        return rc;
    for (;;) {
        edist_term_view msg, reason;
        if (edist_receive(NULL, NULL, -1, &msg))
            return EDIST_ECLOSED;
        uint32_t n;
        edist_atom a;
        edist_cursor_init(&c, msg.ptr, msg.len);
        if (edist_dec_tuple(&c, &n) == 0 && n == 2 &&
            edist_dec_atom(&c, &a) == 0 && edist_atom_eq(&a, "die") &&
            edist_dec_term(&c, &reason) == 0) {
            edist_exit(reason.ptr, reason.len);
            return 0;
        }
    }
}

static void echo_proc(void *arg)
{
    (void)arg;
    edist_buf out;
    edist_buf_init(&out);
    for (;;) {
        edist_term_view msg, m;
        if (edist_receive(NULL, NULL, -1, &msg))
            return;
        edist_cursor c;
        uint32_t n;
        edist_procid from;
        edist_cursor_init(&c, msg.ptr, msg.len);
        if (edist_dec_tuple(&c, &n) || n != 2 || edist_dec_procid(&c, &from) ||
            edist_dec_term(&c, &m))
            continue;
        edist_buf_reset(&out);
        edist_enc_tuple(&out, 3);
        edist_enc_atomz(&out, "echo");
        edist_enc_procid(&out, edist_self());
        edist_enc_raw(&out, m.ptr, m.len);
        edist_send(from, out.data, out.len);
    }
}

static void sink_proc(void *arg)
{
    (void)arg;
    edist_term_view msg;
    while (edist_receive(NULL, NULL, -1, &msg) == 0)
        ;
}

/* Never receives: what is sent to it stays in its mailbox. */
static void slow_proc(void *arg)
{
    (void)arg;
    for (;;)
        edist_sleep_ms(1000);
}

static int serve(edist_runtime *rt)
{
    edist_procid self, echo, sink, slow;
    if (edist_export_function(rt, "t", "echo", 1, x_echo, NULL) ||
        edist_export_function(rt, "t", "hold", 1, x_hold, NULL))
        die("exports");
    if (edist_proc_attach_thread(rt, 0, &self) ||
        edist_spawn(echo_proc, NULL, &echo) || edist_register("techo", echo) ||
        edist_spawn(sink_proc, NULL, &sink) || edist_register("tsink", sink) ||
        edist_spawn(slow_proc, NULL, &slow) || edist_register("tslow", slow))
        die("processes");
    printf("ready\n");
    edist_term_view msg;
    while (edist_receive(NULL, NULL, -1, &msg) == 0)
        ;
    return 1;
}

/* ---- drive ------------------------------------------------------------- */

/* The first message whose text (edist_term_print) starts with prefix,
 * within STEP_TIMEOUT_MS; its text in out. Others are skipped. */
static void await_text(const char *prefix, edist_buf *out, const char *what)
{
    long long end = now_ms() + STEP_TIMEOUT_MS;
    for (;;) {
        long long left = end - now_ms();
        edist_term_view msg;
        if (left <= 0 || edist_receive(NULL, NULL, left, &msg)) {
            printf("FAIL: %s: no message starting with %s\n", what, prefix);
            exit(1);
        }
        edist_buf_reset(out);
        edist_term_print(msg.ptr, msg.len, out, NULL);
        edist_buf_cstr(out);
        if (!strncmp((const char *)out->data, prefix, strlen(prefix)))
            return;
    }
}

/* {seq, N, <<Pad>>}: the messages of the streams */
static void enc_seq(edist_buf *b, uint64_t seq, const uint8_t *pad, size_t pad_len)
{
    edist_buf_reset(b);
    edist_enc_tuple(b, 3);
    edist_enc_atomz(b, "seq");
    edist_enc_uint(b, seq);
    edist_enc_binary(b, pad, pad_len);
}

/* {Self, Tag} */
static void self_tagged(edist_buf *b, const char *tag)
{
    edist_buf_reset(b);
    edist_enc_tuple(b, 2);
    edist_enc_procid(b, edist_self());
    edist_enc_atomz(b, tag);
}

/* {Self, Tag} to echo, and its answer naming Tag back. */
static void echo_round(edist_procid echo, edist_buf *b, edist_buf *t, const char *tag,
                       const char *what)
{
    char why[160];
    self_tagged(b, tag);
    if (edist_send(echo, b->data, b->len)) {
        snprintf(why, sizeof why, "%s: send", what);
        die(why);
    }
    await_text("{echo,", t, what);
    if (!strstr((const char *)t->data, tag)) {
        snprintf(why, sizeof why, "%s: wrong answer", what);
        die(why);
    }
}

static int drive(edist_node *node, edist_runtime *rt, const char *peer)
{
    edist_procid self;
    if (edist_proc_attach_thread(rt, 0, &self))
        die("attach");
    edist_buf b, t;
    edist_buf_init(&b);
    edist_buf_init(&t);

    /* Connect (a send to a name on the peer does), then wait for the
     * switch both ways. */
    self_tagged(&b, "hello");
    if (edist_send_name_node("techo", peer, b.data, b.len))
        die("send to {techo, PEER}");
    await_text("{echo,", &t, "first echo");
    long long end = now_ms() + SWITCH_TIMEOUT_MS;
    edist_node_stats st;
    for (;;) {
        if (edist_node_get_stats(node, &st))
            die("stats");
        if (st.lane_switches >= 1 && st.lane_peer_switches >= 1)
            break;
        if (now_ms() > end) {
            printf("FAIL: no lane switch: lane_switches %llu, "
                   "lane_peer_switches %llu\n",
                   (unsigned long long)st.lane_switches,
                   (unsigned long long)st.lane_peer_switches);
            return 1;
        }
        edist_sleep_ms(20);
    }
    printf("switched\n");

    /* {techo, Peer} ! {Self, by_name}: the answer names techo's pid. */
    self_tagged(&b, "by_name");
    if (edist_send_name_node("techo", peer, b.data, b.len))
        die("send to {techo, PEER}");
    edist_term_view msg, v;
    edist_procid echo;
    long long t0 = now_ms();
    for (;;) {
        if (edist_receive(NULL, NULL, STEP_TIMEOUT_MS, &msg))
            die("echo by name");
        edist_cursor c;
        uint32_t n;
        edist_atom a;
        edist_cursor_init(&c, msg.ptr, msg.len);
        if (edist_dec_tuple(&c, &n) == 0 && n == 3 &&
            edist_dec_atom(&c, &a) == 0 && edist_atom_eq(&a, "echo") &&
            edist_dec_procid(&c, &echo) == 0 && edist_dec_term(&c, &v) == 0) {
            edist_cursor_init(&c, v.ptr, v.len);
            if (edist_dec_atom(&c, &a) == 0 && edist_atom_eq(&a, "by_name"))
                break;
        }
        if (now_ms() - t0 > STEP_TIMEOUT_MS)
            die("echo by name");
    }
    printf("ok send to {techo, %s}\n", peer);

    echo_round(echo, &b, &t, "by_pid", "echo by pid");
    printf("ok send to a pid on %s\n", peer);

    /* rpc:call(Peer, t, echo, [Big]) */
    edist_buf args, result;
    edist_buf_init(&args);
    edist_buf_init(&result);
    edist_enc_list(&args, 1);
    edist_enc_list(&args, 2000);
    for (int i = 0; i < 2000; i++)
        edist_enc_int(&args, i * 7919);
    edist_enc_nil(&args);
    edist_enc_nil(&args);
    edist_rpc_status status;
    if (edist_rpc_call(peer, "t", "echo", args.data, args.len, STEP_TIMEOUT_MS,
                       &result, &status))
        die("rpc:call");
    /* the result is the argument: the list inside [List], as text */
    edist_buf want;
    edist_buf_init(&want);
    edist_term_print(args.data, args.len, &want, NULL);
    edist_buf_reset(&t);
    edist_buf_append(&t, "[", 1);
    edist_term_print(result.data, result.len, &t, NULL);
    edist_buf_append(&t, "]", 1);
    if (status != EDIST_RPC_OK || t.len != want.len ||
        memcmp(t.data, want.data, t.len) != 0) {
        printf("FAIL: rpc:call t:echo: status %d, %.*s\n", (int)status,
               (int)(t.len > 200 ? 200 : t.len), (const char *)t.data);
        return 1;
    }
    edist_buf_free(&want);
    printf("ok rpc:call(%s, t, echo, [2000 integers])\n", peer);

    /* spawn_link(Peer, t, hold, [Self]), trapping exits: {'EXIT', Pid,
     * boom} once it is told to die. */
    edist_trap_exit(true);
    edist_buf_reset(&args);
    edist_enc_list(&args, 1);
    edist_enc_procid(&args, self);
    edist_enc_nil(&args);
    edist_spawn_opts so = {.link = true};
    edist_procid held;
    edist_ref ref;
    if (edist_spawn_remote(peer, "t", "hold", args.data, args.len, &so,
                           STEP_TIMEOUT_MS, &held, &ref))
        die("spawn_link on the peer");
    await_text("{held,", &t, "spawned process");
    edist_buf_reset(&b);
    edist_enc_tuple(&b, 2);
    edist_enc_atomz(&b, "die");
    edist_enc_atomz(&b, "boom");
    if (edist_send(held, b.data, b.len))
        die("send die");
    await_text("{'EXIT',", &t, "exit signal");
    if (!strstr((const char *)t.data, ",boom}"))
        die("exit signal: not boom");
    printf("ok spawn_link on %s: %s\n", peer, (const char *)t.data);

    /* spawn_monitor(Peer, t, hold, [Self]): DOWN with bang. */
    so = (edist_spawn_opts){.monitor = true};
    if (edist_spawn_remote(peer, "t", "hold", args.data, args.len, &so,
                           STEP_TIMEOUT_MS, &held, &ref))
        die("spawn_monitor on the peer");
    await_text("{held,", &t, "monitored process");
    edist_buf_reset(&b);
    edist_enc_tuple(&b, 2);
    edist_enc_atomz(&b, "die");
    edist_enc_atomz(&b, "bang");
    if (edist_send(held, b.data, b.len))
        die("send die");
    await_text("{'DOWN',", &t, "DOWN");
    if (!strstr((const char *)t.data, ",bang}"))
        die("DOWN: not bang");
    printf("ok spawn_monitor on %s: %s\n", peer, (const char *)t.data);

    /* A process that never receives, sent more messages than the port's
     * pool has frames for: they stay in its mailbox, copied out of the
     * port's mbufs once half the pool is held, and the lane goes on (a
     * pool held up would stop it: no frame could come in or go out). */
    uint8_t pad[48], slow_pad[128]; /* past 104 bytes: held as views */
    memset(pad, 0x5a, sizeof pad);
    memset(slow_pad, 0x5b, sizeof slow_pad);
    uint64_t slow_messages = getenv("LANE_SLOW_FLOOD") ? SLOW_MESSAGES : 0;
    for (uint64_t seq = 0; seq < slow_messages; seq++) {
        enc_seq(&b, seq, slow_pad, sizeof slow_pad);
        /* a thread's sends wait in its shard's queue: full, it waits */
        int rc;
        long long t_end = now_ms() + STEP_TIMEOUT_MS;
        while ((rc = edist_send_name_node("tslow", peer, b.data, b.len)) == EDIST_EAGAIN &&
               now_ms() < t_end)
            edist_sleep_ms(1);
        if (rc)
            die("send to {tslow, PEER}");
    }
    if (slow_messages) {
        echo_round(echo, &b, &t, "after_slow", "echo after the slow process's messages");
        printf("ok %d messages to {tslow, %s}, which never receives, and the "
               "lane still answers\n", SLOW_MESSAGES, peer);
    }

    edist_ref sink_mon;
    if (edist_monitor_name("tsink", peer, &sink_mon))
        die("monitor {tsink, PEER}");
    printf("ok monitor of {tsink, %s}\n", peer);
    printf("done\n");

    /* A stream to {tsink, Peer} until that monitor fires. */
    long long last_ok = now_ms();
    for (uint64_t seq = 0;; seq++) {
        enc_seq(&b, seq, pad, sizeof pad);
        if (edist_send_name_node("tsink", peer, b.data, b.len) == 0)
            last_ok = now_ms();
        if (seq % 256 == 0 &&
            edist_receive(NULL, NULL, seq % 4096 == 0 ? 1 : 0, &msg) == 0) {
            edist_buf_reset(&t);
            edist_term_print(msg.ptr, msg.len, &t, NULL);
            edist_buf_cstr(&t);
            if (!strncmp((const char *)t.data, "{'DOWN',", 8)) {
                printf("down %s after %lld ms\n", (const char *)t.data,
                       now_ms() - last_ok);
                /* Still up a while, for `edist stat` to find. */
                edist_sleep_ms(6000);
                edist_buf_free(&b);
                edist_buf_free(&t);
                edist_buf_free(&args);
                edist_buf_free(&result);
                edist_proc_detach_thread(NULL, 0);
                edist_node_stop(node);
                return 0;
            }
        }
    }
}

int main(int argc, char **argv)
{
    int drive_role = argc == 8 && !strcmp(argv[1], "drive");
    if (!drive_role && !(argc == 7 && !strcmp(argv[1], "serve"))) {
        fprintf(stderr, "usage: test_lane_node serve|drive NAME COOKIE ADDRESS "
                        "DEVICE EAL_ARGS [PEER]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    edist_node_config cfg;
    edist_node_config_init(&cfg);
    cfg.name = argv[2];
    cfg.long_names = true; /* NAME@10.88.0.x */
    cfg.cookie = argv[3];
    cfg.listen_address = argv[4];
    cfg.start_epmd = false;
    cfg.net_ticktime_ms = 4000;
    cfg.transport = EDIST_TRANSPORT_DPDK;
    cfg.dpdk_port = argv[5];
    cfg.dpdk_eal_args = argv[6];
    /* the lane in UDP/IPv4 from this address (test_node_lane.sh ... udp) */
    cfg.dpdk_udp_address = getenv("LANE_UDP_ADDRESS");
    cfg.log = log_line;
    cfg.log_level = EDIST_LOG_INFO;
    edist_node *node;
    if (edist_node_start(&cfg, &node))
        die("node start");
    edist_runtime *rt = edist_node_runtime(node);
    if (!rt)
        die("runtime");
    return drive_role ? drive(node, rt, argv[7]) : serve(rt);
}
