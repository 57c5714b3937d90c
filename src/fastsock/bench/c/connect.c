/*
 * connect.c - the plain C reference (Berkeley API, -O2) for W7: connect,
 * a 16-byte request and reply, close, one connection after another.
 *
 *   connect server N         binds 127.0.0.1:0, prints the port, answers N
 *                            connections (reads 16 bytes, writes them back)
 *   connect client N PORT    waits for a byte on standard input ("go"),
 *                            then makes N such connections to PORT
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void exact(int fd, char *buf, int n, int writing)
{
    int done = 0;
    while (done < n) {
        int r = writing ? write(fd, buf + done, n - done)
                        : read(fd, buf + done, n - done);
        if (r <= 0) { perror("io"); exit(1); }
        done += r;
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    char buf[16] = "0123456789abcdef";
    int i, n = atoi(argv[2]), one = 1;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (strcmp(argv[1], "server") == 0) {
        int l = socket(AF_INET, SOCK_STREAM, 0);
        setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 128)) {
            perror("listen"); return 1;
        }
        getsockname(l, (struct sockaddr *)&a, &len);
        printf("%d\n", ntohs(a.sin_port));
        fflush(stdout);
        for (i = 0; i < n; i++) {
            int c = accept(l, NULL, NULL);
            if (c < 0) { perror("accept"); return 1; }
            exact(c, buf, 16, 0);
            exact(c, buf, 16, 1);
            close(c);
        }
        return 0;
    }
    a.sin_port = htons(atoi(argv[3]));
    if (read(0, buf, 1) != 1)          /* wait for "go" */
        return 1;
    for (i = 0; i < n; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c, (struct sockaddr *)&a, sizeof(a))) { perror("connect"); return 1; }
        exact(c, buf, 16, 1);
        exact(c, buf, 16, 0);
        close(c);
    }
    return 0;
}
