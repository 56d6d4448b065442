/* SPDX-License-Identifier: Apache-2.0 */
#include "dataplane/ring/spsc.h"

#include <stdlib.h>

#include "edist/error.h"

int edi_ring_spsc_new(uint32_t capacity, uint32_t record_bytes, edi_ring_spsc **out)
{
    *out = NULL;
    if (capacity < 2 || capacity > (1u << 30) || (capacity & (capacity - 1)) ||
        record_bytes == 0 || record_bytes > 4096)
        return edist_set_error(EDIST_EINVAL, "ring: capacity %u (a power of 2) or record of "
                                             "%u bytes out of range",
                               capacity, record_bytes);
    edi_ring_spsc *r = aligned_alloc(EDI_RING_CACHE_LINE, sizeof *r);
    if (!r)
        return edist_set_error(EDIST_ENOMEM, "ring: no memory");
    memset(r, 0, sizeof *r);
    size_t bytes = (size_t)capacity * record_bytes;
    bytes = (bytes + EDI_RING_CACHE_LINE - 1) / EDI_RING_CACHE_LINE * EDI_RING_CACHE_LINE;
    r->slots = aligned_alloc(EDI_RING_CACHE_LINE, bytes);
    if (!r->slots) {
        free(r);
        return edist_set_error(EDIST_ENOMEM, "ring: no memory for %u records", capacity);
    }
    r->mask = capacity - 1;
    r->record_bytes = record_bytes;
    atomic_init(&r->tail, 0);
    atomic_init(&r->head, 0);
    *out = r;
    return 0;
}

void edi_ring_spsc_free(edi_ring_spsc *r)
{
    if (!r)
        return;
    free(r->slots);
    free(r);
}
