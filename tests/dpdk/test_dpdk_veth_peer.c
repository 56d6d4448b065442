/* SPDX-License-Identifier: Apache-2.0 */
/* One end of test_dpdk_veth.sh, run inside a network namespace on a
 * kernel-backed DPDK port (af_packet, af_xdp):
 *   test_dpdk_veth_peer rx EAL_ARGS DEVICE COUNT READY_FILE
 *     receives numbered frames until the sender's end marks (or 5 s of
 *     silence after the first frame, or 20 s in all), prints what arrived
 *     (count, loss, order) and the port's counters; exit 0 unless nothing
 *     arrived, a frame was malformed or more arrived than were sent.
 *   test_dpdk_veth_peer tx EAL_ARGS DEVICE COUNT FRAME_BYTES
 *     sends COUNT numbered frames as fast as the port takes them, then
 *     end marks; prints what the port took.
 * These media may lose: loss is reported, never required to be zero. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dataplane/dpdk/dpdk.h"
#include "edist/error.h"

enum { KIND_DATA = 1, KIND_END = 2 };

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_stats(const char *who, edi_dpdk_port *port)
{
    edi_dpdk_port_stats st;
    edi_dpdk_port_stats_get(port, &st);
    printf("%s: device ipackets %llu opackets %llu imissed %llu ierrors %llu oerrors %llu "
           "rx_nombuf %llu; ours rx_frames %llu rx_foreign %llu tx_frames %llu tx_bursts %llu "
           "tx_full %llu tx_dropped %llu pool %llu/%llu\n",
           who, (unsigned long long)st.ipackets, (unsigned long long)st.opackets,
           (unsigned long long)st.imissed, (unsigned long long)st.ierrors,
           (unsigned long long)st.oerrors, (unsigned long long)st.rx_nombuf,
           (unsigned long long)st.rx_frames, (unsigned long long)st.rx_foreign,
           (unsigned long long)st.tx_frames, (unsigned long long)st.tx_bursts,
           (unsigned long long)st.tx_full, (unsigned long long)st.tx_dropped,
           (unsigned long long)st.pool_in_use, (unsigned long long)st.pool_size);
}

static edi_dpdk_port *start(const char *args, const char *device)
{
    edi_dpdk_eal_config cfg = {.args = args};
    if (edi_dpdk_eal_init(&cfg) != 0) {
        fprintf(stderr, "EAL: %s\n", edist_last_error());
        exit(1);
    }
    edi_dpdk_port_config pc = {.device = device, .promiscuous = true};
    edi_dpdk_port *port = NULL;
    if (edi_dpdk_port_open(&pc, &port) != 0) {
        fprintf(stderr, "port: %s\n", edist_last_error());
        exit(1);
    }
    if (edi_dpdk_port_wait_link(port, 5000) != 0) {
        fprintf(stderr, "link: %s\n", edist_last_error());
        exit(1);
    }
    return port;
}

static void finish(edi_dpdk_port *port)
{
    edi_dpdk_tx_drop_pending(port, 0);
    int rc = edi_dpdk_port_close(port);
    edi_dpdk_eal_cleanup();
    if (rc != 0) {
        fprintf(stderr, "close: %s\n", edist_last_error());
        exit(1);
    }
}

static int run_rx(const char *args, const char *device, uint64_t count, const char *ready)
{
    edi_dpdk_port *port = start(args, device);
    printf("rx: %s up, payload max %u\n", device, edi_dpdk_port_payload_max(port));
    FILE *f = fopen(ready, "w");
    if (f == NULL)
        return 1;
    fclose(f);
    uint64_t got = 0, out_of_order = 0, next = 0, bad = 0, ends = 0;
    double t_end = now_s() + 20, t_first = 0, t_last = now_s(), t_data = 0;
    while (ends == 0 && now_s() < t_end && (t_first == 0 || now_s() - t_last < 5)) {
        edi_frame fr[32];
        unsigned n = edi_dpdk_rx_burst(port, 0, fr, 32);
        for (unsigned i = 0; i < n; i++) {
            if (fr[i].len < 23) {
                bad++;
            } else if (fr[i].data[14] == KIND_END) {
                ends++;
            } else {
                uint64_t seq;
                memcpy(&seq, fr[i].data + 15, 8);
                if (seq < next || seq >= count)
                    out_of_order++;
                else
                    next = seq + 1;
                got++;
            }
            edi_rxbuf_unref(fr[i].rxbuf);
        }
        if (n > 0) {
            t_last = now_s();
            if (t_first == 0)
                t_first = t_last;
            if (got > 0 && ends == 0)
                t_data = t_last;
        }
    }
    double secs = t_data - t_first;
    printf("rx: received %llu of %llu (lost %llu, %.2f%%), out of order %llu, malformed %llu, "
           "end marks %llu, %.3f M frames/s\n",
           (unsigned long long)got, (unsigned long long)count,
           (unsigned long long)(count > got ? count - got : 0),
           count ? 100.0 * (double)(count > got ? count - got : 0) / (double)count : 0.0,
           (unsigned long long)out_of_order, (unsigned long long)bad, (unsigned long long)ends,
           secs > 0 ? (double)got / secs / 1e6 : 0.0);
    print_stats("rx", port);
    finish(port);
    return got > 0 && got <= count && bad == 0 ? 0 : 1;
}

static void send_one(edi_dpdk_port *port, uint8_t kind, uint64_t seq, size_t len,
                     const uint8_t src[6])
{
    static const uint8_t broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    edi_dpdk_txbuf tb;
    while (edi_dpdk_tx_get(port, &tb) != 0)
        edi_dpdk_tx_flush(port, 0);
    edi_dpdk_eth_header_write(tb.data, broadcast, src);
    memset(tb.data + 14, 0, len - 14);
    tb.data[14] = kind;
    memcpy(tb.data + 15, &seq, 8);
    while (edi_dpdk_tx_commit(port, 0, &tb, len) == EDIST_EAGAIN)
        edi_dpdk_tx_flush(port, 0);
}

static int run_tx(const char *args, const char *device, uint64_t count, size_t len)
{
    edi_dpdk_port *port = start(args, device);
    uint8_t mac[6];
    edi_dpdk_port_mac(port, mac);
    if (len > edi_dpdk_port_payload_max(port) + 14u || len < 64)
        len = 64;
    double t0 = now_s();
    for (uint64_t seq = 0; seq < count; seq++) {
        send_one(port, KIND_DATA, seq, len, mac);
        if ((seq & 31) == 31)
            edi_dpdk_tx_flush(port, 0);
    }
    while (edi_dpdk_tx_pending(port, 0) > 0)
        edi_dpdk_tx_flush(port, 0);
    double t1 = now_s();
    /* End marks, spaced so a burst of loss does not take them all. */
    for (int i = 0; i < 20; i++) {
        usleep(20000);
        send_one(port, KIND_END, 0, 64, mac);
        while (edi_dpdk_tx_pending(port, 0) > 0)
            edi_dpdk_tx_flush(port, 0);
    }
    edi_dpdk_port_stats st;
    edi_dpdk_port_stats_get(port, &st);
    printf("tx: the port took %llu of %llu frames of %zu bytes in %.3f s (%.3f M frames/s)\n",
           (unsigned long long)st.tx_frames - 20, (unsigned long long)count, len, t1 - t0,
           (double)count / (t1 - t0) / 1e6);
    print_stats("tx", port);
    finish(port);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 6 && strcmp(argv[1], "rx") == 0)
        return run_rx(argv[2], argv[3], strtoull(argv[4], NULL, 10), argv[5]);
    if (argc == 6 && strcmp(argv[1], "tx") == 0)
        return run_tx(argv[2], argv[3], strtoull(argv[4], NULL, 10),
                      (size_t)strtoul(argv[5], NULL, 10));
    fprintf(stderr, "usage: %s rx|tx EAL_ARGS DEVICE COUNT READY_FILE|FRAME_BYTES\n", argv[0]);
    return 2;
}
