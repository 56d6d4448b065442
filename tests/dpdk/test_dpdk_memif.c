/* SPDX-License-Identifier: Apache-2.0 */
/* memif between two processes through dataplane/dpdk: the test forks a
 * memif server and a memif client, each with its own EAL (--file-prefix,
 * --no-huge, --no-pci), the socket under a temporary directory
 * (socket-abstract=no). The client sends 1,000,000 numbered 64-byte
 * frames and then jumbo frames; the server echoes each; both check count
 * and order (memif does not lose). Then the client says bye and closes
 * its port: the server, which stopped polling at the bye, sees the link
 * go down and exits cleanly. A second test kills the client by its PID
 * mid-stream, in rounds: the server closes its port on link-down (while
 * the memif driver's own teardown on EAL's interrupt thread is held
 * open), or at a moment the parent sets (at the kill, before that
 * teardown; later, around it), and must exit cleanly each time. A third
 * starts the client before its server can take it: before the server's
 * socket is there, and while the server has not started its device (the
 * server answers "no such device" and the driver's client gives up): the
 * port restarts the client until it connects. A fourth makes the client
 * zero-copy and sends 20,000 frames of two or three segments, all but
 * the first its own memory by reference, into a server that reads nothing until the
 * ring is full: all arrive whole and in order, and the client's pool
 * comes back whole. Every child is waited for (and killed on a hang) by
 * its PID. */
#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dataplane/dpdk/dpdk.h"
#include "edist/error.h"

#define FRAMES_64 1000000u
#define FRAMES_JUMBO 2000u
#define ROLE_DEADLINE_S 25
/* The server's interrupt thread is held this long in the driver's
 * teardown (see close below). */
#define INTR_CLOSE_HOLD_US 100000
#define KILL_AFTER_FRAMES 20000u
#define POOL_MBUFS 8191u
#define POOL_MBUFS_KILLED 2047u
/* Where the server's close falls against the client's kill, per round, in
 * µs (NO_CLOSE_AT: on link-down, with the driver's teardown held open:
 * see close() below). The peer's control socket closes, and the driver
 * tears down, some 5-60 ms after the kill (the dying client unmaps its
 * memory first): the other rounds close before that and around it. */
#define NO_CLOSE_AT INT64_MAX
static const int64_t close_offsets_us[] = {NO_CLOSE_AT, 0, 10000};
#define ROUNDS (sizeof(close_offsets_us) / sizeof(close_offsets_us[0]))

enum { KIND_DATA = 1, KIND_JUMBO = 2, KIND_BYE = 3, KIND_REF = 4 };

/* The by-reference test: frames of a header and one or two pieces of
 * the client's own memory. */
#define REF_FRAMES 20000u
#define REF_MEM_BYTES (1u << 20)
#define REF_PIECE_A 700u
#define REF_PIECE_B 900u
static uint8_t ref_byte(size_t off) { return (uint8_t)(off * 7u + (off >> 9)); }
/* the offsets into the client's memory of frame seq's pieces */
static size_t ref_off_a(uint64_t seq) { return (size_t)(seq * 4099u) % (REF_MEM_BYTES - REF_PIECE_A); }
static size_t ref_off_b(uint64_t seq) { return (size_t)(seq * 6151u) % (REF_MEM_BYTES - REF_PIECE_B); }
/* The first half of the frames have the first piece only (2 segments;
 * the driver, given more than 4 frames, once overran its ring with them
 * while the server read: see port.c's zc_burst), the rest alternate 2
 * and 3 (at the ring's end a frame of 3 may find 2 slots: the driver
 * takes references on the segments it got to and does not send it). */
static size_t ref_piece_b(uint64_t seq)
{
    return seq < REF_FRAMES / 2 || seq % 2 == 0 ? 0 : REF_PIECE_B;
}

/* What the children do, set by the parent before it forks them. */
static unsigned frames_64 = FRAMES_64, frames_jumbo = FRAMES_JUMBO;
static unsigned server_start_delay_ms; /* between the EAL (socket) and the port */
static bool client_restarts;           /* the client must have been restarted */
static bool client_asks_late;          /* the client asks its link a second late */
static bool zero_copy;                 /* the client's memif is zero-copy */

static char tmpdir[64];

/* Shared with the children (mapped before the forks): when the server
 * closes its port, in CLOCK_MONOTONIC ns; 0 until the parent sets it. */
typedef struct shared_state {
    _Atomic int64_t close_at_ns;
    _Atomic int64_t kill_at_ns;
    _Atomic bool ref_sent;     /* the client queued every KIND_REF frame */
    _Atomic uint64_t ref_got;  /* the server took this many, whole */
} shared_state;
static shared_state *shared;

#define CHECK(cond)                                                               \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "%s: %s:%d: %s (last error: %s)\n", role_name,        \
                    __FILE__, __LINE__, #cond, edist_last_error());               \
            print_stats();                                                        \
            _exit(1);                                                             \
        }                                                                         \
    } while (0)

static const char *role_name = "parent";
static edi_dpdk_port *role_port; /* for the figures of a failed check */

static void print_stats(void)
{
    edi_dpdk_port_stats st;
    if (role_port == NULL)
        return;
    edi_dpdk_port_stats_get(role_port, &st);
    fprintf(stderr,
            "%s: ipackets %llu opackets %llu imissed %llu ierrors %llu rx_nombuf %llu "
            "rx_frames %llu multiseg %llu foreign %llu tx_frames %llu tx_full %llu pool %llu/%llu\n",
            role_name, (unsigned long long)st.ipackets, (unsigned long long)st.opackets,
            (unsigned long long)st.imissed, (unsigned long long)st.ierrors,
            (unsigned long long)st.rx_nombuf, (unsigned long long)st.rx_frames,
            (unsigned long long)st.rx_dropped_multiseg, (unsigned long long)st.rx_foreign,
            (unsigned long long)st.tx_frames, (unsigned long long)st.tx_full,
            (unsigned long long)st.pool_in_use, (unsigned long long)st.pool_size);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double now_s(void) { return (double)now_ns() / 1e9; }

/* ---- the driver's teardown, held open ---------------------------------------
 * When its peer goes, the memif driver tears the connection down on
 * EAL's interrupt thread (memif_socket.c: memif_intr_handler ->
 * memif_disconnect: link down first, then the queues' event fds closed,
 * then memif_free_regions). A server closing its port on link-down ran
 * its close across that teardown, which then read the device's state
 * after rte_eth_dev_close had freed it (NULL process_private): a SIGSEGV
 * on the interrupt thread, seen once in CI. The teardown takes some
 * 100 µs and the overlap hardly ever shows by itself, so the server holds
 * its interrupt thread INTR_CLOSE_HOLD_US in the first close() it makes
 * once the link is up (this program exports close(), and the driver's
 * calls resolve to it first): the driver's teardown then spans the
 * server's close every time, unless that close waits for it. */
static _Atomic bool hold_intr_close;

static bool on_interrupt_thread(void)
{
    char name[16] = "";
    pthread_getname_np(pthread_self(), name, sizeof(name));
    return strcmp(name, "eal-intr-thread") == 0;
}

int close(int fd)
{
    if (atomic_load(&hold_intr_close) && on_interrupt_thread() &&
        atomic_exchange(&hold_intr_close, false))
        usleep(INTR_CLOSE_HOLD_US);
    return (int)syscall(SYS_close, fd);
}

static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* A frame: Ethernet header, kind (1 byte), sequence (8 bytes), filler
 * that depends on the sequence (checked on jumbo frames). */
static uint8_t fill_byte(uint64_t seq, size_t i) { return (uint8_t)(seq * 31u + i); }

/* pool_mbufs: the kill rounds use fewer: closing a pool (DPDK clears its
 * memory) took 0.3-1.5 s at 8191 mbufs of 9.7 KiB here. */
static edi_dpdk_port *open_memif(bool server, uint32_t pool_mbufs)
{
    char args[512];
    snprintf(args, sizeof(args),
             "--no-pci --no-huge%s --vdev=net_memif0,role=%s,bsize=9728,socket=%s/m.sock,"
             "socket-abstract=no%s --file-prefix=edist-memif-%s-%ld",
             zero_copy ? " --single-file-segments" : "", server ? "server" : "client", tmpdir,
             zero_copy && !server ? ",zero-copy=yes" : "", server ? "s" : "c", (long)getpid());
    edi_dpdk_eal_config cfg = {.args = args};
    CHECK(edi_dpdk_eal_init(&cfg) == 0);
    if (server)
        usleep(server_start_delay_ms * 1000u); /* its socket listens, no device */
    edi_dpdk_port_config pc = {.device = "net_memif0", .pool_mbufs = pool_mbufs};
    edi_dpdk_port *port = NULL;
    CHECK(edi_dpdk_port_open(&pc, &port) == 0);
    role_port = port;
    return port;
}

static void wait_up(edi_dpdk_port *port) { CHECK(edi_dpdk_port_wait_link(port, 10000) == 0); }

/* Queues one frame; flushes (and keeps polling nothing else) until the
 * port has room: the peer keeps draining. */
/* A transmit buffer, flushing while the pool has none (the peer drains). */
static edi_dpdk_txbuf take_txbuf(edi_dpdk_port *port, double deadline)
{
    edi_dpdk_txbuf tb;
    while (edi_dpdk_tx_get(port, &tb) != 0) {
        edi_dpdk_tx_flush(port, 0);
        CHECK(now_s() < deadline);
    }
    return tb;
}

/* A frame's first 23 bytes: Ethernet header (to ourselves), kind, seq. */
static void write_head(edi_dpdk_port *port, uint8_t *data, uint8_t kind, uint64_t seq)
{
    uint8_t mac[6];
    edi_dpdk_port_mac(port, mac);
    edi_dpdk_eth_header_write(data, mac, mac);
    data[14] = kind;
    put_u64(data + 15, seq);
}

/* The file tmpdir/name, empty: a sign to the parent. */
static void touch(const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fclose(f);
}

static void send_frame(edi_dpdk_port *port, const uint8_t *copy, size_t len,
                       uint8_t kind, uint64_t seq, double deadline)
{
    edi_dpdk_txbuf tb = take_txbuf(port, deadline);
    CHECK(len <= tb.cap);
    if (copy != NULL) {
        memcpy(tb.data, copy, len);
    } else {
        write_head(port, tb.data, kind, seq);
        for (size_t i = 23; i < len; i++)
            tb.data[i] = fill_byte(seq, i);
    }
    while (edi_dpdk_tx_commit(port, 0, &tb, len) == EDIST_EAGAIN) {
        edi_dpdk_tx_flush(port, 0);
        CHECK(now_s() < deadline);
    }
}

typedef struct order {
    uint64_t data, jumbo, bye;
    size_t jumbo_len;
} order;

/* Checks one frame against the order so far. */
static uint8_t check_frame(order *o, const edi_frame *f)
{
    CHECK(f->len >= 23);
    CHECK(edi_dpdk_eth_type(f->data, f->len) == EDI_DPDK_ETHERTYPE);
    uint8_t kind = f->data[14];
    uint64_t seq = get_u64(f->data + 15);
    switch (kind) {
    case KIND_DATA:
        CHECK(f->len == 64);
        CHECK(seq == o->data);
        o->data++;
        break;
    case KIND_JUMBO:
        if (f->len != o->jumbo_len || seq != o->jumbo)
            fprintf(stderr, "%s: jumbo %llu of %zu bytes, expected %llu of %zu\n", role_name,
                    (unsigned long long)seq, f->len, (unsigned long long)o->jumbo,
                    o->jumbo_len);
        CHECK(f->len == o->jumbo_len);
        CHECK(seq == o->jumbo);
        CHECK(f->data[f->len - 1] == fill_byte(seq, f->len - 1));
        CHECK(f->data[f->len / 2] == fill_byte(seq, f->len / 2));
        o->jumbo++;
        break;
    case KIND_BYE:
        o->bye++;
        break;
    default:
        CHECK(!"unknown kind");
    }
    return kind;
}

static size_t jumbo_len_of(edi_dpdk_port *port)
{
    return edi_dpdk_port_payload_max(port) + EDI_DPDK_ETH_HEADER_BYTES;
}

/* The server: echoes every frame; stops polling at the bye; exits when
 * the link goes down. killed: the client will be killed mid-stream, and
 * the server closes at the parent's moment if that comes first. */
static void server_main(bool killed)
{
    role_name = "server";
    double deadline = now_s() + ROLE_DEADLINE_S;
    edi_dpdk_port *port = open_memif(true, killed ? POOL_MBUFS_KILLED : POOL_MBUFS);
    /* Listening now (the socket file appears at bind, before listen: a
     * memif client refused there does not try again). */
    touch("ready");
    wait_up(port);
    atomic_store(&hold_intr_close, true);
    order o = {.jumbo_len = jumbo_len_of(port)};
    edi_dpdk_link first;
    edi_dpdk_port_link(port, &first);
    fprintf(stderr, "server: link up, payload max %u, link events %s\n",
            edi_dpdk_port_payload_max(port), first.events ? "yes" : "no (polled)");
    bool polling = true, progress_told = false;
    edi_dpdk_link link = {.up = true};
    bool scheduled = false;
    for (unsigned iter = 0;; iter++) {
        CHECK(now_s() < deadline);
        int64_t close_at = atomic_load_explicit(&shared->close_at_ns, memory_order_relaxed);
        if (killed && close_at != 0 && now_ns() >= close_at) {
            scheduled = true;
            break;
        }
        if ((iter & 255) == 0 || !polling) {
            edi_dpdk_port_link(port, &link);
            if (!link.up)
                break;
        }
        if (!polling) {
            usleep(1000);
            continue;
        }
        edi_frame f[32];
        unsigned n = edi_dpdk_rx_burst(port, 0, f, 32);
        for (unsigned i = 0; i < n; i++) {
            uint8_t kind = check_frame(&o, &f[i]);
            send_frame(port, f[i].data, f[i].len, 0, 0, deadline);
            edi_rxbuf_unref(f[i].rxbuf);
            if (kind == KIND_BYE) {
                /* Nothing comes after the bye: from here on only the
                 * link is watched, the rings are not touched. */
                while (edi_dpdk_tx_pending(port, 0) > 0) {
                    edi_dpdk_tx_flush(port, 0);
                    CHECK(now_s() < deadline);
                }
                polling = false;
            }
        }
        edi_dpdk_tx_flush(port, 0);
        if (killed && !progress_told && o.data >= KILL_AFTER_FRAMES) {
            touch("progress");
            progress_told = true;
        }
    }
    int64_t kill_at = atomic_load(&shared->kill_at_ns);
    if (killed && kill_at != 0)
        fprintf(stderr, "server: %s %lld us after the kill\n", scheduled ? "closing" : "link down",
                (long long)(now_ns() - kill_at) / 1000);
    edi_dpdk_port_stats st;
    edi_dpdk_port_stats_get(port, &st);
    fprintf(stderr,
            "server: %s after %llu data, %llu jumbo, %llu bye; ipackets %llu "
            "opackets %llu imissed %llu tx_full %llu link_changes %llu device_faults %llu "
            "tx_lost_in_fault %llu\n",
            scheduled ? "closing at the set moment" : "link down", (unsigned long long)o.data,
            (unsigned long long)o.jumbo, (unsigned long long)o.bye,
            (unsigned long long)st.ipackets,
            (unsigned long long)st.opackets, (unsigned long long)st.imissed,
            (unsigned long long)st.tx_full, (unsigned long long)st.link_changes,
            (unsigned long long)st.device_faults, (unsigned long long)st.tx_lost_in_fault);
    if (killed) {
        CHECK(o.data >= KILL_AFTER_FRAMES);
    } else {
        CHECK(o.data == frames_64 && o.jumbo == frames_jumbo && o.bye == 1);
        CHECK(!polling);
        CHECK(st.rx_held == 0 && st.tx_pending == 0 && st.pool_in_use == 0);
    }
    CHECK(scheduled || st.link_changes >= 2);
    edi_dpdk_tx_drop_pending(port, 0);
    CHECK(edi_dpdk_port_close(port) == 0);
    edi_dpdk_eal_cleanup();
    _exit(0);
}

/* The client: sends everything, checks the echoes, says bye, closes. */
static void client_main(bool endless)
{
    role_name = "client";
    double deadline = now_s() + ROLE_DEADLINE_S;
    edi_dpdk_port *port = open_memif(false, endless ? POOL_MBUFS_KILLED : POOL_MBUFS);
    if (client_asks_late) {
        /* Its server is ready, so it connects at once, while nobody asks
         * the port: asked a second later, it must not take the link for
         * down and restart the client (a stale state did). */
        usleep(1200000);
        edi_dpdk_port_stats st;
        edi_dpdk_port_stats_get(port, &st);
        CHECK(st.start_retries == 0);
        edi_dpdk_link link;
        edi_dpdk_port_link(port, &link);
        CHECK(link.up);
        edi_dpdk_port_stats_get(port, &st);
        CHECK(st.start_retries == 0);
    }
    wait_up(port);
    size_t jumbo_len = jumbo_len_of(port);
    order sent = {0}, echoed = {.jumbo_len = jumbo_len};
    double t0 = now_s(), t_data = 0;
    edi_dpdk_link link;
    for (unsigned iter = 0; echoed.bye == 0; iter++) {
        CHECK(now_s() < deadline);
        if ((iter & 255) == 0) {
            edi_dpdk_port_link(port, &link);
            if (endless && !link.up) {
                /* The server closed first: wait for the kill. */
                while (now_s() < deadline)
                    usleep(1000);
            }
            CHECK(link.up);
        }
        /* At most a few bursts in flight: the echo keeps up. */
        for (int i = 0; i < 32 && sent.data + sent.jumbo - echoed.data - echoed.jumbo < 2048; i++) {
            if (endless || sent.data < frames_64) {
                send_frame(port, NULL, 64, KIND_DATA, sent.data++, deadline);
            } else if (sent.jumbo < frames_jumbo) {
                if (echoed.data < frames_64)
                    break; /* jumbo ones after every small echo */
                send_frame(port, NULL, jumbo_len, KIND_JUMBO, sent.jumbo++, deadline);
            } else if (sent.bye == 0 && echoed.jumbo == frames_jumbo) {
                send_frame(port, NULL, 64, KIND_BYE, 0, deadline);
                sent.bye = 1;
            } else {
                break;
            }
        }
        edi_dpdk_tx_flush(port, 0);
        edi_frame f[32];
        unsigned n = edi_dpdk_rx_burst(port, 0, f, 32);
        for (unsigned i = 0; i < n; i++) {
            check_frame(&echoed, &f[i]);
            edi_rxbuf_unref(f[i].rxbuf);
        }
        if (t_data == 0 && echoed.data == frames_64)
            t_data = now_s();
    }
    double t1 = now_s();
    fprintf(stderr,
            "client: %u x 64 B echoed in %.2f s (%.2f M frames/s each way), "
            "%u x %zu B in %.2f s\n",
            frames_64, t_data - t0, frames_64 / (t_data - t0) / 1e6, frames_jumbo, jumbo_len,
            t1 - t_data);
    CHECK(echoed.data == frames_64 && echoed.jumbo == frames_jumbo);
    /* Every mbuf back in the pool: memif in copy mode keeps none. */
    edi_dpdk_port_stats st;
    edi_dpdk_port_stats_get(port, &st);
    CHECK(st.rx_held == 0 && st.tx_pending == 0 && st.pool_in_use == 0);
    if (client_restarts)
        fprintf(stderr, "client: connected after %llu restarts\n",
                (unsigned long long)st.start_retries);
    CHECK(!client_restarts || st.start_retries > 0);
    CHECK(edi_dpdk_port_close(port) == 0);
    edi_dpdk_eal_cleanup();
    _exit(0);
}

/* The by-reference server: takes nothing until the client has queued
 * every frame (its ring fills, and the client's transmits find it full,
 * often a slot short of a whole frame), then checks each frame's bytes
 * against the client's memory pattern, in order. */
static void ref_server_main(bool unused)
{
    (void)unused;
    role_name = "ref server";
    double deadline = now_s() + ROLE_DEADLINE_S;
    edi_dpdk_port *port = open_memif(true, POOL_MBUFS);
    touch("ready");
    wait_up(port);
    while (!atomic_load(&shared->ref_sent)) {
        CHECK(now_s() < deadline);
        usleep(1000);
    }
    uint64_t got = 0;
    edi_dpdk_link link = {.up = true};
    for (unsigned iter = 0; link.up; iter++) {
        CHECK(now_s() < deadline);
        if ((iter & 255) == 0)
            edi_dpdk_port_link(port, &link);
        edi_frame f[32];
        unsigned n = edi_dpdk_rx_burst(port, 0, f, 32);
        for (unsigned i = 0; i < n; i++) {
            if (got == REF_FRAMES && f[i].len == 23 && f[i].data[14] == KIND_DATA) {
                edi_rxbuf_unref(f[i].rxbuf); /* the client's flushes after */
                continue;
            }
            if (f[i].len != 23 + REF_PIECE_A + ref_piece_b(got))
                fprintf(stderr, "ref server: frame %llu of %zu bytes, kind %u, seq %llu\n",
                        (unsigned long long)got, f[i].len, f[i].len > 14 ? f[i].data[14] : 0,
                        f[i].len >= 23 ? (unsigned long long)get_u64(f[i].data + 15) : 0ull);
            CHECK(f[i].len == 23 + REF_PIECE_A + ref_piece_b(got));
            CHECK(f[i].data[14] == KIND_REF);
            CHECK(get_u64(f[i].data + 15) == got);
            size_t a = ref_off_a(got), b = ref_off_b(got);
            for (size_t k = 0; k < REF_PIECE_A; k++)
                CHECK(f[i].data[23 + k] == ref_byte(a + k));
            for (size_t k = 0; k < ref_piece_b(got); k++)
                CHECK(f[i].data[23 + REF_PIECE_A + k] == ref_byte(b + k));
            got++;
            edi_rxbuf_unref(f[i].rxbuf);
        }
        atomic_store(&shared->ref_got, got);
        if (n == 0)
            usleep(100);
    }
    CHECK(got == REF_FRAMES);
    CHECK(edi_dpdk_port_close(port) == 0);
    edi_dpdk_eal_cleanup();
    _exit(0);
}

/* The by-reference client (zero-copy): each frame a header mbuf and two
 * pieces of its own DPDK memory attached (edi_dpdk_tx_attach). Its pool
 * must come back whole once the server took them: every mbuf the memif
 * driver held for the server, and every reference it took on a frame it
 * then found too long for the ring's room. */
static void ref_client_main(bool unused)
{
    (void)unused;
    role_name = "ref client";
    double deadline = now_s() + ROLE_DEADLINE_S;
    edi_dpdk_port *port = open_memif(false, POOL_MBUFS);
    wait_up(port);
    uint8_t *mem = edi_dpdk_ext_alloc(port, REF_MEM_BYTES);
    CHECK(mem != NULL);
    for (size_t i = 0; i < REF_MEM_BYTES; i++)
        mem[i] = ref_byte(i);
    edi_dpdk_port_stats st;
    uint64_t full_seen = 0;
    for (uint64_t seq = 0; seq < REF_FRAMES; seq++) {
        edi_dpdk_txbuf tb = take_txbuf(port, deadline);
        write_head(port, tb.data, KIND_REF, seq);
        CHECK(edi_dpdk_tx_attach(port, &tb, mem, mem + ref_off_a(seq), REF_PIECE_A) == 0);
        if (ref_piece_b(seq))
            CHECK(edi_dpdk_tx_attach(port, &tb, mem, mem + ref_off_b(seq), REF_PIECE_B) == 0);
        while (edi_dpdk_tx_commit(port, 0, &tb, 23 + REF_PIECE_A + ref_piece_b(seq)) ==
               EDIST_EAGAIN) {
            edi_dpdk_tx_flush(port, 0);
            if (!atomic_load(&shared->ref_sent)) {
                /* the ring is full: let the server start */
                edi_dpdk_port_stats_get(port, &st);
                full_seen = st.tx_full;
                atomic_store(&shared->ref_sent, true);
            }
            CHECK(now_s() < deadline);
        }
        edi_dpdk_tx_flush(port, 0);
    }
    atomic_store(&shared->ref_sent, true);
    while (atomic_load(&shared->ref_got) < REF_FRAMES || edi_dpdk_tx_pending(port, 0) > 0) {
        edi_dpdk_tx_flush(port, 0);
        CHECK(now_s() < deadline);
    }
    /* The memif driver frees what the server took on its next transmit,
     * ours on our next flush: a frame of nothing, then the pool. */
    for (;;) {
        edi_dpdk_txbuf tb;
        if (edi_dpdk_tx_get(port, &tb) == 0) {
            write_head(port, tb.data, KIND_DATA, 0);
            CHECK(edi_dpdk_tx_commit(port, 0, &tb, 23) == 0);
        }
        edi_dpdk_tx_flush(port, 0);
        usleep(1000);
        edi_dpdk_tx_flush(port, 0);
        edi_dpdk_port_stats_get(port, &st);
        if (st.pool_in_use <= 2)
            break;
        if (now_s() > deadline) {
            fprintf(stderr, "ref client: pool in use %llu after the server took all\n",
                    (unsigned long long)st.pool_in_use);
            CHECK(st.pool_in_use <= 2);
        }
    }
    fprintf(stderr, "ref client: %u frames of 2 or 3 segments by reference, ring full %llu times "
            "before the server read, pool back (%llu in use), zc orphans %llu\n",
            REF_FRAMES, (unsigned long long)full_seen, (unsigned long long)st.pool_in_use,
            (unsigned long long)st.zc_orphans);
    CHECK(full_seen > 0);
    CHECK(st.zc_orphans == 0);
    edi_dpdk_ext_release(mem);
    CHECK(edi_dpdk_port_close(port) == 0);
    edi_dpdk_eal_cleanup();
    _exit(0);
}

/* The children's PIDs, for their DPDK runtime directories: a child that
 * fails a check leaves without cleaning up. */
static pid_t children[2 * ROUNDS + 2];
static int n_children;

/* A child that crashes says where, and dies of the signal (not through
 * cmocka's handlers, inherited from the parent). */
static void crash_report(int sig)
{
    char line[64];
    int n = snprintf(line, sizeof(line), "%s: signal %d at\n", role_name, sig);
    (void)!write(2, line, (size_t)n);
    void *frames[32];
    backtrace_symbols_fd(frames, backtrace(frames, 32), 2);
    signal(sig, SIG_DFL);
    raise(sig);
}

static pid_t spawn(void (*fn)(bool), bool arg)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
        for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
            signal(sigs[i], crash_report);
        fn(arg);
        _exit(2);
    }
    children[n_children++] = pid;
    return pid;
}

static bool exists(const char *name)
{
    char path[128];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    return stat(path, &st) == 0;
}

/* Waits for pid until deadline; kills it by its PID past that. Returns
 * the wait status, or -1 if it had to be killed. */
static int wait_pid(pid_t pid, double deadline)
{
    int status;
    while (now_s() < deadline) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

static void wait_socket(pid_t server)
{
    double until = now_s() + 10;
    while (!exists("ready")) {
        int status;
        if (waitpid(server, &status, WNOHANG) == server)
            fail_msg("server ended before it was ready");
        if (now_s() > until) {
            kill(server, SIGKILL);
            waitpid(server, &status, 0);
            fail_msg("memif server not ready after 10 s");
        }
        usleep(10000);
    }
}

static void expect_clean_exit(int status, const char *who)
{
    if (status == -1)
        fail_msg("%s hung and was killed", who);
    if (WIFSIGNALED(status))
        fail_msg("%s died of signal %d", who, WTERMSIG(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void memif_exchange_in_order(void **state)
{
    (void)state;
    pid_t server = spawn(server_main, false);
    wait_socket(server);
    client_asks_late = true;
    pid_t client = spawn(client_main, false);
    client_asks_late = false;
    double deadline = now_s() + ROLE_DEADLINE_S + 3;
    int cs = wait_pid(client, deadline);
    int ss = wait_pid(server, deadline);
    expect_clean_exit(cs, "client");
    expect_clean_exit(ss, "server");
    /* The server's listener socket went with its port. */
    assert_false(exists("m.sock"));
}

static void memif_zero_copy_by_reference(void **state)
{
    (void)state;
    zero_copy = true;
    pid_t server = spawn(ref_server_main, false);
    wait_socket(server);
    pid_t client = spawn(ref_client_main, false);
    zero_copy = false;
    double deadline = now_s() + ROLE_DEADLINE_S + 3;
    int cs = wait_pid(client, deadline);
    int ss = wait_pid(server, deadline);
    expect_clean_exit(cs, "client");
    expect_clean_exit(ss, "server");
}

static void remove_file(const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    unlink(path);
}

static void sleep_until_ns(int64_t t)
{
    while (now_ns() < t) {
    }
}

/* One round: the client killed once the server echoed KILL_AFTER_FRAMES;
 * the server's close set offset_us from the kill (NO_CLOSE_AT: none). */
static void peer_killed_round(int64_t offset_us)
{
    atomic_store(&shared->close_at_ns, 0);
    atomic_store(&shared->kill_at_ns, 0);
    remove_file("ready");
    remove_file("progress");
    pid_t server = spawn(server_main, true);
    wait_socket(server);
    pid_t client = spawn(client_main, true);
    double deadline = now_s() + ROLE_DEADLINE_S + 3;
    while (!exists("progress") && now_s() < deadline) {
        int status;
        if (waitpid(client, &status, WNOHANG) == client) {
            kill(server, SIGKILL);
            waitpid(server, &status, 0);
            fail_msg("client ended on its own");
        }
        usleep(1000);
    }
    int64_t kill_at = now_ns() + 1000000;
    atomic_store(&shared->kill_at_ns, kill_at);
    if (offset_us != NO_CLOSE_AT)
        atomic_store(&shared->close_at_ns, kill_at + offset_us * 1000);
    sleep_until_ns(kill_at);
    kill(client, SIGKILL);
    int cs = wait_pid(client, deadline);
    assert_true(cs != -1 && WIFSIGNALED(cs));
    int ss = wait_pid(server, deadline);
    if (ss != -1 && WIFSIGNALED(ss)) {
        if (offset_us == NO_CLOSE_AT)
            fprintf(stderr, "server closing on link-down died of signal %d\n", WTERMSIG(ss));
        else
            fprintf(stderr, "server closing %lld us after the kill died of signal %d\n",
                    (long long)offset_us, WTERMSIG(ss));
    }
    expect_clean_exit(ss, "server");
}

static void memif_peer_killed(void **state)
{
    (void)state;
    for (size_t i = 0; i < ROUNDS; i++)
        peer_killed_round(close_offsets_us[i]);
}

/* One round of a client that starts too early: before its server
 * (server_first false), or once the server's `wait_for` file exists, the
 * server holding its device back delay_ms after its EAL started. */
static void early_client_round(const char *wait_for, bool server_first,
                               unsigned delay_ms, bool restarted)
{
    remove_file("ready");
    server_start_delay_ms = delay_ms;
    client_restarts = restarted;
    pid_t server = -1, client = -1;
    double deadline = now_s() + ROLE_DEADLINE_S + 3;
    if (server_first) {
        server = spawn(server_main, false);
        while (wait_for && !exists(wait_for) && now_s() < deadline)
            usleep(1000);
        client = spawn(client_main, false);
    } else {
        client = spawn(client_main, false);
        usleep(300000); /* its first start failed: no socket */
        server = spawn(server_main, false);
    }
    int cs = wait_pid(client, deadline);
    int ss = wait_pid(server, deadline);
    expect_clean_exit(cs, "client");
    expect_clean_exit(ss, "server");
}

static void memif_client_restarts(void **state)
{
    (void)state;
    frames_64 = 10000;
    frames_jumbo = 100;
    /* No server yet: the client's start fails, and is tried again (unless
     * its EAL took longer than the server's: no restart is asked). */
    early_client_round(NULL, false, 0, false);
    /* The server's socket listens, its device is not started: the client
     * connects, is refused, and is restarted once the device is there. */
    early_client_round("m.sock", true, 1500, true);
    frames_64 = FRAMES_64;
    frames_jumbo = FRAMES_JUMBO;
    client_restarts = false;
    server_start_delay_ms = 0;
}

static int setup(void **state)
{
    (void)state;
    n_children = 0;
    shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                  -1, 0);
    if (shared == MAP_FAILED)
        return -1;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/edist-memif-XXXXXX");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    const char *names[] = {"m.sock", "progress", "ready"};
    for (size_t i = 0; i < 3; i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    for (int i = 0; i < n_children; i++) {
        for (const char *r = "sc"; *r; r++) {
            char path[128];
            snprintf(path, sizeof(path), "/var/run/dpdk/edist-memif-%c-%ld", *r,
                     (long)children[i]);
            rmdir(path);
        }
    }
    munmap(shared, sizeof(*shared));
    return rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(memif_exchange_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(memif_peer_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(memif_client_restarts, setup, teardown),
        cmocka_unit_test_setup_teardown(memif_zero_copy_by_reference, setup, teardown),
    };
    /* EDIST_MEMIF_KILLS=N: only the kill, N times (to measure the race). */
    const char *kills = getenv("EDIST_MEMIF_KILLS");
    if (kills != NULL) {
        int failed = 0;
        for (int i = 0; i < atoi(kills); i++)
            failed += _cmocka_run_group_tests("memif_kills", tests + 1, 1, NULL, NULL);
        return failed;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
