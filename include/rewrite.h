/*
 * rewrite: the heads a proxied request and its response are forwarded
 * with. Pure functions (parsed head in, bytes out, no sockets, no state)
 * so the unit tests can check every header rule on its own.
 */
#ifndef MP_REWRITE_H
#define MP_REWRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "http.h"

/* What rewrite_request() needs besides the request itself. */
struct rewrite_req {
    struct http_slice target;  /* origin-form target to send */
    struct http_slice host;    /* the client's host (Host, or the absolute-form authority) */
    const char *upstream_host; /* "127.0.0.1:3001": the Host sent unless preserve_host */
    bool preserve_host;
    const char *client_ip;
    const char *proto;          /* "http" or "https": X-Forwarded-Proto */
    const char *client_verify;  /* X-Client-Verify (TLS client certificates), NULL: none */
    const char *client_subject; /* X-Client-Subject, NULL: none */
    enum http_framing framing;  /* body framing towards the upstream: NONE, LENGTH or CHUNKED */
    uint64_t content_length;
    bool upstream_close;   /* ask the upstream to close (no pooling) */
    bool drop_underscores; /* underscores_in_headers = drop: leave out names with a '_' */
    /* a route's request_header rows: set (replacing any of the name) after our own fields */
    const struct cfg_header *set;
    size_t nset;
    const char *request_id; /* X-Request-Id to send (replacing the client's); NULL: none */
    bool websocket;         /* a WebSocket handshake: Connection: upgrade, Upgrade: websocket */
};

/*
 * True when <req> asks for a WebSocket tunnel (RFC 6455 4.1): a GET in
 * HTTP/1.1 without a body whose Connection lists "upgrade" and whose
 * Upgrade lists "websocket" (case-insensitive). Other Upgrade values
 * (h2c...) are not tunnelled: their fields are dropped as hop-by-hop.
 */
bool rewrite_is_websocket(const struct http_request *req);

/*
 * Writes the head sent upstream into <out>: request line in HTTP/1.1, Host,
 * the client's end-to-end fields in order, X-Forwarded-For (the client's
 * list with <client_ip> appended), X-Forwarded-Proto, X-Forwarded-Host,
 * X-Request-Id, the <set> fields (a field of a name in <set>, the client's
 * or ours, is left out: <set> replaces it), and the body framing. Hop-by-hop
 * fields (Connection and every field it names, Keep-Alive, Proxy-Connection,
 * TE, Trailer, Upgrade, Transfer-Encoding), Content-Length, Expect and the
 * client's X-Forwarded-Proto/-Host are not copied, nor, with
 * <drop_underscores>, fields whose name has a '_' (see
 * rewrite_has_underscore()). With <rw>->websocket the head ends with
 * "Connection: upgrade" and "Upgrade: websocket", the only hop-by-hop fields
 * we send, instead of the framing and Connection fields. Returns the length,
 * or -1 if <cap> is too small.
 */
ssize_t rewrite_request(const struct http_request *req, const struct rewrite_req *rw, char *out,
                        size_t cap);

/*
 * True when header name <name> has a '_': CGI-style backends map '_' and
 * '-' to the same variable, so "Content_Length" would read as a second
 * Content-Length there (nginx's underscores_in_headers).
 */
bool rewrite_has_underscore(struct http_slice name);

/*
 * The client's own X-Client-Verify and X-Client-Subject are never copied
 * (rewrite_request() drops them): only ours, from the TLS layer, reach the
 * upstream.
 */

/*
 * Inserts the header line <line> ("Name: value\r\n") before the empty line
 * that ends the head <head> of <len> bytes (room: <cap>). Returns the new
 * length, or -1 when it does not fit.
 */
ssize_t rewrite_add_line(char *head, size_t len, size_t cap, const char *line);

/* Body framing of the response sent to the client. */
enum rewrite_framing {
    REWRITE_AS_IS,   /* no body, or Content-Length passed through */
    REWRITE_CHUNKED, /* Transfer-Encoding: chunked (re-encoded by us) */
    REWRITE_CLOSE,   /* body ends when we close (HTTP/1.0 client) */
    REWRITE_UPGRADE, /* a 101 that opens a tunnel: Connection: upgrade, Upgrade: websocket */
};

/*
 * Writes the response head sent to the client: status line in HTTP/1.1,
 * the upstream's end-to-end fields, then our framing and Connection fields
 * (Connection: close when !<keep_alive>; Connection: keep-alive for an
 * HTTP/1.0 client we keep); with REWRITE_UPGRADE, "Connection: upgrade"
 * and "Upgrade: websocket" instead. Returns the length or -1 if <cap> is
 * too small.
 */
ssize_t rewrite_response(const struct http_response *resp, enum rewrite_framing framing,
                         bool keep_alive, int client_minor, char *out, size_t cap);

/* What a route and the [proxy] options change in a response head. */
struct rewrite_resp_opts {
    const struct cfg_header *set; /* response_header rows: set, replacing any of the name */
    size_t nset;
    char *const *hide; /* hide_response_header rows: removed */
    size_t nhide;
    const char *request_id;    /* X-Request-Id sent back (replacing the upstream's); NULL: none */
    const char *server_timing; /* our Server-Timing entries, after the app's; NULL: none */
};

/*
 * rewrite_response() with <opts> (NULL: none): the upstream's fields named
 * by <opts>->hide or <opts>->set, and its X-Request-Id when we send one,
 * are left out; <opts>->server_timing joins the app's last Server-Timing
 * field (", " then ours) or comes as a field of its own; then X-Request-Id
 * and the <set> fields, before our framing fields.
 */
ssize_t rewrite_response_opts(const struct http_response *resp, enum rewrite_framing framing,
                              bool keep_alive, int client_minor,
                              const struct rewrite_resp_opts *opts, char *out, size_t cap);

/*
 * Writes "mp-connect;dur=A, mp-upstream;dur=B, mp-total;dur=C" into <out>
 * from durations in microseconds (milliseconds with two decimals; a
 * negative duration, for a step that did not happen, is left out).
 */
void rewrite_server_timing(int64_t connect_us, int64_t upstream_us, int64_t total_us, char *out,
                           size_t cap);

#endif
