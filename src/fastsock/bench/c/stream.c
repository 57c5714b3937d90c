/*
 * stream.c - the plain C references (Berkeley API, -O2) for the TCP stream
 * workloads W1-W4 of python -m fastsock.bench.  Each mode works on a
 * connected socket the caller passes as a descriptor number, measures
 * itself and prints one line "<count> <nanoseconds>":
 *
 *   stream bulk-recv FD CHUNK       recv CHUNK bytes at a time until EOF;
 *                                   count = bytes                      (W1)
 *   stream bulk-send FD TOTAL CHUNK send TOTAL bytes in CHUNK writes,
 *                                   then close; prints nothing          (W1)
 *   stream frames FD                count frames (4-byte big-endian
 *                                   length, payload) until EOF          (W3)
 *   stream lines FD                 count '\n'-ended lines until EOF    (W4)
 *   stream send-frames FD N SIZE    one send per frame of SIZE bytes
 *                                   behind its length, then wait for the
 *                                   peer's close                        (W3 naive)
 *   stream ping FD N SIZE           N times: send SIZE bytes, receive SIZE
 *                                   bytes                               (W2)
 *   stream echo FD SIZE             receive SIZE bytes and send them back
 *                                   until EOF; prints nothing           (W2 peer)
 *
 * The receivers time from before their first receive, as the Python
 * receivers they are compared with do.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { BUF = 1 << 20 };

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* recv, retried on EINTR; dies on an error. */
static size_t get(int fd, char *buf, size_t len)
{
    for (;;) {
        ssize_t n = recv(fd, buf, len, 0);

        if (n >= 0)
            return (size_t)n;
        if (errno != EINTR)
            die("recv");
    }
}

static void put_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("send");
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* Returns 0 at EOF before the first byte, else 1 once len bytes came. */
static int get_exact(int fd, char *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        size_t n = get(fd, buf + got, len - got);

        if (n == 0) {
            if (got == 0)
                return 0;
            fprintf(stderr, "stream: EOF inside a message\n");
            exit(1);
        }
        got += n;
    }
    return 1;
}

static void report(long long count, int64_t start)
{
    printf("%lld %lld\n", count, (long long)(now_ns() - start));
}

static int bulk_recv(int fd, size_t chunk)
{
    char *buf = malloc(chunk);
    long long total = 0;
    int64_t t0 = now_ns();
    size_t n;

    if (buf == NULL)
        die("malloc");
    while ((n = get(fd, buf, chunk)) > 0)
        total += (long long)n;
    report(total, t0);
    return 0;
}

static int bulk_send(int fd, long long total, size_t chunk)
{
    char *buf = calloc(1, chunk);

    if (buf == NULL)
        die("calloc");
    while (total > 0) {
        size_t n = total < (long long)chunk ? (size_t)total : chunk;

        put_all(fd, buf, n);
        total -= (long long)n;
    }
    return 0;
}

/* Splits messages out of a buffer the way a C server would: one recv
 * into the free room, then every complete message; the partial tail moves
 * to the front. `frames`: length-prefixed frames, else lines. */
static int split(int fd, int frames)
{
    char *buf = malloc(BUF);
    size_t have = 0, pos, n;
    long long count = 0;
    int64_t t0 = now_ns();

    if (buf == NULL)
        die("malloc");
    while ((n = get(fd, buf + have, BUF - have)) > 0) {
        have += n;
        pos = 0;
        for (;;) {
            if (frames) {
                uint32_t len;

                if (have - pos < 4)
                    break;
                memcpy(&len, buf + pos, 4);
                len = ntohl(len);
                if (len > BUF - 4) {
                    fprintf(stderr, "stream: frame too long\n");
                    return 1;
                }
                if (have - pos - 4 < len)
                    break;
                pos += 4 + len;
            } else {
                char *nl = memchr(buf + pos, '\n', have - pos);

                if (nl == NULL)
                    break;
                pos = (size_t)(nl - buf) + 1;
            }
            count++;
        }
        memmove(buf, buf + pos, have - pos);
        have -= pos;
    }
    report(count, t0);
    return 0;
}

static int send_frames(int fd, long n, size_t size)
{
    char *buf = calloc(1, 4 + size), byte;
    uint32_t len = htonl((uint32_t)size);
    int64_t t0 = now_ns();

    if (buf == NULL)
        die("calloc");
    memcpy(buf, &len, 4);
    for (long i = 0; i < n; i++)
        put_all(fd, buf, 4 + size);
    shutdown(fd, SHUT_WR);
    get(fd, &byte, 1);              /* the peer closes once it has all */
    report(n, t0);
    return 0;
}

static int ping(int fd, long n, size_t size)
{
    char *buf = calloc(1, size);
    int64_t t0 = now_ns();

    if (buf == NULL)
        die("calloc");
    for (long i = 0; i < n; i++) {
        put_all(fd, buf, size);
        if (!get_exact(fd, buf, size)) {
            fprintf(stderr, "stream: the echo peer closed\n");
            return 1;
        }
    }
    report(n, t0);
    return 0;
}

static int echo(int fd, size_t size)
{
    char *buf = malloc(size);

    if (buf == NULL)
        die("malloc");
    while (get_exact(fd, buf, size))
        put_all(fd, buf, size);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 2 ? argv[1] : "";
    int fd = argc > 2 ? atoi(argv[2]) : -1;

    if (!strcmp(mode, "bulk-recv") && argc == 4)
        return bulk_recv(fd, (size_t)atol(argv[3]));
    if (!strcmp(mode, "bulk-send") && argc == 5)
        return bulk_send(fd, atoll(argv[3]), (size_t)atol(argv[4]));
    if (!strcmp(mode, "frames") && argc == 3)
        return split(fd, 1);
    if (!strcmp(mode, "lines") && argc == 3)
        return split(fd, 0);
    if (!strcmp(mode, "send-frames") && argc == 5)
        return send_frames(fd, atol(argv[3]), (size_t)atol(argv[4]));
    if (!strcmp(mode, "ping") && argc == 5)
        return ping(fd, atol(argv[3]), (size_t)atol(argv[4]));
    if (!strcmp(mode, "echo") && argc == 4)
        return echo(fd, (size_t)atol(argv[3]));
    fprintf(stderr, "usage: stream bulk-recv FD CHUNK | bulk-send FD TOTAL CHUNK"
                    " | frames FD | lines FD | send-frames FD N SIZE"
                    " | ping FD N SIZE | echo FD SIZE\n");
    return 2;
}
