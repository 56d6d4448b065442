/* SPDX-License-Identifier: Apache-2.0 */
/* Processes: pids, mailboxes, selective receive, spawn, links, monitors,
 * exit signals and registered names, with Erlang's semantics.
 *
 * A runtime (edist_runtime) hosts the processes of one node. Its processes
 * are of two kinds sharing one model (a pid, a mailbox, links, monitors,
 * trap_exit, a registered name):
 * - green processes, made by edist_spawn*: each runs a C function on its
 *   own small stack (reserved, committed lazily by the kernel, with a guard
 *   page below it) on the runtime's shard thread, cooperatively: it runs
 *   until it blocks in edist_receive, calls edist_yield, or exits;
 * - thread processes: an application thread becomes a process with
 *   edist_proc_attach_thread and receives by blocking (or spinning) on its
 *   mailbox.
 *
 * Calls without a runtime argument act as the calling process ("self"): a
 * green process, or a thread attached with edist_proc_attach_thread. From
 * any other thread they return EDIST_EINVAL. Calls taking a runtime work
 * from any thread.
 *
 * Messages are encoded terms (term.h: no 131 version byte; a leading 131
 * is accepted and skipped). They are not validated on send: the receiver's
 * matcher and decoder check them. A green sender's small message is copied
 * into the mailbox entry itself (no allocation); large ones can be handed
 * over without a copy (edist_send_owned, edist_send_buf).
 *
 * Exit reasons are encoded terms too; the common atoms have constants
 * below (EDIST_REASON_NORMAL...).
 *
 * Errors: 0 (or a count) on success, a negative edist_err otherwise, with
 * detail in edist_last_error(). */
#ifndef EDIST_PROC_H
#define EDIST_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edist/error.h"
#include "edist/node.h"
#include "edist/term.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct edist_runtime edist_runtime;

/* ---- pids ------------------------------------------------------------------
 * A process identifier as a small value, local or remote: {node, id, serial,
 * creation} as Erlang's, with the node name interned in a process-wide
 * table (node index; names are never freed, at most EDIST_MAX_NODE_NAMES).
 * Compare with edist_procid_equal. All zeroes is "no process"
 * (EDIST_PROCID_NULL): no process ever has id 0. A pid whose slot was
 * reused never reaches the new process: the serial differs. */
typedef struct edist_procid {
    uint32_t node;     /* interned node name index */
    uint32_t id;       /* < 2^28 */
    uint32_t serial;
    uint32_t creation; /* of the node incarnation */
} edist_procid;

#define EDIST_MAX_NODE_NAMES 65536u
__attribute__((unused)) static const edist_procid EDIST_PROCID_NULL = {0, 0, 0, 0};

static inline bool edist_procid_equal(edist_procid a, edist_procid b)
{
    return a.node == b.node && a.id == b.id && a.serial == b.serial &&
           a.creation == b.creation;
}
static inline bool edist_procid_is_null(edist_procid p)
{
    return p.id == 0 && p.node == 0 && p.serial == 0 && p.creation == 0;
}

/* The node name of a pid ("nonode@nohost" for index 0), NUL-terminated,
 * valid for the life of the program. Any thread. */
const char *edist_procid_node(edist_procid p);
/* Interned index of a node name (adds it). Any thread. Returns the index
 * (>= 0) or EDIST_EINVAL (empty, longer than 1020 bytes) / EDIST_ENOMEM
 * (table full). */
int64_t edist_node_name_index(const char *name, size_t len);

/* Conversions with the codec's pid view (term.h). to_pid: out->node points
 * into the intern table (valid for the program's life). from_pid interns
 * the node name (EDIST_ENOMEM when the table is full). Any thread. */
void edist_procid_to_pid(edist_procid p, edist_pid *out);
int edist_procid_from_pid(const edist_pid *pid, edist_procid *out);
/* Encode as NEW_PID_EXT; decode a PID_EXT/NEW_PID_EXT at the cursor. */
int edist_enc_procid(edist_buf *b, edist_procid p);
int edist_dec_procid(edist_cursor *c, edist_procid *out);

/* Equality of two references (node, creation, words). */
bool edist_ref_equal(const edist_ref *a, const edist_ref *b);

/* ---- exit reasons (encoded atoms) ------------------------------------------ */
extern const edist_term_view edist_reason_normal;
extern const edist_term_view edist_reason_kill;
extern const edist_term_view edist_reason_killed;
extern const edist_term_view edist_reason_noproc;
extern const edist_term_view edist_reason_noconnection;
extern const edist_term_view edist_reason_shutdown;
/* A message from another node found the mailbox at its hard limit. */
extern const edist_term_view edist_reason_mailbox_overflow;
#define EDIST_REASON_NORMAL edist_reason_normal
#define EDIST_REASON_KILL edist_reason_kill
#define EDIST_REASON_KILLED edist_reason_killed
#define EDIST_REASON_NOPROC edist_reason_noproc
#define EDIST_REASON_NOCONNECTION edist_reason_noconnection
#define EDIST_REASON_SHUTDOWN edist_reason_shutdown
#define EDIST_REASON_MAILBOX_OVERFLOW edist_reason_mailbox_overflow

/* ---- runtime ---------------------------------------------------------------- */

typedef struct edist_runtime_config {
    /* "name@host" of the node the processes belong to; NULL:
     * "nonode@nohost" (a runtime without distribution). */
    const char *node_name;
    uint32_t creation;
    /* Stack reserved per green process (rounded up to pages, at least
     * 16 KiB; default 64 KiB). Memory is committed only when touched. */
    size_t stack_bytes;
    /* Live processes at most (default 1,048,576; at most 2^27). */
    uint32_t max_processes;
    /* Messages queued in one mailbox at most: beyond it a send returns
     * EDIST_EAGAIN (exit, EXIT and DOWN signals are never refused).
     * Default 1,000,000. */
    uint32_t max_mailbox_messages;
    /* Payload bytes queued in one mailbox at most, the same way (an empty
     * mailbox still takes one message of any size). Default 1 GiB. */
    uint64_t max_mailbox_bytes;
    /* Hard limits for messages that cannot be pushed back (from other
     * nodes): a mailbox takes them up to these; the one that would go
     * over kills the process with reason mailbox_overflow. The limits
     * above are lowered to these if they are higher. Defaults 16,000,000
     * messages and 4 GiB. */
    uint32_t max_mailbox_messages_hard;
    uint64_t max_mailbox_bytes_hard;
    /* Requests queued from other threads to the shard at most (sends and
     * signals of thread processes); beyond it EDIST_EAGAIN. Default
     * 65,536. */
    uint32_t max_pending_requests;
    /* Payload bytes of the sends queued that way at most (a send that
     * meets a full mailbox or a full peer queue waits there): beyond it
     * EDIST_EAGAIN, so a thread streaming to a stalled peer is held back
     * instead of filling memory. One send of any size is always taken.
     * Default 64 MiB. */
    uint64_t max_pending_bytes;
    /* A process with a full mailbox in a selective receive that has
     * matched nothing for this long takes messages from other shards
     * past the soft limit (up to the hard one): what it waits for may be
     * behind them. 0: 100 ms. */
    uint32_t receive_grace_ms;
    edist_idle idle;          /* the shard loop's idle strategy */
    edist_log_fn log;         /* one line per significant event; may be NULL */
    void *log_user;
    edist_log_level log_level;
    /* Shards: threads, each with its own loop, scheduler, processes and
     * message pool. A pid says which shard owns it; messages and signals
     * between shards travel on lock-free rings, in order, as within one.
     * Registered names, exports and references are runtime-wide.
     * edist_runtime_spawn and edist_proc_attach_thread from other threads
     * spread over the shards round robin, starting with shard 1 (shard 0
     * of a node also runs its connections and services); a process
     * spawns on its own shard. 0: $EDIST_SHARDS, else 1. At most
     * EDIST_MAX_SHARDS. */
    uint32_t shards;
    /* "C0,C1,...": pin shard i to CPU Ci (fewer entries: the rest are not
     * pinned). NULL: $EDIST_SHARD_CORES, else none; "": none. */
    const char *shard_cores;
    /* Records per ring between two shards (a power of 2, 64 .. 1048576):
     * a signal that finds its ring full waits, in order, and a process
     * that keeps sending into it is held back. 0: 4096. */
    uint32_t shard_ring_entries;
} edist_runtime_config;

#define EDIST_MAX_SHARDS 64u

void edist_runtime_config_init(edist_runtime_config *cfg);

/* A runtime with shard threads of its own and no distribution (sends to
 * other nodes' pids return EDIST_ECLOSED, links and monitors to them fire
 * with `noconnection`). A node (node.h) has a runtime of its own instead.
 * Any thread. */
int edist_runtime_start(const edist_runtime_config *cfg, edist_runtime **out);
/* Ends every process (green ones are abandoned where they are blocked:
 * their at-exit functions run; signals are not sent), stops the thread and
 * frees the runtime. Threads attached as processes must have detached.
 * NULL is a no-op. Not from a process of this runtime. */
void edist_runtime_stop(edist_runtime *rt);

const char *edist_runtime_node(const edist_runtime *rt);
uint32_t edist_runtime_creation(const edist_runtime *rt);

typedef struct edist_runtime_stats {
    uint64_t processes;         /* alive now */
    uint64_t spawned, exited;   /* since start */
    uint64_t context_switches;
    uint64_t messages_sent;     /* local deliveries */
    uint64_t messages_dropped;  /* to dead or unknown processes */
    uint64_t stacks_reserved;   /* stacks ever carved (free ones included) */
    uint64_t stacks_free;
    uint64_t guard_pages;       /* stacks with a guard page */
    /* Processes killed with reason mailbox_overflow (a message from
     * another node found their mailbox at a hard limit). */
    uint64_t mailbox_overflows;
    /* Messages from the network copied out of a shared receive buffer
     * because the receiver did not take them at once. */
    uint64_t messages_copied_out;
    /* Local sends refused at a mailbox's (soft) limit: the sender was
     * held back (each retry counts). */
    uint64_t mailbox_busy;
    /* Sends and calls of threads refused at max_pending_requests or
     * max_pending_bytes (EDIST_EAGAIN: the thread was held back). */
    uint64_t requests_refused;
    /* Shards. */
    uint64_t shards;
    uint64_t shard_records_sent;     /* signals passed to another shard */
    uint64_t shard_records_received; /* ... and taken from one */
    /* Records that found their ring full (they waited, in order), and
     * green processes held back because one was too far behind. */
    uint64_t shard_ring_full;
    uint64_t shard_senders_held;
    /* Times a shard let a ring wait: the record at its head found a full
     * mailbox or a full peer queue (retried, in order). */
    uint64_t shard_ring_holds;
    /* Messages a ring gave a mailbox past its soft limit (up to the hard
     * one): its process waited for an answer that came behind them. */
    uint64_t shard_past_soft_limit;
} edist_runtime_stats;
/* Any thread: the sum over the shards (waits for each shard, unless called
 * on a shard's thread: then the other shards' counters are read as they
 * are, and may lag a little, and their stack counts are left out). */
int edist_runtime_get_stats(edist_runtime *rt, edist_runtime_stats *out);
/* The counters of shard `shard` alone (processes, messages, its rings...);
 * shards = its index. EDIST_EINVAL for a shard it does not have. */
int edist_runtime_get_shard_stats(edist_runtime *rt, uint32_t shard,
                                  edist_runtime_stats *out);

/* ---- spawning ------------------------------------------------------------------
 * A green process runs fn(arg); returning from fn is exit(normal). */
typedef void (*edist_proc_fn)(void *arg);

/* spawn_request's {reply, Reply}: which spawn_reply messages the caller
 * gets. */
typedef enum edist_spawn_reply {
    EDIST_SPAWN_REPLY_YES = 0,      /* success or error: always one */
    EDIST_SPAWN_REPLY_NO,           /* none */
    EDIST_SPAWN_REPLY_ERROR_ONLY,
    EDIST_SPAWN_REPLY_SUCCESS_ONLY,
} edist_spawn_reply;

typedef struct edist_spawn_opts {
    bool link;           /* link the new process to the caller */
    bool monitor;        /* the caller monitors it: *monitor_ref */
    size_t stack_bytes;  /* 0: the runtime's default */
    edist_spawn_reply reply; /* edist_spawn_request only */
} edist_spawn_opts;

/* From a process: spawn/1, spawn_link/1, spawn_monitor/1, spawn_opt/2.
 * The new process is runnable at once and runs when the caller blocks,
 * yields or exits (or at once, from a thread process). EDIST_ENOMEM when
 * the process limit is reached or memory is out. */
int edist_spawn(edist_proc_fn fn, void *arg, edist_procid *pid);
int edist_spawn_link(edist_proc_fn fn, void *arg, edist_procid *pid);
int edist_spawn_monitor(edist_proc_fn fn, void *arg, edist_procid *pid,
                        edist_ref *monitor_ref);
int edist_spawn_opt(edist_proc_fn fn, void *arg, const edist_spawn_opts *opts,
                    edist_procid *pid, edist_ref *monitor_ref);
/* From any thread, without a parent process (opts link/monitor need one:
 * EDIST_EINVAL). opts may be NULL. */
int edist_runtime_spawn(edist_runtime *rt, edist_proc_fn fn, void *arg,
                        const edist_spawn_opts *opts, edist_procid *pid);

/* Exported functions, `module:function/arity`, the names remote nodes (and
 * edist_spawn_export) spawn and call. fn runs in the spawned process with
 * args[0..arity) (views valid during the call) and may send, receive and
 * spawn. It returns 0 with its return value encoded in result (nothing
 * appended: the atom ok), or exits with edist_exit. A negative return is
 * an error exit: {edist_error, Name}, Name the code's edist_error_name.
 *
 * fn runs unprotected inside the node, on the process's small stack. A
 * crash in it (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) is not an Erlang
 * exit: it takes the whole node down, after one line on stderr naming the
 * node, the process and module:function/arity, with the original signal
 * (exit status, core dump). So is a stack overflow: the stack (64 KiB by
 * default, edist_spawn_opts.stack_bytes) has a guard page below it, and
 * only code built with -fstack-clash-protection is sure to hit it: build
 * the code you export with that flag, as edist itself is built, or a
 * frame larger than the guard can step over it into another process's
 * stack and corrupt it silently. */
typedef int (*edist_exported_fn)(void *user, const edist_term_view *args,
                                 uint32_t arity, edist_buf *result);
/* Add or replace an export. Any thread. EDIST_EINVAL for names that are
 * not atoms or arity > 255. */
int edist_export_function(edist_runtime *rt, const char *module,
                          const char *function, uint32_t arity,
                          edist_exported_fn fn, void *user);
/* Is module:function/arity exported? 0 or EDIST_ENOTFOUND. Any thread. */
int edist_export_lookup(edist_runtime *rt, const char *module,
                        const char *function, uint32_t arity,
                        edist_exported_fn *fn, void **user);
/* spawn(Module, Function, Args) locally: args is an encoded list. An
 * unknown function spawns a process that exits with
 * {undef, [{Module, Function, Args, []}]}, as erts does. From a process. */
int edist_spawn_export(const char *module, const char *function,
                       const void *args, size_t args_len,
                       const edist_spawn_opts *opts, edist_procid *pid,
                       edist_ref *monitor_ref);

/* spawn_request(Node, Module, Function, Args, Opts): ask node (this node
 * or another) to spawn module:function(args...). Returns at once with the
 * request id in *req; the caller later gets {spawn_reply, Req, ok, Pid}
 * or {spawn_reply, Req, error, Reason}. opts->monitor: the monitor's
 * reference is Req itself (as erts); opts->link: linked once spawned. */
int edist_spawn_request(const char *node, const char *module,
                        const char *function, const void *args,
                        size_t args_len, const edist_spawn_opts *opts,
                        edist_ref *req);
/* spawn_request_abandon(Req): 1 if the calling process's request was
 * still unanswered and is now abandoned: no reply, link or monitor will
 * reach the caller from it, and a process it created with the link option
 * gets an exit signal `abandoned`. 0 if it was not outstanding (already
 * answered: its reply may be in the mailbox). */
int edist_spawn_request_abandon(const edist_ref *req);
/* spawn/4, spawn_link/4, spawn_monitor/4 on any node: spawn_request plus
 * the receive of its reply (at most timeout_ms; negative: no limit, as
 * Erlang; on timeout the request is abandoned).
 * As in Erlang, a node that cannot be reached (noconnection) or does not
 * support spawning (notsup) is no error: *pid is a local process that
 * exits at once with that reason, so a link or monitor fires with it.
 * EDIST_EPROTO with the reason in edist_last_error() when the node
 * answered another error (e.g. system_limit, badarg). With opts->monitor,
 * *req is the monitor's reference. */
int edist_spawn_remote(const char *node, const char *module,
                       const char *function, const void *args, size_t args_len,
                       const edist_spawn_opts *opts, int64_t timeout_ms,
                       edist_procid *pid, edist_ref *req);

/* ---- self, exit ---------------------------------------------------------------- */

/* The calling process, or EDIST_PROCID_NULL if the caller is not one. */
edist_procid edist_self(void);
/* The runtime of the calling process, or NULL. */
edist_runtime *edist_self_runtime(void);

/* exit/1: the calling process ends with reason (an encoded term, copied).
 * A green process never returns from it: its stack is abandoned (use
 * edist_at_exit for cleanup). A thread process is ended and the call
 * returns 0; the thread is still attached (detach it). */
int edist_exit(const void *reason, size_t len);
/* exit/2: send an exit signal with reason to pid. `kill` cannot be trapped
 * and ends the target with `killed`; `normal` ends nobody but the caller
 * itself; otherwise the target ends, or, trapping exits, gets
 * {'EXIT', Self, Reason}. Returns 0 (a dead pid is no error). */
int edist_exit_signal(edist_procid pid, const void *reason, size_t len);

/* process_flag(trap_exit, on): returns the previous value (0/1) or
 * EDIST_EINVAL. */
int edist_trap_exit(bool on);

/* Run fn(arg) when the calling process ends, for whatever reason (latest
 * first), on the shard thread outside the process: free resources only, no
 * edist_* process calls. At most 64 per process. */
int edist_at_exit(void (*fn)(void *arg), void *arg);
/* Take back the latest edist_at_exit(fn, arg) of the calling process
 * without running it: for memory a process holds only across a wait (a
 * green process killed while it waits never returns to free it). 0, or
 * EDIST_ENOTFOUND. */
int edist_at_exit_cancel(void (*fn)(void *arg), void *arg);

/* Let other runnable processes run (green); with none, the shard polls
 * its sockets and timers first. A no-op in thread processes. */
int edist_yield(void);
/* receive after Ms -> ok end. */
int edist_sleep_ms(int64_t ms);

/* Is pid a live local process? (Remote pids: false.) From a process, or
 * from any thread with edist_runtime_is_alive. */
bool edist_is_process_alive(edist_procid pid);
bool edist_runtime_is_alive(edist_runtime *rt, edist_procid pid);

/* ---- sending ---------------------------------------------------------------------
 * Pid ! Msg. To a dead or unknown local pid: dropped, 0 (as Erlang). To a
 * full mailbox: EDIST_EAGAIN, nothing queued (a mailbox on another shard:
 * the message is queued and the sender held back, in order, until there
 * is room; but a sender whose own mailbox is full is not held: a send to
 * a shard whose ring is backed up returns EDIST_EAGAIN, nothing queued,
 * and it should receive before it sends again). To a remote pid: handed to the node (EDIST_ECLOSED without
 * distribution); a green process whose message had to wait for the
 * peer's connection (its lane took no more) lets other processes and the
 * node run before it returns, as erts may suspend a process on any send.
 * From a thread process (or edist_runtime_send from any thread) a send is
 * queued to the shard in order with the thread's other signals and
 * returns 0 (EDIST_EAGAIN when max_pending_requests or max_pending_bytes
 * are queued: try again later): what happens there is not reported back.
 * A thread whose message meets a full mailbox or a full peer queue is held
 * back: its queued requests wait, in order, until there is room (its next
 * synchronous call waits too), as erts suspends a sender on a busy
 * distribution port; other threads go on. */
int edist_send(edist_procid to, const void *term, size_t len);
/* Zero copy: term stays owned by the runtime from here on; release(owner,
 * term) is called exactly once when the last copy is consumed (also on
 * error, before returning). release may run on another thread. */
typedef void (*edist_release_fn)(void *owner, const void *term);
int edist_send_owned(edist_procid to, const void *term, size_t len,
                     edist_release_fn release, void *owner);
/* Zero copy of a growable buffer: takes b's memory (b is left empty, also
 * on error). b must hold one term. */
int edist_send_buf(edist_procid to, edist_buf *b);
/* Name ! Msg (node NULL or this node): EDIST_ENOTFOUND if no process has
 * the name (badarg). {Name, Node} ! Msg: to another node through the
 * node; to this node, silently dropped when unregistered (as Erlang). */
int edist_send_name(const char *name, const void *term, size_t len);
int edist_send_name_node(const char *name, const char *node,
                         const void *term, size_t len);
/* From any thread, as no process (the sender pid is null). */
int edist_runtime_send(edist_runtime *rt, edist_procid to, const void *term,
                       size_t len);
int edist_runtime_send_name(edist_runtime *rt, const char *name,
                            const void *term, size_t len);

/* ---- receiving -------------------------------------------------------------------
 * receive Pattern -> ... after Timeout -> ... end.
 * Scans the mailbox from the oldest message and takes the first one that
 * matches pattern (NULL matches anything); if none does, waits for new
 * messages (each checked as it arrives) until timeout_ms passes: 0 is
 * `after 0` (never waits), negative is infinity. vars as in edist_match:
 * entries bound on entry (ptr != NULL) must match, the others receive the
 * captures. *msg gets the message. The message, and the captures pointing
 * into it, stay valid until the process's next receive or exit (or use
 * edist_msg_keep).
 * Returns 0 when a message was taken, EDIST_ETIMEDOUT, or EDIST_ECLOSED (a
 * thread process that was killed). A malformed message never matches: it
 * stays queued (a NULL pattern takes it). */
int edist_receive(const edist_pattern *pattern, edist_term_view *vars,
                  int64_t timeout_ms, edist_term_view *msg);

/* The last message received, detached from the process so the next
 * receive does not free it. Free it with edist_message_free, from the same
 * process (or from any thread for thread processes). A message still in
 * the network's receive buffer is copied out here, so views taken from
 * the receive (msg, captures) are no longer valid: use
 * edist_message_term. */
typedef struct edist_message edist_message;
int edist_msg_keep(edist_message **out);
edist_term_view edist_message_term(const edist_message *m);
void edist_message_free(edist_message *m);

/* Messages waiting in the caller's mailbox. */
int64_t edist_mailbox_length(void);

/* ---- links ---------------------------------------------------------------------------
 * link/1: 0 when linked (or already, or pid is self). A dead local pid:
 * trapping exits, 0 and an {'EXIT', Pid, noproc} message; otherwise
 * EDIST_ENOTFOUND (erts raises noproc). A remote pid goes through the
 * node (without distribution: an exit signal `noconnection`). */
int edist_link(edist_procid pid);
/* unlink/1: always 0. EXIT messages already queued stay queued. */
int edist_unlink(edist_procid pid);

/* ---- monitors --------------------------------------------------------------------------
 * monitor(process, Pid): when pid ends (or at once if it does not exist:
 * reason noproc) the caller gets {'DOWN', Ref, process, Pid, Reason}. */
int edist_monitor(edist_procid pid, edist_ref *ref);
/* monitor(process, {Name, Node}) (node NULL: this node): the name is
 * resolved now; DOWN carries {Name, Node}. */
int edist_monitor_name(const char *name, const char *node, edist_ref *ref);
#define EDIST_DEMONITOR_FLUSH 0x1u
/* demonitor(Ref, [flush?]): 1 if the monitor was active and is removed, 0
 * if it was not (already fired or unknown). With FLUSH, a {'DOWN', Ref,
 * ...} message is removed from the mailbox. */
int edist_demonitor(const edist_ref *ref, unsigned flags);

/* make_ref(): a reference of this node (3 words, unique per runtime). */
int edist_make_ref(edist_ref *ref);
int edist_runtime_make_ref(edist_runtime *rt, edist_ref *ref);

/* ---- registered names --------------------------------------------------------------- */

/* register(Name, Pid): EDIST_EEXIST if the name is taken or pid already
 * has a name, EDIST_ENOTFOUND if pid is not a live local process,
 * EDIST_EINVAL for `undefined` or a name that is not an atom. A name dies
 * with its process. */
int edist_register(const char *name, edist_procid pid);
int edist_runtime_register(edist_runtime *rt, const char *name,
                           edist_procid pid);
/* unregister(Name): 0, or EDIST_ENOTFOUND. */
int edist_unregister(const char *name);
int edist_runtime_unregister(edist_runtime *rt, const char *name);
/* whereis(Name): 0 and *pid, or EDIST_ENOTFOUND. */
int edist_whereis(const char *name, edist_procid *pid);
int edist_runtime_whereis(edist_runtime *rt, const char *name,
                          edist_procid *pid);
/* registered(): a malloc'd array of malloc'd names (free each and the
 * array; edist_names_free does). Returns the count. */
int64_t edist_registered(edist_runtime *rt, char ***names);
void edist_names_free(char **names, size_t count);

/* ---- thread processes ------------------------------------------------------------------
 * The calling thread becomes a process of rt (its self). A thread is at
 * most one process. Its receive blocks on a futex, after spinning
 * spin_us microseconds first (0: block at once). Sends from it go to the
 * shard in order with its other signals. */
int edist_proc_attach_thread(edist_runtime *rt, uint32_t spin_us,
                             edist_procid *pid);
/* Ends the thread's process (exit reason normal, or reason if not NULL)
 * and detaches. Returns 0, or EDIST_EINVAL if the thread is not attached. */
int edist_proc_detach_thread(const void *reason, size_t len);
/* The exit reason of a thread process that was killed (view valid until
 * detach), after a call returned EDIST_ECLOSED. */
int edist_proc_exit_reason(edist_term_view *reason);

#ifdef __cplusplus
}
#endif
#endif
