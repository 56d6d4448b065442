/* SPDX-License-Identifier: Apache-2.0 */
/* The node API in-process: several edist nodes in one process, real erl
 * peers, our own epmd on a free port (ERL_EPMD_PORT), HOME in a temp dir.
 * Covers membership (nodes/1 selectors, hidden), nodeup/nodedown
 * subscriptions with reasons, monitor_node, disconnect, per-node cookies,
 * simultaneous connects, transitive connection (edist-edist-erl, and
 * joining a two-node erl cluster), connect_all=false, the message
 * handler, the options module, and the pure tick and table decisions.
 * Every child (epmd, erl; tests/common/peers.h) is ended by pid in
 * teardown and dies with us (PR_SET_PDEATHSIG). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "control/conn_table.h"
#include "control/epmd_client.h"
#include "control/netkernel.h"
#include "control/node_config.h"
#include "edist/node.h"
#include "edist/term.h"
#include "peers.h"
#include "peers_node.h"

#define COOKIE "N2APICOOKIE"
#define TICKTIME_MS 2000u
#define SETUPTIME_MS 3000u

/* The temp HOME, our epmd and this host's short name; the children are
 * ended by pid in group_teardown (tests/common/peers.h). */
static peers_env g;

/* ---- helpers ------------------------------------------------------------- */

/* Start an erl node named `name` (short) whose -eval is extra (may be
 * NULL: it just waits); waits until registered. */
static pid_t start_erl(const char *name, const char *extra)
{
    pid_t pid = peers_erl_start(&g, name, COOKIE, extra, 2);
    assert_true(pid > 0);
    return pid;
}

/* Evaluate expr on an erl node through erl_call; the printed result (with
 * the spaces after commas removed) into out. */
static int erl_eval(const char *node_short, const char *expr, char *out,
                    size_t cap)
{
    return peers_erl_call(g.dir, COOKIE, node_short, expr, out, cap);
}

/* ---- event capture ------------------------------------------------------- */

typedef struct events {
    pthread_mutex_t mu;
    char lines[64][300];
    int count;
} events;

static void on_event(void *user, const edist_node_event *ev)
{
    events *e = user;
    pthread_mutex_lock(&e->mu);
    if (e->count < 64)
        snprintf(e->lines[e->count++], sizeof e->lines[0], "%s %s%s%s",
                 ev->up ? "up" : "down", ev->node, ev->up ? "" : " ",
                 ev->up ? (ev->hidden ? " hidden" : " visible") : ev->reason);
    pthread_mutex_unlock(&e->mu);
}

static bool has_event(events *e, const char *line)
{
    pthread_mutex_lock(&e->mu);
    bool found = false;
    for (int i = 0; i < e->count; i++)
        if (!strcmp(e->lines[i], line))
            found = true;
    pthread_mutex_unlock(&e->mu);
    return found;
}

static int count_events(events *e, const char *prefix)
{
    pthread_mutex_lock(&e->mu);
    int n = 0;
    for (int i = 0; i < e->count; i++)
        if (!strncmp(e->lines[i], prefix, strlen(prefix)))
            n++;
    pthread_mutex_unlock(&e->mu);
    return n;
}

static bool wait_event(events *e, const char *line, int ms)
{
    int64_t end = peers_now_ms() + ms;
    while (peers_now_ms() < end) {
        if (has_event(e, line))
            return true;
        usleep(20 * 1000);
    }
    return false;
}

static void dump_events(events *e)
{
    for (int i = 0; i < e->count; i++)
        print_message("  event: %s\n", e->lines[i]);
}

/* ---- nodes --------------------------------------------------------------- */

static void quiet_log(void *user, edist_log_level level, const char *line)
{
    (void)user;
    if (level <= EDIST_LOG_INFO && getenv("N2_VERBOSE"))
        fprintf(stderr, "    log: %s\n", line);
}

static edist_node *start_node(const char *prefix, bool hidden,
                              const char *cookie, bool connect_all)
{
    edist_node_config cfg;
    edist_node_config_init(&cfg);
    cfg.cookie = cookie ? cookie : COOKIE;
    cfg.hidden = hidden;
    cfg.net_ticktime_ms = TICKTIME_MS;
    cfg.net_setuptime_ms = SETUPTIME_MS;
    cfg.connect_all = connect_all;
    cfg.log = quiet_log;
    return peers_node_start(&cfg, prefix);
}

/* "a,b,c" of a nodes() selection. */
static void nodes_str(edist_node *n, unsigned sel, char *out, size_t cap)
{
    edist_node_list l;
    assert_int_equal(edist_node_nodes(n, sel, &l), 0);
    out[0] = '\0';
    size_t len = 0;
    for (size_t i = 0; i < l.count; i++)
        len += (size_t)snprintf(out + len, len < cap ? cap - len : 0, "%s%s",
                                i ? "," : "", l.names[i]);
    edist_node_list_free(&l);
}

static bool wait_nodes(edist_node *n, unsigned sel, const char *want, int ms)
{
    char got[1024];
    int64_t end = peers_now_ms() + ms;
    do {
        nodes_str(n, sel, got, sizeof got);
        if (!strcmp(got, want))
            return true;
        usleep(50 * 1000);
    } while (peers_now_ms() < end);
    print_message("nodes of %s: got '%s', want '%s'\n", edist_node_name(n), got,
                  want);
    return false;
}

/* "x,y" sorted pair of node names. */
static void pair(char *out, size_t cap, const char *a, const char *b)
{
    if (strcmp(a, b) < 0)
        snprintf(out, cap, "%s,%s", a, b);
    else
        snprintf(out, cap, "%s,%s", b, a);
}

static void short_of(const char *full, char *out, size_t cap)
{
    snprintf(out, cap, "%s", full);
    char *at = strchr(out, '@');
    if (at)
        *at = '\0';
}

/* ---- setup --------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    /* Children are SIGKILLed (also the erl a test kills mid-way). */
    return peers_env_setup(&g, "/tmp/edist-node-api.XXXXXX", 0);
}

static int group_teardown(void **state)
{
    (void)state;
    return peers_env_teardown(&g);
}

/* ---- pure pieces --------------------------------------------------------- */

static void test_tick_check(void **state)
{
    (void)state;
    edi_tick_state st = {0};
    /* Traffic both ways: no tick, no timeout. */
    assert_int_equal(edi_tick_check(&st, 1, 1, true, false, 4),
                     EDI_TICK_NOTHING);
    /* Nothing written, queue empty: tick. */
    assert_int_equal(edi_tick_check(&st, 2, 1, true, false, 4), EDI_TICK_SEND);
    /* Nothing written but the queue is stuck: no tick (dist_util). */
    assert_int_equal(edi_tick_check(&st, 3, 1, false, false, 4),
                     EDI_TICK_NOTHING);
    /* A hidden peer that sent nothing is ticked even if we wrote. */
    assert_int_equal(edi_tick_check(&st, 3, 2, true, true, 4), EDI_TICK_SEND);
    /* Silence: down on the 4th silent interval in a row, not before. */
    edi_tick_state s2 = {0};
    assert_int_equal(edi_tick_check(&s2, 5, 0, true, false, 4), EDI_TICK_SEND);
    assert_int_equal(edi_tick_check(&s2, 5, 0, true, false, 4), EDI_TICK_SEND);
    assert_int_equal(edi_tick_check(&s2, 5, 0, true, false, 4), EDI_TICK_SEND);
    assert_int_equal(edi_tick_check(&s2, 5, 0, true, false, 4), EDI_TICK_SEND);
    assert_int_equal(edi_tick_check(&s2, 5, 0, true, false, 4),
                     EDI_TICK_TIMEOUT);
    /* One frame read resets the count. */
    edi_tick_state s3 = {0};
    for (int i = 0; i < 3; i++)
        assert_int_not_equal(edi_tick_check(&s3, 0, i, true, false, 4),
                             EDI_TICK_TIMEOUT);
    assert_int_not_equal(edi_tick_check(&s3, 1, 3, true, false, 4),
                         EDI_TICK_TIMEOUT);
    for (int i = 0; i < 3; i++)
        assert_int_not_equal(edi_tick_check(&s3, 1, 4 + i, true, false, 4),
                             EDI_TICK_TIMEOUT);
    assert_int_equal(edi_tick_check(&s3, 1, 7, true, false, 4),
                     EDI_TICK_TIMEOUT);
}

static void test_conn_table(void **state)
{
    (void)state;
    edi_conn_table t;
    assert_int_equal(edi_ct_init(&t, 2), 0);
    edi_peer *p, *q, *r;
    assert_int_equal(edi_ct_add(&t, "b@h", &p), 0);
    assert_int_equal(edi_ct_add(&t, "b@h", &q), EDIST_EEXIST);
    assert_int_equal(edi_ct_add(&t, "no-at-sign", &q), EDIST_EINVAL);
    assert_int_equal(edi_ct_add(&t, "c@h", &q), 0);
    assert_int_equal(edi_ct_add(&t, "d@h", &r), EDIST_ENOMEM); /* full */
    assert_ptr_equal(edi_ct_find(&t, "b@h"), p);
    assert_null(edi_ct_find(&t, "x@h"));
    /* net_kernel's accept_pending answers. */
    assert_int_equal(edi_ct_decide_incoming(NULL, "a@h", "b@h"), EDI_HS_GO);
    assert_int_equal(edi_ct_decide_incoming(p, "a@h", "b@h"),
                     EDI_HS_GO); /* no owner */
    p->owner = (edi_link *)p;    /* any link */
    /* Pending with an owner: the greater name keeps its own attempt. */
    assert_int_equal(edi_ct_decide_incoming(p, "a@h", "b@h"),
                     EDI_HS_GO_SIMULTANEOUS);
    assert_int_equal(edi_ct_decide_incoming(p, "c@h", "b@h"),
                     EDI_HS_REFUSE_SIMULTANEOUS);
    assert_true(edi_ct_still_pending(p, (edi_link *)p));
    assert_false(edi_ct_still_pending(p, (edi_link *)q));
    p->state = EDI_PEER_UP;
    assert_int_equal(edi_ct_decide_incoming(p, "a@h", "b@h"),
                     EDI_HS_ALREADY_UP);
    assert_false(edi_ct_still_pending(p, (edi_link *)p));
    p->state = EDI_PEER_UP_PENDING;
    assert_int_equal(edi_ct_decide_incoming(p, "a@h", "b@h"), EDI_HS_BUSY);
    assert_int_equal(edi_ct_add_waiter(q, 7), 0);
    assert_int_equal(edi_ct_add_waiter(q, 8), 0);
    edi_peer_waiter *w = edi_ct_take_waiters(q);
    assert_int_equal(w->id, 7);
    assert_int_equal(w->next->id, 8);
    free(w->next);
    free(w);
    edi_ct_remove(&t, p);
    assert_null(edi_ct_find(&t, "b@h"));
    assert_int_equal(edi_ct_add(&t, "d@h", &r), 0);
    edi_ct_destroy(&t);
}

static void test_options(void **state)
{
    (void)state;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/node.ini", g.dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("; a comment\n[node]\nsname = fromfile\nticktime = 5\n"
          "listen_port = 4444\nidle = busy\n",
          f);
    fclose(f);
    static edi_node_options o;
    edi_node_options_init(&o);
    char *argv[] = {"--ticktime", "3",  "--hidden", "--cookie=abc",
                    "--config",   path, NULL};
    int pos[1], np = 0, print = 0;
    assert_int_equal(
        edi_node_options_parse_args(&o, 6, argv, pos, 0, &np, &print), 0);
    setenv("EDIST_TICKTIME", "9", 1);
    setenv("EDIST_LISTEN_PORT", "5555", 1);
    assert_int_equal(edi_node_options_load_all(&o), 0);
    unsetenv("EDIST_TICKTIME");
    unsetenv("EDIST_LISTEN_PORT");
    assert_int_equal(edi_node_options_to_config(&o, 1), 0);
    assert_string_equal(o.cfg.name, "fromfile");    /* file */
    assert_int_equal(o.cfg.net_ticktime_ms, 3000);  /* flag beats env, file */
    assert_int_equal(o.cfg.listen_port, 5555);      /* env beats file */
    assert_int_equal(o.cfg.idle, EDIST_IDLE_BUSY);  /* file */
    assert_true(o.cfg.hidden);                      /* bare flag */
    assert_string_equal(o.cfg.cookie, "abc");       /* --key=value */
    assert_int_equal(o.cfg.net_setuptime_ms, 7000); /* default */
    assert_true(o.cfg.connect_all);
    char text[4096];
    edi_node_options_format(&o, text, sizeof text);
    assert_non_null(strstr(text, "(flag --ticktime)"));
    assert_non_null(strstr(text, "(env EDIST_LISTEN_PORT)"));
    assert_non_null(strstr(text, ":3)")); /* sname from file line 3 */
    assert_null(strstr(text, "abc"));     /* the cookie is masked */
    assert_non_null(strstr(text, "(default)"));
    /* Errors name the option and where it came from. */
    edi_node_options_init(&o);
    char *bad1[] = {"--ticktime", "soon", NULL};
    assert_int_equal(
        edi_node_options_parse_args(&o, 2, bad1, pos, 0, &np, NULL),
        EDIST_EINVAL);
    assert_non_null(strstr(edist_last_error(), "ticktime"));
    char *bad2[] = {"--no-such-option", NULL};
    assert_int_equal(
        edi_node_options_parse_args(&o, 1, bad2, pos, 0, &np, NULL),
        EDIST_EINVAL);
    /* erl's spellings: one dash, underscores, -setcookie */
    edi_node_options_init(&o);
    char *erlish[] = {"-sname", "x", "-setcookie", "c00kie", "-connect_all", "false",
                      "-hidden", "-listen_port", "4000", NULL};
    assert_int_equal(edi_node_options_parse_args(&o, 9, erlish, pos, 0, &np, NULL), 0);
    assert_int_equal(edi_node_options_to_config(&o, 1), 0);
    assert_string_equal(o.cfg.name, "x");
    assert_string_equal(o.cfg.cookie, "c00kie");
    assert_false(o.cfg.connect_all);
    assert_true(o.cfg.hidden);
    assert_int_equal(o.cfg.listen_port, 4000);
    f = fopen(path, "w");
    fputs("[node]\nsname = x\nbogus = 1\n", f);
    fclose(f);
    edi_node_options_init(&o);
    assert_int_equal(edi_node_options_load_file(&o, path), EDIST_EINVAL);
    assert_non_null(strstr(edist_last_error(), ":3: unknown key 'bogus'"));
    edi_node_options_init(&o);
    assert_int_equal(edi_node_options_load_file(&o, "/nonexistent/x.ini"),
                     EDIST_EIO);
    /* Both names: refused. */
    edi_node_options_init(&o);
    char *both[] = {"--sname", "a", "--name", "b@127.0.0.1", NULL};
    assert_int_equal(
        edi_node_options_parse_args(&o, 4, both, pos, 0, &np, NULL), 0);
    assert_int_equal(edi_node_options_to_config(&o, 1), EDIST_EINVAL);
    edi_node_options_init(&o);
    assert_int_equal(edi_node_options_to_config(&o, 1),
                     EDIST_EINVAL); /* no name */
}

/* ---- start-up errors ----------------------------------------------------- */

static void test_start_errors(void **state)
{
    (void)state;
    edist_node_config cfg;
    edist_node_config_init(&cfg);
    cfg.cookie = COOKIE;
    cfg.start_epmd = false;
    cfg.listen_address = "127.0.0.1";
    edist_node *n = NULL;
    cfg.name = "bad name";
    assert_int_equal(edist_node_start(&cfg, &n), EDIST_EINVAL);
    cfg.name = "short@dotted.host";
    assert_int_equal(edist_node_start(&cfg, &n), EDIST_EINVAL);
    assert_non_null(strstr(edist_last_error(), "--name"));
    cfg.name = "";
    assert_int_equal(edist_node_start(&cfg, &n), EDIST_EINVAL);
    assert_null(n);
    /* A fragment the DPDK lane could not buffer whole: its peers went down
     * once their data moved there. Refused before any port opens. */
    cfg.name = "n2frag";
    cfg.transport = EDIST_TRANSPORT_DPDK;
    cfg.dpdk_port = "net_null0";
    cfg.dpdk_send_buffer_bytes = 256u << 10;
    cfg.fragment_bytes = 1u << 20;
    assert_int_equal(edist_node_start(&cfg, &n), EDIST_EINVAL);
    assert_non_null(strstr(edist_last_error(),
                           "dpdk_send_buffer_bytes (262144) must be at least fragment_bytes "
                           "(1048576) plus 64K"));
    assert_null(n);
    cfg.transport = EDIST_TRANSPORT_TCP;
    cfg.dpdk_port = NULL;
    cfg.dpdk_send_buffer_bytes = 0;
    cfg.fragment_bytes = 0;
    /* A name in use: refused by the port mapper. */
    edist_node *a = start_node("n2dup", false, NULL, true);
    char shortname[64];
    short_of(edist_node_name(a), shortname, sizeof shortname);
    cfg.name = shortname;
    assert_int_equal(edist_node_start(&cfg, &n), EDIST_EEXIST);
    assert_non_null(strstr(edist_last_error(), "in use"));
    /* A name is full with the host. */
    char want[300];
    snprintf(want, sizeof want, "%s@%s", shortname, g.host);
    assert_string_equal(edist_node_name(a), want);
    assert_true(edist_node_is_alive(a));
    edist_node_stop(a);
    assert_false(peers_epmd_port_please(g.epmd_port, shortname) > 0);
}

/* ---- two nodes ----------------------------------------------------------- */

static void test_two_nodes(void **state)
{
    (void)state;
    events ea = {.mu = PTHREAD_MUTEX_INITIALIZER},
           eb = {.mu = PTHREAD_MUTEX_INITIALIZER};
    edist_node *a = start_node("n2a", false, NULL, true);
    edist_node *b = start_node("n2b", false, NULL, true);
    char an[300], bn[300]; /* copies: used after the nodes stop */
    snprintf(an, sizeof an, "%s", edist_node_name(a));
    snprintf(bn, sizeof bn, "%s", edist_node_name(b));
    assert_int_equal(edist_node_monitor_nodes(a, 0, on_event, &ea, NULL), 0);
    assert_int_equal(
        edist_node_monitor_nodes(b, EDIST_NODES_VISIBLE | EDIST_NODES_HIDDEN,
                                 on_event, &eb, NULL),
        0);
    char want[600];
    nodes_str(a, EDIST_NODES_VISIBLE, want, sizeof want);
    assert_string_equal(want, "");
    nodes_str(a, EDIST_NODES_THIS, want, sizeof want);
    assert_string_equal(want, an);
    assert_int_equal(edist_node_connect(a, bn, 5000), 0);
    assert_int_equal(edist_node_ping(a, bn, 5000), 0);
    assert_int_equal(edist_node_ping(b, an, 5000), 0);
    assert_int_equal(edist_node_ping(a, an, 5000), 0); /* ourselves: pong */
    nodes_str(a, EDIST_NODES_VISIBLE, want, sizeof want);
    assert_string_equal(want, bn);
    nodes_str(a, EDIST_NODES_HIDDEN, want, sizeof want);
    assert_string_equal(want, "");
    nodes_str(a, EDIST_NODES_CONNECTED, want, sizeof want);
    assert_string_equal(want, bn);
    char both[600];
    pair(both, sizeof both, an, bn);
    nodes_str(a, EDIST_NODES_THIS | EDIST_NODES_VISIBLE, want, sizeof want);
    assert_string_equal(want, both);
    char line[400];
    snprintf(line, sizeof line, "up %s visible", bn);
    assert_true(wait_event(&ea, line, 2000));
    snprintf(line, sizeof line, "up %s visible", an);
    assert_true(wait_event(&eb, line, 2000));
    /* Idle for two tick times: ticks keep the connection up. */
    usleep(2 * TICKTIME_MS * 1000);
    assert_int_equal(count_events(&ea, "down"), 0);
    edist_node_stats st;
    assert_int_equal(edist_node_get_stats(a, &st), 0);
    assert_true(st.ticks_sent >= 3);
    assert_true(st.ticks_received >= 3);
    assert_int_equal(st.connections_up, 1);
    /* disconnect: reason `disconnect` here, connection_closed there. */
    assert_int_equal(edist_node_disconnect(a, bn), 0);
    snprintf(line, sizeof line, "down %s disconnect", bn);
    assert_true(wait_event(&ea, line, 2000));
    snprintf(line, sizeof line, "down %s connection_closed", an);
    assert_true(wait_event(&eb, line, 2000));
    assert_int_equal(edist_node_disconnect(a, bn), EDIST_ENOTFOUND);
    assert_true(wait_nodes(b, EDIST_NODES_CONNECTED, "", 2000));
    /* Pinging reconnects. */
    assert_int_equal(edist_node_ping(b, an, 5000), 0);
    assert_true(wait_nodes(a, EDIST_NODES_VISIBLE, bn, 2000));
    /* Stopping a node: the other sees it go. */
    edist_node_stop(b);
    snprintf(line, sizeof line, "down %s connection_closed", bn);
    assert_true(wait_event(&ea, line, 3000));
    assert_true(wait_nodes(a, EDIST_NODES_CONNECTED, "", 2000));
    /* Errors. */
    assert_int_equal(edist_node_connect(a, an, 1000), EDIST_EINVAL);
    assert_int_equal(edist_node_connect(a, "not a node", 1000), EDIST_EINVAL);
    char nobody[300];
    snprintf(nobody, sizeof nobody, "nobody%d@%s", (int)getpid(), g.host);
    assert_int_equal(edist_node_ping(a, nobody, 3000), EDIST_ENOTFOUND);
    assert_int_equal(edist_node_connect(a, "x@no-such-host.invalid", 3000),
                     EDIST_EIO);
    edist_node_stop(a);
}

static void test_hidden(void **state)
{
    (void)state;
    events ea = {.mu = PTHREAD_MUTEX_INITIALIZER};
    edist_node *a = start_node("n2v", false, NULL, true);
    edist_node *h = start_node("n2h", true, NULL, true);
    assert_true(edist_node_is_hidden(h));
    /* Default subscription: visible only, as monitor_nodes(true). */
    assert_int_equal(edist_node_monitor_nodes(a, 0, on_event, &ea, NULL), 0);
    assert_int_equal(edist_node_connect(h, edist_node_name(a), 5000), 0);
    char s[600];
    nodes_str(a, EDIST_NODES_VISIBLE, s, sizeof s);
    assert_string_equal(s, "");
    nodes_str(a, EDIST_NODES_HIDDEN, s, sizeof s);
    assert_string_equal(s, edist_node_name(h));
    nodes_str(h, EDIST_NODES_HIDDEN, s, sizeof s);
    assert_string_equal(s, edist_node_name(a));
    usleep(200 * 1000);
    assert_int_equal(count_events(&ea, "up"), 0); /* hidden: not reported */
    edist_node_stop(h);
    edist_node_stop(a);
}

static void test_monitor_node(void **state)
{
    (void)state;
    events e = {.mu = PTHREAD_MUTEX_INITIALIZER};
    edist_node *a = start_node("n2m", false, NULL, true);
    edist_node *b = start_node("n2n", false, NULL, true);
    char nobody[300], line[400];
    snprintf(nobody, sizeof nobody, "nobody%d@%s", (int)getpid(), g.host);
    uint64_t h1, h2, h3;
    /* Not connected and cannot connect: nodedown at once. */
    assert_int_equal(edist_node_monitor_node(a, nobody, on_event, &e, &h1), 0);
    snprintf(line, sizeof line, "down %s connection_setup_failed", nobody);
    assert_true(wait_event(&e, line, 3000));
    assert_int_equal(edist_node_demonitor(a, h1), EDIST_ENOTFOUND); /* fired */
    /* Not connected: monitor_node connects. */
    assert_int_equal(
        edist_node_monitor_node(a, edist_node_name(b), on_event, &e, &h2), 0);
    assert_true(wait_nodes(a, EDIST_NODES_VISIBLE, edist_node_name(b), 3000));
    assert_int_equal(
        edist_node_monitor_node(a, edist_node_name(b), on_event, &e, &h3), 0);
    assert_int_equal(edist_node_demonitor(a, h3), 0);
    assert_int_equal(edist_node_disconnect(a, edist_node_name(b)), 0);
    snprintf(line, sizeof line, "down %s disconnect", edist_node_name(b));
    assert_true(wait_event(&e, line, 3000));
    usleep(100 * 1000);
    assert_int_equal(count_events(&e, line), 1); /* h2 once, h3 cancelled */
    assert_int_equal(edist_node_demonitor(a, h2), EDIST_ENOTFOUND);
    edist_node_stop(b);
    edist_node_stop(a);
}

/* A nodedown callback that watches its node again, as many do: during
 * the stop it is told the node is stopping. It used to be taken: each
 * watch started a connection that the stop then failed, with another
 * nodedown, until the stop's grace ran out. */
typedef struct rewatch {
    edist_node *node;
    char peer[300];
    atomic_int downs, rc;
} rewatch;

static void rewatch_event(void *user, const edist_node_event *ev)
{
    rewatch *r = user;
    if (ev->up || atomic_fetch_add(&r->downs, 1) > 10)
        return;
    atomic_store(&r->rc, edist_node_monitor_node(r->node, r->peer, rewatch_event, r, NULL));
}

static void test_monitor_node_stopping(void **state)
{
    (void)state;
    edist_node *a = start_node("n2rw", false, NULL, true);
    edist_node *b = start_node("n2rx", false, NULL, true);
    rewatch r = {.node = a};
    atomic_init(&r.downs, 0);
    atomic_init(&r.rc, 1);
    snprintf(r.peer, sizeof r.peer, "%s", edist_node_name(b));
    assert_int_equal(edist_node_monitor_node(a, r.peer, rewatch_event, &r, NULL), 0);
    assert_true(wait_nodes(a, EDIST_NODES_VISIBLE, edist_node_name(b), 3000));
    edist_node_stop(a);
    print_message("watched again while stopping: %d nodedown(s), monitor_node said %d\n",
                  atomic_load(&r.downs), atomic_load(&r.rc));
    assert_int_equal(atomic_load(&r.downs), 1);
    assert_int_equal(atomic_load(&r.rc), EDIST_ECLOSED);
    edist_node_stop(b);
}

/* A nodeup callback that takes the connection down at once (a policy that
 * refuses a node): the connect that brought it up hears ECLOSED then. It
 * used to wait for its timeout: its waiter was freed unanswered. */
typedef struct refuser {
    edist_node *node;
    atomic_int ups;
} refuser;

static void refuse_up(void *user, const edist_node_event *ev)
{
    refuser *r = user;
    if (ev->up) {
        atomic_fetch_add(&r->ups, 1);
        edist_node_disconnect(r->node, ev->node);
    }
}

static void test_nodeup_callback_disconnects(void **state)
{
    (void)state;
    edist_node *a = start_node("n2ru", false, NULL, false);
    edist_node *b = start_node("n2rv", false, NULL, false);
    refuser r = {.node = a};
    atomic_init(&r.ups, 0);
    assert_int_equal(edist_node_monitor_nodes(a, 0, refuse_up, &r, NULL), 0);
    uint64_t t0 = peers_now_ms();
    int rc = edist_node_connect(a, edist_node_name(b), 10000);
    uint64_t took = peers_now_ms() - t0;
    print_message("connect whose nodeup callback disconnects: %d after %llu ms\n", rc,
                  (unsigned long long)took);
    assert_int_equal(atomic_load(&r.ups), 1);
    assert_int_equal(rc, EDIST_ECLOSED);
    assert_true(took < 2000);
    edist_node_stop(a);
    edist_node_stop(b);
}

static void test_cookies(void **state)
{
    (void)state;
    edist_node *a = start_node("n2c", false, "COOKIE_A", true);
    edist_node *b = start_node("n2d", false, "COOKIE_B", true);
    const char *bn = edist_node_name(b);
    assert_int_equal(edist_node_connect(a, bn, 3000), EDIST_EAUTH);
    assert_non_null(strstr(edist_last_error(), "cookie mismatch"));
    assert_int_equal(edist_node_ping(b, edist_node_name(a), 3000), EDIST_EAUTH);
    /* erlang:set_cookie(B, 'COOKIE_B') on a: only connections to b change. */
    assert_int_equal(edist_node_set_cookie(a, bn, "COOKIE_B"), 0);
    assert_int_equal(edist_node_ping(a, bn, 3000), 0);
    assert_int_equal(edist_node_disconnect(a, bn), 0);
    assert_true(wait_nodes(b, EDIST_NODES_CONNECTED, "", 2000));
    /* and it stays down: nothing on a (pg's discover to the new peer,
     * say) sets it up again by itself */
    usleep(500 * 1000);
    assert_true(wait_nodes(a, EDIST_NODES_CONNECTED, "", 10));
    assert_int_equal(edist_node_ping(b, edist_node_name(a), 3000),
                     0); /* b -> a too */
    assert_int_equal(edist_node_set_cookie(a, NULL, ""), EDIST_EINVAL);
    assert_int_equal(edist_node_set_cookie(a, NULL, "NEW_DEFAULT"), 0);
    edist_node_stop(b);
    edist_node_stop(a);
}

/* Both sides connect at the same moment: one connection survives, both
 * callers succeed (net_kernel's simultaneous connect resolution). */
typedef struct connect_job {
    edist_node *from;
    const char *to;
    int rc;
} connect_job;

static void *connect_thread(void *arg)
{
    connect_job *j = arg;
    j->rc = edist_node_connect(j->from, j->to, 5000);
    return NULL;
}

static void test_simultaneous(void **state)
{
    (void)state;
    for (int round = 0; round < 5; round++) {
        events ea = {.mu = PTHREAD_MUTEX_INITIALIZER},
               eb = {.mu = PTHREAD_MUTEX_INITIALIZER};
        edist_node *a = start_node("n2s", false, NULL, true);
        edist_node *b = start_node("n2t", false, NULL, true);
        edist_node_monitor_nodes(a, 0, on_event, &ea, NULL);
        edist_node_monitor_nodes(b, 0, on_event, &eb, NULL);
        connect_job ja = {a, edist_node_name(b), 1},
                    jb = {b, edist_node_name(a), 1};
        pthread_t ta, tb;
        pthread_create(&ta, NULL, connect_thread, &ja);
        pthread_create(&tb, NULL, connect_thread, &jb);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        if (ja.rc || jb.rc)
            print_message("round %d: %d %d %s\n", round, ja.rc, jb.rc,
                          edist_last_error());
        assert_int_equal(ja.rc, 0);
        assert_int_equal(jb.rc, 0);
        assert_true(
            wait_nodes(a, EDIST_NODES_VISIBLE, edist_node_name(b), 2000));
        assert_true(
            wait_nodes(b, EDIST_NODES_VISIBLE, edist_node_name(a), 2000));
        assert_int_equal(edist_node_ping(a, edist_node_name(b), 3000), 0);
        usleep(100 * 1000);
        if (count_events(&ea, "down") || count_events(&eb, "down")) {
            dump_events(&ea);
            dump_events(&eb);
        }
        assert_int_equal(count_events(&ea, "up"), 1);
        assert_int_equal(count_events(&ea, "down"), 0);
        assert_int_equal(count_events(&eb, "down"), 0);
        edist_node_stop(a);
        edist_node_stop(b);
    }
}

/* A node we believe connected connects to us again (it restarted, or lost
 * the connection without us noticing): net_kernel's "alive" status and
 * wait_pending: the old connection goes (nodedown), the new one comes up. */
static void test_replaced_connection(void **state)
{
    (void)state;
    events ea = {.mu = PTHREAD_MUTEX_INITIALIZER},
           eb = {.mu = PTHREAD_MUTEX_INITIALIZER};
    edist_node *a = start_node("n2ra", false, NULL, true);
    edist_node *b = start_node("n2rb", false, NULL, true);
    char bn[300], bshort[300], line[400];
    snprintf(bn, sizeof bn, "%s", edist_node_name(b));
    short_of(bn, bshort, sizeof bshort);
    assert_int_equal(edist_node_monitor_nodes(a, 0, on_event, &ea, NULL), 0);
    assert_int_equal(edist_node_monitor_nodes(b, 0, on_event, &eb, NULL), 0);
    assert_int_equal(edist_node_connect(a, bn, 5000), 0);
    /* Same name, unpublished (the port mapper holds b's registration). */
    edist_node_config cfg;
    edist_node_config_init(&cfg);
    cfg.name = bshort;
    cfg.cookie = COOKIE;
    cfg.listen_address = "127.0.0.1";
    cfg.publish = false;
    cfg.start_epmd = false;
    cfg.connect_all = false;
    cfg.net_ticktime_ms = TICKTIME_MS;
    cfg.log = quiet_log;
    edist_node *b2 = NULL;
    assert_int_equal(edist_node_start(&cfg, &b2), 0);
    assert_string_equal(edist_node_name(b2), bn);
    assert_int_equal(edist_node_connect(b2, edist_node_name(a), 5000), 0);
    snprintf(line, sizeof line, "down %s connection_closed", bn);
    assert_true(wait_event(&ea, line, 3000));
    snprintf(line, sizeof line, "down %s connection_closed",
             edist_node_name(a));
    assert_true(wait_event(&eb, line, 3000));
    int64_t end = peers_now_ms() + 3000;
    while (count_events(&ea, "up") < 2 && peers_now_ms() < end)
        usleep(20 * 1000);
    assert_int_equal(count_events(&ea, "up"), 2);
    assert_true(wait_nodes(a, EDIST_NODES_VISIBLE, bn, 2000));
    assert_true(wait_nodes(b, EDIST_NODES_CONNECTED, "", 2000));
    assert_true(wait_nodes(b2, EDIST_NODES_VISIBLE, edist_node_name(a), 2000));
    assert_int_equal(edist_node_ping(a, bn, 3000), 0); /* answered by b2 */
    edist_node_stop(b2);
    edist_node_stop(b);
    edist_node_stop(a);
}

/* Blocking calls from a callback are refused instead of deadlocking. */
typedef struct cb_probe {
    edist_node *node;
    const char *peer;
    int ping_rc;
    int nodes_rc;
    size_t nodes_count;
    int done;
} cb_probe;

static void probe_event(void *user, const edist_node_event *ev)
{
    cb_probe *p = user;
    if (!ev->up || p->done)
        return;
    p->ping_rc = edist_node_ping(p->node, p->peer, 1000);
    edist_node_list l;
    p->nodes_rc = edist_node_nodes(p->node, EDIST_NODES_VISIBLE, &l);
    p->nodes_count = l.count;
    edist_node_list_free(&l);
    p->done = 1;
}

static void test_callback_rules(void **state)
{
    (void)state;
    edist_node *a = start_node("n2p", false, NULL, true);
    edist_node *b = start_node("n2q", false, NULL, true);
    cb_probe p = {.node = a, .peer = edist_node_name(b), .ping_rc = 1};
    assert_int_equal(edist_node_monitor_nodes(a, 0, probe_event, &p, NULL), 0);
    assert_int_equal(edist_node_connect(a, edist_node_name(b), 3000), 0);
    int64_t end = peers_now_ms() + 2000;
    while (!p.done && peers_now_ms() < end)
        usleep(10 * 1000);
    assert_true(p.done);
    assert_int_equal(p.ping_rc, EDIST_EINVAL);
    assert_int_equal(p.nodes_rc, 0); /* callback-safe */
    assert_int_equal(p.nodes_count, 1);
    edist_node_stop(b);
    edist_node_stop(a);
}

/* ---- with erl ------------------------------------------------------------ */

/* edist A, edist B, erl C: B is connected to C; A connects to B and ends
 * up connected to C too (transitive connection). */
static void test_transitive(void **state)
{
    (void)state;
    char cname[64], cfull[300], out[2048], want[1024];
    peers_unique_name(cname, sizeof cname, "n2erlc");
    pid_t c = start_erl(cname, NULL);
    snprintf(cfull, sizeof cfull, "%s@%s", cname, g.host);
    edist_node *b = start_node("n2trb", false, NULL, true);
    edist_node *a = start_node("n2tra", false, NULL, true);
    assert_int_equal(edist_node_connect(b, cfull, 5000), 0);
    assert_int_equal(edist_node_connect(a, edist_node_name(b), 5000), 0);
    /* A learns C from B and connects. */
    char ab[600];
    pair(ab, sizeof ab, edist_node_name(b), cfull);
    assert_true(wait_nodes(a, EDIST_NODES_VISIBLE, ab, 5000));
    /* erl sees both edist nodes as ordinary visible nodes. */
    char expr[256];
    snprintf(expr, sizeof expr, "lists:sort(nodes()).");
    int64_t end = peers_now_ms() + 5000;
    pair(want, sizeof want, edist_node_name(a), edist_node_name(b));
    char wanted[1100];
    snprintf(wanted, sizeof wanted, "{ok,[%s]}", want);
    do {
        erl_eval(cname, expr, out, sizeof out);
        if (!strcmp(out, wanted))
            break;
        usleep(100 * 1000);
    } while (peers_now_ms() < end);
    assert_string_equal(out, wanted);
    /* rpc from erl into the node's small table. */
    snprintf(expr, sizeof expr, "rpc:call('%s', erlang, node, []).",
             edist_node_name(a));
    erl_eval(cname, expr, out, sizeof out);
    snprintf(wanted, sizeof wanted, "{ok,%s}", edist_node_name(a));
    assert_string_equal(out, wanted);
    snprintf(expr, sizeof expr, "rpc:call('%s', nomod, nofun, [foo]).",
             edist_node_name(a));
    erl_eval(cname, expr, out, sizeof out);
    assert_string_equal(
        out, "{ok,{badrpc,{'EXIT',{undef,[{nomod,nofun,[foo],[]}]}}}}");
    /* Killing C: both edist nodes see it go. */
    peers_end(c, 0); /* SIGKILL: erl goes without a word */
    assert_true(wait_nodes(a, EDIST_NODES_VISIBLE, edist_node_name(b), 5000));
    assert_true(wait_nodes(b, EDIST_NODES_VISIBLE, edist_node_name(a), 5000));
    edist_node_stop(a);
    edist_node_stop(b);
}

/* Connecting an edist node to one node of a two-node erl cluster joins the
 * whole cluster; with connect_all=false it does not. */
static void test_join_erl_cluster(void **state)
{
    (void)state;
    char c1[64], c2[64], c1f[300], c2f[300], eval[400];
    peers_unique_name(c1, sizeof c1, "n2erl1_");
    peers_unique_name(c2, sizeof c2, "n2erl2_");
    snprintf(c1f, sizeof c1f, "%s@%s", c1, g.host);
    snprintf(c2f, sizeof c2f, "%s@%s", c2, g.host);
    start_erl(c1, NULL);
    snprintf(eval, sizeof eval, "pong = net_adm:ping('%s'),", c1f);
    start_erl(c2, eval);
    char out[1024], want[700];
    int64_t end = peers_now_ms() + 5000;
    snprintf(want, sizeof want, "{ok,[%s]}", c1f);
    do {
        erl_eval(c2, "nodes().", out, sizeof out);
    } while (strcmp(out, want) && peers_now_ms() < end &&
             usleep(100 * 1000) == 0);
    assert_string_equal(out, want);

    edist_node *lone = start_node("n2lone", false, NULL, false);
    assert_int_equal(edist_node_connect(lone, c1f, 5000), 0);
    usleep(1000 * 1000);
    char s[700];
    nodes_str(lone, EDIST_NODES_VISIBLE, s, sizeof s);
    assert_string_equal(s, c1f); /* connect_all=false: only what it asked for */
    edist_node_stop(lone);

    edist_node *a = start_node("n2join", false, NULL, true);
    assert_int_equal(edist_node_connect(a, c1f, 5000), 0);
    pair(want, sizeof want, c1f, c2f);
    assert_true(wait_nodes(a, EDIST_NODES_VISIBLE, want, 5000));
    edist_node_stop(a);
}

/* Messages the node does not handle reach the handler; without one they
 * are counted and dropped. */
typedef struct got_msg {
    pthread_mutex_t mu;
    int op;
    char text[256];
    size_t payload_len;
    int count;
} got_msg;

/* The test's own messages ({hello, ...} and {big, ...}); with a handler
 * set, the node's services see nothing, and what erl's global sends them
 * comes here too: not counted. */
static void on_message(void *user, const edist_node_message *m)
{
    got_msg *g_ = user;
    edist_buf b;
    edist_buf_init(&b);
    bool ours = m->payload && edist_term_print(m->payload, m->payload_len, &b, NULL) == 0 &&
                (!strncmp((const char *)b.data, "{hello,", 7) ||
                 !strncmp((const char *)b.data, "{big,", 5));
    if (!ours) {
        edist_buf_free(&b);
        return;
    }
    pthread_mutex_lock(&g_->mu);
    g_->op = m->op;
    g_->payload_len = m->payload_len;
    snprintf(g_->text, sizeof g_->text, "%.*s", (int)b.len, (const char *)b.data);
    edist_buf_free(&b);
    g_->count++;
    pthread_mutex_unlock(&g_->mu);
}

static void test_messages(void **state)
{
    (void)state;
    char cname[64], out[1024], expr[512];
    peers_unique_name(cname, sizeof cname, "n2erlm");
    start_erl(cname, NULL);
    edist_node *a = start_node("n2msg", false, NULL, true);
    got_msg got = {.mu = PTHREAD_MUTEX_INITIALIZER};
    /* Without a handler: dropped, counted. */
    snprintf(expr, sizeof expr, "{someone, '%s'} ! {hello, 1}, ok.",
             edist_node_name(a));
    erl_eval(cname, expr, out, sizeof out);
    assert_string_equal(out, "{ok,ok}");
    edist_node_stats st = {0};
    int64_t end = peers_now_ms() + 3000;
    do {
        edist_node_get_stats(a, &st);
    } while (st.messages_dropped == 0 && peers_now_ms() < end &&
             usleep(20000) == 0);
    assert_true(st.messages_dropped >= 1);
    assert_int_equal(edist_node_set_message_handler(a, on_message, &got), 0);
    snprintf(expr, sizeof expr, "{someone, '%s'} ! {hello, 2, <<\"x\">>}, ok.",
             edist_node_name(a));
    erl_eval(cname, expr, out, sizeof out);
    end = peers_now_ms() + 3000;
    for (;;) {
        pthread_mutex_lock(&got.mu);
        bool done = strstr(got.text, "{hello,2,") != NULL;
        pthread_mutex_unlock(&got.mu);
        if (done || peers_now_ms() > end)
            break;
        usleep(20 * 1000);
    }
    assert_int_equal(got.op, 6);                        /* REG_SEND */
    assert_string_equal(got.text, "{hello,2,<<120>>}"); /* ~w */
    /* A message larger than erts' fragment size arrives in fragments
     * (we negotiate DFLAG_FRAGMENTS) and is delivered whole. */
    pthread_mutex_lock(&got.mu);
    int before = got.count;
    pthread_mutex_unlock(&got.mu);
    snprintf(expr, sizeof expr,
             "{someone, '%s'} ! {big, binary:copy(<<\"y\">>, 300000)}, ok.",
             edist_node_name(a));
    erl_eval(cname, expr, out, sizeof out);
    assert_string_equal(out, "{ok,ok}");
    end = peers_now_ms() + 3000;
    for (;;) {
        pthread_mutex_lock(&got.mu);
        bool done = got.count > before;
        pthread_mutex_unlock(&got.mu);
        if (done || peers_now_ms() > end)
            break;
        usleep(20 * 1000);
    }
    pthread_mutex_lock(&got.mu);
    assert_int_equal(got.count, before + 1);
    assert_true(got.payload_len > 300000);
    pthread_mutex_unlock(&got.mu);
    /* And we can send to a registered process on erl. */
    snprintf(
        expr, sizeof expr,
        "register(n2sink, spawn(fun() -> receive M -> "
        "ets:new(n2got, [named_table, public]), ets:insert(n2got, {m, M}), "
        "receive after infinity -> ok end end end)), ok.");
    erl_eval(cname, expr, out, sizeof out);
    assert_string_equal(out, "{ok,ok}");
    char cfull[300];
    snprintf(cfull, sizeof cfull, "%s@%s", cname, g.host);
    edist_buf b;
    edist_buf_init(&b);
    assert_int_equal(edist_term_parse("{from_edist, 42}", 16, &b, NULL, NULL),
                     0);
    assert_int_equal(edist_node_send_reg(a, cfull, "n2sink", b.data, b.len), 0);
    edist_buf_free(&b);
    end = peers_now_ms() + 3000;
    do {
        erl_eval(cname, "ets:lookup(n2got, m).", out, sizeof out);
    } while (strcmp(out, "{ok,[{m,{from_edist,42}}]}") &&
             peers_now_ms() < end && usleep(50000) == 0);
    assert_string_equal(out, "{ok,[{m,{from_edist,42}}]}");
    assert_int_equal(edist_node_set_message_handler(a, NULL, NULL), 0);
    edist_node_stop(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tick_check),
        cmocka_unit_test(test_conn_table),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_two_nodes),
        cmocka_unit_test(test_hidden),
        cmocka_unit_test(test_monitor_node),
        cmocka_unit_test(test_monitor_node_stopping),
        cmocka_unit_test(test_nodeup_callback_disconnects),
        cmocka_unit_test(test_cookies),
        cmocka_unit_test(test_simultaneous),
        cmocka_unit_test(test_replaced_connection),
        cmocka_unit_test(test_callback_rules),
        cmocka_unit_test(test_transitive),
        cmocka_unit_test(test_join_erl_cluster),
        cmocka_unit_test(test_messages),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
