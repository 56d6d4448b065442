/* SPDX-License-Identifier: Apache-2.0 */
/* What kind of DPDK port a device name is, as lane offers name it: memif,
 * af_xdp, af_packet, or nic. A string test only, no DPDK: the node checks
 * its lane limits against the medium before the port exists, in builds
 * with and without DPDK. */
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

/* A port over a kernel interface: what is in flight must fit the kernel's
 * queues (the lane's dpdk_kernel_window_bytes). */
static inline bool edi_dpdk_medium_is_kernel(const char *medium)
{
    return !strcmp(medium, "af_xdp") || !strcmp(medium, "af_packet");
}

#endif
