/* SPDX-License-Identifier: Apache-2.0 */
/* Distribution messages after the handshake: parse received frames, reassemble
 * fragments, build frames to send, split large messages into fragments.
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
 * buffer. A view with ptr == NULL is absent.
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
#include <sys/uio.h>

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
 * in dist_msg.c): the net kernel and the runtime switch on this, never on
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
} edi_dist_msg;

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

/* ---- fragment reassembly (receiver) -------------------------------------- */

/* Bounds for one connection's reassembler. Zero fields take the defaults. */
typedef struct edi_dist_reasm_limits {
    /* Sum of the buffers of all open sequences (default 64 MiB). */
    size_t max_total_bytes;
    /* Size of one reassembled message (default = max_total_bytes). */
    size_t max_message_bytes;
    /* Sequences open at the same time (default 1024; erts sends one open
     * sequence per sending process). */
    uint32_t max_sequences;
} edi_dist_reasm_limits;

#define EDI_DIST_REASM_MAX_TOTAL_BYTES_DEFAULT ((size_t)64 << 20)
#define EDI_DIST_REASM_MAX_SEQUENCES_DEFAULT 1024u

typedef struct edi_dist_reasm edi_dist_reasm;

/* Create a reassembler for one connection; limits may be NULL (defaults).
 * Returns 0 or EDIST_ENOMEM. */
int edi_dist_reasm_create(const edi_dist_reasm_limits *limits,
                          edi_dist_reasm **out);
/* Frees all partial sequences and r (NULL is fine). */
void edi_dist_reasm_free(edi_dist_reasm *r);

/* Result of edi_dist_reasm_feed. */
typedef struct edi_dist_delivery {
    edi_dist_msg msg;
    /* NULL when msg's views point into the frame given to feed (an
     * unfragmented frame: valid while that frame is). Otherwise the
     * reassembled buffer, malloc'ed, that msg's views point into: the caller
     * owns it and frees it with free() after use. */
    uint8_t *owned;
    size_t owned_len;
} edi_dist_delivery;

/* Feed one received frame payload (non-empty; any form). Returns
 *   1  a complete message: *out filled (see owned above);
 *   0  a fragment was stored; nothing to deliver yet;
 *   <0 error; the connection should be closed (the reassembler stays
 *      consistent and may be freed or fed again):
 *      EDIST_EPROTO  continuation of an unknown sequence, a FragmentId that
 *                    is not the expected next one (ids count down by one to
 *                    1), a first fragment for a sequence already open,
 *                    FragmentId 0, or a parse error in the completed message;
 *      EDIST_ENOMEM  a limit above was exceeded or allocation failed (the
 *                    offending sequence is dropped);
 *      EDIST_EINVAL  empty frame (a tick: the caller's) or NULL argument;
 *      parse errors as edi_dist_parse for unfragmented frames.
 * An unfragmented frame never touches the reassembler's state, nor does a
 * first fragment with FragmentId 1 (a whole message: parsed in place, owned
 * NULL). A sequence that fails (out of order, over a limit, bad message) is
 * dropped and its memory released. */
int edi_dist_reasm_feed(edi_dist_reasm *r, const uint8_t *frame, size_t len,
                        edi_dist_delivery *out);

/* Introspection for counters and tests. */
uint32_t edi_dist_reasm_open_sequences(const edi_dist_reasm *r);
size_t edi_dist_reasm_buffered_bytes(const edi_dist_reasm *r);

/* ---- building frames (sender) ------------------------------------------- *
 * Each edi_dist_build_* APPENDS one whole frame to out, ready to be written
 * to the socket as-is: the u32 length, then the form the connection needs:
 *   - flags has DFLAG_FRAGMENTS or DFLAG_DIST_HDR_ATOM_CACHE: the header
 *     form 131, 68, 0 (no atom cache refs), control, payload, terms without
 *     131. erts then REQUIRES this form (erts_prepare_dist_ext: with either
 *     flag negotiated it does not skip a 112 and kills the connection);
 *   - otherwise the pass-through form 112, 131 control, 131 payload (ei).
 * `flags` is the connection's negotiated flag set (edi_hs_result.flags).
 * Term arguments are edist_term_view of encoded terms (no 131; a leading 131
 * is accepted and dropped). Compressed terms (131, 80) are EDIST_EINVAL:
 * erts decodes distribution terms with no inflation step. Arguments are not
 * validated beyond non-empty (callers pass terms they encoded); use
 * edi_dist_pid_view() & co to encode pids/refs/atoms.
 *
 * `token` (may be NULL, or have ptr == NULL) is a sequential trace token:
 * when given, the _TT variant of the op is built.
 * Builders pick the wire form from flags (EXIT_PAYLOAD variants) and refuse
 * what the peer did not negotiate with EDIST_EUNSUPPORTED (SEND_SENDER,
 * SPAWN, ALIAS, UNLINK_ID, ALTACT_SIG).
 * Errors: EDIST_EINVAL (missing or compressed argument, frame over
 * 4 GiB - 1), EDIST_EUNSUPPORTED, EDIST_ENOMEM / EDIST_ENOSPC from out (out
 * is then in error, see edist_buf_error). On error out->len is unchanged. */

/* Encoded-term scratch for one pid, port, ref or atom (node names up to 255
 * characters of up to 4 bytes). */
#define EDI_DIST_TERM_SCRATCH_BYTES 1088
typedef struct edi_dist_term_scratch {
    uint8_t bytes[EDI_DIST_TERM_SCRATCH_BYTES];
} edi_dist_term_scratch;
/* Encode into *s and return a view of it in *out (valid while *s is).
 * Errors from the encoder (EDIST_EBADTERM for a bad atom). */
int edi_dist_pid_view(const edist_pid *pid, edi_dist_term_scratch *s,
                      edist_term_view *out);
int edi_dist_ref_view(const edist_ref *ref, edi_dist_term_scratch *s,
                      edist_term_view *out);
int edi_dist_atom_view(const char *utf8, size_t len, edi_dist_term_scratch *s,
                       edist_term_view *out);

/* Does the connection use the header form (see above)? */
int edi_dist_uses_header(uint64_t flags);

/* SEND(_TT): {2, '', To[, Token]} + Msg. */
int edi_dist_build_send(edist_buf *out, uint64_t flags,
                        const edist_term_view *token, edist_term_view to,
                        edist_term_view msg);
/* SEND_SENDER(_TT): {22, From, To[, Token]} + Msg (needs DFLAG_SEND_SENDER;
 * erts uses it whenever negotiated). */
/* SEND_SENDER {22, From, To} (or SEND {2, '', To} when the peer did not
 * negotiate DFLAG_SEND_SENDER) with msg: the send path's builder, written
 * in one pass without per-element buffer calls. */
int edi_dist_build_send_pids(edist_buf *out, uint64_t flags,
                             const edist_pid *from, const edist_pid *to,
                             edist_term_view msg);
int edi_dist_build_send_sender(edist_buf *out, uint64_t flags,
                               const edist_term_view *token,
                               edist_term_view from, edist_term_view to,
                               edist_term_view msg);
/* REG_SEND(_TT): {6, From, '', ToName[, Token]} + Msg; to_name is an encoded
 * atom. */
int edi_dist_build_reg_send(edist_buf *out, uint64_t flags,
                            const edist_term_view *token, edist_term_view from,
                            edist_term_view to_name, edist_term_view msg);
/* ALIAS_SEND(_TT): {33, From, Alias[, Token]} + Msg (needs DFLAG_ALIAS). */
int edi_dist_build_alias_send(edist_buf *out, uint64_t flags,
                              const edist_term_view *token,
                              edist_term_view from, edist_term_view alias,
                              edist_term_view msg);
/* LINK {1, From, To}. */
int edi_dist_build_link(edist_buf *out, uint64_t flags, edist_term_view from,
                        edist_term_view to);
/* The deprecated UNLINK {4, From, To}, for peers without DFLAG_UNLINK_ID
 * (OTP 26+ peers reject it). */
int edi_dist_build_unlink(edist_buf *out, uint64_t flags, edist_term_view from,
                          edist_term_view to);
/* UNLINK_ID {35, Id, From, To} and UNLINK_ID_ACK {36, Id, From, To} (need
 * DFLAG_UNLINK_ID; id != 0, else EDIST_EINVAL). */
int edi_dist_build_unlink_id(edist_buf *out, uint64_t flags, uint64_t id,
                             edist_term_view from, edist_term_view to);
int edi_dist_build_unlink_id_ack(edist_buf *out, uint64_t flags, uint64_t id,
                                 edist_term_view from, edist_term_view to);
/* EXIT (a linked process died) and EXIT2 (exit/2 signal): with
 * DFLAG_EXIT_PAYLOAD PAYLOAD_EXIT(2)(_TT) {24|26, From, To[, Token]} +
 * Reason (25|27 with a token), else {3|8, From, To[, Token], Reason}
 * (13|18 with a token). */
int edi_dist_build_exit(edist_buf *out, uint64_t flags,
                        const edist_term_view *token, edist_term_view from,
                        edist_term_view to, edist_term_view reason);
int edi_dist_build_exit2(edist_buf *out, uint64_t flags,
                         const edist_term_view *token, edist_term_view from,
                         edist_term_view to, edist_term_view reason);
/* MONITOR_P {19, From, ToProc, Ref}, DEMONITOR_P {20, From, ToProc, Ref}
 * (to_proc: pid or registered-name atom). */
int edi_dist_build_monitor_p(edist_buf *out, uint64_t flags,
                             edist_term_view from, edist_term_view to_proc,
                             edist_term_view ref);
int edi_dist_build_demonitor_p(edist_buf *out, uint64_t flags,
                               edist_term_view from, edist_term_view to_proc,
                               edist_term_view ref);
/* The monitored process is gone: with DFLAG_EXIT_PAYLOAD
 * PAYLOAD_MONITOR_P_EXIT {28, FromProc, To, Ref} + Reason, else
 * MONITOR_P_EXIT {21, FromProc, To, Ref, Reason}. from_proc is the pid, or
 * the name atom when the monitor was by name (as erts sends). */
int edi_dist_build_monitor_p_exit(edist_buf *out, uint64_t flags,
                                  edist_term_view from_proc, edist_term_view to,
                                  edist_term_view ref, edist_term_view reason);
/* SPAWN_REQUEST(_TT) {29, ReqId, From, GroupLeader, {M, F, Arity}, Opts
 * [, Token]} + ArgList (needs DFLAG_SPAWN). Arity is arg_count, which the
 * caller makes match the list in args. opts: encoded option list (nil for
 * none). */
int edi_dist_build_spawn_request(edist_buf *out, uint64_t flags,
                                 const edist_term_view *token,
                                 edist_term_view req_id, edist_term_view from,
                                 edist_term_view group_leader,
                                 const char *module, const char *function,
                                 uint32_t arg_count, edist_term_view opts,
                                 edist_term_view args);
/* SPAWN_REPLY(_TT) {31, ReqId, To, Flags, Result[, Token]} (needs
 * DFLAG_SPAWN); result: the new pid, or an error atom (badopt, notsup,
 * system_limit, ...). spawn_flags: EDI_SPAWN_FLAG_*. */
int edi_dist_build_spawn_reply(edist_buf *out, uint64_t flags,
                               const edist_term_view *token,
                               edist_term_view req_id, edist_term_view to,
                               uint32_t spawn_flags, edist_term_view result);
/* GROUP_LEADER {7, GroupLeader, Pid}: from is the new group leader, to the
 * process whose group leader is set (erts' order). */
int edi_dist_build_group_leader(edist_buf *out, uint64_t flags,
                                edist_term_view from, edist_term_view to);
/* ALTACT_SIG_SEND {37, Flags, Sender, To[, Token]} + Payload (needs
 * EDI_DFLAG_ALTACT_SIG, OTP 28). The TOKEN bit of sig_flags is set from
 * token; ALIAS / NAME tell what To is; EXIT makes the payload an exit
 * reason. */
int edi_dist_build_altact_sig_send(edist_buf *out, uint64_t flags,
                                   uint32_t sig_flags,
                                   const edist_term_view *token,
                                   edist_term_view sender, edist_term_view to,
                                   edist_term_view payload);

/* DFLAG_ALTACT_SIG (OTP 28), not in dist_flags.h yet. */
#define EDI_DFLAG_ALTACT_SIG ((uint64_t)0x20 << 32)

/* ---- fragmenting (sender) ------------------------------------------------ */

/* Splits one header-form frame produced by edi_dist_build_* (a connection
 * with DFLAG_FRAGMENTS) into fragments, as erts does: the first fragment is
 * 131, 69, SequenceId, FragmentId = count, 0 (no atom cache refs), then the
 * bytes of the control tuple and the start of the payload; continuations
 * are 131, 70, SequenceId, FragmentId, more payload bytes; ids count down to
 * 1. The control tuple is never split (erts decodes it from the first
 * fragment alone). Each fragment carries frag_bytes body bytes (the first
 * counts the control tuple, and is bigger only when the control tuple alone
 * is), the last the rest. The frame must stay unchanged and alive until the
 * last fragment is taken. Other frames (other senders) may be sent between
 * fragments; one sender must finish its sequence before starting another
 * with the same SequenceId. */
typedef struct edi_dist_frag {
    const uint8_t *body; /* control tuple + payload in the frame */
    size_t body_len;
    size_t ctl_len;
    size_t taken; /* body bytes already handed out */
    size_t frag_bytes;
    uint64_t sequence_id;
    uint64_t count;            /* total fragments */
    uint64_t next_fragment_id; /* counts down; 0 when done */
} edi_dist_frag;

/* Would a frame of frame_len bytes (u32 prefix included) be split for a
 * connection with these flags at this fragment size (0 = default)? 1 or 0. */
int edi_dist_needs_fragments(size_t frame_len, uint64_t flags,
                             size_t frag_bytes);

/* Prepare to split frame (frame_len bytes from edi_dist_build_*, u32 prefix
 * included, header form). sequence_id must be non-zero (erts treats 0 as
 * "not fragmented") and unique among the sender's open sequences on the
 * connection (erts uses the sending pid; edist: any per-process id);
 * frag_bytes 0 means EDI_DIST_FRAGMENT_BYTES_DEFAULT. Returns the number of
 * fragments (>= 1; 1 means: send the frame as it is — frag_next then hands
 * out the unchanged 131, 68 frame), or EDIST_EINVAL (not a header-form frame
 * or sequence_id 0). */
int64_t edi_dist_frag_init(edi_dist_frag *f, const uint8_t *frame,
                           size_t frame_len, uint64_t sequence_id,
                           size_t frag_bytes);

/* Append the next fragment as a whole frame (u32 length included) to out.
 * Returns 1 if more fragments remain, 0 if that was the last, EDIST_EINVAL
 * when already done, or an error from out (nothing consumed). */
int edi_dist_frag_next(edi_dist_frag *f, edist_buf *out);

/* Zero-copy variant: the next fragment as 2 iovecs, iov[0] = hdr (which
 * this fills: u32 length + fragment header) and iov[1] = a slice of the
 * frame, and consumes it. Returns 1 if more fragments remain, 0 if that was
 * the last, EDIST_EINVAL when already done. */
#define EDI_DIST_FRAG_HDR_MAX_BYTES 23 /* u32 + 131, 69, u64, u64, 0 */
int edi_dist_frag_next_iov(edi_dist_frag *f,
                           uint8_t hdr[EDI_DIST_FRAG_HDR_MAX_BYTES],
                           struct iovec iov[2]);

/* ---- net_kernel is_auth (net_adm:ping) ---------------------------------- */

/* If msg is a REG_SEND / SEND / SEND_SENDER / ALIAS_SEND whose payload is
 * {'$gen_call', {From, Tag}, {is_auth, Node}}, fill the views (any may be
 * NULL) and return 1; return 0 for any other message; never an error
 * (malformed payloads are "other"). */
int edi_dist_match_is_auth(const edi_dist_msg *msg, edist_term_view *from,
                           edist_term_view *tag, edist_term_view *node);

/* Append the frame that replies {Tag, Reply} to a gen_call, as gen:reply/2
 * does: when Tag is [alias | Ref] or [[alias | Ref] | _] (OTP 24+ callers)
 * and the connection has DFLAG_ALIAS, an ALIAS_SEND from `self` to Ref;
 * otherwise a SEND to From (OTP 24+ callers accept that too: their receive
 * matches on the message, and the alias is still active). self: a pid of
 * ours (ALIAS_SEND needs a sender). Errors as the builders. */
int edi_dist_build_gen_reply(edist_buf *out, uint64_t flags,
                             edist_term_view self, edist_term_view from,
                             edist_term_view tag, edist_term_view reply);

/* The reply to is_auth: {Tag, yes}. */
int edi_dist_build_is_auth_reply(edist_buf *out, uint64_t flags,
                                 edist_term_view self, edist_term_view from,
                                 edist_term_view tag);

#endif
