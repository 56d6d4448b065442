/* SPDX-License-Identifier: Apache-2.0 */
/* Port mapper server, in-process on a free loopback port, driven by our
 * client and by raw sockets: the protocol as epmd answers it, and what it
 * does with garbage, truncated and oversized requests, silent connections,
 * connection floods, KILL/STOP policy, and its memory use. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "control/epmd_client.h"
#include "control/epmd_proto.h"
#include "control/epmd_server.h"
#include "edist/error.h"

#define PACKET_TIMEOUT_MS 300
#define MAX_CONNECTIONS 64
#define IO_TIMEOUT_MS 5000

/* ---- a server on its own thread, with its log captured ------------------ */

#define LOG_KEEP 512

struct fixture {
    edi_epmd_server *srv;
    pthread_t thread;
    uint16_t port;
    int run_rc;
    pthread_mutex_t lock;
    char *lines[LOG_KEEP];
    unsigned n_lines; /* total ever logged */
    atomic_int run_done; /* -- issue 8: the loop has returned */
};

static void capture(void *user, edist_log_level level, const char *line)
{
    (void)level;
    struct fixture *f = user;
    pthread_mutex_lock(&f->lock);
    free(f->lines[f->n_lines % LOG_KEEP]);
    f->lines[f->n_lines % LOG_KEEP] = strdup(line);
    f->n_lines++;
    pthread_mutex_unlock(&f->lock);
}

static unsigned log_count(struct fixture *f)
{
    pthread_mutex_lock(&f->lock);
    unsigned n = f->n_lines;
    pthread_mutex_unlock(&f->lock);
    return n;
}

/* Lines logged since `since` that contain `what`. */
static unsigned log_matches(struct fixture *f, unsigned since, const char *what)
{
    unsigned hits = 0;
    pthread_mutex_lock(&f->lock);
    unsigned from = f->n_lines > LOG_KEEP && since < f->n_lines - LOG_KEEP
                        ? f->n_lines - LOG_KEEP
                        : since;
    for (unsigned i = from; i < f->n_lines; i++)
        if (strstr(f->lines[i % LOG_KEEP], what))
            hits++;
    pthread_mutex_unlock(&f->lock);
    return hits;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int64_t now_ms(void)
{
    return (int64_t)edi_now_ms();
}

/* Waits (up to ms) until the log has a line since `since` containing what. */
static int wait_log(struct fixture *f, unsigned since, const char *what, int ms)
{
    for (int t = 0; t < ms; t += 10) {
        if (log_matches(f, since, what))
            return 1;
        sleep_ms(10);
    }
    return 0;
}

static void *run_thread(void *arg)
{
    struct fixture *f = arg;
    f->run_rc = edi_epmd_server_run(f->srv);
    return NULL;
}

static struct fixture *start(unsigned max_conns, int relaxed)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    pthread_mutex_init(&f->lock, NULL);
    edi_epmd_server_config cfg = {
        .port = -1,
        .addresses = "127.0.0.1",
        .max_connections = max_conns,
        .packet_timeout_ms = PACKET_TIMEOUT_MS,
        .relaxed_command_check = relaxed,
        .log = {capture, f, EDIST_LOG_DEBUG},
    };
    int rc = edi_epmd_server_start(&cfg, &f->srv);
    assert_int_equal(rc, 0);
    f->port = edi_epmd_server_port(f->srv);
    assert_true(f->port > 0);
    assert_int_equal(pthread_create(&f->thread, NULL, run_thread, f), 0);
    return f;
}

static void stop(struct fixture *f)
{
    edi_epmd_server_stop(f->srv);
    pthread_join(f->thread, NULL);
    assert_int_equal(f->run_rc, 0);
    edi_epmd_server_free(f->srv);
    for (unsigned i = 0; i < LOG_KEEP; i++)
        free(f->lines[i]);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static int setup(void **state)
{
    *state = start(MAX_CONNECTIONS, 0);
    return 0;
}

static int teardown(void **state)
{
    stop(*state);
    return 0;
}

/* ---- raw sockets -------------------------------------------------------- */

static int raw_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void raw_send(int fd, const void *buf, size_t len)
{
    assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Reads until the server closes (returns the byte count) or timeout_ms
 * passes (returns -1). */
static ssize_t read_to_close(int fd, uint8_t *buf, size_t cap, int timeout_ms)
{
    size_t got = 0;
    int64_t end = now_ms() + timeout_ms;
    for (;;) {
        int64_t left = end - now_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        ssize_t n = recv(fd, buf + got, cap - got, 0);
        if (n < 0 && errno == ECONNRESET)
            return (ssize_t)got;
        if (n <= 0)
            return n < 0 ? -1 : (ssize_t)got;
        got += (size_t)n;
        if (got == cap)
            return (ssize_t)got;
    }
}

/* One request on a fresh connection; the reply until the server closes. */
static ssize_t exchange(uint16_t port, const void *req, size_t len,
                        uint8_t *out, size_t cap)
{
    int fd = raw_connect(port);
    raw_send(fd, req, len);
    ssize_t n = read_to_close(fd, out, cap, IO_TIMEOUT_MS);
    close(fd);
    return n;
}

static size_t alive2(uint8_t *buf, size_t cap, const char *name,
                     size_t name_len, uint16_t port, uint16_t high,
                     uint16_t low)
{
    edi_epmd_node_fields f = {.port = port,
                              .node_type = EDI_EPMD_NODE_TYPE_NORMAL,
                              .highest_version = high,
                              .lowest_version = low,
                              .name = (const uint8_t *)name,
                              .name_len = name_len};
    int n = edi_epmd_encode_alive2_req(buf, cap, &f);
    assert_true(n > 0);
    return (size_t)n;
}

static char *names_text(struct fixture *f)
{
    char *text = NULL;
    size_t len;
    uint32_t port = 0;
    int rc =
        edi_epmd_names("127.0.0.1", f->port, IO_TIMEOUT_MS, &port, &text, &len);
    assert_int_equal(rc, 0);
    assert_int_equal(port, f->port);
    assert_int_equal(strlen(text), len);
    return text;
}

static int reg(struct fixture *f, const char *name, uint16_t lport,
               uint32_t *creation)
{
    edi_epmd_registration r = {.name = name, .listen_port = lport};
    int fd = -1;
    int rc = edi_epmd_register("127.0.0.1", f->port, &r, IO_TIMEOUT_MS,
                               creation, &fd);
    assert_int_equal(rc, 0);
    return fd;
}

static void wait_unregistered(struct fixture *f, const char *name)
{
    edi_epmd_node_info info;
    for (int t = 0; t < 2000; t += 10) {
        if (edi_epmd_port_please("127.0.0.1", f->port, name, IO_TIMEOUT_MS,
                                 &info) == EDIST_ENOTFOUND)
            return;
        sleep_ms(10);
    }
    fail_msg("%s still registered", name);
}

static long rss_kb(void)
{
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (fp && fgets(line, sizeof line, fp))
        if (!strncmp(line, "VmRSS:", 6))
            kb = strtol(line + 6, NULL, 10);
    if (fp)
        fclose(fp);
    return kb;
}

/* ---- protocol ----------------------------------------------------------- */

static void test_register_lookup_names(void **state)
{
    struct fixture *f = *state;
    uint32_t c1;
    int fd = reg(f, "edt_alpha", 41001, &c1);
    assert_true(c1 >= 4);

    edi_epmd_node_info info;
    assert_int_equal(
        edi_epmd_port_please(NULL, f->port, "edt_alpha", IO_TIMEOUT_MS, &info),
        0);
    assert_int_equal(info.port, 41001);
    assert_int_equal(info.node_type, EDI_EPMD_NODE_TYPE_NORMAL);
    assert_int_equal(info.highest_version, 6);
    assert_int_equal(info.lowest_version, 6);
    assert_string_equal(info.name, "edt_alpha");
    assert_int_equal(info.extra_len, 0);

    char *text = names_text(f);
    assert_string_equal(text, "name edt_alpha at port 41001\n");
    free(text);

    edi_epmd_server_stats st;
    edi_epmd_server_get_stats(f->srv, &st);
    assert_int_equal(st.registered_nodes, 1);

    /* Closing the registration's connection unregisters, and is logged. */
    unsigned since = log_count(f);
    edi_epmd_unregister(fd);
    wait_unregistered(f, "edt_alpha");
    assert_true(wait_log(f, since, "unregistered 'edt_alpha'", 3000));
    text = names_text(f);
    assert_string_equal(text, "");
    free(text);
}

static void test_duplicate_refused_and_creations_differ(void **state)
{
    struct fixture *f = *state;
    uint32_t c1, c2, c3, dummy;
    int fd = reg(f, "edt_dup", 41002, &c1);

    unsigned since = log_count(f);
    edi_epmd_registration r = {.name = "edt_dup", .listen_port = 41003};
    int fd2 = -1;
    assert_int_equal(
        edi_epmd_register(NULL, f->port, &r, IO_TIMEOUT_MS, &dummy, &fd2),
        EDIST_EEXIST);
    assert_true(wait_log(f, since, "name already registered", 3000));

    /* The refusal on the wire is exactly epmd's: result 1, creation 99. */
    uint8_t req[64], out[16];
    size_t n = alive2(req, sizeof req, "edt_dup", 7, 41003, 6, 6);
    ssize_t got = exchange(f->port, req, n, out, sizeof out);
    assert_int_equal(got, 6);
    assert_int_equal(out[0], EDI_EPMD_ALIVE2_X_RESP);
    assert_int_equal(out[1], 1);
    assert_int_equal(out[5], 99);

    /* Still the first registration's port. */
    edi_epmd_node_info info;
    assert_int_equal(
        edi_epmd_port_please(NULL, f->port, "edt_dup", IO_TIMEOUT_MS, &info),
        0);
    assert_int_equal(info.port, 41002);

    edi_epmd_unregister(fd);
    wait_unregistered(f, "edt_dup");
    fd = reg(f, "edt_dup", 41002, &c2);
    edi_epmd_unregister(fd);
    wait_unregistered(f, "edt_dup");
    fd = reg(f, "edt_dup", 41002, &c3);
    edi_epmd_unregister(fd);
    assert_true(c1 != c2 && c2 != c3 && c1 != c3);
    assert_int_equal(c2, c1 + 1); /* epmd's per-name counter */
}

static void test_old_version_gets_alive2_resp(void **state)
{
    struct fixture *f = *state;
    uint8_t req[64], out[16];
    uint16_t creations[2];
    for (int i = 0; i < 2; i++) {
        size_t n = alive2(req, sizeof req, "edt_old", 7, 41004, 5, 5);
        int fd = raw_connect(f->port);
        raw_send(fd, req, n);
        size_t got = 0;
        while (got < 4) {
            ssize_t r = recv(fd, out + got, sizeof out - got, 0);
            assert_true(r > 0);
            got += (size_t)r;
        }
        assert_int_equal(got, 4);
        assert_int_equal(out[0], EDI_EPMD_ALIVE2_RESP);
        assert_int_equal(out[1], 0);
        creations[i] = (uint16_t)(out[2] << 8 | out[3]);
        assert_in_range(creations[i], 1, 3);
        close(fd);
        wait_unregistered(f, "edt_old");
    }
    assert_int_not_equal(creations[0], creations[1]);
}

static void test_names_newest_first_and_dump(void **state)
{
    struct fixture *f = *state;
    uint32_t c;
    int a = reg(f, "edt_first", 41010, &c);
    int b = reg(f, "edt_second", 41011, &c);
    char *text = names_text(f);
    assert_string_equal(
        text, "name edt_second at port 41011\nname edt_first at port 41010\n");
    free(text);

    char *dump = NULL;
    size_t len = 0;
    assert_int_equal(
        edi_epmd_dump(NULL, f->port, IO_TIMEOUT_MS, NULL, &dump, &len), 0);
    /* Each dump line ends with "\n\0", as epmd sends them. */
    assert_true(len > 0 && dump[len - 1] == '\0' && dump[len - 2] == '\n');
    assert_non_null(
        strstr(dump, "active name     <edt_second> at port 41011, fd = "));
    free(dump);

    edi_epmd_unregister(b);
    wait_unregistered(f, "edt_second");
    assert_int_equal(
        edi_epmd_dump(NULL, f->port, IO_TIMEOUT_MS, NULL, &dump, &len), 0);
    int found_old = 0;
    for (size_t i = 0; i < len; i += strlen(dump + i) + 1)
        if (strstr(dump + i, "old/unused name <edt_second>, port = 41011"))
            found_old = 1;
    assert_true(found_old);
    free(dump);
    edi_epmd_unregister(a);
    wait_unregistered(f, "edt_first");
}

static void test_extra_and_hidden_round_trip(void **state)
{
    struct fixture *f = *state;
    uint8_t extra[EDI_EPMD_MAX_EXTRA_BYTES];
    for (size_t i = 0; i < sizeof extra; i++)
        extra[i] = (uint8_t)i;
    edi_epmd_registration r = {.name = "edt_extra",
                               .listen_port = 41020,
                               .node_type = EDI_EPMD_NODE_TYPE_HIDDEN,
                               .extra = extra,
                               .extra_len = sizeof extra};
    uint32_t c;
    int fd = -1;
    assert_int_equal(
        edi_epmd_register(NULL, f->port, &r, IO_TIMEOUT_MS, &c, &fd), 0);
    edi_epmd_node_info info;
    assert_int_equal(
        edi_epmd_port_please(NULL, f->port, "edt_extra", IO_TIMEOUT_MS, &info),
        0);
    assert_int_equal(info.node_type, EDI_EPMD_NODE_TYPE_HIDDEN);
    assert_int_equal(info.extra_len, sizeof extra);
    assert_memory_equal(info.extra, extra, sizeof extra);
    edi_epmd_unregister(fd);

    /* A UTF-8 name of 255 characters (765 bytes) is valid. */
    char name[800];
    size_t n = 0;
    for (int i = 0; i < 255; i++) {
        memcpy(name + n, "\xe2\x82\xac", 3); /* U+20AC */
        n += 3;
    }
    name[n] = '\0';
    fd = reg(f, name, 41021, &c);
    assert_int_equal(
        edi_epmd_port_please(NULL, f->port, name, IO_TIMEOUT_MS, &info), 0);
    assert_int_equal(info.name_len, n);
    edi_epmd_unregister(fd);
    wait_unregistered(f, name);
}

static void test_kill_and_stop_refused_by_default(void **state)
{
    struct fixture *f = *state;
    uint32_t c;
    int fd = reg(f, "edt_live", 41030, &c);
    unsigned since = log_count(f);
    assert_int_equal(edi_epmd_kill(NULL, f->port, IO_TIMEOUT_MS), EDIST_EAGAIN);
    assert_true(wait_log(f, since, "refused KILL_REQ", 3000));
    assert_int_equal(edi_epmd_stop(NULL, f->port, "edt_live", IO_TIMEOUT_MS),
                     EDIST_ECLOSED);
    assert_true(wait_log(f, since, "STOP_REQ refused", 3000));
    edi_epmd_node_info info;
    assert_int_equal(
        edi_epmd_port_please(NULL, f->port, "edt_live", IO_TIMEOUT_MS, &info),
        0);
    edi_epmd_unregister(fd);
    wait_unregistered(f, "edt_live");
}

static void test_relaxed_stop_and_kill(void **state)
{
    (void)state;
    struct fixture *f = start(MAX_CONNECTIONS, 1);
    uint32_t c;
    int fd = reg(f, "edt_victim", 41040, &c);
    assert_int_equal(edi_epmd_stop(NULL, f->port, "edt_nobody", IO_TIMEOUT_MS),
                     EDIST_ENOTFOUND);
    assert_int_equal(edi_epmd_stop(NULL, f->port, "edt_victim", IO_TIMEOUT_MS),
                     0);
    edi_epmd_node_info info;
    assert_int_equal(
        edi_epmd_port_please(NULL, f->port, "edt_victim", IO_TIMEOUT_MS, &info),
        EDIST_ENOTFOUND);
    /* The victim's connection was closed by the server. */
    uint8_t b;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, IO_TIMEOUT_MS), 1);
    assert_int_equal(recv(fd, &b, 1, 0), 0);
    edi_epmd_unregister(fd);

    int fd2 = reg(f, "edt_other", 41041, &c);
    assert_int_equal(edi_epmd_kill(NULL, f->port, IO_TIMEOUT_MS), 0);
    pthread_join(f->thread, NULL); /* KILL ends the loop */
    assert_int_equal(f->run_rc, 0);
    edi_epmd_server_free(f->srv);
    edi_epmd_unregister(fd2);
    for (unsigned i = 0; i < LOG_KEEP; i++)
        free(f->lines[i]);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static void test_port_in_use_and_bad_config(void **state)
{
    struct fixture *f = *state;
    edi_epmd_server_config cfg = {.port = f->port, .addresses = "127.0.0.1"};
    edi_epmd_server *s2 = NULL;
    assert_int_equal(edi_epmd_server_start(&cfg, &s2), EDIST_EEXIST);
    assert_null(s2);
    cfg.port = -1;
    cfg.addresses = "not-an-address";
    assert_int_equal(edi_epmd_server_start(&cfg, &s2), EDIST_EINVAL);
    cfg.port = 70000;
    assert_int_equal(edi_epmd_server_start(&cfg, &s2), EDIST_EINVAL);
}

/* ---- bad input ---------------------------------------------------------- */

/* Sends bytes, expects the connection closed without a reply and a log line. */
static void expect_dropped(struct fixture *f, const void *req, size_t len,
                           const char *logged)
{
    unsigned since = log_count(f);
    uint8_t out[64];
    ssize_t n = exchange(f->port, req, len, out, sizeof out);
    assert_int_equal(n, 0);
    if (!wait_log(f, since, logged, 3000))
        fail_msg("no log line containing '%s'", logged);
}

static void test_garbage_is_dropped(void **state)
{
    struct fixture *f = *state;
    static const char http[] = "GET / HTTP/1.0\r\n\r\n";
    expect_dropped(f, http, sizeof http - 1, "request length");
    static const uint8_t huge[] = {0xff, 0xff, 'n'};
    expect_dropped(f, huge, sizeof huge, "request length 65535");
    static const uint8_t just_over[] = {0x0b, 0xf2, 'n'}; /* 3058 */
    expect_dropped(f, just_over, sizeof just_over, "request length 3058");
    static const uint8_t zero[] = {0, 0};
    expect_dropped(f, zero, sizeof zero, "request length 0");
    static const uint8_t unknown[] = {0, 1, 'Q'};
    expect_dropped(f, unknown, sizeof unknown, "unknown request type 81");
    static const uint8_t two[] = {0, 1, 'n', 0, 1, 'n'};
    expect_dropped(f, two, sizeof two, "bytes after the");
    /* ALIVE2 whose name length points past the packet. */
    static const uint8_t bad_alive[] = {0, 14, 'x', 0,    1,    77,  0, 0,
                                        6, 0,  6,   0x03, 0xe8, 'a', 0, 0};
    expect_dropped(f, bad_alive, sizeof bad_alive, "name length 1000 exceeds");
    static const uint8_t empty_port[] = {0, 1, 'z'};
    expect_dropped(f, empty_port, sizeof empty_port, "without a node name");
    static const uint8_t nul_name[] = {0, 4, 'z', 'a', 0, 'b'};
    expect_dropped(f, nul_name, sizeof nul_name, "NUL");
    static const uint8_t bad_utf8[] = {0, 3, 'z', 0xc0, 0x80};
    expect_dropped(f, bad_utf8, sizeof bad_utf8, "not valid UTF-8");

    /* A maximal request that is well-framed is read completely. */
    uint8_t big[2 + EDI_EPMD_MAX_REQUEST_BYTES];
    memset(big, 'a', sizeof big);
    big[0] = (uint8_t)(EDI_EPMD_MAX_REQUEST_BYTES >> 8);
    big[1] = (uint8_t)EDI_EPMD_MAX_REQUEST_BYTES;
    big[2] = 'z';
    expect_dropped(f, big, sizeof big,
                   "PORT_PLEASE2_REQ: epmd: node name of 3056 bytes");
}

static void test_long_names(void **state)
{
    struct fixture *f = *state;
    char name[1001];
    memset(name, 'n', 1000);
    name[1000] = '\0';
    /* ALIVE2 with a 1000-byte name: refused with result 1, as epmd. */
    uint8_t req[1100], out[16];
    edi_epmd_node_fields fl = {.port = 1,
                               .node_type = 77,
                               .highest_version = 6,
                               .lowest_version = 6,
                               .name = (const uint8_t *)name,
                               .name_len = 1000};
    /* Our encoder refuses it, so build it by hand. */
    assert_int_equal(edi_epmd_encode_alive2_req(req, sizeof req, &fl),
                     EDIST_EINVAL);
    size_t n = 0;
    req[n++] = 0;
    req[n++] = 0;
    req[n++] = 'x';
    req[n++] = 0, req[n++] = 1, req[n++] = 77, req[n++] = 0;
    req[n++] = 0, req[n++] = 6, req[n++] = 0, req[n++] = 6;
    req[n++] = 1000 >> 8, req[n++] = 1000 & 0xff;
    memcpy(req + n, name, 1000);
    n += 1000;
    req[n++] = 0, req[n++] = 0;
    req[0] = (uint8_t)((n - 2) >> 8);
    req[1] = (uint8_t)(n - 2);
    unsigned since = log_count(f);
    ssize_t got = exchange(f->port, req, n, out, sizeof out);
    assert_int_equal(got, 6);
    assert_int_equal(out[0], EDI_EPMD_ALIVE2_X_RESP);
    assert_int_equal(out[1], 1);
    assert_true(wait_log(f, since, "refused registration", 3000));

    /* PORT_PLEASE2 with it: closed without a reply. */
    n = 0;
    req[n++] = (1001 >> 8);
    req[n++] = (1001 & 0xff);
    req[n++] = 'z';
    memcpy(req + n, name, 1000);
    n += 1000;
    expect_dropped(f, req, n, "PORT_PLEASE2_REQ");

    /* The client refuses to send it at all. */
    edi_epmd_node_info info;
    assert_int_equal(
        edi_epmd_port_please(NULL, f->port, name, IO_TIMEOUT_MS, &info),
        EDIST_EINVAL);
}

static void test_silent_and_partial_connections_time_out(void **state)
{
    struct fixture *f = *state;
    unsigned since = log_count(f);
    int64_t t0 = now_ms();
    int silent = raw_connect(f->port);
    int partial = raw_connect(f->port);
    static const uint8_t part[] = {0, 20, 'x', 1, 2};
    raw_send(partial, part, sizeof part);
    uint8_t out[16];
    assert_int_equal(read_to_close(silent, out, sizeof out, IO_TIMEOUT_MS), 0);
    assert_int_equal(read_to_close(partial, out, sizeof out, IO_TIMEOUT_MS), 0);
    int64_t waited = now_ms() - t0;
    /* Not before the timeout; the upper bound allows for a loaded machine. */
    assert_in_range(waited, PACKET_TIMEOUT_MS - 50, PACKET_TIMEOUT_MS + 4000);
    assert_true(wait_log(f, since, "no request within 300 ms", 3000));
    assert_true(wait_log(f, since, "incomplete request (5 bytes)", 3000));
    close(silent);
    close(partial);

    /* Half a request and then a close. */
    since = log_count(f);
    int fd = raw_connect(f->port);
    raw_send(fd, part, sizeof part);
    close(fd);
    assert_true(wait_log(f, since, "closed after 5 bytes", 3000));

    /* A registration is never timed out. */
    uint32_t c;
    int r = reg(f, "edt_patient", 41050, &c);
    sleep_ms(PACKET_TIMEOUT_MS * 2);
    edi_epmd_node_info info;
    assert_int_equal(edi_epmd_port_please(NULL, f->port, "edt_patient",
                                          IO_TIMEOUT_MS, &info),
                     0);
    /* But bytes after ALIVE2 on it end it. */
    since = log_count(f);
    raw_send(r, "junk", 4);
    wait_unregistered(f, "edt_patient");
    assert_true(wait_log(f, since, "unexpected bytes after ALIVE2_REQ", 3000));
    close(r);
}

static void flood(struct fixture *f, int n, int garbage)
{
    int *fds = malloc(sizeof *fds * (size_t)n);
    assert_non_null(fds);
    for (int i = 0; i < n; i++) {
        fds[i] = raw_connect(f->port);
        if (garbage)
            raw_send(fds[i], "\x00\x05zab",
                     4); /* partial: waits for one more byte */
    }
    /* While the flood holds its connections, a real request still gets in:
     * the oldest idle connections make room. */
    char *text = names_text(f);
    free(text);
    edi_epmd_server_stats st;
    edi_epmd_server_get_stats(f->srv, &st);
    assert_true(st.connections_open <= MAX_CONNECTIONS);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    free(fds);
}

static void test_connection_flood(void **state)
{
    struct fixture *f = *state;
    uint32_t c;
    int r1 = reg(f, "edt_survivor1", 41060, &c);
    int r2 = reg(f, "edt_survivor2", 41061, &c);
    unsigned since = log_count(f);
    edi_epmd_server_stats before;
    edi_epmd_server_get_stats(f->srv, &before);

    flood(f, 200, 0);
    /* Each connection beyond the limit cost an older one its slot, with a
     * log line each. */
    assert_true(log_matches(f, since, "connection limit (64) reached") >=
                200 - MAX_CONNECTIONS);

    long rss0 = rss_kb();
    for (int round = 0; round < 5; round++)
        flood(f, 200, 1);
    long rss1 = rss_kb();
    /* Memory does not grow with the number of connections served. */
    assert_true(rss0 > 0 && rss1 > 0);
    assert_true(rss1 - rss0 < 16 * 1024);

    /* The registrations were never evicted. */
    edi_epmd_node_info info;
    assert_int_equal(edi_epmd_port_please(NULL, f->port, "edt_survivor1",
                                          IO_TIMEOUT_MS, &info),
                     0);
    assert_int_equal(edi_epmd_port_please(NULL, f->port, "edt_survivor2",
                                          IO_TIMEOUT_MS, &info),
                     0);
    char *text = names_text(f);
    assert_non_null(strstr(text, "name edt_survivor1 at port 41060\n"));
    free(text);

    /* Everything the flood left behind is gone after the timeout. */
    sleep_ms(PACKET_TIMEOUT_MS + 200);
    edi_epmd_server_stats after;
    for (int t = 0; t < 2000; t += 20) {
        edi_epmd_server_get_stats(f->srv, &after);
        if (after.connections_open == 2)
            break;
        sleep_ms(20);
    }
    assert_int_equal(after.connections_open, 2); /* the two registrations */
    assert_true(after.connections_accepted >=
                before.connections_accepted + 1200);
    edi_epmd_unregister(r1);
    edi_epmd_unregister(r2);
    wait_unregistered(f, "edt_survivor1");
    wait_unregistered(f, "edt_survivor2");
}

static void test_full_of_registrations(void **state)
{
    (void)state;
    struct fixture *f = start(2, 0);
    uint32_t c;
    int a = reg(f, "edt_r1", 41070, &c);
    int b = reg(f, "edt_r2", 41071, &c);
    unsigned since = log_count(f);
    edi_epmd_node_info info;
    int rc =
        edi_epmd_port_please(NULL, f->port, "edt_r1", IO_TIMEOUT_MS, &info);
    assert_int_equal(rc, EDIST_ECLOSED);
    assert_true(
        wait_log(f, since, "all 2 connections are registrations", 3000));
    edi_epmd_unregister(a);
    wait_unregistered(f, "edt_r1"); /* a slot is free again */
    assert_int_equal(
        edi_epmd_port_please(NULL, f->port, "edt_r2", IO_TIMEOUT_MS, &info), 0);
    edi_epmd_unregister(b);
    stop(f);
}

/* -- issue 8: the idle exit of a port mapper a node embeds. A
 * registration waiting before the loop runs is served, however late the
 * loop starts; while it lasts the loop stays, for several times the
 * grace; after it is gone the loop returns by itself, with a log line. */
#define IDLE_EXIT_MS 200

static void *run_thread_done(void *arg)
{
    struct fixture *f = arg;
    f->run_rc = edi_epmd_server_run(f->srv);
    atomic_store(&f->run_done, 1);
    return NULL;
}

static void test_idle_exit(void **state)
{
    (void)state;
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    pthread_mutex_init(&f->lock, NULL);
    edi_epmd_server_config cfg = {
        .port = -1,
        .addresses = "127.0.0.1",
        .packet_timeout_ms = PACKET_TIMEOUT_MS,
        .log = {capture, f, EDIST_LOG_DEBUG},
        .idle_exit_ms = IDLE_EXIT_MS,
    };
    assert_int_equal(edi_epmd_server_start(&cfg, &f->srv), 0);
    f->port = edi_epmd_server_port(f->srv);
    int fd = raw_connect(f->port);
    uint8_t req[64], resp[16];
    raw_send(fd, req, alive2(req, sizeof req, "edt_idle", 8, 41090, 6, 6));
    sleep_ms(2 * IDLE_EXIT_MS); /* the loop starts late: the grace is over */
    assert_int_equal(pthread_create(&f->thread, NULL, run_thread_done, f), 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, IO_TIMEOUT_MS), 1);
    assert_true(recv(fd, resp, sizeof resp, 0) >= 2);
    assert_int_equal(resp[0], EDI_EPMD_ALIVE2_X_RESP);
    assert_int_equal(resp[1], 0); /* registered */
    sleep_ms(3 * IDLE_EXIT_MS);
    assert_int_equal(atomic_load(&f->run_done), 0);
    edi_epmd_node_info info;
    assert_int_equal(
        edi_epmd_port_please(NULL, f->port, "edt_idle", IO_TIMEOUT_MS, &info), 0);
    close(fd); /* unregisters */
    pthread_join(f->thread, NULL); /* returns by itself */
    assert_int_equal(f->run_rc, 0);
    assert_true(log_matches(f, 0, "no node registered for 200 ms: exiting"));
    edi_epmd_server_free(f->srv);
    for (unsigned i = 0; i < LOG_KEEP; i++)
        free(f->lines[i]);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static void test_client_errors(void **state)
{
    struct fixture *f = *state;
    /* Nothing listening: a closed port next to ours is very likely free;
     * use a port we bind and close to be sure. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    uint16_t dead = ntohs(a.sin_port);
    close(fd);
    char *text;
    size_t len;
    assert_int_equal(edi_epmd_names("127.0.0.1", dead, 1000, NULL, &text, &len),
                     EDIST_EIO);
    assert_non_null(strstr(edist_last_error(), "cannot connect"));

    /* A listener that never answers: the client times out. */
    int quiet = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_port = 0;
    assert_int_equal(bind(quiet, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(quiet, 4), 0);
    l = sizeof a;
    assert_int_equal(getsockname(quiet, (struct sockaddr *)&a, &l), 0);
    int64_t t0 = now_ms();
    edi_epmd_node_info info;
    assert_int_equal(
        edi_epmd_port_please("127.0.0.1", ntohs(a.sin_port), "x", 300, &info),
        EDIST_ETIMEDOUT);
    assert_in_range(now_ms() - t0, 250, 4000);
    close(quiet);

    /* ERL_EPMD_PORT stands for port 0. */
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", f->port);
    setenv("ERL_EPMD_PORT", portstr, 1);
    assert_int_equal(edi_epmd_default_port(), f->port);
    uint32_t port = 0;
    assert_int_equal(
        edi_epmd_names("127.0.0.1", 0, IO_TIMEOUT_MS, &port, &text, &len), 0);
    assert_int_equal(port, f->port);
    free(text);
    setenv("ERL_EPMD_PORT", "junk", 1);
    assert_int_equal(edi_epmd_default_port(), 4369);
    unsetenv("ERL_EPMD_PORT");
}

/* ---- few descriptors ---------------------------------------------------- */

/* The server in a child whose process may open only 64 files, as a daemon
 * under a low RLIMIT_NOFILE: 150 idle connections from the parent, then a
 * lookup still gets its answer. Before, accepts failed with EMFILE long
 * before the table (1024) was full, so nobody was ever evicted: every
 * lookup waited out the idle ones' packet timeout. With `extra` more
 * files open in the child after the start (a node embedding the server
 * has its own), EMFILE comes before even the shrunk table is full: the
 * oldest idle connection makes room then too. */
static void few_descriptors(int extra)
{
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        struct rlimit rl = {.rlim_cur = 64, .rlim_max = 64};
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            _exit(2);
        edi_epmd_server_config cfg = {.port = -1,
                                      .addresses = "127.0.0.1",
                                      .packet_timeout_ms = 60000};
        edi_epmd_server *srv;
        if (edi_epmd_server_start(&cfg, &srv) != 0)
            _exit(3);
        for (int i = 0; i < extra; i++)
            if (open("/dev/null", O_RDONLY | O_CLOEXEC) < 0)
                _exit(5);
        uint16_t port = edi_epmd_server_port(srv);
        if (write(pfd[1], &port, sizeof port) != (ssize_t)sizeof port)
            _exit(4);
        edi_epmd_server_run(srv);
        _exit(0);
    }
    close(pfd[1]);
    uint16_t port = 0;
    assert_int_equal(read(pfd[0], &port, sizeof port), (ssize_t)sizeof port);
    close(pfd[0]);
    enum { IDLE = 150 };
    int idle[IDLE];
    for (int i = 0; i < IDLE; i++)
        idle[i] = raw_connect(port);
    sleep_ms(300);
    edi_epmd_node_info info;
    int64_t t0 = edi_now_ms();
    int rc = edi_epmd_port_please(NULL, port, "nobody_here", 3000, &info);
    int64_t took = edi_now_ms() - t0;
    print_message("64 descriptors (%d taken by others), %d idle connections: a lookup "
                  "answered %s in %lld ms\n",
                  extra, IDLE, edist_strerror(rc), (long long)took);
    for (int i = 0; i < IDLE; i++)
        close(idle[i]);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    assert_int_equal(rc, EDIST_ENOTFOUND); /* the answer: no such name */
}

static void test_few_descriptors(void **state)
{
    (void)state;
    few_descriptors(0);
    few_descriptors(40);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_register_lookup_names, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_duplicate_refused_and_creations_differ, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_version_gets_alive2_resp,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_newest_first_and_dump, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_extra_and_hidden_round_trip, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_kill_and_stop_refused_by_default,
                                        setup, teardown),
        cmocka_unit_test(test_relaxed_stop_and_kill),
        cmocka_unit_test_setup_teardown(test_port_in_use_and_bad_config, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_garbage_is_dropped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_long_names, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_silent_and_partial_connections_time_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_flood, setup, teardown),
        cmocka_unit_test(test_full_of_registrations),
        cmocka_unit_test(test_few_descriptors),
        cmocka_unit_test_setup_teardown(test_client_errors, setup, teardown),
        cmocka_unit_test(test_idle_exit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
