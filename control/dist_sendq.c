/* SPDX-License-Identifier: Apache-2.0 */
#include "control/dist_sendq.h"

#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "control/dist_flags.h"
#include "edist/error.h"

/* One pushed frame. Alive while it is queued in its stream (one
 * reference) or has units out (one reference each). */
struct edi_sendq_msg {
    edi_sendq *q;
    edi_sendq_msg *next; /* in its stream */
    const uint8_t *frame;
    size_t len;
    uint32_t refs;
    bool started;                 /* a first unit was handed out */
    bool fragmenting;             /* units come from frag */
    edi_sendq_release_fn release; /* NULL: frame is inline (copied) */
    void *release_arg;
    uint64_t pushed_ns; /* ops.now_ns at push, if given */
    edi_dist_frag frag;
    uint8_t inline_frame[]; /* copied frames */
};

/* The messages of one sender not yet fully handed out. Exists only while
 * it has some: then it is in the hash and in the round-robin ring. */
typedef struct sq_stream {
    uint64_t sender;
    edi_sendq_msg *head, *tail;
    struct sq_stream *rr_next;   /* round-robin FIFO */
    struct sq_stream *hash_next; /* bucket chain */
    bool reserved;               /* unparked: a sequence is kept for it */
} sq_stream;

struct edi_sendq {
    uint64_t flags;
    size_t frag_bytes;
    size_t limit;
    edi_sendq_ops ops;
    void *user;
    bool detached;
    bool want_writable;
    size_t bytes;  /* bytes_pending */
    uint64_t msgs; /* messages alive */
    sq_stream **buckets;
    uint32_t nbuckets; /* power of 2 */
    uint32_t nstreams;
    sq_stream *rr_head, *rr_tail;
    /* Streams whose next message would open a fragment sequence while
     * open_max are open: they wait here, in order,
     * and one goes back to the round robin as each sequence ends, with
     * that sequence kept for it (reserved) so that no stream ahead of it
     * takes it. Open plus reserved never pass the bound, so while any
     * wait here the round robin holds their holders. */
    sq_stream *park_head, *park_tail;
    uint32_t open_seqs, reserved, open_max;
    edi_sendq_stats st;
};

#define SQ_BUCKETS_MIN 16u

/* ---- streams ------------------------------------------------------------- */

static uint32_t bucket_of(const edi_sendq *q, uint64_t sender)
{
    /* Fibonacci hashing: pid ids are small and dense. */
    uint64_t h = sender * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(h >> 32) & (q->nbuckets - 1);
}

static sq_stream *stream_find(const edi_sendq *q, uint64_t sender)
{
    for (sq_stream *s = q->buckets[bucket_of(q, sender)]; s; s = s->hash_next)
        if (s->sender == sender)
            return s;
    return NULL;
}

/* Double the buckets when streams outnumber them twice; a failed grow only
 * makes chains longer. */
static void maybe_grow(edi_sendq *q)
{
    if (q->nstreams < 2 * q->nbuckets || q->nbuckets >= (1u << 24))
        return;
    uint32_t nb = q->nbuckets * 2;
    sq_stream **b = calloc(nb, sizeof *b);
    if (!b)
        return;
    sq_stream **old = q->buckets;
    uint32_t on = q->nbuckets;
    q->buckets = b;
    q->nbuckets = nb;
    for (uint32_t i = 0; i < on; i++) {
        sq_stream *s = old[i];
        while (s) {
            sq_stream *n = s->hash_next;
            uint32_t k = bucket_of(q, s->sender);
            s->hash_next = b[k];
            b[k] = s;
            s = n;
        }
    }
    free(old);
}

static void stream_unhash(edi_sendq *q, sq_stream *s)
{
    sq_stream **pp = &q->buckets[bucket_of(q, s->sender)];
    while (*pp && *pp != s)
        pp = &(*pp)->hash_next;
    if (*pp)
        *pp = s->hash_next;
    q->nstreams--;
}

/* The round robin and the parked list: FIFOs through rr_next. */
static void fifo_append(sq_stream **head, sq_stream **tail, sq_stream *s)
{
    s->rr_next = NULL;
    if (*tail)
        (*tail)->rr_next = s;
    else
        *head = s;
    *tail = s;
}

static void rr_append(edi_sendq *q, sq_stream *s)
{
    fifo_append(&q->rr_head, &q->rr_tail, s);
}

static void unpark_one(edi_sendq *q)
{
    sq_stream *s = q->park_head;
    if (!s)
        return;
    q->park_head = s->rr_next;
    if (!q->park_head)
        q->park_tail = NULL;
    s->reserved = true;
    q->reserved++;
    rr_append(q, s);
}

/* ---- messages ------------------------------------------------------------ */

static void sq_free(edi_sendq *q)
{
    free(q->buckets);
    free(q);
}

static void msg_unref(edi_sendq_msg *m)
{
    if (--m->refs > 0)
        return;
    edi_sendq *q = m->q;
    q->bytes -= m->len;
    q->msgs--;
    if (!q->detached && q->ops.on_sent && q->ops.now_ns)
        q->ops.on_sent(q->user, q->ops.now_ns(q->user) - m->pushed_ns);
    if (m->release)
        m->release(m->release_arg, m->frame);
    free(m);
    if (q->detached) {
        if (q->msgs == 0)
            sq_free(q);
        return;
    }
    if (q->want_writable && q->bytes <= q->limit / 2) {
        q->want_writable = false;
        if (q->ops.on_writable)
            q->ops.on_writable(q->user);
    }
}

static int check_frame(const uint8_t *frame, size_t len)
{
    if (!frame || len < 5 || len - 4 > UINT32_MAX ||
        edi_get_be32(frame) != len - 4)
        return edist_set_error(EDIST_EINVAL,
                               "sendq: not a whole distribution frame");
    return 0;
}

/* Admission: the limit, unless forced or the queue is empty. */
static int admit(edi_sendq *q, size_t len, unsigned flags)
{
    if (q->detached)
        return edist_set_error(EDIST_ECLOSED, "sendq: connection gone");
    if ((flags & EDI_SENDQ_FORCE) || q->bytes == 0)
        return 0;
    if (len > q->limit || q->bytes > q->limit - len) {
        q->want_writable = true;
        q->st.refused++;
        return edist_set_error(EDIST_EAGAIN,
                               "send queue full (%zu bytes pending, limit "
                               "%zu)",
                               q->bytes, q->limit);
    }
    return 0;
}

int edi_sendq_admit(edi_sendq *q, size_t len)
{
    if (!q)
        return edist_set_error(EDIST_EINVAL, "sendq: no queue");
    return admit(q, len, 0);
}

static int enqueue(edi_sendq *q, uint64_t sender, edi_sendq_msg *m)
{
    sq_stream *s = stream_find(q, sender);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s)
            return edist_set_error(EDIST_ENOMEM, "sendq: no memory");
        s->sender = sender;
        uint32_t k = bucket_of(q, sender);
        s->hash_next = q->buckets[k];
        q->buckets[k] = s;
        q->nstreams++;
        rr_append(q, s);
        maybe_grow(q);
    }
    m->q = q;
    m->refs = 1; /* the stream's */
    if (q->ops.now_ns && q->ops.on_sent)
        m->pushed_ns = q->ops.now_ns(q->user);
    if (s->tail)
        s->tail->next = m;
    else
        s->head = m;
    s->tail = m;
    q->bytes += m->len;
    q->msgs++;
    q->st.pushed++;
    if (q->bytes > q->st.max_bytes_pending)
        q->st.max_bytes_pending = q->bytes;
    return 0;
}

int edi_sendq_push(edi_sendq *q, uint64_t sender, const uint8_t *frame,
                   size_t len, unsigned flags)
{
    if (!q || sender == 0)
        return edist_set_error(EDIST_EINVAL, "sendq: no queue or sender 0");
    int rc = check_frame(frame, len);
    if (rc)
        return rc;
    if ((rc = admit(q, len, flags)) != 0)
        return rc;
    edi_sendq_msg *m = malloc(sizeof *m + len);
    if (!m)
        return edist_set_error(EDIST_ENOMEM, "sendq: no memory for %zu bytes",
                               len);
    memset(m, 0, sizeof *m);
    memcpy(m->inline_frame, frame, len);
    m->frame = m->inline_frame;
    m->len = len;
    if ((rc = enqueue(q, sender, m)) != 0)
        free(m);
    return rc;
}

int edi_sendq_push_owned(edi_sendq *q, uint64_t sender, const uint8_t *frame,
                         size_t len, edi_sendq_release_fn release, void *arg,
                         unsigned flags)
{
    if (!q || sender == 0 || !release)
        return edist_set_error(EDIST_EINVAL,
                               "sendq: no queue, sender 0 or no release");
    int rc = check_frame(frame, len);
    if (rc)
        return rc;
    if ((rc = admit(q, len, flags)) != 0)
        return rc;
    edi_sendq_msg *m = calloc(1, sizeof *m);
    if (!m)
        return edist_set_error(EDIST_ENOMEM, "sendq: no memory");
    m->frame = frame;
    m->len = len;
    m->release = release;
    m->release_arg = arg;
    if ((rc = enqueue(q, sender, m)) != 0)
        free(m);
    return rc;
}

/* ---- handing out ----------------------------------------------------------
 */

int edi_sendq_next(edi_sendq *q, edi_sendq_unit *u)
{
    if (!q || q->detached || !q->rr_head)
        return 0;
    sq_stream *s;
    edi_sendq_msg *m;
    for (;;) {
        /* never empty here: at the bound, the open sequences' streams
         * are in the round robin */
        s = q->rr_head;
        q->rr_head = s->rr_next;
        if (!q->rr_head)
            q->rr_tail = NULL;
        m = s->head;
        if (s->reserved || m->started ||
            q->open_seqs + q->reserved < q->open_max ||
            !edi_dist_needs_fragments(m->len, q->flags, q->frag_bytes))
            break;
        fifo_append(&q->park_head, &q->park_tail, s);
        q->st.sequences_waited++;
    }
    bool had_reserved = s->reserved;
    if (had_reserved) {
        s->reserved = false;
        q->reserved--;
    }
    memset(u, 0, offsetof(edi_sendq_unit, hdr));
    u->msg = m;
    u->sender = s->sender;
    if (!m->started) {
        m->started = true;
        /* The sender id is the SequenceId: unique among the senders with
         * an open sequence on this connection, and never 0. A frame the
         * fragmenter does not take (not the header form) goes whole. */
        if (edi_dist_needs_fragments(m->len, q->flags, q->frag_bytes) &&
            edi_dist_frag_init(&m->frag, m->frame, m->len, s->sender,
                               q->frag_bytes) > 1) {
            m->fragmenting = true;
            q->st.fragmented_messages++;
            q->open_seqs++;
        } else if (had_reserved) {
            unpark_one(q); /* it went whole: its sequence to the next */
        }
    }
    bool done;
    if (m->fragmenting) {
        struct iovec iov[2];
        bool first = m->frag.taken == 0;
        int rc = edi_dist_frag_next_iov(&m->frag, u->hdr, iov);
        /* rc < 0 cannot happen: the message is taken off the stream after
         * its last fragment. */
        done = rc <= 0;
        u->head = u->hdr + 4;
        u->head_len = iov[0].iov_len - 4;
        u->body = iov[1].iov_base;
        u->body_len = iov[1].iov_len;
        u->kind = first ? EDI_SENDQ_FRAG_FIRST : EDI_SENDQ_FRAG_CONT;
        q->st.fragments++;
    } else {
        done = true;
        u->head = NULL;
        u->head_len = 0;
        u->body = m->frame + 4;
        u->body_len = m->len - 4;
        u->kind = EDI_SENDQ_WHOLE;
        /* Keep hdr meaningful for callers that log it. */
        edi_put_be32(u->hdr, (uint32_t)(m->len - 4));
    }
    u->last = done;
    m->refs++; /* the unit's */
    q->st.units++;
    q->st.units_out++;
    if (done && m->fragmenting) {
        q->open_seqs--;
        unpark_one(q);
    }
    if (done) {
        s->head = m->next;
        if (!s->head)
            s->tail = NULL;
        m->next = NULL;
        msg_unref(m); /* the stream's; the unit keeps it alive */
    }
    if (s->head) {
        rr_append(q, s);
    } else {
        stream_unhash(q, s);
        free(s);
    }
    return 1;
}

void edi_sendq_release(void *msg, const void *body)
{
    (void)body;
    edi_sendq_msg *m = msg;
    if (!m)
        return;
    edi_sendq *q = m->q;
    bool notify = !q->detached;
    q->st.units_out--;
    msg_unref(m); /* may free q when detached */
    if (notify && q->ops.on_progress)
        q->ops.on_progress(q->user);
}

/* ---- life and counters ----------------------------------------------------
 */

int edi_sendq_new(const edi_sendq_config *cfg, edi_sendq **out)
{
    if (!cfg || !out)
        return edist_set_error(EDIST_EINVAL, "sendq: no config");
    if (cfg->fragment_bytes &&
        cfg->fragment_bytes < EDI_SENDQ_FRAGMENT_BYTES_MIN)
        return edist_set_error(
            EDIST_EINVAL, "fragment size %zu below the minimum %u",
            cfg->fragment_bytes, EDI_SENDQ_FRAGMENT_BYTES_MIN);
    edi_sendq *q = calloc(1, sizeof *q);
    if (!q)
        return edist_set_error(EDIST_ENOMEM, "sendq: no memory");
    q->buckets = calloc(SQ_BUCKETS_MIN, sizeof *q->buckets);
    if (!q->buckets) {
        free(q);
        return edist_set_error(EDIST_ENOMEM, "sendq: no memory");
    }
    q->nbuckets = SQ_BUCKETS_MIN;
    q->flags = cfg->flags;
    q->frag_bytes = cfg->fragment_bytes ? cfg->fragment_bytes
                                        : EDI_SENDQ_FRAGMENT_BYTES_DEFAULT;
    q->limit =
        cfg->limit_bytes ? cfg->limit_bytes : EDI_SENDQ_LIMIT_BYTES_DEFAULT;
    q->open_max = cfg->open_sequences ? cfg->open_sequences : EDI_SENDQ_OPEN_SEQUENCES_DEFAULT;
    if (cfg->ops)
        q->ops = *cfg->ops;
    q->user = cfg->user;
    *out = q;
    return 0;
}

void edi_sendq_detach(edi_sendq *q)
{
    if (!q || q->detached)
        return;
    q->detached = true;
    q->want_writable = false;
    /* Keep q alive while dropping: the last unref must not free it under
     * our feet. */
    q->msgs++;
    if (q->park_head) { /* the parked streams go with the others */
        if (q->rr_tail)
            q->rr_tail->rr_next = q->park_head;
        else
            q->rr_head = q->park_head;
        q->park_head = NULL;
    }
    while (q->rr_head) {
        sq_stream *s = q->rr_head;
        q->rr_head = s->rr_next;
        edi_sendq_msg *m = s->head;
        while (m) {
            edi_sendq_msg *n = m->next;
            msg_unref(m); /* the stream's */
            m = n;
        }
        free(s);
    }
    q->rr_tail = NULL;
    q->park_tail = NULL;
    q->reserved = 0;
    q->nstreams = 0;
    if (--q->msgs == 0)
        sq_free(q);
}

bool edi_sendq_idle(const edi_sendq *q)
{
    return !q || (q->rr_head == NULL && q->park_head == NULL);
}

bool edi_sendq_refused(const edi_sendq *q)
{
    return q && q->want_writable;
}

size_t edi_sendq_bytes(const edi_sendq *q)
{
    return q ? q->bytes : 0;
}

size_t edi_sendq_fragment_bytes(const edi_sendq *q)
{
    return q->frag_bytes;
}

size_t edi_sendq_limit(const edi_sendq *q)
{
    return q ? q->limit : 0;
}

void edi_sendq_get_stats(const edi_sendq *q, edi_sendq_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!q)
        return;
    *out = q->st;
    out->bytes_pending = q->bytes;
    out->messages_pending = q->msgs;
    out->senders_active = q->nstreams;
    out->limit_bytes = q->limit;
}
