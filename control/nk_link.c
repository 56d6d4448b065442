/* SPDX-License-Identifier: Apache-2.0 */
/* A link's lifetime: creation, setup timeout, down (it was up), fail (it
 * never came up), kill and free; and admission of incoming connections. */
#include "control/netkernel_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- link lifetime ------------------------------------------------------- */

void edi_nki_link_maybe_free(edi_link *l)
{
    if (!l->dead || l->conns_open > 0)
        return;
    edi_nk *nk = l->nk;
    if (l->prev)
        l->prev->next = l->next;
    else
        nk->dead_links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    if (l->lookup)
        l->lookup->link = NULL;
    edi_hs_wipe(&l->hs);
    edi_dist_reasm_free(l->data.reasm);
    free(l->data.send_wait);
    edi_sendq_detach(l->data.sq);
    edi_nki_lane_free(l);
    free(l);
}

/* Off the list of incoming handshakes (up, or gone). */
void edi_nki_incoming_remove(edi_link *l)
{
    edi_nk *nk = l->nk;
    if (!l->incoming)
        return;
    if (l->in_prev)
        l->in_prev->in_next = l->in_next;
    else
        nk->in_head = l->in_next;
    if (l->in_next)
        l->in_next->in_prev = l->in_prev;
    else
        nk->in_tail = l->in_prev;
    l->in_next = l->in_prev = NULL;
    l->incoming = false;
    nk->in_count--;
}

/* An up link gets the runtime's key for its peer. Without one (no
 * runtime, no memory) senders take the lookup by name. */
void edi_nki_link_set_key(edi_nk *nk, edi_link *l)
{
    uint32_t key;
    if (!nk->rt_ops || !nk->rt_ops->peer_key ||
        nk->rt_ops->peer_key(nk->rt_user, l->peer_name, &key) != 0)
        return;
    if (key >= nk->by_key_cap) {
        uint32_t cap = nk->by_key_cap ? nk->by_key_cap : 64;
        while (cap <= key)
            cap *= 2;
        edi_link **t = realloc(nk->by_key, cap * sizeof *t);
        if (!t)
            return;
        memset(t + nk->by_key_cap, 0, (cap - nk->by_key_cap) * sizeof *t);
        nk->by_key = t;
        nk->by_key_cap = cap;
    }
    nk->by_key[key] = l;
    l->key = key;
    l->keyed = true;
}

/* Bookkeeping done: take l out of the kernel's lists and close its
 * sockets (flushing what is queued when graceful). */
static void link_kill(edi_link *l, bool graceful)
{
    edi_nk *nk = l->nk;
    if (l->dead)
        return;
    l->dead = true;
    if (l->keyed && nk->by_key[l->key] == l)
        nk->by_key[l->key] = NULL;
    l->keyed = false;
    edi_nki_incoming_remove(l);
    edi_loop_timer_cancel(nk->loop, &l->setup_timer);
    edi_loop_timer_cancel(nk->loop, &l->data.pump_timer);
    /* A graceful close flushes what was queued (shutdown, disconnect):
     * hand the connection the rest first. The scheduler lets go of
     * whatever is left; units the connection holds are released by it. */
    if (graceful && l->phase == L_UP) {
        int rc = edi_nki_link_drain_all(l);
        if (rc && rc != EDIST_ECLOSED)
            nk_log(nk, EDIST_LOG_WARNING,
                   "%s: closing: output still queued was lost: %s", l->peer_name,
                   edist_strerror(rc));
    }
    edi_sendq_detach(l->data.sq);
    l->data.sq = NULL;
    l->data.writable_pending = false;
    if (l->prev)
        l->prev->next = l->next;
    else
        nk->links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->prev = NULL;
    l->next = nk->dead_links;
    if (nk->dead_links)
        nk->dead_links->prev = l;
    nk->dead_links = l;
    if (l->epmd_conn)
        edi_conn_abort(l->epmd_conn, 0);
    /* A data lane of its own closes with the control connection (on TCP
     * the lane link is that connection). */
    if (l->data.link && !l->data.on_control_conn)
        edi_lane_link_close(l->data.link);
    /* Data on a second lane: TCP closes once the lane delivered it. */
    bool lingers = graceful && l->phase == L_UP && edi_nki_lane_linger(l, l->conn);
    edi_nki_lane_drop(l);
    if (l->conn && !lingers) {
        if (graceful)
            edi_conn_close(l->conn, nk->cfg.close_flush_ms);
        else
            edi_conn_abort(l->conn, 0);
    }
    l->epmd_conn = NULL;
    l->conn = NULL;
    /* Blocked senders learn the connection is gone (their callbacks may
     * not use l). */
    char detail[EDI_HS_NAME_MAX_BYTES + 64];
    snprintf(detail, sizeof detail, "connection to %s went down",
             edi_nki_link_label(l));
    edi_nki_fire_writable(l, EDIST_ECLOSED, detail);
    if (l->conns_open == 0)
        edi_nki_link_maybe_free(l);
}

static void fail_peer_ops(edi_nk *nk, const char *peer, int err,
                          const char *detail)
{
    nk_op *o = nk->ops;
    while (o) {
        nk_op *n = o->next;
        if ((o->kind == OP_PING) &&
            !strcmp(o->peer, peer))
            edi_nki_op_finish(nk, o, err, detail);
        o = n;
    }
}

/* The acceptor l verified a peer we had a connection to, and that old
 * connection is gone now: finish (net_kernel's wait_pending answered). */
void edi_nki_old_conn_gone(edi_link *l)
{
    l->phase = L_HANDSHAKE;
    if (edi_hs_old_conn_gone(&l->hs) != 0) {
        edi_nki_link_fail(
            l, EDIST_EPROTO,
            "handshake: cannot continue after the old connection");
        return;
    }
    edi_nki_hs_flush(l);
    if (edi_hs_get_state(&l->hs) == EDI_HS_DONE)
        edi_nki_handshake_done(l);
}

/* A connection that was up is gone. */
void edi_nki_link_down(edi_link *l, const char *reason, bool graceful)
{
    edi_nki_link_down_why(l, reason, graceful, NULL);
}

/* The same; why (may be NULL) says what went wrong, in the one line that
 * reports it (a warning then, not the routine node-down line). */
void edi_nki_link_down_why(edi_link *l, const char *reason, bool graceful,
                           const char *why)
{
    edi_nk *nk = l->nk;
    if (l->dead)
        return;
    edi_peer *p = l->peer;
    char name[EDI_HS_NAME_MAX_BYTES + 1], addr[sizeof l->addr];
    snprintf(name, sizeof name, "%s", l->peer_name);
    snprintf(addr, sizeof addr, "%s", l->addr);
    bool hidden = l->hidden;
    link_kill(l, graceful);
    if (!p || p->owner != l)
        return;
    uint64_t conn_id = p->conn_id;
    nk->stats.nodedowns++;
    if (nk->stats.connections_up)
        nk->stats.connections_up--;
    if (why)
        nk_log(nk, EDIST_LOG_WARNING, "node down: %s at %s (%s): %s", name, addr, reason,
               why);
    else
        nk_log(nk, EDIST_LOG_INFO, "node down: %s at %s (%s)", name, addr, reason);
    edi_link *waiting = p->state == EDI_PEER_UP_PENDING ? p->pending : NULL;
    /* Waiters of an UP entry: a nodeup callback took the connection down
     * before they were answered (connect, ping, auto-connection). */
    edi_peer_waiter *w = NULL;
    if (waiting) {
        p->state = EDI_PEER_PENDING;
        p->owner = waiting;
        p->pending = NULL;
    } else {
        p->owner = NULL;
        w = edi_ct_take_waiters(p);
        edi_ct_remove(&nk->table, p);
    }
    char detail[EDI_HS_NAME_MAX_BYTES + 64];
    snprintf(detail, sizeof detail, "connection to %s went down (%s)", name,
             reason);
    while (w) {
        edi_peer_waiter *n = w->next;
        nk_op *o = edi_nki_op_find(nk, w->id);
        free(w);
        if (o)
            edi_nki_op_connected(nk, o, EDIST_ECLOSED, detail);
        w = n;
    }
    fail_peer_ops(nk, name, EDIST_ECLOSED, detail);
    if (nk->rt_ops && nk->rt_ops->node_down)
        nk->rt_ops->node_down(nk->rt_user, name);
    edi_nki_emit_event(nk, false, name, hidden, reason, 0, conn_id);
    if (waiting && !waiting->dead && waiting->phase == L_WAIT_OLD)
        edi_nki_old_conn_gone(waiting);
    edi_nki_shutdown_check(nk);
}

/* A connection that never came up failed. */
void edi_nki_link_fail(edi_link *l, int err, const char *detail)
{
    edi_nk *nk = l->nk;
    if (l->dead)
        return;
    edi_peer *p = l->peer;
    bool owner = p && p->owner == l && p->state == EDI_PEER_PENDING;
    bool quiet = err == EDIST_EEXIST; /* lost a simultaneous connect: normal */
    if (!quiet) {
        nk->stats.handshakes_refused++;
        if (err == EDIST_EAUTH)
            nk->stats.handshakes_refused_auth++;
        else if (err == EDIST_EPROTO || err == EDIST_EBADTAG || err == EDIST_ETRUNC)
            nk->stats.handshakes_refused_protocol++;
        else if (err == EDIST_ETIMEDOUT)
            nk->stats.handshakes_timed_out++;
        /* "dropped" when it ran out of time, "refused" when we said no. */
        const char *what = err == EDIST_ETIMEDOUT ? "dropped"
                           : err == EDIST_ECLOSED ? "closed"
                                                  : "refused";
        if (l->role == EDI_HS_ACCEPTOR)
            edi_nki_log_limited(nk,
                                !l->named && err == EDIST_ETIMEDOUT
                                    ? NK_RL_FIRST_MESSAGE
                                    : NK_RL_INCOMING_FAILED,
                                err == EDIST_EAUTH ? EDIST_LOG_WARNING : EDIST_LOG_INFO,
                                "connection from %s %s: %s", l->addr, what, detail);
        else
            nk_log(nk, err == EDIST_EAUTH ? EDIST_LOG_WARNING : EDIST_LOG_INFO,
                   "connection to %s at %s failed: %s", l->peer_name, l->addr, detail);
    } else {
        nk_log(nk, EDIST_LOG_DEBUG, "connection %s %s dropped: %s",
               l->role == EDI_HS_ACCEPTOR ? "from" : "to",
               edi_nki_link_label(l), detail);
    }
    /* Whatever the machine queued last (nok, not_allowed) tells the peer
     * why; send it before closing. */
    bool flush = false;
    if (l->conn && l->phase != L_LOOKUP) {
        size_t len;
        const uint8_t *out = edi_hs_output(&l->hs, &len);
        if (out && len && edi_conn_send_raw(l->conn, out, len) == 0) {
            edi_hs_output_done(&l->hs, len);
            flush = true;
        }
    }
    link_kill(l, flush);
    if (p && p->pending == l && p->state == EDI_PEER_UP_PENDING) {
        p->state = EDI_PEER_UP;
        p->pending = NULL;
    } else if (owner) {
        p->owner = NULL;
        if (err == EDIST_EEXIST && l->role == EDI_HS_INITIATOR) {
            /* The peer's own attempt to reach us wins the simultaneous
             * connect: keep the entry (and its waiters) for it. */
            p->orphan_deadline_ms =
                edi_loop_now_ms(nk->loop) + nk->cfg.setuptime_ms;
        } else {
            edi_nki_peer_waiters_done(nk, p, err, detail);
        }
    }
    edi_nki_shutdown_check(nk);
}

/* The pending entry p is resolved with err: tell its waiters, drop it. */
void edi_nki_peer_waiters_done(edi_nk *nk, edi_peer *p, int err,
                               const char *detail)
{
    edi_peer_waiter *w = edi_ct_take_waiters(p);
    edi_ct_remove(&nk->table, p);
    while (w) {
        edi_peer_waiter *n = w->next;
        nk_op *o = edi_nki_op_find(nk, w->id);
        free(w);
        if (o) {
            /* Ops react to the connect outcome (see edi_nki_op_connected). */
            edi_nki_op_connected(nk, o, err, detail);
        }
        w = n;
    }
}

void edi_nki_setup_timeout(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    edi_link *l = arg;
    if (l->dead)
        return;
    char detail[512];
    if (l->phase == L_LOOKUP) {
        snprintf(detail, sizeof detail,
                 l->lookup ? "cannot resolve the host of %s within %u ms"
                           : "no answer from the port mapper of %s within %u ms",
                 l->peer_name, l->nk->cfg.setuptime_ms);
        edi_nki_link_fail(l, EDIST_ETIMEDOUT, detail);
        return;
    }
    int rc = edi_hs_timeout(&l->hs);
    /* An incoming connection's first deadline is the short one for its
     * name (hook_accept moves it on to the setup time). */
    bool first = l->role == EDI_HS_ACCEPTOR && !l->named;
    if (first)
        l->nk->stats.first_message_timeouts++;
    snprintf(detail, sizeof detail, "%s (%s %u ms)", edi_hs_error(&l->hs),
             first ? "first message time" : "setup time",
             first ? l->nk->cfg.first_message_time_ms
                   : l->nk->cfg.setuptime_ms);
    edi_nki_link_fail(l, rc ? rc : EDIST_ETIMEDOUT, detail);
}

edi_link *edi_nki_link_new(edi_nk *nk, edi_hs_role role)
{
    edi_link *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->nk = nk;
    l->role = role;
    l->started_ms = edi_loop_now_ms(nk->loop);
    edi_timer_init(&l->setup_timer);
    edi_timer_init(&l->data.pump_timer);
    l->next = nk->links;
    if (nk->links)
        nk->links->prev = l;
    nk->links = l;
    edi_loop_timer_start(nk->loop, &l->setup_timer, nk->cfg.setuptime_ms, 0,
                         edi_nki_setup_timeout, l);
    return l;
}

/* ---- incoming ------------------------------------------------------------ */

/* Admission before authentication, as the port mapper does it: an
 * unauthenticated peer may hold a slot only while it is worth keeping.
 * When the scope a newcomer would overfill (its address, else the whole
 * table) is full, that scope's oldest connection that is not doing real
 * work makes room: one that has not sent its name, or one that sent it
 * more than first_message_time ago and still has not answered our
 * challenge (a real peer answers within a round trip; a name alone proves
 * nothing, and held slots for the whole setup time). Only a scope in
 * which every connection is doing real work refuses the newcomer. False:
 * fd must be closed. */
static bool evictable(const edi_nk *nk, const edi_link *l, uint64_t now)
{
    return !l->named || now - l->named_ms >= nk->cfg.first_message_time_ms;
}

static bool admit(edi_nk *nk, const char *ip, const char *addr)
{
    if (nk->shutting_down) {
        nk->stats.handshakes_refused++;
        edi_nki_log_limited(nk, NK_RL_REFUSED, EDIST_LOG_WARNING,
                            "connection from %s refused: the node is stopping",
                            addr);
        return false;
    }
    size_t from_ip = 0;
    edi_link *oldest = NULL, *oldest_from_ip = NULL;
    uint64_t now = edi_loop_now_ms(nk->loop);
    for (edi_link *l = nk->in_head; l; l = l->in_next) {
        bool same = !strcmp(l->ip, ip);
        from_ip += same;
        bool gone = evictable(nk, l, now);
        if (gone && !oldest)
            oldest = l;
        if (gone && same && !oldest_from_ip)
            oldest_from_ip = l;
    }
    bool address_full = from_ip >= nk->cfg.max_handshakes_per_address;
    if (!address_full && nk->in_count < nk->cfg.max_handshakes)
        return true;
    char scope[INET6_ADDRSTRLEN + 96];
    if (address_full)
        snprintf(scope, sizeof scope,
                 "%zu handshakes in progress from %s "
                 "(max_handshakes_per_address)",
                 from_ip, ip);
    else
        snprintf(scope, sizeof scope,
                 "%zu handshakes in progress (max_handshakes)", nk->in_count);
    edi_link *victim = address_full ? oldest_from_ip : oldest;
    if (!victim) {
        nk->stats.handshakes_refused++;
        if (address_full)
            nk->stats.handshakes_refused_address++;
        else
            nk->stats.handshakes_refused_full++;
        edi_nki_log_limited(
            nk, NK_RL_REFUSED, EDIST_LOG_WARNING,
            "connection from %s refused: %s, each past its name and not yet "
            "slow to answer the challenge", addr, scope);
        return false;
    }
    nk->stats.handshakes_evicted++;
    if (!victim->named) {
        nk->stats.handshakes_refused++;
        edi_nki_log_limited(
            nk, NK_RL_EVICTED, EDIST_LOG_WARNING,
            "connection from %s evicted before it sent its name: %s; "
            "making room for %s",
            victim->addr, scope, addr);
        /* It owns no table entry and nobody waits for it. */
        link_kill(victim, false);
        return true;
    }
    /* Named: it may own the peer's entry, which the failure hands back. */
    char why[INET6_ADDRSTRLEN + 240];
    snprintf(why, sizeof why,
             "evicted: it sent its name %llu ms ago and has not answered the challenge; "
             "%s; making room for %s",
             (unsigned long long)(now - victim->named_ms), scope, addr);
    nk->stats.handshakes_evicted_named++;
    edi_nki_link_fail(victim, EDIST_ETIMEDOUT, why);
    return true;
}

void edi_nk_accept(edi_nk *nk, int fd, const char *ip, uint16_t port)
{
    char addr[INET6_ADDRSTRLEN + 8];
    snprintf(addr, sizeof addr, "%s:%u", ip, port);
    if (!admit(nk, ip, addr)) {
        close(fd);
        edi_nki_shutdown_check(nk);
        return;
    }
    edi_link *l = edi_nki_link_new(nk, EDI_HS_ACCEPTOR);
    if (!l) {
        close(fd);
        return;
    }
    l->phase = L_HANDSHAKE;
    snprintf(l->ip, sizeof l->ip, "%s", ip);
    snprintf(l->addr, sizeof l->addr, "%s", addr);
    l->incoming = true;
    l->in_prev = nk->in_tail;
    if (nk->in_tail)
        nk->in_tail->in_next = l;
    else
        nk->in_head = l;
    nk->in_tail = l;
    nk->in_count++;
    edi_loop_timer_start(nk->loop, &l->setup_timer,
                         nk->cfg.first_message_time_ms, 0,
                         edi_nki_setup_timeout, l);
    edi_hs_config hc;
    edi_nki_hs_config(nk, l, &hc);
    if (edi_hs_init(&l->hs, &hc) != 0) {
        close(fd);
        edi_nki_link_fail(l, edi_hs_error_code(&l->hs), edi_hs_error(&l->hs));
        return;
    }
    if (edi_conn_adopt(nk->loop, fd, &edi_nki_dist_ops, l, &l->conn) != 0) {
        edi_nki_link_fail(l, EDIST_ENOMEM, "cannot adopt the socket");
        return;
    }
    l->conns_open++;
    nk->conns_open++;
}
