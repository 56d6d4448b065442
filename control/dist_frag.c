/* SPDX-License-Identifier: Apache-2.0 */
/* Fragmenter (sender). See dist_frag.h. */
#include "control/dist_frag.h"

#include <string.h>

#include "base/bytes.h"
#include "control/dist_flags.h"
#include "edist/error.h"

/* ---- fragmenting --------------------------------------------------------- */

#define FRAME_HDR_BYTES 7 /* u32 + 131, 68, 0 */

int edi_dist_needs_fragments(size_t frame_len, uint64_t flags,
                             size_t frag_bytes)
{
    if (!(flags & EDI_DFLAG_FRAGMENTS))
        return 0;
    if (frag_bytes == 0)
        frag_bytes = EDI_DIST_FRAGMENT_BYTES_DEFAULT;
    return frame_len > FRAME_HDR_BYTES &&
           frame_len - FRAME_HDR_BYTES > frag_bytes;
}

int64_t edi_dist_frag_init(edi_dist_frag *f, const uint8_t *frame,
                           size_t frame_len, uint64_t sequence_id,
                           size_t frag_bytes)
{
    if (f == NULL || frame == NULL)
        return edist_set_error(EDIST_EINVAL, "dist frag: NULL argument");
    if (sequence_id == 0)
        return edist_set_error(EDIST_EINVAL, "dist frag: sequence id 0 means "
                                             "unfragmented to erts");
    if (frame_len <= FRAME_HDR_BYTES || frame[4] != EDIST_TAG_VERSION ||
        frame[5] != EDI_DIST_HEADER || frame[6] != 0 ||
        edi_get_be32(frame) != frame_len - 4)
        return edist_set_error(EDIST_EINVAL,
                               "dist frag: not a header-form frame from "
                               "the builders");
    if (frag_bytes == 0)
        frag_bytes = EDI_DIST_FRAGMENT_BYTES_DEFAULT;
    memset(f, 0, sizeof *f);
    f->body = frame + FRAME_HDR_BYTES;
    f->body_len = frame_len - FRAME_HDR_BYTES;
    edist_cursor c;
    edist_cursor_init(&c, f->body, f->body_len);
    int rc = edist_skip(&c);
    if (rc < 0)
        return edist_set_error(EDIST_EINVAL,
                               "dist frag: bad control message in frame");
    f->ctl_len = c.pos;
    f->frag_bytes = frag_bytes;
    f->sequence_id = sequence_id;
    if (f->body_len <= frag_bytes) {
        f->count = 1;
    } else {
        size_t first = f->ctl_len > frag_bytes ? f->ctl_len : frag_bytes;
        size_t rest = f->body_len - first;
        f->count = 1 + (rest + frag_bytes - 1) / frag_bytes;
    }
    f->next_fragment_id = f->count;
    return (int64_t)f->count;
}

/* The next fragment: header bytes into hdr, body slice into data and n. */
static int frag_take(edi_dist_frag *f, uint8_t *hdr, size_t *hdr_len,
                     const uint8_t **data, size_t *n)
{
    if (f == NULL || f->next_fragment_id == 0)
        return edist_set_error(EDIST_EINVAL, "dist frag: no more fragments");
    size_t take;
    if (f->count == 1) {
        take = f->body_len;
    } else if (f->taken == 0) {
        take = f->ctl_len > f->frag_bytes ? f->ctl_len : f->frag_bytes;
    } else {
        take = f->body_len - f->taken;
        if (take > f->frag_bytes)
            take = f->frag_bytes;
    }
    size_t hl;
    if (f->count == 1) {
        hdr[4] = EDIST_TAG_VERSION;
        hdr[5] = EDI_DIST_HEADER;
        hdr[6] = 0;
        hl = 7;
    } else if (f->taken == 0) {
        hdr[4] = EDIST_TAG_VERSION;
        hdr[5] = EDI_DIST_FRAG_HEADER;
        edi_put_be64(hdr + 6, f->sequence_id);
        edi_put_be64(hdr + 14, f->next_fragment_id);
        hdr[22] = 0; /* NumberOfAtomCacheRefs */
        hl = 23;
    } else {
        hdr[4] = EDIST_TAG_VERSION;
        hdr[5] = EDI_DIST_FRAG_CONT;
        edi_put_be64(hdr + 6, f->sequence_id);
        edi_put_be64(hdr + 14, f->next_fragment_id);
        hl = 22;
    }
    /* A body slice is at most the frame's length, which fitted a u32. */
    edi_put_be32(hdr, (uint32_t)(hl - 4 + take));
    *hdr_len = hl;
    *data = f->body + f->taken;
    *n = take;
    return 0;
}

static int frag_consume(edi_dist_frag *f, size_t n)
{
    f->taken += n;
    f->next_fragment_id--;
    return f->next_fragment_id > 0 ? 1 : 0;
}

int edi_dist_frag_next(edi_dist_frag *f, edist_buf *out)
{
    uint8_t hdr[EDI_DIST_FRAG_HDR_MAX_BYTES];
    size_t hl = 0, n = 0; /* set by frag_take on success */
    const uint8_t *data = NULL;
    int rc = frag_take(f, hdr, &hl, &data, &n);
    if (rc < 0)
        return rc;
    if (out == NULL)
        return edist_set_error(EDIST_EINVAL, "dist frag: NULL buffer");
    size_t start = out->len;
    if (edist_buf_reserve(out, hl + n) < 0) {
        out->len = start;
        return edist_set_error(out->err, "dist frag: buffer error");
    }
    edist_buf_append(out, hdr, hl);
    edist_buf_append(out, data, n);
    return frag_consume(f, n);
}

int edi_dist_frag_next_iov(edi_dist_frag *f,
                           uint8_t hdr[EDI_DIST_FRAG_HDR_MAX_BYTES],
                           struct iovec iov[2])
{
    size_t hl = 0, n = 0; /* set by frag_take on success */
    const uint8_t *data = NULL;
    if (hdr == NULL || iov == NULL)
        return edist_set_error(EDIST_EINVAL, "dist frag: NULL argument");
    int rc = frag_take(f, hdr, &hl, &data, &n);
    if (rc < 0)
        return rc;
    iov[0].iov_base = hdr;
    iov[0].iov_len = hl;
    iov[1].iov_base = (void *)data;
    iov[1].iov_len = n;
    return frag_consume(f, n);
}
