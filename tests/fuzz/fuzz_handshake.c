/* SPDX-License-Identifier: Apache-2.0 */
/* Arbitrary bytes into both roles of the handshake state machine.
 *
 * Byte 0 picks the setup: bit 0 role, bit 1 hidden, bit 2 name_me
 * (initiator), bits 3-4 how many valid messages the harness feeds first so
 * the fuzzer reaches the later states (challenge reply / ack) without
 * having to forge MD5, bits 5-7 the connection table's decision. Byte 1
 * splits the rest into two feeds; then the peer closes or the deadline
 * passes. Invariants: never consume more than given or past the end of
 * the handshake, output bounded, a failed machine stays failed. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control/handshake.h"

#define FIXED_CHALLENGE 0x12345678u
#define COOKIE "FUZZCOOKIE"
#define US "us@127.0.0.1"
#define PEER "peer@127.0.0.1"

static uint32_t fixed_challenge(void *ctx)
{
    (void)ctx;
    return FIXED_CHALLENGE;
}

static edi_hs_decision decide(void *ctx, const edi_hs_peer *peer)
{
    if (peer->name == NULL || strlen(peer->name) > EDI_HS_NAME_MAX_BYTES)
        abort();
    return (edi_hs_decision)(*(const uint8_t *)ctx % 6);
}

static bool still_pending(void *ctx, const char *peer)
{
    (void)peer;
    return (*(const uint8_t *)ctx & 1) != 0;
}

static void put16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static void feed_all(edi_hs *hs, const uint8_t *data, size_t len)
{
    size_t off = 0;
    while (off < len) {
        size_t want = edi_hs_want(hs);
        size_t used = 0;
        int rc = edi_hs_feed(hs, data + off, len - off, &used);
        if (used > len - off)
            abort();
        if (want == 0 && used != 0)
            abort(); /* took bytes it did not ask for */
        if (rc < 0 && edi_hs_get_state(hs) != EDI_HS_FAILED)
            abort();
        if (edi_hs_get_state(hs) == EDI_HS_WAIT_OLD_CONN)
            edi_hs_old_conn_gone(hs);
        size_t out_len;
        edi_hs_output(hs, &out_len);
        if (out_len > EDI_HS_TX_BYTES)
            abort();
        edi_hs_output_done(hs, out_len);
        if (used == 0)
            break;
        off += used;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0];
    uint8_t split = data[1];
    data += 2;
    size -= 2;
    uint8_t decision = (uint8_t)(mode >> 5);

    edi_hs_config cfg = {0};
    cfg.role = (mode & 1) ? EDI_HS_ACCEPTOR : EDI_HS_INITIATOR;
    cfg.hidden = (mode & 2) != 0;
    cfg.name_me = cfg.role == EDI_HS_INITIATOR && (mode & 4);
    cfg.our_name = cfg.name_me ? "127.0.0.1" : US;
    cfg.our_creation = 7;
    cfg.peer_name = PEER;
    cfg.cookie = COOKIE;
    cfg.accept = decide;
    cfg.still_pending = still_pending;
    cfg.challenge = fixed_challenge;
    cfg.hook_ctx = &decision;

    edi_hs hs;
    if (edi_hs_init(&hs, &cfg) != 0)
        abort();

    /* Valid opening messages from the peer, if asked for. */
    unsigned prefix = (mode >> 3) & 3;
    uint8_t pre[128];
    size_t n = 0;
    uint64_t flags = EDI_DFLAGS_EDIST_DEFAULT | EDI_DFLAG_PUBLISHED;
    if (prefix >= 1) {
        if (cfg.role == EDI_HS_ACCEPTOR) {
            size_t nl = strlen(PEER);
            put16(pre, 15 + nl);
            pre[2] = 'N';
            put64(pre + 3, flags);
            put32(pre + 11, 9);
            put16(pre + 15, nl);
            memcpy(pre + 17, PEER, nl);
            n = 17 + nl;
        } else {
            memcpy(pre, "\0\3sok", 5);
            n = 5;
        }
    }
    if (prefix >= 2) {
        if (cfg.role == EDI_HS_ACCEPTOR) {
            put16(pre + n, 21);
            pre[n + 2] = 'r';
            put32(pre + n + 3, FIXED_CHALLENGE);
            edi_hs_digest(COOKIE, strlen(COOKIE), FIXED_CHALLENGE, pre + n + 7);
            n += 23;
        } else {
            size_t nl = strlen(PEER);
            put16(pre + n, 19 + nl);
            pre[n + 2] = 'N';
            put64(pre + n + 3, flags);
            put32(pre + n + 11, FIXED_CHALLENGE);
            put32(pre + n + 15, 9);
            put16(pre + n + 19, nl);
            memcpy(pre + n + 21, PEER, nl);
            n += 21 + nl;
        }
    }
    feed_all(&hs, pre, n);

    size_t cut = size ? split % (size + 1) : 0;
    feed_all(&hs, data, cut);
    feed_all(&hs, data + cut, size - cut);

    edi_hs_state st = edi_hs_get_state(&hs);
    if (st == EDI_HS_DONE) {
        const edi_hs_result *r = edi_hs_get_result(&hs);
        if (r == NULL || (r->flags & ~r->our_flags) != 0 ||
            strlen(r->peer_name) > EDI_HS_NAME_MAX_BYTES)
            abort();
    } else if (st == EDI_HS_FAILED) {
        int err = edi_hs_error_code(&hs);
        if (err >= 0 || edi_hs_error(&hs)[0] == '\0')
            abort();
        size_t used = 1;
        if (edi_hs_feed(&hs, data, size, &used) != err || used != 0)
            abort();
    } else {
        int rc = (split & 1) ? edi_hs_eof(&hs) : edi_hs_timeout(&hs);
        if (rc >= 0 || edi_hs_get_state(&hs) != EDI_HS_FAILED)
            abort();
    }
    edi_hs_wipe(&hs);
    return 0;
}
