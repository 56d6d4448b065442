/* SPDX-License-Identifier: Apache-2.0 */
/* Building distribution frames to send (sender), and the replies to
 * net_kernel's is_auth. Wire forms, views, thread safety and errors: see
 * dist_msg.h. */
#ifndef EDIST_CONTROL_DIST_BUILD_H
#define EDIST_CONTROL_DIST_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "control/dist_msg.h"
#include "edist/term.h"

/* ---- building frames (sender) ------------------------------------------- *
 * Each edi_dist_build_* APPENDS one whole frame to out, ready to be written
 * to the socket as-is: the u32 length, then the form the connection needs:
 *   - flags has DFLAG_FRAGMENTS or DFLAG_DIST_HDR_ATOM_CACHE: the header
 *     form 131, 68, 0 (no atom cache refs), control, payload, terms without
 *     131. erts then REQUIRES this form (erts_prepare_dist_ext: with either
 *     flag negotiated it does not skip a 112 and kills the connection);
 *   - otherwise the pass-through form 112, 131 control, 131 payload (ei).
 * `flags` is the connection's negotiated flag set (edi_hs_result.flags),
 * plus EDI_DIST_BUILD_BARE to leave out the u32 length (a lane frames it).
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
/* The same frame's bytes before the message (bare: no u32 length), into
 * out[0..cap): for a message sent without a copy, the lane takes these as
 * the head and the message as an uncopied body. A message that starts with
 * 131 must have it removed first. *len gets the head's length. 0,
 * EDIST_ENOSPC, EDIST_EUNSUPPORTED (a node name the general builder must
 * write). */
int edi_dist_build_send_pids_head(uint8_t *out, size_t cap, uint64_t flags,
                                  const edist_pid *from, const edist_pid *to,
                                  size_t *len);
/* The most bytes of such a head: two pids with node names of up to 255
 * bytes. */
#define EDI_DIST_SEND_HEAD_MAX_BYTES (16u + 2u * (15u + 255u))
int edi_dist_build_send_pids(edist_buf *out, uint64_t flags,
                             const edist_pid *from, const edist_pid *to,
                             edist_term_view msg);
/* The frame of a head built before (edi_dist_build_send_pids_head, same
 * flags) and msg: for a sender that keeps the head of its last send.
 * EDIST_EAGAIN (nothing written) for what only the general builder
 * writes (a missing or compressed message; it says what is wrong). */
int edi_dist_build_send_headed(edist_buf *out, uint64_t flags,
                               const uint8_t *head, size_t head_len,
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


/* ---- net_kernel is_auth replies (net_adm:ping) -------------------------- */

/* Append the frame that replies {Tag, Reply} to a gen_call, as gen:reply/2
 * does: when Tag is [alias | Ref] or [[alias | Ref] | _] (OTP 24+ callers)
 * and the connection has DFLAG_ALIAS, an ALIAS_SEND from `self` to Ref;
 * otherwise a SEND to From (OTP 24+ callers accept that too: their receive
 * matches on the message, and the alias is still active). self: a pid of
 * ours (ALIAS_SEND needs a sender). Errors as the builders. */
int edi_dist_build_gen_reply(edist_buf *out, uint64_t flags,
                             edist_term_view self, edist_term_view from,
                             edist_term_view tag, edist_term_view reply);

/* 1 and the view of Ref if tag is [alias | Ref] or [[alias | Ref] | _]
 * (a gen_call's tag from OTP 24 on), else 0. */
int edi_dist_alias_of_tag(edist_term_view tag, edist_term_view *alias);

/* The reply to is_auth: {Tag, yes}. */
int edi_dist_build_is_auth_reply(edist_buf *out, uint64_t flags,
                                 edist_term_view self, edist_term_view from,
                                 edist_term_view tag);

#endif
