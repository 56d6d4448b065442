/* SPDX-License-Identifier: Apache-2.0 */
#include "control/handshake.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "base/bytes.h"
#include "edist/error.h"

/* Fixed sizes of the messages (payload, after the 2-byte length). */
#define NAME_FIXED_BYTES 15      /* 'N' flags:8 creation:4 nlen:2 */
#define CHALLENGE_FIXED_BYTES 19 /* 'N' flags:8 challenge:4 creation:4 nlen:2  \
                                  */
#define REPLY_BYTES 21           /* 'r' challenge:4 digest:16 */
#define ACK_BYTES 17             /* 'a' digest:16 */
/* 's' + the longest plain status ("ok_simultaneous", 15 chars); named:
 * is longer but only expected after a name request. */
#define STATUS_PLAIN_MAX_BYTES 16
#define NAMED_PREFIX "named:"
#define NAMED_PREFIX_BYTES 6

/* ---- bytes ------------------------------------------------------------ */

/* Copy untrusted bytes into a detail message, replacing what a terminal or
 * log would interpret. */
static void printable(char *dst, size_t cap, const uint8_t *src, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < cap; i++)
        dst[n++] = (src[i] >= 0x20 && src[i] < 0x7f) ? (char)src[i] : '?';
    dst[n] = '\0';
}

/* ---- flags ------------------------------------------------------------ */

static const struct {
    uint64_t bit;
    const char *name;
} flag_names[] = {
    {EDI_DFLAG_PUBLISHED, "PUBLISHED"},
    {EDI_DFLAG_ATOM_CACHE, "ATOM_CACHE"},
    {EDI_DFLAG_EXTENDED_REFERENCES, "EXTENDED_REFERENCES"},
    {EDI_DFLAG_DIST_MONITOR, "DIST_MONITOR"},
    {EDI_DFLAG_FUN_TAGS, "FUN_TAGS"},
    {EDI_DFLAG_DIST_MONITOR_NAME, "DIST_MONITOR_NAME"},
    {EDI_DFLAG_HIDDEN_ATOM_CACHE, "HIDDEN_ATOM_CACHE"},
    {EDI_DFLAG_NEW_FUN_TAGS, "NEW_FUN_TAGS"},
    {EDI_DFLAG_EXTENDED_PIDS_PORTS, "EXTENDED_PIDS_PORTS"},
    {EDI_DFLAG_EXPORT_PTR_TAG, "EXPORT_PTR_TAG"},
    {EDI_DFLAG_BIT_BINARIES, "BIT_BINARIES"},
    {EDI_DFLAG_NEW_FLOATS, "NEW_FLOATS"},
    {EDI_DFLAG_UNICODE_IO, "UNICODE_IO"},
    {EDI_DFLAG_DIST_HDR_ATOM_CACHE, "DIST_HDR_ATOM_CACHE"},
    {EDI_DFLAG_SMALL_ATOM_TAGS, "SMALL_ATOM_TAGS"},
    {EDI_DFLAG_UTF8_ATOMS, "UTF8_ATOMS"},
    {EDI_DFLAG_MAP_TAG, "MAP_TAG"},
    {EDI_DFLAG_BIG_CREATION, "BIG_CREATION"},
    {EDI_DFLAG_SEND_SENDER, "SEND_SENDER"},
    {EDI_DFLAG_BIG_SEQTRACE_LABELS, "BIG_SEQTRACE_LABELS"},
    {EDI_DFLAG_EXIT_PAYLOAD, "EXIT_PAYLOAD"},
    {EDI_DFLAG_FRAGMENTS, "FRAGMENTS"},
    {EDI_DFLAG_HANDSHAKE_23, "HANDSHAKE_23"},
    {EDI_DFLAG_UNLINK_ID, "UNLINK_ID"},
    {EDI_DFLAG_MANDATORY_25_DIGEST, "MANDATORY_25_DIGEST"},
    {EDI_DFLAG_SPAWN, "SPAWN"},
    {EDI_DFLAG_NAME_ME, "NAME_ME"},
    {EDI_DFLAG_V4_NC, "V4_NC"},
    {EDI_DFLAG_ALIAS, "ALIAS"},
};

const char *edi_dflag_name(uint64_t bit)
{
    for (size_t i = 0; i < sizeof flag_names / sizeof flag_names[0]; i++)
        if (flag_names[i].bit == bit)
            return flag_names[i].name;
    return NULL;
}

size_t edi_dflags_format(uint64_t flags, char *buf, size_t cap)
{
    size_t need = 0;
    if (cap > 0)
        buf[0] = '\0';
    for (int b = 0; b < 64; b++) {
        uint64_t bit = (uint64_t)1 << b;
        if (!(flags & bit))
            continue;
        const char *name = edi_dflag_name(bit);
        char tmp[32];
        if (name == NULL) {
            snprintf(tmp, sizeof tmp, "0x%llx", (unsigned long long)bit);
            name = tmp;
        }
        size_t nlen = strlen(name) + (need > 0 ? 1 : 0);
        if (cap > 0 && need + nlen < cap) {
            if (need > 0)
                buf[need] = '|';
            memcpy(buf + need + (need > 0 ? 1 : 0), name, strlen(name));
            buf[need + nlen] = '\0';
        }
        need += nlen;
    }
    return need;
}

uint64_t edi_hs_our_flags(const edi_hs_config *cfg)
{
    uint64_t f =
        (EDI_DFLAGS_EDIST_DEFAULT | cfg->flags_add) & ~cfg->flags_remove;
    /* Like dist_util: a node asking for a name publishes NAME_ME instead of
     * PUBLISHED, so such a connection is always hidden. */
    if (cfg->role == EDI_HS_INITIATOR && cfg->name_me)
        f = (f & ~EDI_DFLAG_PUBLISHED) | EDI_DFLAG_NAME_ME;
    else if (!cfg->hidden)
        f |= EDI_DFLAG_PUBLISHED;
    else
        f &= ~EDI_DFLAG_PUBLISHED;
    return f;
}

/* ---- names ------------------------------------------------------------ */

static bool host_ok(const uint8_t *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x20 || s[i] == 0x7f || s[i] == '@')
            return false;
    return true;
}

/* Full name check on raw bytes. OTP only asks for one '@' with non-empty
 * parts; we also refuse control bytes (NUL would cut our C strings, the
 * rest has no place in a node name and would garble logs). */
static bool name_bytes_ok(const uint8_t *s, size_t len)
{
    if (len == 0 || len > EDI_HS_NAME_MAX_BYTES)
        return false;
    size_t at = len;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] == 0x7f)
            return false;
        if (s[i] == '@') {
            if (at != len)
                return false;
            at = i;
        }
    }
    return at != len && at > 0 && at + 1 < len;
}

bool edi_hs_node_name_ok(const char *s, size_t len)
{
    return s != NULL && name_bytes_ok((const uint8_t *)s, len);
}

edi_hs_decision edi_hs_resolve_simultaneous(const char *our_name,
                                            const char *peer_name)
{
    /* Atoms compare by their text; for latin-1/ASCII node names that is
     * byte order with a shorter prefix first. */
    size_t a = strlen(our_name), b = strlen(peer_name);
    int c = memcmp(our_name, peer_name, a < b ? a : b);
    bool ours_greater = c > 0 || (c == 0 && a > b);
    return ours_greater ? EDI_HS_REFUSE_SIMULTANEOUS : EDI_HS_GO_SIMULTANEOUS;
}

/* ---- crypto ------------------------------------------------------------ */

int edi_hs_digest(const char *cookie, size_t cookie_len, uint32_t challenge,
                  uint8_t out[EDI_HS_DIGEST_BYTES])
{
    if (cookie_len > EDI_COOKIE_MAX_BYTES)
        return edist_set_error(EDIST_EINVAL, "handshake: cookie too long");
    char text[EDI_COOKIE_MAX_BYTES + 16];
    memcpy(text, cookie, cookie_len);
    int n = snprintf(text + cookie_len, sizeof text - cookie_len, "%lu",
                     (unsigned long)challenge);
    unsigned int md_len = 0;
    int ok =
        EVP_Digest(text, cookie_len + (size_t)n, out, &md_len, EVP_md5(), NULL);
    OPENSSL_cleanse(text, sizeof text);
    if (!ok || md_len != EDI_HS_DIGEST_BYTES)
        return edist_set_error(EDIST_EIO, "handshake: MD5 unavailable");
    return 0;
}

static int new_challenge(edi_hs *hs, uint32_t *out)
{
    if (hs->cfg.challenge != NULL) {
        *out = hs->cfg.challenge(hs->cfg.hook_ctx);
        return 0;
    }
    uint8_t b[4];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t r = getrandom(b + got, sizeof b - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return EDIST_EIO;
        }
        got += (size_t)r;
    }
    *out = edi_get_be32(b);
    return 0;
}

/* ---- state ------------------------------------------------------------ */

static const char *peer_label(const edi_hs *hs)
{
    return hs->res.peer_name[0] ? hs->res.peer_name : "peer";
}

/* Enter FAILED with err and a detail (kept in hs and in the thread's last
 * error). Returns err. */
__attribute__((format(printf, 3, 4))) static int fail(edi_hs *hs, int err,
                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(hs->detail, sizeof hs->detail, fmt, ap);
    va_end(ap);
    hs->phase = EDI_HS_P_FAILED;
    hs->err = err;
    OPENSSL_cleanse(hs->cookie, sizeof hs->cookie);
    return edist_set_error(err, "%s", hs->detail);
}

/* Reserve a frame of payload_len bytes in the output; returns the payload
 * pointer or NULL when it does not fit (cannot happen with our sizes). */
static uint8_t *tx_frame(edi_hs *hs, size_t payload_len)
{
    if (hs->tx_off > 0) {
        memmove(hs->tx, hs->tx + hs->tx_off, hs->tx_len - hs->tx_off);
        hs->tx_len -= hs->tx_off;
        hs->tx_off = 0;
    }
    if (payload_len > UINT16_MAX ||
        hs->tx_len + 2 + payload_len > sizeof hs->tx)
        return NULL;
    uint8_t *p = hs->tx + hs->tx_len;
    edi_put_be16(p, (uint16_t)payload_len);
    hs->tx_len += 2 + payload_len;
    return p + 2;
}

static int tx_status(edi_hs *hs, const char *status)
{
    size_t len = strlen(status);
    uint8_t *p = tx_frame(hs, 1 + len);
    if (p == NULL)
        return fail(hs, EDIST_ENOSPC, "handshake: output full");
    p[0] = 's';
    memcpy(p + 1, status, len);
    return 0;
}

static int lookup_cookie(edi_hs *hs, const char *peer)
{
    int rc;
    if (hs->cookie_len > 0)
        return 0; /* a single cookie, copied by edi_hs_init */
    if (hs->cfg.cookies != NULL) {
        rc = edi_cookies_get(hs->cfg.cookies, peer, hs->cookie,
                             sizeof hs->cookie);
        if (rc < 0)
            return fail(hs, rc, "handshake: no cookie for %s", peer);
    } else {
        rc = edi_cookie_check(hs->cfg.cookie);
        if (rc < 0)
            return fail(hs, EDIST_EINVAL, "handshake: bad cookie: %s",
                        edist_last_error());
        rc = (int)strlen(hs->cfg.cookie);
        memcpy(hs->cookie, hs->cfg.cookie, (size_t)rc + 1);
    }
    hs->cookie_len = (size_t)rc;
    hs->cfg.cookie = hs->cookie;
    hs->cfg.cookies = NULL;
    return 0;
}

static int check_mandatory(edi_hs *hs, uint64_t peer_flags)
{
    uint64_t missing = EDI_DFLAGS_MANDATORY_25 & ~peer_flags;
    if (missing == 0)
        return 0;
    char names[160];
    edi_dflags_format(missing, names, sizeof names);
    return fail(hs, EDIST_EUNSUPPORTED,
                "%s lacks distribution flags OTP 25 makes mandatory: %s",
                peer_label(hs), names);
}

static void finish(edi_hs *hs)
{
    edi_hs_result *r = &hs->res;
    r->flags = r->our_flags & r->peer_flags;
    r->peer_hidden = !(r->peer_flags & EDI_DFLAG_PUBLISHED);
    r->hidden = !(r->flags & EDI_DFLAG_PUBLISHED);
    hs->phase = EDI_HS_P_DONE;
    OPENSSL_cleanse(hs->cookie, sizeof hs->cookie);
}

static int queue_challenge(edi_hs *hs)
{
    int rc = new_challenge(hs, &hs->our_challenge);
    if (rc < 0)
        return fail(hs, rc, "handshake: no random challenge: %s",
                    strerror(errno));
    size_t nlen = strlen(hs->res.our_name);
    uint8_t *p = tx_frame(hs, CHALLENGE_FIXED_BYTES + nlen);
    if (p == NULL)
        return fail(hs, EDIST_ENOSPC, "handshake: output full");
    p[0] = 'N';
    edi_put_be64(p + 1, hs->res.our_flags);
    edi_put_be32(p + 9, hs->our_challenge);
    edi_put_be32(p + 13, hs->res.our_creation);
    edi_put_be16(p + 17, (uint16_t)nlen);
    memcpy(p + CHALLENGE_FIXED_BYTES, hs->res.our_name, nlen);
    hs->phase = EDI_HS_P_AWAIT_REPLY;
    return 0;
}

static void base36(uint64_t v, char *out, size_t cap)
{
    char tmp[16];
    size_t n = 0;
    do {
        unsigned d = (unsigned)(v % 36);
        tmp[n++] = (char)(d < 10 ? '0' + d : 'A' + d - 10);
        v /= 36;
    } while (v > 0 && n < sizeof tmp);
    size_t i = 0;
    for (; i < n && i + 1 < cap; i++)
        out[i] = tmp[n - 1 - i];
    out[i] = '\0';
}

/* ---- acceptor ----------------------------------------------------------- */

static int on_name(edi_hs *hs, const uint8_t *m, size_t kept, size_t len)
{
    if (m[0] == 'n')
        return fail(hs, EDIST_EPROTO,
                    "peer uses the pre-OTP 23 handshake (send_name 'n'); "
                    "only version 6 ('N') is supported");
    if (m[0] != 'N')
        return fail(hs, EDIST_EPROTO, "expected send_name 'N', got tag 0x%02x",
                    m[0]);
    if (len < NAME_FIXED_BYTES)
        return fail(hs, EDIST_EPROTO, "send_name too short (%zu bytes)", len);
    uint64_t flags = edi_get_be64(m + 1);
    uint32_t creation = edi_get_be32(m + 9);
    uint16_t nlen = edi_get_be16(m + 13);
    if (nlen > EDI_HS_NAME_MAX_BYTES)
        return fail(hs, EDIST_EPROTO,
                    "send_name: oversized node name (%u bytes, max %d)", nlen,
                    EDI_HS_NAME_MAX_BYTES);
    if (NAME_FIXED_BYTES + (size_t)nlen > len)
        return fail(hs, EDIST_EPROTO,
                    "send_name: name length %u exceeds the message", nlen);
    /* Holds because the largest name fits the kept prefix. */
    if (NAME_FIXED_BYTES + (size_t)nlen > kept)
        return fail(hs, EDIST_EPROTO, "send_name: name not in frame prefix");
    const uint8_t *name = m + NAME_FIXED_BYTES;
    char shown[64];
    edi_hs_peer peer = {0};
    peer.flags = edi_dflags_expand(flags);
    peer.creation = creation;
    peer.dynamic_name = (flags & EDI_DFLAG_NAME_ME) != 0;
    if (peer.dynamic_name) {
        /* The peer sent only its host; give it a name as net_kernel does:
         * a random base-36 number @ host, and a random creation. */
        if (!host_ok(name, nlen)) {
            printable(shown, sizeof shown, name, nlen);
            return fail(hs, EDIST_EPROTO,
                        "send_name: bad host \"%s\" with NAME_ME", shown);
        }
        uint32_t r[3];
        for (int i = 0; i < 3; i++) {
            int rc = new_challenge(hs, &r[i]);
            if (rc < 0)
                return fail(hs, rc, "handshake: no randomness");
        }
        char num[16];
        base36(((uint64_t)r[0] << 32) | r[1], num, sizeof num);
        size_t numlen = strlen(num);
        if (numlen + 1 + nlen > EDI_HS_NAME_MAX_BYTES)
            return fail(hs, EDIST_EPROTO,
                        "send_name: host too long for a dynamic name");
        memcpy(hs->res.peer_name, num, numlen);
        hs->res.peer_name[numlen] = '@';
        memcpy(hs->res.peer_name + numlen + 1, name, nlen);
        hs->res.peer_name[numlen + 1 + nlen] = '\0';
        peer.creation = r[2] ? r[2] : 1;
    } else {
        if (!name_bytes_ok(name, nlen)) {
            printable(shown, sizeof shown, name, nlen);
            return fail(hs, EDIST_EPROTO, "send_name: bad node name \"%s\"",
                        shown);
        }
        memcpy(hs->res.peer_name, name, nlen);
        hs->res.peer_name[nlen] = '\0';
    }
    peer.name = hs->res.peer_name;
    peer.hidden = !(peer.flags & EDI_DFLAG_PUBLISHED);
    hs->res.peer_flags = peer.flags;
    hs->res.peer_creation = peer.creation;

    /* Like dist_util: refuse an incapable peer before bothering the
     * connection table, and tell it why with not_allowed. */
    if (EDI_DFLAGS_MANDATORY_25 & ~peer.flags) {
        int rc = tx_status(hs, "not_allowed");
        if (rc < 0)
            return rc;
        return check_mandatory(hs, peer.flags);
    }
    /* Answering a dynamic-name request, we too publish NAME_ME instead of
     * PUBLISHED (dist_util's publish_flag), so the connection is hidden. */
    if (peer.dynamic_name)
        hs->res.our_flags =
            (hs->res.our_flags & ~EDI_DFLAG_PUBLISHED) | EDI_DFLAG_NAME_ME;

    int rc = lookup_cookie(hs, hs->res.peer_name);
    if (rc < 0)
        return rc;

    edi_hs_decision d = EDI_HS_GO;
    if (hs->cfg.accept != NULL)
        d = hs->cfg.accept(hs->cfg.hook_ctx, &peer);
    hs->decision = d;
    switch (d) {
    case EDI_HS_GO:
        if (peer.dynamic_name) {
            size_t pl = strlen(hs->res.peer_name);
            uint8_t *p = tx_frame(hs, 1 + NAMED_PREFIX_BYTES + 2 + pl + 4);
            if (p == NULL)
                return fail(hs, EDIST_ENOSPC, "handshake: output full");
            p[0] = 's';
            memcpy(p + 1, NAMED_PREFIX, NAMED_PREFIX_BYTES);
            edi_put_be16(p + 1 + NAMED_PREFIX_BYTES, (uint16_t)pl);
            memcpy(p + 3 + NAMED_PREFIX_BYTES, hs->res.peer_name, pl);
            edi_put_be32(p + 3 + NAMED_PREFIX_BYTES + pl, peer.creation);
        } else {
            rc = tx_status(hs, "ok");
            if (rc < 0)
                return rc;
        }
        return queue_challenge(hs);
    case EDI_HS_GO_SIMULTANEOUS:
        rc = tx_status(hs, "ok_simultaneous");
        if (rc < 0)
            return rc;
        hs->res.simultaneous = true;
        return queue_challenge(hs);
    case EDI_HS_REFUSE_SIMULTANEOUS:
        rc = tx_status(hs, "nok");
        if (rc < 0)
            return rc;
        return fail(hs, EDIST_EEXIST,
                    "simultaneous connect with %s: our own attempt wins "
                    "(sent nok)",
                    hs->res.peer_name);
    case EDI_HS_ALREADY_UP:
        rc = tx_status(hs, "alive");
        if (rc < 0)
            return rc;
        hs->res.replaced_old = true;
        hs->phase = EDI_HS_P_AWAIT_ALIVE_REPLY;
        return 0;
    case EDI_HS_BUSY:
        return fail(hs, EDIST_EEXIST,
                    "connection to %s is already being replaced",
                    hs->res.peer_name);
    case EDI_HS_NOT_ALLOWED:
        rc = tx_status(hs, "not_allowed");
        if (rc < 0)
            return rc;
        return fail(hs, EDIST_EAUTH, "connection from %s not allowed",
                    hs->res.peer_name);
    }
    return fail(hs, EDIST_EINVAL, "handshake: accept hook returned %d", (int)d);
}

static int on_alive_reply(edi_hs *hs, const uint8_t *m, size_t len)
{
    if (len == 5 && memcmp(m, "strue", 5) == 0)
        return queue_challenge(hs);
    if (len == 6 && memcmp(m, "sfalse", 6) == 0)
        return fail(hs, EDIST_EEXIST,
                    "%s answered false to alive: it keeps its old connection",
                    hs->res.peer_name);
    char shown[32];
    printable(shown, sizeof shown, m, len);
    return fail(hs, EDIST_EPROTO,
                "expected status true/false from %s after alive, got \"%s\"",
                hs->res.peer_name, shown);
}

static int queue_ack(edi_hs *hs, uint32_t peer_challenge)
{
    uint8_t *p = tx_frame(hs, ACK_BYTES);
    if (p == NULL)
        return fail(hs, EDIST_ENOSPC, "handshake: output full");
    p[0] = 'a';
    int rc = edi_hs_digest(hs->cookie, hs->cookie_len, peer_challenge, p + 1);
    if (rc < 0)
        return fail(hs, rc, "handshake: MD5 unavailable");
    finish(hs);
    return 0;
}

static int on_reply(edi_hs *hs, const uint8_t *m, size_t len)
{
    if (m[0] != 'r' || len != REPLY_BYTES)
        return fail(hs, EDIST_EPROTO,
                    "expected challenge_reply 'r' (%d bytes) from %s, got tag "
                    "0x%02x (%zu bytes)",
                    REPLY_BYTES, hs->res.peer_name, m[0], len);
    uint8_t want[EDI_HS_DIGEST_BYTES];
    int rc = edi_hs_digest(hs->cookie, hs->cookie_len, hs->our_challenge, want);
    if (rc < 0)
        return fail(hs, rc, "handshake: MD5 unavailable");
    if (CRYPTO_memcmp(want, m + 5, EDI_HS_DIGEST_BYTES) != 0)
        return fail(hs, EDIST_EAUTH,
                    "cookie mismatch with %s (invalid challenge reply)",
                    hs->res.peer_name);
    uint32_t peer_challenge = edi_get_be32(m + 1);
    if (hs->decision == EDI_HS_ALREADY_UP) {
        /* Verified, but the old connection must go before this one may
         * come up (dist_util's wait_pending); the ack waits until then. */
        hs->peer_challenge = peer_challenge;
        hs->phase = EDI_HS_P_WAIT_OLD;
        return 0;
    }
    return queue_ack(hs, peer_challenge);
}

/* ---- initiator ---------------------------------------------------------- */

static int queue_name(edi_hs *hs)
{
    size_t nlen = strlen(hs->res.our_name);
    uint8_t *p = tx_frame(hs, NAME_FIXED_BYTES + nlen);
    if (p == NULL)
        return fail(hs, EDIST_ENOSPC, "handshake: output full");
    p[0] = 'N';
    edi_put_be64(p + 1, hs->res.our_flags);
    /* With a dynamic name our creation comes from the peer. */
    edi_put_be32(p + 9, hs->cfg.name_me ? 0 : hs->res.our_creation);
    edi_put_be16(p + 13, (uint16_t)nlen);
    memcpy(p + NAME_FIXED_BYTES, hs->res.our_name, nlen);
    hs->phase = EDI_HS_P_AWAIT_STATUS;
    return 0;
}

static int on_named(edi_hs *hs, const uint8_t *m, size_t kept, size_t len)
{
    const size_t fixed = 1 + NAMED_PREFIX_BYTES + 2;
    if (len < fixed + 4)
        return fail(hs, EDIST_EPROTO, "status named: too short");
    uint16_t nlen = edi_get_be16(m + 1 + NAMED_PREFIX_BYTES);
    if (nlen > EDI_HS_NAME_MAX_BYTES || fixed + (size_t)nlen + 4 > len ||
        fixed + (size_t)nlen + 4 > kept)
        return fail(hs, EDIST_EPROTO, "status named: bad name length %u", nlen);
    const uint8_t *name = m + fixed;
    char shown[64];
    printable(shown, sizeof shown, name, nlen);
    if (!name_bytes_ok(name, nlen))
        return fail(hs, EDIST_EPROTO, "status named: bad node name \"%s\"",
                    shown);
    /* The assigned name must be on the host we asked for. */
    const uint8_t *at = memchr(name, '@', nlen);
    size_t host_len = nlen - (size_t)(at + 1 - name);
    size_t our_len = strlen(hs->res.our_name);
    if (host_len != our_len || memcmp(at + 1, hs->res.our_name, our_len) != 0)
        return fail(hs, EDIST_EPROTO,
                    "status named: name \"%s\" is not on host %s", shown,
                    hs->res.our_name);
    memcpy(hs->res.our_name, name, nlen);
    hs->res.our_name[nlen] = '\0';
    hs->res.our_creation = edi_get_be32(name + nlen);
    hs->phase = EDI_HS_P_AWAIT_CHALLENGE;
    return 0;
}

static int on_status(edi_hs *hs, const uint8_t *m, size_t kept, size_t len)
{
    const char *peer = hs->res.peer_name;
    if (m[0] != 's')
        return fail(hs, EDIST_EPROTO,
                    "expected status 's' from %s, got tag 0x%02x", peer, m[0]);
    if (len >= 1 + NAMED_PREFIX_BYTES &&
        memcmp(m + 1, NAMED_PREFIX, NAMED_PREFIX_BYTES) == 0) {
        if (!hs->cfg.name_me)
            return fail(hs, EDIST_EPROTO,
                        "%s sent status named: though we have a name", peer);
        return on_named(hs, m, kept, len);
    }
    char st[STATUS_PLAIN_MAX_BYTES + 1];
    printable(st, sizeof st, m + 1,
              len - 1 < STATUS_PLAIN_MAX_BYTES ? len - 1
                                               : STATUS_PLAIN_MAX_BYTES);
    bool exact = len - 1 <= STATUS_PLAIN_MAX_BYTES && strlen(st) == len - 1;
    if (exact && strcmp(st, "not_allowed") == 0)
        return fail(hs, EDIST_EAUTH, "%s refused the connection (not_allowed)",
                    peer);
    if (hs->cfg.name_me)
        return fail(hs, EDIST_EPROTO,
                    "%s answered \"%s\" to a dynamic name request", peer, st);
    if (exact && strcmp(st, "ok") == 0) {
        hs->phase = EDI_HS_P_AWAIT_CHALLENGE;
        return 0;
    }
    if (exact && strcmp(st, "ok_simultaneous") == 0) {
        hs->res.simultaneous = true;
        hs->phase = EDI_HS_P_AWAIT_CHALLENGE;
        return 0;
    }
    if (exact && strcmp(st, "nok") == 0)
        return fail(hs, EDIST_EEXIST,
                    "simultaneous connect: %s's own attempt to us wins (nok)",
                    peer);
    if (exact && strcmp(st, "alive") == 0) {
        bool go = hs->cfg.still_pending == NULL ||
                  hs->cfg.still_pending(hs->cfg.hook_ctx, peer);
        int rc = tx_status(hs, go ? "true" : "false");
        if (rc < 0)
            return rc;
        if (!go)
            return fail(hs, EDIST_EEXIST,
                        "%s says we are still connected (alive); gave up",
                        peer);
        hs->res.replaced_old = true;
        hs->phase = EDI_HS_P_AWAIT_CHALLENGE;
        return 0;
    }
    return fail(hs, EDIST_EPROTO, "unknown status \"%s%s\" from %s", st,
                exact ? "" : "...", peer);
}

static int on_challenge(edi_hs *hs, const uint8_t *m, size_t kept, size_t len)
{
    const char *peer = hs->res.peer_name;
    if (m[0] != 'N' || len < CHALLENGE_FIXED_BYTES)
        return fail(hs, EDIST_EPROTO,
                    "expected challenge 'N' from %s, got tag 0x%02x (%zu "
                    "bytes)",
                    peer, m[0], len);
    uint64_t flags = edi_get_be64(m + 1);
    uint32_t challenge = edi_get_be32(m + 9);
    uint32_t creation = edi_get_be32(m + 13);
    uint16_t nlen = edi_get_be16(m + 17);
    if (nlen > EDI_HS_NAME_MAX_BYTES)
        return fail(hs, EDIST_EPROTO,
                    "challenge: oversized node name (%u bytes, max %d)", nlen,
                    EDI_HS_NAME_MAX_BYTES);
    if (CHALLENGE_FIXED_BYTES + (size_t)nlen > len ||
        CHALLENGE_FIXED_BYTES + (size_t)nlen > kept)
        return fail(hs, EDIST_EPROTO,
                    "challenge: name length %u exceeds the message", nlen);
    const uint8_t *name = m + CHALLENGE_FIXED_BYTES;
    if (nlen != strlen(peer) || memcmp(name, peer, nlen) != 0) {
        char shown[64];
        printable(shown, sizeof shown, name, nlen);
        return fail(hs, EDIST_EPROTO,
                    "challenge from the wrong node: expected %s, got \"%s\"",
                    peer, shown);
    }
    hs->res.peer_flags = edi_dflags_expand(flags);
    hs->res.peer_creation = creation;
    int rc = check_mandatory(hs, hs->res.peer_flags);
    if (rc < 0)
        return rc;
    rc = new_challenge(hs, &hs->our_challenge);
    if (rc < 0)
        return fail(hs, rc, "handshake: no random challenge");
    uint8_t *p = tx_frame(hs, REPLY_BYTES);
    if (p == NULL)
        return fail(hs, EDIST_ENOSPC, "handshake: output full");
    p[0] = 'r';
    edi_put_be32(p + 1, hs->our_challenge);
    rc = edi_hs_digest(hs->cookie, hs->cookie_len, challenge, p + 5);
    if (rc < 0)
        return fail(hs, rc, "handshake: MD5 unavailable");
    hs->phase = EDI_HS_P_AWAIT_ACK;
    return 0;
}

static int on_ack(edi_hs *hs, const uint8_t *m, size_t len)
{
    if (m[0] != 'a' || len != ACK_BYTES)
        return fail(hs, EDIST_EPROTO,
                    "expected challenge_ack 'a' (%d bytes) from %s, got tag "
                    "0x%02x (%zu bytes)",
                    ACK_BYTES, hs->res.peer_name, m[0], len);
    uint8_t want[EDI_HS_DIGEST_BYTES];
    int rc = edi_hs_digest(hs->cookie, hs->cookie_len, hs->our_challenge, want);
    if (rc < 0)
        return fail(hs, rc, "handshake: MD5 unavailable");
    if (CRYPTO_memcmp(want, m + 1, EDI_HS_DIGEST_BYTES) != 0)
        return fail(hs, EDIST_EAUTH,
                    "cookie mismatch with %s (invalid challenge ack)",
                    hs->res.peer_name);
    finish(hs);
    return 0;
}

/* ---- framing ------------------------------------------------------------ */

/* Whether a frame of len bytes can be what we wait for; checked on the
 * header so a bogus length fails at once instead of after a long read. */
static int check_frame_len(edi_hs *hs, size_t len)
{
    size_t lo = 1, hi = UINT16_MAX;
    switch (hs->phase) {
    case EDI_HS_P_AWAIT_NAME:
        lo = NAME_FIXED_BYTES;
        break;
    case EDI_HS_P_AWAIT_CHALLENGE:
        lo = CHALLENGE_FIXED_BYTES;
        break;
    case EDI_HS_P_AWAIT_REPLY:
        lo = hi = REPLY_BYTES;
        break;
    case EDI_HS_P_AWAIT_ACK:
        lo = hi = ACK_BYTES;
        break;
    case EDI_HS_P_AWAIT_ALIVE_REPLY:
        lo = 5;
        hi = 6;
        break;
    case EDI_HS_P_AWAIT_STATUS:
        lo = 2;
        /* Plain statuses are short; only named: carries a name and may
         * carry extra bytes. */
        if (!hs->cfg.name_me)
            hi = STATUS_PLAIN_MAX_BYTES;
        break;
    default:
        break;
    }
    if (len >= lo && len <= hi)
        return 0;
    static const char *const what[] = {
        [EDI_HS_P_AWAIT_NAME] = "send_name",
        [EDI_HS_P_AWAIT_ALIVE_REPLY] = "status reply",
        [EDI_HS_P_AWAIT_REPLY] = "challenge_reply",
        [EDI_HS_P_AWAIT_STATUS] = "status",
        [EDI_HS_P_AWAIT_CHALLENGE] = "challenge",
        [EDI_HS_P_AWAIT_ACK] = "challenge_ack",
    };
    const char *w =
        (size_t)hs->phase < sizeof what / sizeof what[0] && what[hs->phase]
            ? what[hs->phase]
            : "message";
    return fail(hs, EDIST_EPROTO,
                "bad handshake frame length %zu from %s (expected %s, "
                "%zu..%zu bytes)",
                len, peer_label(hs), w, lo, hi);
}

static int dispatch(edi_hs *hs)
{
    size_t len = hs->rx_frame_bytes;
    size_t kept = len < sizeof hs->rx ? len : sizeof hs->rx;
    const uint8_t *m = hs->rx;
    switch (hs->phase) {
    case EDI_HS_P_AWAIT_NAME:
        return on_name(hs, m, kept, len);
    case EDI_HS_P_AWAIT_ALIVE_REPLY:
        return on_alive_reply(hs, m, len);
    case EDI_HS_P_AWAIT_REPLY:
        return on_reply(hs, m, len);
    case EDI_HS_P_AWAIT_STATUS:
        return on_status(hs, m, kept, len);
    case EDI_HS_P_AWAIT_CHALLENGE:
        return on_challenge(hs, m, kept, len);
    case EDI_HS_P_AWAIT_ACK:
        return on_ack(hs, m, len);
    default:
        return fail(hs, EDIST_EINVAL, "handshake: input in phase %d",
                    (int)hs->phase);
    }
}

static bool awaiting_input(const edi_hs *hs)
{
    switch (hs->phase) {
    case EDI_HS_P_AWAIT_NAME:
    case EDI_HS_P_AWAIT_ALIVE_REPLY:
    case EDI_HS_P_AWAIT_REPLY:
    case EDI_HS_P_AWAIT_STATUS:
    case EDI_HS_P_AWAIT_CHALLENGE:
    case EDI_HS_P_AWAIT_ACK:
        return true;
    default:
        return false;
    }
}

size_t edi_hs_want(const edi_hs *hs)
{
    if (!awaiting_input(hs))
        return 0;
    if (hs->rx_hdr_have < 2)
        return 2u - hs->rx_hdr_have;
    return (size_t)hs->rx_frame_bytes - hs->rx_have_bytes;
}

int edi_hs_feed(edi_hs *hs, const uint8_t *data, size_t len, size_t *consumed)
{
    size_t used = 0;
    int rc = 0;
    if (hs->phase == EDI_HS_P_FAILED) {
        rc = hs->err;
        goto out;
    }
    while (used < len && awaiting_input(hs)) {
        if (hs->rx_hdr_have < 2) {
            hs->rx_hdr[hs->rx_hdr_have++] = data[used++];
            if (hs->rx_hdr_have < 2)
                continue;
            hs->rx_frame_bytes = edi_get_be16(hs->rx_hdr);
            hs->rx_have_bytes = 0;
            rc = check_frame_len(hs, hs->rx_frame_bytes);
            if (rc < 0)
                goto out;
            continue;
        }
        size_t need = (size_t)hs->rx_frame_bytes - hs->rx_have_bytes;
        size_t take = len - used < need ? len - used : need;
        /* Keep only the prefix we parse; the rest is ignorable extra. */
        if (hs->rx_have_bytes < sizeof hs->rx) {
            size_t room = sizeof hs->rx - hs->rx_have_bytes;
            memcpy(hs->rx + hs->rx_have_bytes, data + used,
                   take < room ? take : room);
        }
        hs->rx_have_bytes = (uint16_t)(hs->rx_have_bytes + take);
        used += take;
        if (hs->rx_have_bytes < hs->rx_frame_bytes)
            continue;
        hs->rx_hdr_have = 0;
        rc = dispatch(hs);
        if (rc < 0)
            goto out;
    }
out:
    if (consumed != NULL)
        *consumed = used;
    return rc;
}

/* ---- public lifecycle ------------------------------------------------- */

static int init_fail(edi_hs *hs, int err, const char *what)
{
    return fail(hs, err, "handshake: %s", what);
}

int edi_hs_init(edi_hs *hs, const edi_hs_config *cfg)
{
    if (hs == NULL)
        return edist_set_error(EDIST_EINVAL, "handshake: NULL");
    memset(hs, 0, sizeof *hs);
    hs->phase = EDI_HS_P_FAILED;
    if (cfg == NULL)
        return init_fail(hs, EDIST_EINVAL, "no config");
    hs->cfg = *cfg;
    hs->res.role = cfg->role;
    if (cfg->role != EDI_HS_INITIATOR && cfg->role != EDI_HS_ACCEPTOR)
        return init_fail(hs, EDIST_EINVAL, "bad role");
    if (cfg->name_me && cfg->role != EDI_HS_INITIATOR)
        return init_fail(hs, EDIST_EINVAL, "name_me is for initiators");
    if (cfg->our_name == NULL)
        return init_fail(hs, EDIST_EINVAL, "no node name");
    size_t our_len = strnlen(cfg->our_name, EDI_HS_NAME_MAX_BYTES + 1);
    bool our_ok = cfg->name_me
                      ? our_len <= EDI_HS_NAME_MAX_BYTES &&
                            host_ok((const uint8_t *)cfg->our_name, our_len)
                      : name_bytes_ok((const uint8_t *)cfg->our_name, our_len);
    if (!our_ok)
        return init_fail(hs, EDIST_EINVAL,
                         cfg->name_me ? "bad host name for name_me"
                                      : "bad node name (want name@host)");
    memcpy(hs->res.our_name, cfg->our_name, our_len + 1);
    hs->cfg.our_name = hs->res.our_name;
    hs->res.our_creation = cfg->our_creation;
    if (cfg->flags_remove & EDI_DFLAGS_MANDATORY_25)
        return init_fail(hs, EDIST_EINVAL, "cannot remove mandatory flags");
    hs->res.our_flags = edi_hs_our_flags(cfg);
    if (cfg->cookies == NULL && cfg->cookie == NULL)
        return init_fail(hs, EDIST_EINVAL, "no cookie");
    if (cfg->cookies == NULL) {
        int rc = lookup_cookie(hs, NULL);
        if (rc < 0)
            return rc;
    }

    if (cfg->role == EDI_HS_ACCEPTOR) {
        hs->cfg.peer_name = NULL;
        hs->phase = EDI_HS_P_AWAIT_NAME;
        return 0;
    }
    if (cfg->peer_name == NULL)
        return init_fail(hs, EDIST_EINVAL, "no peer name");
    size_t peer_len = strnlen(cfg->peer_name, EDI_HS_NAME_MAX_BYTES + 1);
    if (!name_bytes_ok((const uint8_t *)cfg->peer_name, peer_len))
        return init_fail(hs, EDIST_EINVAL, "bad peer node name");
    memcpy(hs->res.peer_name, cfg->peer_name, peer_len + 1);
    hs->cfg.peer_name = hs->res.peer_name;
    int rc = lookup_cookie(hs, hs->res.peer_name);
    if (rc < 0)
        return rc;
    return queue_name(hs);
}

const uint8_t *edi_hs_output(const edi_hs *hs, size_t *len)
{
    size_t n = hs->tx_len - hs->tx_off;
    if (len != NULL)
        *len = n;
    return n > 0 ? hs->tx + hs->tx_off : NULL;
}

void edi_hs_output_done(edi_hs *hs, size_t n)
{
    size_t have = hs->tx_len - hs->tx_off;
    hs->tx_off += n < have ? n : have;
    if (hs->tx_off == hs->tx_len)
        hs->tx_off = hs->tx_len = 0;
}

edi_hs_state edi_hs_get_state(const edi_hs *hs)
{
    switch (hs->phase) {
    case EDI_HS_P_DONE:
        return EDI_HS_DONE;
    case EDI_HS_P_FAILED:
        return EDI_HS_FAILED;
    case EDI_HS_P_WAIT_OLD:
        return EDI_HS_WAIT_OLD_CONN;
    default:
        return EDI_HS_RUNNING;
    }
}

static const char *waiting_for(const edi_hs *hs)
{
    switch (hs->phase) {
    case EDI_HS_P_AWAIT_NAME:
        return "its name (send_name)";
    case EDI_HS_P_AWAIT_ALIVE_REPLY:
        return "its answer to alive";
    case EDI_HS_P_AWAIT_REPLY:
        return "its challenge reply";
    case EDI_HS_P_WAIT_OLD:
        return "the old connection to go down";
    case EDI_HS_P_AWAIT_STATUS:
        return "its status";
    case EDI_HS_P_AWAIT_CHALLENGE:
        return "its challenge";
    case EDI_HS_P_AWAIT_ACK:
        return "its challenge ack";
    default:
        return "nothing";
    }
}

int edi_hs_eof(edi_hs *hs)
{
    if (hs->phase == EDI_HS_P_DONE)
        return 0;
    if (hs->phase == EDI_HS_P_FAILED)
        return hs->err;
    const char *peer = peer_label(hs);
    if (hs->rx_hdr_have > 0) {
        bool in_header = hs->rx_hdr_have < 2;
        unsigned got = in_header ? hs->rx_hdr_have : 2u + hs->rx_have_bytes;
        unsigned whole = in_header ? 2u : 2u + hs->rx_frame_bytes;
        return fail(hs, EDIST_EPROTO,
                    "%s closed the connection in the middle of a handshake "
                    "frame (%u of %u bytes) while we waited for %s",
                    peer, got, whole, waiting_for(hs));
    }
    /* OTP answers a wrong digest by closing the connection without a word;
     * after our reply that is what a silent close means. */
    if (hs->phase == EDI_HS_P_AWAIT_ACK)
        return fail(hs, EDIST_EAUTH,
                    "cookie mismatch with %s (it closed the connection after "
                    "our challenge reply)",
                    peer);
    return fail(hs, EDIST_ECLOSED,
                "%s closed the connection while we waited for %s", peer,
                waiting_for(hs));
}

int edi_hs_timeout(edi_hs *hs)
{
    if (hs->phase == EDI_HS_P_DONE)
        return 0;
    if (hs->phase == EDI_HS_P_FAILED)
        return hs->err;
    return fail(hs, EDIST_ETIMEDOUT,
                "handshake with %s timed out waiting for %s%s", peer_label(hs),
                waiting_for(hs),
                hs->rx_hdr_have > 0 ? " (frame incomplete)" : "");
}

int edi_hs_old_conn_gone(edi_hs *hs)
{
    if (hs->phase != EDI_HS_P_WAIT_OLD)
        return edist_set_error(EDIST_EINVAL,
                               "handshake: not waiting for an old connection");
    return queue_ack(hs, hs->peer_challenge);
}

const edi_hs_result *edi_hs_get_result(const edi_hs *hs)
{
    return hs->phase == EDI_HS_P_DONE ? &hs->res : NULL;
}

int edi_hs_error_code(const edi_hs *hs)
{
    return hs->phase == EDI_HS_P_FAILED ? hs->err : 0;
}

const char *edi_hs_error(const edi_hs *hs)
{
    return hs->phase == EDI_HS_P_FAILED ? hs->detail : "";
}

void edi_hs_wipe(edi_hs *hs)
{
    OPENSSL_cleanse(hs->cookie, sizeof hs->cookie);
    OPENSSL_cleanse(&hs->our_challenge, sizeof hs->our_challenge);
    hs->cookie_len = 0;
}
