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

#include "cli.h"
#include "control/epmd_client.h"
#include "control/epmd_server.h"
#include "edist/edist.h"

static void epmd_usage(FILE *out)
{
    fputs(
        "usage: edist epmd [-port P] [-address A[,B...]] [-daemon [-pidfile "
        "FILE]]\n"
        "                  [-relaxed_command_check] [-packet_timeout SECONDS]\n"
        "                  [-packet_timeout_ms MS] [-max_connections N]\n"
        "                  [-idle_exit SECONDS] [-d]\n"
        "       edist epmd [-port P] -names | -dump | -kill | -stop NAME\n"
        "  Runs an epmd-compatible port mapper. The port defaults to\n"
        "  $ERL_EPMD_PORT or 4369, the addresses to $ERL_EPMD_ADDRESS or "
        "every\n"
        "  interface (the loopback is always served). -daemon detaches and\n"
        "  returns once the port is bound. SIGTERM/SIGINT stop it.\n"
        "  -idle_exit: exit once no node has been registered (and no\n"
        "  connection open) for that long, as the port mapper a node embeds\n"
        "  does; by default it runs until stopped, as epmd.\n",
        out);
}

/* Parses a decimal number in [lo, hi]; 0 on success. */
static int parse_num(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static void log_stderr(void *user, edist_log_level level, const char *line)
{
    (void)user;
    (void)level;
    time_t t = time(NULL);
    struct tm tm;
    char ts[32];
    localtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(stderr, "edist epmd: %s: %s\n", ts, line);
}

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
    int daemon = 0;
    const char *pidfile = NULL;
    enum { RUN, NAMES, DUMP, KILL, STOP } action = RUN;
    const char *stop_name = NULL;
    long v;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-port") && next && !parse_num(next, 1, 65535, &v)) {
            cfg.port = (int)v;
            i++;
        } else if (!strcmp(a, "-address") && next) {
            cfg.addresses = next;
            i++;
        } else if (!strcmp(a, "-daemon")) {
            daemon = 1;
        } else if (!strcmp(a, "-pidfile") && next) {
            pidfile = next;
            i++;
        } else if (!strcmp(a, "-relaxed_command_check")) {
            cfg.relaxed_command_check = 1;
        } else if (!strcmp(a, "-packet_timeout") && next &&
                   !parse_num(next, 1, 86400, &v)) {
            cfg.packet_timeout_ms = (unsigned)v * 1000u;
            i++;
        } else if (!strcmp(a, "-packet_timeout_ms") && next &&
                   !parse_num(next, 1, 86400000, &v)) {
            cfg.packet_timeout_ms = (unsigned)v;
            i++;
        } else if (!strcmp(a, "-idle_exit") && next &&
                   !parse_num(next, 1, 86400, &v)) {
            cfg.idle_exit_ms = (unsigned)v * 1000u;
            i++;
        } else if (!strcmp(a, "-max_connections") && next &&
                   !parse_num(next, 1, 1 << 20, &v)) {
            cfg.max_connections = (unsigned)v;
            i++;
        } else if (!strcmp(a, "-d") || !strcmp(a, "-debug")) {
            /* Every event is logged already; accepted for epmd compatibility.
             */
        } else if (!strcmp(a, "-names")) {
            action = NAMES;
        } else if (!strcmp(a, "-dump")) {
            action = DUMP;
        } else if (!strcmp(a, "-kill")) {
            action = KILL;
        } else if (!strcmp(a, "-stop") && next) {
            action = STOP;
            stop_name = next;
            i++;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            epmd_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "edist epmd: bad argument '%s'\n", a);
            epmd_usage(stderr);
            return 2;
        }
    }

    uint16_t port = cfg.port ? (uint16_t)cfg.port : edi_epmd_default_port();
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

    cfg.log = (edi_log){log_stderr, NULL, EDIST_LOG_DEBUG};
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
    long v;
    uint16_t port = 0;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-port") || !strcmp(argv[i], "--port")) &&
            i + 1 < argc && !parse_num(argv[i + 1], 1, 65535, &v)) {
            port = (uint16_t)v;
            i++;
        } else {
            fprintf(stderr, "usage: edist names [-port P]\n");
            return 2;
        }
    }
    return print_names(port ? port : edi_epmd_default_port(), 0);
}
