/* SPDX-License-Identifier: Apache-2.0 */
/* Bignum <-> text. Magnitudes are little-endian bytes, as in SMALL_BIG_EXT
 * and LARGE_BIG_EXT; the arithmetic runs on 32-bit limbs so every step fits
 * a uint64_t. Both directions are quadratic in the number of limbs, which is
 * ample for the sizes that appear in terms (thousands of digits). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edist/term.h"
#include "term_internal.h"

#define DEC_CHUNK_BASE 1000000000u /* 10^9: the largest power of 10 < 2^32 */
#define DEC_CHUNK_DIGITS 9

/* Little-endian bytes -> little-endian 32-bit limbs (top limb zero-padded). */
static void bytes_to_limbs(const uint8_t *mag_le, size_t n, uint32_t *limbs)
{
    size_t nlimbs = (n + 3) / 4;
    memset(limbs, 0, nlimbs * sizeof *limbs);
    for (size_t i = 0; i < n; i++)
        limbs[i / 4] |= (uint32_t)mag_le[i] << (8 * (i % 4));
}

static unsigned decimal_width(uint32_t v)
{
    unsigned w = 1;
    while (v >= 10) {
        v /= 10;
        w++;
    }
    return w;
}

int edist_big_to_decimal(int negative, const uint8_t *mag_le, size_t n,
                         edist_buf *out)
{
    if (out == NULL || (n > 0 && mag_le == NULL))
        return EDIST_EINVAL;
    while (n > 0 && mag_le[n - 1] == 0)
        n--;
    if (n == 0) /* zero has no sign */
        return edist_buf_append(out, "0", 1);
    if (n > SIZE_MAX / 8)
        return edist_set_error(EDIST_ENOMEM, "big: magnitude of %zu bytes", n);

    size_t nlimbs = (n + 3) / 4;
    /* A 32-bit limb carries log10(2^32) = 9.63 digits, i.e. < 1.07 chunks of
     * nine digits; nlimbs/8 over-covers the fraction. */
    size_t max_chunks = nlimbs + nlimbs / 8 + 2;
    uint32_t *limbs = malloc(nlimbs * sizeof *limbs);
    uint32_t *chunks = malloc(max_chunks * sizeof *chunks);
    if (limbs == NULL || chunks == NULL) {
        free(limbs);
        free(chunks);
        return EDIST_ENOMEM;
    }
    bytes_to_limbs(mag_le, n, limbs);

    /* Peel off nine decimal digits at a time, least significant first. */
    size_t used = nlimbs;
    while (used > 0 && limbs[used - 1] == 0)
        used--;
    size_t nchunks = 0;
    while (used > 0 && nchunks < max_chunks) {
        uint64_t rem = 0;
        for (size_t i = used; i-- > 0;) {
            uint64_t cur = (rem << 32) | limbs[i];
            limbs[i] = (uint32_t)(cur / DEC_CHUNK_BASE);
            rem = cur % DEC_CHUNK_BASE;
        }
        chunks[nchunks++] = (uint32_t)rem;
        while (used > 0 && limbs[used - 1] == 0)
            used--;
    }
    free(limbs);

    size_t ndigits = (nchunks - 1) * DEC_CHUNK_DIGITS +
                     decimal_width(chunks[nchunks - 1]);
    size_t total = ndigits + (negative ? 1 : 0);
    int rc = edist_buf_reserve(out, total);
    if (rc < 0) {
        free(chunks);
        return rc;
    }
    char *p = (char *)out->data + out->len;
    if (negative)
        *p++ = '-';
    /* Write from the end: low chunks are zero-padded to nine digits, the
     * top chunk is not. */
    char *end = p + ndigits;
    for (size_t c = 0; c < nchunks; c++) {
        uint32_t v = chunks[c];
        int last = (c + 1 == nchunks);
        for (unsigned d = 0; d < DEC_CHUNK_DIGITS; d++) {
            if (last && v == 0 && d > 0)
                break;
            *--end = (char)('0' + v % 10);
            v /= 10;
        }
    }
    out->len += total;
    free(chunks);
    return 0;
}

/* Digit value of c in any base up to 36, or 99 for a non-digit. */
static unsigned digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return (unsigned)(c - '0');
    if (c >= 'a' && c <= 'z')
        return (unsigned)(c - 'a') + 10;
    if (c >= 'A' && c <= 'Z')
        return (unsigned)(c - 'A') + 10;
    return 99;
}

/* Checks s[0..len) is digits < base with single '_' only between digits
 * (Erlang's separators, OTP 23+); returns the number of digits, 0 if the
 * text is not well formed. */
static size_t count_digits(const char *s, size_t len, unsigned base)
{
    size_t digits = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '_') {
            if (i == 0 || i + 1 == len || s[i - 1] == '_')
                return 0;
            continue;
        }
        if (digit_value(s[i]) >= base)
            return 0;
        digits++;
    }
    return digits;
}

/* limbs[0..*used) = limbs * mul + add. The caller sized limbs for the final
 * value, so the carry always has room. */
static int limbs_mul_add(uint32_t *limbs, size_t *used, size_t cap,
                         uint32_t mul, uint32_t add)
{
    uint64_t carry = add;
    for (size_t i = 0; i < *used; i++) {
        uint64_t cur = (uint64_t)limbs[i] * mul + carry;
        limbs[i] = (uint32_t)cur;
        carry = cur >> 32;
    }
    if (carry != 0) {
        if (*used >= cap)
            return EDIST_ENOMEM; /* unreachable with a correct bound */
        limbs[(*used)++] = (uint32_t)carry;
    }
    return 0;
}

int edist_big_from_text(const char *text, size_t len, int *negative,
                        edist_buf *mag)
{
    if (negative == NULL || mag == NULL || (len > 0 && text == NULL))
        return EDIST_EINVAL;
    if (len == 0)
        return edist_set_error(EDIST_ESYNTAX, "big: empty text");
    size_t i = 0;
    int neg = 0;
    if (i < len && (text[i] == '+' || text[i] == '-')) {
        neg = (text[i] == '-');
        i++;
    }

    unsigned base = 10;
    const char *hash = memchr(text + i, '#', len - i);
    if (hash != NULL) {
        size_t blen = (size_t)(hash - (text + i));
        if (count_digits(text + i, blen, 10) == 0)
            return edist_set_error(EDIST_ESYNTAX, "big: bad base before '#'");
        base = 0;
        for (size_t k = 0; k < blen; k++) {
            if (text[i + k] == '_')
                continue;
            base = base * 10 + digit_value(text[i + k]);
            if (base > 36)
                break;
        }
        if (base < 2 || base > 36)
            return edist_set_error(EDIST_ESYNTAX, "big: base out of 2..36");
        i += blen + 1;
    }

    const char *digits = text + i;
    size_t dlen = len - i;
    size_t ndigits = count_digits(digits, dlen, base);
    if (ndigits == 0)
        return edist_set_error(EDIST_ESYNTAX, "big: bad digits at offset %zu",
                               i);

    /* Chunk of k digits with base^k < 2^32, so limb * base^k + carry fits
     * 64 bits. */
    uint32_t chunk_mul = base;
    unsigned chunk_digits = 1;
    while ((uint64_t)chunk_mul * base <= UINT32_MAX) {
        chunk_mul *= base;
        chunk_digits++;
    }

    /* Each digit adds at most log2(36) < 6 bits: 3 limbs per 16 digits. */
    size_t cap = (ndigits / 16) * 3 + 4;
    uint32_t *limbs = malloc(cap * sizeof *limbs);
    if (limbs == NULL)
        return EDIST_ENOMEM;
    size_t used = 0;
    uint32_t chunk = 0, mul = 1;
    int rc = 0;
    for (size_t k = 0; k < dlen && rc == 0; k++) {
        if (digits[k] == '_')
            continue;
        chunk = chunk * base + digit_value(digits[k]);
        mul *= base;
        if (mul == chunk_mul) {
            rc = limbs_mul_add(limbs, &used, cap, mul, chunk);
            chunk = 0;
            mul = 1;
        }
    }
    if (rc == 0 && mul > 1)
        rc = limbs_mul_add(limbs, &used, cap, mul, chunk);
    if (rc < 0) {
        free(limbs);
        return rc;
    }

    size_t nbytes = used * 4;
    while (nbytes > 0 &&
           ((limbs[(nbytes - 1) / 4] >> (8 * ((nbytes - 1) % 4))) & 0xFF) == 0)
        nbytes--;
    if (nbytes > 0) /* zero appends nothing (and mag may have no memory) */
        rc = edist_buf_reserve(mag, nbytes);
    if (rc == 0 && nbytes > 0) {
        uint8_t *p = mag->data + mag->len;
        for (size_t k = 0; k < nbytes; k++)
            p[k] = (uint8_t)(limbs[k / 4] >> (8 * (k % 4)));
        mag->len += nbytes;
    }
    if (rc == 0)
        *negative = neg && nbytes > 0;
    free(limbs);
    return rc;
}
