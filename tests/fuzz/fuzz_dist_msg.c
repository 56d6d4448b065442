/* SPDX-License-Identifier: Apache-2.0 */
/* Arbitrary bytes into the distribution message codec (control/dist_msg.h).
 *
 * 1. The whole input is one frame payload for edi_dist_parse; on success
 *    every view must lie inside the input, the helpers must not crash, a
 *    reassembler fed it twice (the second time changed in its last byte)
 *    delivers what a fresh parse gives (its cache of control messages), and
 *    a header-form message must survive the fragmenter (fragment size from
 *    the first byte) and the reassembler unchanged.
 * 2. The input is a stream of frames [u16 len][bytes] fed to a reassembler
 *    with small limits: every delivery's views lie inside the frame or the
 *    owned buffer, an unfragmented frame's delivery (possibly from the
 *    reassembler's cache of control messages) is what a fresh parse gives,
 *    and the buffered bytes never exceed the limit.
 * Each frame is copied into its own exact-size allocation, so ASan sees any
 * read past its end. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control/dist_build.h"
#include "control/dist_frag.h"
#include "control/dist_msg.h"
#include "control/dist_reasm.h"

static void check_view(edist_term_view v, const uint8_t *base, size_t len)
{
    if (v.ptr == NULL)
        return;
    if (v.ptr < base || v.len > len || v.ptr + v.len > base + len)
        abort();
}

/* m's views lie in [base, base + len); a repeating control message's
 * (kept) live in the reassembler's copy, and only its payload is in the
 * frame. */
static void check_msg(const edi_dist_msg *m, bool kept, const uint8_t *base,
                      size_t len)
{
    edi_dist_msg copy = *m;
    edist_term_view *vs[EDI_DIST_MSG_VIEWS];
    edi_dist_msg_views(&copy, vs);
    for (size_t i = 0; i < EDI_DIST_MSG_VIEWS; i++)
        if (!kept || vs[i] == &copy.payload)
            check_view(*vs[i], base, len);
    if (m->control.ptr == NULL)
        abort();
    edist_pid pid;
    edist_ref ref;
    edist_atom atom;
    (void)edi_dist_view_pid(m->from, &pid);
    (void)edi_dist_view_pid(m->to, &pid);
    (void)edi_dist_view_ref(m->ref, &ref);
    (void)edi_dist_view_atom(m->to_name, &atom);
    edist_term_view from, tag, node;
    if (edi_dist_match_is_auth(m, &from, &tag, &node) == 1) {
        check_view(from, base, len);
        check_view(tag, base, len);
        edist_buf out;
        edist_buf_init(&out);
        static const uint8_t self[] = {EDIST_TAG_SMALL_ATOM_UTF8, 1, 'x'};
        (void)edi_dist_build_is_auth_reply(
            &out, ~(uint64_t)0, (edist_term_view){self, 3}, from, tag);
        edist_buf_free(&out);
    }
    if (m->payload.ptr)
        (void)edist_term_validate(m->payload.ptr, m->payload.len, NULL);
}

/* A view of a message from frame a, and one from frame b: the same offset
 * and length (or both NULL). */
static void same_view(edist_term_view x, edist_term_view y)
{
    if ((x.ptr == NULL) != (y.ptr == NULL) || x.len != y.len ||
        (x.ptr && memcmp(x.ptr, y.ptr, x.len) != 0))
        abort();
}

/* What the reassembler delivered for an unfragmented frame (possibly from
 * its cache of control messages) is what a fresh parse gives. */
static void same_as_parse(const edi_dist_msg *d, const uint8_t *frame, size_t n)
{
    edi_dist_msg m;
    if (edi_dist_parse(frame, n, &m) != 0 || m.op != d->op || m.sig != d->sig ||
        m.form != d->form || m.from_is_pid != d->from_is_pid ||
        m.to_is_pid != d->to_is_pid || m.flags != d->flags ||
        m.unlink_id != d->unlink_id || m.spawn_arity != d->spawn_arity)
        abort();
    edi_dist_msg dd = *d;
    edist_term_view *x[EDI_DIST_MSG_VIEWS], *y[EDI_DIST_MSG_VIEWS];
    edi_dist_msg_views(&m, x);
    edi_dist_msg_views(&dd, y);
    for (size_t i = 0; i < EDI_DIST_MSG_VIEWS; i++)
        same_view(*x[i], *y[i]);
    const edist_pid *pa[] = {&m.from_pid, &m.to_pid};
    const edist_pid *pb[] = {&d->from_pid, &d->to_pid};
    for (int i = 0; i < 2; i++)
        if (pa[i]->id != pb[i]->id || pa[i]->serial != pb[i]->serial ||
            pa[i]->creation != pb[i]->creation ||
            pa[i]->node.len != pb[i]->node.len ||
            (pa[i]->node.len &&
             memcmp(pa[i]->node.ptr, pb[i]->node.ptr, pa[i]->node.len) != 0))
            abort();
}

/* A parsed frame fed to a reassembler twice, the second time with its last
 * byte changed (in the payload of a message, so the control message is
 * the cached one): each delivery is what a fresh parse gives, and either
 * both refuse it or neither. */
static void feed_twice(const uint8_t *data, size_t size)
{
    edi_dist_reasm *r;
    if (edi_dist_reasm_create(NULL, &r) != 0)
        return;
    for (int k = 0; k < 2; k++) {
        uint8_t *f = malloc(size);
        if (f == NULL)
            break;
        memcpy(f, data, size);
        if (k == 1)
            f[size - 1] ^= 0x5a;
        edi_dist_delivery d;
        edi_dist_msg m;
        int rc = edi_dist_reasm_feed(r, f, size, &d);
        if ((rc == 1) != (edi_dist_parse(f, size, &m) == 0))
            abort();
        if (rc == 1) {
            if (d.owned)
                abort(); /* unfragmented */
            same_as_parse(d.msg, f, size);
        }
        free(f);
    }
    edi_dist_reasm_free(r);
}

/* Fragment a parsed header-form frame and reassemble it. */
static void refragment(const uint8_t *data, size_t size, size_t frag_bytes)
{
    size_t flen = size + 4;
    uint8_t *frame = malloc(flen);
    if (frame == NULL)
        return;
    frame[0] = (uint8_t)(size >> 24);
    frame[1] = (uint8_t)(size >> 16);
    frame[2] = (uint8_t)(size >> 8);
    frame[3] = (uint8_t)size;
    memcpy(frame + 4, data, size);
    edi_dist_frag f;
    int64_t n = edi_dist_frag_init(&f, frame, flen, 42, frag_bytes);
    if (n < 1)
        abort(); /* it parsed, so the fragmenter must take it */
    edi_dist_reasm *r;
    if (edi_dist_reasm_create(NULL, &r) != 0) {
        free(frame);
        return;
    }
    edist_buf out;
    edist_buf_init(&out);
    int delivered = 0;
    for (int64_t i = 0; i < n; i++) {
        edist_buf_reset(&out);
        int more = edi_dist_frag_next(&f, &out);
        if (more < 0 || more != (i + 1 < n))
            abort();
        uint8_t *one = malloc(out.len - 4);
        memcpy(one, out.data + 4, out.len - 4);
        edi_dist_delivery d;
        int rc = edi_dist_reasm_feed(r, one, out.len - 4, &d);
        if (rc < 0 || rc != (i + 1 == n))
            abort();
        if (rc == 1) {
            /* Same control and payload bytes as the original. */
            edi_dist_msg orig;
            if (edi_dist_parse(data, size, &orig) != 0 ||
                orig.control.len != d.msg->control.len ||
                memcmp(orig.control.ptr, d.msg->control.ptr, orig.control.len) !=
                    0 ||
                orig.payload.len != d.msg->payload.len ||
                (orig.payload.len && memcmp(orig.payload.ptr, d.msg->payload.ptr,
                                            orig.payload.len) != 0))
                abort();
            delivered = 1;
            free(d.owned);
        }
        free(one);
    }
    if (!delivered || edi_dist_reasm_open_sequences(r) != 0)
        abort();
    edist_buf_free(&out);
    edi_dist_reasm_free(r);
    free(frame);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* 1. one frame */
    uint8_t *copy = malloc(size ? size : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    edi_dist_msg m;
    if (edi_dist_parse(copy, size, &m) == 0) {
        check_msg(&m, false, copy, size);
        feed_twice(copy, size);
        if (size >= 3 && copy[0] == 131 && copy[1] == 68 && copy[2] == 0)
            refragment(copy, size, 1 + (size_t)(data[size - 1] % 64));
    }
    free(copy);

    /* 2. a stream of frames */
    edi_dist_reasm_limits lim = {
        .max_total_bytes = 4096, .max_message_bytes = 2048, .max_sequences = 4};
    edi_dist_reasm *r;
    if (edi_dist_reasm_create(&lim, &r) != 0)
        return 0;
    size_t pos = 0;
    while (size - pos >= 2) {
        size_t n = ((size_t)data[pos] << 8) | data[pos + 1];
        pos += 2;
        if (n > size - pos)
            n = size - pos;
        uint8_t *frame = malloc(n ? n : 1);
        if (frame == NULL)
            break;
        memcpy(frame, data + pos, n);
        pos += n;
        edi_dist_delivery d;
        int rc = edi_dist_reasm_feed(r, frame, n, &d);
        if (rc == 1) {
            if (d.owned) {
                check_msg(d.msg, false, d.owned, d.owned_len);
            } else {
                check_msg(d.msg, d.msg != &d.parsed, frame, n);
                if (frame[0] == 112 || (n > 1 && frame[1] == 68))
                    same_as_parse(d.msg, frame, n);
            }
            free(d.owned);
        }
        if (edi_dist_reasm_buffered_bytes(r) > lim.max_total_bytes ||
            edi_dist_reasm_open_sequences(r) > lim.max_sequences)
            abort();
        free(frame);
    }
    edi_dist_reasm_free(r);
    return 0;
}
