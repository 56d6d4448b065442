/* SPDX-License-Identifier: Apache-2.0 */
/* Stacks of green processes.
 *
 * One mmap per stack would not scale: a million processes are a million
 * mappings, and a guard page made with mprotect splits each into two
 * VMAs, while Linux allows 65530 by default (vm.max_map_count). So stacks
 * are carved from arenas of many stacks (one reserved mapping each,
 * MAP_NORESERVE, committed by the kernel page by page as touched), and the
 * guard page under each stack is made with MADV_GUARD_INSTALL (Linux 6.13+:
 * a guard marker in the page table, no VMA split). Older kernels get
 * mprotect guards while a budget of mappings lasts, then a canary word at
 * the bottom of the stack, checked at every switch.
 *
 * Free stacks are reused last-in first-out, so a recycled stack's pages
 * are still committed and hot. Beyond STACK_HOT_MAX free stacks, a freed
 * stack gives its memory back (MADV_DONTNEED) and waits in a cold list.
 *
 * The guard is one page (x86-64) or 64 KiB (aarch64): what compilers
 * assume under -fstack-clash-protection, which makes a large frame touch
 * every page on its way down instead of stepping over the guard into the
 * next process's stack.
 *
 * A guard page hit is fatal: the fault handler (on an alternate signal
 * stack, since the faulting one is full) writes one line saying which
 * process overran how large a stack, and the node dies with the signal.
 * Killing just the process is not safe: it may hold locks (malloc's) or
 * half-updated state. The same handler names the process and export on
 * any other crash in a green process. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime/runtime_internal.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#if defined(__SANITIZE_ADDRESS__)
#define EDI_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EDI_ASAN 1
#endif
#endif

#ifdef EDI_ASAN
#include <sanitizer/asan_interface.h>
#endif

#define STACK_MIN_BYTES (16u * 1024u)
#define STACK_DEFAULT_BYTES (64u * 1024u)
#define STACK_ARENA_TARGET_BYTES (64u * 1024u * 1024u)
#define STACK_ARENA_MIN_STACKS 16u
#define STACK_HOT_MAX 4096u
/* mprotect guards (old kernels) each cost a mapping; stay well below the
 * default vm.max_map_count of 65530. */
#define STACK_MPROTECT_GUARD_BUDGET 16384u
#define STACK_SIZE_CLASSES 8
#define STACK_CANARY UINT64_C(0xED157AC4CA7A4711)
/* What compilers assume of the guard under -fstack-clash-protection: on
 * x86-64 they probe every 4 KiB (the call's return address push counts as
 * a probe); aarch64 gcc by default assumes a 64 KiB guard and leaves
 * smaller frames unprobed. A guard such a frame can step over protects
 * nothing. */
#if defined(__aarch64__)
#define STACK_GUARD_MIN_BYTES (64u * 1024u)
#else
#define STACK_GUARD_MIN_BYTES (4u * 1024u)
#endif
#define ALTSTACK_BYTES (64u * 1024u)
#define ARENA_REGISTRY_MAX 8192u

enum { GUARD_UNKNOWN = 0, GUARD_MADVISE, GUARD_MPROTECT };

/* Every arena of every runtime, for the fault handler (which must not
 * lock): entries are written under registry_mu, read racily. */
typedef struct arena_entry {
    _Atomic uintptr_t base;
    _Atomic uintptr_t end;
    size_t slot_bytes;
    size_t guard_bytes;
} arena_entry;

static arena_entry registry[ARENA_REGISTRY_MAX];
static _Atomic uint32_t registry_len;
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int guard_mode;
static _Atomic uint32_t mprotect_guards;

typedef struct arena {
    uint8_t *base;
    size_t bytes;
    uint32_t registry_index;
} arena;

typedef struct size_class {
    size_t usable_bytes;      /* stack size */
    size_t slot_bytes;        /* guard + stack */
    uint32_t per_arena;
    uint8_t *carve_base;      /* current arena */
    uint32_t carved;          /* slots handed out of it */
    uint8_t **hot;            /* free, still committed (LIFO) */
    uint32_t hot_len, hot_cap;
    uint8_t **cold;           /* free, memory given back */
    uint32_t cold_len, cold_cap;
} size_class;

struct edi_stacks {
    size_t default_bytes;
    size_t page_bytes;
    size_t guard_bytes;       /* pages, at least STACK_GUARD_MIN_BYTES */
    size_class classes[STACK_SIZE_CLASSES];
    uint32_t nclasses;
    arena *arenas;
    uint32_t narenas, arenas_cap;
    uint64_t reserved, guarded;
};

static size_t page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096u;
}

static size_t round_up(size_t v, size_t to)
{
    return (v + to - 1) / to * to;
}

/* Does this kernel have guard markers? Probed once per program. */
static int probe_guard_mode(size_t page)
{
    int mode = atomic_load(&guard_mode);
    if (mode != GUARD_UNKNOWN)
        return mode;
    mode = GUARD_MPROTECT;
    void *p = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED) {
        if (madvise(p, page, MADV_GUARD_INSTALL) == 0)
            mode = GUARD_MADVISE;
        munmap(p, 2 * page);
    }
    atomic_store(&guard_mode, mode);
    return mode;
}

int edi_stacks_new(size_t default_bytes, edi_stacks **out)
{
    *out = NULL;
    edi_stacks *s = calloc(1, sizeof *s);
    if (!s)
        return edist_set_error(EDIST_ENOMEM, "stacks: no memory");
    s->page_bytes = page_size();
    if (default_bytes == 0)
        default_bytes = STACK_DEFAULT_BYTES;
    if (default_bytes < STACK_MIN_BYTES)
        default_bytes = STACK_MIN_BYTES;
    s->default_bytes = round_up(default_bytes, s->page_bytes);
    s->guard_bytes = round_up(STACK_GUARD_MIN_BYTES, s->page_bytes);
    probe_guard_mode(s->page_bytes);
    *out = s;
    return 0;
}

size_t edi_stacks_default_bytes(const edi_stacks *s)
{
    return s->default_bytes;
}

static void registry_drop(uint32_t i)
{
    pthread_mutex_lock(&registry_mu);
    atomic_store(&registry[i].base, 0);
    atomic_store(&registry[i].end, 0);
    pthread_mutex_unlock(&registry_mu);
}

void edi_stacks_free(edi_stacks *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; i < s->narenas; i++) {
        if (s->arenas[i].registry_index != UINT32_MAX)
            registry_drop(s->arenas[i].registry_index);
        munmap(s->arenas[i].base, s->arenas[i].bytes);
    }
    for (uint32_t c = 0; c < s->nclasses; c++) {
        free(s->classes[c].hot);
        free(s->classes[c].cold);
    }
    free(s->arenas);
    free(s);
}

static size_class *class_for(edi_stacks *s, size_t bytes)
{
    for (uint32_t c = 0; c < s->nclasses; c++)
        if (s->classes[c].usable_bytes == bytes)
            return &s->classes[c];
    if (s->nclasses == STACK_SIZE_CLASSES)
        return NULL;
    size_class *k = &s->classes[s->nclasses++];
    memset(k, 0, sizeof *k);
    k->usable_bytes = bytes;
    k->slot_bytes = bytes + s->guard_bytes;
    size_t n = STACK_ARENA_TARGET_BYTES / k->slot_bytes;
    k->per_arena = n < STACK_ARENA_MIN_STACKS ? STACK_ARENA_MIN_STACKS : (uint32_t)n;
    k->carved = k->per_arena; /* no arena yet */
    return k;
}

static int new_arena(edi_stacks *s, size_class *k)
{
    if (s->narenas == s->arenas_cap) {
        uint32_t cap = s->arenas_cap ? s->arenas_cap * 2 : 16;
        arena *a = realloc(s->arenas, cap * sizeof *a);
        if (!a)
            return edist_set_error(EDIST_ENOMEM, "stacks: no memory");
        s->arenas = a;
        s->arenas_cap = cap;
    }
    size_t bytes = k->slot_bytes * k->per_arena;
    void *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return edist_set_error(EDIST_ENOMEM, "stacks: cannot reserve %zu bytes: %s", bytes,
                               strerror(errno));
    arena *a = &s->arenas[s->narenas++];
    a->base = base;
    a->bytes = bytes;
    a->registry_index = UINT32_MAX;
    pthread_mutex_lock(&registry_mu);
    uint32_t n = atomic_load(&registry_len);
    uint32_t i = 0;
    while (i < n && atomic_load(&registry[i].end) != 0)
        i++;
    if (i < ARENA_REGISTRY_MAX) {
        registry[i].slot_bytes = k->slot_bytes;
        registry[i].guard_bytes = s->guard_bytes;
        atomic_store(&registry[i].base, (uintptr_t)base);
        atomic_store(&registry[i].end, (uintptr_t)base + bytes);
        if (i == n)
            atomic_store(&registry_len, n + 1);
        a->registry_index = i;
    }
    pthread_mutex_unlock(&registry_mu);
    k->carve_base = base;
    k->carved = 0;
    return 0;
}

static int push(uint8_t ***v, uint32_t *len, uint32_t *cap, uint8_t *p)
{
    if (*len == *cap) {
        uint32_t c = *cap ? *cap * 2 : 256;
        uint8_t **n = realloc(*v, c * sizeof *n);
        if (!n)
            return EDIST_ENOMEM;
        *v = n;
        *cap = c;
    }
    (*v)[(*len)++] = p;
    return 0;
}

int edi_stack_get(edi_stacks *s, size_t bytes, uint8_t **lo, size_t *size, bool *guarded)
{
    if (bytes == 0)
        bytes = s->default_bytes;
    else if (bytes < STACK_MIN_BYTES)
        bytes = STACK_MIN_BYTES;
    bytes = round_up(bytes, s->page_bytes);
    size_class *k = class_for(s, bytes);
    if (!k)
        return edist_set_error(EDIST_EINVAL, "stacks: at most %d distinct stack sizes",
                               STACK_SIZE_CLASSES);
    uintptr_t tagged;
    if (k->hot_len > 0) {
        tagged = (uintptr_t)k->hot[--k->hot_len];
    } else if (k->cold_len > 0) {
        tagged = (uintptr_t)k->cold[--k->cold_len];
    } else {
        if (k->carved == k->per_arena) {
            int rc = new_arena(s, k);
            if (rc)
                return rc;
        }
        uint8_t *slot = k->carve_base + (size_t)k->carved++ * k->slot_bytes;
        s->reserved++;
        int mode = atomic_load(&guard_mode);
        bool ok = false;
        if (mode == GUARD_MADVISE) {
            ok = madvise(slot, s->guard_bytes, MADV_GUARD_INSTALL) == 0;
        } else if (atomic_fetch_add(&mprotect_guards, 1) < STACK_MPROTECT_GUARD_BUDGET) {
            ok = mprotect(slot, s->guard_bytes, PROT_NONE) == 0;
        }
        tagged = (uintptr_t)(slot + s->guard_bytes);
        if (ok) {
            s->guarded++;
        } else {
            /* No guard: a canary in the page below the stack tells an
             * overrun after the fact (checked at each switch). Free
             * lists tag such stacks with the low bit. */
            uint64_t c = STACK_CANARY;
            memcpy(slot + s->guard_bytes - sizeof c, &c, sizeof c);
            tagged |= 1u;
        }
    }
    *lo = (uint8_t *)(tagged & ~(uintptr_t)1);
    *size = bytes;
    *guarded = (tagged & 1u) == 0;
#ifdef EDI_ASAN
    /* A previous process may have left this stack mid-call (it exited or
     * was killed): its frames' redzones are still poisoned. */
    ASAN_UNPOISON_MEMORY_REGION(*lo, bytes);
#endif
    return 0;
}

bool edi_stack_canary_ok(const uint8_t *lo)
{
    uint64_t c;
    memcpy(&c, lo - sizeof c, sizeof c);
    return c == STACK_CANARY;
}

void edi_stack_put(edi_stacks *s, uint8_t *lo, size_t size, bool guarded)
{
    size_class *k = class_for(s, size);
    if (!k)
        return; /* cannot happen: the class was made at get */
    uint8_t *tagged = (uint8_t *)((uintptr_t)lo | (guarded ? 0u : 1u));
    if (k->hot_len < STACK_HOT_MAX && push(&k->hot, &k->hot_len, &k->hot_cap, tagged) == 0)
        return;
    madvise(lo, size, MADV_DONTNEED);
    if (push(&k->cold, &k->cold_len, &k->cold_cap, tagged) != 0) {
        /* Out of memory for the list: the stack stays reserved, unused. */
    }
}

void edi_stacks_stats(const edi_stacks *s, uint64_t *reserved, uint64_t *free_count,
                      uint64_t *guarded)
{
    uint64_t f = 0;
    for (uint32_t c = 0; c < s->nclasses; c++)
        f += s->classes[c].hot_len + s->classes[c].cold_len;
    *reserved = s->reserved;
    *free_count = f;
    *guarded = s->guarded;
}

/* ---- fatal signals -------------------------------------------------------
 * Code run in a green process (exports above all) runs unprotected inside
 * the node: a crash there cannot be contained, since the process may hold
 * a libc lock or half-updated runtime state. What the handler can do is
 * say who crashed: one line naming the node, the process and the export
 * it runs, then hand the signal on to what was installed before us (the
 * default action, or a sanitizer's or the application's handler), so the
 * exit status and core dump show the original signal. Everything here is
 * async-signal-safe: write(2), no stdio, no malloc. */

static pthread_once_t handler_once = PTHREAD_ONCE_INIT;
static pthread_key_t altstack_key;

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define N_FATAL_SIGNALS (sizeof fatal_signals / sizeof fatal_signals[0])
static struct sigaction old_actions[N_FATAL_SIGNALS];
/* One line per node death, even if several threads crash at once or an
 * abort() follows a line already written. */
static atomic_flag fatal_reported = ATOMIC_FLAG_INIT;

#define FATAL_LINE_BYTES 4096u

typedef struct line_buf {
    char text[FATAL_LINE_BYTES];
    size_t len;
} line_buf;

static void put(line_buf *b, const char *s)
{
    while (*s && b->len < FATAL_LINE_BYTES - 1) /* room for the newline */
        b->text[b->len++] = *s++;
}

static void put_u64(line_buf *b, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    char digits[24];
    for (size_t i = 0; i < n; i++)
        digits[i] = tmp[n - 1 - i];
    digits[n] = '\0';
    put(b, digits);
}

static void put_hex(line_buf *b, uintptr_t v)
{
    char digits[2 + 2 * sizeof v + 1];
    size_t n = sizeof digits - 1;
    digits[n] = '\0';
    do {
        digits[--n] = "0123456789abcdef"[v & 15u];
        v >>= 4;
    } while (v);
    digits[--n] = 'x';
    digits[--n] = '0';
    put(b, digits + n);
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    default: return "a fatal signal";
    }
}

/* "edist: node N: " */
static void put_node(line_buf *b, const edi_proc *p)
{
    put(b, "edist: ");
    if (p && p->rt) {
        put(b, "node ");
        put(b, p->rt->node_name);
        put(b, ": ");
    }
}

/* "process <0.I.S> running M:F/A" */
static void put_process(line_buf *b, const edi_proc *p)
{
    if (!p) {
        put(b, "a green process");
        return;
    }
    put(b, "process <0.");
    put_u64(b, p->id);
    put(b, ".");
    put_u64(b, p->serial);
    put(b, "> running ");
    const edi_export_run *run = p->running_export;
    if (run) {
        put(b, run->module);
        put(b, ":");
        put(b, run->function);
        put(b, "/");
        put_u64(b, run->arity);
    } else if (p->kind == EDI_PROC_GREEN) {
        put(b, "the C function at ");
        put_hex(b, (uintptr_t)p->fn);
    } else {
        put(b, "an attached thread");
    }
}

static void put_overflow(line_buf *b, const edi_proc *p, size_t stack_bytes)
{
    put_node(b, p);
    put(b, "stack overflow: ");
    put_process(b, p);
    put(b, " overran its ");
    put_u64(b, stack_bytes);
    put(b, "-byte stack");
}

static void write_line(line_buf *b)
{
    b->text[b->len++] = '\n';
    const char *at = b->text;
    size_t left = b->len;
    while (left > 0) {
        ssize_t w = write(2, at, left);
        if (w <= 0)
            return;
        at += w;
        left -= (size_t)w;
    }
}

_Noreturn void edi_stack_canary_overflow(const edi_proc *p)
{
    if (!atomic_flag_test_and_set(&fatal_reported)) {
        line_buf b;
        b.len = 0;
        put_overflow(&b, p, p->stack_bytes);
        put(&b, " (canary clobbered; no guard page was available); give it a larger "
                "stack_bytes. The node aborts.");
        write_line(&b);
    }
    abort();
}

static bool in_guard(uintptr_t a, size_t *stack_bytes)
{
    uint32_t n = atomic_load(&registry_len);
    for (uint32_t i = 0; i < n; i++) {
        uintptr_t b = atomic_load_explicit(&registry[i].base, memory_order_relaxed);
        uintptr_t e = atomic_load_explicit(&registry[i].end, memory_order_relaxed);
        if (a < b || a >= e)
            continue;
        size_t off = (size_t)(a - b) % registry[i].slot_bytes;
        if (off < registry[i].guard_bytes) {
            *stack_bytes = registry[i].slot_bytes - registry[i].guard_bytes;
            return true;
        }
    }
    return false;
}

/* Hand the signal to the disposition found at install. */
static void chain(const struct sigaction *old, int sig, siginfo_t *si, void *uc)
{
    if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
        old->sa_sigaction(sig, si, uc);
    } else if (old->sa_handler == SIG_IGN) {
        /* A fault returns to the faulting instruction, and the kernel
         * then forces the default action. */
        sigaction(sig, old, NULL);
    } else if (old->sa_handler == SIG_DFL) {
        /* Pending until this handler returns (the signal is blocked
         * meanwhile), then fatal with the original signal. */
        sigaction(sig, old, NULL);
        raise(sig);
    } else {
        old->sa_handler(sig);
    }
}

static void on_fatal_signal(int sig, siginfo_t *si, void *uc)
{
    int saved_errno = errno;
    size_t k = 0;
    while (k < N_FATAL_SIGNALS - 1 && fatal_signals[k] != sig)
        k++;
    edi_proc *p = edi_current;
    /* Raised by this program (a fault, abort(), raise()) rather than sent
     * by someone else with kill: only then is the running process to
     * blame. */
    bool from_here = si && (si->si_code > 0 || si->si_pid == getpid());
    size_t stack_bytes = 0;
    bool overflow = from_here && si->si_code > 0 && (sig == SIGSEGV || sig == SIGBUS) &&
                    in_guard((uintptr_t)si->si_addr, &stack_bytes);
    bool in_process = from_here && p && p->kind == EDI_PROC_GREEN;
    if (!overflow && !in_process) {
        errno = saved_errno;
        chain(&old_actions[k], sig, si, uc);
        return;
    }
    if (!atomic_flag_test_and_set(&fatal_reported)) {
        line_buf b;
        b.len = 0;
        if (overflow) {
            put_overflow(&b, p, stack_bytes);
            put(&b, " (guard page hit); give it a larger stack_bytes. The node dies.");
        } else {
            put_node(&b, p);
            put_process(&b, p);
            put(&b, " crashed with ");
            put(&b, signal_name(sig));
            if (si->si_code > 0 && sig != SIGABRT) {
                put(&b, " at address ");
                put_hex(&b, (uintptr_t)si->si_addr);
            }
            put(&b, "; code run in a process is not isolated from the node, so the node "
                    "dies.");
        }
        write_line(&b);
    }
    errno = saved_errno;
    chain(&old_actions[k], sig, si, uc);
    /* A handler before us returned: the process cannot go on. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    raise(sig);
}

static void free_altstack(void *p)
{
    stack_t ss = {.ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    free(p);
}

static void install_handler(void)
{
    pthread_key_create(&altstack_key, free_altstack);
    /* Under AddressSanitizer its handler is the one installed before us:
     * it gets the signal after our line and reports it. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fatal_signal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (size_t k = 0; k < N_FATAL_SIGNALS; k++)
        sigaction(fatal_signals[k], &sa, &old_actions[k]);
}

void edi_stack_thread_init(void)
{
    pthread_once(&handler_once, install_handler);
#ifndef EDI_ASAN
    /* Under AddressSanitizer, each thread has its alternate stack (which
     * it unmaps at thread exit, so it must stay its own). */
    if (pthread_getspecific(altstack_key))
        return;
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE) &&
        cur.ss_size >= ALTSTACK_BYTES)
        return; /* the application set one up: use it */
    void *mem = malloc(ALTSTACK_BYTES);
    if (!mem)
        return;
    stack_t ss = {.ss_sp = mem, .ss_size = ALTSTACK_BYTES, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        free(mem);
        return;
    }
    pthread_setspecific(altstack_key, mem);
#endif
}
