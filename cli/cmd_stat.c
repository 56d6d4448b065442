/* SPDX-License-Identifier: Apache-2.0 */
/* `edist stat NODE`: a node's live counters (edist:stats/0 on an edist
 * node; a few of erts' figures on a BEAM node), and `edist bench`:
 * round trips and a stream to a node's `echo` process, and the local
 * runtime's message and spawn rates. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "control/stats_file.h"
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
    /* stat */
    bool json;
    int64_t interval_ms; /* 0: once */
    const char *local;   /* --local NAME: the node's published file */
    const char *stats_dir;
} client_opts;

static const char stat_usage[] =
    "usage: edist stat NODE [--cookie C] [--epmd-port P] [--timeout S]\n"
    "                       [--json] [--interval S [--count N]]\n"
    "       edist stat --local NAME [--stats-dir DIR] [--json] [--interval S [--count N]]\n"
    "  The node's counters (edist:stats/0 on an edist node; a few of\n"
    "  erts' figures on a BEAM node): totals, then one line per peer\n"
    "  (messages and bytes each way, send queue, busy sends, fragments,\n"
    "  reassembly, ticks), per shard and per lane link. --json: one JSON\n"
    "  object per sample. --interval: a sample every S seconds until\n"
    "  SIGINT/SIGTERM (or N samples). --local: read what a node on this\n"
    "  host publishes for its user (publish_stats, stats_dir), without\n"
    "  connecting to it or knowing its cookie; NAME is NAME@HOST or NAME.\n";
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
    bool stat = !strcmp(what, "stat");
    const cli_opt common[] = {
        CLI_OPT_COOKIE(&o->cookie),
        {"c", NULL, CLI_TEXT, &o->cookie, 0, 0},
        CLI_OPT_EPMD_PORT(&o->epmd_port),
        CLI_OPT_TIMEOUT(&o->timeout_ms),
        {"count", NULL, CLI_INT, &o->count, 1, 1000000000},
        {"bytes", NULL, CLI_INT, &o->bytes, 1, 64 << 20},
    };
    const cli_opt stat_opts[] = {
        CLI_OPT_COOKIE(&o->cookie),
        {"c", NULL, CLI_TEXT, &o->cookie, 0, 0},
        CLI_OPT_EPMD_PORT(&o->epmd_port),
        CLI_OPT_TIMEOUT(&o->timeout_ms),
        {"count", NULL, CLI_INT, &o->count, 1, 1000000000},
        {"json", NULL, CLI_FLAG, &o->json, 0, 0},
        {"interval", NULL, CLI_SECONDS, &o->interval_ms, 0, 0},
        {"local", NULL, CLI_TEXT, &o->local, 0, 0},
        {"stats-dir", "stats_dir", CLI_TEXT, &o->stats_dir, 0, 0},
    };
    const cli_opt *opts = stat ? stat_opts : common;
    int nopts = stat ? (int)(sizeof stat_opts / sizeof stat_opts[0])
                     : (int)(sizeof common / sizeof common[0]);
    if (!want_node) { /* bench local: --count only */
        opts = common + 4;
        nopts = 1;
    }
    const cli_command cmd = {what, usage, opts, nopts, 0, want_node ? 1 : 0};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc)
        return rc;
    if (stat && o->local) {
        if (npos) {
            fprintf(stderr, "edist stat: give NODE or --local NAME, not both\n%s", usage);
            return 2;
        }
        return 0;
    }
    if (want_node) {
        if (npos == 0) {
            fprintf(stderr, "edist %s: which node? give NODE\n%s", what, usage);
            return 2;
        }
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

/* One rpc's value into *value (reset); false when it failed. */
static bool beam_value(const char *target, const char *m, const char *f, const char *args_text,
                       int64_t timeout_ms, edist_buf *value)
{
    edist_buf args;
    edist_buf_init(&args);
    edist_parse_error pe;
    edist_rpc_status st = EDIST_RPC_BADRPC;
    edist_buf_reset(value);
    bool ok = edist_term_parse(args_text, strlen(args_text), &args, NULL, &pe) == 0 &&
              edist_rpc_call(target, m, f, args.data, args.len, timeout_ms, value, &st) == 0 &&
              st == EDIST_RPC_OK;
    edist_buf_free(&args);
    return ok;
}

static int json_term(edist_term_view v);
static void json_string(const char *p, size_t n);

/* A BEAM node: a few of erts' figures, as text lines or one JSON object. */
static bool beam_figures(const client_opts *o)
{
    static const struct {
        const char *label, *m, *f, *args;
    } figures[] = {
        {"processes", "erlang", "system_info", "[process_count]"},
        {"memory_bytes", "erlang", "memory", "[total]"},
        {"run_queue", "erlang", "statistics", "[run_queue]"},
    };
    edist_buf v;
    edist_buf_init(&v);
    bool ok = true;
    if (o->json) {
        printf("{\"node\":");
        json_string(o->target, strlen(o->target));
        printf(",\"kind\":\"beam\"");
    } else {
        printf("node %s\nkind beam\n", o->target);
    }
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++) {
        if (!beam_value(o->target, figures[i].m, figures[i].f, figures[i].args, o->timeout_ms,
                        &v)) {
            ok = false;
            continue;
        }
        edist_term_view t = {v.data, v.len};
        if (o->json) {
            printf(",\"%s\":", figures[i].label);
            if (json_term(t) != 0)
                printf("null");
        } else {
            printf("%s", figures[i].label);
            print_term(" ", t);
            printf("\n");
        }
    }
    if (o->json)
        printf("}\n");
    fflush(stdout);
    edist_buf_free(&v);
    return ok;
}

/* JSON of a term: maps as objects (keys as text), lists and tuples as
 * arrays, integers and floats as numbers, true/false, other atoms,
 * binaries and anything else as strings. */
/* Is p[0..n) UTF-8 (no overlong forms checked: JSON readers take it)? */
static bool utf8_ok(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t more = c < 0x80             ? 0
                      : (c & 0xE0) == 0xC0 ? 1
                      : (c & 0xF0) == 0xE0 ? 2
                      : (c & 0xF8) == 0xF0 ? 3
                                           : SIZE_MAX;
        if (more == SIZE_MAX || more > n - i - 1)
            return false;
        for (size_t k = 1; k <= more; k++)
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
        i += more + 1;
    }
    return true;
}

/* A JSON string; bytes that are not UTF-8 become \u00XX (Latin-1), so
 * the output stays valid JSON whatever a binary holds. */
static void json_string(const char *p, size_t n)
{
    bool utf8 = utf8_ok((const unsigned char *)p, n);
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || (c >= 0x80 && !utf8))
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void json_text_of(edist_term_view v)
{
    edist_buf s;
    edist_buf_init(&s);
    if (edist_term_print(v.ptr, v.len, &s, NULL) == 0)
        json_string((const char *)s.data, s.len);
    else
        printf("null");
    edist_buf_free(&s);
}

static int json_term(edist_term_view v);

static int json_key(edist_term_view k)
{
    edist_cursor c;
    edist_atom a;
    edist_cursor_init(&c, k.ptr, k.len);
    if (edist_dec_atom(&c, &a) == 0)
        json_string(a.ptr, a.len);
    else
        json_text_of(k);
    return 0;
}

static int json_term(edist_term_view v)
{
    edist_cursor c;
    edist_term_info info;
    edist_cursor_init(&c, v.ptr, v.len);
    if (edist_peek(&c, &info) != 0)
        return EDIST_ETYPE;
    int64_t i;
    double d;
    edist_atom a;
    const uint8_t *bytes;
    size_t blen;
    uint32_t n;
    switch (info.type) {
    case EDIST_TYPE_INTEGER:
        if (edist_dec_int64(&c, &i) == 0)
            printf("%" PRId64, i);
        else
            json_text_of(v); /* a bignum: as text */
        return 0;
    case EDIST_TYPE_FLOAT:
        if (edist_dec_double(&c, &d) != 0)
            return EDIST_ETYPE;
        printf("%.17g", d);
        return 0;
    case EDIST_TYPE_ATOM:
        if (edist_dec_atom(&c, &a) != 0)
            return EDIST_ETYPE;
        if (a.len == 4 && !memcmp(a.ptr, "true", 4))
            printf("true");
        else if (a.len == 5 && !memcmp(a.ptr, "false", 5))
            printf("false");
        else
            json_string(a.ptr, a.len);
        return 0;
    case EDIST_TYPE_BINARY:
        if (edist_dec_binary(&c, &bytes, &blen) != 0)
            return EDIST_ETYPE;
        json_string((const char *)bytes, blen);
        return 0;
    case EDIST_TYPE_NIL:
        printf("[]");
        return 0;
    case EDIST_TYPE_MAP:
        if (edist_dec_map(&c, &n) != 0)
            return EDIST_ETYPE;
        putchar('{');
        for (uint32_t k = 0; k < n; k++) {
            edist_term_view key, val;
            if (edist_dec_term(&c, &key) != 0 || edist_dec_term(&c, &val) != 0)
                return EDIST_ETYPE;
            if (k)
                putchar(',');
            json_key(key);
            putchar(':');
            if (json_term(val) != 0)
                return EDIST_ETYPE;
        }
        putchar('}');
        return 0;
    case EDIST_TYPE_LIST:
    case EDIST_TYPE_TUPLE:
        if ((info.type == EDIST_TYPE_LIST ? edist_dec_list(&c, &n) : edist_dec_tuple(&c, &n)) != 0) {
            json_text_of(v); /* a string or an improper list: as text */
            return 0;
        }
        putchar('[');
        for (uint32_t k = 0; k < n; k++) {
            edist_term_view e;
            if (edist_dec_term(&c, &e) != 0)
                return EDIST_ETYPE;
            if (k)
                putchar(',');
            if (json_term(e) != 0)
                return EDIST_ETYPE;
        }
        putchar(']');
        return 0;
    default:
        json_text_of(v);
        return 0;
    }
}

/* --local NAME: the file's path; NAME without a host finds the one file
 * of that name in the directory. */
static int local_path(const client_opts *o, char *out, size_t cap)
{
    if (strchr(o->local, '@'))
        return edi_stats_path(o->stats_dir, o->local, out, cap);
    char dir[512];
    int rc = edi_stats_dir(o->stats_dir, dir, sizeof dir);
    if (rc)
        return rc;
    DIR *d = opendir(dir);
    if (!d)
        return edist_set_error(EDIST_ENOTFOUND, "no published stats in %s: %s", dir,
                               strerror(errno));
    size_t nl = strlen(o->local);
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > nl + 7 && !strncmp(e->d_name, o->local, nl) && e->d_name[nl] == '@' &&
            !strcmp(e->d_name + len - 6, ".stats")) {
            if (found++ == 0)
                snprintf(out, cap, "%s/%s", dir, e->d_name);
        }
    }
    closedir(d);
    if (found == 1)
        return 0;
    if (found)
        return edist_set_error(EDIST_EINVAL, "%d nodes named %s publish in %s: give NAME@HOST",
                               found, o->local, dir);
    return edist_set_error(EDIST_ENOTFOUND, "no node named %s publishes in %s", o->local, dir);
}

/* One sample of the published file: {edist_stats, TimeMs, Stats}. */
static int local_sample(const char *path, edist_buf *file, edist_term_view *stats, int64_t *at_ms)
{
    edist_buf_reset(file);
    FILE *f = fopen(path, "rb");
    if (!f)
        return edist_set_error(EDIST_ENOTFOUND, "%s: %s (is the node running, publishing?)",
                               path, strerror(errno));
    uint8_t chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
        edist_buf_append(file, chunk, got);
    fclose(f);
    edist_cursor c;
    uint32_t ar;
    edist_atom tag;
    const uint8_t *t = file->data;
    size_t tlen = file->len;
    if (tlen && t[0] == EDIST_TAG_VERSION) {
        t++;
        tlen--;
    }
    edist_cursor_init(&c, t, tlen);
    if (edist_dec_tuple(&c, &ar) != 0 || ar != 3 || edist_dec_atom(&c, &tag) != 0 ||
        tag.len != 11 || memcmp(tag.ptr, "edist_stats", 11) != 0 ||
        edist_dec_int64(&c, at_ms) != 0 || edist_dec_term(&c, stats) != 0)
        return edist_set_error(EDIST_EPROTO, "%s is not an edist stats file", path);
    return 0;
}

/* The pause between samples; false when SIGINT or SIGTERM came. */
static bool pause_between(const sigset_t *stop, int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    for (;;) {
        int sig = sigtimedwait(stop, NULL, &ts);
        if (sig > 0)
            return false;
        if (errno == EAGAIN)
            return true;
        if (errno != EINTR)
            return true;
    }
}

/* After sample n (from 0): is another one due? With --interval, after
 * the pause, unless --count is reached or SIGINT/SIGTERM came. */
static bool another_sample(const client_opts *o, const sigset_t *stop, int64_t n)
{
    return o->interval_ms && !(o->count && n + 1 >= o->count) &&
           pause_between(stop, o->interval_ms);
}

static void print_sample(const client_opts *o, const char *node, int64_t at_ms,
                         edist_term_view stats, int64_t age_ms)
{
    if (o->json) {
        printf("{\"node\":");
        json_string(node, strlen(node));
        printf(",\"time_ms\":%" PRId64, at_ms);
        if (age_ms >= 0)
            printf(",\"age_ms\":%" PRId64, age_ms);
        printf(",\"stats\":");
        if (json_term(stats) != 0)
            printf("null,\"error\":\"a term that did not decode\"");
        printf("}\n");
    } else {
        if (o->interval_ms)
            printf("time_ms %" PRId64 "\n", at_ms);
        if (age_ms >= 0)
            printf("age_ms %" PRId64 "\n", age_ms);
        print_stats(stats);
        if (o->interval_ms)
            printf("\n");
    }
    fflush(stdout);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int stat_local(const client_opts *o, const sigset_t *stop)
{
    char path[1100];
    int rc = local_path(o, path, sizeof path);
    if (rc) {
        cli_error("stat", rc);
        return 1;
    }
    const char *base = strrchr(path, '/') + 1;
    char node[512];
    snprintf(node, sizeof node, "%.*s", (int)(strlen(base) - 6), base);
    edist_buf file;
    edist_buf_init(&file);
    int out = 0;
    for (int64_t n = 0;; n++) {
        edist_term_view stats;
        int64_t at;
        rc = local_sample(path, &file, &stats, &at);
        if (rc) {
            cli_error("stat", rc);
            out = 1;
            break;
        }
        print_sample(o, node, at, stats, wall_ms() - at);
        if (!another_sample(o, stop, n))
            break;
    }
    edist_buf_free(&file);
    return out;
}

int cmd_stat(int argc, char **argv)
{
    client_opts o = {0};
    int prc = parse_opts("stat", stat_usage, argc, argv, true, &o);
    if (prc)
        return prc == CLI_DONE ? 0 : prc;
    /* SIGINT/SIGTERM end an --interval run between samples, cleanly */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    if (o.interval_ms)
        pthread_sigmask(SIG_BLOCK, &stop, NULL);
    if (o.local)
        return stat_local(&o, &stop);
    edist_node *node;
    if (client_up("stat", &o, &node))
        return 1;
    edist_buf r;
    edist_buf_init(&r);
    static const uint8_t nil[] = {EDIST_TAG_NIL};
    int out = 0;
    for (int64_t n = 0;; n++) {
        edist_rpc_status st = EDIST_RPC_BADRPC;
        int rc = edist_rpc_call(o.target, "edist", "stats", nil, 1, o.timeout_ms, &r, &st);
        if (rc) {
            cli_error("stat", rc);
            out = 1;
            break;
        }
        if (st == EDIST_RPC_OK) {
            edist_term_view v = {r.data, r.len};
            edist_cursor c;
            uint32_t m;
            edist_cursor_init(&c, v.ptr, v.len);
            if (edist_dec_map(&c, &m) != 0) {
                fprintf(stderr, "edist: stat: %s answered something that is not a map\n",
                        o.target);
                out = 1;
                break;
            }
            print_sample(&o, o.target, wall_ms(), v, -1);
        } else {
            /* not an edist node: what erts tells of itself */
            bool ok = beam_figures(&o);
            out = ok ? 0 : 1;
        }
        if (!another_sample(&o, &stop, n))
            break;
    }
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
