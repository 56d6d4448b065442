/* SPDX-License-Identifier: Apache-2.0 */
/* The per-connection send scheduler (control/dist_sendq.h), pure: the
 * units it hands out are fed back through the real reassembler, so every
 * test also checks the wire form (fragment headers, SequenceIds, counts).
 * Covers round robin across senders, per-sender order across fragmented
 * messages, no fragments without DFLAG_FRAGMENTS, the byte limit with
 * EAGAIN / on_writable / FORCE, zero-copy pushes, detaching with units
 * still out, many senders, and bad arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "control/dist_flags.h"
#include "control/dist_build.h"
#include "control/dist_msg.h"
#include "control/dist_reasm.h"
#include "control/dist_sendq.h"
#include "edist/term.h"

#define FRAG 1024u
#define FLAGS_FRAG (EDI_DFLAGS_EDIST_DEFAULT | EDI_DFLAG_FRAGMENTS)
#define FLAGS_NOFRAG (EDI_DFLAGS_EDIST_DEFAULT & ~EDI_DFLAG_FRAGMENTS)

/* A REG_SEND frame from <a@h.sender.0> to `sink` whose message is
 * {Tag, Binary of n bytes of value tag}. */
static void build(edist_buf *out, uint64_t flags, uint32_t sender, int tag,
                  size_t n)
{
    edi_dist_term_scratch ps, ns;
    edist_pid pid = {
        .node = {.ptr = "a@h", .len = 3}, .id = sender, .creation = 7};
    edist_term_view from, to;
    assert_int_equal(edi_dist_pid_view(&pid, &ps, &from), 0);
    assert_int_equal(edi_dist_atom_view("sink", 4, &ns, &to), 0);
    edist_buf msg;
    edist_buf_init(&msg);
    uint8_t *bin = malloc(n ? n : 1);
    memset(bin, tag, n);
    edist_enc_tuple(&msg, 2);
    edist_enc_int(&msg, tag);
    edist_enc_binary(&msg, bin, n);
    free(bin);
    assert_int_equal(edist_buf_error(&msg), 0);
    edist_term_view mv = {.ptr = msg.data, .len = msg.len};
    edist_buf_reset(out);
    assert_int_equal(edi_dist_build_reg_send(out, flags, NULL, from, to, mv),
                     0);
    edist_buf_free(&msg);
}

static int push(edi_sendq *q, uint64_t flags, uint32_t sender, int tag,
                size_t n, unsigned pflags)
{
    edist_buf b;
    edist_buf_init(&b);
    build(&b, flags, sender, tag, n);
    int rc = edi_sendq_push(q, sender, b.data, b.len, pflags);
    edist_buf_free(&b);
    return rc;
}

/* A received message: its tag and binary size, checked byte by byte. */
typedef struct got {
    int tag;
    size_t size;
} got;

static void check_msg(const edi_dist_msg *m, got *g)
{
    assert_int_equal(m->op, EDI_DOP_REG_SEND);
    edist_cursor c;
    edist_cursor_init(&c, m->payload.ptr, m->payload.len);
    uint32_t ar;
    int64_t tag;
    const uint8_t *bin;
    size_t n;
    assert_int_equal(edist_dec_tuple(&c, &ar), 0);
    assert_int_equal(ar, 2);
    assert_int_equal(edist_dec_int64(&c, &tag), 0);
    assert_int_equal(edist_dec_binary(&c, &bin, &n), 0);
    for (size_t i = 0; i < n; i++)
        if (bin[i] != (uint8_t)tag)
            fail_msg("message %d: byte %zu is %u", (int)tag, i, bin[i]);
    g->tag = (int)tag;
    g->size = n;
}

/* Feed a unit to the reassembler as the receiver would see it. Returns 1
 * with *g set when a message completed. */
static int receive(edi_dist_reasm *r, const edi_sendq_unit *u, got *g)
{
    size_t len = u->head_len + u->body_len;
    uint8_t *frame = malloc(len);
    assert_non_null(frame);
    /* A unit may have no body (body NULL): memcpy must not see NULL. */
    if (u->head_len > 0)
        memcpy(frame, u->head, u->head_len);
    if (u->body_len > 0)
        memcpy(frame + u->head_len, u->body, u->body_len);
    edi_dist_delivery d;
    int rc = edi_dist_reasm_feed(r, frame, len, &d);
    if (rc < 0)
        fail_msg("reasm: %s", edist_last_error());
    if (rc == 1)
        check_msg(d.msg, g);
    free(d.owned);
    free(frame);
    return rc;
}

/* Take every unit, feeding and releasing each; record the order of the
 * units' senders (fragments included) and of completed messages. */
typedef struct trace {
    uint64_t senders[4096];
    edi_sendq_kind kinds[4096];
    int units;
    got msgs[1024];
    int nmsgs;
} trace;

static void drain(edi_sendq *q, edi_dist_reasm *r, trace *t)
{
    edi_sendq_unit u;
    while (edi_sendq_next(q, &u)) {
        assert_true(t->units < 4096);
        t->senders[t->units] = u.sender;
        t->kinds[t->units++] = u.kind;
        if (u.kind != EDI_SENDQ_WHOLE) {
            /* SequenceId = sender id. */
            uint64_t seq = 0;
            for (int i = 0; i < 8; i++)
                seq = seq << 8 | u.head[2 + i];
            assert_int_equal(seq, u.sender);
            assert_true(u.body_len <= FRAG);
        }
        got g;
        if (receive(r, &u, &g) == 1)
            t->msgs[t->nmsgs++] = g;
        edi_sendq_release(u.msg, u.body);
    }
}

typedef struct cb_counts {
    int progress;
    int writable;
} cb_counts;

static void on_progress(void *user)
{
    ((cb_counts *)user)->progress++;
}

static void on_writable(void *user)
{
    ((cb_counts *)user)->writable++;
}

static const edi_sendq_ops ops = {.on_progress = on_progress,
                                  .on_writable = on_writable};

static edi_sendq *new_q_open(uint64_t flags, size_t limit, cb_counts *cc, uint32_t open)
{
    edi_sendq_config cfg = {.flags = flags,
                            .fragment_bytes = FRAG,
                            .limit_bytes = limit,
                            .open_sequences = open,
                            .ops = &ops,
                            .user = cc};
    edi_sendq *q = NULL;
    assert_int_equal(edi_sendq_new(&cfg, &q), 0);
    return q;
}

static edi_sendq *new_q(uint64_t flags, size_t limit, cb_counts *cc)
{
    return new_q_open(flags, limit, cc, 0);
}

/* ---- tests --------------------------------------------------------------- */

/* A 10-fragment message from sender 1, then a small one from sender 2:
 * the small one goes out right after the first fragment, and both arrive
 * intact through the reassembler. */
static void test_small_overtakes_big(void **state)
{
    (void)state;
    cb_counts cc = {0};
    edi_sendq *q = new_q(FLAGS_FRAG, 0, &cc);
    edi_dist_reasm *r;
    assert_int_equal(edi_dist_reasm_create(NULL, &r), 0);
    assert_int_equal(push(q, FLAGS_FRAG, 1, 1, 10 * FRAG, 0), 0);
    assert_int_equal(push(q, FLAGS_FRAG, 2, 2, 10, 0), 0);
    trace *t = calloc(1, sizeof *t);
    drain(q, r, t);
    assert_int_equal(t->nmsgs, 2);
    assert_int_equal(t->msgs[0].tag, 2);
    assert_int_equal(t->msgs[0].size, 10);
    assert_int_equal(t->msgs[1].tag, 1);
    assert_int_equal(t->msgs[1].size, 10 * FRAG);
    assert_int_equal(t->senders[0], 1);
    assert_int_equal(t->kinds[0], EDI_SENDQ_FRAG_FIRST);
    assert_int_equal(t->senders[1], 2);
    assert_int_equal(t->kinds[1], EDI_SENDQ_WHOLE);
    assert_int_equal(t->kinds[2], EDI_SENDQ_FRAG_CONT);
    edi_sendq_stats st;
    edi_sendq_get_stats(q, &st);
    assert_int_equal(st.fragmented_messages, 1);
    assert_true(st.fragments >= 10);
    assert_int_equal(st.units, st.fragments + 1);
    assert_int_equal(st.bytes_pending, 0);
    assert_int_equal(st.messages_pending, 0);
    assert_int_equal(st.units_out, 0);
    assert_int_equal(cc.progress, t->units);
    assert_int_equal(cc.writable, 0);
    assert_true(edi_sendq_idle(q));
    free(t);
    edi_dist_reasm_free(r);
    edi_sendq_detach(q);
}

/* One sender's next message waits for its fragmented one (PROTOCOL-NOTES
 * §4), while another sender interleaves. */
static void test_per_sender_order(void **state)
{
    (void)state;
    cb_counts cc = {0};
    edi_sendq *q = new_q(FLAGS_FRAG, 0, &cc);
    edi_dist_reasm *r;
    assert_int_equal(edi_dist_reasm_create(NULL, &r), 0);
    assert_int_equal(push(q, FLAGS_FRAG, 1, 10, 5 * FRAG, 0), 0); /* A */
    assert_int_equal(push(q, FLAGS_FRAG, 1, 11, 5, 0), 0);        /* B */
    assert_int_equal(push(q, FLAGS_FRAG, 1, 12, 3 * FRAG, 0), 0); /* C */
    assert_int_equal(push(q, FLAGS_FRAG, 2, 20, 5, 0), 0);        /* D */
    assert_int_equal(push(q, FLAGS_FRAG, 2, 21, 5, 0), 0);        /* E */
    trace *t = calloc(1, sizeof *t);
    drain(q, r, t);
    int order[] = {20, 21, 10, 11, 12};
    assert_int_equal(t->nmsgs, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(t->msgs[i].tag, order[i]);
    /* Sender 1's units: A's fragments, then B whole, then C's. */
    int seen_b = 0;
    for (int i = 0; i < t->units; i++) {
        if (t->senders[i] != 1)
            continue;
        if (t->kinds[i] == EDI_SENDQ_WHOLE)
            seen_b = 1;
        else if (t->kinds[i] == EDI_SENDQ_FRAG_FIRST && seen_b)
            break; /* C starts after B */
        else if (seen_b)
            fail_msg("a fragment of A after B");
    }
    assert_true(seen_b);
    free(t);
    edi_dist_reasm_free(r);
    edi_sendq_detach(q);
}

/* Three large messages from three senders take turns fragment by
 * fragment. */
static void test_round_robin(void **state)
{
    (void)state;
    cb_counts cc = {0};
    edi_sendq *q = new_q(FLAGS_FRAG, 0, &cc);
    edi_dist_reasm *r;
    assert_int_equal(edi_dist_reasm_create(NULL, &r), 0);
    for (uint32_t s = 1; s <= 3; s++)
        assert_int_equal(push(q, FLAGS_FRAG, s, (int)s, 4 * FRAG, 0), 0);
    trace *t = calloc(1, sizeof *t);
    drain(q, r, t);
    assert_int_equal(t->nmsgs, 3);
    for (int i = 0; i < 12; i++)
        assert_int_equal(t->senders[i], (uint64_t)(i % 3 + 1));
    free(t);
    edi_dist_reasm_free(r);
    edi_sendq_detach(q);
}

/* A peer without DFLAG_FRAGMENTS gets whole frames (pass-through form). */
static void test_no_fragments_flag(void **state)
{
    (void)state;
    cb_counts cc = {0};
    edi_sendq *q = new_q(FLAGS_NOFRAG, 0, &cc);
    edi_dist_reasm *r;
    assert_int_equal(edi_dist_reasm_create(NULL, &r), 0);
    assert_int_equal(push(q, FLAGS_NOFRAG, 1, 1, 10 * FRAG, 0), 0);
    assert_int_equal(push(q, FLAGS_NOFRAG, 2, 2, 10, 0), 0);
    trace *t = calloc(1, sizeof *t);
    drain(q, r, t);
    assert_int_equal(t->units, 2);
    assert_int_equal(t->kinds[0], EDI_SENDQ_WHOLE);
    assert_int_equal(t->msgs[0].tag, 1);
    assert_int_equal(t->msgs[1].tag, 2);
    free(t);
    edi_dist_reasm_free(r);
    edi_sendq_detach(q);
}

/* The limit counts the unsent rest of fragmented messages; EAGAIN above
 * it, an empty queue takes anything, FORCE goes past, on_writable once at
 * half the limit. */
static void test_limit(void **state)
{
    (void)state;
    cb_counts cc = {0};
    size_t limit = 16 * FRAG;
    edi_sendq *q = new_q(FLAGS_FRAG, limit, &cc);
    /* Larger than the limit, into an empty queue: accepted. */
    assert_int_equal(push(q, FLAGS_FRAG, 1, 1, 20 * FRAG, 0), 0);
    assert_true(edi_sendq_bytes(q) > limit);
    assert_int_equal(push(q, FLAGS_FRAG, 2, 2, 10, 0), EDIST_EAGAIN);
    assert_true(edi_sendq_refused(q));
    /* FORCE passes. */
    assert_int_equal(push(q, FLAGS_FRAG, 3, 3, 10, EDI_SENDQ_FORCE), 0);
    edi_sendq_stats st;
    edi_sendq_get_stats(q, &st);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.messages_pending, 2);
    /* Take every unit but release none: bytes stay pending (the socket
     * has not taken them). */
    edi_sendq_unit us[64];
    int n = 0;
    while (n < 64 && edi_sendq_next(q, &us[n]))
        n++;
    assert_true(n > 20);
    assert_int_equal(cc.writable, 0);
    assert_true(edi_sendq_bytes(q) > limit);
    assert_int_equal(push(q, FLAGS_FRAG, 2, 2, 10, 0), EDIST_EAGAIN);
    edi_sendq_get_stats(q, &st);
    assert_int_equal(st.units_out, (uint64_t)n);
    /* Release: the big message frees with its last unit; writable once. */
    for (int i = 0; i < n; i++)
        edi_sendq_release(us[i].msg, us[i].body);
    assert_int_equal(cc.writable, 1);
    assert_int_equal(cc.progress, n);
    assert_false(edi_sendq_refused(q));
    assert_int_equal(edi_sendq_bytes(q), 0);
    /* Within the limit: accepted; one more that would cross: refused. */
    assert_int_equal(push(q, FLAGS_FRAG, 2, 2, 10 * FRAG, 0), 0);
    assert_int_equal(push(q, FLAGS_FRAG, 4, 4, 8 * FRAG, 0), EDIST_EAGAIN);
    edi_sendq_get_stats(q, &st);
    assert_int_equal(st.refused, 3);
    assert_true(st.max_bytes_pending > limit);
    edi_sendq_detach(q); /* drops the queued one */
}

static int released;
static void release_frame(void *arg, const uint8_t *frame)
{
    released++;
    free((void *)frame);
    assert_ptr_equal(arg, &released);
}

/* Zero-copy push: released once, after the last unit; on an error return
 * the caller keeps the frame. Detach with units still out: the queue
 * lives until they come back (ASan checks the rest). */
static void test_owned_and_detach(void **state)
{
    (void)state;
    cb_counts cc = {0};
    edi_sendq *q = new_q(FLAGS_FRAG, 4 * FRAG, &cc);
    edist_buf b;
    edist_buf_init(&b);
    build(&b, FLAGS_FRAG, 5, 5, 6 * FRAG);
    released = 0;
    assert_int_equal(
        edi_sendq_push_owned(q, 5, b.data, b.len, release_frame, &released, 0),
        0);
    size_t len = b.len;
    (void)len;
    b.data = NULL; /* the queue owns it now */
    b.len = b.cap = 0;
    /* Refused: still ours. */
    uint8_t *copy = malloc(64);
    edist_buf small;
    edist_buf_init(&small);
    build(&small, FLAGS_FRAG, 6, 6, 10);
    memcpy(copy, small.data, small.len);
    assert_int_equal(edi_sendq_push_owned(q, 6, copy, small.len, release_frame,
                                          &released, 0),
                     EDIST_EAGAIN);
    assert_int_equal(released, 0);
    free(copy);
    edist_buf_free(&small);
    edi_sendq_unit u1, u2;
    assert_int_equal(edi_sendq_next(q, &u1), 1);
    assert_int_equal(edi_sendq_next(q, &u2), 1);
    edi_sendq_release(u1.msg, u1.body);
    assert_int_equal(released, 0);
    /* Detach with one unit out and the rest never handed out. */
    edi_sendq_detach(q);
    assert_int_equal(released, 0);
    int progress = cc.progress;
    edi_sendq_release(u2.msg, u2.body); /* frees the message and q */
    assert_int_equal(released, 1);
    assert_int_equal(cc.progress, progress); /* no callback after detach */
    edist_buf_free(&b);
}

/* Pushing after detach, sender 0, broken frames, small fragment size. */
static void test_bad_arguments(void **state)
{
    (void)state;
    cb_counts cc = {0};
    edi_sendq *q = new_q(FLAGS_FRAG, 0, &cc);
    uint8_t bad[8] = {0, 0, 0, 9, 131, 68, 0, 0};
    assert_int_equal(edi_sendq_push(q, 1, bad, sizeof bad, 0), EDIST_EINVAL);
    assert_int_equal(edi_sendq_push(q, 1, bad, 3, 0), EDIST_EINVAL);
    assert_int_equal(push(q, FLAGS_FRAG, 0, 1, 10, 0), EDIST_EINVAL);
    assert_int_equal(edi_sendq_push_owned(q, 1, bad, sizeof bad, NULL, NULL, 0),
                     EDIST_EINVAL);
    edi_sendq_unit u;
    assert_int_equal(edi_sendq_next(q, &u), 0);
    edi_sendq_detach(q);
    edi_sendq_config cfg = {.flags = FLAGS_FRAG, .fragment_bytes = 100};
    edi_sendq *q2 = NULL;
    assert_int_equal(edi_sendq_new(&cfg, &q2), EDIST_EINVAL);
    assert_null(q2);
    edi_sendq_detach(NULL);
    edi_sendq_release(NULL, NULL);
    /* A detached queue refuses pushes. */
    q = new_q(FLAGS_FRAG, 0, &cc);
    assert_int_equal(push(q, FLAGS_FRAG, 1, 1, 10, 0), 0);
    edi_sendq_unit keep;
    assert_int_equal(edi_sendq_next(q, &keep), 1);
    edi_sendq_detach(q);
    assert_int_equal(edi_sendq_next(q, &u), 0);
    assert_int_equal(push(q, FLAGS_FRAG, 1, 1, 10, 0), EDIST_ECLOSED);
    edi_sendq_release(keep.msg, keep.body);
}

/* Many senders (the stream table grows): each one's messages in order,
 * the first round in activation order. More senders of fragmented
 * messages than a receiver takes open sequences (edist's, 1024 by
 * default): at most EDI_SENDQ_OPEN_SEQUENCES_DEFAULT are open at once, the
 * others' first fragments wait for one to end, and a receiver with the
 * default limits takes everything (it refused the 1,025th sequence and
 * the node took the peer down). */
static void many_senders(uint32_t open, uint32_t want_max)
{
    cb_counts cc = {0};
    edi_sendq *q = new_q_open(FLAGS_FRAG, 0, &cc, open);
    edi_dist_reasm *r;
    assert_int_equal(edi_dist_reasm_create(NULL, &r), 0);
    enum { N = 1100 };
    for (uint32_t s = 1; s <= N; s++)
        assert_int_equal(push(q, FLAGS_FRAG, s, (int)(s % 100), 2 * FRAG, 0),
                         0);
    for (uint32_t s = 1; s <= N; s++)
        assert_int_equal(push(q, FLAGS_FRAG, s, (int)(s % 100 + 100), 1, 0), 0);
    edi_sendq_stats st;
    edi_sendq_get_stats(q, &st);
    assert_int_equal(st.senders_active, N);
    edi_sendq_unit u;
    int units = 0;
    got g;
    static int per_sender[N + 1];
    memset(per_sender, 0, sizeof per_sender);
    int msgs = 0;
    uint32_t open_max = 0;
    while (edi_sendq_next(q, &u)) {
        if (units < (int)want_max)
            assert_int_equal(u.sender, (uint64_t)units + 1);
        units++;
        int rc = receive(r, &u, &g);
        assert_true(rc >= 0);
        if (edi_dist_reasm_open_sequences(r) > open_max)
            open_max = edi_dist_reasm_open_sequences(r);
        if (rc == 1) {
            msgs++;
            /* Sender s: first its big message (tag s%100), then its
             * small one (tag s%100 + 100). */
            int s = (int)u.sender;
            int want = per_sender[s]++ == 0 ? s % 100 : s % 100 + 100;
            assert_int_equal(g.tag, want);
        }
        edi_sendq_release(u.msg, u.body);
    }
    assert_int_equal(msgs, 2 * N);
    assert_int_equal(edi_dist_reasm_open_sequences(r), 0);
    assert_int_equal(open_max, want_max);
    edi_sendq_get_stats(q, &st);
    assert_true(st.sequences_waited >= N - want_max);
    assert_true(edi_sendq_idle(q));
    edi_dist_reasm_free(r);
    edi_sendq_detach(q);
}

static void test_many_senders(void **state)
{
    (void)state;
    many_senders(0, EDI_SENDQ_OPEN_SEQUENCES_DEFAULT);
}

/* The bound is the option send_open_sequences. */
static void test_many_senders_bound_set(void **state)
{
    (void)state;
    many_senders(16, 16);
}

/* A parked sender keeps its place: the sequence that ends goes to the
 * first one parked, not to a sender that came since and whose turn
 * comes first (which took it, and parked the waiting one again behind
 * every later one). */
static void test_parked_keeps_its_place(void **state)
{
    (void)state;
    cb_counts cc = {0};
    edi_sendq_unit u;
    /* how many units sender 1's message takes */
    edi_sendq *q = new_q(FLAGS_FRAG, 0, &cc);
    assert_int_equal(push(q, FLAGS_FRAG, 1, 1, 2 * FRAG, 0), 0);
    int k = 0;
    while (edi_sendq_next(q, &u)) {
        k++;
        edi_sendq_release(u.msg, u.body);
    }
    assert_true(k >= 2);
    edi_sendq_detach(q);

    q = new_q(FLAGS_FRAG, 0, &cc);
    const uint32_t max = EDI_SENDQ_OPEN_SEQUENCES_DEFAULT, waiting = max + 1, late = max + 2;
    /* sender 1's sequence ends first, the others' much later */
    for (uint32_t s = 1; s <= waiting; s++)
        assert_int_equal(push(q, FLAGS_FRAG, s, 1, (s == 1 ? 2 : 20) * FRAG, 0), 0);
    int n = 0, of_1 = 0, first_of_waiting = -1, first_of_late = -1;
    bool pushed = false;
    while (edi_sendq_next(q, &u)) {
        if (u.sender == 1)
            of_1++;
        if (u.kind == EDI_SENDQ_FRAG_FIRST && u.sender == waiting && first_of_waiting < 0)
            first_of_waiting = n;
        if (u.kind == EDI_SENDQ_FRAG_FIRST && u.sender == late && first_of_late < 0)
            first_of_late = n;
        /* a round ends with sender max; the next one starts with sender
         * 1's last unit, which ends a sequence: a new sender of a large
         * message comes now, its turn before the parked one's */
        if (!pushed && u.sender == max && of_1 == k - 1) {
            assert_int_equal(push(q, FLAGS_FRAG, late, 1, 2 * FRAG, 0), 0);
            pushed = true;
        }
        n++;
        edi_sendq_release(u.msg, u.body);
    }
    assert_true(pushed);
    assert_true(first_of_waiting >= 0 && first_of_late >= 0);
    assert_true(first_of_waiting < first_of_late);
    assert_true(edi_sendq_idle(q));
    edi_sendq_detach(q);
}

/* A queue detached with first fragments waiting for the bound frees
 * them with the rest (checked by ASan's leak check). */
static void test_detach_with_waiting_sequences(void **state)
{
    (void)state;
    cb_counts cc = {0};
    edi_sendq *q = new_q(FLAGS_FRAG, 0, &cc);
    const uint32_t n = EDI_SENDQ_OPEN_SEQUENCES_DEFAULT + 10;
    for (uint32_t s = 1; s <= n; s++)
        assert_int_equal(push(q, FLAGS_FRAG, s, 1, 2 * FRAG, 0), 0);
    edi_sendq_unit u;
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(edi_sendq_next(q, &u), 1);
        edi_sendq_release(u.msg, u.body);
    }
    edi_sendq_stats st;
    edi_sendq_get_stats(q, &st);
    assert_true(st.sequences_waited >= 10);
    assert_false(edi_sendq_idle(q));
    edi_sendq_detach(q);
}

/* A first fragment may carry only the atom cache header and no body bytes:
 * the reassembler must hold an empty sequence (no buffer yet) and complete
 * it from the continuation (regression: memcpy into a NULL buffer). */
static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static void test_empty_first_fragment(void **state)
{
    (void)state;
    edist_buf b;
    edist_buf_init(&b);
    build(&b, FLAGS_FRAG, 3, 5, 20);
    /* u32 length, then 131, 68, 0 (no atom cache refs), then the body. */
    assert_true(b.len > 7);
    assert_int_equal(b.data[4], 131);
    assert_int_equal(b.data[5], 68);
    assert_int_equal(b.data[6], 0);
    const uint8_t *body = b.data + 7;
    size_t body_len = b.len - 7;

    uint8_t first[19] = {131, 69};
    put_be64(first + 2, 77);
    put_be64(first + 10, 2);
    first[18] = 0;
    size_t cont_len = 18 + body_len;
    uint8_t *cont = malloc(cont_len);
    assert_non_null(cont);
    cont[0] = 131;
    cont[1] = 70;
    put_be64(cont + 2, 77);
    put_be64(cont + 10, 1);
    memcpy(cont + 18, body, body_len);

    edi_dist_reasm *r;
    assert_int_equal(edi_dist_reasm_create(NULL, &r), 0);
    edi_dist_delivery d;
    assert_int_equal(edi_dist_reasm_feed(r, first, sizeof first, &d), 0);
    assert_int_equal(edi_dist_reasm_open_sequences(r), 1);
    assert_int_equal(edi_dist_reasm_feed(r, cont, cont_len, &d), 1);
    assert_non_null(d.owned);
    got g = {0};
    check_msg(d.msg, &g);
    assert_int_equal(g.tag, 5);
    assert_int_equal(g.size, 20);
    free(d.owned);
    assert_int_equal(edi_dist_reasm_open_sequences(r), 0);

    /* Error path: an empty first fragment with FragmentId 1 is a whole
     * message with no control term. */
    put_be64(first + 10, 1);
    assert_true(edi_dist_reasm_feed(r, first, sizeof first, &d) < 0);
    assert_int_equal(edi_dist_reasm_open_sequences(r), 0);
    /* ... and two empty fragments complete an empty (bad) message. */
    put_be64(first + 10, 2);
    assert_int_equal(edi_dist_reasm_feed(r, first, sizeof first, &d), 0);
    assert_true(edi_dist_reasm_feed(r, cont, 18, &d) < 0);
    assert_int_equal(edi_dist_reasm_open_sequences(r), 0);
    assert_int_equal(edi_dist_reasm_buffered_bytes(r), 0);
    free(cont);
    edi_dist_reasm_free(r);
    edist_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_overtakes_big),
        cmocka_unit_test(test_per_sender_order),
        cmocka_unit_test(test_round_robin),
        cmocka_unit_test(test_no_fragments_flag),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_owned_and_detach),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_many_senders),
        cmocka_unit_test(test_many_senders_bound_set),
        cmocka_unit_test(test_detach_with_waiting_sequences),
        cmocka_unit_test(test_parked_keeps_its_place),
        cmocka_unit_test(test_empty_first_fragment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
