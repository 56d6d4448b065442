/* SPDX-License-Identifier: Apache-2.0 */
/* Private helpers shared by the term codec files: little-endian byte access
 * and UTF-8 checks. Not part of the public API. */
#ifndef EDIST_TERM_INTERNAL_H
#define EDIST_TERM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/bytes.h"
#include "edist/term.h"

/* ---- byte order: big-endian in base/bytes.h (edi_get_be32 ...) ---------- */

/* Little-endian, as bignum magnitudes are. */
static inline void edi_put_le64(uint8_t *p, uint64_t v)
{
    edist_inl_put_le64(p, v);
}

/* The n <= 8 little-endian bytes at p, of which avail >= n are readable:
 * one 8-byte load, masked, when 8 are readable; else byte by byte. */
static inline uint64_t edi_get_le_upto8(const uint8_t *p, size_t n, size_t avail)
{
    if (avail >= 8) {
        uint64_t v = edist_inl_get_le64(p);
        return n < 8 ? v & ((UINT64_C(1) << (8 * n)) - 1) : v;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ---- UTF-8 ---------------------------------------------------------------
 * Strict (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF. */

/* Decode one code point from s[0..len) (len >= 1). Returns the number of
 * bytes used (1..4) and stores the code point in *cp, or returns -1 if the
 * bytes there are not a valid UTF-8 sequence. */
static inline int edi_utf8_next(const uint8_t *s, size_t len, uint32_t *cp)
{
    uint32_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xC2) /* continuation byte, or 0xC0/0xC1 (always overlong) */
        return -1;
    if (c < 0xE0) {
        if (len < 2 || (s[1] & 0xC0) != 0x80)
            return -1;
        *cp = ((c & 0x1F) << 6) | (s[1] & 0x3Fu);
        return 2;
    }
    if (c < 0xF0) {
        if (len < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return -1;
        uint32_t v = ((c & 0x0F) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        if (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF))
            return -1;
        *cp = v;
        return 3;
    }
    if (c < 0xF5) {
        if (len < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
            (s[3] & 0xC0) != 0x80)
            return -1;
        uint32_t v = ((c & 0x07) << 18) | ((s[1] & 0x3Fu) << 12) |
                     ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
        if (v < 0x10000 || v > 0x10FFFF)
            return -1;
        *cp = v;
        return 4;
    }
    return -1;
}

/* Number of code points in s[0..len), or -1 if it is not valid UTF-8.
 * Intended for atom-sized input (len fits comfortably in a long). */
static inline long edi_utf8_count(const uint8_t *s, size_t len)
{
    long count = 0;
    size_t i = 0;
    while (i < len) {
        if (len - i >= 8) { /* eight ASCII bytes at a time */
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080ull) == 0) {
                i += 8;
                count += 8;
                continue;
            }
        }
        if (s[i] < 0x80) { /* ASCII fast path */
            i++;
            count++;
            continue;
        }
        uint32_t cp;
        int n = edi_utf8_next(s + i, len - i, &cp);
        if (n < 0)
            return -1;
        i += (size_t)n;
        count++;
    }
    return count;
}

/* ---- output buffer fast path ---------------------------------------------
 * edi_buf_room returns where n more bytes can be written (the caller then
 * adds n to b->len), or NULL when the buffer is in error or cannot grow (the
 * error is then in b->err). n must be >= 1. The common case is one compare. */

int edi_buf_grow(edist_buf *b, size_t n); /* buf.c: slow path */

static inline uint8_t *edi_buf_room(edist_buf *b, size_t n)
{
    if (__builtin_expect(b->err == 0 && b->cap - b->len >= n, 1))
        return b->data + b->len;
    if (edi_buf_grow(b, n) < 0)
        return NULL;
    return b->data + b->len;
}

/* ---- shared between decode.c and compress.c ------------------------------ */

/* 0 if d[0..len) is exactly one valid encoded term (no version byte); else
 * the error, with *err_off (may be NULL) the offset of the problem. */
int edi_validate_term(const uint8_t *d, size_t len, size_t *err_off);

/* ext[0..len) is 131, 80, u32 size, zlib data. Appends the inflated term (no
 * version byte) to out, after checking the declared size against the 1 GiB
 * limit and zlib's maximum ratio, that exactly that many bytes come out of
 * one zlib stream using all the input, and that they are one whole term.
 * On error nothing is appended and *err_off (may be NULL) gets the offset:
 * in ext for header and zlib problems, in the inflated term otherwise. */
int edi_inflate_ext(const uint8_t *ext, size_t len, edist_buf *out,
                    size_t *err_off);

/* ---- shared between compare.c and hash.c --------------------------------- */

/* Opens one whole term of either form (a leading 131 skipped, a compressed
 * term inflated into scratch) and validates it: *c is at the term. */
int edi_term_open(const void *data, size_t len, edist_buf *scratch,
                  edist_cursor *c);
/* Where the free variables of the NEW_FUN_EXT f start, as an offset in
 * f->bytes: after module, OldIndex, OldUniq and pid. */
int edi_fun_free_vars_at(const edist_fun *f, size_t *at);

#endif
