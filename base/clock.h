/* SPDX-License-Identifier: Apache-2.0 */
/* The one monotonic clock: every deadline, timeout, rate limit and
 * measurement in edist reads it. Any thread; async-signal-safe
 * (clock_gettime is). Inline: the shard loop reads it every iteration. */
#ifndef EDI_BASE_CLOCK_H
#define EDI_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds (from an arbitrary start). */
static inline uint64_t edi_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The same clock in milliseconds. */
static inline uint64_t edi_now_ms(void)
{
    return edi_now_ns() / 1000000u;
}

/* A spin-wait hint to the CPU (a busy loop's pause between two looks):
 * kinder to the sibling hyperthread and to power. */
static inline void edi_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
