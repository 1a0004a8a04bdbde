/*
 * health: the health-check child. See health.h.
 *
 * One table entry per probed server, allocated once at start. Each entry is
 * a small state machine (idle -> connecting [-> TLS handshake] -> sending ->
 * reading -> idle)
 * driven by a single poll() over every probe in flight, in the manner of
 * HAProxy's check.c: nothing blocks, so a black-holed server only ever
 * costs its own timeout. Each server keeps its own schedule (next_ms), so
 * groups with different intervals never wait for one another.
 */
#include "health.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "balance.h"
#include "clock.h"
#include "log.h"
#include "proc.h"
#include "upconn.h"

/* The probe request: its fixed text takes 75 bytes besides the path and the Host. */
#define HEALTH_REQ_MAX                                                                            \
    (sizeof(((struct cfg_group *)0)->health_path) + sizeof(((struct cfg_addr *)0)->text) + 96)

/* Headroom in the fd limit for what the master left open (logs, listeners, shm). */
#define HEALTH_FD_SLACK 64

enum probe_phase {
    PH_IDLE,    /* waiting for next_ms */
    PH_CONNECT, /* non-blocking connect in progress: wait for POLLOUT */
    PH_TLS,     /* tls = on: handshake in progress, non-blocking: wait for what it wants */
    PH_SEND,    /* request partly written: wait for POLLOUT */
    PH_READ,    /* waiting for the status line: POLLIN */
};

struct probe {
    const struct cfg_group *grp;
    size_t g, s; /* the group's index in the config, the server's in the group */
    const struct cfg_server *cs;
    struct shm_server *srv;
    enum probe_phase phase;
    struct upconn uc;    /* fd -1 while idle */
    SSL_SESSION *sess;   /* tls = on: the server's last session, resumed by the next probe */
    bool pending_first;  /* UNKNOWN at start: health_ready waits for its first result */
    int64_t next_ms;     /* when the next probe is due (clock_ms) */
    int64_t deadline_ms; /* start + health_timeout, while in flight */
    int64_t start_us;
    size_t reqlen, sent, got;
    char rbuf[32];            /* the status line needs 13 bytes: "HTTP/1.1 200 " */
    char req[HEALTH_REQ_MAX]; /* formatted once at start */
};

struct checker {
    const struct config *cfg;
    struct shm *shm;
    struct probe *probes;
    size_t nprobes;
    size_t pending;      /* probes still without a first result */
    struct pollfd *pfds; /* one per probe: every probe may be in flight at once */
    size_t *pidx;        /* pfds[i] belongs to probes[pidx[i]] */
};

static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t reopen_flag;
static sigset_t wait_mask; /* the mask ppoll() waits with: SIGQUIT and SIGUSR1 unblocked */

static void
on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void
on_reopen(int sig)
{
    (void)sig;
    reopen_flag = 1;
}

/*
 * The master forks us with its own flag-setting handlers installed and its
 * signals blocked (it only unblocks them in ppoll()); left like that, a
 * SIGTERM would set a flag in our copy and never stop us. Reset all of it.
 */
static void
setup_signals(void)
{
    struct sigaction sa = {0};
    sigset_t ours;

    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL); /* a reload starts a new checker; this one is just stopped */
    sa.sa_handler = SIG_DFL;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    sa.sa_handler = on_stop; /* graceful stop: nothing to finish, but exit 0, not a core dump */
    sigaction(SIGQUIT, &sa, NULL);
    sa.sa_handler = on_reopen;
    sigaction(SIGUSR1, &sa, NULL);
    /*
     * The two flag signals are delivered only inside ppoll(), so one that
     * arrives just before it cannot be missed for a whole interval (or for
     * ever, with nothing to probe).
     */
    sigemptyset(&ours);
    sigaddset(&ours, SIGQUIT);
    sigaddset(&ours, SIGUSR1);
    sigprocmask(SIG_SETMASK, &ours, NULL);
    sigemptyset(&wait_mask);
}

/*
 * Every probe may be in flight at once, one fd each; raise the soft fd
 * limit when a large table would not fit, so EMFILE never reads as a dead
 * server.
 */
static void
raise_fd_limit(size_t nprobes)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
        return;
    rlim_t want = (rlim_t)nprobes + HEALTH_FD_SLACK;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
            log_warn_errno("raising the fd limit to %llu", (unsigned long long)want);
    }
}

/*
 * Builds the probe table for every server of every group with health_check
 * on. Returns 0, or -1 when out of memory.
 */
static int
checker_init(struct checker *ck, const struct config *cfg, struct shm *shm)
{
    size_t n = 0;
    int64_t now = clock_ms();

    memset(ck, 0, sizeof(*ck));
    ck->cfg = cfg;
    ck->shm = shm;
    for (size_t g = 0; g < cfg->ngroups; g++)
        if (cfg->groups[g].health_check)
            n += cfg->groups[g].nservers;
    if (n == 0)
        return 0;
    ck->probes = calloc(n, sizeof(*ck->probes));
    ck->pfds = calloc(n, sizeof(*ck->pfds));
    ck->pidx = calloc(n, sizeof(*ck->pidx));
    if (ck->probes == NULL || ck->pfds == NULL || ck->pidx == NULL)
        return -1;

    for (size_t g = 0; g < cfg->ngroups; g++) {
        const struct cfg_group *grp = &cfg->groups[g];
        if (!grp->health_check)
            continue;
        for (size_t s = 0; s < grp->nservers; s++) {
            struct probe *p = &ck->probes[ck->nprobes++];
            p->grp = grp;
            p->g = g;
            p->s = s;
            p->cs = &grp->servers[s];
            p->srv = shm_srv(shm, g, s);
            p->uc = UPCONN_NONE;
            p->phase = PH_IDLE;
            p->next_ms = now; /* the first round starts at once: workers wait for it */
            /*
             * A server whose state is already known (carried over by a
             * reload, or a respawned checker) needs no first round to be
             * usable, so only UNKNOWN ones hold health_ready back.
             */
            p->pending_first = atomic_load(&p->srv->health) == SHM_HEALTH_UNKNOWN;
            if (p->pending_first)
                ck->pending++;
            int len = snprintf(p->req, sizeof(p->req),
                               "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: miniproxyd-health\r\n"
                               "Connection: close\r\n\r\n",
                               grp->health_path, p->cs->addr.text);
            /* Cannot truncate: req is sized from the two fields it holds. */
            p->reqlen = (size_t)len;
        }
    }
    return 0;
}

/* Short, stable text for a connect-phase errno (what the log and shm show). */
static const char *
connect_reason(int err, char *out, size_t len)
{
    switch (err) {
    case ECONNREFUSED:
        return "connect refused";
    case ETIMEDOUT:
        return "connect timed out";
    case ECONNRESET:
        return "reset";
    case EHOSTUNREACH:
        return "host unreachable";
    case ENETUNREACH:
        return "network unreachable";
    default:
        snprintf(out, len, "connect: %s", strerror(err));
        return out;
    }
}

/* As connect_reason(), for errors while writing the request or reading the answer. */
static const char *
io_reason(const char *op, int err, char *out, size_t len)
{
    if (err == ECONNRESET || err == EPIPE)
        return "reset";
    snprintf(out, len, "%s: %s", op, strerror(err));
    return out;
}

/*
 * Reads what is left of the answer so that close() sends a FIN, not the RST
 * that unread data would cause (a server logging resets for every probe is
 * noise). Bounded: a server streaming a large body is simply cut off.
 */
static void
drain(int fd)
{
    static char scratch[4096];

    for (int i = 0; i < 4; i++)
        if (recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT) <= 0)
            return;
}

/*
 * Says once, when it happens, that group <g> has no server up any more (so
 * every request gets 503), with the checks' reasons and where to look; and
 * once that it is usable again when one comes back. Undecided while a
 * server has had no result yet. The flag lives in shared memory, so a
 * respawned checker does not say it twice.
 */
static void
group_check(struct checker *ck, size_t g, const struct cfg_server *came_up)
{
    const struct cfg_group *grp = &ck->cfg->groups[g];
    struct shm_group *sg = &ck->shm->groups[g];
    size_t down = 0;

    for (size_t s = 0; s < grp->nservers; s++) {
        int h = atomic_load(&shm_srv(ck->shm, g, s)->health);
        if (h == SHM_HEALTH_UP || h == SHM_HEALTH_UNKNOWN)
            break;
        down++;
    }
    bool none = down == grp->nservers;
    if (!none && atomic_load(&sg->no_usable) && came_up != NULL) {
        atomic_store(&sg->no_usable, 0);
        log_warn("[%s] usable again: %s is up", grp->name, came_up->addr.text);
        return;
    }
    if (!none || atomic_load(&sg->no_usable))
        return;
    atomic_store(&sg->no_usable, 1);

    /* "status 404 at 127.0.0.1:3001, connect refused at 127.0.0.1:3002 and 3 more" */
    char why[3 * (SHM_ERR_MAX + sizeof(grp->servers[0].addr.text) + 8) + 32], err[SHM_ERR_MAX];
    size_t len = 0, shown = 0;
    why[0] = '\0';
    for (size_t s = 0; s < grp->nservers && shown < 3; s++, shown++) {
        shm_read_error(shm_srv(ck->shm, g, s), err, sizeof(err));
        if (err[0] == '\0')
            snprintf(err, sizeof(err), "no reason recorded");
        int n = snprintf(why + len, sizeof(why) - len, "%s%s at %s", s > 0 ? ", " : "", err,
                         grp->servers[s].addr.text);
        if (n < 0 || (size_t)n >= sizeof(why) - len)
            break;
        len += (size_t)n;
    }
    if (grp->nservers > shown)
        snprintf(why + len, sizeof(why) - len, " and %zu more", grp->nservers - shown);
    log_error("[%s] no usable server: every health check fails (%s): answering 503; see "
              "health_path, health_status, health_check",
              grp->name, why);
}

/*
 * Records the result of the probe <p> that ended: <reason> is NULL for a
 * good probe. Updates the shm fields (checks last, so a reader that saw
 * `checks` move sees the rest of that probe's result), the up/down state
 * with rise/fall, health_ready, logs transitions, and schedules the next
 * probe: every health_interval, or health_interval_down while it is down.
 */
static void
finish(struct checker *ck, struct probe *p, const char *reason)
{
    struct shm_server *srv = p->srv;
    const struct cfg_group *grp = p->grp;
    int64_t now = clock_ms();
    int64_t lat_us = clock_us() - p->start_us;
    double lat_ms = (double)lat_us / 1000.0;
    int state = atomic_load(&srv->health);
    unsigned ok = atomic_load(&srv->checks_ok);
    unsigned failed = atomic_load(&srv->checks_failed);

    if (p->uc.fd != -1) {
        if (p->phase == PH_READ)
            drain(p->uc.fd);
        upconn_close(&p->uc);
    }
    p->phase = PH_IDLE;

    if (reason == NULL) {
        ok++;
        failed = 0;
    } else {
        failed++;
        ok = 0;
        shm_set_error(srv, reason);
    }
    atomic_store(&srv->checks_ok, ok);
    atomic_store(&srv->checks_failed, failed);
    atomic_store(&srv->last_latency_us, lat_us);
    atomic_store(&srv->last_check_ms, now);

    int next_state = state;
    if (state == SHM_HEALTH_UNKNOWN) {
        /* The first result decides at once: start-up must not wait rise * interval. */
        next_state = reason == NULL ? SHM_HEALTH_UP : SHM_HEALTH_DOWN;
        if (reason == NULL)
            log_info("[%s] %s unknown -> up, %.1f ms", grp->name, p->cs->addr.text, lat_ms);
        else
            log_warn("[%s] %s unknown -> down: %s", grp->name, p->cs->addr.text, reason);
    } else if (state == SHM_HEALTH_UP && reason != NULL && failed >= grp->fall) {
        next_state = SHM_HEALTH_DOWN;
        log_warn("[%s] %s up -> down: %s, %u/%u checks failed", grp->name, p->cs->addr.text,
                 reason, failed, grp->fall);
    } else if (state == SHM_HEALTH_DOWN && reason == NULL && ok >= grp->rise) {
        next_state = SHM_HEALTH_UP;
        log_info("[%s] %s down -> up after %u checks, %.1f ms", grp->name, p->cs->addr.text, ok,
                 lat_ms);
    } else if (reason != NULL && state == SHM_HEALTH_UP) {
        log_debug("[%s] %s check failed: %s, %u/%u", grp->name, p->cs->addr.text, reason, failed,
                  grp->fall);
    } else if (reason == NULL && state == SHM_HEALTH_DOWN) {
        log_debug("[%s] %s check passed, %u/%u", grp->name, p->cs->addr.text, ok, grp->rise);
    }
    if (next_state != state) {
        atomic_store(&srv->down_since_ms, next_state == SHM_HEALTH_DOWN ? now : 0);
        atomic_store(&srv->health, next_state);
        /*
         * A server seen coming back (a restart) gets traffic now, not when a
         * breaker that passive failures opened meanwhile has cooled down.
         */
        if (next_state == SHM_HEALTH_UP && balance_uneject(ck->shm, p->g, p->s, now))
            log_info("[%s] %s circuit closed: the health check found it up", grp->name,
                     p->cs->addr.text);
        group_check(ck, p->g, next_state == SHM_HEALTH_UP ? p->cs : NULL);
    }
    atomic_fetch_add(&srv->checks, 1);

    if (p->pending_first) {
        p->pending_first = false;
        if (--ck->pending == 0) {
            atomic_store(&ck->shm->health_ready, 1);
            log_info("first round done, %zu servers checked", ck->nprobes);
        }
    }

    /*
     * Keep the cadence of the schedule, not of completions, so probes come
     * every interval however long each took; a probe that overran its
     * interval (timeout > interval) is followed at once, never in a burst.
     */
    p->next_ms +=
        next_state == SHM_HEALTH_DOWN ? grp->health_interval_down_ms : grp->health_interval_ms;
    if (p->next_ms < now)
        p->next_ms = now;
}

/*
 * Writes the rest of the request. Returns 1 when it is all sent, 0 when the
 * socket is full (wait for POLLOUT), -1 when the probe ended (finished).
 */
static int
send_request(struct checker *ck, struct probe *p)
{
    char why[SHM_ERR_MAX];

    while (p->sent < p->reqlen) {
        struct iovec iov = {p->req + p->sent, p->reqlen - p->sent};
        ssize_t n = p->uc.ssl != NULL ? upconn_try_writev(&p->uc, &iov, 1)
                                      : send(p->uc.fd, iov.iov_base, iov.iov_len, MSG_NOSIGNAL);
        if (n == -1) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            finish(ck, p, io_reason("send", errno, why, sizeof(why)));
            return -1;
        }
        p->sent += (size_t)n;
    }
    return 1;
}

/*
 * Connected: with tls = on, starts the handshake (resuming the server's
 * last session), else the request. Sets the phase; finishes the probe
 * when it fails at once.
 */
static void
connected(struct checker *ck, struct probe *p)
{
    char why[UPCONN_WHY_MAX], reason[SHM_ERR_MAX];

    if (p->grp->tls_ctx == NULL) {
        p->phase = PH_SEND;
        if (send_request(ck, p) == 1)
            p->phase = PH_READ;
        return;
    }
    if (p->uc.ssl == NULL &&
        upconn_tls_begin(&p->uc, p->grp, p->cs, &p->sess, why, sizeof(why)) == -1) {
        snprintf(reason, sizeof(reason), "TLS: %.*s", (int)sizeof(reason) - 6, why);
        finish(ck, p, reason);
        return;
    }
    p->phase = PH_TLS;
    int r = upconn_handshake_step(&p->uc, why, sizeof(why));
    if (r == -1) {
        snprintf(reason, sizeof(reason), "TLS: %.*s", (int)sizeof(reason) - 6, why);
        finish(ck, p, reason);
        return;
    }
    if (r == 1) {
        p->phase = PH_SEND;
        if (send_request(ck, p) == 1)
            p->phase = PH_READ;
    }
}

/* Starts a due probe: socket, non-blocking connect, and the request if connected at once. */
static void
start_probe(struct checker *ck, struct probe *p, int64_t now)
{
    char why[SHM_ERR_MAX];
    const struct cfg_addr *a = &p->cs->addr;

    p->start_us = clock_us();
    p->deadline_ms = now + p->grp->health_timeout_ms;
    p->sent = 0;
    p->got = 0;
    p->uc.fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->uc.fd == -1) {
        /* Our problem, not the server's, but hiding it would be worse: it shows as the reason. */
        log_error_errno("socket for %s", a->text);
        snprintf(why, sizeof(why), "socket: %s", strerror(errno));
        finish(ck, p, why);
        return;
    }
    if (connect(p->uc.fd, (const struct sockaddr *)&a->ss, a->len) == -1) {
        if (errno != EINPROGRESS) {
            finish(ck, p, connect_reason(errno, why, sizeof(why)));
            return;
        }
        p->phase = PH_CONNECT;
        return;
    }
    connected(ck, p); /* at once (possible on loopback) */
}

/* Advances the in-flight probe <p> after poll() reported <revents> on it. */
static void
step_probe(struct checker *ck, struct probe *p, short revents)
{
    char why[SHM_ERR_MAX];

    if (p->phase == PH_CONNECT) {
        int err = 0;
        socklen_t elen = sizeof(err);
        if (getsockopt(p->uc.fd, SOL_SOCKET, SO_ERROR, &err, &elen) == -1)
            err = errno;
        if (err == 0 && !(revents & POLLOUT)) {
            if (revents & (POLLERR | POLLHUP)) /* no errno, but it will never connect */
                finish(ck, p, "connect failed");
            return;
        }
        if (err != 0) {
            finish(ck, p, connect_reason(err, why, sizeof(why)));
            return;
        }
        connected(ck, p);
        return; /* the answer cannot be there yet: wait for what the phase wants */
    }
    if (p->phase == PH_TLS) {
        connected(ck, p);
        return;
    }
    if (p->phase == PH_SEND) {
        int r = send_request(ck, p);
        if (r == 1)
            p->phase = PH_READ;
        return; /* the answer cannot be there yet: wait for POLLIN */
    }
    if (p->phase != PH_READ)
        return;
    for (;;) {
        ssize_t n = upconn_try_read(&p->uc, p->rbuf + p->got, sizeof(p->rbuf) - p->got);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            finish(ck, p, io_reason("recv", errno, why, sizeof(why)));
            return;
        }
        if (n == 0) {
            finish(ck, p, p->got == 0 ? "connection closed" : "truncated response");
            return;
        }
        p->got += (size_t)n;
        int status = health_parse_status(p->rbuf, p->got);
        if (status == -1) {
            finish(ck, p, "invalid response");
            return;
        }
        if (status > 0) {
            if ((unsigned)status >= p->grp->health_status_min &&
                (unsigned)status <= p->grp->health_status_max) {
                finish(ck, p, NULL);
            } else {
                snprintf(why, sizeof(why), "status %d", status);
                finish(ck, p, why);
            }
            return;
        }
        /* rbuf holds more than a status line needs, so 0 here means "not full yet" */
    }
}

/* Ends the probe <p> whose deadline passed, naming the phase it was stuck in. */
static void
expire_probe(struct checker *ck, struct probe *p)
{
    char why[SHM_ERR_MAX];

    if (p->phase == PH_CONNECT) {
        finish(ck, p, "connect timed out");
        return;
    }
    if (p->phase == PH_TLS) {
        snprintf(why, sizeof(why), "TLS handshake timed out after %" PRId64 " ms",
                 p->grp->health_timeout_ms);
        finish(ck, p, why);
        return;
    }
    snprintf(why, sizeof(why), "timed out after %" PRId64 " ms", p->grp->health_timeout_ms);
    finish(ck, p, why);
}

/*
 * One turn of the loop: starts due probes, expires overdue ones, waits in
 * poll() until the next event or deadline, and advances what is ready.
 */
static void
checker_turn(struct checker *ck)
{
    int64_t now = clock_ms();
    int64_t wake = INT64_MAX;
    nfds_t nfds = 0;

    for (size_t i = 0; i < ck->nprobes; i++) {
        struct probe *p = &ck->probes[i];
        if (p->phase == PH_IDLE && p->next_ms <= now)
            start_probe(ck, p, now);
        if (p->phase != PH_IDLE && p->deadline_ms <= now)
            expire_probe(ck, p);
        if (p->phase == PH_IDLE) {
            if (p->next_ms < wake)
                wake = p->next_ms;
            continue;
        }
        if (p->deadline_ms < wake)
            wake = p->deadline_ms;
        ck->pfds[nfds].fd = p->uc.fd;
        ck->pfds[nfds].events = p->phase == PH_READ   ? upconn_read_events(&p->uc)
                                : p->phase == PH_SEND ? upconn_write_events(&p->uc)
                                : p->phase == PH_TLS  ? p->uc.rwant
                                                      : POLLOUT;
        ck->pfds[nfds].revents = 0;
        ck->pidx[nfds] = i;
        nfds++;
    }

    struct timespec ts, *tsp = NULL; /* NULL: nothing to probe, sleep until a signal */
    if (wake != INT64_MAX) {
        int64_t ms = wake > now ? wake - now : 0;
        ts.tv_sec = (time_t)(ms / 1000);
        ts.tv_nsec = (long)(ms % 1000) * 1000000;
        tsp = &ts;
    }
    int r = ppoll(ck->pfds, nfds, tsp, &wait_mask);
    if (r == -1) {
        if (errno != EINTR)
            log_error_errno("poll");
        return;
    }
    for (nfds_t k = 0; k < nfds && r > 0; k++) {
        if (ck->pfds[k].revents == 0)
            continue;
        r--;
        step_probe(ck, &ck->probes[ck->pidx[k]], ck->pfds[k].revents);
    }
}

_Noreturn void
health_run(const struct config *cfg, struct shm *shm)
{
    struct checker ck;

    log_set_role("health");
    setup_signals();
    atomic_store(&shm->checker_pid, (int)getpid());

    if (checker_init(&ck, cfg, shm) == -1)
        log_fatal(MP_EXIT_FATAL, "out of memory for the probe table");
    raise_fd_limit(ck.nprobes);
    if (ck.pending == 0)
        atomic_store(&shm->health_ready, 1); /* nothing to wait for: never hold start-up */
    /* States carried over by a reload need no transition to be judged: a new table's flag is 0. */
    for (size_t g = 0; g < cfg->ngroups; g++)
        if (cfg->groups[g].health_check)
            group_check(&ck, g, NULL);
    log_info("checking %zu servers", ck.nprobes);

    while (!stop_flag) {
        if (reopen_flag) {
            reopen_flag = 0;
            log_reopen();
        }
        checker_turn(&ck);
    }
    log_info("stopping");
    /* _exit: atexit hooks and stdio buffers inherited from the forking parent are not ours. */
    _exit(MP_EXIT_OK);
}

int
health_parse_status(const char *buf, size_t len)
{
    /*
     * status-line = "HTTP/1." DIGIT SP 3DIGIT ( SP reason / CRLF ): 13
     * bytes decide. Each byte is checked as soon as it is there, so garbage
     * is rejected at once instead of waiting for the timeout. A missing
     * reason phrase ("HTTP/1.1 200\r\n") is accepted, as RFC 9112 asks of
     * clients; status codes outside 100..599 are not (RFC 9110, 15).
     */
    static const char proto[] = "HTTP/1.";
    const size_t plen = sizeof(proto) - 1;

    for (size_t i = 0; i < len && i < plen + 6; i++) {
        unsigned char c = (unsigned char)buf[i];
        bool good;
        if (i < plen)
            good = c == (unsigned char)proto[i];
        else if (i == plen + 1)
            good = c == ' ';
        else if (i == plen + 2)
            good = c >= '1' && c <= '5';
        else if (i == plen + 5)
            good = c == ' ' || c == '\r' || c == '\n';
        else
            good = c >= '0' && c <= '9';
        if (!good)
            return -1;
    }
    if (len < plen + 6)
        return 0;
    return (buf[plen + 2] - '0') * 100 + (buf[plen + 3] - '0') * 10 + (buf[plen + 4] - '0');
}
