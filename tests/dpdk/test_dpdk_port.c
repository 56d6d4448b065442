/* SPDX-License-Identifier: Apache-2.0 */
/* dataplane/dpdk without a peer: the EAL refusing (a bogus vdev) with one
 * clear sentence, repeated init, and a port on DPDK's ring PMD (net_ring0,
 * whose transmit ring is its receive ring: every frame sent comes back)
 * for frames in and out, the bounded transmit queue, rxbuf release from
 * another thread and the pool going back to full; the DPDK lane refusing
 * a send buffer under its minimum; memif socket files left behind (a dead
 * server's removed, a client's and a live server's kept, without waiting
 * on a server that does not accept). The EAL starts once per
 * process, so each test runs in a child process of its own. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dataplane/dpdk/dpdk.h"
#include "dataplane/dpdk/dpdk_lane.h"
#include "dataplane/dpdk/medium.h"
#include "edist/error.h"

/* In the child: a failed check ends it with the line number. */
#define CHECK(cond)                                                             \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "child: %s:%d: %s (last error: %s)\n", __FILE__,    \
                    __LINE__, #cond, edist_last_error());                       \
            _exit(1);                                                           \
        }                                                                       \
    } while (0)

static void run_in_child(void (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fn();
        _exit(0);
    }
    int status = 0;
    /* Bounded: a hung child is killed by its PID. */
    for (int i = 0; i < 300; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        if (i == 299) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("child %d hung", (int)pid);
        }
        usleep(100000);
    }
    /* A child that failed a check left without cleaning up: its DPDK
     * runtime directory (empty) goes here. */
    char dir[64];
    snprintf(dir, sizeof(dir), "/var/run/dpdk/edist-%ld", (long)pid);
    rmdir(dir);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- the EAL refusing ---------------------------------------------------------- */

static void child_eal_refuses(void)
{
    edi_dpdk_eal_config cfg = {.args = "--no-pci --vdev=net_bogus0"};
    int rc = edi_dpdk_eal_init(&cfg);
    CHECK(rc == EDIST_EIO);
    char first[512];
    snprintf(first, sizeof(first), "%s", edist_last_error());
    fprintf(stderr, "child: EAL refused: %s\n", first);
    CHECK(strstr(first, "DPDK EAL did not start") != NULL);
    /* One sentence: no line breaks in it. */
    CHECK(strchr(first, '\n') == NULL);
    CHECK(!edi_dpdk_eal_up());
    /* Again: the same answer, without trying again. */
    edist_clear_error();
    CHECK(edi_dpdk_eal_init(&cfg) == EDIST_EIO);
    CHECK(strcmp(edist_last_error(), first) == 0);
    /* Nothing else works, nothing crashes. */
    edi_dpdk_port *port = NULL;
    edi_dpdk_port_config pc = {.device = "net_bogus0"};
    CHECK(edi_dpdk_port_open(&pc, &port) == EDIST_EINVAL);
    CHECK(port == NULL);
    CHECK(edi_dpdk_thread_register() == EDIST_EINVAL);
    edi_dpdk_eal_cleanup();
}

static void eal_refuses_bogus_vdev(void **state)
{
    (void)state;
    run_in_child(child_eal_refuses);
}

/* ---- a ring port ------------------------------------------------------------------ */

static const char ring_args[] = "--no-pci --vdev=net_ring0";

static void child_eal_repeat(void)
{
    edi_dpdk_eal_config cfg = {.args = ring_args};
    CHECK(edi_dpdk_eal_init(&cfg) == 0);
    CHECK(edi_dpdk_eal_up());
    fprintf(stderr, "child: EAL args: %s\n", edi_dpdk_eal_args());
    CHECK(strstr(edi_dpdk_eal_args(), "--file-prefix=edist-") != NULL);
    /* no files shared with other processes, whichever memory mode */
    CHECK(strstr(edi_dpdk_eal_args(), "--in-memory") != NULL ||
          strstr(edi_dpdk_eal_args(), "--no-shconf") != NULL);
    CHECK(strstr(edi_dpdk_eal_args(), "--lcores=0@(") != NULL);
    CHECK(edi_dpdk_eal_init(&cfg) == 0);
    edi_dpdk_eal_config other = {.args = "--no-pci"};
    CHECK(edi_dpdk_eal_init(&other) == EDIST_EINVAL);
    CHECK(edi_dpdk_thread_register() == 0); /* lcore 0 already */

    edi_dpdk_port *port = NULL;
    edi_dpdk_port_config pc = {.device = "net_nothere0"};
    CHECK(edi_dpdk_port_open(&pc, &port) == EDIST_ENOTFOUND);
    CHECK(strstr(edist_last_error(), "net_nothere0") != NULL);
    pc.device = "net_ring0";
    CHECK(edi_dpdk_port_open(&pc, &port) == 0);
    edi_dpdk_port *again = NULL;
    CHECK(edi_dpdk_port_open(&pc, &again) == EDIST_EEXIST);
    CHECK(edi_dpdk_port_close(port) == 0);
    /* A closed vdev is gone. */
    CHECK(edi_dpdk_port_open(&pc, &port) == EDIST_ENOTFOUND);
    edi_dpdk_eal_cleanup();
    CHECK(edi_dpdk_eal_init(&cfg) == EDIST_ECLOSED);
}

static void eal_repeat_and_port_names(void **state)
{
    (void)state;
    run_in_child(child_eal_repeat);
}

static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

typedef struct held_frames {
    edi_frame frames[64];
    unsigned n;
} held_frames;

static void *unref_on_other_thread(void *arg)
{
    held_frames *h = arg;
    for (unsigned i = 0; i < h->n; i++)
        edi_rxbuf_unref(h->frames[i].rxbuf);
    return NULL;
}

static void *register_thread(void *arg)
{
    int *rc = arg;
    rc[0] = edi_dpdk_thread_register();
    rc[1] = edi_dpdk_thread_register(); /* idempotent */
    edi_dpdk_thread_unregister();
    return NULL;
}

static void child_ring_frames(void)
{
    edi_dpdk_eal_config cfg = {.args = ring_args};
    CHECK(edi_dpdk_eal_init(&cfg) == 0);
    enum { LIMIT = 256, POOL = 4095 };
    edi_dpdk_port_config pc = {
        .device = "net_ring0", .pool_mbufs = POOL, .tx_pending_limit = LIMIT,
        .pool_data_room_bytes = 2048};
    edi_dpdk_port *port = NULL;
    CHECK(edi_dpdk_port_open(&pc, &port) == 0);
    CHECK(edi_dpdk_port_wait_link(port, 1000) == 0);
    uint8_t mac[6];
    edi_dpdk_port_mac(port, mac);
    uint32_t payload_max = edi_dpdk_port_payload_max(port);
    fprintf(stderr, "child: net_ring0 payload max %u\n", payload_max);
    CHECK(payload_max >= 1500 && payload_max <= 2048 - 14);

    /* Frames in order, a foreign EtherType dropped and counted. */
    uint64_t sent = 0, got = 0;
    for (int round = 0; round < 100; round++) {
        for (int i = 0; i < 32; i++) {
            edi_dpdk_txbuf tb;
            CHECK(edi_dpdk_tx_get(port, &tb) == 0);
            CHECK(tb.cap == payload_max + 14);
            edi_dpdk_eth_header_write(tb.data, mac, mac);
            put_u64(tb.data + 14, sent++);
            CHECK(edi_dpdk_tx_commit(port, 0, &tb, 64) == 0);
            CHECK(tb.handle == NULL);
        }
        edi_dpdk_txbuf tb;
        CHECK(edi_dpdk_tx_get(port, &tb) == 0);
        memset(tb.data, 0, 14);
        tb.data[12] = 0x08; /* IPv4 */
        CHECK(edi_dpdk_tx_commit(port, 0, &tb, 60) == 0);
        CHECK(edi_dpdk_tx_flush(port, 0) == 33);
        edi_frame f[64];
        unsigned n;
        while ((n = edi_dpdk_rx_burst(port, 0, f, 64)) > 0) {
            for (unsigned i = 0; i < n; i++) {
                CHECK(f[i].len == 64);
                CHECK(edi_dpdk_eth_type(f[i].data, f[i].len) == EDI_DPDK_ETHERTYPE);
                CHECK(get_u64(f[i].data + 14) == got);
                got++;
                edi_rxbuf_unref(f[i].rxbuf);
            }
        }
    }
    CHECK(got == sent);
    edi_dpdk_port_stats st;
    edi_dpdk_port_stats_get(port, &st);
    CHECK(st.rx_foreign == 100);
    CHECK(st.rx_frames == got);
    CHECK(st.tx_frames == sent + 100);
    CHECK(st.pool_in_use == 0);

    /* The port's ring (1024) full: the rest stays queued, in order, up to
     * the limit; a commit past it is refused and the buffer stays ours. */
    uint64_t base = sent;
    unsigned committed = 0;
    for (;;) {
        edi_dpdk_txbuf tb;
        CHECK(edi_dpdk_tx_get(port, &tb) == 0);
        edi_dpdk_eth_header_write(tb.data, mac, mac);
        put_u64(tb.data + 14, sent);
        int rc = edi_dpdk_tx_commit(port, 0, &tb, 64);
        if (rc == EDIST_EAGAIN) {
            CHECK(tb.handle != NULL);
            edi_dpdk_tx_discard(port, &tb);
            break;
        }
        CHECK(rc == 0);
        sent++;
        committed++;
        CHECK(committed < 100000);
    }
    CHECK(edi_dpdk_tx_pending(port, 0) == LIMIT);
    edi_dpdk_port_stats_get(port, &st);
    CHECK(st.tx_refused == 1);
    CHECK(st.tx_full >= 1);
    CHECK(st.tx_pending == LIMIT);
    fprintf(stderr, "child: %u committed before the queue was full\n", committed);
    /* Drain: every frame arrives once, in order. */
    got = base;
    for (int spins = 0; got < sent && spins < 100000; spins++) {
        edi_dpdk_tx_flush(port, 0);
        edi_frame f[64];
        unsigned n = edi_dpdk_rx_burst(port, 0, f, 64);
        for (unsigned i = 0; i < n; i++) {
            CHECK(get_u64(f[i].data + 14) == got);
            got++;
            edi_rxbuf_unref(f[i].rxbuf);
        }
    }
    CHECK(got == sent);
    CHECK(edi_dpdk_tx_pending(port, 0) == 0);

    /* A shard thread registers (an lcore id, a mempool cache). */
    int reg[2] = {-1, -1};
    pthread_t rt;
    CHECK(pthread_create(&rt, NULL, register_thread, reg) == 0);
    pthread_join(rt, NULL);
    CHECK(reg[0] == 0 && reg[1] == 0);

    /* Released on a thread DPDK does not know: the pool gets them back. */
    held_frames h = {.n = 0};
    for (int i = 0; i < 40; i++) {
        edi_dpdk_txbuf tb;
        CHECK(edi_dpdk_tx_get(port, &tb) == 0);
        edi_dpdk_eth_header_write(tb.data, mac, mac);
        CHECK(edi_dpdk_tx_commit(port, 0, &tb, 1000) == 0);
    }
    CHECK(edi_dpdk_tx_flush(port, 0) == 40);
    h.n = edi_dpdk_rx_burst(port, 0, h.frames, 64);
    CHECK(h.n == 40);
    CHECK(edi_rxbuf_scarce(h.frames[0].rxbuf));
    edi_rxbuf_ref(h.frames[0].rxbuf); /* a second holder */
    edi_dpdk_port_stats_get(port, &st);
    CHECK(st.pool_in_use == 40);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, unref_on_other_thread, &h) == 0);
    pthread_join(th, NULL);
    edi_dpdk_port_stats_get(port, &st);
    CHECK(st.pool_in_use == 1);
    CHECK(st.rx_held == 1);

    /* Queued frames are freed at close and counted; a frame still held
     * keeps the pool. */
    edi_dpdk_txbuf tb;
    CHECK(edi_dpdk_tx_get(port, &tb) == 0);
    edi_dpdk_eth_header_write(tb.data, mac, mac);
    CHECK(edi_dpdk_tx_commit(port, 0, &tb, 100) == 0);
    CHECK(edi_dpdk_tx_drop_pending(port, 0) == 1);
    edi_dpdk_port_stats_get(port, &st);
    CHECK(st.tx_dropped == 1);
    CHECK(edi_dpdk_port_close(port) == EDIST_EAGAIN);
    CHECK(strstr(edist_last_error(), "1 received frames still held") != NULL);
    edi_rxbuf_unref(h.frames[0].rxbuf); /* the pool is still there */
    edi_dpdk_eal_cleanup();
}

static void ring_frames_queue_and_release(void **state)
{
    (void)state;
    run_in_child(child_ring_frames);
}

/* ---- the lane refusing a small send buffer --------------------------------------- */

/* The option parser refuses dpdk_send_buffer_bytes under 256 KiB; a
 * program that fills in the lane's parameters itself meets the same
 * rule in the lane: refused with the option's name, the port untouched
 * (it opens afterwards), nothing held. */
static void child_lane_send_buffer(void)
{
    edi_dpdk_eal_config cfg = {.args = ring_args};
    CHECK(edi_dpdk_eal_init(&cfg) == 0);
    edi_dpdk_lane_params lp;
    edi_dpdk_lane_params_default(&lp);
    CHECK(lp.link.send_buffer_bytes >= EDI_DPDK_SEND_BUFFER_MIN_BYTES);
    lp.port.device = "net_ring0";
    lp.link.send_buffer_bytes = EDI_DPDK_SEND_BUFFER_MIN_BYTES - 1;
    edi_lane *lane = NULL;
    edist_clear_error();
    CHECK(edi_dpdk_lane_ops.open(NULL, &lp, NULL, NULL, &lane) == EDIST_EINVAL);
    CHECK(lane == NULL);
    CHECK(strstr(edist_last_error(), "dpdk_send_buffer_bytes") != NULL);
    CHECK(strstr(edist_last_error(), "262143 bytes") != NULL);
    edi_dpdk_port *port = NULL;
    edi_dpdk_port_config pc = {.device = "net_ring0"};
    CHECK(edi_dpdk_port_open(&pc, &port) == 0);
    CHECK(edi_dpdk_port_close(port) == 0);
    edi_dpdk_eal_cleanup();
}

static void lane_refuses_small_send_buffer(void **state)
{
    (void)state;
    run_in_child(child_lane_send_buffer);
}

/* ---- memif socket files left behind ------------------------------------------------ */

static char sock_dir[64];

static void sock_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", sock_dir, name);
}

/* A socket file nobody listens on: what a killed server leaves. */
static void stale_socket(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    CHECK(fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    CHECK(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    close(fd);
}

static int connect_to(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0);
    CHECK(fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

static bool is_socket(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* A server's socket that nobody listens on is removed before the EAL
 * starts and its memif listens there again; a client's (no role=: the
 * default) is never touched, even stale: it is its server's. */
static void child_memif_stale(void)
{
    char server[96], client[96], args[512];
    sock_path(server, sizeof server, "server.sock");
    sock_path(client, sizeof client, "client.sock");
    stale_socket(server);
    stale_socket(client);
    CHECK(connect_to(server) == ECONNREFUSED);
    snprintf(args, sizeof args,
             "--no-pci --vdev=net_memif0,role=server,socket=%s,socket-abstract=no "
             "--vdev=net_memif1,socket=%s,socket-abstract=no",
             server, client);
    edi_dpdk_eal_config cfg = {.args = args};
    CHECK(edi_dpdk_eal_init(&cfg) == 0);
    CHECK(is_socket(server));
    CHECK(connect_to(server) == 0); /* the new server listens */
    CHECK(is_socket(client));
    CHECK(connect_to(client) == ECONNREFUSED); /* still the stale one */
    edi_dpdk_eal_cleanup();
}

static void memif_stale_sockets(void **state)
{
    (void)state;
    run_in_child(child_memif_stale);
}

/* A live server that does not accept (stopped: its backlog full) keeps
 * its socket, and the probe of it does not hold this process's start:
 * the EAL answers at once (its memif cannot listen there: refused, with
 * the reason), and the live server's pending connection is still there. */
static void child_memif_live_stuck(void)
{
    char path[96], args[512];
    sock_path(path, sizeof path, "live.sock");
    int lfd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    CHECK(lfd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    CHECK(bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0);
    CHECK(listen(lfd, 0) == 0);
    /* fill the backlog: a blocking connect would now wait */
    int pending = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0);
    CHECK(pending >= 0);
    CHECK(connect(pending, (struct sockaddr *)&sa, sizeof sa) == 0);
    CHECK(connect_to(path) == EAGAIN);
    snprintf(args, sizeof args,
             "--no-pci --vdev=net_memif0,role=server,socket=%s,socket-abstract=no", path);
    edi_dpdk_eal_config cfg = {.args = args};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = edi_dpdk_eal_init(&cfg);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "child: EAL with a live server's socket: %d %s\n", rc,
            rc ? edist_last_error() : "");
    CHECK(t1.tv_sec - t0.tv_sec < 10);
    CHECK(is_socket(path));
    int afd = accept(lfd, NULL, NULL);
    CHECK(afd >= 0); /* the live server's connection was not lost */
    close(afd);
    close(pending);
    close(lfd);
    if (rc == 0) {
        /* probed without a port: none can open in its place */
        edi_dpdk_port *port = NULL;
        edi_dpdk_port_config pc = {.device = "net_memif0"};
        CHECK(edi_dpdk_port_open(&pc, &port) != 0);
        edi_dpdk_eal_cleanup();
    } else {
        CHECK(rc == EDIST_EIO);
    }
}

static void memif_live_socket_kept(void **state)
{
    (void)state;
    run_in_child(child_memif_live_stuck);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(eal_refuses_bogus_vdev),
        cmocka_unit_test(eal_repeat_and_port_names),
        cmocka_unit_test(ring_frames_queue_and_release),
        cmocka_unit_test(lane_refuses_small_send_buffer),
        cmocka_unit_test(memif_stale_sockets),
        cmocka_unit_test(memif_live_socket_kept),
    };
    snprintf(sock_dir, sizeof sock_dir, "/tmp/edist-dpdk-port-XXXXXX");
    if (!mkdtemp(sock_dir))
        return 1;
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", sock_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", sock_dir);
    return failed;
}
