/*
 * loadgen.c - a small load generator for the W6 server benchmark.
 *
 * Opens N client connections and drives them from one epoll loop, each
 * doing request/response: keep `depth` requests of `size` bytes in flight
 * (1: send, wait for the reply, repeat; more: pipelined), check that each
 * reply echoes its request in order, and send the next.  With -f every
 * request and reply is a frame (a 4-byte big-endian length, then the
 * payload).  Counts the replies completed within the measured window
 * (after a warm-up), with each one's latency from the moment its request
 * was queued, and prints one line:
 *
 *     requests=<n> seconds=<t> rps=<n/t> errors=<e> connections=<N>
 *     depth=<d> p50_us=<median latency> p99_us=<99th percentile>
 *
 * One thread in C, so the client stays cheaper per request than any
 * Python server it measures.  Exit status 0 only if there were no errors.
 *
 * usage: loadgen [-c conns] [-d seconds] [-w warmup] [-s size] [-p depth]
 *                [-f] [-C cpu] [-r] (HOST PORT | -u UNIX_PATH)
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
    uint64_t next_seq;       /* sequence number of the next request queued */
    uint64_t reply_seq;      /* sequence number of the next reply expected */
    unsigned char *out;      /* requests queued and not yet written */
    size_t out_len, out_sent;
    unsigned char *in;       /* the reply being received, `unit` bytes */
    size_t in_got;
    double *sent_at;         /* queue time of request seq, at seq % depth */
    int blocked;             /* waiting for EPOLLOUT to finish writing */
} conn_t;

/* One request and its reply: the payload, after a 4-byte big-endian
 * length in frame mode (-f). */
static size_t size, unit, depth = 1;
static int frames;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen [-c conns] [-d seconds] [-w warmup] "
                    "[-s size] [-p depth] [-f] [-C cpu] [-r] "
                    "(HOST PORT | -u UNIX_PATH)\n");
    exit(2);
}

/* Writes request `seq` of connection `index` at p (`unit` bytes): its
 * payload carries both numbers, so a reply from the wrong connection or
 * out of order does not match. */
static void fill_request(unsigned char *p, size_t index, uint64_t seq)
{
    size_t i;
    if (frames) {
        p[0] = (unsigned char)(size >> 24);
        p[1] = (unsigned char)(size >> 16);
        p[2] = (unsigned char)(size >> 8);
        p[3] = (unsigned char)size;
        p += 4;
    }
    for (i = 0; i < size; i++)
        p[i] = (unsigned char)('a' + (i + index + seq) % 26);
    if (size >= 16) {
        memcpy(p, &seq, 8);
        memcpy(p + 8, &index, 8);
    }
}

/* Latencies of the measured window, in microseconds. */
static float *lat;
static size_t nlat, caplat;

static void record(double seconds)
{
    if (nlat == caplat) {
        caplat = caplat ? caplat * 2 : 1 << 16;
        lat = realloc(lat, caplat * sizeof(*lat));
        if (lat == NULL) {
            perror("realloc");
            exit(2);
        }
    }
    lat[nlat++] = (float)(seconds * 1e6);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static double percentile(double q)
{
    size_t i;
    if (nlat == 0)
        return 0;
    i = (size_t)(q * (double)(nlat - 1) + 0.5);
    return lat[i];
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

/* Queues k more requests behind what is unsent (the oldest in flight
 * are at most `depth` behind). */
static void queue_requests(conn_t *c, size_t index, size_t k)
{
    double t = now_s();
    if (c->out_sent == c->out_len)
        c->out_sent = c->out_len = 0;
    else if (c->out_sent) {
        memmove(c->out, c->out + c->out_sent, c->out_len - c->out_sent);
        c->out_len -= c->out_sent;
        c->out_sent = 0;
    }
    while (k-- > 0) {
        fill_request(c->out + c->out_len, index, c->next_seq);
        c->sent_at[c->next_seq % depth] = t;
        c->next_seq++;
        c->out_len += unit;
    }
}

/* Writes what is queued; -1 on a connection error.  Watches for
 * writability only while requests are stuck half-written. */
static int pump_send(int ep, conn_t *c, uint32_t index)
{
    struct epoll_event ev;
    while (c->out_sent < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent,
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
        c->out_sent += (size_t)n;
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
    int nconns = 64, cpu = -1, reconnect = 0, opt, ep, i, isize = 64,
        idepth = 1;
    double duration = 2.0, warmup = 0.5;
    const char *upath = NULL, *host = NULL, *port = NULL;
    unsigned long long requests = 0, counted = 0, errors = 0;
    conn_t *conns;
    struct epoll_event *events;
    static unsigned char scratch[1 << 16];
    unsigned char *expect;

    while ((opt = getopt(argc, argv, "c:d:w:s:p:fC:u:r")) != -1) {
        switch (opt) {
        case 'c': nconns = atoi(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 's': isize = atoi(optarg); break;
        case 'p': idepth = atoi(optarg); break;
        case 'f': frames = 1; break;
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
    if (nconns < 1 || isize < 1 || isize > MAX_SIZE || duration <= 0
        || idepth < 1 || idepth > 1024 || (reconnect && idepth != 1))
        usage();
    size = (size_t)isize;
    depth = (size_t)idepth;
    unit = size + (frames ? 4 : 0);
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof(set), &set) != 0)
            perror("sched_setaffinity");
    }

    conns = calloc((size_t)nconns, sizeof(*conns));
    events = calloc((size_t)nconns, sizeof(*events));
    expect = malloc(unit);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (conns == NULL || events == NULL || expect == NULL || ep < 0) {
        perror("setup");
        return 2;
    }
    for (i = 0; i < nconns; i++) {
        struct epoll_event ev;
        conn_t *c = &conns[i];
        c->fd = open_conn(host, port, upath);
        if (c->fd < 0)
            return 2;
        c->out = malloc(depth * unit);
        c->in = malloc(unit);
        c->sent_at = calloc(depth, sizeof(double));
        if (c->out == NULL || c->in == NULL || c->sent_at == NULL)
            return 2;
        ev.events = EPOLLIN;
        ev.data.u32 = (uint32_t)i;
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }

    double start = now_s();
    double t0 = start + warmup, t1 = t0 + duration;
    int measuring = 0, live = nconns;
    for (i = 0; i < nconns; i++) {
        queue_requests(&conns[i], (size_t)i, depth);
        if (pump_send(ep, &conns[i], (uint32_t)i) < 0) {
            errors++;
            drop_conn(ep, &conns[i]);
            live--;
        }
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
            nlat = 0;
        }
        if (!stopping && t >= t1) {
            stopping = 1;
            elapsed = t - t0;
            counted = requests;
        }
        if (stopping && t >= t1 + 2.0) {
            fprintf(stderr, "loadgen: %d connections still owed replies\n",
                    outstanding);
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
            size_t done = 0;
            int failed = 0;
            if (c->fd < 0)
                continue;
            if ((events[k].events & EPOLLOUT) && pump_send(ep, c, (uint32_t)idx) < 0) {
                errors++;
                drop_conn(ep, c);
                outstanding--;
                continue;
            }
            for (;;) {
                ssize_t r = recv(c->fd, scratch, sizeof(scratch), 0);
                if (r < 0 && (errno == EAGAIN || errno == EINTR))
                    break;
                if (r <= 0) {                   /* EOF or reset */
                    failed = 1;
                    break;
                }
                double tr = now_s();
                for (size_t off = 0; off < (size_t)r;) {
                    size_t take = unit - c->in_got;
                    if (take > (size_t)r - off)
                        take = (size_t)r - off;
                    memcpy(c->in + c->in_got, scratch + off, take);
                    c->in_got += take;
                    off += take;
                    if (c->in_got < unit)
                        break;
                    c->in_got = 0;
                    if (c->reply_seq >= c->next_seq) {
                        failed = 1;             /* a reply nobody asked for */
                        break;
                    }
                    fill_request(expect, (size_t)idx, c->reply_seq);
                    if (memcmp(expect, c->in, unit) != 0) {
                        fprintf(stderr, "loadgen: reply mismatch on connection %d\n",
                                idx);
                        errors++;
                    }
                    if (measuring && !stopping)
                        record(tr - c->sent_at[c->reply_seq % depth]);
                    c->reply_seq++;
                    requests++;
                    done++;
                }
                if (failed)
                    break;
            }
            if (failed) {
                errors++;
                drop_conn(ep, c);
                outstanding--;
                continue;
            }
            if (stopping) {
                if (c->reply_seq == c->next_seq) {
                    drop_conn(ep, c);
                    outstanding--;
                }
                continue;
            }
            if (done == 0)
                continue;
            if (reconnect && reopen(ep, c, (uint32_t)idx, host, port, upath) < 0) {
                errors++;
                outstanding--;
                continue;
            }
            queue_requests(c, (size_t)idx, done);
            if (pump_send(ep, c, (uint32_t)idx) < 0) {
                errors++;
                drop_conn(ep, c);
                outstanding--;
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
    qsort(lat, nlat, sizeof(*lat), cmp_float);
    printf("requests=%llu seconds=%.3f rps=%.0f errors=%llu connections=%d "
           "depth=%d p50_us=%.1f p99_us=%.1f\n",
           counted, elapsed, (double)counted / elapsed, errors, nconns,
           (int)depth, percentile(0.50), percentile(0.99));
    for (i = 0; i < nconns; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    return errors ? 1 : 0;
}
