/*
 * connect.c - the C reference for W7 (G8): one connection after another,
 * each a 16-byte request and a 16-byte reply, then close; plain Berkeley
 * API, what a C client and server get on this machine.
 *
 * Build:  cc -O2 -o connect src/fastsock/bench/c/connect.c
 *
 *   connect server COUNT [CPU]
 *       binds 127.0.0.1:0, prints the port on a line of its own, then
 *       accepts COUNT connections one at a time: reads 16 bytes, writes
 *       them back, closes.  Exits 0 when all are served.
 *   connect client PORT COUNT [CPU]
 *       makes COUNT connections to 127.0.0.1:PORT one after another:
 *       socket, connect, write 16 bytes, read 16, close; then prints the
 *       nanoseconds the whole loop took.
 *
 * CPU pins the process to that CPU.  Neither side sets TCP_NODELAY: a
 * single small write per direction is never held back by Nagle.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { SIZE = 16 };

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void pin(int argc, char **argv, int at)
{
    cpu_set_t set;

    if (argc <= at)
        return;
    CPU_ZERO(&set);
    CPU_SET(atoi(argv[at]), &set);
    if (sched_setaffinity(0, sizeof(set), &set) < 0)
        die("sched_setaffinity");
}

/* Reads or writes exactly SIZE bytes; a short read is finished. */
static void exact(int fd, char *buf, int writing)
{
    ssize_t done = 0;

    while (done < SIZE) {
        ssize_t r = writing ? write(fd, buf + done, SIZE - done)
                            : read(fd, buf + done, SIZE - done);
        if (r <= 0)
            die(writing ? "write" : "read");
        done += r;
    }
}

static void loopback(struct sockaddr_in *sa, int port)
{
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa->sin_port = htons(port);
}

static int serve(long count)
{
    struct sockaddr_in sa, peer;
    socklen_t len = sizeof(sa);
    char buf[SIZE];
    int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);

    if (l < 0)
        die("socket");
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    loopback(&sa, 0);
    if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 128) < 0 ||
        getsockname(l, (struct sockaddr *)&sa, &len) < 0)
        die("bind/listen");
    printf("%d\n", ntohs(sa.sin_port));
    fflush(stdout);
    for (long i = 0; i < count; i++) {
        /* The peer's address, as Python's accept() returns it. */
        socklen_t plen = sizeof(peer);
        int c = accept(l, (struct sockaddr *)&peer, &plen);

        if (c < 0)
            die("accept");
        exact(c, buf, 0);
        exact(c, buf, 1);
        close(c);
    }
    return 0;
}

static int client(int port, long count)
{
    struct sockaddr_in sa;
    struct timespec t0, t1;
    char buf[SIZE] = "0123456789abcdef";

    loopback(&sa, port);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < count; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);

        if (c < 0)
            die("socket");
        if (connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0)
            die("connect");
        exact(c, buf, 1);
        exact(c, buf, 0);
        close(c);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%lld\n", (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL +
                     (t1.tv_nsec - t0.tv_nsec));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "server") == 0) {
        pin(argc, argv, 3);
        return serve(atol(argv[2]));
    }
    if (argc >= 4 && strcmp(argv[1], "client") == 0) {
        pin(argc, argv, 4);
        return client(atoi(argv[2]), atol(argv[3]));
    }
    fprintf(stderr, "usage: connect server COUNT [CPU] | "
                    "connect client PORT COUNT [CPU]\n");
    return 2;
}
