/*
 * Unit tests for the pure head-rewriting functions of src/rewrite.c (Check).
 * Inputs come from the real parser on literal heads; outputs are compared
 * as text. Two tables, one per direction; every case of each table is also
 * run against every output size from 0 up past its exact length.
 */
#include "buf.h"
#include "http.h"
#include "rewrite.h"
#include "testlib.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define MAX_HEAD 16384
#define OUT_CAP 4096
#define GUARD 64 /* bytes past <cap> that must stay untouched */

static struct http_slice
slice(const char *s)
{
    return (struct http_slice){s, strlen(s)};
}

typedef ssize_t rewrite_fn(const void *ctx, char *out, size_t cap);

/*
 * Calls <fn> for every cap from 0 to <len> + 8 on a buffer pre-filled with
 * a sentinel: below <len> it must return -1, from <len> on exactly <len>,
 * and it must never write at or past cap.
 */
static void
check_caps(const char *name, size_t len, rewrite_fn *fn, const void *ctx)
{
    static char out[OUT_CAP + GUARD];

    ck_assert_uint_lt(len + 8, OUT_CAP);
    for (size_t cap = 0; cap <= len + 8; cap++) {
        memset(out, 0x5a, sizeof(out));
        ssize_t r = fn(ctx, out, cap);
        ssize_t want = cap < len ? -1 : (ssize_t)len;
        ck_assert_msg(r == want, "%s: cap %zu: returned %zd, want %zd", name, cap, r, want);
        for (size_t k = cap; k < cap + GUARD; k++)
            ck_assert_msg(out[k] == 0x5a, "%s: cap %zu: byte %zu written", name, cap, k);
    }
}

/* ---- requests --------------------------------------------------------------------------- */

/* What each case's rewrite gets; NULL / 0 fields take the defaults in run_request(). */
struct req_case {
    const char *name;
    const char *head;
    const char *target;        /* NULL: the request's own target */
    const char *host;          /* NULL: the request's Host ("" when it has none) */
    const char *upstream_host; /* NULL: "127.0.0.1:3001" */
    bool preserve_host;
    const char *client_ip; /* NULL: "10.0.0.1" */
    const char *proto;     /* NULL: "http" */
    enum http_framing framing;
    uint64_t content_length;
    bool upstream_close;
    bool drop_underscores;
    bool websocket;
    const char *want;
};

/* The usual beginning and end of an expected head. */
#define RL "GET /p HTTP/1.1\r\nHost: 127.0.0.1:3001\r\n"
#define XFF "X-Forwarded-For: 10.0.0.1\r\n"
#define XPH "X-Forwarded-Proto: http\r\nX-Forwarded-Host: client.example\r\n"
#define XF XFF XPH
#define H11 "GET /p HTTP/1.1\r\nHost: client.example\r\n"

static const struct req_case req_cases[] = {
    {"plain GET", H11 "\r\n", .want = RL XF "\r\n"},
    {"Host replaced by upstream_host", H11 "\r\n", .upstream_host = "10.1.2.3:8080",
     .want = "GET /p HTTP/1.1\r\nHost: 10.1.2.3:8080\r\n" XF "\r\n"},
    {"Host anywhere, any case",
     "GET /p HTTP/1.1\r\nUser-Agent: t\r\nhOsT: client.example\r\n"
     "Accept: */*\r\n\r\n",
     .want = RL "User-Agent: t\r\nAccept: */*\r\n" XF "\r\n"},
    {"preserve_host keeps the client's host", H11 "\r\n", .preserve_host = true,
     .want = H11 XF "\r\n"},
    {"preserve_host without a client host", "GET /p HTTP/1.0\r\n\r\n", .preserve_host = true,
     .want = RL XFF "X-Forwarded-Proto: http\r\n\r\n"},
    {"HTTP/1.0 without Host: request line 1.1, no X-Forwarded-Host", "GET /p HTTP/1.0\r\n\r\n",
     .want = RL XFF "X-Forwarded-Proto: http\r\n\r\n"},
    {"HTTP/1.0 keep-alive client",
     "GET /p HTTP/1.0\r\nHost: client.example\r\n"
     "Connection: keep-alive\r\n\r\n",
     .want = RL XF "\r\n"},
    {"other method, target kept", "DELETE /a/b?c=d&e HTTP/1.1\r\nHost: client.example\r\n\r\n",
     .want = "DELETE /a/b?c=d&e HTTP/1.1\r\nHost: 127.0.0.1:3001\r\n" XF "\r\n"},
    {"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: client.example\r\n\r\n",
     .want = "OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1:3001\r\n" XF "\r\n"},
    {"rw.target and rw.host from absolute-form",
     "GET http://client.example/q?x=1 HTTP/1.1\r\nHost: ignored.example\r\n\r\n",
     .target = "/q?x=1", .host = "client.example",
     .want = "GET /q?x=1 HTTP/1.1\r\nHost: 127.0.0.1:3001\r\n" XF "\r\n"},
    {"rw.host preserved from absolute-form",
     "GET http://client.example/q HTTP/1.1\r\nHost: ignored.example\r\n\r\n", .target = "/q",
     .host = "client.example", .preserve_host = true,
     .want = "GET /q HTTP/1.1\r\nHost: client.example\r\n" XF "\r\n"},
    {"other headers kept in order, case and inner spaces",
     H11 "X-Custom-HEADER:   a  b  \r\naccept: */*\r\nCookie: x=1\r\ncookie: y=2\r\n\r\n",
     .want =
         RL "X-Custom-HEADER: a  b\r\naccept: */*\r\nCookie: x=1\r\ncookie: y=2\r\n" XF "\r\n"},
    {"client ip and proto", H11 "\r\n", .client_ip = "2001:db8::1", .proto = "https",
     .want = RL "X-Forwarded-For: 2001:db8::1\r\nX-Forwarded-Proto: https\r\n"
                "X-Forwarded-Host: client.example\r\n\r\n"},

    /* X-Forwarded-For */
    {"X-Forwarded-For appended to", H11 "A: 1\r\nX-Forwarded-For: 1.1.1.1\r\nB: 2\r\n\r\n",
     .want = RL "A: 1\r\nX-Forwarded-For: 1.1.1.1, 10.0.0.1\r\nB: 2\r\n" XPH "\r\n"},
    {"several X-Forwarded-For joined",
     H11 "X-Forwarded-For: 1.1.1.1, 2.2.2.2\r\nA: 1\r\nx-forwarded-for: 3.3.3.3\r\n\r\n",
     .want = RL "X-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.1\r\nA: 1\r\n" XPH "\r\n"},
    {"empty X-Forwarded-For", H11 "X-Forwarded-For:\r\n\r\n", .want = RL XF "\r\n"},
    {"empty X-Forwarded-For among others",
     H11 "X-Forwarded-For: \r\nX-Forwarded-For: 1.1.1.1\r\n\r\n",
     .want = RL "X-Forwarded-For: 1.1.1.1, 10.0.0.1\r\n" XPH "\r\n"},

    /* X-Forwarded-Proto / -Host: ours replace the client's */
    {"client X-Forwarded-Proto/-Host replaced",
     H11 "X-Forwarded-Proto: https\r\nA: 1\r\nX-Forwarded-Host: evil.example\r\n"
         "x-forwarded-host: evil2.example\r\nX-FORWARDED-PROTO: ftp\r\n\r\n",
     .want = RL "A: 1\r\n" XF "\r\n"},
    {"client X-Forwarded-Host dropped when we have none",
     "GET /p HTTP/1.0\r\nX-Forwarded-Host: evil.example\r\n\r\n",
     .want = RL XFF "X-Forwarded-Proto: http\r\n\r\n"},

    /* hop-by-hop */
    {"Connection and the fields it names",
     H11 "Connection: close, X-Foo\r\nX-Foo: 1\r\nX-Foobar: 2\r\nx-foo: 3\r\n\r\n",
     .want = RL "X-Foobar: 2\r\n" XF "\r\n"},
    {"several Connection fields, any case",
     H11 "Connection: keep-alive\r\nX-A: 1\r\nconnection: X-B , x-c\r\nX-B: 2\r\nX-C: 3\r\n"
         "X-D: 4\r\n\r\n",
     .want = RL "X-A: 1\r\nX-D: 4\r\n" XF "\r\n"},
    {"fixed hop-by-hop fields",
     H11 "Keep-Alive: timeout=5\r\nA: 1\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n"
         "Trailer: X-Sum\r\nUpgrade: websocket\r\nB: 2\r\n\r\n",
     .want = RL "A: 1\r\nB: 2\r\n" XF "\r\n"},

    /* body framing comes from rw, never from the client's fields */
    {"Content-Length re-derived",
     "POST /p HTTP/1.1\r\nHost: client.example\r\n"
     "Content-Length: 5\r\nA: 1\r\n\r\n",
     .framing = HTTP_BODY_LENGTH, .content_length = 5,
     .want =
         "POST /p HTTP/1.1\r\nHost: 127.0.0.1:3001\r\nA: 1\r\n" XF "Content-Length: 5\r\n\r\n"},
    {"Content-Length list normalised",
     "POST /p HTTP/1.1\r\nHost: client.example\r\n"
     "Content-Length: 5, 5\r\ncontent-length: 5\r\n\r\n",
     .framing = HTTP_BODY_LENGTH, .content_length = 5,
     .want = "POST /p HTTP/1.1\r\nHost: 127.0.0.1:3001\r\n" XF "Content-Length: 5\r\n\r\n"},
    {"large Content-Length",
     "PUT /p HTTP/1.1\r\nHost: client.example\r\n"
     "Content-Length: 4611686018427387904\r\n\r\n",
     .framing = HTTP_BODY_LENGTH, .content_length = UINT64_C(1) << 62,
     .want = "PUT /p HTTP/1.1\r\nHost: 127.0.0.1:3001\r\n" XF
             "Content-Length: 4611686018427387904\r\n\r\n"},
    {"chunked: one Transfer-Encoding, ours",
     "POST /p HTTP/1.1\r\nHost: client.example\r\nTransfer-Encoding: chunked\r\nA: 1\r\n\r\n",
     .framing = HTTP_BODY_CHUNKED,
     .want = "POST /p HTTP/1.1\r\nHost: 127.0.0.1:3001\r\nA: 1\r\n" XF
             "Transfer-Encoding: chunked\r\n\r\n"},
    {"chunked request sent with a length",
     "POST /p HTTP/1.1\r\nHost: client.example\r\nTransfer-Encoding: chunked\r\n\r\n",
     .framing = HTTP_BODY_LENGTH, .content_length = 42,
     .want = "POST /p HTTP/1.1\r\nHost: 127.0.0.1:3001\r\n" XF "Content-Length: 42\r\n\r\n"},
    {"framing NONE: neither field",
     "POST /p HTTP/1.1\r\nHost: client.example\r\nContent-Length: 0\r\n\r\n",
     .framing = HTTP_BODY_NONE, .want = "POST /p HTTP/1.1\r\nHost: 127.0.0.1:3001\r\n" XF "\r\n"},
    {"Expect removed",
     "POST /p HTTP/1.1\r\nHost: client.example\r\nExpect: 100-continue\r\n"
     "Content-Length: 3\r\n\r\n",
     .framing = HTTP_BODY_LENGTH, .content_length = 3,
     .want = "POST /p HTTP/1.1\r\nHost: 127.0.0.1:3001\r\n" XF "Content-Length: 3\r\n\r\n"},

    /* Connection towards the upstream */
    {"upstream_close", H11 "Connection: keep-alive\r\n\r\n", .upstream_close = true,
     .want = RL XF "Connection: close\r\n\r\n"},
    {"upstream_close after the framing",
     "POST /p HTTP/1.1\r\nHost: client.example\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
     .framing = HTTP_BODY_LENGTH, .content_length = 1, .upstream_close = true,
     .want = "POST /p HTTP/1.1\r\nHost: 127.0.0.1:3001\r\n" XF
             "Content-Length: 1\r\nConnection: close\r\n\r\n"},

    /* underscores_in_headers */
    {"underscores dropped",
     "POST /p HTTP/1.1\r\nHost: client.example\r\nContent-Length: 1\r\n"
     "Transfer_Encoding: chunked\r\nContent_Length: 9\r\nX_A: 1\r\nX-B: 2\r\n_: 3\r\n\r\n",
     .framing = HTTP_BODY_LENGTH, .content_length = 1, .drop_underscores = true,
     .want =
         "POST /p HTTP/1.1\r\nHost: 127.0.0.1:3001\r\nX-B: 2\r\n" XF "Content-Length: 1\r\n\r\n"},
    {"underscores kept without drop_underscores", H11 "X_A: 1\r\n\r\n",
     .want = RL "X_A: 1\r\n" XF "\r\n"},

    /* WebSocket: the two hop-by-hop fields kept, in our spelling; the key goes end to end */
    {"websocket handshake",
     H11 "Connection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\nSec-WebSocket-Key: k\r\n"
         "Sec-WebSocket-Version: 13\r\n\r\n",
     .websocket = true, .upstream_close = true,
     .want = RL "Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n" XF
                "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n"},
    {"h2c upgrade dropped",
     H11 "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQ\r\n"
         "\r\n",
     .want = RL XF "\r\n"},
};

/* Parses case <c> into <req> and fills <rw> from it and the defaults. */
static void
prepare_request(const struct req_case *c, struct http_request *req, struct rewrite_req *rw)
{
    int status = 0;
    int n = http_parse_request(c->head, strlen(c->head), MAX_HEAD, req, &status);

    ck_assert_msg(n == (int)strlen(c->head), "%s: parse returned %d (status %d)", c->name, n,
                  status);
    *rw = (struct rewrite_req){
        .target = c->target != NULL ? slice(c->target) : req->target,
        .host = c->host != NULL ? slice(c->host) : req->host,
        .upstream_host = c->upstream_host != NULL ? c->upstream_host : "127.0.0.1:3001",
        .preserve_host = c->preserve_host,
        .client_ip = c->client_ip != NULL ? c->client_ip : "10.0.0.1",
        .proto = c->proto != NULL ? c->proto : "http",
        .framing = c->framing,
        .content_length = c->content_length,
        .upstream_close = c->upstream_close,
        .drop_underscores = c->drop_underscores,
        .websocket = c->websocket,
    };
}

START_TEST(test_request)
{
    const struct req_case *c = &req_cases[_i];
    static struct http_request req;
    struct rewrite_req rw;
    char out[OUT_CAP];

    prepare_request(c, &req, &rw);
    ssize_t n = rewrite_request(&req, &rw, out, sizeof(out));
    ck_assert_msg(n >= 0, "%s: returned %zd", c->name, n);
    ck_assert_msg((size_t)n == strlen(c->want) && memcmp(out, c->want, (size_t)n) == 0,
                  "%s:\n--- got ---\n%.*s--- want ---\n%s", c->name, (int)n, out, c->want);
}
END_TEST

struct req_ctx {
    const struct http_request *req;
    const struct rewrite_req *rw;
};

static ssize_t
rewrite_req(const void *ctx, char *out, size_t cap)
{
    const struct req_ctx *x = ctx;
    return rewrite_request(x->req, x->rw, out, cap);
}

START_TEST(test_request_caps)
{
    const struct req_case *c = &req_cases[_i];
    static struct http_request req;
    struct rewrite_req rw;

    prepare_request(c, &req, &rw);
    struct req_ctx ctx = {&req, &rw};
    check_caps(c->name, strlen(c->want), rewrite_req, &ctx);
}
END_TEST

/* ---- responses -------------------------------------------------------------------------- */

struct resp_case {
    const char *name;
    const char *head;
    bool head_request;
    enum rewrite_framing framing;
    bool keep_alive;
    int client_minor;
    const char *want;
};

#define CL2 "Content-Length: 2\r\n"

static const struct resp_case resp_cases[] = {
    {"plain 200", "HTTP/1.1 200 OK\r\n" CL2 "\r\n", false, REWRITE_AS_IS, true, 1,
     "HTTP/1.1 200 OK\r\n" CL2 "\r\n"},
    {"HTTP/1.0 upstream: status line in 1.1", "HTTP/1.0 200 OK\r\n" CL2 "\r\n", false,
     REWRITE_AS_IS, true, 1, "HTTP/1.1 200 OK\r\n" CL2 "\r\n"},
    {"upstream's reason kept", "HTTP/1.1 404 Nothing Here, Sorry\r\n" CL2 "\r\n", false,
     REWRITE_AS_IS, true, 1, "HTTP/1.1 404 Nothing Here, Sorry\r\n" CL2 "\r\n"},
    {"empty reason: the standard one", "HTTP/1.1 404 \r\n" CL2 "\r\n", false, REWRITE_AS_IS, true,
     1, "HTTP/1.1 404 Not Found\r\n" CL2 "\r\n"},
    {"no reason, no SP: the standard one", "HTTP/1.1 503\r\n" CL2 "\r\n", false, REWRITE_AS_IS,
     true, 1, "HTTP/1.1 503 Service Unavailable\r\n" CL2 "\r\n"},
    {"empty reason, unknown code", "HTTP/1.1 299 \r\n" CL2 "\r\n", false, REWRITE_AS_IS, true, 1,
     "HTTP/1.1 299 Unknown\r\n" CL2 "\r\n"},
    {"headers kept in order with their case",
     "HTTP/1.1 200 OK\r\nset-cookie: a=1\r\nX-Custom-HEADER:  v  w \r\nSet-Cookie: b=2\r\n" CL2
     "\r\n",
     false, REWRITE_AS_IS, true, 1,
     "HTTP/1.1 200 OK\r\nset-cookie: a=1\r\nX-Custom-HEADER: v  w\r\nSet-Cookie: b=2\r\n" CL2
     "\r\n"},
    {"hop-by-hop removed",
     "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Foo\r\nKeep-Alive: timeout=5\r\nA: 1\r\n"
     "X-Foo: 1\r\nX-Foobar: 2\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n"
     "Trailer: X-Sum\r\nUpgrade: h2c\r\n" CL2 "\r\n",
     false, REWRITE_AS_IS, true, 1, "HTTP/1.1 200 OK\r\nA: 1\r\nX-Foobar: 2\r\n" CL2 "\r\n"},
    {"chunked upstream re-chunked",
     "HTTP/1.1 200 OK\r\nA: 1\r\nTransfer-Encoding: chunked\r\nB: 2\r\n\r\n", false,
     REWRITE_CHUNKED, true, 1,
     "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nTransfer-Encoding: chunked\r\n\r\n"},
    {"CHUNKED drops Content-Length", "HTTP/1.1 200 OK\r\nA: 1\r\n" CL2 "B: 2\r\n\r\n", false,
     REWRITE_CHUNKED, true, 1,
     "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nTransfer-Encoding: chunked\r\n\r\n"},
    {"close-delimited body to a 1.0 client", "HTTP/1.1 200 OK\r\nA: 1\r\n\r\n", false,
     REWRITE_CLOSE, false, 0, "HTTP/1.1 200 OK\r\nA: 1\r\nConnection: close\r\n\r\n"},
    {"keep_alive false: Connection: close", "HTTP/1.1 200 OK\r\n" CL2 "\r\n", false, REWRITE_AS_IS,
     false, 1, "HTTP/1.1 200 OK\r\n" CL2 "Connection: close\r\n\r\n"},
    {"keep_alive false replaces the upstream's Connection",
     "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n" CL2 "\r\n", false, REWRITE_AS_IS, false, 1,
     "HTTP/1.1 200 OK\r\n" CL2 "Connection: close\r\n\r\n"},
    {"keep_alive with a 1.0 client", "HTTP/1.1 200 OK\r\n" CL2 "\r\n", false, REWRITE_AS_IS, true,
     0, "HTTP/1.1 200 OK\r\n" CL2 "Connection: keep-alive\r\n\r\n"},
    {"keep_alive with a 1.1 client: no Connection",
     "HTTP/1.1 200 OK\r\nConnection: close\r\n" CL2 "\r\n", false, REWRITE_AS_IS, true, 1,
     "HTTP/1.1 200 OK\r\n" CL2 "\r\n"},
    {"chunked and close", "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n", false,
     REWRITE_CHUNKED, false, 1,
     "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"},
    {"204", "HTTP/1.1 204 No Content\r\nA: 1\r\n\r\n", false, REWRITE_AS_IS, true, 1,
     "HTTP/1.1 204 No Content\r\nA: 1\r\n\r\n"},
    {"HEAD response keeps Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", true,
     REWRITE_AS_IS, true, 1, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"},
    {"101 opening a tunnel",
     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
     false, REWRITE_UPGRADE, false, 1,
     "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
     "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n"},
};

static void
prepare_response(const struct resp_case *c, struct http_response *resp)
{
    int status = 0;
    int n =
        http_parse_response(c->head, strlen(c->head), MAX_HEAD, c->head_request, resp, &status);

    ck_assert_msg(n == (int)strlen(c->head), "%s: parse returned %d (status %d)", c->name, n,
                  status);
}

START_TEST(test_response)
{
    const struct resp_case *c = &resp_cases[_i];
    static struct http_response resp;
    char out[OUT_CAP];

    prepare_response(c, &resp);
    ssize_t n =
        rewrite_response(&resp, c->framing, c->keep_alive, c->client_minor, out, sizeof(out));
    ck_assert_msg(n >= 0, "%s: returned %zd", c->name, n);
    ck_assert_msg((size_t)n == strlen(c->want) && memcmp(out, c->want, (size_t)n) == 0,
                  "%s:\n--- got ---\n%.*s--- want ---\n%s", c->name, (int)n, out, c->want);
}
END_TEST

struct resp_ctx {
    const struct http_response *resp;
    const struct resp_case *c;
};

static ssize_t
rewrite_resp(const void *ctx, char *out, size_t cap)
{
    const struct resp_ctx *x = ctx;
    return rewrite_response(x->resp, x->c->framing, x->c->keep_alive, x->c->client_minor, out,
                            cap);
}

START_TEST(test_response_caps)
{
    const struct resp_case *c = &resp_cases[_i];
    static struct http_response resp;

    prepare_response(c, &resp);
    struct resp_ctx ctx = {&resp, c};
    check_caps(c->name, strlen(c->want), rewrite_resp, &ctx);
}
END_TEST

/* ---- a head at the field limit ------------------------------------------------------------ */

/*
 * HTTP_MAX_HEADERS fields, X-Forwarded-For among them several times: the
 * output is longer than the input and every field but ours survives.
 */
START_TEST(test_request_many_fields)
{
    static char head[MAX_HEAD], want[MAX_HEAD], out[MAX_HEAD];
    static struct http_request req;
    size_t hl = 0, wl = 0;
    int status = 0;

    hl += (size_t)snprintf(head + hl, sizeof(head) - hl, "GET /p HTTP/1.1\r\nHost: h\r\n");
    wl += (size_t)snprintf(want + wl, sizeof(want) - wl,
                           "GET /p HTTP/1.1\r\nHost: 127.0.0.1:3001\r\n"
                           "X-Forwarded-For: 1.0.0.0, 1.0.0.10, 1.0.0.20, 1.0.0.30, 1.0.0.40, "
                           "1.0.0.50, 1.0.0.60, 1.0.0.70, 1.0.0.80, 1.0.0.90, 10.0.0.1\r\n");
    for (int i = 0; i < HTTP_MAX_HEADERS - 1; i++) {
        if (i % 10 == 0) {
            hl +=
                (size_t)snprintf(head + hl, sizeof(head) - hl, "X-Forwarded-For: 1.0.0.%d\r\n", i);
        } else {
            hl += (size_t)snprintf(head + hl, sizeof(head) - hl, "X-F%d: v%d\r\n", i, i);
            wl += (size_t)snprintf(want + wl, sizeof(want) - wl, "X-F%d: v%d\r\n", i, i);
        }
    }
    hl += (size_t)snprintf(head + hl, sizeof(head) - hl, "\r\n");
    wl += (size_t)snprintf(want + wl, sizeof(want) - wl,
                           "X-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n\r\n");

    int n = http_parse_request(head, hl, MAX_HEAD, &req, &status);
    ck_assert_int_eq(n, (int)hl);
    ck_assert_uint_eq(req.nheaders, HTTP_MAX_HEADERS);
    struct rewrite_req rw = {
        .target = req.target,
        .host = req.host,
        .upstream_host = "127.0.0.1:3001",
        .client_ip = "10.0.0.1",
        .proto = "http",
    };
    ssize_t r = rewrite_request(&req, &rw, out, sizeof(out));
    ck_assert_int_eq(r, (ssize_t)wl);
    ck_assert_msg(memcmp(out, want, wl) == 0, "got:\n%.*s\nwant:\n%s", (int)r, out, want);
    ck_assert_int_eq(rewrite_request(&req, &rw, out, wl - 1), -1);
}
END_TEST

/* TLS: the client's own X-Client-* go, ours (and https) come; the order of our fields. */
START_TEST(test_request_tls)
{
    static const char head[] = "GET /p HTTP/1.1\r\nHost: h\r\nX-Client-Verify: SUCCESS\r\n"
                               "x-client-subject: CN=forged\r\nA: 1\r\n\r\n";
    static const char want[] = "GET /p HTTP/1.1\r\nHost: 127.0.0.1:3001\r\nA: 1\r\n"
                               "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\n"
                               "X-Client-Verify: FAILED:certificate has expired\r\n"
                               "X-Client-Subject: CN=client,O=Test\r\n"
                               "X-Forwarded-Host: h\r\n\r\n";
    static struct http_request req;
    char out[1024];
    int status = 0;

    ck_assert_int_eq(http_parse_request(head, sizeof(head) - 1, MAX_HEAD, &req, &status),
                     (int)sizeof(head) - 1);
    struct rewrite_req rw = {
        .target = req.target,
        .host = req.host,
        .upstream_host = "127.0.0.1:3001",
        .client_ip = "10.0.0.1",
        .proto = "https",
        .client_verify = "FAILED:certificate has expired",
        .client_subject = "CN=client,O=Test",
    };
    ssize_t r = rewrite_request(&req, &rw, out, sizeof(out));
    ck_assert_int_eq(r, (ssize_t)sizeof(want) - 1);
    ck_assert_msg(memcmp(out, want, sizeof(want) - 1) == 0, "got:\n%.*s", (int)r, out);
    /* without client certificates: neither header, and still not the client's */
    rw.client_verify = rw.client_subject = NULL;
    r = rewrite_request(&req, &rw, out, sizeof(out));
    ck_assert_int_gt(r, 0);
    ck_assert_ptr_null(memmem(out, (size_t)r, "X-Client", 8));
    ck_assert_ptr_null(memmem(out, (size_t)r, "x-client", 8));
}
END_TEST

/* rewrite_add_line(): before the final empty line, or -1 when it does not fit. */
START_TEST(test_add_line)
{
    char head[64] = "HTTP/1.1 200 OK\r\nA: 1\r\n\r\n";
    size_t len = strlen(head);
    const char *line = "Strict-Transport-Security: max-age=5\r\n";

    ck_assert_int_eq(rewrite_add_line(head, len, len + strlen(line) - 1, line), -1);
    ck_assert_int_eq(rewrite_add_line(head, 3, sizeof(head), line), -1); /* no final CRLF */
    ssize_t n = rewrite_add_line(head, len, sizeof(head), line);
    ck_assert_int_eq(n, (ssize_t)(len + strlen(line)));
    ck_assert_int_eq(memcmp(head,
                            "HTTP/1.1 200 OK\r\nA: 1\r\nStrict-Transport-Security: "
                            "max-age=5\r\n\r\n",
                            (size_t)n),
                     0);
}
END_TEST

/* Which requests ask for a WebSocket tunnel. */
static const struct {
    const char *head;
    bool want;
} ws_cases[] = {
    {H11 "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n", true},
    {H11 "connection: keep-alive, upgrade\r\nupgrade: WEBSOCKET\r\n\r\n", true},
    {H11 "Connection: Upgrade\r\nUpgrade: foo, websocket\r\n\r\n", true},
    {H11 "Upgrade: websocket\r\n\r\n", false},                      /* Connection does not say */
    {H11 "Connection: Upgrade\r\n\r\n", false},                     /* no Upgrade */
    {H11 "Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n", false},     /* not WebSocket */
    {H11 "Connection: close\r\nUpgrade: websocket\r\n\r\n", false}, /* not named */
    {"GET /p HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", false},
    {"POST /p HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", false},
    {"GET /p HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
     "Content-Length: 2\r\n\r\n",
     false}, /* a handshake has no body */
};

START_TEST(test_is_websocket)
{
    static struct http_request req;
    int status = 0;
    const char *head = ws_cases[_i].head;

    ck_assert_int_eq(http_parse_request(head, strlen(head), MAX_HEAD, &req, &status),
                     (int)strlen(head));
    ck_assert_msg(rewrite_is_websocket(&req) == ws_cases[_i].want, "case %d: %s", _i, head);
}
END_TEST

/* The decimal writer behind status codes and lengths, against snprintf(). */
START_TEST(test_out_u64)
{
    static const uint64_t v[] = {0, 7, 9, 10, 99, 100, 101, 204, 599, 1000000, UINT64_MAX - 1,
                                 UINT64_MAX};
    for (size_t i = 0; i < NELEM(v); i++) {
        char buf[32], want[32];
        struct buf_out o = {.buf = buf, .cap = sizeof(buf)};
        buf_out_u64(&o, v[i]);
        ck_assert(!o.full);
        snprintf(want, sizeof(want), "%llu", (unsigned long long)v[i]);
        ck_assert_uint_eq(o.len, strlen(want));
        ck_assert(memcmp(buf, want, o.len) == 0);
    }
    /* no room: nothing written, full set */
    char small[2];
    struct buf_out o = {.buf = small, .cap = sizeof(small)};
    buf_out_u64(&o, 123);
    ck_assert(o.full);
    ck_assert_uint_eq(o.len, 0);
}
END_TEST

static Suite *
rewrite_suite(void)
{
    Suite *s = suite_create("rewrite");
    TCase *tq = tcase_create("request");
    TCase *tr = tcase_create("response");

    tcase_add_loop_test(tq, test_request, 0, (int)NELEM(req_cases));
    tcase_add_loop_test(tq, test_request_caps, 0, (int)NELEM(req_cases));
    tcase_add_test(tq, test_request_many_fields);
    tcase_add_test(tq, test_request_tls);
    tcase_add_test(tq, test_add_line);
    tcase_add_loop_test(tq, test_is_websocket, 0, (int)NELEM(ws_cases));
    suite_add_tcase(s, tq);

    tcase_add_loop_test(tr, test_response, 0, (int)NELEM(resp_cases));
    tcase_add_loop_test(tr, test_response_caps, 0, (int)NELEM(resp_cases));
    tcase_add_test(tr, test_out_u64);
    suite_add_tcase(s, tr);
    return s;
}

int
main(void)
{
    return tl_run(rewrite_suite());
}
