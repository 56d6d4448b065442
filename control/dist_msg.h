/* SPDX-License-Identifier: Apache-2.0 */
/* Distribution messages after the handshake: the operations, the parsed
 * message type and the parser of received frames. The rest of the codec:
 * dist_reasm.h (reassemble fragments), dist_build.h (build frames to send),
 * dist_frag.h (split large messages into fragments).
 *
 * Pure functions over bytes: no sockets, no clocks, no logging. Every parser
 * is bounded and never reads outside the bytes it is given (fuzzed by
 * tests/fuzz/fuzz_dist_msg.c).
 *
 * Wire forms (erl_dist_protocol "Protocol between Connected Nodes",
 * erl_ext_dist "Distribution Header"); a frame is [u32 len][payload], and a
 * zero-length payload is a tick that callers handle before coming here:
 *   pass-through  112, 131 Control, [131 Message]     (what ei and edist send)
 *   header        131, 68, AtomCacheHeader, Control, [Message]   (no 131s)
 *   first frag.   131, 69, SeqId u64, FragId u64, AtomCacheHeader, Control,
 *                 start of Message
 *   continuation  131, 70, SeqId u64, FragId u64, more of Message
 * FragId counts down from the number of fragments to 1; the receiver finds
 * where Control ends by decoding it (Control is never split).
 *
 * Views: every edist_term_view below is an encoded term WITHOUT the 131
 * version byte (term.h's convention), pointing into the frame (or the
 * reassembled buffer) the message was parsed from; it lives as long as that
 * buffer. A message the reassembler delivers from its copy of a repeated
 * control message is the exception: there only the payload is in the
 * frame, and the other views live until the reassembler's next feed. A
 * view with ptr == NULL is absent.
 *
 * Thread safety: functions on distinct objects may run concurrently; one
 * edi_dist_reasm / edi_dist_frag belongs to one thread at a time. Nothing
 * blocks. Errors: 0 (or a documented non-negative value) or a negative
 * edist_err with detail via edist_set_error(). */
#ifndef EDIST_CONTROL_DIST_MSG_H
#define EDIST_CONTROL_DIST_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edist/proc.h"
#include "edist/term.h"

/* ---- operations (DOP_* in erts dist.h) ----------------------------------- */
typedef enum edi_dop {
    EDI_DOP_LINK = 1,
    EDI_DOP_SEND = 2,
    EDI_DOP_EXIT = 3,
    EDI_DOP_UNLINK = 4,
    EDI_DOP_NODE_LINK = 5,
    EDI_DOP_REG_SEND = 6,
    EDI_DOP_GROUP_LEADER = 7,
    EDI_DOP_EXIT2 = 8,
    EDI_DOP_SEND_TT = 12,
    EDI_DOP_EXIT_TT = 13,
    EDI_DOP_REG_SEND_TT = 16,
    EDI_DOP_EXIT2_TT = 18,
    EDI_DOP_MONITOR_P = 19,
    EDI_DOP_DEMONITOR_P = 20,
    EDI_DOP_MONITOR_P_EXIT = 21,
    EDI_DOP_SEND_SENDER = 22,
    EDI_DOP_SEND_SENDER_TT = 23,
    EDI_DOP_PAYLOAD_EXIT = 24,
    EDI_DOP_PAYLOAD_EXIT_TT = 25,
    EDI_DOP_PAYLOAD_EXIT2 = 26,
    EDI_DOP_PAYLOAD_EXIT2_TT = 27,
    EDI_DOP_PAYLOAD_MONITOR_P_EXIT = 28,
    EDI_DOP_SPAWN_REQUEST = 29,
    EDI_DOP_SPAWN_REQUEST_TT = 30,
    EDI_DOP_SPAWN_REPLY = 31,
    EDI_DOP_SPAWN_REPLY_TT = 32,
    EDI_DOP_ALIAS_SEND = 33,
    EDI_DOP_ALIAS_SEND_TT = 34,
    EDI_DOP_UNLINK_ID = 35,
    EDI_DOP_UNLINK_ID_ACK = 36,
    EDI_DOP_ALTACT_SIG_SEND = 37,
} edi_dop;

/* Name of an op ("REG_SEND"), or "UNKNOWN". */
const char *edi_dop_name(int op);

/* SPAWN_REPLY flags (erts dist.h ERTS_DIST_SPAWN_FLAG_*). */
#define EDI_SPAWN_FLAG_LINK 1u
#define EDI_SPAWN_FLAG_MONITOR 2u
/* ALTACT_SIG_SEND flags (erts dist.h ERTS_DOP_ALTACT_SIG_FLG_*, OTP 28). */
#define EDI_ALTACT_FLG_PRIO 1u
#define EDI_ALTACT_FLG_TOKEN 2u
#define EDI_ALTACT_FLG_ALIAS 4u
#define EDI_ALTACT_FLG_NAME 8u
#define EDI_ALTACT_FLG_EXIT 16u

/* Wire constants. */
#define EDI_DIST_PASS_THROUGH 112
#define EDI_DIST_HEADER 68
#define EDI_DIST_FRAG_HEADER 69
#define EDI_DIST_FRAG_CONT 70
/* What erts uses as the fragment size (ERTS_DIST_FRAGMENT_SIZE). */
#define EDI_DIST_FRAGMENT_BYTES_DEFAULT (64u * 1024u)

/* ---- a parsed message ---------------------------------------------------- */

/* One control message and its payload. Which fields are set depends on op
 * (absent views have ptr == NULL); the parser has already checked each set
 * field's type as listed:
 *
 *  op                      from         to            other fields
 *  LINK, UNLINK,           pid          pid
 *   GROUP_LEADER
 *  UNLINK_ID(_ACK)         pid          pid           unlink_id (1..2^64-1;
 *                                                     ACK: 0 too, as erts)
 *  SEND(_TT)               -            pid           token; payload
 *  SEND_SENDER(_TT)        pid          pid           token; payload
 *  REG_SEND(_TT)           pid          atom          token; payload
 *  ALIAS_SEND(_TT)         pid          ref (alias)   ref = to; token; payload
 *  EXIT(_TT), EXIT2(_TT)   pid          pid           token; reason
 *  PAYLOAD_EXIT(2)(_TT)    pid          pid           token; reason = payload
 *  MONITOR_P, DEMONITOR_P  pid          pid or atom   ref
 *  MONITOR_P_EXIT          pid or atom  pid           ref; reason
 *  PAYLOAD_MONITOR_P_EXIT  pid or atom  pid           ref; reason = payload
 *  SPAWN_REQUEST(_TT)      pid          -             ref (ReqId), group_leader
 *                                                     (pid), mfa ({M,F,A}
 *                                                     checked: atom, atom,
 *                                                     arity 0..255, decoded
 *                                                     into spawn_*), options
 *                                                     (list), token; payload
 *                                                     (the argument list)
 *  SPAWN_REPLY(_TT)        -            pid           ref (ReqId), flags,
 *                                                     result (pid or atom),
 *                                                     token
 *  NODE_LINK               -            -
 *  ALTACT_SIG_SEND         pid          pid, ref or   flags (low 64 bits),
 *                                       atom (per     token (if the TOKEN
 *                                       ALIAS/NAME    flag), ref (= to for
 *                                       flags)        ALIAS); payload (the
 *                                                     reason too if EXIT);
 *                                                     extra elements skipped
 *
 * "token" is the sequential trace token (_TT ops); the parser accepts any
 * term there. "from"/"to" for REG_SEND: `to` is the registered name, also
 * in to_name (set whenever the destination is an atom). */
/* What an operation means to the node, decided in one place (the table
 * in dist_ops.c): the net kernel and the runtime switch on this, never on
 * raw opcodes. The _TT, SENDER, PAYLOAD_ and _ID variants of an
 * operation share its meaning. */
typedef enum edi_sig {
    EDI_SIG_NONE = 0,      /* GROUP_LEADER, NODE_LINK, ALTACT_SIG_SEND:
                            * not served */
    EDI_SIG_SEND,          /* to a pid (SEND*, SEND_SENDER*) or an alias */
    EDI_SIG_REG_SEND,
    EDI_SIG_LINK,
    EDI_SIG_UNLINK,        /* UNLINK and UNLINK_ID (unlink_id != 0) */
    EDI_SIG_UNLINK_ACK,
    EDI_SIG_EXIT,
    EDI_SIG_EXIT2,
    EDI_SIG_MONITOR,
    EDI_SIG_DEMONITOR,
    EDI_SIG_MONITOR_EXIT,
    EDI_SIG_SPAWN_REQUEST,
    EDI_SIG_SPAWN_REPLY,
} edi_sig;

/* The meaning of op (EDI_SIG_NONE for unknown ones). */
edi_sig edi_dop_sig(int op);

/* from_pid and to_pid resolved once for a repeating control message
 * (interning a node name per message was a tenth of a receiver's time). */
typedef struct edi_dist_memo {
    bool resolved;
    bool has_from, has_to;
    edist_procid from, to;
} edi_dist_memo;

typedef struct edi_dist_msg {
    int op;                  /* edi_dop */
    edi_sig sig;             /* what op means */
    edist_term_view control; /* the whole control tuple */
    edist_term_view from;
    edist_term_view to;
    edist_term_view to_name;      /* == to when to is an atom */
    edist_term_view ref;          /* monitor ref, alias, spawn ReqId */
    edist_term_view reason;       /* exit reason (in control or payload) */
    edist_term_view token;        /* trace token */
    edist_term_view group_leader; /* SPAWN_REQUEST */
    edist_term_view mfa;          /* SPAWN_REQUEST {M, F, Arity} */
    edist_term_view options;      /* SPAWN_REQUEST option list */
    edist_term_view result;       /* SPAWN_REPLY pid or error atom */
    edist_atom spawn_module;      /* SPAWN_REQUEST, from mfa */
    edist_atom spawn_function;
    uint32_t spawn_arity;
    uint64_t unlink_id; /* UNLINK_ID(_ACK) */
    uint64_t flags;     /* SPAWN_REPLY, ALTACT_SIG_SEND */
    /* The term after the control tuple (message, exit reason of a PAYLOAD_*
     * op, or spawn argument list), without 131; ptr == NULL when the op has
     * none. It is the rest of the frame, NOT validated here (messages can be
     * big; the consumer decodes it, and its decoder validates): treat it as
     * untrusted bytes, e.g. edist_term_validate() before a whole-term walk. */
    edist_term_view payload;
    uint8_t form; /* EDI_DIST_PASS_THROUGH / _HEADER /
                     _FRAG_HEADER (reassembled) */
    /* from and to decoded once, when they are pids */
    bool from_is_pid, to_is_pid;
    edist_pid from_pid, to_pid;
    /* Non-NULL when this control message repeats (the reassembler keeps
     * it): whoever resolves from_pid and to_pid to the runtime's procids
     * may keep the result here for the next message with the same bytes.
     * The parser leaves it NULL. */
    edi_dist_memo *memo;
} edi_dist_msg;

/* Every term view of m, in one list for code that walks them all (the
 * reassembler's cache of control messages moves them into a new frame;
 * tests check them against the frame). The atoms inside from_pid, to_pid,
 * spawn_module and spawn_function are views too, not listed here. */
#define EDI_DIST_MSG_VIEW_FIELDS(X)                                         \
    X(control) X(from) X(to) X(to_name) X(ref) X(reason) X(token)           \
    X(group_leader) X(mfa) X(options) X(result) X(payload)
#define EDI_DIST_MSG_VIEWS 12
/* The list as pointers, for code that loops (tests, fuzzers); hot code
 * expands EDI_DIST_MSG_VIEW_FIELDS instead (filling this array costs
 * store-forwarding stalls that were a tenth of a lane receiver's time). */
void edi_dist_msg_views(edi_dist_msg *m, edist_term_view *out[EDI_DIST_MSG_VIEWS]);

/* Parse one complete, unfragmented frame payload (after the u32 length,
 * non-empty): pass-through (112) or header (131, 68) form. Fragments
 * (131, 69 / 131, 70) are EDIST_EINVAL here: feed them to edi_dist_reasm.
 * Checks the op, the tuple arity and each field's type per op (as erts'
 * erts_net_message does), that an op with a payload has one and an op
 * without has nothing after its control tuple.
 * The atom cache: erts fills the header's cache refs only when
 * DFLAG_DIST_HDR_ATOM_CACHE is negotiated (erts_dsig_send uses no cache
 * map otherwise, and writes NumberOfAtomCacheRefs = 0); edist does not
 * advertise it, so a header with refs is parsed (bounded) and then refused
 * with EDIST_EUNSUPPORTED.
 * Errors (with detail): EDIST_EPROTO (unknown op, wrong arity or field type,
 * missing or unexpected payload, bad header), EDIST_ETRUNC / EDIST_EBADTAG
 * / EDIST_EBADTERM / EDIST_EVERSION (malformed control term),
 * EDIST_EUNSUPPORTED (atom cache refs). On error *msg is unspecified. */
int edi_dist_parse(const uint8_t *frame, size_t len, edi_dist_msg *msg);

/* Parse control tuple + payload that follow a header: body points at the
 * control term and len covers control + payload. with_version != 0 for the
 * pass-through form (each term has its 131). Used for reassembled
 * fragments; exposed for tests and carriers. `form` goes to msg->form. */
int edi_dist_parse_body(const uint8_t *body, size_t len, int with_version,
                        int form, edi_dist_msg *msg);

/* Decode a view (as found in from/to/ref/to_name) into *pid / *ref /
 * *atom, whose atom views point into the same buffer. Returns 0, or
 * EDIST_ETYPE (absent or another type). */
int edi_dist_view_pid(edist_term_view v, edist_pid *pid);
int edi_dist_view_ref(edist_term_view v, edist_ref *ref);
int edi_dist_view_atom(edist_term_view v, edist_atom *atom);

/* ---- net_kernel is_auth (net_adm:ping) ---------------------------------- */

/* If msg is a REG_SEND / SEND / SEND_SENDER / ALIAS_SEND whose payload is
 * {'$gen_call', {From, Tag}, {is_auth, Node}}, fill the views (any may be
 * NULL) and return 1; return 0 for any other message; never an error
 * (malformed payloads are "other"). */
int edi_dist_match_is_auth(const edi_dist_msg *msg, edist_term_view *from,
                           edist_term_view *tag, edist_term_view *node);

#endif
