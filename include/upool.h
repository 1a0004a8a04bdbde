/*
 * upool: a worker's pool of idle keep-alive connections to upstream
 * servers. Private to one worker (no sharing, no locks): each group keeps
 * at most its `keepalive =` idle connections, most recently used first;
 * putting one into a full pool closes the least recently used.
 */
#ifndef MP_UPOOL_H
#define MP_UPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "upconn.h"

struct upool_entry {
    struct upconn conn; /* pooled whole: a TLS connection keeps its session */
    uint16_t server;
    int64_t since_ms; /* when it went idle */
};

struct upool_group {
    struct upool_entry *idle; /* [0..n), oldest first */
    size_t n, cap;
    SSL_SESSION **sessions; /* tls = on: the session to resume, per server; else NULL */
};

struct upool {
    const struct config *cfg;
    struct upool_group *groups;
    size_t ngroups;
};

int upool_init(struct upool *p, const struct config *cfg);

/* Closes every idle connection and frees the pool. */
void upool_free(struct upool *p);

/*
 * Takes an idle connection to server <s> of group <g>, the most recent
 * first. Connections the upstream closed meanwhile (readable: EOF or stray
 * bytes) are closed and skipped; that check costs a syscall and is skipped
 * for a connection idle less than 2 s when the caller says the request is
 * <retryable> on a fresh connection should it find it closed. Returns true
 * with the connection in <*out>, false when there is none.
 */
bool upool_get(struct upool *p, size_t g, size_t s, bool retryable, struct upconn *out);

/* Gives back <*c>, idle and reusable, and leaves UPCONN_NONE there. */
void upool_put(struct upool *p, size_t g, size_t s, struct upconn *c);

/*
 * The TLS session slot of server <s> of group <g> (for upconn_tls_begin()),
 * kept for the worker's life; NULL when the group has no TLS.
 */
SSL_SESSION **upool_session(struct upool *p, size_t g, size_t s);

#endif
