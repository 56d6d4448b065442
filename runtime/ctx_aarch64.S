/* SPDX-License-Identifier: Apache-2.0 */
/* Context switch for green processes, AArch64 (AAPCS64).
 *
 * void edi_ctx_switch(void **save_sp, void *load_sp)
 *   Saves the callee-saved registers x19-x28, the frame pointer x29, the
 *   link register x30 and the low halves d8-d15 of v8-v15 on the caller's
 *   stack, then FPCR and FPSR, stores sp in *save_sp, loads load_sp and
 *   restores the same frame from there, returning through the restored x30.
 *   AAPCS64 makes FPCR/FPSR thread-global rather than callee-saved; they
 *   are saved anyway so that, as on x86-64 (MXCSR, x87 control word), a
 *   process's rounding mode, flush-to-zero and exception flags are its own
 *   and do not leak into the processes sharing its thread.
 *
 * Frame at a saved stack pointer sp (176 bytes, 16-byte aligned; what
 * edi_ctx_init in ctx.c builds for a new process):
 *   [sp+0]  x19 x20   [sp+16] x21 x22   [sp+32] x23 x24   [sp+48] x25 x26
 *   [sp+64] x27 x28   [sp+80] x29 x30   [sp+96] d8 d9     [sp+112] d10 d11
 *   [sp+128] d12 d13  [sp+144] d14 d15  [sp+160] FPCR FPSR
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
    sub sp, sp, #176
    .cfi_adjust_cfa_offset 176
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
    mrs x2, fpcr
    mrs x3, fpsr
    stp x2, x3, [sp, #160]
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
    /* Write FPCR/FPSR only when they differ: an FPCR write can stall the
     * pipeline on some cores, and most switches change neither. */
    ldp x2, x3, [sp, #160]
    mrs x4, fpcr
    cmp x4, x2
    b.eq 1f
    msr fpcr, x2
1:  mrs x4, fpsr
    cmp x4, x3
    b.eq 2f
    msr fpsr, x3
2:  add sp, sp, #176
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

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
/* The linker marks an executable or library BTI (its pages then enforce
 * landing pads) only if every input object says it has them; the compiler
 * emits this note for C files, an assembly file must do it itself. Only
 * BTI is claimed: the x30 saved in a switch frame is not PAC-signed. */
    .pushsection .note.gnu.property, "a", %note
    .p2align 3
    .word 4          /* n_namesz: "GNU" */
    .word 16         /* n_descsz: one property, padded to 8 */
    .word 5          /* n_type: NT_GNU_PROPERTY_TYPE_0 */
    .asciz "GNU"
    .word 0xc0000000 /* pr_type: GNU_PROPERTY_AARCH64_FEATURE_1_AND */
    .word 4          /* pr_datasz */
    .word 1          /* GNU_PROPERTY_AARCH64_FEATURE_1_BTI */
    .word 0          /* pad */
    .popsection
#endif
