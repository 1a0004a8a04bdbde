/*
 * upconn: a connection to an upstream server, plain or TLS, and the one
 * seam through which the request path (proxy.c, relay.c, upool.c) and the
 * health checker read and write it. With tls = off a call is the plain
 * syscall behind one branch: no allocation, no extra syscall.
 *
 * TLS (a group's `tls = on`): the client-side SSL_CTX of a group is built
 * once, when the configuration is loaded (in the master, at start, -t, -T
 * and on SIGHUP: upconn_ctx_new()), and inherited by the workers and the
 * health checker. Every call is non-blocking, as the sockets are; OpenSSL's
 * "want read" / "want write" become EAGAIN, and upconn_read_events() /
 * upconn_write_events() say what to poll() for before trying again (a TLS
 * read may have to write, and a write to read).
 *
 * Sessions are resumed per server: the caller keeps one SSL_SESSION slot
 * per server (upool.c per worker, health.c per probe) and passes it to
 * upconn_tls_begin(); sessions the server sends (TLS 1.3 tickets come after
 * the handshake) are stored there as they arrive.
 */
#ifndef MP_UPCONN_H
#define MP_UPCONN_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <openssl/ssl.h>

#include "config.h"
#include "net.h"

/* Room for a TLS failure in words ("certificate verify failed: ..."). */
#define UPCONN_WHY_MAX 192

struct upconn {
    int fd;      /* -1: no connection */
    SSL *ssl;    /* NULL: plain */
    bool broken; /* a fatal TLS error happened: no close_notify on close */
    short rwant; /* TLS: what the last blocked read (or the handshake) waits for */
    short wwant; /* TLS: what the last blocked write waits for */
};

/* No connection. */
#define UPCONN_NONE ((struct upconn){.fd = -1})

/*
 * Builds group <g>'s client context: TLS 1.2 and 1.3, security level 2,
 * verification of the certificate chain against <g>->tls_ca ("system": the
 * system's store) and of the name when <g>->tls_verify, session resumption
 * through the caller's slots, record buffers released while idle, no
 * renegotiation. A CA file is read and checked here: a missing, unreadable
 * or empty one fails. Returns 0 with the context in <*out>, or -1 with the
 * reason ("/etc/ca.pem: cannot open: No such file or directory") in <why>.
 */
int upconn_ctx_new(const struct cfg_group *g, SSL_CTX **out, char *why, size_t whylen);

/* Frees a context of upconn_ctx_new() (NULL: nothing). */
void upconn_ctx_free(SSL_CTX *ctx);

/* The name sent as SNI and verified for server <s> of <g>: tls_server_name, or its host. */
const char *upconn_server_name(const struct cfg_group *g, const struct cfg_server *s);

/*
 * Starts TLS on <u>, whose fd is connected (non-blocking): a new SSL from
 * <g>'s context, SNI (unless the name is an IP address), the name to
 * verify, and the session in <*slot> to resume (the slot then receives the
 * server's new sessions; NULL: no resumption). Returns 0, or -1 with the
 * reason in <why> (out of memory).
 */
int upconn_tls_begin(struct upconn *u, const struct cfg_group *g, const struct cfg_server *s,
                     SSL_SESSION **slot, char *why, size_t whylen);

/*
 * One step of the handshake, without waiting. Returns 1 when it is done,
 * 0 when it must wait for u->rwant on u->fd, -1 when it failed, with the
 * reason in <why>: "certificate verify failed: hostname mismatch (expected
 * app.internal)", "connection closed during the handshake", an OpenSSL
 * reason. A failed handshake empties the session slot.
 */
int upconn_handshake_step(struct upconn *u, char *why, size_t whylen);

/*
 * The handshake to its end by <deadline> (clock_ms()). Returns 0, or -1
 * with errno ETIMEDOUT, or EPROTO and the reason in <why>.
 */
int upconn_handshake(struct upconn *u, int64_t deadline, char *why, size_t whylen);

/*
 * One read that does not wait. Returns the count, 0 at EOF (for TLS: a
 * close_notify or a bare close), or -1 with errno (EAGAIN: poll for
 * upconn_read_events()).
 */
static inline ssize_t upconn_try_read(struct upconn *u, void *buf, size_t len);

/*
 * One write of the front of <iov>[0..<cnt>) that does not wait. Returns the
 * bytes written (they are the first ones of <iov>), or -1 with errno
 * (EAGAIN: poll for upconn_write_events(), then call again with the same
 * bytes in front, as an outq does).
 */
static inline ssize_t upconn_try_writev(struct upconn *u, const struct iovec *iov, int cnt);

/* The poll() events a read (write) that returned EAGAIN waits for. */
static inline short
upconn_read_events(const struct upconn *u)
{
    return u->ssl != NULL ? u->rwant : POLLIN;
}

static inline short
upconn_write_events(const struct upconn *u)
{
    return u->ssl != NULL ? u->wwant : POLLOUT;
}

/*
 * Writes all of <iov>[0..<cnt>) (modified in place). <timeout_ms> bounds
 * each wait for progress. Returns 0 or -1 with errno.
 */
int upconn_writev_all(struct upconn *u, struct iovec *iov, int cnt, int64_t timeout_ms);

/*
 * True when an idle pooled connection still looks usable: the peer has not
 * closed it and sent nothing (for TLS, records that carry no data, such as
 * session tickets, are taken in and do not count).
 */
bool upconn_idle_open(struct upconn *u);

/*
 * Half-closes <u>: no more bytes from us, the peer may go on sending (a
 * tunnel). Plain: shutdown(SHUT_WR); TLS: our close_notify, sent if it can
 * go at once (TLS 1.3 lets the peer go on; a TLS 1.2 peer may close).
 */
void upconn_shutdown_write(struct upconn *u);

/*
 * Ends the connection (nothing when there is none): for TLS a close_notify
 * is sent if it can go at once (never waited for), then the SSL is freed;
 * the fd is closed. Leaves <u> as UPCONN_NONE.
 */
void upconn_close(struct upconn *u);

/*
 * Zero-copy body transfer on a plain (tls = off) connection, for the relay:
 * upconn_splice_in() moves at most <len> bytes the server sent into <p>,
 * upconn_splice_out() what <p> holds to the server (keeping <p>'s count).
 * Neither waits. Returns the count (0: EOF, for _in), or -1 with errno
 * (EAGAIN: poll for POLLIN / POLLOUT). Never on a TLS connection.
 */
static inline ssize_t upconn_splice_in(struct upconn *u, struct net_pipe *p, size_t len);
static inline ssize_t upconn_splice_out(struct upconn *u, struct net_pipe *p);

/* The TLS calls behind the inline ones: not for direct use. */
ssize_t upconn_tls_read(struct upconn *u, void *buf, size_t len);
ssize_t upconn_tls_writev(struct upconn *u, const struct iovec *iov, int cnt);

static inline ssize_t
upconn_try_read(struct upconn *u, void *buf, size_t len)
{
    return u->ssl == NULL ? net_try_read(u->fd, buf, len) : upconn_tls_read(u, buf, len);
}

static inline ssize_t
upconn_try_writev(struct upconn *u, const struct iovec *iov, int cnt)
{
    return u->ssl == NULL ? net_try_writev(u->fd, iov, cnt) : upconn_tls_writev(u, iov, cnt);
}

static inline ssize_t
upconn_splice_in(struct upconn *u, struct net_pipe *p, size_t len)
{
    return net_pipe_in(p, u->fd, len);
}

static inline ssize_t
upconn_splice_out(struct upconn *u, struct net_pipe *p)
{
    return net_pipe_out(p, u->fd);
}

#endif
