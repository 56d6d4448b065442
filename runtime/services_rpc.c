/* SPDX-License-Identifier: Apache-2.0 */
/* Calling exported functions the way kernel's erpc and rpc do: the apply
 * worker (the `try apply(M, F, A) catch ...` of erpc.erl, in C), edi_raise,
 * the exported erpc:execute_call/4 and erpc:execute_cast/3, and the rex
 * server.
 *
 * Why a worker process: the runtime's exported functions end in one of
 * two ways, return a value or exit the process they run in (and, through
 * edi_raise, throw or error). erpc must turn each into an exit reason of
 * its own process ({Ref, exit, R} and not R), so the function runs in a
 * worker linked to the caller: the worker sends {Tag, return, Value} to
 * the caller and ends; if it ends without sending, the reason its monitor
 * gives says how (an exit reason, or {'$edist_raise', Class, Reason,
 * Stack} from edi_raise). */
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime_internal.h"
#include "runtime/services_internal.h"

#define MAX_ARITY 255u

static void worker_main(void *arg);

/* rex's and the workers' patterns. */
enum {
    RP_REX_CALL,   /* {From, {call, M, F, A, _}} */
    RP_REX_FEAT,   /* {From, features_request} */
    RP_REX_SEND,   /* {From, {send, Name, Msg}} */
    RP_REX_SBCAST, /* {From, {sbcast, Name, Msg}} */
    RP_GEN_CALL,   /* {'$gen_call', {From, Tag}, {Kind, M, F, A, _}} */
    RP_GEN_CAST,   /* {'$gen_cast', {cast, M, F, A, _}} */
    RP_JOB,        /* {Tag, Caller, M, F, A}: a worker's job */
    RP_RESULT,     /* {Tag, return, V}: a worker's result */
    RP_DOWN,       /* {'DOWN', Ref, process, _, Reason} */
    RP_EXIT,       /* {'EXIT', From, Reason} */
    RP_RAISED,     /* {'$edist_raise', Class, Reason, Stack} */
};
static const char *const rpc_texts[] = {
    [RP_REX_CALL] = "{From, {call, M, F, A, _}}",
    [RP_REX_FEAT] = "{From, features_request}",
    [RP_REX_SEND] = "{From, {send, Name, Msg}}",
    [RP_REX_SBCAST] = "{From, {sbcast, Name, Msg}}",
    [RP_GEN_CALL] = "{'$gen_call', {From, Tag}, {Kind, M, F, A, _}}",
    [RP_GEN_CAST] = "{'$gen_cast', {cast, M, F, A, _}}",
    [RP_JOB] = "{Tag, Caller, M, F, A}",
    [RP_RESULT] = "{Tag, return, V}",
    [RP_DOWN] = "{'DOWN', Ref, process, _, Reason}",
    [RP_EXIT] = "{'EXIT', From, Reason}",
    [RP_RAISED] = "{'$edist_raise', Class, Reason, Stack}",
};
static edi_svc_patterns rpc_patterns = EDI_SVC_PATTERNS(rpc_texts);

/* Pattern i; valid once rpc_ready() said so (they are never freed). */
static const edist_pattern *rpc_pat(int i)
{
    return edi_svc_patterns_get(&rpc_patterns)[i];
}

static bool rpc_ready(void)
{
    return edi_svc_patterns_get(&rpc_patterns) != NULL;
}

/* ---- encoded constants --------------------------------------------------- */

static int enc_atom(edist_buf *b, const char *a)
{
    return edist_enc_atom(b, a, strlen(a));
}

static const uint8_t system_limit_atom[] = {EDIST_TAG_SMALL_ATOM_UTF8,
                                            12,
                                            's',
                                            'y',
                                            's',
                                            't',
                                            'e',
                                            'm',
                                            '_',
                                            'l',
                                            'i',
                                            'm',
                                            'i',
                                            't'};
static const edist_term_view SYSTEM_LIMIT = {system_limit_atom,
                                             sizeof system_limit_atom};

static bool is_nil(edist_term_view v)
{
    return v.len == 1 && v.ptr[0] == EDIST_TAG_NIL;
}

static edist_term_view strip_version(const void *data, size_t len)
{
    const uint8_t *p = data;
    if (len > 1 && p[0] == EDIST_TAG_VERSION) {
        p++;
        len--;
    }
    edist_term_view v = {p, len};
    return v;
}

/* ---- M, F, A ------------------------------------------------------------- */

typedef struct call_spec {
    char module[EDIST_ATOM_MAX_BYTES + 1];
    char function[EDIST_ATOM_MAX_BYTES + 1];
    uint32_t arity;
    edist_term_view args[MAX_ARITY];
    uint8_t ints[2 * MAX_ARITY]; /* elements of a STRING_EXT argument list */
} call_spec;

enum { SPEC_OK = 0, SPEC_BADARG, SPEC_LIMIT };

/* What apply(M, F, A) checks before calling: M and F atoms, A a proper
 * list of at most 255 elements (else badarg; system_limit). With views,
 * cs->args get the arguments (pointing into a, or into cs->ints). */
static int parse_call(edist_term_view m, edist_term_view f, edist_term_view a,
                      call_spec *cs, bool views)
{
    edist_cursor c;
    edist_cursor_init(&c, m.ptr, m.len);
    if (edist_dec_atom_copy(&c, cs->module, sizeof cs->module) != 0)
        return SPEC_BADARG;
    edist_cursor_init(&c, f.ptr, f.len);
    if (edist_dec_atom_copy(&c, cs->function, sizeof cs->function) != 0)
        return SPEC_BADARG;
    edist_cursor_init(&c, a.ptr, a.len);
    edist_term_info info;
    if (edist_peek(&c, &info) != 0)
        return SPEC_BADARG;
    cs->arity = 0;
    if (info.type == EDIST_TYPE_NIL)
        return SPEC_OK;
    if (info.type != EDIST_TYPE_LIST)
        return SPEC_BADARG;
    if (info.tag == EDIST_TAG_STRING) {
        if (info.count > MAX_ARITY)
            return SPEC_LIMIT;
        const uint8_t *bytes;
        size_t n;
        if (edist_dec_string(&c, &bytes, &n) != 0)
            return SPEC_BADARG;
        cs->arity = (uint32_t)n;
        for (size_t i = 0; views && i < n; i++) {
            cs->ints[2 * i] = EDIST_TAG_SMALL_INTEGER;
            cs->ints[2 * i + 1] = bytes[i];
            cs->args[i].ptr = cs->ints + 2 * i;
            cs->args[i].len = 2;
        }
        return SPEC_OK;
    }
    uint32_t n;
    if (edist_dec_list(&c, &n) != 0)
        return SPEC_BADARG;
    for (uint32_t i = 0; i < n; i++) {
        int rc = views && i < MAX_ARITY ? edist_dec_term(&c, &cs->args[i])
                                        : edist_skip(&c);
        if (rc)
            return SPEC_BADARG;
    }
    if (edist_dec_nil(&c) != 0)
        return SPEC_BADARG; /* an improper list */
    if (n > MAX_ARITY)
        return SPEC_LIMIT;
    cs->arity = n;
    return SPEC_OK;
}

/* [{M, F, Args, []}]: the stack erts gives for an undefined function or
 * an error raised by a BIF (here: by a C function). */
static int enc_frame_stack(edist_buf *b, edist_term_view m, edist_term_view f,
                           edist_term_view a)
{
    edist_enc_list(b, 1);
    edist_enc_tuple(b, 4);
    edist_enc_raw(b, m.ptr, m.len);
    edist_enc_raw(b, f.ptr, f.len);
    edist_enc_raw(b, a.ptr, a.len);
    edist_enc_nil(b);
    return edist_enc_nil(b);
}

/* ---- exiting with a built term ------------------------------------------- */

static void free_block(void *p)
{
    free(p);
}

/* Exit the calling process with the term in the growable buffer b, whose
 * memory is freed however the process ends (edist_exit copies the reason
 * and never returns in a green process). Returns only for a thread
 * process, or on error. */
static int exit_with(edist_buf *b)
{
    if (edist_buf_error(b)) {
        int rc = edist_buf_error(b);
        edist_buf_free(b);
        return rc;
    }
    edi_proc *self = edi_current;
    bool green = self && self->kind == EDI_PROC_GREEN;
    if (green && edist_at_exit(free_block, b->data) != 0) {
        /* No room to free it later: a reason that needs no memory. */
        edist_buf_free(b);
        return edist_exit(SYSTEM_LIMIT.ptr, SYSTEM_LIMIT.len);
    }
    int rc = edist_exit(b->data, b->len);
    edist_buf_free(b);
    return rc;
}

/* ---- edi_raise ----------------------------------------------------------- */

static const char *const class_atom[] = {"throw", "error", "exit"};

int edi_raise(edi_raise_class cls, const void *reason, size_t len,
              const void *stack, size_t stack_len)
{
    edi_proc *self = edi_current;
    if (!self)
        return edist_set_error(EDIST_EINVAL,
                               "raise: the caller is not a process");
    if (!reason || len == 0 || (unsigned)cls > EDI_RAISE_EXIT ||
        (stack && stack_len == 0))
        return edist_set_error(EDIST_EINVAL, "raise: bad argument");
    edist_term_view r = strip_version(reason, len);
    edist_term_view s =
        stack ? strip_version(stack, stack_len) : (edist_term_view){NULL, 0};
    int rc = edist_term_validate(r.ptr, r.len, NULL);
    if (rc == 0 && s.ptr)
        rc = edist_term_validate(s.ptr, s.len, NULL);
    if (rc)
        return rc;
    edist_buf b;
    edist_buf_init(&b);
    if (self->kind == EDI_PROC_GREEN && self->fn == worker_main) {
        /* The apply worker: its caller turns this into erpc's or rex's
         * form (it knows M, F and A for the default stack). */
        edist_enc_tuple(&b, 4);
        enc_atom(&b, "$edist_raise");
        enc_atom(&b, class_atom[cls]);
        edist_enc_raw(&b, r.ptr, r.len);
        if (s.ptr)
            edist_enc_raw(&b, s.ptr, s.len);
        else
            edist_enc_nil(&b);
        return exit_with(&b);
    }
    /* Uncaught, as an Erlang process ends. */
    switch (cls) {
    case EDI_RAISE_THROW:
        edist_enc_tuple(&b, 2);
        edist_enc_tuple(&b, 2);
        enc_atom(&b, "nocatch");
        edist_enc_raw(&b, r.ptr, r.len);
        break;
    case EDI_RAISE_ERROR:
        edist_enc_tuple(&b, 2);
        edist_enc_raw(&b, r.ptr, r.len);
        break;
    case EDI_RAISE_EXIT:
        edist_enc_raw(&b, r.ptr, r.len);
        return exit_with(&b);
    }
    if (s.ptr)
        edist_enc_raw(&b, s.ptr, s.len);
    else
        edist_enc_nil(&b);
    return exit_with(&b);
}

int edi_raise_error_atom(const char *atom)
{
    uint8_t tmp[EDIST_ATOM_MAX_BYTES + 8];
    edist_buf b;
    edist_buf_init_fixed(&b, tmp, sizeof tmp);
    int rc = enc_atom(&b, atom);
    if (rc)
        return rc;
    return edi_raise(EDI_RAISE_ERROR, b.data, b.len, NULL, 0);
}

/* ---- the apply worker ---------------------------------------------------- */

static void worker_main(void *arg)
{
    edi_services *s = arg;
    edi_svc_px *x = rpc_ready() ? edi_svc_px_new() : NULL;
    call_spec *cs = x ? malloc(sizeof *cs) : NULL;
    if (!cs)
        edist_exit(SYSTEM_LIMIT.ptr, SYSTEM_LIMIT.len);
    x->extra = cs;
    /* The job is the first message its caller sends. */
    const edist_pattern *jp = rpc_pat(RP_JOB);
    edist_term_view vars[5] = {{0}}, m;
    edist_receive(jp, vars, -1, &m);
    /* Kept: the function may receive, and its arguments point into it. */
    if (edi_svc_px_keep(x, &m) != 0)
        edist_exit(SYSTEM_LIMIT.ptr, SYSTEM_LIMIT.len);
    memset(vars, 0, sizeof vars);
    edist_match(jp, m.ptr, m.len, vars);
    edist_term_view tag = edi_svc_var(rpc_pat(RP_JOB), vars, "Tag");
    edist_term_view mv = edi_svc_var(rpc_pat(RP_JOB), vars, "M");
    edist_term_view fv = edi_svc_var(rpc_pat(RP_JOB), vars, "F");
    edist_term_view av = edi_svc_var(rpc_pat(RP_JOB), vars, "A");
    edist_procid caller;
    if (edi_svc_pid(edi_svc_var(rpc_pat(RP_JOB), vars, "Caller"), &caller) !=
            0 ||
        parse_call(mv, fv, av, cs, true) != SPEC_OK) {
        edi_raise_error_atom("badarg"); /* the caller checked: not reached */
        return;
    }
    edist_exported_fn fn;
    void *user;
    if (edist_export_lookup(s->rt, cs->module, cs->function, cs->arity, &fn,
                            &user) != 0) {
        edi_raise_error_atom("undef"); /* unexported since the caller looked */
        return;
    }
    edist_buf *res = &x->a;
    int rc = edi_export_call(fn, user, cs->module, cs->function, cs->args, cs->arity, res);
    if (rc == 0 && edist_buf_error(res))
        rc = edist_buf_error(res);
    if (rc == 0 && res->len == 0)
        rc = enc_atom(res, "ok");
    else if (rc == 0)
        rc = edist_term_validate(res->data, res->len, NULL);
    if (rc < 0) {
        /* The runtime's convention for a failed export: error
         * {edist_error, Name}. */
        uint8_t tmp[64];
        edist_buf e;
        edist_buf_init_fixed(&e, tmp, sizeof tmp);
        edi_enc_export_error(&e, rc);
        edi_raise(EDI_RAISE_ERROR, e.data, e.len, NULL, 0);
    }
    edist_term_view value = strip_version(res->data, res->len);
    edist_buf *out = &x->b;
    edist_enc_tuple(out, 3);
    edist_enc_raw(out, tag.ptr, tag.len);
    enc_atom(out, "return");
    edist_enc_raw(out, value.ptr, value.len);
    if (edist_buf_error(out))
        edist_exit(SYSTEM_LIMIT.ptr, SYSTEM_LIMIT.len);
    edi_svc_send(s, caller, out->data, out->len, EDI_SVC_WAIT);
}

/* The outcome from the worker's DOWN reason. */
static int outcome_of_down(edi_svc_px *x,
                           edist_term_view reason, edist_term_view mv,
                           edist_term_view fv, edist_term_view av,
                           edi_svc_outcome *out)
{
    edist_term_view vars[3] = {{0}};
    if (edist_match(rpc_pat(RP_RAISED), reason.ptr, reason.len, vars) !=
        1) {
        out->cls = EDI_CLASS_EXIT;
        out->value = reason;
        return 0;
    }
    edist_term_view cls = edi_svc_var(rpc_pat(RP_RAISED), vars, "Class");
    out->value = edi_svc_var(rpc_pat(RP_RAISED), vars, "Reason");
    out->stack = edi_svc_var(rpc_pat(RP_RAISED), vars, "Stack");
    if (edi_svc_is_atom(cls, "throw")) {
        out->cls = EDI_CLASS_THROW;
    } else if (edi_svc_is_atom(cls, "error")) {
        out->cls = EDI_CLASS_ERROR;
        if (is_nil(out->stack)) {
            edist_buf_reset(&x->a);
            int rc = enc_frame_stack(&x->a, mv, fv, av);
            if (rc)
                return rc;
            out->stack.ptr = x->a.data;
            out->stack.len = x->a.len;
        }
    } else {
        out->cls = EDI_CLASS_EXIT;
    }
    return 0;
}

/* An error outcome decided before any worker runs, built into x->a:
 * reason atom, stack [{Sm, Sf, Sa, []}]. */
static int early_error(edi_svc_px *x, const char *reason, edist_term_view sm,
                       edist_term_view sf, edist_term_view sa,
                       edi_svc_outcome *out)
{
    edist_buf *b = &x->a;
    edist_buf_reset(b);
    enc_atom(b, reason);
    size_t rlen = b->len;
    int rc = enc_frame_stack(b, sm, sf, sa);
    if (rc)
        return rc;
    out->cls = EDI_CLASS_ERROR;
    out->value.ptr = b->data;
    out->value.len = rlen;
    out->stack.ptr = b->data + rlen;
    out->stack.len = b->len - rlen;
    return 0;
}

/* Drop an {'EXIT', W, _} the worker's end may have left (trapping). */
static void flush_worker_exit(edist_procid w)
{
    uint8_t pidbuf[EDIST_ATOM_MAX_BYTES + 32];
    edist_buf pb;
    edist_buf_init_fixed(&pb, pidbuf, sizeof pidbuf);
    if (edist_enc_procid(&pb, w) != 0)
        return;
    const edist_pattern *ep = rpc_pat(RP_EXIT);
    edist_term_view vars[2] = {{0}}, m;
    vars[edist_pattern_var_index(ep, "From")] =
        (edist_term_view){pb.data, pb.len};
    edist_receive(ep, vars, 0, &m);
}

int edi_svc_apply(edi_services *s, edi_svc_px *x, edist_term_view tag,
                  edist_term_view m, edist_term_view f, edist_term_view a,
                  edi_svc_outcome *out)
{
    memset(out, 0, sizeof *out);
    call_spec *cs = rpc_ready() ? malloc(sizeof *cs) : NULL;
    if (!cs)
        return edist_set_error(EDIST_ENOMEM, "apply: no memory");
    int spec = parse_call(m, f, a, cs, false);
    bool known =
        spec == SPEC_OK && edist_export_lookup(s->rt, cs->module, cs->function,
                                               cs->arity, NULL, NULL) == 0;
    free(cs);
    if (spec == SPEC_LIMIT) {
        /* erpc's is_arg_error: too many arguments for apply. */
        out->cls = EDI_CLASS_ERROR;
        out->arg_error = true;
        out->value = SYSTEM_LIMIT;
        return 0;
    }
    if (spec == SPEC_BADARG) {
        /* As apply/3 fails: badarg in erlang:apply([M, F, A]). */
        edist_buf args;
        edist_buf_init(&args);
        edist_enc_list(&args, 3);
        edist_enc_raw(&args, m.ptr, m.len);
        edist_enc_raw(&args, f.ptr, f.len);
        edist_enc_raw(&args, a.ptr, a.len);
        edist_enc_nil(&args);
        static const uint8_t erlang_atom[] = {
            EDIST_TAG_SMALL_ATOM_UTF8, 6, 'e', 'r', 'l', 'a', 'n', 'g'};
        static const uint8_t apply_atom[] = {
            EDIST_TAG_SMALL_ATOM_UTF8, 5, 'a', 'p', 'p', 'l', 'y'};
        int rc = edist_buf_error(&args);
        if (rc == 0)
            rc = early_error(x, "badarg",
                             (edist_term_view){erlang_atom, sizeof erlang_atom},
                             (edist_term_view){apply_atom, sizeof apply_atom},
                             (edist_term_view){args.data, args.len}, out);
        edist_buf_free(&args);
        return rc;
    }
    if (!known)
        return early_error(x, "undef", m, f, a, out);

    int old_trap = edist_trap_exit(true);
    if (old_trap < 0)
        return old_trap;
    edist_spawn_opts o = {.link = true, .monitor = true};
    edist_procid w;
    edist_ref mref;
    int rc = edist_spawn_opt(worker_main, s, &o, &w, &mref);
    if (rc) {
        edist_trap_exit(old_trap);
        return rc;
    }
    edist_buf job;
    edist_buf_init(&job);
    edist_enc_tuple(&job, 5);
    edist_enc_raw(&job, tag.ptr, tag.len);
    edist_enc_procid(&job, edist_self());
    edist_enc_raw(&job, m.ptr, m.len);
    edist_enc_raw(&job, f.ptr, f.len);
    edist_enc_raw(&job, a.ptr, a.len);
    rc = edist_buf_error(&job);
    if (rc == 0)
        rc = edist_send_buf(w, &job);
    edist_buf_free(&job);
    if (rc) {
        edist_unlink(w);
        edist_demonitor(&mref, EDIST_DEMONITOR_FLUSH);
        edist_exit_signal(w, EDIST_REASON_KILL.ptr, EDIST_REASON_KILL.len);
        flush_worker_exit(w);
        edist_trap_exit(old_trap);
        return rc;
    }

    uint8_t refbuf[EDIST_ATOM_MAX_BYTES + 64];
    edist_buf rb;
    edist_buf_init_fixed(&rb, refbuf, sizeof refbuf);
    edist_enc_ref(&rb, &mref);
    const edist_pattern *rp = rpc_pat(RP_RESULT),
                        *dp = rpc_pat(RP_DOWN), *ep = rpc_pat(RP_EXIT);
    int r_tag = edist_pattern_var_index(rp, "Tag"),
        r_v = edist_pattern_var_index(rp, "V");
    int d_ref = edist_pattern_var_index(dp, "Ref"),
        d_why = edist_pattern_var_index(dp, "Reason");
    int e_from = edist_pattern_var_index(ep, "From"),
        e_why = edist_pattern_var_index(ep, "Reason");
    for (;;) {
        edist_term_view msg, vars[3];
        edist_receive(NULL, NULL, -1, &msg);
        memset(vars, 0, sizeof vars);
        vars[r_tag] = tag;
        if (edist_match(rp, msg.ptr, msg.len, vars) == 1) {
            if ((rc = edi_svc_px_keep(x, &msg)) != 0)
                break;
            memset(vars, 0, sizeof vars);
            vars[r_tag] = tag;
            edist_match(rp, msg.ptr, msg.len, vars);
            out->cls = EDI_CLASS_RETURN;
            out->value = vars[r_v];
            out->whole = msg;
            /* The worker is ending normally: the link and the monitor
             * have nothing more to say. */
            edist_unlink(w);
            edist_demonitor(&mref, EDIST_DEMONITOR_FLUSH);
            break;
        }
        memset(vars, 0, sizeof vars);
        vars[d_ref].ptr = rb.data;
        vars[d_ref].len = rb.len;
        if (edist_match(dp, msg.ptr, msg.len, vars) == 1) {
            if ((rc = edi_svc_px_keep(x, &msg)) != 0)
                break;
            vars[d_why].ptr = NULL;
            edist_match(dp, msg.ptr, msg.len, vars);
            rc = outcome_of_down(x, vars[d_why], m, f, a, out);
            break;
        }
        memset(vars, 0, sizeof vars);
        if (edist_match(ep, msg.ptr, msg.len, vars) == 1) {
            edist_procid from;
            if (edi_svc_pid(vars[e_from], &from) == 0 &&
                edist_procid_equal(from, w))
                continue; /* its DOWN follows */
            if (edi_svc_is_atom(vars[e_why], "normal"))
                continue; /* ignored, as by a process not trapping exits */
            /* Ended by an exit signal, as the process running the
             * function would be: the link takes the worker along. */
            edist_exit(vars[e_why].ptr, vars[e_why].len);
        }
        /* Meant for the process running the function. */
        edi_svc_send(s, w, msg.ptr, msg.len, EDI_SVC_WAIT);
    }
    flush_worker_exit(w);
    edist_trap_exit(old_trap);
    return rc;
}

/* ---- erpc:execute_call/4 and erpc:execute_cast/3 ------------------------- */

/* [Ref, M, F, A]: exits with {Ref, return, V}, {Ref, throw, T},
 * {Ref, exit, R}, {Ref, error, R, Stack} or {Ref, error, {erpc, R}}: the
 * DOWN reason the erpc caller matches on. */
static int ex_execute_call(void *user, const edist_term_view *args,
                           uint32_t arity, edist_buf *result)
{
    (void)arity;
    (void)result;
    edi_services *s = user;
    edi_svc_px *x = edi_svc_px_new();
    if (!x)
        return EDIST_ENOMEM;
    edist_term_view ref = args[0];
    edi_svc_outcome o;
    if (edi_svc_apply(s, x, ref, args[1], args[2], args[3], &o) != 0) {
        memset(&o, 0, sizeof o);
        o.cls = EDI_CLASS_ERROR;
        o.arg_error = true;
        o.value = SYSTEM_LIMIT;
    }
    if (o.cls == EDI_CLASS_RETURN) /* already {Ref, return, V} */
        return edist_exit(o.whole.ptr, o.whole.len);
    edist_buf b;
    edist_buf_init(&b);
    edist_enc_tuple(&b, o.cls == EDI_CLASS_ERROR && !o.arg_error ? 4 : 3);
    edist_enc_raw(&b, ref.ptr, ref.len);
    switch (o.cls) {
    case EDI_CLASS_THROW:
        enc_atom(&b, "throw");
        edist_enc_raw(&b, o.value.ptr, o.value.len);
        break;
    case EDI_CLASS_EXIT:
        enc_atom(&b, "exit");
        edist_enc_raw(&b, o.value.ptr, o.value.len);
        break;
    default:
        enc_atom(&b, "error");
        if (o.arg_error) {
            edist_enc_tuple(&b, 2);
            enc_atom(&b, "erpc");
            edist_enc_raw(&b, o.value.ptr, o.value.len);
        } else {
            edist_enc_raw(&b, o.value.ptr, o.value.len);
            edist_enc_raw(&b, o.stack.ptr, o.stack.len);
        }
        break;
    }
    return exit_with(&b);
}

static void log_cast_failure(edi_services *s, const char *what,
                             edist_term_view reason)
{
    edist_buf t;
    edist_buf_init(&t);
    edist_term_print(reason.ptr, reason.len, &t, NULL);
    const char *text = edist_buf_cstr(&t);
    edi_rt_log(s->rt, EDIST_LOG_WARNING, "erpc cast: %s %s", what,
               text ? text : "?");
    edist_buf_free(&t);
}

/* [M, F, A]: apply, the result dropped; an exception ends the process as
 * erpc.erl's execute_cast ends it (error as error({exception, {R,
 * Stack}}), uncaught throw as {nocatch, T}). */
static int ex_execute_cast(void *user, const edist_term_view *args,
                           uint32_t arity, edist_buf *result)
{
    (void)arity;
    (void)result;
    edi_services *s = user;
    edi_svc_px *x = edi_svc_px_new();
    if (!x)
        return EDIST_ENOMEM;
    edist_ref r;
    int rc = edist_make_ref(&r);
    if (rc == 0)
        rc = edist_enc_ref(&x->b, &r);
    if (rc)
        return rc;
    edist_term_view tag = {x->b.data, x->b.len};
    edi_svc_outcome o;
    if ((rc = edi_svc_apply(s, x, tag, args[0], args[1], args[2], &o)) != 0)
        return rc;
    if (o.cls == EDI_CLASS_RETURN)
        return 0;
    if (o.cls == EDI_CLASS_EXIT)
        return edist_exit(o.value.ptr, o.value.len);
    edist_buf b;
    edist_buf_init(&b);
    edist_enc_tuple(&b, 2);
    edist_enc_tuple(&b, 2);
    if (o.cls == EDI_CLASS_THROW) {
        enc_atom(&b, "nocatch");
        edist_enc_raw(&b, o.value.ptr, o.value.len);
        log_cast_failure(s, "throw", o.value);
    } else if (o.arg_error) {
        enc_atom(&b, "erpc");
        edist_enc_raw(&b, o.value.ptr, o.value.len);
        log_cast_failure(s, "error", o.value);
    } else {
        enc_atom(&b, "exception");
        edist_enc_tuple(&b, 2);
        edist_enc_raw(&b, o.value.ptr, o.value.len);
        edist_enc_raw(&b, o.stack.ptr, o.stack.len);
        log_cast_failure(s, "error", o.value);
    }
    /* the stack of the re-raise: [{erpc, execute_cast, 3, []}] */
    edist_enc_list(&b, 1);
    edist_enc_tuple(&b, 4);
    enc_atom(&b, "erpc");
    enc_atom(&b, "execute_cast");
    edist_enc_int(&b, 3);
    edist_enc_nil(&b);
    edist_enc_nil(&b);
    return exit_with(&b);
}

int edi_svc_export_rpc(edi_services *s)
{
    if (!rpc_ready())
        return EDIST_ENOMEM;
    int rc = edist_export_function(s->rt, "erpc", "execute_call", 4,
                                   ex_execute_call, s);
    if (rc == 0)
        rc = edist_export_function(s->rt, "erpc", "execute_cast", 3,
                                   ex_execute_cast, s);
    return rc;
}

/* ---- rex ----------------------------------------------------------------- */

enum { FACE_REX, FACE_GEN, FACE_CAST };

/* The result as rpc.erl's execute_call/3 makes it. */
static int enc_rex_result(edist_buf *b, int apply_rc, const edi_svc_outcome *o)
{
    if (apply_rc == 0 &&
        (o->cls == EDI_CLASS_RETURN || o->cls == EDI_CLASS_THROW))
        return edist_enc_raw(b, o->value.ptr, o->value.len);
    edist_enc_tuple(b, 2);
    enc_atom(b, "badrpc");
    edist_enc_tuple(b, 2);
    enc_atom(b, "EXIT");
    if (apply_rc != 0)
        return edist_enc_raw(b, SYSTEM_LIMIT.ptr, SYSTEM_LIMIT.len);
    if (o->cls == EDI_CLASS_EXIT || o->arg_error)
        return edist_enc_raw(b, o->value.ptr, o->value.len);
    edist_enc_tuple(b, 2);
    edist_enc_raw(b, o->value.ptr, o->value.len);
    return edist_enc_raw(b, o->stack.ptr, o->stack.len);
}

/* The face of a request to rex, with its parts; -1 if it is none. */
static int rex_request(edist_term_view msg,
                       edist_term_view *from, edist_term_view *gtag,
                       edist_term_view *m, edist_term_view *f,
                       edist_term_view *a)
{
    static const int pats[] = {RP_REX_CALL, RP_GEN_CALL, RP_GEN_CAST};
    static const int faces[] = {FACE_REX, FACE_GEN, FACE_CAST};
    for (size_t i = 0; i < 3; i++) {
        edist_term_view vars[8] = {{0}};
        if (edist_match(rpc_pat(pats[i]), msg.ptr, msg.len, vars) != 1)
            continue;
        if (faces[i] == FACE_GEN) {
            edist_term_view kind = edi_svc_var(rpc_pat(pats[i]), vars, "Kind");
            if (!edi_svc_is_atom(kind, "block_call") &&
                !edi_svc_is_atom(kind, "call"))
                return -1;
            *gtag = edi_svc_var(rpc_pat(pats[i]), vars, "Tag");
        }
        if (faces[i] != FACE_CAST)
            *from = edi_svc_var(rpc_pat(pats[i]), vars, "From");
        *m = edi_svc_var(rpc_pat(pats[i]), vars, "M");
        *f = edi_svc_var(rpc_pat(pats[i]), vars, "F");
        *a = edi_svc_var(rpc_pat(pats[i]), vars, "A");
        return faces[i];
    }
    return -1;
}

/* Reply to a request: {rex, Result} or {Tag, Result}. result_rc/o as for
 * enc_rex_result. */
static void rex_reply(edi_services *s, edi_svc_how how, int face,
                      edist_term_view from, edist_term_view gtag, int apply_rc,
                      const edi_svc_outcome *o)
{
    edist_procid to;
    if (face == FACE_CAST || edi_svc_pid(from, &to) != 0)
        return;
    static const uint8_t rex[] = {EDIST_TAG_SMALL_ATOM_UTF8, 3, 'r', 'e', 'x'};
    edist_term_view tag = face == FACE_REX ? (edist_term_view){rex, sizeof rex} : gtag;
    edist_buf *b = edi_svc_buf_hold(); /* the reply may wait for room */
    if (!b)
        return;
    enc_rex_result(b, apply_rc, o);
    if (edist_buf_error(b) == 0)
        edi_svc_reply(s, to, tag, b->data, b->len, how);
    edi_svc_buf_release(b);
}

/* One call, in a process of its own so that rex never waits: its first
 * message is the request, passed on by rex. */
static void rex_worker_main(void *arg)
{
    edi_services *s = arg;
    edi_svc_px *x = rpc_ready() ? edi_svc_px_new() : NULL;
    if (!x)
        return;
    edist_term_view msg;
    edist_receive(NULL, NULL, -1, &msg);
    if (edi_svc_px_keep(x, &msg) != 0)
        return;
    edist_term_view from = {0}, gtag = {0}, m, f, a;
    int face = rex_request(msg, &from, &gtag, &m, &f, &a);
    if (face < 0)
        return;
    edist_ref r;
    int rc = edist_make_ref(&r);
    if (rc == 0)
        rc = edist_enc_ref(&x->b, &r);
    edi_svc_outcome o;
    memset(&o, 0, sizeof o);
    if (rc == 0) {
        edist_term_view tag = {x->b.data, x->b.len};
        rc = edi_svc_apply(s, x, tag, m, f, a, &o);
    }
    /* The result's size is the caller's: wait for room, in this call's
     * own process. */
    rex_reply(s, EDI_SVC_WAIT, face, from, gtag, rc, &o);
}

/* rex's own answers below are small and rex serves every peer: they go
 * past a full send queue rather than hold rex up (edi_svc_send). */
static void rex_noname(edi_services *s, edist_procid to, const char *node,
                       edist_term_view name)
{
    edist_buf b;
    edist_buf_init(&b);
    edist_enc_tuple(&b, 3);
    enc_atom(&b, "rex");
    edist_enc_atomz(&b, node);
    if (name.ptr) {
        edist_enc_tuple(&b, 2);
        enc_atom(&b, "nonexisting_name");
        edist_enc_raw(&b, name.ptr, name.len);
    } else {
        edist_enc_atomz(&b, node);
    }
    if (edist_buf_error(&b) == 0)
        edi_svc_send(s, to, b.data, b.len, EDI_SVC_FORCE);
    edist_buf_free(&b);
}

/* Name ! Msg for a name that is an atom or a pid: 0, or EDIST_ENOTFOUND
 * (badarg in Erlang). Waits for room: the message is the peer's, of any
 * size. */
static int send_to_name(edi_services *s, edist_term_view name, const void *msg,
                        size_t len)
{
    edist_procid pid;
    if (edi_svc_pid(name, &pid) == 0)
        return edi_svc_send(s, pid, msg, len, EDI_SVC_WAIT);
    char n[EDIST_ATOM_MAX_BYTES + 1];
    edist_cursor c;
    edist_cursor_init(&c, name.ptr, name.len);
    if (edist_dec_atom_copy(&c, n, sizeof n) != 0)
        return EDIST_ENOTFOUND;
    return edi_svc_send_name(s, n, NULL, msg, len, EDI_SVC_WAIT);
}

/* {From, {send, Name, Msg}}: Name ! {From, Msg}; {From, {sbcast, Name,
 * Msg}}: Name ! Msg and {rex, node(), node()}. Either answers {rex,
 * node(), {nonexisting_name, Name}} when there is no such name. */
static void rex_send(edi_services *s, edist_term_view msg, bool sbcast)
{
    const edist_pattern *pat = rpc_pat(sbcast ? RP_REX_SBCAST : RP_REX_SEND);
    edist_term_view vars[3] = {{0}};
    if (edist_match(pat, msg.ptr, msg.len, vars) != 1)
        return;
    edist_term_view fromv = edi_svc_var(pat, vars, "From");
    edist_term_view name = edi_svc_var(pat, vars, "Name");
    edist_term_view body = edi_svc_var(pat, vars, "Msg");
    edist_procid from;
    if (edi_svc_pid(fromv, &from) != 0)
        return;
    const char *node = edist_runtime_node(s->rt);
    int rc;
    if (sbcast) {
        rc = send_to_name(s, name, body.ptr, body.len);
    } else {
        edist_buf b;
        edist_buf_init(&b);
        edist_enc_tuple(&b, 2);
        edist_enc_raw(&b, fromv.ptr, fromv.len);
        edist_enc_raw(&b, body.ptr, body.len);
        rc = edist_buf_error(&b);
        if (rc == 0)
            rc = send_to_name(s, name, b.data, b.len);
        edist_buf_free(&b);
    }
    if (rc == EDIST_ENOTFOUND)
        rex_noname(s, from, node, name);
    else if (sbcast)
        rex_noname(s, from, node, (edist_term_view){NULL, 0});
}

static void rex_features(edi_services *s, edist_term_view msg)
{
    edist_term_view vars[1] = {{0}};
    edist_procid from;
    if (edist_match(rpc_pat(RP_REX_FEAT), msg.ptr, msg.len, vars) != 1 ||
        edi_svc_pid(vars[0], &from) != 0)
        return;
    edist_buf b;
    edist_buf_init(&b);
    edist_enc_tuple(&b, 3);
    enc_atom(&b, "features_reply");
    edist_enc_atomz(&b, edist_runtime_node(s->rt));
    edist_enc_list(&b, 1);
    enc_atom(&b, "erpc");
    edist_enc_nil(&b);
    if (edist_buf_error(&b) == 0)
        edi_svc_send(s, from, b.data, b.len, EDI_SVC_FORCE);
    edist_buf_free(&b);
}

void edi_svc_rex_main(void *arg)
{
    edi_services *s = arg;
    if (!rpc_ready())
        return;
    for (;;) {
        edist_term_view msg;
        if (edist_receive(NULL, NULL, -1, &msg) != 0)
            continue;
        edist_term_view from = {0}, gtag = {0}, m, f, a;
        int face = rex_request(msg, &from, &gtag, &m, &f, &a);
        if (face >= 0) {
            edist_procid w;
            int rc = edist_spawn(rex_worker_main, s, &w);
            if (rc == 0 && (rc = edist_send(w, msg.ptr, msg.len)) != 0)
                edist_exit_signal(w, EDIST_REASON_KILL.ptr,
                                  EDIST_REASON_KILL.len);
            if (rc) {
                /* As rpc.erl answers when it cannot spawn. */
                edi_svc_outcome none;
                memset(&none, 0, sizeof none);
                rex_reply(s, EDI_SVC_FORCE, face, from, gtag, EDIST_ENOMEM,
                          &none);
            }
            continue;
        }
        rex_features(s, msg);
        rex_send(s, msg, false);
        rex_send(s, msg, true);
    }
}
