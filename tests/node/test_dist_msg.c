/* SPDX-License-Identifier: Apache-2.0 */
/* Distribution message codec (control/dist_msg.h).
 *
 * Group 1, pure: round trips build -> parse for every op in both wire
 * forms, fragments (1 MiB and 10 MiB, interleaved sequences, both
 * fragmenter interfaces), reassembly limits, malformed frames (each field
 * of the wrong type, truncations, unknown ops, fragment ids out of order,
 * unknown sequences, atom cache refs), and the is_auth helpers.
 *
 * Group 2, live: a real OTP node. The test starts its own `epmd -port P`
 * and `erl -name n3erl<pid>@127.0.0.1` whose stdin/stdout is a one-line
 * REPL, connects to it with the handshake driver (control/handshake_io.h),
 * then makes erl send every kind of signal to us (SEND_SENDER, REG_SEND,
 * MONITOR_P by pid and name, DEMONITOR_P, LINK, PAYLOAD_EXIT, PAYLOAD_EXIT2,
 * UNLINK_ID, ALIAS_SEND, GROUP_LEADER, SPAWN_REQUEST, a 1 MiB fragmented
 * message, net_adm:ping) and parses the bytes erts produced; and sends
 * frames built here to erl and checks their effect there (REG_SEND, SEND,
 * a fragmented SEND interleaved with another sender, MONITOR_P by name and
 * the PAYLOAD_MONITOR_P_EXIT back, SPAWN_REQUEST and its SPAWN_REPLY, LINK
 * and EXIT2, SPAWN_REPLY, UNLINK_ID_ACK, the is_auth reply both as
 * ALIAS_SEND and as SEND). A second connection without DFLAG_FRAGMENTS
 * checks the pass-through form both ways. epmd and erl (tests/common/peers.h)
 * are ended by pid in the teardown and die with us (PR_SET_PDEATHSIG). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "control/dist_flags.h"
#include "control/dist_build.h"
#include "control/dist_frag.h"
#include "control/dist_msg.h"
#include "control/dist_reasm.h"
#include "control/handshake.h"
#include "control/handshake_io.h"
#include "edist/error.h"
#include "edist/term.h"
#include "peers.h"

/* ---- term helpers -------------------------------------------------------- */

#define LOCAL "a@b"
static const edist_text_opts topts = {.local_node = LOCAL, .local_creation = 7};

/* Encoded terms parsed from text live until tfree(). */
static edist_buf pool[1024];
static size_t pool_n;

static edist_term_view T(const char *text)
{
    assert_true(pool_n < sizeof pool / sizeof pool[0]);
    edist_buf *b = &pool[pool_n++];
    edist_buf_init(b);
    edist_parse_error pe;
    int rc = edist_term_parse(text, strlen(text), b, &topts, &pe);
    if (rc < 0)
        fail_msg("cannot parse %s: %s", text, pe.message);
    return (edist_term_view){b->data, b->len};
}

static void tfree(void)
{
    for (size_t i = 0; i < pool_n; i++)
        edist_buf_free(&pool[i]);
    pool_n = 0;
}

static int free_pool(void **state)
{
    (void)state;
    tfree();
    return 0;
}

/* Text (~w) of a view, in a static buffer. */
static const char *show(edist_term_view v, const char *local)
{
    static char out[4][512];
    static int k;
    char *o = out[k++ & 3];
    if (v.ptr == NULL)
        return "(absent)";
    edist_buf b;
    edist_buf_init(&b);
    edist_text_opts o2 = {.local_node = local};
    if (edist_term_print(v.ptr, v.len, &b, &o2) < 0) {
        snprintf(o, 512, "(bad term)");
    } else {
        size_t n = b.len < 511 ? b.len : 511;
        memcpy(o, b.data, n);
        o[n] = '\0';
    }
    edist_buf_free(&b);
    return o;
}

static void assert_view_eq(edist_term_view got, edist_term_view want)
{
    if (got.ptr == NULL ||
        edist_term_equal(got.ptr, got.len, want.ptr, want.len) != 1)
        fail_msg("term %s, expected %s", show(got, LOCAL), show(want, LOCAL));
}

static void assert_view_text(edist_term_view got, const char *text)
{
    assert_view_eq(got, T(text));
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | p[3];
}

/* Parse a frame from a builder (u32 prefix checked and skipped). */
static int parse_built(const edist_buf *b, edi_dist_msg *m)
{
    assert_true(b->len >= 4);
    assert_int_equal(be32(b->data), b->len - 4);
    return edi_dist_parse(b->data + 4, b->len - 4, m);
}

/* Flag sets: header form (what a FRAGMENTS peer needs) and pass-through. */
#define F_HDR (EDI_DFLAGS_EDIST_DEFAULT | EDI_DFLAG_ALTACT_SIG)
#define F_PASS (F_HDR & ~EDI_DFLAG_FRAGMENTS)

/* ---- round trips --------------------------------------------------------- */

static void check_form(const edist_buf *b, uint64_t flags,
                       const edi_dist_msg *m)
{
    if (flags & EDI_DFLAG_FRAGMENTS) {
        assert_int_equal(b->data[4], 131);
        assert_int_equal(b->data[5], 68);
        assert_int_equal(b->data[6], 0);
        assert_int_equal(m->form, EDI_DIST_HEADER);
    } else {
        assert_int_equal(b->data[4], 112);
        assert_int_equal(b->data[5], 131);
        assert_int_equal(m->form, EDI_DIST_PASS_THROUGH);
    }
}

/* The parser decodes from and to whenever they are pids (the kernel and
 * the runtime use those and never decode them again). */
static void check_pid_field(edist_term_view v, bool is_pid, const edist_pid *got)
{
    bool want = v.len > 0 && (v.ptr[0] == EDIST_TAG_NEW_PID || v.ptr[0] == EDIST_TAG_PID);
    assert_int_equal(is_pid, want);
    if (!want)
        return;
    edist_pid p;
    assert_int_equal(edi_dist_view_pid(v, &p), 0);
    assert_int_equal(got->id, p.id);
    assert_int_equal(got->serial, p.serial);
    assert_int_equal(got->creation, p.creation);
    assert_int_equal(got->node.len, p.node.len);
    assert_memory_equal(got->node.ptr, p.node.ptr, p.node.len);
}

static void check_pids(const edi_dist_msg *m)
{
    check_pid_field(m->from, m->from_is_pid, &m->from_pid);
    check_pid_field(m->to, m->to_is_pid, &m->to_pid);
}

static void roundtrip_flags(uint64_t flags)
{
    edist_term_view p1 = T("<0.1.0>"), p2 = T("<0.2.0>"), gl = T("<0.3.0>");
    edist_term_view ref = T("#Ref<0.1.2.3>");
    edist_term_view msg = T("{hello, [1,2,3], <<\"bin\">>}");
    edist_term_view tok = T("{0, label, 5, <0.1.0>, 3}");
    edist_term_view name = T("some_name");
    edist_term_view reason = T("{shutdown, because}");
    edi_dist_msg m;
    edist_buf b;
    edist_buf_init(&b);

#define BUILD(call)                                                            \
    do {                                                                       \
        edist_buf_reset(&b);                                                   \
        assert_int_equal((call), 0);                                           \
        assert_int_equal(parse_built(&b, &m), 0);                              \
        check_form(&b, flags, &m);                                             \
        check_pids(&m);                                                        \
    } while (0)

    BUILD(edi_dist_build_send(&b, flags, NULL, p2, msg));
    assert_int_equal(m.op, EDI_DOP_SEND);
    assert_view_eq(m.to, p2);
    assert_view_eq(m.payload, msg);
    assert_null(m.from.ptr);
    BUILD(edi_dist_build_send(&b, flags, &tok, p2, msg));
    assert_int_equal(m.op, EDI_DOP_SEND_TT);
    assert_view_eq(m.token, tok);
    assert_view_eq(m.payload, msg);

    BUILD(edi_dist_build_send_sender(&b, flags, NULL, p1, p2, msg));
    assert_int_equal(m.op, EDI_DOP_SEND_SENDER);
    assert_view_eq(m.from, p1);
    assert_view_eq(m.to, p2);
    assert_view_eq(m.payload, msg);
    BUILD(edi_dist_build_send_sender(&b, flags, &tok, p1, p2, msg));
    assert_int_equal(m.op, EDI_DOP_SEND_SENDER_TT);
    assert_view_eq(m.token, tok);

    {
        /* The send path's one-pass builder writes exactly what the general
         * builders write, and BARE leaves out only the u32 length. */
        edist_pid fp, tp;
        assert_int_equal(edi_dist_view_pid(p1, &fp), 0);
        assert_int_equal(edi_dist_view_pid(p2, &tp), 0);
        edist_buf g, f, bare;
        edist_buf_init(&g);
        edist_buf_init(&f);
        edist_buf_init(&bare);
        if (flags & EDI_DFLAG_SEND_SENDER)
            assert_int_equal(
                edi_dist_build_send_sender(&g, flags, NULL, p1, p2, msg), 0);
        else
            assert_int_equal(edi_dist_build_send(&g, flags, NULL, p2, msg), 0);
        assert_int_equal(edi_dist_build_send_pids(&f, flags, &fp, &tp, msg), 0);
        assert_int_equal(f.len, g.len);
        assert_memory_equal(f.data, g.data, g.len);
        assert_int_equal(edi_dist_build_send_pids(&bare,
                                                  flags | EDI_DIST_BUILD_BARE,
                                                  &fp, &tp, msg),
                         0);
        assert_int_equal(bare.len + 4, g.len);
        assert_memory_equal(bare.data, g.data + 4, bare.len);
        edist_buf_reset(&bare);
        assert_int_equal(edi_dist_build_link(&bare, flags | EDI_DIST_BUILD_BARE,
                                             p1, p2),
                         0);
        edist_buf_reset(&g);
        assert_int_equal(edi_dist_build_link(&g, flags, p1, p2), 0);
        assert_int_equal(bare.len + 4, g.len);
        assert_memory_equal(bare.data, g.data + 4, bare.len);
        edist_buf_free(&g);
        edist_buf_free(&f);
        edist_buf_free(&bare);
    }

    BUILD(edi_dist_build_reg_send(&b, flags, NULL, p1, name, msg));
    assert_int_equal(m.op, EDI_DOP_REG_SEND);
    assert_view_eq(m.from, p1);
    assert_view_eq(m.to, name);
    assert_view_eq(m.to_name, name);
    assert_view_eq(m.payload, msg);
    BUILD(edi_dist_build_reg_send(&b, flags, &tok, p1, name, msg));
    assert_int_equal(m.op, EDI_DOP_REG_SEND_TT);
    assert_view_eq(m.token, tok);
    assert_view_eq(m.to_name, name);

    BUILD(edi_dist_build_alias_send(&b, flags, NULL, p1, ref, msg));
    assert_int_equal(m.op, EDI_DOP_ALIAS_SEND);
    assert_view_eq(m.to, ref);
    assert_view_eq(m.ref, ref);
    assert_view_eq(m.payload, msg);
    BUILD(edi_dist_build_alias_send(&b, flags, &tok, p1, ref, msg));
    assert_int_equal(m.op, EDI_DOP_ALIAS_SEND_TT);
    assert_view_eq(m.token, tok);

    BUILD(edi_dist_build_link(&b, flags, p1, p2));
    assert_int_equal(m.op, EDI_DOP_LINK);
    assert_view_eq(m.from, p1);
    assert_view_eq(m.to, p2);
    assert_null(m.payload.ptr);
    BUILD(edi_dist_build_unlink(&b, flags, p1, p2));
    assert_int_equal(m.op, EDI_DOP_UNLINK);
    BUILD(edi_dist_build_group_leader(&b, flags, gl, p2));
    assert_int_equal(m.op, EDI_DOP_GROUP_LEADER);
    assert_view_eq(m.from, gl);
    assert_view_eq(m.to, p2);

    BUILD(edi_dist_build_unlink_id(&b, flags, UINT64_MAX, p1, p2));
    assert_int_equal(m.op, EDI_DOP_UNLINK_ID);
    assert_true(m.unlink_id == UINT64_MAX);
    assert_view_eq(m.from, p1);
    BUILD(edi_dist_build_unlink_id_ack(&b, flags, 42, p1, p2));
    assert_int_equal(m.op, EDI_DOP_UNLINK_ID_ACK);
    assert_true(m.unlink_id == 42);
    assert_view_eq(m.to, p2);

    /* EXIT / EXIT2: payload variants when EXIT_PAYLOAD is negotiated. */
    uint64_t noexp = flags & ~EDI_DFLAG_EXIT_PAYLOAD;
    BUILD(edi_dist_build_exit(&b, flags, NULL, p1, p2, reason));
    assert_int_equal(m.op, EDI_DOP_PAYLOAD_EXIT);
    assert_view_eq(m.reason, reason);
    assert_view_eq(m.payload, reason);
    BUILD(edi_dist_build_exit(&b, flags, &tok, p1, p2, reason));
    assert_int_equal(m.op, EDI_DOP_PAYLOAD_EXIT_TT);
    assert_view_eq(m.token, tok);
    assert_view_eq(m.reason, reason);
    BUILD(edi_dist_build_exit2(&b, flags, NULL, p1, p2, reason));
    assert_int_equal(m.op, EDI_DOP_PAYLOAD_EXIT2);
    BUILD(edi_dist_build_exit2(&b, flags, &tok, p1, p2, reason));
    assert_int_equal(m.op, EDI_DOP_PAYLOAD_EXIT2_TT);
    assert_view_eq(m.reason, reason);
    flags = noexp; /* check_form looks only at FRAGMENTS */
    BUILD(edi_dist_build_exit(&b, flags, NULL, p1, p2, reason));
    assert_int_equal(m.op, EDI_DOP_EXIT);
    assert_view_eq(m.reason, reason);
    assert_null(m.payload.ptr);
    BUILD(edi_dist_build_exit(&b, flags, &tok, p1, p2, reason));
    assert_int_equal(m.op, EDI_DOP_EXIT_TT);
    assert_view_eq(m.token, tok);
    assert_view_eq(m.reason, reason);
    BUILD(edi_dist_build_exit2(&b, flags, NULL, p1, p2, reason));
    assert_int_equal(m.op, EDI_DOP_EXIT2);
    BUILD(edi_dist_build_exit2(&b, flags, &tok, p1, p2, reason));
    assert_int_equal(m.op, EDI_DOP_EXIT2_TT);
    assert_view_eq(m.reason, reason);
    BUILD(edi_dist_build_monitor_p_exit(&b, flags, name, p2, ref, reason));
    assert_int_equal(m.op, EDI_DOP_MONITOR_P_EXIT);
    assert_view_eq(m.from, name);
    assert_view_eq(m.reason, reason);
    flags |= EDI_DFLAG_EXIT_PAYLOAD;
    BUILD(edi_dist_build_monitor_p_exit(&b, flags, p1, p2, ref, reason));
    assert_int_equal(m.op, EDI_DOP_PAYLOAD_MONITOR_P_EXIT);
    assert_view_eq(m.from, p1);
    assert_view_eq(m.to, p2);
    assert_view_eq(m.ref, ref);
    assert_view_eq(m.reason, reason);

    BUILD(edi_dist_build_monitor_p(&b, flags, p1, p2, ref));
    assert_int_equal(m.op, EDI_DOP_MONITOR_P);
    assert_view_eq(m.to, p2);
    assert_null(m.to_name.ptr);
    assert_view_eq(m.ref, ref);
    BUILD(edi_dist_build_monitor_p(&b, flags, p1, name, ref));
    assert_view_eq(m.to_name, name);
    BUILD(edi_dist_build_demonitor_p(&b, flags, p1, name, ref));
    assert_int_equal(m.op, EDI_DOP_DEMONITOR_P);
    assert_view_eq(m.to, name);

    edist_term_view opts = T("[link, {reply_tag, t}]");
    edist_term_view args = T("[1, two, \"three\"]");
    BUILD(edi_dist_build_spawn_request(&b, flags, NULL, ref, p1, gl, "mod",
                                       "fun", 3, opts, args));
    assert_int_equal(m.op, EDI_DOP_SPAWN_REQUEST);
    assert_view_eq(m.ref, ref);
    assert_view_eq(m.from, p1);
    assert_view_eq(m.group_leader, gl);
    assert_view_text(m.mfa, "{mod, 'fun', 3}");
    assert_true(edist_atom_eq(&m.spawn_module, "mod"));
    assert_true(edist_atom_eq(&m.spawn_function, "fun"));
    assert_int_equal(m.spawn_arity, 3);
    assert_view_eq(m.options, opts);
    assert_view_eq(m.payload, args);
    BUILD(edi_dist_build_spawn_request(&b, flags, &tok, ref, p1, gl, "mod",
                                       "fun", 3, T("[]"), args));
    assert_int_equal(m.op, EDI_DOP_SPAWN_REQUEST_TT);
    assert_view_eq(m.token, tok);
    assert_view_text(m.options, "[]");

    BUILD(edi_dist_build_spawn_reply(
        &b, flags, NULL, ref, p1, EDI_SPAWN_FLAG_LINK | EDI_SPAWN_FLAG_MONITOR,
        p2));
    assert_int_equal(m.op, EDI_DOP_SPAWN_REPLY);
    assert_view_eq(m.ref, ref);
    assert_view_eq(m.to, p1);
    assert_true(m.flags == 3);
    assert_view_eq(m.result, p2);
    BUILD(edi_dist_build_spawn_reply(&b, flags, &tok, ref, p1, 0,
                                     T("system_limit")));
    assert_int_equal(m.op, EDI_DOP_SPAWN_REPLY_TT);
    assert_view_text(m.result, "system_limit");
    assert_view_eq(m.token, tok);

    BUILD(edi_dist_build_altact_sig_send(&b, flags, EDI_ALTACT_FLG_PRIO, NULL,
                                         p1, p2, msg));
    assert_int_equal(m.op, EDI_DOP_ALTACT_SIG_SEND);
    assert_true(m.flags == EDI_ALTACT_FLG_PRIO);
    assert_view_eq(m.from, p1);
    assert_view_eq(m.to, p2);
    assert_view_eq(m.payload, msg);
    assert_null(m.reason.ptr);
    BUILD(edi_dist_build_altact_sig_send(
        &b, flags, EDI_ALTACT_FLG_ALIAS | EDI_ALTACT_FLG_EXIT, &tok, p1, ref,
        reason));
    assert_true(m.flags == (EDI_ALTACT_FLG_ALIAS | EDI_ALTACT_FLG_EXIT |
                            EDI_ALTACT_FLG_TOKEN));
    assert_view_eq(m.ref, ref);
    assert_view_eq(m.token, tok);
    assert_view_eq(m.reason, reason);
    BUILD(edi_dist_build_altact_sig_send(&b, flags, EDI_ALTACT_FLG_NAME, NULL,
                                         p1, name, msg));
    assert_view_eq(m.to_name, name);

    /* A leading 131 on an argument is accepted and not doubled. */
    edist_buf ext;
    edist_buf_init(&ext);
    edist_enc_version(&ext);
    edist_enc_raw(&ext, msg.ptr, msg.len);
    BUILD(edi_dist_build_send(&b, flags, NULL, p2,
                              (edist_term_view){ext.data, ext.len}));
    assert_view_eq(m.payload, msg);
    assert_int_equal(m.payload.len, msg.len);
    edist_buf_free(&ext);
#undef BUILD
    edist_buf_free(&b);
}

static void test_roundtrip_header(void **state)
{
    (void)state;
    roundtrip_flags(F_HDR);
}

static void test_roundtrip_pass_through(void **state)
{
    (void)state;
    roundtrip_flags(F_PASS);
}

static void test_build_errors(void **state)
{
    (void)state;
    edist_term_view p1 = T("<0.1.0>"), msg = T("hi"), ref = T("#Ref<0.1.2.3>");
    edist_term_view none = {NULL, 0};
    static const uint8_t compressed[] = {131, 80, 0, 0, 0, 1, 0};
    edist_term_view z = {compressed, sizeof compressed};
    edist_buf b;
    edist_buf_init(&b);
    edist_buf_append(&b, "keep", 4);
    /* Missing peer flags. */
    assert_int_equal(edi_dist_build_send_sender(&b, 0, NULL, p1, p1, msg),
                     EDIST_EUNSUPPORTED);
    assert_int_equal(edi_dist_build_alias_send(&b, 0, NULL, p1, ref, msg),
                     EDIST_EUNSUPPORTED);
    assert_int_equal(edi_dist_build_unlink_id(&b, 0, 1, p1, p1),
                     EDIST_EUNSUPPORTED);
    assert_int_equal(edi_dist_build_spawn_reply(&b, 0, NULL, ref, p1, 0, p1),
                     EDIST_EUNSUPPORTED);
    assert_int_equal(edi_dist_build_spawn_request(&b, 0, NULL, ref, p1, p1, "m",
                                                  "f", 0, T("[]"), T("[]")),
                     EDIST_EUNSUPPORTED);
    assert_int_equal(
        edi_dist_build_altact_sig_send(&b, F_HDR & ~EDI_DFLAG_ALTACT_SIG, 0,
                                       NULL, p1, p1, msg),
        EDIST_EUNSUPPORTED);
    /* Bad arguments. */
    assert_int_equal(edi_dist_build_send(&b, F_HDR, NULL, none, msg),
                     EDIST_EINVAL);
    assert_int_equal(edi_dist_build_send(&b, F_HDR, NULL, p1, none),
                     EDIST_EINVAL);
    assert_int_equal(edi_dist_build_send(&b, F_HDR, NULL, p1, z), EDIST_EINVAL);
    assert_int_equal(edi_dist_build_unlink_id(&b, F_HDR, 0, p1, p1),
                     EDIST_EINVAL);
    assert_int_equal(
        edi_dist_build_spawn_reply(&b, F_HDR, NULL, ref, p1, 1u << 27, p1),
        EDIST_EINVAL);
    assert_int_equal(edi_dist_build_spawn_request(&b, F_HDR, NULL, ref, p1, p1,
                                                  "m", "\xff", 0, T("[]"),
                                                  T("[]")),
                     EDIST_EINVAL);
    assert_int_equal(edi_dist_build_altact_sig_send(
                         &b, F_HDR, EDI_ALTACT_FLG_ALIAS | EDI_ALTACT_FLG_NAME,
                         NULL, p1, p1, msg),
                     EDIST_EINVAL);
    /* Nothing was appended, and the buffer is still usable. */
    assert_int_equal(b.len, 4);
    assert_int_equal(edist_buf_error(&b), 0);
    /* A fixed buffer that is too small: ENOSPC, length unchanged. */
    uint8_t small[16];
    edist_buf fb;
    edist_buf_init_fixed(&fb, small, sizeof small);
    assert_int_equal(edi_dist_build_send(&fb, F_HDR, NULL, p1, T("{a,b,c,d}")),
                     EDIST_ENOSPC);
    assert_int_equal(fb.len, 0);
    edist_buf_free(&b);
}

/* ---- malformed frames ---------------------------------------------------- */

/* Frame (without u32) in form 'p' (pass-through) or 'h' (header) from text;
 * payload may be NULL. */
static edist_buf mk(char form, const char *ctl, const char *payload)
{
    edist_buf b;
    edist_buf_init(&b);
    edist_term_view c = T(ctl);
    if (form == 'p') {
        edist_buf_append(&b, "\x70\x83", 2);
    } else {
        edist_buf_append(&b, "\x83\x44\x00", 3);
    }
    edist_buf_append(&b, c.ptr, c.len);
    if (payload) {
        edist_term_view p = T(payload);
        if (form == 'p')
            edist_enc_version(&b);
        edist_buf_append(&b, p.ptr, p.len);
    }
    return b;
}

static int parse_text(char form, const char *ctl, const char *payload)
{
    edist_buf b = mk(form, ctl, payload);
    edi_dist_msg m;
    int rc = edi_dist_parse(b.data, b.len, &m);
    edist_buf_free(&b);
    return rc;
}

static void test_malformed_fields(void **state)
{
    (void)state;
    char buf[512];
    /* Each valid control first, to make sure the failures below are about
     * the one field changed. */
    static const struct {
        const char *ctl, *payload;
    } good[] = {
        {"{1, <0.1.0>, <0.2.0>}", NULL},
        {"{2, '', <0.2.0>}", "m"},
        {"{6, <0.1.0>, '', name}", "m"},
        {"{19, <0.1.0>, name, #Ref<0.1.2.3>}", NULL},
        {"{21, name, <0.1.0>, #Ref<0.1.2.3>, r}", NULL},
        {"{22, <0.1.0>, <0.2.0>}", "m"},
        {"{29, #Ref<0.1.2.3>, <0.1.0>, <0.2.0>, {m, f, 1}, []}", "[a]"},
        {"{31, #Ref<0.1.2.3>, <0.1.0>, 3, <0.2.0>}", NULL},
        {"{33, <0.1.0>, #Ref<0.1.2.3>}", "m"},
        {"{35, 18446744073709551615, <0.1.0>, <0.2.0>}", NULL},
        {"{36, 0, <0.1.0>, <0.2.0>}", NULL},
        {"{37, 4, <0.1.0>, #Ref<0.1.2.3>}", "m"},
        {"{37, 123456789012345678901234567890, <0.1.0>, <0.2.0>, x, y}", "m"},
        {"{5}", NULL},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int rc = parse_text('h', good[i].ctl, good[i].payload);
        if (rc != 0)
            fail_msg("%s: %d %s", good[i].ctl, rc, edist_last_error());
        assert_int_equal(parse_text('p', good[i].ctl, good[i].payload), 0);
        tfree();
    }
    static const struct {
        const char *ctl, *payload;
    } bad[] = {
        /* wrong field types */
        {"{1, notpid, <0.2.0>}", NULL},
        {"{1, <0.1.0>, 7}", NULL},
        {"{2, '', name}", "m"},
        {"{6, name, '', name}", "m"},
        {"{6, <0.1.0>, '', \"name\"}", "m"},
        {"{6, <0.1.0>, '', <0.2.0>}", "m"},
        {"{7, <0.1.0>, x}", NULL},
        {"{3, <0.1.0>, 1, r}", NULL},
        {"{8, r, <0.1.0>, r}", NULL},
        {"{19, <0.1.0>, 1, #Ref<0.1.2.3>}", NULL},
        {"{19, <0.1.0>, name, notref}", NULL},
        {"{19, x, name, #Ref<0.1.2.3>}", NULL},
        {"{20, <0.1.0>, {name, node}, #Ref<0.1.2.3>}", NULL},
        {"{21, 1, <0.1.0>, #Ref<0.1.2.3>, r}", NULL},
        {"{21, name, name, #Ref<0.1.2.3>, r}", NULL},
        {"{28, name, <0.1.0>, <0.1.0>}", "r"},
        {"{22, x, <0.2.0>}", "m"},
        {"{24, <0.1.0>, x}", "r"},
        {"{29, notref, <0.1.0>, <0.2.0>, {m, f, 1}, []}", "[a]"},
        {"{29, #Ref<0.1.2.3>, x, <0.2.0>, {m, f, 1}, []}", "[a]"},
        {"{29, #Ref<0.1.2.3>, <0.1.0>, user, {m, f, 1}, []}", "[a]"},
        {"{29, #Ref<0.1.2.3>, <0.1.0>, <0.2.0>, {m, f}, []}", "[a]"},
        {"{29, #Ref<0.1.2.3>, <0.1.0>, <0.2.0>, {m, \"f\", 1}, []}", "[a]"},
        {"{29, #Ref<0.1.2.3>, <0.1.0>, <0.2.0>, {m, f, -1}, []}", "[a]"},
        {"{29, #Ref<0.1.2.3>, <0.1.0>, <0.2.0>, {m, f, 256}, []}", "[a]"},
        {"{29, #Ref<0.1.2.3>, <0.1.0>, <0.2.0>, [m, f, 1], []}", "[a]"},
        {"{29, #Ref<0.1.2.3>, <0.1.0>, <0.2.0>, {m, f, 1}, link}", "[a]"},
        {"{31, notref, <0.1.0>, 0, <0.2.0>}", NULL},
        {"{31, #Ref<0.1.2.3>, name, 0, <0.2.0>}", NULL},
        {"{31, #Ref<0.1.2.3>, <0.1.0>, -1, <0.2.0>}", NULL},
        {"{31, #Ref<0.1.2.3>, <0.1.0>, 134217728, <0.2.0>}", NULL},
        {"{31, #Ref<0.1.2.3>, <0.1.0>, x, <0.2.0>}", NULL},
        {"{31, #Ref<0.1.2.3>, <0.1.0>, 0, 42}", NULL},
        {"{33, <0.1.0>, <0.2.0>}", "m"},
        {"{33, name, #Ref<0.1.2.3>}", "m"},
        {"{35, 0, <0.1.0>, <0.2.0>}", NULL},
        {"{35, -1, <0.1.0>, <0.2.0>}", NULL},
        {"{35, 18446744073709551616, <0.1.0>, <0.2.0>}", NULL},
        {"{35, x, <0.1.0>, <0.2.0>}", NULL},
        {"{36, 1, <0.1.0>, x}", NULL},
        {"{37, -1, <0.1.0>, <0.2.0>}", "m"},
        {"{37, x, <0.1.0>, <0.2.0>}", "m"},
        {"{37, 0, x, <0.2.0>}", "m"},
        {"{37, 0, <0.1.0>, name}", "m"},
        {"{37, 4, <0.1.0>, <0.2.0>}", "m"},
        {"{37, 8, <0.1.0>, <0.2.0>}", "m"},
        {"{37, 12, <0.1.0>, #Ref<0.1.2.3>}", "m"},
        {"{37, 2, <0.1.0>, <0.2.0>}", "m"}, /* TOKEN flag, no token */
        /* wrong arities */
        {"{1, <0.1.0>}", NULL},
        {"{1, <0.1.0>, <0.2.0>, x}", NULL},
        {"{2, '', <0.2.0>, tok, extra}", "m"},
        {"{3, <0.1.0>, <0.2.0>}", NULL},
        {"{5, x}", NULL},
        {"{6, <0.1.0>, '', name, tok, extra}", "m"},
        {"{12, '', <0.2.0>}", "m"},
        {"{13, <0.1.0>, <0.2.0>, r}", NULL},
        {"{19, <0.1.0>, name}", NULL},
        {"{24, <0.1.0>, <0.2.0>, tok}", "r"},
        {"{25, <0.1.0>, <0.2.0>}", "r"},
        {"{28, name, <0.1.0>, #Ref<0.1.2.3>, r}", "r"},
        {"{30, #Ref<0.1.2.3>, <0.1.0>, <0.2.0>, {m, f, 1}, []}", "[a]"},
        {"{32, #Ref<0.1.2.3>, <0.1.0>, 0, <0.2.0>}", NULL},
        {"{35, 1, <0.1.0>}", NULL},
        {"{37, 0, <0.1.0>}", "m"},
        /* unknown ops, not a control tuple */
        {"{9, <0.1.0>}", NULL},
        {"{0}", NULL},
        {"{38, a, b, c}", NULL},
        {"{256}", NULL},
        {"{-1}", NULL},
        {"{x, y}", NULL},
        {"{}", NULL},
        {"link", NULL},
        {"[1, 2]", NULL},
        /* payload missing or unexpected */
        {"{2, '', <0.2.0>}", NULL},
        {"{6, <0.1.0>, '', name}", NULL},
        {"{29, #Ref<0.1.2.3>, <0.1.0>, <0.2.0>, {m, f, 1}, []}", NULL},
        {"{1, <0.1.0>, <0.2.0>}", "extra"},
        {"{31, #Ref<0.1.2.3>, <0.1.0>, 3, <0.2.0>}", "extra"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (int f = 0; f < 2; f++) {
            tfree();
            int rc = parse_text(f ? 'p' : 'h', bad[i].ctl, bad[i].payload);
            if (rc != EDIST_EPROTO)
                fail_msg("%c %s + %s: got %d (%s), want EPROTO", f ? 'p' : 'h',
                         bad[i].ctl, bad[i].payload ? bad[i].payload : "-", rc,
                         edist_last_error());
            /* The detail names the problem. */
            assert_true(strlen(edist_last_error()) > 0);
        }
    }
    snprintf(buf, sizeof buf, "%s", edist_last_error());
    printf("# e.g. detail: %s\n", buf);
    tfree();
}

static void test_malformed_frames(void **state)
{
    (void)state;
    edi_dist_msg m;
    /* Empty frame, unknown first bytes, fragments given to parse. */
    assert_int_equal(edi_dist_parse((const uint8_t *)"", 0, &m), EDIST_EINVAL);
    assert_int_equal(edi_dist_parse((const uint8_t *)"\x01", 1, &m),
                     EDIST_EPROTO);
    assert_int_equal(edi_dist_parse((const uint8_t *)"\x83", 1, &m),
                     EDIST_EPROTO);
    assert_int_equal(edi_dist_parse((const uint8_t *)"\x83\x43\x00", 3, &m),
                     EDIST_EPROTO);
    assert_int_equal(edi_dist_parse((const uint8_t *)"\x83\x45", 2, &m),
                     EDIST_EINVAL);
    assert_int_equal(edi_dist_parse((const uint8_t *)"\x83\x46", 2, &m),
                     EDIST_EINVAL);
    assert_int_equal(edi_dist_parse((const uint8_t *)"\x70", 1, &m),
                     EDIST_EVERSION);
    assert_int_equal(edi_dist_parse((const uint8_t *)"\x70\x68", 2, &m),
                     EDIST_EVERSION);
    assert_int_equal(edi_dist_parse((const uint8_t *)"\x83\x44", 2, &m),
                     EDIST_ETRUNC);
    assert_int_equal(edi_dist_parse((const uint8_t *)"\x83\x44\x00", 3, &m),
                     EDIST_ETRUNC);

    /* Header form with 131 before the control (erts refuses it). */
    edist_buf b = mk('p', "{1, <0.1.0>, <0.2.0>}", NULL);
    b.data[0] = 131; /* 131, 131, ... */
    uint8_t hdr131[256];
    hdr131[0] = 131;
    hdr131[1] = 68;
    hdr131[2] = 0;
    memcpy(hdr131 + 3, b.data + 1, b.len - 1);
    assert_int_equal(edi_dist_parse(hdr131, b.len + 2, &m), EDIST_EPROTO);
    edist_buf_free(&b);
    /* Pass-through payload without its 131. */
    b = mk('h', "{2, '', <0.2.0>}", "m");
    edist_buf pb;
    edist_buf_init(&pb);
    edist_buf_append(&pb, "\x70\x83", 2);
    edist_buf_append(&pb, b.data + 3, b.len - 3);
    assert_int_equal(edi_dist_parse(pb.data, pb.len, &m), EDIST_EVERSION);
    edist_buf_free(&pb);
    edist_buf_free(&b);

    /* Atom cache refs: parsed (bounded), refused as unsupported. One new
     * entry, segment 0, index 5, short atom "foo"; then the control. */
    edist_term_view ctl = T("{1, <0.1.0>, <0.2.0>}");
    uint8_t ac[300] = {131, 68, 1, 0x08, 5, 3, 'f', 'o', 'o'};
    memcpy(ac + 9, ctl.ptr, ctl.len);
    assert_int_equal(edi_dist_parse(ac, 9 + ctl.len, &m), EDIST_EUNSUPPORTED);
    printf("# atom cache: %s\n", edist_last_error());
    for (size_t cut = 3; cut < 9; cut++)
        assert_int_equal(edi_dist_parse(ac, cut, &m), EDIST_ETRUNC);
    /* Two refs, long atoms (flag in half-byte 2), one old one new. */
    uint8_t ac2[] = {131, 68, 2, 0x80, 0x01, 7, 9, 0, 2, 'h', 'i'};
    assert_int_equal(edi_dist_parse(ac2, sizeof ac2, &m), EDIST_EUNSUPPORTED);
    assert_int_equal(edi_dist_parse(ac2, sizeof ac2 - 1, &m), EDIST_ETRUNC);

    /* Truncations of valid frames: every cut inside the header or the
     * control message fails; cuts in the payload shorten the payload view
     * (the payload is the consumer's to decode) and stay inside the cut. */
    const struct {
        char form;
        const char *ctl, *payload;
    } frames[] = {
        {'h', "{6, <0.1.0>, '', net_kernel}", "{'$gen_call', x, y}"},
        {'p', "{6, <0.1.0>, '', net_kernel}", "{'$gen_call', x, y}"},
        {'h', "{29, #Ref<0.1.2.3>, <0.1.0>, <0.2.0>, {m, f, 1}, [link]}",
         "[a]"},
        {'p', "{31, #Ref<0.1.2.3>, <0.1.0>, 3, <0.2.0>}", NULL},
        {'h', "{35, 99999999999, <0.1.0>, <0.2.0>}", NULL},
    };
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        b = mk(frames[i].form, frames[i].ctl, frames[i].payload);
        assert_int_equal(edi_dist_parse(b.data, b.len, &m), 0);
        size_t ctl_end = (size_t)(m.control.ptr - b.data) + m.control.len;
        for (size_t cut = 0; cut < b.len; cut++) {
            /* A copy of exactly cut bytes, so ASan sees any overread. */
            uint8_t *c = malloc(cut ? cut : 1);
            memcpy(c, b.data, cut);
            int rc = edi_dist_parse(c, cut, &m);
            if (cut <= ctl_end + (frames[i].form == 'p' ? 1 : 0)) {
                if (rc >= 0)
                    fail_msg("frame %zu cut at %zu parsed", i, cut);
            } else if (rc == 0) {
                assert_true(m.payload.ptr + m.payload.len <= c + cut);
            }
            free(c);
        }
        edist_buf_free(&b);
    }
    tfree();
}

/* ---- fragments ----------------------------------------------------------- */

/* A SEND frame (header form) carrying a binary of n bytes of pattern seed. */
static void big_send(edist_buf *frame, size_t n, uint8_t seed,
                     edist_buf *payload)
{
    uint8_t *data = malloc(n);
    assert_non_null(data);
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)(seed + i * 7);
    edist_buf_init(payload);
    assert_int_equal(edist_enc_binary(payload, data, n), 0);
    free(data);
    edist_buf_init(frame);
    assert_int_equal(
        edi_dist_build_send(frame, F_HDR, NULL, T("<0.9.0>"),
                            (edist_term_view){payload->data, payload->len}),
        0);
}

static int feed_frame(edi_dist_reasm *r, const uint8_t *f, size_t len,
                      edi_dist_delivery *d)
{
    assert_true(len >= 4);
    assert_int_equal(be32(f), len - 4);
    return edi_dist_reasm_feed(r, f + 4, len - 4, d);
}

/* Frames with the same header and control message (one sender streaming
 * to one process) are parsed once: the reassembler delivers the next from
 * its cache, with the payload in the new frame, and a frame with another
 * control message, or the same one without a payload, is parsed afresh. */
static void test_reasm_control_cache(void **state)
{
    (void)state;
    for (int form = 0; form < 2; form++) {
        uint64_t flags = form ? F_PASS : F_HDR;
        edi_dist_reasm *r;
        assert_int_equal(edi_dist_reasm_create(NULL, &r), 0);
        static const char *msgs[] = {"{a, 1}", "{b, 22}", "hello", "{c, 3}"};
        static const char *tos[] = {"<0.9.0>", "<0.9.0>", "<0.9.0>", "<0.10.0>"};
        for (size_t i = 0; i < 4; i++) {
            edist_buf f;
            edist_buf_init(&f);
            assert_int_equal(edi_dist_build_send_sender(&f, flags, NULL,
                                                        T("<0.7.0>"), T(tos[i]),
                                                        T(msgs[i])),
                             0);
            /* its own copy: views into a frame that is gone would show */
            uint8_t *copy = malloc(f.len);
            assert_non_null(copy);
            memcpy(copy, f.data, f.len);
            edi_dist_delivery d;
            assert_int_equal(feed_frame(r, copy, f.len, &d), 1);
            assert_null(d.owned);
            assert_int_equal(d.msg->op, EDI_DOP_SEND_SENDER);
            edist_term_view want = T(msgs[i]);
            assert_int_equal(d.msg->payload.len, want.len);
            assert_memory_equal(d.msg->payload.ptr, want.ptr, want.len);
            /* the payload is in this frame; the control views of a kept
             * control message in the reassembler's copy (earlier frames
             * are zeroed and freed: a view of one would show) */
            assert_true(d.msg->payload.ptr > copy &&
                        d.msg->payload.ptr + d.msg->payload.len <= copy + f.len);
            size_t ctl_at = (size_t)(d.msg->payload.ptr - copy) -
                            d.msg->control.len - (form ? 1 : 0); /* 131 */
            assert_memory_equal(d.msg->control.ptr, copy + ctl_at,
                                d.msg->control.len);
            assert_true(d.msg->to.ptr >= d.msg->control.ptr &&
                        d.msg->to.ptr < d.msg->control.ptr + d.msg->control.len);
            /* the memo lives as long as its control message: what the
             * first delivery kept is there for the next with the same
             * bytes, and gone for another control message */
            edi_dist_memo *memo = d.msg->memo;
            assert_non_null(memo);
            if (i == 0 || i == 3)
                assert_false(memo->resolved);
            else
                assert_true(memo->resolved && memo->to.id == 9);
            memo->resolved = true;
            memo->to.id = d.msg->to_pid.id;
            edist_atom tn = d.msg->to_pid.node;
            assert_true(tn.len > 0 && memchr(tn.ptr, '@', tn.len) != NULL);
            assert_true(d.msg->from_is_pid && d.msg->to_is_pid);
            assert_int_equal(d.msg->from_pid.id, 7);
            assert_int_equal(d.msg->to_pid.id, i == 3 ? 10 : 9);
            if (i == 2) {
                /* the cached prefix alone: no payload, refused as parse
                 * refuses it */
                size_t cut = (size_t)(d.msg->payload.ptr - copy);
                edi_dist_delivery e;
                assert_true(edi_dist_reasm_feed(r, copy + 4, cut - 4, &e) < 0);
            }
            memset(copy, 0, f.len);
            free(copy);
            edist_buf_free(&f);
        }
        edi_dist_reasm_free(r);
    }
    tfree();
}

static void test_fragments_interleaved(void **state)
{
    (void)state;
    enum { N = 3 };
    static const size_t sizes[N] = {1u << 20, 10u << 20, (1u << 20) + 12345};
    edist_buf frames[N], payloads[N];
    edi_dist_frag fr[N];
    int64_t counts[N];
    for (int i = 0; i < N; i++) {
        big_send(&frames[i], sizes[i], (uint8_t)(i * 31), &payloads[i]);
        assert_true(edi_dist_needs_fragments(frames[i].len, F_HDR, 0));
        assert_false(edi_dist_needs_fragments(frames[i].len, F_PASS, 0));
        counts[i] = edi_dist_frag_init(&fr[i], frames[i].data, frames[i].len,
                                       0x1000 + (uint64_t)i, 0);
        size_t body = frames[i].len - 7;
        int64_t want = 1 + (int64_t)((body - 65536 + 65535) / 65536);
        assert_int_equal(counts[i], want);
    }
    printf("# fragments: 1 MiB -> %lld, 10 MiB -> %lld\n", (long long)counts[0],
           (long long)counts[1]);

    edi_dist_reasm *r;
    assert_int_equal(edi_dist_reasm_create(NULL, &r), 0);
    edist_buf small, out;
    edist_buf_init(&small);
    edist_buf_init(&out);
    assert_int_equal(edi_dist_build_reg_send(&small, F_HDR, NULL, T("<0.1.0>"),
                                             T("n"), T("between")),
                     0);
    int delivered[N] = {0};
    int small_delivered = 0;
    int more[N] = {1, 1, 1};
    int first_seen[N] = {0};
    for (int round = 0; more[0] || more[1] || more[2]; round++) {
        for (int i = 0; i < N; i++) {
            if (!more[i])
                continue;
            edist_buf_reset(&out);
            if (i == 1) {
                /* zero-copy interface: gather the iovecs */
                uint8_t hdr[EDI_DIST_FRAG_HDR_MAX_BYTES];
                struct iovec iov[2];
                int rc = edi_dist_frag_next_iov(&fr[i], hdr, iov);
                assert_true(rc >= 0);
                more[i] = rc;
                edist_buf_append(&out, iov[0].iov_base, iov[0].iov_len);
                edist_buf_append(&out, iov[1].iov_base, iov[1].iov_len);
            } else {
                int rc = edi_dist_frag_next(&fr[i], &out);
                assert_true(rc >= 0);
                more[i] = rc;
            }
            if (!first_seen[i]) {
                /* 131, 69, SeqId, FragId = count, 0 refs, then control. */
                first_seen[i] = 1;
                assert_int_equal(out.data[4], 131);
                assert_int_equal(out.data[5], 69);
                assert_true(be32(out.data + 6) == 0 &&
                            be32(out.data + 10) == 0x1000u + (uint32_t)i);
                assert_true(be32(out.data + 14) == 0 &&
                            be32(out.data + 18) == (uint32_t)counts[i]);
                assert_int_equal(out.data[22], 0);
                assert_int_equal(out.data[23], EDIST_TAG_SMALL_TUPLE);
                assert_true(out.len - 4 <= 19 + 65536);
            } else {
                assert_int_equal(out.data[5], 70);
                assert_true(out.len - 4 <= 18 + 65536);
            }
            edi_dist_delivery d;
            int rc = feed_frame(r, out.data, out.len, &d);
            assert_true(rc >= 0);
            if (rc == 1) {
                assert_false(more[i]);
                assert_non_null(d.owned);
                assert_int_equal(d.msg->op, EDI_DOP_SEND);
                assert_int_equal(d.msg->form, EDI_DIST_FRAG_HEADER);
                assert_int_equal(d.msg->payload.len, payloads[i].len);
                assert_memory_equal(d.msg->payload.ptr, payloads[i].data,
                                    payloads[i].len);
                free(d.owned);
                delivered[i]++;
            } else {
                assert_true(more[i]);
            }
        }
        /* Someone else's small message between fragments. */
        edi_dist_delivery d;
        assert_int_equal(feed_frame(r, small.data, small.len, &d), 1);
        assert_null(d.owned);
        assert_int_equal(d.msg->op, EDI_DOP_REG_SEND);
        small_delivered++;
        if (round == 3) {
            assert_int_equal(edi_dist_reasm_open_sequences(r), 3);
            assert_true(edi_dist_reasm_buffered_bytes(r) >= 3u * 4 * 65536);
        }
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(delivered[i], 1);
    assert_true(small_delivered >= 160);
    assert_int_equal(edi_dist_reasm_open_sequences(r), 0);
    assert_int_equal(edi_dist_reasm_buffered_bytes(r), 0);
    /* Done fragmenters refuse more. */
    assert_int_equal(edi_dist_frag_next(&fr[0], &out), EDIST_EINVAL);
    edi_dist_reasm_free(r);
    for (int i = 0; i < N; i++) {
        edist_buf_free(&frames[i]);
        edist_buf_free(&payloads[i]);
    }
    edist_buf_free(&small);
    edist_buf_free(&out);
    tfree();
}

static void test_fragment_edges(void **state)
{
    (void)state;
    edi_dist_frag f;
    edist_buf fb, out;
    edist_buf_init(&fb);
    edist_buf_init(&out);
    /* A frame that fits: one "fragment", the unchanged frame. */
    assert_int_equal(
        edi_dist_build_send(&fb, F_HDR, NULL, T("<0.1.0>"), T("small")), 0);
    assert_false(edi_dist_needs_fragments(fb.len, F_HDR, 0));
    assert_int_equal(edi_dist_frag_init(&f, fb.data, fb.len, 1, 0), 1);
    assert_int_equal(edi_dist_frag_next(&f, &out), 0);
    assert_int_equal(out.len, fb.len);
    assert_memory_equal(out.data, fb.data, fb.len);
    /* Tiny fragment size: the control is never split; every byte of the
     * payload arrives. */
    edist_buf_reset(&fb);
    assert_int_equal(
        edi_dist_build_reg_send(&fb, F_HDR, NULL, T("<0.1.0>"),
                                T("a_rather_long_name"),
                                T("{payload, <<1,2,3,4,5,6,7,8,9>>}")),
        0);
    int64_t n = edi_dist_frag_init(&f, fb.data, fb.len, 77, 5);
    assert_true(n > 5);
    edi_dist_reasm *r;
    assert_int_equal(edi_dist_reasm_create(NULL, &r), 0);
    edi_dist_delivery d;
    int rc, got = 0;
    for (int64_t i = 0; i < n; i++) {
        edist_buf_reset(&out);
        rc = edi_dist_frag_next(&f, &out);
        assert_int_equal(rc, i + 1 < n ? 1 : 0);
        if (i == 0) /* whole control in the first fragment */
            assert_true(out.len - 23 > 5);
        rc = feed_frame(r, out.data, out.len, &d);
        assert_int_equal(rc, i + 1 < n ? 0 : 1);
        if (rc == 1) {
            got = 1;
            assert_int_equal(d.msg->op, EDI_DOP_REG_SEND);
            assert_view_text(d.msg->to_name, "a_rather_long_name");
            assert_view_text(d.msg->payload, "{payload, <<1,2,3,4,5,6,7,8,9>>}");
            free(d.owned);
        }
    }
    assert_true(got);
    /* Errors: sequence 0, pass-through frames, garbage. */
    assert_int_equal(edi_dist_frag_init(&f, fb.data, fb.len, 0, 0),
                     EDIST_EINVAL);
    edist_buf_reset(&fb);
    assert_int_equal(
        edi_dist_build_send(&fb, F_PASS, NULL, T("<0.1.0>"), T("x")), 0);
    assert_int_equal(edi_dist_frag_init(&f, fb.data, fb.len, 1, 0),
                     EDIST_EINVAL);
    assert_int_equal(edi_dist_frag_init(&f, fb.data, 3, 1, 0), EDIST_EINVAL);
    edi_dist_reasm_free(r);
    edist_buf_free(&fb);
    edist_buf_free(&out);
    tfree();
}

/* Raw fragment frames (no u32) for the error cases. */
static size_t frag_first(uint8_t *o, uint64_t seq, uint64_t fid,
                         edist_term_view body)
{
    o[0] = 131;
    o[1] = 69;
    for (int i = 0; i < 8; i++) {
        o[2 + i] = (uint8_t)(seq >> (56 - 8 * i));
        o[10 + i] = (uint8_t)(fid >> (56 - 8 * i));
    }
    o[18] = 0;
    memcpy(o + 19, body.ptr, body.len);
    return 19 + body.len;
}

static size_t frag_cont(uint8_t *o, uint64_t seq, uint64_t fid,
                        const void *data, size_t n)
{
    o[0] = 131;
    o[1] = 70;
    for (int i = 0; i < 8; i++) {
        o[2 + i] = (uint8_t)(seq >> (56 - 8 * i));
        o[10 + i] = (uint8_t)(fid >> (56 - 8 * i));
    }
    memcpy(o + 18, data, n);
    return 18 + n;
}

static void test_reasm_errors(void **state)
{
    (void)state;
    edi_dist_reasm *r;
    edi_dist_delivery d;
    uint8_t f[4096];
    edist_term_view ctl = T("{2, '', <0.2.0>}");
    static const uint8_t part[] = {EDIST_TAG_BINARY, 0, 0, 0, 2, 'a', 'b'};
    assert_int_equal(edi_dist_reasm_create(NULL, &r), 0);

    /* Continuation of an unknown sequence. */
    assert_int_equal(edi_dist_reasm_feed(r, f, frag_cont(f, 5, 1, "x", 1), &d),
                     EDIST_EPROTO);
    printf("# %s\n", edist_last_error());
    /* Truncated fragment headers. */
    assert_int_equal(edi_dist_reasm_feed(r, f, 17, &d), EDIST_EPROTO);
    frag_first(f, 5, 3, ctl);
    assert_int_equal(edi_dist_reasm_feed(r, f, 18, &d), EDIST_EPROTO);
    /* FragmentId 0. */
    assert_int_equal(edi_dist_reasm_feed(r, f, frag_first(f, 5, 0, ctl), &d),
                     EDIST_EPROTO);
    assert_int_equal(edi_dist_reasm_open_sequences(r), 0);
    /* Out of order: 3 then 1. The sequence is dropped. */
    assert_int_equal(edi_dist_reasm_feed(r, f, frag_first(f, 5, 3, ctl), &d),
                     0);
    assert_int_equal(edi_dist_reasm_open_sequences(r), 1);
    assert_int_equal(edi_dist_reasm_feed(r, f, frag_cont(f, 5, 1, "x", 1), &d),
                     EDIST_EPROTO);
    printf("# %s\n", edist_last_error());
    assert_int_equal(edi_dist_reasm_open_sequences(r), 0);
    assert_int_equal(edi_dist_reasm_buffered_bytes(r), 0);
    /* A repeated id (3, 3) is out of order too. */
    assert_int_equal(edi_dist_reasm_feed(r, f, frag_first(f, 6, 3, ctl), &d),
                     0);
    assert_int_equal(edi_dist_reasm_feed(r, f, frag_cont(f, 6, 3, "x", 1), &d),
                     EDIST_EPROTO);
    /* A first fragment for an open sequence. */
    assert_int_equal(edi_dist_reasm_feed(r, f, frag_first(f, 7, 3, ctl), &d),
                     0);
    assert_int_equal(edi_dist_reasm_feed(r, f, frag_first(f, 7, 2, ctl), &d),
                     EDIST_EPROTO);
    /* ... which stays open and completes normally. */
    assert_int_equal(edi_dist_reasm_feed(r, f, frag_cont(f, 7, 2, part, 5), &d),
                     0);
    assert_int_equal(
        edi_dist_reasm_feed(r, f, frag_cont(f, 7, 1, part + 5, 2), &d), 0 + 1);
    assert_view_text(d.msg->payload, "<<\"ab\">>");
    free(d.owned);
    /* A one-fragment sequence (FragmentId 1) is delivered in place. */
    uint8_t one[64];
    size_t n = frag_first(one, 8, 1, ctl);
    memcpy(one + n, part, sizeof part);
    assert_int_equal(edi_dist_reasm_feed(r, one, n + sizeof part, &d), 1);
    assert_null(d.owned);
    assert_view_text(d.msg->payload, "<<\"ab\">>");
    /* A completed message whose control is bad: error, buffer freed. */
    edist_term_view badctl = T("{99, x}");
    assert_int_equal(edi_dist_reasm_feed(r, f, frag_first(f, 9, 2, badctl), &d),
                     0);
    assert_int_equal(edi_dist_reasm_feed(r, f, frag_cont(f, 9, 1, "", 0), &d),
                     EDIST_EPROTO);
    assert_int_equal(edi_dist_reasm_open_sequences(r), 0);
    /* Atom cache refs in a first fragment. */
    uint8_t ac[64] = {131, 69, 0, 0, 0, 0, 0, 0,    0, 10, 0,  0,
                      0,   0,  0, 0, 0, 2, 1, 0x08, 0, 1,  'x'};
    assert_int_equal(edi_dist_reasm_feed(r, ac, 23, &d), EDIST_EUNSUPPORTED);
    /* Unfragmented frames and garbage go through parse. */
    assert_int_equal(edi_dist_reasm_feed(r, (const uint8_t *)"\x99", 1, &d),
                     EDIST_EPROTO);
    assert_int_equal(edi_dist_reasm_feed(r, (const uint8_t *)"", 0, &d),
                     EDIST_EINVAL);
    /* Freeing with a sequence still open releases it (ASan checks). */
    assert_int_equal(edi_dist_reasm_feed(r, f, frag_first(f, 11, 4, ctl), &d),
                     0);
    assert_int_equal(edi_dist_reasm_open_sequences(r), 1);
    edi_dist_reasm_free(r);
    tfree();
}

static void test_reasm_limits(void **state)
{
    (void)state;
    edi_dist_reasm *r;
    edi_dist_delivery d;
    static uint8_t f[70000];
    static uint8_t data[65536];
    edist_term_view ctl = T("{2, '', <0.2.0>}");

    /* Open sequences. */
    edi_dist_reasm_limits lim = {.max_sequences = 2};
    assert_int_equal(edi_dist_reasm_create(&lim, &r), 0);
    assert_int_equal(edi_dist_reasm_feed(r, f, frag_first(f, 1, 5, ctl), &d),
                     0);
    assert_int_equal(edi_dist_reasm_feed(r, f, frag_first(f, 2, 5, ctl), &d),
                     0);
    assert_int_equal(edi_dist_reasm_feed(r, f, frag_first(f, 3, 5, ctl), &d),
                     EDIST_ENOMEM);
    printf("# %s\n", edist_last_error());
    assert_int_equal(edi_dist_reasm_open_sequences(r), 2);
    edi_dist_reasm_free(r);

    /* One message over max_message_bytes: dropped, memory released. */
    lim = (edi_dist_reasm_limits){.max_message_bytes = 200000};
    assert_int_equal(edi_dist_reasm_create(&lim, &r), 0);
    assert_int_equal(edi_dist_reasm_feed(r, f, frag_first(f, 1, 100, ctl), &d),
                     0);
    assert_true(edi_dist_reasm_buffered_bytes(r) <= 200000);
    int rc = 0;
    uint64_t fid = 99;
    for (; fid > 0 && rc == 0; fid--)
        rc = edi_dist_reasm_feed(r, f, frag_cont(f, 1, fid, data, sizeof data),
                                 &d);
    assert_int_equal(rc, EDIST_ENOMEM);
    assert_true(fid >= 95); /* failed on the 4th fragment (> 200000) */
    printf("# %s\n", edist_last_error());
    assert_int_equal(edi_dist_reasm_open_sequences(r), 0);
    assert_int_equal(edi_dist_reasm_buffered_bytes(r), 0);
    edi_dist_reasm_free(r);

    /* Total over all sequences. */
    lim = (edi_dist_reasm_limits){.max_total_bytes = 300000};
    assert_int_equal(edi_dist_reasm_create(&lim, &r), 0);
    rc = 0;
    int fed = 0;
    for (uint64_t k = 0; k < 8 && rc == 0; k++) {
        rc = edi_dist_reasm_feed(r, f, frag_first(f, 10 + k, 3, ctl), &d);
        if (rc == 0)
            rc = edi_dist_reasm_feed(
                r, f, frag_cont(f, 10 + k, 2, data, sizeof data), &d);
        fed++;
        assert_true(edi_dist_reasm_buffered_bytes(r) <= 300000);
    }
    assert_int_equal(rc, EDIST_ENOMEM);
    assert_true(fed >= 3 && fed <= 5);
    printf("# total limit hit after %d sequences: %s\n", fed,
           edist_last_error());
    edi_dist_reasm_free(r);
    tfree();
}

/* ---- is_auth ------------------------------------------------------------- */

static void test_is_auth(void **state)
{
    (void)state;
    edist_buf b;
    edi_dist_msg m;
    edist_term_view from, tag, node;
    edist_buf_init(&b);
    const char *call =
        "{'$gen_call', {<0.5.0>, [alias | #Ref<0.1.2.3>]}, {is_auth, 'x@y'}}";
    assert_int_equal(edi_dist_build_reg_send(&b, F_HDR, NULL, T("<0.5.0>"),
                                             T("net_kernel"), T(call)),
                     0);
    assert_int_equal(parse_built(&b, &m), 0);
    assert_int_equal(edi_dist_match_is_auth(&m, &from, &tag, &node), 1);
    assert_view_text(from, "<0.5.0>");
    assert_view_text(tag, "[alias | #Ref<0.1.2.3>]");
    assert_view_text(node, "'x@y'");

    /* Reply: ALIAS_SEND to the alias when ALIAS is negotiated ... */
    edist_buf rb;
    edist_buf_init(&rb);
    edist_term_view self = T("<0.77.0>");
    assert_int_equal(edi_dist_build_is_auth_reply(&rb, F_HDR, self, from, tag),
                     0);
    assert_int_equal(parse_built(&rb, &m), 0);
    assert_int_equal(m.op, EDI_DOP_ALIAS_SEND);
    assert_view_eq(m.from, self);
    assert_view_text(m.to, "#Ref<0.1.2.3>");
    assert_view_text(m.payload, "{[alias | #Ref<0.1.2.3>], yes}");
    /* ... else a SEND to From. */
    edist_buf_reset(&rb);
    assert_int_equal(edi_dist_build_is_auth_reply(&rb, F_HDR & ~EDI_DFLAG_ALIAS,
                                                  self, from, tag),
                     0);
    assert_int_equal(parse_built(&rb, &m), 0);
    assert_int_equal(m.op, EDI_DOP_SEND);
    assert_view_text(m.to, "<0.5.0>");
    assert_view_text(m.payload, "{[alias | #Ref<0.1.2.3>], yes}");
    /* The [[alias | Ref] | _] form and a plain ref tag. */
    edist_buf_reset(&rb);
    assert_int_equal(edi_dist_build_gen_reply(
                         &rb, F_HDR, self, from,
                         T("[[alias | #Ref<0.1.2.3>], extra]"), T("ok")),
                     0);
    assert_int_equal(parse_built(&rb, &m), 0);
    assert_int_equal(m.op, EDI_DOP_ALIAS_SEND);
    assert_view_text(m.to, "#Ref<0.1.2.3>");
    edist_buf_reset(&rb);
    assert_int_equal(edi_dist_build_gen_reply(&rb, F_HDR, self, from,
                                              T("#Ref<0.1.2.3>"), T("ok")),
                     0);
    assert_int_equal(parse_built(&rb, &m), 0);
    assert_int_equal(m.op, EDI_DOP_SEND);
    assert_view_text(m.payload, "{#Ref<0.1.2.3>, ok}");
    /* Pass-through peers get the same, in their form. */
    edist_buf_reset(&rb);
    assert_int_equal(edi_dist_build_is_auth_reply(&rb, 0, self, from, tag), 0);
    assert_int_equal(rb.data[4], 112);

    /* Other messages do not match. */
    static const char *others[] = {
        "{'$gen_call', {<0.5.0>, t}, {is_auth}}",
        "{'$gen_call', {<0.5.0>, t}, {is_auth, \"x\"}}",
        "{'$gen_call', {notpid, t}, {is_auth, x}}",
        "{'$gen_cast', {is_auth, x}}",
        "{'$gen_call', {<0.5.0>, t}, {is_auth, x}, extra}",
        "{'$gen_call', {<0.5.0>, t}, {other, x}}",
        "is_auth",
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        edist_buf_reset(&b);
        assert_int_equal(edi_dist_build_reg_send(&b, F_HDR, NULL, T("<0.5.0>"),
                                                 T("net_kernel"), T(others[i])),
                         0);
        assert_int_equal(parse_built(&b, &m), 0);
        assert_int_equal(edi_dist_match_is_auth(&m, NULL, NULL, NULL), 0);
    }
    edist_buf_reset(&b);
    assert_int_equal(edi_dist_build_link(&b, F_HDR, T("<0.1.0>"), T("<0.2.0>")),
                     0);
    assert_int_equal(parse_built(&b, &m), 0);
    assert_int_equal(edi_dist_match_is_auth(&m, NULL, NULL, NULL), 0);
    edist_buf_free(&b);
    edist_buf_free(&rb);
    tfree();
}

/* ---- live erl ------------------------------------------------------------ */

#define COOKIE "N3DISTMSGCOOKIE"
#define HOST "127.0.0.1"

static struct {
    peers_env env; /* temp HOME, our epmd */
    peers_repl erl;
    char erl_node[64];
    /* the distribution connection */
    int fd;
    uint64_t flags;
    char me[64];
    uint32_t creation;
    uint8_t *rx;
    size_t rx_have, rx_cap, rx_consumed;
    int64_t next_tick_ms;
    edi_dist_reasm *reasm;
    int frames_seen; /* non-tick frames read */
    /* our pids/refs, encoded */
    edi_dist_term_scratch s_pid1, s_pid2, s_ref1, s_ref2, s_repl;
    edist_term_view pid1, pid2, ref1, ref2, repl; /* repl: erl's REPL pid */
} g;

/* Keep the connection alive while we wait for anything: erl runs with
 * net_ticktime 4, so it needs to hear from us at least every second or so. */
static void maybe_tick(void)
{
    int64_t now = edi_hs_io_now_ms();
    if (g.fd >= 0 && now >= g.next_tick_ms) {
        static const uint8_t tick[4] = {0};
        (void)peers_write_all(g.fd, tick, 4);
        g.next_tick_ms = now + 800;
    }
}

/* Send an expression; "NODE" in it is replaced by our node name. */
static void subst_node(const char *in, char *out, size_t cap);
static void erl_send(const char *expr)
{
    char line[2048];
    subst_node(expr, line, sizeof line);
    assert_int_equal(peers_repl_send(&g.erl, line), 0);
}

static void erl_eval(const char *expr, char *res, size_t cap)
{
    erl_send(expr);
    if (peers_repl_result(&g.erl, res, cap, 15000, maybe_tick) != 0)
        fail_msg("no result from erl for %s", expr);
}

/* Replace NODE by our quoted node name. */
static void subst_node(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = in; *p && o + 80 < cap;) {
        if (strncmp(p, "NODE", 4) == 0) {
            o += (size_t)snprintf(out + o, cap - o, "'%s'", g.me);
            p += 4;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
}

/* Evaluate expr; its ~w result must be want (NODE substituted in both). */
static void erl_expect(const char *expr, const char *want)
{
    char res[4096], w[1024];
    erl_eval(expr, res, sizeof res);
    subst_node(want, w, sizeof w);
    if (strcmp(res, w) != 0)
        fail_msg("erl: %s -> %s, expected %s", expr, res, w);
}

/* Next distribution frame from erl (ticks skipped), or -1 on timeout or a
 * closed connection. *frame points into g.rx until the next call. */
static int recv_frame(const uint8_t **frame, size_t *len, int timeout_ms)
{
    int64_t end = edi_hs_io_now_ms() + timeout_ms;
    if (g.rx_consumed) {
        memmove(g.rx, g.rx + g.rx_consumed, g.rx_have - g.rx_consumed);
        g.rx_have -= g.rx_consumed;
        g.rx_consumed = 0;
    }
    for (;;) {
        while (g.rx_have >= 4) {
            uint32_t n = be32(g.rx);
            if (g.rx_have < 4 + (size_t)n)
                break;
            if (n == 0) {
                memmove(g.rx, g.rx + 4, g.rx_have - 4);
                g.rx_have -= 4;
                continue;
            }
            *frame = g.rx + 4;
            *len = n;
            g.rx_consumed = 4 + (size_t)n;
            g.frames_seen++;
            return 0;
        }
        maybe_tick();
        int64_t left = end - edi_hs_io_now_ms();
        if (left <= 0)
            return -1;
        if (g.rx_cap - g.rx_have < 65536) {
            size_t nc = g.rx_cap ? g.rx_cap * 2 : 1 << 20;
            g.rx = realloc(g.rx, nc);
            assert_non_null(g.rx);
            g.rx_cap = nc;
        }
        struct pollfd pf = {.fd = g.fd, .events = POLLIN};
        if (poll(&pf, 1, left > 300 ? 300 : (int)left) <= 0)
            continue;
        ssize_t r = read(g.fd, g.rx + g.rx_have, g.rx_cap - g.rx_have);
        if (r <= 0)
            return -1;
        g.rx_have += (size_t)r;
    }
}

static void hexhead(const char *what, const uint8_t *p, size_t n)
{
    char line[256];
    size_t o = 0;
    for (size_t i = 0; i < n && i < 40 && o + 4 < sizeof line; i++)
        o += (size_t)snprintf(line + o, sizeof line - o, "%u,", p[i]);
    if (o)
        line[o - 1] = '\0';
    else
        line[0] = '\0';
    printf("# erts %s (%zu bytes): <<%s%s>>\n", what, n, line,
           n > 40 ? ",..." : "");
}

/* The next complete message from erl (through the reassembler). Frames are
 * counted in *nframes if given. Fails the test on any parse error: every
 * frame erts sends must parse. */
static uint8_t *owned_last;
static void next_msg(edi_dist_msg *m, int *nframes)
{
    free(owned_last);
    owned_last = NULL;
    for (;;) {
        const uint8_t *f = NULL;
        size_t n = 0;
        if (recv_frame(&f, &n, 8000) != 0)
            fail_msg("no message from erl");
        if (nframes)
            (*nframes)++;
        edi_dist_delivery d;
        int rc = edi_dist_reasm_feed(g.reasm, f, n, &d);
        if (rc < 0) {
            hexhead("unparsable frame", f, n);
            fail_msg("cannot parse erts frame: %d %s", rc, edist_last_error());
        }
        if (rc == 1) {
            *m = *d.msg;
            owned_last = d.owned;
            if (d.owned == NULL) {
                static int shown[64];
                if (m->op > 0 && m->op < 64 && !shown[m->op]) {
                    shown[m->op] = 1;
                    hexhead(edi_dop_name(m->op), f, n);
                }
            }
            return;
        }
    }
}

/* Next message with this op; others (e.g. a DEMONITOR_P after a ping) are
 * parsed, printed and skipped. */
static void expect_op(int op, edi_dist_msg *m)
{
    for (int i = 0; i < 20; i++) {
        next_msg(m, NULL);
        if (m->op == op)
            return;
        printf("# (skipped %s)\n", edi_dop_name(m->op));
    }
    fail_msg("no %s from erl", edi_dop_name(op));
}

static void send_buf(const edist_buf *b)
{
    assert_int_equal(edist_buf_error(b), 0);
    assert_int_equal(peers_write_all(g.fd, b->data, b->len), 0);
}

/* Connect to erl as `tag` with the flags tweak; sets g.fd, g.flags, our
 * pids and refs. */
static int connect_erl(const char *tag, uint64_t flags_remove)
{
    snprintf(g.me, sizeof g.me, "n3%s%d@" HOST, tag, (int)getpid());
    char alive[64];
    snprintf(alive, sizeof alive, "%s", g.erl_node);
    *strchr(alive, '@') = '\0';
    uint16_t port = peers_epmd_port_please(g.env.epmd_port, alive);
    if (port == 0)
        return -1;
    int fd = -1;
    if (edi_hs_io_connect_tcp(HOST, port, edi_hs_io_now_ms() + 3000, &fd) < 0)
        return -1;
    g.creation = 0x4e330001;
    edi_hs hs;
    edi_hs_config cfg = {
        .role = EDI_HS_INITIATOR,
        .our_name = g.me,
        .our_creation = g.creation,
        .hidden = true,
        .peer_name = g.erl_node,
        .cookie = COOKIE,
        .flags_remove = flags_remove,
    };
    if (edi_hs_init(&hs, &cfg) != 0 ||
        edi_hs_io_run(&hs, fd, edi_hs_io_now_ms() + 7000) != 0) {
        fprintf(stderr, "handshake: %s\n", edi_hs_error(&hs));
        close(fd);
        return -1;
    }
    g.flags = edi_hs_get_result(&hs)->flags;
    edi_hs_wipe(&hs);
    g.fd = fd;
    g.rx_have = 0;
    g.rx_consumed = 0;
    g.next_tick_ms = 0;
    edi_dist_reasm_free(g.reasm);
    if (edi_dist_reasm_create(NULL, &g.reasm) != 0)
        return -1;
    edist_atom node = {g.me, (uint32_t)strlen(g.me), 0};
    edist_pid p1 = {node, 1, 0, g.creation}, p2 = {node, 2, 0, g.creation};
    edist_ref r1 = {node, g.creation, 3, {11, 12, 13}};
    edist_ref r2 = {node, g.creation, 3, {21, 22, 23}};
    if (edi_dist_pid_view(&p1, &g.s_pid1, &g.pid1) != 0 ||
        edi_dist_pid_view(&p2, &g.s_pid2, &g.pid2) != 0 ||
        edi_dist_ref_view(&r1, &g.s_ref1, &g.ref1) != 0 ||
        edi_dist_ref_view(&r2, &g.s_ref2, &g.ref2) != 0)
        return -1;
    return 0;
}

static void close_conn(void)
{
    if (g.fd >= 0)
        close(g.fd);
    g.fd = -1;
}

static int erl_setup(void **state)
{
    (void)state;
    memset(&g, 0, sizeof g);
    g.fd = -1;
    if (peers_env_setup(&g.env, "/tmp/edist-n3-XXXXXX", PEERS_TERM_GRACE_MS) !=
        0) {
        fprintf(stderr, "cannot set up HOME and start epmd\n");
        return -1;
    }
    char errlog[PATH_MAX + 16];
    snprintf(errlog, sizeof errlog, "%s/erl.stderr", g.env.dir);
    snprintf(g.erl_node, sizeof g.erl_node, "n3erl%d@" HOST, (int)getpid());
    if (peers_repl_start(&g.erl, g.erl_node, COOKIE, 4, errlog) != 0)
        return -1;
    if (connect_erl("dm", 0) != 0) {
        fprintf(stderr, "cannot connect to erl\n");
        return -1;
    }
    /* erl must hold all the flags the live tests rely on. */
    uint64_t need = EDI_DFLAG_FRAGMENTS | EDI_DFLAG_EXIT_PAYLOAD |
                    EDI_DFLAG_SEND_SENDER | EDI_DFLAG_SPAWN | EDI_DFLAG_ALIAS |
                    EDI_DFLAG_UNLINK_ID;
    if ((g.flags & need) != need) {
        fprintf(stderr, "negotiated flags 0x%llx lack 0x%llx\n",
                (unsigned long long)g.flags, (unsigned long long)need);
        return -1;
    }
    return 0;
}

static int erl_teardown(void **state)
{
    (void)state;
    free(owned_last);
    owned_last = NULL;
    close_conn();
    edi_dist_reasm_free(g.reasm);
    g.reasm = NULL;
    free(g.rx);
    g.rx = NULL;
    peers_repl_stop(&g.erl, PEERS_TERM_GRACE_MS);
    tfree();
    return peers_env_teardown(&g.env);
}

static void remember_repl(edist_term_view v)
{
    assert_true(v.len <= sizeof g.s_repl.bytes);
    memcpy(g.s_repl.bytes, v.ptr, v.len);
    g.repl = (edist_term_view){g.s_repl.bytes, v.len};
}

/* Our REG_SEND reaches a registered erl process: erts accepted our frame. */
static void test_erl_reg_send_in(void **state)
{
    (void)state;
    erl_expect("register(n3cap, spawn(fun() -> receive M -> "
               "persistent_term:put(n3, M) end end)).",
               "true");
    edist_buf b;
    edist_buf_init(&b);
    edist_buf msg;
    edist_buf_init(&msg);
    edist_enc_tuple(&msg, 3);
    edist_enc_atomz(&msg, "hello");
    edist_enc_raw(&msg, g.pid1.ptr, g.pid1.len);
    edist_enc_raw(&msg, g.ref1.ptr, g.ref1.len);
    assert_int_equal(
        edi_dist_build_reg_send(&b, g.flags, NULL, g.pid1, T("n3cap"),
                                (edist_term_view){msg.data, msg.len}),
        0);
    send_buf(&b);
    erl_expect("(fun W(0) -> none; W(N) -> case persistent_term:get(n3, none) "
               "of none -> timer:sleep(50), W(N-1); {hello, P, R} -> "
               "{node(P), node(R), is_reference(R)} end end)(100).",
               "{NODE,NODE,true}");
    edist_buf_free(&b);
    edist_buf_free(&msg);
}

/* SEND_SENDER from erl's REPL process: to = our pid, payload intact. */
static void test_erl_send_sender(void **state)
{
    (void)state;
    edi_dist_msg m;
    erl_expect("begin {hello,P,_} = persistent_term:get(n3), "
               "P ! {msg, 1, <<\"bin\">>, \"str\", 3.5}, ok end.",
               "ok");
    expect_op(EDI_DOP_SEND_SENDER, &m);
    assert_int_equal(m.form, EDI_DIST_HEADER);
    assert_view_eq(m.to, g.pid1);
    assert_int_equal(edist_term_validate(m.payload.ptr, m.payload.len, NULL),
                     0);
    assert_view_text(m.payload, "{msg, 1, <<\"bin\">>, \"str\", 3.5}");
    edist_pid pid;
    assert_int_equal(edi_dist_view_pid(m.from, &pid), 0);
    assert_int_equal(pid.node.len, strlen(g.erl_node));
    assert_memory_equal(pid.node.ptr, g.erl_node, pid.node.len);
    remember_repl(m.from);
}

static void test_erl_reg_send_out(void **state)
{
    (void)state;
    edi_dist_msg m;
    erl_expect("{n3x, NODE} ! hello.", "hello");
    expect_op(EDI_DOP_REG_SEND, &m);
    assert_view_eq(m.from, g.repl);
    assert_view_text(m.to_name, "n3x");
    assert_view_text(m.payload, "hello");
}

static void test_erl_monitor(void **state)
{
    (void)state;
    edi_dist_msg m;
    char res[256];
    erl_eval("begin {hello,P,_} = persistent_term:get(n3), "
             "erlang:monitor(process, P) end.",
             res, sizeof res);
    expect_op(EDI_DOP_MONITOR_P, &m);
    assert_view_eq(m.from, g.repl);
    assert_view_eq(m.to, g.pid1);
    assert_null(m.to_name.ptr);
    edist_ref ref;
    assert_int_equal(edi_dist_view_ref(m.ref, &ref), 0);
    assert_true(ref.len >= 3);

    /* By name, then demonitor: same ref in both. */
    erl_expect("begin R = erlang:monitor(process, {n3name, NODE}), "
               "erlang:demonitor(R), ok end.",
               "ok");
    expect_op(EDI_DOP_MONITOR_P, &m);
    assert_view_text(m.to_name, "n3name");
    uint8_t mref[128];
    size_t mref_len = m.ref.len;
    assert_true(mref_len <= sizeof mref);
    memcpy(mref, m.ref.ptr, mref_len);
    expect_op(EDI_DOP_DEMONITOR_P, &m);
    assert_view_eq(m.from, g.repl);
    assert_view_text(m.to, "n3name");
    assert_view_eq(m.ref, (edist_term_view){mref, mref_len});
}

static void test_erl_link_exit(void **state)
{
    (void)state;
    edi_dist_msg m;
    erl_expect("begin {hello,P,_} = persistent_term:get(n3), "
               "spawn(fun() -> link(P), exit({boom, 42}) end), ok end.",
               "ok");
    expect_op(EDI_DOP_LINK, &m);
    assert_view_eq(m.to, g.pid1);
    uint8_t linker[128];
    size_t linker_len = m.from.len;
    memcpy(linker, m.from.ptr, linker_len);
    expect_op(EDI_DOP_PAYLOAD_EXIT, &m);
    assert_view_eq(m.from, (edist_term_view){linker, linker_len});
    assert_view_eq(m.to, g.pid1);
    assert_view_text(m.reason, "{boom, 42}");
    assert_true(m.reason.ptr == m.payload.ptr);

    erl_expect("begin {hello,P,_} = persistent_term:get(n3), "
               "exit(P, kill), ok end.",
               "ok");
    expect_op(EDI_DOP_PAYLOAD_EXIT2, &m);
    assert_view_eq(m.from, g.repl);
    assert_view_text(m.reason, "kill");
}

/* link + unlink from erl: LINK, UNLINK_ID; our UNLINK_ID_ACK is accepted
 * (erts would drop the connection on a bad one; checked by the next
 * round trip on the same connection). */
static void test_erl_unlink_id(void **state)
{
    (void)state;
    edi_dist_msg m;
    erl_expect("begin {hello,P,_} = persistent_term:get(n3), "
               "link(P), unlink(P), ok end.",
               "ok");
    expect_op(EDI_DOP_LINK, &m);
    expect_op(EDI_DOP_UNLINK_ID, &m);
    assert_true(m.unlink_id > 0);
    assert_view_eq(m.from, g.repl);
    assert_view_eq(m.to, g.pid1);
    edist_buf b;
    edist_buf_init(&b);
    assert_int_equal(
        edi_dist_build_unlink_id_ack(&b, g.flags, m.unlink_id, g.pid1, g.repl),
        0);
    send_buf(&b);
    edist_buf_free(&b);
    erl_expect("begin {hello,P,_} = persistent_term:get(n3), {links, L} = "
               "process_info(self(), links), lists:member(P, L) end.",
               "false");
}

static void test_erl_alias_group_leader(void **state)
{
    (void)state;
    edi_dist_msg m;
    erl_expect("begin {hello,_,R} = persistent_term:get(n3), "
               "R ! via_alias, ok end.",
               "ok");
    expect_op(EDI_DOP_ALIAS_SEND, &m);
    assert_view_eq(m.to, g.ref1);
    assert_view_eq(m.from, g.repl);
    assert_view_text(m.payload, "via_alias");

    erl_expect("begin {hello,P,_} = persistent_term:get(n3), "
               "group_leader(self(), P), ok end.",
               "ok");
    expect_op(EDI_DOP_GROUP_LEADER, &m);
    assert_view_eq(m.from, g.repl);
    assert_view_eq(m.to, g.pid1);
}

/* erl spawns on us; we answer with our SPAWN_REPLY, which erl receives. */
static void test_erl_spawn_request(void **state)
{
    (void)state;
    edi_dist_msg m;
    erl_expect("begin R = spawn_request(NODE, n3mod, n3fun, [1, two], "
               "[{reply_tag, n3tag}]), persistent_term:put(n3req, R), ok end.",
               "ok");
    expect_op(EDI_DOP_SPAWN_REQUEST, &m);
    assert_view_eq(m.from, g.repl);
    assert_true(edist_atom_eq(&m.spawn_module, "n3mod"));
    assert_true(edist_atom_eq(&m.spawn_function, "n3fun"));
    assert_int_equal(m.spawn_arity, 2);
    assert_view_text(m.payload, "[1, two]");
    edist_term_info info;
    edist_cursor c;
    edist_cursor_init(&c, m.group_leader.ptr, m.group_leader.len);
    assert_int_equal(edist_peek(&c, &info), 0);
    assert_int_equal(info.type, EDIST_TYPE_PID);
    printf("# erts spawn options: %s\n", show(m.options, g.me));

    edist_buf b;
    edist_buf_init(&b);
    assert_int_equal(
        edi_dist_build_spawn_reply(&b, g.flags, NULL, m.ref, m.from, 0, g.pid2),
        0);
    send_buf(&b);
    edist_buf_free(&b);
    erl_expect("begin R = persistent_term:get(n3req), receive "
               "{n3tag, R, ok, Pid} -> {node(Pid), is_pid(Pid)} "
               "after 5000 -> timeout end end.",
               "{NODE,true}");
}

/* A 1 MiB message from erl arrives in fragments (DFLAG_FRAGMENTS). */
static void test_erl_fragments_in(void **state)
{
    (void)state;
    edi_dist_msg m;
    int frames = 0;
    erl_expect("begin {hello,P,_} = persistent_term:get(n3), "
               "P ! {big, binary:copy(<<\"0123456789abcdef\">>, 65536)}, "
               "ok end.",
               "ok");
    next_msg(&m, &frames);
    assert_int_equal(m.op, EDI_DOP_SEND_SENDER);
    assert_int_equal(m.form, EDI_DIST_FRAG_HEADER);
    assert_non_null(owned_last);
    printf("# erts sent 1 MiB + header in %d fragments\n", frames);
    assert_true(frames >= 16);
    edist_cursor c;
    uint32_t n;
    edist_atom a;
    const uint8_t *bin;
    size_t len;
    edist_cursor_init(&c, m.payload.ptr, m.payload.len);
    assert_int_equal(edist_dec_tuple(&c, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(edist_dec_atom(&c, &a), 0);
    assert_true(edist_atom_eq(&a, "big"));
    assert_int_equal(edist_dec_binary(&c, &bin, &len), 0);
    assert_int_equal(len, 1u << 20);
    for (size_t i = 0; i < len; i++)
        if (bin[i] != (uint8_t) "0123456789abcdef"[i & 15])
            fail_msg("byte %zu differs", i);
    assert_int_equal(edi_dist_reasm_open_sequences(g.reasm), 0);
}

/* net_adm:ping from erl: the is_auth gen_call, answered by our builder,
 * first as ALIAS_SEND, then (connection flags without ALIAS) as SEND. */
static void ping_once(uint64_t flags)
{
    edi_dist_msg m;
    edist_term_view from, tag, node;
    erl_send("net_adm:ping(NODE).");
    for (int i = 0;; i++) {
        assert_true(i < 10);
        next_msg(&m, NULL);
        if (edi_dist_match_is_auth(&m, &from, &tag, &node) == 1)
            break;
        printf("# ping: %s before the call\n", edi_dop_name(m.op));
    }
    assert_int_equal(m.op, EDI_DOP_REG_SEND);
    assert_view_text(m.to_name, "net_kernel");
    printf("# is_auth tag: %s\n", show(tag, g.me));
    edist_buf b;
    edist_buf_init(&b);
    assert_int_equal(edi_dist_build_is_auth_reply(&b, flags, g.pid2, from, tag),
                     0);
    edi_dist_msg r;
    assert_int_equal(edi_dist_parse(b.data + 4, b.len - 4, &r), 0);
    printf("# replying with %s\n", edi_dop_name(r.op));
    send_buf(&b);
    edist_buf_free(&b);
    char res[64];
    assert_int_equal(
        peers_repl_result(&g.erl, res, sizeof res, 10000, maybe_tick), 0);
    assert_string_equal(res, "pong");
}

static void test_erl_ping(void **state)
{
    (void)state;
    ping_once(g.flags);
    ping_once(g.flags & ~EDI_DFLAG_ALIAS);
}

/* Our SEND and SEND_SENDER reach the REPL process; a fragmented 1 MiB SEND
 * with another sender's message between its fragments too. */
static void test_erl_send_and_fragments_out(void **state)
{
    (void)state;
    edist_buf b;
    edist_buf_init(&b);
    assert_int_equal(
        edi_dist_build_send(&b, g.flags, NULL, g.repl, T("{n3send, 1}")), 0);
    send_buf(&b);
    erl_expect("receive {n3send, X} -> X after 5000 -> timeout end.", "1");

    /* {n3big, <<1 MiB>>} from pid1 in fragments; {n3small, 2} from pid2
     * (SEND_SENDER) between them. */
    size_t n = 1u << 20;
    uint8_t *data = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)(i * 13 + 5);
    edist_buf msg;
    edist_buf_init(&msg);
    edist_enc_tuple(&msg, 2);
    edist_enc_atomz(&msg, "n3big");
    edist_enc_binary(&msg, data, n);
    free(data);
    edist_buf_reset(&b);
    assert_int_equal(
        edi_dist_build_send_sender(&b, g.flags, NULL, g.pid1, g.repl,
                                   (edist_term_view){msg.data, msg.len}),
        0);
    assert_true(edi_dist_needs_fragments(b.len, g.flags, 0));
    edi_dist_frag f;
    int64_t count = edi_dist_frag_init(&f, b.data, b.len, 0x4e33, 0);
    assert_true(count >= 16);
    edist_buf small, out;
    edist_buf_init(&small);
    edist_buf_init(&out);
    assert_int_equal(edi_dist_build_send_sender(&small, g.flags, NULL, g.pid2,
                                                g.repl, T("{n3small, 2}")),
                     0);
    int more = 1, k = 0;
    while (more) {
        edist_buf_reset(&out);
        more = edi_dist_frag_next(&f, &out);
        assert_true(more >= 0);
        send_buf(&out);
        if (++k == 3)
            send_buf(&small);
    }
    erl_expect("receive {n3small, X} -> X after 5000 -> timeout end.", "2");
    char want[64], res[128];
    snprintf(want, sizeof want, "{%zu,%lu}", n,
             (unsigned long)crc32(0L, msg.data + msg.len - n, (uInt)n));
    erl_eval("receive {n3big, B} -> {byte_size(B), erlang:crc32(B)} "
             "after 5000 -> timeout end.",
             res, sizeof res);
    assert_string_equal(res, want);
    edist_buf_free(&b);
    edist_buf_free(&msg);
    edist_buf_free(&small);
    edist_buf_free(&out);
}

/* Our MONITOR_P by name; erl's process dies; the DOWN comes back as
 * PAYLOAD_MONITOR_P_EXIT with our ref and its reason. */
static void test_erl_monitor_out(void **state)
{
    (void)state;
    erl_expect("begin register(n3mon, spawn(fun() -> receive go -> "
               "exit(done) end end)), ok end.",
               "ok");
    edist_buf b;
    edist_buf_init(&b);
    assert_int_equal(
        edi_dist_build_monitor_p(&b, g.flags, g.pid1, T("n3mon"), g.ref2), 0);
    send_buf(&b);
    /* Wait until erts has set the monitor up before killing. */
    erl_expect("(fun W(0) -> false; W(N) -> case process_info(whereis(n3mon), "
               "monitored_by) of {monitored_by, [_|_]} -> true; _ -> "
               "timer:sleep(50), W(N-1) end end)(100).",
               "true");
    erl_expect("n3mon ! go.", "go");
    edi_dist_msg m;
    expect_op(EDI_DOP_PAYLOAD_MONITOR_P_EXIT, &m);
    printf("# monitor by name: DOWN from %s\n", show(m.from, g.me));
    assert_view_eq(m.to, g.pid1);
    assert_view_eq(m.ref, g.ref2);
    assert_view_text(m.reason, "done");
    edist_buf_free(&b);
}

/* Our SPAWN_REQUEST: erlang:send({n3x, Us}, spawned) runs on erl; we get
 * its SPAWN_REPLY (our req id, a pid) and the message it sends. */
static void test_erl_spawn_out(void **state)
{
    (void)state;
    edist_buf b, args;
    edist_buf_init(&b);
    edist_buf_init(&args);
    edist_enc_list(&args, 2);
    edist_enc_tuple(&args, 2);
    edist_enc_atomz(&args, "n3x");
    edist_enc_atomz(&args, g.me);
    edist_enc_atomz(&args, "spawned");
    edist_enc_nil(&args);
    assert_int_equal(
        edi_dist_build_spawn_request(&b, g.flags, NULL, g.ref1, g.pid1, g.pid1,
                                     "erlang", "send", 2, T("[]"),
                                     (edist_term_view){args.data, args.len}),
        0);
    send_buf(&b);
    edi_dist_msg m;
    int got_reply = 0, got_msg = 0;
    while (!(got_reply && got_msg)) {
        next_msg(&m, NULL);
        if (m.op == EDI_DOP_SPAWN_REPLY) {
            assert_view_eq(m.ref, g.ref1);
            assert_view_eq(m.to, g.pid1);
            edist_pid pid;
            assert_int_equal(edi_dist_view_pid(m.result, &pid), 0);
            printf("# SPAWN_REPLY flags %llu result %s\n",
                   (unsigned long long)m.flags, show(m.result, g.me));
            got_reply = 1;
        } else if (m.op == EDI_DOP_REG_SEND) {
            assert_view_text(m.payload, "spawned");
            got_msg = 1;
        } else {
            printf("# (skipped %s)\n", edi_dop_name(m.op));
        }
    }
    edist_buf_free(&b);
    edist_buf_free(&args);
}

/* Our LINK and EXIT2 (PAYLOAD_EXIT2) to an erl process: it is killed and
 * erts tells us through the link (PAYLOAD_EXIT, reason killed). */
static void test_erl_link_exit2_out(void **state)
{
    (void)state;
    erl_expect("begin V = spawn(fun() -> receive _ -> ok end end), "
               "register(n3victim, V), {n3x, NODE} ! {victim, V}, ok end.",
               "ok");
    edi_dist_msg m;
    expect_op(EDI_DOP_REG_SEND, &m);
    edist_cursor c;
    uint32_t n;
    edist_atom a;
    edist_term_view victim;
    edist_cursor_init(&c, m.payload.ptr, m.payload.len);
    assert_int_equal(edist_dec_tuple(&c, &n), 0);
    assert_int_equal(edist_dec_atom(&c, &a), 0);
    assert_int_equal(edist_dec_term(&c, &victim), 0);
    uint8_t vbuf[128];
    memcpy(vbuf, victim.ptr, victim.len);
    victim.ptr = vbuf;

    edist_buf b;
    edist_buf_init(&b);
    assert_int_equal(edi_dist_build_link(&b, g.flags, g.pid1, victim), 0);
    send_buf(&b);
    erl_expect("(fun W(0) -> false; W(N) -> case process_info(whereis("
               "n3victim), links) of {links, [_|_]} -> true; _ -> "
               "timer:sleep(50), W(N-1) end end)(100).",
               "true");
    edist_buf_reset(&b);
    assert_int_equal(
        edi_dist_build_exit2(&b, g.flags, NULL, g.pid1, victim, T("kill")), 0);
    send_buf(&b);
    expect_op(EDI_DOP_PAYLOAD_EXIT, &m);
    assert_view_eq(m.from, victim);
    assert_view_eq(m.to, g.pid1);
    assert_view_text(m.reason, "killed");
    erl_expect("whereis(n3victim).", "undefined");
    edist_buf_free(&b);
}

/* Without DFLAG_FRAGMENTS (and no atom cache) both sides use the
 * pass-through form: erts' 112 frames parse, ours are accepted. */
static void test_erl_pass_through(void **state)
{
    (void)state;
    close_conn();
    assert_int_equal(connect_erl("pt", EDI_DFLAG_FRAGMENTS), 0);
    assert_false(g.flags & EDI_DFLAG_FRAGMENTS);
    assert_false(edi_dist_uses_header(g.flags));
    erl_expect("register(n3cap2, spawn(fun() -> receive M -> "
               "persistent_term:put(n3b, M) end end)).",
               "true");
    edist_buf b, msg;
    edist_buf_init(&b);
    edist_buf_init(&msg);
    edist_enc_tuple(&msg, 2);
    edist_enc_atomz(&msg, "hello2");
    edist_enc_raw(&msg, g.pid1.ptr, g.pid1.len);
    assert_int_equal(
        edi_dist_build_reg_send(&b, g.flags, NULL, g.pid1, T("n3cap2"),
                                (edist_term_view){msg.data, msg.len}),
        0);
    assert_int_equal(b.data[4], 112);
    send_buf(&b);
    erl_expect("(fun W(0) -> none; W(N) -> case persistent_term:get(n3b, "
               "none) of none -> timer:sleep(50), W(N-1); {hello2, P} -> "
               "node(P) end end)(100).",
               "NODE");
    edi_dist_msg m;
    erl_expect("begin {hello2,P} = persistent_term:get(n3b), "
               "P ! {msg, 2}, erlang:monitor(process, P), ok end.",
               "ok");
    expect_op(EDI_DOP_SEND_SENDER, &m);
    assert_int_equal(m.form, EDI_DIST_PASS_THROUGH);
    assert_view_eq(m.to, g.pid1);
    assert_view_text(m.payload, "{msg, 2}");
    expect_op(EDI_DOP_MONITOR_P, &m);
    assert_int_equal(m.form, EDI_DIST_PASS_THROUGH);
    assert_view_eq(m.to, g.pid1);
    /* A big message is not fragmented on this connection. */
    int frames = 0;
    erl_expect("begin {hello2,P} = persistent_term:get(n3b), "
               "P ! binary:copy(<<7>>, 200000), ok end.",
               "ok");
    next_msg(&m, &frames);
    assert_int_equal(frames, 1);
    assert_int_equal(m.form, EDI_DIST_PASS_THROUGH);
    assert_int_equal(m.payload.len, 5 + 200000);
    ping_once(g.flags);
    edist_buf_free(&b);
    edist_buf_free(&msg);
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test_teardown(test_roundtrip_header, free_pool),
        cmocka_unit_test_teardown(test_roundtrip_pass_through, free_pool),
        cmocka_unit_test_teardown(test_build_errors, free_pool),
        cmocka_unit_test_teardown(test_malformed_fields, free_pool),
        cmocka_unit_test_teardown(test_malformed_frames, free_pool),
        cmocka_unit_test_teardown(test_reasm_control_cache, free_pool),
        cmocka_unit_test_teardown(test_fragments_interleaved, free_pool),
        cmocka_unit_test_teardown(test_fragment_edges, free_pool),
        cmocka_unit_test_teardown(test_reasm_errors, free_pool),
        cmocka_unit_test_teardown(test_reasm_limits, free_pool),
        cmocka_unit_test_teardown(test_is_auth, free_pool),
    };
    /* In order: later tests use what earlier ones set up on erl. */
    const struct CMUnitTest live[] = {
        cmocka_unit_test_teardown(test_erl_reg_send_in, free_pool),
        cmocka_unit_test_teardown(test_erl_send_sender, free_pool),
        cmocka_unit_test_teardown(test_erl_reg_send_out, free_pool),
        cmocka_unit_test_teardown(test_erl_monitor, free_pool),
        cmocka_unit_test_teardown(test_erl_link_exit, free_pool),
        cmocka_unit_test_teardown(test_erl_unlink_id, free_pool),
        cmocka_unit_test_teardown(test_erl_alias_group_leader, free_pool),
        cmocka_unit_test_teardown(test_erl_spawn_request, free_pool),
        cmocka_unit_test_teardown(test_erl_fragments_in, free_pool),
        cmocka_unit_test_teardown(test_erl_ping, free_pool),
        cmocka_unit_test_teardown(test_erl_send_and_fragments_out, free_pool),
        cmocka_unit_test_teardown(test_erl_monitor_out, free_pool),
        cmocka_unit_test_teardown(test_erl_spawn_out, free_pool),
        cmocka_unit_test_teardown(test_erl_link_exit2_out, free_pool),
        cmocka_unit_test_teardown(test_erl_pass_through, free_pool),
    };
    signal(SIGPIPE, SIG_IGN);
    int failed = cmocka_run_group_tests_name("dist_msg", pure, NULL, NULL);
    failed += cmocka_run_group_tests_name("dist_msg_erl", live, erl_setup,
                                          erl_teardown);
    return failed ? 1 : 0;
}
