/* SPDX-License-Identifier: Apache-2.0 */
/* `edist bench pair --lane af_xdp|af_packet`: two network namespaces of the
 * run's own, joined by two veth pairs:
 * - the data pair, without addresses, for the DPDK port of each node
 *   (af_xdp and af_packet take every frame of the interface's queue, so
 *   nothing else can share it);
 * - the control pair, with a /30 of private addresses, for what stays on
 *   TCP (port mapper, handshake, ticks).
 * With faults, the data pair is two pairs with a third namespace, the
 * wire, between them, which forwards frames both ways with tc and drops,
 * duplicates and delays (reorders) a share of them: tc's netem would be
 * the tool, but it cannot act on af_xdp's frames at either end (they leave
 * by direct transmit, past the qdisc, and arrive through XDP, before tc),
 * and this machine's kernel has no netem; classic BPF filters with the
 * kernel's random number and mirred actions need neither.
 * The names carry the creator's PID, so runs side by side do not meet; the
 * addresses are the same in every run (each pair of namespaces is a world
 * of its own). Made and removed with ip(8) and tc(8): root only. */
#ifndef EDIST_CLI_BENCH_NETNS_H
#define EDIST_CLI_BENCH_NETNS_H

#include <stdbool.h>

typedef struct bench_netns {
    char ns[3][32]; /* "edist-bp-<pid>-a", "...-b", "...-w" (wire) */
    bool ns_made[3];
    char data_if[2][16]; /* the data veth's ends, ns[0] holds [0] */
    char ctl_if[2][16];
    const char *ctl_addr[2]; /* "10.88.0.1", "10.88.0.2" */
    int fd[2];               /* /run/netns/<ns>, for setns; -1 */
    int home_fd;             /* this process's own namespace; -1 */
    long id;
} bench_netns;

/* Makes the namespaces and veth pairs, up and addressed; faults_pct > 0:
 * with the wire between the data ends, dropping, duplicating and
 * reordering that percentage of frames each, each way. Returns 0 or
 * a negative edist_err with the error set (what failed and ip's words are
 * on stderr); on failure what was made is removed again. Signals that must
 * not reach ip/tc should be blocked: the children get an empty mask. */
int bench_netns_create(bench_netns *n, long id, double faults_pct);

/* Frames the wire took so far, both ways: counts[0] dropped, [1]
 * duplicated, [2] detoured (reordered), [3] passed straight on. Zeroes
 * without a wire. */
void bench_netns_wire_counts(const bench_netns *n,
                             unsigned long long counts[4]);

/* Removes what bench_netns_create made (the veths go with their
 * namespaces once no process is left in them). Idempotent. */
void bench_netns_destroy(bench_netns *n);

/* Moves the calling thread into namespace side (0 or 1), or back home
 * (side -1). Only a system call: usable between fork and exec. 0 or -1. */
int bench_netns_enter(const bench_netns *n, int side);

#endif
