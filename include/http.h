/*
 * http: the strict HTTP/1.1 message-head parser and chunked decoder
 * (RFC 9112). This is the proxy's security boundary: any framing that
 * could be read two ways is rejected, never guessed at.
 *
 * Contract (in the style of picohttpparser):
 *  - Parsers are zero-copy: every string handed back is a slice into the
 *    caller's buffer, valid as long as that buffer is.
 *  - They are re-entrant and incremental in the simple way: call again with
 *    the same buffer start and a larger length after more bytes arrived.
 *    No state is kept between calls; partial input never reads past <len>.
 *  - Return value: > 0 bytes consumed (the whole head, final CRLF included),
 *    HTTP_NEED_MORE when the head is not complete yet, HTTP_INVALID when it
 *    never can be; then <*status> holds the HTTP status to answer with
 *    (400, 414, 431, 501, 505 for requests; 502 for responses), and the
 *    message's <why> and <why_header> say why, for the logs.
 *  - Lines end in CRLF. A bare LF or bare CR is invalid.
 *  - Every call validates the bytes it is given as far as they go, so
 *    garbage is refused as soon as it arrives and the verdict does not
 *    depend on how the input was split; a call on an incomplete head costs
 *    one pass over the bytes so far.
 */
#ifndef MP_HTTP_H
#define MP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP_NEED_MORE (-2)
#define HTTP_INVALID (-1)

/* More header fields than this in one head: 431 (request) / 502 (response). */
#define HTTP_MAX_HEADERS 100

struct http_slice {
    const char *p;
    size_t len;
};

struct http_header {
    struct http_slice name;  /* a token; case preserved */
    struct http_slice value; /* leading and trailing SP/HTAB removed */
};

/* What a head says about its body. */
enum http_framing {
    HTTP_BODY_NONE,    /* no body (request without CL/TE, or CL: 0; a response with
                          CL: 0, to HEAD, or 1xx/204/304) */
    HTTP_BODY_LENGTH,  /* Content-Length bytes follow */
    HTTP_BODY_CHUNKED, /* Transfer-Encoding: chunked */
    HTTP_BODY_CLOSE,   /* response only: body runs until the upstream closes */
};

/*
 * Facts derived from the header fields, shared by requests and responses.
 * The parser fills these so the proxy never scans headers again.
 */
struct http_head_info {
    enum http_framing framing;
    uint64_t content_length; /* with HTTP_BODY_LENGTH; also the Content-Length of a
                                response framed NONE (HEAD, 304), else 0 */
    bool conn_close;         /* Connection: close present */
    bool conn_keep_alive;    /* Connection: keep-alive present */
    bool keep_alive;         /* persistent after this message, from version + Connection */
};

/*
 * Why a head was refused, in struct http_request and struct http_response:
 * set with every HTTP_INVALID, reset (NULL, 0) by every other result.
 *  - why: a static string naming the reason ("whitespace before colon",
 *    "bare LF", "Content-Length and Transfer-Encoding together"...), never
 *    NULL after HTTP_INVALID. It names the fault only: no bytes of the input.
 *  - why_header: the 1-based index of the header line concerned, counted
 *    from the first line after the start line (for a conflict between two
 *    fields, the later one); 0 when the reason is not about one header line
 *    (the start line, a missing Host, a head over its size limit).
 * The verdict does not depend on how the input was split, and neither do
 * these two.
 */

struct http_request {
    struct http_slice method; /* a token, e.g. "GET" */
    struct http_slice target; /* request-target as sent, e.g. "/a?b" */
    int minor_version;        /* 0 or 1: HTTP/1.0 or HTTP/1.1 */
    struct http_header headers[HTTP_MAX_HEADERS];
    size_t nheaders;
    struct http_head_info info;
    struct http_slice host; /* the Host value; len 0 if absent (HTTP/1.0 only) */
    bool expect_continue;   /* Expect: 100-continue, HTTP/1.1 only (RFC 9110 10.1.1) */
    const char *why;        /* with HTTP_INVALID: the reason (see above); else NULL */
    unsigned why_header;    /* with HTTP_INVALID: header line concerned, 1-based; else 0 */
};

struct http_response {
    int minor_version;        /* 0 or 1 */
    int status;               /* 100..599 */
    struct http_slice reason; /* may be empty */
    struct http_header headers[HTTP_MAX_HEADERS];
    size_t nheaders;
    struct http_head_info info;
    const char *why;     /* with HTTP_INVALID: the reason (see above); else NULL */
    unsigned why_header; /* with HTTP_INVALID: header line concerned, 1-based; else 0 */
};

/*
 * Parses a request head in <buf>[0..<len>). <max_head> bounds the head:
 * a request line longer than it is 414; a head longer than it, or with more
 * than HTTP_MAX_HEADERS fields, is 431. Rejected with 400: malformed
 * request line, method not a token, target with CTL/SP/non-ASCII bytes,
 * whitespace before a header colon, obs-fold, CTL or NUL in a field, field
 * name not a token, a missing Host on HTTP/1.1, more than one Host, both
 * Content-Length and Transfer-Encoding, differing or malformed
 * Content-Length values (identical repeats, also as a comma list, are
 * accepted), Transfer-Encoding on HTTP/1.0, chunked not the final coding or
 * given twice. A coding other than chunked (gzip, identity, ...) is 501.
 * An HTTP version other than 1.0/1.1 is 505.
 * Empty lines (CRLF) before the request-line are skipped (RFC 9112 2.2)
 * and counted in the bytes consumed and against <max_head>. <max_head>
 * above INT_MAX is taken as INT_MAX.
 */
int http_parse_request(const char *buf, size_t len, size_t max_head, struct http_request *req,
                       int *status);

/*
 * Parses an upstream's response head. Same syntax rules; any violation is
 * HTTP_INVALID with *status 502. <head_request> says the request was HEAD,
 * which together with 1xx/204/304 makes the framing HTTP_BODY_NONE. With
 * neither Content-Length nor chunked the framing is HTTP_BODY_CLOSE (and
 * keep_alive false). A response with both is invalid (502): we do not
 * forward what the upstream could not frame.
 */
int http_parse_response(const char *buf, size_t len, size_t max_head, bool head_request,
                        struct http_response *resp, int *status);

/* Finds header <name> (case-insensitive); returns its index or -1. */
int http_find_header(const struct http_header *h, size_t n, const char *name);

/*
 * True when the comma-separated list in <value> contains <token>
 * (case-insensitive, OWS around elements ignored). For Connection.
 */
bool http_list_has(struct http_slice value, const char *token, size_t token_len);

/* The reason phrase we use for <status> ("Bad Gateway"); "Unknown" if none. */
const char *http_reason(int status);

/*
 * Chunked transfer-coding decoder, incremental and in place.
 * Chunk extensions are syntax-checked and dropped; trailer fields are
 * syntax-checked (same rules as header fields) and dropped. Limits: chunk
 * size at most 16 hex digits and below 2^60, at most 4 KiB of extension per
 * chunk line (from the first byte after the size to the CR), at most 16 KiB
 * of trailers (the whole trailer section, final CRLF included).
 */
struct http_chunked {
    int state;          /* private */
    uint64_t remaining; /* private: data bytes left in the current chunk */
    uint32_t count;     /* private: digits / extension / trailer bytes seen */
    uint64_t total;     /* decoded body bytes so far */
    const char *why;    /* once the decoder returned -1: a static string naming the
                           reason ("invalid chunk size"...); NULL before */
};

void http_chunked_init(struct http_chunked *c);

/*
 * Decodes <buf>[0..<len>) in place. On return, <buf>[0..<*out_len>) holds
 * the decoded body bytes of this call and <*consumed> the number of input
 * bytes used. Returns 0 when more input is needed (then *consumed == len),
 * 1 when the body ended (the final CRLF after the trailers was consumed;
 * bytes from <buf>+<*consumed> on belong to the next message), or -1 when
 * the encoding is invalid.
 */
int http_chunked_decode(struct http_chunked *c, char *buf, size_t len, size_t *out_len,
                        size_t *consumed);

#endif
