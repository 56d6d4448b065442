/* SPDX-License-Identifier: Apache-2.0 */
/* `edist demo`: the main job. A short walk through the term codec that every
 * message is made of, then distributed Erlang across local nodes
 * (demo_dist.c). Exits 0 only if every step gave the expected result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edist/edist.h"
#include "args.h"
#include "cli.h"
#include "demo.h"

static int steps_failed;

static void step(const char *what, int ok, const char *detail)
{
    printf("  [%s] %s%s%s\n", ok ? " ok " : "FAIL", what, detail ? ": " : "",
           detail ? detail : "");
    fflush(stdout);
    if (!ok)
        steps_failed++;
}

void demo_step(int ok, const char *what, const char *result)
{
    printf("  [%s] %s%s%s\n", ok ? " ok " : "FAIL", what,
           result ? "  -> " : "", result ? result : "");
    fflush(stdout);
    if (!ok)
        steps_failed++;
}

int demo_failed(void)
{
    return steps_failed;
}

static void hex(const edist_buf *b, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < b->len && o + 4 < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%u", i ? "," : "", b->data[i]);
    if (o + 4 >= cap && cap > 4)
        strcpy(out + cap - 5, "...");
}

/* Text -> external term bytes; the printer must give the text back. */
static void round_trip(const char *text, const char *expected_print)
{
    edist_buf ext, printed;
    edist_parse_error perr;
    edist_buf_init(&ext);
    edist_buf_init(&printed);
    edist_enc_version(&ext);
    int rc = edist_term_parse(text, strlen(text), &ext, NULL, &perr);
    char line[512];
    if (rc < 0) {
        snprintf(line, sizeof line, "%s -> %u:%u: %s", text, perr.line,
                 perr.column, perr.message);
        step("parse", 0, line);
        goto out;
    }
    char bytes[256];
    hex(&ext, bytes, sizeof bytes);
    snprintf(line, sizeof line, "%s -> <<%s>>", text, bytes);
    step("encode", 1, line);
    rc = edist_term_print(ext.data, ext.len, &printed, NULL);
    snprintf(line, sizeof line, "<<...>> -> %s", rc < 0 ? edist_strerror(rc) :
             edist_buf_cstr(&printed));
    step("decode and print as ~w", rc == 0 && !strcmp(edist_buf_cstr(&printed),
                                                     expected_print), line);
out:
    edist_buf_free(&ext);
    edist_buf_free(&printed);
}

/* A selective-receive pattern picks {response, Ref, Value} out of a message
 * without decoding the rest. */
static void pattern_demo(void)
{
    const char *msg_text = "{response, #Ref<0.1.2.3>, {ok, [1,2,3]}}";
    edist_buf msg, ref, printed;
    edist_buf_init(&msg);
    edist_buf_init(&ref);
    edist_buf_init(&printed);
    edist_term_parse(msg_text, strlen(msg_text), &msg, NULL, NULL);
    edist_term_parse("#Ref<0.1.2.3>", 13, &ref, NULL, NULL);

    edist_pattern *pat = NULL;
    edist_parse_error perr;
    const char *pat_text = "{response, Ref, Value}";
    int rc = edist_pattern_compile(pat_text, strlen(pat_text), &pat, &perr);
    step("compile pattern {response, Ref, Value}", rc == 0, rc ? perr.message : NULL);
    if (rc == 0) {
        edist_term_view vars[2] = {{0}};
        vars[edist_pattern_var_index(pat, "Ref")] =
            (edist_term_view){ref.data, ref.len};
        rc = edist_match(pat, msg.data, msg.len, vars);
        int vi = edist_pattern_var_index(pat, "Value");
        int ok = rc == 1 && vi >= 0 && vars[vi].ptr &&
                 edist_term_print(vars[vi].ptr, vars[vi].len, &printed, NULL) == 0 &&
                 !strcmp(edist_buf_cstr(&printed), "{ok,[1,2,3]}");
        char line[256];
        snprintf(line, sizeof line, "%s with Ref bound -> Value = %s", msg_text,
                 ok ? edist_buf_cstr(&printed) : "(no match)");
        step("selective receive match", ok, line);

        edist_term_view other[2] = {{0}};
        edist_buf wrong;
        edist_buf_init(&wrong);
        edist_term_parse("#Ref<0.9.9.9>", 13, &wrong, NULL, NULL);
        other[edist_pattern_var_index(pat, "Ref")] =
            (edist_term_view){wrong.data, wrong.len};
        rc = edist_match(pat, msg.data, msg.len, other);
        step("a reply for another Ref does not match", rc == 0, NULL);
        edist_buf_free(&wrong);
    }
    edist_pattern_free(pat);
    edist_buf_free(&msg);
    edist_buf_free(&ref);
    edist_buf_free(&printed);
}

static void bad_input_demo(void)
{
    static const uint8_t truncated[] = {131, 104, 2, 97, 1};
    size_t off = 0;
    int rc = edist_term_validate(truncated, sizeof truncated, &off);
    char line[256];
    snprintf(line, sizeof line, "<<131,104,2,97,1>> -> %s at byte %zu",
             edist_strerror(rc), off);
    step("truncated input is refused with its offset", rc < 0, line);

    edist_buf out;
    edist_parse_error perr;
    edist_buf_init(&out);
    rc = edist_term_parse("{ok, [1, 2}", 11, &out, NULL, &perr);
    snprintf(line, sizeof line, "{ok, [1, 2} -> %u:%u: %s", perr.line,
             perr.column, perr.message);
    step("a syntax error says where", rc < 0 && perr.line == 1, line);
    edist_buf_free(&out);
}

int cmd_demo(int argc, char **argv)
{
    bool pause = false;
    const char *node2 = NULL; /* internal: the demo's second node */
    const cli_opt opts[] = {
        {"pause", NULL, CLI_FLAG, &pause, 0, 0},
        {"node2", NULL, CLI_TEXT, &node2, 0, 0},
    };
    const cli_command cmd = {
        "demo",
        "usage: edist demo [--pause]\n"
        "  Starts local nodes (a private port mapper, two edist nodes,\n"
        "  and an erl node when erl is installed) and walks through\n"
        "  distributed Erlang, checking every step. Exit 0 when every\n"
        "  step gave the expected result. --pause: wait for Enter once\n"
        "  the nodes are up, to look at them.\n",
        opts, 2, 0, 0};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc)
        return rc == CLI_DONE ? 0 : rc;
    if (node2)
        return demo_node2(node2);
    puts("edist demo, part 1: the External Term Format every message is made of");
    round_trip("{ok, 42}", "{ok,42}");
    round_trip("[1, 2 | tail]", "[1,2|tail]");
    round_trip("-123456789012345678901234567890",
               "-123456789012345678901234567890");
    pattern_demo();
    bad_input_demo();
    puts("edist demo, part 2: distributed Erlang across local nodes");
    demo_dist(pause);
    if (steps_failed) {
        printf("edist demo: %d step(s) FAILED\n", steps_failed);
        return 1;
    }
    puts("edist demo: every step gave the expected result");
    return 0;
}
