/* SPDX-License-Identifier: Apache-2.0 */
/* Receive buffers: a fixed pool registered with the kernel as a
 * provided-buffer ring, plus heap buffers for frames that span pool
 * buffers. Both are refcounted the same way; a pool buffer goes back to the
 * kernel ring when its last reference is dropped. Only the loop thread may
 * add to the kernel ring, so a buffer released on another thread is queued
 * on the pool's returned list and the loop is woken to put it back. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "dataplane/uring/uring_internal.h"
#include "edist/error.h"

static void pool_free_memory(edi_pool *p)
{
    if (p->mem != NULL && p->mem != MAP_FAILED)
        munmap(p->mem, p->mem_bytes);
    if (p->br != NULL && (void *)p->br != MAP_FAILED)
        munmap(p->br, p->br_bytes);
    free(p->bufs);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* Loop thread: hand buffer b back to the kernel. */
static void pool_put_back(edi_pool *p, edi_rxbuf *b)
{
    io_uring_buf_ring_add(p->br, b->data, p->size_bytes, b->bid, p->mask, 0);
    /* advance publishes the entry with a release store of the tail, which
     * pairs with the kernel's acquire load of it when picking a buffer. */
    io_uring_buf_ring_advance(p->br, 1);
    p->in_ring++;
    p->held--;
}

int edi_pool_new(edi_loop *loop, struct io_uring *ring, uint32_t count,
                 uint32_t size_bytes, edi_pool **out)
{
    *out = NULL;
    edi_pool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return edist_set_error(EDIST_ENOMEM, "uring: pool alloc");
    pthread_mutex_init(&p->mu, NULL);
    p->count = count;
    p->size_bytes = size_bytes;
    p->mask = (uint32_t)io_uring_buf_ring_mask(count);
    p->loop = loop;
    atomic_init(&p->owner, (unsigned long)pthread_self());
    p->br_bytes = (size_t)count * sizeof(struct io_uring_buf);
    p->mem_bytes = (size_t)count * size_bytes;
    p->bufs = calloc(count, sizeof(*p->bufs));
    p->br = mmap(NULL, p->br_bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    p->mem = mmap(NULL, p->mem_bytes, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p->bufs == NULL || (void *)p->br == MAP_FAILED || p->mem == MAP_FAILED) {
        pool_free_memory(p);
        return edist_set_error(EDIST_ENOMEM, "uring: %u receive buffers of %u bytes",
                               count, size_bytes);
    }
    io_uring_buf_ring_init(p->br);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (unsigned long)p->br;
    reg.ring_entries = count;
    reg.bgid = EDI_BGID;
    int rc = io_uring_register_buf_ring(ring, &reg, 0);
    if (rc < 0) {
        pool_free_memory(p);
        return edist_set_error(EDIST_EUNSUPPORTED,
                               "uring: provided buffer ring not supported (%s); "
                               "kernel 5.19+ needed", strerror(-rc));
    }
    for (uint32_t i = 0; i < count; i++) {
        edi_rxbuf *b = &p->bufs[i];
        atomic_init(&b->refs, 0);
        b->kind = EDI_RXBUF_POOL;
        b->bid = (uint16_t)i;
        b->pool = p;
        b->data = p->mem + (size_t)i * size_bytes;
        b->cap = size_bytes;
        io_uring_buf_ring_add(p->br, b->data, size_bytes, b->bid, p->mask, (int)i);
    }
    io_uring_buf_ring_advance(p->br, (int)count);
    p->in_ring = count;
    atomic_init(&p->alive, 1);
    atomic_init(&p->returned_nonempty, 0);
    *out = p;
    return 0;
}

edi_rxbuf *edi_pool_take(edi_pool *p, uint16_t bid)
{
    if (bid >= p->count)
        return NULL;
    edi_rxbuf *b = &p->bufs[bid];
    atomic_store_explicit(&b->refs, 1, memory_order_relaxed);
    p->in_ring--;
    p->held++;
    return b;
}

uint32_t edi_pool_drain_returned(edi_pool *p)
{
    if (!atomic_load_explicit(&p->returned_nonempty, memory_order_acquire))
        return 0;
    pthread_mutex_lock(&p->mu);
    edi_rxbuf *list = p->returned;
    p->returned = NULL;
    atomic_store_explicit(&p->returned_nonempty, 0, memory_order_relaxed);
    pthread_mutex_unlock(&p->mu);
    uint32_t n = 0;
    while (list != NULL) {
        edi_rxbuf *next = list->next;
        pool_put_back(p, list);
        list = next;
        n++;
    }
    return n;
}

void edi_pool_release(edi_pool *p)
{
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->alive, 0);
    for (edi_rxbuf *b = p->returned; b != NULL; b = b->next)
        p->held--;
    p->returned = NULL;
    p->loop = NULL;
    bool free_now = p->held == 0;
    pthread_mutex_unlock(&p->mu);
    if (free_now)
        pool_free_memory(p);
}

edi_rxbuf *edi_rxbuf_heap_new(size_t cap)
{
    edi_rxbuf *b = malloc(sizeof(*b) + (cap ? cap : 1));
    if (b == NULL)
        return NULL;
    memset(b, 0, sizeof(*b));
    atomic_init(&b->refs, 1);
    b->kind = EDI_RXBUF_HEAP;
    b->data = (uint8_t *)(b + 1);
    b->cap = cap;
    return b;
}

edi_rxbuf *edi_rxbuf_heap_grow(edi_rxbuf *b, size_t cap)
{
    edi_rxbuf *n = realloc(b, sizeof(*b) + cap);
    if (n == NULL)
        return NULL;
    n->data = (uint8_t *)(n + 1);
    n->cap = cap;
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

bool edi_rxbuf_scarce(const edi_rxbuf *b)
{
    return b->kind == EDI_RXBUF_POOL;
}

bool edi_loop_rx_low(const edi_loop *loop)
{
    /* Below a quarter free, the views held are copied out, so that what
     * is left keeps every connection reading. */
    return loop->pool == NULL || loop->pool->in_ring < loop->pool->count / 4;
}

void edi_rxbuf_ref(edi_rxbuf *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void edi_rxbuf_unref(edi_rxbuf *b)
{
    /* acq_rel: the last holder must see every other holder's reads done
     * before the buffer is refilled (pairs with the other unrefs). */
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (b->kind == EDI_RXBUF_HEAP) {
        free(b);
        return;
    }
    if (b->kind == EDI_RXBUF_ADOPTED) {
        free(b->data);
        free(b);
        return;
    }
    edi_pool *p = b->pool;
    if (atomic_load_explicit(&p->alive, memory_order_relaxed) &&
        atomic_load_explicit(&p->owner, memory_order_relaxed) ==
            (unsigned long)pthread_self()) {
        pool_put_back(p, b);
        return;
    }
    pthread_mutex_lock(&p->mu);
    if (atomic_load(&p->alive)) {
        b->next = p->returned;
        p->returned = b;
        atomic_store_explicit(&p->returned_nonempty, 1, memory_order_seq_cst);
        /* under mu: the loop cannot be freed (alive cleared) meanwhile */
        edi_loop_wake(p->loop);
        pthread_mutex_unlock(&p->mu);
        return;
    }
    bool free_now = --p->held == 0;
    pthread_mutex_unlock(&p->mu);
    if (free_now)
        pool_free_memory(p);
}
