/* SPDX-License-Identifier: Apache-2.0 */
/* `edist epmd`: the port mapper (epmd compatible), and `edist names`. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "log.h"
#include "control/epmd_client.h"
#include "control/epmd_server.h"
#include "edist/edist.h"

static const char epmd_usage[] =
    "usage: edist epmd [-port P] [-address A[,B...]] [-daemon [-pidfile FILE]]\n"
    "                  [-relaxed_command_check] [-packet_timeout SECONDS]\n"
    "                  [-packet_timeout_ms MS] [-max_connections N]\n"
    "                  [-idle_exit SECONDS] [-d]\n"
    "       edist epmd [-port P] -names | -dump | -kill | -stop NAME\n"
    "  Runs an epmd-compatible port mapper. The port defaults to\n"
    "  $ERL_EPMD_PORT or 4369, the addresses to $ERL_EPMD_ADDRESS or every\n"
    "  interface (the loopback is always served). -daemon detaches and\n"
    "  returns once the port is bound. SIGTERM/SIGINT stop it.\n"
    "  -idle_exit: exit once no node has been registered (and no\n"
    "  connection open) for that long, as the port mapper a node embeds\n"
    "  does; by default it runs until stopped, as epmd. Options take one\n"
    "  dash or two.\n";


static void log_syslog(void *user, edist_log_level level, const char *line)
{
    (void)user;
    (void)level;
    syslog(LOG_NOTICE, "%s", line);
}

static edi_epmd_server *volatile running;

static void on_signal(int sig)
{
    (void)sig;
    edi_epmd_server_stop(running);
}

/* Prints a NAMES/DUMP reply as `epmd -names` does. */
static int print_names(uint16_t port, int dump)
{
    char *text = NULL;
    size_t len = 0;
    uint32_t epmd_port = 0;
    int rc = dump ? edi_epmd_dump(NULL, port, 0, &epmd_port, &text, &len)
                  : edi_epmd_names(NULL, port, 0, &epmd_port, &text, &len);
    if (rc == EDIST_EIO) {
        fputs("epmd: Cannot connect to local epmd\n", stderr);
        return 1;
    }
    if (rc < 0) {
        puts("epmd: no response from local epmd");
        return 1;
    }
    printf("epmd: up and running on port %u with data:\n", (unsigned)epmd_port);
    fwrite(text, 1, len, stdout);
    free(text);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int write_pidfile(const char *path, pid_t pid)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "edist epmd: cannot write %s: %s\n", path,
                strerror(errno));
        return -1;
    }
    fprintf(f, "%ld\n", (long)pid);
    return fclose(f) == 0 ? 0 : -1;
}

int cmd_epmd(int argc, char **argv)
{
    edi_epmd_server_config cfg = {0};
    cfg.addresses = getenv("ERL_EPMD_ADDRESS");
    cfg.relaxed_command_check =
        getenv("ERL_EPMD_RELAXED_COMMAND_CHECK") != NULL;
    bool daemon = false, relaxed = false, debug = false, names = false, dump = false,
         kill = false;
    const char *pidfile = NULL, *stop_name = NULL, *addresses = NULL;
    uint16_t port_flag = 0;
    int64_t packet_timeout = 0, packet_timeout_ms = 0, idle_exit = 0, max_connections = 0;
    const cli_opt opts[] = {
        {"port", NULL, CLI_PORT, &port_flag, 0, 0},
        {"address", NULL, CLI_TEXT, &addresses, 0, 0},
        {"daemon", NULL, CLI_FLAG, &daemon, 0, 0},
        {"pidfile", NULL, CLI_TEXT, &pidfile, 0, 0},
        {"relaxed_command_check", "relaxed-command-check", CLI_FLAG, &relaxed, 0, 0},
        {"packet_timeout", "packet-timeout", CLI_INT, &packet_timeout, 1, 86400},
        {"packet_timeout_ms", "packet-timeout-ms", CLI_INT, &packet_timeout_ms, 1, 86400000},
        {"idle_exit", "idle-exit", CLI_INT, &idle_exit, 1, 86400},
        {"max_connections", "max-connections", CLI_INT, &max_connections, 1, 1 << 20},
        {"debug", "d", CLI_FLAG, &debug, 0, 0},
        {"names", NULL, CLI_FLAG, &names, 0, 0},
        {"dump", NULL, CLI_FLAG, &dump, 0, 0},
        {"kill", NULL, CLI_FLAG, &kill, 0, 0},
        {"stop", NULL, CLI_TEXT, &stop_name, 0, 0},
    };
    const cli_command cmd = {"epmd", epmd_usage, opts, sizeof opts / sizeof opts[0], 0, 0};
    const char *pos[1];
    int npos;
    int prc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (prc)
        return prc == CLI_DONE ? 0 : prc;
    (void)debug; /* every event is logged already; accepted as epmd's -d */
    if (addresses)
        cfg.addresses = addresses;
    if (relaxed)
        cfg.relaxed_command_check = 1;
    if (packet_timeout)
        cfg.packet_timeout_ms = (unsigned)packet_timeout * 1000u;
    if (packet_timeout_ms)
        cfg.packet_timeout_ms = (unsigned)packet_timeout_ms;
    if (idle_exit)
        cfg.idle_exit_ms = (unsigned)idle_exit * 1000u;
    if (max_connections)
        cfg.max_connections = (unsigned)max_connections;
    enum { RUN, NAMES, DUMP, KILL, STOP } action = names ? NAMES
                                                 : dump  ? DUMP
                                                 : kill  ? KILL
                                                 : stop_name ? STOP
                                                             : RUN;
    cfg.port = port_flag;

    uint16_t port;
    if (cli_epmd_port("epmd", port_flag, &port))
        return 2;
    cfg.port = port;
    switch (action) {
    case NAMES:
        return print_names(port, 0);
    case DUMP:
        return print_names(port, 1);
    case KILL: {
        int rc = edi_epmd_kill(NULL, port, 0);
        if (rc == 0) {
            puts("Killed");
            return 0;
        }
        if (rc == EDIST_EAGAIN)
            puts("Killing not allowed - living nodes in database.");
        else
            cli_error("epmd -kill", rc);
        return 1;
    }
    case STOP: {
        int rc = edi_epmd_stop(NULL, port, stop_name, 0);
        if (rc == 0 || rc == EDIST_ENOTFOUND) {
            puts(rc == 0 ? "STOPPED" : "NOEXIST");
            return 0;
        }
        cli_error("epmd -stop", rc);
        return 1;
    }
    case RUN:
        break;
    }

    if (daemon) {
        openlog("edist-epmd", LOG_PID, LOG_DAEMON);
        cfg.log = (edi_log){log_syslog, NULL, EDIST_LOG_DEBUG};
        pid_t pid = -1;
        int rc = edi_epmd_daemon_start(&cfg, &pid);
        if (rc == EDIST_EEXIST) {
            /* As epmd: another port mapper already serves; not an error. */
            fprintf(stderr, "edist epmd: %s\n", edist_last_error());
            return 0;
        }
        if (rc < 0) {
            cli_error("epmd -daemon", rc);
            return 1;
        }
        if (pidfile && write_pidfile(pidfile, pid) < 0)
            return 1;
        return 0;
    }

    cfg.log = (edi_log){cli_log, "edist epmd", EDIST_LOG_DEBUG};
    edi_epmd_server *s = NULL;
    int rc = edi_epmd_server_start(&cfg, &s);
    if (rc == EDIST_EEXIST) {
        fprintf(stderr, "edist epmd: %s\n", edist_last_error());
        return 0;
    }
    if (rc < 0) {
        cli_error("epmd", rc);
        return 1;
    }
    if (pidfile && write_pidfile(pidfile, getpid()) < 0) {
        edi_epmd_server_free(s);
        return 1;
    }
    running = s;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    rc = edi_epmd_server_run(s);
    running = NULL;
    edi_epmd_server_free(s);
    if (rc < 0) {
        cli_error("epmd", rc);
        return 1;
    }
    return 0;
}

int cmd_names(int argc, char **argv)
{
    uint16_t flag = 0, port;
    const cli_opt opts[] = {{"port", "epmd-port", CLI_PORT, &flag, 0, 0}};
    const cli_command cmd = {"names",
                             "usage: edist names [--port P]\n"
                             "  What `epmd -names` prints: the port mapper's nodes and their\n"
                             "  ports (port: $ERL_EPMD_PORT or 4369).\n",
                             opts, 1, 0, 0};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc)
        return rc == CLI_DONE ? 0 : rc;
    if (cli_epmd_port("names", flag, &port))
        return 2;
    return print_names(port, 0);
}
