/* SPDX-License-Identifier: Apache-2.0 */
/* Selective-receive patterns.
 *
 * A pattern is parsed with the term parser (variables allowed) and compiled
 * to a compact program of 32-bit words; every variable-free subterm becomes
 * one pre-encoded canonical literal. edist_match runs the program over the
 * message in place with the decoder cursor: literals compare by bytes first
 * (=:= holds when the bytes are identical, since encodings are prefix-free),
 * then by kind, and only then with edist_term_equal; `_` is skipped, and
 * nothing after the last inspected part is read at all.
 *
 * Program nodes (words):
 *   OP_ANY
 *   OP_VAR   index
 *   OP_LIT   lit_offset lit_len type
 *   OP_TUPLE arity nrun node*nrun       (trailing `_` elements are dropped)
 *   OP_LIST  k node*k tail_node         (k >= 1 elements, then the tail)
 *   OP_MAP   k end_pc (key_off key_len key_type value_pc)*k value nodes
 */
#include <stdlib.h>
#include <string.h>

#include "term_internal.h"
#include "text_syntax.h"

/* Matching recurses once per nested structure that holds a variable; this
 * bounds it far below what an 8 MB stack allows. */
#define PATTERN_MAX_NEST 1000u
/* Map patterns track found keys in one 64-bit mask. */
#define PATTERN_MAX_MAP_KEYS 64u

enum op { OP_ANY = 1, OP_VAR, OP_LIT, OP_TUPLE, OP_LIST, OP_MAP };

struct edist_pattern {
    uint32_t *code;
    size_t ncode;
    uint8_t *lits;
    size_t lits_len;
    uint32_t nvars;
    char **names; /* nvars NUL-terminated names, in one block after the array */
};

/* ======================================================================
 * compiler
 * ==================================================================== */

typedef struct compiler {
    const edi_ast *ast;
    uint32_t *code;
    size_t ncode;
    size_t code_cap;
    edist_buf lits;
    edist_parse_error *perr;
} compiler;

static int emit_words(compiler *c, const uint32_t *w, size_t n)
{
    if (c->ncode + n > UINT32_MAX)
        return EDIST_ENOMEM;
    if (c->ncode + n > c->code_cap) {
        size_t cap = c->code_cap ? c->code_cap : 32;
        while (cap < c->ncode + n)
            cap *= 2;
        uint32_t *nc = realloc(c->code, cap * sizeof *nc);
        if (!nc)
            return EDIST_ENOMEM;
        c->code = nc;
        c->code_cap = cap;
    }
    memcpy(c->code + c->ncode, w, n * sizeof *w);
    c->ncode += n;
    return 0;
}

static int term_type(const uint8_t *bytes, size_t len, uint32_t *type)
{
    edist_cursor cur;
    edist_term_info info;
    edist_cursor_init(&cur, bytes, len);
    int rc = edist_peek(&cur, &info);
    if (rc < 0)
        return rc;
    *type = (uint32_t)info.type;
    return 0;
}

/* Encode the literal subtree (or the given bytes) into the literal pool;
 * *off, *len say where. */
static int add_literal(compiler *c, uint32_t node, const uint8_t *bytes,
                       size_t n, uint32_t *off, uint32_t *len, uint32_t *type)
{
    size_t start = c->lits.len;
    int rc = bytes ? edist_buf_append(&c->lits, bytes, n)
                   : edi_ast_encode(c->ast, node, &c->lits, NULL);
    if (rc < 0)
        return rc;
    if (c->lits.len > UINT32_MAX)
        return EDIST_ENOMEM;
    *off = (uint32_t)start;
    *len = (uint32_t)(c->lits.len - start);
    return term_type(c->lits.data + start, *len, type);
}

static int emit_literal(compiler *c, uint32_t node, const uint8_t *bytes,
                        size_t n)
{
    uint32_t w[4] = {OP_LIT, 0, 0, 0};
    int rc = add_literal(c, node, bytes, n, &w[1], &w[2], &w[3]);
    return rc < 0 ? rc : emit_words(c, w, 4);
}

static int is_anonymous(const edi_ast_node *n)
{
    return n->kind == EDI_AST_VAR && n->count == EDI_AST_NONE;
}

static int compile_node(compiler *c, uint32_t index, unsigned depth);

static int compile_list(compiler *c, const edi_ast_node *n, unsigned depth)
{
    const edi_ast *a = c->ast;
    const edi_ast_node *tail =
        n->aux == EDI_AST_NONE ? NULL : &a->nodes[n->aux];
    int string_tail = tail && tail->kind == EDI_AST_STRING;
    uint64_t k = (uint64_t)n->count + (string_tail ? tail->count : 0);
    if (k > UINT32_MAX)
        return EDIST_ENOMEM;
    uint32_t head[2] = {OP_LIST, (uint32_t)k};
    int rc = emit_words(c, head, 2);
    for (uint32_t e = n->first; rc == 0 && e != EDI_AST_NONE;
         e = a->nodes[e].next)
        rc = compile_node(c, e, depth + 1);
    if (rc < 0)
        return rc;
    if (string_tail) {
        /* "..." after '|': its characters are further integer elements */
        size_t pos = tail->first, end = pos + tail->aux;
        while (pos < end) {
            uint32_t cp;
            int len = edi_utf8_next(a->pool + pos, end - pos, &cp);
            if (len < 0)
                return EDIST_EBADTERM;
            pos += (size_t)len;
            edist_buf one;
            uint8_t mem[8];
            edist_buf_init_fixed(&one, mem, sizeof mem);
            if ((rc = edist_enc_int(&one, cp)) < 0 ||
                (rc = emit_literal(c, EDI_AST_NONE, one.data, one.len)) < 0)
                return rc;
        }
    }
    if (!tail || string_tail) {
        static const uint8_t nil = EDIST_TAG_NIL;
        return emit_literal(c, EDI_AST_NONE, &nil, 1);
    }
    return compile_node(c, n->aux, depth + 1);
}

static int compile_map(compiler *c, uint32_t index, unsigned depth)
{
    const edi_ast *a = c->ast;
    const edi_ast_node *n = &a->nodes[index];
    uint32_t k = n->count / 2;
    if (k > PATTERN_MAX_MAP_KEYS)
        return edi_text_error(c->perr, EDIST_ESYNTAX, n->line, n->column,
                              n->offset, "map pattern has more than 64 keys");
    size_t at = c->ncode;
    uint32_t head[3] = {OP_MAP, k, 0};
    int rc = emit_words(c, head, 3);
    uint32_t entry[4] = {0, 0, 0, 0};
    for (uint32_t i = 0; rc == 0 && i < k; i++)
        rc = emit_words(c, entry, 4);
    uint32_t key = n->first;
    for (uint32_t i = 0; rc == 0 && i < k; i++) {
        const edi_ast_node *kn = &a->nodes[key];
        uint32_t off, len, type;
        if ((rc = add_literal(c, key, NULL, 0, &off, &len, &type)) < 0)
            break;
        for (uint32_t j = 0; j < i; j++) {
            const uint32_t *prev = c->code + at + 3 + 4 * j;
            int eq = edist_term_equal(c->lits.data + prev[0], prev[1],
                                      c->lits.data + off, len);
            if (eq < 0)
                return eq;
            if (eq)
                return edi_text_error(c->perr, EDIST_ESYNTAX, kn->line,
                                      kn->column, kn->offset,
                                      "duplicate key in map pattern");
        }
        uint32_t *e = c->code + at + 3 + 4 * i;
        e[0] = off;
        e[1] = len;
        e[2] = type;
        e[3] = (uint32_t)c->ncode;
        uint32_t value = kn->next;
        rc = compile_node(c, value, depth + 1);
        key = a->nodes[value].next;
    }
    if (rc == 0)
        c->code[at + 2] = (uint32_t)c->ncode;
    return rc;
}

static int compile_node(compiler *c, uint32_t index, unsigned depth)
{
    const edi_ast *a = c->ast;
    const edi_ast_node *n = &a->nodes[index];
    if (!(n->flags & EDI_AST_F_NOT_LITERAL))
        return emit_literal(c, index, NULL, 0);
    if (depth >= PATTERN_MAX_NEST)
        return edi_text_error(c->perr, EDIST_EDEPTH, n->line, n->column,
                              n->offset,
                              "pattern structures with variables nest too "
                              "deep");
    switch (n->kind) {
    case EDI_AST_VAR: {
        if (n->count == EDI_AST_NONE) {
            uint32_t w = OP_ANY;
            return emit_words(c, &w, 1);
        }
        uint32_t w[2] = {OP_VAR, n->count};
        return emit_words(c, w, 2);
    }
    case EDI_AST_TUPLE: {
        uint32_t nrun = 0, i = 0;
        for (uint32_t e = n->first; e != EDI_AST_NONE; e = a->nodes[e].next) {
            i++;
            if (!is_anonymous(&a->nodes[e]))
                nrun = i;
        }
        uint32_t head[3] = {OP_TUPLE, n->count, nrun};
        int rc = emit_words(c, head, 3);
        uint32_t e = n->first;
        for (i = 0; rc == 0 && i < nrun; i++, e = a->nodes[e].next)
            rc = compile_node(c, e, depth + 1);
        return rc;
    }
    case EDI_AST_LIST:
        return compile_list(c, n, depth);
    case EDI_AST_MAP:
        return compile_map(c, index, depth);
    default: /* the parser rejects variables anywhere else */
        return edi_text_error(c->perr, EDIST_ESYNTAX, n->line, n->column,
                              n->offset, "variables are not supported here");
    }
}

int edist_pattern_compile(const char *text, size_t len, edist_pattern **out,
                          edist_parse_error *perr)
{
    if (!out)
        return edist_set_error(EDIST_EINVAL, "pattern: NULL output");
    *out = NULL;
    edi_ast ast;
    int rc = edi_text_parse(&ast, text, len, 1, 0, perr);
    compiler c;
    memset(&c, 0, sizeof c);
    c.ast = &ast;
    c.perr = perr;
    edist_buf_init(&c.lits);
    if (rc == 0)
        rc = compile_node(&c, ast.root, 0);
    if (rc == 0 && edist_buf_error(&c.lits))
        rc = edist_buf_error(&c.lits);
    edist_pattern *p = NULL;
    if (rc == 0) {
        size_t names_bytes = 0;
        for (uint32_t i = 0; i < ast.nvars; i++)
            names_bytes += (size_t)ast.vars[i].name_len + 1;
        p = calloc(1, sizeof *p);
        if (p) {
            p->names = malloc(ast.nvars * sizeof(char *) + names_bytes + 1);
            p->lits = malloc(c.lits.len ? c.lits.len : 1);
        }
        if (!p || !p->names || !p->lits) {
            rc = EDIST_ENOMEM;
        } else {
            char *blob = (char *)(p->names + ast.nvars);
            for (uint32_t i = 0; i < ast.nvars; i++) {
                p->names[i] = blob;
                memcpy(blob, ast.pool + ast.vars[i].name_off,
                       ast.vars[i].name_len);
                blob += ast.vars[i].name_len;
                *blob++ = '\0';
            }
            if (c.lits.len)
                memcpy(p->lits, c.lits.data, c.lits.len);
            p->lits_len = c.lits.len;
            p->nvars = ast.nvars;
            p->code = c.code;
            p->ncode = c.ncode;
            c.code = NULL;
        }
    }
    free(c.code);
    edist_buf_free(&c.lits);
    edi_ast_free(&ast);
    if (rc < 0) {
        edist_pattern_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void edist_pattern_free(edist_pattern *p)
{
    if (!p)
        return;
    free(p->code);
    free(p->lits);
    free(p->names);
    free(p);
}

uint32_t edist_pattern_var_count(const edist_pattern *p)
{
    return p ? p->nvars : 0;
}

int edist_pattern_var_index(const edist_pattern *p, const char *name)
{
    if (!p || !name)
        return EDIST_EINVAL;
    for (uint32_t i = 0; i < p->nvars; i++)
        if (strcmp(p->names[i], name) == 0)
            return (int)i;
    return EDIST_ENOTFOUND;
}

const char *edist_pattern_var_name(const edist_pattern *p, uint32_t index)
{
    if (!p || index >= p->nvars)
        return NULL;
    return p->names[index];
}

/* ======================================================================
 * matcher
 * ==================================================================== */

/* Encodings of terms that have no bytes of their own in the message: the
 * elements of a STRING_EXT and the [] that ends it. They can be compared
 * with, but not captured: a view must point into the caller's buffer. */
#define SI1(n)                                                                 \
    {                                                                          \
        EDIST_TAG_SMALL_INTEGER, (n)                                           \
    }
#define SI4(n) SI1(n), SI1((n) + 1), SI1((n) + 2), SI1((n) + 3)
#define SI16(n) SI4(n), SI4((n) + 4), SI4((n) + 8), SI4((n) + 12)
#define SI64(n) SI16(n), SI16((n) + 16), SI16((n) + 32), SI16((n) + 48)
static const uint8_t small_int_enc[256][2] = {SI64(0), SI64(64), SI64(128),
                                              SI64(192)};
static const uint8_t nil_enc[1] = {EDIST_TAG_NIL};

typedef struct match_ctx {
    edist_cursor c;
    const edist_pattern *p;
    edist_term_view *vars;
    uint64_t captured[EDI_PATTERN_MAX_VARS / 64];
} match_ctx;

static int match_node(match_ctx *m, uint32_t *pc, int need_end);

static int skip_terms(edist_cursor *c, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        int rc = edist_skip(c);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Under these tags a term has exactly one encoding, so complete, valid
 * bytes with the literal's tag that differ from it are a different term (the
 * common miss: another atom or small integer), known without a full decode. */
static int same_tag_differs(const edist_cursor *c, const uint8_t *t)
{
    const uint8_t *d = c->data + c->pos;
    size_t rem = c->len - c->pos;
    if (rem == 0 || d[0] != t[0])
        return 0;
    switch (t[0]) {
    case EDIST_TAG_SMALL_INTEGER:
        return rem >= 2;
    case EDIST_TAG_INTEGER:
        return rem >= 5;
    case EDIST_TAG_SMALL_ATOM_UTF8:
        return rem >= 2 && rem - 2 >= d[1] && edi_utf8_count(d + 2, d[1]) >= 0;
    default:
        return 0;
    }
}

/* The term at the cursor =:= the encoded term t of the given type? Consumes
 * the term when it matches. */
static int compare_at(match_ctx *m, const uint8_t *t, size_t tlen,
                      uint32_t type)
{
    edist_cursor *c = &m->c;
    if (c->len - c->pos >= tlen && memcmp(c->data + c->pos, t, tlen) == 0) {
        c->pos += tlen; /* a valid encoding is never a prefix of another */
        return 1;
    }
    if (same_tag_differs(c, t))
        return 0;
    edist_term_info info;
    int rc = edist_peek(c, &info);
    if (rc < 0)
        return rc;
    if ((uint32_t)info.type != type)
        return 0;
    edist_term_view v;
    if ((rc = edist_dec_term(c, &v)) < 0)
        return rc;
    return edist_term_equal(t, tlen, v.ptr, v.len);
}

static void capture(match_ctx *m, uint32_t index, const uint8_t *ptr,
                    size_t len)
{
    m->vars[index].ptr = ptr;
    m->vars[index].len = len;
    m->captured[index / 64] |= 1ull << (index % 64);
}

static int match_var(match_ctx *m, uint32_t index)
{
    edist_term_view *v = &m->vars[index];
    if (!v->ptr) {
        edist_term_view t;
        int rc = edist_dec_term(&m->c, &t);
        if (rc < 0)
            return rc;
        capture(m, index, t.ptr, t.len);
        return 1;
    }
    uint32_t type;
    if (v->len == 0 || term_type(v->ptr, v->len, &type) < 0)
        return edist_set_error(EDIST_EINVAL,
                               "match: bound variable %u is not "
                               "an encoded term",
                               index);
    return compare_at(m, v->ptr, v->len, type);
}

/* Match a program node against a term that exists only as the static
 * encoding t (a STRING_EXT element, or the [] ending one). */
static int match_static(match_ctx *m, uint32_t *pc, const uint8_t *t,
                        size_t tlen)
{
    const uint32_t *code = m->p->code;
    uint32_t at = *pc;
    switch (code[at]) {
    case OP_ANY:
        *pc = at + 1;
        return 1;
    case OP_VAR: {
        uint32_t index = code[at + 1];
        *pc = at + 2;
        edist_term_view *v = &m->vars[index];
        if (!v->ptr)
            return edist_set_error(EDIST_EUNSUPPORTED,
                                   "match: cannot capture an element or the "
                                   "end of a STRING_EXT list (it has no "
                                   "encoding of its own in the message)");
        if (v->len == tlen && memcmp(v->ptr, t, tlen) == 0)
            return 1;
        return edist_term_equal(v->ptr, v->len, t, tlen);
    }
    case OP_LIT: {
        const uint8_t *lit = m->p->lits + code[at + 1];
        uint32_t len = code[at + 2];
        *pc = at + 4;
        /* both canonical, so equal terms have equal bytes */
        return len == tlen && memcmp(lit, t, tlen) == 0;
    }
    default: /* a tuple, list or map is never an integer or [] */
        return 0;
    }
}

static int match_tuple(match_ctx *m, uint32_t *pc, int need_end)
{
    const uint32_t *code = m->p->code;
    uint32_t at = *pc;
    edist_term_info info;
    int rc = edist_peek(&m->c, &info);
    if (rc < 0)
        return rc;
    if (info.type != EDIST_TYPE_TUPLE || info.count != code[at + 1])
        return 0;
    uint32_t arity;
    if ((rc = edist_dec_tuple(&m->c, &arity)) < 0)
        return rc;
    uint32_t nrun = code[at + 2];
    uint32_t next = at + 3;
    for (uint32_t i = 0; i < nrun; i++) {
        rc = match_node(m, &next, need_end || i + 1 < nrun);
        if (rc != 1)
            return rc;
    }
    if (need_end && (rc = skip_terms(&m->c, arity - nrun)) < 0)
        return rc;
    *pc = next;
    return 1;
}

/* Where a list walk stands: inside a LIST_EXT (elements are terms at the
 * cursor) or a STRING_EXT (elements are bytes). */
typedef struct list_pos {
    int is_string;
    const uint8_t *bytes;
    uint64_t remaining;
} list_pos;

/* At the cursor is what follows a finished LIST_EXT segment. Returns 1 and
 * loads the next segment if it is a list, 0 if it is [] (consumed), 2 if it
 * is some other term (left at the cursor). */
static int next_segment(match_ctx *m, list_pos *lp)
{
    edist_term_info info;
    int rc = edist_peek(&m->c, &info);
    if (rc < 0)
        return rc;
    if (info.type == EDIST_TYPE_NIL)
        return (rc = edist_dec_nil(&m->c)) < 0 ? rc : 0;
    if (info.type != EDIST_TYPE_LIST)
        return 2;
    if (info.tag == EDIST_TAG_STRING) {
        size_t n;
        if ((rc = edist_dec_string(&m->c, &lp->bytes, &n)) < 0)
            return rc;
        lp->is_string = 1;
        lp->remaining = n;
        return 1;
    }
    uint32_t n;
    if ((rc = edist_dec_list(&m->c, &n)) < 0)
        return rc;
    lp->is_string = 0;
    lp->remaining = n;
    return 1;
}

/* Skip what is left of a list from lp (elements and the final tail). */
static int skip_list_rest(match_ctx *m, list_pos *lp)
{
    if (lp->is_string)
        return 0;
    int rc = skip_terms(&m->c, lp->remaining);
    return rc < 0 ? rc : edist_skip(&m->c);
}

static int match_list(match_ctx *m, uint32_t *pc, int need_end)
{
    const uint32_t *code = m->p->code;
    uint32_t k = code[*pc + 1];
    uint32_t next = *pc + 2;
    edist_term_info info;
    int rc = edist_peek(&m->c, &info);
    if (rc < 0)
        return rc;
    if (info.type != EDIST_TYPE_LIST)
        return 0; /* includes [], which has fewer than k >= 1 elements */
    list_pos lp;
    if ((rc = next_segment(m, &lp)) < 0)
        return rc;
    for (uint32_t i = 0; i < k; i++) {
        /* LIST_EXT segments may end in further lists (not canonical, but
         * the same term) */
        while (lp.remaining == 0) {
            if (lp.is_string)
                return 0;
            if ((rc = next_segment(m, &lp)) != 1)
                return rc < 0 ? rc : 0; /* shorter than the pattern */
        }
        if (lp.is_string)
            rc = match_static(m, &next, small_int_enc[*lp.bytes++], 2);
        else
            rc = match_node(m, &next, 1);
        if (rc != 1)
            return rc;
        lp.remaining--;
    }
    /* The tail pattern against the rest of the list. */
    uint32_t op = code[next];
    if (lp.remaining == 0) {
        if (lp.is_string)
            rc = match_static(m, &next, nil_enc, 1);
        else
            rc = match_node(m, &next, need_end); /* the tail term itself */
    } else if (op == OP_ANY) {
        next++;
        rc = need_end ? skip_list_rest(m, &lp) : 0;
        rc = rc < 0 ? rc : 1;
    } else if (op == OP_VAR) {
        /* The rest is a list that has no encoding of its own in the
         * message (it starts inside a LIST_EXT or STRING_EXT). */
        return edist_set_error(EDIST_EUNSUPPORTED,
                               "match: a variable tail cannot capture part of "
                               "a list ([H|T] needs T to be the encoded tail)");
    } else {
        return 0; /* a literal or structured tail is never a non-empty list */
    }
    if (rc == 1)
        *pc = next;
    return rc;
}

static int match_map(match_ctx *m, uint32_t *pc, int need_end)
{
    const edist_pattern *p = m->p;
    const uint32_t *code = p->code;
    uint32_t at = *pc;
    uint32_t k = code[at + 1];
    const uint32_t *entries = code + at + 3;
    edist_term_info info;
    int rc = edist_peek(&m->c, &info);
    if (rc < 0)
        return rc;
    if (info.type != EDIST_TYPE_MAP || info.count < k)
        return 0;
    uint32_t npairs;
    if ((rc = edist_dec_map(&m->c, &npairs)) < 0)
        return rc;
    uint64_t all = k == 64 ? UINT64_MAX : (1ull << k) - 1, found = 0;
    for (uint32_t j = 0; j < npairs; j++) {
        if (found == all) {
            if (!need_end)
                break;
            if ((rc = skip_terms(&m->c, 2)) < 0)
                return rc;
            continue;
        }
        edist_cursor *c = &m->c;
        int matched = -1;
        for (uint32_t i = 0; i < k && matched < 0; i++) {
            const uint32_t *e = entries + 4 * i;
            if (!(found & (1ull << i)) && c->len - c->pos >= e[1] &&
                memcmp(c->data + c->pos, p->lits + e[0], e[1]) == 0) {
                c->pos += e[1];
                matched = (int)i;
            }
        }
        if (matched < 0) {
            edist_term_info key_info;
            edist_term_view key;
            if ((rc = edist_peek(c, &key_info)) < 0 ||
                (rc = edist_dec_term(c, &key)) < 0)
                return rc;
            for (uint32_t i = 0; i < k && matched < 0; i++) {
                const uint32_t *e = entries + 4 * i;
                if ((found & (1ull << i)) || e[2] != (uint32_t)key_info.type)
                    continue;
                rc = edist_term_equal(p->lits + e[0], e[1], key.ptr, key.len);
                if (rc < 0)
                    return rc;
                if (rc)
                    matched = (int)i;
            }
        }
        if (matched < 0) {
            if ((rc = edist_skip(c)) < 0)
                return rc;
            continue;
        }
        found |= 1ull << matched;
        uint32_t value_pc = entries[4 * matched + 3];
        if ((rc = match_node(m, &value_pc, 1)) != 1)
            return rc;
    }
    if (found != all)
        return 0;
    *pc = code[at + 2];
    return 1;
}

static int match_node(match_ctx *m, uint32_t *pc, int need_end)
{
    const uint32_t *code = m->p->code;
    uint32_t at = *pc;
    switch (code[at]) {
    case OP_ANY: {
        *pc = at + 1;
        if (!need_end)
            return 1;
        int rc = edist_skip(&m->c);
        return rc < 0 ? rc : 1;
    }
    case OP_VAR:
        *pc = at + 2;
        return match_var(m, code[at + 1]);
    case OP_LIT:
        *pc = at + 4;
        return compare_at(m, m->p->lits + code[at + 1], code[at + 2],
                          code[at + 3]);
    case OP_TUPLE:
        return match_tuple(m, pc, need_end);
    case OP_LIST:
        return match_list(m, pc, need_end);
    case OP_MAP:
        return match_map(m, pc, need_end);
    default:
        return edist_set_error(EDIST_EINVAL, "match: corrupt pattern");
    }
}

int edist_match(const edist_pattern *p, const void *term, size_t len,
                edist_term_view *vars)
{
    if (!p || (!term && len) || (p->nvars && !vars))
        return edist_set_error(EDIST_EINVAL, "match: bad arguments");
    const uint8_t *d = term;
    if (len == 0)
        return edist_set_error(EDIST_ETRUNC, "match: empty term");
    if (d[0] == EDIST_TAG_VERSION) {
        if (len >= 2 && d[1] == EDIST_TAG_COMPRESSED)
            return edist_set_error(EDIST_EUNSUPPORTED,
                                   "match: compressed terms are not accepted "
                                   "(captures must point into the caller's "
                                   "buffer)");
        d++;
        len--;
    }
    match_ctx m;
    edist_cursor_init(&m.c, d, len);
    m.p = p;
    m.vars = vars;
    size_t words = (p->nvars + 63) / 64;
    memset(m.captured, 0, words * sizeof m.captured[0]);
    uint32_t pc = 0;
    int rc = match_node(&m, &pc, 0);
    if (rc != 1) {
        /* leave variables unbound on entry unbound */
        for (size_t w = 0; w < words; w++) {
            uint64_t bits = m.captured[w];
            while (bits) {
                unsigned b = (unsigned)__builtin_ctzll(bits);
                bits &= bits - 1;
                vars[w * 64 + b].ptr = NULL;
                vars[w * 64 + b].len = 0;
            }
        }
    }
    return rc;
}
