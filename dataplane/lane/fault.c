/* SPDX-License-Identifier: Apache-2.0 */
/* The fault-injecting lane (see fault.h). */
#include <stdlib.h>
#include <string.h>

#include "base/rand.h"
#include "dataplane/lane/fault.h"
#include "edist/error.h"

#define PPM 1000000u
#define DEFAULT_DELAY_NS 1000000u
#define DEFAULT_MAX_HELD 1024u

struct fl_link;

/* A frame held back: its view and a reference on its buffer. */
typedef struct held {
    const uint8_t *data;
    size_t len;
    edi_rxbuf *buf;
    uint8_t copies;           /* 2 when duplicated */
    uint64_t due_ns;          /* delayed: when it goes */
    struct fl_link *link;     /* NULL once its link is gone */
} held;

typedef struct fl_lane {
    edi_lane base;
    edi_lane *inner;
    edi_fault_config cfg;
    uint64_t rng;
    held *delayq;             /* ring of max_held, in due order */
    uint32_t dq_head, dq_count;
    uint32_t held;            /* delayed + reorder slots in use */
    edi_timer timer;          /* wakes the loop when a delay ends */
    struct fl_link *links;
    edi_fault_stats fs;
} fl_lane;

typedef struct fl_link {
    edi_lane_link base;
    edi_lane_link *inner;
    bool has_slot;            /* a frame held for reordering */
    held slot;
    struct fl_link *prev, *next;
} fl_link;

static fl_lane *lane_of(const fl_link *w) { return (fl_lane *)w->base.lane; }

void edi_fault_config_default(edi_fault_config *c)
{
    memset(c, 0, sizeof(*c));
    c->seed = 1;
    c->delay_ns = DEFAULT_DELAY_NS;
    c->max_held = DEFAULT_MAX_HELD;
}

static uint64_t now_ns(fl_lane *lane)
{
    return lane->cfg.now_ns != NULL ? lane->cfg.now_ns(lane->cfg.now_user)
                                    : edi_loop_now_ns(lane->base.loop);
}

static void hold_ref(held *h, const edi_frame *f, uint8_t copies, fl_link *w)
{
    h->data = f->data;
    h->len = f->len;
    h->buf = f->rxbuf;
    h->copies = copies;
    h->link = w;
    edi_rxbuf_ref(f->rxbuf);
}

static void held_count(fl_lane *lane, int delta)
{
    lane->held = (uint32_t)((int)lane->held + delta);
    if (lane->held > lane->fs.held_max)
        lane->fs.held_max = lane->held;
}

/* Delivers f copies times to w, unless w closes meanwhile. */
static void deliver(fl_link *w, const edi_frame *f, uint8_t copies)
{
    for (uint8_t i = 0; i < copies && !w->base.closed; i++)
        edi_lane_deliver(&w->base, f);
}

static void deliver_held(held *h)
{
    edi_frame f = { h->data, h->len, h->buf };
    if (h->link != NULL)
        deliver(h->link, &f, h->copies);
    edi_rxbuf_unref(h->buf);
}

/* ---- the inner lane's handler --------------------------------------------------- */

static void in_frame(edi_lane_link *inner, void *user, const edi_frame *f)
{
    fl_link *w = user;
    if (w == NULL) {
        fl_lane *lane = edi_lane_user(edi_lane_link_lane(inner));
        lane->fs.dropped_unwrapped++;
        lane->base.st.drops++;
        return;
    }
    fl_lane *lane = lane_of(w);
    lane->fs.frames_seen++;
    /* always four draws: the faults of a frame depend on its place in the
     * stream only, whatever happened to the ones before */
    uint32_t r_drop = edi_draw_ppm(&lane->rng), r_dup = edi_draw_ppm(&lane->rng);
    uint32_t r_delay = edi_draw_ppm(&lane->rng), r_reorder = edi_draw_ppm(&lane->rng);
    if (r_drop < lane->cfg.drop_ppm) {
        lane->fs.dropped++;
        lane->base.st.drops++;
        w->base.st.drops++;
        return;
    }
    uint8_t copies = 1;
    if (r_dup < lane->cfg.dup_ppm) {
        copies = 2;
        lane->fs.duplicated++;
    }
    if (r_delay < lane->cfg.delay_ppm) {
        if (lane->held < lane->cfg.max_held) {
            held *h = &lane->delayq[(lane->dq_head + lane->dq_count) % lane->cfg.max_held];
            hold_ref(h, f, copies, w);
            h->due_ns = now_ns(lane) + lane->cfg.delay_ns;
            lane->dq_count++;
            held_count(lane, 1);
            lane->fs.delayed++;
            return;
        }
        lane->fs.hold_full++;
    } else if (r_reorder < lane->cfg.reorder_ppm && !w->has_slot) {
        if (lane->held < lane->cfg.max_held) {
            hold_ref(&w->slot, f, copies, w);
            w->has_slot = true;
            held_count(lane, 1);
            return;
        }
        lane->fs.hold_full++;
    }
    deliver(w, f, copies);
    if (w->has_slot) {
        /* the held one comes after the frame that overtook it */
        w->has_slot = false;
        held_count(lane, -1);
        lane->fs.reordered++;
        deliver_held(&w->slot);
    }
}

static void in_writable(edi_lane_link *inner, void *user)
{
    (void)inner;
    if (user != NULL)
        edi_lane_writable(&((fl_link *)user)->base);
}

/* Lets go of what w holds (counted as lost) and unlists it. */
static void link_release(fl_link *w)
{
    fl_lane *lane = lane_of(w);
    if (w->has_slot) {
        w->has_slot = false;
        held_count(lane, -1);
        edi_rxbuf_unref(w->slot.buf);
        lane->fs.dropped_at_close++;
        lane->base.st.drops++;
    }
    for (uint32_t k = 0; k < lane->dq_count; k++) {
        held *h = &lane->delayq[(lane->dq_head + k) % lane->cfg.max_held];
        if (h->link != w)
            continue;
        h->link = NULL; /* skipped when due */
        lane->fs.dropped_at_close++;
        lane->base.st.drops++;
    }
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        lane->links = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
}

static void in_closed(edi_lane_link *inner, void *user, int reason)
{
    (void)inner;
    fl_link *w = user;
    if (w == NULL)
        return;
    link_release(w);
    edi_lane_link_gone(&w->base, reason);
    free(w);
}

static void in_sent(edi_lane_link *inner, void *user, size_t pending_bytes)
{
    (void)inner;
    fl_link *w = user;
    if (w != NULL)
        edi_lane_sent(&w->base, pending_bytes);
}

static void in_up(edi_lane_link *inner, void *user)
{
    (void)inner;
    fl_link *w = user;
    if (w != NULL)
        edi_lane_up(&w->base);
}

static const edi_lane_handler inner_handler = { in_frame, in_writable, in_closed,
                                                in_sent, in_up };

/* ---- the wrapper's function table ---------------------------------------------------- */

static void timer_fn(edi_loop *loop, edi_timer *t, void *arg)
{
    /* nothing to do: the iteration polls the wrapper, which releases */
    (void)loop;
    (void)t;
    (void)arg;
}

static uint32_t fl_poll(edi_lane *base, uint32_t budget)
{
    fl_lane *lane = (fl_lane *)base;
    uint32_t work = edi_lane_poll(lane->inner, budget);
    uint64_t now = now_ns(lane);
    while (lane->dq_count > 0) {
        held *h = &lane->delayq[lane->dq_head];
        if (h->due_ns > now)
            break;
        held copy = *h;
        lane->dq_head = (lane->dq_head + 1) % lane->cfg.max_held;
        lane->dq_count--;
        held_count(lane, -1);
        if (copy.link != NULL)
            deliver_held(&copy);
        else
            edi_rxbuf_unref(copy.buf);
        work++;
    }
    /* held for reordering, and nothing came after it this time */
    for (fl_link *w = lane->links, *next; w != NULL; w = next) {
        next = w->next;
        if (!w->has_slot)
            continue;
        w->has_slot = false;
        held_count(lane, -1);
        lane->fs.reorder_unpaired++;
        deliver_held(&w->slot);
        work++;
    }
    if (lane->dq_count > 0 && lane->cfg.now_ns == NULL) {
        uint64_t due = lane->delayq[lane->dq_head].due_ns;
        uint64_t ms = due > now ? (due - now + 999999u) / 1000000u : 1;
        if (edi_loop_timer_start(base->loop, &lane->timer, ms, 0, timer_fn, lane) < 0)
            edi_loop_timer_cancel(base->loop, &lane->timer); /* polled anyway when busy */
    }
    return work;
}

static void fl_flush(edi_lane *base)
{
    edi_lane *inner = ((fl_lane *)base)->inner;
    if (inner->flush != NULL)
        inner->flush(inner);
}

static bool fl_pending(edi_lane *base)
{
    fl_lane *lane = (fl_lane *)base;
    for (fl_link *w = lane->links; w != NULL; w = w->next)
        if (w->has_slot)
            return true;
    return lane->inner->pending != NULL && lane->inner->pending(lane->inner);
}

static int fl_open(edi_loop *loop, const void *params, const edi_lane_handler *h,
                   void *user, edi_lane **out)
{
    *out = NULL;
    const edi_fault_params *p = params;
    if (p == NULL || p->inner_ops == NULL || p->faults.drop_ppm > PPM ||
        p->faults.dup_ppm > PPM || p->faults.delay_ppm > PPM ||
        p->faults.reorder_ppm > PPM || p->faults.max_held == 0)
        return edist_set_error(EDIST_EINVAL, "fault lane: needs an inner lane, rates "
                                             "up to 1000000 ppm and max_held > 0");
    fl_lane *lane = calloc(1, sizeof(*lane));
    if (lane == NULL)
        return edist_set_error(EDIST_ENOMEM, "fault lane: alloc");
    lane->cfg = p->faults;
    lane->rng = p->faults.seed;
    edi_timer_init(&lane->timer);
    lane->delayq = calloc(lane->cfg.max_held, sizeof(*lane->delayq));
    if (lane->delayq == NULL) {
        free(lane);
        return edist_set_error(EDIST_ENOMEM, "fault lane: %u held frames", p->faults.max_held);
    }
    int rc = edi_lane_init(&lane->base, &edi_fault_lane_ops, loop, h, user, fl_flush,
                           fl_pending);
    if (rc == 0)
        rc = edi_lane_open(p->inner_ops, loop, p->inner_params, &inner_handler, lane,
                           &lane->inner);
    if (rc < 0) {
        edi_lane_fini(&lane->base);
        free(lane->delayq);
        free(lane);
        return rc;
    }
    /* polled (and flushed) through the wrapper, not on its own */
    edi_lane_fini(lane->inner);
    *out = &lane->base;
    return 0;
}

static void fl_close(edi_lane *base)
{
    fl_lane *lane = (fl_lane *)base;
    while (lane->links != NULL) {
        fl_link *w = lane->links;
        link_release(w);
        free(w);
    }
    edi_lane_close(lane->inner); /* its links go without callbacks */
    while (lane->dq_count > 0) {
        edi_rxbuf_unref(lane->delayq[lane->dq_head].buf);
        lane->dq_head = (lane->dq_head + 1) % lane->cfg.max_held;
        lane->dq_count--;
    }
    edi_loop_timer_cancel(base->loop, &lane->timer);
    edi_lane_fini(base);
    free(lane->delayq);
    free(lane);
}

static void fl_link_close(edi_lane_link *base)
{
    edi_lane_link_close(((fl_link *)base)->inner); /* in_closed follows */
}

static int fl_tx_reserve(edi_lane_link *base, size_t max_len, uint8_t **frame)
{
    return edi_lane_tx_reserve(((fl_link *)base)->inner, max_len, frame);
}

static int fl_tx_commit(edi_lane_link *base, size_t len)
{
    return edi_lane_tx_commit(((fl_link *)base)->inner, len);
}

static int fl_tx_batch(edi_lane_link *base, const edi_lane_txframe *frames, size_t n,
                       size_t *accepted)
{
    return edi_lane_tx_batch(((fl_link *)base)->inner, frames, n, accepted);
}

static int fl_tx_flush(edi_lane_link *base)
{
    return edi_lane_tx_flush(((fl_link *)base)->inner);
}

const edi_lane_ops edi_fault_lane_ops = {
    .name = "fault",
    .open = fl_open,
    .close = fl_close,
    .link_close = fl_link_close,
    .tx_reserve = fl_tx_reserve,
    .tx_commit = fl_tx_commit,
    .tx_batch = fl_tx_batch,
    .tx_flush = fl_tx_flush,
    .poll = fl_poll,
};

edi_lane *edi_fault_lane_inner(edi_lane *lane)
{
    return lane->ops == &edi_fault_lane_ops ? ((fl_lane *)lane)->inner : NULL;
}

int edi_fault_lane_link_wrap(edi_lane *base, edi_lane_link *inner, void *user,
                             edi_lane_link **out)
{
    *out = NULL;
    if (base == NULL || base->ops != &edi_fault_lane_ops || inner == NULL ||
        edi_lane_link_lane(inner) != ((fl_lane *)base)->inner)
        return edist_set_error(EDIST_EINVAL, "fault lane: wrap needs a link of its inner lane");
    fl_lane *lane = (fl_lane *)base;
    fl_link *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return edist_set_error(EDIST_ENOMEM, "fault lane: link alloc");
    edi_lane_link_init(&w->base, base, user);
    w->inner = inner;
    w->next = lane->links;
    if (lane->links != NULL)
        lane->links->prev = w;
    lane->links = w;
    edi_lane_link_set_user(inner, w);
    *out = &w->base;
    return 0;
}

void edi_fault_lane_get_stats(const edi_lane *base, edi_fault_stats *out)
{
    const fl_lane *lane = (const fl_lane *)base;
    *out = lane->fs;
    out->held_now = lane->held;
}
