/* SPDX-License-Identifier: Apache-2.0 */
/* Distribution messages: parser, fragment reassembler, frame builders and
 * fragmenter. See dist_msg.h for the wire forms; the erts behaviour this
 * follows is in erts/emulator/beam/dist.c (erts_net_message, erts_dsig_send)
 * and external.c (erts_prepare_dist_ext, erts_encode_ext_dist_header_*). */
#include "control/dist_msg.h"

#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "control/dist_flags.h"
#include "edist/error.h"

/* ---- small helpers ------------------------------------------------------- */

static const char *const dop_names[] = {
    [EDI_DOP_LINK] = "LINK",
    [EDI_DOP_SEND] = "SEND",
    [EDI_DOP_EXIT] = "EXIT",
    [EDI_DOP_UNLINK] = "UNLINK",
    [EDI_DOP_NODE_LINK] = "NODE_LINK",
    [EDI_DOP_REG_SEND] = "REG_SEND",
    [EDI_DOP_GROUP_LEADER] = "GROUP_LEADER",
    [EDI_DOP_EXIT2] = "EXIT2",
    [EDI_DOP_SEND_TT] = "SEND_TT",
    [EDI_DOP_EXIT_TT] = "EXIT_TT",
    [EDI_DOP_REG_SEND_TT] = "REG_SEND_TT",
    [EDI_DOP_EXIT2_TT] = "EXIT2_TT",
    [EDI_DOP_MONITOR_P] = "MONITOR_P",
    [EDI_DOP_DEMONITOR_P] = "DEMONITOR_P",
    [EDI_DOP_MONITOR_P_EXIT] = "MONITOR_P_EXIT",
    [EDI_DOP_SEND_SENDER] = "SEND_SENDER",
    [EDI_DOP_SEND_SENDER_TT] = "SEND_SENDER_TT",
    [EDI_DOP_PAYLOAD_EXIT] = "PAYLOAD_EXIT",
    [EDI_DOP_PAYLOAD_EXIT_TT] = "PAYLOAD_EXIT_TT",
    [EDI_DOP_PAYLOAD_EXIT2] = "PAYLOAD_EXIT2",
    [EDI_DOP_PAYLOAD_EXIT2_TT] = "PAYLOAD_EXIT2_TT",
    [EDI_DOP_PAYLOAD_MONITOR_P_EXIT] = "PAYLOAD_MONITOR_P_EXIT",
    [EDI_DOP_SPAWN_REQUEST] = "SPAWN_REQUEST",
    [EDI_DOP_SPAWN_REQUEST_TT] = "SPAWN_REQUEST_TT",
    [EDI_DOP_SPAWN_REPLY] = "SPAWN_REPLY",
    [EDI_DOP_SPAWN_REPLY_TT] = "SPAWN_REPLY_TT",
    [EDI_DOP_ALIAS_SEND] = "ALIAS_SEND",
    [EDI_DOP_ALIAS_SEND_TT] = "ALIAS_SEND_TT",
    [EDI_DOP_UNLINK_ID] = "UNLINK_ID",
    [EDI_DOP_UNLINK_ID_ACK] = "UNLINK_ID_ACK",
    [EDI_DOP_ALTACT_SIG_SEND] = "ALTACT_SIG_SEND",
};

const char *edi_dop_name(int op)
{
    if (op <= 0 || (size_t)op >= sizeof dop_names / sizeof dop_names[0] ||
        dop_names[op] == NULL)
        return "UNKNOWN";
    return dop_names[op];
}

/* ---- parsing ------------------------------------------------------------- */

#define T_ANY 0u
#define T_BIT(t) (1u << (t))
#define T_PID T_BIT(EDIST_TYPE_PID)
#define T_REF T_BIT(EDIST_TYPE_REF)
#define T_ATOM T_BIT(EDIST_TYPE_ATOM)
#define T_LISTISH (T_BIT(EDIST_TYPE_LIST) | T_BIT(EDIST_TYPE_NIL))

static const char *types_text(unsigned mask)
{
    switch (mask) {
    case T_PID:
        return "a pid";
    case T_REF:
        return "a reference";
    case T_ATOM:
        return "an atom";
    case T_PID | T_ATOM:
        return "a pid or an atom";
    case T_LISTISH:
        return "a list";
    default:
        return "another type";
    }
}

/* Take the next element of op's control tuple as a view, checking its type
 * (mask of T_BIT(edist_type); T_ANY for any term). */
static int take_pid(edist_cursor *c, edist_term_view *v, edist_pid *pid,
                    bool *is_pid, unsigned mask, int op, const char *what)
{
    edist_term_info info;
    int rc = edist_peek(c, &info);
    if (rc < 0)
        return edist_set_error(rc, "dist %s: %s: malformed term at offset %zu",
                               edi_dop_name(op), what, c->err_offset);
    if (mask != T_ANY && !(mask & T_BIT(info.type)))
        return edist_set_error(EDIST_EPROTO, "dist %s: %s is not %s (tag %u)",
                               edi_dop_name(op), what, types_text(mask),
                               info.tag);
    if (pid && info.type == EDIST_TYPE_PID) {
        /* Decoded here, once: the kernel and the runtime use the result. */
        size_t start = c->pos;
        rc = edist_dec_pid(c, pid);
        if (rc == 0) {
            v->ptr = c->data + start;
            v->len = c->pos - start;
            *is_pid = true;
            return 0;
        }
    } else {
        rc = edist_dec_term(c, v);
    }
    if (rc < 0)
        return edist_set_error(rc, "dist %s: %s: malformed term at offset %zu",
                               edi_dop_name(op), what, c->err_offset);
    return 0;
}

static int take(edist_cursor *c, edist_term_view *v, unsigned mask, int op,
                const char *what)
{
    return take_pid(c, v, NULL, NULL, mask, op, what);
}

static int bad_arity(int op, uint32_t arity)
{
    return edist_set_error(EDIST_EPROTO, "dist %s: control tuple arity %u",
                           edi_dop_name(op), arity);
}

static const uint8_t dop_sig[] = {
    [EDI_DOP_LINK] = EDI_SIG_LINK,
    [EDI_DOP_SEND] = EDI_SIG_SEND,
    [EDI_DOP_EXIT] = EDI_SIG_EXIT,
    [EDI_DOP_UNLINK] = EDI_SIG_UNLINK,
    [EDI_DOP_REG_SEND] = EDI_SIG_REG_SEND,
    [EDI_DOP_EXIT2] = EDI_SIG_EXIT2,
    [EDI_DOP_SEND_TT] = EDI_SIG_SEND,
    [EDI_DOP_EXIT_TT] = EDI_SIG_EXIT,
    [EDI_DOP_REG_SEND_TT] = EDI_SIG_REG_SEND,
    [EDI_DOP_EXIT2_TT] = EDI_SIG_EXIT2,
    [EDI_DOP_MONITOR_P] = EDI_SIG_MONITOR,
    [EDI_DOP_DEMONITOR_P] = EDI_SIG_DEMONITOR,
    [EDI_DOP_MONITOR_P_EXIT] = EDI_SIG_MONITOR_EXIT,
    [EDI_DOP_SEND_SENDER] = EDI_SIG_SEND,
    [EDI_DOP_SEND_SENDER_TT] = EDI_SIG_SEND,
    [EDI_DOP_PAYLOAD_EXIT] = EDI_SIG_EXIT,
    [EDI_DOP_PAYLOAD_EXIT_TT] = EDI_SIG_EXIT,
    [EDI_DOP_PAYLOAD_EXIT2] = EDI_SIG_EXIT2,
    [EDI_DOP_PAYLOAD_EXIT2_TT] = EDI_SIG_EXIT2,
    [EDI_DOP_PAYLOAD_MONITOR_P_EXIT] = EDI_SIG_MONITOR_EXIT,
    [EDI_DOP_SPAWN_REQUEST] = EDI_SIG_SPAWN_REQUEST,
    [EDI_DOP_SPAWN_REQUEST_TT] = EDI_SIG_SPAWN_REQUEST,
    [EDI_DOP_SPAWN_REPLY] = EDI_SIG_SPAWN_REPLY,
    [EDI_DOP_SPAWN_REPLY_TT] = EDI_SIG_SPAWN_REPLY,
    [EDI_DOP_ALIAS_SEND] = EDI_SIG_SEND,
    [EDI_DOP_ALIAS_SEND_TT] = EDI_SIG_SEND,
    [EDI_DOP_UNLINK_ID] = EDI_SIG_UNLINK,
    [EDI_DOP_UNLINK_ID_ACK] = EDI_SIG_UNLINK_ACK,
};

edi_sig edi_dop_sig(int op)
{
    if (op < 0 || (size_t)op >= sizeof dop_sig)
        return EDI_SIG_NONE;
    return (edi_sig)dop_sig[op];
}

/* Does op carry a payload term after its control tuple? */
static int op_has_payload(int op)
{
    switch (op) {
    case EDI_DOP_SEND:
    case EDI_DOP_SEND_TT:
    case EDI_DOP_REG_SEND:
    case EDI_DOP_REG_SEND_TT:
    case EDI_DOP_SEND_SENDER:
    case EDI_DOP_SEND_SENDER_TT:
    case EDI_DOP_PAYLOAD_EXIT:
    case EDI_DOP_PAYLOAD_EXIT_TT:
    case EDI_DOP_PAYLOAD_EXIT2:
    case EDI_DOP_PAYLOAD_EXIT2_TT:
    case EDI_DOP_PAYLOAD_MONITOR_P_EXIT:
    case EDI_DOP_SPAWN_REQUEST:
    case EDI_DOP_SPAWN_REQUEST_TT:
    case EDI_DOP_ALIAS_SEND:
    case EDI_DOP_ALIAS_SEND_TT:
    case EDI_DOP_ALTACT_SIG_SEND:
        return 1;
    default:
        return 0;
    }
}

static void set_to(edi_dist_msg *m, edist_term_view v)
{
    m->to = v;
    if (v.len > 0 &&
        (v.ptr[0] == EDIST_TAG_ATOM_UTF8 ||
         v.ptr[0] == EDIST_TAG_SMALL_ATOM_UTF8 || v.ptr[0] == EDIST_TAG_ATOM ||
         v.ptr[0] == EDIST_TAG_SMALL_ATOM))
        m->to_name = v;
}

/* The control tuple's fields after the op, per op (erts_net_message checks
 * the same arities and types). */
static int parse_fields(edist_cursor *c, int op, uint32_t arity,
                        edi_dist_msg *m)
{
    edist_term_view unused;
    int rc = 0;
    switch (op) {
    case EDI_DOP_LINK:
    case EDI_DOP_UNLINK:
    case EDI_DOP_GROUP_LEADER:
        if (arity != 3)
            return bad_arity(op, arity);
        if ((rc = take_pid(c, &m->from, &m->from_pid, &m->from_is_pid, T_PID, op, "from")) < 0 ||
            (rc = take_pid(c, &m->to, &m->to_pid, &m->to_is_pid, T_PID, op, "to")) < 0)
            return rc;
        return 0;
    case EDI_DOP_SEND:
    case EDI_DOP_SEND_TT:
        if (arity != (op == EDI_DOP_SEND ? 3u : 4u))
            return bad_arity(op, arity);
        if ((rc = take(c, &unused, T_ANY, op, "unused")) < 0 ||
            (rc = take_pid(c, &m->to, &m->to_pid, &m->to_is_pid, T_PID, op, "to")) < 0)
            return rc;
        if (op == EDI_DOP_SEND_TT)
            rc = take(c, &m->token, T_ANY, op, "token");
        return rc;
    case EDI_DOP_SEND_SENDER:
    case EDI_DOP_SEND_SENDER_TT:
        if (arity != (op == EDI_DOP_SEND_SENDER ? 3u : 4u))
            return bad_arity(op, arity);
        if ((rc = take_pid(c, &m->from, &m->from_pid, &m->from_is_pid, T_PID, op, "from")) < 0 ||
            (rc = take_pid(c, &m->to, &m->to_pid, &m->to_is_pid, T_PID, op, "to")) < 0)
            return rc;
        if (op == EDI_DOP_SEND_SENDER_TT)
            rc = take(c, &m->token, T_ANY, op, "token");
        return rc;
    case EDI_DOP_REG_SEND:
    case EDI_DOP_REG_SEND_TT: {
        edist_term_view to;
        if (arity != (op == EDI_DOP_REG_SEND ? 4u : 5u))
            return bad_arity(op, arity);
        if ((rc = take_pid(c, &m->from, &m->from_pid, &m->from_is_pid, T_PID, op, "from")) < 0 ||
            (rc = take(c, &unused, T_ANY, op, "unused")) < 0 ||
            (rc = take(c, &to, T_ATOM, op, "to_name")) < 0)
            return rc;
        set_to(m, to);
        if (op == EDI_DOP_REG_SEND_TT)
            rc = take(c, &m->token, T_ANY, op, "token");
        return rc;
    }
    case EDI_DOP_ALIAS_SEND:
    case EDI_DOP_ALIAS_SEND_TT:
        if (arity != (op == EDI_DOP_ALIAS_SEND ? 3u : 4u))
            return bad_arity(op, arity);
        if ((rc = take_pid(c, &m->from, &m->from_pid, &m->from_is_pid, T_PID, op, "from")) < 0 ||
            (rc = take(c, &m->to, T_REF, op, "alias")) < 0)
            return rc;
        m->ref = m->to;
        if (op == EDI_DOP_ALIAS_SEND_TT)
            rc = take(c, &m->token, T_ANY, op, "token");
        return rc;
    case EDI_DOP_EXIT:
    case EDI_DOP_EXIT2:
    case EDI_DOP_EXIT_TT:
    case EDI_DOP_EXIT2_TT: {
        int tt = op == EDI_DOP_EXIT_TT || op == EDI_DOP_EXIT2_TT;
        if (arity != (tt ? 5u : 4u))
            return bad_arity(op, arity);
        if ((rc = take_pid(c, &m->from, &m->from_pid, &m->from_is_pid, T_PID, op, "from")) < 0 ||
            (rc = take_pid(c, &m->to, &m->to_pid, &m->to_is_pid, T_PID, op, "to")) < 0)
            return rc;
        if (tt && (rc = take(c, &m->token, T_ANY, op, "token")) < 0)
            return rc;
        return take(c, &m->reason, T_ANY, op, "reason");
    }
    case EDI_DOP_PAYLOAD_EXIT:
    case EDI_DOP_PAYLOAD_EXIT2:
    case EDI_DOP_PAYLOAD_EXIT_TT:
    case EDI_DOP_PAYLOAD_EXIT2_TT: {
        int tt =
            op == EDI_DOP_PAYLOAD_EXIT_TT || op == EDI_DOP_PAYLOAD_EXIT2_TT;
        if (arity != (tt ? 4u : 3u))
            return bad_arity(op, arity);
        if ((rc = take_pid(c, &m->from, &m->from_pid, &m->from_is_pid, T_PID, op, "from")) < 0 ||
            (rc = take_pid(c, &m->to, &m->to_pid, &m->to_is_pid, T_PID, op, "to")) < 0)
            return rc;
        if (tt)
            rc = take(c, &m->token, T_ANY, op, "token");
        return rc;
    }
    case EDI_DOP_MONITOR_P:
    case EDI_DOP_DEMONITOR_P: {
        edist_term_view to;
        if (arity != 4)
            return bad_arity(op, arity);
        if ((rc = take_pid(c, &m->from, &m->from_pid, &m->from_is_pid, T_PID, op, "from")) < 0 ||
            (rc = take(c, &to, T_PID | T_ATOM, op, "to")) < 0 ||
            (rc = take(c, &m->ref, T_REF, op, "ref")) < 0)
            return rc;
        set_to(m, to);
        return 0;
    }
    case EDI_DOP_MONITOR_P_EXIT:
    case EDI_DOP_PAYLOAD_MONITOR_P_EXIT:
        if (arity != (op == EDI_DOP_MONITOR_P_EXIT ? 5u : 4u))
            return bad_arity(op, arity);
        if ((rc = take_pid(c, &m->from, &m->from_pid, &m->from_is_pid, T_PID | T_ATOM, op, "from")) < 0 ||
            (rc = take_pid(c, &m->to, &m->to_pid, &m->to_is_pid, T_PID, op, "to")) < 0 ||
            (rc = take(c, &m->ref, T_REF, op, "ref")) < 0)
            return rc;
        if (op == EDI_DOP_MONITOR_P_EXIT)
            rc = take(c, &m->reason, T_ANY, op, "reason");
        return rc;
    case EDI_DOP_SPAWN_REQUEST:
    case EDI_DOP_SPAWN_REQUEST_TT: {
        if (arity != (op == EDI_DOP_SPAWN_REQUEST ? 6u : 7u))
            return bad_arity(op, arity);
        if ((rc = take(c, &m->ref, T_REF, op, "req_id")) < 0 ||
            (rc = take_pid(c, &m->from, &m->from_pid, &m->from_is_pid, T_PID, op, "from")) < 0 ||
            (rc = take(c, &m->group_leader, T_PID, op, "group_leader")) < 0 ||
            (rc = take(c, &m->mfa, T_BIT(EDIST_TYPE_TUPLE), op, "mfa")) < 0 ||
            (rc = take(c, &m->options, T_LISTISH, op, "options")) < 0)
            return rc;
        if (op == EDI_DOP_SPAWN_REQUEST_TT &&
            (rc = take(c, &m->token, T_ANY, op, "token")) < 0)
            return rc;
        /* {M, F, Arity}: already validated as a term; check its shape. */
        edist_cursor mc;
        uint32_t n;
        int64_t a;
        edist_cursor_init(&mc, m->mfa.ptr, m->mfa.len);
        if (edist_dec_tuple(&mc, &n) < 0 || n != 3 ||
            edist_dec_atom(&mc, &m->spawn_module) < 0 ||
            edist_dec_atom(&mc, &m->spawn_function) < 0 ||
            edist_dec_int64(&mc, &a) < 0 || a < 0 || a > 255)
            return edist_set_error(EDIST_EPROTO,
                                   "dist %s: mfa is not {Module, Function, "
                                   "Arity}",
                                   edi_dop_name(op));
        m->spawn_arity = (uint32_t)a;
        return 0;
    }
    case EDI_DOP_SPAWN_REPLY:
    case EDI_DOP_SPAWN_REPLY_TT: {
        int64_t f;
        if (arity != (op == EDI_DOP_SPAWN_REPLY ? 5u : 6u))
            return bad_arity(op, arity);
        if ((rc = take(c, &m->ref, T_REF, op, "req_id")) < 0 ||
            (rc = take_pid(c, &m->to, &m->to_pid, &m->to_is_pid, T_PID, op, "to")) < 0)
            return rc;
        /* erts: a small integer below 2^27. */
        if (edist_dec_int64(c, &f) < 0 || f < 0 || f >= (1 << 27))
            return edist_set_error(EDIST_EPROTO,
                                   "dist %s: flags is not a small "
                                   "non-negative integer",
                                   edi_dop_name(op));
        m->flags = (uint64_t)f;
        if ((rc = take(c, &m->result, T_PID | T_ATOM, op, "result")) < 0)
            return rc;
        if (op == EDI_DOP_SPAWN_REPLY_TT)
            rc = take(c, &m->token, T_ANY, op, "token");
        return rc;
    }
    case EDI_DOP_UNLINK_ID:
    case EDI_DOP_UNLINK_ID_ACK:
        if (arity != 4)
            return bad_arity(op, arity);
        if (edist_dec_uint64(c, &m->unlink_id) < 0 ||
            (op == EDI_DOP_UNLINK_ID && m->unlink_id == 0))
            return edist_set_error(EDIST_EPROTO,
                                   "dist %s: id is not an integer in "
                                   "[1, 2^64-1]",
                                   edi_dop_name(op));
        if ((rc = take_pid(c, &m->from, &m->from_pid, &m->from_is_pid, T_PID, op, "from")) < 0 ||
            (rc = take_pid(c, &m->to, &m->to_pid, &m->to_is_pid, T_PID, op, "to")) < 0)
            return rc;
        return 0;
    case EDI_DOP_NODE_LINK:
        if (arity != 1)
            return bad_arity(op, arity);
        return 0;
    case EDI_DOP_ALTACT_SIG_SEND: {
        /* {37, Flags, Sender, To[, Token], ...}: erts allows more elements
         * for future use and flags of any size (only the low byte means
         * something today). */
        int neg;
        const uint8_t *mag;
        size_t n;
        uint8_t tmp[8];
        edist_term_view to;
        if (arity < 4)
            return bad_arity(op, arity);
        if (edist_dec_integer(c, &neg, &mag, &n, tmp) < 0 || neg)
            return edist_set_error(EDIST_EPROTO,
                                   "dist %s: flags is not a non-negative "
                                   "integer",
                                   edi_dop_name(op));
        m->flags = 0;
        for (size_t i = 0; i < n && i < 8; i++)
            m->flags |= (uint64_t)mag[i] << (8 * i);
        if ((rc = take_pid(c, &m->from, &m->from_pid, &m->from_is_pid, T_PID, op, "sender")) < 0)
            return rc;
        unsigned mask = T_PID;
        if (m->flags & EDI_ALTACT_FLG_ALIAS) {
            if (m->flags & EDI_ALTACT_FLG_NAME)
                return edist_set_error(EDIST_EPROTO,
                                       "dist %s: both ALIAS and NAME flags",
                                       edi_dop_name(op));
            mask = T_REF;
        } else if (m->flags & EDI_ALTACT_FLG_NAME) {
            mask = T_ATOM;
        }
        if ((rc = take(c, &to, mask, op, "to")) < 0)
            return rc;
        set_to(m, to);
        if (mask == T_REF)
            m->ref = to;
        uint32_t used = 4;
        if (m->flags & EDI_ALTACT_FLG_TOKEN) {
            if (arity < 5)
                return bad_arity(op, arity);
            if ((rc = take(c, &m->token, T_ANY, op, "token")) < 0)
                return rc;
            used = 5;
        }
        for (; used < arity; used++)
            if ((rc = take(c, &unused, T_ANY, op, "extra element")) < 0)
                return rc;
        return 0;
    }
    default:
        return edist_set_error(EDIST_EPROTO, "dist: unknown operation %d", op);
    }
}

int edi_dist_parse_body(const uint8_t *body, size_t len, int with_version,
                        int form, edi_dist_msg *m)
{
    if (m == NULL || (body == NULL && len > 0))
        return edist_set_error(EDIST_EINVAL, "dist parse: NULL argument");
    memset(m, 0, sizeof *m);
    m->form = (uint8_t)form;
    size_t pos = 0;
    if (with_version) {
        if (len < 1 || body[0] != EDIST_TAG_VERSION)
            return edist_set_error(EDIST_EVERSION,
                                   "dist: control message without 131");
        pos = 1;
    } else if (len > 0 && body[0] == EDIST_TAG_VERSION) {
        /* erts refuses a 131 after a distribution header. */
        return edist_set_error(EDIST_EPROTO,
                               "dist: version byte after a distribution "
                               "header");
    }
    if (pos >= len)
        return edist_set_error(EDIST_ETRUNC, "dist: empty control message");

    edist_cursor c;
    edist_cursor_init(&c, body + pos, len - pos);
    uint32_t arity;
    int64_t op;
    int rc = edist_dec_tuple(&c, &arity);
    if (rc < 0)
        return edist_set_error(rc == EDIST_ETYPE ? EDIST_EPROTO : rc,
                               "dist: control message is not a tuple");
    if (arity < 1)
        return edist_set_error(EDIST_EPROTO, "dist: empty control tuple");
    if (edist_dec_int64(&c, &op) < 0 || op < 1 || op > 255)
        return edist_set_error(EDIST_EPROTO,
                               "dist: control tuple does not start with an "
                               "operation number");
    m->op = (int)op;
    m->sig = edi_dop_sig(m->op);
    if ((rc = parse_fields(&c, m->op, arity, m)) < 0)
        return rc;
    m->control.ptr = body + pos;
    m->control.len = c.pos;
    pos += c.pos;

    if (!op_has_payload(m->op)) {
        if (pos != len)
            return edist_set_error(EDIST_EPROTO,
                                   "dist %s: %zu unexpected bytes after the "
                                   "control message",
                                   edi_dop_name(m->op), len - pos);
        return 0;
    }
    if (with_version) {
        if (pos >= len || body[pos] != EDIST_TAG_VERSION)
            return edist_set_error(pos >= len ? EDIST_EPROTO : EDIST_EVERSION,
                                   "dist %s: %s", edi_dop_name(m->op),
                                   pos >= len ? "missing payload"
                                              : "payload without 131");
        pos++;
    }
    if (pos >= len)
        return edist_set_error(EDIST_EPROTO, "dist %s: missing payload",
                               edi_dop_name(m->op));
    m->payload.ptr = body + pos;
    m->payload.len = len - pos;
    if (m->op == EDI_DOP_PAYLOAD_EXIT || m->op == EDI_DOP_PAYLOAD_EXIT_TT ||
        m->op == EDI_DOP_PAYLOAD_EXIT2 || m->op == EDI_DOP_PAYLOAD_EXIT2_TT ||
        m->op == EDI_DOP_PAYLOAD_MONITOR_P_EXIT ||
        (m->op == EDI_DOP_ALTACT_SIG_SEND && (m->flags & EDI_ALTACT_FLG_EXIT)))
        m->reason = m->payload;
    return 0;
}

/* The atom-cache part of a header at p (NumberOfAtomCacheRefs first).
 * Sets *hdr_len to its length. With refs, walks them (bounded) so the
 * error says what was there, then refuses: see dist_msg.h. */
static int parse_cache_header(const uint8_t *p, size_t len, size_t *hdr_len)
{
    if (len < 1)
        return edist_set_error(EDIST_ETRUNC, "dist header: truncated");
    unsigned n = p[0];
    if (n == 0) {
        *hdr_len = 1;
        return 0;
    }
    size_t flag_bytes = n / 2 + 1;
    if (len < 1 + flag_bytes)
        return edist_set_error(EDIST_ETRUNC,
                               "dist header: truncated atom cache flags");
    const uint8_t *flags = p + 1;
    /* Half-byte i describes ref i (low nibble first); half-byte n holds
     * the long-atoms flag in its lowest bit. */
    int long_atoms = (flags[n / 2] >> ((n & 1) * 4)) & 1;
    size_t pos = 1 + flag_bytes;
    unsigned new_entries = 0;
    for (unsigned i = 0; i < n; i++) {
        unsigned nib = (flags[i / 2] >> ((i & 1) * 4)) & 0xf;
        if (pos >= len)
            return edist_set_error(EDIST_ETRUNC,
                                   "dist header: truncated atom cache ref");
        pos++; /* internal segment index */
        if (nib & 8) {
            size_t alen;
            new_entries++;
            if (long_atoms) {
                if (len - pos < 2)
                    return edist_set_error(EDIST_ETRUNC,
                                           "dist header: truncated atom");
                alen = edi_get_be16(p + pos);
                pos += 2;
            } else {
                if (len - pos < 1)
                    return edist_set_error(EDIST_ETRUNC,
                                           "dist header: truncated atom");
                alen = p[pos++];
            }
            if (len - pos < alen)
                return edist_set_error(EDIST_ETRUNC,
                                       "dist header: truncated atom text");
            pos += alen;
        }
    }
    *hdr_len = pos;
    return edist_set_error(EDIST_EUNSUPPORTED,
                           "dist header: %u atom cache refs (%u new) but "
                           "DIST_HDR_ATOM_CACHE was not negotiated",
                           n, new_entries);
}

int edi_dist_parse(const uint8_t *frame, size_t len, edi_dist_msg *msg)
{
    if (frame == NULL || msg == NULL || len == 0)
        return edist_set_error(EDIST_EINVAL,
                               "dist parse: empty frame (a tick?)");
    if (frame[0] == EDI_DIST_PASS_THROUGH)
        return edi_dist_parse_body(frame + 1, len - 1, 1, EDI_DIST_PASS_THROUGH,
                                   msg);
    if (frame[0] != EDIST_TAG_VERSION || len < 2)
        return edist_set_error(EDIST_EPROTO,
                               "dist: frame starts with %u, not 112 or 131",
                               frame[0]);
    switch (frame[1]) {
    case EDI_DIST_HEADER: {
        size_t hl;
        int rc = parse_cache_header(frame + 2, len - 2, &hl);
        if (rc < 0)
            return rc;
        return edi_dist_parse_body(frame + 2 + hl, len - 2 - hl, 0,
                                   EDI_DIST_HEADER, msg);
    }
    case EDI_DIST_FRAG_HEADER:
    case EDI_DIST_FRAG_CONT:
        return edist_set_error(EDIST_EINVAL,
                               "dist: a fragment; use the reassembler");
    default:
        return edist_set_error(
            EDIST_EPROTO, "dist: unknown distribution header %u", frame[1]);
    }
}

static int view_cursor(edist_term_view v, edist_cursor *c)
{
    if (v.ptr == NULL || v.len == 0)
        return edist_set_error(EDIST_ETYPE, "dist: absent term");
    edist_cursor_init(c, v.ptr, v.len);
    return 0;
}

int edi_dist_view_pid(edist_term_view v, edist_pid *pid)
{
    edist_cursor c;
    int rc = view_cursor(v, &c);
    return rc < 0 ? rc : edist_dec_pid(&c, pid);
}

int edi_dist_view_ref(edist_term_view v, edist_ref *ref)
{
    edist_cursor c;
    int rc = view_cursor(v, &c);
    return rc < 0 ? rc : edist_dec_ref(&c, ref);
}

int edi_dist_view_atom(edist_term_view v, edist_atom *atom)
{
    edist_cursor c;
    int rc = view_cursor(v, &c);
    return rc < 0 ? rc : edist_dec_atom(&c, atom);
}

/* ---- reassembly ---------------------------------------------------------- */

typedef struct reasm_seq {
    uint64_t id;
    uint64_t next_fragment_id; /* the id the next continuation must carry */
    uint8_t *buf;
    size_t len;
    size_t cap;
} reasm_seq;

struct edi_dist_reasm {
    edi_dist_reasm_limits lim;
    reasm_seq *seqs; /* open sequences, unordered */
    uint32_t n_seqs;
    uint32_t cap_seqs;
    size_t total_cap; /* bytes allocated for open sequences' buffers */
};

int edi_dist_reasm_create(const edi_dist_reasm_limits *limits,
                          edi_dist_reasm **out)
{
    if (out == NULL)
        return edist_set_error(EDIST_EINVAL, "reasm: NULL out");
    edi_dist_reasm *r = calloc(1, sizeof *r);
    if (r == NULL)
        return edist_set_error(EDIST_ENOMEM, "reasm: out of memory");
    if (limits)
        r->lim = *limits;
    if (r->lim.max_total_bytes == 0)
        r->lim.max_total_bytes = EDI_DIST_REASM_MAX_TOTAL_BYTES_DEFAULT;
    if (r->lim.max_message_bytes == 0 ||
        r->lim.max_message_bytes > r->lim.max_total_bytes)
        r->lim.max_message_bytes = r->lim.max_total_bytes;
    if (r->lim.max_sequences == 0)
        r->lim.max_sequences = EDI_DIST_REASM_MAX_SEQUENCES_DEFAULT;
    *out = r;
    return 0;
}

void edi_dist_reasm_free(edi_dist_reasm *r)
{
    if (r == NULL)
        return;
    for (uint32_t i = 0; i < r->n_seqs; i++)
        free(r->seqs[i].buf);
    free(r->seqs);
    free(r);
}

uint32_t edi_dist_reasm_open_sequences(const edi_dist_reasm *r)
{
    return r ? r->n_seqs : 0;
}

size_t edi_dist_reasm_buffered_bytes(const edi_dist_reasm *r)
{
    return r ? r->total_cap : 0;
}

static reasm_seq *seq_find(edi_dist_reasm *r, uint64_t id)
{
    for (uint32_t i = 0; i < r->n_seqs; i++)
        if (r->seqs[i].id == id)
            return &r->seqs[i];
    return NULL;
}

/* Forget s; its buffer is freed unless keep_buf. */
static void seq_drop(edi_dist_reasm *r, reasm_seq *s, int keep_buf)
{
    r->total_cap -= s->cap;
    if (!keep_buf)
        free(s->buf);
    *s = r->seqs[--r->n_seqs];
}

/* Make room for `add` more bytes in s within the limits. */
static int seq_grow(edi_dist_reasm *r, reasm_seq *s, size_t add)
{
    if (add > r->lim.max_message_bytes - s->len)
        return edist_set_error(EDIST_ENOMEM,
                               "reasm: sequence %llu exceeds the message "
                               "limit of %zu bytes",
                               (unsigned long long)s->id,
                               r->lim.max_message_bytes);
    size_t need = s->len + add;
    if (need <= s->cap)
        return 0;
    size_t want = s->cap > need / 2 ? s->cap * 2 : need;
    if (want > r->lim.max_message_bytes)
        want = r->lim.max_message_bytes;
    size_t budget = r->lim.max_total_bytes - (r->total_cap - s->cap);
    if (want > budget)
        want = budget;
    if (want < need)
        return edist_set_error(EDIST_ENOMEM,
                               "reasm: reassembly buffers exceed %zu bytes",
                               r->lim.max_total_bytes);
    uint8_t *nb = realloc(s->buf, want);
    if (nb == NULL)
        return edist_set_error(EDIST_ENOMEM, "reasm: out of memory");
    r->total_cap += want - s->cap;
    s->buf = nb;
    s->cap = want;
    return 0;
}

static int deliver_in_place(const uint8_t *frame, size_t len,
                            edi_dist_delivery *out)
{
    out->owned = NULL;
    out->owned_len = 0;
    int rc = edi_dist_parse(frame, len, &out->msg);
    return rc < 0 ? rc : 1;
}

static int feed_first(edi_dist_reasm *r, const uint8_t *frame, size_t len,
                      edi_dist_delivery *out)
{
    if (len < 2 + 16 + 1)
        return edist_set_error(EDIST_EPROTO, "reasm: truncated first "
                                             "fragment header");
    uint64_t seq = edi_get_be64(frame + 2);
    uint64_t fid = edi_get_be64(frame + 10);
    if (fid == 0)
        return edist_set_error(EDIST_EPROTO,
                               "reasm: fragment id 0 (sequence %llu)",
                               (unsigned long long)seq);
    size_t hl;
    int rc = parse_cache_header(frame + 18, len - 18, &hl);
    if (rc < 0)
        return rc;
    const uint8_t *body = frame + 18 + hl;
    size_t body_len = len - 18 - hl;
    if (seq_find(r, seq) != NULL)
        return edist_set_error(EDIST_EPROTO,
                               "reasm: first fragment for open sequence %llu",
                               (unsigned long long)seq);
    if (fid == 1) {
        /* A one-fragment sequence is a whole message. */
        out->owned = NULL;
        out->owned_len = 0;
        rc = edi_dist_parse_body(body, body_len, 0, EDI_DIST_FRAG_HEADER,
                                 &out->msg);
        return rc < 0 ? rc : 1;
    }
    if (r->n_seqs >= r->lim.max_sequences)
        return edist_set_error(EDIST_ENOMEM,
                               "reasm: more than %u open sequences",
                               r->lim.max_sequences);
    if (r->n_seqs == r->cap_seqs) {
        uint32_t nc = r->cap_seqs ? r->cap_seqs * 2 : 8;
        if (nc > r->lim.max_sequences)
            nc = r->lim.max_sequences;
        reasm_seq *ns = realloc(r->seqs, nc * sizeof *ns);
        if (ns == NULL)
            return edist_set_error(EDIST_ENOMEM, "reasm: out of memory");
        r->seqs = ns;
        r->cap_seqs = nc;
    }
    reasm_seq *s = &r->seqs[r->n_seqs++];
    memset(s, 0, sizeof *s);
    s->id = seq;
    s->next_fragment_id = fid - 1;
    /* Senders cut equal fragments, so fid * this one estimates the whole
     * message; seq_grow clips it to the limits, and a peer that lies only
     * gets what the limits allow anyway. */
    size_t hint = body_len;
    if (body_len > 0 && fid <= SIZE_MAX / body_len)
        hint = (size_t)fid * body_len;
    if (hint > r->lim.max_message_bytes)
        hint = r->lim.max_message_bytes;
    size_t budget = r->lim.max_total_bytes - r->total_cap;
    if (hint > budget)
        hint = budget;
    if (hint < body_len)
        hint = body_len;
    if ((rc = seq_grow(r, s, hint)) < 0) {
        seq_drop(r, s, 0);
        return rc;
    }
    /* An empty first fragment leaves buf NULL: memcpy must not see it. */
    if (body_len > 0)
        memcpy(s->buf, body, body_len);
    s->len = body_len;
    return 0;
}

static int feed_cont(edi_dist_reasm *r, const uint8_t *frame, size_t len,
                     edi_dist_delivery *out)
{
    if (len < 2 + 16)
        return edist_set_error(EDIST_EPROTO, "reasm: truncated fragment "
                                             "header");
    uint64_t seq = edi_get_be64(frame + 2);
    uint64_t fid = edi_get_be64(frame + 10);
    reasm_seq *s = seq_find(r, seq);
    if (s == NULL)
        return edist_set_error(
            EDIST_EPROTO, "reasm: fragment %llu of unknown sequence %llu",
            (unsigned long long)fid, (unsigned long long)seq);
    if (fid != s->next_fragment_id) {
        uint64_t want = s->next_fragment_id;
        seq_drop(r, s, 0);
        return edist_set_error(EDIST_EPROTO,
                               "reasm: sequence %llu: fragment %llu where "
                               "%llu was expected",
                               (unsigned long long)seq, (unsigned long long)fid,
                               (unsigned long long)want);
    }
    size_t add = len - 18;
    int rc = seq_grow(r, s, add);
    if (rc < 0) {
        seq_drop(r, s, 0);
        return rc;
    }
    if (add > 0)
        memcpy(s->buf + s->len, frame + 18, add);
    s->len += add;
    s->next_fragment_id--;
    if (fid > 1)
        return 0;

    uint8_t *buf = s->buf;
    size_t blen = s->len;
    seq_drop(r, s, 1);
    rc = edi_dist_parse_body(buf, blen, 0, EDI_DIST_FRAG_HEADER, &out->msg);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    out->owned = buf;
    out->owned_len = blen;
    return 1;
}

int edi_dist_reasm_feed(edi_dist_reasm *r, const uint8_t *frame, size_t len,
                        edi_dist_delivery *out)
{
    if (r == NULL || frame == NULL || out == NULL || len == 0)
        return edist_set_error(EDIST_EINVAL,
                               "reasm: empty frame (a tick?) or NULL");
    out->owned = NULL;
    out->owned_len = 0;
    if (frame[0] == EDI_DIST_PASS_THROUGH)
        return deliver_in_place(frame, len, out);
    if (frame[0] != EDIST_TAG_VERSION || len < 2)
        return edist_set_error(EDIST_EPROTO,
                               "dist: frame starts with %u, not 112 or 131",
                               frame[0]);
    switch (frame[1]) {
    case EDI_DIST_HEADER:
        return deliver_in_place(frame, len, out);
    case EDI_DIST_FRAG_HEADER:
        return feed_first(r, frame, len, out);
    case EDI_DIST_FRAG_CONT:
        return feed_cont(r, frame, len, out);
    default:
        return edist_set_error(
            EDIST_EPROTO, "dist: unknown distribution header %u", frame[1]);
    }
}

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
    static const uint8_t zero_len[4] = {0};
    static const uint8_t header[3] = {EDIST_TAG_VERSION, EDI_DIST_HEADER, 0};
    static const uint8_t pass[2] = {EDI_DIST_PASS_THROUGH, EDIST_TAG_VERSION};
    edist_buf_append(out, zero_len, 4);
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
    size_t frame_len = out->len - start - 4;
    if (frame_len > UINT32_MAX) {
        out->len = start;
        return edist_set_error(EDIST_EINVAL,
                               "dist build %s: frame of %zu bytes exceeds "
                               "the u32 length",
                               edi_dop_name(op), frame_len);
    }
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

int edi_dist_build_send_pids(edist_buf *out, uint64_t flags,
                             const edist_pid *from, const edist_pid *to,
                             edist_term_view msg)
{
    bool sender = (flags & EDI_DFLAG_SEND_SENDER) != 0;
    if (msg.len > 0 && msg.ptr[0] == EDIST_TAG_VERSION) {
        msg.ptr++;
        msg.len--;
    }
    /* The general builder checks and reports what this one does not
     * handle: odd node names, missing or compressed messages. */
    if (!out || out->err || msg.len == 0 || !msg.ptr ||
        msg.ptr[0] == EDIST_TAG_COMPRESSED || from->node.latin1 ||
        to->node.latin1 || from->node.len > 255 || to->node.len > 255) {
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
    int hdr = edi_dist_uses_header(flags);
    size_t pid_bytes = 3 + 12;
    size_t max = 4 + 3 + 2 + 2 + 2 + (pid_bytes + to->node.len) +
                 (sender ? pid_bytes + from->node.len : 0) + 1 + msg.len;
    if (edist_buf_reserve(out, max) != 0)
        return edist_set_error(out->err ? out->err : EDIST_ENOMEM,
                               "dist build SEND: buffer error");
    uint8_t *start = out->data + out->len;
    uint8_t *p = start + 4;
    if (hdr) {
        *p++ = EDIST_TAG_VERSION;
        *p++ = EDI_DIST_HEADER;
        *p++ = 0; /* no atom cache refs */
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
    memcpy(p, msg.ptr, msg.len);
    p += msg.len;
    size_t frame = (size_t)(p - start);
    if (frame - 4 > UINT32_MAX)
        return edist_set_error(EDIST_EINVAL, "dist build SEND: frame of %zu "
                               "bytes exceeds the u32 length", frame - 4);
    edi_put_be32(start, (uint32_t)(frame - 4));
    out->len += frame;
    return 0;
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

/* ---- fragmenting --------------------------------------------------------- */

#define FRAME_HDR_BYTES 7 /* u32 + 131, 68, 0 */

int edi_dist_needs_fragments(size_t frame_len, uint64_t flags,
                             size_t frag_bytes)
{
    if (!(flags & EDI_DFLAG_FRAGMENTS))
        return 0;
    if (frag_bytes == 0)
        frag_bytes = EDI_DIST_FRAGMENT_BYTES_DEFAULT;
    return frame_len > FRAME_HDR_BYTES &&
           frame_len - FRAME_HDR_BYTES > frag_bytes;
}

int64_t edi_dist_frag_init(edi_dist_frag *f, const uint8_t *frame,
                           size_t frame_len, uint64_t sequence_id,
                           size_t frag_bytes)
{
    if (f == NULL || frame == NULL)
        return edist_set_error(EDIST_EINVAL, "dist frag: NULL argument");
    if (sequence_id == 0)
        return edist_set_error(EDIST_EINVAL, "dist frag: sequence id 0 means "
                                             "unfragmented to erts");
    if (frame_len <= FRAME_HDR_BYTES || frame[4] != EDIST_TAG_VERSION ||
        frame[5] != EDI_DIST_HEADER || frame[6] != 0 ||
        edi_get_be32(frame) != frame_len - 4)
        return edist_set_error(EDIST_EINVAL,
                               "dist frag: not a header-form frame from "
                               "the builders");
    if (frag_bytes == 0)
        frag_bytes = EDI_DIST_FRAGMENT_BYTES_DEFAULT;
    memset(f, 0, sizeof *f);
    f->body = frame + FRAME_HDR_BYTES;
    f->body_len = frame_len - FRAME_HDR_BYTES;
    edist_cursor c;
    edist_cursor_init(&c, f->body, f->body_len);
    int rc = edist_skip(&c);
    if (rc < 0)
        return edist_set_error(EDIST_EINVAL,
                               "dist frag: bad control message in frame");
    f->ctl_len = c.pos;
    f->frag_bytes = frag_bytes;
    f->sequence_id = sequence_id;
    if (f->body_len <= frag_bytes) {
        f->count = 1;
    } else {
        size_t first = f->ctl_len > frag_bytes ? f->ctl_len : frag_bytes;
        size_t rest = f->body_len - first;
        f->count = 1 + (rest + frag_bytes - 1) / frag_bytes;
    }
    f->next_fragment_id = f->count;
    return (int64_t)f->count;
}

/* The next fragment: header bytes into hdr, body slice into data and n. */
static int frag_take(edi_dist_frag *f, uint8_t *hdr, size_t *hdr_len,
                     const uint8_t **data, size_t *n)
{
    if (f == NULL || f->next_fragment_id == 0)
        return edist_set_error(EDIST_EINVAL, "dist frag: no more fragments");
    size_t take;
    if (f->count == 1) {
        take = f->body_len;
    } else if (f->taken == 0) {
        take = f->ctl_len > f->frag_bytes ? f->ctl_len : f->frag_bytes;
    } else {
        take = f->body_len - f->taken;
        if (take > f->frag_bytes)
            take = f->frag_bytes;
    }
    size_t hl;
    if (f->count == 1) {
        hdr[4] = EDIST_TAG_VERSION;
        hdr[5] = EDI_DIST_HEADER;
        hdr[6] = 0;
        hl = 7;
    } else if (f->taken == 0) {
        hdr[4] = EDIST_TAG_VERSION;
        hdr[5] = EDI_DIST_FRAG_HEADER;
        edi_put_be64(hdr + 6, f->sequence_id);
        edi_put_be64(hdr + 14, f->next_fragment_id);
        hdr[22] = 0; /* NumberOfAtomCacheRefs */
        hl = 23;
    } else {
        hdr[4] = EDIST_TAG_VERSION;
        hdr[5] = EDI_DIST_FRAG_CONT;
        edi_put_be64(hdr + 6, f->sequence_id);
        edi_put_be64(hdr + 14, f->next_fragment_id);
        hl = 22;
    }
    /* A body slice is at most the frame's length, which fitted a u32. */
    edi_put_be32(hdr, (uint32_t)(hl - 4 + take));
    *hdr_len = hl;
    *data = f->body + f->taken;
    *n = take;
    return 0;
}

static int frag_consume(edi_dist_frag *f, size_t n)
{
    f->taken += n;
    f->next_fragment_id--;
    return f->next_fragment_id > 0 ? 1 : 0;
}

int edi_dist_frag_next(edi_dist_frag *f, edist_buf *out)
{
    uint8_t hdr[EDI_DIST_FRAG_HDR_MAX_BYTES];
    size_t hl, n;
    const uint8_t *data;
    int rc = frag_take(f, hdr, &hl, &data, &n);
    if (rc < 0)
        return rc;
    if (out == NULL)
        return edist_set_error(EDIST_EINVAL, "dist frag: NULL buffer");
    size_t start = out->len;
    if (edist_buf_reserve(out, hl + n) < 0) {
        out->len = start;
        return edist_set_error(out->err, "dist frag: buffer error");
    }
    edist_buf_append(out, hdr, hl);
    edist_buf_append(out, data, n);
    return frag_consume(f, n);
}

int edi_dist_frag_next_iov(edi_dist_frag *f,
                           uint8_t hdr[EDI_DIST_FRAG_HDR_MAX_BYTES],
                           struct iovec iov[2])
{
    size_t hl, n;
    const uint8_t *data;
    if (hdr == NULL || iov == NULL)
        return edist_set_error(EDIST_EINVAL, "dist frag: NULL argument");
    int rc = frag_take(f, hdr, &hl, &data, &n);
    if (rc < 0)
        return rc;
    iov[0].iov_base = hdr;
    iov[0].iov_len = hl;
    iov[1].iov_base = (void *)data;
    iov[1].iov_len = n;
    return frag_consume(f, n);
}

/* ---- net_kernel is_auth ---------------------------------------------------
 */

int edi_dist_match_is_auth(const edi_dist_msg *msg, edist_term_view *from,
                           edist_term_view *tag, edist_term_view *node)
{
    if (msg == NULL || msg->payload.ptr == NULL)
        return 0;
    switch (msg->op) {
    case EDI_DOP_SEND:
    case EDI_DOP_SEND_TT:
    case EDI_DOP_REG_SEND:
    case EDI_DOP_REG_SEND_TT:
    case EDI_DOP_SEND_SENDER:
    case EDI_DOP_SEND_SENDER_TT:
    case EDI_DOP_ALIAS_SEND:
    case EDI_DOP_ALIAS_SEND_TT:
        break;
    default:
        return 0;
    }
    edist_cursor c;
    edist_atom a;
    uint32_t n;
    edist_term_view f, t, nd;
    edist_cursor_init(&c, msg->payload.ptr, msg->payload.len);
    if (edist_dec_tuple(&c, &n) < 0 || n != 3 || edist_dec_atom(&c, &a) < 0 ||
        !edist_atom_eq(&a, "$gen_call") || edist_dec_tuple(&c, &n) < 0 ||
        n != 2)
        return 0;
    edist_term_info info;
    if (edist_peek(&c, &info) < 0 || info.type != EDIST_TYPE_PID ||
        edist_dec_term(&c, &f) < 0 || edist_dec_term(&c, &t) < 0 ||
        edist_dec_tuple(&c, &n) < 0 || n != 2 || edist_dec_atom(&c, &a) < 0 ||
        !edist_atom_eq(&a, "is_auth") || edist_peek(&c, &info) < 0 ||
        info.type != EDIST_TYPE_ATOM || edist_dec_term(&c, &nd) < 0 ||
        edist_cursor_remaining(&c) != 0)
        return 0;
    if (from)
        *from = f;
    if (tag)
        *tag = t;
    if (node)
        *node = nd;
    return 1;
}

/* If tag is [alias | Ref] or [[alias | Ref] | _], the view of Ref. */
static int alias_of_tag(edist_term_view tag, edist_term_view *alias)
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
        alias_of_tag(tag, &alias))
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
