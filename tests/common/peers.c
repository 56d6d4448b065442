/* SPDX-License-Identifier: Apache-2.0 */
/* Real peers for tests: see peers.h. */
#include "peers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHILDREN 32

/* Every child started and not yet ended, by pid, oldest first. */
static pid_t children[MAX_CHILDREN];
static int nchildren;
static bool atexit_set;
static int name_seq;

int64_t peers_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint16_t peers_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        return 0;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    uint16_t port = 0;
    if (bind(s, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(s, (struct sockaddr *)&sa, &sl) == 0)
        port = ntohs(sa.sin_port);
    close(s);
    return port;
}

void peers_unique_name(char *buf, size_t cap, const char *prefix)
{
    snprintf(buf, cap, "%s%d_%d", prefix, (int)getpid(), ++name_seq);
}

/* ---- children ------------------------------------------------------------ */

/* A failed setup may never reach its teardown: nothing outlives us. */
static void end_all_at_exit(void)
{
    peers_end_all(0);
}

pid_t peers_spawn(char *const argv[], int *in_fd, int *out_fd,
                  const char *log_path)
{
    if (nchildren == MAX_CHILDREN)
        return -1; /* never run a child we could not end */
    if (!atexit_set) {
        atexit(end_all_at_exit);
        atexit_set = true;
    }
    int in_p[2] = {-1, -1}, out_p[2] = {-1, -1};
    if (in_fd && pipe2(in_p, O_CLOEXEC) != 0)
        return -1;
    if (out_fd && pipe2(out_p, O_CLOEXEC) != 0) {
        if (in_fd) {
            close(in_p[0]);
            close(in_p[1]);
        }
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* Die with the test, whatever happens to it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        setpgid(0, 0);
        int null = open("/dev/null", O_RDWR);
        int log = log_path ? open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600)
                           : null;
        if (log < 0)
            log = null;
        dup2(in_fd ? in_p[0] : null, 0);
        dup2(out_fd ? out_p[1] : log, 1);
        dup2(log, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    children[nchildren++] = pid;
    if (in_fd) {
        close(in_p[0]);
        *in_fd = in_p[1];
    }
    if (out_fd) {
        close(out_p[1]);
        *out_fd = out_p[0];
    }
    return pid;
}

void peers_end(pid_t pid, int grace_ms)
{
    if (pid <= 0)
        return;
    bool gone = false;
    if (grace_ms > 0) {
        kill(pid, SIGTERM);
        for (int waited_ms = 0; waited_ms < grace_ms; waited_ms += 100) {
            if (waitpid(pid, NULL, WNOHANG) == pid) {
                gone = true;
                break;
            }
            usleep(100 * 1000);
        }
    }
    if (!gone) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    for (int i = 0; i < nchildren; i++)
        if (children[i] == pid) {
            memmove(children + i, children + i + 1,
                    (size_t)(nchildren - i - 1) * sizeof children[0]);
            nchildren--;
            break;
        }
}

void peers_end_all(int grace_ms)
{
    while (nchildren > 0)
        peers_end(children[nchildren - 1], grace_ms);
}

/* ---- bytes --------------------------------------------------------------- */

int peers_write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int peers_read_full(int fd, void *p, size_t n, int timeout_ms)
{
    uint8_t *b = p;
    int64_t end = peers_now_ms() + timeout_ms;
    while (n > 0) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int64_t left = end - peers_now_ms();
        if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
            return -1;
        ssize_t r = read(fd, b, n);
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

int peers_connect(uint16_t port, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t el = sizeof err;
        if (errno != EINPROGRESS || poll(&pf, 1, timeout_ms) <= 0 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
            close(fd);
            return -1;
        }
    }
    /* Blocking again: callers bound their reads with poll. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

/* ---- epmd ---------------------------------------------------------------- */

uint16_t peers_epmd_port_please(uint16_t epmd_port, const char *alive)
{
    size_t n = strlen(alive);
    uint8_t req[128];
    if (n + 3 > sizeof req)
        return 0;
    int fd = peers_connect(epmd_port, 2000);
    if (fd < 0)
        return 0;
    req[0] = (uint8_t)((n + 1) >> 8);
    req[1] = (uint8_t)(n + 1);
    req[2] = 'z'; /* PORT_PLEASE2_REQ */
    memcpy(req + 3, alive, n);
    uint8_t resp[4];
    uint16_t port = 0;
    /* PORT2_RESP 'w', result 0, then the port. */
    if (peers_write_all(fd, req, n + 3) == 0 &&
        peers_read_full(fd, resp, 4, 2000) == 0 && resp[0] == 'w' &&
        resp[1] == 0)
        port = (uint16_t)((resp[2] << 8) | resp[3]);
    close(fd);
    return port;
}

bool peers_wait_registered(uint16_t epmd_port, const char *alive, int secs)
{
    int64_t end = peers_now_ms() + (int64_t)secs * 1000;
    while (peers_now_ms() < end) {
        if (peers_epmd_port_please(epmd_port, alive) > 0)
            return true;
        usleep(50 * 1000);
    }
    return false;
}

/* NAMES_REQ answered with at least epmd's own port: epmd serves. */
static bool epmd_answers(uint16_t epmd_port)
{
    int fd = peers_connect(epmd_port, 2000);
    if (fd < 0)
        return false;
    static const uint8_t req[3] = {0, 1, 'n'};
    uint8_t resp[4];
    bool ok =
        peers_write_all(fd, req, sizeof req) == 0 &&
        peers_read_full(fd, resp, 4, 2000) == 0 &&
        ((resp[0] << 24 | resp[1] << 16 | resp[2] << 8 | resp[3]) == epmd_port);
    close(fd);
    return ok;
}

/* ---- environment --------------------------------------------------------- */

static int start_epmd(peers_env *e)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        e->epmd_port = peers_free_port();
        char port[16];
        snprintf(port, sizeof port, "%u", e->epmd_port);
        char *argv[] = {"epmd", "-port", port, "-address", PEERS_HOST, NULL};
        e->epmd_pid = peers_spawn(argv, NULL, NULL, NULL);
        if (e->epmd_pid < 0)
            return -1;
        int64_t end = peers_now_ms() + 10000;
        while (peers_now_ms() < end) {
            if (epmd_answers(e->epmd_port))
                return 0;
            if (waitpid(e->epmd_pid, NULL, WNOHANG) == e->epmd_pid)
                break; /* port taken meanwhile: try another */
            usleep(50 * 1000);
        }
        peers_end(e->epmd_pid, e->end_grace_ms);
        e->epmd_pid = 0;
    }
    return -1;
}

int peers_env_setup(peers_env *e, const char *dir_template, int end_grace_ms)
{
    memset(e, 0, sizeof *e);
    e->end_grace_ms = end_grace_ms;
    snprintf(e->dir, sizeof e->dir, "%s", dir_template);
    if (!mkdtemp(e->dir))
        return -1;
    setenv("HOME", e->dir, 1); /* erl's cookie file, if any, lands here */
    gethostname(e->host, sizeof e->host);
    e->host[sizeof e->host - 1] = '\0';
    char *dot = strchr(e->host, '.');
    if (dot)
        *dot = '\0';
    if (start_epmd(e) != 0) {
        peers_env_teardown(e);
        return -1;
    }
    char port[16];
    snprintf(port, sizeof port, "%u", e->epmd_port);
    setenv("ERL_EPMD_PORT", port, 1);
    return 0;
}

int peers_env_teardown(peers_env *e)
{
    peers_end_all(e->end_grace_ms);
    e->epmd_pid = 0;
    if (e->dir[0] == '\0')
        return 0;
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- erl nodes ----------------------------------------------------------- */

pid_t peers_erl_spawn(const peers_erl_opts *o)
{
    char name[256], tt[16];
    if (o->long_name)
        snprintf(name, sizeof name, "%s@" PEERS_HOST, o->name);
    else
        snprintf(name, sizeof name, "%s", o->name);
    snprintf(tt, sizeof tt, "%d", o->ticktime_s);
    char *argv[] = {"erl",
                    "-noshell",
                    o->long_name ? "-name" : "-sname",
                    name,
                    "-setcookie",
                    (char *)o->cookie,
                    "-start_epmd",
                    "false",
                    "-kernel",
                    "net_ticktime",
                    tt,
                    "-kernel",
                    "inet_dist_use_interface",
                    "{127,0,0,1}",
                    "-eval",
                    (char *)o->eval,
                    NULL};
    return peers_spawn(argv, o->in_fd, o->out_fd, o->log_path);
}

pid_t peers_erl_start(const peers_env *e, const char *name, const char *cookie,
                      const char *extra, int ticktime_s)
{
    char eval[4096], log[PATH_MAX + 80];
    snprintf(eval, sizeof eval, "%s receive after infinity -> ok end.",
             extra ? extra : "");
    snprintf(log, sizeof log, "%s/%s.log", e->dir, name);
    peers_erl_opts o = {.name = name,
                        .cookie = cookie,
                        .ticktime_s = ticktime_s,
                        .eval = eval,
                        .log_path = log};
    pid_t pid = peers_erl_spawn(&o);
    if (pid <= 0)
        return -1;
    if (!peers_wait_registered(e->epmd_port, name, 25)) {
        peers_end(pid, 0);
        return -1;
    }
    return pid;
}

int peers_erl_call(const char *dir, const char *cookie, const char *node_short,
                   const char *expr, char *out, size_t cap)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/expr%d.erl", dir, ++name_seq);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "%s\n", expr);
    fclose(f);
    char cmd[PATH_MAX + 256];
    snprintf(cmd, sizeof cmd, "erl_call -sname %s -c %s -e < '%s' 2>&1",
             node_short, cookie, path);
    FILE *p = popen(cmd, "r");
    if (!p) {
        unlink(path);
        return -1;
    }
    size_t n = 0;
    int c;
    while ((c = fgetc(p)) != EOF && n + 1 < cap) {
        if (c == ' ' && n > 0 && out[n - 1] == ',')
            continue;
        if (c != '\n')
            out[n++] = (char)c;
    }
    out[n] = '\0';
    unlink(path);
    return pclose(p);
}

/* ---- the REPL ------------------------------------------------------------ */

static const char repl_eval[] =
    "io:format(\"READY~n\"),"
    "Loop = fun L() ->"
    "  case io:get_line('') of"
    "    eof -> halt();"
    "    Line ->"
    "      R = try"
    "            {ok, T, _} = erl_scan:string(Line),"
    "            {ok, Es} = erl_parse:parse_exprs(T),"
    "            {value, V, _} = erl_eval:exprs(Es, []), V"
    "          catch C:E -> {error, C, E} end,"
    "      io:format(\"RESULT ~w~n\", [R]),"
    "      L()"
    "  end end,"
    "Loop().";

/* Append what erl printed, waiting up to wait_ms: 1 read, 0 nothing yet,
 * -1 EOF, error or a full buffer. */
static int repl_read(peers_repl *r, int wait_ms)
{
    if (r->out_len + 1 >= sizeof r->out)
        return -1;
    struct pollfd pf = {.fd = r->out_fd, .events = POLLIN};
    int pr = poll(&pf, 1, wait_ms);
    if (pr == 0 || (pr < 0 && errno == EINTR))
        return 0;
    if (pr < 0)
        return -1;
    ssize_t n =
        read(r->out_fd, r->out + r->out_len, sizeof r->out - 1 - r->out_len);
    if (n <= 0)
        return -1;
    r->out_len += (size_t)n;
    r->out[r->out_len] = '\0';
    return 1;
}

int peers_repl_start(peers_repl *r, const char *node, const char *cookie,
                     int ticktime_s, const char *log_path)
{
    memset(r, 0, sizeof *r);
    r->in_fd = r->out_fd = -1;
    char alive[256];
    snprintf(alive, sizeof alive, "%s", node);
    char *at = strchr(alive, '@');
    if (at)
        *at = '\0';
    peers_erl_opts o = {.name = alive,
                        .long_name = true,
                        .cookie = cookie,
                        .ticktime_s = ticktime_s,
                        .eval = repl_eval,
                        .log_path = log_path,
                        .in_fd = &r->in_fd,
                        .out_fd = &r->out_fd};
    r->pid = peers_erl_spawn(&o);
    if (r->pid < 0)
        return -1;
    int64_t end = peers_now_ms() + 20000;
    while (strstr(r->out, "READY\n") == NULL) {
        int64_t left = end - peers_now_ms();
        if (left <= 0 || repl_read(r, (int)left) < 0)
            return -1;
    }
    r->out_scan = r->out_len;
    return 0;
}

int peers_repl_send(peers_repl *r, const char *expr)
{
    size_t n = strlen(expr);
    char *line = malloc(n + 1);
    if (!line)
        return -1;
    memcpy(line, expr, n);
    line[n] = '\n'; /* one write: one line */
    int rc = peers_write_all(r->in_fd, line, n + 1);
    free(line);
    return rc;
}

int peers_repl_result(peers_repl *r, char *res, size_t cap, int timeout_ms,
                      void (*idle)(void))
{
    int64_t end = peers_now_ms() + timeout_ms;
    for (;;) {
        r->out[r->out_len] = '\0';
        char *hit = strstr(r->out + r->out_scan, "RESULT ");
        char *nl = hit ? strchr(hit, '\n') : NULL;
        if (nl) {
            size_t n = (size_t)(nl - hit - 7);
            if (n >= cap)
                n = cap - 1;
            memcpy(res, hit + 7, n);
            res[n] = '\0';
            r->out_scan = (size_t)(nl + 1 - r->out);
            return 0;
        }
        if (idle)
            idle();
        int64_t left = end - peers_now_ms();
        if (left <= 0)
            return -1;
        if (repl_read(r, idle && left > 300 ? 300 : (int)left) < 0)
            return -1;
    }
}

void peers_repl_stop(peers_repl *r, int grace_ms)
{
    /* > 0: a zeroed struct (setup failed early) holds no descriptors. */
    if (r->in_fd > 0)
        close(r->in_fd); /* the REPL halts on EOF */
    r->in_fd = -1;
    peers_end(r->pid, grace_ms);
    r->pid = 0;
    if (r->out_fd > 0)
        close(r->out_fd);
    r->out_fd = -1;
}
