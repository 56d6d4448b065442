/* SPDX-License-Identifier: Apache-2.0 */
/* Process groups: the default scope `pg` of OTP's pg (kernel pg.erl,
 * OTP 23+). Every node with services runs a `pg` scope process that
 * speaks pg's protocol with the `pg` processes of the other nodes, BEAM
 * and edist alike: a group joined on one node is seen on all the nodes
 * of the scope, eventually (there is no global lock, as in pg).
 *
 * Only local processes join and leave; each joined process is monitored
 * and leaves every group when it ends. A process may join a group more
 * than once and is then listed as many times. Groups are any terms.
 *
 * Callers: a process of the node's runtime (green, or a thread attached
 * with edist_proc_attach_thread); the calls are gen_server calls to the
 * local scope process. EDIST_ENOTFOUND when the runtime has no `pg`
 * process (a runtime without services). group is an encoded term (a
 * leading 131 is accepted). Lists are appended to out after it is reset,
 * encoded (no 131 byte). */
#ifndef EDIST_PG_H
#define EDIST_PG_H

#include <stddef.h>

#include "edist/proc.h"
#include "edist/term.h"

#ifdef __cplusplus
extern "C" {
#endif

/* pg:join(Group, Pid). EDIST_EINVAL: pid is not a process of this node. */
int edist_pg_join(const void *group, size_t len, edist_procid pid);
/* pg:leave(Group, Pid): 0, or EDIST_ENOTFOUND when pid had not joined
 * (not_joined). */
int edist_pg_leave(const void *group, size_t len, edist_procid pid);
/* pg:get_members(Group) and pg:get_local_members(Group): a list of pids
 * (the newest member first). */
int edist_pg_get_members(const void *group, size_t len, edist_buf *out);
int edist_pg_get_local_members(const void *group, size_t len, edist_buf *out);
/* pg:which_groups(): a list of the groups with members. */
int edist_pg_which_groups(edist_buf *out);

/* The same in a named scope (pg:join/3 and the like): the scope process
 * registered as `scope` on this node. */
int edist_pg_join_in(const char *scope, const void *group, size_t len, edist_procid pid);
int edist_pg_leave_in(const char *scope, const void *group, size_t len, edist_procid pid);
int edist_pg_get_members_in(const char *scope, const void *group, size_t len, edist_buf *out);
int edist_pg_get_local_members_in(const char *scope, const void *group, size_t len,
                                  edist_buf *out);
int edist_pg_which_groups_in(const char *scope, edist_buf *out);

/* pg:start(Scope): a scope process registered as scope on this node (on
 * its first shard), speaking pg's protocol with the scopes of that name
 * on other nodes. *pid (may be NULL) gets it. EDIST_EEXIST: the name is
 * taken (*pid then null). */
int edist_pg_start_scope(const char *scope, edist_procid *pid);

/* pg:monitor(Scope, Group) (group non-NULL) or pg:monitor_scope(Scope)
 * (group NULL); scope NULL is the default scope. The calling process is
 * told of every change as {Ref, join, Group, Pids} and {Ref, leave,
 * Group, Pids}, until edist_pg_demonitor or its end. out gets the members
 * now: a list of pids, or for a scope a map Group => [Pid]. */
int edist_pg_monitor(const char *scope, const void *group, size_t len, edist_ref *ref,
                     edist_buf *out);
/* pg:demonitor(Scope, Ref): 0, or EDIST_ENOTFOUND (false); messages of
 * the subscription still in the mailbox are removed. */
int edist_pg_demonitor(const char *scope, const edist_ref *ref);

#ifdef __cplusplus
}
#endif
#endif
