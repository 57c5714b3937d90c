/*
 * udp_mmsg.c - the C reference for the datagram benchmark (W5/G6): what a
 * plain C program gets from sendmmsg/recvmmsg on this machine.  Built with
 * the system compiler by fastsock.bench (native.py); it speaks the same
 * small protocol as the Python workers of fastsock/bench/datagrams.py:
 *
 *   udp_mmsg recv COUNT
 *       binds 127.0.0.1:0, prints the port, receives until COUNT datagrams
 *       or an empty one (the sender's end marker) arrived, then prints
 *       "<received> <ns from the first datagram to the end>".
 *   udp_mmsg send PORT COUNT SIZE [gso]
 *       sends COUNT datagrams of SIZE bytes (a 64-bit sequence number
 *       first) to 127.0.0.1:PORT, 64 per sendmmsg (with "gso": 64 per
 *       sendmsg that the kernel splits, UDP_SEGMENT), prints "<sent> <ns>",
 *       then sends an empty datagram every millisecond until its standard
 *       input closes (so the marker gets through even if one is dropped).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#  define UDP_SEGMENT 103
#endif

enum { BATCH = 64, SLOT = 2048 };

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int do_recv(long count)
{
    static char slots[BATCH][SLOT];
    struct mmsghdr m[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int s = socket(AF_INET, SOCK_DGRAM, 0), size = 4 << 20, i, r;
    long got = 0;
    int64_t first = 0;

    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0
        || getsockname(s, (struct sockaddr *)&sa, &len) < 0) {
        perror("bind");
        return 1;
    }
    printf("%d\n", ntohs(sa.sin_port));
    fflush(stdout);
    for (;;) {
        memset(m, 0, sizeof(m));
        for (i = 0; i < BATCH; i++) {
            iov[i].iov_base = slots[i];
            iov[i].iov_len = SLOT;
            m[i].msg_hdr.msg_iov = &iov[i];
            m[i].msg_hdr.msg_iovlen = 1;
        }
        r = recvmmsg(s, m, BATCH, MSG_WAITFORONE, NULL);
        if (r < 0) {
            perror("recvmmsg");
            return 1;
        }
        if (first == 0)
            first = now_ns();
        for (i = 0; i < r && m[i].msg_len > 0; i++)
            got++;
        if (i < r || got >= count)
            break;
    }
    printf("%ld %lld\n", got, (long long)(now_ns() - first));
    return 0;
}

/* n datagrams of `size` bytes in one sendmsg, split by the kernel. */
static int send_segments(int s, struct iovec *iov, long n, size_t size)
{
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } control;
    struct msghdr msg;
    struct cmsghdr *c;
    uint16_t seg = (uint16_t)size;

    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = (size_t)n;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof(control.buf);
    c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = IPPROTO_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(seg));
    memcpy(CMSG_DATA(c), &seg, sizeof(seg));
    return sendmsg(s, &msg, 0) < 0 ? -1 : (int)n;
}

static int do_send(int port, long count, size_t size, int gso)
{
    static char data[BATCH][SLOT];
    struct mmsghdr m[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_in sa;
    struct pollfd in = {0, POLLIN, 0};
    int s = socket(AF_INET, SOCK_DGRAM, 0), i, r;
    long sent = 0, n;
    int64_t t0;
    uint64_t seq;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (size < 8 || size > SLOT
        || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("connect");
        return 1;
    }
    t0 = now_ns();
    while (sent < count) {
        n = count - sent < BATCH ? count - sent : BATCH;
        memset(m, 0, sizeof(m));
        for (i = 0; i < n; i++) {
            seq = (uint64_t)(sent + i);
            memcpy(data[i], &seq, 8);
            iov[i].iov_base = data[i];
            iov[i].iov_len = size;
            m[i].msg_hdr.msg_iov = &iov[i];
            m[i].msg_hdr.msg_iovlen = 1;
        }
        r = gso ? send_segments(s, iov, n, size)
                : sendmmsg(s, m, (unsigned)n, 0);
        if (r < 0) {
            perror("send");
            return 1;
        }
        sent += r;
    }
    printf("%ld %lld\n", sent, (long long)(now_ns() - t0));
    fflush(stdout);
    while (poll(&in, 1, 1) == 0)
        send(s, "", 0, 0);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "recv") == 0)
        return do_recv(atol(argv[2]));
    if ((argc == 5 || argc == 6) && strcmp(argv[1], "send") == 0)
        return do_send(atoi(argv[2]), atol(argv[3]), (size_t)atol(argv[4]),
                       argc == 6 && strcmp(argv[5], "gso") == 0);
    fprintf(stderr,
            "usage: udp_mmsg recv COUNT | send PORT COUNT SIZE [gso]\n");
    return 2;
}
