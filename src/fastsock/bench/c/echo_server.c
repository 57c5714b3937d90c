/*
 * echo_server.c - the C references for the W6 server benchmark: what a
 * plain C echo server gets on this machine in the two server models.
 * Built with the system compiler by fastsock.bench (native.py), for
 * python -m fastsock.bench and bench/bench_server.py.
 *
 *   echo_server threads   one thread per connection, blocking recv/send:
 *                         the model of fastsock.Server and
 *                         socketserver.ThreadingTCPServer, without Python
 *   echo_server epoll     one thread, level-triggered epoll, recv/send:
 *                         the model of the selectors and asyncio servers
 *
 * Binds 127.0.0.1:0, prints the port on a line of its own, and serves
 * until it is killed.  CPU pinning is left to the caller (taskset or
 * sched_setaffinity before exec).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BUF = 65536 };

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int listen_any(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        die("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 512) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        die("bind/listen");
    printf("%d\n", ntohs(sa.sin_port));
    fflush(stdout);
    return fd;
}

/* Echoes what arrived; false when the connection is done.  64-byte
 * replies always fit the send buffer, but a short send is finished. */
static int echo_once(int fd, char *buf)
{
    ssize_t n = recv(fd, buf, BUF, 0), off = 0;

    if (n <= 0)
        return n < 0 && (errno == EAGAIN || errno == EINTR);
    while (off < n) {
        ssize_t k = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return 0;
        }
        off += k;
    }
    return 1;
}

static void *serve_one(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char *buf = malloc(BUF);

    while (buf != NULL && echo_once(fd, buf))
        ;
    free(buf);
    close(fd);
    return NULL;
}

static void run_threads(int lfd)
{
    pthread_attr_t attr;
    int one = 1;

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (;;) {
        pthread_t tid;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            die("accept");
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (pthread_create(&tid, &attr, serve_one, (void *)(intptr_t)fd) != 0)
            close(fd);
    }
}

static void run_epoll(int lfd)
{
    static char buf[BUF];
    struct epoll_event ev, events[128];
    int one = 1, ep = epoll_create1(EPOLL_CLOEXEC);

    if (ep < 0)
        die("epoll_create1");
    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
        die("epoll_ctl");
    for (;;) {
        int n = epoll_wait(ep, events, 128, -1);

        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;

            if (fd == lfd) {
                int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (c < 0)
                    continue;
                setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                ev.events = EPOLLIN;
                ev.data.fd = c;
                if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) < 0)
                    close(c);
            } else if (!echo_once(fd, buf)) {
                close(fd);      /* also leaves the epoll set */
            }
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 2 || (strcmp(argv[1], "threads") && strcmp(argv[1], "epoll"))) {
        fprintf(stderr, "usage: echo_server threads|epoll\n");
        return 2;
    }
    if (argv[1][0] == 't')
        run_threads(listen_any());
    else
        run_epoll(listen_any());
    return 0;
}
