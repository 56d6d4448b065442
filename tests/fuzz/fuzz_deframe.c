/* SPDX-License-Identifier: Apache-2.0 */
/* The RAW/U32 deframer of the io_uring data path (dataplane/uring/
 * deframe.h) on any bytes, cut into chunks any way.
 *
 * Five setup bytes, then the stream:
 *   0: bit 0 well-formed mode (below); bit 1 start in U32; bits 2-3 how
 *      many RAW messages ([u16 len][payload]) the consumer takes before
 *      switching to U32 (0: it switches at the first bytes offered);
 *      bit 4 a frame starting with 'R' switches back to RAW; bit 5 the
 *      owner sets the mode between chunks (as edi_conn_set_framing does,
 *      with its kick when bytes are staged); bits 6-7 the first size of a
 *      reassembly buffer (default 1 MiB, or 1, 7, 100 bytes: growth).
 *   1: largest chunk (1..256 bytes, or up to 4 KiB from 200 on)
 *   2: seed of the chunk sizes
 *   3: limits: low nibble raw_max_bytes (0: 64 KiB, else 3 per step),
 *      high nibble max_frame_bytes (0: 1 MiB, else 17 per step)
 *   4: the n-th buffer allocation fails (0: none)
 * Well-formed mode ignores bits 1, 4, 5 and bytes 3-4: the rest of the
 * input is a list of [length byte][payload] pieces made into RAW messages
 * then U32 frames (lengths from 200 on stand for 300-byte steps, padded),
 * and everything must come out exactly, without error.
 *
 * Invariants: the RAW bytes consumed and the frames with their headers put
 * back, in event order, equal a prefix of the stream; without an error
 * that prefix plus what the deframer holds is everything fed; an
 * oversized-frame error points at a header above the limit; no event after
 * an error; every view lies inside the chunk (fed from an allocation of
 * its exact size, so ASan sees overreads) or inside the buffer it names;
 * every buffer allocated is released (and LeakSanitizer checks the rest). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/uring/deframe.h"
#include "edist/error.h"

#define CHECK(x)                                                               \
    do {                                                                       \
        if (!(x))                                                              \
            abort();                                                           \
    } while (0)

typedef struct tbuf {
    size_t cap;
    uint8_t data[];
} tbuf;

typedef struct fz {
    edi_deframe d;
    long live, calls, fail_at;
    const uint8_t *chunk;
    size_t chunk_len;
    uint8_t *out;
    size_t out_len, out_cap;
    size_t frames, raw_msgs, errors;
    int err;
    bool oversized;
    long switch_after, raw_in_mode;
    bool back_to_raw;
} fz;

static void *f_alloc(void *user, size_t cap, uint8_t **data)
{
    fz *f = user;
    CHECK(cap > 0);
    if (++f->calls == f->fail_at)
        return NULL;
    tbuf *b = malloc(sizeof(*b) + cap);
    if (b == NULL)
        return NULL;
    b->cap = cap;
    f->live++;
    *data = b->data;
    return b;
}

static void *f_grow(void *user, void *buf, size_t cap, uint8_t **data)
{
    fz *f = user;
    CHECK(cap > ((tbuf *)buf)->cap);
    if (++f->calls == f->fail_at)
        return NULL;
    tbuf *b = realloc(buf, sizeof(*b) + cap);
    if (b == NULL)
        return NULL;
    b->cap = cap;
    *data = b->data;
    return b;
}

static void f_release(void *user, void *buf)
{
    fz *f = user;
    CHECK(f->live > 0);
    f->live--;
    free(buf);
}

static const edi_deframe_alloc f_alloc_ops = {f_alloc, f_grow, f_release};

static void out_put(fz *f, const uint8_t *p, size_t n)
{
    if (f->out_len + n > f->out_cap) {
        size_t cap = f->out_cap ? f->out_cap * 2 : 4096;
        while (cap < f->out_len + n)
            cap *= 2;
        uint8_t *o = realloc(f->out, cap);
        CHECK(o != NULL);
        f->out = o;
        f->out_cap = cap;
    }
    if (n > 0)
        memcpy(f->out + f->out_len, p, n);
    f->out_len += n;
}

static void check_view(const fz *f, const edi_deframe_event *ev)
{
    if (ev->in_chunk) {
        CHECK(ev->buf == f->chunk);
        CHECK(ev->offset <= f->chunk_len &&
              ev->len <= f->chunk_len - ev->offset);
        CHECK(ev->data == f->chunk + ev->offset);
    } else {
        const tbuf *b = ev->buf;
        CHECK(b != NULL);
        CHECK(ev->offset <= b->cap && ev->len <= b->cap - ev->offset);
        CHECK(ev->data == b->data + ev->offset);
    }
}

static size_t on_raw(fz *f, const edi_deframe_event *ev)
{
    CHECK(ev->len > 0);
    if (ev->in_chunk)
        CHECK(ev->data >= f->chunk &&
              ev->len <= f->chunk_len - (size_t)(ev->data - f->chunk));
    /* the ends of what is offered must be readable (ASan); the bytes
     * consumed are all read by out_put. Not every byte: a consumer waiting
     * for a long message is offered the growing staged bytes again and
     * again, and reading them all would make runs quadratic. */
    volatile uint8_t sink = ev->data[0];
    sink = ev->data[ev->len - 1];
    (void)sink;
    if (f->raw_in_mode >= f->switch_after) {
        edi_deframe_set_mode(&f->d, EDI_DEFRAME_U32);
        return 0;
    }
    if (ev->len < 2)
        return 0;
    size_t l = ((size_t)ev->data[0] << 8) | ev->data[1];
    if (ev->len - 2 < l)
        return 0;
    out_put(f, ev->data, 2 + l);
    f->raw_msgs++;
    if (++f->raw_in_mode >= f->switch_after)
        edi_deframe_set_mode(&f->d, EDI_DEFRAME_U32);
    return 2 + l;
}

static size_t on_event(void *user, const edi_deframe_event *ev)
{
    fz *f = user;
    CHECK(f->errors == 0); /* nothing after an error */
    switch (ev->kind) {
    case EDI_DEFRAME_BYTES:
        CHECK(edi_deframe_get_mode(&f->d) == EDI_DEFRAME_RAW);
        return on_raw(f, ev);
    case EDI_DEFRAME_FRAME:
    case EDI_DEFRAME_TICK:
    case EDI_DEFRAME_REASSEMBLED: {
        CHECK(edi_deframe_get_mode(&f->d) == EDI_DEFRAME_U32);
        CHECK((ev->kind == EDI_DEFRAME_TICK) == (ev->len == 0));
        if (ev->kind == EDI_DEFRAME_REASSEMBLED) {
            const tbuf *b = ev->buf;
            CHECK(!ev->in_chunk && ev->len > 0 && ev->len <= b->cap &&
                  ev->data == b->data);
        } else {
            check_view(f, ev);
        }
        CHECK(ev->len <= f->d.cfg.max_frame_bytes);
        uint8_t hdr[4] = {(uint8_t)(ev->len >> 24), (uint8_t)(ev->len >> 16),
                          (uint8_t)(ev->len >> 8), (uint8_t)ev->len};
        out_put(f, hdr, 4);
        out_put(f, ev->data, ev->len);
        f->frames++;
        if (f->back_to_raw && ev->len > 0 && ev->data[0] == 'R') {
            edi_deframe_set_mode(&f->d, EDI_DEFRAME_RAW);
            f->raw_in_mode = 0;
        }
        if (ev->kind == EDI_DEFRAME_REASSEMBLED)
            f_release(f, ev->buf);
        return 0;
    }
    case EDI_DEFRAME_ERROR:
        CHECK(edi_deframe_halted(&f->d));
        CHECK(ev->detail != NULL && ev->detail[0] != 0);
        CHECK(ev->err == EDIST_EPROTO || ev->err == EDIST_ENOMEM);
        f->errors++;
        f->err = ev->err;
        f->oversized = strstr(ev->detail, "exceeds the limit") != NULL;
        return 0;
    }
    abort();
}

static uint32_t rng(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/* Well-formed stream from [length byte][payload] pieces: k RAW messages
 * then frames. Returns its length; *out is malloc'd. */
static size_t build_stream(const uint8_t *in, size_t n, long k, uint8_t **out)
{
    size_t cap = 64, len = 0;
    uint8_t *s = malloc(cap);
    CHECK(s != NULL);
    size_t i = 0;
    for (long piece = 0; i < n; piece++) {
        size_t want = in[i] < 200 ? in[i] : (size_t)(in[i] - 199) * 300;
        i++;
        size_t have = n - i < want ? n - i : want;
        bool raw = piece < k;
        size_t hl = raw ? 2 : 4;
        if (len + hl + want > cap) {
            while (len + hl + want > cap)
                cap *= 2;
            s = realloc(s, cap);
            CHECK(s != NULL);
        }
        if (raw) {
            s[len++] = (uint8_t)(want >> 8);
            s[len++] = (uint8_t)want;
        } else {
            s[len++] = (uint8_t)(want >> 24);
            s[len++] = (uint8_t)(want >> 16);
            s[len++] = (uint8_t)(want >> 8);
            s[len++] = (uint8_t)want;
        }
        memcpy(s + len, in + i, have);
        for (size_t j = have; j < want; j++)
            s[len + j] = (uint8_t)(j * 7u);
        len += want;
        i += have;
    }
    *out = s;
    return len;
}

/* After a feed of the stream's first `at` bytes. */
static void check_state(const fz *f, const uint8_t *s, size_t at)
{
    CHECK(f->out_len <= at);
    CHECK(f->out_len == 0 || memcmp(f->out, s, f->out_len) == 0);
    if (f->errors == 0) {
        CHECK(!edi_deframe_halted(&f->d));
        CHECK(f->out_len + edi_deframe_pending_bytes(&f->d) == at);
        return;
    }
    CHECK(edi_deframe_halted(&f->d) && edi_deframe_pending_bytes(&f->d) == 0);
    if (f->oversized) {
        /* everything before the bad header was delivered */
        CHECK(f->err == EDIST_ENOMEM && f->out_len + 4 <= at);
        const uint8_t *h = s + f->out_len;
        uint32_t len = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) |
                       ((uint32_t)h[2] << 8) | h[3];
        CHECK(len > f->d.cfg.max_frame_bytes);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    const uint8_t flags = data[0];
    const bool wellformed = flags & 1;
    size_t max_chunk =
        data[1] < 200 ? (size_t)data[1] + 1 : (size_t)(data[1] - 199) * 73;
    uint32_t seed = 0x9e3779b9u ^ ((uint32_t)data[2] * 0x01000193u);

    fz *f = calloc(1, sizeof(*f));
    CHECK(f != NULL);
    f->switch_after = (flags >> 2) & 3;
    edi_deframe_config cfg = {
        .max_frame_bytes = 1u << 20,
        .raw_max_bytes = 64u * 1024u,
        .asm_initial_bytes = (size_t[]){0, 1, 7, 100}[flags >> 6],
        .alloc = &f_alloc_ops,
        .on_event = on_event,
        .user = f,
    };
    bool toggles = false;
    edi_deframe_mode start = EDI_DEFRAME_RAW;
    const uint8_t *s;
    size_t n;
    uint8_t *built = NULL;
    if (wellformed) {
        n = build_stream(data + 5, size - 5, f->switch_after, &built);
        s = built;
    } else {
        if (flags & 2)
            start = EDI_DEFRAME_U32;
        f->back_to_raw = (flags & 16) != 0;
        toggles = (flags & 32) != 0;
        if (data[3] & 0x0f)
            cfg.raw_max_bytes = (size_t)(data[3] & 0x0f) * 3;
        if (data[3] >> 4)
            cfg.max_frame_bytes = (uint64_t)(data[3] >> 4) * 17;
        f->fail_at = data[4];
        s = data + 5;
        n = size - 5;
    }
    edi_deframe_init(&f->d, &cfg);
    edi_deframe_set_mode(&f->d, start);

    size_t at = 0;
    while (at < n && !edi_deframe_halted(&f->d)) {
        size_t c = 1 + rng(&seed) % max_chunk;
        if (c > n - at)
            c = n - at;
        uint8_t *chunk = malloc(c);
        CHECK(chunk != NULL);
        memcpy(chunk, s + at, c);
        f->chunk = chunk;
        f->chunk_len = c;
        edi_deframe_feed(&f->d, chunk, chunk, c);
        f->chunk = NULL;
        f->chunk_len = 0;
        free(chunk);
        at += c;
        check_state(f, s, at);
        if (toggles && f->errors == 0 && (rng(&seed) & 3) == 0 &&
            !edi_deframe_mid_frame(&f->d)) {
            /* the owner switches outside an event (maybe twice before the
             * kick runs, so maybe back to the same mode): staged bytes are
             * looked at again without waiting for more */
            edi_deframe_mode m =
                (rng(&seed) & 1) ? EDI_DEFRAME_U32 : EDI_DEFRAME_RAW;
            edi_deframe_set_mode(&f->d, m);
            if (m == EDI_DEFRAME_RAW)
                f->raw_in_mode = 0;
            if (edi_deframe_staged_bytes(&f->d) > 0) {
                edi_deframe_feed(&f->d, NULL, NULL, 0);
                check_state(f, s, at);
            }
        }
    }
    /* ENOMEM is an injected allocation failure or an oversized frame */
    if (f->errors > 0 && f->err == EDIST_ENOMEM)
        CHECK(f->fail_at > 0 || f->oversized);
    if (wellformed) {
        CHECK(f->errors == 0);
        CHECK(f->out_len == n && (n == 0 || memcmp(f->out, s, n) == 0));
        CHECK(edi_deframe_pending_bytes(&f->d) == 0);
    }
    edi_deframe_fini(&f->d);
    CHECK(f->live == 0);
    free(f->out);
    free(built);
    free(f);
    return 0;
}
