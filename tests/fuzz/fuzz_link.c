/* SPDX-License-Identifier: Apache-2.0 */
/* The link protocol (dataplane/link/link.h) fed any frames.
 *
 * Byte 0: bit 0 structured mode (below), bit 1 the link sends ~20 KiB
 * first (so acks and NAKs of sent bytes are in range), bits 2-3 the
 * medium's frame size (64, 200, 1500, 9000), bits 4-5 max_held_frames
 * (2, 16, 256, 8192), bit 6 the medium has no buffers now and then,
 * bit 7 the link's messages are encoded in place (reserve/commit).
 * Raw mode: the rest is frames [u16 big-endian length][bytes].
 * Structured mode: records [type][seq u16][ack u16][window u16]
 * [nak_len u16][data_len u8][time step u8] then data_len bytes, made into
 * frames with the link's token (types above 5 and zero lengths stay as
 * they are: the parser must refuse them).
 * The link is polled after each frame, the clock moving by the step.
 *
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
} fz;

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
    CHECK(len >= EDI_RLINK_HDR_BYTES && len <= f->frame_bytes);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
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
    edi_rlink_medium med = {f_alloc, f_send, NULL, f.frame_bytes, &f};
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
    return 0;
}
