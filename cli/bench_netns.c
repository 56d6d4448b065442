/* SPDX-License-Identifier: Apache-2.0 */
/* Network namespaces and veth pairs for `edist bench pair` (bench_netns.h). */
#include "bench_netns.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edist/edist.h"

extern char **environ;

#define NETEM_ARGS_MAX 32

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
    char *argv[24 + NETEM_ARGS_MAX];
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

/* tc qdisc add dev IF root netem ARGS..., in namespace ns. */
static int netem_add(const char *ns, const char *ifname, const char *spec)
{
    char copy[256];
    char *argv[16 + NETEM_ARGS_MAX];
    size_t n = 0;
    const char *head[] = {"tc", "-n", ns, "qdisc", "add", "dev", ifname,
                          "root", "netem"};
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
        argv[n++] = (char *)head[i];
    snprintf(copy, sizeof copy, "%s", spec);
    char *save = NULL;
    for (char *w = strtok_r(copy, " \t", &save); w && n < 9 + NETEM_ARGS_MAX;
         w = strtok_r(NULL, " \t", &save))
        argv[n++] = w;
    argv[n] = NULL;
    if (run(argv) != 0)
        return edist_set_error(EDIST_EIO,
                               "'tc -n %s qdisc add dev %s root netem %s' failed",
                               ns, ifname, spec);
    return 0;
}

static int open_ns(const char *ns)
{
    char path[96];
    snprintf(path, sizeof path, "/run/netns/%s", ns);
    return open(path, O_RDONLY | O_CLOEXEC);
}

int bench_netns_create(bench_netns *n, long id, const char *netem)
{
    static const char *const addr[2] = {"10.88.0.1", "10.88.0.2"};
    static const char *const cidr[2] = {"10.88.0.1/30", "10.88.0.2/30"};
    *n = (bench_netns){.fd = {-1, -1}, .home_fd = -1};
    n->home_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (n->home_fd < 0)
        return edist_set_error(EDIST_EIO, "/proc/self/ns/net: %s",
                               strerror(errno));
    for (int i = 0; i < 2; i++) {
        char side = i ? 'b' : 'a';
        snprintf(n->ns[i], sizeof n->ns[i], "edist-bp-%ld-%c", id, side);
        snprintf(n->data_if[i], sizeof n->data_if[i], "ebd%ld%c", id, side);
        snprintf(n->ctl_if[i], sizeof n->ctl_if[i], "ebc%ld%c", id, side);
        n->ctl_addr[i] = addr[i];
    }
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
        rc = cmd("ip", "netns", "add", n->ns[i], NULL);
        n->ns_made[i] = rc == 0;
        if (rc == 0 && (n->fd[i] = open_ns(n->ns[i])) < 0)
            rc = edist_set_error(EDIST_EIO, "/run/netns/%s: %s", n->ns[i],
                                 strerror(errno));
    }
    if (rc == 0)
        rc = cmd("ip", "link", "add", n->data_if[0], "netns", n->ns[0], "type",
                 "veth", "peer", "name", n->data_if[1], "netns", n->ns[1],
                 NULL);
    if (rc == 0)
        rc = cmd("ip", "link", "add", n->ctl_if[0], "netns", n->ns[0], "type",
                 "veth", "peer", "name", n->ctl_if[1], "netns", n->ns[1], NULL);
    for (int i = 0; i < 2 && rc == 0; i++) {
        /* The nodes register with their port mapper on the loopback. */
        rc = cmd("ip", "-n", n->ns[i], "link", "set", "lo", "up", NULL);
        if (rc == 0)
            rc = cmd("ip", "-n", n->ns[i], "addr", "add", cidr[i], "dev",
                     n->ctl_if[i], NULL);
        if (rc == 0)
            rc = cmd("ip", "-n", n->ns[i], "link", "set", n->ctl_if[i], "up",
                     NULL);
        if (rc == 0)
            rc = cmd("ip", "-n", n->ns[i], "link", "set", n->data_if[i], "up",
                     NULL);
        if (rc == 0 && netem && *netem)
            rc = netem_add(n->ns[i], n->data_if[i], netem);
    }
    if (rc)
        bench_netns_destroy(n);
    return rc;
}

void bench_netns_destroy(bench_netns *n)
{
    for (int i = 0; i < 2; i++) {
        if (n->fd[i] >= 0)
            close(n->fd[i]);
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
