/* SPDX-License-Identifier: Apache-2.0 */
/* Erlang External Term Format (ETF): encoder, zero-copy decoder cursor,
 * Erlang text parser and ~w printer, term order, and selective-receive
 * patterns.
 *
 * Conventions
 * - "Encoded term" means the bytes of one term WITHOUT the 131 version byte,
 *   exactly as terms appear after the version byte in term_to_binary output
 *   or inside a distribution message.
 * - "External term" means 131 followed by an encoded term, or 131, 80, u32
 *   size, zlib data (a compressed term).
 * - Whole-term functions (print, compare, equal, match) take either form: a
 *   leading byte 131 is never a valid tag, so it is recognised and skipped;
 *   compressed external terms are inflated into a temporary buffer.
 * - Integers on the wire are big-endian. All functions return 0 (or a
 *   non-negative value where stated) on success, a negative edist_err on
 *   failure. None of them blocks; all are safe to call from any thread as long
 *   as each object is used by one thread at a time.
 */
#ifndef EDIST_TERM_H
#define EDIST_TERM_H

#include <stddef.h>
#include <stdint.h>

#include "edist/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- tags (erl_ext_dist) ------------------------------------------------ */
enum {
    EDIST_TAG_VERSION = 131,
    EDIST_TAG_COMPRESSED = 80,
    EDIST_TAG_NEW_FLOAT = 70,
    EDIST_TAG_BIT_BINARY = 77,
    EDIST_TAG_ATOM_CACHE_REF = 82,
    EDIST_TAG_NEW_PID = 88,
    EDIST_TAG_NEW_PORT = 89,
    EDIST_TAG_NEWER_REFERENCE = 90,
    EDIST_TAG_SMALL_INTEGER = 97,
    EDIST_TAG_INTEGER = 98,
    EDIST_TAG_FLOAT = 99,
    EDIST_TAG_ATOM = 100,
    EDIST_TAG_REFERENCE = 101,
    EDIST_TAG_PORT = 102,
    EDIST_TAG_PID = 103,
    EDIST_TAG_SMALL_TUPLE = 104,
    EDIST_TAG_LARGE_TUPLE = 105,
    EDIST_TAG_NIL = 106,
    EDIST_TAG_STRING = 107,
    EDIST_TAG_LIST = 108,
    EDIST_TAG_BINARY = 109,
    EDIST_TAG_SMALL_BIG = 110,
    EDIST_TAG_LARGE_BIG = 111,
    EDIST_TAG_NEW_FUN = 112,
    EDIST_TAG_EXPORT = 113,
    EDIST_TAG_NEW_REFERENCE = 114,
    EDIST_TAG_SMALL_ATOM = 115,
    EDIST_TAG_MAP = 116,
    EDIST_TAG_FUN = 117,
    EDIST_TAG_ATOM_UTF8 = 118,
    EDIST_TAG_SMALL_ATOM_UTF8 = 119,
    EDIST_TAG_V4_PORT = 120,
};

/* Term kinds, numbered in Erlang term order:
 * number < atom < reference < fun < port < pid < tuple < map < nil < list
 * < bit string. */
typedef enum edist_type {
    EDIST_TYPE_INTEGER = 1, /* small, INTEGER_EXT, SMALL_BIG, LARGE_BIG */
    EDIST_TYPE_FLOAT,
    EDIST_TYPE_ATOM,
    EDIST_TYPE_REF,
    EDIST_TYPE_FUN,         /* NEW_FUN_EXT (local fun) and EXPORT_EXT */
    EDIST_TYPE_PORT,
    EDIST_TYPE_PID,
    EDIST_TYPE_TUPLE,
    EDIST_TYPE_MAP,
    EDIST_TYPE_NIL,
    EDIST_TYPE_LIST,        /* LIST_EXT and STRING_EXT */
    EDIST_TYPE_BINARY,      /* BINARY_EXT and BIT_BINARY_EXT */
} edist_type;

/* Limits. Atoms: at most 255 characters (up to 1020 UTF-8 bytes), as erts. */
#define EDIST_ATOM_MAX_CHARS 255
#define EDIST_ATOM_MAX_BYTES 1020
#define EDIST_DEFAULT_MAX_DEPTH 100000u
#define EDIST_REF_MAX_WORDS 5

/* ---- views into encoded bytes ------------------------------------------ */

/* An atom's text, pointing into the decoded buffer (no copy). latin1 != 0 for
 * the deprecated ATOM_EXT/SMALL_ATOM_EXT forms whose bytes are ISO-8859-1;
 * otherwise the bytes are valid UTF-8 (the decoder checks). */
typedef struct edist_atom {
    const char *ptr;
    uint32_t len;  /* bytes */
    uint8_t latin1;
} edist_atom;

typedef struct edist_pid {
    edist_atom node;
    uint32_t id;
    uint32_t serial;
    uint32_t creation;
} edist_pid;

typedef struct edist_port {
    edist_atom node;
    uint64_t id;
    uint32_t creation;
} edist_port;

typedef struct edist_ref {
    edist_atom node;
    uint32_t creation;
    uint32_t len;                       /* words used, 1..5 */
    uint32_t ids[EDIST_REF_MAX_WORDS];  /* wire order */
} edist_ref;

typedef struct edist_export {
    edist_atom module;
    edist_atom function;
    uint32_t arity;
} edist_export;

/* A local fun (NEW_FUN_EXT). Passed through opaquely: `bytes` covers the whole
 * encoded fun (tag included) so it can be re-sent unchanged. old_index and
 * old_uniq are what ~w prints: #Fun<Module.OldIndex.OldUniq>. */
typedef struct edist_fun {
    const uint8_t *bytes;
    size_t len;
    edist_atom module;
    uint32_t arity;
    uint32_t index;
    uint32_t num_free;
    int64_t old_index;
    int64_t old_uniq;
    uint8_t uniq[16];
} edist_fun;

/* One encoded term (no version byte) inside some buffer. */
typedef struct edist_term_view {
    const uint8_t *ptr;
    size_t len;
} edist_term_view;

/* ---- growable or caller-given output buffer ---------------------------- */

/* Errors are sticky: after the first failure every further edist_enc_* call
 * on the buffer does nothing and returns the same error, so a caller can
 * encode a whole message and check once at the end (edist_buf_error). */
typedef struct edist_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    int err;       /* 0 or the first error */
    uint8_t fixed; /* caller memory: never reallocated, overflow = ENOSPC */
} edist_buf;

/* Empty growable buffer; allocates on first write. */
void edist_buf_init(edist_buf *b);
/* Caller-given memory of cap bytes; never freed or grown by edist. */
void edist_buf_init_fixed(edist_buf *b, void *mem, size_t cap);
/* Frees a growable buffer's memory; the buffer is empty and usable after. */
void edist_buf_free(edist_buf *b);
/* len = 0, err = 0; keeps the memory. */
void edist_buf_reset(edist_buf *b);
/* Make room for n more bytes; returns 0 or ENOMEM/ENOSPC (and sets err). */
int edist_buf_reserve(edist_buf *b, size_t n);
int edist_buf_append(edist_buf *b, const void *bytes, size_t n);
/* Ensures a NUL after data[len] (not counted in len) and returns data as a C
 * string, or NULL if the buffer is in error. */
const char *edist_buf_cstr(edist_buf *b);
static inline int edist_buf_error(const edist_buf *b) { return b->err; }

/* ---- encoder ------------------------------------------------------------
 * Each call appends one term (or a header whose elements the caller appends
 * next) in the canonical form erts uses for distribution and for
 * term_to_binary(T, [{minor_version, 2}]). */

int edist_enc_version(edist_buf *b);                 /* the 131 byte */
int edist_enc_int(edist_buf *b, int64_t v);          /* smallest form */
int edist_enc_uint(edist_buf *b, uint64_t v);
/* Bignum from sign and little-endian magnitude bytes (as on the wire);
 * normalised: leading zero bytes dropped, small values use the small forms. */
int edist_enc_big(edist_buf *b, int negative, const uint8_t *mag_le, size_t n);
/* Integer from decimal text ("-123456789012345678901234567890"). */
int edist_enc_int_decimal(edist_buf *b, const char *text, size_t len);
int edist_enc_double(edist_buf *b, double v);        /* NEW_FLOAT_EXT; finite only */
/* UTF-8 atom: SMALL_ATOM_UTF8_EXT or ATOM_UTF8_EXT. Rejects invalid UTF-8 and
 * more than 255 characters with EBADTERM. */
int edist_enc_atom(edist_buf *b, const char *utf8, size_t len);
int edist_enc_atomz(edist_buf *b, const char *utf8);
int edist_enc_bool(edist_buf *b, int v);             /* true / false */
int edist_enc_tuple(edist_buf *b, uint32_t arity);   /* then arity terms */
int edist_enc_nil(edist_buf *b);
/* LIST_EXT header: then n elements and a tail (edist_enc_nil for a proper
 * list). n must be > 0; an empty list is edist_enc_nil. */
int edist_enc_list(edist_buf *b, uint32_t n);
/* A list of byte-sized integers: STRING_EXT when 0 < len <= 65535, NIL when
 * len == 0, otherwise LIST_EXT of integers (as erts). */
int edist_enc_string(edist_buf *b, const void *bytes, size_t len);
int edist_enc_binary(edist_buf *b, const void *bytes, size_t len);
/* Bit string of nbytes bytes whose last byte holds last_bits (1..8) bits in
 * its high end; last_bits == 8 gives a BINARY_EXT. */
int edist_enc_bitstring(edist_buf *b, const void *bytes, size_t nbytes,
                        unsigned last_bits);
int edist_enc_map(edist_buf *b, uint32_t pairs);     /* then key, value ... */
int edist_enc_pid(edist_buf *b, const edist_pid *p); /* NEW_PID_EXT */
/* NEW_PORT_EXT when id < 2^28 (only 28 bits are significant there), else
 * V4_PORT_EXT, as erts. */
int edist_enc_port(edist_buf *b, const edist_port *p);
int edist_enc_ref(edist_buf *b, const edist_ref *r); /* NEWER_REFERENCE_EXT */
int edist_enc_export(edist_buf *b, const char *module, size_t mlen,
                     const char *function, size_t flen, uint32_t arity);
/* Append already-encoded term bytes unchanged (pass-through). */
int edist_enc_raw(edist_buf *b, const void *encoded, size_t len);

/* ---- zero-copy decoder cursor ------------------------------------------
 * A cursor reads terms in place. Getters check the next term's tag, read it,
 * and advance past it (for tuples, lists and maps: past the header only).
 * On failure a getter returns a negative code, does not advance, and records
 * the byte offset of the problem in err_offset. Views (atoms, binaries,
 * strings, big digits) point into the decoded buffer: they live as long as
 * that buffer does. The decoder never reads outside [data, data+len). */
typedef struct edist_cursor {
    const uint8_t *data;
    size_t len;
    size_t pos;        /* offset of the next term */
    size_t err_offset; /* where the last error was found */
    uint32_t max_depth; /* nesting limit for whole-term walks (skip, print) */
} edist_cursor;

/* Cursor over encoded term bytes (no version byte expected). */
void edist_cursor_init(edist_cursor *c, const void *data, size_t len);
/* Cursor over an external term: checks and skips 131; a compressed term is
 * inflated into *scratch (growable; required for compressed input, may be
 * NULL otherwise) and the cursor reads scratch. Inflation is bounded by what
 * the input can justify (zlib's maximum ratio) and by 1 GiB. */
int edist_cursor_init_ext(edist_cursor *c, const void *data, size_t len,
                          edist_buf *scratch);
static inline size_t edist_cursor_remaining(const edist_cursor *c)
{
    return c->len - c->pos;
}

/* What the next term is, without consuming it. `count` is: tuple arity, list
 * element count (LIST_EXT, excluding the tail) or string length
 * (STRING_EXT), map pairs, binary bytes, integer magnitude bytes (1..8 for
 * the small forms), atom bytes, ref words; 0 otherwise. */
typedef struct edist_term_info {
    edist_type type;
    uint8_t tag;
    uint64_t count;
} edist_term_info;
int edist_peek(const edist_cursor *c, edist_term_info *info);

/* Integers of any encoding that fit; ERANGE (not advanced) otherwise. */
int edist_dec_int64(edist_cursor *c, int64_t *v);
int edist_dec_uint64(edist_cursor *c, uint64_t *v);
/* Any integer as sign + little-endian magnitude. For SMALL_BIG/LARGE_BIG the
 * magnitude points into the buffer; small forms are converted into
 * tmp[8]. n is the magnitude's byte count (may include leading zero bytes
 * for non-canonical input). */
int edist_dec_integer(edist_cursor *c, int *negative, const uint8_t **mag_le,
                      size_t *n, uint8_t tmp[8]);
int edist_dec_double(edist_cursor *c, double *v); /* NEW_FLOAT or FLOAT_EXT */
int edist_dec_atom(edist_cursor *c, edist_atom *a);
/* Atom as a NUL-terminated UTF-8 string (latin-1 converted); ENOSPC if it
 * does not fit in cap bytes including the NUL. */
int edist_dec_atom_copy(edist_cursor *c, char *out, size_t cap);
/* 1 for true, 0 for false, ETYPE for anything else. */
int edist_dec_bool(edist_cursor *c);
int edist_dec_tuple(edist_cursor *c, uint32_t *arity);
/* LIST_EXT: *n elements then a tail follow. NIL: *n = 0, consumed, no tail
 * follows. STRING_EXT is ETYPE here: use edist_dec_string. */
int edist_dec_list(edist_cursor *c, uint32_t *n);
int edist_dec_nil(edist_cursor *c);
/* STRING_EXT (bytes view) or NIL (len 0). */
int edist_dec_string(edist_cursor *c, const uint8_t **bytes, size_t *len);
int edist_dec_binary(edist_cursor *c, const uint8_t **bytes, size_t *len);
/* BIT_BINARY_EXT or BINARY_EXT (last_bits = 8). */
int edist_dec_bitstring(edist_cursor *c, const uint8_t **bytes, size_t *nbytes,
                        unsigned *last_bits);
int edist_dec_map(edist_cursor *c, uint32_t *pairs);
int edist_dec_pid(edist_cursor *c, edist_pid *p);   /* NEW_PID_EXT, PID_EXT */
int edist_dec_port(edist_cursor *c, edist_port *p); /* V4/NEW/PORT_EXT */
int edist_dec_ref(edist_cursor *c, edist_ref *r);   /* NEWER/NEW/REFERENCE */
int edist_dec_export(edist_cursor *c, edist_export *e);
int edist_dec_fun(edist_cursor *c, edist_fun *f);    /* NEW_FUN_EXT */
/* Skip one whole term, validating it (tags, lengths, UTF-8 of atoms, finite
 * floats). Iterative: uses no stack proportional to depth. */
int edist_skip(edist_cursor *c);
/* Skip one whole term and return a view of its bytes. */
int edist_dec_term(edist_cursor *c, edist_term_view *v);

/* Atom helpers. */
int edist_atom_eq(const edist_atom *a, const char *utf8z); /* 1 equal, 0 not */
/* Copy as NUL-terminated UTF-8; returns bytes written (without NUL) or ENOSPC. */
int edist_atom_to_utf8(const edist_atom *a, char *out, size_t cap);

/* Validate that [data, len) holds exactly one term (either form, see top).
 * Returns 0 or the error; *err_offset (may be NULL) gets the offset. */
int edist_term_validate(const void *data, size_t len, size_t *err_offset);

/* ---- compression -------------------------------------------------------- */
/* ext: external term (131 + term). Appends 131, 80, size, zlib data to out.
 * level: zlib 0..9 (erts uses 6 for [compressed]). */
int edist_term_compress(const void *ext, size_t len, int level, edist_buf *out);
/* ext: external term, compressed or not. Appends 131 + plain term to out. */
int edist_term_uncompress(const void *ext, size_t len, edist_buf *out);

/* ---- bignum text -------------------------------------------------------- */
/* Append the decimal text of sign+magnitude to out (no NUL). */
int edist_big_to_decimal(int negative, const uint8_t *mag_le, size_t n,
                         edist_buf *out);
/* Parse decimal (optionally signed) or base#digits (2..36) text into sign and
 * little-endian magnitude appended to mag (normalised, no leading zeros;
 * zero is n == 0). */
int edist_big_from_text(const char *text, size_t len, int *negative,
                        edist_buf *mag);

/* ---- term order and equality ------------------------------------------ */
/* Exact term order (the order of map keys): as Erlang's < for everything
 * but numbers, where every integer sorts before every float whatever their
 * values (3 < 2.5; the order erts gives map keys). -0.0 and 0.0 are equal
 * (OTP 25). *result = -1, 0 or 1. */
int edist_term_compare(const void *a, size_t alen, const void *b, size_t blen,
                       int *result);
/* 1 if a =:= b (different encodings of one term are equal), 0 if not,
 * negative on malformed input. */
int edist_term_equal(const void *a, size_t alen, const void *b, size_t blen);

/* ---- Erlang text -------------------------------------------------------- */
typedef struct edist_parse_error {
    uint32_t line;    /* 1-based */
    uint32_t column;  /* 1-based, in characters */
    size_t offset;    /* byte offset */
    char message[128];
} edist_parse_error;

typedef struct edist_text_opts {
    /* Node whose pids/ports/refs print as <0.I.S>, #Port<0.N>, #Ref<0....>
     * and which <0.I.S> text parses to. NULL: "nonode@nohost". */
    const char *local_node;
    uint32_t local_creation; /* creation given to parsed local pids etc. */
    uint32_t max_depth;      /* 0: EDIST_DEFAULT_MAX_DEPTH */
} edist_text_opts;

/* Parse one Erlang term from text (optionally followed by a '.' and
 * whitespace) and append its canonical encoding (no version byte) to out,
 * byte-identical to term_to_binary(T, [{minor_version, 2}]) after its 131
 * for every term whose OTP encoding is canonical (maps of more than 32 keys
 * are not: erts writes those in hash order; ours are in key order). Accepts
 * integers (decimal, Base#Digits, $c with escapes, bignums), floats,
 * atoms (bare and quoted), strings, tuples, lists (with | tail), binaries
 * (<<"text">>, <<1,2>>, <<V:Size>>, <<"x"/utf8>>), maps, and the ~w forms
 * of local pids, ports and refs. Variables are a syntax error. On error,
 * *perr (may be NULL) says where. opts may be NULL. */
int edist_term_parse(const char *text, size_t len, edist_buf *out,
                     const edist_text_opts *opts, edist_parse_error *perr);

/* Append the text that io_lib:format("~w", [T]) returns, UTF-8 encoded, to
 * out (no NUL). Pids, ports and refs of local_node print as erts prints local
 * ones; those of other nodes print with a node number derived from the node
 * name (erts uses an internal table index there, which cannot be
 * reproduced). opts may be NULL. */
int edist_term_print(const void *term, size_t len, edist_buf *out,
                     const edist_text_opts *opts);

/* ---- patterns for selective receive ------------------------------------
 * A pattern is Erlang term syntax plus variables: `_` matches anything,
 * `Name` (or `_Name`) captures the subterm, and a variable that occurs twice
 * must match equal terms, as in Erlang. Example:
 *     {response, Ref, Value}
 * Before matching, the caller may bind variables (for instance Ref) to
 * encoded terms; a bound variable matches only an equal term. Matching
 * reads the message in place and skips the parts the pattern does not
 * inspect without decoding them. */
typedef struct edist_pattern edist_pattern;

int edist_pattern_compile(const char *text, size_t len, edist_pattern **out,
                          edist_parse_error *perr);
void edist_pattern_free(edist_pattern *p);
/* Number of distinct named variables; indexes are 0..count-1 in order of
 * first appearance. */
uint32_t edist_pattern_var_count(const edist_pattern *p);
/* Index of a named variable, or ENOTFOUND. */
int edist_pattern_var_index(const edist_pattern *p, const char *name);
const char *edist_pattern_var_name(const edist_pattern *p, uint32_t index);

/* Match term (either form, see top) against p. vars has
 * edist_pattern_var_count(p) entries: an entry with ptr != NULL on entry is
 * bound (an encoded term to compare against); entries with ptr == NULL are
 * filled with views of the captured subterms on a match. Returns 1 on a match,
 * 0 on no match (vars that were unbound are left NULL), negative on
 * malformed input. vars may be NULL when the pattern has no variables.
 * Compressed terms are not accepted here (EUNSUPPORTED): the views must point
 * into the caller's buffer. */
int edist_match(const edist_pattern *p, const void *term, size_t len,
                edist_term_view *vars);

#ifdef __cplusplus
}
#endif
#endif
