/* SPDX-License-Identifier: Apache-2.0 */
/* Message entries and the queues they travel in.
 *
 * An entry is two cache lines: a link, a view of the encoded term, and
 * either the term itself (up to 104 bytes inline: the common small message
 * costs no allocation once the shard's pool is warm, and one arriving from
 * the network is cheaper copied than referenced, counted and listed as a
 * view) or a reference to bytes owned elsewhere (a network receive buffer,
 * a sender's buffer) released through a callback when the message is
 * consumed: large terms are never copied. Larger terms that a sender asks
 * to be copied go in one heap block with their entry.
 *
 * Entries from the pool are only ever freed on the shard thread; entries
 * for a thread process (consumed on its own thread) are heap entries. */
#include <errno.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "runtime/runtime_internal.h"

_Static_assert(sizeof(edi_msg) == 128, "a message entry is two cache lines");

void edi_msg_pool_init(edi_msg_pool *pool, uint32_t cap)
{
    pool->free = NULL;
    pool->count = 0;
    pool->cap = cap;
    pool->scarce = NULL;
}

void edi_msg_pool_drain(edi_msg_pool *pool)
{
    edi_msg *m = pool->free;
    while (m) {
        edi_msg *n = m->next;
        free(m);
        m = n;
    }
    pool->free = NULL;
    pool->count = 0;
}

static inline edi_msg *entry_new(edi_msg_pool *pool)
{
    edi_msg *m;
    if (pool && pool->free) {
        m = pool->free;
        pool->free = m->next;
        /* the next one is used soon (a burst takes thousands): its line
         * on the way while this one is filled */
        if (pool->free)
            __builtin_prefetch(pool->free, 1);
        pool->count--;
        m->alloc = EDI_MSG_POOL;
    } else {
        m = malloc(sizeof *m);
        if (!m)
            return NULL;
        m->alloc = pool ? EDI_MSG_POOL : EDI_MSG_HEAP;
    }
    m->next = NULL;
    m->notice = 0;
    m->scarce = 0;
    return m;
}

edi_msg *edi_msg_copy(edi_msg_pool *pool, const void *data, size_t len)
{
    edi_msg *m;
    if (len <= EDI_MSG_INLINE_BYTES) {
        m = entry_new(pool);
        if (!m)
            return NULL;
    } else {
        if (len > UINT32_MAX)
            return NULL;
        m = malloc(offsetof(edi_msg, u) + len);
        if (!m)
            return NULL;
        m->alloc = EDI_MSG_HEAP;
        m->next = NULL;
        m->notice = 0;
        m->scarce = 0;
    }
    m->ext = 0;
    m->len = (uint32_t)len;
    if (len)
        memcpy(m->u.inl, data, len);
    m->data = m->u.inl;
    return m;
}

edi_msg *edi_msg_external(edi_msg_pool *pool, const void *data, size_t len,
                          edist_release_fn release, void *owner)
{
    if (len > UINT32_MAX)
        return NULL;
    edi_msg *m = entry_new(pool);
    if (!m)
        return NULL;
    m->ext = 1;
    m->len = (uint32_t)len;
    m->data = data;
    m->u.x.release = release;
    m->u.x.owner = owner;
    return m;
}

void edi_release_free(void *owner, const void *data)
{
    (void)data;
    free(owner);
}

static void scarce_unlink(edi_msg_pool *pool, edi_msg *m)
{
    if (m->u.x.sprev)
        m->u.x.sprev->u.x.snext = m->u.x.snext;
    else
        pool->scarce = m->u.x.snext;
    if (m->u.x.snext)
        m->u.x.snext->u.x.sprev = m->u.x.sprev;
}

void edi_msg_scarce_queued(edi_msg_pool *pool, edi_msg *m)
{
    m->scarce = EDI_SCARCE_QUEUED;
    m->u.x.sprev = NULL;
    m->u.x.snext = pool->scarce;
    if (pool->scarce)
        pool->scarce->u.x.sprev = m;
    pool->scarce = m;
}

void edi_msg_scarce_taken(edi_msg_pool *pool, edi_msg *m)
{
    if (m->ext && m->scarce == EDI_SCARCE_QUEUED) {
        scarce_unlink(pool, m);
        m->scarce = EDI_SCARCE_TAKEN;
    }
}

int edi_msg_unshare(edi_msg_pool *pool, edi_msg *m)
{
    if (!m->ext || m->scarce == EDI_SCARCE_NO)
        return 0;
    uint8_t *copy = malloc(m->len ? m->len : 1);
    if (!copy)
        return EDIST_ENOMEM;
    memcpy(copy, m->data, m->len);
    if (m->scarce == EDI_SCARCE_QUEUED)
        scarce_unlink(pool, m);
    if (m->u.x.release)
        m->u.x.release(m->u.x.owner, m->data);
    m->data = copy;
    m->u.x.release = edi_release_free;
    m->u.x.owner = copy;
    m->scarce = EDI_SCARCE_NO;
    return 1;
}

uint32_t edi_msg_unshare_queued(edi_msg_pool *pool)
{
    uint32_t n = 0;
    edi_msg *m = pool->scarce;
    while (m) {
        edi_msg *next = m->u.x.snext;
        if (edi_msg_unshare(pool, m) == 1)
            n++;
        m = next;
    }
    return n;
}

void edi_msg_free(edi_msg_pool *pool, edi_msg *m)
{
    if (m->ext && m->scarce == EDI_SCARCE_QUEUED)
        scarce_unlink(pool, m);
    if (m->ext && m->u.x.release)
        m->u.x.release(m->u.x.owner, m->data);
    if (m->alloc == EDI_MSG_POOL && pool && pool->count < pool->cap) {
        m->next = pool->free;
        pool->free = m;
        pool->count++;
        return;
    }
    free(m);
}

void edi_mbox_clear(edi_mbox *b, edi_msg_pool *pool)
{
    edi_msg *m = b->head;
    while (m) {
        edi_msg *n = m->next;
        edi_msg_free(pool, m);
        m = n;
    }
    edi_mbox_init(b);
}

/* ---- multi-producer queue -------------------------------------------------- */

void edi_mpsc_push(edi_mpsc *q, edi_msg *m)
{
    edi_msg *top = atomic_load_explicit(&q->top, memory_order_relaxed);
    do {
        m->next = top;
        /* release: m's contents (and m->next) are visible to the consumer
         * whose acquire exchange in edi_mpsc_take takes m. */
    } while (!atomic_compare_exchange_weak_explicit(&q->top, &top, m, memory_order_release,
                                                    memory_order_relaxed));
}

edi_msg *edi_mpsc_take(edi_mpsc *q)
{
    if (atomic_load_explicit(&q->top, memory_order_relaxed) == NULL)
        return NULL;
    /* acquire: pairs with the release CAS of each push. */
    edi_msg *m = atomic_exchange_explicit(&q->top, NULL, memory_order_acquire);
    /* Newest first: reverse into arrival order (each producer's pushes
     * stay in its own order). */
    edi_msg *out = NULL;
    while (m) {
        edi_msg *n = m->next;
        m->next = out;
        out = m;
        m = n;
    }
    return out;
}

/* ---- futex ----------------------------------------------------------------------- */

void edi_futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ns != UINT64_MAX) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000u);
        ts.tv_nsec = (long)(timeout_ns % 1000000000u);
        tsp = &ts;
    }
    /* EAGAIN (the word changed), EINTR and ETIMEDOUT all mean: look again. */
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, tsp, NULL, 0);
}

void edi_futex_wake(_Atomic uint32_t *word)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}
