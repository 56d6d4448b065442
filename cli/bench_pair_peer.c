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
#include <stdatomic.h>
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
/* A sink waits this long after {stream_end, Sent} for messages still on
 * their way (several senders), then answers with what came. */
#define BENCH_PAIR_END_WAIT_MS 2000

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
    uint64_t ack_in;   /* messages until the next ack (no division each) */
    bool worker;       /* a fan-out process: ends after its stream_result */
    /* {stream_end, Sent} came with fewer received: the result waits for
     * the rest until end_by_ms. Several senders' messages may come after
     * the end their coordinator sent once they were sent (Erlang orders
     * each pair of processes only; a node's send queue takes its senders
     * in turns). */
    uint64_t end_sent, end_by_ms;
    bool end_pending;
} sink_state;

static void sink_reply(sink_state *s, edist_buf *b)
{
    if (edist_buf_error(b) == 0 &&
        send_waiting(s->driver, b->data, b->len, NULL) == 0)
        return;
    fprintf(stderr, "edist: bench pair: node b: cannot answer the driver: %s\n",
            edist_last_error());
}

/* A new run for driver: Count messages of Bytes, an ack every AckEvery;
 * says {hello, self()}. -1 when it cannot (nothing is said: the driver
 * reports the stall). */
static int sink_start(sink_state *s, edist_procid driver, uint64_t count,
                      uint64_t ack_every, uint64_t bytes)
{
    uint8_t *seen = calloc(1, count / 8 + 1);
    if (!seen) {
        fprintf(stderr,
                "edist: bench pair: node b: no memory for %" PRIu64
                " sequence numbers\n",
                count);
        return -1;
    }
    free(s->seen);
    bool worker = s->worker;
    *s = (sink_state){.driver = driver,
                      .count = count,
                      .ack_every = ack_every,
                      .bytes = bytes,
                      .seen = seen,
                      .ack_in = ack_every,
                      .worker = worker};
    uint8_t mem[128];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    edist_enc_tuple(&b, 2);
    edist_enc_atomz(&b, "hello");
    edist_enc_procid(&b, edist_self());
    sink_reply(s, &b);
    return 0;
}

/* Driver, Count, AckEvery, Bytes of a hello or a fan_out; -1 if bad. */
static int sink_run_args(edist_cursor *c, edist_procid *driver, uint64_t *count,
                         uint64_t *ack_every, uint64_t *bytes)
{
    if (edist_dec_procid(c, driver) != 0 || edist_dec_uint64(c, count) != 0 ||
        edist_dec_uint64(c, ack_every) != 0 ||
        edist_dec_uint64(c, bytes) != 0 || *count > BENCH_PAIR_MAX_COUNT ||
        *ack_every == 0)
        return -1;
    return 0;
}

/* {hello, Driver, Count, AckEvery, Bytes}: a new run. */
static void sink_hello(sink_state *s, edist_cursor *c)
{
    edist_procid driver;
    uint64_t count, ack_every, bytes;
    if (sink_run_args(c, &driver, &count, &ack_every, &bytes) != 0) {
        s->bad++;
        return;
    }
    sink_start(s, driver, count, ack_every, bytes);
}

static void sink_main(void *arg);

/* {fan_out, Driver, N, Count, AckEvery, Bytes}: N sinks of their own. */
static void sink_fan_out(sink_state *s, edist_cursor *c)
{
    edist_procid driver;
    uint64_t n, count, ack_every, bytes;
    if (edist_dec_procid(c, &driver) != 0 || edist_dec_uint64(c, &n) != 0 ||
        edist_dec_uint64(c, &count) != 0 ||
        edist_dec_uint64(c, &ack_every) != 0 ||
        edist_dec_uint64(c, &bytes) != 0 || n == 0 || n > 1024 ||
        count > BENCH_PAIR_MAX_COUNT || ack_every == 0) {
        s->bad++;
        return;
    }
    for (uint64_t i = 0; i < n; i++) {
        sink_state *w = calloc(1, sizeof *w);
        edist_procid pid;
        if (w)
            *w = (sink_state){.worker = true,
                              .driver = driver,
                              .count = count,
                              .ack_every = ack_every,
                              .bytes = bytes};
        if (!w || edist_spawn(sink_main, w, &pid) != 0) {
            free(w); /* the driver sees fewer hellos and reports it */
            s->bad++;
            return;
        }
    }
}

/* {data, Seq, Pad}: count it, check it, acknowledge every ack_every. */
static void sink_data(sink_state *s, edist_cursor *c, size_t len)
{
    uint64_t seq;
    /* A BEAM sender writes a small Seq in fewer bytes than edist's 5. */
    if (!s->seen || len > s->bytes || len + 3 < s->bytes ||
        edist_dec_uint64(c, &seq) != 0 ||
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
    if (--s->ack_in == 0) {
        s->ack_in = s->ack_every;
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

static void sink_state_free(void *arg)
{
    sink_state *s = arg;
    free(s->seen);
    free(s);
}

static void sink_main(void *arg)
{
    sink_state *s = arg;
    if (s->worker) {
        edist_at_exit(sink_state_free, s);
        if (sink_start(s, s->driver, s->count, s->ack_every, s->bytes) != 0)
            return;
    }
    for (;;) {
        edist_term_view m;
        int64_t wait = -1;
        if (s->end_pending) {
            uint64_t now = now_ns() / 1000000u;
            if (s->received >= s->end_sent || now >= s->end_by_ms) {
                s->end_pending = false;
                sink_stream_end(s);
                if (s->worker)
                    return;
                continue;
            }
            wait = (int64_t)(s->end_by_ms - now);
        }
        if (edist_receive(NULL, NULL, wait, &m) != 0)
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
        else if (arity == 5 && atom_is(&tag, "hello") && !s->worker)
            sink_hello(s, &c);
        else if (arity == 6 && atom_is(&tag, "fan_out") && !s->worker)
            sink_fan_out(s, &c);
        else if (arity == 2 && atom_is(&tag, "stream_end") && s->seen) {
            uint64_t sent = 0;
            if (edist_dec_uint64(&c, &sent) != 0)
                sent = 0;
            s->end_sent = sent;
            s->end_by_ms = now_ns() / 1000000u + BENCH_PAIR_END_WAIT_MS;
            s->end_pending = true; /* answered above, once all came or in time */
        } else
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
    uint64_t count, rtt_count, warmup, ol_rate, ol_count, fan, fan_count;
    size_t bytes;
    uint64_t *rtt_ns; /* rtt_count samples */
    uint64_t *ol_ns;  /* ol_count samples */
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

/* The run's message with this tag; a failure is the job's error. */
static int job_message(driver_job *j, const char *tag, edist_buf *msg,
                       size_t *seq_at)
{
    int rc = build_message(msg, tag, j->bytes, seq_at);
    if (rc)
        job_fail(j, "message", rc);
    return rc;
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

/* At most this many messages or bytes unacknowledged, acknowledged by
 * the receivers every *ack_every: so small that `receivers` processes
 * each short of an ack cannot hold the whole window. */
static uint64_t stream_window(size_t bytes, uint64_t receivers,
                              uint64_t *ack_every)
{
    uint64_t window = BENCH_PAIR_WINDOW_BYTES / bytes;
    if (window > BENCH_PAIR_WINDOW_MESSAGES)
        window = BENCH_PAIR_WINDOW_MESSAGES;
    if (window < 1)
        window = 1;
    /* in sixteenths for one receiver (16,000 and 1,000 for small
     * messages, as bench/bench_dist.cc) */
    uint64_t parts = 16 * receivers;
    *ack_every = window / parts ? window / parts : 1;
    if (window < receivers * *ack_every)
        window = receivers * *ack_every;
    return window;
}

/* A sink's {hello, Pid}: its pid. */
static int receive_hello(driver_patterns *pt, edist_procid *pid)
{
    edist_term_view m;
    memset(pt->vars, 0, sizeof pt->vars);
    int rc = edist_receive(pt->hello, pt->vars, BENCH_PAIR_STALL_MS, &m);
    if (rc == 0) {
        edist_cursor c;
        int i = edist_pattern_var_index(pt->hello, "Pid");
        edist_cursor_init(&c, pt->vars[i].ptr, pt->vars[i].len);
        rc = edist_dec_procid(&c, pid);
    }
    return rc;
}

/* {hello, Self, Count, AckEvery, Bytes} to the sink; its pid. */
static int say_hello(driver_job *j, driver_patterns *pt, uint64_t count,
                     uint64_t ack_every, edist_procid *sink)
{
    uint8_t mem[256];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    edist_enc_tuple(&b, 5);
    edist_enc_atomz(&b, "hello");
    edist_enc_procid(&b, edist_self());
    edist_enc_uint(&b, count);
    edist_enc_uint(&b, ack_every);
    edist_enc_uint(&b, j->bytes);
    int rc = edist_buf_error(&b);
    if (rc == 0)
        rc = edist_send_name_node(BENCH_PAIR_SINK_NAME, j->sink_node, b.data,
                                  b.len);
    if (rc == 0)
        rc = receive_hello(pt, sink);
    if (rc)
        job_fail(j, "no answer to hello from the sink", rc);
    return rc;
}

/* {stream_end, Sent} to a sink and its {stream_result, ...}: *unique,
 * and the rest added to r; messages out of order only for a stream from
 * one sender to one receiver (`ordered`), where they are a fault. */
static int end_stream(driver_job *j, driver_patterns *pt, edist_procid sink,
                      uint64_t sent, bool ordered, uint64_t *unique)
{
    bench_pair_result *r = &j->r;
    uint8_t mem[64];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    edist_enc_tuple(&b, 2);
    edist_enc_atomz(&b, "stream_end");
    edist_enc_uint(&b, sent);
    int rc = send_waiting(sink, b.data, b.len, &r->send_waits);
    edist_term_view m;
    memset(pt->vars, 0, sizeof pt->vars);
    if (rc == 0)
        rc = edist_receive(pt->result, pt->vars, BENCH_PAIR_STALL_MS, &m);
    if (rc) {
        job_fail(j, "no stream result from the sink", rc);
        return rc;
    }
    r->received += var_uint(pt->result, pt->vars, "Received");
    *unique = var_uint(pt->result, pt->vars, "Unique");
    if (ordered)
        r->out_of_order += var_uint(pt->result, pt->vars, "OutOfOrder");
    r->duplicates += var_uint(pt->result, pt->vars, "Duplicates");
    r->bad_messages += var_uint(pt->result, pt->vars, "Bad");
    return 0;
}

/* Acks sent before a result are still queued: take them so that later
 * receives find only what they wait for. */
static void drop_acks(driver_patterns *pt)
{
    edist_term_view m;
    memset(pt->vars, 0, sizeof pt->vars);
    while (edist_receive(pt->ack, pt->vars, 0, &m) == 0)
        memset(pt->vars, 0, sizeof pt->vars);
}

/* Sends `total` messages to the sinks (message i to sinks[i % n] with
 * sequence number i / n) with at most `window` unacknowledged, an {ack, _}
 * standing for ack_every; the sent counts per sink in sent[]. */
static int stream_to(driver_job *j, driver_patterns *pt, const edist_procid *sinks,
                     uint64_t n, uint64_t total, uint64_t window,
                     uint64_t ack_every, uint64_t *sent)
{
    bench_pair_result *r = &j->r;
    edist_buf msg;
    size_t seq_at;
    int rc = job_message(j, "data", &msg, &seq_at);
    if (rc)
        return rc;
    uint64_t acked = 0;
    /* i % n and i / n kept as counters: a division per message was a
     * few percent of the sender's time */
    uint64_t dst = 0, round = 0;
    for (uint64_t i = 0; rc == 0 && i < total; i++) {
        while (rc == 0 && i - acked >= window) {
            edist_term_view m;
            memset(pt->vars, 0, sizeof pt->vars);
            rc = edist_receive(pt->ack, pt->vars, BENCH_PAIR_STALL_MS, &m);
            if (rc == 0)
                acked += ack_every;
        }
        if (rc == EDIST_ETIMEDOUT) {
            r->stalled = 1; /* still ask what arrived */
            rc = 0;
            break;
        }
        set_seq(&msg, seq_at, (uint32_t)round);
        if (rc == 0)
            rc = send_waiting(sinks[dst], msg.data, msg.len, &r->send_waits);
        if (rc == 0)
            sent[dst]++;
        if (++dst == n) {
            dst = 0;
            round++;
        }
    }
    edist_buf_free(&msg);
    if (rc)
        job_fail(j, "stream", rc);
    return rc;
}

/* The stream to the sink; fills j->r's stream fields. */
static int run_stream(driver_job *j, driver_patterns *pt, edist_procid sink)
{
    bench_pair_result *r = &j->r;
    uint64_t ack_every, window = stream_window(j->bytes, 1, &ack_every);
    uint64_t t0 = now_ns();
    int rc = stream_to(j, pt, &sink, 1, j->count, window, ack_every, &r->sent);
    if (rc == 0)
        rc = end_stream(j, pt, sink, r->sent, true, &r->unique);
    r->stream_seconds = (double)(now_ns() - t0) / 1e9;
    drop_acks(pt);
    return rc;
}

static int run_pingpong(driver_job *j, edist_procid sink)
{
    bench_pair_result *r = &j->r;
    edist_buf msg;
    size_t seq_at;
    int rc = job_message(j, "ping", &msg, &seq_at);
    if (rc)
        return rc;
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
        if (seq_of(&m) != (int64_t)i)
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

/* Open loop: ol_count pings at ol_rate a second, sent when the schedule
 * says whatever has come back; each timed from its scheduled send. */
static int run_open_loop(driver_job *j, edist_procid sink)
{
    bench_pair_result *r = &j->r;
    edist_buf msg;
    size_t seq_at;
    int rc = job_message(j, "ping", &msg, &seq_at);
    if (rc)
        return rc;
    double period_ns = 1e9 / (double)j->ol_rate;
    uint64_t n = j->ol_count, next = 0, got = 0, t0 = now_ns(), last = t0;
    while (rc == 0 && got < n) {
        uint64_t now = now_ns();
        while (next < n && t0 + (uint64_t)((double)next * period_ns) <= now) {
            set_seq(&msg, seq_at, (uint32_t)next);
            rc = edist_send(sink, msg.data, msg.len);
            if (rc == EDIST_EAGAIN) { /* late: its wait counts */
                r->send_waits++;
                rc = 0;
                break;
            }
            if (rc)
                break;
            next++;
        }
        edist_term_view m;
        bool any = false;
        while (rc == 0 && edist_receive(NULL, NULL, 0, &m) == 0) {
            int64_t seq = seq_of(&m);
            uint64_t at = now_ns();
            if (seq < 0 || (uint64_t)seq >= next) {
                r->out_of_order++;
                continue;
            }
            uint64_t due = t0 + (uint64_t)((double)seq * period_ns);
            j->ol_ns[got++] = at - due;
            any = true;
        }
        if (any)
            last = now_ns();
        else if (now_ns() - last > (uint64_t)BENCH_PAIR_STALL_MS * 1000000u)
            rc = EDIST_ETIMEDOUT;
        else
            edist_yield();
    }
    r->ol_seconds = (double)(now_ns() - t0) / 1e9;
    r->ol_rate = j->ol_rate;
    r->ol_count = n;
    r->ol_received = got;
    edist_buf_free(&msg);
    if (rc)
        job_fail(j, "open loop: pongs stopped", rc);
    return rc;
}

/* Fan-out: one stream spread over `fan` processes of the sink's node. */
static int run_fan_out(driver_job *j, driver_patterns *pt)
{
    bench_pair_result *r = &j->r;
    uint64_t n = j->fan, each = j->fan_count / n;
    uint64_t ack_every, window = stream_window(j->bytes, n, &ack_every);
    edist_procid *sinks = calloc(n, sizeof *sinks);
    uint64_t *sent = calloc(n, sizeof *sent);
    int rc = sinks && sent ? 0 : EDIST_ENOMEM;
    /* held across waits: a kill would skip the frees below */
    if (rc == 0) {
        edist_at_exit(free, sinks);
        edist_at_exit(free, sent);
    }
    uint8_t mem[256];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    edist_enc_tuple(&b, 6);
    edist_enc_atomz(&b, "fan_out");
    edist_enc_procid(&b, edist_self());
    edist_enc_uint(&b, n);
    edist_enc_uint(&b, each);
    edist_enc_uint(&b, ack_every);
    edist_enc_uint(&b, j->bytes);
    if (rc == 0)
        rc = edist_buf_error(&b);
    if (rc == 0)
        rc = edist_send_name_node(BENCH_PAIR_SINK_NAME, j->sink_node, b.data,
                                  b.len);
    for (uint64_t i = 0; rc == 0 && i < n; i++)
        rc = receive_hello(pt, &sinks[i]);
    if (rc) {
        job_fail(j, "fan-out: no answer from the sink's processes", rc);
        return rc;
    }
    uint64_t t0 = now_ns();
    rc = stream_to(j, pt, sinks, n, each * n, window, ack_every, sent);
    for (uint64_t i = 0; rc == 0 && i < n; i++) {
        uint64_t unique = 0;
        rc = end_stream(j, pt, sinks[i], sent[i], true, &unique);
        r->fanout_sent += sent[i];
        r->fanout_unique += unique;
    }
    r->fanout_seconds = (double)(now_ns() - t0) / 1e9;
    drop_acks(pt);
    return rc;
}

/* Fan-in: `fan` processes of this node stream to the one sink; the
 * acknowledgements come to the process that said hello, which lets the
 * senders on. */
typedef struct fan_in {
    edist_procid coordinator, sink;
    uint64_t total, senders, window, bytes;
    _Atomic uint64_t sent, acked;
    _Atomic bool stop; /* the coordinator gave up */
} fan_in;

typedef struct fan_in_sender {
    fan_in *f;
    uint64_t first;
    edist_buf msg; /* here, not on the stack: freed at the process's end */
} fan_in_sender;

static void fan_in_sender_free(void *arg)
{
    edist_buf_free(&((fan_in_sender *)arg)->msg);
}

static void fan_in_sender_main(void *arg)
{
    fan_in_sender *s = arg;
    fan_in *f = s->f;
    edist_buf *msg = &s->msg;
    size_t seq_at;
    uint64_t waits = 0;
    int rc = build_message(msg, "data", f->bytes, &seq_at);
    if (rc == 0)
        edist_at_exit(fan_in_sender_free, s);
    for (uint64_t seq = s->first; rc == 0 && seq < f->total;
         seq += f->senders) {
        while (atomic_load(&f->sent) - atomic_load(&f->acked) >= f->window &&
               !atomic_load(&f->stop))
            edist_yield();
        if (atomic_load(&f->stop))
            break;
        set_seq(msg, seq_at, (uint32_t)seq);
        rc = send_waiting(f->sink, msg->data, msg->len, &waits);
        if (rc == 0)
            atomic_fetch_add(&f->sent, 1);
    }
    static const uint8_t done[] = {EDIST_TAG_SMALL_ATOM_UTF8, 8, 'f', 'a', 'n',
                                   '_', 'd', 'o', 'n', 'e'};
    send_waiting(f->coordinator, done, sizeof done, NULL);
}

static int run_fan_in(driver_job *j, driver_patterns *pt)
{
    bench_pair_result *r = &j->r;
    uint64_t n = j->fan, total = j->fan_count / n * n;
    static fan_in f;
    static fan_in_sender senders[1024];
    uint64_t ack_every;
    f = (fan_in){.coordinator = edist_self(),
                 .total = total,
                 .senders = n,
                 .bytes = j->bytes,
                 .window = stream_window(j->bytes, 1, &ack_every)};
    edist_procid sink;
    int rc = say_hello(j, pt, total, ack_every, &sink);
    f.sink = sink;
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; rc == 0 && i < n; i++) {
        edist_procid pid;
        senders[i] = (fan_in_sender){.f = &f, .first = i};
        rc = edist_spawn(fan_in_sender_main, &senders[i], &pid);
    }
    if (rc) {
        job_fail(j, "fan-in: senders", rc);
        atomic_store(&f.stop, true);
        return rc;
    }
    for (uint64_t done = 0; rc == 0 && done < n;) {
        edist_term_view m;
        edist_atom tag;
        edist_cursor c;
        uint32_t arity;
        rc = edist_receive(NULL, NULL, BENCH_PAIR_STALL_MS, &m);
        if (rc)
            break;
        edist_cursor_init(&c, m.ptr, m.len);
        if (edist_dec_atom(&c, &tag) == 0)
            done++; /* fan_done */
        else if (edist_cursor_init(&c, m.ptr, m.len),
                 edist_dec_tuple(&c, &arity) == 0 && arity == 2)
            atomic_fetch_add(&f.acked, ack_every);
    }
    if (rc == EDIST_ETIMEDOUT) {
        r->stalled = 1;
        atomic_store(&f.stop, true);
        rc = 0;
    }
    r->fanin_sent = atomic_load(&f.sent);
    if (rc == 0)
        rc = end_stream(j, pt, sink, r->fanin_sent, false, &r->fanin_unique);
    r->fanin_seconds = (double)(now_ns() - t0) / 1e9;
    drop_acks(pt);
    return rc;
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
    uint64_t ack_every;
    stream_window(j->bytes, 1, &ack_every);
    if (rc)
        job_fail(j, "pattern", rc);
    else
        rc = say_hello(j, &pt, j->count, ack_every, &sink);
    if (rc == 0 && j->count)
        rc = run_stream(j, &pt, sink);
    if (rc == 0 && j->rtt_count)
        rc = run_pingpong(j, sink);
    if (rc == 0 && j->ol_count)
        rc = run_open_loop(j, sink);
    if (rc == 0 && j->fan)
        rc = run_fan_out(j, &pt);
    if (rc == 0 && j->fan)
        rc = run_fan_in(j, &pt); /* last: it says hello anew */
    bench_pair_result *r = &j->r;
    r->fan = j->fan;
    r->lost = (r->sent - r->unique) + (r->fanout_sent - r->fanout_unique) +
              (r->fanin_sent - r->fanin_unique);
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
    bench_pair_result *r = &j->r;
    cli_latency c = cli_latency_us(j->rtt_ns, (size_t)r->rtt_count);
    cli_latency o = cli_latency_us(j->ol_ns, (size_t)r->ol_received);
    r->rtt_p50_us = c.p50;
    r->rtt_p90_us = c.p90;
    r->rtt_p99_us = c.p99;
    r->rtt_p999_us = c.p999;
    r->rtt_max_us = c.max;
    r->ol_p50_us = o.p50;
    r->ol_p90_us = o.p90;
    r->ol_p99_us = o.p99;
    r->ol_p999_us = o.p999;
    r->ol_max_us = o.max;
}

static int write_cdf(const char *path, const uint64_t *sorted, size_t n)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return edist_set_error(EDIST_EIO, "%s: %s", path, strerror(errno));
    int bad = cli_write_cdf(f, sorted, n);
    if (fclose(f) != 0 || bad)
        return edist_set_error(EDIST_EIO, "%s: %s", path, strerror(errno));
    return 0;
}

static int write_samples(const driver_job *j, const char *prefix)
{
    char path[4096];
    int rc = 0;
    if (j->r.rtt_count) {
        snprintf(path, sizeof path, "%s.closed.cdf", prefix);
        rc = write_cdf(path, j->rtt_ns, (size_t)j->r.rtt_count);
    }
    if (rc == 0 && j->r.ol_received) {
        snprintf(path, sizeof path, "%s.open.cdf", prefix);
        rc = write_cdf(path, j->ol_ns, (size_t)j->r.ol_received);
    }
    return rc;
}

typedef struct driver_opts {
    const char *sink_node, *samples;
    long long bytes, count, rtt_count, warmup, ol_rate, ol_count, fan,
        fan_count;
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
            bad = parse_count(v, 0, BENCH_PAIR_MAX_COUNT, &o->count);
        else if (!strcmp(k, "--rtt-count"))
            bad = parse_count(v, 0, BENCH_PAIR_MAX_COUNT, &o->rtt_count);
        else if (!strcmp(k, "--rate"))
            bad = parse_count(v, 1, 1000000000, &o->ol_rate);
        else if (!strcmp(k, "--ol-count"))
            bad = parse_count(v, 0, BENCH_PAIR_MAX_COUNT, &o->ol_count);
        else if (!strcmp(k, "--fan"))
            bad = parse_count(v, 0, 1024, &o->fan);
        else if (!strcmp(k, "--fan-count"))
            bad = parse_count(v, 0, BENCH_PAIR_MAX_COUNT, &o->fan_count);
        else if (!strcmp(k, "--samples"))
            o->samples = v && *v ? v : NULL; /* "": none */
        else if (!strcmp(k, "--warmup"))
            bad = parse_count(v, 0, BENCH_PAIR_MAX_COUNT, &o->warmup);
        else if (!strcmp(k, "--await-lane"))
            bad = parse_count(v, 0, 600, &o->await_lane_s);
        else
            bad = 1;
        if (bad)
            return edist_set_error(EDIST_EINVAL, "bad option '%s'", k);
    }
    if (!o->sink_node || !o->bytes ||
        o->rtt_count + o->warmup > BENCH_PAIR_MAX_COUNT ||
        (o->ol_count && !o->ol_rate) || (o->fan && o->fan_count < o->fan))
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
                       .ol_rate = (uint64_t)o.ol_rate,
                       .ol_count = (uint64_t)o.ol_count,
                       .fan = (uint64_t)o.fan,
                       .fan_count = (uint64_t)o.fan_count,
                       .bytes = (size_t)o.bytes};
    job.rtt_ns = calloc((size_t)o.rtt_count + 1, sizeof *job.rtt_ns);
    job.ol_ns = calloc((size_t)o.ol_count + 1, sizeof *job.ol_ns);
    /* Touched now: a page fault in a timed round trip (one every 512
     * samples, ~10 us each here) was a fifth of the slow ones. */
    for (size_t i = 0; job.rtt_ns && i < (size_t)o.rtt_count; i += 512)
        ((volatile uint64_t *)job.rtt_ns)[i] = 1;
    for (size_t i = 0; job.ol_ns && i < (size_t)o.ol_count; i += 512)
        ((volatile uint64_t *)job.ol_ns)[i] = 1;
    edist_procid self, pid;
    edist_ref ref;
    rc = job.rtt_ns && job.ol_ns ? edist_node_connect(node, o.sink_node, 0)
                                 : EDIST_ENOMEM;
    if (rc == 0 && o.await_lane_s > 0)
        rc = await_lane(node, o.await_lane_s);
    if (rc == 0)
        rc = edist_proc_attach_thread(edist_node_runtime(node), 0, &self);
    if (rc) {
        cli_error(who, rc);
        free(job.rtt_ns);
        free(job.ol_ns);
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
    } else if (rtt_figures(&job), o.samples && write_samples(&job, o.samples)) {
        cli_error(who, EDIST_EIO);
        out = 1;
    } else {
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
    free(job.ol_ns);
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
