/* SPDX-License-Identifier: Apache-2.0 */
/* Seeded draws for fault injection and tests: splitmix64, small, fast,
 * and the same sequence for the same seed (a frame's fate then depends
 * only on its place in the stream). Not for anything secret. */
#ifndef EDI_BASE_RAND_H
#define EDI_BASE_RAND_H

#include <stdint.h>

static inline uint64_t edi_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A draw in parts per million: 0..999999. */
static inline uint32_t edi_draw_ppm(uint64_t *state)
{
    return (uint32_t)(edi_splitmix64(state) % 1000000u);
}

#endif
