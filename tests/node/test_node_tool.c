/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers for the node shell tests:
 *   test_node_tool freeport
 *       a TCP port free on 127.0.0.1 right now
 *   test_node_tool send PORT HEX WAIT_MS
 *       connect to 127.0.0.1:PORT, send the bytes, then wait up to WAIT_MS
 *       for the peer to close; prints "closed MS" (after how long) or
 *       "open" (still open at WAIT_MS); exit 0 either way, 1 on errors
 *   test_node_tool flood PORT N WAIT_MS
 *       open N connections to 127.0.0.1:PORT that never speak, wait
 *       WAIT_MS, print "closed K of N" (how many the peer closed)
 *   test_node_tool name_frame NAME_BYTES
 *       prints (hex) a handshake send_name frame whose name is NAME_BYTES
 *       long ("aaa...@h"), for the oversized-name test */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/bytes.h"

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int freeport(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(s, (struct sockaddr *)&sa, &sl) != 0)
        return 1;
    printf("%u\n", ntohs(sa.sin_port));
    close(s);
    return 0;
}

static int send_bytes(int port, const char *hex, long wait_ms)
{
    size_t n = strlen(hex) / 2;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return 1;
    for (size_t i = 0; i < n; i++) {
        int hi = edi_hex_digit(hex[2 * i]), lo = edi_hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            fprintf(stderr, "bad hex\n");
            return 1;
        }
        buf[i] = (uint8_t)(hi * 16 + lo);
    }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "connect: %s\n", strerror(errno));
        return 1;
    }
    long t0 = now_ms();
    if (n && send(s, buf, n, MSG_NOSIGNAL) != (ssize_t)n) {
        fprintf(stderr, "send: %s\n", strerror(errno));
        return 1;
    }
    free(buf);
    for (;;) {
        long left = t0 + wait_ms - now_ms();
        if (left <= 0) {
            puts("open");
            break;
        }
        struct pollfd p = {.fd = s, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        char junk[4096];
        ssize_t r = recv(s, junk, sizeof junk, 0);
        if (r <= 0) {
            printf("closed %ld\n", now_ms() - t0);
            break;
        }
    }
    close(s);
    return 0;
}

static int flood(int port, int n, long wait_ms)
{
    if (n <= 0 || n > 4096)
        return 1;
    struct pollfd *p = calloc((size_t)n, sizeof *p);
    if (!p)
        return 1;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < n; i++) {
        p[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        p[i].events = POLLIN;
        if (p[i].fd < 0 ||
            connect(p[i].fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            fprintf(stderr, "connect %d: %s\n", i, strerror(errno));
            return 1;
        }
    }
    int closed = 0;
    long t0 = now_ms();
    for (;;) {
        long left = t0 + wait_ms - now_ms();
        if (left <= 0)
            break;
        if (poll(p, (nfds_t)n, (int)left) <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            if (p[i].fd >= 0 && p[i].revents) {
                char junk[64];
                if (recv(p[i].fd, junk, sizeof junk, 0) <= 0) {
                    close(p[i].fd);
                    p[i].fd = -1; /* poll ignores negative fds */
                    closed++;
                }
            }
        }
    }
    printf("closed %d of %d\n", closed, n);
    for (int i = 0; i < n; i++)
        if (p[i].fd >= 0)
            close(p[i].fd);
    free(p);
    return 0;
}

/* send_name: [len:16] 'N' flags:64 creation:32 nlen:16 name */
static int name_frame(int name_bytes)
{
    if (name_bytes < 3 || name_bytes > 60000)
        return 1;
    size_t len = 1 + 8 + 4 + 2 + (size_t)name_bytes;
    printf("%04zx4e", len);
    printf("%016llx", 0x1d07df7fbdull); /* what OTP 25 sends, give or take */
    printf("%08x", 7u);
    printf("%04x", (unsigned)name_bytes);
    for (int i = 0; i < name_bytes - 2; i++)
        printf("61");
    printf("4068\n"); /* "@h" */
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "freeport"))
        return freeport();
    if (argc == 5 && !strcmp(argv[1], "send"))
        return send_bytes(atoi(argv[2]), argv[3], atol(argv[4]));
    if (argc == 5 && !strcmp(argv[1], "flood"))
        return flood(atoi(argv[2]), atoi(argv[3]), atol(argv[4]));
    if (argc == 3 && !strcmp(argv[1], "name_frame"))
        return name_frame(atoi(argv[2]));
    fprintf(stderr, "usage: test_node_tool freeport | send PORT HEX WAIT_MS | "
                    "flood PORT N WAIT_MS | name_frame NAME_BYTES\n");
    return 2;
}
