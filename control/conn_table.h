/* SPDX-License-Identifier: Apache-2.0 */
/* The connection table: one entry per peer node we are connected to or
 * connecting with, in the states net_kernel's sys_dist table uses:
 *
 *   PENDING     a handshake owns the entry (ours outgoing, or an incoming
 *               one); owner may be NULL for a short while after our own
 *               attempt lost a simultaneous connect and we wait for the
 *               peer's attempt to arrive
 *   UP          a connection is up (owner is it)
 *   UP_PENDING  up, and a new incoming connection from the same node was
 *               told "alive" and waits (pending) for the old one to go
 *
 * The table only stores and decides; the net kernel (netkernel.c) does the
 * I/O. Entries are found by full node name. Loop thread only, no locks. */
#ifndef EDIST_CONTROL_CONN_TABLE_H
#define EDIST_CONTROL_CONN_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/handshake.h"

/* A connection (socket + handshake + state), defined by its owner. */
typedef struct edi_link edi_link;

typedef enum edi_peer_state {
    EDI_PEER_PENDING = 1,
    EDI_PEER_UP,
    EDI_PEER_UP_PENDING,
} edi_peer_state;

/* Someone waiting for a pending connection's outcome. Identified by id so
 * that a waiter that gave up (timeout) is simply not found any more. */
typedef struct edi_peer_waiter {
    uint64_t id;
    struct edi_peer_waiter *next;
} edi_peer_waiter;

typedef struct edi_peer {
    char name[EDI_HS_NAME_MAX_BYTES + 1];
    edi_peer_state state;
    edi_link *owner;   /* PENDING: the handshake; UP*: the live link */
    edi_link *pending; /* UP_PENDING: the incoming link that waits */
    /* Set when the connection is up. */
    bool hidden;
    uint64_t flags; /* negotiated */
    uint32_t creation;
    uint64_t up_since_ms;
    /* this connection's id (net_kernel's connection_id): a new one for
     * every connection that comes up, never reused by this node */
    uint64_t conn_id;
    edi_peer_waiter *waiters;
    /* PENDING without owner: give up at this time (ms, loop clock). */
    uint64_t orphan_deadline_ms;
    struct edi_peer *hash_next;
    struct edi_peer *list_next, *list_prev;
} edi_peer;

/* At most this many peers at once (connections refused beyond it). */
#define EDI_CT_MAX_PEERS_DEFAULT 4096u

typedef struct edi_conn_table {
    edi_peer **buckets;
    size_t bucket_count; /* power of two */
    size_t count;
    size_t max_peers;
    edi_peer *head; /* every entry, newest first, for iteration */
    /* the seed of the name hash */
    uint64_t seed;
} edi_conn_table;

/* 0 or EDIST_ENOMEM. max_peers 0: the default. */
int edi_ct_init(edi_conn_table *t, size_t max_peers);
/* Frees every entry (and its waiter list). */
void edi_ct_destroy(edi_conn_table *t);

edi_peer *edi_ct_find(const edi_conn_table *t, const char *name);
/* New PENDING entry without owner. EDIST_EEXIST if present, EDIST_ENOMEM
 * when full (detail), EDIST_EINVAL for a bad name. */
int edi_ct_add(edi_conn_table *t, const char *name, edi_peer **out);
/* Unlinks and frees p (and its waiters: collect them first). */
void edi_ct_remove(edi_conn_table *t, edi_peer *p);

/* Iteration: for (p = t->head; p; p = p->list_next). */

/* Waiters. add: 0 or EDIST_ENOMEM. take: detaches and returns the list
 * (free each with free()). */
int edi_ct_add_waiter(edi_peer *p, uint64_t id);
edi_peer_waiter *edi_ct_take_waiters(edi_peer *p);

/* What net_kernel's accept_pending answers an incoming connection from
 * peer_name (p: its entry or NULL), for a node named our_name:
 *   no entry, or PENDING without owner      -> EDI_HS_GO
 *   PENDING (another handshake owns it)     -> REFUSE_SIMULTANEOUS when our
 *                                              name is the greater, else
 *                                              GO_SIMULTANEOUS (the caller
 *                                              aborts the old owner)
 *   UP                                      -> EDI_HS_ALREADY_UP
 *   UP_PENDING                              -> EDI_HS_BUSY
 * Pure. */
edi_hs_decision edi_ct_decide_incoming(const edi_peer *p, const char *our_name,
                                       const char *peer_name);

/* The initiator's still_pending hook (dist_util's is_pending): the peer
 * says "alive"; true if link still owns the PENDING entry. */
bool edi_ct_still_pending(const edi_peer *p, const edi_link *link);

#endif
