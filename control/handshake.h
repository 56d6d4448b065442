/* SPDX-License-Identifier: Apache-2.0 */
/* The distribution handshake, protocol version 6 (the OTP 23+ form, the only
 * one OTP 25 speaks), as a state machine over bytes.
 *
 * No sockets here: the owner feeds received bytes with edi_hs_feed(), sends
 * what edi_hs_output() returns, and looks at edi_hs_get_state(). The machine
 * never consumes bytes beyond the last handshake message, so whatever the
 * peer sends right after the handshake (its first tick or distribution
 * message) stays with the caller. handshake_io.h drives it on a socket.
 *
 * Roles (as in erl_dist_protocol): the initiator (A) connected to the peer,
 * the acceptor (B) accepted the connection.
 *   A -> B  send_name        'N' flags:64 creation:32 nlen:16 name
 *   B -> A  status           's' ok | ok_simultaneous | nok | not_allowed |
 *                                alive | named: nlen:16 name creation:32
 *  (A -> B  status reply     's' true | false, only after "alive")
 *   B -> A  challenge        'N' flags:64 challenge:32 creation:32 nlen name
 *   A -> B  challenge_reply  'r' challenge:32 digest[16]
 *   B -> A  challenge_ack    'a' digest[16]
 * each framed as [len:16][payload]; extra bytes after names are ignored.
 * digest = MD5(cookie ++ decimal(challenge)).
 *
 * Errors (negative edist_err, with detail in edi_hs_error() and in
 * edist_last_error() of the thread that made the failing call):
 *   EDIST_EAUTH        cookie mismatch ("cookie mismatch with NODE"); also
 *                      the peer closing right after our challenge reply,
 *                      which is how OTP refuses a wrong cookie; status
 *                      not_allowed from the peer
 *   EDIST_EPROTO       malformed or unexpected message, bad name
 *   EDIST_EUNSUPPORTED peer lacks flags OTP 25 makes mandatory
 *   EDIST_EEXIST       connection already exists or the simultaneous
 *                      connect was lost (status nok / alive answered false)
 *   EDIST_ECLOSED      peer closed the connection (edi_hs_eof)
 *   EDIST_ETIMEDOUT    the owner's deadline passed (edi_hs_timeout)
 *   EDIST_EIO          no randomness or no MD5 from libcrypto
 *
 * Thread safety: one edi_hs belongs to one thread at a time. The hooks are
 * called synchronously from edi_hs_feed() on that thread. */
#ifndef EDIST_CONTROL_HANDSHAKE_H
#define EDIST_CONTROL_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/cookie.h"
#include "control/dist_flags.h"

/* Node names are atoms sent as latin-1 bytes: at most 255 of them. */
#define EDI_HS_NAME_MAX_BYTES 255
/* OTP's net_setuptime default. */
#define EDI_HS_SETUP_TIME_MS_DEFAULT 7000
#define EDI_HS_DIGEST_BYTES 16
/* Of a received frame only this prefix is kept (the largest message we
 * parse, a challenge with a 255-byte name, is 274 bytes); the rest of a
 * longer frame is the "extra data" the protocol says to ignore, and is
 * skipped rather than buffered. */
#define EDI_HS_RX_KEEP_BYTES 512
/* Everything we may queue at once: a status, then a challenge. */
#define EDI_HS_TX_BYTES 1024

typedef enum edi_hs_role {
    EDI_HS_INITIATOR = 1,
    EDI_HS_ACCEPTOR = 2,
} edi_hs_role;

typedef enum edi_hs_state {
    EDI_HS_RUNNING = 0,   /* send edi_hs_output(), feed edi_hs_want() bytes */
    EDI_HS_WAIT_OLD_CONN, /* acceptor: peer verified, but an old connection
                             to it is still up; call edi_hs_old_conn_gone()
                             once the connection table dropped it */
    EDI_HS_DONE,          /* success: flush output, then read the result */
    EDI_HS_FAILED,        /* see edi_hs_error(); flush output anyway (it may
                             hold a status such as nok or not_allowed that
                             tells the peer why) then close */
} edi_hs_state;

/* What the acceptor knows about an incoming peer when it asks the
 * connection table. */
typedef struct edi_hs_peer {
    const char *name; /* full node name (assigned if dynamic) */
    uint64_t flags;   /* as sent, MANDATORY_25_DIGEST expanded */
    uint32_t creation;
    bool hidden;       /* peer did not set PUBLISHED */
    bool dynamic_name; /* peer asked for a name (NAME_ME) */
} edi_hs_peer;

/* The connection table's answer to an incoming connection (what
 * net_kernel's accept_pending answers dist_util). */
typedef enum edi_hs_decision {
    EDI_HS_GO = 0,              /* no connection to that node: "ok" */
    EDI_HS_GO_SIMULTANEOUS,     /* our own attempt to it is pending and loses
                                   (see edi_hs_resolve_simultaneous); the
                                   table aborts it: "ok_simultaneous" */
    EDI_HS_REFUSE_SIMULTANEOUS, /* our own pending attempt wins: "nok" */
    EDI_HS_ALREADY_UP,          /* a connection is up: "alive"; if the peer
                                   answers true, it is verified and then the
                                   machine waits (EDI_HS_WAIT_OLD_CONN) */
    EDI_HS_BUSY,                /* already being replaced: close silently */
    EDI_HS_NOT_ALLOWED,         /* policy refuses the node: "not_allowed" */
} edi_hs_decision;

/* Acceptor hook: called once, after the peer's name and flags passed the
 * checks and before any status is sent. NULL means always EDI_HS_GO. */
typedef edi_hs_decision (*edi_hs_accept_fn)(void *ctx, const edi_hs_peer *peer);
/* Initiator hook: the peer said "alive" (it believes we are connected).
 * Return true if this attempt is still the one the table wants (the old
 * connection is gone on our side), false to give up. NULL means true. */
typedef bool (*edi_hs_still_pending_fn)(void *ctx, const char *peer_name);
/* Challenge source for tests and fuzzing only; NULL means the CSPRNG. */
typedef uint32_t (*edi_hs_challenge_fn)(void *ctx);

typedef struct edi_hs_config {
    edi_hs_role role;
    /* Our full node name "name@host". Initiator with name_me: only the
     * host; the peer assigns the name (status "named:"). */
    const char *our_name;
    uint32_t our_creation;
    bool hidden;  /* do not set PUBLISHED */
    bool name_me; /* initiator only: ask the peer for a name */
    /* Tweak the advertised set EDI_DFLAGS_EDIST_DEFAULT (| PUBLISHED):
     * flags = (default | flags_add) & ~flags_remove. Mandatory flags can
     * not be removed (EDIST_EINVAL). */
    uint64_t flags_add;
    uint64_t flags_remove;
    /* Initiator: the node we are connecting to; its challenge must carry
     * exactly this name. Ignored by the acceptor. */
    const char *peer_name;
    /* Cookie: looked up in cookies for the peer's name when set (per-node
     * cookies; the table must outlive the handshake, it is read once the
     * peer's name is known), else cookie (copied by edi_hs_init). */
    edi_cookies *cookies;
    const char *cookie;
    /* Connection-table hooks (see above); ctx is passed to all. */
    edi_hs_accept_fn accept;
    edi_hs_still_pending_fn still_pending;
    /* Used by handshake_io (not by the machine) when the state becomes
     * EDI_HS_WAIT_OLD_CONN: block until the old connection to peer_name is
     * gone or deadline_ms (CLOCK_MONOTONIC) passes; 0 or negative error.
     * NULL: continue at once. */
    int (*wait_old_conn)(void *ctx, const char *peer_name, int64_t deadline_ms);
    edi_hs_challenge_fn challenge;
    void *hook_ctx;
} edi_hs_config;

/* The outcome once the state is EDI_HS_DONE. */
typedef struct edi_hs_result {
    edi_hs_role role;
    char peer_name[EDI_HS_NAME_MAX_BYTES + 1];
    uint32_t peer_creation;
    uint64_t peer_flags; /* as sent, MANDATORY_25_DIGEST expanded */
    uint64_t our_flags;  /* as we advertised them */
    uint64_t flags;      /* negotiated: our_flags & peer_flags */
    bool peer_hidden;    /* peer did not set PUBLISHED */
    bool hidden;         /* the connection is hidden (either side) */
    char our_name[EDI_HS_NAME_MAX_BYTES + 1]; /* assigned one if name_me */
    uint32_t our_creation;                    /* assigned one if name_me */
    bool simultaneous; /* status ok_simultaneous was exchanged */
    bool replaced_old; /* status alive: an old connection is replaced */
} edi_hs_result;

/* Internal phases; exposed only so edi_hs can live inside other structs. */
enum edi_hs_phase {
    EDI_HS_P_AWAIT_NAME = 1,
    EDI_HS_P_AWAIT_ALIVE_REPLY,
    EDI_HS_P_AWAIT_REPLY,
    EDI_HS_P_WAIT_OLD,
    EDI_HS_P_AWAIT_STATUS,
    EDI_HS_P_AWAIT_CHALLENGE,
    EDI_HS_P_AWAIT_ACK,
    EDI_HS_P_DONE,
    EDI_HS_P_FAILED,
};

/* One handshake. Plain struct so it can be embedded; treat the fields as
 * private. Holds the cookie: clear it with edi_hs_wipe() when done. */
typedef struct edi_hs {
    edi_hs_config cfg; /* copied; cfg.cookie points into cookie */
    enum edi_hs_phase phase;
    int err;
    edi_hs_decision decision;
    char cookie[EDI_COOKIE_MAX_BYTES + 1];
    size_t cookie_len;
    uint32_t our_challenge;
    uint32_t peer_challenge;
    uint8_t rx_hdr[2];
    uint8_t rx_hdr_have;
    uint16_t rx_frame_bytes;
    uint16_t rx_have_bytes;
    uint8_t rx[EDI_HS_RX_KEEP_BYTES];
    uint8_t tx[EDI_HS_TX_BYTES];
    size_t tx_off;
    size_t tx_len;
    edi_hs_result res;
    char detail[256];
} edi_hs;

/* Start a handshake. The initiator queues its send_name at once. Returns 0
 * or EDIST_EINVAL (bad config) / EDIST_ENOTFOUND (no cookie for the peer) /
 * EDIST_EIO; on error hs is in EDI_HS_FAILED. Never blocks. */
int edi_hs_init(edi_hs *hs, const edi_hs_config *cfg);

/* Feed bytes received from the peer. Consumes at most what the handshake
 * needs (see edi_hs_want) and stores the count in *consumed. Returns 0
 * (check edi_hs_get_state: it may now be DONE, or have output to send) or the
 * negative error that made it EDI_HS_FAILED; after a failure it consumes
 * nothing and returns the same error. Never blocks; hooks run inside. */
int edi_hs_feed(edi_hs *hs, const uint8_t *data, size_t len, size_t *consumed);

/* How many more bytes the machine can use right now: the rest of the
 * current frame header or frame; 0 when it is not waiting for input.
 * Reading exactly that many never reads past the handshake. */
size_t edi_hs_want(const edi_hs *hs);

/* Bytes to send to the peer (pointer into hs, valid until the next call
 * on hs) and their count via *len; NULL/0 when there are none. */
const uint8_t *edi_hs_output(const edi_hs *hs, size_t *len);
/* Mark n bytes of edi_hs_output() as sent. */
void edi_hs_output_done(edi_hs *hs, size_t n);

edi_hs_state edi_hs_get_state(const edi_hs *hs);

/* The peer closed the connection: fail (EDIST_ECLOSED, or EDIST_EAUTH when
 * it closed right after our challenge reply) and return the error. Returns
 * 0 and changes nothing if the handshake is already DONE. */
int edi_hs_eof(edi_hs *hs);
/* The owner's deadline passed: fail with EDIST_ETIMEDOUT and a detail
 * naming what we were waiting for. Returns 0 if already DONE. */
int edi_hs_timeout(edi_hs *hs);
/* Acceptor in EDI_HS_WAIT_OLD_CONN: the old connection is gone; queue the
 * challenge ack and become DONE. Returns 0 or EDIST_EINVAL. */
int edi_hs_old_conn_gone(edi_hs *hs);

/* Result, valid when DONE (else NULL). */
const edi_hs_result *edi_hs_get_result(const edi_hs *hs);
/* Error code (0 unless FAILED) and its detail ("" if none). */
int edi_hs_error_code(const edi_hs *hs);
const char *edi_hs_error(const edi_hs *hs);
/* Forget the cookie and challenge held by hs. */
void edi_hs_wipe(edi_hs *hs);

/* ---- helpers the connection table and tests use ------------------------ */

/* Decide a simultaneous connect as net_kernel does when a connection from
 * peer arrives while our own attempt to it is pending: the node whose name
 * is greater (compared as bytes, shorter prefix first) keeps its own
 * attempt. Returns EDI_HS_REFUSE_SIMULTANEOUS if our name is greater, else
 * EDI_HS_GO_SIMULTANEOUS. */
edi_hs_decision edi_hs_resolve_simultaneous(const char *our_name,
                                            const char *peer_name);

/* digest = MD5(cookie bytes ++ decimal challenge), 0 or EDIST_EIO. */
int edi_hs_digest(const char *cookie, size_t cookie_len, uint32_t challenge,
                  uint8_t out[EDI_HS_DIGEST_BYTES]);

/* The flags we advertise for a config (what edi_hs_init would send). */
uint64_t edi_hs_our_flags(const edi_hs_config *cfg);

/* Name of one flag bit ("DIST_MONITOR"), or NULL if unknown. */
const char *edi_dflag_name(uint64_t bit);
/* "A|B|0x..." for a set of flags into buf (always NUL-terminated when
 * cap > 0); returns the length it needed, like snprintf. */
size_t edi_dflags_format(uint64_t flags, char *buf, size_t cap);

/* Whether s is a valid full node name: 1..255 bytes, exactly one '@' with
 * non-empty parts on both sides, no NUL or control bytes. */
bool edi_hs_node_name_ok(const char *s, size_t len);

#endif
