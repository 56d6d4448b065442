/* SPDX-License-Identifier: Apache-2.0 */
/* Checks the edist term codec against a corpus made by a real OTP
 * (otp_corpus.erl, which also documents both file formats), and writes our
 * own encodings so that erl can read them back.
 *
 *   otp_corpus_check CORPUS OUT          check every record
 *   otp_corpus_check CORPUS OUT INDEX    check one record, dump it in full
 *
 * Ends with the line "N passed, N failed"; exits 1 on any failure. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edist/term.h"

enum {
    F_CANONICAL = 1, /* OTP's minor_version 2 bytes are what we must produce */
    F_PARSEABLE = 2, /* the ~w text is valid input for edist_term_parse */
    F_PRINTABLE = 4, /* edist_term_print must reproduce the ~w text */
    F_LEGACY = 8,    /* the "default" slot holds hand-made old-style bytes */
};

enum check {
    CK_VALIDATE,   /* all three forms validate */
    CK_REJECT,     /* truncated and over-long inputs do not */
    CK_WALK,       /* peek + getters over every node, all three forms */
    CK_TRANSCODE,  /* decode + re-encode gives OTP's minor_version 2 bytes */
    CK_MAP_ORDER,  /* keys of maps of <= 32 pairs compare strictly ascending */
    CK_PRINT,      /* edist_term_print gives the ~w text */
    CK_PARSE,      /* edist_term_parse of the ~w text gives the term back */
    CK_EQUAL,      /* equal/compare between the forms */
    CK_COMPRESS,   /* our compression round-trips; OTP's inflates to OTP's */
    CK_PAIR,       /* compare and equal agree on consecutive records */
    CK_COUNT
};

static const char *const check_names[CK_COUNT] = {
    "validate", "reject", "walk", "transcode", "map_order",
    "print", "parse", "equal", "compress", "pair",
};

static unsigned long passed[CK_COUNT], failed[CK_COUNT];
static unsigned long failures_shown[CK_COUNT];
static int verbose; /* single-record mode: show everything */
static unsigned long max_shown = 8; /* failures shown per check */

typedef struct bytes {
    const uint8_t *ptr;
    size_t len;
} bytes;

typedef struct record {
    uint32_t index;
    uint32_t flags;
    bytes min2, dflt, comp, text;
} record;

static void hex_line(const char *label, const uint8_t *p, size_t len, size_t max)
{
    fprintf(stderr, "    %s (%zu bytes):", label, len);
    for (size_t i = 0; i < len && i < max; i++)
        fprintf(stderr, " %u", p[i]);
    fprintf(stderr, "%s\n", len > max ? " ..." : "");
}

static void text_line(const char *label, const uint8_t *p, size_t len, size_t max)
{
    fprintf(stderr, "    %s (%zu bytes): %.*s%s\n", label, len,
            (int)(len < max ? len : max), (const char *)p, len > max ? "..." : "");
}

static int fail(const record *r, enum check ck, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Counts a failure; shows the first few of each check with the record. */
static int fail(const record *r, enum check ck, const char *fmt, ...)
{
    failed[ck]++;
    if (!verbose && failures_shown[ck]++ >= max_shown) {
        if (failures_shown[ck] == max_shown + 1)
            fprintf(stderr, "(further %s failures not shown)\n", check_names[ck]);
        return -1;
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL record %" PRIu32 " [%s] ", r->index, check_names[ck]);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    const char *detail = edist_last_error();
    fprintf(stderr, "%s%s\n", *detail ? "; last error: " : "", detail);
    hex_line("min2", r->min2.ptr, r->min2.len, verbose ? SIZE_MAX : 64);
    text_line("~w", r->text.ptr, r->text.len, verbose ? SIZE_MAX : 160);
    return -1;
}

/* Where two byte strings first differ, shown with some context. */
static void show_diff(const char *what_a, const uint8_t *a, size_t alen,
                      const char *what_b, const uint8_t *b, size_t blen, int as_text)
{
    size_t i = 0;
    while (i < alen && i < blen && a[i] == b[i])
        i++;
    size_t from = i > 24 ? i - 24 : 0;
    fprintf(stderr, "    first difference at byte %zu\n", i);
    if (as_text) {
        text_line(what_a, a + from, alen - from, 80);
        text_line(what_b, b + from, blen - from, 80);
    } else {
        hex_line(what_a, a + from, alen - from, 48);
        hex_line(what_b, b + from, blen - from, 48);
    }
}

static int same(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* ---- generic walk: every node through peek and the typed getters -------- */

typedef struct walk_result {
    uint8_t tags[256];   /* tags seen */
    int used_raw;        /* a local fun was copied as opaque bytes */
    int map_order_bad;   /* some small map's keys were not ascending */
    char why[160];       /* first problem */
} walk_result;

static int walk_error(walk_result *w, const edist_cursor *c, int rc, const char *what)
{
    snprintf(w->why, sizeof w->why, "%s at offset %zu: %s (rc %d)", what,
             c->err_offset, edist_strerror(rc), rc);
    return rc ? rc : EDIST_EBADTERM;
}

/* Keys of a map of at most 32 pairs are in exact term order in everything
 * erts writes; check that edist_term_compare agrees (strictly ascending). */
static void check_map_keys(const edist_cursor *at_first_key, uint32_t pairs,
                           walk_result *w)
{
    edist_cursor k = *at_first_key;
    edist_term_view prev = { NULL, 0 }, key;
    for (uint32_t i = 0; i < pairs; i++) {
        if (edist_dec_term(&k, &key) != 0 || edist_skip(&k) != 0) {
            w->map_order_bad = 1;
            return;
        }
        if (prev.ptr) {
            int res = 2;
            if (edist_term_compare(prev.ptr, prev.len, key.ptr, key.len, &res) != 0 ||
                res != -1) {
                w->map_order_bad = 1;
                return;
            }
        }
        prev = key;
    }
}

/* A getter for the wrong type must fail with ETYPE and not move. */
static int wrong_getter_is_refused(edist_cursor *c, edist_type type)
{
    size_t pos = c->pos;
    uint32_t n;
    int rc = type == EDIST_TYPE_TUPLE ? edist_dec_map(c, &n) : edist_dec_tuple(c, &n);
    edist_clear_error(); /* expected: keep it out of later failure reports */
    return rc == EDIST_ETYPE && c->pos == pos;
}

/* Records per tag, over all forms walked: shows what the corpus covers. */
static unsigned long tag_records[256];

static int atom_utf8(const edist_atom *a, char *buf, size_t cap, const char **s,
                     size_t *n)
{
    if (!a->latin1) {
        *s = a->ptr;
        *n = a->len;
        return 0;
    }
    int len = edist_atom_to_utf8(a, buf, cap);
    if (len < 0)
        return len;
    *s = buf;
    *n = (size_t)len;
    return 0;
}

/* Decodes one node at c and appends its re-encoding to out; *children gets
 * the number of nodes that follow as its contents. mode varies the getters
 * so that each sees the whole corpus: 0 reads integers with dec_int64 (then
 * dec_uint64, then dec_integer); 1 and 2 read every integer with dec_integer,
 * so edist_enc_big must normalise small values; 1 also reads atoms with
 * dec_atom_copy and binaries with dec_bitstring. */
static int transcode_node(edist_cursor *c, edist_buf *out, int mode,
                          uint64_t *children, walk_result *w)
{
    edist_term_info info;
    size_t at = c->pos;
    int rc = edist_peek(c, &info);
    if (rc)
        return walk_error(w, c, rc, "peek");
    w->tags[info.tag] = 1;
    if (!wrong_getter_is_refused(c, info.type))
        return walk_error(w, c, 0, "wrong-type getter accepted or moved");
    *children = 0;
    char buf[EDIST_ATOM_MAX_BYTES + 1], buf2[EDIST_ATOM_MAX_BYTES + 1];
    switch (info.type) {
    case EDIST_TYPE_INTEGER: {
        int64_t v;
        if (mode == 0) {
            rc = edist_dec_int64(c, &v);
            if (rc == 0) {
                edist_enc_int(out, v);
                break;
            }
            if (rc != EDIST_ERANGE)
                return walk_error(w, c, rc, "dec_int64");
            edist_clear_error();
            uint64_t u;
            rc = edist_dec_uint64(c, &u);
            if (rc == 0) {
                edist_enc_uint(out, u);
                break;
            }
            if (rc != EDIST_ERANGE)
                return walk_error(w, c, rc, "dec_uint64");
            edist_clear_error();
        }
        int neg;
        const uint8_t *mag;
        size_t n;
        uint8_t tmp[8];
        rc = edist_dec_integer(c, &neg, &mag, &n, tmp);
        if (rc)
            return walk_error(w, c, rc, "dec_integer");
        edist_enc_big(out, neg, mag, n);
        break;
    }
    case EDIST_TYPE_FLOAT: {
        double d;
        if ((rc = edist_dec_double(c, &d)))
            return walk_error(w, c, rc, "dec_double");
        edist_enc_double(out, d);
        break;
    }
    case EDIST_TYPE_ATOM: {
        edist_cursor copy = *c;
        edist_atom a;
        const char *s;
        size_t n;
        if ((rc = edist_dec_atom(c, &a)))
            return walk_error(w, c, rc, "dec_atom");
        if (a.len != info.count)
            return walk_error(w, c, 0, "peek count differs from atom length");
        if ((rc = atom_utf8(&a, buf, sizeof buf, &s, &n)))
            return walk_error(w, c, rc, "atom_to_utf8");
        if (mode == 1) {
            /* the NUL-terminated copy is the UTF-8 text up to any NUL in it */
            if ((rc = edist_dec_atom_copy(&copy, buf2, sizeof buf2)))
                return walk_error(w, &copy, rc, "dec_atom_copy");
            size_t z = strlen(buf2);
            if (copy.pos != c->pos || z > n || memcmp(buf2, s, z) != 0 ||
                (z < n && s[z] != 0))
                return walk_error(w, c, 0, "dec_atom_copy differs from dec_atom");
        }
        edist_enc_atom(out, s, n);
        break;
    }
    case EDIST_TYPE_REF: {
        edist_ref r;
        if ((rc = edist_dec_ref(c, &r)))
            return walk_error(w, c, rc, "dec_ref");
        if (r.len != info.count)
            return walk_error(w, c, 0, "peek count differs from ref words");
        edist_enc_ref(out, &r);
        break;
    }
    case EDIST_TYPE_FUN:
        if (info.tag == EDIST_TAG_EXPORT) {
            edist_export e;
            const char *m, *f;
            size_t mn, fn;
            if ((rc = edist_dec_export(c, &e)))
                return walk_error(w, c, rc, "dec_export");
            if ((rc = atom_utf8(&e.module, buf, sizeof buf, &m, &mn)) ||
                (rc = atom_utf8(&e.function, buf2, sizeof buf2, &f, &fn)))
                return walk_error(w, c, rc, "atom_to_utf8");
            edist_enc_export(out, m, mn, f, fn, e.arity);
        } else {
            edist_fun f;
            if ((rc = edist_dec_fun(c, &f)))
                return walk_error(w, c, rc, "dec_fun");
            if (f.bytes != c->data + at || f.len != c->pos - at)
                return walk_error(w, c, 0, "fun bytes do not cover the fun");
            edist_enc_raw(out, f.bytes, f.len);
            w->used_raw = 1;
        }
        break;
    case EDIST_TYPE_PORT: {
        edist_port p;
        if ((rc = edist_dec_port(c, &p)))
            return walk_error(w, c, rc, "dec_port");
        edist_enc_port(out, &p);
        break;
    }
    case EDIST_TYPE_PID: {
        edist_pid p;
        if ((rc = edist_dec_pid(c, &p)))
            return walk_error(w, c, rc, "dec_pid");
        edist_enc_pid(out, &p);
        break;
    }
    case EDIST_TYPE_TUPLE: {
        uint32_t n;
        if ((rc = edist_dec_tuple(c, &n)))
            return walk_error(w, c, rc, "dec_tuple");
        if (n != info.count)
            return walk_error(w, c, 0, "peek count differs from arity");
        edist_enc_tuple(out, n);
        *children = n;
        break;
    }
    case EDIST_TYPE_MAP: {
        uint32_t n;
        if ((rc = edist_dec_map(c, &n)))
            return walk_error(w, c, rc, "dec_map");
        if (n != info.count)
            return walk_error(w, c, 0, "peek count differs from pairs");
        if (n >= 2 && n <= 32)
            check_map_keys(c, n, w);
        edist_enc_map(out, n);
        *children = 2 * (uint64_t)n;
        break;
    }
    case EDIST_TYPE_NIL:
        if ((rc = edist_dec_nil(c)))
            return walk_error(w, c, rc, "dec_nil");
        edist_enc_nil(out);
        break;
    case EDIST_TYPE_LIST:
        if (info.tag == EDIST_TAG_STRING) {
            const uint8_t *s;
            size_t n;
            if ((rc = edist_dec_string(c, &s, &n)))
                return walk_error(w, c, rc, "dec_string");
            if (n != info.count)
                return walk_error(w, c, 0, "peek count differs from string length");
            edist_enc_string(out, s, n);
        } else {
            uint32_t n;
            if ((rc = edist_dec_list(c, &n)))
                return walk_error(w, c, rc, "dec_list");
            if (n != info.count)
                return walk_error(w, c, 0, "peek count differs from list length");
            edist_enc_list(out, n);
            *children = (uint64_t)n + 1; /* elements and the tail */
        }
        break;
    case EDIST_TYPE_BINARY: {
        const uint8_t *s;
        size_t n;
        if (info.tag == EDIST_TAG_BIT_BINARY || mode == 1) {
            unsigned bits;
            if ((rc = edist_dec_bitstring(c, &s, &n, &bits)))
                return walk_error(w, c, rc, "dec_bitstring");
            edist_enc_bitstring(out, s, n, bits);
        } else {
            if ((rc = edist_dec_binary(c, &s, &n)))
                return walk_error(w, c, rc, "dec_binary");
            edist_enc_binary(out, s, n);
        }
        if (n != info.count)
            return walk_error(w, c, 0, "peek count differs from byte count");
        break;
    }
    default:
        return walk_error(w, c, 0, "peek gave an unknown type");
    }
    if (c->pos == at)
        return walk_error(w, c, 0, "getter did not advance");
    if (edist_buf_error(out))
        return walk_error(w, c, edist_buf_error(out), "encoder");
    return 0;
}

/* Walks the whole external term ext (either form) with an explicit stack of
 * "nodes left in this container" and re-encodes it into out as 131 + term. */
static int transcode(const bytes *ext, edist_buf *out, edist_buf *scratch,
                     int mode, walk_result *w)
{
    memset(w, 0, sizeof *w);
    edist_cursor c;
    int rc = edist_cursor_init_ext(&c, ext->ptr, ext->len, scratch);
    if (rc)
        return walk_error(w, &c, rc, "cursor_init_ext");
    edist_term_view whole;
    edist_cursor probe = c;
    if ((rc = edist_dec_term(&probe, &whole)) || whole.len != c.len - c.pos)
        return walk_error(w, &probe, rc, "dec_term over the whole term");

    edist_buf_reset(out);
    edist_enc_version(out);
    size_t cap = 64, depth = 0;
    uint64_t *left = malloc(cap * sizeof *left);
    if (!left)
        return walk_error(w, &c, EDIST_ENOMEM, "malloc");
    left[depth++] = 1;
    while (depth > 0) {
        if (left[depth - 1] == 0) {
            depth--;
            continue;
        }
        left[depth - 1]--;
        uint64_t children;
        if ((rc = transcode_node(&c, out, mode, &children, w)))
            break;
        if (children == 0)
            continue;
        if (depth == cap) {
            uint64_t *bigger = realloc(left, 2 * cap * sizeof *left);
            if (!bigger) {
                rc = walk_error(w, &c, EDIST_ENOMEM, "realloc");
                break;
            }
            left = bigger;
            cap *= 2;
        }
        left[depth++] = children;
    }
    free(left);
    if (rc == 0 && c.pos != c.len)
        rc = walk_error(w, &c, 0, "bytes left after the term");
    return rc;
}

/* ---- per-record checks ------------------------------------------------- */

typedef struct scratch {
    edist_buf ours, other, tmp, print, parsed, comp, uncomp, inflate;
    uint8_t *copy;
    size_t copy_cap;
} scratch;

static void check_validate(const record *r, scratch *s)
{
    const bytes *forms[3] = { &r->min2, &r->dflt, &r->comp };
    static const char *const names[3] = { "min2", "default", "compressed" };
    int ok = 1, rejects = 1;
    for (int i = 0; i < 3; i++) {
        size_t off = 0;
        int rc = edist_term_validate(forms[i]->ptr, forms[i]->len, &off);
        if (rc) {
            fail(r, CK_VALIDATE, "%s form: rc %d (%s) at offset %zu", names[i],
                 rc, edist_strerror(rc), off);
            ok = 0;
        }
        /* A term's encoding is prefix-free: no strict prefix is a term, and
         * nothing may follow it. */
        size_t n = forms[i]->len;
        if (n + 1 > s->copy_cap) {
            free(s->copy);
            s->copy_cap = n + 1;
            s->copy = malloc(s->copy_cap);
            if (!s->copy) {
                fprintf(stderr, "out of memory\n");
                exit(2);
            }
        }
        memcpy(s->copy, forms[i]->ptr, n);
        s->copy[n] = 0;
        const size_t cuts[3] = { n - 1, n / 2, 1 };
        for (int k = 0; k < 3; k++) {
            if (edist_term_validate(s->copy, cuts[k], NULL) >= 0) {
                fail(r, CK_REJECT, "%s form cut to %zu of %zu bytes validated",
                     names[i], cuts[k], n);
                rejects = 0;
            }
        }
        if (edist_term_validate(s->copy, n + 1, NULL) >= 0) {
            fail(r, CK_REJECT, "%s form with a trailing byte validated", names[i]);
            rejects = 0;
        }
        edist_clear_error();
        /* the same term without its 131 validates too */
        if (forms[i]->ptr[1] != EDIST_TAG_COMPRESSED &&
            edist_term_validate(forms[i]->ptr + 1, n - 1, &off) != 0) {
            fail(r, CK_VALIDATE, "%s form without 131 did not validate", names[i]);
            ok = 0;
        }
    }
    if (ok)
        passed[CK_VALIDATE]++;
    if (rejects)
        passed[CK_REJECT]++;
}

/* Transcodes all three forms; s->ours gets the min2 transcode. */
static void check_walk(const record *r, scratch *s)
{
    edist_clear_error();
    const bytes *forms[3] = { &r->min2, &r->dflt, &r->comp };
    static const char *const names[3] = { "min2", "default", "compressed" };
    int walk_ok = 1, trans_ok = 1, order_ok = 1;
    for (int i = 0; i < 3; i++) {
        edist_buf *out = i == 0 ? &s->ours : &s->other;
        walk_result w;
        int mode = (int)((r->index + (uint32_t)i) % 3);
        if (transcode(forms[i], out, &s->inflate, mode, &w)) {
            fail(r, CK_WALK, "%s form (mode %d): %s", names[i], mode, w.why);
            walk_ok = 0;
            if (i == 0)
                edist_buf_reset(&s->ours);
            continue;
        }
        for (int t = 0; t < 256; t++)
            tag_records[t] += w.tags[t];
        if (w.map_order_bad) {
            fail(r, CK_MAP_ORDER, "%s form: map keys not strictly ascending by "
                 "edist_term_compare", names[i]);
            order_ok = 0;
        }
        /* Local funs are copied as they are, so only OTP's min2 form of a
         * term with funs re-encodes to the min2 bytes. */
        if (!(r->flags & F_CANONICAL) || (w.used_raw && i != 0))
            continue;
        if (!same(out->data, out->len, r->min2.ptr, r->min2.len)) {
            fail(r, CK_TRANSCODE, "%s form (mode %d) re-encodes differently",
                 names[i], mode);
            show_diff("ours", out->data, out->len, "otp ", r->min2.ptr,
                      r->min2.len, 0);
            trans_ok = 0;
        }
    }
    if (walk_ok)
        passed[CK_WALK]++;
    if (walk_ok && trans_ok && (r->flags & F_CANONICAL))
        passed[CK_TRANSCODE]++;
    if (walk_ok && order_ok)
        passed[CK_MAP_ORDER]++;
}

/* Maps of more than 32 pairs: OTP 25's ~w prints them in its iteration
 * order, which is not the order term_to_binary writes them in (it is the
 * reverse), so for those only the length is compared here; erl checks that
 * our text reads back as the term. s->print keeps our text of the min2 form. */
static void check_print(const record *r, scratch *s)
{
    edist_clear_error();
    const bytes *forms[3] = { &r->comp, &r->dflt, &r->min2 };
    static const char *const names[3] = { "compressed", "default", "min2" };
    int ok = 1;
    for (int i = 0; i < 3; i++) {
        edist_buf_reset(&s->print);
        int rc = edist_term_print(forms[i]->ptr, forms[i]->len, &s->print, NULL);
        if (rc) {
            fail(r, CK_PRINT, "%s form: rc %d (%s)", names[i], rc, edist_strerror(rc));
            ok = 0;
            continue;
        }
        if (!(r->flags & F_PRINTABLE))
            continue;
        int good = (r->flags & F_CANONICAL)
                       ? same(s->print.data, s->print.len, r->text.ptr, r->text.len)
                       : s->print.len == r->text.len;
        if (!good) {
            fail(r, CK_PRINT, "%s form prints differently", names[i]);
            show_diff("ours", s->print.data, s->print.len, "otp ", r->text.ptr,
                      r->text.len, 1);
            ok = 0;
        }
    }
    if (!ok)
        edist_buf_reset(&s->print);
    if (ok)
        passed[CK_PRINT]++;
}

static void check_parse(const record *r, scratch *s, uint32_t creation)
{
    edist_clear_error();
    edist_buf_reset(&s->parsed);
    if (!(r->flags & F_PARSEABLE))
        return;
    edist_text_opts opts = { NULL, creation, 0 };
    edist_parse_error perr;
    memset(&perr, 0, sizeof perr);
    int rc = edist_term_parse((const char *)r->text.ptr, r->text.len, &s->parsed,
                              &opts, &perr);
    if (rc) {
        fail(r, CK_PARSE, "rc %d (%s) at line %" PRIu32 " column %" PRIu32
             " offset %zu: %s", rc, edist_strerror(rc), perr.line, perr.column,
             perr.offset, perr.message);
        edist_buf_reset(&s->parsed);
        return;
    }
    const uint8_t *want = r->min2.ptr + 1;
    size_t want_len = r->min2.len - 1;
    if (r->flags & F_CANONICAL) {
        if (!same(s->parsed.data, s->parsed.len, want, want_len)) {
            fail(r, CK_PARSE, "parse of the ~w text encodes differently");
            show_diff("ours", s->parsed.data, s->parsed.len, "otp ", want,
                      want_len, 0);
            return;
        }
    } else if (edist_term_equal(s->parsed.data, s->parsed.len, r->min2.ptr,
                                r->min2.len) != 1) {
        fail(r, CK_PARSE, "parse of the ~w text is not equal to the term");
        return;
    }
    passed[CK_PARSE]++;
}

static void check_equal(const record *r, scratch *s)
{
    edist_clear_error();
    const bytes ours = { s->ours.data, s->ours.len };
    const bytes *others[3] = { &r->dflt, &r->comp, &ours };
    static const char *const names[3] = { "default", "compressed", "ours" };
    int ok = 1;
    for (int i = 0; i < 3; i++) {
        if (others[i]->len == 0)
            continue; /* our transcode failed: counted under walk */
        int eq = edist_term_equal(r->min2.ptr, r->min2.len, others[i]->ptr,
                                  others[i]->len);
        int res = 2;
        int rc = edist_term_compare(others[i]->ptr, others[i]->len, r->min2.ptr,
                                    r->min2.len, &res);
        if (eq != 1 || rc != 0 || res != 0) {
            fail(r, CK_EQUAL, "min2 vs %s: equal %d, compare rc %d result %d",
                 names[i], eq, rc, res);
            ok = 0;
        }
    }
    if (ok)
        passed[CK_EQUAL]++;
}

static unsigned long compressed_like_otp, compressed_by_otp;

static void check_compress(const record *r, scratch *s)
{
    edist_clear_error();
    edist_buf_reset(&s->comp);
    int ok = 1;
    /* OTP's [compressed] output inflates to OTP's plain (minor 1) bytes */
    edist_buf_reset(&s->uncomp);
    int rc = edist_term_uncompress(r->comp.ptr, r->comp.len, &s->uncomp);
    if (rc) {
        fail(r, CK_COMPRESS, "uncompress of OTP's compressed form: rc %d (%s)", rc,
             edist_strerror(rc));
        ok = 0;
    } else if (!(r->flags & F_LEGACY) &&
               !same(s->uncomp.data, s->uncomp.len, r->dflt.ptr, r->dflt.len)) {
        fail(r, CK_COMPRESS, "OTP's compressed form inflates differently");
        ok = 0;
    }
    if (s->ours.len == 0)
        return; /* nothing of ours to compress: counted under walk */
    rc = edist_term_compress(s->ours.data, s->ours.len, 6, &s->comp);
    if (rc) {
        fail(r, CK_COMPRESS, "compress: rc %d (%s)", rc, edist_strerror(rc));
        edist_buf_reset(&s->comp);
        return;
    }
    edist_buf_reset(&s->uncomp);
    rc = edist_term_uncompress(s->comp.data, s->comp.len, &s->uncomp);
    if (rc || !same(s->uncomp.data, s->uncomp.len, s->ours.data, s->ours.len)) {
        fail(r, CK_COMPRESS, "our compressed form does not inflate back (rc %d)", rc);
        ok = 0;
    }
    /* Informative only (zlib versions may differ): OTP compresses its
     * minor_version 1 bytes, so compress those the same way and compare. */
    if (r->comp.ptr[1] == EDIST_TAG_COMPRESSED && !(r->flags & F_LEGACY)) {
        edist_buf_reset(&s->tmp);
        if (edist_term_compress(r->dflt.ptr, r->dflt.len, 6, &s->tmp) == 0) {
            compressed_by_otp++;
            compressed_like_otp += same(s->tmp.data, s->tmp.len, r->comp.ptr,
                                        r->comp.len);
        }
    }
    if (ok)
        passed[CK_COMPRESS]++;
}

/* compare and equal of neighbours agree; returns the byte for the output. */
static uint8_t check_pair(const record *prev, const record *r)
{
    edist_clear_error();
    if (!prev)
        return 255;
    int res = 2;
    int rc = edist_term_compare(prev->min2.ptr, prev->min2.len, r->min2.ptr,
                                r->min2.len, &res);
    int eq = edist_term_equal(prev->min2.ptr, prev->min2.len, r->min2.ptr,
                              r->min2.len);
    int back = 2;
    int rc2 = edist_term_compare(r->min2.ptr, r->min2.len, prev->min2.ptr,
                                 prev->min2.len, &back);
    if (rc || rc2 || res < -1 || res > 1 || back != -res || eq != (res == 0)) {
        fail(r, CK_PAIR, "with record %" PRIu32 ": compare rc %d result %d, "
             "reversed %d, equal %d", prev->index, rc, res, back, eq);
        return 255;
    }
    passed[CK_PAIR]++;
    return (uint8_t)(res + 1);
}

/* ---- files ---------------------------------------------------------------- */

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *data = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? 2 * cap : (1u << 24);
            uint8_t *bigger = realloc(data, cap);
            if (!bigger) {
                free(data);
                fclose(f);
                return NULL;
            }
            data = bigger;
        }
        size_t got = fread(data + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(data);
        return NULL;
    }
    *len = n;
    return data;
}

static int get_u32(const uint8_t *data, size_t len, size_t *pos, uint32_t *v)
{
    if (len - *pos < 4)
        return -1;
    const uint8_t *p = data + *pos;
    *v = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    *pos += 4;
    return 0;
}

static int get_bytes(const uint8_t *data, size_t len, size_t *pos, bytes *b)
{
    uint32_t n;
    if (get_u32(data, len, pos, &n) || len - *pos < n)
        return -1;
    b->ptr = data + *pos;
    b->len = n;
    *pos += n;
    return 0;
}

/* Index, flags and four blobs; external terms must be at least 2 bytes. */
static int next_record(const uint8_t *data, size_t len, size_t *pos, record *r)
{
    if (get_u32(data, len, pos, &r->index) || get_u32(data, len, pos, &r->flags) ||
        get_bytes(data, len, pos, &r->min2) || get_bytes(data, len, pos, &r->dflt) ||
        get_bytes(data, len, pos, &r->comp) || get_bytes(data, len, pos, &r->text))
        return -1;
    if (r->min2.len < 2 || r->dflt.len < 2 || r->comp.len < 2)
        return -1;
    return 0;
}

static void put_u32(FILE *f, uint32_t v)
{
    const uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                           (uint8_t)v };
    fwrite(b, 1, 4, f);
}

static void put_blob(FILE *f, const edist_buf *b)
{
    put_u32(f, (uint32_t)b->len);
    if (b->len)
        fwrite(b->data, 1, b->len, f);
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s CORPUS OUT [INDEX]\n", argv[0]);
        return 2;
    }
    long only = -1;
    const char *show = getenv("OTP_CORPUS_SHOW");
    if (show)
        max_shown = strtoul(show, NULL, 10);
    if (argc == 4) {
        only = strtol(argv[3], NULL, 10);
        verbose = 1;
    }
    size_t len = 0, pos = 8;
    uint8_t *data = read_file(argv[1], &len);
    if (!data || len < 8 || memcmp(data, "EDC1", 4) != 0) {
        fprintf(stderr, "%s: cannot read a corpus\n", argv[1]);
        return 2;
    }
    uint32_t creation;
    size_t hdr = 4;
    get_u32(data, len, &hdr, &creation);
    FILE *out = fopen(argv[2], "wb");
    if (!out) {
        fprintf(stderr, "%s: cannot write\n", argv[2]);
        return 2;
    }
    fwrite("EDO1", 1, 4, out);

    scratch s;
    memset(&s, 0, sizeof s);
    edist_buf *bufs[] = { &s.ours, &s.other, &s.tmp, &s.print, &s.parsed,
                          &s.comp, &s.uncomp, &s.inflate };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        edist_buf_init(bufs[i]);

    record rec, prev;
    memset(&prev, 0, sizeof prev);
    int have_prev = 0, corrupt = 0;
    unsigned long records = 0;
    while (pos < len) {
        if (next_record(data, len, &pos, &rec)) {
            corrupt = 1;
            break;
        }
        if (only >= 0 && rec.index != (uint32_t)only)
            continue;
        records++;
        if (verbose) {
            hex_line("min2", rec.min2.ptr, rec.min2.len, SIZE_MAX);
            hex_line("default", rec.dflt.ptr, rec.dflt.len, SIZE_MAX);
            text_line("~w", rec.text.ptr, rec.text.len, SIZE_MAX);
            fprintf(stderr, "    flags %" PRIu32 "\n", rec.flags);
        }
        edist_clear_error();
        check_validate(&rec, &s);
        check_walk(&rec, &s);
        check_print(&rec, &s);
        check_parse(&rec, &s, creation);
        check_equal(&rec, &s);
        check_compress(&rec, &s);
        uint8_t cmp = check_pair(have_prev ? &prev : NULL, &rec);

        put_u32(out, rec.index);
        put_blob(out, &s.ours);
        put_blob(out, &s.comp);
        put_blob(out, &s.parsed);
        put_blob(out, &s.print);
        fputc(cmp, out);
        prev = rec;
        have_prev = 1;
    }
    if (fclose(out) != 0) {
        fprintf(stderr, "%s: write failed\n", argv[2]);
        corrupt = 1;
    }
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        edist_buf_free(bufs[i]);
    free(s.copy);
    free(data);

    unsigned long total_passed = 0, total_failed = corrupt ? 1 : 0;
    printf("checked %lu records (creation %" PRIu32 ")%s\n", records, creation,
           corrupt ? "; CORPUS FILE CORRUPT" : "");
    for (int i = 0; i < CK_COUNT; i++) {
        printf("  %-10s %7lu passed, %lu failed\n", check_names[i], passed[i], failed[i]);
        total_passed += passed[i];
        total_failed += failed[i];
    }
    printf("  tags seen (tag:forms):");
    for (int t = 0; t < 256; t++)
        if (tag_records[t])
            printf(" %d:%lu", t, tag_records[t]);
    printf("\n");
    printf("  (our compressed bytes equal OTP's for %lu of %lu compressed terms)\n",
           compressed_like_otp, compressed_by_otp);
    printf("%lu passed, %lu failed\n", total_passed, total_failed);
    return total_failed ? 1 : 0;
}
