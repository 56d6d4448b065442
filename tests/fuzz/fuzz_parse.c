/* SPDX-License-Identifier: Apache-2.0 */
/* Text parser fuzz target: whatever parses must be a valid term whose ~w text
 * parses back to the same bytes (local pids/refs/ports and floats included:
 * the printer's output reads back exactly), except for export funs whose
 * text is OTP's and does not (see fun_text_flags). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edist/term.h"

/* ~w prints `fun M:F/A` as erts' fun_to_list does (see print.c), and its
 * choices make OTP's own text differ from what was encoded:
 * - each UTF-8 byte of a non-ASCII atom is one character, so a quoted
 *   non-ASCII module or function reads back as a different atom (lossy);
 * - it leaves an atom unquoted when it starts with a lower-case letter and
 *   continues with letters, digits and '_', without io_lib's exceptions. A
 *   reserved word (`fun bxor:c/1`) or a non-ASCII atom (`fun aé:c/1` whose
 *   é prints as the characters Ã and ©, © being no name character) is then
 *   text that erl_scan + erl_parse reject too (checked with OTP 25), so it
 *   cannot parse (unreadable);
 * - so a non-ASCII atom of 255 characters but more than 255 UTF-8 bytes
 *   reads back as more than 255 characters: erl_scan refuses that atom
 *   (illegal atom), and so does our parser (unreadable).
 * That is OTP's output, reproduced on purpose; anything else must read back
 * as the same term. */
typedef struct fun_text_flags {
    int lossy;
    int unreadable;
} fun_text_flags;

/* erl_scan:reserved_word/1 of OTP 25 (no optional features enabled). */
static int is_reserved_word(const uint8_t *s, size_t len)
{
    static const char *const words[] = {
        "after", "begin", "case", "try", "cond", "catch", "andalso", "orelse",
        "end", "fun", "if", "let", "of", "receive", "when", "bnot", "not",
        "div", "rem", "band", "and", "bor", "bxor", "bsl", "bsr", "or", "xor",
    };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strlen(words[i]) == len && memcmp(words[i], s, len) == 0)
            return 1;
    return 0;
}

/* One atom of a printed `fun M:F/A`, as erts wrote it. */
static void classify_fun_atom(const uint8_t *s, size_t len, fun_text_flags *f)
{
    int non_ascii = 0;
    for (size_t i = 0; i < len; i++)
        non_ascii |= s[i] >= 0x80;
    f->lossy |= non_ascii;
    if (len > 0 && s[0] != '\'' && (non_ascii || is_reserved_word(s, len)))
        f->unreadable = 1;
}

/* The characters erts writes for an atom: one per UTF-8 byte. */
static size_t utf8_bytes(const edist_atom *a)
{
    size_t n = a->len;
    for (size_t i = 0; a->latin1 && i < a->len; i++)
        n += (uint8_t)a->ptr[i] >= 0x80;
    return n;
}

/* The text of one export fun alone: "fun " M ":" F "/" Arity. An unquoted
 * atom holds no ':' or '/'; a quoted one may, so split around its quotes. */
static void classify_export(const uint8_t *term, size_t len,
                            fun_text_flags *f)
{
    edist_cursor c;
    edist_export e;
    edist_cursor_init(&c, term, len);
    if (edist_dec_export(&c, &e) != 0)
        abort(); /* it validated */
    if (utf8_bytes(&e.module) > 255 || utf8_bytes(&e.function) > 255)
        f->unreadable = 1;
    edist_buf text;
    edist_buf_init(&text);
    if (edist_term_print(term, len, &text, NULL) != 0 || text.len < 4)
        abort(); /* it printed as part of the whole term */
    const uint8_t *s = text.data + 4, *end = text.data + text.len;
    for (int part = 0; part < 2; part++) {
        const uint8_t *p = s;
        if (p < end && *p == '\'') {
            for (p++; p < end && *p != '\''; p++)
                if (*p == '\\' && p + 1 < end)
                    p++;
            p++;
        } else {
            while (p < end && *p != (part == 0 ? ':' : '/'))
                p++;
        }
        if (p > end)
            abort();
        classify_fun_atom(s, (size_t)(p - s), f);
        s = p + 1;
    }
    edist_buf_free(&text);
}

/* Walk the whole term: export funs may sit anywhere inside it. */
static fun_text_flags fun_text(const edist_buf *enc)
{
    fun_text_flags f = {0, 0};
    edist_cursor c;
    edist_cursor_init(&c, enc->data, enc->len);
    uint64_t pending = 1; /* terms still to read; bounded by the input */
    while (pending > 0) {
        edist_item it;
        if (edist_dec_next(&c, &it) != 0)
            abort(); /* it validated */
        pending--;
        if (it.type == EDIST_TYPE_TUPLE)
            pending += it.count;
        else if (it.type == EDIST_TYPE_MAP)
            pending += 2 * it.count;
        else if (it.type == EDIST_TYPE_LIST && it.tag == EDIST_TAG_LIST)
            pending += it.count + 1;
        else if (it.type == EDIST_TYPE_FUN && it.tag == EDIST_TAG_EXPORT)
            classify_export(it.bytes, it.count, &f);
    }
    return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    edist_buf enc, text, again;
    edist_parse_error perr;
    edist_buf_init(&enc);
    edist_buf_init(&text);
    edist_buf_init(&again);
    if (edist_term_parse((const char *)data, len, &enc, NULL, &perr) == 0) {
        if (edist_term_validate(enc.data, enc.len, NULL) != 0)
            abort();
        if (edist_term_print(enc.data, enc.len, &text, NULL) != 0)
            abort();
        fun_text_flags funs = fun_text(&enc);
        int rc = edist_term_parse((const char *)text.data, text.len, &again,
                                  NULL, &perr);
        if (rc != 0 && !funs.unreadable)
            abort();
        if (rc == 0 &&
            edist_term_equal(enc.data, enc.len, again.data, again.len) != 1 &&
            !funs.lossy)
            abort();
    } else if (perr.line == 0 || perr.column == 0 || perr.message[0] == '\0') {
        abort(); /* every parse error says where and why */
    }
    edist_buf_free(&enc);
    edist_buf_free(&text);
    edist_buf_free(&again);
    return 0;
}
