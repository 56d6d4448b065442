/* SPDX-License-Identifier: Apache-2.0 */
/* RAW/U32 deframing of a byte stream fed in chunks (see deframe.h).
 *
 * Every event handler may switch the mode or halt the deframer, so after
 * each event the loops look at both again before touching any state; a
 * halt from a handler leaves the memory the handler was given valid until
 * it returns (the staging area is only freed by fini). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "dataplane/reactor/rxbuf.h"
#include "dataplane/uring/deframe.h"
#include "edist/error.h"

/* A frame spanning chunks starts with a buffer of at most this size and
 * grows as bytes arrive (see deframe.h), unless the config says otherwise. */
#define ASM_INITIAL_BYTES (1024u * 1024u)
/* First size of the RAW staging area; it doubles up to raw_max_bytes. */
#define RAW_INITIAL_BYTES 1024u

/* Where the bytes being scanned live, for the events about them. */
typedef struct src {
    void *buf;
    const uint8_t *base;
    bool in_chunk;
} src;

void edi_deframe_init(edi_deframe *d, const edi_deframe_config *cfg)
{
    memset(d, 0, sizeof(*d));
    d->cfg = *cfg;
    if (d->cfg.asm_initial_bytes == 0)
        d->cfg.asm_initial_bytes = ASM_INITIAL_BYTES;
    d->mode = EDI_DEFRAME_RAW;
}

void edi_deframe_halt(edi_deframe *d)
{
    d->halted = true;
    if (d->asm_buf != NULL) {
        void *b = d->asm_buf;
        d->asm_buf = NULL;
        d->asm_data = NULL;
        d->cfg.alloc->release(d->cfg.user, b);
    }
    d->asm_len = d->asm_have = d->asm_cap = 0;
    d->hdr_have = 0;
    /* not freed: a RAW handler that halts may still read what it got */
    d->raw_len = 0;
}

void edi_deframe_fini(edi_deframe *d)
{
    edi_deframe_halt(d);
    free(d->raw);
    d->raw = NULL;
    d->raw_cap = 0;
}

void edi_deframe_set_mode(edi_deframe *d, edi_deframe_mode mode)
{
    d->mode = mode;
}
edi_deframe_mode edi_deframe_get_mode(const edi_deframe *d)
{
    return d->mode;
}
bool edi_deframe_halted(const edi_deframe *d)
{
    return d->halted;
}
size_t edi_deframe_staged_bytes(const edi_deframe *d)
{
    return d->raw_len;
}

bool edi_deframe_mid_frame(const edi_deframe *d)
{
    return d->mode == EDI_DEFRAME_U32 &&
           (d->hdr_have > 0 || d->asm_buf != NULL);
}

size_t edi_deframe_pending_bytes(const edi_deframe *d)
{
    return d->raw_len + d->hdr_have +
           (d->asm_buf != NULL ? 4 + d->asm_have : 0);
}

/* Halts, then tells the handler why. */
static void fail(edi_deframe *d, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(edi_deframe *d, int err, const char *fmt, ...)
{
    edi_deframe_halt(d);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->detail, sizeof(d->detail), fmt, ap);
    va_end(ap);
    edi_deframe_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.kind = EDI_DEFRAME_ERROR;
    ev.err = err;
    ev.detail = d->detail;
    (void)d->cfg.on_event(d->cfg.user, &ev);
}

static size_t offer_bytes(edi_deframe *d, const uint8_t *p, size_t n,
                          bool in_chunk)
{
    edi_deframe_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.kind = EDI_DEFRAME_BYTES;
    ev.data = p;
    ev.len = n;
    ev.in_chunk = in_chunk;
    size_t used = d->cfg.on_event(d->cfg.user, &ev);
    return used > n ? n : used;
}

static void emit_frame(edi_deframe *d, const src *s, const uint8_t *p,
                       size_t len)
{
    edi_deframe_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.kind = len == 0 ? EDI_DEFRAME_TICK : EDI_DEFRAME_FRAME;
    ev.data = p;
    ev.len = len;
    ev.buf = s->buf;
    ev.offset = (size_t)(p - s->base);
    ev.in_chunk = s->in_chunk;
    (void)d->cfg.on_event(d->cfg.user, &ev);
}

/* Appends p[0..n) to the staged RAW bytes. 0, or -1 with d failed. */
static int raw_append(edi_deframe *d, const uint8_t *p, size_t n)
{
    size_t limit = d->cfg.raw_max_bytes;
    if (n > limit - d->raw_len) {
        fail(d, EDIST_EPROTO, "more than %zu unconsumed bytes in raw mode",
             limit);
        return -1;
    }
    if (d->raw_len + n > d->raw_cap) {
        size_t cap = d->raw_cap ? d->raw_cap : RAW_INITIAL_BYTES;
        while (cap < d->raw_len + n)
            cap *= 2;
        if (cap > limit)
            cap = limit;
        uint8_t *r = realloc(d->raw, cap);
        if (r == NULL) {
            fail(d, EDIST_ENOMEM, "raw staging of %zu bytes", cap);
            return -1;
        }
        d->raw = r;
        d->raw_cap = cap;
    }
    memcpy(d->raw + d->raw_len, p, n);
    d->raw_len += n;
    return 0;
}

/* Stages as much of p[0..n) as raw_max_bytes allows: a consumer that needs
 * more than that is a protocol error. Returns how many bytes were taken,
 * or 0 with d failed. */
static size_t raw_stage(edi_deframe *d, const uint8_t *p, size_t n)
{
    size_t room = d->cfg.raw_max_bytes - d->raw_len;
    if (room == 0) {
        fail(d, EDIST_EPROTO, "more than %zu unconsumed bytes in raw mode",
             d->raw_len);
        return 0;
    }
    size_t piece = n < room ? n : room;
    return raw_append(d, p, piece) < 0 ? 0 : piece;
}

/* RAW mode over the staged bytes: offer them until nothing is consumed. */
static void raw_deliver(edi_deframe *d)
{
    while (d->raw_len > 0 && !d->halted && d->mode == EDI_DEFRAME_RAW) {
        size_t used = offer_bytes(d, d->raw, d->raw_len, false);
        if (used == 0 || d->halted)
            break;
        memmove(d->raw, d->raw + used, d->raw_len - used);
        d->raw_len -= used;
    }
}

/* Parses p[0..n), which lives in s, by the current mode. Returns how many
 * bytes at the end a RAW consumer left unconsumed (the caller stages them);
 * 0 when everything was used or d halted. */
static size_t scan(edi_deframe *d, const src *s, const uint8_t *p, size_t n)
{
    const edi_deframe_alloc *al = d->cfg.alloc;
    while (n > 0 && !d->halted) {
        if (d->mode == EDI_DEFRAME_RAW) {
            size_t used;
            do {
                used = offer_bytes(d, p, n, s->in_chunk);
                p += used;
                n -= used;
            } while (used > 0 && n > 0 && !d->halted &&
                     d->mode == EDI_DEFRAME_RAW);
            if (n > 0 && !d->halted && d->mode == EDI_DEFRAME_RAW)
                return n;
            continue;
        }
        if (d->asm_buf != NULL) {
            size_t take = d->asm_len - d->asm_have;
            if (take > n)
                take = n;
            if (d->asm_have + take > d->asm_cap) {
                size_t cap = d->asm_cap * 2;
                if (cap < d->asm_have + take)
                    cap = d->asm_have + take;
                if (cap > d->asm_len)
                    cap = d->asm_len;
                uint8_t *data;
                void *g = al->grow(d->cfg.user, d->asm_buf, cap, &data);
                if (g == NULL) {
                    fail(d, EDIST_ENOMEM, "reassembly of a %zu byte frame",
                         d->asm_len);
                    return 0;
                }
                d->asm_buf = g;
                d->asm_data = data;
                d->asm_cap = cap;
            }
            memcpy(d->asm_data + d->asm_have, p, take);
            d->asm_have += take;
            p += take;
            n -= take;
            if (d->asm_have == d->asm_len) {
                /* detached first: the handler owns it and may halt us */
                edi_deframe_event ev;
                memset(&ev, 0, sizeof(ev));
                ev.kind = EDI_DEFRAME_REASSEMBLED;
                ev.data = d->asm_data;
                ev.len = d->asm_len;
                ev.buf = d->asm_buf;
                d->asm_buf = NULL;
                d->asm_data = NULL;
                d->asm_cap = d->asm_len = d->asm_have = 0;
                (void)d->cfg.on_event(d->cfg.user, &ev);
            }
            continue;
        }
        size_t len;
        if (d->hdr_have > 0 || n < 4) {
            size_t take = 4u - d->hdr_have;
            if (take > n)
                take = n;
            memcpy(d->hdr + d->hdr_have, p, take);
            d->hdr_have = (uint8_t)(d->hdr_have + take);
            p += take;
            n -= take;
            if (d->hdr_have < 4)
                return 0;
            len = edi_get_be32(d->hdr);
            d->hdr_have = 0;
        } else {
            len = edi_get_be32(p);
            p += 4;
            n -= 4;
        }
        if (len > d->cfg.max_frame_bytes) {
            fail(d, EDIST_ENOMEM,
                 "frame of %zu bytes exceeds the limit of %llu", len,
                 (unsigned long long)d->cfg.max_frame_bytes);
            return 0;
        }
        if (n >= len) {
            /* whole frame inside these bytes: a view, no copy */
            emit_frame(d, s, p, len);
            p += len;
            n -= len;
            continue;
        }
        size_t cap =
            len < d->cfg.asm_initial_bytes ? len : d->cfg.asm_initial_bytes;
        if (cap < n)
            cap = n;
        uint8_t *data;
        void *b = al->alloc(d->cfg.user, cap, &data);
        if (b == NULL) {
            fail(d, EDIST_ENOMEM, "reassembly of a %zu byte frame", len);
            return 0;
        }
        d->asm_buf = b;
        d->asm_data = data;
        d->asm_cap = cap;
        d->asm_len = len;
        d->asm_have = 0;
    }
    return 0;
}

/* Staged RAW bytes come first: while there are some, new bytes are
 * appended to them (up to raw_max_bytes) for the consumer. Without staged
 * bytes, the chunk is scanned in place and only what a RAW consumer leaves
 * is staged, so the frames after a switch to U32 are views into the chunk
 * (or into a copy of what was staged). */
void edi_deframe_feed(edi_deframe *d, void *chunk_buf, const uint8_t *p,
                      size_t n)
{
    const src chunk = {chunk_buf, p, true};
    for (;;) {
        while (!d->halted && d->raw_len > 0) {
            if (d->mode == EDI_DEFRAME_U32) {
                /* switched with bytes staged: frame them from a copy that
                 * can be referenced like any chunk */
                size_t len = d->raw_len;
                uint8_t *data;
                void *tmp = d->cfg.alloc->alloc(d->cfg.user, len, &data);
                if (tmp == NULL) {
                    fail(d, EDIST_ENOMEM, "staged bytes copy");
                    break;
                }
                memcpy(data, d->raw, len);
                d->raw_len = 0;
                const src copy = {tmp, data, false};
                size_t left = scan(d, &copy, data, len);
                if (left >
                    0) /* RAW again, consumer waits: fits, raw_len was 0 */
                    (void)raw_stage(d, data + len - left, left);
                d->cfg.alloc->release(d->cfg.user, tmp);
                continue;
            }
            if (n == 0) {
                raw_deliver(d);
                if (d->mode == EDI_DEFRAME_RAW)
                    break; /* wait for more bytes */
                continue;
            }
            size_t took = raw_stage(d, p, n);
            if (took == 0)
                break;
            p += took;
            n -= took;
            raw_deliver(d);
            if (n == 0 && d->mode == EDI_DEFRAME_RAW)
                break;
        }
        if (n == 0 || d->halted)
            break;
        size_t left = scan(d, &chunk, p, n);
        if (left == 0)
            break;
        /* a RAW consumer wants more than these bytes: stage them */
        p += n - left;
        n = left;
        size_t took = raw_stage(d, p, n);
        if (took == 0)
            break;
        p += took;
        n -= took;
        if (n == 0)
            break;
    }
}

/* ---- heap rxbufs as reassembly buffers ------------------------------------ */

static void *rxb_alloc(void *user, size_t cap_bytes, uint8_t **data)
{
    (void)user;
    edi_rxbuf *b = edi_rxbuf_heap_new(cap_bytes);
    if (b != NULL)
        *data = edi_rxbuf_data(b);
    return b;
}

static void *rxb_grow(void *user, void *buf, size_t cap_bytes, uint8_t **data)
{
    (void)user;
    edi_rxbuf *b = edi_rxbuf_heap_grow(buf, cap_bytes);
    if (b != NULL)
        *data = edi_rxbuf_data(b);
    return b;
}

static void rxb_release(void *user, void *buf)
{
    (void)user;
    edi_rxbuf_unref(buf);
}

const edi_deframe_alloc edi_deframe_rxbufs = { rxb_alloc, rxb_grow, rxb_release };
