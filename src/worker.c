/*
 * worker: the accept loop, per-address admission, fair keep-alive and the
 * pool nudges; each connection is read by conn.c and each request served by
 * proxy.c (or admin.c). See worker.h.
 */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin.h"
#include "clock.h"
#include "conn.h"
#include "http.h"
#include "log.h"
#include "net.h"
#include "proc.h"
#include "proxy.h"
#include "realip.h"

static volatile sig_atomic_t draining;
static volatile sig_atomic_t reopen_logs;

/* For the drain handler: what it must wake up. */
static int wake_pipe[2] = {-1, -1};
static int drain_dummy = -1;
static const int *drain_lfds;
static size_t drain_nlisten;
static struct shm_worker *drain_me;
static struct shm *drain_shm; /* the accept lock's waiters are woken (shm_accept_lock_kick()) */

/*
 * SIGQUIT: finish the request in flight, then exit. Async-signal-safe and
 * race-free: a byte in the wake pipe ends an idle keep-alive wait at once,
 * and the listening descriptors are replaced by a socket that cannot
 * accept, so an accept() this process is about to enter fails at once
 * instead of blocking (the signal may land just before the call). Other
 * processes keep their own descriptors and go on accepting.
 */
static void
on_drain(int sig)
{
    int saved = errno;
    (void)sig;
    draining = 1;
    if (drain_me != NULL) /* tells the master this worker accepts no more (lock-free: safe here) */
        atomic_store(&drain_me->draining, 1);
    if (wake_pipe[1] != -1)
        (void)!write(wake_pipe[1], "q", 1);
    for (size_t i = 0; i < drain_nlisten && drain_dummy != -1; i++)
        dup2(drain_dummy, drain_lfds[i]);
    if (drain_shm != NULL && drain_nlisten > 1)
        shm_accept_lock_kick(drain_shm); /* it may be about to sleep on the accept lock */
    errno = saved;
}

static void
on_usr1(int sig)
{
    (void)sig;
    reopen_logs = 1;
}

/* How long a keep-alive connection must have been idle before fair keep-alive may close it. */
#define FAIR_MIN_IDLE_MS 250
/*
 * How long a worker waits for an incomplete head before fair keep-alive may
 * give it up for a waiting client: a normal client's head comes in its first
 * flight of packets, right after the connection is accepted; a trickle does
 * not. It bounds how fast the slow heads ahead of a normal client in the
 * accept queue are cycled out (every worker's head must have aged this much
 * before it may go), so it is short: this only happens under pressure.
 */
#define HEAD_GRACE_MS 100

/* A proxy worker (not the admin worker): counted idle in accept(), subject to the pool. */
static bool proxy_worker;
/* This worker took the fair keep-alive token (shm->evicting) and must give it back. */
static bool holding_token;

/*
 * Publishes the worker's state on the scoreboard, and keeps the shared
 * count of idle workers (waiting in accept()) that the pool and fair
 * keep-alive read: one atomic per change to or from idle, not per request.
 */
static void
set_state(struct proxy *px, enum shm_worker_state st)
{
    static enum shm_worker_state cur = SHM_W_FREE;
    if (st == cur)
        return;
    if (proxy_worker && cur == SHM_W_IDLE)
        atomic_fetch_sub_explicit(&px->shm->idle_workers, 1, memory_order_relaxed);
    if (proxy_worker && st == SHM_W_IDLE)
        atomic_fetch_add_explicit(&px->shm->idle_workers, 1, memory_order_relaxed);
    cur = st;
    atomic_store_explicit(&px->me->state, st, memory_order_relaxed);
}

/*
 * Fair keep-alive: a client is waiting in the accept queue, no worker is
 * idle to take it, and the pool cannot grow (or it would, without closing
 * anyone's connection). One worker at a time (a token in shared memory, so
 * one new client does not cost every idle connection) lets its connection
 * go and goes to accept: an idle keep-alive one (a legal close between
 * requests), a lingering one (it had its answer), or the oldest incomplete
 * head (slow_head_yields()). Returns true when this worker took the token.
 */
static bool
yield_connection(struct proxy *px)
{
    if (atomic_load_explicit(&px->shm->idle_workers, memory_order_relaxed) > 0 ||
        !atomic_load_explicit(&px->shm->pool_full, memory_order_relaxed))
        return false;
    int none = 0;
    if (!atomic_compare_exchange_strong(&px->shm->evicting, &none, (int)getpid()))
        return false;
    holding_token = true;
    return true;
}

/* Gives the fair keep-alive token back once this worker has been to accept(). */
static void
release_token(struct proxy *px)
{
    if (!holding_token)
        return;
    int mine = (int)getpid();
    atomic_compare_exchange_strong(&px->shm->evicting, &mine, 0);
    holding_token = false;
}

/*
 * Waits on an idle connection until the client sends something, until
 * <deadline>: a keep-alive connection between requests, or one in a
 * lingering close. Returns 1 when the client sent something (or closed), 0
 * when the connection is to be closed: timeout, drain, or a client waiting
 * for a worker (fair keep-alive; <what> names the connection in that log
 * line, <count> counts it in shm.evictions). It also watches the listening sockets, from <mute_ms>
 * on; after a false alarm (another worker is taking that client) it looks away from them for a
 * moment instead of spinning.
 */
static int
idle_wait(struct proxy *px, struct conn *c, int64_t deadline, int64_t mute_ms, const char *what,
          bool count)
{
    struct pollfd pfd[2 + CFG_MAX_LISTENERS];
    int64_t mute_until = clock_ms() + mute_ms;

    pfd[0] = (struct pollfd){.fd = conn_fd(c), .events = POLLIN};
    pfd[1] = (struct pollfd){.fd = wake_pipe[0], .events = POLLIN};
    for (;;) {
        if (draining)
            return 0; /* a legal close between requests */
        int64_t now = clock_ms(), wake = deadline;
        if (now >= deadline)
            return 0;
        nfds_t n = 2;
        if (proxy_worker && now >= mute_until) {
            for (size_t i = 0; i < drain_nlisten; i++)
                pfd[n++] = (struct pollfd){.fd = drain_lfds[i], .events = POLLIN};
        } else if (proxy_worker && mute_until < wake) {
            wake = mute_until; /* then watch the listeners again */
        }
        int r = net_poll(pfd, n, wake);
        if (r == -1 && errno != ETIMEDOUT)
            return 0;
        if (r <= 0 || pfd[1].revents != 0)
            continue; /* a deadline, the end of a mute, a signal or the wake pipe: look again */
        if (pfd[0].revents != 0)
            return 1;
        if (yield_connection(px)) {
            if (count)
                atomic_fetch_add_explicit(&px->shm->evictions, 1, memory_order_relaxed);
            log_debug("%s: %s closed: a new client waits and no worker is idle", c->ip, what);
            return 0;
        }
        mute_until = clock_ms() + 20;
    }
}

/*
 * Whether this worker, waiting since <since> for an incomplete head, holds
 * the oldest one: no other worker has waited longer for its own. Ties go to
 * the lower slot.
 */
static bool
oldest_head(struct proxy *px, int64_t since)
{
    const struct shm *shm = px->shm;

    for (uint32_t i = 0; i < shm->nworkers; i++) {
        const struct shm_worker *w = &shm->workers[i];
        if (w == px->me || atomic_load_explicit(&w->state, memory_order_relaxed) != SHM_W_READ)
            continue;
        int64_t t = atomic_load_explicit(&w->head_since, memory_order_relaxed);
        if (t != 0 && (t < since || (t == since && w < px->me)))
            return false;
    }
    return true;
}

/*
 * conn_head_wait for proxy workers: waits for more of a head like
 * net_wait(), and once the head has waited HEAD_GRACE_MS also watches the
 * listening sockets. When a client waits there, no worker is idle and the
 * pool cannot grow, the worker holding the oldest incomplete head takes the
 * fair keep-alive token and gives its head up (1): more slow clients than
 * workers cannot keep a normal one waiting. A signal does not end the wait
 * (a drain lets the request in flight finish).
 */
static int
head_wait(void *arg, struct conn *c, int64_t deadline, int64_t since)
{
    struct proxy *px = arg;
    struct pollfd pfd[1 + CFG_MAX_LISTENERS];
    int64_t mute_until = since + HEAD_GRACE_MS;

    atomic_store_explicit(&px->me->head_since, since, memory_order_relaxed);
    pfd[0] = (struct pollfd){.fd = conn_fd(c), .events = POLLIN};
    for (;;) {
        int64_t now = clock_ms(), wake = deadline;
        nfds_t n = 1;
        if (draining) {
            /* the listeners are a socket that cannot accept now: nobody waits for us */
        } else if (now >= mute_until) {
            for (size_t i = 0; i < drain_nlisten; i++)
                pfd[n++] = (struct pollfd){.fd = drain_lfds[i], .events = POLLIN};
        } else if (mute_until < wake) {
            wake = mute_until;
        }
        int r = net_poll(pfd, n, wake);
        if (r == -1 && (errno != ETIMEDOUT || clock_ms() >= deadline))
            return -1;
        if (r <= 0)
            continue; /* the end of a mute, or a signal: look again */
        if (pfd[0].revents != 0)
            return 0;
        if (!draining && oldest_head(px, since) && yield_connection(px))
            return 1;
        mute_until = clock_ms() + 20; /* another worker is taking that client */
    }
}

/*
 * Called by a proxy worker of an adaptive pool that just accepted a client,
 * so leaves the idle ones: when that leaves min_spare or fewer, it wakes the
 * master to grow the pool now rather than at its next tick, up to 100 ms
 * away, in which a burst of connections would wait in the accept queue.
 * One nudge per tick: the master clears pool_nudged when it ticks.
 */
static void
nudge_pool(struct proxy *px)
{
    struct shm *shm = px->shm;
    uint64_t one = 1;

    if (atomic_load_explicit(&shm->idle_workers, memory_order_relaxed) > (int)px->cfg->min_spare ||
        atomic_load_explicit(&shm->pool_full, memory_order_relaxed) ||
        atomic_exchange(&shm->pool_nudged, 1))
        return;
    if (write(shm->nudge_fd, &one, sizeof(one)) == (ssize_t)sizeof(one))
        atomic_fetch_add_explicit(&shm->nudges, 1, memory_order_relaxed);
}

/*
 * Reads the next request head on <c> into <req>. On an idle keep-alive
 * connection it first waits up to keepalive_timeout for the request's
 * first byte (ended early by a drain or fair keep-alive). Returns what
 * conn_read_head() does: the head length, 0 when the connection is to be
 * closed quietly, -1 after an error was answered.
 */
static ssize_t
next_request(struct proxy *px, struct conn *c, struct http_request *req)
{
    if (c->requests > 0 && !conn_has_pending(c)) {
        set_state(px, SHM_W_KEEPALIVE);
        if (draining)
            return 0; /* idle between requests: close; a new connection still gets its answer */
        int64_t deadline = clock_ms() + px->cfg->keepalive_timeout_ms;
        int r = conn_try_first_bytes(c);
        /*
         * Only a connection idle for a while is given up: a busy keep-alive
         * client sends its next request within moments, and closing under it
         * would race that request (and make it reconnect, which would cost
         * another connection its worker, and so on).
         */
        if (r == 0 || (r == -1 && idle_wait(px, c, deadline, FAIR_MIN_IDLE_MS,
                                            "idle keep-alive connection", true) == 0))
            return 0;
    }
    set_state(px, SHM_W_READ);
    ssize_t n = conn_read_head(c, req);
    atomic_store_explicit(&px->me->head_since, 0, memory_order_relaxed);
    return n;
}

/*
 * Closes the client connection; first, when it should linger
 * (conn_linger_start()), reads and discards what the client still sends,
 * so that our answer is not destroyed by a reset before the client read it
 * (a client that sends its whole body before it reads). It ends at EOF,
 * after lingering_timeout without a byte, after lingering_time in all, at a
 * drain, or at once when a client waits for a worker and none is idle (as
 * fair keep-alive does: the lingering connection has had its answer).
 */
static void
close_connection(struct proxy *px, struct conn *c)
{
    const struct config *cfg = px->cfg;

    if (conn_linger_start(c)) {
        set_state(px, SHM_W_KEEPALIVE);
        int64_t end = clock_ms() + cfg->lingering_time_ms;
        for (;;) {
            int64_t deadline = clock_ms() + cfg->lingering_timeout_ms;
            if (deadline > end)
                deadline = end;
            if (idle_wait(px, c, deadline, 0, "lingering connection", false) == 0 ||
                conn_discard(c) == 0)
                break;
        }
    }
    conn_close(c);
}

/* Serves the client on <c>, request after request, and closes its connection. */
static void
serve_connection(struct proxy *px, struct conn *c, bool admin)
{
    struct http_request req;

    while (next_request(px, c, &req) > 0) {
        set_state(px, SHM_W_PROXY);
        if (admin) {
            admin_serve(px->cfg, px->shm, c, &req);
            break; /* one request per connection keeps the admin worker simple and cheap */
        }
        if (proxy_serve(px, c, &req) == -1 || draining)
            break;
    }
    close_connection(px, c);
}

/*
 * max_conns_per_ip: counts the client in its address's slot of the shared
 * table (the master takes it back if this worker dies). Over the limit it
 * answers 503 and returns -1; the caller closes. The slot is remembered in
 * the scoreboard for ip_release().
 */
static int
ip_admit(struct proxy *px, struct conn *c)
{
    const struct config *cfg = px->cfg;
    if (cfg->max_conns_per_ip == 0 || !proxy_worker)
        return 0;
    /* a trusted proxy speaks for many clients: proxy.c counts each under its own address */
    if (cfg->ntrusted_proxies > 0 && realip_trusted(cfg, c->ip))
        return 0;
    int b = (int)shm_ip_bucket(c->ip);
    int n = atomic_fetch_add(&px->shm->ip_conns[b], 1) + 1;
    atomic_store(&px->me->ip_bucket, b);
    if ((unsigned)n <= cfg->max_conns_per_ip)
        return 0;
    atomic_fetch_add_explicit(&px->shm->ip_rejects, 1, memory_order_relaxed);
    log_info("%s: refused: %d connections from this address (max_conns_per_ip %u)", c->ip, n,
             cfg->max_conns_per_ip);
    conn_refuse(c, 503, clock_us());
    return -1;
}

static void
ip_release(struct proxy *px)
{
    int b = atomic_exchange(&px->me->ip_bucket, -1);
    if (b >= 0 && b < SHM_IP_BUCKETS)
        atomic_fetch_sub(&px->shm->ip_conns[b], 1);
}

/* The port of the first tls listener (bound: port 0 is resolved), for redirect_https; 0: none. */
static int
https_port(const struct config *cfg, const int *lfds, size_t n)
{
    for (size_t i = 0; i < n && i < cfg->nlisteners; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);

        if (!cfg->listeners[i].tls || getsockname(lfds[i], (struct sockaddr *)&ss, &len) == -1)
            continue;
        if (ss.ss_family == AF_INET)
            return ntohs(((struct sockaddr_in *)&ss)->sin_port);
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return 0;
}

/* With several listeners: waits for one to have a client, then accepts it (non-blocking). */
static int
poll_accept(const int *lfds, size_t n, struct sockaddr_storage *ss, size_t *which)
{
    socklen_t len = sizeof(*ss);
    struct pollfd pfd[CFG_MAX_LISTENERS];

    for (size_t i = 0; i < n; i++)
        pfd[i] = (struct pollfd){.fd = lfds[i], .events = POLLIN};
    int r = net_poll(pfd, n, NET_NO_DEADLINE);
    if (r <= 0) {
        if (r == 0)
            errno = EINTR; /* the caller looks at its flags */
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(pfd[i].revents & POLLIN))
            continue;
        int fd = accept4(lfds[i], (struct sockaddr *)ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        *which = i;
        if (fd != -1 || errno != EAGAIN)
            return fd;
    }
    errno = EAGAIN;
    return -1;
}

/*
 * Accepts the next client on one of the listeners, whose index it stores
 * in <*which>; -1 when interrupted. One listener: a blocking accept(),
 * which wakes one worker. Several: poll() over them, which would wake every
 * idle worker, so only the holder of the accept lock polls (shm.h).
 */
static int
accept_client(struct shm *shm, const int *lfds, size_t n, struct sockaddr_storage *ss,
              size_t *which)
{
    socklen_t len = sizeof(*ss);

    *which = 0;
    if (n == 1)
        return accept4(lfds[0], (struct sockaddr *)ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (shm_accept_lock(shm, &draining) == -1) {
        errno = EINTR;
        return -1;
    }
    int fd = poll_accept(lfds, n, ss, which);
    int err = errno;
    shm_accept_unlock(shm);
    errno = err;
    return fd;
}

void
worker_run(const struct config *cfg, struct shm *shm, int slot, const int *lfds, size_t nlisten,
           bool admin)
{
    struct proxy px;
    struct conn c;
    struct sigaction sa = {0};
    sigset_t all;

    log_set_role("worker");

    if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) == -1)
        log_fatal(MP_EXIT_FATAL, "pipe: %s", strerror(errno));
    drain_dummy = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    drain_lfds = lfds;
    drain_nlisten = nlisten;
    proxy_worker = !admin;
    sa.sa_handler = on_drain; /* no SA_RESTART: a blocking accept() returns EINTR */
    sigaction(SIGQUIT, &sa, NULL);
    sa.sa_handler = SIG_IGN; /* reload is the master's business */
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);

    if (proxy_init(&px, cfg, shm, slot, &draining) == -1)
        log_fatal(MP_EXIT_FATAL, "worker %d: out of memory", slot);
    px.https_port = admin ? 0 : https_port(cfg, lfds, nlisten);
    if (conn_init(&c, cfg, shm) == -1)
        log_fatal(MP_EXIT_FATAL, "worker %d: out of memory", slot);
    if (proxy_worker)
        conn_set_head_wait(&c, head_wait, &px);

    struct shm_worker *me = px.me;
    atomic_store(&me->ip_bucket, -1);
    drain_shm = shm;
    drain_me = me;
    if (draining) /* the signal came before drain_me was set */
        atomic_store(&me->draining, 1);
    while (!draining) {
        struct sockaddr_storage ss;
        if (reopen_logs) {
            reopen_logs = 0;
            log_reopen();
        }
        set_state(&px, SHM_W_IDLE);
        size_t which;
        int fd = accept_client(px.shm, lfds, nlisten, &ss, &which);
        release_token(&px);
        if (fd == -1) {
            if (draining || errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
                continue; /* draining: the listeners were swapped for a socket that can't accept */
            log_error_errno("accept");
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                usleep(100 * 1000); /* resource exhaustion: don't spin */
            continue;
        }
        atomic_fetch_add_explicit(&me->connections, 1, memory_order_relaxed);
        if (proxy_worker && cfg->workers_auto)
            nudge_pool(&px);
        conn_open(&c, fd, &ss);
        /* the listeners are the [proxy] ones in file order (the admin worker has its own) */
        if (!admin && cfg->listeners[which].tls) {
            set_state(&px, SHM_W_READ);
            int tls = conn_start_tls(&c, tls_store_ctx(cfg->tls_store));
            /* a handshake waits as a head does (head_wait()): it is over */
            atomic_store_explicit(&me->head_since, 0, memory_order_relaxed);
            if (tls == -1) {
                conn_close(&c);
                continue;
            }
        }
        if (ip_admit(&px, &c) == -1) {
            ip_release(&px);
            close_connection(&px, &c);
            continue;
        }
        serve_connection(&px, &c, admin);
        ip_release(&px);
    }
    set_state(&px, SHM_W_FREE);
    exit(MP_EXIT_OK);
}
