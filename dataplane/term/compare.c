/* SPDX-License-Identifier: Apache-2.0 */
/* Exact term order and =:= over encoded terms.
 *
 * The rules, each checked against OTP 25.2.3 (erl, with binary_to_term of
 * hand-made NEW_PID_EXT / V4_PORT_EXT / NEWER_REFERENCE_EXT / NEW_FUN_EXT):
 * - Types: number < atom < reference < fun < port < pid < tuple < map < nil
 *   < list < bit string. In exact order every integer sorts before every
 *   float, whatever the values (maps:keys(#{3=>a, 2.5=>b}) is [3, 2.5]).
 *   -0.0 and 0.0 are equal (OTP 25: -0.0 =:= 0.0 is true).
 * - Integers numerically over every encoding (leading zero bytes and a
 *   negative zero bignum included); floats numerically.
 * - Atoms by code points: latin-1 ATOM_EXT and UTF-8 forms of one text are
 *   equal.
 * - Pids: serial, then id, then node name, then creation (all unsigned).
 * - Ports: node name, creation, id (all unsigned).
 * - Refs: node name, creation, then the id words as one unsigned number whose
 *   last word on the wire is the most significant; high zero words do not
 *   count, so a 2-word ref equals the same ref padded with a zero word.
 * - Funs: every local fun (NEW_FUN_EXT) sorts before every export fun.
 *   Exports by module, function, arity. Local funs by module, Index,
 *   OldUniq, number of free variables, then the free variables; Arity, Uniq,
 *   OldIndex and the creator pid are ignored, as in erts (funs differing only
 *   there are =:=). erts orders Index and OldUniq by the sign of their 32-bit
 *   wrapped difference, which is not transitive; we use a total order that
 *   agrees whenever the values are less than 2^31 apart: Index unsigned,
 *   OldUniq as the signed integer on the wire.
 * - Tuples by arity, then elements. Lists element by element, then tails
 *   ([1,2|3] < [1,2,3]); STRING_EXT and LIST_EXT of the same integers are
 *   equal, and a LIST_EXT of 0 elements is its tail (as binary_to_term).
 * - Maps by size, then keys in ascending order, then values in key order.
 *   Keys may arrive in any order (erts writes large maps in hash order), so
 *   each map's pairs are sorted once; a map with two equal keys is rejected
 *   (EBADTERM), as binary_to_term rejects it.
 * - Bit strings bit by bit over the common length, then by length.
 *
 * edist_term_hash (hash.c) hashes by the same rules, so that terms equal
 * here hash equal: a change to one set of rules is a change to both.
 *
 * Both terms are validated whole first, so malformed input fails the same
 * way wherever the first difference lies. The comparison then walks both
 * terms in lockstep with an explicit stack; maps are indexed (pairs sorted
 * by key) lazily, bottom-up, the first time two maps of equal size meet, so
 * sorting never recurses: the keys of a map are compared only after every
 * map inside them has been indexed. */
#include <stdlib.h>
#include <string.h>

#include "edist/term.h"
#include "term_internal.h"

/* ---- small helpers ---------------------------------------------------- */

static int sign_of_u64(uint64_t a, uint64_t b)
{
    return a < b ? -1 : a > b;
}

static int sign_of_i64(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

static int type_order(edist_type a, edist_type b)
{
    return a < b ? -1 : a > b;
}

/* Atoms by code point. UTF-8 and latin-1 bytes each sort like their code
 * points, so one form against itself is a byte compare. */
static int atom_cmp(const edist_atom *a, const edist_atom *b)
{
    const uint8_t *pa = (const uint8_t *)a->ptr, *pb = (const uint8_t *)b->ptr;
    if (a->latin1 == b->latin1) {
        size_t n = a->len < b->len ? a->len : b->len;
        int c = n ? memcmp(pa, pb, n) : 0;
        if (c != 0)
            return c < 0 ? -1 : 1;
        return sign_of_u64(a->len, b->len);
    }
    size_t i = 0, j = 0;
    while (i < a->len && j < b->len) {
        uint32_t ca, cb;
        int step;
        if (a->latin1) {
            ca = pa[i++];
        } else {
            step = edi_utf8_next(pa + i, a->len - i, &ca);
            if (step < 0) { /* the decoder rejects this; stay defined */
                ca = pa[i];
                step = 1;
            }
            i += (size_t)step;
        }
        if (b->latin1) {
            cb = pb[j++];
        } else {
            step = edi_utf8_next(pb + j, b->len - j, &cb);
            if (step < 0) {
                cb = pb[j];
                step = 1;
            }
            j += (size_t)step;
        }
        if (ca != cb)
            return ca < cb ? -1 : 1;
    }
    return (i < a->len) - (j < b->len);
}

/* An integer as sign and little-endian magnitude without high zero bytes. */
typedef struct int_val {
    const uint8_t *mag;
    size_t n;
    int negative;
    uint8_t tmp[8];
} int_val;

static void int_trim(int_val *v)
{
    while (v->n > 0 && v->mag[v->n - 1] == 0)
        v->n--;
    if (v->n == 0)
        v->negative = 0;
}

static int int_cmp(const int_val *a, const int_val *b)
{
    int sa = a->n == 0 ? 0 : (a->negative ? -1 : 1);
    int sb = b->n == 0 ? 0 : (b->negative ? -1 : 1);
    if (sa != sb)
        return sa < sb ? -1 : 1;
    int mag = 0;
    if (a->n != b->n) {
        mag = a->n < b->n ? -1 : 1;
    } else {
        for (size_t i = a->n; i-- > 0;) {
            if (a->mag[i] != b->mag[i]) {
                mag = a->mag[i] < b->mag[i] ? -1 : 1;
                break;
            }
        }
    }
    return sa < 0 ? -mag : mag;
}

static int node_cmp(const edist_atom *na, uint32_t cra, const edist_atom *nb,
                    uint32_t crb)
{
    int c = atom_cmp(na, nb);
    return c ? c : sign_of_u64(cra, crb);
}

static int pid_cmp(const edist_pid *a, const edist_pid *b)
{
    if (a->serial != b->serial)
        return sign_of_u64(a->serial, b->serial);
    if (a->id != b->id)
        return sign_of_u64(a->id, b->id);
    return node_cmp(&a->node, a->creation, &b->node, b->creation);
}

static int port_cmp(const edist_port *a, const edist_port *b)
{
    int c = node_cmp(&a->node, a->creation, &b->node, b->creation);
    return c ? c : sign_of_u64(a->id, b->id);
}

static int ref_cmp(const edist_ref *a, const edist_ref *b)
{
    int c = node_cmp(&a->node, a->creation, &b->node, b->creation);
    if (c)
        return c;
    uint32_t la = a->len <= EDIST_REF_MAX_WORDS ? a->len : EDIST_REF_MAX_WORDS;
    uint32_t lb = b->len <= EDIST_REF_MAX_WORDS ? b->len : EDIST_REF_MAX_WORDS;
    while (la > 0 && a->ids[la - 1] == 0)
        la--;
    while (lb > 0 && b->ids[lb - 1] == 0)
        lb--;
    if (la != lb)
        return la < lb ? -1 : 1;
    for (uint32_t i = la; i-- > 0;)
        if (a->ids[i] != b->ids[i])
            return a->ids[i] < b->ids[i] ? -1 : 1;
    return 0;
}

static uint64_t bit_length(size_t nbytes, unsigned last_bits)
{
    return nbytes == 0 ? 0 : ((uint64_t)nbytes - 1) * 8 + last_bits;
}

static int bits_cmp(const uint8_t *pa, uint64_t abits, const uint8_t *pb,
                    uint64_t bbits)
{
    uint64_t common = abits < bbits ? abits : bbits;
    size_t full = (size_t)(common / 8);
    if (full > 0) {
        int c = memcmp(pa, pb, full);
        if (c != 0)
            return c < 0 ? -1 : 1;
    }
    unsigned rest = (unsigned)(common % 8);
    if (rest) {
        /* Only the high `rest` bits of this byte belong to both. */
        uint8_t mask = (uint8_t)(0xFFu << (8 - rest));
        uint8_t x = pa[full] & mask, y = pb[full] & mask;
        if (x != y)
            return x < y ? -1 : 1;
    }
    return sign_of_u64(abits, bbits);
}

/* ---- map index ----------------------------------------------------------
 * For every map in a term: where its pairs are, sorted by key. Entries are
 * created in pre-order, so they are sorted by offset. */

typedef struct kv_pair {
    size_t key; /* offsets in the side's buffer */
    size_t val;
} kv_pair;

typedef struct map_entry {
    size_t off;   /* the map's tag */
    size_t end;   /* just past the map */
    size_t first; /* its pairs: pool[first .. first + pairs) */
    uint32_t pairs;
    uint8_t complete;
} map_entry;

enum { INDEX_NONE, INDEX_BUILDING, INDEX_READY };

typedef struct map_index {
    map_entry *entries;
    size_t n_entries, cap_entries;
    kv_pair *pool;
    size_t n_pool, cap_pool;
    int state;
} map_index;

static void index_free(map_index *ix)
{
    free(ix->entries);
    free(ix->pool);
}

/* Grow *v (elements of elem bytes) to hold at least need elements. */
static int grow_array(void **v, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t cap2 = *cap ? *cap : 8;
    while (cap2 < need) {
        if (cap2 > SIZE_MAX / 2 / elem)
            return EDIST_ENOMEM;
        cap2 *= 2;
    }
    void *p = realloc(*v, cap2 * elem);
    if (p == NULL)
        return EDIST_ENOMEM;
    *v = p;
    *cap = cap2;
    return 0;
}

static int index_find(const map_index *ix, size_t off, size_t *idx)
{
    size_t lo = 0, hi = ix->n_entries;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->entries[mid].off < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == ix->n_entries || ix->entries[lo].off != off ||
        !ix->entries[lo].complete)
        return edist_set_error(EDIST_EBADTERM, "compare: no index for map at %zu",
                               off);
    *idx = lo;
    return 0;
}

/* ---- lockstep walker ------------------------------------------------------ */

/* One term being compared: a cursor over its buffer and that buffer's maps. */
typedef struct side {
    edist_cursor cur;
    size_t root; /* offset of the whole term */
    map_index *index;
} side;

enum { FRAME_SEQ, FRAME_LIST, FRAME_MAP };

/* Where one side of a list comparison stands. */
enum { LS_STRING, LS_ELEMS, LS_NIL, LS_TAIL };

typedef struct list_side {
    const uint8_t *str; /* STRING_EXT bytes not compared yet */
    size_t str_left;
    uint32_t elems_left; /* LIST_EXT elements not compared yet */
    uint8_t mode;
} list_side;

typedef struct frame {
    uint8_t kind;
    union {
        struct {
            uint64_t left;
            size_t end_a, end_b; /* SIZE_MAX: no check */
        } seq;
        struct {
            list_side a, b;
        } list;
        struct {
            size_t ea, eb; /* entry indexes */
            uint32_t next;
            uint8_t values;
        } map;
    } u;
} frame;

#define INLINE_FRAMES 16

typedef struct walk_stack {
    frame *f;
    size_t n, cap;
    frame local[INLINE_FRAMES];
} walk_stack;

static void stack_init(walk_stack *st)
{
    st->f = st->local;
    st->n = 0;
    st->cap = INLINE_FRAMES;
}

static void stack_free(walk_stack *st)
{
    if (st->f != st->local)
        free(st->f);
}

/* The new top frame, or NULL with *rc set. */
static frame *stack_push(walk_stack *st, size_t at, int *rc)
{
    if (st->n >= EDIST_DEFAULT_MAX_DEPTH) {
        *rc = edist_set_error(EDIST_EDEPTH,
                              "compare: nesting deeper than %u at offset %zu",
                              EDIST_DEFAULT_MAX_DEPTH, at);
        return NULL;
    }
    if (st->n == st->cap) {
        size_t cap = st->cap * 2;
        frame *f = malloc(cap * sizeof *f);
        if (f == NULL) {
            *rc = EDIST_ENOMEM;
            return NULL;
        }
        memcpy(f, st->f, st->n * sizeof *f);
        if (st->f != st->local)
            free(st->f);
        st->f = f;
        st->cap = cap;
    }
    return &st->f[st->n++];
}

typedef struct cmp_ctx {
    walk_stack main;  /* the top-level comparison */
    walk_stack keys;  /* key comparisons while sorting a map's pairs */
    kv_pair *tmp;     /* merge buffer */
    size_t tmp_cap;
} cmp_ctx;

static int index_build(cmp_ctx *ctx, side *s);

/* What the next term of a side is, looking through LIST_EXT headers of 0
 * elements (such a list is its tail) and reading an empty STRING_EXT as
 * nil. imm >= 0 stands for a small integer taken from a STRING_EXT. */
static int resolve(side *s, int imm, edist_term_info *info)
{
    if (imm >= 0) {
        info->type = EDIST_TYPE_INTEGER;
        info->tag = EDIST_TAG_SMALL_INTEGER;
        info->count = 1;
        return 0;
    }
    for (;;) {
        int rc = edist_peek(&s->cur, info);
        if (rc < 0)
            return rc;
        if (info->tag == EDIST_TAG_LIST && info->count == 0) {
            uint32_t n;
            rc = edist_dec_list(&s->cur, &n);
            if (rc < 0)
                return rc;
            continue;
        }
        if (info->tag == EDIST_TAG_STRING && info->count == 0)
            info->type = EDIST_TYPE_NIL;
        return 0;
    }
}

static int read_int(side *s, int imm, int_val *v)
{
    if (imm >= 0) {
        v->tmp[0] = (uint8_t)imm;
        v->mag = v->tmp;
        v->n = 1;
        v->negative = 0;
    } else {
        int rc = edist_dec_integer(&s->cur, &v->negative, &v->mag, &v->n, v->tmp);
        if (rc < 0)
            return rc;
    }
    int_trim(v);
    return 0;
}

int edi_fun_free_vars_at(const edist_fun *f, size_t *at)
{
    edist_cursor c;
    edist_cursor_init(&c, f->bytes, f->len);
    c.pos = 30; /* tag, Size, Arity, Uniq[16], Index, NumFree */
    for (int i = 0; i < 4; i++) {
        int rc = edist_skip(&c);
        if (rc < 0)
            return rc;
    }
    *at = c.pos;
    return 0;
}

/* Where the free variables of the NEW_FUN_EXT in f start, as an offset in the
 * side's buffer. */
static int fun_free_vars_at(const side *s, const edist_fun *f, size_t *at)
{
    size_t in_fun = 0;
    int rc = edi_fun_free_vars_at(f, &in_fun);
    *at = (size_t)(f->bytes - s->cur.data) + in_fun;
    return rc;
}

static int list_open(side *s, const edist_term_info *info, list_side *ls)
{
    if (info->tag == EDIST_TAG_STRING) {
        ls->mode = LS_STRING;
        ls->elems_left = 0;
        return edist_dec_string(&s->cur, &ls->str, &ls->str_left);
    }
    ls->mode = LS_ELEMS;
    ls->str = NULL;
    ls->str_left = 0;
    return edist_dec_list(&s->cur, &ls->elems_left);
}

/* Once a side's current segment is used up, follow its tail: another list
 * segment continues the same list; nil ends it; anything else is an
 * improper tail left at the cursor. */
static int list_settle(side *s, list_side *ls)
{
    for (;;) {
        if (ls->mode == LS_STRING) {
            if (ls->str_left == 0)
                ls->mode = LS_NIL; /* a STRING_EXT is a proper list */
            return 0;
        }
        if (ls->mode != LS_ELEMS || ls->elems_left > 0)
            return 0;
        edist_term_info info;
        int rc = edist_peek(&s->cur, &info);
        if (rc < 0)
            return rc;
        switch (info.tag) {
        case EDIST_TAG_LIST:
            rc = edist_dec_list(&s->cur, &ls->elems_left);
            break;
        case EDIST_TAG_STRING:
            ls->mode = LS_STRING;
            rc = edist_dec_string(&s->cur, &ls->str, &ls->str_left);
            break;
        case EDIST_TAG_NIL:
            ls->mode = LS_NIL;
            return edist_dec_nil(&s->cur);
        default:
            ls->mode = LS_TAIL;
            return 0;
        }
        if (rc < 0)
            return rc;
    }
}

static int list_has_head(const list_side *ls)
{
    return (ls->mode == LS_STRING && ls->str_left > 0) ||
           (ls->mode == LS_ELEMS && ls->elems_left > 0);
}

/* Takes the next element: a byte of a string (returned) or the term at the
 * cursor (-1). */
static int list_take(list_side *ls)
{
    if (ls->mode == LS_STRING) {
        ls->str_left--;
        return *ls->str++;
    }
    ls->elems_left--;
    return -1;
}

/* Type of what ends a list side: nil, or the improper tail's type. */
static int list_end_type(side *s, const list_side *ls, edist_type *t)
{
    if (ls->mode == LS_NIL) {
        *t = EDIST_TYPE_NIL;
        return 0;
    }
    edist_term_info info;
    int rc = resolve(s, -1, &info);
    if (rc == 0)
        *t = info.type;
    return rc;
}

/* Compares the next terms of a and b (imm_a / imm_b >= 0: a string byte
 * instead). Atomic terms are compared at once; for compound terms with equal
 * headers a frame is pushed and the caller's loop finishes them. *res is the
 * result so far (-1, 0, 1). */
static int step(cmp_ctx *ctx, side *a, side *b, int imm_a, int imm_b,
                walk_stack *st, int *res)
{
    edist_term_info ia, ib;
    int rc = resolve(a, imm_a, &ia);
    if (rc == 0)
        rc = resolve(b, imm_b, &ib);
    if (rc < 0)
        return rc;
    if (ia.type != ib.type) {
        *res = type_order(ia.type, ib.type);
        return 0;
    }
    *res = 0;
    switch (ia.type) {
    case EDIST_TYPE_INTEGER: {
        int_val va, vb;
        rc = read_int(a, imm_a, &va);
        if (rc == 0)
            rc = read_int(b, imm_b, &vb);
        if (rc == 0)
            *res = int_cmp(&va, &vb);
        return rc;
    }
    case EDIST_TYPE_FLOAT: {
        double x, y;
        rc = edist_dec_double(&a->cur, &x);
        if (rc == 0)
            rc = edist_dec_double(&b->cur, &y);
        if (rc == 0) /* -0.0 == 0.0, as OTP 25 */
            *res = x < y ? -1 : x > y;
        return rc;
    }
    case EDIST_TYPE_ATOM: {
        edist_atom x, y;
        rc = edist_dec_atom(&a->cur, &x);
        if (rc == 0)
            rc = edist_dec_atom(&b->cur, &y);
        if (rc == 0)
            *res = atom_cmp(&x, &y);
        return rc;
    }
    case EDIST_TYPE_REF: {
        edist_ref x, y;
        rc = edist_dec_ref(&a->cur, &x);
        if (rc == 0)
            rc = edist_dec_ref(&b->cur, &y);
        if (rc == 0)
            *res = ref_cmp(&x, &y);
        return rc;
    }
    case EDIST_TYPE_PORT: {
        edist_port x, y;
        rc = edist_dec_port(&a->cur, &x);
        if (rc == 0)
            rc = edist_dec_port(&b->cur, &y);
        if (rc == 0)
            *res = port_cmp(&x, &y);
        return rc;
    }
    case EDIST_TYPE_PID: {
        edist_pid x, y;
        rc = edist_dec_pid(&a->cur, &x);
        if (rc == 0)
            rc = edist_dec_pid(&b->cur, &y);
        if (rc == 0)
            *res = pid_cmp(&x, &y);
        return rc;
    }
    case EDIST_TYPE_FUN: {
        int local_a = ia.tag == EDIST_TAG_NEW_FUN;
        int local_b = ib.tag == EDIST_TAG_NEW_FUN;
        if (local_a != local_b) {
            *res = local_a ? -1 : 1; /* local funs before exports */
            return 0;
        }
        if (!local_a) {
            edist_export x, y;
            rc = edist_dec_export(&a->cur, &x);
            if (rc == 0)
                rc = edist_dec_export(&b->cur, &y);
            if (rc < 0)
                return rc;
            *res = atom_cmp(&x.module, &y.module);
            if (*res == 0)
                *res = atom_cmp(&x.function, &y.function);
            if (*res == 0)
                *res = sign_of_u64(x.arity, y.arity);
            return 0;
        }
        edist_fun x, y;
        rc = edist_dec_fun(&a->cur, &x);
        if (rc == 0)
            rc = edist_dec_fun(&b->cur, &y);
        if (rc < 0)
            return rc;
        *res = atom_cmp(&x.module, &y.module);
        if (*res == 0)
            *res = sign_of_u64(x.index, y.index);
        if (*res == 0)
            *res = sign_of_i64(x.old_uniq, y.old_uniq);
        if (*res == 0)
            *res = sign_of_u64(x.num_free, y.num_free);
        if (*res != 0 || x.num_free == 0)
            return 0;
        size_t fa = 0, fb = 0; /* zeroed for -Werror: set when rc == 0 */
        rc = fun_free_vars_at(a, &x, &fa);
        if (rc == 0)
            rc = fun_free_vars_at(b, &y, &fb);
        if (rc < 0)
            return rc;
        frame *f = stack_push(st, fa, &rc);
        if (f == NULL)
            return rc;
        f->kind = FRAME_SEQ;
        f->u.seq.left = x.num_free;
        /* The free variables end the fun: the cursors land past it. */
        f->u.seq.end_a = a->cur.pos;
        f->u.seq.end_b = b->cur.pos;
        a->cur.pos = fa;
        b->cur.pos = fb;
        return 0;
    }
    case EDIST_TYPE_TUPLE: {
        uint32_t x, y;
        rc = edist_dec_tuple(&a->cur, &x);
        if (rc == 0)
            rc = edist_dec_tuple(&b->cur, &y);
        if (rc < 0)
            return rc;
        *res = sign_of_u64(x, y);
        if (*res != 0 || x == 0)
            return 0;
        frame *f = stack_push(st, a->cur.pos, &rc);
        if (f == NULL)
            return rc;
        f->kind = FRAME_SEQ;
        f->u.seq.left = x;
        f->u.seq.end_a = SIZE_MAX;
        f->u.seq.end_b = SIZE_MAX;
        return 0;
    }
    case EDIST_TYPE_MAP: {
        size_t off_a = a->cur.pos, off_b = b->cur.pos;
        uint32_t x, y;
        rc = edist_dec_map(&a->cur, &x);
        if (rc == 0)
            rc = edist_dec_map(&b->cur, &y);
        if (rc < 0)
            return rc;
        *res = sign_of_u64(x, y);
        if (*res != 0 || x == 0)
            return 0;
        if (a->index->state == INDEX_NONE)
            rc = index_build(ctx, a);
        if (rc == 0 && b->index->state == INDEX_NONE)
            rc = index_build(ctx, b);
        size_t ea = 0, eb = 0; /* set by index_find; zeroed for -O3 -Werror */
        if (rc == 0)
            rc = index_find(a->index, off_a, &ea);
        if (rc == 0)
            rc = index_find(b->index, off_b, &eb);
        if (rc < 0)
            return rc;
        frame *f = stack_push(st, off_a, &rc);
        if (f == NULL)
            return rc;
        f->kind = FRAME_MAP;
        f->u.map.ea = ea;
        f->u.map.eb = eb;
        f->u.map.next = 0;
        f->u.map.values = 0;
        return 0;
    }
    case EDIST_TYPE_NIL: {
        const uint8_t *p;
        size_t n;
        rc = edist_dec_string(&a->cur, &p, &n); /* NIL or an empty string */
        if (rc == 0)
            rc = edist_dec_string(&b->cur, &p, &n);
        return rc;
    }
    case EDIST_TYPE_LIST: {
        list_side la, lb;
        rc = list_open(a, &ia, &la);
        if (rc == 0)
            rc = list_open(b, &ib, &lb);
        if (rc < 0)
            return rc;
        frame *f = stack_push(st, a->cur.pos, &rc);
        if (f == NULL)
            return rc;
        f->kind = FRAME_LIST;
        f->u.list.a = la;
        f->u.list.b = lb;
        return 0;
    }
    case EDIST_TYPE_BINARY: {
        const uint8_t *pa, *pb;
        size_t na, nb;
        unsigned ba, bb;
        rc = edist_dec_bitstring(&a->cur, &pa, &na, &ba);
        if (rc == 0)
            rc = edist_dec_bitstring(&b->cur, &pb, &nb, &bb);
        if (rc == 0)
            *res = bits_cmp(pa, bit_length(na, ba), pb, bit_length(nb, bb));
        return rc;
    }
    }
    return edist_set_error(EDIST_EBADTAG, "compare: unknown term at offset %zu",
                           a->cur.pos);
}

/* One step of the list frame on top of the stack. */
static int list_next(cmp_ctx *ctx, side *a, side *b, walk_stack *st, int *res)
{
    frame *f = &st->f[st->n - 1];
    int rc = list_settle(a, &f->u.list.a);
    if (rc == 0)
        rc = list_settle(b, &f->u.list.b);
    if (rc < 0)
        return rc;
    int ha = list_has_head(&f->u.list.a), hb = list_has_head(&f->u.list.b);
    if (ha && hb) {
        int xa = list_take(&f->u.list.a);
        int xb = list_take(&f->u.list.b);
        return step(ctx, a, b, xa, xb, st, res); /* may move the stack */
    }
    edist_type t;
    if (ha || hb) {
        /* A cons cell against nil or an improper tail (never a list). */
        rc = ha ? list_end_type(b, &f->u.list.b, &t)
                : list_end_type(a, &f->u.list.a, &t);
        if (rc == 0)
            *res = ha ? type_order(EDIST_TYPE_LIST, t)
                      : type_order(t, EDIST_TYPE_LIST);
        return rc;
    }
    uint8_t ma = f->u.list.a.mode, mb = f->u.list.b.mode;
    st->n--;
    if (ma == LS_NIL && mb == LS_NIL)
        return 0;
    if (ma == LS_TAIL && mb == LS_TAIL)
        return step(ctx, a, b, -1, -1, st, res);
    rc = ma == LS_NIL ? list_end_type(b, &f->u.list.b, &t)
                      : list_end_type(a, &f->u.list.a, &t);
    if (rc == 0)
        *res = ma == LS_NIL ? type_order(EDIST_TYPE_NIL, t)
                            : type_order(t, EDIST_TYPE_NIL);
    return rc;
}

/* One step of the map frame on top: keys in order, then values. */
static int map_next(cmp_ctx *ctx, side *a, side *b, walk_stack *st, int *res)
{
    frame *f = &st->f[st->n - 1];
    const map_entry *ea = &a->index->entries[f->u.map.ea];
    const map_entry *eb = &b->index->entries[f->u.map.eb];
    if (f->u.map.next == ea->pairs) {
        if (f->u.map.values) {
            a->cur.pos = ea->end;
            b->cur.pos = eb->end;
            st->n--;
            return 0;
        }
        f->u.map.values = 1;
        f->u.map.next = 0;
    }
    uint32_t k = f->u.map.next++;
    const kv_pair *pa = &a->index->pool[ea->first + k];
    const kv_pair *pb = &b->index->pool[eb->first + k];
    a->cur.pos = f->u.map.values ? pa->val : pa->key;
    b->cur.pos = f->u.map.values ? pb->val : pb->key;
    return step(ctx, a, b, -1, -1, st, res);
}

/* Compares the terms at a's and b's cursors; st must be empty. */
static int walk(cmp_ctx *ctx, side *a, side *b, walk_stack *st, int *res)
{
    int rc = step(ctx, a, b, -1, -1, st, res);
    while (rc == 0 && *res == 0 && st->n > 0) {
        frame *f = &st->f[st->n - 1];
        switch (f->kind) {
        case FRAME_SEQ:
            if (f->u.seq.left == 0) {
                if ((f->u.seq.end_a != SIZE_MAX && a->cur.pos != f->u.seq.end_a) ||
                    (f->u.seq.end_b != SIZE_MAX && b->cur.pos != f->u.seq.end_b))
                    rc = edist_set_error(EDIST_EBADTERM,
                                         "compare: fun size does not match its contents");
                st->n--;
                break;
            }
            f->u.seq.left--;
            rc = step(ctx, a, b, -1, -1, st, res);
            break;
        case FRAME_LIST:
            rc = list_next(ctx, a, b, st, res);
            break;
        default:
            rc = map_next(ctx, a, b, st, res);
            break;
        }
    }
    st->n = 0;
    return rc;
}

/* ---- building a map index ------------------------------------------------ */

static int key_cmp(cmp_ctx *ctx, const side *s, size_t ka, size_t kb, int *res)
{
    side x = *s, y = *s;
    x.cur.pos = ka;
    y.cur.pos = kb;
    int rc = walk(ctx, &x, &y, &ctx->keys, res);
    if (rc == 0 && *res == 0)
        rc = edist_set_error(EDIST_EBADTERM,
                             "compare: map has the same key twice (offsets %zu, %zu)",
                             ka, kb);
    return rc;
}

/* Bottom-up merge sort of v[0..n) by key. Runs already in order cost one
 * comparison, so maps written sorted (as erts writes small maps) take n-1
 * comparisons. Every pair of keys adjacent in the result gets compared, so
 * duplicates are always found. */
static int sort_pairs(cmp_ctx *ctx, const side *s, kv_pair *v, size_t n)
{
    int rc = grow_array((void **)&ctx->tmp, &ctx->tmp_cap, n, sizeof *ctx->tmp);
    if (rc < 0)
        return rc;
    for (size_t w = 1; w < n; w = w > n / 2 ? n : w * 2) {
        for (size_t lo = 0, hi; n - lo > w; lo = hi) {
            size_t mid = lo + w;
            hi = n - mid > w ? mid + w : n;
            int r;
            rc = key_cmp(ctx, s, v[mid - 1].key, v[mid].key, &r);
            if (rc < 0)
                return rc;
            if (r < 0)
                continue;
            size_t i = lo, j = mid, k = 0;
            while (i < mid && j < hi) {
                rc = key_cmp(ctx, s, v[i].key, v[j].key, &r);
                if (rc < 0)
                    return rc;
                ctx->tmp[k++] = r < 0 ? v[i++] : v[j++];
            }
            while (i < mid)
                ctx->tmp[k++] = v[i++];
            while (j < hi)
                ctx->tmp[k++] = v[j++];
            memcpy(v + lo, ctx->tmp, k * sizeof *v);
        }
    }
    return 0;
}

typedef struct build_frame {
    uint64_t left;     /* children not started */
    size_t entry;      /* map entry, or SIZE_MAX */
    uint32_t child;    /* map: children started */
    uint8_t tail_last; /* list: the last child is the tail */
} build_frame;

/* Indexes every map of s's term, inner maps first. */
static int index_build(cmp_ctx *ctx, side *s)
{
    map_index *ix = s->index;
    ix->state = INDEX_BUILDING;
    edist_cursor c = s->cur;
    c.pos = s->root;
    build_frame *st = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    do {
        if (n > 0) {
            build_frame *top = &st[n - 1];
            top->left--;
            if (top->entry != SIZE_MAX) {
                kv_pair *kv = &ix->pool[ix->entries[top->entry].first + top->child / 2];
                if (top->child % 2 == 0)
                    kv->key = c.pos;
                else
                    kv->val = c.pos;
                top->child++;
            } else if (top->left == 0 && top->tail_last) {
                n--; /* a list's tail continues it: no deeper nesting */
            }
        }
        edist_term_info info;
        rc = edist_peek(&c, &info);
        if (rc < 0)
            break;
        uint64_t children = 0;
        size_t entry = SIZE_MAX;
        uint8_t tail_last = 0;
        size_t at = c.pos;
        switch (info.tag) {
        case EDIST_TAG_SMALL_TUPLE:
        case EDIST_TAG_LARGE_TUPLE: {
            uint32_t k;
            rc = edist_dec_tuple(&c, &k);
            children = k;
            break;
        }
        case EDIST_TAG_LIST: {
            uint32_t k;
            rc = edist_dec_list(&c, &k);
            children = (uint64_t)k + 1;
            tail_last = 1;
            break;
        }
        case EDIST_TAG_MAP: {
            uint32_t k;
            rc = edist_dec_map(&c, &k);
            if (rc < 0)
                break;
            rc = grow_array((void **)&ix->entries, &ix->cap_entries,
                            ix->n_entries + 1, sizeof *ix->entries);
            if (rc == 0)
                rc = grow_array((void **)&ix->pool, &ix->cap_pool,
                                ix->n_pool + k, sizeof *ix->pool);
            if (rc < 0)
                break;
            entry = ix->n_entries++;
            map_entry *e = &ix->entries[entry];
            e->off = at;
            e->end = c.pos;
            e->first = ix->n_pool;
            e->pairs = k;
            e->complete = (k == 0);
            ix->n_pool += k;
            children = 2 * (uint64_t)k;
            break;
        }
        case EDIST_TAG_NEW_FUN: {
            edist_fun f;
            size_t fv;
            rc = edist_dec_fun(&c, &f);
            if (rc == 0 && f.num_free > 0) {
                rc = fun_free_vars_at(s, &f, &fv);
                c.pos = fv; /* walk into the free variables */
                children = f.num_free;
            }
            break;
        }
        default:
            rc = edist_skip(&c);
            break;
        }
        if (rc < 0)
            break;
        if (children > 0) {
            if (n >= EDIST_DEFAULT_MAX_DEPTH) {
                rc = edist_set_error(EDIST_EDEPTH,
                                     "compare: nesting deeper than %u at offset %zu",
                                     EDIST_DEFAULT_MAX_DEPTH, at);
                break;
            }
            rc = grow_array((void **)&st, &cap, n + 1, sizeof *st);
            if (rc < 0)
                break;
            st[n].left = children;
            st[n].entry = entry;
            st[n].child = 0;
            st[n].tail_last = tail_last;
            n++;
        }
        /* Finish every frame whose children are all done. */
        while (n > 0 && st[n - 1].left == 0) {
            size_t e = st[n - 1].entry;
            n--;
            if (e == SIZE_MAX)
                continue;
            ix->entries[e].end = c.pos;
            rc = sort_pairs(ctx, s, &ix->pool[ix->entries[e].first],
                            ix->entries[e].pairs);
            if (rc < 0)
                break;
            ix->entries[e].complete = 1;
        }
    } while (rc == 0 && n > 0);
    free(st);
    if (rc == 0)
        ix->state = INDEX_READY;
    return rc;
}

/* ---- entry points --------------------------------------------------------- */

int edi_term_open(const void *data, size_t len, edist_buf *scratch,
                  edist_cursor *c)
{
    const uint8_t *d = data;
    if (d == NULL && len > 0)
        return EDIST_EINVAL;
    int rc = 0;
    if (len > 0 && d[0] == EDIST_TAG_VERSION)
        rc = edist_cursor_init_ext(c, d, len, scratch);
    else
        edist_cursor_init(c, d, len);
    if (rc < 0)
        return rc;
    if (c->pos >= c->len)
        return edist_set_error(EDIST_ETRUNC, "compare: empty term");
    size_t off = 0;
    rc = edi_validate_term(c->data + c->pos, c->len - c->pos, &off);
    if (rc < 0)
        c->err_offset = c->pos + off;
    return rc;
}

static int compare_terms(const void *a, size_t alen, const void *b,
                         size_t blen, int *result)
{
    edist_buf sa, sb;
    edist_buf_init(&sa);
    edist_buf_init(&sb);
    map_index ia = {0}, ib = {0};
    cmp_ctx ctx;
    stack_init(&ctx.main);
    stack_init(&ctx.keys);
    ctx.tmp = NULL;
    ctx.tmp_cap = 0;
    side x, y;
    int rc = edi_term_open(a, alen, &sa, &x.cur);
    if (rc == 0)
        rc = edi_term_open(b, blen, &sb, &y.cur);
    if (rc == 0) {
        size_t na = x.cur.len - x.cur.pos, nb = y.cur.len - y.cur.pos;
        if (na == nb && memcmp(x.cur.data + x.cur.pos, y.cur.data + y.cur.pos, na) == 0) {
            *result = 0; /* one encoding: one term */
        } else {
            x.root = x.cur.pos;
            y.root = y.cur.pos;
            x.index = &ia;
            y.index = &ib;
            rc = walk(&ctx, &x, &y, &ctx.main, result);
        }
    }
    stack_free(&ctx.main);
    stack_free(&ctx.keys);
    free(ctx.tmp);
    index_free(&ia);
    index_free(&ib);
    edist_buf_free(&sa);
    edist_buf_free(&sb);
    return rc;
}

int edist_term_compare(const void *a, size_t alen, const void *b, size_t blen,
                       int *result)
{
    if (result == NULL)
        return EDIST_EINVAL;
    int r = 0;
    int rc = compare_terms(a, alen, b, blen, &r);
    if (rc == 0)
        *result = r;
    return rc;
}

int edist_term_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    if ((a == NULL && alen > 0) || (b == NULL && blen > 0))
        return EDIST_EINVAL;
    if (alen == blen && alen > 0 && memcmp(a, b, alen) == 0) {
        /* Same bytes: equal if they are a term at all. */
        edist_buf scratch;
        edist_buf_init(&scratch);
        edist_cursor c;
        int rc = edi_term_open(a, alen, &scratch, &c);
        edist_buf_free(&scratch);
        return rc < 0 ? rc : 1;
    }
    int r = 0;
    int rc = compare_terms(a, alen, b, blen, &r);
    return rc < 0 ? rc : r == 0;
}
