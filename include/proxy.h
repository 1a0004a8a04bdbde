/*
 * proxy: one request end to end, as a worker serves it: pick a server,
 * take a pooled connection or connect, send the rewritten head, stream the
 * body, read the response head, rewrite it, stream the body back, account.
 *
 * The head rewriting functions are pure (buffers in, bytes out) so the
 * unit tests can check every header rule without sockets.
 */
#ifndef MP_PROXY_H
#define MP_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "balance.h"
#include "config.h"
#include "http.h"
#include "shm.h"
#include "upstream.h"

/* Bytes of an upstream response head we accept (nginx's proxy_buffer_size is 4-8k). */
#define PROXY_RESP_HEAD_MAX (32 * 1024)
/* Size of the buffers bodies stream through, each direction. */
#define PROXY_IO_BUF (64 * 1024)

/* A client connection as the worker holds it. */
struct client {
    int fd;
    char ip[64];
    char *buf; /* [start..len) received and not yet used */
    size_t cap;
    size_t start;
    size_t len;
    unsigned requests; /* requests read on this connection, this one included */
};

/* A worker's proxying state: long-lived, one per worker process. */
struct proxy {
    const struct config *cfg;
    struct shm *shm;
    struct shm_worker *me;
    struct balance bal;
    struct upool pool;
    char *ubuf; /* upstream -> client data */
    size_t ucap;
    char *obuf; /* rewritten heads */
    size_t ocap;
    volatile sig_atomic_t *draining; /* set by the worker when it must stop after this request */
};

int proxy_init(struct proxy *px, const struct config *cfg, struct shm *shm, int slot,
               volatile sig_atomic_t *draining);
void proxy_free(struct proxy *px);

/*
 * Serves the request whose head <req> (of <head_len> bytes) starts at
 * c->buf + c->start. On return c->start points past everything this request
 * used (its body included), so pipelined bytes stay for the next one.
 * Returns 0 when the client connection may carry another request, -1 when
 * it must be closed.
 */
int proxy_serve(struct proxy *px, struct client *c, const struct http_request *req,
                size_t head_len);

/*
 * Sends a complete error response with a small HTML body. <close> adds
 * Connection: close. Used for parser rejections too.
 */
void proxy_send_error(const struct config *cfg, struct client *c, int status, bool close);

/* What proxy_rewrite_request() needs besides the request itself. */
struct proxy_req_rewrite {
    struct http_slice target;  /* origin-form target to send */
    struct http_slice host;    /* the client's host (Host, or the absolute-form authority) */
    const char *upstream_host; /* "127.0.0.1:3001": the Host sent unless preserve_host */
    bool preserve_host;
    const char *client_ip;
    const char *proto;         /* "http" or "https": X-Forwarded-Proto */
    enum http_framing framing; /* body framing towards the upstream: NONE, LENGTH or CHUNKED */
    uint64_t content_length;
    bool upstream_close; /* ask the upstream to close (no pooling) */
};

/*
 * Writes the head sent upstream into <out>: request line in HTTP/1.1, Host,
 * the client's end-to-end fields in order, X-Forwarded-For (the client's
 * list with <client_ip> appended), X-Forwarded-Proto, X-Forwarded-Host, and
 * the body framing. Hop-by-hop fields (Connection and every field it names,
 * Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade, Transfer-Encoding),
 * Content-Length, Expect and the client's X-Forwarded-Proto/-Host are not
 * copied. Returns the length, or -1 if <cap> is too small.
 */
ssize_t proxy_rewrite_request(const struct http_request *req, const struct proxy_req_rewrite *rw,
                              char *out, size_t cap);

/* Body framing of the response sent to the client. */
enum proxy_out_framing {
    PROXY_OUT_AS_IS,   /* no body, or Content-Length passed through */
    PROXY_OUT_CHUNKED, /* Transfer-Encoding: chunked (re-encoded by us) */
    PROXY_OUT_CLOSE,   /* body ends when we close (HTTP/1.0 client) */
};

/*
 * Writes the response head sent to the client: status line in HTTP/1.1,
 * the upstream's end-to-end fields, then our framing and Connection fields
 * (Connection: close when !<keep_alive>; Connection: keep-alive for an
 * HTTP/1.0 client we keep). Returns the length or -1 if <cap> is too small.
 */
ssize_t proxy_rewrite_response(const struct http_response *resp, enum proxy_out_framing framing,
                               bool keep_alive, int client_minor, char *out, size_t cap);

#endif
