/*
 * fuzz_http: libFuzzer target for the head parsers and the chunked decoder.
 *
 * The input goes to http_parse_request, http_parse_response and the chunked
 * decoder, whole and split at a position taken from its first byte, and the
 * results are checked against the contract: consumed <= len, every slice
 * inside the consumed head, statuses from the documented set, a reason
 * (<why>, <why_header>) exactly with a refusal, a verdict and reason that
 * do not depend on where the bytes were split, decoded output never longer
 * than the input used. Inputs are copied to exactly-sized heap
 * buffers so that ASan catches any read past <len>.
 */
#include "http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond)                                                                         \
    do {                                                                                          \
        if (!(cond))                                                                              \
            abort();                                                                              \
    } while (0)

static void
check_slice(struct http_slice s, const char *buf, int consumed)
{
    FUZZ_ASSERT(s.p >= buf && s.len <= (size_t)consumed &&
                (size_t)(s.p - buf) <= (size_t)consumed - s.len);
}

static void
check_headers(const struct http_header *h, size_t n, const char *buf, int consumed)
{
    FUZZ_ASSERT(n <= HTTP_MAX_HEADERS);
    for (size_t i = 0; i < n; i++) {
        FUZZ_ASSERT(h[i].name.len > 0);
        check_slice(h[i].name, buf, consumed);
        check_slice(h[i].value, buf, consumed);
    }
}

/* The reason of a refusal, to compare verdicts. */
struct fuzz_why {
    const char *why;
    unsigned line;
};

/*
 * Checks the reason <why> / <line> a parse left, with <nheaders> lines
 * parsed: set exactly when it refused; saves it in <*out>.
 */
static void
check_why(int r, const char *why, unsigned line, size_t nheaders, struct fuzz_why *out)
{
    if (r == HTTP_INVALID) {
        FUZZ_ASSERT(why != NULL && why[0] != '\0');
        FUZZ_ASSERT(line <= nheaders + 1 && line <= HTTP_MAX_HEADERS + 1);
    } else {
        FUZZ_ASSERT(why == NULL && line == 0);
    }
    out->why = why;
    out->line = line;
}

/* Two refusals of the same bytes: same reason, same header line. */
static void
same_why(const struct fuzz_why *a, const struct fuzz_why *b)
{
    FUZZ_ASSERT(strcmp(a->why, b->why) == 0 && a->line == b->line);
}

/* Parses <buf>[0..<len>) as a request; checks the result; returns it, the reason in <*why>. */
static int
fuzz_request(const char *buf, size_t len, size_t max_head, int *status, struct fuzz_why *why)
{
    static struct http_request req;
    int r = http_parse_request(buf, len, max_head, &req, status);

    check_why(r, req.why, req.why_header, req.nheaders, why);
    if (r == HTTP_INVALID) {
        FUZZ_ASSERT(*status == 400 || *status == 414 || *status == 431 || *status == 501 ||
                    *status == 505);
        return r;
    }
    if (r == HTTP_NEED_MORE) {
        FUZZ_ASSERT(len < max_head);
        return r;
    }
    FUZZ_ASSERT(r > 0 && (size_t)r <= len && (size_t)r <= max_head);
    FUZZ_ASSERT(buf[r - 1] == '\n' && buf[r - 2] == '\r');
    FUZZ_ASSERT(req.minor_version == 0 || req.minor_version == 1);
    FUZZ_ASSERT(req.method.len > 0 && req.target.len > 0);
    check_slice(req.method, buf, r);
    check_slice(req.target, buf, r);
    check_headers(req.headers, req.nheaders, buf, r);
    if (req.host.len > 0)
        check_slice(req.host, buf, r);
    else
        FUZZ_ASSERT(req.minor_version == 0);
    FUZZ_ASSERT(req.info.framing == HTTP_BODY_NONE || req.info.framing == HTTP_BODY_LENGTH ||
                req.info.framing == HTTP_BODY_CHUNKED);
    if (req.info.framing == HTTP_BODY_LENGTH)
        FUZZ_ASSERT(req.info.content_length > 0 && req.info.content_length <= (UINT64_C(1) << 62));
    if (req.info.framing == HTTP_BODY_CHUNKED)
        FUZZ_ASSERT(req.minor_version == 1);
    if (req.info.keep_alive)
        FUZZ_ASSERT(!req.info.conn_close);
    return r;
}

static int
fuzz_response(const char *buf, size_t len, size_t max_head, bool head, int *status,
              struct fuzz_why *why)
{
    static struct http_response resp;
    int r = http_parse_response(buf, len, max_head, head, &resp, status);

    check_why(r, resp.why, resp.why_header, resp.nheaders, why);
    if (r == HTTP_INVALID) {
        FUZZ_ASSERT(*status == 502);
        return r;
    }
    if (r == HTTP_NEED_MORE) {
        FUZZ_ASSERT(len < max_head);
        return r;
    }
    FUZZ_ASSERT(r > 0 && (size_t)r <= len && (size_t)r <= max_head);
    FUZZ_ASSERT(resp.status >= 100 && resp.status <= 599);
    FUZZ_ASSERT(resp.minor_version == 0 || resp.minor_version == 1);
    check_slice(resp.reason, buf, r);
    check_headers(resp.headers, resp.nheaders, buf, r);
    if (head || resp.status < 200 || resp.status == 204 || resp.status == 304)
        FUZZ_ASSERT(resp.info.framing == HTTP_BODY_NONE);
    if (resp.info.framing == HTTP_BODY_CLOSE)
        FUZZ_ASSERT(!resp.info.keep_alive);
    return r;
}

/* Exactly-sized heap copy, so that ASan flags any read at or past <len>. */
static char *
dup_exact(const uint8_t *data, size_t len)
{
    char *p = malloc(len ? len : 1);

    FUZZ_ASSERT(p != NULL);
    if (len)
        memcpy(p, data, len);
    return p;
}

static void
fuzz_heads(const uint8_t *data, size_t size, size_t split, size_t max_head)
{
    char *whole = dup_exact(data, size);
    char *part = dup_exact(data, split);
    int st_whole, st_part, r_whole, r_part;
    struct fuzz_why why_whole, why_part;

    /* requests: a verdict on a prefix, and its reason, must stand for the whole input */
    r_whole = fuzz_request(whole, size, max_head, &st_whole, &why_whole);
    r_part = fuzz_request(part, split, max_head, &st_part, &why_part);
    if (r_part == HTTP_INVALID) {
        FUZZ_ASSERT(r_whole == HTTP_INVALID && st_whole == st_part);
        same_why(&why_whole, &why_part);
    } else if (r_part > 0) {
        FUZZ_ASSERT(r_whole == r_part);
    }

    r_whole = fuzz_response(whole, size, max_head, data[size - 1] & 1, &st_whole, &why_whole);
    r_part = fuzz_response(part, split, max_head, data[size - 1] & 1, &st_part, &why_part);
    if (r_part == HTTP_INVALID) {
        FUZZ_ASSERT(r_whole == HTTP_INVALID);
        same_why(&why_whole, &why_part);
    } else if (r_part > 0) {
        FUZZ_ASSERT(r_whole == r_part);
    }
    free(whole);
    free(part);
}

/*
 * Decodes <data> in place in pieces: split once at <split> (split == size:
 * one piece), or <step> bytes at a time when <step> > 0. Returns the
 * result, the decoded bytes in <out>, and the input used in <*used>.
 */
static int
fuzz_chunked_once(const uint8_t *data, size_t size, size_t split, size_t step, char *out,
                  size_t *out_len, size_t *used)
{
    struct http_chunked c;
    size_t off = 0, total = 0;
    int r = 0;

    http_chunked_init(&c);
    *out_len = 0;
    while (off < size) {
        size_t n = step > 0 ? (size - off < step ? size - off : step)
                            : (off < split ? split - off : size - off);
        char *buf = dup_exact(data + off, n);
        size_t ol = SIZE_MAX, cons = SIZE_MAX;

        r = http_chunked_decode(&c, buf, n, &ol, &cons);
        FUZZ_ASSERT(cons <= n && ol <= cons);
        FUZZ_ASSERT(r >= -1 && r <= 1);
        FUZZ_ASSERT((r == -1) == (c.why != NULL));
        if (r == 0)
            FUZZ_ASSERT(cons == n);
        memcpy(out + *out_len, buf, ol);
        *out_len += ol;
        total += ol;
        FUZZ_ASSERT(c.total == total);
        off += cons;
        free(buf);
        if (r != 0)
            break;
    }
    *used = off;
    return r;
}

static void
fuzz_chunked(const uint8_t *data, size_t size, size_t split)
{
    char *out1 = malloc(size + 1), *out2 = malloc(size + 1);
    size_t l1, l2, u1, u2;
    int r1, r2;

    FUZZ_ASSERT(out1 != NULL && out2 != NULL);
    r1 = fuzz_chunked_once(data, size, size, 0, out1, &l1, &u1);
    FUZZ_ASSERT(l1 <= u1);
    /* the decoder is incremental: where the input is split changes nothing */
    r2 = fuzz_chunked_once(data, size, split, 0, out2, &l2, &u2);
    FUZZ_ASSERT(r1 == r2);
    if (r1 != -1)
        FUZZ_ASSERT(u1 == u2 && l1 == l2 && memcmp(out1, out2, l1) == 0);
    if (size <= 256) {
        r2 = fuzz_chunked_once(data, size, 0, 1, out2, &l2, &u2);
        FUZZ_ASSERT(r1 == r2);
        if (r1 != -1)
            FUZZ_ASSERT(u1 == u2 && l1 == l2 && memcmp(out1, out2, l1) == 0);
    }
    free(out1);
    free(out2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t split, max_head;
    uint8_t last;

    if (size == 0)
        return 0;
    /* split point and head limit come from the last byte, which stays in the input */
    last = data[size - 1];
    split = ((size_t)last * 7 + size / 3) % (size + 1);
    max_head = (last & 0x40) ? 16 + (last & 0x3f) * 4 : 8192;
    fuzz_heads(data, size, split, max_head);
    fuzz_chunked(data, size, split);
    return 0;
}
