/*
 * proxy: one request end to end, as a worker serves it: pick a server,
 * take a pooled connection or connect, send the rewritten head, relay the
 * bodies (relay.c), account and log. Every retry rule is in one function
 * that classifies a failure once and decides once (as nginx's
 * ngx_http_upstream_next() does).
 */
#ifndef MP_PROXY_H
#define MP_PROXY_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "balance.h"
#include "config.h"
#include "conn.h"
#include "http.h"
#include "route.h"
#include "shm.h"
#include "upool.h"

/* A worker's proxying state: long-lived, one per worker process. */
struct proxy {
    const struct config *cfg;
    struct shm *shm;
    struct shm_worker *me;
    struct balance bal;
    struct upool pool;
    char *body_buf; /* request bodies, client -> upstream (NET_IO_BUF) */
    char *resp_buf; /* responses, upstream -> client (NET_IO_BUF) */
    char *head_buf; /* rewritten heads, both directions */
    struct net_pipe pipe_up, pipe_down; /* splice = on: zero-copy bodies (relay.h) */
    size_t head_cap;
    struct route_table routes; /* cfg's routes, ready for route_match() */
    char *norm_buf;            /* the normalised path of the request (max_header_size + 1) */
    char *target_buf;          /* strip_prefix: the target sent (max_header_size + 2) */
    uint64_t rng[2];           /* request ids: xorshift128+, seeded per worker by getrandom() */
    volatile sig_atomic_t *draining; /* set by the worker when it must stop after this request */
    int https_port; /* the first tls listener's port, for redirect_https; 0: none */
};

int proxy_init(struct proxy *px, const struct config *cfg, struct shm *shm, int slot,
               volatile sig_atomic_t *draining);
void proxy_free(struct proxy *px);

/*
 * Serves the request whose head conn_read_head() just read into <req>, to
 * its end: the client gets the upstream's answer or ours. Uses what it
 * needs of the bytes buffered after the head (its body), and leaves the
 * rest (a next, pipelined request) in <c>. Returns 0 when the client
 * connection may carry another request, -1 when it must be closed.
 */
int proxy_serve(struct proxy *px, struct conn *c, const struct http_request *req);

#endif
