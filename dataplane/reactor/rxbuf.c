/* SPDX-License-Identifier: Apache-2.0 */
/* Refcounted receive buffers (see rxbuf.h). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/reactor/rxbuf.h"

/* Large heap buffers (reassembled messages) are kept for the next one:
 * freed, malloc gives their pages back (trim, or munmap above its mmap
 * threshold) and the next message of that size pays a page fault and a
 * cleared page every 4 KiB, which halved a stream of 64 KiB messages.
 * At most `buffers` of RECYCLE_MIN..`max_bytes` stay allocated
 * (edi_rxbuf_recycle_set); a buffer is reused for a request of at least
 * half its size. Any thread frees them, hence the lock: one per large
 * message, next to copying it. */
#define RECYCLE_MIN ((size_t)32 << 10)

static pthread_mutex_t recycle_lock = PTHREAD_MUTEX_INITIALIZER;
static edi_rxbuf *recycled[EDI_RXBUF_RECYCLE_BUFFERS_MAX];
static size_t recycled_count;
static size_t recycle_buffers = EDI_RXBUF_RECYCLE_BUFFERS_DEFAULT;
static size_t recycle_max_bytes = EDI_RXBUF_RECYCLE_MAX_BYTES_DEFAULT;
static edi_rxbuf_recycle_stats recycle_st;

static void recycle_drop_over(void) /* under the lock */
{
    for (size_t i = 0; i < recycled_count;) {
        if (recycled_count > recycle_buffers ||
            recycled[i]->room > recycle_max_bytes) {
            recycle_st.held_bytes -= recycled[i]->room;
            recycle_st.freed++;
            free(recycled[i]);
            recycled[i] = recycled[--recycled_count];
        } else {
            i++;
        }
    }
}

void edi_rxbuf_recycle_set(size_t buffers, size_t max_bytes)
{
    pthread_mutex_lock(&recycle_lock);
    recycle_buffers = buffers < EDI_RXBUF_RECYCLE_BUFFERS_MAX
                          ? buffers
                          : EDI_RXBUF_RECYCLE_BUFFERS_MAX;
    recycle_max_bytes = max_bytes;
    recycle_drop_over();
    pthread_mutex_unlock(&recycle_lock);
}

void edi_rxbuf_recycle_stats_get(edi_rxbuf_recycle_stats *out)
{
    pthread_mutex_lock(&recycle_lock);
    *out = recycle_st;
    out->held = recycled_count;
    pthread_mutex_unlock(&recycle_lock);
}

static edi_rxbuf *recycle_take(size_t cap)
{
    edi_rxbuf *b = NULL;
    pthread_mutex_lock(&recycle_lock);
    for (size_t i = 0; i < recycled_count; i++) {
        if (recycled[i]->room >= cap && recycled[i]->room / 2 <= cap) {
            b = recycled[i];
            recycled[i] = recycled[--recycled_count];
            recycle_st.held_bytes -= b->room;
            recycle_st.reused++;
            break;
        }
    }
    pthread_mutex_unlock(&recycle_lock);
    return b;
}

static bool recycle_keep(edi_rxbuf *b)
{
    if (b->room < RECYCLE_MIN)
        return false;
    bool kept = false;
    pthread_mutex_lock(&recycle_lock);
    if (recycled_count < recycle_buffers && b->room <= recycle_max_bytes) {
        recycled[recycled_count++] = b;
        recycle_st.held_bytes += b->room;
        kept = true;
    } else {
        recycle_st.freed++;
    }
    pthread_mutex_unlock(&recycle_lock);
    return kept;
}

edi_rxbuf *edi_rxbuf_heap_new(size_t cap)
{
    edi_rxbuf *b = cap >= RECYCLE_MIN ? recycle_take(cap) : NULL;
    size_t room = b ? b->room : cap;
    if (b == NULL)
        b = malloc(sizeof(*b) + (cap ? cap : 1));
    if (b == NULL)
        return NULL;
    memset(b, 0, sizeof(*b));
    b->room = room;
    atomic_init(&b->refs, 1);
    b->kind = EDI_RXBUF_HEAP;
    b->data = (uint8_t *)(b + 1);
    b->cap = cap;
    return b;
}

edi_rxbuf *edi_rxbuf_heap_grow(edi_rxbuf *b, size_t cap)
{
    if (cap <= b->room) { /* a recycled one may have the room already */
        b->cap = cap;
        return b;
    }
    edi_rxbuf *n = realloc(b, sizeof(*b) + cap);
    if (n == NULL)
        return NULL;
    n->data = (uint8_t *)(n + 1);
    n->cap = n->room = cap;
    return n;
}

edi_rxbuf *edi_rxbuf_adopt(void *data, size_t len)
{
    edi_rxbuf *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    atomic_init(&b->refs, 1);
    b->kind = EDI_RXBUF_ADOPTED;
    b->data = data;
    b->cap = len;
    return b;
}

void edi_rxbuf_init_owned(edi_rxbuf *b, void *owner, uint32_t id, uint8_t *data,
                          size_t cap, bool scarce, edi_rxbuf_release_fn release)
{
    memset(b, 0, sizeof(*b));
    atomic_init(&b->refs, 0);
    b->kind = EDI_RXBUF_OWNED;
    b->scarce = scarce;
    b->id = id;
    b->owner = owner;
    b->release = release;
    b->data = data;
    b->cap = cap;
}

uint8_t *edi_rxbuf_data(const edi_rxbuf *b) { return b->data; }
size_t edi_rxbuf_cap(const edi_rxbuf *b) { return b->cap; }
void edi_rxbuf_release_last(edi_rxbuf *b)
{
    switch (b->kind) {
    case EDI_RXBUF_HEAP:
        if (!recycle_keep(b))
            free(b);
        break;
    case EDI_RXBUF_ADOPTED:
        free(b->data);
        free(b);
        break;
    default:
        b->release(b);
        break;
    }
}
