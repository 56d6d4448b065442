/* SPDX-License-Identifier: Apache-2.0 */
/* The io_uring TCP data path as a lane (dataplane/lane.h). The lane is a
 * thin adapter: a link wraps a connection that is already connected (and
 * handshaken: the control side did that in RAW framing) and from then on
 * carries U32 frames. Transmit goes straight into the connection's
 * transmit memory: tx_reserve/tx_commit are edi_conn_frame_reserve/commit,
 * a batch is edi_conn_send_frame_owned per frame (bodies not copied), and
 * the connection's sends of an iteration go out as one sendmsg at its end
 * (tx_flush has nothing to add). Frames arrive as completions on the
 * reactor's ring: the lane has nothing to poll. Room: the connection's send
 * queue limit (EDIST_EAGAIN, then on_writable). */
#ifndef EDI_URING_TCP_LANE_H
#define EDI_URING_TCP_LANE_H

#include "dataplane/lane.h"
#include "dataplane/uring/tcp.h"

/* open's params: none (NULL). */
extern const edi_lane_ops edi_tcp_lane_ops;

/* Makes conn (connected, on the lane's loop) a link of lane: the link
 * takes over its callbacks and user (on_frame, on_writable, on_close go
 * to the lane's handler with user) and switches it to U32 framing. Its
 * on_closed reason is the connection's on_close reason. Closing the link
 * closes the connection gracefully (everything queued is sent first);
 * closing the lane aborts its connections. Loop thread. Returns 0,
 * EDIST_EINVAL (not a TCP lane, another loop's connection),
 * EDIST_ENOMEM. */
int edi_tcp_lane_link_wrap(edi_lane *lane, edi_conn *conn, void *user,
                           edi_lane_link **out);

/* The connection under a TCP lane link. */
edi_conn *edi_tcp_lane_link_conn(const edi_lane_link *link);

#endif
