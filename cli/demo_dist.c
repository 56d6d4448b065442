/* SPDX-License-Identifier: Apache-2.0 */
/* `edist demo`, the distributed part: a private port mapper, node1 in this
 * process, node2 as a child process whose stdout is relayed, and an erl node
 * when erl is installed; then ping, node(), nodes(), remote spawn, messages,
 * registered names, rpc, links, monitors and a killed node, each step
 * checked. Every child is ended by its PID (and gets SIGKILL should this
 * process die first: PR_SET_PDEATHSIG). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "cli.h"
#include "demo.h"
#include "edist/edist.h"

#define COOKIE "demo"
#define NODE1 "node1@localhost"
#define NODE2 "node2@localhost"
#define ERL1 "erl1@localhost"
#define WAIT_MS 5000

/* ---- what children print, and node events, in one bounded log ----------- */

#define LOG_BYTES (64 * 1024)
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t log_cv = PTHREAD_COND_INITIALIZER;
static char log_text[LOG_BYTES];
static size_t log_len;

static void log_add(const char *who, const char *line, size_t len)
{
    pthread_mutex_lock(&log_mu);
    printf("         %s| %.*s\n", who, (int)len, line);
    fflush(stdout);
    if (log_len + len + 2 < LOG_BYTES) {
        memcpy(log_text + log_len, line, len);
        log_len += len;
        log_text[log_len++] = '\n';
        log_text[log_len] = '\0';
    }
    pthread_cond_broadcast(&log_cv);
    pthread_mutex_unlock(&log_mu);
}

/* Waits until a line containing `what` has been seen. */
static int log_wait(const char *what, int timeout_ms)
{
    int64_t end = (int64_t)edi_now_ms() + timeout_ms;
    pthread_mutex_lock(&log_mu);
    int found;
    while (!(found = strstr(log_text, what) != NULL)) {
        int64_t left = end - (int64_t)edi_now_ms();
        if (left <= 0)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += (time_t)(left / 1000);
        ts.tv_nsec += (long)(left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&log_cv, &log_mu, &ts);
    }
    pthread_mutex_unlock(&log_mu);
    return found;
}

typedef struct relay {
    int fd;
    const char *who;
    pthread_t thread;
    bool running;
} relay;

static void *relay_main(void *arg)
{
    relay *r = arg;
    FILE *f = fdopen(r->fd, "r");
    if (!f)
        return NULL;
    char line[1024];
    while (fgets(line, sizeof line, f))
        log_add(r->who, line, strcspn(line, "\n"));
    fclose(f);
    return NULL;
}

/* ---- children ------------------------------------------------------------ */

typedef struct child {
    pid_t pid;
    relay out;
} child;

/* fork + exec argv (ERL_EPMD_PORT is set in our environment before any
 * thread exists, so the child needs no allocation between fork and exec);
 * its stdout relayed when who. */
static int child_start(child *c, char *const argv[], const char *who)
{
    int p[2] = {-1, -1};
    if (who && pipe2(p, O_CLOEXEC) != 0)
        return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(who ? p[1] : null, 1);
        dup2(null, 2);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execvp(argv[0], argv);
        _exit(127);
    }
    c->pid = pid;
    if (who) {
        close(p[1]);
        c->out.fd = p[0];
        c->out.who = who;
        c->out.running =
            pthread_create(&c->out.thread, NULL, relay_main, &c->out) == 0;
        if (!c->out.running)
            close(p[0]);
    }
    return 0;
}

/* Ends the child by its PID (if still there) and reaps it. */
static void child_end(child *c, int sig)
{
    if (c->pid > 0) {
        kill(c->pid, sig);
        waitpid(c->pid, NULL, 0);
        c->pid = -c->pid; /* keep it for the report */
    }
    if (c->out.running) {
        pthread_join(c->out.thread, NULL);
        c->out.running = false;
    }
}

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    uint16_t port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static bool port_answers(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* ---- terms ---------------------------------------------------------------- */

/* The printed form of a term view, in a rotating static buffer. */
static const char *show(const void *term, size_t len)
{
    static char out[4][512];
    static int next;
    char *o = out[next++ & 3];
    edist_buf b;
    edist_buf_init(&b);
    /* node1 is the shell's node: its pids print as <0.I.S>, as erl does. */
    static const edist_text_opts shell_node = {.local_node = NODE1};
    if (edist_term_print(term, len, &b, &shell_node) == 0)
        snprintf(o, 512, "%s", edist_buf_cstr(&b));
    else
        snprintf(o, 512, "(unprintable)");
    edist_buf_free(&b);
    return o;
}

static const char *show_pid(edist_procid p)
{
    edist_buf b;
    edist_buf_init(&b);
    edist_enc_procid(&b, p);
    const char *s = show(b.data, b.len);
    edist_buf_free(&b);
    return s;
}

/* receive Pattern after timeout: the pattern text with bound variables
 * given as (name, encoded term) pairs; *value gets the printed capture of
 * `want` (or the whole message when want is NULL). 1 matched, 0 not. */
static int receive_match(const char *pattern, const char *bind_name,
                         const edist_buf *bind, const char *want,
                         char *value, size_t cap, int timeout_ms)
{
    edist_pattern *pat = NULL;
    edist_parse_error perr;
    value[0] = '\0';
    if (edist_pattern_compile(pattern, strlen(pattern), &pat, &perr) != 0) {
        snprintf(value, cap, "bad pattern: %s", perr.message);
        return 0;
    }
    edist_term_view vars[16];
    memset(vars, 0, sizeof vars);
    int matched = 0;
    if (edist_pattern_var_count(pat) <= 16) {
        if (bind_name) {
            int i = edist_pattern_var_index(pat, bind_name);
            if (i >= 0)
                vars[i] = (edist_term_view){bind->data, bind->len};
        }
        edist_term_view msg;
        if (edist_receive(pat, vars, timeout_ms, &msg) == 0) {
            matched = 1;
            int i = want ? edist_pattern_var_index(pat, want) : -1;
            if (i >= 0)
                snprintf(value, cap, "%s", show(vars[i].ptr, vars[i].len));
            else
                snprintf(value, cap, "%s", show(msg.ptr, msg.len));
        } else {
            snprintf(value, cap, "(nothing after %d ms)", timeout_ms);
        }
    }
    edist_pattern_free(pat);
    return matched;
}

static int parse(const char *text, edist_buf *out)
{
    edist_buf_init(out);
    return edist_term_parse(text, strlen(text), out, NULL, NULL);
}

/* spawn(Node, M, F, Args) with options; prints nothing. */
static int spawn_on(const char *node, const char *m, const char *f,
                    const edist_buf *args, bool link, bool monitor,
                    edist_procid *pid, edist_ref *ref)
{
    edist_spawn_opts o = {.link = link, .monitor = monitor};
    edist_ref r;
    return edist_spawn_remote(node, m, f, args->data, args->len, &o, WAIT_MS,
                              pid, ref ? ref : &r);
}

/* rpc:call(Node, M, F, Args) as OTP 25 does it: spawn_request of
 * erpc:execute_call/4 with a monitor; the result is the DOWN reason
 * {Ref, return, Value}. 1 and the printed value, or 0 and why. */
static int rpc_call(const char *node, const char *m, const char *f,
                    const char *args_text, char *value, size_t cap)
{
    edist_buf args, call, refb;
    edist_ref ref, req;
    edist_procid pid;
    int ok = 0;
    parse(args_text, &args);
    edist_buf_init(&call);
    edist_buf_init(&refb);
    edist_make_ref(&ref);
    edist_enc_list(&call, 4);
    edist_enc_ref(&call, &ref);
    edist_enc_atomz(&call, m);
    edist_enc_atomz(&call, f);
    edist_enc_raw(&call, args.data, args.len);
    edist_enc_nil(&call);
    int rc = spawn_on(node, "erpc", "execute_call", &call, false, true, &pid,
                      &req);
    if (rc) {
        snprintf(value, cap, "{badrpc,%s}", edist_strerror(rc));
    } else {
        edist_enc_ref(&refb, &req);
        char reason[512];
        if (receive_match("{'DOWN', Req, process, _, Reason}", "Req", &refb,
                          "Reason", reason, sizeof reason, WAIT_MS)) {
            /* {Ref, return, Value}: take Value's text after "return,". */
            const char *p = strstr(reason, ",return,");
            size_t n = p ? strlen(p + 8) : 0;
            if (p && n > 0 && reason[strlen(reason) - 1] == '}') {
                snprintf(value, cap, "%.*s", (int)(n - 1), p + 8);
                ok = 1;
            } else {
                snprintf(value, cap, "{badrpc,%s}", reason);
            }
        } else {
            snprintf(value, cap, "{badrpc,timeout}");
        }
    }
    edist_buf_free(&args);
    edist_buf_free(&call);
    edist_buf_free(&refb);
    return ok;
}

/* ---- node1's callbacks ------------------------------------------------- */

static void node1_log(void *user, edist_log_level level, const char *line)
{
    (void)user;
    if (level <= EDIST_LOG_WARNING)
        fprintf(stderr, "         node1 log: %s\n", line);
}

static void node1_output(void *user, const char *line, size_t len)
{
    (void)user;
    log_add(NODE1, line, len);
}

static void node1_event(void *user, const edist_node_event *ev)
{
    (void)user;
    char line[600];
    int n = snprintf(line, sizeof line, "%s %s%s%s%s", ev->up ? "nodeup" : "nodedown",
                     ev->node, ev->up ? "" : " (", ev->up ? "" : ev->reason ? ev->reason : "?",
                     ev->up ? "" : ")");
    if (n > 0)
        log_add("node1 monitor_nodes", line,
                (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static bool in_list(const edist_node_list *l, const char *name)
{
    for (size_t i = 0; i < l->count; i++)
        if (!strcmp(l->names[i], name))
            return true;
    return false;
}

static void list_text(const edist_node_list *l, char *out, size_t cap)
{
    size_t o = (size_t)snprintf(out, cap, "[");
    for (size_t i = 0; i < l->count && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? "," : "",
                              l->names[i]);
    if (o < cap)
        snprintf(out + o, cap - o, "]");
}

/* ---- the walkthrough ------------------------------------------------------- */

static const char *self_exe(void)
{
    static char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0)
        return "edist";
    path[n] = '\0';
    return path;
}

static bool have_erl(void)
{
    return system("command -v erl >/dev/null 2>&1 && command -v epmd "
                  ">/dev/null 2>&1") == 0;
}

#define ERL_LOOP                                                              \
    "register(shell, self()), io:format(\"erl1 ready~n\"),"                  \
    "L = fun Loop() -> receive"                                               \
    " {From, ping, N} -> From ! {ping_result, net_adm:ping(N)}, Loop();"      \
    " {From, Msg} -> io:format(\"shell on ~s got ~w~n\", [node(), Msg]),"     \
    " From ! {shell, node(), Msg}, Loop()"                                    \
    " end end, L()."

/* The chapter's global steps: a name registered on node2 found from node1
 * and erl1, a message sent to it by name; erl1, which only node1 pinged,
 * meets node2 through global. */
static void global_steps(bool erl)
{
    char v[1024], cmd[512];
    edist_buf name;
    parse("{todo_list, <<\"bob\">>}", &name);
    bool ok = rpc_call(NODE2, "edist_demo", "global_register", "[{todo_list, <<\"bob\">>}]", v,
                       sizeof v) && !strcmp(v, "yes");
    demo_step(ok, "(node1)> rpc:call('" NODE2 "', edist_demo, global_register, [{todo_list, <<\"bob\">>}]).", v);
    /* node2 may have registered before it synced with node1: sync first,
     * as an Erlang shell would */
    int rc = edist_global_sync(WAIT_MS);
    demo_step(rc == 0, "(node1)> global:sync().", rc == 0 ? "ok" : edist_strerror(rc));
    edist_procid holder = EDIST_PROCID_NULL;
    rc = edist_global_whereis_name(name.data, name.len, &holder);
    ok = rc == 0 && !strcmp(edist_procid_node(holder), NODE2);
    demo_step(ok, "(node1)> global:whereis_name({todo_list, <<\"bob\">>}).",
              rc == 0 ? show_pid(holder) : "undefined");
    edist_buf msg;
    parse("{add, <<\"milk\">>}", &msg);
    rc = edist_global_send(name.data, name.len, msg.data, msg.len);
    demo_step(rc == 0, "(node1)> global:send({todo_list, <<\"bob\">>}, {add, <<\"milk\">>}).",
              rc == 0 ? show_pid(holder) : edist_strerror(rc));
    edist_buf_free(&msg);
    if (erl) {
        ok = false;
        for (int i = 0; i < 50 && !ok; i++) {
            ok = rpc_call(ERL1, "global", "whereis_name", "[{todo_list, <<\"bob\">>}]", v, sizeof v) &&
                 !strcmp(v, show_pid(holder));
            if (!ok)
                usleep(100000);
        }
        demo_step(ok, "(node1)> rpc:call('" ERL1 "', global, whereis_name, [{todo_list, <<\"bob\">>}]).", v);
        /* erl1 was pinged by node1 only; global's sync told it of node2 */
        ok = false;
        for (int i = 0; i < 50 && !ok; i++) {
            ok = rpc_call(ERL1, "erlang", "nodes", "[]", v, sizeof v) && strstr(v, NODE2) &&
                 strstr(v, NODE1);
            if (!ok)
                usleep(100000);
        }
        snprintf(cmd, sizeof cmd, "(node1)> rpc:call('%s', erlang, nodes, []).", ERL1);
        demo_step(ok, cmd, v);
    }
    edist_buf_free(&name);
}

static void dist_steps(edist_node *node1, bool erl)
{
    char v[1024], cmd[512];
    edist_buf b, pb;

    /* node() and is_alive() */
    const char *me = edist_node_name(node1);
    snprintf(v, sizeof v, "%s", me);
    demo_step(!strcmp(me, NODE1), "(node1)> node().", v);
    demo_step(edist_node_is_alive(node1), "(node1)> is_alive().",
              edist_node_is_alive(node1) ? "true" : "false");

    /* ping */
    int rc = edist_node_ping(node1, NODE2, WAIT_MS);
    demo_step(rc == 0, "(node1)> net_adm:ping('" NODE2 "').",
              rc == 0 ? "pong" : "pang");
    if (erl) {
        rc = edist_node_ping(node1, ERL1, WAIT_MS);
        demo_step(rc == 0, "(node1)> net_adm:ping('" ERL1 "').",
                  rc == 0 ? "pong" : "pang");
        /* and back: erl pings node1 */
        edist_buf_init(&b);
        edist_enc_tuple(&b, 3);
        edist_enc_procid(&b, edist_self());
        edist_enc_atomz(&b, "ping");
        edist_enc_atomz(&b, NODE1);
        rc = edist_send_name_node("shell", ERL1, b.data, b.len);
        edist_buf_free(&b);
        int got = rc == 0 && receive_match("{ping_result, R}", NULL, NULL, "R",
                                           v, sizeof v, WAIT_MS);
        demo_step(got && !strcmp(v, "pong"),
                  "(erl1)> net_adm:ping('" NODE1 "').", v);
    }

    /* nodes() */
    edist_node_list l = {0};
    bool ok = false;
    for (int i = 0; i < 50 && !ok; i++) {
        edist_node_list_free(&l);
        memset(&l, 0, sizeof l);
        if (edist_node_nodes(node1, EDIST_NODES_VISIBLE, &l) == 0)
            ok = in_list(&l, NODE2) && (!erl || in_list(&l, ERL1));
        if (!ok)
            usleep(20000);
    }
    list_text(&l, v, sizeof v);
    edist_node_list_free(&l);
    demo_step(ok, "(node1)> nodes().", v);
    ok = rpc_call(NODE2, "erlang", "nodes", "[]", v, sizeof v);
    demo_step(ok && strstr(v, NODE1),
              "(node1)> rpc:call('" NODE2 "', erlang, nodes, []).", v);

    /* remote spawn printing on node2 */
    edist_procid pid;
    parse("[]", &b);
    rc = spawn_on(NODE2, "edist_demo", "hello", &b, false, false, &pid, NULL);
    edist_buf_free(&b);
    ok = rc == 0 && log_wait("Hello from " NODE2, WAIT_MS);
    snprintf(v, sizeof v, "%s, and node2 printed \"Hello from " NODE2 "\"",
             rc == 0 ? show_pid(pid) : edist_strerror(rc));
    demo_step(ok, "(node1)> spawn('" NODE2 "', edist_demo, hello, []).",
              ok ? v : "no Hello from node2");

    /* a remote process sends {response, 3} back */
    edist_buf_init(&b);
    edist_enc_list(&b, 2);
    edist_enc_procid(&b, edist_self());
    parse("{response, 3}", &pb);
    edist_enc_raw(&b, pb.data, pb.len);
    edist_enc_nil(&b);
    edist_buf_free(&pb);
    rc = spawn_on(NODE2, "edist_demo", "reply", &b, false, false, &pid, NULL);
    edist_buf_free(&b);
    snprintf(cmd, sizeof cmd, "%s",
             "(node1)> spawn('" NODE2 "', edist_demo, reply, [self(), "
             "{response, 3}]).");
    demo_step(rc == 0, cmd, rc == 0 ? show_pid(pid) : edist_strerror(rc));
    ok = receive_match("{response, X}", NULL, NULL, NULL, v, sizeof v, WAIT_MS);
    demo_step(ok && !strcmp(v, "{response,3}"),
              "(node1)> receive {response, X} -> {response, X} end.", v);

    /* the same registered name on several nodes */
    rc = edist_register("shell", edist_self());
    demo_step(rc == 0, "(node1)> register(shell, self()).",
              rc == 0 ? "true" : edist_strerror(rc));
    const char *targets[2] = {NODE2, ERL1};
    for (int t = 0; t < (erl ? 2 : 1); t++) {
        edist_buf_init(&b);
        edist_enc_tuple(&b, 2);
        edist_enc_procid(&b, edist_self());
        edist_enc_atomz(&b, "hi");
        rc = edist_send_name_node("shell", targets[t], b.data, b.len);
        edist_buf_free(&b);
        edist_buf_init(&b);
        edist_enc_atomz(&b, targets[t]);
        ok = rc == 0 && receive_match("{shell, N, hi}", "N", &b, NULL, v,
                                      sizeof v, WAIT_MS);
        edist_buf_free(&b);
        snprintf(cmd, sizeof cmd,
                 "(node1)> {shell, '%s'} ! {self(), hi}, receive R -> R end.",
                 targets[t]);
        demo_step(ok, cmd, v);
    }
    edist_unregister("shell");

    /* rpc */
    ok = rpc_call(NODE2, "edist_demo", "add", "[1, 2]", v, sizeof v);
    demo_step(ok && !strcmp(v, "3"),
              "(node1)> rpc:call('" NODE2 "', edist_demo, add, [1, 2]).", v);
    if (erl) {
        ok = rpc_call(ERL1, "erlang", "node", "[]", v, sizeof v);
        demo_step(ok && !strcmp(v, ERL1),
                  "(node1)> rpc:call('" ERL1 "', erlang, node, []).", v);
        ok = rpc_call(ERL1, "lists", "reverse", "[[1, 2, 3]]", v, sizeof v);
        demo_step(ok && !strcmp(v, "[3,2,1]"),
                  "(node1)> rpc:call('" ERL1 "', lists, reverse, [[1, 2, 3]]).",
                  v);
    }

    /* process groups: pg's default scope is shared by every node */
    parse("traders", &b);
    rc = edist_pg_join(b.data, b.len, edist_self());
    demo_step(rc == 0, "(node1)> pg:join(traders, self()).", rc ? edist_strerror(rc) : "ok");
    const char *pg_nodes[] = {NODE2, ERL1};
    for (int t = 0; rc == 0 && t < (erl ? 2 : 1); t++) {
        /* eventually consistent: the join reaches the others in a moment */
        ok = false;
        for (int i = 0; i < 50 && !ok; i++) {
            ok = rpc_call(pg_nodes[t], "pg", "get_members", "[traders]", v, sizeof v) &&
                 v[0] == '[' && !strchr(v, ',') && strchr(v, '<');
            if (!ok)
                usleep(100000);
        }
        snprintf(cmd, sizeof cmd, "(node1)> rpc:call('%s', pg, get_members, [traders]).",
                 pg_nodes[t]);
        demo_step(ok, cmd, v);
    }
    rc = edist_pg_leave(b.data, b.len, edist_self());
    demo_step(rc == 0, "(node1)> pg:leave(traders, self()).", rc ? edist_strerror(rc) : "ok");
    edist_buf_free(&b);

    global_steps(erl);

    /* a link and a monitor across nodes, firing on a crash */
    edist_trap_exit(true);
    parse("[boom]", &b);
    rc = spawn_on(NODE2, "edist_demo", "crash", &b, true, false, &pid, NULL);
    edist_buf_init(&pb);
    edist_enc_procid(&pb, pid);
    ok = rc == 0 && receive_match("{'EXIT', P, boom}", "P", &pb, NULL, v,
                                  sizeof v, WAIT_MS);
    edist_buf_free(&pb);
    demo_step(ok,
              "(node1)> process_flag(trap_exit, true), spawn_link('" NODE2
              "', edist_demo, crash, [boom]), receive E -> E end.",
              v);
    edist_ref ref;
    rc = spawn_on(NODE2, "edist_demo", "crash", &b, false, true, &pid, &ref);
    edist_buf_free(&b);
    edist_buf_init(&pb);
    edist_enc_ref(&pb, &ref);
    ok = rc == 0 && receive_match("{'DOWN', Ref, process, _, boom}", "Ref",
                                  &pb, NULL, v, sizeof v, WAIT_MS);
    edist_buf_free(&pb);
    demo_step(ok,
              "(node1)> spawn_monitor('" NODE2
              "', edist_demo, crash, [boom]), receive D -> D end.",
              v);
}

/* The last steps: node2 is killed; nodedown, and noconnection for a
 * monitor of a process there. */
static void kill_steps(edist_node *node1, child *n2)
{
    char v[1024];
    edist_buf b, pb;
    edist_procid pid;
    edist_ref ref;
    parse("[infinity]", &b);
    int rc = spawn_on(NODE2, "edist_demo", "sleep", &b, false, true, &pid, &ref);
    edist_buf_free(&b);
    demo_step(rc == 0,
              "(node1)> {P, Ref} = spawn_monitor('" NODE2
              "', edist_demo, sleep, [infinity]).",
              rc == 0 ? show_pid(pid) : edist_strerror(rc));
    char cmd[128];
    snprintf(cmd, sizeof cmd, "$ kill -KILL %ld   # node2", (long)n2->pid);
    child_end(n2, SIGKILL);
    demo_step(1, cmd, "killed");
    bool ok = log_wait("nodedown " NODE2, WAIT_MS);
    demo_step(ok, "(node1)> net_kernel:monitor_nodes(true), receive N -> N end.",
              ok ? "{nodedown," NODE2 "}" : "(no nodedown)");
    edist_buf_init(&pb);
    edist_enc_ref(&pb, &ref);
    ok = rc == 0 && receive_match("{'DOWN', Ref, process, _, noconnection}",
                                  "Ref", &pb, NULL, v, sizeof v, WAIT_MS);
    edist_buf_free(&pb);
    demo_step(ok, "(node1)> receive D = {'DOWN', Ref, process, P, _} -> D end.",
              v);
    edist_node_list l = {0};
    ok = edist_node_nodes(node1, EDIST_NODES_VISIBLE, &l) == 0 &&
         !in_list(&l, NODE2);
    list_text(&l, v, sizeof v);
    edist_node_list_free(&l);
    demo_step(ok, "(node1)> nodes().", v);
    /* node2's global name went with it */
    parse("{todo_list, <<\"bob\">>}", &b);
    edist_procid gone;
    rc = edist_global_whereis_name(b.data, b.len, &gone);
    edist_buf_free(&b);
    demo_step(rc == EDIST_ENOTFOUND, "(node1)> global:whereis_name({todo_list, <<\"bob\">>}).",
              rc == EDIST_ENOTFOUND ? "undefined" : rc == 0 ? show_pid(gone) : edist_strerror(rc));
}

int demo_dist(bool pause)
{
    uint16_t port = free_port();
    bool erl = have_erl();
    child epmd = {0}, n2 = {0}, e1 = {0};
    char portarg[16];
    snprintf(portarg, sizeof portarg, "%u", port);
    /* Every node of the demo, erl included, uses the private port mapper
     * (this process has no other thread yet: setenv is safe). */
    setenv("ERL_EPMD_PORT", portarg, 1);
    const char *exe = self_exe();
    int failed_before = demo_failed();

    printf("  (a private port mapper on port %s: ERL_EPMD_PORT=%s for every "
           "node)\n", portarg, portarg);
    char *epmd_argv[] = {(char *)exe, "epmd", "-port", portarg, "-address",
                         "127.0.0.1", NULL};
    int rc = child_start(&epmd, epmd_argv, NULL);
    bool ok = rc == 0;
    for (int i = 0; ok && i < 200 && !port_answers(port); i++)
        usleep(10000);
    ok = ok && port_answers(port);
    char v[256];
    snprintf(v, sizeof v, "listening (pid %ld)", (long)epmd.pid);
    demo_step(ok, "$ edist epmd -port P -address 127.0.0.1 &", ok ? v : "did not start");
    if (!ok)
        goto out;

    char *n2_argv[] = {(char *)exe, "demo", "--node2", portarg, NULL};
    printf("  (node2 runs as `edist demo --node2 %s`: what `edist node` runs,"
           " plus a process registered as shell)\n", portarg);
    rc = child_start(&n2, n2_argv, NODE2);
    if (erl) {
        char *erl_argv[] = {"erl", "-sname", ERL1, "-setcookie", COOKIE,
                            "-noshell", "-start_epmd", "false", "-kernel",
                            "inet_dist_use_interface", "{127,0,0,1}",
                            "-kernel", "start_pg", "true", "-eval",
                            ERL_LOOP, NULL};
        if (child_start(&e1, erl_argv, ERL1) != 0)
            erl = false;
    } else {
        puts("  (erl is not installed: the steps with an erl node are "
             "skipped)");
    }

    edist_node_config cfg;
    edist_node_config_init(&cfg);
    cfg.name = NODE1;
    cfg.cookie = COOKIE;
    cfg.epmd_port = port;
    cfg.start_epmd = false;
    cfg.listen_address = "127.0.0.1";
    cfg.log = node1_log;
    cfg.log_level = EDIST_LOG_WARNING;
    cfg.output = node1_output;
    edist_node *node1 = NULL;
    rc = edist_node_start(&cfg, &node1);
    snprintf(v, sizeof v, "%s ready (in this process, pid %ld)",
             rc == 0 ? edist_node_name(node1) : edist_strerror(rc),
             (long)getpid());
    demo_step(rc == 0, "$ edist node --sname " NODE1 " --cookie " COOKIE, v);
    if (rc)
        goto out;
    edist_node_monitor_nodes(node1, EDIST_NODES_VISIBLE, node1_event, NULL,
                             NULL);

    ok = log_wait(NODE2 " ready", 10000);
    snprintf(v, sizeof v, "ready (pid %ld, stdout relayed below as %s|)",
             (long)n2.pid, NODE2);
    demo_step(ok, "$ edist node --sname " NODE2 " --cookie " COOKIE " &",
              ok ? v : "did not get ready");
    if (erl) {
        bool eok = log_wait("erl1 ready", 20000);
        snprintf(v, sizeof v, "ready (pid %ld)", (long)e1.pid);
        demo_step(eok, "$ erl -sname " ERL1 " -setcookie " COOKIE " &",
                  eok ? v : "did not get ready");
        erl = eok;
    }

    if (ok && pause) {
        printf("  (paused with the nodes up: try ERL_EPMD_PORT=%s epmd -names;"
               " press Enter to go on)\n", portarg);
        fflush(stdout);
        char line[64];
        if (!fgets(line, sizeof line, stdin))
            clearerr(stdin);
    }
    edist_procid self;
    if (ok && edist_proc_attach_thread(edist_node_runtime(node1), 0, &self) == 0) {
        snprintf(v, sizeof v, "%s", show_pid(self));
        demo_step(1, "(node1)> self().", v);
        dist_steps(node1, erl);
        kill_steps(node1, &n2);
        edist_proc_detach_thread(NULL, 0);
    } else if (ok) {
        demo_step(0, "(node1)> self().", "could not attach");
    }
    edist_node_stop(node1);
out:
    child_end(&n2, SIGKILL);
    child_end(&e1, SIGKILL);
    child_end(&epmd, SIGTERM);
    printf("  (ended by PID: node2 %ld, erl1 %ld, port mapper %ld)\n",
           (long)-n2.pid, (long)-e1.pid, (long)-epmd.pid);
    return demo_failed() - failed_before;
}

/* ---- node2: `edist demo --node2 EPMD_PORT` ---------------------------------
 * An edist node as `edist node --sname node2@localhost --cookie demo` runs
 * it, plus a process registered as `shell` that answers {From, Msg} with
 * {shell, node(), Msg}, so that the demo can show a send to {shell, Node}
 * reaching the right node. */

static edist_node *node2;

static void node2_output(void *user, const char *line, size_t len)
{
    (void)user;
    printf("%.*s\n", (int)len, line);
    fflush(stdout);
}

static void shell_main(void *arg)
{
    (void)arg;
    for (;;) {
        edist_term_view msg;
        if (edist_receive(NULL, NULL, -1, &msg) != 0)
            continue;
        edist_cursor c;
        uint32_t n;
        edist_procid from;
        edist_term_view m;
        edist_cursor_init(&c, msg.ptr, msg.len);
        if (edist_dec_tuple(&c, &n) != 0 || n != 2 ||
            edist_dec_procid(&c, &from) != 0 || edist_dec_term(&c, &m) != 0)
            continue;
        printf("shell on %s got %s\n", edist_node_name(node2),
               show(m.ptr, m.len));
        fflush(stdout);
        edist_buf b;
        edist_buf_init(&b);
        edist_enc_tuple(&b, 3);
        edist_enc_atomz(&b, "shell");
        edist_enc_atomz(&b, edist_node_name(node2));
        edist_enc_raw(&b, m.ptr, m.len);
        edist_send(from, b.data, b.len);
        edist_buf_free(&b);
    }
}

int demo_node2(const char *epmd_port)
{
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    edist_node_config cfg;
    edist_node_config_init(&cfg);
    cfg.name = NODE2;
    cfg.cookie = COOKIE;
    cfg.epmd_port = (uint16_t)atoi(epmd_port);
    cfg.start_epmd = false;
    cfg.listen_address = "127.0.0.1";
    cfg.log = node1_log;
    cfg.log_level = EDIST_LOG_ERROR;
    cfg.output = node2_output;
    int rc = edist_node_start(&cfg, &node2);
    if (rc) {
        cli_error("demo: node2", rc);
        return 1;
    }
    edist_runtime *rt = edist_node_runtime(node2);
    edist_procid pid;
    rc = edist_runtime_spawn(rt, shell_main, NULL, NULL, &pid);
    if (rc == 0)
        rc = edist_runtime_register(rt, "shell", pid);
    if (rc) {
        cli_error("demo: node2: shell", rc);
        edist_node_stop(node2);
        return 1;
    }
    printf("%s ready (listening on port %u)\n", edist_node_name(node2),
           edist_node_listen_port(node2));
    fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    edist_node_stop(node2);
    return 0;
}
