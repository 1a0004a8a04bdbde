/*
 * it_health: the health checker as a real process against real upstreams.
 * Each test writes a config, loads it with cfg_load_string(), makes the
 * shared table, forks a child that runs health_run() (its error log goes to
 * a file in a temp dir), and asserts on the shm fields with bounded waits
 * and on the log lines. Upstreams are build/testapp instances, listening
 * sockets that never accept (black holes), or small scripted servers in
 * the test itself. Everything is on ephemeral ports and stopped by PID.
 */
#include "config.h"
#include "health.h"
#include "proc.h"
#include "log.h"
#include "shm.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

#define NAPPS 15
#define NHOLES 5

/* Polls <cond> every 10 ms for up to <ms>; evaluates to whether it became true. */
#define WAIT_FOR(ms, cond)                                                                        \
    ({                                                                                            \
        int64_t wf_deadline_ = tl_now_ms() + (ms);                                                \
        bool wf_ok_;                                                                              \
        while (!(wf_ok_ = (cond)) && tl_now_ms() < wf_deadline_)                                  \
            usleep(10 * 1000);                                                                    \
        wf_ok_;                                                                                   \
    })

/* ---- the checker under test ----------------------------------------------------------------- */

struct hc {
    struct config *cfg;
    struct shm *shm;
    pid_t pid;
    int64_t started; /* tl_now_ms() just before the fork */
    char dir[64];
    char log[128];
};

static char ini[16384];
static size_t ini_len;

/* Starts a config whose [proxy] section routes to <group>. */
static void
ini_begin(const char *group)
{
    ini_len = 0;
    ini_len += (size_t)snprintf(ini, sizeof(ini),
                                "[proxy]\nlisten = 127.0.0.1:0\nworkers = 2\n"
                                "upstream = %s\n",
                                group);
}

static void ini_add(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Appends to the config in ini[]. */
static void
ini_add(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(ini + ini_len, sizeof(ini) - ini_len, fmt, ap);
    va_end(ap);
    ck_assert(n > 0 && (size_t)n < sizeof(ini) - ini_len);
    ini_len += (size_t)n;
}

/*
 * What a master leaves behind in a child it forks: its flag handlers and
 * its signals blocked. health_run() must undo that.
 */
static void
noop_handler(int sig)
{
    (void)sig;
}

static void
inherit_master_signals(void)
{
    struct sigaction sa = {0};
    sigset_t block;

    sa.sa_handler = noop_handler;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGQUIT);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, NULL);
}

/* The child: log to the file, then run the checker (never returns). */
static _Noreturn void
checker_child(struct hc *h, bool as_master_would)
{
    int fd = open(h->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd == -1)
        _exit(127);
    dup2(fd, STDERR_FILENO);
    close(fd);
    if (as_master_would)
        inherit_master_signals();
    log_set_level(CFG_LOG_DEBUG);
    /* as every child of the master starts: death signal set, parent checked */
    char err[256];
    if (proc_child_init(getppid(), NULL, err, sizeof(err)) != 0)
        _exit(127);
    health_run(h->cfg, h->shm);
}

/*
 * Loads the config in ini[], makes the table and forks the checker on it;
 * every server's health is <preset> when not UNKNOWN (as a reload carries
 * states over into a new table).
 */
static void
hc_start_preset(struct hc *h, bool as_master_would, int preset)
{
    char err[512];

    memset(h, 0, sizeof(*h));
    h->cfg = cfg_load_string(ini, "it_health.ini", err, sizeof(err));
    ck_assert_msg(h->cfg != NULL, "config: %s\n%s", err, ini);
    h->shm = shm_create(h->cfg, 1);
    ck_assert_msg(h->shm != NULL, "shm_create: %s", strerror(errno));
    if (preset != SHM_HEALTH_UNKNOWN)
        for (uint32_t i = 0; i < h->shm->nservers; i++) {
            atomic_store(&h->shm->servers[i].health, preset);
            if (preset == SHM_HEALTH_DOWN)
                shm_set_error(&h->shm->servers[i], "status 404"); /* carried with the state */
        }
    snprintf(h->dir, sizeof(h->dir), "/tmp/mp-health-XXXXXX");
    ck_assert(mkdtemp(h->dir) != NULL);
    snprintf(h->log, sizeof(h->log), "%s/error.log", h->dir);
    h->started = tl_now_ms();
    h->pid = fork();
    ck_assert(h->pid != -1);
    if (h->pid == 0)
        checker_child(h, as_master_would);
}

static void
hc_start_opt(struct hc *h, bool as_master_would)
{
    hc_start_preset(h, as_master_would, SHM_HEALTH_UNKNOWN);
}

static void
hc_start(struct hc *h)
{
    hc_start_opt(h, false);
}

/* Removes the temp dir of a checker that ended. */
static void
hc_cleanup_dir(const char *dir)
{
    char out[64];
    ck_assert(strncmp(dir, "/tmp/mp-health-", 15) == 0);
    tl_sh(out, sizeof(out), "rm -rf %s", dir);
}

/* Stops the checker (it must die of the SIGTERM itself), frees all, removes the temp dir. */
static void
hc_stop(struct hc *h)
{
    int st = tl_stop(h->pid);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "checker ended with status %#x", st);
    shm_destroy(h->shm);
    cfg_free(h->cfg);
    hc_cleanup_dir(h->dir);
}

static struct shm_server *
srv(struct hc *h, size_t g, size_t s)
{
    return shm_srv(h->shm, g, s);
}

static int
health_of(struct shm_server *sv)
{
    return atomic_load(&sv->health);
}

static unsigned long
checks_of(struct shm_server *sv)
{
    return (unsigned long)atomic_load(&sv->checks);
}

static bool
error_is(struct shm_server *sv, const char *want)
{
    char got[SHM_ERR_MAX];
    shm_read_error(sv, got, sizeof(got));
    return strcmp(got, want) == 0;
}

#define ASSERT_ERROR(sv, want)                                                                    \
    do {                                                                                          \
        char ae_got_[SHM_ERR_MAX];                                                                \
        shm_read_error((sv), ae_got_, sizeof(ae_got_));                                           \
        ck_assert_msg(strcmp(ae_got_, (want)) == 0, "last_error \"%s\", want \"%s\"", ae_got_,    \
                      (want));                                                                    \
    } while (0)

/* Waits for the first round; every probed server must have a result by then. */
static void
wait_ready(struct hc *h, int ms)
{
    ck_assert_msg(WAIT_FOR(ms, atomic_load(&h->shm->health_ready) == 1),
                  "health_ready not set within %d ms", ms);
    for (uint32_t i = 0; i < h->shm->nservers; i++)
        ck_assert_msg(atomic_load(&h->shm->servers[i].health) != SHM_HEALTH_UNKNOWN,
                      "server %u still unknown when health_ready was set", i);
}

static bool log_has(struct hc *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True when the checker's log gets a line containing the formatted text within 2 s. */
static bool
log_has(struct hc *h, const char *fmt, ...)
{
    char needle[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(needle, sizeof(needle), fmt, ap);
    va_end(ap);
    return tl_file_waitfor(h->log, needle, 2000);
}

/* ---- fixtures: listening sockets in the test ----------------------------------------------- */

/* Accepts one connection within <ms>; -1 when none came. */
static int
accept_within(int lfd, int ms)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    if (poll(&p, 1, ms) != 1)
        return -1;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd != -1) {
        struct timeval tv = {2, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    }
    return fd;
}

/* Reads a request head (through the blank line) into <buf>; returns its length or -1. */
static ssize_t
read_head(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n < cap - 1) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0)
            return -1;
        n += (size_t)r;
        buf[n] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL)
            return (ssize_t)n;
    }
    return -1;
}

static volatile sig_atomic_t responder_holes;

static void
on_usr1(int sig)
{
    (void)sig;
    responder_holes = 1;
}

/*
 * Forks a server answering 200 on each of <lfds> until it gets SIGUSR1;
 * from then on it keeps the sockets open and never accepts again, so each
 * becomes a black hole (the kernel still completes handshakes).
 */
static pid_t
responder_start(const int *lfds, int n)
{
    pid_t pid = fork();
    ck_assert(pid != -1);
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* Check's SIGTERM handler, inherited from the test process, would kill the whole group */
    struct sigaction sa = {.sa_handler = SIG_DFL};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    struct pollfd p[NHOLES];
    for (int i = 0; i < n; i++)
        p[i] = (struct pollfd){.fd = lfds[i], .events = POLLIN};
    while (!responder_holes) {
        if (poll(p, (nfds_t)n, 100) <= 0)
            continue;
        for (int i = 0; i < n && !responder_holes; i++) {
            if (!(p[i].revents & POLLIN))
                continue;
            char head[1024];
            int fd = accept_within(lfds[i], 0);
            if (fd == -1)
                continue;
            if (read_head(fd, head, sizeof(head)) > 0) {
                const char *ok =
                    "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
                ssize_t w = write(fd, ok, strlen(ok));
                (void)w;
            }
            close(fd);
        }
    }
    for (;;)
        pause();
}

/* ---- tests ---------------------------------------------------------------------------------- */

/* First round: healthy ones UP, a black hole DOWN by its timeout, and only then health_ready. */
START_TEST(t_first_round)
{
    struct tl_proc app[3];
    struct hc h;
    int hole_port;
    int hole = tl_listen_local(16, &hole_port);

    for (int i = 0; i < 3; i++)
        tl_app_start(&app[i], "a");
    ini_begin("app");
    ini_add("[upstream app]\nhealth_interval = 100ms\nhealth_timeout = 300ms\n");
    for (int i = 0; i < 3; i++)
        ini_add("server = 127.0.0.1:%d\n", app[i].port);
    ini_add("server = 127.0.0.1:%d\n", hole_port);
    hc_start(&h);

    wait_ready(&h, 2000);
    int64_t took = tl_now_ms() - h.started;
    /* the black hole's first probe had to time out before start-up could go on */
    ck_assert_msg(took >= 280, "health_ready after %lld ms, before the 300 ms timeout",
                  (long long)took);
    ck_assert_int_eq(atomic_load(&h.shm->checker_pid), h.pid);
    for (int i = 0; i < 3; i++) {
        struct shm_server *sv = srv(&h, 0, (size_t)i);
        ck_assert_int_eq(health_of(sv), SHM_HEALTH_UP);
        ck_assert_uint_ge(checks_of(sv), 1);
        ck_assert_uint_ge(atomic_load(&sv->checks_ok), 1);
        ck_assert_uint_eq(atomic_load(&sv->checks_failed), 0);
        ck_assert_int_gt(atomic_load(&sv->last_check_ms), 0);
        ck_assert_int_gt(atomic_load(&sv->last_latency_us), 0);
        ck_assert_int_lt(atomic_load(&sv->last_latency_us), 300 * 1000);
        ck_assert(log_has(&h, "[app] 127.0.0.1:%d unknown -> up, ", app[i].port));
    }
    struct shm_server *hs = srv(&h, 0, 3);
    ck_assert_int_eq(health_of(hs), SHM_HEALTH_DOWN);
    ck_assert_uint_eq(atomic_load(&hs->checks_failed), 1);
    ASSERT_ERROR(hs, "timed out after 300 ms");
    ck_assert(
        log_has(&h, "[app] 127.0.0.1:%d unknown -> down: timed out after 300 ms", hole_port));
    ck_assert(log_has(&h, "first round done, 4 servers checked"));

    hc_stop(&h);
    for (int i = 0; i < 3; i++)
        tl_stop(app[i].pid);
    close(hole);
}
END_TEST

/* The exact probe request, and each kind of bad answer with its reason, one probe at a time. */
START_TEST(t_probe_request_and_reasons)
{
    struct hc h;
    int port;
    int lfd = tl_listen_local(16, &port);
    char head[2048], want[512];

    ini_begin("app");
    ini_add("[upstream app]\nserver = 127.0.0.1:%d\nhealth_path = /custom/ping?x=1\n"
            "health_interval = 100ms\nhealth_timeout = 300ms\nhealth_status = 200-299\n"
            "rise = 1\nfall = 100\n",
            port);
    hc_start(&h);
    struct shm_server *sv = srv(&h, 0, 0);
    snprintf(want, sizeof(want),
             "GET /custom/ping?x=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
             "User-Agent: miniproxyd-health\r\nConnection: close\r\n\r\n",
             port);

    enum { GOOD, STATUS_302, GARBAGE, CLOSE, RESET, SPLIT, HANG };
    static const struct {
        int act;
        const char *reason; /* NULL: a good probe */
    } steps[] = {
        {GOOD, NULL},
        {STATUS_302, "status 302"},
        {GARBAGE, "invalid response"},
        {CLOSE, "connection closed"},
        {RESET, "reset"},
        {SPLIT, NULL},
        {HANG, "timed out after 300 ms"},
    };
    int held = -1;
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        int fd = accept_within(lfd, 2000);
        ck_assert_msg(fd != -1, "step %zu: no probe came", i);
        ck_assert_int_gt(read_head(fd, head, sizeof(head)), 0);
        ck_assert_msg(strcmp(head, want) == 0, "step %zu: request was\n%s", i, head);
        const char *reply = NULL;
        switch (steps[i].act) {
        case GOOD:
            reply = "HTTP/1.1 204 No Content\r\n\r\n";
            break;
        case STATUS_302:
            reply = "HTTP/1.1 302 Found\r\nLocation: /\r\nContent-Length: 0\r\n\r\n";
            break;
        case GARBAGE:
            reply = "HTTP/1.1 2OO OK\r\n\r\n";
            break;
        case SPLIT: /* the status line in two reads */
            ck_assert_int_eq(tl_send_str(fd, "HTTP/1.1 20"), 0);
            usleep(50 * 1000);
            reply = "0 OK\r\nContent-Length: 0\r\n\r\n";
            break;
        case RESET: {
            struct linger lg = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            break;
        }
        default:
            break;
        }
        if (reply != NULL)
            ck_assert_int_eq(tl_send_str(fd, reply), 0);
        if (steps[i].act == HANG)
            held = fd; /* answer nothing, keep it open */
        else
            close(fd);

        ck_assert_msg(WAIT_FOR(1000, checks_of(sv) == i + 1), "step %zu: checks = %lu", i,
                      checks_of(sv));
        ck_assert_int_eq(health_of(sv), SHM_HEALTH_UP); /* rise 1, fall 100: stays up */
        if (steps[i].reason == NULL) {
            ck_assert_uint_eq(atomic_load(&sv->checks_failed), 0);
            ck_assert_uint_ge(atomic_load(&sv->checks_ok), 1);
        } else {
            ck_assert_uint_eq(atomic_load(&sv->checks_ok), 0);
            ck_assert_uint_ge(atomic_load(&sv->checks_failed), 1);
            ASSERT_ERROR(sv, steps[i].reason);
        }
    }
    /* failures in a row: 302, garbage, close, reset; then split was good; hang is the first again
     */
    ck_assert_uint_eq(atomic_load(&sv->checks_failed), 1);
    ck_assert(log_has(&h, "check failed: status 302, 1/100"));
    ck_assert(log_has(&h, "check failed: reset, 4/100"));

    hc_stop(&h);
    if (held != -1)
        close(held);
    close(lfd);
}
END_TEST

/* 503 -> DOWN after exactly `fall` probes; 200 again -> UP after exactly `rise` probes. */
START_TEST(t_fall_and_rise)
{
    struct tl_proc app;
    struct hc h;
    struct tl_resp r;

    tl_app_start(&app, "a");
    ini_begin("app");
    ini_add("[upstream app]\nserver = 127.0.0.1:%d\nhealth_interval = 100ms\n"
            "health_timeout = 300ms\nrise = 2\nfall = 3\n",
            app.port);
    hc_start(&h);
    struct shm_server *sv = srv(&h, 0, 0);
    wait_ready(&h, 2000);
    ck_assert_int_eq(health_of(sv), SHM_HEALTH_UP);

    ck_assert_int_eq(
        tl_request(app.port, "GET /sethealth?status=503 HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    tl_resp_free(&r);
    /* a probe in flight while we flipped it may still have seen 200: one extra at most */
    unsigned long c0 = checks_of(sv);
    ck_assert(WAIT_FOR(2000, health_of(sv) == SHM_HEALTH_DOWN));
    unsigned long c1 = checks_of(sv);
    ck_assert_msg(c1 - c0 >= 3 && c1 - c0 <= 4, "down after %lu probes, fall = 3", c1 - c0);
    ck_assert_uint_ge(atomic_load(&sv->checks_failed), 3);
    ck_assert_uint_eq(atomic_load(&sv->checks_ok), 0);
    ASSERT_ERROR(sv, "status 503");
    char line[128];
    snprintf(line, sizeof(line), "[app] 127.0.0.1:%d up -> down: status 503, 3/3 checks failed",
             app.port);
    ck_assert(tl_file_waitfor(h.log, line, 1000));

    ck_assert_int_eq(
        tl_request(app.port, "GET /sethealth?status=200 HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    tl_resp_free(&r);
    c0 = checks_of(sv);
    ck_assert(WAIT_FOR(2000, health_of(sv) == SHM_HEALTH_UP));
    c1 = checks_of(sv);
    ck_assert_msg(c1 - c0 >= 2 && c1 - c0 <= 3, "up after %lu probes, rise = 2", c1 - c0);
    ck_assert_uint_eq(atomic_load(&sv->checks_failed), 0);
    ck_assert(log_has(&h, "[app] 127.0.0.1:%d down -> up after 2 checks, ", app.port));

    /* more probes: no transition is logged twice */
    unsigned long c2 = checks_of(sv);
    ck_assert(WAIT_FOR(1000, checks_of(sv) >= c2 + 3));
    ck_assert_int_eq(tl_file_count(h.log, line), 1);
    ck_assert_int_eq(tl_file_count(h.log, "down -> up"), 1);
    ck_assert_int_eq(tl_file_count(h.log, "unknown -> up"), 1);

    hc_stop(&h);
    tl_stop(app.pid);
}
END_TEST

/* A dead port is DOWN from the first round; a killed upstream goes DOWN after `fall`. */
START_TEST(t_connect_refused)
{
    struct tl_proc app[2];
    struct hc h;
    int dead = tl_dead_port();

    tl_app_start(&app[0], "a");
    tl_app_start(&app[1], "b");
    ini_begin("app");
    ini_add("[upstream app]\nserver = 127.0.0.1:%d\nserver = 127.0.0.1:%d\nserver = 127.0.0.1:%d\n"
            "health_interval = 100ms\nhealth_timeout = 300ms\nfall = 2\n",
            app[0].port, app[1].port, dead);
    hc_start(&h);
    wait_ready(&h, 2000);
    ck_assert_int_eq(health_of(srv(&h, 0, 2)), SHM_HEALTH_DOWN);
    ASSERT_ERROR(srv(&h, 0, 2), "connect refused");
    ck_assert(log_has(&h, "[app] 127.0.0.1:%d unknown -> down: connect refused", dead));

    struct shm_server *sv = srv(&h, 0, 1);
    ck_assert_int_eq(health_of(sv), SHM_HEALTH_UP);
    tl_stop(app[1].pid);
    unsigned long c0 = checks_of(sv);
    ck_assert(WAIT_FOR(2000, health_of(sv) == SHM_HEALTH_DOWN));
    unsigned long n = checks_of(sv) - c0;
    ck_assert_msg(n >= 2 && n <= 3, "down after %lu probes, fall = 2", n);
    ASSERT_ERROR(sv, "connect refused");
    ck_assert(log_has(&h, "[app] 127.0.0.1:%d up -> down: connect refused, 2/2 checks failed",
                      app[1].port));
    ck_assert_int_eq(health_of(srv(&h, 0, 0)), SHM_HEALTH_UP);

    hc_stop(&h);
    tl_stop(app[0].pid);
}
END_TEST

/* SYNs dropped by a full accept queue: the connect phase itself times out. */
START_TEST(t_connect_timeout)
{
    struct hc h;
    int port, fill[4];
    int lfd = tl_listen_local(0, &port);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    /* backlog 0 holds one connection; the rest of our SYNs stay unanswered */
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        connect(fill[i], (struct sockaddr *)&sin, sizeof(sin));
    }
    usleep(50 * 1000);
    ini_begin("app");
    ini_add("[upstream app]\nserver = 127.0.0.1:%d\nhealth_interval = 100ms\n"
            "health_timeout = 200ms\n",
            port);
    hc_start(&h);
    wait_ready(&h, 2000);
    struct shm_server *sv = srv(&h, 0, 0);
    ck_assert_int_eq(health_of(sv), SHM_HEALTH_DOWN);
    ASSERT_ERROR(sv, "connect timed out");
    ck_assert_int_ge(atomic_load(&sv->last_latency_us), 190 * 1000);

    hc_stop(&h);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}
END_TEST

/*
 * 15 healthy servers and 5 that turn into black holes: the holes go DOWN
 * within fall * (interval + timeout), and meanwhile every healthy one keeps
 * its schedule.
 */
START_TEST(t_black_holes_delay_nobody)
{
    struct tl_proc app[NAPPS];
    struct hc h;
    int hole[NHOLES], hole_port[NHOLES];
    const int64_t interval = 100, timeout = 300;
    const unsigned fall = 2;

    for (int i = 0; i < NAPPS; i++)
        tl_app_start(&app[i], "a");
    for (int i = 0; i < NHOLES; i++)
        hole[i] = tl_listen_local(128, &hole_port[i]);
    pid_t responder = responder_start(hole, NHOLES);

    ini_begin("app");
    ini_add("[upstream app]\nhealth_interval = %lldms\nhealth_timeout = %lldms\nfall = %u\n",
            (long long)interval, (long long)timeout, fall);
    /* holes interleaved with healthy ones, so no order in the table favours either */
    for (int i = 0, k = 0; i < NAPPS; i++) {
        ini_add("server = 127.0.0.1:%d\n", app[i].port);
        if (i % 3 == 0 && k < NHOLES)
            ini_add("server = 127.0.0.1:%d\n", hole_port[k++]);
    }
    hc_start(&h);
    wait_ready(&h, 2000);
    size_t napp = 0, nhole = 0;
    struct shm_server *apps[NAPPS], *holes[NHOLES];
    for (size_t i = 0; i < NAPPS + NHOLES; i++) {
        struct shm_server *sv = srv(&h, 0, i);
        ck_assert_int_eq(health_of(sv), SHM_HEALTH_UP);
        if (i % 4 == 1) /* where the holes went: after apps 0, 3, 6, 9, 12 */
            holes[nhole++] = sv;
        else
            apps[napp++] = sv;
    }
    ck_assert_uint_eq(nhole, NHOLES);

    unsigned long c0[NAPPS];
    for (size_t i = 0; i < NAPPS; i++)
        c0[i] = checks_of(apps[i]);
    int64_t t0 = tl_now_ms();
    ck_assert_int_eq(kill(responder, SIGUSR1), 0);

    bool all_down = WAIT_FOR(3000, ({
                                 bool d = true;
                                 for (size_t i = 0; i < NHOLES; i++)
                                     d = d && health_of(holes[i]) == SHM_HEALTH_DOWN;
                                 d;
                             }));
    int64_t took = tl_now_ms() - t0;
    ck_assert_msg(all_down, "black holes not all down after 3 s");
    ck_assert_msg(took <= (int64_t)fall * (interval + timeout) + 100,
                  "black holes down after %lld ms, over fall * (interval + timeout)",
                  (long long)took);
    for (size_t i = 0; i < NHOLES; i++)
        ASSERT_ERROR(holes[i], "timed out after 300 ms");

    /* keep watching the healthy ones for a while longer */
    usleep((useconds_t)(1500 - (tl_now_ms() - t0)) * 1000);
    int64_t elapsed = tl_now_ms() - t0;
    unsigned long want = (unsigned long)(elapsed / interval - 1);
    int64_t now = tl_now_ms();
    for (size_t i = 0; i < NAPPS; i++) {
        unsigned long got = checks_of(apps[i]) - c0[i];
        ck_assert_msg(got >= want, "healthy server %zu: %lu checks in %lld ms, want >= %lu", i,
                      got, (long long)elapsed, want);
        ck_assert_int_eq(health_of(apps[i]), SHM_HEALTH_UP);
        ck_assert_uint_eq(atomic_load(&apps[i]->checks_failed), 0);
        /* checked lately, on the schedule (last_check_ms is on the same CLOCK_MONOTONIC) */
        ck_assert_int_le(now - atomic_load(&apps[i]->last_check_ms), interval + 50);
    }
    ck_assert(log_has(&h, "up -> down: timed out after 300 ms, 2/2 checks failed"));

    hc_stop(&h);
    tl_stop(responder);
    for (int i = 0; i < NAPPS; i++)
        tl_stop(app[i].pid);
    for (int i = 0; i < NHOLES; i++)
        close(hole[i]);
}
END_TEST

/* Groups keep their own intervals; a group with health_check off is UP and never probed. */
START_TEST(t_groups_independent)
{
    struct tl_proc fast, slow;
    struct hc h;
    int dead = tl_dead_port();

    tl_app_start(&fast, "fast");
    tl_app_start(&slow, "slow");
    ini_begin("fast");
    ini_add("[upstream fast]\nserver = 127.0.0.1:%d\nhealth_interval = 100ms\n", fast.port);
    ini_add("[upstream slow]\nserver = 127.0.0.1:%d\nhealth_interval = 400ms\n", slow.port);
    ini_add("[upstream static]\nserver = 127.0.0.1:%d\nhealth_check = off\n", dead);
    hc_start(&h);
    wait_ready(&h, 2000);
    struct shm_server *f = srv(&h, 0, 0), *s = srv(&h, 1, 0), *st = srv(&h, 2, 0);
    unsigned long f0 = checks_of(f), s0 = checks_of(s);
    int64_t t0 = tl_now_ms();
    usleep(1200 * 1000);
    int64_t elapsed = tl_now_ms() - t0;
    unsigned long fn = checks_of(f) - f0, sn = checks_of(s) - s0;
    ck_assert_msg(fn >= (unsigned long)(elapsed / 100 - 1) &&
                      fn <= (unsigned long)(elapsed / 100 + 1),
                  "fast group: %lu checks in %lld ms", fn, (long long)elapsed);
    ck_assert_msg(sn >= (unsigned long)(elapsed / 400 - 1) &&
                      sn <= (unsigned long)(elapsed / 400 + 1),
                  "slow group: %lu checks in %lld ms", sn, (long long)elapsed);
    ck_assert_int_eq(health_of(f), SHM_HEALTH_UP);
    ck_assert_int_eq(health_of(s), SHM_HEALTH_UP);
    /* never probed, although nothing listens there */
    ck_assert_int_eq(health_of(st), SHM_HEALTH_UP);
    ck_assert_uint_eq(checks_of(st), 0);
    ck_assert_int_eq(atomic_load(&st->last_check_ms), 0);
    ck_assert(error_is(st, ""));
    ck_assert(log_has(&h, "]: checking 2 servers"));

    hc_stop(&h);
    tl_stop(fast.pid);
    tl_stop(slow.pid);
}
END_TEST

/* Nothing to probe: health_ready at once, and the checker waits quietly for its signal. */
START_TEST(t_nothing_to_probe)
{
    struct hc h;

    ini_begin("static");
    ini_add("[upstream static]\nserver = 127.0.0.1:%d\nhealth_check = off\n", tl_dead_port());
    hc_start(&h);
    ck_assert(WAIT_FOR(500, atomic_load(&h.shm->health_ready) == 1));
    ck_assert_int_eq(health_of(srv(&h, 0, 0)), SHM_HEALTH_UP);
    usleep(200 * 1000);
    ck_assert(tl_pid_alive(h.pid));
    ck_assert_uint_eq(checks_of(srv(&h, 0, 0)), 0);
    hc_stop(&h);
}
END_TEST

/*
 * Forked as the master forks it (its flag handlers installed, its signals
 * blocked): SIGTERM still stops it at once, SIGUSR1 does not, SIGQUIT
 * makes it exit 0.
 */
START_TEST(t_signals_from_master)
{
    struct tl_proc app;
    struct hc h;

    tl_app_start(&app, "a");
    ini_begin("app");
    ini_add("[upstream app]\nserver = 127.0.0.1:%d\nhealth_interval = 100ms\n", app.port);

    hc_start_opt(&h, true);
    wait_ready(&h, 2000);
    ck_assert_int_eq(kill(h.pid, SIGUSR1), 0); /* reopen logs: keeps running */
    unsigned long c0 = checks_of(srv(&h, 0, 0));
    ck_assert(WAIT_FOR(1000, checks_of(srv(&h, 0, 0)) >= c0 + 2));
    int64_t t0 = tl_now_ms();
    hc_stop(&h); /* asserts death by SIGTERM */
    ck_assert_int_lt(tl_now_ms() - t0, 1000);

    hc_start_opt(&h, true);
    wait_ready(&h, 2000);
    int st;
    ck_assert_int_eq(kill(h.pid, SIGQUIT), 0);
    ck_assert(WAIT_FOR(1000, waitpid(h.pid, &st, WNOHANG) == h.pid));
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x after SIGQUIT", st);
    ck_assert(log_has(&h, "]: stopping"));
    shm_destroy(h.shm);
    cfg_free(h.cfg);
    hc_cleanup_dir(h.dir);

    tl_stop(app.pid);
}
END_TEST

/* The checker dies with the process that forked it (PR_SET_PDEATHSIG). */
START_TEST(t_dies_with_master)
{
    struct tl_proc app;
    struct hc h;
    int pfd[2];

    tl_app_start(&app, "a");
    ini_begin("app");
    ini_add("[upstream app]\nserver = 127.0.0.1:%d\nhealth_interval = 100ms\n", app.port);
    ck_assert(pipe(pfd) == 0);
    pid_t master = fork();
    ck_assert(master != -1);
    if (master == 0) {
        /* stands for the master: forks the checker, tells us about it, waits to be killed */
        hc_start(&h);
        ssize_t w = write(pfd[1], &h, sizeof(h));
        (void)w;
        for (;;)
            pause();
    }
    /* only its pid and dir mean anything here: the rest points into the other process */
    ck_assert_int_eq(read(pfd[0], &h, sizeof(h)), (ssize_t)sizeof(h));
    pid_t checker = h.pid;
    ck_assert(WAIT_FOR(2000, tl_pid_alive(checker)));
    usleep(100 * 1000);
    kill(master, SIGKILL);
    waitpid(master, NULL, 0);
    ck_assert_msg(WAIT_FOR(2000, !tl_pid_alive(checker)), "checker %d outlived its master",
                  (int)checker);
    hc_cleanup_dir(h.dir);
    close(pfd[0]);
    close(pfd[1]);
    tl_stop(app.pid);
}
END_TEST

/*
 * health_interval_down (HAProxy's downinter): a down server is probed at its
 * own, shorter interval, so a restarted app is back after rise x that, not
 * rise x health_interval (here 2 x 5 s).
 */
START_TEST(t_interval_down)
{
    struct tl_proc app;
    struct hc h;
    struct tl_resp r;

    tl_app_start(&app, "a");
    ck_assert_int_eq(
        tl_request(app.port, "GET /sethealth?status=503 HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    tl_resp_free(&r);
    ini_begin("app");
    ini_add("[upstream app]\nserver = 127.0.0.1:%d\nhealth_interval = 5s\n"
            "health_interval_down = 100ms\nhealth_timeout = 300ms\nrise = 2\n",
            app.port);
    hc_start(&h);
    struct shm_server *sv = srv(&h, 0, 0);
    wait_ready(&h, 2000);
    ck_assert_int_eq(health_of(sv), SHM_HEALTH_DOWN);
    /* down: a probe every 100 ms */
    unsigned long c0 = checks_of(sv);
    usleep(1000 * 1000);
    unsigned long n = checks_of(sv) - c0;
    ck_assert_msg(n >= 5 && n <= 12, "%lu probes in 1 s while down, interval 100 ms", n);

    ck_assert_int_eq(
        tl_request(app.port, "GET /sethealth?status=200 HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    tl_resp_free(&r);
    int64_t t0 = tl_now_ms();
    ck_assert(WAIT_FOR(3000, health_of(sv) == SHM_HEALTH_UP));
    int64_t took = tl_now_ms() - t0;
    ck_assert_msg(took < 1000, "up %lld ms after it recovered; rise 2 x 100 ms", (long long)took);
    /* up again: back to the normal interval */
    c0 = checks_of(sv);
    usleep(600 * 1000);
    ck_assert_uint_le(checks_of(sv) - c0, 1);

    hc_stop(&h);
    tl_stop(app.pid);
}
END_TEST

/*
 * A group whose app has no health endpoint (404 everywhere): the log says
 * once, on the transition, that the group has no usable server, why, and
 * where to look; once again when a server comes back. The flag is in shm.
 */
START_TEST(t_group_unusable)
{
    struct tl_proc app[2];
    struct hc h;
    struct tl_resp r;
    char line[256];

    for (int i = 0; i < 2; i++) {
        tl_app_start(&app[i], i == 0 ? "a" : "b");
        ck_assert_int_eq(
            tl_request(app[i].port, "GET /sethealth?status=404 HTTP/1.1\r\nHost: t\r\n\r\n", &r),
            200);
        tl_resp_free(&r);
    }
    ini_begin("app");
    ini_add("[upstream app]\nserver = 127.0.0.1:%d\nserver = 127.0.0.1:%d\n"
            "health_interval = 100ms\nhealth_timeout = 300ms\nrise = 1\n",
            app[0].port, app[1].port);
    hc_start(&h);
    wait_ready(&h, 2000);
    snprintf(line, sizeof(line),
             "[app] no usable server: every health check fails (status 404 at 127.0.0.1:%d, "
             "status 404 at 127.0.0.1:%d): answering 503; see health_path, health_status, "
             "health_check",
             app[0].port, app[1].port);
    ck_assert(tl_file_waitfor(h.log, line, 1000));
    ck_assert_int_eq(atomic_load(&h.shm->groups[0].no_usable), 1);
    /* more failed rounds say nothing more */
    unsigned long c0 = checks_of(srv(&h, 0, 0));
    ck_assert(WAIT_FOR(2000, checks_of(srv(&h, 0, 0)) >= c0 + 4));
    ck_assert_int_eq(tl_file_count(h.log, "no usable server"), 1);

    ck_assert_int_eq(
        tl_request(app[1].port, "GET /sethealth?status=200 HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    tl_resp_free(&r);
    ck_assert(WAIT_FOR(2000, health_of(srv(&h, 0, 1)) == SHM_HEALTH_UP));
    ck_assert(log_has(&h, "[app] usable again: 127.0.0.1:%d is up", app[1].port));
    ck_assert_int_eq(atomic_load(&h.shm->groups[0].no_usable), 0);
    ck_assert_int_eq(tl_file_count(h.log, "usable again"), 1);

    hc_stop(&h);
    tl_stop(app[0].pid);
    tl_stop(app[1].pid);
}
END_TEST

/*
 * A new checker on states carried over (all down, as after a reload) judges
 * the group at once: there is no transition to wait for.
 */
START_TEST(t_group_unusable_carried)
{
    struct tl_proc app;
    struct hc h;
    struct tl_resp r;

    tl_app_start(&app, "a");
    ck_assert_int_eq(
        tl_request(app.port, "GET /sethealth?status=404 HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    tl_resp_free(&r);
    ini_begin("app");
    ini_add("[upstream app]\nserver = 127.0.0.1:%d\nhealth_interval = 100ms\n", app.port);
    hc_start_preset(&h, false, SHM_HEALTH_DOWN);
    ck_assert(log_has(&h,
                      "[app] no usable server: every health check fails (status 404 at "
                      "127.0.0.1:%d): answering 503",
                      app.port));
    ck_assert_int_eq(atomic_load(&h.shm->groups[0].no_usable), 1);
    unsigned long c0 = checks_of(srv(&h, 0, 0));
    ck_assert(WAIT_FOR(2000, checks_of(srv(&h, 0, 0)) >= c0 + 3));
    ck_assert_int_eq(tl_file_count(h.log, "no usable server"), 1);
    hc_stop(&h);
    tl_stop(app.pid);
}
END_TEST

/*
 * An up transition closes the server's breaker (Envoy's
 * successful_active_health_check_uneject_host): a restarted server gets
 * traffic after rise probes, not after the cooldown.
 */
START_TEST(t_up_closes_breaker)
{
    struct tl_proc app;
    struct hc h;
    struct tl_resp r;

    tl_app_start(&app, "a");
    ck_assert_int_eq(
        tl_request(app.port, "GET /sethealth?status=503 HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    tl_resp_free(&r);
    ini_begin("app");
    ini_add("[upstream app]\nserver = 127.0.0.1:%d\nhealth_interval = 100ms\n"
            "health_timeout = 300ms\nrise = 2\ncooldown = 60m\n",
            app.port);
    hc_start(&h);
    struct shm_server *sv = srv(&h, 0, 0);
    wait_ready(&h, 2000);
    ck_assert_int_eq(health_of(sv), SHM_HEALTH_DOWN);
    /* what the workers left: the breaker open an hour long, a run of failures */
    atomic_store(&sv->breaker, shm_bw_make(SHM_BREAKER_OPEN, tl_now_ms()));
    atomic_store(&sv->fail_run, shm_run_make(5, tl_now_ms()));

    ck_assert_int_eq(
        tl_request(app.port, "GET /sethealth?status=200 HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    tl_resp_free(&r);
    ck_assert(WAIT_FOR(2000, health_of(sv) == SHM_HEALTH_UP));
    ck_assert_int_eq(shm_breaker_state(sv), SHM_BREAKER_CLOSED);
    ck_assert_uint_eq(atomic_load(&sv->fail_run), 0);
    ck_assert(
        log_has(&h, "[app] 127.0.0.1:%d circuit closed: the health check found it up", app.port));

    hc_stop(&h);
    tl_stop(app.pid);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("it_health");
    TCase *tc = tcase_create("health");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, t_first_round);
    tcase_add_test(tc, t_probe_request_and_reasons);
    tcase_add_test(tc, t_fall_and_rise);
    tcase_add_test(tc, t_connect_refused);
    tcase_add_test(tc, t_connect_timeout);
    tcase_add_test(tc, t_black_holes_delay_nobody);
    tcase_add_test(tc, t_groups_independent);
    tcase_add_test(tc, t_nothing_to_probe);
    tcase_add_test(tc, t_signals_from_master);
    tcase_add_test(tc, t_dies_with_master);
    tcase_add_test(tc, t_interval_down);
    tcase_add_test(tc, t_group_unusable);
    tcase_add_test(tc, t_group_unusable_carried);
    tcase_add_test(tc, t_up_closes_breaker);
    suite_add_tcase(s, tc);
    return tl_run(s);
}
