/* SPDX-License-Identifier: Apache-2.0 */
/* `edist rpc NODE MOD FUN 'ARGS'` and `edist send NODE NAME 'TERM'`: a
 * short-lived hidden node (as erl_call makes), the call done as OTP 25's
 * rpc:call does it through erpc: spawn_request of erpc:execute_call/4
 * with a monitor, the result being the monitor's DOWN reason. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "edist/edist.h"

/* A call gives up after this long (rpc:call's infinity would hang a
 * script on a stuck node). */
#define RPC_TIMEOUT_MS 30000

static void log_quiet(void *user, edist_log_level level, const char *line)
{
    (void)user;
    if (level <= EDIST_LOG_WARNING)
        fprintf(stderr, "edist: %s\n", line);
}

typedef struct client_args {
    const char *target;
    const char *cookie;
    const char *pos[3];
    int npos;
} client_args;

static int parse_client(const char *what, int argc, char **argv, int want,
                        client_args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cookie") || !strcmp(argv[i], "-c") ||
            !strcmp(argv[i], "-setcookie")) {
            if (++i >= argc)
                goto usage;
            a->cookie = argv[i];
        } else if (!a->target) {
            a->target = argv[i];
        } else if (a->npos < want) {
            a->pos[a->npos++] = argv[i];
        } else {
            goto usage;
        }
    }
    if (a->target && a->npos == want && strchr(a->target, '@'))
        return 0;
usage:
    if (want == 3)
        fprintf(stderr, "usage: edist %s NODE MOD FUN 'ARGS' [--cookie C]\n",
                what);
    else
        fprintf(stderr, "usage: edist %s NODE NAME 'TERM' [--cookie C]\n", what);
    return 2;
}

/* A hidden, unpublished node named after the target's naming (a dotted
 * host means long names). */
static int start_client(const char *what, const client_args *a,
                        edist_node **node)
{
    char name[300];
    const char *host = strchr(a->target, '@') + 1;
    edist_node_config cfg;
    edist_node_config_init(&cfg);
    cfg.long_names = strchr(host, '.') != NULL;
    if (cfg.long_names)
        snprintf(name, sizeof name, "edist_%s_%ld@127.0.0.1", what,
                 (long)getpid());
    else
        snprintf(name, sizeof name, "edist_%s_%ld", what, (long)getpid());
    cfg.name = name;
    cfg.cookie = a->cookie;
    cfg.hidden = true;
    cfg.publish = false;
    cfg.connect_all = false;
    cfg.services = false;
    cfg.log = log_quiet;
    return edist_node_start(&cfg, node);
}

static int parse_term(const char *what, const char *text, edist_buf *out)
{
    edist_parse_error perr;
    memset(&perr, 0, sizeof perr);
    int rc = edist_term_parse(text, strlen(text), out, NULL, &perr);
    if (rc)
        cli_error(what, rc);
    return rc;
}

/* Prints {badrpc, Reason} (Reason an encoded term) and returns 1. */
static int badrpc(const void *reason, size_t len)
{
    edist_buf t, s;
    edist_buf_init(&t);
    edist_buf_init(&s);
    edist_enc_tuple(&t, 2);
    edist_enc_atomz(&t, "badrpc");
    edist_enc_raw(&t, reason, len);
    edist_term_print(t.data, t.len, &s, NULL);
    printf("%.*s\n", (int)s.len, (const char *)s.data);
    fflush(stdout);
    edist_buf_free(&t);
    edist_buf_free(&s);
    return 1;
}

static int badrpc_atom(const char *atom)
{
    uint8_t mem[64];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    edist_enc_atomz(&b, atom);
    return badrpc(b.data, b.len);
}

/* {badrpc, {'EXIT', R}} with R the view, or {R, Stack}. */
static int badrpc_exit(const edist_term_view *r, const edist_term_view *stack)
{
    edist_buf b;
    edist_buf_init(&b);
    edist_enc_tuple(&b, 2);
    edist_enc_atomz(&b, "EXIT");
    if (stack) {
        edist_enc_tuple(&b, 2);
        edist_enc_raw(&b, r->ptr, r->len);
        edist_enc_raw(&b, stack->ptr, stack->len);
    } else {
        edist_enc_raw(&b, r->ptr, r->len);
    }
    int rc = badrpc(b.data, b.len);
    edist_buf_free(&b);
    return rc;
}

static int print_value(const void *term, size_t len)
{
    edist_buf s;
    edist_buf_init(&s);
    int rc = edist_term_print(term, len, &s, NULL);
    if (rc == 0)
        printf("%.*s\n", (int)s.len, (const char *)s.data);
    fflush(stdout);
    edist_buf_free(&s);
    return rc ? 1 : 0;
}

/* The DOWN reason of erpc:execute_call: {Ref, return, V} -> V (exit 0);
 * {Ref, throw, T} -> T as rpc:call returns it (exit 0); {Ref, exit, R} ->
 * {badrpc, {'EXIT', R}}; {Ref, error, R, Stack} -> {badrpc, {'EXIT',
 * {R, Stack}}}; noconnection -> {badrpc, nodedown}; anything else (the
 * process died otherwise) {badrpc, {'EXIT', Reason}}. */
static int report(const edist_ref *ref, edist_term_view reason)
{
    edist_cursor c;
    uint32_t n;
    edist_ref r;
    edist_atom cls, a;
    edist_term_view v, stack;
    edist_cursor_init(&c, reason.ptr, reason.len);
    if (edist_dec_tuple(&c, &n) == 0 && (n == 3 || n == 4) &&
        edist_dec_ref(&c, &r) == 0 && edist_ref_equal(&r, ref) &&
        edist_dec_atom(&c, &cls) == 0 && edist_dec_term(&c, &v) == 0) {
        if (n == 3 && (edist_atom_eq(&cls, "return") ||
                       edist_atom_eq(&cls, "throw")))
            return print_value(v.ptr, v.len);
        if (n == 3 && edist_atom_eq(&cls, "exit"))
            return badrpc_exit(&v, NULL);
        if (n == 4 && edist_atom_eq(&cls, "error") &&
            edist_dec_term(&c, &stack) == 0)
            return badrpc_exit(&v, &stack);
    }
    edist_cursor_init(&c, reason.ptr, reason.len);
    if (edist_dec_atom(&c, &a) == 0 && edist_atom_eq(&a, "noconnection"))
        return badrpc_atom("nodedown");
    return badrpc_exit(&reason, NULL);
}

static int do_rpc(edist_node *node, const client_args *a, const edist_buf *args)
{
    int rc = edist_node_connect(node, a->target, 0);
    if (rc) {
        cli_error("rpc", rc);
        return badrpc_atom("nodedown");
    }
    edist_runtime *rt = edist_node_runtime(node);
    edist_procid self;
    rc = edist_proc_attach_thread(rt, 0, &self);
    if (rc) {
        cli_error("rpc", rc);
        return badrpc_atom("system_limit");
    }
    edist_ref ref;
    edist_make_ref(&ref);
    edist_buf call;
    edist_buf_init(&call);
    edist_enc_list(&call, 4);
    edist_enc_ref(&call, &ref);
    edist_enc_atomz(&call, a->pos[0]);
    edist_enc_atomz(&call, a->pos[1]);
    edist_enc_raw(&call, args->data, args->len);
    edist_enc_nil(&call);
    edist_spawn_opts opts = {.monitor = true};
    edist_procid pid;
    edist_ref req;
    rc = edist_buf_error(&call);
    if (rc == 0)
        rc = edist_spawn_remote(a->target, "erpc", "execute_call", call.data,
                                call.len, &opts, RPC_TIMEOUT_MS, &pid, &req);
    edist_buf_free(&call);
    if (rc) {
        cli_error("rpc", rc);
        int out = rc == EDIST_ECLOSED ? badrpc_atom("nodedown")
                                      : badrpc_atom("timeout");
        edist_proc_detach_thread(NULL, 0);
        return out;
    }
    int64_t end_wait = RPC_TIMEOUT_MS;
    for (;;) {
        edist_term_view msg, reason;
        rc = edist_receive(NULL, NULL, end_wait, &msg);
        if (rc) {
            int out = badrpc_atom("timeout");
            edist_proc_detach_thread(NULL, 0);
            return out;
        }
        edist_cursor c;
        uint32_t n;
        edist_atom tag, kind;
        edist_ref r;
        edist_term_view who;
        edist_cursor_init(&c, msg.ptr, msg.len);
        if (edist_dec_tuple(&c, &n) == 0 && n == 5 &&
            edist_dec_atom(&c, &tag) == 0 && edist_atom_eq(&tag, "DOWN") &&
            edist_dec_ref(&c, &r) == 0 && edist_ref_equal(&r, &req) &&
            edist_dec_atom(&c, &kind) == 0 && edist_dec_term(&c, &who) == 0 &&
            edist_dec_term(&c, &reason) == 0) {
            int out = report(&ref, reason);
            edist_proc_detach_thread(NULL, 0);
            return out;
        }
    }
}

int cmd_rpc(int argc, char **argv)
{
    client_args a;
    if (parse_client("rpc", argc, argv, 3, &a))
        return 2;
    edist_buf args;
    edist_buf_init(&args);
    if (parse_term("rpc: ARGS", a.pos[2], &args)) {
        edist_buf_free(&args);
        return 2;
    }
    edist_cursor c;
    edist_cursor_init(&c, args.data, args.len);
    edist_term_info info;
    if (edist_peek(&c, &info) ||
        (info.type != EDIST_TYPE_NIL && info.type != EDIST_TYPE_LIST)) {
        fprintf(stderr, "edist: rpc: ARGS must be a list, e.g. '[1, 2]'\n");
        edist_buf_free(&args);
        return 2;
    }
    edist_node *node;
    int rc = start_client("rpc", &a, &node);
    if (rc) {
        cli_error("rpc", rc);
        edist_buf_free(&args);
        return badrpc_atom("nodedown");
    }
    int out = do_rpc(node, &a, &args);
    edist_buf_free(&args);
    edist_node_stop(node);
    return out;
}

int cmd_send(int argc, char **argv)
{
    client_args a;
    if (parse_client("send", argc, argv, 2, &a))
        return 2;
    edist_buf term;
    edist_buf_init(&term);
    if (parse_term("send: TERM", a.pos[1], &term)) {
        edist_buf_free(&term);
        return 2;
    }
    edist_node *node;
    int rc = start_client("send", &a, &node);
    if (rc == 0) {
        rc = edist_node_connect(node, a.target, 0);
        if (rc == 0)
            rc = edist_node_send_reg(node, a.target, a.pos[0], term.data,
                                     term.len);
        if (rc)
            cli_error("send", rc);
        edist_node_stop(node); /* flushes what is queued */
    } else {
        cli_error("send", rc);
    }
    edist_buf_free(&term);
    return rc ? 1 : 0;
}
