/* SPDX-License-Identifier: Apache-2.0 */
/* Shared between the files of dataplane/dpdk only. */
#ifndef EDI_DATAPLANE_DPDK_INTERNAL_H
#define EDI_DATAPLANE_DPDK_INTERNAL_H

#include <stddef.h>

/* Copies DPDK's last log line (since the last call) to out, "" if none:
 * the detail for an error sentence. */
void edi_dpdk_log_last(char *out, size_t cap);

/* Runs fn(arg) on EAL's interrupt thread, where PMDs run their control
 * path one callback at a time, and returns once it ran: what must not
 * overlap a PMD's own work there (a port's stop and close). Runs it right
 * here on that thread itself, or when the EAL is not up or could not take
 * our callback. Blocks while the thread is busy; any thread. */
void edi_dpdk_on_interrupt_thread(void (*fn)(void *), void *arg);

#endif
