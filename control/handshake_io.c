/* SPDX-License-Identifier: Apache-2.0 */
#include "control/handshake_io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "edist/error.h"

int64_t edi_hs_io_now_ms(void)
{
    return (int64_t)edi_now_ms();
}

/* Wait for events on fd until deadline_ms. Returns the revents, 0 on
 * timeout, or a negative error. */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
    for (;;) {
        int64_t left = deadline_ms - edi_hs_io_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return edist_set_error(EDIST_EIO, "handshake: poll: %s",
                                   strerror(errno));
        }
        if (n > 0)
            return p.revents;
    }
}

/* Send all queued output. Returns 0, EDIST_ETIMEDOUT, EDIST_ECLOSED or
 * EDIST_EIO (detail set). */
static int flush(edi_hs *hs, int fd, int64_t deadline_ms)
{
    for (;;) {
        size_t len;
        const uint8_t *out = edi_hs_output(hs, &len);
        if (len == 0)
            return 0;
        ssize_t w = send(fd, out, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            edi_hs_output_done(hs, (size_t)w);
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int ev = wait_fd(fd, POLLOUT, deadline_ms);
            if (ev < 0)
                return ev;
            if (ev == 0)
                return EDIST_ETIMEDOUT;
            continue;
        }
        if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
            return EDIST_ECLOSED;
        return edist_set_error(EDIST_EIO, "handshake: send: %s",
                               strerror(errno));
    }
}

/* After a failure: best effort to deliver a queued status, without
 * overriding the error that ended the handshake. */
static int fail_flush(edi_hs *hs, int fd, int64_t deadline_ms, int err)
{
    if (edi_hs_output(hs, NULL) != NULL)
        (void)flush(hs, fd, deadline_ms);
    /* Restore the handshake's own detail for the caller. */
    return edist_set_error(err, "%s", edi_hs_error(hs));
}

/* Sending failed. Before the end this is the handshake failing; once the
 * machine is DONE only our last message (the acceptor's ack) is missing,
 * and the connection is no good either. */
static int flush_failed(edi_hs *hs, edi_hs_state st, int rc)
{
    if (st != EDI_HS_DONE) {
        if (rc == EDIST_ETIMEDOUT)
            return edi_hs_timeout(hs);
        if (rc == EDIST_ECLOSED)
            return edi_hs_eof(hs);
        return rc;
    }
    if (rc == EDIST_ETIMEDOUT)
        return edist_set_error(rc,
                               "handshake with %s: timed out sending "
                               "the challenge ack",
                               hs->res.peer_name);
    if (rc == EDIST_ECLOSED)
        return edist_set_error(rc,
                               "handshake with %s: closed before the "
                               "challenge ack was sent",
                               hs->res.peer_name);
    return rc;
}

int edi_hs_io_run(edi_hs *hs, int fd, int64_t deadline_ms)
{
    uint8_t buf[EDI_HS_RX_KEEP_BYTES];
    for (;;) {
        edi_hs_state st = edi_hs_get_state(hs);
        if (st == EDI_HS_FAILED)
            return fail_flush(hs, fd, deadline_ms, edi_hs_error_code(hs));
        int rc = flush(hs, fd, deadline_ms);
        if (rc < 0)
            return flush_failed(hs, st, rc);
        if (st == EDI_HS_DONE)
            return 0;
        if (st == EDI_HS_WAIT_OLD_CONN) {
            const edi_hs_config *cfg = &hs->cfg;
            if (cfg->wait_old_conn != NULL) {
                rc = cfg->wait_old_conn(cfg->hook_ctx, hs->res.peer_name,
                                        deadline_ms);
                if (rc == EDIST_ETIMEDOUT)
                    return edi_hs_timeout(hs);
                if (rc < 0)
                    return rc;
            }
            rc = edi_hs_old_conn_gone(hs);
            if (rc < 0)
                return rc;
            continue;
        }

        size_t want = edi_hs_want(hs);
        if (want > sizeof buf)
            want = sizeof buf;
        ssize_t r = recv(fd, buf, want, MSG_DONTWAIT);
        if (r > 0) {
            size_t used = 0;
            rc = edi_hs_feed(hs, buf, (size_t)r, &used);
            /* want bounds what we read, so the machine takes it all. */
            if (rc < 0)
                return fail_flush(hs, fd, deadline_ms, rc);
            continue;
        }
        if (r == 0)
            return edi_hs_eof(hs);
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int ev = wait_fd(fd, POLLIN, deadline_ms);
            if (ev < 0)
                return ev;
            if (ev == 0)
                return edi_hs_timeout(hs);
            continue;
        }
        if (errno == ECONNRESET)
            return edi_hs_eof(hs);
        return edist_set_error(EDIST_EIO, "handshake: recv: %s",
                               strerror(errno));
    }
}

int edi_hs_io_connect_tcp(const char *ip, uint16_t port, int64_t deadline_ms,
                          int *fd_out)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (ip != NULL && inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        sl = sizeof *s4;
    } else if (ip != NULL && inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        sl = sizeof *s6;
    } else {
        return edist_set_error(EDIST_EINVAL, "connect: bad address %s",
                               ip ? ip : "(null)");
    }
    int fd =
        socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return edist_set_error(EDIST_EIO, "connect: socket: %s",
                               strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = 0;
    if (connect(fd, (struct sockaddr *)&ss, sl) != 0) {
        if (errno != EINPROGRESS) {
            int e = errno;
            rc = edist_set_error(e == ECONNREFUSED ? EDIST_ECLOSED : EDIST_EIO,
                                 "connect %s:%u: %s", ip, port, strerror(e));
            goto fail;
        }
        int ev = wait_fd(fd, POLLOUT, deadline_ms);
        if (ev < 0) {
            rc = ev;
            goto fail;
        }
        if (ev == 0) {
            rc = edist_set_error(EDIST_ETIMEDOUT, "connect %s:%u: timed out",
                                 ip, port);
            goto fail;
        }
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err != 0) {
            rc =
                edist_set_error(err == ECONNREFUSED ? EDIST_ECLOSED : EDIST_EIO,
                                "connect %s:%u: %s", ip, port, strerror(err));
            goto fail;
        }
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    *fd_out = fd;
    return 0;
fail:
    close(fd);
    return rc;
}
