/*
 * relay: the bodies of one exchange, in both directions at once. It sends
 * the request head with the body bytes that came with it, then streams the
 * rest of the request body to the upstream (Content-Length as it is,
 * chunked re-chunked) while it reads the response head, rewrites it, and
 * streams the response body back (Content-Length, chunked, or until the
 * upstream closes; re-chunked or close-delimited for the client). No body
 * is held whole: each direction moves through one fixed buffer, or, for a
 * body that is not re-framed, through a pipe with splice() (zero copy).
 *
 * The relay reports what happened; the caller (proxy.c) decides what it
 * means for retries, counters and the client's answer.
 */
#ifndef MP_RELAY_H
#define MP_RELAY_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "http.h"
#include "rewrite.h"
#include "upconn.h"

/* Bytes of an upstream response head we accept (nginx's proxy_buffer_size is 4-8k). */
#define RELAY_RESP_HEAD_MAX (32 * 1024)

/* The smallest rest of a body worth splicing: below it, one read and one write move it. */
#define RELAY_SPLICE_MIN NET_IO_BUF

/* How a relay ended. */
enum relay_end {
    RELAY_OK,               /* the response went to the client whole */
    RELAY_CLIENT_GONE,      /* the client closed or reset, or stopped reading (send_timeout) */
    RELAY_CLIENT_TIMEOUT,   /* its request body stalled (client_body_timeout) */
    RELAY_CLIENT_SLOW,      /* its request body came slower than client_body_min_rate */
    RELAY_BODY_TOO_LARGE,   /* the chunked request body grew past client_max_body_size */
    RELAY_BAD_BODY,         /* invalid chunked request body */
    RELAY_UPSTREAM_EMPTY,   /* the upstream closed or reset before any byte of an answer */
    RELAY_UPSTREAM_TIMEOUT, /* the upstream did not take or send for read_timeout */
    RELAY_UPSTREAM_FAILED,  /* reset, early EOF, or an invalid head or body from it */
};

/* One exchange's relay: set the inputs, call relay_run(), read the results. */
struct relay {
    /* the two ends */
    struct conn *client;
    struct upconn *up;
    const char *upstream_addr; /* for the log */
    /* the request body still to come from the client */
    enum http_framing body_framing; /* of the request: NONE, LENGTH or CHUNKED */
    uint64_t body_left;             /* LENGTH: bytes not read from the client yet */
    struct http_chunked body_dec;   /* CHUNKED: the decoder, past the bytes sent with the head */
    bool body_done;                 /* the whole request body was read from the client */
    uint64_t max_body;              /* client_max_body_size, 0: no limit */
    /* what the response must look like */
    bool head_request; /* the request was HEAD: its response has no body */
    int client_minor;  /* the client's HTTP/1.<minor> */
    bool client_keep;  /* in: the client's connection may be kept; out: the response said so */
    bool pool_ok;      /* the group pools connections (keepalive > 0) */
    bool websocket;    /* the request asked for a WebSocket tunnel: a 101 may answer it */
    const volatile sig_atomic_t *draining; /* set: answer with Connection: close */
    const char *add_line; /* a header line added to the response ("N: v\r\n"), NULL: none */
    /* time limits, ms */
    int64_t read_timeout, send_timeout, body_timeout;
    unsigned body_min_rate; /* client_body_min_rate, bytes/s, 0: none */
    /*
     * The body clock (clock_ms()): when the proxy began to wait for the
     * body, i.e. said 100 Continue, or without Expect had the whole head;
     * client_body_timeout runs from it until the first byte. 0: the relay's
     * start. <body_early> body bytes came with the head.
     */
    int64_t body_clock;
    uint64_t body_early;
    /* the worker's buffers, reused by every request */
    char *body_buf; /* client -> upstream, NET_IO_BUF bytes */
    char *resp_buf; /* upstream -> client, NET_IO_BUF bytes */
    char *head_buf; /* the rewritten response head */
    size_t head_cap;
    /*
     * Zero-copy bodies ([proxy] splice = on): the worker's pipes, one per
     * direction; NULL: always copy. A body that needs no re-framing
     * (Content-Length both ways, a close-delimited response sent
     * close-delimited) goes socket -> pipe -> socket once at least
     * RELAY_SPLICE_MIN bytes of it are still to come, when neither end
     * speaks TLS. Chunked bodies are always copied (re-framed).
     */
    struct net_pipe *pipe_up, *pipe_down;
    /* the response head's header rules (a route's, X-Request-Id); NULL: none */
    struct rewrite_resp_opts *resp_opts;
    /* server_timing: resp_opts->server_timing is written when the head comes, from these */
    bool server_timing;
    int64_t start_us;   /* clock_us() when the request began */
    int64_t connect_us; /* connecting, or taking a pooled connection */
    int64_t sent_us;    /* in/out: clock_us() when the request's last byte went out, 0: not yet */
    /* results */
    int upstream_status; /* the status of the upstream's response head, 0 while none */
    int64_t head_us;     /* clock_us() when that head was in, 0 while not */
    int status;          /* the status sent to the client, 0 while none */
    uint64_t sent;       /* response body bytes given to the client */
    uint64_t spliced;    /* body bytes (both directions) that went by splice() */
    bool upstream_keep;  /* the upstream connection may be pooled */
    bool upload_aborted; /* the upstream stopped taking the request body */
    bool upgraded;       /* its 101 went to the client: both connections are a tunnel now */
    int err;             /* errno of the failure, for the error log */
    const char *why;     /* the failure in words, for the error log */

    /* an invalid head or body from the upstream: the parser's or decoder's reason (static) */
    const char *detail;     /* NULL for other failures */
    unsigned detail_header; /* the header line concerned, 1-based; 0: none */
};

/*
 * Writes the request head <head>[0..<hlen>) and the body bytes that came
 * with it, <body>[0..<blen>), in one writev() to <up>: as they are for
 * Content-Length, as one chunk (followed by the last chunk when <last>)
 * for chunked. <timeout_ms> bounds each wait. Returns 0 or -1 with errno.
 */
int relay_send_head(struct upconn *up, const char *head, size_t hlen, enum http_framing framing,
                    const char *body, size_t blen, bool last, int64_t timeout_ms);

/*
 * Tells the client 100 Continue (send_timeout bounds it). Returns 0 or -1
 * with errno.
 */
int relay_continue(struct conn *client);

/*
 * Runs the body phase of <r> until the response is whole or something
 * fails. A 101 answers only a request with <websocket> set, and only with
 * Upgrade: websocket (else RELAY_UPSTREAM_FAILED, a 502): its head is
 * rewritten and sent with the bytes that came after it, and the relay
 * returns RELAY_OK with <upgraded> set; the caller runs the tunnel.
 */
enum relay_end relay_run(struct relay *r);

#endif
