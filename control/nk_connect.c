/* SPDX-License-Identifier: Apache-2.0 */
/* Outgoing connections: the peer host resolved on a thread, its port
 * mapper asked through the loop, then the TCP connect. */
#include "control/netkernel_internal.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/epmd_proto.h"

/* ---- outgoing: port mapper lookup through the loop ----------------------- */

static void epmd_connected(edi_conn *c, void *user)
{
    edi_link *l = user;
    char shortname[EDI_HS_NAME_MAX_BYTES + 1];
    snprintf(shortname, sizeof shortname, "%s", l->peer_name);
    char *at = strchr(shortname, '@');
    if (at)
        *at = '\0';
    uint8_t req[EDI_HS_NAME_MAX_BYTES + 8];
    int n = edi_epmd_encode_port_please2_req(req, sizeof req, shortname,
                                             strlen(shortname));
    if (n < 0 || edi_conn_send_raw(c, req, (size_t)n) != 0)
        edi_nki_link_fail(l, EDIST_EIO, "cannot send the port mapper request");
}

static void start_dist_connect(edi_link *l, uint16_t port);

static size_t epmd_bytes(edi_conn *c, void *user, const uint8_t *data,
                         size_t len)
{
    edi_link *l = user;
    if (l->dead || c != l->epmd_conn)
        return len;
    edi_epmd_node_fields f;
    size_t used = 0;
    int rc = edi_epmd_parse_port2_resp(data, len, &f, &used);
    if (rc == EDIST_ETRUNC)
        return 0;
    l->epmd_conn = NULL;
    edi_conn_abort(c, 0);
    char detail[600];
    if (rc == EDIST_ENOTFOUND) {
        snprintf(detail, sizeof detail,
                 "the port mapper on %s knows no node named %s", l->ip,
                 l->peer_name);
        edi_nki_link_fail(l, EDIST_ENOTFOUND, detail);
        return len;
    }
    if (rc < 0) {
        snprintf(detail, sizeof detail,
                 "bad answer from the port mapper on %s: %s", l->ip,
                 edist_last_error());
        edi_nki_link_fail(l, EDIST_EPROTO, detail);
        return len;
    }
    if (f.highest_version < 6 || f.lowest_version > 6) {
        snprintf(detail, sizeof detail,
                 "%s speaks distribution versions %u..%u, edist only 6",
                 l->peer_name, f.lowest_version, f.highest_version);
        edi_nki_link_fail(l, EDIST_EUNSUPPORTED, detail);
        return len;
    }
    start_dist_connect(l, f.port);
    return len;
}

static void epmd_close(edi_conn *c, void *user, int reason)
{
    edi_link *l = user;
    edi_nk *nk = l->nk;
    if (!l->dead && c == l->epmd_conn) {
        l->epmd_conn = NULL;
        char detail[600];
        if (reason == EDIST_ECLOSED)
            snprintf(detail, sizeof detail,
                     "the port mapper on %s closed without answering about %s",
                     l->ip, l->peer_name);
        else
            snprintf(detail, sizeof detail,
                     "cannot reach the port mapper on %s port %u: %s", l->ip,
                     nk->cfg.epmd_port, edist_strerror(reason));
        edi_nki_link_fail(
            l, reason == EDIST_ECLOSED ? EDIST_ECLOSED : EDIST_EIO, detail);
    }
    l->conns_open--;
    nk->conns_open--;
    edi_nki_link_maybe_free(l);
    edi_nki_shutdown_check(nk);
}

static const edi_conn_ops epmd_ops = {
    .on_connected = epmd_connected,
    .on_bytes = epmd_bytes,
    .on_close = epmd_close,
};

static void start_dist_connect(edi_link *l, uint16_t port)
{
    edi_nk *nk = l->nk;
    snprintf(l->addr, sizeof l->addr, "%s:%u", l->ip, port);
    uint64_t now = edi_loop_now_ms(nk->loop);
    uint64_t left = l->started_ms + nk->cfg.setuptime_ms > now
                        ? l->started_ms + nk->cfg.setuptime_ms - now
                        : 1;
    edi_hs_config hc;
    edi_nki_hs_config(nk, l, &hc);
    int rc = edi_hs_init(&l->hs, &hc);
    if (rc) {
        edi_nki_link_fail(l, rc, edi_hs_error(&l->hs));
        return;
    }
    l->phase = L_HANDSHAKE;
    rc = edi_loop_connect(nk->loop, l->ip, port, left, &edi_nki_dist_ops, l,
                          &l->conn);
    if (rc) {
        char detail[600];
        snprintf(detail, sizeof detail, "cannot connect to %s: %s", l->addr,
                 edist_last_error());
        edi_nki_link_fail(l, rc, detail);
        return;
    }
    l->conns_open++;
    nk->conns_open++;
    edi_nki_hs_flush(l); /* send_name goes out once connected */
}

/* The peer's host as an IPv4 (else IPv6) literal. Blocking: called on a
 * resolver thread. */
static int resolve_host(const char *host, char *ip, size_t cap)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    hints.ai_family = AF_INET;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        hints.ai_family = AF_UNSPEC;
        rc = getaddrinfo(host, NULL, &hints, &res);
    }
    if (rc != 0 || !res)
        return edist_set_error(EDIST_EIO, "cannot resolve host %s: %s", host,
                               gai_strerror(rc));
    const void *a =
        res->ai_family == AF_INET
            ? (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr
            : (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr;
    inet_ntop(res->ai_family, a, ip, (socklen_t)cap);
    freeaddrinfo(res);
    return 0;
}

/* The host is known as an address: ask its port mapper for the peer. */
static void lookup_port(edi_link *l)
{
    edi_nk *nk = l->nk;
    int rc = edi_loop_connect(nk->loop, l->ip, nk->cfg.epmd_port,
                              nk->cfg.setuptime_ms, &epmd_ops, l, &l->epmd_conn);
    if (rc) {
        char detail[600];
        snprintf(detail, sizeof detail,
                 "cannot reach the port mapper on %s: %s", l->ip,
                 edist_last_error());
        edi_nki_link_fail(l, rc, detail);
        return;
    }
    l->conns_open++;
    nk->conns_open++;
}

static void lookup_unlist(edi_nk *nk, nk_lookup *lk)
{
    if (lk->prev)
        lk->prev->next = lk->next;
    else
        nk->lookups = lk->next;
    if (lk->next)
        lk->next->prev = lk->prev;
}

/* Loop thread: the resolver thread is done. */
static void lookup_done(edi_loop *loop, void *arg)
{
    (void)loop;
    nk_lookup *lk = arg;
    pthread_join(lk->thread, NULL);
    lookup_unlist(lk->nk, lk);
    edi_link *l = lk->link;
    if (l) {
        l->lookup = NULL;
        if (!l->dead) {
            if (lk->rc) {
                edi_nki_link_fail(l, lk->rc, lk->err);
            } else {
                snprintf(l->ip, sizeof l->ip, "%s", lk->ip);
                lookup_port(l);
            }
        }
    }
    free(lk);
}

static void *lookup_main(void *arg)
{
    nk_lookup *lk = arg;
    lk->rc = resolve_host(lk->host, lk->ip, sizeof lk->ip);
    if (lk->rc)
        snprintf(lk->err, sizeof lk->err, "%s", edist_last_error());
    /* A full post queue is brief; a node being freed joins us instead. */
    while (!atomic_load(&lk->nk->freeing) &&
           edi_loop_post(lk->nk->loop, lookup_done, lk) == EDIST_EAGAIN)
        usleep(1000);
    return NULL;
}

/* Resolve l's host: at once for an address literal, else on a thread. */
static int lookup_start(edi_link *l, const char *host)
{
    struct in6_addr a6;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1) {
        snprintf(l->ip, sizeof l->ip, "%s", host);
        lookup_port(l);
        return 0;
    }
    if (strlen(host) >= sizeof ((nk_lookup *)0)->host)
        return edist_set_error(EDIST_EINVAL, "host name too long: %s", host);
    nk_lookup *lk = calloc(1, sizeof *lk);
    if (!lk)
        return edist_set_error(EDIST_ENOMEM, "no memory to resolve %s", host);
    lk->nk = l->nk;
    lk->link = l;
    snprintf(lk->host, sizeof lk->host, "%s", host);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256u * 1024u); /* getaddrinfo and NSS */
    int err = pthread_create(&lk->thread, &attr, lookup_main, lk);
    pthread_attr_destroy(&attr);
    if (err) {
        free(lk);
        return edist_set_error(EDIST_ENOMEM, "cannot start a resolver thread for %s", host);
    }
    l->lookup = lk;
    lk->next = l->nk->lookups;
    if (lk->next)
        lk->next->prev = lk;
    l->nk->lookups = lk;
    return 0;
}

/* A new outgoing attempt owning p. */
static void start_outgoing(edi_nk *nk, edi_peer *p)
{
    edi_link *l = edi_nki_link_new(nk, EDI_HS_INITIATOR);
    if (!l) {
        edi_nki_peer_waiters_done(nk, p, EDIST_ENOMEM,
                                  "no memory for a connection");
        return;
    }
    snprintf(l->peer_name, sizeof l->peer_name, "%s", p->name);
    l->peer = p;
    p->owner = l;
    l->phase = L_LOOKUP;
    const char *host = strchr(p->name, '@') + 1;
    snprintf(l->addr, sizeof l->addr, "%s", host);
    int rc = lookup_start(l, host);
    if (rc) {
        char detail[600];
        snprintf(detail, sizeof detail, "%s", edist_last_error());
        edi_nki_link_fail(l, rc, detail);
    }
}

/* Make sure a connection to peer is up or under way; op (may be 0) waits
 * for the outcome. */
void edi_nki_want_connection(edi_nk *nk, const char *peer, nk_op *op)
{
    edi_peer *p = edi_ct_find(&nk->table, peer);
    if (p && (p->state == EDI_PEER_UP || p->state == EDI_PEER_UP_PENDING)) {
        if (op) {
            edi_nki_op_connected(nk, op, 0, "");
        }
        return;
    }
    bool fresh = false;
    if (!p) {
        int rc = edi_ct_add(&nk->table, peer, &p);
        if (rc) {
            if (op) {
                char detail[300];
                snprintf(detail, sizeof detail, "%s", edist_last_error());
                edi_nki_op_connected(nk, op, rc, detail);
            }
            return;
        }
        fresh = true;
    }
    if (op && edi_ct_add_waiter(p, op->id) != 0) {
        edi_nki_op_connected(nk, op, EDIST_ENOMEM, "no memory");
        if (fresh)
            edi_ct_remove(&nk->table, p);
        return;
    }
    if (fresh || (p->state == EDI_PEER_PENDING && !p->owner &&
                  p->orphan_deadline_ms == 0))
        start_outgoing(nk, p);
}
