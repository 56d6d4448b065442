/* SPDX-License-Identifier: Apache-2.0 */
/* Context switch for green processes, AArch64 (AAPCS64).
 *
 * void edi_ctx_switch(void **save_sp, void *load_sp)
 *   Saves the callee-saved registers x19-x28, the frame pointer x29, the
 *   link register x30 and the low halves d8-d15 of v8-v15 on the caller's
 *   stack, stores sp in *save_sp, loads load_sp and restores the same frame
 *   from there, returning through the restored x30.
 *
 * Frame at a saved stack pointer sp (160 bytes, 16-byte aligned; what
 * edi_ctx_init in sched.c builds for a new process):
 *   [sp+0]  x19 x20   [sp+16] x21 x22   [sp+32] x23 x24   [sp+48] x25 x26
 *   [sp+64] x27 x28   [sp+80] x29 x30   [sp+96] d8 d9     [sp+112] d10 d11
 *   [sp+128] d12 d13  [sp+144] d14 d15
 *
 * edi_ctx_trampoline: where a new process "returns" to on its first switch:
 * calls x20(x19); the callee never returns. */

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
#define EDI_BTI_C hint #34
#else
#define EDI_BTI_C
#endif

    .text
    .globl edi_ctx_switch
    .hidden edi_ctx_switch
    .type edi_ctx_switch, %function
    .p2align 4
edi_ctx_switch:
    .cfi_startproc
    EDI_BTI_C
    sub sp, sp, #160
    .cfi_adjust_cfa_offset 160
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mov x2, sp
    str x2, [x0]
    /* From here on we run on the other context's stack. */
    mov sp, x1
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    add sp, sp, #160
    ret
    .cfi_endproc
    .size edi_ctx_switch, .-edi_ctx_switch

    .globl edi_ctx_trampoline
    .hidden edi_ctx_trampoline
    .type edi_ctx_trampoline, %function
    .p2align 4
edi_ctx_trampoline:
    .cfi_startproc
    /* Outermost frame: debuggers and unwinders stop here. */
    .cfi_undefined x30
    EDI_BTI_C
    mov x29, #0
    mov x0, x19
    blr x20
    brk #0
    .cfi_endproc
    .size edi_ctx_trampoline, .-edi_ctx_trampoline

    .section .note.GNU-stack,"",%progbits
