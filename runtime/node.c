/* SPDX-License-Identifier: Apache-2.0 */
/* The public node API: start-up (name, cookie, listener, port mapper), the
 * shard thread that runs the node's loop, and the calls other threads make
 * into it (posted to the loop, waited for with a timeout). The behaviour of
 * a node lives in control/netkernel.c. */
#include "edist/node.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "control/cookie.h"
#include "control/epmd_client.h"
#include "control/epmd_server.h"
#include "control/handshake.h"
#include "control/dist_flags.h"
#include "control/dist_build.h"
#include "control/dist_msg.h"
#include "control/netkernel.h"
#include "dataplane/uring/tcp.h"
#include "edist/proc.h"
#include "runtime/runtime_internal.h"
#include "runtime/services.h"

/* Port mapper registration: how long to wait for the embedded one we
 * started to answer, and how long a stop may take to say goodbye. */
#define NODE_EPMD_START_WAIT_MS 3000
#define NODE_STOP_GRACE_MS 3000u
/* Slack added to a call's own timeout before the waiting thread gives up
 * on the loop (the loop times the operation itself). */
#define NODE_CALL_SLACK_MS 2000

struct edist_node {
    edist_node_config cfg; /* strings below are copies */
    char name[EDI_HS_NAME_MAX_BYTES + 1];
    char listen_address[INET6_ADDRSTRLEN];
    uint32_t creation;
    uint16_t listen_port;
    uint16_t epmd_port;
    edi_cookies *cookies;
    edi_loop *loop;
    edi_nk *nk;
    edi_listener *listener;
    edi_conn *epmd_conn;
    edist_node_writable_fn writable_fn; /* loop thread */
    void *writable_user;
    pthread_t thread;
    bool thread_started;
    atomic_bool stopping; /* set by edist_node_stop, read on the loop */
    /* The process runtime on the node's loop, and what its hooks use to
     * build frames (loop thread). */
    edi_rt *rt;
    edi_services *services;
    edist_procid node_watcher; /* told of nodeup/nodedown (the pg scope) */
    edist_buf rt_frame;
    uint64_t rt_unlink_id;
    /* Auto-connection: signals for nodes being connected to (loop
     * thread), bounded; the attempts by node index (looked at on every
     * remote signal while any is under way). */
    edi_htab connecting;
    size_t deferred_count, deferred_bytes;

    /* base: the one logger, from cfg.log, log_user and log_level; the
     * loop, the net kernel and the runtime get a copy. */
    edi_log log;
};

typedef enum call_kind {
    C_CONNECT = 1,
    C_PING,
    C_DISCONNECT,
    C_SET_COOKIE,
    C_NODES,
    C_MONITOR_NODES,
    C_MONITOR_NODE,
    C_DEMONITOR,
    C_SET_HANDLER,
    C_SET_WRITABLE,
    C_SEND_REG,
    C_STATS,
    C_PEER_STATS,
    C_STOP,
} call_kind;

typedef struct api_call api_call;
static api_call *call_new(edist_node *n, call_kind kind);
static void call_unref(api_call *c);
static int call_exec_mode(api_call *c, int wait_ms, bool allow_inline);

/* ---- configuration ------------------------------------------------------- */

void edist_node_config_init(edist_node_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->start_epmd = true;
    cfg->publish = true;
    cfg->net_ticktime_ms = EDIST_NODE_TICKTIME_MS_DEFAULT;
    cfg->net_setuptime_ms = EDIST_NODE_SETUPTIME_MS_DEFAULT;
    cfg->connect_all = true;
    cfg->send_queue_limit_bytes = EDIST_NODE_SEND_QUEUE_LIMIT_BYTES_DEFAULT;
    cfg->lane_queue_limit_bytes = EDIST_NODE_LANE_QUEUE_LIMIT_BYTES_DEFAULT;
    cfg->fragment_bytes = EDIST_NODE_FRAGMENT_BYTES_DEFAULT;
    cfg->reassembly_limit_bytes = EDIST_NODE_REASSEMBLY_LIMIT_BYTES_DEFAULT;
    cfg->max_message_bytes = EDIST_NODE_MAX_MESSAGE_BYTES_DEFAULT;
    cfg->rx_buffers = EDIST_NODE_RX_BUFFERS_DEFAULT;
    cfg->idle = EDIST_IDLE_ADAPTIVE;
    cfg->log_level = EDIST_LOG_INFO;
    cfg->services = true;
    cfg->first_message_time_ms = EDIST_NODE_FIRST_MESSAGE_TIME_MS_DEFAULT;
    cfg->max_handshakes = EDIST_NODE_MAX_HANDSHAKES_DEFAULT;
    cfg->max_handshakes_per_address =
        EDIST_NODE_MAX_HANDSHAKES_PER_ADDRESS_DEFAULT;
}

/* max_message_bytes bounds the message term; the control message and
 * framing around it get this much more, so that a term of exactly the
 * limit (a <<_:1 GiB>> binary) still passes. */
#define MESSAGE_HEADER_ROOM_BYTES ((size_t)1 << 20)

/* Bytes of one incoming distribution message at most, framing included. */
static size_t node_max_message_bytes(const edist_node_config *cfg)
{
    return (cfg->max_message_bytes ? cfg->max_message_bytes
                                   : EDIST_NODE_MAX_MESSAGE_BYTES_DEFAULT) +
           MESSAGE_HEADER_ROOM_BYTES;
}

/* Fragments held per peer at most (a message larger than this is over
 * the limit too: the reassembler clips one to the other). */
static size_t node_reassembly_limit_bytes(const edist_node_config *cfg)
{
    return cfg->reassembly_limit_bytes ? cfg->reassembly_limit_bytes
                                       : EDIST_NODE_REASSEMBLY_LIMIT_BYTES_DEFAULT;
}

/* erl's rules for the part before '@' (net_kernel valid_name_head). */
static bool name_head_ok(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
              (c >= 'A' && c <= 'Z') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* and for the host part (validate_hostname: characters ! .. 0xff). */
static bool host_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s == 0x7f)
            return false;
    return true;
}

/* The full node name as erl makes it from -sname/-name. */
static int full_name(const char *name, bool long_names, char *out, size_t cap)
{
    if (!name || !*name)
        return edist_set_error(EDIST_EINVAL, "no node name");
    const char *at = strchr(name, '@');
    size_t head_len = at ? (size_t)(at - name) : strlen(name);
    if (!name_head_ok(name, head_len))
        return edist_set_error(
            EDIST_EINVAL,
            "invalid node name '%s': the part before '@' may only "
            "hold letters, digits, '_' and '-'",
            name);
    char host[256];
    if (at) {
        snprintf(host, sizeof host, "%s", at + 1);
        if (!host_ok(host) || strchr(host, '@'))
            return edist_set_error(EDIST_EINVAL,
                                   "invalid host in node name '%s'", name);
        if (!long_names && strchr(host, '.'))
            return edist_set_error(
                EDIST_EINVAL,
                "short node name '%s' has a dotted host: use --name "
                "for long names",
                name);
    } else {
        if (gethostname(host, sizeof host) != 0 || !host[0])
            return edist_set_error(EDIST_EINVAL, "cannot get this host's name");
        host[sizeof host - 1] = '\0';
        if (!long_names) {
            char *dot = strchr(host, '.');
            if (dot)
                *dot = '\0';
        } else if (!strchr(host, '.')) {
            struct addrinfo hints = {.ai_flags = AI_CANONNAME};
            struct addrinfo *res = NULL;
            bool ok = false;
            if (getaddrinfo(host, NULL, &hints, &res) == 0 && res &&
                res->ai_canonname && strchr(res->ai_canonname, '.')) {
                snprintf(host, sizeof host, "%s", res->ai_canonname);
                ok = true;
            }
            if (res)
                freeaddrinfo(res);
            if (!ok)
                return edist_set_error(
                    EDIST_EINVAL,
                    "cannot set a long node name: this host (%s) has no "
                    "fully qualified name; give --name %.*s@HOST",
                    host, (int)head_len, name);
        }
    }
    int n = snprintf(out, cap, "%.*s@%s", (int)head_len, name, host);
    if (n < 0 || (size_t)n >= cap || !edi_hs_node_name_ok(out, (size_t)n))
        return edist_set_error(EDIST_EINVAL, "node name '%s' too long", name);
    return 0;
}

/* ---- the shard thread ---------------------------------------------------- */

static void *shard_main(void *arg)
{
    edist_node *n = arg;
    edi_rt_shard_thread_init(n->rt); /* shard 0: pinned if asked */
    int rc = edi_loop_run(n->loop);
    if (rc)
        edi_logf(&n->log, EDIST_LOG_ERROR, "node loop failed: %s: %s",
                 edist_strerror(rc), edist_last_error());
    return NULL;
}

static void on_accept(edi_listener *l, int fd,
                      const struct sockaddr_storage *peer, void *user)
{
    (void)l;
    edist_node *n = user;
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (peer->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)peer;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
        port = ntohs(sin->sin_port);
    } else if (peer->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)peer;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
        port = ntohs(sin6->sin6_port);
    }
    edi_nk_accept(n->nk, fd, host, (uint16_t)port);
}

/* The registration socket: the port mapper never speaks on it; if it
 * closes, the node is no longer registered. */
static size_t epmd_conn_bytes(edi_conn *c, void *user, const uint8_t *data,
                              size_t len)
{
    (void)c;
    (void)user;
    (void)data;
    return len;
}

static void epmd_conn_close(edi_conn *c, void *user, int reason)
{
    (void)c;
    edist_node *n = user;
    n->epmd_conn = NULL;
    if (!atomic_load(&n->stopping))
        edi_logf(
            &n->log, EDIST_LOG_WARNING,
            "the port mapper closed our registration (%s): %s is no longer "
            "registered; peers that know our port can still connect",
            edist_strerror(reason), n->name);
}

static const edi_conn_ops epmd_conn_ops = {
    .on_bytes = epmd_conn_bytes,
    .on_close = epmd_conn_close,
};

/* ALIVE2 with the port mapper on this host; start the embedded one if
 * nothing answers (as erl starts epmd). */
static int register_name(edist_node *n, int *fd)
{
    char shortname[EDI_HS_NAME_MAX_BYTES + 1];
    snprintf(shortname, sizeof shortname, "%s", n->name);
    *strchr(shortname, '@') = '\0';
    edi_epmd_registration reg = {
        .name = shortname,
        .listen_port = n->listen_port,
        .node_type = n->cfg.hidden ? EDI_EPMD_NODE_TYPE_HIDDEN
                                   : EDI_EPMD_NODE_TYPE_NORMAL,
        .protocol = EDI_EPMD_PROTOCOL_TCP,
    };
    int rc = edi_epmd_register(NULL, n->epmd_port, &reg, 0, &n->creation, fd);
    if (rc != EDIST_EIO || !n->cfg.start_epmd)
        goto out;
    /* As erl starts epmd: on the addresses epmd would read, and (unlike
     * epmd) not for ever: it goes once no node has been registered for a
     * while, so it neither outlives the nodes it serves by much nor takes
     * their registrations down with the node that started it. */
    const char *addresses = n->cfg.epmd_address;
    if (!addresses || !addresses[0])
        addresses = getenv("ERL_EPMD_ADDRESS");
    edi_epmd_server_config sc = {
        .port = n->epmd_port,
        .addresses = addresses,
        .idle_exit_ms = n->cfg.epmd_idle_exit_ms
                            ? n->cfg.epmd_idle_exit_ms
                            : EDIST_NODE_EPMD_IDLE_EXIT_MS_DEFAULT,
    };
    pid_t pid;
    int src = edi_epmd_daemon_start(&sc, &pid);
    if (src == 0)
        edi_logf(&n->log, EDIST_LOG_INFO,
                 "no port mapper answered on port %u: started the embedded one "
                 "(pid %d) on %s; it exits %u ms after the last node "
                 "registered with it is gone",
                 n->epmd_port, (int)pid,
                 addresses && addresses[strspn(addresses, " ,")]
                     ? addresses
                     : "every interface",
                 sc.idle_exit_ms);
    else if (src != EDIST_EEXIST) /* another node raced us to it: fine */
        return edist_error_prefix(
            src, "no port mapper on port %u and cannot start one",
            n->epmd_port);
    int64_t deadline = (int64_t)edi_now_ms() + NODE_EPMD_START_WAIT_MS;
    do {
        rc = edi_epmd_register(NULL, n->epmd_port, &reg, 0, &n->creation, fd);
        if (rc != EDIST_EIO)
            break;
        usleep(20 * 1000);
    } while ((int64_t)edi_now_ms() < deadline);
out:
    if (rc == EDIST_EEXIST)
        return edist_set_error(
            rc, "the name %s is in use on this host (port mapper on port %u)",
            shortname, n->epmd_port);
    if (rc)
        return edist_error_prefix(
            rc, "cannot register %s with the port mapper on port %u",
            shortname, n->epmd_port);
    return 0;
}

static void rt_connecting_free_all(edist_node *n);

static void node_free(edist_node *n)
{
    if (n->rt)
        edi_rt_free(n->rt); /* the loop no longer runs */
    edi_services_free(n->services); /* after the runtime, as it asks */
    rt_connecting_free_all(n);
    edist_buf_free(&n->rt_frame);
    if (n->nk)
        edi_nk_free(n->nk);
    if (n->loop)
        edi_loop_free(n->loop);
    if (n->cookies)
        edi_cookies_free(n->cookies);
    free(n);
}

/* ---- the process runtime wired to the net kernel -------------------------
 * The runtime's hooks build distribution messages for the connection to
 * the target's node and queue them on the sending process's stream (its
 * pid id: per-sender order, PROTOCOL-NOTES §4); messages arriving from
 * peers go to the runtime's entry points, their payloads handed over as
 * views of the receive buffer (referenced, not copied). All on the loop
 * thread. A hook for a node we are not connected to fails: the runtime
 * then answers with noconnection itself. */

static void rt_rxbuf_ref(void *owner)
{
    edi_rxbuf_ref(owner);
}

static void rt_rxbuf_unref(void *owner, const void *data)
{
    (void)data;
    edi_rxbuf_unref(owner);
}

static int rt_pid_view(edist_procid p, edi_dist_term_scratch *s,
                       edist_term_view *out)
{
    edist_pid pid;
    edist_procid_to_pid(p, &pid);
    return edi_dist_pid_view(&pid, s, out);
}

static int rt_view_procid(edist_term_view v, edist_procid *out)
{
    edist_pid pid;
    int rc = edi_dist_view_pid(v, &pid);
    return rc ? rc : edist_procid_from_pid(&pid, out);
}

/* Peer name of an interned node index, and that connection's flags;
 * admit_len > 0: EDIST_EAGAIN if a message of
 * that size finds no room in the peer's queue (refused before its frame
 * is built: a sender waiting for room, as the services do, would
 * otherwise copy a large message on every try). */
static int rt_peer(edist_node *n, uint32_t node, char *peer, size_t cap,
                   uint64_t *flags, size_t admit_len)
{
    size_t len = 0;
    peer[0] = 0;
    const char *name = edi_rt_node_name(node, &len);
    if (!name || len == 0 || len >= cap)
        return edist_set_error(EDIST_ENOTFOUND, "unknown node %u", node);
    memcpy(peer, name, len);
    peer[len] = 0;
    return edi_nk_peer_flags(n->nk, peer, admit_len, flags);
}

static int rt_queue(edist_node *n, const char *peer, edist_procid sender,
                    bool force)
{
    return edi_nk_send_frame(n->nk, peer, sender.id, &n->rt_frame, force);
}

/* ---- auto-connection ------------------------------------------------------
 * A signal for a node we are not connected to starts the connection (as
 * erts auto-connects) and waits, copied, until it is up; then the hook runs
 * again. If the connection fails, the signals are dropped and the node is
 * reported down to the runtime: links and monitors made meanwhile fire with
 * noconnection. Bounded: beyond the limits a hook fails at once (the
 * runtime then answers noconnection itself). */
#define RT_DEFERRED_MAX 4096u
#define RT_DEFERRED_MAX_BYTES ((size_t)64 << 20)

typedef enum rt_kind {
    RK_SEND = 1,
    RK_REG_SEND,
    RK_LINK,
    RK_EXIT2,
    RK_MONITOR,
    RK_SPAWN,
} rt_kind;

typedef struct rt_deferred {
    struct rt_deferred *next;
    rt_kind kind;
    edist_procid a, b;
    uint32_t node;
    unsigned sflags;
    bool by_name;
    char name[256], module[256], function[256];
    uint8_t ref_bytes[64];
    size_t ref_len;
    size_t len;
    uint8_t data[];
} rt_deferred;

typedef struct rt_connecting {
    edi_hnode h; /* n->connecting, by node index */
    edist_node *n;
    uint32_t node;
    char peer[EDI_HS_NAME_MAX_BYTES + 1];
    bool posted, finished, starting;
    int result;
    rt_deferred *head, *tail;
} rt_connecting;

static int rt_hook_send(void *user, edist_procid from, edist_procid to,
                        const edi_rt_payload *msg);
static int rt_hook_reg_send(void *user, edist_procid from, uint32_t node,
                            const char *name, const edi_rt_payload *msg);
static int rt_hook_link(void *user, edist_procid from, edist_procid to);
static int rt_hook_exit2(void *user, edist_procid from, edist_procid to,
                         edist_term_view reason);
static int rt_hook_monitor(void *user, edist_procid watcher,
                           edist_procid target, uint32_t node,
                           const char *name, const edist_ref *ref);
static int rt_hook_spawn_request(void *user, edist_procid from, uint32_t node,
                                 const edist_ref *req_id, const char *module,
                                 const char *function, edist_term_view args,
                                 unsigned sflags);

static void rt_deferred_free_all(edist_node *n, rt_connecting *c)
{
    rt_deferred *d = c->head;
    while (d) {
        rt_deferred *next = d->next;
        n->deferred_count--;
        n->deferred_bytes -= d->len;
        free(d);
        d = next;
    }
    c->head = c->tail = NULL;
}

/* Node indexes are handed out in order, never chosen by a peer: a fixed
 * seed spreads them as well as any. */
static uint64_t rt_node_hash(uint32_t node)
{
    return edi_hash_bytes(&node, sizeof node, 0x636f6e6e);
}

/* The attempt to connect to node, or NULL. */
static rt_connecting *rt_connecting_find(edist_node *n, uint32_t node)
{
    if (n->connecting.count == 0)
        return NULL;
    uint64_t h = rt_node_hash(node);
    for (edi_hnode *x = edi_htab_next_with(&n->connecting, h, NULL); x;
         x = edi_htab_next_with(&n->connecting, h, x))
        if (((rt_connecting *)x)->node == node)
            return (rt_connecting *)x;
    return NULL;
}

static void rt_connecting_unlink(edist_node *n, rt_connecting *c)
{
    edi_htab_remove(&n->connecting, &c->h);
}

/* At node_free: attempts whose completion never ran (the loop stopped). */
static void rt_connecting_free_all(edist_node *n)
{
    for (size_t b = 0; n->connecting.buckets && b <= n->connecting.mask; b++) {
        edi_hnode *x = n->connecting.buckets[b];
        n->connecting.buckets[b] = NULL;
        while (x) {
            edi_hnode *next = x->next;
            rt_deferred_free_all(n, (rt_connecting *)x);
            free(x);
            x = next;
        }
    }
    edi_htab_destroy(&n->connecting);
}

/* Replay (or drop) the signals of a finished connection attempt, from a
 * post: never inside a hook or the net kernel's callbacks. */
static void rt_connect_finish(edi_loop *loop, void *arg)
{
    (void)loop;
    rt_connecting *c = arg;
    edist_node *n = c->n;
    rt_connecting_unlink(n, c);
    if (c->result) {
        rt_deferred_free_all(n, c);
        edi_rt_node_down(n->rt, c->node);
        free(c);
        return;
    }
    rt_deferred *d = c->head;
    c->head = c->tail = NULL;
    while (d) {
        rt_deferred *next = d->next;
        edist_ref ref;
        edist_cursor rc;
        edist_cursor_init(&rc, d->ref_bytes, d->ref_len);
        bool has_ref = d->ref_len && edist_dec_ref(&rc, &ref) == 0;
        edist_term_view v = {.ptr = d->data, .len = d->len};
        /* Forced: what waited for the connection is already bounded
         * (RT_DEFERRED_MAX_*) and cannot wait again without a gap; past
         * the forced allowance the connection goes down, visibly. */
        edi_rt_payload p = {.data = d->data, .len = d->len, .force = true};
        switch (d->kind) {
        case RK_SEND:
            rt_hook_send(n, d->a, d->b, &p);
            break;
        case RK_REG_SEND:
            rt_hook_reg_send(n, d->a, d->node, d->name, &p);
            break;
        case RK_LINK:
            rt_hook_link(n, d->a, d->b);
            break;
        case RK_EXIT2:
            rt_hook_exit2(n, d->a, d->b, v);
            break;
        case RK_MONITOR:
            if (has_ref)
                rt_hook_monitor(n, d->a, d->b, d->node,
                                d->by_name ? d->name : NULL, &ref);
            break;
        case RK_SPAWN:
            if (has_ref)
                rt_hook_spawn_request(n, d->a, d->node, &ref, d->module,
                                      d->function, v, d->sflags);
            break;
        }
        n->deferred_count--;
        n->deferred_bytes -= d->len;
        free(d);
        d = next;
    }
    free(c);
}

static void rt_connect_done(void *arg, int err, const char *detail)
{
    (void)detail;
    rt_connecting *c = arg;
    c->result = err;
    c->finished = true;
    if (edi_loop_post(c->n->loop, rt_connect_finish, c) == 0)
        c->posted = true;
    else if (!c->starting)
        rt_connect_finish(c->n->loop, c); /* no room to post: now */
}

/* Queue one signal for peer, starting the connection if none is under
 * way. Returns 0 (accepted) or a negative edist_err. */
static int rt_defer(edist_node *n, const char *peer, uint32_t node,
                    const rt_deferred *tmpl, const void *data, size_t len)
{
    if (atomic_load(&n->stopping) || n->deferred_count >= RT_DEFERRED_MAX ||
        n->deferred_bytes + len > RT_DEFERRED_MAX_BYTES)
        return edist_set_error(EDIST_ECLOSED, "not connected to %s", peer);
    rt_deferred *d = malloc(sizeof *d + len);
    if (!d)
        return edist_set_error(EDIST_ENOMEM, "no memory");
    *d = *tmpl;
    d->next = NULL;
    d->len = len;
    if (len)
        memcpy(d->data, data, len);
    rt_connecting *c = rt_connecting_find(n, node);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) {
            free(d);
            return edist_set_error(EDIST_ENOMEM, "no memory");
        }
        c->n = n;
        c->node = node;
        snprintf(c->peer, sizeof c->peer, "%s", peer);
        if (edi_htab_insert(&n->connecting, &c->h, rt_node_hash(node)) != 0) {
            free(c);
            free(d);
            return edist_set_error(EDIST_ENOMEM, "no memory");
        }
        /* A completion inside edi_nk_connect is posted, never run inside
         * this hook; if it cannot be posted, the signal fails now. */
        c->starting = true;
        int rc = edi_nk_connect(n->nk, peer, 0, rt_connect_done, c);
        c->starting = false;
        if (rc || (c->finished && !c->posted)) {
            rt_connecting_unlink(n, c);
            free(c);
            free(d);
            return rc ? rc : edist_set_error(EDIST_ECLOSED, "not connected");
        }
    }
    if (c->tail)
        c->tail->next = d;
    else
        c->head = d;
    c->tail = d;
    n->deferred_count++;
    n->deferred_bytes += len;
    return 0;
}

/* Does a signal for peer wait for a connection: not connected (worth
 * connecting), or signals of an attempt that just came up are still to be
 * replayed (this one must not overtake them)? */
static bool rt_can_defer_n(edist_node *n, int rc, const char *peer, uint32_t node)
{
    if (!peer[0])
        return false;
    if (rc == EDIST_ENOTFOUND)
        return true;
    return rt_connecting_find(n, node) != NULL;
}

/* A message on the send path: built once, by the net kernel, into
 * whatever memory will carry it. */
typedef struct rt_msg_build {
    edist_pid from_pid, to_pid;     /* a send to a pid */
    edist_term_view from, to_name;  /* reg_send */
    edist_term_view msg;
    bool by_name;
} rt_msg_build;

static int rt_build_msg(void *arg, edist_buf *out, uint64_t flags)
{
    const rt_msg_build *b = arg;
    if (b->by_name)
        return edi_dist_build_reg_send(out, flags, NULL, b->from, b->to_name,
                                       b->msg);
    return edi_dist_build_send_pids(out, flags, &b->from_pid, &b->to_pid,
                                    b->msg);
}

/* The frame's bytes at most: length prefix, header, control tuple and its
 * op, the two terms, the message and its version byte. */
static size_t rt_msg_max_bytes(const rt_msg_build *b)
{
    size_t terms = b->by_name ? b->from.len + b->to_name.len
                              : 2 * (3 + 12) + b->from_pid.node.len +
                                    b->to_pid.node.len;
    return 4 + 3 + 2 + 2 + terms + 1 + b->msg.len + 8;
}

/* Not connected (or still connecting): the signal waits, copied, for the
 * connection the runtime's first signal starts. */
static int rt_msg_defer(edist_node *n, edist_procid from, edist_procid to,
                        uint32_t node, const char *name,
                        const edi_rt_payload *msg, int rc)
{
    char peer[EDI_HS_NAME_MAX_BYTES + 1];
    uint64_t flags;
    int prc = rt_peer(n, node, peer, sizeof peer, &flags, 0);
    if (!rt_can_defer_n(n, prc, peer, node))
        return prc ? prc : rc;
    rt_deferred t = {.kind = name ? RK_REG_SEND : RK_SEND, .a = from, .b = to,
                     .node = node};
    if (name) {
        if (strlen(name) >= sizeof t.name)
            return edist_set_error(EDIST_EINVAL, "name too long");
        snprintf(t.name, sizeof t.name, "%s", name);
    }
    rc = rt_defer(n, peer, node, &t, msg->data, msg->len);
    if (rc == 0 && msg->release)
        msg->release(msg->owner, msg->data);
    return rc;
}

static int rt_send_msg(edist_node *n, edist_procid from, edist_procid to,
                       uint32_t node, const char *name,
                       const edi_rt_payload *msg)
{
    edi_dist_term_scratch fs, ts;
    rt_msg_build b = {.msg = {.ptr = msg->data, .len = msg->len},
                      .by_name = name != NULL};
    int rc = 0;
    if (name) {
        rc = rt_pid_view(from, &fs, &b.from);
        if (rc == 0)
            rc = edi_dist_atom_view(name, strlen(name), &ts, &b.to_name);
    } else {
        edist_procid_to_pid(from, &b.from_pid);
        edist_procid_to_pid(to, &b.to_pid);
    }
    if (rc)
        return rc;
    /* Signals waiting for the connection go first. */
    if (n->connecting.count && rt_connecting_find(n, node))
        return rt_msg_defer(n, from, to, node, name, msg, EDIST_ENOTFOUND);
    rc = edi_nk_send_signal(n->nk, node, from.id, rt_msg_max_bytes(&b),
                            rt_build_msg, &b, msg->force);
    if (rc == EDIST_ENOTFOUND)
        return rt_msg_defer(n, from, to, node, name, msg, rc);
    if (rc == 0 && msg->release)
        msg->release(msg->owner, msg->data); /* copied on the way out */
    return rc;
}

static int rt_hook_send(void *user, edist_procid from, edist_procid to,
                        const edi_rt_payload *msg)
{
    return rt_send_msg(user, from, to, to.node, NULL, msg);
}

static int rt_hook_reg_send(void *user, edist_procid from, uint32_t node,
                            const char *name, const edi_rt_payload *msg)
{
    return rt_send_msg(user, from, EDIST_PROCID_NULL, node, name, msg);
}

typedef enum rt_pair_op { RT_LINK, RT_UNLINK } rt_pair_op;

static int rt_pair(edist_node *n, rt_pair_op op, edist_procid from,
                   edist_procid to)
{
    char peer[EDI_HS_NAME_MAX_BYTES + 1];
    uint64_t flags;
    edi_dist_term_scratch fs, ts;
    edist_term_view fv, tv;
    int rc = rt_peer(n, to.node, peer, sizeof peer, &flags, 0);
    if (op == RT_LINK && rt_can_defer_n(n, rc, peer, to.node)) {
        rt_deferred t = {.kind = RK_LINK, .a = from, .b = to};
        return rt_defer(n, peer, to.node, &t, NULL, 0);
    }
    if (rc || (rc = rt_pid_view(from, &fs, &fv)) ||
        (rc = rt_pid_view(to, &ts, &tv)))
        return rc;
    edist_buf_reset(&n->rt_frame);
    if (op == RT_LINK)
        rc = edi_dist_build_link(&n->rt_frame, flags, fv, tv);
    else if (flags & EDI_DFLAG_UNLINK_ID)
        rc = edi_dist_build_unlink_id(&n->rt_frame, flags, ++n->rt_unlink_id,
                                      fv, tv);
    else
        rc = edi_dist_build_unlink(&n->rt_frame, flags, fv, tv);
    return rc ? rc : rt_queue(n, peer, from, true);
}

static int rt_hook_link(void *user, edist_procid from, edist_procid to)
{
    return rt_pair(user, RT_LINK, from, to);
}

static int rt_hook_unlink(void *user, edist_procid from, edist_procid to)
{
    return rt_pair(user, RT_UNLINK, from, to);
}

static int rt_exit_any(edist_node *n, bool exit2, edist_procid from,
                       edist_procid to, edist_term_view reason)
{
    char peer[EDI_HS_NAME_MAX_BYTES + 1];
    uint64_t flags;
    edi_dist_term_scratch fs, ts;
    edist_term_view fv, tv;
    int rc = rt_peer(n, to.node, peer, sizeof peer, &flags, 0);
    if (exit2 && rt_can_defer_n(n, rc, peer, to.node)) {
        rt_deferred t = {.kind = RK_EXIT2, .a = from, .b = to};
        return rt_defer(n, peer, to.node, &t, reason.ptr, reason.len);
    }
    if (rc || (rc = rt_pid_view(from, &fs, &fv)) ||
        (rc = rt_pid_view(to, &ts, &tv)))
        return rc;
    edist_buf_reset(&n->rt_frame);
    rc = exit2 ? edi_dist_build_exit2(&n->rt_frame, flags, NULL, fv, tv, reason)
               : edi_dist_build_exit(&n->rt_frame, flags, NULL, fv, tv, reason);
    return rc ? rc : rt_queue(n, peer, from, true);
}

static int rt_hook_exit(void *user, edist_procid from, edist_procid to,
                        edist_term_view reason)
{
    return rt_exit_any(user, false, from, to, reason);
}

static int rt_hook_exit2(void *user, edist_procid from, edist_procid to,
                         edist_term_view reason)
{
    return rt_exit_any(user, true, from, to, reason);
}

static int rt_mon_any(edist_node *n, bool demon, edist_procid watcher,
                      edist_procid target, uint32_t node, const char *name,
                      const edist_ref *ref)
{
    char peer[EDI_HS_NAME_MAX_BYTES + 1];
    uint64_t flags;
    edi_dist_term_scratch ws, ts, rs;
    edist_term_view wv, tv, rv;
    uint32_t where = name ? node : target.node;
    int rc = rt_peer(n, where, peer, sizeof peer, &flags, 0);
    if (!demon && rt_can_defer_n(n, rc, peer, where) && (!name || strlen(name) < 256)) {
        rt_deferred t = {.kind = RK_MONITOR, .a = watcher, .b = target,
                         .node = node, .by_name = name != NULL};
        if (name)
            snprintf(t.name, sizeof t.name, "%s", name);
        edist_buf rb;
        edist_buf_init_fixed(&rb, t.ref_bytes, sizeof t.ref_bytes);
        if (edist_enc_ref(&rb, ref) == 0 && !edist_buf_error(&rb)) {
            t.ref_len = rb.len;
            return rt_defer(n, peer, where, &t, NULL, 0);
        }
    }
    if (rc || (rc = rt_pid_view(watcher, &ws, &wv)) ||
        (rc = edi_dist_ref_view(ref, &rs, &rv)))
        return rc;
    rc = name ? edi_dist_atom_view(name, strlen(name), &ts, &tv)
              : rt_pid_view(target, &ts, &tv);
    if (rc)
        return rc;
    edist_buf_reset(&n->rt_frame);
    rc = demon ? edi_dist_build_demonitor_p(&n->rt_frame, flags, wv, tv, rv)
               : edi_dist_build_monitor_p(&n->rt_frame, flags, wv, tv, rv);
    return rc ? rc : rt_queue(n, peer, watcher, true);
}

static int rt_hook_monitor(void *user, edist_procid watcher,
                           edist_procid target, uint32_t node,
                           const char *name, const edist_ref *ref)
{
    return rt_mon_any(user, false, watcher, target, node, name, ref);
}

static int rt_hook_demonitor(void *user, edist_procid watcher,
                             edist_procid target, uint32_t node,
                             const char *name, const edist_ref *ref)
{
    return rt_mon_any(user, true, watcher, target, node, name, ref);
}

static int rt_hook_monitor_exit(void *user, edist_procid target,
                                edist_procid watcher, const char *name,
                                const edist_ref *ref, edist_term_view reason)
{
    edist_node *n = user;
    char peer[EDI_HS_NAME_MAX_BYTES + 1];
    uint64_t flags;
    edi_dist_term_scratch ws, ts, rs;
    edist_term_view wv, tv, rv;
    int rc = rt_peer(n, watcher.node, peer, sizeof peer, &flags, 0);
    if (rc || (rc = rt_pid_view(watcher, &ws, &wv)) ||
        (rc = edi_dist_ref_view(ref, &rs, &rv)))
        return rc;
    /* A monitor by name reports the name as the one that went down. */
    rc = name ? edi_dist_atom_view(name, strlen(name), &ts, &tv)
              : rt_pid_view(target, &ts, &tv);
    if (rc)
        return rc;
    edist_buf_reset(&n->rt_frame);
    rc = edi_dist_build_monitor_p_exit(&n->rt_frame, flags, tv, wv, rv,
                                       reason);
    return rc ? rc : rt_queue(n, peer, target, true);
}

static int rt_hook_spawn_request(void *user, edist_procid from, uint32_t node,
                                 const edist_ref *req_id, const char *module,
                                 const char *function, edist_term_view args,
                                 unsigned sflags)
{
    edist_node *n = user;
    char peer[EDI_HS_NAME_MAX_BYTES + 1];
    uint64_t flags;
    edi_dist_term_scratch fs, rs;
    edist_term_view fv, rv;
    int rc = rt_peer(n, node, peer, sizeof peer, &flags, 0);
    if (rt_can_defer_n(n, rc, peer, node) && strlen(module) < 256 &&
        strlen(function) < 256) {
        rt_deferred t = {.kind = RK_SPAWN, .a = from, .node = node,
                         .sflags = sflags};
        snprintf(t.module, sizeof t.module, "%s", module);
        snprintf(t.function, sizeof t.function, "%s", function);
        edist_buf rb;
        edist_buf_init_fixed(&rb, t.ref_bytes, sizeof t.ref_bytes);
        if (edist_enc_ref(&rb, req_id) == 0 && !edist_buf_error(&rb)) {
            t.ref_len = rb.len;
            return rt_defer(n, peer, node, &t, args.ptr, args.len);
        }
    }
    if (rc || (rc = rt_pid_view(from, &fs, &fv)) ||
        (rc = edi_dist_ref_view(req_id, &rs, &rv)))
        return rc;
    /* The argument count: the list's length (a proper list). */
    edist_cursor c;
    uint32_t count = 0;
    edist_cursor_init(&c, args.ptr, args.len);
    if (edist_dec_list(&c, &count) != 0)
        count = 0;
    uint8_t ob[64];
    edist_buf o;
    edist_buf_init_fixed(&o, ob, sizeof ob);
    unsigned nopt = ((sflags & EDI_SPAWN_LINK) ? 1u : 0u) +
                    ((sflags & EDI_SPAWN_MONITOR) ? 1u : 0u);
    if (nopt)
        edist_enc_list(&o, nopt);
    if (sflags & EDI_SPAWN_LINK)
        edist_enc_atomz(&o, "link");
    if (sflags & EDI_SPAWN_MONITOR)
        edist_enc_atomz(&o, "monitor");
    edist_enc_nil(&o);
    edist_term_view ov = {.ptr = o.data, .len = o.len};
    edist_buf_reset(&n->rt_frame);
    /* Our pid as group leader: io of the remote process is not served. */
    rc = edi_dist_build_spawn_request(&n->rt_frame, flags, NULL, rv, fv, fv,
                                      module, function, count, ov, args);
    return rc ? rc : rt_queue(n, peer, from, true);
}

static const edi_rt_hooks rt_hooks_template = {
    .send = rt_hook_send,
    .reg_send = rt_hook_reg_send,
    .link = rt_hook_link,
    .unlink = rt_hook_unlink,
    .exit = rt_hook_exit,
    .exit2 = rt_hook_exit2,
    .monitor = rt_hook_monitor,
    .demonitor = rt_hook_demonitor,
    .monitor_exit = rt_hook_monitor_exit,
    .spawn_request = rt_hook_spawn_request,
};

/* ---- incoming ---- */

static unsigned rt_spawn_opts(edist_term_view opts)
{
    unsigned f = 0;
    edist_cursor oc;
    uint32_t n;
    if (!opts.ptr)
        return 0;
    edist_cursor_init(&oc, opts.ptr, opts.len);
    if (edist_dec_list(&oc, &n) != 0)
        return 0;
    for (uint32_t i = 0; i < n; i++) {
        edist_term_info info;
        if (edist_peek(&oc, &info))
            break;
        edist_atom a;
        uint32_t ar;
        edist_cursor save = oc;
        if (info.type == EDIST_TYPE_ATOM && edist_dec_atom(&oc, &a) == 0) {
            if (edist_atom_eq(&a, "link"))
                f |= EDI_SPAWN_LINK;
            if (edist_atom_eq(&a, "monitor"))
                f |= EDI_SPAWN_MONITOR;
            continue;
        }
        if (info.type == EDIST_TYPE_TUPLE && edist_dec_tuple(&oc, &ar) == 0 &&
            ar >= 1 && edist_dec_atom(&oc, &a) == 0 &&
            edist_atom_eq(&a, "monitor"))
            f |= EDI_SPAWN_MONITOR;
        oc = save;
        if (edist_skip(&oc))
            break;
    }
    return f;
}

static void rt_spawn_in(edist_node *n, const char *peer, uint64_t flags,
                        const edi_dist_msg *m)
{
    edist_procid parent;
    edist_ref req;
    if (rt_view_procid(m->from, &parent) || edi_dist_view_ref(m->ref, &req))
        return;
    unsigned sf = rt_spawn_opts(m->options);
    char mod[256], fun[256];
    if (m->spawn_module.len >= sizeof mod || m->spawn_function.len >= sizeof fun)
        return;
    memcpy(mod, m->spawn_module.ptr, m->spawn_module.len);
    mod[m->spawn_module.len] = 0;
    memcpy(fun, m->spawn_function.ptr, m->spawn_function.len);
    fun[m->spawn_function.len] = 0;
    edist_term_view args = m->payload;
    static const uint8_t nil = EDIST_TAG_NIL;
    if (!args.ptr) {
        args.ptr = &nil;
        args.len = 1;
    }
    edist_procid pid;
    /* The reply goes first on the new process's stream, so that the
     * exit/DOWN it may send at once follows it (the process runs only
     * once this handler returns to the loop). */
    int rc = edi_rt_spawn_export_for(n->rt, parent, mod, fun, args, sf, &req,
                                     &pid);
    edi_dist_term_scratch ps, es;
    edist_term_view result;
    uint32_t rf = 0;
    if (rc == 0) {
        rt_pid_view(pid, &ps, &result);
        rf = ((sf & EDI_SPAWN_LINK) ? EDI_SPAWN_FLAG_LINK : 0) |
             ((sf & EDI_SPAWN_MONITOR) ? EDI_SPAWN_FLAG_MONITOR : 0);
    } else {
        const char *why = rc == EDIST_ENOMEM ? "system_limit" : "badarg";
        edi_dist_atom_view(why, strlen(why), &es, &result);
        pid = EDIST_PROCID_NULL;
    }
    edist_buf_reset(&n->rt_frame);
    if (edi_dist_build_spawn_reply(&n->rt_frame, flags, NULL, m->ref, m->from,
                                   rf, result) == 0)
        edi_nk_send_frame(n->nk, peer, rc == 0 ? pid.id : EDI_NK_SELF_PID_ID,
                          &n->rt_frame, true);
}

static int rt_dispatch(void *user, const char *peer, uint64_t flags,
                       const edi_dist_msg *m, edi_rxbuf *rxbuf)
{
    edist_node *n = user;
    edist_procid from = EDIST_PROCID_NULL, to = EDIST_PROCID_NULL;
    /* Messages stay views of the shared receive buffer they arrived in;
     * when the pool runs low, every queued one is copied out and this one
     * is copied in: queued messages never starve the sockets. */
    bool scarce = rxbuf && edi_rxbuf_scarce(rxbuf);
    bool low = scarce && edi_loop_rx_low(n->loop);
    if (low)
        edi_rt_rx_pressure(n->rt);
    edi_rt_incoming in = {
        .data = m->payload.ptr,
        .len = m->payload.len,
        .ref = rxbuf ? rt_rxbuf_ref : NULL,
        .unref = rxbuf ? rt_rxbuf_unref : NULL,
        .owner = rxbuf,
        .scarce = scarce,
        .copy_now = low,
    };
    edist_ref ref;
    edist_term_view reason = m->reason;
    if (!reason.ptr)
        reason = m->payload;
    /* from and to were decoded by the parser; only their node names are
     * interned here (a cached lookup). */
    bool has_from = m->from_is_pid &&
                    edist_procid_from_pid(&m->from_pid, &from) == 0;
    bool has_to = m->to_is_pid && edist_procid_from_pid(&m->to_pid, &to) == 0;
    switch (m->sig) {
    case EDI_SIG_SEND:
        if (!m->payload.ptr)
            return 0;
        if (!has_to)
            return 0; /* ALIAS_SEND: aliases are not served yet */
        return edi_rt_deliver(n->rt, from, to, &in) == EDIST_ENOTFOUND
                   ? EDIST_ENOTFOUND
                   : 0;
    case EDI_SIG_REG_SEND: {
        edist_atom name;
        if (!m->payload.ptr || edi_dist_view_atom(m->to_name, &name))
            return 0;
        return edi_rt_deliver_name(n->rt, from, name.ptr, name.len, &in) ==
                       EDIST_ENOTFOUND
                   ? EDIST_ENOTFOUND
                   : 0;
    }
    case EDI_SIG_LINK:
        if (has_from && has_to)
            edi_rt_link_in(n->rt, from, to);
        return 0;
    case EDI_SIG_UNLINK:
        if (!has_from || !has_to)
            return 0;
        edi_rt_unlink_in(n->rt, from, to);
        if (m->op == EDI_DOP_UNLINK_ID) {
            edi_dist_term_scratch fs, ts;
            edist_term_view fv, tv;
            if (rt_pid_view(to, &fs, &fv) || rt_pid_view(from, &ts, &tv))
                return 0;
            edist_buf_reset(&n->rt_frame);
            if (edi_dist_build_unlink_id_ack(&n->rt_frame, flags, m->unlink_id,
                                             fv, tv) == 0)
                edi_nk_send_frame(n->nk, peer, to.id, &n->rt_frame, true);
        }
        return 0;
    case EDI_SIG_UNLINK_ACK:
        return 0; /* the runtime removed the link when it sent the unlink */
    case EDI_SIG_EXIT:
    case EDI_SIG_EXIT2:
        if (reason.ptr && has_from && has_to)
            edi_rt_exit_in(n->rt, from, to, reason, m->sig == EDI_SIG_EXIT2);
        return 0;
    case EDI_SIG_MONITOR: {
        edist_atom name;
        char nm[256];
        if (!has_from || edi_dist_view_ref(m->ref, &ref))
            return 0;
        if (edi_dist_view_atom(m->to, &name) == 0) {
            if (name.len >= sizeof nm)
                return 0;
            memcpy(nm, name.ptr, name.len);
            nm[name.len] = 0;
            edi_rt_monitor_in(n->rt, from, EDIST_PROCID_NULL, nm, &ref);
        } else if (has_to) {
            edi_rt_monitor_in(n->rt, from, to, NULL, &ref);
        }
        return 0;
    }
    case EDI_SIG_DEMONITOR:
        if (!has_from || edi_dist_view_ref(m->ref, &ref))
            return 0;
        /* by name: to stays null, the ref says which */
        edi_rt_demonitor_in(n->rt, from, to, &ref);
        return 0;
    case EDI_SIG_MONITOR_EXIT:
        /* from stays null for a monitor made by name */
        if (reason.ptr && has_to && edi_dist_view_ref(m->ref, &ref) == 0)
            edi_rt_monitor_exit_in(n->rt, from, to, &ref, reason);
        return 0;
    case EDI_SIG_SPAWN_REQUEST:
        rt_spawn_in(n, peer, flags, m);
        return 0;
    case EDI_SIG_SPAWN_REPLY: {
        edist_procid pid = EDIST_PROCID_NULL;
        if (!has_to || edi_dist_view_ref(m->ref, &ref))
            return 0;
        bool ok = rt_view_procid(m->result, &pid) == 0;
        unsigned f = ((m->flags & EDI_SPAWN_FLAG_LINK) ? EDI_SPAWN_LINK : 0) |
                     ((m->flags & EDI_SPAWN_FLAG_MONITOR) ? EDI_SPAWN_MONITOR
                                                          : 0);
        edi_rt_spawn_reply_in(n->rt, to, &ref, ok, pid, m->result, f);
        return 0;
    }
    default:
        return 0; /* GROUP_LEADER, ALTACT_SIG_SEND: not served */
    }
}

static void rt_node_down(void *user, const char *peer)
{
    edist_node *n = user;
    uint32_t idx;
    if (edi_rt_node_intern(peer, strlen(peer), &idx) == 0)
        edi_rt_node_down(n->rt, idx);
}

static bool rt_has_export(void *user, const edist_atom *module,
                          const edist_atom *function, uint32_t arity)
{
    edist_node *n = user;
    char mod[256], fun[256];
    if (module->len >= sizeof mod || function->len >= sizeof fun)
        return false;
    memcpy(mod, module->ptr, module->len);
    mod[module->len] = 0;
    memcpy(fun, function->ptr, function->len);
    fun[function->len] = 0;
    return edist_export_lookup((edist_runtime *)n->rt, mod, fun, arity, NULL,
                               NULL) == 0;
}

static bool rt_has_name(void *user, const edist_atom *name)
{
    edist_node *n = user;
    char nm[256];
    edist_procid pid;
    if (name->len >= sizeof nm)
        return false;
    memcpy(nm, name->ptr, name->len);
    nm[name->len] = 0;
    return edist_runtime_whereis((edist_runtime *)n->rt, nm, &pid) == 0;
}

/* ---- what the services ask of the node (loop thread) ---- */

static int svc_nodes(void *user, unsigned which, edi_services_node_fn add,
                     void *ctx)
{
    edist_node *n = user;
    unsigned sel = 0;
    if (which & EDI_NODES_VISIBLE)
        sel |= EDIST_NODES_VISIBLE;
    if (which & (EDI_NODES_HIDDEN | EDI_NODES_KNOWN))
        sel |= EDIST_NODES_HIDDEN;
    if (which & EDI_NODES_KNOWN)
        sel |= EDIST_NODES_VISIBLE;
    edist_node_list list = {0};
    int rc = edi_nk_nodes(n->nk, sel, &list);
    if (rc)
        return rc;
    for (size_t i = 0; i < list.count; i++)
        add(ctx, list.names[i], strlen(list.names[i]));
    edist_node_list_free(&list);
    return 0;
}

static bool svc_connected(void *user, const char *node)
{
    edist_node *n = user;
    return edi_nk_is_up(n->nk, node);
}

static bool svc_is_alive(void *user)
{
    (void)user;
    return true;
}

/* {nodeup, Node} / {nodedown, Node} to the watcher (loop thread). */
static void svc_node_event(void *user, const edist_node_event *ev)
{
    edist_node *n = user;
    uint8_t mem[EDIST_ATOM_MAX_BYTES + 32];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    edist_enc_tuple(&b, 2);
    edist_enc_atomz(&b, ev->up ? "nodeup" : "nodedown");
    edist_enc_atomz(&b, ev->node);
    if (edist_buf_error(&b) == 0)
        edist_runtime_send(n->rt, n->node_watcher, b.data, b.len);
}

static int svc_monitor_nodes(void *user, edist_procid pid)
{
    edist_node *n = user;
    uint64_t handle;
    n->node_watcher = pid;
    return edi_nk_monitor_nodes(n->nk, EDIST_NODES_VISIBLE, svc_node_event, n, &handle);
}

/* edist:stats/0's node part: totals, then peers => #{Peer => #{...}}. */
static int svc_stats(void *user, edist_buf *b, uint32_t *n)
{
    edist_node *node = user;
    edist_node_stats ns;
    int rc = edist_node_get_stats(node, &ns);
    if (rc)
        return rc;
    edi_services_stat(b, n, "connections_up", ns.connections_up);
    edi_services_stat(b, n, "nodeups", ns.nodeups);
    edi_services_stat(b, n, "nodedowns", ns.nodedowns);
    edi_services_stat(b, n, "handshakes_refused", ns.handshakes_refused);
    edi_services_stat(b, n, "messages_received", ns.messages_received);
    edi_services_stat(b, n, "messages_sent", ns.messages_sent);
    edi_services_stat(b, n, "messages_dropped", ns.messages_dropped);
    edi_services_stat(b, n, "bytes_received", ns.bytes_received);
    edi_services_stat(b, n, "bytes_sent", ns.bytes_sent);
    edi_services_stat(b, n, "send_queue_bytes", ns.send_queue_bytes);
    edi_services_stat(b, n, "sends_busy", ns.sends_busy);
    edi_services_stat(b, n, "fragments_sent", ns.fragments_sent);
    edi_services_stat(b, n, "fragments_received", ns.fragments_received);
    edi_services_stat(b, n, "rx_buffers", ns.rx_buffers);
    edi_services_stat(b, n, "rx_buffers_held", ns.rx_buffers_held);
    edi_services_stat(b, n, "rx_starved", ns.rx_starved);
    edi_services_stat(b, n, "messages_over_limit", ns.messages_over_limit);
    /* Admission of incoming connections. */
    edi_services_stat(b, n, "handshakes_evicted", ns.handshakes_evicted);
    edi_services_stat(b, n, "first_message_timeouts",
                      ns.first_message_timeouts);
    edi_services_stat(b, n, "handshakes_refused_address",
                      ns.handshakes_refused_address);
    edi_services_stat(b, n, "handshakes_refused_full",
                      ns.handshakes_refused_full);
    edi_services_stat(b, n, "messages_in_place", ns.messages_in_place);
    edi_services_stat(b, n, "lane_queue_full", ns.lane_queue_full);
    edist_node_list peers = {0};
    if ((rc = edi_nk_nodes(node->nk, EDIST_NODES_CONNECTED, &peers)) != 0)
        return rc;
    edist_buf each;
    edist_buf_init(&each);
    uint32_t npeers = 0;
    for (size_t i = 0; i < peers.count; i++) {
        edist_node_peer_stats ps;
        if (edist_node_get_peer_stats(node, peers.names[i], &ps) != 0)
            continue; /* went down meanwhile */
        uint32_t k = 0;
        edist_enc_atomz(&each, peers.names[i]);
        edist_enc_map(&each, 6);
        edi_services_stat(&each, &k, "messages_sent", ps.messages_sent);
        edi_services_stat(&each, &k, "messages_received", ps.messages_received);
        edi_services_stat(&each, &k, "send_queue_bytes", ps.send_queue_bytes);
        edi_services_stat(&each, &k, "send_queue_max_bytes", ps.send_queue_max_bytes);
        edi_services_stat(&each, &k, "sends_busy", ps.sends_busy);
        edi_services_stat(&each, &k, "reassembly_bytes", ps.reassembly_bytes);
        npeers++;
    }
    edist_node_list_free(&peers);
    edist_enc_atom(b, "peers", 5);
    edist_enc_map(b, npeers);
    edist_enc_raw(b, each.data, each.len);
    (*n)++;
    rc = edist_buf_error(&each);
    edist_buf_free(&each);
    return rc;
}

static void svc_print_line(void *user, const char *line, size_t len)
{
    edist_node *n = user;
    if (n->cfg.output)
        n->cfg.output(n->cfg.output_user, line, len);
}

static int rt_peer_key(void *user, const char *peer, uint32_t *key)
{
    (void)user;
    return edi_rt_node_intern(peer, strlen(peer), key);
}

static const edi_nk_rt_ops rt_nk_ops = {
    .peer_key = rt_peer_key,
    .dispatch = rt_dispatch,
    .node_down = rt_node_down,
    .has_export = rt_has_export,
    .has_name = rt_has_name,
};

static int node_runtime_new(edist_node *n)
{
    edist_runtime_config pc;
    edist_runtime_config_init(&pc);
    pc.log = n->cfg.log;
    pc.log_user = n->cfg.log_user;
    pc.log_level = n->cfg.log_level;
    pc.node_name = n->name;
    pc.creation = n->creation;
    /* The node's limits; 0 leaves the runtime's default. */
    pc.max_mailbox_messages = n->cfg.mailbox_messages;
    pc.max_mailbox_bytes = n->cfg.mailbox_bytes;
    pc.max_mailbox_messages_hard = n->cfg.mailbox_hard_messages;
    pc.max_mailbox_bytes_hard = n->cfg.mailbox_hard_bytes;
    pc.max_processes = n->cfg.max_processes;
    pc.stack_bytes = n->cfg.stack_bytes;
    pc.max_pending_requests = n->cfg.max_pending_requests;
    pc.max_pending_bytes = n->cfg.max_pending_bytes;
    /* Shards: this loop is shard 0's; the runtime starts the others. */
    pc.idle = n->cfg.idle;
    pc.shards = n->cfg.shards;
    pc.shard_cores = n->cfg.shard_cores;
    pc.shard_ring_entries = n->cfg.shard_ring_entries;
    n->cfg.shard_cores = NULL; /* the caller's string: start only */
    edi_rt_hooks hooks = rt_hooks_template;
    hooks.user = n;
    edi_rt_config rc = {.loop = n->loop, .proc = &pc, .hooks = &hooks};
    edist_buf_init(&n->rt_frame);
    int err = edi_rt_new(&rc, &n->rt);
    if (err)
        return err;
    if (n->cfg.services) {
        edi_services_config sc = {
            .user = n,
            .nodes = svc_nodes,
            .connected = svc_connected,
            .is_alive = svc_is_alive,
            .print_line = svc_print_line,
            .monitor_nodes = svc_monitor_nodes,
            .stats = svc_stats,
        };
        err = edi_services_start((edist_runtime *)n->rt, &sc, &n->services);
        if (err)
            return err;
    }
    edi_nk_set_runtime(n->nk, &rt_nk_ops, n);
    return 0;
}

edist_runtime *edist_node_runtime(edist_node *node)
{
    return node ? node->rt : NULL;
}

int edist_node_start(const edist_node_config *cfg, edist_node **out)
{
    if (!cfg || !out)
        return edist_set_error(EDIST_EINVAL, "node_start: no config");
    *out = NULL;
    edist_node *n = calloc(1, sizeof *n);
    if (!n)
        return edist_set_error(EDIST_ENOMEM, "node_start: no memory");
    n->cfg = *cfg;
    n->log = (edi_log){cfg->log, cfg->log_user, cfg->log_level};
    int rc = full_name(cfg->name, cfg->long_names, n->name, sizeof n->name);
    if (rc)
        goto fail;
    n->cfg.name = n->name;
    n->cfg.cookie = NULL;
    n->cfg.home_dir = NULL;
    if (cfg->listen_address) {
        snprintf(n->listen_address, sizeof n->listen_address, "%s",
                 cfg->listen_address);
        n->cfg.listen_address = n->listen_address;
    }
    if (!n->cfg.net_ticktime_ms)
        n->cfg.net_ticktime_ms = EDIST_NODE_TICKTIME_MS_DEFAULT;
    if (!n->cfg.net_setuptime_ms)
        n->cfg.net_setuptime_ms = EDIST_NODE_SETUPTIME_MS_DEFAULT;
    n->epmd_port = cfg->epmd_port ? cfg->epmd_port : edi_epmd_default_port();

    char cookie[EDI_COOKIE_MAX_BYTES + 1];
    if (cfg->cookie) {
        rc = edi_cookie_check(cfg->cookie);
        if (rc)
            goto fail;
        snprintf(cookie, sizeof cookie, "%s", cfg->cookie);
    } else {
        rc = edi_cookie_load(cfg->home_dir, cookie, sizeof cookie);
        if (rc < 0)
            goto fail;
    }
    rc = edi_cookies_new(cookie, &n->cookies);
    memset(cookie, 0, sizeof cookie);
    if (rc)
        goto fail;

    edi_loop_config lc;
    edi_loop_config_default(&lc);
    lc.idle = cfg->idle == EDIST_IDLE_BUSY    ? EDI_IDLE_BUSY
              : cfg->idle == EDIST_IDLE_SLEEP ? EDI_IDLE_SLEEP
                                              : EDI_IDLE_ADAPTIVE;
    lc.log = n->log;
    rc = edi_loop_new(&lc, &n->loop);
    if (rc)
        goto fail;
    edi_tcp_config tc;
    edi_tcp_config_default(&tc);
    /* At least 8: "a quarter of the pool free" must mean a buffer. */
    if (cfg->rx_buffers)
        tc.rx_buffer_count = cfg->rx_buffers < 8 ? 8 : cfg->rx_buffers;
    /* A peer without DFLAG_FRAGMENTS sends a big message as one frame:
     * the frame limit follows the message limit (header room added). */
    uint64_t max_frame = (uint64_t)node_max_message_bytes(cfg);
    tc.max_frame_bytes = max_frame > UINT32_MAX ? UINT32_MAX : max_frame;
    /* The data lanes' room for frames written in place (the connections'
     * own queues); the scheduler holds what does not fit. */
    tc.send_queue_limit_bytes = cfg->lane_queue_limit_bytes
                                    ? cfg->lane_queue_limit_bytes
                                    : EDIST_NODE_LANE_QUEUE_LIMIT_BYTES_DEFAULT;
    rc = edi_tcp_setup(n->loop, &tc);
    if (rc)
        goto fail;
    rc = edi_loop_listen(n->loop, n->cfg.listen_address, cfg->listen_port,
                         on_accept, n, &n->listener, &n->listen_port);
    if (rc)
        goto fail;

    int epmd_fd = -1;
    if (cfg->publish) {
        rc = register_name(n, &epmd_fd);
        n->cfg.epmd_address = NULL; /* the caller's string: start only */
        if (rc)
            goto fail;
    } else {
        /* Nobody can look this node up, so no creation to collide with:
         * any value but the reserved 0..3. */
        uint32_t r = 0;
        if (getrandom(&r, sizeof r, 0) != sizeof r)
            r = (uint32_t)edi_now_ms();
        n->creation = r < 4 ? r + 4 : r;
    }
    edi_nk_config kc = {
        .loop = n->loop,
        .name = n->name,
        .creation = n->creation,
        .hidden = cfg->hidden,
        .cookies = n->cookies,
        .epmd_port = n->epmd_port,
        .ticktime_ms = n->cfg.net_ticktime_ms,
        .setuptime_ms = n->cfg.net_setuptime_ms,
        .connect_all = cfg->connect_all,
        .send_queue_limit_bytes = cfg->send_queue_limit_bytes,
        .fragment_bytes = cfg->fragment_bytes,
        .reassembly_limit_bytes = node_reassembly_limit_bytes(cfg),
        .max_message_bytes = node_max_message_bytes(cfg),
        .log = n->log,
        .first_message_time_ms = cfg->first_message_time_ms,
        .max_handshakes = cfg->max_handshakes,
        .max_handshakes_per_address = cfg->max_handshakes_per_address,
    };
    rc = edi_nk_new(&kc, &n->nk);
    if (rc) {
        edi_epmd_unregister(epmd_fd);
        goto fail;
    }
    rc = node_runtime_new(n);
    if (rc) {
        edi_epmd_unregister(epmd_fd);
        goto fail;
    }
    if (epmd_fd >= 0) {
        rc = edi_conn_adopt(n->loop, epmd_fd, &epmd_conn_ops, n, &n->epmd_conn);
        if (rc)
            goto fail; /* adopt closed the fd: unregistered */
    }
    rc = pthread_create(&n->thread, NULL, shard_main, n);
    if (rc) {
        rc = edist_set_error(EDIST_EIO, "cannot start the node thread: %s",
                             strerror(rc));
        goto fail;
    }
    n->thread_started = true;
    /* Wait until the loop runs on its thread: from then on
     * edi_loop_on_thread() tells callers apart. */
    api_call *c = call_new(n, C_STATS);
    rc = c ? call_exec_mode(c, EDIST_NODE_CALL_TIMEOUT_MS_DEFAULT, false)
           : edist_set_error(EDIST_ENOMEM, "no memory");
    if (c)
        call_unref(c);
    if (rc) {
        edi_loop_stop(n->loop);
        pthread_join(n->thread, NULL);
        goto fail;
    }
    edi_logf(&n->log, EDIST_LOG_DEBUG,
             "node %s started (listening on port %u, creation %u)", n->name,
             n->listen_port, n->creation);
    *out = n;
    return 0;
fail : {
    char detail[512];
    snprintf(detail, sizeof detail, "%s", edist_last_error());
    node_free(n);
    return edist_set_error(rc, "%s", detail);
}
}

const char *edist_node_name(const edist_node *node)
{
    return node ? node->name : "nonode@nohost";
}

uint32_t edist_node_creation(const edist_node *node)
{
    return node ? node->creation : 0;
}

uint16_t edist_node_listen_port(const edist_node *node)
{
    return node ? node->listen_port : 0;
}

bool edist_node_is_hidden(const edist_node *node)
{
    return node && node->cfg.hidden;
}

bool edist_node_is_alive(const edist_node *node)
{
    return node != NULL && !atomic_load(&node->stopping);
}

/* ---- calls into the loop ------------------------------------------------- */

typedef struct api_call {
    atomic_int refs; /* the waiting thread and the loop */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rc;
    char detail[512];
    edist_node *node;
    call_kind kind;
    char peer[EDI_HS_NAME_MAX_BYTES + 1];
    char text[EDI_HS_NAME_MAX_BYTES + 1]; /* cookie or registered name */
    bool has_peer;
    uint32_t timeout_ms;
    unsigned selectors;
    edist_node_list list;
    edist_node_event_fn event_fn;
    edist_node_message_fn msg_fn;
    edist_node_writable_fn writable_fn;
    void *user;
    uint64_t handle;
    uint8_t *payload;
    size_t payload_len;
    uint32_t sender;
    /* A blocked send (wait_ms > 0): the loop retries it when the peer
     * drains, and gives up at wait_timer. */
    int wait_ms;
    edi_timer wait_timer;
    uint64_t wait_id;
    edist_node_stats stats;
    edist_node_peer_stats peer_stats;
} api_call;

static api_call *call_new(edist_node *n, call_kind kind)
{
    api_call *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    atomic_init(&c->refs, 2);
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    c->node = n;
    c->kind = kind;
    edi_timer_init(&c->wait_timer);
    return c;
}

static void call_unref(api_call *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    edist_node_list_free(&c->list);
    free(c->payload);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

/* The loop's side is finished with c: publish the result. */
static void call_complete(api_call *c, int rc, const char *detail)
{
    pthread_mutex_lock(&c->mu);
    c->rc = rc;
    snprintf(c->detail, sizeof c->detail, "%s", detail ? detail : "");
    c->done = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    call_unref(c);
}

static void call_done_cb(void *arg, int err, const char *detail)
{
    call_complete(arg, err, detail);
}

static void stop_done(void *arg, int err, const char *detail);

/* ---- blocked sends (loop thread) ----------------------------------------- */

static void send_wait_done(void *arg, int err, const char *detail);

/* Retry c's send; on EDIST_EAGAIN wait for the peer to drain again.
 * Completes c unless it is left waiting. */
static void send_retry(api_call *c)
{
    edi_nk *nk = c->node->nk;
    for (;;) {
        edist_clear_error();
        int rc = edi_nk_send_reg_from(nk, c->peer, c->sender, c->text,
                                      c->payload, c->payload_len);
        if (rc == EDIST_EAGAIN) {
            rc = edi_nk_when_writable(nk, c->peer, send_wait_done, c,
                                      &c->wait_id);
            if (rc == 0)
                return; /* waiting */
            if (rc == 1)
                continue; /* drained meanwhile */
        }
        edi_loop_timer_cancel(c->node->loop, &c->wait_timer);
        call_complete(c, rc, rc ? edist_last_error() : "");
        return;
    }
}

static void send_wait_done(void *arg, int err, const char *detail)
{
    api_call *c = arg;
    c->wait_id = 0;
    if (err) {
        edi_loop_timer_cancel(c->node->loop, &c->wait_timer);
        call_complete(c, err, detail);
        return;
    }
    send_retry(c);
}

static void send_wait_timeout(edi_loop *loop, edi_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    api_call *c = arg;
    if (c->wait_id)
        edi_nk_cancel_writable(c->node->nk, c->wait_id);
    c->wait_id = 0;
    char detail[EDI_HS_NAME_MAX_BYTES + 80];
    snprintf(detail, sizeof detail,
             "the send queue to %s did not drain within %d ms", c->peer,
             c->wait_ms);
    call_complete(c, EDIST_ETIMEDOUT, detail);
}

static void writable_cb(void *user, const char *peer)
{
    edist_node *n = user;
    edist_node_writable_fn fn = n->writable_fn;
    if (fn)
        fn(n->writable_user, peer);
}

/* Runs on the loop thread. */
static void call_run(edi_loop *loop, void *arg)
{
    (void)loop;
    api_call *c = arg;
    edist_node *n = c->node;
    edi_nk *nk = n->nk;
    int rc = 0;
    edist_clear_error();
    switch (c->kind) {
    case C_CONNECT:
        rc = edi_nk_connect(nk, c->peer, c->timeout_ms, call_done_cb, c);
        if (rc == 0)
            return; /* completes through call_done_cb */
        break;
    case C_PING:
        rc = edi_nk_ping(nk, c->peer, c->timeout_ms, call_done_cb, c);
        if (rc == 0)
            return;
        break;
    case C_DISCONNECT:
        rc = edi_nk_disconnect(nk, c->peer);
        break;
    case C_SET_COOKIE:
        rc = c->has_peer ? edi_cookies_set(n->cookies, c->peer, c->text)
                         : edi_cookies_set_default(n->cookies, c->text);
        break;
    case C_NODES:
        rc = edi_nk_nodes(nk, c->selectors, &c->list);
        break;
    case C_MONITOR_NODES:
        rc = edi_nk_monitor_nodes(nk, c->selectors, c->event_fn, c->user,
                                  &c->handle);
        break;
    case C_MONITOR_NODE:
        rc = edi_nk_monitor_node(nk, c->peer, c->event_fn, c->user, &c->handle);
        break;
    case C_DEMONITOR:
        rc = edi_nk_demonitor(nk, c->handle);
        break;
    case C_SET_HANDLER:
        edi_nk_set_message_handler(nk, c->msg_fn, c->user);
        break;
    case C_SET_WRITABLE:
        n->writable_fn = c->writable_fn;
        n->writable_user = c->user;
        edi_nk_set_writable_handler(nk, c->writable_fn ? writable_cb : NULL, n);
        break;
    case C_SEND_REG:
        rc = edi_nk_send_reg_from(nk, c->peer, c->sender, c->text, c->payload,
                                  c->payload_len);
        if (rc == EDIST_EAGAIN && c->wait_ms > 0) {
            if (edi_loop_timer_start(n->loop, &c->wait_timer,
                                     (uint64_t)c->wait_ms, 0, send_wait_timeout,
                                     c) != 0)
                break;
            send_retry(c);
            return; /* completes from send_retry or later */
        }
        break;
    case C_STATS: {
        edi_nk_get_stats(nk, &c->stats);
        edi_tcp_stats ts;
        edi_tcp_get_stats(n->loop, &ts);
        c->stats.rx_buffers = ts.rx_buffers_total;
        c->stats.rx_buffers_held = ts.rx_buffers_held;
        c->stats.rx_starved = ts.rx_starved;
        break;
    }
    case C_PEER_STATS:
        rc = edi_nk_get_peer_stats(nk, c->peer, &c->peer_stats);
        break;
    case C_STOP:
        if (n->listener) {
            edi_listener_close(n->listener);
            n->listener = NULL;
        }
        edi_nk_shutdown(nk, NODE_STOP_GRACE_MS, stop_done, c);
        return;
    }
    call_complete(c, rc, rc ? edist_last_error() : "");
}

static void stop_done(void *arg, int err, const char *detail)
{
    api_call *c = arg;
    edist_node *n = c->node;
    /* Unregister last: peers learn we are gone from the connections
     * closing, and the name stays ours until then. */
    if (n->epmd_conn) {
        edi_conn_abort(n->epmd_conn, 0);
        n->epmd_conn = NULL;
    }
    edi_loop_stop(n->loop);
    call_complete(c, err, detail);
}

/* Blocking calls may not run on the loop thread: they would wait for the
 * loop that is running them. */
static int call_blocking_check(edist_node *n)
{
    if (!n)
        return edist_set_error(EDIST_EINVAL, "no node");
    if (edi_loop_on_thread(n->loop))
        return edist_set_error(
            EDIST_EINVAL,
            "blocking node call from the node's own thread (a callback)");
    return 0;
}

/* Run c on the loop and wait up to wait_ms for it. Consumes the caller's
 * reference. From the loop thread, runs inline (callback-safe calls). */
static int call_exec_mode(api_call *c, int wait_ms, bool allow_inline)
{
    edist_node *n = c->node;
    if (allow_inline && edi_loop_on_thread(n->loop)) {
        call_run(n->loop, c);
    } else if (edi_loop_post(n->loop, call_run, c) != 0) {
        call_unref(c); /* the loop's reference */
        call_unref(c);
        return edist_set_error(EDIST_EAGAIN,
                               "node is busy (request queue full)");
    }
    /* The condition variable waits on CLOCK_MONOTONIC, edi_now_ns's. */
    uint64_t due_ns = edi_now_ns() + (uint64_t)wait_ms * 1000000u;
    struct timespec ts = {.tv_sec = (time_t)(due_ns / 1000000000u),
                          .tv_nsec = (long)(due_ns % 1000000000u)};
    pthread_mutex_lock(&c->mu);
    while (!c->done) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT)
            break;
    }
    bool done = c->done;
    int rc = c->rc;
    char detail[sizeof c->detail];
    memcpy(detail, c->detail, sizeof detail);
    pthread_mutex_unlock(&c->mu);
    if (!done)
        return edist_set_error(EDIST_ETIMEDOUT,
                               "node did not answer within %d ms", wait_ms);
    if (rc)
        return edist_set_error(rc, "%s", detail);
    return 0;
}

static int call_exec(api_call *c, int wait_ms)
{
    return call_exec_mode(c, wait_ms, true);
}

static int timeout_or_default(int timeout_ms)
{
    return timeout_ms > 0 ? timeout_ms : EDIST_NODE_CALL_TIMEOUT_MS_DEFAULT;
}

static int copy_name(char *dst, size_t cap, const char *src, const char *what)
{
    if (!src || strlen(src) >= cap)
        return edist_set_error(EDIST_EINVAL, "bad %s", what);
    memcpy(dst, src, strlen(src) + 1);
    return 0;
}

static int peer_call(edist_node *node, call_kind kind, const char *peer,
                     int timeout_ms)
{
    int rc = call_blocking_check(node);
    if (rc)
        return rc;
    api_call *c = call_new(node, kind);
    if (!c)
        return edist_set_error(EDIST_ENOMEM, "no memory");
    if (copy_name(c->peer, sizeof c->peer, peer, "node name")) {
        call_unref(c);
        call_unref(c);
        return EDIST_EINVAL;
    }
    int t = timeout_or_default(timeout_ms);
    c->timeout_ms = (uint32_t)t;
    rc = call_exec(c, t + NODE_CALL_SLACK_MS);
    call_unref(c);
    return rc;
}

int edist_node_connect(edist_node *node, const char *peer, int timeout_ms)
{
    return peer_call(node, C_CONNECT, peer, timeout_ms);
}

int edist_node_ping(edist_node *node, const char *peer, int timeout_ms)
{
    return peer_call(node, C_PING, peer, timeout_ms);
}

/* For the callback-safe calls: run (inline on the loop thread, else
 * posted) and wait the default time. */
static int quick_call(api_call *c)
{
    return call_exec(c, EDIST_NODE_CALL_TIMEOUT_MS_DEFAULT);
}

#define NEW_CALL(node, kind)                                                   \
    api_call *c;                                                               \
    if (!(node))                                                               \
        return edist_set_error(EDIST_EINVAL, "no node");                       \
    c = call_new((node), (kind));                                              \
    if (!c)                                                                    \
    return edist_set_error(EDIST_ENOMEM, "no memory")

#define DROP_BOTH(c)                                                           \
    do {                                                                       \
        call_unref(c);                                                         \
        call_unref(c);                                                         \
    } while (0)

int edist_node_disconnect(edist_node *node, const char *peer)
{
    NEW_CALL(node, C_DISCONNECT);
    if (copy_name(c->peer, sizeof c->peer, peer, "node name")) {
        DROP_BOTH(c);
        return EDIST_EINVAL;
    }
    int rc = quick_call(c);
    call_unref(c);
    return rc;
}

int edist_node_set_cookie(edist_node *node, const char *peer,
                          const char *cookie)
{
    int rc = edi_cookie_check(cookie);
    if (rc)
        return rc;
    NEW_CALL(node, C_SET_COOKIE);
    if ((peer && copy_name(c->peer, sizeof c->peer, peer, "node name")) ||
        copy_name(c->text, sizeof c->text, cookie, "cookie")) {
        DROP_BOTH(c);
        return EDIST_EINVAL;
    }
    c->has_peer = peer != NULL;
    rc = quick_call(c);
    call_unref(c);
    return rc;
}

int edist_node_nodes(edist_node *node, unsigned selectors, edist_node_list *out)
{
    if (!out)
        return edist_set_error(EDIST_EINVAL, "nodes: no output");
    out->count = 0;
    out->names = NULL;
    NEW_CALL(node, C_NODES);
    c->selectors = selectors;
    int rc = quick_call(c);
    if (rc == 0) {
        pthread_mutex_lock(&c->mu);
        *out = c->list;
        c->list.count = 0;
        c->list.names = NULL;
        pthread_mutex_unlock(&c->mu);
    }
    call_unref(c);
    return rc;
}

void edist_node_list_free(edist_node_list *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++)
        free(list->names[i]);
    free(list->names);
    list->names = NULL;
    list->count = 0;
}

int edist_node_monitor_nodes(edist_node *node, unsigned kinds,
                             edist_node_event_fn fn, void *user,
                             uint64_t *handle)
{
    NEW_CALL(node, C_MONITOR_NODES);
    c->selectors = kinds;
    c->event_fn = fn;
    c->user = user;
    int rc = quick_call(c);
    if (rc == 0 && handle)
        *handle = c->handle;
    call_unref(c);
    return rc;
}

int edist_node_monitor_node(edist_node *node, const char *peer,
                            edist_node_event_fn fn, void *user,
                            uint64_t *handle)
{
    NEW_CALL(node, C_MONITOR_NODE);
    if (copy_name(c->peer, sizeof c->peer, peer, "node name")) {
        DROP_BOTH(c);
        return EDIST_EINVAL;
    }
    c->event_fn = fn;
    c->user = user;
    int rc = quick_call(c);
    if (rc == 0 && handle)
        *handle = c->handle;
    call_unref(c);
    return rc;
}

int edist_node_demonitor(edist_node *node, uint64_t handle)
{
    NEW_CALL(node, C_DEMONITOR);
    c->handle = handle;
    int rc = quick_call(c);
    call_unref(c);
    return rc;
}

int edist_node_set_message_handler(edist_node *node, edist_node_message_fn fn,
                                   void *user)
{
    NEW_CALL(node, C_SET_HANDLER);
    c->msg_fn = fn;
    c->user = user;
    int rc = quick_call(c);
    call_unref(c);
    return rc;
}

int edist_node_send_reg(edist_node *node, const char *peer, const char *name,
                        const uint8_t *payload, size_t payload_len)
{
    return edist_node_send_reg_opts(node, peer, name, payload, payload_len,
                                    NULL);
}

int edist_node_send_reg_opts(edist_node *node, const char *peer,
                             const char *name, const uint8_t *payload,
                             size_t payload_len,
                             const edist_node_send_opts *opts)
{
    if (!payload || !payload_len)
        return edist_set_error(EDIST_EINVAL, "send_reg: no payload");
    if (opts && opts->sender == EDI_NK_KERNEL_PID_ID)
        return edist_set_error(
            EDIST_EINVAL, "sender %u is the node's net_kernel", opts->sender);
    int wait_ms = opts && opts->wait_ms > 0 ? opts->wait_ms : 0;
    if (wait_ms > 0) {
        int rc = call_blocking_check(node);
        if (rc)
            return rc;
    }
    NEW_CALL(node, C_SEND_REG);
    c->sender = opts ? opts->sender : 0;
    c->wait_ms = wait_ms;
    if (copy_name(c->peer, sizeof c->peer, peer, "node name") ||
        copy_name(c->text, sizeof c->text, name, "registered name")) {
        DROP_BOTH(c);
        return EDIST_EINVAL;
    }
    c->payload = malloc(payload_len);
    if (!c->payload) {
        DROP_BOTH(c);
        return edist_set_error(EDIST_ENOMEM, "no memory");
    }
    memcpy(c->payload, payload, payload_len);
    c->payload_len = payload_len;
    /* The loop gives up at wait_ms itself; wait a little longer here. */
    int rc = wait_ms > 0
                 ? call_exec(c, wait_ms + EDIST_NODE_CALL_TIMEOUT_MS_DEFAULT)
                 : quick_call(c);
    call_unref(c);
    return rc;
}

int edist_node_set_writable_handler(edist_node *node, edist_node_writable_fn fn,
                                    void *user)
{
    NEW_CALL(node, C_SET_WRITABLE);
    c->writable_fn = fn;
    c->user = user;
    int rc = quick_call(c);
    call_unref(c);
    return rc;
}

int edist_node_get_peer_stats(edist_node *node, const char *peer,
                              edist_node_peer_stats *out)
{
    if (!out)
        return edist_set_error(EDIST_EINVAL, "peer stats: no output");
    memset(out, 0, sizeof *out);
    NEW_CALL(node, C_PEER_STATS);
    if (copy_name(c->peer, sizeof c->peer, peer, "node name")) {
        DROP_BOTH(c);
        return EDIST_EINVAL;
    }
    int rc = quick_call(c);
    if (rc == 0) {
        pthread_mutex_lock(&c->mu);
        *out = c->peer_stats;
        pthread_mutex_unlock(&c->mu);
    }
    call_unref(c);
    return rc;
}

int edist_node_get_stats(edist_node *node, edist_node_stats *out)
{
    if (!out)
        return edist_set_error(EDIST_EINVAL, "stats: no output");
    NEW_CALL(node, C_STATS);
    int rc = quick_call(c);
    if (rc == 0) {
        pthread_mutex_lock(&c->mu);
        *out = c->stats;
        pthread_mutex_unlock(&c->mu);
    }
    call_unref(c);
    return rc;
}

void edist_node_stop(edist_node *node)
{
    if (!node)
        return;
    if (node->thread_started && edi_loop_on_thread(node->loop)) {
        edi_logf(&node->log, EDIST_LOG_ERROR,
                 "edist_node_stop called from a node callback");
        return;
    }
    atomic_store(&node->stopping, true);
    if (node->thread_started) {
        api_call *c = call_new(node, C_STOP);
        bool waited = false;
        if (c) {
            int rc = call_exec(c, (int)NODE_STOP_GRACE_MS + NODE_CALL_SLACK_MS);
            call_unref(c);
            waited = rc == 0;
        }
        if (!waited)
            edi_loop_stop(node->loop); /* give up on goodbyes */
        pthread_join(node->thread, NULL);
    }
    edi_logf(&node->log, EDIST_LOG_DEBUG, "node %s stopped", node->name);
    node_free(node);
}
