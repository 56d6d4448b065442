/* SPDX-License-Identifier: Apache-2.0 */
/* The edist link protocol (dataplane/link/link.h) between two links in one
 * thread on a simulated clock: streams of numbered messages through wires
 * that drop, duplicate, reorder and delay frames; 16 MiB messages; the
 * send buffer's bound; a dead peer; bad frames; the NAK and timeout paths
 * alone; a closed window. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/bytes.h"
#include "link_sim.h"

/* ---- a receiver that checks numbered messages --------------------------- */

typedef struct peer {
    uint64_t expected; /* next message number */
    uint64_t got, ticks, bad, in_place, big;
    bool writable;
    int writable_calls, dead_calls, dead_reason;
    uint64_t dead_at;
    sim *s;
    const uint8_t *big_pattern;
    size_t big_len;
} peer;

/* Message i: [u32 i][i % 29 bytes of (i + j)]. */
static size_t msg_len(uint64_t i)
{
    return 4 + (size_t)(i % 29);
}

static void msg_fill(uint64_t i, uint8_t *p)
{
    edi_put_be32(p, (uint32_t)i);
    for (size_t j = 4; j < msg_len(i); j++)
        p[j] = (uint8_t)(i + j);
}

static void on_message(void *user, const edi_frame *m)
{
    peer *p = user;
    if (m->len == 0) {
        p->ticks++;
        return;
    }
    const uint8_t *base = edi_rxbuf_data(m->rxbuf);
    if (m->data < base || m->data + m->len > base + edi_rxbuf_cap(m->rxbuf))
        p->bad++;
    if (m->len >= 4 && edi_get_be32(m->data) == 0xB16B16u) {
        if (m->len != p->big_len || memcmp(m->data, p->big_pattern, m->len))
            p->bad++;
        p->big++;
        p->got++;
        return;
    }
    uint8_t want[64];
    if (m->len < 4 || edi_get_be32(m->data) != (uint32_t)p->expected) {
        p->bad++;
        return;
    }
    msg_fill(p->expected, want);
    if (m->len != msg_len(p->expected) || memcmp(m->data, want, m->len) != 0)
        p->bad++;
    /* a message within one frame is a view into that frame's buffer */
    if (edi_rxbuf_cap(m->rxbuf) != m->len)
        p->in_place++;
    p->expected++;
    p->got++;
}

static void on_writable(void *user)
{
    peer *p = user;
    p->writable = true;
    p->writable_calls++;
}

static void on_dead(void *user, int reason)
{
    peer *p = user;
    p->dead_calls++;
    p->dead_reason = reason;
    p->dead_at = p->s != NULL ? p->s->now : 0;
}

static const edi_rlink_callbacks peer_cb = {on_message, on_writable, on_dead};

typedef struct pair {
    sim s;
    peer pa, pb;
    edi_rlink_config cfg;
} pair;

/* Set by a test: the pairs it opens carry their data by reference to the
 * sender's ring (link_sim.h's by_ref), as a memif zero-copy client does. */
static bool g_by_ref;

static void pair_open(pair *p, uint64_t seed, uint32_t ppm, size_t max_frame,
                      size_t send_buffer, uint32_t window)
{
    memset(p, 0, sizeof(*p));
    sim_wire_init(&p->s, &p->s.ab, seed, ppm, max_frame);
    sim_wire_init(&p->s, &p->s.ba, seed * 31 + 7, ppm, max_frame);
    p->s.ab.by_ref = p->s.ba.by_ref = g_by_ref;
    p->s.now = 1000000;
    p->pa.s = p->pb.s = &p->s;
    edi_rlink_config_default(&p->cfg);
    p->cfg.token = 0x1234567890abcdefull;
    p->cfg.send_buffer_bytes = send_buffer;
    p->cfg.recv_window_bytes = window;
    edi_rlink_medium ma = wire_medium(&p->s.ab), mb = wire_medium(&p->s.ba);
    assert_int_equal(
        edi_rlink_new(&p->cfg, &ma, &peer_cb, &p->pa, p->s.now, &p->s.a), 0);
    assert_int_equal(
        edi_rlink_new(&p->cfg, &mb, &peer_cb, &p->pb, p->s.now, &p->s.b), 0);
}

static void pair_close(pair *p)
{
    edi_rlink_free(p->s.a);
    edi_rlink_free(p->s.b);
    wire_fini(&p->s.ab);
    wire_fini(&p->s.ba);
}

/* Appends messages from *next up to n while the buffer takes them. */
static void fill(edi_rlink *l, uint64_t *next, uint64_t n)
{
    uint8_t m[64];
    while (*next < n) {
        msg_fill(*next, m);
        int rc = edi_rlink_send(l, m, 4, m + 4, msg_len(*next) - 4);
        if (rc == EDIST_EAGAIN)
            return;
        assert_int_equal(rc, 0);
        (*next)++;
    }
}

/* Drops frames of a type (at an offset, or the n-th), for the repair
 * paths one by one. */
typedef struct drop_rule {
    uint8_t type;
    uint64_t seq; /* drop the first frame of type at this offset */
    bool any_seq;
    int skip; /* matching frames let through first */
    int left;
} drop_rule;

static bool drop_filter(sim_wire *w, uint64_t nth, const uint8_t *f, size_t len)
{
    (void)nth;
    drop_rule *r = w->filter_user;
    edi_rlink_hdr h;
    if (r->left <= 0 || edi_rlink_hdr_decode(f, len, &h) != EDI_RLINK_OK)
        return false;
    if (h.type != r->type || (!r->any_seq && h.seq != r->seq))
        return false;
    if (r->skip > 0) {
        r->skip--;
        return false;
    }
    r->left--;
    return true;
}

/* Runs until b got n messages and a's buffer is empty; returns the
 * simulated time that took. */
static uint64_t stream(pair *p, uint64_t n)
{
    uint64_t next = 0, start = p->s.now, last = start;
    p->s.wake = &p->pa.writable;
    while (p->pb.got < n || edi_rlink_unacked_bytes(p->s.a) > 0) {
        p->pa.writable = false;
        fill(p->s.a, &next, n);
        last = p->s.now;
        sim_step(&p->s);
        assert_false(edi_rlink_dead(p->s.a));
        assert_false(edi_rlink_dead(p->s.b));
        /* simulated: 20% of faults take ~150 ms */
        assert_true(p->s.now - start < 10000000000ull);
    }
    assert_int_equal(p->pb.bad, 0);
    assert_int_equal(p->pb.got, n);
    assert_int_equal(p->pb.expected, n);
    return last - start;
}

#define N_MESSAGES 1000000u

static void lossy_stream(uint32_t ppm, uint64_t seed, size_t frame)
{
    pair p;
    pair_open(&p, seed, ppm, frame, 256u << 10, 256u << 10);
    uint64_t took_ns = stream(&p, N_MESSAGES);
    /* a few more steps: nothing more arrives, nothing is held */
    for (int i = 0; i < 100; i++)
        sim_step(&p.s);
    assert_int_equal(p.pb.got, N_MESSAGES);
    edi_rlink_stats sa, sb;
    edi_rlink_get_stats(p.s.a, &sa);
    edi_rlink_get_stats(p.s.b, &sb);
    print_message(
        "ppm %u frame %zu: %.3f ms simulated, a: frames %llu "
        "retransmits %llu rto %llu naks_received %llu stalls %llu "
        "srtt %llu ns; b: naks %llu dup %llu ooo %llu in place "
        "%llu\n",
        ppm, frame, (double)took_ns / 1e6,
        (unsigned long long)sa.data_frames_out,
        (unsigned long long)sa.retransmits, (unsigned long long)sa.rto_expired,
        (unsigned long long)sa.naks_received,
        (unsigned long long)sa.window_stalls, (unsigned long long)sa.srtt_ns,
        (unsigned long long)sb.naks_sent, (unsigned long long)sb.duplicates,
        (unsigned long long)sb.out_of_order, (unsigned long long)p.pb.in_place);
    assert_int_equal(sb.messages_in, N_MESSAGES);
    assert_int_equal(sa.messages_out, N_MESSAGES);
    assert_int_equal(sb.held_now, 0);
    assert_int_equal(sa.bad_frames + sb.bad_frames, 0);
    assert_int_equal(sb.bytes_in, sa.bytes_out);
    assert_true(sa.rtt_samples > 0);
    if (g_by_ref)
        assert_true(sa.data_frames_by_ref > sa.data_frames_out / 2);
    else
        assert_int_equal(sa.data_frames_by_ref, 0);
    /* most messages were views into their frame */
    assert_true(p.pb.in_place > N_MESSAGES * 9 / 10);
    if (ppm == 0) {
        /* the simulated round trip is 10 us, plus the ack's delay */
        assert_true(sa.srtt_ns >= 10000 && sa.srtt_ns <= 30000);
        assert_int_equal(sa.retransmits, 0);
        assert_int_equal(sa.rto_expired, 0);
        assert_int_equal(sb.naks_sent, 0);
        assert_int_equal(sa.naks_received, 0);
        assert_int_equal(sb.duplicates, 0);
        assert_int_equal(sb.out_of_order, 0);
    } else {
        assert_true(sa.retransmits > 0);
        assert_true(sb.naks_sent > 0);
        assert_true(sa.naks_received > 0);
        assert_true(sb.duplicates > 0);
        assert_true(sb.out_of_order > 0);
        assert_true(sa.rto_expired > 0);
    }
    pair_close(&p);
}

static void test_stream_0(void **state)
{
    (void)state;
    lossy_stream(0, 1, 1500);
}
static void test_stream_0_jumbo(void **state)
{
    (void)state;
    lossy_stream(0, 1, 9000);
}
static void test_stream_1pct(void **state)
{
    (void)state;
    lossy_stream(10000, 2, 1500);
}
static void test_stream_5pct(void **state)
{
    (void)state;
    lossy_stream(50000, 3, 1500);
}
static void test_stream_20pct(void **state)
{
    (void)state;
    lossy_stream(200000, 4, 1500);
}

/* Two 16 MiB messages with small ones around them. */
static void big_messages(uint32_t ppm, uint64_t seed)
{
    const size_t big = 16u << 20;
    uint8_t *pat = malloc(big);
    assert_non_null(pat);
    for (size_t i = 0; i < big; i++)
        pat[i] = (uint8_t)(i * 131u + (i >> 12));
    edi_put_be32(pat, 0xB16B16u);
    pair p;
    pair_open(&p, seed, ppm, 1500, 24u << 20, 1u << 20);
    p.pb.big_pattern = pat;
    p.pb.big_len = big;
    /* small 0..99, big, small 100..199, big, small 200..299 */
    uint64_t item = 0;
    uint8_t m[64];
    p.s.wake = &p.pa.writable;
    while (p.pb.got < 302 || edi_rlink_unacked_bytes(p.s.a) > 0) {
        p.pa.writable = false;
        while (item < 302) {
            int rc;
            if (item == 100 || item == 201) {
                rc = edi_rlink_send(p.s.a, pat, 4, pat + 4, big - 4);
            } else {
                uint64_t n = item - (item > 100) - (item > 201);
                msg_fill(n, m);
                rc = edi_rlink_send(p.s.a, m, msg_len(n), NULL, 0);
            }
            if (rc == EDIST_EAGAIN)
                break;
            assert_int_equal(rc, 0);
            item++;
        }
        sim_step(&p.s);
        assert_false(edi_rlink_dead(p.s.a));
        assert_false(edi_rlink_dead(p.s.b));
        assert_true(p.s.now < 10000000000ull);
    }
    assert_int_equal(p.pb.bad, 0);
    assert_int_equal(p.pb.big, 2);
    assert_int_equal(p.pb.expected, 300);
    edi_rlink_stats sa, sb;
    edi_rlink_get_stats(p.s.a, &sa);
    edi_rlink_get_stats(p.s.b, &sb);
    assert_int_equal(sb.messages_in, 302);
    if (g_by_ref)
        assert_true(sa.data_frames_by_ref > sa.data_frames_out / 2);
    if (ppm == 0)
        assert_int_equal(sa.retransmits, 0);
    else
        assert_true(sa.retransmits > 0 && sb.naks_sent > 0);
    pair_close(&p);
    free(pat);
}

static void test_big_0(void **state)
{
    (void)state;
    big_messages(0, 9);
}
static void test_big_1pct(void **state)
{
    (void)state;
    big_messages(10000, 10);
}
static void test_big_5pct(void **state)
{
    (void)state;
    big_messages(50000, 11);
}
static void test_big_20pct(void **state)
{
    (void)state;
    big_messages(200000, 12);
}

/* The same with the data carried by reference to the sender's ring and
 * read only when a frame arrives, retransmissions, duplicates and late
 * frames included: the ring must not change a byte the peer still needs
 * (a frame that arrives with bytes since reused carries only what the
 * receiver trims). */
static void test_by_ref_stream_5pct(void **state)
{
    (void)state;
    g_by_ref = true;
    lossy_stream(50000, 13, 1500);
    g_by_ref = false;
}
static void test_by_ref_stream_20pct(void **state)
{
    (void)state;
    g_by_ref = true;
    lossy_stream(200000, 14, 9000);
    g_by_ref = false;
}
static void test_by_ref_big_5pct(void **state)
{
    (void)state;
    g_by_ref = true;
    big_messages(50000, 15);
    g_by_ref = false;
}

/* One message: its ACK goes out ack_delay_ns after it arrived, alone;
 * eight frames get one at once. */
static void test_delayed_ack(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, 1, 0, 1500, 1u << 20, 1u << 20);
    uint64_t next = 0;
    fill(p.s.a, &next, 1);
    uint64_t t0 = p.s.now, t = t0;
    while (edi_rlink_unacked_bytes(p.s.a) > 0) {
        t = p.s.now; /* the step that takes the ACK */
        sim_step(&p.s);
    }
    /* out at t0, in at +5 us, ACK at +25 us, back at +30 us */
    assert_int_equal(t - t0, 5000 + p.cfg.ack_delay_ns + 5000);
    edi_rlink_stats sb;
    edi_rlink_get_stats(p.s.b, &sb);
    assert_int_equal(sb.acks_out, 1);
    /* eight frames at once: acked without waiting */
    fill(p.s.a, &next, 1 + 8 * 1460 / 20);
    t0 = t = p.s.now;
    while (edi_rlink_unacked_bytes(p.s.a) > 0) {
        t = p.s.now;
        sim_step(&p.s);
    }
    assert_int_equal(t - t0, 10000);
    pair_close(&p);
}

/* Messages appended before one poll fill frames to the medium's size:
 * the fewest frames that hold them. */
static void test_batching(void **state)
{
    (void)state;
    const size_t frames[] = {1500, 9000, 200};
    for (size_t k = 0; k < 3; k++) {
        pair p;
        pair_open(&p, 1, 0, frames[k], 1u << 20, 1u << 20);
        uint64_t next = 0;
        fill(p.s.a, &next, 5000);
        assert_int_equal(next, 5000);
        size_t bytes = edi_rlink_unacked_bytes(p.s.a);
        edi_rlink_poll(p.s.a, p.s.now);
        edi_rlink_stats sa;
        edi_rlink_get_stats(p.s.a, &sa);
        size_t room = frames[k] - EDI_RLINK_HDR_BYTES;
        assert_int_equal(sa.bytes_out, bytes);
        assert_int_equal(sa.data_frames_out, (bytes + room - 1) / room);
        p.s.wake = NULL;
        while (p.pb.got < 5000)
            sim_step(&p.s);
        assert_int_equal(p.pb.bad, 0);
        pair_close(&p);
    }
}

/* The window shrinks under data in flight (past a lost frame, so out of
 * order), then reopens: what was sent within the edge advertised before
 * is taken, not refused; the sender stalls until the reopening; and
 * everything arrives once, in order. */
static void test_window_shrinks(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, 1, 0, 1500, 1u << 20, 64u << 10);
    drop_rule r = {
        .type = EDI_RLINK_T_DATA, .any_seq = true, .skip = 1, .left = 1};
    p.s.ab.filter = drop_filter;
    p.s.ab.filter_user = &r;
    uint64_t next = 0;
    const uint64_t n = 20000;
    fill(p.s.a, &next, n);
    edi_rlink_poll(p.s.a, p.s.now); /* 64 KiB in flight */
    edi_rlink_set_recv_window(p.s.b, 3000);
    uint64_t t0 = p.s.now;
    bool reopened = false;
    while (p.pb.got < n || edi_rlink_unacked_bytes(p.s.a) > 0) {
        fill(p.s.a, &next, n);
        if (!reopened && p.s.now > t0 + 5000000) {
            edi_rlink_set_recv_window(p.s.b, 64u << 10);
            reopened = true;
        }
        sim_step(&p.s);
        assert_true(p.s.now < 10000000000ull);
    }
    assert_int_equal(p.pb.bad, 0);
    assert_int_equal(p.pb.expected, n);
    edi_rlink_stats sa, sb;
    edi_rlink_get_stats(p.s.a, &sa);
    edi_rlink_get_stats(p.s.b, &sb);
    /* the edge advertised before the close stays: what was in flight is
     * taken, and the sender waits for the reopening */
    assert_int_equal(sb.beyond_window, 0);
    assert_true(sa.window_stalls > 0);
    assert_true(sa.retransmits > 0);
    pair_close(&p);
}

/* Messages encoded in place, across the ring's end many times; a send
 * abandons a reservation. */
static void test_reserve_commit(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, 3, 50000, 1500, 4096, 1u << 20);
    uint8_t *w;
    assert_int_equal(edi_rlink_commit(p.s.a, 0), EDIST_EINVAL);
    assert_int_equal(edi_rlink_reserve(p.s.a, 5000, &w), EDIST_ENOMEM);
    /* reserved, then abandoned by a send of message 0 */
    assert_int_equal(edi_rlink_reserve(p.s.a, 100, &w), 0);
    memset(w, 0xee, 100);
    uint8_t m[64];
    msg_fill(0, m);
    assert_int_equal(edi_rlink_send(p.s.a, m, msg_len(0), NULL, 0), 0);
    assert_int_equal(edi_rlink_commit(p.s.a, 10), EDIST_EINVAL);
    const uint64_t n = 20000;
    uint64_t next = 1;
    p.s.wake = &p.pa.writable;
    while (p.pb.got < n || edi_rlink_unacked_bytes(p.s.a) > 0) {
        p.pa.writable = false;
        while (next < n) {
            /* more room asked for than written, as an encoder does */
            int rc = edi_rlink_reserve(p.s.a, 40 + next % 100, &w);
            if (rc == EDIST_EAGAIN)
                break;
            assert_int_equal(rc, 0);
            msg_fill(next, w);
            assert_int_equal(edi_rlink_commit(p.s.a, msg_len(next)), 0);
            next++;
        }
        sim_step(&p.s);
        assert_false(edi_rlink_dead(p.s.b));
        assert_true(p.s.now < 10000000000ull);
    }
    assert_int_equal(p.pb.bad, 0);
    assert_int_equal(p.pb.expected, n);
    edi_rlink_stats sa;
    edi_rlink_get_stats(p.s.a, &sa);
    assert_true(sa.reserve_copies > 0);
    assert_true(sa.reserve_copies < n / 10);
    pair_close(&p);
}

/* Both directions at once: acks ride on the other way's DATA. */
static void test_both_ways(void **state)
{
    (void)state;
    const uint32_t rates[] = {0, 50000};
    for (size_t k = 0; k < 2; k++) {
        pair p;
        pair_open(&p, 21 + k, rates[k], 1500, 256u << 10, 256u << 10);
        const uint64_t n = 200000;
        uint64_t na = 0, nb = 0;
        while (p.pb.got < n || p.pa.got < n ||
               edi_rlink_unacked_bytes(p.s.a) > 0 ||
               edi_rlink_unacked_bytes(p.s.b) > 0) {
            fill(p.s.a, &na, n);
            fill(p.s.b, &nb, n);
            sim_step(&p.s);
            assert_true(p.s.now < 10000000000ull);
        }
        assert_int_equal(p.pa.bad + p.pb.bad, 0);
        assert_int_equal(p.pa.expected, n);
        assert_int_equal(p.pb.expected, n);
        edi_rlink_stats sa, sb;
        edi_rlink_get_stats(p.s.a, &sa);
        edi_rlink_get_stats(p.s.b, &sb);
        print_message("both ways, ppm %u: a data %llu acks %llu, b data "
                      "%llu acks %llu\n",
                      rates[k], (unsigned long long)sa.data_frames_out,
                      (unsigned long long)sa.acks_out,
                      (unsigned long long)sb.data_frames_out,
                      (unsigned long long)sb.acks_out);
        if (rates[k] == 0)
            assert_true(sa.acks_out + sb.acks_out <
                        (sa.data_frames_out + sb.data_frames_out) / 4);
        pair_close(&p);
    }
}

/* The send buffer's bound: EAGAIN past it, on_writable once acks free
 * room, a message larger than the whole buffer refused for good. */
static void test_send_buffer_bound(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, 5, 0, 1500, 4096, 1u << 20);
    uint8_t m[100] = {0};
    int taken = 0;
    int rc;
    while ((rc = edi_rlink_send(p.s.a, m, sizeof(m), NULL, 0)) == 0)
        taken++;
    assert_int_equal(rc, EDIST_EAGAIN);
    assert_int_equal(taken, 4096 / 104);
    assert_true(edi_rlink_unacked_bytes(p.s.a) <= 4096);
    assert_int_equal(p.pa.writable_calls, 0);
    uint8_t huge[5000] = {0};
    assert_int_equal(edi_rlink_send(p.s.a, huge, sizeof(huge), NULL, 0),
                     EDIST_ENOMEM);
    /* the peer does not answer yet: still no room */
    p.s.ab.cut = true;
    for (int i = 0; i < 10; i++)
        sim_step(&p.s);
    assert_int_equal(p.pa.writable_calls, 0);
    assert_int_equal(edi_rlink_send(p.s.a, m, sizeof(m), NULL, 0),
                     EDIST_EAGAIN);
    p.s.ab.cut = false;
    while (!p.pa.writable) {
        sim_step(&p.s);
        assert_true(p.s.steps < 1000000);
    }
    assert_int_equal(p.pa.writable_calls, 1);
    assert_int_equal(edi_rlink_send(p.s.a, m, sizeof(m), NULL, 0), 0);
    edi_rlink_stats sa;
    edi_rlink_get_stats(p.s.a, &sa);
    assert_int_equal(sa.send_eagain, 2);
    assert_int_equal(sa.send_too_big, 1);
    assert_true(sa.rto_expired > 0); /* the cut was repaired by timeouts */
    pair_close(&p);
}

/* A lossless pair with the default limits but these liveness times, its
 * wire from a to b filtered by drop_a_to_b (NULL: none). */
static void pair_open_liveness(pair *p, uint64_t idle_ping_ns, uint64_t dead_after_ns,
                               bool (*drop_a_to_b)(sim_wire *, uint64_t, const uint8_t *,
                                                   size_t))
{
    memset(p, 0, sizeof(*p));
    sim_wire_init(&p->s, &p->s.ab, 1, 0, 1500);
    sim_wire_init(&p->s, &p->s.ba, 2, 0, 1500);
    p->s.ab.filter = drop_a_to_b;
    p->s.now = 1000000;
    p->pa.s = p->pb.s = &p->s;
    edi_rlink_config_default(&p->cfg);
    p->cfg.idle_ping_ns = idle_ping_ns;
    p->cfg.dead_after_ns = dead_after_ns;
    edi_rlink_medium ma = wire_medium(&p->s.ab), mb = wire_medium(&p->s.ba);
    assert_int_equal(
        edi_rlink_new(&p->cfg, &ma, &peer_cb, &p->pa, p->s.now, &p->s.a), 0);
    assert_int_equal(
        edi_rlink_new(&p->cfg, &mb, &peer_cb, &p->pb, p->s.now, &p->s.b), 0);
}

/* A peer that stops: dead by the deadline, once; an idle pair that pings
 * stays alive. */
static void test_dead_peer(void **state)
{
    (void)state;
    pair p;
    pair_open_liveness(&p, 1000000, 5000000, NULL); /* ping 1 ms, dead 5 ms */
    /* idle for 50 ms: pings keep both alive */
    while (p.s.now < 51000000)
        sim_step(&p.s);
    assert_int_equal(p.pa.dead_calls + p.pb.dead_calls, 0);
    edi_rlink_stats sa;
    edi_rlink_get_stats(p.s.a, &sa);
    assert_true(sa.pings_out >= 40 && sa.pongs_out >= 40);
    assert_true(sa.rtt_samples > 0);
    /* b's node stops: nothing from it any more */
    edi_rlink *b = p.s.b;
    p.s.b = NULL;
    uint64_t last = p.s.now;
    while (p.pa.dead_calls == 0) {
        sim_step(&p.s);
        assert_true(p.s.steps < 1000000);
    }
    assert_int_equal(p.pa.dead_reason, EDIST_ETIMEDOUT);
    /* the last frame from b came within the last ping interval + latency */
    assert_true(p.pa.dead_at >= last - 1100000 + 5000000);
    assert_true(p.pa.dead_at <= last + 5000000 + 10000);
    assert_true(edi_rlink_dead(p.s.a));
    assert_int_equal(edi_rlink_next_deadline_ns(p.s.a), UINT64_MAX);
    assert_int_equal(edi_rlink_send(p.s.a, "x", 1, NULL, 0), EDIST_ECLOSED);
    edi_rlink_poll(p.s.a, p.s.now + 100000000);
    assert_int_equal(p.pa.dead_calls, 1);
    p.s.b = b;
    pair_close(&p);
}

/* A frame overtaken on the way (an old window-0 PONG arriving after the
 * ACK that reopened the window) says less than the peer already said:
 * the edge it gives is left of the one the peer advertised, which never
 * moves left. Taking it closed the window on an idle link. */
static void test_stale_window(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, 11, 0, 1500, 256u << 10, 256u << 10);
    (void)stream(&p, 1000); /* all acknowledged, nothing in flight */
    uint64_t quiet = p.s.now + 2000000; /* and the wires quiet */
    while (p.s.now < quiet || p.s.ab.n > 0 || p.s.ba.n > 0)
        sim_step(&p.s);
    edi_rlink_stats before;
    edi_rlink_get_stats(p.s.a, &before);
    edi_rlink_hdr h = {.type = EDI_RLINK_T_PONG,
                       .token = p.cfg.token,
                       .ack = edi_rlink_acked_offset(p.s.a),
                       .window = 0};
    edi_rxbuf *rb = edi_rxbuf_heap_new(EDI_RLINK_HDR_BYTES);
    assert_non_null(rb);
    edi_rlink_hdr_encode(edi_rxbuf_data(rb), &h);
    edi_frame f = {edi_rxbuf_data(rb), EDI_RLINK_HDR_BYTES, rb};
    edi_rlink_input(p.s.a, p.s.now, &f);
    edi_rxbuf_unref(rb);
    /* the next messages go at once: no stall, no probe */
    p.pb.expected = 0;
    p.pb.got = 0;
    uint64_t t0 = p.s.now, next = 0;
    fill(p.s.a, &next, 100);
    while (p.pb.got < 100) {
        sim_step(&p.s);
        assert_true(p.s.now - t0 < 1000000000ull);
    }
    edi_rlink_stats after;
    edi_rlink_get_stats(p.s.a, &after);
    /* (taken, it held them back: a stall, 35 us instead of 25 here) */
    assert_int_equal(after.window_stalls, before.window_stalls);
    assert_int_equal(after.window_probes, before.window_probes);
    assert_true(p.s.now - t0 < 60000);
    pair_close(&p);
}

/* A window closed long enough for the sender to back its probes off,
 * then reopened, and the first frame after it lost: it goes again one
 * timeout later, not after the backed-off probe interval (which grows to
 * rto_max, 100 ms): the reopening resets the backoff, as the ack that
 * moves snd_una does. */
static void test_reopen_resets_backoff(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, 13, 0, 1500, 256u << 10, 16u << 10);
    (void)stream(&p, 100); /* round trips measured, all acknowledged */
    /* closed: the edge advertised last stays; a is held back at it with
     * less than a message left (one frame once it reopens) */
    edi_rlink_set_recv_window(p.s.b, 0);
    p.pb.expected = 0;
    p.pb.got = 0;
    uint64_t next = 0;
    edi_rlink_stats sa;
    do {
        fill(p.s.a, &next, next + 1);
        for (int i = 0; i < 5; i++)
            sim_step(&p.s);
        edi_rlink_get_stats(p.s.a, &sa);
        assert_true(next < 10000);
    } while (sa.window_stalls == 0);
    uint64_t t0 = p.s.now;
    do {
        sim_step(&p.s);
        edi_rlink_get_stats(p.s.a, &sa);
        assert_true(p.s.now - t0 < 1000000000ull);
    } while (sa.window_probes < 8);
    assert_int_equal(p.pb.got, next - 1);
    drop_rule r = {.type = EDI_RLINK_T_DATA, .any_seq = true, .left = 1};
    p.s.ab.filter = drop_filter;
    p.s.ab.filter_user = &r;
    edi_rlink_set_recv_window(p.s.b, 16u << 10);
    /* until a, told of the window, sends the rest (lost) */
    t0 = p.s.now;
    while (r.left > 0) {
        sim_step(&p.s);
        assert_true(p.s.now - t0 < 1000000000ull);
    }
    uint64_t t1 = p.s.now;
    while (p.pb.got < next) {
        sim_step(&p.s);
        assert_true(p.s.now - t0 < 1000000000ull);
    }
    edi_rlink_get_stats(p.s.a, &sa);
    print_message("window open, frame sent after %.3f ms; lost, sent again and taken after "
                  "%.3f ms (rto %llu ns, srtt %llu ns, %llu probes)\n",
                  (double)(t1 - t0) / 1e6, (double)(p.s.now - t1) / 1e6,
                  (unsigned long long)sa.rto_ns, (unsigned long long)sa.srtt_ns,
                  (unsigned long long)sa.window_probes);
    assert_int_equal(p.pb.bad, 0);
    assert_true(p.s.now - t1 < 1000000); /* 1 ms; 15.6 ms backed off */
    pair_close(&p);
}

/* A receiver whose pool runs low lets go of the frames it holds out of
 * order, again and again, in a stream at 5% loss, duplication and
 * reordering: everything still arrives once, in order (the sender's
 * timeouts send the dropped frames again). */
static void test_drop_held(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, 7, 50000, 1500, 256u << 10, 256u << 10);
    const uint64_t n = 200000;
    uint64_t next = 0, start = p.s.now, dropped = 0;
    p.s.wake = &p.pa.writable;
    while (p.pb.got < n || edi_rlink_unacked_bytes(p.s.a) > 0) {
        p.pa.writable = false;
        fill(p.s.a, &next, n);
        sim_step(&p.s);
        if (p.s.steps % 64 == 0)
            dropped += edi_rlink_drop_held(p.s.b);
        assert_false(edi_rlink_dead(p.s.a));
        assert_false(edi_rlink_dead(p.s.b));
        assert_true(p.s.now - start < 60000000000ull);
    }
    assert_int_equal(p.pb.bad, 0);
    assert_int_equal(p.pb.got, n);
    assert_int_equal(p.pb.expected, n);
    edi_rlink_stats sb;
    edi_rlink_get_stats(p.s.b, &sb);
    assert_true(dropped > 0);
    assert_int_equal(sb.held_dropped, dropped);
    pair_close(&p);
}

/* A path that carries small frames (pings, pongs, acks) and loses every
 * larger one (a peer or a switch with a smaller MTU): the peer answers,
 * so it never goes quiet, but nothing sent is acknowledged. The link dies
 * dead_after past the first unacknowledged byte, once, instead of
 * retransmitting for ever. */
static bool drop_large(sim_wire *w, uint64_t nth, const uint8_t *f, size_t len)
{
    (void)w;
    (void)nth;
    (void)f;
    return len > 200;
}

static void test_large_frames_lost(void **state)
{
    (void)state;
    pair p;
    pair_open_liveness(&p, 1000000, 50000000, drop_large); /* ping 1 ms, dead 50 ms */
    /* idle: pings both ways keep both alive */
    while (p.s.now < 200000000)
        sim_step(&p.s);
    assert_int_equal(p.pa.dead_calls + p.pb.dead_calls, 0);
    uint64_t next = 0, t0 = p.s.now;
    fill(p.s.a, &next, 1000); /* frames of up to 1500 bytes */
    while (p.pa.dead_calls == 0) {
        sim_step(&p.s);
        assert_true(p.s.now < t0 + 10000000000ull);
    }
    assert_int_equal(p.pa.dead_calls, 1);
    assert_int_equal(p.pa.dead_reason, EDIST_ETIMEDOUT);
    assert_true(p.pa.dead_at >= t0 + 50000000);
    assert_true(p.pa.dead_at <= t0 + 50000000 + 2000000);
    assert_int_equal(p.pb.got, 0);
    assert_true(p.s.ab.dropped > 0);
    edi_rlink_stats sa;
    edi_rlink_get_stats(p.s.a, &sa);
    assert_true(sa.rto_expired > 0);
    edi_rlink_poll(p.s.a, p.s.now + 100000000);
    assert_int_equal(p.pa.dead_calls, 1);
    pair_close(&p);
}

/* Times passed in may step back a little (a cached loop time after a
 * fresher one): never an age, never a death. */
static void test_time_steps_back(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, 1, 0, 1500, 1u << 20, 1u << 20);
    uint64_t t = p.s.now;
    edi_rlink_poll(p.s.b, t + 20000);       /* b's clock a bit ahead */
    edi_rlink_set_recv_window(p.s.b, 1000); /* an ACK from b */
    edi_rlink_poll(p.s.b, t + 20000);
    p.s.now = t + 30000;
    wire_deliver(&p.s, &p.s.ba, p.s.a); /* a takes it at t + 30 us */
    edi_rlink_poll(p.s.a, t + 10000);   /* then polls with an older time */
    assert_false(edi_rlink_dead(p.s.a));
    assert_true(edi_rlink_next_deadline_ns(p.s.a) > t + 1000000);
    uint64_t next = 0;
    fill(p.s.a, &next, 10);
    edi_rlink_poll(p.s.a, t + 10000); /* timed from t + 10 us */
    p.s.now = t + 5000;
    while (p.pb.got < 10 || edi_rlink_unacked_bytes(p.s.a) > 0)
        sim_step(&p.s);
    edi_rlink_stats sa;
    edi_rlink_get_stats(p.s.a, &sa);
    assert_false(edi_rlink_dead(p.s.a));
    assert_true(sa.srtt_ns < 1000000);
    pair_close(&p);
}

/* ---- bad frames -----------------------------------------------------------
 */

static edi_rlink_hdr good_hdr(uint64_t token, uint8_t type)
{
    edi_rlink_hdr h = {.type = type, .token = token, .window = 1u << 20};
    return h;
}

static void input_bytes(edi_rlink *l, const uint8_t *p, size_t n)
{
    edi_rxbuf *rb = edi_rxbuf_heap_new(n);
    assert_non_null(rb);
    memcpy(edi_rxbuf_data(rb), p, n);
    edi_frame f = {edi_rxbuf_data(rb), n, rb};
    edi_rlink_input(l, 2000000, &f);
    edi_rxbuf_unref(rb);
}

static void input_hdr(edi_rlink *l, const edi_rlink_hdr *h, const void *data,
                      size_t data_len, size_t pad)
{
    uint8_t f[256] = {0};
    edi_rlink_hdr_encode(f, h);
    if (data_len > 0)
        memcpy(f + EDI_RLINK_HDR_BYTES, data, data_len);
    input_bytes(l, f, EDI_RLINK_HDR_BYTES + data_len + pad);
}

static void test_bad_frames(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, 1, 0, 1500, 1u << 20, 1u << 20);
    edi_rlink *a = p.s.a;
    const uint64_t tok = p.cfg.token;
    const uint8_t msg[8] = {0, 0, 0, 4, 0, 0, 0, 0}; /* message 0 */
    edi_rlink_hdr h;
    uint8_t f[64];

    h = good_hdr(tok ^ 1, EDI_RLINK_T_DATA); /* another link's */
    h.len = sizeof(msg);
    input_hdr(a, &h, msg, sizeof(msg), 0);
    input_bytes(a, f, 10); /* short */
    h = good_hdr(tok, EDI_RLINK_T_ACK);
    edi_rlink_hdr_encode(f, &h);
    f[0] = 0x45; /* magic */
    input_bytes(a, f, EDI_RLINK_HDR_BYTES);
    edi_rlink_hdr_encode(f, &h);
    f[2] = 2; /* version */
    input_bytes(a, f, EDI_RLINK_HDR_BYTES);
    h = good_hdr(tok, 9); /* type */
    input_hdr(a, &h, NULL, 0, 0);
    h = good_hdr(tok, EDI_RLINK_T_DATA); /* DATA without data */
    input_hdr(a, &h, NULL, 0, 0);
    h = good_hdr(tok, EDI_RLINK_T_ACK); /* ACK with data */
    h.len = 4;
    input_hdr(a, &h, msg, 4, 0);
    h = good_hdr(tok, EDI_RLINK_T_DATA); /* len past the frame */
    h.len = 100;
    input_hdr(a, &h, msg, sizeof(msg), 0);
    h = good_hdr(tok, EDI_RLINK_T_NAK); /* NAK of nothing */
    input_hdr(a, &h, NULL, 0, 0);
    h = good_hdr(tok, EDI_RLINK_T_DATA); /* offsets wrap */
    h.len = sizeof(msg);
    h.seq = UINT64_MAX - 3;
    input_hdr(a, &h, msg, sizeof(msg), 0);
    h = good_hdr(tok, EDI_RLINK_T_ACK); /* acks what a never sent */
    h.ack = 1;
    input_hdr(a, &h, NULL, 0, 0);
    h = good_hdr(tok, EDI_RLINK_T_NAK); /* NAKs what a never sent */
    h.nak_len = 10;
    input_hdr(a, &h, NULL, 0, 0);

    edi_rlink_stats st;
    edi_rlink_get_stats(a, &st);
    assert_int_equal(st.bad_token, 1);
    assert_int_equal(st.bad_short, 2);
    assert_int_equal(st.bad_magic, 1);
    assert_int_equal(st.bad_version, 1);
    assert_int_equal(st.bad_type, 1);
    assert_int_equal(st.bad_fields, 4);
    assert_int_equal(st.bad_ack, 2);
    assert_int_equal(st.bad_frames, 12);
    assert_int_equal(st.frames_in, 0);
    assert_int_equal(p.pa.got + p.pa.bad, 0);

    /* a good frame, padded as Ethernet pads, still gets through */
    h = good_hdr(tok, EDI_RLINK_T_DATA);
    h.len = sizeof(msg);
    input_hdr(a, &h, msg, sizeof(msg), 12);
    edi_rlink_get_stats(a, &st);
    assert_int_equal(st.frames_in, 1);
    assert_int_equal(st.messages_in, 1);
    assert_int_equal(p.pa.got, 1);
    assert_int_equal(p.pa.bad, 0);
    /* the same again is a duplicate, not a second message */
    input_hdr(a, &h, msg, sizeof(msg), 0);
    edi_rlink_get_stats(a, &st);
    assert_int_equal(st.duplicates, 1);
    assert_int_equal(p.pa.got, 1);
    /* a frame past a gap is held, its buffer referenced */
    uint8_t ooo[EDI_RLINK_HDR_BYTES + 4];
    h.seq = 100;
    h.len = 4;
    edi_rlink_hdr_encode(ooo, &h);
    memset(ooo + EDI_RLINK_HDR_BYTES, 0, 4);
    edi_rxbuf *held = edi_rxbuf_heap_new(sizeof(ooo));
    memcpy(edi_rxbuf_data(held), ooo, sizeof(ooo));
    edi_frame hf = {edi_rxbuf_data(held), sizeof(ooo), held};
    edi_rlink_input(a, 2000000, &hf);
    edi_rlink_get_stats(a, &st);
    assert_int_equal(st.held_now, 1);
    assert_int_equal(atomic_load(&held->refs), 2);
    /* a length over max_message_bytes kills the link, once, and the held
     * buffer goes back */
    uint8_t hugehdr[4] = {0x7f, 0, 0, 0};
    h.seq = 8;
    h.len = 4;
    input_hdr(a, &h, hugehdr, 4, 0);
    assert_int_equal(p.pa.dead_calls, 1);
    assert_int_equal(p.pa.dead_reason, EDIST_ENOMEM);
    assert_int_equal(atomic_load(&held->refs), 1);
    edi_rxbuf_unref(held);
    pair_close(&p);
}

/* ---- the repair paths alone ------------------------------------------------
 */

/* One DATA frame lost in the middle of a stream: repaired by a NAK, not
 * by a timeout. */
static void test_nak_path(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, 1, 0, 1500, 1u << 20, 1u << 20);
    drop_rule r = {.type = EDI_RLINK_T_DATA, .seq = 2 * 1460, .left = 1};
    p.s.ab.filter = drop_filter;
    p.s.ab.filter_user = &r;
    stream(&p, 2000);
    assert_int_equal(r.left, 0);
    edi_rlink_stats sa, sb;
    edi_rlink_get_stats(p.s.a, &sa);
    edi_rlink_get_stats(p.s.b, &sb);
    assert_int_equal(sb.naks_sent, 1);
    assert_int_equal(sa.naks_received, 1);
    assert_int_equal(sa.retransmits, 1);
    assert_int_equal(sa.rto_expired, 0);
    assert_true(sb.out_of_order > 0);
    pair_close(&p);
}

/* A gap NAKed once, though frames past it keep arriving poll after poll;
 * the same NAK twice retransmits once. */
static void test_nak_rate_limited(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, 1, 0, 1500, 1u << 20, 1u << 20);
    drop_rule r = {
        .type = EDI_RLINK_T_DATA, .any_seq = true, .skip = 2, .left = 1};
    p.s.ab.filter = drop_filter;
    p.s.ab.filter_user = &r;
    bool always = true;
    p.s.wake = &always; /* a poll every microsecond */
    uint64_t next = 0;
    const uint64_t n = 4000;
    while (p.pb.got < n || edi_rlink_unacked_bytes(p.s.a) > 0) {
        fill(p.s.a, &next, next + 80 < n ? next + 80 : n); /* ~a frame */
        sim_step(&p.s);
        assert_true(p.s.now < 10000000000ull);
    }
    assert_int_equal(p.pb.bad, 0);
    assert_int_equal(r.left, 0);
    edi_rlink_stats sa, sb;
    edi_rlink_get_stats(p.s.a, &sa);
    edi_rlink_get_stats(p.s.b, &sb);
    assert_true(sb.out_of_order >= 5); /* arrivals past the gap, */
    assert_int_equal(sb.naks_sent, 1); /* one NAK */
    assert_int_equal(sa.retransmits, 1);
    pair_close(&p);

    /* the sender: the same NAK twice (a medium that duplicates) */
    pair_open(&p, 1, 0, 1500, 1u << 20, 1u << 20);
    p.s.ab.cut = true;
    next = 0;
    fill(p.s.a, &next, 300);
    edi_rlink_poll(p.s.a, p.s.now);
    edi_rlink_hdr h = {.type = EDI_RLINK_T_NAK,
                       .token = p.cfg.token,
                       .seq = 1460,
                       .nak_len = 1460,
                       .window = 1u << 20};
    input_hdr(p.s.a, &h, NULL, 0, 0);
    input_hdr(p.s.a, &h, NULL, 0, 0);
    edi_rlink_poll(p.s.a, p.s.now);
    edi_rlink_get_stats(p.s.a, &sa);
    assert_int_equal(sa.naks_received, 2);
    assert_int_equal(sa.naks_ignored, 1);
    assert_int_equal(sa.retransmits, 1);
    pair_close(&p);
}

/* The last frame of a burst lost: no later frame shows a gap, so only the
 * timer repairs it. */
static void test_rto_path(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, 1, 0, 1500, 1u << 20, 1u << 20);
    /* 100 messages of 4 + i % 29 bytes: 2 frames, the second lost */
    drop_rule r = {.type = EDI_RLINK_T_DATA, .seq = 1460, .left = 1};
    p.s.ab.filter = drop_filter;
    p.s.ab.filter_user = &r;
    stream(&p, 100);
    assert_int_equal(r.left, 0);
    edi_rlink_stats sa, sb;
    edi_rlink_get_stats(p.s.a, &sa);
    edi_rlink_get_stats(p.s.b, &sb);
    assert_int_equal(sa.rto_expired, 1);
    assert_int_equal(sa.retransmits, 1);
    assert_int_equal(sb.naks_sent, 0);
    pair_close(&p);

    /* the same, the medium out of buffers when the timer fires: resent
     * at the next poll, not at the next timeout */
    pair_open(&p, 1, 0, 1500, 1u << 20, 1u << 20);
    r = (drop_rule){.type = EDI_RLINK_T_DATA, .seq = 1460, .left = 1};
    p.s.ab.filter = drop_filter;
    p.s.ab.filter_user = &r;
    uint64_t next = 0;
    fill(p.s.a, &next, 100);
    size_t total = edi_rlink_unacked_bytes(p.s.a);
    while (edi_rlink_unacked_bytes(p.s.a) == total)
        sim_step(&p.s); /* the first frame acked */
    p.s.ab.no_buffers = 1;
    while (p.pb.got < 100 || edi_rlink_unacked_bytes(p.s.a) > 0) {
        sim_step(&p.s);
        assert_true(p.s.steps < 100000);
    }
    assert_int_equal(p.pb.bad, 0);
    edi_rlink_get_stats(p.s.a, &sa);
    assert_int_equal(sa.tx_no_buffer, 1);
    assert_int_equal(sa.rto_expired, 1);
    assert_int_equal(sa.retransmits, 1);
    pair_close(&p);
}

/* The receiver closes its window: the sender stalls and probes; reopened,
 * everything arrives. The medium running out of buffers delays, never
 * loses. */
static void test_window_and_no_buffers(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, 1, 0, 1500, 1u << 20, 64u << 10);
    edi_rlink_set_recv_window(p.s.b, 0);
    sim_step(&p.s); /* b's ack with the closed window reaches a */
    uint64_t next = 0;
    uint64_t got_then = 0;
    for (int i = 0; i < 2000; i++) {
        fill(p.s.a, &next, 10000);
        sim_step(&p.s);
        if (i == 999)
            got_then = p.pb.got;
    }
    /* The window both ends assumed before b said anything is taken (an
     * edge never moves left); then nothing more. */
    assert_true(got_then > 0);
    assert_int_equal(p.pb.got, got_then);
    uint64_t bytes = 0;
    for (uint64_t i = 0; i < p.pb.got; i++)
        bytes += 4 + msg_len(i);
    assert_true(bytes <= 64u << 10);
    edi_rlink_stats sa;
    edi_rlink_get_stats(p.s.a, &sa);
    assert_true(sa.window_stalls > 0);
    assert_true(sa.window_probes > 0);
    edi_rlink_set_recv_window(p.s.b, 64u << 10);
    p.s.ab.no_buffers = 5;
    while (p.pb.got < 10000 || edi_rlink_unacked_bytes(p.s.a) > 0) {
        fill(p.s.a, &next, 10000);
        sim_step(&p.s);
        assert_true(p.s.steps < 1000000);
    }
    assert_int_equal(p.pb.bad, 0);
    edi_rlink_get_stats(p.s.a, &sa);
    assert_int_equal(sa.tx_no_buffer, 5);
    assert_int_equal(sa.retransmits, 0);
    pair_close(&p);
}

/* Freed large receive buffers are kept within the bounds set, counted,
 * and reused; 0 keeps none. (Process-wide: deltas of the counters.) */
static void test_rxbuf_recycle_bounds(void **state)
{
    (void)state;
    edi_rxbuf_recycle_stats a, b;
    edi_rxbuf_recycle_set(1, 1u << 20);
    edi_rxbuf_recycle_stats_get(&a);
    assert_int_equal(a.held, 0); /* nothing kept yet in this program */
    edi_rxbuf *x = edi_rxbuf_heap_new(64u << 10);
    edi_rxbuf *y = edi_rxbuf_heap_new(64u << 10);
    edi_rxbuf *big = edi_rxbuf_heap_new(2u << 20);
    edi_rxbuf *small = edi_rxbuf_heap_new(1024);
    assert_non_null(x);
    assert_non_null(y);
    assert_non_null(big);
    assert_non_null(small);
    edi_rxbuf_unref(x);     /* kept */
    edi_rxbuf_unref(y);     /* freed: one is kept already */
    edi_rxbuf_unref(big);   /* freed: over 1 MiB */
    edi_rxbuf_unref(small); /* below 32 KiB: never a candidate */
    edi_rxbuf_recycle_stats_get(&b);
    assert_int_equal(b.held, 1);
    assert_int_equal(b.held_bytes, 64u << 10);
    assert_int_equal(b.freed - a.freed, 2);
    edi_rxbuf *z = edi_rxbuf_heap_new(40u << 10); /* at least half: reused */
    assert_non_null(z);
    edi_rxbuf_recycle_stats_get(&b);
    assert_int_equal(b.reused - a.reused, 1);
    assert_int_equal(b.held, 0);
    memset(edi_rxbuf_data(z), 0xab, 40u << 10);
    edi_rxbuf_unref(z);
    edi_rxbuf_recycle_set(0, 1u << 20); /* none: the kept one goes */
    edi_rxbuf_recycle_stats_get(&b);
    assert_int_equal(b.held, 0);
    assert_int_equal(b.held_bytes, 0);
    assert_int_equal(b.freed - a.freed, 3);
    edi_rxbuf_recycle_set(EDI_RXBUF_RECYCLE_BUFFERS_DEFAULT,
                          EDI_RXBUF_RECYCLE_MAX_BYTES_DEFAULT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rxbuf_recycle_bounds),
        cmocka_unit_test(test_bad_frames),
        cmocka_unit_test(test_nak_path),
        cmocka_unit_test(test_nak_rate_limited),
        cmocka_unit_test(test_rto_path),
        cmocka_unit_test(test_send_buffer_bound),
        cmocka_unit_test(test_dead_peer),
        cmocka_unit_test(test_time_steps_back),
        cmocka_unit_test(test_window_and_no_buffers),
        cmocka_unit_test(test_window_shrinks),
        cmocka_unit_test(test_stream_0),
        cmocka_unit_test(test_stream_0_jumbo),
        cmocka_unit_test(test_stream_1pct),
        cmocka_unit_test(test_stream_5pct),
        cmocka_unit_test(test_stream_20pct),
        cmocka_unit_test(test_big_0),
        cmocka_unit_test(test_big_1pct),
        cmocka_unit_test(test_big_5pct),
        cmocka_unit_test(test_big_20pct),
        cmocka_unit_test(test_by_ref_stream_5pct),
        cmocka_unit_test(test_by_ref_stream_20pct),
        cmocka_unit_test(test_by_ref_big_5pct),
        cmocka_unit_test(test_batching),
        cmocka_unit_test(test_large_frames_lost),
        cmocka_unit_test(test_drop_held),
        cmocka_unit_test(test_stale_window),
        cmocka_unit_test(test_reopen_resets_backoff),
        cmocka_unit_test(test_delayed_ack),
        cmocka_unit_test(test_both_ways),
        cmocka_unit_test(test_reserve_commit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
