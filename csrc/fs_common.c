/* fs_common.c - platform-free helpers of the shim. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#  define _POSIX_C_SOURCE 200809L /* getaddrinfo under -std=c11 */
#endif
#include "fastsock.h"

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
#else
#  include <arpa/inet.h>
#  include <netdb.h>
#  include <netinet/in.h>
#endif
#include <string.h>

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
        else if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
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
