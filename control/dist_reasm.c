/* SPDX-License-Identifier: Apache-2.0 */
/* Fragment reassembler (receiver). See dist_reasm.h. */
#include "control/dist_reasm.h"

#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "control/dist_internal.h"
#include "edist/error.h"

/* ---- reassembly ---------------------------------------------------------- */

typedef struct reasm_seq {
    uint64_t id;
    uint64_t next_fragment_id; /* the id the next continuation must carry */
    uint8_t *buf;
    size_t len;
    size_t cap;
} reasm_seq;

/* The frame prefix (header and control message, up to the payload) of the
 * last message-sending frame, and its parse with views into `bytes`. A
 * stream from one sender to one process repeats that prefix byte for byte:
 * comparing it costs a fraction of parsing it again (a tuple, two pids and
 * their node atoms), and the parse of equal bytes is the same. */
#define CTL_CACHE_BYTES 160u

typedef struct ctl_cache {
    size_t prefix; /* 0: empty */
    edi_dist_msg msg; /* views in bytes, payload the last frame's */
    edi_dist_memo memo;
    uint8_t bytes[CTL_CACHE_BYTES];
} ctl_cache;

struct edi_dist_reasm {
    edi_dist_reasm_limits lim;
    ctl_cache ctl;
    reasm_seq *seqs; /* open sequences, unordered */
    uint32_t n_seqs;
    uint32_t cap_seqs;
    size_t total_cap; /* bytes allocated for open sequences' buffers */
};

int edi_dist_reasm_create(const edi_dist_reasm_limits *limits,
                          edi_dist_reasm **out)
{
    if (out == NULL)
        return edist_set_error(EDIST_EINVAL, "reasm: NULL out");
    edi_dist_reasm *r = calloc(1, sizeof *r);
    if (r == NULL)
        return edist_set_error(EDIST_ENOMEM, "reasm: out of memory");
    if (limits)
        r->lim = *limits;
    if (r->lim.max_total_bytes == 0)
        r->lim.max_total_bytes = EDI_DIST_REASM_MAX_TOTAL_BYTES_DEFAULT;
    if (r->lim.max_message_bytes == 0 ||
        r->lim.max_message_bytes > r->lim.max_total_bytes)
        r->lim.max_message_bytes = r->lim.max_total_bytes;
    if (r->lim.max_sequences == 0)
        r->lim.max_sequences = EDI_DIST_REASM_MAX_SEQUENCES_DEFAULT;
    *out = r;
    return 0;
}

void edi_dist_reasm_free(edi_dist_reasm *r)
{
    if (r == NULL)
        return;
    for (uint32_t i = 0; i < r->n_seqs; i++)
        free(r->seqs[i].buf);
    free(r->seqs);
    free(r);
}

uint32_t edi_dist_reasm_open_sequences(const edi_dist_reasm *r)
{
    return r ? r->n_seqs : 0;
}

size_t edi_dist_reasm_buffered_bytes(const edi_dist_reasm *r)
{
    return r ? r->total_cap : 0;
}

static reasm_seq *seq_find(edi_dist_reasm *r, uint64_t id)
{
    for (uint32_t i = 0; i < r->n_seqs; i++)
        if (r->seqs[i].id == id)
            return &r->seqs[i];
    return NULL;
}

/* Forget s; its buffer is freed unless keep_buf. */
static void seq_drop(edi_dist_reasm *r, reasm_seq *s, int keep_buf)
{
    r->total_cap -= s->cap;
    if (!keep_buf)
        free(s->buf);
    *s = r->seqs[--r->n_seqs];
}

/* Make room for `add` more bytes in s within the limits. */
static int seq_grow(edi_dist_reasm *r, reasm_seq *s, size_t add)
{
    if (add > r->lim.max_message_bytes - s->len)
        return edist_set_error(EDIST_ENOMEM,
                               "reasm: sequence %llu exceeds the message "
                               "limit of %zu bytes",
                               (unsigned long long)s->id,
                               r->lim.max_message_bytes);
    size_t need = s->len + add;
    if (need <= s->cap)
        return 0;
    size_t want = s->cap > need / 2 ? s->cap * 2 : need;
    if (want > r->lim.max_message_bytes)
        want = r->lim.max_message_bytes;
    size_t budget = r->lim.max_total_bytes - (r->total_cap - s->cap);
    if (want > budget)
        want = budget;
    if (want < need)
        return edist_set_error(EDIST_ENOMEM,
                               "reasm: reassembly buffers exceed %zu bytes",
                               r->lim.max_total_bytes);
    uint8_t *nb = realloc(s->buf, want);
    if (nb == NULL)
        return edist_set_error(EDIST_ENOMEM, "reasm: out of memory");
    r->total_cap += want - s->cap;
    s->buf = nb;
    s->cap = want;
    return 0;
}

/* Moves the views of m that lie in [from, from + n) to the same offsets
 * from `to`. */
static void rebase_view(edist_term_view *v, const uint8_t *from, size_t n,
                        const uint8_t *to)
{
    if (v->ptr >= from && v->ptr < from + n)
        v->ptr = to + (v->ptr - from);
}

static void rebase_atom(edist_atom *a, const uint8_t *from, size_t n,
                        const uint8_t *to)
{
    const uint8_t *p = (const uint8_t *)a->ptr;
    if (p >= from && p < from + n)
        a->ptr = (const char *)(to + (p - from));
}

static void rebase_msg(edi_dist_msg *m, const uint8_t *from, size_t n,
                       const uint8_t *to)
{
#define REBASE_VIEW(f) rebase_view(&m->f, from, n, to);
    EDI_DIST_MSG_VIEW_FIELDS(REBASE_VIEW)
#undef REBASE_VIEW
    rebase_atom(&m->from_pid.node, from, n, to);
    rebase_atom(&m->to_pid.node, from, n, to);
    rebase_atom(&m->spawn_module, from, n, to);
    rebase_atom(&m->spawn_function, from, n, to);
}

/* Messages to a process or a name: their control message repeats. */
static bool ctl_cacheable(int op)
{
    return op == EDI_DOP_SEND || op == EDI_DOP_SEND_SENDER ||
           op == EDI_DOP_REG_SEND || op == EDI_DOP_ALIAS_SEND;
}

static int deliver_in_place(edi_dist_reasm *r, const uint8_t *frame, size_t len,
                            edi_dist_delivery *out)
{
    out->owned = NULL;
    out->owned_len = 0;
    ctl_cache *c = &r->ctl;
    if (c->prefix > 0 && len > c->prefix &&
        memcmp(frame, c->bytes, c->prefix) == 0) {
        /* The same bytes parse the same: no copy of the message either. */
        c->msg.payload.ptr = frame + c->prefix;
        c->msg.payload.len = len - c->prefix;
        out->msg = &c->msg;
        return 1;
    }
    out->msg = &out->parsed;
    int rc = edi_dist_parse(frame, len, &out->parsed);
    if (rc < 0)
        return rc;
    edi_dist_msg *m = &out->parsed;
    if (ctl_cacheable(m->op) && m->payload.ptr != NULL &&
        (size_t)(m->payload.ptr - frame) <= CTL_CACHE_BYTES) {
        c->prefix = (size_t)(m->payload.ptr - frame);
        memcpy(c->bytes, frame, c->prefix);
        c->msg = *m;
        rebase_msg(&c->msg, frame, c->prefix, c->bytes);
        c->memo = (edi_dist_memo){0};
        c->msg.memo = &c->memo;
        m->memo = &c->memo;
    }
    return 1;
}

static int feed_first(edi_dist_reasm *r, const uint8_t *frame, size_t len,
                      edi_dist_delivery *out)
{
    if (len < 2 + 16 + 1)
        return edist_set_error(EDIST_EPROTO, "reasm: truncated first "
                                             "fragment header");
    uint64_t seq = edi_get_be64(frame + 2);
    uint64_t fid = edi_get_be64(frame + 10);
    if (fid == 0)
        return edist_set_error(EDIST_EPROTO,
                               "reasm: fragment id 0 (sequence %llu)",
                               (unsigned long long)seq);
    size_t hl;
    int rc = edi_dist_parse_cache_header(frame + 18, len - 18, &hl);
    if (rc < 0)
        return rc;
    const uint8_t *body = frame + 18 + hl;
    size_t body_len = len - 18 - hl;
    if (seq_find(r, seq) != NULL)
        return edist_set_error(EDIST_EPROTO,
                               "reasm: first fragment for open sequence %llu",
                               (unsigned long long)seq);
    if (fid == 1) {
        /* A one-fragment sequence is a whole message. */
        out->owned = NULL;
        out->owned_len = 0;
        out->msg = &out->parsed;
        rc = edi_dist_parse_body(body, body_len, 0, EDI_DIST_FRAG_HEADER,
                                 &out->parsed);
        return rc < 0 ? rc : 1;
    }
    if (r->n_seqs >= r->lim.max_sequences)
        return edist_set_error(EDIST_ENOMEM,
                               "reasm: more than %u open sequences",
                               r->lim.max_sequences);
    if (r->n_seqs == r->cap_seqs) {
        uint32_t nc = r->cap_seqs ? r->cap_seqs * 2 : 8;
        if (nc > r->lim.max_sequences)
            nc = r->lim.max_sequences;
        reasm_seq *ns = realloc(r->seqs, nc * sizeof *ns);
        if (ns == NULL)
            return edist_set_error(EDIST_ENOMEM, "reasm: out of memory");
        r->seqs = ns;
        r->cap_seqs = nc;
    }
    reasm_seq *s = &r->seqs[r->n_seqs++];
    memset(s, 0, sizeof *s);
    s->id = seq;
    s->next_fragment_id = fid - 1;
    /* Senders cut equal fragments, so fid * this one estimates the whole
     * message; seq_grow clips it to the limits, and a peer that lies only
     * gets what the limits allow anyway. */
    size_t hint = body_len;
    if (body_len > 0 && fid <= SIZE_MAX / body_len)
        hint = (size_t)fid * body_len;
    if (hint > r->lim.max_message_bytes)
        hint = r->lim.max_message_bytes;
    size_t budget = r->lim.max_total_bytes - r->total_cap;
    if (hint > budget)
        hint = budget;
    if (hint < body_len)
        hint = body_len;
    if ((rc = seq_grow(r, s, hint)) < 0) {
        seq_drop(r, s, 0);
        return rc;
    }
    /* An empty first fragment leaves buf NULL: memcpy must not see it. */
    if (body_len > 0)
        memcpy(s->buf, body, body_len);
    s->len = body_len;
    return 0;
}

static int feed_cont(edi_dist_reasm *r, const uint8_t *frame, size_t len,
                     edi_dist_delivery *out)
{
    if (len < 2 + 16)
        return edist_set_error(EDIST_EPROTO, "reasm: truncated fragment "
                                             "header");
    uint64_t seq = edi_get_be64(frame + 2);
    uint64_t fid = edi_get_be64(frame + 10);
    reasm_seq *s = seq_find(r, seq);
    if (s == NULL)
        return edist_set_error(
            EDIST_EPROTO, "reasm: fragment %llu of unknown sequence %llu",
            (unsigned long long)fid, (unsigned long long)seq);
    if (fid != s->next_fragment_id) {
        uint64_t want = s->next_fragment_id;
        seq_drop(r, s, 0);
        return edist_set_error(EDIST_EPROTO,
                               "reasm: sequence %llu: fragment %llu where "
                               "%llu was expected",
                               (unsigned long long)seq, (unsigned long long)fid,
                               (unsigned long long)want);
    }
    size_t add = len - 18;
    int rc = seq_grow(r, s, add);
    if (rc < 0) {
        seq_drop(r, s, 0);
        return rc;
    }
    if (add > 0)
        memcpy(s->buf + s->len, frame + 18, add);
    s->len += add;
    s->next_fragment_id--;
    if (fid > 1)
        return 0;

    uint8_t *buf = s->buf;
    size_t blen = s->len;
    seq_drop(r, s, 1);
    out->msg = &out->parsed;
    rc = edi_dist_parse_body(buf, blen, 0, EDI_DIST_FRAG_HEADER, &out->parsed);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    out->owned = buf;
    out->owned_len = blen;
    return 1;
}

int edi_dist_reasm_feed(edi_dist_reasm *r, const uint8_t *frame, size_t len,
                        edi_dist_delivery *out)
{
    if (r == NULL || frame == NULL || out == NULL || len == 0)
        return edist_set_error(EDIST_EINVAL,
                               "reasm: empty frame (a tick?) or NULL");
    out->owned = NULL;
    out->owned_len = 0;
    out->msg = &out->parsed;
    if (frame[0] == EDI_DIST_PASS_THROUGH)
        return deliver_in_place(r, frame, len, out);
    if (frame[0] != EDIST_TAG_VERSION || len < 2)
        return edist_set_error(EDIST_EPROTO,
                               "dist: frame starts with %u, not 112 or 131",
                               frame[0]);
    switch (frame[1]) {
    case EDI_DIST_HEADER:
        return deliver_in_place(r, frame, len, out);
    case EDI_DIST_FRAG_HEADER:
        return feed_first(r, frame, len, out);
    case EDI_DIST_FRAG_CONT:
        return feed_cont(r, frame, len, out);
    default:
        return edist_set_error(
            EDIST_EPROTO, "dist: unknown distribution header %u", frame[1]);
    }
}
