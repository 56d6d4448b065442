/* SPDX-License-Identifier: Apache-2.0 */
/* The floor for `edist bench pair --lane memif --idle busy` on this host:
 * raw DPDK memif between two processes through edist's port layer
 * (dataplane/dpdk), no link protocol, no node: one frame per message.
 *   build-bench/bench/edist_memif_floor [FRAMES [ROUND_TRIPS]]
 * A one-way stream of FRAMES frames of 64 bytes, then of 1 KiB (payload
 * after the Ethernet header; the receiver counts them and answers the
 * last: memif does not lose), then ROUND_TRIPS timed 64-byte round trips
 * after 10,000 warm-up ones. Both processes busy-poll. Needs root (as
 * DPDK here does); the memif socket lives in a temporary directory, and
 * the echo process is ended by its PID. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dataplane/dpdk/dpdk.h"
#include "edist/error.h"

#define WARMUP 10000
#define BURST 32u
#define DEADLINE_S 120

enum { KIND_DATA = 1, KIND_LAST = 2, KIND_PING = 3, KIND_DONE = 4 };

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static const uint8_t mac_any[6] = {0x02, 0, 0, 0, 0, 1};

/* Opens the EAL and the memif port in the given role, link up. Both
 * processes start at once: the port restarts a client until its server is
 * there and started (edi_dpdk_port_link). */
static edi_dpdk_port *open_port(const char *dir, const char *role)
{
    char args[512];
    snprintf(args, sizeof args,
             "--no-pci --vdev=net_memif0,role=%s,socket=%s/memif.sock,"
             "socket-abstract=no",
             role, dir);
    edi_dpdk_eal_config ec = {.args = args};
    edi_dpdk_port_config pc = {.device = "net_memif0"};
    edi_dpdk_port *port = NULL;
    if (edi_dpdk_eal_init(&ec) != 0 || edi_dpdk_port_open(&pc, &port) != 0 ||
        edi_dpdk_port_wait_link(port, 30000) != 0) {
        fprintf(stderr, "memif_floor: %s: %s\n", role, edist_last_error());
        return NULL;
    }
    return port;
}

/* Queues one frame of len bytes (Ethernet header, kind, value). */
static int put_frame(edi_dpdk_port *port, size_t len, uint8_t kind, uint64_t v)
{
    edi_dpdk_txbuf b;
    while (edi_dpdk_tx_get(port, &b) != 0)
        edi_dpdk_tx_flush(port, 0);
    edi_dpdk_eth_header_write(b.data, mac_any, mac_any);
    b.data[14] = kind;
    memcpy(b.data + 15, &v, sizeof v);
    while (edi_dpdk_tx_commit(port, 0, &b, len) != 0)
        edi_dpdk_tx_flush(port, 0);
    return 0;
}

/* The echo side: counts data frames and answers a stream's last frame
 * with the count; echoes pings; ends at DONE. */
static int echo_side(const char *dir)
{
    edi_dpdk_port *port = open_port(dir, "server");
    if (!port)
        return 1;
    edi_frame f[BURST];
    uint64_t count = 0;
    for (;;) {
        unsigned n = edi_dpdk_rx_burst(port, 0, f, BURST);
        for (unsigned i = 0; i < n; i++) {
            uint8_t kind = f[i].data[14];
            uint64_t v;
            memcpy(&v, f[i].data + 15, sizeof v);
            size_t len = f[i].len;
            edi_rxbuf_unref(f[i].rxbuf);
            if (kind == KIND_DATA) {
                count++;
            } else if (kind == KIND_LAST) {
                put_frame(port, 64, KIND_LAST, count + 1);
                count = 0;
            } else if (kind == KIND_PING) {
                put_frame(port, len, KIND_PING, v);
            } else if (kind == KIND_DONE) {
                edi_dpdk_tx_flush(port, 0);
                usleep(100000); /* the client closes first */
                edi_dpdk_port_close(port);
                return 0;
            }
        }
        edi_dpdk_tx_flush(port, 0);
    }
}

/* Waits for one frame of `kind`; its value. */
static uint64_t await_frame(edi_dpdk_port *port, uint8_t kind)
{
    edi_frame f[BURST];
    for (;;) {
        unsigned n = edi_dpdk_rx_burst(port, 0, f, BURST);
        uint64_t v = 0;
        bool got = false;
        for (unsigned i = 0; i < n; i++) {
            if (f[i].data[14] == kind) {
                memcpy(&v, f[i].data + 15, sizeof v);
                got = true;
            }
            edi_rxbuf_unref(f[i].rxbuf);
        }
        if (got)
            return v;
    }
}

/* Frames per second of a one-way stream of `frames` frames of payload
 * bytes after the Ethernet header, until the echo side's count. */
static double stream(edi_dpdk_port *port, uint64_t frames, size_t payload)
{
    int64_t t0 = now_ns();
    for (uint64_t i = 0; i + 1 < frames; i++) {
        put_frame(port, 14 + payload, KIND_DATA, i);
        if (edi_dpdk_tx_pending(port, 0) >= BURST)
            edi_dpdk_tx_flush(port, 0);
    }
    put_frame(port, 14 + payload, KIND_LAST, frames);
    edi_dpdk_tx_flush(port, 0);
    while (edi_dpdk_tx_pending(port, 0) > 0)
        edi_dpdk_tx_flush(port, 0);
    uint64_t got = await_frame(port, KIND_LAST);
    double s = (double)(now_ns() - t0) / 1e9;
    if (got != frames) {
        fprintf(stderr, "memif_floor: %llu of %llu frames arrived\n",
                (unsigned long long)got, (unsigned long long)frames);
        return -1;
    }
    return (double)frames / s;
}

int main(int argc, char **argv)
{
    long long frames = argc > 1 ? atoll(argv[1]) : 10000000;
    long long n = argc > 2 ? atoll(argv[2]) : 100000;
    if (frames < 1000 || n < 1000) {
        fprintf(stderr, "usage: %s [FRAMES >= 1000 [ROUND_TRIPS >= 1000]]\n", argv[0]);
        return 2;
    }
    char dir[] = "/tmp/edist-memif-floor-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("memif_floor: mkdtemp");
        return 1;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("memif_floor: fork");
        rmdir(dir);
        return 1;
    }
    if (child == 0) {
        alarm(DEADLINE_S);
        _exit(echo_side(dir));
    }
    int rc = 1;
    int64_t *rtt = malloc(sizeof *rtt * (size_t)n);
    edi_dpdk_port *port = rtt ? open_port(dir, "client") : NULL;
    if (port) {
        /* touched before the timed loop, as edist bench pair does */
        for (long long i = 0; i < n; i += 512)
            ((volatile int64_t *)rtt)[i] = 1;
        double r64 = stream(port, (uint64_t)frames, 64);
        double r1k = stream(port, (uint64_t)frames / 4, 1024);
        for (long long i = 0; i < n + WARMUP; i++) {
            int64_t t0 = now_ns();
            put_frame(port, 14 + 64, KIND_PING, (uint64_t)i);
            edi_dpdk_tx_flush(port, 0);
            uint64_t v = await_frame(port, KIND_PING);
            if (v != (uint64_t)i)
                break;
            if (i >= WARMUP)
                rtt[i - WARMUP] = now_ns() - t0;
            if (i + 1 == n + WARMUP)
                rc = 0;
        }
        put_frame(port, 64, KIND_DONE, 0);
        edi_dpdk_tx_flush(port, 0);
        if (rc == 0 && r64 > 0 && r1k > 0) {
            qsort(rtt, (size_t)n, sizeof *rtt, cmp);
            printf("raw DPDK memif (no edist), busy polling: stream %.2f M frames/s "
                   "(64 B), %.2f M frames/s (1 KiB); ping-pong, 64-byte frames, "
                   "%lld round trips: p50 %.2f us, p99 %.2f us, p99.9 %.2f us, "
                   "max %.1f us\n",
                   r64 / 1e6, r1k / 1e6, n, rtt[n / 2] / 1e3,
                   rtt[(int64_t)n * 99 / 100] / 1e3,
                   rtt[(int64_t)n * 999 / 1000] / 1e3, rtt[n - 1] / 1e3);
        } else {
            rc = 1;
        }
        edi_dpdk_port_close(port);
    }
    int status = 0;
    if (rc != 0)
        kill(child, SIGKILL);
    waitpid(child, &status, 0);
    char sock[64];
    snprintf(sock, sizeof sock, "%s/memif.sock", dir);
    unlink(sock);
    rmdir(dir);
    free(rtt);
    if (rc || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "memif_floor: failed\n");
        return 1;
    }
    return 0;
}
