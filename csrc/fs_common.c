/* fs_common.c - platform-free helpers of the shim. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#  define _POSIX_C_SOURCE 200809L /* getaddrinfo under -std=c11 */
#endif
#include "fastsock.h"
#include "fs_private.h"

#include <limits.h>

void fs_bufs_advance(fs_buf_t **bufs, size_t *n, size_t sent)
{
    fs_buf_t *b = *bufs;
    size_t left = *n;

    while (left > 0 && sent >= (size_t)b->len) {
        sent -= (size_t)b->len;
        b++;
        left--;
    }
    if (left > 0 && sent > 0) {
        b->base += sent;
        b->len -= sent;
    }
    *bufs = b;
    *n = left;
}

size_t fs_bufs_total(const fs_buf_t *bufs, size_t n)
{
    size_t total = 0;
    size_t i;

    for (i = 0; i < n; i++)
        total += (size_t)bufs[i].len;
    return total;
}

/* The address helpers use only calls that POSIX and WinSock share; only
 * their headers differ. */
#ifdef _WIN32
#  include <ws2tcpip.h>
/* afunix.h's SOCKADDR_UN (Windows 10 1803 and later), which older SDKs
 * lack. */
struct fs__sockaddr_un {
    ADDRESS_FAMILY sun_family;
    char sun_path[108];
};
#else
#  include <arpa/inet.h>
#  include <netdb.h>
#  include <netinet/in.h>
#  include <sys/un.h>
#  define fs__sockaddr_un sockaddr_un
#endif
/* ---- calls that read the same on POSIX and WinSock --------------------- */

/* 0, or the portable error of the call that just failed (both APIs return
 * -1, SOCKET_ERROR on Windows, and set the error elsewhere). */
static int fs__status(int r)
{
    return r < 0 ? fs_last_error() : 0;
}

int fs_bind(fs_sock_t s, const struct sockaddr *addr, fs_socklen_t len)
{
    return fs__status(bind(s, addr, len));
}

int fs_listen(fs_sock_t s, int backlog)
{
    return fs__status(listen(s, backlog));
}

/* A non-blocking connect() fails with EINPROGRESS, or on Windows with
 * WSAEWOULDBLOCK: both are FS_EINPROGRESS. */
int fs_connect(fs_sock_t s, const struct sockaddr *addr, fs_socklen_t len)
{
    return fs__status(connect(s, addr, len));
}

int fs_accept(fs_sock_t s, struct sockaddr *addr, fs_socklen_t *len,
              fs_sock_t *out)
{
    return fs__accept(s, addr, len, out, 0);
}

int fs_accept_nonblocking(fs_sock_t s, struct sockaddr *addr,
                          fs_socklen_t *len, fs_sock_t *out)
{
    return fs__accept(s, addr, len, out, 1);
}

int fs_shutdown(fs_sock_t s, int how)
{
    return fs__status(shutdown(s, how));
}

int fs_getsockname(fs_sock_t s, struct sockaddr *addr, fs_socklen_t *len)
{
    return fs__status(getsockname(s, addr, len));
}

int fs_getpeername(fs_sock_t s, struct sockaddr *addr, fs_socklen_t *len)
{
    return fs__status(getpeername(s, addr, len));
}

/* Where a name with a leading NUL is abstract: every byte of it counts. */
#if defined(_WIN32) || defined(__linux__)
#  define FS__UNIX_ABSTRACT 1
#else
#  define FS__UNIX_ABSTRACT 0
#endif
#include <string.h>

/* The four bytes of a dotted quad in its one canonical form (1-3 digits
 * per part, no leading zero, each at most 255): 1, else 0 (the caller asks
 * inet_pton(), which is then the judge).  inet_pton() takes exactly the
 * canonical form too; this is it without the library call and its loop
 * (about 350 instructions of every connect() and sendto() with a host). */
static int fs__ipv4_parse(const char *s, unsigned char *out)
{
    int i;

    for (i = 0; i < 4; i++) {
        unsigned v = 0;
        int digits = 0;

        while (*s >= '0' && *s <= '9' && digits < 4) {
            v = v * 10 + (unsigned)(*s++ - '0');
            digits++;
        }
        if (digits == 0 || digits > 3 || v > 255
            || (digits > 1 && s[-digits] == '0'))
            return 0;
        out[i] = (unsigned char)v;
        if (*s++ != (i < 3 ? '.' : '\0'))
            return 0;
    }
    return 1;
}

int fs_addr_ip(fs_addr_t *a, int family, const char *host, unsigned port,
               uint32_t flowinfo, uint32_t scope_id)
{
    memset(a, 0, sizeof(*a));
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&a->ss;

        in->sin_family = AF_INET;
        in->sin_port = htons((unsigned short)port);
        if (host[0] == '\0')
            in->sin_addr.s_addr = htonl(INADDR_ANY);
        else if (strcmp(host, "<broadcast>") == 0)
            in->sin_addr.s_addr = htonl(INADDR_BROADCAST);
        else if (!fs__ipv4_parse(host, (unsigned char *)&in->sin_addr)
                 && inet_pton(AF_INET, host, &in->sin_addr) != 1)
            return 1;
        a->len = sizeof(*in);
        return 0;
    }
    if (family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->ss;

        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((unsigned short)port);
        in6->sin6_flowinfo = htonl(flowinfo);
        in6->sin6_scope_id = scope_id;
        if (host[0] != '\0' && inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
            return 1;
        a->len = sizeof(*in6);
        return 0;
    }
    return FS_EINVAL;
}

int fs_resolve(fs_addr_t *a, int family, const char *host, unsigned port,
               uint32_t flowinfo, uint32_t scope_id)
{
    struct addrinfo hints, *res, *ai;
    int r;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM; /* one entry per address */
    r = getaddrinfo(host, NULL, &hints, &res);
    if (r != 0)
        return r;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
            && ai->ai_addrlen <= sizeof(a->ss))
            break;
    }
    if (ai == NULL) {
        freeaddrinfo(res);
        return EAI_FAMILY;
    }
    memset(a, 0, sizeof(*a));
    memcpy(&a->ss, ai->ai_addr, ai->ai_addrlen);
    a->len = (fs_socklen_t)ai->ai_addrlen;
    if (ai->ai_family == AF_INET)
        ((struct sockaddr_in *)&a->ss)->sin_port = htons((unsigned short)port);
    else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->ss;

        in6->sin6_port = htons((unsigned short)port);
        in6->sin6_flowinfo = htonl(flowinfo);
        if (scope_id)
            in6->sin6_scope_id = scope_id;
    }
    freeaddrinfo(res);
    return 0;
}

const char *fs_gai_strerror(int code)
{
    return gai_strerror(code);
}

/* Dotted decimal of an IPv4 address into host (16 bytes at least): what
 * inet_ntop() writes, without the sprintf() inside glibc's (about 1,600
 * instructions, on every accept()). */
static int fs__ipv4_text(const unsigned char *b, char *host, size_t hostlen)
{
    char *p = host;
    int i;

    if (hostlen < 16)
        return FS_EINVAL;
    for (i = 0; i < 4; i++) {
        unsigned v = b[i];

        if (v >= 100)
            *p++ = (char)('0' + v / 100);
        if (v >= 10)
            *p++ = (char)('0' + v / 10 % 10);
        *p++ = (char)('0' + v % 10);
        *p++ = i < 3 ? '.' : '\0';
    }
    return 0;
}

int fs_addr_ip_info(const fs_addr_t *a, char *host, size_t hostlen,
                    unsigned *port, uint32_t *flowinfo, uint32_t *scope_id)
{
    int family = ((const struct sockaddr *)&a->ss)->sa_family;

    if (family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&a->ss;

        if (fs__ipv4_text((const unsigned char *)&in->sin_addr, host,
                          hostlen) < 0)
            return FS_EINVAL;
        *port = ntohs(in->sin_port);
        *flowinfo = 0;
        *scope_id = 0;
        return AF_INET;
    }
    if (family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->ss;

        if (inet_ntop(AF_INET6, (void *)&in6->sin6_addr, host, hostlen)
            == NULL)
            return FS_EINVAL;
        *port = ntohs(in6->sin6_port);
        *flowinfo = ntohl(in6->sin6_flowinfo);
        *scope_id = in6->sin6_scope_id;
        return AF_INET6;
    }
    return FS_EINVAL;
}

#ifndef FS_HAVE_MMSG
/* No sendmmsg: one fs_sendmsg() per datagram, stopping at the first that
 * fails after some went. */
int fs_send_batch(fs_sock_t s, const fs_dgram_t *d, size_t n, int flags)
{
    size_t i;

    for (i = 0; i < n && i < INT_MAX; i++) {
        fs_ssize_t r = fs_sendmsg(s, d[i].bufs, d[i].nbufs, d[i].addr,
                                  d[i].addrlen, NULL, 0, flags);
        if (r < 0) {
            if (i == 0)
                return (int)r;
            break;
        }
    }
    return (int)i;
}

/* No segmentation offload: the caller sends with fs_send_batch(). */
int fs_send_segments(fs_sock_t s, const fs_buf_t *bufs, size_t n, size_t seg,
                     const struct sockaddr *addr, fs_socklen_t addrlen,
                     int flags)
{
    (void)s; (void)bufs; (void)n; (void)seg; (void)addr; (void)addrlen;
    (void)flags;
    return FS_EOPNOTSUPP;
}
#endif

/* ---- the poll()/WSAPoll() socket set (fs_private.h) -------------------- */


#include <stdlib.h>

/* A polled slot whose FS_POLLERR was just reported with interest 0: moved
 * to the muted slots at the end of that wait (never a valid interest). */
#define FS__MUTE_MARK ((short)-1)

/* Fibonacci hashing: the high bits of the product mix every bit of the
 * socket, so descriptors 3, 4, 5 and handles 0x104, 0x108 both spread. */
static size_t fs__slot_hash(fs_sock_t s, size_t mask)
{
    uint64_t h = (uint64_t)(uintptr_t)s * UINT64_C(0x9E3779B97F4A7C15);

    return (size_t)(h >> 32) & mask;
}

/* The index entry of s, or the free entry where s would go. */
static fs__slotref_t *fs__slot_find(const fs__pollset_t *ps, fs_sock_t s)
{
    size_t i = fs__slot_hash(s, ps->index_mask);

    while (ps->index[i].slot >= 0 && ps->index[i].sock != s)
        i = (i + 1) & ps->index_mask;
    return &ps->index[i];
}

/* Empties entry e, moving later entries of its probe run back into the
 * hole (no tombstones, so lookups stay short after many deletions). */
static void fs__slot_forget(fs__pollset_t *ps, fs__slotref_t *e)
{
    size_t mask = ps->index_mask, hole = (size_t)(e - ps->index), i = hole;

    for (;;) {
        size_t home;

        i = (i + 1) & mask;
        if (ps->index[i].slot < 0)
            break;
        home = fs__slot_hash(ps->index[i].sock, mask);
        /* Entry i may fill the hole if the hole lies between its home
         * and i, going round the table. */
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            ps->index[hole] = ps->index[i];
            hole = i;
        }
    }
    ps->index[hole].slot = -1;
}

/* An index of `entries` (a power of two) free entries, or NULL. */
static fs__slotref_t *fs__slot_table(size_t entries)
{
    fs__slotref_t *t = (fs__slotref_t *)malloc(entries * sizeof(*t));
    size_t i;

    for (i = 0; t != NULL && i < entries; i++)
        t[i].slot = -1;
    return t;
}

/* Doubles the index once it would be more than half full. */
static int fs__slot_reserve(fs__pollset_t *ps)
{
    fs__slotref_t *old = ps->index, *t;
    size_t entries = ps->index_mask + 1, i;

    if ((size_t)ps->n * 2 < entries)
        return 0;
    t = fs__slot_table(entries * 2);
    if (t == NULL)
        return FS_ENOMEM;
    ps->index = t;
    ps->index_mask = entries * 2 - 1;
    for (i = 0; i < entries; i++) {
        if (old[i].slot >= 0)
            *fs__slot_find(ps, old[i].sock) = old[i];
    }
    free(old);
    return 0;
}

/* Room for one more slot. */
static int fs__pollset_reserve(fs__pollset_t *ps)
{
    fs__pollfd_t *fds;
    void **data;
    int cap = ps->cap * 2;

    if (ps->n < ps->cap)
        return 0;
    if (ps->cap > INT_MAX / 2)
        return FS_ENOMEM;
    fds = (fs__pollfd_t *)realloc(ps->fds, (size_t)cap * sizeof(*fds));
    if (fds == NULL)
        return FS_ENOMEM;
    ps->fds = fds;
    data = (void **)realloc(ps->data, (size_t)cap * sizeof(*data));
    if (data == NULL)
        return FS_ENOMEM;
    ps->data = data;
    ps->cap = cap;
    return 0;
}

/* Moves slot `from` to the free slot `to`. */
static void fs__pollset_move(fs__pollset_t *ps, int from, int to)
{
    if (from == to)
        return;
    ps->fds[to] = ps->fds[from];
    ps->data[to] = ps->data[from];
    fs__slot_find(ps, ps->fds[to].fd)->slot = to;
}

/* Exchanges slots a and b. */
static void fs__pollset_swap(fs__pollset_t *ps, int a, int b)
{
    fs__pollfd_t fd = ps->fds[a];
    void *data = ps->data[a];

    if (a == b)
        return;
    ps->fds[a] = ps->fds[b];
    ps->data[a] = ps->data[b];
    ps->fds[b] = fd;
    ps->data[b] = data;
    fs__slot_find(ps, ps->fds[a].fd)->slot = a;
    fs__slot_find(ps, ps->fds[b].fd)->slot = b;
}

int fs__pollset_init(fs__pollset_t *ps, fs_sock_t wake)
{
    enum { FIRST = 16 };

    memset(ps, 0, sizeof(*ps));
    ps->fds = (fs__pollfd_t *)malloc(FIRST * sizeof(*ps->fds));
    ps->data = (void **)malloc(FIRST * sizeof(*ps->data));
    ps->index = fs__slot_table(2 * FIRST);
    if (ps->fds == NULL || ps->data == NULL || ps->index == NULL) {
        fs__pollset_free(ps);
        return FS_ENOMEM;
    }
    ps->cap = FIRST;
    ps->index_mask = 2 * FIRST - 1;
    ps->fds[0].fd = wake;
    ps->fds[0].events = FS_POLLIN;
    ps->fds[0].revents = 0;
    ps->data[0] = NULL;
    ps->n = ps->active = ps->next = 1;
    return 0;
}

void fs__pollset_free(fs__pollset_t *ps)
{
    free(ps->fds);
    free(ps->data);
    free(ps->index);
    memset(ps, 0, sizeof(*ps));
}

static int fs__pollset_add(fs__pollset_t *ps, fs_sock_t s, int events,
                           void *data)
{
    fs__slotref_t *e;
    int slot, err;

    err = fs__slot_reserve(ps);
    if (err == 0)
        err = fs__pollset_reserve(ps);
    if (err < 0)
        return err;
    e = fs__slot_find(ps, s);
    if (e->slot >= 0)
        return FS_EINVAL;
    /* New sockets are polled: the first muted slot, if any, makes room
     * by moving to the end. */
    slot = ps->n++;
    fs__pollset_move(ps, ps->active, slot);
    slot = ps->active++;
    ps->fds[slot].fd = s;
    ps->fds[slot].events = (short)events;
    ps->fds[slot].revents = 0;
    ps->data[slot] = data;
    e->sock = s;
    e->slot = slot;
    return 0;
}

static int fs__pollset_mod(fs__pollset_t *ps, fs_sock_t s, int events,
                           void *data)
{
    int slot = fs__slot_find(ps, s)->slot;

    if (slot < 0)
        return FS_EINVAL;
    if (slot >= ps->active) { /* muted: polled again */
        fs__pollset_swap(ps, slot, ps->active);
        slot = ps->active++;
    }
    ps->fds[slot].events = (short)events;
    ps->data[slot] = data;
    return 0;
}

static int fs__pollset_del(fs__pollset_t *ps, fs_sock_t s)
{
    fs__slotref_t *e = fs__slot_find(ps, s);
    int slot = e->slot;

    if (slot < 0)
        return FS_EINVAL;
    fs__slot_forget(ps, e);
    /* The last polled slot fills the hole, the last slot fills its place:
     * polled and muted slots stay apart. */
    if (slot < ps->active) {
        fs__pollset_move(ps, ps->active - 1, slot);
        slot = --ps->active;
    }
    fs__pollset_move(ps, ps->n - 1, slot);
    ps->n--;
    if (ps->next >= ps->active)
        ps->next = 1;
    return 0;
}

int fs__pollset_ctl(fs__pollset_t *ps, int op, fs_sock_t s, int events,
                    void *data)
{
    if (op == FS__CTL_ADD)
        return fs__pollset_add(ps, s, events, data);
    if (op == FS__CTL_MOD)
        return fs__pollset_mod(ps, s, events, data);
    return fs__pollset_del(ps, s);
}

/* Moves the slots marked FS__MUTE_MARK out of the polled ones. */
static void fs__pollset_mute(fs__pollset_t *ps)
{
    int i = 1;

    while (i < ps->active) {
        if (ps->fds[i].events == FS__MUTE_MARK) {
            ps->fds[i].events = 0;
            /* Slot i now holds the last polled one: look at it too. */
            fs__pollset_swap(ps, i, --ps->active);
        }
        else
            i++;
    }
    if (ps->next >= ps->active)
        ps->next = 1;
}

int fs__pollset_wait(fs__pollset_t *ps, fs_pevent_t *out, int max,
                     int timeout_ms, int *woken)
{
    int ready, i, seen, count = 0, mute = 0;

    *woken = 0;
    ready = fs__poll(ps->fds, ps->active, timeout_ms);
    if (ready <= 0)
        return ready;
    if (ps->fds[0].revents != 0) {
        *woken = 1;
        ready--;
    }
    /* One pass round the polled slots from where the last one stopped,
     * ending once every ready slot was seen or out is full. */
    i = ps->next;
    for (seen = 1; seen < ps->active && ready > 0 && count < max; seen++) {
        fs__pollfd_t *fd = &ps->fds[i];
        int slot = i, ev;

        i = i + 1 < ps->active ? i + 1 : 1;
        if (fd->revents == 0)
            continue;
        ready--;
        ev = fd->revents & fd->events;
        if (fd->revents & (POLLERR | POLLHUP | POLLNVAL))
            ev |= FS_POLLERR;
        if (ev == 0)
            continue;
        if (fd->events == 0) { /* reported once, then muted */
            fd->events = FS__MUTE_MARK;
            mute = 1;
        }
        out[count].data = ps->data[slot];
        out[count].events = ev;
        count++;
    }
    ps->next = i;
    if (mute)
        fs__pollset_mute(ps);
    return count;
}

/* ---- the poller's public calls: arguments checked once for all backends */

/* A socket value that is no socket: -1 on POSIX, INVALID_SOCKET (all bits
 * set) on Windows, which no handle reaches. */
static int fs__bad_socket(fs_sock_t s)
{
    return (intptr_t)s < 0;
}

int fs_poller_add(fs_poller_t *p, fs_sock_t s, int events, void *data)
{
    if (events & ~FS__INTEREST)
        return FS_EINVAL;
    if (fs__bad_socket(s))
        return FS_EBADF;
    return fs__poller_ctl(p, FS__CTL_ADD, s, events, data);
}

int fs_poller_mod(fs_poller_t *p, fs_sock_t s, int events, void *data)
{
    if (events & ~FS__INTEREST)
        return FS_EINVAL;
    if (fs__bad_socket(s))
        return FS_EBADF;
    return fs__poller_ctl(p, FS__CTL_MOD, s, events, data);
}

int fs_poller_del(fs_poller_t *p, fs_sock_t s)
{
    if (fs__bad_socket(s))
        return FS_EBADF;
    return fs__poller_ctl(p, FS__CTL_DEL, s, 0, NULL);
}

int fs_poller_wait(fs_poller_t *p, fs_pevent_t *out, int max,
                   int timeout_ms)
{
    if (max <= 0)
        return FS_EINVAL;
    return fs__poller_wait(p, out, max, timeout_ms);
}

int fs_addr_unix(fs_addr_t *a, const char *path, size_t len)
{
    struct fs__sockaddr_un *un = (struct fs__sockaddr_un *)&a->ss;

    memset(a, 0, sizeof(*a));
    if (len >= sizeof(un->sun_path) + (len > 0 && path[0] == '\0'))
        return FS_EINVAL;
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, len);
    /* An abstract name is exactly its bytes; a path gets its NUL.  (The OS
     * refuses what it does not support.) */
    a->len = (fs_socklen_t)(offsetof(struct fs__sockaddr_un, sun_path) + len
                            + (len > 0 && path[0] != '\0'));
    return 0;
}

int fs_addr_unix_path(const fs_addr_t *a, const char **path)
{
    const struct fs__sockaddr_un *un =
        (const struct fs__sockaddr_un *)&a->ss;
    size_t off = offsetof(struct fs__sockaddr_un, sun_path);
    size_t len;

    *path = un->sun_path;
    if ((size_t)a->len <= off)
        return 0;
    len = (size_t)a->len - off;
    /* Linux may count a NUL past a path that fills sun_path. */
    if (len > sizeof(un->sun_path))
        len = sizeof(un->sun_path);
    if (FS__UNIX_ABSTRACT && un->sun_path[0] == '\0')
        return (int)len;
    /* A path ends at its first NUL, whatever length the OS gave. */
    return (int)strnlen(un->sun_path, len);
}
