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

cli_latency cli_latency_us(uint64_t *ns, size_t n)
{
    cli_sort_u64(ns, n);
    return (cli_latency){(double)cli_percentile_u64(ns, n, 50) / 1e3,
                         (double)cli_percentile_u64(ns, n, 90) / 1e3,
                         (double)cli_percentile_u64(ns, n, 99) / 1e3,
                         (double)cli_percentile_u64(ns, n, 99.9) / 1e3,
                         (double)cli_percentile_u64(ns, n, 100) / 1e3};
}

int cli_write_cdf(FILE *f, const uint64_t *sorted, size_t n)
{
    fputs("# percentile round_trip_us\n", f);
    for (int i = 1; n && i <= 1003; i++) {
        if (i == 1000)
            continue; /* 100 comes last */
        double pct = i < 1000 ? i / 10.0 : i == 1001 ? 99.95 : i == 1002 ? 99.99 : 100;
        fprintf(f, "%.2f %.3f\n", pct,
                (double)cli_percentile_u64(sorted, n, pct) / 1e3);
    }
    return ferror(f) ? -1 : 0;
}
