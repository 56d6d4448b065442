/* SPDX-License-Identifier: Apache-2.0 */
/* Percentiles of measured samples (round-trip times) by nearest rank: the
 * smallest sample that at least pct percent of the samples do not exceed,
 * so p100 is the maximum and every figure is a time that was measured. */
#ifndef EDIST_CLI_PERCENTILE_H
#define EDIST_CLI_PERCENTILE_H

#include <stddef.h>
#include <stdint.h>

/* Sorts v[0..n) in ascending order. */
void cli_sort_u64(uint64_t *v, size_t n);

/* The pct-th percentile (0 < pct <= 100) of sorted[0..n); 0 when n is 0. */
uint64_t cli_percentile_u64(const uint64_t *sorted, size_t n, double pct);

#endif
