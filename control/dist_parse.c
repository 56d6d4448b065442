/* SPDX-License-Identifier: Apache-2.0 */
/* Distribution message parser: control tuple and payload of a received
 * frame. See dist_msg.h for the wire forms; the erts behaviour this follows
 * is in erts/emulator/beam/dist.c (erts_net_message). */
#include "control/dist_msg.h"

#include <string.h>

#include "base/bytes.h"
#include "control/dist_internal.h"
#include "edist/error.h"

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
            (rc = take_pid(c, &to, &m->to_pid, &m->to_is_pid, T_PID | T_ATOM, op, "to")) < 0 ||
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
        if ((rc = take_pid(c, &to, &m->to_pid, &m->to_is_pid, mask, op, "to")) < 0)
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

    if (!edi_dop_has_payload(m->op)) {
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
int edi_dist_parse_cache_header(const uint8_t *p, size_t len,
                                size_t *hdr_len)
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

void edi_dist_msg_views(edi_dist_msg *m, edist_term_view *out[EDI_DIST_MSG_VIEWS])
{
#define VIEW_ADDRESS(f) &m->f,
    edist_term_view *vs[] = {EDI_DIST_MSG_VIEW_FIELDS(VIEW_ADDRESS)};
#undef VIEW_ADDRESS
    _Static_assert(sizeof vs / sizeof vs[0] == EDI_DIST_MSG_VIEWS,
                   "EDI_DIST_MSG_VIEWS counts the fields");
    memcpy(out, vs, sizeof vs);
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
        int rc = edi_dist_parse_cache_header(frame + 2, len - 2, &hl);
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
