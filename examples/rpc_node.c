/* SPDX-License-Identifier: Apache-2.0 */
/* A node that exports C functions for rpc and erl_call.
 *
 *   rpc_node NAME COOKIE        (a short name; Ctrl-C or SIGTERM stops it)
 *
 * From erl:      rpc:call('NAME@host', calc, add, [1, 2])   -> 3
 *                rpc:call('NAME@host', calc, 'div', [1, 0])  -> {badrpc, {'EXIT', badarith}}
 * From a shell:  erl_call -sname NAME -c COOKIE -a 'calc add [1,2]'
 *
 * What a user must know that the headers do not say:
 * - Block SIGINT and SIGTERM before edist_node_start: the node starts
 *   threads, which inherit the mask; then only this thread takes them
 *   (sigwait), and no signal lands in a node thread.
 * - Export in the config's setup hook: it runs before the node serves
 *   any connection, so no early caller gets undef.
 * - An export runs in a process of its own. It returns its value in
 *   result, exits with a reason of its choosing (edist_exit), or returns
 *   an edist error code, which the caller sees as error
 *   {edist_error, Name} (einval, etype, ...). A crash in C (a bad pointer)
 *   is not an Erlang exit: it takes the whole node down. */
/* sigwait and pthread_sigmask under -std=c11 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "edist/edist.h"

/* calc:add(A, B) and calc:mul(A, B) on 64-bit integers. */
static int calc(void *user, const edist_term_view *args, uint32_t arity, edist_buf *result)
{
    (void)arity;
    const char *op = user;
    edist_cursor a, b;
    int64_t x, y;
    edist_cursor_init(&a, args[0].ptr, args[0].len);
    edist_cursor_init(&b, args[1].ptr, args[1].len);
    if (edist_dec_int64(&a, &x) != 0 || edist_dec_int64(&b, &y) != 0)
        return EDIST_ETYPE; /* error {edist_error, etype} */
    /* Peer input: a result past 64 bits is an error, never undefined C
     * (Erlang would give a bignum; edist_enc_big could too). */
    int64_t r;
    if (op[0] == 'a' ? __builtin_add_overflow(x, y, &r) : __builtin_mul_overflow(x, y, &r))
        return EDIST_ERANGE; /* error {edist_error, erange} */
    return edist_enc_int(result, r);
}

/* calc:div(A, B): exit(badarith) on a zero divisor (and on the one
 * quotient past 64 bits). */
static int calc_div(void *user, const edist_term_view *args, uint32_t arity, edist_buf *result)
{
    (void)user;
    (void)arity;
    edist_cursor a, b;
    int64_t x, y;
    edist_cursor_init(&a, args[0].ptr, args[0].len);
    edist_cursor_init(&b, args[1].ptr, args[1].len);
    if (edist_dec_int64(&a, &x) != 0 || edist_dec_int64(&b, &y) != 0)
        return EDIST_ETYPE;
    if (y == 0 || (y == -1 && x == INT64_MIN)) { /* INT64_MIN / -1 traps too */
        uint8_t mem[16];
        edist_buf reason;
        edist_buf_init_fixed(&reason, mem, sizeof mem);
        edist_enc_atomz(&reason, "badarith");
        edist_exit(reason.data, reason.len); /* does not return */
    }
    return edist_enc_int(result, x / y);
}

static int export_all(struct edist_runtime *rt, void *user)
{
    (void)user;
    int rc = edist_export_function(rt, "calc", "add", 2, calc, "add");
    if (rc == 0)
        rc = edist_export_function(rt, "calc", "mul", 2, calc, "mul");
    if (rc == 0)
        rc = edist_export_function(rt, "calc", "div", 2, calc_div, NULL);
    return rc;
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
    cfg.setup = export_all;
    edist_node *node;
    if (edist_node_start(&cfg, &node) != 0) {
        fprintf(stderr, "rpc_node: %s\n", edist_last_error());
        return 1;
    }
    printf("ready %s\n", edist_node_name(node));
    fflush(stdout);
    int sig;
    sigwait(&stop, &sig);
    edist_node_stop(node);
    return 0;
}
