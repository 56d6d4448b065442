/* SPDX-License-Identifier: Apache-2.0 */
/* Two runtimes, a@host and b@host, each on its own loop thread, wired
 * together as the node wires a runtime to a connection (shared by
 * test_rt_hooks.c and test_services.c): every hook of one side posts the
 * signal to the other side's loop, which calls the matching entry point.
 * Messages cross as refcounted buffers. Clearing `connected` makes every
 * hook fail with EDIST_ECLOSED (spawn replies still pass); setting
 * `swallow_spawns` makes spawn requests vanish unanswered. Include after
 * cmocka.h; define RT_PAIR_AFTER_START (a function of side *) to run code
 * on each side once its runtime exists and before its loop runs. */
#ifndef EDIST_TESTS_RT_PAIR_H
#define EDIST_TESTS_RT_PAIR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proc_test_util.h"
#include "runtime/runtime_internal.h"

typedef struct side side;
struct side {
    const char *name;
    uint32_t index;
    edi_loop *loop;
    edi_rt *rt;
    pthread_t thread;
    side *peer;
    void *svc; /* the test's own per-side state */
};

static side A = {.name = "a@host"}, B = {.name = "b@host"};
static _Atomic int connected;
static _Atomic int buffers_live;
/* Set: spawn_requests reach nobody (accepted by the "connection", never
 * answered), as a peer that goes down before it replies. */
static _Atomic int swallow_spawns;
/* Set: a hook takes the other node down inside itself and fails, as the
 * node's does when a peer that does not read passes its queue's bound
 * (the runtime's node down runs before the hook returns). */
static _Atomic int down_in_hook;

/* ---- refcounted payloads (as receive buffers are) ------------------------ */

typedef struct rcbuf {
    _Atomic int refs;
    size_t len;
    uint8_t data[];
} rcbuf;

static rcbuf *rc_new(const void *data, size_t len)
{
    rcbuf *b = malloc(sizeof *b + len);
    atomic_init(&b->refs, 1);
    b->len = len;
    memcpy(b->data, data, len);
    atomic_fetch_add(&buffers_live, 1);
    return b;
}

static void rc_ref(void *owner)
{
    atomic_fetch_add(&((rcbuf *)owner)->refs, 1);
}

static void rc_unref(void *owner, const void *data)
{
    (void)data;
    rcbuf *b = owner;
    if (atomic_fetch_sub(&b->refs, 1) == 1) {
        free(b);
        atomic_fetch_sub(&buffers_live, 1);
    }
}

/* ---- the wire ------------------------------------------------------------ */

enum {
    S_SEND,
    S_REG_SEND,
    S_LINK,
    S_UNLINK,
    S_UNLINK_ACK,
    S_EXIT,
    S_EXIT2,
    S_MONITOR,
    S_DEMONITOR,
    S_MONITOR_EXIT,
    S_SPAWN_REQUEST,
    S_SPAWN_REPLY,
    S_NODE_DOWN
};

typedef struct sig {
    int kind;
    side *to;
    edist_procid from, target;
    char name[256];
    bool has_name;
    edist_ref ref;
    rcbuf *data;
    char module[256], function[256];
    unsigned flags;
    bool ok;
    uint32_t node;
    uint64_t unlink_id;
} sig;

static void deliver(edi_loop *loop, void *arg);

static int post(side *from, sig *s)
{
    if (atomic_load(&down_in_hook) && s->kind != S_SPAWN_REPLY) {
        if (s->data)
            rc_unref(s->data, NULL);
        free(s);
        edi_rt_node_down(from->rt, from->peer->index);
        return EDIST_ECLOSED;
    }
    if (!atomic_load(&connected) && s->kind != S_SPAWN_REPLY) {
        if (s->data)
            rc_unref(s->data, NULL);
        free(s);
        return EDIST_ECLOSED;
    }
    s->to = from->peer;
    return edi_loop_post(s->to->loop, deliver, s);
}

static sig *sig_new(int kind)
{
    sig *s = calloc(1, sizeof *s);
    s->kind = kind;
    return s;
}

static void deliver(edi_loop *loop, void *arg)
{
    (void)loop;
    sig *s = arg;
    edi_rt *rt = s->to->rt;
    edi_rt_incoming in = {0};
    if (s->data) {
        in.data = s->data->data;
        in.len = s->data->len;
        in.ref = rc_ref;
        in.unref = rc_unref;
        in.owner = s->data;
    }
    edist_term_view v = {in.data, in.len};
    switch (s->kind) {
    case S_SEND:
        edi_rt_deliver(rt, s->from, s->target, &in);
        break;
    case S_REG_SEND:
        edi_rt_deliver_name(rt, s->from, s->name, strlen(s->name), &in);
        break;
    case S_LINK:
        edi_rt_link_in(rt, s->from, s->target);
        break;
    case S_UNLINK:
        edi_rt_unlink_in(rt, s->from, s->target, s->unlink_id);
        break;
    case S_UNLINK_ACK:
        edi_rt_unlink_ack_in(rt, s->from, s->target, s->unlink_id);
        break;
    case S_EXIT:
    case S_EXIT2:
        edi_rt_exit_in(rt, s->from, s->target, v, s->kind == S_EXIT2);
        break;
    case S_MONITOR:
        edi_rt_monitor_in(rt, s->from, s->target, s->has_name ? s->name : NULL,
                          &s->ref);
        break;
    case S_DEMONITOR:
        edi_rt_demonitor_in(rt, s->from, s->target, &s->ref);
        break;
    case S_MONITOR_EXIT:
        edi_rt_monitor_exit_in(rt, s->from, s->target, &s->ref, v);
        break;
    case S_SPAWN_REQUEST: {
        edist_procid pid = EDIST_PROCID_NULL;
        int rc = edi_rt_spawn_export_for(rt, s->from, s->module, s->function, v,
                                         s->flags, &s->ref, &pid);
        sig *r = sig_new(S_SPAWN_REPLY);
        r->target = s->from;
        r->ref = s->ref;
        r->ok = rc == 0;
        r->target = s->from;
        r->from = pid;
        r->flags = s->flags;
        if (rc)
            r->data = rc_new("\x77\x06"
                             "badarg",
                             8);
        post(s->to, r);
        break;
    }
    case S_SPAWN_REPLY: {
        edist_term_view err = {s->data ? s->data->data : NULL,
                               s->data ? s->data->len : 0};
        edi_rt_spawn_reply_in(rt, s->target, &s->ref, s->ok, s->from, err,
                              s->flags);
        break;
    }
    case S_NODE_DOWN:
        edi_rt_node_down(rt, s->node);
        break;
    }
    if (s->data)
        rc_unref(s->data, NULL);
    free(s);
}

static side *side_of(void *user)
{
    return user;
}

static int h_send(void *user, edist_procid from, edist_procid to,
                  const edi_rt_payload *msg)
{
    sig *s = sig_new(S_SEND);
    s->from = from;
    s->target = to;
    s->data = rc_new(msg->data, msg->len);
    if (msg->release)
        msg->release(msg->owner, msg->data); /* we copied: done with it */
    return post(side_of(user), s);
}

static int h_reg_send(void *user, edist_procid from, uint32_t node,
                      const char *name, const edi_rt_payload *msg)
{
    (void)node;
    sig *s = sig_new(S_REG_SEND);
    s->from = from;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->data = rc_new(msg->data, msg->len);
    if (msg->release)
        msg->release(msg->owner, msg->data);
    return post(side_of(user), s);
}

static int h_pair(void *user, int kind, edist_procid from, edist_procid to, uint64_t unlink_id)
{
    sig *s = sig_new(kind);
    s->from = from;
    s->target = to;
    s->unlink_id = unlink_id;
    return post(side_of(user), s);
}

static int h_link(void *user, edist_procid from, edist_procid to)
{
    return h_pair(user, S_LINK, from, to, 0);
}

static int h_unlink(void *user, edist_procid from, edist_procid to, uint64_t id)
{
    return h_pair(user, S_UNLINK, from, to, id);
}

static int h_unlink_ack(void *user, edist_procid from, edist_procid to, uint64_t id)
{
    return h_pair(user, S_UNLINK_ACK, from, to, id);
}

static int h_exit_kind(void *user, int kind, edist_procid from, edist_procid to,
                       edist_term_view reason)
{
    sig *s = sig_new(kind);
    s->from = from;
    s->target = to;
    s->data = rc_new(reason.ptr, reason.len);
    return post(side_of(user), s);
}

static int h_exit(void *user, edist_procid from, edist_procid to,
                  edist_term_view reason)
{
    return h_exit_kind(user, S_EXIT, from, to, reason);
}

static int h_exit2(void *user, edist_procid from, edist_procid to,
                   edist_term_view reason)
{
    return h_exit_kind(user, S_EXIT2, from, to, reason);
}

static int h_monitor(void *user, edist_procid watcher, edist_procid target,
                     uint32_t node, const char *name, const edist_ref *ref)
{
    (void)node;
    sig *s = sig_new(S_MONITOR);
    s->from = watcher;
    s->target = target;
    s->ref = *ref;
    if (name) {
        s->has_name = true;
        snprintf(s->name, sizeof s->name, "%s", name);
    }
    return post(side_of(user), s);
}

static int h_demonitor(void *user, edist_procid watcher, edist_procid target,
                       uint32_t node, const char *name, const edist_ref *ref)
{
    (void)node;
    (void)name;
    sig *s = sig_new(S_DEMONITOR);
    s->from = watcher;
    s->target = target;
    s->ref = *ref;
    return post(side_of(user), s);
}

static int h_monitor_exit(void *user, edist_procid target, edist_procid watcher,
                          const char *name, const edist_ref *ref,
                          edist_term_view reason)
{
    (void)name;
    sig *s = sig_new(S_MONITOR_EXIT);
    s->from = target;
    s->target = watcher;
    s->ref = *ref;
    s->data = rc_new(reason.ptr, reason.len);
    return post(side_of(user), s);
}

static int h_spawn_request(void *user, edist_procid from, uint32_t node,
                           const edist_ref *req, const char *module,
                           const char *function, edist_term_view args,
                           unsigned flags)
{
    (void)node;
    if (atomic_load(&swallow_spawns))
        return 0;
    sig *s = sig_new(S_SPAWN_REQUEST);
    s->from = from;
    s->ref = *req;
    snprintf(s->module, sizeof s->module, "%s", module);
    snprintf(s->function, sizeof s->function, "%s", function);
    s->data = rc_new(args.ptr, args.len);
    s->flags = flags;
    return post(side_of(user), s);
}

static void *loop_main(void *arg)
{
    side *s = arg;
    edi_loop_run(s->loop);
    return NULL;
}

typedef struct ready {
    _Atomic uint32_t done;
} ready;

static void on_ready(edi_loop *loop, void *arg)
{
    (void)loop;
    ready *r = arg;
    atomic_store(&r->done, 1);
    edi_futex_wake(&r->done);
}

static void start_side(side *s, uint32_t creation)
{
    edi_loop_config lc;
    edi_loop_config_default(&lc);
    assert_int_equal(edi_loop_new(&lc, &s->loop), 0);
    edist_runtime_config pc;
    edist_runtime_config_init(&pc);
    pc.node_name = s->name;
    pc.creation = creation;
    edi_rt_hooks h = {
        .user = s,
        .send = h_send,
        .reg_send = h_reg_send,
        .link = h_link,
        .unlink = h_unlink,
        .unlink_ack = h_unlink_ack,
        .exit = h_exit,
        .exit2 = h_exit2,
        .monitor = h_monitor,
        .demonitor = h_demonitor,
        .monitor_exit = h_monitor_exit,
        .spawn_request = h_spawn_request,
    };
    edi_rt_config rc = {.loop = s->loop, .proc = &pc, .hooks = &h};
    assert_int_equal(edi_rt_new(&rc, &s->rt), 0);
    s->index = edi_rt_node_index(s->rt);
#ifdef RT_PAIR_AFTER_START
    RT_PAIR_AFTER_START(s);
#endif
    assert_int_equal(pthread_create(&s->thread, NULL, loop_main, s), 0);
    ready r;
    atomic_init(&r.done, 0);
    assert_int_equal(edi_loop_post(s->loop, on_ready, &r), 0);
    while (!atomic_load(&r.done))
        edi_futex_wait(&r.done, 0, UINT64_MAX);
}

static void free_rt(edi_loop *loop, void *arg)
{
    side *s = arg;
    edi_rt_free(s->rt);
    edi_loop_stop(loop);
}

static void stop_side(side *s)
{
    assert_int_equal(edi_loop_post(s->loop, free_rt, s), 0);
    pthread_join(s->thread, NULL);
    edi_loop_free(s->loop);
}

#endif
