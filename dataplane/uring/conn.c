/* SPDX-License-Identifier: Apache-2.0 */
/* Listeners and TCP connections on the loop's io_uring: accept, connect,
 * receive into the provided-buffer ring (RAW/U32 framing by deframe.c),
 * batched sends from a bounded queue, and the close protocol.
 *
 * Lifetime of a connection: CONNECTING -> OPEN -> (CLOSING) -> DEAD. Once
 * DEAD, on_close is called from the deferred phase of an iteration (never
 * from inside an edi_* call), and the memory is freed when on_close has run,
 * no request of the connection is left in the kernel and it is on none of
 * the loop's work lists. The fd is closed only then, so its number cannot
 * be reused while the kernel still has requests on it. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/bytes.h"
#include "dataplane/uring/deframe.h"
#include "dataplane/uring/uring_internal.h"
#include "edist/error.h"

/* Graceful close deadline when the caller gives 0. */
#define CLOSE_DEFAULT_MS 5000u
/* Retry delay after an accept error such as EMFILE. */
#define ACCEPT_RETRY_MS 100u
/* "connection closed" lines: a burst of this many, then one a second. */
#define CLOSE_LOG_BURST 10u
#define CLOSE_LOG_INTERVAL_MS 1000u

enum conn_state { CS_CONNECTING, CS_OPEN, CS_CLOSING, CS_DEAD };

typedef struct txchunk {
    size_t cap, used;
    uint32_t segs;              /* queue segments pointing into data */
    struct txchunk *next;       /* on the shard's free list */
    uint8_t data[];
} txchunk;

/* Chunks of the standard size are reused through a free list of the
 * shard's TCP state (at most EDI_TX_CHUNK_CACHE of them): a steady stream
 * of sends allocates nothing. Bigger ones (one big frame) are freed. */
static txchunk *chunk_get(edi_tcp *tcp, size_t cap)
{
    if (cap == EDI_TX_CHUNK_BYTES && tcp->chunk_free != NULL) {
        txchunk *ch = tcp->chunk_free;
        tcp->chunk_free = ch->next;
        tcp->chunk_free_count--;
        ch->used = 0;
        ch->segs = 0;
        return ch;
    }
    txchunk *ch = malloc(sizeof(*ch) + cap);
    if (ch == NULL) {
        edist_set_error(EDIST_ENOMEM, "uring: send chunk of %zu bytes", cap);
        return NULL;
    }
    ch->cap = cap;
    ch->used = 0;
    ch->segs = 0;
    tcp->st.tx_chunks_allocated++;
    return ch;
}

static void chunk_put(edi_tcp *tcp, txchunk *ch)
{
    if (ch == NULL)
        return;
    if (ch->cap == EDI_TX_CHUNK_BYTES && tcp->chunk_free_count < EDI_TX_CHUNK_CACHE) {
        ch->next = tcp->chunk_free;
        tcp->chunk_free = ch;
        tcp->chunk_free_count++;
        return;
    }
    free(ch);
}

void edi_tcp_chunks_free(edi_tcp *tcp)
{
    while (tcp->chunk_free != NULL) {
        txchunk *ch = tcp->chunk_free;
        tcp->chunk_free = ch->next;
        free(ch);
    }
    tcp->chunk_free_count = 0;
}

typedef struct txseg {
    const uint8_t *p;
    size_t len;
    txchunk *chunk;             /* copied bytes, or NULL for an owned body */
    edi_release_fn release;
    void *release_arg;
    const void *body;
} txseg;

struct edi_conn {
    edi_loop *loop;
    edi_tcp *tcp;
    int fd;
    uint8_t state;
    int reason;
    char why[160];
    const edi_conn_ops *ops;
    void *user;

    edi_op rx_op, tx_op, connect_op;
    bool rx_armed, rx_multishot, rx_got_data;
    bool tx_inflight, connect_inflight;
    bool lingering;             /* DEAD after a graceful close: draining */
    bool closed_called, pend_close, pend_kick, pend_writable;
    bool on_dirty, on_deferred, on_starved;
    bool want_writable;
    bool in_rx;                 /* inside rx_feed: set_framing needs no kick */
    bool silent;                /* loop teardown: no callbacks */
    bool by_owner;              /* edi_conn_abort: the owner logs, not us */
    bool on_hot;                /* in tcp->hot at hot_idx */
    uint32_t hot_idx;
    uint64_t rx_last_ns;        /* loop time of the last bytes received */

    edi_conn *prev, *next;      /* tcp->conns */
    edi_conn *dirty_next, *deferred_next, *starved_next;
    edi_conn *closing_prev, *closing_next; /* tcp's closing list */
    bool on_closing;

    /* receive: RAW/U32 deframing of the byte stream (deframe.h) */
    edi_deframe df;

    /* send */
    txseg *segs;
    uint32_t seg_head, seg_count, seg_cap;
    txchunk *tail_chunk;
    size_t queued;
    /* edi_conn_frame_reserve: where the frame header goes (tail of
     * tail_chunk), and the payload room; NULL when none is open */
    uint8_t *resv;
    size_t resv_max;
    struct iovec iov[EDI_TX_IOV_MAX];
    struct msghdr msg;
    size_t tx_inflight_bytes;   /* bytes in the sendmsg in flight */

    struct sockaddr_storage addr;
    socklen_t addr_len;
    edi_timer timer;            /* connect timeout, close deadline, linger */
    uint64_t close_deadline_ms;

    edi_conn_stats st;
};

struct edi_listener {
    edi_loop *loop;
    edi_tcp *tcp;
    int fd;
    edi_op op;
    bool armed, closing;
    bool multishot;             /* its armed accept is */
    bool in_cb;                 /* inside on_accept: close must not free */
    edi_accept_fn on_accept;
    void *user;
    edi_listener *next;
    edi_timer retry;
};

static void arm_recv(edi_conn *c);
static void maybe_free(edi_conn *c);

/* ---- helpers ------------------------------------------------------------------ */

static int parse_addr(const char *ip, uint16_t port,
                      struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (ip == NULL)
        ip = "0.0.0.0";
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        *len = sizeof(*in4);
        return 0;
    }
    if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        *len = sizeof(*in6);
        return 0;
    }
    return edist_set_error(EDIST_EINVAL, "uring: bad address '%s'", ip);
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        port = ntohs(a->sin6_port);
    }
    snprintf(out, n, "%s:%u", ip, port);
}

static void set_sockopts(int fd)
{
    int one = 1;
    /* Frames are batched by the loop already; Nagle would only add delay.
     * Fails harmlessly on non-TCP sockets (tests may use socketpairs). */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* io_uring waits for readiness itself; on an O_NONBLOCK file some
     * kernels return EAGAIN instead of waiting. */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK))
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
}

/* Removes c from a singly linked list threaded through field `off`. */
static void list_remove(edi_conn **head, edi_conn *c, size_t off)
{
    for (edi_conn **pp = head; *pp != NULL;
         pp = (edi_conn **)(void *)((char *)*pp + off)) {
        if (*pp == c) {
            *pp = *(edi_conn **)(void *)((char *)c + off);
            return;
        }
    }
}

static void defer(edi_conn *c)
{
    if (c->on_deferred)
        return;
    c->on_deferred = true;
    c->deferred_next = c->tcp->deferred;
    c->tcp->deferred = c;
}

static void mark_dirty(edi_conn *c)
{
    if (c->on_dirty)
        return;
    c->on_dirty = true;
    c->dirty_next = c->tcp->dirty;
    c->tcp->dirty = c;
}

static bool rx_wanted(const edi_conn *c)
{
    return c->state == CS_OPEN || c->state == CS_CLOSING ||
           (c->state == CS_DEAD && c->lingering);
}

/* ---- hot connections (edi_tcp_config.rx_poll_us) ------------------------------- */

/* Asks the kernel to end c's armed receive (its completion follows, with
 * -ECANCELED or its last bytes). False: no submission entry now. */
static bool cancel_recv(edi_conn *c)
{
    struct io_uring_sqe *sqe = edi_loop_sqe(c->loop);
    if (sqe == NULL)
        return false;
    io_uring_prep_cancel(sqe, &c->rx_op, 0);
    io_uring_sqe_set_data(sqe, NULL);
    return true;
}

/* A non-blocking socket call that failed with err only for now. */
static bool would_block(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

static void hot_remove(edi_conn *c)
{
    if (!c->on_hot)
        return;
    edi_tcp *tcp = c->tcp;
    edi_conn *last = tcp->hot[--tcp->nhot];
    tcp->hot[c->hot_idx] = last;
    last->hot_idx = c->hot_idx;
    c->on_hot = false;
}

/* c received bytes: read it ourselves for a while, instead of through
 * io_uring (its armed receive is cancelled: left armed, it would re-arm
 * its poll at every message we read first). Without room in the hot
 * list it is simply read through io_uring. */
static void hot_touch(edi_conn *c)
{
    edi_tcp *tcp = c->tcp;
    if (tcp->cfg.rx_poll_us == 0 || c->state != CS_OPEN || tcp->rx_held)
        return;
    c->rx_last_ns = edi_loop_now_ns(c->loop);
    if (c->on_hot)
        return;
    if (tcp->nhot == tcp->hot_cap) {
        uint32_t cap = tcp->hot_cap ? tcp->hot_cap * 2 : 8;
        edi_conn **h = realloc(tcp->hot, cap * sizeof(*h));
        if (h == NULL)
            return;
        tcp->hot = h;
        tcp->hot_cap = cap;
    }
    if (c->rx_armed && !cancel_recv(c))
        return;
    c->hot_idx = tcp->nhot;
    tcp->hot[tcp->nhot++] = c;
    c->on_hot = true;
}

/* ---- dying ---------------------------------------------------------------------- */

static void closing_remove(edi_conn *c)
{
    edi_tcp *tcp = c->tcp;
    if (!c->on_closing)
        return;
    if (c->closing_prev)
        c->closing_prev->closing_next = c->closing_next;
    else
        tcp->closing_head = c->closing_next;
    if (c->closing_next)
        c->closing_next->closing_prev = c->closing_prev;
    else
        tcp->closing_tail = c->closing_prev;
    c->closing_prev = c->closing_next = NULL;
    c->on_closing = false;
    tcp->nclosing--;
}

/* Makes every request of c in the kernel finish soon. */
static void hard_stop(edi_conn *c)
{
    closing_remove(c);
    c->lingering = false;
    if (c->fd < 0)
        return;
    (void)shutdown(c->fd, SHUT_RDWR);
    if (c->rx_armed || c->tx_inflight || c->connect_inflight) {
        struct io_uring_sqe *sqe = edi_loop_sqe(c->loop);
        if (sqe != NULL) {
            io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
            io_uring_sqe_set_data(sqe, NULL);
        }
    }
}

static void conn_timer_fn(edi_loop *loop, edi_timer *t, void *arg);
static void closing_enter(edi_conn *c);

/* The connection is dead for its owner: on_close(reason) follows from the
 * deferred phase. linger: the close was graceful (everything sent, FIN
 * queued): keep draining the peer's bytes until it closes too or the close
 * deadline passes, so that closing with unread data does not turn into a
 * reset that could destroy what we just sent. */
static void conn_kill(edi_conn *c, int reason, bool linger, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void conn_kill(edi_conn *c, int reason, bool linger, const char *fmt, ...)
{
    if (c->state == CS_DEAD)
        return;
    edi_loop *loop = c->loop;
    edi_tcp *tcp = c->tcp;
    c->state = CS_DEAD;
    c->reason = reason;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof(c->why), fmt, ap);
    va_end(ap);
    edi_loop_timer_cancel(loop, &c->timer);
    edi_deframe_halt(&c->df);
    hot_remove(c);
    if (c->on_starved) {
        list_remove(&tcp->starved, c, offsetof(edi_conn, starved_next));
        c->on_starved = false;
        tcp->nstarved--;
    }
    if (linger && c->fd >= 0) {
        (void)shutdown(c->fd, SHUT_WR);
        closing_enter(c);
        c->lingering = true;
        arm_recv(c); /* read by the loop, held or starved until now */
        uint64_t now = edi_now_ms();
        uint64_t left = c->close_deadline_ms > now ? c->close_deadline_ms - now : 0;
        if (left == 0 ||
            edi_loop_timer_start(loop, &c->timer, left, 0, conn_timer_fn, c) < 0)
            hard_stop(c);
    } else {
        hard_stop(c);
    }
    tcp->st.conns_closed++;
    if (tcp->st.conns_open > 0)
        tcp->st.conns_open--;
    c->pend_close = true;
    defer(c);
}

static void conn_timer_fn(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    edi_conn *c = arg;
    switch (c->state) {
    case CS_CONNECTING:
        conn_kill(c, EDIST_ETIMEDOUT, false, "connect timed out");
        break;
    case CS_CLOSING:
        conn_kill(c, EDIST_ETIMEDOUT, false,
                  "close: %zu bytes not flushed before the deadline", c->queued);
        break;
    case CS_DEAD:
        if (c->lingering) {
            hard_stop(c);
            maybe_free(c);
        }
        break;
    default:
        break;
    }
}

/* c starts its graceful close: counted among the closing, and one of
 * them reset if that makes more than max_closing (a peer that neither
 * reads nor closes must not hold descriptors for the whole close time
 * while new ones come): the oldest that has flushed everything and only
 * waits for the peer to close, else the oldest still flushing. */
static void closing_enter(edi_conn *c)
{
    edi_tcp *tcp = c->tcp;
    if (c->on_closing)
        return;
    if (tcp->nclosing >= tcp->cfg.max_closing && tcp->closing_head != NULL) {
        edi_conn *old = tcp->closing_head;
        for (edi_conn *o = old; o != NULL; o = o->closing_next)
            if (o->state == CS_DEAD) {
                old = o;
                break;
            }
        tcp->st.closes_cut++;
        if (old->state == CS_CLOSING) {
            conn_kill(old, EDIST_ETIMEDOUT, false,
                      "close cut short: %u connections were closing (max_closing)",
                      tcp->nclosing);
        } else {
            hard_stop(old);
            maybe_free(old);
        }
    }
    c->on_closing = true;
    c->closing_prev = tcp->closing_tail;
    c->closing_next = NULL;
    if (tcp->closing_tail)
        tcp->closing_tail->closing_next = c;
    else
        tcp->closing_head = c;
    tcp->closing_tail = c;
    tcp->nclosing++;
}

static void tx_pop(edi_conn *c)
{
    txseg *s = &c->segs[c->seg_head];
    c->seg_head = (c->seg_head + 1) & (c->seg_cap - 1);
    c->seg_count--;
    if (s->chunk != NULL) {
        txchunk *ch = s->chunk;
        if (--ch->segs == 0) {
            if (ch == c->tail_chunk && ch->cap <= EDI_TX_CHUNK_BYTES) {
                ch->used = 0; /* keep one small chunk for the next sends */
                c->resv = NULL;
            } else {
                if (ch == c->tail_chunk) {
                    c->tail_chunk = NULL;
                    c->resv = NULL;
                }
                chunk_put(c->tcp, ch);
            }
        }
    } else if (s->release != NULL) {
        s->release(s->release_arg, s->body);
    }
}

static void conn_free(edi_conn *c)
{
    edi_loop *loop = c->loop;
    edi_tcp *tcp = c->tcp;
    hot_remove(c);
    closing_remove(c);
    while (c->seg_count > 0)
        tx_pop(c);
    free(c->segs);
    chunk_put(tcp, c->tail_chunk);
    edi_deframe_fini(&c->df);
    if (c->fd >= 0)
        close(c->fd);
    edi_loop_timer_cancel(loop, &c->timer);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        tcp->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    free(c);
}

static void maybe_free(edi_conn *c)
{
    if (c->state != CS_DEAD || !c->closed_called || c->rx_armed ||
        c->tx_inflight || c->connect_inflight || c->on_dirty ||
        c->on_deferred || c->on_starved || c->lingering)
        return;
    conn_free(c);
}

/* ---- receive -------------------------------------------------------------------- */

static void starve(edi_conn *c)
{
    edi_tcp *tcp = c->tcp;
    if (c->on_starved)
        return;
    c->on_starved = true;
    c->starved_next = tcp->starved;
    tcp->starved = c;
    tcp->nstarved++;
    if (!tcp->rx_held) { /* a hold is counted once, as a hold */
        c->st.rx_starved++;
        tcp->st.rx_starved++;
    }
}

/* A lingering connection's receive: the bytes only need taking (their
 * being unread would turn our close into a reset that destroys what we
 * sent), so they go to the loop's scratch, not to the ring's buffers,
 * which a hold or a dry ring would withhold. */
static void arm_discard(edi_conn *c)
{
    struct io_uring_sqe *sqe = edi_loop_sqe(c->loop);
    if (sqe == NULL) {
        hard_stop(c);
        return;
    }
    io_uring_prep_recv(sqe, c->fd, c->tcp->discard, sizeof c->tcp->discard, 0);
    io_uring_sqe_set_data(sqe, &c->rx_op);
    c->rx_multishot = false;
    c->rx_armed = true;
}

static void arm_recv(edi_conn *c)
{
    edi_loop *loop = c->loop;
    edi_tcp *tcp = c->tcp;
    if (c->rx_armed || c->on_hot || !rx_wanted(c))
        return;
    if (c->state == CS_DEAD) {
        arm_discard(c);
        return;
    }
    if (tcp->pool->in_ring == 0 || tcp->rx_held) {
        /* would fail with ENOBUFS at once, or we are not to read: wait
         * with the starved ones */
        if (c->state == CS_DEAD)
            hard_stop(c);
        else
            starve(c);
        return;
    }
    struct io_uring_sqe *sqe = edi_loop_sqe(loop);
    if (sqe == NULL) {
        conn_kill(c, EDIST_EIO, false, "recv: io_uring submission queue unusable");
        return;
    }
    if (tcp->features & EDI_FEAT_RECV_MULTISHOT) {
        io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
        if (tcp->cfg.test_multishot_einval)
            sqe->ioprio |= 1u << 15; /* a flag it does not know: EINVAL */
        c->rx_multishot = true;
    } else {
        io_uring_prep_recv(sqe, c->fd, NULL, tcp->cfg.rx_buffer_bytes, 0);
        c->rx_multishot = false;
    }
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = EDI_BGID;
    io_uring_sqe_set_data(sqe, &c->rx_op);
    c->rx_armed = true;
}

static size_t call_on_bytes(edi_conn *c, const uint8_t *p, size_t n)
{
    if (c->ops->on_bytes == NULL)
        return n; /* nobody listens: discard */
    size_t used = c->ops->on_bytes(c, c->user, p, n);
    return used > n ? n : used;
}

static void deliver(edi_conn *c, edi_rxbuf *rb, const uint8_t *p, size_t len)
{
    edi_frame f = { p, len, rb };
    c->st.frames_in++;
    c->tcp->st.frames_in++;
    if (len == 0)
        c->st.ticks_in++;
    if (c->ops->on_frame != NULL)
        c->ops->on_frame(c, c->user, &f);
}

/* Deframer events -> the owner's callbacks. A callback that closes c halts
 * the deframer (conn_kill, edi_conn_close), which stops the feed. */
static size_t rx_event(void *user, const edi_deframe_event *ev)
{
    edi_conn *c = user;
    switch (ev->kind) {
    case EDI_DEFRAME_BYTES:
        return call_on_bytes(c, ev->data, ev->len);
    case EDI_DEFRAME_FRAME:
    case EDI_DEFRAME_TICK:
        deliver(c, ev->buf, ev->data, ev->len);
        return 0;
    case EDI_DEFRAME_REASSEMBLED: {
        edi_rxbuf *b = ev->buf;
        c->st.frames_reassembled++;
        c->tcp->st.frames_reassembled++;
        c->tcp->st.reassembled_bytes += ev->len;
        deliver(c, b, ev->data, ev->len);
        edi_rxbuf_unref(b); /* the deframer's reference, now ours */
        return 0;
    }
    case EDI_DEFRAME_ERROR:
        conn_kill(c, ev->err, false, "%s", ev->detail);
        return 0;
    }
    return 0;
}

/* New bytes p[0..n) inside rb (n may be 0 to re-run staged bytes after a
 * framing switch). */
static void rx_feed(edi_conn *c, edi_rxbuf *rb, const uint8_t *p, size_t n)
{
    c->in_rx = true;
    edi_deframe_feed(&c->df, rb, p, n);
    c->in_rx = false;
}

/* n bytes received into b, by io_uring or by our own read: counted, the
 * connection kept hot, the bytes fed. */
static void took_bytes(edi_conn *c, edi_rxbuf *b, size_t n)
{
    c->st.bytes_in += (uint64_t)n;
    c->tcp->st.bytes_in += (uint64_t)n;
    if (c->state == CS_OPEN) {
        hot_touch(c);
        rx_feed(c, b, b->data, n);
    }
}

static void on_recv(edi_conn *c, struct io_uring_cqe *cqe)
{
    edi_loop *loop = c->loop;
    edi_tcp *tcp = c->tcp;
    int res = cqe->res;
    bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    if (!more)
        c->rx_armed = false;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        edi_rxbuf *b = edi_pool_take(tcp->pool,
                                     (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
        if (b != NULL) {
            if (res > 0) {
                c->rx_got_data = true;
                took_bytes(c, b, (size_t)res);
            }
            edi_rxbuf_unref(b);
        }
    }
    if (res > 0) {
        if (!c->rx_armed)
            arm_recv(c);
    } else if (res == 0) {
        if (c->state == CS_OPEN) {
            if (edi_deframe_mid_frame(&c->df))
                conn_kill(c, EDIST_EPROTO, false, "peer closed in the middle of a frame");
            else
                conn_kill(c, EDIST_ECLOSED, false, "peer closed the connection");
        } else if (c->state == CS_DEAD && c->lingering) {
            hard_stop(c);
        }
        /* CLOSING: the peer is done sending; our flush goes on */
    } else if (res == -ENOBUFS) {
        if (!c->rx_armed && c->state == CS_DEAD)
            arm_recv(c); /* lingering: the scratch takes the rest */
        else if (!c->rx_armed)
            starve(c);
    } else if (res == -EINVAL && c->rx_multishot && !c->rx_got_data) {
        /* Judged by this connection's own receive: others armed in the
         * same iteration get their EINVAL after the first cleared the
         * feature, and were killed for it. */
        if (tcp->features & EDI_FEAT_RECV_MULTISHOT) {
            tcp->features &= ~(unsigned)EDI_FEAT_RECV_MULTISHOT;
            edi_loop_log(loop, "uring: multishot recv not supported by this kernel; "
                               "using one-shot recv");
        }
        if (!c->rx_armed)
            arm_recv(c);
    } else if (res == -ECANCELED) {
        /* We asked for it: the connection was hot (if it has gone quiet
         * since, it wants this receive back), or it is being stopped. */
        if (!c->rx_armed)
            arm_recv(c);
    } else if (res == -EINTR || res == -EAGAIN) {
        if (!c->rx_armed)
            arm_recv(c);
    } else if (c->state == CS_DEAD) {
        c->lingering = false;
    } else {
        conn_kill(c, EDIST_EIO, false, "recv: %s", strerror(-res));
    }
}

/* Our own read of a hot connection, once its io_uring receive has ended
 * (the completion without IORING_CQE_F_MORE, after the cancel hot_touch
 * asked for): until then that receive may still take bytes, as task work
 * run by any system call of this iteration (a send, a submit), and post
 * them after the iteration's reap: read by us meanwhile, later bytes
 * would be fed before them (a 1 KiB busy stream saw its framing broken
 * about once in 10 runs of 300,000 messages). A connection quiet for
 * rx_poll_us, closing, at EOF or in error goes back to io_uring's
 * receive, which takes it from there. */
static uint32_t poll_one(edi_conn *c)
{
    edi_tcp *tcp = c->tcp;
    if (c->state != CS_OPEN ||
        edi_loop_now_ns(c->loop) - c->rx_last_ns > (uint64_t)tcp->cfg.rx_poll_us * 1000u) {
        hot_remove(c);
        arm_recv(c);
        return 0;
    }
    if (c->rx_armed)
        return 0; /* its cancellation has not completed yet */
    edi_rxbuf *b = edi_pool_take_spare(tcp->pool);
    if (b == NULL)
        return 0; /* every spare buffer held: paused, as a starved receive */
    ssize_t res = recv(c->fd, b->data, tcp->pool->size_bytes, MSG_DONTWAIT);
    int err = res < 0 ? errno : 0;
    if (res > 0) {
        tcp->st.rx_polled_reads++;
        took_bytes(c, b, (size_t)res);
    }
    edi_rxbuf_unref(b);
    if (res == 0 || (res < 0 && !would_block(err))) {
        hot_remove(c);
        arm_recv(c);
    }
    return res > 0;
}

uint32_t edi_conn_poll_hot(edi_tcp *tcp)
{
    uint32_t n = 0;
    /* A feed may end any connection (taking it off the list, the last
     * one moving into its slot): move on only when the slot still holds
     * the connection just read. */
    for (uint32_t i = 0; i < tcp->nhot;) {
        edi_conn *c = tcp->hot[i];
        n += poll_one(c);
        if (i < tcp->nhot && tcp->hot[i] == c)
            i++;
    }
    return n;
}

void edi_conn_rx_hold(edi_tcp *tcp, bool hold)
{
    tcp->rx_held = hold;
    if (!hold) {
        edi_conn_rearm_starved(tcp);
        return;
    }
    tcp->st.rx_holds++;
    /* Hot connections go back to io_uring, which is held: they wait with
     * the starved ones (arm_recv starves them), which the end of the hold
     * arms again; armed receives are cancelled and wait there too when
     * they end. */
    while (tcp->nhot > 0) {
        edi_conn *c = tcp->hot[tcp->nhot - 1];
        hot_remove(c);
        arm_recv(c);
    }
    for (edi_conn *c = tcp->conns; c != NULL; c = c->next) {
        if (c->rx_armed && c->state == CS_OPEN && !cancel_recv(c))
            break; /* the rest stop when their receive next completes */
    }
}

void edi_conn_rearm_starved(edi_tcp *tcp)
{
    if (tcp->nstarved == 0 || tcp->rx_held)
        return;
    if (tcp->pool->in_ring < edi_pool_rearm_threshold(tcp->pool))
        return;
    edi_conn *list = tcp->starved;
    tcp->starved = NULL;
    tcp->nstarved = 0;
    while (list != NULL) {
        edi_conn *c = list;
        list = c->starved_next;
        c->on_starved = false;
        arm_recv(c);
        maybe_free(c);
    }
}

/* ---- send ------------------------------------------------------------------------ */

static int seg_reserve(edi_conn *c, uint32_t more)
{
    if (c->seg_count + more <= c->seg_cap)
        return 0;
    uint32_t cap = c->seg_cap ? c->seg_cap : 16;
    while (cap < c->seg_count + more)
        cap *= 2;
    txseg *s = malloc(cap * sizeof(*s));
    if (s == NULL)
        return edist_set_error(EDIST_ENOMEM, "uring: send queue");
    for (uint32_t i = 0; i < c->seg_count; i++)
        s[i] = c->segs[(c->seg_head + i) & (c->seg_cap - 1)];
    free(c->segs);
    c->segs = s;
    c->seg_cap = cap;
    c->seg_head = 0;
    return 0;
}

static txseg *seg_push(edi_conn *c)
{
    txseg *s = &c->segs[(c->seg_head + c->seg_count) & (c->seg_cap - 1)];
    c->seg_count++;
    memset(s, 0, sizeof(*s));
    return s;
}

/* Room for total bytes at the tail of the current copy chunk, starting a
 * new chunk when they do not fit (the old one is freed if nothing in the
 * queue points into it any more). Returns where they go, or NULL on
 * allocation failure (error set). */
static uint8_t *tx_room(edi_conn *c, size_t total)
{
    txchunk *ch = c->tail_chunk;
    if (ch == NULL || ch->cap - ch->used < total) {
        size_t cap = total > EDI_TX_CHUNK_BYTES ? total : EDI_TX_CHUNK_BYTES;
        txchunk *nc = chunk_get(c->tcp, cap);
        if (nc == NULL)
            return NULL;
        if (ch != NULL && ch->segs == 0)
            chunk_put(c->tcp, ch);
        c->tail_chunk = ch = nc;
    }
    return ch->data + ch->used;
}

/* Queues the total bytes written at dst, the tail of the current chunk
 * (from tx_room): they extend the last segment when it ends right there,
 * so consecutive frames form one iovec. The caller reserved a segment. */
static void tx_append(edi_conn *c, uint8_t *dst, size_t total)
{
    txchunk *ch = c->tail_chunk;
    ch->used += total;
    c->queued += total;
    if (c->seg_count > 0) {
        txseg *last = &c->segs[(c->seg_head + c->seg_count - 1) & (c->seg_cap - 1)];
        /* Extending a segment that is being sent is fine: the completion
         * advances by the bytes actually written, and the rest follows. */
        if (last->chunk == ch && last->p + last->len == dst) {
            last->len += total;
            return;
        }
    }
    txseg *s = seg_push(c);
    s->p = dst;
    s->len = total;
    s->chunk = ch;
    ch->segs++;
}

/* Copies a then b as one run of bytes to the end of the queue. The caller
 * reserved a segment. */
static int tx_copy(edi_conn *c, const void *a, size_t an, const void *b, size_t bn)
{
    size_t total = an + bn;
    c->resv = NULL; /* these bytes go where a reservation pointed */
    uint8_t *dst = tx_room(c, total);
    if (dst == NULL)
        return EDIST_ENOMEM;
    if (an > 0)
        memcpy(dst, a, an);
    if (bn > 0)
        memcpy(dst + an, b, bn);
    tx_append(c, dst, total);
    return 0;
}

static int tx_admit(edi_conn *c, size_t total, unsigned flags)
{
    if (c->state == CS_CLOSING || c->state == CS_DEAD)
        return edist_set_error(EDIST_ECLOSED, "uring: send on a closed connection");
    size_t limit = c->tcp->cfg.send_queue_limit_bytes;
    if (!(flags & EDI_SEND_FORCE) && c->queued > 0 &&
        (total > limit || c->queued > limit - total)) {
        c->want_writable = true;
        c->st.send_eagain++;
        c->tcp->st.send_eagain++;
        return EDIST_EAGAIN;
    }
    return 0;
}

int edi_conn_send_raw(edi_conn *c, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    if (data == NULL)
        return edist_set_error(EDIST_EINVAL, "uring: send of NULL");
    int rc = tx_admit(c, len, 0);
    if (rc < 0)
        return rc;
    if ((rc = seg_reserve(c, 1)) < 0 || (rc = tx_copy(c, data, len, NULL, 0)) < 0)
        return rc;
    mark_dirty(c);
    return 0;
}

int edi_conn_send_frame(edi_conn *c, const void *data, size_t len)
{
    if (len > UINT32_MAX || (len > 0 && data == NULL))
        return edist_set_error(EDIST_EINVAL, "uring: bad frame (%zu bytes)", len);
    int rc = tx_admit(c, len + 4, 0);
    if (rc < 0)
        return rc;
    uint8_t hdr[4];
    edi_put_be32(hdr, (uint32_t)len);
    if ((rc = seg_reserve(c, 1)) < 0 || (rc = tx_copy(c, hdr, 4, data, len)) < 0)
        return rc;
    c->st.frames_out++;
    c->tcp->st.frames_out++;
    mark_dirty(c);
    return 0;
}

int edi_conn_send_frame_owned(edi_conn *c, const void *head, size_t head_len,
                              const void *body, size_t body_len,
                              edi_release_fn release, void *release_arg,
                              unsigned flags)
{
    if ((head_len > 0 && head == NULL) || (body_len > 0 && body == NULL) ||
        head_len > UINT32_MAX || body_len > UINT32_MAX - head_len)
        return edist_set_error(EDIST_EINVAL, "uring: bad owned frame");
    int rc = tx_admit(c, 4 + head_len + body_len, flags);
    if (rc < 0)
        return rc;
    if ((rc = seg_reserve(c, 2)) < 0)
        return rc;
    uint8_t hdr[4];
    edi_put_be32(hdr, (uint32_t)(head_len + body_len));
    if ((rc = tx_copy(c, hdr, 4, head, head_len)) < 0)
        return rc;
    if (body_len > 0) {
        txseg *s = seg_push(c);
        s->p = body;
        s->len = body_len;
        s->release = release;
        s->release_arg = release_arg;
        s->body = body;
        c->queued += body_len;
    } else if (release != NULL) {
        release(release_arg, body);
    }
    c->st.frames_out++;
    c->tcp->st.frames_out++;
    mark_dirty(c);
    return 0;
}

int edi_conn_frame_reserve(edi_conn *c, size_t max_len, unsigned flags,
                           uint8_t **payload)
{
    *payload = NULL;
    c->resv = NULL;
    if (max_len > UINT32_MAX)
        return edist_set_error(EDIST_EINVAL, "uring: frame reserve of %zu bytes", max_len);
    int rc = tx_admit(c, 4 + max_len, flags);
    if (rc < 0)
        return rc;
    /* The segment now, so that the commit cannot fail. */
    if ((rc = seg_reserve(c, 1)) < 0)
        return rc;
    uint8_t *dst = tx_room(c, 4 + max_len);
    if (dst == NULL)
        return EDIST_ENOMEM;
    c->resv = dst;
    c->resv_max = max_len;
    *payload = dst + 4;
    return 0;
}

int edi_conn_frame_commit(edi_conn *c, size_t len)
{
    uint8_t *dst = c->resv;
    c->resv = NULL;
    if (dst == NULL)
        return edist_set_error(EDIST_EINVAL, "uring: frame commit without a reservation");
    if (len > c->resv_max)
        return edist_set_error(EDIST_EINVAL, "uring: frame commit of %zu bytes, %zu reserved",
                               len, c->resv_max);
    if (c->state == CS_CLOSING || c->state == CS_DEAD)
        return edist_set_error(EDIST_ECLOSED, "uring: send on a closed connection");
    edi_put_be32(dst, (uint32_t)len);
    tx_append(c, dst, 4 + len);
    c->st.frames_out++;
    c->tcp->st.frames_out++;
    mark_dirty(c);
    return 0;
}

size_t edi_conn_send_queue_bytes(const edi_conn *c) { return c->queued; }

static void sent(edi_conn *c, int res);

/* Sends what is queued, up to EDI_TX_IOV_MAX segments in one sendmsg.
 * A hot connection (rx_poll_us) tries a non-blocking sendmsg() first: in
 * a busy-polling loop that is 1-2 us a message cheaper than a round
 * through io_uring (submission, completion, reap). What the socket does
 * not take at once goes through io_uring, which waits for room. */
static void tx_submit(edi_conn *c)
{
    uint32_t n = 0;
    size_t bytes = 0;
    while (n < c->seg_count && n < EDI_TX_IOV_MAX) {
        const txseg *s = &c->segs[(c->seg_head + n) & (c->seg_cap - 1)];
        c->iov[n].iov_base = (void *)(uintptr_t)s->p;
        c->iov[n].iov_len = s->len;
        bytes += s->len;
        n++;
    }
    memset(&c->msg, 0, sizeof(c->msg));
    c->msg.msg_iov = c->iov;
    c->msg.msg_iovlen = n;
    c->st.sends++;
    if (n > c->st.max_iov_per_send)
        c->st.max_iov_per_send = n;
    c->tx_inflight_bytes = bytes;
    if (c->on_hot) {
        ssize_t r = sendmsg(c->fd, &c->msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        int err = r < 0 ? errno : 0;
        if (r > 0 || (r < 0 && !would_block(err))) {
            c->tcp->st.direct_sends++;
            sent(c, r > 0 ? (int)r : -err);
            return;
        }
    }
    struct io_uring_sqe *sqe = edi_loop_sqe(c->loop);
    if (sqe == NULL) {
        conn_kill(c, EDIST_EIO, false, "send: io_uring submission queue unusable");
        return;
    }
    io_uring_prep_sendmsg(sqe, c->fd, &c->msg, MSG_NOSIGNAL);
    io_uring_sqe_set_data(sqe, &c->tx_op);
    c->tx_inflight = true;
}

static void finish_graceful(edi_conn *c)
{
    conn_kill(c, 0, true, "closed");
}

static void on_send(edi_conn *c, struct io_uring_cqe *cqe)
{
    c->tx_inflight = false;
    sent(c, cqe->res);
}

/* A sendmsg of tx_inflight_bytes returned res (bytes taken, or -errno). */
static void sent(edi_conn *c, int res)
{
    edi_tcp *tcp = c->tcp;
    if (c->state == CS_DEAD)
        return;
    if (res < 0) {
        if (res == -EINTR || res == -EAGAIN) {
            mark_dirty(c);
            return;
        }
        conn_kill(c, EDIST_EIO, false, "send: %s", strerror(-res));
        return;
    }
    size_t left = (size_t)res;
    if (left < c->tx_inflight_bytes)
        c->st.sends_partial++;
    c->queued -= left;
    c->st.bytes_out += left;
    tcp->st.bytes_out += left;
    while (left > 0 && c->seg_count > 0) {
        txseg *s = &c->segs[c->seg_head];
        if (left >= s->len) {
            left -= s->len;
            tx_pop(c);
        } else {
            s->p += left;
            s->len -= left;
            left = 0;
        }
    }
    if (c->ops->on_sent != NULL)
        c->ops->on_sent(c, c->user, c->queued);
    if (c->state == CS_DEAD)
        return;
    if (c->want_writable && c->queued <= tcp->cfg.send_queue_limit_bytes / 2) {
        c->want_writable = false;
        c->pend_writable = true;
        defer(c);
    }
    if (c->seg_count > 0)
        mark_dirty(c);
    else if (c->state == CS_CLOSING)
        finish_graceful(c);
}

void edi_conn_flush(edi_tcp *tcp)
{
    edi_conn *list = tcp->dirty;
    tcp->dirty = NULL;
    while (list != NULL) {
        edi_conn *c = list;
        list = c->dirty_next;
        c->on_dirty = false;
        if ((c->state == CS_OPEN || c->state == CS_CLOSING) && !c->tx_inflight &&
            c->seg_count > 0)
            tx_submit(c);
        maybe_free(c);
    }
}

/* ---- completions, deferred work ----------------------------------------------------- */

static void on_connect(edi_conn *c, struct io_uring_cqe *cqe)
{
    c->connect_inflight = false;
    if (c->state != CS_CONNECTING)
        return;
    if (cqe->res < 0) {
        char a[64];
        format_addr(&c->addr, a, sizeof(a));
        conn_kill(c, EDIST_EIO, false, "connect to %s: %s", a, strerror(-cqe->res));
        return;
    }
    edi_loop_timer_cancel(c->loop, &c->timer);
    c->state = CS_OPEN;
    arm_recv(c);
    if (c->seg_count > 0)
        mark_dirty(c);
    if (c->ops->on_connected != NULL && !c->silent)
        c->ops->on_connected(c, c->user);
}

/* Completions of a connection's requests, found by the op they carry. */
static void rx_cqe(edi_loop *loop, edi_op *op, struct io_uring_cqe *cqe)
{
    (void)loop;
    edi_conn *c = edi_container_of(op, edi_conn, rx_op);
    on_recv(c, cqe);
    maybe_free(c);
}

static void tx_cqe(edi_loop *loop, edi_op *op, struct io_uring_cqe *cqe)
{
    (void)loop;
    edi_conn *c = edi_container_of(op, edi_conn, tx_op);
    on_send(c, cqe);
    maybe_free(c);
}

static void connect_cqe(edi_loop *loop, edi_op *op, struct io_uring_cqe *cqe)
{
    (void)loop;
    edi_conn *c = edi_container_of(op, edi_conn, connect_op);
    on_connect(c, cqe);
    maybe_free(c);
}

/* "connection A closed: why" for a close the owner did not ask for;
 * rate-limited, since a peer can trigger it (resets). */
static void log_closed(edi_conn *c)
{
    edi_loop *loop = c->loop;
    edi_tcp *tcp = c->tcp;
    edi_ratelimit *rl = &tcp->close_log;
    if (!edi_ratelimit_take(rl, edi_loop_now_ms(loop), CLOSE_LOG_BURST,
                            CLOSE_LOG_INTERVAL_MS)) {
        rl->suppressed++;
        return;
    }
    char a[64];
    struct sockaddr_storage peer;
    memset(&peer, 0, sizeof(peer));
    if (c->addr_len > 0)
        peer = c->addr;
    format_addr(&peer, a, sizeof(a));
    char more[80] = "";
    if (rl->suppressed)
        snprintf(more, sizeof(more), " (and %llu more closed connections not logged)",
                 (unsigned long long)rl->suppressed);
    rl->suppressed = 0;
    edi_loop_log(loop, "uring: connection %s closed: %s (%s)%s", a, c->why,
                 edist_strerror(c->reason), more);
}

uint32_t edi_conn_run_deferred(edi_tcp *tcp)
{
    uint32_t n = 0;
    edi_conn *list = tcp->deferred;
    tcp->deferred = NULL;
    while (list != NULL) {
        edi_conn *c = list;
        list = c->deferred_next;
        c->on_deferred = false;
        n++;
        if (c->pend_kick) {
            c->pend_kick = false;
            if (c->state == CS_OPEN)
                rx_feed(c, NULL, NULL, 0);
        }
        if (c->pend_writable) {
            c->pend_writable = false;
            if ((c->state == CS_OPEN || c->state == CS_CONNECTING) &&
                c->ops->on_writable != NULL)
                c->ops->on_writable(c, c->user);
        }
        if (c->pend_close && !c->closed_called) {
            c->pend_close = false;
            c->closed_called = true;
            if (c->reason == EDIST_EIO)
                edist_set_error(EDIST_EIO, "%s", c->why);
            if (!c->silent) {
                if (c->reason != 0 && c->reason != EDIST_ECLOSED && !c->by_owner)
                    log_closed(c);
                c->ops->on_close(c, c->user, c->reason);
            }
        }
        maybe_free(c);
    }
    return n;
}

/* ---- creation ------------------------------------------------------------------------ */

static edi_conn *conn_new(edi_tcp *tcp, const edi_conn_ops *ops, void *user)
{
    edi_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->loop = tcp->loop;
    c->tcp = tcp;
    c->fd = -1;
    c->ops = ops;
    c->user = user;
    edi_deframe_config dc = {
        .max_frame_bytes = tcp->cfg.max_frame_bytes,
        .raw_max_bytes = tcp->cfg.raw_max_bytes,
        .alloc = &edi_deframe_rxbufs,
        .on_event = rx_event,
        .user = c,
    };
    edi_deframe_init(&c->df, &dc); /* RAW until the owner switches */
    c->rx_op.fn = rx_cqe;
    c->tx_op.fn = tx_cqe;
    c->connect_op.fn = connect_cqe;
    edi_timer_init(&c->timer);
    c->next = tcp->conns;
    if (tcp->conns != NULL)
        tcp->conns->prev = c;
    tcp->conns = c;
    tcp->st.conns_open++;
    return c;
}

int edi_conn_adopt(edi_loop *loop, int fd, const edi_conn_ops *ops, void *user,
                   edi_conn **out)
{
    *out = NULL;
    if (fd < 0 || ops == NULL || ops->on_close == NULL) {
        if (fd >= 0)
            close(fd);
        return edist_set_error(EDIST_EINVAL, "uring: adopt needs an fd and on_close");
    }
    edi_tcp *tcp;
    int rc = edi_tcp_get(loop, &tcp);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    edi_conn *c = conn_new(tcp, ops, user);
    if (c == NULL) {
        close(fd);
        return edist_set_error(EDIST_ENOMEM, "uring: connection alloc");
    }
    c->fd = fd;
    /* Its peer's address, for the log lines (the socket is gone by the
     * time a close is logged). */
    socklen_t sl = sizeof(c->addr);
    if (getpeername(fd, (struct sockaddr *)&c->addr, &sl) == 0)
        c->addr_len = sl;
    set_sockopts(fd);
    c->state = CS_OPEN;
    arm_recv(c);
    *out = c;
    return 0;
}

int edi_loop_connect(edi_loop *loop, const char *ip, uint16_t port,
                     uint64_t timeout_ms, const edi_conn_ops *ops, void *user,
                     edi_conn **out)
{
    *out = NULL;
    if (ip == NULL || ops == NULL || ops->on_close == NULL)
        return edist_set_error(EDIST_EINVAL, "uring: connect needs an address and on_close");
    struct sockaddr_storage ss;
    socklen_t sl = 0; /* set by parse_addr; zeroed for -O3 -Werror */
    int rc = parse_addr(ip, port, &ss, &sl);
    if (rc < 0)
        return rc;
    edi_tcp *tcp;
    if ((rc = edi_tcp_get(loop, &tcp)) < 0)
        return rc;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return edist_set_error(EDIST_EIO, "uring: socket: %s", strerror(errno));
    set_sockopts(fd);
    struct io_uring_sqe *sqe = edi_loop_sqe(loop);
    if (sqe == NULL) {
        close(fd);
        return edist_set_error(EDIST_EIO, "uring: submission queue unusable");
    }
    edi_conn *c = conn_new(tcp, ops, user);
    if (c == NULL) {
        close(fd);
        /* the SQE we took must not go out half-filled */
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data(sqe, NULL);
        return edist_set_error(EDIST_ENOMEM, "uring: connection alloc");
    }
    c->fd = fd;
    c->addr = ss;
    c->addr_len = sl;
    c->state = CS_CONNECTING;
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&c->addr, sl);
    io_uring_sqe_set_data(sqe, &c->connect_op);
    c->connect_inflight = true;
    if (timeout_ms > 0 &&
        edi_loop_timer_start(loop, &c->timer, timeout_ms, 0, conn_timer_fn, c) < 0) {
        conn_kill(c, EDIST_ENOMEM, false, "connect timer");
        c->silent = true; /* the caller gets the error, not a callback */
        c->closed_called = true;
        c->pend_close = false;
        return EDIST_ENOMEM;
    }
    *out = c;
    return 0;
}

/* ---- accessors, framing, close ------------------------------------------------------- */

void edi_conn_set_framing(edi_conn *c, edi_framing mode)
{
    edi_deframe_mode m = mode == EDI_FRAMING_U32 ? EDI_DEFRAME_U32 : EDI_DEFRAME_RAW;
    if (edi_deframe_get_mode(&c->df) == m)
        return;
    edi_deframe_set_mode(&c->df, m);
    /* Outside delivery, staged RAW bytes must be looked at again under the
     * new framing without waiting for more bytes from the peer. */
    if (!c->in_rx && edi_deframe_staged_bytes(&c->df) > 0) {
        c->pend_kick = true;
        defer(c);
    }
}

edi_framing edi_conn_framing(const edi_conn *c)
{
    return edi_deframe_get_mode(&c->df) == EDI_DEFRAME_U32 ? EDI_FRAMING_U32
                                                           : EDI_FRAMING_RAW;
}
void edi_conn_set_user(edi_conn *c, void *user) { c->user = user; }
void *edi_conn_user(const edi_conn *c) { return c->user; }
void edi_conn_set_ops(edi_conn *c, const edi_conn_ops *ops)
{
    if (ops != NULL && ops->on_close != NULL)
        c->ops = ops;
}
edi_loop *edi_conn_loop(const edi_conn *c) { return c->loop; }
int edi_conn_fd(const edi_conn *c) { return c->fd; }

void edi_conn_close(edi_conn *c, uint64_t timeout_ms)
{
    if (c->state == CS_DEAD || c->state == CS_CLOSING)
        return;
    if (c->state == CS_CONNECTING) {
        conn_kill(c, 0, false, "closed while connecting");
        return;
    }
    if (timeout_ms == 0)
        timeout_ms = CLOSE_DEFAULT_MS;
    closing_enter(c);
    c->state = CS_CLOSING;
    c->close_deadline_ms = edi_now_ms() + timeout_ms;
    edi_deframe_halt(&c->df); /* no more deliveries */
    if (edi_loop_timer_start(c->loop, &c->timer, timeout_ms, 0, conn_timer_fn, c) < 0) {
        conn_kill(c, EDIST_ENOMEM, false, "close timer");
        return;
    }
    if (c->seg_count == 0 && !c->tx_inflight)
        finish_graceful(c);
}

void edi_conn_abort(edi_conn *c, int reason)
{
    if (c->state != CS_DEAD)
        c->by_owner = true;
    conn_kill(c, reason, false, "aborted by the owner (%s)",
              reason == 0 ? "no error" : edist_strerror(reason));
}

void edi_conn_get_stats(const edi_conn *c, edi_conn_stats *out)
{
    *out = c->st;
    out->send_queue_bytes = c->queued;
}

/* ---- listeners ------------------------------------------------------------------------ */

static void listener_free(edi_listener *l)
{
    edi_loop *loop = l->loop;
    edi_tcp *tcp = l->tcp;
    for (edi_listener **pp = &tcp->listeners; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    }
    edi_loop_timer_cancel(loop, &l->retry);
    if (l->fd >= 0)
        close(l->fd);
    free(l);
}

static void arm_accept(edi_listener *l)
{
    edi_loop *loop = l->loop;
    edi_tcp *tcp = l->tcp;
    struct io_uring_sqe *sqe = edi_loop_sqe(loop);
    if (sqe == NULL) {
        edi_loop_log(loop, "uring: accept: submission queue unusable");
        return;
    }
    l->multishot = (tcp->features & EDI_FEAT_ACCEPT_MULTISHOT) != 0;
    if (l->multishot)
        io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
    else
        io_uring_prep_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data(sqe, &l->op);
    l->armed = true;
}

static void accept_retry_fn(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    edi_listener *l = arg;
    if (!l->closing && !l->armed)
        arm_accept(l);
}

static void accept_cqe(edi_loop *loop, edi_op *op, struct io_uring_cqe *cqe)
{
    edi_listener *l = edi_container_of(op, edi_listener, op);
    edi_tcp *tcp = l->tcp;
    bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    if (!more)
        l->armed = false;
    int res = cqe->res;
    if (res >= 0) {
        if (l->closing) {
            close(res);
        } else {
            struct sockaddr_storage peer;
            socklen_t pl = sizeof(peer);
            memset(&peer, 0, sizeof(peer));
            (void)getpeername(res, (struct sockaddr *)&peer, &pl);
            tcp->st.accepts++;
            l->in_cb = true;
            l->on_accept(l, res, &peer, l->user);
            l->in_cb = false;
        }
        if (!l->armed && !l->closing)
            arm_accept(l);
    } else if (res == -EINVAL && l->multishot && !l->closing) {
        if (tcp->features & EDI_FEAT_ACCEPT_MULTISHOT) {
            tcp->features &= ~(unsigned)EDI_FEAT_ACCEPT_MULTISHOT;
            edi_loop_log(loop, "uring: multishot accept not supported; using one-shot accept");
        }
        if (!l->armed)
            arm_accept(l);
    } else if (res != -ECANCELED && !l->closing) {
        edi_loop_log(loop, "uring: accept: %s", strerror(-res));
        if (!l->armed)
            edi_loop_timer_start(loop, &l->retry, ACCEPT_RETRY_MS, 0, accept_retry_fn, l);
    }
    if (l->closing && !l->armed)
        listener_free(l);
}

int edi_loop_listen(edi_loop *loop, const char *ip, uint16_t port,
                    edi_accept_fn on_accept, void *user, edi_listener **out,
                    uint16_t *bound_port)
{
    *out = NULL;
    if (on_accept == NULL)
        return edist_set_error(EDIST_EINVAL, "uring: listen without on_accept");
    struct sockaddr_storage ss;
    socklen_t sl = 0; /* set by parse_addr; zeroed for -O3 -Werror */
    int rc = parse_addr(ip, port, &ss, &sl);
    if (rc < 0)
        return rc;
    edi_tcp *tcp;
    if ((rc = edi_tcp_get(loop, &tcp)) < 0)
        return rc;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return edist_set_error(EDIST_EIO, "uring: socket: %s", strerror(errno));
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, SOMAXCONN) < 0) {
        int e = errno;
        close(fd);
        return edist_set_error(EDIST_EIO, "uring: listen on %s:%u: %s",
                               ip ? ip : "0.0.0.0", port, strerror(e));
    }
    struct sockaddr_storage bound;
    socklen_t bl = sizeof(bound);
    if (getsockname(fd, (struct sockaddr *)&bound, &bl) < 0) {
        int e = errno;
        close(fd);
        return edist_set_error(EDIST_EIO, "uring: getsockname: %s", strerror(e));
    }
    edi_listener *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        close(fd);
        return edist_set_error(EDIST_ENOMEM, "uring: listener alloc");
    }
    l->loop = loop;
    l->tcp = tcp;
    l->fd = fd;
    l->op.fn = accept_cqe;
    l->on_accept = on_accept;
    l->user = user;
    edi_timer_init(&l->retry);
    l->next = tcp->listeners;
    tcp->listeners = l;
    arm_accept(l);
    if (bound_port != NULL)
        *bound_port = bound.ss_family == AF_INET6
                          ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                          : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    *out = l;
    return 0;
}

void edi_listener_close(edi_listener *l)
{
    if (l == NULL || l->closing)
        return;
    l->closing = true;
    edi_loop_timer_cancel(l->loop, &l->retry);
    if (!l->armed) {
        if (!l->in_cb) /* else the CQE handler frees it on return */
            listener_free(l);
        return;
    }
    /* shutdown wakes a pending accept; the cancel covers the rest */
    (void)shutdown(l->fd, SHUT_RDWR);
    struct io_uring_sqe *sqe = edi_loop_sqe(l->loop);
    if (sqe != NULL) {
        io_uring_prep_cancel(sqe, &l->op, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data(sqe, NULL);
    }
}

/* ---- teardown ------------------------------------------------------------------------- */

void edi_conn_free_all(edi_tcp *tcp)
{
    edi_loop *loop = tcp->loop;
    for (edi_conn *c = tcp->conns; c != NULL; c = c->next) {
        c->silent = true;
        conn_kill(c, EDIST_ECLOSED, false, "loop freed");
        hard_stop(c); /* also ends a linger */
        c->closed_called = true;
        c->pend_close = c->pend_kick = c->pend_writable = false;
    }
    for (edi_listener *l = tcp->listeners; l != NULL; l = l->next) {
        if (!l->closing) {
            l->closing = true;
            edi_loop_timer_cancel(loop, &l->retry);
            if (l->armed) {
                (void)shutdown(l->fd, SHUT_RDWR);
                struct io_uring_sqe *sqe = edi_loop_sqe(loop);
                if (sqe != NULL) {
                    io_uring_prep_cancel(sqe, &l->op, IORING_ASYNC_CANCEL_ALL);
                    io_uring_sqe_set_data(sqe, NULL);
                }
            }
        }
    }
    /* Listeners never armed are freed now. */
    for (edi_listener *l = tcp->listeners, *next; l != NULL; l = next) {
        next = l->next;
        if (!l->armed)
            listener_free(l);
    }
    /* The kernel may still write into connection memory (msghdr, buffers)
     * until each request completes: wait for them, boundedly. */
    tcp->deferred = NULL;
    tcp->dirty = NULL;
    tcp->starved = NULL;
    tcp->nstarved = 0;
    for (edi_conn *c = tcp->conns; c != NULL; c = c->next)
        c->on_deferred = c->on_dirty = c->on_starved = false;
    uint64_t give_up_ms = edi_now_ms() + 2000;
    for (;;) {
        for (edi_conn *c = tcp->conns, *next; c != NULL; c = next) {
            next = c->next;
            maybe_free(c);
        }
        if (tcp->conns == NULL && tcp->listeners == NULL)
            break;
        if (edi_now_ms() > give_up_ms) {
            /* should not happen: shutdown and cancel end every request */
            edi_loop_log(loop, "uring: loop freed with kernel requests still pending");
            while (tcp->conns != NULL)
                conn_free(tcp->conns);
            while (tcp->listeners != NULL)
                listener_free(tcp->listeners);
            break;
        }
        (void)edi_loop_reap_wait(loop, 10u * 1000 * 1000);
        /* handlers may have put dying connections on work lists */
        for (edi_conn *c = tcp->conns; c != NULL; c = c->next)
            c->on_deferred = c->on_dirty = c->on_starved = false;
        tcp->deferred = tcp->dirty = tcp->starved = NULL;
        tcp->nstarved = 0;
    }
}
