/* SPDX-License-Identifier: Apache-2.0 */
/* Decoder fuzz target: any bytes, as an external term and as a raw term.
 * Whatever validate accepts must print, compare equal to itself, and
 * transcode through the compressor; nothing may crash or leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edist/term.h"

static void walk(const uint8_t *data, size_t len)
{
    edist_cursor c;
    edist_cursor_init(&c, data, len);
    /* Exercise the getters on whatever comes first. */
    edist_term_info info;
    if (edist_peek(&c, &info) == 0) {
        int64_t i;
        double d;
        edist_atom a;
        char atom_text[EDIST_ATOM_MAX_BYTES + 1];
        edist_pid pid;
        edist_ref ref;
        edist_port port;
        edist_fun fun;
        edist_export exp;
        const uint8_t *bytes;
        size_t n;
        unsigned bits;
        uint32_t count;
        int neg;
        uint8_t tmp[8];
        (void)edist_dec_int64(&c, &i);
        (void)edist_dec_integer(&c, &neg, &bytes, &n, tmp);
        (void)edist_dec_double(&c, &d);
        if (edist_dec_atom(&c, &a) == 0) {
            if (edist_atom_to_utf8(&a, atom_text, sizeof atom_text) < 0)
                abort(); /* every decoded atom fits the documented maximum */
            edist_cursor_init(&c, data, len);
        }
        (void)edist_dec_atom_copy(&c, atom_text, sizeof atom_text);
        edist_cursor_init(&c, data, len);
        (void)edist_dec_pid(&c, &pid);
        (void)edist_dec_ref(&c, &ref);
        (void)edist_dec_port(&c, &port);
        (void)edist_dec_fun(&c, &fun);
        (void)edist_dec_export(&c, &exp);
        (void)edist_dec_bitstring(&c, &bytes, &n, &bits);
        (void)edist_dec_string(&c, &bytes, &n);
        (void)edist_dec_tuple(&c, &count);
        (void)edist_dec_list(&c, &count);
        (void)edist_dec_map(&c, &count);
    }
    edist_term_view v;
    edist_cursor_init(&c, data, len);
    if (edist_dec_term(&c, &v) == 0 && (v.ptr != data || v.len > len))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    walk(data, len);

    size_t off;
    if (edist_term_validate(data, len, &off) != 0)
        return 0;

    edist_buf out;
    edist_buf_init(&out);
    if (edist_term_print(data, len, &out, NULL) != 0)
        abort(); /* a valid term always prints */
    int eq = edist_term_equal(data, len, data, len);
    if (eq != 1)
        abort();
    int cmp = 1;
    if (edist_term_compare(data, len, data, len, &cmp) != 0 || cmp != 0)
        abort();
    /* The hash agrees with =:=: the input and its canonical encoding
     * (printed and parsed back), whenever they are equal, hash equal.
     * Only nesting deeper than the walks allow may fail. */
    uint64_t h1 = 0, h2 = 0;
    int rc = edist_term_hash(data, len, 0x5eed, &h1);
    if (rc != 0 && rc != EDIST_EDEPTH)
        abort();
    edist_buf again;
    edist_buf_init(&again);
    edist_parse_error perr;
    if (rc == 0 &&
        edist_term_parse((const char *)out.data, out.len, &again, NULL, &perr) == 0 &&
        edist_term_equal(data, len, again.data, again.len) == 1 &&
        (edist_term_hash(again.data, again.len, 0x5eed, &h2) != 0 || h1 != h2))
        abort();
    edist_buf_free(&again);
    edist_buf_free(&out);
    return 0;
}
