/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the distribution message files (dist_ops.c,
 * dist_parse.c, dist_reasm.c); not for use outside them. */
#ifndef EDIST_CONTROL_DIST_INTERNAL_H
#define EDIST_CONTROL_DIST_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* Does op carry a payload term after its control tuple? */
int edi_dop_has_payload(int op);

/* The atom-cache part of a header at p (NumberOfAtomCacheRefs first).
 * Sets *hdr_len to its length. With refs, walks them (bounded) so the
 * error says what was there, then refuses: see dist_msg.h. */
int edi_dist_parse_cache_header(const uint8_t *p, size_t len,
                                size_t *hdr_len);

#endif
