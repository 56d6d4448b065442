/* SPDX-License-Identifier: Apache-2.0 */
/* The node: its configuration, start-up (name, cookie, listener, port
 * mapper), the shard thread that runs its loop, and stop. The calls other
 * threads make into it (posted to the loop, waited for with a timeout) are
 * in node_calls.c; node_internal.h lists the other parts. The behaviour of
 * a node lives in control/netkernel.c. */
#include "control/stats_file.h"
#include "runtime/node_internal.h"
#ifdef EDIST_HAVE_DPDK
#include "dataplane/dpdk/dpdk_lane.h"
#endif

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "control/epmd_client.h"
#include "control/epmd_server.h"
#include "dataplane/dpdk/medium.h"
#include "dataplane/reactor/rxbuf.h"
#include "dataplane/uring/tcp.h"

_Static_assert(EDIST_NODE_RX_RECYCLE_BUFFERS_MAX == EDI_RXBUF_RECYCLE_BUFFERS_MAX,
               "the option's bound is the cache's");

/* Port mapper registration: how long to wait for the embedded one we
 * started to answer. */
#define NODE_EPMD_START_WAIT_MS 3000

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

/* Once an iteration, after the processes ran: if the shared receive
 * buffers are still low, the messages queued as views of them are copied
 * out (processes that do not receive must not hold the sockets up), and
 * until the next look new ones are copied as they arrive. Deciding it
 * here rather than per message lets a receiver that keeps up take a
 * burst of buffers without copies. */
static uint32_t rx_watch(edi_loop *loop, void *arg, uint32_t budget)
{
    (void)budget;
    edist_node *n = arg;
    n->rx_low = edi_loop_rx_low(loop);
#ifdef EDIST_HAVE_DPDK
    /* The lane's frames are views of the port's mbufs the same way. */
    bool lane_low = n->dpdk_lane && edi_dpdk_lane_pool_low(n->dpdk_lane);
    if (lane_low && !n->lane_pool_was_low)
        n->lane_pool_lows++;
    n->lane_pool_was_low = lane_low;
    n->rx_low = n->rx_low || lane_low;
    /* A port that can carry nothing more says so once (its peers get no
     * offer from then on, and the offers of theirs are refused); looked
     * at once a second. */
    uint64_t now_ms = edi_loop_now_ms(loop);
    if (n->dpdk_lane && !n->lane_unusable_said && now_ms - n->lane_usable_checked_ms >= 1000) {
        char why[256];
        n->lane_usable_checked_ms = now_ms;
        if (!edi_dpdk_lane_usable(n->dpdk_lane, why, sizeof why)) {
            n->lane_unusable_said = true;
            edi_logf(&n->log, EDIST_LOG_WARNING,
                     "transport dpdk: the lane's port can carry nothing more: %s; new "
                     "peers stay on TCP",
                     why);
        }
    }
#endif
    if (n->rx_low && n->rt)
        edi_rt_rx_pressure(n->rt);
    /* Signals for shards too busy to take them wait in shard 0's backlog:
     * past the limit the node stops reading its peers (TCP holds them
     * back) until a quarter of it is left. */
    if (n->rt) {
        uint32_t limit = n->cfg.shard_backlog_limit
                             ? n->cfg.shard_backlog_limit
                             : EDIST_NODE_SHARD_BACKLOG_LIMIT_DEFAULT;
        uint32_t backlog = edi_rt_xbacklog(n->rt);
        if (backlog > n->backlog_max)
            n->backlog_max = backlog;
        bool hold = n->rx_held ? backlog > limit / 4 : backlog >= limit;
        if (hold != n->rx_held) {
            n->rx_held = hold;
            edi_tcp_rx_hold(loop, hold);
#ifdef EDIST_HAVE_DPDK
            /* The lane's peers are held back by their windows. */
            if (n->dpdk_lane)
                edi_dpdk_lane_rx_hold(n->dpdk_lane, hold);
#endif
        }
    }
    return 0;
}

static void node_free(edist_node *n)
{
    if (n->rt)
        edi_rt_free(n->rt); /* the loop no longer runs */
    if (n->stats_path[0])
        unlink(n->stats_path); /* the publisher ended with the runtime */
    edi_services_free(n->services); /* after the runtime, as it asks */
    edi_node_connecting_free_all(n);
    edist_buf_free(&n->rt_frame);
    if (n->nk)
        edi_nk_free(n->nk);
    edi_node_subs_free(n);
    if (n->dpdk_lane)
        edi_lane_close(n->dpdk_lane); /* after the links that used it */
    if (n->loop)
        edi_loop_free(n->loop);
    if (n->cookies)
        edi_cookies_free(n->cookies);
    free(n);
}

/* transport dpdk: the EAL, the port and its lane, offered to edist
 * peers (control/nk_lane.c). Whatever fails, one line says why and the
 * node goes on with TCP alone. */
static uint32_t node_dpdk_recv_window_bytes(const edist_node_config *cfg);
static uint64_t node_dpdk_hold_limit_bytes(const edist_node_config *cfg);

static void node_dpdk_start(edist_node *n, const edist_node_config *cfg)
{
    if (cfg->transport != EDIST_TRANSPORT_DPDK)
        return;
#ifndef EDIST_HAVE_DPDK
    edi_logf(&n->log, EDIST_LOG_WARNING,
             "transport dpdk: this build has no DPDK; using TCP");
#else
    edi_dpdk_eal_config ec = {.args = cfg->dpdk_eal_args, .log = &n->log};
    int rc = edi_dpdk_eal_init(&ec);
    if (rc == 0) {
        edi_dpdk_lane_params p;
        edi_dpdk_lane_params_default(&p);
        p.port.device = cfg->dpdk_port;
        p.port.pool_mbufs = cfg->dpdk_pool_mbufs; /* 0: the port's default */
        /* The link protocol's limits; 0 leaves the lane's default. */
        if (cfg->dpdk_send_buffer_bytes)
            p.link.send_buffer_bytes = (size_t)cfg->dpdk_send_buffer_bytes;
        /* a message over the node's limit takes its peer down on the lane
         * as on TCP (the lane's own default is 256 MiB) */
        p.link.max_message_bytes = node_max_message_bytes(cfg);
        p.link.recv_window_bytes = node_dpdk_recv_window_bytes(cfg);
        if (cfg->dpdk_kernel_window_bytes)
            p.kernel_window_bytes = cfg->dpdk_kernel_window_bytes;
        if (cfg->dpdk_rto_min_us)
            p.link.rto_min_ns = (uint64_t)cfg->dpdk_rto_min_us * 1000u;
        if (cfg->dpdk_rto_max_us)
            p.link.rto_max_ns = (uint64_t)cfg->dpdk_rto_max_us * 1000u;
        if (p.link.rto_max_ns < p.link.rto_min_ns)
            p.link.rto_max_ns = p.link.rto_min_ns;
        if (p.link.rto_initial_ns < p.link.rto_min_ns)
            p.link.rto_initial_ns = p.link.rto_min_ns;
        if (p.link.rto_initial_ns > p.link.rto_max_ns)
            p.link.rto_initial_ns = p.link.rto_max_ns;
        if (cfg->dpdk_idle_ping_ms)
            p.link.idle_ping_ns = (uint64_t)cfg->dpdk_idle_ping_ms * 1000000u;
        if (cfg->dpdk_dead_after_ms)
            p.link.dead_after_ns = (uint64_t)cfg->dpdk_dead_after_ms * 1000000u;
        /* A test hook: faults injected into received frames,
         * "drop=PPM,dup=PPM,reorder=PPM,seed=N" (see dpdk_lane.h). */
        const char *faults = getenv("EDIST_DPDK_RX_FAULTS");
        if (faults) {
            unsigned long long d = 0, u = 0, r = 0, sd = 1;
            if (sscanf(faults, "drop=%llu,dup=%llu,reorder=%llu,seed=%llu", &d, &u, &r,
                       &sd) == 4 && d <= 1000000 && u <= 1000000 && r <= 1000000) {
                p.rx_drop_ppm = (uint32_t)d;
                p.rx_dup_ppm = (uint32_t)u;
                p.rx_reorder_ppm = (uint32_t)r;
                p.fault_seed = sd;
                edi_logf(&n->log, EDIST_LOG_WARNING,
                         "transport dpdk: injecting faults into received frames: %s",
                         faults);
            } else {
                edi_logf(&n->log, EDIST_LOG_WARNING,
                         "EDIST_DPDK_RX_FAULTS='%s' ignored: want "
                         "drop=PPM,dup=PPM,reorder=PPM,seed=N",
                         faults);
            }
        }
        if (!cfg->dpdk_udp_address &&
            (cfg->dpdk_gateway_mac ||
             (cfg->dpdk_udp_port && cfg->dpdk_udp_port != EDI_ENCAP_UDP_PORT_DEFAULT)))
            edi_logf(&n->log, EDIST_LOG_WARNING,
                     "transport dpdk: dpdk_gateway_mac and dpdk_udp_port apply to "
                     "UDP framing only, and dpdk_udp_address is not set: "
                     "Ethernet framing");
        if (cfg->dpdk_udp_address) {
            p.encap.udp = true;
            p.encap.port = cfg->dpdk_udp_port ? cfg->dpdk_udp_port
                                              : EDI_ENCAP_UDP_PORT_DEFAULT;
            rc = edi_encap_parse_ipv4(cfg->dpdk_udp_address, p.encap.ip);
            if (rc == 0 && cfg->dpdk_gateway_mac) {
                p.encap.via_gateway = true;
                rc = edi_encap_parse_mac(cfg->dpdk_gateway_mac, p.encap.gateway_mac);
            }
        }
        if (rc == 0)
            rc = edi_lane_open(&edi_dpdk_lane_ops, n->loop, &p, &edi_nk_fast_handler,
                               NULL, &n->dpdk_lane);
    }
    if (rc) {
        edi_logf(&n->log, EDIST_LOG_WARNING, "transport dpdk: %s; using TCP",
                 edist_last_error());
        return;
    }
    edi_nk_fastlane f = {
        .lane = n->dpdk_lane,
        .medium = edi_dpdk_lane_medium(n->dpdk_lane),
        .frame_max = edi_dpdk_lane_frame_max(n->dpdk_lane),
        .link_open = edi_dpdk_lane_link_open,
        .usable = edi_dpdk_lane_usable,
        .link_hold = edi_dpdk_lane_link_hold,
        .setup_ms = cfg->dpdk_setup_ms,
        .hold_limit_bytes = (size_t)node_dpdk_hold_limit_bytes(cfg),
    };
    /* A test hook (nk_lane.c): the setup timeout made to fire after the
     * peer switched. */
    if (getenv("EDIST_LANE_TEST_SETUP_RACE")) {
        f.test_setup_race = true;
        edi_logf(&n->log, EDIST_LOG_WARNING,
                 "transport dpdk: test hook EDIST_LANE_TEST_SETUP_RACE: the setup "
                 "time runs out right before the peer's switch is read");
    }
    const char *lag = getenv("EDIST_LANE_TEST_SWITCH_LAG_MS");
    if (lag) {
        f.test_switch_lag_ms = (uint32_t)strtoul(lag, NULL, 10);
        edi_logf(&n->log, EDIST_LOG_WARNING,
                 "transport dpdk: test hook EDIST_LANE_TEST_SWITCH_LAG_MS: the peer's "
                 "switch takes effect %u ms after it is read", f.test_switch_lag_ms);
    }
    f.addr_len = edi_dpdk_lane_addr(n->dpdk_lane, f.addr);
    edi_nk_set_fastlane(n->nk, &f);
    const edi_encap *e = edi_dpdk_lane_encap(n->dpdk_lane);
    char udp[64] = "";
    if (e->udp)
        snprintf(udp, sizeof udp, ", UDP %u.%u.%u.%u:%u", e->ip[0], e->ip[1], e->ip[2],
                 e->ip[3], e->port);
    edi_logf(&n->log, EDIST_LOG_INFO,
             "transport dpdk: %s lane on %s (%02x:%02x:%02x:%02x:%02x:%02x%s) for "
             "edist peers; EAL %s",
             f.medium, cfg->dpdk_port, e->mac[0], e->mac[1], e->mac[2], e->mac[3],
             e->mac[4], e->mac[5], udp, edi_dpdk_eal_args());
#endif
}

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
    pc.receive_grace_ms = n->cfg.receive_grace_ms;
    /* Shards: this loop is shard 0's; the runtime starts the others. */
    pc.idle = n->cfg.idle;
    pc.shards = n->cfg.shards;
    pc.shard_cores = n->cfg.shard_cores;
    pc.shard_ring_entries = n->cfg.shard_ring_entries;
    n->cfg.shard_cores = NULL; /* the caller's string: start only */
    edi_rt_hooks hooks = edi_node_rt_hooks;
    hooks.user = n;
    edi_rt_config rc = {.loop = n->loop, .proc = &pc, .hooks = &hooks};
    edist_buf_init(&n->rt_frame);
    int err = edi_rt_new(&rc, &n->rt);
    if (err)
        return err;
    if (n->cfg.services && n->cfg.stats_interval_ms) {
        char dir[512];
        err = edi_stats_dir(n->cfg.stats_dir, dir, sizeof dir);
        if (err == 0)
            err = edi_stats_dir_make(dir);
        if (err == 0)
            err = edi_stats_path(n->cfg.stats_dir, n->name, n->stats_path,
                                 sizeof n->stats_path);
        if (err) {
            /* the node runs without it: the operator reads the counters
             * over distribution (edist stat NODE) */
            edi_logf(&n->log, EDIST_LOG_WARNING, "counters not published: %s",
                     edist_last_error());
            n->stats_path[0] = '\0';
            err = 0;
        }
    }
    n->cfg.stats_dir = NULL; /* the caller's string: start only */
    if (n->cfg.services) {
        err = edi_node_services_start(n);
        if (err)
            return err;
    }
    edi_nk_set_runtime(n->nk, &edi_node_nk_ops, n);
    return 0;
}

edist_runtime *edist_node_runtime(edist_node *node)
{
    return node ? node->rt : NULL;
}

/* The DPDK lane's hold before a peer's switch must outlast what the peer
 * may have in flight when its window closes (half the hold): twice the
 * window, and room for the frames on the way. */
#define NODE_DPDK_HOLD_ROOM_BYTES ((uint64_t)64 << 10)
#define NODE_DPDK_HOLD_LIMIT_BYTES_DEFAULT ((uint64_t)64 << 20)

static uint32_t node_dpdk_recv_window_bytes(const edist_node_config *cfg)
{
    return cfg->dpdk_recv_window_bytes ? cfg->dpdk_recv_window_bytes
                                       : EDI_DPDK_RECV_WINDOW_BYTES_DEFAULT;
}

/* The receive window of the port's links (a kernel interface has its own):
 * what the hold limit must leave room for. */
static uint32_t node_dpdk_window_bytes(const edist_node_config *cfg)
{
    if (cfg->dpdk_port && edi_dpdk_medium_is_kernel(edi_dpdk_medium_of(cfg->dpdk_port)))
        return cfg->dpdk_kernel_window_bytes ? cfg->dpdk_kernel_window_bytes
                                             : EDI_DPDK_KERNEL_WINDOW_BYTES_DEFAULT;
    return node_dpdk_recv_window_bytes(cfg);
}
/* The lane's send buffer, and the largest fragment the scheduler cuts. */
static uint64_t node_dpdk_send_buffer_bytes(const edist_node_config *cfg)
{
    return cfg->dpdk_send_buffer_bytes ? cfg->dpdk_send_buffer_bytes
                                       : EDI_DPDK_SEND_BUFFER_BYTES_DEFAULT;
}
static size_t node_fragment_bytes(const edist_node_config *cfg)
{
    return cfg->fragment_bytes ? cfg->fragment_bytes : EDIST_NODE_FRAGMENT_BYTES_DEFAULT;
}
/* A fragment's header (control message, pids, names) at most. */
#define NODE_FRAGMENT_HEAD_ROOM_BYTES ((uint64_t)64 << 10)

static uint64_t node_dpdk_hold_limit_bytes(const edist_node_config *cfg)
{
    return cfg->dpdk_hold_limit_bytes ? cfg->dpdk_hold_limit_bytes
                                      : NODE_DPDK_HOLD_LIMIT_BYTES_DEFAULT;
}

int edist_node_start(const edist_node_config *cfg, edist_node **out)
{
    if (!cfg || !out)
        return edist_set_error(EDIST_EINVAL, "node_start: no config");
    if (cfg->transport == EDIST_TRANSPORT_DPDK &&
        node_dpdk_hold_limit_bytes(cfg) <
            2 * (uint64_t)node_dpdk_window_bytes(cfg) + NODE_DPDK_HOLD_ROOM_BYTES)
        return edist_set_error(EDIST_EINVAL,
                               "dpdk_hold_limit_bytes (%llu) must be at least twice "
                               "the lane's receive window (%u) plus 64K",
                               (unsigned long long)node_dpdk_hold_limit_bytes(cfg),
                               node_dpdk_window_bytes(cfg));
    /* A unit the lane cannot buffer whole takes its peer down once the
     * data moved there: a fragment (and its header) must fit. */
    if (cfg->transport == EDIST_TRANSPORT_DPDK && node_dpdk_send_buffer_bytes(cfg) <
            (uint64_t)node_fragment_bytes(cfg) + NODE_FRAGMENT_HEAD_ROOM_BYTES)
        return edist_set_error(EDIST_EINVAL,
                               "dpdk_send_buffer_bytes (%llu) must be at least fragment_bytes "
                               "(%zu) plus 64K",
                               (unsigned long long)node_dpdk_send_buffer_bytes(cfg),
                               node_fragment_bytes(cfg));
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
    n->epmd_port = cfg->epmd_port;
    if (!n->epmd_port && (rc = edi_epmd_env_port(&n->epmd_port)) != 0)
        goto fail;

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
    /* Before the TCP module's source: buffers copied out here go back to
     * the ring before it re-arms the receives that ran dry. */
    edi_poll_source_init(&n->rx_watch, "rx pressure", rx_watch, NULL, NULL, n);
    if ((rc = edi_loop_poll_add(n->loop, &n->rx_watch)) != 0)
        goto fail;
    edi_rxbuf_recycle_set(cfg->rx_recycle_buffers == EDIST_NODE_RX_RECYCLE_NONE ? 0
                          : cfg->rx_recycle_buffers ? cfg->rx_recycle_buffers
                                                    : EDIST_NODE_RX_RECYCLE_BUFFERS_DEFAULT,
                          cfg->rx_recycle_max_bytes
                              ? cfg->rx_recycle_max_bytes
                              : EDIST_NODE_RX_RECYCLE_MAX_BYTES_DEFAULT);
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
    /* A busy-polling shard reads its active connections itself (see
     * rx_poll_us): a millisecond without bytes and a connection goes back
     * to io_uring alone. */
    if (lc.idle == EDI_IDLE_BUSY)
        tc.rx_poll_us = 1000;
    tc.max_closing = cfg->max_closing_connections ? cfg->max_closing_connections
                                                  : EDIST_NODE_MAX_CLOSING_CONNECTIONS_DEFAULT;
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
        .send_open_sequences = cfg->send_open_sequences,
        .reassembly_limit_bytes = node_reassembly_limit_bytes(cfg),
        .max_message_bytes = node_max_message_bytes(cfg),
        .log = n->log,
        .first_message_time_ms = cfg->first_message_time_ms,
        .max_handshakes = cfg->max_handshakes,
        .max_handshakes_per_address = cfg->max_handshakes_per_address,
        .close_flush_ms = cfg->close_flush_ms,
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
    if (cfg->setup && (rc = cfg->setup(n->rt, cfg->setup_user)) != 0) {
        rc = edist_error_prefix(rc < 0 ? rc : EDIST_EINVAL, "the node's setup failed");
        edi_epmd_unregister(epmd_fd);
        goto fail;
    }
    node_dpdk_start(n, cfg);
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
    rc = edi_node_call_wait_running(n);
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
    edi_services_stopping(node->services);
    if (node->thread_started) {
        if (!edi_node_call_stop(node))
            edi_loop_stop(node->loop); /* give up on goodbyes */
        pthread_join(node->thread, NULL);
    }
    edi_logf(&node->log, EDIST_LOG_DEBUG, "node %s stopped", node->name);
    node_free(node);
}
