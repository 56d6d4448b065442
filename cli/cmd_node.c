/* SPDX-License-Identifier: Apache-2.0 */
/* `edist node`: run a node until SIGTERM/SIGINT; `edist ping`: net_adm:ping
 * from a short-lived hidden node, as erl_call does. */
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "log.h"
#include "control/node_config.h"
#include "edist/edist.h"
#include "edist/node.h"

static void on_event(void *user, const edist_node_event *ev)
{
    (void)user;
    if (ev->up)
        printf("nodeup %s (%s)\n", ev->node, ev->hidden ? "hidden" : "visible");
    else
        printf("nodedown %s (%s)\n", ev->node, ev->reason ? ev->reason : "?");
    fflush(stdout);
}

static void node_usage(FILE *out)
{
    fputs("usage: edist node --sname NAME[@HOST] | --name NAME@HOST\n"
          "         [--cookie C] [--hidden] [--config FILE]\n"
          "         [--listen-address A] [--listen-port P] [--epmd-port P]\n"
          "         [--ticktime S] [--setuptime S] [--connect-all BOOL]\n"
          "         [--transport tcp] [--idle adaptive|busy|sleep]\n"
          "         [--log-level L] [--start-epmd BOOL] [--print-config]\n"
          "         [--first-message-time S] [--max-handshakes N]\n"
          "         [--max-handshakes-per-address N]\n"
          "         [--epmd-address A[,B...]] [--epmd-idle-exit S]\n"
          "         [--rx-buffers N] [--max-message-bytes SIZE]\n"
          "         [--reassembly-limit-bytes SIZE] [--send-queue-limit-bytes SIZE]\n"
          "         [--mailbox-messages N] [--mailbox-bytes SIZE]\n"
          "         [--mailbox-hard-messages N] [--mailbox-hard-bytes SIZE]\n"
          "         [--max-processes N] [--stack-bytes SIZE]\n"
          "         [--max-pending-requests N] [--max-pending-bytes SIZE]\n"
          "         [--transport dpdk --dpdk-port DEV --dpdk-eal-args ARGS]\n"
          "         [--dpdk-hold-limit-bytes SIZE] [--dpdk-setup-time S]\n"
          "         [--dpdk-send-buffer-bytes SIZE] [--dpdk-recv-window-bytes SIZE]\n"
          "         [--dpdk-kernel-window-bytes SIZE]\n"
          "         [--dpdk-rto-min-us N] [--dpdk-rto-max-us N]\n"
          "         [--dpdk-idle-ping S] [--dpdk-dead-after S] [--close-flush-time S]\n"
          "         [--shards N] [--shard-cores C0,C1,...] [--shard-ring-entries N]\n"
          "         [--lane-queue-limit-bytes SIZE] [--shard-backlog-limit N]\n"
          "         [--auto-connect-max-signals N] [--auto-connect-max-bytes SIZE]\n"
          "         [--global-call-timeout S] [--send-open-sequences N]\n"
          "         [--receive-grace-time S] [--service-restarts N]\n"
          "         [--service-restart-period S]\n"
          "  Runs an edist node until SIGTERM/SIGINT. Every option may\n"
          "  also be set as EDIST_<OPTION> in the environment or as a key\n"
          "  in the [node] section of the config file; flags win over the\n"
          "  environment, the environment over the file. --print-config\n"
          "  shows each value and where it came from. SIZE takes a K, M or\n"
          "  G suffix. Options take one dash or two, and erl's spellings:\n"
          "  -sname, -name, -setcookie, -hidden, -connect_all false.\n",
          out);
}

/* 1: help, 2: version (either prints; exit 0), 0: neither. */
static int wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help") || !strcmp(argv[i], "-help"))
            return 1;
        if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "-version"))
            return 2;
    }
    return 0;
}

static void print_config(const edi_node_options *o)
{
    char buf[8192];
    edi_node_options_format(o, buf, sizeof buf);
    fputs(buf, stdout);
}

/* What the node's processes print (edist_demo:hello/0): one line on
 * stdout, flushed at once so that whoever watches sees it now. */
static void node_output(void *user, const char *line, size_t len)
{
    (void)user;
    fprintf(stdout, "%.*s\n", (int)len, line);
    fflush(stdout);
}

int cmd_node(int argc, char **argv)
{
    switch (wants_help(argc, argv)) {
    case 1:
        node_usage(stdout);
        return 0;
    case 2:
        cli_print_version();
        return 0;
    }
    static edi_node_options o;
    edi_node_options_init(&o);
    int positional[1], np = 0, print = 0;
    int rc = edi_node_options_parse_args(&o, argc - 1, argv + 1, positional, 0,
                                         &np, &print);
    if (rc == 0)
        rc = edi_node_options_load_all(&o);
    if (rc) {
        cli_error("node", rc);
        node_usage(stderr);
        return 2;
    }
    if (print) {
        print_config(&o);
        return 0;
    }
    rc = edi_node_options_to_config(&o, 1);
    if (rc) {
        cli_error("node", rc);
        return 2;
    }
    edist_node_config *cfg = &o.cfg;
    cfg->log = cli_log;
    cfg->log_user = "edist node";
    cfg->output = node_output;

    /* Signals are taken by sigwait below: block them before any thread
     * exists so that every thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    edist_node *node;
    rc = edist_node_start(cfg, &node);
    if (rc) {
        cli_error("node", rc);
        return 1;
    }
    rc = edist_node_monitor_nodes(
        node, EDIST_NODES_VISIBLE | EDIST_NODES_HIDDEN, on_event, NULL, NULL);
    if (rc) {
        cli_error("node: monitor_nodes", rc);
        edist_node_stop(node);
        return 1;
    }
    printf("edist node %s ready (listening on port %u, creation %u%s)\n",
           edist_node_name(node), edist_node_listen_port(node),
           edist_node_creation(node), cfg->hidden ? ", hidden" : "");
    fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    printf("edist node %s stopping (%s)\n", edist_node_name(node),
           sig == SIGINT ? "SIGINT" : "SIGTERM");
    fflush(stdout);
    edist_node_stop(node);
    return 0;
}

/* ---- ping ---------------------------------------------------------------- */

static void ping_usage(FILE *out)
{
    fputs("usage: edist ping NODE [--cookie C] [--epmd-port P]\n"
          "         [--setuptime S] [--timeout S]\n"
          "  Prints pong (exit 0) if NODE answers net_adm:ping, else\n"
          "  pang (exit 1). Runs a short-lived hidden node that does not\n"
          "  register, as erl_call does. --timeout: seconds to wait for the\n"
          "  answer (default the setup time and 3 s). Any node option\n"
          "  (edist node --help) applies to that node.\n",
          out);
}

/* Our host part for a long name when this host has no fully qualified
 * name: the local address the kernel would use to reach the target. */
static int local_address_towards(const char *host, char *out, size_t cap)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, "4369", &hints, &res) != 0 || !res)
        return -1;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int rc = -1;
    struct sockaddr_in me;
    socklen_t len = sizeof me;
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0 &&
        getsockname(fd, (struct sockaddr *)&me, &len) == 0 &&
        inet_ntop(AF_INET, &me.sin_addr, out, (socklen_t)cap))
        rc = 0;
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return rc;
}

int cmd_ping(int argc, char **argv)
{
    switch (wants_help(argc, argv)) {
    case 1:
        ping_usage(stdout);
        return 0;
    case 2:
        cli_print_version();
        return 0;
    }
    /* --timeout (or -timeout, =S too) is ping's own; the rest are the
     * node's options. */
    int64_t timeout_ms = 0;
    static char *rest[256];
    if (argc >= 256) {
        fprintf(stderr, "edist ping: too many arguments\n");
        return 2;
    }
    int nrest = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        const char *name = !strncmp(a, "--", 2) ? a + 2 : a[0] == '-' ? a + 1 : NULL;
        bool is_timeout = i > 0 && name && !strncmp(name, "timeout", 7) &&
                          (name[7] == '\0' || name[7] == '=');
        if (!is_timeout) {
            rest[nrest++] = argv[i];
            continue;
        }
        if (name[7] == '=')
            v = name + 8;
        else if (i + 1 < argc)
            v = argv[++i];
        if (!v || cli_seconds_ms(v, &timeout_ms) != 0) {
            fprintf(stderr, "edist ping: --timeout: '%s' is not a time in seconds\n", v ? v : "");
            ping_usage(stderr);
            return 2;
        }
    }
    rest[nrest] = NULL;
    argc = nrest;
    argv = rest;
    static edi_node_options o;
    edi_node_options_init(&o);
    /* A client: quiet unless asked, never the one to start a port mapper. */
    edi_node_options_set(&o, EDI_OPT_LOG_LEVEL, "warning", EDI_OPT_DEFAULT,
                         NULL);
    edi_node_options_set(&o, EDI_OPT_START_EPMD, "false", EDI_OPT_DEFAULT,
                         NULL);
    edi_node_options_set(&o, EDI_OPT_PUBLISH_STATS, "false", EDI_OPT_DEFAULT, NULL);
    edi_node_options_set(&o, EDI_OPT_LISTEN_ADDRESS, "127.0.0.1",
                         EDI_OPT_DEFAULT, NULL);
    int positional[1], np = 0, print = 0;
    int rc = edi_node_options_parse_args(&o, argc - 1, argv + 1, positional, 1,
                                         &np, &print);
    if (rc == 0)
        rc = edi_node_options_load_all(&o);
    if (rc == 0 && print) {
        print_config(&o);
        return 0;
    }
    if (rc == 0 && np != 1)
        rc = edist_set_error(EDIST_EINVAL, "which node? give NODE");
    if (rc) {
        cli_error("ping", rc);
        ping_usage(stderr);
        return 2;
    }
    const char *target = argv[1 + positional[0]];
    const char *at = strchr(target, '@');
    if (!at || !at[1] || at == target) {
        fprintf(stderr, "edist ping: bad node name '%s' (want NAME@HOST)\n",
                target);
        return 2;
    }
    rc = edi_node_options_to_config(&o, 0);
    if (rc) {
        cli_error("ping", rc);
        return 2;
    }
    edist_node_config *cfg = &o.cfg;
    char name[300];
    if (!cfg->name) {
        /* Match the target's naming: a dotted host (or an address) means
         * long names, which a short-named node may not use, and back. */
        const char *host = at + 1;
        cfg->long_names = strchr(host, '.') != NULL;
        snprintf(name, sizeof name, "edist_ping_%ld", (long)getpid());
        if (cfg->long_names) {
            char me[INET_ADDRSTRLEN];
            char hn[256];
            struct addrinfo hints = {.ai_flags = AI_CANONNAME};
            struct addrinfo *res = NULL;
            bool fqdn = false;
            if (gethostname(hn, sizeof hn) == 0 &&
                getaddrinfo(hn, NULL, &hints, &res) == 0 && res &&
                res->ai_canonname && strchr(res->ai_canonname, '.') &&
                strncmp(host, "127.", 4) != 0) {
                snprintf(name, sizeof name, "edist_ping_%ld@%s", (long)getpid(),
                         res->ai_canonname);
                fqdn = true;
            }
            if (res)
                freeaddrinfo(res);
            if (!fqdn && local_address_towards(host, me, sizeof me) == 0)
                snprintf(name, sizeof name, "edist_ping_%ld@%s", (long)getpid(),
                         me);
        }
        cfg->name = name;
    }
    cfg->hidden = true;
    cfg->publish = false;
    cfg->connect_all = false;
    cfg->log = cli_log;
    cfg->log_user = "edist ping";
    edist_node *node;
    rc = edist_node_start(cfg, &node);
    if (rc) {
        cli_error("ping", rc);
        puts("pang");
        return 1;
    }
    if (!timeout_ms)
        timeout_ms = (int64_t)cfg->net_setuptime_ms + 3000;
    rc = edist_node_ping(node, target, (int)timeout_ms);
    if (rc == 0) {
        puts("pong");
    } else {
        cli_error("ping", rc);
        puts("pang");
    }
    fflush(stdout);
    edist_node_stop(node);
    return rc == 0 ? 0 : 1;
}
