/* SPDX-License-Identifier: Apache-2.0 */
/* The loopback lane (see loopback.h). A pair holds one bounded queue per
 * direction under a mutex (the two ends may be on different threads); each
 * end keeps its unflushed batch to itself and moves it into the queue at
 * the batch boundary, then wakes the receiving loop. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/lane/loopback.h"
#include "edist/error.h"

typedef struct lb_ent {
    edi_rxbuf *buf;
    size_t len;
} lb_ent;

/* Frames from one end to the other; under the pair's mu. */
typedef struct lb_dir {
    lb_ent *ring;
    uint32_t cap, head, count;
    size_t bytes;
    bool want_writable;       /* the sender met EDIST_EAGAIN */
} lb_dir;

struct lb_link;

typedef struct lb_pair {
    pthread_mutex_t mu;
    lb_dir dir[2];            /* dir[i]: sent by end i */
    struct lb_link *end[2];   /* NULL once that end is gone */
    bool closed[2];           /* end i sends no more */
    atomic_int refs;          /* ends not yet gone */
} lb_pair;

typedef struct lb_lane {
    edi_lane base;
    edi_loopback_params p;
    struct lb_link *links;
} lb_lane;

typedef struct lb_link {
    edi_lane_link base;
    lb_pair *pair;
    int side;
    struct lb_link *prev, *next;  /* the lane's links */
    /* sender side, loop thread only */
    edi_rxbuf *resv;
    size_t resv_max;
    lb_ent *batch;                /* committed, not yet flushed */
    uint32_t nbatch, batch_cap;
    size_t batch_bytes;
    bool gone_pending;            /* closed here: on_closed(0) from the poll */
    atomic_int writable;          /* set by the receiver: room again */
} lb_link;

void edi_loopback_params_default(edi_loopback_params *p)
{
    p->max_frames = 1024;
    p->max_bytes = 1024u * 1024u;
    p->max_frame_bytes = 1024u * 1024u;
}

static lb_lane *lane_of(const lb_link *l) { return (lb_lane *)l->base.lane; }

static void pair_unref(lb_pair *p)
{
    if (atomic_fetch_sub(&p->refs, 1) != 1)
        return;
    for (int d = 0; d < 2; d++) {
        lb_dir *q = &p->dir[d];
        for (uint32_t k = 0; k < q->count; k++)
            edi_rxbuf_unref(q->ring[(q->head + k) % q->cap].buf);
        free(q->ring);
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* The receiving loop of end `side`'s frames; under mu. */
static void wake_end(lb_pair *p, int side)
{
    if (p->end[side] != NULL)
        edi_loop_wake(p->end[side]->base.lane->loop);
}

/* Unlinks l from its lane and its pair (dropping what was queued for it,
 * and its own unflushed batch) and frees it. No callback. */
static void link_free(lb_link *l)
{
    lb_lane *lane = lane_of(l);
    if (l->prev != NULL)
        l->prev->next = l->next;
    else
        lane->links = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
    lb_pair *p = l->pair;
    uint64_t dropped = l->nbatch;
    for (uint32_t k = 0; k < l->nbatch; k++)
        edi_rxbuf_unref(l->batch[k].buf);
    free(l->batch);
    if (l->resv != NULL)
        edi_rxbuf_unref(l->resv);
    pthread_mutex_lock(&p->mu);
    lb_dir *in = &p->dir[1 - l->side];
    dropped += in->count;
    for (uint32_t k = 0; k < in->count; k++)
        edi_rxbuf_unref(in->ring[(in->head + k) % in->cap].buf);
    in->head = in->count = 0;
    in->bytes = 0;
    p->closed[l->side] = true;
    p->end[l->side] = NULL;
    wake_end(p, 1 - l->side); /* the peer sees the close */
    pthread_mutex_unlock(&p->mu);
    lane->base.st.drops += dropped;
    pair_unref(p);
    free(l);
}

/* ---- transmit ------------------------------------------------------------------ */

/* Room for one more frame of len bytes in l's direction? Arms the
 * receiver's "tell the sender" when not. */
static int admit(lb_link *l, size_t len)
{
    lb_lane *lane = lane_of(l);
    if (len > lane->p.max_frame_bytes)
        return edist_set_error(EDIST_EINVAL, "loopback: frame of %zu bytes (at most %zu)",
                               len, lane->p.max_frame_bytes);
    lb_pair *p = l->pair;
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    lb_dir *q = &p->dir[l->side];
    uint32_t frames = q->count + l->nbatch;
    size_t bytes = q->bytes + l->batch_bytes;
    if (p->closed[1 - l->side]) {
        rc = edist_set_error(EDIST_ECLOSED, "loopback: the peer closed");
    } else if (frames >= lane->p.max_frames ||
               (frames > 0 && bytes + len > lane->p.max_bytes)) {
        q->want_writable = true;
        rc = EDIST_EAGAIN;
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static int batch_push(lb_link *l, edi_rxbuf *b, size_t len)
{
    if (l->nbatch == l->batch_cap) {
        uint32_t cap = l->batch_cap ? l->batch_cap * 2 : 16;
        lb_ent *nb = realloc(l->batch, cap * sizeof(*nb));
        if (nb == NULL)
            return edist_set_error(EDIST_ENOMEM, "loopback: batch");
        l->batch = nb;
        l->batch_cap = cap;
    }
    l->batch[l->nbatch].buf = b;
    l->batch[l->nbatch].len = len;
    l->nbatch++;
    l->batch_bytes += len;
    return 0;
}

static int lb_tx_reserve(edi_lane_link *base, size_t max_len, uint8_t **frame)
{
    lb_link *l = (lb_link *)base;
    if (l->resv != NULL) { /* abandoned */
        edi_rxbuf_unref(l->resv);
        l->resv = NULL;
    }
    int rc = admit(l, max_len);
    if (rc < 0)
        return rc;
    l->resv = edi_rxbuf_heap_new(max_len);
    if (l->resv == NULL)
        return edist_set_error(EDIST_ENOMEM, "loopback: frame of %zu bytes", max_len);
    l->resv_max = max_len;
    *frame = edi_rxbuf_data(l->resv);
    return 0;
}

static int lb_tx_commit(edi_lane_link *base, size_t len)
{
    lb_link *l = (lb_link *)base;
    edi_rxbuf *b = l->resv;
    if (b == NULL)
        return edist_set_error(EDIST_EINVAL, "loopback: commit without a reservation");
    if (len > l->resv_max)
        return edist_set_error(EDIST_EINVAL, "loopback: commit of %zu bytes, %zu reserved",
                               len, l->resv_max);
    l->resv = NULL;
    int rc = batch_push(l, b, len);
    if (rc < 0)
        edi_rxbuf_unref(b);
    return rc;
}

static int lb_tx_batch(edi_lane_link *base, const edi_lane_txframe *frames, size_t n,
                       size_t *accepted)
{
    lb_link *l = (lb_link *)base;
    if (l->resv != NULL) {
        edi_rxbuf_unref(l->resv);
        l->resv = NULL;
    }
    size_t i = 0;
    int rc = 0;
    for (; i < n; i++) {
        const edi_lane_txframe *f = &frames[i];
        size_t len = f->head_len + f->body_len;
        if ((rc = admit(l, len)) < 0)
            break;
        edi_rxbuf *b = edi_rxbuf_heap_new(len);
        if (b == NULL) {
            rc = edist_set_error(EDIST_ENOMEM, "loopback: frame of %zu bytes", len);
            break;
        }
        uint8_t *d = edi_rxbuf_data(b);
        if (f->head_len > 0)
            memcpy(d, f->head, f->head_len);
        if (f->body_len > 0)
            memcpy(d + f->head_len, f->body, f->body_len);
        if ((rc = batch_push(l, b, len)) < 0) {
            edi_rxbuf_unref(b);
            break;
        }
        if (f->release != NULL) /* copied: the body is done with */
            f->release(f->release_arg, f->body);
    }
    *accepted = i;
    return rc;
}

/* The batch boundary: the committed frames go to the peer. */
static void flush_link(lb_link *l)
{
    if (l->nbatch == 0)
        return;
    lb_pair *p = l->pair;
    pthread_mutex_lock(&p->mu);
    lb_dir *q = &p->dir[l->side];
    if (p->closed[1 - l->side]) {
        /* the peer is closing or gone: nobody will take these */
        pthread_mutex_unlock(&p->mu);
        for (uint32_t k = 0; k < l->nbatch; k++)
            edi_rxbuf_unref(l->batch[k].buf);
        lane_of(l)->base.st.drops += l->nbatch;
        l->base.st.drops += l->nbatch;
        l->nbatch = 0;
        l->batch_bytes = 0;
        return;
    }
    if (q->count + l->nbatch > q->cap) {
        /* admit bounded count + batch by the sending lane's max_frames */
        uint32_t cap = q->cap ? q->cap : 16;
        while (cap < q->count + l->nbatch)
            cap *= 2;
        lb_ent *r = malloc(cap * sizeof(*r));
        if (r == NULL) {
            pthread_mutex_unlock(&p->mu);
            return; /* stays in the batch: the next flush tries again */
        }
        for (uint32_t k = 0; k < q->count; k++)
            r[k] = q->ring[(q->head + k) % q->cap];
        free(q->ring);
        q->ring = r;
        q->cap = cap;
        q->head = 0;
    }
    for (uint32_t k = 0; k < l->nbatch; k++)
        q->ring[(q->head + q->count + k) % q->cap] = l->batch[k];
    q->count += l->nbatch;
    q->bytes += l->batch_bytes;
    wake_end(p, 1 - l->side);
    pthread_mutex_unlock(&p->mu);
    l->nbatch = 0;
    l->batch_bytes = 0;
}

static int lb_tx_flush(edi_lane_link *base)
{
    flush_link((lb_link *)base);
    return 0;
}

static void lb_lane_flush(edi_lane *base)
{
    for (lb_link *l = ((lb_lane *)base)->links; l != NULL; l = l->next)
        flush_link(l);
}

/* ---- receive ---------------------------------------------------------------------- */

/* Delivers up to budget frames to l; returns the frames delivered, or
 * budget + 1 if l is gone (freed). */
static uint32_t poll_link(lb_link *l, uint32_t budget)
{
    lb_pair *p = l->pair;
    int in_side = 1 - l->side;
    lb_ent got[64];
    uint32_t done = 0;
    for (;;) {
        uint32_t want = budget - done < 64 ? budget - done : 64;
        uint32_t n = 0;
        bool peer_closed, empty;
        lb_link *sender = NULL;
        pthread_mutex_lock(&p->mu);
        lb_dir *q = &p->dir[in_side];
        lb_lane *slane = NULL;
        while (n < want && q->count > 0) {
            got[n++] = q->ring[q->head];
            q->bytes -= q->ring[q->head].len;
            q->head = (q->head + 1) % q->cap;
            q->count--;
        }
        if (q->want_writable && p->end[in_side] != NULL) {
            sender = p->end[in_side];
            slane = lane_of(sender);
            /* half of the sender's bounds free again */
            if (q->count <= slane->p.max_frames / 2 && q->bytes <= slane->p.max_bytes / 2) {
                q->want_writable = false;
                atomic_store(&sender->writable, 1);
                edi_loop_wake(slane->base.loop);
            }
        }
        peer_closed = p->closed[in_side];
        empty = q->count == 0;
        pthread_mutex_unlock(&p->mu);
        for (uint32_t k = 0; k < n; k++) {
            edi_frame f = { edi_rxbuf_data(got[k].buf), got[k].len, got[k].buf };
            if (!l->base.closed)
                edi_lane_deliver(&l->base, &f);
            else
                lane_of(l)->base.st.drops++;
            edi_rxbuf_unref(got[k].buf);
        }
        done += n;
        if (empty && peer_closed && !l->base.closed) {
            /* everything the peer sent arrived: it is gone for us too */
            edi_lane_link_gone(&l->base, EDIST_ECLOSED);
            link_free(l);
            return budget + 1;
        }
        if (n < want || done >= budget)
            break;
    }
    return done;
}

static uint32_t lb_poll(edi_lane *base, uint32_t budget)
{
    lb_lane *lane = (lb_lane *)base;
    uint32_t work = 0;
    for (lb_link *l = lane->links, *next; l != NULL; l = next) {
        next = l->next;
        if (l->gone_pending) {
            edi_lane_link_gone(&l->base, 0);
            link_free(l);
            work++;
            continue;
        }
        if (atomic_exchange(&l->writable, 0)) {
            edi_lane_writable(&l->base);
            work++;
        }
        /* a callback may free links; `next` is re-read when this one went */
        uint32_t n = poll_link(l, budget);
        if (n > budget) {
            work++;
            continue;
        }
        work += n;
    }
    return work;
}

static bool lb_pending(edi_lane *base)
{
    for (lb_link *l = ((lb_lane *)base)->links; l != NULL; l = l->next) {
        if (l->gone_pending || atomic_load(&l->writable))
            return true;
        lb_pair *p = l->pair;
        pthread_mutex_lock(&p->mu);
        bool any = p->dir[1 - l->side].count > 0 || p->closed[1 - l->side];
        pthread_mutex_unlock(&p->mu);
        if (any)
            return true;
    }
    return false;
}

/* ---- lifecycle -------------------------------------------------------------------- */

static int lb_open(edi_loop *loop, const void *params, const edi_lane_handler *h,
                   void *user, edi_lane **out)
{
    *out = NULL;
    edi_loopback_params p;
    if (params != NULL)
        p = *(const edi_loopback_params *)params;
    else
        edi_loopback_params_default(&p);
    if (p.max_frames == 0 || p.max_bytes == 0 || p.max_frame_bytes == 0)
        return edist_set_error(EDIST_EINVAL, "loopback: bounds must be > 0");
    lb_lane *lane = calloc(1, sizeof(*lane));
    if (lane == NULL)
        return edist_set_error(EDIST_ENOMEM, "loopback: lane alloc");
    lane->p = p;
    int rc = edi_lane_init(&lane->base, &edi_loopback_lane_ops, loop, h, user,
                           lb_lane_flush, lb_pending);
    if (rc < 0) {
        free(lane);
        return rc;
    }
    *out = &lane->base;
    return 0;
}

static void lb_close(edi_lane *base)
{
    lb_lane *lane = (lb_lane *)base;
    while (lane->links != NULL)
        link_free(lane->links);
    edi_lane_fini(base);
    free(lane);
}

static void lb_link_close(edi_lane_link *base)
{
    lb_link *l = (lb_link *)base;
    flush_link(l); /* what was sent still arrives */
    pthread_mutex_lock(&l->pair->mu);
    l->pair->closed[l->side] = true;
    wake_end(l->pair, 1 - l->side);
    pthread_mutex_unlock(&l->pair->mu);
    l->gone_pending = true; /* on_closed(0) from the next poll */
}

const edi_lane_ops edi_loopback_lane_ops = {
    .name = "loopback",
    .open = lb_open,
    .close = lb_close,
    .link_close = lb_link_close,
    .tx_reserve = lb_tx_reserve,
    .tx_commit = lb_tx_commit,
    .tx_batch = lb_tx_batch,
    .tx_flush = lb_tx_flush,
    .poll = lb_poll,
};

static lb_link *link_new(lb_lane *lane, lb_pair *p, int side, void *user)
{
    lb_link *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    edi_lane_link_init(&l->base, &lane->base, user);
    l->pair = p;
    l->side = side;
    atomic_init(&l->writable, 0);
    l->next = lane->links;
    if (lane->links != NULL)
        lane->links->prev = l;
    lane->links = l;
    p->end[side] = l;
    return l;
}

int edi_loopback_link_pair(edi_lane *a, void *user_a, edi_lane *b, void *user_b,
                           edi_lane_link **link_a, edi_lane_link **link_b)
{
    *link_a = *link_b = NULL;
    if (a == NULL || b == NULL || a->ops != &edi_loopback_lane_ops ||
        b->ops != &edi_loopback_lane_ops)
        return edist_set_error(EDIST_EINVAL, "loopback: a pair needs two loopback lanes");
    lb_pair *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return edist_set_error(EDIST_ENOMEM, "loopback: pair alloc");
    pthread_mutex_init(&p->mu, NULL);
    atomic_init(&p->refs, 2);
    lb_link *la = link_new((lb_lane *)a, p, 0, user_a);
    lb_link *lb = la != NULL ? link_new((lb_lane *)b, p, 1, user_b) : NULL;
    if (lb == NULL) {
        if (la != NULL) {
            ((lb_lane *)a)->links = la->next;
            if (la->next != NULL)
                la->next->prev = NULL;
            free(la);
        }
        pthread_mutex_destroy(&p->mu);
        free(p);
        return edist_set_error(EDIST_ENOMEM, "loopback: link alloc");
    }
    *link_a = &la->base;
    *link_b = &lb->base;
    return 0;
}
