/* SPDX-License-Identifier: Apache-2.0 */
/* Erlang term text -> canonical External Term Format.
 *
 * The lexer follows erl_scan (OTP 25): the same escapes, number forms, digit
 * separators, Latin-1 name characters and reserved words. The grammar is
 * what erl_parse:parse_term/1 accepts (literals, tuples, lists with tails,
 * maps, binaries, fun M:F/A, a sign on a number, parentheses) plus the ~w
 * forms of local pids, ports and refs, and variables when parsing patterns.
 *
 * Text becomes a small AST first (one node per token at most, so bounded by
 * the input), then the AST is encoded; both passes keep their own explicit
 * stacks, so nesting depth never deepens the C stack. */
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "term_internal.h"
#include "text_syntax.h"

/* ======================================================================
 * small utilities
 * ==================================================================== */

static int grow_array(void **ptr, size_t *cap, size_t need, size_t elem_size)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elem_size)
            return EDIST_ENOMEM;
        ncap *= 2;
    }
    void *n = realloc(*ptr, ncap * elem_size);
    if (!n)
        return EDIST_ENOMEM;
    *ptr = n;
    *cap = ncap;
    return 0;
}

/* erl_scan's ?UNICODE: a code point that may appear in text. */
static int is_text_char(uint32_t cp)
{
    return cp < 0xD800 || (cp > 0xDFFF && cp < 0xFFFE) ||
           (cp > 0xFFFF && cp <= 0x10FFFF);
}

/* Bytes of s that fit in max without cutting a UTF-8 sequence. */
static int clip_utf8(const uint8_t *s, size_t len, size_t max)
{
    if (len <= max)
        return (int)len;
    size_t n = max;
    while (n > 0 && (s[n] & 0xC0) == 0x80)
        n--;
    return (int)n;
}

int edi_text_error(edist_parse_error *perr, int err, uint32_t line,
                   uint32_t column, size_t offset, const char *message)
{
    if (perr) {
        perr->line = line;
        perr->column = column;
        perr->offset = offset;
        snprintf(perr->message, sizeof perr->message, "%s", message);
    }
    edist_set_error(err, "line %u, column %u: %s", (unsigned)line,
                    (unsigned)column, message);
    return err;
}

/* ======================================================================
 * AST storage
 * ==================================================================== */

void edi_ast_free(edi_ast *ast)
{
    if (!ast)
        return;
    free(ast->nodes);
    free(ast->pool);
    free(ast->vars);
    memset(ast, 0, sizeof *ast);
}

static int pool_reserve(edi_ast *a, size_t n)
{
    if (n > SIZE_MAX - a->pool_len)
        return EDIST_ENOMEM;
    return grow_array((void **)&a->pool, &a->pool_cap, a->pool_len + n, 1);
}

static int pool_put(edi_ast *a, const void *bytes, size_t n)
{
    int rc = pool_reserve(a, n);
    if (rc < 0)
        return rc;
    if (n)
        memcpy(a->pool + a->pool_len, bytes, n);
    a->pool_len += n;
    return 0;
}

static int pool_put_utf8(edi_ast *a, uint32_t cp)
{
    uint8_t b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (uint8_t)(0xC0 | (cp >> 6));
        b[1] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (uint8_t)(0xE0 | (cp >> 12));
        b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (uint8_t)(0xF0 | (cp >> 18));
        b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return pool_put(a, b, n);
}

/* ======================================================================
 * lexer
 * ==================================================================== */

typedef enum tok_kind {
    TK_EOF,
    TK_INT, /* v.i >= 0; is_char for $c */
    TK_BIG, /* magnitude in the pool */
    TK_FLOAT,
    TK_ATOM,
    TK_VAR,
    TK_STRING,
    TK_PID,  /* v.w.a id, v.w.b serial */
    TK_PORT, /* v.u id */
    TK_REF,  /* nchars words in the pool, wire order */
    TK_FUN,  /* the reserved word fun */
    TK_LBRACE,
    TK_RBRACE,
    TK_LBRACKET,
    TK_RBRACKET,
    TK_LPAREN,
    TK_RPAREN,
    TK_LBIN,
    TK_RBIN,
    TK_COMMA,
    TK_BAR,
    TK_HASH,
    TK_ARROW,       /* => */
    TK_ASSOC_EXACT, /* := */
    TK_COLON,
    TK_SLASH,
    TK_MINUS,
    TK_PLUS,
    TK_DOT,
    TK_PUNCT, /* any other punctuation: never valid here */
} tok_kind;

typedef struct token {
    tok_kind kind;
    uint8_t is_char;
    uint32_t line;
    uint32_t column;
    size_t offset;
    size_t end;
    uint32_t text_off; /* pool */
    uint32_t text_len;
    uint32_t nchars;
    uint32_t maxchar;
    union {
        int64_t i;
        uint64_t u;
        double f;
        struct {
            uint32_t a, b;
        } w;
    } v;
} token;

enum frame_kind { FR_TUPLE, FR_LIST, FR_MAP, FR_BIN, FR_PAREN, FR_SIGN };

typedef struct frame {
    uint8_t kind;
    uint8_t state; /* LIST: 1 after '|'; MAP: 1 after the key; SIGN: 1 = '-' */
    uint32_t node;
    uint32_t last;
    uint32_t line; /* of the opening token */
    uint32_t column;
    size_t offset;
    size_t bits_start; /* BIN: where its bytes start in parser.bits */
    uint64_t nbits;    /* BIN: bits written so far */
} frame;

typedef struct parser {
    const uint8_t *src;
    size_t len;
    size_t pos;
    uint32_t line;
    uint32_t col;
    int allow_vars;
    uint32_t max_depth;
    uint32_t depth;
    edi_ast *ast;
    edist_parse_error *perr;
    token tok; /* lookahead */
    frame *frames;
    size_t nframes;
    size_t frame_cap;
    uint8_t *bits; /* binaries under construction, innermost last */
    size_t bits_len;
    size_t bits_cap;
    size_t bin_budget; /* bytes of binary data still allowed */
    size_t key_budget; /* bytes sort_map may still encode */
    edist_buf scratch;
    edist_buf mag;
    /* sort_map's working space */
    struct map_pair *pairs;
    size_t pairs_cap;
    uint32_t *order, *order_tmp;
    size_t order_cap, order_tmp_cap;
    edist_buf keys;
} parser;

typedef struct map_pair {
    uint32_t key, value;
    size_t key_start, key_len; /* encoded key in parser.keys */
} map_pair;

static int fail_at(parser *p, uint32_t line, uint32_t col, size_t off,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail_at(parser *p, uint32_t line, uint32_t col, size_t off,
                   const char *fmt, ...)
{
    char msg[sizeof p->perr->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return edi_text_error(p->perr, EDIST_ESYNTAX, line, col, off, msg);
}

#define FAIL_TOK(p, t, ...)                                                    \
    fail_at((p), (t)->line, (t)->column, (t)->offset, __VA_ARGS__)
#define FAIL_HERE(p, ...)                                                      \
    fail_at((p), (p)->line, (p)->col, (p)->pos, __VA_ARGS__)

static int fail_nomem(parser *p)
{
    return edi_text_error(p->perr, EDIST_ENOMEM, p->line, p->col, p->pos,
                          "out of memory");
}

/* Decode the character at `at`: bytes used (>= 1), 0 at the end, -1 if the
 * bytes are not UTF-8. */
static int char_at(const parser *p, size_t at, uint32_t *cp)
{
    if (at >= p->len)
        return 0;
    uint8_t c = p->src[at];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    return edi_utf8_next(p->src + at, p->len - at, cp);
}

/* Consume one character of n bytes, keeping line and column. */
static void step(parser *p, int n, uint32_t cp)
{
    p->pos += (size_t)n;
    if (cp == '\n') {
        p->line++;
        p->col = 1;
    } else {
        p->col++;
    }
}

static int skip_blank(parser *p)
{
    while (p->pos < p->len) {
        uint8_t c = p->src[p->pos];
        if (c == '\n') {
            step(p, 1, c);
        } else if (c <= ' ') {
            step(p, 1, c);
        } else if (c == '%') {
            while (p->pos < p->len && p->src[p->pos] != '\n') {
                uint32_t cp;
                int n = char_at(p, p->pos, &cp);
                if (n < 0)
                    return FAIL_HERE(p, "invalid UTF-8 in comment");
                if (!is_text_char(cp))
                    return FAIL_HERE(p, "illegal character in comment");
                step(p, n, cp);
            }
        } else if (c >= 0x80) {
            uint32_t cp;
            int n = char_at(p, p->pos, &cp);
            if (n < 0)
                return FAIL_HERE(p, "invalid UTF-8");
            if (cp > 0xA0) /* U+0080..U+00A0 are white space to erl_scan */
                return 0;
            step(p, n, cp);
        } else {
            return 0;
        }
    }
    return 0;
}

static int is_name_char(uint32_t cp)
{
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
        (cp >= '0' && cp <= '9') || cp == '_' || cp == '@')
        return 1;
    return (cp >= 0xC0 && cp <= 0xFF && cp != 0xD7 && cp != 0xF7);
}

static int is_reserved_word(const uint8_t *s, size_t n)
{
    static const char *const words[] = {
        "after",  "begin", "case", "try", "cond", "catch", "andalso",
        "orelse", "end",   "fun",  "if",  "let",  "of",    "receive",
        "when",   "bnot",  "not",  "div", "rem",  "band",  "and",
        "bor",    "bxor",  "bsl",  "bsr", "or",   "xor",
    };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strlen(words[i]) == n && memcmp(words[i], s, n) == 0)
            return 1;
    return 0;
}

static int lex_name(parser *p, int is_var)
{
    token *t = &p->tok;
    size_t start = p->pos;
    uint32_t nchars = 0;
    for (;;) {
        uint32_t cp;
        int n = char_at(p, p->pos, &cp);
        if (n <= 0 || !is_name_char(cp))
            break; /* bad UTF-8 is reported by the next token */
        step(p, n, cp);
        nchars++;
    }
    size_t len = p->pos - start;
    if (nchars > EDIST_ATOM_MAX_CHARS)
        return FAIL_TOK(p, t, "%s too long (more than 255 characters)",
                        is_var ? "variable name" : "atom");
    t->end = p->pos;
    if (!is_var && is_reserved_word(p->src + start, len)) {
        if (len == 3 && memcmp(p->src + start, "fun", 3) == 0) {
            t->kind = TK_FUN;
            return 0;
        }
        return FAIL_TOK(p, t,
                        "reserved word '%.*s' must be quoted to be an atom",
                        (int)len, (const char *)p->src + start);
    }
    t->kind = is_var ? TK_VAR : TK_ATOM;
    t->text_off = (uint32_t)p->ast->pool_len;
    t->text_len = (uint32_t)len;
    t->nchars = nchars;
    if (pool_put(p->ast, p->src + start, len) < 0)
        return fail_nomem(p);
    return 0;
}

static int digit_value(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'Z')
        return c - 'A' + 10;
    return 99;
}

/* Digits of base with single '_' separators between digits (as erl_scan).
 * Returns how many digits were consumed. */
static size_t scan_digits(parser *p, int base)
{
    size_t ndigits = 0;
    while (p->pos < p->len) {
        uint8_t c = p->src[p->pos];
        if (digit_value(c) < base) {
            ndigits++;
            p->pos++;
            p->col++;
        } else if (c == '_' && ndigits > 0 && p->pos + 1 < p->len &&
                   digit_value(p->src[p->pos + 1]) < base) {
            p->pos++;
            p->col++;
        } else {
            break;
        }
    }
    return ndigits;
}

/* Copy src[from, to) without '_' into scratch, NUL-terminated. */
static int strip_separators(parser *p, size_t from, size_t to)
{
    edist_buf_reset(&p->scratch);
    for (size_t i = from; i < to; i++)
        if (p->src[i] != '_')
            edist_buf_append(&p->scratch, p->src + i, 1);
    if (!edist_buf_cstr(&p->scratch))
        return fail_nomem(p);
    return 0;
}

/* Value of the digits in scratch, in base; 0 if it overflows 64 bits. */
static int scratch_to_u64(const parser *p, size_t from, int base, uint64_t *v)
{
    uint64_t acc = 0;
    for (size_t i = from; i < p->scratch.len; i++) {
        unsigned d = (unsigned)digit_value(p->scratch.data[i]);
        if (acc > (UINT64_MAX - d) / (unsigned)base)
            return 0;
        acc = acc * (unsigned)base + d;
    }
    *v = acc;
    return 1;
}

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale;

static void make_c_locale(void)
{
    c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

/* Correctly rounded decimal -> double, independent of the caller's locale. */
static int text_to_double(const char *s, double *out)
{
    pthread_once(&c_locale_once, make_c_locale);
    if (!c_locale)
        return EDIST_ENOMEM;
    char *end;
    double d = strtod_l(s, &end, c_locale);
    if (*end != '\0' || isinf(d) || isnan(d))
        return EDIST_ERANGE;
    *out = d;
    return 0;
}

static int lex_number(parser *p)
{
    token *t = &p->tok;
    size_t start = p->pos;
    scan_digits(p, 10);
    size_t int_end = p->pos;
    if (p->pos + 1 < p->len && p->src[p->pos] == '.' &&
        digit_value(p->src[p->pos + 1]) < 10) {
        p->pos++;
        p->col++;
        scan_digits(p, 10);
        if (p->pos < p->len && (p->src[p->pos] | 0x20) == 'e') {
            p->pos++;
            p->col++;
            if (p->pos < p->len &&
                (p->src[p->pos] == '+' || p->src[p->pos] == '-')) {
                p->pos++;
                p->col++;
            }
            if (scan_digits(p, 10) == 0)
                return FAIL_TOK(p, t, "malformed float: no digits in exponent");
        }
        int rc = strip_separators(p, start, p->pos);
        if (rc < 0)
            return rc;
        rc = text_to_double((const char *)p->scratch.data, &t->v.f);
        if (rc == EDIST_ENOMEM)
            return fail_nomem(p);
        if (rc < 0)
            return FAIL_TOK(p, t, "float out of range");
        t->kind = TK_FLOAT;
        t->end = p->pos;
        return 0;
    }
    int base = 10;
    size_t digits_from = 0;
    if (p->pos < p->len && p->src[p->pos] == '#') {
        int rc = strip_separators(p, start, int_end);
        if (rc < 0)
            return rc;
        uint64_t b;
        if (!scratch_to_u64(p, 0, 10, &b) || b < 2 || b > 36)
            return FAIL_TOK(p, t, "invalid base %.*s (must be 2..36)",
                            clip_utf8(p->src + start, int_end - start, 20),
                            (const char *)p->src + start);
        base = (int)b;
        p->pos++;
        p->col++;
        if (scan_digits(p, base) == 0)
            return FAIL_TOK(p, t, "missing digits after '%d#'", base);
        /* scratch = "base#digits" for edist_big_from_text */
        rc = strip_separators(p, start, p->pos);
        if (rc < 0)
            return rc;
        const uint8_t *hash = memchr(p->scratch.data, '#', p->scratch.len);
        digits_from = (size_t)(hash - p->scratch.data) + 1;
    } else {
        int rc = strip_separators(p, start, p->pos);
        if (rc < 0)
            return rc;
    }
    t->end = p->pos;
    uint64_t v;
    if (scratch_to_u64(p, digits_from, base, &v) && v <= INT64_MAX) {
        t->kind = TK_INT;
        t->v.i = (int64_t)v;
        return 0;
    }
    int negative = 0;
    edist_buf_reset(&p->mag);
    int rc = edist_big_from_text((const char *)p->scratch.data, p->scratch.len,
                                 &negative, &p->mag);
    if (rc == EDIST_ENOMEM || edist_buf_error(&p->mag))
        return fail_nomem(p);
    if (rc < 0 || negative)
        return FAIL_TOK(p, t, "malformed integer");
    t->kind = TK_BIG;
    t->text_off = (uint32_t)p->ast->pool_len;
    t->text_len = (uint32_t)p->mag.len;
    if (pool_put(p->ast, p->mag.data, p->mag.len) < 0)
        return fail_nomem(p);
    return 0;
}

static uint32_t escape_char(uint32_t c)
{
    switch (c) {
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'v':
        return '\v';
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'e':
        return 27;
    case 's':
        return ' ';
    case 'd':
        return 127;
    default:
        return c;
    }
}

/* After a backslash: decode one escape sequence into *val. `what` names the
 * literal for the unterminated message, reported at the token start. */
static int lex_escape(parser *p, const char *what, uint32_t *val)
{
    const token *t = &p->tok;
    if (p->pos >= p->len)
        return FAIL_TOK(p, t, "unterminated %s", what);
    uint8_t c = p->src[p->pos];
    if (c >= '0' && c <= '7') {
        uint32_t v = 0;
        for (int i = 0; i < 3 && p->pos < p->len && p->src[p->pos] >= '0' &&
                        p->src[p->pos] <= '7';
             i++) {
            v = v * 8 + (uint32_t)(p->src[p->pos] - '0');
            p->pos++;
            p->col++;
        }
        *val = v;
        return 0;
    }
    if (c == 'x') {
        uint32_t line = p->line, col = p->col - 1;
        size_t off = p->pos - 1;
        p->pos++;
        p->col++;
        if (p->pos < p->len && p->src[p->pos] == '{') {
            p->pos++;
            p->col++;
            uint32_t v = 0;
            size_t ndigits = 0;
            int too_big = 0;
            while (p->pos < p->len && digit_value(p->src[p->pos]) < 16) {
                v = v * 16 + (uint32_t)digit_value(p->src[p->pos]);
                if (v > 0x10FFFF) {
                    too_big = 1;
                    v = 0x10FFFF;
                }
                ndigits++;
                p->pos++;
                p->col++;
            }
            if (p->pos >= p->len)
                return FAIL_TOK(p, t, "unterminated %s", what);
            if (p->src[p->pos] != '}' || ndigits == 0)
                return fail_at(p, line, col, off, "malformed \\x{...} escape");
            p->pos++;
            p->col++;
            if (too_big || !is_text_char(v))
                return fail_at(p, line, col, off,
                               "\\x{...} escape is not a valid character");
            *val = v;
            return 0;
        }
        if (p->pos + 1 < p->len && digit_value(p->src[p->pos]) < 16 &&
            digit_value(p->src[p->pos + 1]) < 16) {
            *val = (uint32_t)(digit_value(p->src[p->pos]) * 16 +
                              digit_value(p->src[p->pos + 1]));
            p->pos += 2;
            p->col += 2;
            return 0;
        }
        if (p->pos + 1 >= p->len)
            return FAIL_TOK(p, t, "unterminated %s", what);
        return fail_at(p, line, col, off,
                       "malformed \\x escape (expected two hex digits)");
    }
    if (c == '^') {
        p->pos++;
        p->col++;
        uint32_t cp;
        int n = char_at(p, p->pos, &cp);
        if (n == 0)
            return FAIL_TOK(p, t, "unterminated %s", what);
        if (n < 0)
            return FAIL_HERE(p, "invalid UTF-8");
        step(p, n, cp);
        *val = cp & 31;
        return 0;
    }
    uint32_t cp;
    int n = char_at(p, p->pos, &cp);
    if (n < 0)
        return FAIL_HERE(p, "invalid UTF-8");
    if (!is_text_char(cp))
        return FAIL_HERE(p, "illegal character");
    step(p, n, cp);
    *val = escape_char(cp);
    return 0;
}

static int lex_char(parser *p)
{
    token *t = &p->tok;
    p->pos++; /* $ */
    p->col++;
    uint32_t cp;
    int n = char_at(p, p->pos, &cp);
    if (n == 0)
        return FAIL_TOK(p, t, "expected a character after '$'");
    if (n < 0)
        return FAIL_HERE(p, "invalid UTF-8");
    if (cp == '\\') {
        step(p, n, cp);
        int rc = lex_escape(p, "character literal", &cp);
        if (rc < 0)
            return rc;
    } else {
        if (!is_text_char(cp))
            return FAIL_HERE(p, "illegal character");
        step(p, n, cp);
    }
    t->kind = TK_INT;
    t->is_char = 1;
    t->v.i = cp;
    t->end = p->pos;
    return 0;
}

/* "string" or 'atom': decoded UTF-8 goes to the pool. */
static int lex_quoted(parser *p, uint8_t quote)
{
    token *t = &p->tok;
    const char *what = quote == '"' ? "string" : "quoted atom";
    p->pos++;
    p->col++;
    t->text_off = (uint32_t)p->ast->pool_len;
    uint32_t nchars = 0, maxchar = 0;
    for (;;) {
        uint32_t cp;
        int n = char_at(p, p->pos, &cp);
        if (n == 0)
            return FAIL_TOK(p, t, "unterminated %s", what);
        if (n < 0)
            return FAIL_HERE(p, "invalid UTF-8");
        if (cp == quote) {
            step(p, n, cp);
            break;
        }
        if (cp == '\\') {
            step(p, n, cp);
            int rc = lex_escape(p, what, &cp);
            if (rc < 0)
                return rc;
        } else {
            if (!is_text_char(cp))
                return FAIL_HERE(p, "illegal character");
            step(p, n, cp);
        }
        if (pool_put_utf8(p->ast, cp) < 0)
            return fail_nomem(p);
        nchars++;
        if (cp > maxchar)
            maxchar = cp;
        if (quote == '\'' && nchars > EDIST_ATOM_MAX_CHARS)
            return FAIL_TOK(p, t, "atom too long (more than 255 characters)");
    }
    t->kind = quote == '"' ? TK_STRING : TK_ATOM;
    t->text_len = (uint32_t)(p->ast->pool_len - t->text_off);
    t->nchars = nchars;
    t->maxchar = maxchar;
    t->end = p->pos;
    return 0;
}

/* Decimal digits at *at (no separators) into *v; 0 if none or too big. */
static int read_decimal(const parser *p, size_t *at, uint64_t max, uint64_t *v)
{
    size_t i = *at;
    uint64_t acc = 0;
    while (i < p->len && p->src[i] >= '0' && p->src[i] <= '9') {
        unsigned d = (unsigned)(p->src[i] - '0');
        if (acc > (max - d) / 10)
            return 0;
        acc = acc * 10 + d;
        i++;
    }
    if (i == *at)
        return 0;
    *at = i;
    *v = acc;
    return 1;
}

static int expect_byte(const parser *p, size_t *at, uint8_t c)
{
    if (*at < p->len && p->src[*at] == c) {
        (*at)++;
        return 1;
    }
    return 0;
}

/* <0.Id.Serial>, #Port<0.Id>, #Ref<0.W.W.W> as ~w prints local ones.
 * `at` is just after the opening '<'. */
static int lex_identifier(parser *p, size_t at, tok_kind kind)
{
    token *t = &p->tok;
    static const char *const forms[] = {"<0.Id.Serial>", "#Port<0.Id>",
                                        "#Ref<0.Word.Word...>"};
    const char *form = forms[kind == TK_PID ? 0 : kind == TK_PORT ? 1 : 2];
    uint64_t node_number, v;
    if (!read_decimal(p, &at, UINT64_MAX, &node_number) ||
        !expect_byte(p, &at, '.'))
        return FAIL_TOK(p, t, "malformed identifier (expected %s)", form);
    uint64_t words[EDIST_REF_MAX_WORDS];
    size_t nwords = 0;
    uint64_t max = kind == TK_PORT ? UINT64_MAX : UINT32_MAX;
    for (;;) {
        if (!read_decimal(p, &at, max, &v))
            return FAIL_TOK(p, t, "malformed identifier (expected %s)", form);
        if (nwords == EDIST_REF_MAX_WORDS)
            return FAIL_TOK(p, t, "reference has more than %d words",
                            EDIST_REF_MAX_WORDS);
        words[nwords++] = v;
        if (expect_byte(p, &at, '>'))
            break;
        if (!expect_byte(p, &at, '.'))
            return FAIL_TOK(p, t, "malformed identifier (expected %s)", form);
    }
    if ((kind == TK_PID && nwords != 2) || (kind == TK_PORT && nwords != 1))
        return FAIL_TOK(p, t, "malformed identifier (expected %s)", form);
    /* Only the local node (number 0) maps back to a node name. */
    if (node_number != 0)
        return FAIL_TOK(p, t,
                        "only local identifiers can be parsed (node number "
                        "must be 0, as in %s)",
                        form);
    p->col += (uint32_t)(at - p->pos);
    p->pos = at;
    t->kind = kind;
    t->end = at;
    if (kind == TK_PID) {
        t->v.w.a = (uint32_t)words[0];
        t->v.w.b = (uint32_t)words[1];
    } else if (kind == TK_PORT) {
        t->v.u = words[0];
    } else {
        /* ~w prints the words last-first */
        t->text_off = (uint32_t)p->ast->pool_len;
        t->nchars = (uint32_t)nwords;
        for (size_t i = 0; i < nwords; i++) {
            uint32_t w = (uint32_t)words[nwords - 1 - i];
            if (pool_put(p->ast, &w, sizeof w) < 0)
                return fail_nomem(p);
        }
    }
    return 0;
}

static int starts_with(const parser *p, const char *s)
{
    size_t n = strlen(s);
    return p->len - p->pos >= n && memcmp(p->src + p->pos, s, n) == 0;
}

static int punct(parser *p, tok_kind kind, size_t n)
{
    p->pos += n;
    p->col += (uint32_t)n;
    p->tok.kind = kind;
    p->tok.end = p->pos;
    return 0;
}

static int lex(parser *p)
{
    int rc = skip_blank(p);
    if (rc < 0)
        return rc;
    token *t = &p->tok;
    memset(t, 0, sizeof *t);
    t->line = p->line;
    t->column = p->col;
    t->offset = p->pos;
    if (p->pos >= p->len) {
        t->kind = TK_EOF;
        t->end = p->pos;
        return 0;
    }
    uint8_t c = p->src[p->pos];
    uint8_t next = p->pos + 1 < p->len ? p->src[p->pos + 1] : 0;
    if (c >= 'a' && c <= 'z')
        return lex_name(p, 0);
    if ((c >= 'A' && c <= 'Z') || c == '_')
        return lex_name(p, 1);
    if (c >= '0' && c <= '9')
        return lex_number(p);
    switch (c) {
    case '$':
        return lex_char(p);
    case '"':
        return lex_quoted(p, '"');
    case '\'':
        return lex_quoted(p, '\'');
    case '{':
        return punct(p, TK_LBRACE, 1);
    case '}':
        return punct(p, TK_RBRACE, 1);
    case '[':
        return punct(p, TK_LBRACKET, 1);
    case ']':
        return punct(p, TK_RBRACKET, 1);
    case '(':
        return punct(p, TK_LPAREN, 1);
    case ')':
        return punct(p, TK_RPAREN, 1);
    case ',':
        return punct(p, TK_COMMA, 1);
    case '/':
        return punct(p, TK_SLASH, 1);
    case '-':
        return punct(p, TK_MINUS, 1);
    case '+':
        return punct(p, TK_PLUS, 1);
    case '.':
        return punct(p, TK_DOT, 1);
    case '|':
        return next == '|' ? punct(p, TK_PUNCT, 2) : punct(p, TK_BAR, 1);
    case '=':
        return next == '>' ? punct(p, TK_ARROW, 2) : punct(p, TK_PUNCT, 1);
    case ':':
        return next == '=' ? punct(p, TK_ASSOC_EXACT, 2)
                           : punct(p, TK_COLON, 1);
    case '>':
        return next == '>' ? punct(p, TK_RBIN, 2) : punct(p, TK_PUNCT, 1);
    case '<':
        if (next == '<')
            return punct(p, TK_LBIN, 2);
        if (next >= '0' && next <= '9')
            return lex_identifier(p, p->pos + 1, TK_PID);
        return punct(p, TK_PUNCT, 1);
    case '#':
        if (starts_with(p, "#Port<"))
            return lex_identifier(p, p->pos + 6, TK_PORT);
        if (starts_with(p, "#Ref<"))
            return lex_identifier(p, p->pos + 5, TK_REF);
        if (starts_with(p, "#Fun<"))
            return FAIL_TOK(p, t, "local funs (#Fun<...>) cannot be parsed");
        return punct(p, TK_HASH, 1);
    default:
        break;
    }
    if (c >= 0x80) {
        uint32_t cp = 0; /* set by char_at on success; for gcc -O2 + sanitizers */
        int n = char_at(p, p->pos, &cp);
        if (n < 0)
            return FAIL_HERE(p, "invalid UTF-8");
        if (cp >= 0xDF && cp <= 0xFF && cp != 0xF7)
            return lex_name(p, 0);
        if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7)
            return lex_name(p, 1);
        if (cp > 0xFF)
            return FAIL_TOK(p, t,
                            "illegal character (non-Latin-1 names must "
                            "be quoted)");
        return punct(p, TK_PUNCT, (size_t)n);
    }
    return punct(p, TK_PUNCT, 1);
}

static void describe(const parser *p, const token *t, char *buf, size_t cap)
{
    switch (t->kind) {
    case TK_EOF:
        snprintf(buf, cap, "end of input");
        return;
    case TK_INT:
    case TK_BIG:
    case TK_FLOAT:
        snprintf(buf, cap, "a number");
        return;
    case TK_ATOM:
        snprintf(buf, cap, "an atom");
        return;
    case TK_STRING:
        snprintf(buf, cap, "a string");
        return;
    case TK_VAR:
        snprintf(buf, cap, "a variable");
        return;
    case TK_PID:
    case TK_PORT:
    case TK_REF:
        snprintf(buf, cap, "an identifier");
        return;
    default:
        snprintf(buf, cap, "'%.*s'",
                 clip_utf8(p->src + t->offset, t->end - t->offset, 12),
                 (const char *)p->src + t->offset);
        return;
    }
}

/* "expected X, found Y" at the lookahead token. */
static int fail_expected(parser *p, const char *expected)
{
    char found[32];
    describe(p, &p->tok, found, sizeof found);
    const token *t = &p->tok;
    /* 1e5 lexes as 1 then the atom e5, as in erl_scan */
    if (t->kind == TK_ATOM && t->offset > 0 &&
        (p->src[t->offset] | 0x20) == 'e' && p->src[t->offset - 1] >= '0' &&
        p->src[t->offset - 1] <= '9')
        return FAIL_TOK(p, t,
                        "expected %s, found %s (a float needs a "
                        "fraction: 1.0e5, not 1e5)",
                        expected, found);
    return FAIL_TOK(p, t, "expected %s, found %s", expected, found);
}

/* ======================================================================
 * parser
 * ==================================================================== */

static int new_node(parser *p, uint8_t kind, const token *at, uint32_t *out)
{
    edi_ast *a = p->ast;
    if (a->nnodes >= UINT32_MAX - 1)
        return fail_nomem(p);
    if (grow_array((void **)&a->nodes, &a->node_cap, (size_t)a->nnodes + 1,
                   sizeof *a->nodes) < 0)
        return fail_nomem(p);
    edi_ast_node *n = &a->nodes[a->nnodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->first = EDI_AST_NONE;
    n->next = EDI_AST_NONE;
    n->line = at->line;
    n->column = at->column;
    n->offset = (uint32_t)at->offset;
    *out = a->nnodes++;
    return 0;
}

static int push_frame(parser *p, uint8_t kind, uint32_t node)
{
    if (kind != FR_SIGN) {
        if (p->depth >= p->max_depth)
            return edi_text_error(p->perr, EDIST_EDEPTH, p->tok.line,
                                  p->tok.column, p->tok.offset,
                                  "nesting deeper than max_depth");
        p->depth++;
    }
    if (grow_array((void **)&p->frames, &p->frame_cap, p->nframes + 1,
                   sizeof *p->frames) < 0)
        return fail_nomem(p);
    frame *f = &p->frames[p->nframes++];
    memset(f, 0, sizeof *f);
    f->kind = kind;
    f->node = node;
    f->last = EDI_AST_NONE;
    f->line = p->tok.line;
    f->column = p->tok.column;
    f->offset = p->tok.offset;
    f->bits_start = p->bits_len;
    return 0;
}

static void pop_frame(parser *p)
{
    if (p->frames[p->nframes - 1].kind != FR_SIGN)
        p->depth--;
    p->nframes--;
}

static int add_var(parser *p, const token *t, uint32_t *index)
{
    edi_ast *a = p->ast;
    const uint8_t *name = a->pool + t->text_off;
    for (uint32_t i = 0; i < a->nvars; i++) {
        if (a->vars[i].name_len == t->text_len &&
            memcmp(a->pool + a->vars[i].name_off, name, t->text_len) == 0) {
            *index = i;
            return 0;
        }
    }
    if (a->nvars >= EDI_PATTERN_MAX_VARS)
        return FAIL_TOK(p, t, "too many variables (at most %u)",
                        EDI_PATTERN_MAX_VARS);
    if (grow_array((void **)&a->vars, &a->var_cap, (size_t)a->nvars + 1,
                   sizeof *a->vars) < 0)
        return fail_nomem(p);
    a->vars[a->nvars].name_off = t->text_off;
    a->vars[a->nvars].name_len = t->text_len;
    *index = a->nvars++;
    return 0;
}

/* fun Module:Function/Arity (the lookahead is just past `fun`). */
static int parse_export(parser *p, const token *fun_tok, uint32_t *node)
{
    uint32_t mod, fn, n;
    int rc;
    if (p->tok.kind == TK_VAR)
        return FAIL_TOK(p, &p->tok, "fun M:F/A needs literal atoms and arity");
    if (p->tok.kind != TK_ATOM)
        return fail_expected(p, "a module name after 'fun' (only fun M:F/A "
                                "can be parsed)");
    if ((rc = new_node(p, EDI_AST_ATOM, &p->tok, &mod)) < 0)
        return rc;
    p->ast->nodes[mod].first = p->tok.text_off;
    p->ast->nodes[mod].aux = p->tok.text_len;
    if ((rc = lex(p)) < 0)
        return rc;
    if (p->tok.kind != TK_COLON)
        return fail_expected(p, "':' in fun M:F/A");
    if ((rc = lex(p)) < 0)
        return rc;
    if (p->tok.kind != TK_ATOM)
        return fail_expected(p, "a function name in fun M:F/A");
    if ((rc = new_node(p, EDI_AST_ATOM, &p->tok, &fn)) < 0)
        return rc;
    p->ast->nodes[fn].first = p->tok.text_off;
    p->ast->nodes[fn].aux = p->tok.text_len;
    if ((rc = lex(p)) < 0)
        return rc;
    if (p->tok.kind != TK_SLASH)
        return fail_expected(p, "'/' in fun M:F/A");
    if ((rc = lex(p)) < 0)
        return rc;
    if (p->tok.kind != TK_INT || p->tok.is_char || p->tok.v.i > 255)
        return fail_expected(p, "an arity (0..255) in fun M:F/A");
    if ((rc = new_node(p, EDI_AST_EXPORT, fun_tok, &n)) < 0)
        return rc;
    edi_ast_node *e = &p->ast->nodes[n];
    e->first = mod;
    e->count = (uint32_t)p->tok.v.i;
    p->ast->nodes[mod].next = fn;
    *node = n;
    return lex(p);
}

/* Start a value at the lookahead. Returns 1 with *node when a whole value was
 * read, 0 when a frame was pushed and its first element is wanted next. */
static int start_value(parser *p, uint32_t *node)
{
    token t = p->tok;
    edi_ast *a = p->ast;
    uint32_t n;
    int rc;
    switch (t.kind) {
    case TK_INT:
        if ((rc = new_node(p, EDI_AST_INT, &t, &n)) < 0)
            return rc;
        a->nodes[n].v.i = t.v.i;
        if (t.v.i <= 255)
            a->nodes[n].flags |= EDI_AST_F_BYTE;
        break;
    case TK_BIG:
        if ((rc = new_node(p, EDI_AST_BIG, &t, &n)) < 0)
            return rc;
        a->nodes[n].first = t.text_off;
        a->nodes[n].aux = t.text_len;
        break;
    case TK_FLOAT:
        if ((rc = new_node(p, EDI_AST_FLOAT, &t, &n)) < 0)
            return rc;
        a->nodes[n].v.f = t.v.f;
        break;
    case TK_ATOM:
        if ((rc = new_node(p, EDI_AST_ATOM, &t, &n)) < 0)
            return rc;
        a->nodes[n].first = t.text_off;
        a->nodes[n].aux = t.text_len;
        break;
    case TK_VAR: {
        if (!p->allow_vars)
            return FAIL_TOK(p, &t, "variables are not allowed in terms: %.*s",
                            clip_utf8(a->pool + t.text_off, t.text_len, 60),
                            (const char *)a->pool + t.text_off);
        uint32_t index = EDI_AST_NONE;
        if (!(t.text_len == 1 && a->pool[t.text_off] == '_') &&
            (rc = add_var(p, &t, &index)) < 0)
            return rc;
        if ((rc = new_node(p, EDI_AST_VAR, &t, &n)) < 0)
            return rc;
        a->nodes[n].count = index;
        a->nodes[n].first = t.text_off;
        a->nodes[n].aux = t.text_len;
        a->nodes[n].flags |= EDI_AST_F_NOT_LITERAL;
        break;
    }
    case TK_STRING: {
        if ((rc = new_node(p, EDI_AST_STRING, &t, &n)) < 0)
            return rc;
        edi_ast_node *s = &a->nodes[n];
        s->first = t.text_off;
        s->aux = t.text_len;
        s->count = t.nchars;
        s->v.w.a = t.maxchar;
        /* Adjacent literals concatenate ("ab" "cd"); the lexer appends
         * each one to the pool right after the previous one. */
        for (;;) {
            if ((rc = lex(p)) < 0)
                return rc;
            if (p->tok.kind != TK_STRING)
                break;
            s = &a->nodes[n];
            s->aux += p->tok.text_len;
            s->count += p->tok.nchars;
            if (p->tok.maxchar > s->v.w.a)
                s->v.w.a = p->tok.maxchar;
        }
        *node = n;
        return 1;
    }
    case TK_PID:
        if ((rc = new_node(p, EDI_AST_PID, &t, &n)) < 0)
            return rc;
        a->nodes[n].v.w.a = t.v.w.a;
        a->nodes[n].v.w.b = t.v.w.b;
        break;
    case TK_PORT:
        if ((rc = new_node(p, EDI_AST_PORT, &t, &n)) < 0)
            return rc;
        a->nodes[n].v.u = t.v.u;
        break;
    case TK_REF:
        if ((rc = new_node(p, EDI_AST_REF, &t, &n)) < 0)
            return rc;
        a->nodes[n].first = t.text_off;
        a->nodes[n].count = t.nchars;
        break;
    case TK_FUN:
        if ((rc = lex(p)) < 0)
            return rc;
        if ((rc = parse_export(p, &t, &n)) < 0)
            return rc;
        *node = n;
        return 1;
    case TK_LBRACE:
    case TK_LBRACKET:
    case TK_LBIN: {
        uint8_t kind = t.kind == TK_LBRACE     ? EDI_AST_TUPLE
                       : t.kind == TK_LBRACKET ? EDI_AST_LIST
                                               : EDI_AST_BINARY;
        tok_kind close = t.kind == TK_LBRACE     ? TK_RBRACE
                         : t.kind == TK_LBRACKET ? TK_RBRACKET
                                                 : TK_RBIN;
        if ((rc = new_node(p, kind, &t, &n)) < 0)
            return rc;
        if (kind == EDI_AST_LIST)
            a->nodes[n].aux = EDI_AST_NONE;
        if ((rc = push_frame(p,
                             kind == EDI_AST_TUPLE  ? FR_TUPLE
                             : kind == EDI_AST_LIST ? FR_LIST
                                                    : FR_BIN,
                             n)) < 0)
            return rc;
        if ((rc = lex(p)) < 0)
            return rc;
        if (p->tok.kind != close)
            return 0;
        if ((rc = lex(p)) < 0)
            return rc;
        pop_frame(p);
        if (kind == EDI_AST_LIST)
            a->nodes[n].kind = EDI_AST_NIL;
        else if (kind == EDI_AST_BINARY)
            a->nodes[n].first = (uint32_t)a->pool_len; /* empty */
        *node = n;
        return 1;
    }
    case TK_HASH:
        if ((rc = lex(p)) < 0)
            return rc;
        if (p->tok.kind != TK_LBRACE)
            return fail_expected(p,
                                 "'{' after '#' (records are not supported)");
        if ((rc = new_node(p, EDI_AST_MAP, &t, &n)) < 0)
            return rc;
        if (p->allow_vars)
            a->nodes[n].flags |= EDI_AST_F_NOT_LITERAL;
        if ((rc = push_frame(p, FR_MAP, n)) < 0)
            return rc;
        if ((rc = lex(p)) < 0)
            return rc;
        if (p->tok.kind != TK_RBRACE)
            return 0;
        if ((rc = lex(p)) < 0)
            return rc;
        pop_frame(p);
        *node = n;
        return 1;
    case TK_LPAREN:
    case TK_MINUS:
    case TK_PLUS:
        if ((rc = push_frame(p, t.kind == TK_LPAREN ? FR_PAREN : FR_SIGN,
                             EDI_AST_NONE)) < 0)
            return rc;
        p->frames[p->nframes - 1].state = t.kind == TK_MINUS;
        if ((rc = lex(p)) < 0)
            return rc;
        return 0;
    default:
        return fail_expected(p, "a term");
    }
    *node = n;
    rc = lex(p);
    return rc < 0 ? rc : 1;
}

static int append_child(parser *p, frame *f, uint32_t child)
{
    edi_ast_node *nodes = p->ast->nodes;
    edi_ast_node *c = &nodes[f->node];
    if (c->count == UINT32_MAX)
        return fail_nomem(p);
    if (f->last == EDI_AST_NONE)
        c->first = child;
    else
        nodes[f->last].next = child;
    f->last = child;
    c->count++;
    c->flags |= nodes[child].flags & EDI_AST_F_NOT_LITERAL;
    return 0;
}

/* [Elements | Tail]: a list tail is spliced in, so the list node always holds
 * the whole cons chain (the canonical encoding is one LIST_EXT). */
static int set_list_tail(parser *p, frame *f, uint32_t tail)
{
    edi_ast_node *nodes = p->ast->nodes;
    edi_ast_node *l = &nodes[f->node];
    const edi_ast_node *t = &nodes[tail];
    l->flags |= t->flags & EDI_AST_F_NOT_LITERAL;
    if (t->kind == EDI_AST_NIL ||
        (t->kind == EDI_AST_STRING && t->count == 0)) {
        l->aux = EDI_AST_NONE;
    } else if (t->kind == EDI_AST_LIST) {
        if (t->count > UINT32_MAX - l->count)
            return fail_nomem(p);
        nodes[f->last].next = t->first;
        f->last = t->v.w.a;
        l->count += t->count;
        l->aux = t->aux;
    } else {
        l->aux = tail;
    }
    l->v.w.a = f->last;
    return 0;
}

/* ---- binaries -------------------------------------------------------- */

enum seg_type {
    ST_NONE,
    ST_INTEGER,
    ST_FLOAT,
    ST_BINARY,
    ST_UTF8,
    ST_UTF16,
    ST_UTF32
};
enum seg_endian { SE_NONE, SE_BIG, SE_LITTLE, SE_NATIVE };
enum seg_sign { SS_NONE, SS_SIGNED, SS_UNSIGNED };

typedef struct seg_spec {
    uint8_t type;
    uint8_t endian;
    uint8_t sign;
    uint32_t unit; /* 0: not given */
    int has_size;
    uint64_t size;
    uint64_t bits; /* size * unit once resolved */
    int little;
} seg_spec;

static int bits_room(parser *p, size_t n)
{
    if (grow_array((void **)&p->bits, &p->bits_cap, p->bits_len + n, 1) < 0)
        return fail_nomem(p);
    return 0;
}

/* Append the low n (1..8) bits of v, most significant first. The caller has
 * reserved room for one more byte. */
static void put_bits(parser *p, frame *f, uint32_t v, unsigned n)
{
    v &= (1u << n) - 1;
    unsigned used = (unsigned)(f->nbits & 7);
    if (used == 0) {
        p->bits[p->bits_len++] = (uint8_t)(v << (8 - n));
    } else {
        unsigned room = 8 - used;
        uint8_t *last = &p->bits[p->bits_len - 1];
        if (n <= room) {
            *last |= (uint8_t)(v << (room - n));
        } else {
            *last |= (uint8_t)(v >> (n - room));
            p->bits[p->bits_len++] = (uint8_t)(v << (8 - (n - room)));
        }
    }
    f->nbits += n;
}

/* An integer's two's complement bytes, least significant first, endless
 * sign extension. */
typedef struct int_source {
    int is_small;
    uint64_t small; /* two's complement of the int64 */
    const uint8_t *mag;
    size_t n;
    int negative;
    size_t first_nonzero;
} int_source;

static uint8_t int_byte(const int_source *s, uint64_t i)
{
    if (s->is_small) {
        if (i < 8)
            return (uint8_t)(s->small >> (8 * i));
        return s->negative ? 0xFF : 0;
    }
    if (!s->negative)
        return i < s->n ? s->mag[i] : 0;
    if (i < s->first_nonzero)
        return 0;
    if (i == s->first_nonzero)
        return (uint8_t)(~s->mag[i] + 1u);
    return i < s->n ? (uint8_t)~s->mag[i] : 0xFF;
}

static int int_source_from(const edi_ast *a, const edi_ast_node *n,
                           int_source *s)
{
    memset(s, 0, sizeof *s);
    if (n->kind == EDI_AST_INT) {
        s->is_small = 1;
        s->small = (uint64_t)n->v.i;
        s->negative = n->v.i < 0;
        return 0;
    }
    s->mag = a->pool + n->first;
    s->n = n->aux;
    s->negative = (n->flags & EDI_AST_F_NEGATIVE) != 0;
    while (s->first_nonzero < s->n && s->mag[s->first_nonzero] == 0)
        s->first_nonzero++;
    if (s->first_nonzero == s->n)
        s->negative = 0;
    return 0;
}

static int charge_budget(parser *p, const edi_ast_node *at, uint64_t bits)
{
    uint64_t bytes = bits / 8 + 1;
    if (bytes > p->bin_budget)
        return edi_text_error(p->perr, EDIST_ENOMEM, at->line, at->column,
                              at->offset, "binary literal too large");
    p->bin_budget -= (size_t)bytes;
    return bits_room(p, (size_t)bytes);
}

/* bits of the integer, big- or little-endian as Erlang lays them out (for
 * little-endian sizes that are not whole bytes, the leftover high bits go
 * last). */
static void write_int(parser *p, frame *f, const int_source *s, uint64_t bits,
                      int little)
{
    uint64_t k = bits / 8;
    unsigned r = (unsigned)(bits % 8);
    if (little) {
        for (uint64_t i = 0; i < k; i++)
            put_bits(p, f, int_byte(s, i), 8);
        if (r)
            put_bits(p, f, int_byte(s, k), r);
    } else {
        if (r)
            put_bits(p, f, int_byte(s, k), r);
        for (uint64_t i = k; i-- > 0;)
            put_bits(p, f, int_byte(s, i), 8);
    }
}

/* IEEE double -> binary16/binary32 bits, round to nearest even, overflow to
 * infinity (as erts writes <<F:16/float>> and <<F:32/float>>). */
static uint64_t narrow_float(double d, int ebits, int mbits)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    uint64_t sign = (u >> 63) << (ebits + mbits);
    int e = (int)((u >> 52) & 0x7FF);
    uint64_t m = u & ((1ull << 52) - 1);
    int bias = (1 << (ebits - 1)) - 1;
    uint64_t inf = ((1ull << ebits) - 1) << mbits;
    if (e == 0x7FF)
        return sign | inf;
    if (e == 0 && m == 0)
        return sign;
    int exp2; /* value = m * 2^exp2 */
    if (e == 0) {
        exp2 = 1 - 1023 - 52;
    } else {
        m |= 1ull << 52;
        exp2 = e - 1023 - 52;
    }
    int top = 63 - __builtin_clzll(m);
    int value_exp = top + exp2;
    int target_exp = value_exp < 1 - bias ? 1 - bias : value_exp;
    int shift = target_exp - mbits - exp2; /* > 0 when narrowing */
    uint64_t q;
    if (shift >= 64) {
        q = 0;
    } else {
        q = m >> shift;
        uint64_t rem = m & ((1ull << shift) - 1);
        uint64_t half = 1ull << (shift - 1);
        if (rem > half || (rem == half && (q & 1)))
            q++;
    }
    uint64_t bits;
    if (q >= (1ull << mbits)) /* normal; a carry bumps the exponent */
        bits = ((uint64_t)(target_exp + bias) << mbits) + (q - (1ull << mbits));
    else
        bits = q;
    if (bits >= inf)
        bits = inf;
    return sign | bits;
}

static int int_to_double(const edi_ast *a, const edi_ast_node *n, double *d)
{
    if (n->kind == EDI_AST_INT) {
        *d = (double)n->v.i;
        return 0;
    }
    const uint8_t *mag = a->pool + n->first;
    size_t len = n->aux;
    while (len > 0 && mag[len - 1] == 0)
        len--;
    uint64_t top = 0;
    size_t take = len < 8 ? len : 8;
    for (size_t i = 0; i < take; i++)
        top = (top << 8) | mag[len - 1 - i];
    int sticky = 0;
    for (size_t i = 0; i + 8 < len; i++)
        sticky |= mag[i] != 0;
    if (sticky)
        top |= 1; /* round to odd keeps the final rounding exact */
    double v = ldexp((double)top, len > 8 ? (int)(8 * (len - 8)) : 0);
    if (isinf(v))
        return EDIST_ERANGE;
    *d = (n->flags & EDI_AST_F_NEGATIVE) ? -v : v;
    return 0;
}

static int write_float(parser *p, frame *f, const edi_ast_node *at, double d,
                       const seg_spec *s)
{
    uint64_t raw;
    if (s->bits == 64)
        memcpy(&raw, &d, sizeof raw);
    else if (s->bits == 32)
        raw = narrow_float(d, 8, 23);
    else if (s->bits == 16)
        raw = narrow_float(d, 5, 10);
    else
        return FAIL_TOK(p, at, "float segments must be 16, 32 or 64 bits");
    int rc = charge_budget(p, at, s->bits);
    if (rc < 0)
        return rc;
    int_source src = {.is_small = 1, .small = raw};
    write_int(p, f, &src, s->bits, s->little);
    return 0;
}

static int write_code_point(parser *p, frame *f, const edi_ast_node *at,
                            int64_t cp, const seg_spec *s)
{
    if (cp < 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return FAIL_TOK(p, at, "%s segment value is not a code point",
                        s->type == ST_UTF8    ? "utf8"
                        : s->type == ST_UTF16 ? "utf16"
                                              : "utf32");
    int rc = charge_budget(p, at, 32);
    if (rc < 0)
        return rc;
    uint32_t c = (uint32_t)cp;
    if (s->type == ST_UTF8) {
        if (c < 0x80) {
            put_bits(p, f, c, 8);
        } else if (c < 0x800) {
            put_bits(p, f, 0xC0 | (c >> 6), 8);
            put_bits(p, f, 0x80 | (c & 0x3F), 8);
        } else if (c < 0x10000) {
            put_bits(p, f, 0xE0 | (c >> 12), 8);
            put_bits(p, f, 0x80 | ((c >> 6) & 0x3F), 8);
            put_bits(p, f, 0x80 | (c & 0x3F), 8);
        } else {
            put_bits(p, f, 0xF0 | (c >> 18), 8);
            put_bits(p, f, 0x80 | ((c >> 12) & 0x3F), 8);
            put_bits(p, f, 0x80 | ((c >> 6) & 0x3F), 8);
            put_bits(p, f, 0x80 | (c & 0x3F), 8);
        }
        return 0;
    }
    if (s->type == ST_UTF32) {
        int_source src = {.is_small = 1, .small = c};
        write_int(p, f, &src, 32, s->little);
        return 0;
    }
    uint32_t units[2];
    int nunits = 1;
    if (c < 0x10000) {
        units[0] = c;
    } else {
        units[0] = 0xD800 | ((c - 0x10000) >> 10);
        units[1] = 0xDC00 | ((c - 0x10000) & 0x3FF);
        nunits = 2;
    }
    for (int i = 0; i < nunits; i++) {
        int_source src = {.is_small = 1, .small = units[i]};
        write_int(p, f, &src, 16, s->little);
    }
    return 0;
}

/* One integer value (a number, or one character of a string) under spec. */
static int write_number(parser *p, frame *f, const edi_ast_node *at,
                        const edi_ast_node *value, const seg_spec *s)
{
    switch (s->type) {
    case ST_INTEGER: {
        int rc = charge_budget(p, at, s->bits);
        if (rc < 0)
            return rc;
        int_source src;
        int_source_from(p->ast, value, &src);
        write_int(p, f, &src, s->bits, s->little);
        return 0;
    }
    case ST_FLOAT: {
        double d;
        if (int_to_double(p->ast, value, &d) < 0)
            return FAIL_TOK(p, at, "integer too large for a float segment");
        return write_float(p, f, at, d, s);
    }
    case ST_UTF8:
    case ST_UTF16:
    case ST_UTF32:
        if (value->kind != EDI_AST_INT)
            return write_code_point(p, f, at, -1, s);
        return write_code_point(p, f, at, value->v.i, s);
    default:
        return FAIL_TOK(p, at, "a binary/bits segment needs a binary value");
    }
}

static int set_spec_field(parser *p, const token *t, uint8_t *field,
                          uint8_t value)
{
    if (*field != 0 && *field != value)
        return FAIL_TOK(p, t, "conflicting binary segment type specifiers");
    *field = value;
    return 0;
}

/* /Type-Type-unit:N after a segment value; the lookahead is past '/'. */
static int parse_type_list(parser *p, seg_spec *s)
{
    static const struct {
        const char *name;
        uint8_t type, endian, sign;
        uint32_t unit;
    } specs[] = {
        {"integer", ST_INTEGER, 0, 0, 0},  {"float", ST_FLOAT, 0, 0, 0},
        {"binary", ST_BINARY, 0, 0, 0},    {"bytes", ST_BINARY, 0, 0, 8},
        {"bitstring", ST_BINARY, 0, 0, 1}, {"bits", ST_BINARY, 0, 0, 1},
        {"utf8", ST_UTF8, 0, 0, 0},        {"utf16", ST_UTF16, 0, 0, 0},
        {"utf32", ST_UTF32, 0, 0, 0},      {"big", 0, SE_BIG, 0, 0},
        {"little", 0, SE_LITTLE, 0, 0},    {"native", 0, SE_NATIVE, 0, 0},
        {"signed", 0, 0, SS_SIGNED, 0},    {"unsigned", 0, 0, SS_UNSIGNED, 0},
    };
    int rc;
    for (;;) {
        token t = p->tok;
        if (t.kind != TK_ATOM)
            return fail_expected(p, "a binary type specifier");
        const char *name = (const char *)p->ast->pool + t.text_off;
        uint32_t unit = 0;
        if (t.text_len == 4 && memcmp(name, "unit", 4) == 0) {
            if ((rc = lex(p)) < 0)
                return rc;
            if (p->tok.kind != TK_COLON)
                return fail_expected(p, "':' after unit");
            if ((rc = lex(p)) < 0)
                return rc;
            if (p->tok.kind != TK_INT || p->tok.v.i < 1 || p->tok.v.i > 256)
                return fail_expected(p, "a unit of 1..256");
            unit = (uint32_t)p->tok.v.i;
        } else {
            size_t i;
            for (i = 0; i < sizeof specs / sizeof specs[0]; i++)
                if (strlen(specs[i].name) == t.text_len &&
                    memcmp(specs[i].name, name, t.text_len) == 0)
                    break;
            if (i == sizeof specs / sizeof specs[0])
                return FAIL_TOK(
                    p, &t, "unknown binary type specifier '%.*s'",
                    clip_utf8((const uint8_t *)name, t.text_len, 40), name);
            if ((specs[i].type &&
                 (rc = set_spec_field(p, &t, &s->type, specs[i].type)) < 0) ||
                (specs[i].endian &&
                 (rc = set_spec_field(p, &t, &s->endian, specs[i].endian)) <
                     0) ||
                (specs[i].sign &&
                 (rc = set_spec_field(p, &t, &s->sign, specs[i].sign)) < 0))
                return rc;
            unit = specs[i].unit;
        }
        if (unit) {
            if (s->unit && s->unit != unit)
                return FAIL_TOK(p, &t, "conflicting binary segment units");
            s->unit = unit;
        }
        if ((rc = lex(p)) < 0)
            return rc;
        if (p->tok.kind != TK_MINUS)
            return 0;
        if ((rc = lex(p)) < 0)
            return rc;
    }
}

static int host_is_little(void)
{
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* One segment of the binary in frame f: the value has been parsed; the
 * lookahead may start :Size and /Types. */
static int bin_segment(parser *p, frame *f, uint32_t value_index)
{
    edi_ast *a = p->ast;
    const edi_ast_node *value = &a->nodes[value_index];
    const edi_ast_node at = *value;
    seg_spec s;
    memset(&s, 0, sizeof s);
    int rc;
    if (p->allow_vars && (at.flags & EDI_AST_F_NOT_LITERAL))
        return FAIL_TOK(p, &at,
                        "binary segments in patterns must be "
                        "literals");
    if (p->tok.kind == TK_COLON) {
        if ((rc = lex(p)) < 0)
            return rc;
        if (p->tok.kind != TK_INT)
            return fail_expected(p, "an integer size after ':'");
        s.has_size = 1;
        s.size = (uint64_t)p->tok.v.i;
        if ((rc = lex(p)) < 0)
            return rc;
    }
    if (p->tok.kind == TK_SLASH) {
        if ((rc = lex(p)) < 0)
            return rc;
        if ((rc = parse_type_list(p, &s)) < 0)
            return rc;
    }
    /* defaults, as erl_bits */
    if (s.type == ST_NONE)
        s.type = ST_INTEGER;
    switch (s.type) {
    case ST_UTF8:
    case ST_UTF16:
    case ST_UTF32:
        if (s.has_size || s.unit)
            return FAIL_TOK(p, &at,
                            "utf8/utf16/utf32 segments take no size "
                            "or unit");
        break;
    case ST_INTEGER:
    case ST_FLOAT:
        if (!s.has_size) {
            if (s.unit)
                return FAIL_TOK(p, &at, "a unit needs an explicit size");
            s.size = s.type == ST_INTEGER ? 8 : 64;
            s.has_size = 1;
        }
        if (!s.unit)
            s.unit = 1;
        break;
    default: /* binary */
        if (!s.unit)
            s.unit = 8;
        break;
    }
    if (s.has_size && s.size > UINT64_MAX / 1024)
        return FAIL_TOK(p, &at, "binary segment size too large");
    s.bits = s.size * s.unit;
    s.little =
        s.endian == SE_LITTLE || (s.endian == SE_NATIVE && host_is_little());

    /* Re-fetch: nothing below adds nodes, but lex() may have grown the pool. */
    value = &a->nodes[value_index];
    switch (value->kind) {
    case EDI_AST_INT:
    case EDI_AST_BIG:
        return write_number(p, f, &at, value, &s);
    case EDI_AST_FLOAT:
        if (s.type != ST_FLOAT)
            return FAIL_TOK(p, &at, "a float value needs a float segment");
        return write_float(p, f, &at, value->v.f, &s);
    case EDI_AST_STRING: {
        /* Each character is a segment of its own with this spec. */
        if (s.type == ST_BINARY)
            return FAIL_TOK(p, &at, "a string cannot be a binary/bits segment");
        size_t pos = value->first, end = (size_t)value->first + value->aux;
        while (pos < end) {
            uint32_t cp;
            int n = edi_utf8_next(a->pool + pos, end - pos, &cp);
            if (n < 0)
                return FAIL_TOK(p, &at, "internal: bad string");
            pos += (size_t)n;
            edi_ast_node ch = at;
            ch.kind = EDI_AST_INT;
            ch.v.i = cp;
            if ((rc = write_number(p, f, &at, &ch, &s)) < 0)
                return rc;
        }
        return 0;
    }
    case EDI_AST_BINARY: {
        if (s.type != ST_BINARY)
            return FAIL_TOK(p, &at,
                            "a binary value needs a binary/bits "
                            "segment");
        uint64_t have = value->v.u, take = have;
        if (s.has_size) {
            if (s.bits > have)
                return FAIL_TOK(p, &at,
                                "binary value is shorter than the "
                                "segment size");
            take = s.bits;
        } else if (have % s.unit != 0) {
            return FAIL_TOK(p, &at,
                            "binary value is not a multiple of the "
                            "segment unit");
        }
        if ((rc = charge_budget(p, &at, take)) < 0)
            return rc;
        const uint8_t *src = a->pool + value->first;
        uint64_t k = take / 8;
        for (uint64_t i = 0; i < k; i++)
            put_bits(p, f, src[i], 8);
        if (take % 8)
            put_bits(p, f, (uint32_t)(src[k] >> (8 - take % 8)),
                     (unsigned)(take % 8));
        return 0;
    }
    default:
        return FAIL_TOK(p, &at,
                        "binary segments must be numbers, strings or "
                        "binaries");
    }
}

/* The binary in frame f is complete: move its bytes to the pool. */
static int finish_binary(parser *p, frame *f)
{
    edi_ast *a = p->ast;
    size_t nbytes = (size_t)((f->nbits + 7) / 8);
    uint32_t off = (uint32_t)a->pool_len;
    if (nbytes && pool_put(a, p->bits + f->bits_start, nbytes) < 0)
        return fail_nomem(p);
    edi_ast_node *n = &a->nodes[f->node];
    n->first = off;
    n->aux = (uint32_t)nbytes;
    n->v.u = f->nbits;
    p->bits_len = f->bits_start;
    return 0;
}

static int pair_compare(const parser *p, uint32_t i, uint32_t j, int *result)
{
    const map_pair *a = &p->pairs[i], *b = &p->pairs[j];
    return edist_term_compare(p->keys.data + a->key_start, a->key_len,
                              p->keys.data + b->key_start, b->key_len, result);
}

/* Stable bottom-up merge sort of p->order[0..n) by key. */
static int sort_order(parser *p, uint32_t n)
{
    uint32_t *order = p->order, *tmp = p->order_tmp;
    for (uint32_t width = 1; width < n; width *= 2) { /* n < 2^31 */
        for (uint32_t lo = 0; lo < n; lo += 2 * width) {
            uint32_t mid = lo + width < n ? lo + width : n;
            uint32_t hi = mid + width < n ? mid + width : n;
            uint32_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                int cmp;
                int rc = pair_compare(p, order[i], order[j], &cmp);
                if (rc < 0)
                    return rc;
                tmp[k++] = cmp <= 0 ? order[i++] : order[j++];
            }
            while (i < mid)
                tmp[k++] = order[i++];
            while (j < hi)
                tmp[k++] = order[j++];
        }
        memcpy(order, tmp, (size_t)n * sizeof *order);
    }
    return 0;
}

/* A map literal is complete: put its pairs in key order and drop duplicate
 * keys, the last one winning (key included: 0.0 and -0.0 may compare equal)
 * as in erl_parse. Key order is the canonical encoding: erts keeps maps of up
 * to 32 keys sorted; larger ones go out in hash order, which cannot be
 * reproduced, so sorting is our canonical choice for those too. Maps inside
 * were sorted when they closed, and only keys are encoded here, so deep
 * nesting through values stays linear. */
static int sort_map(parser *p, uint32_t map)
{
    edi_ast *a = p->ast;
    const edi_ast_node at = a->nodes[map];
    uint32_t n = at.count / 2;
    if (n < 2)
        return 0;
    if (grow_array((void **)&p->pairs, &p->pairs_cap, n, sizeof *p->pairs) <
            0 ||
        grow_array((void **)&p->order, &p->order_cap, n, sizeof *p->order) <
            0 ||
        grow_array((void **)&p->order_tmp, &p->order_tmp_cap, n,
                   sizeof *p->order_tmp) < 0)
        return fail_nomem(p);
    edist_buf_reset(&p->keys);
    uint32_t key = at.first;
    for (uint32_t i = 0; i < n; i++) {
        map_pair *pair = &p->pairs[i];
        pair->key = key;
        pair->value = a->nodes[key].next;
        pair->key_start = p->keys.len;
        int rc = edi_ast_encode(a, key, &p->keys, NULL);
        if (rc == EDIST_ENOMEM)
            return fail_nomem(p);
        if (rc < 0)
            return FAIL_TOK(p, &at, "cannot encode map key");
        pair->key_len = p->keys.len - pair->key_start;
        key = a->nodes[pair->value].next;
        /* Maps used as keys of maps used as keys... are encoded again at
         * every level; a budget linear in the input bounds that work. */
        if (pair->key_len > p->key_budget)
            return edi_text_error(p->perr, EDIST_ENOMEM, at.line, at.column,
                                  at.offset,
                                  "map keys nest too deeply to be sorted");
        p->key_budget -= pair->key_len;
    }
    int sorted = 1;
    for (uint32_t i = 1; i < n && sorted; i++) {
        int cmp;
        if (pair_compare(p, i - 1, i, &cmp) < 0)
            return FAIL_TOK(p, &at, "cannot compare map keys");
        sorted = cmp < 0;
    }
    if (sorted)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        p->order[i] = i;
    if (sort_order(p, n) < 0)
        return FAIL_TOK(p, &at, "cannot compare map keys");
    uint32_t kept = 0, prev = EDI_AST_NONE;
    for (uint32_t i = 0; i < n;) {
        uint32_t last = i;
        while (last + 1 < n) {
            int cmp;
            if (pair_compare(p, p->order[i], p->order[last + 1], &cmp) < 0)
                return FAIL_TOK(p, &at, "cannot compare map keys");
            if (cmp != 0)
                break;
            last++;
        }
        const map_pair *win = &p->pairs[p->order[last]];
        if (prev == EDI_AST_NONE)
            a->nodes[map].first = win->key;
        else
            a->nodes[prev].next = win->key;
        a->nodes[win->key].next = win->value;
        prev = win->value;
        kept++;
        i = last + 1;
    }
    a->nodes[prev].next = EDI_AST_NONE;
    a->nodes[map].count = 2 * kept;
    return 0;
}

/* A value for the top frame is complete. Returns 1 when the frame closed
 * (*node is then the container, to be given to the frame below), 0 when the
 * frame wants another value. */
static int reduce(parser *p, uint32_t *node)
{
    frame *f = &p->frames[p->nframes - 1];
    edi_ast_node *nodes = p->ast->nodes;
    int rc;
    switch (f->kind) {
    case FR_SIGN: {
        edi_ast_node *n = &nodes[*node];
        if ((n->kind != EDI_AST_INT && n->kind != EDI_AST_BIG &&
             n->kind != EDI_AST_FLOAT) ||
            (n->flags & EDI_AST_F_SIGNED))
            return fail_at(p, f->line, f->column, f->offset,
                           "a sign can only be applied to a number literal");
        if (f->state) {
            if (n->kind == EDI_AST_INT) {
                n->v.i = -n->v.i; /* parsed values are >= 0 */
                if (n->v.i != 0)
                    n->flags &= (uint8_t)~EDI_AST_F_BYTE;
            } else if (n->kind == EDI_AST_BIG) {
                n->flags |= EDI_AST_F_NEGATIVE;
            } else {
                n->v.f = -n->v.f;
            }
        }
        n->flags |= EDI_AST_F_SIGNED;
        n->line = f->line;
        n->column = f->column;
        n->offset = (uint32_t)f->offset;
        pop_frame(p);
        return 1;
    }
    case FR_PAREN:
        if (p->tok.kind != TK_RPAREN)
            return fail_expected(p, "')'");
        pop_frame(p);
        return (rc = lex(p)) < 0 ? rc : 1;
    case FR_TUPLE:
        if ((rc = append_child(p, f, *node)) < 0)
            return rc;
        if (p->tok.kind == TK_COMMA)
            return (rc = lex(p)) < 0 ? rc : 0;
        if (p->tok.kind != TK_RBRACE)
            return fail_expected(p, "',' or '}' after tuple element");
        *node = f->node;
        pop_frame(p);
        return (rc = lex(p)) < 0 ? rc : 1;
    case FR_LIST:
        if (f->state == 0) {
            if ((rc = append_child(p, f, *node)) < 0)
                return rc;
            if (p->tok.kind == TK_COMMA)
                return (rc = lex(p)) < 0 ? rc : 0;
            if (p->tok.kind == TK_BAR) {
                f->state = 1;
                return (rc = lex(p)) < 0 ? rc : 0;
            }
            if (p->tok.kind != TK_RBRACKET)
                return fail_expected(p, "',', '|' or ']' after list element");
            nodes[f->node].v.w.a = f->last;
        } else {
            if (p->tok.kind != TK_RBRACKET)
                return fail_expected(p, "']' after list tail");
            if ((rc = set_list_tail(p, f, *node)) < 0)
                return rc;
        }
        *node = f->node;
        pop_frame(p);
        return (rc = lex(p)) < 0 ? rc : 1;
    case FR_MAP:
        if (f->state == 0) {
            if (p->allow_vars && (nodes[*node].flags & EDI_AST_F_NOT_LITERAL))
                return fail_at(p, nodes[*node].line, nodes[*node].column,
                               nodes[*node].offset,
                               "map pattern keys must be literals");
            if ((rc = append_child(p, f, *node)) < 0)
                return rc;
            if (p->allow_vars) {
                if (p->tok.kind == TK_ARROW)
                    return FAIL_TOK(p, &p->tok,
                                    "map patterns use ':=' (as in Erlang)");
                if (p->tok.kind != TK_ASSOC_EXACT)
                    return fail_expected(p, "':=' after map key");
            } else {
                if (p->tok.kind == TK_ASSOC_EXACT)
                    return FAIL_TOK(p, &p->tok,
                                    "':=' is only valid in map "
                                    "patterns; use '=>'");
                if (p->tok.kind != TK_ARROW)
                    return fail_expected(p, "'=>' after map key");
            }
            f->state = 1;
            return (rc = lex(p)) < 0 ? rc : 0;
        }
        if ((rc = append_child(p, f, *node)) < 0)
            return rc;
        f->state = 0;
        if (p->tok.kind == TK_COMMA)
            return (rc = lex(p)) < 0 ? rc : 0;
        if (p->tok.kind != TK_RBRACE)
            return fail_expected(p, "',' or '}' after map value");
        /* patterns match keys as a subset and reject duplicates instead */
        if (!p->allow_vars && (rc = sort_map(p, f->node)) < 0)
            return rc;
        *node = f->node;
        pop_frame(p);
        return (rc = lex(p)) < 0 ? rc : 1;
    default: /* FR_BIN */
        if ((rc = bin_segment(p, f, *node)) < 0)
            return rc;
        if (p->tok.kind == TK_COMMA)
            return (rc = lex(p)) < 0 ? rc : 0;
        if (p->tok.kind != TK_RBIN)
            return fail_expected(p, "',' or '>>' after binary segment");
        if ((rc = finish_binary(p, f)) < 0)
            return rc;
        *node = f->node;
        pop_frame(p);
        return (rc = lex(p)) < 0 ? rc : 1;
    }
}

static int parse_all(parser *p)
{
    int rc = lex(p);
    if (rc < 0)
        return rc;
    uint32_t node = EDI_AST_NONE;
    for (;;) {
        rc = start_value(p, &node);
        if (rc < 0)
            return rc;
        if (rc == 0)
            continue;
        while (p->nframes > 0 && (rc = reduce(p, &node)) == 1)
            ;
        if (rc < 0)
            return rc;
        if (p->nframes == 0)
            break;
    }
    p->ast->root = node;
    if (p->tok.kind == TK_DOT && (rc = lex(p)) < 0)
        return rc;
    if (p->tok.kind != TK_EOF)
        return fail_expected(p, "end of input after the term");
    return 0;
}

int edi_text_parse(edi_ast *ast, const char *text, size_t len, int allow_vars,
                   uint32_t max_depth, edist_parse_error *perr)
{
    memset(ast, 0, sizeof *ast);
    ast->root = EDI_AST_NONE;
    if (perr)
        memset(perr, 0, sizeof *perr);
    if (!text && len)
        return edist_set_error(EDIST_EINVAL, "parse: NULL text");
    if (len > EDI_TEXT_MAX_INPUT)
        return edi_text_error(perr, EDIST_ENOMEM, 1, 1, 0, "input too large");
    parser p;
    memset(&p, 0, sizeof p);
    p.src = (const uint8_t *)(text ? text : "");
    p.len = len;
    p.line = 1;
    p.col = 1;
    p.allow_vars = allow_vars;
    p.max_depth = max_depth ? max_depth : EDIST_DEFAULT_MAX_DEPTH;
    p.ast = ast;
    p.perr = perr;
    p.bin_budget = EDI_TEXT_BINARY_BUDGET_BYTES + len;
    p.key_budget = ((size_t)1 << 20) + 64 * len;
    edist_buf_init(&p.scratch);
    edist_buf_init(&p.mag);
    edist_buf_init(&p.keys);
    /* never NULL, so pool + offset is always a valid pointer */
    int rc = pool_reserve(ast, 64);
    if (rc < 0)
        rc = fail_nomem(&p);
    else
        rc = parse_all(&p);
    free(p.frames);
    free(p.bits);
    edist_buf_free(&p.scratch);
    edist_buf_free(&p.mag);
    edist_buf_free(&p.keys);
    free(p.pairs);
    free(p.order);
    free(p.order_tmp);
    return rc;
}

/* ======================================================================
 * encoder: AST -> canonical ETF
 * ==================================================================== */

typedef struct enc_frame {
    uint32_t node;
    uint32_t child; /* next child to emit, or NONE */
    size_t str_pos; /* LIST: string tail characters still to emit */
    size_t str_end;
} enc_frame;

typedef struct encoder {
    const edi_ast *ast;
    edist_buf *out;
    const edist_text_opts *opts;
    enc_frame *frames;
    size_t nframes, frame_cap;
} encoder;

static edist_atom local_node_atom(const edist_text_opts *opts)
{
    const char *name =
        opts && opts->local_node ? opts->local_node : "nonode@nohost";
    edist_atom a = {name, (uint32_t)strlen(name), 0};
    return a;
}

static int enc_string_chars(encoder *e, const uint8_t *s, size_t len,
                            uint32_t nchars)
{
    uint8_t *w = edi_buf_room(e->out, 3 + (size_t)nchars);
    if (!w)
        return e->out->err;
    w[0] = EDIST_TAG_STRING;
    edi_put_be16(w + 1, (uint16_t)nchars);
    size_t k = 3, pos = 0;
    while (pos < len) {
        uint32_t cp;
        int n = edi_utf8_next(s + pos, len - pos, &cp);
        if (n < 0)
            return EDIST_EBADTERM;
        w[k++] = (uint8_t)cp;
        pos += (size_t)n;
    }
    e->out->len += k;
    return 0;
}

static int enc_int_chars(encoder *e, const uint8_t *s, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        uint32_t cp;
        int n = edi_utf8_next(s + pos, len - pos, &cp);
        if (n < 0)
            return EDIST_EBADTERM;
        int rc = edist_enc_int(e->out, cp);
        if (rc < 0)
            return rc;
        pos += (size_t)n;
    }
    return 0;
}

static int push_enc(encoder *e, uint32_t node)
{
    if (grow_array((void **)&e->frames, &e->frame_cap, e->nframes + 1,
                   sizeof *e->frames) < 0)
        return EDIST_ENOMEM;
    enc_frame *f = &e->frames[e->nframes++];
    memset(f, 0, sizeof *f);
    f->node = node;
    f->child = e->ast->nodes[node].first;
    return 0;
}

/* Emit a node: scalars completely, containers their header (their children
 * follow from the frame loop). */
static int emit(encoder *e, uint32_t index)
{
    const edi_ast *a = e->ast;
    const edi_ast_node *n = &a->nodes[index];
    edist_buf *out = e->out;
    switch (n->kind) {
    case EDI_AST_INT:
        return edist_enc_int(out, n->v.i);
    case EDI_AST_BIG:
        return edist_enc_big(out, (n->flags & EDI_AST_F_NEGATIVE) != 0,
                             a->pool + n->first, n->aux);
    case EDI_AST_FLOAT:
        return edist_enc_double(out, n->v.f);
    case EDI_AST_ATOM:
        return edist_enc_atom(out, (const char *)a->pool + n->first, n->aux);
    case EDI_AST_NIL:
        return edist_enc_nil(out);
    case EDI_AST_STRING: {
        const uint8_t *s = a->pool + n->first;
        if (n->count == 0)
            return edist_enc_nil(out);
        if (n->v.w.a <= 255 && n->count <= 65535)
            return enc_string_chars(e, s, n->aux, n->count);
        int rc = edist_enc_list(out, n->count);
        if (rc == 0)
            rc = enc_int_chars(e, s, n->aux);
        return rc < 0 ? rc : edist_enc_nil(out);
    }
    case EDI_AST_TUPLE: {
        int rc = edist_enc_tuple(out, n->count);
        if (rc < 0 || n->count == 0)
            return rc;
        return push_enc(e, index);
    }
    case EDI_AST_LIST: {
        /* A proper list of 1..65535 integers 0..255 is a STRING_EXT. */
        const edi_ast_node *tail =
            n->aux == EDI_AST_NONE ? NULL : &a->nodes[n->aux];
        int tail_is_string = tail && tail->kind == EDI_AST_STRING;
        uint64_t total =
            (uint64_t)n->count + (tail_is_string ? tail->count : 0);
        int bytes = (!tail || tail_is_string) && total <= 65535 &&
                    (!tail_is_string || tail->v.w.a <= 255);
        for (uint32_t c = n->first; bytes && c != EDI_AST_NONE;
             c = a->nodes[c].next)
            bytes = (a->nodes[c].flags & EDI_AST_F_BYTE) != 0;
        if (bytes) {
            uint8_t *w = edi_buf_room(out, 3 + (size_t)total);
            if (!w)
                return out->err;
            w[0] = EDIST_TAG_STRING;
            edi_put_be16(w + 1, (uint16_t)total);
            size_t k = 3;
            for (uint32_t c = n->first; c != EDI_AST_NONE; c = a->nodes[c].next)
                w[k++] = (uint8_t)a->nodes[c].v.i;
            out->len += k;
            if (tail_is_string) {
                /* append the tail's characters after the elements */
                size_t pos = tail->first, end = pos + tail->aux;
                while (pos < end) {
                    uint32_t cp;
                    int len = edi_utf8_next(a->pool + pos, end - pos, &cp);
                    if (len < 0)
                        return EDIST_EBADTERM;
                    out->data[out->len++] = (uint8_t)cp;
                    pos += (size_t)len;
                }
            }
            return 0;
        }
        if (total > UINT32_MAX)
            return EDIST_ENOMEM;
        int rc = edist_enc_list(out, (uint32_t)total);
        if (rc < 0)
            return rc;
        if ((rc = push_enc(e, index)) < 0)
            return rc;
        if (tail_is_string) {
            enc_frame *f = &e->frames[e->nframes - 1];
            f->str_pos = tail->first;
            f->str_end = (size_t)tail->first + tail->aux;
        }
        return 0;
    }
    case EDI_AST_MAP: { /* pairs are in key order already (sort_map) */
        int rc = edist_enc_map(out, n->count / 2);
        if (rc < 0 || n->count == 0)
            return rc;
        return push_enc(e, index);
    }
    case EDI_AST_BINARY: {
        const uint8_t *bytes = a->pool + n->first;
        unsigned last_bits = (unsigned)(n->v.u % 8);
        if (last_bits == 0)
            return edist_enc_binary(out, bytes, n->aux);
        return edist_enc_bitstring(out, bytes, n->aux, last_bits);
    }
    case EDI_AST_PID: {
        edist_pid pid = {local_node_atom(e->opts), n->v.w.a, n->v.w.b,
                         e->opts ? e->opts->local_creation : 0};
        return edist_enc_pid(out, &pid);
    }
    case EDI_AST_PORT: {
        edist_port port = {local_node_atom(e->opts), n->v.u,
                           e->opts ? e->opts->local_creation : 0};
        return edist_enc_port(out, &port);
    }
    case EDI_AST_REF: {
        edist_ref ref;
        memset(&ref, 0, sizeof ref);
        ref.node = local_node_atom(e->opts);
        ref.creation = e->opts ? e->opts->local_creation : 0;
        ref.len = n->count;
        memcpy(ref.ids, a->pool + n->first, 4 * (size_t)n->count);
        return edist_enc_ref(out, &ref);
    }
    case EDI_AST_EXPORT: {
        const edi_ast_node *m = &a->nodes[n->first];
        const edi_ast_node *fn = &a->nodes[m->next];
        return edist_enc_export(out, (const char *)a->pool + m->first, m->aux,
                                (const char *)a->pool + fn->first, fn->aux,
                                n->count);
    }
    default:
        return edist_set_error(EDIST_EINVAL, "parse: variable in a literal");
    }
}

static int run_encoder(encoder *e, uint32_t root)
{
    int rc = emit(e, root);
    while (rc == 0 && e->nframes > 0) {
        enc_frame *f = &e->frames[e->nframes - 1];
        const edi_ast_node *n = &e->ast->nodes[f->node];
        if (f->child != EDI_AST_NONE) { /* tuple, list and map children */
            uint32_t c = f->child;
            f->child = e->ast->nodes[c].next;
            rc = emit(e, c);
        } else if (n->kind != EDI_AST_LIST) {
            e->nframes--;
        } else if (f->str_pos < f->str_end) {
            rc = enc_int_chars(e, e->ast->pool + f->str_pos,
                               f->str_end - f->str_pos);
            f->str_pos = f->str_end;
        } else {
            uint32_t tail = n->aux;
            e->nframes--;
            if (tail == EDI_AST_NONE ||
                e->ast->nodes[tail].kind == EDI_AST_STRING)
                rc = edist_enc_nil(e->out);
            else
                rc = emit(e, tail);
        }
    }
    return rc;
}

int edi_ast_encode(const edi_ast *ast, uint32_t node, edist_buf *out,
                   const edist_text_opts *opts)
{
    encoder e;
    memset(&e, 0, sizeof e);
    e.ast = ast;
    e.out = out;
    e.opts = opts;
    int rc = run_encoder(&e, node);
    if (rc == 0 && out->err)
        rc = out->err;
    free(e.frames);
    return rc;
}

/* ======================================================================
 * public entry point
 * ==================================================================== */

int edist_term_parse(const char *text, size_t len, edist_buf *out,
                     const edist_text_opts *opts, edist_parse_error *perr)
{
    if (perr)
        memset(perr, 0, sizeof *perr);
    if (!out)
        return edist_set_error(EDIST_EINVAL, "parse: NULL output buffer");
    if (out->err)
        return out->err;
    edi_ast ast;
    int rc =
        edi_text_parse(&ast, text, len, 0, opts ? opts->max_depth : 0, perr);
    if (rc == 0) {
        size_t mark = out->len;
        rc = edi_ast_encode(&ast, ast.root, out, opts);
        if (rc < 0 && out->err == 0)
            out->len = mark;
    }
    edi_ast_free(&ast);
    return rc;
}
