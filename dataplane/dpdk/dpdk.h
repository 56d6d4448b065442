/* SPDX-License-Identifier: Apache-2.0 */
/* DPDK bring-up for the DPDK lane: the EAL once per process, ports by
 * device name, raw Ethernet frames in and out. No DPDK type crosses this
 * header (only the .c files here include rte_*.h), so the lane above builds
 * without DPDK's headers. Built only when meson found libdpdk
 * (EDIST_HAVE_DPDK).
 *
 * Threads:
 *   - edi_dpdk_eal_init / _cleanup and port open/close: any thread, but
 *     not concurrently with the data-path calls on the same port.
 *   - The data path (rx burst, tx get/commit/flush) of one queue belongs
 *     to one thread at a time, the shard polling it: no locks there. Each
 *     such thread calls edi_dpdk_thread_register() once before its first
 *     burst, which gives it an EAL lcore id and with it a mempool cache
 *     (without one every mbuf alloc/free goes to the pool's shared ring:
 *     correct, only slower). The thread that ran edi_dpdk_eal_init is
 *     already lcore 0. EAL starts no worker threads of its own (only its
 *     interrupt/control thread, which runs link-state callbacks and the
 *     PMDs' control paths; a port's stop and close run there too, and
 *     the EAL's cleanup parks it for good).
 *   - A received frame may be released (edi_rxbuf_unref) on any thread,
 *     registered or not: see edi_dpdk_rx_burst.
 *   - Statistics and link state: any thread (counters are read relaxed).
 *
 * Errors: 0 (or a count) on success, a negative edist_err with one
 * sentence in edist_last_error() on failure. Nothing here prints; DPDK's
 * own log lines (error level and above, by default) go to the edi_log
 * given to edi_dpdk_eal_init. */
#ifndef EDI_DATAPLANE_DPDK_H
#define EDI_DATAPLANE_DPDK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/log.h"
#include "dataplane/dpdk/encap.h"
#include "dataplane/reactor/rxbuf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- EAL ----------------------------------------------------------------- */

typedef struct edi_dpdk_eal_config {
    /* EAL arguments separated by blanks (no quoting), e.g.
     * "--no-pci --vdev=net_memif0,role=server,socket=/tmp/d/m.sock,socket-abstract=no".
     * NULL or "" for none. edist adds, unless already there:
     *   --file-prefix=edist-<pid>  unique per process (memfd names and
     *                      DPDK's runtime directory: removed right after
     *                      init when nothing uses it, else when empty at
     *                      cleanup);
     *   --no-huge --single-file-segments -m <no_huge_memory_mb>
     *                      when /proc/meminfo shows no free hugepages or
     *                      no hugetlbfs is mounted (one memfd backs all
     *                      memory: what memif zero-copy needs);
     *   --in-memory with hugepages, --no-shconf without (DPDK refuses
     *                      --in-memory with --no-huge): no config files,
     *                      no hugepage files left by a crash, no
     *                      multi-process IPC socket (edist runs no DPDK
     *                      secondary processes);
     *   --lcores=0@(<this thread's CPUs>)  the calling thread is lcore 0
     *                      and keeps its CPU affinity; no worker lcores;
     *   --log-level=<log_level> --no-telemetry. */
    const char *args;
    /* Memory for --no-huge (DPDK's own default, 64 MiB, holds one port's
     * pool of jumbo mbufs at most). 0: 512. */
    uint32_t no_huge_memory_mb;
    /* DPDK's global log level (RTE_LOG_ERR = 4 keeps it quiet but for
     * errors). 0: 4. */
    uint32_t log_level;
    /* Where DPDK's log lines go (copied; the sink must cope with any
     * thread). NULL: nowhere (the last lines are still kept for error
     * messages). */
    const edi_log *log;
} edi_dpdk_eal_config;

/* Starts the EAL, once per process. A later call with the same args
 * returns what the first returned, cheaply (0, or the same error and
 * sentence); one with other args returns EDIST_EINVAL if the EAL is up.
 * Failures: EDIST_EIO "DPDK EAL did not start: <DPDK's last log line>"
 * (the node logs it and stays on TCP); EDIST_ECLOSED after
 * edi_dpdk_eal_cleanup (DPDK cannot start twice in one process).
 * Blocks while devices given as --vdev / -a are probed. Any thread; the
 * calling thread becomes lcore 0. DPDK itself writes a few lines past
 * our log stream when it fails: "EAL: FATAL: ..." on stderr, and its
 * usage on stdout for an option it does not know. */
int edi_dpdk_eal_init(const edi_dpdk_eal_config *cfg);

/* True once edi_dpdk_eal_init succeeded (and before cleanup). */
bool edi_dpdk_eal_up(void);

/* The EAL argument line actually used ("" before init), for one log line. */
const char *edi_dpdk_eal_args(void);

/* Registers the calling (non-EAL) thread with the EAL: an lcore id, and
 * so a per-thread mempool cache. Call once in each shard thread before
 * its first burst; idempotent; 0 for lcore 0. EDIST_ENOMEM when the
 * EAL's RTE_MAX_LCORE (128 on Debian) slots are used up, EDIST_EINVAL
 * before init. edi_dpdk_thread_unregister() before the thread ends gives
 * the slot back (its cache is flushed to the pool lazily by DPDK). */
int edi_dpdk_thread_register(void);
void edi_dpdk_thread_unregister(void);

/* Ends the EAL (rte_eal_cleanup) at process end, after every port is
 * closed: frees DPDK's memory. EAL's interrupt thread is parked first (it
 * waits for what runs there, then runs nothing of DPDK's again): DPDK
 * 22.11 unmaps its memory without stopping that thread. The EAL cannot
 * start again in this process afterwards. No-op if it never started. */
void edi_dpdk_eal_cleanup(void);

/* ---- ports ------------------------------------------------------------------ */

typedef struct edi_dpdk_port edi_dpdk_port;

/* Link state as edist sees it. */
typedef struct edi_dpdk_link {
    bool up;
    uint32_t speed_mbps;  /* 0 when unknown (virtual devices) */
    uint64_t changes;     /* link-state changes seen since open */
    /* Changes arrive as the PMD's link interrupt (memif, most NICs);
     * false: only edi_dpdk_port_link() sees them (af_packet, af_xdp). */
    bool events;
} edi_dpdk_link;

/* Called on DPDK's interrupt thread (not a shard) when a port's link
 * goes up or down, with the port's state already updated: the data path
 * has stopped touching the device's rings when `up` is false (see
 * edi_dpdk_rx_burst). Keep it short (post to the shard). */
typedef void (*edi_dpdk_link_fn)(void *user, edi_dpdk_port *port, bool up);

typedef struct edi_dpdk_port_config {
    /* The DPDK device name: a vdev given to the EAL (net_memif0,
     * net_af_xdp0, net_af_packet0, ...) or a PCI address ("0000:03:00.0")
     * allowed by the EAL args. Required. */
    const char *device;
    uint16_t rx_queues, tx_queues;    /* 0: 1 each (one per shard later) */
    uint16_t rx_descriptors, tx_descriptors; /* ring sizes; 0: 1024 */
    /* The port's mbuf pool: count (0: 8191) and the data room of each
     * mbuf past DPDK's headroom (0: the largest frame the port takes,
     * at most 9216 + 14 bytes). A received frame larger than one mbuf
     * is dropped and counted (rx_dropped_multiseg). */
    uint32_t pool_mbufs;
    uint32_t pool_data_room_bytes;
    uint32_t pool_cache_mbufs;        /* per-lcore cache; 0: 256 */
    /* Largest payload after the Ethernet header (the MTU): 0 for the
     * largest the port and the pool allow, at most 9216: 1500 on
     * af_packet; on memif one ring buffer (its vdev argument bsize, 2048
     * by default, less 14), so jumbo frames on memif need e.g.
     * bsize=9728 (frames spanning several memif buffers were lost in
     * DPDK 22.11). */
    uint32_t mtu_bytes;
    /* Frames committed but not taken by the port yet, per tx queue
     * (0: 1024): past it edi_dpdk_tx_commit returns EDIST_EAGAIN. */
    uint32_t tx_pending_limit;
    bool promiscuous;                 /* for NICs and af_*: frames to any MAC */
    /* Deliver every EtherType, not only EDI_DPDK_ETHERTYPE (others are
     * freed and counted in rx_foreign by default: a veth also carries the
     * kernel's IPv6 neighbour discovery). */
    bool rx_all_ethertypes;
    edi_dpdk_link_fn on_link;         /* may be NULL */
    void *on_link_user;
} edi_dpdk_port_config;

/* Opens, configures and starts the port: its mbuf pool, queues, MTU,
 * promiscuous mode, link-state events (the PMD's interrupt when it has
 * one, else edi_dpdk_port_link() polls). A memif client that cannot
 * connect yet opens all the same, link down: edi_dpdk_port_link starts it
 * again every 100 ms until it connects. Errors: EDIST_EINVAL before EAL
 * init or for a bad config, EDIST_ENOTFOUND for an unknown device,
 * EDIST_EEXIST if already open, EDIST_ENOMEM when the pool does not fit,
 * EDIST_EIO when DPDK refuses (the sentence says which step). */
int edi_dpdk_port_open(const edi_dpdk_port_config *cfg, edi_dpdk_port **out);

/* Stops the data path (rx/tx return 0 from now on), frees queued
 * transmits (counted in tx_dropped), stops the device, drops the link
 * event, closes the device (a vdev's socket goes with it), then frees
 * the pool. Returns 0, or EDIST_EAGAIN when received frames are still
 * referenced: the device is closed anyway but the pool and the port's
 * memory are kept (leaked; DPDK's memory goes at edi_dpdk_eal_cleanup) so
 * those references stay valid. Either way the port is gone for the
 * caller. Not concurrently with the data path. The device's stop and
 * close run on EAL's interrupt thread, after whatever the PMD is doing
 * there (memif tearing down a connection whose peer went): the call
 * blocks until they ran. */
int edi_dpdk_port_close(edi_dpdk_port *port);

const char *edi_dpdk_port_name(const edi_dpdk_port *port);
void edi_dpdk_port_mac(const edi_dpdk_port *port, uint8_t mac[6]);
/* Largest payload after the Ethernet header the port carries (its MTU,
 * capped by the pool's data room). */
uint32_t edi_dpdk_port_payload_max(const edi_dpdk_port *port);

/* Current link state. For PMDs without link interrupts (af_packet,
 * af_xdp) this asks the device (a system call): call it from a timer,
 * not per burst; a change seen here is recorded like an interrupt
 * (on_link runs on the caller's thread then). */
void edi_dpdk_port_link(edi_dpdk_port *port, edi_dpdk_link *out);

/* Waits up to timeout_ms for the link to be up (polling every ms).
 * 0 or EDIST_ETIMEDOUT. */
int edi_dpdk_port_wait_link(edi_dpdk_port *port, uint32_t timeout_ms);

typedef struct edi_dpdk_port_stats {
    /* the device's (rte_eth_stats) */
    uint64_t ipackets, opackets, ibytes, obytes;
    uint64_t imissed;     /* dropped by the device: no room on its ring */
    uint64_t ierrors, oerrors;
    uint64_t rx_nombuf;   /* the device found the pool empty */
    /* ours, all queues */
    uint64_t rx_bursts;            /* bursts that returned frames */
    uint64_t rx_frames;            /* frames handed up */
    uint64_t rx_foreign;           /* freed: not our EtherType */
    uint64_t rx_dropped_multiseg;  /* freed: larger than one mbuf */
    uint64_t tx_bursts;            /* rte_eth_tx_burst calls that sent */
    uint64_t tx_frames;            /* frames the port took */
    uint64_t tx_full;              /* flushes that left frames queued */
    uint64_t tx_refused;           /* commits refused: pending limit */
    uint64_t tx_alloc_failed;      /* tx_get found the pool empty */
    uint64_t tx_dropped;           /* queued frames freed by us (close, drop_pending) */
    uint64_t tx_pending;           /* queued now */
    uint64_t rx_held;              /* received frames not released yet */
    /* memif only: faults caught inside a burst (the peer's memory went
     * away under it; the port is dead until closed), and the queued
     * frames lost with such a transmit */
    uint64_t device_faults, tx_lost_in_fault;
    /* memif zero-copy client: segments its PMD still held when its link
     * went down (it never frees those), freed by us */
    uint64_t zc_orphans;
    /* memif zero-copy client: times a transmitted segment could not be
     * tracked (no room): from then on 4 frames a call, and what the PMD
     * holds at a disconnect is lost with it */
    uint64_t zc_untracked;
    uint64_t link_changes;
    /* memif client: restarts while its link was down (its server not
     * there, not started yet, or gone; polled by edi_dpdk_port_link,
     * 100 ms after a failed start, 1 s after one that did not connect) */
    uint64_t start_retries;
    /* mbufs out of the pool (held frames, queued transmits, the device's
     * rings), the pool's count */
    uint64_t pool_in_use, pool_size;
} edi_dpdk_port_stats;

/* Any thread; counters of the data path are read without stopping it. */
void edi_dpdk_port_stats_get(edi_dpdk_port *port, edi_dpdk_port_stats *out);

/* False, with a sentence in why, when the port can carry no lane any
 * more until the process restarts: a memif fault caught in a burst, or a
 * memif zero-copy client whose memory files DPDK closed at a disconnect.
 * Any thread. */
bool edi_dpdk_port_usable(edi_dpdk_port *port, char *why, size_t cap);

/* Received frames still held by their readers (rx_held: mailboxes,
 * frames out of order) are more than half the pool, which must also fill
 * the device's ring and carry our transmits. One load: asked once a loop
 * iteration. Any thread. */
bool edi_dpdk_port_pool_low(const edi_dpdk_port *port);

/* ---- data path (one thread per queue) -------------------------------------- */

/* Receives up to max frames from rx queue `queue` into frames[]: whole
 * Ethernet frames (header included), each a view into an mbuf whose
 * edi_rxbuf (kind OWNED, in the mbuf's private area, right after struct
 * rte_mbuf) carries ONE reference that now belongs to the caller: drop it
 * with edi_rxbuf_unref() when done (after the callback, or later from any
 * thread once a mailbox is done with it). The last unref frees the mbuf
 * into its pool: on a registered thread through its cache, on any other
 * thread straight into the pool's multi-producer ring, which is safe from
 * any thread (DPDK's default "ring_mp_mc" pool ops), only slower.
 * edi_rxbuf_scarce() is true: holders that keep frames long must copy.
 * Returns the count (0 when the link is down or the port closing: the
 * device's rings are not touched then). */
unsigned edi_dpdk_rx_burst(edi_dpdk_port *port, uint16_t queue,
                           edi_frame *frames, unsigned max);

/* A frame to transmit, written in place in an mbuf's data area. */
typedef struct edi_dpdk_txbuf {
    uint8_t *data;   /* the whole frame, Ethernet header first */
    size_t cap;      /* bytes writable at data (14 + payload max) */
    void *handle;    /* the mbuf: opaque */
} edi_dpdk_txbuf;

/* Takes a transmit buffer from the port's pool. 0, or EDIST_EAGAIN when
 * the pool is empty (counted; frames still held by receivers or queued
 * for transmit come back later). */
int edi_dpdk_tx_get(edi_dpdk_port *port, edi_dpdk_txbuf *out);

/* Queues the buffer with its final length (14 <= len <= cap) on tx
 * queue `queue`. 0; EDIST_EAGAIN when tx_pending_limit frames are queued
 * even after a flush (the buffer stays the caller's: retry after a flush
 * or give it back with edi_dpdk_tx_discard); EDIST_EINVAL for a bad
 * length. Nothing reaches the port before a flush. */
int edi_dpdk_tx_commit(edi_dpdk_port *port, uint16_t queue,
                       edi_dpdk_txbuf *buf, size_t len);

/* The frame's start of a transmit buffer by its handle. */
uint8_t *edi_dpdk_tx_data(void *handle);

/* Gives back a buffer never committed. */
void edi_dpdk_tx_discard(edi_dpdk_port *port, edi_dpdk_txbuf *buf);

/* Transmitting from the sender's own memory, where the port can (a memif
 * zero-copy client, its DPDK memory all allocated at start (--no-huge):
 * its server reads our memory). edi_dpdk_ext_alloc: bytes of DPDK memory
 * frames may point into, or NULL (frames are built by copying, or DPDK
 * has no room). edi_dpdk_tx_attach: appends [at, at+n) of that memory to
 * the frame of buf, after the bytes written in place (the commit's len
 * then counts both); the memory must not change until the peer has it.
 * 0; EDIST_EAGAIN (no mbuf, or too many frames hold the memory: give the
 * frame back and try later). edi_dpdk_ext_release: the owner is done; the
 * memory goes once no queued frame holds it. Any thread. */
uint8_t *edi_dpdk_ext_alloc(edi_dpdk_port *port, size_t bytes);
int edi_dpdk_tx_attach(edi_dpdk_port *port, edi_dpdk_txbuf *buf, uint8_t *mem,
                       const uint8_t *at, size_t n);
void edi_dpdk_ext_release(uint8_t *mem);

/* Hands the queued frames to the port in bursts. Frames the port does
 * not take stay queued in order (counted in tx_full) for the next flush;
 * nothing queued is ever freed silently. While the link is down nothing
 * is handed over. Returns the frames the port took.
 *
 * "Taken" is the port's word, not delivery: af_packet counts a frame
 * whose kernel kick failed (ENOBUFS/EAGAIN) as sent and loses it
 * silently, af_xdp and NICs may drop on the receiving side; memif does
 * not lose. The link protocol above must retransmit. */
unsigned edi_dpdk_tx_flush(edi_dpdk_port *port, uint16_t queue);

/* Frees every frame queued on tx queue `queue` (counted in tx_dropped):
 * for a link that went down. Returns how many. */
unsigned edi_dpdk_tx_drop_pending(edi_dpdk_port *port, uint16_t queue);

/* Frames queued on `queue` and not yet taken by the port. */
unsigned edi_dpdk_tx_pending(const edi_dpdk_port *port, uint16_t queue);

/* ---- Ethernet framing ------------------------------------------------------- */

/* EDI_DPDK_ETHERTYPE and the header sizes: dataplane/dpdk/encap.h. */
/* Writes dst, src and EDI_DPDK_ETHERTYPE at frame (14 bytes). */
void edi_dpdk_eth_header_write(uint8_t *frame, const uint8_t dst[6],
                               const uint8_t src[6]);
/* The frame's EtherType (0 when shorter than a header). */
uint16_t edi_dpdk_eth_type(const uint8_t *frame, size_t len);
/* The sender's MAC of a frame of at least 14 bytes. */
void edi_dpdk_eth_src(const uint8_t *frame, uint8_t mac[6]);

#ifdef __cplusplus
}
#endif
#endif
