/* SPDX-License-Identifier: Apache-2.0 */
/* Context switch for green processes, x86-64 System V.
 *
 * void edi_ctx_switch(void **save_sp, void *load_sp)
 *   Saves the callee-saved state of the caller on its stack (rbp, rbx,
 *   r12-r15, then the MXCSR and the x87 control word: the ABI says both are
 *   callee-saved "control bits"), stores the stack pointer in *save_sp,
 *   loads load_sp and restores the same frame from there. Everything else
 *   is caller-saved, so the C compiler has already spilled it.
 *
 * Frame at a saved stack pointer sp (what edi_ctx_init in ctx.c builds
 * for a new process):
 *   [sp+0]  MXCSR (4 bytes), [sp+4] x87 control word (2 bytes), 2 unused
 *   [sp+8]  r15   [sp+16] r14   [sp+24] r13   [sp+32] r12
 *   [sp+40] rbx   [sp+48] rbp   [sp+56] return address
 *
 * edi_ctx_trampoline: where a new process "returns" to on its first switch:
 * calls r13(r12) with the stack 16-byte aligned at the call, as the ABI
 * requires; the callee never returns. */

#if defined(__CET__) && (__CET__ & 1)
#define EDI_ENDBR endbr64
#else
#define EDI_ENDBR
#endif

    .text
    .globl edi_ctx_switch
    .hidden edi_ctx_switch
    .type edi_ctx_switch, @function
    .p2align 4
edi_ctx_switch:
    .cfi_startproc
    EDI_ENDBR
    pushq %rbp
    .cfi_adjust_cfa_offset 8
    pushq %rbx
    .cfi_adjust_cfa_offset 8
    pushq %r12
    .cfi_adjust_cfa_offset 8
    pushq %r13
    .cfi_adjust_cfa_offset 8
    pushq %r14
    .cfi_adjust_cfa_offset 8
    pushq %r15
    .cfi_adjust_cfa_offset 8
    subq $8, %rsp
    .cfi_adjust_cfa_offset 8
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    /* From here on we run on the other context's stack. */
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .cfi_endproc
    .size edi_ctx_switch, .-edi_ctx_switch

    .globl edi_ctx_trampoline
    .hidden edi_ctx_trampoline
    .type edi_ctx_trampoline, @function
    .p2align 4
edi_ctx_trampoline:
    .cfi_startproc
    /* Outermost frame: debuggers and unwinders stop here. */
    .cfi_undefined rip
    EDI_ENDBR
    movq %r12, %rdi
    callq *%r13
    ud2
    .cfi_endproc
    .size edi_ctx_trampoline, .-edi_ctx_trampoline

    .section .note.GNU-stack,"",@progbits
