/* SPDX-License-Identifier: Apache-2.0 */
/* EPMD wire format fuzz target: the server's framing and request parser,
 * and the client's response parsers, on any bytes. Nothing may read out of
 * bounds; whatever parses must encode back to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control/epmd_proto.h"
#include "edist/error.h"

static void requests(const uint8_t *data, size_t len)
{
    size_t body = 0;
    int rc = edi_epmd_frame_length(data, len, &body);
    if (rc == 0) {
        if (body < 1 || body > EDI_EPMD_MAX_REQUEST_BYTES)
            abort();
    } else if (rc != EDIST_ETRUNC && rc != EDIST_EPROTO) {
        abort();
    }
    /* The body parser on everything, framed or not. */
    edi_epmd_request rq;
    rc = edi_epmd_parse_request(data, len, &rq);
    if (rc < 0)
        return;
    if (rq.type == EDI_EPMD_ALIVE2_REQ) {
        const edi_epmd_node_fields *f = &rq.alive;
        if (f->name < data || f->name + f->name_len > data + len ||
            f->extra < data || f->extra + f->extra_len > data + len)
            abort();
        if (edi_epmd_check_name(f->name, f->name_len) == 0 &&
            f->extra_len <= EDI_EPMD_MAX_EXTRA_BYTES) {
            uint8_t out[2 + 13 + EDI_EPMD_MAX_NAME_BYTES +
                        EDI_EPMD_MAX_EXTRA_BYTES];
            int n = edi_epmd_encode_alive2_req(out, sizeof out, f);
            if (n < 15 || memcmp(out + 2, data, (size_t)n - 2) != 0)
                abort(); /* same bytes, minus whatever trailed the request */
        }
    } else if (rq.type == EDI_EPMD_PORT_PLEASE2_REQ ||
               rq.type == EDI_EPMD_STOP_REQ) {
        if (rq.name_len == 0 || rq.name != data + 1 || rq.name_len > len - 1 ||
            memchr(rq.name, 0, rq.name_len))
            abort();
    }
}

static void responses(const uint8_t *data, size_t len)
{
    uint8_t result;
    uint32_t creation;
    size_t used = 0;
    if (edi_epmd_parse_alive2_resp(data, len, &result, &creation, &used) == 0) {
        uint8_t out[8];
        int n = edi_epmd_encode_alive2_resp(out, sizeof out,
                                            data[0] == EDI_EPMD_ALIVE2_X_RESP,
                                            result, creation);
        if (n < 0 || (size_t)n != used || used > len ||
            memcmp(out, data, used) != 0)
            abort();
    }
    edi_epmd_node_fields f;
    int rc = edi_epmd_parse_port2_resp(data, len, &f, &used);
    if (rc == 0) {
        static uint8_t out[EDI_EPMD_MAX_PORT2_RESP_BYTES];
        int n = edi_epmd_encode_port2_resp(out, sizeof out, &f);
        if (n < 0 || (size_t)n != used || used > len ||
            memcmp(out, data, used) != 0)
            abort();
    } else if (rc == EDIST_ENOTFOUND && (used != 2 || len < 2)) {
        abort();
    }
    uint32_t port;
    (void)edi_epmd_parse_names_header(data, len, &port);
}

static void names_text(const uint8_t *data, size_t len)
{
    const uint8_t *p = data;
    size_t left = len;
    while (left) {
        const uint8_t *name;
        size_t name_len, used = 0;
        uint16_t port;
        int rc =
            edi_epmd_parse_names_line(p, left, &name, &name_len, &port, &used);
        if (rc == EDIST_ETRUNC)
            break;
        if (used == 0 || used > left)
            abort();
        if (rc == 0) {
            if (name < p || name + name_len > p + used)
                abort();
            uint8_t out[EDI_EPMD_MAX_NAME_BYTES + 32];
            int n = edi_epmd_encode_names_line(out, sizeof out, name, name_len,
                                               port);
            /* Leading zeros in the port are the one way to differ. */
            if (n > 0 && (size_t)n == used && memcmp(out, p, used) != 0)
                abort();
        }
        p += used;
        left -= used;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len == 0)
        return 0;
    /* Exact-size copy: any overread is past an allocation. */
    uint8_t *copy = malloc(len - 1 ? len - 1 : 1);
    if (!copy)
        return 0;
    memcpy(copy, data + 1, len - 1);
    switch (data[0] % 4) {
    case 0:
        requests(copy, len - 1);
        break;
    case 1:
        responses(copy, len - 1);
        break;
    case 2:
        names_text(copy, len - 1);
        break;
    default:
        (void)edi_epmd_check_name(copy, len - 1);
        break;
    }
    free(copy);
    return 0;
}
