/*
 * conn: the client connection, as a worker holds it. The one place that
 * reads and writes the client socket (conn_read / conn_write / conn_close
 * are the seam a TLS layer plugs into), and the owner of the receive
 * buffer: it reads request heads (with their deadlines and minimum rate),
 * keeps pipelined bytes for the next request, and sends the error pages.
 *
 * Buffer ownership: the bytes of a request head stay where conn_read_head()
 * parsed them, untouched, until the next conn_read_head() on the
 * connection, so the slices of <struct http_request> are valid for the
 * whole request (its body included). Others see the buffered bytes that
 * follow a head through conn_unread() and mark what they used with
 * conn_take().
 */
#ifndef MP_CONN_H
#define MP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <openssl/ssl.h>

#include "config.h"
#include "http.h"
#include "net.h"
#include "shm.h"
#include "tls.h"

struct conn;

/*
 * How conn_read_head() waits for more of a head, set by the worker
 * (conn_set_head_wait(); NULL: net_wait()). It waits until the client's
 * socket is readable or <deadline>; the head being read has waited since
 * <since> (clock_ms()). Returns 0 when the socket is readable, -1 with
 * errno (ETIMEDOUT at <deadline>), or 1 when the head is to be given up for
 * a client waiting for a worker (conn_read_head() then answers 408).
 */
typedef int conn_head_wait(void *arg, struct conn *c, int64_t deadline, int64_t since);

struct conn {
    int fd;            /* -1 between connections */
    char ip[64];       /* the peer address, for logs and X-Forwarded-For */
    unsigned requests; /* request heads read on this connection, the current one included */
    /* private to conn.c */
    const struct config *cfg;
    struct shm *shm;
    char *buf;       /* [start..len) received and not yet used */
    size_t read_cap; /* how much of buf socket reads may fill */
    size_t cap;      /* read_cap, plus room for bytes given back by conn_give_back() */
    size_t start, len;
    bool may_send;  /* the client may still be sending: a close lingers (lingering_close = on) */
    bool no_linger; /* cut for slowness: a close does not linger (lingering_close = on) */
    conn_head_wait *head_wait;
    void *head_wait_arg;
    /* TLS: <ssl> is NULL on a plain connection (and before its handshake) */
    SSL *ssl;
    struct tls_conn_state tls_state;
    bool tls_dead;  /* a fatal TLS error: no close_notify */
    short tls_want; /* what the last SSL call that wanted to wait waits for: POLLIN/POLLOUT */
    char *tls_wbuf; /* small writes gathered into one record (CONN_TLS_WBUF) */
};

/* A TLS record's worth: writes are gathered up to this before they are encrypted. */
#define CONN_TLS_WBUF 16384

/* Allocates the receive buffer (once per worker). Returns 0 or -1 (out of memory). */
int conn_init(struct conn *c, const struct config *cfg, struct shm *shm);
void conn_free(struct conn *c);

/* Sets how conn_read_head() waits (see conn_head_wait); <fn> NULL: net_wait(). */
void conn_set_head_wait(struct conn *c, conn_head_wait *fn, void *arg);

/* Starts serving the accepted non-blocking socket <fd> from peer <ss>. */
void conn_open(struct conn *c, int fd, const struct sockaddr_storage *ss);

/*
 * Ends the connection at once: over TLS sends close_notify (unless the
 * session failed or a lingering close sent it), then closes (close() of the
 * only descriptor sends the FIN). Input left unread makes the kernel answer with a reset, which can
 * destroy what we sent before the client read it: see conn_linger_start().
 */
void conn_close(struct conn *c);

/*
 * Says that the client may still be sending (a request body or head left
 * unread): the connection's close should linger.
 */
void conn_may_send(struct conn *c);

/*
 * Says that the client was cut for being too slow (408): its close does not
 * linger with lingering_close = on, or a trickling client would keep the
 * worker it was just cut from.
 */
void conn_no_linger(struct conn *c);

/*
 * Lingering close (nginx's lingering_close): returns true, after shutting
 * writing down (over TLS after close_notify; the client sees our answer
 * end), when the connection should
 * read and discard what the client still sends before conn_close():
 * lingering_close = always, or on and the client may still be sending
 * (conn_may_send(), or bytes buffered or waiting in the socket) and was not
 * cut for slowness (conn_no_linger()). The caller
 * then waits for conn_fd() to be readable and calls conn_discard(), bounded
 * by lingering_time and lingering_timeout. False: close at once.
 */
bool conn_linger_start(struct conn *c);

/*
 * Reads and throws away what the client sent, one read without waiting.
 * Returns 1 when bytes came or none yet (EAGAIN), 0 at EOF or on an error
 * (the lingering is over).
 */
int conn_discard(struct conn *c);

/*
 * On a tls listener, right after conn_open(): looks at the first byte
 * (a TLS record starts with 0x16; anything else is answered 400 in plain
 * text), then runs the handshake with <ctx> (SNI may switch it) within
 * handshake_timeout for the whole of it, and below client_header_min_rate
 * after its first second (a stalled handshake is a slow client; its reads
 * wait through conn_head_wait, so under pressure it is given up as a slow
 * head is). From then
 * on conn_read / conn_write / conn_close go over TLS. Returns 0, or -1
 * after the failure was logged and counted (the caller closes).
 */
int conn_start_tls(struct conn *c, SSL_CTX *ctx);

/* Whether the client speaks TLS (conn_start_tls() succeeded). */
bool conn_is_tls(const struct conn *c);

/*
 * Tells the client we send no more (a tunnel passing on the upstream's
 * half-close): shuts writing down, keeps reading.
 */
void conn_shutdown_write(struct conn *c);

/* The descriptor to poll() for readability or writability of the client. */
int conn_fd(const struct conn *c);

/*
 * True when bytes of a next request are already buffered (pipelining), by
 * us or, over TLS, decrypted by OpenSSL: then do not sleep on conn_fd().
 */
bool conn_has_pending(const struct conn *c);

/* The same, as the TLS seam names it: check it before any sleep on conn_fd(). */
bool conn_pending(const struct conn *c);

/*
 * On an idle keep-alive connection: tries to read the next request's first
 * bytes without sleeping (a read, then a sched_yield() and a read again, a
 * couple of times). Returns 1 when bytes came, 0 when the client closed or
 * the connection failed, -1 when nothing came yet (then wait for
 * conn_fd() to be readable and call conn_read_head()).
 */
int conn_try_first_bytes(struct conn *c);

/*
 * Reads and parses the next request head into <req>, keeping bytes after
 * it buffered. The whole head has client_header_timeout from its first
 * byte, and below client_header_min_rate it is cut sooner; the head wait
 * (conn_set_head_wait()) may give it up for a waiting client. Returns the
 * head's length (> 0); 0 when the connection ended before a byte of a head
 * (the caller closes quietly); -1 after answering an invalid, oversized or
 * too slow head with its error status (the caller closes).
 */
ssize_t conn_read_head(struct conn *c, struct http_request *req);

/*
 * The buffered bytes after the current head that no one has taken yet.
 * The caller may rewrite them in place (the chunked decoder does); they stay
 * where they are until the next conn_read_head().
 */
struct conn_bytes {
    char *p;
    size_t len;
};
struct conn_bytes conn_unread(struct conn *c);

/* Marks the first <n> bytes of conn_unread() as used. */
void conn_take(struct conn *c, size_t n);

/*
 * Gives back <n> bytes at <p> that a conn_read() returned but that belong
 * to the next request (pipelined after a chunked body). Only after
 * everything buffered was taken, and at most NET_IO_BUF bytes.
 */
void conn_give_back(struct conn *c, const char *p, size_t n);

/*
 * Reads what the client sent into <dst> without waiting: buffered bytes
 * first, then the socket. Returns the count, 0 at EOF, or -1 with errno
 * (EAGAIN when nothing came yet).
 */
ssize_t conn_read(struct conn *c, void *dst, size_t len);

/*
 * Writes what fits of <iov>[0..<cnt>) without waiting. Returns the bytes
 * written, or -1 with errno (EAGAIN when the socket is full).
 */
ssize_t conn_write(struct conn *c, const struct iovec *iov, int cnt);

/*
 * Zero-copy body transfer on a plain connection (conn_is_tls() false), for
 * the relay: conn_splice_in() moves at most <len> bytes the client sent
 * into <p>, once nothing is buffered (conn_has_pending() false: those bytes
 * come first, by conn_read()); conn_splice_out() moves what <p> holds to
 * the client (keeping <p>'s count). Neither waits. Returns the count (0:
 * EOF, for _in), or -1 with errno (EAGAIN: poll conn_fd()).
 */
ssize_t conn_splice_in(struct conn *c, struct net_pipe *p, size_t len);
ssize_t conn_splice_out(struct conn *c, struct net_pipe *p);

/*
 * Writes all of <iov>[0..<cnt>) (modified in place), waiting at most
 * send_timeout for each bit of progress. Returns 0 or -1 with errno.
 */
int conn_write_all(struct conn *c, struct iovec *iov, int cnt);

/* One access-log line. */
struct conn_log_entry {
    const char *request;  /* "METHOD target", or the request line as received (escaped) */
    int minor;            /* with a "METHOD target": its HTTP/1.<minor>; -1 with a whole line */
    int status;           /* the status sent */
    uint64_t bytes;       /* the response body bytes sent */
    const char *upstream; /* the server's address, NULL for none */
    int upstream_status;  /* 0 for none */
    int64_t start_us;     /* clock_us() when the request began */
    int64_t upstream_us;  /* from contacting the upstream to its response head, -1: none */
    /* for the combined and json formats (a zero slice: not known, or not sent) */
    struct http_slice method, target; /* as received */
    struct http_slice user_agent, referer;
    bool has_ua, has_referer;
    const char *client;     /* the client's address (trusted_proxies); NULL: the peer's */
    const char *route;      /* the [route NAME] that matched, NULL: none */
    const char *request_id; /* request_id = on: X-Request-Id, NULL: none */
    /* a TLS connection's, filled by conn_access_log(); tls_version NULL: plain HTTP */
    const char *tls_version, *tls_cipher, *sni; /* sni NULL: none sent */
    bool tls_resumed;
};

/*
 * Writes <e>'s line to the access log (in access_log_format, alog.h), if
 * there is one; on a TLS connection with the protocol, cipher, SNI and
 * whether the session was resumed.
 */
void conn_access_log(const struct conn *c, const struct conn_log_entry *e);

/*
 * Refuses the client with our page for <status> (Connection: close) and
 * logs it in the access log, with the request line as far as it was
 * received (or "-"); the request began at <start_us>. The caller closes.
 */
void conn_refuse(struct conn *c, int status, int64_t start_us);

/*
 * Sends a complete error response for <status> with a small HTML body;
 * <close> adds Connection: close. Returns the body bytes sent (for the
 * access log), or 0 when the client could not take them.
 */
uint64_t conn_send_error(struct conn *c, int status, bool close);

/* As conn_send_error(), with an X-Request-Id header (<request_id> at most 128 bytes; NULL: none).
 */
uint64_t conn_send_error_id(struct conn *c, int status, bool close, const char *request_id);

#endif
