/* SPDX-License-Identifier: Apache-2.0 */
/* The lock-free rings (dataplane/ring): SPSC and MPSC on one thread (empty,
 * full, wrap-around, records read in place, bad arguments), then under two
 * threads and more: every record arrives, none twice, each producer's in
 * the order it pushed them, through a ring small enough to be full and
 * empty all the time. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dataplane/ring/mpsc.h"
#include "dataplane/ring/spsc.h"
#include "edist/error.h"

typedef struct rec {
    uint32_t producer;
    uint32_t pad;
    uint64_t seq;
    uint8_t fill[16]; /* a record bigger than a word: torn copies show */
} rec;

static void rec_make(rec *r, uint32_t producer, uint64_t seq)
{
    memset(r, 0, sizeof *r);
    r->producer = producer;
    r->seq = seq;
    memset(r->fill, (int)(seq & 0xff), sizeof r->fill);
}

static void rec_check(const rec *r)
{
    for (size_t i = 0; i < sizeof r->fill; i++)
        assert_int_equal(r->fill[i], (uint8_t)(r->seq & 0xff));
}

/* ---- SPSC, one thread ------------------------------------------------------ */

static void spsc_basics(void **state)
{
    (void)state;
    edi_ring_spsc *r;
    assert_int_equal(edi_ring_spsc_new(3, sizeof(rec), &r), EDIST_EINVAL);
    assert_int_equal(edi_ring_spsc_new(8, 0, &r), EDIST_EINVAL);
    assert_int_equal(edi_ring_spsc_new(8, sizeof(rec), &r), 0);
    assert_int_equal(edi_ring_spsc_capacity(r), 8);
    rec x;
    assert_false(edi_ring_spsc_pop(r, &x));
    assert_int_equal(edi_ring_spsc_readable(r), 0);
    /* Around the ring several times, filling it each time. */
    uint64_t next_in = 0, next_out = 0;
    for (int lap = 0; lap < 5; lap++) {
        while (edi_ring_spsc_room(r) > 0) {
            rec_make(&x, 0, next_in++);
            assert_true(edi_ring_spsc_push(r, &x));
        }
        rec_make(&x, 0, 999);
        assert_false(edi_ring_spsc_push(r, &x)); /* full: nothing written */
        assert_int_equal(edi_ring_spsc_readable(r), 8);
        /* In place: look at three, take two; the third stays at the head. */
        for (uint32_t i = 0; i < 3; i++)
            assert_int_equal(((rec *)edi_ring_spsc_peek(r, i))->seq, next_out + i);
        edi_ring_spsc_consume(r, 2);
        next_out += 2;
        assert_int_equal(edi_ring_spsc_room(r), 2);
        while (edi_ring_spsc_pop(r, &x)) {
            assert_int_equal(x.seq, next_out++);
            rec_check(&x);
        }
        assert_int_equal(next_in, next_out);
    }
    edi_ring_spsc_free(r);
    edi_ring_spsc_free(NULL);
}

/* ---- SPSC, two threads ----------------------------------------------------- */

#define SPSC_STRESS_RECORDS 2000000u

typedef struct spsc_job {
    edi_ring_spsc *r;
    uint64_t full; /* pushes that found the ring full */
} spsc_job;

static void *spsc_producer(void *arg)
{
    spsc_job *j = arg;
    rec x;
    for (uint64_t i = 0; i < SPSC_STRESS_RECORDS; i++) {
        rec_make(&x, 1, i);
        while (!edi_ring_spsc_push(j->r, &x)) {
            j->full++;
            sched_yield();
        }
    }
    return NULL;
}

static void spsc_two_threads(void **state)
{
    (void)state;
    spsc_job j = {0};
    /* Small: the producer finds it full and the consumer empty often. */
    assert_int_equal(edi_ring_spsc_new(64, sizeof(rec), &j.r), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, spsc_producer, &j), 0);
    uint64_t expect = 0, batches = 0;
    while (expect < SPSC_STRESS_RECORDS) {
        uint32_t n = edi_ring_spsc_readable(j.r);
        if (n == 0) {
            sched_yield();
            continue;
        }
        /* In batches, read in place: the way the shards drain. */
        for (uint32_t i = 0; i < n; i++) {
            const rec *x = edi_ring_spsc_peek(j.r, i);
            if (x->seq != expect || x->producer != 1)
                fail_msg("record %llu arrived where %llu was due",
                         (unsigned long long)x->seq, (unsigned long long)expect);
            rec_check(x);
            expect++;
        }
        edi_ring_spsc_consume(j.r, n);
        batches++;
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    rec x;
    assert_false(edi_ring_spsc_pop(j.r, &x)); /* nothing extra */
    assert_int_equal(expect, SPSC_STRESS_RECORDS);
    assert_true(batches > 0);
    edi_ring_spsc_free(j.r);
}

/* ---- MPSC, one thread ---------------------------------------------------------- */

static void mpsc_basics(void **state)
{
    (void)state;
    edi_ring_mpsc *r;
    assert_int_equal(edi_ring_mpsc_new(6, sizeof(rec), &r), EDIST_EINVAL);
    assert_int_equal(edi_ring_mpsc_new(4, 5000, &r), EDIST_EINVAL);
    assert_int_equal(edi_ring_mpsc_new(4, sizeof(rec), &r), 0);
    assert_int_equal(edi_ring_mpsc_capacity(r), 4);
    rec x;
    assert_null(edi_ring_mpsc_peek(r));
    assert_false(edi_ring_mpsc_pop(r, &x));
    uint64_t in = 0, out = 0;
    for (int lap = 0; lap < 6; lap++) {
        for (int i = 0; i < 4; i++) {
            rec_make(&x, 0, in++);
            assert_true(edi_ring_mpsc_push(r, &x));
        }
        rec_make(&x, 0, 777);
        assert_false(edi_ring_mpsc_push(r, &x)); /* full */
        const rec *head = edi_ring_mpsc_peek(r);
        assert_non_null(head);
        assert_int_equal(head->seq, out);
        edi_ring_mpsc_consume(r);
        out++;
        rec_make(&x, 0, in++); /* one slot free again */
        assert_true(edi_ring_mpsc_push(r, &x));
        while (edi_ring_mpsc_pop(r, &x)) {
            assert_int_equal(x.seq, out++);
            rec_check(&x);
        }
        assert_int_equal(in, out);
    }
    edi_ring_mpsc_free(r);
    edi_ring_mpsc_free(NULL);
}

/* ---- MPSC, several producers ------------------------------------------------------ */

#define MPSC_PRODUCERS 3u
#define MPSC_RECORDS_EACH 400000u

typedef struct mpsc_job {
    edi_ring_mpsc *r;
    uint32_t id;
} mpsc_job;

static void *mpsc_producer(void *arg)
{
    mpsc_job *j = arg;
    rec x;
    for (uint64_t i = 0; i < MPSC_RECORDS_EACH; i++) {
        rec_make(&x, j->id, i);
        while (!edi_ring_mpsc_push(j->r, &x))
            sched_yield();
    }
    return NULL;
}

static void mpsc_producers(void **state)
{
    (void)state;
    edi_ring_mpsc *r;
    assert_int_equal(edi_ring_mpsc_new(32, sizeof(rec), &r), 0);
    pthread_t t[MPSC_PRODUCERS];
    mpsc_job jobs[MPSC_PRODUCERS];
    for (uint32_t i = 0; i < MPSC_PRODUCERS; i++) {
        jobs[i] = (mpsc_job){r, i};
        assert_int_equal(pthread_create(&t[i], NULL, mpsc_producer, &jobs[i]), 0);
    }
    uint64_t next[MPSC_PRODUCERS] = {0};
    uint64_t total = 0;
    while (total < (uint64_t)MPSC_PRODUCERS * MPSC_RECORDS_EACH) {
        rec x;
        if (!edi_ring_mpsc_pop(r, &x)) {
            sched_yield();
            continue;
        }
        assert_true(x.producer < MPSC_PRODUCERS);
        if (x.seq != next[x.producer])
            fail_msg("producer %u: record %llu arrived where %llu was due", x.producer,
                     (unsigned long long)x.seq, (unsigned long long)next[x.producer]);
        rec_check(&x);
        next[x.producer]++;
        total++;
    }
    for (uint32_t i = 0; i < MPSC_PRODUCERS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(next[i], MPSC_RECORDS_EACH);
    }
    rec x;
    assert_false(edi_ring_mpsc_pop(r, &x));
    edi_ring_mpsc_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spsc_basics),
        cmocka_unit_test(spsc_two_threads),
        cmocka_unit_test(mpsc_basics),
        cmocka_unit_test(mpsc_producers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
