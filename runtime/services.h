/* SPDX-License-Identifier: Apache-2.0 */
/* What every edist node exposes to other nodes (shared/CONTRACT.md):
 * the registered processes `echo`, `net_kernel` (the is_auth call of
 * net_adm:ping), `rex` (the classic rpc server, erl_call's face and the
 * gen_server face) and `pg` (the default scope of OTP's pg), and the exported functions remote nodes spawn and
 * call: erpc:execute_call/4 and erpc:execute_cast/3 (what rpc:call,
 * erpc:call and rpc:cast spawn), erlang:node/0, nodes/0, nodes/1,
 * is_alive/0, throw/1, error/1, exit/1, and the edist_demo:* functions.
 *
 * The node calls edi_services_start once after creating its runtime; what
 * only the node knows (connected nodes, liveness, its stdout) comes in
 * through the callbacks of edi_services_config, so this file depends on
 * nothing of the node's internals.
 *
 * Results follow OTP 25 exactly (kernel's erpc.erl and rpc.erl): an
 * erpc:execute_call process exits with {Ref, return, Value},
 * {Ref, throw, T}, {Ref, exit, R} or {Ref, error, R, Stack}; rex answers
 * Value, T, {badrpc, {'EXIT', R}} or {badrpc, {'EXIT', {R, Stack}}}; an
 * unknown function is error undef with the stack [{M, F, Args, []}], as
 * apply/3 gives it. Errors raised by C functions carry the stack
 * [{M, F, Args, []}], as erts gives it for a BIF. */
#ifndef EDI_SERVICES_H
#define EDI_SERVICES_H

#include <stdbool.h>
#include <stddef.h>

#include "edist/proc.h"
#include "edist/term.h"

typedef struct edist_runtime edi_rt;
typedef struct edi_services edi_services;

/* Which nodes erlang:nodes/0,1 asks the node for (bits). */
enum {
    EDI_NODES_VISIBLE = 1u << 0,
    EDI_NODES_HIDDEN = 1u << 1,
    EDI_NODES_CONNECTED = EDI_NODES_VISIBLE | EDI_NODES_HIDDEN,
    /* every node this node knows of, connected or not (nodes(known)) */
    EDI_NODES_KNOWN = 1u << 2,
};

/* Services not to start (bits of edi_services_config.disable). */
enum {
    EDI_SERVICE_ECHO = 1u << 0,
    EDI_SERVICE_NET_KERNEL = 1u << 1,
    EDI_SERVICE_REX = 1u << 2,
    EDI_SERVICE_EXPORTS = 1u << 3, /* erpc:*, erlang:*, edist_demo:*, pg:* */
    EDI_SERVICE_PG = 1u << 4,      /* the `pg` scope process */
    EDI_SERVICE_GLOBAL = 1u << 5,  /* global_name_server, its locker and registrar */
};

/* monitor_nodes options (bits). */
enum {
    EDI_MN_HIDDEN = 1u << 0,    /* hidden nodes too ({node_type, all}) */
    EDI_MN_INFO = 1u << 1,      /* three-tuples with an info map */
    EDI_MN_NODE_TYPE = 1u << 2, /* node_type => visible | hidden */
    EDI_MN_REASON = 1u << 3,    /* nodedown_reason => R (nodedown) */
    EDI_MN_CONN_ID = 1u << 4,   /* connection_id => Integer */
};

/* One node name for a nodes callback. */
typedef void (*edi_services_node_fn)(void *ctx, const char *name, size_t len);

/* Callbacks run on the runtime's shard thread (the node's loop thread),
 * from inside a process: they must not block. Any may be NULL. */
typedef struct edi_services_config {
    void *user;
    /* The names of the nodes of the kinds in `which` (EDI_NODES_* bits),
     * each passed once to add(ctx, name, len), this node excluded.
     * Returns 0 or a negative edist_err. NULL: no other nodes. */
    int (*nodes)(void *user, unsigned which, edi_services_node_fn add,
                 void *ctx);
    /* Is the node named node connected now? pg sends as pg.erl does, with
     * [noconnect]: it must never set up a connection (a disconnect would
     * be undone by the next join). NULL: every node counts as connected. */
    bool (*connected)(void *user, const char *node);
    /* erlang:is_alive/0. NULL: true unless the runtime's node is
     * nonode@nohost. */
    bool (*is_alive)(void *user);
    /* Tell pid (a process of the runtime) of every nodeup and nodedown
     * from now on, as net_kernel:monitor_nodes(true, Options) does; any
     * number of processes may subscribe. opts 0: {nodeup, Node} and
     * {nodedown, Node} of visible nodes. EDI_MN_INFO: {nodeup, Node,
     * Info} and {nodedown, Node, Info}, Info a map with what the other
     * bits ask for (monitor_nodes' map options). NULL: nobody is told
     * (pg then discovers only the nodes connected when it starts). */
    int (*monitor_nodes)(void *user, edist_procid pid, unsigned opts);
    /* erlang:disconnect_node(Node) (global's remove_connection). NULL:
     * the request is ignored. */
    void (*disconnect)(void *user, const char *node);
    /* edist:stats/0: append the node's counters to pairs as key/value
     * pairs of a map (atom keys; edi_services_stat appends one), adding
     * their number to *count. NULL: the runtime's counters only. */
    int (*stats)(void *user, edist_buf *pairs, uint32_t *count);
    /* edist_demo:hello/0: one line (no newline) for the node's stdout,
     * to be written and flushed at once. NULL: nothing is printed. */
    void (*print_line)(void *user, const char *line, size_t len);
    /* connect_all false (erl's -connect_all false): global keeps its
     * names but syncs with no node, as OTP's global then does. */
    bool global_passive;
    /* global's calls to other nodes' name servers: the wait for an
     * answer (0: EDIST_NODE_GLOBAL_CALL_TIMEOUT_MS_DEFAULT). */
    uint32_t global_call_timeout_ms;
    /* The keeper starts a service that ends again unless it ended more
     * than service_restarts times (at most EDIST_NODE_SERVICE_RESTARTS_
     * MAX) in service_restart_period_ms (0: the EDIST_NODE_ defaults). */
    uint32_t service_restarts;
    uint32_t service_restart_period_ms;
    /* Publish edist:stats/0's map to this file every stats_interval_ms
     * (control/stats_file.h), from a process of the services. NULL or 0:
     * not published. */
    const char *stats_path;
    uint32_t stats_interval_ms;
    /* EDI_SERVICE_* bits: services not to start (0: all of them). */
    unsigned disable;
} edi_services_config;

/* Export the functions and spawn and register `echo`, `net_kernel` and
 * `rex` on rt (minus cfg->disable). cfg is copied; cfg->user must live
 * until edi_services_free. From the thread that created rt before its
 * loop runs, or from any thread once it runs.
 *
 * Returns 0, or a negative edist_err (EDIST_EEXIST: one of the names is
 * taken; EDIST_ENOMEM). *out is set whenever anything was started, also
 * on error: processes and exports of rt refer to it, so it is freed with
 * edi_services_free after edi_rt_free (or edist_runtime_stop), never
 * before. */
int edi_services_start(edi_rt *rt, const edi_services_config *cfg,
                       edi_services **out);
/* After the runtime is freed (no process of it runs any more). NULL is a
 * no-op. */
void edi_services_free(edi_services *s);
/* The node begins to stop: services that end are not started again. */
void edi_services_stopping(edi_services *s);

/* One counter of edist:stats/0: the pair key => v appended to b, *n
 * counted up (for the stats callback). */
void edi_services_stat(edist_buf *b, uint32_t *n, const char *key, uint64_t v);

/* ---- for exported C functions
 * ------------------------------------------------ The runtime's export API has
 * two outcomes: return a value, or exit. An exported function that must raise
 * as Erlang code does (throw/1, error/1: what erpc and rpc report differently
 * from an exit) calls edi_raise from the process it runs in.
 *
 * Under erpc:execute_call, rpc and rex the caller gets the exception in
 * OTP's form (error: the stack [{M, F, Args, []}] when stack is NULL).
 * In a process spawned directly (spawn/4), the process ends as an
 * uncaught exception ends an Erlang process: throw T with
 * {{nocatch, T}, []}, error R with {R, Stack} (Stack [] when NULL), exit
 * R with R.
 *
 * reason and stack are encoded terms (stack a list; may be NULL). Never
 * returns from a green process; returns a negative edist_err when the
 * caller is not a process or the arguments are bad. */
typedef enum edi_raise_class {
    EDI_RAISE_THROW = 0,
    EDI_RAISE_ERROR = 1,
    EDI_RAISE_EXIT = 2,
} edi_raise_class;
int edi_raise(edi_raise_class cls, const void *reason, size_t len,
              const void *stack, size_t stack_len);
/* edi_raise(EDI_RAISE_ERROR, atom) for the common error atoms (badarg,
 * badarith, ...). */
int edi_raise_error_atom(const char *atom);
/* The exception of an export that failed with code: {edist_error, Name}
 * (edist_error_name). 0 or the buffer's error. */
int edi_enc_export_error(edist_buf *b, int code);

/* edist_demo:add/2's arithmetic, exposed for tests and fuzzing: the sum
 * of two encoded integers of any size appended to out, encoded
 * canonically (the smallest form erts would use). Pure; any thread.
 * EDIST_ETYPE if a or b is not an integer; EDIST_ENOMEM. */
int edi_services_int_add(edist_term_view a, edist_term_view b, edist_buf *out);

#endif
