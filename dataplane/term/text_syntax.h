/* SPDX-License-Identifier: Apache-2.0 */
/* Private: the Erlang text front end shared by parse.c (terms) and
 * pattern.c (selective-receive patterns). Text is lexed and parsed into a
 * small AST first, because the canonical encoding needs whole-term knowledge
 * (is a list a string? what order do map keys go in?). Not public API. */
#ifndef EDIST_TEXT_SYNTAX_H
#define EDIST_TEXT_SYNTAX_H

#include <stddef.h>
#include <stdint.h>

#include "edist/term.h"

#define EDI_AST_NONE UINT32_MAX

/* Patterns may name at most this many distinct variables, so the matcher can
 * track its captures in a fixed bitmap on the stack (no allocation). */
#define EDI_PATTERN_MAX_VARS 256u

/* Largest text accepted; keeps every pool offset within 32 bits. */
#define EDI_TEXT_MAX_INPUT ((size_t)1 << 30)

/* Binary literals can expand (<<0:1000000000>>): all the binary data one
 * parse builds is limited to this many bytes plus the input length. */
#define EDI_TEXT_BINARY_BUDGET_BYTES ((size_t)1 << 20)

typedef enum edi_ast_kind {
    EDI_AST_INT = 1, /* v.i */
    EDI_AST_BIG,     /* magnitude (little-endian) at pool[first], aux bytes;
                        sign in EDI_AST_F_NEGATIVE */
    EDI_AST_FLOAT,   /* v.f */
    EDI_AST_ATOM,    /* UTF-8 name at pool[first], aux bytes */
    EDI_AST_STRING,  /* "..." literal: UTF-8 at pool[first], aux bytes, count
                        characters, v.w.a the largest code point */
    EDI_AST_NIL,
    EDI_AST_TUPLE,  /* count children from first (linked by next) */
    EDI_AST_LIST,   /* count elements from first; aux: tail node or NONE for
                       a proper list. A STRING tail's characters are further
                       elements (the tail is then []); tails that are lists
                       are spliced in when parsed. v.w.a: last element. */
    EDI_AST_MAP,    /* count children: key, value, key, value ...; in terms
                       (not patterns) sorted by key, without duplicates */
    EDI_AST_BINARY, /* v.u bits at pool[first], aux bytes */
    EDI_AST_PID,    /* v.w.a id, v.w.b serial (local node) */
    EDI_AST_PORT,   /* v.u id (local node) */
    EDI_AST_REF,    /* count words (wire order, 4 bytes each, native) at
                       pool[first] (local node) */
    EDI_AST_EXPORT, /* fun M:F/A: first = module atom node, whose next is the
                       function atom node; count = arity */
    EDI_AST_VAR,    /* pattern variable: count = index, or EDI_AST_NONE for
                       `_`; name at pool[first], aux bytes */
} edi_ast_kind;

enum {
    /* The subtree holds a variable or a map pattern (which matches a subset
     * of keys), so a pattern must match it structurally. */
    EDI_AST_F_NOT_LITERAL = 1u << 0,
    EDI_AST_F_SIGNED = 1u << 1,   /* number written with a sign */
    EDI_AST_F_NEGATIVE = 1u << 2, /* EDI_AST_BIG: negative */
    EDI_AST_F_BYTE = 1u << 3,     /* EDI_AST_INT in 0..255 */
};

typedef struct edi_ast_node {
    uint8_t kind;
    uint8_t flags;
    uint32_t count;
    uint32_t first;
    uint32_t next; /* next sibling or EDI_AST_NONE */
    uint32_t aux;
    uint32_t line; /* where the node starts in the text */
    uint32_t column;
    uint32_t offset;
    union {
        int64_t i;
        uint64_t u;
        double f;
        struct {
            uint32_t a, b;
        } w;
    } v;
} edi_ast_node;

typedef struct edi_ast_var {
    uint32_t name_off; /* pool */
    uint32_t name_len;
} edi_ast_var;

typedef struct edi_ast {
    edi_ast_node *nodes;
    uint32_t nnodes;
    size_t node_cap;
    uint8_t *pool; /* decoded text, magnitudes, binary data */
    size_t pool_len;
    size_t pool_cap;
    uint32_t root;
    edi_ast_var *vars; /* named variables in order of first appearance */
    uint32_t nvars;
    size_t var_cap;
} edi_ast;

/* Parse one term (allow_vars: a pattern) into *ast, which the caller frees
 * with edi_ast_free whatever the result. max_depth 0 means the default.
 * Returns 0, EDIST_ESYNTAX (with *perr filled when perr != NULL),
 * EDIST_EDEPTH, EDIST_ENOMEM or EDIST_EINVAL. */
int edi_text_parse(edi_ast *ast, const char *text, size_t len, int allow_vars,
                   uint32_t max_depth, edist_parse_error *perr);
void edi_ast_free(edi_ast *ast);

/* Append the canonical encoding of the variable-free subtree at node to out.
 * opts (may be NULL) names the node that pids, ports and refs belong to. */
int edi_ast_encode(const edi_ast *ast, uint32_t node, edist_buf *out,
                   const edist_text_opts *opts);

/* Fill *perr (may be NULL) and the thread's last-error text for a syntax
 * problem found after parsing (by the pattern compiler); returns err. */
int edi_text_error(edist_parse_error *perr, int err, uint32_t line,
                   uint32_t column, size_t offset, const char *message);

#endif
