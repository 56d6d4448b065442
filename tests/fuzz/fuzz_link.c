/* SPDX-License-Identifier: Apache-2.0 */
/* The link protocol (dataplane/link/link.h) fed any frames.
 *
 * Byte 0: bit 0 structured mode (below), bit 1 the link sends ~20 KiB
 * first (so acks and NAKs of sent bytes are in range), bits 2-3 the
 * medium's frame size (64, 200, 1500, 9000), bits 4-5 max_held_frames
 * (2, 16, 256, 8192), bit 6 the medium has no buffers now and then,
 * bit 7 the link's messages are encoded in place (reserve/commit). An
 * input of odd length gives the link a medium that transmits from the
 * link's own send buffer (ring_alloc, tx_attach: a memif zero-copy
 * client's): DATA frames then carry their bytes by reference.
 * Raw mode: the rest is frames [u16 big-endian length][bytes].
 * Structured mode: records [type][seq u16][ack u16][window u16]
 * [nak_len u16][data_len u8][time step u8] then data_len bytes, made into
 * frames with the link's token (types above 5 and zero lengths stay as
 * they are: the parser must refuse them).
 * The link is polled after each frame, the clock moving by the step.
 *
 * Each input is also a frame for the lane's framing (fuzz_encap).
 * Invariants: nothing crashes or leaks (ASan/LSan); a header that decodes
 * encodes back to the same bytes; every refusal is counted under one
 * reason; the held frames stay within max_held_frames; every delivered
 * message is a view inside its buffer and no more stream bytes are
 * delivered than the frames carried; every transmit buffer handed out
 * comes back. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "dataplane/dpdk/encap.h"
#include "dataplane/link/link.h"
#include "edist/error.h"

#define CHECK(x)                                                               \
    do {                                                                       \
        if (!(x))                                                              \
            abort();                                                           \
    } while (0)

#define TOKEN 0x5eed5eed5eed5eedull

typedef struct fz {
    long tx_live;
    size_t frame_bytes;
    bool starve;
    unsigned tick;
    uint64_t messages, data_bytes_fed;
    /* by reference: the ring given to the link, what the frame being
     * built carries of it */
    uint8_t *ring;
    size_t ring_bytes, attached;
    bool ring_freed;
} fz;

static uint8_t *f_ring_alloc(void *medium, size_t bytes)
{
    fz *f = medium;
    CHECK(f->ring == NULL && bytes > 0 && (bytes & (bytes - 1)) == 0);
    f->ring = malloc(bytes);
    CHECK(f->ring != NULL);
    f->ring_bytes = bytes;
    return f->ring;
}

static int f_tx_attach(void *medium, void *handle, const uint8_t *p, size_t n)
{
    fz *f = medium;
    (void)handle;
    CHECK(f->ring != NULL && n > 0 && p >= f->ring &&
          (size_t)(p - f->ring) <= f->ring_bytes - n);
    if (f->starve && (++f->tick % 5) == 0)
        return EDIST_EAGAIN;
    /* read as the medium would (ASan sees a range outside the ring) */
    volatile uint8_t sink = p[0];
    sink = p[n - 1];
    (void)sink;
    f->attached += n;
    return 0;
}

static void f_ring_free(void *medium, uint8_t *ring)
{
    fz *f = medium;
    CHECK(ring == f->ring && !f->ring_freed);
    f->ring_freed = true;
}

static int f_alloc(void *medium, edi_rlink_txbuf *out)
{
    fz *f = medium;
    if (f->starve && (++f->tick % 3) == 0)
        return EDIST_EAGAIN;
    out->data = malloc(f->frame_bytes);
    CHECK(out->data != NULL);
    out->cap = f->frame_bytes;
    out->handle = out->data;
    f->tx_live++;
    return 0;
}

static void f_send(void *medium, void *handle, size_t len)
{
    fz *f = medium;
    size_t attached = f->attached;
    f->attached = 0;
    if (len == 0) { /* given back unused (an attach refused) */
        free(handle);
        f->tx_live--;
        return;
    }
    CHECK(len >= EDI_RLINK_HDR_BYTES + attached && len <= f->frame_bytes);
    /* (len 0, a buffer given back unused, needs a cap <= the header) */
    edi_rlink_hdr h;
    CHECK(edi_rlink_hdr_decode(handle, len, &h) == EDI_RLINK_OK);
    CHECK(h.token == TOKEN);
    free(handle);
    f->tx_live--;
}

static void on_message(void *user, const edi_frame *m)
{
    fz *f = user;
    const uint8_t *base = edi_rxbuf_data(m->rxbuf);
    CHECK(m->data >= base && m->len <= edi_rxbuf_cap(m->rxbuf) &&
          (size_t)(m->data - base) <= edi_rxbuf_cap(m->rxbuf) - m->len);
    if (m->len > 0) {
        volatile uint8_t sink = m->data[0];
        sink = m->data[m->len - 1];
        (void)sink;
    }
    f->messages++;
}

static void on_dead(void *user, int reason)
{
    (void)user;
    CHECK(reason == EDIST_ETIMEDOUT || reason == EDIST_ENOMEM ||
          reason == EDIST_EPROTO);
}

static const edi_rlink_callbacks cbs = {on_message, NULL, on_dead};

static void feed(edi_rlink *l, fz *f, uint64_t now, const uint8_t *p, size_t n)
{
    /* an exact-size buffer: ASan sees any read past the frame */
    edi_rxbuf *rb = edi_rxbuf_heap_new(n);
    CHECK(rb != NULL);
    if (n > 0)
        memcpy(edi_rxbuf_data(rb), p, n);
    edi_rlink_hdr h;
    if (edi_rlink_hdr_decode(edi_rxbuf_data(rb), n, &h) == EDI_RLINK_OK) {
        uint8_t again[EDI_RLINK_HDR_BYTES];
        edi_rlink_hdr_encode(again, &h);
        CHECK(memcmp(again, p, EDI_RLINK_HDR_BYTES) == 0);
        if (h.type == EDI_RLINK_T_DATA)
            f->data_bytes_fed += h.len;
    }
    edi_frame fr = {edi_rxbuf_data(rb), n, rb};
    edi_rlink_input(l, now, &fr);
    edi_rxbuf_unref(rb);
}

/* The lane's framing (dataplane/dpdk/encap.h) around link frames: the
 * whole input as a received frame, Ethernet and UDP/IPv4 (its IPv4 header
 * made right half the time, so the UDP checks are reached): a match lies
 * within the frame; and the input as a body, written and matched back. */
static void fuzz_encap(const uint8_t *data, size_t size)
{
    static uint8_t frame[70000];
    edi_encap e[2] = {{.udp = false}, {.udp = true, .ip = {10, 88, 1, 2}, .port = 4370}};
    if (size > sizeof frame - EDI_ENCAP_UDP_HEADER_BYTES)
        size = sizeof frame - EDI_ENCAP_UDP_HEADER_BYTES;
    memcpy(frame, data, size);
    if (size >= 34 && (data[0] & 1)) {
        frame[14] = (uint8_t)(0x40 | (frame[14] & 0x0f));
        memcpy(frame + 30, e[1].ip, 4);
        frame[24] = frame[25] = 0;
        size_t ihl = (size_t)(frame[14] & 0x0f) * 4;
        if (ihl >= 20 && 14 + ihl <= size) {
            uint32_t sum = 0;
            for (size_t i = 0; i < ihl; i += 2)
                sum += edi_get_be16(frame + 14 + i);
            while (sum >> 16)
                sum = (sum & 0xffffu) + (sum >> 16);
            edi_put_be16(frame + 24, (uint16_t)~sum);
        }
    }
    for (int i = 0; i < 2; i++) {
        size_t body;
        size_t h = edi_encap_match(&e[i], frame, size, &body);
        CHECK(h == 0 ? body == 0 : h <= size && body <= size - h);
        uint8_t reply[EDI_ENCAP_ARP_REPLY_BYTES];
        size_t r = edi_encap_arp_reply(&e[i], frame, size, reply);
        CHECK(r == 0 || (e[i].udp && r == EDI_ENCAP_ARP_REPLY_BYTES &&
                         edi_get_be16(reply + 12) == 0x0806));
    }
    for (int i = 0; i < 2; i++) {
        uint8_t addr[EDI_ENCAP_ADDR_MAX];
        size_t alen = edi_encap_addr(&e[i], addr);
        edi_encap_peer p;
        CHECK(edi_encap_peer_of(&e[i], addr, alen, size, &p) == 0);
        size_t h = edi_encap_header_bytes(&e[i]);
        memcpy(frame + h, data, size);
        edi_encap_write(&e[i], &p, frame, h + size);
        size_t body;
        CHECK(edi_encap_match(&e[i], frame, h + size, &body) == h);
        CHECK(body == size && memcmp(frame + h, data, size) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (size <= 65000)
        fuzz_encap(data, size);
    const uint8_t flags = data[0];
    fz f = {0};
    f.frame_bytes = (size_t[]){64, 200, 1500, 9000}[(flags >> 2) & 3];
    f.starve = (flags & 64) != 0;
    edi_rlink_config cfg;
    edi_rlink_config_default(&cfg);
    cfg.token = TOKEN;
    cfg.send_buffer_bytes = 64u << 10;
    cfg.recv_window_bytes = 32u << 10;
    cfg.max_held_frames = (uint32_t[]){2, 16, 256, 8192}[(flags >> 4) & 3];
    cfg.max_message_bytes = 1u << 20;
    edi_rlink_medium med = {.tx_alloc = f_alloc, .tx_send = f_send,
                            .max_frame_bytes = f.frame_bytes, .medium = &f};
    if (size & 1) {
        med.ring_alloc = f_ring_alloc;
        med.tx_attach = f_tx_attach;
        med.ring_free = f_ring_free;
        med.attach_min_bytes = 64;
    }
    edi_rlink *l;
    uint64_t now = 1000000;
    CHECK(edi_rlink_new(&cfg, &med, &cbs, &f, now, &l) == 0);
    if (flags & 2) {
        uint8_t msg[100];
        memset(msg, 0xab, sizeof(msg));
        for (int i = 0; i < 200; i++) {
            if (flags & 128) { /* in place */
                uint8_t *w;
                CHECK(edi_rlink_reserve(l, 300, &w) == 0);
                memcpy(w, msg, sizeof(msg));
                CHECK(edi_rlink_commit(l, sizeof(msg)) == 0);
            } else {
                CHECK(edi_rlink_send(l, msg, sizeof(msg), NULL, 0) == 0);
            }
        }
        for (int i = 0; i < 50; i++)
            edi_rlink_poll(l, now);
    }
    size_t at = 1;
    uint8_t frame[256 + EDI_RLINK_HDR_BYTES];
    while (at < size && !edi_rlink_dead(l)) {
        if (flags & 1) {
            if (size - at < 12)
                break;
            const uint8_t *r = data + at;
            edi_rlink_hdr h = {
                .type = r[0],
                .token = TOKEN,
                .seq = edi_get_be16(r + 1),
                .ack = edi_get_be16(r + 3),
                .window = edi_get_be16(r + 5) * 4u,
                .nak_len = edi_get_be16(r + 7),
                .len = r[9],
            };
            uint8_t step = r[10];
            at += 12;
            size_t dl = h.len;
            if (dl > size - at)
                dl = size - at;
            edi_rlink_hdr_encode(frame, &h);
            memcpy(frame + EDI_RLINK_HDR_BYTES, data + at, dl);
            at += dl;
            feed(l, &f, now, frame, EDI_RLINK_HDR_BYTES + dl);
            now += (uint64_t)step * 1000u;
        } else {
            if (size - at < 2)
                break;
            size_t n = edi_get_be16(data + at);
            at += 2;
            if (n > size - at)
                n = size - at;
            feed(l, &f, now, data + at, n);
            at += n;
            now += 3000;
        }
        edi_rlink_poll(l, now);
        edi_rlink_stats st;
        edi_rlink_get_stats(l, &st);
        CHECK(st.bad_frames == st.bad_short + st.bad_magic + st.bad_version +
                                   st.bad_type + st.bad_fields + st.bad_token +
                                   st.bad_ack);
        CHECK(st.held_now <= cfg.max_held_frames);
        CHECK(st.bytes_in <= f.data_bytes_fed);
        CHECK(f.messages == st.messages_in);
        CHECK(edi_rlink_unacked_bytes(l) <= cfg.send_buffer_bytes);
        CHECK(edi_rlink_next_deadline_ns(l) != 0);
    }
    edi_rlink_free(l);
    CHECK(f.tx_live == 0);
    CHECK(f.ring == NULL || f.ring_freed);
    free(f.ring);
    return 0;
}
