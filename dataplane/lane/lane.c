/* SPDX-License-Identifier: Apache-2.0 */
/* The lane interface's generic half: calls through the medium's function
 * table, the counters every lane keeps the same way, and the lane's place
 * in the reactor's poll list. */
#include <string.h>

#include "dataplane/lane.h"
#include "edist/error.h"

/* ---- the lane as a poll source ------------------------------------------------ */

static uint32_t lane_poll_cb(edi_loop *loop, void *arg, uint32_t budget)
{
    (void)loop;
    edi_lane *lane = arg;
    return lane->ops->poll != NULL ? lane->ops->poll(lane, budget) : 0;
}

static void lane_flush_cb(edi_loop *loop, void *arg)
{
    (void)loop;
    edi_lane *lane = arg;
    if (lane->flush != NULL)
        lane->flush(lane);
}

static bool lane_pending_cb(void *arg)
{
    edi_lane *lane = arg;
    return lane->pending(lane);
}

int edi_lane_init(edi_lane *lane, const edi_lane_ops *ops, edi_loop *loop,
                  const edi_lane_handler *h, void *user,
                  void (*flush)(edi_lane *lane), bool (*pending)(edi_lane *lane))
{
    memset(lane, 0, sizeof(*lane));
    lane->ops = ops;
    lane->loop = loop;
    lane->h = *h;
    lane->user = user;
    lane->flush = flush;
    lane->pending = pending;
    edi_poll_source_init(&lane->poll, ops->name, lane_poll_cb,
                         flush != NULL ? lane_flush_cb : NULL,
                         pending != NULL ? lane_pending_cb : NULL, lane);
    if (ops->poll == NULL && flush == NULL)
        return 0; /* frames arrive as ring completions, sent by its own flush */
    return edi_loop_poll_add(loop, &lane->poll);
}

void edi_lane_fini(edi_lane *lane)
{
    edi_loop_poll_remove(lane->loop, &lane->poll);
}

void edi_lane_link_init(edi_lane_link *link, edi_lane *lane, void *user)
{
    memset(link, 0, sizeof(*link));
    link->lane = lane;
    link->user = user;
    link->st.links_opened = 1;
    lane->st.links_opened++;
}

void edi_lane_deliver(edi_lane_link *link, const edi_frame *f)
{
    edi_lane *lane = link->lane;
    link->st.frames_in++;
    link->st.bytes_in += f->len;
    lane->st.frames_in++;
    lane->st.bytes_in += f->len;
    lane->h.on_frame(link, link->user, f);
}

void edi_lane_writable(edi_lane_link *link)
{
    if (!link->want_writable || link->closed)
        return;
    link->want_writable = false;
    if (link->lane->h.on_writable != NULL)
        link->lane->h.on_writable(link, link->user);
}

void edi_lane_sent(edi_lane_link *link, size_t pending_bytes)
{
    if (!link->closed && link->lane->h.on_sent != NULL)
        link->lane->h.on_sent(link, link->user, pending_bytes);
}

void edi_lane_up(edi_lane_link *link)
{
    if (!link->closed && link->lane->h.on_up != NULL)
        link->lane->h.on_up(link, link->user);
}

void edi_lane_link_gone(edi_lane_link *link, int reason)
{
    edi_lane *lane = link->lane;
    link->closed = true;
    link->st.links_closed = 1;
    lane->st.links_closed++;
    if (lane->h.on_closed != NULL)
        lane->h.on_closed(link, link->user, reason);
}

/* ---- using a lane ------------------------------------------------------------ */

int edi_lane_open(const edi_lane_ops *ops, edi_loop *loop, const void *params,
                  const edi_lane_handler *h, void *user, edi_lane **out)
{
    *out = NULL;
    if (ops == NULL || h == NULL || h->on_frame == NULL)
        return edist_set_error(EDIST_EINVAL, "lane: open needs a medium and on_frame");
    return ops->open(loop, params, h, user, out);
}

void edi_lane_close(edi_lane *lane)
{
    if (lane != NULL)
        lane->ops->close(lane);
}

const char *edi_lane_name(const edi_lane *lane) { return lane->ops->name; }
edi_loop *edi_lane_loop(const edi_lane *lane) { return lane->loop; }
void *edi_lane_user(const edi_lane *lane) { return lane->user; }

void edi_lane_link_close(edi_lane_link *link)
{
    if (link->closed)
        return;
    link->closed = true;
    link->lane->ops->link_close(link);
}

edi_lane *edi_lane_link_lane(const edi_lane_link *link) { return link->lane; }
void *edi_lane_link_user(const edi_lane_link *link) { return link->user; }
void edi_lane_link_set_user(edi_lane_link *link, void *user) { link->user = user; }

/* A transmit the medium refused for room: counted, on_writable armed. */
static int refused(edi_lane_link *link)
{
    link->want_writable = true;
    link->st.tx_eagain++;
    link->lane->st.tx_eagain++;
    return EDIST_EAGAIN;
}

static void sent(edi_lane_link *link, uint64_t frames, uint64_t bytes)
{
    link->st.frames_out += frames;
    link->st.bytes_out += bytes;
    link->lane->st.frames_out += frames;
    link->lane->st.bytes_out += bytes;
}

int edi_lane_tx_reserve(edi_lane_link *link, size_t max_len, uint8_t **frame)
{
    *frame = NULL;
    if (link->closed)
        return edist_set_error(EDIST_ECLOSED, "lane %s: link closed", link->lane->ops->name);
    int rc = link->lane->ops->tx_reserve(link, max_len, frame);
    return rc == EDIST_EAGAIN ? refused(link) : rc;
}

int edi_lane_tx_commit(edi_lane_link *link, size_t len)
{
    if (link->closed)
        return edist_set_error(EDIST_ECLOSED, "lane %s: link closed", link->lane->ops->name);
    int rc = link->lane->ops->tx_commit(link, len);
    if (rc == 0)
        sent(link, 1, len);
    return rc;
}

int edi_lane_tx_copy(edi_lane_link *link, const void *head, size_t head_len,
                     const void *body, size_t body_len)
{
    if (link->closed)
        return edist_set_error(EDIST_ECLOSED, "lane %s: link closed", link->lane->ops->name);
    size_t len = head_len + body_len;
    int rc;
    if (link->lane->ops->tx_copy) {
        rc = link->lane->ops->tx_copy(link, head, head_len, body, body_len);
    } else {
        uint8_t *p;
        rc = link->lane->ops->tx_reserve(link, len, &p);
        if (rc == 0) {
            if (head_len)
                memcpy(p, head, head_len);
            if (body_len)
                memcpy(p + head_len, body, body_len);
            rc = link->lane->ops->tx_commit(link, len);
        }
    }
    if (rc == 0)
        sent(link, 1, len);
    return rc == EDIST_EAGAIN ? refused(link) : rc;
}

int edi_lane_tx_batch(edi_lane_link *link, const edi_lane_txframe *frames,
                      size_t n, size_t *accepted)
{
    size_t done = 0;
    if (accepted != NULL)
        *accepted = 0;
    if (link->closed)
        return edist_set_error(EDIST_ECLOSED, "lane %s: link closed", link->lane->ops->name);
    int rc = link->lane->ops->tx_batch(link, frames, n, &done);
    uint64_t bytes = 0;
    for (size_t i = 0; i < done; i++)
        bytes += frames[i].head_len + frames[i].body_len;
    sent(link, done, bytes);
    if (accepted != NULL)
        *accepted = done;
    return rc == EDIST_EAGAIN ? refused(link) : rc;
}

int edi_lane_tx_flush(edi_lane_link *link)
{
    if (link->closed)
        return edist_set_error(EDIST_ECLOSED, "lane %s: link closed", link->lane->ops->name);
    link->st.tx_flushes++;
    link->lane->st.tx_flushes++;
    return link->lane->ops->tx_flush != NULL ? link->lane->ops->tx_flush(link) : 0;
}

size_t edi_lane_tx_pending(const edi_lane_link *link)
{
    if (link->closed || link->lane->ops->tx_pending == NULL)
        return 0;
    return link->lane->ops->tx_pending(link);
}

size_t edi_lane_tx_queued(const edi_lane_link *link)
{
    if (link->closed)
        return 0;
    if (link->lane->ops->tx_queued == NULL)
        return edi_lane_tx_pending(link);
    return link->lane->ops->tx_queued(link);
}

uint32_t edi_lane_poll(edi_lane *lane, uint32_t budget)
{
    return lane->ops->poll != NULL ? lane->ops->poll(lane, budget) : 0;
}

void edi_lane_get_stats(const edi_lane *lane, edi_lane_stats *out)
{
    *out = lane->st;
    if (lane->ops->get_stats != NULL)
        lane->ops->get_stats(lane, out);
}

void edi_lane_link_get_stats(const edi_lane_link *link, edi_lane_stats *out)
{
    *out = link->st;
}
