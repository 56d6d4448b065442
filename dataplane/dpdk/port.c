/* SPDX-License-Identifier: Apache-2.0 */
/* DPDK ports: bring-up, link state, raw frames in and out (see dpdk.h). */
#include <net/if.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <rte_byteorder.h>
#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mbuf_pool_ops.h>
#include <rte_memory.h>
#include <rte_mempool.h>

#include "base/clock.h"
#include "dataplane/dpdk/dpdk.h"
#include "dataplane/dpdk/dpdk_internal.h"
#include "edist/error.h"

#define DESCRIPTORS_DEFAULT 1024u
#define POOL_MBUFS_DEFAULT 8191u
#define POOL_CACHE_DEFAULT 256u
#define TX_PENDING_DEFAULT 1024u
#define JUMBO_PAYLOAD_MAX_BYTES 9216u
#define QUEUES_MAX 64u
#define TX_BURST_MAX 64u

/* Counters: written by one thread (the queue's), read by any. */
typedef _Atomic uint64_t counter;
#define COUNT(c, n) \
    atomic_store_explicit(&(c), atomic_load_explicit(&(c), memory_order_relaxed) + (n), \
                          memory_order_relaxed)
#define READ(c) atomic_load_explicit(&(c), memory_order_relaxed)

/* One rx queue's state, on its own cache lines. */
typedef struct rxq {
    /* Set while the thread is inside the device's burst function; the
     * link-down path waits for it to clear (see link_set). */
    atomic_bool in_device;
    counter bursts, frames, foreign, multiseg;
} __rte_cache_aligned rxq;

typedef struct txq {
    atomic_bool in_device;
    struct rte_mbuf **pending; /* committed, in order, [0, count) */
    uint32_t count, limit;
    _Atomic uint32_t count_seen; /* count, for readers off-thread */
    counter bursts, frames, full, refused, dropped;
    /* memif zero-copy client: the segments its PMD holds until the server
     * took them, oldest first, each with a reference of ours and the
     * link's epoch (link_changes) when it was handed over (zc_hold) */
    struct rte_mbuf **zc_held;
    uint64_t *zc_epoch;
    uint32_t zc_head, zc_count;
    bool zc_untracked; /* a segment went untracked: zc_count undercounts */
    counter zc_orphans;
    counter zc_untracked_times; /* holds that found no room to track */
} __rte_cache_aligned txq;

struct edi_dpdk_port {
    uint16_t port_id;
    uint16_t n_rxq, n_txq;
    char name[RTE_ETH_NAME_MAX_LEN];
    struct rte_mempool *pool;
    uint32_t payload_max;
    bool lsc_interrupt;
    bool rx_all;
    bool started;
    /* A memif client connects once, at start, and never again by itself:
     * when its server's socket was not there, when the server had not
     * started its device yet (it answers "no such device" and the client
     * gives up; both nodes starting at once did that in 3 of 4 runs), or
     * when the server went away. So while its link is down it is started
     * again (stopped first) from edi_dpdk_port_link: START_RETRY_NS after
     * a failed start, CONNECT_WAIT_NS after one that did not connect. */
    bool memif_client;
    /* A memif zero-copy client: the server reads our buffers where they
     * are, so frames may carry data by reference (edi_dpdk_tx_attach),
     * and what it transmits is held by the PMD until the server took it
     * (zc_hold). */
    bool zc_client;
    uint32_t zc_ring_slots; /* its ring's slots (rsize) */
    /* A zero-copy client that was connected once cannot connect again:
     * DPDK 22.11's memif, at the disconnect, closes the memory files it
     * gave the server (memif_free_regions closes DPDK's own memseg fds)
     * and hands the stale numbers to the next server, whose mmap fails
     * ("mmap failed: No such device"; seen every time a server node was
     * restarted). Once its link went down after being up, the port is
     * unusable (edi_dpdk_port_usable) and no longer restarted. */
    atomic_bool zc_was_up;
    uint64_t start_tried_ns;
    uint64_t start_retries;
    /* memif: bursts run under the fault guard (see below); a fault marks
     * the port dead until it is closed. */
    bool fault_guard;
    atomic_bool faulted;
    counter device_faults;   /* any thread of this port: only the faulting one writes */
    counter tx_lost_in_fault;
    atomic_bool link_up;
    atomic_bool closing;
    counter link_changes;
    _Atomic uint64_t tx_alloc_failed; /* any thread: fetch_add */
    /* Received frames handed up and not released yet: any thread. Not the
     * pool's in-use count, which also holds what the PMD keeps (af_xdp
     * leaves its fill ring's mbufs out of the pool after close). */
    _Atomic uint64_t rx_held;
    edi_dpdk_link_fn on_link;
    void *on_link_user;
    uint8_t mac[6];
    rxq *rxq;
    txq *txq;
};

/* Open ports by DPDK port id: one edist port per device. */
static edi_dpdk_port *open_ports[RTE_MAX_ETHPORTS];

/* ---- received mbufs as rxbufs -------------------------------------------------
 * The edi_rxbuf of an mbuf lives in the mbuf's private area, which DPDK
 * puts right after struct rte_mbuf and never touches: no allocation per
 * frame, and the rxbuf finds its mbuf by address. */

static edi_rxbuf *mbuf_rxbuf(struct rte_mbuf *m) { return rte_mbuf_to_priv(m); }

static void mbuf_release(edi_rxbuf *b)
{
    struct rte_mbuf *m = (struct rte_mbuf *)((uint8_t *)b - sizeof(struct rte_mbuf));
    edi_dpdk_port *p = b->owner;
    /* Any thread: through the lcore's cache on a registered one, else
     * straight to the pool's multi-producer ring. */
    rte_pktmbuf_free(m);
    atomic_fetch_sub_explicit(&p->rx_held, 1, memory_order_release);
}

/* ---- the fault guard ------------------------------------------------------------
 * memif (DPDK 22.11) has no link interrupt, and when its peer goes its
 * control thread (EAL's interrupt thread) unmaps the peer's memory while
 * a shard may be inside a burst that checked "connected" a moment before:
 * seen as a crash in about 1 of 20 peer kills in test dpdk_memif. Nothing
 * outside the PMD can order the two, so a burst on such a port runs with
 * a jump buffer set, and a SIGSEGV/SIGBUS on that thread while it is set
 * jumps back out of the PMD: the burst returns 0, the port is marked
 * faulted (down for good, until closed) and what the interrupted burst
 * had taken is leaked and counted. Any other fault goes to the handler
 * that was there before (or kills the process as it would have). */

static __thread sigjmp_buf *fault_jump;
static struct sigaction fault_previous_segv, fault_previous_bus;
static pthread_once_t fault_once = PTHREAD_ONCE_INIT;

static void fault_handler(int sig, siginfo_t *info, void *context)
{
    sigjmp_buf *jump = fault_jump;
    if (jump != NULL) {
        fault_jump = NULL;
        siglongjmp(*jump, 1);
    }
    const struct sigaction *prev = sig == SIGBUS ? &fault_previous_bus : &fault_previous_segv;
    if ((prev->sa_flags & SA_SIGINFO) && prev->sa_sigaction != NULL) {
        prev->sa_sigaction(sig, info, context);
        return;
    }
    if (!(prev->sa_flags & SA_SIGINFO) && prev->sa_handler != SIG_DFL &&
        prev->sa_handler != SIG_IGN) {
        prev->sa_handler(sig);
        return;
    }
    /* The default: returning re-runs the faulting instruction, which now
     * kills the process as it would have without us. */
    signal(sig, SIG_DFL);
}

static void fault_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = fault_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &fault_previous_segv);
    sigaction(SIGBUS, &sa, &fault_previous_bus);
}

/* The handler left by a jump, so the kernel still blocks the signal it
 * blocked for the handler (the jump buffers do not save the mask: that
 * would cost a system call per burst): unblocked, or the next fault on
 * this thread, caught or not, would kill the process outright. */
static void fault_unblock(void)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGSEGV);
    sigaddset(&s, SIGBUS);
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
}

/* On the faulting thread, inside the device (so link_set's wait would
 * wait for itself): the link goes down here without it. */
static void port_faulted(edi_dpdk_port *p)
{
    atomic_store(&p->faulted, true);
    COUNT(p->device_faults, 1);
    if (atomic_exchange(&p->link_up, false)) {
        COUNT(p->link_changes, 1);
        if (p->on_link != NULL)
            p->on_link(p->on_link_user, p, false);
    }
}

/* ---- link state ----------------------------------------------------------------- */

static void wait_out_of_device(edi_dpdk_port *p)
{
    for (uint16_t q = 0; q < p->n_rxq; q++)
        while (atomic_load(&p->rxq[q].in_device))
            rte_pause();
    for (uint16_t q = 0; q < p->n_txq; q++)
        while (atomic_load(&p->txq[q].in_device))
            rte_pause();
}

/* Records a new link state. Going down, it waits until no data-path
 * thread is inside the device's burst functions: those test link_up
 * after raising in_device (both seq_cst, pairing with the store and the
 * loads here), so once this returns none will enter again while down. */
static void link_set(edi_dpdk_port *p, bool up)
{
    if (atomic_load(&p->faulted))
        up = false;
    bool was = atomic_exchange(&p->link_up, up);
    if (was == up)
        return;
    if (up && p->zc_client)
        atomic_store(&p->zc_was_up, true);
    COUNT(p->link_changes, 1);
    if (!up)
        wait_out_of_device(p);
    if (p->on_link != NULL)
        p->on_link(p->on_link_user, p, up);
}

static int lsc_event(uint16_t port_id, enum rte_eth_event_type type, void *arg,
                     void *ret_param)
{
    (void)type;
    (void)ret_param;
    edi_dpdk_port *p = arg;
    struct rte_eth_link link;
    if (p == NULL || p->port_id != port_id || rte_eth_link_get_nowait(port_id, &link) != 0)
        return 0;
    link_set(p, link.link_status == RTE_ETH_LINK_UP);
    return 0;
}

/* A zero-copy client connected once and down now (see zc_was_up). */
static bool zc_cannot_reconnect(edi_dpdk_port *p)
{
    return p->zc_client && atomic_load(&p->zc_was_up) && !atomic_load(&p->link_up);
}

bool edi_dpdk_port_usable(edi_dpdk_port *p, char *why, size_t cap)
{
    /* memif raises no link event: a server gone while no lane link
     * waited (nothing polled the link) is seen here */
    struct rte_eth_link link;
    if (p->zc_client && !p->lsc_interrupt && !atomic_load(&p->closing) &&
        rte_eth_link_get_nowait(p->port_id, &link) == 0)
        link_set(p, link.link_status == RTE_ETH_LINK_UP);
    if (atomic_load(&p->faulted)) {
        snprintf(why, cap, "a fault inside the memif device (its peer's memory went away "
                           "under a burst): the port is dead until the node restarts");
        return false;
    }
    if (zc_cannot_reconnect(p)) {
        snprintf(why, cap, "its memif server went away, and a zero-copy client cannot "
                           "connect again in this DPDK (its memif closed the memory files "
                           "it gives servers) until the node restarts; memif zero-copy=no "
                           "reconnects");
        return false;
    }
    return true;
}

#define START_RETRY_NS 100000000ull
/* A started client's handshake takes milliseconds; a slow machine must
 * not have it cut short. */
#define CONNECT_WAIT_NS 1000000000ull

/* On the interrupt thread, as the driver's own teardown of a client whose
 * server left (see device_stop_close). */
static void client_restart(void *arg)
{
    edi_dpdk_port *p = arg;
    struct rte_eth_link link;
    /* Connected meanwhile (the driver's handshake runs on this thread):
     * nothing to do. */
    if (p->started && rte_eth_link_get_nowait(p->port_id, &link) == 0 &&
        link.link_status == RTE_ETH_LINK_UP)
        return;
    p->start_retries++;
    if (p->started)
        rte_eth_dev_stop(p->port_id);
    p->started = rte_eth_dev_start(p->port_id) == 0;
}

void edi_dpdk_port_link(edi_dpdk_port *p, edi_dpdk_link *out)
{
    struct rte_eth_link link;
    memset(out, 0, sizeof(*out));
    /* The state first: nobody may have asked since the client connected
     * (the lane asks only while a link waits), and a restart on a stale
     * "down" would cut a working connection. */
    if (!atomic_load(&p->closing) && rte_eth_link_get_nowait(p->port_id, &link) == 0) {
        if (!p->lsc_interrupt)
            link_set(p, link.link_status == RTE_ETH_LINK_UP);
        out->speed_mbps = link.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN ? 0 : link.link_speed;
    }
    if (p->memif_client && !atomic_load(&p->closing) && !atomic_load(&p->link_up) &&
        !atomic_load(&p->faulted) && !zc_cannot_reconnect(p) &&
        edi_now_ns() - p->start_tried_ns >= (p->started ? CONNECT_WAIT_NS : START_RETRY_NS)) {
        edi_dpdk_on_interrupt_thread(client_restart, p);
        p->start_tried_ns = edi_now_ns();
    }
    out->up = atomic_load(&p->link_up);
    out->changes = READ(p->link_changes);
    out->events = p->lsc_interrupt;
}

int edi_dpdk_port_wait_link(edi_dpdk_port *p, uint32_t timeout_ms)
{
    edi_dpdk_link link;
    for (uint32_t waited = 0;; waited++) {
        edi_dpdk_port_link(p, &link);
        if (link.up)
            return 0;
        if (waited >= timeout_ms)
            return edist_set_error(EDIST_ETIMEDOUT, "DPDK port %s: link not up after %u ms",
                                   p->name, timeout_ms);
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

/* ---- open / close --------------------------------------------------------------- */

/* One sentence: the step, DPDK's error and its last log line if any. */
static int port_fail(edi_dpdk_port *p, int err, const char *step, int dpdk_rc)
{
    char last[256];
    edi_dpdk_log_last(last, sizeof(last));
    return edist_set_error(err, "DPDK port %s: %s failed: %s%s%s", p->name, step,
                           rte_strerror(dpdk_rc < 0 ? -dpdk_rc : dpdk_rc),
                           last[0] != '\0' ? ": " : "", last);
}

static void port_free(edi_dpdk_port *p)
{
    if (p->txq != NULL)
        for (uint16_t q = 0; q < p->n_txq; q++) {
            free(p->txq[q].pending);
            free(p->txq[q].zc_held);
            free(p->txq[q].zc_epoch);
        }
    rte_free(p->rxq);
    rte_free(p->txq);
    free(p);
}

/* memif's role is client unless its arguments say server. */
static bool memif_server(const struct rte_device *dev)
{
    const struct rte_devargs *da = rte_dev_devargs(dev);
    return da != NULL && da->args != NULL && strstr(da->args, "role=server") != NULL;
}

/* memif's ring: 2^rsize slots, 2^10 unless its arguments say. */
static uint32_t memif_ring_slots(const struct rte_device *dev)
{
    const struct rte_devargs *da = rte_dev_devargs(dev);
    const char *at = da != NULL && da->args != NULL ? strstr(da->args, "rsize=") : NULL;
    unsigned long log2 = at != NULL ? strtoul(at + 6, NULL, 0) : 10;
    return log2 >= 1 && log2 <= 16 ? 1u << log2 : 1u << 10;
}

static bool memif_zero_copy(const struct rte_device *dev)
{
    const struct rte_devargs *da = rte_dev_devargs(dev);
    return da != NULL && da->args != NULL && strstr(da->args, "zero-copy=yes") != NULL;
}

/* The MTU of the kernel interface a PMD sits on (af_xdp, af_packet:
 * devarg iface=NAME), or 0 (none, or unknown). Those PMDs state what their
 * buffers hold (af_xdp ~3.8 KB), but the kernel drops a frame over the
 * interface's MTU (a veth's 1500 by default; counted only in the peer
 * veth's rx_dropped, in no counter of the port). */
static uint32_t kernel_iface_mtu(const struct rte_eth_dev_info *info)
{
    const struct rte_devargs *da = rte_dev_devargs(info->device);
    const char *at = da != NULL && da->args != NULL ? strstr(da->args, "iface=") : NULL;
    if (at == NULL)
        return 0;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    at += 6;
    size_t len = strcspn(at, ",");
    if (len == 0 || len >= sizeof(ifr.ifr_name))
        return 0;
    memcpy(ifr.ifr_name, at, len);
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return 0;
    int rc = ioctl(s, SIOCGIFMTU, &ifr);
    close(s);
    return rc == 0 && ifr.ifr_mtu > 0 ? (uint32_t)ifr.ifr_mtu : 0;
}

/* The mbuf pool. packed: its objects one after the other, none moved to
 * the next page to keep it within one (which DPDK does for IOVA-contiguous
 * objects on 4 KiB pages, without hugepages). DPDK 22.11's af_xdp PMD
 * gives the kernel the pool's memory as count objects of their size from
 * the first: with 2.5 KiB objects one to a 4 KiB page, the upper third of
 * the pool lay outside it. Those mbufs, once a flood put them in the fill
 * ring, were buffers the kernel could not use: it dropped everything and
 * the port stopped receiving. af_xdp takes virtual addresses, so packed
 * objects need no IOVA contiguity. */
static struct rte_mempool *pool_create(const char *name, uint32_t count, uint32_t cache,
                                       uint16_t priv, uint16_t room, int socket, bool packed)
{
    if (!packed)
        return rte_pktmbuf_pool_create(name, count, cache, priv, room, socket);
    struct rte_mempool *mp = rte_mempool_create_empty(
        name, count, sizeof(struct rte_mbuf) + priv + room, cache,
        sizeof(struct rte_pktmbuf_pool_private), socket, RTE_MEMPOOL_F_NO_IOVA_CONTIG);
    if (mp == NULL)
        return NULL;
    struct rte_pktmbuf_pool_private pp = {.mbuf_data_room_size = room, .mbuf_priv_size = priv};
    if (rte_mempool_set_ops_byname(mp, rte_mbuf_best_mempool_ops(), NULL) != 0)
        goto fail;
    rte_pktmbuf_pool_init(mp, &pp);
    if (rte_mempool_populate_default(mp) < 0 || mp->nb_mem_chunks != 1)
        goto fail;
    rte_mempool_obj_iter(mp, rte_pktmbuf_init, NULL);
    return mp;
fail:
    rte_mempool_free(mp);
    if (rte_errno == 0)
        rte_errno = ENOMEM;
    return NULL;
}

static int port_setup(edi_dpdk_port *p, const edi_dpdk_port_config *cfg)
{
    char stale[8];
    edi_dpdk_log_last(stale, sizeof(stale)); /* a line from before is no detail of ours */
    struct rte_eth_dev_info info;
    int rc = rte_eth_dev_info_get(p->port_id, &info);
    if (rc != 0)
        return port_fail(p, EDIST_EIO, "device info", rc);
    if (p->n_rxq > info.max_rx_queues || p->n_txq > info.max_tx_queues)
        return edist_set_error(EDIST_EINVAL, "DPDK port %s: %u rx / %u tx queues asked, %u / %u possible",
                               p->name, p->n_rxq, p->n_txq, info.max_rx_queues,
                               info.max_tx_queues);

    /* The MTU: what was asked, else the largest the port takes, from its
     * largest frame less its overhead (as ethdev counts it). */
    uint32_t overhead = RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN;
    if (info.max_mtu != UINT16_MAX && info.max_rx_pktlen > info.max_mtu)
        overhead = info.max_rx_pktlen - info.max_mtu;
    uint32_t device_max = info.max_rx_pktlen > overhead ? info.max_rx_pktlen - overhead : 0;
    if (device_max > info.max_mtu)
        device_max = info.max_mtu;
    uint32_t port_max = device_max;
    /* memif states 1518 bytes but does not hold to it: a frame up to its
     * buffer size (bsize, 2048 by default) fits one ring slot, so that is
     * its limit (the device is still configured with the MTU it states).
     * Larger frames span several slots, and DPDK 22.11's memif then glued
     * some ~200 frames into one (seen in test dpdk_memif): we keep every
     * frame to one slot, and jumbo frames need bsize=9728 or so. */
    if (info.driver_name != NULL && strcmp(info.driver_name, "net_memif") == 0) {
        uint32_t bsize = 2048;
        const struct rte_devargs *da = rte_dev_devargs(info.device);
        const char *at = da != NULL && da->args != NULL ? strstr(da->args, "bsize=") : NULL;
        if (at != NULL)
            bsize = (uint32_t)strtoul(at + 6, NULL, 0);
        port_max = bsize > EDI_DPDK_ETH_HEADER_BYTES ? bsize - EDI_DPDK_ETH_HEADER_BYTES : 0;
        p->fault_guard = true;
        pthread_once(&fault_once, fault_install);
    }
    uint32_t iface_mtu = kernel_iface_mtu(&info);
    if (iface_mtu != 0 && port_max > iface_mtu)
        port_max = iface_mtu;
    if (port_max > JUMBO_PAYLOAD_MAX_BYTES)
        port_max = JUMBO_PAYLOAD_MAX_BYTES;
    if (cfg->pool_data_room_bytes != 0) {
        if (cfg->pool_data_room_bytes <= EDI_DPDK_ETH_HEADER_BYTES + info.min_mtu)
            return edist_set_error(EDIST_EINVAL, "DPDK port %s: pool data room %u too small",
                                   p->name, cfg->pool_data_room_bytes);
        if (cfg->pool_data_room_bytes - EDI_DPDK_ETH_HEADER_BYTES < port_max)
            port_max = cfg->pool_data_room_bytes - EDI_DPDK_ETH_HEADER_BYTES;
    }
    uint32_t mtu = cfg->mtu_bytes;
    if (mtu == 0 || mtu > port_max)
        mtu = port_max;
    if (mtu < info.min_mtu)
        return edist_set_error(EDIST_EINVAL, "DPDK port %s: MTU %u below the port's minimum %u",
                               p->name, mtu, info.min_mtu);

    /* The pool: our rxbuf in each mbuf's private area; room for one
     * whole frame per mbuf (DPDK adds a 4-byte slack for CRC on some
     * NICs: keep it). */
    uint32_t data_room = cfg->pool_data_room_bytes ? cfg->pool_data_room_bytes
                                                   : mtu + EDI_DPDK_ETH_HEADER_BYTES + 4u;
    /* Not below DPDK's usual 2048: af_packet receives into an mbuf a
     * whole kernel frame slot (2016 bytes by default), whatever the MTU. */
    if (cfg->pool_data_room_bytes == 0 && data_room < RTE_MBUF_DEFAULT_DATAROOM)
        data_room = RTE_MBUF_DEFAULT_DATAROOM;
    uint32_t count = cfg->pool_mbufs ? cfg->pool_mbufs : POOL_MBUFS_DEFAULT;
    uint32_t cache = cfg->pool_cache_mbufs ? cfg->pool_cache_mbufs : POOL_CACHE_DEFAULT;
    if (cache > RTE_MEMPOOL_CACHE_MAX_SIZE)
        cache = RTE_MEMPOOL_CACHE_MAX_SIZE;
    if (cache > count / 4)
        cache = count / 4; /* DPDK's rule: caches hold at most a share of the pool */
    char pool_name[RTE_MEMPOOL_NAMESIZE];
    static atomic_uint pool_serial;
    snprintf(pool_name, sizeof(pool_name), "edi%u_%u", p->port_id,
             atomic_fetch_add(&pool_serial, 1));
    uint16_t priv = (uint16_t)RTE_ALIGN(sizeof(edi_rxbuf), RTE_MBUF_PRIV_ALIGN);
    if (data_room + RTE_PKTMBUF_HEADROOM > UINT16_MAX)
        return edist_set_error(EDIST_EINVAL, "DPDK port %s: data room %u too large", p->name,
                               data_room);
    bool af_xdp = info.driver_name != NULL && strcmp(info.driver_name, "net_af_xdp") == 0;
    p->pool = pool_create(pool_name, count, cache, priv,
                          (uint16_t)(data_room + RTE_PKTMBUF_HEADROOM),
                          rte_eth_dev_socket_id(p->port_id), af_xdp && !rte_eal_has_hugepages());
    if (p->pool == NULL)
        return edist_set_error(EDIST_ENOMEM,
                               "DPDK port %s: mbuf pool of %u x %u bytes does not fit: %s",
                               p->name, count, data_room, rte_strerror(rte_errno));
    p->payload_max = mtu;

    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof(conf));
    conf.rxmode.mtu = mtu < device_max ? mtu : device_max;
    p->lsc_interrupt = (*info.dev_flags & RTE_ETH_DEV_INTR_LSC) != 0;
    conf.intr_conf.lsc = p->lsc_interrupt ? 1 : 0;
    rc = rte_eth_dev_configure(p->port_id, p->n_rxq, p->n_txq, &conf);
    if (rc != 0)
        return port_fail(p, EDIST_EIO, "configure", rc);
    uint16_t rxd = cfg->rx_descriptors ? cfg->rx_descriptors : DESCRIPTORS_DEFAULT;
    uint16_t txd = cfg->tx_descriptors ? cfg->tx_descriptors : DESCRIPTORS_DEFAULT;
    rc = rte_eth_dev_adjust_nb_rx_tx_desc(p->port_id, &rxd, &txd);
    if (rc != 0)
        return port_fail(p, EDIST_EIO, "descriptor counts", rc);
    int socket = rte_eth_dev_socket_id(p->port_id);
    for (uint16_t q = 0; q < p->n_rxq; q++) {
        rc = rte_eth_rx_queue_setup(p->port_id, q, rxd, (unsigned)socket, NULL, p->pool);
        if (rc != 0)
            return port_fail(p, EDIST_EIO, "rx queue setup", rc);
    }
    for (uint16_t q = 0; q < p->n_txq; q++) {
        rc = rte_eth_tx_queue_setup(p->port_id, q, txd, (unsigned)socket, NULL);
        if (rc != 0)
            return port_fail(p, EDIST_EIO, "tx queue setup", rc);
    }
    rc = rte_eth_dev_callback_register(p->port_id, RTE_ETH_EVENT_INTR_LSC, lsc_event, p);
    if (rc != 0)
        return port_fail(p, EDIST_EIO, "link event registration", rc);
    p->memif_client = p->fault_guard && !memif_server(info.device);
    p->zc_client = p->memif_client && memif_zero_copy(info.device);
    p->zc_ring_slots = memif_ring_slots(info.device);
    rc = rte_eth_dev_start(p->port_id);
    p->start_tried_ns = edi_now_ns();
    if (rc != 0 && p->memif_client) {
        /* its link stays down until a restart connects */
    } else if (rc != 0) {
        return port_fail(p, EDIST_EIO, "start", rc);
    } else {
        p->started = true;
    }
    if (cfg->promiscuous) {
        rc = rte_eth_promiscuous_enable(p->port_id);
        if (rc != 0 && rc != -ENOTSUP)
            return port_fail(p, EDIST_EIO, "promiscuous mode", rc);
    }
    struct rte_ether_addr mac;
    if (rte_eth_macaddr_get(p->port_id, &mac) == 0)
        memcpy(p->mac, mac.addr_bytes, 6);
    /* The state now; later changes come as events (or through
     * edi_dpdk_port_link's polling). */
    struct rte_eth_link link;
    if (rte_eth_link_get_nowait(p->port_id, &link) == 0 &&
        link.link_status == RTE_ETH_LINK_UP)
        link_set(p, true);
    return 0;
}

/* A PMD's control path runs on EAL's interrupt thread, one callback at a
 * time. memif's does, and when its peer goes it tears the connection down
 * there (memif_socket.c: memif_intr_handler -> memif_disconnect: link
 * down first, then the queues' event fds, then memif_free_regions, which
 * reads dev->process_private). A port closed on that link-down from our
 * thread ran rte_eth_dev_close across the teardown, which then read what
 * the close had freed (rte_eth_dev_release_port sets process_private to
 * NULL): a SIGSEGV on the interrupt thread (seen in CI; test dpdk_memif
 * holds that teardown open to show it every time). So the stop and close
 * run on the interrupt thread too, and the caller waits for them: they
 * come before or after the driver's own teardown, never in the middle. */
static void device_stop_close(void *arg)
{
    edi_dpdk_port *p = arg;
    /* Stop first (the device gives back its rx mbufs), then no more
     * events, then close (a vdev goes, with its socket). */
    if (p->started)
        rte_eth_dev_stop(p->port_id);
    rte_eth_dev_callback_unregister(p->port_id, RTE_ETH_EVENT_INTR_LSC, lsc_event, p);
    rte_eth_dev_close(p->port_id);
}

/* ---- what a memif zero-copy client's PMD holds ------------------------------------
 * DPDK 22.11's memif zero-copy transmit keeps each segment it sends until
 * the server took it, and frees it on a later transmit. When the server
 * goes away it drops its ring without freeing what it held (its next
 * connection starts a new one): every frame in flight then would be lost
 * to the pool, up to the ring's size each time a peer dies. So each
 * segment handed over carries a reference of ours too, kept here in
 * order: once the PMD let go of it (ours is the only one left) it goes
 * back to the pool; once the link changed since it was handed over, the
 * PMD never will, and ours is the last. */
#define ZC_HELD_MAX 65536u /* 4 ring's worth at memif's largest, 2^14 slots */
/* The same transmit, given more than 4 frames, places them 4 at a time
 * after checking for room for 4 slots, not for 4 frames: a chained frame
 * takes a slot per segment, and a group of chains overran the ring,
 * writing over descriptors the server had not read yet (seen: a frame's
 * header alone, with a sequence number 500 frames later, in the place of
 * an older frame). Given at most 4, it checks each frame's room; given
 * more, they must all fit (zc_burst). */
#define ZC_BURST_MAX 4u

static void zc_reclaim(edi_dpdk_port *p, txq *t, bool all)
{
    uint64_t epoch = READ(p->link_changes);
    while (t->zc_count > 0) {
        struct rte_mbuf *m = t->zc_held[t->zc_head];
        if (rte_mbuf_refcnt_read(m) > 1) {
            if (!all && t->zc_epoch[t->zc_head] == epoch)
                break; /* still the PMD's; later ones are too */
            rte_mbuf_refcnt_set(m, 1);
            COUNT(t->zc_orphans, 1);
        }
        rte_pktmbuf_free_seg(m);
        t->zc_head = (t->zc_head + 1) & (ZC_HELD_MAX - 1);
        t->zc_count--;
    }
}

/* After a burst: the frames the PMD took, each segment referenced once
 * more, in order. Without room (or memory) a segment is not tracked: it
 * goes back when the PMD frees it, or never if its server dies first. */
static void zc_hold(edi_dpdk_port *p, txq *t, struct rte_mbuf **frames, uint16_t n)
{
    if (t->zc_held == NULL) {
        t->zc_held = malloc(ZC_HELD_MAX * sizeof(t->zc_held[0]));
        t->zc_epoch = malloc(ZC_HELD_MAX * sizeof(t->zc_epoch[0]));
        if (t->zc_held == NULL || t->zc_epoch == NULL) {
            free(t->zc_held);
            free(t->zc_epoch);
            t->zc_held = NULL;
            t->zc_epoch = NULL;
            t->zc_untracked = true;
            COUNT(t->zc_untracked_times, 1);
            return;
        }
    }
    uint64_t epoch = READ(p->link_changes);
    for (uint16_t i = 0; i < n; i++)
        for (struct rte_mbuf *m = frames[i]; m != NULL; m = m->next) {
            if (t->zc_count == ZC_HELD_MAX) {
                t->zc_untracked = true;
                COUNT(t->zc_untracked_times, 1);
                return;
            }
            rte_mbuf_refcnt_update(m, 1);
            uint32_t at = (t->zc_head + t->zc_count) & (ZC_HELD_MAX - 1);
            t->zc_held[at] = m;
            t->zc_epoch[at] = epoch;
            t->zc_count++;
        }
}

/* How many of the n frames at frames to hand a zero-copy memif at once.
 * Its slots still taken are at most what we track as held (it frees more
 * at the start of the call, never fewer): frames whose segments all fit
 * in the rest cannot overrun its ring, however it groups them. Without a
 * count to trust, ZC_BURST_MAX. */
static uint16_t zc_burst(const edi_dpdk_port *p, const txq *t, struct rte_mbuf **frames,
                         uint16_t n)
{
    uint16_t safe = n < ZC_BURST_MAX ? n : ZC_BURST_MAX;
    if (t->zc_untracked || t->zc_count >= p->zc_ring_slots)
        return safe;
    uint32_t room = p->zc_ring_slots - t->zc_count, segs = 0;
    uint16_t fit = 0;
    while (fit < n && segs + frames[fit]->nb_segs <= room)
        segs += frames[fit++]->nb_segs;
    return fit > safe ? fit : safe;
}

static void port_teardown(edi_dpdk_port *p)
{
    atomic_store(&p->closing, true);
    atomic_store(&p->link_up, false);
    wait_out_of_device(p);
    for (uint16_t q = 0; q < p->n_txq; q++)
        edi_dpdk_tx_drop_pending(p, q);
    edi_dpdk_on_interrupt_thread(device_stop_close, p);
    for (uint16_t q = 0; q < p->n_txq; q++)
        zc_reclaim(p, &p->txq[q], true);
}

int edi_dpdk_port_open(const edi_dpdk_port_config *cfg, edi_dpdk_port **out)
{
    *out = NULL;
    if (!edi_dpdk_eal_up())
        return edist_set_error(EDIST_EINVAL, "DPDK EAL not started");
    if (cfg == NULL || cfg->device == NULL || cfg->device[0] == '\0')
        return edist_set_error(EDIST_EINVAL, "DPDK port: no device name");
    uint16_t port_id;
    if (rte_eth_dev_get_port_by_name(cfg->device, &port_id) != 0)
        return edist_set_error(EDIST_ENOTFOUND,
                               "no DPDK port named %s (give it to the EAL with --vdev or -a)",
                               cfg->device);
    if (open_ports[port_id] != NULL)
        return edist_set_error(EDIST_EEXIST, "DPDK port %s is already open", cfg->device);
    edi_dpdk_port *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return edist_set_error(EDIST_ENOMEM, "DPDK port: out of memory");
    p->port_id = port_id;
    snprintf(p->name, sizeof(p->name), "%s", cfg->device);
    p->n_rxq = cfg->rx_queues ? cfg->rx_queues : 1;
    p->n_txq = cfg->tx_queues ? cfg->tx_queues : 1;
    p->rx_all = cfg->rx_all_ethertypes;
    p->on_link = cfg->on_link;
    p->on_link_user = cfg->on_link_user;
    atomic_init(&p->link_up, false);
    atomic_init(&p->closing, false);
    if (p->n_rxq > QUEUES_MAX || p->n_txq > QUEUES_MAX) {
        free(p);
        return edist_set_error(EDIST_EINVAL, "DPDK port %s: more than %u queues", cfg->device,
                               QUEUES_MAX);
    }
    p->rxq = rte_zmalloc("edi_rxq", sizeof(rxq) * p->n_rxq, RTE_CACHE_LINE_SIZE);
    p->txq = rte_zmalloc("edi_txq", sizeof(txq) * p->n_txq, RTE_CACHE_LINE_SIZE);
    if (p->rxq == NULL || p->txq == NULL) {
        port_free(p);
        return edist_set_error(EDIST_ENOMEM, "DPDK port %s: out of memory", cfg->device);
    }
    uint32_t limit = cfg->tx_pending_limit ? cfg->tx_pending_limit : TX_PENDING_DEFAULT;
    for (uint16_t q = 0; q < p->n_txq; q++) {
        p->txq[q].limit = limit;
        p->txq[q].pending = calloc(limit, sizeof(struct rte_mbuf *));
        if (p->txq[q].pending == NULL) {
            port_free(p);
            return edist_set_error(EDIST_ENOMEM, "DPDK port %s: out of memory", cfg->device);
        }
    }
    int rc = port_setup(p, cfg);
    if (rc != 0) {
        port_teardown(p);
        rte_mempool_free(p->pool);
        port_free(p);
        return rc;
    }
    open_ports[port_id] = p;
    *out = p;
    return 0;
}

int edi_dpdk_port_close(edi_dpdk_port *p)
{
    if (p == NULL)
        return 0;
    port_teardown(p);
    open_ports[p->port_id] = NULL;
    /* acquire: pairs with the releases' decrements, so their frees are
     * done before the pool goes. */
    uint64_t held = atomic_load_explicit(&p->rx_held, memory_order_acquire);
    if (held != 0)
        /* The frames' rxbufs point at the port and their mbufs at the
         * pool: both stay, leaked, for those holders. */
        return edist_set_error(EDIST_EAGAIN,
                               "DPDK port %s closed with %llu received frames still held: "
                               "its pool is kept",
                               p->name, (unsigned long long)held);
    rte_mempool_free(p->pool);
    port_free(p);
    return 0;
}

const char *edi_dpdk_port_name(const edi_dpdk_port *p) { return p->name; }
void edi_dpdk_port_mac(const edi_dpdk_port *p, uint8_t mac[6]) { memcpy(mac, p->mac, 6); }
uint32_t edi_dpdk_port_payload_max(const edi_dpdk_port *p) { return p->payload_max; }

bool edi_dpdk_port_pool_low(const edi_dpdk_port *p)
{
    return atomic_load_explicit(&((edi_dpdk_port *)p)->rx_held, memory_order_relaxed) >
           p->pool->size / 2;
}

void edi_dpdk_port_stats_get(edi_dpdk_port *p, edi_dpdk_port_stats *out)
{
    memset(out, 0, sizeof(*out));
    struct rte_eth_stats s;
    if (!atomic_load(&p->closing) && rte_eth_stats_get(p->port_id, &s) == 0) {
        out->ipackets = s.ipackets;
        out->opackets = s.opackets;
        out->ibytes = s.ibytes;
        out->obytes = s.obytes;
        out->imissed = s.imissed;
        out->ierrors = s.ierrors;
        out->oerrors = s.oerrors;
        out->rx_nombuf = s.rx_nombuf;
    }
    for (uint16_t q = 0; q < p->n_rxq; q++) {
        rxq *r = &p->rxq[q];
        out->rx_bursts += READ(r->bursts);
        out->rx_frames += READ(r->frames);
        out->rx_foreign += READ(r->foreign);
        out->rx_dropped_multiseg += READ(r->multiseg);
    }
    for (uint16_t q = 0; q < p->n_txq; q++) {
        txq *t = &p->txq[q];
        out->tx_bursts += READ(t->bursts);
        out->tx_frames += READ(t->frames);
        out->tx_full += READ(t->full);
        out->tx_refused += READ(t->refused);
        out->tx_dropped += READ(t->dropped);
        out->tx_pending += atomic_load_explicit(&t->count_seen, memory_order_relaxed);
        out->zc_orphans += READ(t->zc_orphans);
        out->zc_untracked += READ(t->zc_untracked_times);
    }
    out->link_changes = READ(p->link_changes);
    out->tx_alloc_failed = READ(p->tx_alloc_failed);
    out->rx_held = READ(p->rx_held);
    out->device_faults = READ(p->device_faults);
    out->start_retries = p->start_retries;
    out->tx_lost_in_fault = READ(p->tx_lost_in_fault);
    out->pool_in_use = rte_mempool_in_use_count(p->pool);
    out->pool_size = p->pool->size;
}

/* ---- data path -------------------------------------------------------------------- */

/* Enters the device for a burst unless the link is down: in_device first,
 * then link_up, both seq_cst (pairs with link_set's exchange and its
 * loads of in_device). */
static bool device_enter(atomic_bool *in_device, const edi_dpdk_port *p)
{
    atomic_store(in_device, true);
    if (atomic_load(&p->link_up))
        return true;
    atomic_store_explicit(in_device, false, memory_order_release);
    return false;
}

static void device_leave(atomic_bool *in_device)
{
    atomic_store_explicit(in_device, false, memory_order_release);
}

/* A burst under the fault guard: 0 after a fault (the port is dead). */
static uint16_t guarded_rx(edi_dpdk_port *p, uint16_t queue, struct rte_mbuf **mbufs,
                           uint16_t max)
{
    sigjmp_buf jump;
    if (sigsetjmp(jump, 0) != 0) {
        fault_unblock();
        port_faulted(p);
        return 0;
    }
    fault_jump = &jump;
    uint16_t n = rte_eth_rx_burst(p->port_id, queue, mbufs, max);
    fault_jump = NULL;
    return n;
}

/* The same for a transmit: UINT16_MAX after a fault (how many frames the
 * PMD had taken and freed by then is unknown). */
static uint16_t guarded_tx(edi_dpdk_port *p, uint16_t queue, struct rte_mbuf **mbufs,
                           uint16_t count)
{
    sigjmp_buf jump;
    if (sigsetjmp(jump, 0) != 0) {
        fault_unblock();
        port_faulted(p);
        return UINT16_MAX;
    }
    fault_jump = &jump;
    uint16_t n = rte_eth_tx_burst(p->port_id, queue, mbufs, count);
    fault_jump = NULL;
    return n;
}

unsigned edi_dpdk_rx_burst(edi_dpdk_port *p, uint16_t queue, edi_frame *frames, unsigned max)
{
    if (queue >= p->n_rxq || max == 0)
        return 0;
    rxq *r = &p->rxq[queue];
    struct rte_mbuf *mbufs[64];
    if (max > 64)
        max = 64;
    if (!device_enter(&r->in_device, p))
        return 0;
    uint16_t n = p->fault_guard ? guarded_rx(p, queue, mbufs, (uint16_t)max)
                                : rte_eth_rx_burst(p->port_id, queue, mbufs, (uint16_t)max);
    device_leave(&r->in_device);
    if (n == 0)
        return 0;
    unsigned out = 0;
    uint64_t foreign = 0, multiseg = 0;
    for (uint16_t i = 0; i < n; i++) {
        struct rte_mbuf *m = mbufs[i];
        const uint8_t *data = rte_pktmbuf_mtod(m, const uint8_t *);
        if (m->nb_segs != 1) {
            multiseg++;
            rte_pktmbuf_free(m);
            continue;
        }
        if (!p->rx_all && edi_dpdk_eth_type(data, m->data_len) != EDI_DPDK_ETHERTYPE) {
            foreign++;
            rte_pktmbuf_free(m);
            continue;
        }
        edi_rxbuf *b = mbuf_rxbuf(m);
        edi_rxbuf_init_owned(b, p, 0, (uint8_t *)data, m->data_len, true, mbuf_release);
        atomic_store_explicit(&b->refs, 1, memory_order_relaxed);
        frames[out].data = data;
        frames[out].len = m->data_len;
        frames[out].rxbuf = b;
        out++;
    }
    atomic_fetch_add_explicit(&p->rx_held, out, memory_order_relaxed);
    COUNT(r->bursts, 1);
    COUNT(r->frames, out);
    if (foreign)
        COUNT(r->foreign, foreign);
    if (multiseg)
        COUNT(r->multiseg, multiseg);
    return out;
}

uint8_t *edi_dpdk_tx_data(void *handle)
{
    return rte_pktmbuf_mtod((struct rte_mbuf *)handle, uint8_t *);
}

int edi_dpdk_tx_get(edi_dpdk_port *p, edi_dpdk_txbuf *out)
{
    struct rte_mbuf *m = rte_pktmbuf_alloc(p->pool);
    if (m == NULL) {
        atomic_fetch_add_explicit(&p->tx_alloc_failed, 1, memory_order_relaxed);
        return edist_set_error(EDIST_EAGAIN, "DPDK port %s: mbuf pool empty", p->name);
    }
    out->data = rte_pktmbuf_mtod(m, uint8_t *);
    size_t room = rte_pktmbuf_tailroom(m);
    size_t frame_max = (size_t)p->payload_max + EDI_DPDK_ETH_HEADER_BYTES;
    out->cap = room < frame_max ? room : frame_max;
    out->handle = m;
    return 0;
}

void edi_dpdk_tx_discard(edi_dpdk_port *p, edi_dpdk_txbuf *buf)
{
    (void)p;
    if (buf->handle != NULL)
        rte_pktmbuf_free(buf->handle);
    buf->handle = NULL;
}

static void pending_publish(txq *t)
{
    atomic_store_explicit(&t->count_seen, t->count, memory_order_relaxed);
}

int edi_dpdk_tx_commit(edi_dpdk_port *p, uint16_t queue, edi_dpdk_txbuf *buf, size_t len)
{
    if (queue >= p->n_txq || buf->handle == NULL ||
        len < EDI_DPDK_ETH_HEADER_BYTES + ((struct rte_mbuf *)buf->handle)->pkt_len ||
        len > buf->cap)
        return edist_set_error(EDIST_EINVAL, "DPDK port %s: bad transmit (queue %u, %zu bytes)",
                               p->name, queue, len);
    txq *t = &p->txq[queue];
    if (t->count == t->limit)
        edi_dpdk_tx_flush(p, queue);
    if (t->count == t->limit) {
        COUNT(t->refused, 1);
        return edist_set_error(EDIST_EAGAIN, "DPDK port %s: %u frames queued", p->name,
                               t->limit);
    }
    struct rte_mbuf *m = buf->handle;
    /* pkt_len holds what edi_dpdk_tx_attach chained on so far */
    m->data_len = (uint16_t)(len - m->pkt_len);
    m->pkt_len = (uint32_t)len;
    t->pending[t->count++] = m;
    pending_publish(t);
    buf->handle = NULL;
    return 0;
}

/* ---- transmitting from the sender's memory -------------------------------------
 * A block of DPDK memory whose bytes frames carry by reference: an mbuf
 * of the pool attached to them as an external buffer, chained after the
 * frame's first mbuf. The block's head holds DPDK's shared-info (the
 * references: one the owner's, one each attached mbuf) and is freed with
 * the last of them, so a frame still in the port's ring when its owner
 * lets go (a link closed) keeps the memory it points at. */
typedef struct ext_head {
    struct rte_mbuf_ext_shared_info shared;
} ext_head;
#define EXT_HEAD_BYTES RTE_ALIGN(sizeof(ext_head), RTE_CACHE_LINE_SIZE)
/* The references' counter is 16 bits wide: past this many frames in
 * flight, edi_dpdk_tx_attach refuses (the link sends the frame at a later
 * poll, once some came back). */
#define EXT_REFS_MAX 60000u

static void ext_free(void *addr, void *opaque)
{
    (void)addr;
    rte_free(opaque);
}

uint8_t *edi_dpdk_ext_alloc(edi_dpdk_port *p, size_t bytes)
{
    /* memif tells its server of our memory once, when it connects, as the
     * memory segments there are then: with hugepages DPDK may add
     * segments later (a ring allocated after that would lie beyond what
     * the server mapped), without them (--no-huge) it has all its memory
     * from the start */
    if (!p->zc_client || rte_eal_has_hugepages())
        return NULL;
    uint8_t *block = rte_malloc("edist_ext", EXT_HEAD_BYTES + bytes, 4096);
    if (block == NULL)
        return NULL;
    /* memif describes a zero-copy buffer by its offset in one region, the
     * memory list the pool's buffers are in: memory of another list
     * would be read at the wrong place */
    const struct rte_mempool_memhdr *pool_mem = STAILQ_FIRST(&p->pool->mem_list);
    const struct rte_memseg_list *msl = rte_mem_virt2memseg_list(block);
    bool same = pool_mem != NULL && msl != NULL &&
                rte_mem_virt2memseg_list(pool_mem->addr) == msl &&
                rte_mem_virt2memseg_list(block + EXT_HEAD_BYTES + bytes - 1) == msl;
    if (!same) {
        rte_free(block);
        return NULL;
    }
    /* every page written once now, not as the stream first reaches it
     * (a first write cost ~10 us a page on this VM) */
    for (size_t at = 0; at < EXT_HEAD_BYTES + bytes; at += 4096)
        ((volatile uint8_t *)block)[at] = 0;
    ext_head *h = (ext_head *)block;
    h->shared.free_cb = ext_free;
    h->shared.fcb_opaque = block;
    rte_mbuf_ext_refcnt_set(&h->shared, 1);
    return block + EXT_HEAD_BYTES;
}

void edi_dpdk_ext_release(uint8_t *mem)
{
    if (mem == NULL)
        return;
    ext_head *h = (ext_head *)(mem - EXT_HEAD_BYTES);
    if (rte_mbuf_ext_refcnt_update(&h->shared, -1) == 0)
        rte_free(h);
}

int edi_dpdk_tx_attach(edi_dpdk_port *p, edi_dpdk_txbuf *buf, uint8_t *mem,
                       const uint8_t *at, size_t n)
{
    ext_head *h = (ext_head *)(mem - EXT_HEAD_BYTES);
    struct rte_mbuf *head = buf->handle;
    if (head == NULL || n == 0 || n > UINT16_MAX || head->nb_segs >= 8)
        return edist_set_error(EDIST_EINVAL, "DPDK port %s: bad attach", p->name);
    if (rte_mbuf_ext_refcnt_read(&h->shared) >= EXT_REFS_MAX)
        return edist_set_error(EDIST_EAGAIN, "DPDK port %s: %u frames hold memory",
                               p->name, EXT_REFS_MAX);
    struct rte_mbuf *m = rte_pktmbuf_alloc(p->pool);
    if (m == NULL) {
        atomic_fetch_add_explicit(&p->tx_alloc_failed, 1, memory_order_relaxed);
        return edist_set_error(EDIST_EAGAIN, "DPDK port %s: mbuf pool empty", p->name);
    }
    rte_mbuf_ext_refcnt_update(&h->shared, 1);
    rte_pktmbuf_attach_extbuf(m, (void *)(uintptr_t)at, rte_mem_virt2iova(at),
                              (uint16_t)n, &h->shared);
    m->data_len = (uint16_t)n;
    m->pkt_len = (uint32_t)n;
    rte_pktmbuf_lastseg(head)->next = m;
    head->nb_segs++;
    head->pkt_len += (uint32_t)n;
    return 0;
}

/* DPDK 22.11's memif zero-copy transmit takes a reference on each
 * segment of a chained frame as it goes, and when it finds the ring too
 * short for the next one it returns the frame as not sent without giving
 * those back: they would never return to the pool. Every segment of an
 * unsent frame is still ours alone (we never share one: the first is our
 * header, the others fresh mbufs attached to our memory), so a count above
 * one is that. */
static void unsent_chain_mend(edi_dpdk_port *p, struct rte_mbuf *m)
{
    if (!p->zc_client || m->nb_segs < 2)
        return;
    for (struct rte_mbuf *s = m; s != NULL; s = s->next)
        if (rte_mbuf_refcnt_read(s) > 1)
            rte_mbuf_refcnt_update(s, -1);
}

unsigned edi_dpdk_tx_flush(edi_dpdk_port *p, uint16_t queue)
{
    if (queue >= p->n_txq)
        return 0;
    txq *t = &p->txq[queue];
    if (t->zc_count > 0)
        zc_reclaim(p, t, false);
    if (t->count == 0 || !device_enter(&t->in_device, p))
        return 0;
    uint32_t sent = 0;
    uint64_t bursts = 0;
    while (sent < t->count) {
        uint32_t want = t->count - sent;
        if (want > TX_BURST_MAX)
            want = TX_BURST_MAX;
        if (p->zc_client)
            want = zc_burst(p, t, t->pending + sent, (uint16_t)want);
        uint16_t n = p->fault_guard
                         ? guarded_tx(p, queue, t->pending + sent, (uint16_t)want)
                         : rte_eth_tx_burst(p->port_id, queue, t->pending + sent, (uint16_t)want);
        if (n == UINT16_MAX) {
            /* Some of these the PMD freed, which ones is unknown: all of
             * them are left (leaked) and counted. */
            device_leave(&t->in_device);
            COUNT(p->tx_lost_in_fault, t->count - sent);
            COUNT(t->frames, sent);
            t->count = 0;
            pending_publish(t);
            return sent;
        }
        if (n > 0) {
            bursts++;
            if (p->zc_client)
                zc_hold(p, t, t->pending + sent, n);
        }
        sent += n;
        if (n < want) {
            unsent_chain_mend(p, t->pending[sent]);
            break;
        }
    }
    device_leave(&t->in_device);
    if (sent < t->count) {
        /* The rest stays, in order, for the next flush. */
        memmove(t->pending, t->pending + sent, (t->count - sent) * sizeof(t->pending[0]));
        COUNT(t->full, 1);
    }
    t->count -= sent;
    pending_publish(t);
    COUNT(t->bursts, bursts);
    COUNT(t->frames, sent);
    return sent;
}

unsigned edi_dpdk_tx_drop_pending(edi_dpdk_port *p, uint16_t queue)
{
    if (queue >= p->n_txq)
        return 0;
    txq *t = &p->txq[queue];
    unsigned n = t->count;
    if (n > 0)
        rte_pktmbuf_free_bulk(t->pending, n);
    t->count = 0;
    pending_publish(t);
    COUNT(t->dropped, n);
    return n;
}

unsigned edi_dpdk_tx_pending(const edi_dpdk_port *p, uint16_t queue)
{
    if (queue >= p->n_txq)
        return 0;
    return atomic_load_explicit(&p->txq[queue].count_seen, memory_order_relaxed);
}

/* ---- Ethernet framing ------------------------------------------------------------ */

void edi_dpdk_eth_header_write(uint8_t *frame, const uint8_t dst[6], const uint8_t src[6])
{
    memcpy(frame, dst, 6);
    memcpy(frame + 6, src, 6);
    frame[12] = (uint8_t)(EDI_DPDK_ETHERTYPE >> 8);
    frame[13] = (uint8_t)(EDI_DPDK_ETHERTYPE & 0xff);
}

uint16_t edi_dpdk_eth_type(const uint8_t *frame, size_t len)
{
    if (len < EDI_DPDK_ETH_HEADER_BYTES)
        return 0;
    return (uint16_t)((frame[12] << 8) | frame[13]);
}

void edi_dpdk_eth_src(const uint8_t *frame, uint8_t mac[6]) { memcpy(mac, frame + 6, 6); }
