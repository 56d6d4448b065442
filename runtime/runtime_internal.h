/* SPDX-License-Identifier: Apache-2.0 */
/* The process runtime's internals: what the runtime files share, and the
 * interface the node (runtime/node*.c, control/) uses to wire distribution
 * in: a table of hooks the runtime calls for signals to other nodes, and
 * entry points the node calls for signals that arrive from them.
 *
 * Threads. A runtime is N shards (runtime/shard.c): each one edi_loop
 * thread running one scheduler with its own processes, process table,
 * message pool, links and monitors tables. An edi_rt is one shard; the
 * runtime as a whole (what edist_runtime_* and edist_node_runtime hand
 * out) is its shard 0, and rt->g reaches the others. Every structure of a
 * shard is touched by its thread only, except where a comment says "any
 * thread": the request queue from other threads (edi_rt_call), a thread
 * process's inbox, the node-name intern table, and what the shards share
 * (edi_shards: registered names, exports, the reference counter, the
 * cross-shard rings). A shard's thread never waits for another shard
 * (no edi_rt_run to a sibling): that is what keeps N shards free of
 * deadlocks. Shard 0 also runs the node's net kernel: the hooks below are
 * called on shard 0 only; other shards forward such signals to it.
 *
 * Wiring a node (what runtime/node*.c and control/nk_*.c do):
 * - after the port mapper gave the creation: edi_rt_new({loop, &proc_cfg
 *   with node_name and creation, &hooks}) on the node's loop, before the
 *   loop thread starts; edi_rt_free(rt) on the loop thread at stop, before
 *   edi_nk_free / edi_loop_free. A public edist_node_runtime(node) getter
 *   hands it to applications.
 * - hooks: each builds the distribution message (dist_build.h builders) for
 *   the connection to the target's node, connecting first if needed (as
 *   erts auto-connects); a hook that cannot (no such node, setup failed)
 *   returns an error and the runtime answers with noconnection itself.
 * - incoming control messages: SEND*, REG_SEND* -> edi_rt_deliver(_name)
 *   with the frame's rxbuf as owner; LINK -> edi_rt_link_in; UNLINK_ID ->
 *   edi_rt_unlink_in (which answers with the unlink_ack hook);
 *   UNLINK_ID_ACK -> edi_rt_unlink_ack_in; EXIT*, EXIT2* ->
 *   edi_rt_exit_in; MONITOR_P -> edi_rt_monitor_in; DEMONITOR_P ->
 *   edi_rt_demonitor_in; MONITOR_P_EXIT -> edi_rt_monitor_exit_in;
 *   SPAWN_REQUEST -> edi_rt_spawn_export_for, then SPAWN_REPLY;
 *   SPAWN_REPLY -> edi_rt_spawn_reply_in; connection down ->
 *   edi_rt_node_down(rt, edi_rt_node_intern(peer)).
 * - pids and refs on the wire convert with edist_procid_from_pid /
 *   edist_enc_procid and edi_refkey_* / edist_ref. */
#ifndef EDI_RUNTIME_INTERNAL_H
#define EDI_RUNTIME_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/clock.h"
#include "base/log.h"
#include "dataplane/term/hash.h"
#include "dataplane/reactor/loop.h"
#include "edist/proc.h"

typedef struct edist_runtime edi_rt;
typedef struct edi_proc edi_proc;
typedef struct edi_msg edi_msg;

/* ======================================================================
 * Interface for the node
 * ====================================================================== */

/* A message payload handed to a hook. release == NULL: the bytes are valid
 * during the call only (copy them or frame them at once). release != NULL:
 * on success the hook owns the bytes and calls release(owner, data) once
 * done (any thread); on error the caller keeps them. */
typedef struct edi_rt_payload {
    const uint8_t *data;
    size_t len;
    edist_release_fn release;
    void *owner;
    /* Service replies: queue past the peer's send queue limit
     * (a reply the peer waits for; the node bounds such bytes per peer). */
    bool force;
    /* Not empty: an ALIAS_SEND to this reference (a gen_call reply to an
     * OTP 24+ caller's alias) where the connection has DFLAG_ALIAS; to
     * the pid otherwise. */
    edist_term_view alias;
} edi_rt_payload;

/* Exit reason for a process whose spawn_request was abandoned. */
extern const edist_term_view edi_reason_abandoned;
#define EDI_REASON_ABANDONED edi_reason_abandoned

/* Spawn request options (SPAWN_REQUEST's option list). */
enum {
    EDI_SPAWN_LINK = 1u << 0,
    EDI_SPAWN_MONITOR = 1u << 1,
};

/* Called on the shard thread when a signal targets a pid or a name of
 * another node (node = interned index). A hook returning an error for
 * link or monitor makes the runtime act as if the node were down: an exit
 * signal / DOWN with `noconnection` at once. Any hook may be NULL: the
 * same as returning EDIST_ECLOSED. */
typedef struct edi_rt_hooks {
    void *user;
    /* Pid ! Msg and {Name, Node} ! Msg. */
    int (*send)(void *user, edist_procid from, edist_procid to,
                const edi_rt_payload *msg);
    /* The same for a green sender's message of msg_len bytes (no version
     * byte, not compressed), on shard 0, while nothing needs the general
     * path: 0 sent (or queued behind a full lane), a negative edist_err
     * as send's, or EDI_NK_NOT_TAKEN with nothing done (then send takes
     * it). A stream's one call from edist_send to the lane. May be NULL. */
    int (*send_small)(void *user, edist_procid from, edist_procid to, const uint8_t *msg,
                      size_t msg_len);
    int (*reg_send)(void *user, edist_procid from, uint32_t node,
                    const char *name, const edi_rt_payload *msg);
    int (*link)(void *user, edist_procid from, edist_procid to);
    /* UNLINK_ID with id (never 0); its UNLINK_ID_ACK comes back through
     * edi_rt_unlink_ack_in. A peer without unlink ids: a plain UNLINK,
     * then the hook acknowledges it itself. */
    int (*unlink)(void *user, edist_procid from, edist_procid to, uint64_t id);
    /* UNLINK_ID_ACK from `from` (the local end) to `to`. */
    int (*unlink_ack)(void *user, edist_procid from, edist_procid to, uint64_t id);
    /* A local process linked to `to` ended with reason (link exit). */
    int (*exit)(void *user, edist_procid from, edist_procid to,
                edist_term_view reason);
    /* exit/2 from a local process. */
    int (*exit2)(void *user, edist_procid from, edist_procid to,
                 edist_term_view reason);
    /* monitor/demonitor of a remote process by pid (name NULL) or by name
     * (then target is null and node says where). */
    int (*monitor)(void *user, edist_procid watcher, edist_procid target,
                   uint32_t node, const char *name, const edist_ref *ref);
    int (*demonitor)(void *user, edist_procid watcher, edist_procid target,
                     uint32_t node, const char *name, const edist_ref *ref);
    /* A local process monitored by the remote `watcher` ended (name is set
     * when the monitor was made by name). */
    int (*monitor_exit)(void *user, edist_procid target, edist_procid watcher,
                        const char *name, const edist_ref *ref,
                        edist_term_view reason);
    /* spawn_request to another node: the answer comes back through
     * edi_rt_spawn_reply_in with req_id. flags: EDI_SPAWN_*. */
    int (*spawn_request)(void *user, edist_procid from, uint32_t node,
                         const edist_ref *req_id, const char *module,
                         const char *function, edist_term_view args,
                         unsigned flags);
} edi_rt_hooks;

typedef struct edi_rt_config {
    edi_loop *loop;               /* shard 0's loop (borrowed); the other
                                   * shards (proc->shards) get their own */
    const edist_runtime_config *proc; /* NULL: defaults */
    const edi_rt_hooks *hooks;    /* copied; NULL: no distribution */
} edi_rt_config;

/* Creates a runtime on an existing loop (the node's), as shard 0, and
 * starts the other shards' threads. Call before the loop runs or on its
 * thread. */
int edi_rt_new(const edi_rt_config *cfg, edi_rt **out);
/* Ends every process of every shard (as edist_runtime_stop), stops the
 * other shards' threads and frees rt. Loop thread, or any thread once the
 * loop no longer runs; before edi_loop_free. */
void edi_rt_free(edi_rt *rt);
edi_loop *edi_rt_loop(const edi_rt *rt);
uint32_t edi_rt_node_index(const edi_rt *rt);
/* Is p a pid of this node (any incarnation, any shard)? */
static inline bool edi_rt_is_local(const edi_rt *rt, edist_procid p);
/* The thread of a shard calls this first (pins it to its core, if the
 * runtime was given shard_cores). */
void edi_rt_shard_thread_init(edi_rt *rt);

/* Bytes arriving from the network. The runtime either copies them (small
 * messages, so receive buffers go back to the kernel at once) or keeps
 * them with ref(owner) and drops them with unref(owner) (any thread) once
 * consumed. ref NULL: always copied. For an edi_frame: data/len the
 * payload, owner f->rxbuf, ref a cast of edi_rxbuf_ref and unref a
 * two-argument wrapper of edi_rxbuf_unref. */
typedef struct edi_rt_incoming {
    const uint8_t *data;
    size_t len;
    void (*ref)(void *owner);
    edist_release_fn unref; /* unref(owner, data) */
    void *owner;
    /* owner is a shared receive buffer the network needs back: a queued
     * view of it is listed, to be copied out under pressure
     * (edi_rt_rx_pressure), and a thread process gets a copy at once. */
    bool scarce;
    bool copy_now; /* scarce and the pool runs low: copy this one now */
} edi_rt_incoming;

/* Entry points for signals from other nodes. Loop thread (of shard 0, for
 * the node; any shard may call them: a signal for a process of another
 * shard is passed on to that shard, in order, and counts as taken). They
 * return 0,
 * or EDIST_ENOTFOUND when the local target does not exist (the signal is
 * dropped, as erts drops it; link and monitor answer with noproc through
 * the hooks themselves), or EDIST_EAGAIN for a message to a full mailbox
 * (nothing queued: the node may pause the connection and retry). */
int edi_rt_deliver(edi_rt *rt, edist_procid from, edist_procid to,
                   const edi_rt_incoming *msg);
/* The shared receive buffers run low: every queued message that is still
 * a view of one is copied out, so the buffers go back to the network. */
void edi_rt_rx_pressure(edi_rt *rt);
/* Loop thread of rt's shard: signals waiting in its backlogs for other
 * shards' full rings. */
uint32_t edi_rt_xbacklog(const edi_rt *rt);
int edi_rt_deliver_name(edi_rt *rt, edist_procid from, const char *name,
                        size_t name_len, const edi_rt_incoming *msg);
/* LINK from a remote process: if `to` does not exist, hooks->exit(to,
 * from, noproc) answers. */
int edi_rt_link_in(edi_rt *rt, edist_procid from, edist_procid to);
/* UNLINK_ID (id; 0: the old UNLINK, which removes the link in any state):
 * removes an active link, and acknowledges the id even when there is none
 * or it is being unlinked from this end too (erts' rule: the unlinker's
 * record goes only with its own acknowledgement). */
int edi_rt_unlink_in(edi_rt *rt, edist_procid from, edist_procid to, uint64_t id);
/* UNLINK_ID_ACK: removes to's link to from if it waits for this id. */
int edi_rt_unlink_ack_in(edi_rt *rt, edist_procid from, edist_procid to, uint64_t id);
/* EXIT (link broken by from's death: acted on only if the link exists) or
 * EXIT2 (exit/2), reason an encoded term. */
int edi_rt_exit_in(edi_rt *rt, edist_procid from, edist_procid to,
                   edist_term_view reason, bool exit2);
/* MONITOR_P from a remote watcher of a local pid (name NULL) or name. A
 * missing target answers at once through hooks->monitor_exit (noproc). */
int edi_rt_monitor_in(edi_rt *rt, edist_procid watcher, edist_procid target,
                      const char *name, const edist_ref *ref);
int edi_rt_demonitor_in(edi_rt *rt, edist_procid watcher, edist_procid target,
                        const edist_ref *ref);
/* MONITOR_P_EXIT: the remote target of a local watcher's monitor ended. */
int edi_rt_monitor_exit_in(edi_rt *rt, edist_procid target,
                           edist_procid watcher, const edist_ref *ref,
                           edist_term_view reason);
/* The connection to node went down: every link to one of its processes
 * breaks with `noconnection`, every monitor of one of them (by pid or
 * name) fires DOWN `noconnection`, and the monitors its processes held on
 * ours are dropped. On every shard: the others hear it after whatever this
 * shard passed on to them before. */
void edi_rt_node_down(edi_rt *rt, uint32_t node);
/* SPAWN_REPLY for a spawn_request of local process `to`: result is the
 * new pid (ok) or an encoded error reason. With EDI_SPAWN_LINK /
 * EDI_SPAWN_MONITOR in flags (as requested and granted) the link / the
 * monitor (ref = req_id) is set up. The requester gets
 * {spawn_reply, ReqId, ok, Pid} or {spawn_reply, ReqId, error, Reason}. */
int edi_rt_spawn_reply_in(edi_rt *rt, edist_procid to, const edist_ref *req_id,
                          bool ok, edist_procid pid, edist_term_view error,
                          unsigned flags);
/* SPAWN_REQUEST from a remote parent: spawn module:function(args...) (an
 * exported function; unknown: the process exits with undef, as erts),
 * linked to parent (EDI_SPAWN_LINK) and/or monitored by it with
 * monitor_ref (EDI_SPAWN_MONITOR). */
int edi_rt_spawn_export_for(edi_rt *rt, edist_procid parent, const char *module,
                            const char *function, edist_term_view args,
                            unsigned flags, const edist_ref *monitor_ref,
                            edist_procid *pid);

/* Reference key conversions for the node. */
int edi_rt_node_intern(const char *name, size_t len, uint32_t *index);
const char *edi_rt_node_name(uint32_t index, size_t *len);

/* ======================================================================
 * Internals shared by the runtime files
 * ====================================================================== */

#define EDI_PROC_ID_LIMIT (1u << 28)
#define EDI_PROC_MAX_LIMIT (1u << 27)
#define EDI_AT_EXIT_MAX 64

/* ---- context switch (ctx_*.S, ctx.c) ----------------------------------- */
void edi_ctx_switch(void **save_sp, void *load_sp);
void edi_ctx_trampoline(void);
/* The initial saved stack pointer of a context that will run entry(arg)
 * on the stack ending at top (exclusive). */
void *edi_ctx_init(uint8_t *top, void (*entry)(void *), void *arg);

/* ---- stacks (stack.c) ----------------------------------------------------
 * Stacks are carved from large reserved arenas (MAP_NORESERVE: memory is
 * committed page by page as it is touched), each with a guard page below
 * it, and recycled through a free list. Shard thread only, except the
 * fault handler. */
typedef struct edi_stacks edi_stacks;
int edi_stacks_new(size_t default_bytes, edi_stacks **out);
void edi_stacks_free(edi_stacks *s);
size_t edi_stacks_default_bytes(const edi_stacks *s);
/* A stack of at least bytes (0: default): [*lo, *lo + *size). *guarded:
 * a guard page is below it (else a canary at *lo: edi_stack_canary_ok). */
int edi_stack_get(edi_stacks *s, size_t bytes, uint8_t **lo, size_t *size,
                  bool *guarded);
void edi_stack_put(edi_stacks *s, uint8_t *lo, size_t size, bool guarded);
void edi_stacks_stats(const edi_stacks *s, uint64_t *reserved, uint64_t *free,
                      uint64_t *guarded);
/* Per shard thread: an alternate signal stack and the process-wide
 * handler of fatal signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT): a
 * guard page hit, or any of them raised while a green process runs, gets
 * one line naming the process and what it runs, then the node dies with
 * the signal. */
void edi_stack_thread_init(void);
/* True if the canary under an unguarded stack (the last 8 bytes below
 * lo) is intact. */
bool edi_stack_canary_ok(const uint8_t *lo);
/* p's canary was clobbered: the stack overflow line, then abort(). */
_Noreturn void edi_stack_canary_overflow(const edi_proc *p);

/* ---- messages and mailboxes (mailbox.c) --------------------------------- */

#define EDI_MSG_INLINE_BYTES 104

enum { EDI_MSG_POOL = 0, EDI_MSG_HEAP = 1 };

/* One queued message: 128 bytes. The payload is inline (data == u.inl,
 * which extends past 104 bytes for heap entries), or external (ext: owned
 * through release/owner, never copied). 104 holds a message with a pid or
 * two ({Tag, From, Ref} and the like) and the 64-byte benchmark term: a
 * 64-byte stream over memif went 6% faster than with views past 40. */
struct edi_msg {
    edi_msg *next;
    const uint8_t *data;
    uint32_t len;
    uint8_t alloc; /* EDI_MSG_POOL: back to the shard's pool; HEAP: free() */
    uint8_t ext;
    uint8_t notice; /* wake-up marker for a killed thread process (no data) */
    /* An ext payload in a shared receive buffer (a view the network wants
     * back): EDI_SCARCE_QUEUED while in a mailbox (on the pool's scarce
     * list, copied out under pressure), EDI_SCARCE_TAKEN once received. */
    uint8_t scarce;
    union {
        struct {
            edist_release_fn release;
            void *owner;
            edi_msg *sprev, *snext; /* the pool's scarce list */
        } x;
        uint8_t inl[EDI_MSG_INLINE_BYTES];
    } u;
};

enum { EDI_SCARCE_NO = 0, EDI_SCARCE_QUEUED = 1, EDI_SCARCE_TAKEN = 2 };

/* Free entries of one shard, reused without allocation; and the queued
 * messages that are views of shared receive buffers. */
typedef struct edi_msg_pool {
    edi_msg *free;
    uint32_t count;
    uint32_t cap;
    edi_msg *scarce;
} edi_msg_pool;

void edi_msg_pool_init(edi_msg_pool *pool, uint32_t cap);
void edi_msg_pool_drain(edi_msg_pool *pool);
/* A copy of data: from pool (NULL: heap) when it fits inline, else one
 * heap block. NULL when out of memory. */
edi_msg *edi_msg_copy(edi_msg_pool *pool, const void *data, size_t len);
/* A reference to data owned through release(owner, data). */
edi_msg *edi_msg_external(edi_msg_pool *pool, const void *data, size_t len,
                          edist_release_fn release, void *owner);
/* Releases the payload and the entry (pool entries: pool must be the
 * shard's; heap ones: any thread, pool may be NULL). */
void edi_msg_free(edi_msg_pool *pool, edi_msg *m);
/* An edist_release_fn for a malloc'd owner: free(owner). */
void edi_release_free(void *owner, const void *data);
/* m (ext, a view of a shared receive buffer) was queued in a mailbox of
 * this pool's shard: it joins the pool's scarce list. */
void edi_msg_scarce_queued(edi_msg_pool *pool, edi_msg *m);
/* m was taken by a receive: off the list (its views are in use now and
 * must stay where they are). */
void edi_msg_scarce_taken(edi_msg_pool *pool, edi_msg *m);
/* A scarce payload is replaced by a private heap copy and its owner
 * released, so that holding m holds no shared receive buffer. 1 when
 * copied, 0 when there was nothing to do, EDIST_ENOMEM (m unchanged). */
int edi_msg_unshare(edi_msg_pool *pool, edi_msg *m);
/* Every queued scarce message copied out (the receive buffers run low):
 * how many. */
uint32_t edi_msg_unshare_queued(edi_msg_pool *pool);

/* A mailbox read and written by one thread (green processes; a thread
 * process's private part). */
typedef struct edi_mbox {
    edi_msg *head;
    edi_msg **tailp;
    uint32_t count;
    uint64_t bytes; /* payload bytes of the messages in it */
    /* a message was refused at the soft limit since one was last taken:
     * full, whatever its bytes say (it refuses the message that would
     * take it past them, so they never show it) */
    bool refused;
} edi_mbox;

static inline void edi_mbox_init(edi_mbox *b)
{
    b->head = NULL;
    b->tailp = &b->head;
    b->count = 0;
    b->bytes = 0;
    b->refused = false;
}
static inline void edi_mbox_append(edi_mbox *b, edi_msg *m)
{
    m->next = NULL;
    *b->tailp = m;
    b->tailp = &m->next;
    b->count++;
    b->bytes += m->len;
}
/* Unlink *prev (a pointer to the `next` field, or head, that points to
 * the entry). */
static inline edi_msg *edi_mbox_unlink(edi_mbox *b, edi_msg **prev)
{
    edi_msg *m = *prev;
    *prev = m->next;
    if (b->tailp == &m->next)
        b->tailp = prev;
    b->count--;
    b->bytes -= m->len;
    b->refused = false;
    m->next = NULL;
    return m;
}
void edi_mbox_clear(edi_mbox *b, edi_msg_pool *pool);

/* Multi-producer single-consumer list (Treiber stack): producers push
 * with a compare-and-swap, the consumer takes everything at once and gets
 * it oldest first. Any thread pushes. */
typedef struct edi_mpsc {
    _Atomic(edi_msg *) top;
} edi_mpsc;
void edi_mpsc_push(edi_mpsc *q, edi_msg *m);
/* Everything pushed so far, oldest first (NULL if empty). Consumer. */
edi_msg *edi_mpsc_take(edi_mpsc *q);

/* futex helpers (mailbox.c): wait while *word == expected, at most
 * timeout_ns (UINT64_MAX: no limit); wake all waiters. */
void edi_futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t timeout_ns);
void edi_futex_wake(_Atomic uint32_t *word);

/* ---- hash tables (registry.c; the byte hash: dataplane/term/hash.h) --- */

typedef struct edi_hnode {
    struct edi_hnode *next;
    uint64_t hash;
} edi_hnode;

typedef struct edi_htab {
    edi_hnode **buckets;
    size_t mask;
    size_t count;
} edi_htab;

void edi_htab_init(edi_htab *t);
void edi_htab_destroy(edi_htab *t);
/* 0 or EDIST_ENOMEM (only when the first bucket array cannot be made;
 * growth failures keep the old array). */
int edi_htab_insert(edi_htab *t, edi_hnode *n, uint64_t hash);
void edi_htab_remove(edi_htab *t, edi_hnode *n);
/* First node with this hash after `after` (NULL: from the start); the
 * caller compares keys. */
edi_hnode *edi_htab_next_with(const edi_htab *t, uint64_t hash, edi_hnode *after);

/* ---- references ----------------------------------------------------------- */

/* A reference as a hash key: node index, creation, words. */
typedef struct edi_refkey {
    uint32_t node;
    uint32_t creation;
    uint32_t len;
    uint32_t w[EDIST_REF_MAX_WORDS];
} edi_refkey;

int edi_refkey_from_ref(const edist_ref *r, edi_refkey *k);
void edi_refkey_to_ref(const edi_refkey *k, edist_ref *r);
uint64_t edi_refkey_hash(const edi_refkey *k);
bool edi_refkey_equal(const edi_refkey *a, const edi_refkey *b);

/* ---- links and monitors (signal.c) ---------------------------------------- */

/* A link between a local process a and a process b (local or remote). A
 * local-local link is one record in both processes' lists. */
typedef struct edi_link edi_link;
struct edi_link {
    edi_hnode h;         /* rt->links, keyed by the unordered pair */
    edist_procid a, b;
    edi_proc *ap, *bp;   /* the local ends (NULL: remote) */
    /* With b remote or on another shard: 0 while active; the id of a's
     * unlink until b acknowledges it. Meanwhile the link counts as gone
     * (no exit either way) but its record stays, so that a LINK or an
     * unlink from b crossing ours cannot set it again on one side only. */
    uint64_t unlinking;
    edi_link *a_next, *a_prev;
    edi_link *b_next, *b_prev;
};

/* A monitor. Watcher and/or target are local; the record is in the local
 * ones' lists and in rt->monitors by ref. */
typedef struct edi_mon edi_mon;
struct edi_mon {
    edi_hnode h;
    edi_refkey ref;
    edist_procid watcher;
    edist_procid target;     /* null for a remote name not resolved here */
    uint32_t name_node;      /* by name: where */
    char *name;              /* by name: the name (malloc'd), else NULL */
    edi_proc *wp, *tp;       /* the local ends (NULL: remote) */
    edi_mon *w_next, *w_prev; /* in the watcher's list */
    edi_mon *t_next, *t_prev; /* in the target's list */
};

/* Frees the pending spawn_requests (edi_rt_free). */
void edi_spawn_reqs_clear(edi_rt *rt);

/* ---- processes -------------------------------------------------------------- */

enum { EDI_PROC_GREEN = 0, EDI_PROC_THREAD = 1 };
enum {
    EDI_ST_RUNNABLE = 0, /* in the run queue */
    EDI_ST_RUNNING,
    EDI_ST_WAITING,      /* blocked in receive */
    EDI_ST_EXITING,      /* ended; its teardown is pending */
    EDI_ST_DEAD,         /* torn down; the struct waits to be freed */
};

typedef struct edi_at_exit {
    void (*fn)(void *arg);
    void *arg;
} edi_at_exit;

/* What a thread process shares with its thread. */
typedef struct edi_thread_proc {
    edi_mpsc inbox;            /* shard -> thread */
    _Atomic uint32_t seq;      /* futex word: bumped after each push */
    _Atomic uint32_t sleepers;
    _Atomic int refs;          /* the shard's and the thread's */
    _Atomic int dead;          /* release-set after the reason is written */
    _Atomic uint32_t queued;   /* messages pushed and not yet received */
    _Atomic uint64_t queued_bytes; /* and their payload bytes */
    uint32_t spin_us;
    uint8_t *reason;           /* the exit reason when killed */
    size_t reason_len;
    edi_mbox box;              /* the thread's own ordered part */
    edi_msg **scan_prev;       /* receive: where new messages start */
} edi_thread_proc;

struct edi_proc {
    void *sp;                  /* saved context (green) */
    edi_mbox mbox;             /* green mailbox */
    edi_proc *runq_next;
    edi_rt *rt;
    uint32_t id, serial;
    uint8_t kind, state;
    uint8_t trap_exit;
    uint8_t in_runq;
    uint8_t timed_out;
    uint8_t killed_self;       /* exit signal to self: leave at once */
    uint8_t n_at_exit;
    uint8_t reason_owned;      /* exit_reason.ptr is malloc'd */
    uint8_t canary;            /* stack without a guard page: check it */
    uint8_t x_held;            /* held back by a ring's backlog (edi_x_hold) */
    /* receive in progress (green): set while WAITING */
    const edist_pattern *recv_pattern;
    edist_term_view *recv_vars;
    edi_msg **recv_match_prev; /* where the matched message hangs */
    edi_msg *recv_match;
    edi_timer *recv_timer;     /* on the process's stack */
    uint64_t recv_since_ms;    /* when its receive began to wait */
    edi_msg *current;          /* last received, freed at next receive */
    /* green */
    uint8_t *stack_lo;
    size_t stack_bytes;
    edist_proc_fn fn;
    void *arg;
    /* signals */
    edi_link *links;
    edi_mon *mons_out;         /* monitors this process holds */
    edi_mon *mons_in;          /* monitors of this process */
    uint8_t named;             /* may have a registered name: drop it at exit */
    int8_t x_answer;           /* an answer from another shard (-1: waiting) */
    edist_term_view exit_reason;
    edi_proc *dying_next;
    edi_at_exit *at_exit;      /* malloc'd, EDI_AT_EXIT_MAX */
    edi_thread_proc *thr;      /* thread processes */
    /* Crash lines: the export this process is running, for the
     * fatal signal handler; NULL: none */
    const struct edi_export_run *running_export;
};

/* A registered name, node-wide (edi_shards.names, under names_mu): by
 * name and by pid. */
typedef struct edi_regname {
    edi_hnode h;      /* by name */
    edi_hnode by_pid; /* by pid */
    edist_procid pid;
    size_t len;
    char name[];
} edi_regname;

/* A process table slot. proc and serial are written by the shard only;
 * other shards read them (edi_proc_probe) to tell a live pid from a dead
 * one without waiting for the shard. */
typedef struct edi_slot {
    _Atomic(edi_proc *) proc;
    _Atomic uint32_t serial;
    uint32_t next_free;
} edi_slot;

#define EDI_PTAB_CHUNK_SLOTS 65536u

/* The scheduler of the shard. */
typedef struct edi_sched {
    void *sp;                  /* the scheduler's own context */
    edi_proc *runq_head, *runq_tail;
    edi_proc *dying_head, *dying_tail;
    edi_timer kick;
    bool in_run;
    bool stopping;
    edi_proc *exiting;         /* the process that switched out to die */
    const void *asan_bottom;   /* the scheduler stack, for ASan's fibers */
    size_t asan_size;
} edi_sched;

/* Requests from threads that are not the shard's (thread processes,
 * runtime calls from any thread): fn(rt, req) runs on the shard, in the
 * order the requests were made. A synchronous request lives in its
 * caller's frame, which waits for `done`; an asynchronous one is a heap
 * block starting with the edi_req, freed after fn. An asynchronous fn may
 * return EDIST_EAGAIN (a full mailbox): that sender's requests then wait,
 * in order, and are retried shortly, while other senders' go on: a full
 * mailbox suspends the thread that floods it (as busy_dist_port suspends
 * an Erlang sender), and nobody else. */
typedef struct edi_req edi_req;
typedef int (*edi_req_fn)(edi_rt *rt, edi_req *req);
/* A synchronous request's fn returns this when the answer comes later (from
 * another shard): then edi_req_complete completes it. */
#define EDI_REQ_LATER 0x7fff0001
void edi_req_complete(edi_req *r, int rc);
struct edi_req {
    edi_req *next;
    edi_req_fn fn;
    const void *sender; /* the calling process, or the thread if none */
    _Atomic uint32_t done;
    int rc;
    bool sync;
    uint64_t take_no; /* asynchronous: its place in the shard's order, from
                       * 1 (0: not taken yet) */
};

/* ---- shards (shard.c) -------------------------------------------------------
 * A pid says which shard owns it: the low id_bits of its id are the
 * shard, the rest the slot in that shard's table (1 shard: no bits, ids as
 * they always were). Signals between shards travel as edi_xrec records on
 * one SPSC ring per ordered pair of shards (dataplane/ring/spsc.h), so what
 * one process sends another arrives in order, as within one shard; a
 * record that finds its ring full waits, in order, in the producer's
 * backlog (never dropped), and a green process that keeps sending into a
 * full ring is held back until it drains. */

#define EDI_SHARDS_MAX 64u
#define EDI_SHARD_RING_ENTRIES_DEFAULT 4096u

typedef struct edi_shards edi_shards;

/* One cross-shard signal (64 bytes, a ring slot). */
typedef struct edi_xrec {
    uint8_t kind;   /* EDI_X_* */
    uint8_t limit;  /* EDI_X_SEND to a process here: the edi_limit */
    uint8_t force;  /* EDI_X_SEND to another node: past its full queue */
    uint8_t flags;  /* EDI_X_EXIT: 1 = exit2 */
    uint32_t node;  /* EDI_X_NODE_DOWN: the node */
    edist_procid from, to;
    void *ptr;      /* EDI_X_SEND: the edi_msg; EDI_X_EXIT: the reason bytes
                     * (static or malloc'd); others: an edi_xblob, or NULL */
    uint64_t len;   /* EDI_X_EXIT: the reason's length */
    /* EDI_X_LINK, EDI_X_MONITOR, EDI_X_SPAWN_REQUEST: the node downs of
     * the target's node the sending shard had acted on (edi_rt_node_downs) */
    uint64_t downs;
} edi_xrec;

/* What a record of the producer's backlog waits in. */
typedef struct edi_xwait {
    struct edi_xwait *next;
    edi_xrec rec;
} edi_xwait;

/* A shard's side of its ring to one other shard (producer). */
typedef struct edi_xout {
    struct edi_ring_spsc *ring;
    edi_xwait *backlog, *backlog_tail; /* waiting for room, oldest first */
    uint32_t backlog_count;
    uint64_t pushed;                   /* records ever taken (ring or backlog) */
    bool wake;                         /* pushed since the last wake */
    /* Green processes held back by this ring's backlog (pids). */
    edist_procid *waiters;
    uint32_t n_waiters, cap_waiters;
} edi_xout;

/* A shard's side of the ring from one other shard (consumer). */
typedef struct edi_xin {
    struct edi_ring_spsc *ring;
    /* The record at the head cannot be acted on yet (a full mailbox, a
     * peer's full queue): the ring waits, in order, and is retried. */
    bool held;
    uint32_t retry_ms;
    edi_timer retry;
    edi_rt *rt;
    uint32_t from;
    uint64_t applied; /* records ever acted on: the producer's pushed */
} edi_xin;

struct edist_runtime {
    edi_loop *loop;
    bool own_loop;
    pthread_t thread;
    bool thread_started;
    edist_runtime_config cfg;
    char node_name[EDIST_ATOM_MAX_BYTES + 1];
    uint32_t node_index;
    uint32_t creation;
    edi_rt_hooks hooks;
    bool has_hooks;

    edi_sched sched;
    edi_msg_pool pool;
    edi_stacks *stacks;

    /* process table: chunk pointers in a fixed array (other shards read it,
     * edi_proc_probe), each set once */
    _Atomic(edi_slot *) *chunks;
    uint32_t nchunks;
    uint32_t id_limit;         /* local ids below it */
    uint32_t next_unused;      /* ids below it have been used */
    uint32_t free_head, free_tail; /* FIFO of freed ids (0: none) */
    uint32_t live;
    edi_proc *proc_free;       /* recycled structs */
    uint32_t proc_free_count;

    edi_htab links;
    edi_htab monitors;
    /* spawn_requests to other nodes awaiting their SPAWN_REPLY, so that
     * node_down can answer them with noconnection (signal.c) */
    edi_htab spawn_reqs;
    /* Node downs acted on here, by node index (0 past the end): shard 0
     * counts those it passed on, the others those they took. */
    uint32_t *node_downs;
    uint32_t node_downs_cap;
    uint64_t unlink_ids;       /* the last unlink id this shard gave */


    /* requests from other threads */
    _Atomic(edi_req *) reqs;       /* newest first */
    _Atomic uint32_t reqs_pending; /* asynchronous ones queued or stalled */
    _Atomic uint64_t reqs_async;   /* asynchronous ones ever queued */
    uint64_t reqs_taken;           /* asynchronous ones numbered (take_no) */
    /* The take_no of the oldest asynchronous request not done yet (a
     * stalled one), else reqs_taken + 1: published after each drain. */
    _Atomic uint64_t reqs_oldest_open;
    _Atomic uint64_t reqs_pending_bytes; /* their send payloads */
    /* requests refused at max_pending_requests or max_pending_bytes (by
     * the posting threads) */
    _Atomic uint64_t reqs_refused;
    _Atomic int reqs_posted;
    edi_req *stalled;              /* oldest first, shard thread */
    edi_req *stalled_tail;
    const void **stalled_senders;  /* the senders in stalled, once each */
    uint32_t n_stalled_senders, cap_stalled_senders;
    bool stalled_senders_lost;     /* an allocation failed: scan stalled */
    uint32_t stall_retry_ms;       /* backs off while nothing moves */
    edi_timer retry;

    /* counters (shard thread; read through a request) */
    uint64_t spawned, exited, switches, sent, dropped;
    uint64_t mailbox_overflows, copied_out, mailbox_busy;
    edi_ratelimit overflow_log; /* mailbox_overflow lines */

    /* base: where lines go, from cfg.log, log_user and log_level. */
    edi_log log;
    /* Shards. */
    edi_shards *g;
    uint32_t shard, nshards;
    uint32_t id_bits, id_mask;  /* a pid's shard: id & id_mask */
    edi_xout *xout;             /* [nshards], to each other shard */
    edi_xin *xin;               /* [nshards], from each other shard */
    bool xwake;                 /* some xout has a wake to give */
    bool yield_due;             /* edi_rt_yield_after_send */
    uint32_t xbacklog;          /* records in all backlogs */
    /* counters (shard thread; others read them relaxed) */
    uint64_t x_ring_full, x_senders_held, x_holds; /* records: xout pushed, xin applied */
    uint64_t x_past_soft_limit; /* to a process waiting for another shard's answer */
    edi_poll_source xpoll;      /* drains the rings every iteration */
};

/* A counter of this shard that other shards read without a lock
 * (edist_runtime_get_shard_stats from a sibling): written with relaxed
 * atomic stores, which the one writer can do without a read-modify-write
 * (a plain add and store on x86), and read with relaxed loads. */
#define EDI_COUNT_ADD(c, n) __atomic_store_n(&(c), (c) + (n), __ATOMIC_RELAXED)

/* The current process of this thread (green while it runs; a thread
 * process's thread). */
extern __attribute__((tls_model("initial-exec"))) _Thread_local edi_proc *edi_current;

/* ---- hot paths, inline ---------------------------------------------------- */

static inline bool edi_rt_is_local(const edi_rt *rt, edist_procid p)
{
    return p.node == rt->node_index;
}

/* Is p a pid of this node owned by this shard? */
static inline bool edi_rt_owns(const edi_rt *rt, edist_procid p)
{
    return p.node == rt->node_index && (p.id & rt->id_mask) == rt->shard;
}

/* Is p a pid of this node owned by another shard? */
static inline bool edi_rt_elsewhere(const edi_rt *rt, edist_procid p)
{
    return p.node == rt->node_index && (p.id & rt->id_mask) != rt->shard;
}

/* The process of a pid of this shard and incarnation: live or exiting. */
static inline edi_proc *edi_proc_lookup(edi_rt *rt, edist_procid pid)
{
    if (!edi_rt_owns(rt, pid) || pid.creation != rt->creation || pid.id == 0)
        return NULL;
    uint32_t local = pid.id >> rt->id_bits;
    uint32_t c = local / EDI_PTAB_CHUNK_SLOTS;
    if (c >= rt->nchunks)
        return NULL;
    edi_slot *chunk = atomic_load_explicit(&rt->chunks[c], memory_order_relaxed);
    if (!chunk)
        return NULL;
    edi_slot *s = &chunk[local % EDI_PTAB_CHUNK_SLOTS];
    edi_proc *p = atomic_load_explicit(&s->proc, memory_order_relaxed);
    return p && atomic_load_explicit(&s->serial, memory_order_relaxed) == pid.serial ? p
                                                                                     : NULL;
}

/* Live only. */
static inline edi_proc *edi_proc_alive(edi_rt *rt, edist_procid pid)
{
    edi_proc *p = edi_proc_lookup(rt, pid);
    return p && p->state < EDI_ST_EXITING ? p : NULL;
}

static inline edist_procid edi_proc_pid(const edi_proc *p)
{
    edist_procid r = {p->rt->node_index, p->id, p->serial, p->rt->creation};
    return r;
}

/* Copy n <= EDI_MSG_INLINE_BYTES bytes without a call: overlapping 8-byte
 * words (n >= 8), else bytes. */
static inline void edi_small_copy(uint8_t *d, const uint8_t *s, size_t n)
{
    if (n >= 8) {
        uint64_t w;
        for (size_t i = 0; i + 8 < n; i += 8) {
            __builtin_memcpy(&w, s + i, 8);
            __builtin_memcpy(d + i, &w, 8);
        }
        __builtin_memcpy(&w, s + n - 8, 8);
        __builtin_memcpy(d + n - 8, &w, 8);
    } else {
        for (size_t i = 0; i < n; i++)
            d[i] = s[i];
    }
}

/* A pool entry holding a copy of a small term (len <= inline bytes), or
 * NULL when the pool is empty (then use edi_msg_copy). */
static inline edi_msg *edi_msg_pool_copy(edi_msg_pool *pool, const void *data, size_t len)
{
    edi_msg *m = pool->free;
    if (!m)
        return NULL;
    pool->free = m->next;
    pool->count--;
    m->next = NULL;
    m->alloc = EDI_MSG_POOL;
    m->ext = 0;
    m->notice = 0;
    m->scarce = EDI_SCARCE_NO;
    m->len = (uint32_t)len;
    edi_small_copy(m->u.inl, (const uint8_t *)data, len);
    m->data = m->u.inl;
    return m;
}

/* Free m: the pool fast path inline. */
static inline void edi_msg_release(edi_msg_pool *pool, edi_msg *m)
{
    if (m->alloc == EDI_MSG_POOL && !m->ext && pool && pool->count < pool->cap) {
        m->next = pool->free;
        pool->free = m;
        pool->count++;
        return;
    }
    edi_msg_free(pool, m);
}

/* proc.c */
void edi_proc_release(edi_rt *rt, edi_proc *p); /* after teardown */
int edi_proc_spawn(edi_rt *rt, edist_proc_fn fn, void *arg, size_t stack_bytes,
                   edi_proc **out);
/* The runtime's lines, through its logger (base/log.h). */
#define edi_rt_log(rt, ...) edi_logf(&(rt)->log, __VA_ARGS__)
/* Which mailbox limit a delivery obeys. */
typedef enum edi_limit {
    EDI_LIMIT_SOFT,  /* local sends: EDIST_EAGAIN at the limit (pushed back) */
    EDI_LIMIT_HARD,  /* from the network: kill the receiver at the hard limit */
    EDI_LIMIT_NONE,  /* signals (EXIT, DOWN): never refused */
} edi_limit;
/* Deliver a message entry to a local process. Returns 0 (m queued),
 * EDIST_ENOTFOUND (p has ended, or was killed at the hard limit: m freed)
 * or EDIST_EAGAIN (soft limit: m NOT taken). Shard thread. */
int edi_deliver(edi_rt *rt, edi_proc *p, edi_msg *m, edi_limit limit);
/* Is p's own mailbox at its soft limit? A sender in that state is never
 * held back by a ring (edi_x_hold): what holds the ring may be waiting for
 * it to receive. */
bool edi_mailbox_at_soft_limit(const edi_rt *rt, const edi_proc *p);
/* Send bytes from `from` to a pid, local or remote, on the shard. With
 * release, the bytes are owned (released exactly once, also on error). */
int edi_send_view(edi_rt *rt, edist_procid from, edist_procid to, const uint8_t *data,
                  size_t len, edist_release_fn release, void *owner);
/* Service replies: Pid ! Msg from the calling green process
 * that is never refused for room: past a full mailbox, or past the send
 * queue limit of the peer's connection (within the node's bound on forced
 * bytes per peer, beyond which it disconnects the peer). For small replies
 * a peer waits for, from a process that serves every peer. 0, or the
 * errors of edist_send but EDIST_EAGAIN; EDIST_EINVAL from a thread. */
int edi_send_forced(edist_procid to, const void *term, size_t len);
/* Pid ! Msg from the calling green process on behalf of someone else (a
 * service relaying or replying): a full local mailbox does not hold the
 * sender back (one process that does not receive would stall a service
 * for every peer); it takes the message up to its hard limit, as from the
 * network, past which its owner exits mailbox_overflow. Remote: as
 * edist_send (EDIST_EAGAIN on a full peer queue). */
int edi_send_relay(edist_procid to, const void *term, size_t len);
/* The same to another node's process through its alias (an ALIAS_SEND:
 * the caller's node drops it once the alias is gone, after a call's
 * timeout), where the connection has DFLAG_ALIAS and this process is on
 * shard 0; to the pid otherwise. */
int edi_send_relay_alias(edist_procid to, edist_term_view alias, const void *term, size_t len);
int edi_send_forced_alias(edist_procid to, edist_term_view alias, const void *term, size_t len);
void edi_proc_unlist(edi_rt *rt, edi_proc *p); /* out of the table */
bool edi_reason_static(edist_term_view v);
/* A message entry for process p's mailbox (pool or heap by p's kind). */
edi_msg *edi_msg_for(edi_rt *rt, const edi_proc *p, const void *data, size_t len);
/* Run req->fn on the shard: directly if called there, else queued. sync:
 * wait for it and return its rc (req in the caller's frame); async: req is
 * a heap block (EDIST_EAGAIN when max_pending_requests are queued: req is
 * not taken). */
int edi_rt_call(edi_rt *rt, edi_req *req, bool sync);
bool edi_rt_on_shard(const edi_rt *rt);
/* fn(rt, ctx) on the shard, waiting for it (directly when already there);
 * its error detail is copied to the caller's thread. */
int edi_rt_run(edi_rt *rt, int (*fn)(edi_rt *rt, void *ctx), void *ctx);
/* The sentinel pattern of edist_sleep_ms: nothing wakes the process but
 * its timer. */
extern const edist_pattern *const EDI_PATTERN_NEVER;
/* Free a thread process's struct and everything queued for it (its
 * thread, after its last reference). */
void edi_thread_proc_free(edi_proc *p);

/* sched.c */
void edi_sched_init(edi_rt *rt);
void edi_sched_make_runnable(edi_rt *rt, edi_proc *p);
/* Green process: give the shard to others until made runnable again. */
void edi_sched_block(edi_rt *rt, edi_proc *p);
void edi_sched_yield(edi_rt *rt, edi_proc *p);
/* edi_sched_yield, and the loop runs an iteration before p runs again. */
void edi_sched_yield_to_loop(edi_rt *rt, edi_proc *p);
/* Green process: the current process ends (state EXITING, reason set):
 * switch away for good. */
__attribute__((noreturn)) void edi_sched_exit_current(edi_rt *rt, edi_proc *p);
void edi_sched_kick(edi_rt *rt);
/* Queue p's teardown (state becomes EXITING with reason, copied unless it
 * is one of the EDIST_REASON_* constants). */
void edi_sched_kill(edi_rt *rt, edi_proc *p, edist_term_view reason);
/* Tear down every dying process now (not from a green stack). */
void edi_sched_reap(edi_rt *rt);
void edi_sched_stop_all(edi_rt *rt);

/* signal.c */
void edi_teardown(edi_rt *rt, edi_proc *p);
/* An exit signal from `from` to local process p. link: a link exit (vs
 * exit/2). */
void edi_exit_signal(edi_rt *rt, edi_proc *p, edist_procid from,
                     edist_term_view reason, bool link);
/* Link a (local, live: ap) with b (bp when local, else NULL). 0 also when
 * the link exists. */
int edi_link_add(edi_rt *rt, edi_proc *ap, edist_procid b, edi_proc *bp);
bool edi_link_remove(edi_rt *rt, edist_procid a, edist_procid b);
edi_mon *edi_mon_find(edi_rt *rt, const edi_refkey *k);
void edi_mon_unlink(edi_rt *rt, edi_mon *m);
/* wp/tp: the local ends (NULL when remote). */
int edi_mon_add(edi_rt *rt, const edi_refkey *ref, edist_procid watcher, edi_proc *wp,
                edist_procid target, edi_proc *tp, uint32_t name_node,
                const char *name, edi_mon **out);
int edi_send_down(edi_rt *rt, edi_mon *m, edist_term_view reason);
void edi_make_refkey(edi_rt *rt, edi_refkey *k);
bool edi_term_is_atom(edist_term_view t, const char *atom);
/* {'EXIT', From, Reason} for p. */
int edi_deliver_exit_msg(edi_rt *rt, edi_proc *p, edist_procid from,
                         edist_term_view reason);

/* registry.c. Names are node-wide: any shard looks them up. */
/* 0 and *pid, or EDIST_ENOTFOUND. Any thread. */
int edi_name_lookup(edi_rt *rt, const char *name, size_t len, edist_procid *pid);
/* Register name for pid. p: pid's process when called on its shard (it is
 * marked named); NULL from another shard (liveness probed, and the owner
 * told with an EDI_X_NAMED record). */
int edi_name_register(edi_rt *rt, const char *name, size_t len, edist_procid pid,
                      edi_proc *p);
/* p ends: its name goes (p's shard). */
void edi_name_drop(edi_rt *rt, edi_proc *p);
/* Every name of pid goes (any thread). */
void edi_name_drop_pid(edi_rt *rt, edist_procid pid);
bool edi_atom_text_ok(const char *name, size_t len);
/* The node-wide tables of shards.c's group. */
void edi_registry_init(edi_shards *g);
void edi_registry_destroy(edi_shards *g);

/* shard.c: the group, the rings, routing. */
struct edi_shards {
    uint32_t n;
    edi_rt *rt[EDI_SHARDS_MAX];
    struct edi_ring_spsc **rings;  /* [from * n + to] */
    /* Set (seq_cst) by the producer from one shard to another that found
     * the ring full with records waiting; the consumer wakes it after it
     * made room. [from * n + to] */
    _Atomic uint32_t *want_room;
    uint32_t ring_entries;
    int cores[EDI_SHARDS_MAX];
    uint32_t ncores;
    pthread_t threads[EDI_SHARDS_MAX];
    bool thread_started[EDI_SHARDS_MAX];
    _Atomic int quiet;             /* going away: no cross-shard signals */
    _Atomic uint32_t live;         /* processes of every shard */
    _Atomic uint32_t next_spawn, next_attach; /* round robin */
    _Atomic uint64_t ref_counter;
    pthread_mutex_t names_mu;
    edi_htab names, names_by_pid;
    pthread_mutex_t export_mu;
    edi_htab exports;
};

/* Record kinds. */
enum {
    EDI_X_SEND = 1,     /* ptr: edi_msg; to a pid here, or of another node */
    EDI_X_REG_SEND,     /* blob: name, node, msg (another node) */
    EDI_X_LINK,
    EDI_X_UNLINK,       /* len: the unlink id */
    EDI_X_UNLINK_ACK,   /* len: the unlink id */
    EDI_X_EXIT,         /* flags 1: exit2; ptr/len: the reason */
    EDI_X_MONITOR,      /* from watcher, to target (null: by name), node; blob */
    EDI_X_DEMONITOR,
    EDI_X_MONITOR_EXIT, /* from target, to watcher; blob: ref, name, reason */
    EDI_X_SPAWN_REQUEST,/* from, node; blob */
    EDI_X_SPAWN_REPLY,  /* to; blob */
    EDI_X_NODE_DOWN,    /* node */
    EDI_X_NAMED,        /* to: a pid that was given a name elsewhere */
    EDI_X_ALIVE,        /* from asks whether `to` lives; ptr: a waiting edi_req */
    EDI_X_ALIVE_REPLY,  /* to: the asker; flags: alive; ptr: its edi_req */
};

/* The shard of this group whose thread is the caller's, or NULL. */
edi_rt *edi_rt_here(const edi_rt *rt);
/* The shard that owns pid (of this node), or NULL. */
edi_rt *edi_rt_owner(const edi_rt *rt, edist_procid pid);
/* Round robin over the shards (spawns and attaches from the API). */
edi_rt *edi_rt_next_spawn(edi_rt *rt);
edi_rt *edi_rt_next_attach(edi_rt *rt);
/* The group is going away: cross-shard signals are no longer sent. */
bool edi_rt_quiet(const edi_rt *rt);
/* edist_runtime_spawn on shard rt itself (the node's services live on
 * shard 0, next to the net kernel they ask). */
int edi_rt_spawn_here(edi_rt *rt, edist_proc_fn fn, void *arg, edist_procid *pid);

/* Signals for a process that is not on this shard: of another shard
 * (its ring), or of another node (on shard 0 the hook, elsewhere a
 * record to shard 0, which calls the hook). The same contracts as the
 * hooks: an error means "as if not connected" (only possible where the
 * answer is known at once). */
/* Pid ! Msg: takes the payload on 0 (as the hooks: release != NULL). */
int edi_out_send(edi_rt *rt, edist_procid from, edist_procid to, const edi_rt_payload *msg,
                 edi_limit limit);
/* The same with an entry already made (taken on 0; EDIST_EAGAIN only
 * from shard 0's hook: m kept). */
int edi_out_send_msg(edi_rt *rt, edist_procid from, edist_procid to, edi_msg *m,
                     edi_limit limit, bool force);
int edi_out_reg_send(edi_rt *rt, edist_procid from, uint32_t node, const char *name,
                     const edi_rt_payload *msg);
int edi_out_reg_send_msg(edi_rt *rt, edist_procid from, uint32_t node, const char *name,
                         edi_msg *m);
int edi_out_link(edi_rt *rt, edist_procid from, edist_procid to);
int edi_out_unlink(edi_rt *rt, edist_procid from, edist_procid to, uint64_t id);
int edi_out_unlink_ack(edi_rt *rt, edist_procid from, edist_procid to, uint64_t id);
int edi_out_exit(edi_rt *rt, edist_procid from, edist_procid to, edist_term_view reason,
                 bool exit2);
int edi_out_monitor(edi_rt *rt, edist_procid watcher, edist_procid target, uint32_t node,
                    const char *name, const edist_ref *ref);
int edi_out_demonitor(edi_rt *rt, edist_procid watcher, edist_procid target, uint32_t node,
                      const char *name, const edist_ref *ref);
int edi_out_monitor_exit(edi_rt *rt, edist_procid target, edist_procid watcher,
                         const char *name, const edist_ref *ref, edist_term_view reason);
int edi_out_spawn_request(edi_rt *rt, edist_procid from, uint32_t node,
                          const edist_ref *req_id, const char *module, const char *function,
                          edist_term_view args, unsigned flags);
/* SPAWN_REPLY for a requester of another shard. */
int edi_out_spawn_reply(edi_rt *rt, edist_procid to, const edist_ref *req_id, bool ok,
                        edist_procid pid, edist_term_view error, unsigned flags);
/* A demonitor whose target nobody named (a remote DEMONITOR_P by name):
 * every other shard looks for the ref. */
void edi_out_demonitor_all(edi_rt *rt, edist_procid watcher, const edist_ref *ref);
/* The local half of edi_rt_demonitor_in (signal.c). */
int edi_rt_demonitor_here(edi_rt *rt, edist_procid watcher, const edist_ref *ref);
/* A process of another shard was given a name here. */
void edi_out_named(edi_rt *rt, edist_procid pid);
/* is_process_alive(Pid) of another shard's pid, after every signal the
 * caller sent it before (as erts orders it): the calling green process
 * waits for the answer; from a thread's request (req: answered later with
 * edi_req_complete, the caller's request returns EDI_REQ_LATER). 1 alive,
 * 0 not, or a negative edist_err. */
int edi_x_alive(edi_rt *rt, edist_procid pid, edi_req *req);
/* node_down for every other shard, after what was sent to each before. */
void edi_out_node_down(edi_rt *rt, uint32_t node);
/* The runtime's work on its way to the node, for a graceful stop: a mark
 * of what was started (asynchronous requests of thread processes queued
 * per shard; records taken by each shard's ring to shard 0, which carries
 * what goes to the node), and whether all of it is done (every request
 * up to the mark, in the shard's order, run or held back no more; the
 * records acted on, each ring in order). Any thread. */
typedef struct edi_rt_mark {
    uint64_t reqs[EDI_SHARDS_MAX];
    uint64_t records[EDI_SHARDS_MAX]; /* shard i's ring to shard 0 */
} edi_rt_mark;
void edi_rt_mark_requests(const edi_rt *rt, edi_rt_mark *m);
void edi_rt_mark_records(const edi_rt *rt, edi_rt_mark *m);
bool edi_rt_requests_done(const edi_rt *rt, const edi_rt_mark *m);
bool edi_rt_records_done(const edi_rt *rt, const edi_rt_mark *m);
/* edist_send's "held back": the calling green process waits while the
 * ring toward to's shard has a long backlog (after a send that went
 * there), and gives the loop a turn when the node asked for one
 * (edi_rt_yield_after_send). */
void edi_x_hold(edi_rt *rt, edist_procid to);
/* The send that runs now went behind the peer's backed-up output (its
 * lane took no more): the sending green process lets the loop poll
 * before it runs again, so that the lane's acknowledgements and writes
 * catch up while the backlog is short. A process that runs to completion
 * otherwise fills the whole queue (up to busy_dist_port) each time, and
 * every message after takes the queue's copies. */
void edi_rt_yield_after_send(edi_rt *rt);
/* Would a send to `to` find its ring's backlog too long (a thread's send
 * waits, as for a full mailbox)? */
bool edi_x_busy(edi_rt *rt, edist_procid to);
/* The local half of node_down (signal.c). */
void edi_rt_node_down_here(edi_rt *rt, uint32_t node);
/* How many node downs of node this shard acted on. A link, monitor or
 * spawn request a shard sends shard 0 for another node carries its count: one smaller
 * than shard 0's was made before a node down the sender had not taken
 * yet, which ends it there (noconnection), so shard 0 drops it rather
 * than send it on a connection made since. */
uint32_t edi_rt_node_downs(const edi_rt *rt, uint32_t node);
/* A process p was marked named by a record (registry.c). */
void edi_name_marked(edi_rt *rt, edist_procid pid);
/* The group of a new runtime (edi_rt_new made its g->n shards, shard 0
 * on the caller's loop): rings, pollers, the other shards' threads
 * (pinned to cores, "C0,C1,..."). */
int edi_shards_start(edi_shards *g, const char *cores, uint32_t ring_entries);
/* Stops the other shards' threads (their processes end quietly) and frees
 * every shard, shard 0 too, and the group (edi_rt_free). Shard 0's loop
 * must not run, or this is its thread. Partly made groups too. */
void edi_shards_free(edi_shards *g);
/* proc.c, for shard.c: a shard's own thread (started, running its loop
 * when this returns), its stop (its processes end on it, quietly), and
 * what is left of it once stopped. */
int edi_rt_start_thread(edi_rt *rt, pthread_t *thread);
void edi_rt_stop_thread(edi_rt *rt, pthread_t thread);
void edi_rt_shard_free(edi_rt *rt);
/* Is pid alive on owner (another shard): a lock-free look at its table
 * (proc.c). A hint: it may end right after. */
bool edi_proc_probe(edi_rt *owner, edist_procid pid);
/* Counters of one shard, read from any thread (relaxed: may lag). */
void edi_rt_stats_add(edi_rt *rt, edist_runtime_stats *o, bool exact);

/* An export being run: named in the line a fatal signal prints. It lives
 * in edi_export_call's frame. */
typedef struct edi_export_run {
    const char *module, *function;
    uint32_t arity;
} edi_export_run;
/* Every call of an exported function goes through here, so that a crash
 * inside it can name module:function/arity. */
int edi_export_call(edist_exported_fn fn, void *user, const char *module,
                    const char *function, const edist_term_view *args,
                    uint32_t arity, edist_buf *result);

#endif
