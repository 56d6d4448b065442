/* SPDX-License-Identifier: Apache-2.0 */
/* Encoder: appends terms in the canonical form erts writes for
 * term_to_binary(T, [{minor_version, 2}]) and for distribution. The hot
 * calls have an inline fast path in edist/term.h; their edist_*_slow twins
 * here handle every input. The twins are marked cold: they see buffer
 * growth, errors and the rarer forms (non-ASCII atoms, tuples of more than
 * 255 elements), the fast paths everything else. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "edist/term.h"
#include "term_internal.h"

/* Record a caller error (bad argument) as the buffer's sticky error too, so a
 * caller that checks only at the end still sees it. */
static int enc_fail(edist_buf *b, int err, const char *what)
{
    if (!b->err)
        b->err = err;
    return edist_set_error(err, "encode: %s", what);
}

#define SLOW_PATH __attribute__((noinline, cold))

SLOW_PATH int edist_enc_version_slow(edist_buf *b)
{
    uint8_t *p = edi_buf_room(b, 1);
    if (!p)
        return b->err;
    p[0] = EDIST_TAG_VERSION;
    b->len += 1;
    return 0;
}

/* Sign and magnitude with the magnitude known to fit 64 bits. */
static int enc_sign_mag64(edist_buf *b, int negative, uint64_t mag)
{
    if (!negative && mag <= 255) {
        uint8_t *p = edi_buf_room(b, 2);
        if (!p)
            return b->err;
        p[0] = EDIST_TAG_SMALL_INTEGER;
        p[1] = (uint8_t)mag;
        b->len += 2;
        return 0;
    }
    if (mag <= (negative ? UINT64_C(0x80000000) : UINT64_C(0x7FFFFFFF))) {
        uint8_t *p = edi_buf_room(b, 5);
        if (!p)
            return b->err;
        /* Two's complement of a value in int32 range, done unsigned. */
        uint32_t v = negative ? (uint32_t)(0u - (uint32_t)mag) : (uint32_t)mag;
        p[0] = EDIST_TAG_INTEGER;
        edi_put_be32(p + 1, v);
        b->len += 5;
        return 0;
    }
    /* mag >= 2^31 here: 4..8 magnitude bytes. */
    unsigned n = 8 - (unsigned)__builtin_clzll(mag) / 8;
    uint8_t *p = edi_buf_room(b, 3 + n);
    if (!p)
        return b->err;
    p[0] = EDIST_TAG_SMALL_BIG;
    p[1] = (uint8_t)n;
    p[2] = negative ? 1 : 0;
    if (b->cap - b->len >= 3 + 8) {
        edi_put_le64(p + 3, mag); /* one store; bytes past n are scratch */
    } else {
        for (unsigned i = 0; i < n; i++)
            p[3 + i] = (uint8_t)(mag >> (8 * i));
    }
    b->len += 3 + n;
    return 0;
}

SLOW_PATH int edist_enc_int_slow(edist_buf *b, int64_t v)
{
    if (v >= 0 && v <= 255) {
        uint8_t *p = edi_buf_room(b, 2);
        if (!p)
            return b->err;
        p[0] = EDIST_TAG_SMALL_INTEGER;
        p[1] = (uint8_t)v;
        b->len += 2;
        return 0;
    }
    if (v >= INT32_MIN && v <= INT32_MAX) {
        uint8_t *p = edi_buf_room(b, 5);
        if (!p)
            return b->err;
        p[0] = EDIST_TAG_INTEGER;
        edi_put_be32(p + 1, (uint32_t)v);
        b->len += 5;
        return 0;
    }
    /* Magnitude without negating INT64_MIN in signed arithmetic. */
    uint64_t mag = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    return enc_sign_mag64(b, v < 0, mag);
}

int edist_enc_uint(edist_buf *b, uint64_t v)
{
    return enc_sign_mag64(b, 0, v);
}

int edist_enc_big(edist_buf *b, int negative, const uint8_t *mag_le, size_t n)
{
    if (b->err)
        return b->err;
    if (n && !mag_le)
        return enc_fail(b, EDIST_EINVAL, "NULL bignum magnitude");
    while (n && mag_le[n - 1] == 0)
        n--;
    if (n <= 8) {
        uint64_t mag = 0;
        for (size_t i = 0; i < n; i++)
            mag |= (uint64_t)mag_le[i] << (8 * i);
        return enc_sign_mag64(b, negative && mag != 0, mag);
    }
    if (n > UINT32_MAX)
        return enc_fail(b, EDIST_EINVAL, "bignum longer than 2^32-1 bytes");
    size_t head = n <= 255 ? 3 : 6;
    uint8_t *p = edi_buf_room(b, head + n);
    if (!p)
        return b->err;
    if (n <= 255) {
        p[0] = EDIST_TAG_SMALL_BIG;
        p[1] = (uint8_t)n;
    } else {
        p[0] = EDIST_TAG_LARGE_BIG;
        edi_put_be32(p + 1, (uint32_t)n);
    }
    p[head - 1] = negative ? 1 : 0;
    memcpy(p + head, mag_le, n);
    b->len += head + n;
    return 0;
}

int edist_enc_int_decimal(edist_buf *b, const char *text, size_t len)
{
    if (b->err)
        return b->err;
    edist_buf mag;
    edist_buf_init(&mag);
    int negative = 0;
    int rc = edist_big_from_text(text, len, &negative, &mag);
    if (rc < 0) {
        edist_buf_free(&mag);
        return enc_fail(b, rc, "bad integer text");
    }
    rc = edist_enc_big(b, negative, mag.data, mag.len);
    edist_buf_free(&mag);
    return rc;
}

SLOW_PATH int edist_enc_double_slow(edist_buf *b, double v)
{
    if (b->err)
        return b->err;
    if (!isfinite(v))
        return enc_fail(b, EDIST_EINVAL, "float is not finite");
    uint8_t *p = edi_buf_room(b, 9);
    if (!p)
        return b->err;
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    p[0] = EDIST_TAG_NEW_FLOAT;
    edi_put_be64(p + 1, bits);
    b->len += 9;
    return 0;
}

/* Atom from bytes already known to be valid UTF-8 of <= 255 characters. */
static int enc_atom_checked(edist_buf *b, const uint8_t *s, size_t len)
{
    if (len <= 255) {
        uint8_t *p = edi_buf_room(b, 2 + len);
        if (!p)
            return b->err;
        p[0] = EDIST_TAG_SMALL_ATOM_UTF8;
        p[1] = (uint8_t)len;
        if (len)
            memcpy(p + 2, s, len);
        b->len += 2 + len;
        return 0;
    }
    uint8_t *p = edi_buf_room(b, 3 + len);
    if (!p)
        return b->err;
    p[0] = EDIST_TAG_ATOM_UTF8;
    edi_put_be16(p + 1, (uint16_t)len);
    memcpy(p + 3, s, len);
    b->len += 3 + len;
    return 0;
}

SLOW_PATH int edist_enc_atom_slow(edist_buf *b, const char *utf8, size_t len)
{
    if (b->err)
        return b->err;
    if (len && !utf8)
        return enc_fail(b, EDIST_EINVAL, "NULL atom text");
    if (len > EDIST_ATOM_MAX_BYTES)
        return enc_fail(b, EDIST_EBADTERM, "atom longer than 255 characters");
    long chars = edi_utf8_count((const uint8_t *)utf8, len);
    if (chars < 0)
        return enc_fail(b, EDIST_EBADTERM, "atom is not valid UTF-8");
    if (chars > EDIST_ATOM_MAX_CHARS)
        return enc_fail(b, EDIST_EBADTERM, "atom longer than 255 characters");
    return enc_atom_checked(b, (const uint8_t *)utf8, len);
}

int edist_enc_atomz(edist_buf *b, const char *utf8)
{
    if (!utf8)
        return enc_fail(b, EDIST_EINVAL, "NULL atom text");
    return edist_enc_atom(b, utf8, strlen(utf8));
}

/* An atom view from the decoder (possibly latin-1), re-encoded as UTF-8. */
static int enc_atom_view(edist_buf *b, const edist_atom *a)
{
    if (!a->latin1)
        return edist_enc_atom(b, a->ptr, a->len);
    if (a->len > EDIST_ATOM_MAX_CHARS)
        return enc_fail(b, EDIST_EBADTERM, "atom longer than 255 characters");
    uint8_t tmp[2 * EDIST_ATOM_MAX_CHARS];
    size_t n = 0;
    for (uint32_t i = 0; i < a->len; i++) {
        uint8_t c = (uint8_t)a->ptr[i];
        if (c < 0x80) {
            tmp[n++] = c;
        } else {
            tmp[n++] = (uint8_t)(0xC0 | (c >> 6));
            tmp[n++] = (uint8_t)(0x80 | (c & 0x3F));
        }
    }
    return enc_atom_checked(b, tmp, n);
}

int edist_enc_bool(edist_buf *b, int v)
{
    return v ? enc_atom_checked(b, (const uint8_t *)"true", 4)
             : enc_atom_checked(b, (const uint8_t *)"false", 5);
}

SLOW_PATH int edist_enc_tuple_slow(edist_buf *b, uint32_t arity)
{
    if (arity <= 255) {
        uint8_t *p = edi_buf_room(b, 2);
        if (!p)
            return b->err;
        p[0] = EDIST_TAG_SMALL_TUPLE;
        p[1] = (uint8_t)arity;
        b->len += 2;
        return 0;
    }
    uint8_t *p = edi_buf_room(b, 5);
    if (!p)
        return b->err;
    p[0] = EDIST_TAG_LARGE_TUPLE;
    edi_put_be32(p + 1, arity);
    b->len += 5;
    return 0;
}

SLOW_PATH int edist_enc_nil_slow(edist_buf *b)
{
    uint8_t *p = edi_buf_room(b, 1);
    if (!p)
        return b->err;
    p[0] = EDIST_TAG_NIL;
    b->len += 1;
    return 0;
}

/* Tag plus a 32-bit count. */
static int enc_tag_u32(edist_buf *b, uint8_t tag, uint32_t n)
{
    uint8_t *p = edi_buf_room(b, 5);
    if (!p)
        return b->err;
    p[0] = tag;
    edi_put_be32(p + 1, n);
    b->len += 5;
    return 0;
}

SLOW_PATH int edist_enc_list_slow(edist_buf *b, uint32_t n)
{
    if (b->err)
        return b->err;
    if (n == 0)
        return enc_fail(b, EDIST_EINVAL, "LIST_EXT with 0 elements (use nil)");
    return enc_tag_u32(b, EDIST_TAG_LIST, n);
}

int edist_enc_string(edist_buf *b, const void *bytes, size_t len)
{
    if (b->err)
        return b->err;
    if (len == 0)
        return edist_enc_nil(b);
    if (!bytes)
        return enc_fail(b, EDIST_EINVAL, "NULL string bytes");
    const uint8_t *s = bytes;
    if (len <= 65535) {
        uint8_t *p = edi_buf_room(b, 3 + len);
        if (!p)
            return b->err;
        p[0] = EDIST_TAG_STRING;
        edi_put_be16(p + 1, (uint16_t)len);
        memcpy(p + 3, s, len);
        b->len += 3 + len;
        return 0;
    }
    if (len > UINT32_MAX || len > (SIZE_MAX - 6) / 2)
        return enc_fail(b, EDIST_EINVAL, "string longer than 2^32-1 elements");
    uint8_t *p = edi_buf_room(b, 6 + 2 * len);
    if (!p)
        return b->err;
    p[0] = EDIST_TAG_LIST;
    edi_put_be32(p + 1, (uint32_t)len);
    uint8_t *q = p + 5;
    for (size_t i = 0; i < len; i++) {
        q[0] = EDIST_TAG_SMALL_INTEGER;
        q[1] = s[i];
        q += 2;
    }
    *q = EDIST_TAG_NIL;
    b->len += 6 + 2 * len;
    return 0;
}

SLOW_PATH int edist_enc_binary_slow(edist_buf *b, const void *bytes, size_t len)
{
    if (b->err)
        return b->err;
    if (len > UINT32_MAX)
        return enc_fail(b, EDIST_EINVAL, "binary longer than 2^32-1 bytes");
    if (len && !bytes)
        return enc_fail(b, EDIST_EINVAL, "NULL binary bytes");
    uint8_t *p = edi_buf_room(b, 5 + len);
    if (!p)
        return b->err;
    p[0] = EDIST_TAG_BINARY;
    edi_put_be32(p + 1, (uint32_t)len);
    if (len)
        memcpy(p + 5, bytes, len);
    b->len += 5 + len;
    return 0;
}

int edist_enc_bitstring(edist_buf *b, const void *bytes, size_t nbytes,
                        unsigned last_bits)
{
    if (b->err)
        return b->err;
    if (last_bits == 8)
        return edist_enc_binary(b, bytes, nbytes);
    if (last_bits < 1 || last_bits > 8 || nbytes == 0)
        return enc_fail(b, EDIST_EINVAL, "bit string needs 1..8 bits in a last byte");
    if (nbytes > UINT32_MAX)
        return enc_fail(b, EDIST_EINVAL, "bit string longer than 2^32-1 bytes");
    if (!bytes)
        return enc_fail(b, EDIST_EINVAL, "NULL bit string bytes");
    uint8_t *p = edi_buf_room(b, 6 + nbytes);
    if (!p)
        return b->err;
    p[0] = EDIST_TAG_BIT_BINARY;
    edi_put_be32(p + 1, (uint32_t)nbytes);
    p[5] = (uint8_t)last_bits;
    memcpy(p + 6, bytes, nbytes);
    /* erts writes the unused low bits of the last byte as zero. */
    p[5 + nbytes] &= (uint8_t)(0xFF00u >> last_bits);
    b->len += 6 + nbytes;
    return 0;
}

SLOW_PATH int edist_enc_map_slow(edist_buf *b, uint32_t pairs)
{
    return enc_tag_u32(b, EDIST_TAG_MAP, pairs);
}

int edist_enc_pid(edist_buf *b, const edist_pid *pid)
{
    if (b->err)
        return b->err;
    uint8_t *p = edi_buf_room(b, 1);
    if (!p)
        return b->err;
    p[0] = EDIST_TAG_NEW_PID;
    b->len += 1;
    if (enc_atom_view(b, &pid->node) < 0)
        return b->err;
    p = edi_buf_room(b, 12);
    if (!p)
        return b->err;
    edi_put_be32(p, pid->id);
    edi_put_be32(p + 4, pid->serial);
    edi_put_be32(p + 8, pid->creation);
    b->len += 12;
    return 0;
}

int edist_enc_port(edist_buf *b, const edist_port *port)
{
    if (b->err)
        return b->err;
    /* erts writes NEW_PORT_EXT (32-bit id field) only below 2^28. */
    int v4 = port->id >= (UINT64_C(1) << 28);
    uint8_t *p = edi_buf_room(b, 1);
    if (!p)
        return b->err;
    p[0] = v4 ? EDIST_TAG_V4_PORT : EDIST_TAG_NEW_PORT;
    b->len += 1;
    if (enc_atom_view(b, &port->node) < 0)
        return b->err;
    p = edi_buf_room(b, 12);
    if (!p)
        return b->err;
    if (v4) {
        edi_put_be64(p, port->id);
        edi_put_be32(p + 8, port->creation);
        b->len += 12;
    } else {
        edi_put_be32(p, (uint32_t)port->id);
        edi_put_be32(p + 4, port->creation);
        b->len += 8;
    }
    return 0;
}

int edist_enc_ref(edist_buf *b, const edist_ref *r)
{
    if (b->err)
        return b->err;
    if (r->len < 1 || r->len > EDIST_REF_MAX_WORDS)
        return enc_fail(b, EDIST_EINVAL, "reference must have 1..5 words");
    uint8_t *p = edi_buf_room(b, 3);
    if (!p)
        return b->err;
    p[0] = EDIST_TAG_NEWER_REFERENCE;
    edi_put_be16(p + 1, (uint16_t)r->len);
    b->len += 3;
    if (enc_atom_view(b, &r->node) < 0)
        return b->err;
    p = edi_buf_room(b, 4 + 4 * (size_t)r->len);
    if (!p)
        return b->err;
    edi_put_be32(p, r->creation);
    for (uint32_t i = 0; i < r->len; i++)
        edi_put_be32(p + 4 + 4 * i, r->ids[i]);
    b->len += 4 + 4 * (size_t)r->len;
    return 0;
}

int edist_enc_export(edist_buf *b, const char *module, size_t mlen,
                     const char *function, size_t flen, uint32_t arity)
{
    if (b->err)
        return b->err;
    if (arity > 255)
        return enc_fail(b, EDIST_EINVAL, "export arity above 255");
    /* Validate both atoms before writing anything, so a failure leaves no
     * partial term. */
    long mc = mlen > EDIST_ATOM_MAX_BYTES || (mlen && !module)
                  ? -1 : edi_utf8_count((const uint8_t *)module, mlen);
    long fc = flen > EDIST_ATOM_MAX_BYTES || (flen && !function)
                  ? -1 : edi_utf8_count((const uint8_t *)function, flen);
    if (mc < 0 || fc < 0 || mc > EDIST_ATOM_MAX_CHARS || fc > EDIST_ATOM_MAX_CHARS)
        return enc_fail(b, EDIST_EBADTERM, "bad export module or function atom");
    uint8_t *p = edi_buf_room(b, 1);
    if (!p)
        return b->err;
    p[0] = EDIST_TAG_EXPORT;
    b->len += 1;
    enc_atom_checked(b, (const uint8_t *)module, mlen);
    enc_atom_checked(b, (const uint8_t *)function, flen);
    p = edi_buf_room(b, 2);
    if (!p)
        return b->err;
    p[0] = EDIST_TAG_SMALL_INTEGER;
    p[1] = (uint8_t)arity;
    b->len += 2;
    return 0;
}

int edist_enc_raw(edist_buf *b, const void *encoded, size_t len)
{
    if (b->err)
        return b->err;
    if (len && !encoded)
        return enc_fail(b, EDIST_EINVAL, "NULL raw bytes");
    return edist_buf_append(b, encoded, len);
}
