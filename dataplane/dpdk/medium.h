/* SPDX-License-Identifier: Apache-2.0 */
/* What kind of DPDK port a device name is, as lane offers name it: memif,
 * af_xdp, af_packet, or nic, and what follows from it. A string test only,
 * no DPDK: the node checks its lane limits against the medium before the
 * port exists, in builds with and without DPDK. */
#ifndef EDI_DPDK_MEDIUM_H
#define EDI_DPDK_MEDIUM_H

#include <stdbool.h>
#include <string.h>

static inline const char *edi_dpdk_medium_of(const char *device)
{
    if (!strncmp(device, "net_memif", 9))
        return "memif";
    if (!strncmp(device, "net_af_xdp", 10))
        return "af_xdp";
    if (!strncmp(device, "net_af_packet", 13))
        return "af_packet";
    return "nic";
}

/* The lane's receive window per link: on memif and NICs, and on a port
 * over a kernel interface, where what is in flight must fit the kernel's
 * queues (the link protocol has no congestion window). The node's
 * dpdk_recv_window_bytes and dpdk_kernel_window_bytes default to these. */
#define EDI_DPDK_RECV_WINDOW_BYTES_DEFAULT (4u << 20)
#define EDI_DPDK_KERNEL_WINDOW_BYTES_DEFAULT (128u << 10)

/* A link's send buffer at least (dpdk_send_buffer_bytes): room for the
 * largest unit the scheduler hands over, a 64 KiB fragment with its
 * headers and the control message before it; a smaller buffer would
 * keep such a unit waiting for ever. */
#define EDI_DPDK_SEND_BUFFER_MIN_BYTES (256u << 10)
#define EDI_DPDK_SEND_BUFFER_BYTES_DEFAULT (8u << 20)

/* A port over a kernel interface (its window: the kernel one). */
static inline bool edi_dpdk_medium_is_kernel(const char *medium)
{
    return !strcmp(medium, "af_xdp") || !strcmp(medium, "af_packet");
}

#endif
