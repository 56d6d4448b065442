/* SPDX-License-Identifier: Apache-2.0 */
/* Distribution capability flags exchanged in the handshake (64 bits on the
 * wire in protocol version 6). Values follow OTP's dist.hrl, which is
 * authoritative where the HTML docs disagree (MANDATORY_25_DIGEST is bit 26
 * in the code and on a running OTP 25 node). */
#ifndef EDIST_CONTROL_DIST_FLAGS_H
#define EDIST_CONTROL_DIST_FLAGS_H

#include <stdint.h>

#define EDI_DFLAG_PUBLISHED ((uint64_t)0x1)
#define EDI_DFLAG_ATOM_CACHE ((uint64_t)0x2)
#define EDI_DFLAG_EXTENDED_REFERENCES ((uint64_t)0x4)
#define EDI_DFLAG_DIST_MONITOR ((uint64_t)0x8)
#define EDI_DFLAG_FUN_TAGS ((uint64_t)0x10)
#define EDI_DFLAG_DIST_MONITOR_NAME ((uint64_t)0x20)
#define EDI_DFLAG_HIDDEN_ATOM_CACHE ((uint64_t)0x40)
#define EDI_DFLAG_NEW_FUN_TAGS ((uint64_t)0x80)
#define EDI_DFLAG_EXTENDED_PIDS_PORTS ((uint64_t)0x100)
#define EDI_DFLAG_EXPORT_PTR_TAG ((uint64_t)0x200)
#define EDI_DFLAG_BIT_BINARIES ((uint64_t)0x400)
#define EDI_DFLAG_NEW_FLOATS ((uint64_t)0x800)
#define EDI_DFLAG_UNICODE_IO ((uint64_t)0x1000)
#define EDI_DFLAG_DIST_HDR_ATOM_CACHE ((uint64_t)0x2000)
#define EDI_DFLAG_SMALL_ATOM_TAGS ((uint64_t)0x4000)
#define EDI_DFLAG_UTF8_ATOMS ((uint64_t)0x10000)
#define EDI_DFLAG_MAP_TAG ((uint64_t)0x20000)
#define EDI_DFLAG_BIG_CREATION ((uint64_t)0x40000)
#define EDI_DFLAG_SEND_SENDER ((uint64_t)0x80000)
#define EDI_DFLAG_BIG_SEQTRACE_LABELS ((uint64_t)0x100000)
#define EDI_DFLAG_EXIT_PAYLOAD ((uint64_t)0x400000)
#define EDI_DFLAG_FRAGMENTS ((uint64_t)0x800000)
#define EDI_DFLAG_HANDSHAKE_23 ((uint64_t)0x1000000)
#define EDI_DFLAG_UNLINK_ID ((uint64_t)0x2000000)
#define EDI_DFLAG_MANDATORY_25_DIGEST ((uint64_t)0x4000000)
/* Second 32-bit word. */
#define EDI_DFLAG_SPAWN ((uint64_t)1 << 32)
#define EDI_DFLAG_NAME_ME ((uint64_t)1 << 33)
#define EDI_DFLAG_V4_NC ((uint64_t)1 << 34)
#define EDI_DFLAG_ALIAS ((uint64_t)1 << 35)
/* Not a distribution flag but a builder option carried in the same word
 * (no DFLAG uses the top bit): build the frame without its u32 length,
 * for a lane that frames it itself. */
#define EDI_DIST_BUILD_BARE ((uint64_t)1 << 63)

/* What an OTP 25 node requires of its peer (0x1070f94). A peer may send
 * MANDATORY_25_DIGEST instead, which stands for all of these. */
#define EDI_DFLAGS_MANDATORY_25                                                \
    (EDI_DFLAG_EXTENDED_REFERENCES | EDI_DFLAG_FUN_TAGS |                      \
     EDI_DFLAG_EXTENDED_PIDS_PORTS | EDI_DFLAG_NEW_FUN_TAGS |                  \
     EDI_DFLAG_EXPORT_PTR_TAG | EDI_DFLAG_BIT_BINARIES |                       \
     EDI_DFLAG_NEW_FLOATS | EDI_DFLAG_UTF8_ATOMS | EDI_DFLAG_MAP_TAG |         \
     EDI_DFLAG_BIG_CREATION | EDI_DFLAG_HANDSHAKE_23)

/* What edist advertises (PUBLISHED is added for visible nodes). The atom
 * cache (ATOM_CACHE, DIST_HDR_ATOM_CACHE) is left out until the data plane
 * implements it: without it BEAM sends the plain 'p' framing. */
#define EDI_DFLAGS_EDIST_DEFAULT                                               \
    (EDI_DFLAGS_MANDATORY_25 | EDI_DFLAG_DIST_MONITOR |                        \
     EDI_DFLAG_DIST_MONITOR_NAME | EDI_DFLAG_SMALL_ATOM_TAGS |                 \
     EDI_DFLAG_SEND_SENDER | EDI_DFLAG_BIG_SEQTRACE_LABELS |                   \
     EDI_DFLAG_EXIT_PAYLOAD | EDI_DFLAG_FRAGMENTS | EDI_DFLAG_UNLINK_ID |      \
     EDI_DFLAG_MANDATORY_25_DIGEST | EDI_DFLAG_SPAWN | EDI_DFLAG_V4_NC |       \
     EDI_DFLAG_ALIAS)

/* A peer's flags with MANDATORY_25_DIGEST expanded to the set it stands
 * for, so that later checks can test single bits. */
static inline uint64_t edi_dflags_expand(uint64_t flags)
{
    if (flags & EDI_DFLAG_MANDATORY_25_DIGEST)
        flags |= EDI_DFLAGS_MANDATORY_25;
    return flags;
}

#endif
