/* SPDX-License-Identifier: Apache-2.0 */
/* The global API (include/edist/global.h) between two in-process edist
 * nodes: register/whereis/send/unregister from thread processes, a name
 * clash resolved by a resolver set from C (it keeps the pid the default
 * would kill), and cluster-wide locks (one requester holds, another is
 * refused, and gets it once the first lets go). Also auto-connection's
 * bound (auto_connect_max_signals), which a node learning many global
 * names of nodes it is not connected to meets first, and its order: an
 * unlink or a link's exit made while connecting follows the link. */
#include "n4_util.h"

#include "control/epmd_client.h"
#include "edist/global.h"
#include "edist/proc.h"

static n4_log log_a, log_b;

static void parse(const char *text, edist_buf *out)
{
    edist_buf_init(out);
    edist_parse_error perr;
    memset(&perr, 0, sizeof perr);
    assert_int_equal(edist_term_parse(text, strlen(text), out, NULL, &perr), 0);
}

static void attach(edist_node *n)
{
    edist_procid self;
    edist_proc_detach_thread(NULL, 0);
    assert_int_equal(edist_proc_attach_thread(edist_node_runtime(n), 0, &self), 0);
}

static void idle(void *arg)
{
    (void)arg;
    edist_term_view m;
    while (edist_receive(NULL, NULL, -1, &m) == 0 && !edist_term_equal(m.ptr, m.len, "\x77\x04stop", 6))
        ;
}

/* A holder process on n, registered globally as name (from a thread of n). */
static edist_procid holder_on(edist_node *n, const edist_buf *name)
{
    edist_procid pid;
    assert_int_equal(edist_runtime_spawn(edist_node_runtime(n), idle, NULL, NULL, &pid), 0);
    attach(n);
    assert_int_equal(edist_global_register_name(name->data, name->len, pid), 0);
    edist_proc_detach_thread(NULL, 0);
    return pid;
}

/* whereis on n (from a thread of n) after global:sync(). */
static int whereis_on(edist_node *n, const edist_buf *name, edist_procid *pid)
{
    attach(n);
    assert_int_equal(edist_global_sync(10000), 0);
    int rc = edist_global_whereis_name(name->data, name->len, pid);
    edist_proc_detach_thread(NULL, 0);
    return rc;
}

static int resolver_calls;
static edist_procid resolver_keeps;

/* Keeps the pid on the node with the greater name: what the default kills. */
static int keep_greater(void *user, edist_term_view name, edist_procid a, edist_procid b,
                        edist_procid *keep)
{
    (void)user;
    (void)name;
    resolver_calls++;
    *keep = strcmp(edist_procid_node(a), edist_procid_node(b)) > 0 ? a : b;
    resolver_keeps = *keep;
    return 0;
}

static void test_clash_with_resolver(void **state)
{
    (void)state;
    edist_node *a = n4_start_node("gapia", &log_a, NULL);
    edist_node *b = n4_start_node("gapib", &log_b, NULL);
    edist_buf name;
    parse("{clash, <<\"x\">>}", &name);
    edist_procid pa = holder_on(a, &name), pb = holder_on(b, &name);
    /* the node with the smaller name resolves: the resolver goes there */
    bool a_small = strcmp(edist_node_name(a), edist_node_name(b)) < 0;
    edist_node *resolver = a_small ? a : b;
    edist_procid greater = a_small ? pb : pa, smaller = a_small ? pa : pb;
    assert_int_equal(edist_global_set_resolver(resolver, keep_greater, NULL), 0);
    assert_int_equal(edist_node_connect(a, edist_node_name(b), 5000), 0);
    edist_procid wa = {0}, wb = {0};
    int64_t end = peers_now_ms() + 10000;
    do {
        assert_int_equal(whereis_on(a, &name, &wa), 0);
        assert_int_equal(whereis_on(b, &name, &wb), 0);
    } while (!(edist_procid_equal(wa, greater) && edist_procid_equal(wb, greater)) &&
             peers_now_ms() < end && usleep(100 * 1000) == 0);
    assert_int_equal(resolver_calls, 1);
    assert_true(edist_procid_equal(resolver_keeps, greater));
    assert_true(edist_procid_equal(wa, greater));
    assert_true(edist_procid_equal(wb, greater));
    /* the resolver killed nobody: the loser is alive, without the name */
    assert_true(edist_runtime_is_alive(edist_node_runtime(resolver), smaller));

    /* send, unregister, gone on both */
    attach(a);
    edist_buf msg;
    parse("hello", &msg);
    assert_int_equal(edist_global_send(name.data, name.len, msg.data, msg.len), 0);
    assert_int_equal(edist_global_unregister_name(name.data, name.len), 0);
    edist_procid none;
    assert_int_equal(edist_global_whereis_name(name.data, name.len, &none), EDIST_ENOTFOUND);
    assert_int_equal(edist_global_send(name.data, name.len, msg.data, msg.len), EDIST_ENOTFOUND);
    edist_proc_detach_thread(NULL, 0);
    assert_int_equal(whereis_on(b, &name, &none), EDIST_ENOTFOUND);
    edist_buf_free(&msg);

    /* registered_names lists a new name on both nodes */
    edist_buf n2, list;
    parse("other", &n2);
    edist_procid po = holder_on(b, &n2);
    (void)po;
    attach(a);
    edist_buf_init(&list);
    assert_int_equal(edist_global_registered_names(&list), 0);
    edist_buf want;
    parse("[other]", &want);
    assert_int_equal(edist_term_equal(list.data, list.len, want.data, want.len), 1);
    edist_proc_detach_thread(NULL, 0);
    edist_buf_free(&list);
    edist_buf_free(&want);
    edist_buf_free(&n2);
    edist_buf_free(&name);
    edist_node_stop(a);
    edist_node_stop(b);
}

typedef struct locker_arg {
    edist_node *node;
    const char *id;
    int retries;
    int rc;
    bool release;
} locker_arg;

static void *lock_thread(void *p)
{
    locker_arg *x = p;
    edist_procid self;
    if (edist_proc_attach_thread(edist_node_runtime(x->node), 0, &self) != 0) {
        x->rc = -1000;
        return NULL;
    }
    edist_buf id;
    edist_buf_init(&id);
    edist_parse_error pe;
    edist_term_parse(x->id, strlen(x->id), &id, NULL, &pe);
    x->rc = edist_global_set_lock(id.data, id.len, x->retries);
    if (x->rc == 0 && x->release)
        x->rc = edist_global_del_lock(id.data, id.len);
    edist_buf_free(&id);
    edist_proc_detach_thread(NULL, 0);
    return NULL;
}

static int trans_body(void *arg)
{
    int *ran = arg;
    (*ran)++;
    return 42;
}

static void test_locks(void **state)
{
    (void)state;
    edist_node *a = n4_start_node("glka", &log_a, NULL);
    edist_node *b = n4_start_node("glkb", &log_b, NULL);
    assert_int_equal(edist_node_connect(a, edist_node_name(b), 5000), 0);
    edist_procid dummy;
    edist_buf nm;
    parse("nobody", &nm);
    whereis_on(a, &nm, &dummy); /* synced: each knows the other */
    edist_buf_free(&nm);
    /* A holds {res, a} (this thread, attached to A) */
    attach(a);
    edist_buf ida;
    parse("{res, a}", &ida);
    assert_int_equal(edist_global_set_lock(ida.data, ida.len, 0), 0);
    /* B asks for {res, b} once: refused (A's lock is on B too) */
    locker_arg x = {.node = b, .id = "{res, b}", .retries = 0, .release = true};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, lock_thread, &x), 0);
    pthread_join(t, NULL);
    assert_int_equal(x.rc, EDIST_EAGAIN);
    /* the same requester id from another process shares it */
    locker_arg y = {.node = b, .id = "{res, a}", .retries = 0, .release = true};
    assert_int_equal(pthread_create(&t, NULL, lock_thread, &y), 0);
    pthread_join(t, NULL);
    assert_int_equal(y.rc, 0);
    /* trans on the held resource from A itself (same requester): runs */
    int ran = 0, result = 0;
    assert_int_equal(edist_global_trans(ida.data, ida.len, trans_body, &ran, 0, &result), 0);
    assert_int_equal(result, 42);
    assert_int_equal(ran, 1);
    /* A lets go: B gets it */
    assert_int_equal(edist_global_del_lock(ida.data, ida.len), 0);
    edist_proc_detach_thread(NULL, 0);
    x.rc = 1;
    assert_int_equal(pthread_create(&t, NULL, lock_thread, &x), 0);
    pthread_join(t, NULL);
    assert_int_equal(x.rc, 0);
    /* a lock whose holder ends goes with it: B's holder detached without
     * del_lock, then A gets the resource */
    locker_arg z = {.node = b, .id = "{res, z}", .retries = 0, .release = false};
    assert_int_equal(pthread_create(&t, NULL, lock_thread, &z), 0);
    pthread_join(t, NULL);
    assert_int_equal(z.rc, 0);
    locker_arg w = {.node = a, .id = "{res, w}", .retries = 20, .release = true};
    assert_int_equal(pthread_create(&t, NULL, lock_thread, &w), 0);
    pthread_join(t, NULL);
    assert_int_equal(w.rc, 0);
    edist_buf_free(&ida);
    edist_node_stop(a);
    edist_node_stop(b);
}

static int group_setup(void **state)
{
    (void)state;
    pthread_mutex_init(&log_a.mu, NULL);
    pthread_mutex_init(&log_b.mu, NULL);
    return n4_group_setup("global-api");
}

static int group_teardown(void **state)
{
    (void)state;
    return n4_group_teardown();
}

/* A node the port mapper knows that never answers a handshake: a socket
 * that listens and never accepts. Returns the listening fd (its epmd
 * registration in *epmd_fd) and the node's full name in full. */
static int silent_node(const edist_node *like, char *full, size_t cap, int *epmd_fd)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(lfd, 16), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    char alive[64];
    peers_unique_name(alive, sizeof alive, "acbsilent");
    edi_epmd_registration reg = {.name = alive,
                                 .listen_port = ntohs(sa.sin_port),
                                 .node_type = EDI_EPMD_NODE_TYPE_NORMAL,
                                 .protocol = EDI_EPMD_PROTOCOL_TCP};
    uint32_t creation;
    assert_int_equal(edi_epmd_register(NULL, edi_epmd_default_port(), &reg, 5000, &creation,
                                       epmd_fd),
                     0);
    snprintf(full, cap, "%s%s", alive, strchr(edist_node_name(like), '@'));
    return lfd;
}

/* DOWN noconnection messages that come within ms. */
static int downs_noconnection(const edist_pattern *down, int ms, int *other)
{
    int n = 0;
    edist_term_view m, v[1];
    /* v is in and out: unbound before each receive */
    while ((v[0] = (edist_term_view){NULL, 0}, edist_receive(down, v, ms, &m)) == 0) {
        if (edist_term_equal(v[0].ptr, v[0].len, "\x77\x0cnoconnection", 14))
            n++;
        else
            (*other)++;
    }
    return n;
}

/* Ten monitors of {echo, S} from A, S a node that never answers, with
 * room for four signals to wait for the connection: the first four wait
 * (the connection stays pending), the other six fail at once with DOWN
 * noconnection, and A counts them; when S's socket closes, the four get
 * their DOWN noconnection too, and nothing is left waiting. */
static void test_auto_connect_bound(void **state)
{
    (void)state;
    edist_node_config cfg;
    edist_node_config_init(&cfg);
    cfg.auto_connect_max_signals = 4;
    edist_node *a = n4_start_node("acba", &log_a, &cfg);
    char silent[300];
    int epmd_fd;
    int lfd = silent_node(a, silent, sizeof silent, &epmd_fd);
    attach(a);
    edist_ref refs[10];
    for (int i = 0; i < 10; i++)
        assert_int_equal(edist_monitor_name("echo", silent, &refs[i]), 0);
    static const char pat[] = "{'DOWN', _, process, _, Reason}";
    edist_pattern *down;
    edist_parse_error pe;
    assert_int_equal(edist_pattern_compile(pat, sizeof pat - 1, &down, &pe), 0);
    int other = 0;
    int refused_downs = downs_noconnection(down, 1000, &other);
    edist_node_stats st;
    assert_int_equal(edist_node_get_stats(a, &st), 0);
    print_message("10 monitors of a node that does not answer, room for 4: %d DOWN "
                  "noconnection at once, %d other; refused %llu, waiting %llu (at most %llu)\n",
                  refused_downs, other, (unsigned long long)st.auto_connect_refused,
                  (unsigned long long)st.auto_connect_waiting,
                  (unsigned long long)st.auto_connect_waiting_max);
    assert_int_equal(refused_downs, 6);
    assert_int_equal(other, 0);
    assert_int_equal(st.auto_connect_refused, 6);
    assert_int_equal(st.auto_connect_waiting, 4);
    assert_int_equal(st.auto_connect_waiting_max, 4);
    assert_true(st.auto_connect_waiting_bytes > 0);
    /* the node goes away: the connection fails, the four waiting fire */
    close(lfd);
    edi_epmd_unregister(epmd_fd);
    int failed_downs = downs_noconnection(down, 10000, &other);
    edist_pattern_free(down);
    assert_int_equal(edist_node_get_stats(a, &st), 0);
    print_message("its socket closed: %d more DOWN noconnection; waiting %llu\n", failed_downs,
                  (unsigned long long)st.auto_connect_waiting);
    assert_int_equal(failed_downs, 4);
    assert_int_equal(other, 0);
    assert_int_equal(st.auto_connect_refused, 6);
    assert_int_equal(st.auto_connect_waiting, 0);
    assert_int_equal(st.auto_connect_waiting_bytes, 0);
    edist_proc_detach_thread(NULL, 0);
    edist_node_stop(a);
}

/* ---- auto-connection's order ------------------------------------------------------ */

typedef struct order_job {
    edist_procid q;
} order_job;

static const char boom[] = "\x77\x04" "boom";

/* Links to q on a node not yet connected, then ends: the link waits for
 * the connection, and the exit signal must follow it there. */
static void link_then_exit(void *arg)
{
    order_job *j = arg;
    if (edist_link(j->q) == 0)
        edist_exit(boom, sizeof boom - 1);
}

/* Links to q and unlinks at once, while connecting; then says `ready`
 * (behind both) and lives until its node stops. */
static void link_unlink_live(void *arg)
{
    order_job *j = arg;
    static const char ready[] = "\x77\x05" "ready";
    if (edist_link(j->q) != 0 || edist_unlink(j->q) != 0 ||
        edist_send(j->q, ready, sizeof ready - 1) != 0)
        return;
    idle(NULL);
}

/* Signals that undo or answer (unlink, a link's exit) wait behind an
 * auto-connection under way with the link before them: without, the
 * exit was dropped (the peer stayed linked to a dead process) and the
 * unlink too (the peer kept a link the sender had undone, and had an exit
 * noconnection from it when the node went). */
static void test_auto_connect_order(void **state)
{
    (void)state;
    static const char pat[] = "{'EXIT', _, boom}";
    edist_pattern *exit_boom;
    edist_parse_error pe;
    assert_int_equal(edist_pattern_compile(pat, sizeof pat - 1, &exit_boom, &pe), 0);
    edist_node *a = n4_start_node("acoa", &log_a, NULL);
    edist_node *b = n4_start_node("acob", &log_b, NULL);
    order_job job;
    attach(b);
    job.q = edist_self();
    assert_int_equal(edist_trap_exit(true), 0);
    edist_procid p;
    assert_int_equal(edist_runtime_spawn(edist_node_runtime(a), link_then_exit, &job, NULL, &p), 0);
    edist_term_view m;
    assert_int_equal(edist_receive(exit_boom, NULL, 10000, &m), 0);
    edist_pattern_free(exit_boom);
    edist_proc_detach_thread(NULL, 0);
    edist_node_stop(a);
    edist_node_stop(b);

    a = n4_start_node("acoc", &log_a, NULL);
    b = n4_start_node("acod", &log_b, NULL);
    attach(b);
    job.q = edist_self();
    assert_int_equal(edist_trap_exit(true), 0);
    assert_int_equal(edist_runtime_spawn(edist_node_runtime(a), link_unlink_live, &job, NULL, &p), 0);
    edist_pattern *ready, *down, *any_exit;
    static const char rp[] = "ready", dp[] = "{'DOWN', _, process, _, noconnection}",
                      ep[] = "{'EXIT', _, _}";
    assert_int_equal(edist_pattern_compile(rp, sizeof rp - 1, &ready, &pe), 0);
    assert_int_equal(edist_pattern_compile(dp, sizeof dp - 1, &down, &pe), 0);
    assert_int_equal(edist_pattern_compile(ep, sizeof ep - 1, &any_exit, &pe), 0);
    assert_int_equal(edist_receive(ready, NULL, 10000, &m), 0);
    /* a's going takes down the links and monitors b has of its
     * processes in one pass: the monitor's DOWN comes, and with it the
     * link's noconnection exit if b still held the link p undid */
    edist_ref mref;
    assert_int_equal(edist_monitor(p, &mref), 0);
    edist_node_stop(a);
    assert_int_equal(edist_receive(down, NULL, 10000, &m), 0);
    assert_int_equal(edist_receive(any_exit, NULL, 300, &m), EDIST_ETIMEDOUT);
    edist_pattern_free(ready);
    edist_pattern_free(down);
    edist_pattern_free(any_exit);
    edist_proc_detach_thread(NULL, 0);
    edist_node_stop(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clash_with_resolver),
        cmocka_unit_test(test_locks),
        cmocka_unit_test(test_auto_connect_bound),
        cmocka_unit_test(test_auto_connect_order),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
