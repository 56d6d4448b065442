/* SPDX-License-Identifier: Apache-2.0 */
/* After (and around) the handshake (n4):
 * - bad bytes from a peer that completed the real handshake: a bad
 *   distribution header, an unknown op, a truncated control term, wrong
 *   field types, an oversized fragment sequence, a fragment of an unknown
 *   sequence, a malformed message for a receiver: each closes that
 *   connection (as erts does) with one log line, while a malformed message
 *   nobody receives is dropped unread (as erts does) and the connection
 *   stays; the node keeps answering an erl node's pings throughout, and
 *   memory stays bounded;
 * - disconnect of a connection still being set up aborts it (ours, stuck
 *   in the handshake; and a peer's, stuck after its send_name);
 * - net_adm:ping semantics: when the is_auth call fails after a successful
 *   connect (answer `no`, or no answer in time), pang, and the connection
 *   is disconnected.
 * Our own epmd on a free port, HOME in a temp dir; children ended by pid. */
#include <inttypes.h>

#include "control/dist_build.h"
#include "runtime/runtime_internal.h"
#include "n4_util.h"

static char erl_short[64], erl_full[128];

static int64_t rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int64_t kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %" SCNd64 " kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* The erl node pings ours: pong. */
static void erl_pings(edist_node *a)
{
    char expr[256], out[256];
    snprintf(expr, sizeof expr, "net_adm:ping('%s').", edist_node_name(a));
    erl_eval(erl_short, expr, out, sizeof out);
    assert_string_equal(out, "{ok,pong}");
}

/* ---- frames -------------------------------------------------------------- */

/* Header form: 131, 68, 0, then control and message (no 131s). */
static void frame_begin(edist_buf *b)
{
    edist_buf_reset(b);
    uint8_t h[3] = {131, 68, 0};
    edist_buf_append(b, h, 3);
}

/* A pid of the raw peer (its handshake's creation, 77). */
static edist_pid raw_pid(const rawpeer *rp, uint32_t id)
{
    return (edist_pid){.node = {.ptr = rp->name, .len = (uint32_t)strlen(rp->name)},
                       .id = id,
                       .creation = 77};
}

static void enc_raw_pid(edist_buf *b, const rawpeer *rp)
{
    edist_pid p = raw_pid(rp, 42);
    edist_enc_pid(b, &p);
}

/* {6, From, '', Name} */
static void enc_reg_send_ctl(edist_buf *b, const rawpeer *rp, const char *name,
                             bool from_is_atom)
{
    edist_enc_tuple(b, 4);
    edist_enc_int(b, 6);
    if (from_is_atom)
        edist_enc_atomz(b, "not_a_pid");
    else
        enc_raw_pid(b, rp);
    edist_enc_atomz(b, "");
    edist_enc_atomz(b, name);
}

/* ---- bad input after the handshake --------------------------------------- */

typedef struct bad_case {
    const char *what;
    const char *log_part; /* what the one log line must say */
} bad_case;

/* Connect a raw peer, send bad (built by fn), and check: closed at once,
 * exactly one warning line naming the peer, the node still answers. */
static void expect_closed(edist_node *a, n4_log *log, const char *what,
                          const char *log_part,
                          void (*fn)(rawpeer *rp, edist_buf *b))
{
    rawpeer rp;
    raw_connect(&rp, a, "n4bad", 0);
    edist_buf b;
    edist_buf_init(&b);
    int64_t t0 = peers_now_ms();
    fn(&rp, &b);
    bool closed = raw_wait_closed(&rp, 3000);
    int64_t ms = peers_now_ms() - t0;
    edist_buf_free(&b);
    if (!closed || !log_wait(log, rp.name, log_part, 2000))
        log_dump(log);
    assert_true(closed);
    assert_true(log_wait(log, rp.name, log_part, 2000));
    /* One line for the event (warnings and errors naming the peer). */
    assert_int_equal(log_count_level(log, EDIST_LOG_WARNING, rp.name), 1);
    char line[400] = "";
    pthread_mutex_lock(&log->mu);
    for (int i = 0; i < log->count; i++)
        if (strstr(log->lines[i], rp.name) && log->lines[i][0] == '1')
            snprintf(line, sizeof line, "%s", log->lines[i] + 2);
    pthread_mutex_unlock(&log->mu);
    print_message("%s: closed after %lld ms; log: %.200s\n", what,
                  (long long)ms, line);
    raw_close(&rp);
    erl_pings(a);
}

static void bad_header(rawpeer *rp, edist_buf *b)
{
    (void)b;
    uint8_t f[] = {131, 99, 0, 0, 0};
    raw_write_frame(rp, f, sizeof f);
}

static void unknown_op(rawpeer *rp, edist_buf *b)
{
    frame_begin(b);
    edist_enc_tuple(b, 3);
    edist_enc_int(b, 99);
    enc_raw_pid(b, rp);
    edist_enc_atomz(b, "x");
    raw_write_frame(rp, b->data, b->len);
}

static void truncated_control(rawpeer *rp, edist_buf *b)
{
    frame_begin(b);
    uint8_t t[] = {104, 4, 97, 6, 88}; /* {6, <pid cut short */
    edist_buf_append(b, t, sizeof t);
    raw_write_frame(rp, b->data, b->len);
}

static void wrong_types(rawpeer *rp, edist_buf *b)
{
    frame_begin(b);
    enc_reg_send_ctl(b, rp, "someone", true);
    edist_enc_atomz(b, "hello");
    raw_write_frame(rp, b->data, b->len);
}

static void unknown_sequence(rawpeer *rp, edist_buf *b)
{
    (void)b;
    uint8_t f[18 + 16] = {131, 70};
    f[9] = 0x42; /* SequenceId 0x42 */
    f[17] = 3;   /* FragmentId 3 */
    raw_write_frame(rp, f, sizeof f);
}

/* A first fragment announcing 2^40 fragments, then 64 KiB continuations
 * until the node's reassembly limit (1 MiB here) is passed. */
static void oversized_sequence(rawpeer *rp, edist_buf *b)
{
    edist_buf_reset(b);
    uint8_t h[19] = {131, 69};
    h[9] = 7;  /* SequenceId 7 */
    h[12] = 1; /* FragmentId 2^40 */
    h[18] = 0; /* no atom cache refs */
    edist_buf_append(b, h, sizeof h);
    enc_reg_send_ctl(b, rp, "someone", false);
    uint8_t bin[5] = {109, 0x7f, 0xff, 0xff, 0xff}; /* a 2 GiB binary */
    edist_buf_append(b, bin, sizeof bin);
    raw_write_frame(rp, b->data, b->len);
    uint8_t *cont = calloc(1, 18 + 65536);
    cont[0] = 131;
    cont[1] = 70;
    cont[9] = 7;
    uint64_t fid = ((uint64_t)1 << 40) - 1;
    for (int i = 0; i < 40; i++, fid--) {
        for (int k = 0; k < 8; k++)
            cont[10 + k] = (uint8_t)(fid >> (56 - 8 * k));
        raw_write_frame(rp, cont, 18 + 65536);
    }
    free(cont);
}

static void bad_payload(rawpeer *rp, edist_buf *b)
{
    frame_begin(b);
    enc_reg_send_ctl(b, rp, "someone", false);
    uint8_t t[] = {104, 3, 97, 1}; /* a 3-tuple with one element */
    edist_buf_append(b, t, sizeof t);
    raw_write_frame(rp, b->data, b->len);
}

static int handled;
static void count_message(void *user, const edist_node_message *m)
{
    (void)user;
    (void)m;
    handled++;
}

static void test_bad_bytes_after_handshake(void **state)
{
    (void)state;
    n4_log *log = calloc(1, sizeof *log);
    pthread_mutex_init(&log->mu, NULL);
    edist_node_config cfg;
    edist_node_config_init(&cfg);
    cfg.reassembly_limit_bytes = 1u << 20;
    edist_node *a = n4_start_node("n4post", log, &cfg);
    erl_pings(a);
    int64_t rss0 = rss_kb();

    expect_closed(a, log, "bad distribution header",
                  "unknown distribution "
                  "header 99",
                  bad_header);
    expect_closed(a, log, "unknown op", "bad distribution message", unknown_op);
    expect_closed(a, log, "truncated control term", "bad distribution message",
                  truncated_control);
    expect_closed(a, log, "wrong field types", "bad distribution message",
                  wrong_types);
    expect_closed(a, log, "fragment of an unknown sequence", "unknown sequence",
                  unknown_sequence);
    expect_closed(a, log, "oversized fragment sequence", "exceeds",
                  oversized_sequence);

    /* A malformed message nobody receives: dropped unread, as erts drops
     * a message to a name nobody has; the connection stays. */
    rawpeer rp;
    raw_connect(&rp, a, "n4bad", 0);
    edist_buf b;
    edist_buf_init(&b);
    edist_node_stats st0, st1;
    assert_int_equal(edist_node_get_stats(a, &st0), 0);
    bad_payload(&rp, &b);
    int64_t end = peers_now_ms() + 2000;
    do {
        assert_int_equal(edist_node_get_stats(a, &st1), 0);
    } while (st1.messages_dropped == st0.messages_dropped &&
             peers_now_ms() < end && usleep(10000) == 0);
    assert_int_equal(st1.messages_dropped, st0.messages_dropped + 1);
    assert_false(raw_wait_closed(&rp, 300));
    raw_close(&rp);
    print_message("malformed message to nobody: dropped, connection kept\n");
    /* With a receiver it must decode: the connection goes. */
    assert_int_equal(edist_node_set_message_handler(a, count_message, NULL), 0);
    expect_closed(a, log, "malformed message for a receiver",
                  "bad REG_SEND "
                  "payload",
                  bad_payload);
    assert_int_equal(handled, 0);
    assert_int_equal(edist_node_set_message_handler(a, NULL, NULL), 0);

    int64_t rss1 = rss_kb();
    print_message("RSS %lld kB -> %lld kB\n", (long long)rss0, (long long)rss1);
    assert_true(rss1 - rss0 < 32 * 1024);
    edist_node_stats st;
    assert_int_equal(edist_node_get_stats(a, &st), 0);
    assert_int_equal(st.send_queue_bytes, 0);
    edist_buf_free(&b);
    edist_node_stop(a);
    free(log);
}

/* ---- disconnect while being set up --------------------------------------- */

typedef struct connect_call {
    edist_node *node;
    char peer[128];
    int rc;
    int64_t done_ms;
} connect_call;

static void *connect_thread(void *arg)
{
    connect_call *c = arg;
    c->rc = edist_node_connect(c->node, c->peer, 8000);
    c->done_ms = peers_now_ms();
    return NULL;
}

static int listen_on(uint16_t *port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(s, 8), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return s;
}

static int register_name(const char *shortname, uint16_t port)
{
    edi_epmd_registration reg = {.name = shortname,
                                 .listen_port = port,
                                 .node_type = EDI_EPMD_NODE_TYPE_NORMAL,
                                 .protocol = EDI_EPMD_PROTOCOL_TCP};
    uint32_t creation;
    int fd = -1;
    assert_int_equal(
        edi_epmd_register(NULL, g.epmd_port, &reg, 2000, &creation, &fd), 0);
    return fd;
}

static void test_disconnect_pending(void **state)
{
    (void)state;
    n4_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    edist_node_config cfg;
    edist_node_config_init(&cfg);
    cfg.net_setuptime_ms = 6000;
    edist_node *a = n4_start_node("n4disc", &log, &cfg);

    /* Ours, stuck in the handshake: a registered name whose port accepts
     * (the kernel does) but never answers our send_name. */
    char sname[64];
    peers_unique_name(sname, sizeof sname, "n4stall");
    uint16_t port;
    int lfd = listen_on(&port);
    int efd = register_name(sname, port);
    connect_call cc = {.node = a, .rc = 1};
    full_of(sname, cc.peer, sizeof cc.peer);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, connect_thread, &cc), 0);
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 5000), 1); /* our node connected */
    usleep(100 * 1000);
    int64_t t0 = peers_now_ms();
    assert_int_equal(edist_node_disconnect(a, cc.peer), 0);
    pthread_join(th, NULL);
    print_message("connect aborted by disconnect after %lld ms: %s\n",
                  (long long)(cc.done_ms - t0), edist_strerror(cc.rc));
    assert_int_equal(cc.rc, EDIST_ECLOSED);
    assert_true(cc.done_ms - t0 < 1000);
    assert_true(log_wait(&log, cc.peer, "aborted by disconnect_node", 1000));
    assert_int_equal(edist_node_disconnect(a, cc.peer), EDIST_ENOTFOUND);
    edist_node_list l;
    assert_int_equal(
        edist_node_nodes(a, EDIST_NODES_VISIBLE | EDIST_NODES_HIDDEN, &l), 0);
    assert_int_equal(l.count, 0);
    edist_node_list_free(&l);
    /* The socket we never accepted was closed by the node. */
    int s = accept(lfd, NULL, NULL);
    assert_true(s >= 0);
    char buf[256];
    struct pollfd ps = {.fd = s, .events = POLLIN};
    int64_t end = peers_now_ms() + 2000;
    ssize_t r = 1;
    while (r > 0 && peers_now_ms() < end && poll(&ps, 1, 100) >= 0)
        if (ps.revents)
            r = read(s, buf, sizeof buf);
    assert_true(r == 0 || (r < 0 && errno == ECONNRESET));
    close(s);
    close(lfd);
    edi_epmd_unregister(efd);

    /* A peer's, stuck after its send_name: the node answered and waits for
     * the challenge reply; disconnect closes it. */
    char rname[64], rfull[128];
    peers_unique_name(rname, sizeof rname, "n4half");
    full_of(rname, rfull, sizeof rfull);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(edist_node_listen_port(a)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    n4_send_name(fd, a, rfull, 3000); /* it is pending now */
    assert_int_equal(edist_node_disconnect(a, rfull), 0);
    rawpeer tmp = {.fd = fd};
    assert_true(raw_wait_closed(&tmp, 1000));
    close(fd);
    int64_t until = peers_now_ms() + 1000;
    while (log_count(&log, "aborted by disconnect_node", NULL) < 2 &&
           peers_now_ms() < until)
        usleep(10 * 1000);
    assert_int_equal(log_count(&log, "aborted by disconnect_node", NULL), 2);
    assert_int_equal(edist_node_disconnect(a, rfull), EDIST_ENOTFOUND);
    print_message("a peer's half-done handshake aborted by disconnect\n");
    erl_pings(a);
    edist_node_stop(a);
}

/* ---- net_adm:ping semantics -----------------------------------------------
 */

typedef struct noauth_peer {
    int lfd;
    char full[128];
    bool answer_no; /* else never answer */
    bool saw_is_auth;
    bool closed_by_node;
    int64_t closed_ms;
} noauth_peer;

/* Accept one connection, do the handshake as acceptor, answer is_auth with
 * `no` (or not at all), then wait for the node to close. */
static void *noauth_thread(void *arg)
{
    noauth_peer *np = arg;
    int fd = accept(np->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    edi_hs_config hc = {.role = EDI_HS_ACCEPTOR,
                        .our_name = np->full,
                        .our_creation = 11,
                        .hidden = true,
                        .cookie = N4_COOKIE};
    edi_hs hs;
    if (edi_hs_init(&hs, &hc) != 0 ||
        edi_hs_io_run(&hs, fd, edi_hs_io_now_ms() + 5000) != 0) {
        close(fd);
        return NULL;
    }
    rawpeer rp = {.fd = fd};
    rp.flags = edi_hs_get_result(&hs)->flags;
    edi_hs_wipe(&hs);
    edi_dist_reasm_create(NULL, &rp.reasm);
    int64_t end = peers_now_ms() + 8000;
    while (peers_now_ms() < end) {
        uint8_t *f = NULL;
        size_t len = 0;
        int r = raw_read_frame(&rp, &f, &len, (int)(end - peers_now_ms()));
        if (r == 0) {
            np->closed_by_node = true;
            np->closed_ms = peers_now_ms();
            break;
        }
        if (r < 0)
            break;
        if (len == 0)
            continue;
        edi_dist_delivery d;
        edist_term_view from, tag;
        if (edi_dist_reasm_feed(rp.reasm, f, len, &d) == 1 &&
            edi_dist_match_is_auth(d.msg, &from, &tag, NULL) == 1) {
            np->saw_is_auth = true;
            if (np->answer_no) {
                edist_buf out;
                edist_buf_init(&out);
                uint8_t no[8];
                edist_buf nb;
                edist_buf_init_fixed(&nb, no, sizeof no);
                edist_enc_atomz(&nb, "no");
                edi_dist_term_scratch ps;
                edist_pid me = {.node = {.ptr = np->full,
                                         .len = (uint32_t)strlen(np->full)},
                                .id = 5,
                                .creation = 11};
                edist_term_view self, reply = {.ptr = no, .len = nb.len};
                edi_dist_pid_view(&me, &ps, &self);
                if (edi_dist_build_gen_reply(&out, rp.flags, self, from, tag,
                                             reply) == 0 &&
                    write(fd, out.data, out.len) < 0)
                    np->saw_is_auth = false;
                edist_buf_free(&out);
            }
        }
        free(d.owned);
        free(f);
    }
    raw_close(&rp);
    return NULL;
}

typedef struct down_log {
    pthread_mutex_t mu;
    char reason[64];
    char node[128];
} down_log;

static void on_event(void *user, const edist_node_event *ev)
{
    down_log *d = user;
    if (ev->up)
        return;
    pthread_mutex_lock(&d->mu);
    snprintf(d->reason, sizeof d->reason, "%s", ev->reason);
    snprintf(d->node, sizeof d->node, "%s", ev->node);
    pthread_mutex_unlock(&d->mu);
}

static void ping_case(edist_node *a, bool answer_no, int timeout_ms, int want)
{
    noauth_peer np = {.answer_no = answer_no};
    char sname[64];
    peers_unique_name(sname, sizeof sname, answer_no ? "n4no" : "n4mute");
    full_of(sname, np.full, sizeof np.full);
    uint16_t port;
    np.lfd = listen_on(&port);
    int efd = register_name(sname, port);
    down_log dl = {.mu = PTHREAD_MUTEX_INITIALIZER};
    uint64_t h;
    assert_int_equal(edist_node_monitor_node(a, np.full, on_event, &dl, &h), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, noauth_thread, &np), 0);
    int64_t t0 = peers_now_ms();
    int rc = edist_node_ping(a, np.full, timeout_ms);
    int64_t t_ping = peers_now_ms();
    assert_int_equal(rc, want);
    /* Disconnected before pang was returned. */
    edist_node_list l;
    assert_int_equal(
        edist_node_nodes(a, EDIST_NODES_VISIBLE | EDIST_NODES_HIDDEN, &l), 0);
    for (size_t i = 0; i < l.count; i++)
        assert_string_not_equal(l.names[i], np.full);
    edist_node_list_free(&l);
    pthread_join(th, NULL);
    assert_true(np.saw_is_auth);
    assert_true(np.closed_by_node);
    pthread_mutex_lock(&dl.mu);
    assert_string_equal(dl.reason, "disconnect");
    pthread_mutex_unlock(&dl.mu);
    print_message("ping of a peer that %s: %s after %lld ms; the node closed "
                  "the connection (nodedown %s)\n",
                  answer_no ? "answers no" : "never answers",
                  edist_strerror(rc), (long long)(t_ping - t0), dl.reason);
    close(np.lfd);
    edi_epmd_unregister(efd);
}

static void test_ping_pang_disconnects(void **state)
{
    (void)state;
    n4_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    edist_node *a = n4_start_node("n4ping", &log, NULL);
    ping_case(a, true, 5000, EDIST_EAUTH);
    ping_case(a, false, 600, EDIST_ETIMEDOUT);
    /* pong still works, and does not disconnect. */
    assert_int_equal(edist_node_ping(a, erl_full, 5000), 0);
    edist_node_list l;
    assert_int_equal(edist_node_nodes(a, EDIST_NODES_VISIBLE, &l), 0);
    bool found = false;
    for (size_t i = 0; i < l.count; i++)
        found |= !strcmp(l.names[i], erl_full);
    assert_true(found);
    edist_node_list_free(&l);
    edist_node_stop(a);
}

/* ---- links: an unlink crossing the peer's unlink and re-link ------------- */

static void raw_send_built(rawpeer *rp, const edist_buf *out)
{
    assert_int_equal(write(rp->fd, out->data, out->len), (ssize_t)out->len);
}

/* Reads frames from the node until one with op comes (ticks and other
 * signals skipped): true, with its unlink id. */
/* The op of the next message from the node before end_ms (ticks
 * skipped), with its unlink id; false if none came. */
static bool raw_next_op(rawpeer *rp, int64_t end_ms, int *op, uint64_t *unlink_id)
{
    while (peers_now_ms() < end_ms) {
        uint8_t *f = NULL;
        size_t len = 0;
        if (raw_read_frame(rp, &f, &len, (int)(end_ms - peers_now_ms())) <= 0)
            return false;
        edi_dist_delivery d;
        bool got = len && edi_dist_reasm_feed(rp->reasm, f, len, &d) == 1;
        if (got) {
            *op = d.msg->op;
            *unlink_id = d.msg->unlink_id;
            free(d.owned);
        }
        free(f);
        if (got)
            return true;
    }
    return false;
}

/* Reads the node's messages until one with op comes: true, with its
 * unlink id. */
static bool raw_expect_op(rawpeer *rp, int op, uint64_t *unlink_id, int ms)
{
    int64_t end = peers_now_ms() + ms;
    int got;
    uint64_t id;
    while (raw_next_op(rp, end, &got, &id))
        if (got == op) {
            if (unlink_id)
                *unlink_id = id;
            return true;
        }
    return false;
}

/* The atom, from the raw peer's pid r to p. */
static void raw_send_atom(rawpeer *rp, edist_term_view r, edist_term_view p, const char *atom,
                          edist_buf *m)
{
    edist_buf out;
    edist_enc_atomz(m, atom);
    edist_buf_init(&out);
    assert_int_equal(edi_dist_build_send_sender(&out, rp->flags, NULL, r, p,
                                                (edist_term_view){m->data, m->len}), 0);
    raw_send_built(rp, &out);
    edist_buf_free(&out);
}

/* An atom message from the raw peer to P, and P's next message: that atom? */
static bool next_is(rawpeer *rp, edist_term_view r, edist_term_view p, const char *atom)
{
    uint8_t mb[64];
    edist_buf m;
    edist_buf_init_fixed(&m, mb, sizeof mb);
    raw_send_atom(rp, r, p, atom, &m);
    edist_term_view got;
    if (edist_receive(NULL, NULL, 5000, &got) != 0)
        return false;
    bool same = edist_term_equal(got.ptr, got.len, m.data, m.len);
    if (!same)
        print_message("expected %s, got another message\n", atom);
    return same;
}

/* P unlinks the raw peer R while R unlinks P and links again (R's
 * UNLINK_ID, LINK and the ack of P's unlink all come before R's link
 * exit). As erts: P's link waits for its ack inactive, so R's LINK finds
 * it and is ignored, and the ack removes it; the exit finds no link.
 * edist used to drop the link at once: R's LINK set it again on P's side
 * only, and the exit reached P. */
static void test_unlink_crossing(void **state)
{
    (void)state;
    static n4_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    edist_node *a = n4_start_node("n4unlink", &log, NULL);
    rawpeer rp;
    raw_connect(&rp, a, "n4unlinkraw", 0);
    assert_true(rp.flags & EDI_DFLAG_UNLINK_ID);
    edist_procid self;
    assert_int_equal(edist_proc_attach_thread(edist_node_runtime(a), 0, &self), 0);
    assert_int_equal(edist_trap_exit(true), 0);
    edist_pid pp, rpid = raw_pid(&rp, 42);
    edist_procid_to_pid(self, &pp);
    edi_dist_term_scratch ps, rs;
    edist_term_view p, r;
    assert_int_equal(edi_dist_pid_view(&pp, &ps, &p), 0);
    assert_int_equal(edi_dist_pid_view(&rpid, &rs, &r), 0);
    edist_procid rproc;
    assert_int_equal(edist_procid_from_pid(&rpid, &rproc), 0);
    uint8_t rb[16];
    edist_buf reason, out;
    edist_buf_init_fixed(&reason, rb, sizeof rb);
    edist_enc_atomz(&reason, "probe");
    edist_term_view probe = {reason.data, reason.len};
    edist_buf_init(&out);

    /* R links to P (in order before sync0, so P has the link then) */
    assert_int_equal(edi_dist_build_link(&out, rp.flags, r, p), 0);
    raw_send_built(&rp, &out);
    assert_true(next_is(&rp, r, p, "sync0"));

    /* P unlinks: R sees UNLINK_ID(p1) and, as if it had crossed it,
     * answers its own unlink, a re-link, the ack, then its link's exit */
    assert_int_equal(edist_unlink(rproc), 0);
    uint64_t p1 = 0, acked = 0;
    assert_true(raw_expect_op(&rp, EDI_DOP_UNLINK_ID, &p1, 5000));
    assert_true(p1 != 0);
    edist_buf_reset(&out);
    assert_int_equal(edi_dist_build_unlink_id(&out, rp.flags, 7, r, p), 0);
    raw_send_built(&rp, &out);
    edist_buf_reset(&out);
    assert_int_equal(edi_dist_build_link(&out, rp.flags, r, p), 0);
    raw_send_built(&rp, &out);
    edist_buf_reset(&out);
    assert_int_equal(edi_dist_build_unlink_id_ack(&out, rp.flags, p1, r, p), 0);
    raw_send_built(&rp, &out);
    edist_buf_reset(&out);
    assert_int_equal(edi_dist_build_exit(&out, rp.flags, NULL, r, p, probe), 0);
    raw_send_built(&rp, &out);
    /* the exit found no link: the next message is sync1 */
    assert_true(next_is(&rp, r, p, "sync1"));
    /* R's unlink was acknowledged, with its id */
    assert_true(raw_expect_op(&rp, EDI_DOP_UNLINK_ID_ACK, &acked, 5000));
    assert_int_equal(acked, 7);

    /* P links again and it holds: R's exit reaches P */
    assert_int_equal(edist_link(rproc), 0);
    assert_true(raw_expect_op(&rp, EDI_DOP_LINK, NULL, 5000));
    edist_buf_reset(&out);
    assert_int_equal(edi_dist_build_exit(&out, rp.flags, NULL, r, p, probe), 0);
    raw_send_built(&rp, &out);
    edist_term_view got;
    assert_int_equal(edist_receive(NULL, NULL, 5000, &got), 0);
    edist_cursor c;
    uint32_t arity;
    edist_atom tag;
    edist_cursor_init(&c, got.ptr, got.len);
    assert_int_equal(edist_dec_tuple(&c, &arity), 0);
    assert_int_equal(arity, 3);
    assert_int_equal(edist_dec_atom(&c, &tag), 0);
    assert_true(tag.len == 4 && memcmp(tag.ptr, "EXIT", 4) == 0);
    print_message("unlink crossed by the peer's unlink and re-link: no link on "
                  "either side, the exit ignored, the peer's unlink acked (id 7); "
                  "linked again, the exit arrives\n");

    edist_buf_free(&out);
    edist_proc_detach_thread(NULL, 0);
    raw_close(&rp);
    edist_node_stop(a);
}

/* On a node of two shards, the ack of a peer's UNLINK_ID comes from the
 * shard of the process it names, after what that process sent before:
 * P (shard 1) unlinks R, then links again while R's unlink is on its
 * way. R must see P's LINK before the ack of its unlink (else R drops its
 * link on the ack, takes P's LINK as new, and stays linked while P's
 * link goes with R's unlink). The ack used to leave from shard 0 at once,
 * even while P's shard had not read R's unlink yet. */
static edist_procid t3_r;
static _Atomic int t3_hold, t3_unlinked;

static void t3_p(void *arg)
{
    (void)arg;
    edist_term_view m;
    if (edist_receive(NULL, NULL, 10000, &m) != 0) /* "start", after R's LINK */
        return;
    edist_unlink(t3_r);
    atomic_store(&t3_unlinked, 1);
    while (atomic_load(&t3_hold))
        ; /* green, not yielding: shard 1 reads nothing */
    edist_link(t3_r);
    edist_receive(NULL, NULL, 10000, &m); /* "end" */
}

static void test_unlink_ack_from_owner_shard(void **state)
{
    (void)state;
    static n4_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    edist_node_config cfg;
    edist_node_config_init(&cfg);
    cfg.shards = 2;
    edist_node *a = n4_start_node("n4unlack", &log, &cfg);
    rawpeer rp;
    raw_connect(&rp, a, "n4unlackraw", 0);
    edist_pid rpid = raw_pid(&rp, 43);
    assert_int_equal(edist_procid_from_pid(&rpid, &t3_r), 0);
    atomic_store(&t3_hold, 1);
    atomic_store(&t3_unlinked, 0);
    edist_procid pproc;
    edist_runtime *ert = edist_node_runtime(a);
    assert_int_equal(edi_rt_spawn_here(ert->g->rt[1], t3_p, NULL, &pproc), 0);
    edist_pid pp;
    edist_procid_to_pid(pproc, &pp);
    edi_dist_term_scratch ps, rs;
    edist_term_view p, r;
    assert_int_equal(edi_dist_pid_view(&pp, &ps, &p), 0);
    assert_int_equal(edi_dist_pid_view(&rpid, &rs, &r), 0);
    edist_buf out;
    edist_buf_init(&out);
    uint8_t mb[16];
    edist_buf m;
    edist_buf_init_fixed(&m, mb, sizeof mb);
    assert_int_equal(edi_dist_build_link(&out, rp.flags, r, p), 0);
    raw_send_built(&rp, &out);
    raw_send_atom(&rp, r, p, "start", &m);
    assert_true(raw_expect_op(&rp, EDI_DOP_UNLINK_ID, NULL, 5000));
    assert_true(atomic_load(&t3_unlinked));
    /* R's unlink crosses P's: no ack while P's shard has not read it */
    edist_buf_reset(&out);
    assert_int_equal(edi_dist_build_unlink_id(&out, rp.flags, 9, r, p), 0);
    raw_send_built(&rp, &out);
    uint64_t id = 0;
    bool early = raw_expect_op(&rp, EDI_DOP_UNLINK_ID_ACK, &id, 300);
    atomic_store(&t3_hold, 0);
    assert_false(early);
    /* P links again: its LINK first, then the ack */
    bool link_first = false;
    int64_t end = peers_now_ms() + 5000;
    int op;
    while (raw_next_op(&rp, end, &op, &id) && op != EDI_DOP_UNLINK_ID_ACK)
        link_first |= op == EDI_DOP_LINK;
    assert_int_equal(id, 9);
    assert_true(link_first);
    print_message("two shards: no ack while the unlinked process's shard was busy; "
                  "then its LINK, then the ack (id %llu)\n", (unsigned long long)id);
    edist_buf_reset(&m);
    raw_send_atom(&rp, r, p, "end", &m);
    edist_buf_free(&out);
    raw_close(&rp);
    edist_node_stop(a);
}

/* ---- a node stop while a peer still sends ----------------------------------- */

/* A green process's send to another node goes the express way (one call
 * to the lane) when it can and the general way when it cannot, with the
 * same bytes and the same errors: a term with its version byte twice is
 * sent without either (the general path strips both), and a compressed
 * term without its version byte (or behind two) is refused, on any
 * shard and to itself too. The express path used to put both on the wire as they were; a
 * process of another shard was told ok and its message went nowhere. */
typedef struct odd_sends {
    edist_procid to;
    int rc[5];
    atomic_int done;
} odd_sends;

static void odd_sender(void *arg)
{
    odd_sends *j = arg;
    static const uint8_t twice[] = {131, 131, 97, 1};
    static const uint8_t bare_zlib[] = {80, 0, 0, 0, 1, 120, 156, 0};
    static const uint8_t plain[] = {131, 97, 2};
    j->rc[0] = edist_send(j->to, twice, sizeof twice);
    j->rc[1] = edist_send(j->to, bare_zlib, sizeof bare_zlib);
    j->rc[2] = edist_send(j->to, plain, sizeof plain);
    j->rc[3] = edist_send(edist_self(), bare_zlib, sizeof bare_zlib);
    static const uint8_t twice_zlib[] = {131, 131, 80, 0, 0, 0, 1, 120, 156, 0};
    j->rc[4] = edist_send(j->to, twice_zlib, sizeof twice_zlib);
    atomic_store(&j->done, 1);
}

/* The payload of the node's next SEND: 1 with it copied into out. */
static int raw_next_send(rawpeer *rp, uint8_t *out, size_t cap, size_t *len, int ms)
{
    int64_t end = peers_now_ms() + ms;
    while (peers_now_ms() < end) {
        uint8_t *f = NULL;
        size_t n = 0;
        if (raw_read_frame(rp, &f, &n, (int)(end - peers_now_ms())) <= 0)
            return 0;
        edi_dist_delivery d;
        int got = n && edi_dist_reasm_feed(rp->reasm, f, n, &d) == 1 &&
                  d.msg->sig == EDI_SIG_SEND && d.msg->payload.len <= cap;
        if (got) {
            memcpy(out, d.msg->payload.ptr, d.msg->payload.len);
            *len = d.msg->payload.len;
            free(d.owned);
        }
        free(f);
        if (got)
            return 1;
    }
    return 0;
}

static void test_express_send_same_bytes(void **state)
{
    (void)state;
    static n4_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    edist_node *a = n4_start_node("n4express", &log, NULL);
    rawpeer rp;
    raw_connect(&rp, a, "n4expressraw", 0);
    edist_pid rpid = raw_pid(&rp, 45);
    odd_sends j = {.rc = {-100, -100, -100, -100, -100}};
    assert_int_equal(edist_procid_from_pid(&rpid, &j.to), 0);
    edist_procid p;
    assert_int_equal(edist_runtime_spawn(edist_node_runtime(a), odd_sender, &j, NULL, &p), 0);
    int64_t end = peers_now_ms() + 5000;
    while (!atomic_load(&j.done) && peers_now_ms() < end)
        usleep(1000);
    assert_int_equal(j.rc[0], 0);
    assert_int_equal(j.rc[1], EDIST_EINVAL);
    assert_int_equal(j.rc[2], 0);
    assert_int_equal(j.rc[3], EDIST_EINVAL);
    assert_int_equal(j.rc[4], EDIST_EINVAL);
    uint8_t got[16];
    size_t n = 0;
    assert_int_equal(raw_next_send(&rp, got, sizeof got, &n, 5000), 1);
    assert_int_equal(n, 2);
    assert_int_equal(got[0], 97);
    assert_int_equal(got[1], 1);
    assert_int_equal(raw_next_send(&rp, got, sizeof got, &n, 5000), 1);
    assert_int_equal(n, 2);
    assert_int_equal(got[0], 97);
    assert_int_equal(got[1], 2);
    edist_node_stats st;
    assert_int_equal(edist_node_get_stats(a, &st), 0);
    assert_int_equal(st.messages_in_place, 2); /* both written in place */
    raw_close(&rp);
    edist_node_stop(a);
}

/* The stop closes each connection once its queue is in the kernel; the
 * connections then read what their peers send until those close. The loop
 * used to stop at once: a peer that was still sending (ticks here) found a
 * socket closed with unread bytes, whose reset destroyed the tail of what
 * the flush had handed over. */
#define DRAIN_MSGS 200
#define DRAIN_BYTES 10000

typedef struct drain_job {
    edist_node *node;
    edist_procid to;
    atomic_int sent, stopped;
} drain_job;

static void *drain_stopper(void *arg)
{
    drain_job *j = arg;
    edist_procid self;
    if (edist_proc_attach_thread(edist_node_runtime(j->node), 0, &self) == 0) {
        uint8_t *m = malloc(DRAIN_BYTES + 16), *bytes = calloc(1, DRAIN_BYTES);
        edist_buf b;
        edist_buf_init_fixed(&b, m, DRAIN_BYTES + 16);
        edist_enc_binary(&b, bytes, DRAIN_BYTES);
        free(bytes);
        int ok = 0;
        for (int i = 0; i < DRAIN_MSGS; i++)
            ok += edist_send(j->to, b.data, b.len) == 0;
        atomic_store(&j->sent, ok);
        free(m);
        edist_proc_detach_thread(NULL, 0);
    }
    edist_node_stop(j->node);
    atomic_store(&j->stopped, 1);
    return NULL;
}

static void test_stop_drains_to_a_sending_peer(void **state)
{
    (void)state;
    static n4_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    edist_node_config cfg;
    edist_node_config_init(&cfg);
    cfg.close_flush_ms = 5000;
    edist_node *a = n4_start_node("n4drain", &log, &cfg);
    rawpeer rp;
    raw_connect(&rp, a, "n4drainraw", 4096);
    edist_pid rpid = raw_pid(&rp, 44);
    drain_job j = {.node = a};
    assert_int_equal(edist_procid_from_pid(&rpid, &j.to), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, drain_stopper, &j), 0);
    /* read slowly, sending a tick now and then, until the node closes */
    int got = 0, r = 1;
    uint8_t tick[4] = {0};
    int64_t end = peers_now_ms() + 20000;
    while (peers_now_ms() < end) {
        uint8_t *f = NULL;
        size_t len = 0;
        r = raw_read_frame(&rp, &f, &len, 5000);
        if (r <= 0)
            break;
        if (len > DRAIN_BYTES)
            got++;
        free(f);
        if (got % 10 == 0) {
            (void)!write(rp.fd, tick, sizeof tick);
            usleep(2000);
        }
    }
    int err = r < 0 ? errno : 0;
    shutdown(rp.fd, SHUT_WR); /* our side closes too: the node's drain ends */
    pthread_join(th, NULL);
    print_message("node stopped while its peer sent ticks: %d of %d messages read, then %s\n",
                  got, atomic_load(&j.sent), r == 0 ? "end of stream" : strerror(err));
    assert_int_equal(atomic_load(&j.sent), DRAIN_MSGS);
    assert_int_equal(got, DRAIN_MSGS);
    assert_int_equal(r, 0);
    raw_close(&rp);
}

static int group_setup(void **state)
{
    (void)state;
    if (n4_group_setup("node-postshake"))
        return -1;
    peers_unique_name(erl_short, sizeof erl_short, "n4erlp");
    full_of(erl_short, erl_full, sizeof erl_full);
    start_erl(erl_short, NULL, 60);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return n4_group_teardown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_bytes_after_handshake),
        cmocka_unit_test(test_disconnect_pending),
        cmocka_unit_test(test_ping_pang_disconnects),
        cmocka_unit_test(test_unlink_crossing),
        cmocka_unit_test(test_unlink_ack_from_owner_shard),
        cmocka_unit_test(test_stop_drains_to_a_sending_peer),
        cmocka_unit_test(test_express_send_same_bytes),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
