/* SPDX-License-Identifier: Apache-2.0 */
/* The floor for `edist bench pair --idle busy`'s round trips on this host:
 * two processes, one loopback TCP connection with TCP_NODELAY, 64-byte
 * messages, each side busy-polling its socket (non-blocking recv in a
 * loop), no edist at all. Prints p50/p99/p99.9 over 100,000 round trips
 * after 10,000 warm-up ones.
 *   build-bench/bench/edist_tcp_pingpong [ROUND_TRIPS] */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG_BYTES 64
#define WARMUP 10000

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int spin_read(int fd, char *b, int n)
{
    for (int got = 0; got < n;) {
        ssize_t r = recv(fd, b + got, (size_t)(n - got), MSG_DONTWAIT);
        if (r > 0)
            got += (int)r;
        else if (r == 0 || (errno != EAGAIN && errno != EINTR))
            return -1;
    }
    return 0;
}

static int write_all(int fd, const char *b, int n)
{
    for (int put = 0; put < n;) {
        ssize_t r = send(fd, b + put, (size_t)(n - put), MSG_NOSIGNAL);
        if (r < 0 && errno != EINTR)
            return -1;
        if (r > 0)
            put += (int)r;
    }
    return 0;
}

static int cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100000;
    if (n < 1000) {
        fprintf(stderr, "usage: %s [ROUND_TRIPS >= 1000]\n", argv[0]);
        return 2;
    }
    int one = 1;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(ls, 1) != 0 || getsockname(ls, (struct sockaddr *)&a, &al) != 0) {
        perror("tcp_pingpong: listen");
        return 1;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("tcp_pingpong: fork");
        return 1;
    }
    char b[MSG_BYTES] = {0};
    if (child == 0) { /* the echo side */
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a) != 0)
            _exit(1);
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        for (int i = 0; i < n + WARMUP; i++)
            if (spin_read(c, b, MSG_BYTES) || write_all(c, b, MSG_BYTES))
                _exit(1);
        _exit(0);
    }
    int s = accept(ls, NULL, NULL);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int64_t *rtt = malloc(sizeof *rtt * (size_t)n);
    /* touched before the timed loop, as edist bench pair does */
    for (int i = 0; rtt && i < n; i += 512)
        ((volatile int64_t *)rtt)[i] = 1;
    int rc = s < 0 || !rtt;
    for (int i = 0; !rc && i < n + WARMUP; i++) {
        int64_t t0 = now_ns();
        rc = write_all(s, b, MSG_BYTES) || spin_read(s, b, MSG_BYTES);
        if (i >= WARMUP)
            rtt[i - WARMUP] = now_ns() - t0;
    }
    int status = 0;
    waitpid(child, &status, 0); /* the echo side ends after its last reply */
    if (rc || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "tcp_pingpong: the round trips failed\n");
        return 1;
    }
    qsort(rtt, (size_t)n, sizeof *rtt, cmp);
    printf("kernel TCP ping-pong, %d-byte messages, busy polling, %d round "
           "trips: p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us\n",
           MSG_BYTES, n, rtt[n / 2] / 1e3, rtt[(int64_t)n * 99 / 100] / 1e3,
           rtt[(int64_t)n * 999 / 1000] / 1e3, rtt[n - 1] / 1e3);
    free(rtt);
    return 0;
}
