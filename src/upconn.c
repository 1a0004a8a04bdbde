/*
 * upconn: upstream connections, plain or TLS. See upconn.h.
 */
#include "upconn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "clock.h"

/* ---- the context ------------------------------------------------------------------------- */

/*
 * OpenSSL calls this in the process that holds the connection when the
 * server gives it a session (at the end of a TLS 1.2 handshake, with a TLS
 * 1.3 ticket after it): it goes into the slot of the connection's server,
 * replacing the one there. Returns 1: we keep the reference.
 */
static int
new_session(SSL *ssl, SSL_SESSION *sess)
{
    SSL_SESSION **slot = SSL_get_app_data(ssl);

    if (slot == NULL)
        return 0;
    if (*slot != NULL)
        SSL_SESSION_free(*slot);
    *slot = sess;
    return 1;
}

/* The reason of the first error on OpenSSL's queue (then emptied), or <dflt>. */
static const char *
ssl_reason(const char *dflt)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    return r != NULL ? r : dflt;
}

/* Reads the CA file <path> into <ctx>, saying what is wrong with it in <why>. */
static int
load_ca(SSL_CTX *ctx, const char *path, char *why, size_t whylen)
{
    /* open() first, for the errno OpenSSL's message would not carry */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        snprintf(why, whylen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    close(fd);
    if (SSL_CTX_load_verify_file(ctx, path) != 1) {
        snprintf(why, whylen, "%s: no CA certificate in it (PEM expected): %s", path,
                 ssl_reason("unreadable"));
        return -1;
    }
    return 0;
}

int
upconn_ctx_new(const struct cfg_group *g, SSL_CTX **out, char *why, size_t whylen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL) {
        snprintf(why, whylen, "cannot make a TLS context: %s", ssl_reason("out of memory"));
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_security_level(ctx, 2);
    /* A close without close_notify reads as an EOF, as it does for plain HTTP. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    /*
     * Partial writes and a moving buffer: the relay's queues hand a write
     * that must be repeated back at another address (see tls_writev());
     * idle pooled connections give their record buffers back.
     */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /*
     * Read ahead: one read() takes in whatever records have come instead of
     * two reads (header, then body) per record. Nothing is lost to poll():
     * a read answers "want read" only when no whole record is buffered.
     */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session);
    if (strcmp(g->tls_ca, "system") == 0) {
        if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            snprintf(why, whylen, "cannot use the system's CA store: %s",
                     ssl_reason("unknown error"));
            goto fail;
        }
    } else if (load_ca(ctx, g->tls_ca, why, whylen) == -1) {
        goto fail;
    }
    SSL_CTX_set_verify(ctx, g->tls_verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    *out = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    return -1;
}

void
upconn_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

const char *
upconn_server_name(const struct cfg_group *g, const struct cfg_server *s)
{
    return g->tls_server_name != NULL ? g->tls_server_name : s->host;
}

/* True when <name> is an IPv4 or IPv6 address literal. */
static bool
is_ip(const char *name)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/* ---- the connection ---------------------------------------------------------------------- */

int
upconn_tls_begin(struct upconn *u, const struct cfg_group *g, const struct cfg_server *s,
                 SSL_SESSION **slot, char *why, size_t whylen)
{
    const char *name = upconn_server_name(g, s);
    SSL *ssl = SSL_new(g->tls_ctx);

    if (ssl == NULL || SSL_set_fd(ssl, u->fd) != 1)
        goto fail;
    /* RFC 6066: no SNI for an address; an address is verified against the IP entries */
    if (is_ip(name)) {
        if (g->tls_verify && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) != 1)
            goto fail;
    } else {
        if (SSL_set_tlsext_host_name(ssl, name) != 1)
            goto fail;
        if (g->tls_verify && SSL_set1_host(ssl, name) != 1)
            goto fail;
    }
    SSL_set_app_data(ssl, slot);
    if (slot != NULL && *slot != NULL)
        SSL_set_session(ssl, *slot);
    SSL_set_connect_state(ssl);
    u->ssl = ssl;
    u->broken = false;
    u->rwant = u->wwant = POLLOUT;
    return 0;
fail:
    snprintf(why, whylen, "cannot start TLS: %s", ssl_reason("out of memory"));
    SSL_free(ssl);
    errno = ENOMEM;
    return -1;
}

/* What the failed handshake of <u> (SSL_get_error() said <e>) means, in <why>. */
static void
handshake_failure(struct upconn *u, int e, char *why, size_t whylen)
{
    long v = SSL_get_verify_result(u->ssl);

    if (v != X509_V_OK) {
        X509_VERIFY_PARAM *param = SSL_get0_param(u->ssl);
        const char *host = X509_VERIFY_PARAM_get0_host(param, 0);
        char ip[64] = "";
        if (host == NULL) {
            char *a = X509_VERIFY_PARAM_get1_ip_asc(param);
            if (a != NULL)
                snprintf(ip, sizeof(ip), "%s", a);
            OPENSSL_free(a);
            host = ip;
        }
        if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH)
            snprintf(why, whylen, "certificate verify failed: %s (expected %s)",
                     X509_verify_cert_error_string(v), host);
        else
            snprintf(why, whylen, "certificate verify failed: %s",
                     X509_verify_cert_error_string(v));
        ERR_clear_error();
    } else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        if (errno != 0)
            snprintf(why, whylen, "handshake: %s", strerror(errno));
        else
            snprintf(why, whylen, "connection closed during the handshake");
    } else if (e == SSL_ERROR_ZERO_RETURN) {
        snprintf(why, whylen, "connection closed during the handshake");
    } else {
        snprintf(why, whylen, "handshake failed: %s", ssl_reason("unknown error"));
    }
    u->broken = true;
    /* a session that led to a failure is not offered again */
    SSL_SESSION **slot = SSL_get_app_data(u->ssl);
    if (slot != NULL && *slot != NULL) {
        SSL_SESSION_free(*slot);
        *slot = NULL;
    }
}

int
upconn_handshake_step(struct upconn *u, char *why, size_t whylen)
{
    errno = 0;
    int r = SSL_do_handshake(u->ssl);
    if (r == 1)
        return 1;
    int e = SSL_get_error(u->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        u->rwant = POLLIN;
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        u->rwant = POLLOUT;
        return 0;
    }
    handshake_failure(u, e, why, whylen);
    return -1;
}

int
upconn_handshake(struct upconn *u, int64_t deadline, char *why, size_t whylen)
{
    for (;;) {
        int r = upconn_handshake_step(u, why, whylen);
        if (r == 1)
            return 0;
        if (r == -1) {
            errno = EPROTO;
            return -1;
        }
        if (net_wait(u->fd, u->rwant, deadline) == -1)
            return -1;
    }
}

/*
 * Maps a failed SSL_read/SSL_write (SSL_get_error() gave <e>) to errno and
 * -1, or to 0 for a clean end; <want> receives what to poll for.
 */
static ssize_t
io_failure(struct upconn *u, int e, short *want)
{
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *want = POLLIN;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        *want = POLLOUT;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0; /* close_notify */
    case SSL_ERROR_SYSCALL:
        u->broken = true;
        if (ERR_peek_error() == 0 && errno == 0)
            return 0; /* a close without close_notify: an EOF, as for plain HTTP */
        ERR_clear_error();
        if (errno == 0)
            errno = EPROTO;
        return -1;
    default:
        u->broken = true;
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

ssize_t
upconn_tls_read(struct upconn *u, void *buf, size_t len)
{
    size_t n = 0;

    errno = 0;
    if (SSL_read_ex(u->ssl, buf, len, &n) == 1)
        return (ssize_t)n;
    return io_failure(u, SSL_get_error(u->ssl, 0), &u->rwant);
}

/*
 * Small pieces (a head, a chunk-size line) are gathered into one record
 * instead of one record each. A write that must be repeated comes back
 * with the same bytes in front (outq and upconn_writev_all only advance
 * past what was written), so gathering again gives the same bytes, which
 * is all OpenSSL asks with SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER. One
 * buffer per process will do: a worker writes to one upstream at a time.
 */
static char gather[16384];

ssize_t
upconn_tls_writev(struct upconn *u, const struct iovec *iov, int cnt)
{
    const void *p = iov[0].iov_base;
    size_t len = iov[0].iov_len, n = 0;

    if (len < sizeof(gather) && cnt > 1) {
        len = 0;
        for (int i = 0; i < cnt && len < sizeof(gather); i++) {
            size_t take = iov[i].iov_len;
            if (take > sizeof(gather) - len)
                take = sizeof(gather) - len;
            memcpy(gather + len, iov[i].iov_base, take);
            len += take;
        }
        p = gather;
    }
    if (len == 0)
        return 0;
    errno = 0;
    if (SSL_write_ex(u->ssl, p, len, &n) == 1)
        return (ssize_t)n;
    ssize_t r = io_failure(u, SSL_get_error(u->ssl, 0), &u->wwant);
    if (r == 0) {
        errno = EPIPE; /* the peer closed: nothing can be written any more */
        return -1;
    }
    return r;
}

int
upconn_writev_all(struct upconn *u, struct iovec *iov, int cnt, int64_t timeout_ms)
{
    while (cnt > 0) {
        if (iov->iov_len == 0) {
            iov++;
            cnt--;
            continue;
        }
        ssize_t n = upconn_try_writev(u, iov, cnt);
        if (n == -1) {
            if (errno != EAGAIN)
                return -1;
            if (net_wait(u->fd, upconn_write_events(u), clock_ms() + timeout_ms) == -1)
                return -1;
            continue;
        }
        net_iov_advance(&iov, &cnt, (size_t)n);
    }
    return 0;
}

bool
upconn_idle_open(struct upconn *u)
{
    if (u->ssl == NULL)
        return net_idle_open(u->fd);
    /* bytes read ahead count as much as bytes in the socket */
    if (!SSL_has_pending(u->ssl) && net_idle_open(u->fd))
        return true;
    /* Something came: a record that carries no data (a ticket) leaves it usable. */
    char c;
    size_t n = 0;
    if (SSL_read_ex(u->ssl, &c, 1, &n) == 1)
        return false; /* stray bytes */
    int e = SSL_get_error(u->ssl, 0);
    if (e == SSL_ERROR_WANT_READ)
        return true;
    if (e != SSL_ERROR_ZERO_RETURN)
        u->broken = true;
    ERR_clear_error();
    return false;
}

void
upconn_shutdown_write(struct upconn *u)
{
    if (u->ssl == NULL) {
        shutdown(u->fd, SHUT_WR);
        return;
    }
    if (!u->broken && SSL_is_init_finished(u->ssl))
        (void)SSL_shutdown(u->ssl);
    ERR_clear_error();
}

void
upconn_close(struct upconn *u)
{
    if (u->ssl != NULL) {
        /* One try, never a wait: the socket is non-blocking, and we do not read the reply. */
        if (!u->broken && SSL_is_init_finished(u->ssl))
            (void)SSL_shutdown(u->ssl);
        SSL_free(u->ssl);
        ERR_clear_error();
    }
    if (u->fd != -1)
        close(u->fd);
    *u = UPCONN_NONE;
}
