/* SPDX-License-Identifier: Apache-2.0 */
/* The context switch on its own: runtime/ctx.c and ctx_<cpu>.S, nothing
 * else of the runtime. meson runs it natively; ctx_cross.sh cross-compiles
 * it for aarch64 and runs it under qemu, so it is plain C with its own
 * check macro (no cmocka in the cross sysroot).
 *
 * What it checks, each being something a wrong frame or a wrong switch
 * really breaks:
 *   start     a new context enters entry(arg) on its own stack, with the
 *             stack aligned as the ABI requires at a call, the frame-pointer
 *             chain ending there, and nothing written above top;
 *   pingpong  100000 switches between main and three contexts, in a chain
 *             (context to context) and as a star, each context keeping its
 *             state in locals (so in callee-saved registers);
 *   regs      every callee-saved register (and the FP control state) holds
 *             the value it had right before the switch when the context
 *             resumes, while the other side has loaded other values;
 *   fp        doubles live across switches give bit-exact results;
 *   deep      80 KiB of recursion on an mmap'd context stack, with a switch
 *             out of the deepest frame and back. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* MAP_ANONYMOUS, MAP_NORESERVE, MAP_STACK */
#endif
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime/runtime_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifdef TEST_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

/* ---- checks ------------------------------------------------------------- */

static unsigned checks_run;
static unsigned checks_failed;

static void check_at(bool ok, const char *what, int line)
{
    checks_run++;
    if (!ok) {
        checks_failed++;
        fprintf(stderr, "test_ctx.c:%d: check failed: %s\n", line, what);
    }
}

#define CHECK(cond) check_at((cond), #cond, __LINE__)

/* ---- stacks and contexts ------------------------------------------------ */

#define STACK_BYTES (1024u * 1024u)

typedef struct stack {
    uint8_t *map; /* guard page + usable bytes */
    size_t map_bytes;
    uint8_t *lo; /* usable: [lo, lo + bytes) */
    size_t bytes;
} stack;

typedef struct ctx {
    void *sp; /* saved stack pointer while not running */
    stack st; /* main_ctx: the thread's stack, for ASan only */
} ctx;

static ctx main_ctx;
static uint64_t switches;

static bool stack_new(stack *s)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    s->map_bytes = page + STACK_BYTES;
    s->map =
        mmap(NULL, s->map_bytes, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (s->map == MAP_FAILED)
        return false;
    /* A guard page, so an overrun faults instead of passing silently. */
    if (mprotect(s->map, page, PROT_NONE) != 0)
        return false;
    s->lo = s->map + page;
    s->bytes = STACK_BYTES;
    return true;
}

static void stack_free(stack *s)
{
#ifdef TEST_ASAN
    /* A context left suspended keeps its frames' redzones poisoned; a
     * later mapping at the same address must not inherit them. */
    if (s->lo)
        ASAN_UNPOISON_MEMORY_REGION(s->lo, s->bytes);
#endif
    if (s->map && s->map != MAP_FAILED)
        munmap(s->map, s->map_bytes);
    memset(s, 0, sizeof *s);
}

/* Gives c a fresh stack and the frame to run entry(arg) on it, the stack
 * ending top_offset bytes into it (deliberately not always aligned). */
static bool ctx_new(ctx *c, void (*entry)(void *), void *arg, size_t top_offset)
{
    if (!stack_new(&c->st))
        return false;
    c->sp = edi_ctx_init(c->st.lo + top_offset, entry, arg);
    return c->sp != NULL;
}

/* The first thing each entry does: ASan learns that the switch ended. The
 * program's first switch comes from main, which gives main's stack. */
static void ctx_started(void)
{
#ifdef TEST_ASAN
    const void *bottom = NULL;
    size_t size = 0;
    __sanitizer_finish_switch_fiber(NULL, &bottom, &size);
    if (!main_ctx.st.lo) {
        main_ctx.st.lo = (uint8_t *)(uintptr_t)bottom;
        main_ctx.st.bytes = size;
    }
#endif
}

/* Leave from (saving its state there) for to. */
static void ctx_to(ctx *from, ctx *to)
{
    switches++;
#ifdef TEST_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, to->st.lo, to->st.bytes);
    edi_ctx_switch(&from->sp, to->sp);
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#else
    edi_ctx_switch(&from->sp, to->sp);
#endif
}

/* ---- start: entry, argument, alignment, bounds -------------------------- */

#define CANARY_BYTES 64
#define CANARY_BYTE 0xC5

typedef struct start_probe {
    ctx c;
    void *arg_seen;
    uintptr_t cfa; /* the stack pointer at entry's call site */
    uintptr_t aligned_local;
    uintptr_t caller_frame; /* entry's caller's frame pointer */
    unsigned runs;
} start_probe;

static void start_entry(void *arg)
{
    ctx_started();
    start_probe *p = arg;
    /* The compiler aligns this assuming an ABI-aligned stack at entry. */
    _Alignas(16) volatile unsigned char local[16];
    local[0] = 1;
    p->arg_seen = arg;
    /* The CFA is the stack pointer before the call into entry: both ABIs
     * want it 16-byte aligned (x86-64: rsp + 8 at entry; aarch64: sp). */
    p->cfa = (uintptr_t)__builtin_dwarf_cfa();
    p->aligned_local = (uintptr_t)local;
    /* The saved frame pointer of the trampoline's frame: 0 ends the chain,
     * so backtraces and frame-pointer profilers stop here. */
#pragma GCC diagnostic push
    /* Safe here: the chain is our own, two frames deep. */
#pragma GCC diagnostic ignored "-Wframe-address"
    p->caller_frame = (uintptr_t)__builtin_frame_address(1);
#pragma GCC diagnostic pop
    for (;;) {
        p->runs++;
        ctx_to(&p->c, &main_ctx);
    }
}

static void test_start(void)
{
    /* Top aligned and not: edi_ctx_init rounds it down itself. */
    static const size_t misalign[] = {0, 1, 8, 15};
    for (size_t i = 0; i < sizeof misalign / sizeof misalign[0]; i++) {
        start_probe p;
        memset(&p, 0, sizeof p);
        size_t top_offset = STACK_BYTES - CANARY_BYTES - misalign[i];
        if (!ctx_new(&p.c, start_entry, &p, top_offset)) {
            CHECK(!"mmap of a context stack");
            return;
        }
        uint8_t *top = p.c.st.lo + top_offset;
        memset(top, CANARY_BYTE, (size_t)(p.c.st.lo + p.c.st.bytes - top));
        uintptr_t sp0 = (uintptr_t)p.c.sp;
        CHECK(sp0 > (uintptr_t)p.c.st.lo && sp0 < (uintptr_t)top);
        CHECK(sp0 % 16 == 0);

        ctx_to(&main_ctx, &p.c);
        CHECK(p.runs == 1);
        CHECK(p.arg_seen == &p);
        CHECK(p.cfa % 16 == 0);
        CHECK(p.aligned_local % 16 == 0);
        CHECK(p.cfa > (uintptr_t)p.c.st.lo && p.cfa <= (uintptr_t)top);
        CHECK(p.aligned_local >= (uintptr_t)p.c.st.lo &&
              p.aligned_local < (uintptr_t)top);
        CHECK(p.caller_frame == 0);
        bool canary_ok = true;
        for (uint8_t *b = top; b < p.c.st.lo + p.c.st.bytes; b++)
            canary_ok &= *b == CANARY_BYTE;
        CHECK(canary_ok);
        if (p.cfa % 16 != 0)
            fprintf(stderr, "  top %% 16 = %zu: cfa %% 16 = %u\n",
                    (size_t)((uintptr_t)top % 16), (unsigned)(p.cfa % 16));

        /* Resumed, it continues in its loop, not in a second start. */
        ctx_to(&main_ctx, &p.c);
        CHECK(p.runs == 2);
        stack_free(&p.c.st);
    }
}

/* ---- pingpong and fp: state in locals across many switches --------------- */

#define PP_CONTEXTS 3
#define PP_ROUNDS 25000 /* chain rounds 4 switches, star rounds 6: 125000 */

typedef struct pp {
    ctx c;
    ctx *next; /* where the context goes after its step; set by main */
    unsigned id;
    uint64_t n;
    uint64_t acc;
    double x;
} pp;

static uint64_t mix(uint64_t acc, uint64_t n)
{
    return (acc ^ n) * UINT64_C(0x9E3779B97F4A7C15) + (acc >> 29);
}

/* noinline: main's reference and the contexts run the same instructions,
 * so their results agree to the bit (no different contraction). */
static __attribute__((noinline)) double fp_step(double x, uint64_t n)
{
    return x * 1.0000001 + 1.0 / (double)(n + 3) - 0.25 * (x / (x + 7.0));
}

static void pp_entry(void *arg)
{
    ctx_started();
    pp *me = arg;
    uint64_t n = 0;
    uint64_t acc = me->id;
    double x = me->id + 0.5;
    for (;;) {
        n++;
        acc = mix(acc, n);
        x = fp_step(x, n);
        me->n = n;
        me->acc = acc;
        me->x = x;
        ctx_to(&me->c, me->next);
    }
}

static void test_pingpong(void)
{
    pp ctxs[PP_CONTEXTS];
    uint64_t ref_acc[PP_CONTEXTS];
    double ref_x[PP_CONTEXTS];
    memset(ctxs, 0, sizeof ctxs);
    for (unsigned i = 0; i < PP_CONTEXTS; i++) {
        ctxs[i].id = i;
        ref_acc[i] = i;
        ref_x[i] = i + 0.5;
        if (!ctx_new(&ctxs[i].c, pp_entry, &ctxs[i], STACK_BYTES)) {
            CHECK(!"mmap of a context stack");
            return;
        }
    }
    uint64_t before = switches;
    unsigned bad_n = 0, bad_acc = 0, bad_x = 0;
    for (uint64_t round = 1; round <= PP_ROUNDS; round++) {
        if (round % 2) {
            /* Chain: main -> 0 -> 1 -> 2 -> main, context to context as
             * the scheduler hands over. */
            for (unsigned i = 0; i < PP_CONTEXTS; i++)
                ctxs[i].next = i + 1 < PP_CONTEXTS ? &ctxs[i + 1].c : &main_ctx;
            ctx_to(&main_ctx, &ctxs[0].c);
        } else {
            /* Star: main -> i -> main, for each context. */
            for (unsigned i = 0; i < PP_CONTEXTS; i++) {
                ctxs[i].next = &main_ctx;
                ctx_to(&main_ctx, &ctxs[i].c);
            }
        }
        for (unsigned i = 0; i < PP_CONTEXTS; i++) {
            ref_acc[i] = mix(ref_acc[i], round);
            ref_x[i] = fp_step(ref_x[i], round);
            bad_n += ctxs[i].n != round;
            bad_acc += ctxs[i].acc != ref_acc[i];
            bad_x += memcmp(&ctxs[i].x, &ref_x[i], sizeof(double)) != 0;
        }
    }
    CHECK(bad_n == 0);
    CHECK(bad_acc == 0);
    CHECK(bad_x == 0);
    CHECK(switches - before >= 100000);
    for (unsigned i = 0; i < PP_CONTEXTS; i++) {
        CHECK(ctxs[i].n == PP_ROUNDS);
        stack_free(&ctxs[i].c.st);
    }
}

/* Eight doubles live across each switch: on aarch64 the compiler keeps
 * them in d8-d15, so a switch that loses one shows here. */
#define FP_STEPS 2000

typedef struct fp_ctx {
    ctx c;
    double seed;
    double out[8];
} fp_ctx;

static __attribute__((noinline)) void fp_run(double seed, double out[8],
                                             ctx *self, ctx *peer)
{
    double a = seed, b = seed * 2, c = seed * 3, d = seed * 5;
    double e = seed / 3, f = seed / 7, g = seed + 11, h = seed - 13;
    for (uint64_t n = 1; n <= FP_STEPS; n++) {
        a = fp_step(a, n);
        b = fp_step(b, n + 1) + a;
        c = fp_step(c, n + 2) - b * 0.5;
        d = fp_step(d, n + 3) + c / 3.0;
        e = fp_step(e, n + 4) - d * 0.125;
        f = fp_step(f, n + 5) + e / 9.0;
        g = fp_step(g, n + 6) - f * 0.75;
        h = fp_step(h, n + 7) + g / 5.0;
        if (self)
            ctx_to(self, peer);
    }
    double r[8] = {a, b, c, d, e, f, g, h};
    memcpy(out, r, sizeof r);
}

static void fp_entry(void *arg)
{
    ctx_started();
    fp_ctx *me = arg;
    fp_run(me->seed, me->out, &me->c, &main_ctx);
    for (;;)
        ctx_to(&me->c, &main_ctx);
}

static void test_fp(void)
{
    fp_ctx other;
    memset(&other, 0, sizeof other);
    other.seed = 1.75;
    if (!ctx_new(&other.c, fp_entry, &other, STACK_BYTES)) {
        CHECK(!"mmap of a context stack");
        return;
    }
    double ref_main[8], ref_other[8], got_main[8];
    fp_run(-2.5, ref_main, NULL, NULL);
    fp_run(1.75, ref_other, NULL, NULL);
    /* Main and the other context step in turn: each switch leaves one
     * set of eight live doubles for the other. */
    fp_run(-2.5, got_main, &main_ctx, &other.c);
    ctx_to(&main_ctx, &other.c); /* it leaves its loop, stores out */
    CHECK(memcmp(got_main, ref_main, sizeof ref_main) == 0);
    CHECK(memcmp(other.out, ref_other, sizeof ref_other) == 0);
    stack_free(&other.c.st);
}

/* ---- regs: callee-saved registers survive the switch --------------------- */

/* The register block an asm switch reads and writes; word indexes. */
#if defined(__x86_64__)
/* rbx rbp r12 r13 r14 r15; then MXCSR (low 32 bits) and the x87 control
 * word (bits 32-47) in one word each for in, out and the caller's own. */
enum {
    NGPR = 6,
    NFPR = 0,
    NCSR = 1,
    W_GPR_IN = 0,
    W_GPR_OUT = 6,
    W_CSR_IN = 12,
    W_CSR_OUT = 13,
    W_CSR_SAVED = 14,
    NWORDS = 15
};
static const char *const gpr_names[NGPR] = {"rbx", "rbp", "r12",
                                            "r13", "r14", "r15"};
static const char *const csr_names[NCSR] = {"mxcsr/x87cw"};
_Static_assert(W_GPR_OUT * 8 == 48 && W_CSR_IN * 8 == 96 &&
                   W_CSR_OUT * 8 == 104 && W_CSR_SAVED * 8 == 112,
               "the byte offsets in switch_with_regs's asm");
#elif defined(__aarch64__)
/* x19-x29, d8-d15; then FPCR and FPSR for in, out and the caller's own. */
enum {
    NGPR = 11,
    NFPR = 8,
    NCSR = 2,
    W_GPR_IN = 0,
    W_FPR_IN = 11,
    W_GPR_OUT = 19,
    W_FPR_OUT = 30,
    W_CSR_IN = 38,
    W_CSR_OUT = 40,
    W_CSR_SAVED = 42,
    NWORDS = 44
};
static const char *const gpr_names[NGPR] = {"x19", "x20", "x21", "x22",
                                            "x23", "x24", "x25", "x26",
                                            "x27", "x28", "x29"};
static const char *const csr_names[NCSR] = {"fpcr", "fpsr"};
_Static_assert(W_FPR_IN * 8 == 88 && W_GPR_OUT * 8 == 152 &&
                   W_FPR_OUT * 8 == 240 && W_CSR_IN * 8 == 304 &&
                   W_CSR_OUT * 8 == 320 && W_CSR_SAVED * 8 == 336,
               "the byte offsets in switch_with_regs's asm");
#endif

/* Switch from -> to with the callee-saved registers holding w's "in"
 * values at the call, and store what they hold right after the resume in
 * w's "out" words. All in one asm statement calling edi_ctx_switch
 * directly: a C wrapper in between would save and restore the registers
 * it uses itself and hide a switch that loses them. */
static void switch_with_regs(ctx *from, ctx *to, uint64_t *w)
{
    switches++;
#ifdef TEST_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, to->st.lo, to->st.bytes);
#endif
#if defined(__x86_64__)
    void **save = &from->sp;
    void *load = to->sp;
    /* rbp is not in the clobbers (the compiler may use it as the frame
     * pointer), so the asm keeps it on the stack itself, below the red
     * zone and with the stack 16-byte aligned at the call. Word offsets:
     * in 0-40, out 48-88, csr in 96, out 104, saved 112 (x87 CW at +4). */
    __asm__ volatile("leaq -128(%%rsp), %%rsp\n\t"
                     "movq %%rsp, %%rax\n\t"
                     "andq $-16, %%rsp\n\t"
                     "pushq %%rax\n\t"
                     "pushq %%rbp\n\t"
                     "pushq %%rdx\n\t"
                     "subq $8, %%rsp\n\t"
                     "stmxcsr 112(%%rdx)\n\t"
                     "fnstcw 116(%%rdx)\n\t"
                     "ldmxcsr 96(%%rdx)\n\t"
                     "fldcw 100(%%rdx)\n\t"
                     "movq 0(%%rdx), %%rbx\n\t"
                     "movq 8(%%rdx), %%rbp\n\t"
                     "movq 16(%%rdx), %%r12\n\t"
                     "movq 24(%%rdx), %%r13\n\t"
                     "movq 32(%%rdx), %%r14\n\t"
                     "movq 40(%%rdx), %%r15\n\t"
                     "call edi_ctx_switch\n\t"
                     "movq 8(%%rsp), %%rdx\n\t"
                     "movq %%rbx, 48(%%rdx)\n\t"
                     "movq %%rbp, 56(%%rdx)\n\t"
                     "movq %%r12, 64(%%rdx)\n\t"
                     "movq %%r13, 72(%%rdx)\n\t"
                     "movq %%r14, 80(%%rdx)\n\t"
                     "movq %%r15, 88(%%rdx)\n\t"
                     "stmxcsr 104(%%rdx)\n\t"
                     "fnstcw 108(%%rdx)\n\t"
                     "ldmxcsr 112(%%rdx)\n\t"
                     "fldcw 116(%%rdx)\n\t"
                     "addq $16, %%rsp\n\t"
                     "popq %%rbp\n\t"
                     "popq %%rsp\n\t"
                     "leaq 128(%%rsp), %%rsp\n\t"
                     : "+D"(save), "+S"(load), "+d"(w)
                     :
                     : "rax", "rcx", "r8", "r9", "r10", "r11", "rbx", "r12",
                       "r13", "r14", "r15", "xmm0", "xmm1", "xmm2", "xmm3",
                       "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
                       "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory",
                       "cc");
#elif defined(__aarch64__)
    register void **save __asm__("x0") = &from->sp;
    register void *load __asm__("x1") = to->sp;
    register uint64_t *words __asm__("x2") = w;
    /* x29 (frame pointer, not a legal clobber) and x30 (clobbered by bl)
     * are kept on the stack by the asm. Byte offsets: x in 0-80, d in
     * 88-144, x out 152-232, d out 240-296, fpcr/fpsr in 304/312, out
     * 320/328, saved 336/344. */
    __asm__ volatile(
        "sub sp, sp, #32\n\t"
        "stp x29, x30, [sp]\n\t"
        "str x2, [sp, #16]\n\t"
        "mrs x3, fpcr\n\t"
        "mrs x4, fpsr\n\t"
        "stp x3, x4, [x2, #336]\n\t"
        "ldp x3, x4, [x2, #304]\n\t"
        "msr fpcr, x3\n\t"
        "msr fpsr, x4\n\t"
        "ldp x19, x20, [x2, #0]\n\t"
        "ldp x21, x22, [x2, #16]\n\t"
        "ldp x23, x24, [x2, #32]\n\t"
        "ldp x25, x26, [x2, #48]\n\t"
        "ldp x27, x28, [x2, #64]\n\t"
        "ldr x29, [x2, #80]\n\t"
        "ldp d8, d9, [x2, #88]\n\t"
        "ldp d10, d11, [x2, #104]\n\t"
        "ldp d12, d13, [x2, #120]\n\t"
        "ldp d14, d15, [x2, #136]\n\t"
        "bl edi_ctx_switch\n\t"
        "ldr x2, [sp, #16]\n\t"
        "stp x19, x20, [x2, #152]\n\t"
        "stp x21, x22, [x2, #168]\n\t"
        "stp x23, x24, [x2, #184]\n\t"
        "stp x25, x26, [x2, #200]\n\t"
        "stp x27, x28, [x2, #216]\n\t"
        "str x29, [x2, #232]\n\t"
        "stp d8, d9, [x2, #240]\n\t"
        "stp d10, d11, [x2, #256]\n\t"
        "stp d12, d13, [x2, #272]\n\t"
        "stp d14, d15, [x2, #288]\n\t"
        "mrs x3, fpcr\n\t"
        "mrs x4, fpsr\n\t"
        "stp x3, x4, [x2, #320]\n\t"
        "ldp x3, x4, [x2, #336]\n\t"
        "msr fpcr, x3\n\t"
        "msr fpsr, x4\n\t"
        "ldp x29, x30, [sp]\n\t"
        "add sp, sp, #32\n\t"
        : "+r"(save), "+r"(load), "+r"(words)
        :
        : "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13",
          "x14", "x15", "x16", "x17", "x18", "x19", "x20", "x21", "x22", "x23",
          "x24", "x25", "x26", "x27", "x28", "v0", "v1", "v2", "v3", "v4", "v5",
          "v6", "v7", "v8", "v9", "v10", "v11", "v12", "v13", "v14", "v15",
          "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23", "v24", "v25",
          "v26", "v27", "v28", "v29", "v30", "v31", "memory", "cc");
#endif
#ifdef TEST_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
}

/* FP control and status values distinct per side, all exceptions masked
 * so that nothing traps. x86-64: MXCSR rounding toward zero + FZ / down +
 * DAZ / up, with different exception flags, and the x87 CW rounding and
 * precision. aarch64: FPCR RMode, FZ and DN; FPSR exception flags and QC. */
#if defined(__x86_64__)
static const uint64_t csr_patterns[3][NCSR] = {
    {UINT64_C(0x7F80) | UINT64_C(0x8000) | UINT64_C(0x21) |
     (UINT64_C(0x0C7F) << 32)},
    {UINT64_C(0x3F80) | UINT64_C(0x0040) | UINT64_C(0x04) |
     (UINT64_C(0x067F) << 32)},
    {UINT64_C(0x5F80) | (UINT64_C(0x027F) << 32)},
};
#elif defined(__aarch64__)
static const uint64_t csr_patterns[3][NCSR] = {
    {UINT64_C(0xC00000) | UINT64_C(0x1000000), UINT64_C(0x11)},
    {UINT64_C(0x400000) | UINT64_C(0x2000000), UINT64_C(0x8000002)},
    {UINT64_C(0x800000), UINT64_C(0x84)},
};
#endif

#define REGS_ROUNDS 2000

/* One side's values for one round: every register a different value,
 * different from every other side and round. */
static void regs_fill(uint64_t *w, unsigned side, uint64_t round)
{
    memset(w, 0, NWORDS * sizeof *w);
    for (unsigned r = 0; r < NGPR; r++)
        w[W_GPR_IN + r] = UINT64_C(0xA5A5000000000000) ^
                          ((uint64_t)side << 40) ^ ((uint64_t)r << 32) ^
                          (round * UINT64_C(0x10001));
#if defined(__aarch64__)
    for (unsigned r = 0; r < NFPR; r++)
        w[W_FPR_IN + r] = UINT64_C(0x5A5A000000000000) ^
                          ((uint64_t)side << 40) ^ ((uint64_t)(r + 8) << 32) ^
                          (round * UINT64_C(0x10001));
#endif
    for (unsigned r = 0; r < NCSR; r++)
        w[W_CSR_IN + r] = csr_patterns[side][r];
}

/* Count the registers that came back different; print the first few. */
static unsigned regs_compare(const uint64_t *w, unsigned side, uint64_t round)
{
    static unsigned printed;
    unsigned bad = 0;
    char name[16];
    for (unsigned r = 0; r < NGPR + NFPR + NCSR; r++) {
        uint64_t in, out;
        if (r < NGPR) {
            in = w[W_GPR_IN + r];
            out = w[W_GPR_OUT + r];
            snprintf(name, sizeof name, "%s", gpr_names[r]);
        } else if (r < NGPR + NFPR) {
#if defined(__aarch64__)
            in = w[W_FPR_IN + r - NGPR];
            out = w[W_FPR_OUT + r - NGPR];
            snprintf(name, sizeof name, "d%u", r - NGPR + 8);
#else
            continue;
#endif
        } else {
            in = w[W_CSR_IN + r - NGPR - NFPR];
            out = w[W_CSR_OUT + r - NGPR - NFPR];
            snprintf(name, sizeof name, "%s", csr_names[r - NGPR - NFPR]);
        }
        if (in != out) {
            bad++;
            if (printed++ < 8)
                fprintf(stderr,
                        "  side %u round %" PRIu64 ": %s was %#" PRIx64
                        ", now %#" PRIx64 "\n",
                        side, round, name, in, out);
        }
    }
    return bad;
}

typedef struct regs_ctx {
    ctx c;
    ctx *next;
    unsigned side;
    unsigned bad;
} regs_ctx;

static void regs_entry(void *arg)
{
    ctx_started();
    regs_ctx *me = arg;
    uint64_t w[NWORDS];
    for (uint64_t round = 1;; round++) {
        regs_fill(w, me->side, round);
        switch_with_regs(&me->c, me->next, w);
        me->bad += regs_compare(w, me->side, round);
    }
}

static void test_regs(void)
{
    /* main -> 1 -> 2 -> main: each side loads its own values before it
     * switches, so whatever a switch fails to restore shows the values of
     * the side that ran last. */
    regs_ctx ctxs[2];
    memset(ctxs, 0, sizeof ctxs);
    for (unsigned i = 0; i < 2; i++) {
        ctxs[i].side = i + 1;
        if (!ctx_new(&ctxs[i].c, regs_entry, &ctxs[i], STACK_BYTES)) {
            CHECK(!"mmap of a context stack");
            return;
        }
    }
    ctxs[0].next = &ctxs[1].c;
    ctxs[1].next = &main_ctx;
    /* Round 0 starts the contexts; only resumed switches are compared. */
    ctx_to(&main_ctx, &ctxs[0].c);
    uint64_t w[NWORDS];
    unsigned bad = 0;
    for (uint64_t round = 1; round <= REGS_ROUNDS; round++) {
        regs_fill(w, 0, round);
        switch_with_regs(&main_ctx, &ctxs[0].c, w);
        bad += regs_compare(w, 0, round);
    }
    CHECK(bad == 0);
    CHECK(ctxs[0].bad == 0);
    CHECK(ctxs[1].bad == 0);
    for (unsigned i = 0; i < 2; i++)
        stack_free(&ctxs[i].c.st);
}

/* ---- deep: recursion on a context stack --------------------------------- */

#define DEEP_FRAME_BYTES 1024
#define DEEP_DEPTH 80

typedef struct deep_ctx {
    ctx c;
    uintptr_t lowest; /* lowest frame address seen */
    uint64_t sum;
    bool done;
} deep_ctx;

static __attribute__((noinline)) uint64_t deep(unsigned depth, deep_ctx *me)
{
    volatile uint8_t frame[DEEP_FRAME_BYTES];
    for (size_t i = 0; i < sizeof frame; i++)
        frame[i] = (uint8_t)(depth + i);
    if ((uintptr_t)frame < me->lowest)
        me->lowest = (uintptr_t)frame;
    uint64_t sum = 0;
    if (depth == 0)
        ctx_to(&me->c, &main_ctx); /* out of the deepest frame, and back */
    else
        sum = deep(depth - 1, me);
    for (size_t i = 0; i < sizeof frame; i++)
        sum += frame[i];
    return sum;
}

static void deep_entry(void *arg)
{
    ctx_started();
    deep_ctx *me = arg;
    me->sum = deep(DEEP_DEPTH, me);
    me->done = true;
    for (;;)
        ctx_to(&me->c, &main_ctx);
}

/* Main's own frames in between, over the same values, must not disturb the
 * suspended ones. */
static __attribute__((noinline)) uint64_t deep_reference(void)
{
    uint64_t sum = 0;
    for (unsigned depth = 0; depth <= DEEP_DEPTH; depth++) {
        volatile uint8_t frame[DEEP_FRAME_BYTES];
        for (size_t i = 0; i < sizeof frame; i++)
            frame[i] = (uint8_t)(depth + i);
        for (size_t i = 0; i < sizeof frame; i++)
            sum += frame[i];
    }
    return sum;
}

static void test_deep(void)
{
    deep_ctx d;
    memset(&d, 0, sizeof d);
    d.lowest = UINTPTR_MAX;
    if (!ctx_new(&d.c, deep_entry, &d, STACK_BYTES)) {
        CHECK(!"mmap of a context stack");
        return;
    }
    ctx_to(&main_ctx, &d.c);
    CHECK(!d.done);
    uintptr_t top = (uintptr_t)(d.c.st.lo + d.c.st.bytes);
    CHECK(d.lowest >= (uintptr_t)d.c.st.lo && top - d.lowest >= 64 * 1024);
    uint64_t want = deep_reference();
    ctx_to(&main_ctx, &d.c);
    CHECK(d.done);
    CHECK(d.sum == want);
    stack_free(&d.c.st);
}

int main(void)
{
    test_start();
    test_pingpong();
    test_fp();
    test_regs();
    test_deep();
    printf("ctx: %u checks, %u failed\n", checks_run, checks_failed);
    return checks_failed ? 1 : 0;
}
