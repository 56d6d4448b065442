/* SPDX-License-Identifier: Apache-2.0 */
/* The RAW/U32 deframer (dataplane/uring/deframe.h), pure: no sockets.
 *
 * A recorder rebuilds the stream from the events (RAW bytes consumed,
 * frames with their 4-byte header put back) and keeps a trace of them;
 * every chunking of the same stream must give the same trace and the same
 * rebuilt bytes, and every view must lie inside the chunk or buffer it
 * claims. Then the edges: a header split across chunks, a frame exactly
 * filling a chunk, ticks, the max_frame_bytes boundary, RAW -> U32 with
 * leftovers (in the same chunk, staged, switched outside an event), back
 * to RAW, RAW overflow, allocation failures, halting from a handler. The
 * allocator counts live buffers: none may be left at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dataplane/uring/deframe.h"
#include "edist/error.h"

/* ---- allocator: counted, can be told to fail ---------------------------- */

typedef struct tbuf {
    size_t cap;
    uint8_t data[];
} tbuf;

typedef struct talloc {
    long live;
    long calls;
    long fail_at;     /* this alloc/grow call (1-based) fails; 0 = none */
    bool failed_grow; /* the failed call was a grow */
} talloc;

static void *t_alloc(void *user, size_t cap, uint8_t **data);
static void *t_grow(void *user, void *buf, size_t cap, uint8_t **data);
static void t_release(void *user, void *buf);
static const edi_deframe_alloc t_alloc_ops = {t_alloc, t_grow, t_release};

/* ---- recorder ------------------------------------------------------------ */

typedef struct rec {
    edi_deframe d;
    talloc al;
    /* the chunk being fed */
    const uint8_t *chunk;
    size_t chunk_len;
    void *chunk_handle;
    /* what came out */
    uint8_t *out;
    size_t out_len, out_cap;
    char trace[8192];
    size_t trace_len;
    size_t frames, ticks, in_place, from_copy, reassembled, raw_msgs;
    size_t errors;
    int err;
    char detail[128];
    size_t max_offered;
    /* behaviour of the consumer */
    long switch_after;  /* RAW messages before switching to U32; <0 never */
    bool never_consume; /* RAW consumer that takes nothing */
    bool back_to_raw;   /* a frame starting with 'R' switches to RAW */
    bool halt_in_raw;   /* RAW handler halts, then reads what it got */
    long halt_after;    /* halt inside the n-th frame event; 0 = never */
    long raw_in_mode;   /* RAW messages since the last switch to RAW */
} rec;

static void *t_alloc(void *user, size_t cap, uint8_t **data)
{
    talloc *a = &((rec *)user)->al;
    assert_true(cap > 0);
    if (++a->calls == a->fail_at)
        return NULL;
    tbuf *b = malloc(sizeof(*b) + cap);
    assert_non_null(b);
    b->cap = cap;
    a->live++;
    *data = b->data;
    return b;
}

static void *t_grow(void *user, void *buf, size_t cap, uint8_t **data)
{
    talloc *a = &((rec *)user)->al;
    tbuf *old = buf;
    assert_true(cap > old->cap);
    if (++a->calls == a->fail_at) {
        a->failed_grow = true;
        return NULL;
    }
    tbuf *b = realloc(old, sizeof(*b) + cap);
    assert_non_null(b);
    b->cap = cap;
    *data = b->data;
    return b;
}

static void t_release(void *user, void *buf)
{
    talloc *a = &((rec *)user)->al;
    assert_true(a->live > 0);
    a->live--;
    free(buf);
}

static void out_put(rec *r, const uint8_t *p, size_t n)
{
    if (r->out_len + n > r->out_cap) {
        size_t cap = r->out_cap ? r->out_cap : 4096;
        while (cap < r->out_len + n)
            cap *= 2;
        r->out = realloc(r->out, cap);
        assert_non_null(r->out);
        r->out_cap = cap;
    }
    if (n > 0)
        memcpy(r->out + r->out_len, p, n);
    r->out_len += n;
}

static void trace(rec *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(r->trace + r->trace_len, sizeof(r->trace) - r->trace_len,
                      fmt, ap);
    va_end(ap);
    assert_true(k > 0 && (size_t)k < sizeof(r->trace) - r->trace_len);
    r->trace_len += (size_t)k;
}

/* data[0..len) must lie inside what the event says it lies in. */
static void check_view(const rec *r, const edi_deframe_event *ev)
{
    if (ev->in_chunk) {
        assert_ptr_equal(ev->buf, r->chunk_handle);
        assert_true(ev->offset <= r->chunk_len);
        assert_true(ev->len <= r->chunk_len - ev->offset);
        assert_ptr_equal(ev->data, r->chunk + ev->offset);
    } else {
        const tbuf *b = ev->buf;
        assert_non_null(b);
        assert_true(ev->offset <= b->cap && ev->len <= b->cap - ev->offset);
        assert_ptr_equal(ev->data, b->data + ev->offset);
    }
}

static size_t on_raw(rec *r, const edi_deframe_event *ev)
{
    if (ev->in_chunk) {
        assert_true(ev->data >= r->chunk &&
                    ev->data + ev->len <= r->chunk + r->chunk_len);
    }
    assert_true(ev->len > 0);
    if (ev->len > r->max_offered)
        r->max_offered = ev->len;
    if (r->halt_in_raw) {
        /* like an owner closing from on_bytes: the bytes stay readable */
        edi_deframe_halt(&r->d);
        unsigned sum = 0;
        for (size_t i = 0; i < ev->len; i++)
            sum += ev->data[i];
        trace(r, "h%u;", sum);
        return 0;
    }
    if (r->never_consume)
        return 0;
    if (r->switch_after >= 0 && r->raw_in_mode >= r->switch_after) {
        edi_deframe_set_mode(&r->d, EDI_DEFRAME_U32);
        return 0;
    }
    /* [u16 big-endian length][payload] messages, one at a time */
    if (ev->len < 2)
        return 0;
    size_t l = ((size_t)ev->data[0] << 8) | ev->data[1];
    if (ev->len < 2 + l)
        return 0;
    out_put(r, ev->data, 2 + l);
    trace(r, "r%zu;", l);
    r->raw_msgs++;
    r->raw_in_mode++;
    if (r->switch_after >= 0 && r->raw_in_mode >= r->switch_after)
        edi_deframe_set_mode(&r->d, EDI_DEFRAME_U32);
    return 2 + l;
}

static size_t on_event(void *user, const edi_deframe_event *ev)
{
    rec *r = user;
    switch (ev->kind) {
    case EDI_DEFRAME_BYTES:
        return on_raw(r, ev);
    case EDI_DEFRAME_TICK:
    case EDI_DEFRAME_FRAME:
    case EDI_DEFRAME_REASSEMBLED: {
        assert_int_equal(edi_deframe_get_mode(&r->d), EDI_DEFRAME_U32);
        if (ev->kind == EDI_DEFRAME_REASSEMBLED) {
            const tbuf *b = ev->buf;
            assert_false(ev->in_chunk);
            assert_true(ev->len > 0 && ev->len <= b->cap);
            assert_ptr_equal(ev->data, b->data);
            r->reassembled++;
        } else {
            check_view(r, ev);
            assert_int_equal(ev->kind == EDI_DEFRAME_TICK, ev->len == 0);
            if (ev->in_chunk)
                r->in_place++;
            else
                r->from_copy++;
        }
        uint8_t hdr[4] = {(uint8_t)(ev->len >> 24), (uint8_t)(ev->len >> 16),
                          (uint8_t)(ev->len >> 8), (uint8_t)ev->len};
        out_put(r, hdr, 4);
        out_put(r, ev->data, ev->len);
        trace(r, "f%zu;", ev->len);
        r->frames++;
        if (ev->len == 0)
            r->ticks++;
        if (r->back_to_raw && ev->len > 0 && ev->data[0] == 'R') {
            edi_deframe_set_mode(&r->d, EDI_DEFRAME_RAW);
            r->raw_in_mode = 0;
        }
        if (r->halt_after > 0 && (long)r->frames == r->halt_after)
            edi_deframe_halt(&r->d);
        if (ev->kind == EDI_DEFRAME_REASSEMBLED)
            t_release(r, ev->buf);
        return 0;
    }
    case EDI_DEFRAME_ERROR:
        assert_true(edi_deframe_halted(&r->d));
        assert_non_null(ev->detail);
        r->errors++;
        r->err = ev->err;
        snprintf(r->detail, sizeof(r->detail), "%s", ev->detail);
        trace(r, "E%d;", ev->err);
        return 0;
    }
    fail_msg("unknown event kind %d", (int)ev->kind);
    return 0;
}

static rec *rec_new(uint64_t max_frame_bytes, size_t raw_max_bytes,
                    edi_deframe_mode mode)
{
    rec *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->switch_after = -1;
    edi_deframe_config cfg = {
        .max_frame_bytes = max_frame_bytes,
        .raw_max_bytes = raw_max_bytes,
        .alloc = &t_alloc_ops,
        .on_event = on_event,
        .user = r,
    };
    edi_deframe_init(&r->d, &cfg);
    edi_deframe_set_mode(&r->d, mode);
    return r;
}

/* Feeds p[0..n) from a copy of exactly n bytes, so an overread is caught
 * by ASan and views are checked against that chunk. */
static void feed(rec *r, const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    assert_non_null(c);
    if (n > 0)
        memcpy(c, p, n);
    r->chunk = c;
    r->chunk_len = n;
    r->chunk_handle = c;
    edi_deframe_feed(&r->d, c, c, n);
    r->chunk = NULL;
    r->chunk_len = 0;
    free(c);
}

static void rec_free(rec *r)
{
    edi_deframe_fini(&r->d);
    assert_int_equal(r->al.live, 0);
    free(r->out);
    free(r);
}

/* The rebuilt stream is the stream, up to what is still pending. */
static void check_consistent(const rec *r, const uint8_t *s, size_t n)
{
    assert_true(r->out_len <= n);
    assert_memory_equal(r->out, s, r->out_len);
    if (r->errors == 0)
        assert_int_equal(r->out_len + edi_deframe_pending_bytes(&r->d), n);
}

/* ---- streams ------------------------------------------------------------- */

typedef struct stream {
    uint8_t b[1 << 18];
    size_t n;
} stream;

static void put_raw_msg(stream *s, const char *txt)
{
    size_t l = strlen(txt);
    s->b[s->n++] = (uint8_t)(l >> 8);
    s->b[s->n++] = (uint8_t)l;
    memcpy(s->b + s->n, txt, l);
    s->n += l;
}

static void put_frame(stream *s, size_t len, uint8_t first)
{
    assert_true(s->n + 4 + len <= sizeof(s->b));
    s->b[s->n++] = (uint8_t)(len >> 24);
    s->b[s->n++] = (uint8_t)(len >> 16);
    s->b[s->n++] = (uint8_t)(len >> 8);
    s->b[s->n++] = (uint8_t)len;
    for (size_t i = 0; i < len; i++)
        s->b[s->n + i] = (uint8_t)(i == 0 ? first : (i * 31u + len) & 0xff);
    s->n += len;
}

/* Two RAW messages, the switch, then frames of assorted sizes and ticks. */
static void mixed_stream(stream *s)
{
    s->n = 0;
    put_raw_msg(s, "abc");
    put_raw_msg(s, "defg");
    const size_t sizes[] = {5, 0, 1, 0, 0, 17, 300, 2, 0, 64};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        put_frame(s, sizes[i], 'x');
}

typedef struct result {
    char trace[8192];
    uint8_t out[1 << 18];
    size_t out_len;
} result;

/* Feeds s cut at the given points (ascending, inside (0, n)). */
static rec *run_cuts(const stream *s, const size_t *cuts, size_t ncuts,
                     long switch_after)
{
    rec *r = rec_new(1u << 20, 1024, EDI_DEFRAME_RAW);
    r->switch_after = switch_after;
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : s->n;
        feed(r, s->b + at, end - at);
        check_consistent(r, s->b, end);
        at = end;
    }
    return r;
}

static void capture(const rec *r, result *res)
{
    snprintf(res->trace, sizeof(res->trace), "%s", r->trace);
    assert_true(r->out_len <= sizeof(res->out));
    memcpy(res->out, r->out, r->out_len);
    res->out_len = r->out_len;
}

static void assert_same(const rec *r, const result *ref)
{
    assert_string_equal(r->trace, ref->trace);
    assert_int_equal(r->out_len, ref->out_len);
    assert_memory_equal(r->out, ref->out, ref->out_len);
    assert_int_equal(r->errors, 0);
    assert_int_equal(edi_deframe_pending_bytes(&r->d), 0);
}

/* ---- tests -----------------------------------------------------------------
 */

/* One chunk, every single cut and every pair of cuts: same trace. */
static void test_deframe_every_split(void **state)
{
    (void)state;
    static stream s;
    mixed_stream(&s);
    static result ref;
    rec *r = run_cuts(&s, NULL, 0, 2);
    assert_string_equal(r->trace, "r3;r4;f5;f0;f1;f0;f0;f17;f300;f2;f0;f64;");
    assert_int_equal(r->out_len, s.n);
    assert_int_equal(r->reassembled, 0); /* one chunk: all views */
    capture(r, &ref);
    rec_free(r);
    for (size_t i = 1; i < s.n; i++) {
        r = run_cuts(&s, &i, 1, 2);
        assert_same(r, &ref);
        rec_free(r);
    }
    /* pairs of cuts over the first 80 bytes (RAW part, switch, headers) */
    for (size_t i = 1; i < 80; i++) {
        for (size_t j = i + 1; j < 81; j++) {
            size_t cuts[2] = {i, j};
            r = run_cuts(&s, cuts, 2, 2);
            assert_same(r, &ref);
            rec_free(r);
        }
    }
}

/* 1-byte chunks: everything goes through staging or reassembly. */
static void test_deframe_one_byte_chunks(void **state)
{
    (void)state;
    static stream s;
    mixed_stream(&s);
    static result ref;
    rec *r = run_cuts(&s, NULL, 0, 2);
    capture(r, &ref);
    rec_free(r);
    size_t *cuts = malloc(s.n * sizeof(*cuts));
    assert_non_null(cuts);
    for (size_t i = 1; i < s.n; i++)
        cuts[i - 1] = i;
    r = run_cuts(&s, cuts, s.n - 1, 2);
    assert_same(r, &ref);
    /* ticks are views at a chunk's end, 1-byte frames and longer are
     * reassembled; the RAW messages were consumed from the staging area */
    assert_int_equal(r->ticks, 4);
    assert_int_equal(r->reassembled, 6);
    assert_int_equal(r->raw_msgs, 2);
    free(cuts);
    rec_free(r);
}

static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Random chunkings of a longer stream with frames larger than chunks. */
static void test_deframe_random_chunkings(void **state)
{
    (void)state;
    static stream s;
    s.n = 0;
    put_raw_msg(&s, "hello");
    for (size_t k = 0; k < 60; k++)
        put_frame(&s, (k * 977u) % 3000u, 'y');
    static result ref;
    rec *r = run_cuts(&s, NULL, 0, 1);
    capture(r, &ref);
    assert_int_equal(r->frames, 60);
    rec_free(r);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    size_t *cuts = malloc(s.n * sizeof(*cuts));
    assert_non_null(cuts);
    for (int iter = 0; iter < 300; iter++) {
        size_t maxc = 1 + (size_t)(rng_next(&x) % 5000);
        size_t n = 0, at = 0;
        for (;;) {
            at += 1 + (size_t)(rng_next(&x) % maxc);
            if (at >= s.n)
                break;
            cuts[n++] = at;
        }
        r = run_cuts(&s, cuts, n, 1);
        assert_same(r, &ref);
        rec_free(r);
    }
    free(cuts);
}

/* A header split 1/3, 2/2, 3/1: the payload, whole in the second chunk,
 * is still a view into it (no copy). */
static void test_deframe_header_split(void **state)
{
    (void)state;
    static stream s;
    s.n = 0;
    put_frame(&s, 10, 'a');
    for (size_t cut = 1; cut < 4; cut++) {
        rec *r = rec_new(1000, 64, EDI_DEFRAME_U32);
        feed(r, s.b, cut);
        assert_int_equal(r->frames, 0);
        assert_true(edi_deframe_mid_frame(&r->d));
        assert_int_equal(edi_deframe_pending_bytes(&r->d), cut);
        feed(r, s.b + cut, s.n - cut);
        assert_int_equal(r->frames, 1);
        assert_int_equal(r->in_place, 1);
        assert_int_equal(r->reassembled, 0);
        assert_false(edi_deframe_mid_frame(&r->d));
        check_consistent(r, s.b, s.n);
        assert_int_equal(r->out_len, s.n);
        rec_free(r);
    }
    /* split header then a payload split too: reassembled */
    rec *r = rec_new(1000, 64, EDI_DEFRAME_U32);
    feed(r, s.b, 2);
    feed(r, s.b + 2, 5);
    assert_int_equal(edi_deframe_pending_bytes(&r->d), 7);
    feed(r, s.b + 7, s.n - 7);
    assert_int_equal(r->reassembled, 1);
    check_consistent(r, s.b, s.n);
    rec_free(r);
}

/* A frame exactly filling a chunk, twice, then one ending one byte late. */
static void test_deframe_frame_fills_chunk(void **state)
{
    (void)state;
    static stream s;
    s.n = 0;
    put_frame(&s, 60, 'p');
    put_frame(&s, 60, 'q');
    put_frame(&s, 60, 'r');
    rec *r = rec_new(1000, 64, EDI_DEFRAME_U32);
    feed(r, s.b, 64);
    assert_int_equal(r->in_place, 1);
    assert_int_equal(edi_deframe_pending_bytes(&r->d), 0);
    assert_false(edi_deframe_mid_frame(&r->d));
    feed(r, s.b + 64, 64);
    assert_int_equal(r->in_place, 2);
    feed(r, s.b + 128, 63);
    assert_int_equal(r->frames, 2);
    assert_int_equal(edi_deframe_pending_bytes(&r->d), 63);
    feed(r, s.b + 191, 1);
    assert_int_equal(r->frames, 3);
    assert_int_equal(r->reassembled, 1);
    check_consistent(r, s.b, s.n);
    assert_int_equal(r->out_len, s.n);
    rec_free(r);
}

/* Ticks: alone, in runs, at a chunk's end, with a split header. */
static void test_deframe_zero_length(void **state)
{
    (void)state;
    static stream s;
    s.n = 0;
    for (int i = 0; i < 5; i++)
        put_frame(&s, 0, 0);
    put_frame(&s, 3, 'z');
    put_frame(&s, 0, 0);
    rec *r = rec_new(1000, 64, EDI_DEFRAME_U32);
    feed(r, s.b, 20); /* 5 ticks */
    assert_int_equal(r->ticks, 5);
    assert_int_equal(r->in_place, 5);
    feed(r, s.b + 20, 7); /* the 3-byte frame */
    feed(r, s.b + 27, 2); /* half a tick header */
    assert_int_equal(r->frames, 6);
    assert_true(edi_deframe_mid_frame(&r->d));
    feed(r, s.b + 29, 2);
    assert_int_equal(r->ticks, 6);
    assert_string_equal(r->trace, "f0;f0;f0;f0;f0;f3;f0;");
    check_consistent(r, s.b, s.n);
    assert_int_equal(r->out_len, s.n);
    /* an empty chunk changes nothing */
    feed(r, s.b, 0);
    assert_int_equal(r->frames, 7);
    rec_free(r);
}

/* max_frame_bytes itself is fine, in place and reassembled; one more is
 * EDIST_ENOMEM (a limit), also with its header split; then nothing more
 * comes. */
static void test_deframe_max_boundary(void **state)
{
    (void)state;
    static stream s;
    s.n = 0;
    put_frame(&s, 100, 'm');
    rec *r = rec_new(100, 64, EDI_DEFRAME_U32);
    feed(r, s.b, s.n);
    feed(r, s.b, 50);
    feed(r, s.b + 50, s.n - 50);
    assert_int_equal(r->frames, 2);
    assert_int_equal(r->in_place, 1);
    assert_int_equal(r->reassembled, 1);
    assert_int_equal(r->errors, 0);
    rec_free(r);

    s.n = 0;
    put_frame(&s, 101, 'm');
    for (size_t cut = 0; cut < 4; cut++) {
        r = rec_new(100, 64, EDI_DEFRAME_U32);
        if (cut > 0)
            feed(r, s.b, cut);
        assert_int_equal(r->errors, 0);
        feed(r, s.b + cut, s.n - cut);
        assert_int_equal(r->errors, 1);
        assert_int_equal(r->err, EDIST_ENOMEM);
        assert_non_null(strstr(r->detail, "101"));
        assert_non_null(strstr(r->detail, "100"));
        assert_int_equal(r->frames, 0);
        assert_true(edi_deframe_halted(&r->d));
        assert_int_equal(edi_deframe_pending_bytes(&r->d), 0);
        /* halted: a good frame afterwards is ignored */
        static stream g;
        g.n = 0;
        put_frame(&g, 1, 'g');
        feed(r, g.b, g.n);
        assert_int_equal(r->frames, 0);
        assert_int_equal(r->errors, 1);
        rec_free(r);
    }

    /* 4 GiB - 1 announced with the largest limit the loop accepts */
    r = rec_new(UINT32_MAX - 1, 64, EDI_DEFRAME_U32);
    const uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
    feed(r, huge, 4);
    assert_int_equal(r->err, EDIST_ENOMEM);
    rec_free(r);
}

/* RAW -> U32 with leftovers: in the same chunk the frames after the
 * switch are views into it; when the consumer needed more bytes first,
 * the staged ones are framed from a copy, the rest of the chunk in place. */
static void test_deframe_raw_switch_leftovers(void **state)
{
    (void)state;
    static stream s;
    s.n = 0;
    put_raw_msg(&s, "abc");  /* 5 bytes */
    put_raw_msg(&s, "defg"); /* 6 bytes: ends at 11 */
    put_frame(&s, 5, 'x');   /* 11..20 */
    put_frame(&s, 0, 0);     /* 20..24 */
    put_frame(&s, 8, 'y');   /* 24..36 */

    /* one chunk: RAW messages from the chunk, frames in place */
    rec *r = rec_new(1000, 64, EDI_DEFRAME_RAW);
    r->switch_after = 2;
    feed(r, s.b, s.n);
    assert_string_equal(r->trace, "r3;r4;f5;f0;f8;");
    assert_int_equal(r->in_place, 3);
    assert_int_equal(edi_deframe_staged_bytes(&r->d), 0);
    assert_int_equal(edi_deframe_get_mode(&r->d), EDI_DEFRAME_U32);
    rec_free(r);

    /* cut inside the second message: its start is staged; the next chunk
     * is staged up to raw_max_bytes (16) for the consumer, which takes the
     * message and switches: the staged rest (a frame and a byte of the
     * tick's header) is framed from a copy, the chunk's rest in place */
    r = rec_new(1000, 16, EDI_DEFRAME_RAW);
    r->switch_after = 2;
    feed(r, s.b, 8);
    assert_int_equal(r->raw_msgs, 1);
    assert_int_equal(edi_deframe_staged_bytes(&r->d), 3);
    feed(r, s.b + 8, s.n - 8);
    assert_string_equal(r->trace, "r3;r4;f5;f0;f8;");
    assert_int_equal(r->from_copy, 1);
    assert_int_equal(r->in_place, 2);
    assert_int_equal(edi_deframe_staged_bytes(&r->d), 0);
    check_consistent(r, s.b, s.n);
    assert_int_equal(r->out_len, s.n);
    rec_free(r);

    /* the same with room for the whole chunk: all of it is framed from
     * the copy */
    r = rec_new(1000, 64, EDI_DEFRAME_RAW);
    r->switch_after = 2;
    feed(r, s.b, 8);
    feed(r, s.b + 8, s.n - 8);
    assert_string_equal(r->trace, "r3;r4;f5;f0;f8;");
    assert_int_equal(r->from_copy, 3);
    assert_int_equal(r->in_place, 0);
    check_consistent(r, s.b, s.n);
    rec_free(r);

    /* the consumer switches without consuming while bytes are staged: the
     * staged bytes (a frame and a half) are framed from a copy */
    r = rec_new(1000, 64, EDI_DEFRAME_RAW);
    r->switch_after = 2;
    r->never_consume = true;
    feed(r, s.b, 11 + 9 + 2); /* messages, a frame, half a tick header */
    assert_int_equal(edi_deframe_staged_bytes(&r->d), 22);
    assert_true(r->max_offered == 22);
    r->never_consume = false; /* now it takes both messages and switches */
    feed(r, s.b + 22, 4);
    assert_string_equal(r->trace, "r3;r4;f5;f0;");
    assert_int_equal(r->from_copy, 2);
    assert_int_equal(r->in_place, 0);
    feed(r, s.b + 26, s.n - 26);
    assert_string_equal(r->trace, "r3;r4;f5;f0;f8;");
    assert_int_equal(r->in_place, 1);
    check_consistent(r, s.b, s.n);
    assert_int_equal(r->out_len, s.n);
    rec_free(r);

    /* switched outside an event (the owner's set_framing): a feed of 0
     * bytes frames what is staged */
    r = rec_new(1000, 64, EDI_DEFRAME_RAW);
    r->never_consume = true;
    feed(r, s.b + 11, 13); /* a frame and a tick, offered as RAW */
    assert_int_equal(edi_deframe_staged_bytes(&r->d), 13);
    edi_deframe_set_mode(&r->d, EDI_DEFRAME_U32);
    edi_deframe_feed(&r->d, NULL, NULL, 0);
    assert_string_equal(r->trace, "f5;f0;");
    assert_int_equal(r->from_copy, 2);
    assert_int_equal(edi_deframe_staged_bytes(&r->d), 0);
    assert_int_equal(r->al.live, 0); /* the copy is released */
    rec_free(r);

    /* switched twice outside events (to U32 and back) before the kick:
     * the kick offers the staged bytes as RAW again, and the consumer,
     * now switching at once, gets them framed */
    r = rec_new(1000, 64, EDI_DEFRAME_RAW);
    r->never_consume = true;
    feed(r, s.b + 11, 13);
    edi_deframe_set_mode(&r->d, EDI_DEFRAME_U32);
    edi_deframe_set_mode(&r->d, EDI_DEFRAME_RAW);
    r->never_consume = false;
    r->switch_after = 0;
    size_t offered = r->max_offered;
    edi_deframe_feed(&r->d, NULL, NULL, 0);
    assert_int_equal(offered, 13);
    assert_string_equal(r->trace, "f5;f0;");
    assert_int_equal(r->from_copy, 2);
    rec_free(r);
}

/* A frame switches back to RAW: the bytes after it are offered raw, then
 * the consumer switches to U32 again. */
static void test_deframe_back_to_raw(void **state)
{
    (void)state;
    static stream s;
    s.n = 0;
    put_frame(&s, 3, 'R');
    put_raw_msg(&s, "hi");
    put_frame(&s, 4, 'x');
    for (size_t cut = 0; cut < s.n; cut++) {
        rec *r = rec_new(1000, 64, EDI_DEFRAME_U32);
        r->back_to_raw = true;
        r->switch_after = 1;
        if (cut > 0)
            feed(r, s.b, cut);
        feed(r, s.b + cut, s.n - cut);
        assert_string_equal(r->trace, "f3;r2;f4;");
        check_consistent(r, s.b, s.n);
        assert_int_equal(r->out_len, s.n);
        rec_free(r);
    }
}

/* A RAW consumer that never consumes: bounded by raw_max_bytes, then
 * EDIST_EPROTO; it never sees more than raw_max_bytes of staged bytes. */
static void test_deframe_raw_overflow(void **state)
{
    (void)state;
    uint8_t junk[100];
    memset(junk, 'j', sizeof(junk));
    rec *r = rec_new(1000, 16, EDI_DEFRAME_RAW);
    r->never_consume = true;
    feed(r, junk, 10);
    assert_int_equal(r->errors, 0);
    assert_int_equal(edi_deframe_staged_bytes(&r->d), 10);
    feed(r, junk, 6); /* exactly full: still fine */
    assert_int_equal(r->errors, 0);
    assert_int_equal(edi_deframe_staged_bytes(&r->d), 16);
    feed(r, junk, 1);
    assert_int_equal(r->errors, 1);
    assert_int_equal(r->err, EDIST_EPROTO);
    assert_non_null(strstr(r->detail, "raw mode"));
    assert_true(r->max_offered <= 16);
    rec_free(r);

    /* more than raw_max_bytes unconsumed in one chunk */
    r = rec_new(1000, 16, EDI_DEFRAME_RAW);
    r->never_consume = true;
    feed(r, junk, sizeof(junk));
    assert_int_equal(r->err, EDIST_EPROTO);
    assert_int_equal(r->errors, 1);
    rec_free(r);
}

/* Each allocation failing in turn (the copy of staged bytes, a
 * reassembly buffer, its growth past 1 MiB): EDIST_ENOMEM, nothing after
 * the error, no leak. */
static void test_deframe_enomem(void **state)
{
    (void)state;
    const size_t big = 1536u * 1024u;
    const size_t n = 4 + 4 + big + 4 + 2;
    uint8_t *s = malloc(n);
    assert_non_null(s);
    memcpy(s, "\0\2ab", 4); /* a RAW message */
    s[4] = 0;
    s[5] = (uint8_t)(big >> 16);
    s[6] = (uint8_t)(big >> 8);
    s[7] = (uint8_t)big;
    memset(s + 8, 'x', big);
    memcpy(s + 8 + big, "\0\0\0\2yy", 6);
    static const char *const want[] = {
        "staged bytes copy",
        "reassembly",
        "reassembly",
        NULL,
    };
    for (long fail_at = 1; fail_at <= 4; fail_at++) {
        rec *r = rec_new(1u << 24, 64, EDI_DEFRAME_RAW);
        r->al.fail_at = fail_at;
        r->switch_after = 1;
        /* 3 bytes staged; the next chunk completes the message and leaves
         * 60 staged bytes to frame from a copy: the big frame's start */
        feed(r, s, 3);
        for (size_t at = 3; at < n; at += 65536)
            feed(r, s + at, n - at < 65536 ? n - at : 65536);
        const char *w = want[fail_at - 1];
        if (w != NULL) {
            assert_int_equal(r->errors, 1);
            assert_int_equal(r->err, EDIST_ENOMEM);
            assert_non_null(strstr(r->detail, w));
            assert_int_equal(r->al.failed_grow, fail_at == 3);
            assert_true(edi_deframe_halted(&r->d));
            const char *e = strstr(r->trace, "E-1;");
            assert_non_null(e);
            assert_int_equal(strlen(e), 4); /* nothing after the error */
            assert_string_equal(r->trace, "r2;E-1;");
        } else {
            assert_int_equal(r->errors, 0);
            assert_string_equal(r->trace, "r2;f1572864;f2;");
            assert_int_equal(r->reassembled, 1);
            check_consistent(r, s, n);
        }
        rec_free(r);
    }
    free(s);
}

/* A handler halting mid-chunk (the owner closing): no more events, the
 * frame being reassembled is released, the event's view stayed valid. */
static void test_deframe_halt_from_handler(void **state)
{
    (void)state;
    static stream s;
    s.n = 0;
    put_frame(&s, 4, 'a');
    put_frame(&s, 4, 'b');
    put_frame(&s, 500, 'c');
    rec *r = rec_new(1000, 64, EDI_DEFRAME_U32);
    r->halt_after = 1;
    feed(r, s.b, s.n);
    assert_int_equal(r->frames, 1);
    assert_true(edi_deframe_halted(&r->d));
    rec_free(r);

    /* halted from a RAW handler reading staged bytes after the halt (ASan
     * would catch a use after free) */
    r = rec_new(1000, 64, EDI_DEFRAME_RAW);
    r->never_consume = true;
    feed(r, s.b, 5);
    r->halt_in_raw = true;
    feed(r, s.b + 5, 3);
    assert_true(edi_deframe_halted(&r->d));
    assert_non_null(strstr(r->trace, "h"));
    feed(r, s.b + 8, 8);
    assert_int_equal(strlen(r->trace), strlen(strstr(r->trace, "h")));
    rec_free(r);

    /* halted from outside while a frame is half reassembled */
    r = rec_new(1000, 64, EDI_DEFRAME_U32);
    feed(r, s.b, 16 + 100);
    assert_int_equal(r->al.live, 1);
    edi_deframe_halt(&r->d); /* from outside: releases it */
    assert_int_equal(r->al.live, 0);
    edi_deframe_halt(&r->d); /* idempotent */
    rec_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deframe_every_split),
        cmocka_unit_test(test_deframe_one_byte_chunks),
        cmocka_unit_test(test_deframe_random_chunkings),
        cmocka_unit_test(test_deframe_header_split),
        cmocka_unit_test(test_deframe_frame_fills_chunk),
        cmocka_unit_test(test_deframe_zero_length),
        cmocka_unit_test(test_deframe_max_boundary),
        cmocka_unit_test(test_deframe_raw_switch_leftovers),
        cmocka_unit_test(test_deframe_back_to_raw),
        cmocka_unit_test(test_deframe_raw_overflow),
        cmocka_unit_test(test_deframe_enomem),
        cmocka_unit_test(test_deframe_halt_from_handler),
    };
    return cmocka_run_group_tests_name("deframe", tests, NULL, NULL);
}
