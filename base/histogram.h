/* SPDX-License-Identifier: Apache-2.0 */
/* A log-linear histogram of durations in nanoseconds, as HdrHistogram
 * keeps them: exact below 16, then 16 buckets per power of two (each
 * within 6.25% of its values), up to 2^40 ns (18 minutes; larger values
 * share one last bucket). Fixed size, no allocation, recording is a few
 * instructions; one writer, readers take what they see (counts are
 * relaxed atomics, so a reader on another thread may be a record
 * behind). */
#ifndef EDI_BASE_HISTOGRAM_H
#define EDI_BASE_HISTOGRAM_H

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#define EDI_HIST_SUB_BITS 4
#define EDI_HIST_SUB (1u << EDI_HIST_SUB_BITS)
#define EDI_HIST_MAX_EXP 40
/* every power of two from 2^SUB_BITS below 2^MAX_EXP, then one bucket
 * for 2^MAX_EXP and above */
#define EDI_HIST_BUCKETS ((EDI_HIST_MAX_EXP - EDI_HIST_SUB_BITS + 1) * EDI_HIST_SUB + 1)

typedef struct edi_hist {
    _Atomic uint64_t count;
    _Atomic uint64_t max;
    _Atomic uint64_t bucket[EDI_HIST_BUCKETS];
} edi_hist;

static inline void edi_hist_init(edi_hist *h)
{
    memset(h, 0, sizeof *h);
}

static inline unsigned edi_hist_index(uint64_t v)
{
    if (v < EDI_HIST_SUB)
        return (unsigned)v;
    if (v >= ((uint64_t)1 << EDI_HIST_MAX_EXP))
        return EDI_HIST_BUCKETS - 1;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= SUB_BITS */
    unsigned sub = (unsigned)(v >> (e - EDI_HIST_SUB_BITS)) & (EDI_HIST_SUB - 1);
    return (e - EDI_HIST_SUB_BITS + 1) * EDI_HIST_SUB + sub;
}

/* The largest value bucket i holds. */
static inline uint64_t edi_hist_upper(unsigned i)
{
    if (i < EDI_HIST_SUB)
        return i;
    unsigned e = i / EDI_HIST_SUB + EDI_HIST_SUB_BITS - 1, sub = i % EDI_HIST_SUB;
    uint64_t lo = ((uint64_t)(EDI_HIST_SUB + sub)) << (e - EDI_HIST_SUB_BITS);
    return lo + ((uint64_t)1 << (e - EDI_HIST_SUB_BITS)) - 1;
}

static inline void edi_hist_record(edi_hist *h, uint64_t v)
{
    /* One writer: a plain increment stored relaxed (a locked add per
     * message was a twentieth of a 64-byte stream's sending time). */
    _Atomic uint64_t *b = &h->bucket[edi_hist_index(v)];
    atomic_store_explicit(b, atomic_load_explicit(b, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&h->count,
                          atomic_load_explicit(&h->count, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (v > atomic_load_explicit(&h->max, memory_order_relaxed))
        atomic_store_explicit(&h->max, v, memory_order_relaxed);
}

/* The value at quantile q (0..1]: the upper end of the bucket that holds
 * it (never above the largest value recorded); 0 when empty. */
static inline uint64_t edi_hist_quantile(const edi_hist *h, double q)
{
    uint64_t n = atomic_load_explicit(&h->count, memory_order_relaxed);
    if (n == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)n + 0.999999);
    if (want == 0)
        want = 1;
    uint64_t seen = 0, max = atomic_load_explicit(&h->max, memory_order_relaxed);
    for (unsigned i = 0; i < EDI_HIST_BUCKETS; i++) {
        seen += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        if (seen >= want) {
            uint64_t u = edi_hist_upper(i);
            return u < max ? u : max;
        }
    }
    return max;
}

#endif
