/* SPDX-License-Identifier: Apache-2.0 */
/* `edist bench`: the dispatcher, and `edist bench pair`, which starts two
 * nodes as two processes of this program (bench_pair_peer.c) with a
 * private port mapper (in this process, on a port the kernel picks) and a
 * private cookie, lets them measure a stream and a ping-pong over a lane,
 * and reports the figures. Every process it starts is ended by its PID:
 * when done, on any error, when a child overruns --timeout, and on
 * SIGINT/SIGTERM/SIGHUP (taken through a signalfd, so that no handler
 * runs between fork and exec); the children also get SIGKILL should this
 * process die first (PR_SET_PDEATHSIG). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_netns.h"
#include "bench_pair.h"
#include "args.h"
#include "cli.h"
#include "control/epmd_server.h"
#include "control/node_config.h"
#include "edist/edist.h"

/* A node asked to stop (SIGTERM) has this long before SIGKILL. */
#define BENCH_PAIR_STOP_GRACE_MS 5000
#define BENCH_PAIR_LINE_BYTES 4096

static void bench_usage(FILE *out)
{
    fputs("usage: edist bench pair --lane LANE [OPTIONS]\n"
          "         two nodes on this host: stream rate, round-trip\n"
          "         percentiles (edist bench pair --help)\n"
          "       edist bench ping NODE [--count N] [--bytes B] [--cookie C]\n"
          "         round trips and a stream to NODE's echo process\n"
          "       edist bench local [--count N]\n"
          "         message and spawn rates of a runtime in this program\n"
          "  Figures for reports come from bench/ (Google Benchmark, side by\n"
          "  side with Erlang and ZeroMQ) and from `edist bench pair`; ping\n"
          "  and local are quick checks.\n",
          out);
}

/* ---- lanes --------------------------------------------------------------- */

/* What --lane names, the node's transport option that gives it, and for
 * a DPDK lane its device. Later lanes add a row. */
typedef struct pair_lane {
    const char *name;
    const char *transport;
    const char *device; /* DPDK: the port's device name; else NULL */
    bool veth;          /* on a veth pair between two namespaces */
} pair_lane;

static const pair_lane pair_lanes[] = {
    {"tcp", "tcp", NULL, false},
#ifdef EDIST_HAVE_DPDK
    /* Two DPDK memif ports joined by a socket in a directory of the run's
     * own; node b is the memif server. */
    {"memif", "dpdk", "net_memif0", false},
    /* Kernel interfaces: each node in a network namespace of the run's
     * own, its port on one end of a veth pair (bench_netns.h). */
    {"af_xdp", "dpdk", "net_af_xdp0", true},
    {"af_packet", "dpdk", "net_af_packet0", true},
#endif
};
#define PAIR_LANE_COUNT (sizeof pair_lanes / sizeof pair_lanes[0])

static void lane_names(char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < PAIR_LANE_COUNT && o < cap; i++) {
        int n = snprintf(out + o, cap - o, "%s%s", i ? ", " : "",
                         pair_lanes[i].name);
        o += n > 0 ? (size_t)n : 0;
    }
}

/* ---- options ------------------------------------------------------------- */

typedef struct pair_opts {
    const pair_lane *lane;
    long long bytes, count, rtt_count, warmup, shards, timeout_s, lane_wait_s;
    long long rate, ol_count, fan, fan_count;
    const char *samples; /* CDF files' path prefix, or NULL */
    bool warmup_given, shards_given;
    const char *idle;
    double faults_pct; /* veth lanes: frames dropped, duplicated, reordered */
    bool json, verbose;
    bool memif_zero_copy; /* the memif client's zero-copy=yes */
    bool udp;             /* DPDK lanes: frames in UDP/IPv4 */
} pair_opts;

static const char pair_synopsis[] =
    "usage: edist bench pair --lane LANE [--bytes B] [--count N]\n"
    "         [--rtt-count R] [--warmup W] [--shards S]\n"
    "         [--rate MSGS_PER_S [--ol-count N]] [--fan P [--fan-count N]]\n"
    "         [--samples PREFIX]\n"
    "         [--idle busy|adaptive] [--timeout S] [--lane-wait S]\n"
    "         [--faults PCT] [--memif-zero-copy true|false] [--udp]\n"
    "         [--json] [--verbose]\n";

static void pair_usage(FILE *out)
{
    char lanes[128];
    lane_names(lanes, sizeof lanes);
    fputs(pair_synopsis, out);
    fprintf(
        out,
        "  Starts two edist nodes as two processes on this host, with a\n"
        "  private port mapper and cookie, connected over LANE (%s),\n"
        "  and measures:\n"
        "  - a one-way stream of N messages (default 1000000): messages/s\n"
        "    and bytes/s; the receiver checks every sequence number (lost,\n"
        "    out of order, duplicated);\n"
        "  - a ping-pong of R round trips (default 100000) after W warm-up\n"
        "    ones (default R/10, at most 10000): percentiles p50, p90, p99,\n"
        "    p99.9 and the maximum.\n"
        "  Messages are B-byte terms {data|ping, Seq, <<Pad>>} (default 64,\n"
        "  %d to 64M). --shards: shards per node (default: the node's\n"
        "  default or EDIST_SHARDS). --idle: the nodes' idle strategy\n"
        "  (default adaptive). --timeout: the whole run at most (default 600\n"
        "  seconds). A DPDK lane (memif, af_xdp, af_packet): the nodes agree\n"
        "  on it after they connect and the run starts once both moved their\n"
        "  data there, waiting --lane-wait seconds at most (default 15; 0:\n"
        "  start at once, so that the switch happens during the stream).\n"
        "  af_xdp, af_packet (root): each node in a network namespace of\n"
        "  the run's own, its port on a veth pair between the two, TCP on a\n"
        "  second veth pair (10.88.0.1 and .2/30) with a port mapper in\n"
        "  each namespace (in this process); all removed at the end.\n"
        "  --faults PCT (0 to 50, fractions allowed): a third namespace\n"
        "  between the data ends drops, duplicates and reorders PCT%% of\n"
        "  the frames each, both ways (tc filters; see cli/bench_netns.h).\n"
        "  --memif-zero-copy (default true): the memif client (the sending\n"
        "  node) transmits from its own memory and the server copies; false:\n"
        "  each side copies into or out of the shared ring.\n"
        "  --udp (DPDK lanes): the lane's frames in UDP/IPv4, the nodes at\n"
        "  10.88.1.1 and 10.88.1.2, port 4370 (dpdk_udp_address), instead of\n"
        "  Ethernet frames of edist's EtherType.\n"
        "  Other EDIST_<OPTION> variables reach both nodes as for\n"
        "  `edist node`. --json: one JSON object on stdout. --verbose: the\n"
        "  port mapper's port and each process's PID on stderr.\n"
        "  Exit 0; 1 when a message was lost, duplicated or out of order or\n"
        "  anything failed; 2 for bad usage; 128+N on signal N. Every\n"
        "  process it starts is ended, by its PID, whatever happens.\n",
        lanes, BENCH_PAIR_MIN_BYTES);
}

static int parse_num(const char *flag, const char *text, long long lo,
                     long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    long long unit = 1;
    if (end != text && (*end == 'K' || *end == 'k'))
        unit = 1024, end++;
    else if (end != text && (*end == 'M' || *end == 'm'))
        unit = 1024 * 1024, end++;
    if (errno || end == text || *end || v < lo / unit || v > hi / unit ||
        v * unit < lo)
        return edist_set_error(EDIST_EINVAL, "%s '%s': want %lld..%lld", flag,
                               text, lo, hi);
    *out = v * unit;
    return 0;
}

/* 0, CLI_DONE (help or version printed: exit 0) or 2 (printed: exit 2);
 * an error code with the error set when a value is malformed past the
 * parser (a size, --faults, --idle) or the options do not fit together. */
static int parse_pair_opts(int argc, char **argv, pair_opts *o)
{
    *o = (pair_opts){.bytes = 64,
                     .count = 1000000,
                     .rtt_count = 100000,
                     .shards = 1,
                     .timeout_s = 600,
                     .lane_wait_s = 15,
                     .idle = "adaptive",
                     .memif_zero_copy = true};
    const char *lane = NULL, *bytes = NULL, *faults = NULL;
    int64_t count = o->count, rtt_count = o->rtt_count, warmup = -1,
            shards = -1, timeout_ms = o->timeout_s * 1000,
            lane_wait = o->lane_wait_s, rate = 0, ol_count = 0, fan = 0,
            fan_count = 0;
    const cli_opt opts[] = {
        {"lane", NULL, CLI_TEXT, &lane, 0, 0},
        {"bytes", NULL, CLI_TEXT, &bytes, 0, 0},
        {"count", NULL, CLI_INT, &count, 0, BENCH_PAIR_MAX_COUNT},
        {"rtt-count", NULL, CLI_INT, &rtt_count, 0, BENCH_PAIR_MAX_COUNT / 2},
        {"warmup", NULL, CLI_INT, &warmup, 0, BENCH_PAIR_MAX_COUNT / 2},
        {"rate", NULL, CLI_INT, &rate, 1, 1000000000},
        {"ol-count", NULL, CLI_INT, &ol_count, 1, BENCH_PAIR_MAX_COUNT},
        {"fan", NULL, CLI_INT, &fan, 1, 1024},
        {"fan-count", NULL, CLI_INT, &fan_count, 1, BENCH_PAIR_MAX_COUNT},
        {"samples", NULL, CLI_TEXT, &o->samples, 0, 0},
        {"shards", NULL, CLI_INT, &shards, 1, 1024},
        CLI_OPT_TIMEOUT(&timeout_ms),
        {"lane-wait", NULL, CLI_INT, &lane_wait, 0, 600},
        {"faults", NULL, CLI_TEXT, &faults, 0, 0},
        {"idle", NULL, CLI_TEXT, &o->idle, 0, 0},
        {"memif-zero-copy", NULL, CLI_BOOL, &o->memif_zero_copy, 0, 0},
        {"udp", NULL, CLI_FLAG, &o->udp, 0, 0},
        {"json", NULL, CLI_FLAG, &o->json, 0, 0},
        {"verbose", NULL, CLI_FLAG, &o->verbose, 0, 0},
    };
    /* the usage names this build's lanes */
    static char *usage;
    size_t usage_len;
    FILE *u = usage ? NULL : open_memstream(&usage, &usage_len);
    if (u) {
        pair_usage(u);
        fclose(u);
    }
    const cli_command cmd = {"bench pair", usage ? usage : pair_synopsis, opts,
                             sizeof opts / sizeof opts[0], 0, 0};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc)
        return rc;
    o->count = count;
    o->rtt_count = rtt_count;
    o->warmup_given = warmup >= 0;
    o->warmup = warmup >= 0 ? warmup : 0;
    o->shards_given = shards >= 0;
    o->shards = shards >= 0 ? shards : 1;
    o->timeout_s = (timeout_ms + 999) / 1000;
    o->lane_wait_s = lane_wait;
    o->rate = rate;
    o->ol_count = ol_count;
    o->fan = fan;
    o->fan_count = fan_count;
    if (bytes && (rc = parse_num("--bytes", bytes, BENCH_PAIR_MIN_BYTES,
                                 (long long)BENCH_PAIR_MAX_BYTES, &o->bytes)))
        return rc;
    if (faults) {
        char *end;
        o->faults_pct = strtod(faults, &end);
        if (end == faults || *end ||
            !(o->faults_pct >= 0 && o->faults_pct <= 50))
            return edist_set_error(EDIST_EINVAL, "--faults '%s': want 0..50",
                                   faults);
    }
    if (strcmp(o->idle, "busy") && strcmp(o->idle, "adaptive"))
        return edist_set_error(EDIST_EINVAL,
                               "--idle '%s': want busy or adaptive", o->idle);
    char known[128];
    lane_names(known, sizeof known);
    if (!lane)
        return edist_set_error(EDIST_EINVAL,
                               "which lane? --lane LANE (known: %s)", known);
    for (size_t i = 0; i < PAIR_LANE_COUNT; i++)
        if (!strcmp(lane, pair_lanes[i].name))
            o->lane = &pair_lanes[i];
    if (!o->lane)
        return edist_set_error(EDIST_EINVAL, "unknown lane '%s' (known: %s)",
                               lane, known);
    if (o->faults_pct > 0 && !o->lane->veth)
        return edist_set_error(EDIST_EINVAL,
                               "--faults: only for a lane on a veth pair "
                               "(af_xdp, af_packet), not %s",
                               o->lane->name);
    if (o->udp && !strcmp(o->lane->name, "tcp"))
        return edist_set_error(EDIST_EINVAL,
                               "--udp: only for a DPDK lane (memif, af_xdp, "
                               "af_packet), not tcp");
    if (o->lane->veth && geteuid() != 0)
        return edist_set_error(
            EDIST_EINVAL,
            "--lane %s needs root: it makes two network namespaces and veth "
            "pairs for the nodes",
            o->lane->name);
    if (!o->warmup_given)
        o->warmup = o->rtt_count / 10 < 10000 ? o->rtt_count / 10 : 10000;
    if (o->ol_count && !o->rate)
        return edist_set_error(EDIST_EINVAL, "--ol-count needs --rate");
    if (o->rate && !o->ol_count)
        o->ol_count = o->rate;
    if (o->fan_count && !o->fan)
        return edist_set_error(EDIST_EINVAL, "--fan-count needs --fan");
    if (o->fan && !o->fan_count)
        o->fan_count = o->count;
    if (o->fan && o->fan_count < o->fan)
        return edist_set_error(EDIST_EINVAL,
                               "--fan-count: at least one message a process");
    return 0;
}

/* The shards each node will run: --shards, passed to the nodes as
 * EDIST_SHARDS; without it what the environment or config file says. A
 * build whose nodes have no `shards` option runs one. */
static int pair_shards(pair_opts *o)
{
    int id = edi_node_option_id("shards");
    if (o->shards_given) {
        if (id < 0 && o->shards != 1)
            return edist_set_error(
                EDIST_EINVAL,
                "--shards %lld: the nodes of this build run one shard each "
                "(they have no `shards` option); only --shards 1 is possible",
                o->shards);
        char text[32];
        snprintf(text, sizeof text, "%lld", o->shards);
        setenv("EDIST_SHARDS", text, 1);
    }
    if (id < 0)
        return 0;
    static edi_node_options no;
    edi_node_options_init(&no);
    /* A bad setting is the nodes' to report (they fail to start and say
     * why): here it only leaves the count as given. */
    if (edi_node_options_load_all(&no) != 0)
        return 0;
    long long v = strtoll(no.value[id], NULL, 10);
    o->shards = v > 0 ? v : 1;
    return 0;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- child processes ----------------------------------------------------- */

typedef struct pair_child {
    const char *role; /* "node a", "node b" */
    int side;         /* 0 (a), 1 (b): its namespace on a veth lane */
    char name[96];    /* its node name */
    pid_t pid;        /* 0: not started */
    bool reaped;
    int status;
    int out_fd; /* its stdout; -1 once closed */
    char line[BENCH_PAIR_LINE_BYTES];
    size_t line_len;
    bool ready;
    bool have_result;
    bench_pair_result result;
} pair_child;

typedef struct pair_run {
    pair_opts o;
    const char *exe;
    int sig_fd;
    int signal; /* the one that came, or 0 */
    uint64_t deadline_ns;
    /* One port mapper, or on a veth lane one per namespace (same port). */
    edi_epmd_server *epmd[2];
    pthread_t epmd_thread[2];
    bool epmd_running[2];
    uint16_t epmd_port;
    pair_child a, b;   /* a drives, b is the sink */
    char lane_dir[64]; /* memif: the socket's directory, or "" */
    bool veth;         /* the nodes in netns[0] and [1] */
    bench_netns netns;
} pair_run;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *self_exe(void)
{
    static char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0)
        return NULL;
    path[n] = '\0';
    return path;
}

/* fork + exec of this program with argv; stdout to a pipe read by pump(),
 * stderr shared. Between fork and exec the child only makes
 * async-signal-safe calls (the port mapper thread may hold locks). */
static int child_start(pair_run *r, pair_child *c, char *const argv[])
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return edist_set_error(EDIST_EIO, "pipe: %s", strerror(errno));
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        return edist_set_error(EDIST_EIO, "fork: %s", strerror(e));
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        if (r->veth && bench_netns_enter(&r->netns, c->side) != 0)
            _exit(127);
        int null = open("/dev/null", O_RDONLY);
        if (null < 0 || dup2(null, 0) < 0 || dup2(p[1], 1) < 0)
            _exit(127);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(r->exe, argv);
        _exit(127);
    }
    close(p[1]);
    c->pid = pid;
    c->out_fd = p[0];
    if (r->o.verbose)
        fprintf(stderr, "edist bench pair: %s %s started (pid %ld)\n", c->role,
                c->name, (long)pid);
    return 0;
}

static void child_line(pair_run *r, pair_child *c, const char *line)
{
    if (c == &r->b && !strncmp(line, BENCH_PAIR_READY_PREFIX,
                               strlen(BENCH_PAIR_READY_PREFIX)))
        c->ready = true;
    else if (c == &r->a && bench_pair_result_parse(line, &c->result) == 0)
        c->have_result = true;
    else if (r->o.verbose)
        fprintf(stderr, "edist bench pair: %s: %s\n", c->role, line);
}

/* Reads what is there of c's stdout and handles each whole line. */
static void child_read(pair_run *r, pair_child *c)
{
    ssize_t n = read(c->out_fd, c->line + c->line_len,
                     sizeof c->line - 1 - c->line_len);
    if (n < 0 && errno == EINTR)
        return;
    bool eof = n <= 0;
    if (n > 0)
        c->line_len += (size_t)n;
    c->line[c->line_len] = '\0';
    char *start = c->line, *nl;
    while ((nl = strchr(start, '\n')) != NULL) {
        *nl = '\0';
        child_line(r, c, start);
        start = nl + 1;
    }
    c->line_len -= (size_t)(start - c->line);
    memmove(c->line, start, c->line_len);
    /* A line longer than the buffer, or a last one without newline. */
    if (c->line_len == sizeof c->line - 1 || (eof && c->line_len)) {
        c->line[c->line_len] = '\0';
        child_line(r, c, c->line);
        c->line_len = 0;
    }
    if (eof) {
        close(c->out_fd);
        c->out_fd = -1;
    }
}

enum { PUMP_TIMEOUT = 0, PUMP_PROGRESS = 1, PUMP_SIGNAL = 2 };

/* Waits up to the run's deadline for output from the children or a
 * signal, and handles what came. */
static int pump(pair_run *r)
{
    struct pollfd fds[3] = {{.fd = r->sig_fd, .events = POLLIN}};
    pair_child *who[3] = {NULL};
    nfds_t n = 1;
    pair_child *kids[2] = {&r->a, &r->b};
    for (int i = 0; i < 2; i++)
        if (kids[i]->out_fd >= 0) {
            fds[n] = (struct pollfd){.fd = kids[i]->out_fd, .events = POLLIN};
            who[n++] = kids[i];
        }
    uint64_t now = now_ns();
    if (now >= r->deadline_ns)
        return PUMP_TIMEOUT;
    uint64_t left_ms = (r->deadline_ns - now) / 1000000u + 1;
    int k = poll(fds, n, left_ms > INT_MAX ? INT_MAX : (int)left_ms);
    if (k < 0)
        return PUMP_PROGRESS; /* EINTR: look again */
    if (k == 0)
        return PUMP_TIMEOUT;
    if (fds[0].revents & POLLIN) {
        struct signalfd_siginfo si;
        if (read(r->sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
            r->signal = (int)si.ssi_signo;
            return PUMP_SIGNAL;
        }
    }
    for (nfds_t i = 1; i < n; i++)
        if (fds[i].revents)
            child_read(r, who[i]);
    return PUMP_PROGRESS;
}

/* A signal that came while nobody polled (ending the children): it still
 * decides the exit status. */
static void take_pending_signal(pair_run *r)
{
    struct pollfd p = {.fd = r->sig_fd, .events = POLLIN};
    struct signalfd_siginfo si;
    if (!r->signal && poll(&p, 1, 0) == 1 &&
        read(r->sig_fd, &si, sizeof si) == (ssize_t)sizeof si)
        r->signal = (int)si.ssi_signo;
}

/* Waits for c to exit until until_ns; true once reaped. */
static bool child_reap(pair_child *c, uint64_t until_ns)
{
    while (c->pid > 0 && !c->reaped) {
        pid_t got = waitpid(c->pid, &c->status, WNOHANG);
        if (got == c->pid || (got < 0 && errno == ECHILD)) {
            c->reaped = true;
            break;
        }
        if (now_ns() >= until_ns)
            return false;
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return true;
}

/* Ends c by its PID: sig, then SIGKILL after grace_ms; reaps it. */
static void child_end(pair_child *c, int sig, int grace_ms)
{
    if (c->pid <= 0 || c->reaped)
        goto close_out;
    kill(c->pid, sig);
    if (!child_reap(c, now_ns() + (uint64_t)grace_ms * 1000000u)) {
        kill(c->pid, SIGKILL);
        child_reap(c, UINT64_MAX);
    }
close_out:
    if (c->out_fd >= 0) {
        close(c->out_fd);
        c->out_fd = -1;
    }
}

static void describe_exit(const pair_child *c, char *out, size_t cap)
{
    if (c->pid <= 0)
        snprintf(out, cap, "not started");
    else if (!c->reaped)
        snprintf(out, cap, "still running");
    else if (WIFEXITED(c->status))
        snprintf(out, cap, "exited with status %d", WEXITSTATUS(c->status));
    else if (WIFSIGNALED(c->status))
        snprintf(out, cap, "was killed by signal %d", WTERMSIG(c->status));
    else
        snprintf(out, cap, "ended");
}

static bool exited_zero(const pair_child *c)
{
    return c->reaped && WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0;
}

/* ---- the port mapper ----------------------------------------------------- */

static void *epmd_main(void *arg)
{
    edi_epmd_server_run(arg);
    return NULL;
}

/* Ours, on 127.0.0.1 and a port the kernel picks: nothing on this host
 * depends on 4369, and no other node's name can clash with ours. On a
 * veth lane one in each namespace, on its loopback and control address
 * (a node asks the port mapper of its peer's host), both on the port the
 * first got: the namespaces are fresh, nothing else holds it there. Each
 * socket stays in the namespace it was made in, whichever thread serves
 * it; this thread goes back home before any other thread exists. */
static int epmd_start(pair_run *r)
{
    int servers = r->veth ? 2 : 1, rc = 0;
    for (int i = 0; i < servers && rc == 0; i++) {
        edi_epmd_server_config cfg = {
            .port = i ? r->epmd_port : -1,
            .addresses = r->veth ? r->netns.ctl_addr[i] : "127.0.0.1"};
        if (r->veth && bench_netns_enter(&r->netns, i) != 0)
            return edist_set_error(EDIST_EIO, "setns %s: %s", r->netns.ns[i],
                                   strerror(errno));
        rc = edi_epmd_server_start(&cfg, &r->epmd[i]);
        if (r->veth && bench_netns_enter(&r->netns, -1) != 0)
            return edist_set_error(EDIST_EIO,
                                   "setns back to this process's namespace: %s",
                                   strerror(errno));
        if (rc == 0 && i == 0)
            r->epmd_port = edi_epmd_server_port(r->epmd[0]);
    }
    if (rc)
        return rc;
    /* For anyone who looks (`edist names`), set before the thread exists. */
    char port[16];
    snprintf(port, sizeof port, "%u", r->epmd_port);
    setenv("ERL_EPMD_PORT", port, 1);
    for (int i = 0; i < servers; i++) {
        if (pthread_create(&r->epmd_thread[i], NULL, epmd_main, r->epmd[i]) !=
            0)
            return edist_set_error(EDIST_EIO, "port mapper thread: %s",
                                   strerror(errno));
        r->epmd_running[i] = true;
    }
    return 0;
}

static void epmd_stop(pair_run *r)
{
    for (int i = 0; i < 2; i++) {
        if (r->epmd_running[i]) {
            edi_epmd_server_stop(r->epmd[i]);
            pthread_join(r->epmd_thread[i], NULL);
            r->epmd_running[i] = false;
        }
        edi_epmd_server_free(r->epmd[i]);
        r->epmd[i] = NULL;
    }
}

/* ---- output -------------------------------------------------------------- */

/* 1234567 -> "1,234,567", in one of a few rotating buffers. */
static const char *grouped(double v)
{
    static char bufs[8][40];
    static int next;
    char *out = bufs[next++ & 7];
    char digits[32];
    snprintf(digits, sizeof digits, "%.0f", v);
    size_t n = strlen(digits), o = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
    return out;
}

static void print_json(const pair_run *r, const bench_pair_result *res)
{
    double msgs_per_s =
        res->stream_seconds > 0 ? (double)res->sent / res->stream_seconds : 0;
    double rtts_per_s =
        res->rtt_seconds > 0 ? (double)res->rtt_count / res->rtt_seconds : 0;
    printf("{\"lane\": \"%s\", \"bytes\": %lld, \"messages\": %" PRIu64
           ", \"stream_msgs_per_s\": %.1f, \"stream_bytes_per_s\": %.1f"
           ", \"stream_seconds\": %.6f, \"rtt_count\": %" PRIu64
           ", \"rtt_warmup\": %" PRIu64 ", \"round_trips_per_s\": %.1f"
           ", \"rtt_p50_us\": %.3f, \"rtt_p90_us\": %.3f, \"rtt_p99_us\": %.3f"
           ", \"rtt_p999_us\": %.3f, \"rtt_max_us\": %.3f"
           ", \"lost\": %" PRIu64 ", \"out_of_order\": %" PRIu64
           ", \"duplicates\": %" PRIu64 ", \"bad_messages\": %" PRIu64
           ", \"stalled\": %s, \"send_waits\": %" PRIu64
           ", \"messages_out\": %" PRIu64 ", \"messages_in_place\": %" PRIu64
           ", \"shards\": %lld, \"idle\": \"%s\", \"memif_zero_copy\": %s"
           ", \"udp\": %s",
           r->o.lane->name, r->o.bytes, res->sent, msgs_per_s,
           msgs_per_s * (double)r->o.bytes, res->stream_seconds, res->rtt_count,
           res->rtt_warmup, rtts_per_s, res->rtt_p50_us, res->rtt_p90_us,
           res->rtt_p99_us, res->rtt_p999_us, res->rtt_max_us, res->lost,
           res->out_of_order, res->duplicates, res->bad_messages,
           res->stalled ? "true" : "false", res->send_waits, res->messages_out,
           res->messages_in_place, r->o.shards, r->o.idle,
           r->o.memif_zero_copy && !strcmp(r->o.lane->name, "memif") ? "true"
                                                                      : "false",
           r->o.udp ? "true" : "false");
    double ol_span = res->ol_seconds > 0 ? res->ol_seconds : 1;
    printf(", \"ol_rate\": %" PRIu64 ", \"ol_count\": %" PRIu64
           ", \"ol_received\": %" PRIu64 ", \"ol_achieved_per_s\": %.1f"
           ", \"ol_p50_us\": %.3f, \"ol_p90_us\": %.3f, \"ol_p99_us\": %.3f"
           ", \"ol_p999_us\": %.3f, \"ol_max_us\": %.3f, \"fan\": %" PRIu64
           ", \"fanout_msgs_per_s\": %.1f, \"fanin_msgs_per_s\": %.1f}\n",
           res->ol_rate, res->ol_count, res->ol_received,
           (double)res->ol_received / ol_span, res->ol_p50_us, res->ol_p90_us,
           res->ol_p99_us, res->ol_p999_us, res->ol_max_us, res->fan,
           res->fanout_seconds > 0 ? (double)res->fanout_sent / res->fanout_seconds : 0,
           res->fanin_seconds > 0 ? (double)res->fanin_sent / res->fanin_seconds : 0);
}

static void print_table(const pair_run *r, const bench_pair_result *res)
{
    double msgs_per_s =
        res->stream_seconds > 0 ? (double)res->sent / res->stream_seconds : 0;
    double rtts_per_s =
        res->rtt_seconds > 0 ? (double)res->rtt_count / res->rtt_seconds : 0;
    printf(
        "edist bench pair: lane %s, %lld-byte messages, %lld shard%s per node, "
        "idle %s%s%s\n",
        r->o.lane->name, r->o.bytes, r->o.shards, r->o.shards == 1 ? "" : "s",
        r->o.idle,
        r->o.memif_zero_copy && !strcmp(r->o.lane->name, "memif")
            ? ", memif zero-copy"
            : "",
        r->o.udp ? ", UDP/IPv4" : "");
    printf("  stream      %s messages in %.3f s: %s messages/s, %s bytes/s\n",
           grouped((double)res->sent), res->stream_seconds, grouped(msgs_per_s),
           grouped(msgs_per_s * (double)r->o.bytes));
    printf("              lost %" PRIu64 ", out of order %" PRIu64
           ", duplicated %" PRIu64 ", malformed %" PRIu64 "%s\n",
           res->lost, res->out_of_order, res->duplicates, res->bad_messages,
           res->stalled ? ", STALLED" : "");
    printf("  ping-pong   %s round trips after %s warm-up: %s round trips/s\n",
           grouped((double)res->rtt_count), grouped((double)res->rtt_warmup),
           grouped(rtts_per_s));
    printf(
        "  round trip  p50 %.1f us, p90 %.1f, p99 %.1f, p99.9 %.1f, max %.1f\n",
        res->rtt_p50_us, res->rtt_p90_us, res->rtt_p99_us, res->rtt_p999_us,
        res->rtt_max_us);
    if (res->ol_count)
        printf("  open loop   %s pings at %s/s: p50 %.1f us, p90 %.1f, p99 %.1f, "
               "p99.9 %.1f, max %.1f\n",
               grouped((double)res->ol_count), grouped((double)res->ol_rate),
               res->ol_p50_us, res->ol_p90_us, res->ol_p99_us, res->ol_p999_us,
               res->ol_max_us);
    if (res->fan)
        printf("  fan-out     1 -> %" PRIu64 " processes: %s messages/s; fan-in "
               "%" PRIu64 " -> 1: %s messages/s\n",
               res->fan,
               grouped(res->fanout_seconds > 0
                           ? (double)res->fanout_sent / res->fanout_seconds
                           : 0),
               res->fan,
               grouped(res->fanin_seconds > 0
                           ? (double)res->fanin_sent / res->fanin_seconds
                           : 0));
}

/* ---- the run ------------------------------------------------------------- */

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("edist: bench pair: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Starts both nodes and waits for the driver's result. 0, or the exit
 * code (1, or 128+signal with r->signal set). */
static int pair_measure(pair_run *r)
{
    char port[16], bytes[32], count[32], rtt_count[32], warmup[32], rate[32],
        ol_count[32], fan[32], fan_count[32];
    snprintf(rate, sizeof rate, "%lld", r->o.rate ? r->o.rate : 1);
    snprintf(ol_count, sizeof ol_count, "%lld", r->o.ol_count);
    snprintf(fan, sizeof fan, "%lld", r->o.fan);
    snprintf(fan_count, sizeof fan_count, "%lld", r->o.fan_count);
    snprintf(port, sizeof port, "%u", r->epmd_port);
    snprintf(bytes, sizeof bytes, "%lld", r->o.bytes);
    snprintf(count, sizeof count, "%lld", r->o.count);
    snprintf(rtt_count, sizeof rtt_count, "%lld", r->o.rtt_count);
    snprintf(warmup, sizeof warmup, "%lld", r->o.warmup);
    char *transport = (char *)r->o.lane->transport, *idle = (char *)r->o.idle;
    /* A second lane: the port of each node, and the driver waits until
     * both moved their data there (else it would measure TCP). */
    bool dpdk = strcmp(transport, "dpdk") == 0;
    char *device = (char *)r->o.lane->device;
    char eal_a[512] = "", eal_b[512] = "";
    if (r->veth) {
        /* af_xdp: one queue, the veth's only one. */
        bool xdp = strcmp(r->o.lane->name, "af_xdp") == 0;
        for (int i = 0; i < 2; i++)
            snprintf(i ? eal_b : eal_a, sizeof eal_a,
                     "--no-pci --vdev=%s,iface=%s%s", device,
                     r->netns.data_if[i],
                     xdp ? ",start_queue=0,queue_count=1" : "");
    } else if (dpdk) {
        snprintf(r->lane_dir, sizeof r->lane_dir,
                 "/tmp/edist-bench-pair-XXXXXX");
        if (!mkdtemp(r->lane_dir)) {
            r->lane_dir[0] = '\0';
            fail("no directory for the memif socket: %s", strerror(errno));
            return 1;
        }
        /* Zero-copy: the client's memory must be one file per segment
         * list for the server to map it (also without hugepages). */
        bool zc = r->o.memif_zero_copy;
        for (int i = 0; i < 2; i++)
            snprintf(i ? eal_b : eal_a, sizeof eal_a,
                     "--no-pci%s --vdev=net_memif0,role=%s,bsize=9728,"
                     "socket=%s/memif.sock,socket-abstract=no%s",
                     zc ? " --single-file-segments" : "",
                     i ? "server" : "client", r->lane_dir,
                     zc && i == 0 ? ",zero-copy=yes" : "");
    }
    /* Without a second lane the argument list ends before its flags;
     * without --udp before the UDP address. */
    char *lane_flag = dpdk ? "--dpdk-port" : NULL;
    char *udp_flag = dpdk && r->o.udp ? "--dpdk-udp-address" : NULL;
    char *listen_a = r->veth ? (char *)r->netns.ctl_addr[0] : "127.0.0.1";
    char *listen_b = r->veth ? (char *)r->netns.ctl_addr[1] : "127.0.0.1";
    char await_s[24];
    snprintf(await_s, sizeof await_s, "%lld", dpdk ? r->o.lane_wait_s : 0);
#define NODE_FLAGS(c, listen, eal, udp_addr)                                   \
    "--name", (c)->name, "--epmd-port", port, "--listen-address", listen,      \
        "--start-epmd", "false", "--transport", transport, "--idle", idle,     \
        lane_flag, device, "--dpdk-eal-args", eal, udp_flag, udp_addr, NULL
    char *b_argv[] = {
        (char *)r->exe, "bench", BENCH_PAIR_PEER_COMMAND,
        "sink",         "--",    NODE_FLAGS(&r->b, listen_b, eal_b, "10.88.1.2")};
    char *a_argv[] = {
        (char *)r->exe, "bench",       BENCH_PAIR_PEER_COMMAND,
        "driver",       "--peer",      r->b.name,
        "--bytes",      bytes,         "--count",
        count,          "--rtt-count", rtt_count,
        "--warmup",     warmup,        "--await-lane",
        await_s,        "--rate",      rate,
        "--ol-count",   ol_count,      "--fan",
        fan,            "--fan-count", fan_count,
        "--samples",    r->o.samples ? (char *)r->o.samples : "",
        "--",           NODE_FLAGS(&r->a, listen_a, eal_a, "10.88.1.1")};
#undef NODE_FLAGS
    int rc = child_start(r, &r->b, b_argv);
    int ev = PUMP_PROGRESS;
    while (rc == 0 && !r->b.ready && r->b.out_fd >= 0 &&
           (ev = pump(r)) == PUMP_PROGRESS)
        ;
    if (rc == 0 && ev == PUMP_PROGRESS && !r->b.ready) {
        char how[64];
        child_reap(&r->b, now_ns() + 1000000000u);
        describe_exit(&r->b, how, sizeof how);
        fail("%s (pid %ld) %s before it was ready", r->b.role, (long)r->b.pid,
             how);
        return 1;
    }
    if (rc == 0 && ev == PUMP_PROGRESS)
        rc = child_start(r, &r->a, a_argv);
    if (rc) {
        cli_error("bench pair", rc);
        return 1;
    }
    while (ev == PUMP_PROGRESS && r->a.out_fd >= 0)
        ev = pump(r);
    /* Its output closed: it is ending (stopping its node). */
    if (ev == PUMP_PROGRESS && !child_reap(&r->a, r->deadline_ns))
        ev = PUMP_TIMEOUT;
    if (ev == PUMP_SIGNAL)
        return 128 + r->signal;
    if (ev == PUMP_TIMEOUT) {
        pair_child *late = r->b.ready ? &r->a : &r->b;
        fail("%s (pid %ld) did not %s within %lld s (--timeout): ending it",
             late->role, (long)late->pid,
             late == &r->a ? "finish" : "get ready", r->o.timeout_s);
        return 1;
    }
    if (!exited_zero(&r->a) || !r->a.have_result) {
        char how[64];
        describe_exit(&r->a, how, sizeof how);
        fail("%s (pid %ld) %s%s", r->a.role, (long)r->a.pid, how,
             r->a.have_result ? "" : " without a result");
        return 1;
    }
    return 0;
}

static int bench_pair(int argc, char **argv)
{
    static pair_run run;
    pair_run *r = &run;
    *r = (pair_run){.sig_fd = -1,
                    .a = {.role = "node a", .side = 0, .out_fd = -1},
                    .b = {.role = "node b", .side = 1, .out_fd = -1}};
    int rc = parse_pair_opts(argc, argv, &r->o);
    if (rc == CLI_DONE)
        return 0;
    if (rc == 2)
        return 2;
    if (rc == 0)
        rc = pair_shards(&r->o);
    if (rc) {
        cli_error("bench pair", rc);
        fprintf(stderr, "%s  (edist bench pair --help)\n", pair_synopsis);
        return 2;
    }
    r->exe = self_exe();
    if (!r->exe) {
        fail("cannot find this program (/proc/self/exe)");
        return 1;
    }
    /* Signals come through sig_fd: blocked before any thread or child
     * exists (children unblock them before exec). */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    r->sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC);
    if (r->sig_fd < 0) {
        fail("signalfd: %s", strerror(errno));
        return 1;
    }

    /* A cookie of this run alone, to the nodes through their environment
     * (not on a command line that ps shows). */
    uint8_t random[16];
    char cookie[2 * sizeof random + 1];
    if (getrandom(random, sizeof random, 0) != (ssize_t)sizeof random) {
        fail("getrandom: %s", strerror(errno));
        close(r->sig_fd);
        return 1;
    }
    for (size_t i = 0; i < sizeof random; i++)
        snprintf(cookie + 2 * i, 3, "%02x", random[i]);
    setenv("EDIST_COOKIE", cookie, 1);
    r->veth = r->o.lane->veth;
    if (r->veth) {
        rc = bench_netns_create(&r->netns, (long)getpid(), r->o.faults_pct);
        if (rc) {
            cli_error("bench pair: network namespaces", rc);
            close(r->sig_fd);
            return 1;
        }
        if (r->o.verbose)
            fprintf(stderr,
                    "edist bench pair: namespaces %s and %s, data veth %s-%s, "
                    "control veth %s (%s)-%s (%s), faults %g%%\n",
                    r->netns.ns[0], r->netns.ns[1], r->netns.data_if[0],
                    r->netns.data_if[1], r->netns.ctl_if[0],
                    r->netns.ctl_addr[0], r->netns.ctl_if[1],
                    r->netns.ctl_addr[1], r->o.faults_pct);
    }
    snprintf(r->a.name, sizeof r->a.name, "edist_bench_a_%ld@%s",
             (long)getpid(), r->veth ? r->netns.ctl_addr[0] : "127.0.0.1");
    snprintf(r->b.name, sizeof r->b.name, "edist_bench_b_%ld@%s",
             (long)getpid(), r->veth ? r->netns.ctl_addr[1] : "127.0.0.1");

    rc = epmd_start(r);
    if (rc) {
        cli_error("bench pair: port mapper", rc);
        epmd_stop(r);
        if (r->veth)
            bench_netns_destroy(&r->netns);
        close(r->sig_fd);
        return 1;
    }
    if (r->o.verbose)
        fprintf(stderr,
                "edist bench pair: port mapper%s on %s:%u "
                "(in this process, pid %ld)\n",
                r->veth ? "s" : "", r->veth ? "10.88.0.1 and .2" : "127.0.0.1",
                r->epmd_port, (long)getpid());
    r->deadline_ns = now_ns() + (uint64_t)r->o.timeout_s * 1000000000u;

    int out = pair_measure(r);
    /* b stops cleanly on SIGTERM; a, if still there, was cut short. */
    child_end(&r->a, SIGTERM, BENCH_PAIR_STOP_GRACE_MS);
    child_end(&r->b, SIGTERM, BENCH_PAIR_STOP_GRACE_MS);
    epmd_stop(r);
    if (r->veth && r->o.faults_pct > 0 && r->o.verbose) {
        unsigned long long w[4];
        bench_netns_wire_counts(&r->netns, w);
        fprintf(stderr,
                "edist bench pair: the wire dropped %llu frames, duplicated "
                "%llu, delayed %llu (reordered), passed %llu straight on\n",
                w[0], w[1], w[2], w[3]);
    }
    if (r->veth)
        bench_netns_destroy(&r->netns);
    if (r->lane_dir[0]) {
        /* the memif socket, gone with its server unless it was killed */
        char sock[96];
        snprintf(sock, sizeof sock, "%s/memif.sock", r->lane_dir);
        unlink(sock);
        rmdir(r->lane_dir);
    }
    take_pending_signal(r);
    close(r->sig_fd);
    if (r->o.verbose) {
        /* How each ended, as reaped here. */
        char how_a[64], how_b[64];
        describe_exit(&r->a, how_a, sizeof how_a);
        describe_exit(&r->b, how_b, sizeof how_b);
        fprintf(stderr,
                "edist bench pair: ended node a (pid %ld, %s), node b (pid "
                "%ld, %s)\n",
                (long)r->a.pid, how_a, (long)r->b.pid, how_b);
    }
    if (r->signal) {
        fail("stopped by signal %d (%s): ended node a (pid %ld) and node "
             "b (pid %ld)",
             r->signal, strsignal(r->signal), (long)r->a.pid, (long)r->b.pid);
        return 128 + r->signal;
    }
    if (out == 0 && r->b.pid > 0 && !exited_zero(&r->b)) {
        char how[64];
        describe_exit(&r->b, how, sizeof how);
        fail("%s (pid %ld) %s when asked to stop", r->b.role, (long)r->b.pid,
             how);
        out = 1;
    }
    if (!r->a.have_result)
        return out ? out : 1;
    bench_pair_result *res = &r->a.result;
    if (r->o.json)
        print_json(r, res);
    else
        print_table(r, res);
    fflush(stdout);
    if (res->lost || res->out_of_order || res->duplicates ||
        res->bad_messages || res->stalled) {
        fail("messages went wrong: lost %" PRIu64 ", out of order %" PRIu64
             ", duplicated %" PRIu64 ", malformed %" PRIu64 "%s",
             res->lost, res->out_of_order, res->duplicates, res->bad_messages,
             res->stalled ? ", and the receiver stopped acknowledging" : "");
        out = 1;
    }
    return out;
}

int cmd_bench(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "";
    if (!strcmp(what, "pair"))
        return bench_pair(argc - 1, argv + 1);
    if (!strcmp(what, BENCH_PAIR_PEER_COMMAND))
        return bench_pair_peer(argc - 1, argv + 1);
    if (!strcmp(what, "ping") || !strcmp(what, "local"))
        return cmd_bench_quick(argc, argv);
    if (!strcmp(what, "-h") || !strcmp(what, "--help") || !strcmp(what, "-help")) {
        bench_usage(stdout);
        return 0;
    }
    if (what[0])
        fprintf(stderr, "edist bench: unknown benchmark '%s'\n", what);
    bench_usage(stderr);
    return 2;
}
