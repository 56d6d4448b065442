/* SPDX-License-Identifier: Apache-2.0 */
/* A blocking driver for the handshake state machine on a connected stream
 * socket, with a deadline. For tests, command-line clients and the node's
 * accept/connect threads; the shard loops may drive edi_hs themselves. */
#ifndef EDIST_CONTROL_HANDSHAKE_IO_H
#define EDIST_CONTROL_HANDSHAKE_IO_H

#include <stdint.h>

#include "control/handshake.h"

/* CLOCK_MONOTONIC in milliseconds: deadlines below are on this clock. */
int64_t edi_hs_io_now_ms(void);

/* Run hs (already edi_hs_init'ed) to completion on fd. Reads only what the
 * handshake needs, so the bytes the peer sends after it are still in the
 * socket. Works on blocking and non-blocking fds (uses poll); does not
 * close fd. When the state machine reaches EDI_HS_WAIT_OLD_CONN it calls
 * the config's wait_old_conn hook (if any) with the same deadline. On
 * failure it still tries, until the deadline, to send what the machine
 * queued (a nok / not_allowed status tells the peer why).
 * Returns 0 (edi_hs_get_result(hs) has the outcome) or the negative
 * handshake error: EDIST_ETIMEDOUT at deadline_ms, EDIST_EIO on a socket
 * error, others from the state machine (see handshake.h). Blocks until
 * deadline_ms at most. */
int edi_hs_io_run(edi_hs *hs, int fd, int64_t deadline_ms);

/* Connect a TCP socket to ip:port (numeric IPv4 or IPv6) by deadline_ms,
 * with TCP_NODELAY set as the distribution wants. Returns 0 and a blocking
 * fd in *fd_out, or EDIST_EINVAL / EDIST_ETIMEDOUT / EDIST_ECLOSED
 * (refused) / EDIST_EIO with detail. */
int edi_hs_io_connect_tcp(const char *ip, uint16_t port, int64_t deadline_ms,
                          int *fd_out);

#endif
