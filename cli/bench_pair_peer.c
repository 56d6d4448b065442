/* SPDX-License-Identifier: Apache-2.0 */
/* The two node processes of `edist bench pair` (cmd_bench.c starts them):
 *   edist bench pair-peer sink   -- NODE OPTIONS
 *   edist bench pair-peer driver --peer NODE --bytes B --count N
 *                                --rtt-count R --warmup W -- NODE OPTIONS
 * NODE OPTIONS are `edist node`'s flags (name, port mapper, idle, ...); the
 * environment's EDIST_* variables apply as for `edist node` (the cookie,
 * and the number of shards, come that way, off the command line).
 *
 * The sink runs a process registered as BENCH_PAIR_SINK_NAME that counts
 * and checks the stream and echoes pings, says "ready NAME" on stdout and
 * runs until SIGTERM/SIGINT. The driver connects to it, runs the stream
 * and the ping-pong in a green process of its node, and prints one result
 * line (bench_pair.h); exit 0 when it could measure, 1 otherwise, with the
 * reason on stderr. Only the public API does the node work. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "bench_pair.h"
#include "cli.h"
#include "log.h"
#include "control/node_config.h"
#include "edist/edist.h"
#include "percentile.h"

/* A peer that neither acknowledges nor answers for this long has stalled:
 * the driver stops and reports what it has. */
#define BENCH_PAIR_STALL_MS 10000

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Sends, waiting while the peer's queue is full (busy_dist_port), at most
 * BENCH_PAIR_STALL_MS in all; *waits counts the waits. */
static int send_waiting(edist_procid to, const void *term, size_t len,
                        uint64_t *waits)
{
    int rc;
    uint64_t give_up = 0;
    while ((rc = edist_send(to, term, len)) == EDIST_EAGAIN) {
        uint64_t t = now_ns();
        if (!give_up)
            give_up = t + (uint64_t)BENCH_PAIR_STALL_MS * 1000000u;
        else if (t > give_up)
            return EDIST_ETIMEDOUT;
        if (waits)
            (*waits)++;
        edist_sleep_ms(1);
    }
    return rc;
}

/* ---- the sink ------------------------------------------------------------ */

typedef struct sink_state {
    edist_procid driver;
    uint64_t count, ack_every, bytes;
    uint8_t *seen; /* a bit per sequence number */
    uint64_t received, unique, out_of_order, duplicates, bad;
    uint64_t next_seq; /* one past the highest received */
} sink_state;

static void sink_reply(sink_state *s, edist_buf *b)
{
    if (edist_buf_error(b) == 0 &&
        send_waiting(s->driver, b->data, b->len, NULL) == 0)
        return;
    fprintf(stderr, "edist: bench pair: node b: cannot answer the driver: %s\n",
            edist_last_error());
}

/* {hello, Driver, Count, AckEvery, Bytes}: a new run. */
static void sink_hello(sink_state *s, edist_cursor *c)
{
    edist_procid driver;
    uint64_t count, ack_every, bytes;
    if (edist_dec_procid(c, &driver) != 0 || edist_dec_uint64(c, &count) != 0 ||
        edist_dec_uint64(c, &ack_every) != 0 ||
        edist_dec_uint64(c, &bytes) != 0 || count > BENCH_PAIR_MAX_COUNT ||
        ack_every == 0) {
        s->bad++;
        return;
    }
    uint8_t *seen = calloc(1, count / 8 + 1);
    if (!seen) {
        fprintf(stderr,
                "edist: bench pair: node b: no memory for %" PRIu64
                " sequence numbers\n",
                count);
        return; /* no answer: the driver reports the stall */
    }
    free(s->seen);
    *s = (sink_state){.driver = driver,
                      .count = count,
                      .ack_every = ack_every,
                      .bytes = bytes,
                      .seen = seen};
    uint8_t mem[128];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    edist_enc_tuple(&b, 2);
    edist_enc_atomz(&b, "hello");
    edist_enc_procid(&b, edist_self());
    sink_reply(s, &b);
}

/* {data, Seq, Pad}: count it, check it, acknowledge every ack_every. */
static void sink_data(sink_state *s, edist_cursor *c, size_t len)
{
    uint64_t seq;
    if (!s->seen || len != s->bytes || edist_dec_uint64(c, &seq) != 0 ||
        seq >= s->count) {
        s->bad++;
        return;
    }
    s->received++;
    uint8_t bit = (uint8_t)(1u << (seq & 7));
    if (s->seen[seq >> 3] & bit) {
        s->duplicates++;
    } else {
        s->seen[seq >> 3] |= bit;
        s->unique++;
        if (seq + 1 < s->next_seq)
            s->out_of_order++; /* a later one came first */
    }
    if (seq + 1 > s->next_seq)
        s->next_seq = seq + 1;
    if (s->received % s->ack_every == 0) {
        uint8_t mem[32];
        edist_buf b;
        edist_buf_init_fixed(&b, mem, sizeof mem);
        edist_enc_tuple(&b, 2);
        edist_enc_atomz(&b, "ack");
        edist_enc_uint(&b, s->received);
        sink_reply(s, &b);
    }
}

static void sink_stream_end(sink_state *s)
{
    uint8_t mem[128];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    edist_enc_tuple(&b, 6);
    edist_enc_atomz(&b, "stream_result");
    edist_enc_uint(&b, s->received);
    edist_enc_uint(&b, s->unique);
    edist_enc_uint(&b, s->out_of_order);
    edist_enc_uint(&b, s->duplicates);
    edist_enc_uint(&b, s->bad);
    sink_reply(s, &b);
}

static bool atom_is(const edist_atom *a, const char *text)
{
    return a->len == strlen(text) && memcmp(a->ptr, text, a->len) == 0;
}

static void sink_main(void *arg)
{
    sink_state *s = arg;
    for (;;) {
        edist_term_view m;
        if (edist_receive(NULL, NULL, -1, &m) != 0)
            continue;
        edist_cursor c;
        uint32_t arity;
        edist_atom tag;
        edist_cursor_init(&c, m.ptr, m.len);
        if (edist_dec_tuple(&c, &arity) != 0 || arity < 1 ||
            edist_dec_atom(&c, &tag) != 0) {
            s->bad++;
            continue;
        }
        if (arity == 3 && atom_is(&tag, "data"))
            sink_data(s, &c, m.len);
        else if (arity == 3 && atom_is(&tag, "ping") && s->seen)
            send_waiting(s->driver, m.ptr, m.len, NULL);
        else if (arity == 5 && atom_is(&tag, "hello"))
            sink_hello(s, &c);
        else if (arity == 2 && atom_is(&tag, "stream_end") && s->seen)
            sink_stream_end(s);
        else
            s->bad++;
    }
}

/* ---- the node ------------------------------------------------------------ */

/* Starts the node from `edist node` flags and the EDIST_* environment. */
static int node_up(const char *who, int argc, char **argv, edist_node **node)
{
    static edi_node_options o;
    edi_node_options_init(&o);
    edi_node_options_set(&o, EDI_OPT_LOG_LEVEL, "warning", EDI_OPT_DEFAULT,
                         NULL);
    /* nothing but the measured work on the shards */
    edi_node_options_set(&o, EDI_OPT_PUBLISH_STATS, "false", EDI_OPT_DEFAULT, NULL);
    int positional[1], np = 0;
    int rc =
        edi_node_options_parse_args(&o, argc, argv, positional, 0, &np, NULL);
    if (rc == 0)
        rc = edi_node_options_load_all(&o);
    if (rc == 0)
        rc = edi_node_options_to_config(&o, 1);
    if (rc == 0) {
        o.cfg.log = cli_log;
        o.cfg.log_user = (void *)who;
        rc = edist_node_start(&o.cfg, node);
    }
    if (rc)
        cli_error(who, rc);
    return rc;
}

static int sink_role(int argc, char **argv)
{
    /* Taken by sigwait below: blocked before any thread exists. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    const char *who = "bench pair: node b";
    edist_node *node;
    if (node_up(who, argc, argv, &node))
        return 1;
    static sink_state state;
    edist_runtime *rt = edist_node_runtime(node);
    edist_procid pid;
    int rc = edist_runtime_spawn(rt, sink_main, &state, NULL, &pid);
    if (rc == 0)
        rc = edist_runtime_register(rt, BENCH_PAIR_SINK_NAME, pid);
    if (rc) {
        cli_error(who, rc);
        edist_node_stop(node);
        return 1;
    }
    printf("%s%s\n", BENCH_PAIR_READY_PREFIX, edist_node_name(node));
    fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    edist_node_stop(node);
    free(state.seen);
    return 0;
}

/* ---- the driver ---------------------------------------------------------- */

typedef struct driver_job {
    const char *sink_node;
    uint64_t count, rtt_count, warmup;
    size_t bytes;
    uint64_t *rtt_ns; /* rtt_count samples */
    bench_pair_result r;
    char error[512]; /* "" while all is well */
} driver_job;

/* {Tag, Seq, <<Pad>>}, exactly `bytes` long, Seq as a 32-bit integer at
 * *seq_at so that each message is the same size and only the number is
 * rewritten between sends. */
static int build_message(edist_buf *b, const char *tag, size_t bytes,
                         size_t *seq_at)
{
    static const uint8_t int32_zero[] = {EDIST_TAG_INTEGER, 0, 0, 0, 0};
    edist_buf head;
    edist_buf_init(&head);
    edist_enc_tuple(&head, 3);
    edist_enc_atomz(&head, tag);
    *seq_at = head.len + 1;
    edist_enc_raw(&head, int32_zero, sizeof int32_zero);
    edist_enc_binary(&head, int32_zero, 0);
    int rc = edist_buf_error(&head);
    size_t pad_bytes = bytes > head.len ? bytes - head.len : 0;
    uint8_t *pad = malloc(pad_bytes + 1);
    edist_buf_init(b);
    if (rc == 0 && pad) {
        memset(pad, 'x', pad_bytes);
        edist_enc_tuple(b, 3);
        edist_enc_atomz(b, tag);
        edist_enc_raw(b, int32_zero, sizeof int32_zero);
        edist_enc_binary(b, pad, pad_bytes);
        rc = edist_buf_error(b);
    } else if (rc == 0) {
        rc = EDIST_ENOMEM;
    }
    if (rc == 0 && b->len != bytes)
        rc = edist_set_error(EDIST_EINVAL, "a message is at least %zu bytes",
                             head.len);
    free(pad);
    edist_buf_free(&head);
    return rc;
}

static void set_seq(edist_buf *b, size_t at, uint32_t seq)
{
    b->data[at] = (uint8_t)(seq >> 24);
    b->data[at + 1] = (uint8_t)(seq >> 16);
    b->data[at + 2] = (uint8_t)(seq >> 8);
    b->data[at + 3] = (uint8_t)seq;
}

/* The sequence number of a {Tag, Seq, _} message, or -1. */
static int64_t seq_of(const edist_term_view *m)
{
    edist_cursor c;
    uint32_t arity;
    edist_atom tag;
    int64_t seq;
    edist_cursor_init(&c, m->ptr, m->len);
    if (edist_dec_tuple(&c, &arity) != 0 || arity != 3 ||
        edist_dec_atom(&c, &tag) != 0 || edist_dec_int64(&c, &seq) != 0)
        return -1;
    return seq;
}

static uint64_t var_uint(const edist_pattern *p, const edist_term_view *vars,
                         const char *name)
{
    int i = edist_pattern_var_index(p, name);
    uint64_t v = 0;
    if (i >= 0) {
        edist_cursor c;
        edist_cursor_init(&c, vars[i].ptr, vars[i].len);
        edist_dec_uint64(&c, &v);
    }
    return v;
}

static void job_fail(driver_job *j, const char *what, int rc)
{
    if (!j->error[0])
        snprintf(j->error, sizeof j->error, "%s: %s%s%s", what,
                 edist_strerror(rc), edist_last_error()[0] ? ": " : "",
                 edist_last_error());
}

typedef struct driver_patterns {
    edist_pattern *hello, *ack, *result;
    edist_term_view vars[8];
} driver_patterns;

static int compile(const char *text, edist_pattern **p)
{
    edist_parse_error pe;
    return edist_pattern_compile(text, strlen(text), p, &pe);
}

/* hello, then the stream; fills j->r's stream fields. */
static int run_stream(driver_job *j, driver_patterns *pt, edist_procid *sink)
{
    bench_pair_result *r = &j->r;
    /* In flight at most a window of messages, acknowledged in sixteenths
     * (16,000 and 1,000 for small messages, as bench/bench_dist.cc). */
    uint64_t window = BENCH_PAIR_WINDOW_BYTES / j->bytes;
    if (window > BENCH_PAIR_WINDOW_MESSAGES)
        window = BENCH_PAIR_WINDOW_MESSAGES;
    if (window < 1)
        window = 1;
    uint64_t ack_every = window / 16 ? window / 16 : 1;

    uint8_t mem[256];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    edist_enc_tuple(&b, 5);
    edist_enc_atomz(&b, "hello");
    edist_enc_procid(&b, edist_self());
    edist_enc_uint(&b, j->count);
    edist_enc_uint(&b, ack_every);
    edist_enc_uint(&b, j->bytes);
    int rc = edist_buf_error(&b);
    if (rc == 0)
        rc = edist_send_name_node(BENCH_PAIR_SINK_NAME, j->sink_node, b.data,
                                  b.len);
    edist_term_view m;
    memset(pt->vars, 0, sizeof pt->vars);
    if (rc == 0)
        rc = edist_receive(pt->hello, pt->vars, BENCH_PAIR_STALL_MS, &m);
    if (rc == 0) {
        edist_cursor c;
        int i = edist_pattern_var_index(pt->hello, "Pid");
        edist_cursor_init(&c, pt->vars[i].ptr, pt->vars[i].len);
        rc = edist_dec_procid(&c, sink);
    }
    if (rc) {
        job_fail(j, "no answer to hello from the sink", rc);
        return rc;
    }

    edist_buf msg;
    size_t seq_at;
    rc = build_message(&msg, "data", j->bytes, &seq_at);
    if (rc) {
        job_fail(j, "message", rc);
        return rc;
    }
    uint64_t acked = 0, t0 = now_ns();
    for (uint64_t seq = 0; rc == 0 && seq < j->count && !r->stalled; seq++) {
        while (rc == 0 && seq - acked >= window) {
            memset(pt->vars, 0, sizeof pt->vars);
            rc = edist_receive(pt->ack, pt->vars, BENCH_PAIR_STALL_MS, &m);
            if (rc == 0)
                acked = var_uint(pt->ack, pt->vars, "N");
        }
        if (rc == EDIST_ETIMEDOUT) {
            r->stalled = 1; /* still ask what arrived */
            rc = 0;
            break;
        }
        set_seq(&msg, seq_at, (uint32_t)seq);
        if (rc == 0)
            rc = send_waiting(*sink, msg.data, msg.len, &r->send_waits);
        if (rc == 0)
            r->sent++;
    }
    edist_buf_free(&msg);
    if (rc) {
        job_fail(j, "stream", rc);
        return rc;
    }
    edist_buf_init_fixed(&b, mem, sizeof mem);
    edist_enc_tuple(&b, 2);
    edist_enc_atomz(&b, "stream_end");
    edist_enc_uint(&b, r->sent);
    rc = send_waiting(*sink, b.data, b.len, &r->send_waits);
    memset(pt->vars, 0, sizeof pt->vars);
    if (rc == 0)
        rc = edist_receive(pt->result, pt->vars, BENCH_PAIR_STALL_MS, &m);
    r->stream_seconds = (double)(now_ns() - t0) / 1e9;
    if (rc) {
        job_fail(j, "no stream result from the sink", rc);
        return rc;
    }
    r->received = var_uint(pt->result, pt->vars, "Received");
    r->unique = var_uint(pt->result, pt->vars, "Unique");
    r->out_of_order = var_uint(pt->result, pt->vars, "OutOfOrder");
    r->duplicates = var_uint(pt->result, pt->vars, "Duplicates");
    r->bad_messages = var_uint(pt->result, pt->vars, "Bad");
    r->lost = r->sent > r->unique ? r->sent - r->unique : 0;
    /* The acks sent before the result are still queued: take them so that
     * the ping-pong's receives find only pongs. */
    while (edist_receive(pt->ack, pt->vars, 0, &m) == 0)
        memset(pt->vars, 0, sizeof pt->vars);
    return 0;
}

static int run_pingpong(driver_job *j, edist_procid sink)
{
    bench_pair_result *r = &j->r;
    edist_buf msg;
    size_t seq_at;
    int rc = build_message(&msg, "ping", j->bytes, &seq_at);
    if (rc) {
        job_fail(j, "message", rc);
        return rc;
    }
    uint64_t total = j->warmup + j->rtt_count, t_start = now_ns();
    for (uint64_t i = 0; rc == 0 && i < total; i++) {
        if (i == j->warmup)
            t_start = now_ns();
        set_seq(&msg, seq_at, (uint32_t)i);
        uint64_t t0 = now_ns();
        rc = send_waiting(sink, msg.data, msg.len, &r->send_waits);
        edist_term_view m;
        if (rc == 0)
            rc = edist_receive(NULL, NULL, BENCH_PAIR_STALL_MS, &m);
        uint64_t t1 = now_ns();
        if (rc)
            break;
        if (m.len != msg.len || seq_of(&m) != (int64_t)i)
            r->out_of_order++;
        if (i >= j->warmup)
            j->rtt_ns[i - j->warmup] = t1 - t0;
    }
    r->rtt_seconds = (double)(now_ns() - t_start) / 1e9;
    edist_buf_free(&msg);
    if (rc) {
        job_fail(j, "ping-pong: no pong", rc);
        return rc;
    }
    r->rtt_warmup = j->warmup;
    r->rtt_count = j->rtt_count;
    return 0;
}

static void driver_main(void *arg)
{
    driver_job *j = arg;
    driver_patterns pt = {0};
    int rc = compile("{hello, Pid}", &pt.hello);
    if (rc == 0)
        rc = compile("{ack, N}", &pt.ack);
    if (rc == 0)
        rc = compile("{stream_result, Received, Unique, OutOfOrder, "
                     "Duplicates, Bad}",
                     &pt.result);
    edist_procid sink;
    if (rc)
        job_fail(j, "pattern", rc);
    else if (run_stream(j, &pt, &sink) == 0)
        run_pingpong(j, sink);
    edist_pattern_free(pt.hello);
    edist_pattern_free(pt.ack);
    edist_pattern_free(pt.result);
}

/* {'DOWN', Ref, process, Pid, normal}? */
static bool down_normal(const edist_term_view *m)
{
    edist_cursor c;
    uint32_t arity;
    edist_atom reason;
    edist_cursor_init(&c, m->ptr, m->len);
    if (edist_dec_tuple(&c, &arity) != 0 || arity != 5)
        return false;
    for (int i = 0; i < 4; i++)
        if (edist_skip(&c) != 0)
            return false;
    return edist_dec_atom(&c, &reason) == 0 && atom_is(&reason, "normal");
}

static void rtt_figures(driver_job *j)
{
    size_t n = (size_t)j->rtt_count;
    cli_sort_u64(j->rtt_ns, n);
    bench_pair_result *r = &j->r;
    r->rtt_p50_us = (double)cli_percentile_u64(j->rtt_ns, n, 50) / 1e3;
    r->rtt_p90_us = (double)cli_percentile_u64(j->rtt_ns, n, 90) / 1e3;
    r->rtt_p99_us = (double)cli_percentile_u64(j->rtt_ns, n, 99) / 1e3;
    r->rtt_p999_us = (double)cli_percentile_u64(j->rtt_ns, n, 99.9) / 1e3;
    r->rtt_max_us = (double)cli_percentile_u64(j->rtt_ns, n, 100) / 1e3;
}

typedef struct driver_opts {
    const char *sink_node;
    long long bytes, count, rtt_count, warmup;
    long long await_lane_s; /* > 0: wait for the second lane both ways */
} driver_opts;

/* Both nodes moved their data to the second lane (transport dpdk): what
 * is measured is that lane, not TCP. */
static int await_lane(edist_node *node, long long seconds)
{
    for (long long ms = 0; ms < seconds * 1000; ms += 5) {
        edist_node_stats st;
        int rc = edist_node_get_stats(node, &st);
        if (rc)
            return rc;
        if (st.lane_switches > 0 && st.lane_peer_switches > 0)
            return 0;
        if (st.lane_setups_failed > 0)
            break;
        usleep(5000);
    }
    return edist_set_error(EDIST_ETIMEDOUT,
                           "the second lane did not come up (see the nodes' logs)");
}

static int parse_count(const char *text, long long lo, long long hi,
                       long long *out)
{
    char *end;
    errno = 0;
    long long v = text ? strtoll(text, &end, 10) : 0;
    if (!text || errno || end == text || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* The driver's own options, up to "--"; *used: how many. */
static int parse_driver_opts(int argc, char **argv, driver_opts *o, int *used)
{
    int i = 0;
    for (; i < argc && strcmp(argv[i], "--") != 0; i += 2) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = !v;
        if (!strcmp(k, "--peer"))
            o->sink_node = v;
        else if (!strcmp(k, "--bytes"))
            bad = parse_count(v, BENCH_PAIR_MIN_BYTES,
                              (long long)BENCH_PAIR_MAX_BYTES, &o->bytes);
        else if (!strcmp(k, "--count"))
            bad = parse_count(v, 1, BENCH_PAIR_MAX_COUNT, &o->count);
        else if (!strcmp(k, "--rtt-count"))
            bad = parse_count(v, 1, BENCH_PAIR_MAX_COUNT, &o->rtt_count);
        else if (!strcmp(k, "--warmup"))
            bad = parse_count(v, 0, BENCH_PAIR_MAX_COUNT, &o->warmup);
        else if (!strcmp(k, "--await-lane"))
            bad = parse_count(v, 0, 600, &o->await_lane_s);
        else
            bad = 1;
        if (bad)
            return edist_set_error(EDIST_EINVAL, "bad option '%s'", k);
    }
    if (!o->sink_node || !o->bytes || !o->count || !o->rtt_count ||
        o->rtt_count + o->warmup > BENCH_PAIR_MAX_COUNT)
        return edist_set_error(EDIST_EINVAL, "missing or bad options");
    *used = i < argc ? i + 1 : i;
    return 0;
}

static int driver_role(int argc, char **argv)
{
    const char *who = "bench pair: node a";
    driver_opts o = {0};
    int used = 0;
    int rc = parse_driver_opts(argc, argv, &o, &used);
    if (rc) {
        cli_error(who, rc);
        return 2;
    }
    edist_node *node;
    if (node_up(who, argc - used, argv + used, &node))
        return 1;
    static driver_job job;
    job = (driver_job){.sink_node = o.sink_node,
                       .count = (uint64_t)o.count,
                       .rtt_count = (uint64_t)o.rtt_count,
                       .warmup = (uint64_t)o.warmup,
                       .bytes = (size_t)o.bytes};
    job.rtt_ns = calloc((size_t)o.rtt_count, sizeof *job.rtt_ns);
    /* Touched now: a page fault in a timed round trip (one every 512
     * samples, ~10 us each here) was a fifth of the slow ones. */
    for (size_t i = 0; job.rtt_ns && i < (size_t)o.rtt_count; i += 512)
        ((volatile uint64_t *)job.rtt_ns)[i] = 1;
    edist_procid self, pid;
    edist_ref ref;
    rc = job.rtt_ns ? edist_node_connect(node, o.sink_node, 0) : EDIST_ENOMEM;
    if (rc == 0 && o.await_lane_s > 0)
        rc = await_lane(node, o.await_lane_s);
    if (rc == 0)
        rc = edist_proc_attach_thread(edist_node_runtime(node), 0, &self);
    if (rc) {
        cli_error(who, rc);
        free(job.rtt_ns);
        edist_node_stop(node);
        return 1;
    }
    /* Every receive of the driver is bounded (BENCH_PAIR_STALL_MS), so
     * its DOWN comes; the orchestrator bounds the whole run besides. */
    rc = edist_spawn_monitor(driver_main, &job, &pid, &ref);
    edist_term_view down;
    if (rc == 0)
        rc = edist_receive(NULL, NULL, -1, &down);
    int out = 0;
    if (rc) {
        cli_error(who, rc);
        out = 1;
    } else if (job.error[0]) {
        fprintf(stderr, "edist: %s: %s\n", who, job.error);
        out = 1;
    } else if (!down_normal(&down)) {
        fprintf(stderr, "edist: %s: the driver process ended abnormally\n",
                who);
        out = 1;
    } else {
        rtt_figures(&job);
        edist_node_stats st;
        if (edist_node_get_stats(node, &st) == 0) {
            job.r.messages_out = st.messages_sent;
            job.r.messages_in_place = st.messages_in_place;
        }
        char line[2048];
        bench_pair_result_format(&job.r, line, sizeof line);
        printf("%s\n", line);
        fflush(stdout);
    }
    edist_proc_detach_thread(NULL, 0);
    edist_node_stop(node);
    free(job.rtt_ns);
    return out;
}

int bench_pair_peer(int argc, char **argv)
{
    /* argv[0] is the subcommand, argv[1] the role. */
    if (argc >= 2 && !strcmp(argv[1], "sink")) {
        int skip = argc >= 3 && !strcmp(argv[2], "--") ? 3 : 2;
        return sink_role(argc - skip, argv + skip);
    }
    if (argc >= 2 && !strcmp(argv[1], "driver"))
        return driver_role(argc - 2, argv + 2);
    fprintf(stderr, "edist bench %s: run by `edist bench pair`, not by hand\n",
            BENCH_PAIR_PEER_COMMAND);
    return 2;
}
