/* SPDX-License-Identifier: Apache-2.0 */
/* The slot protocol: slot i (position p, i = p & mask) holds sequence
 *   p          free for the producer that claims position p,
 *   p + 1      filled by that producer, for the consumer,
 *   p + cap    taken by the consumer: free for position p + cap.
 * Positions run freely as 64-bit counters, so they never wrap in practice
 * and a sequence compares with a position by subtraction. */
#include "dataplane/ring/mpsc.h"

#include <stdlib.h>
#include <string.h>

#include "dataplane/ring/spsc.h" /* EDI_RING_CACHE_LINE */
#include "edist/error.h"

struct edi_ring_mpsc {
    /* Producers' shared position. */
    _Alignas(EDI_RING_CACHE_LINE) _Atomic uint64_t tail;
    /* Consumer's private position. */
    _Alignas(EDI_RING_CACHE_LINE) uint64_t head;
    _Alignas(EDI_RING_CACHE_LINE) uint32_t mask;
    uint32_t record_bytes;
    size_t slot_bytes; /* sequence + record, rounded to 8 */
    uint8_t *slots;
};

typedef struct slot_head {
    _Atomic uint64_t seq;
} slot_head;

static inline slot_head *slot_at(const edi_ring_mpsc *r, uint64_t pos)
{
    return (slot_head *)(void *)(r->slots + (size_t)(pos & r->mask) * r->slot_bytes);
}

static inline void *slot_data(slot_head *s)
{
    return (uint8_t *)s + sizeof(slot_head);
}

int edi_ring_mpsc_new(uint32_t capacity, uint32_t record_bytes, edi_ring_mpsc **out)
{
    *out = NULL;
    if (capacity < 2 || capacity > (1u << 30) || (capacity & (capacity - 1)) ||
        record_bytes == 0 || record_bytes > 4096)
        return edist_set_error(EDIST_EINVAL, "ring: capacity %u (a power of 2) or record of "
                                             "%u bytes out of range",
                               capacity, record_bytes);
    edi_ring_mpsc *r = aligned_alloc(EDI_RING_CACHE_LINE, sizeof *r);
    if (!r)
        return edist_set_error(EDIST_ENOMEM, "ring: no memory");
    memset(r, 0, sizeof *r);
    r->mask = capacity - 1;
    r->record_bytes = record_bytes;
    r->slot_bytes = (sizeof(slot_head) + record_bytes + 7) & ~(size_t)7;
    r->slots = malloc((size_t)capacity * r->slot_bytes);
    if (!r->slots) {
        free(r);
        return edist_set_error(EDIST_ENOMEM, "ring: no memory for %u records", capacity);
    }
    for (uint64_t p = 0; p < capacity; p++)
        atomic_init(&slot_at(r, p)->seq, p);
    atomic_init(&r->tail, 0);
    *out = r;
    return 0;
}

void edi_ring_mpsc_free(edi_ring_mpsc *r)
{
    if (!r)
        return;
    free(r->slots);
    free(r);
}

uint32_t edi_ring_mpsc_capacity(const edi_ring_mpsc *r)
{
    return r->mask + 1;
}

bool edi_ring_mpsc_push(edi_ring_mpsc *r, const void *record)
{
    uint64_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    for (;;) {
        slot_head *s = slot_at(r, pos);
        /* acquire: pairs with the consumer's release store of seq in
         * edi_ring_mpsc_consume: its read of this slot's previous record
         * is done before we overwrite it. */
        uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        int64_t dif = (int64_t)(seq - pos);
        if (dif == 0) {
            /* relaxed: the CAS only decides which producer owns pos; the
             * slot's contents are published by the seq store below. */
            if (atomic_compare_exchange_weak_explicit(&r->tail, &pos, pos + 1,
                                                      memory_order_relaxed,
                                                      memory_order_relaxed)) {
                memcpy(slot_data(s), record, r->record_bytes);
                /* release: pairs with the consumer's acquire load of seq in
                 * edi_ring_mpsc_peek: the record is written before the
                 * slot reads as filled. */
                atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
                return true;
            }
            /* pos now holds the current tail: try there. */
        } else if (dif < 0) {
            return false; /* the slot one lap back is not taken yet: full */
        } else {
            /* Another producer claimed pos meanwhile. */
            pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
        }
    }
}

void *edi_ring_mpsc_peek(edi_ring_mpsc *r)
{
    slot_head *s = slot_at(r, r->head);
    /* acquire: pairs with the producer's release store of seq in
     * edi_ring_mpsc_push. */
    uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
    return seq == r->head + 1 ? slot_data(s) : NULL;
}

void edi_ring_mpsc_consume(edi_ring_mpsc *r)
{
    slot_head *s = slot_at(r, r->head);
    /* release: pairs with the producers' acquire load of seq in
     * edi_ring_mpsc_push: the slot is free for the next lap only after we
     * are done reading it. */
    atomic_store_explicit(&s->seq, r->head + r->mask + 1, memory_order_release);
    r->head++;
}

bool edi_ring_mpsc_pop(edi_ring_mpsc *r, void *record)
{
    void *d = edi_ring_mpsc_peek(r);
    if (!d)
        return false;
    memcpy(record, d, r->record_bytes);
    edi_ring_mpsc_consume(r);
    return true;
}
