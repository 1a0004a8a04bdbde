/*
 * net: sockets with deadlines. Every socket the workers use is
 * non-blocking; each call first tries the syscall and only waits in poll()
 * when the kernel says EAGAIN, so the common case costs one syscall and
 * every wait still has a deadline (prefork "blocking I/O", done fast).
 *
 * net_poll() is the one wait of a worker: every other wait (here, in conn.c,
 * relay.c and worker.c) goes through it, so the deadline clamp and the EINTR
 * policy live in one place. Upstream sockets are read and written here;
 * the client socket only through conn.c, which uses the net_try_* calls.
 *
 * Deadlines are absolute clock_ms() values. On timeout the calls fail
 * with errno ETIMEDOUT.
 */
#ifndef MP_NET_H
#define MP_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "config.h"

/* Size of the buffers bodies stream through, each direction, and of a read. */
#define NET_IO_BUF (64 * 1024)

/*
 * Opens a listening socket on <addr> with SO_REUSEADDR and SO_REUSEPORT,
 * blocking (workers block in accept), and TCP_NODELAY, which accepted
 * sockets inherit. Returns the fd or -1 (errno set).
 */
int net_listen(const struct cfg_addr *addr, int backlog);

/*
 * Deferred accept (nginx's `listen ... deferred`): with <on>, accept()
 * returns a connection of listener <fd> once its first bytes are there, so
 * the worker reads at once instead of sleeping in poll(). A client that
 * connects and sends nothing is accepted anyway after NET_DEFER_ACCEPT_S
 * (the kernel's shortest deferral: one SYN-ACK retransmission) and then
 * has client_header_timeout, as without deferral. <on> false clears it.
 * Returns 0 or -1 (errno).
 */
int net_defer_accept(int fd, bool on);
#define NET_DEFER_ACCEPT_S 1

/* Sets or clears O_NONBLOCK on <fd>. Returns 0 or -1. */
int net_set_blocking(int fd, bool blocking);

/* The port <fd> is bound to (after binding port 0), or -1. */
int net_local_port(int fd);

/*
 * Connects to <addr> by <deadline>. Returns a non-blocking fd, or -1 with
 * errno (ECONNREFUSED, ETIMEDOUT, ...).
 */
int net_connect(const struct cfg_addr *addr, int64_t deadline);

/* A deadline that never comes (a wait only a signal or an event ends). */
#define NET_NO_DEADLINE INT64_MAX

/*
 * poll() on <pfds>[0..<n>) until an event or <deadline>. Returns the number
 * of entries with revents set (> 0); 0 when a signal interrupted the wait
 * (EINTR), so the caller looks at its signal flags and calls again if it
 * still wants to wait; -1 with errno ETIMEDOUT once <deadline> has passed
 * (checked before sleeping: an expired deadline does not poll), or -1 with
 * poll's errno. A deadline further away than poll() can take is waited for
 * in several sleeps.
 */
int net_poll(struct pollfd *pfds, nfds_t n, int64_t deadline);

/*
 * Waits until <fd> is readable (POLLIN) or writable (POLLOUT) by
 * <deadline>; a signal does not end the wait. Returns 0 (ready, or an
 * error the next call on <fd> reports), or -1 with errno ETIMEDOUT or
 * poll's error.
 */
int net_wait(int fd, short events, int64_t deadline);

/*
 * One read() that does not wait (EINTR is retried). Returns the count, 0 at
 * EOF, or -1 with errno (EAGAIN when nothing is there yet).
 */
ssize_t net_try_read(int fd, void *buf, size_t len);

/*
 * One writev() that does not wait (EINTR is retried). Returns the bytes
 * written, or -1 with errno (EAGAIN when the socket is full).
 */
ssize_t net_try_writev(int fd, const struct iovec *iov, int cnt);

/*
 * Takes <n> written bytes off the front of <*iov>[0..<*cnt>): whole
 * entries are skipped, a partly written one is shortened in place.
 */
void net_iov_advance(struct iovec **iov, int *cnt, size_t n);

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

/*
 * True when an idle connection still looks usable: nothing to read and no
 * EOF (a peek, one syscall). False when the peer closed it or sent stray
 * bytes.
 */
bool net_idle_open(int fd);

/*
 * A worker's pipe for splice(): body bytes go socket -> pipe -> socket
 * without being copied to user space. <held> bytes are in it; a pipe left
 * holding bytes (its transfer failed) is closed and made anew at next use.
 */
struct net_pipe {
    int rd, wr; /* -1: not made yet, or closed */
    size_t held;
};

/* What one splice() into a net_pipe moves at most: its size (the kernel's default). */
#define NET_PIPE_SIZE (64 * 1024)

/* A pipe with nothing made yet (no syscall). */
void net_pipe_init(struct net_pipe *p);

/*
 * Makes <p> ready for a transfer: a pipe that still holds bytes is closed,
 * and one is made (non-blocking) if there is none. Returns 0 or -1 (errno:
 * out of file descriptors; the caller copies instead).
 */
int net_pipe_ready(struct net_pipe *p);

/* Closes <p>'s descriptors. */
void net_pipe_close(struct net_pipe *p);

/*
 * One splice() without waiting (EINTR is retried): net_pipe_in() moves at
 * most <len> bytes from socket <from> into <p>, net_pipe_out() what <p>
 * holds to socket <to>; both keep <p>'s count. Returns the bytes moved, 0
 * at EOF of <from>, or -1 with errno (EAGAIN: the socket has nothing, or no
 * room).
 */
ssize_t net_pipe_in(struct net_pipe *p, int from, size_t len);
ssize_t net_pipe_out(struct net_pipe *p, int to);

/* Formats the peer address of a sockaddr as "ip" (no port) into <out>. */
void net_addr_ip(const struct sockaddr_storage *ss, char *out, size_t outlen);

#endif
