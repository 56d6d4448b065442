/* SPDX-License-Identifier: Apache-2.0 */
/* The common base (base/): errors with context, the monotonic clock,
 * big-endian bytes, the leveled logger and its rate limit. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/histogram.h"
#include "base/log.h"
#include "edist/error.h"

/* ---- errors with context -------------------------------------------------- */

/* Context goes in front of the detail a failed call left, once, whole. */
static void test_error_prefix(void **state)
{
    (void)state;
    edist_set_error(EDIST_EIO, "cannot reach port 1");
    assert_int_equal(edist_error_prefix(EDIST_EEXIST, "cannot register %s", "x"),
                     EDIST_EEXIST);
    assert_string_equal(edist_last_error(), "cannot register x: cannot reach port 1");
    assert_int_equal(edist_error_prefix(EDIST_EAGAIN, "node %d", 2), EDIST_EAGAIN);
    assert_string_equal(edist_last_error(),
                        "node 2: cannot register x: cannot reach port 1");
}

/* No detail before: the context alone, no dangling ": ". */
static void test_error_prefix_no_detail(void **state)
{
    (void)state;
    edist_clear_error();
    assert_int_equal(edist_error_prefix(EDIST_ENOMEM, "no room for %s", "y"),
                     EDIST_ENOMEM);
    assert_string_equal(edist_last_error(), "no room for y");
}

/* A line longer than the buffer keeps the context and cuts the old
 * detail's end; it stays terminated. */
static void test_error_prefix_long(void **state)
{
    (void)state;
    char big[2000];
    memset(big, 'd', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    edist_set_error(EDIST_EIO, "%s", big);
    size_t cap = strlen(edist_last_error()) + 1; /* the buffer's size */
    edist_error_prefix(EDIST_EIO, "ctx");
    const char *e = edist_last_error();
    assert_int_equal(strlen(e), cap - 1);
    assert_memory_equal(e, "ctx: ddd", 8);
    /* A context longer than the buffer: cut, no detail after it. */
    edist_error_prefix(EDIST_EIO, "%s", big);
    assert_int_equal(strlen(edist_last_error()), cap - 1);
    assert_null(strchr(edist_last_error(), ':'));
}

/* ---- clock -------------------------------------------------------------- */

/* One clock in two units: never goes back, and ms is ns truncated. */
static void test_clock(void **state)
{
    (void)state;
    uint64_t ns0 = edi_now_ns();
    uint64_t ms = edi_now_ms();
    uint64_t ns1 = edi_now_ns();
    assert_true(ns0 > 0);
    assert_true(ns1 >= ns0);
    assert_true(ms >= ns0 / 1000000u);
    assert_true(ms <= ns1 / 1000000u);
    for (int i = 0; i < 1000; i++) {
        uint64_t t = edi_now_ns();
        assert_true(t >= ns1);
        ns1 = t;
    }
}

/* ---- big-endian bytes ---------------------------------------------------- */

/* Most significant byte first, at any alignment, and back. */
static void test_big_endian(void **state)
{
    (void)state;
    uint8_t buf[16 + 8];
    for (size_t off = 0; off < 8; off++) {
        memset(buf, 0xEE, sizeof buf);
        edi_put_be16(buf + off, 0x0102);
        assert_memory_equal(buf + off, "\x01\x02", 2);
        assert_int_equal(buf[off + 2], 0xEE);
        assert_int_equal(edi_get_be16(buf + off), 0x0102);

        edi_put_be32(buf + off, 0x01020304u);
        assert_memory_equal(buf + off, "\x01\x02\x03\x04", 4);
        assert_int_equal(buf[off + 4], 0xEE);
        assert_int_equal(edi_get_be32(buf + off), 0x01020304u);

        edi_put_be64(buf + off, UINT64_C(0x0102030405060708));
        assert_memory_equal(buf + off, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
        assert_int_equal(buf[off + 8], 0xEE);
        assert_true(edi_get_be64(buf + off) == UINT64_C(0x0102030405060708));
    }
    /* The top bit survives (no sign extension anywhere). */
    edi_put_be16(buf, 0xFFFE);
    assert_int_equal(edi_get_be16(buf), 0xFFFE);
    edi_put_be32(buf, 0xFFFFFFFEu);
    assert_int_equal(edi_get_be32(buf), 0xFFFFFFFEu);
    edi_put_be64(buf, UINT64_MAX - 1);
    assert_true(edi_get_be64(buf) == UINT64_MAX - 1);
    assert_int_equal(buf[0], 0xFF);
    assert_int_equal(buf[7], 0xFE);
}

/* ---- logger ------------------------------------------------------------- */

typedef struct sink_seen {
    int lines;
    edist_log_level level;
    char line[2 * EDI_LOG_LINE_BYTES];
} sink_seen;

static void sink(void *user, edist_log_level level, const char *line)
{
    sink_seen *seen = user;
    seen->lines++;
    seen->level = level;
    snprintf(seen->line, sizeof seen->line, "%s", line);
}

/* Lines at or below the level reach the sink, with its user pointer, the
 * level and the formatted text; others do not. */
static void test_log_levels(void **state)
{
    (void)state;
    sink_seen seen = {0};
    edi_log log = {sink, &seen, EDIST_LOG_INFO};
    assert_true(edi_log_on(&log, EDIST_LOG_ERROR));
    assert_true(edi_log_on(&log, EDIST_LOG_INFO));
    assert_false(edi_log_on(&log, EDIST_LOG_DEBUG));
    edi_logf(&log, EDIST_LOG_WARNING, "peer %s: %d frames", "a@h", 3);
    assert_int_equal(seen.lines, 1);
    assert_int_equal(seen.level, EDIST_LOG_WARNING);
    assert_string_equal(seen.line, "peer a@h: 3 frames");
    edi_logf(&log, EDIST_LOG_DEBUG, "not this one");
    assert_int_equal(seen.lines, 1);
    edi_logf(&log, EDIST_LOG_INFO, "%s", "info");
    assert_int_equal(seen.lines, 2);
    assert_string_equal(seen.line, "info");
}

/* A zero logger (a layer built without a node) writes nothing. */
static void test_log_nowhere(void **state)
{
    (void)state;
    edi_log log = {0};
    assert_false(edi_log_on(&log, EDIST_LOG_ERROR));
    edi_logf(&log, EDIST_LOG_ERROR, "dropped %d", 1);
}

/* A line too long for the buffer is cut, terminated. */
static void test_log_long_line(void **state)
{
    (void)state;
    sink_seen seen = {0};
    edi_log log = {sink, &seen, EDIST_LOG_DEBUG};
    char big[EDI_LOG_LINE_BYTES + 100];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    edi_logf(&log, EDIST_LOG_DEBUG, "%s", big);
    assert_int_equal(seen.lines, 1);
    assert_int_equal(strlen(seen.line), EDI_LOG_LINE_BYTES - 1);
}

/* A burst, then one line per interval; a quiet spell refills the burst. */
static void test_ratelimit(void **state)
{
    (void)state;
    edi_ratelimit r = {0};
    uint64_t t = 10000;
    int taken = 0;
    for (int i = 0; i < 10; i++)
        taken += edi_ratelimit_take(&r, t, 3, 1000);
    assert_int_equal(taken, 3);
    assert_int_equal(edi_ratelimit_take(&r, t + 999, 3, 1000), 0);
    assert_int_equal(edi_ratelimit_take(&r, t + 1000, 3, 1000), 1);
    assert_int_equal(edi_ratelimit_take(&r, t + 1000, 3, 1000), 0);
    taken = 0;
    for (int i = 0; i < 10; i++)
        taken += edi_ratelimit_take(&r, t + 100000, 3, 1000);
    assert_int_equal(taken, 3);
}

/* The histogram: exact below 16, within 6.25% above, quantiles from the
 * bucket that holds them, never above the largest value. */
static void test_histogram(void **state)
{
    (void)state;
    static edi_hist h;
    edi_hist_init(&h);
    assert_int_equal(edi_hist_quantile(&h, 0.5), 0);
    for (uint64_t v = 0; v < 16; v++)
        assert_int_equal(edi_hist_upper(edi_hist_index(v)), v);
    /* every value lands in a bucket whose upper end is within 6.25% */
    for (uint64_t v = 16; v < ((uint64_t)1 << 40); v = v * 3 / 2 + 7) {
        uint64_t u = edi_hist_upper(edi_hist_index(v));
        assert_true(u >= v);
        assert_true(u - v <= v / 16);
        assert_true(edi_hist_index(v) < EDI_HIST_BUCKETS);
    }
    assert_int_equal(edi_hist_index(UINT64_MAX), EDI_HIST_BUCKETS - 1);
    /* 1..1000 us in ns: p50 ~500 us, p99 ~990 us, max 1000 us */
    for (uint64_t us = 1; us <= 1000; us++)
        edi_hist_record(&h, us * 1000);
    assert_int_equal(atomic_load(&h.count), 1000);
    uint64_t p50 = edi_hist_quantile(&h, 0.5), p99 = edi_hist_quantile(&h, 0.99);
    assert_true(p50 >= 500000 && p50 <= 500000 + 500000 / 16);
    assert_true(p99 >= 990000 && p99 <= 1000000);
    assert_int_equal(edi_hist_quantile(&h, 1.0), 1000000);
    assert_int_equal(atomic_load(&h.max), 1000000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_prefix),
        cmocka_unit_test(test_error_prefix_no_detail),
        cmocka_unit_test(test_error_prefix_long),
        cmocka_unit_test(test_clock),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_big_endian),
        cmocka_unit_test(test_log_levels),
        cmocka_unit_test(test_log_nowhere),
        cmocka_unit_test(test_log_long_line),
        cmocka_unit_test(test_ratelimit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
