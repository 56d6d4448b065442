/* SPDX-License-Identifier: Apache-2.0 */
/* Shared between the files of dataplane/dpdk only. */
#ifndef EDI_DATAPLANE_DPDK_INTERNAL_H
#define EDI_DATAPLANE_DPDK_INTERNAL_H

#include <stddef.h>

/* Copies DPDK's last log line (since the last call) to out, "" if none:
 * the detail for an error sentence. */
void edi_dpdk_log_last(char *out, size_t cap);

#endif
