/* SPDX-License-Identifier: Apache-2.0 */
/* A node for the tests of the node's limits (test_node_limits.sh, the
 * soak test), configured with the node's own option flags:
 *   test_limits_peer --sname NAME --cookie C [--mailbox-messages N ...]
 * Besides the services every node has, it exports
 *   t:collect(N, ReplyTo, SleepMs): sleeps SleepMs, then receives up to N
 *     messages {I, _} (10 s for each at most) and sends
 *     {collected, Count, InOrder, FirstOutOfOrder} to ReplyTo, InOrder
 *     true when the I were 1, 2, 3, ... without a gap;
 *   t:count(ReplyTo): receives {I, _} messages until `stop`, then sends
 *     {counted, Count, InOrder} to ReplyTo;
 *   t:crash_after(K): receives K messages, then exits with reason
 *     crashed_after.
 * and registers `tthread`, the main thread as a process (a thread
 * process): {flood, To, N, Bytes, DelayMs} waits DelayMs, then sends To
 * {I, <<Bytes bytes>>} for I in 1..N, then {flooded, N} (held back, never
 * dropped, when To's node does not read).
 * Prints "ready" once started; log lines go to stderr; runs until killed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/node_config.h"
#include "edist/edist.h"

static void log_line(void *user, edist_log_level level, const char *line)
{
    (void)user;
    (void)level;
    fprintf(stderr, "%s\n", line);
}

static int int_arg(edist_term_view v, int64_t *out)
{
    edist_cursor c;
    edist_cursor_init(&c, v.ptr, v.len);
    return edist_dec_int64(&c, out);
}

/* {I, _} -> I; 0 for anything else. */
static int64_t seq_of(edist_term_view msg)
{
    edist_cursor c;
    uint32_t n;
    int64_t i;
    edist_cursor_init(&c, msg.ptr, msg.len);
    if (edist_dec_tuple(&c, &n) == 0 && n == 2 && edist_dec_int64(&c, &i) == 0)
        return i;
    return 0;
}

static bool is_atom(edist_term_view msg, const char *name)
{
    edist_cursor c;
    edist_atom a;
    edist_cursor_init(&c, msg.ptr, msg.len);
    return edist_dec_atom(&c, &a) == 0 && edist_atom_eq(&a, name);
}

static int reply(edist_procid to, const char *tag, int64_t count, bool in_order,
                 const int64_t *extra)
{
    edist_buf b;
    edist_buf_init(&b);
    edist_enc_tuple(&b, extra ? 4 : 3);
    edist_enc_atomz(&b, tag);
    edist_enc_int(&b, count);
    edist_enc_atomz(&b, in_order ? "true" : "false");
    if (extra)
        edist_enc_int(&b, *extra);
    int rc = edist_buf_error(&b);
    while (rc == 0 && (rc = edist_send(to, b.data, b.len)) == EDIST_EAGAIN)
        edist_sleep_ms(1);
    edist_buf_free(&b);
    return rc;
}

static int x_collect(void *user, const edist_term_view *args, uint32_t arity,
                     edist_buf *result)
{
    (void)user;
    (void)arity;
    (void)result;
    int64_t n, sleep_ms;
    edist_procid to;
    edist_cursor c;
    edist_cursor_init(&c, args[1].ptr, args[1].len);
    if (int_arg(args[0], &n) || edist_dec_procid(&c, &to) || int_arg(args[2], &sleep_ms))
        return EDIST_EINVAL;
    edist_sleep_ms(sleep_ms);
    int64_t got = 0, expect = 1, first_bad = 0;
    bool in_order = true;
    while (got < n) {
        edist_term_view msg;
        if (edist_receive(NULL, NULL, 10000, &msg))
            break;
        int64_t i = seq_of(msg);
        if (i != expect && in_order) {
            in_order = false;
            first_bad = i;
        }
        expect = i + 1;
        got++;
    }
    return reply(to, "collected", got, in_order, &first_bad);
}

static int x_count(void *user, const edist_term_view *args, uint32_t arity,
                   edist_buf *result)
{
    (void)user;
    (void)arity;
    (void)result;
    edist_procid to;
    edist_cursor c;
    edist_cursor_init(&c, args[0].ptr, args[0].len);
    if (edist_dec_procid(&c, &to))
        return EDIST_EINVAL;
    int64_t got = 0, expect = 1;
    bool in_order = true;
    for (;;) {
        edist_term_view msg;
        int rc = edist_receive(NULL, NULL, -1, &msg);
        if (rc)
            return rc;
        if (is_atom(msg, "stop"))
            break;
        int64_t i = seq_of(msg);
        if (i != expect)
            in_order = false;
        expect = i + 1;
        got++;
    }
    return reply(to, "counted", got, in_order, NULL);
}

static int x_crash_after(void *user, const edist_term_view *args, uint32_t arity,
                         edist_buf *result)
{
    (void)user;
    (void)arity;
    (void)result;
    int64_t k;
    if (int_arg(args[0], &k))
        return EDIST_EINVAL;
    for (int64_t i = 0; i < k; i++) {
        edist_term_view msg;
        int rc = edist_receive(NULL, NULL, -1, &msg);
        if (rc)
            return rc;
    }
    static const uint8_t reason[] = {EDIST_TAG_SMALL_ATOM_UTF8, 13, 'c', 'r', 'a', 's', 'h',
                                     'e', 'd', '_', 'a', 'f', 't', 'e', 'r'};
    return edist_exit(reason, sizeof reason);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    static edi_node_options o;
    edi_node_options_init(&o);
    int npos = 0;
    int rc = edi_node_options_parse_args(&o, argc - 1, argv + 1, NULL, 0, &npos, NULL);
    if (rc == 0)
        rc = edi_node_options_load_all(&o);
    if (rc == 0)
        rc = edi_node_options_to_config(&o, 1);
    if (rc) {
        fprintf(stderr, "test_limits_peer: %s\n", edist_last_error());
        return 2;
    }
    edist_node_config cfg = o.cfg;
    cfg.log = log_line;
    edist_node *node;
    if ((rc = edist_node_start(&cfg, &node)) != 0) {
        fprintf(stderr, "node start: %s\n", edist_last_error());
        return 1;
    }
    edist_runtime *rt = edist_node_runtime(node);
    if (!rt || edist_export_function(rt, "t", "collect", 3, x_collect, NULL) ||
        edist_export_function(rt, "t", "count", 1, x_count, NULL) ||
        edist_export_function(rt, "t", "crash_after", 1, x_crash_after, NULL)) {
        fprintf(stderr, "exports: %s\n", edist_last_error());
        return 1;
    }
    edist_procid self;
    if (edist_proc_attach_thread(rt, 0, &self) || edist_register("tthread", self)) {
        fprintf(stderr, "tthread: %s\n", edist_last_error());
        return 1;
    }
    printf("ready\n");
    for (;;) {
        edist_term_view msg;
        if (edist_receive(NULL, NULL, -1, &msg))
            return 1;
        edist_cursor c;
        uint32_t n;
        edist_atom a;
        edist_procid to;
        int64_t count, bytes, delay_ms;
        edist_cursor_init(&c, msg.ptr, msg.len);
        if (edist_dec_tuple(&c, &n) || n != 5 || edist_dec_atom(&c, &a) ||
            !edist_atom_eq(&a, "flood") || edist_dec_procid(&c, &to) ||
            edist_dec_int64(&c, &count) || edist_dec_int64(&c, &bytes) || bytes < 0 ||
            edist_dec_int64(&c, &delay_ms))
            continue;
        usleep((useconds_t)delay_ms * 1000);
        uint8_t *payload = calloc(1, (size_t)bytes + 1);
        edist_buf b;
        edist_buf_init(&b);
        for (int64_t i = 1; i <= count; i++) {
            edist_buf_reset(&b);
            edist_enc_tuple(&b, 2);
            edist_enc_int(&b, i);
            edist_enc_binary(&b, payload, (size_t)bytes);
            if ((rc = edist_buf_error(&b)) == 0)
                while ((rc = edist_send(to, b.data, b.len)) == EDIST_EAGAIN)
                    usleep(1000); /* the shard's request queue is full */
            if (rc)
                fprintf(stderr, "tthread: send %lld: %s\n", (long long)i, edist_strerror(rc));
        }
        edist_buf_reset(&b);
        edist_enc_tuple(&b, 2);
        edist_enc_atomz(&b, "flooded");
        edist_enc_int(&b, count);
        edist_send(to, b.data, b.len);
        edist_buf_free(&b);
        free(payload);
    }
}
