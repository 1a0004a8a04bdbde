/*
 * proxy: one request end to end. See proxy.h for the contract and
 * ../shared/design.md for the path a request takes.
 */
#include "proxy.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "net.h"

/* ---- head rewriting (pure) ---------------------------------------------------------------- */

static void
out_slice(struct buf_out *o, struct http_slice s)
{
    buf_out_put(o, s.p, s.len);
}

static void
out_u64(struct buf_out *o, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
    buf_out_put(o, tmp, (size_t)n);
}

static void
out_field(struct buf_out *o, struct http_slice name, struct http_slice value)
{
    out_slice(o, name);
    buf_out_put(o, ": ", 2);
    out_slice(o, value);
    buf_out_put(o, "\r\n", 2);
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
    struct buf_out o = {.buf = buf, .cap = cap};
    bool xff_done = false;

    out_slice(&o, req->method);
    buf_out_put(&o, " ", 1);
    out_slice(&o, rw->target);
    buf_out_str(&o, " HTTP/1.1\r\nHost: ");
    if (rw->preserve_host && rw->host.len > 0)
        out_slice(&o, rw->host);
    else
        buf_out_str(&o, rw->upstream_host);
    buf_out_put(&o, "\r\n", 2);

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
            buf_out_str(&o, "X-Forwarded-For: ");
            for (size_t j = i; j < req->nheaders; j++) {
                const struct http_header *x = &req->headers[j];
                if (!buf_ieq(x->name.p, x->name.len, "x-forwarded-for") || x->value.len == 0)
                    continue;
                out_slice(&o, x->value);
                buf_out_put(&o, ", ", 2);
            }
            buf_out_str(&o, rw->client_ip);
            buf_out_put(&o, "\r\n", 2);
            continue;
        }
        out_field(&o, h->name, h->value);
    }
    if (!xff_done) {
        buf_out_str(&o, "X-Forwarded-For: ");
        buf_out_str(&o, rw->client_ip);
        buf_out_put(&o, "\r\n", 2);
    }
    buf_out_str(&o, "X-Forwarded-Proto: ");
    buf_out_str(&o, rw->proto);
    buf_out_put(&o, "\r\n", 2);
    if (rw->host.len > 0) {
        buf_out_str(&o, "X-Forwarded-Host: ");
        out_slice(&o, rw->host);
        buf_out_put(&o, "\r\n", 2);
    }
    if (rw->framing == HTTP_BODY_LENGTH) {
        buf_out_str(&o, "Content-Length: ");
        out_u64(&o, rw->content_length);
        buf_out_put(&o, "\r\n", 2);
    } else if (rw->framing == HTTP_BODY_CHUNKED) {
        buf_out_str(&o, "Transfer-Encoding: chunked\r\n");
    }
    if (rw->upstream_close)
        buf_out_str(&o, "Connection: close\r\n");
    buf_out_put(&o, "\r\n", 2);
    return o.full ? -1 : (ssize_t)o.len;
}

ssize_t
proxy_rewrite_response(const struct http_response *resp, enum proxy_out_framing framing,
                       bool keep_alive, int client_minor, char *buf, size_t cap)
{
    struct buf_out o = {.buf = buf, .cap = cap};
    char code[8];

    snprintf(code, sizeof(code), "%d", resp->status);
    buf_out_str(&o, "HTTP/1.1 ");
    buf_out_str(&o, code);
    buf_out_put(&o, " ", 1);
    if (resp->reason.len > 0)
        out_slice(&o, resp->reason);
    else
        buf_out_str(&o, http_reason(resp->status));
    buf_out_put(&o, "\r\n", 2);

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
        buf_out_str(&o, "Transfer-Encoding: chunked\r\n");
    if (!keep_alive)
        buf_out_str(&o, "Connection: close\r\n");
    else if (client_minor == 0)
        buf_out_str(&o, "Connection: keep-alive\r\n");
    buf_out_put(&o, "\r\n", 2);
    return o.full ? -1 : (ssize_t)o.len;
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
    int hlen =
        snprintf(head, sizeof(head),
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
    int s;         /* server index, -1 before the pick */
    int ufd;       /* upstream connection, -1 when none */
    bool reused;   /* ufd came from the pool */
    int status;    /* status sent to the client, 0 before */
    int ustatus;   /* upstream's status, 0 if none */
    uint64_t sent; /* body bytes sent to the client */
    int64_t t0_us, u0_us, u1_us;
    bool client_keep;   /* keep the client connection after this response */
    bool upstream_keep; /* give ufd back to the pool after this response */
    bool body_done;     /* the whole request body was read from the client */
    struct http_slice target, host;
    size_t body_off; /* where the body starts in c->buf */
    /*
     * What outlives the head: reading the body reuses c->buf, so the slices
     * in <req> are only valid until then.
     */
    bool is_head, idempotent;
    int minor;
    char reqline[256]; /* "METHOD target", truncated, for logs */
    /* the server in use and the ones tried (retries never go to the same one twice) */
    struct balance_ticket ticket;
    struct balance_set tried;
    bool counted; /* the request is counted active on server s */
    unsigned retries_left;
    char key[256]; /* balance = hash: the key */
    size_t keylen;
    int perr;         /* enum pump_error: why the body phase stopped */
    const char *pwhy; /* ... in words, for the error log */
    /*
     * Chunked request bodies: the part that came with the head is decoded
     * (in place, at body_off) before any upstream is contacted, so a bad or
     * oversized body in it is refused without forwarding anything.
     */
    struct http_chunked dec;
    size_t pre_len; /* decoded bytes at c->buf + body_off */
    size_t pre_end; /* end of the raw bytes they came from */
    bool pre_done;  /* the whole chunked body was in that part */
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
        snprintf(ut, sizeof(ut), "%.3f", (double)((x->u1_us ? x->u1_us : now) - x->u0_us) / 1e6);
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
count_failure(struct exchange *x, const char *what)
{
    balance_ticket_failed(&x->ticket, what, errno); /* the cause, for the breaker's log */
    atomic_fetch_add_explicit(&shm_srv(x->px->shm, x->g, (size_t)x->s)->failures, 1,
                              memory_order_relaxed);
    log_warn("%s %s: %s (client %s, \"%s\")", what, x->grp->servers[x->s].addr.text,
             strerror(errno), x->c->ip, x->reqline);
}

/*
 * Picks a server this request has not tried yet and counts the request
 * active on it. Returns 0, or 503 when no server of the group is usable.
 */
static int
pick_server(struct exchange *x)
{
    struct proxy *px = x->px;

    balance_pick(&px->bal, px->shm, x->g, &x->tried, x->key, x->keylen, buf_now_ms(), &x->ticket);
    if (x->ticket.server < 0) {
        log_warn("[%s] no usable server (client %s, \"%s\")", x->grp->name, x->c->ip, x->reqline);
        return 503;
    }
    x->s = x->ticket.server;
    x->counted = true;
    balance_set_add(&x->tried, (size_t)x->s);
    struct shm_server *srv = shm_srv(px->shm, x->g, (size_t)x->s);
    atomic_fetch_add_explicit(&srv->active, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&srv->requests, 1, memory_order_relaxed);
    return 0;
}

/* Closes the connection to the current server (keeping the server). */
static void
drop_conn(struct exchange *x)
{
    if (x->ufd != -1)
        close(x->ufd);
    x->ufd = -1;
}

/*
 * Done with the current server for this request: tells the balancer how it
 * went (<ok>: it did its part), uncounts the request, and pools its
 * connection when both sides agreed to keep it.
 */
static void
leave_server(struct exchange *x, bool ok)
{
    struct proxy *px = x->px;

    if (!x->counted)
        return;
    x->counted = false;
    balance_done(&px->bal, px->shm, x->g, &x->ticket, ok, buf_now_ms());
    atomic_fetch_sub_explicit(&shm_srv(px->shm, x->g, (size_t)x->s)->active, 1,
                              memory_order_relaxed);
    if (x->ufd != -1 && x->upstream_keep && ok)
        upool_put(&px->pool, x->g, (size_t)x->s, x->ufd);
    else
        drop_conn(x);
    x->ufd = -1;
}

/*
 * Takes a pooled connection to the current server or connects a new one;
 * <fresh> skips the pool (after a stale one). Returns 0, or the status to
 * answer with (502 refused, 504 timed out).
 */
static int
open_conn(struct exchange *x, bool fresh)
{
    struct proxy *px = x->px;

    /* An idempotent request whose body is all here is retried if a pooled connection is dead. */
    bool retryable = x->idempotent && x->body_done;
    x->ufd = fresh ? -1 : upool_get(&px->pool, x->g, (size_t)x->s, retryable);
    x->reused = x->ufd != -1;
    if (x->u0_us == 0)
        x->u0_us = buf_now_us();
    if (x->ufd != -1)
        return 0;
    const struct cfg_server *srv = &x->grp->servers[x->s];
    x->ufd = net_connect(&srv->addr, buf_now_ms() + x->grp->connect_timeout_ms);
    if (x->ufd != -1)
        return 0;
    int timed_out = errno == ETIMEDOUT;
    count_failure(x, "connect to");
    return timed_out ? 504 : 502;
}

/* Whether another server may be tried; says so in the log when it will be. */
static bool
may_retry(struct exchange *x)
{
    if (x->retries_left == 0 || x->status != 0)
        return false;
    x->retries_left--;
    log_info("retrying \"%s\" on another server of [%s] after %s failed", x->reqline, x->grp->name,
             x->grp->servers[x->s].addr.text);
    return true;
}

/* ---- the body phase: both directions at once ------------------------------------------ */

/* Bytes waiting to go out on one socket: a few iovecs and how far they got. */
struct outq {
    struct iovec iov[5];
    int first, cnt;
    char hex[24];
};

static void
outq_reset(struct outq *q)
{
    q->first = q->cnt = 0;
}

static bool
outq_empty(const struct outq *q)
{
    return q->first == q->cnt;
}

static void
outq_add(struct outq *q, const void *p, size_t n)
{
    if (n > 0)
        q->iov[q->cnt++] = (struct iovec){(void *)p, n};
}

/* Queues <data> as one chunk, followed by the last chunk when <last>. */
static void
outq_chunk(struct outq *q, const char *data, size_t len, bool last)
{
    static const char crlf_last[] = "\r\n0\r\n\r\n";

    if (len > 0) {
        int n = snprintf(q->hex, sizeof(q->hex), "%zx\r\n", len);
        outq_add(q, q->hex, (size_t)n);
        outq_add(q, data, len);
        outq_add(q, crlf_last, last ? 7 : 2);
    } else if (last) {
        outq_add(q, crlf_last + 2, 5);
    }
}

/* Writes what fits without blocking: 1 when something moved, 0 when the socket is full, -1. */
static int
outq_write(int fd, struct outq *q)
{
    int moved = 0;

    while (!outq_empty(q)) {
        ssize_t n = writev(fd, q->iov + q->first, q->cnt - q->first);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? moved : -1;
        }
        moved = 1;
        size_t left = (size_t)n;
        while (q->first < q->cnt && left >= q->iov[q->first].iov_len)
            left -= q->iov[q->first++].iov_len;
        if (left > 0) {
            q->iov[q->first].iov_base = (char *)q->iov[q->first].iov_base + left;
            q->iov[q->first].iov_len -= left;
        }
    }
    return 1;
}

/* Why the body phase stopped early. */
enum pump_error {
    PE_NONE,
    PE_CLIENT_GONE,      /* the client closed or reset, or refuses to read (send_timeout) */
    PE_CLIENT_TIMEOUT,   /* its request body stalled: 408 */
    PE_TOO_LARGE,        /* 413 */
    PE_BAD_BODY,         /* invalid chunked request body: 400 */
    PE_UPSTREAM_EMPTY,   /* the upstream closed or reset before any byte of an answer */
    PE_UPSTREAM_TIMEOUT, /* 504 (or a cut response once it started) */
    PE_UPSTREAM_FAILED,  /* reset, early EOF, invalid head or body: 502 (or a cut response) */
};

/* Client -> upstream: the rest of the request body. */
struct upload {
    bool done;      /* the whole body is queued (or there was none left) */
    int64_t waited; /* ms spent waiting for the client's body bytes (not for the upstream) */
    uint64_t got;   /* body bytes read from the client in the pump */
    bool aborted;   /* the upstream stopped taking it; what it answers may still come */
    uint64_t left;  /* Content-Length bytes not read yet */
    struct outq q;
    int64_t last; /* ms of the last progress */
};

enum { DL_HEAD, DL_BODY, DL_DONE };

/* Upstream -> client: the response. */
struct download {
    int state;
    size_t len; /* DL_HEAD: bytes in px->ubuf */
    bool any;   /* any byte came from the upstream */
    bool fin;   /* the whole response is queued */
    struct http_response resp;
    enum proxy_out_framing outf;
    struct http_chunked dec;
    uint64_t left; /* HTTP_BODY_LENGTH: bytes still to come */
    struct outq q;
    int64_t last;
};

/* Records why the phase failed, for proxy_serve and the error log. */
static int
pump_fail(struct exchange *x, enum pump_error e, const char *why)
{
    x->perr = e;
    x->pwhy = why;
    return -1;
}

/* Reads the next piece of the request body and queues it, re-framed. */
static int
upload_read(struct exchange *x, struct upload *u)
{
    struct client *c = x->c;
    const struct http_request *req = x->req;
    uint64_t limit = x->px->cfg->client_max_body_size;
    size_t max = c->cap;

    if (req->info.framing == HTTP_BODY_LENGTH && u->left < max)
        max = (size_t)u->left;
    c->start = c->len = 0; /* everything before was used: reuse the buffer */
    ssize_t n = read(c->fd, c->buf, max);
    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0)
        return pump_fail(x, PE_CLIENT_GONE, "client closed during the request body");
    c->len = (size_t)n;
    u->last = buf_now_ms();
    u->got += (uint64_t)n;
    outq_reset(&u->q);
    if (req->info.framing == HTTP_BODY_LENGTH) {
        outq_add(&u->q, c->buf, (size_t)n);
        u->left -= (uint64_t)n;
        u->done = u->left == 0;
        c->start = c->len;
    } else {
        size_t out_len = 0, used = 0;
        int r = http_chunked_decode(&x->dec, c->buf, c->len, &out_len, &used);
        if (r == -1)
            return pump_fail(x, PE_BAD_BODY, "invalid chunked request body");
        if (limit != 0 && x->dec.total > limit)
            return pump_fail(x, PE_TOO_LARGE, "request body too large");
        outq_chunk(&u->q, c->buf, out_len, r == 1);
        u->done = r == 1;
        c->start = u->done ? used : c->len; /* pipelined bytes after the body stay */
    }
    x->body_done = u->done;
    return 1;
}

/* Moves the upload on without blocking: 1 progress, 0 blocked, -1 failed. */
static int
upload_step(struct exchange *x, struct upload *u)
{
    if (u->aborted)
        return 0;
    if (!outq_empty(&u->q)) {
        int r = outq_write(x->ufd, &u->q);
        if (r == -1) {
            /* It stopped reading (an early answer, or it died): see what it says. */
            log_debug("upstream %s stopped reading the request body: %s",
                      x->grp->servers[x->s].addr.text, strerror(errno));
            u->aborted = true;
            return 1;
        }
        if (r == 1)
            u->last = buf_now_ms();
        return r;
    }
    return u->done ? 0 : upload_read(x, u);
}

/* Queues response body bytes <p>[0..<n>) for the client, as its framing says. */
static int
download_queue(struct exchange *x, struct download *d, char *p, size_t n)
{
    bool chunked = d->outf == PROXY_OUT_CHUNKED;

    switch (d->resp.info.framing) {
    case HTTP_BODY_NONE:
        if (n > 0)
            x->upstream_keep = false; /* bytes where there should be none */
        d->fin = true;
        return 0;
    case HTTP_BODY_LENGTH:
        if (n > d->left) {
            n = (size_t)d->left; /* bytes after the body: the upstream lies */
            x->upstream_keep = false;
        }
        outq_add(&d->q, p, n);
        d->left -= n;
        d->fin = d->left == 0;
        break;
    case HTTP_BODY_CHUNKED: {
        size_t out_len = 0, used = 0;
        int r = http_chunked_decode(&d->dec, p, n, &out_len, &used);
        if (r == -1) {
            errno = EPROTO;
            return pump_fail(x, PE_UPSTREAM_FAILED, "invalid chunked body from");
        }
        if (chunked)
            outq_chunk(&d->q, p, out_len, r == 1);
        else
            outq_add(&d->q, p, out_len);
        if (r == 1 && used < n)
            x->upstream_keep = false;
        d->fin = r == 1;
        n = out_len;
        break;
    }
    case HTTP_BODY_CLOSE:
        if (chunked)
            outq_chunk(&d->q, p, n, false);
        else
            outq_add(&d->q, p, n);
        break;
    }
    x->sent += n;
    return 0;
}

/*
 * The response head is in: decide the client's framing and connection,
 * rewrite the head and queue it with the body bytes that came with it.
 */
static int
download_begin(struct exchange *x, struct download *d, size_t head_len)
{
    struct proxy *px = x->px;
    const struct http_response *resp = &d->resp;

    x->u1_us = buf_now_us();
    x->ustatus = resp->status;
    struct shm_server *srv = shm_srv(px->shm, x->g, (size_t)x->s);
    if (resp->status >= 100 && resp->status < 600)
        atomic_fetch_add_explicit(&srv->responses[resp->status / 100 - 1], 1,
                                  memory_order_relaxed);
    atomic_fetch_add_explicit(&srv->latency_us_sum, (uint64_t)(x->u1_us - x->u0_us),
                              memory_order_relaxed);
    x->upstream_keep = resp->info.keep_alive && x->grp->keepalive > 0;
    if (!x->body_done || *px->draining)
        x->client_keep = false; /* answered before the whole body came, or stopping: close */
    d->outf = PROXY_OUT_AS_IS;
    if (resp->info.framing == HTTP_BODY_CHUNKED || resp->info.framing == HTTP_BODY_CLOSE) {
        /* HTTP/1.1 clients get chunks (and keep their connection); 1.0 ones a close. */
        if (x->minor == 1) {
            d->outf = PROXY_OUT_CHUNKED;
        } else {
            d->outf = PROXY_OUT_CLOSE;
            x->client_keep = false;
        }
    }
    ssize_t hlen =
        proxy_rewrite_response(resp, d->outf, x->client_keep, x->minor, px->obuf, px->ocap);
    if (hlen < 0) {
        errno = EMSGSIZE;
        return pump_fail(x, PE_UPSTREAM_FAILED, "response head too large from");
    }
    x->status = resp->status;
    d->state = DL_BODY;
    d->left = resp->info.content_length;
    http_chunked_init(&d->dec);
    outq_reset(&d->q);
    outq_add(&d->q, px->obuf, (size_t)hlen);
    if (resp->info.framing == HTTP_BODY_NONE ||
        (resp->info.framing == HTTP_BODY_LENGTH && d->left == 0)) {
        d->fin = true;
        if (d->len > head_len)
            x->upstream_keep = false;
        return 0;
    }
    return download_queue(x, d, px->ubuf + head_len, d->len - head_len);
}

/* Parses what came of the response head; skips interim 1xx responses. */
static int
download_head(struct exchange *x, struct download *d)
{
    struct proxy *px = x->px;

    while (d->len > 0) {
        int st = 502;
        int r =
            http_parse_response(px->ubuf, d->len, PROXY_RESP_HEAD_MAX, x->is_head, &d->resp, &st);
        if (r == HTTP_NEED_MORE)
            return 0;
        if (r == HTTP_INVALID) {
            errno = EPROTO;
            return pump_fail(x, PE_UPSTREAM_FAILED, "invalid response head from");
        }
        if (d->resp.status == 101) {
            errno = EPROTO;
            return pump_fail(x, PE_UPSTREAM_FAILED, "101 to a request without Upgrade from");
        }
        if (d->resp.status >= 200)
            return download_begin(x, d, (size_t)r);
        memmove(px->ubuf, px->ubuf + r, d->len - (size_t)r); /* 1xx: not for the client */
        d->len -= (size_t)r;
    }
    return 0;
}

/* Moves the download on without blocking: 1 progress, 0 blocked, -1 failed. */
static int
download_step(struct exchange *x, struct download *d)
{
    struct proxy *px = x->px;

    if (!outq_empty(&d->q)) {
        int r = outq_write(x->c->fd, &d->q);
        if (r == -1)
            return pump_fail(x, PE_CLIENT_GONE, "client closed during the response");
        if (r == 1)
            d->last = buf_now_ms();
        if (outq_empty(&d->q) && d->fin)
            d->state = DL_DONE;
        return r;
    }
    if (d->state == DL_DONE)
        return 0;
    if (d->fin) {
        d->state = DL_DONE;
        return 1;
    }
    size_t cap = px->ucap;
    char *dst = px->ubuf;
    if (d->state == DL_HEAD) {
        dst += d->len;
        cap -= d->len;
    } else if (d->resp.info.framing == HTTP_BODY_LENGTH && d->left < cap) {
        cap = (size_t)d->left;
    }
    ssize_t n = read(x->ufd, dst, cap);
    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n == 0 && d->state == DL_BODY && d->resp.info.framing == HTTP_BODY_CLOSE) {
        outq_reset(&d->q);
        if (d->outf == PROXY_OUT_CHUNKED)
            outq_chunk(&d->q, NULL, 0, true);
        d->fin = true;
        return 1;
    }
    if (n <= 0) {
        if (n == 0)
            errno = ECONNRESET;
        if (!d->any)
            return pump_fail(x, PE_UPSTREAM_EMPTY, "no response from");
        return pump_fail(x, PE_UPSTREAM_FAILED,
                         d->state == DL_HEAD ? "response head from" : "response body from");
    }
    d->any = true;
    d->last = buf_now_ms();
    if (d->state == DL_HEAD) {
        d->len += (size_t)n;
        return download_head(x, d) == -1 ? -1 : 1;
    }
    outq_reset(&d->q);
    return download_queue(x, d, px->ubuf, (size_t)n) == -1 ? -1 : 1;
}

/*
 * The body phase: streams the rest of the request body to the upstream
 * while streaming its response back, both at once, so an upstream that
 * answers before it has read everything (an echo, an early 413) neither
 * stalls nor is cut. Each side moves without blocking; when neither can,
 * one poll() waits for both, with the deadline of whichever wait is due
 * first. Returns PE_NONE when the response was relayed whole.
 */
static enum pump_error
pump(struct exchange *x, struct upload *u, struct download *d)
{
    const struct config *cfg = x->px->cfg;
    int64_t rto = x->grp->read_timeout_ms;

    u->last = d->last = buf_now_ms();
    /*
     * With nothing to upload, the answer to a request just sent is rarely
     * there yet, so do not even read(): yield the CPU first, and twice
     * before sleeping in poll(). On a busy machine the upstream, just woken
     * by our write, often runs right here and answers meanwhile, which spares
     * this worker a sleep and a wake-up (on 2 cores at 64 connections:
     * +20-25% requests/s). On an idle machine sched_yield() returns at once;
     * the cost is a few microseconds.
     */
    int yields = 0;
    if (u->done) {
        sched_yield();
        yields = 1;
    }
    for (;;) {
        int pu = upload_step(x, u);
        if (pu == -1)
            return x->perr;
        int pd = download_step(x, d);
        if (pd == -1)
            return x->perr;
        if (d->state == DL_DONE)
            return PE_NONE;
        if (pu > 0 || pd > 0)
            continue;
        if (yields > 0 && d->state == DL_HEAD) {
            yields--;
            sched_yield();
            continue;
        }

        /* Neither side can move: wait for what each needs, until the first deadline. */
        struct pollfd pfd[2] = {{.fd = x->c->fd}, {.fd = x->ufd}};
        int64_t deadline = INT64_MAX;
        enum pump_error late = PE_NONE;
        const char *why = NULL;
#define WAIT_FOR(i, ev, at, err, what)                                                            \
    do {                                                                                          \
        pfd[i].events |= (ev);                                                                    \
        if ((at) < deadline) {                                                                    \
            deadline = (at);                                                                      \
            late = (err);                                                                         \
            why = (what);                                                                         \
        }                                                                                         \
    } while (0)
        if (!u->aborted && !outq_empty(&u->q))
            WAIT_FOR(1, POLLOUT, u->last + rto, PE_UPSTREAM_TIMEOUT, "sending request body to");
        else if (!u->aborted && !u->done) {
            WAIT_FOR(0, POLLIN, u->last + cfg->client_body_timeout_ms, PE_CLIENT_TIMEOUT,
                     "client request body timed out");
            /*
             * After a first second, a body slower than client_body_min_rate is
             * cut too. The rate counts only the time spent waiting for the
             * client: a slow upstream is not the client's fault.
             */
            if (cfg->client_body_min_rate > 0)
                WAIT_FOR(0, POLLIN,
                         buf_now_ms() + 1000 +
                             (int64_t)(u->got * 1000 / cfg->client_body_min_rate) - u->waited,
                         PE_CLIENT_TIMEOUT, "client request body too slow");
        }
        if (!outq_empty(&d->q))
            WAIT_FOR(0, POLLOUT, d->last + cfg->send_timeout_ms, PE_CLIENT_GONE,
                     "client stopped reading the response");
        else
            WAIT_FOR(1, POLLIN, d->last + rto, PE_UPSTREAM_TIMEOUT,
                     d->state == DL_HEAD ? "reading response head from"
                                         : "reading response body from");
#undef WAIT_FOR
        for (int i = 0; i < 2; i++)
            if (pfd[i].events == 0)
                pfd[i].fd = -1;
        int64_t before = buf_now_ms(), left = deadline - before;
        if (left <= 0) {
            errno = ETIMEDOUT;
            return pump_fail(x, late, why), late;
        }
        if (poll(pfd, 2, left > 1000000 ? 1000000 : (int)left) == -1 && errno != EINTR)
            return pump_fail(x, PE_CLIENT_GONE, "poll"), PE_CLIENT_GONE;
        if (pfd[0].events & POLLIN)
            u->waited += buf_now_ms() - before;
    }
}

/*
 * Sends the request head with the body bytes that came with it (as they
 * are for Content-Length, re-chunked for chunked) on x->ufd. Returns 0, or
 * -1 with errno when the write failed.
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
    struct outq q;
    outq_reset(&q);
    outq_add(&q, px->obuf, (size_t)hlen);
    *body_sent = 0;
    if (req->info.framing == HTTP_BODY_LENGTH) {
        size_t inbuf = c->len - x->body_off;
        *body_sent = inbuf < req->info.content_length ? inbuf : (size_t)req->info.content_length;
        outq_add(&q, c->buf + x->body_off, *body_sent);
    } else if (req->info.framing == HTTP_BODY_CHUNKED) {
        outq_chunk(&q, c->buf + x->body_off, x->pre_len, x->pre_done);
    }
    return net_writev_all(x->ufd, q.iov, q.cnt, x->grp->read_timeout_ms);
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
    struct download d;
    struct upload u;
    bool server_ok = true; /* the server did its part (for the breaker) */
    int st;

    x.is_head = req->method.len == 4 && memcmp(req->method.p, "HEAD", 4) == 0;
    x.idempotent = is_idempotent(req->method);
    x.minor = req->minor_version;
    {
        /* "METHOD target" for the logs, truncated; copied, not formatted: it is on every request
         */
        size_t ml = req->method.len < 32 ? req->method.len : 32;
        size_t tl = req->target.len < 200 ? req->target.len : 200;
        memcpy(x.reqline, req->method.p, ml);
        x.reqline[ml] = ' ';
        memcpy(x.reqline + ml + 1, req->target.p, tl);
        x.reqline[ml + 1 + tl] = '\0';
    }
    if (x.grp->balance == CFG_BAL_HASH) {
        /* The key, copied: the head's slices do not outlive the body. */
        struct http_slice k = {c->ip, strlen(c->ip)};
        if (x.grp->hash_key == CFG_HASH_HEADER) {
            int h = http_find_header(req->headers, req->nheaders, x.grp->hash_header);
            if (h >= 0)
                k = req->headers[h].value; /* absent: the client address stands in */
        }
        x.keylen = k.len < sizeof(x.key) ? k.len : sizeof(x.key);
        memcpy(x.key, k.p, x.keylen);
    }
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
        st = r == -1                                                                     ? 400
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
     * Attempts: a server that cannot be reached before any byte of the
     * request left, or (for an idempotent request that can be sent again
     * whole) that closes or resets without answering, is replaced by another
     * one of the group, up to `retries` times, never the same one twice. A
     * pooled connection that turns out closed is first retried once, on a
     * fresh connection to the same server. Non-idempotent requests that
     * reached a server, answers already begun, and bodies already streamed
     * (they cannot be replayed) are never retried.
     */
    bool fresh = false, stale_retried = false;
    int last_st = 0; /* what the client gets if a retry finds no other server */
    x.retries_left = x.grp->retries;
    for (;;) {
        if (!x.counted) {
            if ((st = pick_server(&x)) != 0) {
                fail(&x, last_st != 0 ? last_st : st);
                goto done;
            }
            fresh = false;
        }
        if ((st = open_conn(&x, fresh)) != 0) {
            leave_server(&x, false);
            last_st = st;
            if (may_retry(&x))
                continue;
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
            if (x.reused && !stale_retried) {
                stale_retried = fresh = true;
                drop_conn(&x);
                continue;
            }
            int timed_out = errno == ETIMEDOUT;
            count_failure(&x, "sending request to");
            leave_server(&x, false);
            last_st = timed_out ? 504 : 502;
            if (x.idempotent && !timed_out && may_retry(&x))
                continue;
            fail(&x, last_st);
            goto done;
        }
        memset(&u, 0, sizeof(u));
        if (req->info.framing == HTTP_BODY_LENGTH) {
            c->start = x.body_off + body_sent;
            u.left = req->info.content_length - body_sent;
            x.body_done = u.left == 0;
        } else if (req->info.framing == HTTP_BODY_CHUNKED) {
            c->start = x.pre_end;
            x.body_done = x.pre_done;
        }
        u.done = x.body_done;
        bool replayable = x.body_done; /* all of it was in the buffer, and still is */
        if (req->expect_continue && !x.body_done && x.minor == 1) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            if (net_write_all(c->fd, cont, sizeof(cont) - 1, cfg->send_timeout_ms) == -1) {
                x.client_keep = false;
                goto done;
            }
        }

        memset(&d, 0, sizeof(d));
        enum pump_error pe = pump(&x, &u, &d);
        if (pe == PE_NONE) {
            if (x.grp->fail_on_5xx && x.ustatus >= 500) {
                errno = EPROTO;
                server_ok = false;
                balance_ticket_failed(&x.ticket, "a 5xx answer from", 0);
                atomic_fetch_add_explicit(&shm_srv(px->shm, x.g, (size_t)x.s)->failures, 1,
                                          memory_order_relaxed);
            }
            break;
        }
        if (pe == PE_UPSTREAM_EMPTY && replayable && x.idempotent) {
            if (x.reused && !stale_retried) {
                log_debug("pooled connection to %s was closed; retrying on a fresh one",
                          x.grp->servers[x.s].addr.text);
                stale_retried = fresh = true;
                drop_conn(&x);
                continue;
            }
            count_failure(&x, x.pwhy);
            leave_server(&x, false);
            last_st = 502;
            if (may_retry(&x))
                continue;
            fail(&x, 502);
            goto done;
        }
        x.upstream_keep = false;
        x.client_keep = false;
        switch (pe) {
        case PE_CLIENT_GONE:
            log_info("%s: %s (\"%s\")", c->ip, x.pwhy, x.reqline);
            if (x.status == 0)
                x.status = 499; /* nginx's "client closed request", for the log only */
            break;
        case PE_CLIENT_TIMEOUT:
            log_info("%s: %s (\"%s\")", c->ip, x.pwhy, x.reqline);
            if (strstr(x.pwhy, "too slow") != NULL)
                atomic_fetch_add_explicit(&px->shm->slow_rejects, 1, memory_order_relaxed);
            fail(&x, 408);
            break;
        case PE_TOO_LARGE:
            fail(&x, 413);
            break;
        case PE_BAD_BODY:
            fail(&x, 400);
            break;
        case PE_UPSTREAM_TIMEOUT:
            count_failure(&x, x.pwhy);
            server_ok = false;
            fail(&x, 504);
            break;
        case PE_UPSTREAM_EMPTY:
        case PE_UPSTREAM_FAILED:
            count_failure(&x, x.pwhy);
            server_ok = false;
            fail(&x, 502);
            break;
        case PE_NONE:
            break;
        }
        goto done;
    }
    if (!x.body_done || u.aborted) {
        /* The response is whole, but the request body was not all read or sent. */
        x.client_keep = false;
        x.upstream_keep = false;
    }

done:
    if (x.s >= 0 && x.status != 0 && x.u1_us == 0)
        x.u1_us = buf_now_us();
    if (!x.body_done)
        x.client_keep = false;
    leave_server(&x, server_ok);
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
    /* The admin worker (slot -1) has no scoreboard entry: it counts in a private one. */
    static struct shm_worker unlisted;
    px->me = slot >= 0 ? &shm->workers[slot] : &unlisted;
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
