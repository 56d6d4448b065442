/* SPDX-License-Identifier: Apache-2.0 */
/* Network namespaces and veth pairs for `edist bench pair` (bench_netns.h). */
#include "bench_netns.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edist/edist.h"

extern char **environ;

/* A classic BPF program that matches every frame: ret -1. */
#define ALWAYS "1,6 0 0 4294967295,"

/* Runs argv (ip or tc, found on PATH) with an empty signal mask, stdin
 * from /dev/null, and waits for it. 0, or -1 when it could not run or
 * did not exit 0. */
static int run(char *const argv[])
{
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t fa;
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0)
        return -1;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* run() of the words given, ended by NULL; on failure sets the error to
 * the command line. */
static int cmd(const char *first, ...)
{
    char *argv[40];
    char line[512];
    size_t n = 0, o = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *w = first; w && n + 1 < sizeof argv / sizeof argv[0];
         w = va_arg(ap, const char *)) {
        argv[n++] = (char *)w;
        int k = snprintf(line + o, sizeof line - o, "%s%s", o ? " " : "", w);
        o += k > 0 && (size_t)k < sizeof line - o ? (size_t)k : 0;
    }
    va_end(ap);
    argv[n] = NULL;
    if (run(argv) != 0)
        return edist_set_error(EDIST_EIO, "'%s' failed", line);
    return 0;
}

/* A classic BPF program for tc's bpf classifier that matches a frame with
 * probability pct/100: the kernel's per-CPU random number (ld rand) below
 * a threshold. */
static void random_match(double pct, char *out, size_t cap)
{
    uint32_t threshold = (uint32_t)(pct / 100.0 * 4294967295.0);
    /* ld rand; jge threshold ? miss : match; ret -1 (match); ret 0 */
    snprintf(out, cap, "4,32 0 0 %u,53 1 0 %u,6 0 0 4294967295,6 0 0 0,",
             4294963256u /* SKF_AD_OFF + SKF_AD_RANDOM */, threshold);
}

/* The wire's forwarding of frames arriving on in_if (in namespace ns) to
 * out_if: pct% dropped, pct% sent twice, pct% sent through the detour
 * veth (detour_if, whose queue delays them behind later frames), the rest
 * straight on. Filters are tried in order; each draws its own number. */
static int wire_forward(const char *ns, const char *in_if, const char *out_if,
                        const char *detour_if, double pct)
{
    char match[128];
    random_match(pct, match, sizeof match);
    int rc = cmd("tc", "-n", ns, "qdisc", "add", "dev", in_if, "clsact", NULL);
    if (rc == 0 && pct > 0)
        rc = cmd("tc", "-n", ns, "filter", "add", "dev", in_if, "ingress",
                 "prio", "1", "bpf", "bytecode", match, "action", "mirred",
                 "egress", "redirect", "dev", "lo", NULL);
    if (rc == 0 && pct > 0)
        rc = cmd("tc", "-n", ns, "filter", "add", "dev", in_if, "ingress",
                 "prio", "2", "bpf", "bytecode", match, "action", "mirred",
                 "egress", "mirror", "dev", out_if, "action", "mirred",
                 "egress", "redirect", "dev", out_if, NULL);
    if (rc == 0 && pct > 0)
        rc = cmd("tc", "-n", ns, "filter", "add", "dev", in_if, "ingress",
                 "prio", "3", "bpf", "bytecode", match, "action", "mirred",
                 "egress", "redirect", "dev", detour_if, NULL);
    if (rc == 0)
        rc = cmd("tc", "-n", ns, "filter", "add", "dev", in_if, "ingress",
                 "prio", "4", "bpf", "bytecode", ALWAYS, "action", "mirred",
                 "egress", "redirect", "dev", out_if, NULL);
    return rc;
}

/* The detour's far end hands its frames on to out_if. Its egress queue
 * is slow (a token bucket), so a detoured frame arrives after frames sent
 * straight on after it. */
static int detour_end(const char *ns, const char *in_if, const char *out_if)
{
    int rc = cmd("tc", "-n", ns, "qdisc", "add", "dev", in_if, "clsact", NULL);
    if (rc == 0)
        rc = cmd("tc", "-n", ns, "filter", "add", "dev", in_if, "ingress",
                 "prio", "1", "bpf", "bytecode", ALWAYS, "action", "mirred",
                 "egress", "redirect", "dev", out_if, NULL);
    return rc;
}

static int open_ns(const char *ns)
{
    char path[96];
    snprintf(path, sizeof path, "/run/netns/%s", ns);
    return open(path, O_RDONLY | O_CLOEXEC);
}

/* ip link add A netns NS_A type veth peer name B netns NS_B */
static int veth(const char *a, const char *ns_a, const char *b,
                const char *ns_b)
{
    return cmd("ip", "link", "add", a, "netns", ns_a, "type", "veth", "peer",
               "name", b, "netns", ns_b, NULL);
}

static int link_up(const char *ns, const char *ifname)
{
    return cmd("ip", "-n", ns, "link", "set", ifname, "up", NULL);
}

int bench_netns_create(bench_netns *n, long id, double faults_pct)
{
    static const char *const addr[2] = {"10.88.0.1", "10.88.0.2"};
    static const char *const cidr[2] = {"10.88.0.1/30", "10.88.0.2/30"};
    *n = (bench_netns){.fd = {-1, -1}, .home_fd = -1, .id = id};
    n->home_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (n->home_fd < 0)
        return edist_set_error(EDIST_EIO, "/proc/self/ns/net: %s",
                               strerror(errno));
    bool wire = faults_pct > 0;
    for (int i = 0; i < 3; i++) {
        char side = "abw"[i];
        snprintf(n->ns[i], sizeof n->ns[i], "edist-bp-%ld-%c", id, side);
        if (i < 2) {
            snprintf(n->data_if[i], sizeof n->data_if[i], "ebd%ld%c", id, side);
            snprintf(n->ctl_if[i], sizeof n->ctl_if[i], "ebc%ld%c", id, side);
            n->ctl_addr[i] = addr[i];
        }
    }
    /* the wire's ends: x faces a, y faces b; r-s the detour */
    char wx[16], wy[16], wr[16], ws[16];
    snprintf(wx, sizeof wx, "ebd%ldx", id);
    snprintf(wy, sizeof wy, "ebd%ldy", id);
    snprintf(wr, sizeof wr, "ebd%ldr", id);
    snprintf(ws, sizeof ws, "ebd%lds", id);
    int rc = 0;
    for (int i = 0; i < (wire ? 3 : 2) && rc == 0; i++) {
        rc = cmd("ip", "netns", "add", n->ns[i], NULL);
        n->ns_made[i] = rc == 0;
        if (rc == 0 && i < 2 && (n->fd[i] = open_ns(n->ns[i])) < 0)
            rc = edist_set_error(EDIST_EIO, "/run/netns/%s: %s", n->ns[i],
                                 strerror(errno));
        if (rc == 0)
            rc = link_up(n->ns[i], "lo");
    }
    if (rc == 0 && !wire)
        rc = veth(n->data_if[0], n->ns[0], n->data_if[1], n->ns[1]);
    if (rc == 0 && wire)
        rc = veth(n->data_if[0], n->ns[0], wx, n->ns[2]);
    if (rc == 0 && wire)
        rc = veth(n->data_if[1], n->ns[1], wy, n->ns[2]);
    if (rc == 0 && wire)
        rc = veth(wr, n->ns[2], ws, n->ns[2]);
    if (rc == 0)
        rc = veth(n->ctl_if[0], n->ns[0], n->ctl_if[1], n->ns[1]);
    for (int i = 0; i < 2 && rc == 0; i++) {
        rc = cmd("ip", "-n", n->ns[i], "addr", "add", cidr[i], "dev",
                 n->ctl_if[i], NULL);
        if (rc == 0)
            rc = link_up(n->ns[i], n->ctl_if[i]);
        if (rc == 0)
            rc = link_up(n->ns[i], n->data_if[i]);
    }
    const char *wire_ifs[] = {wx, wy, wr, ws};
    for (int i = 0; wire && i < 4 && rc == 0; i++)
        rc = link_up(n->ns[2], wire_ifs[i]);
    /* The detour's queue: a token bucket of 20 Mbit/s holding 64 KB
     * (~25 ms); what does not fit is dropped, which is loss too. */
    for (int i = 2; wire && i < 4 && rc == 0; i++)
        rc = cmd("tc", "-n", n->ns[2], "qdisc", "add", "dev", wire_ifs[i],
                 "root", "tbf", "rate", "20mbit", "burst", "3000", "limit",
                 "65536", NULL);
    if (rc == 0 && wire)
        rc = wire_forward(n->ns[2], wx, wy, wr, faults_pct);
    if (rc == 0 && wire)
        rc = wire_forward(n->ns[2], wy, wx, ws, faults_pct);
    if (rc == 0 && wire)
        rc = detour_end(n->ns[2], ws, wy);
    if (rc == 0 && wire)
        rc = detour_end(n->ns[2], wr, wx);
    if (rc)
        bench_netns_destroy(n);
    return rc;
}

/* Frames each of the wire's filters on in_if took, by priority (1 drop,
 * 2 duplicate, 3 detour, 4 straight on), added to counts[0..3], from
 * `tc -s filter show`: the first "Sent B bytes N pkt" after each "pref K"
 * header with a program. */
static void wire_filter_counts(const char *ns, const char *in_if,
                               unsigned long long counts[4])
{
    char command[160], line[512];
    snprintf(command, sizeof command,
             "tc -s -n %s filter show dev %s ingress 2>/dev/null", ns, in_if);
    FILE *f = popen(command, "r");
    if (!f)
        return;
    int pref = 0;
    bool taken = true;
    while (fgets(line, sizeof line, f)) {
        const char *at = strstr(line, " pref ");
        unsigned long long bytes, pkts;
        if (at && strstr(line, "handle")) {
            pref = atoi(at + 6);
            taken = false;
        } else if (!taken && (at = strstr(line, "Sent ")) &&
                   sscanf(at, "Sent %llu bytes %llu pkt", &bytes, &pkts) == 2) {
            if (pref >= 1 && pref <= 4)
                counts[pref - 1] += pkts;
            taken = true;
        }
    }
    pclose(f);
}

void bench_netns_wire_counts(const bench_netns *n, unsigned long long counts[4])
{
    for (int i = 0; i < 4; i++)
        counts[i] = 0;
    if (!n->ns_made[2])
        return;
    for (int side = 0; side < 2; side++) {
        char in_if[16];
        snprintf(in_if, sizeof in_if, "ebd%ld%c", n->id, side ? 'y' : 'x');
        wire_filter_counts(n->ns[2], in_if, counts);
    }
}

void bench_netns_destroy(bench_netns *n)
{
    for (int i = 0; i < 3; i++) {
        if (i < 2 && n->fd[i] >= 0)
            close(n->fd[i]);
        if (i < 2)
            n->fd[i] = -1;
        if (n->ns_made[i] && cmd("ip", "netns", "del", n->ns[i], NULL) != 0)
            fprintf(stderr, "edist: bench pair: %s\n", edist_last_error());
        n->ns_made[i] = false;
    }
    if (n->home_fd >= 0)
        close(n->home_fd);
    n->home_fd = -1;
}

int bench_netns_enter(const bench_netns *n, int side)
{
    int fd = side < 0 ? n->home_fd : n->fd[side];
    return setns(fd, CLONE_NEWNET);
}
