/* SPDX-License-Identifier: Apache-2.0 */
/* Helper of test_proc: a green process recurses without end on a default
 * (64 KiB) stack. The guard page must stop it with a clear line on stderr
 * and abort(); reaching the end of main is a failure. */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "edist/edist.h"

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

int main(void)
{
    edist_runtime *rt;
    if (edist_runtime_start(NULL, &rt) != 0) {
        fprintf(stderr, "runtime_start: %s\n", edist_last_error());
        return 2;
    }
    edist_procid pid;
    if (edist_runtime_spawn(rt, overflow, NULL, NULL, &pid) != 0)
        return 3;
    sleep(10);
    fprintf(stderr, "no overflow detected\n");
    return 4;
}
