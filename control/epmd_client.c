/* SPDX-License-Identifier: Apache-2.0 */
/* EPMD client over blocking-with-deadline sockets. See epmd_client.h. */
#include "control/epmd_client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "edist/error.h"

static int64_t deadline_after(int timeout_ms)
{
    return (int64_t)edi_now_ms() +
           (timeout_ms > 0 ? timeout_ms : EDI_EPMD_DEFAULT_TIMEOUT_MS);
}

int edi_epmd_env_port(uint16_t *port)
{
    const char *s = getenv("ERL_EPMD_PORT");
    *port = EDI_EPMD_DEFAULT_PORT;
    if (!s)
        return 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v <= 0 || v > 65535)
        return edist_set_error(EDIST_EINVAL, "ERL_EPMD_PORT='%s' is not a port (1..65535)", s);
    *port = (uint16_t)v;
    return 0;
}

uint16_t edi_epmd_default_port(void)
{
    const char *s = getenv("ERL_EPMD_PORT");
    if (s && *s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (!errno && *end == '\0' && v > 0 && v <= 65535)
            return (uint16_t)v;
    }
    return EDI_EPMD_DEFAULT_PORT;
}

/* Waits for events on fd until the deadline. 0 when ready. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - (int64_t)edi_now_ms();
        if (left <= 0)
            return edist_set_error(EDIST_ETIMEDOUT, "epmd: no answer in time");
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, left > 1000000 ? 1000000 : (int)left);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return edist_set_error(EDIST_EIO, "epmd: poll: %s",
                                   strerror(errno));
    }
}

static int connect_to(const char *host, uint16_t port, int64_t deadline,
                      int *out)
{
    if (!host)
        host = "127.0.0.1";
    if (!port)
        port = edi_epmd_default_port();
    char service[8];
    snprintf(service, sizeof service, "%u", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, service, &hints, &res);
    if (gai != 0)
        return edist_set_error(EDIST_EIO, "epmd: cannot resolve %s: %s", host,
                               gai_strerror(gai));
    int rc = EDIST_EIO;
    int last_errno = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family,
                        ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            *out = fd;
            rc = 0;
            break;
        }
        if (errno == EINPROGRESS) {
            int w = wait_fd(fd, POLLOUT, deadline);
            if (w == 0) {
                int err = 0;
                socklen_t len = sizeof err;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
                    err == 0) {
                    *out = fd;
                    rc = 0;
                    break;
                }
                last_errno = err ? err : errno;
            } else if (w == EDIST_ETIMEDOUT) {
                close(fd);
                rc = edist_set_error(EDIST_ETIMEDOUT,
                                     "epmd: connect to %s:%u timed out", host,
                                     port);
                break;
            }
        } else {
            last_errno = errno;
        }
        close(fd);
    }
    freeaddrinfo(res);
    if (rc == EDIST_EIO)
        edist_set_error(EDIST_EIO, "epmd: cannot connect to %s:%u: %s", host,
                        port, strerror(last_errno ? last_errno : ECONNREFUSED));
    return rc;
}

static int send_all(int fd, const uint8_t *buf, size_t len, int64_t deadline)
{
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(fd, POLLOUT, deadline);
            if (rc < 0)
                return rc;
            continue;
        }
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
            return edist_set_error(EDIST_ECLOSED,
                                   "epmd: connection closed while sending");
        return edist_set_error(EDIST_EIO, "epmd: send: %s", strerror(errno));
    }
    return 0;
}

/* Reads what is available (at least one byte) into buf. Returns the count,
 * 0 at end of stream, or a negative edist_err. */
static ssize_t recv_some(int fd, uint8_t *buf, size_t cap, int64_t deadline)
{
    for (;;) {
        ssize_t n = recv(fd, buf, cap, 0);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int rc = wait_fd(fd, POLLIN, deadline);
            if (rc < 0)
                return rc;
            continue;
        }
        if (errno == ECONNRESET)
            return 0; /* treated as a close: what the caller has is all */
        return edist_set_error(EDIST_EIO, "epmd: recv: %s", strerror(errno));
    }
}

/* Connects and sends one request. */
static int request(const char *host, uint16_t port, const uint8_t *req,
                   size_t len, int64_t deadline, int *fd)
{
    int rc = connect_to(host, port, deadline, fd);
    if (rc < 0)
        return rc;
    rc = send_all(*fd, req, len, deadline);
    if (rc < 0) {
        close(*fd);
        *fd = -1;
    }
    return rc;
}

int edi_epmd_register(const char *host, uint16_t epmd_port,
                      const edi_epmd_registration *reg, int timeout_ms,
                      uint32_t *creation, int *fd_out)
{
    if (!reg || !reg->name || !creation || !fd_out)
        return edist_set_error(EDIST_EINVAL, "epmd_register: missing argument");
    edi_epmd_node_fields f = {
        .port = reg->listen_port,
        .node_type =
            reg->node_type ? reg->node_type : EDI_EPMD_NODE_TYPE_NORMAL,
        .protocol = reg->protocol,
        .highest_version = reg->highest_version ? reg->highest_version : 6,
        .lowest_version = reg->lowest_version ? reg->lowest_version : 6,
        .name = (const uint8_t *)reg->name,
        .name_len = strlen(reg->name),
        .extra = reg->extra,
        .extra_len = reg->extra_len,
    };
    uint8_t req[2 + 13 + EDI_EPMD_MAX_NAME_BYTES + EDI_EPMD_MAX_EXTRA_BYTES];
    int n = edi_epmd_encode_alive2_req(req, sizeof req, &f);
    if (n < 0)
        return n;
    int64_t deadline = deadline_after(timeout_ms);
    int fd = -1;
    int rc = request(host, epmd_port, req, (size_t)n, deadline, &fd);
    if (rc < 0)
        return rc;
    uint8_t buf[8];
    size_t got = 0;
    uint8_t result = 0;
    uint32_t cr = 0;
    size_t used = 0;
    for (;;) {
        rc = edi_epmd_parse_alive2_resp(buf, got, &result, &cr, &used);
        if (rc != EDIST_ETRUNC)
            break;
        ssize_t r = recv_some(fd, buf + got, sizeof buf - got, deadline);
        if (r <= 0) {
            rc = r < 0
                     ? (int)r
                     : edist_set_error(
                           EDIST_ECLOSED,
                           "epmd: closed without answering ALIVE2_REQ for '%s'",
                           reg->name);
            break;
        }
        got += (size_t)r;
    }
    if (rc == 0 && result != 0)
        rc = edist_set_error(EDIST_EEXIST,
                             "epmd: registration of '%s' refused (result %u)",
                             reg->name, result);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    /* The caller keeps the descriptor in ordinary blocking mode. */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    *creation = cr;
    *fd_out = fd;
    return 0;
}

void edi_epmd_unregister(int fd)
{
    if (fd >= 0)
        close(fd);
}

int edi_epmd_port_please(const char *host, uint16_t epmd_port, const char *name,
                         int timeout_ms, edi_epmd_node_info *info)
{
    if (!name || !info)
        return edist_set_error(EDIST_EINVAL,
                               "epmd_port_please: missing argument");
    uint8_t req[3 + EDI_EPMD_MAX_NAME_BYTES];
    int n =
        edi_epmd_encode_port_please2_req(req, sizeof req, name, strlen(name));
    if (n < 0)
        return n;
    int64_t deadline = deadline_after(timeout_ms);
    int fd = -1;
    int rc = request(host, epmd_port, req, (size_t)n, deadline, &fd);
    if (rc < 0)
        return rc;
    uint8_t buf[EDI_EPMD_MAX_PORT2_RESP_BYTES];
    size_t got = 0, used = 0;
    edi_epmd_node_fields f;
    for (;;) {
        rc = edi_epmd_parse_port2_resp(buf, got, &f, &used);
        if (rc != EDIST_ETRUNC)
            break;
        ssize_t r = recv_some(fd, buf + got, sizeof buf - got, deadline);
        if (r <= 0) {
            rc = r < 0 ? (int)r
                 : got ? edist_set_error(EDIST_EPROTO,
                                         "epmd: truncated PORT2_RESP for '%s'",
                                         name)
                       : edist_set_error(EDIST_ECLOSED,
                                         "epmd: closed without answering "
                                         "PORT_PLEASE2 for '%s'",
                                         name);
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    if (rc == EDIST_ENOTFOUND)
        return edist_set_error(EDIST_ENOTFOUND, "epmd: no node '%s'", name);
    if (rc < 0)
        return rc;
    memset(info, 0, sizeof *info);
    info->port = f.port;
    info->node_type = f.node_type;
    info->protocol = f.protocol;
    info->highest_version = f.highest_version;
    info->lowest_version = f.lowest_version;
    memcpy(info->name, f.name, f.name_len);
    info->name[f.name_len] = '\0';
    info->name_len = f.name_len;
    if (f.extra_len)
        memcpy(info->extra, f.extra, f.extra_len);
    info->extra_len = f.extra_len;
    return 0;
}

/* NAMES and DUMP: a u32 port, then text until the server closes. */
static int text_request(const char *host, uint16_t epmd_port, uint8_t type,
                        int timeout_ms, uint32_t *epmd_port_out, char **text,
                        size_t *text_len)
{
    if (!text || !text_len)
        return edist_set_error(EDIST_EINVAL, "epmd: missing argument");
    uint8_t req[3];
    int n = edi_epmd_encode_simple_req(req, sizeof req, type);
    if (n < 0)
        return n;
    int64_t deadline = deadline_after(timeout_ms);
    int fd = -1;
    int rc = request(host, epmd_port, req, (size_t)n, deadline, &fd);
    if (rc < 0)
        return rc;
    size_t cap = 4096, got = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return edist_set_error(EDIST_ENOMEM, "epmd: out of memory");
    }
    for (;;) {
        if (got == cap) {
            if (cap >= EDI_EPMD_MAX_NAMES_REPLY_BYTES + 4) {
                rc = edist_set_error(EDIST_ENOMEM,
                                     "epmd: reply larger than %u bytes",
                                     EDI_EPMD_MAX_NAMES_REPLY_BYTES);
                break;
            }
            size_t ncap = cap * 2;
            if (ncap > EDI_EPMD_MAX_NAMES_REPLY_BYTES + 4)
                ncap = EDI_EPMD_MAX_NAMES_REPLY_BYTES + 4;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                rc = edist_set_error(EDIST_ENOMEM, "epmd: out of memory");
                break;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = recv_some(fd, buf + got, cap - got, deadline);
        if (r < 0) {
            rc = (int)r;
            break;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    uint32_t port = 0;
    if (rc == 0 && edi_epmd_parse_names_header(buf, got, &port) < 0)
        rc = edist_set_error(got ? EDIST_EPROTO : EDIST_ECLOSED,
                             "epmd: no port in the reply (%zu bytes)", got);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    /* Move the text to the front and terminate it; the header made room. */
    memmove(buf, buf + 4, got - 4);
    buf[got - 4] = '\0';
    if (epmd_port_out)
        *epmd_port_out = port;
    *text = (char *)buf;
    *text_len = got - 4;
    return 0;
}

int edi_epmd_names(const char *host, uint16_t epmd_port, int timeout_ms,
                   uint32_t *epmd_port_out, char **text, size_t *text_len)
{
    return text_request(host, epmd_port, EDI_EPMD_NAMES_REQ, timeout_ms,
                        epmd_port_out, text, text_len);
}

int edi_epmd_dump(const char *host, uint16_t epmd_port, int timeout_ms,
                  uint32_t *epmd_port_out, char **text, size_t *text_len)
{
    return text_request(host, epmd_port, EDI_EPMD_DUMP_REQ, timeout_ms,
                        epmd_port_out, text, text_len);
}

/* Sends req and reads the short text answer (up to cap bytes, until close). */
static int short_answer(const char *host, uint16_t epmd_port,
                        const uint8_t *req, size_t len, int timeout_ms,
                        char *ans, size_t cap, size_t *got)
{
    int64_t deadline = deadline_after(timeout_ms);
    int fd = -1;
    int rc = request(host, epmd_port, req, len, deadline, &fd);
    if (rc < 0)
        return rc;
    *got = 0;
    while (*got < cap) {
        ssize_t r = recv_some(fd, (uint8_t *)ans + *got, cap - *got, deadline);
        if (r < 0) {
            rc = (int)r;
            break;
        }
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    close(fd);
    return rc;
}

int edi_epmd_kill(const char *host, uint16_t epmd_port, int timeout_ms)
{
    uint8_t req[3];
    int n = edi_epmd_encode_simple_req(req, sizeof req, EDI_EPMD_KILL_REQ);
    if (n < 0)
        return n;
    char ans[2];
    size_t got = 0;
    int rc = short_answer(host, epmd_port, req, (size_t)n, timeout_ms, ans,
                          sizeof ans, &got);
    if (rc < 0)
        return rc;
    if (got == 2 && !memcmp(ans, "OK", 2))
        return 0;
    if (got == 2 && !memcmp(ans, "NO", 2))
        return edist_set_error(EDIST_EAGAIN,
                               "epmd: kill refused: live nodes are registered");
    if (got == 0)
        return edist_set_error(EDIST_ECLOSED,
                               "epmd: closed without answering KILL_REQ");
    return edist_set_error(EDIST_EPROTO, "epmd: unexpected answer to KILL_REQ");
}

int edi_epmd_stop(const char *host, uint16_t epmd_port, const char *name,
                  int timeout_ms)
{
    if (!name)
        return edist_set_error(EDIST_EINVAL, "epmd_stop: missing name");
    uint8_t req[3 + EDI_EPMD_MAX_NAME_BYTES];
    int n = edi_epmd_encode_stop_req(req, sizeof req, name, strlen(name));
    if (n < 0)
        return n;
    char ans[7];
    size_t got = 0;
    int rc = short_answer(host, epmd_port, req, (size_t)n, timeout_ms, ans,
                          sizeof ans, &got);
    if (rc < 0)
        return rc;
    if (got == 7 && !memcmp(ans, "STOPPED", 7))
        return 0;
    if (got == 7 && !memcmp(ans, "NOEXIST", 7))
        return edist_set_error(EDIST_ENOTFOUND, "epmd: no node '%s' to stop",
                               name);
    if (got == 0)
        return edist_set_error(
            EDIST_ECLOSED,
            "epmd: STOP_REQ refused (mapper not started relaxed)");
    return edist_set_error(EDIST_EPROTO, "epmd: unexpected answer to STOP_REQ");
}
