/* SPDX-License-Identifier: Apache-2.0 */
/* The byte hash shared by every hash table of the library (runtime names,
 * references, links, exports, node names, pg groups) and by
 * edist_term_hash. Internal (edi_): not part of the public API. */
#ifndef EDIST_TERM_HASH_H
#define EDIST_TERM_HASH_H

#include <stddef.h>
#include <stdint.h>

/* A 64-bit hash of p[0..n) whose every bit depends on every byte; seed
 * selects one of a family of such functions (tables a peer fills use a
 * random seed, so that nobody can prepare keys that collide). */
uint64_t edi_hash_bytes(const void *p, size_t n, uint64_t seed);

#endif
