/* SPDX-License-Identifier: Apache-2.0 */
/* Compressed external terms (131, 80, u32 uncompressed size, zlib data), as
 * term_to_binary(T, [compressed]) writes them. Inflation is bounded so that a
 * small input cannot make us allocate much: see edi_inflate_ext. */
#include <string.h>
#include <zlib.h>

#include "edist/term.h"
#include "term_internal.h"

#define INFLATE_MAX_BYTES ((uint64_t)1 << 30)
/* Deflate cannot expand more than about 1032:1 (258-byte matches coded in
 * 2 bits); a declared size above this for the given input is a lie. */
#define ZLIB_MAX_RATIO 1032
/* zlib's avail_in is 32-bit: feed larger inputs in slices. */
#define INFLATE_SLICE_BYTES ((size_t)1 << 30)

static int zfail(size_t *err_off, size_t off, int err, const char *what)
{
    if (err_off)
        *err_off = off;
    return edist_set_error(err, "compressed term: %s at offset %zu", what, off);
}

int edi_inflate_ext(const uint8_t *ext, size_t len, edist_buf *out,
                    size_t *err_off)
{
    if (out->err)
        return out->err;
    if (len < 2 || ext[0] != EDIST_TAG_VERSION || ext[1] != EDIST_TAG_COMPRESSED)
        return zfail(err_off, 0, EDIST_EVERSION, "not 131, 80");
    if (len < 6)
        return zfail(err_off, 2, EDIST_ETRUNC, "truncated size");
    uint32_t size = edi_get_be32(ext + 2);
    size_t zlen = len - 6;
    if (size == 0)
        return zfail(err_off, 2, EDIST_ECOMPRESS, "declared size 0");
    if (size > INFLATE_MAX_BYTES)
        return zfail(err_off, 2, EDIST_ENOMEM, "declared size above 1 GiB");
    if ((uint64_t)size > (uint64_t)zlen * ZLIB_MAX_RATIO)
        return zfail(err_off, 2, EDIST_ECOMPRESS,
                     "declared size beyond what the zlib data can hold");

    size_t start = out->len;
    /* One spare byte shows whether the stream holds more than declared. */
    uint8_t *dst = edi_buf_room(out, (size_t)size + 1);
    if (!dst)
        return zfail(err_off, 2, out->err, "no room for the inflated term");

    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit(&zs) != Z_OK)
        return zfail(err_off, 6, EDIST_ENOMEM, "zlib init failed");
    zs.next_out = dst;
    zs.avail_out = (uInt)size + 1;
    size_t fed = 0;
    int rc = 0;
    const char *why = NULL;
    for (;;) {
        if (zs.avail_in == 0 && fed < zlen) {
            size_t slice = zlen - fed < INFLATE_SLICE_BYTES ? zlen - fed
                                                            : INFLATE_SLICE_BYTES;
            zs.next_in = (Bytef *)(uintptr_t)(ext + 6 + fed);
            zs.avail_in = (uInt)slice;
            fed += slice;
        }
        int zr = inflate(&zs, Z_NO_FLUSH);
        if (zr == Z_STREAM_END)
            break;
        if (zr == Z_OK && zs.avail_out != 0)
            continue;
        if (zs.avail_out == 0) {
            rc = EDIST_ECOMPRESS;
            why = "inflates to more than the declared size";
        } else if (zr == Z_BUF_ERROR) {
            rc = EDIST_ECOMPRESS;
            why = "zlib data truncated";
        } else if (zr == Z_MEM_ERROR) {
            rc = EDIST_ENOMEM;
            why = "zlib out of memory";
        } else {
            rc = EDIST_ECOMPRESS;
            why = "bad zlib data";
        }
        break;
    }
    size_t produced = (size_t)zs.total_out;
    size_t in_used = 6 + (fed - zs.avail_in);
    inflateEnd(&zs);
    if (rc < 0)
        return zfail(err_off, in_used, rc, why);
    if (produced != size)
        return zfail(err_off, 2, EDIST_ECOMPRESS,
                     "inflated size differs from the declared size");
    if (in_used != len)
        return zfail(err_off, in_used, EDIST_ECOMPRESS,
                     "bytes after the zlib stream");
    rc = edi_validate_term(out->data + start, size, err_off);
    if (rc < 0)
        return rc;
    out->len = start + size;
    return 0;
}

int edist_term_compress(const void *ext, size_t len, int level, edist_buf *out)
{
    const uint8_t *d = ext;
    if (out->err)
        return out->err;
    if (level < 0 || level > 9)
        return edist_set_error(EDIST_EINVAL, "compress: level %d not in 0..9", level);
    if (!d || len < 2 || d[0] != EDIST_TAG_VERSION)
        return edist_set_error(EDIST_EVERSION, "compress: no version byte 131");
    if (d[1] == EDIST_TAG_COMPRESSED) /* already compressed: keep as is */
        return edist_buf_append(out, d, len);
    size_t plain = len - 1;
    if (plain > UINT32_MAX)
        return edist_set_error(EDIST_EINVAL, "compress: term above 4 GiB");
    uLong bound = compressBound((uLong)plain);
    uint8_t *dst = edi_buf_room(out, 6 + (size_t)bound);
    if (!dst)
        return out->err;
    dst[0] = EDIST_TAG_VERSION;
    dst[1] = EDIST_TAG_COMPRESSED;
    edi_put_be32(dst + 2, (uint32_t)plain);
    uLongf zlen = bound;
    int zr = compress2(dst + 6, &zlen, d + 1, (uLong)plain, level);
    if (zr != Z_OK)
        return edist_set_error(zr == Z_MEM_ERROR ? EDIST_ENOMEM : EDIST_ECOMPRESS,
                               "compress: zlib error %d", zr);
    out->len += 6 + (size_t)zlen;
    return 0;
}

int edist_term_uncompress(const void *ext, size_t len, edist_buf *out)
{
    const uint8_t *d = ext;
    if (out->err)
        return out->err;
    if (!d || len < 1 || d[0] != EDIST_TAG_VERSION)
        return edist_set_error(EDIST_EVERSION, "uncompress: no version byte 131");
    size_t start = out->len;
    if (len >= 2 && d[1] == EDIST_TAG_COMPRESSED) {
        int rc = edist_enc_version(out);
        if (rc == 0)
            rc = edi_inflate_ext(d, len, out, NULL);
        if (rc < 0 && !out->err)
            out->len = start;
        return rc;
    }
    int rc = edi_validate_term(d + 1, len - 1, NULL);
    if (rc < 0)
        return rc;
    return edist_buf_append(out, d, len);
}
