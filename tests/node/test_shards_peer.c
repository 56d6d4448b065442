/* SPDX-License-Identifier: Apache-2.0 */
/* A node of two shards for test_shards_erl.sh:
 *   test_shards_peer NAME COOKIE
 * Registered green processes, each placed on a given shard:
 *   s1recv  (shard 1) counts {seq, N} messages and whether they came in
 *           order; reset -> starts again; {report, From} -> From !
 *           {report, Count, InOrder}
 *   s0send  (shard 0) {send_name, Name, Node, Count[, ReplyTo]} ->
 *           {seq, 1..Count} to {Name, Node}, then ReplyTo ! sent
 *   s1send  (shard 1) {send_pid, Pid, Count} -> {seq, 1..Count} to Pid
 *   s1dier  (shard 1) {pid, From} -> From ! {dier, self()};
 *           {die, Reason} -> exits with Reason
 *   s0watch, s1watch (shards 0, 1) {watch, Pid, Name, Node, ReplyTo}:
 *           trap exits, link to Pid, monitor Pid and {Name, Node}, then
 *           ReplyTo ! {watching, Shard}; every message after that is
 *           printed as "shardK got: TERM"
 *   s1hog   (shard 1) {hog, Ms, ReplyTo}: keeps shard 1 busy for Ms
 *           milliseconds without yielding (its rings fill, shard 0's
 *           backlog grows past shard_backlog_limit, set to 1,000 here),
 *           then ReplyTo ! hogged
 *   s1spawn (shard 1) {spawn_on, Node, ReplyTo}: spawn_monitor of
 *           erlang:send(ReplyTo, spawned_from_shard1) on Node, printed as
 *           "shard1 spawn_remote: ok", and its DOWN as "shard1 got: ...";
 *           {rpc, Node}: rpc:call(Node, erlang, node, []) printed as
 *           "shard1 rpc: ok RESULT"
 *   s0main  (the main thread, shard 0) {send_and_stop, Name, Node, Count}:
 *           {seq, 1..Count} to {Name, Node}, sent by this thread
 *           process itself, then the node stops
 *           gracefully ("stopping after COUNT", "stopped") and the program
 *           exits 0
 * At start, s0send sends 10,000 {seq, N} to s1recv's pid (shard 0 to
 * shard 1 within the node) and the result is printed as "local order: ok
 * COUNT" (or "local order: FAILED ..."); then "ready". Runs until killed
 * or s0main's stop.
 * With EDIST_TRANSPORT in the environment, the node takes its options
 * from the environment first (EDIST_DPDK_PORT, EDIST_DPDK_EAL_ARGS, ...:
 * the DPDK lane tests), then the settings above. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "edist/edist.h"
#include "control/node_config.h"      /* options from the environment */
#include "runtime/runtime_internal.h" /* edi_rt_spawn_here: a process on a given shard */

#define LOCAL_COUNT 10000

static edist_runtime *g_rt;

static void log_line(void *user, edist_log_level level, const char *line)
{
    (void)user;
    (void)level;
    fprintf(stderr, "%s\n", line);
}

static uint32_t shard_of(edist_procid pid)
{
    edi_rt *o = edi_rt_owner(g_rt, pid);
    return o ? o->shard : 99;
}

static void print_msg(const char *prefix, edist_term_view m)
{
    edist_buf out;
    edist_buf_init(&out);
    edist_term_print(m.ptr, m.len, &out, NULL);
    printf("%s%.*s\n", prefix, (int)out.len, (const char *)out.data);
    edist_buf_free(&out);
}

static int send_seq(edist_procid to, const char *name, const char *node, int64_t n)
{
    uint8_t mem[64];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    edist_enc_tuple(&b, 2);
    edist_enc_atomz(&b, "seq");
    edist_enc_int(&b, n);
    for (;;) {
        int rc = name ? edist_send_name_node(name, node, b.data, b.len)
                      : edist_send(to, b.data, b.len);
        if (rc != EDIST_EAGAIN)
            return rc;
        edist_sleep_ms(1); /* a full peer queue: wait for room */
    }
}

/* A view's atom as a C string. */
static int atom_str(edist_cursor *c, char *out, size_t cap)
{
    edist_atom a;
    if (edist_dec_atom(c, &a) || a.len >= cap)
        return -1;
    memcpy(out, a.ptr, a.len);
    out[a.len] = 0;
    return 0;
}

/* ---- s1recv ------------------------------------------------------------------------ */

static void s1recv(void *arg)
{
    (void)arg;
    int64_t count = 0;
    int in_order = 1;
    for (;;) {
        edist_term_view m;
        if (edist_receive(NULL, NULL, -1, &m))
            return;
        edist_cursor c;
        uint32_t n;
        edist_atom a;
        int64_t v;
        edist_procid from;
        edist_cursor_init(&c, m.ptr, m.len);
        if (edist_dec_tuple(&c, &n) == 0 && n == 2 && edist_dec_atom(&c, &a) == 0) {
            if (edist_atom_eq(&a, "seq") && edist_dec_int64(&c, &v) == 0) {
                if (v != count + 1)
                    in_order = 0;
                count++;
            } else if (edist_atom_eq(&a, "report") && edist_dec_procid(&c, &from) == 0) {
                uint8_t mem[64];
                edist_buf b;
                edist_buf_init_fixed(&b, mem, sizeof mem);
                edist_enc_tuple(&b, 3);
                edist_enc_atomz(&b, "report");
                edist_enc_int(&b, count);
                edist_enc_atomz(&b, in_order ? "true" : "false");
                edist_send(from, b.data, b.len);
            }
            continue;
        }
        edist_cursor_init(&c, m.ptr, m.len);
        if (edist_dec_atom(&c, &a) == 0 && edist_atom_eq(&a, "reset")) {
            count = 0;
            in_order = 1;
        }
    }
}

/* ---- senders ------------------------------------------------------------------------ */

static void s0send(void *arg)
{
    (void)arg;
    for (;;) {
        edist_term_view m;
        if (edist_receive(NULL, NULL, -1, &m))
            return;
        edist_cursor c;
        uint32_t n;
        char tag[64], name[256], node[256];
        int64_t count;
        edist_cursor_init(&c, m.ptr, m.len);
        edist_procid reply_to;
        if (edist_dec_tuple(&c, &n) == 0 && (n == 4 || n == 5) &&
            atom_str(&c, tag, sizeof tag) == 0 && !strcmp(tag, "send_name") &&
            atom_str(&c, name, sizeof name) == 0 && atom_str(&c, node, sizeof node) == 0 &&
            edist_dec_int64(&c, &count) == 0 &&
            (n == 4 || edist_dec_procid(&c, &reply_to) == 0)) {
            for (int64_t i = 1; i <= count; i++)
                if (send_seq(EDIST_PROCID_NULL, name, node, i) != 0)
                    fprintf(stderr, "s0send: %s\n", edist_last_error());
            if (n == 5) {
                uint8_t sent[] = {EDIST_TAG_SMALL_ATOM_UTF8, 4, 's', 'e', 'n', 't'};
                edist_send(reply_to, sent, sizeof sent);
            }
        }
    }
}

static void s1send(void *arg)
{
    (void)arg;
    for (;;) {
        edist_term_view m;
        if (edist_receive(NULL, NULL, -1, &m))
            return;
        edist_cursor c;
        uint32_t n;
        char tag[64];
        edist_procid to;
        int64_t count;
        edist_cursor_init(&c, m.ptr, m.len);
        if (edist_dec_tuple(&c, &n) == 0 && n == 3 && atom_str(&c, tag, sizeof tag) == 0 &&
            !strcmp(tag, "send_pid") && edist_dec_procid(&c, &to) == 0 &&
            edist_dec_int64(&c, &count) == 0) {
            for (int64_t i = 1; i <= count; i++)
                if (send_seq(to, NULL, NULL, i) != 0)
                    fprintf(stderr, "s1send: %s\n", edist_last_error());
        }
    }
}

/* ---- s1dier ----------------------------------------------------------------------------- */

static void s1dier(void *arg)
{
    (void)arg;
    for (;;) {
        edist_term_view m;
        if (edist_receive(NULL, NULL, -1, &m))
            return;
        edist_cursor c;
        uint32_t n;
        char tag[64];
        edist_procid from;
        edist_term_view reason;
        edist_cursor_init(&c, m.ptr, m.len);
        if (edist_dec_tuple(&c, &n) != 0 || n != 2 || atom_str(&c, tag, sizeof tag) != 0)
            continue;
        if (!strcmp(tag, "pid") && edist_dec_procid(&c, &from) == 0) {
            uint8_t mem[96];
            edist_buf b;
            edist_buf_init_fixed(&b, mem, sizeof mem);
            edist_enc_tuple(&b, 2);
            edist_enc_atomz(&b, "dier");
            edist_enc_procid(&b, edist_self());
            edist_send(from, b.data, b.len);
        } else if (!strcmp(tag, "die") && edist_dec_term(&c, &reason) == 0) {
            edist_exit(reason.ptr, reason.len);
        }
    }
}

/* ---- watchers ------------------------------------------------------------------------------ */

static void watcher(void *arg)
{
    const char *prefix = arg;
    edist_trap_exit(true);
    edist_term_view m;
    if (edist_receive(NULL, NULL, -1, &m))
        return;
    edist_cursor c;
    uint32_t n;
    char tag[64], name[256], node[256];
    edist_procid pid, reply_to;
    edist_cursor_init(&c, m.ptr, m.len);
    if (edist_dec_tuple(&c, &n) || n != 5 || atom_str(&c, tag, sizeof tag) ||
        strcmp(tag, "watch") || edist_dec_procid(&c, &pid) ||
        atom_str(&c, name, sizeof name) || atom_str(&c, node, sizeof node) ||
        edist_dec_procid(&c, &reply_to)) {
        printf("%sbad watch request\n", prefix);
        return;
    }
    edist_ref r1, r2;
    int rc = edist_link(pid);
    if (rc == 0)
        rc = edist_monitor(pid, &r1);
    if (rc == 0)
        rc = edist_monitor_name(name, node, &r2);
    uint8_t mem[64];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    edist_enc_tuple(&b, 2);
    edist_enc_atomz(&b, rc ? "watch_failed" : "watching");
    edist_enc_int(&b, shard_of(edist_self()));
    edist_send(reply_to, b.data, b.len);
    for (;;) {
        if (edist_receive(NULL, NULL, -1, &m))
            return;
        print_msg(prefix, m);
    }
}

/* ---- s1spawn --------------------------------------------------------------------------------- */

static void s1spawn(void *arg)
{
    (void)arg;
    for (;;) {
        edist_term_view m;
        if (edist_receive(NULL, NULL, -1, &m))
            return;
        edist_cursor c;
        uint32_t n;
        char tag[64], node[256];
        edist_procid reply_to;
        edist_cursor_init(&c, m.ptr, m.len);
        if (edist_dec_tuple(&c, &n) == 0 && n == 3 && atom_str(&c, tag, sizeof tag) == 0 &&
            !strcmp(tag, "spawn_on") && atom_str(&c, node, sizeof node) == 0 &&
            edist_dec_procid(&c, &reply_to) == 0) {
            edist_buf args;
            edist_buf_init(&args);
            edist_enc_list(&args, 2);
            edist_enc_procid(&args, reply_to);
            edist_enc_atomz(&args, "spawned_from_shard1");
            edist_enc_nil(&args);
            edist_spawn_opts so = {.monitor = true};
            edist_ref req;
            edist_procid pid;
            int rc = edist_spawn_remote(node, "erlang", "send", args.data, args.len, &so, 5000,
                                        &pid, &req);
            edist_buf_free(&args);
            printf("shard1 spawn_remote: %s\n", rc ? edist_strerror(rc) : "ok");
            continue;
        }
        edist_cursor_init(&c, m.ptr, m.len);
        if (edist_dec_tuple(&c, &n) == 0 && n == 2 && atom_str(&c, tag, sizeof tag) == 0 &&
            !strcmp(tag, "rpc") && atom_str(&c, node, sizeof node) == 0) {
            static const uint8_t nil[] = {EDIST_TAG_NIL};
            edist_buf r;
            edist_buf_init(&r);
            edist_rpc_status st;
            int rc = edist_rpc_call(node, "erlang", "node", nil, 1, 5000, &r, &st);
            if (rc == 0 && st == EDIST_RPC_OK)
                print_msg("shard1 rpc: ok ", (edist_term_view){r.data, r.len});
            else
                printf("shard1 rpc: failed %d\n", rc);
            edist_buf_free(&r);
            continue;
        }
        print_msg("shard1 got: ", m); /* the DOWN of a spawned process */
    }
}

/* ---- s1hog ------------------------------------------------------------------------ */

static void s1hog(void *arg)
{
    (void)arg;
    for (;;) {
        edist_term_view m;
        if (edist_receive(NULL, NULL, -1, &m))
            return;
        edist_cursor c;
        uint32_t n;
        char tag[16];
        int64_t ms;
        edist_procid to;
        edist_cursor_init(&c, m.ptr, m.len);
        if (edist_dec_tuple(&c, &n) || n != 3 || atom_str(&c, tag, sizeof tag) ||
            strcmp(tag, "hog") || edist_dec_int64(&c, &ms) || edist_dec_procid(&c, &to))
            continue;
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do
            clock_gettime(CLOCK_MONOTONIC, &t);
        while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
        uint8_t hogged[] = {EDIST_TAG_SMALL_ATOM_UTF8, 6, 'h', 'o', 'g', 'g', 'e', 'd'};
        edist_send(to, hogged, sizeof hogged);
    }
}

/* ---- start ------------------------------------------------------------------------------------- */

static edist_procid start_on(uint32_t shard, edist_proc_fn fn, void *arg, const char *name)
{
    edist_procid pid = EDIST_PROCID_NULL;
    if (edi_rt_spawn_here(g_rt->g->rt[shard], fn, arg, &pid) ||
        edist_runtime_register(g_rt, name, pid)) {
        fprintf(stderr, "%s: %s\n", name, edist_last_error());
        exit(1);
    }
    if (shard_of(pid) != shard) {
        fprintf(stderr, "%s is on shard %u, not %u\n", name, shard_of(pid), shard);
        exit(1);
    }
    return pid;
}

/* The first check, from the main thread (a process): 10,000 {seq, N} from a
 * process on shard 0 to s1recv on shard 1. */
static void local_sender(void *arg)
{
    edist_procid *to = arg;
    for (int i = 1; i <= LOCAL_COUNT; i++)
        send_seq(*to, NULL, NULL, i);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test_shards_peer NAME COOKIE\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    edist_node_config cfg;
    edist_node_config_init(&cfg);
    static edi_node_options env_opts;
    if (getenv("EDIST_TRANSPORT")) {
        edi_node_options_init(&env_opts);
        if (edi_node_options_load_env(&env_opts) ||
            edi_node_options_to_config(&env_opts, 0)) {
            fprintf(stderr, "options: %s\n", edist_last_error());
            return 2;
        }
        cfg = env_opts.cfg;
    }
    cfg.name = argv[1];
    cfg.cookie = argv[2];
    cfg.listen_address = "127.0.0.1";
    cfg.log = log_line;
    cfg.log_level = getenv("EDIST_TEST_DEBUG") ? EDIST_LOG_DEBUG : EDIST_LOG_INFO;
    cfg.shards = 2;
    cfg.shard_ring_entries = 64; /* small: rings fill */
    cfg.shard_backlog_limit = 1000; /* small: reading stops (s1hog) */
    edist_node *node;
    if (edist_node_start(&cfg, &node)) {
        fprintf(stderr, "node start: %s\n", edist_last_error());
        return 1;
    }
    g_rt = edist_node_runtime(node);
    static edist_procid recv;
    recv = start_on(1, s1recv, NULL, "s1recv");
    start_on(0, s0send, NULL, "s0send");
    start_on(1, s1send, NULL, "s1send");
    start_on(1, s1dier, NULL, "s1dier");
    start_on(0, watcher, "shard0 got: ", "s0watch");
    start_on(1, watcher, "shard1 got: ", "s1watch");
    start_on(1, s1spawn, NULL, "s1spawn");
    start_on(1, s1hog, NULL, "s1hog");

    edist_procid self;
    if (edist_proc_attach_thread(g_rt, 0, &self)) {
        fprintf(stderr, "attach: %s\n", edist_last_error());
        return 1;
    }
    edist_procid sender;
    if (edi_rt_spawn_here(g_rt->g->rt[0], local_sender, &recv, &sender)) {
        fprintf(stderr, "local sender: %s\n", edist_last_error());
        return 1;
    }
    /* Ask for the count until all arrived (the report is a message on
     * the same ring, after those the sender sent before). */
    int64_t count = 0;
    const char *order = "false";
    for (int tries = 0; tries < 1000 && count < LOCAL_COUNT; tries++) {
        uint8_t mem[64];
        edist_buf b;
        edist_buf_init_fixed(&b, mem, sizeof mem);
        edist_enc_tuple(&b, 2);
        edist_enc_atomz(&b, "report");
        edist_enc_procid(&b, self);
        edist_send(recv, b.data, b.len);
        edist_term_view m;
        if (edist_receive(NULL, NULL, 5000, &m))
            break;
        edist_cursor c;
        uint32_t n;
        edist_atom a, ok;
        edist_cursor_init(&c, m.ptr, m.len);
        if (edist_dec_tuple(&c, &n) == 0 && n == 3 && edist_dec_atom(&c, &a) == 0 &&
            edist_dec_int64(&c, &count) == 0 && edist_dec_atom(&c, &ok) == 0)
            order = edist_atom_eq(&ok, "true") ? "true" : "false";
        if (count < LOCAL_COUNT)
            usleep(10000);
    }
    if (count == LOCAL_COUNT && !strcmp(order, "true"))
        printf("local order: ok %lld\n", (long long)count);
    else
        printf("local order: FAILED count %lld in order %s\n", (long long)count, order);
    uint8_t reset[] = {EDIST_TAG_SMALL_ATOM_UTF8, 5, 'r', 'e', 's', 'e', 't'};
    edist_send(recv, reset, sizeof reset);
    edist_runtime_stats st;
    if (edist_runtime_get_stats(g_rt, &st) == 0)
        printf("shards %llu records sent %llu received %llu ring_full %llu held %llu\n",
               (unsigned long long)st.shards, (unsigned long long)st.shard_records_sent,
               (unsigned long long)st.shard_records_received,
               (unsigned long long)st.shard_ring_full,
               (unsigned long long)st.shard_senders_held);
    if (edist_runtime_register(g_rt, "s0main", self)) {
        fprintf(stderr, "s0main: %s\n", edist_last_error());
        return 1;
    }
    printf("ready\n");
    for (;;) {
        edist_term_view m;
        if (edist_receive(NULL, NULL, -1, &m))
            break;
        edist_cursor c;
        uint32_t n;
        char tag[32], name[256], node_name[256];
        int64_t count;
        edist_cursor_init(&c, m.ptr, m.len);
        if (edist_dec_tuple(&c, &n) || n != 4 || atom_str(&c, tag, sizeof tag) ||
            strcmp(tag, "send_and_stop") || atom_str(&c, name, sizeof name) ||
            atom_str(&c, node_name, sizeof node_name) || edist_dec_int64(&c, &count))
            continue;
        /* This thread process sends them itself: what a busy peer holds
         * back waits in the runtime, and the graceful stop lets it reach
         * the net kernel first (it once dropped the last ~150). */
        int rc = 0;
        for (int64_t i = 1; i <= count && rc == 0; i++)
            rc = send_seq(EDIST_PROCID_NULL, name, node_name, i);
        if (rc)
            printf("send_and_stop: %s\n", edist_last_error());
        printf("stopping after %lld\n", (long long)count);
        /* Stopped before detaching: a detach would wait for the thread's
         * held-back sends (its requests stay in order), the stop need
         * not. */
        edist_node_stop(node);
        edist_proc_detach_thread(NULL, 0);
        printf("stopped\n");
        return 0;
    }
    for (;;)
        pause();
}
