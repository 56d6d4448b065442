/* SPDX-License-Identifier: Apache-2.0 */
/* Refcounted receive buffers (see rxbuf.h). */
#include <stdlib.h>
#include <string.h>

#include "dataplane/reactor/rxbuf.h"

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
bool edi_rxbuf_scarce(const edi_rxbuf *b) { return b->scarce; }

void edi_rxbuf_ref(edi_rxbuf *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void edi_rxbuf_unref(edi_rxbuf *b)
{
    /* acq_rel: the last holder must see every other holder's reads done
     * before the buffer is freed or refilled (pairs with the other
     * unrefs). */
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    switch (b->kind) {
    case EDI_RXBUF_HEAP:
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
