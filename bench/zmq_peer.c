/* SPDX-License-Identifier: Apache-2.0 */
/* The ZeroMQ side of bench/compare: the workloads of `edist bench pair`
 * (cli/bench_pair.h) over libzmq, two processes (this one drives, a forked
 * child receives), printing the same "result field=value ..." line.
 *   edist_zmq_peer --pattern pushpull|pair --transport tcp|ipc --dir DIR
 *                  --bytes B [--count N] [--rtt-count R] [--warmup W]
 *                  [--rate R --ol-count N] [--fan P --fan-count N]
 *                  [--samples PREFIX]
 * A message is one frame of B bytes (at least 8) starting with its
 * sequence number. pushpull: the stream, and fan-out (one PUSH connected
 * to P PULL sockets) and fan-in (P PUSH sockets to one PULL), each
 * process on one thread as an edist node's processes are. pair: the
 * stream, closed-loop and open-loop round trips. Flow control is
 * ZeroMQ's own high-water marks (1,000 messages). The child reports what
 * it received on a socket of its own; every count is checked. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "cli/percentile.h"

#define STALL_MS 10000
#define MAX_FAN 64
/* Socket numbers: 0..MAX_FAN-1 data, MAX_FAN the driver's report socket. */
#define REPORT_EP MAX_FAN

typedef struct opts {
    const char *pattern, *transport, *dir, *samples;
    long long bytes, count, rtt_count, warmup, rate, ol_count, fan, fan_count;
} opts;

static opts o;
static void *ctx;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "edist_zmq_peer: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(1);
}

/* The endpoints the binding side got (tcp: ports the kernel picked);
 * the receiving child passes its own to the driver through a pipe. */
typedef struct endpoints {
    char data[MAX_FAN][128];
} endpoints;
static endpoints eps;
static char report_ep[128];

static void *sock(int type, bool bind, int i)
{
    char ep[512];
    if (bind && !strcmp(o.transport, "tcp"))
        snprintf(ep, sizeof ep, "tcp://127.0.0.1:*");
    else if (bind)
        snprintf(ep, sizeof ep, "ipc://%s/zmq-%d-%d.sock", o.dir, (int)getpid(), i);
    else
        snprintf(ep, sizeof ep, "%s", i == REPORT_EP ? report_ep : eps.data[i]);
    void *s = zmq_socket(ctx, type);
    int linger = 0, timeout = STALL_MS;
    if (!s)
        die("socket");
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
    if ((bind ? zmq_bind(s, ep) : zmq_connect(s, ep)) != 0)
        die(ep);
    if (bind) {
        char *out = i == REPORT_EP ? report_ep : eps.data[i];
        size_t len = sizeof eps.data[0];
        if (zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, out, &len) != 0)
            die("endpoint");
    }
    return s;
}

/* The child's report: received, unique, out of order, duplicates, bad. */
typedef struct report {
    uint64_t received, unique, out_of_order, duplicates, bad;
} report;


static void count_message(report *r, uint8_t *seen, uint64_t count,
                          uint64_t *next, const uint8_t *buf, int len)
{
    uint64_t seq;
    r->received++;
    if (len != o.bytes) {
        r->bad++;
        return;
    }
    memcpy(&seq, buf, sizeof seq);
    if (seq >= count) {
        r->bad++;
        return;
    }
    if (seen[seq]) {
        r->duplicates++;
        return;
    }
    seen[seq] = 1;
    r->unique++;
    if (seq + 1 < *next)
        r->out_of_order++;
    if (seq + 1 > *next)
        *next = seq + 1;
}

/* The child of a stream: `socks` receiving sockets, `count` messages in
 * all (sequence numbers below `count`, per-socket numbering when
 * per_socket), then the report. */
static void receive_stream(void **socks, int n, uint64_t count)
{
    uint8_t *buf = malloc((size_t)o.bytes + 1), *seen = calloc(count + 1, 1);
    report r = {0};
    uint64_t next = 0;
    zmq_pollitem_t items[MAX_FAN];
    for (int i = 0; i < n; i++)
        items[i] = (zmq_pollitem_t){.socket = socks[i], .events = ZMQ_POLLIN};
    while (r.received < count) {
        if (n == 1) {
            int len = zmq_recv(socks[0], buf, (size_t)o.bytes + 1, 0);
            if (len < 0)
                break;
            count_message(&r, seen, count, &next, buf, len);
            continue;
        }
        int ready = zmq_poll(items, n, STALL_MS);
        if (ready <= 0)
            break;
        for (int i = 0; i < n; i++) {
            int len;
            while ((len = zmq_recv(socks[i], buf, (size_t)o.bytes + 1,
                                   ZMQ_DONTWAIT)) >= 0)
                count_message(&r, seen, count, &next, buf, len);
        }
    }
    void *rep = sock(ZMQ_PUSH, false, REPORT_EP);
    int linger = STALL_MS; /* the report must leave before the close */
    zmq_setsockopt(rep, ZMQ_LINGER, &linger, sizeof linger);
    zmq_send(rep, &r, sizeof r, 0);
    zmq_close(rep);
    free(buf);
    free(seen);
}

static void echo(void *s, uint64_t n)
{
    uint8_t *buf = malloc((size_t)o.bytes + 1);
    for (uint64_t i = 0; i < n; i++) {
        int len = zmq_recv(s, buf, (size_t)o.bytes + 1, 0);
        if (len < 0 || zmq_send(s, buf, (size_t)len, 0) < 0)
            break;
    }
    free(buf);
}

typedef enum { STREAM, FAN_OUT, FAN_IN, CLOSED, OPEN } phase;

/* The receiving process of one phase; it writes a byte to ready_fd once
 * its sockets are bound (a PAIR socket does not reconnect: the driver must
 * not connect before). */
static void child(phase ph, uint64_t count, int ready_fd)
{
    ctx = zmq_ctx_new();
    void *socks[MAX_FAN];
    int n = ph == FAN_OUT ? (int)o.fan : 1;
    int type = !strcmp(o.pattern, "pair") ? ZMQ_PAIR : ZMQ_PULL;
    for (int i = 0; i < n; i++)
        socks[i] = sock(type, true, i);
    if (write(ready_fd, &eps, sizeof eps) != (ssize_t)sizeof eps)
        _exit(1);
    close(ready_fd);
    if (ph == CLOSED || ph == OPEN)
        echo(socks[0], count);
    else
        receive_stream(socks, n, count);
    /* the last pongs must leave before the close */
    int linger = STALL_MS;
    for (int i = 0; i < n; i++) {
        zmq_setsockopt(socks[i], ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(socks[i]);
    }
    zmq_ctx_term(ctx);
    _exit(0);
}

static pid_t start_child(phase ph, uint64_t count)
{
    int ready[2];
    if (pipe(ready) != 0) {
        perror("pipe");
        exit(1);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(ready[0]);
        child(ph, count, ready[1]);
    }
    close(ready[1]);
    if (read(ready[0], &eps, sizeof eps) != (ssize_t)sizeof eps) {
        fprintf(stderr, "edist_zmq_peer: the receiving process did not start\n");
        exit(1);
    }
    close(ready[0]);
    return pid;
}

static void end_child(pid_t pid)
{
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st)) {
        fprintf(stderr, "edist_zmq_peer: the receiving process failed\n");
        exit(1);
    }
}

static void put_seq(uint8_t *buf, uint64_t seq)
{
    memcpy(buf, &seq, sizeof seq);
}

/* Sends `total` messages over socks (message i on socks[i % n]) and waits
 * for the report; the seconds from the first send to the report. */
static double stream(phase ph, uint64_t total, report *r)
{
    int n = ph == FAN_IN ? (int)o.fan : 1;
    /* the report socket first, so the child's report cannot be lost */
    void *rep = sock(ZMQ_PULL, true, REPORT_EP);
    pid_t pid = start_child(ph, total);
    void *socks[MAX_FAN];
    int type = !strcmp(o.pattern, "pair") ? ZMQ_PAIR : ZMQ_PUSH;
    if (ph == FAN_OUT) {
        /* one PUSH connected to every PULL: ZeroMQ spreads the messages */
        socks[0] = zmq_socket(ctx, ZMQ_PUSH);
        int linger = 0, timeout = STALL_MS;
        zmq_setsockopt(socks[0], ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt(socks[0], ZMQ_SNDTIMEO, &timeout, sizeof timeout);
        for (int i = 0; i < o.fan; i++)
            if (zmq_connect(socks[0], eps.data[i]) != 0)
                die(eps.data[i]);
        /* PUSH round-robins over the pipes it has: wait for all of them */
        usleep(200000);
    } else {
        for (int i = 0; i < n; i++)
            socks[i] = sock(type, false, 0);
    }
    uint8_t *buf = calloc(1, (size_t)o.bytes);
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < total; i++) {
        put_seq(buf, i);
        if (zmq_send(socks[i % (uint64_t)n], buf, (size_t)o.bytes, 0) < 0)
            die("send");
    }
    if (zmq_recv(rep, r, sizeof *r, 0) != (int)sizeof *r)
        die("no report from the receiving process");
    double secs = (double)(now_ns() - t0) / 1e9;
    for (int i = 0; i < n; i++)
        zmq_close(socks[i]);
    zmq_close(rep);
    free(buf);
    end_child(pid);
    return secs;
}

/* Sorts v; writes its CDF when --samples asked for it. */
static cli_latency figures(uint64_t *v, size_t n, const char *suffix)
{
    cli_latency l = cli_latency_us(v, n);
    if (o.samples && n) {
        char path[4096];
        snprintf(path, sizeof path, "%s.%s.cdf", o.samples, suffix);
        FILE *f = fopen(path, "w");
        if (!f || cli_write_cdf(f, v, n) != 0 || fclose(f) != 0) {
            perror(path);
            exit(1);
        }
    }
    return l;
}

static double closed_loop(uint64_t *v)
{
    pid_t pid = start_child(CLOSED, (uint64_t)(o.warmup + o.rtt_count));
    void *s = sock(ZMQ_PAIR, false, 0);
    uint8_t *buf = calloc(1, (size_t)o.bytes + 1);
    uint64_t t_start = 0;
    for (long long i = 0; i < o.warmup + o.rtt_count; i++) {
        if (i == o.warmup)
            t_start = now_ns();
        put_seq(buf, (uint64_t)i);
        uint64_t t0 = now_ns();
        if (zmq_send(s, buf, (size_t)o.bytes, 0) < 0 ||
            zmq_recv(s, buf, (size_t)o.bytes + 1, 0) < 0)
            die("round trip");
        if (i >= o.warmup)
            v[i - o.warmup] = now_ns() - t0;
    }
    double secs = (double)(now_ns() - t_start) / 1e9;
    zmq_close(s);
    free(buf);
    end_child(pid);
    return secs;
}

static double open_loop(uint64_t *v, uint64_t *got_out)
{
    pid_t pid = start_child(OPEN, (uint64_t)o.ol_count);
    void *s = sock(ZMQ_PAIR, false, 0);
    uint8_t *buf = calloc(1, (size_t)o.bytes + 1);
    double period = 1e9 / (double)o.rate;
    uint64_t n = (uint64_t)o.ol_count, next = 0, got = 0;
    uint64_t t0 = now_ns(), last = t0;
    while (got < n) {
        uint64_t now = now_ns();
        while (next < n && t0 + (uint64_t)((double)next * period) <= now) {
            put_seq(buf, next);
            if (zmq_send(s, buf, (size_t)o.bytes, ZMQ_DONTWAIT) < 0)
                break; /* late: its wait counts */
            next++;
        }
        int len;
        while ((len = zmq_recv(s, buf, (size_t)o.bytes + 1, ZMQ_DONTWAIT)) >= 0) {
            uint64_t seq;
            memcpy(&seq, buf, sizeof seq);
            uint64_t at = now_ns();
            v[got++] = at - (t0 + (uint64_t)((double)seq * period));
            last = at;
        }
        if (now_ns() - last > (uint64_t)STALL_MS * 1000000u)
            die("open loop: pongs stopped");
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    *got_out = got;
    zmq_close(s);
    free(buf);
    end_child(pid);
    return secs;
}

static long long num(const char *flag, const char *v, long long lo, long long hi)
{
    char *end;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "edist_zmq_peer: %s: want %lld..%lld\n", flag, lo, hi);
        exit(2);
    }
    return x;
}

int main(int argc, char **argv)
{
    o = (opts){.pattern = "pair", .transport = "tcp", .dir = "/tmp", .bytes = 64};
    for (int i = 1; i < argc; i += 2) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "edist_zmq_peer: %s needs a value\n", k);
            return 2;
        }
        if (!strcmp(k, "--pattern"))
            o.pattern = v;
        else if (!strcmp(k, "--transport"))
            o.transport = v;
        else if (!strcmp(k, "--dir"))
            o.dir = v;
        else if (!strcmp(k, "--samples"))
            o.samples = *v ? v : NULL;
        else if (!strcmp(k, "--bytes"))
            o.bytes = num(k, v, 8, 1LL << 30);
        else if (!strcmp(k, "--count"))
            o.count = num(k, v, 0, 1LL << 31);
        else if (!strcmp(k, "--rtt-count"))
            o.rtt_count = num(k, v, 0, 1LL << 31);
        else if (!strcmp(k, "--warmup"))
            o.warmup = num(k, v, 0, 1LL << 31);
        else if (!strcmp(k, "--rate"))
            o.rate = num(k, v, 1, 1000000000);
        else if (!strcmp(k, "--ol-count"))
            o.ol_count = num(k, v, 0, 1LL << 31);
        else if (!strcmp(k, "--fan"))
            o.fan = num(k, v, 0, MAX_FAN);
        else if (!strcmp(k, "--fan-count"))
            o.fan_count = num(k, v, 0, 1LL << 31);
        else {
            fprintf(stderr, "edist_zmq_peer: unknown option %s\n", k);
            return 2;
        }
    }
    bool pair = !strcmp(o.pattern, "pair");
    if ((!pair && strcmp(o.pattern, "pushpull")) ||
        (strcmp(o.transport, "tcp") && strcmp(o.transport, "ipc")) ||
        (pair && o.fan) || (!pair && (o.rtt_count || o.ol_count)) ||
        (o.ol_count && !o.rate)) {
        fprintf(stderr, "edist_zmq_peer: pushpull: stream and fan; pair: "
                        "stream and round trips; tcp or ipc\n");
        return 2;
    }
    ctx = zmq_ctx_new();

    report st = {0}, fo = {0}, fi = {0};
    double st_s = 0, fo_s = 0, fi_s = 0, rtt_s = 0, ol_s = 0;
    uint64_t *rtt = calloc((size_t)o.rtt_count + 1, sizeof *rtt);
    uint64_t *ol = calloc((size_t)o.ol_count + 1, sizeof *ol), ol_got = 0;
    uint64_t fo_total = o.fan ? (uint64_t)(o.fan_count / o.fan * o.fan) : 0;
    if (o.count)
        st_s = stream(STREAM, (uint64_t)o.count, &st);
    if (o.rtt_count)
        rtt_s = closed_loop(rtt);
    if (o.ol_count)
        ol_s = open_loop(ol, &ol_got);
    if (o.fan) {
        fo_s = stream(FAN_OUT, fo_total, &fo);
        fi_s = stream(FAN_IN, fo_total, &fi);
    }
    cli_latency c = figures(rtt, (size_t)o.rtt_count, "closed");
    cli_latency p = figures(ol, (size_t)ol_got, "open");
    uint64_t lost = ((uint64_t)o.count - st.unique) + (fo_total - fo.unique) +
                    (fo_total - fi.unique);
    printf("result sent=%lld received=%" PRIu64 " unique=%" PRIu64
           " lost=%" PRIu64 " out_of_order=%" PRIu64 " duplicates=%" PRIu64
           " bad_messages=%" PRIu64 " send_waits=0 stalled=0 stream_seconds=%.9f"
           " rtt_count=%lld rtt_warmup=%lld rtt_seconds=%.9f rtt_p50_us=%.3f"
           " rtt_p90_us=%.3f rtt_p99_us=%.3f rtt_p999_us=%.3f rtt_max_us=%.3f"
           " ol_rate=%lld ol_count=%lld ol_received=%" PRIu64
           " ol_seconds=%.9f ol_p50_us=%.3f ol_p90_us=%.3f ol_p99_us=%.3f"
           " ol_p999_us=%.3f ol_max_us=%.3f fan=%lld fanout_sent=%" PRIu64
           " fanout_unique=%" PRIu64 " fanout_seconds=%.9f fanin_sent=%" PRIu64
           " fanin_unique=%" PRIu64 " fanin_seconds=%.9f\n",
           o.count, st.received + fo.received + fi.received, st.unique, lost,
           st.out_of_order, st.duplicates + fo.duplicates + fi.duplicates,
           st.bad + fo.bad + fi.bad, st_s, o.rtt_count, o.warmup, rtt_s, c.p50,
           c.p90, c.p99, c.p999, c.max, o.ol_count ? o.rate : 0, o.ol_count,
           ol_got, ol_s, p.p50, p.p90, p.p99, p.p999, p.max, o.fan, fo_total,
           fo.unique, fo_s, fo_total, fi.unique, fi_s);
    free(rtt);
    free(ol);
    zmq_ctx_term(ctx);
    return lost || st.duplicates || st.bad ? 1 : 0;
}
