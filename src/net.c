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

#include "clock.h"

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
net_defer_accept(int fd, bool on)
{
    int secs = on ? NET_DEFER_ACCEPT_S : 0;
    return setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs));
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

/* The longest single sleep: poll() takes an int of milliseconds. */
#define NET_MAX_SLEEP_MS 1000000

int
net_poll(struct pollfd *pfds, nfds_t n, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - clock_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        int r = poll(pfds, n, left > NET_MAX_SLEEP_MS ? NET_MAX_SLEEP_MS : (int)left);
        if (r > 0)
            return r;
        if (r == -1)
            return errno == EINTR ? 0 : -1;
        /* r == 0: one sleep ended; the loop tells a far deadline from an expired one */
    }
}

int
net_wait(int fd, short events, int64_t deadline)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    int r;

    while ((r = net_poll(&pfd, 1, deadline)) == 0)
        ;
    return r > 0 ? 0 : -1;
}

ssize_t
net_try_read(int fd, void *buf, size_t len)
{
    ssize_t n;

    while ((n = read(fd, buf, len)) == -1 && errno == EINTR)
        ;
    return n;
}

ssize_t
net_try_writev(int fd, const struct iovec *iov, int cnt)
{
    ssize_t n;

    while ((n = writev(fd, iov, cnt)) == -1 && errno == EINTR)
        ;
    return n;
}

void
net_iov_advance(struct iovec **iov, int *cnt, size_t n)
{
    while (*cnt > 0 && n >= (*iov)->iov_len) {
        n -= (*iov)->iov_len;
        (*iov)++;
        (*cnt)--;
    }
    if (*cnt > 0) {
        (*iov)->iov_base = (char *)(*iov)->iov_base + n;
        (*iov)->iov_len -= n;
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
        ssize_t n = net_try_read(fd, buf, len);
        if (n >= 0 || errno != EAGAIN)
            return n;
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
        ssize_t n = net_try_writev(fd, iov, cnt);
        if (n == -1) {
            if (errno != EAGAIN)
                return -1;
            if (net_wait(fd, POLLOUT, clock_ms() + timeout_ms) == -1)
                return -1;
            continue;
        }
        net_iov_advance(&iov, &cnt, (size_t)n);
    }
    return 0;
}

int
net_write_all(int fd, const void *buf, size_t len, int64_t timeout_ms)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return net_writev_all(fd, &iov, 1, timeout_ms);
}

bool
net_idle_open(int fd)
{
    char c;
    ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void
net_pipe_init(struct net_pipe *p)
{
    *p = (struct net_pipe){.rd = -1, .wr = -1};
}

void
net_pipe_close(struct net_pipe *p)
{
    if (p->rd != -1)
        close(p->rd);
    if (p->wr != -1)
        close(p->wr);
    net_pipe_init(p);
}

int
net_pipe_ready(struct net_pipe *p)
{
    int fds[2];

    if (p->held > 0)
        net_pipe_close(p); /* what a failed transfer left: cheaper to drop than to drain */
    if (p->rd != -1)
        return 0;
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1)
        return -1;
    p->rd = fds[0];
    p->wr = fds[1];
    return 0;
}

static ssize_t
net_splice(int in, int out, size_t len)
{
    ssize_t n;

    while ((n = splice(in, NULL, out, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)) == -1 &&
           errno == EINTR)
        ;
    return n;
}

ssize_t
net_pipe_in(struct net_pipe *p, int from, size_t len)
{
    ssize_t n = net_splice(from, p->wr, len);
    if (n > 0)
        p->held += (size_t)n;
    return n;
}

ssize_t
net_pipe_out(struct net_pipe *p, int to)
{
    ssize_t n = net_splice(p->rd, to, p->held);
    if (n > 0)
        p->held -= (size_t)n;
    return n;
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
