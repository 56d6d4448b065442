/* SPDX-License-Identifier: Apache-2.0 */
/* Zero-copy decoder cursor. Every reader checks a length field against the
 * bytes that remain before using it, and leaves the cursor where it was on
 * failure. Getters take a one-branch fast path for the canonical form and
 * fall back to a general reader for the rest. */
#include <locale.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "edist/term.h"
#include "term_internal.h"

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Where and why a read failed; turned into err_offset and the thread's error
 * detail only by the public entry point, so inner readers stay cheap. */
typedef struct dec_err {
    size_t off;
    const char *what;
} dec_err;

static int bad(dec_err *e, int err, size_t off, const char *what)
{
    e->off = off;
    e->what = what;
    return err;
}

static __attribute__((noinline, cold)) int report(edist_cursor *c, int err,
                                                  const dec_err *e)
{
    c->err_offset = e->off;
    return edist_set_error(err, "decode: %s at offset %zu", e->what, e->off);
}

/* Term kind of each tag byte; 0 for bytes that are not a term tag we read. */
static const uint8_t tag_type[256] = {
    [EDIST_TAG_NEW_FLOAT] = EDIST_TYPE_FLOAT,
    [EDIST_TAG_BIT_BINARY] = EDIST_TYPE_BINARY,
    [EDIST_TAG_NEW_PID] = EDIST_TYPE_PID,
    [EDIST_TAG_NEW_PORT] = EDIST_TYPE_PORT,
    [EDIST_TAG_NEWER_REFERENCE] = EDIST_TYPE_REF,
    [EDIST_TAG_SMALL_INTEGER] = EDIST_TYPE_INTEGER,
    [EDIST_TAG_INTEGER] = EDIST_TYPE_INTEGER,
    [EDIST_TAG_FLOAT] = EDIST_TYPE_FLOAT,
    [EDIST_TAG_ATOM] = EDIST_TYPE_ATOM,
    [EDIST_TAG_REFERENCE] = EDIST_TYPE_REF,
    [EDIST_TAG_PORT] = EDIST_TYPE_PORT,
    [EDIST_TAG_PID] = EDIST_TYPE_PID,
    [EDIST_TAG_SMALL_TUPLE] = EDIST_TYPE_TUPLE,
    [EDIST_TAG_LARGE_TUPLE] = EDIST_TYPE_TUPLE,
    [EDIST_TAG_NIL] = EDIST_TYPE_NIL,
    [EDIST_TAG_STRING] = EDIST_TYPE_LIST,
    [EDIST_TAG_LIST] = EDIST_TYPE_LIST,
    [EDIST_TAG_BINARY] = EDIST_TYPE_BINARY,
    [EDIST_TAG_SMALL_BIG] = EDIST_TYPE_INTEGER,
    [EDIST_TAG_LARGE_BIG] = EDIST_TYPE_INTEGER,
    [EDIST_TAG_NEW_FUN] = EDIST_TYPE_FUN,
    [EDIST_TAG_EXPORT] = EDIST_TYPE_FUN,
    [EDIST_TAG_NEW_REFERENCE] = EDIST_TYPE_REF,
    [EDIST_TAG_SMALL_ATOM] = EDIST_TYPE_ATOM,
    [EDIST_TAG_MAP] = EDIST_TYPE_MAP,
    [EDIST_TAG_ATOM_UTF8] = EDIST_TYPE_ATOM,
    [EDIST_TAG_SMALL_ATOM_UTF8] = EDIST_TYPE_ATOM,
    [EDIST_TAG_V4_PORT] = EDIST_TYPE_PORT,
};

/* The error for "the term at p is not what was asked for". */
static int wrong_tag(const uint8_t *d, size_t len, size_t p, dec_err *e)
{
    if (p >= len)
        return bad(e, EDIST_ETRUNC, p, "input ends before a term");
    uint8_t t = d[p];
    if (t == EDIST_TAG_ATOM_CACHE_REF)
        return bad(e, EDIST_EUNSUPPORTED, p, "atom cache reference");
    if (t == EDIST_TAG_FUN)
        return bad(e, EDIST_EUNSUPPORTED, p, "old FUN_EXT");
    if (tag_type[t])
        return bad(e, EDIST_ETYPE, p, "term of another type");
    return bad(e, EDIST_EBADTAG, p, "unknown tag");
}

/* Is [p, p+n) inside the input? Written so that nothing overflows. */
static inline int have(size_t len, size_t p, uint64_t n)
{
    return p <= len && n <= (uint64_t)(len - p);
}

/* BIT_BINARY_EXT's bits-in-the-last-byte field: 1..8 when there are bytes;
 * 0 bytes with 0 bits is the empty bit string, as erts's binary_to_term
 * accepts (it never writes it). */
static inline int bit_count_ok(uint32_t nbytes, uint8_t bits)
{
    return nbytes ? bits >= 1 && bits <= 8 : bits == 0;
}

/* ---- leaf readers: read at *pp, advance *pp only on success ------------ */

static int rd_atom(const uint8_t *d, size_t len, size_t *pp, edist_atom *a,
                   dec_err *e)
{
    size_t p = *pp;
    if (!have(len, p, 2))
        return p < len ? bad(e, EDIST_ETRUNC, p, "truncated atom")
                       : wrong_tag(d, len, p, e);
    size_t hdr;
    uint32_t n;
    int latin1;
    switch (d[p]) {
    case EDIST_TAG_SMALL_ATOM_UTF8: hdr = 2; n = d[p + 1]; latin1 = 0; break;
    case EDIST_TAG_SMALL_ATOM: hdr = 2; n = d[p + 1]; latin1 = 1; break;
    case EDIST_TAG_ATOM_UTF8:
    case EDIST_TAG_ATOM:
        if (!have(len, p, 3))
            return bad(e, EDIST_ETRUNC, p, "truncated atom");
        hdr = 3;
        n = edi_get_be16(d + p + 1);
        latin1 = d[p] == EDIST_TAG_ATOM;
        break;
    default:
        return wrong_tag(d, len, p, e);
    }
    if (!have(len, p + hdr, n))
        return bad(e, EDIST_ETRUNC, p, "truncated atom");
    const uint8_t *s = d + p + hdr;
    if (latin1) {
        if (n > EDIST_ATOM_MAX_CHARS)
            return bad(e, EDIST_EBADTERM, p, "atom longer than 255 characters");
    } else {
        if (n > EDIST_ATOM_MAX_BYTES)
            return bad(e, EDIST_EBADTERM, p, "atom longer than 255 characters");
        long chars = edi_utf8_count(s, n);
        if (chars < 0)
            return bad(e, EDIST_EBADTERM, p + hdr, "atom is not valid UTF-8");
        if (chars > EDIST_ATOM_MAX_CHARS)
            return bad(e, EDIST_EBADTERM, p, "atom longer than 255 characters");
    }
    a->ptr = (const char *)s;
    a->len = n;
    a->latin1 = (uint8_t)latin1;
    *pp = p + hdr + n;
    return 0;
}

/* Any integer encoding. Small forms give *small and *mag = NULL; bignums give
 * a view of the little-endian magnitude (possibly with high zero bytes). */
static int rd_integer(const uint8_t *d, size_t len, size_t *pp, int *negative,
                      const uint8_t **mag, size_t *n, uint64_t *small,
                      dec_err *e)
{
    size_t p = *pp;
    if (p >= len)
        return wrong_tag(d, len, p, e);
    switch (d[p]) {
    case EDIST_TAG_SMALL_INTEGER:
        if (!have(len, p, 2))
            return bad(e, EDIST_ETRUNC, p, "truncated integer");
        *negative = 0;
        *small = d[p + 1];
        *mag = NULL;
        *n = 0;
        *pp = p + 2;
        return 0;
    case EDIST_TAG_INTEGER: {
        if (!have(len, p, 5))
            return bad(e, EDIST_ETRUNC, p, "truncated integer");
        uint32_t u = edi_get_be32(d + p + 1);
        *negative = (u >> 31) != 0;
        /* |int32| computed unsigned: two's complement negation. */
        *small = *negative ? (uint64_t)(0u - u) : u;
        *mag = NULL;
        *n = 0;
        *pp = p + 5;
        return 0;
    }
    case EDIST_TAG_SMALL_BIG:
    case EDIST_TAG_LARGE_BIG: {
        size_t hdr = d[p] == EDIST_TAG_SMALL_BIG ? 3 : 6;
        if (!have(len, p, hdr))
            return bad(e, EDIST_ETRUNC, p, "truncated bignum");
        uint64_t cnt = hdr == 3 ? d[p + 1] : edi_get_be32(d + p + 1);
        if (!have(len, p + hdr, cnt))
            return bad(e, EDIST_ETRUNC, p, "truncated bignum");
        /* erts reads any non-zero sign byte as negative. */
        *negative = d[p + hdr - 1] != 0;
        *mag = d + p + hdr;
        *n = (size_t)cnt;
        *small = 0;
        *pp = p + hdr + (size_t)cnt;
        return 0;
    }
    default:
        return wrong_tag(d, len, p, e);
    }
}

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale;

static void c_locale_init(void)
{
    c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

/* The 31-byte "%.20e" text of FLOAT_EXT, read as C's sscanf("%lf") would but
 * independent of the process locale. */
static int parse_old_float(const uint8_t *text, double *v)
{
    char buf[32];
    memcpy(buf, text, 31);
    buf[31] = 0;
    pthread_once(&c_locale_once, c_locale_init);
    char *end;
    double f = c_locale ? strtod_l(buf, &end, c_locale) : strtod(buf, &end);
    if (end == buf)
        return -1;
    uint64_t bits;
    memcpy(&bits, &f, sizeof bits);
    if (((bits >> 52) & 0x7FF) == 0x7FF)
        return -1;
    *v = f;
    return 0;
}

static int rd_double(const uint8_t *d, size_t len, size_t *pp, double *v,
                     dec_err *e)
{
    size_t p = *pp;
    if (p < len && d[p] == EDIST_TAG_NEW_FLOAT) {
        if (!have(len, p, 9))
            return bad(e, EDIST_ETRUNC, p, "truncated float");
        uint64_t bits = edi_get_be64(d + p + 1);
        /* Exponent all ones: inf or NaN, which erts refuses to decode. */
        if (((bits >> 52) & 0x7FF) == 0x7FF)
            return bad(e, EDIST_EBADTERM, p, "float is not finite");
        memcpy(v, &bits, sizeof bits);
        *pp = p + 9;
        return 0;
    }
    if (p < len && d[p] == EDIST_TAG_FLOAT) {
        if (!have(len, p, 32))
            return bad(e, EDIST_ETRUNC, p, "truncated float");
        if (parse_old_float(d + p + 1, v) < 0)
            return bad(e, EDIST_EBADTERM, p, "bad FLOAT_EXT text");
        *pp = p + 32;
        return 0;
    }
    return wrong_tag(d, len, p, e);
}

static int rd_pid(const uint8_t *d, size_t len, size_t *pp, edist_pid *pid,
                  dec_err *e)
{
    size_t p = *pp;
    if (p >= len || (d[p] != EDIST_TAG_NEW_PID && d[p] != EDIST_TAG_PID))
        return wrong_tag(d, len, p, e);
    int newer = d[p] == EDIST_TAG_NEW_PID;
    size_t q = p + 1;
    int rc = rd_atom(d, len, &q, &pid->node, e);
    if (rc < 0)
        return rc;
    if (!have(len, q, newer ? 12 : 9))
        return bad(e, EDIST_ETRUNC, p, "truncated pid");
    pid->id = edi_get_be32(d + q);
    pid->serial = edi_get_be32(d + q + 4);
    pid->creation = newer ? edi_get_be32(d + q + 8) : d[q + 8];
    *pp = q + (newer ? 12 : 9);
    return 0;
}

static int rd_port(const uint8_t *d, size_t len, size_t *pp,
                   edist_port *port, dec_err *e)
{
    size_t p = *pp;
    size_t body;
    if (p >= len)
        return wrong_tag(d, len, p, e);
    switch (d[p]) {
    case EDIST_TAG_V4_PORT: body = 12; break;
    case EDIST_TAG_NEW_PORT: body = 8; break;
    case EDIST_TAG_PORT: body = 5; break;
    default: return wrong_tag(d, len, p, e);
    }
    size_t q = p + 1;
    int rc = rd_atom(d, len, &q, &port->node, e);
    if (rc < 0)
        return rc;
    if (!have(len, q, body))
        return bad(e, EDIST_ETRUNC, p, "truncated port");
    if (body == 12) {
        port->id = edi_get_be64(d + q);
        port->creation = edi_get_be32(d + q + 8);
    } else {
        port->id = edi_get_be32(d + q);
        port->creation = body == 8 ? edi_get_be32(d + q + 4) : d[q + 4];
    }
    *pp = q + body;
    return 0;
}

static int rd_ref(const uint8_t *d, size_t len, size_t *pp, edist_ref *r,
                  dec_err *e)
{
    size_t p = *pp;
    if (p >= len)
        return wrong_tag(d, len, p, e);
    uint8_t tag = d[p];
    if (tag == EDIST_TAG_REFERENCE) {
        size_t q = p + 1;
        int rc = rd_atom(d, len, &q, &r->node, e);
        if (rc < 0)
            return rc;
        if (!have(len, q, 5))
            return bad(e, EDIST_ETRUNC, p, "truncated reference");
        r->len = 1;
        r->ids[0] = edi_get_be32(d + q);
        r->creation = d[q + 4];
        *pp = q + 5;
        return 0;
    }
    if (tag != EDIST_TAG_NEWER_REFERENCE && tag != EDIST_TAG_NEW_REFERENCE)
        return wrong_tag(d, len, p, e);
    if (!have(len, p, 3))
        return bad(e, EDIST_ETRUNC, p, "truncated reference");
    uint32_t words = edi_get_be16(d + p + 1);
    if (words < 1 || words > EDIST_REF_MAX_WORDS)
        return bad(e, EDIST_EBADTERM, p + 1, "reference must have 1..5 words");
    size_t q = p + 3;
    int rc = rd_atom(d, len, &q, &r->node, e);
    if (rc < 0)
        return rc;
    size_t cr = tag == EDIST_TAG_NEWER_REFERENCE ? 4 : 1;
    if (!have(len, q, cr + 4 * (size_t)words))
        return bad(e, EDIST_ETRUNC, p, "truncated reference");
    r->creation = cr == 4 ? edi_get_be32(d + q) : d[q];
    q += cr;
    r->len = words;
    for (uint32_t i = 0; i < words; i++)
        r->ids[i] = edi_get_be32(d + q + 4 * i);
    *pp = q + 4 * (size_t)words;
    return 0;
}

static int rd_export(const uint8_t *d, size_t len, size_t *pp,
                     edist_export *x, dec_err *e)
{
    size_t p = *pp;
    if (p >= len || d[p] != EDIST_TAG_EXPORT)
        return wrong_tag(d, len, p, e);
    size_t q = p + 1;
    int rc = rd_atom(d, len, &q, &x->module, e);
    if (rc < 0)
        return rc;
    rc = rd_atom(d, len, &q, &x->function, e);
    if (rc < 0)
        return rc;
    if (!have(len, q, 2))
        return bad(e, EDIST_ETRUNC, q, "truncated export arity");
    if (d[q] != EDIST_TAG_SMALL_INTEGER)
        return bad(e, EDIST_EBADTERM, q, "export arity is not a small integer");
    x->arity = d[q + 1];
    *pp = q + 2;
    return 0;
}

/* OldIndex / OldUniq of a fun: SMALL_INTEGER_EXT or INTEGER_EXT. */
static int rd_fun_int(const uint8_t *d, size_t len, size_t *pp, int64_t *v,
                      dec_err *e)
{
    size_t p = *pp;
    if (p < len && d[p] == EDIST_TAG_SMALL_INTEGER && have(len, p, 2)) {
        *v = d[p + 1];
        *pp = p + 2;
        return 0;
    }
    if (p < len && d[p] == EDIST_TAG_INTEGER && have(len, p, 5)) {
        *v = (int32_t)edi_get_be32(d + p + 1);
        *pp = p + 5;
        return 0;
    }
    if (p < len && (d[p] == EDIST_TAG_SMALL_INTEGER || d[p] == EDIST_TAG_INTEGER))
        return bad(e, EDIST_ETRUNC, p, "truncated fun");
    return bad(e, p < len ? EDIST_EBADTERM : EDIST_ETRUNC, p,
               "bad fun OldIndex/OldUniq");
}

/* Fixed part of NEW_FUN_EXT up to (not including) the free variables. On
 * success *pp is at the first free variable and *end_out is where the fun's
 * Size says it ends. */
static int rd_fun_head(const uint8_t *d, size_t len, size_t *pp, edist_fun *f,
                       size_t *end_out, dec_err *e)
{
    size_t p = *pp;
    if (p >= len || d[p] != EDIST_TAG_NEW_FUN)
        return wrong_tag(d, len, p, e);
    /* Size, Arity, Uniq, Index, NumFree */
    if (!have(len, p, 1 + 29))
        return bad(e, EDIST_ETRUNC, p, "truncated fun");
    uint32_t size = edi_get_be32(d + p + 1);
    if (size < 29)
        return bad(e, EDIST_EBADTERM, p + 1, "fun size too small");
    if (!have(len, p + 1, size))
        return bad(e, EDIST_ETRUNC, p, "truncated fun");
    size_t end = p + 1 + size;
    f->bytes = d + p;
    f->len = (size_t)size + 1;
    f->arity = d[p + 5];
    memcpy(f->uniq, d + p + 6, 16);
    f->index = edi_get_be32(d + p + 22);
    f->num_free = edi_get_be32(d + p + 26);
    size_t q = p + 30;
    /* Read the fixed fields inside the fun's own bytes only. */
    int rc = rd_atom(d, end, &q, &f->module, e);
    if (rc == 0)
        rc = rd_fun_int(d, end, &q, &f->old_index, e);
    if (rc == 0)
        rc = rd_fun_int(d, end, &q, &f->old_uniq, e);
    edist_pid pid;
    if (rc == 0)
        rc = rd_pid(d, end, &q, &pid, e);
    if (rc < 0)
        return rc == EDIST_ETRUNC ? bad(e, EDIST_EBADTERM, p + 1,
                                        "fun size too small for its fields")
                                  : rc;
    if (f->num_free > end - q)
        return bad(e, EDIST_EBADTERM, p + 26, "fun free variables exceed its size");
    *pp = q;
    *end_out = end;
    return 0;
}

/* ---- whole-term walker -------------------------------------------------
 * Counts terms still to read instead of recursing, so nesting depth costs no
 * stack. Each pending term needs at least one byte, so the count can never
 * usefully exceed the bytes left: a larger count fails at once. A fun must
 * end exactly where its Size says: the (pending count, end) pairs of open
 * funs are kept in a small array, on the heap only for deep fun nesting. */

typedef struct fun_frame {
    uint64_t todo_mark; /* pending count when the fun's free vars are done */
    size_t end;
} fun_frame;

#define FUN_FRAMES_LOCAL 16

typedef struct fun_stack {
    fun_frame *v;
    size_t n, cap;
    fun_frame local[FUN_FRAMES_LOCAL];
} fun_stack;

static int fun_push(fun_stack *s, uint64_t mark, size_t end)
{
    if (s->n == s->cap) {
        size_t cap = s->cap * 2;
        fun_frame *v = malloc(cap * sizeof *v);
        if (!v)
            return EDIST_ENOMEM;
        memcpy(v, s->v, s->n * sizeof *v);
        if (s->v != s->local)
            free(s->v);
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n].todo_mark = mark;
    s->v[s->n].end = end;
    s->n++;
    return 0;
}

/* Read `todo` consecutive terms starting at *pp in d[0..len). */
static int walk(const uint8_t *d, size_t len, size_t *pp, uint64_t todo,
                fun_stack *fs, dec_err *e)
{
    size_t p = *pp;
    for (;;) {
        while (fs->n && todo == fs->v[fs->n - 1].todo_mark) {
            if (p != fs->v[fs->n - 1].end)
                return bad(e, EDIST_EBADTERM, p, "fun size does not match its contents");
            fs->n--;
        }
        if (todo == 0)
            break;
        todo--;
        if (p >= len)
            return bad(e, EDIST_ETRUNC, p, "input ends before a term");
        uint64_t more = 0; /* terms this one contains */
        size_t q = p;
        int rc = 0;
        switch (d[p]) {
        case EDIST_TAG_SMALL_INTEGER:
            if (!have(len, p, 2))
                return bad(e, EDIST_ETRUNC, p, "truncated integer");
            q = p + 2;
            break;
        case EDIST_TAG_INTEGER:
        case EDIST_TAG_SMALL_BIG:
        case EDIST_TAG_LARGE_BIG: {
            int neg;
            const uint8_t *mag;
            size_t n;
            uint64_t small;
            rc = rd_integer(d, len, &q, &neg, &mag, &n, &small, e);
            break;
        }
        case EDIST_TAG_NEW_FLOAT:
        case EDIST_TAG_FLOAT: {
            double v;
            rc = rd_double(d, len, &q, &v, e);
            break;
        }
        case EDIST_TAG_SMALL_ATOM_UTF8:
        case EDIST_TAG_ATOM_UTF8:
        case EDIST_TAG_SMALL_ATOM:
        case EDIST_TAG_ATOM: {
            edist_atom a;
            rc = rd_atom(d, len, &q, &a, e);
            break;
        }
        case EDIST_TAG_SMALL_TUPLE:
            if (!have(len, p, 2))
                return bad(e, EDIST_ETRUNC, p, "truncated tuple");
            more = d[p + 1];
            q = p + 2;
            break;
        case EDIST_TAG_LARGE_TUPLE:
            if (!have(len, p, 5))
                return bad(e, EDIST_ETRUNC, p, "truncated tuple");
            more = edi_get_be32(d + p + 1);
            q = p + 5;
            break;
        case EDIST_TAG_NIL:
            q = p + 1;
            break;
        case EDIST_TAG_STRING:
            if (!have(len, p, 3) || !have(len, p + 3, edi_get_be16(d + p + 1)))
                return bad(e, EDIST_ETRUNC, p, "truncated string");
            q = p + 3 + edi_get_be16(d + p + 1);
            break;
        case EDIST_TAG_LIST:
            if (!have(len, p, 5))
                return bad(e, EDIST_ETRUNC, p, "truncated list");
            more = (uint64_t)edi_get_be32(d + p + 1) + 1; /* and the tail */
            if (more == 1)
                return bad(e, EDIST_EBADTERM, p + 1, "LIST_EXT with 0 elements");
            q = p + 5;
            break;
        case EDIST_TAG_BINARY:
            if (!have(len, p, 5) || !have(len, p + 5, edi_get_be32(d + p + 1)))
                return bad(e, EDIST_ETRUNC, p, "truncated binary");
            q = p + 5 + edi_get_be32(d + p + 1);
            break;
        case EDIST_TAG_BIT_BINARY: {
            if (!have(len, p, 6))
                return bad(e, EDIST_ETRUNC, p, "truncated bit string");
            uint32_t n = edi_get_be32(d + p + 1);
            if (!bit_count_ok(n, d[p + 5]))
                return bad(e, EDIST_EBADTERM, p + 5, "bad bit string bit count");
            if (!have(len, p + 6, n))
                return bad(e, EDIST_ETRUNC, p, "truncated bit string");
            q = p + 6 + n;
            break;
        }
        case EDIST_TAG_MAP:
            if (!have(len, p, 5))
                return bad(e, EDIST_ETRUNC, p, "truncated map");
            more = 2 * (uint64_t)edi_get_be32(d + p + 1);
            q = p + 5;
            break;
        case EDIST_TAG_NEW_PID:
        case EDIST_TAG_PID: {
            edist_pid pid;
            rc = rd_pid(d, len, &q, &pid, e);
            break;
        }
        case EDIST_TAG_V4_PORT:
        case EDIST_TAG_NEW_PORT:
        case EDIST_TAG_PORT: {
            edist_port port;
            rc = rd_port(d, len, &q, &port, e);
            break;
        }
        case EDIST_TAG_NEWER_REFERENCE:
        case EDIST_TAG_NEW_REFERENCE:
        case EDIST_TAG_REFERENCE: {
            edist_ref r;
            rc = rd_ref(d, len, &q, &r, e);
            break;
        }
        case EDIST_TAG_EXPORT: {
            edist_export x;
            rc = rd_export(d, len, &q, &x, e);
            break;
        }
        case EDIST_TAG_NEW_FUN: {
            edist_fun f;
            size_t end;
            rc = rd_fun_head(d, len, &q, &f, &end, e);
            if (rc < 0)
                return rc;
            rc = fun_push(fs, todo, end);
            if (rc < 0)
                return bad(e, rc, p, "out of memory for nested funs");
            more = f.num_free;
            break;
        }
        default:
            return wrong_tag(d, len, p, e);
        }
        if (rc < 0)
            return rc;
        p = q;
        if (more) {
            if (more > len - p)
                return bad(e, EDIST_ETRUNC, q, "element count exceeds the input");
            todo += more;
        }
        if (todo > len - p)
            return bad(e, EDIST_ETRUNC, p, "more terms pending than bytes left");
    }
    *pp = p;
    return 0;
}

static int walk_terms(const uint8_t *d, size_t len, size_t *pp, uint64_t todo,
                      dec_err *e)
{
    fun_stack fs;
    fs.v = fs.local;
    fs.n = 0;
    fs.cap = FUN_FRAMES_LOCAL;
    int rc = walk(d, len, pp, todo, &fs, e);
    if (fs.v != fs.local)
        free(fs.v);
    return rc;
}

int edi_validate_term(const uint8_t *d, size_t len, size_t *err_off)
{
    dec_err e = {0, ""};
    size_t p = 0;
    int rc = walk_terms(d, len, &p, 1, &e);
    if (rc == 0 && p != len)
        rc = bad(&e, EDIST_EBADTERM, p, "bytes after the term");
    if (rc < 0) {
        if (err_off)
            *err_off = e.off;
        return edist_set_error(rc, "decode: %s at offset %zu", e.what, e.off);
    }
    return 0;
}

/* ---- cursor ------------------------------------------------------------ */

void edist_cursor_init(edist_cursor *c, const void *data, size_t len)
{
    c->data = data;
    c->len = data ? len : 0;
    c->pos = 0;
    c->err_offset = 0;
    c->max_depth = EDIST_DEFAULT_MAX_DEPTH;
}

int edist_cursor_init_ext(edist_cursor *c, const void *data, size_t len,
                          edist_buf *scratch)
{
    const uint8_t *d = data;
    edist_cursor_init(c, NULL, 0);
    if (!d || len < 1 || d[0] != EDIST_TAG_VERSION)
        return edist_set_error(EDIST_EVERSION, "decode: no version byte 131");
    if (len >= 2 && d[1] == EDIST_TAG_COMPRESSED) {
        if (!scratch)
            return edist_set_error(EDIST_EINVAL,
                                   "decode: compressed term needs a scratch buffer");
        edist_buf_reset(scratch);
        size_t off = 0;
        int rc = edi_inflate_ext(d, len, scratch, &off);
        if (rc < 0) {
            c->err_offset = off;
            return rc;
        }
        edist_cursor_init(c, scratch->data, scratch->len);
        return 0;
    }
    edist_cursor_init(c, d + 1, len - 1);
    return 0;
}

int edist_peek(const edist_cursor *c, edist_term_info *info)
{
    const uint8_t *d = c->data;
    size_t len = c->len, p = c->pos;
    dec_err e;
    if (p >= len)
        return edist_set_error(EDIST_ETRUNC, "decode: no term at offset %zu", p);
    uint8_t t = d[p];
    uint64_t count = 0;
    size_t need = 1;
    switch (t) {
    case EDIST_TAG_SMALL_INTEGER: count = 1; break;
    case EDIST_TAG_INTEGER: count = 4; break;
    case EDIST_TAG_SMALL_TUPLE:
    case EDIST_TAG_SMALL_BIG:
    case EDIST_TAG_SMALL_ATOM_UTF8:
    case EDIST_TAG_SMALL_ATOM:
        need = 2;
        if (have(len, p, 2))
            count = d[p + 1];
        break;
    case EDIST_TAG_ATOM_UTF8:
    case EDIST_TAG_ATOM:
    case EDIST_TAG_STRING:
    case EDIST_TAG_NEWER_REFERENCE:
    case EDIST_TAG_NEW_REFERENCE:
        need = 3;
        if (have(len, p, 3))
            count = edi_get_be16(d + p + 1);
        break;
    case EDIST_TAG_LARGE_TUPLE:
    case EDIST_TAG_LARGE_BIG:
    case EDIST_TAG_LIST:
    case EDIST_TAG_BINARY:
    case EDIST_TAG_BIT_BINARY:
    case EDIST_TAG_MAP:
        need = 5;
        if (have(len, p, 5))
            count = edi_get_be32(d + p + 1);
        break;
    case EDIST_TAG_REFERENCE: count = 1; break;
    default:
        if (!tag_type[t]) {
            int rc = wrong_tag(d, len, p, &e);
            return edist_set_error(rc, "decode: %s at offset %zu", e.what, p);
        }
        break;
    }
    if (!have(len, p, need))
        return edist_set_error(EDIST_ETRUNC, "decode: truncated term at offset %zu", p);
    info->type = (edist_type)tag_type[t];
    info->tag = t;
    info->count = count;
    return 0;
}

/* ---- getters ------------------------------------------------------------ */

/* Magnitude of a little-endian bignum if it fits 64 bits; avail >= n bytes
 * are readable at mag. */
static int big_mag64(const uint8_t *mag, size_t n, size_t avail, uint64_t *out)
{
    while (n > 8 && mag[n - 1] == 0) /* non-canonical high zero bytes */
        n--;
    if (n > 8)
        return -1;
    *out = edi_get_le_upto8(mag, n, avail);
    return 0;
}

/* int64 value of sign and magnitude, or -1 if it does not fit. */
static inline int signed64(int negative, uint64_t mag, int64_t *v)
{
    if (negative ? mag > (UINT64_C(1) << 63) : mag > (uint64_t)INT64_MAX)
        return -1;
    /* -mag without signed overflow: mag - 1 fits int64 when mag >= 1. */
    *v = negative && mag ? -(int64_t)(mag - 1) - 1 : (int64_t)mag;
    return 0;
}

static __attribute__((noinline)) int dec_int64_slow(edist_cursor *c, int64_t *v)
{
    dec_err e;
    size_t q = c->pos;
    int neg;
    const uint8_t *mag;
    size_t n;
    uint64_t m;
    int rc = rd_integer(c->data, c->len, &q, &neg, &mag, &n, &m, &e);
    if (rc < 0)
        return report(c, rc, &e);
    if (mag && big_mag64(mag, n, (size_t)(c->data + c->len - mag), &m) < 0)
        return report(c, EDIST_ERANGE, &(dec_err){c->pos, "integer does not fit 64 bits"});
    if (signed64(neg, m, v) < 0)
        return report(c, EDIST_ERANGE, &(dec_err){c->pos, "integer does not fit int64"});
    c->pos = q;
    return 0;
}

int edist_dec_int64(edist_cursor *c, int64_t *v)
{
    const uint8_t *d = c->data;
    size_t p = c->pos, rem = c->len - p;
    if (LIKELY(rem >= 2 && d[p] == EDIST_TAG_SMALL_INTEGER)) {
        *v = d[p + 1];
        c->pos = p + 2;
        return 0;
    }
    if (rem >= 5 && d[p] == EDIST_TAG_INTEGER) {
        *v = (int32_t)edi_get_be32(d + p + 1);
        c->pos = p + 5;
        return 0;
    }
    /* SMALL_BIG of up to 8 bytes with 8 readable: one load. */
    if (rem >= 3 + 8 && d[p] == EDIST_TAG_SMALL_BIG && d[p + 1] <= 8) {
        size_t n = d[p + 1];
        if (signed64(d[p + 2] != 0, edi_get_le_upto8(d + p + 3, n, 8), v) == 0) {
            c->pos = p + 3 + n;
            return 0;
        }
    }
    return dec_int64_slow(c, v);
}

static __attribute__((noinline)) int dec_uint64_slow(edist_cursor *c, uint64_t *v)
{
    const uint8_t *d = c->data;
    size_t p = c->pos;
    dec_err e;
    size_t q = p;
    int neg;
    const uint8_t *mag;
    size_t n;
    uint64_t m;
    int rc = rd_integer(d, c->len, &q, &neg, &mag, &n, &m, &e);
    if (rc < 0)
        return report(c, rc, &e);
    if (mag && big_mag64(mag, n, (size_t)(c->data + c->len - mag), &m) < 0)
        return report(c, EDIST_ERANGE, &(dec_err){p, "integer does not fit 64 bits"});
    if (neg && m)
        return report(c, EDIST_ERANGE, &(dec_err){p, "negative integer"});
    *v = m;
    c->pos = q;
    return 0;
}

int edist_dec_uint64(edist_cursor *c, uint64_t *v)
{
    const uint8_t *d = c->data;
    size_t p = c->pos, rem = c->len - p;
    if (LIKELY(rem >= 2 && d[p] == EDIST_TAG_SMALL_INTEGER)) {
        *v = d[p + 1];
        c->pos = p + 2;
        return 0;
    }
    if (LIKELY(rem >= 5 && d[p] == EDIST_TAG_INTEGER)) {
        uint32_t x = edi_get_be32(d + p + 1);
        if (LIKELY(x < 0x80000000u)) { /* negative: the slow path says so */
            *v = x;
            c->pos = p + 5;
            return 0;
        }
    }
    return dec_uint64_slow(c, v);
}

int edist_dec_integer(edist_cursor *c, int *negative, const uint8_t **mag_le,
                      size_t *n, uint8_t tmp[8])
{
    dec_err e;
    size_t q = c->pos;
    int neg;
    const uint8_t *mag;
    size_t cnt;
    uint64_t m;
    int rc = rd_integer(c->data, c->len, &q, &neg, &mag, &cnt, &m, &e);
    if (rc < 0)
        return report(c, rc, &e);
    if (mag) {
        /* Normalise: drop high zero bytes, and zero is never negative. */
        while (cnt && mag[cnt - 1] == 0)
            cnt--;
        *mag_le = mag;
        *n = cnt;
    } else {
        size_t k = 0;
        for (; m; m >>= 8)
            tmp[k++] = (uint8_t)m;
        *mag_le = tmp;
        *n = cnt = k;
    }
    *negative = neg && cnt != 0;
    c->pos = q;
    return 0;
}

static __attribute__((noinline)) int dec_double_slow(edist_cursor *c, double *v)
{
    dec_err e;
    size_t p = c->pos;
    int rc = rd_double(c->data, c->len, &p, v, &e);
    if (rc < 0)
        return report(c, rc, &e);
    c->pos = p;
    return 0;
}

int edist_dec_double(edist_cursor *c, double *v)
{
    const uint8_t *d = c->data;
    size_t p = c->pos;
    if (LIKELY(c->len - p >= 9 && d[p] == EDIST_TAG_NEW_FLOAT)) {
        uint64_t bits = edi_get_be64(d + p + 1);
        if (LIKELY(((bits >> 52) & 0x7FF) != 0x7FF)) {
            memcpy(v, &bits, sizeof bits);
            c->pos = p + 9;
            return 0;
        }
    }
    return dec_double_slow(c, v);
}

/* ASCII-only SMALL_ATOM_UTF8 fast path: 8 bytes at a time. */
static inline int ascii_only(const uint8_t *s, size_t n)
{
    uint64_t acc = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        acc |= w;
    }
    for (; i < n; i++)
        acc |= s[i];
    return (acc & UINT64_C(0x8080808080808080)) == 0;
}

static __attribute__((noinline)) int dec_atom_slow(edist_cursor *c, edist_atom *a)
{
    dec_err e;
    size_t p = c->pos;
    int rc = rd_atom(c->data, c->len, &p, a, &e);
    if (rc < 0)
        return report(c, rc, &e);
    c->pos = p;
    return 0;
}

int edist_dec_atom(edist_cursor *c, edist_atom *a)
{
    const uint8_t *d = c->data;
    size_t p = c->pos, rem = c->len - p;
    if (LIKELY(rem >= 2 && d[p] == EDIST_TAG_SMALL_ATOM_UTF8)) {
        size_t n = d[p + 1];
        if (LIKELY(n <= rem - 2 && ascii_only(d + p + 2, n))) {
            a->ptr = (const char *)d + p + 2;
            a->len = (uint32_t)n;
            a->latin1 = 0;
            c->pos = p + 2 + n;
            return 0;
        }
    }
    return dec_atom_slow(c, a);
}

int edist_atom_to_utf8(const edist_atom *a, char *out, size_t cap)
{
    const uint8_t *s = (const uint8_t *)a->ptr;
    if (!a->latin1) {
        if (cap < (size_t)a->len + 1 || !out)
            return edist_set_error(EDIST_ENOSPC, "atom: %u bytes do not fit in %zu",
                                   a->len, cap);
        if (a->len)
            memcpy(out, s, a->len);
        out[a->len] = 0;
        return (int)a->len;
    }
    size_t need = 1;
    for (uint32_t i = 0; i < a->len; i++)
        need += s[i] < 0x80 ? 1 : 2;
    if (cap < need || !out)
        return edist_set_error(EDIST_ENOSPC, "atom: %zu bytes do not fit in %zu",
                               need, cap);
    size_t k = 0;
    for (uint32_t i = 0; i < a->len; i++) {
        uint8_t ch = s[i];
        if (ch < 0x80) {
            out[k++] = (char)ch;
        } else {
            out[k++] = (char)(0xC0 | (ch >> 6));
            out[k++] = (char)(0x80 | (ch & 0x3F));
        }
    }
    out[k] = 0;
    return (int)k;
}

int edist_atom_eq(const edist_atom *a, const char *utf8z)
{
    const uint8_t *s = (const uint8_t *)a->ptr;
    const uint8_t *z = (const uint8_t *)utf8z;
    if (!a->latin1) {
        size_t zl = strlen(utf8z);
        return zl == a->len && (zl == 0 || memcmp(s, z, zl) == 0);
    }
    size_t k = 0;
    for (uint32_t i = 0; i < a->len; i++) {
        uint8_t ch = s[i];
        if (ch < 0x80) {
            if (z[k] != ch)
                return 0;
            k++;
        } else {
            if (z[k] != (uint8_t)(0xC0 | (ch >> 6)))
                return 0;
            if (z[k + 1] != (uint8_t)(0x80 | (ch & 0x3F)))
                return 0;
            k += 2;
        }
    }
    return z[k] == 0;
}

int edist_dec_atom_copy(edist_cursor *c, char *out, size_t cap)
{
    size_t p = c->pos;
    edist_atom a;
    int rc = edist_dec_atom(c, &a);
    if (rc < 0)
        return rc;
    rc = edist_atom_to_utf8(&a, out, cap);
    if (rc < 0) {
        c->pos = p;
        c->err_offset = p;
        return rc;
    }
    return 0;
}

int edist_dec_bool(edist_cursor *c)
{
    size_t p = c->pos;
    edist_atom a;
    int rc = edist_dec_atom(c, &a);
    if (rc < 0)
        return rc;
    if (a.len == 4 && memcmp(a.ptr, "true", 4) == 0)
        return 1;
    if (a.len == 5 && memcmp(a.ptr, "false", 5) == 0)
        return 0;
    c->pos = p;
    return report(c, EDIST_ETYPE, &(dec_err){p, "atom is not a boolean"});
}

static __attribute__((noinline)) int dec_tuple_slow(edist_cursor *c, uint32_t *arity)
{
    const uint8_t *d = c->data;
    size_t p = c->pos, rem = c->len - p;
    dec_err e;
    if (rem >= 2 && d[p] == EDIST_TAG_SMALL_TUPLE)
        return report(c, EDIST_ETRUNC, &(dec_err){p, "tuple arity exceeds the input"});
    if (rem >= 1 && d[p] == EDIST_TAG_LARGE_TUPLE) {
        if (rem < 5)
            return report(c, EDIST_ETRUNC, &(dec_err){p, "truncated tuple"});
        uint32_t n = edi_get_be32(d + p + 1);
        if (n > rem - 5)
            return report(c, EDIST_ETRUNC, &(dec_err){p, "tuple arity exceeds the input"});
        *arity = n;
        c->pos = p + 5;
        return 0;
    }
    if (rem == 1 && d[p] == EDIST_TAG_SMALL_TUPLE)
        return report(c, EDIST_ETRUNC, &(dec_err){p, "truncated tuple"});
    return report(c, wrong_tag(d, c->len, p, &e), &e);
}

int edist_dec_tuple(edist_cursor *c, uint32_t *arity)
{
    const uint8_t *d = c->data;
    size_t p = c->pos, rem = c->len - p;
    if (LIKELY(rem >= 2 && d[p] == EDIST_TAG_SMALL_TUPLE)) {
        uint32_t n = d[p + 1];
        if (LIKELY(n <= rem - 2)) {
            *arity = n;
            c->pos = p + 2;
            return 0;
        }
    }
    return dec_tuple_slow(c, arity);
}

static __attribute__((noinline)) int dec_list_slow(edist_cursor *c, uint32_t *n)
{
    const uint8_t *d = c->data;
    size_t p = c->pos, rem = c->len - p;
    if (rem >= 5 && d[p] == EDIST_TAG_LIST) {
        uint32_t k = edi_get_be32(d + p + 1);
        if (k == 0)
            return report(c, EDIST_EBADTERM, &(dec_err){p + 1, "LIST_EXT with 0 elements"});
        return report(c, EDIST_ETRUNC, &(dec_err){p, "list length exceeds the input"});
    }
    if (rem >= 1 && d[p] == EDIST_TAG_NIL) {
        *n = 0;
        c->pos = p + 1;
        return 0;
    }
    if (rem >= 1 && d[p] == EDIST_TAG_LIST)
        return report(c, EDIST_ETRUNC, &(dec_err){p, "truncated list"});
    dec_err e;
    return report(c, wrong_tag(d, c->len, p, &e), &e);
}

int edist_dec_list(edist_cursor *c, uint32_t *n)
{
    const uint8_t *d = c->data;
    size_t p = c->pos, rem = c->len - p;
    if (LIKELY(rem >= 5 && d[p] == EDIST_TAG_LIST)) {
        uint32_t k = edi_get_be32(d + p + 1);
        /* k elements and a tail, each at least one byte. erts accepts 0
         * elements (the term is then the tail alone) but never writes it, and
         * *n = 0 would tell the caller that no tail follows: refused. */
        if (LIKELY((uint64_t)k + 1 <= rem - 5 && k != 0)) {
            *n = k;
            c->pos = p + 5;
            return 0;
        }
    }
    return dec_list_slow(c, n);
}

/* The error for a term no getter reads (or no term at all). */
static __attribute__((noinline)) int dec_wrong_tag(edist_cursor *c)
{
    dec_err e;
    return report(c, wrong_tag(c->data, c->len, c->pos, &e), &e);
}

int edist_dec_nil(edist_cursor *c)
{
    size_t p = c->pos;
    if (LIKELY(p < c->len && c->data[p] == EDIST_TAG_NIL)) {
        c->pos = p + 1;
        return 0;
    }
    return dec_wrong_tag(c);
}

static __attribute__((noinline)) int dec_string_slow(edist_cursor *c,
                                                    const uint8_t **bytes,
                                                    size_t *len)
{
    const uint8_t *d = c->data;
    size_t p = c->pos, rem = c->len - p;
    if (rem >= 3 && d[p] == EDIST_TAG_STRING)
        return report(c, EDIST_ETRUNC, &(dec_err){p, "truncated string"});
    if (rem >= 1 && d[p] == EDIST_TAG_NIL) {
        *bytes = d + p;
        *len = 0;
        c->pos = p + 1;
        return 0;
    }
    if (rem >= 1 && d[p] == EDIST_TAG_STRING)
        return report(c, EDIST_ETRUNC, &(dec_err){p, "truncated string"});
    dec_err e;
    return report(c, wrong_tag(d, c->len, p, &e), &e);
}

int edist_dec_string(edist_cursor *c, const uint8_t **bytes, size_t *len)
{
    const uint8_t *d = c->data;
    size_t p = c->pos, rem = c->len - p;
    if (LIKELY(rem >= 3 && d[p] == EDIST_TAG_STRING)) {
        size_t n = edi_get_be16(d + p + 1);
        if (LIKELY(n <= rem - 3)) {
            *bytes = d + p + 3;
            *len = n;
            c->pos = p + 3 + n;
            return 0;
        }
    }
    return dec_string_slow(c, bytes, len);
}

/* BINARY_EXT, or BIT_BINARY_EXT (which may have 8 bits in its last byte). */
static int rd_bits(const uint8_t *d, size_t len, size_t *pp,
                   const uint8_t **bytes, size_t *nbytes, unsigned *last_bits,
                   dec_err *e)
{
    size_t p = *pp;
    if (p < len && d[p] == EDIST_TAG_BINARY) {
        if (!have(len, p, 5) || !have(len, p + 5, edi_get_be32(d + p + 1)))
            return bad(e, EDIST_ETRUNC, p, "truncated binary");
        *nbytes = edi_get_be32(d + p + 1);
        *bytes = d + p + 5;
        *last_bits = 8;
        *pp = p + 5 + *nbytes;
        return 0;
    }
    if (p < len && d[p] == EDIST_TAG_BIT_BINARY) {
        if (!have(len, p, 6))
            return bad(e, EDIST_ETRUNC, p, "truncated bit string");
        uint32_t n = edi_get_be32(d + p + 1);
        uint8_t bits = d[p + 5];
        if (!bit_count_ok(n, bits))
            return bad(e, EDIST_EBADTERM, p + 5, "bad bit string bit count");
        if (!have(len, p + 6, n))
            return bad(e, EDIST_ETRUNC, p, "truncated bit string");
        *nbytes = n;
        *bytes = d + p + 6;
        *last_bits = n ? bits : 8; /* the empty one is the empty binary */
        *pp = p + 6 + n;
        return 0;
    }
    return wrong_tag(d, len, p, e);
}

static int dec_binary_slow(edist_cursor *c, const uint8_t **bytes, size_t *len);

int edist_dec_binary(edist_cursor *c, const uint8_t **bytes, size_t *len)
{
    const uint8_t *d = c->data;
    size_t p = c->pos, rem = c->len - p;
    if (LIKELY(rem >= 5 && d[p] == EDIST_TAG_BINARY)) {
        size_t n = edi_get_be32(d + p + 1);
        if (LIKELY(n <= rem - 5)) {
            *bytes = d + p + 5;
            *len = n;
            c->pos = p + 5 + n;
            return 0;
        }
    }
    return dec_binary_slow(c, bytes, len);
}

static __attribute__((noinline)) int dec_binary_slow(edist_cursor *c,
                                                    const uint8_t **bytes,
                                                    size_t *len)
{
    const uint8_t *d = c->data;
    size_t p = c->pos;
    dec_err e;
    unsigned bits;
    const uint8_t *b;
    size_t n;
    int rc = rd_bits(d, c->len, &p, &b, &n, &bits, &e);
    if (rc < 0)
        return report(c, rc, &e);
    if (bits != 8)
        return report(c, EDIST_ETYPE, &(dec_err){c->pos, "bit string is not a binary"});
    *bytes = b;
    *len = n;
    c->pos = p;
    return 0;
}

int edist_dec_bitstring(edist_cursor *c, const uint8_t **bytes, size_t *nbytes,
                        unsigned *last_bits)
{
    dec_err e;
    size_t p = c->pos;
    int rc = rd_bits(c->data, c->len, &p, bytes, nbytes, last_bits, &e);
    if (rc < 0)
        return report(c, rc, &e);
    c->pos = p;
    return 0;
}

static __attribute__((noinline)) int dec_map_slow(edist_cursor *c)
{
    const uint8_t *d = c->data;
    size_t p = c->pos, rem = c->len - p;
    if (rem >= 5 && d[p] == EDIST_TAG_MAP)
        return report(c, EDIST_ETRUNC, &(dec_err){p, "map size exceeds the input"});
    if (rem >= 1 && d[p] == EDIST_TAG_MAP)
        return report(c, EDIST_ETRUNC, &(dec_err){p, "truncated map"});
    dec_err e;
    return report(c, wrong_tag(d, c->len, p, &e), &e);
}

int edist_dec_map(edist_cursor *c, uint32_t *pairs)
{
    const uint8_t *d = c->data;
    size_t p = c->pos, rem = c->len - p;
    if (LIKELY(rem >= 5 && d[p] == EDIST_TAG_MAP)) {
        uint32_t k = edi_get_be32(d + p + 1);
        if (LIKELY(2 * (uint64_t)k <= rem - 5)) {
            *pairs = k;
            c->pos = p + 5;
            return 0;
        }
    }
    return dec_map_slow(c);
}

int edist_dec_pid(edist_cursor *c, edist_pid *pid)
{
    dec_err e;
    size_t p = c->pos;
    int rc = rd_pid(c->data, c->len, &p, pid, &e);
    if (rc < 0)
        return report(c, rc, &e);
    c->pos = p;
    return 0;
}

int edist_dec_port(edist_cursor *c, edist_port *port)
{
    dec_err e;
    size_t p = c->pos;
    int rc = rd_port(c->data, c->len, &p, port, &e);
    if (rc < 0)
        return report(c, rc, &e);
    c->pos = p;
    return 0;
}

int edist_dec_ref(edist_cursor *c, edist_ref *r)
{
    dec_err e;
    size_t p = c->pos;
    int rc = rd_ref(c->data, c->len, &p, r, &e);
    if (rc < 0)
        return report(c, rc, &e);
    c->pos = p;
    return 0;
}

int edist_dec_export(edist_cursor *c, edist_export *x)
{
    dec_err e;
    size_t p = c->pos;
    int rc = rd_export(c->data, c->len, &p, x, &e);
    if (rc < 0)
        return report(c, rc, &e);
    c->pos = p;
    return 0;
}

int edist_dec_fun(edist_cursor *c, edist_fun *f)
{
    dec_err e;
    size_t p = c->pos, end;
    int rc = rd_fun_head(c->data, c->len, &p, f, &end, &e);
    if (rc == 0) {
        /* The free variables must fill the rest of the fun exactly. */
        rc = walk_terms(c->data, end, &p, f->num_free, &e);
        if (rc == 0 && p != end)
            rc = bad(&e, EDIST_EBADTERM, p, "fun size does not match its contents");
    }
    if (rc < 0)
        return report(c, rc, &e);
    c->pos = end;
    return 0;
}

int edist_skip(edist_cursor *c)
{
    dec_err e;
    size_t p = c->pos;
    int rc = walk_terms(c->data, c->len, &p, 1, &e);
    if (rc < 0)
        return report(c, rc, &e);
    c->pos = p;
    return 0;
}

int edist_dec_term(edist_cursor *c, edist_term_view *v)
{
    size_t start = c->pos;
    int rc = edist_skip(c);
    if (rc < 0)
        return rc;
    v->ptr = c->data + start;
    v->len = c->pos - start;
    return 0;
}

/* ---- edist_dec_next ------------------------------------------------------
 * Every tag goes to the getter that reads it, so acceptance, error codes and
 * offsets are the getters' by construction; term.h's inline edist_dec_next
 * takes the common canonical cases before coming here. */

/* Fills the item of a term read by a getter as a view of its whole bytes. */
static int whole_term_view(edist_cursor *c, size_t start, int rc, edist_item *it)
{
    if (rc < 0)
        return rc;
    it->bytes = c->data + start;
    it->count = c->pos - start;
    return 0;
}

int edist_dec_next_slow(edist_cursor *c, edist_item *it)
{
    size_t p = c->pos;
    if (p >= c->len)
        return dec_wrong_tag(c);
    uint8_t tag = c->data[p];
    int rc;
    it->type = (edist_type)tag_type[tag];
    it->tag = tag;
    switch (tag) {
    case EDIST_TAG_SMALL_INTEGER:
    case EDIST_TAG_INTEGER:
    case EDIST_TAG_SMALL_BIG:
    case EDIST_TAG_LARGE_BIG: {
        /* A SMALL_BIG within the input's last 10 bytes (the inline path
         * wants 8 readable magnitude bytes): a common last element. */
        const uint8_t *d = c->data + p;
        size_t rem = c->len - p;
        if (tag == EDIST_TAG_SMALL_BIG && rem >= 3 && d[1] <= 8 && d[1] <= rem - 3 &&
            signed64(d[2] != 0, edi_get_le_upto8(d + 3, d[1], rem - 3), &it->i) == 0) {
            it->big = 0;
            c->pos = p + 3 + d[1];
            return 0;
        }
        int neg = 0;
        const uint8_t *mag = NULL;
        size_t n = 0;
        uint8_t tmp[8];
        rc = edist_dec_integer(c, &neg, &mag, &n, tmp);
        if (rc < 0)
            return rc;
        /* Small forms (mag in tmp) always fit; a view is never of tmp. */
        if (n <= 8 && signed64(neg, edi_get_le_upto8(mag, n, n), &it->i) == 0) {
            it->big = 0;
        } else {
            it->big = 1;
            it->negative = (uint8_t)neg;
            it->bytes = mag;
            it->count = n;
        }
        return 0;
    }
    case EDIST_TAG_NEW_FLOAT:
    case EDIST_TAG_FLOAT:
        return edist_dec_double(c, &it->f);
    case EDIST_TAG_SMALL_ATOM_UTF8:
    case EDIST_TAG_ATOM_UTF8:
    case EDIST_TAG_SMALL_ATOM:
    case EDIST_TAG_ATOM: {
        edist_atom a;
        rc = edist_dec_atom(c, &a);
        if (rc < 0)
            return rc;
        it->bytes = (const uint8_t *)a.ptr;
        it->count = a.len;
        it->latin1 = a.latin1;
        return 0;
    }
    case EDIST_TAG_SMALL_TUPLE:
    case EDIST_TAG_LARGE_TUPLE: {
        uint32_t n = 0;
        if ((rc = edist_dec_tuple(c, &n)) == 0)
            it->count = n;
        return rc;
    }
    case EDIST_TAG_MAP: {
        uint32_t n = 0;
        if ((rc = edist_dec_map(c, &n)) == 0)
            it->count = n;
        return rc;
    }
    case EDIST_TAG_NIL:
        return edist_dec_nil(c);
    case EDIST_TAG_LIST: {
        uint32_t n = 0;
        if ((rc = edist_dec_list(c, &n)) == 0)
            it->count = n;
        return rc;
    }
    case EDIST_TAG_STRING: {
        size_t n = 0;
        if ((rc = edist_dec_string(c, &it->bytes, &n)) == 0)
            it->count = n;
        return rc;
    }
    case EDIST_TAG_BINARY:
    case EDIST_TAG_BIT_BINARY: {
        size_t n = 0;
        unsigned bits = 0;
        if ((rc = edist_dec_bitstring(c, &it->bytes, &n, &bits)) == 0) {
            it->count = n;
            it->last_bits = (uint8_t)bits;
        }
        return rc;
    }
    case EDIST_TAG_NEW_PID:
    case EDIST_TAG_PID: {
        edist_pid pid;
        return whole_term_view(c, p, edist_dec_pid(c, &pid), it);
    }
    case EDIST_TAG_V4_PORT:
    case EDIST_TAG_NEW_PORT:
    case EDIST_TAG_PORT: {
        edist_port port;
        return whole_term_view(c, p, edist_dec_port(c, &port), it);
    }
    case EDIST_TAG_NEWER_REFERENCE:
    case EDIST_TAG_NEW_REFERENCE:
    case EDIST_TAG_REFERENCE: {
        edist_ref r;
        return whole_term_view(c, p, edist_dec_ref(c, &r), it);
    }
    case EDIST_TAG_EXPORT: {
        edist_export x;
        return whole_term_view(c, p, edist_dec_export(c, &x), it);
    }
    case EDIST_TAG_NEW_FUN: {
        edist_fun f;
        return whole_term_view(c, p, edist_dec_fun(c, &f), it);
    }
    default:
        return dec_wrong_tag(c);
    }
}

int edist_term_validate(const void *data, size_t len, size_t *err_offset)
{
    const uint8_t *d = data;
    if (err_offset)
        *err_offset = 0;
    if (!d || len == 0)
        return edist_set_error(EDIST_ETRUNC, "decode: empty input");
    if (d[0] != EDIST_TAG_VERSION)
        return edi_validate_term(d, len, err_offset);
    if (len >= 2 && d[1] == EDIST_TAG_COMPRESSED) {
        /* Inflation validates the inflated term as one whole term. */
        edist_buf tmp;
        edist_buf_init(&tmp);
        int rc = edi_inflate_ext(d, len, &tmp, err_offset);
        edist_buf_free(&tmp);
        return rc;
    }
    size_t off = 0;
    int rc = edi_validate_term(d + 1, len - 1, &off);
    if (rc < 0 && err_offset)
        *err_offset = off + 1;
    return rc;
}
