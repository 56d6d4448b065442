/* SPDX-License-Identifier: Apache-2.0 */
/* Received bytes and who owns them: a refcounted buffer (edi_rxbuf) and a
 * frame as a view into one (edi_frame). Every lane hands its received
 * frames up this way, whatever the medium: a kernel receive buffer of the
 * TCP data path, a heap copy, a reassembled message, later a DPDK mbuf.
 * Holders take a reference to keep a view past the callback that gave it
 * and drop it when done; the owner gets the buffer back with the last
 * reference, on whatever thread dropped it.
 *
 * Kinds: HEAP (header and data in one malloc block), ADOPTED (a malloc'd
 * data block taken over), OWNED (a buffer of some pool: its release
 * function takes it back). Reference counting is thread-safe; nothing
 * else here is about threads. */
#ifndef EDI_REACTOR_RXBUF_H
#define EDI_REACTOR_RXBUF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct edi_rxbuf edi_rxbuf;

/* A frame received: a view {data, len} inside rxbuf. The view is valid
 * during the callback that delivers it; to keep it longer take a reference
 * with edi_rxbuf_ref(f->rxbuf) and drop it with edi_rxbuf_unref() when
 * done. rxbuf is never NULL. len == 0 is a tick on the TCP lane. */
typedef struct edi_frame {
    const uint8_t *data;
    size_t len;
    edi_rxbuf *rxbuf;
} edi_frame;

/* Bytes handed to a transmit without a copy come back through this, once
 * the medium no longer reads them: release(release_arg, body). */
typedef void (*edi_release_fn)(void *release_arg, const void *body);

/* Reference counting, thread-safe (a process on another thread may hold a
 * message): edi_rxbuf_ref and edi_rxbuf_unref, inline at the end of this
 * header (a call each per received message). The last unref frees a
 * HEAP/ADOPTED buffer and gives an OWNED one back to its owner. */

/* A refcounted rxbuf that takes over data (malloc'd, len bytes): freed
 * with the last reference. NULL when out of memory (data is not freed
 * then). Any thread. */
edi_rxbuf *edi_rxbuf_adopt(void *data, size_t len);

/* A heap rxbuf with room for cap bytes and one reference, or NULL. */
edi_rxbuf *edi_rxbuf_heap_new(size_t cap);
/* Grows a heap rxbuf that nobody else references yet; NULL on failure
 * (the old one is still valid then). */
edi_rxbuf *edi_rxbuf_heap_grow(edi_rxbuf *b, size_t cap);

/* The buffer's bytes and their room. */
uint8_t *edi_rxbuf_data(const edi_rxbuf *b);
size_t edi_rxbuf_cap(const edi_rxbuf *b);

/* edi_rxbuf_scarce (inline, below): true for a buffer of a shared receive
 * pool: every connection of the pool needs those back, so views a holder
 * may keep long (messages queued in mailboxes) must be copied out when the
 * pool runs low. Heap and adopted buffers cost only memory. Any thread. */

/* ---- large heap buffers kept for reuse (process-wide) ---------------------- */

#define EDI_RXBUF_RECYCLE_BUFFERS_DEFAULT 8u
#define EDI_RXBUF_RECYCLE_BUFFERS_MAX 1024u
#define EDI_RXBUF_RECYCLE_MAX_BYTES_DEFAULT ((size_t)8 << 20)

/* Freed heap buffers of 32 KiB to max_bytes are kept, up to `buffers` of
 * them (0: none, each freed at once), for the next large message; kept
 * ones over the new bounds are freed now. Process-wide: the last call
 * sets them for every node of the process. */
void edi_rxbuf_recycle_set(size_t buffers, size_t max_bytes);

typedef struct edi_rxbuf_recycle_stats {
    uint64_t held;       /* now */
    uint64_t held_bytes; /* now */
    uint64_t reused;     /* taken for a message instead of a new one */
    uint64_t freed;      /* freed instead of kept: no room, or too large */
} edi_rxbuf_recycle_stats;
void edi_rxbuf_recycle_stats_get(edi_rxbuf_recycle_stats *out);

/* ---- for pools (owners of OWNED buffers) ----------------------------------- */

enum { EDI_RXBUF_HEAP = 2, EDI_RXBUF_ADOPTED = 3, EDI_RXBUF_OWNED = 4 };

/* Called with the buffer whose last reference was just dropped, on the
 * thread that dropped it. */
typedef void (*edi_rxbuf_release_fn)(edi_rxbuf *b);

struct edi_rxbuf {
    atomic_uint refs;
    uint8_t kind;
    bool scarce;
    uint32_t id;              /* OWNED: the owner's number for it */
    void *owner;              /* OWNED: the pool */
    edi_rxbuf_release_fn release; /* OWNED */
    struct edi_rxbuf *next;   /* OWNED: free for the owner's lists */
    uint8_t *data;
    size_t cap;
    size_t room; /* HEAP: what was allocated (>= cap: a recycled one) */
};

/* Makes b an OWNED buffer of owner with no reference (the owner sets refs
 * when it hands the buffer out). */
void edi_rxbuf_init_owned(edi_rxbuf *b, void *owner, uint32_t id, uint8_t *data,
                          size_t cap, bool scarce, edi_rxbuf_release_fn release);

/* ---- the per-message calls, inline ---------------------------------------- */

static inline void edi_rxbuf_ref(edi_rxbuf *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

/* What the last unref does (rxbuf.c). */
void edi_rxbuf_release_last(edi_rxbuf *b);

static inline void edi_rxbuf_unref(edi_rxbuf *b)
{
    /* acq_rel: the last holder must see every other holder's reads done
     * before the buffer is freed or refilled (pairs with the other
     * unrefs). */
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        edi_rxbuf_release_last(b);
}

static inline bool edi_rxbuf_scarce(const edi_rxbuf *b)
{
    return b->scarce;
}

#endif
