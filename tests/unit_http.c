/*
 * unit_http: the request/response head parsers and the chunked decoder.
 *
 * Every case is a table row, and every row is run three ways: whole, as
 * every strict prefix (the parser must say "need more" until the head is
 * complete, or give the same verdict as for the whole input once it can
 * tell), and placed against a PROT_NONE guard page so that reading one byte
 * past <len> crashes the test. Chunked bodies are also fed split at every
 * position and one byte at a time. Every rejection row names the reason
 * (and header line) the parser must give, for every way it is run.
 */
#include "http.h"
#include "testlib.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define S(lit) lit, sizeof(lit) - 1
#define DEF_MAX_HEAD 8192
#define GUARD_AREA (256 * 1024)

/* [guard_lo, guard_hi) is writable; guard_hi is the first byte of a PROT_NONE page. */
static char *guard_lo;
static char *guard_hi;

static void
guard_setup(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    size_t area = ((GUARD_AREA + (size_t)pg - 1) / (size_t)pg) * (size_t)pg;
    char *m =
        mmap(NULL, area + (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (m == MAP_FAILED || mprotect(m + area, (size_t)pg, PROT_NONE) == -1) {
        perror("unit_http: guard page");
        exit(2);
    }
    guard_lo = m;
    guard_hi = m + area;
}

/* Copies <s>[0..<n>) so that it ends right at the guard page. */
static char *
at_guard(const char *s, size_t n)
{
    ck_assert_uint_le(n, GUARD_AREA);
    memmove(guard_hi - n, s, n);
    return guard_hi - n;
}

/* ---- requests -------------------------------------------------------- */

struct req_bad {
    const char *name;
    const char *in;
    size_t len;
    size_t max_head; /* 0: DEF_MAX_HEAD */
    int status;
    const char *why; /* the reason the parser must give */
    unsigned line;   /* and the header line it must name (0: none) */
};

static const struct req_bad req_bad[] = {
    /* line endings */
    {"bare LF request line", S("GET / HTTP/1.1\nHost: a\n\n"), 0, 400, "bare LF", 0},
    {"bare LF header", S("GET / HTTP/1.1\r\nHost: a\n\r\n"), 0, 400, "bare LF", 1},
    {"bare LF end", S("GET / HTTP/1.1\r\nHost: a\r\n\n"), 0, 400, "bare LF", 2},
    {"bare CR in value", S("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"), 0, 400, "bare CR", 1},
    {"bare CR request line", S("GET / HTTP/1.1\rHost: a\r\n\r\n"), 0, 400, "bare CR", 0},
    {"leading bare CR", S("\rGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, 400, "bare CR", 0},
    {"leading bare LF", S("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, 400, "bare LF", 0},
    /* request line */
    {"empty method", S(" / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, 400, "empty method", 0},
    {"method not token", S("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, 400,
     "invalid character in method", 0},
    {"method with NUL", S("GE\0T / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, 400,
     "invalid character in method", 0},
    {"double SP", S("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, 400, "empty target", 0},
    {"HTAB separator", S("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), 0, 400,
     "invalid character in method", 0},
    {"target DEL", S("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n"), 0, 400,
     "invalid character in target", 0},
    {"target non-ASCII", S("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), 0, 400,
     "invalid character in target", 0},
    {"target HTAB", S("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n"), 0, 400,
     "invalid character in target", 0},
    {"target CTL", S("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n"), 0, 400,
     "invalid character in target", 0},
    {"target SP", S("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"), 0, 400, "malformed HTTP version", 0},
    {"HTTP/0.9 line", S("GET /\r\n\r\n"), 0, 400, "no HTTP version in request line", 0},
    {"no version", S("GET / \r\nHost: a\r\n\r\n"), 0, 400, "malformed HTTP version", 0},
    {"lowercase version", S("GET / http/1.1\r\nHost: a\r\n\r\n"), 0, 400, "malformed HTTP version",
     0},
    {"version SP after", S("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 0, 400,
     "junk after HTTP version", 0},
    {"version short", S("GET / HTTP/1\r\nHost: a\r\n\r\n"), 0, 400, "malformed HTTP version", 0},
    {"version 1.10", S("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), 0, 400, "junk after HTTP version",
     0},
    {"version 11.1", S("GET / HTTP/11.1\r\nHost: a\r\n\r\n"), 0, 400, "malformed HTTP version", 0},
    {"version letter", S("GET / HTTP/1.x\r\nHost: a\r\n\r\n"), 0, 400, "malformed HTTP version",
     0},
    {"binary garbage", S("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), 0, 400,
     "invalid character in method", 0},
    /* header syntax */
    {"SP before colon", S("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 0, 400, "whitespace before colon",
     1},
    {"HTAB before colon", S("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), 0, 400,
     "whitespace before colon", 1},
    {"obs-fold", S("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n"), 0, 400,
     "header line starts with whitespace (obs-fold)", 3},
    {"obs-fold HTAB", S("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\tc\r\n\r\n"), 0, 400,
     "header line starts with whitespace (obs-fold)", 3},
    {"first field indented", S("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), 0, 400,
     "header line starts with whitespace (obs-fold)", 1},
    {"empty name", S("GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n"), 0, 400, "empty header name", 1},
    {"name not token", S("GET / HTTP/1.1\r\nHo(st: a\r\n\r\n"), 0, 400,
     "invalid character in header name", 1},
    {"name non-ASCII", S("GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: b\r\n\r\n"), 0, 400,
     "invalid character in header name", 2},
    {"no colon", S("GET / HTTP/1.1\r\nNoColon\r\nHost: a\r\n\r\n"), 0, 400,
     "header line without colon", 1},
    {"NUL in value", S("GET / HTTP/1.1\r\nHost: a\r\nX: b\0c\r\n\r\n"), 0, 400,
     "invalid character in header value", 2},
    {"CTL in value",
     S("GET / HTTP/1.1\r\nHost: a\r\nX: b\x01"
       "c\r\n\r\n"),
     0, 400, "invalid character in header value", 2},
    {"ESC in value", S("GET / HTTP/1.1\r\nHost: a\r\nX: \x1b[0m\r\n\r\n"), 0, 400,
     "invalid character in header value", 2},
    {"DEL in value", S("GET / HTTP/1.1\r\nHost: a\r\nX: b\x7f\r\n\r\n"), 0, 400,
     "invalid character in header value", 2},
    {"LF in value", S("GET / HTTP/1.1\r\nHost: a\r\nX: b\nc\r\n\r\n"), 0, 400, "bare LF", 2},
    /* Host */
    {"missing Host", S("GET / HTTP/1.1\r\nX: a\r\n\r\n"), 0, 400, "missing Host", 0},
    {"no fields 1.1", S("GET / HTTP/1.1\r\n\r\n"), 0, 400, "missing Host", 0},
    {"two Host", S("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 0, 400, "more than one Host",
     2},
    {"two Host case", S("GET / HTTP/1.1\r\nHost: a\r\nhOST: b\r\n\r\n"), 0, 400,
     "more than one Host", 2},
    {"two Host 1.0", S("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), 0, 400,
     "more than one Host", 2},
    {"empty Host", S("GET / HTTP/1.1\r\nHost: \r\n\r\n"), 0, 400, "invalid Host", 1},
    {"Host SP inside", S("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 0, 400, "invalid Host", 1},
    {"Host userinfo", S("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), 0, 400, "invalid Host", 1},
    {"Host path", S("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 0, 400, "invalid Host", 1},
    {"Host bad port", S("GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n"), 0, 400, "invalid Host", 1},
    {"Host long port", S("GET / HTTP/1.1\r\nHost: a:123456\r\n\r\n"), 0, 400, "invalid Host", 1},
    {"Host two ports", S("GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n"), 0, 400, "invalid Host", 1},
    {"Host port only", S("GET / HTTP/1.1\r\nHost: :80\r\n\r\n"), 0, 400, "invalid Host", 1},
    {"Host open bracket", S("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), 0, 400, "invalid Host", 1},
    {"Host bad IPv6", S("GET / HTTP/1.1\r\nHost: [zz::1]\r\n\r\n"), 0, 400, "invalid Host", 1},
    {"Host IPv6 no colon", S("GET / HTTP/1.1\r\nHost: [abc]\r\n\r\n"), 0, 400, "invalid Host", 1},
    {"Host after bracket", S("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n"), 0, 400, "invalid Host", 1},
    {"Host bad pct", S("GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n"), 0, 400, "invalid Host", 1},
    {"Host short pct", S("GET / HTTP/1.1\r\nHost: a%4\r\n\r\n"), 0, 400, "invalid Host", 1},
    {"Host non-ASCII", S("GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n"), 0, 400, "invalid Host",
     1},
    {"Host comma", S("GET / HTTP/1.1\r\nHost: a, b\r\n\r\n"), 0, 400, "invalid Host", 1},
    /* Content-Length */
    {"CL and TE",
     S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
       "Transfer-Encoding: chunked\r\n\r\n"),
     0, 400, "Content-Length and Transfer-Encoding together", 3},
    {"TE and CL",
     S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
       "Content-Length: 0\r\n\r\n"),
     0, 400, "Content-Length and Transfer-Encoding together", 3},
    {"CL letters", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n"), 0, 400,
     "invalid Content-Length", 2},
    {"CL empty", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"), 0, 400,
     "invalid Content-Length", 2},
    {"CL blank", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:   \r\n\r\n"), 0, 400,
     "invalid Content-Length", 2},
    {"CL negative", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"), 0, 400,
     "invalid Content-Length", 2},
    {"CL plus", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n"), 0, 400,
     "invalid Content-Length", 2},
    {"CL hex", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n"), 0, 400,
     "invalid Content-Length", 2},
    {"CL inner SP", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n"), 0, 400,
     "invalid Content-Length", 2},
    {"CL list differs", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n"), 0, 400,
     "differing Content-Length values", 2},
    {"CL fields differ",
     S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
       "Content-Length: 6\r\n\r\n"),
     0, 400, "differing Content-Length values", 3},
    {"CL empty element", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n"), 0, 400,
     "invalid Content-Length", 2},
    {"CL leading comma", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ,5\r\n\r\n"), 0, 400,
     "invalid Content-Length", 2},
    {"CL 2^62+1", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4611686018427387905\r\n\r\n"),
     0, 400, "invalid Content-Length", 2},
    {"CL 2^64", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n"), 0,
     400, "invalid Content-Length", 2},
    {"CL huge",
     S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "
       "99999999999999999999999999999999999999\r\n\r\n"),
     0, 400, "invalid Content-Length", 2},
    /* Transfer-Encoding */
    {"TE on 1.0", S("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 0, 400,
     "Transfer-Encoding in HTTP/1.0", 1},
    {"TE twice in list",
     S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n"
       "\r\n"),
     0, 400, "chunked given more than once", 2},
    {"TE twice in fields",
     S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
       "Transfer-Encoding: chunked\r\n\r\n"),
     0, 400, "chunked given more than once", 3},
    {"TE chunked not last",
     S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n"
       "\r\n"),
     0, 400, "chunked not the final transfer coding", 2},
    {"TE chunked not last fields",
     S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
       "Transfer-Encoding: gzip\r\n\r\n"),
     0, 400, "chunked not the final transfer coding", 3},
    {"TE empty", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n"), 0, 400,
     "empty element in Transfer-Encoding", 2},
    {"TE empty element", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked\r\n\r\n"),
     0, 400, "empty element in Transfer-Encoding", 2},
    {"TE parameter", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n"), 0,
     400, "invalid Transfer-Encoding", 2},
    {"TE not token", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n"), 0,
     400, "invalid Transfer-Encoding", 2},
    {"TE gzip, chunked",
     S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n"
       "\r\n"),
     0, 501, "unsupported transfer coding", 2},
    {"TE gzip + chunked fields",
     S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
       "Transfer-Encoding: chunked\r\n\r\n"),
     0, 501, "unsupported transfer coding", 3},
    {"TE identity", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n"), 0, 501,
     "unsupported transfer coding", 2},
    {"TE gzip", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"), 0, 501,
     "unsupported transfer coding", 2},
    /* versions */
    {"HTTP/2.0", S("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 0, 505, "unsupported HTTP version", 0},
    {"HTTP/1.2", S("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 0, 505, "unsupported HTTP version", 0},
    {"HTTP/0.9", S("GET / HTTP/0.9\r\n\r\n"), 0, 505, "unsupported HTTP version", 0},
    {"HTTP/3.0", S("GET / HTTP/3.0\r\nHost: a\r\n\r\n"), 0, 505, "unsupported HTTP version", 0},
    /* sizes */
    {"414 long target",
     S("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
       "aaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n"),
     64, 414, "request line too long", 0},
    {"414 line one byte over", S("GET /aaaaaaaaaa HTTP/1.0\r\n\r\n"), 25, 414,
     "request line too long", 0},
    {"431 line fits, head not", S("GET /aaaaaaaaaa HTTP/1.0\r\n\r\n"), 27, 431,
     "header section too large", 0},
    {"414 only CRLFs", S("\r\n\r\n\r\n\r\n\r\n"), 8, 414, "request line too long", 0},
    {"431 long field",
     S("GET / HTTP/1.1\r\nHost: a\r\nX: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
       "bbbbbbbbbbbbbbbbbbbbbb\r\n\r\n"),
     64, 431, "header section too large", 0},
    {"431 head one byte over", S("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 26, 431,
     "header section too large", 0},
};

struct req_ok {
    const char *name;
    const char *in;
    size_t len;
    size_t max_head; /* 0: DEF_MAX_HEAD */
    size_t head;     /* expected consumed; 0: len */
    const char *method;
    const char *target;
    int minor;
    size_t nheaders;
    enum http_framing framing;
    uint64_t cl;
    bool keep_alive;
    const char *host; /* NULL: none */
    bool expect;
};

static const struct req_ok req_ok[] = {
    {"simple GET", S("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), 0, 0, "GET", "/", 1, 1,
     HTTP_BODY_NONE, 0, true, "example.com", false},
    {"POST with CL", S("POST /submit?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"),
     0, 57, "POST", "/submit?x=1", 1, 2, HTTP_BODY_LENGTH, 5, true, "a", false},
    {"chunked",
     S("POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
       "5\r\nhello\r\n0\r\n\r\n"),
     0, 57, "POST", "/u", 1, 2, HTTP_BODY_CHUNKED, 0, true, "a", false},
    {"chunked mixed case", S("POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding:  Chunked \r\n\r\n"),
     0, 0, "POST", "/", 1, 2, HTTP_BODY_CHUNKED, 0, true, "a", false},
    {"1.0 keep-alive", S("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), 0, 0, "GET", "/", 0,
     1, HTTP_BODY_NONE, 0, true, NULL, false},
    {"1.0 Keep-Alive list", S("GET / HTTP/1.0\r\nConnection: foo, Keep-Alive\r\nHost: h\r\n\r\n"),
     0, 0, "GET", "/", 0, 2, HTTP_BODY_NONE, 0, true, "h", false},
    {"1.0 default close", S("GET / HTTP/1.0\r\n\r\n"), 0, 0, "GET", "/", 0, 0, HTTP_BODY_NONE, 0,
     false, NULL, false},
    {"1.1 close", S("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), 0, 0, "GET", "/", 1,
     2, HTTP_BODY_NONE, 0, false, "a", false},
    {"close wins", S("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: CLOSE\r\n\r\n"), 0,
     0, "GET", "/", 0, 2, HTTP_BODY_NONE, 0, false, NULL, false},
    {"absolute-form",
     S("GET http://example.com:8080/a?b=c#d HTTP/1.1\r\nHost: example.com:8080\r\n"
       "\r\n"),
     0, 0, "GET", "http://example.com:8080/a?b=c#d", 1, 1, HTTP_BODY_NONE, 0, true,
     "example.com:8080", false},
    {"OPTIONS *", S("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 0, 0, "OPTIONS", "*", 1, 1,
     HTTP_BODY_NONE, 0, true, "a", false},
    {"CONNECT", S("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"), 0, 0,
     "CONNECT", "example.com:443", 1, 1, HTTP_BODY_NONE, 0, true, "example.com:443", false},
    {"token method", S("M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n"), 0, 0, "M-SEARCH", "*", 1, 1,
     HTTP_BODY_NONE, 0, true, "a", false},
    {"CL list repeat", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n"), 0, 0,
     "POST", "/", 1, 2, HTTP_BODY_LENGTH, 5, true, "a", false},
    {"CL field repeat",
     S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
       "content-length:5 ,5\r\n\r\n"),
     0, 0, "POST", "/", 1, 3, HTTP_BODY_LENGTH, 5, true, "a", false},
    {"CL 0", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), 0, 0, "POST", "/", 1, 2,
     HTTP_BODY_NONE, 0, true, "a", false},
    {"CL leading zeros", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n"), 0, 0,
     "POST", "/", 1, 2, HTTP_BODY_LENGTH, 7, true, "a", false},
    {"CL 2^62", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4611686018427387904\r\n\r\n"), 0,
     0, "POST", "/", 1, 2, HTTP_BODY_LENGTH, UINT64_C(4611686018427387904), true, "a", false},
    {"Expect",
     S("PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n"
       "\r\n"),
     0, 0, "PUT", "/f", 1, 3, HTTP_BODY_LENGTH, 3, true, "a", true},
    {"Host IPv4 port", S("GET / HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n\r\n"), 0, 0, "GET", "/", 1, 1,
     HTTP_BODY_NONE, 0, true, "127.0.0.1:3000", false},
    {"Host IPv6", S("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), 0, 0, "GET", "/", 1, 1,
     HTTP_BODY_NONE, 0, true, "[::1]:8080", false},
    {"Host IPv6 v4", S("GET / HTTP/1.1\r\nHost: [::ffff:10.0.0.1]\r\n\r\n"), 0, 0, "GET", "/", 1,
     1, HTTP_BODY_NONE, 0, true, "[::ffff:10.0.0.1]", false},
    {"Host pct, sub-delims", S("GET / HTTP/1.1\r\nHost: a%2Db_c~d!$&'()*+;=.e\r\n\r\n"), 0, 0,
     "GET", "/", 1, 1, HTTP_BODY_NONE, 0, true, "a%2Db_c~d!$&'()*+;=.e", false},
    {"Host trimmed", S("GET / HTTP/1.1\r\nHost: \t a.b \t\r\n\r\n"), 0, 0, "GET", "/", 1, 1,
     HTTP_BODY_NONE, 0, true, "a.b", false},
    {"obs-text value", S("GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9 \xff\r\n\r\n"), 0, 0,
     "GET", "/", 1, 2, HTTP_BODY_NONE, 0, true, "a", false},
    {"empty value", S("GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nY:   \r\n\r\n"), 0, 0, "GET", "/",
     1, 3, HTTP_BODY_NONE, 0, true, "a", false},
    {"leading CRLF", S("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, 0, "GET", "/", 1, 1,
     HTTP_BODY_NONE, 0, true, "a", false},
    {"pipelined", S("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"), 0, 28,
     "GET", "/1", 1, 1, HTTP_BODY_NONE, 0, true, "a", false},
    {"head exactly max", S("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 27, 0, "GET", "/", 1, 1,
     HTTP_BODY_NONE, 0, true, "a", false},
    {"line exactly max", S("GET /aaaaaaaaaa HTTP/1.0\r\n\r\n"), 28, 0, "GET", "/aaaaaaaaaa", 0, 0,
     HTTP_BODY_NONE, 0, false, NULL, false},
    {"Expect on 1.0 ignored", S("GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"), 0, 0, "GET",
     "/", 0, 1, HTTP_BODY_NONE, 0, false, NULL, false},
    {"expect other", S("GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue-x\r\n\r\n"), 0, 0, "GET",
     "/", 1, 2, HTTP_BODY_NONE, 0, true, "a", false},
};

/* A reason left from an earlier parse: every parse must overwrite it. */
static const char stale_why[] = "stale reason";

/*
 * Checks the reason a parse left in <got_why> / <got_line> against <why> /
 * <line> (NULL, 0 when the parse did not refuse).
 */
static void
assert_why(const char *name, size_t k, const char *got_why, unsigned got_line, const char *why,
           unsigned line)
{
    if (why == NULL)
        ck_assert_msg(got_why == NULL && got_line == 0, "%s: prefix %zu: reason \"%s\" line %u",
                      name, k, got_why ? got_why : "(null)", got_line);
    else
        ck_assert_msg(got_why != NULL && strcmp(got_why, why) == 0 && got_line == line,
                      "%s: prefix %zu: reason \"%s\" line %u, want \"%s\" line %u", name, k,
                      got_why ? got_why : "(null)", got_line, why, line);
}

/*
 * Parses <in> whole, at the guard page, and every strict prefix of it.
 * <want> is the expected return (HTTP_INVALID or bytes consumed), <status>
 * the expected status with HTTP_INVALID, <why> and <line> the reason and
 * header line it must name. Leaves the whole parse in <req>.
 */
static void
run_request(const char *name, const char *in, size_t len, size_t max_head, int want, int status,
            const char *why, unsigned line, struct http_request *req)
{
    int st = -7, r;
    bool invalid_seen = false;

    for (size_t k = 0; k <= len; k++) {
        req->why = stale_why;
        req->why_header = 77;
        r = http_parse_request(at_guard(in, k), k, max_head, req, &st);
        if (r == HTTP_NEED_MORE) {
            ck_assert_msg(k < len, "%s: need-more for the whole input", name);
            ck_assert_msg(!invalid_seen, "%s: prefix %zu: need-more after invalid", name, k);
            assert_why(name, k, req->why, req->why_header, NULL, 0);
            continue;
        }
        if (want == HTTP_INVALID) {
            ck_assert_msg(r == HTTP_INVALID && st == status,
                          "%s: prefix %zu: got %d status %d, want invalid %d", name, k, r, st,
                          status);
            /* the reason, too, must not depend on how much has arrived */
            assert_why(name, k, req->why, req->why_header, why, line);
            invalid_seen = true;
        } else {
            /* a valid head: only prefixes holding the whole head may succeed */
            ck_assert_msg(r == want && k >= (size_t)want, "%s: prefix %zu: got %d (status %d)",
                          name, k, r, st);
            assert_why(name, k, req->why, req->why_header, NULL, 0);
        }
    }
}

static void
assert_slice(const char *name, struct http_slice s, const char *want)
{
    ck_assert_msg(s.len == strlen(want) && memcmp(s.p, want, s.len) == 0,
                  "%s: slice \"%.*s\", want \"%s\"", name, (int)s.len, s.p, want);
}

START_TEST(test_request_bad)
{
    const struct req_bad *t = &req_bad[_i];
    struct http_request req;

    run_request(t->name, t->in, t->len, t->max_head ? t->max_head : DEF_MAX_HEAD, HTTP_INVALID,
                t->status, t->why, t->line, &req);
}
END_TEST

START_TEST(test_request_ok)
{
    const struct req_ok *t = &req_ok[_i];
    size_t head = t->head ? t->head : t->len;
    size_t max_head = t->max_head ? t->max_head : DEF_MAX_HEAD;
    struct http_request req;
    char more[1024];
    int st, r;

    run_request(t->name, t->in, t->len, max_head, (int)head, 0, NULL, 0, &req);
    if (t->method != NULL) {
        const char *start = guard_hi - t->len;

        assert_slice(t->name, req.method, t->method);
        assert_slice(t->name, req.target, t->target);
        ck_assert_int_eq(req.minor_version, t->minor);
        ck_assert_uint_eq(req.nheaders, t->nheaders);
        ck_assert_int_eq(req.info.framing, t->framing);
        if (t->framing == HTTP_BODY_LENGTH)
            ck_assert_uint_eq(req.info.content_length, t->cl);
        ck_assert_int_eq(req.info.keep_alive, t->keep_alive);
        ck_assert_int_eq(req.expect_continue, t->expect);
        if (t->host == NULL)
            ck_assert_uint_eq(req.host.len, 0);
        else
            assert_slice(t->name, req.host, t->host);
        /* zero-copy: every slice points into the input */
        ck_assert(req.method.p >= start && req.target.p + req.target.len <= start + head);
        for (size_t i = 0; i < req.nheaders; i++) {
            const struct http_header *h = &req.headers[i];

            ck_assert(h->name.p >= start && h->name.p + h->name.len <= start + head);
            ck_assert(h->value.p >= start && h->value.p + h->value.len <= start + head);
            ck_assert(h->name.len > 0);
            if (h->value.len > 0) {
                ck_assert(h->value.p[0] != ' ' && h->value.p[0] != '\t');
                ck_assert(h->value.p[h->value.len - 1] != ' ' &&
                          h->value.p[h->value.len - 1] != '\t');
            }
        }
    }
    /* bytes after the head (pipelining, body) do not change the result */
    if (t->len + 16 <= sizeof(more)) {
        memcpy(more, t->in, t->len);
        memcpy(more + t->len, "XXXX\r\n\r\nYYYYYYY", 16);
        r = http_parse_request(more, t->len + 16, max_head, &req, &st);
        ck_assert_msg(r == (int)head, "%s: with trailing bytes got %d", t->name, r);
    }
}
END_TEST

/* Builds a request with <n> header fields, one of them Host. */
static size_t
many_fields(char *buf, size_t size, int n, bool response)
{
    size_t len = (size_t)snprintf(buf, size, "%s",
                                  response ? "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                                           : "GET / HTTP/1.1\r\nHost: a\r\n");

    for (int i = 1; i < n; i++)
        len += (size_t)snprintf(buf + len, size - len, "X-F%d: v%d\r\n", i, i);
    len += (size_t)snprintf(buf + len, size - len, "\r\n");
    return len;
}

START_TEST(test_request_many_fields)
{
    char buf[4096];
    struct http_request req;
    size_t len = many_fields(buf, sizeof(buf), HTTP_MAX_HEADERS, false);

    run_request("100 fields", buf, len, DEF_MAX_HEAD, (int)len, 0, NULL, 0, &req);
    ck_assert_uint_eq(req.nheaders, HTTP_MAX_HEADERS);
    assert_slice("100 fields", req.headers[99].value, "v99");
    len = many_fields(buf, sizeof(buf), HTTP_MAX_HEADERS + 1, false);
    run_request("101 fields", buf, len, DEF_MAX_HEAD, HTTP_INVALID, 431, "too many header fields",
                HTTP_MAX_HEADERS + 1, &req);
}
END_TEST

START_TEST(test_request_limits)
{
    char buf[600];
    struct http_request req;
    int st, r;

    /* 414 needs max_head bytes: with fewer, a long line is still in progress */
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "GET /", 5);
    r = http_parse_request(buf, 99, 100, &req, &st);
    ck_assert_int_eq(r, HTTP_NEED_MORE);
    r = http_parse_request(buf, 100, 100, &req, &st);
    ck_assert_int_eq(r, HTTP_INVALID);
    ck_assert_int_eq(st, 414);
    ck_assert_str_eq(req.why, "request line too long");
    r = http_parse_request(buf, sizeof(buf), 100, &req, &st);
    ck_assert_int_eq(st, 414);
    /* garbage is 400 even when it is long */
    memset(buf, '\x01', sizeof(buf));
    r = http_parse_request(buf, sizeof(buf), 100, &req, &st);
    ck_assert_int_eq(r, HTTP_INVALID);
    ck_assert_int_eq(st, 400);
    ck_assert_str_eq(req.why, "invalid character in method");
    /* a huge max_head is clamped, not trusted; a success clears the last reason */
    r = http_parse_request(S("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), SIZE_MAX, &req, &st);
    ck_assert_int_eq(r, 27);
    ck_assert_ptr_null(req.why);
    ck_assert_uint_eq(req.why_header, 0);
    /* nothing at all */
    r = http_parse_request("", 0, 100, &req, &st);
    ck_assert_int_eq(r, HTTP_NEED_MORE);
}
END_TEST

/* ---- responses ------------------------------------------------------- */

struct resp_case {
    const char *name;
    const char *in;
    size_t len;
    bool head_request;
    int want; /* -1 invalid (502), 0: len, > 0 consumed */
    int code;
    int minor;
    const char *reason;
    enum http_framing framing;
    uint64_t cl;
    bool keep_alive;
    const char *why; /* want -1: the reason the parser must give */
    unsigned line;   /* and the header line it must name (0: none) */
};

#define BAD(n, s, w, l)                                                                           \
    {                                                                                             \
        n, S(s), false, -1, 0, 0, NULL, 0, 0, false, w, l                                         \
    }

static const struct resp_case resp_cases[] = {
    {"200 CL", S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), false, 38, 200, 1, "OK",
     HTTP_BODY_LENGTH, 5, true, NULL, 0},
    {"empty reason", S("HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\n"), false, 0, 200, 1, "",
     HTTP_BODY_LENGTH, 1, true, NULL, 0},
    {"no SP after code", S("HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n"), false, 0, 200, 1, "",
     HTTP_BODY_LENGTH, 1, true, NULL, 0},
    {"reason with SP, obs-text", S("HTTP/1.1 404 Not \tF\xc3\xb6und\r\nContent-Length: 0\r\n\r\n"),
     false, 0, 404, 1, "Not \tF\xc3\xb6und", HTTP_BODY_NONE, 0, true, NULL, 0},
    {"chunked", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), false, 0, 200, 1, "OK",
     HTTP_BODY_CHUNKED, 0, true, NULL, 0},
    {"close-delimited", S("HTTP/1.1 200 OK\r\nServer: x\r\n\r\nbody..."), false, 30, 200, 1, "OK",
     HTTP_BODY_CLOSE, 0, false, NULL, 0},
    {"HEAD with CL", S("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"), true, 0, 200, 1, "OK",
     HTTP_BODY_NONE, 100, true, NULL, 0},
    {"HEAD chunked", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), true, 0, 200, 1,
     "OK", HTTP_BODY_NONE, 0, true, NULL, 0},
    {"HEAD no length", S("HTTP/1.1 200 OK\r\n\r\n"), true, 0, 200, 1, "OK", HTTP_BODY_NONE, 0,
     true, NULL, 0},
    {"204", S("HTTP/1.1 204 No Content\r\n\r\n"), false, 0, 204, 1, "No Content", HTTP_BODY_NONE,
     0, true, NULL, 0},
    {"304 with CL", S("HTTP/1.1 304 Not Modified\r\nContent-Length: 42\r\n\r\n"), false, 0, 304, 1,
     "Not Modified", HTTP_BODY_NONE, 42, true, NULL, 0},
    {"100", S("HTTP/1.1 100 Continue\r\n\r\n"), false, 0, 100, 1, "Continue", HTTP_BODY_NONE, 0,
     true, NULL, 0},
    {"101",
     S("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "\r\n"),
     false, 0, 101, 1, "Switching Protocols", HTTP_BODY_NONE, 0, true, NULL, 0},
    {"1.0 keep-alive", S("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n"),
     false, 0, 200, 0, "OK", HTTP_BODY_LENGTH, 2, true, NULL, 0},
    {"1.0 default", S("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n"), false, 0, 200, 0, "OK",
     HTTP_BODY_LENGTH, 2, false, NULL, 0},
    {"1.0 close-delimited", S("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n"), false, 0, 200,
     0, "OK", HTTP_BODY_CLOSE, 0, false, NULL, 0},
    {"1.1 close", S("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n"), false, 0,
     200, 1, "OK", HTTP_BODY_LENGTH, 2, false, NULL, 0},
    {"CL 0", S("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), false, 0, 200, 1, "OK",
     HTTP_BODY_NONE, 0, true, NULL, 0},
    {"CL repeated", S("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\n"),
     false, 0, 200, 1, "OK", HTTP_BODY_LENGTH, 3, true, NULL, 0},
    {"Host in response is a plain field",
     S("HTTP/1.1 200 OK\r\nHost: a b\r\nHost: c\r\n"
       "Content-Length: 1\r\n\r\n"),
     false, 0, 200, 1, "OK", HTTP_BODY_LENGTH, 1, true, NULL, 0},
    {"599", S("HTTP/1.1 599 X\r\nContent-Length: 0\r\n\r\n"), false, 0, 599, 1, "X",
     HTTP_BODY_NONE, 0, true, NULL, 0},
    BAD("CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "Content-Length and Transfer-Encoding together", 2),
    BAD("TE and CL",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n"
        "\r\n",
        "Content-Length and Transfer-Encoding together", 2),
    BAD("TE gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "unsupported transfer coding", 1),
    BAD("TE gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "unsupported transfer coding", 1),
    BAD("TE chunked, gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "chunked not the final transfer coding", 1),
    BAD("TE chunked twice",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
        "Transfer-Encoding: chunked\r\n\r\n",
        "chunked given more than once", 2),
    BAD("TE empty", "HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\n",
        "empty element in Transfer-Encoding", 1),
    BAD("TE on 1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "Transfer-Encoding in HTTP/1.0", 1),
    BAD("CL differs", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "differing Content-Length values", 2),
    BAD("CL bad", "HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\n", "invalid Content-Length", 1),
    BAD("CL on 204 bad", "HTTP/1.1 204 OK\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length",
        1),
    BAD("HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", "unsupported HTTP version", 0),
    BAD("HTTP/1.2", "HTTP/1.2 200 OK\r\n\r\n", "unsupported HTTP version", 0),
    BAD("lowercase", "http/1.1 200 OK\r\n\r\n", "malformed HTTP version", 0),
    BAD("code 99", "HTTP/1.1 099 X\r\n\r\n", "status code out of range", 0),
    BAD("code 600", "HTTP/1.1 600 X\r\n\r\n", "status code out of range", 0),
    BAD("code 2 digits", "HTTP/1.1 20 OK\r\n\r\n", "status code not 3 digits", 0),
    BAD("code 4 digits", "HTTP/1.1 2000 OK\r\n\r\n", "status code not 3 digits", 0),
    BAD("code letters", "HTTP/1.1 2x0 OK\r\n\r\n", "status code not 3 digits", 0),
    BAD("double SP", "HTTP/1.1  200 OK\r\n\r\n", "status code not 3 digits", 0),
    BAD("no SP", "HTTP/1.1200 OK\r\n\r\n", "no SP after HTTP version", 0),
    BAD("NUL reason", "HTTP/1.1 200 O\0K\r\n\r\n", "invalid character in reason phrase", 0),
    BAD("DEL reason", "HTTP/1.1 200 O\x7fK\r\n\r\n", "invalid character in reason phrase", 0),
    BAD("bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", "bare LF", 0),
    BAD("bare LF field", "HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n", "bare LF", 1),
    BAD("obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
        "header line starts with whitespace (obs-fold)", 2),
    BAD("SP before colon", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
        "whitespace before colon", 1),
    BAD("CTL in field", "HTTP/1.1 200 OK\r\nX: a\x02\r\n\r\n", "invalid character in header value",
        1),
    BAD("empty line first", "\r\nHTTP/1.1 200 OK\r\n\r\n", "malformed HTTP version", 0),
    BAD("garbage", "<html>hello</html>\r\n\r\n", "malformed HTTP version", 0),
};

/* As run_request(), for a response: <why> and <line> with want HTTP_INVALID. */
static void
run_response(const char *name, const char *in, size_t len, size_t max_head, bool head_req,
             int want, const char *why, unsigned line, struct http_response *resp)
{
    int st = -7, r;
    bool invalid_seen = false;

    for (size_t k = 0; k <= len; k++) {
        resp->why = stale_why;
        resp->why_header = 77;
        r = http_parse_response(at_guard(in, k), k, max_head, head_req, resp, &st);
        if (r == HTTP_NEED_MORE) {
            ck_assert_msg(k < len, "%s: need-more for the whole input", name);
            ck_assert_msg(!invalid_seen, "%s: prefix %zu: need-more after invalid", name, k);
            assert_why(name, k, resp->why, resp->why_header, NULL, 0);
            continue;
        }
        if (want == HTTP_INVALID) {
            ck_assert_msg(r == HTTP_INVALID && st == 502, "%s: prefix %zu: got %d status %d", name,
                          k, r, st);
            assert_why(name, k, resp->why, resp->why_header, why, line);
            invalid_seen = true;
        } else {
            ck_assert_msg(r == want && k >= (size_t)want, "%s: prefix %zu: got %d", name, k, r);
            assert_why(name, k, resp->why, resp->why_header, NULL, 0);
        }
    }
}

START_TEST(test_response)
{
    const struct resp_case *t = &resp_cases[_i];
    int want = t->want < 0 ? HTTP_INVALID : t->want == 0 ? (int)t->len : t->want;
    struct http_response resp;

    run_response(t->name, t->in, t->len, DEF_MAX_HEAD, t->head_request, want, t->why, t->line,
                 &resp);
    if (want == HTTP_INVALID)
        return;
    ck_assert_int_eq(resp.status, t->code);
    ck_assert_int_eq(resp.minor_version, t->minor);
    assert_slice(t->name, resp.reason, t->reason);
    ck_assert_msg(resp.info.framing == t->framing, "%s: framing %d want %d", t->name,
                  resp.info.framing, t->framing);
    if (t->framing == HTTP_BODY_LENGTH || t->cl != 0)
        ck_assert_uint_eq(resp.info.content_length, t->cl);
    ck_assert_msg(resp.info.keep_alive == t->keep_alive, "%s: keep_alive %d", t->name,
                  resp.info.keep_alive);
}
END_TEST

START_TEST(test_response_limits)
{
    char buf[4096];
    struct http_response resp;
    size_t len = many_fields(buf, sizeof(buf), HTTP_MAX_HEADERS, true);

    run_response("100 fields", buf, len, DEF_MAX_HEAD, false, (int)len, NULL, 0, &resp);
    ck_assert_uint_eq(resp.nheaders, HTTP_MAX_HEADERS);
    len = many_fields(buf, sizeof(buf), HTTP_MAX_HEADERS + 1, true);
    run_response("101 fields", buf, len, DEF_MAX_HEAD, false, HTTP_INVALID,
                 "too many header fields", HTTP_MAX_HEADERS + 1, &resp);
    run_response("head too long", S("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 37, false,
                 HTTP_INVALID, "header section too large", 0, &resp);
    run_response("head exactly max", S("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 38, false,
                 38, NULL, 0, &resp);
    run_response("status line too long", S("HTTP/1.1 200 OKOKOKOKOKOKOKOK\r\n\r\n"), 20, false,
                 HTTP_INVALID, "status line too long", 0, &resp);
}
END_TEST

/* ---- helpers --------------------------------------------------------- */

START_TEST(test_helpers)
{
    struct http_header h[3] = {
        {{S("Host")}, {S("a")}},
        {{S("Content-Length")}, {S("5")}},
        {{S("X-Host")}, {S("b")}},
    };
    struct http_slice v = {S("foo ,\tKeep-Alive , close")};
    struct http_slice empty = {S("")};
    struct http_slice commas = {S(" , ,")};
    const int codes[] = {100, 101, 200, 201, 204, 206, 301, 302, 304, 400, 403, 404, 405,
                         408, 411, 413, 414, 417, 431, 500, 501, 502, 503, 504, 505};

    ck_assert_int_eq(http_find_header(h, 3, "host"), 0);
    ck_assert_int_eq(http_find_header(h, 3, "CONTENT-LENGTH"), 1);
    ck_assert_int_eq(http_find_header(h, 3, "x-host"), 2);
    ck_assert_int_eq(http_find_header(h, 3, "hos"), -1);
    ck_assert_int_eq(http_find_header(h, 3, "hostx"), -1);
    ck_assert_int_eq(http_find_header(h, 0, "host"), -1);

    ck_assert(http_list_has(v, "keep-alive", 10));
    ck_assert(http_list_has(v, "CLOSE", 5));
    ck_assert(http_list_has(v, "foo", 3));
    ck_assert(!http_list_has(v, "keep", 4));
    ck_assert(!http_list_has(v, "clos", 4));
    ck_assert(!http_list_has(empty, "close", 5));
    ck_assert(!http_list_has(commas, "close", 5));
    ck_assert(http_list_has(commas, "", 0)); /* empty elements are elements */

    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        ck_assert_msg(strcmp(http_reason(codes[i]), "Unknown") != 0, "no reason for %d", codes[i]);
    ck_assert_str_eq(http_reason(502), "Bad Gateway");
    ck_assert_str_eq(http_reason(431), "Request Header Fields Too Large");
    ck_assert_str_eq(http_reason(299), "Unknown");
    ck_assert_str_eq(http_reason(-1), "Unknown");
}
END_TEST

/* ---- chunked --------------------------------------------------------- */

struct chunk_case {
    const char *name;
    const char *in;
    size_t len;
    int want;         /* 1 done, 0 need more, -1 invalid */
    const char *body; /* decoded body (with want 1 or 0) */
    size_t body_len;
    size_t consumed; /* with want 1; 0 means len */
    const char *why; /* with want -1: the reason the decoder must give */
};

#define CH_OK(n, s, b)                                                                            \
    {                                                                                             \
        n, S(s), 1, S(b), 0, NULL                                                                 \
    }
#define CH_BAD(n, s, w)                                                                           \
    {                                                                                             \
        n, S(s), -1, NULL, 0, 0, w                                                                \
    }

static char big_ext_ok[4200], big_ext_bad[4200], big_tr_ok[17000], big_tr_bad[17000];

static const struct chunk_case chunk_cases[] = {
    CH_OK("one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello"),
    CH_OK("empty body", "0\r\n\r\n", ""),
    CH_OK("three chunks", "3\r\nabc\r\n4\r\ndefg\r\n1\r\nh\r\n0\r\n\r\n", "abcdefgh"),
    CH_OK("hex upper", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789"),
    CH_OK("hex lower", "a\r\n0123456789\r\n0\r\n\r\n", "0123456789"),
    CH_OK("hex mixed", "1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n",
          "abcdefghijklmnopqrstuvwxyz"),
    CH_OK("leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello"),
    CH_OK("16 digits", "0000000000000003\r\nabc\r\n0000000000000000\r\n\r\n", "abc"),
    CH_OK("CRLF in data", "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n"),
    CH_OK("binary data", "4\r\n\0\xff\r\x80\r\n0\r\n\r\n", "\0\xff\r\x80"),
    CH_OK("ext name", "5;foo\r\nhello\r\n0\r\n\r\n", "hello"),
    CH_OK("ext token value", "5;foo=bar\r\nhello\r\n0;x=y\r\n\r\n", "hello"),
    CH_OK("ext BWS", "5 \t; foo = bar ;baz\t=\tq ; z\r\nhello\r\n0 ;last\r\n\r\n", "hello"),
    CH_OK("ext quoted", "5;a=\"b c;d=\\\"e\\\\\"\r\nhello\r\n0\r\n\r\n", "hello"),
    CH_OK("ext quoted obs-text", "5;a=\"\xc3\xa9\t\";b=\"\"\r\nhello\r\n0\r\n\r\n", "hello"),
    CH_OK("ext after quote", "5;a=\"x\" ;b\r\nhello\r\n0\r\n\r\n", "hello"),
    CH_OK("ext name then ;", "5;a;b;c\r\nhello\r\n0\r\n\r\n", "hello"),
    CH_OK("trailers", "5\r\nhello\r\n0\r\nX-Sum: abc\r\nY:\r\nZ: caf\xc3\xa9 \t v\r\n\r\n",
          "hello"),
    {"pipelined", S("5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), 1, S("hello"), 15, NULL},
    {"pipelined after trailer", S("1\r\nx\r\n0\r\nA: b\r\n\r\n0\r\n\r\n"), 1, S("x"), 17, NULL},
    {"incomplete data", S("5\r\nhel"), 0, S("hel"), 0, NULL},
    {"incomplete size", S("5\r\nhello\r\n1"), 0, S("hello"), 0, NULL},
    {"incomplete trailer", S("0\r\nX: y\r\n"), 0, S(""), 0, NULL},
    {"max size accepted", S("FFFFFFFFFFFFFFF\r\nab"), 0, S("ab"), 0, NULL},
    CH_BAD("empty size", "\r\nhello\r\n0\r\n\r\n", "invalid chunk size"),
    CH_BAD("not hex", "g\r\n", "invalid chunk size"),
    CH_BAD("negative", "-5\r\nhello\r\n0\r\n\r\n", "invalid chunk size"),
    CH_BAD("0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", "invalid chunk size"),
    CH_BAD("leading SP", " 5\r\nhello\r\n0\r\n\r\n", "invalid chunk size"),
    CH_BAD("trailing SP", "5 \r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
    CH_BAD("17 digits", "00000000000000005\r\nhello\r\n0\r\n\r\n", "chunk size too large"),
    CH_BAD("2^60", "1000000000000000\r\n", "chunk size too large"),
    CH_BAD("2^64-1", "FFFFFFFFFFFFFFFF\r\n", "chunk size too large"),
    CH_BAD("2^64", "10000000000000000\r\n", "chunk size too large"),
    CH_BAD("huge", "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF\r\n", "chunk size too large"),
    CH_BAD("bare LF after size", "5\nhello\r\n0\r\n\r\n", "bare LF"),
    CH_BAD("bare CR after size", "5\rhello\r\n0\r\n\r\n", "bare CR"),
    CH_BAD("data too long", "5\r\nhelloX\r\n0\r\n\r\n", "chunk data not followed by CRLF"),
    CH_BAD("data too short", "5\r\nhell\r\n0\r\n\r\n", "chunk data not followed by CRLF"),
    CH_BAD("bare LF after data", "5\r\nhello\n0\r\n\r\n", "chunk data not followed by CRLF"),
    CH_BAD("CR CR after data", "5\r\nhello\r\r0\r\n\r\n", "bare CR"),
    CH_BAD("ext empty name", "5;\r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
    CH_BAD("ext only =", "5;=x\r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
    CH_BAD("ext empty value", "5;a=\r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
    CH_BAD("ext name SP name", "5;a b\r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
    CH_BAD("ext value SP value", "5;a=b c\r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
    CH_BAD("ext trailing SP", "5;a \r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
    CH_BAD("ext value trailing SP", "5;a=b \r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
    CH_BAD("ext open quote", "5;a=\"b\r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
    CH_BAD("ext CTL in quote", "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
    CH_BAD("ext DEL in quote", "5;a=\"\x7f\"\r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
    CH_BAD("ext bad char", "5;a@b\r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
    CH_BAD("ext NUL", "5;a\0\r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
    CH_BAD("ext no semicolon", "5 a\r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
    CH_BAD("ext quote then token", "5;a=\"b\"c\r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
    CH_BAD("ext bare LF", "5;a\nhello\r\n0\r\n\r\n", "bare LF"),
    CH_BAD("trailer SP before colon", "0\r\nX : v\r\n\r\n", "invalid trailer field name"),
    CH_BAD("trailer obs-fold", "0\r\nX: v\r\n w\r\n\r\n", "invalid trailer field name"),
    CH_BAD("trailer indented", "0\r\n X: v\r\n\r\n", "invalid trailer field name"),
    CH_BAD("trailer no colon", "0\r\nX\r\n\r\n", "invalid trailer field name"),
    CH_BAD("trailer empty name", "0\r\n: v\r\n\r\n", "invalid trailer field name"),
    CH_BAD("trailer NUL", "0\r\nX: a\0b\r\n\r\n", "invalid character in trailer field"),
    CH_BAD("trailer bare LF", "0\r\nX: v\n\r\n", "bare LF"),
    CH_BAD("end bare LF", "0\r\n\n", "bare LF"),
    CH_BAD("end CR X", "0\r\n\rX", "bare CR"),
    CH_BAD("end LF only", "0\n\n", "bare LF"),
};

/* Rows built at startup: extension and trailer sizes right at and past the caps. */
static struct chunk_case chunk_big[4];

static void
chunk_big_setup(void)
{
    size_t n;

    /* ";" + 4094 name bytes + CR: 4096 extension bytes, the cap */
    n = (size_t)sprintf(big_ext_ok, "1;");
    memset(big_ext_ok + n, 'e', 4094);
    n += 4094;
    n += (size_t)sprintf(big_ext_ok + n, "\r\nx\r\n0\r\n\r\n");
    chunk_big[0] = (struct chunk_case){"ext at cap", big_ext_ok, n, 1, "x", 1, 0, NULL};

    n = (size_t)sprintf(big_ext_bad, "1;");
    memset(big_ext_bad + n, 'e', 4095);
    n += 4095;
    n += (size_t)sprintf(big_ext_bad + n, "\r\nx\r\n0\r\n\r\n");
    chunk_big[1] = (struct chunk_case){.name = "ext over cap",
                                       .in = big_ext_bad,
                                       .len = n,
                                       .want = -1,
                                       .why = "chunk extension too long"};

    /* trailer section of exactly 16384 bytes, final CRLF included */
    n = (size_t)sprintf(big_tr_ok, "0\r\nX: ");
    memset(big_tr_ok + n, 'v', 16384 - 7);
    n += 16384 - 7;
    n += (size_t)sprintf(big_tr_ok + n, "\r\n\r\n");
    chunk_big[2] = (struct chunk_case){"trailer at cap", big_tr_ok, n, 1, "", 0, 0, NULL};

    n = (size_t)sprintf(big_tr_bad, "0\r\nX: ");
    memset(big_tr_bad + n, 'v', 16384 - 6);
    n += 16384 - 6;
    n += (size_t)sprintf(big_tr_bad + n, "\r\n\r\n");
    chunk_big[3] = (struct chunk_case){.name = "trailer over cap",
                                       .in = big_tr_bad,
                                       .len = n,
                                       .want = -1,
                                       .why = "trailer section too large"};
}

/*
 * Decodes <in> in place (at the guard page) in pieces: <step> bytes at a
 * time when <step> > 0, else split once at <split>. Collects the decoded
 * bytes in <out>; returns the final result and the input bytes used.
 */
static int
decode_pieces(const struct chunk_case *t, size_t split, size_t step, char *out, size_t *out_len,
              size_t *used, struct http_chunked *c)
{
    char *g = at_guard(t->in, t->len);
    size_t off = 0;
    int r = 0;

    http_chunked_init(c);
    *out_len = 0;
    while (off < t->len) {
        size_t n = step > 0 ? step : off < split ? split - off : t->len - off;
        size_t ol = 99999, cons = 99999;

        if (n > t->len - off)
            n = t->len - off;
        r = http_chunked_decode(c, g + off, n, &ol, &cons);
        ck_assert_msg(cons <= n && ol <= cons, "%s: consumed %zu of %zu, out %zu", t->name, cons,
                      n, ol);
        memcpy(out + *out_len, g + off, ol);
        *out_len += ol;
        off += cons;
        if (r != 0)
            break;
        ck_assert_msg(cons == n, "%s: need-more but consumed %zu of %zu", t->name, cons, n);
    }
    *used = off;
    return r;
}

static void
run_chunk_case(const struct chunk_case *t)
{
    static char out[32768];
    struct http_chunked c;
    size_t out_len, used, want_used = t->consumed ? t->consumed : t->len;
    int r;

    ck_assert_uint_le(t->len, sizeof(out));
    /*
     * Split once at every point (0 and len mean "all at once"); len + 1
     * means byte by byte. Big rows: a few splits, each under sanitizers
     * costs a full pass.
     */
    for (size_t split = 0; split <= t->len + 1; split++) {
        size_t step = split == t->len + 1 ? 1 : 0;

        if (t->len > 1000 && split > 3 && split < t->len - 3 && split != t->len / 2)
            continue;

        r = decode_pieces(t, split, step, out, &out_len, &used, &c);
        ck_assert_msg(r == t->want, "%s: split %zu: got %d, want %d", t->name, split, r, t->want);
        if (t->want < 0) {
            ck_assert_msg(c.why != NULL && strcmp(c.why, t->why) == 0,
                          "%s: split %zu: reason \"%s\", want \"%s\"", t->name, split,
                          c.why ? c.why : "(null)", t->why);
            continue;
        }
        ck_assert_msg(c.why == NULL, "%s: split %zu: reason \"%s\" without an error", t->name,
                      split, c.why);
        ck_assert_msg(out_len == t->body_len && memcmp(out, t->body, out_len) == 0,
                      "%s: split %zu: body of %zu bytes differs", t->name, split, out_len);
        ck_assert_uint_eq(c.total, t->body_len);
        ck_assert_msg(used == want_used, "%s: split %zu: used %zu, want %zu", t->name, split, used,
                      want_used);
    }
    if (t->want == 1) {
        size_t ol, cons;

        /* once done, it stays done and consumes nothing more */
        r = http_chunked_decode(&c, (char *)guard_hi - 1, 1, &ol, &cons);
        ck_assert_int_eq(r, 1);
        ck_assert_uint_eq(cons, 0);
        ck_assert_uint_eq(ol, 0);
    }
}

START_TEST(test_chunked)
{
    run_chunk_case(&chunk_cases[_i]);
}
END_TEST

START_TEST(test_chunked_big)
{
    run_chunk_case(&chunk_big[_i]);
}
END_TEST

START_TEST(test_chunked_large_body)
{
    /* 64 KiB body in 1000-byte chunks, fed in 777-byte pieces */
    static char in[80000], out[70000];
    struct http_chunked c;
    size_t n = 0, got = 0, off = 0;
    int r = 0;

    for (int i = 0; i < 65; i++) {
        n += (size_t)sprintf(in + n, "%x\r\n", 1000);
        for (int j = 0; j < 1000; j++)
            in[n++] = (char)('a' + (i * 1000 + j) % 26);
        n += (size_t)sprintf(in + n, "\r\n");
    }
    n += (size_t)sprintf(in + n, "0\r\n\r\n");
    http_chunked_init(&c);
    while (off < n) {
        size_t piece = n - off < 777 ? n - off : 777, ol, cons;

        r = http_chunked_decode(&c, in + off, piece, &ol, &cons);
        memcpy(out + got, in + off, ol);
        got += ol;
        off += cons;
        if (r != 0)
            break;
    }
    ck_assert_int_eq(r, 1);
    ck_assert_uint_eq(off, n);
    ck_assert_uint_eq(got, 65000);
    ck_assert_uint_eq(c.total, 65000);
    for (size_t i = 0; i < got; i++)
        ck_assert_int_eq(out[i], 'a' + (int)(i % 26));
}
END_TEST

static Suite *
http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc;

    tc = tcase_create("request");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_request_bad, 0, sizeof(req_bad) / sizeof(req_bad[0]));
    tcase_add_loop_test(tc, test_request_ok, 0, sizeof(req_ok) / sizeof(req_ok[0]));
    tcase_add_test(tc, test_request_many_fields);
    tcase_add_test(tc, test_request_limits);
    suite_add_tcase(s, tc);

    tc = tcase_create("response");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_response, 0, sizeof(resp_cases) / sizeof(resp_cases[0]));
    tcase_add_test(tc, test_response_limits);
    suite_add_tcase(s, tc);

    tc = tcase_create("helpers");
    tcase_add_test(tc, test_helpers);
    suite_add_tcase(s, tc);

    tc = tcase_create("chunked");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_chunked, 0, sizeof(chunk_cases) / sizeof(chunk_cases[0]));
    tcase_add_loop_test(tc, test_chunked_big, 0, sizeof(chunk_big) / sizeof(chunk_big[0]));
    tcase_add_test(tc, test_chunked_large_body);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    guard_setup();
    chunk_big_setup();
    return tl_run(http_suite());
}
