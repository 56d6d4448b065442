/* SPDX-License-Identifier: Apache-2.0 */
/* The cluster-wide name registry of OTP's `global` (kernel global.erl,
 * protocol version 8 as OTP 25 speaks it). Every node with services runs
 * a `global_name_server` that syncs its names with those of every visible
 * node it connects to, BEAM and edist alike, and passes on the nodes it
 * knows, so that the mesh connects transitively as between BEAM nodes.
 *
 * A name is any term; it maps to one pid of any node. Registering takes
 * the cluster-wide lock `global` on every node this node knows, as
 * global:register_name does, so two nodes never register one name at
 * once. A name goes away when its process ends (every node monitors it)
 * or its node goes down. Names that clash when two partitions meet are
 * resolved as OTP's random_exit_name does: the pid on the node with the
 * smaller name stays, the other is killed.
 *
 * Callers: a process of the node's runtime (green, or a thread attached
 * with edist_proc_attach_thread); the calls are gen_server calls to the
 * local server. EDIST_ENOTFOUND when the runtime runs no global server.
 * Terms are encoded (a leading 131 is accepted); lists are appended to
 * out after it is reset, encoded (no 131 byte). */
#ifndef EDIST_GLOBAL_H
#define EDIST_GLOBAL_H

#include <stddef.h>

#include "edist/proc.h"
#include "edist/term.h"

#ifdef __cplusplus
extern "C" {
#endif

/* global:register_name(Name, Pid): 0, or EDIST_EEXIST when the name is
 * taken (global's `no`). */
int edist_global_register_name(const void *name, size_t len, edist_procid pid);
/* global:re_register_name(Name, Pid): the name is given to pid whoever
 * had it. */
int edist_global_re_register_name(const void *name, size_t len, edist_procid pid);
/* global:unregister_name(Name). 0 also when the name was not there. */
int edist_global_unregister_name(const void *name, size_t len);
/* global:whereis_name(Name): 0 and *pid, or EDIST_ENOTFOUND. */
int edist_global_whereis_name(const void *name, size_t len, edist_procid *pid);
/* global:send(Name, Msg): EDIST_ENOTFOUND when the name is not there. */
int edist_global_send(const void *name, size_t len, const void *msg, size_t msg_len);
/* global:registered_names(): the list of names. */
int edist_global_registered_names(edist_buf *out);
/* global:sync(): waits until this node has synced with every visible
 * node it is connected to, at most timeout_ms (negative: as long as that
 * takes, as global:sync/0). The other calls wait as global's do, without
 * a time limit; EDIST_ENOTFOUND if the server ends meanwhile. */
int edist_global_sync(int timeout_ms);

/* global:set_lock({ResourceId, LockRequesterId}) on this node and every
 * node it knows, retrying for at most retries times (global's Retries;
 * negative: until it is set). 0 once set, EDIST_EAGAIN when it was not.
 * The lock is held by the calling process and goes when it ends. id is an
 * encoded {ResourceId, LockRequesterId}. */
int edist_global_set_lock(const void *id, size_t len, int retries);
/* global:del_lock(Id) on the same nodes. */
int edist_global_del_lock(const void *id, size_t len);
/* global:trans(Id, Fun, Nodes, Retries): fn(arg) runs while the lock is
 * set, and the lock goes after it. 0 when fn ran (its return value in
 * *result, if result is not NULL; a lock the release after it could not
 * take goes with the calling process); EDIST_EAGAIN when the lock could not be
 * set (global's `aborted`: fn did not run); another error as
 * edist_global_set_lock gives it. */
int edist_global_trans(const void *id, size_t len, int (*fn)(void *arg), void *arg,
                       int retries, int *result);

/* A name clash this node resolves (two partitions meet, the name is on
 * both sides with different pids, and this node's name is the smaller):
 * set *keep to the pid that keeps the name, or to EDIST_PROCID_NULL to
 * take it from both; what happens to the other (kill, a message) is the
 * resolver's. Runs inside the node's global_name_server, on the node's
 * first shard: it must not block (sending is fine). Return 0; anything
 * else falls back to the default. The default, as OTP's
 * global:random_exit_name/3: the pid on the node with the smaller name
 * stays, the other is killed; a name registered with global's
 * random_notify_name or notify_all_name (as fun global:F/3) resolves as
 * those do. A name registered with another Erlang fun by a process of
 * another node is resolved as global does, by global:resolve_it on that
 * node, where the fun runs (no resolver set); one of this node's pids
 * with such a fun cannot run it here: the default stands in. */
typedef struct edist_node edist_node;
typedef int (*edist_global_resolve_fn)(void *user, edist_term_view name, edist_procid pid1,
                                       edist_procid pid2, edist_procid *keep);
/* fn NULL: the default again. From any thread. */
int edist_global_set_resolver(edist_node *node, edist_global_resolve_fn fn, void *user);

#ifdef __cplusplus
}
#endif
#endif
