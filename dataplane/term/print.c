/* SPDX-License-Identifier: Apache-2.0 */
/* The ~w printer: appends exactly the characters io_lib:format("~w", [T])
 * returns in OTP 25 (stdlib io_lib:write/2 with encoding latin1 and no depth
 * limit), UTF-8 encoded.
 *
 * Where the text comes from in OTP, and so which rules apply:
 * - integers: integer_to_list; floats: float_to_list(F, [short]);
 * - atoms: io_lib:write_atom_as_latin1 (quoted when needed, characters above
 *   255 escaped as \x{HEX});
 * - pids, ports, refs and funs: the erts BIFs pid_to_list, port_to_list,
 *   ref_to_list and fun_to_list. fun_to_list builds its text in C from the
 *   atoms' UTF-8 bytes and returns each BYTE as one character, so a fun
 *   whose module or function name is not ASCII prints as UTF-8 that was
 *   encoded twice. We reproduce that, the goal being the exact characters;
 *   the erts quoting rules there also differ from io_lib's (no reserved
 *   words, '@' needs quotes, other escapes).
 * - maps: pairs in the order they are encoded. That is erts' order for what
 *   erts encodes with up to 32 keys (sorted); erts sorts other small maps
 *   while decoding and prints larger ones in its internal hash order.
 *
 * The walk is iterative: nesting lives in a heap stack of frames, one per
 * open non-empty tuple, list or map, at most max_depth of them and bounded
 * by the input (every frame consumed a container header). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edist/term.h"
#include "term_internal.h"

#define LOCAL_NODE_DEFAULT "nonode@nohost"
#define PRINT_INLINE_FRAMES 32

/* ---- output helpers: sticky buffer error, checked by the walker -------- */

static inline void put_bytes(edist_buf *b, const void *s, size_t n)
{
    if (n == 0)
        return;
    uint8_t *d = edi_buf_room(b, n);
    if (!d)
        return;
    memcpy(d, s, n);
    b->len += n;
}

static inline void put_str(edist_buf *b, const char *s)
{
    put_bytes(b, s, strlen(s));
}

static inline void put_char(edist_buf *b, char c)
{
    uint8_t *d = edi_buf_room(b, 1);
    if (!d)
        return;
    *d = (uint8_t)c;
    b->len += 1;
}

/* v in decimal at the start of out; returns the length. */
static size_t u64_to_text(uint64_t v, char out[24])
{
    char rev[24];
    size_t n = 0;
    do {
        rev[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = rev[n - 1 - i];
    return n;
}

static void put_u64(edist_buf *b, uint64_t v)
{
    char text[24];
    put_bytes(b, text, u64_to_text(v, text));
}

/* The low 32 bits as a signed number, as erts prints fun indexes. */
static void put_i32_of(edist_buf *b, int64_t v)
{
    uint32_t low = (uint32_t)((uint64_t)v & 0xFFFFFFFFu);
    if (low >= 0x80000000u) {
        put_char(b, '-');
        put_u64(b, (uint64_t)0x100000000u - low);
    } else {
        put_u64(b, low);
    }
}

/* One code point (<= 0x10FFFF) as UTF-8 into out; returns the length. */
static size_t utf8_encode(uint32_t cp, uint8_t out[4])
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

static void put_utf8(edist_buf *b, uint32_t cp)
{
    uint8_t bytes[4];
    put_bytes(b, bytes, utf8_encode(cp, bytes));
}

static inline uint8_t *put_byte_decimal(uint8_t *d, unsigned x)
{
    if (x >= 100)
        *d++ = (uint8_t)('0' + x / 100);
    if (x >= 10)
        *d++ = (uint8_t)('0' + x / 10 % 10);
    *d++ = (uint8_t)('0' + x % 10);
    return d;
}

/* Bytes as comma-separated decimals ("1,2,255"), the body of byte lists and
 * binaries. One reservation for the whole run: 4 bytes per byte, or the
 * exact size when a fixed buffer may hold the text but not 4 bytes per byte. */
static void put_byte_list(edist_buf *b, const uint8_t *s, size_t n)
{
    if (n == 0)
        return;
    size_t need = n - 1;
    if (b->err == 0 && n <= SIZE_MAX / 4 &&
        (!b->fixed || b->cap - b->len >= n * 4)) {
        need = n * 4;
    } else {
        for (size_t i = 0; i < n; i++)
            need += s[i] >= 100 ? 3u : s[i] >= 10 ? 2u : 1u;
    }
    uint8_t *d = edi_buf_room(b, need);
    if (!d)
        return;
    uint8_t *start = d;
    d = put_byte_decimal(d, s[0]);
    for (size_t i = 1; i < n; i++) {
        *d++ = ',';
        d = put_byte_decimal(d, s[i]);
    }
    b->len += (size_t)(d - start);
}

/* ---- floats: float_to_list(F, [short]) ---------------------------------
 * Digits: the fewest significant digits that read back as the same double,
 * and of those the decimal nearest the double (what Ryu and OTP produce).
 * Found exactly with the C library's correctly rounded conversions: the
 * nearest p-digit decimal is printf's "%.{p-1}e"; when it does not read back,
 * the only other p-digit candidate that can is its neighbour on the other
 * side of the double (the round-trip interval may be lopsided at powers of
 * two). "Some p-digit decimal reads back" only grows with p, so p is found
 * by bisection over 1..17 (17 digits always suffice).
 * Candidates are built as "<integer>e<exp>", which strtod reads the same in
 * every locale; printf's radix character is skipped whatever it is. */

static const uint64_t pow10_u64[18] = {
    1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull,
    10000000ull, 100000000ull, 1000000000ull, 10000000000ull,
    100000000000ull, 1000000000000ull, 10000000000000ull,
    100000000000000ull, 1000000000000000ull, 10000000000000000ull,
    100000000000000000ull,
};

static double decimal_value(uint64_t mant, int exp10)
{
    char text[48];
    snprintf(text, sizeof text, "%" PRIu64 "e%d", mant, exp10);
    return strtod(text, NULL);
}

/* v > 0, finite. If a digits-long decimal reads back as v, stores the nearest
 * such one as mant * 10^exp10 and returns 1; else returns 0. */
static int nearest_at_precision(double v, int digits, uint64_t *mant,
                                int *exp10)
{
    char text[64];
    snprintf(text, sizeof text, "%.*e", digits - 1, v);
    uint64_t m = 0;
    const char *s = text;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9')
            m = m * 10 + (uint64_t)(*s - '0');
    if (*s != 'e')
        return 0; /* not reached for finite v */
    int e = (int)strtol(s + 1, NULL, 10) - (digits - 1);
    double back = decimal_value(m, e);
    if (back == v) {
        *mant = m;
        *exp10 = e;
        return 1;
    }
    const uint64_t lowest = pow10_u64[digits - 1], highest = pow10_u64[digits] - 1;
    if (back > v) {
        if (m == lowest) {
            m = highest;
            e -= 1;
        } else {
            m -= 1;
        }
    } else {
        if (m == highest) {
            m = lowest;
            e += 1;
        } else {
            m += 1;
        }
    }
    if (decimal_value(m, e) == v) {
        *mant = m;
        *exp10 = e;
        return 1;
    }
    return 0;
}

static void put_float(edist_buf *b, double v)
{
    int saved_errno = errno; /* strtod reports underflow in errno */
    char text[48];
    size_t n = 0;
    if (signbit(v)) {
        text[n++] = '-';
        v = -v;
    }
    if (v == 0) {
        memcpy(text + n, "0.0", 3);
        put_bytes(b, text, n + 3);
        return;
    }
    uint64_t mant = 0;
    int exp10 = 0;
    if (v < 9007199254740992.0 && v == (double)(uint64_t)v) {
        /* Integers below 2^53 are exact and one apart: their own digits are
         * the shortest that read back. */
        mant = (uint64_t)v;
    } else {
        uint64_t try_mant;
        int try_exp10;
        int lo = 1, hi = 17;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (nearest_at_precision(v, mid, &try_mant, &try_exp10)) {
                hi = mid;
                mant = try_mant;
                exp10 = try_exp10;
            } else {
                lo = mid + 1;
            }
        }
        if (mant == 0) /* only 17 digits read back; never probed above */
            nearest_at_precision(v, 17, &mant, &exp10);
    }
    errno = saved_errno;
    while (mant >= 10 && mant % 10 == 0) {
        mant /= 10;
        exp10++;
    }
    char digits[24];
    int ndigits = (int)u64_to_text(mant, digits);
    int sci_exp = exp10 + ndigits - 1; /* v = d.ddd * 10^sci_exp */

    char exp_text[8];
    int exp_len = snprintf(exp_text, sizeof exp_text, "%d", sci_exp);
    int sci_len = (ndigits == 1 ? 3 : ndigits + 1) + 1 + exp_len;
    int dec_len;
    if (sci_exp >= 0)
        dec_len = ndigits <= sci_exp + 1 ? sci_exp + 3 : ndigits + 1;
    else
        dec_len = 1 + -sci_exp + ndigits; /* "0." + zeros + digits */
    /* OTP: the shorter form, decimal on a tie, but never decimal for
     * magnitudes of 2^53 or more. */
    if (v < 9007199254740992.0 && dec_len <= sci_len) {
        if (sci_exp >= 0) {
            if (ndigits <= sci_exp + 1) {
                memcpy(text + n, digits, (size_t)ndigits);
                n += (size_t)ndigits;
                for (int i = ndigits; i <= sci_exp; i++)
                    text[n++] = '0';
                text[n++] = '.';
                text[n++] = '0';
            } else {
                memcpy(text + n, digits, (size_t)sci_exp + 1);
                n += (size_t)sci_exp + 1;
                text[n++] = '.';
                memcpy(text + n, digits + sci_exp + 1,
                       (size_t)(ndigits - sci_exp - 1));
                n += (size_t)(ndigits - sci_exp - 1);
            }
        } else {
            text[n++] = '0';
            text[n++] = '.';
            for (int i = 1; i < -sci_exp; i++)
                text[n++] = '0';
            memcpy(text + n, digits, (size_t)ndigits);
            n += (size_t)ndigits;
        }
    } else {
        text[n++] = digits[0];
        text[n++] = '.';
        if (ndigits == 1) {
            text[n++] = '0';
        } else {
            memcpy(text + n, digits + 1, (size_t)ndigits - 1);
            n += (size_t)ndigits - 1;
        }
        text[n++] = 'e';
        memcpy(text + n, exp_text, (size_t)exp_len);
        n += (size_t)exp_len;
    }
    put_bytes(b, text, n);
}

/* ---- atoms ---------------------------------------------------------------- */

/* Next code point of an atom; the decoder has checked UTF-8 already, but a
 * bad sequence still fails cleanly. */
static int atom_next(const edist_atom *a, size_t *i, uint32_t *cp)
{
    const uint8_t *s = (const uint8_t *)a->ptr;
    if (a->latin1) {
        *cp = s[*i];
        *i += 1;
        return 0;
    }
    int n = edi_utf8_next(s + *i, a->len - *i, cp);
    if (n < 0)
        return edist_set_error(EDIST_EBADTERM, "print: atom is not UTF-8");
    *i += (size_t)n;
    return 0;
}

/* Letter classes shared by io_lib (quote_atom) and erts (fun_to_list):
 * ASCII plus the ISO-8859-1 letters, without the signs × and ÷. */
static int is_lower_letter(uint32_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 0xDF && c <= 0xFF && c != 0xF7);
}

static int is_upper_letter(uint32_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7);
}

static int is_alnum_or_underscore(uint32_t c)
{
    return is_lower_letter(c) || is_upper_letter(c) || (c >= '0' && c <= '9') ||
           c == '_';
}

/* erl_scan:reserved_word/1 of OTP 25 with no optional features enabled
 * ('maybe' and 'else' belong to the maybe_expr feature, off by default). */
static int is_reserved_word(const edist_atom *a)
{
    static const char *const words[] = {
        "after", "begin", "case", "try", "cond", "catch", "andalso", "orelse",
        "end", "fun", "if", "let", "of", "receive", "when", "bnot", "not",
        "div", "rem", "band", "and", "bor", "bxor", "bsl", "bsr", "or", "xor",
    };
    /* All ASCII: equal bytes mean equal characters in either encoding. */
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strlen(words[i]) == a->len && memcmp(words[i], a->ptr, a->len) == 0)
            return 1;
    return 0;
}

/* io_lib:quote_atom/2. */
static int iolib_atom_needs_quotes(const edist_atom *a, int *needs)
{
    *needs = 1;
    if (a->len == 0 || is_reserved_word(a))
        return 0;
    size_t i = 0;
    uint32_t c = 0;
    int rc = atom_next(a, &i, &c);
    if (rc < 0)
        return rc;
    if (!is_lower_letter(c))
        return 0;
    while (i < a->len) {
        if ((rc = atom_next(a, &i, &c)) < 0)
            return rc;
        if (!is_alnum_or_underscore(c) && c != '@')
            return 0;
    }
    *needs = 0;
    return 0;
}

/* io_lib:write_atom_as_latin1/1. */
static int put_atom(edist_buf *b, const edist_atom *a)
{
    int needs_quotes;
    int rc = iolib_atom_needs_quotes(a, &needs_quotes);
    if (rc < 0)
        return rc;
    if (!needs_quotes && !a->latin1) {
        put_bytes(b, a->ptr, a->len);
        return 0;
    }
    if (needs_quotes)
        put_char(b, '\'');
    size_t i = 0;
    while (i < a->len) {
        uint32_t c = 0;
        if ((rc = atom_next(a, &i, &c)) < 0)
            return rc;
        char esc[16];
        switch (c) {
        case '\'': put_str(b, "\\'"); continue;
        case '\\': put_str(b, "\\\\"); continue;
        case '\n': put_str(b, "\\n"); continue;
        case '\r': put_str(b, "\\r"); continue;
        case '\t': put_str(b, "\\t"); continue;
        case '\v': put_str(b, "\\v"); continue;
        case '\b': put_str(b, "\\b"); continue;
        case '\f': put_str(b, "\\f"); continue;
        case 27: put_str(b, "\\e"); continue;
        case 127: put_str(b, "\\d"); continue;
        default: break;
        }
        if ((c >= ' ' && c <= '~') || (c >= 0xA0 && c <= 0xFF)) {
            put_utf8(b, c);
        } else if (c > 0xFF) {
            snprintf(esc, sizeof esc, "\\x{%" PRIX32 "}", c);
            put_str(b, esc);
        } else { /* other control characters, below 160: three octal digits */
            snprintf(esc, sizeof esc, "\\%03" PRIo32, c);
            put_str(b, esc);
        }
    }
    if (needs_quotes)
        put_char(b, '\'');
    return 0;
}

/* erts-made text is bytes, and each byte is one character of the result:
 * a code point's UTF-8 bytes are written as characters, so UTF-8 again. */
static void put_cp_bytes_as_chars(edist_buf *b, uint32_t c)
{
    uint8_t bytes[4];
    size_t n = utf8_encode(c, bytes);
    for (size_t i = 0; i < n; i++)
        put_utf8(b, bytes[i]);
}

/* An atom as erts' fun_to_list writes it: quoted unless it starts with a
 * lower-case letter and continues with letters, digits and '_'. */
static int put_erts_atom(edist_buf *b, const edist_atom *a, int quoting)
{
    int rc;
    int needs_quotes = 0;
    if (quoting) {
        size_t i = 0;
        uint32_t c = 0;
        needs_quotes = a->len == 0;
        while (!needs_quotes && i < a->len) {
            int first = i == 0;
            if ((rc = atom_next(a, &i, &c)) < 0)
                return rc;
            needs_quotes = first ? !is_lower_letter(c) : !is_alnum_or_underscore(c);
        }
    }
    if (needs_quotes)
        put_char(b, '\'');
    size_t i = 0;
    while (i < a->len) {
        uint32_t c = 0;
        if ((rc = atom_next(a, &i, &c)) < 0)
            return rc;
        if (needs_quotes) {
            const char *esc = NULL;
            switch (c) {
            case '\'': esc = "\\'"; break;
            case '\\': esc = "\\\\"; break;
            case '\n': esc = "\\n"; break;
            case '\f': esc = "\\f"; break;
            case '\t': esc = "\\t"; break;
            case '\r': esc = "\\r"; break;
            case '\b': esc = "\\b"; break;
            case '\v': esc = "\\v"; break;
            default: break;
            }
            char octal[8];
            if (!esc && (c < ' ' || (c >= 0x80 && c < 0xA0))) {
                snprintf(octal, sizeof octal, "\\%03" PRIo32, c);
                esc = octal;
            }
            if (esc) {
                put_str(b, esc);
                continue;
            }
        }
        put_cp_bytes_as_chars(b, c);
    }
    if (needs_quotes)
        put_char(b, '\'');
    return 0;
}

/* ---- pids, ports, refs ------------------------------------------------------ */

typedef struct printer {
    edist_cursor cur;
    edist_buf *out;
    const char *local_node;
    size_t local_node_len;
} printer;

static int atom_equals_utf8(const edist_atom *a, const char *s, size_t n)
{
    if (!a->latin1)
        return a->len == n && memcmp(a->ptr, s, n) == 0;
    size_t pos = 0;
    for (size_t i = 0; i < a->len; i++) {
        uint8_t bytes[4];
        size_t k = utf8_encode((uint8_t)a->ptr[i], bytes);
        if (k > n - pos || memcmp(s + pos, bytes, k) != 0)
            return 0;
        pos += k;
    }
    return pos == n;
}

/* erts prints the node of a pid, port or ref as an index into its node
 * table: 0 for the local node, otherwise a number that depends on the order
 * in which that runtime met the nodes and cannot be reproduced here. We use
 * 0 for opts->local_node and, for any other node, 1 + (32-bit FNV-1a of the
 * node name's UTF-8 bytes) mod 65535: nonzero, stable across runs and
 * processes, and small like the erts numbers. */
static uint32_t node_number(const printer *p, const edist_atom *node)
{
    if (atom_equals_utf8(node, p->local_node, p->local_node_len))
        return 0;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < node->len; i++) {
        uint8_t bytes[4];
        size_t k = 1;
        bytes[0] = (uint8_t)node->ptr[i];
        if (node->latin1)
            k = utf8_encode(bytes[0], bytes);
        for (size_t j = 0; j < k; j++) {
            h ^= bytes[j];
            h *= 16777619u;
        }
    }
    return 1 + h % 65535u;
}

static int print_pid(printer *p)
{
    edist_pid pid;
    int rc = edist_dec_pid(&p->cur, &pid);
    if (rc < 0)
        return rc;
    put_char(p->out, '<');
    put_u64(p->out, node_number(p, &pid.node));
    put_char(p->out, '.');
    put_u64(p->out, pid.id);
    put_char(p->out, '.');
    put_u64(p->out, pid.serial);
    put_char(p->out, '>');
    return 0;
}

static int print_port(printer *p)
{
    edist_port port;
    int rc = edist_dec_port(&p->cur, &port);
    if (rc < 0)
        return rc;
    put_str(p->out, "#Port<");
    put_u64(p->out, node_number(p, &port.node));
    put_char(p->out, '.');
    put_u64(p->out, port.id);
    put_char(p->out, '>');
    return 0;
}

/* ref_to_list: words from the last on the wire to the first. erts turns a
 * local ref of fewer than 3 words into an ordinary 3-word ref (zeros above),
 * so those print 3 numbers; remote refs print the words they have. */
static int print_ref(printer *p)
{
    edist_ref ref;
    int rc = edist_dec_ref(&p->cur, &ref);
    if (rc < 0)
        return rc;
    uint32_t node = node_number(p, &ref.node);
    uint32_t words = ref.len > EDIST_REF_MAX_WORDS ? EDIST_REF_MAX_WORDS : ref.len;
    put_str(p->out, "#Ref<");
    put_u64(p->out, node);
    for (uint32_t i = words; node == 0 && i < 3; i++)
        put_str(p->out, ".0");
    for (uint32_t i = words; i > 0; i--) {
        put_char(p->out, '.');
        put_u64(p->out, ref.ids[i - 1]);
    }
    put_char(p->out, '>');
    return 0;
}

static int print_fun(printer *p, uint8_t tag)
{
    int rc;
    if (tag == EDIST_TAG_EXPORT) {
        edist_export e;
        if ((rc = edist_dec_export(&p->cur, &e)) < 0)
            return rc;
        put_str(p->out, "fun ");
        if ((rc = put_erts_atom(p->out, &e.module, 1)) < 0)
            return rc;
        put_char(p->out, ':');
        if ((rc = put_erts_atom(p->out, &e.function, 1)) < 0)
            return rc;
        put_char(p->out, '/');
        put_u64(p->out, e.arity);
        return 0;
    }
    edist_fun f;
    if ((rc = edist_dec_fun(&p->cur, &f)) < 0)
        return rc;
    put_str(p->out, "#Fun<");
    if ((rc = put_erts_atom(p->out, &f.module, 0)) < 0)
        return rc;
    put_char(p->out, '.');
    put_i32_of(p->out, f.old_index);
    put_char(p->out, '.');
    put_i32_of(p->out, f.old_uniq);
    put_char(p->out, '>');
    return 0;
}

/* ---- numbers, binaries ------------------------------------------------------ */

static int print_integer(printer *p)
{
    int negative;
    const uint8_t *mag;
    size_t n;
    uint8_t tmp[8];
    int rc = edist_dec_integer(&p->cur, &negative, &mag, &n, tmp);
    if (rc < 0)
        return rc;
    while (n > 0 && mag[n - 1] == 0) /* non-canonical leading zeros */
        n--;
    if (n > 8)
        return edist_big_to_decimal(negative, mag, n, p->out);
    uint64_t v = 0;
    for (size_t i = n; i > 0; i--)
        v = (v << 8) | mag[i - 1];
    if (negative && v != 0) /* a bignum "-0" is 0 in Erlang */
        put_char(p->out, '-');
    put_u64(p->out, v);
    return 0;
}

static int print_bitstring(printer *p)
{
    const uint8_t *bytes;
    size_t nbytes;
    unsigned last_bits;
    int rc = edist_dec_bitstring(&p->cur, &bytes, &nbytes, &last_bits);
    if (rc < 0)
        return rc;
    put_str(p->out, "<<");
    if (nbytes > 0 && last_bits >= 1 && last_bits < 8) {
        put_byte_list(p->out, bytes, nbytes - 1);
        if (nbytes > 1)
            put_char(p->out, ',');
        put_u64(p->out, (unsigned)(bytes[nbytes - 1] >> (8 - last_bits)));
        put_char(p->out, ':');
        put_u64(p->out, last_bits);
    } else {
        put_byte_list(p->out, bytes, nbytes);
    }
    put_str(p->out, ">>");
    return 0;
}

/* ---- the walk ------------------------------------------------------------- */

enum frame_kind {
    FRAME_TUPLE,
    FRAME_LIST,      /* elements of a list, then its tail */
    FRAME_LIST_TAIL, /* an improper tail after '|' */
    FRAME_MAP,       /* keys and values alternate */
};

typedef struct print_frame {
    uint64_t remaining; /* children not yet started (map: keys + values) */
    uint8_t kind;
    uint8_t started;    /* a child was printed: separators go before others */
} print_frame;

typedef struct frame_stack {
    print_frame *frames;
    size_t depth;
    size_t cap;
    uint32_t max_depth;
    print_frame inline_frames[PRINT_INLINE_FRAMES];
} frame_stack;

static int push_frame(printer *p, frame_stack *st, uint8_t kind,
                      uint64_t children)
{
    if (st->depth >= st->max_depth) {
        p->cur.err_offset = p->cur.pos;
        return edist_set_error(EDIST_EDEPTH,
                               "print: nesting deeper than %" PRIu32 " at offset %zu",
                               st->max_depth, p->cur.pos);
    }
    if (st->depth == st->cap) {
        size_t cap = st->cap * 2;
        print_frame *frames;
        if (st->frames == st->inline_frames) {
            frames = malloc(cap * sizeof *frames);
            if (frames)
                memcpy(frames, st->frames, st->depth * sizeof *frames);
        } else {
            frames = realloc(st->frames, cap * sizeof *frames);
        }
        if (!frames)
            return edist_set_error(EDIST_ENOMEM, "print: no memory for %zu frames",
                                   cap);
        st->frames = frames;
        st->cap = cap;
    }
    print_frame *f = &st->frames[st->depth++];
    f->remaining = children;
    f->kind = kind;
    f->started = 0;
    return 0;
}

/* Prints the term at the cursor if it is atomic; for a non-empty container
 * writes the opening bracket and pushes a frame for its children. */
static int print_start(printer *p, frame_stack *st)
{
    edist_buf *out = p->out;
    for (;;) { /* repeats only past LIST_EXT headers of zero elements */
        edist_term_info info;
        int rc = edist_peek(&p->cur, &info);
        if (rc < 0)
            return rc;
        switch (info.type) {
        case EDIST_TYPE_INTEGER:
            return print_integer(p);
        case EDIST_TYPE_FLOAT: {
            double v;
            if ((rc = edist_dec_double(&p->cur, &v)) < 0)
                return rc;
            put_float(out, v);
            return 0;
        }
        case EDIST_TYPE_ATOM: {
            edist_atom a;
            if ((rc = edist_dec_atom(&p->cur, &a)) < 0)
                return rc;
            return put_atom(out, &a);
        }
        case EDIST_TYPE_REF:
            return print_ref(p);
        case EDIST_TYPE_FUN:
            return print_fun(p, info.tag);
        case EDIST_TYPE_PORT:
            return print_port(p);
        case EDIST_TYPE_PID:
            return print_pid(p);
        case EDIST_TYPE_TUPLE: {
            uint32_t arity;
            if ((rc = edist_dec_tuple(&p->cur, &arity)) < 0)
                return rc;
            if (arity == 0) {
                put_str(out, "{}");
                return 0;
            }
            put_char(out, '{');
            return push_frame(p, st, FRAME_TUPLE, arity);
        }
        case EDIST_TYPE_MAP: {
            uint32_t pairs;
            if ((rc = edist_dec_map(&p->cur, &pairs)) < 0)
                return rc;
            if (pairs == 0) {
                put_str(out, "#{}");
                return 0;
            }
            put_str(out, "#{");
            return push_frame(p, st, FRAME_MAP, (uint64_t)pairs * 2);
        }
        case EDIST_TYPE_NIL:
            if ((rc = edist_dec_nil(&p->cur)) < 0)
                return rc;
            put_str(out, "[]");
            return 0;
        case EDIST_TYPE_LIST: {
            if (info.tag == EDIST_TAG_STRING) {
                const uint8_t *bytes;
                size_t len;
                if ((rc = edist_dec_string(&p->cur, &bytes, &len)) < 0)
                    return rc;
                put_char(out, '[');
                put_byte_list(out, bytes, len);
                put_char(out, ']');
                return 0;
            }
            uint32_t n;
            if ((rc = edist_dec_list(&p->cur, &n)) < 0)
                return rc;
            if (n == 0) /* erts: a LIST_EXT of no elements is just its tail */
                continue;
            put_char(out, '[');
            return push_frame(p, st, FRAME_LIST, n);
        }
        case EDIST_TYPE_BINARY:
            return print_bitstring(p);
        default:
            break;
        }
        p->cur.err_offset = p->cur.pos;
        return edist_set_error(EDIST_EBADTAG, "print: unexpected tag %u at offset %zu",
                               info.tag, p->cur.pos);
    }
}

/* After a list's last element: the cursor is at its tail. Flattens tails
 * that are lists themselves, as erts builds one list from them. Returns 1
 * when a child (more elements, or an improper tail) is to be printed next,
 * 0 when the list was closed and popped. */
static int print_list_tail(printer *p, frame_stack *st, print_frame *f)
{
    for (;;) {
        edist_term_info info;
        int rc = edist_peek(&p->cur, &info);
        if (rc < 0)
            return rc;
        if (info.type == EDIST_TYPE_NIL) {
            if ((rc = edist_dec_nil(&p->cur)) < 0)
                return rc;
            break;
        }
        if (info.tag == EDIST_TAG_STRING) {
            const uint8_t *bytes;
            size_t len;
            if ((rc = edist_dec_string(&p->cur, &bytes, &len)) < 0)
                return rc;
            if (len) {
                put_char(p->out, ',');
                put_byte_list(p->out, bytes, len);
            }
            break;
        }
        if (info.tag == EDIST_TAG_LIST) {
            uint32_t n;
            if ((rc = edist_dec_list(&p->cur, &n)) < 0)
                return rc;
            if (n == 0)
                continue;
            f->remaining = n;
            return 1;
        }
        put_char(p->out, '|');
        f->kind = FRAME_LIST_TAIL;
        f->remaining = 1;
        return 1;
    }
    put_char(p->out, ']');
    st->depth--;
    return 0;
}

/* Called after a term is complete: writes separators and closing brackets.
 * Returns 1 when another term is to be printed at the cursor, 0 when the
 * whole term is done, or an error. */
static int print_advance(printer *p, frame_stack *st)
{
    edist_buf *out = p->out;
    while (st->depth > 0) {
        print_frame *f = &st->frames[st->depth - 1];
        if (f->remaining > 0) {
            if (f->started) {
                if (f->kind == FRAME_MAP && f->remaining % 2 == 1)
                    put_str(out, " => ");
                else if (f->kind != FRAME_LIST_TAIL)
                    put_char(out, ',');
            }
            f->started = 1;
            f->remaining--;
            return 1;
        }
        switch (f->kind) {
        case FRAME_TUPLE:
            put_char(out, '}');
            st->depth--;
            break;
        case FRAME_MAP:
            put_char(out, '}');
            st->depth--;
            break;
        case FRAME_LIST_TAIL:
            put_char(out, ']');
            st->depth--;
            break;
        case FRAME_LIST: {
            int rc = print_list_tail(p, st, f);
            if (rc < 0)
                return rc;
            break;
        }
        default:
            return EDIST_EINVAL; /* not reached */
        }
    }
    return 0;
}

static int print_walk(printer *p, uint32_t max_depth)
{
    frame_stack st;
    st.frames = st.inline_frames;
    st.depth = 0;
    st.cap = PRINT_INLINE_FRAMES;
    st.max_depth = max_depth;
    int rc;
    do {
        rc = print_start(p, &st);
        if (rc < 0)
            break;
        rc = print_advance(p, &st);
        if (rc >= 0 && p->out->err)
            rc = p->out->err;
    } while (rc > 0);
    if (st.frames != st.inline_frames)
        free(st.frames);
    return rc;
}

int edist_term_print(const void *term, size_t len, edist_buf *out,
                     const edist_text_opts *opts)
{
    if (!out || (!term && len))
        return edist_set_error(EDIST_EINVAL, "print: NULL argument");
    if (out->err)
        return out->err;
    printer p;
    p.out = out;
    p.local_node = opts && opts->local_node ? opts->local_node : LOCAL_NODE_DEFAULT;
    p.local_node_len = strlen(p.local_node);
    uint32_t max_depth = opts && opts->max_depth ? opts->max_depth
                                                 : EDIST_DEFAULT_MAX_DEPTH;
    const size_t start_len = out->len;
    edist_buf scratch;
    edist_buf_init(&scratch);
    int rc;
    if (len > 0 && ((const uint8_t *)term)[0] == EDIST_TAG_VERSION) {
        rc = edist_cursor_init_ext(&p.cur, term, len, &scratch);
    } else {
        edist_cursor_init(&p.cur, term, len);
        rc = 0;
    }
    if (rc >= 0) {
        p.cur.max_depth = max_depth;
        rc = print_walk(&p, max_depth);
    }
    if (rc >= 0 && p.cur.pos != p.cur.len)
        rc = edist_set_error(EDIST_EBADTERM, "print: %zu bytes after the term at offset %zu",
                             p.cur.len - p.cur.pos, p.cur.pos);
    edist_buf_free(&scratch);
    if (rc < 0) {
        out->len = start_len;
        return rc;
    }
    return 0;
}
