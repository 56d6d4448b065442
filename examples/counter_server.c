/* SPDX-License-Identifier: Apache-2.0 */
/* A process that receives with patterns and replies: a counter, the
 * registered process `counter` on node NAME.
 *
 *   counter_server NAME COOKIE
 *
 * From erl (R = make_ref()):
 *   {counter, 'NAME@host'} ! {self(), R, {add, 5}}  -> {R, 5}
 *   {counter, 'NAME@host'} ! {self(), R, get}       -> {R, 5}
 *   {counter, 'NAME@host'} ! {self(), R, pause}     -> {R, paused}; until
 *       {counter, ...} ! resume, only `resume` is taken: the adds and gets
 *       sent meanwhile stay queued, in order, and are answered after it
 *       (selective receive, as `receive resume -> ok end` in Erlang).
 * Anything else is taken and dropped, so the mailbox never fills up with
 * messages nobody will match. */
/* sigwait and pthread_sigmask under -std=c11 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "edist/edist.h"

static edist_pattern *compile(const char *text)
{
    edist_pattern *p = NULL;
    edist_parse_error pe;
    if (edist_pattern_compile(text, strlen(text), &p, &pe) != 0)
        fprintf(stderr, "counter_server: pattern %s: %s\n", text, pe.message);
    return p;
}

/* {Ref, Value} to From. */
static void reply(edist_term_view from, edist_term_view ref, const edist_buf *value)
{
    edist_cursor c;
    edist_procid to;
    edist_cursor_init(&c, from.ptr, from.len);
    if (edist_dec_procid(&c, &to) != 0)
        return;
    edist_buf b;
    edist_buf_init(&b);
    edist_enc_tuple(&b, 2);
    edist_enc_raw(&b, ref.ptr, ref.len);
    edist_enc_raw(&b, value->data, value->len);
    if (edist_buf_error(&b) == 0)
        edist_send(to, b.data, b.len);
    edist_buf_free(&b);
}

/* Compiled once in main, before the process runs, and freed there after
 * the node stopped: patterns are read-only, and a green process still
 * waiting when its node stops never returns (what it owns must be freed
 * by someone else, or by an edist_at_exit function). */
static edist_pattern *request, *resume;

static void counter_main(void *arg)
{
    (void)arg;
    int from_i = edist_pattern_var_index(request, "From");
    int ref_i = edist_pattern_var_index(request, "Ref");
    int req_i = edist_pattern_var_index(request, "Req");
    int64_t total = 0;
    uint8_t mem[64];
    edist_buf value;
    for (;;) {
        edist_term_view m, vars[3] = {{0}};
        /* Anything: what is not a request is dropped here. */
        if (edist_receive(NULL, NULL, -1, &m) != 0)
            continue;
        if (edist_match(request, m.ptr, m.len, vars) != 1)
            continue;
        edist_term_view from = vars[from_i], ref = vars[ref_i], req = vars[req_i];
        edist_buf_init_fixed(&value, mem, sizeof mem);
        edist_cursor c;
        uint32_t arity;
        edist_atom op;
        int64_t n, sum;
        edist_cursor_init(&c, req.ptr, req.len);
        if (edist_dec_tuple(&c, &arity) == 0 && arity == 2 && edist_dec_atom(&c, &op) == 0 &&
            op.len == 3 && memcmp(op.ptr, "add", 3) == 0 && edist_dec_int64(&c, &n) == 0 &&
            !__builtin_add_overflow(total, n, &sum)) { /* past 64 bits: badarg */
            total = sum;
            edist_enc_int(&value, total);
        } else if (edist_term_equal(req.ptr, req.len, "\x77\x03get", 5)) {
            edist_enc_int(&value, total);
        } else if (edist_term_equal(req.ptr, req.len, "\x77\x05pause", 7)) {
            edist_enc_atomz(&value, "paused");
            reply(from, ref, &value);
            /* Only `resume` now: the rest waits in the mailbox, in order.
             * (from and ref point into m, which the next receive frees:
             * they were used before it.) */
            edist_receive(resume, NULL, -1, &m);
            continue;
        } else {
            edist_enc_atomz(&value, "badarg");
        }
        reply(from, ref, &value);
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
        fprintf(stderr, "counter_server: %s\n", edist_last_error());
        return 1;
    }
    edist_runtime *rt = edist_node_runtime(node);
    edist_procid pid;
    request = compile("{From, Ref, Req}");
    resume = compile("resume");
    if (!request || !resume || edist_runtime_spawn(rt, counter_main, NULL, NULL, &pid) != 0 ||
        edist_runtime_register(rt, "counter", pid) != 0) {
        fprintf(stderr, "counter_server: %s\n", edist_last_error());
        edist_node_stop(node);
        return 1;
    }
    printf("ready %s\n", edist_node_name(node));
    fflush(stdout);
    int sig;
    sigwait(&stop, &sig);
    edist_node_stop(node);
    edist_pattern_free(request);
    edist_pattern_free(resume);
    return 0;
}
