/*
 * rewrite: the heads a request and its response are forwarded with. See
 * rewrite.h.
 */
#include "rewrite.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"

static void
out_slice(struct buf_out *o, struct http_slice s)
{
    buf_out_put(o, s.p, s.len);
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

bool
rewrite_has_underscore(struct http_slice name)
{
    return name.len > 0 && memchr(name.p, '_', name.len) != NULL;
}

/* True when <name> is one of the <n> names of <set>. */
static bool
in_set(const struct cfg_header *set, size_t n, struct http_slice name)
{
    for (size_t i = 0; i < n; i++)
        if (buf_ieq(name.p, name.len, set[i].name))
            return true;
    return false;
}

static bool
in_set_str(const struct cfg_header *set, size_t n, const char *name)
{
    return in_set(set, n, (struct http_slice){name, strlen(name)});
}

static bool
in_names(char *const *names, size_t n, struct http_slice name)
{
    for (size_t i = 0; i < n; i++)
        if (buf_ieq(name.p, name.len, names[i]))
            return true;
    return false;
}

static void
out_str_field(struct buf_out *o, const char *name, const char *value)
{
    buf_out_str(o, name);
    buf_out_put(o, ": ", 2);
    buf_out_str(o, value);
    buf_out_put(o, "\r\n", 2);
}

bool
rewrite_is_websocket(const struct http_request *req)
{
    bool conn_upgrade = false, upgrade_ws = false;

    if (req->minor_version != 1 || req->info.framing != HTTP_BODY_NONE || req->method.len != 3 ||
        memcmp(req->method.p, "GET", 3) != 0)
        return false;
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];
        if (buf_ieq(h->name.p, h->name.len, "connection") && http_list_has(h->value, "upgrade", 7))
            conn_upgrade = true;
        else if (buf_ieq(h->name.p, h->name.len, "upgrade") &&
                 http_list_has(h->value, "websocket", 9))
            upgrade_ws = true;
    }
    return conn_upgrade && upgrade_ws;
}

ssize_t
rewrite_request(const struct http_request *req, const struct rewrite_req *rw, char *buf,
                size_t cap)
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
            buf_ieq(h->name.p, h->name.len, "x-client-verify") ||
            buf_ieq(h->name.p, h->name.len, "x-client-subject") ||
            named_by_connection(req->headers, req->nheaders, h->name) ||
            (rw->drop_underscores && rewrite_has_underscore(h->name)) ||
            in_set(rw->set, rw->nset, h->name) ||
            (rw->request_id != NULL && buf_ieq(h->name.p, h->name.len, "x-request-id")))
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
    if (!xff_done && !in_set_str(rw->set, rw->nset, "x-forwarded-for")) {
        buf_out_str(&o, "X-Forwarded-For: ");
        buf_out_str(&o, rw->client_ip);
        buf_out_put(&o, "\r\n", 2);
    }
    if (!in_set_str(rw->set, rw->nset, "x-forwarded-proto")) {
        buf_out_str(&o, "X-Forwarded-Proto: ");
        buf_out_str(&o, rw->proto);
        buf_out_put(&o, "\r\n", 2);
    }
    if (rw->client_verify != NULL) {
        buf_out_str(&o, "X-Client-Verify: ");
        buf_out_str(&o, rw->client_verify);
        buf_out_put(&o, "\r\n", 2);
    }
    if (rw->client_subject != NULL) {
        buf_out_str(&o, "X-Client-Subject: ");
        buf_out_str(&o, rw->client_subject);
        buf_out_put(&o, "\r\n", 2);
    }
    if (rw->host.len > 0 && !in_set_str(rw->set, rw->nset, "x-forwarded-host")) {
        buf_out_str(&o, "X-Forwarded-Host: ");
        out_slice(&o, rw->host);
        buf_out_put(&o, "\r\n", 2);
    }
    if (rw->request_id != NULL && !in_set_str(rw->set, rw->nset, "x-request-id"))
        out_str_field(&o, "X-Request-Id", rw->request_id);
    for (size_t i = 0; i < rw->nset; i++)
        out_str_field(&o, rw->set[i].name, rw->set[i].value);
    if (rw->websocket) {
        /* no body, and the connection becomes the tunnel: it is never pooled */
        buf_out_str(&o, "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n");
        return o.full ? -1 : (ssize_t)o.len;
    }
    if (rw->framing == HTTP_BODY_LENGTH) {
        buf_out_str(&o, "Content-Length: ");
        buf_out_u64(&o, rw->content_length);
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
rewrite_response(const struct http_response *resp, enum rewrite_framing framing, bool keep_alive,
                 int client_minor, char *buf, size_t cap)
{
    return rewrite_response_opts(resp, framing, keep_alive, client_minor, NULL, buf, cap);
}

void
rewrite_server_timing(int64_t connect_us, int64_t upstream_us, int64_t total_us, char *out,
                      size_t cap)
{
    const char *names[] = {"mp-connect", "mp-upstream", "mp-total"};
    int64_t us[] = {connect_us, upstream_us, total_us};
    size_t len = 0;

    out[0] = '\0';
    for (size_t i = 0; i < 3 && len < cap; i++) {
        if (us[i] < 0)
            continue;
        len += (size_t)snprintf(out + len, cap - len, "%s%s;dur=%.2f", len ? ", " : "", names[i],
                                (double)us[i] / 1000.0);
    }
}

ssize_t
rewrite_response_opts(const struct http_response *resp, enum rewrite_framing framing,
                      bool keep_alive, int client_minor, const struct rewrite_resp_opts *opts,
                      char *buf, size_t cap)
{
    static const struct rewrite_resp_opts none = {0};
    const struct rewrite_resp_opts *op = opts != NULL ? opts : &none;
    const char *timing = op->server_timing;
    size_t last_timing = resp->nheaders; /* the app's last Server-Timing field, if any */
    struct buf_out o = {.buf = buf, .cap = cap};

    buf_out_str(&o, "HTTP/1.1 ");
    buf_out_u64(&o, (uint64_t)resp->status);
    buf_out_put(&o, " ", 1);
    if (resp->reason.len > 0)
        out_slice(&o, resp->reason);
    else
        buf_out_str(&o, http_reason(resp->status));
    buf_out_put(&o, "\r\n", 2);

    if (timing != NULL && in_set_str(op->set, op->nset, "server-timing"))
        timing = NULL; /* response_header replaces it, ours too */
    for (size_t i = 0; timing != NULL && i < resp->nheaders; i++)
        if (buf_ieq(resp->headers[i].name.p, resp->headers[i].name.len, "server-timing") &&
            !in_names(op->hide, op->nhide, resp->headers[i].name))
            last_timing = i;
    for (size_t i = 0; i < resp->nheaders; i++) {
        const struct http_header *h = &resp->headers[i];
        if (is_hop_by_hop(h->name) || named_by_connection(resp->headers, resp->nheaders, h->name))
            continue;
        /* When we re-frame the body, its old length no longer applies. */
        if (framing != REWRITE_AS_IS && buf_ieq(h->name.p, h->name.len, "content-length"))
            continue;
        if (in_names(op->hide, op->nhide, h->name) || in_set(op->set, op->nset, h->name) ||
            (op->request_id != NULL && buf_ieq(h->name.p, h->name.len, "x-request-id")))
            continue;
        if (i == last_timing) {
            /* one list: the app's entries, then ours */
            out_slice(&o, h->name);
            buf_out_put(&o, ": ", 2);
            out_slice(&o, h->value);
            buf_out_str(&o, h->value.len > 0 ? ", " : "");
            buf_out_str(&o, timing);
            buf_out_put(&o, "\r\n", 2);
            continue;
        }
        out_field(&o, h->name, h->value);
    }
    if (timing != NULL && last_timing == resp->nheaders)
        out_str_field(&o, "Server-Timing", timing);
    if (op->request_id != NULL && !in_set_str(op->set, op->nset, "x-request-id"))
        out_str_field(&o, "X-Request-Id", op->request_id);
    for (size_t i = 0; i < op->nset; i++)
        out_str_field(&o, op->set[i].name, op->set[i].value);
    if (framing == REWRITE_CHUNKED)
        buf_out_str(&o, "Transfer-Encoding: chunked\r\n");
    if (framing == REWRITE_UPGRADE)
        buf_out_str(&o, "Connection: upgrade\r\nUpgrade: websocket\r\n");
    else if (!keep_alive)
        buf_out_str(&o, "Connection: close\r\n");
    else if (client_minor == 0)
        buf_out_str(&o, "Connection: keep-alive\r\n");
    buf_out_put(&o, "\r\n", 2);
    return o.full ? -1 : (ssize_t)o.len;
}

ssize_t
rewrite_add_line(char *head, size_t len, size_t cap, const char *line)
{
    size_t n = strlen(line);

    if (len < 2 || head[len - 2] != '\r' || head[len - 1] != '\n' || len + n > cap)
        return -1;
    /* the final CRLF moves after the new line */
    memcpy(head + len - 2, line, n);
    memcpy(head + len - 2 + n, "\r\n", 2);
    return (ssize_t)(len + n);
}
