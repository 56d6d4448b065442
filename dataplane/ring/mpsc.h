/* SPDX-License-Identifier: Apache-2.0 */
/* A bounded multi-producer single-consumer ring of fixed-size records.
 *
 * Any number of threads push, one thread takes. Each slot carries a
 * sequence number saying whose turn it is: a producer claims the next
 * position with one compare-and-swap on the shared tail and then owns that
 * slot alone; the consumer takes a slot once its sequence says it was
 * filled, and hands it to the producer one lap ahead by advancing the
 * sequence again. What one producer pushes is taken in the order it
 * pushed; pushes of different producers interleave. A push finds the ring
 * full (and writes nothing) when the slot it would claim has not been
 * taken yet.
 *
 * For many threads feeding one (shards sending into one lane, threads
 * posting to one shard); the shards' own pairs use the SPSC ring
 * (spsc.h), which needs no read-modify-write at all.
 *
 * Any thread: new, free (when nobody uses it), push. Consumer: pop,
 * peek/consume. */
#ifndef EDI_RING_MPSC_H
#define EDI_RING_MPSC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct edi_ring_mpsc edi_ring_mpsc;

/* capacity records (a power of 2, 2 .. 2^30) of record_bytes each
 * (1 .. 4096). 0, EDIST_EINVAL or EDIST_ENOMEM. */
int edi_ring_mpsc_new(uint32_t capacity, uint32_t record_bytes, edi_ring_mpsc **out);
void edi_ring_mpsc_free(edi_ring_mpsc *r);
uint32_t edi_ring_mpsc_capacity(const edi_ring_mpsc *r);

/* Any thread: copies one record in; false (nothing written) when full. */
bool edi_ring_mpsc_push(edi_ring_mpsc *r, const void *record);

/* Consumer: the oldest filled record in place, or NULL when none is ready
 * (empty, or the producer that claimed the next slot is still writing
 * it). Valid until edi_ring_mpsc_consume. */
void *edi_ring_mpsc_peek(edi_ring_mpsc *r);
/* Consumer: hands the record edi_ring_mpsc_peek returned back. */
void edi_ring_mpsc_consume(edi_ring_mpsc *r);
/* Consumer: copies the oldest record out and consumes it; false if none
 * is ready. */
bool edi_ring_mpsc_pop(edi_ring_mpsc *r, void *record);

#ifdef __cplusplus
}
#endif
#endif
