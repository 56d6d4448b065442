/* SPDX-License-Identifier: Apache-2.0 */
/* Helper for the port mapper shell tests: drives our epmd client against
 * whatever port mapper listens on 127.0.0.1:PORT (ours or OTP's epmd).
 *
 *   test_epmd_tool freeport                 print a free TCP port on 127.0.0.1
 *   test_epmd_tool port_please PORT NAME    print the PORT2_RESP fields; exit 3
 * if unknown test_epmd_tool names PORT               print the NAMES text
 *   test_epmd_tool hold PORT NAME LPORT     register, print "creation N", stay
 *                                           registered until killed
 *   test_epmd_tool client_suite PORT        register / port_please / names /
 *                                           duplicate / unregister-on-close /
 *                                           new creation; exit 1 on any failure
 *   test_epmd_tool spawn_daemon PORT PIDFILE GOFILE
 *                                           start a detached port mapper with
 * the library, register through it, write the daemon's pid, wait for GOFILE to
 *                                           exist (20 s at most), exit
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "control/epmd_client.h"
#include "control/epmd_server.h"
#include "edist/error.h"

#define TIMEOUT_MS 5000

static int failures;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (cond) {                                                            \
            printf("ok: " __VA_ARGS__);                                        \
            putchar('\n');                                                     \
        } else {                                                               \
            printf("FAIL (%s:%d): ", __FILE__, __LINE__);                      \
            printf(__VA_ARGS__);                                               \
            printf(" [last error: %s]\n", edist_last_error());                 \
            failures++;                                                        \
        }                                                                      \
    } while (0)

static uint16_t arg_port(const char *s)
{
    long v = strtol(s, NULL, 10);
    if (v <= 0 || v > 65535) {
        fprintf(stderr, "bad port %s\n", s);
        exit(2);
    }
    return (uint16_t)v;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int freeport(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) != 0) {
        perror("freeport");
        return 1;
    }
    printf("%u\n", ntohs(a.sin_port));
    close(fd);
    return 0;
}

static int port_please(uint16_t port, const char *name)
{
    edi_epmd_node_info info;
    int rc = edi_epmd_port_please("127.0.0.1", port, name, TIMEOUT_MS, &info);
    if (rc == EDIST_ENOTFOUND) {
        puts("notfound");
        return 3;
    }
    if (rc < 0) {
        fprintf(stderr, "port_please: %s: %s\n", edist_strerror(rc),
                edist_last_error());
        return 1;
    }
    printf("port %u type %u proto %u high %u low %u name %s extra_len %zu\n",
           info.port, info.node_type, info.protocol, info.highest_version,
           info.lowest_version, info.name, info.extra_len);
    return 0;
}

static int names(uint16_t port)
{
    char *text;
    size_t len;
    uint32_t p;
    int rc = edi_epmd_names("127.0.0.1", port, TIMEOUT_MS, &p, &text, &len);
    if (rc < 0) {
        fprintf(stderr, "names: %s: %s\n", edist_strerror(rc),
                edist_last_error());
        return 1;
    }
    fwrite(text, 1, len, stdout);
    free(text);
    return 0;
}

static int hold(uint16_t port, const char *name, uint16_t lport)
{
    edi_epmd_registration reg = {.name = name, .listen_port = lport};
    uint32_t creation;
    int fd;
    int rc =
        edi_epmd_register("127.0.0.1", port, &reg, TIMEOUT_MS, &creation, &fd);
    if (rc < 0) {
        fprintf(stderr, "register: %s: %s\n", edist_strerror(rc),
                edist_last_error());
        return 1;
    }
    printf("creation %u\n", creation);
    fflush(stdout);
    /* Until killed, or until the port mapper goes away. */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (poll(&p, 1, -1) <= 0) {
    }
    puts("port mapper closed the registration");
    edi_epmd_unregister(fd);
    return 0;
}

/* Polls until port_please gives want_rc (0 or EDIST_ENOTFOUND). */
static int wait_lookup(uint16_t port, const char *name, int want_rc, int ms)
{
    edi_epmd_node_info info;
    int rc = -1;
    for (int t = 0; t < ms; t += 50) {
        rc = edi_epmd_port_please("127.0.0.1", port, name, TIMEOUT_MS, &info);
        if (rc == want_rc)
            return rc;
        sleep_ms(50);
    }
    return rc;
}

static int client_suite(uint16_t port)
{
    char name[64];
    snprintf(name, sizeof name, "edt_client_%ld", (long)getpid());
    const uint8_t extra[] = {1, 2, 3, 'x'};
    edi_epmd_registration reg = {.name = name,
                                 .listen_port = 40123,
                                 .node_type = EDI_EPMD_NODE_TYPE_HIDDEN,
                                 .extra = extra,
                                 .extra_len = sizeof extra};
    uint32_t c1 = 0, c2 = 0, c3 = 0;
    int fd1 = -1, fd2 = -1, fd3 = -1;

    int rc = edi_epmd_register("127.0.0.1", port, &reg, TIMEOUT_MS, &c1, &fd1);
    CHECK(rc == 0 && fd1 >= 0, "register %s -> creation %u", name, c1);
    CHECK(c1 != 0, "creation is not 0");

    edi_epmd_node_info info;
    rc = edi_epmd_port_please("127.0.0.1", port, name, TIMEOUT_MS, &info);
    CHECK(rc == 0, "port_please %s", name);
    CHECK(info.port == 40123, "port_please port %u == 40123", info.port);
    CHECK(info.node_type == EDI_EPMD_NODE_TYPE_HIDDEN, "node type %u == 72",
          info.node_type);
    CHECK(info.highest_version == 6 && info.lowest_version == 6,
          "versions %u-%u == 6-6", info.lowest_version, info.highest_version);
    CHECK(!strcmp(info.name, name), "name '%s' echoed", info.name);
    CHECK(info.extra_len == sizeof extra &&
              !memcmp(info.extra, extra, sizeof extra),
          "extra echoed (%zu bytes)", info.extra_len);

    char *text = NULL;
    size_t len = 0;
    uint32_t epmd_port = 0;
    rc = edi_epmd_names("127.0.0.1", port, TIMEOUT_MS, &epmd_port, &text, &len);
    char line[128];
    snprintf(line, sizeof line, "name %s at port 40123\n", name);
    CHECK(rc == 0 && epmd_port == port, "names answers with port %u",
          epmd_port);
    CHECK(rc == 0 && strstr(text, line), "names lists '%.*s'",
          (int)strlen(line) - 1, line);
    free(text);

    rc = edi_epmd_register("127.0.0.1", port, &reg, TIMEOUT_MS, &c2, &fd2);
    CHECK(rc == EDIST_EEXIST,
          "second registration of the same name refused (rc %d)", rc);
    if (rc == 0)
        edi_epmd_unregister(fd2);

    rc = edi_epmd_port_please("127.0.0.1", port, "edt_nobody_here", TIMEOUT_MS,
                              &info);
    CHECK(rc == EDIST_ENOTFOUND,
          "port_please of an unknown name: ENOTFOUND (rc %d)", rc);

    edi_epmd_unregister(fd1);
    rc = wait_lookup(port, name, EDIST_ENOTFOUND, 3000);
    CHECK(rc == EDIST_ENOTFOUND, "closing the fd unregisters %s", name);

    rc = edi_epmd_register("127.0.0.1", port, &reg, TIMEOUT_MS, &c3, &fd3);
    CHECK(rc == 0, "re-register %s -> creation %u", name, c3);
    CHECK(c3 != c1, "creation changed on re-registration (%u -> %u)", c1, c3);
    edi_epmd_unregister(fd3);

    /* Client-side validation: nothing is sent for a bad name. */
    edi_epmd_registration bad = {.name = "", .listen_port = 1};
    rc = edi_epmd_register("127.0.0.1", port, &bad, TIMEOUT_MS, &c2, &fd2);
    CHECK(rc == EDIST_EINVAL, "empty name rejected by the client (rc %d)", rc);

    printf("%s: %d failure(s)\n", failures ? "FAILED" : "PASSED", failures);
    return failures ? 1 : 0;
}

static int spawn_daemon(uint16_t port, const char *pidfile, const char *gofile)
{
    edi_epmd_server_config cfg = {.port = port, .addresses = "127.0.0.1"};
    pid_t pid = -1;
    int rc = edi_epmd_daemon_start(&cfg, &pid);
    if (rc < 0) {
        fprintf(stderr, "daemon_start: %s: %s\n", edist_strerror(rc),
                edist_last_error());
        return 1;
    }
    /* The parent uses its port mapper like a node would, then exits. */
    edi_epmd_registration reg = {.name = "edt_daemon_parent",
                                 .listen_port = 40999};
    uint32_t creation;
    int fd;
    rc = edi_epmd_register("127.0.0.1", port, &reg, TIMEOUT_MS, &creation, &fd);
    if (rc < 0) {
        fprintf(stderr, "register via daemon: %s\n", edist_last_error());
        return 1;
    }
    printf("daemon %ld creation %u\n", (long)pid, creation);
    fflush(stdout);
    /* Written last: its presence means the parent is registered. */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", pidfile);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return 1;
    fprintf(f, "%ld\n", (long)pid);
    fclose(f);
    if (rename(tmp, pidfile) != 0)
        return 1;
    for (int t = 0; t < 20000 && access(gofile, F_OK) != 0; t += 50)
        sleep_ms(50);
    return 0; /* exit closes fd: the daemon must unregister us and live on */
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "freeport"))
        return freeport();
    if (argc == 4 && !strcmp(argv[1], "port_please"))
        return port_please(arg_port(argv[2]), argv[3]);
    if (argc == 3 && !strcmp(argv[1], "names"))
        return names(arg_port(argv[2]));
    if (argc == 5 && !strcmp(argv[1], "hold"))
        return hold(arg_port(argv[2]), argv[3], arg_port(argv[4]));
    if (argc == 3 && !strcmp(argv[1], "client_suite"))
        return client_suite(arg_port(argv[2]));
    if (argc == 5 && !strcmp(argv[1], "spawn_daemon"))
        return spawn_daemon(arg_port(argv[2]), argv[3], argv[4]);
    fprintf(stderr, "usage: see the comment at the top of test_epmd_tool.c\n");
    return 2;
}
