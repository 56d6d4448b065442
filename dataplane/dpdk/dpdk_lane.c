/* SPDX-License-Identifier: Apache-2.0 */
/* The DPDK lane (see dpdk_lane.h). */
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/rand.h"
#include "dataplane/dpdk/dpdk_lane.h"
#include "dataplane/dpdk/medium.h"
#include "edist/error.h"

/* Frames taken from the port per burst, and bursts per poll at most: the
 * processes the messages are for run between polls, so a smaller batch
 * lets their replies and acknowledgements out sooner (8 bursts held a
 * stream's receiver 1-2 ms, past the sender's retransmission timeout). */
#define DL_BURST 32u
#define DL_BURSTS_PER_POLL 2u
/* The timer that wakes a sleeping loop to poll the port. */
#define DL_WAKE_MS 1u
/* A link whose appended, unsent bytes fill this many frames sends them at
 * once rather than at the end of the loop iteration: a process streaming
 * for a whole run would otherwise leave the port idle meanwhile, and the
 * peer idle after it (sender and receiver took turns instead of
 * overlapping). */
#define DL_SEND_AHEAD_FRAMES 4u

typedef struct dl_lane dl_lane;

/* Bytes a link took with force while its send buffer was full: they go to
 * the link protocol, in order, as it makes room. */
typedef struct dl_over {
    struct dl_over *next;
    size_t len;
    uint8_t bytes[];
} dl_over;

typedef struct dl_link {
    edi_lane_link base;
    dl_lane *lane;
    edi_rlink *proto;        /* NULL until the port's link is up */
    edi_encap_peer peer;
    uint64_t token;
    size_t frame_max;       /* the smaller of both ends' (link_open) */
    bool up;
    bool dirty;             /* sent since the last protocol poll */
    bool gone;              /* on_closed is due (reason) */
    int gone_reason;
    bool resv_open;         /* edi_rlink_reserve'd, not committed */
    bool in_proto;          /* inside its protocol's input or poll: a send
                             * from a callback must not poll it again */
    bool rx_held;           /* its owner closed its receive window */
    uint64_t acked_seen;    /* the protocol's acked and sent offsets at */
    uint64_t sent_seen;     /* the last on_sent */
    dl_over *over_head, *over_tail;
    size_t over_bytes;
    uint8_t *ring;          /* the protocol's send buffer, when the port's */
} dl_link;

struct dl_lane {
    edi_lane base;
    edi_dpdk_lane_params p;
    edi_dpdk_port *port;
    edi_encap encap;        /* the framing, our MAC in it */
    size_t header_bytes;    /* the framing's, before each link frame */
    size_t payload_max;     /* a link frame's bytes at most */
    const char *medium;
    dl_link **links;
    uint32_t nlinks, cap_links;
    edi_timer wake;
    bool registered;        /* this loop's thread has an lcore id */
    uint32_t waiting;       /* links whose protocol waits for the port */
    uint64_t link_checked_ns;
    uint64_t rx_unknown_token, rx_early, rx_short, rx_foreign, tx_lost, arp_replies;
    bool rx_held;           /* every link's receive window closed */
    uint64_t window_closes, links_dead;
    /* the counts of links gone, so that the lane's totals never go back */
    edi_rlink_stats closed;
    /* injected faults (params rx_*_ppm) */
    uint64_t rng;
    edi_frame late;         /* a frame held back to be reordered */
    bool have_late;
    uint64_t injected_drops, injected_dups, injected_reorders;
};

void edi_dpdk_lane_params_default(edi_dpdk_lane_params *p)
{
    memset(p, 0, sizeof *p);
    edi_rlink_config_default(&p->link);
    /* Room for the scheduler's force-fed units past its watermark. */
    p->link.send_buffer_bytes = EDI_DPDK_SEND_BUFFER_BYTES_DEFAULT;
    p->link.recv_window_bytes = EDI_DPDK_RECV_WINDOW_BYTES_DEFAULT;
    p->kernel_window_bytes = EDI_DPDK_KERNEL_WINDOW_BYTES_DEFAULT;
}

static uint64_t lane_now(const dl_lane *dl)
{
    return edi_loop_now_ns(dl->base.loop);
}

/* ---- the medium under each link's protocol ---------------------------------- */

static int m_tx_alloc(void *medium, edi_rlink_txbuf *out)
{
    dl_link *k = medium;
    dl_lane *dl = k->lane;
    edi_dpdk_txbuf b;
    int rc = edi_dpdk_tx_get(dl->port, &b);
    if (rc)
        return rc;
    /* The header is written at send, when the frame's length is known. */
    out->data = b.data + dl->header_bytes;
    out->cap = b.cap - dl->header_bytes;
    if (out->cap > dl->payload_max)
        out->cap = dl->payload_max;
    out->handle = b.handle;
    return 0;
}

/* The port's buffer of a handle m_tx_alloc gave out. */
static edi_dpdk_txbuf txbuf_of(const dl_lane *dl, void *handle)
{
    return (edi_dpdk_txbuf){.data = edi_dpdk_tx_data(handle),
                            .cap = dl->payload_max + dl->header_bytes,
                            .handle = handle};
}

static void m_tx_send(void *medium, void *handle, size_t len)
{
    dl_link *k = medium;
    dl_lane *dl = k->lane;
    edi_dpdk_txbuf b = txbuf_of(dl, handle);
    if (len == 0) { /* not used after all */
        edi_dpdk_tx_discard(dl->port, &b);
        return;
    }
    edi_encap_write(&dl->encap, &k->peer, b.data, len + dl->header_bytes);
    if (edi_dpdk_tx_commit(dl->port, 0, &b, len + dl->header_bytes) != 0) {
        /* The port's queue is full even after a flush: the frame is lost
         * here, counted, and the protocol sends it again. */
        dl->tx_lost++;
        edi_dpdk_tx_discard(dl->port, &b);
    }
}

/* A port that transmits from our memory (a memif zero-copy client) holds
 * the link's send buffer, and a frame points into it for its data: the
 * server copies straight out of it, where a frame built by copying cost
 * the sender as much again (half its time in a 1 KiB stream). Small
 * frames are still copied: an mbuf more and a ring slot more per frame
 * cost more than a copy of this many bytes. */
#define DL_ATTACH_MIN_BYTES 512u

static uint8_t *m_ring_alloc(void *medium, size_t bytes)
{
    dl_link *k = medium;
    k->ring = edi_dpdk_ext_alloc(k->lane->port, bytes);
    return k->ring;
}

static int m_tx_attach(void *medium, void *handle, const uint8_t *p, size_t n)
{
    dl_link *k = medium;
    edi_dpdk_txbuf b = txbuf_of(k->lane, handle);
    return edi_dpdk_tx_attach(k->lane->port, &b, k->ring, p, n);
}

static void m_ring_free(void *medium, uint8_t *ring)
{
    (void)medium;
    edi_dpdk_ext_release(ring);
}

/* ---- the protocol's callbacks -------------------------------------------------- */

static void p_message(void *user, const edi_frame *msg)
{
    dl_link *k = user;
    if (!k->gone)
        edi_lane_deliver(&k->base, msg);
}

static void over_drain(dl_link *k)
{
    while (k->over_head) {
        dl_over *o = k->over_head;
        if (edi_rlink_send(k->proto, o->bytes, o->len, NULL, 0) != 0)
            return; /* on_writable brings us back */
        k->over_head = o->next;
        if (!k->over_head)
            k->over_tail = NULL;
        k->over_bytes -= o->len;
        k->dirty = true;
        free(o);
    }
}

static void p_writable(void *user)
{
    dl_link *k = user;
    over_drain(k);
    if (!k->over_head && !k->gone)
        edi_lane_writable(&k->base);
}

static void p_dead(void *user, int reason)
{
    dl_link *k = user;
    if (!k->gone) {
        k->lane->links_dead++;
        k->gone = true;
        k->gone_reason = reason;
    }
}

static const edi_rlink_callbacks proto_cb = {
    .on_message = p_message,
    .on_writable = p_writable,
    .on_dead = p_dead,
};

/* ---- links ----------------------------------------------------------------------- */

/* What a link counted joins the lane's totals when it goes (its gauges
 * do not: they are the open links' alone). */
static void stats_add(edi_rlink_stats *to, const edi_rlink_stats *from)
{
    uint64_t *a = (uint64_t *)to;
    const uint64_t *b = (const uint64_t *)from;
    for (size_t j = 0; j < sizeof *from / sizeof(uint64_t); j++)
        a[j] += b[j];
}

static void link_free(dl_link *k)
{
    if (k->proto) {
        edi_rlink_stats s;
        edi_rlink_get_stats(k->proto, &s);
        s.held_now = s.held_max = s.srtt_ns = s.rttvar_ns = s.rto_ns = 0;
        s.send_buffer_bytes = 0;
        stats_add(&k->lane->closed, &s);
        edi_rlink_free(k->proto);
    }
    while (k->over_head) {
        dl_over *o = k->over_head;
        k->over_head = o->next;
        free(o);
    }
    free(k);
}

static void link_remove(dl_lane *dl, dl_link *k)
{
    for (uint32_t i = 0; i < dl->nlinks; i++)
        if (dl->links[i] == k) {
            dl->links[i] = dl->links[--dl->nlinks];
            return;
        }
}

int edi_dpdk_lane_link_open(edi_lane *lane, const uint8_t *peer_addr,
                            size_t peer_addr_len, uint64_t tx_token,
                            uint64_t rx_token, size_t peer_frame_max, void *user,
                            edi_lane_link **out)
{
    dl_lane *dl = (dl_lane *)lane;
    if (lane == NULL || lane->ops != &edi_dpdk_lane_ops || peer_addr == NULL ||
        tx_token == 0 || rx_token == 0 || tx_token == rx_token)
        return edist_set_error(EDIST_EINVAL, "DPDK lane: bad link (address or tokens)");
    /* Frames no larger than the peer takes: a larger one would be lost
     * every time it is sent, while pings and acks still pass. */
    size_t frame_max = dl->payload_max;
    if (peer_frame_max != 0 && peer_frame_max < frame_max)
        frame_max = peer_frame_max;
    if (frame_max <= EDI_RLINK_HDR_BYTES + 64)
        return edist_set_error(EDIST_EINVAL,
                               "DPDK lane: the peer takes frames of %zu bytes at most: too "
                               "small",
                               peer_frame_max);
    uint64_t token = tx_token ^ rx_token;
    edi_encap_peer peer;
    int rc = edi_encap_peer_of(&dl->encap, peer_addr, peer_addr_len, token, &peer);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < dl->nlinks; i++)
        if (dl->links[i]->token == token)
            return edist_set_error(EDIST_EEXIST, "DPDK lane: a link with these tokens");
    if (dl->nlinks == dl->cap_links) {
        uint32_t cap = dl->cap_links ? dl->cap_links * 2 : 8;
        dl_link **a = realloc(dl->links, cap * sizeof *a);
        if (!a)
            return edist_set_error(EDIST_ENOMEM, "DPDK lane: links");
        dl->links = a;
        dl->cap_links = cap;
    }
    dl_link *k = calloc(1, sizeof *k);
    if (!k)
        return edist_set_error(EDIST_ENOMEM, "DPDK lane: link");
    edi_lane_link_init(&k->base, lane, user);
    k->lane = dl;
    k->peer = peer;
    k->token = token;
    k->frame_max = frame_max;
    dl->waiting++; /* its protocol starts with the port (start_protocols) */
    dl->links[dl->nlinks++] = k;
    *out = &k->base;
    return 0;
}

/* A link's protocol starts once the port's link is up: its liveness clock
 * must not run while the port still looks for its peer (a memif client
 * takes seconds to connect). Checked at most once a millisecond, as is
 * a port with frames queued (see below). */
static void start_protocols(dl_lane *dl, uint64_t now)
{
    bool queued = edi_dpdk_tx_pending(dl->port, 0) > 0;
    if ((dl->waiting == 0 && !queued) || now - dl->link_checked_ns < 1000000u)
        return;
    dl->link_checked_ns = now;
    edi_dpdk_link ls;
    edi_dpdk_port_link(dl->port, &ls);
    if (!ls.up) {
        /* Frames queued for a port whose peer is gone would hold their
         * mbufs for good: dropped (counted by the port); the protocol
         * sends again whatever a live link still needs. */
        if (queued)
            edi_dpdk_tx_drop_pending(dl->port, 0);
        return;
    }
    for (uint32_t i = 0; i < dl->nlinks; i++) {
        dl_link *k = dl->links[i];
        if (k->proto || k->gone)
            continue;
        edi_rlink_config cfg = dl->p.link;
        cfg.token = k->token;
        edi_rlink_medium m = {
            .tx_alloc = m_tx_alloc,
            .tx_send = m_tx_send,
            .tx_flush = NULL, /* the lane flushes the port once an iteration */
            .max_frame_bytes = k->frame_max,
            .medium = k,
            .ring_alloc = m_ring_alloc,
            .tx_attach = m_tx_attach,
            .ring_free = m_ring_free,
            .attach_min_bytes = DL_ATTACH_MIN_BYTES,
        };
        int prc = edi_rlink_new(&cfg, &m, &proto_cb, k, now, &k->proto);
        if (prc != 0) {
            /* reaped as still waiting (reap_gone counts it off) */
            k->gone = true;
            k->gone_reason = prc;
        } else {
            k->dirty = true; /* its first poll says hello */
            dl->waiting--;
            if (k->rx_held || dl->rx_held)
                edi_rlink_set_recv_window(k->proto, 0);
        }
    }
}

/* The protocol's due work, and what was sent since, turned into frames. */
static void link_poll(dl_link *k, uint64_t now)
{
    k->dirty = false;
    k->in_proto = true;
    edi_rlink_poll(k->proto, now);
    k->in_proto = false;
}

/* After an append: a few frames' worth goes out now (DL_SEND_AHEAD_FRAMES). */
static void send_ahead(dl_link *k)
{
    if (k->in_proto ||
        edi_rlink_unsent_bytes(k->proto) < DL_SEND_AHEAD_FRAMES * k->lane->payload_max)
        return;
    link_poll(k, lane_now(k->lane));
    edi_dpdk_tx_flush(k->lane->port, 0);
}

/* on_up once the peer was heard and one of our frames answered. */
static void check_up(dl_link *k)
{
    if (k->up || k->gone || !k->proto)
        return;
    edi_rlink_stats s;
    edi_rlink_get_stats(k->proto, &s);
    if (s.frames_in > 0 && s.rtt_samples > 0) {
        k->up = true;
        edi_lane_up(&k->base);
    }
}

/* Some was sent, or the peer acknowledged some: the user's on_sent (a
 * sender pacing itself below a watermark waits for it; a graceful close
 * waits for everything acknowledged). By the sent and acked offsets,
 * which only grow: the amounts unsent and unacknowledged also grow with
 * every send, so comparing them with their values at the last poll missed
 * progress that came after sends (a 16 MiB stream waited for good). */
static void report_sent(dl_link *k)
{
    uint64_t acked = edi_rlink_acked_offset(k->proto);
    uint64_t sent = edi_rlink_sent_offset(k->proto);
    if (acked == k->acked_seen && sent == k->sent_seen)
        return;
    k->acked_seen = acked;
    k->sent_seen = sent;
    if (!k->gone)
        edi_lane_sent(&k->base, edi_rlink_unacked_bytes(k->proto) + k->over_bytes);
}

/* ---- receive and timers ------------------------------------------------------------ */

static dl_link *link_of(dl_lane *dl, uint64_t token)
{
    for (uint32_t i = 0; i < dl->nlinks; i++)
        if (dl->links[i]->token == token)
            return dl->links[i];
    return NULL;
}

/* UDP framing: an ARP request for our address is answered (nothing else
 * on a DPDK port would). A reply the port cannot take now is not sent
 * (counted in tx_lost): the asker asks again. */
static bool arp_answer(dl_lane *dl, const edi_frame *f)
{
    uint8_t reply[EDI_ENCAP_ARP_REPLY_BYTES];
    size_t n = edi_encap_arp_reply(&dl->encap, f->data, f->len, reply);
    if (n == 0)
        return false;
    edi_dpdk_txbuf b;
    if (edi_dpdk_tx_get(dl->port, &b) != 0) {
        dl->tx_lost++;
        return true;
    }
    memcpy(b.data, reply, n);
    if (edi_dpdk_tx_commit(dl->port, 0, &b, n) != 0) {
        edi_dpdk_tx_discard(dl->port, &b);
        dl->tx_lost++;
    } else {
        dl->arp_replies++;
    }
    return true;
}

static void rx_frame(dl_lane *dl, const edi_frame *f, uint64_t now)
{
    size_t body_len;
    size_t h = edi_encap_match(&dl->encap, f->data, f->len, &body_len);
    if (h == 0) {
        if (!arp_answer(dl, f))
            dl->rx_foreign++;
        return;
    }
    if (body_len < EDI_RLINK_HDR_BYTES) {
        dl->rx_short++;
        return;
    }
    const uint8_t *p = f->data + h;
    dl_link *k = link_of(dl, edi_get_be64(p + 8));
    if (!k || k->gone) {
        dl->rx_unknown_token++;
        return;
    }
    if (!k->proto) {
        dl->rx_early++;
        return;
    }
    edi_frame in = {.data = p, .len = body_len, .rxbuf = f->rxbuf};
    k->in_proto = true;
    edi_rlink_input(k->proto, now, &in);
    k->in_proto = false;
}

/* A received frame through the injected faults: dropped, delivered
 * twice, or held back and delivered after the next one. */
static void rx_faulty(dl_lane *dl, const edi_frame *f, uint64_t now)
{
    if (edi_draw_ppm(&dl->rng) < dl->p.rx_drop_ppm) {
        dl->injected_drops++;
        return;
    }
    if (!dl->have_late && edi_draw_ppm(&dl->rng) < dl->p.rx_reorder_ppm) {
        edi_rxbuf_ref(f->rxbuf);
        dl->late = *f;
        dl->have_late = true;
        dl->injected_reorders++;
        return;
    }
    rx_frame(dl, f, now);
    if (edi_draw_ppm(&dl->rng) < dl->p.rx_dup_ppm) {
        dl->injected_dups++;
        rx_frame(dl, f, now);
    }
    if (dl->have_late) {
        dl->have_late = false;
        rx_frame(dl, &dl->late, now);
        edi_rxbuf_unref(dl->late.rxbuf);
    }
}

/* Links whose end is due: on_closed, then freed. */
static uint32_t reap_gone(dl_lane *dl)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < dl->nlinks;) {
        dl_link *k = dl->links[i];
        if (!k->gone) {
            i++;
            continue;
        }
        link_remove(dl, k); /* the last one moved into slot i */
        if (!k->proto)
            dl->waiting--;
        edi_lane_link_gone(&k->base, k->gone_reason);
        link_free(k);
        n++;
    }
    return n;
}

static uint32_t dl_poll(edi_lane *lane, uint32_t budget)
{
    (void)budget;
    dl_lane *dl = (dl_lane *)lane;
    if (!dl->registered) {
        /* the loop's thread: an lcore id for the pool's cache */
        (void)edi_dpdk_thread_register();
        dl->registered = true;
    }
    uint64_t now = lane_now(dl);
    uint32_t work = 0;
    start_protocols(dl, now);
    edi_frame frames[DL_BURST];
    for (unsigned b = 0; b < DL_BURSTS_PER_POLL; b++) {
        unsigned n = edi_dpdk_rx_burst(dl->port, 0, frames, DL_BURST);
        for (unsigned i = 0; i < n; i++) {
            if (dl->p.rx_drop_ppm | dl->p.rx_dup_ppm | dl->p.rx_reorder_ppm)
                rx_faulty(dl, &frames[i], now);
            else
                rx_frame(dl, &frames[i], now);
            edi_rxbuf_unref(frames[i].rxbuf); /* the link took its own */
        }
        work += n;
        if (n < DL_BURST)
            break;
    }
    /* Past half the pool held (rx_watch copies the mailboxes' views out
     * at the same mark), frames held out of order go too: a loss on
     * several links at once must not take the mbufs that the frames
     * filling the gaps need; the peers' timeouts send them again. */
    if (edi_dpdk_port_pool_low(dl->port))
        for (uint32_t i = 0; i < dl->nlinks; i++)
            if (dl->links[i]->proto && !dl->links[i]->gone)
                edi_rlink_drop_held(dl->links[i]->proto);
    for (uint32_t i = 0; i < dl->nlinks; i++) {
        dl_link *k = dl->links[i];
        if (k->gone || !k->proto)
            continue;
        if (k->dirty || edi_rlink_next_deadline_ns(k->proto) <= now)
            link_poll(k, now);
        check_up(k);
        report_sent(k);
    }
    edi_dpdk_tx_flush(dl->port, 0);
    return work + reap_gone(dl);
}

/* End of the loop iteration: what the processes sent goes out now. */
static void dl_flush(edi_lane *lane)
{
    dl_lane *dl = (dl_lane *)lane;
    uint64_t now = lane_now(dl);
    bool any = false;
    for (uint32_t i = 0; i < dl->nlinks; i++) {
        dl_link *k = dl->links[i];
        if (k->dirty && !k->gone && k->proto) {
            link_poll(k, now);
            any = true;
        }
    }
    if (any || edi_dpdk_tx_pending(dl->port, 0) > 0)
        edi_dpdk_tx_flush(dl->port, 0);
}

static void wake_fn(edi_loop *loop, edi_timer *t, void *arg)
{
    /* nothing: the iteration this timer causes polls the lane */
    (void)loop;
    (void)t;
    (void)arg;
}

/* ---- transmit --------------------------------------------------------------------- */

static int dl_tx_reserve(edi_lane_link *link, size_t max_len, uint8_t **frame)
{
    dl_link *k = (dl_link *)link;
    if (k->gone)
        return edist_set_error(EDIST_ECLOSED, "DPDK lane: link closed");
    if (!k->proto || k->over_head)
        return EDIST_EAGAIN; /* the port is not up yet, or forced bytes wait */
    /* Encoded in place, in the protocol's send buffer. */
    int rc = edi_rlink_reserve(k->proto, max_len, frame);
    k->resv_open = rc == 0;
    return rc;
}

static int dl_tx_commit(edi_lane_link *link, size_t len)
{
    dl_link *k = (dl_link *)link;
    if (!k->resv_open)
        return edist_set_error(EDIST_EINVAL, "DPDK lane: commit without a reservation");
    k->resv_open = false;
    if (k->gone)
        return edist_set_error(EDIST_ECLOSED, "DPDK lane: link closed");
    int rc = edi_rlink_commit(k->proto, len);
    if (rc == 0) {
        k->dirty = true;
        send_ahead(k);
    }
    return rc;
}

static int over_push(dl_link *k, const edi_lane_txframe *f)
{
    size_t len = f->head_len + f->body_len;
    /* Queued, it would wait for room that never comes, and everything
     * behind it too: refused now, the connection goes down saying why. */
    if (len + 4 > k->lane->p.link.send_buffer_bytes)
        return edist_set_error(EDIST_ENOMEM,
                               "DPDK lane: a unit of %zu bytes is larger than the send "
                               "buffer (dpdk_send_buffer_bytes %zu)",
                               len, k->lane->p.link.send_buffer_bytes);
    dl_over *o = malloc(sizeof *o + len);
    if (!o)
        return edist_set_error(EDIST_ENOMEM, "DPDK lane: %zu bytes", len);
    o->next = NULL;
    o->len = len;
    if (f->head_len)
        memcpy(o->bytes, f->head, f->head_len);
    if (f->body_len)
        memcpy(o->bytes + f->head_len, f->body, f->body_len);
    if (k->over_tail)
        k->over_tail->next = o;
    else
        k->over_head = o;
    k->over_tail = o;
    k->over_bytes += len;
    return 0;
}

static int dl_tx_batch(edi_lane_link *link, const edi_lane_txframe *frames, size_t n,
                       size_t *accepted)
{
    dl_link *k = (dl_link *)link;
    k->resv_open = false;
    size_t i = 0;
    int rc = 0;
    for (; i < n; i++) {
        const edi_lane_txframe *f = &frames[i];
        if (k->gone) {
            rc = edist_set_error(EDIST_ECLOSED, "DPDK lane: link closed");
            break;
        }
        rc = k->over_head || !k->proto ? EDIST_EAGAIN
                          : edi_rlink_send(k->proto, f->head, f->head_len, f->body,
                                          f->body_len);
        if (rc == EDIST_EAGAIN && f->force)
            rc = over_push(k, f);
        if (rc)
            break;
        k->dirty = true;
        if (f->release)
            f->release(f->release_arg, f->body); /* copied */
    }
    if (i > 0 && !k->gone && k->proto)
        send_ahead(k);
    if (accepted)
        *accepted = i;
    return rc;
}

/* The protocol copies a batch's bodies into its send buffer too: a copy
 * is a batch of one. */
static int dl_tx_copy(edi_lane_link *link, const void *head, size_t head_len,
                      const void *body, size_t body_len)
{
    edi_lane_txframe f = {.head = head, .head_len = head_len, .body = body,
                          .body_len = body_len};
    return dl_tx_batch(link, &f, 1, NULL);
}

static int dl_tx_flush(edi_lane_link *link)
{
    dl_link *k = (dl_link *)link;
    if (k->gone)
        return edist_set_error(EDIST_ECLOSED, "DPDK lane: link closed");
    if (k->dirty && k->proto && !k->in_proto)
        link_poll(k, lane_now(k->lane));
    edi_dpdk_tx_flush(k->lane->port, 0);
    return 0;
}

static size_t dl_tx_pending(const edi_lane_link *link)
{
    const dl_link *k = (const dl_link *)link;
    return (k->proto ? edi_rlink_unacked_bytes(k->proto) : 0) + k->over_bytes;
}

/* Unacknowledged bytes already sent wait for nobody: a scheduler that
 * paced itself by them fed the link a watermark (64 KiB) per round trip
 * and never got back to encoding in place (1 KiB messages: 1.5 M/s). */
static size_t dl_tx_queued(const edi_lane_link *link)
{
    const dl_link *k = (const dl_link *)link;
    return (k->proto ? edi_rlink_unsent_bytes(k->proto) : 0) + k->over_bytes;
}

/* ---- receive holds ------------------------------------------------------------------- */

/* A link takes no new data while its owner or the lane holds it: its
 * receive window closes (the peer holds back, probing), and reopens to
 * the configured size when neither does. */
static void apply_window(dl_link *k)
{
    if (!k->proto || k->gone)
        return;
    bool closed = k->rx_held || k->lane->rx_held;
    edi_rlink_set_recv_window(k->proto, closed ? 0 : k->lane->p.link.recv_window_bytes);
    k->dirty = true; /* the change goes out at the next poll */
}

void edi_dpdk_lane_rx_hold(edi_lane *lane, bool hold)
{
    dl_lane *dl = (dl_lane *)lane;
    if (dl->rx_held == hold)
        return;
    dl->rx_held = hold;
    if (hold)
        dl->window_closes++;
    for (uint32_t i = 0; i < dl->nlinks; i++)
        apply_window(dl->links[i]);
}

void edi_dpdk_lane_link_hold(edi_lane_link *link, bool hold)
{
    dl_link *k = (dl_link *)link;
    if (k->rx_held == hold)
        return;
    k->rx_held = hold;
    if (hold)
        k->lane->window_closes++;
    apply_window(k);
}

bool edi_dpdk_lane_link_stats(const edi_lane_link *link, edi_rlink_stats *out)
{
    const dl_link *k = (const dl_link *)link;
    if (!k->proto)
        return false;
    edi_rlink_get_stats(k->proto, out);
    return true;
}

/* ---- the lane ------------------------------------------------------------------------ */

static int dl_open(edi_loop *loop, const void *params, const edi_lane_handler *h,
                   void *user, edi_lane **out)
{
    const edi_dpdk_lane_params *p = params;
    if (!p || !p->port.device)
        return edist_set_error(EDIST_EINVAL, "DPDK lane: no device");
    if (p->link.send_buffer_bytes < EDI_DPDK_SEND_BUFFER_MIN_BYTES)
        return edist_set_error(EDIST_EINVAL,
                               "DPDK lane: a send buffer of %zu bytes (dpdk_send_buffer_bytes): "
                               "256 KiB at least",
                               p->link.send_buffer_bytes);
    dl_lane *dl = calloc(1, sizeof *dl);
    if (!dl)
        return edist_set_error(EDIST_ENOMEM, "DPDK lane");
    dl->p = *p;
    /* UDP: frames of every EtherType come up; edi_encap_match sorts them */
    if (p->encap.udp)
        dl->p.port.rx_all_ethertypes = true;
    int rc = edi_dpdk_port_open(&dl->p.port, &dl->port);
    if (rc) {
        free(dl);
        return rc;
    }
    dl->p.port.device = edi_dpdk_port_name(dl->port);
    dl->encap = p->encap;
    edi_dpdk_port_mac(dl->port, dl->encap.mac);
    dl->header_bytes = edi_encap_header_bytes(&dl->encap);
    /* the port's payload follows the Ethernet header; UDP/IPv4 takes more */
    dl->payload_max = edi_dpdk_port_payload_max(dl->port);
    size_t extra = dl->header_bytes - EDI_DPDK_ETH_HEADER_BYTES;
    dl->payload_max = dl->payload_max > extra ? dl->payload_max - extra : 0;
    dl->medium = edi_dpdk_medium_of(dl->p.port.device);
    /* memif does not lose: a retransmission there is only ever spurious
     * (a peer shard descheduled for a moment on a shared machine), so the
     * protocol waits longer before it suspects a loss. */
    if (!strcmp(dl->medium, "memif") && dl->p.link.rto_min_ns < 2000000u) {
        dl->p.link.rto_min_ns = 2000000u;
        if (dl->p.link.rto_initial_ns < dl->p.link.rto_min_ns)
            dl->p.link.rto_initial_ns = dl->p.link.rto_min_ns;
        /* a maximum set below it (dpdk_rto_max) follows: left below,
         * every link's protocol refused to start */
        if (dl->p.link.rto_max_ns < dl->p.link.rto_min_ns)
            dl->p.link.rto_max_ns = dl->p.link.rto_min_ns;
    }
    /* Over a kernel interface (a veth) what is in flight must fit the
     * kernel's queues (a veth with XDP holds 256 frames): the protocol has
     * no congestion window, so a larger one overflows them, and every
     * retransmission overflows them again. af_xdp on a veth moved 1.2 M
     * messages/s with 128 KiB, collapsed to ~15 k/s with 512 KiB and
     * declared the link dead with the default 4 MiB. */
    if (edi_dpdk_medium_is_kernel(dl->medium) && dl->p.kernel_window_bytes > 0)
        dl->p.link.recv_window_bytes = dl->p.kernel_window_bytes;
    /* Each frame a link holds out of order pins one of the port's mbufs,
     * and the frame that fills the gap needs one too: a link holds at
     * most a quarter of the pool (the protocol's default, 8192, is the
     * whole of the default pool; a NAK or a timeout repairs what a link
     * had no room to hold). */
    edi_dpdk_port_stats ps;
    edi_dpdk_port_stats_get(dl->port, &ps);
    uint32_t held_max = (uint32_t)(ps.pool_size / 4 > 64 ? ps.pool_size / 4 : 64);
    if (dl->p.link.max_held_frames == 0 || dl->p.link.max_held_frames > held_max)
        dl->p.link.max_held_frames = held_max;
    if (dl->payload_max <= EDI_RLINK_HDR_BYTES) {
        edi_dpdk_port_close(dl->port);
        free(dl);
        return edist_set_error(EDIST_EINVAL, "DPDK lane: the port's frames are too small");
    }
    rc = edi_lane_init(&dl->base, &edi_dpdk_lane_ops, loop, h, user, dl_flush, NULL);
    if (rc) {
        edi_dpdk_port_close(dl->port);
        free(dl);
        return rc;
    }
    edi_timer_init(&dl->wake);
    edi_loop_timer_start(loop, &dl->wake, DL_WAKE_MS, DL_WAKE_MS, wake_fn, dl);
    dl->rng = dl->p.fault_seed ? dl->p.fault_seed : 1;
    *out = &dl->base;
    return 0;
}

static void dl_close(edi_lane *lane)
{
    dl_lane *dl = (dl_lane *)lane;
    edi_loop_timer_cancel(lane->loop, &dl->wake);
    if (dl->have_late)
        edi_rxbuf_unref(dl->late.rxbuf);
    for (uint32_t i = 0; i < dl->nlinks; i++)
        link_free(dl->links[i]);
    free(dl->links);
    edi_lane_fini(lane);
    (void)edi_dpdk_port_close(dl->port); /* EAGAIN: held frames keep its pool */
    free(dl);
}

/* Closed by its owner: on_closed(0) from the next poll, never from inside
 * this call. What the protocol has not delivered yet is dropped with it. */
static void dl_link_close(edi_lane_link *link)
{
    dl_link *k = (dl_link *)link;
    if (k->gone)
        return;
    k->gone = true;
    k->gone_reason = 0;
}

static void dl_get_stats(const edi_lane *lane, edi_lane_stats *out)
{
    const dl_lane *dl = (const dl_lane *)lane;
    out->drops += dl->tx_lost;
}

const edi_lane_ops edi_dpdk_lane_ops = {
    .name = "dpdk",
    .open = dl_open,
    .close = dl_close,
    .link_close = dl_link_close,
    .tx_reserve = dl_tx_reserve,
    .tx_commit = dl_tx_commit,
    .tx_copy = dl_tx_copy,
    .tx_batch = dl_tx_batch,
    .tx_flush = dl_tx_flush,
    .poll = dl_poll,
    .get_stats = dl_get_stats,
    .tx_pending = dl_tx_pending,
    .tx_queued = dl_tx_queued,
};

size_t edi_dpdk_lane_addr(const edi_lane *lane, uint8_t out[EDI_ENCAP_ADDR_MAX])
{
    return edi_encap_addr(&((const dl_lane *)lane)->encap, out);
}

const edi_encap *edi_dpdk_lane_encap(const edi_lane *lane)
{
    return &((const dl_lane *)lane)->encap;
}

bool edi_dpdk_lane_usable(edi_lane *lane, char *why, size_t cap)
{
    return edi_dpdk_port_usable(((dl_lane *)lane)->port, why, cap);
}

size_t edi_dpdk_lane_frame_max(const edi_lane *lane)
{
    return ((const dl_lane *)lane)->payload_max;
}

const char *edi_dpdk_lane_medium(const edi_lane *lane)
{
    return ((const dl_lane *)lane)->medium;
}

bool edi_dpdk_lane_pool_low(const edi_lane *lane)
{
    return edi_dpdk_port_pool_low(((const dl_lane *)lane)->port);
}

void edi_dpdk_lane_get_stats(const edi_lane *lane, edi_dpdk_lane_stats *out)
{
    const dl_lane *dl = (const dl_lane *)lane;
    memset(out, 0, sizeof *out);
    edi_dpdk_port_stats_get(dl->port, &out->port);
    out->links = dl->nlinks;
    out->rx_unknown_token = dl->rx_unknown_token;
    out->rx_early = dl->rx_early;
    out->rx_short = dl->rx_short;
    out->rx_foreign = dl->rx_foreign;
    out->arp_replies = dl->arp_replies;
    out->tx_lost = dl->tx_lost;
    out->injected_drops = dl->injected_drops;
    out->injected_dups = dl->injected_dups;
    out->injected_reorders = dl->injected_reorders;
    out->window_closes = dl->window_closes;
    out->links_dead = dl->links_dead;
    out->link = dl->closed;
    for (uint32_t i = 0; i < dl->nlinks; i++) {
        if (!dl->links[i]->proto)
            continue;
        edi_rlink_stats s;
        edi_rlink_get_stats(dl->links[i]->proto, &s);
        stats_add(&out->link, &s);
    }
}
