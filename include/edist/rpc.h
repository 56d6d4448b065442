/* SPDX-License-Identifier: Apache-2.0 */
/* Remote procedure calls, as OTP 25's rpc:call / erpc:call / erpc:cast do
 * them: a spawn_request of erpc:execute_call/4 (or execute_cast/3) on the
 * target node with a monitor, the result travelling back as the monitor's
 * DOWN reason. This works against BEAM nodes and edist nodes alike, and
 * against this node itself (node NULL or this node's name: the same path,
 * spawned locally).
 *
 * Callers: every function here acts as the calling process (proc.h): a
 * green process, or an OS thread attached with edist_proc_attach_thread.
 * From any other thread they return EDIST_EINVAL. Calls use only the
 * messages that belong to them (selective receive on the request's
 * reference): other messages in the caller's mailbox stay queued.
 *
 * args is an encoded list term (the arguments, [] for none); a leading
 * 131 version byte is accepted. Results are encoded terms (no 131 byte)
 * appended to the caller's buffer after it is reset.
 *
 * Timeouts: timeout_ms < 0 waits forever. On timeout the spawn request is
 * abandoned, or the monitor removed with its DOWN flushed, as erpc does:
 * nothing of the call reaches the caller's mailbox afterwards. The remote
 * process is not killed (erpc does not kill it either). */
#ifndef EDIST_RPC_H
#define EDIST_RPC_H

#include <stddef.h>
#include <stdint.h>

#include "edist/error.h"
#include "edist/term.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What rpc:call returned. */
typedef enum edist_rpc_status {
    /* result holds the value: what the function returned, or what it
     * threw (rpc:call returns a thrown value as if returned, except a
     * thrown {'EXIT', _}, which is badrpc). */
    EDIST_RPC_OK = 0,
    /* result holds {badrpc, Reason} exactly as rpc:call returns it:
     * {badrpc, {'EXIT', R}} when the function exited with R,
     * {badrpc, {'EXIT', {R, Stack}}} for an error R, {badrpc, nodedown}
     * when the node cannot be reached or went down, {badrpc, timeout},
     * {badrpc, notsup}, {badrpc, {'EXIT', R}} when the process died from
     * a signal R or the spawn failed with R. */
    EDIST_RPC_BADRPC = 1,
} edist_rpc_status;

/* rpc:call(Node, Module, Function, Args, Timeout). Returns 0 with *status
 * and *result set; negative edist_err for a call that could not be made
 * (EDIST_EINVAL: not a process, bad names, args not a list, NULL
 * result/status; EDIST_ENOMEM). node NULL: this node. */
int edist_rpc_call(const char *node, const char *module, const char *function,
                   const void *args, size_t args_len, int64_t timeout_ms,
                   edist_buf *result, edist_rpc_status *status);

/* How erpc:call ended: returned, or raised an exception of this class. */
typedef enum edist_erpc_class {
    EDIST_ERPC_RETURN = 0, /* result: the value */
    EDIST_ERPC_THROW,      /* result: the thrown value */
    /* result: the exit reason erpc:call raises: {exception, Reason} (the
     * function exited) or {signal, Reason} (the process was killed by a
     * signal) */
    EDIST_ERPC_EXIT,
    /* result: the error reason erpc:call raises: {exception, Reason,
     * Stack}, or {erpc, noconnection | timeout | notsup | Other} */
    EDIST_ERPC_ERROR,
} edist_erpc_class;

/* erpc:call(Node, Module, Function, Args, Timeout), the exception given
 * back as its class and reason instead of raised. Returns as
 * edist_rpc_call. */
int edist_erpc_call(const char *node, const char *module, const char *function,
                    const void *args, size_t args_len, int64_t timeout_ms,
                    edist_buf *result, edist_erpc_class *cls);

/* erpc:cast(Node, Module, Function, Args) (what rpc:cast does): a spawn
 * request of erpc:execute_cast/3 on the node with {reply, no}: no reply,
 * no result, nothing in the caller's mailbox. 0 once the request is on its way (an
 * unreachable node is not reported, as in Erlang); EDIST_EINVAL /
 * EDIST_ENOMEM otherwise. */
int edist_rpc_cast(const char *node, const char *module, const char *function,
                   const void *args, size_t args_len);

#ifdef __cplusplus
}
#endif
#endif
