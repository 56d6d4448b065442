/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edist/edist.h"
#include "args.h"
#include "cli.h"

/* stdin may be large (megabyte terms); read it whole. */
static int read_all(FILE *in, edist_buf *out)
{
    uint8_t chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, in)) > 0)
        if (edist_buf_append(out, chunk, n) < 0)
            return out->err;
    return ferror(in) ? EDIST_EIO : 0;
}

static int term_encode(const char *text)
{
    edist_buf out;
    edist_parse_error perr;
    edist_buf_init(&out);
    edist_enc_version(&out);
    int rc = edist_term_parse(text, strlen(text), &out, NULL, &perr);
    if (rc < 0) {
        fprintf(stderr, "edist: term encode: %u:%u: %s\n", perr.line,
                perr.column, perr.message);
        edist_buf_free(&out);
        return 1;
    }
    rc = fwrite(out.data, 1, out.len, stdout) == out.len ? 0 : 1;
    if (fflush(stdout) != 0)
        rc = 1;
    edist_buf_free(&out);
    return rc;
}

static int term_decode(void)
{
    edist_buf in, text;
    edist_buf_init(&in);
    edist_buf_init(&text);
    int rc = read_all(stdin, &in);
    if (rc < 0) {
        cli_error("term decode: reading stdin", rc);
        goto out;
    }
    edist_cursor cur;
    edist_buf scratch;
    edist_buf_init(&scratch);
    rc = edist_cursor_init_ext(&cur, in.data, in.len, &scratch);
    if (rc == 0)
        rc = edist_term_validate(in.data, in.len, NULL);
    if (rc == 0)
        rc = edist_term_print(in.data, in.len, &text, NULL);
    edist_buf_free(&scratch);
    if (rc < 0) {
        cli_error("term decode", rc);
        goto out;
    }
    fwrite(text.data, 1, text.len, stdout);
    fputc('\n', stdout);
out:
    edist_buf_free(&in);
    edist_buf_free(&text);
    return rc < 0 ? 1 : 0;
}

int cmd_term(int argc, char **argv)
{
    /* A term's text may start with a dash (-1): after the verb, only
     * --help and --version are options, as `--` would make them. */
    const cli_command cmd = {
        "term",
        "usage: edist term encode 'TEXT'   the external term format of TEXT on stdout\n"
        "       edist term decode < FILE   an external term from stdin, printed as ~w\n",
        NULL, 0, 1, 2};
    const char *pos[2];
    int npos;
    int rc = cli_parse(&cmd, argc > 2 ? 2 : argc, argv, pos, &npos);
    if (rc)
        return rc == CLI_DONE ? 0 : rc;
    if (!strcmp(pos[0], "encode") && argc == 3)
        return term_encode(argv[2]);
    if (!strcmp(pos[0], "decode") && argc == 2)
        return term_decode();
    fprintf(stderr, "edist term: want encode 'TEXT' or decode\n");
    fputs(cmd.usage, stderr);
    return 2;
}
