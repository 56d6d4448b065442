/* SPDX-License-Identifier: Apache-2.0 */
/* Text parser fuzz target: whatever parses must be a valid term whose ~w text
 * parses back to the same bytes (local pids/refs/ports and floats included:
 * the printer's output reads back exactly). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edist/term.h"

/* ~w prints the atoms of `fun M:F/A` as erts' fun_to_list does: each UTF-8
 * byte as one character, so a non-ASCII module or function name does not
 * read back as itself. That is OTP's output, reproduced on purpose. */
static int lossy_fun_text(const edist_buf *text)
{
    int has_fun = memmem(text->data, text->len, "fun ", 4) != NULL;
    for (size_t i = 0; has_fun && i < text->len; i++)
        if (text->data[i] >= 0x80)
            return 1;
    return 0;
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
        if (edist_term_parse((const char *)text.data, text.len, &again, NULL,
                             &perr) != 0)
            abort();
        if (edist_term_equal(enc.data, enc.len, again.data, again.len) != 1 &&
            !lossy_fun_text(&text))
            abort();
    } else if (perr.line == 0 || perr.column == 0 || perr.message[0] == '\0') {
        abort(); /* every parse error says where and why */
    }
    edist_buf_free(&enc);
    edist_buf_free(&text);
    edist_buf_free(&again);
    return 0;
}
