/*
 * net: sockets with poll() deadlines. See net.h.
 */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"

int
net_listen(const struct cfg_addr *addr, int backlog)
{
    int one = 1;
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1)
        goto fail;
    if (addr->ss.ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
        goto fail;
    /* Accepted sockets inherit it: one setsockopt here instead of one per client. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
        goto fail;
    if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) == -1)
        goto fail;
    if (listen(fd, backlog) == -1)
        goto fail;
    return fd;
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int
net_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

int
net_set_blocking(int fd, bool blocking)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl == -1)
        return -1;
    fl = blocking ? fl & ~O_NONBLOCK : fl | O_NONBLOCK;
    return fcntl(fd, F_SETFL, fl);
}

int
net_wait(int fd, short events, int64_t deadline)
{
    struct pollfd pfd = {.fd = fd, .events = events};

    for (;;) {
        int64_t left = deadline - buf_now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        int r = poll(&pfd, 1, left > 1000000 ? 1000000 : (int)left);
        if (r > 0)
            return 0; /* readable, writable, or an error the next call reports */
        if (r == -1 && errno != EINTR)
            return -1;
    }
}

int
net_connect(const struct cfg_addr *addr, int64_t deadline)
{
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err = 0;
    socklen_t errlen = sizeof(err);

    if (fd == -1)
        return -1;
    if (connect(fd, (const struct sockaddr *)&addr->ss, addr->len) == -1) {
        if (errno != EINPROGRESS)
            goto fail;
        if (net_wait(fd, POLLOUT, deadline) == -1)
            goto fail;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) == -1)
            goto fail;
        if (err != 0) {
            errno = err;
            goto fail;
        }
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

ssize_t
net_read(int fd, void *buf, size_t len, int64_t deadline)
{
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -1;
        if (net_wait(fd, POLLIN, deadline) == -1)
            return -1;
    }
}

int
net_writev_all(int fd, struct iovec *iov, int cnt, int64_t timeout_ms)
{
    while (cnt > 0) {
        if (iov->iov_len == 0) {
            iov++;
            cnt--;
            continue;
        }
        ssize_t n = writev(fd, iov, cnt);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                return -1;
            if (net_wait(fd, POLLOUT, buf_now_ms() + timeout_ms) == -1)
                return -1;
            continue;
        }
        size_t left = (size_t)n;
        while (cnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

int
net_write_all(int fd, const void *buf, size_t len, int64_t timeout_ms)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return net_writev_all(fd, &iov, 1, timeout_ms);
}

void
net_addr_ip(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
    const void *src = NULL;

    if (ss->ss_family == AF_INET)
        src = &((const struct sockaddr_in *)ss)->sin_addr;
    else if (ss->ss_family == AF_INET6)
        src = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    if (src == NULL || inet_ntop(ss->ss_family, src, out, (socklen_t)outlen) == NULL)
        snprintf(out, outlen, "unknown");
}
