/* SPDX-License-Identifier: Apache-2.0 */
/* An OS thread that is a process: a trading engine's own thread (here the
 * main thread) registered as `engine`, exchanging messages with a green
 * process (`pricer`) and with other nodes.
 *
 *   thread_engine NAME COOKIE
 *
 * From erl:
 *   {engine, 'NAME@host'} ! {order, self(), Id, Qty}   -> {fill, Id, Qty, Price}
 * The engine hands each order to the pricer (a green process on the
 * node's shard) and waits for its price with a selective receive, while
 * new orders queue in its mailbox; the fill goes back to whoever sent the
 * order. The engine's receive spins 50 us before it sleeps on its
 * mailbox: a thread that must react fast keeps its core, one that may
 * sleep gives it up.
 *
 * SIGINT or SIGTERM: a small thread takes it (sigwait) and sends `stop`
 * to the engine, which detaches and stops the node. */
/* sigwait and pthread_sigmask under -std=c11 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "edist/edist.h"

static edist_pattern *compile(const char *text)
{
    edist_pattern *p = NULL;
    edist_parse_error pe;
    if (edist_pattern_compile(text, strlen(text), &p, &pe) != 0)
        fprintf(stderr, "thread_engine: pattern %s: %s\n", text, pe.message);
    return p;
}

/* The pricer: {price, From, Id, Qty} -> From ! {priced, Id, 100 + Qty}.
 * Its pattern is the engine's (arg), freed after the node stopped: a green
 * process still waiting then never returns. */
static void pricer_main(void *arg)
{
    const edist_pattern *req = arg;
    for (;;) {
        edist_term_view m, v[3] = {{0}};
        if (edist_receive(req, v, -1, &m) != 0)
            continue;
        edist_cursor c;
        edist_procid from;
        int64_t qty;
        edist_cursor_init(&c, v[edist_pattern_var_index(req, "From")].ptr,
                          v[edist_pattern_var_index(req, "From")].len);
        if (edist_dec_procid(&c, &from) != 0)
            continue;
        edist_cursor_init(&c, v[edist_pattern_var_index(req, "Qty")].ptr,
                          v[edist_pattern_var_index(req, "Qty")].len);
        if (edist_dec_int64(&c, &qty) != 0 || qty < 0 || qty > INT64_MAX - 100)
            qty = 0; /* not a quantity: priced as none */
        edist_term_view id = v[edist_pattern_var_index(req, "Id")];
        edist_buf b;
        edist_buf_init(&b);
        edist_enc_tuple(&b, 3);
        edist_enc_atomz(&b, "priced");
        edist_enc_raw(&b, id.ptr, id.len);
        edist_enc_int(&b, 100 + qty);
        if (edist_buf_error(&b) == 0)
            edist_send(from, b.data, b.len);
        edist_buf_free(&b);
    }
}

typedef struct stopper {
    sigset_t sigs;
    edist_runtime *rt;
} stopper;

static void *stopper_main(void *arg)
{
    stopper *s = arg;
    int sig;
    sigwait(&s->sigs, &sig);
    static const uint8_t stop[] = {119, 4, 's', 't', 'o', 'p'};
    edist_runtime_send_name(s->rt, "engine", stop, sizeof stop);
    return NULL;
}

static int engine(edist_runtime *rt, const edist_pattern *price_req)
{
    edist_procid self, pricer;
    if (edist_proc_attach_thread(rt, 50, &self) != 0 || edist_register("engine", self) != 0 ||
        edist_runtime_spawn(rt, pricer_main, (void *)price_req, NULL, &pricer) != 0)
        return 1;
    edist_pattern *order = compile("{order, From, Id, Qty}");
    edist_pattern *priced = compile("{priced, Id, Price}");
    edist_pattern *stop = compile("stop");
    int rc = order && priced && stop ? 0 : 1;
    if (rc == 0) {
        printf("ready %s\n", edist_procid_node(self));
        fflush(stdout);
    }
    while (rc == 0) {
        edist_term_view m, v[3] = {{0}};
        if (edist_receive(NULL, NULL, -1, &m) != 0) {
            rc = 1; /* killed */
            break;
        }
        if (edist_match(stop, m.ptr, m.len, NULL) == 1)
            break;
        if (edist_match(order, m.ptr, m.len, v) != 1)
            continue; /* not an order: dropped */
        /* Kept: the next receive would free the order's views. */
        edist_message *kept;
        if (edist_msg_keep(&kept) != 0)
            continue;
        edist_term_view o = edist_message_term(kept);
        memset(v, 0, sizeof v);
        edist_match(order, o.ptr, o.len, v);
        edist_term_view from = v[edist_pattern_var_index(order, "From")];
        edist_term_view id = v[edist_pattern_var_index(order, "Id")];
        edist_term_view qty = v[edist_pattern_var_index(order, "Qty")];
        edist_buf b;
        edist_buf_init(&b);
        edist_enc_tuple(&b, 4);
        edist_enc_atomz(&b, "price");
        edist_enc_procid(&b, self);
        edist_enc_raw(&b, id.ptr, id.len);
        edist_enc_raw(&b, qty.ptr, qty.len);
        if (edist_buf_error(&b) == 0 && edist_send(pricer, b.data, b.len) == 0) {
            /* Only this order's price: other orders wait in the mailbox. */
            edist_term_view pv[2] = {{0}};
            pv[edist_pattern_var_index(priced, "Id")] = id;
            if (edist_receive(priced, pv, 5000, &m) == 0) {
                edist_term_view price = pv[edist_pattern_var_index(priced, "Price")];
                edist_cursor c;
                edist_procid to;
                edist_cursor_init(&c, from.ptr, from.len);
                edist_buf_reset(&b);
                edist_enc_tuple(&b, 4);
                edist_enc_atomz(&b, "fill");
                edist_enc_raw(&b, id.ptr, id.len);
                edist_enc_raw(&b, qty.ptr, qty.len);
                edist_enc_raw(&b, price.ptr, price.len);
                if (edist_dec_procid(&c, &to) == 0 && edist_buf_error(&b) == 0)
                    edist_send(to, b.data, b.len);
            }
        }
        edist_buf_free(&b);
        edist_message_free(kept);
    }
    edist_pattern_free(order);
    edist_pattern_free(priced);
    edist_pattern_free(stop);
    edist_proc_detach_thread(NULL, 0);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s NAME COOKIE\n", argv[0]);
        return 2;
    }
    stopper s;
    sigemptyset(&s.sigs);
    sigaddset(&s.sigs, SIGINT);
    sigaddset(&s.sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &s.sigs, NULL);

    edist_node_config cfg;
    edist_node_config_init(&cfg);
    cfg.name = argv[1];
    cfg.cookie = argv[2];
    edist_node *node;
    if (edist_node_start(&cfg, &node) != 0) {
        fprintf(stderr, "thread_engine: %s\n", edist_last_error());
        return 1;
    }
    s.rt = edist_node_runtime(node);
    pthread_t t;
    if (pthread_create(&t, NULL, stopper_main, &s) != 0) {
        fprintf(stderr, "thread_engine: cannot start the signal thread\n");
        edist_node_stop(node);
        return 1;
    }
    edist_pattern *price_req = compile("{price, From, Id, Qty}");
    int rc = price_req ? engine(s.rt, price_req) : 1;
    if (rc)
        fprintf(stderr, "thread_engine: %s\n", edist_last_error());
    /* the signal thread first: it sends through the node's runtime */
    pthread_cancel(t); /* still in sigwait when the engine failed */
    pthread_join(t, NULL);
    edist_node_stop(node);
    edist_pattern_free(price_req);
    return rc;
}
