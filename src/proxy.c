/*
 * proxy: one request end to end. See proxy.h for the contract and
 * doc/design.md for the path a request takes.
 */
#include "proxy.h"

#include <errno.h>
#include <stdio.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "net.h"
#include "realip.h"
#include "relay.h"
#include "rewrite.h"
#include "tunnel.h"

/* Everything about the request in flight, for the steps below and the access log. */
struct exchange {
    struct proxy *px;
    struct conn *c;
    const struct http_request *req; /* its slices stay valid for the whole exchange (conn.h) */
    const struct cfg_group *grp;
    size_t group;                  /* index of grp */
    const struct cfg_route *route; /* the route that matched, NULL: [proxy] upstream */
    char client_ip[64];            /* the client: the peer, or who a trusted peer speaks for */
    char request_id[129];          /* request_id = on: X-Request-Id both ways; "" when off */
    struct rewrite_resp_opts resp_opts; /* the route's response header rules */
    /* the request, as it is sent */
    struct http_slice target, host; /* origin-form target, the client's host */
    struct http_slice key;          /* balance = hash: the key */
    bool idempotent;
    char reqline[4 * 233 + 8]; /* "METHOD target", truncated and escaped, for logs */
    struct conn_bytes early;   /* body bytes that came with the head (chunked: decoded) */
    bool early_whole;          /* ... and they are the whole body */
    bool websocket; /* a WebSocket handshake, and websocket = on: a 101 opens a tunnel */
    /* the attempts: the server in use and the ones tried (never the same one twice) */
    struct balance_ticket ticket;
    struct balance_set tried;
    int server;         /* index in the group, -1 before the pick */
    bool counted;       /* the request is counted active on that server */
    struct upconn up;   /* upstream connection, UPCONN_NONE when none */
    bool reused;        /* up came from the pool */
    bool fresh;         /* the next attempt connects anew instead of taking a pooled connection */
    bool stale_retried; /* a pooled connection already failed us once */
    unsigned retries_left;
    int last_status;              /* what the client gets if a retry finds no other server */
    int err;                      /* errno of the last failure, for the error log */
    char tls_why[UPCONN_WHY_MAX]; /* F_TLS: the handshake's failure in words */
    struct relay rl;
    /* the outcome */
    bool relayed;     /* the upstream's response went to the client whole */
    bool client_keep; /* keep the client connection after this response */
    int status;       /* status sent to the client, 0 before */
    int upstream_status;
    uint64_t sent; /* body bytes sent to the client */
    int64_t start_us, upstream_start_us, upstream_head_us;
    /* TLS client certificates: what the upstream is told (X-Client-Verify, -Subject) */
    bool client_cert;
    char client_verify[128];
    char client_subject[512];
};

/* "Strict-Transport-Security: max-age=N\r\n" for responses over TLS, "" without hsts. */
static char hsts_line[64];

static void
access_log(struct exchange *x)
{
    int64_t upstream_us = -1;
    if (x->upstream_start_us != 0)
        upstream_us =
            (x->upstream_head_us ? x->upstream_head_us : clock_us()) - x->upstream_start_us;
    const struct http_request *req = x->req;
    int ua = http_find_header(req->headers, req->nheaders, "user-agent");
    int ref = http_find_header(req->headers, req->nheaders, "referer");
    conn_access_log(x->c,
                    &(struct conn_log_entry){
                        .request = x->reqline,
                        .method = req->method,
                        .target = req->target,
                        .client = x->client_ip,
                        .route = x->route != NULL ? x->route->name : NULL,
                        .request_id = x->request_id[0] != '\0' ? x->request_id : NULL,
                        .user_agent = ua >= 0 ? req->headers[ua].value : (struct http_slice){0},
                        .referer = ref >= 0 ? req->headers[ref].value : (struct http_slice){0},
                        .has_ua = ua >= 0,
                        .has_referer = ref >= 0,
                        .minor = x->req->minor_version,
                        .status = x->status,
                        .bytes = x->sent,
                        .upstream = x->server >= 0 ? x->grp->servers[x->server].addr.text : NULL,
                        .upstream_status = x->upstream_status,
                        .start_us = x->start_us,
                        .upstream_us = upstream_us,
                    });
}

/*
 * Answers the client with our page for <status> (0: no answer, the client
 * is gone; logged as 499, nginx's "client closed request"), unless a
 * response was already started: then it can only be cut. <close> ends the
 * connection after the answer; so does a request body left unread.
 */
static void
answer(struct exchange *x, int status, bool close)
{
    if (x->status != 0 || status == 0) {
        x->client_keep = false;
        if (x->status == 0)
            x->status = 499;
        return;
    }
    if (close || !x->rl.body_done)
        x->client_keep = false;
    x->status = status;
    shm_count_own(x->px->shm, status);
    x->sent = conn_send_error_id(x->c, status, !x->client_keep,
                                 x->request_id[0] != '\0' ? x->request_id : NULL);
}

/* ---- the server and its connection ------------------------------------------------------ */

/*
 * Picks a server this request has not tried yet and counts the request
 * active on it. Returns 0, or -1 when no server of the group is usable.
 */
static int
pick_server(struct exchange *x)
{
    struct proxy *px = x->px;

    balance_pick(&px->bal, px->shm, x->group, &x->tried, x->key.p, x->key.len, clock_ms(),
                 &x->ticket);
    if (x->ticket.server < 0) {
        log_warn("[%s] no usable server (client %s, \"%s\")", x->grp->name, x->client_ip,
                 x->reqline);
        return -1;
    }
    x->server = x->ticket.server;
    x->counted = true;
    x->fresh = false;
    balance_set_add(&x->tried, (size_t)x->server);
    struct shm_server *srv = shm_srv(px->shm, x->group, (size_t)x->server);
    atomic_fetch_add_explicit(&srv->active, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&srv->requests, 1, memory_order_relaxed);
    return 0;
}

/* Closes the connection to the current server (keeping the server). */
static void
drop_conn(struct exchange *x)
{
    upconn_close(&x->up);
}

/*
 * Done with the current server for this request: tells the balancer how it
 * went (<ok>: it did its part), uncounts the request, and pools its
 * connection when the response went through whole and both sides agreed
 * to keep it.
 */
static void
leave_server(struct exchange *x, bool ok)
{
    struct proxy *px = x->px;
    const struct relay *r = &x->rl;

    if (!x->counted)
        return;
    x->counted = false;
    balance_done(&px->bal, px->shm, x->group, &x->ticket, ok, clock_ms());
    atomic_fetch_sub_explicit(&shm_srv(px->shm, x->group, (size_t)x->server)->active, 1,
                              memory_order_relaxed);
    bool pool = ok && x->relayed && r->upstream_keep && r->body_done && !r->upload_aborted;
    if (x->up.fd != -1 && pool)
        upool_put(&px->pool, x->group, (size_t)x->server, &x->up);
    drop_conn(x);
}

/* ---- one attempt: connect, send, relay -------------------------------------------------- */

/* What can go wrong with an attempt; upstream_next() decides what each means. */
enum fail {
    F_NONE,             /* the response went to the client whole */
    F_NO_SERVER,        /* no server of the group is usable (left) */
    F_CONNECT,          /* connect() failed: refused, unreachable */
    F_CONNECT_TIMEOUT,  /* connect_timeout passed */
    F_TLS,              /* the TLS handshake failed (a certificate not verified...) */
    F_TLS_TIMEOUT,      /* ... or did not end within connect_timeout */
    F_HEAD_TOO_LARGE,   /* the rewritten request head does not fit: 431 */
    F_SEND,             /* writing the request head failed */
    F_SEND_TIMEOUT,     /* ... or did not progress for read_timeout */
    F_CONTINUE,         /* the client could not be told 100 Continue */
    F_CLIENT_GONE,      /* the relay's ends, one for one */
    F_CLIENT_TIMEOUT,   /* */
    F_CLIENT_SLOW,      /* */
    F_BODY_TOO_LARGE,   /* */
    F_BAD_BODY,         /* */
    F_UPSTREAM_EMPTY,   /* */
    F_UPSTREAM_TIMEOUT, /* */
    F_UPSTREAM_FAILED,  /* */
    F_5XX,              /* a 5xx response went through whole, and fail_on_5xx counts it */
};

/*
 * Connects anew to the current server; with tls = on, also does the
 * handshake, with connect_timeout of its own (as nginx's
 * proxy_connect_timeout does), resuming the server's last session.
 */
static enum fail
connect_server(struct exchange *x)
{
    const struct cfg_server *srv = &x->grp->servers[x->server];

    x->up.fd = net_connect(&srv->addr, clock_ms() + x->grp->connect_timeout_ms);
    if (x->up.fd == -1) {
        x->err = errno;
        return errno == ETIMEDOUT ? F_CONNECT_TIMEOUT : F_CONNECT;
    }
    if (x->grp->tls_ctx == NULL)
        return F_NONE;
    SSL_SESSION **slot = upool_session(&x->px->pool, x->group, (size_t)x->server);
    if (upconn_tls_begin(&x->up, x->grp, srv, slot, x->tls_why, sizeof(x->tls_why)) == -1 ||
        upconn_handshake(&x->up, clock_ms() + x->grp->connect_timeout_ms, x->tls_why,
                         sizeof(x->tls_why)) == -1) {
        x->err = errno;
        return errno == ETIMEDOUT ? F_TLS_TIMEOUT : F_TLS;
    }
    return F_NONE;
}

/*
 * Takes a pooled connection to the current server or connects a new one
 * (x->fresh skips the pool, after a stale one).
 */
static enum fail
open_conn(struct exchange *x)
{
    struct proxy *px = x->px;

    /* An idempotent request whose body is all here is retried if a pooled connection is dead. */
    bool retryable = x->idempotent && x->rl.body_done;
    int64_t t0 = clock_us();
    x->reused = !x->fresh && upool_get(&px->pool, x->group, (size_t)x->server, retryable, &x->up);
    if (x->upstream_start_us == 0)
        x->upstream_start_us = t0;
    enum fail f = x->reused ? F_NONE : connect_server(x);
    x->rl.connect_us = clock_us() - t0; /* Server-Timing's mp-connect: this attempt's */
    return f;
}

/* Sends the rewritten request head with the body bytes that came with it. */
static enum fail
send_head(struct exchange *x)
{
    struct proxy *px = x->px;
    const struct http_request *req = x->req;
    const struct rewrite_req rw = {
        .target = x->target,
        .host = x->host,
        .upstream_host = x->grp->servers[x->server].addr.text,
        .preserve_host = x->grp->preserve_host,
        .client_ip = x->client_ip,
        .proto = conn_is_tls(x->c) ? "https" : "http",
        .client_verify = x->client_cert ? x->client_verify : NULL,
        .client_subject =
            x->client_cert && x->client_subject[0] != '\0' ? x->client_subject : NULL,
        .framing = req->info.framing,
        .content_length = req->info.content_length,
        .upstream_close = x->grp->keepalive == 0,
        .drop_underscores = px->cfg->underscores_in_headers == CFG_US_DROP,
        .set = x->route != NULL ? x->route->request_headers : NULL,
        .nset = x->route != NULL ? x->route->nrequest_headers : 0,
        .request_id = x->request_id[0] != '\0' ? x->request_id : NULL,
        .websocket = x->websocket,
    };
    ssize_t hlen = rewrite_request(req, &rw, px->head_buf, px->head_cap);
    if (hlen < 0)
        return F_HEAD_TOO_LARGE;
    if (relay_send_head(&x->up, px->head_buf, (size_t)hlen, req->info.framing, x->early.p,
                        x->early.len, x->early_whole, x->grp->read_timeout_ms) == -1) {
        x->err = errno;
        return errno == ETIMEDOUT ? F_SEND_TIMEOUT : F_SEND;
    }
    x->rl.body_done = x->early_whole;
    x->rl.sent_us = x->early_whole ? clock_us() : 0; /* else the relay sets it */
    return F_NONE;
}

/* Counts a response head from the current server on its shared counters. */
static void
account_response(struct exchange *x)
{
    struct shm_server *srv = shm_srv(x->px->shm, x->group, (size_t)x->server);
    int st = x->upstream_status;
    int64_t us = x->upstream_head_us - x->upstream_start_us;

    if (st >= 100 && st < 600)
        atomic_fetch_add_explicit(&srv->responses[st / 100 - 1], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&srv->latency_us_sum, (uint64_t)us, memory_order_relaxed);
    /* the group's histogram: the same latency, so its _sum is the servers' latency_us_sum */
    atomic_fetch_add_explicit(&x->px->shm->groups[x->group].latency[shm_lat_bucket(us)], 1,
                              memory_order_relaxed);
}

/* Runs the relay on the connection just sent to; maps how it ended. */
static enum fail
relay(struct exchange *x)
{
    static const enum fail kind[] = {
        [RELAY_OK] = F_NONE,
        [RELAY_CLIENT_GONE] = F_CLIENT_GONE,
        [RELAY_CLIENT_TIMEOUT] = F_CLIENT_TIMEOUT,
        [RELAY_CLIENT_SLOW] = F_CLIENT_SLOW,
        [RELAY_BODY_TOO_LARGE] = F_BODY_TOO_LARGE,
        [RELAY_BAD_BODY] = F_BAD_BODY,
        [RELAY_UPSTREAM_EMPTY] = F_UPSTREAM_EMPTY,
        [RELAY_UPSTREAM_TIMEOUT] = F_UPSTREAM_TIMEOUT,
        [RELAY_UPSTREAM_FAILED] = F_UPSTREAM_FAILED,
    };
    struct relay *r = &x->rl;

    r->up = &x->up;
    r->upstream_addr = x->grp->servers[x->server].addr.text;
    r->client_keep = x->client_keep;
    r->status = r->upstream_status = 0;
    r->head_us = 0;
    r->sent = r->spliced = 0;
    r->upstream_keep = r->upload_aborted = r->upgraded = false;
    r->detail = NULL;
    r->detail_header = 0;
    enum relay_end end = relay_run(r);
    if (r->spliced > 0)
        atomic_fetch_add_explicit(&x->px->shm->spliced, r->spliced, memory_order_relaxed);
    x->client_keep = r->client_keep;
    x->err = r->err;
    x->sent = r->sent;
    x->relayed = end == RELAY_OK;
    if (r->upstream_status != 0) {
        x->upstream_status = r->upstream_status;
        x->upstream_head_us = r->head_us;
        account_response(x);
    }
    if (r->status != 0)
        x->status = r->status;
    return kind[end];
}

/* One attempt on the server in use, or on a new pick when there is none. */
static enum fail
attempt(struct exchange *x)
{
    const struct http_request *req = x->req;
    enum fail f;

    if (!x->counted && pick_server(x) == -1)
        return F_NO_SERVER;
    if ((f = open_conn(x)) != F_NONE || (f = send_head(x)) != F_NONE)
        return f;
    if (req->expect_continue && !x->rl.body_done && req->minor_version == 1) {
        if (relay_continue(x->c) == -1)
            return F_CONTINUE;
        x->rl.body_clock = clock_ms(); /* the client may wait for it: its body clock starts now */
    }
    return relay(x);
}

/* ---- what a failure means --------------------------------------------------------------- */

/*
 * The error-log line of a server's failure <what> at <addr>: the parser's
 * or decoder's reason for an invalid head or body (and the header line
 * concerned), else the errno's words.
 */
static void
log_server_fault(const struct exchange *x, const char *what, const char *addr)
{
    const struct relay *r = &x->rl;
    char hdr[32] = "";

    if (r->detail == NULL) {
        log_warn("%s %s: %s (client %s, \"%s\")", what, addr, strerror(x->err), x->client_ip,
                 x->reqline);
        return;
    }
    if (r->detail_header > 0)
        snprintf(hdr, sizeof(hdr), " in header %u", r->detail_header);
    log_warn("%s %s: %s%s (client %s, \"%s\")", what, addr, r->detail, hdr, x->client_ip,
             x->reqline);
}

/* When a failed attempt may be made again. */
enum again {
    AGAIN_NEVER,
    AGAIN_ALWAYS,     /* no byte of the request reached the server */
    AGAIN_IDEMPOTENT, /* it may have, but the request may be done twice */
    AGAIN_REPLAYABLE, /* idempotent, and the whole request is still here to send again */
};

struct fail_rule {
    int status;        /* our answer; 0: none (the response is out, or the client gone) */
    bool server_fault; /* the server failed: counted, logged, and told to the balancer */
    bool quiet;        /* ... but not logged */
    bool client_fault; /* the client failed: logged at info */
    bool slow;         /* ... by being slower than a minimum rate: counted as such */
    bool gone;         /* the client is gone: nothing to answer, logged as 499 */
    bool ends_conn;    /* the client connection ends, unless the attempt could be retried */
    enum again stale;  /* when a pooled connection that failed this way is retried fresh */
    enum again other;  /* when another server of the group is tried */
    const char *what;  /* for the error log; NULL: the relay's words */
};

static const struct fail_rule fail_rules[] = {
    [F_NONE] = {0},
    [F_NO_SERVER] = {.status = 503},
    [F_CONNECT] = {.status = 502,
                   .server_fault = true,
                   .other = AGAIN_ALWAYS,
                   .what = "connect to"},
    [F_CONNECT_TIMEOUT] = {.status = 504,
                           .server_fault = true,
                           .other = AGAIN_ALWAYS,
                           .what = "connect to"},
    [F_TLS] = {.status = 502, .server_fault = true, .other = AGAIN_ALWAYS, .what = "TLS to"},
    [F_TLS_TIMEOUT] = {.status = 504,
                       .server_fault = true,
                       .other = AGAIN_ALWAYS,
                       .what = "TLS handshake with"},
    [F_HEAD_TOO_LARGE] = {.status = 431, .ends_conn = true},
    [F_SEND] = {.status = 502,
                .server_fault = true,
                .stale = AGAIN_ALWAYS,
                .other = AGAIN_IDEMPOTENT,
                .what = "sending request to"},
    [F_SEND_TIMEOUT] = {.status = 504,
                        .server_fault = true,
                        .stale = AGAIN_ALWAYS,
                        .what = "sending request to"},
    [F_CONTINUE] = {.gone = true, .ends_conn = true},
    [F_CLIENT_GONE] = {.client_fault = true, .gone = true, .ends_conn = true},
    [F_CLIENT_TIMEOUT] = {.status = 408, .client_fault = true, .ends_conn = true},
    [F_CLIENT_SLOW] = {.status = 408, .client_fault = true, .slow = true, .ends_conn = true},
    [F_BODY_TOO_LARGE] = {.status = 413, .ends_conn = true},
    [F_BAD_BODY] = {.status = 400, .ends_conn = true},
    [F_UPSTREAM_EMPTY] = {.status = 502,
                          .server_fault = true,
                          .ends_conn = true,
                          .stale = AGAIN_REPLAYABLE,
                          .other = AGAIN_REPLAYABLE},
    [F_UPSTREAM_TIMEOUT] = {.status = 504, .server_fault = true, .ends_conn = true},
    [F_UPSTREAM_FAILED] = {.status = 502, .server_fault = true, .ends_conn = true},
    [F_5XX] = {.server_fault = true, .quiet = true, .what = "a 5xx answer from"},
};

static bool
may_again(const struct exchange *x, enum again a)
{
    switch (a) {
    case AGAIN_ALWAYS:
        return true;
    case AGAIN_IDEMPOTENT:
        return x->idempotent;
    case AGAIN_REPLAYABLE:
        /* all of the body came with the head and is still in the buffer */
        return x->idempotent && x->early_whole;
    case AGAIN_NEVER:
        break;
    }
    return false;
}

/* Whether another server may be tried; says so in the log when it will be. */
static bool
retry_other(struct exchange *x)
{
    if (x->retries_left == 0 || x->status != 0)
        return false;
    x->retries_left--;
    log_info("retrying \"%s\" on another server of [%s] after %s failed", x->reqline, x->grp->name,
             x->grp->servers[x->server].addr.text);
    return true;
}

enum next {
    NEXT_DONE,  /* the exchange is over: answered, relayed or cut */
    NEXT_AGAIN, /* another attempt: the same server on a fresh connection, or another server */
};

/*
 * Every retry rule, in one place (nginx's ngx_http_upstream_next()): an
 * attempt ended with <f>; classify it once, by fail_rules[], and decide
 * once: the same server again on a fresh connection (a pooled one was
 * stale), another server of the group (up to `retries` times, never one
 * already tried), or the end: our answer, the response already relayed,
 * or a cut connection. It also bumps the counters and writes the log line
 * the failure is worth. Non-idempotent requests that reached a server,
 * answers already begun, and bodies already streamed (they cannot be
 * replayed) are never retried.
 */
static enum next
upstream_next(struct exchange *x, enum fail f)
{
    if (f == F_NONE && x->grp->fail_on_5xx && x->upstream_status >= 500)
        f = F_5XX;
    if (f == F_NONE)
        return NEXT_DONE;
    const struct fail_rule *rule = &fail_rules[f];
    const char *addr = x->server >= 0 ? x->grp->servers[x->server].addr.text : "-";

    if (x->reused && !x->stale_retried && may_again(x, rule->stale)) {
        log_debug("pooled connection to %s was closed; retrying on a fresh one", addr);
        x->stale_retried = x->fresh = true;
        drop_conn(x);
        return NEXT_AGAIN;
    }
    if (rule->server_fault) {
        atomic_fetch_add_explicit(&shm_srv(x->px->shm, x->group, (size_t)x->server)->failures, 1,
                                  memory_order_relaxed);
        const char *what = rule->what ? rule->what : x->rl.why;
        if (!rule->quiet) {
            if (f == F_TLS) /* a TLS failure says more than its errno */
                log_warn("%s %s: %s (client %s, \"%s\")", what, addr, x->tls_why, x->c->ip,
                         x->reqline);
            else
                log_server_fault(x, what, addr);
        }
        /* the cause, for the breaker's ejection log */
        balance_ticket_failed(&x->ticket, what, f == F_5XX || f == F_TLS ? 0 : x->err);
        leave_server(x, false);
        x->last_status = rule->status;
    }
    if (rule->slow)
        atomic_fetch_add_explicit(&x->px->shm->slow_rejects, 1, memory_order_relaxed);
    if (rule->client_fault)
        log_info("%s: %s (\"%s\")", x->client_ip, x->rl.why, x->reqline);
    if (rule->status == 408)
        conn_no_linger(x->c); /* too slow: lingering would give its worker back */
    bool could = may_again(x, rule->other);
    if (could && retry_other(x))
        return NEXT_AGAIN;
    if (f == F_NO_SERVER && x->last_status != 0)
        answer(x, x->last_status, false);
    else if (rule->status != 0 || rule->gone)
        answer(x, rule->status, rule->ends_conn && !could);
    return NEXT_DONE;
}

/* ---- the request ------------------------------------------------------------------------ */

/* True when method <m> is <name>: method names are case-sensitive (RFC 9110 9.1). */
static bool
method_is(struct http_slice m, const char *name)
{
    return m.len == strlen(name) && memcmp(m.p, name, m.len) == 0;
}

static bool
is_idempotent(struct http_slice m)
{
    static const char *const idem[] = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"};
    for (size_t i = 0; i < sizeof(idem) / sizeof(idem[0]); i++)
        if (method_is(m, idem[i]))
            return true;
    return false;
}

/*
 * Works out the origin-form target and the client's host. Absolute-form
 * ("http://h/p") is accepted as RFC 9112 3.2.2 asks of servers: its
 * authority replaces Host. Returns 0 or the status to answer with.
 */
static int
resolve_target(struct exchange *x)
{
    const struct http_request *req = x->req;
    struct http_slice t = req->target;

    x->target = t;
    x->host = req->host;
    /* We tunnel nothing: a CONNECT in any target form must not reach an app. */
    if (method_is(req->method, "CONNECT"))
        return 405;
    if (t.len > 0 && t.p[0] == '/')
        return 0;
    if (t.len == 1 && t.p[0] == '*')
        return method_is(req->method, "OPTIONS") ? 0 : 400;
    size_t skip = 0;
    if (t.len > 7 && buf_ieq(t.p, 7, "http://"))
        skip = 7;
    else if (t.len > 8 && buf_ieq(t.p, 8, "https://"))
        skip = 8;
    else
        return 400;
    const char *auth = t.p + skip, *end = t.p + t.len;
    const char *slash = memchr(auth, '/', (size_t)(end - auth));
    const char *q = memchr(auth, '?', (size_t)(end - auth));
    if (q != NULL && (slash == NULL || q < slash))
        slash = q;
    const char *auth_end = slash != NULL ? slash : end;
    if (auth_end == auth || memchr(auth, '@', (size_t)(auth_end - auth)) != NULL)
        return 400; /* no host, or userinfo (RFC 9110 4.2.4: must not be sent) */
    x->host = (struct http_slice){auth, (size_t)(auth_end - auth)};
    if (slash == NULL)
        x->target = (struct http_slice){"/", 1};
    else if (*slash == '?') {
        /* "http://h?q" has an empty path: it stands for "/?q", which we cannot
         * point into the client's buffer; rare enough to refuse. */
        return 400;
    } else
        x->target = (struct http_slice){slash, (size_t)(end - slash)};
    return 0;
}

/*
 * Takes the body bytes that came with the head: as they are for
 * Content-Length, decoded in place for chunked, so that a bad or oversized
 * body among them is refused before any upstream is contacted. Returns 0
 * or the status to answer with.
 */
static int
take_early_body(struct exchange *x)
{
    const struct http_request *req = x->req;
    struct relay *r = &x->rl;
    struct conn_bytes in = conn_unread(x->c);
    uint64_t limit = x->px->cfg->client_max_body_size;
    size_t used = 0;

    x->early = (struct conn_bytes){in.p, 0};
    x->early_whole = true;
    if (req->info.framing == HTTP_BODY_LENGTH) {
        uint64_t cl = req->info.content_length;
        if (limit != 0 && cl > limit)
            return 413;
        x->early.len = in.len < cl ? in.len : (size_t)cl;
        used = x->early.len;
        r->body_left = cl - x->early.len;
        x->early_whole = r->body_left == 0;
    } else if (req->info.framing == HTTP_BODY_CHUNKED) {
        http_chunked_init(&r->body_dec);
        int d = http_chunked_decode(&r->body_dec, in.p, in.len, &x->early.len, &used);
        if (d == -1)
            return 400;
        if (limit != 0 && r->body_dec.total > limit)
            return 413;
        x->early_whole = d == 1;
    }
    conn_take(x->c, used);
    r->body_early = req->info.framing == HTTP_BODY_CHUNKED ? r->body_dec.total : x->early.len;
    return 0;
}

/*
 * The route step: which group serves the request (route.h), and the target
 * it is sent with (strip_prefix: the normalised path without the prefix).
 * Counted per route in the shared table.
 */
static void
choose_route(struct exchange *x)
{
    struct proxy *px = x->px;
    const struct config *cfg = px->cfg;
    struct route_result rr;

    if (cfg->nroutes == 0 || x->target.p[0] != '/' ||
        route_match(&px->routes, x->host.p, x->host.len, x->target.p, x->target.len, px->norm_buf,
                    cfg->max_header_size + 1, &rr) == -1 ||
        rr.route == NULL)
        return;
    x->route = rr.route;
    x->group = rr.route->group;
    x->grp = &cfg->groups[x->group];
    atomic_fetch_add_explicit(&px->shm->route_requests[rr.index], 1, memory_order_relaxed);
    if (rr.route->strip_prefix) {
        ssize_t n = route_strip(rr.route, px->norm_buf, rr.path_len, x->target.p, x->target.len,
                                px->target_buf, cfg->max_header_size + 2);
        if (n >= 0)
            x->target = (struct http_slice){px->target_buf, (size_t)n};
    }
}

/* xorshift128+: cheap, and seeded per worker; ids need to be unique, not secret. */
static uint64_t
next_random(struct proxy *px)
{
    uint64_t a = px->rng[0], b = px->rng[1];

    px->rng[0] = b;
    a ^= a << 23;
    a ^= a >> 17;
    a ^= b ^ (b >> 26);
    px->rng[1] = a;
    return a + b;
}

/* request_id = on: the client's X-Request-Id when it is 1..128 visible ASCII, else a new one. */
static void
take_request_id(struct exchange *x)
{
    const struct http_request *req = x->req;
    int h = http_find_header(req->headers, req->nheaders, "x-request-id");

    if (h >= 0) {
        struct http_slice v = req->headers[h].value;
        bool ok = v.len >= 1 && v.len <= 128;
        for (size_t i = 0; ok && i < v.len; i++)
            ok = v.p[i] >= 0x21 && v.p[i] <= 0x7e;
        if (ok) {
            memcpy(x->request_id, v.p, v.len);
            x->request_id[v.len] = '\0';
            return;
        }
    }
    snprintf(x->request_id, sizeof(x->request_id), "%016llx%016llx",
             (unsigned long long)next_random(x->px), (unsigned long long)next_random(x->px));
}

/*
 * max_conns_per_ip under the real address: a connection from a trusted
 * peer was not counted at accept (worker.c), since the peer speaks for
 * many clients; once a head names the client, the connection is counted
 * in that client's slot (moved there from a previous request's). Returns
 * 0, or 503 when the client is over its limit.
 */
static int
readmit(struct exchange *x)
{
    struct proxy *px = x->px;
    unsigned max = px->cfg->max_conns_per_ip;

    if (max == 0 || px->cfg->ntrusted_proxies == 0 || !realip_trusted(px->cfg, x->c->ip))
        return 0;
    int b = (int)shm_ip_bucket(x->client_ip);
    if (atomic_load(&px->me->ip_bucket) == b)
        return 0;
    int n = atomic_fetch_add(&px->shm->ip_conns[b], 1) + 1;
    int old = atomic_exchange(&px->me->ip_bucket, b);
    if (old >= 0 && old < SHM_IP_BUCKETS)
        atomic_fetch_sub(&px->shm->ip_conns[old], 1);
    if ((unsigned)n <= max)
        return 0;
    atomic_fetch_add_explicit(&px->shm->ip_rejects, 1, memory_order_relaxed);
    log_info("%s: refused: %d connections from this address (max_conns_per_ip %u, via %s)",
             x->client_ip, n, max, x->c->ip);
    return 503;
}

/*
 * "METHOD target" for the logs into <out>, truncated: the method at most 32
 * bytes, the target 200; '"', '\\' and bytes outside printable ASCII as
 * \xHH (the parser lets '"' through in a target), so a request cannot end
 * the quoted field of a log line. Copied, not formatted: it is on every
 * request.
 */
static void
log_request_line(char *out, size_t cap, struct http_slice method, struct http_slice target)
{
    static const char hex[] = "0123456789abcdef";
    size_t ml = method.len < 32 ? method.len : 32;
    size_t tl = target.len < 200 ? target.len : 200;
    size_t o = 0;

    for (size_t i = 0; i < ml + 1 + tl && o + 5 < cap; i++) {
        unsigned char b = i < ml    ? (unsigned char)method.p[i]
                          : i == ml ? ' '
                                    : (unsigned char)target.p[i - ml - 1];
        if (b < 0x20 || b > 0x7e || b == '"' || b == '\\') {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[b >> 4];
            out[o++] = hex[b & 15];
        } else {
            out[o++] = (char)b;
        }
    }
    out[o] = '\0';
}

/* Sets up <x> for the request <req> read on <c>. Returns 0 or the status to answer with. */
static int
begin(struct exchange *x, struct proxy *px, struct conn *c, const struct http_request *req)
{
    const struct config *cfg = px->cfg;
    const struct cfg_group *grp = &cfg->groups[cfg->group];

    *x = (struct exchange){
        .px = px,
        .c = c,
        .req = req,
        .group = cfg->group,
        .grp = grp,
        .server = -1,
        .up = UPCONN_NONE,
        .start_us = clock_us(),
        .idempotent = is_idempotent(req->method),
        .websocket = cfg->websocket && rewrite_is_websocket(req),
        .client_keep = req->info.keep_alive && !*px->draining && cfg->keepalive_timeout_ms > 0 &&
                       c->requests < cfg->keepalive_requests,
    };
    log_request_line(x->reqline, sizeof(x->reqline), req->method, req->target);
    if (cfg->ntrusted_proxies > 0)
        realip_client(cfg, c->ip, req, x->client_ip, sizeof(x->client_ip));
    else
        memcpy(x->client_ip, c->ip, sizeof(x->client_ip));
    if (cfg->request_id)
        take_request_id(x);
    if (cfg->underscores_in_headers == CFG_US_DROP)
        for (size_t i = 0; i < req->nheaders; i++)
            if (rewrite_has_underscore(req->headers[i].name))
                log_debug("%s: dropped header \"%.*s\" (underscores_in_headers = drop)", c->ip,
                          (int)req->headers[i].name.len, req->headers[i].name.p);
    struct relay *r = &x->rl;
    r->client = c;
    r->body_framing = req->info.framing;
    /* Until the head is sent, a body counts as not read: an answer then closes the connection. */
    r->body_done = req->info.framing == HTTP_BODY_NONE;
    r->max_body = cfg->client_max_body_size;
    r->head_request = method_is(req->method, "HEAD");
    r->client_minor = req->minor_version;
    r->websocket = x->websocket;
    r->draining = px->draining;
    r->send_timeout = cfg->send_timeout_ms;
    r->body_timeout = cfg->client_body_timeout_ms;
    r->body_min_rate = cfg->client_body_min_rate;
    r->body_clock = x->start_us / 1000; /* the head is complete */
    r->body_buf = px->body_buf;
    r->resp_buf = px->resp_buf;
    r->pipe_up = cfg->splice ? &px->pipe_up : NULL;
    r->pipe_down = cfg->splice ? &px->pipe_down : NULL;
    r->head_buf = px->head_buf;
    r->head_cap = px->head_cap;
    if (conn_is_tls(c)) {
        r->add_line = hsts_line[0] != '\0' ? hsts_line : NULL;
        if (cfg->tls_client_cert != TLS_CLIENT_CERT_OFF) {
            x->client_cert = true;
            tls_client_verify(c->ssl, x->client_verify, sizeof(x->client_verify),
                              x->client_subject, sizeof(x->client_subject));
        }
    }
    r->resp_opts = &x->resp_opts;
    r->server_timing = cfg->server_timing;
    r->start_us = x->start_us;
    x->resp_opts.request_id = x->request_id[0] != '\0' ? x->request_id : NULL;
    int st = resolve_target(x);
    if (st == 0 && (st = readmit(x)) == 0)
        choose_route(x);
    /* the group is known now: what depends on it */
    grp = x->grp;
    if (x->route != NULL) {
        x->resp_opts.set = x->route->response_headers;
        x->resp_opts.nset = x->route->nresponse_headers;
        x->resp_opts.hide = x->route->hide_response_headers;
        x->resp_opts.nhide = x->route->nhide_response_headers;
    }
    x->retries_left = grp->retries;
    r->pool_ok = grp->keepalive > 0;
    r->read_timeout = grp->read_timeout_ms;
    if (grp->balance == CFG_BAL_HASH) {
        x->key = (struct http_slice){x->client_ip, strlen(x->client_ip)};
        if (grp->hash_key == CFG_HASH_HEADER) {
            int h = http_find_header(req->headers, req->nheaders, grp->hash_header);
            if (h >= 0)
                x->key = req->headers[h].value; /* absent: the client address stands in */
        }
        if (x->key.len > 256)
            x->key.len = 256; /* the hash has always read 256 bytes at most: keys map as before */
    }
    return st != 0 ? st : take_early_body(x);
}

/*
 * The upstream answered the handshake with 101 and the client has it:
 * relays the tunnel to its end. The worker shows as `tunnel` meanwhile; it
 * is busy for the pool, and fair keep-alive, which only closes connections
 * idle between requests, never takes it. The request stays counted active
 * on its server. A drain lets it run: shutdown_timeout bounds it.
 */
static void
run_tunnel(struct exchange *x)
{
    struct proxy *px = x->px;
    struct tunnel t = {
        .client = x->c,
        .up = &x->up,
        .idle_ms = px->cfg->tunnel_timeout_ms,
        .up_buf = px->body_buf,
        .down_buf = px->resp_buf,
    };

    /* Straight to the scoreboard: worker.c's set_state() only tracks changes to and from idle. */
    atomic_store_explicit(&px->me->state, SHM_W_TUNNEL, memory_order_relaxed);
    atomic_fetch_add_explicit(&px->shm->tunnels, 1, memory_order_relaxed);
    enum tunnel_end end = tunnel_run(&t);
    atomic_store_explicit(&px->me->state, SHM_W_PROXY, memory_order_relaxed);
    x->sent += t.down_bytes;
    x->client_keep = false;
    if (end == TUNNEL_CLIENT_FAILED || end == TUNNEL_UPSTREAM_FAILED)
        log_info("tunnel %s <-> %s: %s: %s (%" PRIu64 " bytes up, %" PRIu64 " down)", x->c->ip,
                 x->grp->servers[x->server].addr.text, tunnel_end_name(end), strerror(t.err),
                 t.up_bytes, t.down_bytes);
    else
        log_debug("tunnel %s <-> %s: %s (%" PRIu64 " bytes up, %" PRIu64 " down)", x->c->ip,
                  x->grp->servers[x->server].addr.text, tunnel_end_name(end), t.up_bytes,
                  t.down_bytes);
}

/* Ends the exchange: the server's accounting, the access log, and the verdict on the client. */
static int
finish(struct exchange *x)
{
    if (x->server >= 0 && x->status != 0 && x->upstream_head_us == 0)
        x->upstream_head_us = clock_us();
    /* The response may be whole, but the request body was not all read or sent: close. */
    if (!x->rl.body_done || x->rl.upload_aborted) {
        x->client_keep = false;
        conn_may_send(x->c); /* ... after reading what is still coming (lingering close) */
    }
    leave_server(x, true);
    atomic_fetch_add_explicit(&x->px->me->requests, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&x->px->me->bytes, x->sent, memory_order_relaxed);
    access_log(x);
    return x->client_keep ? 0 : -1;
}

/*
 * redirect_https on a plain listener: 301 (GET, HEAD) or 308 to
 * https://HOST[:PORT]TARGET, PORT the first tls listener's unless 443.
 * The connection is kept when no request body is left unread. Returns
 * what proxy_serve() does.
 */
static int
redirect_https(struct proxy *px, struct conn *c, const struct http_request *req)
{
    const struct config *cfg = px->cfg;
    struct http_slice host = req->host, path = req->target;
    bool get = method_is(req->method, "GET") || method_is(req->method, "HEAD");
    int status = get ? 301 : 308;
    bool keep = req->info.keep_alive && req->info.framing == HTTP_BODY_NONE && !*px->draining &&
                cfg->keepalive_timeout_ms > 0 && c->requests < cfg->keepalive_requests;
    char port[16] = "", head[1024], reqline[256];
    int64_t start_us = clock_us();
    size_t hl;

    if (host.len == 0) {
        conn_refuse(c, 400, start_us);
        return -1;
    }
    /* the host without its port: "[::1]:80" -> "[::1]", "a.test:80" -> "a.test" */
    if (host.p[0] == '[') {
        const char *e = memchr(host.p, ']', host.len);
        if (e != NULL)
            host.len = (size_t)(e - host.p) + 1;
    } else {
        const char *e = memchr(host.p, ':', host.len);
        if (e != NULL)
            host.len = (size_t)(e - host.p);
    }
    /* an absolute-form target: its path */
    if (path.len > 0 && path.p[0] != '/') {
        const char *s = memmem(path.p, path.len, "://", 3);
        const char *slash =
            s != NULL ? memchr(s + 3, '/', path.len - (size_t)(s + 3 - path.p)) : NULL;
        path = slash != NULL ? (struct http_slice){slash, path.len - (size_t)(slash - path.p)}
                             : (struct http_slice){"/", 1};
    }
    if (px->https_port != 443)
        snprintf(port, sizeof(port), ":%d", px->https_port);
    hl = (size_t)snprintf(head, sizeof(head),
                          "HTTP/1.1 %d %s\r\nLocation: https://%.*s%s%.*s\r\n"
                          "Content-Length: 0\r\n%s\r\n",
                          status, http_reason(status), (int)(host.len > 255 ? 255 : host.len),
                          host.p, port, (int)(path.len > 700 ? 700 : path.len), path.p,
                          keep ? "" : "Connection: close\r\n");
    if (hl >= sizeof(head))
        hl = sizeof(head) - 1; /* cannot happen: the parts are bounded above */
    struct iovec iov = {head, hl};
    if (conn_write_all(c, &iov, 1) == -1)
        keep = false;
    snprintf(reqline, sizeof(reqline), "%.*s %.*s",
             (int)(req->method.len > 32 ? 32 : req->method.len), req->method.p,
             (int)(req->target.len > 200 ? 200 : req->target.len), req->target.p);
    conn_access_log(c, &(struct conn_log_entry){.request = reqline,
                                                .minor = req->minor_version,
                                                .status = status,
                                                .start_us = start_us,
                                                .upstream_us = -1});
    atomic_fetch_add_explicit(&px->me->requests, 1, memory_order_relaxed);
    return keep ? 0 : -1;
}

int
proxy_serve(struct proxy *px, struct conn *c, const struct http_request *req)
{
    struct exchange x;

    if (px->cfg->redirect_https && px->https_port != 0 && !conn_is_tls(c))
        return redirect_https(px, c, req);
    int st = begin(&x, px, c, req);

    if (st != 0)
        answer(&x, st, true);
    else
        while (upstream_next(&x, attempt(&x)) == NEXT_AGAIN)
            ;
    if (x.rl.upgraded && x.relayed)
        run_tunnel(&x);
    return finish(&x);
}

/* ---- set-up ----------------------------------------------------------------------------- */

int
proxy_init(struct proxy *px, const struct config *cfg, struct shm *shm, int slot,
           volatile sig_atomic_t *draining)
{
    memset(px, 0, sizeof(*px));
    px->cfg = cfg;
    px->shm = shm;
    /* The admin worker (slot -1) has no scoreboard entry: it counts in a private one. */
    static struct shm_worker unlisted;
    px->me = slot >= 0 ? &shm->workers[slot] : &unlisted;
    px->draining = draining;
    px->head_cap = 2 * cfg->max_header_size + RELAY_RESP_HEAD_MAX + 1024;
    if (cfg->tls && cfg->tls_hsts > 0)
        snprintf(hsts_line, sizeof(hsts_line), "Strict-Transport-Security: max-age=%u\r\n",
                 cfg->tls_hsts);
    else
        hsts_line[0] = '\0';
    /* X-Client-Subject can be long: room for it and the other fields we add */
    px->head_cap += 1024;
    net_pipe_init(&px->pipe_up); /* made at their first use */
    net_pipe_init(&px->pipe_down);
    px->body_buf = malloc(NET_IO_BUF);
    px->resp_buf = malloc(NET_IO_BUF);
    px->head_buf = malloc(px->head_cap);
    px->norm_buf = malloc(cfg->max_header_size + 1);
    px->target_buf = malloc(cfg->max_header_size + 2);
    if (px->body_buf == NULL || px->resp_buf == NULL || px->head_buf == NULL ||
        px->norm_buf == NULL || px->target_buf == NULL)
        goto fail;
    if (getrandom(px->rng, sizeof(px->rng), 0) != (ssize_t)sizeof(px->rng) ||
        (px->rng[0] | px->rng[1]) == 0) {
        /* no entropy yet (early boot): ids must still differ between workers */
        px->rng[0] = (uint64_t)getpid() << 32 ^ (uint64_t)clock_us();
        px->rng[1] = 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
    }
    if (route_table_init(&px->routes, cfg) == -1)
        goto fail;
    if (balance_init(&px->bal, cfg) == -1) {
        route_table_free(&px->routes);
        goto fail;
    }
    if (upool_init(&px->pool, cfg) == -1) {
        balance_free(&px->bal);
        route_table_free(&px->routes);
        goto fail;
    }
    return 0;
fail:
    free(px->body_buf);
    free(px->resp_buf);
    free(px->head_buf);
    free(px->norm_buf);
    free(px->target_buf);
    return -1;
}

void
proxy_free(struct proxy *px)
{
    upool_free(&px->pool);
    balance_free(&px->bal);
    route_table_free(&px->routes);
    net_pipe_close(&px->pipe_up);
    net_pipe_close(&px->pipe_down);
    free(px->body_buf);
    free(px->resp_buf);
    free(px->head_buf);
    free(px->norm_buf);
    free(px->target_buf);
}
