/* SPDX-License-Identifier: Apache-2.0 */
/* The handshake against a real OTP 25 node, both roles.
 *
 * The test starts its own `epmd -port P` on a free port and one `erl -name
 * h8erl<pid>@127.0.0.1` (ERL_EPMD_PORT=P, net_ticktime 4, distribution on
 * loopback only) whose stdin/stdout are a tiny REPL: we write one Erlang
 * expression per line and read back "RESULT <term>". Both come from
 * tests/common/peers.h: ended by pid in the group teardown, and dying with
 * us if the test crashes (PR_SET_PDEATHSIG). Our side talks to epmd inline
 * (PORT_PLEASE2 to find erl, ALIVE2 to register our listener): the edist
 * epmd client is tested on its own. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "control/handshake.h"
#include "control/handshake_io.h"
#include "edist/error.h"
#include "peers.h"

#define COOKIE "H8RIGHTCOOKIE"
#define HOST "127.0.0.1"

static struct {
    peers_env env; /* temp HOME, our epmd */
    peers_repl erl;
    char erl_node[64];
} g;

/* ---- sockets ---- */

static int connect_port(uint16_t port)
{
    int fd = -1;
    if (edi_hs_io_connect_tcp(HOST, port, edi_hs_io_now_ms() + 2000, &fd) < 0)
        return -1;
    return fd;
}

/* ---- inline epmd requests ---- */

/* ALIVE2: register alive at port; returns the connection to keep open (it
 * is the registration) and the creation, or -1. */
static int epmd_alive2(const char *alive, uint16_t port, bool hidden,
                       uint32_t *creation)
{
    int fd = connect_port(g.env.epmd_port);
    if (fd < 0)
        return -1;
    uint8_t req[128];
    size_t n = strlen(alive);
    size_t len = 13 + n;
    uint8_t *p = req;
    *p++ = (uint8_t)(len >> 8);
    *p++ = (uint8_t)len;
    *p++ = 'x';
    *p++ = (uint8_t)(port >> 8);
    *p++ = (uint8_t)port;
    *p++ = hidden ? 72 : 77;
    *p++ = 0;
    *p++ = 0;
    *p++ = 6;
    *p++ = 0;
    *p++ = 6;
    *p++ = (uint8_t)(n >> 8);
    *p++ = (uint8_t)n;
    memcpy(p, alive, n);
    p += n;
    *p++ = 0;
    *p++ = 0;
    uint8_t resp[6];
    if (peers_write_all(fd, req, (size_t)(p - req)) != 0 ||
        peers_read_full(fd, resp, 6, 2000) != 0 || resp[0] != 'v' ||
        resp[1] != 0) {
        close(fd);
        return -1;
    }
    *creation = ((uint32_t)resp[2] << 24) | ((uint32_t)resp[3] << 16) |
                ((uint32_t)resp[4] << 8) | resp[5];
    return fd;
}

/* ---- the erl REPL ---- */

/* Evaluate expr on the erl node; its result (~w) in res. */
static void erl_eval(const char *expr, char *res, size_t cap)
{
    assert_int_equal(peers_repl_send(&g.erl, expr), 0);
    assert_int_equal(peers_repl_result(&g.erl, res, cap, 15000, NULL), 0);
}

static bool erl_sees(const char *node, const char *which)
{
    char expr[256], res[256];
    snprintf(expr, sizeof expr, "lists:member('%s', nodes(%s)).", node, which);
    erl_eval(expr, res, sizeof res);
    return strcmp(res, "true") == 0;
}

/* ---- setup / teardown ---- */

static int setup(void **state)
{
    (void)state;
    memset(&g, 0, sizeof g);
    if (peers_env_setup(&g.env, "/tmp/edist-h8-erl-XXXXXX",
                        PEERS_TERM_GRACE_MS) != 0) {
        fprintf(stderr, "cannot set up HOME and start epmd\n");
        return -1;
    }
    char errlog[PATH_MAX + 16];
    snprintf(errlog, sizeof errlog, "%s/erl.stderr", g.env.dir);
    snprintf(g.erl_node, sizeof g.erl_node, "h8erl%d@" HOST, (int)getpid());
    return peers_repl_start(&g.erl, g.erl_node, COOKIE, 4, errlog);
}

static int teardown(void **state)
{
    (void)state;
    peers_repl_stop(&g.erl, PEERS_TERM_GRACE_MS);
    return peers_env_teardown(&g.env);
}

/* ---- helpers for our side ---- */

static void our_name(char *buf, size_t cap, const char *tag)
{
    snprintf(buf, cap, "h8%s%d@" HOST, tag, (int)getpid());
}

static uint16_t erl_port(void)
{
    char alive[64];
    snprintf(alive, sizeof alive, "%s", g.erl_node);
    *strchr(alive, '@') = '\0';
    uint16_t port = peers_epmd_port_please(g.env.epmd_port, alive);
    assert_true(port > 0);
    return port;
}

/* Connect to erl and run the initiator handshake. Returns the handshake
 * result code; *fd_out keeps the connection (caller closes). */
static int initiate(const char *me, bool hidden, const char *cookie,
                    edi_cookies *cookies, edi_hs *hs, int *fd_out)
{
    int fd = connect_port(erl_port());
    assert_true(fd >= 0);
    edi_hs_config cfg = {
        .role = EDI_HS_INITIATOR,
        .our_name = me,
        .our_creation = 0x5eed0001,
        .hidden = hidden,
        .peer_name = g.erl_node,
        .cookie = cookie,
        .cookies = cookies,
    };
    assert_int_equal(edi_hs_init(hs, &cfg), 0);
    int rc = edi_hs_io_run(hs, fd,
                           edi_hs_io_now_ms() + EDI_HS_SETUP_TIME_MS_DEFAULT);
    *fd_out = fd;
    return rc;
}

/* Read distribution packets for ms milliseconds, answering nothing;
 * counts ticks (empty packets) and other packets. Returns -1 if the
 * connection closed. */
static int drain(int fd, int ms, int *ticks, int *others, bool send_ticks)
{
    int64_t end = edi_hs_io_now_ms() + ms;
    int64_t next_tick = edi_hs_io_now_ms();
    static uint8_t buf[1 << 16];
    size_t have = 0;
    for (;;) {
        int64_t now = edi_hs_io_now_ms();
        if (now >= end)
            return 0;
        if (send_ticks && now >= next_tick) {
            static const uint8_t tick[4] = {0};
            if (peers_write_all(fd, tick, 4) != 0)
                return -1;
            next_tick = now + 1000;
        }
        int64_t wait = end - now;
        if (send_ticks && next_tick - now < wait)
            wait = next_tick - now;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, (int)(wait > 0 ? wait : 0)) <= 0)
            continue;
        ssize_t r = read(fd, buf + have, sizeof buf - have);
        if (r <= 0)
            return -1;
        have += (size_t)r;
        /* Split [u32 len][payload] packets. */
        for (;;) {
            if (have < 4)
                break;
            uint32_t len = ((uint32_t)buf[0] << 24) | ((uint32_t)buf[1] << 16) |
                           ((uint32_t)buf[2] << 8) | buf[3];
            if (len > sizeof buf - 4)
                return -1;
            if (have < 4 + len)
                break;
            if (len == 0)
                (*ticks)++;
            else
                (*others)++;
            memmove(buf, buf + 4 + len, have - 4 - len);
            have -= 4 + len;
        }
    }
}

/* Wait (up to ~5 s) until erl's view of node in nodes(which) is want. */
static bool erl_eventually(const char *node, const char *which, bool want)
{
    for (int i = 0; i < 25; i++) {
        if (erl_sees(node, which) == want)
            return true;
        usleep(200 * 1000);
    }
    return false;
}

/* ---- tests ---- */

/* (1) We initiate, hidden, right cookie: the connection is up and stays up
 * across more than net_ticktime while we tick. */
static void test_initiate_hidden_live(void **state)
{
    (void)state;
    char me[64];
    our_name(me, sizeof me, "hid");
    edi_hs hs;
    int fd;
    int rc = initiate(me, true, COOKIE, NULL, &hs, &fd);
    assert_int_equal(rc, 0);
    const edi_hs_result *r = edi_hs_get_result(&hs);
    assert_non_null(r);
    char flags[1024];
    edi_dflags_format(r->flags, flags, sizeof flags);
    printf("# negotiated with %s: 0x%llx %s\n", r->peer_name,
           (unsigned long long)r->flags, flags);
    edi_dflags_format(r->peer_flags, flags, sizeof flags);
    printf("# erl advertised: 0x%llx %s\n", (unsigned long long)r->peer_flags,
           flags);
    assert_string_equal(r->peer_name, g.erl_node);
    assert_true((r->flags & EDI_DFLAGS_MANDATORY_25) ==
                EDI_DFLAGS_MANDATORY_25);
    assert_true(r->flags & EDI_DFLAG_SPAWN);
    assert_true(r->flags & EDI_DFLAG_ALIAS);
    assert_true(r->flags & EDI_DFLAG_FRAGMENTS);
    /* erl offers the atom cache; we did not ask for it. */
    assert_true(r->peer_flags & EDI_DFLAG_DIST_HDR_ATOM_CACHE);
    assert_false(r->flags & EDI_DFLAG_DIST_HDR_ATOM_CACHE);
    assert_true(r->hidden);
    assert_false(r->peer_hidden);
    assert_true(r->peer_creation != 0);

    assert_true(erl_eventually(me, "hidden", true));
    assert_false(erl_sees(me, "visible"));
    /* 5 s > net_ticktime 4: erl keeps us only because we tick, and ticks
     * us back. */
    int ticks = 0, others = 0;
    assert_int_equal(drain(fd, 5000, &ticks, &others, true), 0);
    printf("# erl sent %d ticks, %d other packets in 5 s\n", ticks, others);
    assert_true(ticks >= 2);
    assert_true(erl_sees(me, "hidden"));
    /* The check can fail: when we stop ticking, erl declares us down after
     * about net_ticktime and closes the connection. */
    int64_t t0 = edi_hs_io_now_ms();
    int closed = drain(fd, 12000, &ticks, &others, false);
    int64_t silent_ms = edi_hs_io_now_ms() - t0;
    printf("# erl closed the silent connection after %lld ms\n",
           (long long)silent_ms);
    assert_int_equal(closed, -1);
    assert_true(silent_ms >= 2000);
    close(fd);
    assert_true(erl_eventually(me, "hidden", false));
}

/* (1b) Visible connection, per-node cookies on both sides. */
static void test_initiate_visible_per_node_cookie(void **state)
{
    (void)state;
    char me[64], expr[256], res[256];
    our_name(me, sizeof me, "vis");
    snprintf(expr, sizeof expr, "erlang:set_cookie('%s', 'H8PAIRCOOKIE').", me);
    erl_eval(expr, res, sizeof res);
    assert_string_equal(res, "true");
    edi_cookies *t;
    assert_int_equal(edi_cookies_new("H8NOTTHISONE", &t), 0);
    assert_int_equal(edi_cookies_set(t, g.erl_node, "H8PAIRCOOKIE"), 0);
    edi_hs hs;
    int fd;
    assert_int_equal(initiate(me, false, NULL, t, &hs, &fd), 0);
    assert_false(edi_hs_get_result(&hs)->hidden);
    assert_true(erl_eventually(me, "visible", true));
    close(fd);
    assert_true(erl_eventually(me, "visible", false));
    /* With only the (wrong) default, the same peer refuses us. */
    assert_int_equal(edi_cookies_set(t, g.erl_node, NULL), 0);
    assert_int_equal(initiate(me, false, NULL, t, &hs, &fd), EDIST_EAUTH);
    close(fd);
    edi_cookies_free(t);
}

/* (3a) We initiate with the wrong cookie: EAUTH with a clear detail, erl
 * refuses and reports it, and nothing is connected. */
static void test_initiate_wrong_cookie(void **state)
{
    (void)state;
    char me[64];
    our_name(me, sizeof me, "bad");
    edi_hs hs;
    int fd;
    size_t scan = g.erl.out_len;
    int rc = initiate(me, true, "H8WRONGCOOKIE", NULL, &hs, &fd);
    close(fd);
    assert_int_equal(rc, EDIST_EAUTH);
    char want[128];
    snprintf(want, sizeof want, "cookie mismatch with %s", g.erl_node);
    assert_non_null(strstr(edi_hs_error(&hs), want));
    assert_non_null(strstr(edist_last_error(), want));
    assert_false(erl_sees(me, "connected"));
    /* erl's own report of the refusal (printed through its logger). */
    char res[64];
    erl_eval("ok.", res, sizeof res);
    g.erl.out[g.erl.out_len] = '\0';
    assert_non_null(strstr(g.erl.out + scan, "Invalid challenge reply"));
}

/* Listen on loopback and register with epmd under alive. */
struct listener {
    int lfd;
    int epmd_fd;
    uint16_t port;
    uint32_t creation;
};

static void listen_and_register(struct listener *l, const char *node,
                                bool hidden)
{
    l->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(l->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(l->lfd, 4), 0);
    socklen_t sl = sizeof sa;
    getsockname(l->lfd, (struct sockaddr *)&sa, &sl);
    l->port = ntohs(sa.sin_port);
    char alive[64];
    snprintf(alive, sizeof alive, "%s", node);
    *strchr(alive, '@') = '\0';
    l->epmd_fd = epmd_alive2(alive, l->port, hidden, &l->creation);
    assert_true(l->epmd_fd >= 0);
}

static void listener_close(struct listener *l)
{
    close(l->epmd_fd);
    close(l->lfd);
}

static int accept_one(struct listener *l)
{
    struct pollfd pf = {.fd = l->lfd, .events = POLLIN};
    if (poll(&pf, 1, 10000) <= 0)
        return -1;
    return accept4(l->lfd, NULL, NULL, SOCK_CLOEXEC);
}

/* (2) erl initiates (net_kernel:connect_node) to us, visible and hidden:
 * our acceptor completes, erl's connect_node returns true and it lists us
 * (in nodes(hidden) when we are hidden). */
static void accept_from_erl(bool hidden)
{
    char me[64], expr[256], res[256];
    our_name(me, sizeof me, hidden ? "acch" : "accv");
    struct listener l;
    listen_and_register(&l, me, hidden);
    snprintf(expr, sizeof expr, "net_kernel:connect_node('%s').", me);
    assert_int_equal(peers_repl_send(&g.erl, expr), 0);
    int fd = accept_one(&l);
    assert_true(fd >= 0);
    edi_hs hs;
    edi_hs_config cfg = {
        .role = EDI_HS_ACCEPTOR,
        .our_name = me,
        .our_creation = l.creation,
        .hidden = hidden,
        .cookie = COOKIE,
    };
    assert_int_equal(edi_hs_init(&hs, &cfg), 0);
    int rc = edi_hs_io_run(&hs, fd, edi_hs_io_now_ms() + 7000);
    assert_int_equal(rc, 0);
    const edi_hs_result *r = edi_hs_get_result(&hs);
    assert_string_equal(r->peer_name, g.erl_node);
    assert_int_equal(r->role, EDI_HS_ACCEPTOR);
    assert_int_equal(r->hidden, hidden);
    assert_false(r->peer_hidden);
    assert_true((r->flags & EDI_DFLAGS_MANDATORY_25) ==
                EDI_DFLAGS_MANDATORY_25);
    assert_int_equal(peers_repl_result(&g.erl, res, sizeof res, 10000, NULL),
                     0);
    assert_string_equal(res, "true");
    assert_true(erl_sees(me, hidden ? "hidden" : "visible"));
    assert_false(erl_sees(me, hidden ? "visible" : "hidden"));
    close(fd);
    assert_true(erl_eventually(me, "connected", false));
    listener_close(&l);
}

static void test_accept_visible(void **state)
{
    (void)state;
    accept_from_erl(false);
}

static void test_accept_hidden(void **state)
{
    (void)state;
    accept_from_erl(true);
}

/* (3b) erl initiates with the wrong cookie: our acceptor says EAUTH with
 * the node's name, erl's connect_node returns false. */
static void test_accept_wrong_cookie(void **state)
{
    (void)state;
    char me[64], expr[256], res[256];
    our_name(me, sizeof me, "accbad");
    struct listener l;
    listen_and_register(&l, me, false);
    snprintf(expr, sizeof expr,
             "begin erlang:set_cookie('%s', 'H8ERLWRONG'),"
             " net_kernel:connect_node('%s') end.",
             me, me);
    assert_int_equal(peers_repl_send(&g.erl, expr), 0);
    int fd = accept_one(&l);
    assert_true(fd >= 0);
    edi_hs hs;
    edi_hs_config cfg = {
        .role = EDI_HS_ACCEPTOR,
        .our_name = me,
        .our_creation = l.creation,
        .cookie = COOKIE,
    };
    assert_int_equal(edi_hs_init(&hs, &cfg), 0);
    int rc = edi_hs_io_run(&hs, fd, edi_hs_io_now_ms() + 7000);
    close(fd);
    assert_int_equal(rc, EDIST_EAUTH);
    char want[128];
    snprintf(want, sizeof want, "cookie mismatch with %s", g.erl_node);
    assert_non_null(strstr(edi_hs_error(&hs), want));
    assert_int_equal(peers_repl_result(&g.erl, res, sizeof res, 10000, NULL),
                     0);
    assert_string_equal(res, "false");
    assert_false(erl_sees(me, "connected"));
    listener_close(&l);
}

/* (4) A peer that is not a node: erl's distribution port answers our
 * garbage by closing, and our acceptor's deadline holds against a silent
 * erl-side socket (a connect that never speaks). */
static void test_garbage_and_silence(void **state)
{
    (void)state;
    char me[64];
    our_name(me, sizeof me, "junk");
    /* Our acceptor against a silent TCP peer: ETIMEDOUT at the deadline. */
    struct listener l;
    listen_and_register(&l, me, false);
    int c = connect_port(l.port);
    assert_true(c >= 0);
    int fd = accept_one(&l);
    assert_true(fd >= 0);
    edi_hs hs;
    edi_hs_config cfg = {
        .role = EDI_HS_ACCEPTOR, .our_name = me, .cookie = COOKIE};
    assert_int_equal(edi_hs_init(&hs, &cfg), 0);
    int64_t t0 = edi_hs_io_now_ms();
    assert_int_equal(edi_hs_io_run(&hs, fd, t0 + 500), EDIST_ETIMEDOUT);
    assert_true(edi_hs_io_now_ms() - t0 >= 490);
    /* Then the peer sends an old-style 'n' name: EPROTO. */
    static const uint8_t old[] = {0,    12,   'n', 0,   5,   0,   0,
                                  0x7f, 0xfd, 'a', '@', 'b', '.', 'c'};
    assert_int_equal(peers_write_all(c, old, sizeof old), 0);
    assert_int_equal(edi_hs_init(&hs, &cfg), 0);
    assert_int_equal(edi_hs_io_run(&hs, fd, edi_hs_io_now_ms() + 2000),
                     EDIST_EPROTO);
    close(fd);
    close(c);
    listener_close(&l);
    /* erl is still fine. */
    char res[64];
    erl_eval("1 + 1.", res, sizeof res);
    assert_string_equal(res, "2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_initiate_hidden_live),
        cmocka_unit_test(test_initiate_visible_per_node_cookie),
        cmocka_unit_test(test_initiate_wrong_cookie),
        cmocka_unit_test(test_accept_visible),
        cmocka_unit_test(test_accept_hidden),
        cmocka_unit_test(test_accept_wrong_cookie),
        cmocka_unit_test(test_garbage_and_silence),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
