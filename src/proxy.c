/*
 * proxy: one request end to end. See proxy.h for the contract and
 * ../shared/design.md for the path a request takes.
 */
#include "proxy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "net.h"

/* ---- head rewriting (pure) ---------------------------------------------------------------- */

struct out {
    char *p;
    size_t len, cap;
    bool overflow;
};

static void
out_put(struct out *o, const void *s, size_t n)
{
    if (o->overflow || n > o->cap - o->len) {
        o->overflow = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void
out_str(struct out *o, const char *s)
{
    out_put(o, s, strlen(s));
}

static void
out_slice(struct out *o, struct http_slice s)
{
    out_put(o, s.p, s.len);
}

static void
out_u64(struct out *o, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
    out_put(o, tmp, (size_t)n);
}

static void
out_field(struct out *o, struct http_slice name, struct http_slice value)
{
    out_slice(o, name);
    out_put(o, ": ", 2);
    out_slice(o, value);
    out_put(o, "\r\n", 2);
}

/* Fields that describe one connection, never forwarded (RFC 9110 7.6.1). */
static bool
is_hop_by_hop(struct http_slice name)
{
    static const char *const hop[] = {"connection", "keep-alive", "proxy-connection", "te",
                                      "trailer",    "upgrade",    "transfer-encoding"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (buf_ieq(name.p, name.len, hop[i]))
            return true;
    return false;
}

/* True when a Connection field among <h> names <name>: it is hop-by-hop too. */
static bool
named_by_connection(const struct http_header *h, size_t n, struct http_slice name)
{
    for (size_t i = 0; i < n; i++)
        if (buf_ieq(h[i].name.p, h[i].name.len, "connection") &&
            http_list_has(h[i].value, name.p, name.len))
            return true;
    return false;
}

ssize_t
proxy_rewrite_request(const struct http_request *req, const struct proxy_req_rewrite *rw,
                      char *buf, size_t cap)
{
    struct out o = {.p = buf, .cap = cap};
    bool xff_done = false;

    out_slice(&o, req->method);
    out_put(&o, " ", 1);
    out_slice(&o, rw->target);
    out_str(&o, " HTTP/1.1\r\nHost: ");
    if (rw->preserve_host && rw->host.len > 0)
        out_slice(&o, rw->host);
    else
        out_str(&o, rw->upstream_host);
    out_put(&o, "\r\n", 2);

    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];
        if (is_hop_by_hop(h->name) || buf_ieq(h->name.p, h->name.len, "host") ||
            buf_ieq(h->name.p, h->name.len, "content-length") ||
            buf_ieq(h->name.p, h->name.len, "expect") ||
            buf_ieq(h->name.p, h->name.len, "x-forwarded-proto") ||
            buf_ieq(h->name.p, h->name.len, "x-forwarded-host") ||
            named_by_connection(req->headers, req->nheaders, h->name))
            continue;
        if (buf_ieq(h->name.p, h->name.len, "x-forwarded-for")) {
            /* Several X-Forwarded-For lines are one list: join them, then append us. */
            if (xff_done)
                continue;
            xff_done = true;
            out_str(&o, "X-Forwarded-For: ");
            for (size_t j = i; j < req->nheaders; j++) {
                const struct http_header *x = &req->headers[j];
                if (!buf_ieq(x->name.p, x->name.len, "x-forwarded-for") || x->value.len == 0)
                    continue;
                out_slice(&o, x->value);
                out_put(&o, ", ", 2);
            }
            out_str(&o, rw->client_ip);
            out_put(&o, "\r\n", 2);
            continue;
        }
        out_field(&o, h->name, h->value);
    }
    if (!xff_done) {
        out_str(&o, "X-Forwarded-For: ");
        out_str(&o, rw->client_ip);
        out_put(&o, "\r\n", 2);
    }
    out_str(&o, "X-Forwarded-Proto: ");
    out_str(&o, rw->proto);
    out_put(&o, "\r\n", 2);
    if (rw->host.len > 0) {
        out_str(&o, "X-Forwarded-Host: ");
        out_slice(&o, rw->host);
        out_put(&o, "\r\n", 2);
    }
    if (rw->framing == HTTP_BODY_LENGTH) {
        out_str(&o, "Content-Length: ");
        out_u64(&o, rw->content_length);
        out_put(&o, "\r\n", 2);
    } else if (rw->framing == HTTP_BODY_CHUNKED) {
        out_str(&o, "Transfer-Encoding: chunked\r\n");
    }
    if (rw->upstream_close)
        out_str(&o, "Connection: close\r\n");
    out_put(&o, "\r\n", 2);
    return o.overflow ? -1 : (ssize_t)o.len;
}

ssize_t
proxy_rewrite_response(const struct http_response *resp, enum proxy_out_framing framing,
                       bool keep_alive, int client_minor, char *buf, size_t cap)
{
    struct out o = {.p = buf, .cap = cap};
    char code[8];

    snprintf(code, sizeof(code), "%d", resp->status);
    out_str(&o, "HTTP/1.1 ");
    out_str(&o, code);
    out_put(&o, " ", 1);
    if (resp->reason.len > 0)
        out_slice(&o, resp->reason);
    else
        out_str(&o, http_reason(resp->status));
    out_put(&o, "\r\n", 2);

    for (size_t i = 0; i < resp->nheaders; i++) {
        const struct http_header *h = &resp->headers[i];
        if (is_hop_by_hop(h->name) || named_by_connection(resp->headers, resp->nheaders, h->name))
            continue;
        /* When we re-frame the body, its old length no longer applies. */
        if (framing != PROXY_OUT_AS_IS && buf_ieq(h->name.p, h->name.len, "content-length"))
            continue;
        out_field(&o, h->name, h->value);
    }
    if (framing == PROXY_OUT_CHUNKED)
        out_str(&o, "Transfer-Encoding: chunked\r\n");
    if (!keep_alive)
        out_str(&o, "Connection: close\r\n");
    else if (client_minor == 0)
        out_str(&o, "Connection: keep-alive\r\n");
    out_put(&o, "\r\n", 2);
    return o.overflow ? -1 : (ssize_t)o.len;
}

/* ---- error responses -------------------------------------------------------------------- */

void
proxy_send_error(const struct config *cfg, struct client *c, int status, bool close)
{
    char body[256], head[256];
    const char *reason = http_reason(status);
    int blen = snprintf(body, sizeof(body),
                        "<html><head><title>%d %s</title></head><body><h1>%d %s</h1>"
                        "<hr>miniproxyd</body></html>\n",
                        status, reason, status, reason);
    int hlen = snprintf(head, sizeof(head),
                        "HTTP/1.1 %d %s\r\nContent-Type: text/html\r\nContent-Length: %d\r\n%s\r\n",
                        status, reason, blen, close ? "Connection: close\r\n" : "");
    struct iovec iov[2] = {{head, (size_t)hlen}, {body, (size_t)blen}};
    if (net_writev_all(c->fd, iov, 2, cfg->send_timeout_ms) == -1)
        log_debug("%s: sending %d: %s", c->ip, status, strerror(errno));
}

/* ---- one request ------------------------------------------------------------------------ */

/* Everything about the request in flight, for the phases below and the access log. */
struct exchange {
    struct proxy *px;
    struct client *c;
    const struct http_request *req;
    const struct cfg_group *grp;
    size_t g;
    int s;          /* server index, -1 before the pick */
    int ufd;        /* upstream connection, -1 when none */
    bool reused;    /* ufd came from the pool */
    int status;     /* status sent to the client, 0 before */
    int ustatus;    /* upstream's status, 0 if none */
    uint64_t sent;  /* body bytes sent to the client */
    int64_t t0_us, u0_us, u1_us;
    bool client_keep;   /* keep the client connection after this response */
    bool upstream_keep; /* give ufd back to the pool after this response */
    bool body_done;     /* the whole request body was read from the client */
    struct http_slice target, host;
    size_t body_off;    /* where the body starts in c->buf */
    /*
     * What outlives the head: reading the body reuses c->buf, so the slices
     * in <req> are only valid until then.
     */
    bool is_head, idempotent;
    int minor;
    char reqline[256]; /* "METHOD target", truncated, for logs */
    const char *pend; /* response head not yet written (see to_client) */
    size_t pend_len;
    /*
     * Chunked request bodies: the part that came with the head is decoded
     * (in place, at body_off) before any upstream is contacted, so a bad or
     * oversized body in it is refused without forwarding anything.
     */
    struct http_chunked dec;
    size_t pre_len;  /* decoded bytes at c->buf + body_off */
    size_t pre_end;  /* end of the raw bytes they came from */
    bool pre_done;   /* the whole chunked body was in that part */
};

static bool
is_idempotent(struct http_slice m)
{
    static const char *const idem[] = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"};
    for (size_t i = 0; i < sizeof(idem) / sizeof(idem[0]); i++)
        if (m.len == strlen(idem[i]) && memcmp(m.p, idem[i], m.len) == 0)
            return true;
    return false;
}

/*
 * Works out the origin-form target and the client's host. Absolute-form
 * ("http://h/p") is accepted as RFC 9112 3.2.2 asks of servers: its
 * authority replaces Host. Returns 0 or the status to answer with.
 */
static int
resolve_target(struct exchange *x)
{
    const struct http_request *req = x->req;
    struct http_slice t = req->target;

    x->target = t;
    x->host = req->host;
    if (t.len > 0 && t.p[0] == '/')
        return 0;
    if (t.len == 1 && t.p[0] == '*')
        return buf_ieq(req->method.p, req->method.len, "OPTIONS") ? 0 : 400;
    if (req->method.len == 7 && memcmp(req->method.p, "CONNECT", 7) == 0)
        return 405;
    size_t skip = 0;
    if (t.len > 7 && buf_ieq(t.p, 7, "http://"))
        skip = 7;
    else if (t.len > 8 && buf_ieq(t.p, 8, "https://"))
        skip = 8;
    else
        return 400;
    const char *auth = t.p + skip, *end = t.p + t.len;
    const char *slash = memchr(auth, '/', (size_t)(end - auth));
    const char *q = memchr(auth, '?', (size_t)(end - auth));
    if (q != NULL && (slash == NULL || q < slash))
        slash = q;
    const char *auth_end = slash != NULL ? slash : end;
    if (auth_end == auth || memchr(auth, '@', (size_t)(auth_end - auth)) != NULL)
        return 400; /* no host, or userinfo (RFC 9110 4.2.4: must not be sent) */
    x->host = (struct http_slice){auth, (size_t)(auth_end - auth)};
    if (slash == NULL)
        x->target = (struct http_slice){"/", 1};
    else if (*slash == '?') {
        /* "http://h?q" has an empty path: it stands for "/?q", which we cannot
         * point into the client's buffer; rare enough to refuse. */
        return 400;
    } else
        x->target = (struct http_slice){slash, (size_t)(end - slash)};
    return 0;
}

static void
access_log(struct exchange *x)
{
    if (!log_access_enabled())
        return;
    char line[1024], ut[32];
    int64_t now = buf_now_us();
    if (x->u0_us != 0)
        snprintf(ut, sizeof(ut), "%.3f",
                 (double)((x->u1_us ? x->u1_us : now) - x->u0_us) / 1e6);
    else
        snprintf(ut, sizeof(ut), "-");
    int n = snprintf(line, sizeof(line),
                     "%s - - [%s] \"%s HTTP/1.%d\" %d %" PRIu64
                     " upstream=%s ustatus=%d rt=%.3f urt=%s\n",
                     x->c->ip, log_time_local(), x->reqline, x->minor, x->status, x->sent,
                     x->s >= 0 ? x->grp->servers[x->s].addr.text : "-", x->ustatus,
                     (double)(now - x->t0_us) / 1e6, ut);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line)) {
        n = sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    log_access(line, (size_t)n);
}

/* Answers the client with an error status, unless a response was already started. */
static int
fail(struct exchange *x, int status)
{
    if (x->status == 0) {
        /* The rest of the request body is unread: the connection can't continue. */
        bool close = !x->body_done || !x->client_keep;
        x->status = status;
        proxy_send_error(x->px->cfg, x->c, status, close);
        if (close)
            x->client_keep = false;
    } else {
        x->client_keep = false;
    }
    return -1;
}

static void
release_upstream(struct exchange *x)
{
    if (x->ufd == -1)
        return;
    struct proxy *px = x->px;
    atomic_fetch_sub_explicit(&px->shm->servers[x->g][x->s].active, 1, memory_order_relaxed);
    if (x->upstream_keep)
        upool_put(&px->pool, x->g, (size_t)x->s, x->ufd);
    else
        close(x->ufd);
    x->ufd = -1;
}

static void
count_failure(struct exchange *x, const char *what)
{
    struct proxy *px = x->px;
    atomic_fetch_add_explicit(&px->shm->servers[x->g][x->s].failures, 1, memory_order_relaxed);
    log_warn("%s %s: %s (client %s, \"%s\")", what, x->grp->servers[x->s].addr.text,
             strerror(errno), x->c->ip, x->reqline);
}

/*
 * Takes a pooled connection to a picked server or connects a new one.
 * <fresh> skips the pool (retry after a stale one). Returns 0, or the
 * status to answer with.
 */
static int
open_upstream(struct exchange *x, bool fresh)
{
    struct proxy *px = x->px;

    if (x->s < 0) {
        x->s = balance_pick(&px->bal, px->shm, x->g, NULL);
        if (x->s < 0) {
            log_warn("no server available in upstream %s", x->grp->name);
            return 503;
        }
    }
    x->ufd = fresh ? -1 : upool_get(&px->pool, x->g, (size_t)x->s);
    x->reused = x->ufd != -1;
    if (x->u0_us == 0)
        x->u0_us = buf_now_us();
    if (x->ufd == -1) {
        const struct cfg_server *srv = &x->grp->servers[x->s];
        x->ufd = net_connect(&srv->addr, buf_now_ms() + x->grp->connect_timeout_ms);
        if (x->ufd == -1) {
            int timed_out = errno == ETIMEDOUT;
            count_failure(x, "connect to");
            return timed_out ? 504 : 502;
        }
    }
    atomic_fetch_add_explicit(&px->shm->servers[x->g][x->s].active, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&px->shm->servers[x->g][x->s].requests, 1, memory_order_relaxed);
    return 0;
}

/*
 * Fills <iov> with one chunk "<hex>\r\n<data>\r\n" (and the last chunk
 * when <last>); <hex> is scratch space. Returns the iovec count (0..3).
 */
static int
chunk_iov(struct iovec *iov, char hex[24], const char *data, size_t len, bool last)
{
    static const char crlf_last[] = "\r\n0\r\n\r\n";
    int cnt = 0;

    if (len > 0) {
        int n = snprintf(hex, 24, "%zx\r\n", len);
        iov[cnt++] = (struct iovec){hex, (size_t)n};
        iov[cnt++] = (struct iovec){(void *)data, len};
        iov[cnt++] = (struct iovec){(void *)crlf_last, last ? 7 : 2};
    } else if (last) {
        iov[cnt++] = (struct iovec){(void *)(crlf_last + 2), 5};
    }
    return cnt;
}

/* Sends one chunk to the upstream. */
static int
write_chunk(int fd, const char *data, size_t len, bool last, int64_t timeout_ms)
{
    struct iovec iov[3];
    char hex[24];
    int cnt = chunk_iov(iov, hex, data, len, last);
    return cnt == 0 ? 0 : net_writev_all(fd, iov, cnt, timeout_ms);
}

/*
 * Sends response body bytes to the client, as a chunk when <chunked>. The
 * response head waits in x->pend until the first call, so a small response
 * leaves in one write (one syscall, one packet).
 */
static int
to_client(struct exchange *x, const char *data, size_t len, bool chunked, bool last)
{
    struct iovec iov[4];
    char hex[24];
    int cnt = 0;

    if (x->pend_len > 0) {
        iov[cnt++] = (struct iovec){(void *)x->pend, x->pend_len};
        x->pend_len = 0;
    }
    if (chunked)
        cnt += chunk_iov(iov + cnt, hex, data, len, last);
    else if (len > 0)
        iov[cnt++] = (struct iovec){(void *)data, len};
    if (cnt > 0 && net_writev_all(x->c->fd, iov, cnt, x->px->cfg->send_timeout_ms) == -1)
        return -1;
    x->sent += len;
    return 0;
}

enum relay_result {
    RELAY_OK,
    RELAY_CLIENT_GONE,    /* client closed or reset: nobody to answer */
    RELAY_CLIENT_TIMEOUT, /* 408 */
    RELAY_TOO_LARGE,      /* 413 */
    RELAY_BAD_BODY,       /* 400: invalid chunked encoding */
    RELAY_UPSTREAM_WRITE, /* the upstream stopped reading: look for its early answer */
};

/* Reads more of the request body into c->buf (reset to empty first). */
static ssize_t
read_body(struct exchange *x, size_t max)
{
    struct client *c = x->c;
    c->start = c->len = 0;
    ssize_t n = net_read(c->fd, c->buf, max < c->cap ? max : c->cap,
                         buf_now_ms() + x->px->cfg->client_body_timeout_ms);
    if (n > 0)
        c->len = (size_t)n;
    return n;
}

/*
 * Streams the request body to the upstream, re-framed as announced in the
 * head: Content-Length bodies as they are, chunked ones decoded and
 * re-encoded (extensions and trailers dropped). The body bytes that came
 * with the head were already sent with it (Content-Length case).
 */
static enum relay_result
relay_request_body(struct exchange *x, uint64_t already_sent)
{
    struct proxy *px = x->px;
    struct client *c = x->c;
    const struct http_request *req = x->req;
    int64_t wto = x->grp->read_timeout_ms;
    uint64_t limit = px->cfg->client_max_body_size;

    if (req->info.framing == HTTP_BODY_LENGTH) {
        uint64_t left = req->info.content_length - already_sent;
        while (left > 0) {
            ssize_t n = read_body(x, left);
            if (n <= 0)
                return n == -1 && errno == ETIMEDOUT ? RELAY_CLIENT_TIMEOUT : RELAY_CLIENT_GONE;
            if (net_write_all(x->ufd, c->buf, (size_t)n, wto) == -1)
                return RELAY_UPSTREAM_WRITE;
            left -= (uint64_t)n;
            c->start = c->len;
        }
        x->body_done = true;
        return RELAY_OK;
    }
    if (req->info.framing != HTTP_BODY_CHUNKED) {
        x->body_done = true;
        return RELAY_OK;
    }

    /* The part that came with the head was decoded and sent already. */
    for (;;) {
        ssize_t n = read_body(x, c->cap);
        if (n <= 0)
            return n == -1 && errno == ETIMEDOUT ? RELAY_CLIENT_TIMEOUT : RELAY_CLIENT_GONE;
        size_t out_len = 0, used = 0;
        int r = http_chunked_decode(&x->dec, c->buf, c->len, &out_len, &used);
        if (r == -1)
            return RELAY_BAD_BODY;
        if (limit != 0 && x->dec.total > limit)
            return RELAY_TOO_LARGE;
        if (write_chunk(x->ufd, c->buf, out_len, r == 1, wto) == -1)
            return RELAY_UPSTREAM_WRITE;
        if (r == 1) {
            c->start = used; /* pipelined bytes after the body stay */
            x->body_done = true;
            return RELAY_OK;
        }
    }
}

/* Outcome of reading the response head. */
enum head_result { HEAD_OK, HEAD_EMPTY, HEAD_FAILED };

/*
 * Reads the upstream's response head into px->ubuf, skipping interim 1xx
 * responses. HEAD_EMPTY: the connection closed or reset before any byte
 * (a stale pooled connection looks like this). On HEAD_FAILED <*status>
 * is the status to answer with.
 */
static enum head_result
read_response_head(struct exchange *x, struct http_response *resp, size_t *head_len,
                   size_t *ulen, int *status)
{
    struct proxy *px = x->px;
    bool head = x->is_head;
    size_t len = 0;
    bool any = false;

    for (;;) {
        if (len > 0) {
            int st = 502;
            int r = http_parse_response(px->ubuf, len, PROXY_RESP_HEAD_MAX, head, resp, &st);
            if (r > 0 && resp->status >= 100 && resp->status < 200) {
                if (resp->status == 101) {
                    log_warn("upstream %s answered 101 to a request without Upgrade",
                             x->grp->servers[x->s].addr.text);
                    *status = 502;
                    return HEAD_FAILED;
                }
                memmove(px->ubuf, px->ubuf + r, len - (size_t)r);
                len -= (size_t)r;
                continue;
            }
            if (r > 0) {
                *head_len = (size_t)r;
                *ulen = len;
                return HEAD_OK;
            }
            if (r == HTTP_INVALID) {
                errno = EPROTO;
                count_failure(x, "invalid response head from");
                *status = 502;
                return HEAD_FAILED;
            }
        }
        /* The answer to a request just sent is never there yet: wait first. */
        int64_t deadline = buf_now_ms() + x->grp->read_timeout_ms;
        ssize_t n = len == 0 ? net_read_wait(x->ufd, px->ubuf, px->ucap, deadline)
                             : net_read(x->ufd, px->ubuf + len, px->ucap - len, deadline);
        if (n > 0) {
            len += (size_t)n;
            any = true;
            continue;
        }
        if (n == 0)
            errno = ECONNRESET;
        if (!any && errno != ETIMEDOUT)
            return HEAD_EMPTY;
        int timed_out = errno == ETIMEDOUT;
        count_failure(x, timed_out ? "reading response head from" : "response head from");
        *status = timed_out ? 504 : 502;
        return HEAD_FAILED;
    }
}

/*
 * Streams the response body from the upstream to the client. <have> bytes
 * of it are already in px->ubuf at <off>. Returns 0 when the body was
 * relayed completely, -1 otherwise (both connections are then closed).
 */
static int
relay_response_body(struct exchange *x, const struct http_response *resp,
                     enum proxy_out_framing outf, size_t off, size_t have)
{
    struct proxy *px = x->px;
    int64_t rto = x->grp->read_timeout_ms;
    bool chunked = outf == PROXY_OUT_CHUNKED;
    char *b = px->ubuf;

    if (resp->info.framing == HTTP_BODY_NONE)
        return 0;

    if (resp->info.framing == HTTP_BODY_LENGTH) {
        uint64_t left = resp->info.content_length;
        if (have > left) {
            have = (size_t)left; /* extra bytes after the body: the upstream lies */
            x->upstream_keep = false;
        }
        for (;;) {
            if (have > 0) {
                if (to_client(x, b + off, have, false, false) == -1)
                    return -1;
                left -= have;
            }
            if (left == 0)
                return 0;
            size_t want = left < px->ucap ? (size_t)left : px->ucap;
            ssize_t n = net_read(x->ufd, b, want, buf_now_ms() + rto);
            if (n <= 0) {
                if (n == 0)
                    errno = ECONNRESET;
                count_failure(x, "response body from");
                return -1;
            }
            off = 0;
            have = (size_t)n;
        }
    }

    if (resp->info.framing == HTTP_BODY_CHUNKED) {
        struct http_chunked dec;
        http_chunked_init(&dec);
        for (;;) {
            size_t out_len = 0, used = 0;
            int r = http_chunked_decode(&dec, b + off, have, &out_len, &used);
            if (r == -1) {
                errno = EPROTO;
                count_failure(x, "invalid chunked body from");
                return -1;
            }
            if (to_client(x, b + off, out_len, chunked, r == 1) == -1)
                return -1;
            if (r == 1) {
                if (used < have)
                    x->upstream_keep = false;
                return 0;
            }
            ssize_t n = net_read(x->ufd, b, px->ucap, buf_now_ms() + rto);
            if (n <= 0) {
                if (n == 0)
                    errno = ECONNRESET;
                count_failure(x, "chunked body from");
                return -1;
            }
            off = 0;
            have = (size_t)n;
        }
    }

    /* HTTP_BODY_CLOSE: everything until the upstream closes. */
    for (;;) {
        if (have > 0 && to_client(x, b + off, have, chunked, false) == -1)
            return -1;
        ssize_t n = net_read(x->ufd, b, px->ucap, buf_now_ms() + rto);
        if (n == 0)
            return to_client(x, NULL, 0, chunked, chunked);
        if (n == -1) {
            count_failure(x, "response body from");
            return -1;
        }
        off = 0;
        have = (size_t)n;
    }
}

/*
 * Sends the request head (and the Content-Length body bytes that came
 * with it) on x->ufd. Returns 0, or -1 with errno when the write failed.
 */
static int
send_request_head(struct exchange *x, size_t *body_sent)
{
    struct proxy *px = x->px;
    struct client *c = x->c;
    const struct http_request *req = x->req;
    const struct cfg_server *srv = &x->grp->servers[x->s];
    struct proxy_req_rewrite rw = {
        .target = x->target,
        .host = x->host,
        .upstream_host = srv->addr.text,
        .preserve_host = x->grp->preserve_host,
        .client_ip = c->ip,
        .proto = "http",
        .framing = req->info.framing,
        .content_length = req->info.content_length,
        .upstream_close = x->grp->keepalive == 0,
    };
    ssize_t hlen = proxy_rewrite_request(req, &rw, px->obuf, px->ocap);
    if (hlen < 0) {
        errno = EMSGSIZE;
        return -1;
    }
    size_t inbuf = c->len - x->body_off;
    char hex[24];
    struct iovec iov[4] = {{px->obuf, (size_t)hlen}};
    int cnt = 1;
    *body_sent = 0;
    if (req->info.framing == HTTP_BODY_LENGTH) {
        size_t body = inbuf < req->info.content_length ? inbuf : (size_t)req->info.content_length;
        iov[cnt++] = (struct iovec){c->buf + x->body_off, body};
        *body_sent = body;
    } else if (req->info.framing == HTTP_BODY_CHUNKED) {
        static const char crlf_last[] = "\r\n0\r\n\r\n";
        if (x->pre_len > 0) {
            int n = snprintf(hex, sizeof(hex), "%zx\r\n", x->pre_len);
            iov[cnt++] = (struct iovec){hex, (size_t)n};
            iov[cnt++] = (struct iovec){c->buf + x->body_off, x->pre_len};
            iov[cnt++] = (struct iovec){(void *)crlf_last, x->pre_done ? 7 : 2};
        } else if (x->pre_done) {
            iov[cnt++] = (struct iovec){(void *)(crlf_last + 2), 5};
        }
    }
    return net_writev_all(x->ufd, iov, cnt, x->grp->read_timeout_ms);
}

int
proxy_serve(struct proxy *px, struct client *c, const struct http_request *req, size_t head_len)
{
    const struct config *cfg = px->cfg;
    struct exchange x = {
        .px = px,
        .c = c,
        .req = req,
        .g = cfg->group,
        .grp = &cfg->groups[cfg->group],
        .s = -1,
        .ufd = -1,
        .t0_us = buf_now_us(),
        .body_off = c->start + head_len,
    };
    struct http_response resp;
    int st;

    x.is_head = req->method.len == 4 && memcmp(req->method.p, "HEAD", 4) == 0;
    x.idempotent = is_idempotent(req->method);
    x.minor = req->minor_version;
    snprintf(x.reqline, sizeof(x.reqline), "%.*s %.*s", (int)req->method.len, req->method.p,
             (int)(req->target.len > 200 ? 200 : req->target.len), req->target.p);
    x.client_keep = req->info.keep_alive && !*px->draining && cfg->keepalive_timeout_ms > 0 &&
                    c->requests < cfg->keepalive_requests;
    x.body_done = req->info.framing == HTTP_BODY_NONE;
    c->start = x.body_off; /* the head is used; the body (if any) follows */

    if ((st = resolve_target(&x)) != 0) {
        x.client_keep = false;
        fail(&x, st);
        goto done;
    }
    if (req->info.framing == HTTP_BODY_LENGTH && cfg->client_max_body_size != 0 &&
        req->info.content_length > cfg->client_max_body_size) {
        x.client_keep = false;
        fail(&x, 413);
        goto done;
    }
    if (req->info.framing == HTTP_BODY_CHUNKED) {
        size_t used = 0;
        http_chunked_init(&x.dec);
        int r = http_chunked_decode(&x.dec, c->buf + x.body_off, c->len - x.body_off, &x.pre_len,
                                    &used);
        st = r == -1 ? 400
             : cfg->client_max_body_size != 0 && x.dec.total > cfg->client_max_body_size ? 413
                                                                                          : 0;
        if (st != 0) {
            x.client_keep = false;
            fail(&x, st);
            goto done;
        }
        x.pre_done = r == 1;
        x.pre_end = x.body_off + used;
    }

    /*
     * Up to two attempts: the second only when a pooled connection turned out
     * closed by the upstream before it answered, on a fresh connection to the
     * same server, and only while the request can be sent again whole.
     */
    size_t ulen = 0, rhead = 0;
    for (int attempt = 0;; attempt++) {
        if ((st = open_upstream(&x, attempt > 0)) != 0) {
            fail(&x, st);
            goto done;
        }
        size_t body_sent = 0;
        if (send_request_head(&x, &body_sent) == -1) {
            if (errno == EMSGSIZE) {
                x.client_keep = false;
                fail(&x, 431);
                goto done;
            }
            if (x.reused && attempt == 0) {
                release_upstream(&x);
                continue;
            }
            count_failure(&x, "sending request to");
            fail(&x, 502);
            goto done;
        }
        bool replayable = req->info.framing == HTTP_BODY_NONE ||
                          (req->info.framing == HTTP_BODY_LENGTH &&
                           body_sent == req->info.content_length) ||
                          (req->info.framing == HTTP_BODY_CHUNKED && x.pre_done);
        if (req->expect_continue && !replayable && x.minor == 1) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            if (net_write_all(c->fd, cont, sizeof(cont) - 1, cfg->send_timeout_ms) == -1) {
                x.client_keep = false;
                goto done;
            }
        }
        if (body_sent > 0) {
            c->start = x.body_off + body_sent;
            x.body_done = body_sent == req->info.content_length;
        }
        if (req->info.framing == HTTP_BODY_CHUNKED) {
            c->start = x.pre_end;
            x.body_done = x.pre_done;
        }
        enum relay_result rr = RELAY_OK;
        if (!x.body_done)
            rr = relay_request_body(&x, body_sent);
        switch (rr) {
        case RELAY_OK:
        case RELAY_UPSTREAM_WRITE: /* it may have answered early: read on */
            break;
        case RELAY_CLIENT_GONE:
            x.status = 499; /* nginx's "client closed request", for the log only */
            x.client_keep = false;
            goto done;
        case RELAY_CLIENT_TIMEOUT:
            x.client_keep = false;
            fail(&x, 408);
            goto done;
        case RELAY_TOO_LARGE:
            x.client_keep = false;
            fail(&x, 413);
            goto done;
        case RELAY_BAD_BODY:
            x.client_keep = false;
            fail(&x, 400);
            goto done;
        }
        if (rr == RELAY_UPSTREAM_WRITE)
            x.client_keep = false;

        enum head_result hr = read_response_head(&x, &resp, &rhead, &ulen, &st);
        if (hr == HEAD_OK)
            break;
        if (hr == HEAD_EMPTY && x.reused && attempt == 0 && replayable &&
            x.idempotent) {
            log_debug("pooled connection to %s was closed; retrying on a fresh one",
                      x.grp->servers[x.s].addr.text);
            release_upstream(&x);
            continue;
        }
        if (hr == HEAD_EMPTY) {
            count_failure(&x, "no response from");
            st = 502;
        }
        fail(&x, st);
        goto done;
    }

    x.u1_us = buf_now_us();
    x.ustatus = resp.status;
    x.upstream_keep = resp.info.keep_alive && x.body_done && x.grp->keepalive > 0;

    enum proxy_out_framing outf = PROXY_OUT_AS_IS;
    if (resp.info.framing == HTTP_BODY_CHUNKED || resp.info.framing == HTTP_BODY_CLOSE) {
        /* HTTP/1.1 clients get chunks (and keep their connection); 1.0 ones a close. */
        if (x.minor == 1) {
            outf = PROXY_OUT_CHUNKED;
        } else {
            outf = PROXY_OUT_CLOSE;
            x.client_keep = false;
        }
    }
    ssize_t hlen = proxy_rewrite_response(&resp, outf, x.client_keep, x.minor,
                                          px->obuf, px->ocap);
    if (hlen < 0) {
        errno = EMSGSIZE;
        count_failure(&x, "response head too large from");
        fail(&x, 502);
        goto done;
    }
    x.status = resp.status;
    x.pend = px->obuf;
    x.pend_len = (size_t)hlen;
    if (relay_response_body(&x, &resp, outf, rhead, ulen - rhead) == -1 ||
        to_client(&x, NULL, 0, false, false) == -1) { /* flushes a head still pending */
        x.client_keep = false;
        x.upstream_keep = false;
    }

done:
    if (x.s >= 0 && x.status != 0 && x.ufd == -1 && x.u1_us == 0)
        x.u1_us = buf_now_us();
    if (!x.body_done)
        x.client_keep = false;
    release_upstream(&x);
    atomic_fetch_add_explicit(&px->me->requests, 1, memory_order_relaxed);
    access_log(&x);
    return x.client_keep ? 0 : -1;
}

/* ---- set-up ----------------------------------------------------------------------------- */

int
proxy_init(struct proxy *px, const struct config *cfg, struct shm *shm, int slot,
           volatile sig_atomic_t *draining)
{
    memset(px, 0, sizeof(*px));
    px->cfg = cfg;
    px->shm = shm;
    px->me = &shm->workers[slot];
    px->draining = draining;
    px->ucap = PROXY_IO_BUF;
    px->ocap = 2 * cfg->max_header_size + PROXY_RESP_HEAD_MAX + 1024;
    px->ubuf = malloc(px->ucap);
    px->obuf = malloc(px->ocap);
    if (px->ubuf == NULL || px->obuf == NULL)
        goto fail;
    if (balance_init(&px->bal, cfg) == -1)
        goto fail;
    if (upool_init(&px->pool, cfg) == -1) {
        balance_free(&px->bal);
        goto fail;
    }
    return 0;
fail:
    free(px->ubuf);
    free(px->obuf);
    return -1;
}

void
proxy_free(struct proxy *px)
{
    upool_free(&px->pool);
    balance_free(&px->bal);
    free(px->ubuf);
    free(px->obuf);
}
