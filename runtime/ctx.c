/* SPDX-License-Identifier: Apache-2.0 */
/* The initial frame of a green process's context, per CPU: the half of
 * the context switch written in C. Apart from the scheduler so that ctx.c
 * and ctx_<cpu>.S build and link alone (libc only, no liburing, no
 * OpenSSL): tests/runtime/test_ctx.c checks the switch on its own, natively
 * and for aarch64 under qemu (tests/runtime/ctx_cross.sh). */
#include <string.h>

#include "runtime/runtime_internal.h"

void *edi_ctx_init(uint8_t *top, void (*entry)(void *), void *arg)
{
    top = (uint8_t *)((uintptr_t)top & ~(uintptr_t)15);
#if defined(__x86_64__)
    /* See the frame layout in ctx_x86_64.S. 16 zero bytes stay above the
     * frame; after the final ret of the switch rsp = top - 16, 16-byte
     * aligned, as the trampoline's call needs. */
    uint64_t *sp = (uint64_t *)(top - 16 - 64);
    memset(sp, 0, 16 + 64);
    /* MXCSR default (all exceptions masked, round to nearest) and the x87
     * control word default (extended precision, all masked). */
    sp[0] = UINT64_C(0x1F80) | (UINT64_C(0x037F) << 32);
    sp[3] = (uint64_t)(uintptr_t)entry; /* r13 */
    sp[4] = (uint64_t)(uintptr_t)arg;   /* r12 */
    sp[7] = (uint64_t)(uintptr_t)edi_ctx_trampoline;
    return sp;
#elif defined(__aarch64__)
    /* See the frame layout in ctx_aarch64.S. After the switch sp = top,
     * 16-byte aligned as AAPCS64 requires everywhere. x29 = 0 ends the
     * frame chain. FPCR = FPSR = 0: round to nearest, no flush-to-zero,
     * no traps, no flags (a new thread's state, like the x86-64 defaults). */
    uint64_t *sp = (uint64_t *)(top - 176);
    memset(sp, 0, 176);
    sp[0] = (uint64_t)(uintptr_t)arg;                 /* x19 */
    sp[1] = (uint64_t)(uintptr_t)entry;               /* x20 */
    sp[11] = (uint64_t)(uintptr_t)edi_ctx_trampoline; /* x30 */
    return sp;
#else
#error "edist: green processes need a context switch for this CPU (x86-64, aarch64)"
#endif
}
