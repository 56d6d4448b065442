/* SPDX-License-Identifier: Apache-2.0 */
/* EPMD wire format: pure encoders and parsers over byte buffers.
 *
 * Nothing here does I/O or allocates, so every parser can be fuzzed on its
 * own. Parsers never read outside [buf, buf + len), bound every length by
 * the limits below, and return views into the caller's buffer (valid as
 * long as that buffer is). All integers on the wire are big-endian.
 *
 * Every function returns 0 (or a byte count) on success and a negative
 * edist_err on failure, with detail from edist_set_error() for EDIST_EPROTO.
 * EDIST_ETRUNC always means "valid so far, read more bytes and call again".
 */
#ifndef EDI_EPMD_PROTO_H
#define EDI_EPMD_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define EDI_EPMD_DEFAULT_PORT 4369

/* Request and response tags (erl_dist_protocol, "EPMD Protocol"). */
enum {
    EDI_EPMD_ALIVE2_REQ = 120, /* 'x' */
    EDI_EPMD_ALIVE2_X_RESP =
        118, /* 'v': u32 creation, for highest version >= 6 */
    EDI_EPMD_ALIVE2_RESP = 121,      /* 'y': u16 creation, for older nodes */
    EDI_EPMD_PORT_PLEASE2_REQ = 122, /* 'z' */
    EDI_EPMD_PORT2_RESP = 119,       /* 'w' */
    EDI_EPMD_NAMES_REQ = 110,        /* 'n' */
    EDI_EPMD_DUMP_REQ = 100,         /* 'd' */
    EDI_EPMD_KILL_REQ = 107,         /* 'k' */
    EDI_EPMD_STOP_REQ = 115,         /* 's' */
};

enum {
    EDI_EPMD_NODE_TYPE_NORMAL = 77, /* 'M' */
    EDI_EPMD_NODE_TYPE_HIDDEN = 72, /* 'H' */
    EDI_EPMD_PROTOCOL_TCP = 0,      /* TCP/IPv4, the only one defined */
};

/* Limits, the same as epmd's so that what one accepts the other does. */
#define EDI_EPMD_MAX_NAME_CHARS 255u        /* an atom's length */
#define EDI_EPMD_MAX_NAME_BYTES (255u * 4u) /* 255 UTF-8 characters */
#define EDI_EPMD_MAX_EXTRA_BYTES (255u * 4u)
/* Largest request body (after the u16 length): epmd's input buffer is
 * 3 * 1020 bytes including the 2-byte header and a terminating NUL. */
#define EDI_EPMD_MAX_REQUEST_BYTES 3057u
/* Largest single reply other than NAMES/DUMP text: a PORT2_RESP. */
#define EDI_EPMD_MAX_PORT2_RESP_BYTES                                          \
    (12u + EDI_EPMD_MAX_NAME_BYTES + 2u + EDI_EPMD_MAX_EXTRA_BYTES)

/* Result byte in ALIVE2 responses when a registration is refused, and the
 * creation epmd sends with it. */
#define EDI_EPMD_RESULT_REFUSED 1u
#define EDI_EPMD_REFUSED_CREATION 99u

/* What a node registers (ALIVE2_REQ) and what PORT2_RESP returns. */
typedef struct edi_epmd_node_fields {
    uint16_t port;            /* the node's distribution listen port */
    uint8_t node_type;        /* EDI_EPMD_NODE_TYPE_* */
    uint8_t protocol;         /* EDI_EPMD_PROTOCOL_TCP */
    uint16_t highest_version; /* distribution versions; OTP 25 sends 6, 6 */
    uint16_t lowest_version;
    const uint8_t *name; /* UTF-8, not NUL-terminated */
    size_t name_len;
    const uint8_t *extra; /* opaque; may be NULL when extra_len is 0 */
    size_t extra_len;
} edi_epmd_node_fields;

/* A parsed request. Pointers are views into the parsed buffer. */
typedef struct edi_epmd_request {
    uint8_t type;               /* EDI_EPMD_*_REQ */
    edi_epmd_node_fields alive; /* ALIVE2_REQ only */
    const uint8_t *name;        /* PORT_PLEASE2_REQ and STOP_REQ: the name */
    size_t name_len;
} edi_epmd_request;

/* 0 if name is a valid node name as epmd checks it: 1..255 UTF-8
 * characters, at most EDI_EPMD_MAX_NAME_BYTES, well-formed UTF-8 (no
 * overlongs, surrogates or code points above U+10FFFF), no NUL byte.
 * EDIST_EINVAL otherwise (with detail). */
int edi_epmd_check_name(const uint8_t *name, size_t len);

/* Framing. Looks at the first len bytes of a connection's input: if fewer
 * than 2, EDIST_ETRUNC; if the u16 length is 0 or above
 * EDI_EPMD_MAX_REQUEST_BYTES, EDIST_EPROTO; else stores the body length in
 * *body_len and returns 0 (the whole request is 2 + *body_len bytes). */
int edi_epmd_frame_length(const uint8_t *buf, size_t len, size_t *body_len);

/* Parses one request body (the bytes after the u16 length). Accepts what
 * epmd accepts: ALIVE2 fields must fit (trailing bytes are ignored, as epmd
 * does); PORT_PLEASE2 and STOP may end with one NUL, which is dropped, and
 * must otherwise contain none; NAMES, DUMP and KILL ignore their body.
 * Name *contents* (UTF-8, character count) are not checked here: epmd
 * answers "refused" for a bad ALIVE2 name rather than dropping the
 * connection; use edi_epmd_check_name(). Unknown type: EDIST_EBADTAG.
 * Malformed: EDIST_EPROTO. */
int edi_epmd_parse_request(const uint8_t *body, size_t len,
                           edi_epmd_request *req);

/* Encoders. Each writes a complete message into buf (capacity cap) and
 * returns the number of bytes written, or EDIST_ENOSPC if cap is too small,
 * or EDIST_EINVAL for fields out of the limits above. Requests include their
 * u16 length prefix; responses have none (epmd sends them raw). */
int edi_epmd_encode_alive2_req(uint8_t *buf, size_t cap,
                               const edi_epmd_node_fields *f);
int edi_epmd_encode_port_please2_req(uint8_t *buf, size_t cap, const char *name,
                                     size_t name_len);
/* NAMES_REQ, DUMP_REQ or KILL_REQ: a one-byte body. */
int edi_epmd_encode_simple_req(uint8_t *buf, size_t cap, uint8_t type);
int edi_epmd_encode_stop_req(uint8_t *buf, size_t cap, const char *name,
                             size_t name_len);

/* ALIVE2_X_RESP (x_resp != 0; 6 bytes, u32 creation) or the old
 * ALIVE2_RESP (4 bytes, u16 creation). */
int edi_epmd_encode_alive2_resp(uint8_t *buf, size_t cap, int x_resp,
                                uint8_t result, uint32_t creation);
/* PORT2_RESP: with f == NULL the 2-byte "not found" form. */
int edi_epmd_encode_port2_resp(uint8_t *buf, size_t cap,
                               const edi_epmd_node_fields *f);
/* The u32 epmd port that starts a NAMES or DUMP reply. */
int edi_epmd_encode_names_header(uint8_t *buf, size_t cap, uint32_t epmd_port);
/* "name <name> at port <port>\n", exactly as epmd writes it. */
int edi_epmd_encode_names_line(uint8_t *buf, size_t cap, const uint8_t *name,
                               size_t name_len, uint16_t port);

/* Response parsers. Each parses the start of buf and stores in *consumed how
 * many bytes the message took. EDIST_ETRUNC: incomplete, read more. */

/* ALIVE2_X_RESP or ALIVE2_RESP. *result is the result byte (0 = ok), and
 * *creation the creation (widened from u16 for the old form). */
int edi_epmd_parse_alive2_resp(const uint8_t *buf, size_t len, uint8_t *result,
                               uint32_t *creation, size_t *consumed);
/* PORT2_RESP. A non-zero result returns EDIST_ENOTFOUND (consumed = 2).
 * On success the fields' name/extra point into buf; name and extra lengths
 * are bounded by EDI_EPMD_MAX_NAME_BYTES / EDI_EPMD_MAX_EXTRA_BYTES
 * (EDIST_EPROTO beyond). */
int edi_epmd_parse_port2_resp(const uint8_t *buf, size_t len,
                              edi_epmd_node_fields *f, size_t *consumed);
/* The u32 port at the start of a NAMES/DUMP reply. */
int edi_epmd_parse_names_header(const uint8_t *buf, size_t len,
                                uint32_t *epmd_port);

/* One line of NAMES text: "name <N> at port <P>\n". Parses the line that
 * starts at buf; *consumed covers it and its newline. The name is a view
 * into buf and may contain spaces (epmd does not forbid them), so the last
 * " at port " on the line separates it from the port. EDIST_ETRUNC: no
 * newline yet; EDIST_EPROTO: a line that is not of that form (consumed is
 * still set, so a caller can skip it). */
int edi_epmd_parse_names_line(const uint8_t *buf, size_t len,
                              const uint8_t **name, size_t *name_len,
                              uint16_t *port, size_t *consumed);

#endif
