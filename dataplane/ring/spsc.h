/* SPDX-License-Identifier: Apache-2.0 */
/* A bounded single-producer single-consumer ring of fixed-size records.
 *
 * One thread pushes, one other thread takes: no locks, no read-modify-write
 * instructions, one release store per push and per batch taken. The
 * indexes run freely (mod 2^32) and are masked into a power-of-2 slot
 * array; each side caches the other's index and reads it again only when
 * the cached one says "full" (producer) or "empty" (consumer), so in steady
 * state the two sides touch each other's cache line once per batch.
 *
 * The consumer reads records in place (peek) and hands slots back when it
 * is done (consume): a record it cannot act on yet stays at the head.
 *
 * Any thread: new, free (when neither side runs), capacity. Producer:
 * push, room. Consumer: readable, peek, consume, pop. */
#ifndef EDI_RING_SPSC_H
#define EDI_RING_SPSC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EDI_RING_CACHE_LINE 64

typedef struct edi_ring_spsc {
    /* Producer's line: tail is published here, head_cache is private. */
    _Alignas(EDI_RING_CACHE_LINE) _Atomic uint32_t tail;
    uint32_t head_cache;
    /* Consumer's line. */
    _Alignas(EDI_RING_CACHE_LINE) _Atomic uint32_t head;
    uint32_t tail_cache;
    /* Read-only after creation. */
    _Alignas(EDI_RING_CACHE_LINE) uint32_t mask;
    uint32_t record_bytes;
    uint8_t *slots;
} edi_ring_spsc;

/* A ring of capacity records (a power of 2, 2 .. 2^30) of record_bytes
 * each (1 .. 4096). 0, EDIST_EINVAL or EDIST_ENOMEM. */
int edi_ring_spsc_new(uint32_t capacity, uint32_t record_bytes, edi_ring_spsc **out);
/* Frees the ring (records still in it are the caller's business: take
 * them first). NULL is a no-op. */
void edi_ring_spsc_free(edi_ring_spsc *r);

static inline uint32_t edi_ring_spsc_capacity(const edi_ring_spsc *r)
{
    return r->mask + 1;
}

/* ---- producer ----------------------------------------------------------- */

/* Free slots as the producer sees them now. */
static inline uint32_t edi_ring_spsc_room(edi_ring_spsc *r)
{
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint32_t room = r->mask + 1 - (tail - r->head_cache);
    if (room == 0) {
        /* acquire: pairs with the release store of head in
         * edi_ring_spsc_consume: the consumer is done reading the slots it
         * handed back, so they may be written again. */
        r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
        room = r->mask + 1 - (tail - r->head_cache);
    }
    return room;
}

/* Copies one record in; false (nothing written) when the ring is full. */
static inline bool edi_ring_spsc_push(edi_ring_spsc *r, const void *record)
{
    if (edi_ring_spsc_room(r) == 0)
        return false;
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    memcpy(r->slots + (size_t)(tail & r->mask) * r->record_bytes, record, r->record_bytes);
    /* release: pairs with the acquire load of tail in
     * edi_ring_spsc_readable: the record's bytes are visible before the
     * consumer can see the slot as filled. */
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    return true;
}

/* ---- consumer ----------------------------------------------------------- */

/* Records ready to take (0: empty). */
static inline uint32_t edi_ring_spsc_readable(edi_ring_spsc *r)
{
    uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint32_t n = r->tail_cache - head;
    if (n == 0) {
        /* acquire: pairs with the release store of tail in
         * edi_ring_spsc_push: the records up to tail are written. */
        r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
        n = r->tail_cache - head;
    }
    return n;
}

/* The i-th ready record (i < what edi_ring_spsc_readable returned), in
 * place: valid until it is consumed. */
static inline void *edi_ring_spsc_peek(edi_ring_spsc *r, uint32_t i)
{
    uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    return r->slots + (size_t)((head + i) & r->mask) * r->record_bytes;
}

/* Hands the n oldest records' slots back to the producer. */
static inline void edi_ring_spsc_consume(edi_ring_spsc *r, uint32_t n)
{
    uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    /* release: pairs with the acquire load of head in edi_ring_spsc_room:
     * our reads of these slots happen before the producer reuses them. */
    atomic_store_explicit(&r->head, head + n, memory_order_release);
}

/* Copies the oldest record out and consumes it; false when empty. */
static inline bool edi_ring_spsc_pop(edi_ring_spsc *r, void *record)
{
    if (edi_ring_spsc_readable(r) == 0)
        return false;
    memcpy(record, edi_ring_spsc_peek(r, 0), r->record_bytes);
    edi_ring_spsc_consume(r, 1);
    return true;
}

/* Either side, or a third thread deciding whether to sleep: is anything
 * published and not yet consumed? A hint: exact only with a fence that
 * pairs with the other side's (the caller says which). */
static inline bool edi_ring_spsc_nonempty(edi_ring_spsc *r)
{
    return atomic_load_explicit(&r->tail, memory_order_acquire) !=
           atomic_load_explicit(&r->head, memory_order_acquire);
}

#ifdef __cplusplus
}
#endif
#endif
