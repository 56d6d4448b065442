/* SPDX-License-Identifier: Apache-2.0 */
/* Helper of test_proc: a node that dies. test_proc runs it as a child and
 * checks its stderr and how it ended; reaching the end of main is a
 * failure (exit 4 and a line saying what happened instead).
 *
 *   recurse    a green process recurses without end on a default (64 KiB)
 *              stack: the guard page stops it with a "stack overflow" line
 *   big-frame  the export edist_test:big_frame/0 has a 70 KiB frame and
 *              touches only its far end, so without stack clash probes it
 *              steps over the 4 KiB guard into the neighbouring process's
 *              stack (a sentinel there tells)
 *   null       the export edist_test:null_deref/0 writes through NULL
 *   abort      the export edist_test:abort_now/0 calls abort() */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "edist/edist.h"

#define BIG_FRAME_BYTES (70u * 1024u)
#define SENTINEL_BYTES (16u * 1024u)
#define SENTINEL 0xA5u

/* The limit comes from outside so that the compiler cannot see the
 * recursion is endless. */
static volatile uint64_t limit = UINT64_MAX;

static __attribute__((noinline)) uint64_t deeper(uint64_t n)
{
    volatile uint8_t frame[256];
    frame[0] = (uint8_t)n;
    if (n >= limit)
        return frame[0];
    return deeper(n + 1) + frame[0];
}

static void overflow(void *arg)
{
    (void)arg;
    deeper(0);
}

static int recurse_mode(edist_runtime *rt)
{
    edist_procid pid;
    if (edist_runtime_spawn(rt, overflow, NULL, NULL, &pid) != 0)
        return 3;
    sleep(10);
    fprintf(stderr, "no overflow detected\n");
    return 4;
}

/* ---- a frame larger than the guard ---------------------------------------------------------- */

static uintptr_t sentinel_lo, far_end;

static int send_atom(edist_procid to, const char *atom)
{
    uint8_t tmp[64];
    edist_buf b;
    edist_buf_init_fixed(&b, tmp, sizeof tmp);
    edist_enc_atomz(&b, atom);
    return edist_send(to, b.data, b.len);
}

static int receive_atom(const char *atom, int64_t timeout_ms)
{
    edist_pattern *p = NULL;
    edist_parse_error pe;
    if (edist_pattern_compile(atom, strlen(atom), &p, &pe) != 0)
        return -1;
    edist_term_view vars[1], m;
    int rc = edist_receive(p, vars, timeout_ms, &m);
    edist_pattern_free(p);
    return rc;
}

/* Spawned just before big_frame, so its stack is the one right below
 * big_frame's guard: its frame fills the top of that stack with a
 * sentinel, then it waits to count what is left of it. */
static void neighbour(void *arg)
{
    edist_procid parent = *(const edist_procid *)arg;
    volatile uint8_t sentinel[SENTINEL_BYTES];
    for (size_t i = 0; i < SENTINEL_BYTES; i++)
        sentinel[i] = SENTINEL;
    sentinel_lo = (uintptr_t)&sentinel[0];
    send_atom(parent, "ready");
    receive_atom("check", -1);
    size_t changed = 0;
    for (size_t i = 0; i < SENTINEL_BYTES; i++)
        changed += sentinel[i] != SENTINEL;
    send_atom(parent, changed ? "corrupted" : "intact");
}

static int big_frame(void *user, const edist_term_view *args, uint32_t arity,
                     edist_buf *result)
{
    (void)user;
    (void)args;
    (void)arity;
    (void)result;
    volatile uint8_t buf[BIG_FRAME_BYTES];
    far_end = (uintptr_t)&buf[0];
    buf[0] = 1; /* the lowest address, 70 KiB below the frame's top */
    return buf[0] == 1 ? 0 : -1;
}

static int big_frame_mode(edist_runtime *rt)
{
    edist_procid self, n;
    if (edist_proc_attach_thread(rt, 0, &self) != 0)
        return 3;
    if (edist_spawn(neighbour, &self, &n) != 0 || receive_atom("ready", 5000) != 0)
        return 3;
    edist_spawn_opts o = {.monitor = true};
    edist_ref mon;
    uint8_t nil = EDIST_TAG_NIL;
    if (edist_spawn_export("edist_test", "big_frame", &nil, 1, &o, NULL, &mon) != 0)
        return 3;
    /* Still alive: big_frame returned (its DOWN is here). */
    edist_term_view down;
    edist_pattern *dp = NULL;
    edist_parse_error pe;
    edist_pattern_compile("{'DOWN', _, process, _, _}", 26, &dp, &pe);
    edist_term_view vars[1];
    if (edist_receive(dp, vars, 10000, &down) != 0) {
        fprintf(stderr, "big_frame neither returned nor killed the node\n");
        return 4;
    }
    send_atom(n, "check");
    edist_pattern *cp = NULL;
    edist_pattern_compile("intact", 6, &cp, &pe);
    bool intact = edist_receive(cp, vars, 5000, &down) == 0;
    fprintf(stderr,
            "no overflow detected: big_frame touched %#lx and returned; the neighbour's "
            "sentinel [%#lx, %#lx) is %s\n",
            (unsigned long)far_end, (unsigned long)sentinel_lo,
            (unsigned long)(sentinel_lo + SENTINEL_BYTES),
            intact ? "intact" : "corrupted");
    return 4;
}

/* ---- NULL ------------------------------------------------------------------------------------ */

static int *volatile null_ptr;

/* UBSan would report the store instead of letting it fault. */
__attribute__((no_sanitize("undefined"))) static int null_deref(void *user,
                                                                const edist_term_view *args,
                                                                uint32_t arity,
                                                                edist_buf *result)
{
    (void)user;
    (void)args;
    (void)arity;
    (void)result;
    *null_ptr = 1;
    return 0;
}

static int abort_now(void *user, const edist_term_view *args, uint32_t arity,
                     edist_buf *result)
{
    (void)user;
    (void)args;
    (void)arity;
    (void)result;
    abort();
}

/* Spawn the export edist_test:function/0 and wait for the node to die. */
static int crash_mode(edist_runtime *rt, const char *function)
{
    edist_procid self;
    if (edist_proc_attach_thread(rt, 0, &self) != 0)
        return 3;
    uint8_t nil = EDIST_TAG_NIL;
    if (edist_spawn_export("edist_test", function, &nil, 1, NULL, NULL, NULL) != 0)
        return 3;
    receive_atom("never", 10000);
    fprintf(stderr, "%s did not kill the node\n", function);
    return 4;
}

int main(int argc, char **argv)
{
    /* The node is meant to die here: no core file. */
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    const char *mode = argc > 1 ? argv[1] : "recurse";
    edist_runtime_config cfg;
    edist_runtime_config_init(&cfg);
    cfg.node_name = "crashy@localhost";
    edist_runtime *rt;
    if (edist_runtime_start(&cfg, &rt) != 0) {
        fprintf(stderr, "runtime_start: %s\n", edist_last_error());
        return 2;
    }
    if (edist_export_function(rt, "edist_test", "big_frame", 0, big_frame, NULL) != 0 ||
        edist_export_function(rt, "edist_test", "null_deref", 0, null_deref, NULL) != 0 ||
        edist_export_function(rt, "edist_test", "abort_now", 0, abort_now, NULL) != 0)
        return 2;
    if (strcmp(mode, "recurse") == 0)
        return recurse_mode(rt);
    if (strcmp(mode, "big-frame") == 0)
        return big_frame_mode(rt);
    if (strcmp(mode, "null") == 0)
        return crash_mode(rt, "null_deref");
    if (strcmp(mode, "abort") == 0)
        return crash_mode(rt, "abort_now");
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
