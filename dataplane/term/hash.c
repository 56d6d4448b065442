/* SPDX-License-Identifier: Apache-2.0 */
/* Hashing: the byte hash every table uses, and a term hash that agrees with
 * =:= (compare.c), for tables keyed by terms.
 *
 * A term is hashed as the sequence of its canonical parts, fed one by one
 * into a running 64-bit state (each step is edi_hash_bytes seeded with the
 * state): a kind marker, then the values compare.c compares, in the form
 * that makes equal values equal:
 * - integers: sign and magnitude without high zero bytes, whatever the
 *   encoding (a STRING_EXT byte is a small integer);
 * - floats: their bits, with -0.0 taken as 0.0;
 * - atoms (also the node names of pids, ports and refs): UTF-8 text, latin-1
 *   forms converted;
 * - refs: words without the high zero ones;
 * - local funs: module, Index, OldUniq, free variables (not Arity, Uniq,
 *   OldIndex or the creator pid, which =:= ignores);
 * - lists: elements across STRING_EXT and LIST_EXT segments (a LIST_EXT of
 *   0 elements is its tail), then nil or an improper tail;
 * - maps: order-independent: the sum of the hashes of their pairs;
 * - bit strings: bit length, then the bits (unused bits of the last byte
 *   masked off).
 * The walk is iterative (an explicit stack), like compare.c's. */
#include "dataplane/term/hash.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "edist/term.h"
#include "term_internal.h"

/* ---- bytes --------------------------------------------------------------- */

static inline uint64_t hash_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h;
}

uint64_t edi_hash_bytes(const void *p, size_t n, uint64_t seed)
{
    /* Eight bytes per step (node names and keys are hashed on every
     * message: a byte-wise loop was a visible share of the receive path),
     * then a full avalanche so that the low bits (the bucket index) depend
     * on every byte. */
    const uint8_t *b = p;
    uint64_t h = seed ^ (n * UINT64_C(0x9e3779b97f4a7c15));
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        h = (h ^ hash_mix(w)) * UINT64_C(0x9e3779b97f4a7c15);
        b += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, b, n);
        h = (h ^ hash_mix(w)) * UINT64_C(0x9e3779b97f4a7c15);
    }
    return hash_mix(h);
}

/* ---- terms --------------------------------------------------------------- */

static inline uint64_t feed(uint64_t h, uint64_t v)
{
    return edi_hash_bytes(&v, sizeof v, h);
}

/* Kind markers: the term type in the high byte. */
static inline uint64_t mark(edist_type t, uint64_t low)
{
    return ((uint64_t)t << 56) ^ low;
}

enum { MARK_LIST_END = 1, MARK_LIST_TAIL = 2 };

static uint64_t feed_int(uint64_t h, int negative, const uint8_t *mag, size_t n)
{
    while (n > 0 && mag[n - 1] == 0)
        n--;
    h = feed(h, mark(EDIST_TYPE_INTEGER, n > 0 && negative));
    return edi_hash_bytes(mag, n, h);
}

static uint64_t feed_atom(uint64_t h, const edist_atom *a)
{
    const uint8_t *p = (const uint8_t *)a->ptr;
    h = feed(h, mark(EDIST_TYPE_ATOM, 0));
    bool ascii = true;
    for (uint32_t i = 0; a->latin1 && i < a->len && ascii; i++)
        ascii = p[i] < 0x80;
    if (ascii)
        return edi_hash_bytes(p, a->len, h);
    /* latin-1 with bytes >= 0x80: as the UTF-8 of the same code points */
    uint8_t utf8[2 * EDIST_ATOM_MAX_CHARS];
    size_t n = 0;
    for (uint32_t i = 0; i < a->len && n + 2 <= sizeof utf8; i++) {
        if (p[i] < 0x80) {
            utf8[n++] = p[i];
        } else {
            utf8[n++] = (uint8_t)(0xC0 | (p[i] >> 6));
            utf8[n++] = (uint8_t)(0x80 | (p[i] & 0x3F));
        }
    }
    return edi_hash_bytes(utf8, n, h);
}

static uint64_t feed_node(uint64_t h, const edist_atom *node, uint32_t creation)
{
    return feed(feed_atom(h, node), creation);
}

/* One open compound term. */
enum { HF_SEQ, HF_LIST, HF_MAP };

typedef struct hframe {
    uint8_t kind;
    uint64_t left;  /* SEQ: terms; MAP: keys and values not started */
    size_t end;     /* SEQ: where the cursor must be when done (SIZE_MAX: no check) */
    /* LIST: the segment being read, a STRING_EXT's bytes (which end the
     * list: no tail follows them) or a LIST_EXT's elements */
    bool in_string;
    const uint8_t *str;
    size_t str_left;
    uint32_t elems_left;
    /* MAP: the state before the map, the sum of its pairs' hashes */
    uint64_t saved, sum;
    uint32_t pairs, started;
} hframe;

#define HASH_INLINE_FRAMES 16

typedef struct hwalk {
    edist_cursor c;
    uint64_t h, seed;
    hframe *f;
    size_t n, cap;
    hframe local[HASH_INLINE_FRAMES];
} hwalk;

static hframe *push(hwalk *w, int *rc)
{
    if (w->n >= EDIST_DEFAULT_MAX_DEPTH) {
        *rc = edist_set_error(EDIST_EDEPTH, "hash: nesting deeper than %u",
                              EDIST_DEFAULT_MAX_DEPTH);
        return NULL;
    }
    if (w->n == w->cap) {
        size_t cap = w->cap * 2;
        hframe *f = malloc(cap * sizeof *f);
        if (!f) {
            *rc = EDIST_ENOMEM;
            return NULL;
        }
        memcpy(f, w->f, w->n * sizeof *f);
        if (w->f != w->local)
            free(w->f);
        w->f = f;
        w->cap = cap;
    }
    hframe *f = &w->f[w->n++];
    memset(f, 0, sizeof *f);
    return f;
}

/* The term at the cursor: scalars are fed at once; a compound term feeds
 * its header and pushes a frame for its contents. */
static int term_start(hwalk *w)
{
    edist_term_info info;
    int rc;
    for (;;) { /* a LIST_EXT of 0 elements is its tail */
        if ((rc = edist_peek(&w->c, &info)) < 0)
            return rc;
        if (info.tag != EDIST_TAG_LIST || info.count != 0)
            break;
        uint32_t n;
        if ((rc = edist_dec_list(&w->c, &n)) < 0)
            return rc;
    }
    if (info.tag == EDIST_TAG_STRING && info.count == 0)
        info.type = EDIST_TYPE_NIL;
    switch (info.type) {
    case EDIST_TYPE_INTEGER: {
        int negative;
        const uint8_t *mag;
        size_t n;
        uint8_t tmp[8];
        if ((rc = edist_dec_integer(&w->c, &negative, &mag, &n, tmp)) < 0)
            return rc;
        w->h = feed_int(w->h, negative, mag, n);
        return 0;
    }
    case EDIST_TYPE_FLOAT: {
        double x;
        if ((rc = edist_dec_double(&w->c, &x)) < 0)
            return rc;
        if (x == 0)
            x = 0.0; /* -0.0 =:= 0.0 (OTP 25) */
        uint64_t bits;
        memcpy(&bits, &x, sizeof bits);
        w->h = feed(feed(w->h, mark(EDIST_TYPE_FLOAT, 0)), bits);
        return 0;
    }
    case EDIST_TYPE_ATOM: {
        edist_atom a;
        if ((rc = edist_dec_atom(&w->c, &a)) < 0)
            return rc;
        w->h = feed_atom(w->h, &a);
        return 0;
    }
    case EDIST_TYPE_REF: {
        edist_ref r;
        if ((rc = edist_dec_ref(&w->c, &r)) < 0)
            return rc;
        uint32_t n = r.len <= EDIST_REF_MAX_WORDS ? r.len : EDIST_REF_MAX_WORDS;
        while (n > 0 && r.ids[n - 1] == 0)
            n--;
        uint64_t h = feed_node(feed(w->h, mark(EDIST_TYPE_REF, n)), &r.node, r.creation);
        w->h = edi_hash_bytes(r.ids, n * sizeof r.ids[0], h);
        return 0;
    }
    case EDIST_TYPE_PORT: {
        edist_port p;
        if ((rc = edist_dec_port(&w->c, &p)) < 0)
            return rc;
        w->h = feed(feed_node(feed(w->h, mark(EDIST_TYPE_PORT, 0)), &p.node, p.creation), p.id);
        return 0;
    }
    case EDIST_TYPE_PID: {
        edist_pid p;
        if ((rc = edist_dec_pid(&w->c, &p)) < 0)
            return rc;
        uint64_t h = feed_node(feed(w->h, mark(EDIST_TYPE_PID, 0)), &p.node, p.creation);
        w->h = feed(h, ((uint64_t)p.serial << 32) | p.id);
        return 0;
    }
    case EDIST_TYPE_FUN: {
        if (info.tag == EDIST_TAG_EXPORT) {
            edist_export e;
            if ((rc = edist_dec_export(&w->c, &e)) < 0)
                return rc;
            uint64_t h = feed_atom(feed(w->h, mark(EDIST_TYPE_FUN, 1)), &e.module);
            w->h = feed(feed_atom(h, &e.function), e.arity);
            return 0;
        }
        edist_fun f;
        size_t start = w->c.pos, at;
        if ((rc = edist_dec_fun(&w->c, &f)) < 0 || (rc = edi_fun_free_vars_at(&f, &at)) < 0)
            return rc;
        uint64_t h = feed_atom(feed(w->h, mark(EDIST_TYPE_FUN, 0)), &f.module);
        h = feed(h, ((uint64_t)f.index << 32) | f.num_free);
        w->h = feed(h, (uint64_t)f.old_uniq);
        if (f.num_free == 0)
            return 0;
        hframe *fr = push(w, &rc);
        if (!fr)
            return rc;
        fr->kind = HF_SEQ;
        fr->left = f.num_free;
        fr->end = w->c.pos; /* the free variables end the fun */
        w->c.pos = start + at;
        return 0;
    }
    case EDIST_TYPE_TUPLE: {
        uint32_t n;
        if ((rc = edist_dec_tuple(&w->c, &n)) < 0)
            return rc;
        w->h = feed(w->h, mark(EDIST_TYPE_TUPLE, n));
        if (n == 0)
            return 0;
        hframe *fr = push(w, &rc);
        if (!fr)
            return rc;
        fr->kind = HF_SEQ;
        fr->left = n;
        fr->end = SIZE_MAX;
        return 0;
    }
    case EDIST_TYPE_MAP: {
        uint32_t n;
        if ((rc = edist_dec_map(&w->c, &n)) < 0)
            return rc;
        if (n == 0) {
            w->h = feed(w->h, mark(EDIST_TYPE_MAP, 0));
            return 0;
        }
        hframe *fr = push(w, &rc);
        if (!fr)
            return rc;
        fr->kind = HF_MAP;
        fr->left = 2 * (uint64_t)n;
        fr->pairs = n;
        fr->saved = w->h;
        return 0;
    }
    case EDIST_TYPE_NIL: {
        const uint8_t *p;
        size_t n;
        if ((rc = edist_dec_string(&w->c, &p, &n)) < 0) /* NIL or "" */
            return rc;
        w->h = feed(w->h, mark(EDIST_TYPE_NIL, 0));
        return 0;
    }
    case EDIST_TYPE_LIST: {
        hframe *fr = push(w, &rc);
        if (!fr)
            return rc;
        fr->kind = HF_LIST;
        fr->in_string = info.tag == EDIST_TAG_STRING;
        if (fr->in_string)
            rc = edist_dec_string(&w->c, &fr->str, &fr->str_left);
        else
            rc = edist_dec_list(&w->c, &fr->elems_left);
        w->h = feed(w->h, mark(EDIST_TYPE_LIST, 0));
        return rc;
    }
    case EDIST_TYPE_BINARY: {
        const uint8_t *p;
        size_t n;
        unsigned last_bits;
        if ((rc = edist_dec_bitstring(&w->c, &p, &n, &last_bits)) < 0)
            return rc;
        uint64_t bits = n == 0 ? 0 : ((uint64_t)n - 1) * 8 + last_bits;
        uint64_t h = feed(w->h, mark(EDIST_TYPE_BINARY, 0));
        h = edi_hash_bytes(p, (size_t)(bits / 8), feed(h, bits));
        if (bits % 8)
            h = feed(h, p[bits / 8] & (uint8_t)(0xFFu << (8 - bits % 8)));
        w->h = h;
        return 0;
    }
    }
    return edist_set_error(EDIST_EBADTAG, "hash: unknown term at offset %zu", w->c.pos);
}

/* One step of the list on top: the next element, the next segment, or the
 * end (nil, or an improper tail, which is hashed after the frame goes). */
static int list_step(hwalk *w)
{
    hframe *f = &w->f[w->n - 1];
    if (f->in_string) {
        if (f->str_left > 0) {
            f->str_left--;
            w->h = feed_int(w->h, 0, f->str++, 1);
        } else {
            w->h = feed(w->h, MARK_LIST_END);
            w->n--;
        }
        return 0;
    }
    if (f->elems_left > 0) {
        f->elems_left--;
        return term_start(w);
    }
    edist_term_info info;
    int rc = edist_peek(&w->c, &info);
    if (rc < 0)
        return rc;
    if (info.tag == EDIST_TAG_LIST) /* the list goes on (or a 0 header: its tail) */
        return edist_dec_list(&w->c, &f->elems_left);
    if (info.tag == EDIST_TAG_STRING && info.count > 0) {
        f->in_string = true;
        return edist_dec_string(&w->c, &f->str, &f->str_left);
    }
    w->n--;
    if (info.tag == EDIST_TAG_NIL || info.tag == EDIST_TAG_STRING) {
        const uint8_t *p;
        size_t n;
        w->h = feed(w->h, MARK_LIST_END);
        return edist_dec_string(&w->c, &p, &n);
    }
    w->h = feed(w->h, MARK_LIST_TAIL);
    return term_start(w);
}

/* One step of the map on top: a pair just finished is added to the sum
 * (each pair hashed from the same start, so the order of pairs does not
 * matter); then the next key or value, or the end. */
static int map_step(hwalk *w)
{
    hframe *f = &w->f[w->n - 1];
    if (f->started > 0 && f->started % 2 == 0)
        f->sum += w->h;
    if (f->left == 0) {
        w->h = feed(feed(f->saved, mark(EDIST_TYPE_MAP, f->pairs)), f->sum);
        w->n--;
        return 0;
    }
    if (f->started % 2 == 0)
        w->h = w->seed ^ UINT64_C(0x6d61702070616972); /* a pair's start */
    f->left--;
    f->started++;
    return term_start(w);
}

int edist_term_hash(const void *term, size_t len, uint64_t seed, uint64_t *hash)
{
    if (!hash || (!term && len > 0))
        return EDIST_EINVAL;
    edist_buf scratch;
    edist_buf_init(&scratch);
    hwalk w;
    w.h = w.seed = seed;
    w.f = w.local;
    w.n = 0;
    w.cap = HASH_INLINE_FRAMES;
    int rc = edi_term_open(term, len, &scratch, &w.c);
    if (rc == 0)
        rc = term_start(&w);
    while (rc == 0 && w.n > 0) {
        hframe *f = &w.f[w.n - 1];
        switch (f->kind) {
        case HF_SEQ:
            if (f->left == 0) {
                if (f->end != SIZE_MAX && w.c.pos != f->end)
                    rc = edist_set_error(EDIST_EBADTERM,
                                         "hash: fun size does not match its contents");
                w.n--;
            } else {
                f->left--;
                rc = term_start(&w);
            }
            break;
        case HF_LIST:
            rc = list_step(&w);
            break;
        default:
            rc = map_step(&w);
            break;
        }
    }
    if (w.f != w.local)
        free(w.f);
    edist_buf_free(&scratch);
    if (rc == 0)
        *hash = w.h;
    return rc;
}
