/* SPDX-License-Identifier: Apache-2.0 */
#include "control/conn_table.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "dataplane/term/hash.h"
#include "edist/error.h"

#define INITIAL_BUCKETS 64u

/* Looked up on every message sent: the library's byte hash (eight bytes
 * a step), seeded per table since peers choose their names. */
static uint64_t hash_name(const edi_conn_table *t, const char *s)
{
    return edi_hash_bytes(s, strlen(s), t->seed);
}

int edi_ct_init(edi_conn_table *t, size_t max_peers)
{
    memset(t, 0, sizeof *t);
    if (getrandom(&t->seed, sizeof t->seed, GRND_NONBLOCK) != (ssize_t)sizeof t->seed)
        t->seed = (uint64_t)(uintptr_t)t ^ (uint64_t)time(NULL);
    t->buckets = calloc(INITIAL_BUCKETS, sizeof *t->buckets);
    if (!t->buckets)
        return edist_set_error(EDIST_ENOMEM, "connection table: no memory");
    t->bucket_count = INITIAL_BUCKETS;
    t->max_peers = max_peers ? max_peers : EDI_CT_MAX_PEERS_DEFAULT;
    return 0;
}

static void free_waiters(edi_peer_waiter *w)
{
    while (w) {
        edi_peer_waiter *n = w->next;
        free(w);
        w = n;
    }
}

void edi_ct_destroy(edi_conn_table *t)
{
    edi_peer *p = t->head;
    while (p) {
        edi_peer *n = p->list_next;
        free_waiters(p->waiters);
        free(p);
        p = n;
    }
    free(t->buckets);
    memset(t, 0, sizeof *t);
}

edi_peer *edi_ct_find(const edi_conn_table *t, const char *name)
{
    if (!t->buckets || !name)
        return NULL;
    size_t b = hash_name(t, name) & (t->bucket_count - 1);
    for (edi_peer *p = t->buckets[b]; p; p = p->hash_next)
        if (!strcmp(p->name, name))
            return p;
    return NULL;
}

/* Doubling keeps chains short; failure to grow is harmless (longer chains). */
static void maybe_grow(edi_conn_table *t)
{
    if (t->count < t->bucket_count)
        return;
    size_t n = t->bucket_count * 2;
    edi_peer **nb = calloc(n, sizeof *nb);
    if (!nb)
        return;
    for (edi_peer *p = t->head; p; p = p->list_next) {
        size_t b = hash_name(t, p->name) & (n - 1);
        p->hash_next = nb[b];
        nb[b] = p;
    }
    free(t->buckets);
    t->buckets = nb;
    t->bucket_count = n;
}

int edi_ct_add(edi_conn_table *t, const char *name, edi_peer **out)
{
    size_t len = name ? strlen(name) : 0;
    if (!edi_hs_node_name_ok(name ? name : "", len))
        return edist_set_error(EDIST_EINVAL, "bad node name '%s'",
                               name ? name : "");
    if (edi_ct_find(t, name))
        return edist_set_error(EDIST_EEXIST, "%s is in the table already",
                               name);
    if (t->count >= t->max_peers)
        return edist_set_error(
            EDIST_ENOMEM, "connection table full (%zu peers)", t->max_peers);
    edi_peer *p = calloc(1, sizeof *p);
    if (!p)
        return edist_set_error(EDIST_ENOMEM, "connection table: no memory");
    memcpy(p->name, name, len + 1);
    p->state = EDI_PEER_PENDING;
    size_t b = hash_name(t, name) & (t->bucket_count - 1);
    p->hash_next = t->buckets[b];
    t->buckets[b] = p;
    p->list_next = t->head;
    if (t->head)
        t->head->list_prev = p;
    t->head = p;
    t->count++;
    maybe_grow(t);
    *out = p;
    return 0;
}

void edi_ct_remove(edi_conn_table *t, edi_peer *p)
{
    size_t b = hash_name(t, p->name) & (t->bucket_count - 1);
    for (edi_peer **pp = &t->buckets[b]; *pp; pp = &(*pp)->hash_next) {
        if (*pp == p) {
            *pp = p->hash_next;
            break;
        }
    }
    if (p->list_prev)
        p->list_prev->list_next = p->list_next;
    else
        t->head = p->list_next;
    if (p->list_next)
        p->list_next->list_prev = p->list_prev;
    t->count--;
    free_waiters(p->waiters);
    free(p);
}

int edi_ct_add_waiter(edi_peer *p, uint64_t id)
{
    edi_peer_waiter *w = malloc(sizeof *w);
    if (!w)
        return edist_set_error(EDIST_ENOMEM, "connection table: no memory");
    w->id = id;
    /* Appended, so waiters hear the outcome in the order they asked. */
    w->next = NULL;
    edi_peer_waiter **pp = &p->waiters;
    while (*pp)
        pp = &(*pp)->next;
    *pp = w;
    return 0;
}

edi_peer_waiter *edi_ct_take_waiters(edi_peer *p)
{
    edi_peer_waiter *w = p->waiters;
    p->waiters = NULL;
    return w;
}

edi_hs_decision edi_ct_decide_incoming(const edi_peer *p, const char *our_name,
                                       const char *peer_name)
{
    if (!p)
        return EDI_HS_GO;
    switch (p->state) {
    case EDI_PEER_PENDING:
        if (!p->owner)
            return EDI_HS_GO;
        return edi_hs_resolve_simultaneous(our_name, peer_name);
    case EDI_PEER_UP:
        return EDI_HS_ALREADY_UP;
    case EDI_PEER_UP_PENDING:
        return EDI_HS_BUSY;
    }
    return EDI_HS_BUSY;
}

bool edi_ct_still_pending(const edi_peer *p, const edi_link *link)
{
    return p && p->state == EDI_PEER_PENDING && p->owner == link;
}
