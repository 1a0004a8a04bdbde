/*
 * net: sockets with deadlines. Every socket the workers use is
 * non-blocking; each call first tries the syscall and only waits in poll()
 * when the kernel says EAGAIN, so the common case costs one syscall and
 * every wait still has a deadline (prefork "blocking I/O", done fast).
 *
 * Deadlines are absolute buf_now_ms() values. On timeout the calls fail
 * with errno ETIMEDOUT.
 */
#ifndef MP_NET_H
#define MP_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "config.h"

/*
 * Opens a listening socket on <addr> with SO_REUSEADDR and SO_REUSEPORT,
 * blocking (workers block in accept), and TCP_NODELAY, which accepted
 * sockets inherit. Returns the fd or -1 (errno set).
 */
int net_listen(const struct cfg_addr *addr, int backlog);

/* Sets or clears O_NONBLOCK on <fd>. Returns 0 or -1. */
int net_set_blocking(int fd, bool blocking);

/* The port <fd> is bound to (after binding port 0), or -1. */
int net_local_port(int fd);

/*
 * Connects to <addr> by <deadline>. Returns a non-blocking fd, or -1 with
 * errno (ECONNREFUSED, ETIMEDOUT, ...).
 */
int net_connect(const struct cfg_addr *addr, int64_t deadline);

/*
 * Waits until <fd> is readable (POLLIN) or writable (POLLOUT) by
 * <deadline>. Returns 0, or -1 with errno ETIMEDOUT or EINTR-free error.
 */
int net_wait(int fd, short events, int64_t deadline);

/*
 * Reads at most <len> bytes by <deadline>. Returns the count, 0 at EOF, or
 * -1 (errno ETIMEDOUT, ECONNRESET, ...).
 */
ssize_t net_read(int fd, void *buf, size_t len, int64_t deadline);

/*
 * Writes all of <iov>[0..<cnt>) (modified in place). <timeout_ms> bounds
 * each wait for progress, not the whole transfer. Returns 0 or -1 (errno).
 */
int net_writev_all(int fd, struct iovec *iov, int cnt, int64_t timeout_ms);

/* net_writev_all() for one buffer. */
int net_write_all(int fd, const void *buf, size_t len, int64_t timeout_ms);

/* Formats the peer address of a sockaddr as "ip" (no port) into <out>. */
void net_addr_ip(const struct sockaddr_storage *ss, char *out, size_t outlen);

#endif
