/* SPDX-License-Identifier: Apache-2.0 */
/* rpc:call, erpc:call and erpc:cast over spawn_request (include/edist/rpc.h),
 * following OTP 25's kernel erpc.erl / rpc.erl: erpc:execute_call(Ref, M, F,
 * A) spawned on the node with a monitor; the DOWN reason {Ref, Class, ...}
 * carries the outcome; rpc:call's result is erpc's outcome "rpcified". */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "edist/proc.h"
#include "edist/rpc.h"

/* Milliseconds left until end_ms (negative end: forever). */
static int64_t left_ms(int64_t end_ms)
{
    if (end_ms < 0)
        return -1;
    int64_t l = end_ms - (int64_t)edi_now_ms();
    return l > 0 ? l : 0;
}

static bool name_ok(const char *s)
{
    return s && *s && strlen(s) <= 255;
}

/* The args list without a leading version byte; EDIST_EINVAL unless it is
 * a proper list's start ([] or a list header). */
static int args_view(const void *args, size_t len, edist_term_view *out)
{
    const uint8_t *a = args;
    if (!a || len == 0)
        return edist_set_error(EDIST_EINVAL, "rpc: args missing");
    if (a[0] == EDIST_TAG_VERSION && len > 1) {
        a++;
        len--;
    }
    edist_cursor c;
    edist_term_info info;
    edist_cursor_init(&c, a, len);
    if (edist_peek(&c, &info) ||
        (info.type != EDIST_TYPE_NIL && info.type != EDIST_TYPE_LIST))
        return edist_set_error(EDIST_EINVAL, "rpc: args must be a list");
    out->ptr = a;
    out->len = len;
    return 0;
}

/* result = {Tag, A} or {Tag, A, B} (B may be NULL). */
static int put_tagged(edist_buf *result, const char *tag,
                      const edist_term_view *a, const edist_term_view *b)
{
    edist_buf_reset(result);
    edist_enc_tuple(result, b ? 3 : 2);
    edist_enc_atomz(result, tag);
    edist_enc_raw(result, a->ptr, a->len);
    if (b)
        edist_enc_raw(result, b->ptr, b->len);
    return edist_buf_error(result);
}

static int put_raw(edist_buf *result, const edist_term_view *v)
{
    edist_buf_reset(result);
    edist_enc_raw(result, v->ptr, v->len);
    return edist_buf_error(result);
}

/* result = {erpc, Atom}, class error. */
static int erpc_error_atom(edist_buf *result, edist_erpc_class *cls,
                           const char *atom)
{
    uint8_t mem[300];
    edist_buf a;
    edist_buf_init_fixed(&a, mem, sizeof mem);
    edist_enc_atomz(&a, atom);
    edist_term_view v = {a.data, a.len};
    *cls = EDIST_ERPC_ERROR;
    return put_tagged(result, "erpc", &v, NULL);
}

/* erpc.erl's result(down, ...): the DOWN reason of execute_call. */
static int erpc_down(const edist_ref *res, edist_term_view reason,
                     edist_buf *result, edist_erpc_class *cls)
{
    edist_cursor c;
    uint32_t n;
    edist_ref r;
    edist_atom k, a;
    edist_term_view v, stack;
    edist_cursor_init(&c, reason.ptr, reason.len);
    if (edist_dec_tuple(&c, &n) == 0 && (n == 3 || n == 4) &&
        edist_dec_ref(&c, &r) == 0 && edist_ref_equal(&r, res) &&
        edist_dec_atom(&c, &k) == 0 && edist_dec_term(&c, &v) == 0) {
        if (n == 3 && edist_atom_eq(&k, "return")) {
            *cls = EDIST_ERPC_RETURN;
            return put_raw(result, &v);
        }
        if (n == 3 && edist_atom_eq(&k, "throw")) {
            *cls = EDIST_ERPC_THROW;
            return put_raw(result, &v);
        }
        if (n == 3 && edist_atom_eq(&k, "exit")) {
            *cls = EDIST_ERPC_EXIT;
            return put_tagged(result, "exception", &v, NULL);
        }
        if (n == 4 && edist_atom_eq(&k, "error") &&
            edist_dec_term(&c, &stack) == 0) {
            *cls = EDIST_ERPC_ERROR;
            edist_buf_reset(result);
            edist_enc_tuple(result, 3);
            edist_enc_atomz(result, "exception");
            edist_enc_raw(result, v.ptr, v.len);
            edist_enc_raw(result, stack.ptr, stack.len);
            return edist_buf_error(result);
        }
        if (n == 3 && edist_atom_eq(&k, "error")) {
            /* {Res, error, {erpc, _} = E}: error(E). */
            edist_cursor e;
            uint32_t en;
            edist_cursor_init(&e, v.ptr, v.len);
            if (edist_dec_tuple(&e, &en) == 0 && en == 2 &&
                edist_dec_atom(&e, &a) == 0 && edist_atom_eq(&a, "erpc")) {
                *cls = EDIST_ERPC_ERROR;
                return put_raw(result, &v);
            }
        }
    }
    edist_cursor_init(&c, reason.ptr, reason.len);
    if (edist_dec_atom(&c, &a) == 0 && edist_atom_eq(&a, "noconnection"))
        return erpc_error_atom(result, cls, "noconnection");
    *cls = EDIST_ERPC_EXIT;
    return put_tagged(result, "signal", &reason, NULL);
}

/* Compiled once, shared read-only by every caller. */
static edist_pattern *g_reply_pat, *g_down_pat;
static pthread_once_t g_pat_once = PTHREAD_ONCE_INIT;
static int g_pat_rc;

static void compile_patterns(void)
{
    static const char reply[] = "{spawn_reply, Req, Status, X}";
    static const char down[] = "{'DOWN', Req, process, _, Reason}";
    g_pat_rc = edist_pattern_compile(reply, sizeof reply - 1, &g_reply_pat,
                                     NULL);
    if (g_pat_rc == 0)
        g_pat_rc = edist_pattern_compile(down, sizeof down - 1, &g_down_pat,
                                         NULL);
}

static int patterns(void)
{
    pthread_once(&g_pat_once, compile_patterns);
    return g_pat_rc;
}

/* The encoded Req, bound into the patterns' first variable. */
typedef struct req_term {
    uint8_t mem[EDIST_ATOM_MAX_BYTES + 64]; /* a ref: its node's name and ids */
    edist_buf b;
} req_term;

static int receive_reply(const req_term *rq, int64_t timeout_ms, bool *ok,
                         edist_term_view *x)
{
    edist_term_view vars[3] = {{rq->b.data, rq->b.len}, {0}, {0}};
    edist_term_view msg;
    int rc = edist_receive(g_reply_pat, vars, timeout_ms, &msg);
    if (rc)
        return rc;
    edist_cursor c;
    edist_atom st;
    edist_cursor_init(&c, vars[1].ptr, vars[1].len);
    *ok = edist_dec_atom(&c, &st) == 0 && edist_atom_eq(&st, "ok");
    *x = vars[2];
    return 0;
}

static int receive_down(const req_term *rq, int64_t timeout_ms,
                        edist_term_view *reason)
{
    edist_term_view vars[2] = {{rq->b.data, rq->b.len}, {0}};
    edist_term_view msg;
    int rc = edist_receive(g_down_pat, vars, timeout_ms, &msg);
    if (rc == 0)
        *reason = vars[1];
    return rc;
}

int edist_erpc_call(const char *node, const char *module, const char *function,
                    const void *args, size_t args_len, int64_t timeout_ms,
                    edist_buf *result, edist_erpc_class *cls)
{
    if (!result || !cls || !name_ok(module) || !name_ok(function))
        return edist_set_error(EDIST_EINVAL, "rpc: missing or bad argument");
    if (edist_procid_is_null(edist_self()))
        return edist_set_error(EDIST_EINVAL, "rpc: the caller is not a process");
    edist_term_view a;
    int rc = args_view(args, args_len, &a);
    if (rc)
        return rc;
    if ((rc = patterns()) != 0)
        return rc;
    int64_t end_ms = timeout_ms < 0 ? -1 : (int64_t)edi_now_ms() + timeout_ms;

    /* erpc:execute_call(Res, M, F, A) with [monitor]. */
    edist_ref res;
    if ((rc = edist_make_ref(&res)) != 0)
        return rc;
    edist_buf call;
    edist_buf_init(&call);
    edist_enc_list(&call, 4);
    edist_enc_ref(&call, &res);
    edist_enc_atomz(&call, module);
    edist_enc_atomz(&call, function);
    edist_enc_raw(&call, a.ptr, a.len);
    edist_enc_nil(&call);
    edist_spawn_opts opts = {.monitor = true};
    edist_ref req;
    rc = edist_buf_error(&call);
    if (rc == 0)
        rc = edist_spawn_request(node, "erpc", "execute_call", call.data,
                                 call.len, &opts, &req);
    edist_buf_free(&call);
    if (rc)
        return rc;

    req_term rq;
    edist_buf_init_fixed(&rq.b, rq.mem, sizeof rq.mem);
    if ((rc = edist_enc_ref(&rq.b, &req)) != 0)
        return rc;

    /* Our runtime always answers a spawn request (erpc asks for
     * error_only); the DOWN of a successful spawn comes after the reply. */
    bool ok = false;
    edist_term_view x;
    rc = receive_reply(&rq, left_ms(end_ms), &ok, &x);
    /* Abandoned, the request leaves nothing behind; answered in the
     * meantime, its reply is taken and the call goes on (as erpc). */
    if (rc == EDIST_ETIMEDOUT) {
        if (edist_spawn_request_abandon(&req) == 1)
            return erpc_error_atom(result, cls, "timeout");
        rc = receive_reply(&rq, 0, &ok, &x);
    }
    if (rc)
        return rc;
    if (!ok) {
        /* result(spawn_reply, ...): error({erpc, Reason}). */
        *cls = EDIST_ERPC_ERROR;
        return put_tagged(result, "erpc", &x, NULL);
    }
    edist_term_view reason;
    rc = receive_down(&rq, left_ms(end_ms), &reason);
    if (rc == EDIST_ETIMEDOUT) {
        /* call_abandon: if the monitor was still active the call timed
         * out; otherwise its DOWN is here, and that is the result. */
        if (edist_demonitor(&req, 0) == 1)
            return erpc_error_atom(result, cls, "timeout");
        rc = receive_down(&rq, 0, &reason);
        if (rc == EDIST_ETIMEDOUT)
            return erpc_error_atom(result, cls, "timeout");
    }
    if (rc)
        return rc;
    return erpc_down(&res, reason, result, cls);
}

/* rpc.erl's rpcify_exception. */
int edist_rpc_call(const char *node, const char *module, const char *function,
                   const void *args, size_t args_len, int64_t timeout_ms,
                   edist_buf *result, edist_rpc_status *status)
{
    if (!status)
        return edist_set_error(EDIST_EINVAL, "rpc: status missing");
    edist_erpc_class cls;
    int rc = edist_erpc_call(node, module, function, args, args_len,
                             timeout_ms, result, &cls);
    if (rc)
        return rc;
    edist_term_view v = {result->data, result->len};
    edist_cursor c;
    uint32_t n;
    edist_atom tag, a;
    edist_term_view x, y;
    edist_cursor_init(&c, v.ptr, v.len);
    bool tuple = edist_dec_tuple(&c, &n) == 0 && n >= 2 &&
                 edist_dec_atom(&c, &tag) == 0 && edist_dec_term(&c, &x) == 0;
    if (!tuple)
        x = v; /* not one of erpc's shapes: wrapped whole below */
    edist_buf out;
    edist_buf_init(&out);
    *status = EDIST_RPC_BADRPC;
    switch (cls) {
    case EDIST_ERPC_RETURN:
    case EDIST_ERPC_THROW:
        /* A value or a throw of {'EXIT', _} -> {badrpc, {'EXIT', _}}, as
         * rpc.erl's RPCIFY and rpcify_exception; anything else is
         * returned as the value. */
        if (!(tuple && n == 2 && edist_atom_eq(&tag, "EXIT"))) {
            *status = EDIST_RPC_OK;
            return 0;
        }
        edist_enc_raw(&out, v.ptr, v.len);
        v.ptr = out.data;
        v.len = out.len;
        break;
    case EDIST_ERPC_EXIT:
        /* {exception, E} and {signal, R} -> {badrpc, {'EXIT', E | R}} */
        edist_enc_tuple(&out, 2);
        edist_enc_atomz(&out, "EXIT");
        edist_enc_raw(&out, x.ptr, x.len);
        v.ptr = out.data;
        v.len = out.len;
        break;
    case EDIST_ERPC_ERROR:
        if (tuple && n == 3 && edist_atom_eq(&tag, "exception") &&
            edist_dec_term(&c, &y) == 0) {
            /* {exception, E, Stack} -> {badrpc, {'EXIT', {E, Stack}}} */
            edist_enc_tuple(&out, 2);
            edist_enc_atomz(&out, "EXIT");
            edist_enc_tuple(&out, 2);
            edist_enc_raw(&out, x.ptr, x.len);
            edist_enc_raw(&out, y.ptr, y.len);
        } else if (tuple && n == 2 && edist_atom_eq(&tag, "erpc")) {
            edist_cursor_init(&c, x.ptr, x.len);
            bool atom = edist_dec_atom(&c, &a) == 0;
            if (atom && edist_atom_eq(&a, "badarg")) {
                edist_buf_free(&out);
                return edist_set_error(EDIST_EINVAL, "rpc: erpc badarg");
            }
            if (atom && edist_atom_eq(&a, "noconnection")) {
                edist_enc_atomz(&out, "nodedown");
            } else if (atom && (edist_atom_eq(&a, "timeout") ||
                                edist_atom_eq(&a, "notsup"))) {
                edist_enc_raw(&out, x.ptr, x.len);
            } else {
                edist_enc_tuple(&out, 2);
                edist_enc_atomz(&out, "EXIT");
                edist_enc_raw(&out, x.ptr, x.len);
            }
        } else {
            edist_enc_tuple(&out, 2);
            edist_enc_atomz(&out, "EXIT");
            edist_enc_raw(&out, v.ptr, v.len);
        }
        v.ptr = out.data;
        v.len = out.len;
        break;
    }
    rc = edist_buf_error(&out);
    if (rc == 0)
        rc = put_tagged(result, "badrpc", &v, NULL);
    edist_buf_free(&out);
    return rc;
}

/* ---- cast ------------------------------------------------------------------ */

int edist_rpc_cast(const char *node, const char *module, const char *function,
                   const void *args, size_t args_len)
{
    if (!name_ok(module) || !name_ok(function))
        return edist_set_error(EDIST_EINVAL, "rpc: missing or bad argument");
    if (edist_procid_is_null(edist_self()))
        return edist_set_error(EDIST_EINVAL, "rpc: the caller is not a process");
    edist_term_view a;
    int rc = args_view(args, args_len, &a);
    if (rc)
        return rc;
    edist_buf b;
    edist_buf_init(&b);
    edist_enc_list(&b, 3);
    edist_enc_atomz(&b, module);
    edist_enc_atomz(&b, function);
    edist_enc_raw(&b, a.ptr, a.len);
    edist_enc_nil(&b);
    if ((rc = edist_buf_error(&b)) != 0) {
        edist_buf_free(&b);
        return rc;
    }
    /* erpc:cast: a spawn request whose reply nobody wants. */
    edist_spawn_opts opts = {.reply = EDIST_SPAWN_REPLY_NO};
    edist_ref req;
    rc = edist_spawn_request(node, "erpc", "execute_cast", b.data, b.len, &opts, &req);
    edist_buf_free(&b);
    return rc;
}
