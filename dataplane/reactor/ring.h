/* SPDX-License-Identifier: Apache-2.0 */
/* The reactor's io_uring, for the data paths inside dataplane/ that submit
 * their own requests to it (the TCP data path). Not for anything above
 * dataplane/: it exposes liburing.
 *
 * Every request carries an edi_op as user_data (or NULL for a completion
 * nobody needs, such as a cancel): the reactor calls op->fn for each of its
 * completions, so it knows nothing of what the request was. Embed the op in
 * the object the request is about and find the object again with
 * edi_container_of. */
#ifndef EDI_REACTOR_RING_H
#define EDI_REACTOR_RING_H

#include <liburing.h>
#include <stddef.h>

#include "dataplane/reactor/loop.h"

typedef struct edi_op edi_op;
/* Handles one completion of a request that had op as user_data. The CQE
 * is valid during the call only. */
typedef void (*edi_op_fn)(edi_loop *loop, edi_op *op, struct io_uring_cqe *cqe);
struct edi_op {
    edi_op_fn fn;
};

#define edi_container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* The ring itself (e.g. to register a provided-buffer ring with it). */
struct io_uring *edi_loop_ring(edi_loop *loop);

/* Returns an SQE, submitting pending ones first if the SQ is full; NULL
 * only if the ring is broken. */
struct io_uring_sqe *edi_loop_sqe(edi_loop *loop);

/* A line to config.log (if any). */
void edi_loop_log(edi_loop *loop, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* For a module's fini (edi_loop_free): submits what is pending, waits up
 * to timeout_ns for at least one completion and hands every completion
 * ready to its op. The reactor's own requests are ignored then. Returns
 * the completions handled. */
unsigned edi_loop_reap_wait(edi_loop *loop, uint64_t timeout_ns);

#endif
