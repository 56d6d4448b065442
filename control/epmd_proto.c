/* SPDX-License-Identifier: Apache-2.0 */
/* EPMD wire format. See epmd_proto.h. */
#include "control/epmd_proto.h"

#include <string.h>

#include "base/bytes.h"
#include "edist/error.h"

/* Number of UTF-8 characters in s, or -1 if it is not well-formed. */
static long utf8_count(const uint8_t *s, size_t len)
{
    long chars = 0;
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            chars++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 2;
            cp = c & 0x1Fu;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            cp = c & 0x0Fu;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            cp = c & 0x07u;
        } else {
            return -1; /* continuation byte, overlong lead (C0/C1) or > F4 */
        }
        if (len - i < n)
            return -1;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0u) != 0x80u)
                return -1;
            cp = cp << 6 | (s[i + k] & 0x3Fu);
        }
        /* Reject overlong forms, UTF-16 surrogates and > U+10FFFF. */
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return -1;
        i += n;
        chars++;
    }
    return chars;
}

int edi_epmd_check_name(const uint8_t *name, size_t len)
{
    if (len == 0)
        return edist_set_error(EDIST_EINVAL, "epmd: empty node name");
    if (len > EDI_EPMD_MAX_NAME_BYTES)
        return edist_set_error(EDIST_EINVAL,
                               "epmd: node name of %zu bytes (limit %u)", len,
                               EDI_EPMD_MAX_NAME_BYTES);
    if (memchr(name, 0, len))
        return edist_set_error(EDIST_EINVAL,
                               "epmd: node name contains a NUL byte");
    long chars = utf8_count(name, len);
    if (chars < 0)
        return edist_set_error(EDIST_EINVAL,
                               "epmd: node name is not valid UTF-8");
    if ((unsigned long)chars > EDI_EPMD_MAX_NAME_CHARS)
        return edist_set_error(EDIST_EINVAL,
                               "epmd: node name of %ld characters (limit %u)",
                               chars, EDI_EPMD_MAX_NAME_CHARS);
    return 0;
}

int edi_epmd_frame_length(const uint8_t *buf, size_t len, size_t *body_len)
{
    if (len < 2)
        return EDIST_ETRUNC;
    size_t n = edi_get_be16(buf);
    if (n == 0 || n > EDI_EPMD_MAX_REQUEST_BYTES)
        return edist_set_error(EDIST_EPROTO,
                               "epmd: request length %zu outside 1..%u", n,
                               EDI_EPMD_MAX_REQUEST_BYTES);
    *body_len = n;
    return 0;
}

/* The name of PORT_PLEASE2 and STOP: the rest of the body, one trailing NUL
 * allowed (old clients sent one), none inside. */
static int parse_tail_name(const uint8_t *body, size_t len,
                           edi_epmd_request *req, const char *what)
{
    const uint8_t *name = body + 1;
    size_t n = len - 1;
    if (n > 0 && name[n - 1] == 0)
        n--;
    if (n == 0)
        return edist_set_error(EDIST_EPROTO, "epmd: %s without a node name",
                               what);
    if (memchr(name, 0, n))
        return edist_set_error(EDIST_EPROTO,
                               "epmd: %s node name contains a NUL byte", what);
    req->name = name;
    req->name_len = n;
    return 0;
}

int edi_epmd_parse_request(const uint8_t *body, size_t len,
                           edi_epmd_request *req)
{
    memset(req, 0, sizeof *req);
    if (len == 0)
        return edist_set_error(EDIST_EPROTO, "epmd: empty request");
    req->type = body[0];
    switch (body[0]) {
    case EDI_EPMD_ALIVE2_REQ: {
        /* tag, port u16, type, proto, high u16, low u16, nlen u16 = 11 bytes,
         * then the name, then elen u16 and extra. */
        if (len < 13)
            return edist_set_error(EDIST_EPROTO,
                                   "epmd: ALIVE2_REQ of %zu bytes is too short",
                                   len);
        edi_epmd_node_fields *f = &req->alive;
        f->port = edi_get_be16(body + 1);
        f->node_type = body[3];
        f->protocol = body[4];
        f->highest_version = edi_get_be16(body + 5);
        f->lowest_version = edi_get_be16(body + 7);
        size_t nlen = edi_get_be16(body + 9);
        if (nlen == 0)
            return edist_set_error(EDIST_EPROTO,
                                   "epmd: ALIVE2_REQ with an empty name");
        if (nlen > len - 13)
            return edist_set_error(
                EDIST_EPROTO,
                "epmd: ALIVE2_REQ name length %zu exceeds the packet", nlen);
        f->name = body + 11;
        f->name_len = nlen;
        size_t elen = edi_get_be16(body + 11 + nlen);
        if (elen > len - 13 - nlen)
            return edist_set_error(
                EDIST_EPROTO,
                "epmd: ALIVE2_REQ extra length %zu exceeds the packet", elen);
        f->extra = body + 13 + nlen;
        f->extra_len = elen;
        if (memchr(f->name, 0, nlen))
            return edist_set_error(EDIST_EPROTO,
                                   "epmd: ALIVE2_REQ name contains a NUL byte");
        return 0;
    }
    case EDI_EPMD_PORT_PLEASE2_REQ:
        return parse_tail_name(body, len, req, "PORT_PLEASE2_REQ");
    case EDI_EPMD_STOP_REQ:
        return parse_tail_name(body, len, req, "STOP_REQ");
    case EDI_EPMD_NAMES_REQ:
    case EDI_EPMD_DUMP_REQ:
    case EDI_EPMD_KILL_REQ:
        return 0;
    default:
        return edist_set_error(EDIST_EBADTAG, "epmd: unknown request type %u",
                               body[0]);
    }
}

int edi_epmd_encode_alive2_req(uint8_t *buf, size_t cap,
                               const edi_epmd_node_fields *f)
{
    int rc = edi_epmd_check_name(f->name, f->name_len);
    if (rc < 0)
        return rc;
    if (f->extra_len > EDI_EPMD_MAX_EXTRA_BYTES)
        return edist_set_error(EDIST_EINVAL,
                               "epmd: extra of %zu bytes (limit %u)",
                               f->extra_len, EDI_EPMD_MAX_EXTRA_BYTES);
    size_t body = 13 + f->name_len + f->extra_len;
    if (cap < 2 + body)
        return EDIST_ENOSPC;
    edi_put_be16(buf, (uint16_t)body);
    buf[2] = EDI_EPMD_ALIVE2_REQ;
    edi_put_be16(buf + 3, f->port);
    buf[5] = f->node_type;
    buf[6] = f->protocol;
    edi_put_be16(buf + 7, f->highest_version);
    edi_put_be16(buf + 9, f->lowest_version);
    edi_put_be16(buf + 11, (uint16_t)f->name_len);
    memcpy(buf + 13, f->name, f->name_len);
    edi_put_be16(buf + 13 + f->name_len, (uint16_t)f->extra_len);
    if (f->extra_len)
        memcpy(buf + 15 + f->name_len, f->extra, f->extra_len);
    return (int)(2 + body);
}

static int encode_name_req(uint8_t *buf, size_t cap, uint8_t type,
                           const char *name, size_t name_len)
{
    int rc = edi_epmd_check_name((const uint8_t *)name, name_len);
    if (rc < 0)
        return rc;
    if (cap < 3 + name_len)
        return EDIST_ENOSPC;
    edi_put_be16(buf, (uint16_t)(1 + name_len));
    buf[2] = type;
    memcpy(buf + 3, name, name_len);
    return (int)(3 + name_len);
}

int edi_epmd_encode_port_please2_req(uint8_t *buf, size_t cap, const char *name,
                                     size_t name_len)
{
    return encode_name_req(buf, cap, EDI_EPMD_PORT_PLEASE2_REQ, name, name_len);
}

int edi_epmd_encode_stop_req(uint8_t *buf, size_t cap, const char *name,
                             size_t name_len)
{
    return encode_name_req(buf, cap, EDI_EPMD_STOP_REQ, name, name_len);
}

int edi_epmd_encode_simple_req(uint8_t *buf, size_t cap, uint8_t type)
{
    if (type != EDI_EPMD_NAMES_REQ && type != EDI_EPMD_DUMP_REQ &&
        type != EDI_EPMD_KILL_REQ)
        return edist_set_error(EDIST_EINVAL,
                               "epmd: request type %u takes arguments", type);
    if (cap < 3)
        return EDIST_ENOSPC;
    edi_put_be16(buf, 1);
    buf[2] = type;
    return 3;
}

int edi_epmd_encode_alive2_resp(uint8_t *buf, size_t cap, int x_resp,
                                uint8_t result, uint32_t creation)
{
    size_t n = x_resp ? 6 : 4;
    if (cap < n)
        return EDIST_ENOSPC;
    buf[0] = x_resp ? EDI_EPMD_ALIVE2_X_RESP : EDI_EPMD_ALIVE2_RESP;
    buf[1] = result;
    if (x_resp)
        edi_put_be32(buf + 2, creation);
    else
        edi_put_be16(buf + 2, (uint16_t)creation);
    return (int)n;
}

int edi_epmd_encode_port2_resp(uint8_t *buf, size_t cap,
                               const edi_epmd_node_fields *f)
{
    if (!f) {
        if (cap < 2)
            return EDIST_ENOSPC;
        buf[0] = EDI_EPMD_PORT2_RESP;
        buf[1] = EDI_EPMD_RESULT_REFUSED;
        return 2;
    }
    if (f->name_len > EDI_EPMD_MAX_NAME_BYTES ||
        f->extra_len > EDI_EPMD_MAX_EXTRA_BYTES)
        return edist_set_error(EDIST_EINVAL, "epmd: PORT2_RESP field too long");
    size_t n = 12 + f->name_len + 2 + f->extra_len;
    if (cap < n)
        return EDIST_ENOSPC;
    buf[0] = EDI_EPMD_PORT2_RESP;
    buf[1] = 0;
    edi_put_be16(buf + 2, f->port);
    buf[4] = f->node_type;
    buf[5] = f->protocol;
    edi_put_be16(buf + 6, f->highest_version);
    edi_put_be16(buf + 8, f->lowest_version);
    edi_put_be16(buf + 10, (uint16_t)f->name_len);
    if (f->name_len)
        memcpy(buf + 12, f->name, f->name_len);
    edi_put_be16(buf + 12 + f->name_len, (uint16_t)f->extra_len);
    if (f->extra_len)
        memcpy(buf + 14 + f->name_len, f->extra, f->extra_len);
    return (int)n;
}

int edi_epmd_encode_names_header(uint8_t *buf, size_t cap, uint32_t epmd_port)
{
    if (cap < 4)
        return EDIST_ENOSPC;
    edi_put_be32(buf, epmd_port);
    return 4;
}

int edi_epmd_encode_names_line(uint8_t *buf, size_t cap, const uint8_t *name,
                               size_t name_len, uint16_t port)
{
    static const char pre[] = "name ";
    static const char mid[] = " at port ";
    char digits[8];
    size_t nd = 0;
    unsigned v = port;
    do {
        digits[nd++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    size_t n = (sizeof pre - 1) + name_len + (sizeof mid - 1) + nd + 1;
    if (name_len > EDI_EPMD_MAX_NAME_BYTES)
        return edist_set_error(EDIST_EINVAL,
                               "epmd: name too long for a NAMES line");
    if (cap < n)
        return EDIST_ENOSPC;
    uint8_t *p = buf;
    memcpy(p, pre, sizeof pre - 1);
    p += sizeof pre - 1;
    if (name_len)
        memcpy(p, name, name_len);
    p += name_len;
    memcpy(p, mid, sizeof mid - 1);
    p += sizeof mid - 1;
    while (nd)
        *p++ = (uint8_t)digits[--nd];
    *p++ = '\n';
    return (int)n;
}

int edi_epmd_parse_alive2_resp(const uint8_t *buf, size_t len, uint8_t *result,
                               uint32_t *creation, size_t *consumed)
{
    if (len < 1)
        return EDIST_ETRUNC;
    size_t need;
    if (buf[0] == EDI_EPMD_ALIVE2_X_RESP)
        need = 6;
    else if (buf[0] == EDI_EPMD_ALIVE2_RESP)
        need = 4;
    else
        return edist_set_error(EDIST_EPROTO,
                               "epmd: unexpected reply tag %u to ALIVE2_REQ",
                               buf[0]);
    if (len < need)
        return EDIST_ETRUNC;
    *result = buf[1];
    *creation = need == 6 ? edi_get_be32(buf + 2) : edi_get_be16(buf + 2);
    *consumed = need;
    return 0;
}

int edi_epmd_parse_port2_resp(const uint8_t *buf, size_t len,
                              edi_epmd_node_fields *f, size_t *consumed)
{
    memset(f, 0, sizeof *f);
    if (len < 1)
        return EDIST_ETRUNC;
    if (buf[0] != EDI_EPMD_PORT2_RESP)
        return edist_set_error(
            EDIST_EPROTO, "epmd: unexpected reply tag %u to PORT_PLEASE2_REQ",
            buf[0]);
    if (len < 2)
        return EDIST_ETRUNC;
    if (buf[1] != 0) {
        *consumed = 2;
        return EDIST_ENOTFOUND;
    }
    if (len < 12)
        return EDIST_ETRUNC;
    f->port = edi_get_be16(buf + 2);
    f->node_type = buf[4];
    f->protocol = buf[5];
    f->highest_version = edi_get_be16(buf + 6);
    f->lowest_version = edi_get_be16(buf + 8);
    size_t nlen = edi_get_be16(buf + 10);
    if (nlen > EDI_EPMD_MAX_NAME_BYTES)
        return edist_set_error(EDIST_EPROTO,
                               "epmd: PORT2_RESP name of %zu bytes", nlen);
    if (len - 12 < nlen + 2)
        return EDIST_ETRUNC;
    size_t elen = edi_get_be16(buf + 12 + nlen);
    if (elen > EDI_EPMD_MAX_EXTRA_BYTES)
        return edist_set_error(EDIST_EPROTO,
                               "epmd: PORT2_RESP extra of %zu bytes", elen);
    if (len - 14 - nlen < elen)
        return EDIST_ETRUNC;
    f->name = buf + 12;
    f->name_len = nlen;
    f->extra = buf + 14 + nlen;
    f->extra_len = elen;
    *consumed = 14 + nlen + elen;
    return 0;
}

int edi_epmd_parse_names_header(const uint8_t *buf, size_t len,
                                uint32_t *epmd_port)
{
    if (len < 4)
        return EDIST_ETRUNC;
    *epmd_port = edi_get_be32(buf);
    return 0;
}

int edi_epmd_parse_names_line(const uint8_t *buf, size_t len,
                              const uint8_t **name, size_t *name_len,
                              uint16_t *port, size_t *consumed)
{
    static const char pre[] = "name ";
    static const char mid[] = " at port ";
    const size_t npre = sizeof pre - 1, nmid = sizeof mid - 1;
    const uint8_t *nl = memchr(buf, '\n', len);
    if (!nl)
        return EDIST_ETRUNC;
    size_t line = (size_t)(nl - buf);
    *consumed = line + 1;
    if (line < npre + 1 + nmid + 1 || memcmp(buf, pre, npre) != 0)
        return edist_set_error(EDIST_EPROTO,
                               "epmd: NAMES line does not start with 'name '");
    /* The port is the run of digits at the end of the line. */
    size_t d = line;
    while (d > 0 && buf[d - 1] >= '0' && buf[d - 1] <= '9')
        d--;
    size_t ndigits = line - d;
    if (ndigits == 0 || ndigits > 5)
        return edist_set_error(EDIST_EPROTO,
                               "epmd: NAMES line without a port number");
    if (d < npre + 1 + nmid || memcmp(buf + d - nmid, mid, nmid) != 0)
        return edist_set_error(EDIST_EPROTO,
                               "epmd: NAMES line without ' at port '");
    unsigned long v = 0;
    for (size_t i = d; i < line; i++)
        v = v * 10 + (unsigned long)(buf[i] - '0');
    if (v > 65535)
        return edist_set_error(EDIST_EPROTO,
                               "epmd: NAMES port %lu out of range", v);
    *name = buf + npre;
    *name_len = d - nmid - npre;
    *port = (uint16_t)v;
    return 0;
}
