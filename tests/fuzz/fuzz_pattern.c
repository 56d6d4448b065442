/* SPDX-License-Identifier: Apache-2.0 */
/* Pattern fuzz target. Input: pattern text, a 0 byte, then term bytes. The
 * pattern is compiled and matched against the term; captured views must lie
 * inside the term buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edist/term.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    const uint8_t *sep = memchr(data, 0, len);
    if (!sep)
        return 0;
    size_t text_len = (size_t)(sep - data);
    const uint8_t *term = sep + 1;
    size_t term_len = len - text_len - 1;

    edist_pattern *pat = NULL;
    edist_parse_error perr;
    if (edist_pattern_compile((const char *)data, text_len, &pat, &perr) != 0)
        return 0;
    uint32_t nvars = edist_pattern_var_count(pat);
    edist_term_view vars[64];
    if (nvars <= 64) {
        memset(vars, 0, sizeof vars);
        int rc = edist_match(pat, term, term_len, nvars ? vars : NULL);
        if (rc == 1) {
            for (uint32_t i = 0; i < nvars; i++) {
                if (!vars[i].ptr)
                    continue; /* only `_`-like vars may stay unbound */
                if (vars[i].ptr < term || vars[i].ptr + vars[i].len > term + term_len)
                    abort();
            }
        }
    }
    edist_pattern_free(pat);
    return 0;
}
