/*
 * testapp: the upstream HTTP/1.1 server behind miniproxyd in the integration
 * tests and the demo. One detached thread per connection, blocking I/O; it is
 * a test fixture, not the proxy, so simplicity wins over scale.
 *
 *   testapp [-l ADDR] [-p PORT] [-n NAME] [-d MS] [--tls CERT KEY]
 *
 * --tls CERT KEY serves HTTPS instead (OpenSSL, TLS 1.2 and 1.3, CERT a PEM
 * chain leaf first, KEY its key), with OpenSSL's default server session
 * cache and tickets, so that clients can resume; /tls then tells how.
 *
 * -d MS makes the default endpoint ("/" and unknown paths) wait MS ms before
 * answering: a slow instance, for least-connections tests.
 *
 * PORT 0 (the default) binds an ephemeral port. After listen() it prints
 * exactly "PORT <n>\n" on stdout and flushes, then serves until SIGTERM or
 * SIGINT, which terminate it at once (default action, restored explicitly
 * because a shell may start background jobs with SIGINT ignored).
 *
 * Every response carries "X-Upstream: NAME" and, unless noted, Content-Length.
 * Endpoints (query parameters after '?', numbers are plain decimal):
 *   /health[?status=N]     200 "ok\n", or N; a plain /health answers the status
 *                          last set by /sethealth (200 at start)
 *   /sethealth?status=N    sets that status, answers 200 "health=N\n"
 *   /echo                  body = request body, streamed as it arrives: chunked
 *                          if the request was chunked, else Content-Length = its CL
 *   /headers               body = the request head exactly as received, from the
 *                          request line through the blank line that ends it
 *   /sum                   "len=<bytes> fnv=<16 hex FNV-1a 64 of the body>\n"
 *   /bytes?n=N[&mode=length|chunked|close][&chunk=K]
 *                          N bytes of the testpattern.h pattern; chunked uses
 *                          chunks of K bytes (default 8192); close sends no
 *                          Content-Length and ends the body by closing
 *   /delay?ms=N            waits N ms, then 200 "delayed\n"
 *   /slowbody?ms=N         head + first 16 of 32 body bytes, waits N ms, the rest
 *   /slowbody?ms=N&n=B     the same with B bytes of the /bytes pattern (Content-Length),
 *                          the first half of them before the wait
 *   /hang                  never answers; holds the connection until the peer closes
 *   /close                 closes without answering
 *   /reset                 closes with SO_LINGER {1, 0}: the peer gets an RST
 *   /garbage[?what=W]      answers an invalid response and closes: W = status (the
 *                          default) "HTTP/1.1 2OO OK", W = header a field with a
 *                          space before its colon, W = chunk a valid head and a
 *                          chunked body with a bad chunk size
 *   /status?code=N         status N (200..599), body "status N\n" (none for 204/304)
 *   /stats                 "connections=<C> requests=<R>\n", see below
 *   /ws[?hello=1]          a WebSocket echo server (RFC 6455): a GET with Connection:
 *                          upgrade, Upgrade: websocket and Sec-WebSocket-Key gets 101
 *                          and then every text, binary and continuation frame back as
 *                          it came (unmasked; streamed, so a message can be any size),
 *                          a pong for each ping, a close for a close (then it closes).
 *                          hello=1 sends a text frame "hello" in the same write as the
 *                          101. Without the upgrade fields: 426, "upgrade=<Upgrade>\n"
 *   /upgrade101            answers 101 with Upgrade: websocket whatever was asked, then
 *                          closes: the proxy must not pass it to a plain request
 *   /tls                   "tls=0\n", or with --tls "tls=1 resumed=<0|1> sni=<name or ->\n"
 *   anything else, and /   200 "hello from NAME\n"
 * Every endpoint reads the whole request (head and body) before it acts.
 * HEAD gets the same headers as GET and no body. HTTP/1.0 requests keep the
 * connection only with "Connection: keep-alive" and never get chunked bodies
 * (close-delimited instead). Expect: 100-continue is answered before the body
 * is read. Bad requests get 400 (431 for a head over 64 KiB, 501 for a
 * transfer coding other than chunked, 505 for another HTTP version) and a close.
 *
 * /stats counts: C = every accepted connection, counted when accept() returns
 * (including the one carrying the /stats request); R = every request whose head
 * parsed, counted before it is served (including that /stats request). A test
 * that asks /stats on a fresh connection subtracts 1 from each.
 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <getopt.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "testpattern.h"
#include "testws.h"

#define HEAD_MAX 65536        /* request line + headers + blank line */
#define IN_CAP (2 * HEAD_MAX) /* the head region, then room for body bytes */
#define CHUNK_LINE_MAX 4096   /* a chunk-size line or a trailer line */
#define PIECE 65536           /* largest single write of pattern bytes */
#define NAME_MAX_LEN 200      /* keeps every response head within its buffer */
#define MS_MAX 86400000       /* one day: the longest /delay, /slowbody */
#define THREAD_STACK (256 * 1024)
#define LINGER_MS 1000 /* how long a closing connection drains the peer */

static const char *g_name = "testapp";
static uint64_t g_hello_delay_ms; /* -d */
static atomic_uint_fast64_t g_conns;
static atomic_uint_fast64_t g_reqs;
static atomic_int g_health = 200;
static SSL_CTX *g_tls; /* --tls: connections are HTTPS */
/* PIECE + 256 pattern bytes from offset 0: any offset's bytes start within the first 256. */
static unsigned char g_pattern[PIECE + 256];

/* One client connection. Unread bytes are in[pos, len); in[0, base) holds the
 * current request head, which body reading never overwrites. */
struct conn {
    int fd;
    SSL *ssl; /* --tls: the connection's TLS, NULL before the handshake */
    size_t pos, len, base;
    char in[IN_CAP];
};

enum bstate { B_DONE, B_LENGTH, B_CHUNK_SIZE, B_CHUNK_DATA, B_CHUNK_CRLF, B_TRAILER };

/* One parsed request. The slices point into conn.in[0, head_len). */
struct req {
    const char *path, *query;
    size_t path_len, query_len;
    size_t head_len;
    int is_head; /* HEAD method */
    int v10;     /* HTTP/1.0 */
    int close;   /* the connection ends after this response */
    int chunked; /* request body is chunked */
    int has_cl;
    uint64_t cl;
    int expect_continue;
    int continue_done; /* 100 Continue sent, or no longer allowed */
    enum bstate bstate;
    uint64_t bleft; /* bytes left in the body (B_LENGTH) or chunk (B_CHUNK_DATA) */
};

/* How a response body is delimited. */
enum frame { F_LENGTH, F_CHUNKED, F_CLOSE, F_NONE };

/* What the connection does after a handler. */
enum after { H_OK, H_ABORT, H_GONE };

static void
sleep_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends all of <iov>[0..<n>) (modified in place). Returns 0, or -1 on error. */
static int
sendv_all(struct conn *c, struct iovec *iov, int n)
{
    int fd = c->fd;

    if (c->ssl != NULL) {
        /* blocking: each piece is written whole (a record or more each, fine for a fixture) */
        for (int i = 0; i < n; i++) {
            size_t w;
            if (iov[i].iov_len > 0 &&
                SSL_write_ex(c->ssl, iov[i].iov_base, iov[i].iov_len, &w) != 1)
                return -1;
        }
        return 0;
    }
    while (n > 0) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);

        if (w == -1) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static int
send_all(struct conn *c, const void *p, size_t len)
{
    struct iovec iov = {.iov_base = (void *)p, .iov_len = len};

    return sendv_all(c, &iov, 1);
}

/* One read of the connection (TLS or not): the count, 0 at EOF, -1 on error. */
static ssize_t
conn_recv(struct conn *c, void *p, size_t len)
{
    if (c->ssl != NULL) {
        size_t n;
        if (SSL_read_ex(c->ssl, p, len, &n) == 1)
            return (ssize_t)n;
        int e = SSL_get_error(c->ssl, 0);
        ERR_clear_error();
        return e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
    }
    return recv(c->fd, p, len, 0);
}

/*
 * Reads more client bytes into c->in. Returns the count read (> 0), 0 at EOF,
 * -1 on error or when in[base, IN_CAP) is all unconsumed (a line too long).
 */
static ssize_t
fill(struct conn *c)
{
    if (c->pos == c->len) {
        c->pos = c->len = c->base;
    } else if (c->len == IN_CAP) {
        if (c->pos == c->base)
            return -1;
        memmove(c->in + c->base, c->in + c->pos, c->len - c->pos);
        c->len -= c->pos - c->base;
        c->pos = c->base;
    }
    for (;;) {
        ssize_t n = conn_recv(c, c->in + c->len, IN_CAP - c->len);

        if (n == -1 && errno == EINTR)
            continue;
        if (n > 0)
            c->len += (size_t)n;
        return n;
    }
}

/* ---- request head ---------------------------------------------------- */

static int
is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static int
slice_ieq(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && strncasecmp(s, lit, len) == 0;
}

/* Parses the decimal <s>[0..<len>) into <*out>, at most <max>. Returns 0 or -1. */
static int
parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 20)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Sets the comma-separated tokens of a Connection header into <*close> / <*ka>. */
static void
connection_tokens(const char *v, size_t len, int *close, int *ka)
{
    size_t i = 0;

    while (i < len) {
        size_t s, e;

        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        s = i;
        while (i < len && v[i] != ',')
            i++;
        e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (slice_ieq(v + s, e - s, "close"))
            *close = 1;
        else if (slice_ieq(v + s, e - s, "keep-alive"))
            *ka = 1;
    }
}

/* Parses the request line <p>[0..<len>). Returns 0 or the error status. */
static int
parse_request_line(struct req *r, const char *p, size_t len)
{
    size_t i = 0, ts;
    const char *target;
    size_t target_len;

    while (i < len && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i == len || p[i] != ' ')
        return 400;
    r->is_head = (i == 4 && memcmp(p, "HEAD", 4) == 0);
    ts = ++i;
    while (i < len && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7f)
        i++;
    if (i == ts || i == len || p[i] != ' ')
        return 400;
    target = p + ts;
    target_len = i - ts;
    i++;
    if (len - i != 8 || memcmp(p + i, "HTTP/", 5) != 0 || p[i + 5] < '0' || p[i + 5] > '9' ||
        p[i + 6] != '.' || p[i + 7] < '0' || p[i + 7] > '9')
        return 400;
    if (p[i + 5] != '1' || (p[i + 7] != '0' && p[i + 7] != '1'))
        return 505;
    r->v10 = (p[i + 7] == '0');

    const char *q = memchr(target, '?', target_len);
    r->path = target;
    r->path_len = q ? (size_t)(q - target) : target_len;
    r->query = q ? q + 1 : target + target_len;
    r->query_len = q ? target_len - r->path_len - 1 : 0;
    return 0;
}

/* Parses one header line <p>[0..<len>) into <r>. Returns 0 or the error status. */
static int
parse_header(struct req *r, const char *p, size_t len, int *conn_close, int *conn_ka, int *te_seen)
{
    size_t i = 0, vs, ve;

    while (i < len && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i == len || p[i] != ':')
        return 400; /* empty name, no colon, or space before it (also obs-fold) */
    const char *name = p;
    size_t name_len = i;

    for (size_t j = i + 1; j < len; j++) {
        unsigned char ch = (unsigned char)p[j];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return 400;
    }
    vs = i + 1;
    while (vs < len && (p[vs] == ' ' || p[vs] == '\t'))
        vs++;
    ve = len;
    while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
        ve--;
    const char *v = p + vs;
    size_t vlen = ve - vs;

    if (slice_ieq(name, name_len, "content-length")) {
        uint64_t cl;
        if (parse_u64(v, vlen, UINT64_C(1) << 62, &cl) == -1)
            return 400;
        if (r->has_cl && cl != r->cl)
            return 400;
        r->has_cl = 1;
        r->cl = cl;
    } else if (slice_ieq(name, name_len, "transfer-encoding")) {
        if (*te_seen)
            return 400;
        *te_seen = 1;
        if (!slice_ieq(v, vlen, "chunked"))
            return 501;
        r->chunked = 1;
    } else if (slice_ieq(name, name_len, "connection")) {
        connection_tokens(v, vlen, conn_close, conn_ka);
    } else if (slice_ieq(name, name_len, "expect")) {
        if (slice_ieq(v, vlen, "100-continue"))
            r->expect_continue = 1;
    }
    return 0;
}

/* Parses the head c->in[0, <head_len>) into <r>. Returns 0 or the error status. */
static int
parse_head(struct conn *c, struct req *r, size_t head_len)
{
    const char *p = c->in, *end = c->in + head_len;
    int conn_close = 0, conn_ka = 0, te_seen = 0, first = 1, st;

    memset(r, 0, sizeof(*r));
    r->head_len = head_len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)(nl - p);

        if (len > 0 && p[len - 1] == '\r')
            len--;
        if (memchr(p, '\r', len) != NULL || memchr(p, '\0', len) != NULL)
            return 400;
        if (len == 0)
            break; /* the blank line: end of the head */
        st = first ? parse_request_line(r, p, len)
                   : parse_header(r, p, len, &conn_close, &conn_ka, &te_seen);
        if (st != 0)
            return st;
        first = 0;
        p = nl + 1;
    }
    if (r->chunked && r->has_cl)
        return 400; /* ambiguous framing: a smuggling attempt, refuse it */
    r->close = r->v10 ? (!conn_ka || conn_close) : conn_close;
    if (r->chunked)
        r->bstate = B_CHUNK_SIZE;
    else if (r->has_cl && r->cl > 0)
        r->bstate = B_LENGTH, r->bleft = r->cl;
    else
        r->bstate = B_DONE;
    if (r->v10)
        r->continue_done = 1;
    return 0;
}

/*
 * Reads and parses the next request head. Returns 1 with <r> filled, 0 at a
 * clean EOF between requests, -1 on I/O error or EOF inside a head, or an HTTP
 * error status (>= 400) to answer before closing.
 */
static int
read_request(struct conn *c, struct req *r)
{
    size_t scan = 0;

    /* Keep pipelined bytes, moved to the start: the head lives at in[0, head_len). */
    memmove(c->in, c->in + c->pos, c->len - c->pos);
    c->len -= c->pos;
    c->pos = c->base = 0;
    for (;;) {
        /* Robustness (RFC 9112 2.2): ignore empty lines before a request line. */
        size_t skip = 0;
        while (skip < c->len &&
               (c->in[skip] == '\n' ||
                (c->in[skip] == '\r' && skip + 1 < c->len && c->in[skip + 1] == '\n')))
            skip += c->in[skip] == '\n' ? 1 : 2;
        if (skip > 0) {
            memmove(c->in, c->in + skip, c->len - skip);
            c->len -= skip;
            scan = 0;
        }
        size_t limit = c->len < HEAD_MAX ? c->len : HEAD_MAX;
        for (size_t i = scan; i < limit; i++) {
            if (c->in[i] != '\n')
                continue;
            size_t end = 0;
            if (i + 1 < limit && c->in[i + 1] == '\n')
                end = i + 2;
            else if (i + 2 < limit && c->in[i + 1] == '\r' && c->in[i + 2] == '\n')
                end = i + 3;
            if (end) {
                int st = parse_head(c, r, end);
                if (st != 0)
                    return st;
                c->pos = c->base = end;
                return 1;
            }
        }
        if (c->len >= HEAD_MAX)
            return 431;
        scan = limit > 2 ? limit - 2 : 0;
        int had = c->len > 0;
        ssize_t n = fill(c);
        if (n == 0)
            return had ? -1 : 0;
        if (n < 0)
            return -1;
    }
}

/* ---- request body ---------------------------------------------------- */

/* Sends "100 Continue" once, if the client asked and no final response went out. */
static int
send_continue(struct conn *c, struct req *r)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

    if (!r->expect_continue || r->continue_done || r->bstate == B_DONE)
        return 0;
    r->continue_done = 1;
    return send_all(c, cont, sizeof(cont) - 1);
}

/* Parses a chunk-size line: hex digits, optional whitespace and ;extensions. */
static int
parse_chunk_size(const char *p, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;

    for (; i < len; i++) {
        char ch = p[i];
        unsigned d;
        if (ch >= '0' && ch <= '9')
            d = (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            d = (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            d = (unsigned)(ch - 'A' + 10);
        else
            break;
        if (i >= 15)
            return -1; /* over 2^60: nobody sends that */
        v = v * 16 + d;
    }
    if (i == 0)
        return -1;
    while (i < len && (p[i] == ' ' || p[i] == '\t'))
        i++;
    if (i < len && p[i] != ';')
        return -1;
    *out = v;
    return 0;
}

/*
 * Returns the next piece of the request body in <*out> (a slice of c->in,
 * valid until the next call): its length > 0, 0 at the end of the body, -1 on
 * malformed framing, I/O error or EOF before the end.
 */
static ssize_t
body_next(struct conn *c, struct req *r, const char **out)
{
    for (;;) {
        size_t avail = c->len - c->pos;
        char *p = c->in + c->pos;

        switch (r->bstate) {
        case B_DONE:
            return 0;
        case B_LENGTH:
        case B_CHUNK_DATA:
            if (avail > 0) {
                size_t n = avail < r->bleft ? avail : (size_t)r->bleft;
                *out = p;
                c->pos += n;
                r->bleft -= n;
                if (r->bleft == 0)
                    r->bstate = r->bstate == B_LENGTH ? B_DONE : B_CHUNK_CRLF;
                return (ssize_t)n;
            }
            break;
        case B_CHUNK_SIZE:
        case B_CHUNK_CRLF:
        case B_TRAILER: {
            char *nl = memchr(p, '\n', avail);
            if (nl == NULL) {
                if (avail >= CHUNK_LINE_MAX)
                    return -1;
                break;
            }
            size_t ll = (size_t)(nl - p);
            c->pos += ll + 1;
            if (ll > 0 && p[ll - 1] == '\r')
                ll--;
            if (r->bstate == B_CHUNK_SIZE) {
                if (parse_chunk_size(p, ll, &r->bleft) == -1)
                    return -1;
                r->bstate = r->bleft == 0 ? B_TRAILER : B_CHUNK_DATA;
            } else if (r->bstate == B_CHUNK_CRLF) {
                if (ll != 0)
                    return -1;
                r->bstate = B_CHUNK_SIZE;
            } else if (ll == 0) {
                r->bstate = B_DONE;
            }
            continue;
        }
        }
        if (send_continue(c, r) == -1 || fill(c) <= 0)
            return -1;
    }
}

/* Reads and discards the rest of the request body. Returns 0 or -1. */
static int
body_drain(struct conn *c, struct req *r)
{
    const char *p;
    ssize_t n;

    while ((n = body_next(c, r, &p)) > 0)
        ;
    return (int)n;
}

/* ---- responses ------------------------------------------------------- */

static const struct {
    int status;
    const char *text;
} reasons[] = {
    {100, "Continue"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {304, "Not Modified"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {413, "Content Too Large"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

static const char *
reason(int status)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].text;
    return "Status";
}

/* Sends the response head; F_CLOSE marks the connection to close after the body. */
static int
send_head(struct conn *c, struct req *r, int status, enum frame f, uint64_t clen,
          const char *ctype)
{
    char h[1024];
    int n;

    if (f == F_CLOSE)
        r->close = 1;
    r->continue_done = 1; /* a 100 after the final head would be a protocol error */
    n = snprintf(h, sizeof(h), "HTTP/1.1 %d %s\r\nX-Upstream: %s\r\n", status, reason(status),
                 g_name);
    if (ctype != NULL && f != F_NONE)
        n += snprintf(h + n, sizeof(h) - (size_t)n, "Content-Type: %s\r\n", ctype);
    if (f == F_LENGTH)
        n += snprintf(h + n, sizeof(h) - (size_t)n, "Content-Length: %" PRIu64 "\r\n", clen);
    else if (f == F_CHUNKED)
        n += snprintf(h + n, sizeof(h) - (size_t)n, "Transfer-Encoding: chunked\r\n");
    if (r->close)
        n += snprintf(h + n, sizeof(h) - (size_t)n, "Connection: close\r\n");
    else if (r->v10)
        n += snprintf(h + n, sizeof(h) - (size_t)n, "Connection: keep-alive\r\n");
    n += snprintf(h + n, sizeof(h) - (size_t)n, "\r\n");
    return send_all(c, h, (size_t)n);
}

/* Sends body bytes framed as <f>. */
static int
body_write(struct conn *c, enum frame f, const void *p, size_t len)
{
    char hdr[24];

    if (len == 0)
        return 0;
    if (f != F_CHUNKED)
        return send_all(c, p, len);
    struct iovec iov[3] = {
        {.iov_base = hdr, .iov_len = (size_t)snprintf(hdr, sizeof(hdr), "%zx\r\n", len)},
        {.iov_base = (void *)p, .iov_len = len},
        {.iov_base = "\r\n", .iov_len = 2},
    };
    return sendv_all(c, iov, 3);
}

static int
body_end(struct conn *c, enum frame f)
{
    return f == F_CHUNKED ? send_all(c, "0\r\n\r\n", 5) : 0;
}

/* A complete response with a small in-memory body (none for 204 / 304 / HEAD). */
static enum after
respond(struct conn *c, struct req *r, int status, const char *body, size_t len)
{
    enum frame f = (status == 204 || status == 304) ? F_NONE : F_LENGTH;

    if (send_head(c, r, status, f, len, "text/plain") == -1)
        return H_ABORT;
    if (f == F_LENGTH && !r->is_head && send_all(c, body, len) == -1)
        return H_ABORT;
    return H_OK;
}

static enum after
respond_text(struct conn *c, struct req *r, int status, const char *text)
{
    return respond(c, r, status, text, strlen(text));
}

/* Answers an unusable request with <status> and marks the connection to close. */
static enum after
respond_error(struct conn *c, struct req *r, int status)
{
    char body[64];

    r->close = 1;
    snprintf(body, sizeof(body), "%d %s\n", status, reason(status));
    return respond_text(c, r, status, body);
}

/* ---- query parameters ------------------------------------------------- */

/* Finds parameter <name> in the query. Returns 1 with its value slice, 0 if absent. */
static int
param(const struct req *r, const char *name, const char **v, size_t *vlen)
{
    const char *p = r->query, *end = r->query + r->query_len;
    size_t nlen = strlen(name);

    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        const char *ke = eq ? eq : e;

        if ((size_t)(ke - p) == nlen && memcmp(p, name, nlen) == 0) {
            *v = eq ? eq + 1 : e;
            *vlen = (size_t)(e - *v);
            return 1;
        }
        p = e + 1;
    }
    return 0;
}

/*
 * Reads numeric parameter <name> into <*out>: <def> when absent (if <def> >= 0).
 * Returns 0, or -1 when it is missing without a default, malformed or out of
 * [<min>, <max>].
 */
static int
param_u64(const struct req *r, const char *name, int64_t def, uint64_t min, uint64_t max,
          uint64_t *out)
{
    const char *v;
    size_t vlen;

    if (!param(r, name, &v, &vlen)) {
        if (def < 0)
            return -1;
        *out = (uint64_t)def;
        return 0;
    }
    if (parse_u64(v, vlen, max, out) == -1 || *out < min)
        return -1;
    return 0;
}

/* ---- endpoints ------------------------------------------------------- */

static int
path_is(const struct req *r, const char *lit)
{
    return r->path_len == strlen(lit) && memcmp(r->path, lit, r->path_len) == 0;
}

static enum after
h_health(struct conn *c, struct req *r)
{
    uint64_t st;
    char body[32];

    if (param_u64(r, "status", atomic_load(&g_health), 200, 599, &st) == -1)
        return respond_error(c, r, 400);
    if (st == 200)
        return respond_text(c, r, 200, "ok\n");
    snprintf(body, sizeof(body), "status %d\n", (int)st);
    return respond_text(c, r, (int)st, body);
}

static enum after
h_sethealth(struct conn *c, struct req *r)
{
    uint64_t st;
    char body[32];

    if (param_u64(r, "status", -1, 200, 599, &st) == -1)
        return respond_error(c, r, 400);
    atomic_store(&g_health, (int)st);
    snprintf(body, sizeof(body), "health=%d\n", (int)st);
    return respond_text(c, r, 200, body);
}

static enum after
h_echo(struct conn *c, struct req *r)
{
    enum frame f = r->chunked ? (r->v10 ? F_CLOSE : F_CHUNKED) : F_LENGTH;
    const char *p;
    ssize_t n;

    if (r->is_head) {
        if (body_drain(c, r) == -1)
            return respond_error(c, r, 400);
        return send_head(c, r, 200, f, r->cl, "application/octet-stream") == -1 ? H_ABORT : H_OK;
    }
    /* The client may wait for 100 before sending; it must come before our 200. */
    if (send_continue(c, r) == -1 ||
        send_head(c, r, 200, f, r->cl, "application/octet-stream") == -1)
        return H_ABORT;
    while ((n = body_next(c, r, &p)) > 0)
        if (body_write(c, f, p, (size_t)n) == -1)
            return H_ABORT;
    if (n < 0 || body_end(c, f) == -1)
        return H_ABORT; /* the response is cut short: only a close can say so */
    return H_OK;
}

static enum after
h_headers(struct conn *c, struct req *r)
{
    if (body_drain(c, r) == -1)
        return respond_error(c, r, 400);
    /* in[0, head_len) is protected from body reading (conn.base). */
    return respond(c, r, 200, c->in, r->head_len);
}

static enum after
h_sum(struct conn *c, struct req *r)
{
    uint64_t h = TP_FNV_INIT, total = 0;
    const char *p;
    ssize_t n;
    char body[64];

    while ((n = body_next(c, r, &p)) > 0) {
        h = tp_fnv1a(h, p, (size_t)n);
        total += (uint64_t)n;
    }
    if (n < 0)
        return respond_error(c, r, 400);
    snprintf(body, sizeof(body), "len=%" PRIu64 " fnv=%016" PRIx64 "\n", total, h);
    return respond_text(c, r, 200, body);
}

/* Sends pattern bytes [<off>, <off> + <len>) with optional <pre> and <suf> around them. */
static int
send_pattern(struct conn *c, uint64_t off, uint64_t len, const char *pre, size_t pre_len,
             const char *suf, size_t suf_len)
{
    do {
        size_t n = len < PIECE ? (size_t)len : PIECE;
        struct iovec iov[3];
        int k = 0;

        if (pre_len > 0)
            iov[k++] = (struct iovec){.iov_base = (void *)pre, .iov_len = pre_len};
        if (n > 0)
            iov[k++] = (struct iovec){.iov_base = g_pattern + (off & 255), .iov_len = n};
        len -= n;
        off += n;
        if (len == 0 && suf_len > 0)
            iov[k++] = (struct iovec){.iov_base = (void *)suf, .iov_len = suf_len};
        if (k > 0 && sendv_all(c, iov, k) == -1)
            return -1;
        pre_len = 0;
    } while (len > 0);
    return 0;
}

static enum after
h_bytes(struct conn *c, struct req *r)
{
    uint64_t n, chunk;
    const char *m;
    size_t mlen;
    enum frame f = F_LENGTH;

    if (param_u64(r, "n", -1, 0, UINT64_C(1) << 50, &n) == -1 ||
        param_u64(r, "chunk", 8192, 1, UINT64_C(1) << 40, &chunk) == -1)
        return respond_error(c, r, 400);
    if (param(r, "mode", &m, &mlen)) {
        if (slice_ieq(m, mlen, "chunked"))
            f = r->v10 ? F_CLOSE : F_CHUNKED;
        else if (slice_ieq(m, mlen, "close"))
            f = F_CLOSE;
        else if (!slice_ieq(m, mlen, "length"))
            return respond_error(c, r, 400);
    }
    if (body_drain(c, r) == -1)
        return respond_error(c, r, 400);
    if (send_head(c, r, 200, f, n, "application/octet-stream") == -1)
        return H_ABORT;
    if (r->is_head)
        return H_OK;
    if (f != F_CHUNKED)
        return send_pattern(c, 0, n, NULL, 0, NULL, 0) == -1 ? H_ABORT : H_OK;
    for (uint64_t off = 0; off < n; off += chunk) {
        uint64_t k = n - off < chunk ? n - off : chunk;
        char hdr[24];
        int hl = snprintf(hdr, sizeof(hdr), "%" PRIx64 "\r\n", k);
        if (send_pattern(c, off, k, hdr, (size_t)hl, "\r\n", 2) == -1)
            return H_ABORT;
    }
    return body_end(c, f) == -1 ? H_ABORT : H_OK;
}

static enum after
h_delay(struct conn *c, struct req *r)
{
    uint64_t ms;

    if (param_u64(r, "ms", 0, 0, MS_MAX, &ms) == -1 || body_drain(c, r) == -1)
        return respond_error(c, r, 400);
    sleep_ms(ms);
    return respond_text(c, r, 200, "delayed\n");
}

static enum after
h_slowbody(struct conn *c, struct req *r)
{
    static const char body[] = "slowbody part 1\nslowbody part 2\n";
    const size_t half = (sizeof(body) - 1) / 2;
    uint64_t ms, n;

    if (param_u64(r, "ms", 0, 0, MS_MAX, &ms) == -1 ||
        param_u64(r, "n", 0, 0, UINT64_C(1) << 40, &n) == -1 || body_drain(c, r) == -1)
        return respond_error(c, r, 400);
    if (n > 0) {
        if (send_head(c, r, 200, F_LENGTH, n, "application/octet-stream") == -1)
            return H_ABORT;
        if (r->is_head)
            return H_OK;
        if (send_pattern(c, 0, n / 2, NULL, 0, NULL, 0) == -1)
            return H_ABORT;
        sleep_ms(ms);
        return send_pattern(c, n / 2, n - n / 2, NULL, 0, NULL, 0) == -1 ? H_ABORT : H_OK;
    }
    if (send_head(c, r, 200, F_LENGTH, sizeof(body) - 1, "text/plain") == -1)
        return H_ABORT;
    if (r->is_head)
        return H_OK;
    if (send_all(c, body, half) == -1) /* TCP_NODELAY: the half goes out now */
        return H_ABORT;
    sleep_ms(ms);
    return send_all(c, body + half, sizeof(body) - 1 - half) == -1 ? H_ABORT : H_OK;
}

static enum after
h_hang(struct conn *c, struct req *r)
{
    char sink[4096];

    if (body_drain(c, r) == -1)
        return H_ABORT;
    for (;;) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (poll(&pfd, 1, -1) == -1) {
            if (errno == EINTR)
                continue;
            return H_ABORT;
        }
        ssize_t n = conn_recv(c, sink, sizeof(sink));
        if (n == 0 || (n == -1 && errno != EINTR && errno != EAGAIN))
            return H_ABORT;
    }
}

static enum after
h_close(struct conn *c, struct req *r)
{
    body_drain(c, r);
    return H_ABORT; /* a plain close: FIN, or RST if the peer sent more than the request */
}

static enum after
h_reset(struct conn *c, struct req *r)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    if (body_drain(c, r) == -1)
        return H_ABORT;
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(c->fd);
    return H_GONE;
}

static enum after
h_garbage(struct conn *c, struct req *r)
{
    static const struct {
        const char *what, *bytes;
    } kinds[] = {
        {"status", "HTTP/1.1 2OO OK\r\n\r\n"},
        {"header", "HTTP/1.1 200 OK\r\nX-A: 1\r\nX-B : 2\r\nContent-Length: 0\r\n\r\n"},
        {"chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nzz\r\n"},
    };
    const char *bad = kinds[0].bytes, *w;
    size_t wlen;

    if (param(r, "what", &w, &wlen))
        for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
            if (wlen == strlen(kinds[i].what) && memcmp(w, kinds[i].what, wlen) == 0)
                bad = kinds[i].bytes;
    if (body_drain(c, r) == -1 || send_all(c, bad, strlen(bad)) == -1)
        return H_ABORT;
    r->close = 1;
    return H_OK;
}

static enum after
h_status(struct conn *c, struct req *r)
{
    uint64_t code;
    char body[32];

    if (param_u64(r, "code", -1, 200, 599, &code) == -1 || body_drain(c, r) == -1)
        return respond_error(c, r, 400);
    snprintf(body, sizeof(body), "status %d\n", (int)code);
    return respond_text(c, r, (int)code, body);
}

static enum after
h_stats(struct conn *c, struct req *r)
{
    char body[96];

    if (body_drain(c, r) == -1)
        return respond_error(c, r, 400);
    snprintf(body, sizeof(body), "connections=%" PRIuFAST64 " requests=%" PRIuFAST64 "\n",
             atomic_load(&g_conns), atomic_load(&g_reqs));
    return respond_text(c, r, 200, body);
}

static enum after
h_tls(struct conn *c, struct req *r)
{
    char body[320];

    if (body_drain(c, r) == -1)
        return respond_error(c, r, 400);
    if (c->ssl == NULL) {
        snprintf(body, sizeof(body), "tls=0\n");
    } else {
        const char *sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
        snprintf(body, sizeof(body), "tls=1 resumed=%d sni=%.255s\n", SSL_session_reused(c->ssl),
                 sni != NULL ? sni : "-");
    }
    return respond_text(c, r, 200, body);
}

static enum after
h_hello(struct conn *c, struct req *r)
{
    char body[NAME_MAX_LEN + 32];

    if (body_drain(c, r) == -1)
        return respond_error(c, r, 400);
    if (g_hello_delay_ms > 0)
        sleep_ms(g_hello_delay_ms);
    snprintf(body, sizeof(body), "hello from %s\n", g_name);
    return respond_text(c, r, 200, body);
}

/* ---- WebSocket -------------------------------------------------------- */

/* The value of header <name> in the current head, as a slice; 0 when absent. */
static int
head_value(const struct conn *c, const struct req *r, const char *name, const char **v,
           size_t *vlen)
{
    const char *p = c->in, *end = c->in + r->head_len;
    size_t nlen = strlen(name);

    p = memchr(p, '\n', (size_t)(end - p)); /* past the request line */
    while (p != NULL && ++p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            break;
        if ((size_t)(nl - p) > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            const char *b = p + nlen + 1, *e = nl;
            while (b < e && (*b == ' ' || *b == '\t'))
                b++;
            while (e > b && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            *v = b;
            *vlen = (size_t)(e - b);
            return 1;
        }
        p = nl;
    }
    return 0;
}

/* True when the comma list <v>[0..<len>) has <tok> (case-insensitive). */
static int
list_has(const char *v, size_t len, const char *tok)
{
    size_t tl = strlen(tok);

    for (size_t i = 0; i + tl <= len; i++)
        if (strncasecmp(v + i, tok, tl) == 0 && (i == 0 || v[i - 1] == ',' || v[i - 1] == ' ') &&
            (i + tl == len || v[i + tl] == ',' || v[i + tl] == ' '))
            return 1;
    return 0;
}

/* Reads exactly <len> bytes of the connection (buffered ones first). Returns 0 or -1. */
static int
ws_read(struct conn *c, void *dst, size_t len)
{
    char *d = dst;

    while (len > 0) {
        if (c->pos < c->len) {
            size_t n = c->len - c->pos < len ? c->len - c->pos : len;
            memcpy(d, c->in + c->pos, n);
            c->pos += n;
            d += n;
            len -= n;
            continue;
        }
        ssize_t n = conn_recv(c, d, len);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        d += n;
        len -= (size_t)n;
    }
    return 0;
}

static void linger_close(int fd);

/* Echoes frames until a close or the end of the connection. */
static enum after
ws_echo(struct conn *c)
{
    static _Thread_local unsigned char buf[PIECE];

    for (;;) {
        unsigned char hb[14];
        struct ws_head h;
        size_t have = 2, hl;
        if (ws_read(c, hb, 2) == -1)
            return H_ABORT;
        while ((hl = ws_head_get(hb, have, &h)) == 0) {
            size_t want = ((hb[1] & 0x7f) == 126   ? 4
                           : (hb[1] & 0x7f) == 127 ? 10
                                                   : 2) +
                          ((hb[1] & 0x80) ? 4 : 0);
            if (ws_read(c, hb + have, want - have) == -1)
                return H_ABORT;
            have = want;
        }
        if (!h.masked)
            return H_ABORT; /* a client's frames are masked (RFC 6455 5.1) */
        struct ws_head out = {.fin = h.fin, .opcode = h.opcode, .len = h.len};
        if (h.opcode == WS_PING)
            out.opcode = WS_PONG;
        if (h.opcode == WS_PONG) {
            /* an unsolicited pong: read and drop */
            if (h.len > sizeof(buf) || ws_read(c, buf, (size_t)h.len) == -1)
                return H_ABORT;
            continue;
        }
        size_t ol = ws_head_put(&out, hb);
        if (send_all(c, hb, ol) == -1)
            return H_ABORT;
        for (uint64_t off = 0; off < h.len;) {
            size_t n = h.len - off < sizeof(buf) ? (size_t)(h.len - off) : sizeof(buf);
            if (ws_read(c, buf, n) == -1)
                return H_ABORT;
            ws_unmask(buf, n, h.mask, off);
            if (send_all(c, buf, n) == -1)
                return H_ABORT;
            off += n;
        }
        if (h.opcode == WS_CLOSE) {
            if (c->ssl != NULL)
                SSL_shutdown(c->ssl);
            linger_close(c->fd);
            return H_GONE;
        }
    }
}

static enum after
h_ws(struct conn *c, struct req *r)
{
    const char *v, *key;
    size_t vlen, klen;
    char accept[29], head[512], body[128];

    if (body_drain(c, r) == -1)
        return H_ABORT;
    int up = head_value(c, r, "upgrade", &v, &vlen);
    if (!up || !list_has(v, vlen, "websocket") || !head_value(c, r, "connection", &v, &vlen) ||
        !list_has(v, vlen, "upgrade") || !head_value(c, r, "sec-websocket-key", &key, &klen)) {
        if (up && head_value(c, r, "upgrade", &v, &vlen))
            snprintf(body, sizeof(body), "upgrade=%.*s\n", (int)(vlen < 64 ? vlen : 64), v);
        else
            snprintf(body, sizeof(body), "upgrade=\n");
        return respond_text(c, r, 426, body);
    }
    ws_accept_key(key, klen, accept);
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nX-Upstream: %s\r\n\r\n",
                     accept, g_name);
    if (param(r, "hello", &v, &vlen) && vlen == 1 && v[0] == '1') {
        struct ws_head h = {.fin = 1, .opcode = WS_TEXT, .len = 5};
        n += (int)ws_head_put(&h, (unsigned char *)head + n);
        memcpy(head + n, "hello", 5);
        n += 5;
    }
    if (send_all(c, head, (size_t)n) == -1)
        return H_ABORT;
    return ws_echo(c);
}

static enum after
h_upgrade101(struct conn *c, struct req *r)
{
    static const char h101[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\n\r\n";

    if (body_drain(c, r) == -1 || send_all(c, h101, sizeof(h101) - 1) == -1)
        return H_ABORT;
    r->close = 1;
    return H_OK;
}

static enum after
dispatch(struct conn *c, struct req *r)
{
    static const struct {
        const char *path;
        enum after (*fn)(struct conn *, struct req *);
    } routes[] = {
        {"/health", h_health}, {"/sethealth", h_sethealth},
        {"/echo", h_echo},     {"/headers", h_headers},
        {"/sum", h_sum},       {"/bytes", h_bytes},
        {"/delay", h_delay},   {"/slowbody", h_slowbody},
        {"/hang", h_hang},     {"/close", h_close},
        {"/reset", h_reset},   {"/garbage", h_garbage},
        {"/status", h_status}, {"/stats", h_stats},
        {"/ws", h_ws},         {"/upgrade101", h_upgrade101},
        {"/tls", h_tls},
    };

    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (path_is(r, routes[i].path))
            return routes[i].fn(c, r);
    return h_hello(c, r);
}

/* ---- connections ----------------------------------------------------- */

/*
 * Closes after a complete response: FIN first, then reads what the peer still
 * sends for up to LINGER_MS, so unread input cannot turn our close into an RST
 * that destroys the response before the peer read it.
 */
static void
linger_close(int fd)
{
    char sink[4096];
    int64_t deadline = now_ms() + LINGER_MS;

    shutdown(fd, SHUT_WR);
    for (;;) {
        int64_t left = deadline - now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            break;
        if (recv(fd, sink, sizeof(sink), 0) <= 0)
            break;
    }
    close(fd);
}

static void *
conn_main(void *arg)
{
    struct conn *c = arg;
    struct req r;
    enum after a = H_ABORT;

    if (g_tls != NULL) {
        c->ssl = SSL_new(g_tls);
        if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_accept(c->ssl) != 1) {
            /* a client that refused our certificate, or not TLS at all */
            ERR_clear_error();
            SSL_free(c->ssl);
            close(c->fd);
            free(c);
            return NULL;
        }
    }
    for (;;) {
        int st = read_request(c, &r);
        if (st == 0 || st == -1) {
            a = H_ABORT;
            break;
        }
        if (st != 1) {
            memset(&r, 0, sizeof(r));
            a = respond_error(c, &r, st);
            break;
        }
        atomic_fetch_add(&g_reqs, 1);
        a = dispatch(c, &r);
        if (a != H_OK || r.close)
            break;
    }
    if (a == H_OK) {
        if (c->ssl != NULL)
            SSL_shutdown(c->ssl); /* close_notify, then the plain linger */
        linger_close(c->fd);
    } else if (a == H_ABORT) {
        close(c->fd);
    }
    SSL_free(c->ssl);
    ERR_clear_error();
    free(c);
    return NULL;
}

static int
listen_on(const char *addr, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *res;
    int fd = -1, one = 1, rc;

    rc = getaddrinfo(addr, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "testapp: address %s port %s: %s\n", addr, port, gai_strerror(rc));
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        fprintf(stderr, "testapp: socket: %s\n", strerror(errno));
        goto fail;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) == -1 || listen(fd, 1024) == -1) {
        fprintf(stderr, "testapp: bind/listen %s:%s: %s\n", addr, port, strerror(errno));
        close(fd);
        fd = -1;
    }
fail:
    freeaddrinfo(res);
    return fd;
}

static unsigned
bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == -1)
        return 0;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void
usage(void)
{
    fprintf(stderr, "usage: testapp [-l ADDR] [-p PORT] [-n NAME] [-d MS] [--tls CERT KEY]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    const char *addr = "127.0.0.1", *port = "0";
    struct sigaction sa = {.sa_handler = SIG_IGN};
    sigset_t set;
    pthread_attr_t attr;
    int lfd, opt;

    static const struct option longopts[] = {{"tls", required_argument, NULL, 'T'}, {0}};
    const char *cert = NULL, *key = NULL;
    while ((opt = getopt_long(argc, argv, "l:p:n:d:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'T':
            if (optind >= argc)
                usage();
            cert = optarg;
            key = argv[optind++];
            break;
        case 'l':
            addr = optarg;
            break;
        case 'p':
            port = optarg;
            break;
        case 'n':
            g_name = optarg;
            break;
        case 'd':
            if (parse_u64(optarg, strlen(optarg), MS_MAX, &g_hello_delay_ms) == -1)
                usage();
            break;
        default:
            usage();
        }
    }
    uint64_t port_num;
    if (parse_u64(port, strlen(port), 65535, &port_num) == -1) {
        fprintf(stderr, "testapp: bad port %s\n", port);
        usage();
    }
    if (optind != argc || strlen(g_name) > NAME_MAX_LEN || strpbrk(g_name, "\r\n") != NULL)
        usage();

    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);

    if (cert != NULL) {
        g_tls = SSL_CTX_new(TLS_server_method());
        if (g_tls == NULL || SSL_CTX_use_certificate_chain_file(g_tls, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(g_tls, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(g_tls) != 1) {
            fprintf(stderr, "testapp: --tls %s %s: %s\n", cert, key,
                    ERR_reason_error_string(ERR_get_error()));
            return 1;
        }
        SSL_CTX_set_min_proto_version(g_tls, TLS1_2_VERSION);
    }
    tp_fill(g_pattern, 0, sizeof(g_pattern));
    lfd = listen_on(addr, port);
    if (lfd == -1)
        return 1;
    printf("PORT %u\n", bound_port(lfd));
    fflush(stdout);

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, THREAD_STACK);
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), one = 1;
        if (fd == -1) {
            if (errno != EINTR && errno != ECONNABORTED) {
                fprintf(stderr, "testapp: accept: %s\n", strerror(errno));
                sleep_ms(10); /* EMFILE and friends: do not spin */
            }
            continue;
        }
        atomic_fetch_add(&g_conns, 1);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct conn *c = malloc(sizeof(*c));
        pthread_t t;
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->pos = c->len = c->base = 0;
        c->ssl = NULL;
        int rc = pthread_create(&t, &attr, conn_main, c);
        if (rc != 0) {
            fprintf(stderr, "testapp: pthread_create: %s\n", strerror(rc));
            close(fd);
            free(c);
            sleep_ms(10);
        }
    }
}
