/* SPDX-License-Identifier: Apache-2.0 */
/* The TCP lane: links over connections (see tcp_lane.h). */
#include <stdlib.h>

#include "dataplane/uring/tcp_lane.h"
#include "edist/error.h"

typedef struct tcp_lane {
    edi_lane base;
    struct tcp_link *links;   /* to abort them when the lane closes */
} tcp_lane;

typedef struct tcp_link {
    edi_lane_link base;
    edi_conn *conn;
    struct tcp_link *prev, *next;
} tcp_link;

static void unlist(tcp_link *l)
{
    tcp_lane *lane = (tcp_lane *)l->base.lane;
    if (l->prev != NULL)
        l->prev->next = l->next;
    else
        lane->links = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
}

/* ---- the connection's callbacks ------------------------------------------------ */

static void conn_frame(edi_conn *c, void *user, const edi_frame *f)
{
    (void)c;
    edi_lane_deliver(user, f);
}

static void conn_writable(edi_conn *c, void *user)
{
    (void)c;
    edi_lane_writable(user);
}

static void conn_sent(edi_conn *c, void *user, size_t queued_bytes)
{
    (void)c;
    edi_lane_sent(user, queued_bytes);
}

static void conn_closed(edi_conn *c, void *user, int reason)
{
    (void)c;
    tcp_link *l = user;
    unlist(l);
    edi_lane_link_gone(&l->base, reason);
    free(l);
}

static const edi_conn_ops link_conn_ops = {
    .on_frame = conn_frame,
    .on_writable = conn_writable,
    .on_sent = conn_sent,
    .on_close = conn_closed,
};

/* A connection whose lane closed: its on_close has nobody to tell. */
static void orphan_closed(edi_conn *c, void *user, int reason)
{
    (void)c;
    (void)user;
    (void)reason;
}

static const edi_conn_ops orphan_conn_ops = { .on_close = orphan_closed };

/* ---- the function table ---------------------------------------------------------- */

static int tl_open(edi_loop *loop, const void *params, const edi_lane_handler *h,
                   void *user, edi_lane **out)
{
    (void)params;
    *out = NULL;
    tcp_lane *lane = calloc(1, sizeof(*lane));
    if (lane == NULL)
        return edist_set_error(EDIST_ENOMEM, "tcp lane: alloc");
    /* no poll, no flush: the TCP data path is a poll source of its own */
    int rc = edi_lane_init(&lane->base, &edi_tcp_lane_ops, loop, h, user, NULL, NULL);
    if (rc < 0) {
        free(lane);
        return rc;
    }
    *out = &lane->base;
    return 0;
}

static void tl_close(edi_lane *base)
{
    tcp_lane *lane = (tcp_lane *)base;
    while (lane->links != NULL) {
        tcp_link *l = lane->links;
        lane->links = l->next;
        edi_conn_set_ops(l->conn, &orphan_conn_ops);
        edi_conn_set_user(l->conn, NULL);
        edi_conn_abort(l->conn, 0);
        free(l);
    }
    edi_lane_fini(base);
    free(lane);
}

static void tl_link_close(edi_lane_link *base)
{
    edi_conn_close(((tcp_link *)base)->conn, 0); /* on_close(0) follows */
}

static int tl_tx_reserve(edi_lane_link *base, size_t max_len, uint8_t **frame)
{
    return edi_conn_frame_reserve(((tcp_link *)base)->conn, max_len, 0, frame);
}

static int tl_tx_commit(edi_lane_link *base, size_t len)
{
    return edi_conn_frame_commit(((tcp_link *)base)->conn, len);
}

static int tl_tx_batch(edi_lane_link *base, const edi_lane_txframe *frames, size_t n,
                       size_t *accepted)
{
    edi_conn *c = ((tcp_link *)base)->conn;
    size_t i = 0;
    int rc = 0;
    for (; i < n; i++) {
        const edi_lane_txframe *f = &frames[i];
        rc = edi_conn_send_frame_owned(c, f->head, f->head_len, f->body, f->body_len,
                                       f->release, f->release_arg,
                                       f->force ? EDI_SEND_FORCE : 0);
        if (rc < 0)
            break;
    }
    *accepted = i;
    return rc;
}

static size_t tl_tx_pending(const edi_lane_link *base)
{
    return edi_conn_send_queue_bytes(((const tcp_link *)base)->conn);
}

const edi_lane_ops edi_tcp_lane_ops = {
    .tx_pending = tl_tx_pending,
    .name = "tcp",
    .open = tl_open,
    .close = tl_close,
    .link_close = tl_link_close,
    .tx_reserve = tl_tx_reserve,
    .tx_commit = tl_tx_commit,
    .tx_batch = tl_tx_batch,
};

int edi_tcp_lane_link_wrap(edi_lane *base, edi_conn *conn, void *user,
                           edi_lane_link **out)
{
    *out = NULL;
    if (base == NULL || base->ops != &edi_tcp_lane_ops || conn == NULL ||
        edi_conn_loop(conn) != base->loop)
        return edist_set_error(EDIST_EINVAL, "tcp lane: wrap needs a TCP lane and a "
                                             "connection of its loop");
    tcp_lane *lane = (tcp_lane *)base;
    tcp_link *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return edist_set_error(EDIST_ENOMEM, "tcp lane: link alloc");
    edi_lane_link_init(&l->base, base, user);
    l->conn = conn;
    l->next = lane->links;
    if (lane->links != NULL)
        lane->links->prev = l;
    lane->links = l;
    edi_conn_set_ops(conn, &link_conn_ops);
    edi_conn_set_user(conn, l);
    edi_conn_set_framing(conn, EDI_FRAMING_U32);
    *out = &l->base;
    return 0;
}

edi_conn *edi_tcp_lane_link_conn(const edi_lane_link *link)
{
    return ((const tcp_link *)link)->conn;
}
