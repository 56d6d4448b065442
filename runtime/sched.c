/* SPDX-License-Identifier: Apache-2.0 */
/* The scheduler of a shard: runs green processes on the shard's loop.
 *
 * Processes run to completion: a process keeps the thread until it blocks
 * in receive, yields or exits. The run queue is FIFO. When a process
 * blocks, the scheduler switches straight to the next runnable process
 * (one context switch per hand-over, not two through a scheduler frame);
 * it returns to its own stack only to tear down a process that ended (a
 * stack cannot be released while it is in use), when the queue is empty,
 * or when the slice budget of this loop iteration is spent.
 *
 * The scheduler runs as a zero-delay timer of the loop ("kick"): making a
 * process runnable from outside a run (a network delivery, a timeout, a
 * request from another thread) arms it, and a run that ends with work left
 * (budget spent) re-arms it, so the loop polls its sockets between runs
 * and never sleeps while processes are runnable.
 *
 * Receive timeouts use the loop's timer heap, with the edi_timer living in
 * the blocked receive's stack frame: no allocation, no per-process timer
 * memory, and an idle process without a timeout costs nothing. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define EDI_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EDI_ASAN 1
#endif
#endif

#ifdef EDI_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

/* Process slices per loop iteration before the loop polls again. */
#define SCHED_BUDGET 4096

/* initial-exec: one %fs-relative access, also from the shared library
 * (no __tls_get_addr call on every send and receive). */
__attribute__((tls_model("initial-exec"))) _Thread_local edi_proc *edi_current;
static __attribute__((tls_model("initial-exec"))) _Thread_local int sched_budget;
static _Thread_local bool thread_ready;

/* Switch from the running context (saved in *save) to load. to_lo/to_size:
 * the stack we go to (for ASan's fiber tracking); dying: the stack we
 * leave is never resumed. */
static inline void ctx_switch(void **save, void *load, const void *to_lo, size_t to_size,
                              bool dying)
{
#ifdef EDI_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(dying ? NULL : &fake, to_lo, to_size);
    edi_ctx_switch(save, load);
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#else
    (void)to_lo;
    (void)to_size;
    (void)dying;
    edi_ctx_switch(save, load);
#endif
}

static void check_stack(edi_proc *p)
{
    if (p->canary && !edi_stack_canary_ok(p->stack_lo))
        edi_stack_canary_overflow(p);
}

/* ---- run queue -------------------------------------------------------------------- */

static inline void runq_push(edi_sched *s, edi_proc *p)
{
    p->runq_next = NULL;
    p->in_runq = 1;
    if (s->runq_tail)
        s->runq_tail->runq_next = p;
    else
        s->runq_head = p;
    s->runq_tail = p;
}

/* The next process to run; drops the ones that died while queued. */
static inline edi_proc *runq_pop(edi_rt *rt)
{
    edi_sched *s = &rt->sched;
    for (;;) {
        edi_proc *p = s->runq_head;
        if (!p)
            return NULL;
        s->runq_head = p->runq_next;
        if (!s->runq_head)
            s->runq_tail = NULL;
        p->in_runq = 0;
        if (p->state == EDI_ST_RUNNABLE)
            return p;
        if (p->state == EDI_ST_DEAD)
            edi_proc_release(rt, p);
        /* EXITING: its teardown (queued) releases it. */
    }
}

void edi_sched_init(edi_rt *rt)
{
    memset(&rt->sched, 0, sizeof rt->sched);
    edi_timer_init(&rt->sched.kick);
}

static void sched_run(edi_loop *loop, edi_timer *t, void *arg);

void edi_sched_kick(edi_rt *rt)
{
    edi_sched *s = &rt->sched;
    if (s->in_run || s->stopping || edi_timer_armed(&s->kick))
        return;
    edi_loop_timer_start(rt->loop, &s->kick, 0, 0, sched_run, rt);
}

void edi_sched_make_runnable(edi_rt *rt, edi_proc *p)
{
    p->state = EDI_ST_RUNNABLE;
    if (!p->in_runq)
        runq_push(&rt->sched, p);
    if (!rt->sched.in_run)
        edi_sched_kick(rt);
}

/* Leave process p (state already set) for the next runnable process or
 * the scheduler; returns when p runs again. */
static void switch_out(edi_rt *rt, edi_proc *p)
{
    edi_sched *s = &rt->sched;
    check_stack(p);
    edi_proc *next = NULL;
    if (sched_budget > 0 && !s->dying_head && !s->stopping)
        next = runq_pop(rt);
    EDI_COUNT_ADD(rt->switches, 1);
    if (next == p) {
        p->state = EDI_ST_RUNNING;
        sched_budget--;
        return;
    }
    if (next) {
        sched_budget--;
        next->state = EDI_ST_RUNNING;
        edi_current = next;
        ctx_switch(&p->sp, next->sp, next->stack_lo, next->stack_bytes, false);
    } else {
        edi_current = NULL;
        ctx_switch(&p->sp, s->sp, s->asan_bottom, s->asan_size, false);
    }
    /* Resumed: whoever switched here set edi_current and our state. */
}

void edi_sched_block(edi_rt *rt, edi_proc *p)
{
    p->state = EDI_ST_WAITING;
    switch_out(rt, p);
}

void edi_sched_yield(edi_rt *rt, edi_proc *p)
{
    p->state = EDI_ST_RUNNABLE;
    runq_push(&rt->sched, p);
    switch_out(rt, p);
}

void edi_sched_yield_to_loop(edi_rt *rt, edi_proc *p)
{
    sched_budget = 0; /* this run ends: the loop iterates, then kicks again */
    edi_sched_yield(rt, p);
}

void edi_sched_exit_current(edi_rt *rt, edi_proc *p)
{
    edi_sched *s = &rt->sched;
    check_stack(p);
    /* The teardown (links, monitors, the stack itself) runs on the
     * scheduler's stack: p's is released there. */
    edi_current = NULL;
    EDI_COUNT_ADD(rt->switches, 1);
    ctx_switch(&p->sp, s->sp, s->asan_bottom, s->asan_size, true);
    abort(); /* never resumed */
}

void edi_sched_kill(edi_rt *rt, edi_proc *p, edist_term_view reason)
{
    if (p->state == EDI_ST_EXITING || p->state == EDI_ST_DEAD)
        return;
    edi_sched *s = &rt->sched;
    if (!edi_reason_static(reason) && reason.len > 0) {
        uint8_t *r = malloc(reason.len);
        if (r) {
            memcpy(r, reason.ptr, reason.len);
            p->exit_reason.ptr = r;
            p->exit_reason.len = reason.len;
            p->reason_owned = 1;
        } else {
            /* Out of memory: the process still ends, with a reason we
             * can always give. */
            p->exit_reason = EDIST_REASON_KILLED;
            p->reason_owned = 0;
        }
    } else {
        p->exit_reason = reason;
        p->reason_owned = 0;
    }
    p->state = EDI_ST_EXITING;
    p->dying_next = NULL;
    if (s->dying_tail)
        s->dying_tail->dying_next = p;
    else
        s->dying_head = p;
    s->dying_tail = p;
    if (!s->in_run)
        edi_sched_kick(rt);
}

void edi_sched_reap(edi_rt *rt)
{
    edi_sched *s = &rt->sched;
    edi_proc *p;
    while ((p = s->dying_head) != NULL) {
        s->dying_head = p->dying_next;
        if (!s->dying_head)
            s->dying_tail = NULL;
        edi_teardown(rt, p);
    }
}

static void scheduler_stack_bounds(edi_sched *s)
{
    pthread_attr_t attr;
    void *addr = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &addr, &size);
        pthread_attr_destroy(&attr);
    }
    s->asan_bottom = addr;
    s->asan_size = size;
}

static void sched_run(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    edi_rt *rt = arg;
    edi_sched *s = &rt->sched;
    if (!thread_ready) {
        edi_stack_thread_init();
        thread_ready = true;
    }
    if (!s->asan_bottom)
        scheduler_stack_bounds(s);
    s->in_run = true;
    sched_budget = SCHED_BUDGET;
    rt->yield_due = false; /* asked for outside a process's send */
    edi_sched_reap(rt);
    while (sched_budget > 0 && !s->stopping) {
        edi_proc *p = runq_pop(rt);
        if (!p)
            break;
        sched_budget--;
        p->state = EDI_ST_RUNNING;
        edi_current = p;
        EDI_COUNT_ADD(rt->switches, 1);
        ctx_switch(&s->sp, p->sp, p->stack_lo, p->stack_bytes, false);
        /* Back on the scheduler's stack: some process blocked with
         * nothing else to run, spent the budget, or ended. */
        edi_current = NULL;
        edi_sched_reap(rt);
    }
    s->in_run = false;
    if (s->runq_head && !s->stopping)
        edi_sched_kick(rt);
}

void edi_sched_stop_all(edi_rt *rt)
{
    edi_sched *s = &rt->sched;
    s->stopping = true;
    if (edi_timer_armed(&s->kick))
        edi_loop_timer_cancel(rt->loop, &s->kick);
}
