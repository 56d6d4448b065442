/* SPDX-License-Identifier: Apache-2.0 */
/* `edist stat NODE`: a node's live counters (edist:stats/0 on an edist
 * node; a few of erts' figures on a BEAM node), and `edist bench`:
 * round trips and a stream to a node's `echo` process, and the local
 * runtime's message and spawn rates. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "args.h"
#include "cli.h"
#include "edist/edist.h"

#define STAT_TIMEOUT_MS 10000
#define ECHO_TIMEOUT_MS 5000

typedef struct client_opts {
    const char *target;
    const char *cookie;
    uint16_t epmd_port;
    int64_t count;
    int64_t bytes;
    int64_t timeout_ms;
} client_opts;

static const char stat_usage[] =
    "usage: edist stat NODE [--cookie C] [--epmd-port P] [--timeout S]\n"
    "  prints the node's live counters, one per line (edist:stats/0 on an\n"
    "  edist node; a few of erts' figures on a BEAM node)\n";
static const char bench_ping_usage[] =
    "usage: edist bench ping NODE [--count N] [--bytes B] [--cookie C] [--epmd-port P]\n"
    "  round trips and a stream to NODE's echo process\n";
static const char bench_local_usage[] =
    "usage: edist bench local [--count N]\n"
    "  message and spawn rates of a runtime in this program\n";

/* The command's options into o, NODE when want_node; 0, CLI_DONE or 2. */
static int parse_opts(const char *what, const char *usage, int argc, char **argv, bool want_node,
                      client_opts *o)
{
    o->timeout_ms = STAT_TIMEOUT_MS;
    const cli_opt opts[] = {
        CLI_OPT_COOKIE(&o->cookie),
        {"c", NULL, CLI_TEXT, &o->cookie, 0, 0},
        CLI_OPT_EPMD_PORT(&o->epmd_port),
        CLI_OPT_TIMEOUT(&o->timeout_ms),
        {"count", NULL, CLI_INT, &o->count, 1, 1000000000},
        {"bytes", NULL, CLI_INT, &o->bytes, 1, 64 << 20},
    };
    /* stat takes no --count or --bytes; bench local no node options */
    int nopts = !strcmp(what, "stat") ? 4 : (int)(sizeof opts / sizeof opts[0]);
    const cli_opt *first = opts;
    if (!want_node) {
        first = opts + 4;
        nopts = 1;
    }
    const cli_command cmd = {what, usage, first, nopts, want_node ? 1 : 0, want_node ? 1 : 0};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc)
        return rc;
    if (want_node) {
        o->target = pos[0];
        const char *at = strchr(o->target, '@');
        if (!at || at == o->target || !at[1]) {
            fprintf(stderr, "edist %s: bad node name '%s' (want NAME@HOST)\n", what, o->target);
            return 2;
        }
        if (cli_epmd_port(what, o->epmd_port, &o->epmd_port))
            return 2;
    }
    return 0;
}

/* Connect a client node to o->target and attach this thread as its
 * process. */
static int client_up(const char *what, const client_opts *o, edist_node **node)
{
    int rc = cli_start_client(what, o->target, o->cookie, o->epmd_port, node);
    if (rc == 0 && (rc = edist_node_connect(*node, o->target, 0)) != 0) {
        edist_node_stop(*node);
        *node = NULL;
    }
    if (rc == 0) {
        edist_procid self;
        rc = edist_proc_attach_thread(edist_node_runtime(*node), 0, &self);
        if (rc) {
            edist_node_stop(*node);
            *node = NULL;
        }
    }
    if (rc)
        cli_error(what, rc);
    return rc;
}

static void client_down(edist_node *node)
{
    edist_proc_detach_thread(NULL, 0);
    edist_node_stop(node);
}

static void print_term(const char *prefix, edist_term_view v)
{
    edist_buf s;
    edist_buf_init(&s);
    if (edist_term_print(v.ptr, v.len, &s, NULL) == 0)
        printf("%s%.*s", prefix, (int)s.len, (const char *)s.data);
    edist_buf_free(&s);
}

/* ---- stat ----------------------------------------------------------------- */

/* " k=v" for each pair of a map of counters. */
static int print_pairs(edist_term_view map)
{
    edist_cursor cc;
    uint32_t nc;
    edist_cursor_init(&cc, map.ptr, map.len);
    if (edist_dec_map(&cc, &nc) != 0)
        return EDIST_ETYPE;
    for (uint32_t j = 0; j < nc; j++) {
        edist_term_view ck, cv;
        if (edist_dec_term(&cc, &ck) != 0 || edist_dec_term(&cc, &cv) != 0)
            return EDIST_ETYPE;
        print_term(" ", ck);
        print_term("=", cv);
    }
    return 0;
}

/* "key value" lines of a map of counters; the peers map as one line per
 * peer, a list of maps (shard_stats) as one line per element. */
static int print_stats(edist_term_view map)
{
    edist_cursor c;
    uint32_t n;
    edist_cursor_init(&c, map.ptr, map.len);
    if (edist_dec_map(&c, &n) != 0)
        return EDIST_ETYPE;
    for (uint32_t i = 0; i < n; i++) {
        edist_term_view k, v;
        if (edist_dec_term(&c, &k) != 0 || edist_dec_term(&c, &v) != 0)
            return EDIST_ETYPE;
        edist_cursor pc;
        uint32_t npeers;
        edist_cursor_init(&pc, v.ptr, v.len);
        if (edist_dec_map(&pc, &npeers) == 0) {
            for (uint32_t p = 0; p < npeers; p++) {
                edist_term_view name, counters;
                if (edist_dec_term(&pc, &name) != 0 || edist_dec_term(&pc, &counters) != 0)
                    return EDIST_ETYPE;
                print_term("peer ", name);
                edist_cursor cc;
                uint32_t nc;
                edist_cursor_init(&cc, counters.ptr, counters.len);
                if (edist_dec_map(&cc, &nc) != 0)
                    return EDIST_ETYPE;
                for (uint32_t j = 0; j < nc; j++) {
                    edist_term_view ck, cv;
                    if (edist_dec_term(&cc, &ck) != 0 || edist_dec_term(&cc, &cv) != 0)
                        return EDIST_ETYPE;
                    print_term(" ", ck);
                    print_term("=", cv);
                }
                printf("\n");
            }
            continue;
        }
        uint32_t nlist;
        edist_cursor lc;
        edist_cursor_init(&lc, v.ptr, v.len);
        if (edist_dec_list(&lc, &nlist) == 0 && nlist > 0) {
            for (uint32_t i = 0; i < nlist; i++) {
                edist_term_view e;
                if (edist_dec_term(&lc, &e) != 0)
                    return EDIST_ETYPE;
                print_term("", k);
                printf(" %u", i);
                if (print_pairs(e) != 0)
                    return EDIST_ETYPE;
                printf("\n");
            }
            continue;
        }
        print_term("", k);
        print_term(" ", v);
        printf("\n");
    }
    return 0;
}

/* One rpc whose value is printed after label; false when it failed. */
static bool beam_figure(const char *target, const char *label, const char *m, const char *f,
                        const char *args_text, int64_t timeout_ms)
{
    edist_buf args, r;
    edist_buf_init(&args);
    edist_buf_init(&r);
    edist_parse_error pe;
    edist_rpc_status st = EDIST_RPC_BADRPC;
    bool ok = edist_term_parse(args_text, strlen(args_text), &args, NULL, &pe) == 0 &&
              edist_rpc_call(target, m, f, args.data, args.len, timeout_ms, &r, &st) == 0 &&
              st == EDIST_RPC_OK;
    if (ok) {
        printf("%s", label);
        print_term(" ", (edist_term_view){r.data, r.len});
        printf("\n");
    }
    edist_buf_free(&args);
    edist_buf_free(&r);
    return ok;
}

int cmd_stat(int argc, char **argv)
{
    client_opts o = {0};
    int prc = parse_opts("stat", stat_usage, argc, argv, true, &o);
    if (prc)
        return prc == CLI_DONE ? 0 : prc;
    edist_node *node;
    if (client_up("stat", &o, &node))
        return 1;
    edist_buf r;
    edist_buf_init(&r);
    edist_rpc_status st = EDIST_RPC_BADRPC;
    static const uint8_t nil[] = {EDIST_TAG_NIL};
    int rc = edist_rpc_call(o.target, "edist", "stats", nil, 1, o.timeout_ms, &r, &st);
    int out = 0;
    if (rc) {
        cli_error("stat", rc);
        out = 1;
    } else if (st == EDIST_RPC_OK) {
        if (print_stats((edist_term_view){r.data, r.len}) != 0) {
            fprintf(stderr, "edist: stat: %s answered something that is not a map\n", o.target);
            out = 1;
        }
    } else {
        /* not an edist node: what erts tells of itself */
        printf("node %s\nkind beam\n", o.target);
        bool ok = beam_figure(o.target, "processes", "erlang", "system_info", "[process_count]", o.timeout_ms);
        ok = beam_figure(o.target, "memory_bytes", "erlang", "memory", "[total]", o.timeout_ms) && ok;
        ok = beam_figure(o.target, "run_queue", "erlang", "statistics", "[run_queue]", o.timeout_ms) && ok;
        out = ok ? 0 : 1;
    }
    fflush(stdout);
    edist_buf_free(&r);
    client_down(node);
    return out;
}

/* ---- bench ------------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* {Self, {bench, I, <<Bytes>>}} for {echo, Node}, which sends back the
 * inner tuple. */
static int enc_ping(edist_buf *b, edist_procid self, long i, const uint8_t *pad, size_t len)
{
    edist_buf_reset(b);
    edist_enc_tuple(b, 2);
    edist_enc_procid(b, self);
    edist_enc_tuple(b, 3);
    edist_enc_atom(b, "bench", 5);
    edist_enc_int(b, i);
    edist_enc_binary(b, pad, len);
    return edist_buf_error(b);
}

static int bench_ping(const client_opts *o)
{
    long count = o->count > 0 ? o->count : 10000;
    size_t bytes = o->bytes > 0 ? (size_t)o->bytes : 32;
    edist_node *node;
    if (client_up("bench", o, &node))
        return 1;
    uint8_t *pad = calloc(1, bytes);
    uint64_t *rtt = calloc((size_t)count, sizeof *rtt);
    edist_pattern *pat = NULL;
    edist_parse_error pe;
    edist_buf b;
    edist_buf_init(&b);
    int rc = pad && rtt ? edist_pattern_compile("{bench, _, _}", 13, &pat, &pe) : EDIST_ENOMEM;
    edist_procid self = edist_self();
    edist_term_view m;
    /* ping-pong */
    uint64_t t_start = edi_now_ns();
    for (long i = 0; rc == 0 && i < count; i++) {
        uint64_t t0 = edi_now_ns();
        rc = enc_ping(&b, self, i, pad, bytes);
        if (rc == 0)
            rc = edist_send_name_node("echo", o->target, b.data, b.len);
        if (rc == 0)
            rc = edist_receive(pat, NULL, ECHO_TIMEOUT_MS, &m);
        rtt[i] = edi_now_ns() - t0;
    }
    uint64_t pingpong_ns = edi_now_ns() - t_start;
    /* stream: at most `window` in flight */
    const long window = 1000;
    uint64_t stream_ns = 0;
    if (rc == 0) {
        long sent = 0, got = 0;
        t_start = edi_now_ns();
        while (rc == 0 && got < count) {
            while (rc == 0 && sent < count && sent - got < window) {
                rc = enc_ping(&b, self, sent, pad, bytes);
                if (rc == 0)
                    rc = edist_send_name_node("echo", o->target, b.data, b.len);
                sent++;
            }
            if (rc == 0 && (rc = edist_receive(pat, NULL, ECHO_TIMEOUT_MS, &m)) == 0)
                got++;
        }
        stream_ns = edi_now_ns() - t_start;
    }
    int out = 0;
    if (rc) {
        if (rc == EDIST_ETIMEDOUT)
            fprintf(stderr, "edist: bench: no answer from {echo, %s} (edist nodes run echo)\n",
                    o->target);
        else
            cli_error("bench", rc);
        out = 1;
    } else {
        qsort(rtt, (size_t)count, sizeof *rtt, cmp_u64);
        size_t n = (size_t)count;
        printf("edist bench ping %s: %ld round trips, %zu-byte payload, to {echo, %s}\n",
               o->target, count, bytes, o->target);
        printf("round trip (us): p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n",
               rtt[n / 2] / 1e3, rtt[n * 9 / 10] / 1e3, rtt[n * 99 / 100] / 1e3,
               rtt[n - 1] / 1e3);
        printf("ping-pong: %.0f round trips/s\n", count / (pingpong_ns / 1e9));
        printf("stream (%ld in flight): %.0f messages/s each way\n", window,
               count / (stream_ns / 1e9));
    }
    fflush(stdout);
    edist_pattern_free(pat);
    edist_buf_free(&b);
    free(rtt);
    free(pad);
    client_down(node);
    return out;
}

/* ---- bench local: the runtime alone ------------------------------------------ */

typedef struct local_job {
    long n;
    edist_procid peer;
    edist_procid report;
} local_job;

static void echo_back(void *arg)
{
    local_job *j = arg;
    edist_term_view m;
    for (long i = 0; i < j->n; i++)
        if (edist_receive(NULL, NULL, -1, &m) != 0 || edist_send(j->peer, m.ptr, m.len) != 0)
            return;
}

static const uint8_t kDone[] = {EDIST_TAG_SMALL_ATOM_UTF8, 4, 'd', 'o', 'n', 'e'};

static void pinger(void *arg)
{
    local_job *j = arg;
    local_job ej = {j->n, edist_self(), j->report};
    edist_procid echo;
    if (edist_spawn(echo_back, &ej, &echo) != 0)
        return;
    static const uint8_t ping[] = {EDIST_TAG_SMALL_ATOM_UTF8, 4, 'p', 'i', 'n', 'g'};
    edist_term_view m;
    for (long i = 0; i < j->n; i++)
        if (edist_send(echo, ping, sizeof ping) != 0 || edist_receive(NULL, NULL, -1, &m) != 0)
            return;
    edist_send(j->report, kDone, sizeof kDone);
}

static void nothing(void *arg)
{
    (void)arg;
}

static void spawner(void *arg)
{
    local_job *j = arg;
    for (long i = 0; i < j->n; i++) {
        if (edist_spawn(nothing, NULL, NULL) != 0)
            return;
        edist_yield();
    }
    edist_send(j->report, kDone, sizeof kDone);
}

static int bench_local(const client_opts *o)
{
    long n = o->count > 0 ? o->count : 1000000;
    edist_runtime_config cfg;
    edist_runtime_config_init(&cfg);
    edist_runtime *rt;
    int rc = edist_runtime_start(&cfg, &rt);
    if (rc) {
        cli_error("bench", rc);
        return 1;
    }
    edist_procid self;
    rc = edist_proc_attach_thread(rt, 0, &self);
    struct {
        const char *what;
        edist_proc_fn fn;
    } runs[] = {{"ping-pong, 2 processes (messages/s)", pinger},
                {"spawn + exit (processes/s)", spawner}};
    for (size_t i = 0; rc == 0 && i < sizeof runs / sizeof runs[0]; i++) {
        local_job j = {n, EDIST_PROCID_NULL, self};
        uint64_t t0 = edi_now_ns();
        rc = edist_runtime_spawn(rt, runs[i].fn, &j, NULL, NULL);
        edist_term_view m;
        if (rc == 0)
            rc = edist_receive(NULL, NULL, 120000, &m);
        double secs = (edi_now_ns() - t0) / 1e9;
        double items = runs[i].fn == pinger ? 2.0 * n : (double)n;
        if (rc == 0)
            printf("%s: %.0f\n", runs[i].what, items / secs);
    }
    if (rc)
        cli_error("bench", rc);
    fflush(stdout);
    edist_proc_detach_thread(NULL, 0);
    edist_runtime_stop(rt);
    return rc ? 1 : 0;
}

/* `edist bench ping` and `edist bench local`; 2 for bad usage (cmd_bench.c
 * prints it). */
int cmd_bench_quick(int argc, char **argv)
{
    client_opts o = {0};
    const char *what = argc > 1 ? argv[1] : "";
    bool ping = !strcmp(what, "ping");
    int rc = parse_opts(ping ? "bench ping" : "bench local",
                        ping ? bench_ping_usage : bench_local_usage, argc - 1, argv + 1, ping, &o);
    if (rc)
        return rc == CLI_DONE ? 0 : rc;
    return ping ? bench_ping(&o) : bench_local(&o);
}
