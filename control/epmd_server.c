/* SPDX-License-Identifier: Apache-2.0 */
/* EPMD-compatible port mapper: a poll() loop. See epmd_server.h. */
#include "control/epmd_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "control/epmd_client.h"
#include "control/epmd_proto.h"
#include "edist/error.h"

/* Connections accepted per listening socket per loop turn, so a flood of
 * connects cannot starve the connections already open. */
#define ACCEPT_BATCH 64
/* How long to stop accepting when the process is out of descriptors; the
 * listening socket would otherwise stay readable and spin the loop. */
#define ACCEPT_PAUSE_MS 100
#define LOG_LINE_BYTES 512
#define LOG_NAME_BYTES 80

enum conn_state { CONN_FREE, CONN_READING, CONN_REGISTERED, CONN_CLOSING };

struct conn;

/* A registered node; lives as long as its connection. */
struct node {
    struct node *prev, *next; /* registered list, newest first, as epmd */
    struct conn *conn;
    uint32_t cr_counter;
    uint16_t port;
    uint8_t node_type;
    uint8_t protocol;
    uint16_t highest_version;
    uint16_t lowest_version;
    size_t name_len;
    size_t extra_len;
    char name[EDI_EPMD_MAX_NAME_BYTES + 1];
    uint8_t extra[EDI_EPMD_MAX_EXTRA_BYTES];
};

/* A name that was registered once: remembered so that its next
 * registration gets a different creation. */
struct remembered {
    struct remembered *next;
    uint32_t cr_counter;
    uint16_t port;
    int fd;
    size_t name_len;
    char name[];
};

struct conn {
    int fd;
    uint8_t state;
    bool local_peer;
    uint64_t seq;        /* accept order, to find the oldest */
    int64_t deadline_ms; /* for CONN_READING and CONN_CLOSING */
    size_t got;          /* bytes in in[] */
    size_t want;         /* whole request size, 0 until the header is in */
    struct node *node;   /* CONN_REGISTERED */
    uint8_t *out;        /* unsent reply */
    size_t out_len, out_off;
    char peer[INET6_ADDRSTRLEN + 8];
    uint8_t in[2 + EDI_EPMD_MAX_REQUEST_BYTES];
};

struct edi_epmd_server {
    edi_epmd_server_config cfg;
    char *addresses;
    uint16_t port;
    int listen_fds[EDI_EPMD_MAX_LISTEN_SOCKETS];
    unsigned n_listen;
    int wake[2]; /* stop() writes, the loop polls */
    atomic_int stop_requested;
    bool killed;

    struct conn *conns;
    unsigned max_conns;
    struct pollfd *pfds;
    struct conn **pconn; /* pfds[i] belongs to pconn[i] (NULL: not a conn) */

    struct node *reg_head;
    struct remembered *hist_head, *hist_tail;
    unsigned n_hist;
    uint32_t last_seed;
    uint64_t next_seq;
    int64_t accept_paused_until;
    size_t out_total;

    atomic_uint_fast64_t st_open, st_accepted, st_dropped, st_registered,
        st_refused, st_served;
    /* Since when no connection is open (idle_exit_ms) */
    int64_t idle_since_ms;
};

static void stat_add(atomic_uint_fast64_t *c, int d)
{
    if (d >= 0)
        atomic_fetch_add_explicit(c, (uint_fast64_t)d, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(c, (uint_fast64_t)-d, memory_order_relaxed);
}

/* The server's lines, all at INFO, through its logger (base/log.h). */
#define slog(s, ...) edi_logf(&(s)->cfg.log, EDIST_LOG_INFO, __VA_ARGS__)

/* A node name fit for a log line: control bytes replaced, long names cut. */
static const char *printable(const void *name, size_t len, char *buf,
                             size_t cap)
{
    const uint8_t *p = name;
    size_t n = 0;
    size_t shown = len < cap - 4 ? len : cap - 4;
    for (size_t i = 0; i < shown; i++)
        buf[n++] = (p[i] < 0x20 || p[i] == 0x7f) ? '?' : (char)p[i];
    if (shown < len) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

/* ---- connections ------------------------------------------------------ */

static void unregister(edi_epmd_server *s, struct conn *c, const char *why);

static void conn_close(edi_epmd_server *s, struct conn *c)
{
    if (c->state == CONN_FREE)
        return;
    if (c->node)
        unregister(s, c, "connection closed");
    close(c->fd);
    if (c->out) {
        s->out_total -= c->out_len - c->out_off;
        free(c->out);
    }
    c->out = NULL;
    c->out_len = c->out_off = 0;
    c->fd = -1;
    c->state = CONN_FREE;
    c->got = c->want = 0;
    stat_add(&s->st_open, -1);
    if (atomic_load(&s->st_open) == 0)
        s->idle_since_ms = (int64_t)edi_now_ms();
}

/* Closes a connection for a reason worth one log line. */
static void drop(edi_epmd_server *s, struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void drop(edi_epmd_server *s, struct conn *c, const char *fmt, ...)
{
    char why[LOG_LINE_BYTES - 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    slog(s, "closing connection from %s: %s", c->peer, why);
    stat_add(&s->st_dropped, 1);
    conn_close(s, c);
}

/* Sends what is pending. 0: all sent; 1: more to send later; -1: peer gone. */
static int flush(edi_epmd_server *s, struct conn *c)
{
    while (c->out && c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->out_off += (size_t)n;
            s->out_total -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 1;
        return -1;
    }
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    return 0;
}

/* Queues a reply and sends what the socket takes now. 0 or -1 (dropped). */
static int reply(edi_epmd_server *s, struct conn *c, const uint8_t *data,
                 size_t len)
{
    size_t off = 0;
    if (!c->out) {
        /* The common case: a small reply goes out without a copy. */
        while (off < len) {
            ssize_t n =
                send(c->fd, data + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                off += (size_t)n;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            conn_close(s, c); /* the peer went away; nothing to report */
            return -1;
        }
        if (off == len)
            return 0;
    }
    size_t rest = len - off;
    if (s->out_total + rest > EDI_EPMD_MAX_PENDING_OUTPUT_BYTES) {
        drop(s, c, "%zu reply bytes not read; pending output limit reached",
             rest);
        return -1;
    }
    size_t pending = c->out ? c->out_len - c->out_off : 0;
    uint8_t *nb = malloc(pending + rest);
    if (!nb) {
        drop(s, c, "out of memory for a %zu-byte reply", rest);
        return -1;
    }
    if (pending)
        memcpy(nb, c->out + c->out_off, pending);
    memcpy(nb + pending, data + off, rest);
    free(c->out);
    c->out = nb;
    c->out_len = pending + rest;
    c->out_off = 0;
    s->out_total += rest;
    return 0;
}

/* After a one-shot request: close once the reply is out. */
static void finish(edi_epmd_server *s, struct conn *c)
{
    if (c->state == CONN_FREE)
        return;
    c->state = CONN_CLOSING;
    c->deadline_ms =
        (int64_t)edi_now_ms() + s->cfg.packet_timeout_ms; /* time to read the reply */
    if (!c->out)
        conn_close(s, c);
}

static bool is_local_peer(int fd)
{
    struct sockaddr_storage peer, self;
    socklen_t pl = sizeof peer, sl = sizeof self;
    if (getpeername(fd, (struct sockaddr *)&peer, &pl) != 0)
        return false;
    if (peer.ss_family == AF_INET) {
        const struct sockaddr_in *p = (const struct sockaddr_in *)&peer;
        if ((ntohl(p->sin_addr.s_addr) & 0xFF000000u) == 0x7F000000u)
            return true;
    } else if (peer.ss_family == AF_INET6) {
        const struct sockaddr_in6 *p = (const struct sockaddr_in6 *)&peer;
        if (IN6_IS_ADDR_LOOPBACK(&p->sin6_addr))
            return true;
        if (IN6_IS_ADDR_V4MAPPED(&p->sin6_addr) &&
            p->sin6_addr.s6_addr[12] == 127)
            return true;
    }
    /* A connection from one of this host's own addresses is local too. */
    if (getsockname(fd, (struct sockaddr *)&self, &sl) != 0 ||
        self.ss_family != peer.ss_family)
        return false;
    if (peer.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&peer)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)&self)->sin_addr.s_addr;
    if (peer.ss_family == AF_INET6)
        return IN6_ARE_ADDR_EQUAL(
            &((const struct sockaddr_in6 *)&peer)->sin6_addr,
            &((const struct sockaddr_in6 *)&self)->sin6_addr);
    return false;
}

static void describe_peer(const struct sockaddr_storage *ss, char *buf,
                          size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
        snprintf(buf, cap, "%s:%u", host, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
        snprintf(buf, cap, "[%s]:%u", host, port);
    } else {
        snprintf(buf, cap, "?");
    }
}

/* ---- the name table ---------------------------------------------------- */

static struct node *find_node(edi_epmd_server *s, const void *name, size_t len)
{
    for (struct node *n = s->reg_head; n; n = n->next)
        if (n->name_len == len && !memcmp(n->name, name, len))
            return n;
    return NULL;
}

static uint32_t bump(uint32_t cr)
{
    /* Creations 0..3 mean "old style" to some peers: never hand them out. */
    return ++cr < 4 ? 4 : cr;
}

/* The creation counter for a name: the next one if the name was registered
 * before (and forgotten from the history only after many others), else a
 * fresh seed from the clock, distinct from every earlier seed. */
static uint32_t take_creation(edi_epmd_server *s, const void *name, size_t len)
{
    struct remembered *prev = NULL;
    for (struct remembered *r = s->hist_head; r; prev = r, r = r->next) {
        if (r->name_len == len && !memcmp(r->name, name, len)) {
            if (prev)
                prev->next = r->next;
            else
                s->hist_head = r->next;
            if (s->hist_tail == r)
                s->hist_tail = prev;
            s->n_hist--;
            uint32_t cr = bump(r->cr_counter);
            free(r);
            return cr;
        }
    }
    uint32_t seed = (uint32_t)time(NULL);
    if (seed <= s->last_seed)
        seed = s->last_seed + 1;
    s->last_seed = seed;
    return bump(seed);
}

static void remember(edi_epmd_server *s, const struct node *n, int fd)
{
    struct remembered *r = malloc(sizeof *r + n->name_len);
    if (!r)
        return; /* only costs a repeated creation sequence */
    r->next = NULL;
    r->cr_counter = n->cr_counter;
    r->port = n->port;
    r->fd = fd;
    r->name_len = n->name_len;
    memcpy(r->name, n->name, n->name_len);
    if (s->hist_tail)
        s->hist_tail->next = r;
    else
        s->hist_head = r;
    s->hist_tail = r;
    if (++s->n_hist > EDI_EPMD_MAX_REMEMBERED_NAMES) {
        struct remembered *old = s->hist_head;
        s->hist_head = old->next;
        if (!s->hist_head)
            s->hist_tail = NULL;
        s->n_hist--;
        free(old);
    }
}

static void unregister(edi_epmd_server *s, struct conn *c, const char *why)
{
    struct node *n = c->node;
    char nb[LOG_NAME_BYTES];
    slog(s, "unregistered '%s' (port %u, creation %u): %s",
         printable(n->name, n->name_len, nb, sizeof nb), n->port, n->cr_counter,
         why);
    if (n->prev)
        n->prev->next = n->next;
    else
        s->reg_head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    remember(s, n, c->fd);
    free(n);
    c->node = NULL;
    stat_add(&s->st_registered, -1);
}

/* ---- requests ---------------------------------------------------------- */

static void refuse_alive(edi_epmd_server *s, struct conn *c,
                         const edi_epmd_node_fields *f, const char *why)
{
    char nb[LOG_NAME_BYTES];
    slog(s, "refused registration of '%s' (port %u) from %s: %s",
         printable(f->name, f->name_len, nb, sizeof nb), f->port, c->peer, why);
    stat_add(&s->st_refused, 1);
    uint8_t out[8];
    int n = edi_epmd_encode_alive2_resp(
        out, sizeof out, f->highest_version >= 6, EDI_EPMD_RESULT_REFUSED,
        EDI_EPMD_REFUSED_CREATION);
    /* epmd keeps a refused registrant's connection open until it closes;
     * we close after the reply, which every client reads first anyway, so
     * a refused peer cannot pin a connection slot. */
    if (reply(s, c, out, (size_t)n) == 0)
        finish(s, c);
}

static void do_alive2(edi_epmd_server *s, struct conn *c,
                      const edi_epmd_node_fields *f)
{
    if (edi_epmd_check_name(f->name, f->name_len) < 0) {
        refuse_alive(s, c, f, edist_last_error());
        return;
    }
    if (f->extra_len > EDI_EPMD_MAX_EXTRA_BYTES) {
        refuse_alive(s, c, f, "extra field too long");
        return;
    }
    if (find_node(s, f->name, f->name_len)) {
        refuse_alive(s, c, f, "name already registered");
        return;
    }
    struct node *n = malloc(sizeof *n);
    if (!n) {
        refuse_alive(s, c, f, "out of memory");
        return;
    }
    n->cr_counter = take_creation(s, f->name, f->name_len);
    n->port = f->port;
    n->node_type = f->node_type;
    n->protocol = f->protocol;
    n->highest_version = f->highest_version;
    n->lowest_version = f->lowest_version;
    n->name_len = f->name_len;
    memcpy(n->name, f->name, f->name_len);
    n->name[f->name_len] = '\0';
    n->extra_len = f->extra_len;
    if (f->extra_len)
        memcpy(n->extra, f->extra, f->extra_len);
    n->conn = c;
    n->prev = NULL;
    n->next = s->reg_head;
    if (s->reg_head)
        s->reg_head->prev = n;
    s->reg_head = n;
    c->node = n;
    c->state = CONN_REGISTERED;
    stat_add(&s->st_registered, 1);

    /* Distribution version 6 nodes take a 32-bit creation; older ones only
     * know 1..3. */
    bool x = f->highest_version >= 6;
    uint32_t creation = x ? n->cr_counter : n->cr_counter % 3 + 1;
    char nb[LOG_NAME_BYTES];
    slog(s,
         "registered '%s' port %u type %u versions %u-%u creation %u from %s",
         printable(n->name, n->name_len, nb, sizeof nb), n->port, n->node_type,
         n->lowest_version, n->highest_version, creation, c->peer);
    uint8_t out[8];
    int len = edi_epmd_encode_alive2_resp(out, sizeof out, x, 0, creation);
    reply(s, c, out, (size_t)len); /* on failure the node is unregistered */
}

static void do_port_please(edi_epmd_server *s, struct conn *c,
                           const edi_epmd_request *rq)
{
    if (edi_epmd_check_name(rq->name, rq->name_len) < 0) {
        drop(s, c, "PORT_PLEASE2_REQ: %s", edist_last_error());
        return;
    }
    struct node *n = find_node(s, rq->name, rq->name_len);
    uint8_t out[EDI_EPMD_MAX_PORT2_RESP_BYTES];
    int len;
    if (n) {
        edi_epmd_node_fields f = {
            .port = n->port,
            .node_type = n->node_type,
            .protocol = n->protocol,
            .highest_version = n->highest_version,
            .lowest_version = n->lowest_version,
            .name = (const uint8_t *)n->name,
            .name_len = n->name_len,
            .extra = n->extra,
            .extra_len = n->extra_len,
        };
        len = edi_epmd_encode_port2_resp(out, sizeof out, &f);
    } else {
        len = edi_epmd_encode_port2_resp(out, sizeof out, NULL);
    }
    if (len > 0 && reply(s, c, out, (size_t)len) == 0)
        finish(s, c);
}

/* A growable reply for NAMES and DUMP. */
struct obuf {
    uint8_t *p;
    size_t len, cap;
    bool failed;
};

static void ob_put(struct obuf *b, const void *data, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *np = realloc(b->p, cap);
        if (!np) {
            b->failed = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void do_names(edi_epmd_server *s, struct conn *c, bool dump)
{
    struct obuf b = {0};
    uint8_t hdr[4];
    edi_epmd_encode_names_header(hdr, sizeof hdr, s->port);
    ob_put(&b, hdr, 4);
    char tail[96];
    for (struct node *n = s->reg_head; n; n = n->next) {
        if (!dump) {
            uint8_t line[EDI_EPMD_MAX_NAME_BYTES + 32];
            int len = edi_epmd_encode_names_line(line, sizeof line,
                                                 (const uint8_t *)n->name,
                                                 n->name_len, n->port);
            if (len > 0)
                ob_put(&b, line, (size_t)len);
        } else {
            /* epmd's dump lines, each sent with its terminating NUL. */
            ob_put(&b, "active name     <", 17);
            ob_put(&b, n->name, n->name_len);
            int t = snprintf(tail, sizeof tail, "> at port %u, fd = %d\n",
                             n->port, n->conn->fd);
            ob_put(&b, tail, (size_t)t + 1);
        }
    }
    if (dump) {
        for (struct remembered *r = s->hist_head; r; r = r->next) {
            ob_put(&b, "old/unused name <", 17);
            ob_put(&b, r->name, r->name_len);
            int t = snprintf(tail, sizeof tail, ">, port = %u, fd = %d \n",
                             r->port, r->fd);
            ob_put(&b, tail, (size_t)t + 1);
        }
    }
    if (b.failed) {
        free(b.p);
        drop(s, c, "out of memory for a %s reply", dump ? "DUMP" : "NAMES");
        return;
    }
    int rc = reply(s, c, b.p, b.len);
    free(b.p);
    if (rc == 0)
        finish(s, c);
}

static void do_kill(edi_epmd_server *s, struct conn *c)
{
    if (!s->cfg.relaxed_command_check && s->reg_head) {
        slog(s, "refused KILL_REQ from %s: nodes are registered", c->peer);
        if (reply(s, c, (const uint8_t *)"NO", 2) == 0)
            finish(s, c);
        return;
    }
    slog(s, "KILL_REQ from %s: stopping", c->peer);
    if (reply(s, c, (const uint8_t *)"OK", 2) == 0)
        finish(s, c);
    s->killed = true;
}

static void do_stop(edi_epmd_server *s, struct conn *c,
                    const edi_epmd_request *rq)
{
    if (!s->cfg.relaxed_command_check) {
        drop(s, c, "STOP_REQ refused: not started with relaxed command check");
        return;
    }
    struct node *n = find_node(s, rq->name, rq->name_len);
    if (!n) {
        if (reply(s, c, (const uint8_t *)"NOEXIST", 7) == 0)
            finish(s, c);
        return;
    }
    char nb[LOG_NAME_BYTES];
    slog(s, "STOP_REQ from %s: unregistering '%s'", c->peer,
         printable(n->name, n->name_len, nb, sizeof nb));
    struct conn *victim = n->conn;
    unregister(s, victim, "forced by STOP_REQ");
    conn_close(s, victim);
    if (reply(s, c, (const uint8_t *)"STOPPED", 7) == 0)
        finish(s, c);
}

static void handle_request(edi_epmd_server *s, struct conn *c)
{
    const uint8_t *body = c->in + 2;
    size_t len = c->want - 2;
    edi_epmd_request rq;
    int rc = edi_epmd_parse_request(body, len, &rq);
    if (rc < 0) {
        drop(s, c, "%s", edist_last_error());
        return;
    }
    stat_add(&s->st_served, 1);
    bool local_only =
        rq.type == EDI_EPMD_ALIVE2_REQ || rq.type == EDI_EPMD_DUMP_REQ ||
        rq.type == EDI_EPMD_KILL_REQ || rq.type == EDI_EPMD_STOP_REQ;
    if (local_only && !c->local_peer) {
        drop(s, c, "request %u is only accepted from this host", rq.type);
        return;
    }
    switch (rq.type) {
    case EDI_EPMD_ALIVE2_REQ:
        do_alive2(s, c, &rq.alive);
        break;
    case EDI_EPMD_PORT_PLEASE2_REQ:
        do_port_please(s, c, &rq);
        break;
    case EDI_EPMD_NAMES_REQ:
        do_names(s, c, false);
        break;
    case EDI_EPMD_DUMP_REQ:
        do_names(s, c, true);
        break;
    case EDI_EPMD_KILL_REQ:
        do_kill(s, c);
        break;
    case EDI_EPMD_STOP_REQ:
        do_stop(s, c, &rq);
        break;
    default:
        drop(s, c, "unknown request type %u", rq.type);
        break;
    }
}

static void on_readable(edi_epmd_server *s, struct conn *c)
{
    if (c->state == CONN_REGISTERED) {
        /* A registration connection only ever closes; anything else on it
         * is a protocol error, and epmd unregisters the node for it. */
        uint8_t scratch[256];
        ssize_t n = recv(c->fd, scratch, sizeof scratch, MSG_DONTWAIT);
        if (n < 0 &&
            (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (n > 0) {
            drop(s, c, "%zd unexpected bytes after ALIVE2_REQ", n);
            return;
        }
        conn_close(s, c); /* logs the unregistration */
        return;
    }
    if (c->state != CONN_READING)
        return;
    /* Until the length is known read as much as fits: bytes beyond the one
     * request are an error, as in epmd. */
    size_t cap = c->want ? c->want : sizeof c->in;
    ssize_t n = recv(c->fd, c->in + c->got, cap - c->got, MSG_DONTWAIT);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        drop(s, c, "receive error: %s", strerror(errno));
        return;
    }
    if (n == 0) {
        if (c->got)
            drop(s, c, "closed after %zu bytes of an incomplete request",
                 c->got);
        else
            conn_close(s, c); /* a plain connect-and-close probe */
        return;
    }
    c->got += (size_t)n;
    if (!c->want) {
        size_t body = 0;
        int rc = edi_epmd_frame_length(c->in, c->got, &body);
        if (rc == EDIST_ETRUNC)
            return;
        if (rc < 0) {
            drop(s, c, "%s", edist_last_error());
            return;
        }
        c->want = 2 + body;
    }
    if (c->got > c->want) {
        drop(s, c, "%zu bytes after the %zu-byte request", c->got - c->want,
             c->want);
        return;
    }
    if (c->got == c->want)
        handle_request(s, c);
}

/* ---- descriptors ------------------------------------------------------- */

/* Descriptors the server needs besides its connections: listening
 * sockets, its wake pipe, stdio, and some slack. */
#define EPMD_FD_RESERVE (EDI_EPMD_MAX_LISTEN_SOCKETS + 16u)

/* Each connection is a descriptor. A soft limit below what the table
 * needs (1024 is common for services) is raised towards the hard one;
 * past that the table shrinks to fit, with a line: accepts failing with
 * EMFILE before the table is full would never evict anyone. */
static void fit_descriptors(edi_epmd_server *s)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t)s->max_conns + EPMD_FD_RESERVE;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want && rl.rlim_cur < rl.rlim_max) {
        struct rlimit up = rl;
        up.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl = up;
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
        return;
    unsigned fit = rl.rlim_cur > EPMD_FD_RESERVE + 8u ? (unsigned)(rl.rlim_cur - EPMD_FD_RESERVE)
                                                        : 8u;
    edi_logf(&s->cfg.log, EDIST_LOG_WARNING,
             "epmd: connection limit lowered from %u to %u: this process may open %llu "
             "files (RLIMIT_NOFILE)",
             s->max_conns, fit, (unsigned long long)rl.rlim_cur);
    s->max_conns = fit;
}

/* ---- accepting --------------------------------------------------------- */

/* The oldest connection that is not a registration, or NULL. */
static struct conn *oldest_oneshot(edi_epmd_server *s)
{
    struct conn *oldest = NULL;
    for (unsigned i = 0; i < s->max_conns; i++) {
        struct conn *c = &s->conns[i];
        if (c->state != CONN_FREE && c->state != CONN_REGISTERED &&
            (!oldest || c->seq < oldest->seq))
            oldest = c;
    }
    return oldest;
}

static struct conn *free_slot(edi_epmd_server *s, const char *newpeer)
{
    for (unsigned i = 0; i < s->max_conns; i++)
        if (s->conns[i].state == CONN_FREE)
            return &s->conns[i];
    struct conn *oldest = oldest_oneshot(s);
    if (!oldest)
        return NULL;
    /* Full: the oldest one-shot connection is the likeliest to be idle or
     * hostile, and a registration must never be evicted. */
    drop(s, oldest, "connection limit (%u) reached, making room for %s",
         s->max_conns, newpeer);
    return oldest;
}

static void accept_some(edi_epmd_server *s, int lfd, int64_t now)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            /* Out of descriptors (a node embedding us has its own, too):
             * the oldest one-shot connection makes room, as at the table's
             * limit; pause only when there is none. */
            struct conn *victim =
                errno == EMFILE || errno == ENFILE ? oldest_oneshot(s) : NULL;
            if (victim) {
                drop(s, victim, "no descriptor left (%s), making room", strerror(errno));
                stat_add(&s->st_dropped, 1);
                continue;
            }
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) {
                slog(s, "cannot accept: %s; pausing accepts for %d ms",
                     strerror(errno), ACCEPT_PAUSE_MS);
                s->accept_paused_until = now + ACCEPT_PAUSE_MS;
            }
            return; /* EAGAIN: nothing more to accept */
        }
        char peer[sizeof((struct conn *)0)->peer];
        describe_peer(&ss, peer, sizeof peer);
        struct conn *c = free_slot(s, peer);
        if (!c) {
            slog(s,
                 "refusing connection from %s: all %u connections are "
                 "registrations",
                 peer, s->max_conns);
            stat_add(&s->st_dropped, 1);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->state = CONN_READING;
        c->local_peer = is_local_peer(fd);
        c->seq = s->next_seq++;
        c->deadline_ms = now + s->cfg.packet_timeout_ms;
        c->got = c->want = 0;
        c->node = NULL;
        memcpy(c->peer, peer, sizeof peer);
        stat_add(&s->st_open, 1);
        stat_add(&s->st_accepted, 1);
    }
}

/* ---- the loop ---------------------------------------------------------- */

int edi_epmd_server_step(edi_epmd_server *s, int timeout_ms)
{
    if (atomic_load(&s->stop_requested) || s->killed)
        return 0;
    int64_t now = (int64_t)edi_now_ms();
    nfds_t np = 0;
    s->pfds[np] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
    s->pconn[np++] = NULL;
    bool accepting = now >= s->accept_paused_until;
    if (accepting) {
        for (unsigned i = 0; i < s->n_listen; i++) {
            s->pfds[np] =
                (struct pollfd){.fd = s->listen_fds[i], .events = POLLIN};
            s->pconn[np++] = NULL;
        }
    }
    int64_t next = timeout_ms >= 0 ? now + timeout_ms : INT64_MAX;
    if (!accepting && s->accept_paused_until < next)
        next = s->accept_paused_until;
    if (s->cfg.idle_exit_ms && atomic_load(&s->st_open) == 0 &&
        s->idle_since_ms + s->cfg.idle_exit_ms < next)
        next = s->idle_since_ms + s->cfg.idle_exit_ms;
    for (unsigned i = 0; i < s->max_conns; i++) {
        struct conn *c = &s->conns[i];
        if (c->state == CONN_FREE)
            continue;
        short ev = c->state == CONN_CLOSING ? POLLOUT : POLLIN;
        if (c->out && c->state != CONN_CLOSING)
            ev |= POLLOUT;
        s->pfds[np] = (struct pollfd){.fd = c->fd, .events = ev};
        s->pconn[np++] = c;
        if (c->state != CONN_REGISTERED && c->deadline_ms < next)
            next = c->deadline_ms;
    }
    int wait = -1;
    if (next != INT64_MAX) {
        int64_t d = next - now;
        wait = d < 0 ? 0 : d > 3600000 ? 3600000 : (int)d;
    }
    int r = poll(s->pfds, np, wait);
    if (r < 0) {
        if (errno == EINTR)
            return 1;
        return edist_set_error(EDIST_EIO, "epmd server: poll: %s",
                               strerror(errno));
    }
    now = (int64_t)edi_now_ms();
    if (s->pfds[0].revents) {
        char drain[64];
        while (read(s->wake[0], drain, sizeof drain) > 0) {
        }
    }
    /* Connections first: accepting may evict one and reuse its slot. */
    for (nfds_t i = 0; i < np; i++) {
        struct conn *c = s->pconn[i];
        short rev = s->pfds[i].revents;
        if (!c || !rev || c->state == CONN_FREE || c->fd != s->pfds[i].fd)
            continue;
        if (rev & POLLOUT || (c->state == CONN_CLOSING && rev)) {
            int f = flush(s, c);
            if (f < 0) {
                conn_close(s, c);
                continue;
            }
            if (f == 0 && c->state == CONN_CLOSING) {
                conn_close(s, c);
                continue;
            }
        }
        if (rev & (POLLIN | POLLHUP | POLLERR) && c->state != CONN_CLOSING)
            on_readable(s, c);
    }
    if (accepting) {
        for (nfds_t i = 1; i <= s->n_listen; i++)
            if (s->pfds[i].revents & POLLIN)
                accept_some(s, s->pfds[i].fd, now);
    }
    for (unsigned i = 0; i < s->max_conns; i++) {
        struct conn *c = &s->conns[i];
        if ((c->state == CONN_READING || c->state == CONN_CLOSING) &&
            c->deadline_ms <= now) {
            if (c->state == CONN_CLOSING)
                drop(s, c, "reply not read within %u ms",
                     s->cfg.packet_timeout_ms);
            else if (c->got)
                drop(s, c, "incomplete request (%zu bytes) after %u ms", c->got,
                     s->cfg.packet_timeout_ms);
            else
                drop(s, c, "no request within %u ms", s->cfg.packet_timeout_ms);
        }
    }
    /* Nobody registered, nobody asking: an embedded port mapper has
     * outlived the nodes it served. Checked after accepting, so that a
     * connection already waiting is served, not cut. */
    if (s->cfg.idle_exit_ms && atomic_load(&s->st_open) == 0 &&
        now >= s->idle_since_ms + s->cfg.idle_exit_ms) {
        slog(s, "no node registered for %u ms: exiting", s->cfg.idle_exit_ms);
        s->killed = true;
    }
    return (atomic_load(&s->stop_requested) || s->killed) ? 0 : 1;
}

int edi_epmd_server_run(edi_epmd_server *s)
{
    int rc;
    while ((rc = edi_epmd_server_step(s, -1)) > 0) {
    }
    return rc < 0 ? rc : 0;
}

void edi_epmd_server_stop(edi_epmd_server *s)
{
    if (!s)
        return;
    atomic_store(&s->stop_requested, 1);
    ssize_t w = write(s->wake[1], "", 1); /* full pipe: a wake-up is pending */
    (void)w;
}

uint16_t edi_epmd_server_port(const edi_epmd_server *s)
{
    return s->port;
}

void edi_epmd_server_get_stats(const edi_epmd_server *s,
                               edi_epmd_server_stats *st)
{
    edi_epmd_server *m =
        (edi_epmd_server *)s; /* atomics loads need non-const */
    st->connections_open =
        atomic_load_explicit(&m->st_open, memory_order_relaxed);
    st->connections_accepted =
        atomic_load_explicit(&m->st_accepted, memory_order_relaxed);
    st->connections_dropped =
        atomic_load_explicit(&m->st_dropped, memory_order_relaxed);
    st->registered_nodes =
        atomic_load_explicit(&m->st_registered, memory_order_relaxed);
    st->registrations_refused =
        atomic_load_explicit(&m->st_refused, memory_order_relaxed);
    st->requests_served =
        atomic_load_explicit(&m->st_served, memory_order_relaxed);
}

/* ---- set-up ------------------------------------------------------------ */

struct listen_spec {
    struct sockaddr_storage ss;
    socklen_t len;
    bool fatal; /* failing to bind it fails the start */
};

static void spec_v4(struct listen_spec *sp, in_addr_t addr_be, bool fatal)
{
    memset(sp, 0, sizeof *sp);
    struct sockaddr_in *a = (struct sockaddr_in *)&sp->ss;
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = addr_be;
    sp->len = sizeof *a;
    sp->fatal = fatal;
}

static void spec_v6(struct listen_spec *sp, const struct in6_addr *addr,
                    bool fatal)
{
    memset(sp, 0, sizeof *sp);
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&sp->ss;
    a->sin6_family = AF_INET6;
    a->sin6_addr = *addr;
    sp->len = sizeof *a;
    sp->fatal = fatal;
}

static int parse_addresses(const char *list, struct listen_spec *specs,
                           unsigned *n)
{
    *n = 0;
    if (!list || !list[strspn(list, " ,")]) {
        /* Every interface, as epmd without -address. IPv6 is optional. */
        spec_v4(&specs[(*n)++], htonl(INADDR_ANY), true);
        spec_v6(&specs[(*n)++], &in6addr_any, false);
        return 0;
    }
    /* The loopback is always served, so local nodes can register. */
    spec_v4(&specs[(*n)++], htonl(INADDR_LOOPBACK), true);
    spec_v6(&specs[(*n)++], &in6addr_loopback, false);
    char *copy = strdup(list);
    if (!copy)
        return edist_set_error(EDIST_ENOMEM, "epmd server: out of memory");
    int rc = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ", ", &save); tok;
         tok = strtok_r(NULL, ", ", &save)) {
        struct in_addr a4;
        struct in6_addr a6;
        if (*n >= EDI_EPMD_MAX_LISTEN_SOCKETS) {
            rc = edist_set_error(EDIST_EINVAL,
                                 "epmd server: more than %u listen addresses",
                                 EDI_EPMD_MAX_LISTEN_SOCKETS);
            break;
        }
        if (inet_pton(AF_INET, tok, &a4) == 1) {
            if (a4.s_addr != htonl(INADDR_LOOPBACK))
                spec_v4(&specs[(*n)++], a4.s_addr, true);
        } else if (inet_pton(AF_INET6, tok, &a6) == 1) {
            if (!IN6_IS_ADDR_LOOPBACK(&a6))
                spec_v6(&specs[(*n)++], &a6, true);
        } else {
            rc = edist_set_error(EDIST_EINVAL,
                                 "epmd server: cannot parse address '%s'", tok);
            break;
        }
    }
    free(copy);
    return rc;
}

static void set_port(struct listen_spec *sp, uint16_t port)
{
    if (sp->ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&sp->ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)&sp->ss)->sin6_port = htons(port);
}

static int open_listeners(edi_epmd_server *s)
{
    struct listen_spec specs[EDI_EPMD_MAX_LISTEN_SOCKETS];
    unsigned n = 0;
    int rc = parse_addresses(s->addresses, specs, &n);
    if (rc < 0)
        return rc;
    uint16_t port = s->cfg.port > 0    ? (uint16_t)s->cfg.port
                    : s->cfg.port == 0 ? edi_epmd_default_port()
                                       : 0;
    for (unsigned i = 0; i < n; i++) {
        struct listen_spec *sp = &specs[i];
        char where[INET6_ADDRSTRLEN + 8];
        set_port(sp, port);
        describe_peer(&sp->ss, where, sizeof where);
        int fd = socket(sp->ss.ss_family,
                        SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            if (!sp->fatal)
                continue;
            return edist_set_error(EDIST_EIO, "epmd server: socket: %s",
                                   strerror(errno));
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (sp->ss.ss_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&sp->ss, sp->len) != 0 ||
            listen(fd, SOMAXCONN) != 0) {
            int e = errno;
            close(fd);
            if (!sp->fatal)
                continue;
            if (e == EADDRINUSE)
                return edist_set_error(
                    EDIST_EEXIST,
                    "epmd server: %s already in use (a port mapper runs?)",
                    where);
            return edist_set_error(EDIST_EIO, "epmd server: bind %s: %s", where,
                                   strerror(e));
        }
        if (port == 0) {
            /* Kernel-chosen port: every other address uses the same one. */
            struct sockaddr_storage got;
            socklen_t gl = sizeof got;
            getsockname(fd, (struct sockaddr *)&got, &gl);
            port = ntohs(got.ss_family == AF_INET
                             ? ((struct sockaddr_in *)&got)->sin_port
                             : ((struct sockaddr_in6 *)&got)->sin6_port);
        }
        s->listen_fds[s->n_listen++] = fd;
    }
    if (!s->n_listen)
        return edist_set_error(EDIST_EIO,
                               "epmd server: no address could be bound");
    s->port = port;
    return 0;
}

int edi_epmd_server_start(const edi_epmd_server_config *cfg,
                          edi_epmd_server **out)
{
    if (!cfg || !out)
        return edist_set_error(EDIST_EINVAL, "epmd server: missing argument");
    if (cfg->port < -1 || cfg->port > 65535)
        return edist_set_error(EDIST_EINVAL, "epmd server: bad port %d",
                               cfg->port);
    edi_epmd_server *s = calloc(1, sizeof *s);
    if (!s)
        return edist_set_error(EDIST_ENOMEM, "epmd server: out of memory");
    s->cfg = *cfg;
    s->wake[0] = s->wake[1] = -1;
    if (!s->cfg.max_connections)
        s->cfg.max_connections = EDI_EPMD_DEFAULT_MAX_CONNECTIONS;
    if (!s->cfg.packet_timeout_ms)
        s->cfg.packet_timeout_ms = EDI_EPMD_DEFAULT_PACKET_TIMEOUT_MS;
    s->max_conns = s->cfg.max_connections;
    fit_descriptors(s);
    int rc = 0;
    if (cfg->addresses && !(s->addresses = strdup(cfg->addresses))) {
        rc = edist_set_error(EDIST_ENOMEM, "epmd server: out of memory");
        goto fail;
    }
    s->cfg.addresses = s->addresses;
    /* calloc: the table's pages are only touched as connections use them. */
    s->conns = calloc(s->max_conns, sizeof *s->conns);
    s->pfds =
        calloc(1 + EDI_EPMD_MAX_LISTEN_SOCKETS + s->max_conns, sizeof *s->pfds);
    s->pconn = calloc(1 + EDI_EPMD_MAX_LISTEN_SOCKETS + s->max_conns,
                      sizeof *s->pconn);
    if (!s->conns || !s->pfds || !s->pconn) {
        rc = edist_set_error(EDIST_ENOMEM,
                             "epmd server: out of memory for %u connections",
                             s->max_conns);
        goto fail;
    }
    for (unsigned i = 0; i < s->max_conns; i++)
        s->conns[i].fd = -1;
    s->idle_since_ms = (int64_t)edi_now_ms();
    if (pipe2(s->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        rc = edist_set_error(EDIST_EIO, "epmd server: pipe: %s",
                             strerror(errno));
        goto fail;
    }
    rc = open_listeners(s);
    if (rc < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    edi_epmd_server_free(s);
    return rc;
}

void edi_epmd_server_free(edi_epmd_server *s)
{
    if (!s)
        return;
    if (s->conns)
        for (unsigned i = 0; i < s->max_conns; i++)
            conn_close(s, &s->conns[i]);
    for (unsigned i = 0; i < s->n_listen; i++)
        close(s->listen_fds[i]);
    if (s->wake[0] >= 0)
        close(s->wake[0]);
    if (s->wake[1] >= 0)
        close(s->wake[1]);
    while (s->hist_head) {
        struct remembered *r = s->hist_head;
        s->hist_head = r->next;
        free(r);
    }
    free(s->conns);
    free(s->pfds);
    free(s->pconn);
    free(s->addresses);
    free(s);
}

/* ---- daemon ------------------------------------------------------------ */

static edi_epmd_server *daemon_server;

static void daemon_signal(int sig)
{
    (void)sig;
    edi_epmd_server_stop(daemon_server);
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static void close_span(unsigned from, unsigned to)
{
    if (close_range(from, to, 0) == 0)
        return;
    /* Kernels before 5.9: one by one. */
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 1 << 20)
        max = 1 << 16;
    for (long fd = from; fd <= max && fd <= (long)to; fd++)
        close((int)fd);
}

/* Closes every descriptor from 3 up except those in keep[]. */
static void close_all_but(int *keep, size_t n)
{
    qsort(keep, n, sizeof *keep, cmp_int);
    unsigned from = 3;
    for (size_t i = 0; i < n; i++) {
        if (keep[i] < 0 || (unsigned)keep[i] < from)
            continue;
        if ((unsigned)keep[i] > from)
            close_span(from, (unsigned)keep[i] - 1);
        from = (unsigned)keep[i] + 1;
    }
    close_span(from, ~0u);
}

int edi_epmd_daemon_start(const edi_epmd_server_config *cfg, pid_t *pid_out)
{
    edi_epmd_server *s = NULL;
    int rc = edi_epmd_server_start(cfg, &s);
    if (rc < 0)
        return rc;
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
        rc = edist_set_error(EDIST_EIO, "epmd daemon: pipe: %s",
                             strerror(errno));
        edi_epmd_server_free(s);
        return rc;
    }
    pid_t first = fork();
    if (first < 0) {
        rc = edist_set_error(EDIST_EIO, "epmd daemon: fork: %s",
                             strerror(errno));
        close(report[0]);
        close(report[1]);
        edi_epmd_server_free(s);
        return rc;
    }
    if (first == 0) {
        /* First child: a new session, so no terminal or process group of
         * the caller can signal the daemon; then fork again so the daemon
         * is not a session leader and can never acquire a terminal. */
        close(report[0]);
        if (setsid() < 0)
            _exit(1);
        signal(SIGHUP, SIG_IGN);
        pid_t second = fork();
        if (second != 0)
            _exit(second < 0 ? 1 : 0);
        /* The daemon inherits the starting node's command line; a name of
         * its own keeps `ps`/`pgrep edist-epmd` from mistaking it for
         * the node. */
        (void)prctl(PR_SET_NAME, "edist-epmd", 0, 0, 0);
        pid_t me = getpid();
        ssize_t w = write(report[1], &me, sizeof me);
        (void)w;
        if (chdir("/") != 0) {
            /* stay where we are; nothing depends on the cwd */
        }
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
            dup2(devnull, 2);
            if (devnull > 2)
                close(devnull);
        }
        int keep[EDI_EPMD_MAX_LISTEN_SOCKETS + 2];
        size_t nk = 0;
        for (unsigned i = 0; i < s->n_listen; i++)
            keep[nk++] = s->listen_fds[i];
        keep[nk++] = s->wake[0];
        keep[nk++] = s->wake[1];
        close_all_but(keep,
                      nk); /* the report pipe and the caller's sockets too */
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        daemon_server = s;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = daemon_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        int r = edi_epmd_server_run(s);
        edi_epmd_server_free(s);
        _exit(r < 0 ? 1 : 0);
    }
    /* The caller: its copies of the sockets go; the daemon keeps its own. */
    close(report[1]);
    int status;
    while (waitpid(first, &status, 0) < 0 && errno == EINTR) {
    }
    pid_t daemon_pid = -1;
    ssize_t got;
    do {
        got = read(report[0], &daemon_pid, sizeof daemon_pid);
    } while (got < 0 && errno == EINTR);
    close(report[0]);
    /* Free without closing registrations: there are none in the caller. */
    edi_epmd_server_free(s);
    if (got != (ssize_t)sizeof daemon_pid)
        return edist_set_error(EDIST_EIO,
                               "epmd daemon: the daemon did not start");
    if (pid_out)
        *pid_out = daemon_pid;
    return 0;
}
