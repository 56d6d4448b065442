/* SPDX-License-Identifier: Apache-2.0 */
/* Output buffers: growable (doubling) or caller-given fixed memory, with a
 * sticky first error so a whole message can be encoded and checked once. */
#include <stdlib.h>
#include <string.h>

#include "edist/term.h"
#include "term_internal.h"

/* Growable buffers start here, and never exceed what size_t can double. */
#define BUF_MIN_CAP_BYTES 64
#define BUF_MAX_CAP_BYTES (SIZE_MAX / 2)

void edist_buf_init(edist_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->err = 0;
    b->fixed = 0;
}

void edist_buf_init_fixed(edist_buf *b, void *mem, size_t cap)
{
    b->data = mem;
    b->len = 0;
    b->cap = mem ? cap : 0;
    b->err = 0;
    b->fixed = 1;
}

void edist_buf_free(edist_buf *b)
{
    if (!b->fixed) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
    b->len = 0;
    b->err = 0;
}

void edist_buf_reset(edist_buf *b)
{
    b->len = 0;
    b->err = 0;
}

static int buf_fail(edist_buf *b, int err, size_t need)
{
    b->err = err;
    if (err == EDIST_ENOSPC)
        return edist_set_error(err, "buffer: %zu bytes needed, fixed capacity %zu",
                               need, b->cap);
    return edist_set_error(err, "buffer: cannot grow to %zu bytes", need);
}

int edi_buf_grow(edist_buf *b, size_t n)
{
    if (b->err)
        return b->err;
    if (b->cap - b->len >= n)
        return 0;
    if (n > BUF_MAX_CAP_BYTES - b->len)
        return buf_fail(b, b->fixed ? EDIST_ENOSPC : EDIST_ENOMEM, SIZE_MAX);
    size_t need = b->len + n;
    if (b->fixed)
        return buf_fail(b, EDIST_ENOSPC, need);
    size_t cap = b->cap < BUF_MIN_CAP_BYTES ? BUF_MIN_CAP_BYTES : b->cap;
    while (cap < need)
        cap = cap > BUF_MAX_CAP_BYTES / 2 ? BUF_MAX_CAP_BYTES : cap * 2;
    uint8_t *data = realloc(b->data, cap);
    if (!data)
        return buf_fail(b, EDIST_ENOMEM, need);
    b->data = data;
    b->cap = cap;
    return 0;
}

int edist_buf_reserve(edist_buf *b, size_t n)
{
    if (b->err)
        return b->err;
    if (b->cap - b->len >= n)
        return 0;
    return edi_buf_grow(b, n);
}

int edist_buf_append(edist_buf *b, const void *bytes, size_t n)
{
    if (b->err)
        return b->err;
    if (n == 0)
        return 0;
    uint8_t *p = edi_buf_room(b, n);
    if (!p)
        return b->err;
    memcpy(p, bytes, n);
    b->len += n;
    return 0;
}

const char *edist_buf_cstr(edist_buf *b)
{
    uint8_t *p = edi_buf_room(b, 1);
    if (!p)
        return NULL;
    *p = 0;
    return (const char *)b->data;
}
