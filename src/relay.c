/*
 * relay: the body phase of one exchange, both directions at once. See
 * relay.h.
 */
#include "relay.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "net.h"
#include "rewrite.h"

/* ---- output queues ---------------------------------------------------------------------- */

/* Bytes waiting to go out on one socket: a few iovecs, the first not yet written whole. */
struct outq {
    struct iovec iov[5];
    struct iovec *next; /* the first entry not written whole */
    int cnt;            /* entries from <next> on */
    char hex[24];       /* a chunk-size line */
};

static void
outq_reset(struct outq *q)
{
    q->next = q->iov;
    q->cnt = 0;
}

static bool
outq_empty(const struct outq *q)
{
    return q->cnt == 0;
}

static void
outq_add(struct outq *q, const void *p, size_t n)
{
    if (n > 0)
        q->next[q->cnt++] = (struct iovec){(void *)p, n};
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

/* One non-blocking writev() to one end: the bytes written, or -1 (errno EAGAIN when full). */
typedef ssize_t outq_writer(void *end, const struct iovec *iov, int cnt);

static ssize_t
write_upstream(void *end, const struct iovec *iov, int cnt)
{
    return upconn_try_writev(end, iov, cnt);
}

static ssize_t
write_client(void *end, const struct iovec *iov, int cnt)
{
    return conn_write(end, iov, cnt);
}

/* Writes what fits of <q> to <end>: 1 when something moved, 0 when it is full, -1 (errno). */
static int
outq_write(struct outq *q, outq_writer *wr, void *end)
{
    int moved = 0;

    while (!outq_empty(q)) {
        ssize_t n = wr(end, q->next, q->cnt);
        if (n == -1)
            return errno == EAGAIN ? moved : -1;
        net_iov_advance(&q->next, &q->cnt, (size_t)n);
        moved = 1;
    }
    return 1;
}

/* ---- zero copy ----------------------------------------------------------------------- */

/* One splice() of what a pipe holds to one end: the bytes moved, or -1 (errno EAGAIN when full). */
typedef ssize_t pipe_writer(void *end, struct net_pipe *p);

static ssize_t
splice_upstream(void *end, struct net_pipe *p)
{
    return upconn_splice_out(end, p);
}

static ssize_t
splice_client(void *end, struct net_pipe *p)
{
    return conn_splice_out(end, p);
}

/* outq_write() for a pipe: 1 when something moved, 0 when <end> is full, -1 (errno). */
static int
pipe_write(struct relay *r, struct net_pipe *p, pipe_writer *wr, void *end)
{
    int moved = 0;

    while (p->held > 0) {
        ssize_t n = wr(end, p);
        if (n == -1)
            return errno == EAGAIN ? moved : -1;
        if (n == 0) {
            errno = EPIPE;
            return -1;
        }
        r->spliced += (uint64_t)n;
        moved = 1;
    }
    return 1;
}

/* Whether a body may go through <p>: a pipe at hand and neither end speaking TLS. */
static bool
splice_ok(const struct relay *r, struct net_pipe *p)
{
    return p != NULL && !conn_is_tls(r->client) && r->up->ssl == NULL && net_pipe_ready(p) == 0;
}

int
relay_send_head(struct upconn *up, const char *head, size_t hlen, enum http_framing framing,
                const char *body, size_t blen, bool last, int64_t timeout_ms)
{
    struct outq q;

    outq_reset(&q);
    outq_add(&q, head, hlen);
    if (framing == HTTP_BODY_LENGTH)
        outq_add(&q, body, blen);
    else if (framing == HTTP_BODY_CHUNKED)
        outq_chunk(&q, body, blen, last);
    return upconn_writev_all(up, q.next, q.cnt, timeout_ms);
}

int
relay_continue(struct conn *client)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct iovec iov = {(void *)cont, sizeof(cont) - 1};

    return conn_write_all(client, &iov, 1);
}

/* ---- the two directions ------------------------------------------------------------------ */

/* Client -> upstream: the rest of the request body. */
struct upload {
    int64_t waited; /* ms spent waiting for the client's body bytes once they flow */
    uint64_t got;   /* body bytes read from the client, those with the head included */
    bool splice;    /* the body goes through r->pipe_up, not q */
    struct outq q;
    int64_t last; /* ms of the last progress */
};

enum { DL_HEAD, DL_BODY, DL_DONE };

/* Upstream -> client: the response. */
struct download {
    int state;
    size_t head_len; /* DL_HEAD: bytes of the head so far in resp_buf */
    bool any_byte;   /* a byte of an answer came from the upstream */
    bool complete;   /* the whole response is queued */
    struct http_response resp;
    enum rewrite_framing outf;
    struct http_chunked dec;
    uint64_t left; /* HTTP_BODY_LENGTH: bytes still to come */
    bool splice;   /* the body goes through r->pipe_down once q, the head, is out */
    struct outq q;
    int64_t last;
};

/* Whether bytes wait to go to the upstream, or to the client. */
static bool
upload_pending(const struct relay *r, const struct upload *u)
{
    return !outq_empty(&u->q) || (u->splice && r->pipe_up->held > 0);
}

static bool
download_pending(const struct relay *r, const struct download *d)
{
    return !outq_empty(&d->q) || (d->splice && r->pipe_down->held > 0);
}

/* Records why the relay failed (errno too) and returns -1. */
static int
fail(struct relay *r, enum relay_end *end, enum relay_end e, const char *why)
{
    *end = e;
    r->why = why;
    r->err = errno;
    return -1;
}

/*
 * Books what one read of the request body from the client returned (<n>,
 * as conn_read() or conn_splice_in() say it): 1 when bytes came, 0 when
 * none yet, -1 when the client closed or failed.
 */
static int
upload_got(struct relay *r, struct upload *u, ssize_t n, enum relay_end *end)
{
    if (n == -1 && errno == EAGAIN)
        return 0;
    if (n <= 0)
        return fail(r, end, RELAY_CLIENT_GONE, "client closed during the request body");
    u->last = clock_ms();
    u->got += (uint64_t)n;
    if (r->body_framing == HTTP_BODY_LENGTH) {
        r->body_left -= (uint64_t)n;
        r->body_done = r->body_left == 0;
    }
    return 1;
}

/* Reads the next piece of the request body and queues it, re-framed. */
static int
upload_read(struct relay *r, struct upload *u, enum relay_end *end)
{
    size_t max = NET_IO_BUF;

    if (r->body_framing == HTTP_BODY_LENGTH && r->body_left < max)
        max = (size_t)r->body_left;
    ssize_t n = conn_read(r->client, r->body_buf, max);
    int got = upload_got(r, u, n, end);
    if (got <= 0)
        return got;
    outq_reset(&u->q);
    if (r->body_framing == HTTP_BODY_LENGTH) {
        outq_add(&u->q, r->body_buf, (size_t)n);
        return 1;
    }
    size_t out_len = 0, used = 0;
    int d = http_chunked_decode(&r->body_dec, r->body_buf, (size_t)n, &out_len, &used);
    if (d == -1)
        return fail(r, end, RELAY_BAD_BODY, "invalid chunked request body");
    if (r->max_body != 0 && r->body_dec.total > r->max_body)
        return fail(r, end, RELAY_BODY_TOO_LARGE, "request body too large");
    outq_chunk(&u->q, r->body_buf, out_len, d == 1);
    r->body_done = d == 1;
    if (r->body_done && used < (size_t)n) /* the next request, pipelined */
        conn_give_back(r->client, r->body_buf + used, (size_t)n - used);
    return 1;
}

/* The next piece of a Content-Length body, from the client's socket into the pipe. */
static int
upload_splice_in(struct relay *r, struct upload *u, enum relay_end *end)
{
    size_t max = r->body_left < NET_PIPE_SIZE ? (size_t)r->body_left : NET_PIPE_SIZE;

    return upload_got(r, u, conn_splice_in(r->client, r->pipe_up, max), end);
}

/* Moves the upload on without blocking: 1 progress, 0 blocked, -1 failed. */
static int
upload_step(struct relay *r, struct upload *u, enum relay_end *end)
{
    if (r->upload_aborted)
        return 0;
    if (upload_pending(r, u)) {
        int w = u->splice ? pipe_write(r, r->pipe_up, splice_upstream, r->up)
                          : outq_write(&u->q, write_upstream, r->up);
        if (w == -1) {
            /* It stopped reading (an early answer, or it died): see what it says. */
            log_debug("upstream %s stopped reading the request body: %s", r->upstream_addr,
                      strerror(errno));
            r->upload_aborted = true;
            return 1;
        }
        if (w == 1)
            u->last = clock_ms();
        if (r->body_done && !upload_pending(r, u) && r->sent_us == 0)
            r->sent_us = clock_us(); /* the request's last byte: Server-Timing's mp-upstream */
        return w;
    }
    if (r->body_done)
        return 0;
    return u->splice ? upload_splice_in(r, u, end) : upload_read(r, u, end);
}

/* Queues response body bytes <p>[0..<n>) for the client, as its framing says. */
static int
download_queue(struct relay *r, struct download *d, char *p, size_t n, enum relay_end *end)
{
    bool chunked = d->outf == REWRITE_CHUNKED;

    switch (d->resp.info.framing) {
    case HTTP_BODY_NONE:
        if (n > 0)
            r->upstream_keep = false; /* bytes where there should be none */
        d->complete = true;
        return 0;
    case HTTP_BODY_LENGTH:
        if (n > d->left) {
            n = (size_t)d->left; /* bytes after the body: the upstream lies */
            r->upstream_keep = false;
        }
        outq_add(&d->q, p, n);
        d->left -= n;
        d->complete = d->left == 0;
        break;
    case HTTP_BODY_CHUNKED: {
        size_t out_len = 0, used = 0;
        int c = http_chunked_decode(&d->dec, p, n, &out_len, &used);
        if (c == -1) {
            errno = EPROTO;
            r->detail = d->dec.why;
            return fail(r, end, RELAY_UPSTREAM_FAILED, "invalid chunked body from");
        }
        if (chunked)
            outq_chunk(&d->q, p, out_len, c == 1);
        else
            outq_add(&d->q, p, out_len);
        if (c == 1 && used < n)
            r->upstream_keep = false;
        d->complete = c == 1;
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
    r->sent += n;
    return 0;
}

/*
 * The response head is in: decide the client's framing and whether its
 * connection is kept (said in this head, so decided here), rewrite the
 * head and queue it with the body bytes that came with it.
 */
static int
download_begin(struct relay *r, struct download *d, size_t head_len, enum relay_end *end)
{
    const struct http_response *resp = &d->resp;

    r->head_us = clock_us();
    r->upstream_status = resp->status;
    r->upstream_keep = resp->info.keep_alive && r->pool_ok;
    if (!r->body_done || *r->draining)
        r->client_keep = false; /* answered before the whole body came, or stopping: close */
    d->outf = REWRITE_AS_IS;
    if (resp->info.framing == HTTP_BODY_CHUNKED || resp->info.framing == HTTP_BODY_CLOSE) {
        /* HTTP/1.1 clients get chunks (and keep their connection); 1.0 ones a close. */
        if (r->client_minor == 1) {
            d->outf = REWRITE_CHUNKED;
        } else {
            d->outf = REWRITE_CLOSE;
            r->client_keep = false;
        }
    }
    char timing[160];
    if (r->server_timing && r->resp_opts != NULL) {
        /* an answer before the request's end: mp-upstream counts from the head sent */
        int64_t from = r->sent_us != 0 ? r->sent_us : r->head_us;
        rewrite_server_timing(r->connect_us, r->head_us - from, r->head_us - r->start_us, timing,
                              sizeof(timing));
        r->resp_opts->server_timing = timing;
    }
    ssize_t hlen = rewrite_response_opts(resp, d->outf, r->client_keep, r->client_minor,
                                         r->resp_opts, r->head_buf, r->head_cap);
    if (r->resp_opts != NULL)
        r->resp_opts->server_timing = NULL; /* <timing> ends with this function */
    if (hlen >= 0 && r->add_line != NULL)
        hlen = rewrite_add_line(r->head_buf, (size_t)hlen, r->head_cap, r->add_line);
    if (hlen < 0) {
        errno = EMSGSIZE;
        return fail(r, end, RELAY_UPSTREAM_FAILED, "response head too large from");
    }
    r->status = resp->status;
    d->state = DL_BODY;
    d->left = resp->info.content_length;
    http_chunked_init(&d->dec);
    outq_reset(&d->q);
    outq_add(&d->q, r->head_buf, (size_t)hlen);
    if (resp->info.framing == HTTP_BODY_NONE ||
        (resp->info.framing == HTTP_BODY_LENGTH && d->left == 0)) {
        d->complete = true;
        if (d->head_len > head_len)
            r->upstream_keep = false;
        return 0;
    }
    if (download_queue(r, d, r->resp_buf + head_len, d->head_len - head_len, end) == -1)
        return -1;
    /* the rest of the body as it is: zero copy, when it is worth a pipe */
    if (!d->complete && ((resp->info.framing == HTTP_BODY_LENGTH && d->left >= RELAY_SPLICE_MIN) ||
                         (resp->info.framing == HTTP_BODY_CLOSE && d->outf == REWRITE_CLOSE)))
        d->splice = splice_ok(r, r->pipe_down);
    return 0;
}

/*
 * A 101 to a WebSocket handshake: the head goes to the client with the
 * bytes that came after it, which are already the upstream's first frames.
 * Nothing is pooled or kept: both connections become the tunnel.
 */
static int
download_upgrade(struct relay *r, struct download *d, size_t head_len, enum relay_end *end)
{
    const struct http_response *resp = &d->resp;
    int u = http_find_header(resp->headers, resp->nheaders, "upgrade");

    if (u < 0 || !http_list_has(resp->headers[u].value, "websocket", 9)) {
        errno = EPROTO;
        return fail(r, end, RELAY_UPSTREAM_FAILED, "101 without Upgrade: websocket from");
    }
    r->head_us = clock_us();
    r->upstream_status = 101;
    r->upstream_keep = r->client_keep = false;
    ssize_t hlen =
        rewrite_response(resp, REWRITE_UPGRADE, false, r->client_minor, r->head_buf, r->head_cap);
    if (hlen < 0) {
        errno = EMSGSIZE;
        return fail(r, end, RELAY_UPSTREAM_FAILED, "response head too large from");
    }
    r->status = 101;
    r->upgraded = true;
    d->state = DL_BODY;
    d->complete = true;
    outq_reset(&d->q);
    outq_add(&d->q, r->head_buf, (size_t)hlen);
    outq_add(&d->q, r->resp_buf + head_len, d->head_len - head_len);
    return 0;
}

/* Parses what came of the response head; skips interim 1xx responses. */
static int
download_head(struct relay *r, struct download *d, enum relay_end *end)
{
    while (d->head_len > 0) {
        int st = 502;
        int n = http_parse_response(r->resp_buf, d->head_len, RELAY_RESP_HEAD_MAX, r->head_request,
                                    &d->resp, &st);
        if (n == HTTP_NEED_MORE)
            return 0;
        if (n == HTTP_INVALID) {
            errno = EPROTO;
            r->detail = d->resp.why;
            r->detail_header = d->resp.why_header;
            return fail(r, end, RELAY_UPSTREAM_FAILED, "invalid response head from");
        }
        if (d->resp.status == 101 && r->websocket)
            return download_upgrade(r, d, (size_t)n, end);
        if (d->resp.status == 101) {
            errno = EPROTO;
            return fail(r, end, RELAY_UPSTREAM_FAILED, "101 to a request without Upgrade from");
        }
        if (d->resp.status >= 200)
            return download_begin(r, d, (size_t)n, end);
        /* 1xx: not for the client */
        memmove(r->resp_buf, r->resp_buf + n, d->head_len - (size_t)n);
        d->head_len -= (size_t)n;
    }
    return 0;
}

/* The upstream closed (n == 0) or failed (n == -1) after <d>'s bytes so far. */
static int
download_eof(struct relay *r, struct download *d, ssize_t n, enum relay_end *end)
{
    if (n == 0 && d->state == DL_BODY && d->resp.info.framing == HTTP_BODY_CLOSE) {
        outq_reset(&d->q);
        if (d->outf == REWRITE_CHUNKED)
            outq_chunk(&d->q, NULL, 0, true);
        d->complete = true;
        return 1;
    }
    if (n == 0)
        errno = ECONNRESET;
    if (!d->any_byte)
        return fail(r, end, RELAY_UPSTREAM_EMPTY, "no response from");
    return fail(r, end, RELAY_UPSTREAM_FAILED,
                d->state == DL_HEAD ? "response head from" : "response body from");
}

/* The next piece of the body, from the upstream's socket into the pipe. */
static int
download_splice_in(struct relay *r, struct download *d, enum relay_end *end)
{
    bool length = d->resp.info.framing == HTTP_BODY_LENGTH;
    size_t cap = length && d->left < NET_PIPE_SIZE ? (size_t)d->left : NET_PIPE_SIZE;
    ssize_t n = upconn_splice_in(r->up, r->pipe_down, cap);

    if (n == -1 && errno == EAGAIN)
        return 0;
    if (n <= 0)
        return download_eof(r, d, n, end);
    d->last = clock_ms();
    if (length) {
        d->left -= (uint64_t)n;
        d->complete = d->left == 0;
    }
    return 1;
}

/* Moves the download on without blocking: 1 progress, 0 blocked, -1 failed. */
static int
download_step(struct relay *r, struct download *d, enum relay_end *end)
{
    if (download_pending(r, d)) {
        int w;
        if (outq_empty(&d->q)) {
            size_t held = r->pipe_down->held;
            w = pipe_write(r, r->pipe_down, splice_client, r->client);
            r->sent += held - r->pipe_down->held;
        } else {
            w = outq_write(&d->q, write_client, r->client);
        }
        if (w == -1)
            return fail(r, end, RELAY_CLIENT_GONE, "client closed during the response");
        if (w == 1)
            d->last = clock_ms();
        if (!download_pending(r, d) && d->complete)
            d->state = DL_DONE;
        return w;
    }
    if (d->state == DL_DONE)
        return 0;
    if (d->complete) {
        d->state = DL_DONE;
        return 1;
    }
    if (d->splice)
        return download_splice_in(r, d, end);
    size_t cap = NET_IO_BUF;
    char *dst = r->resp_buf;
    if (d->state == DL_HEAD) {
        dst += d->head_len;
        cap -= d->head_len;
    } else if (d->resp.info.framing == HTTP_BODY_LENGTH && d->left < cap) {
        cap = (size_t)d->left;
    }
    ssize_t n = upconn_try_read(r->up, dst, cap);
    if (n == -1 && errno == EAGAIN)
        return 0;
    if (n <= 0)
        return download_eof(r, d, n, end);
    d->any_byte = true;
    d->last = clock_ms();
    if (d->state == DL_HEAD) {
        d->head_len += (size_t)n;
        return download_head(r, d, end) == -1 ? -1 : 1;
    }
    outq_reset(&d->q);
    return download_queue(r, d, r->resp_buf, (size_t)n, end) == -1 ? -1 : 1;
}

/* ---- waiting for both ------------------------------------------------------------------- */

/* What the relay waits for when neither side can move, and the first deadline of those. */
struct wait {
    struct pollfd pfd[2]; /* client, upstream */
    int64_t deadline;
    enum relay_end late; /* what passing the deadline means */
    const char *why;
};

static void
wait_for(struct wait *w, int i, short ev, int64_t at, enum relay_end late, const char *why)
{
    w->pfd[i].events |= ev;
    if (at < w->deadline) {
        w->deadline = at;
        w->late = late;
        w->why = why;
    }
}

/* Fills <w> with what each side needs and the deadline of whichever wait is due first. */
static void
plan_wait(const struct relay *r, const struct upload *u, const struct download *d, struct wait *w)
{
    *w = (struct wait){.pfd = {{.fd = conn_fd(r->client)}, {.fd = r->up->fd}},
                       .deadline = INT64_MAX};
    if (!r->upload_aborted && upload_pending(r, u)) {
        wait_for(w, 1, upconn_write_events(r->up), u->last + r->read_timeout,
                 RELAY_UPSTREAM_TIMEOUT, "sending request body to");
    } else if (!r->upload_aborted && !r->body_done) {
        wait_for(w, 0, POLLIN, u->last + r->body_timeout, RELAY_CLIENT_TIMEOUT,
                 "client request body timed out");
        /*
         * mod_reqtimeout's model: once the body flows (from its first
         * byte), an allowance of a second, then 1/client_body_min_rate s
         * more per byte received; slower is cut. A pause before the body
         * (a client that waited for our 100 Continue, or took its time
         * after the head) is bounded by client_body_timeout alone, so a
         * small body that comes whole is never cut by the rate. The rate
         * counts only the time spent waiting for the client: a slow
         * upstream is not the client's fault.
         */
        if (r->body_min_rate > 0 && u->got > 0)
            wait_for(w, 0, POLLIN,
                     clock_ms() + 1000 + (int64_t)(u->got * 1000 / r->body_min_rate) - u->waited,
                     RELAY_CLIENT_SLOW, "client request body too slow");
    }
    /*
     * read_timeout runs from the upstream's last byte or the request's, as
     * nginx's proxy_read_timeout starts once the request is sent: an upload
     * that keeps going is not a silent upstream.
     */
    int64_t heard = d->last > u->last || r->upload_aborted ? d->last : u->last;
    if (download_pending(r, d))
        wait_for(w, 0, POLLOUT, d->last + r->send_timeout, RELAY_CLIENT_GONE,
                 "client stopped reading the response");
    else
        wait_for(
            w, 1, upconn_read_events(r->up), heard + r->read_timeout, RELAY_UPSTREAM_TIMEOUT,
            d->state == DL_HEAD ? "reading response head from" : "reading response body from");
    for (int i = 0; i < 2; i++)
        if (w->pfd[i].events == 0)
            w->pfd[i].fd = -1;
}

/*
 * Streams the rest of the request body to the upstream while streaming its
 * response back, both at once, so an upstream that answers before it has
 * read everything (an echo, an early 413) neither stalls nor is cut. Each
 * side moves without blocking; when neither can, one net_poll() waits for
 * both, until the deadline of whichever wait is due first.
 */
enum relay_end
relay_run(struct relay *r)
{
    struct upload u = {0};
    struct download d = {0};
    enum relay_end end = RELAY_OK;

    outq_reset(&u.q);
    outq_reset(&d.q);
    u.last = d.last = clock_ms();
    if (r->body_clock > 0 && r->body_clock < u.last)
        u.last = r->body_clock;
    u.got = r->body_early;
    u.splice = !r->body_done && r->body_framing == HTTP_BODY_LENGTH &&
               r->body_left >= RELAY_SPLICE_MIN && !conn_has_pending(r->client) &&
               splice_ok(r, r->pipe_up);
    /*
     * With nothing to upload, the answer to a request just sent is rarely
     * there yet, so do not even read(): yield the CPU first, and twice
     * before sleeping in poll(). On a busy machine the upstream, just woken
     * by our write, often runs right here and answers meanwhile, which spares
     * this worker a sleep and a wake-up (doc/benchmarks.md). On an idle
     * machine sched_yield() returns at once; the cost is a few microseconds.
     */
    int yields = 0;
    if (r->body_done) {
        sched_yield();
        yields = 1;
    }
    for (;;) {
        int up = upload_step(r, &u, &end);
        if (up == -1)
            return end;
        int down = download_step(r, &d, &end);
        if (down == -1)
            return end;
        if (d.state == DL_DONE)
            return RELAY_OK;
        if (up > 0 || down > 0)
            continue;
        if (yields > 0 && d.state == DL_HEAD) {
            yields--;
            sched_yield();
            continue;
        }
        struct wait w;
        plan_wait(r, &u, &d, &w);
        int64_t before = clock_ms();
        bool flowing = u.got > 0;
        if (net_poll(w.pfd, 2, w.deadline) == -1) {
            if (errno == ETIMEDOUT)
                return fail(r, &end, w.late, w.why), end;
            return fail(r, &end, RELAY_CLIENT_GONE, "poll"), end;
        }
        if ((w.pfd[0].events & POLLIN) && flowing)
            u.waited += clock_ms() - before;
    }
}
