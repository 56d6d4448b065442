/* SPDX-License-Identifier: Apache-2.0 */
/* A node with the process runtime for the test_rt_*.sh scripts:
 *   test_rt_peer NAME COOKIE
 * Exports t:echo/1, t:add/2 (small integers), t:reply/2 (Pid, Term),
 * t:crash/1 (exits with the reason), t:segv/0 (writes through NULL: the
 * node dies); registers `techo` ({From, Msg} ->
 * Msg to From, a green process) and `tmon` (the main thread as a process:
 * {monitor, Pid, ReplyTo} monitors Pid then sends `monitored` to ReplyTo;
 * {spawn_on, Node, ReplyTo} spawn_monitors erlang:send(ReplyTo,
 * spawned_by_edist) on Node and prints "spawn_remote: ok" (the DOWN is
 * printed as it comes); every other message is printed as "got: TERM" on
 * stdout). Prints
 * "ready" once all that is in place; runs until killed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edist/edist.h"

static void log_line(void *user, edist_log_level level, const char *line)
{
    (void)user;
    (void)level;
    fprintf(stderr, "%s\n", line);
}

static int x_echo(void *user, const edist_term_view *args, uint32_t arity,
                  edist_buf *result)
{
    (void)user;
    (void)arity;
    return edist_enc_raw(result, args[0].ptr, args[0].len);
}

static int x_add(void *user, const edist_term_view *args, uint32_t arity,
                 edist_buf *result)
{
    (void)user;
    (void)arity;
    edist_cursor a, b;
    int64_t x, y;
    edist_cursor_init(&a, args[0].ptr, args[0].len);
    edist_cursor_init(&b, args[1].ptr, args[1].len);
    if (edist_dec_int64(&a, &x) || edist_dec_int64(&b, &y)) {
        edist_buf r;
        uint8_t mem[16];
        edist_buf_init_fixed(&r, mem, sizeof mem);
        edist_enc_atomz(&r, "badarith");
        edist_exit(r.data, r.len);
        return 0;
    }
    return edist_enc_int(result, x + y);
}

static int x_reply(void *user, const edist_term_view *args, uint32_t arity,
                   edist_buf *result)
{
    (void)user;
    (void)arity;
    (void)result;
    edist_cursor c;
    edist_procid to;
    edist_cursor_init(&c, args[0].ptr, args[0].len);
    if (edist_dec_procid(&c, &to))
        return EDIST_EINVAL;
    return edist_send(to, args[1].ptr, args[1].len);
}

static int x_crash(void *user, const edist_term_view *args, uint32_t arity,
                   edist_buf *result)
{
    (void)user;
    (void)arity;
    (void)result;
    edist_exit(args[0].ptr, args[0].len);
    return 0;
}

static int *volatile null_ptr;

/* UBSan would report the store instead of letting it fault. */
__attribute__((no_sanitize("undefined"))) static int x_segv(void *user,
                                                            const edist_term_view *args,
                                                            uint32_t arity, edist_buf *result)
{
    (void)user;
    (void)args;
    (void)arity;
    (void)result;
    *null_ptr = 1;
    return 0;
}

static void echo_proc(void *arg)
{
    (void)arg;
    for (;;) {
        edist_term_view msg, m;
        if (edist_receive(NULL, NULL, -1, &msg))
            return;
        edist_cursor c;
        uint32_t n;
        edist_procid from;
        edist_cursor_init(&c, msg.ptr, msg.len);
        if (edist_dec_tuple(&c, &n) == 0 && n == 2 &&
            edist_dec_procid(&c, &from) == 0 && edist_dec_term(&c, &m) == 0) {
            int rc = edist_send(from, m.ptr, m.len);
            if (rc)
                fprintf(stderr, "techo: send: %s: %s\n", edist_strerror(rc),
                        edist_last_error());
        } else {
            fprintf(stderr, "techo: not {Pid, Msg} (%zu bytes)\n", msg.len);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test_rt_peer NAME COOKIE\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    edist_node_config cfg;
    edist_node_config_init(&cfg);
    cfg.name = argv[1];
    cfg.cookie = argv[2];
    cfg.listen_address = "127.0.0.1";
    cfg.log = log_line;
    cfg.log_level = EDIST_LOG_DEBUG;
    edist_node *node;
    int rc = edist_node_start(&cfg, &node);
    if (rc) {
        fprintf(stderr, "node start: %s\n", edist_last_error());
        return 1;
    }
    edist_runtime *rt = edist_node_runtime(node);
    if (!rt || edist_export_function(rt, "t", "echo", 1, x_echo, NULL) ||
        edist_export_function(rt, "t", "add", 2, x_add, NULL) ||
        edist_export_function(rt, "t", "reply", 2, x_reply, NULL) ||
        edist_export_function(rt, "t", "crash", 1, x_crash, NULL) ||
        edist_export_function(rt, "t", "segv", 0, x_segv, NULL)) {
        fprintf(stderr, "exports: %s\n", edist_last_error());
        return 1;
    }
    edist_procid self, echo;
    if (edist_proc_attach_thread(rt, 0, &self) ||
        edist_spawn(echo_proc, NULL, &echo) ||
        edist_register("techo", echo) || edist_register("tmon", self)) {
        fprintf(stderr, "processes: %s\n", edist_last_error());
        return 1;
    }
    printf("ready\n");
    edist_buf out;
    edist_buf_init(&out);
    for (;;) {
        edist_term_view msg, tag, v;
        rc = edist_receive(NULL, NULL, -1, &msg);
        if (rc) {
            fprintf(stderr, "receive: %s\n", edist_strerror(rc));
            return 1;
        }
        edist_cursor c;
        uint32_t n;
        edist_atom a;
        edist_procid pid, reply_to;
        edist_cursor_init(&c, msg.ptr, msg.len);
        if (edist_dec_tuple(&c, &n) == 0 && n == 3 &&
            edist_dec_atom(&c, &a) == 0 && edist_atom_eq(&a, "monitor") &&
            edist_dec_procid(&c, &pid) == 0 &&
            edist_dec_procid(&c, &reply_to) == 0) {
            edist_ref ref;
            rc = edist_monitor(pid, &ref);
            uint8_t mem[32];
            edist_buf r;
            edist_buf_init_fixed(&r, mem, sizeof mem);
            edist_enc_atomz(&r, rc ? "failed" : "monitored");
            edist_send(reply_to, r.data, r.len);
            continue;
        }
        /* {spawn_on, Node, ReplyTo}: spawn_monitor erlang:send(ReplyTo,
         * spawned_by_edist) on Node; print the DOWN reason. */
        edist_cursor_init(&c, msg.ptr, msg.len);
        if (edist_dec_tuple(&c, &n) == 0 && n == 3 &&
            edist_dec_atom(&c, &a) == 0 && edist_atom_eq(&a, "spawn_on") &&
            edist_dec_atom(&c, &a) == 0 && edist_dec_procid(&c, &reply_to) == 0) {
            char node_name[256];
            snprintf(node_name, sizeof node_name, "%.*s", (int)a.len, a.ptr);
            edist_buf args;
            edist_buf_init(&args);
            edist_enc_list(&args, 2);
            edist_enc_procid(&args, reply_to);
            edist_enc_atomz(&args, "spawned_by_edist");
            edist_enc_nil(&args);
            edist_spawn_opts so = {.monitor = true};
            edist_ref req;
            rc = edist_spawn_remote(node_name, "erlang", "send", args.data,
                                    args.len, &so, 5000, &pid, &req);
            edist_buf_free(&args);
            printf("spawn_remote: %s\n", rc ? edist_strerror(rc) : "ok");
            continue;
        }
        (void)tag;
        (void)v;
        edist_buf_reset(&out);
        edist_term_print(msg.ptr, msg.len, &out, NULL);
        printf("got: %.*s\n", (int)out.len, (const char *)out.data);
    }
}
