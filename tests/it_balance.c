/*
 * it_balance: health checking, balancing, retries and the circuit breaker,
 * end to end: the real daemon, real testapp upstreams (killed with
 * SIGKILL, stopped with SIGSTOP to black-hole them, restarted), and the
 * shared table read through shm_attach().
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm.h"
#include "testlib.h"

#define GET_ROOT "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"

static struct tl_proc app[3];
static struct tl_proxy px;

static void
stop_all(void)
{
    tl_stop_all(&px, app, 3);
}

static const struct shm *
attach(void)
{
    const struct shm *shm = shm_attach(px.pid);
    ck_assert_msg(shm != NULL, "shm_attach(%d): %s", px.pid, strerror(errno));
    return shm;
}

/* Waits up to <ms> for server <s> of group 0 to reach health <h>; returns ms waited or -1. */
static int64_t
wait_health(const struct shm *shm, int s, int h, int ms)
{
    int64_t t0 = tl_now_ms();
    while (tl_now_ms() - t0 < ms) {
        if (atomic_load(&shm->servers[shm->groups[0].first + s].health) == h)
            return tl_now_ms() - t0;
        usleep(5 * 1000);
    }
    return -1;
}

static uint64_t
srv_requests(const struct shm *shm, int s)
{
    return atomic_load(&shm->servers[shm->groups[0].first + s].requests);
}

/*
 * A server that accepts and closes every connection at once, answering
 * nothing; it writes one byte to a pipe per connection, so the test can
 * count exactly how many requests reached it.
 */
struct bad {
    pid_t pid;
    int port;
    int count_fd;
    int counted;
};

static void
bad_start(struct bad *b)
{
    int cp[2];
    ck_assert(pipe(cp) == 0);
    int lfd = tl_listen_local(64, &b->port);
    b->pid = fork();
    ck_assert(b->pid != -1);
    if (b->pid == 0) {
        signal(SIGPIPE, SIG_IGN);
        for (;;) {
            int fd = accept(lfd, NULL, NULL);
            if (fd == -1)
                continue;
            char buf[4096];
            (void)!read(fd, buf, sizeof(buf)); /* take the request, then hang up */
            close(fd);
            (void)!write(cp[1], "x", 1);
        }
    }
    close(lfd);
    close(cp[1]);
    b->count_fd = cp[0];
    fcntl(b->count_fd, F_SETFL, O_NONBLOCK);
    b->counted = 0;
}

/* Connections the bad server has taken so far. */
static int
bad_count(struct bad *b)
{
    char buf[256];
    ssize_t n;
    usleep(20 * 1000); /* let the last accept reach the pipe */
    while ((n = read(b->count_fd, buf, sizeof(buf))) > 0)
        b->counted += (int)n;
    return b->counted;
}

static void
bad_stop(struct bad *b)
{
    kill(b->pid, SIGKILL);
    waitpid(b->pid, NULL, 0);
    close(b->count_fd);
}

#define FAST_HEALTH "health_interval = 100ms\nhealth_timeout = 100ms\nrise = 2\nfall = 2\n"

START_TEST(t_kill_one_under_load)
{
    tl_app_start(&app[0], "a1");
    tl_app_start(&app[1], "a2");
    tl_app_start(&app[2], "a3");
    tl_proxy_start(
        &px,
        "workers = 4\nupstream = app\naccess_log = off\n[upstream app]\n"
        "server = 127.0.0.1:%d\nserver = 127.0.0.1:%d\nserver = 127.0.0.1:%d\n" FAST_HEALTH
        "retries = 2\nmax_fails = 0\n",
        app[0].port, app[1].port, app[2].port);
    const struct shm *shm = attach();
    int port2 = app[1].port;
    int failed = 0, total = 0, seen_after_down = 0;
    int64_t t0 = tl_now_ms(), down_at = -1;
    uint64_t reqs_at_down = 0;
    bool killed = false;
    /*
     * A steady client loop, bounded (5 s, 50000 requests): through the kill,
     * until the checker marks the server down, and half a second beyond.
     */
    while (tl_now_ms() - t0 < 5000 && total < 50000 &&
           (down_at < 0 || tl_now_ms() - down_at < 500)) {
        struct tl_resp r;
        int st = tl_request(px.port, GET_ROOT, &r);
        total++;
        if (st != 200)
            failed++;
        if (down_at >= 0 && tl_who(&r) == 2)
            seen_after_down++;
        tl_resp_free(&r);
        if (!killed && tl_now_ms() - t0 > 500) {
            kill(app[1].pid, SIGKILL);
            waitpid(app[1].pid, NULL, 0);
            app[1].pid = 0;
            killed = true;
        }
        if (killed && down_at < 0 && atomic_load(&shm->servers[1].health) == SHM_HEALTH_DOWN) {
            down_at = tl_now_ms();
            reqs_at_down = srv_requests(shm, 1);
        }
    }
    fprintf(stderr, "kill -9 of one of three under load: %d requests, %d failed\n", total, failed);
    ck_assert_int_eq(failed, 0);
    ck_assert_msg(down_at > 0, "killed server never marked down");
    ck_assert_int_eq(seen_after_down, 0);
    /* Once down, it gets no attempts at all (not even ones that would be retried). */
    ck_assert_int_eq(srv_requests(shm, 1), reqs_at_down);
    ck_assert(tl_file_waitfor(px.errlog, "up -> down", 1000));

    /* Back on its port: up again after `rise` good probes, and serving. */
    tl_app_start_opts(&app[1], "a2", port2, 0);
    int64_t up = wait_health(shm, 1, SHM_HEALTH_UP, 3000);
    ck_assert_msg(up >= 0, "restarted server not up within 3 s");
    ck_assert(tl_file_waitfor(px.errlog, "down -> up after 2 checks", 1000));
    int seen = 0;
    for (int i = 0; i < 9; i++) {
        struct tl_resp r;
        tl_request(px.port, GET_ROOT, &r);
        seen += tl_who(&r) == 2;
        tl_resp_free(&r);
    }
    ck_assert_int_eq(seen, 3);
    shm_detach(shm);
    stop_all();
}
END_TEST

START_TEST(t_failing_health_endpoint)
{
    struct tl_resp r;
    tl_app_start(&app[0], "a1");
    tl_app_start(&app[1], "a2");
    tl_proxy_start(&px,
                   "workers = 2\nupstream = app\n[upstream app]\nserver = 127.0.0.1:%d\n"
                   "server = 127.0.0.1:%d\n" FAST_HEALTH,
                   app[0].port, app[1].port);
    const struct shm *shm = attach();
    ck_assert_int_eq(tl_request(app[0].port,
                                "GET /sethealth?status=503 HTTP/1.1\r\nHost: t\r\n"
                                "Connection: close\r\n\r\n",
                                &r),
                     200);
    tl_resp_free(&r);
    ck_assert(wait_health(shm, 0, SHM_HEALTH_DOWN, 2000) >= 0);
    char err[SHM_ERR_MAX];
    shm_read_error((struct shm_server *)&shm->servers[0], err, sizeof(err));
    ck_assert_msg(strstr(err, "503") != NULL, "last_error: %s", err);
    /* "/" still answers on a1, but it is out of rotation */
    for (int i = 0; i < 10; i++) {
        tl_request(px.port, GET_ROOT, &r);
        ck_assert_int_eq(tl_who(&r), 2);
        tl_resp_free(&r);
    }
    shm_detach(shm);
    stop_all();
}
END_TEST

START_TEST(t_black_hole)
{
    tl_app_start(&app[0], "a1");
    tl_app_start(&app[1], "a2");
    tl_proxy_start(&px,
                   "workers = 4\nupstream = app\n[upstream app]\nserver = 127.0.0.1:%d\n"
                   "server = 127.0.0.1:%d\nread_timeout = 300ms\n"
                   "health_interval = 200ms\nhealth_timeout = 200ms\nfall = 2\nrise = 2\n"
                   "max_fails = 0\n",
                   app[0].port, app[1].port);
    const struct shm *shm = attach();
    /* A stopped process: the kernel still completes handshakes, nothing ever answers. */
    kill(app[0].pid, SIGSTOP);
    int64_t t0 = tl_now_ms();
    int timeouts = 0, later_failures = 0;
    bool down = false;
    while (tl_now_ms() - t0 < 2500) {
        struct tl_resp r;
        int st = tl_request(px.port, GET_ROOT, &r);
        tl_resp_free(&r);
        if (!down && atomic_load(&shm->servers[0].health) == SHM_HEALTH_DOWN) {
            down = true;
            int64_t dt = tl_now_ms() - t0;
            fprintf(stderr, "black-holed server marked down after %lld ms\n", (long long)dt);
            /* fall * (interval + timeout), plus one interval of phase */
            ck_assert_int_le(dt, 2 * (200 + 200) + 200 + 150);
            continue;
        }
        if (st == 504 && !down)
            timeouts++;
        else if (st != 200)
            later_failures++;
    }
    ck_assert(down);
    ck_assert_int_le(timeouts, 4);
    ck_assert_int_eq(later_failures, 0);
    kill(app[0].pid, SIGCONT);
    shm_detach(shm);
    stop_all();
}
END_TEST

START_TEST(t_breaker_opens_and_trials)
{
    struct bad b;
    bad_start(&b);
    tl_app_start(&app[0], "a1");
    tl_proxy_start(&px,
                   "workers = 2\nupstream = app\n[upstream app]\nserver = 127.0.0.1:%d\n"
                   "server = 127.0.0.1:%d\nhealth_check = off\nmax_fails = 3\n"
                   "fail_window = 10s\ncooldown = 1s\nretries = 2\n",
                   b.port, app[0].port);
    const struct shm *shm = attach();
    for (int i = 0; i < 20; i++) {
        struct tl_resp r;
        ck_assert_int_eq(tl_request(px.port, GET_ROOT, &r), 200); /* retries cover it */
        tl_resp_free(&r);
    }
    ck_assert_int_eq(bad_count(&b), 3);
    ck_assert_int_eq(shm_breaker_state(&shm->servers[0]), SHM_BREAKER_OPEN);
    /* the ejection names its cause: the count and the last failure */
    char line[256];
    snprintf(line, sizeof(line),
             "[app] 127.0.0.1:%d ejected for 1s: 3 consecutive failures, last: ", b.port);
    ck_assert(tl_file_waitfor(px.errlog, line, 1000));
    usleep(1100 * 1000);
    for (int i = 0; i < 10; i++) {
        struct tl_resp r;
        ck_assert_int_eq(tl_request(px.port, GET_ROOT, &r), 200);
        tl_resp_free(&r);
    }
    /* exactly one trial after the cooldown; it failed, so the circuit is open again */
    ck_assert_int_eq(bad_count(&b), 4);
    ck_assert_int_eq(shm_breaker_state(&shm->servers[0]), SHM_BREAKER_OPEN);
    ck_assert_int_eq(atomic_load(&shm->servers[0].breaker_opens), 2);
    ck_assert(tl_file_waitfor(px.errlog, "ejected again for 1s: the trial request failed", 1000));
    shm_detach(shm);
    bad_stop(&b);
    stop_all();
}
END_TEST

START_TEST(t_all_down_is_503_at_once)
{
    int p0 = tl_dead_port(), p1 = tl_dead_port();
    tl_proxy_start(&px,
                   "workers = 2\nupstream = app\n[upstream app]\nserver = 127.0.0.1:%d\n"
                   "server = 127.0.0.1:%d\n" FAST_HEALTH,
                   p0, p1);
    struct tl_resp r;
    for (int i = 0; i < 5; i++) {
        int64_t t0 = tl_now_ms();
        ck_assert_int_eq(tl_request(px.port, GET_ROOT, &r), 503);
        ck_assert_int_lt(tl_now_ms() - t0, 50);
        tl_resp_free(&r);
    }
    ck_assert(tl_file_waitfor(px.errlog, "unknown -> down: connect refused", 1000));
    tl_stop(px.pid);
}
END_TEST

START_TEST(t_least_conn_avoids_slow_server)
{
    tl_app_start_opts(&app[0], "a1", 0, 150);
    tl_app_start(&app[1], "a2");
    tl_app_start(&app[2], "a3");
    tl_proxy_start(&px,
                   "workers = 8\nupstream = app\naccess_log = off\n[upstream app]\n"
                   "balance = least_conn\nserver = 127.0.0.1:%d\nserver = 127.0.0.1:%d\n"
                   "server = 127.0.0.1:%d\n",
                   app[0].port, app[1].port, app[2].port);
    /* 6 concurrent clients, 40 requests each, report who answered through a pipe */
    int pp[2];
    ck_assert(pipe(pp) == 0);
    pid_t kids[6];
    for (int k = 0; k < 6; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            for (int i = 0; i < 40; i++) {
                struct tl_resp r;
                tl_request(px.port, GET_ROOT, &r);
                char c = (char)('0' + tl_who(&r));
                (void)!write(pp[1], &c, 1);
                tl_resp_free(&r);
            }
            _exit(0);
        }
    }
    close(pp[1]);
    int count[4] = {0};
    char c;
    while (read(pp[0], &c, 1) == 1)
        count[c - '0']++;
    for (int k = 0; k < 6; k++)
        waitpid(kids[k], NULL, 0);
    close(pp[0]);
    fprintf(stderr, "least_conn with a slow a1: a1=%d a2=%d a3=%d failed=%d\n", count[1], count[2],
            count[3], count[0]);
    ck_assert_int_eq(count[0], 0);
    ck_assert_int_eq(count[1] + count[2] + count[3], 240);
    /* round-robin would give a1 a third (80); least_conn keeps it well below */
    ck_assert_int_lt(count[1] * 4, count[2]);
    ck_assert_int_lt(count[1] * 4, count[3]);
    stop_all();
}
END_TEST

START_TEST(t_backup_only_when_primaries_down)
{
    struct tl_resp r;
    tl_app_start(&app[0], "a1");
    tl_app_start(&app[1], "a2");
    tl_proxy_start(&px,
                   "workers = 2\nupstream = app\n[upstream app]\nserver = 127.0.0.1:%d\n"
                   "server = 127.0.0.1:%d backup\n" FAST_HEALTH,
                   app[0].port, app[1].port);
    const struct shm *shm = attach();
    for (int i = 0; i < 6; i++) {
        tl_request(px.port, GET_ROOT, &r);
        ck_assert_int_eq(tl_who(&r), 1);
        tl_resp_free(&r);
    }
    tl_request(app[0].port, "GET /sethealth?status=500 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    tl_resp_free(&r);
    ck_assert(wait_health(shm, 0, SHM_HEALTH_DOWN, 2000) >= 0);
    for (int i = 0; i < 6; i++) {
        tl_request(px.port, GET_ROOT, &r);
        ck_assert_int_eq(tl_who(&r), 2);
        tl_resp_free(&r);
    }
    tl_request(app[0].port, "GET /sethealth?status=200 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    tl_resp_free(&r);
    ck_assert(wait_health(shm, 0, SHM_HEALTH_UP, 2000) >= 0);
    tl_request(px.port, GET_ROOT, &r);
    ck_assert_int_eq(tl_who(&r), 1);
    tl_resp_free(&r);
    shm_detach(shm);
    stop_all();
}
END_TEST

START_TEST(t_retry_rules)
{
    struct bad b;
    struct tl_resp r;
    bad_start(&b);
    tl_app_start(&app[0], "a1");
    tl_proxy_start(&px,
                   "workers = 2\nupstream = app\n[upstream app]\nserver = 127.0.0.1:%d\n"
                   "server = 127.0.0.1:%d\nhealth_check = off\nmax_fails = 0\nretries = 2\n",
                   b.port, app[0].port);
    /* GET: whoever closes without an answer is replaced; the client never sees it */
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(tl_request(px.port, GET_ROOT, &r), 200);
        tl_resp_free(&r);
    }
    int before = bad_count(&b);
    ck_assert_int_eq(before, 5);
    /* POST that reached the bad server: never retried, 502 */
    int bad502 = 0, ok = 0;
    for (int i = 0; i < 10; i++) {
        int st = tl_request(px.port,
                            "POST /sum HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                            "Content-Length: 3\r\n\r\nabc",
                            &r);
        bad502 += st == 502;
        ok += st == 200;
        tl_resp_free(&r);
    }
    ck_assert_int_eq(bad502, 5);
    ck_assert_int_eq(ok, 5);
    ck_assert_int_eq(bad_count(&b) - before, 5); /* one attempt each, no second */
    bad_stop(&b);

    /* POST to a server that refuses the connection: nothing was sent, so it moves on */
    tl_stop(px.pid);
    int dport = tl_dead_port();
    tl_proxy_start(&px,
                   "workers = 2\nupstream = app\n[upstream app]\nserver = 127.0.0.1:%d\n"
                   "server = 127.0.0.1:%d\nhealth_check = off\nmax_fails = 0\n",
                   dport, app[0].port);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(
            tl_request(px.port, "POST /sum HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
                       &r),
            200);
        tl_resp_free(&r);
    }
    ck_assert(tl_file_waitfor(px.errlog, "retrying \"POST /sum\" on another server", 1000));
    stop_all();
}
END_TEST

START_TEST(t_hash_is_sticky_and_shm_counts)
{
    tl_app_start(&app[0], "a1");
    tl_app_start(&app[1], "a2");
    tl_app_start(&app[2], "a3");
    tl_proxy_start(&px,
                   "workers = 3\nupstream = app\n[upstream app]\nbalance = hash\n"
                   "hash_key = header:X-User\nserver = 127.0.0.1:%d\nserver = 127.0.0.1:%d\n"
                   "server = 127.0.0.1:%d\n",
                   app[0].port, app[1].port, app[2].port);
    int used[4] = {0};
    for (int u = 0; u < 30; u++) {
        char req[128];
        snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: t\r\nX-User: user%d\r\n\r\n", u);
        int first = 0;
        for (int i = 0; i < 4; i++) {
            struct tl_resp r;
            tl_request(px.port, req, &r);
            int k = tl_who(&r);
            tl_resp_free(&r);
            ck_assert_int_ne(k, 0);
            if (first == 0)
                first = k;
            ck_assert_int_eq(k, first); /* the same key always lands on the same server */
        }
        used[first]++;
    }
    ck_assert_msg(used[1] > 0 && used[2] > 0 && used[3] > 0, "keys spread: %d %d %d", used[1],
                  used[2], used[3]);
    /* the shared table agrees: 120 requests, none in flight, every server up */
    const struct shm *shm = attach();
    uint64_t total = 0;
    for (int s = 0; s < 3; s++) {
        total += srv_requests(shm, s);
        /* the worker uncounts a request just after the client has its answer */
        int64_t t0 = tl_now_ms();
        while (atomic_load(&shm->servers[s].active) != 0 && tl_now_ms() - t0 < 1000)
            usleep(1000);
        ck_assert_int_eq(atomic_load(&shm->servers[s].active), 0);
        ck_assert_int_eq(atomic_load(&shm->servers[s].health), SHM_HEALTH_UP);
        ck_assert_int_gt(atomic_load(&shm->servers[s].checks), 0);
    }
    ck_assert_int_eq(total, 120);
    shm_detach(shm);
    stop_all();
}
END_TEST

START_TEST(t_checker_respawned_state_kept)
{
    tl_app_start(&app[0], "a1");
    tl_proxy_start(
        &px, "workers = 2\nupstream = app\n[upstream app]\nserver = 127.0.0.1:%d\n" FAST_HEALTH,
        app[0].port);
    const struct shm *shm = attach();
    pid_t old = atomic_load(&shm->checker_pid);
    ck_assert_int_gt(old, 0);
    ck_assert(kill(old, SIGKILL) == 0);
    int64_t t0 = tl_now_ms();
    pid_t now = old;
    while ((now == old || now == 0) && tl_now_ms() - t0 < 1000) {
        usleep(5 * 1000);
        now = atomic_load(&shm->checker_pid);
    }
    ck_assert_msg(now != old && now > 0, "health checker not respawned within 1 s");
    /* the server stayed up throughout, and the new checker goes on probing */
    ck_assert_int_eq(atomic_load(&shm->servers[0].health), SHM_HEALTH_UP);
    uint64_t checks = atomic_load(&shm->servers[0].checks);
    usleep(350 * 1000);
    ck_assert_int_gt(atomic_load(&shm->servers[0].checks), checks + 1);
    struct tl_resp r;
    ck_assert_int_eq(tl_request(px.port, GET_ROOT, &r), 200);
    tl_resp_free(&r);
    ck_assert(tl_file_waitfor(px.errlog, "health checker (pid", 1000));
    shm_detach(shm);
    stop_all();
}
END_TEST

/*
 * A client that makes the app fail on purpose (GET /reset: the app resets
 * the connection) cannot empty the group: every server gets its run of
 * failures, but the breaker ejects at most max_ejected_percent (50: one of
 * three) and the rest keep serving everyone else.
 */
START_TEST(t_breaker_cap)
{
    tl_app_start(&app[0], "a1");
    tl_app_start(&app[1], "a2");
    tl_app_start(&app[2], "a3");
    tl_proxy_start(&px,
                   "workers = 2\nupstream = app\n[upstream app]\nserver = 127.0.0.1:%d\n"
                   "server = 127.0.0.1:%d\nserver = 127.0.0.1:%d\nhealth_check = off\n"
                   "max_fails = 3\ncooldown = 30s\nretries = 2\n",
                   app[0].port, app[1].port, app[2].port);
    const struct shm *shm = attach();
    for (int i = 0; i < 8; i++) {
        struct tl_resp r;
        int st =
            tl_request(px.port, "GET /reset HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r);
        ck_assert_msg(st == 502, "attack %d: %d", i, st);
        tl_resp_free(&r);
    }
    int out = -1, nout = 0;
    for (int s = 0; s < 3; s++)
        if (shm_breaker_state(&shm->servers[s]) != SHM_BREAKER_CLOSED) {
            out = s;
            nout++;
        }
    ck_assert_int_eq(nout, 1);
    int seen[4] = {0};
    for (int i = 0; i < 12; i++) {
        struct tl_resp r;
        ck_assert_int_eq(tl_request(px.port, GET_ROOT, &r), 200);
        seen[tl_who(&r)]++;
        tl_resp_free(&r);
    }
    fprintf(stderr, "3 servers failing on purpose: %d ejected; 12 requests: a1=%d a2=%d a3=%d\n",
            nout, seen[1], seen[2], seen[3]);
    ck_assert_int_eq(seen[out + 1], 0);
    for (int s = 0; s < 3; s++)
        if (s != out)
            ck_assert_int_gt(seen[s + 1], 0);
    char line[160];
    snprintf(line, sizeof(line),
             "[app] 127.0.0.1:%d ejected for 30s: 3 consecutive failures, last: ", app[out].port);
    ck_assert(tl_file_waitfor(px.errlog, line, 1000));
    ck_assert_int_eq(tl_file_count(px.errlog, "ejected for"), 1);
    ck_assert(tl_file_waitfor(px.errlog,
                              "stays in: 3 consecutive failures, but 1 of the 3 servers up is "
                              "already out (max_ejected_percent = 50)",
                              1000));
    shm_detach(shm);
    stop_all();
}
END_TEST

/*
 * Killed, its breaker opened by the failed requests (cooldown 30 s),
 * restarted: the health checker's up transition closes the breaker, so the
 * server gets traffic within rise x health_interval_down, not after the
 * cooldown.
 */
START_TEST(t_restart_closes_breaker)
{
    tl_app_start(&app[0], "a1");
    tl_app_start(&app[1], "a2");
    int port1 = app[0].port;
    tl_proxy_start(&px,
                   "workers = 2\nupstream = app\n[upstream app]\nserver = 127.0.0.1:%d\n"
                   "server = 127.0.0.1:%d\nhealth_interval = 100ms\nhealth_timeout = 100ms\n"
                   "rise = 2\nfall = 5\nmax_fails = 2\ncooldown = 30s\nretries = 2\n",
                   port1, app[1].port);
    const struct shm *shm = attach();
    kill(app[0].pid, SIGKILL);
    waitpid(app[0].pid, NULL, 0);
    app[0].pid = 0;
    for (int i = 0; i < 20 && shm_breaker_state(&shm->servers[0]) == SHM_BREAKER_CLOSED; i++) {
        struct tl_resp r;
        ck_assert_int_eq(tl_request(px.port, GET_ROOT, &r), 200); /* retried on a2 */
        tl_resp_free(&r);
    }
    ck_assert_int_eq(shm_breaker_state(&shm->servers[0]), SHM_BREAKER_OPEN);
    ck_assert_msg(wait_health(shm, 0, SHM_HEALTH_DOWN, 3000) >= 0, "killed server not down");

    tl_app_start_opts(&app[0], "a1", port1, 0);
    int64_t t0 = tl_now_ms(), back = -1;
    while (back < 0 && tl_now_ms() - t0 < 5000) {
        struct tl_resp r;
        tl_request(px.port, GET_ROOT, &r);
        if (tl_who(&r) == 1)
            back = tl_now_ms() - t0;
        tl_resp_free(&r);
        usleep(10 * 1000);
    }
    fprintf(stderr, "restarted server with an open breaker (cooldown 30 s) served after %lld ms\n",
            (long long)back);
    ck_assert_msg(back >= 0 && back < 1500, "restarted server got traffic after %lld ms",
                  (long long)back);
    ck_assert_int_eq(shm_breaker_state(&shm->servers[0]), SHM_BREAKER_CLOSED);
    char line[160];
    snprintf(line, sizeof(line), "[app] 127.0.0.1:%d circuit closed: the health check found it up",
             port1);
    ck_assert(tl_file_waitfor(px.errlog, line, 1000));
    shm_detach(shm);
    stop_all();
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("it_balance");
    TCase *tc = tcase_create("balance");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_kill_one_under_load);
    tcase_add_test(tc, t_failing_health_endpoint);
    tcase_add_test(tc, t_black_hole);
    tcase_add_test(tc, t_breaker_opens_and_trials);
    tcase_add_test(tc, t_all_down_is_503_at_once);
    tcase_add_test(tc, t_least_conn_avoids_slow_server);
    tcase_add_test(tc, t_backup_only_when_primaries_down);
    tcase_add_test(tc, t_retry_rules);
    tcase_add_test(tc, t_hash_is_sticky_and_shm_counts);
    tcase_add_test(tc, t_checker_respawned_state_kept);
    tcase_add_test(tc, t_breaker_cap);
    tcase_add_test(tc, t_restart_closes_breaker);
    suite_add_tcase(s, tc);
    return tl_run(s);
}
