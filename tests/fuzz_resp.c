/*
 * fuzz_resp: libFuzzer target for what an upstream sends back: a response
 * head, then, when the head says chunked, the chunked body, as the proxy
 * reads them.
 *
 * Input: one control byte, then the bytes of the upstream's stream. The
 * control byte says whether the request was HEAD, how small the head limit
 * is, and seeds the piece sizes. The head is parsed from an exactly-sized
 * heap copy, so that ASan flags any read at or past <len>, and checked
 * against the contract (consumed <= len, slices inside the head, status in
 * range, <why> set exactly when refused). When the framing is chunked, the
 * rest of the stream goes through the decoder in pieces of random sizes,
 * each an exactly-sized heap copy (ASan: the in-place decoder never reads
 * or writes beyond its input), and the result is checked: output never
 * longer than the input used, <total> the sum of the outputs, need-more
 * only when a piece was used up, a final verdict that sticks, a reason
 * exactly with an error, and the same verdict, output and bytes used as
 * when the body is decoded in one piece.
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

/* Exactly-sized heap copy, so that ASan flags any access at or past <len>. */
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
check_slice(struct http_slice s, const char *buf, int consumed)
{
    FUZZ_ASSERT(s.p >= buf && s.len <= (size_t)consumed &&
                (size_t)(s.p - buf) <= (size_t)consumed - s.len);
}

/* Parses and checks the head in <buf>[0..<len>); returns what the parser did. */
static int
fuzz_head(const char *buf, size_t len, size_t max_head, bool head, struct http_response *resp)
{
    int status = -7;
    int r = http_parse_response(buf, len, max_head, head, resp, &status);

    if (r == HTTP_INVALID) {
        FUZZ_ASSERT(status == 502);
        FUZZ_ASSERT(resp->why != NULL && resp->why[0] != '\0');
        /* a header line that exists, or the one being read */
        FUZZ_ASSERT(resp->why_header <= resp->nheaders + 1);
        FUZZ_ASSERT(resp->why_header <= HTTP_MAX_HEADERS + 1);
        return r;
    }
    FUZZ_ASSERT(resp->why == NULL && resp->why_header == 0);
    if (r == HTTP_NEED_MORE) {
        FUZZ_ASSERT(len < max_head);
        return r;
    }
    FUZZ_ASSERT(r > 0 && (size_t)r <= len && (size_t)r <= max_head);
    FUZZ_ASSERT(buf[r - 1] == '\n' && buf[r - 2] == '\r');
    FUZZ_ASSERT(resp->status >= 100 && resp->status <= 599);
    FUZZ_ASSERT(resp->minor_version == 0 || resp->minor_version == 1);
    FUZZ_ASSERT(resp->nheaders <= HTTP_MAX_HEADERS);
    check_slice(resp->reason, buf, r);
    for (size_t i = 0; i < resp->nheaders; i++) {
        FUZZ_ASSERT(resp->headers[i].name.len > 0);
        check_slice(resp->headers[i].name, buf, r);
        check_slice(resp->headers[i].value, buf, r);
    }
    if (head || resp->status < 200 || resp->status == 204 || resp->status == 304)
        FUZZ_ASSERT(resp->info.framing == HTTP_BODY_NONE);
    if (resp->info.framing == HTTP_BODY_CHUNKED)
        FUZZ_ASSERT(resp->minor_version == 1);
    if (resp->info.framing == HTTP_BODY_CLOSE)
        FUZZ_ASSERT(!resp->info.keep_alive);
    return r;
}

/* A small deterministic generator for the piece sizes (xorshift32). */
static uint32_t
next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/*
 * Decodes <body>[0..<len>) in pieces: all at once when <seed> is 0, else of
 * sizes drawn from <seed> (mostly small, sometimes large, sometimes empty,
 * never two empty ones in a row). Checks every call; returns the verdict,
 * the output in <out> (<*out_len>), the input used in <*used> and the
 * reason of an error in <*why>.
 */
static int
fuzz_body(const uint8_t *body, size_t len, uint32_t seed, char *out, size_t *out_len, size_t *used,
          const char **why)
{
    struct http_chunked c;
    size_t off = 0, n = 1;
    int r = 0;

    http_chunked_init(&c);
    *out_len = 0;
    for (size_t calls = 0; off < len || calls == 0; calls++) {
        size_t prev = n, ol = SIZE_MAX, cons = SIZE_MAX;
        char *piece;

        /* every call but an empty one uses a byte, and empty ones alternate */
        FUZZ_ASSERT(calls <= 2 * len + 1);
        n = len - off;
        if (seed != 0) {
            uint32_t x = next_rand(&seed);
            size_t want = (x & 3) == 1 ? (x >> 8) % 4096 : (x >> 8) % 16;

            if ((x & 3) == 0 && prev > 0)
                want = 0;
            else if (want == 0)
                want = 1;
            if (want < n)
                n = want;
        }
        piece = dup_exact(body + off, n);
        r = http_chunked_decode(&c, piece, n, &ol, &cons);
        FUZZ_ASSERT(r >= -1 && r <= 1);
        FUZZ_ASSERT(cons <= n && ol <= cons);
        if (r == 0)
            FUZZ_ASSERT(cons == n);
        FUZZ_ASSERT((r == -1) == (c.why != NULL));
        memcpy(out + *out_len, piece, ol);
        *out_len += ol;
        off += cons;
        FUZZ_ASSERT(c.total == *out_len && *out_len <= off);
        free(piece);
        if (r != 0)
            break;
    }
    if (r != 0) {
        /* the verdict sticks: nothing more is used or produced */
        char one = 'x';
        size_t ol = SIZE_MAX, cons = SIZE_MAX;
        const char *why = c.why;

        FUZZ_ASSERT(http_chunked_decode(&c, &one, 1, &ol, &cons) == r);
        FUZZ_ASSERT(ol == 0 && cons == 0 && c.why == why);
    }
    *used = off;
    *why = c.why;
    return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct http_response resp;
    const uint8_t *stream;
    const char *why1, *why2;
    size_t len, max_head, l1, l2, u1, u2;
    char *buf, *out1, *out2;
    bool head;
    int r, d1, d2;

    if (size == 0)
        return 0;
    stream = data + 1;
    len = size - 1;
    head = (data[0] & 0x80) != 0;
    max_head = (data[0] & 0x40) ? 16 + (data[0] & 0x3f) * 8 : 8192;
    buf = dup_exact(stream, len);
    r = fuzz_head(buf, len, max_head, head, &resp);
    free(buf);
    if (r <= 0 || resp.info.framing != HTTP_BODY_CHUNKED)
        return 0;

    stream += r;
    len -= (size_t)r;
    out1 = malloc(len + 1);
    out2 = malloc(len + 1);
    FUZZ_ASSERT(out1 != NULL && out2 != NULL);
    d1 = fuzz_body(stream, len, 0, out1, &l1, &u1, &why1);
    d2 = fuzz_body(stream, len, 0x9e3779b9u ^ (uint32_t)data[0] ^ ((uint32_t)size << 8), out2, &l2,
                   &u2, &why2);
    /* where the pieces were cut changes nothing, not even the reason of an error */
    FUZZ_ASSERT(d1 == d2);
    if (d1 == -1)
        FUZZ_ASSERT(strcmp(why1, why2) == 0);
    else
        FUZZ_ASSERT(u1 == u2 && l1 == l2 && memcmp(out1, out2, l1) == 0);
    free(out1);
    free(out2);
    return 0;
}
