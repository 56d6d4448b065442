/* SPDX-License-Identifier: Apache-2.0 */
/* The node's services: start and stop, the `echo` and `net_kernel`
 * processes, and the helpers the services files share. rex and erpc are in
 * services_rpc.c, the exported functions in services_demo.c. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control/dist_build.h"
#include "control/stats_file.h"
#include "runtime/runtime_internal.h"
#include "runtime/services_internal.h"

/* ---- shared helpers ------------------------------------------------------ */

edist_term_view edi_svc_var(const edist_pattern *p, const edist_term_view *vars,
                            const char *name)
{
    int i = edist_pattern_var_index(p, name);
    edist_term_view none = {NULL, 0};
    return i < 0 ? none : vars[i];
}

static pthread_mutex_t patterns_mu = PTHREAD_MUTEX_INITIALIZER;

edist_pattern *const *edi_svc_patterns_get(edi_svc_patterns *set)
{
    edist_pattern **p = atomic_load_explicit(&set->compiled, memory_order_acquire);
    if (p)
        return p;
    pthread_mutex_lock(&patterns_mu);
    p = atomic_load_explicit(&set->compiled, memory_order_relaxed);
    if (!p) {
        edist_pattern **v = calloc(set->n, sizeof *v);
        bool ok = v != NULL;
        if (!ok)
            edist_set_error(EDIST_ENOMEM, "services: no memory for patterns");
        for (size_t i = 0; ok && i < set->n; i++) {
            edist_parse_error pe;
            if (edist_pattern_compile(set->text[i], strlen(set->text[i]), &v[i], &pe) != 0) {
                edist_set_error(EDIST_ENOMEM, "services: pattern %s: %s", set->text[i],
                                pe.message);
                ok = false;
            }
        }
        if (ok) {
            p = v;
            atomic_store_explicit(&set->compiled, p, memory_order_release);
        } else if (v) {
            for (size_t i = 0; i < set->n; i++)
                edist_pattern_free(v[i]);
            free(v);
        }
    }
    pthread_mutex_unlock(&patterns_mu);
    return p;
}

int edi_svc_atom_arg(edist_term_view v, char *out, size_t cap)
{
    edist_cursor c;
    edist_cursor_init(&c, v.ptr, v.len);
    if (!v.ptr || edist_dec_atom_copy(&c, out, cap) != 0)
        return edi_raise_error_atom("badarg");
    return 0;
}

int edi_svc_pid(edist_term_view v, edist_procid *out)
{
    if (!v.ptr)
        return EDIST_EINVAL;
    edist_cursor c;
    edist_cursor_init(&c, v.ptr, v.len);
    return edist_dec_procid(&c, out);
}

int edi_svc_ref(edist_term_view v, edist_ref *out)
{
    if (!v.ptr)
        return EDIST_EINVAL;
    edist_cursor c;
    edist_cursor_init(&c, v.ptr, v.len);
    return edist_dec_ref(&c, out);
}

bool edi_svc_is_atom(edist_term_view v, const char *atom)
{
    return v.ptr && edi_term_is_atom(v, atom);
}

/* Between tries of a send that found no room. Short: the wait ends soon
 * after room appears; each try costs a lookup only (a full send queue
 * refuses before the frame is built). */
#define SVC_SEND_RETRY_MS 1

typedef struct svc_dest {
    edist_procid pid;
    const char *name; /* NULL: to pid */
    const char *node; /* NULL: name on this node */
    bool noconnect;
    edist_term_view alias; /* to pid through this alias (not empty) */
} svc_dest;

/* node is NULL (this node) or this node's name. */
static bool is_here(const edi_services *s, const char *node)
{
    return !node || !strcmp(node, edist_runtime_node((const edist_runtime *)s->rt));
}

/* noconnect: a remote destination must be connected already. */
static bool may_send(const edi_services *s, const svc_dest *d)
{
    if (!d->noconnect || !s->cfg.connected)
        return true;
    const char *node = d->name ? d->node : edist_procid_node(d->pid);
    return is_here(s, node) || s->cfg.connected(s->cfg.user, node);
}

static int send_once(const edi_services *s, const svc_dest *d, const void *term,
                     size_t len)
{
    if (!may_send(s, d))
        return EDIST_ECLOSED;
    if (!d->name)
        return d->alias.len ? edi_send_relay_alias(d->pid, d->alias, term, len)
                            : edi_send_relay(d->pid, term, len);
    if (is_here(s, d->node)) {
        edist_procid pid;
        int rc = edist_whereis(d->name, &pid);
        if (rc)
            return edist_set_error(EDIST_ENOTFOUND, "send: no process is registered as %s",
                                   d->name);
        return edi_send_relay(pid, term, len);
    }
    return edist_send_name_node(d->name, d->node, term, len);
}

static int send_waiting(edi_services *s, const svc_dest *d, const void *term,
                        size_t len)
{
    int rc = send_once(s, d, term, len);
    if (rc != EDIST_EAGAIN)
        return rc;
    s->sends_waited++;
    do
        edist_sleep_ms(SVC_SEND_RETRY_MS);
    while ((rc = send_once(s, d, term, len)) == EDIST_EAGAIN);
    return rc;
}

static int send_to(edi_services *s, edist_procid to, edist_term_view alias, const void *term,
                   size_t len, edi_svc_how how)
{
    svc_dest d = {.pid = to, .noconnect = how == EDI_SVC_WAIT_NOCONNECT, .alias = alias};
    if (how != EDI_SVC_FORCE)
        return send_waiting(s, &d, term, len);
    int rc = send_once(s, &d, term, len);
    if (rc != EDIST_EAGAIN)
        return rc;
    s->sends_forced++;
    return alias.len ? edi_send_forced_alias(to, alias, term, len)
                     : edi_send_forced(to, term, len);
}

int edi_svc_send(edi_services *s, edist_procid to, const void *term,
                 size_t len, edi_svc_how how)
{
    return send_to(s, to, (edist_term_view){NULL, 0}, term, len, how);
}

int edi_svc_send_name(edi_services *s, const char *name, const char *node,
                      const void *term, size_t len, edi_svc_how how)
{
    svc_dest d = {.name = name, .node = node, .noconnect = how == EDI_SVC_WAIT_NOCONNECT};
    return send_waiting(s, &d, term, len);
}

int edi_svc_term_arg(const char *who, const char *what, const void *term, size_t len,
                     edist_term_view *v)
{
    const uint8_t *t = term;
    if (!t || len == 0)
        return edist_set_error(EDIST_EINVAL, "%s: no %s", who, what);
    if (t[0] == EDIST_TAG_VERSION && len > 1) {
        t++;
        len--;
    }
    edist_cursor c;
    edist_cursor_init(&c, t, len);
    edist_term_view one;
    if (edist_dec_term(&c, &one) != 0 || one.len != len)
        return edist_set_error(EDIST_EINVAL, "%s: the %s is not one encoded term", who, what);
    *v = one;
    return 0;
}

int edi_svc_export_table(edi_services *s, const edi_svc_export *table, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = edist_export_function(s->rt, table[i].module, table[i].function,
                                       table[i].arity, table[i].fn, s);
        if (rc)
            return rc;
    }
    return 0;
}

void edi_svc_idle_main(void *arg)
{
    (void)arg;
    edist_term_view m;
    while (edist_receive(NULL, NULL, -1, &m) == 0 && !edi_term_is_atom(m, "stop"))
        ;
}

/* A held buffer: the buffer first, so the two pointers are one. */
typedef struct svc_held {
    edist_buf b;
    bool guarded; /* its free is registered with the process's end */
} svc_held;

static void held_free(void *arg)
{
    svc_held *h = arg;
    edist_buf_free(&h->b);
    free(h);
}

edist_buf *edi_svc_buf_hold(void)
{
    svc_held *h = malloc(sizeof *h);
    if (!h)
        return NULL;
    edist_buf_init(&h->b);
    h->guarded = edi_svc_guard(held_free, h);
    return &h->b;
}

void edi_svc_buf_release(edist_buf *b)
{
    svc_held *h = (svc_held *)b;
    if (!h)
        return;
    edi_svc_unguard(held_free, h, h->guarded);
    held_free(h);
}

bool edi_svc_guard(void (*free_fn)(void *), void *arg)
{
    /* Only a green process: one killed never returns, and its end frees
     * the memory. A thread process's end runs on the shard while the
     * thread may still use it: the thread frees it itself, always. */
    edi_proc *self = edi_current;
    return self && self->kind == EDI_PROC_GREEN && edist_at_exit(free_fn, arg) == 0;
}

void edi_svc_unguard(void (*free_fn)(void *), void *arg, bool guarded)
{
    if (guarded)
        edist_at_exit_cancel(free_fn, arg);
}

int edi_svc_reply(edi_services *s, edist_procid to, edist_term_view tag, const void *value,
                  size_t len, edi_svc_how how)
{
    edist_buf *b = edi_svc_buf_hold();
    if (!b)
        return edist_set_error(EDIST_ENOMEM, "reply: no memory");
    edist_enc_tuple(b, 2);
    edist_enc_raw(b, tag.ptr, tag.len);
    edist_enc_raw(b, value, len);
    int rc = edist_buf_error(b);
    /* An OTP 24+ caller's tag names its alias: the reply goes there, as
     * gen:reply sends it, so that one coming after the caller gave up
     * is dropped by its node instead of left in its mailbox. */
    edist_term_view alias = {NULL, 0};
    if (edi_rt_is_local(s->rt, to) || edi_dist_alias_of_tag(tag, &alias) != 1)
        alias = (edist_term_view){NULL, 0};
    if (rc == 0)
        rc = send_to(s, to, alias, b->data, b->len, how);
    edi_svc_buf_release(b);
    return rc;
}

void edi_svc_enc_cast(edist_buf *b)
{
    edist_enc_tuple(b, 2);
    edist_enc_atom(b, "$gen_cast", 9);
}

/* Between looks for the callee's DOWN while a call waits for its reply
 * (the reply itself ends the wait at once). */
#define SVC_CALL_DOWN_POLL_MS 20

/* The two patterns of a call. */
static const char *const call_texts[] = {"{T, Reply}", "{'DOWN', M, _, _, _}"};
static edi_svc_patterns call_patterns = EDI_SVC_PATTERNS(call_texts);

int edi_svc_call(edi_services *s, const char *name, const char *node, const char *tag_node,
                 const void *req, size_t len, edist_buf *out, int64_t timeout_ms)
{
    edist_procid self = edist_self();
    if (edist_procid_is_null(self))
        return edist_set_error(EDIST_EINVAL, "call to %s: the caller is not a process", name);
    edist_ref ref, mref;
    int rc = edist_make_ref(&ref);
    if (rc)
        return rc;
    if ((rc = edist_monitor_name(name, node, &mref)) != 0)
        return rc;
    uint8_t tm[2 * EDIST_ATOM_MAX_BYTES + 96], mm[EDIST_ATOM_MAX_BYTES + 64];
    edist_buf tag, mb;
    edist_buf_init_fixed(&tag, tm, sizeof tm);
    edist_buf_init_fixed(&mb, mm, sizeof mm);
    if (tag_node) {
        edist_enc_tuple(&tag, 2);
        edist_enc_ref(&tag, &ref);
        edist_enc_atomz(&tag, tag_node);
    } else {
        edist_enc_ref(&tag, &ref);
    }
    edist_enc_ref(&mb, &mref);
    /* held: a service's send may wait for room */
    edist_buf *b = edi_svc_buf_hold();
    if (!b) {
        edist_demonitor(&mref, EDIST_DEMONITOR_FLUSH);
        return edist_set_error(EDIST_ENOMEM, "call: no memory");
    }
    edist_enc_tuple(b, 3);
    edist_enc_atom(b, "$gen_call", 9);
    edist_enc_tuple(b, 2);
    edist_enc_procid(b, self);
    edist_enc_raw(b, tag.data, tag.len);
    edist_enc_raw(b, req, len);
    rc = edist_buf_error(b) ? edist_buf_error(b) : edist_buf_error(&tag);
    if (rc == 0)
        rc = s ? edi_svc_send_name(s, name, node, b->data, b->len, EDI_SVC_WAIT)
             : node ? edist_send_name_node(name, node, b->data, b->len)
                    : edist_send_name(name, b->data, b->len);
    edi_svc_buf_release(b);
    edist_pattern *const *cp = edi_svc_patterns_get(&call_patterns);
    const edist_pattern *rp = cp ? cp[0] : NULL, *dp = cp ? cp[1] : NULL;
    if (rc == 0 && !cp)
        rc = EDIST_ENOMEM;
    if (rc == EDIST_ENOTFOUND)
        rc = edist_set_error(EDIST_ECLOSED, "call: no process %s on %s", name,
                             node ? node : "this node");
    uint64_t deadline = edi_now_ms() + (uint64_t)(timeout_ms < 0 ? INT64_MAX / 2 : timeout_ms);
    while (rc == 0) {
        edist_term_view v[2] = {{0}}, d[1] = {{0}}, m;
        v[edist_pattern_var_index(rp, "T")] = (edist_term_view){tag.data, tag.len};
        uint64_t now = edi_now_ms();
        int64_t slice = now >= deadline ? 0 : (int64_t)(deadline - now);
        if (slice > SVC_CALL_DOWN_POLL_MS)
            slice = SVC_CALL_DOWN_POLL_MS;
        int r = edist_receive(rp, v, slice, &m);
        if (r == 0) {
            edist_term_view reply = v[edist_pattern_var_index(rp, "Reply")];
            edist_buf_reset(out);
            rc = edist_buf_append(out, reply.ptr, reply.len);
            break;
        }
        if (r != EDIST_ETIMEDOUT) {
            rc = r;
            break;
        }
        d[edist_pattern_var_index(dp, "M")] = (edist_term_view){mb.data, mb.len};
        if (edist_receive(dp, d, 0, &m) == 0) {
            /* a reply that came before the DOWN wins, as in gen's one
             * receive: both may have come since the wait above ended */
            memset(v, 0, sizeof v);
            v[edist_pattern_var_index(rp, "T")] = (edist_term_view){tag.data, tag.len};
            if (edist_receive(rp, v, 0, &m) == 0) {
                edist_term_view reply = v[edist_pattern_var_index(rp, "Reply")];
                edist_buf_reset(out);
                rc = edist_buf_append(out, reply.ptr, reply.len);
                break;
            }
            rc = edist_set_error(EDIST_ECLOSED, "call: %s on %s is not there or went away", name,
                                 node ? node : "this node");
            break;
        }
        if (edi_now_ms() >= deadline)
            rc = edist_set_error(EDIST_ETIMEDOUT, "call: no answer from %s on %s", name,
                                 node ? node : "this node");
    }
    edist_demonitor(&mref, EDIST_DEMONITOR_FLUSH);
    return rc;
}

static void px_free(void *arg)
{
    edi_svc_px *x = arg;
    edist_buf_free(&x->a);
    edist_buf_free(&x->b);
    for (size_t i = 0; i < EDI_SVC_KEEP_MAX; i++)
        edist_message_free(x->keep[i]);
    free(x->extra);
    free(x);
}

edi_svc_px *edi_svc_px_new(void)
{
    edi_svc_px *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    edist_buf_init(&x->a);
    edist_buf_init(&x->b);
    if (edist_at_exit(px_free, x) != 0) {
        free(x);
        return NULL;
    }
    return x;
}

int edi_svc_px_keep(edi_svc_px *x, edist_term_view *term)
{
    for (size_t i = 0; i < EDI_SVC_KEEP_MAX; i++) {
        if (x->keep[i])
            continue;
        int rc = edist_msg_keep(&x->keep[i]);
        if (rc == 0)
            *term = edist_message_term(x->keep[i]);
        return rc;
    }
    return edist_set_error(EDIST_ENOSPC, "services: too many kept messages");
}

/* ---- echo ---------------------------------------------------------------- */

/* {From, Msg} with From a pid: Msg back to From unchanged. Everything
 * else is consumed and ignored, so the mailbox never fills up with it.
 * A reply waits for room (Msg is the peer's, of any size): replies to a
 * peer that does not read hold echo up, in order, none lost. */
static const char *const echo_texts[] = {"{From, Msg}"};
static edi_svc_patterns echo_patterns = EDI_SVC_PATTERNS(echo_texts);

static void echo_main(void *arg)
{
    edi_services *s = arg;
    edist_pattern *const *pats = edi_svc_patterns_get(&echo_patterns);
    if (!pats)
        return;
    const edist_pattern *p = pats[0];
    int fi = edist_pattern_var_index(p, "From"),
        mi = edist_pattern_var_index(p, "Msg");
    for (;;) {
        edist_term_view m, vars[2] = {{0}};
        if (edist_receive(NULL, NULL, -1, &m) != 0)
            continue;
        if (edist_match(p, m.ptr, m.len, vars) != 1)
            continue;
        edist_procid from;
        if (edi_svc_pid(vars[fi], &from) == 0)
            edi_svc_send(s, from, vars[mi].ptr, vars[mi].len, EDI_SVC_WAIT);
    }
}

/* ---- net_kernel ---------------------------------------------------------- */

/* The gen_server call net_adm:ping makes: {'$gen_call', {From, Tag},
 * {is_auth, Node}} -> From ! {Tag, yes} (to its alias from OTP 24 on, as
 * edi_svc_reply sends it). The reply is forced past a full send queue,
 * as the node's own is_auth answer is: a peer that does not read must not
 * hold up every other peer's ping. */
static const char *const net_kernel_texts[] = {"{'$gen_call', {From, Tag}, {is_auth, _}}"};
static edi_svc_patterns net_kernel_patterns = EDI_SVC_PATTERNS(net_kernel_texts);

static void net_kernel_main(void *arg)
{
    edi_services *s = arg;
    edist_pattern *const *pats = edi_svc_patterns_get(&net_kernel_patterns);
    if (!pats)
        return;
    const edist_pattern *p = pats[0];
    int fi = edist_pattern_var_index(p, "From"),
        ti = edist_pattern_var_index(p, "Tag");
    for (;;) {
        edist_term_view m, vars[2] = {{0}};
        if (edist_receive(NULL, NULL, -1, &m) != 0)
            continue;
        if (edist_match(p, m.ptr, m.len, vars) != 1)
            continue;
        edist_procid from;
        if (edi_svc_pid(vars[fi], &from) != 0)
            continue;
        static const uint8_t yes[] = {EDIST_TAG_SMALL_ATOM_UTF8, 3, 'y', 'e', 's'};
        edi_svc_reply(s, from, vars[ti], yes, sizeof yes, EDI_SVC_FORCE);
    }
}

/* ---- the stats file --------------------------------------------------------- */

/* Every stats_interval_ms: {edist_stats, UnixTimeMs, Stats} to the file,
 * replaced whole. A write that fails is tried again next time (the file
 * keeps its last good content, whose time says how old it is). */
static void stats_publisher_main(void *arg)
{
    edi_services *s = arg;
    edi_svc_px *x = edi_svc_px_new();
    if (!x)
        return;
    for (;;) {
        edist_sleep_ms(s->cfg.stats_interval_ms);
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        edist_buf_reset(&x->a);
        edist_buf_reset(&x->b);
        if (edi_services_stats(s, &x->b) != 0)
            continue;
        edist_enc_version(&x->a);
        edist_enc_tuple(&x->a, 3);
        edist_enc_atom(&x->a, "edist_stats", 11);
        edist_enc_int(&x->a, (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
        edist_enc_raw(&x->a, x->b.data, x->b.len);
        if (edist_buf_error(&x->a) == 0)
            edi_stats_write(s->stats_path, x->a.data, x->a.len);
    }
}

/* ---- start and stop ------------------------------------------------------ */

static int start_named(edi_services *s, const char *name, edist_proc_fn fn)
{
    edist_procid pid;
    if (edist_runtime_whereis(s->rt, name, &pid) == 0)
        return edist_set_error(EDIST_EEXIST, "services: the name %s is taken",
                               name);
    /* On shard 0: the node's callbacks run on its thread. */
    int rc = edi_rt_spawn_here(s->rt, fn, s, &pid);
    if (rc)
        return rc;
    /* Only a race with another registration of the same name fails here;
     * the process then idles in receive until the runtime stops. */
    return edist_runtime_register(s->rt, name, pid);
}

/* ---- the keeper: services that end are started again ---------------------
 * A service killed (by a peer's exit signal, or mailbox_overflow) was gone
 * until the node restarted, and with pg this node's members from every
 * peer's view. OTP's kernel takes the whole node down then; edist starts
 * echo, net_kernel, rex and pg again (at most service_restarts in
 * service_restart_period_ms each, then it stays down, with a line). Not
 * global_name_server: its peers know this node already and would not
 * sync with a new, empty one (a line says so). Not while the node or the
 * runtime stops. */

static const char *const keeper_texts[] = {"{'DOWN', Ref, process, _, Reason}"};
static edi_svc_patterns keeper_patterns = EDI_SVC_PATTERNS(keeper_texts);

/* Monitors the process under k's name: false when there is none. */
static bool keep_watch(svc_kept *k, edi_services *s)
{
    edist_procid pid;
    return edist_runtime_whereis(s->rt, k->name, &pid) == 0 &&
           edist_monitor(pid, &k->mref) == 0;
}

/* k ended (why): started again, unless it ended too often. */
static void keep_restart(edi_services *s, svc_kept *k, const char *why)
{
    uint64_t now = edi_now_ms();
    const uint32_t max = s->cfg.service_restarts, period = s->cfg.service_restart_period_ms;
    uint64_t oldest = k->started_ms[k->n_restarts % max];
    if (k->n_restarts >= max && now - oldest < period) {
        k->down = true;
        edi_rt_log(s->rt, EDIST_LOG_ERROR,
                   "services: %s ended (%s), %u times in %g s: not started again "
                   "(service_restarts %u, service_restart_period %g s)",
                   k->name, why, max + 1, period / 1000.0, max, period / 1000.0);
        return;
    }
    k->started_ms[k->n_restarts % max] = now;
    k->n_restarts++;
    /* its name goes with it; a moment's wait if it has not yet */
    int rc = EDIST_EEXIST;
    for (int tries = 0; tries < 100 && rc == EDIST_EEXIST; tries++)
        if ((rc = start_named(s, k->name, k->fn)) == EDIST_EEXIST)
            edist_sleep_ms(1);
    if (rc == 0 && keep_watch(k, s)) {
        atomic_fetch_add(&s->restarts, 1);
        edi_rt_log(s->rt, EDIST_LOG_WARNING, "services: %s ended (%s); started again",
                   k->name, why);
        return;
    }
    k->down = true;
    edi_rt_log(s->rt, EDIST_LOG_ERROR, "services: %s ended (%s) and did not start again: %s",
               k->name, why, rc ? edist_strerror(rc) : "it ended at once");
}

static void keeper_main(void *arg)
{
    edi_services *s = arg;
    svc_keeper *kp = &s->keeper;
    edist_pattern *const *pats = edi_svc_patterns_get(&keeper_patterns);
    if (!pats)
        return;
    const edist_pattern *p = pats[0];
    int ri = edist_pattern_var_index(p, "Ref"), wi = edist_pattern_var_index(p, "Reason");
    for (unsigned i = 0; i < kp->n; i++)
        if (!keep_watch(&kp->kept[i], s) && kp->kept[i].fn)
            keep_restart(s, &kp->kept[i], "before its keeper started");
    for (;;) {
        edist_term_view m, vars[2] = {{0}};
        if (edist_receive(p, vars, -1, &m) != 0)
            continue;
        edist_ref r;
        if (edi_svc_ref(vars[ri], &r) != 0)
            continue;
        svc_kept *k = NULL;
        for (unsigned i = 0; i < kp->n && !k; i++)
            if (!kp->kept[i].down && edist_ref_equal(&kp->kept[i].mref, &r))
                k = &kp->kept[i];
        if (!k || edi_rt_quiet(s->rt) || atomic_load(&s->stopping))
            continue;
        char why[160];
        edist_buf t;
        edist_buf_init_fixed(&t, (uint8_t *)why, sizeof why - 1);
        edist_term_print(vars[wi].ptr, vars[wi].len, &t, NULL);
        why[t.len < sizeof why - 1 ? t.len : sizeof why - 1] = '\0';
        if (!k->fn) {
            k->down = true;
            edi_rt_log(s->rt, EDIST_LOG_ERROR,
                       "services: %s ended (%s): not started again (the nodes that know "
                       "this one would not sync with a new one)", k->name, why);
            continue;
        }
        keep_restart(s, k, why);
    }
}

/* fn NULL: watched, not started again (a line when it ends). */
static void keep(svc_keeper *kp, const char *name, edist_proc_fn fn)
{
    if (kp->n < SVC_KEPT_MAX)
        kp->kept[kp->n++] = (svc_kept){.name = name, .fn = fn};
}

void edi_services_stopping(edi_services *s)
{
    if (s)
        atomic_store(&s->stopping, true);
}

int edi_services_start(edi_rt *rt, const edi_services_config *cfg,
                       edi_services **out)
{
    if (!out)
        return edist_set_error(EDIST_EINVAL, "services: no output");
    *out = NULL;
    if (!rt)
        return edist_set_error(EDIST_EINVAL, "services: no runtime");
    edi_services *s = calloc(1, sizeof *s);
    if (!s)
        return edist_set_error(EDIST_ENOMEM, "services: no memory");
    s->rt = rt;
    pthread_mutex_init(&s->resolver_mu, NULL);
    if (cfg)
        s->cfg = *cfg;
    if (s->cfg.service_restarts == 0)
        s->cfg.service_restarts = EDIST_NODE_SERVICE_RESTARTS_DEFAULT;
    else if (s->cfg.service_restarts > EDIST_NODE_SERVICE_RESTARTS_MAX)
        s->cfg.service_restarts = EDIST_NODE_SERVICE_RESTARTS_MAX; /* the keeper's ring */
    if (s->cfg.service_restart_period_ms == 0)
        s->cfg.service_restart_period_ms = EDIST_NODE_SERVICE_RESTART_PERIOD_MS_DEFAULT;
    *out = s;
    unsigned off = s->cfg.disable;
    int rc = 0;
    if (!(off & EDI_SERVICE_EXPORTS) && ((rc = edi_svc_export_rpc(s)) != 0 ||
                                         (rc = edi_svc_export_demo(s)) != 0 ||
                                         (rc = edi_svc_export_pg(s)) != 0 ||
                                         (rc = edi_svc_export_global(s)) != 0))
        return rc;
    static const struct {
        unsigned off;
        const char *name;
        edist_proc_fn fn;
        bool restart;
    } named[] = {{EDI_SERVICE_ECHO, "echo", echo_main, true},
                 {EDI_SERVICE_NET_KERNEL, "net_kernel", net_kernel_main, true},
                 {EDI_SERVICE_REX, "rex", edi_svc_rex_main, true},
                 {EDI_SERVICE_PG, "pg", edi_svc_pg_main, true},
                 {EDI_SERVICE_GLOBAL, "global_name_server", edi_svc_global_main, false}};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        if (off & named[i].off)
            continue;
        if ((rc = start_named(s, named[i].name, named[i].fn)) != 0)
            return rc;
        keep(&s->keeper, named[i].name, named[i].restart ? named[i].fn : NULL);
    }
    edist_procid kpid;
    if ((rc = edi_rt_spawn_here(rt, keeper_main, s, &kpid)) != 0)
        return rc;
    if (s->cfg.stats_path && s->cfg.stats_interval_ms) {
        snprintf(s->stats_path, sizeof s->stats_path, "%s", s->cfg.stats_path);
        edist_procid pid;
        if ((rc = edi_rt_spawn_here(rt, stats_publisher_main, s, &pid)) != 0)
            return rc;
    }
    edi_rt_log(rt, EDIST_LOG_INFO, "services of %s:%s%s%s%s%s%s",
               edist_runtime_node(rt), off & EDI_SERVICE_ECHO ? "" : " echo",
               off & EDI_SERVICE_NET_KERNEL ? "" : " net_kernel",
               off & EDI_SERVICE_REX ? "" : " rex",
               off & EDI_SERVICE_PG ? "" : " pg",
               off & EDI_SERVICE_GLOBAL ? "" : " global_name_server",
               off & EDI_SERVICE_EXPORTS ? ""
                                         : " erpc:* erlang:* edist_demo:* pg:* global:*");
    return 0;
}

void edi_services_free(edi_services *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->resolver_mu);
    free(s);
}
