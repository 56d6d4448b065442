/* SPDX-License-Identifier: Apache-2.0 */
/* The edist link protocol (see link.h).
 *
 * Sender: the send buffer is a ring of stream bytes [snd_una, snd_end);
 * [snd_una, snd_nxt) has been sent at least once. Retransmission rebuilds
 * frames of ranges below snd_nxt (NAKed ones at once, the oldest on a
 * timeout); snd_nxt only grows. One retransmission timer guards snd_una.
 *
 * Receiver: rcv_nxt is the next stream byte wanted (the ack). Frames past
 * it within the window are held, sorted by offset, with a reference to
 * their buffer, and drained once the gap before them fills. Segments may
 * overlap (a retransmission is rebuilt with new boundaries): delivery
 * trims everything against rcv_nxt, so each byte is delivered once. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/bytes.h"
#include "dataplane/link/link.h"
#include "dataplane/uring/deframe.h"
#include "edist/error.h"

#define NEVER UINT64_MAX
/* NAK: gaps named per poll, and the memory of recently NAKed ones. */
#define NAK_GAPS_PER_POLL 8u
#define NAK_LOG 16u
/* NAKed ranges waiting for retransmission; a NAK beyond is ignored (the
 * timer or the receiver's next NAK covers it). */
#define RTXQ_MAX 64u
/* Frames retransmitted from snd_una when the timer expires: more than one,
 * so a lost tail of a burst (no later frame shows the receiver a gap, so
 * no NAK) does not cost one timeout per frame. */
#define RTO_BURST_FRAMES 4u
#define BACKOFF_MAX 16u
/* How far back a held segment may start and still contain a new one: the
 * duplicate check looks at this many neighbours (overlaps are rare; one
 * missed is held, then dropped as a duplicate when drained). */
#define CONTAIN_LOOKBACK 8u

typedef struct held_seg {
    uint64_t start, end;
    const uint8_t *data; /* the byte at start */
    edi_rxbuf *rb;
} held_seg;

typedef struct range_log {
    uint64_t start, ns;
} range_log;

struct edi_rlink {
    edi_rlink_config cfg;
    edi_rlink_medium med;
    edi_rlink_callbacks cb;
    void *user;
    bool dead;
    uint64_t now_ns;

    /* send */
    uint8_t *sbuf;
    size_t smask;
    bool sbuf_medium; /* the medium's (ring_alloc): frames point into it */
    uint64_t snd_una, snd_nxt, snd_end;
    uint64_t peer_right;           /* peer's ack + window */
    bool reserved, reserve_staged; /* edi_rlink_reserve */
    size_t reserve_max;
    uint8_t *staging;
    size_t staging_cap;
    size_t want_writable;
    bool stalled, tx_blocked;
    uint64_t srtt_ns, rttvar_ns, rto_ns;
    unsigned backoff;
    uint64_t rtx_deadline, probe_deadline;
    bool timing;
    uint64_t timed_end, timed_sent_ns;
    struct {
        uint64_t start, end;
    } rtxq[RTXQ_MAX];
    unsigned rtxq_n;
    range_log rtx_log[NAK_LOG];
    unsigned rtx_log_at;

    /* receive */
    uint64_t rcv_nxt;
    uint32_t rcv_window;
    uint64_t rcv_right; /* the right edge advertised: it never moves left */
    edi_deframe df;
    held_seg *held;
    uint32_t held_n, held_cap;
    bool ack_now, nak_check;
    uint64_t ack_due, nak_next;
    uint32_t frames_unacked;
    range_log nak_log[NAK_LOG];
    unsigned nak_log_at;

    /* liveness */
    uint64_t last_rx_ns, last_ping_ns, ping_stamp;
    /* since when data has been in flight, into an open window, with no
     * byte of it acknowledged */
    uint64_t stuck_since_ns;
    bool peer_heard; /* peer_right is the peer's word, not our guess */
    bool ping_out, pong_pending;
    uint64_t pong_stamp;

    edi_rlink_stats st;
};

/* ---- header ------------------------------------------------------------- */

void edi_rlink_hdr_encode(uint8_t *out, const edi_rlink_hdr *h)
{
    edi_put_be16(out, EDI_RLINK_MAGIC);
    out[2] = EDI_RLINK_VERSION;
    out[3] = h->type;
    edi_put_be32(out + 4, h->len);
    edi_put_be64(out + 8, h->token);
    edi_put_be64(out + 16, h->seq);
    edi_put_be64(out + 24, h->ack);
    edi_put_be32(out + 32, h->window);
    edi_put_be32(out + 36, h->nak_len);
}

edi_rlink_bad edi_rlink_hdr_decode(const uint8_t *p, size_t len,
                                   edi_rlink_hdr *h)
{
    if (len < EDI_RLINK_HDR_BYTES)
        return EDI_RLINK_BAD_SHORT;
    if (edi_get_be16(p) != EDI_RLINK_MAGIC)
        return EDI_RLINK_BAD_MAGIC;
    if (p[2] != EDI_RLINK_VERSION)
        return EDI_RLINK_BAD_VERSION;
    h->type = p[3];
    if (h->type < EDI_RLINK_T_DATA || h->type > EDI_RLINK_T_PONG)
        return EDI_RLINK_BAD_TYPE;
    h->len = edi_get_be32(p + 4);
    h->token = edi_get_be64(p + 8);
    h->seq = edi_get_be64(p + 16);
    h->ack = edi_get_be64(p + 24);
    h->window = edi_get_be32(p + 32);
    h->nak_len = edi_get_be32(p + 36);
    if ((size_t)h->len > len - EDI_RLINK_HDR_BYTES)
        return EDI_RLINK_BAD_SHORT;
    bool data = h->type == EDI_RLINK_T_DATA, nak = h->type == EDI_RLINK_T_NAK;
    if (data ? h->len == 0 : h->len != 0)
        return EDI_RLINK_BAD_FIELDS;
    if (nak ? h->nak_len == 0 : h->nak_len != 0)
        return EDI_RLINK_BAD_FIELDS;
    uint64_t extent = data ? h->len : h->nak_len;
    if (h->seq > UINT64_MAX - extent || h->ack > UINT64_MAX - h->window)
        return EDI_RLINK_BAD_FIELDS;
    return EDI_RLINK_OK;
}

/* ---- setup -------------------------------------------------------------- */

void edi_rlink_config_default(edi_rlink_config *c)
{
    memset(c, 0, sizeof(*c));
    c->send_buffer_bytes = 4u << 20;
    c->recv_window_bytes = 4u << 20;
    c->max_held_frames = 8192;
    c->max_message_bytes = 256u << 20;
    c->ack_delay_ns = 20000;
    c->ack_every_frames = 8;
    c->rto_initial_ns = 1000000;
    c->rto_min_ns = 100000;
    c->rto_max_ns = 100000000;
    c->idle_ping_ns = 10000000;
    c->dead_after_ns = 2000000000;
}

static void go_dead(edi_rlink *l, int reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));


static size_t rx_event(void *user, const edi_deframe_event *ev)
{
    edi_rlink *l = user;
    switch (ev->kind) {
    case EDI_DEFRAME_FRAME:
    case EDI_DEFRAME_TICK: {
        edi_frame m = {ev->data, ev->len, ev->buf};
        l->st.messages_in++;
        l->cb.on_message(l->user, &m);
        return 0;
    }
    case EDI_DEFRAME_REASSEMBLED: {
        edi_frame m = {ev->data, ev->len, ev->buf};
        l->st.messages_in++;
        l->cb.on_message(l->user, &m);
        edi_rxbuf_unref(ev->buf); /* the deframer's reference, now ours */
        return 0;
    }
    case EDI_DEFRAME_ERROR:
        go_dead(l, ev->err, "link stream: %s", ev->detail);
        return 0;
    case EDI_DEFRAME_BYTES:
        break; /* U32 only */
    }
    return 0;
}

/* The send ring, mapped populated and then written once a page: its pages
 * are faulted in, and the first write through each made, here rather than
 * as the stream first passes through the ring. A first write cost ~10 us a
 * page on this VM even with the page populated (a hypervisor exit, not a
 * guest fault): a ping-pong after a stream, which had used little of the
 * answering side's ring, had one slow round trip in 25 until that ring's
 * first pass ended (p99 16 us; 4.4 us with this). */
static uint8_t *ring_map(size_t bytes)
{
    uint8_t *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    for (size_t at = 0; at < bytes; at += 4096)
        ((volatile uint8_t *)p)[at] = 0;
    return p;
}

int edi_rlink_new(const edi_rlink_config *cfg, const edi_rlink_medium *medium,
                  const edi_rlink_callbacks *cb, void *user, uint64_t now_ns,
                  edi_rlink **out)
{
    if (cfg->send_buffer_bytes < 8 || cfg->recv_window_bytes == 0 ||
        cfg->max_held_frames == 0 || cfg->ack_every_frames == 0 ||
        cfg->rto_min_ns == 0 || cfg->rto_max_ns < cfg->rto_min_ns ||
        cfg->idle_ping_ns == 0 || cfg->dead_after_ns == 0 ||
        cfg->send_buffer_bytes > ((size_t)1 << 40))
        return edist_set_error(EDIST_EINVAL, "link: a limit is zero or "
                                             "out of range");
    if (medium->tx_alloc == NULL || medium->tx_send == NULL ||
        medium->max_frame_bytes <= EDI_RLINK_HDR_BYTES ||
        cb->on_message == NULL)
        return edist_set_error(EDIST_EINVAL,
                               "link: medium or callbacks incomplete, or a "
                               "frame of %zu bytes",
                               medium->max_frame_bytes);
    edi_rlink *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return edist_set_error(EDIST_ENOMEM, "link");
    size_t cap = 8;
    while (cap < cfg->send_buffer_bytes)
        cap *= 2;
    bool by_ref = medium->ring_alloc != NULL && medium->tx_attach != NULL &&
                  medium->ring_free != NULL;
    l->sbuf = by_ref ? medium->ring_alloc(medium->medium, cap) : NULL;
    l->sbuf_medium = l->sbuf != NULL;
    if (l->sbuf == NULL)
        l->sbuf = ring_map(cap);
    if (l->sbuf == NULL) {
        free(l);
        return edist_set_error(EDIST_ENOMEM, "link send buffer of %zu bytes",
                               cap);
    }
    l->smask = cap - 1;
    l->cfg = *cfg;
    l->med = *medium;
    l->cb = *cb;
    l->user = user;
    l->now_ns = now_ns;
    l->rto_ns = cfg->rto_initial_ns;
    if (l->rto_ns < cfg->rto_min_ns)
        l->rto_ns = cfg->rto_min_ns;
    if (l->rto_ns > cfg->rto_max_ns)
        l->rto_ns = cfg->rto_max_ns;
    l->rtx_deadline = l->probe_deadline = l->ack_due = l->nak_next = NEVER;
    l->rcv_window = cfg->recv_window_bytes;
    /* until the peer says otherwise, what we accept ourselves; and the
     * peer assumes the same of us, as good as advertised */
    l->peer_right = cfg->recv_window_bytes;
    l->rcv_right = cfg->recv_window_bytes;
    l->last_rx_ns = now_ns;
    l->last_ping_ns = now_ns;
    l->stuck_since_ns = now_ns;
    edi_deframe_config dc = {
        .max_frame_bytes = cfg->max_message_bytes,
        .raw_max_bytes = 1, /* U32 from the first byte: never staged */
        .alloc = &edi_deframe_rxbufs,
        .on_event = rx_event,
        .user = l,
    };
    edi_deframe_init(&l->df, &dc);
    edi_deframe_set_mode(&l->df, EDI_DEFRAME_U32);
    *out = l;
    return 0;
}

void edi_rlink_free(edi_rlink *l)
{
    if (l == NULL)
        return;
    edi_deframe_fini(&l->df);
    for (uint32_t i = 0; i < l->held_n; i++)
        edi_rxbuf_unref(l->held[i].rb);
    free(l->held);
    free(l->staging);
    if (l->sbuf_medium)
        l->med.ring_free(l->med.medium, l->sbuf);
    else
        munmap(l->sbuf, l->smask + 1);
    free(l);
}

/* A dead link gives its held frames back at once (on DPDK they are the
 * receive pool's mbufs), at the end of the call that found it dead. */
static void release_held(edi_rlink *l)
{
    for (uint32_t i = 0; i < l->held_n; i++)
        edi_rxbuf_unref(l->held[i].rb);
    l->held_n = 0;
}

static void go_dead(edi_rlink *l, int reason, const char *fmt, ...)
{
    if (l->dead)
        return;
    l->dead = true;
    edi_deframe_halt(&l->df);
    char detail[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    edist_set_error(reason, "%s", detail);
    if (l->cb.on_dead != NULL)
        l->cb.on_dead(l->user, reason);
}

/* ---- send buffer -------------------------------------------------------- */

static size_t send_room(const edi_rlink *l)
{
    return l->cfg.send_buffer_bytes - (size_t)(l->snd_end - l->snd_una);
}

/* Copies p[0..n) into the ring at stream offset off. */
static void ring_put(edi_rlink *l, uint64_t off, const void *p, size_t n)
{
    size_t at = (size_t)off & l->smask, first = l->smask + 1 - at;
    if (first > n)
        first = n;
    memcpy(l->sbuf + at, p, first);
    memcpy(l->sbuf, (const uint8_t *)p + first, n - first);
}

/* Hands stream bytes [off, off+n) to the frame of handle by reference
 * (one piece, or two across the ring's end). */
static int ring_attach(const edi_rlink *l, void *handle, uint64_t off, size_t n)
{
    size_t at = (size_t)off & l->smask, first = l->smask + 1 - at;
    if (first > n)
        first = n;
    int rc = l->med.tx_attach(l->med.medium, handle, l->sbuf + at, first);
    if (rc == 0 && n > first)
        rc = l->med.tx_attach(l->med.medium, handle, l->sbuf, n - first);
    return rc;
}

/* Copies stream bytes [off, off+n) out of the ring. */
static void ring_get(const edi_rlink *l, uint64_t off, uint8_t *p, size_t n)
{
    size_t at = (size_t)off & l->smask, first = l->smask + 1 - at;
    if (first > n)
        first = n;
    memcpy(p, l->sbuf + at, first);
    memcpy(p + first, l->sbuf, n - first);
}

/* Whether a message of len payload bytes may be appended now: 0, or the
 * refusal of edi_rlink_send. */
static int admit(edi_rlink *l, size_t len)
{
    if (l->dead)
        return edist_set_error(EDIST_ECLOSED, "link is dead");
    if (len > l->cfg.max_message_bytes || len > UINT32_MAX ||
        len > l->cfg.send_buffer_bytes - 4) {
        l->st.send_too_big++;
        return edist_set_error(EDIST_ENOMEM,
                               "link: a %zu byte message exceeds the send "
                               "buffer (%zu) or the message limit",
                               len, l->cfg.send_buffer_bytes);
    }
    if (len + 4 > send_room(l)) {
        l->st.send_eagain++;
        if (l->want_writable == 0 || len + 4 < l->want_writable)
            l->want_writable = len + 4;
        return EDIST_EAGAIN;
    }
    return 0;
}

/* A medium's send buffer is read by the peer's side where it lies (a
 * memif server copies out of it), so the lines a stream writes next are
 * in the reader's cache: each first write waits for them to be taken
 * back. Asking for them a few KiB ahead, as the stream advances over
 * [from, to), overlaps those waits instead of taking them one by one. */
#define PREFETCH_AHEAD_BYTES 4096u
static inline void prefetch_for_write(const uint8_t *p)
{
#if defined(__x86_64__)
    /* prefetchw takes the line for writing (the compiler's prefetch for
     * write is a read prefetch without -mprfchw, and the write would then
     * still have to take it back from the reader); a no-op where the CPU
     * lacks it */
    __asm__ volatile("prefetchw %0" : : "m"(*p));
#else
    __builtin_prefetch(p, 1, 3);
#endif
}
static void prefetch_ahead(const edi_rlink *l, uint64_t from, uint64_t to)
{
    uint64_t line = (from + PREFETCH_AHEAD_BYTES + 63) & ~(uint64_t)63;
    for (; line < to + PREFETCH_AHEAD_BYTES; line += 64)
        prefetch_for_write(l->sbuf + ((size_t)line & l->smask));
}

/* A message of len bytes (and its length) is in the ring: the stream
 * ends after it. */
static void appended(edi_rlink *l, size_t len)
{
    uint64_t end = l->snd_end + len + 4;
    if (l->sbuf_medium)
        prefetch_ahead(l, l->snd_end, end);
    l->snd_end = end;
    l->st.messages_out++;
}

static void append_header(edi_rlink *l, size_t len)
{
    uint8_t hdr[4];
    edi_put_be32(hdr, (uint32_t)len);
    ring_put(l, l->snd_end, hdr, 4);
}

int edi_rlink_send(edi_rlink *l, const void *head, size_t head_len,
                   const void *body, size_t body_len)
{
    l->reserved = false;
    size_t len = head_len + body_len;
    int rc = admit(l, len);
    if (rc != 0)
        return rc;
    append_header(l, len);
    if (head_len > 0)
        ring_put(l, l->snd_end + 4, head, head_len);
    if (body_len > 0)
        ring_put(l, l->snd_end + 4 + head_len, body, body_len);
    appended(l, len);
    return 0;
}

int edi_rlink_reserve(edi_rlink *l, size_t max_len, uint8_t **payload)
{
    l->reserved = false;
    int rc = admit(l, max_len);
    if (rc != 0)
        return rc;
    size_t at = (size_t)(l->snd_end + 4) & l->smask;
    if (max_len <= l->smask + 1 - at) {
        *payload = l->sbuf + at;
        l->reserve_staged = false;
    } else {
        if (l->staging_cap < max_len) {
            uint8_t *p = realloc(l->staging, max_len);
            if (p == NULL)
                return edist_set_error(EDIST_ENOMEM,
                                       "link: staging of %zu bytes", max_len);
            l->staging = p;
            l->staging_cap = max_len;
        }
        *payload = l->staging;
        l->reserve_staged = true;
    }
    l->reserved = true;
    l->reserve_max = max_len;
    return 0;
}

int edi_rlink_commit(edi_rlink *l, size_t len)
{
    if (!l->reserved || len > l->reserve_max || l->dead)
        return edist_set_error(EDIST_EINVAL,
                               "link: commit of %zu bytes without a "
                               "reservation that large",
                               len);
    l->reserved = false;
    append_header(l, len);
    if (l->reserve_staged && len > 0) {
        ring_put(l, l->snd_end + 4, l->staging, len);
        l->st.reserve_copies++;
    }
    appended(l, len);
    return 0;
}

/* ---- timers ------------------------------------------------------------- */

/* Time from then to now, 0 if now is earlier: the owner may pass a time
 * read a little before one it passed already (a cached loop time, a
 * fresher one for an input), and that must never look like an age. */
static uint64_t since(uint64_t now, uint64_t then)
{
    return now > then ? now - then : 0;
}

static uint64_t rto_now(const edi_rlink *l)
{
    uint64_t r = l->rto_ns;
    for (unsigned i = 0; i < l->backoff && r < l->cfg.rto_max_ns; i++)
        r *= 2;
    return r < l->cfg.rto_max_ns ? r : l->cfg.rto_max_ns;
}

/* Repeats of the same NAK or retransmission are spaced by this: about a
 * round trip, never below half the minimum timeout (a NAK answered by a
 * retransmission still in flight must not be answered twice). */
static uint64_t rtt_interval(const edi_rlink *l)
{
    uint64_t r = l->st.rtt_samples ? l->srtt_ns + l->rttvar_ns : l->rto_ns;
    return r > l->cfg.rto_min_ns / 2 ? r : l->cfg.rto_min_ns / 2;
}

/* RFC 6298 smoothing, in nanoseconds. */
static void rtt_sample(edi_rlink *l, uint64_t r)
{
    if (l->st.rtt_samples++ == 0) {
        l->srtt_ns = r;
        l->rttvar_ns = r / 2;
    } else {
        uint64_t diff = l->srtt_ns > r ? l->srtt_ns - r : r - l->srtt_ns;
        l->rttvar_ns = (3 * l->rttvar_ns + diff) / 4;
        l->srtt_ns = (7 * l->srtt_ns + r) / 8;
    }
    uint64_t rto = l->srtt_ns + 4 * l->rttvar_ns;
    if (rto < l->cfg.rto_min_ns)
        rto = l->cfg.rto_min_ns;
    if (rto > l->cfg.rto_max_ns)
        rto = l->cfg.rto_max_ns;
    l->rto_ns = rto;
}

static bool log_recent(const range_log *log, uint64_t start, uint64_t now,
                       uint64_t interval)
{
    for (unsigned i = 0; i < NAK_LOG; i++)
        if (log[i].ns != 0 && log[i].start == start &&
            since(now, log[i].ns) < interval)
            return true;
    return false;
}

static void log_put(range_log *log, unsigned *at, uint64_t start, uint64_t now)
{
    log[*at] = (range_log){start, now ? now : 1};
    *at = (*at + 1) % NAK_LOG;
}

/* ---- transmit ----------------------------------------------------------- */

/* Builds and queues one frame; DATA takes up to *data_len bytes of stream
 * from seq (fewer when the buffer is smaller) and says how many it took.
 * false when the medium had no buffer. */
/* The right edge of what we accept: ack + window, but never left of an
 * edge already advertised. A window closed (edi_rlink_set_recv_window)
 * takes effect as the ack moves up to that edge, as TCP's does: the frames
 * the peer sent within it are taken, not refused and sent again after a
 * timeout. */
static uint64_t recv_right(edi_rlink *l)
{
    uint64_t right = l->rcv_nxt + l->rcv_window;
    if (right < l->rcv_right)
        return l->rcv_right;
    l->rcv_right = right;
    return right;
}

/* The medium had no (usable) buffer, or could not take the frame's data:
 * the buffer of handle, if any, goes back unsent; the link tries again at
 * its next poll. */
static bool no_buffer(edi_rlink *l, void *handle)
{
    if (handle != NULL)
        l->med.tx_send(l->med.medium, handle, 0);
    l->st.tx_no_buffer++;
    l->tx_blocked = true;
    return false;
}

static bool tx_frame(edi_rlink *l, uint8_t type, uint64_t seq, size_t *data_len,
                     uint32_t nak_len)
{
    edi_rlink_txbuf tb;
    if (l->med.tx_alloc(l->med.medium, &tb) != 0)
        return no_buffer(l, NULL);
    size_t cap =
        tb.cap < l->med.max_frame_bytes ? tb.cap : l->med.max_frame_bytes;
    if (cap <= EDI_RLINK_HDR_BYTES)
        return no_buffer(l, tb.handle); /* not a usable buffer */
    size_t n = 0;
    if (type == EDI_RLINK_T_DATA) {
        n = *data_len;
        if (n > cap - EDI_RLINK_HDR_BYTES)
            n = cap - EDI_RLINK_HDR_BYTES;
        if (l->sbuf_medium && n >= l->med.attach_min_bytes) {
            if (ring_attach(l, tb.handle, seq, n) != 0)
                return no_buffer(l, tb.handle);
            l->st.data_frames_by_ref++;
        } else {
            ring_get(l, seq, tb.data + EDI_RLINK_HDR_BYTES, n);
        }
        *data_len = n;
    }
    edi_rlink_hdr h = {
        .type = type,
        .len = (uint32_t)n,
        .token = l->cfg.token,
        .seq = seq,
        .ack = l->rcv_nxt,
        .window = (uint32_t)(recv_right(l) - l->rcv_nxt),
        .nak_len = nak_len,
    };
    edi_rlink_hdr_encode(tb.data, &h);
    l->med.tx_send(l->med.medium, tb.handle, EDI_RLINK_HDR_BYTES + n);
    l->st.frames_out++;
    /* every frame carries the ack */
    l->ack_now = false;
    l->ack_due = NEVER;
    l->frames_unacked = 0;
    return true;
}

static size_t data_room(const edi_rlink *l)
{
    return l->med.max_frame_bytes - EDI_RLINK_HDR_BYTES;
}

/* Resends stream bytes [start, end) (clamped to what is unacknowledged).
 * false when the medium ran out of buffers (*start then says how far it
 * got). */
static bool retransmit(edi_rlink *l, uint64_t *start, uint64_t end)
{
    if (*start < l->snd_una)
        *start = l->snd_una;
    if (end > l->snd_nxt)
        end = l->snd_nxt;
    if (*start < l->timed_end)
        l->timing = false; /* Karn: no sample from a retransmitted range */
    while (*start < end) {
        size_t n = (size_t)(end - *start);
        if (!tx_frame(l, EDI_RLINK_T_DATA, *start, &n, 0))
            return false;
        l->st.data_frames_out++;
        l->st.retransmits++;
        l->st.retransmit_bytes += n;
        *start += n;
    }
    return true;
}

static bool send_new(edi_rlink *l, uint64_t now)
{
    while (l->snd_nxt < l->snd_end) {
        if (l->snd_nxt >= l->peer_right) {
            if (!l->stalled) {
                l->stalled = true;
                l->st.window_stalls++;
            }
            break;
        }
        l->stalled = false;
        uint64_t lim = l->snd_end < l->peer_right ? l->snd_end : l->peer_right;
        size_t n = (size_t)(lim - l->snd_nxt);
        if (n > data_room(l))
            n = data_room(l);
        if (!tx_frame(l, EDI_RLINK_T_DATA, l->snd_nxt, &n, 0))
            return false;
        l->st.data_frames_out++;
        if (!l->timing) {
            l->timing = true;
            l->timed_end = l->snd_nxt + n;
            l->timed_sent_ns = now;
        }
        l->snd_nxt += n;
        l->st.bytes_out += n;
        if (l->rtx_deadline == NEVER)
            l->rtx_deadline = now + rto_now(l);
    }
    return true;
}

/* NAKs for the gaps before held segments, each at most once an RTT. */
static bool send_naks(edi_rlink *l, uint64_t now)
{
    uint64_t interval = rtt_interval(l);
    uint64_t covered = l->rcv_nxt;
    unsigned gaps = 0;
    for (uint32_t i = 0; i < l->held_n && gaps < NAK_GAPS_PER_POLL; i++) {
        const held_seg *s = &l->held[i];
        if (s->start > covered) {
            gaps++;
            uint64_t miss = s->start - covered;
            if (!log_recent(l->nak_log, covered, now, interval)) {
                size_t none = 0;
                if (!tx_frame(l, EDI_RLINK_T_NAK, covered, &none,
                              miss > UINT32_MAX ? UINT32_MAX : (uint32_t)miss))
                    return false;
                l->st.naks_sent++;
                log_put(l->nak_log, &l->nak_log_at, covered, now);
            }
        }
        if (s->end > covered)
            covered = s->end;
    }
    l->nak_next = l->held_n > 0 ? now + interval : NEVER;
    return true;
}

static bool send_ping(edi_rlink *l, uint64_t now)
{
    size_t none = 0;
    if (!tx_frame(l, EDI_RLINK_T_PING, now, &none, 0))
        return false;
    l->st.pings_out++;
    l->ping_out = true;
    l->ping_stamp = now;
    l->last_ping_ns = now;
    return true;
}

void edi_rlink_poll(edi_rlink *l, uint64_t now)
{
    if (l->dead)
        return;
    if (now > l->now_ns)
        l->now_ns = now;
    if (since(now, l->last_rx_ns) >= l->cfg.dead_after_ns) {
        go_dead(l, EDIST_ETIMEDOUT, "link: nothing from the peer for %llu ms",
                (unsigned long long)(since(now, l->last_rx_ns) / 1000000u));
        release_held(l);
        return;
    }
    /* A peer that answers pings but acknowledges none of what we send
     * into its open window (a path that drops frames of our size and
     * carries small ones) is as good as dead: without this the link would
     * retransmit every rto_max for ever and its senders wait. */
    if (l->snd_nxt == l->snd_una || l->peer_right <= l->snd_una)
        l->stuck_since_ns = now;
    else if (since(now, l->stuck_since_ns) >= l->cfg.dead_after_ns) {
        go_dead(l, EDIST_ETIMEDOUT,
                "link: %llu bytes in flight and none acknowledged for %llu ms "
                "(frames of %zu bytes lost on the way?)",
                (unsigned long long)(l->snd_nxt - l->snd_una),
                (unsigned long long)(since(now, l->stuck_since_ns) / 1000000u),
                l->med.max_frame_bytes);
        release_held(l);
        return;
    }
    uint64_t frames_before = l->st.frames_out;
    l->tx_blocked = false;
    bool ok = true;

    if (l->rtx_deadline != NEVER && now >= l->rtx_deadline) {
        if (l->snd_nxt > l->snd_una && l->peer_right <= l->snd_una) {
            /* the peer said it takes nothing more: ask for its window
             * rather than resend what it would refuse */
            ok = send_ping(l, now);
            if (ok)
                l->st.window_probes++;
            if (l->backoff < BACKOFF_MAX)
                l->backoff++;
            l->rtx_deadline = now + rto_now(l);
        } else if (l->snd_nxt > l->snd_una) {
            l->st.rto_expired++;
            if (l->backoff < BACKOFF_MAX)
                l->backoff++;
            uint64_t end =
                l->snd_una + (uint64_t)RTO_BURST_FRAMES * data_room(l);
            if (end > l->peer_right)
                end = l->peer_right; /* a shrunk window: the rest waits */
            /* first in the retransmit queue, so a medium out of buffers
             * delays it to the next poll instead of the next timeout */
            if (l->rtxq_n == RTXQ_MAX)
                l->rtxq_n--; /* a NAKed range: NAKed again if need be */
            memmove(&l->rtxq[1], &l->rtxq[0], l->rtxq_n * sizeof(l->rtxq[0]));
            l->rtxq[0].start = l->snd_una;
            l->rtxq[0].end = end;
            l->rtxq_n++;
            l->rtx_deadline = now + rto_now(l);
        } else {
            l->rtx_deadline = NEVER;
        }
    }
    while (ok && l->rtxq_n > 0) {
        ok = retransmit(l, &l->rtxq[0].start, l->rtxq[0].end);
        if (ok) {
            l->rtxq_n--;
            memmove(&l->rtxq[0], &l->rtxq[1], l->rtxq_n * sizeof(l->rtxq[0]));
        }
    }
    if (ok)
        ok = send_new(l, now);

    /* a closed window with nothing in flight gets no ack to reopen it:
     * probe it with a PING (the PONG carries the peer's window) */
    if (l->snd_end > l->snd_nxt && l->snd_nxt >= l->peer_right &&
        l->snd_una == l->snd_nxt) {
        if (l->probe_deadline == NEVER) {
            l->probe_deadline = now + rto_now(l);
        } else if (ok && now >= l->probe_deadline) {
            ok = send_ping(l, now);
            if (ok) {
                l->st.window_probes++;
                if (l->backoff < BACKOFF_MAX)
                    l->backoff++;
                l->probe_deadline = now + rto_now(l);
            }
        }
    } else {
        l->probe_deadline = NEVER;
    }

    if (ok && (l->nak_check || (l->held_n > 0 && now >= l->nak_next))) {
        ok = send_naks(l, now);
        if (ok)
            l->nak_check = false;
    }
    if (ok && l->pong_pending) {
        size_t none = 0;
        ok = tx_frame(l, EDI_RLINK_T_PONG, l->pong_stamp, &none, 0);
        if (ok) {
            l->pong_pending = false;
            l->st.pongs_out++;
        }
    }
    if (ok && (l->ack_now || now >= l->ack_due)) {
        size_t none = 0;
        ok = tx_frame(l, EDI_RLINK_T_ACK, 0, &none, 0);
        if (ok)
            l->st.acks_out++;
    }
    uint64_t quiet_since =
        l->last_rx_ns > l->last_ping_ns ? l->last_rx_ns : l->last_ping_ns;
    if (ok && since(now, quiet_since) >= l->cfg.idle_ping_ns)
        (void)send_ping(l, now);

    if (l->st.frames_out != frames_before && l->med.tx_flush != NULL)
        l->med.tx_flush(l->med.medium);
}

static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

uint64_t edi_rlink_next_deadline_ns(const edi_rlink *l)
{
    if (l->dead)
        return NEVER;
    if (l->tx_blocked || l->ack_now || l->nak_check || l->pong_pending ||
        l->rtxq_n > 0 ||
        (l->snd_nxt < l->snd_end && l->snd_nxt < l->peer_right))
        return l->now_ns;
    uint64_t quiet_since =
        l->last_rx_ns > l->last_ping_ns ? l->last_rx_ns : l->last_ping_ns;
    uint64_t d = l->last_rx_ns + l->cfg.dead_after_ns;
    if (l->snd_nxt > l->snd_una && l->peer_right > l->snd_una)
        d = min64(d, l->stuck_since_ns + l->cfg.dead_after_ns);
    d = min64(d, quiet_since + l->cfg.idle_ping_ns);
    d = min64(d, l->rtx_deadline);
    d = min64(d, l->probe_deadline);
    d = min64(d, l->ack_due);
    if (l->held_n > 0)
        d = min64(d, l->nak_next);
    if (l->snd_end > l->snd_nxt && l->snd_nxt >= l->peer_right &&
        l->snd_una == l->snd_nxt && l->probe_deadline == NEVER)
        d = l->now_ns; /* the probe timer starts at the next poll */
    return d;
}

/* ---- receive ------------------------------------------------------------ */

static void on_ack(edi_rlink *l, uint64_t now, uint64_t ack, uint32_t window)
{
    if (ack < l->snd_una)
        return; /* an old frame overtaken: its window is old too */
    if (ack > l->snd_una) {
        if (l->timing && ack >= l->timed_end) {
            l->timing = false;
            rtt_sample(l, since(now, l->timed_sent_ns));
        }
        l->snd_una = ack;
        l->stuck_since_ns = now;
        /* progress: the path works, the next timeout starts afresh */
        l->backoff = 0;
        l->rtx_deadline = l->snd_una < l->snd_nxt ? now + rto_now(l) : NEVER;
        while (l->rtxq_n > 0 && l->rtxq[0].end <= ack) {
            l->rtxq_n--;
            memmove(&l->rtxq[0], &l->rtxq[1], l->rtxq_n * sizeof(l->rtxq[0]));
        }
    }
    /* The peer's edge never moves left: a smaller one is an older frame's
     * (a window-0 PONG overtaken by the ACK that reopened it), and taking
     * it would hold back what the peer already accepts. Its first word
     * replaces our guess, whichever way. */
    uint64_t old_right = l->peer_right;
    if (!l->peer_heard || ack + window > l->peer_right)
        l->peer_right = ack + window;
    /* A window that reopens ends the probes' backoff, as progress does:
     * a frame lost right after it is sent again one timeout later, not
     * after the backed-off probe interval (up to rto_max). */
    if (l->peer_heard && l->backoff && old_right <= l->snd_nxt &&
        l->peer_right > l->snd_nxt) {
        l->backoff = 0;
        if (l->rtx_deadline != NEVER && now + rto_now(l) < l->rtx_deadline)
            l->rtx_deadline = now + rto_now(l);
    }
    l->peer_heard = true;
    if (l->want_writable != 0 && send_room(l) >= l->want_writable) {
        l->want_writable = 0;
        if (l->cb.on_writable != NULL)
            l->cb.on_writable(l->user);
    }
}

static void on_nak(edi_rlink *l, uint64_t now, uint64_t start, uint64_t end)
{
    l->st.naks_received++;
    if (start < l->snd_una)
        start = l->snd_una;
    if (start >= end || log_recent(l->rtx_log, start, now, rtt_interval(l)) ||
        l->rtxq_n == RTXQ_MAX) {
        l->st.naks_ignored++;
        return;
    }
    log_put(l->rtx_log, &l->rtx_log_at, start, now);
    l->rtxq[l->rtxq_n].start = start;
    l->rtxq[l->rtxq_n].end = end;
    l->rtxq_n++;
}

/* In-order stream bytes p[0..n) inside rb to the deframer. */
static void deliver(edi_rlink *l, edi_rxbuf *rb, const uint8_t *p, size_t n)
{
    l->rcv_nxt += n;
    l->st.bytes_in += n;
    edi_deframe_feed(&l->df, rb, p, n);
}

/* Held segments that the advance of rcv_nxt reached. */
static void drain_held(edi_rlink *l)
{
    uint32_t i = 0;
    while (i < l->held_n && l->held[i].start <= l->rcv_nxt && !l->dead) {
        held_seg *s = &l->held[i];
        if (s->end > l->rcv_nxt)
            deliver(l, s->rb, s->data + (l->rcv_nxt - s->start),
                    (size_t)(s->end - l->rcv_nxt));
        else
            l->st.duplicates++; /* overlapped by what came before */
        edi_rxbuf_unref(s->rb);
        i++;
    }
    if (i == 0)
        return;
    l->held_n -= i;
    memmove(l->held, l->held + i, l->held_n * sizeof(*l->held));
    l->st.held_now = l->held_n;
}

/* A segment past a gap: held unless a neighbour holds it all already. */
static void hold(edi_rlink *l, uint64_t start, uint64_t end, const uint8_t *p,
                 edi_rxbuf *rb)
{
    uint32_t lo = 0, hi = l->held_n; /* first held starting after start */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (l->held[mid].start <= start)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (uint32_t j = lo, k = 0; j > 0 && k < CONTAIN_LOOKBACK; j--, k++)
        if (l->held[j - 1].end >= end) {
            l->st.duplicates++;
            return;
        }
    if (l->held_n >= l->cfg.max_held_frames) {
        l->st.held_full++;
        return;
    }
    if (l->held_n == l->held_cap) {
        uint32_t cap = l->held_cap ? l->held_cap * 2 : 64;
        if (cap > l->cfg.max_held_frames)
            cap = l->cfg.max_held_frames;
        held_seg *h = realloc(l->held, cap * sizeof(*h));
        if (h == NULL) {
            l->st.held_full++;
            return;
        }
        l->held = h;
        l->held_cap = cap;
    }
    memmove(l->held + lo + 1, l->held + lo,
            (l->held_n - lo) * sizeof(*l->held));
    edi_rxbuf_ref(rb);
    l->held[lo] = (held_seg){start, end, p, rb};
    l->held_n++;
    l->st.out_of_order++;
    l->st.held_now = l->held_n;
    if (l->held_n > l->st.held_max)
        l->st.held_max = l->held_n;
    l->nak_check = true;
}

static void on_data(edi_rlink *l, uint64_t now, const edi_rlink_hdr *h,
                    const uint8_t *p, edi_rxbuf *rb)
{
    uint64_t start = h->seq, end = h->seq + h->len;
    l->st.data_frames_in++;
    if (l->ack_due == NEVER)
        l->ack_due = now + l->cfg.ack_delay_ns;
    if (++l->frames_unacked >= l->cfg.ack_every_frames)
        l->ack_now = true;
    if (end <= l->rcv_nxt) {
        /* the peer did not see our ack: say it again now */
        l->st.duplicates++;
        l->ack_now = true;
        return;
    }
    uint64_t right = recv_right(l);
    if (start > l->rcv_nxt) {
        if (end > right) {
            l->st.beyond_window++;
            l->ack_now = true;
            return;
        }
        hold(l, start, end, p, rb);
        return;
    }
    if (l->rcv_nxt >= right) {
        l->st.beyond_window++;
        l->ack_now = true;
        return;
    }
    uint64_t stop = end < right ? end : right;
    deliver(l, rb, p + (l->rcv_nxt - start), (size_t)(stop - l->rcv_nxt));
    drain_held(l);
    if (l->held_n > 0)
        l->nak_check = true; /* the next gap, if it has not been named */
}

void edi_rlink_input(edi_rlink *l, uint64_t now, const edi_frame *f)
{
    if (l->dead)
        return;
    if (now > l->now_ns)
        l->now_ns = now;
    edi_rlink_hdr h;
    edi_rlink_bad bad = edi_rlink_hdr_decode(f->data, f->len, &h);
    if (bad != EDI_RLINK_OK) {
        l->st.bad_frames++;
        switch (bad) {
        case EDI_RLINK_BAD_SHORT:
            l->st.bad_short++;
            break;
        case EDI_RLINK_BAD_MAGIC:
            l->st.bad_magic++;
            break;
        case EDI_RLINK_BAD_VERSION:
            l->st.bad_version++;
            break;
        case EDI_RLINK_BAD_TYPE:
            l->st.bad_type++;
            break;
        default:
            l->st.bad_fields++;
            break;
        }
        return;
    }
    if (h.token != l->cfg.token) {
        l->st.bad_frames++;
        l->st.bad_token++;
        return;
    }
    if (h.ack > l->snd_nxt ||
        (h.type == EDI_RLINK_T_NAK && h.seq + h.nak_len > l->snd_nxt)) {
        l->st.bad_frames++;
        l->st.bad_ack++;
        return;
    }
    l->st.frames_in++;
    if (now > l->last_rx_ns)
        l->last_rx_ns = now;
    on_ack(l, now, h.ack, h.window);
    switch (h.type) {
    case EDI_RLINK_T_DATA:
        on_data(l, now, &h, f->data + EDI_RLINK_HDR_BYTES, f->rxbuf);
        if (l->dead)
            release_held(l);
        break;
    case EDI_RLINK_T_NAK:
        on_nak(l, now, h.seq, h.seq + h.nak_len);
        break;
    case EDI_RLINK_T_PING:
        l->pong_pending = true;
        l->pong_stamp = h.seq;
        break;
    case EDI_RLINK_T_PONG:
        if (l->ping_out && h.seq == l->ping_stamp) {
            l->ping_out = false;
            rtt_sample(l, since(now, h.seq));
        }
        break;
    default:
        break;
    }
}

/* ---- getters ------------------------------------------------------------ */

uint32_t edi_rlink_drop_held(edi_rlink *l)
{
    uint32_t n = l->held_n;
    release_held(l);
    l->st.held_dropped += n;
    l->st.held_now = 0;
    l->nak_next = NEVER;
    return n;
}

void edi_rlink_set_recv_window(edi_rlink *l, uint32_t bytes)
{
    if (bytes > l->cfg.recv_window_bytes)
        bytes = l->cfg.recv_window_bytes;
    if (bytes != l->rcv_window)
        l->ack_now = true; /* the peer waits on it, or should stop now */
    l->rcv_window = bytes;
}

bool edi_rlink_dead(const edi_rlink *l)
{
    return l->dead;
}

size_t edi_rlink_unacked_bytes(const edi_rlink *l)
{
    return (size_t)(l->snd_end - l->snd_una);
}

uint64_t edi_rlink_acked_offset(const edi_rlink *l)
{
    return l->snd_una;
}

size_t edi_rlink_unsent_bytes(const edi_rlink *l)
{
    return (size_t)(l->snd_end - l->snd_nxt);
}

uint64_t edi_rlink_sent_offset(const edi_rlink *l)
{
    return l->snd_nxt;
}

void edi_rlink_get_stats(const edi_rlink *l, edi_rlink_stats *out)
{
    *out = l->st;
    out->srtt_ns = l->srtt_ns;
    out->rttvar_ns = l->rttvar_ns;
    out->rto_ns = rto_now(l);
    out->held_now = l->held_n;
    out->send_buffer_bytes = edi_rlink_unacked_bytes(l);
}
