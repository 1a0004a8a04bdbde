/*
 * conn: the client connection and its receive buffer. See conn.h.
 */
#include "conn.h"

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <openssl/err.h>

#include "alog.h"
#include "clock.h"
#include "log.h"
#include "net.h"
#include "rewrite.h"

/*
 * Times a worker yields the CPU, trying a read() after each, before it
 * sleeps waiting for a keep-alive client's next request. More requests/s
 * than with none and than the earlier poll(), yield, poll(); 3 or more
 * gained nothing (doc/benchmarks.md).
 */
#define IDLE_YIELDS 2

int
conn_init(struct conn *c, const struct config *cfg, struct shm *shm)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->cfg = cfg;
    c->shm = shm;
    /* A head and the body bytes that come with it in one read. */
    c->read_cap = cfg->max_header_size + NET_IO_BUF;
    c->cap = c->read_cap + NET_IO_BUF;
    c->buf = malloc(c->cap);
    if (c->buf == NULL)
        return -1;
    if (cfg->tls) {
        c->tls_wbuf = malloc(CONN_TLS_WBUF);
        if (c->tls_wbuf == NULL) {
            free(c->buf);
            c->buf = NULL;
            return -1;
        }
    }
    return 0;
}

void
conn_set_head_wait(struct conn *c, conn_head_wait *fn, void *arg)
{
    c->head_wait = fn;
    c->head_wait_arg = arg;
}

void
conn_free(struct conn *c)
{
    free(c->buf);
    free(c->tls_wbuf);
    c->buf = c->tls_wbuf = NULL;
}

void
conn_open(struct conn *c, int fd, const struct sockaddr_storage *ss)
{
    c->fd = fd;
    net_addr_ip(ss, c->ip, sizeof(c->ip));
    c->start = c->len = 0;
    c->requests = 0;
    c->may_send = c->no_linger = false;
    c->ssl = NULL;
    c->tls_state = (struct tls_conn_state){0};
    c->tls_dead = false;
    c->tls_want = POLLIN;
}

void
conn_close(struct conn *c)
{
    if (c->fd == -1)
        return;
    if (c->ssl != NULL) {
        /*
         * close_notify if it fits now; the client's is not waited for. After
         * a failure nothing more is written, but the session stays in the
         * cache (OpenSSL drops one that ends without close_notify, as when
         * a client just closes; it drops it itself after a fatal alert).
         */
        if (!c->tls_dead) {
            SSL_shutdown(c->ssl);
        } else {
            SSL_set_quiet_shutdown(c->ssl, 1);
            SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        }
        SSL_free(c->ssl);
        c->ssl = NULL;
        ERR_clear_error();
    }
    /* no shutdown(): close() of the one descriptor sends the FIN, a syscall less per connection */
    close(c->fd);
    c->fd = -1;
    c->may_send = c->no_linger = false;
}

void
conn_shutdown_write(struct conn *c)
{
    if (c->fd == -1)
        return;
    if (c->ssl != NULL && !c->tls_dead) {
        /* over TLS our half-close is close_notify, then the FIN; reading goes on */
        SSL_shutdown(c->ssl);
        c->tls_dead = true; /* conn_close() writes nothing more */
    }
    shutdown(c->fd, SHUT_WR);
}

int
conn_fd(const struct conn *c)
{
    return c->fd;
}

bool
conn_has_pending(const struct conn *c)
{
    return c->len > c->start || (c->ssl != NULL && SSL_has_pending(c->ssl));
}

bool
conn_pending(const struct conn *c)
{
    return conn_has_pending(c);
}

bool
conn_is_tls(const struct conn *c)
{
    return c->ssl != NULL;
}

/*
 * After an SSL call on <c> that failed with SSL_get_error() <e>: -1 with
 * errno EAGAIN (and c->tls_want set) when it must wait, 0 for the client's
 * close_notify or a TCP close, -1 with errno otherwise.
 */
static ssize_t
tls_io_error(struct conn *c, int e)
{
    switch (e) {
    case SSL_ERROR_WANT_READ:
        c->tls_want = POLLIN;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        c->tls_want = POLLOUT;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        c->tls_dead = true;
        if (errno == 0 || errno == EAGAIN)
            errno = ECONNRESET;
        return -1;
    default:
        c->tls_dead = true;
        /* a close without close_notify is a close, as on a plain connection */
        if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            ERR_clear_error();
            return 0;
        }
        log_debug("%s: TLS: %s", c->ip, ERR_reason_error_string(ERR_peek_error()));
        ERR_clear_error();
        errno = ECONNRESET;
        return -1;
    }
}

/* One SSL_read without waiting; a client past TLS_MAX_KEY_UPDATES KeyUpdates is cut. */
static ssize_t
tls_read(struct conn *c, void *dst, size_t len)
{
    size_t n = 0;
    int ok;

    errno = 0;
    ok = SSL_read_ex(c->ssl, dst, len, &n);
    if (c->tls_state.key_updates > TLS_MAX_KEY_UPDATES) {
        log_info("%s: TLS: %u KeyUpdates on one connection (at most %d): closing", c->ip,
                 c->tls_state.key_updates, TLS_MAX_KEY_UPDATES);
        c->tls_dead = true;
        errno = EPROTO;
        return -1;
    }
    if (ok == 1)
        return (ssize_t)n;
    return tls_io_error(c, SSL_get_error(c->ssl, 0));
}

/*
 * One SSL_write without waiting, of what <iov> holds up to CONN_TLS_WBUF
 * bytes, gathered so that a head and a small body make one record. After
 * a wait OpenSSL needs the same bytes again: the caller has not advanced
 * <iov>, so gathering again gives them (in the same buffer).
 */
static ssize_t
tls_write(struct conn *c, const struct iovec *iov, int cnt)
{
    const void *p;
    size_t n = 0, w = 0;

    while (cnt > 0 && iov[0].iov_len == 0)
        iov++, cnt--;
    if (cnt == 0)
        return 0;
    if (cnt == 1 || iov[0].iov_len >= CONN_TLS_WBUF) {
        p = iov[0].iov_base;
        n = iov[0].iov_len;
    } else {
        for (int i = 0; i < cnt && n < CONN_TLS_WBUF; i++) {
            size_t k = iov[i].iov_len < CONN_TLS_WBUF - n ? iov[i].iov_len : CONN_TLS_WBUF - n;
            memcpy(c->tls_wbuf + n, iov[i].iov_base, k);
            n += k;
        }
        p = c->tls_wbuf;
    }
    errno = 0;
    if (SSL_write_ex(c->ssl, p, n, &w) == 1)
        return (ssize_t)w;
    ssize_t r = tls_io_error(c, SSL_get_error(c->ssl, 0));
    if (r == 0) {
        errno = EPIPE;
        r = -1;
    }
    return r;
}

/* The seam: one read from the client socket, without waiting. */
static ssize_t
sock_read(struct conn *c, void *dst, size_t len)
{
    if (c->ssl != NULL)
        return tls_read(c, dst, len);
    return net_try_read(c->fd, dst, len);
}

ssize_t
conn_read(struct conn *c, void *dst, size_t len)
{
    if (c->len > c->start) {
        size_t n = c->len - c->start < len ? c->len - c->start : len;
        memcpy(dst, c->buf + c->start, n);
        c->start += n;
        return (ssize_t)n;
    }
    return sock_read(c, dst, len);
}

void
conn_may_send(struct conn *c)
{
    c->may_send = true;
}

void
conn_no_linger(struct conn *c)
{
    c->no_linger = true;
}

bool
conn_linger_start(struct conn *c)
{
    int queued = 0;

    if (c->fd == -1 || c->cfg->lingering_close == CFG_LINGER_OFF)
        return false;
    if (c->cfg->lingering_close == CFG_LINGER_ON &&
        (c->no_linger || (!c->may_send && c->len <= c->start &&
                          (ioctl(c->fd, FIONREAD, &queued) == -1 || queued == 0))))
        return false;
    if (c->ssl != NULL && !c->tls_dead) {
        /* our close_notify goes before the FIN; conn_close() writes nothing more */
        SSL_shutdown(c->ssl);
        c->tls_dead = true;
    }
    shutdown(c->fd, SHUT_WR);
    c->start = c->len = 0;
    return true;
}

int
conn_discard(struct conn *c)
{
    /* the raw socket, over TLS too: what is thrown away need not be decrypted */
    ssize_t n = net_try_read(c->fd, c->buf, c->read_cap);
    if (n > 0 || (n == -1 && errno == EAGAIN))
        return 1;
    return 0;
}

ssize_t
conn_write(struct conn *c, const struct iovec *iov, int cnt)
{
    if (c->ssl != NULL)
        return tls_write(c, iov, cnt);
    return net_try_writev(c->fd, iov, cnt);
}

ssize_t
conn_splice_in(struct conn *c, struct net_pipe *p, size_t len)
{
    return net_pipe_in(p, c->fd, len);
}

ssize_t
conn_splice_out(struct conn *c, struct net_pipe *p)
{
    return net_pipe_out(p, c->fd);
}

int
conn_write_all(struct conn *c, struct iovec *iov, int cnt)
{
    if (c->ssl == NULL)
        return net_writev_all(c->fd, iov, cnt, c->cfg->send_timeout_ms);
    int64_t deadline = clock_ms() + c->cfg->send_timeout_ms;
    for (;;) {
        ssize_t n = tls_write(c, iov, cnt);
        if (n == 0)
            return 0; /* nothing left */
        if (n > 0) {
            net_iov_advance(&iov, &cnt, (size_t)n);
            deadline = clock_ms() + c->cfg->send_timeout_ms;
            continue;
        }
        if (errno != EAGAIN || net_wait(c->fd, c->tls_want, deadline) == -1)
            return -1;
    }
}

struct conn_bytes
conn_unread(struct conn *c)
{
    return (struct conn_bytes){c->buf + c->start, c->len - c->start};
}

void
conn_take(struct conn *c, size_t n)
{
    c->start += n < c->len - c->start ? n : c->len - c->start;
}

void
conn_give_back(struct conn *c, const char *p, size_t n)
{
    /* Room is reserved past read_cap: a head's bytes are never moved for these. */
    if (n > c->cap - c->len)
        n = c->cap - c->len; /* cannot happen: n <= NET_IO_BUF */
    memcpy(c->buf + c->len, p, n);
    c->len += n;
}

uint64_t
conn_send_error(struct conn *c, int status, bool close)
{
    return conn_send_error_id(c, status, close, NULL);
}

uint64_t
conn_send_error_id(struct conn *c, int status, bool close, const char *request_id)
{
    char body[256], head[512], hsts[64] = "";
    const char *reason = http_reason(status);
    int blen = snprintf(body, sizeof(body),
                        "<html><head><title>%d %s</title></head><body><h1>%d %s</h1>"
                        "<hr>miniproxyd</body></html>\n",
                        status, reason, status, reason);
    /* our own pages over TLS carry HSTS too */
    if (c->ssl != NULL && c->cfg->tls_hsts > 0)
        snprintf(hsts, sizeof(hsts), "Strict-Transport-Security: max-age=%u\r\n",
                 c->cfg->tls_hsts);
    int hlen =
        snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nContent-Type: text/html\r\nContent-Length: %d\r\n%s%s%s%s%s"
                 "\r\n",
                 status, reason, blen, hsts, request_id != NULL ? "X-Request-Id: " : "",
                 request_id != NULL ? request_id : "", request_id != NULL ? "\r\n" : "",
                 close ? "Connection: close\r\n" : "");
    struct iovec iov[2] = {{head, (size_t)hlen}, {body, (size_t)blen}};
    if (conn_write_all(c, iov, 2) == -1) {
        log_debug("%s: sending %d: %s", c->ip, status, strerror(errno));
        return 0;
    }
    return (uint64_t)blen;
}

int
conn_try_first_bytes(struct conn *c)
{
    /*
     * A busy keep-alive client has often sent its next request already, or
     * does while this worker yields the CPU a couple of times (as before an
     * upstream's answer, see relay.c): a read() finds it without a poll()
     * and without a sleep and wake-up.
     */
    c->start = c->len = 0;
    ssize_t n = sock_read(c, c->buf, c->read_cap);
    for (int i = 0; i < IDLE_YIELDS && n == -1 && errno == EAGAIN; i++) {
        sched_yield();
        n = sock_read(c, c->buf, c->read_cap);
    }
    if (n > 0) {
        c->len = (size_t)n;
        return 1;
    }
    return n == -1 && errno == EAGAIN ? -1 : 0;
}

/*
 * When the head began at <t0> and <n> bytes of it are in: the time its
 * next byte must come by. The whole head has client_header_timeout; after
 * a first second, a client slower than client_header_min_rate is cut
 * sooner (mod_reqtimeout's MinRate), so a trickle cannot hold a worker.
 */
static int64_t
head_deadline(const struct config *cfg, int64_t t0, size_t n, bool *by_rate)
{
    int64_t d = t0 + cfg->client_header_timeout_ms;
    *by_rate = false;
    if (cfg->client_header_min_rate > 0) {
        int64_t r = t0 + 1000 + (int64_t)n * 1000 / cfg->client_header_min_rate;
        if (r < d) {
            d = r;
            *by_rate = true;
        }
    }
    return d;
}

void
conn_access_log(const struct conn *c, const struct conn_log_entry *e)
{
    if (!log_access_enabled())
        return;
    char line[ALOG_LINE_MAX];
    struct conn_log_entry with_tls;
    if (c->ssl != NULL) {
        with_tls = *e;
        with_tls.tls_version = SSL_get_version(c->ssl);
        with_tls.tls_cipher = SSL_get_cipher_name(c->ssl);
        with_tls.sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
        with_tls.tls_resumed = SSL_session_reused(c->ssl) != 0;
        e = &with_tls;
    }
    size_t n = alog_line(c->cfg->access_log_format, e->client != NULL ? e->client : c->ip, e,
                         clock_us(), line, sizeof(line));
    log_access(line, n);
}

/*
 * Copies the first line of what is buffered (after the empty lines a client
 * may send first) into <out>, at most 200 bytes of it, for the log: bytes
 * outside printable ASCII, '"' and '\\' as \xHH, so a client cannot forge
 * log lines. "-" when nothing came.
 */
static void
first_line(const struct conn *c, char *out, size_t cap)
{
    const char *p = c->buf + c->start, *end = c->buf + c->len;
    size_t o = 0;

    while (p < end && (*p == '\r' || *p == '\n'))
        p++;
    if (end - p > 200)
        end = p + 200;
    for (; p < end && *p != '\r' && *p != '\n' && o + 5 <= cap; p++) {
        unsigned char b = (unsigned char)*p;
        if (b < 0x20 || b > 0x7e || b == '"' || b == '\\')
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", b);
        else
            out[o++] = (char)b;
    }
    if (o == 0)
        out[o++] = '-';
    out[o] = '\0';
}

void
conn_refuse(struct conn *c, int status, int64_t start_us)
{
    char request[4 * 200 + 8];

    first_line(c, request, sizeof(request));
    shm_count_own(c->shm, status);
    uint64_t bytes = conn_send_error(c, status, true);
    conn_access_log(c, &(struct conn_log_entry){.request = request,
                                                .minor = -1,
                                                .status = status,
                                                .bytes = bytes,
                                                .start_us = start_us,
                                                .upstream_us = -1});
}

/*
 * Answers a request head that will not be served with <status>, and logs
 * why. Every rejection of a head goes through here (the one place to log
 * it). <req> is what the parser made of the head when the verdict is its
 * own (NULL otherwise); the head began at <t0> (ms). Returns -1 for
 * conn_read_head().
 */
static ssize_t
reject_head(struct conn *c, const struct http_request *req, int status, int64_t t0)
{
    if (req != NULL && req->why != NULL && req->why_header > 0)
        log_info("%s: rejected request head: %d: %s in header %u", c->ip, status, req->why,
                 req->why_header);
    else if (req != NULL && req->why != NULL)
        log_info("%s: rejected request head: %d: %s", c->ip, status, req->why);
    else
        log_info("%s: rejected request head: %d %s", c->ip, status, http_reason(status));
    conn_refuse(c, status, t0 * 1000);
    c->may_send = true; /* the rest of the head, or its body, may be on its way */
    return -1;
}

/* Answers a head that did not come whole in time (408); logs whether it was the rate. */
static ssize_t
head_too_slow(struct conn *c, int64_t t0, bool by_rate)
{
    if (by_rate) {
        atomic_fetch_add_explicit(&c->shm->slow_rejects, 1, memory_order_relaxed);
        log_info("%s: request head too slow: %zu bytes in %lld ms (client_header_min_rate "
                 "%u bytes/s)",
                 c->ip, c->len, (long long)(clock_ms() - t0), c->cfg->client_header_min_rate);
    } else {
        log_info("%s: request head timed out", c->ip);
    }
    conn_refuse(c, 408, t0 * 1000);
    c->no_linger = true;
    return -1;
}

/*
 * underscores_in_headers = reject: true when a field name of <req> has a
 * '_', which is then named in <req>'s why / why_header for reject_head().
 */
static bool
underscore_refused(const struct config *cfg, struct http_request *req)
{
    if (cfg->underscores_in_headers != CFG_US_REJECT)
        return false;
    for (size_t i = 0; i < req->nheaders; i++) {
        if (rewrite_has_underscore(req->headers[i].name)) {
            req->why = "underscore in field name (underscores_in_headers = reject)";
            req->why_header = (unsigned)i + 1;
            return true;
        }
    }
    return false;
}

/*
 * Answers a head given up for a client waiting for a worker (408), after
 * <since> (ms) of waiting for it; see conn_head_wait.
 */
static ssize_t
head_given_up(struct conn *c, int64_t t0, int64_t since)
{
    atomic_fetch_add_explicit(&c->shm->slow_rejects, 1, memory_order_relaxed);
    log_info("%s: request head given up for a waiting client: %zu bytes in %lld ms, no worker "
             "idle",
             c->ip, c->len, (long long)(clock_ms() - since));
    conn_refuse(c, 408, t0 * 1000);
    c->no_linger = true;
    return -1;
}

ssize_t
conn_read_head(struct conn *c, struct http_request *req)
{
    const struct config *cfg = c->cfg;
    int64_t t0 = clock_ms(), since = t0;
    bool by_rate = false;

    /* Pipelined bytes stay; move them to the front so a whole head fits. */
    if (c->start > 0) {
        memmove(c->buf, c->buf + c->start, c->len - c->start);
        c->len -= c->start;
        c->start = 0;
    }
    for (;;) {
        if (c->len > 0) {
            int status = 400;
            int r = http_parse_request(c->buf, c->len, cfg->max_header_size, req, &status);
            if (r > 0 && underscore_refused(cfg, req))
                return reject_head(c, req, 400, t0);
            if (r > 0) {
                c->start = (size_t)r;
                c->requests++;
                return r;
            }
            if (r == HTTP_INVALID)
                return reject_head(c, req, status, t0);
        }
        if (c->len >= c->read_cap) /* cannot happen: read_cap > max_header_size */
            return reject_head(c, NULL, 431, t0);
        int64_t deadline = head_deadline(cfg, t0, c->len, &by_rate);
        ssize_t n = sock_read(c, c->buf + c->len, c->read_cap - c->len);
        while (n == -1 && errno == EAGAIN) {
            int w = c->head_wait != NULL ? c->head_wait(c->head_wait_arg, c, deadline, since)
                                         : net_wait(c->fd, POLLIN, deadline);
            if (w == 1)
                return head_given_up(c, t0, since);
            if (w == -1) {
                if (errno == ETIMEDOUT && c->len > 0)
                    return head_too_slow(c, t0, by_rate);
                return 0;
            }
            n = sock_read(c, c->buf + c->len, c->read_cap - c->len);
        }
        if (n <= 0)
            return 0; /* EOF or reset: close quietly */
        if (c->len == 0)
            t0 = clock_ms(); /* the head's clock starts at its first byte */
        c->len += (size_t)n;
    }
}

/* ---- TLS: the handshake ------------------------------------------------------------------ */

/* Plain HTTP on a TLS port: a 400 in plain text (what came is logged), then the caller closes. */
static int
plain_on_tls(struct conn *c)
{
    ssize_t n = net_try_read(c->fd, c->buf, c->read_cap);

    c->start = 0;
    c->len = n > 0 ? (size_t)n : 0;
    tls_count_failure(TLS_FAIL_PLAIN_HTTP);
    log_info("%s: plain HTTP on a TLS port: 400", c->ip);
    conn_refuse(c, 400, clock_us());
    return -1;
}

/* The handshake timed out (or fell below the minimum rate): counted and logged. */
static int
handshake_too_slow(struct conn *c, int64_t t0, bool by_rate)
{
    tls_count_failure(TLS_FAIL_TIMEOUT);
    if (by_rate) {
        atomic_fetch_add_explicit(&c->shm->slow_rejects, 1, memory_order_relaxed);
        log_info("%s: TLS handshake too slow: %lld ms (client_header_min_rate %u bytes/s)", c->ip,
                 (long long)(clock_ms() - t0), c->cfg->client_header_min_rate);
    } else {
        log_info("%s: TLS handshake timed out after %lld ms", c->ip, (long long)(clock_ms() - t0));
    }
    c->tls_dead = true;
    return -1;
}

/*
 * Waits for what the handshake needs (<ev>) by <deadline>. A read waits as
 * for a head (the worker's conn_head_wait, from <t0>): a stalled handshake
 * is a slow client, given up under pressure like a slow head. Returns 0,
 * -1 with errno (ETIMEDOUT at <deadline>), or 1 when given up.
 */
static int
handshake_wait(struct conn *c, short ev, int64_t deadline, int64_t t0)
{
    if (ev == POLLIN && c->head_wait != NULL)
        return c->head_wait(c->head_wait_arg, c, deadline, t0);
    return net_wait(c->fd, ev, deadline);
}

/* A handshake given up for a client waiting for a worker: counted as slow, closed. */
static int
handshake_given_up(struct conn *c, int64_t t0)
{
    tls_count_failure(TLS_FAIL_TIMEOUT);
    atomic_fetch_add_explicit(&c->shm->slow_rejects, 1, memory_order_relaxed);
    log_info("%s: TLS handshake given up for a waiting client after %lld ms, no worker idle",
             c->ip, (long long)(clock_ms() - t0));
    c->tls_dead = true;
    return -1;
}

/*
 * When the handshake began at <t0> (ms) and <n> bytes of it came: the
 * time the next must come by. handshake_timeout for the whole; after a
 * first second, client_header_min_rate as for a head (*by_rate tells).
 */
static int64_t
handshake_deadline(const struct config *cfg, int64_t t0, uint64_t n, bool *by_rate)
{
    int64_t d = t0 + cfg->tls_handshake_timeout_ms;

    *by_rate = false;
    if (cfg->client_header_min_rate > 0) {
        int64_t r = t0 + 1000 + (int64_t)(n * 1000 / cfg->client_header_min_rate);
        if (r < d) {
            d = r;
            *by_rate = true;
        }
    }
    return d;
}

int
conn_start_tls(struct conn *c, SSL_CTX *ctx)
{
    int64_t t0 = clock_ms();
    bool by_rate = false;
    unsigned char first;
    char why[256];

    for (;;) {
        ssize_t n = recv(c->fd, &first, 1, MSG_PEEK);
        if (n == 1)
            break;
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            return -1; /* gone before a byte: nothing to count */
        if (n == -1 && errno == EINTR)
            continue;
        int w = handshake_wait(c, POLLIN, handshake_deadline(c->cfg, t0, 0, &by_rate), t0);
        if (w == 1)
            return handshake_given_up(c, t0);
        if (w == -1)
            return errno == ETIMEDOUT ? handshake_too_slow(c, t0, by_rate) : -1;
    }
    if (first != 0x16) /* a TLS handshake record */
        return plain_on_tls(c);
    c->ssl = SSL_new(ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        log_error("%s: TLS: cannot make a connection: out of memory", c->ip);
        ERR_clear_error();
        c->tls_dead = true;
        return -1;
    }
    SSL_set_accept_state(c->ssl);
    SSL_set_app_data(c->ssl, &c->tls_state);
    SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    for (;;) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        if (r == 1)
            break;
        int e = SSL_get_error(c->ssl, r);
        short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
        if (ev == 0) {
            enum tls_fail f = tls_classify_failure(c->ssl, &c->tls_state, why, sizeof(why));
            tls_count_failure(f);
            log_info("%s: TLS handshake failed (%s): %s", c->ip, tls_fail_name(f), why);
            c->tls_dead = true;
            return -1;
        }
        uint64_t got = BIO_number_read(SSL_get_rbio(c->ssl));
        int w = handshake_wait(c, ev, handshake_deadline(c->cfg, t0, got, &by_rate), t0);
        if (w == 1)
            return handshake_given_up(c, t0);
        if (w == -1)
            return errno == ETIMEDOUT ? handshake_too_slow(c, t0, by_rate) : -1;
    }
    tls_count_handshake(c->ssl);
    return 0;
}
