/* SPDX-License-Identifier: Apache-2.0 */
#include <math.h>
#include <stdlib.h>

#include "percentile.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void cli_sort_u64(uint64_t *v, size_t n)
{
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_u64);
}

uint64_t cli_percentile_u64(const uint64_t *sorted, size_t n, double pct)
{
    if (n == 0)
        return 0;
    /* Rank ceil(pct/100 * n), 1-based. The epsilon keeps a product that is
     * whole in exact arithmetic (99.9% of 1000) from rounding up to the
     * next rank through floating-point error. */
    double exact = pct / 100.0 * (double)n;
    size_t rank = (size_t)ceil(exact - 1e-9);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}
