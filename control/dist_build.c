/* SPDX-License-Identifier: Apache-2.0 */
/* Frame builders (sender). See dist_build.h; the erts behaviour this
 * follows is in erts/emulator/beam/dist.c (erts_dsig_send) and external.c
 * (erts_prepare_dist_ext, erts_encode_ext_dist_header_*). */
#include "control/dist_build.h"

#include <string.h>

#include "base/bytes.h"
#include "control/dist_flags.h"
#include "edist/error.h"

/* ---- building ------------------------------------------------------------ */

int edi_dist_uses_header(uint64_t flags)
{
    return (flags & (EDI_DFLAG_FRAGMENTS | EDI_DFLAG_DIST_HDR_ATOM_CACHE)) != 0;
}

static int scratch_done(edist_buf *b, edi_dist_term_scratch *s,
                        edist_term_view *out)
{
    if (b->err)
        return edist_set_error(b->err, "dist: cannot encode term");
    out->ptr = s->bytes;
    out->len = b->len;
    return 0;
}

int edi_dist_pid_view(const edist_pid *pid, edi_dist_term_scratch *s,
                      edist_term_view *out)
{
    edist_buf b;
    if (pid == NULL || s == NULL || out == NULL)
        return edist_set_error(EDIST_EINVAL, "dist: NULL argument");
    edist_buf_init_fixed(&b, s->bytes, sizeof s->bytes);
    edist_enc_pid(&b, pid);
    return scratch_done(&b, s, out);
}

int edi_dist_ref_view(const edist_ref *ref, edi_dist_term_scratch *s,
                      edist_term_view *out)
{
    edist_buf b;
    if (ref == NULL || s == NULL || out == NULL)
        return edist_set_error(EDIST_EINVAL, "dist: NULL argument");
    edist_buf_init_fixed(&b, s->bytes, sizeof s->bytes);
    edist_enc_ref(&b, ref);
    return scratch_done(&b, s, out);
}

int edi_dist_atom_view(const char *utf8, size_t len, edi_dist_term_scratch *s,
                       edist_term_view *out)
{
    edist_buf b;
    if ((utf8 == NULL && len > 0) || s == NULL || out == NULL)
        return edist_set_error(EDIST_EINVAL, "dist: NULL argument");
    edist_buf_init_fixed(&b, s->bytes, sizeof s->bytes);
    edist_enc_atom(&b, utf8 ? utf8 : "", len);
    return scratch_done(&b, s, out);
}

/* Normalise a caller's term argument: drop a leading 131, refuse empty and
 * compressed terms. */
static int norm(edist_term_view *v, const char *what)
{
    if (v->ptr == NULL || v->len == 0)
        return edist_set_error(EDIST_EINVAL, "dist build: missing %s", what);
    if (v->ptr[0] == EDIST_TAG_VERSION) {
        v->ptr++;
        v->len--;
        if (v->len == 0)
            return edist_set_error(EDIST_EINVAL, "dist build: empty %s", what);
    }
    if (v->ptr[0] == EDIST_TAG_COMPRESSED)
        return edist_set_error(EDIST_EINVAL,
                               "dist build: %s is a compressed term", what);
    return 0;
}

static int has_token(const edist_term_view *token)
{
    return token != NULL && token->ptr != NULL;
}

enum { EL_VIEW, EL_UINT, EL_EMPTY_ATOM };
typedef struct el {
    int kind;
    edist_term_view v;
    uint64_t u;
} el;

#define V(view) ((el){.kind = EL_VIEW, .v = (view)})
#define U(x) ((el){.kind = EL_UINT, .u = (x)})
#define EMPTY_ATOM ((el){.kind = EL_EMPTY_ATOM})

/* Append [u32 len][header][{op, els...}][payload] to out. Views in els and
 * payload must already be normalised. */
static int emit(edist_buf *out, uint64_t flags, int op, el *els, unsigned n,
                const edist_term_view *payload)
{
    if (out == NULL)
        return edist_set_error(EDIST_EINVAL, "dist build: NULL buffer");
    if (out->err)
        return out->err;
    int hdr = edi_dist_uses_header(flags);
    size_t start = out->len;
    size_t prefix = (flags & EDI_DIST_BUILD_BARE) ? 0 : 4;
    static const uint8_t zero_len[4] = {0};
    static const uint8_t header[3] = {EDIST_TAG_VERSION, EDI_DIST_HEADER, 0};
    static const uint8_t pass[2] = {EDI_DIST_PASS_THROUGH, EDIST_TAG_VERSION};
    edist_buf_append(out, zero_len, prefix);
    if (hdr)
        edist_buf_append(out, header, sizeof header);
    else
        edist_buf_append(out, pass, sizeof pass);
    edist_enc_tuple(out, n + 1);
    edist_enc_int(out, op);
    for (unsigned i = 0; i < n; i++) {
        switch (els[i].kind) {
        case EL_VIEW:
            edist_enc_raw(out, els[i].v.ptr, els[i].v.len);
            break;
        case EL_UINT:
            edist_enc_uint(out, els[i].u);
            break;
        case EL_EMPTY_ATOM:
            edist_enc_atom(out, "", 0);
            break;
        }
    }
    if (payload) {
        if (!hdr)
            edist_enc_version(out);
        edist_enc_raw(out, payload->ptr, payload->len);
    }
    if (out->err) {
        out->len = start;
        return edist_set_error(out->err, "dist build %s: buffer error",
                               edi_dop_name(op));
    }
    size_t frame_len = out->len - start - prefix;
    if (frame_len > UINT32_MAX) {
        out->len = start;
        return edist_set_error(EDIST_EINVAL,
                               "dist build %s: frame of %zu bytes exceeds "
                               "the u32 length",
                               edi_dop_name(op), frame_len);
    }
    if (prefix)
        edi_put_be32(out->data + start, (uint32_t)frame_len);
    return 0;
}

static int need_flag(uint64_t flags, uint64_t flag, const char *name, int op)
{
    if (flags & flag)
        return 0;
    return edist_set_error(EDIST_EUNSUPPORTED,
                           "dist build %s: peer did not negotiate %s",
                           edi_dop_name(op), name);
}

#define NORM(v, what)                                                          \
    do {                                                                       \
        int rc_ = norm(&(v), (what));                                          \
        if (rc_ < 0)                                                           \
            return rc_;                                                        \
    } while (0)

int edi_dist_build_send(edist_buf *out, uint64_t flags,
                        const edist_term_view *token, edist_term_view to,
                        edist_term_view msg)
{
    NORM(to, "to");
    NORM(msg, "message");
    if (has_token(token)) {
        edist_term_view t = *token;
        NORM(t, "token");
        el e[] = {EMPTY_ATOM, V(to), V(t)};
        return emit(out, flags, EDI_DOP_SEND_TT, e, 3, &msg);
    }
    el e[] = {EMPTY_ATOM, V(to)};
    return emit(out, flags, EDI_DOP_SEND, e, 2, &msg);
}

/* {op, A, B[, Token]} + payload: the shape of SEND_SENDER, ALIAS_SEND and
 * the PAYLOAD_EXIT(2) ops. */
static int two_tt_payload(edist_buf *out, uint64_t flags, int op, int op_tt,
                          const edist_term_view *token, edist_term_view a,
                          const char *a_what, edist_term_view b,
                          const char *b_what, edist_term_view payload,
                          const char *p_what)
{
    NORM(a, a_what);
    NORM(b, b_what);
    NORM(payload, p_what);
    if (has_token(token)) {
        edist_term_view t = *token;
        NORM(t, "token");
        el e[] = {V(a), V(b), V(t)};
        return emit(out, flags, op_tt, e, 3, &payload);
    }
    el e[] = {V(a), V(b)};
    return emit(out, flags, op, e, 2, &payload);
}

int edi_dist_build_send_sender(edist_buf *out, uint64_t flags,
                               const edist_term_view *token,
                               edist_term_view from, edist_term_view to,
                               edist_term_view msg)
{
    int rc = need_flag(flags, EDI_DFLAG_SEND_SENDER, "SEND_SENDER",
                       EDI_DOP_SEND_SENDER);
    if (rc < 0)
        return rc;
    return two_tt_payload(out, flags, EDI_DOP_SEND_SENDER,
                          EDI_DOP_SEND_SENDER_TT, token, from, "from", to, "to",
                          msg, "message");
}

/* NEW_PID_EXT with a SMALL_ATOM_UTF8_EXT node name; p has room. */
static uint8_t *put_pid(uint8_t *p, const edist_pid *pid)
{
    *p++ = EDIST_TAG_NEW_PID;
    *p++ = EDIST_TAG_SMALL_ATOM_UTF8;
    *p++ = (uint8_t)pid->node.len;
    memcpy(p, pid->node.ptr, pid->node.len);
    p += pid->node.len;
    edi_put_be32(p, pid->id);
    edi_put_be32(p + 4, pid->serial);
    edi_put_be32(p + 8, pid->creation);
    return p + 12;
}

/* Bytes of a SEND(_SENDER) header before the message: dist header or
 * pass-through, the tuple, the op, the pids (NEW_PID_EXT, small atom). */
static size_t send_head_max(bool sender, const edist_pid *from,
                            const edist_pid *to)
{
    return 3 + 2 + 2 + 2 + (15 + to->node.len) +
           (sender ? 15 + from->node.len : 0) + 1;
}

int edi_dist_build_send_pids_head(uint8_t *out, size_t cap, uint64_t flags,
                                  const edist_pid *from, const edist_pid *to,
                                  size_t *len)
{
    bool sender = (flags & EDI_DFLAG_SEND_SENDER) != 0;
    if (from->node.latin1 || to->node.latin1 || from->node.len > 255 ||
        to->node.len > 255)
        return edist_set_error(EDIST_EUNSUPPORTED,
                               "dist build SEND head: odd node name");
    size_t need = send_head_max(sender, from, to);
    if (need > cap)
        return edist_set_error(EDIST_ENOSPC, "dist build SEND head: %zu bytes",
                               need);
    int hdr = edi_dist_uses_header(flags);
    uint8_t *p = out;
    if (hdr) {
        *p++ = EDIST_TAG_VERSION;
        *p++ = EDI_DIST_HEADER;
        *p++ = 0;
    } else {
        *p++ = EDI_DIST_PASS_THROUGH;
        *p++ = EDIST_TAG_VERSION;
    }
    *p++ = EDIST_TAG_SMALL_TUPLE;
    *p++ = 3;
    *p++ = EDIST_TAG_SMALL_INTEGER;
    if (sender) {
        *p++ = EDI_DOP_SEND_SENDER;
        p = put_pid(p, from);
    } else {
        *p++ = EDI_DOP_SEND;
        *p++ = EDIST_TAG_SMALL_ATOM_UTF8;
        *p++ = 0;
    }
    p = put_pid(p, to);
    if (!hdr)
        *p++ = EDIST_TAG_VERSION;
    *len = (size_t)(p - out);
    return 0;
}

int edi_dist_build_send_headed(edist_buf *out, uint64_t flags,
                               const uint8_t *head, size_t head_len,
                               edist_term_view msg)
{
    if (msg.len > 0 && msg.ptr[0] == EDIST_TAG_VERSION) {
        msg.ptr++;
        msg.len--;
    }
    if (!out || out->err || msg.len == 0 || !msg.ptr ||
        msg.ptr[0] == EDIST_TAG_COMPRESSED)
        return EDIST_EAGAIN; /* the general builder says what is wrong */
    size_t prefix = (flags & EDI_DIST_BUILD_BARE) ? 0 : 4;
    size_t frame = head_len + msg.len;
    if (frame > UINT32_MAX)
        return edist_set_error(EDIST_EINVAL, "dist build SEND: frame of %zu "
                               "bytes exceeds the u32 length", frame);
    if (edist_buf_reserve(out, prefix + frame) != 0)
        return edist_set_error(out->err ? out->err : EDIST_ENOMEM,
                               "dist build SEND: buffer error");
    uint8_t *start = out->data + out->len;
    if (prefix)
        edi_put_be32(start, (uint32_t)frame);
    memcpy(start + prefix, head, head_len);
    memcpy(start + prefix + head_len, msg.ptr, msg.len);
    out->len += prefix + frame;
    return 0;
}

int edi_dist_build_send_pids(edist_buf *out, uint64_t flags,
                             const edist_pid *from, const edist_pid *to,
                             edist_term_view msg)
{
    bool sender = (flags & EDI_DFLAG_SEND_SENDER) != 0;
    uint8_t head[EDI_DIST_SEND_HEAD_MAX_BYTES];
    size_t head_len;
    if (edi_dist_build_send_pids_head(head, sizeof head, flags, from, to,
                                      &head_len) == 0) {
        int rc = edi_dist_build_send_headed(out, flags, head, head_len, msg);
        if (rc != EDIST_EAGAIN)
            return rc;
    }
    /* The general builder checks and reports what this one does not
     * handle: odd node names, missing or compressed messages. */
    if (msg.len > 0 && msg.ptr[0] == EDIST_TAG_VERSION) {
        msg.ptr++;
        msg.len--;
    }
    edist_term_view tv, fv;
    edi_dist_term_scratch ts, fs;
    int rc = edi_dist_pid_view(to, &ts, &tv);
    if (rc == 0 && sender)
        rc = edi_dist_pid_view(from, &fs, &fv);
    if (rc)
        return rc;
    return sender ? edi_dist_build_send_sender(out, flags, NULL, fv, tv, msg)
                  : edi_dist_build_send(out, flags, NULL, tv, msg);
}

int edi_dist_build_reg_send(edist_buf *out, uint64_t flags,
                            const edist_term_view *token, edist_term_view from,
                            edist_term_view to_name, edist_term_view msg)
{
    NORM(from, "from");
    NORM(to_name, "to_name");
    NORM(msg, "message");
    if (has_token(token)) {
        edist_term_view t = *token;
        NORM(t, "token");
        el e[] = {V(from), EMPTY_ATOM, V(to_name), V(t)};
        return emit(out, flags, EDI_DOP_REG_SEND_TT, e, 4, &msg);
    }
    el e[] = {V(from), EMPTY_ATOM, V(to_name)};
    return emit(out, flags, EDI_DOP_REG_SEND, e, 3, &msg);
}

int edi_dist_build_alias_send(edist_buf *out, uint64_t flags,
                              const edist_term_view *token,
                              edist_term_view from, edist_term_view alias,
                              edist_term_view msg)
{
    int rc = need_flag(flags, EDI_DFLAG_ALIAS, "ALIAS", EDI_DOP_ALIAS_SEND);
    if (rc < 0)
        return rc;
    return two_tt_payload(out, flags, EDI_DOP_ALIAS_SEND, EDI_DOP_ALIAS_SEND_TT,
                          token, from, "from", alias, "alias", msg, "message");
}

static int two(edist_buf *out, uint64_t flags, int op, edist_term_view a,
               edist_term_view b)
{
    NORM(a, "from");
    NORM(b, "to");
    el e[] = {V(a), V(b)};
    return emit(out, flags, op, e, 2, NULL);
}

int edi_dist_build_link(edist_buf *out, uint64_t flags, edist_term_view from,
                        edist_term_view to)
{
    return two(out, flags, EDI_DOP_LINK, from, to);
}

int edi_dist_build_unlink(edist_buf *out, uint64_t flags, edist_term_view from,
                          edist_term_view to)
{
    return two(out, flags, EDI_DOP_UNLINK, from, to);
}

int edi_dist_build_group_leader(edist_buf *out, uint64_t flags,
                                edist_term_view from, edist_term_view to)
{
    return two(out, flags, EDI_DOP_GROUP_LEADER, from, to);
}

static int unlink_id(edist_buf *out, uint64_t flags, int op, uint64_t id,
                     edist_term_view from, edist_term_view to)
{
    int rc = need_flag(flags, EDI_DFLAG_UNLINK_ID, "UNLINK_ID", op);
    if (rc < 0)
        return rc;
    if (id == 0)
        return edist_set_error(EDIST_EINVAL, "dist build %s: id 0",
                               edi_dop_name(op));
    NORM(from, "from");
    NORM(to, "to");
    el e[] = {U(id), V(from), V(to)};
    return emit(out, flags, op, e, 3, NULL);
}

int edi_dist_build_unlink_id(edist_buf *out, uint64_t flags, uint64_t id,
                             edist_term_view from, edist_term_view to)
{
    return unlink_id(out, flags, EDI_DOP_UNLINK_ID, id, from, to);
}

int edi_dist_build_unlink_id_ack(edist_buf *out, uint64_t flags, uint64_t id,
                                 edist_term_view from, edist_term_view to)
{
    return unlink_id(out, flags, EDI_DOP_UNLINK_ID_ACK, id, from, to);
}

static int exit_common(edist_buf *out, uint64_t flags,
                       const edist_term_view *token, edist_term_view from,
                       edist_term_view to, edist_term_view reason, int op,
                       int op_tt, int pop, int pop_tt)
{
    if (flags & EDI_DFLAG_EXIT_PAYLOAD)
        return two_tt_payload(out, flags, pop, pop_tt, token, from, "from", to,
                              "to", reason, "reason");
    NORM(from, "from");
    NORM(to, "to");
    NORM(reason, "reason");
    if (has_token(token)) {
        edist_term_view t = *token;
        NORM(t, "token");
        el e[] = {V(from), V(to), V(t), V(reason)};
        return emit(out, flags, op_tt, e, 4, NULL);
    }
    el e[] = {V(from), V(to), V(reason)};
    return emit(out, flags, op, e, 3, NULL);
}

int edi_dist_build_exit(edist_buf *out, uint64_t flags,
                        const edist_term_view *token, edist_term_view from,
                        edist_term_view to, edist_term_view reason)
{
    return exit_common(out, flags, token, from, to, reason, EDI_DOP_EXIT,
                       EDI_DOP_EXIT_TT, EDI_DOP_PAYLOAD_EXIT,
                       EDI_DOP_PAYLOAD_EXIT_TT);
}

int edi_dist_build_exit2(edist_buf *out, uint64_t flags,
                         const edist_term_view *token, edist_term_view from,
                         edist_term_view to, edist_term_view reason)
{
    return exit_common(out, flags, token, from, to, reason, EDI_DOP_EXIT2,
                       EDI_DOP_EXIT2_TT, EDI_DOP_PAYLOAD_EXIT2,
                       EDI_DOP_PAYLOAD_EXIT2_TT);
}

static int three(edist_buf *out, uint64_t flags, int op, edist_term_view a,
                 edist_term_view b, edist_term_view c)
{
    NORM(a, "from");
    NORM(b, "to");
    NORM(c, "ref");
    el e[] = {V(a), V(b), V(c)};
    return emit(out, flags, op, e, 3, NULL);
}

int edi_dist_build_monitor_p(edist_buf *out, uint64_t flags,
                             edist_term_view from, edist_term_view to_proc,
                             edist_term_view ref)
{
    return three(out, flags, EDI_DOP_MONITOR_P, from, to_proc, ref);
}

int edi_dist_build_demonitor_p(edist_buf *out, uint64_t flags,
                               edist_term_view from, edist_term_view to_proc,
                               edist_term_view ref)
{
    return three(out, flags, EDI_DOP_DEMONITOR_P, from, to_proc, ref);
}

int edi_dist_build_monitor_p_exit(edist_buf *out, uint64_t flags,
                                  edist_term_view from_proc, edist_term_view to,
                                  edist_term_view ref, edist_term_view reason)
{
    NORM(from_proc, "from");
    NORM(to, "to");
    NORM(ref, "ref");
    NORM(reason, "reason");
    if (flags & EDI_DFLAG_EXIT_PAYLOAD) {
        el e[] = {V(from_proc), V(to), V(ref)};
        return emit(out, flags, EDI_DOP_PAYLOAD_MONITOR_P_EXIT, e, 3, &reason);
    }
    el e[] = {V(from_proc), V(to), V(ref), V(reason)};
    return emit(out, flags, EDI_DOP_MONITOR_P_EXIT, e, 4, NULL);
}

int edi_dist_build_spawn_request(edist_buf *out, uint64_t flags,
                                 const edist_term_view *token,
                                 edist_term_view req_id, edist_term_view from,
                                 edist_term_view group_leader,
                                 const char *module, const char *function,
                                 uint32_t arg_count, edist_term_view opts,
                                 edist_term_view args)
{
    int rc = need_flag(flags, EDI_DFLAG_SPAWN, "SPAWN", EDI_DOP_SPAWN_REQUEST);
    if (rc < 0)
        return rc;
    if (module == NULL || function == NULL || arg_count > 255)
        return edist_set_error(EDIST_EINVAL,
                               "dist build SPAWN_REQUEST: bad M, F or arity");
    NORM(req_id, "req_id");
    NORM(from, "from");
    NORM(group_leader, "group_leader");
    NORM(opts, "opts");
    NORM(args, "args");
    /* Encode {M, F, A} aside first, so a bad atom fails before out is
     * touched (its errors are sticky). */
    uint8_t mfa_bytes[2 * (5 + EDIST_ATOM_MAX_BYTES) + 8];
    edist_buf mb;
    edist_buf_init_fixed(&mb, mfa_bytes, sizeof mfa_bytes);
    edist_enc_tuple(&mb, 3);
    edist_enc_atomz(&mb, module);
    edist_enc_atomz(&mb, function);
    edist_enc_int(&mb, arg_count);
    if (mb.err)
        return edist_set_error(EDIST_EINVAL,
                               "dist build SPAWN_REQUEST: bad module or "
                               "function name");
    edist_term_view mfa = {mfa_bytes, mb.len};
    if (has_token(token)) {
        edist_term_view t = *token;
        NORM(t, "token");
        el e[] = {V(req_id), V(from), V(group_leader), V(mfa), V(opts), V(t)};
        return emit(out, flags, EDI_DOP_SPAWN_REQUEST_TT, e, 6, &args);
    }
    el e[] = {V(req_id), V(from), V(group_leader), V(mfa), V(opts)};
    return emit(out, flags, EDI_DOP_SPAWN_REQUEST, e, 5, &args);
}

int edi_dist_build_spawn_reply(edist_buf *out, uint64_t flags,
                               const edist_term_view *token,
                               edist_term_view req_id, edist_term_view to,
                               uint32_t spawn_flags, edist_term_view result)
{
    int rc = need_flag(flags, EDI_DFLAG_SPAWN, "SPAWN", EDI_DOP_SPAWN_REPLY);
    if (rc < 0)
        return rc;
    if (spawn_flags >= (1u << 27))
        return edist_set_error(
            EDIST_EINVAL, "dist build SPAWN_REPLY: flags 0x%x", spawn_flags);
    NORM(req_id, "req_id");
    NORM(to, "to");
    NORM(result, "result");
    if (has_token(token)) {
        edist_term_view t = *token;
        NORM(t, "token");
        el e[] = {V(req_id), V(to), U(spawn_flags), V(result), V(t)};
        return emit(out, flags, EDI_DOP_SPAWN_REPLY_TT, e, 5, NULL);
    }
    el e[] = {V(req_id), V(to), U(spawn_flags), V(result)};
    return emit(out, flags, EDI_DOP_SPAWN_REPLY, e, 4, NULL);
}

int edi_dist_build_altact_sig_send(edist_buf *out, uint64_t flags,
                                   uint32_t sig_flags,
                                   const edist_term_view *token,
                                   edist_term_view sender, edist_term_view to,
                                   edist_term_view payload)
{
    int rc = need_flag(flags, EDI_DFLAG_ALTACT_SIG, "ALTACT_SIG",
                       EDI_DOP_ALTACT_SIG_SEND);
    if (rc < 0)
        return rc;
    if ((sig_flags & EDI_ALTACT_FLG_ALIAS) && (sig_flags & EDI_ALTACT_FLG_NAME))
        return edist_set_error(EDIST_EINVAL,
                               "dist build ALTACT_SIG_SEND: ALIAS and NAME");
    NORM(sender, "sender");
    NORM(to, "to");
    NORM(payload, "payload");
    sig_flags &= ~EDI_ALTACT_FLG_TOKEN;
    if (has_token(token)) {
        edist_term_view t = *token;
        NORM(t, "token");
        el e[] = {U(sig_flags | EDI_ALTACT_FLG_TOKEN), V(sender), V(to), V(t)};
        return emit(out, flags, EDI_DOP_ALTACT_SIG_SEND, e, 4, &payload);
    }
    el e[] = {U(sig_flags), V(sender), V(to)};
    return emit(out, flags, EDI_DOP_ALTACT_SIG_SEND, e, 3, &payload);
}

/* ---- net_kernel is_auth replies ------------------------------------------ */

int edi_dist_alias_of_tag(edist_term_view tag, edist_term_view *alias)
{
    edist_cursor c;
    uint32_t n;
    edist_atom a;
    edist_term_info info;
    edist_cursor_init(&c, tag.ptr, tag.len);
    if (edist_dec_list(&c, &n) < 0 || n < 1 || edist_peek(&c, &info) < 0)
        return 0;
    if (info.type == EDIST_TYPE_LIST) {
        /* [[alias | Ref] | _]: look inside the first element. */
        if (edist_dec_list(&c, &n) < 0 || n != 1)
            return 0;
    } else if (n != 1) {
        return 0;
    }
    if (edist_dec_atom(&c, &a) < 0 || !edist_atom_eq(&a, "alias") ||
        edist_peek(&c, &info) < 0 || info.type != EDIST_TYPE_REF ||
        edist_dec_term(&c, alias) < 0)
        return 0;
    return 1;
}

int edi_dist_build_gen_reply(edist_buf *out, uint64_t flags,
                             edist_term_view self, edist_term_view from,
                             edist_term_view tag, edist_term_view reply)
{
    NORM(tag, "tag");
    NORM(reply, "reply");
    edist_buf msg;
    edist_buf_init(&msg);
    edist_enc_tuple(&msg, 2);
    edist_enc_raw(&msg, tag.ptr, tag.len);
    edist_enc_raw(&msg, reply.ptr, reply.len);
    if (msg.err) {
        int e = msg.err;
        edist_buf_free(&msg);
        return edist_set_error(e, "dist gen reply: cannot encode");
    }
    edist_term_view m = {msg.data, msg.len};
    edist_term_view alias;
    int rc;
    if ((flags & EDI_DFLAG_ALIAS) && self.ptr != NULL && self.len > 0 &&
        edi_dist_alias_of_tag(tag, &alias))
        rc = edi_dist_build_alias_send(out, flags, NULL, self, alias, m);
    else
        rc = edi_dist_build_send(out, flags, NULL, from, m);
    edist_buf_free(&msg);
    return rc;
}

int edi_dist_build_is_auth_reply(edist_buf *out, uint64_t flags,
                                 edist_term_view self, edist_term_view from,
                                 edist_term_view tag)
{
    static const uint8_t yes[] = {EDIST_TAG_SMALL_ATOM_UTF8, 3, 'y', 'e', 's'};
    edist_term_view reply = {yes, sizeof yes};
    return edi_dist_build_gen_reply(out, flags, self, from, tag, reply);
}
