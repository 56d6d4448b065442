/* SPDX-License-Identifier: Apache-2.0 */
/* What services.c, services_rpc.c and services_demo.c share. */
#ifndef EDI_SERVICES_INTERNAL_H
#define EDI_SERVICES_INTERNAL_H

#include <stdatomic.h>

#include <pthread.h>

#include "dataplane/term/hash.h"
#include "edist/global.h"
#include "edist/node.h" /* EDIST_NODE_SERVICE_RESTARTS_MAX */
#include "runtime/services.h"

/* A pid's hash in a service's tables (seeded per table owner). */
static inline uint64_t edi_svc_pid_hash(edist_procid pid, uint64_t seed)
{
    return edi_hash_bytes(&pid, sizeof pid, seed);
}

/* A service's patterns: compiled on first use, once for the program
 * (read-only, so the processes of every node share them), and never
 * freed, so a process killed while it uses them leaves nothing behind.
 * Each service owns its set. */
typedef struct edi_svc_patterns {
    const char *const *text;
    size_t n;
    _Atomic(edist_pattern **) compiled;
} edi_svc_patterns;
#define EDI_SVC_PATTERNS(texts) {(texts), sizeof(texts) / sizeof((texts)[0]), NULL}
/* The set's patterns, in the order of its texts; NULL when one did not
 * compile (no memory; the error is set). Any thread. */
edist_pattern *const *edi_svc_patterns_get(edi_svc_patterns *set);

/* pg's scope (services_pg.c), for edist:stats/0: its size, and the work
 * of finding groups by term (a lookup hashes the term and compares it
 * with the groups of the same hash: about one comparison per lookup,
 * whatever the number of groups). Written by the scope process, read by
 * any. */
typedef struct edi_pg_stats {
    _Atomic uint64_t groups;
    _Atomic uint64_t members;
    _Atomic uint64_t group_lookups;
    _Atomic uint64_t group_compares;
} edi_pg_stats;

/* global's counters (services_global.c), for edist:stats/0. Written by
 * its processes, read by any. */
typedef struct edi_global_stats {
    _Atomic uint64_t names;          /* in the table now */
    _Atomic uint64_t known;          /* nodes synced with now */
    _Atomic uint64_t syncs;          /* syncs completed */
    _Atomic uint64_t syncs_ended;    /* syncs ended before completing */
    _Atomic uint64_t clashes;        /* name clashes this node resolved */
    _Atomic uint64_t stale_ops;      /* inserts refused: their `global` lock was gone */
    _Atomic uint64_t lock_refusals;  /* set_lock answered false, or not answered */
    _Atomic uint64_t call_timeouts;  /* calls to other servers unanswered in 10 s */
    _Atomic uint64_t lost_connections; /* lost_connection sent (prevent_overlapping_partitions) */
    _Atomic uint64_t removed_connections; /* connections dropped when asked */
} edi_global_stats;

/* The keeper's (services.c): each service it watches. */
#define SVC_KEPT_MAX 8
typedef struct svc_kept {
    const char *name;
    edist_proc_fn fn; /* NULL: not started again */
    edist_ref mref;
    /* the last restarts, a ring of cfg.service_restarts */
    uint64_t started_ms[EDIST_NODE_SERVICE_RESTARTS_MAX];
    unsigned n_restarts;
    bool down;
} svc_kept;
typedef struct svc_keeper {
    svc_kept kept[SVC_KEPT_MAX];
    unsigned n;
} svc_keeper;

struct edi_services {
    edi_rt *rt;
    edi_services_config cfg;
    char stats_path[1024]; /* cfg.stats_path's copy */
    /* pg's and global's counters */
    edi_pg_stats pg_stats;
    edi_global_stats global_stats;
    /* service replies (edi_svc_send); shard thread only */
    uint64_t sends_waited; /* found no room and waited for it */
    uint64_t sends_forced; /* found no room and were forced past the limit */
    /* services that ended and were started again (the keeper) */
    _Atomic uint64_t restarts;
    _Atomic bool stopping; /* the node stops: nothing is started again */
    svc_keeper keeper;
    /* global's clash resolver set from C (edist_global_set_resolver);
     * read by global_name_server, set from any thread */
    pthread_mutex_t resolver_mu;
    edist_global_resolve_fn resolver;
    void *resolver_user;
};

/* A term the caller of a service API passed: one encoded term (a leading
 * 131 is accepted), viewed without it in *v. EDIST_EINVAL ("who: no
 * what", "who: the what is not one encoded term") otherwise. */
int edi_svc_term_arg(const char *who, const char *what, const void *term, size_t len,
                     edist_term_view *v);

/* An exported function's atom argument into out (NUL-terminated); an
 * exception badarg (edi_raise_error_atom) when it is not an atom that
 * fits. */
int edi_svc_atom_arg(edist_term_view v, char *out, size_t cap);

/* The view of variable `name` of pattern p after a match ({NULL, 0} if p
 * has no such variable). */
edist_term_view edi_svc_var(const edist_pattern *p, const edist_term_view *vars,
                            const char *name);
/* Decode a pid view; 0 or an error (not a pid). */
int edi_svc_pid(edist_term_view v, edist_procid *out);
/* Decode a reference view; 0 or an error (not a reference). */
int edi_svc_ref(edist_term_view v, edist_ref *out);
bool edi_svc_is_atom(edist_term_view v, const char *atom);

/* Service replies. What a service sends for a peer (a reply,
 * or a message it passes on) is never dropped for want of room: when the
 * receiver's mailbox is full, or the peer's send queue is (EDIST_EAGAIN,
 * erts' busy_dist_port), it
 *   EDI_SVC_WAIT: waits in the calling process, sleeping between tries
 *     (a green process yields: the shard runs on and drains the queue
 *     meanwhile), as erts suspends a sender on a busy port. The process's
 *     other work waits too; its messages keep their order.
 *   EDI_SVC_FORCE: goes past the limit at once (edi_send_forced): for the
 *     small replies of a process that serves every peer, so that one peer
 *     that does not read holds up nobody else. The node bounds the forced
 *     bytes per peer (past that it disconnects the peer, logged).
 *   EDI_SVC_WAIT_NOCONNECT: waits as EDI_SVC_WAIT, but never sets up a
 *     connection (erlang:send/3's noconnect, which pg.erl uses): to a node
 *     not connected (now, or any more after a wait) it returns
 *     EDIST_ECLOSED and sends nothing. The check and the send run on the
 *     shard without a break between them, so it is exact.
 * Returns 0, or the send's error other than EDIST_EAGAIN (EDIST_ECLOSED:
 * the connection went down, which also ends a wait). Counted in s. From a
 * green process of the services. */
typedef enum edi_svc_how { EDI_SVC_WAIT, EDI_SVC_FORCE, EDI_SVC_WAIT_NOCONNECT } edi_svc_how;
int edi_svc_send(edi_services *s, edist_procid to, const void *term,
                 size_t len, edi_svc_how how);
/* {Name, Node} ! Msg (node NULL: Name ! Msg on this node, EDIST_ENOTFOUND
 * when unregistered), waiting for room: how is EDI_SVC_WAIT or
 * EDI_SVC_WAIT_NOCONNECT. */
int edi_svc_send_name(edi_services *s, const char *name, const char *node,
                      const void *term, size_t len, edi_svc_how how);

/* gen_server:call({Name, Node}, Req, Timeout) from the calling process
 * (green or thread), the one call mechanism of the services and their
 * clients: the callee is monitored (by name), {'$gen_call', {self(),
 * Tag}, Req} is sent, and the first of {Tag, Reply} and the monitor's
 * DOWN ends the wait. Tag is a fresh ref, or {Ref, tag_node} when
 * tag_node is given (what gen_server:multi_call sends). node NULL: this
 * node. s: a service's sends wait for room (EDI_SVC_WAIT); NULL: a plain
 * send. Returns 0 and the reply in out (reset); EDIST_ECLOSED when the
 * callee is not there or went away (noproc, noconnection);
 * EDIST_ETIMEDOUT; EDIST_EINVAL when the caller is not a process. */
int edi_svc_call(edi_services *s, const char *name, const char *node, const char *tag_node,
                 const void *req, size_t len, edist_buf *out, int64_t timeout_ms);

/* gen_server:cast's message, {'$gen_cast', Req}: its head, the encoded
 * Req to follow in b. */
void edi_svc_enc_cast(edist_buf *b);

/* A heap buffer a service process holds across a wait (a send that waits
 * for room): a green process killed meanwhile never returns, so its end
 * frees the buffer. NULL when out of memory. Release it when done. */
edist_buf *edi_svc_buf_hold(void);
void edi_svc_buf_release(edist_buf *b);
/* The same for any heap block: free_fn(arg) runs at the process's end if
 * it is killed before edi_svc_unguard (green processes only; returns
 * whether it was registered). The caller still frees arg itself after
 * unguarding. */
bool edi_svc_guard(void (*free_fn)(void *), void *arg);
void edi_svc_unguard(void (*free_fn)(void *), void *arg, bool guarded);

/* gen_server:reply(From, Reply): {Tag, Reply} to the caller pid, as any
 * tag (a ref, [alias | Ref], {Ref, Node}) asks, sent as how says. The
 * one reply of every service. */
int edi_svc_reply(edi_services *s, edist_procid to, edist_term_view tag, const void *value,
                  size_t len, edi_svc_how how);

/* Heap state of one process, freed however the process ends (an at-exit
 * function): scratch buffers and kept messages stay valid across the
 * process's receives and are not leaked when it is killed or exits from
 * deep inside a call. */
#define EDI_SVC_KEEP_MAX 4
typedef struct edi_svc_px {
    edist_buf a, b;
    edist_message *keep[EDI_SVC_KEEP_MAX];
    void *extra; /* any malloc'd block */
} edi_svc_px;
/* From a process; NULL when out of memory. */
edi_svc_px *edi_svc_px_new(void);
/* Keep the message last received until the process ends; *term gets its
 * view. Views taken before (the receive's message and captures) are no
 * longer valid: a small message moves out of the shard's pool. 0 or
 * EDIST_ENOMEM / EDIST_ENOSPC (all slots used). */
int edi_svc_px_keep(edi_svc_px *x, edist_term_view *term);

/* The outcome of applying M:F(A) as `try apply(M, F, A) catch ... end`. */
typedef enum edi_svc_class {
    EDI_CLASS_RETURN = 0,
    EDI_CLASS_THROW,
    EDI_CLASS_EXIT,
    EDI_CLASS_ERROR,
} edi_svc_class;

typedef struct edi_svc_outcome {
    edi_svc_class cls;
    edist_term_view value; /* the value, the thrown term, the reason */
    edist_term_view stack; /* error: the stack */
    /* return: the worker's whole result message {Tag, return, Value} */
    edist_term_view whole;
    /* error in the arguments of apply itself (too many of them): erpc
     * reports it as {Ref, error, {erpc, Reason}}, without a stack */
    bool arg_error;
} edi_svc_outcome;

/* In the calling process (green): run M:F(A...) (m, f encoded atoms, a
 * an encoded list; not checked beforehand) in a worker process linked to
 * the caller, wait for it, and tell how it ended. Meanwhile the caller
 * acts as if it were the worker: messages to it are passed on to the
 * worker, and an exit signal ends it as it would a process not trapping
 * exits (and the worker with it). tag: an encoded term the result is
 * tagged with (erpc's Ref, or a fresh ref). The views point into x's
 * kept messages and x->a (the caller may use x->b). Returns 0 or a negative
 * edist_err (no worker could be made). */
int edi_svc_apply(edi_services *s, edi_svc_px *x, edist_term_view tag,
                  edist_term_view m, edist_term_view f, edist_term_view a,
                  edi_svc_outcome *out);

/* One exported function of a service, and a table of them exported with
 * the services as user (0 or the first error). */
typedef struct edi_svc_export {
    const char *module, *function;
    uint32_t arity;
    edist_exported_fn fn;
} edi_svc_export;
int edi_svc_export_table(edi_services *s, const edi_svc_export *table, size_t n);

/* A process that lives until it is told `stop` or killed (other messages
 * are dropped); nothing allocated, so a kill leaves nothing behind. What
 * edist_demo:pg_join/1 and global_register/1 spawn. */
void edi_svc_idle_main(void *arg);

/* edist:stats/0's map into result (from a process: it asks every shard). */
int edi_services_stats(edi_services *s, edist_buf *result);

/* Exports of each file. */
int edi_svc_export_rpc(edi_services *s);
int edi_svc_export_demo(edi_services *s);
int edi_svc_export_pg(edi_services *s); /* pg:*, edist_demo:pg_join/1 */
int edi_svc_export_global(edi_services *s); /* global:*, edist_demo:global_register/1 */


/* The rex server's main and the pg scope process's (arg: the
 * edi_services). */
void edi_svc_rex_main(void *arg);
void edi_svc_pg_main(void *arg);
void edi_svc_global_main(void *arg);

#endif
