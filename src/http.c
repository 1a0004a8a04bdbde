/*
 * http: strict RFC 9112 message-head parser and chunked decoder. See
 * include/http.h for the contract.
 *
 * Heads are parsed in one validating pass that stops where the bytes end,
 * so garbage is refused as soon as it arrives (not when the limit is hit)
 * and the verdict does not depend on how the bytes were split. A call on
 * an incomplete head costs one pass over what is there, no more than a
 * search for the blank line would. No state is kept between calls and
 * nothing is read at or past <len>.
 *
 * The chunked decoder is a byte-level state machine, so it accepts input
 * split anywhere, and decodes in place (the write index never passes the
 * read index).
 */
#include "http.h"

#include <limits.h>
#include <string.h>

/* Character classes, one bit each. */
#define CT_TOKEN 0x01 /* tchar (RFC 9110 5.6.2) */
#define CT_DIGIT 0x02
#define CT_HEX 0x04
#define CT_HOST 0x08 /* reg-name byte: unreserved / sub-delims (RFC 3986), '%' apart */

static const unsigned char http_ctab[256] = {
    ['0' ... '9'] = CT_TOKEN | CT_DIGIT | CT_HEX | CT_HOST,
    ['A' ... 'F'] = CT_TOKEN | CT_HEX | CT_HOST,
    ['G' ... 'Z'] = CT_TOKEN | CT_HOST,
    ['a' ... 'f'] = CT_TOKEN | CT_HEX | CT_HOST,
    ['g' ... 'z'] = CT_TOKEN | CT_HOST,
    ['!'] = CT_TOKEN | CT_HOST,
    ['#'] = CT_TOKEN,
    ['$'] = CT_TOKEN | CT_HOST,
    ['%'] = CT_TOKEN,
    ['&'] = CT_TOKEN | CT_HOST,
    ['\''] = CT_TOKEN | CT_HOST,
    ['*'] = CT_TOKEN | CT_HOST,
    ['+'] = CT_TOKEN | CT_HOST,
    ['-'] = CT_TOKEN | CT_HOST,
    ['.'] = CT_TOKEN | CT_HOST,
    ['^'] = CT_TOKEN,
    ['_'] = CT_TOKEN | CT_HOST,
    ['`'] = CT_TOKEN,
    ['|'] = CT_TOKEN,
    ['~'] = CT_TOKEN | CT_HOST,
    ['('] = CT_HOST,
    [')'] = CT_HOST,
    [','] = CT_HOST,
    [';'] = CT_HOST,
    ['='] = CT_HOST,
};

#define IS(c, cls) ((http_ctab[(unsigned char)(c)] & (cls)) != 0)

/* Largest Content-Length we accept: anything above cannot be a real body. */
#define HTTP_MAX_CONTENT_LENGTH (UINT64_C(1) << 62)
/* Chunk sizes must stay below this (and fit in 16 hex digits). */
#define HTTP_CHUNK_SIZE_LIMIT (UINT64_C(1) << 60)
#define HTTP_CHUNK_MAX_DIGITS 16
#define HTTP_CHUNK_MAX_EXT 4096
#define HTTP_CHUNK_MAX_TRAILER 16384

/* Why a header section was refused; mapped to a status by the caller. */
enum http_err {
    ERR_NONE = 0,
    ERR_SYNTAX,   /* 400 */
    ERR_TOO_MANY, /* 431 */
};

/*
 * The reason for a refusal, as handed back in <why> / <why_header>: a
 * static string, and the 1-based index of the header line concerned (0 when
 * the reason is not about one line).
 */
struct http_why {
    const char *why;
    unsigned line;
};

/* What the header section said, gathered in one pass over the fields. */
struct http_fields {
    unsigned nhost;
    struct http_slice host;
    bool has_cl;
    uint64_t cl;
    unsigned cl_line; /* 1-based index of the last Content-Length field */
    bool has_te;
    unsigned te_line;     /* 1-based index of the last Transfer-Encoding field */
    unsigned te_chunked;  /* times "chunked" was listed */
    bool te_last_chunked; /* the last coding listed is chunked */
    bool te_other;        /* a coding other than chunked was listed */
    bool conn_close;
    bool conn_keep_alive;
    bool expect_continue;
};

static bool
is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* A field-value byte: HTAB, SP, VCHAR or obs-text; never CR, LF, NUL, DEL. */
static bool
is_field_byte(char c)
{
    unsigned char u = (unsigned char)c;

    return u == '\t' || (u >= 0x20 && u != 0x7f);
}

static unsigned char
lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* <a>[0..<alen>) equals <b>[0..<blen>), ignoring ASCII case. */
static bool
ieq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

#define IEQ_LIT(p, len, lit) ieq((p), (len), (lit), sizeof(lit) - 1)

/* Trims SP/HTAB on both sides of <s>[*b..*e). */
static void
trim_ows(const char *s, size_t *b, size_t *e)
{
    while (*b < *e && is_ows(s[*b]))
        (*b)++;
    while (*e > *b && is_ows(s[*e - 1]))
        (*e)--;
}

/*
 * Iterates over the comma-separated list <p>[0..<len>): list_next() hands
 * back each element in order, OWS trimmed, empty ones included, and
 * returns false when there is none left.
 */
struct list_iter {
    const char *p;
    size_t len;
    size_t pos;
    bool done;
};

static bool
list_next(struct list_iter *it, struct http_slice *elem)
{
    size_t b, e;

    if (it->done)
        return false;
    b = it->pos;
    e = b;
    while (e < it->len && it->p[e] != ',')
        e++;
    if (e == it->len)
        it->done = true;
    else
        it->pos = e + 1;
    trim_ows(it->p, &b, &e);
    elem->p = it->p + b;
    elem->len = e - b;
    return true;
}

/*
 * Host = uri-host [ ":" port ] (RFC 9110 7.2), uri-host being a reg-name,
 * an IPv4 address (a subset of reg-name) or a bracketed IPv6 literal. No
 * userinfo, no empty host; the port is up to 5 digits.
 */
static bool
host_valid(const char *s, size_t n)
{
    size_t i = 0;

    if (n == 0)
        return false;
    if (s[0] == '[') {
        bool colon = false;

        for (i = 1; i < n && s[i] != ']'; i++) {
            if (s[i] == ':')
                colon = true;
            else if (!IS(s[i], CT_HEX) && s[i] != '.')
                return false;
        }
        if (i == n || !colon)
            return false;
        i++; /* the ']' */
    } else {
        while (i < n && s[i] != ':') {
            if (s[i] == '%') {
                if (n - i < 3 || !IS(s[i + 1], CT_HEX) || !IS(s[i + 2], CT_HEX))
                    return false;
                i += 3;
            } else if (IS(s[i], CT_HOST)) {
                i++;
            } else {
                return false;
            }
        }
        if (i == 0)
            return false;
    }
    if (i == n)
        return true;
    if (s[i] != ':' || n - i - 1 > 5)
        return false;
    for (i++; i < n; i++)
        if (!IS(s[i], CT_DIGIT))
            return false;
    return true;
}

/* 1*DIGIT, at most HTTP_MAX_CONTENT_LENGTH. */
static bool
parse_length(struct http_slice s, uint64_t *out)
{
    uint64_t v = 0;

    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        unsigned d;

        if (!IS(s.p[i], CT_DIGIT))
            return false;
        d = (unsigned)(s.p[i] - '0');
        if (v > (HTTP_MAX_CONTENT_LENGTH - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/*
 * Content-Length: a list whose elements must all be the same valid number,
 * also across repeated fields (RFC 9110 8.6 lets us accept "5, 5").
 */
static const char *
field_content_length(struct http_fields *f, struct http_slice v)
{
    struct list_iter it = {v.p, v.len, 0, false};
    struct http_slice e;

    while (list_next(&it, &e)) {
        uint64_t n;

        if (!parse_length(e, &n))
            return "invalid Content-Length";
        if (f->has_cl && n != f->cl)
            return "differing Content-Length values";
        f->has_cl = true;
        f->cl = n;
    }
    return NULL;
}

/*
 * Transfer-Encoding: codings accumulate over repeated fields, in order.
 * Each element must be a bare token (chunked takes no parameters; we
 * implement no other coding, so we need not parse theirs).
 */
static const char *
field_transfer_encoding(struct http_fields *f, struct http_slice v)
{
    struct list_iter it = {v.p, v.len, 0, false};
    struct http_slice e;

    f->has_te = true;
    while (list_next(&it, &e)) {
        if (e.len == 0)
            return "empty element in Transfer-Encoding";
        for (size_t i = 0; i < e.len; i++)
            if (!IS(e.p[i], CT_TOKEN))
                return "invalid Transfer-Encoding";
        if (IEQ_LIT(e.p, e.len, "chunked")) {
            f->te_chunked++;
            f->te_last_chunked = true;
        } else {
            f->te_other = true;
            f->te_last_chunked = false;
        }
    }
    return NULL;
}

/*
 * Applies the meaning of field <h>, header line <line> (1-based), to <f>.
 * Returns NULL, or why the field makes the head invalid. Host is a request
 * field: in a response it is just another field.
 */
static const char *
field_semantics(struct http_fields *f, const struct http_header *h, unsigned line, bool request)
{
    const char *n = h->name.p;
    size_t nl = h->name.len;

    switch (nl) {
    case 4:
        if (request && IEQ_LIT(n, nl, "host")) {
            if (++f->nhost > 1)
                return "more than one Host";
            if (!host_valid(h->value.p, h->value.len))
                return "invalid Host";
            f->host = h->value;
        }
        break;
    case 6:
        if (IEQ_LIT(n, nl, "expect") && IEQ_LIT(h->value.p, h->value.len, "100-continue"))
            f->expect_continue = true;
        break;
    case 10:
        if (IEQ_LIT(n, nl, "connection")) {
            if (http_list_has(h->value, "close", 5))
                f->conn_close = true;
            if (http_list_has(h->value, "keep-alive", 10))
                f->conn_keep_alive = true;
        }
        break;
    case 14:
        if (IEQ_LIT(n, nl, "content-length")) {
            f->cl_line = line;
            return field_content_length(f, h->value);
        }
        break;
    case 17:
        if (IEQ_LIT(n, nl, "transfer-encoding")) {
            f->te_line = line;
            return field_transfer_encoding(f, h->value);
        }
        break;
    default:
        break;
    }
    return NULL;
}

/* Why a header name that started at <buf>[<name>] stopped at <buf>[<p>]. */
static const char *
name_end_why(const char *buf, size_t name, size_t p)
{
    char c = buf[p];

    if (c == '\n')
        return "bare LF";
    if (p == name) {
        if (is_ows(c))
            return "header line starts with whitespace (obs-fold)";
        if (c == ':')
            return "empty header name";
    } else {
        if (is_ows(c))
            return "whitespace before colon";
        if (c == '\r')
            return "header line without colon";
    }
    return "invalid character in header name";
}

/*
 * Parses the header lines in <buf>[<p>..<lim>) up to and including the
 * empty line that ends the head. Returns the offset past that line,
 * HTTP_NEED_MORE when <lim> comes first, or HTTP_INVALID with *err and
 * *why set (why->line: the line of the header section, 1-based, where the
 * fault is; for a conflict between fields, the later field).
 * Fills <hdrs> / <*nhdrs> and <f> as lines complete, so garbage is refused
 * as soon as it arrives, not only once the head is whole.
 *
 * field-line = field-name ":" OWS field-value OWS. A line starting with
 * whitespace (obs-fold), whitespace before the colon, an empty name, bare
 * CR or LF, and CTLs other than HTAB in the value are all ERR_SYNTAX.
 */
static long
parse_fields(const char *buf, size_t p, size_t lim, bool request, struct http_header *hdrs,
             size_t *nhdrs, struct http_fields *f, enum http_err *err, struct http_why *why)
{
    size_t n = 0;

    memset(f, 0, sizeof(*f));
    *nhdrs = 0;
    for (;;) {
        size_t name = p, vb, ve;
        struct http_header *h;

        why->line = (unsigned)n + 1; /* the line being read, for any refusal below */
        if (p == lim)
            return HTTP_NEED_MORE;
        if (buf[p] == '\r') {
            if (p + 1 == lim)
                return HTTP_NEED_MORE;
            if (buf[p + 1] != '\n') {
                why->why = "bare CR";
                goto syntax;
            }
            return (long)(p + 2);
        }
        while (p < lim && IS(buf[p], CT_TOKEN))
            p++;
        if (p == lim)
            return HTTP_NEED_MORE;
        if (p == name || buf[p] != ':') {
            why->why = name_end_why(buf, name, p);
            goto syntax;
        }
        if (n == HTTP_MAX_HEADERS) {
            why->why = "too many header fields";
            *err = ERR_TOO_MANY;
            return HTTP_INVALID;
        }
        h = &hdrs[n];
        h->name.p = buf + name;
        h->name.len = p - name;
        vb = ++p;
        while (p < lim && buf[p] != '\r') {
            if (!is_field_byte(buf[p])) {
                why->why = buf[p] == '\n' ? "bare LF" : "invalid character in header value";
                goto syntax;
            }
            p++;
        }
        if (p + 1 >= lim)
            return HTTP_NEED_MORE;
        if (buf[p + 1] != '\n') {
            why->why = "bare CR";
            goto syntax;
        }
        ve = p;
        p += 2;
        trim_ows(buf, &vb, &ve);
        h->value.p = buf + vb;
        h->value.len = ve - vb;
        *nhdrs = ++n;
        if ((why->why = field_semantics(f, h, (unsigned)n, request)) != NULL)
            goto syntax;
    }

syntax:
    *err = ERR_SYNTAX;
    return HTTP_INVALID;
}

/*
 * Checks "HTTP/" DIGIT "." DIGIT at <buf>[*i..<lim>), as far as the bytes
 * go. Returns 1 when complete (then *i is past it, *major and *minor set),
 * 0 when <lim> was reached first, -1 when the bytes cannot be a version.
 */
static int
scan_version(const char *buf, size_t *i, size_t lim, int *major, int *minor)
{
    static const char tmpl[] = "HTTP/#.#";
    size_t start = *i;

    for (size_t k = 0; k < sizeof(tmpl) - 1; k++, (*i)++) {
        if (*i == lim)
            return 0;
        if (tmpl[k] == '#' ? !IS(buf[*i], CT_DIGIT) : buf[*i] != tmpl[k])
            return -1;
    }
    *major = buf[start + 5] - '0';
    *minor = buf[start + 7] - '0';
    return 1;
}

/*
 * CRLF at <buf>[*i..<lim>): 1 complete, 0 need more, -1 not a CRLF; then
 * *why says what came instead, with <other> for a byte that is not CR.
 */
static int
scan_crlf(const char *buf, size_t *i, size_t lim, const char *other, const char **why)
{
    if (*i == lim)
        return 0;
    if (buf[*i] != '\r') {
        *why = buf[*i] == '\n' ? "bare LF" : other;
        return -1;
    }
    if (*i + 1 == lim)
        return 0;
    if (buf[*i + 1] != '\n') {
        *why = "bare CR";
        return -1;
    }
    *i += 2;
    return 1;
}

/*
 * Why the method (<method>) or the target that started at <buf>[<start>]
 * stopped at <buf>[<i>], on a byte other than the SP that should end it.
 */
static const char *
run_end_why(const char *buf, size_t start, size_t i, bool method)
{
    if (buf[i] == '\n')
        return "bare LF";
    if (i == start && buf[i] == ' ')
        return method ? "empty method" : "empty target";
    if (!method && buf[i] == '\r')
        return "no HTTP version in request line";
    return method ? "invalid character in method" : "invalid character in target";
}

/*
 * request-line = method SP request-target SP HTTP-version CRLF, starting at
 * <start>, looking no further than <lim>. Returns the offset past the CRLF,
 * HTTP_NEED_MORE, or HTTP_INVALID with *status 400 or 505 and req->why set.
 */
static long
parse_request_line(const char *buf, size_t start, size_t lim, struct http_request *req,
                   int *status)
{
    size_t i = start, t;
    int major, minor, r;

    while (i < lim && IS(buf[i], CT_TOKEN))
        i++;
    if (i == lim)
        return HTTP_NEED_MORE;
    if (i == start || buf[i] != ' ') {
        req->why = run_end_why(buf, start, i, true);
        goto bad;
    }
    req->method.p = buf + start;
    req->method.len = i - start;

    t = ++i;
    while (i < lim && (unsigned char)buf[i] >= 0x21 && (unsigned char)buf[i] <= 0x7e)
        i++;
    if (i == lim)
        return HTTP_NEED_MORE;
    if (i == t || buf[i] != ' ') {
        req->why = run_end_why(buf, t, i, false);
        goto bad;
    }
    req->target.p = buf + t;
    req->target.len = i - t;
    i++;

    if ((r = scan_version(buf, &i, lim, &major, &minor)) < 0)
        req->why = "malformed HTTP version";
    if (r <= 0)
        goto partial;
    if ((r = scan_crlf(buf, &i, lim, "junk after HTTP version", &req->why)) <= 0)
        goto partial;
    if (major != 1 || minor > 1) {
        req->why = "unsupported HTTP version";
        *status = 505;
        return HTTP_INVALID;
    }
    req->minor_version = minor;
    return (long)i;

partial:
    if (r == 0)
        return HTTP_NEED_MORE;
bad:
    *status = 400;
    return HTTP_INVALID;
}

/*
 * status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF; we
 * also take a missing SP before CRLF. Returns the offset past the CRLF,
 * HTTP_NEED_MORE or HTTP_INVALID with resp->why set.
 */
static long
parse_status_line(const char *buf, size_t lim, struct http_response *resp)
{
    size_t i = 0, rb;
    int major, minor, r, code = 0;

    if ((r = scan_version(buf, &i, lim, &major, &minor)) < 0)
        resp->why = "malformed HTTP version";
    if (r <= 0)
        goto partial;
    if (i == lim)
        return HTTP_NEED_MORE;
    if (buf[i++] != ' ') {
        resp->why = "no SP after HTTP version";
        return HTTP_INVALID;
    }
    for (int k = 0; k < 3; k++, i++) {
        if (i == lim)
            return HTTP_NEED_MORE;
        if (!IS(buf[i], CT_DIGIT)) {
            resp->why = "status code not 3 digits";
            return HTTP_INVALID;
        }
        code = code * 10 + (buf[i] - '0');
    }
    if (i == lim)
        return HTTP_NEED_MORE;
    if (buf[i] == ' ') {
        i++;
    } else if (buf[i] != '\r') {
        resp->why = buf[i] == '\n' ? "bare LF" : "status code not 3 digits";
        return HTTP_INVALID;
    }
    rb = i;
    while (i < lim && buf[i] != '\r') {
        if (!is_field_byte(buf[i])) {
            resp->why = buf[i] == '\n' ? "bare LF" : "invalid character in reason phrase";
            return HTTP_INVALID;
        }
        i++;
    }
    resp->reason.p = buf + rb;
    resp->reason.len = i - rb;
    if ((r = scan_crlf(buf, &i, lim, "junk after reason phrase", &resp->why)) <= 0)
        goto partial;
    if (major != 1 || minor > 1) {
        resp->why = "unsupported HTTP version";
        return HTTP_INVALID;
    }
    if (code < 100 || code > 599) {
        resp->why = "status code out of range";
        return HTTP_INVALID;
    }
    resp->minor_version = minor;
    resp->status = code;
    return (long)i;

partial:
    return r == 0 ? HTTP_NEED_MORE : HTTP_INVALID;
}

static void
info_keep_alive(struct http_head_info *info, int minor, const struct http_fields *f)
{
    info->conn_close = f->conn_close;
    info->conn_keep_alive = f->conn_keep_alive;
    if (f->conn_close)
        info->keep_alive = false;
    else
        info->keep_alive = minor >= 1 || f->conn_keep_alive;
}

/*
 * Why the Transfer-Encoding codings in <f> cannot frame a message: chunked
 * listed more than once, or not last. NULL when neither.
 */
static const char *
te_chunked_why(const struct http_fields *f)
{
    if (f->te_chunked > 1)
        return "chunked given more than once";
    if (f->te_chunked == 1 && !f->te_last_chunked)
        return "chunked not the final transfer coding";
    return NULL;
}

/* The later of two header lines, for a conflict between two fields. */
static unsigned
later_line(unsigned a, unsigned b)
{
    return a > b ? a : b;
}

int
http_parse_request(const char *buf, size_t len, size_t max_head, struct http_request *req,
                   int *status)
{
    struct http_fields f;
    struct http_why why = {NULL, 0};
    size_t lim, start = 0;
    long rl, end;
    enum http_err err;

    *status = 0;
    if (max_head > INT_MAX)
        max_head = INT_MAX; /* the return value is an int */
    lim = len < max_head ? len : max_head;
    req->nheaders = 0;
    req->host.p = NULL;
    req->host.len = 0;
    req->expect_continue = false;
    req->why = NULL;
    req->why_header = 0;
    memset(&req->info, 0, sizeof(req->info));

    /* RFC 9112 2.2: a server SHOULD ignore empty lines before the request-line. */
    while (start < lim && buf[start] == '\r') {
        if (start + 1 == lim) {
            rl = HTTP_NEED_MORE;
            goto line_partial;
        }
        if (buf[start + 1] != '\n') {
            req->why = "bare CR";
            *status = 400;
            return HTTP_INVALID;
        }
        start += 2;
    }
    rl = parse_request_line(buf, start, lim, req, status);
line_partial:
    if (rl == HTTP_INVALID)
        return HTTP_INVALID;
    if (rl == HTTP_NEED_MORE) {
        if (len < max_head)
            return HTTP_NEED_MORE;
        req->why = "request line too long";
        *status = 414;
        return HTTP_INVALID;
    }

    end = parse_fields(buf, (size_t)rl, lim, true, req->headers, &req->nheaders, &f, &err, &why);
    if (end == HTTP_INVALID) {
        *status = err == ERR_TOO_MANY ? 431 : 400;
        goto refuse;
    }
    if (end == HTTP_NEED_MORE) {
        if (len < max_head)
            return HTTP_NEED_MORE;
        why = (struct http_why){"header section too large", 0};
        *status = 431;
        goto refuse;
    }

    *status = 400;
    if (req->minor_version == 1 && f.nhost == 0) {
        why = (struct http_why){"missing Host", 0};
        goto refuse;
    }
    if (f.has_cl && f.has_te) {
        why = (struct http_why){"Content-Length and Transfer-Encoding together",
                                later_line(f.cl_line, f.te_line)};
        goto refuse;
    }
    if (f.has_te && req->minor_version == 0) {
        why = (struct http_why){"Transfer-Encoding in HTTP/1.0", f.te_line};
        goto refuse;
    }
    if (f.has_te) {
        /* chunked must be final and appear once (RFC 9112 6.1) ... */
        if ((why.why = te_chunked_why(&f)) != NULL) {
            why.line = f.te_line;
            goto refuse;
        }
        /* ... and it is the only coding we implement. */
        if (f.te_other) {
            why = (struct http_why){"unsupported transfer coding", f.te_line};
            *status = 501;
            goto refuse;
        }
        req->info.framing = HTTP_BODY_CHUNKED;
    } else if (f.has_cl && f.cl > 0) {
        req->info.framing = HTTP_BODY_LENGTH;
        req->info.content_length = f.cl;
    } else {
        req->info.framing = HTTP_BODY_NONE;
    }
    *status = 0;
    info_keep_alive(&req->info, req->minor_version, &f);
    req->host = f.host;
    /* RFC 9110 10.1.1: a 100-continue expectation in HTTP/1.0 is ignored. */
    req->expect_continue = f.expect_continue && req->minor_version == 1;
    return (int)end;

refuse:
    req->why = why.why;
    req->why_header = why.line;
    return HTTP_INVALID;
}

int
http_parse_response(const char *buf, size_t len, size_t max_head, bool head_request,
                    struct http_response *resp, int *status)
{
    struct http_fields f;
    struct http_head_info *info = &resp->info;
    struct http_why why = {NULL, 0};
    size_t lim;
    long sl, end;
    enum http_err err;
    int code;

    *status = 0;
    if (max_head > INT_MAX)
        max_head = INT_MAX;
    lim = len < max_head ? len : max_head;
    resp->nheaders = 0;
    resp->why = NULL;
    resp->why_header = 0;
    memset(info, 0, sizeof(*info));

    sl = parse_status_line(buf, lim, resp);
    if (sl == HTTP_INVALID) {
        why.why = resp->why;
        goto refuse;
    }
    if (sl == HTTP_NEED_MORE) {
        if (len < max_head)
            return HTTP_NEED_MORE;
        why.why = "status line too long";
        goto refuse;
    }
    end =
        parse_fields(buf, (size_t)sl, lim, false, resp->headers, &resp->nheaders, &f, &err, &why);
    if (end == HTTP_INVALID)
        goto refuse;
    if (end == HTTP_NEED_MORE) {
        if (len < max_head)
            return HTTP_NEED_MORE;
        why = (struct http_why){"header section too large", 0};
        goto refuse;
    }

    /*
     * We forward only what we can frame: chunked exactly once as the only
     * coding, never together with Content-Length, never in HTTP/1.0 (RFC
     * 9112 6.1 calls that faulty framing). This holds even when the status
     * means there is no body, since we pass those fields on.
     */
    if (f.has_te) {
        why.line = f.te_line;
        if (f.has_cl) {
            why = (struct http_why){"Content-Length and Transfer-Encoding together",
                                    later_line(f.cl_line, f.te_line)};
            goto refuse;
        }
        if (resp->minor_version == 0) {
            why.why = "Transfer-Encoding in HTTP/1.0";
            goto refuse;
        }
        if ((why.why = te_chunked_why(&f)) != NULL)
            goto refuse;
        if (f.te_other) {
            why.why = "unsupported transfer coding";
            goto refuse;
        }
        why.line = 0;
    }

    code = resp->status;
    if (head_request || (code >= 100 && code < 200) || code == 204 || code == 304) {
        info->framing = HTTP_BODY_NONE;
        if (f.has_cl)
            info->content_length = f.cl;
    } else if (f.has_te) {
        info->framing = HTTP_BODY_CHUNKED;
    } else if (f.has_cl) {
        info->framing = f.cl > 0 ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
        info->content_length = f.cl;
    } else {
        info->framing = HTTP_BODY_CLOSE;
    }
    info_keep_alive(info, resp->minor_version, &f);
    if (info->framing == HTTP_BODY_CLOSE)
        info->keep_alive = false;
    return (int)end;

refuse:
    resp->why = why.why;
    resp->why_header = why.line;
    *status = 502;
    return HTTP_INVALID;
}

int
http_find_header(const struct http_header *h, size_t n, const char *name)
{
    size_t nl = strlen(name);

    for (size_t i = 0; i < n; i++)
        if (ieq(h[i].name.p, h[i].name.len, name, nl))
            return (int)i;
    return -1;
}

bool
http_list_has(struct http_slice value, const char *token, size_t token_len)
{
    struct list_iter it = {value.p, value.len, 0, false};
    struct http_slice e;

    while (list_next(&it, &e))
        if (ieq(e.p, e.len, token, token_len))
            return true;
    return false;
}

const char *
http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/*
 * Chunked decoder (RFC 9112 7.1):
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-ext    = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
 *   ext-val      = token / quoted-string
 */
enum {
    CS_SIZE_START, /* first hex digit of a chunk size */
    CS_SIZE,       /* more hex digits, or what ends the size */
    CS_EXT_SEMI,   /* BWS before ";" (after the size or a value) */
    CS_EXT_NAME0,  /* BWS after ";", then the first byte of a name */
    CS_EXT_NAME,   /* in an extension name */
    CS_EXT_NAMEWS, /* BWS after a name: "=" or ";" must follow */
    CS_EXT_VAL0,   /* BWS after "=", then a token or a quote */
    CS_EXT_TOKEN,  /* in a token value */
    CS_EXT_QUOTED, /* in a quoted-string */
    CS_EXT_QPAIR,  /* after a backslash in a quoted-string */
    CS_EXT_QEND,   /* right after the closing quote */
    CS_SIZE_LF,    /* LF ending the chunk-size line */
    CS_DATA,       /* chunk-data */
    CS_DATA_CR,    /* CRLF after chunk-data */
    CS_DATA_LF,
    CS_TR_START, /* start of a trailer line, or of the final CRLF */
    CS_TR_NAME,
    CS_TR_VALUE,
    CS_TR_LF,  /* LF ending a trailer line */
    CS_END_LF, /* LF of the final CRLF */
    CS_DONE,
    CS_ERROR,
};

void
http_chunked_init(struct http_chunked *c)
{
    memset(c, 0, sizeof(*c));
    c->state = CS_SIZE_START;
}

/* One extension byte: counts it against the per-line cap (c->why when over it). */
static bool
ext_byte(struct http_chunked *c)
{
    if (++c->count <= HTTP_CHUNK_MAX_EXT)
        return true;
    c->why = "chunk extension too long";
    return false;
}

/*
 * Why a byte was refused in state <st>, when the step did not say
 * (a limit says; a byte out of place is named by where it was).
 */
static const char *
chunked_state_why(int st, unsigned char ch)
{
    /* after chunk-data any byte but CR means the data was not as long as its size said */
    if (ch == '\n' && st != CS_DATA_CR)
        return "bare LF";
    switch (st) {
    case CS_SIZE_START:
    case CS_SIZE:
        return "invalid chunk size";
    case CS_SIZE_LF:
    case CS_DATA_LF:
    case CS_TR_LF:
    case CS_END_LF:
        return "bare CR";
    case CS_DATA_CR:
        return "chunk data not followed by CRLF";
    case CS_TR_START:
    case CS_TR_NAME:
        return "invalid trailer field name";
    case CS_TR_VALUE:
        return "invalid character in trailer field";
    default:
        return "invalid chunk extension";
    }
}

/*
 * Feeds one byte that is not chunk-data to the state machine. Returns the
 * new state, CS_ERROR when the byte cannot appear here (with c->why set
 * when a limit was passed).
 */
static int
chunked_step(struct http_chunked *c, unsigned char ch)
{
    int st = c->state;

    if (st >= CS_EXT_SEMI && st <= CS_EXT_QEND && !ext_byte(c))
        return CS_ERROR;
    if (st >= CS_TR_START && st <= CS_END_LF && ++c->count > HTTP_CHUNK_MAX_TRAILER) {
        c->why = "trailer section too large";
        return CS_ERROR;
    }

    switch (st) {
    case CS_SIZE_START:
    case CS_SIZE:
        if (IS(ch, CT_HEX)) {
            unsigned d = IS(ch, CT_DIGIT) ? ch - '0' : lower(ch) - 'a' + 10;

            if (++c->count > HTTP_CHUNK_MAX_DIGITS || c->remaining >= HTTP_CHUNK_SIZE_LIMIT >> 4) {
                c->why = "chunk size too large";
                return CS_ERROR;
            }
            c->remaining = (c->remaining << 4) | d;
            return CS_SIZE;
        }
        if (st == CS_SIZE_START)
            return CS_ERROR;
        c->count = 0; /* from here on: extension bytes */
        if (ch == '\r')
            return CS_SIZE_LF;
        if (!ext_byte(c))
            return CS_ERROR;
        if (ch == ';')
            return CS_EXT_NAME0;
        return is_ows((char)ch) ? CS_EXT_SEMI : CS_ERROR;
    case CS_EXT_SEMI:
        if (ch == ';')
            return CS_EXT_NAME0;
        return is_ows((char)ch) ? CS_EXT_SEMI : CS_ERROR;
    case CS_EXT_NAME0:
        if (IS(ch, CT_TOKEN))
            return CS_EXT_NAME;
        return is_ows((char)ch) ? CS_EXT_NAME0 : CS_ERROR;
    case CS_EXT_NAME:
        if (IS(ch, CT_TOKEN))
            return CS_EXT_NAME;
        /* What may follow a name, as after its BWS (CR aside). */
        __attribute__((fallthrough));
    case CS_EXT_NAMEWS:
        if (ch == '=')
            return CS_EXT_VAL0;
        if (ch == ';')
            return CS_EXT_NAME0;
        if (is_ows((char)ch))
            return CS_EXT_NAMEWS;
        if (ch == '\r' && st == CS_EXT_NAME)
            return CS_SIZE_LF;
        return CS_ERROR;
    case CS_EXT_VAL0:
        if (ch == '"')
            return CS_EXT_QUOTED;
        if (IS(ch, CT_TOKEN))
            return CS_EXT_TOKEN;
        return is_ows((char)ch) ? CS_EXT_VAL0 : CS_ERROR;
    case CS_EXT_TOKEN:
        if (IS(ch, CT_TOKEN))
            return CS_EXT_TOKEN;
        /* What may follow a value. */
        __attribute__((fallthrough));
    case CS_EXT_QEND:
        if (ch == ';')
            return CS_EXT_NAME0;
        if (ch == '\r')
            return CS_SIZE_LF;
        return is_ows((char)ch) ? CS_EXT_SEMI : CS_ERROR;
    case CS_EXT_QUOTED:
        /* qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text */
        if (ch == '"')
            return CS_EXT_QEND;
        if (ch == '\\')
            return CS_EXT_QPAIR;
        return ch == '\t' || (ch >= 0x20 && ch != 0x7f) ? CS_EXT_QUOTED : CS_ERROR;
    case CS_EXT_QPAIR:
        return ch == '\t' || (ch >= 0x20 && ch != 0x7f) ? CS_EXT_QUOTED : CS_ERROR;
    case CS_SIZE_LF:
        if (ch != '\n')
            return CS_ERROR;
        c->count = 0;
        return c->remaining == 0 ? CS_TR_START : CS_DATA;
    case CS_DATA_CR:
        return ch == '\r' ? CS_DATA_LF : CS_ERROR;
    case CS_DATA_LF:
        return ch == '\n' ? CS_SIZE_START : CS_ERROR;
    case CS_TR_START:
        if (ch == '\r')
            return CS_END_LF;
        /* An empty name, obs-fold and bare LF all land here. */
        return IS(ch, CT_TOKEN) ? CS_TR_NAME : CS_ERROR;
    case CS_TR_NAME:
        if (ch == ':')
            return CS_TR_VALUE;
        return IS(ch, CT_TOKEN) ? CS_TR_NAME : CS_ERROR;
    case CS_TR_VALUE:
        if (ch == '\r')
            return CS_TR_LF;
        return is_field_byte((char)ch) ? CS_TR_VALUE : CS_ERROR;
    case CS_TR_LF:
        return ch == '\n' ? CS_TR_START : CS_ERROR;
    case CS_END_LF:
        return ch == '\n' ? CS_DONE : CS_ERROR;
    default:
        return CS_ERROR;
    }
}

int
http_chunked_decode(struct http_chunked *c, char *buf, size_t len, size_t *out_len,
                    size_t *consumed)
{
    size_t r = 0, w = 0;
    int before;

    while (r < len && c->state != CS_DONE && c->state != CS_ERROR) {
        if (c->state == CS_DATA) {
            size_t n = len - r;

            if (n > c->remaining)
                n = (size_t)c->remaining;
            if (w != r)
                memmove(buf + w, buf + r, n);
            w += n;
            r += n;
            c->remaining -= n;
            c->total += n;
            if (c->remaining == 0)
                c->state = CS_DATA_CR;
            continue;
        }
        before = c->state;
        c->state = chunked_step(c, (unsigned char)buf[r]);
        if (c->state == CS_ERROR && c->why == NULL)
            c->why = chunked_state_why(before, (unsigned char)buf[r]);
        r++;
    }
    *out_len = w;
    *consumed = r;
    if (c->state == CS_ERROR)
        return -1;
    return c->state == CS_DONE ? 1 : 0;
}
