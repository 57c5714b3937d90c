/* fs_posix.c - the shim on the Berkeley sockets API (Linux, macOS, BSD). */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE /* accept4, recvmmsg, sendmmsg, pipe2 */
#endif
#include "fastsock.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <stddef.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdlib.h>
#ifdef __linux__
#  include <sys/epoll.h>
#  include <sys/eventfd.h>
#  include <sys/sendfile.h>
#endif

#include "fs_private.h"

/* EWOULDBLOCK may differ from EAGAIN; callers test FS_EAGAIN only. */
static int fs__error(int e)
{
    if (e == EWOULDBLOCK)
        e = EAGAIN;
    return -e;
}

int fs_last_error(void)
{
    return fs__error(errno);
}

/* A system call's result, or the portable error when it failed. */
static fs_ssize_t fs__check(fs_ssize_t r)
{
    return r < 0 ? fs_last_error() : r;
}

int fs_init(void)
{
    return 0;
}

void fs_error_info(int code, int *err_no, int *winerror, char *msg,
                   size_t size)
{
    *err_no = -code;
    *winerror = 0;
    if (size > 0)
        snprintf(msg, size, "%s", strerror(-code));
}

int64_t fs_monotonic_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int fs_iov_max(void)
{
#ifdef IOV_MAX
    return IOV_MAX;
#else
    long v = sysconf(_SC_IOV_MAX);
    return v > 0 ? (int)v : 16;
#endif
}

static int fs__cloexec(int fd)
{
    int flags = fcntl(fd, F_GETFD);

    if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
        return fs_last_error();
    return 0;
}

/* Where the OS could not make them so at once: marks fds[0..n-1]
 * close-on-exec and, unless `nonblocking` is -1, sets that mode.  On an
 * error closes them all and returns it. */
static int fs__own(int *fds, int n, int nonblocking)
{
    int err = 0;
    int i;

    for (i = 0; i < n && err == 0; i++) {
        err = fs__cloexec(fds[i]);
        if (err == 0 && nonblocking >= 0)
            err = fs_set_nonblocking(fds[i], nonblocking);
    }
    if (err < 0)
        for (i = 0; i < n; i++)
            close(fds[i]);
    return err;
}

/* Without SO_NOSIGPIPE or MSG_NOSIGNAL a write to a closed peer would
 * kill the process; CPython ignores SIGPIPE, but a C host may not. */
#ifdef MSG_NOSIGNAL
#  define FS__SEND_FLAGS MSG_NOSIGNAL
#else
#  define FS__SEND_FLAGS 0
#endif

static void fs__nosigpipe(int fd)
{
#ifdef SO_NOSIGPIPE
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof(on));
#else
    (void)fd;
#endif
}

/* Makes a new descriptor (the result of socket(), dup(), ...: fd < 0 if
 * that failed) private where no atomic CLOEXEC flag did: returns fd, or the
 * error with fd closed. */
static int fs__private(int fd)
{
    int err;

    if (fd < 0)
        return fs_last_error();
    err = fs__own(&fd, 1, -1);
    return err < 0 ? err : fd;
}

int fs_socket(int family, int type, int proto, fs_sock_t *out)
{
    int fd = -1;

#ifdef SOCK_CLOEXEC
    fd = socket(family, type | SOCK_CLOEXEC, proto);
    if (fd < 0 && errno != EINVAL)
        return fs_last_error();
#endif
    if (fd < 0)
        fd = fs__private(socket(family, type, proto));
    if (fd < 0)
        return fd;
    fs__nosigpipe(fd);
    *out = fd;
    return 0;
}

int fs_socketpair(int family, int type, int proto, fs_sock_t out[2])
{
    int fds[2], err;

#ifdef SOCK_CLOEXEC
    if (socketpair(family, type | SOCK_CLOEXEC, proto, fds) == 0)
        goto done;
    if (errno != EINVAL)
        return fs_last_error();
#endif
    if (socketpair(family, type, proto, fds) < 0)
        return fs_last_error();
    err = fs__own(fds, 2, -1);
    if (err < 0)
        return err;
#ifdef SOCK_CLOEXEC
done:
#endif
    fs__nosigpipe(fds[0]);
    fs__nosigpipe(fds[1]);
    out[0] = fds[0];
    out[1] = fds[1];
    return 0;
}

int fs_close(fs_sock_t s)
{
    /* On Linux the descriptor is released even when close() reports EINTR,
     * so it must not be closed again; report success as CPython does. */
    if (close(s) < 0 && errno != EINTR)
        return fs_last_error();
    return 0;
}

int fs_set_nonblocking(fs_sock_t s, int on)
{
    int flags = fcntl(s, F_GETFL);
    int want;

    if (flags < 0)
        return fs_last_error();
    want = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    if (want != flags && fcntl(s, F_SETFL, want) < 0)
        return fs_last_error();
    return 0;
}

int fs_sock_info(fs_sock_t s, int *family, int *type, int *proto)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    memset(&ss, 0, sizeof(ss));
    if (getsockname(s, (struct sockaddr *)&ss, &len) < 0) {
        /* fastsock.h promises FS_EBADF for a descriptor that is no
         * socket (WinSock's WSAENOTSOCK is FS_EBADF too). */
        if (errno == ENOTSOCK)
            return FS_EBADF;
        return fs_last_error();
    }
    *family = ss.ss_family;
    len = sizeof(*type);
    if (getsockopt(s, SOL_SOCKET, SO_TYPE, type, &len) < 0)
        return fs_last_error();
#ifdef SO_PROTOCOL
    len = sizeof(*proto);
    if (getsockopt(s, SOL_SOCKET, SO_PROTOCOL, proto, &len) < 0)
        return fs_last_error();
#else
    *proto = 0;
#endif
    return 0;
}

int fs_dup(fs_sock_t s, fs_sock_t *out)
{
    int fd = -1;

#ifdef F_DUPFD_CLOEXEC
    fd = fcntl(s, F_DUPFD_CLOEXEC, 0);
    if (fd < 0 && errno != EINVAL)
        return fs_last_error();
#endif
    if (fd < 0)
        fd = fs__private(dup(s));
    if (fd < 0)
        return fd;
    *out = fd;
    return 0;
}

int fs_get_inheritable(fs_sock_t s)
{
    int flags = fcntl(s, F_GETFD);

    if (flags < 0)
        return fs_last_error();
    return !(flags & FD_CLOEXEC);
}

int fs_set_inheritable(fs_sock_t s, int on)
{
    int flags = fcntl(s, F_GETFD);
    int want;

    if (flags < 0)
        return fs_last_error();
    want = on ? (flags & ~FD_CLOEXEC) : (flags | FD_CLOEXEC);
    if (want != flags && fcntl(s, F_SETFD, want) < 0)
        return fs_last_error();
    return 0;
}

int fs_connect_result(fs_sock_t s)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return fs_last_error();
    return err ? fs__error(err) : 0;
}

/* fs__accept (fs_private.h): the accept4() of Linux and the BSDs, else
 * accept() and then the flags. */
int fs__accept(fs_sock_t s, struct sockaddr *addr, fs_socklen_t *len,
               fs_sock_t *out, int nonblocking)
{
    int fd;

#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) \
    || defined(__OpenBSD__)
    fd = accept4(s, addr, len, SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK
                                                           : 0));
    if (fd < 0)
        return fs_last_error();
#else
    int err;

    fd = accept(s, addr, len);
    if (fd < 0)
        return fs_last_error();
    /* BSD accept() inherits O_NONBLOCK from the listener; Linux does not:
     * set the mode either way. */
    err = fs__own(&fd, 1, nonblocking);
    if (err < 0)
        return err;
#endif
    fs__nosigpipe(fd);
    *out = fd;
    return 0;
}

int fs_setsockopt(fs_sock_t s, int level, int name, const void *value,
                  fs_socklen_t len)
{
    return (int)fs__check(setsockopt(s, level, name, value, len));
}

int fs_getsockopt(fs_sock_t s, int level, int name, void *value,
                  fs_socklen_t *len)
{
    return (int)fs__check(getsockopt(s, level, name, value, len));
}

fs_ssize_t fs_send(fs_sock_t s, const void *buf, size_t len, int flags)
{
    return fs__check(send(s, buf, len, flags | FS__SEND_FLAGS));
}

fs_ssize_t fs_recv(fs_sock_t s, void *buf, size_t len, int flags)
{
    return fs__check(recv(s, buf, len, flags));
}

fs_ssize_t fs_sendto(fs_sock_t s, const void *buf, size_t len, int flags,
                     const struct sockaddr *addr, fs_socklen_t addrlen)
{
    return fs__check(sendto(s, buf, len, flags | FS__SEND_FLAGS, addr,
                            addrlen));
}

fs_ssize_t fs_recvfrom(fs_sock_t s, void *buf, size_t len, int flags,
                       struct sockaddr *addr, fs_socklen_t *addrlen)
{
    return fs__check(recvfrom(s, buf, len, flags, addr, addrlen));
}

fs_ssize_t fs_sendmsg(fs_sock_t s, const fs_buf_t *bufs, size_t n,
                      const struct sockaddr *addr, fs_socklen_t addrlen,
                      const void *control, size_t controllen, int flags)
{
    struct msghdr msg;

    memset(&msg, 0, sizeof(msg));
    msg.msg_name = (void *)addr;
    msg.msg_namelen = addr ? addrlen : 0;
    /* fs_buf_t has struct iovec's layout (see fastsock.h). */
    msg.msg_iov = (struct iovec *)bufs;
    msg.msg_iovlen = n;
    msg.msg_control = controllen ? (void *)control : NULL;
    msg.msg_controllen = controllen;
    return fs__check(sendmsg(s, &msg, flags | FS__SEND_FLAGS));
}

fs_ssize_t fs_sendv(fs_sock_t s, const fs_buf_t *bufs, size_t n, int flags)
{
    return fs_sendmsg(s, bufs, n, NULL, 0, NULL, 0, flags);
}

fs_ssize_t fs_recvmsg(fs_sock_t s, fs_buf_t *bufs, size_t n,
                      struct sockaddr *addr, fs_socklen_t *addrlen,
                      void *control, size_t *controllen, int *msg_flags,
                      int flags)
{
    struct msghdr msg;
    ssize_t r;

    memset(&msg, 0, sizeof(msg));
    msg.msg_name = addr;
    msg.msg_namelen = addr ? *addrlen : 0;
    msg.msg_iov = (struct iovec *)bufs;
    msg.msg_iovlen = n;
    msg.msg_control = controllen && *controllen ? control : NULL;
    msg.msg_controllen = controllen ? *controllen : 0;
    r = recvmsg(s, &msg, flags);
    if (r < 0)
        return fs_last_error();
    if (addr)
        *addrlen = msg.msg_namelen;
    if (controllen)
        *controllen = msg.msg_controllen;
    if (msg_flags)
        *msg_flags = msg.msg_flags;
    return r;
}

fs_ssize_t fs_recvv(fs_sock_t s, fs_buf_t *bufs, size_t n, int flags)
{
    return fs_recvmsg(s, bufs, n, NULL, NULL, NULL, NULL, NULL, flags);
}

fs_ssize_t fs_sendfile(fs_sock_t s, int fd, int64_t *offset, size_t count,
                       int blocking)
{
    (void)blocking;
#ifdef __linux__
    off_t off = (off_t)*offset;
    ssize_t r = sendfile(s, fd, &off, count);

    if (r < 0) {
        int err = fs_last_error();
        /* Not a regular file or not a socket sendfile() can take; a pipe
         * or a socket as fd fails with ESPIPE (no offset to read at). */
        if (err == FS_EINVAL || err == -ENOSYS || err == -ESPIPE)
            return FS_EOPNOTSUPP;
        return err;
    }
    *offset = off;
    return r;
#else
    (void)s; (void)fd; (void)offset; (void)count;
    return FS_EOPNOTSUPP;
#endif
}

#ifdef FS_HAVE_MMSG
/* Up to this many datagrams go into one recvmmsg/sendmmsg call; the
 * mmsghdr array lives on the stack. */
#  define FS__MMSG_CHUNK 64

/* Points m[0..] at the first datagrams of d, at most FS__MMSG_CHUNK;
 * returns how many. */
static size_t fs__mmsg_fill(struct mmsghdr *m, const fs_dgram_t *d, size_t n)
{
    size_t i;

    if (n > FS__MMSG_CHUNK)
        n = FS__MMSG_CHUNK;
    memset(m, 0, n * sizeof(m[0]));
    for (i = 0; i < n; i++) {
        m[i].msg_hdr.msg_iov = (struct iovec *)d[i].bufs;
        m[i].msg_hdr.msg_iovlen = d[i].nbufs;
        m[i].msg_hdr.msg_name = d[i].addr;
        m[i].msg_hdr.msg_namelen = d[i].addr ? d[i].addrlen : 0;
    }
    return n;
}

int fs_recv_batch(fs_sock_t s, fs_dgram_t *d, size_t n, int flags)
{
    struct mmsghdr m[FS__MMSG_CHUNK];
    size_t i;
    int r;

    n = fs__mmsg_fill(m, d, n);
    /* MSG_WAITFORONE: block for the first datagram only, then take what
     * is queued; the batch never waits to fill. */
    r = recvmmsg(s, m, (unsigned int)n, flags | MSG_WAITFORONE, NULL);
    if (r < 0)
        return fs_last_error();
    for (i = 0; i < (size_t)r; i++) {
        d[i].len = m[i].msg_len;
        d[i].addrlen = m[i].msg_hdr.msg_namelen;
        d[i].flags = (m[i].msg_hdr.msg_flags & MSG_TRUNC) ? FS_DGRAM_TRUNC
                                                           : 0;
    }
    return r;
}

int fs_send_batch(fs_sock_t s, const fs_dgram_t *d, size_t n, int flags)
{
    struct mmsghdr m[FS__MMSG_CHUNK];
    int r;

    n = fs__mmsg_fill(m, d, n);
    r = sendmmsg(s, m, (unsigned int)n, flags | FS__SEND_FLAGS);
    return r < 0 ? fs_last_error() : r;
}

#  ifndef UDP_SEGMENT
#    define UDP_SEGMENT 103 /* <linux/udp.h>; older libcs lack it */
#  endif

/* 1 if the kernel segments UDP sends, -1 if not, 0 before the first ask.
 * A kernel before 4.18 ignores a UDP_SEGMENT message and sends all the
 * payloads as one datagram, so it is asked first (getsockopt came with
 * the feature).  The answer is the kernel's: one per process. */
static int fs__segments;

int fs_send_segments(fs_sock_t s, const fs_buf_t *bufs, size_t n, size_t seg,
                     const struct sockaddr *addr, fs_socklen_t addrlen,
                     int flags)
{
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } control;
    struct msghdr msg;
    struct cmsghdr *c;
    uint16_t size = (uint16_t)seg;
    int err;

    if (fs__segments == 0) {
        int v;
        socklen_t len = sizeof(v);

        if (getsockopt(s, IPPROTO_UDP, UDP_SEGMENT, &v, &len) == 0)
            fs__segments = 1;
        else if (errno == ENOPROTOOPT || errno == EOPNOTSUPP)
            fs__segments = -1;
        else
            return fs_last_error();
    }
    if (fs__segments < 0 || n == 0 || n > FS_SEGMENTS_MAX || seg == 0
        || seg > UINT16_MAX)
        return FS_EOPNOTSUPP;
    memset(&msg, 0, sizeof(msg));
    msg.msg_name = (void *)addr;
    msg.msg_namelen = addr ? addrlen : 0;
    msg.msg_iov = (struct iovec *)bufs;
    msg.msg_iovlen = n;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof(control.buf);
    c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = IPPROTO_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(size));
    memcpy(CMSG_DATA(c), &size, sizeof(size));
    if (sendmsg(s, &msg, flags | FS__SEND_FLAGS) >= 0)
        return (int)n;
    err = fs_last_error();
    /* The kernel would not segment this send (udp_send_skb): EINVAL for a
     * segment over the path MTU, too many segments or SO_NO_CHECK, EIO
     * without checksum offload or under IPsec, EMSGSIZE for too many
     * bytes.  Nothing went; fs_send_batch reports a real error again. */
    if (err == FS_EINVAL || err == -EIO || err == FS_EMSGSIZE
        || err == -ENOPROTOOPT || err == FS_EOPNOTSUPP)
        return FS_EOPNOTSUPP;
    return err;
}
#else
/* No mmsg calls: a loop, the later datagrams taken only if queued. */
int fs_recv_batch(fs_sock_t s, fs_dgram_t *d, size_t n, int flags)
{
    size_t i;

    for (i = 0; i < n; i++) {
        struct msghdr msg;
        ssize_t r;

        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = (struct iovec *)d[i].bufs;
        msg.msg_iovlen = d[i].nbufs;
        msg.msg_name = d[i].addr;
        msg.msg_namelen = d[i].addr ? d[i].addrlen : 0;
        r = recvmsg(s, &msg, i == 0 ? flags : flags | MSG_DONTWAIT);
        if (r < 0) {
            if (i == 0)
                return fs_last_error();
            break;
        }
        d[i].len = (size_t)r;
        d[i].addrlen = msg.msg_namelen;
        d[i].flags = (msg.msg_flags & MSG_TRUNC) ? FS_DGRAM_TRUNC : 0;
    }
    return (int)i;
}
#endif

int fs_wait(fs_sock_t s, int events, int timeout_ms)
{
    struct pollfd p;
    int r;

    p.fd = s;
    p.events = (short)events;
    p.revents = 0;
    r = poll(&p, 1, timeout_ms);
    if (r < 0)
        return fs_last_error();
    if (r == 0)
        return 0;
    /* Errors and hang-ups count as ready: the next call reports them. */
    r = p.revents & events;
    if (p.revents & (POLLERR | POLLHUP | POLLNVAL))
        r |= events;
    return r;
}

/* ---- poller ------------------------------------------------------------ */

struct fs_poller_s {
    int epfd;                 /* the epoll instance, or -1: the poll set */
    int wake_rd, wake_wr;     /* the wake-up channel: one eventfd on Linux
                                 (both the same), a pipe elsewhere */
    atomic_int wake_pending;  /* 1 from a wake-up until a wait drains it */
    fs__pollset_t ps;         /* the poll backend's sockets */
};

int fs__poll(fs__pollfd_t *fds, int n, int timeout_ms)
{
    int r = poll(fds, (nfds_t)n, timeout_ms);

    return r < 0 ? fs_last_error() : r;
}

static int fs__wake_open(fs_poller_t *p)
{
#ifdef __linux__
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    if (fd < 0)
        return fs_last_error();
    p->wake_rd = p->wake_wr = fd;
    return 0;
#else
    int fds[2], err;

    if (pipe(fds) < 0)
        return fs_last_error();
    err = fs__own(fds, 2, 1);
    if (err < 0)
        return err;
    p->wake_rd = fds[0];
    p->wake_wr = fds[1];
    return 0;
#endif
}

/* Consumes every pending wake-up.  The flag is cleared first: a wake-up
 * that comes after it writes again, so none is lost. */
static void fs__wake_drain(fs_poller_t *p)
{
    char buf[64]; /* an eventfd read takes 8 bytes and resets the count */

    /* Drain first, then clear the flag.  The other order loses wake-ups:
     * one landing between the two would find the flag clear, write, and
     * have its write read here, leaving the flag set with nothing in the
     * channel, so that every later wake-up skips its write.  In this
     * order a wake-up landing between the two is merged into the one
     * that is ending this wait (its caller changed its state first). */
    while (read(p->wake_rd, buf, sizeof(buf)) == (ssize_t)sizeof(buf))
        ;
    atomic_store(&p->wake_pending, 0);
}

int fs_poller_wake(fs_poller_t *p)
{
    static const uint64_t one = 1; /* what an eventfd takes; a pipe too */
    int saved = errno, err = 0;    /* errno is the interrupted code's */

    if (atomic_exchange(&p->wake_pending, 1))
        return 0; /* one is pending: the wait will return anyway */
    /* EAGAIN: the channel is full, so a wake-up is already there. */
    if (write(p->wake_wr, &one, sizeof(one)) < 0 && errno != EAGAIN) {
        err = fs_last_error();
        atomic_store(&p->wake_pending, 0);
    }
    errno = saved;
    return err;
}

#ifdef __linux__
#  define FS__HAVE_EPOLL 1

/* The epoll data of the wake-up channel: an address inside the poller,
 * which no caller can have registered as its own data. */
#  define FS__WAKE_TAG(p) ((void *)&(p)->wake_rd)

static int fs__epoll_open(fs_poller_t *p)
{
    struct epoll_event ev;

    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p->epfd < 0)
        return fs_last_error();
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = FS__WAKE_TAG(p);
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->wake_rd, &ev) < 0) {
        int err = fs_last_error();

        close(p->epfd);
        p->epfd = -1;
        return err;
    }
    return 0;
}

static int fs__epoll_ctl(fs_poller_t *p, int op, fs_sock_t s, int events,
                         void *data)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = ((events & FS_POLLIN) ? EPOLLIN : 0)
                | ((events & FS_POLLOUT) ? EPOLLOUT : 0);
    /* EPOLLERR and EPOLLHUP are always reported and cannot be read away:
     * with interest 0, one-shot makes the first disable the socket until
     * the next EPOLL_CTL_MOD (fastsock.h: once per add/mod). */
    if (ev.events == 0)
        ev.events = EPOLLONESHOT;
    ev.data.ptr = data;
    op = op == FS__CTL_ADD ? EPOLL_CTL_ADD
         : op == FS__CTL_MOD ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
    if (epoll_ctl(p->epfd, op, s, &ev) == 0)
        return 0;
    if (errno == EEXIST || errno == ENOENT)
        return FS_EINVAL; /* as the poll backends say it */
    return fs_last_error();
}

/* epoll_wait() writes straight into out: a struct epoll_event (12 bytes,
 * packed, on x86-64; 16 elsewhere) is never larger than an fs_pevent_t, so
 * max of them fit, and converting from the last one down overwrites only
 * events already converted.  No bounce buffer, no cap on max. */
typedef char fs__epoll_event_fits[
    sizeof(struct epoll_event) <= sizeof(fs_pevent_t) ? 1 : -1];

static int fs__epoll_wait(fs_poller_t *p, fs_pevent_t *out, int max,
                          int timeout_ms, int *woken)
{
    const size_t size = sizeof(struct epoll_event);
    int n, i, wake_at = -1;

    *woken = 0;
    if (max > INT_MAX / (int)size)
        max = INT_MAX / (int)size;
    n = epoll_wait(p->epfd, (struct epoll_event *)(void *)out, max,
                   timeout_ms);
    if (n < 0)
        return fs_last_error();
    for (i = n - 1; i >= 0; i--) {
        struct epoll_event ev;
        int events = 0;

        memcpy(&ev, (char *)out + (size_t)i * size, size);
        if (ev.data.ptr == FS__WAKE_TAG(p))
            wake_at = i;
        if (ev.events & EPOLLIN)
            events |= FS_POLLIN;
        if (ev.events & EPOLLOUT)
            events |= FS_POLLOUT;
        if (ev.events & (EPOLLERR | EPOLLHUP))
            events |= FS_POLLERR;
        out[i].data = ev.data.ptr;
        out[i].events = events;
    }
    if (wake_at >= 0) { /* consumed here, not reported */
        *woken = 1;
        memmove(out + wake_at, out + wake_at + 1,
                (size_t)(n - 1 - wake_at) * sizeof(*out));
        n--;
    }
    return n;
}
#else
#  define FS__HAVE_EPOLL 0

/* No epoll: epfd stays -1, so these are never called. */
static int fs__epoll_open(fs_poller_t *p)
{
    (void)p;
    return FS_EOPNOTSUPP;
}

static int fs__epoll_ctl(fs_poller_t *p, int op, fs_sock_t s, int events,
                         void *data)
{
    (void)p; (void)op; (void)s; (void)events; (void)data;
    return FS_EOPNOTSUPP;
}

static int fs__epoll_wait(fs_poller_t *p, fs_pevent_t *out, int max,
                          int timeout_ms, int *woken)
{
    (void)p; (void)out; (void)max; (void)timeout_ms;
    *woken = 0;
    return FS_EOPNOTSUPP;
}
#endif

int fs_poller_new(int backend, fs_poller_t **out)
{
    fs_poller_t *p;
    int err;

    if (backend != FS_POLLER_DEFAULT && backend != FS_POLLER_POLL)
        return FS_EINVAL;
    p = (fs_poller_t *)calloc(1, sizeof(*p));
    if (p == NULL)
        return FS_ENOMEM;
    p->epfd = -1;
    atomic_init(&p->wake_pending, 0);
    err = fs__wake_open(p);
    if (err < 0) {
        free(p);
        return err;
    }
    if (backend == FS_POLLER_DEFAULT && FS__HAVE_EPOLL)
        err = fs__epoll_open(p);
    else
        err = fs__pollset_init(&p->ps, p->wake_rd);
    if (err < 0) {
        fs_poller_free(p);
        return err;
    }
    *out = p;
    return 0;
}

void fs_poller_free(fs_poller_t *p)
{
    if (p == NULL)
        return;
    if (p->epfd >= 0)
        close(p->epfd);
    close(p->wake_rd);
    if (p->wake_wr != p->wake_rd)
        close(p->wake_wr);
    fs__pollset_free(&p->ps);
    free(p);
}

int fs__poller_ctl(fs_poller_t *p, int op, fs_sock_t s, int events,
                   void *data)
{
    if (p->epfd >= 0)
        return fs__epoll_ctl(p, op, s, events, data);
    return fs__pollset_ctl(&p->ps, op, s, events, data);
}

int fs__poller_wait(fs_poller_t *p, fs_pevent_t *out, int max,
                    int timeout_ms)
{
    int n, woken;

    if (p->epfd >= 0)
        n = fs__epoll_wait(p, out, max, timeout_ms, &woken);
    else
        n = fs__pollset_wait(&p->ps, out, max, timeout_ms, &woken);
    if (woken)
        fs__wake_drain(p);
    return n;
}

const char *fs_poller_name(const fs_poller_t *p)
{
    return p->epfd >= 0 ? "epoll" : "poll";
}

size_t fs_cmsg_space(size_t datalen)
{
    return CMSG_SPACE(datalen);
}

int fs_cmsg_put(void *control, size_t size, size_t *used, int level,
                int type, const void *data, size_t len)
{
    struct cmsghdr *c = (struct cmsghdr *)((char *)control + *used);

    if (*used > size || size - *used < CMSG_SPACE(len))
        return FS_EINVAL;
    memset(c, 0, CMSG_SPACE(len));
    c->cmsg_level = level;
    c->cmsg_type = type;
    c->cmsg_len = CMSG_LEN(len);
    memcpy(CMSG_DATA(c), data, len);
    *used += CMSG_SPACE(len);
    return 0;
}

int fs_cmsg_next(const void *control, size_t size, size_t *offset,
                 int *level, int *type, const void **data, size_t *len)
{
    const struct cmsghdr *c;
    size_t off = *offset, avail, clen, hdr = CMSG_LEN(0);

    if (off >= size || size - off < hdr)
        return 0;
    c = (const struct cmsghdr *)((const char *)control + off);
    clen = c->cmsg_len;
    if (clen < hdr)
        return 0;
    avail = size - off;
    *level = c->cmsg_level;
    *type = c->cmsg_type;
    *data = CMSG_DATA(c);
    /* A message cut by MSG_CTRUNC claims more than the buffer holds. */
    *len = (clen < avail ? clen : avail) - hdr;
    *offset = off + CMSG_SPACE(clen - hdr);
    return 1;
}
