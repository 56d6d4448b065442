/* SPDX-License-Identifier: Apache-2.0 */
/* The TCP data path's state on one loop: set up explicitly or on first
 * use, attached to the reactor as a module (so that edi_loop_free ends it)
 * and polled by it every iteration (deferred callbacks, starved receives,
 * then the sends of the iteration flushed after every other source had
 * its turn). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/uring/uring_internal.h"
#include "edist/error.h"

static const edi_loop_module tcp_module;

void edi_tcp_config_default(edi_tcp_config *c)
{
    memset(c, 0, sizeof(*c));
    c->rx_buffer_bytes = 64u * 1024u;
    c->rx_buffer_count = 64;
    c->max_frame_bytes = 256ull * 1024 * 1024;
    c->raw_max_bytes = 64u * 1024u;
    c->send_queue_limit_bytes = 1024u * 1024u;
    c->max_closing = 256;
}

static bool is_pow2(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

/* The budget is not used: the work here (callbacks deferred by this
 * iteration's completions, buffers returned) is bounded by what the ring
 * delivered, which the reactor bounds already. */
static uint32_t tcp_poll(edi_loop *loop, void *arg, uint32_t budget)
{
    (void)loop;
    (void)budget;
    edi_tcp *tcp = arg;
    /* Buffers released on the loop thread go straight back to the ring;
     * the loop thread may change between runs. */
    unsigned long self = (unsigned long)pthread_self();
    if (atomic_load_explicit(&tcp->pool->owner, memory_order_relaxed) != self)
        atomic_store_explicit(&tcp->pool->owner, self, memory_order_relaxed);
    uint32_t n = edi_pool_drain_returned(tcp->pool);
    n += edi_conn_run_deferred(tcp);
    edi_conn_rearm_starved(tcp);
    n += tcp->hot_work; /* what the last flush read */
    tcp->hot_work = 0;
    return n;
}

/* The iteration's sends, then the reads of the hot connections: a reply
 * the processes just wrote goes out before we spend a syscall looking for
 * the next message, and what that read brings is handed to them by the
 * next iteration's first phases (the scheduler's timer), with no syscall
 * in between. */
static void tcp_flush(edi_loop *loop, void *arg)
{
    (void)loop;
    edi_tcp *tcp = arg;
    edi_conn_flush(tcp);
    if (tcp->nhot > 0)
        tcp->hot_work += edi_conn_poll_hot(tcp);
}

/* Before the loop sleeps: buffers returned by other threads (they woke the
 * loop after setting returned_nonempty: seq_cst, see pool_return),
 * callbacks the last iteration deferred, or hot connections. */
static bool tcp_pending(void *arg)
{
    edi_tcp *tcp = arg;
    return atomic_load(&tcp->pool->returned_nonempty) || tcp->deferred != NULL ||
           tcp->nhot > 0; /* read by us, not armed: no completion wakes us */
}

static void tcp_fini(edi_loop *loop, void *state)
{
    edi_tcp *tcp = state;
    edi_loop_poll_remove(loop, &tcp->poll);
    edi_conn_free_all(tcp);
    edi_tcp_chunks_free(tcp);
    free(tcp->hot);
    /* After this no other thread wakes the loop through the pool. */
    edi_pool_release(tcp->pool);
    free(tcp);
}

static const edi_loop_module tcp_module = { "tcp", tcp_fini };

int edi_tcp_setup(edi_loop *loop, const edi_tcp_config *config)
{
    edi_tcp_config cfg;
    if (config != NULL)
        cfg = *config;
    else
        edi_tcp_config_default(&cfg);
    if (edi_loop_module_state(loop, &tcp_module) != NULL)
        return edist_set_error(EDIST_EINVAL, "uring: the loop has a TCP data path already");
    if (!is_pow2(cfg.rx_buffer_count) || cfg.rx_buffer_count > 32768 ||
        cfg.rx_buffer_bytes < 64 || cfg.max_frame_bytes == 0 ||
        cfg.max_frame_bytes > UINT32_MAX || cfg.send_queue_limit_bytes == 0 ||
        cfg.raw_max_bytes == 0 || cfg.max_closing == 0)
        return edist_set_error(EDIST_EINVAL, "uring: bad TCP config");
    edi_tcp *tcp = calloc(1, sizeof(*tcp));
    if (tcp == NULL)
        return edist_set_error(EDIST_ENOMEM, "uring: TCP state alloc");
    tcp->loop = loop;
    tcp->cfg = cfg;
    int rc = edi_pool_new(loop, cfg.rx_buffer_count, cfg.rx_buffer_bytes, &tcp->pool);
    if (rc < 0) {
        free(tcp);
        return rc;
    }
    /* multishot recv came in 6.0, multishot accept in 5.19, the buffer
     * ring in 5.19: with a buffer ring, accept is there; recv is tried and
     * falls back to one-shot on EINVAL (see conn.c). */
    tcp->features = EDI_FEAT_RECV_MULTISHOT | EDI_FEAT_ACCEPT_MULTISHOT;
    tcp->features &= ~cfg.disable_features;
    tcp->features |= EDI_FEAT_BUF_RING; /* required: cannot be disabled */
    tcp->st.rx_buffers_total = cfg.rx_buffer_count;
    /* Two buffers for our own reads: one being filled while the last
     * one's frames are still referenced for a moment. */
    if (cfg.rx_poll_us > 0 && cfg.rx_buffer_count >= 8)
        tcp->pool->spare_target = 2;
    edi_poll_source_init(&tcp->poll, "tcp", tcp_poll, tcp_flush, tcp_pending, tcp);
    if ((rc = edi_loop_poll_add(loop, &tcp->poll)) < 0 ||
        (rc = edi_loop_module_attach(loop, &tcp_module, tcp)) < 0) {
        edi_loop_poll_remove(loop, &tcp->poll);
        edi_pool_release(tcp->pool);
        free(tcp);
        return rc;
    }
    return 0;
}

int edi_tcp_get(edi_loop *loop, edi_tcp **out)
{
    *out = edi_loop_module_state(loop, &tcp_module);
    if (*out != NULL)
        return 0;
    int rc = edi_tcp_setup(loop, NULL);
    if (rc < 0)
        return rc;
    *out = edi_loop_module_state(loop, &tcp_module);
    return 0;
}

unsigned edi_tcp_features(const edi_loop *loop)
{
    const edi_tcp *tcp = edi_loop_module_state(loop, &tcp_module);
    return tcp != NULL ? tcp->features : 0;
}

bool edi_loop_rx_low(const edi_loop *loop)
{
    const edi_tcp *tcp = edi_loop_module_state(loop, &tcp_module);
    return tcp == NULL || edi_pool_low(tcp->pool, tcp->nstarved);
}

void edi_tcp_rx_hold(edi_loop *loop, bool hold)
{
    edi_tcp *tcp = edi_loop_module_state(loop, &tcp_module);
    if (tcp != NULL && tcp->rx_held != hold)
        edi_conn_rx_hold(tcp, hold);
}

void edi_tcp_get_stats(const edi_loop *loop, edi_tcp_stats *out)
{
    const edi_tcp *tcp = edi_loop_module_state(loop, &tcp_module);
    if (tcp == NULL) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = tcp->st;
    out->rx_buffers_held = tcp->pool->held;
    out->conns_closing = tcp->nclosing;
}
