/* SPDX-License-Identifier: Apache-2.0 */
/* Receive buffers of the TCP data path: a fixed pool registered with the
 * kernel as a provided-buffer ring. Its buffers are refcounted rxbufs
 * (reactor/rxbuf.h) like the heap ones that hold frames spanning pool
 * buffers; a pool buffer goes back to the kernel ring when its last
 * reference is dropped. Only the loop thread may add to the kernel ring,
 * so a buffer released on another thread is queued on the pool's returned
 * list and the loop is woken to put it back. */
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

/* Loop thread: hand buffer b back to the kernel, or keep it spare. */
static void pool_put_back(edi_pool *p, edi_rxbuf *b)
{
    p->held--;
    if (p->nspare < p->spare_target) {
        b->next = p->spare;
        p->spare = b;
        p->nspare++;
        return;
    }
    io_uring_buf_ring_add(p->br, b->data, p->size_bytes, (unsigned short)b->id,
                          p->mask, 0);
    /* advance publishes the entry with a release store of the tail, which
     * pairs with the kernel's acquire load of it when picking a buffer. */
    io_uring_buf_ring_advance(p->br, 1);
    p->in_ring++;
}

static void pool_return(edi_rxbuf *b);

int edi_pool_new(edi_loop *loop, uint32_t count, uint32_t size_bytes,
                 edi_pool **out)
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
    int rc = io_uring_register_buf_ring(edi_loop_ring(loop), &reg, 0);
    if (rc < 0) {
        pool_free_memory(p);
        return edist_set_error(EDIST_EUNSUPPORTED,
                               "uring: provided buffer ring not supported (%s); "
                               "kernel 5.19+ needed", strerror(-rc));
    }
    for (uint32_t i = 0; i < count; i++) {
        edi_rxbuf *b = &p->bufs[i];
        /* scarce: every connection of the loop needs them back */
        edi_rxbuf_init_owned(b, p, i, p->mem + (size_t)i * size_bytes, size_bytes,
                             true, pool_return);
        io_uring_buf_ring_add(p->br, b->data, size_bytes, (unsigned short)i, p->mask,
                              (int)i);
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

edi_rxbuf *edi_pool_take_spare(edi_pool *p)
{
    edi_rxbuf *b = p->spare;
    if (b == NULL)
        return NULL;
    p->spare = b->next;
    p->nspare--;
    atomic_store_explicit(&b->refs, 1, memory_order_relaxed);
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

/* The last reference of pool buffer b was dropped, on any thread. */
static void pool_return(edi_rxbuf *b)
{
    edi_pool *p = b->owner;
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
