/* SPDX-License-Identifier: Apache-2.0 */
/* Links and monitors across nodes: the registered process `watcher` on
 * node NAME.
 *
 *   links_monitors NAME COOKIE
 *
 * From erl:
 *   {watcher, 'NAME@host'} ! {watch, Pid, self()}
 *       the watcher links to Pid and monitors it, and answers
 *       {watching, Pid}. When Pid ends, its exit signal arrives as a
 *       message (the watcher traps exits) and so does the monitor's DOWN:
 *       the watcher sends {exited, Pid, Reason} and {down, Pid, Reason}.
 *       If Pid's node goes away, both reasons are noconnection.
 *   {watcher, 'NAME@host'} ! {crash, Reason}
 *       the watcher exits with Reason: every process linked to it gets
 *       the exit signal, every monitor a DOWN, on whatever node.
 * Each watched pid's reports go to the process that asked. */
/* sigwait and pthread_sigmask under -std=c11 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "edist/edist.h"

#define MAX_WATCHED 64

typedef struct watched {
    edist_procid pid, report_to;
    bool used;
} watched;

static edist_pattern *compile(const char *text)
{
    edist_pattern *p = NULL;
    edist_parse_error pe;
    if (edist_pattern_compile(text, strlen(text), &p, &pe) != 0)
        fprintf(stderr, "links_monitors: pattern %s: %s\n", text, pe.message);
    return p;
}

static int pid_of(edist_term_view v, edist_procid *pid)
{
    edist_cursor c;
    edist_cursor_init(&c, v.ptr, v.len);
    return edist_dec_procid(&c, pid);
}

/* {Tag, Pid, Reason} or {Tag, Pid} to `to`. */
static void report(edist_procid to, const char *tag, edist_procid pid, const edist_term_view *reason)
{
    edist_buf b;
    edist_buf_init(&b);
    edist_enc_tuple(&b, reason ? 3 : 2);
    edist_enc_atomz(&b, tag);
    edist_enc_procid(&b, pid);
    if (reason)
        edist_enc_raw(&b, reason->ptr, reason->len);
    if (edist_buf_error(&b) == 0)
        edist_send(to, b.data, b.len);
    edist_buf_free(&b);
}

/* Compiled in main and freed there once the node stopped (a green process
 * still waiting when its node stops never returns). */
static edist_pattern *watch, *exited, *down, *crash;

static void watcher_main(void *arg)
{
    (void)arg;
    edist_trap_exit(true); /* exit signals from linked processes become messages */
    watched w[MAX_WATCHED];
    memset(w, 0, sizeof w);
    for (;;) {
        edist_term_view m, v[2];
        if (edist_receive(NULL, NULL, -1, &m) != 0)
            continue;
        edist_procid pid, to;
        memset(v, 0, sizeof v);
        if (edist_match(watch, m.ptr, m.len, v) == 1) {
            if (pid_of(v[edist_pattern_var_index(watch, "Pid")], &pid) != 0 ||
                pid_of(v[edist_pattern_var_index(watch, "ReplyTo")], &to) != 0)
                continue;
            size_t i = 0;
            while (i < MAX_WATCHED && w[i].used)
                i++;
            if (i == MAX_WATCHED)
                continue;
            edist_ref ref;
            /* To a pid on another node both go over the connection (made
             * now if there is none); a pid already gone gives noproc. */
            if (edist_link(pid) != 0 || edist_monitor(pid, &ref) != 0)
                continue;
            w[i] = (watched){.pid = pid, .report_to = to, .used = true};
            report(to, "watching", pid, NULL);
            continue;
        }
        const edist_pattern *which = NULL;
        if (edist_match(exited, m.ptr, m.len, v) == 1)
            which = exited;
        else if ((memset(v, 0, sizeof v), edist_match(down, m.ptr, m.len, v)) == 1)
            which = down;
        if (which) {
            edist_term_view reason = v[edist_pattern_var_index(which, "Reason")];
            if (pid_of(v[edist_pattern_var_index(which, "Pid")], &pid) != 0)
                continue;
            for (size_t i = 0; i < MAX_WATCHED; i++) {
                if (!w[i].used || !edist_procid_equal(w[i].pid, pid))
                    continue;
                report(w[i].report_to, which == exited ? "exited" : "down", pid, &reason);
                /* the exit and the DOWN both came: the entry is done */
                if (which == down)
                    w[i].used = false;
            }
            continue;
        }
        memset(v, 0, sizeof v);
        if (edist_match(crash, m.ptr, m.len, v) == 1)
            edist_exit(v[0].ptr, v[0].len); /* links and monitors see Reason */
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s NAME COOKIE\n", argv[0]);
        return 2;
    }
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    edist_node_config cfg;
    edist_node_config_init(&cfg);
    cfg.name = argv[1];
    cfg.cookie = argv[2];
    edist_node *node;
    if (edist_node_start(&cfg, &node) != 0) {
        fprintf(stderr, "links_monitors: %s\n", edist_last_error());
        return 1;
    }
    edist_runtime *rt = edist_node_runtime(node);
    edist_procid pid;
    watch = compile("{watch, Pid, ReplyTo}");
    exited = compile("{'EXIT', Pid, Reason}");
    down = compile("{'DOWN', _, process, Pid, Reason}");
    crash = compile("{crash, Reason}");
    if (!watch || !exited || !down || !crash ||
        edist_runtime_spawn(rt, watcher_main, NULL, NULL, &pid) != 0 ||
        edist_runtime_register(rt, "watcher", pid) != 0) {
        fprintf(stderr, "links_monitors: %s\n", edist_last_error());
        edist_node_stop(node);
        return 1;
    }
    printf("ready %s\n", edist_node_name(node));
    fflush(stdout);
    int sig;
    sigwait(&stop, &sig);
    edist_node_stop(node);
    edist_pattern_free(watch);
    edist_pattern_free(exited);
    edist_pattern_free(down);
    edist_pattern_free(crash);
    return 0;
}
