/* SPDX-License-Identifier: Apache-2.0 */
/* EPMD client: register a node, look one up, list names.
 *
 * All calls are blocking, on plain TCP sockets, and bounded by timeout_ms
 * (the whole exchange, connect included; <= 0 means
 * EDI_EPMD_DEFAULT_TIMEOUT_MS). They may be called from any thread; they
 * keep no state. Returns 0 or a negative edist_err with detail in
 * edist_last_error():
 *   EDIST_EIO        cannot resolve or connect (nothing listening)
 *   EDIST_ETIMEDOUT  no complete answer in time
 *   EDIST_ECLOSED    the port mapper closed without answering (epmd does
 *                    this for requests it rejects)
 *   EDIST_EPROTO     an answer we cannot parse
 *   EDIST_EEXIST     registration refused (name in use, or invalid)
 *   EDIST_ENOTFOUND  no node of that name
 *
 * host: a name or numeric address; NULL means 127.0.0.1. epmd_port: 0 means
 * $ERL_EPMD_PORT if set to a valid port, else 4369 (as erl does).
 */
#ifndef EDI_EPMD_CLIENT_H
#define EDI_EPMD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "control/epmd_proto.h"

#define EDI_EPMD_DEFAULT_TIMEOUT_MS 10000 /* erl_epmd waits 10 s for replies   \
                                           */
/* NAMES/DUMP replies larger than this are refused (EDIST_ENOMEM). */
#define EDI_EPMD_MAX_NAMES_REPLY_BYTES (8u * 1024u * 1024u)

/* What to register. name: the node's short name (the part before '@'). */
typedef struct edi_epmd_registration {
    const char *name;
    uint16_t listen_port;     /* where the node accepts distribution */
    uint8_t node_type;        /* EDI_EPMD_NODE_TYPE_NORMAL or _HIDDEN */
    uint8_t protocol;         /* EDI_EPMD_PROTOCOL_TCP */
    uint16_t highest_version; /* 0 means 6 */
    uint16_t lowest_version;  /* 0 means 6 (OTP 23+ handshake only) */
    const uint8_t *extra;     /* opaque, up to EDI_EPMD_MAX_EXTRA_BYTES */
    size_t extra_len;
} edi_epmd_registration;

/* A PORT2_RESP, copied out of the socket buffer. */
typedef struct edi_epmd_node_info {
    uint16_t port;
    uint8_t node_type;
    uint8_t protocol;
    uint16_t highest_version;
    uint16_t lowest_version;
    char name[EDI_EPMD_MAX_NAME_BYTES + 1]; /* NUL-terminated */
    size_t name_len;
    uint8_t extra[EDI_EPMD_MAX_EXTRA_BYTES];
    size_t extra_len;
} edi_epmd_node_info;

/* The port a port-0 argument stands for: $ERL_EPMD_PORT or 4369. */
uint16_t edi_epmd_default_port(void);
/* The same, strictly: 0 and *port ($ERL_EPMD_PORT, or 4369 when unset),
 * or EDIST_EINVAL when $ERL_EPMD_PORT is set but not a port. */
int edi_epmd_env_port(uint16_t *port);

/* Registers with ALIVE2_REQ. On success *creation is the creation epmd
 * assigned and *fd the connection: the registration lasts exactly as long
 * as this descriptor stays open, so the caller owns it and closes it (or
 * calls edi_epmd_unregister) to unregister. The fd is blocking and
 * close-on-exec; if it ever becomes readable the port mapper has gone away. */
int edi_epmd_register(const char *host, uint16_t epmd_port,
                      const edi_epmd_registration *reg, int timeout_ms,
                      uint32_t *creation, int *fd);

/* Closes a registration's descriptor (unregisters the node). fd < 0: no-op. */
void edi_epmd_unregister(int fd);

/* PORT_PLEASE2_REQ: where node `name` (short name) listens. */
int edi_epmd_port_please(const char *host, uint16_t epmd_port, const char *name,
                         int timeout_ms, edi_epmd_node_info *info);

/* NAMES_REQ: *text receives the reply text after the port (lines
 * "name N at port P\n"), NUL-terminated, malloc'd (the caller frees it);
 * *text_len its length; *epmd_port_out (may be NULL) the port the mapper
 * says it runs on. */
int edi_epmd_names(const char *host, uint16_t epmd_port, int timeout_ms,
                   uint32_t *epmd_port_out, char **text, size_t *text_len);

/* DUMP_REQ: as edi_epmd_names, with epmd's dump lines (each ends with a NUL
 * byte on the wire, as epmd sends them; kept in *text). */
int edi_epmd_dump(const char *host, uint16_t epmd_port, int timeout_ms,
                  uint32_t *epmd_port_out, char **text, size_t *text_len);

/* KILL_REQ: 0 if the mapper answered "OK" (it exits), EDIST_EAGAIN if it
 * refused with "NO" (nodes are registered and it was not started relaxed). */
int edi_epmd_kill(const char *host, uint16_t epmd_port, int timeout_ms);

/* STOP_REQ (forced unregister): 0 if "STOPPED", EDIST_ENOTFOUND if
 * "NOEXIST", EDIST_ECLOSED if refused (epmd closes without a word unless
 * started with -relaxed_command_check). */
int edi_epmd_stop(const char *host, uint16_t epmd_port, const char *name,
                  int timeout_ms);

#endif
