/* SPDX-License-Identifier: Apache-2.0 */
/* Growing an array by doubling: the one way the services' tables grow. */
#ifndef EDI_BASE_GROW_H
#define EDI_BASE_GROW_H

#include <stdint.h>
#include <stdlib.h>

#include "edist/error.h"

/* Room in *arr (capacity *cap elements of elem bytes) for element n:
 * doubles the capacity (16 at first) when n is past it. 0, or
 * EDIST_ENOMEM with *arr and *cap unchanged. */
static inline int edi_grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    if (ncap <= n)
        ncap = n + 1;
    if (elem && ncap > SIZE_MAX / elem)
        return EDIST_ENOMEM;
    void *p = realloc(*arr, ncap * elem);
    if (!p)
        return EDIST_ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

/* The same with a 32-bit capacity. */
static inline int edi_grow32(void **arr, uint32_t *cap, uint32_t n, size_t elem)
{
    if (n >= UINT32_MAX / 2)
        return EDIST_ENOMEM;
    size_t c = *cap;
    int rc = edi_grow(arr, &c, n, elem);
    *cap = (uint32_t)c;
    return rc;
}

#endif
