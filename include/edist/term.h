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
#include <string.h>

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
 * encode a whole message and check once at the end (edist_buf_error).
 * data[len..cap) is unspecified: encoders may use it as scratch. */
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
 * term_to_binary(T, [{minor_version, 2}]). The static inline ones handle
 * their common case in this header ("inline fast paths" at the end). */

static inline int edist_enc_version(edist_buf *b);   /* the 131 byte */
static inline int edist_enc_int(edist_buf *b, int64_t v); /* smallest form */
int edist_enc_uint(edist_buf *b, uint64_t v);
/* Bignum from sign and little-endian magnitude bytes (as on the wire);
 * normalised: leading zero bytes dropped, small values use the small forms. */
int edist_enc_big(edist_buf *b, int negative, const uint8_t *mag_le, size_t n);
/* Integer from decimal text ("-123456789012345678901234567890"). */
int edist_enc_int_decimal(edist_buf *b, const char *text, size_t len);
static inline int edist_enc_double(edist_buf *b, double v); /* NEW_FLOAT_EXT; finite only */
/* UTF-8 atom: SMALL_ATOM_UTF8_EXT or ATOM_UTF8_EXT. Rejects invalid UTF-8 and
 * more than 255 characters with EBADTERM. */
static inline int edist_enc_atom(edist_buf *b, const char *utf8, size_t len);
int edist_enc_atomz(edist_buf *b, const char *utf8);
int edist_enc_bool(edist_buf *b, int v);             /* true / false */
static inline int edist_enc_tuple(edist_buf *b, uint32_t arity); /* then arity terms */
static inline int edist_enc_nil(edist_buf *b);
/* LIST_EXT header: then n elements and a tail (edist_enc_nil for a proper
 * list). n must be > 0; an empty list is edist_enc_nil. */
static inline int edist_enc_list(edist_buf *b, uint32_t n);
/* A list of byte-sized integers: STRING_EXT when 0 < len <= 65535, NIL when
 * len == 0, otherwise LIST_EXT of integers (as erts). */
int edist_enc_string(edist_buf *b, const void *bytes, size_t len);
static inline int edist_enc_binary(edist_buf *b, const void *bytes, size_t len);
/* Bit string of nbytes bytes whose last byte holds last_bits (1..8) bits in
 * its high end; last_bits == 8 gives a BINARY_EXT. */
int edist_enc_bitstring(edist_buf *b, const void *bytes, size_t nbytes,
                        unsigned last_bits);
static inline int edist_enc_map(edist_buf *b, uint32_t pairs); /* then key, value ... */
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

/* ---- one call per term: edist_dec_next ----------------------------------
 * Reads the next term's tag and value in one call: scalars decoded, atoms,
 * strings and binaries as views, tuples, lists and maps as a header with
 * their count (the elements follow and are read by further calls), and
 * pids, ports, references and funs as a view of their whole encoding. A
 * generic walk (printer, converter to another format) needs one call per
 * node instead of edist_peek plus a getter.
 *
 * On success type and tag (the wire tag) are set, and by type (fields not
 * listed are unspecified; views point into the decoded buffer):
 *   INTEGER  big = 0: the value in i.
 *            big = 1, the value does not fit int64: negative, and
 *            bytes/count the little-endian magnitude without high zero bytes
 *            (as edist_dec_integer gives it).
 *   FLOAT    f.
 *   ATOM     bytes/count: the text; latin1 as in edist_atom.
 *   TUPLE    count: the arity; that many terms follow.
 *   MAP      count: the pairs; 2 * count terms (key, value, ...) follow.
 *   NIL      nothing.
 *   LIST     tag LIST: count elements (>= 1) then a tail follow.
 *            tag STRING: bytes/count: the bytes; nothing follows.
 *   BINARY   bytes/count: the bytes; last_bits: bits used in the last byte
 *            (8 for a binary, 1..7 for a bit string).
 *   PID, PORT, REF, FUN
 *            bytes/count: the whole encoded term, tag included, already
 *            checked; read its fields with the getter for the tag (FUN:
 *            edist_dec_fun for tag NEW_FUN, edist_dec_export for EXPORT) on
 *            a cursor over that view (edist_cursor_init(&sub, bytes, count)).
 *
 * Accepts exactly what the getter for the tag accepts (edist_dec_integer,
 * edist_dec_double, edist_dec_atom, edist_dec_tuple, edist_dec_map,
 * edist_dec_nil, edist_dec_list or edist_dec_string, edist_dec_bitstring,
 * edist_dec_pid, ...) and fails the same way: the same code and
 * err_offset, the cursor not advanced. Nesting is the caller's to track.
 * edist_dec_next is inline (see the end of this header);
 * edist_dec_next_slow is the same function out of line. */
typedef struct edist_item {
    edist_type type;
    uint8_t tag;
    uint8_t big;       /* INTEGER */
    uint8_t negative;  /* INTEGER with big = 1 */
    uint8_t latin1;    /* ATOM */
    uint8_t last_bits; /* BINARY */
    uint64_t count;
    union {
        int64_t i;            /* INTEGER with big = 0 */
        double f;             /* FLOAT */
        const uint8_t *bytes; /* views, count bytes long */
    };
} edist_item;

static inline int edist_dec_next(edist_cursor *c, edist_item *it);
int edist_dec_next_slow(edist_cursor *c, edist_item *it);

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
/* A 64-bit hash of a term that agrees with edist_term_equal: terms that are
 * =:= hash equal whatever their encodings (latin-1 and UTF-8 atoms, the
 * integer forms, STRING_EXT and LIST_EXT, a map's pairs in any order, ...),
 * for hash tables keyed by terms. seed picks one function of a family (a
 * table that a peer fills should use a random one). 0, or negative on
 * malformed input (as edist_term_equal). */
int edist_term_hash(const void *term, size_t len, uint64_t seed, uint64_t *hash);

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

/* ==== inline fast paths ===================================================
 * The most frequent encoder calls and edist_dec_next are static inline so
 * that their common case costs a few instructions at the call site. Each one
 * takes only the case it can finish at once (enough room or input, the
 * canonical form) and otherwise calls its exported edist_*_slow twin, which
 * handles every input, the fast ones included, exactly as documented above.
 * Bindings that cannot use inline functions call the _slow ones directly. */

int edist_enc_version_slow(edist_buf *b);
int edist_enc_int_slow(edist_buf *b, int64_t v);
int edist_enc_double_slow(edist_buf *b, double v);
int edist_enc_atom_slow(edist_buf *b, const char *utf8, size_t len);
int edist_enc_tuple_slow(edist_buf *b, uint32_t arity);
int edist_enc_nil_slow(edist_buf *b);
int edist_enc_list_slow(edist_buf *b, uint32_t n);
int edist_enc_binary_slow(edist_buf *b, const void *bytes, size_t len);
int edist_enc_map_slow(edist_buf *b, uint32_t pairs);

/* Helpers of the fast paths below; not API. Fast paths and helpers are
 * forced inline: compilers otherwise keep the larger ones (edist_dec_next)
 * out of line, which costs the call they exist to save. */
#define EDIST_FAST_PATH static inline __attribute__((always_inline))

/* Can n more bytes be written without growing, in a buffer not in error?
 * (cap - len >= n >= 1 implies data != NULL.) */
EDIST_FAST_PATH int edist_inl_room(const edist_buf *b, size_t n)
{
    return b->err == 0 && b->cap - b->len >= n;
}

/* Big-endian 32-bit and little-endian 64-bit access at any alignment. On
 * little-endian hosts one memcpy (a plain load or store) and a byte swap:
 * not every compiler merges the portable byte-by-byte form. */
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define EDIST_INL_LITTLE_ENDIAN 1
#else
#define EDIST_INL_LITTLE_ENDIAN 0
#endif

EDIST_FAST_PATH void edist_inl_put_u32(uint8_t *p, uint32_t v)
{
#if EDIST_INL_LITTLE_ENDIAN
    v = __builtin_bswap32(v);
    memcpy(p, &v, 4);
#else
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
#endif
}

EDIST_FAST_PATH uint32_t edist_inl_get_u32(const uint8_t *p)
{
#if EDIST_INL_LITTLE_ENDIAN
    uint32_t v;
    memcpy(&v, p, 4);
    return __builtin_bswap32(v);
#else
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
#endif
}

EDIST_FAST_PATH void edist_inl_put_le64(uint8_t *p, uint64_t v)
{
#if EDIST_INL_LITTLE_ENDIAN
    memcpy(p, &v, 8);
#else
    for (unsigned i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
#endif
}

EDIST_FAST_PATH uint64_t edist_inl_get_le64(const uint8_t *p)
{
#if EDIST_INL_LITTLE_ENDIAN
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
#else
    uint64_t v = 0;
    for (unsigned i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
#endif
}

/* Copies s[0..len) to d (when d != NULL) and returns 1 if all of it is
 * ASCII. Words of 8 or 4 bytes, the last one overlapping the one before, so
 * that short atoms take no loop and no memcpy call; nothing outside
 * s[0..len) and d[0..len) is touched. */
EDIST_FAST_PATH int edist_inl_copy_ascii(uint8_t *d, const uint8_t *s, size_t len)
{
    uint64_t acc = 0;
    if (len >= 8) {
        uint64_t w;
        for (size_t i = 0; i + 8 < len; i += 8) {
            memcpy(&w, s + i, 8);
            if (d)
                memcpy(d + i, &w, 8);
            acc |= w;
        }
        memcpy(&w, s + len - 8, 8);
        if (d)
            memcpy(d + len - 8, &w, 8);
        acc |= w;
    } else if (len >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, s, 4);
        memcpy(&hi, s + len - 4, 4);
        if (d) {
            memcpy(d, &lo, 4);
            memcpy(d + len - 4, &hi, 4);
        }
        acc = lo | hi;
    } else {
        for (size_t i = 0; i < len; i++) {
            if (d)
                d[i] = s[i];
            acc |= s[i];
        }
    }
    return (acc & UINT64_C(0x8080808080808080)) == 0;
}

EDIST_FAST_PATH int edist_enc_version(edist_buf *b)
{
    if (__builtin_expect(edist_inl_room(b, 1), 1)) {
        b->data[b->len++] = EDIST_TAG_VERSION;
        return 0;
    }
    return edist_enc_version_slow(b);
}

EDIST_FAST_PATH int edist_enc_nil(edist_buf *b)
{
    if (__builtin_expect(edist_inl_room(b, 1), 1)) {
        b->data[b->len++] = EDIST_TAG_NIL;
        return 0;
    }
    return edist_enc_nil_slow(b);
}

EDIST_FAST_PATH int edist_enc_int(edist_buf *b, int64_t v)
{
    /* One check for the longest form: SMALL_BIG_EXT with 8 bytes. */
    if (__builtin_expect(edist_inl_room(b, 11), 1)) {
        uint8_t *p = b->data + b->len;
        if ((uint64_t)v <= 255) {
            p[0] = EDIST_TAG_SMALL_INTEGER;
            p[1] = (uint8_t)v;
            b->len += 2;
            return 0;
        }
        if (v >= INT32_MIN && v <= INT32_MAX) {
            p[0] = EDIST_TAG_INTEGER;
            edist_inl_put_u32(p + 1, (uint32_t)v);
            b->len += 5;
            return 0;
        }
        /* |v| > 2^31 - 1, computed unsigned (INT64_MIN has no negation). */
        uint64_t mag = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
        unsigned n = 8 - (unsigned)__builtin_clzll(mag) / 8;
        p[0] = EDIST_TAG_SMALL_BIG;
        p[1] = (uint8_t)n;
        p[2] = (uint8_t)(v < 0);
        edist_inl_put_le64(p + 3, mag); /* all 8 bytes; n of them kept */
        b->len += 3 + n;
        return 0;
    }
    return edist_enc_int_slow(b, v);
}

EDIST_FAST_PATH int edist_enc_double(edist_buf *b, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    /* An exponent of all ones is inf or NaN: refused by the slow path. */
    if (__builtin_expect(edist_inl_room(b, 9) &&
                         ((bits >> 52) & 0x7FF) != 0x7FF, 1)) {
        uint8_t *p = b->data + b->len;
        p[0] = EDIST_TAG_NEW_FLOAT;
        edist_inl_put_u32(p + 1, (uint32_t)(bits >> 32));
        edist_inl_put_u32(p + 5, (uint32_t)bits);
        b->len += 9;
        return 0;
    }
    return edist_enc_double_slow(b, v);
}

EDIST_FAST_PATH int edist_enc_atom(edist_buf *b, const char *utf8, size_t len)
{
    /* ASCII text of at most 255 bytes: SMALL_ATOM_UTF8_EXT as it is. The
     * text is copied while it is checked; if it is not ASCII, the slow path
     * writes over the copy. */
    if (__builtin_expect(len <= 255 && utf8 != NULL &&
                         edist_inl_room(b, 2 + len), 1)) {
        uint8_t *p = b->data + b->len;
        if (__builtin_expect(edist_inl_copy_ascii(p + 2, (const uint8_t *)utf8, len), 1)) {
            p[0] = EDIST_TAG_SMALL_ATOM_UTF8;
            p[1] = (uint8_t)len;
            b->len += 2 + len;
            return 0;
        }
    }
    return edist_enc_atom_slow(b, utf8, len);
}

EDIST_FAST_PATH int edist_enc_tuple(edist_buf *b, uint32_t arity)
{
    if (__builtin_expect(arity <= 255 && edist_inl_room(b, 2), 1)) {
        uint8_t *p = b->data + b->len;
        p[0] = EDIST_TAG_SMALL_TUPLE;
        p[1] = (uint8_t)arity;
        b->len += 2;
        return 0;
    }
    return edist_enc_tuple_slow(b, arity);
}

EDIST_FAST_PATH int edist_enc_list(edist_buf *b, uint32_t n)
{
    if (__builtin_expect(n != 0 && edist_inl_room(b, 5), 1)) {
        uint8_t *p = b->data + b->len;
        p[0] = EDIST_TAG_LIST;
        edist_inl_put_u32(p + 1, n);
        b->len += 5;
        return 0;
    }
    return edist_enc_list_slow(b, n);
}

EDIST_FAST_PATH int edist_enc_map(edist_buf *b, uint32_t pairs)
{
    if (__builtin_expect(edist_inl_room(b, 5), 1)) {
        uint8_t *p = b->data + b->len;
        p[0] = EDIST_TAG_MAP;
        edist_inl_put_u32(p + 1, pairs);
        b->len += 5;
        return 0;
    }
    return edist_enc_map_slow(b, pairs);
}

EDIST_FAST_PATH int edist_enc_binary(edist_buf *b, const void *bytes, size_t len)
{
    /* The length bound also keeps 5 + len from wrapping around. */
    if (__builtin_expect(len <= (size_t)UINT32_MAX - 5 && bytes != NULL &&
                         edist_inl_room(b, 5 + len), 1)) {
        uint8_t *p = b->data + b->len;
        p[0] = EDIST_TAG_BINARY;
        edist_inl_put_u32(p + 1, (uint32_t)len);
        memcpy(p + 5, bytes, len);
        b->len += 5 + len;
        return 0;
    }
    return edist_enc_binary_slow(b, bytes, len);
}

/* The canonical forms of scalars, atoms, strings, binaries and containers;
 * everything else (pids, refs, big integers, latin-1 or non-ASCII atoms,
 * bit strings, errors) in edist_dec_next_slow. Each case checks the bytes it
 * reads against rem, as the getters do. */
EDIST_FAST_PATH int edist_dec_next(edist_cursor *c, edist_item *it)
{
    size_t p = c->pos, rem = c->len - p;
    if (__builtin_expect(rem == 0, 0))
        return edist_dec_next_slow(c, it);
    const uint8_t *d = c->data + p;
    uint8_t tag = d[0];
    it->tag = tag;
    /* Integers first, as conditional branches rather than through the
     * switch's indirect jump. On lists of integers whose form varies
     * (measured, forms mixed at random): 10% faster on data seen once, and
     * 2 to 4 times faster where the branch predictor can learn the sequence
     * (data decoded repeatedly, as in a benchmark). */
    if (tag == EDIST_TAG_SMALL_INTEGER && rem >= 2) {
        it->type = EDIST_TYPE_INTEGER;
        it->big = 0;
        it->i = d[1];
        c->pos = p + 2;
        return 0;
    }
    if (tag == EDIST_TAG_INTEGER && rem >= 5) {
        it->type = EDIST_TYPE_INTEGER;
        it->big = 0;
        it->i = (int32_t)edist_inl_get_u32(d + 1);
        c->pos = p + 5;
        return 0;
    }
    /* SMALL_BIG of 1..8 bytes with 8 readable after the 3-byte head: one
     * 8-byte load, masked to n bytes (n = 0 and the input's last bytes are
     * left to the slow path). */
    if (tag == EDIST_TAG_SMALL_BIG && rem >= 11 && d[1] - 1u < 8u) {
        unsigned n = d[1];
        uint64_t mag = edist_inl_get_le64(d + 3) & (UINT64_MAX >> (64 - 8 * n));
        uint64_t neg = d[2] != 0; /* erts: any non-zero sign byte */
        if (mag <= (uint64_t)INT64_MAX + neg) { /* -2^63 .. 2^63-1 */
            /* Two's complement negation when neg, done unsigned; the bits
             * are then the int64 value. */
            uint64_t bits = (mag ^ (0 - neg)) + neg;
            it->type = EDIST_TYPE_INTEGER;
            it->big = 0;
            memcpy(&it->i, &bits, sizeof bits);
            c->pos = p + 3 + n;
            return 0;
        }
    }
    switch (tag) {
    case EDIST_TAG_NEW_FLOAT: {
        if (rem < 9)
            break;
        uint64_t bits = ((uint64_t)edist_inl_get_u32(d + 1) << 32) |
                        edist_inl_get_u32(d + 5);
        if (((bits >> 52) & 0x7FF) == 0x7FF) /* inf, NaN: refused */
            break;
        it->type = EDIST_TYPE_FLOAT;
        memcpy(&it->f, &bits, sizeof bits);
        c->pos = p + 9;
        return 0;
    }
    case EDIST_TAG_SMALL_ATOM_UTF8: {
        if (rem < 2 || d[1] > rem - 2 || !edist_inl_copy_ascii(NULL, d + 2, d[1]))
            break;
        it->type = EDIST_TYPE_ATOM;
        it->latin1 = 0;
        it->bytes = d + 2;
        it->count = d[1];
        c->pos = p + 2 + d[1];
        return 0;
    }
    case EDIST_TAG_SMALL_TUPLE:
        if (rem < 2 || d[1] > rem - 2)
            break;
        it->type = EDIST_TYPE_TUPLE;
        it->count = d[1];
        c->pos = p + 2;
        return 0;
    case EDIST_TAG_NIL:
        it->type = EDIST_TYPE_NIL;
        c->pos = p + 1;
        return 0;
    case EDIST_TAG_STRING: {
        if (rem < 3)
            break;
        size_t n = ((size_t)d[1] << 8) | d[2];
        if (n > rem - 3)
            break;
        it->type = EDIST_TYPE_LIST;
        it->bytes = d + 3;
        it->count = n;
        c->pos = p + 3 + n;
        return 0;
    }
    case EDIST_TAG_LIST: {
        if (rem < 5)
            break;
        uint64_t n = edist_inl_get_u32(d + 1);
        if (n == 0 || n + 1 > rem - 5) /* n elements and a tail */
            break;
        it->type = EDIST_TYPE_LIST;
        it->count = n;
        c->pos = p + 5;
        return 0;
    }
    case EDIST_TAG_MAP: {
        if (rem < 5)
            break;
        uint64_t n = edist_inl_get_u32(d + 1);
        if (2 * n > rem - 5)
            break;
        it->type = EDIST_TYPE_MAP;
        it->count = n;
        c->pos = p + 5;
        return 0;
    }
    case EDIST_TAG_BINARY: {
        if (rem < 5)
            break;
        size_t n = edist_inl_get_u32(d + 1);
        if (n > rem - 5)
            break;
        it->type = EDIST_TYPE_BINARY;
        it->last_bits = 8;
        it->bytes = d + 5;
        it->count = n;
        c->pos = p + 5 + n;
        return 0;
    }
    default:
        break;
    }
    return edist_dec_next_slow(c, it);
}

#undef EDIST_FAST_PATH
#undef EDIST_INL_LITTLE_ENDIAN

#ifdef __cplusplus
}
#endif
#endif
