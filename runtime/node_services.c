/* SPDX-License-Identifier: Apache-2.0 */
/* What the services ask of the node (loop thread): the nodes it knows,
 * nodeup/nodedown for the pg scope, edist:stats/0's node part, and
 * where printed lines go. */
#include "runtime/node_internal.h"
#include "runtime/services_internal.h"
#ifdef EDIST_HAVE_DPDK
#include "dataplane/dpdk/dpdk_lane.h"
#endif

#include <stdlib.h>
#include <string.h>

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

/* A process subscribed to node events (freed with the node). */
typedef struct node_sub {
    struct node_sub *next;
    edist_node *n;
    edist_procid pid;
    unsigned opts; /* EDI_MN_* */
    uint64_t handle;
} node_sub;

/* A subscriber that ended (a pg scope that was stopped) is dropped at its
 * next event. Inside the net kernel's dispatch: its sweep waits. */
static void node_sub_drop(node_sub *s)
{
    edist_node *n = s->n;
    edi_nk_demonitor(n->nk, s->handle);
    for (node_sub **p = &n->node_subs; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    free(s);
}

/* The event as monitor_nodes(true, Options) words it, to the subscriber
 * (loop thread). An event for a process that is gone is dropped by the
 * runtime, as a message to a dead pid is. */
static void svc_node_event(void *user, const edist_node_event *ev)
{
    node_sub *s = user;
    if (!edist_runtime_is_alive(s->n->rt, s->pid)) {
        node_sub_drop(s);
        return;
    }
    uint8_t mem[2 * EDIST_ATOM_MAX_BYTES + 160];
    edist_buf b;
    edist_buf_init_fixed(&b, mem, sizeof mem);
    bool info = s->opts & EDI_MN_INFO;
    edist_enc_tuple(&b, info ? 3 : 2);
    edist_enc_atomz(&b, ev->up ? "nodeup" : "nodedown");
    edist_enc_atomz(&b, ev->node);
    if (info) {
        bool reason = !ev->up && (s->opts & EDI_MN_REASON);
        uint32_t pairs = !!(s->opts & EDI_MN_CONN_ID) +
                         !!(s->opts & EDI_MN_NODE_TYPE) + reason;
        edist_enc_map(&b, pairs);
        /* keys in term order, as erts prints small maps */
        if (s->opts & EDI_MN_CONN_ID) {
            edist_enc_atomz(&b, "connection_id");
            edist_enc_int(&b, (int64_t)ev->connection_id);
        }
        if (s->opts & EDI_MN_NODE_TYPE) {
            edist_enc_atomz(&b, "node_type");
            edist_enc_atomz(&b, ev->hidden ? "hidden" : "visible");
        }
        if (reason) {
            edist_enc_atomz(&b, "nodedown_reason");
            edist_enc_atomz(&b, ev->reason ? ev->reason : "connection_closed");
        }
    }
    if (edist_buf_error(&b) == 0)
        edist_runtime_send(s->n->rt, s->pid, b.data, b.len);
}

static int svc_monitor_nodes(void *user, edist_procid pid, unsigned opts)
{
    edist_node *n = user;
    node_sub *s = calloc(1, sizeof *s);
    if (!s)
        return EDIST_ENOMEM;
    s->n = n;
    s->pid = pid;
    s->opts = opts;
    unsigned kinds = EDIST_NODES_VISIBLE | (opts & EDI_MN_HIDDEN ? EDIST_NODES_HIDDEN : 0);
    int rc = edi_nk_monitor_nodes(n->nk, kinds, svc_node_event, s, &s->handle);
    if (rc) {
        free(s);
        return rc;
    }
    s->next = n->node_subs;
    n->node_subs = s;
    return 0;
}

void edi_node_subs_free(edist_node *n)
{
    while (n->node_subs) {
        node_sub *s = n->node_subs;
        n->node_subs = s->next;
        free(s);
    }
}

#ifdef EDIST_HAVE_DPDK
/* lane_link_stats => [#{peer => Name, state => S, ...} per peer with a
 * link on the DPDK lane]: its link protocol's own counters. */
typedef struct lane_links_ctx {
    edist_buf each;
    uint32_t count;
} lane_links_ctx;

#define LANE_LINK_STAT_KEYS 18u

static void lane_link_stat(void *arg, const char *peer, edi_lane_link *link,
                           const char *state)
{
    lane_links_ctx *c = arg;
    edi_rlink_stats s;
    if (!edi_dpdk_lane_link_stats(link, &s))
        memset(&s, 0, sizeof s); /* its protocol waits for the port */
    edist_buf *b = &c->each;
    uint32_t k = 2;
    edist_enc_map(b, LANE_LINK_STAT_KEYS);
    edist_enc_atomz(b, "peer");
    edist_enc_atomz(b, peer);
    edist_enc_atomz(b, "state");
    edist_enc_atomz(b, state);
    edi_services_stat(b, &k, "frames_out", s.frames_out);
    edi_services_stat(b, &k, "frames_in", s.frames_in);
    edi_services_stat(b, &k, "messages_out", s.messages_out);
    edi_services_stat(b, &k, "messages_in", s.messages_in);
    edi_services_stat(b, &k, "bytes_out", s.bytes_out);
    edi_services_stat(b, &k, "bytes_in", s.bytes_in);
    edi_services_stat(b, &k, "retransmits", s.retransmits);
    edi_services_stat(b, &k, "rto_expired", s.rto_expired);
    edi_services_stat(b, &k, "naks_sent", s.naks_sent);
    edi_services_stat(b, &k, "naks_received", s.naks_received);
    edi_services_stat(b, &k, "duplicates", s.duplicates);
    edi_services_stat(b, &k, "window_stalls", s.window_stalls);
    edi_services_stat(b, &k, "beyond_window", s.beyond_window);
    edi_services_stat(b, &k, "send_buffer_bytes", s.send_buffer_bytes);
    /* the mbufs it pins: frames held out of order */
    edi_services_stat(b, &k, "pool_in_use", s.held_now);
    edi_services_stat(b, &k, "srtt_ns", s.srtt_ns);
    c->count++;
}
#endif

/* Counters per peer in edist:stats/0 (the map's size, written first). */
#define PEER_STAT_KEYS 24u

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
    edi_services_stat(b, n, "ticks_sent", ns.ticks_sent);
    edi_services_stat(b, n, "ticks_received", ns.ticks_received);
    edi_services_stat(b, n, "fragmented_messages_sent", ns.fragmented_messages_sent);
    edi_services_stat(b, n, "fragmented_messages_received", ns.fragmented_messages_received);
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
    edi_services_stat(b, n, "rx_recycle_held", ns.rx_recycle_held);
    edi_services_stat(b, n, "rx_recycle_held_bytes", ns.rx_recycle_held_bytes);
    edi_services_stat(b, n, "rx_recycle_reused", ns.rx_recycle_reused);
    edi_services_stat(b, n, "rx_recycle_freed", ns.rx_recycle_freed);
    edi_services_stat(b, n, "rx_polled_reads", ns.rx_polled_reads);
    edi_services_stat(b, n, "rx_holds", ns.rx_holds);
    edi_services_stat(b, n, "closing_connections", ns.closing_connections);
    edi_services_stat(b, n, "closes_cut", ns.closes_cut);
    edi_services_stat(b, n, "shard_backlog", ns.shard_backlog);
    edi_services_stat(b, n, "shard_backlog_max", ns.shard_backlog_max);
    edi_services_stat(b, n, "auto_connect_waiting", ns.auto_connect_waiting);
    edi_services_stat(b, n, "auto_connect_waiting_bytes", ns.auto_connect_waiting_bytes);
    edi_services_stat(b, n, "auto_connect_waiting_max", ns.auto_connect_waiting_max);
    edi_services_stat(b, n, "auto_connect_refused", ns.auto_connect_refused);
    edi_services_stat(b, n, "lane_switches", ns.lane_switches);
    edi_services_stat(b, n, "lane_peer_switches", ns.lane_peer_switches);
    edi_services_stat(b, n, "lane_setups_failed", ns.lane_setups_failed);
    edi_services_stat(b, n, "lane_setup_timeouts", ns.lane_setup_timeouts);
    edi_services_stat(b, n, "lane_aborts_declined", ns.lane_aborts_declined);
    edi_services_stat(b, n, "lane_held_bytes_max", ns.lane_held_bytes_max);
    edi_services_stat(b, n, "lane_hold_overflows", ns.lane_hold_overflows);
    edi_services_stat(b, n, "lane_close_unacked", ns.lane_close_unacked);
    edi_services_stat(b, n, "lane_offers_withheld", ns.lane_offers_withheld);
#ifdef EDIST_HAVE_DPDK
    /* The DPDK lane: its port and the link protocol over it (all links). */
    if (node->dpdk_lane) {
        edi_dpdk_lane_stats ls;
        edi_dpdk_lane_get_stats(node->dpdk_lane, &ls);
        edi_services_stat(b, n, "lane_links", ls.links);
        edi_services_stat(b, n, "lane_frames_out", ls.link.frames_out);
        edi_services_stat(b, n, "lane_frames_in", ls.link.frames_in);
        edi_services_stat(b, n, "lane_messages_out", ls.link.messages_out);
        edi_services_stat(b, n, "lane_messages_in", ls.link.messages_in);
        edi_services_stat(b, n, "lane_bytes_out", ls.link.bytes_out);
        edi_services_stat(b, n, "lane_bytes_in", ls.link.bytes_in);
        edi_services_stat(b, n, "lane_retransmits", ls.link.retransmits);
        edi_services_stat(b, n, "lane_rto_expired", ls.link.rto_expired);
        edi_services_stat(b, n, "lane_naks_sent", ls.link.naks_sent);
        edi_services_stat(b, n, "lane_naks_received", ls.link.naks_received);
        edi_services_stat(b, n, "lane_duplicates", ls.link.duplicates);
        edi_services_stat(b, n, "lane_out_of_order", ls.link.out_of_order);
        edi_services_stat(b, n, "lane_window_stalls", ls.link.window_stalls);
        edi_services_stat(b, n, "lane_bad_frames", ls.link.bad_frames);
        edi_services_stat(b, n, "lane_unknown_token", ls.rx_unknown_token);
        edi_services_stat(b, n, "lane_early_frames", ls.rx_early);
        edi_services_stat(b, n, "lane_foreign", ls.rx_foreign + ls.port.rx_foreign);
        edi_services_stat(b, n, "lane_arp_replies", ls.arp_replies);
        edi_services_stat(b, n, "lane_tx_lost", ls.tx_lost);
        edi_services_stat(b, n, "lane_frames_by_reference", ls.link.data_frames_by_ref);
        edi_services_stat(b, n, "lane_zc_orphans", ls.port.zc_orphans);
        edi_services_stat(b, n, "lane_zc_untracked", ls.port.zc_untracked);
        edi_services_stat(b, n, "lane_pool_lows", node->lane_pool_lows);
        edi_services_stat(b, n, "lane_pool_in_use", ls.port.pool_in_use);
        edi_services_stat(b, n, "lane_pool_size", ls.port.pool_size);
        edi_services_stat(b, n, "lane_port_imissed", ls.port.imissed);
        edi_services_stat(b, n, "lane_port_rx_nombuf", ls.port.rx_nombuf);
        edi_services_stat(b, n, "lane_port_rx_frames", ls.port.rx_frames);
        edi_services_stat(b, n, "lane_tx_no_buffer", ls.link.tx_no_buffer);
        edi_services_stat(b, n, "lane_port_tx_alloc_failed", ls.port.tx_alloc_failed);
        /* frames the port dropped: larger than one mbuf (a peer with
         * larger frames), queued at a link down; a memif peer's memory
         * gone under a burst (the port is then dead) and what it lost */
        edi_services_stat(b, n, "lane_port_rx_too_large", ls.port.rx_dropped_multiseg);
        edi_services_stat(b, n, "lane_port_tx_dropped", ls.port.tx_dropped);
        edi_services_stat(b, n, "lane_port_faults", ls.port.device_faults);
        edi_services_stat(b, n, "lane_port_tx_lost_in_fault", ls.port.tx_lost_in_fault);
        edi_services_stat(b, n, "lane_short_frames", ls.rx_short);
        edi_services_stat(b, n, "lane_injected_drops", ls.injected_drops);
        edi_services_stat(b, n, "lane_window_closes", ls.window_closes);
        edi_services_stat(b, n, "lane_beyond_window", ls.link.beyond_window);
        edi_services_stat(b, n, "lane_held_full", ls.link.held_full);
        edi_services_stat(b, n, "lane_held_dropped", ls.link.held_dropped);
        edi_services_stat(b, n, "lane_send_buffer_full", ls.link.send_eagain);
        edi_services_stat(b, n, "lane_links_dead", ls.links_dead);
        edi_services_stat(b, n, "lane_port_start_retries", ls.port.start_retries);
        lane_links_ctx lc = {.count = 0};
        edist_buf_init(&lc.each);
        edi_nk_lane_links(node->nk, lane_link_stat, &lc);
        edist_enc_atomz(b, "lane_link_stats");
        if (lc.count) {
            edist_enc_list(b, lc.count);
            edist_enc_raw(b, lc.each.data, lc.each.len);
        }
        edist_enc_nil(b);
        (*n)++;
        rc = edist_buf_error(&lc.each);
        edist_buf_free(&lc.each);
        if (rc)
            return rc;
    }
#endif
    edi_services_stat(b, n, "messages_over_limit", ns.messages_over_limit);
    /* Admission of incoming connections. */
    edi_services_stat(b, n, "handshakes_evicted", ns.handshakes_evicted);
    edi_services_stat(b, n, "handshakes_evicted_named", ns.handshakes_evicted_named);
    edi_services_stat(b, n, "first_message_timeouts",
                      ns.first_message_timeouts);
    edi_services_stat(b, n, "handshakes_refused_address",
                      ns.handshakes_refused_address);
    edi_services_stat(b, n, "handshakes_refused_full",
                      ns.handshakes_refused_full);
    edi_services_stat(b, n, "handshakes_accepted", ns.handshakes_accepted);
    edi_services_stat(b, n, "handshakes_refused_auth", ns.handshakes_refused_auth);
    edi_services_stat(b, n, "handshakes_refused_protocol", ns.handshakes_refused_protocol);
    edi_services_stat(b, n, "handshakes_timed_out", ns.handshakes_timed_out);
    edi_services_stat(b, n, "messages_in_place", ns.messages_in_place);
    edi_services_stat(b, n, "lane_queue_full", ns.lane_queue_full);
    edi_services_stat(b, n, "messages_uncopied", ns.messages_uncopied);
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
        edist_enc_map(&each, PEER_STAT_KEYS);
        edi_services_stat(&each, &k, "messages_sent", ps.messages_sent);
        edi_services_stat(&each, &k, "messages_received", ps.messages_received);
        edi_services_stat(&each, &k, "bytes_sent", ps.bytes_sent);
        edi_services_stat(&each, &k, "bytes_received", ps.bytes_received);
        edi_services_stat(&each, &k, "send_queue_bytes", ps.send_queue_bytes);
        edi_services_stat(&each, &k, "send_queue_messages", ps.send_queue_messages);
        edi_services_stat(&each, &k, "send_queue_senders", ps.send_queue_senders);
        edi_services_stat(&each, &k, "send_queue_max_bytes", ps.send_queue_max_bytes);
        edi_services_stat(&each, &k, "send_queue_limit_bytes", ps.send_queue_limit_bytes);
        edi_services_stat(&each, &k, "sends_busy", ps.sends_busy);
        edi_services_stat(&each, &k, "fragments_sent", ps.fragments_sent);
        edi_services_stat(&each, &k, "fragments_received", ps.fragments_received);
        edi_services_stat(&each, &k, "send_sequences_waited", ps.send_sequences_waited);
        edi_services_stat(&each, &k, "reassembly_sequences", ps.reassembly_sequences);
        edi_services_stat(&each, &k, "reassembly_bytes", ps.reassembly_bytes);
        edi_services_stat(&each, &k, "ticks_sent", ps.ticks_sent);
        edi_services_stat(&each, &k, "ticks_received", ps.ticks_received);
        edi_services_stat(&each, &k, "connection_id", ps.connection_id);
        edi_services_stat(&each, &k, "send_wait_count", ps.send_wait_count);
        edi_services_stat(&each, &k, "send_wait_p50_ns", ps.send_wait_p50_ns);
        edi_services_stat(&each, &k, "send_wait_p90_ns", ps.send_wait_p90_ns);
        edi_services_stat(&each, &k, "send_wait_p99_ns", ps.send_wait_p99_ns);
        edi_services_stat(&each, &k, "send_wait_p999_ns", ps.send_wait_p999_ns);
        edi_services_stat(&each, &k, "send_wait_max_ns", ps.send_wait_max_ns);
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

int edist_global_set_resolver(edist_node *node, edist_global_resolve_fn fn, void *user)
{
    if (!node || !node->services)
        return edist_set_error(EDIST_EINVAL, "global: no node");
    edi_services *s = node->services;
    pthread_mutex_lock(&s->resolver_mu);
    s->resolver = fn;
    s->resolver_user = user;
    pthread_mutex_unlock(&s->resolver_mu);
    return 0;
}

static void svc_disconnect(void *user, const char *node)
{
    edist_node *n = user;
    edi_nk_disconnect(n->nk, node);
}

int edi_node_services_start(edist_node *n)
{
    edi_services_config sc = {
        .user = n,
        .nodes = svc_nodes,
        .connected = svc_connected,
        .is_alive = svc_is_alive,
        .print_line = svc_print_line,
        .monitor_nodes = svc_monitor_nodes,
        .disconnect = svc_disconnect,
        .global_passive = !n->cfg.connect_all,
        .global_call_timeout_ms = n->cfg.global_call_timeout_ms,
        .service_restarts = n->cfg.service_restarts,
        .service_restart_period_ms = n->cfg.service_restart_period_ms,
        .stats_path = n->stats_path[0] ? n->stats_path : NULL,
        .stats_interval_ms = n->cfg.stats_interval_ms,
        .stats = svc_stats,
    };
    return edi_services_start((edist_runtime *)n->rt, &sc, &n->services);
}
