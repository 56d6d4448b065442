/* SPDX-License-Identifier: Apache-2.0 */
/* `edist rpc NODE MOD FUN 'ARGS'` and `edist send NODE NAME 'TERM'`: a
 * short-lived hidden node (as erl_call makes), the call made with
 * edist_rpc_call (rpc.h): OTP 25's rpc:call through erpc, a spawn_request
 * of erpc:execute_call/4 with a monitor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "log.h"
#include "edist/edist.h"

/* A call gives up after this long by default (rpc:call's infinity would
 * hang a script on a stuck node); --timeout changes it. */
#define RPC_TIMEOUT_MS 30000


typedef struct client_args {
    const char *target;
    const char *cookie;
    const char *pos[3];
    uint16_t epmd_port; /* 0: $ERL_EPMD_PORT or 4369 */
    int64_t timeout_ms;
} client_args;

static const char rpc_usage[] =
    "usage: edist rpc NODE MOD FUN 'ARGS' [--cookie C] [--epmd-port P] [--timeout S]\n"
    "  rpc:call(NODE, MOD, FUN, ARGS) from a short-lived hidden node, as\n"
    "  erl_call makes: prints the value (exit 0) or {badrpc, Reason}\n"
    "  (exit 1). ARGS is a list in Erlang syntax, e.g. '[1, 2]'. --timeout:\n"
    "  seconds to wait (default 30), then {badrpc, timeout}. -setcookie and\n"
    "  -c are --cookie.\n";
static const char send_usage[] =
    "usage: edist send NODE NAME 'TERM' [--cookie C] [--epmd-port P] [--timeout S]\n"
    "  {NAME, NODE} ! TERM from a short-lived hidden node; exit 0 once the\n"
    "  message is handed to the connection. --timeout bounds the connect.\n";

/* NODE and want more arguments, the options of a client; 0, CLI_DONE or 2. */
static int parse_client(const char *what, int argc, char **argv, int want,
                        client_args *a)
{
    memset(a, 0, sizeof *a);
    a->timeout_ms = RPC_TIMEOUT_MS;
    const cli_opt opts[] = {
        CLI_OPT_COOKIE(&a->cookie),
        {"c", NULL, CLI_TEXT, &a->cookie, 0, 0},
        CLI_OPT_EPMD_PORT(&a->epmd_port),
        CLI_OPT_TIMEOUT(&a->timeout_ms),
    };
    const cli_command cmd = {what, want == 3 ? rpc_usage : send_usage, opts,
                             sizeof opts / sizeof opts[0], want + 1, want + 1};
    const char *pos[4];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc)
        return rc;
    a->target = pos[0];
    for (int i = 0; i < want; i++)
        a->pos[i] = pos[1 + i];
    const char *at = strchr(a->target, '@');
    if (!at || at == a->target || !at[1]) {
        fprintf(stderr, "edist %s: bad node name '%s' (want NAME@HOST)\n", what, a->target);
        return 2;
    }
    if (cli_epmd_port(what, a->epmd_port, &a->epmd_port))
        return 2;
    return 0;
}

int cli_start_client(const char *what, const char *target, const char *cookie,
                     uint16_t epmd_port, edist_node **node)
{
    char name[300];
    const char *host = strchr(target, '@') + 1;
    edist_node_config cfg;
    edist_node_config_init(&cfg);
    cfg.long_names = strchr(host, '.') != NULL;
    if (cfg.long_names)
        snprintf(name, sizeof name, "edist_%s_%ld@127.0.0.1", what,
                 (long)getpid());
    else
        snprintf(name, sizeof name, "edist_%s_%ld", what, (long)getpid());
    cfg.name = name;
    cfg.cookie = cookie;
    cfg.epmd_port = epmd_port;
    cfg.hidden = true;
    cfg.publish = false;
    cfg.connect_all = false;
    cfg.services = false;
    cfg.log = cli_log_quiet;
    cfg.log_user = "edist client";
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

/* rpc:call through the library (rpc.h): the value (exit 0) or
 * {badrpc, Reason} as rpc:call returns it (exit 1). */
static int do_rpc(edist_node *node, const client_args *a, const edist_buf *args)
{
    int rc = edist_node_connect(node, a->target, (int)a->timeout_ms);
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
    edist_buf result;
    edist_buf_init(&result);
    edist_rpc_status status = EDIST_RPC_BADRPC;
    rc = edist_rpc_call(a->target, a->pos[0], a->pos[1], args->data, args->len,
                        a->timeout_ms, &result, &status);
    int out;
    if (rc) {
        cli_error("rpc", rc);
        out = rc == EDIST_ECLOSED ? badrpc_atom("nodedown")
                                  : badrpc_atom("timeout");
    } else {
        out = print_value(result.data, result.len);
        if (status != EDIST_RPC_OK)
            out = 1;
    }
    edist_buf_free(&result);
    edist_proc_detach_thread(NULL, 0);
    return out;
}

int cmd_rpc(int argc, char **argv)
{
    client_args a;
    int prc = parse_client("rpc", argc, argv, 3, &a);
    if (prc)
        return prc == CLI_DONE ? 0 : prc;
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
    int rc = cli_start_client("rpc", a.target, a.cookie, a.epmd_port, &node);
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
    int prc = parse_client("send", argc, argv, 2, &a);
    if (prc)
        return prc == CLI_DONE ? 0 : prc;
    edist_buf term;
    edist_buf_init(&term);
    if (parse_term("send: TERM", a.pos[1], &term)) {
        edist_buf_free(&term);
        return 2;
    }
    edist_node *node;
    int rc = cli_start_client("send", a.target, a.cookie, a.epmd_port, &node);
    if (rc == 0) {
        rc = edist_node_connect(node, a.target, (int)a.timeout_ms);
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
