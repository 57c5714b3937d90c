/*
 * loadgen.c - a small load generator for the W6 server benchmark.
 *
 * Opens N client connections and drives them from one epoll loop, each
 * doing request/response: send a `size`-byte request, wait for the
 * `size`-byte reply, check it echoes the request, repeat.  Counts the
 * round trips completed within the measured window (after a warm-up) and
 * prints one line:
 *
 *     requests=<n> seconds=<t> rps=<n/t> errors=<e> connections=<N>
 *
 * One thread in C, so the client stays cheaper per request than any
 * Python server it measures.  Exit status 0 only if there were no errors.
 *
 * usage: loadgen [-c conns] [-d seconds] [-w warmup] [-s size] [-C cpu] [-r]
 *                (HOST PORT | -u UNIX_PATH)
 *
 * -r makes every request use a new connection (connect, request/response,
 * close), to measure the accept path and the hand-off to handler threads.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE 65536

typedef struct conn_s {
    int fd;
    uint64_t seq;            /* request number, written into the payload */
    size_t sent;             /* bytes of the current request written */
    size_t got;              /* bytes of the reply read */
    int blocked;             /* waiting for EPOLLOUT to finish a request */
    unsigned char *req;
    unsigned char *rep;
} conn_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen [-c conns] [-d seconds] [-w warmup] "
                    "[-s size] [-C cpu] [-r] (HOST PORT | -u UNIX_PATH)\n");
    exit(2);
}

/* Fills the request with the connection index and sequence number, so a
 * reply from the wrong connection or a stale reply does not match. */
static void fill_request(conn_t *c, size_t index, size_t size)
{
    size_t i;
    for (i = 0; i < size; i++)
        c->req[i] = (unsigned char)('a' + (i + index + c->seq) % 26);
    if (size >= 16) {
        memcpy(c->req, &c->seq, 8);
        memcpy(c->req + 8, &index, 8);
    }
    c->sent = 0;
    c->got = 0;
}

static int open_conn(const char *host, const char *port, const char *upath)
{
    int fd, one = 1;
    if (upath != NULL) {
        struct sockaddr_un sun;
        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        if (strlen(upath) >= sizeof(sun.sun_path))
            return -1;
        strcpy(sun.sun_path, upath);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
            perror("connect");
            if (fd >= 0)
                close(fd);
            return -1;
        }
    } else {
        struct addrinfo hints, *res, *ai;
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(host, port, &hints, &res) != 0)
            return -1;
        fd = -1;
        for (ai = res; ai != NULL; ai = ai->ai_next) {
            fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
            if (fd < 0)
                continue;
            if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
                break;
            close(fd);
            fd = -1;
        }
        freeaddrinfo(res);
        if (fd < 0) {
            perror("connect");
            return -1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* Writes what is left of the request; -1 on a connection error.  Watches
 * for writability only while a request is stuck half-sent. */
static int pump_send(int ep, conn_t *c, uint32_t index, size_t size)
{
    struct epoll_event ev;
    while (c->sent < size) {
        ssize_t n = send(c->fd, c->req + c->sent, size - c->sent,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                return -1;
            ev.events = EPOLLIN | EPOLLOUT;
            ev.data.u32 = index;
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            c->blocked = 1;
            return 0;
        }
        c->sent += (size_t)n;
    }
    if (c->blocked) {
        ev.events = EPOLLIN;
        ev.data.u32 = index;
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->blocked = 0;
    }
    return 0;
}

static void drop_conn(int ep, conn_t *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

/* -r: each request on a new connection (connect, exchange, close). */
static int reopen(int ep, conn_t *c, uint32_t index, const char *host,
                  const char *port, const char *upath)
{
    struct epoll_event ev;
    drop_conn(ep, c);
    c->fd = open_conn(host, port, upath);
    if (c->fd < 0)
        return -1;
    ev.events = EPOLLIN;
    ev.data.u32 = index;
    return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

int main(int argc, char **argv)
{
    int nconns = 64, size = 64, cpu = -1, reconnect = 0, opt, ep, i;
    double duration = 2.0, warmup = 0.5;
    const char *upath = NULL, *host = NULL, *port = NULL;
    unsigned long long requests = 0, counted = 0, errors = 0;
    conn_t *conns;
    struct epoll_event *events;

    while ((opt = getopt(argc, argv, "c:d:w:s:C:u:r")) != -1) {
        switch (opt) {
        case 'c': nconns = atoi(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 's': size = atoi(optarg); break;
        case 'C': cpu = atoi(optarg); break;
        case 'u': upath = optarg; break;
        case 'r': reconnect = 1; break;
        default: usage();
        }
    }
    if (upath == NULL) {
        if (optind + 2 != argc)
            usage();
        host = argv[optind];
        port = argv[optind + 1];
    }
    if (nconns < 1 || size < 1 || size > MAX_SIZE || duration <= 0)
        usage();
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof(set), &set) != 0)
            perror("sched_setaffinity");
    }

    conns = calloc((size_t)nconns, sizeof(*conns));
    events = calloc((size_t)nconns, sizeof(*events));
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (conns == NULL || events == NULL || ep < 0) {
        perror("setup");
        return 2;
    }
    for (i = 0; i < nconns; i++) {
        struct epoll_event ev;
        conn_t *c = &conns[i];
        c->fd = open_conn(host, port, upath);
        if (c->fd < 0)
            return 2;
        c->req = malloc((size_t)size);
        c->rep = malloc((size_t)size);
        if (c->req == NULL || c->rep == NULL)
            return 2;
        fill_request(c, (size_t)i, (size_t)size);
        ev.events = EPOLLIN;
        ev.data.u32 = (uint32_t)i;
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }

    double start = now_s();
    double t0 = start + warmup, t1 = t0 + duration;
    int measuring = 0, live = nconns;
    for (i = 0; i < nconns; i++)
        if (pump_send(ep, &conns[i], (uint32_t)i, (size_t)size) < 0) {
            errors++;
            drop_conn(ep, &conns[i]);
            live--;
        }

    /* After the window, no new requests: the replies still owed are
     * collected (for at most 2 s) so every connection ends with a clean
     * close and the server sees EOF, not a reset. */
    int stopping = 0, outstanding = live;
    double elapsed = 0;
    while (outstanding > 0) {
        double t = now_s();
        if (!measuring && t >= t0) {
            measuring = 1;
            requests = 0;
        }
        if (!stopping && t >= t1) {
            stopping = 1;
            elapsed = t - t0;
            counted = requests;
        }
        if (stopping && t >= t1 + 2.0) {
            fprintf(stderr, "loadgen: %d replies never came\n", outstanding);
            errors += (unsigned long long)outstanding;
            break;
        }
        int n = epoll_wait(ep, events, nconns, 100);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            return 2;
        }
        for (int k = 0; k < n; k++) {
            int idx = (int)events[k].data.u32;
            conn_t *c = &conns[idx];
            if (c->fd < 0)
                continue;
            if ((events[k].events & EPOLLOUT)
                && pump_send(ep, c, (uint32_t)idx, (size_t)size) < 0) {
                errors++;
                drop_conn(ep, c);
                outstanding--;
                continue;
            }
            for (;;) {
                ssize_t r = recv(c->fd, c->rep + c->got, (size_t)size - c->got, 0);
                if (r < 0 && (errno == EAGAIN || errno == EINTR))
                    break;
                if (r <= 0 || c->sent < (size_t)size) {
                    /* EOF, reset, or a reply before the request was out. */
                    errors++;
                    drop_conn(ep, c);
                    outstanding--;
                    break;
                }
                c->got += (size_t)r;
                if (c->got < (size_t)size)
                    continue;
                if (memcmp(c->req, c->rep, (size_t)size) != 0) {
                    fprintf(stderr, "loadgen: reply mismatch on connection %d\n", idx);
                    errors++;
                }
                requests++;
                if (stopping) {
                    drop_conn(ep, c);
                    outstanding--;
                    break;
                }
                c->seq++;
                fill_request(c, (size_t)idx, (size_t)size);
                if (reconnect && reopen(ep, c, (uint32_t)idx, host, port, upath) < 0) {
                    errors++;
                    outstanding--;
                    break;
                }
                if (pump_send(ep, c, (uint32_t)idx, (size_t)size) < 0) {
                    errors++;
                    drop_conn(ep, c);
                    outstanding--;
                }
                break;
            }
        }
    }
    if (!stopping) {
        /* Every connection failed before the window ended. */
        elapsed = now_s() - (measuring ? t0 : start);
        counted = requests;
    }
    if (elapsed <= 0)
        elapsed = 1e-9;
    printf("requests=%llu seconds=%.3f rps=%.0f errors=%llu connections=%d\n",
           counted, elapsed, (double)counted / elapsed, errors, nconns);
    for (i = 0; i < nconns; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    return errors ? 1 : 0;
}
