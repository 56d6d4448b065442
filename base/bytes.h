/* SPDX-License-Identifier: Apache-2.0 */
/* Big-endian loads and stores at any alignment (and hex digits): every wire format edist
 * speaks (external terms, distribution frames and headers, the handshake,
 * the port mapper) is big-endian. One memcpy (a plain load or store; no
 * alignment assumed) and, on a little-endian host, one byte swap: not
 * every compiler merges the byte-by-byte form into that. */
#ifndef EDI_BASE_BYTES_H
#define EDI_BASE_BYTES_H

#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define EDI_BE16(v) __builtin_bswap16(v)
#define EDI_BE32(v) __builtin_bswap32(v)
#define EDI_BE64(v) __builtin_bswap64(v)
#elif defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define EDI_BE16(v) (v)
#define EDI_BE32(v) (v)
#define EDI_BE64(v) (v)
#else
#error "unknown byte order"
#endif

static inline uint16_t edi_get_be16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return EDI_BE16(v);
}

static inline uint32_t edi_get_be32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return EDI_BE32(v);
}

static inline uint64_t edi_get_be64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return EDI_BE64(v);
}

static inline void edi_put_be16(uint8_t *p, uint16_t v)
{
    v = EDI_BE16(v);
    memcpy(p, &v, sizeof v);
}

static inline void edi_put_be32(uint8_t *p, uint32_t v)
{
    v = EDI_BE32(v);
    memcpy(p, &v, sizeof v);
}

static inline void edi_put_be64(uint8_t *p, uint64_t v)
{
    v = EDI_BE64(v);
    memcpy(p, &v, sizeof v);
}

/* A hexadecimal digit's value (either case), or -1. */
static inline int edi_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
