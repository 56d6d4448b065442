/* SPDX-License-Identifier: Apache-2.0 */
/* Percentiles of measured samples (round-trip times) by nearest rank: the
 * smallest sample that at least pct percent of the samples do not exceed,
 * so p100 is the maximum and every figure is a time that was measured. */
#ifndef EDIST_CLI_PERCENTILE_H
#define EDIST_CLI_PERCENTILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Sorts v[0..n) in ascending order. */
void cli_sort_u64(uint64_t *v, size_t n);

/* The pct-th percentile (0 < pct <= 100) of sorted[0..n); 0 when n is 0. */
uint64_t cli_percentile_u64(const uint64_t *sorted, size_t n, double pct);

/* p50, p90, p99, p99.9 and the maximum of ns[0..n) (nanoseconds), which
 * this sorts, in microseconds; all 0 when n is 0. */
typedef struct cli_latency {
    double p50, p90, p99, p999, max;
} cli_latency;
cli_latency cli_latency_us(uint64_t *ns, size_t n);

/* The distribution of sorted[0..n) (nanoseconds) for a CDF plot: a
 * comment line, then "percentile microseconds" at every 0.1 percent and
 * at 99.95, 99.99 and 100. 0, or -1 (errno) when f could not take it. */
int cli_write_cdf(FILE *f, const uint64_t *sorted, size_t n);

#endif
