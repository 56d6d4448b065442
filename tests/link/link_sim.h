/* SPDX-License-Identifier: Apache-2.0 */
/* Two links joined by an in-process medium on a simulated clock, one
 * thread: each direction is a wire that drops, duplicates, reorders and
 * delays frames at given rates (per million, seeded), after a fixed
 * latency. The clock jumps to the next thing to happen (a frame arriving,
 * a link's deadline), at least 1 us per step. */
#ifndef TEST_LINK_SIM_H
#define TEST_LINK_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/rand.h"
#include "dataplane/link/link.h"
#include "edist/error.h"

/* Bytes of the sender's ring a frame carries by reference (tx_attach). */
typedef struct sim_ref {
    const uint8_t *p;
    size_t n;
} sim_ref;

typedef struct sim_pkt {
    uint64_t at, order;
    edi_rxbuf *rb; /* the frame, or its head when it has refs */
    size_t len;    /* the whole frame */
    sim_ref ref[2];
    uint8_t nref;
} sim_pkt;

typedef struct sim_wire sim_wire;
struct sim_wire {
    struct sim *sim;
    sim_pkt *q; /* min-heap by (at, order) */
    size_t n, cap;
    uint64_t order;
    uint64_t rng;
    uint32_t drop_ppm, dup_ppm, reorder_ppm, delay_ppm;
    uint64_t latency_ns, delay_ns;
    size_t max_frame;
    bool cut;        /* drops everything */
    long no_buffers; /* tx_alloc refuses this many times */
    /* test hook: true drops this frame (n-th frame sent on the wire) */
    bool (*filter)(sim_wire *w, uint64_t nth, const uint8_t *f, size_t len);
    void *filter_user;
    uint64_t sent, dropped, duplicated, reordered, delayed;
    /* by_ref: the medium gives the sender its ring and frames carry the
     * data as references into it, read only when the frame arrives (as a
     * memif server reads a zero-copy client's memory): a byte changed
     * before the peer had it arrives changed. */
    bool by_ref;
    uint8_t *ring;
    sim_ref pend[2];
    uint8_t npend;
};

typedef struct sim {
    uint64_t now;
    sim_wire ab, ba; /* a -> b, b -> a */
    edi_rlink *a, *b;
    uint64_t steps;
    bool *wake; /* set: the next step comes 1 us later */
} sim;

static bool sim_hit(sim_wire *w, uint32_t ppm)
{
    return ppm > 0 && edi_draw_ppm(&w->rng) < ppm;
}

static bool pkt_less(const sim_pkt *x, const sim_pkt *y)
{
    return x->at < y->at || (x->at == y->at && x->order < y->order);
}

static void wire_push(sim_wire *w, edi_rxbuf *rb, size_t len, uint64_t at,
                      const sim_ref *ref, uint8_t nref)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 256;
        w->q = realloc(w->q, w->cap * sizeof(*w->q));
        if (w->q == NULL)
            abort();
    }
    size_t i = w->n++;
    w->q[i] = (sim_pkt){at, w->order++, rb, len, {{0}}, nref};
    for (uint8_t k = 0; k < nref; k++)
        w->q[i].ref[k] = ref[k];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!pkt_less(&w->q[i], &w->q[p]))
            break;
        sim_pkt t = w->q[i];
        w->q[i] = w->q[p];
        w->q[p] = t;
        i = p;
    }
}

static sim_pkt wire_pop(sim_wire *w)
{
    sim_pkt top = w->q[0];
    w->q[0] = w->q[--w->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < w->n && pkt_less(&w->q[l], &w->q[m]))
            m = l;
        if (r < w->n && pkt_less(&w->q[r], &w->q[m]))
            m = r;
        if (m == i)
            break;
        sim_pkt t = w->q[i];
        w->q[i] = w->q[m];
        w->q[m] = t;
        i = m;
    }
    return top;
}

static int wire_tx_alloc(void *medium, edi_rlink_txbuf *out)
{
    sim_wire *w = medium;
    if (w->no_buffers > 0) {
        w->no_buffers--;
        return EDIST_EAGAIN;
    }
    edi_rxbuf *rb = edi_rxbuf_heap_new(w->max_frame);
    if (rb == NULL)
        abort();
    out->data = edi_rxbuf_data(rb);
    out->cap = w->max_frame;
    out->handle = rb;
    return 0;
}

static void wire_tx_send(void *medium, void *handle, size_t len)
{
    sim_wire *w = medium;
    edi_rxbuf *rb = handle;
    sim_ref ref[2] = {w->pend[0], w->pend[1]};
    uint8_t nref = w->npend;
    w->npend = 0;
    if (len == 0) { /* given back unused */
        edi_rxbuf_unref(rb);
        return;
    }
    uint64_t nth = w->sent++;
    if (w->cut || sim_hit(w, w->drop_ppm) ||
        (w->filter != NULL && w->filter(w, nth, edi_rxbuf_data(rb), len))) {
        w->dropped++;
        edi_rxbuf_unref(rb);
        return;
    }
    uint64_t at = w->sim->now + w->latency_ns;
    if (sim_hit(w, w->reorder_ppm)) {
        /* overtaken by the frames of the next few microseconds */
        at += 1000 + edi_splitmix64(&w->rng) % (4 * w->latency_ns + 1);
        w->reordered++;
    }
    if (sim_hit(w, w->delay_ppm)) {
        at += w->delay_ns;
        w->delayed++;
    }
    if (sim_hit(w, w->dup_ppm)) {
        edi_rxbuf_ref(rb);
        wire_push(w, rb, len, at + edi_splitmix64(&w->rng) % (w->latency_ns + 1), ref, nref);
        w->duplicated++;
    }
    wire_push(w, rb, len, at, ref, nref);
}

static uint8_t *wire_ring_alloc(void *medium, size_t bytes)
{
    sim_wire *w = medium;
    free(w->ring);
    w->ring = malloc(bytes);
    return w->ring;
}

static int wire_tx_attach(void *medium, void *handle, const uint8_t *p, size_t n)
{
    sim_wire *w = medium;
    (void)handle;
    if (w->npend == 2)
        return EDIST_EINVAL;
    w->pend[w->npend++] = (sim_ref){p, n};
    return 0;
}

/* Frames on the wire may still point into it: freed with the wire. */
static void wire_ring_free(void *medium, uint8_t *ring)
{
    (void)medium;
    (void)ring;
}

static edi_rlink_medium wire_medium(sim_wire *w)
{
    edi_rlink_medium m = {
        .tx_alloc = wire_tx_alloc,
        .tx_send = wire_tx_send,
        .tx_flush = NULL,
        .max_frame_bytes = w->max_frame,
        .medium = w,
    };
    if (w->by_ref) {
        m.ring_alloc = wire_ring_alloc;
        m.tx_attach = wire_tx_attach;
        m.ring_free = wire_ring_free;
        m.attach_min_bytes = 64;
    }
    return m;
}

static void sim_wire_init(sim *s, sim_wire *w, uint64_t seed, uint32_t ppm,
                          size_t max_frame)
{
    memset(w, 0, sizeof(*w));
    w->sim = s;
    w->rng = seed;
    w->drop_ppm = w->dup_ppm = w->reorder_ppm = w->delay_ppm = ppm;
    w->latency_ns = 5000;
    w->delay_ns = 300000; /* past the minimum timeout: spurious retransmits */
    w->max_frame = max_frame;
}

/* Frames due on w go to dst. */
static void wire_deliver(sim *s, sim_wire *w, edi_rlink *dst)
{
    while (w->n > 0 && w->q[0].at <= s->now) {
        sim_pkt p = wire_pop(w);
        edi_rxbuf *rb = p.rb;
        if (p.nref > 0) {
            /* the receiving side reads the sender's ring now */
            rb = edi_rxbuf_heap_new(p.len);
            if (rb == NULL)
                abort();
            uint8_t *d = edi_rxbuf_data(rb);
            size_t at = p.len;
            for (uint8_t k = 0; k < p.nref; k++)
                at -= p.ref[k].n;
            memcpy(d, edi_rxbuf_data(p.rb), at);
            for (uint8_t k = 0; k < p.nref; k++) {
                memcpy(d + at, p.ref[k].p, p.ref[k].n);
                at += p.ref[k].n;
            }
            edi_rxbuf_unref(p.rb);
        }
        edi_frame f = {edi_rxbuf_data(rb), p.len, rb};
        if (dst != NULL)
            edi_rlink_input(dst, s->now, &f);
        edi_rxbuf_unref(rb);
    }
}

static void wire_fini(sim_wire *w)
{
    while (w->n > 0) {
        sim_pkt p = wire_pop(w);
        edi_rxbuf_unref(p.rb);
    }
    free(w->q);
    w->q = NULL;
    free(w->ring);
    w->ring = NULL;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* One iteration: frames due in, polls, clock to the next event. Links set
 * to NULL (a dead or stopped node) are skipped. */
static void sim_step(sim *s)
{
    wire_deliver(s, &s->ab, s->b);
    wire_deliver(s, &s->ba, s->a);
    if (s->a != NULL)
        edi_rlink_poll(s->a, s->now);
    if (s->b != NULL)
        edi_rlink_poll(s->b, s->now);
    uint64_t next = UINT64_MAX;
    if (s->a != NULL)
        next = min_u64(next, edi_rlink_next_deadline_ns(s->a));
    if (s->b != NULL)
        next = min_u64(next, edi_rlink_next_deadline_ns(s->b));
    if (s->ab.n > 0)
        next = min_u64(next, s->ab.q[0].at);
    if (s->ba.n > 0)
        next = min_u64(next, s->ba.q[0].at);
    if (s->wake != NULL && *s->wake)
        next = s->now; /* the application has work */
    s->now = next > s->now + 1000 && next != UINT64_MAX ? next : s->now + 1000;
    s->steps++;
}

#endif
