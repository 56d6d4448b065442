/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers of the n4 node tests (test_node_frag.c, test_node_postshake.c):
 * children (our own epmd, erl nodes, from tests/common/peers.h) ended by
 * pid and dying with us, erl expressions through erl_call, nodes with a
 * captured log, and a "raw peer": a socket that completes the real handshake
 * (control/handshake_io) with an edist node and then reads and writes
 * distribution frames byte by byte, so tests can check the wire and feed it bad
 * input. */
#ifndef N4_UTIL_H
#define N4_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "control/dist_msg.h"
#include "control/dist_reasm.h"
#include "control/epmd_client.h"
#include "control/handshake.h"
#include "control/handshake_io.h"
#include "edist/node.h"
#include "edist/term.h"
#include "peers.h"
#include "peers_node.h"

#define N4_COOKIE "N4COOKIE"
/* Each test program uses some of these. */
#define N4_FN __attribute__((unused)) static

/* The temp HOME, our epmd and this host's short name; the children are
 * ended by pid by n4_group_teardown (tests/common/peers.h). */
static peers_env g;

/* "short@thishost" */
N4_FN void full_of(const char *shortname, char *out, size_t cap)
{
    snprintf(out, cap, "%s@%s", shortname, g.host);
}

/* An erl node whose -eval is `extra` (then it waits); waits until it is
 * registered. ticktime in seconds. */
N4_FN pid_t start_erl(const char *name, const char *extra, int ticktime)
{
    pid_t pid = peers_erl_start(&g, name, N4_COOKIE, extra, ticktime);
    assert_true(pid > 0);
    return pid;
}

/* Evaluate expr on an erl node through erl_call; the printed result with
 * the spaces after commas removed and newlines dropped. */
N4_FN int erl_eval(const char *node_short, const char *expr, char *out,
                   size_t cap)
{
    return peers_erl_call(g.dir, N4_COOKIE, node_short, expr, out, cap);
}

/* Poll an erl expression until it prints `want` or ms pass. */
N4_FN bool erl_wait(const char *node_short, const char *expr, const char *want,
                    int ms, char *out, size_t cap)
{
    int64_t end = peers_now_ms() + ms;
    do {
        erl_eval(node_short, expr, out, cap);
        if (!strcmp(out, want))
            return true;
        usleep(100 * 1000);
    } while (peers_now_ms() < end);
    return false;
}

/* ---- our epmd, temp HOME ------------------------------------------------- */

N4_FN int n4_group_setup(const char *tag)
{
    char dir[128];
    snprintf(dir, sizeof dir, "/tmp/edist-%s.XXXXXX", tag);
    /* Writes to a peer that closed must fail, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    /* The teardown SIGKILLs what is left: nothing here needs a polite stop. */
    return peers_env_setup(&g, dir, 0);
}

N4_FN int n4_group_teardown(void)
{
    return peers_env_teardown(&g);
}

/* ---- nodes with a captured log ------------------------------------------- */

typedef struct n4_log {
    pthread_mutex_t mu;
    char lines[256][400];
    int count;
} n4_log;

N4_FN void n4_log_fn(void *user, edist_log_level level, const char *line)
{
    n4_log *l = user;
    if (getenv("N4_VERBOSE"))
        fprintf(stderr, "    log %d: %s\n", (int)level, line);
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    if (l->count < 256)
        snprintf(l->lines[l->count++], sizeof l->lines[0], "%d %s", (int)level,
                 line);
    pthread_mutex_unlock(&l->mu);
}

/* Lines containing every one of the (NULL-terminated) substrings. */
N4_FN int log_count(n4_log *l, const char *a, const char *b)
{
    int n = 0;
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->count; i++)
        if (strstr(l->lines[i], a) && (!b || strstr(l->lines[i], b)))
            n++;
    pthread_mutex_unlock(&l->mu);
    return n;
}

/* Lines at level <= max_level (0 error .. 3 debug) containing a. */
N4_FN int log_count_level(n4_log *l, int max_level, const char *a)
{
    int n = 0;
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->count; i++)
        if (l->lines[i][0] - '0' <= max_level && strstr(l->lines[i] + 2, a))
            n++;
    pthread_mutex_unlock(&l->mu);
    return n;
}

N4_FN bool log_wait(n4_log *l, const char *a, const char *b, int ms)
{
    int64_t end = peers_now_ms() + ms;
    while (peers_now_ms() < end) {
        if (log_count(l, a, b) > 0)
            return true;
        usleep(10 * 1000);
    }
    return false;
}

N4_FN void log_dump(n4_log *l)
{
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->count; i++)
        print_message("  log: %s\n", l->lines[i]);
    pthread_mutex_unlock(&l->mu);
}

/* Start a node; cfg_in may preset the sizes (NULL: defaults). */
N4_FN edist_node *n4_start_node(const char *prefix, n4_log *log,
                                const edist_node_config *cfg_in)
{
    edist_node_config cfg;
    if (cfg_in)
        cfg = *cfg_in;
    else
        edist_node_config_init(&cfg);
    cfg.cookie = N4_COOKIE;
    cfg.log = n4_log_fn;
    cfg.log_user = log;
    cfg.log_level = EDIST_LOG_DEBUG;
    return peers_node_start(&cfg, prefix);
}

N4_FN void stats_of(edist_node *n, const char *peer, edist_node_peer_stats *st)
{
    int rc = edist_node_get_peer_stats(n, peer, st);
    if (rc)
        print_message("peer stats %s: %s\n", peer, edist_last_error());
    assert_int_equal(rc, 0);
}

/* ---- raw peer ------------------------------------------------------------ */

typedef struct rawpeer {
    int fd;
    char name[128];
    uint64_t flags; /* negotiated */
    edi_dist_reasm *reasm;
} rawpeer;

N4_FN void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Connect to node and complete the handshake as a hidden initiator named
 * prefix<pid>_<n>@host. rcvbuf > 0 shrinks our receive buffer first (so a
 * peer that does not read makes the node's queue grow soon). */
N4_FN void raw_connect(rawpeer *rp, edist_node *node, const char *prefix,
                       int rcvbuf)
{
    memset(rp, 0, sizeof *rp);
    char shortname[64];
    peers_unique_name(shortname, sizeof shortname, prefix);
    full_of(shortname, rp->name, sizeof rp->name);
    rp->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(rp->fd >= 0);
    if (rcvbuf > 0)
        setsockopt(rp->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    int one = 1;
    setsockopt(rp->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(edist_node_listen_port(node)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(rp->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    edi_hs_config c = {
        .role = EDI_HS_INITIATOR,
        .our_name = rp->name,
        .our_creation = 77,
        .hidden = true,
        .peer_name = edist_node_name(node),
        .cookie = N4_COOKIE,
    };
    edi_hs hs;
    assert_int_equal(edi_hs_init(&hs, &c), 0);
    int rc = edi_hs_io_run(&hs, rp->fd, edi_hs_io_now_ms() + 5000);
    if (rc)
        print_message("raw handshake: %s\n", edi_hs_error(&hs));
    assert_int_equal(rc, 0);
    rp->flags = edi_hs_get_result(&hs)->flags;
    edi_hs_wipe(&hs);
    assert_int_equal(edi_dist_reasm_create(NULL, &rp->reasm), 0);
}

/* On fd, connected to node: our send_name as our_name (the handshake's
 * first message), then the node's status and challenge, read within
 * wait_ms: the connection is in the handshake, waiting for our reply. */
N4_FN void n4_send_name(int fd, edist_node *node, const char *our_name, int wait_ms)
{
    edi_hs_config hc = {.role = EDI_HS_INITIATOR,
                        .our_name = our_name,
                        .our_creation = 9,
                        .peer_name = edist_node_name(node),
                        .cookie = N4_COOKIE};
    edi_hs hs;
    assert_int_equal(edi_hs_init(&hs, &hc), 0);
    size_t n;
    const uint8_t *out = edi_hs_output(&hs, &n);
    assert_int_equal(write(fd, out, n), (ssize_t)n);
    edi_hs_wipe(&hs);
    uint8_t buf[512];
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&pf, 1, wait_ms), 1);
    assert_true(read(fd, buf, sizeof buf) > 0);
}

N4_FN void raw_close(rawpeer *rp)
{
    if (rp->fd >= 0)
        close(rp->fd);
    rp->fd = -1;
    edi_dist_reasm_free(rp->reasm);
    rp->reasm = NULL;
}

/* Read exactly n bytes by the deadline: 1, 0 on EOF, -1 on timeout or
 * error. */
N4_FN int read_full(int fd, uint8_t *buf, size_t n, int64_t deadline)
{
    size_t got = 0;
    while (got < n) {
        int left = (int)(deadline - peers_now_ms());
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, left);
        if (pr <= 0)
            continue;
        ssize_t r = read(fd, buf + got, n - got);
        if (r == 0)
            return 0;
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return errno == ECONNRESET ? 0 : -1;
        }
        got += (size_t)r;
    }
    return 1;
}

/* One frame (malloc'd payload into *out, its length into *len; a tick has
 * len 0 and *out NULL). 1, 0 on EOF, -1 on timeout. */
N4_FN int raw_read_frame(rawpeer *rp, uint8_t **out, size_t *len, int ms)
{
    int64_t deadline = peers_now_ms() + ms;
    uint8_t h[4];
    int r = read_full(rp->fd, h, 4, deadline);
    if (r <= 0)
        return r;
    size_t n =
        (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
    *len = n;
    *out = NULL;
    if (n == 0)
        return 1;
    *out = malloc(n);
    assert_non_null(*out);
    r = read_full(rp->fd, *out, n, deadline + 5000);
    if (r <= 0) {
        free(*out);
        *out = NULL;
    }
    return r;
}

/* Write [u32 len][payload]. */
N4_FN void raw_write_frame(rawpeer *rp, const uint8_t *payload, size_t len)
{
    uint8_t h[4];
    put32(h, (uint32_t)len);
    if (write(rp->fd, h, 4) != 4)
        return; /* the node closed: the caller checks that */
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(rp->fd, payload + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* the node closed: the caller checks that */
        done += (size_t)w;
    }
}

/* Wait until the node closes the connection: true if it did within ms
 * (whatever it sent meanwhile is discarded). */
N4_FN bool raw_wait_closed(rawpeer *rp, int ms)
{
    int64_t end = peers_now_ms() + ms;
    uint8_t buf[65536];
    while (peers_now_ms() < end) {
        struct pollfd p = {.fd = rp->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t r = read(rp->fd, buf, sizeof buf);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return true;
    }
    return false;
}

#endif
