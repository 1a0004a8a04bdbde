/*
 * it_pool: prefork under pressure. The adaptive pool growing and shrinking,
 * fair keep-alive (hundreds of idle keep-alive clients do not starve a new
 * one), slow clients (minimum rates, per-address limit), with the real
 * daemon and real sockets.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm.h"
#include "testlib.h"

#define GET_ROOT "GET / HTTP/1.1\r\nHost: t\r\n\r\n"

static struct tl_proc app[1];
static struct tl_proxy px;

static void
stop_all(void)
{
    tl_stop_all(&px, app, 1);
}

/* Live proxy workers on the scoreboard. */
static int
live_workers(const struct shm *shm)
{
    int n = 0;
    for (uint32_t i = 0; i < shm->nworkers; i++)
        n += atomic_load(&shm->workers[i].pid) > 0;
    return n;
}

/* A connection to the proxy from source address <src> (127.0.0.x). */
static int
connect_from(const char *src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert(fd != -1);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &a.sin_addr);
    ck_assert_msg(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "bind %s: %s", src,
                  strerror(errno));
    struct sockaddr_in d = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    d.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(connect(fd, (struct sockaddr *)&d, sizeof(d)) == 0, "connect: %s",
                  strerror(errno));
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Time for a fresh client to get "/" answered, in ms (-1: no answer). */
static int64_t
probe_ms(void)
{
    struct tl_resp r;
    int64_t t0 = tl_now_ms();
    int st = tl_request(px.port, GET_ROOT, &r);
    int64_t dt = tl_now_ms() - t0;
    tl_resp_free(&r);
    return st == 200 ? dt : -1;
}

static void
more_files(void)
{
    struct rlimit rl = {4096, 4096};
    setrlimit(RLIMIT_NOFILE, &rl);
}

START_TEST(t_fair_keepalive)
{
    more_files();
    tl_app_start(&app[0], "a1");
    tl_proxy_start(&px,
                   "workers = auto\nmin_workers = 4\nmax_workers = 32\nmin_spare = 2\n"
                   "max_spare = 4\nkeepalive_timeout = 60s\naccess_log = off\nupstream = app\n"
                   "[admin]\nlisten = 127.0.0.1:0\n[upstream app]\nserver = 127.0.0.1:%d\n",
                   app[0].port);
    /* 300 keep-alive clients: one request each, then they sit idle */
    static int fds[300];
    for (int i = 0; i < 300; i++) {
        struct tl_resp r;
        fds[i] = tl_connect(px.port);
        ck_assert(tl_send_str(fds[i], GET_ROOT) == 0);
        ck_assert_msg(tl_read_response(fds[i], false, &r) == 0, "idle client %d not served", i);
        ck_assert_int_eq(r.status, 200);
        tl_resp_free(&r);
    }
    const struct shm *shm = shm_attach(px.pid);
    ck_assert(shm != NULL);
    ck_assert_int_le(live_workers(shm), 32);
    /* a new client is answered at once, again and again */
    int64_t worst = 0;
    for (int i = 0; i < 20; i++) {
        int64_t dt = probe_ms();
        ck_assert_msg(dt >= 0, "probe %d failed", i);
        if (dt > worst)
            worst = dt;
    }
    fprintf(stderr,
            "fair keep-alive: 300 idle clients, %d workers, worst new client %lld ms, "
            "%llu idle connections closed\n",
            live_workers(shm), (long long)worst, (unsigned long long)atomic_load(&shm->evictions));
    ck_assert_int_lt(worst, 100);
    ck_assert_int_gt(atomic_load(&shm->evictions), 0);
    /* and the status page says so */
    struct tl_resp r;
    char want[96];
    ck_assert_int_eq(tl_request(px.admin_port, "GET /status.json HTTP/1.1\r\nHost: t\r\n\r\n", &r),
                     200);
    snprintf(want, sizeof(want), "\"keepalive_evictions\":%llu",
             (unsigned long long)atomic_load(&shm->evictions));
    ck_assert_msg(strstr(r.body, want) != NULL, "%s", r.body);
    tl_resp_free(&r);
    ck_assert_int_eq(tl_request(px.admin_port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", &r),
                     200);
    ck_assert(strstr(r.body, "miniproxyd_keepalive_evictions_total ") != NULL);
    ck_assert(strstr(r.body, "miniproxyd_pool_spawned_total ") != NULL);
    ck_assert(strstr(r.body, "miniproxyd_pool_nudges_total ") != NULL);
    tl_resp_free(&r);
    shm_detach(shm);
    for (int i = 0; i < 300; i++)
        close(fds[i]);
    stop_all();
}
END_TEST

START_TEST(t_pool_grows_and_shrinks)
{
    tl_app_start(&app[0], "a1");
    tl_proxy_start(&px,
                   "workers = auto\nmin_workers = 2\nmax_workers = 10\nmin_spare = 1\n"
                   "max_spare = 2\nupstream = app\n[upstream app]\nserver = 127.0.0.1:%d\n",
                   app[0].port);
    const struct shm *shm = shm_attach(px.pid);
    ck_assert(shm != NULL);
    ck_assert_int_le(live_workers(shm), 3);
    /* 14 concurrent slow requests: the pool grows to max_workers, no further */
    pid_t kids[14];
    for (int k = 0; k < 14; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            signal(SIGTERM, SIG_DFL);
            struct tl_resp r;
            int st = tl_request(px.port, "GET /delay?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
            _exit(st == 200 ? 0 : 1);
        }
    }
    int peak = 0;
    int64_t t0 = tl_now_ms(), full_ms = -1;
    while (tl_now_ms() - t0 < 1400) {
        int n = live_workers(shm);
        if (n > peak)
            peak = n;
        if (n == 10 && full_ms == -1)
            full_ms = tl_now_ms() - t0;
        usleep(2 * 1000);
    }
    int failed = 0;
    for (int k = 0; k < 14; k++) {
        int st;
        waitpid(kids[k], &st, 0);
        failed += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    ck_assert_int_eq(failed, 0); /* the last four waited in the accept queue, then were served */
    ck_assert_int_eq(peak, 10);
    ck_assert(tl_file_waitfor(px.errlog, "max_workers (10) reached", 100));
    ck_assert_int_eq(tl_file_count(px.errlog, "max_workers (10) reached"), 1);
    /* idle again: spare workers are retired, down to max_spare idle */
    int64_t t1 = tl_now_ms();
    while (live_workers(shm) > 3 && tl_now_ms() - t1 < 5000)
        usleep(50 * 1000);
    fprintf(stderr,
            "pool: peak %d workers (all 10 after %lld ms), %d after the load, spawned %llu, "
            "retired %llu, nudged %llu times\n",
            peak, (long long)full_ms, live_workers(shm),
            (unsigned long long)atomic_load(&shm->spawned),
            (unsigned long long)atomic_load(&shm->retired),
            (unsigned long long)atomic_load(&shm->nudges));
    ck_assert_int_le(live_workers(shm), 3);
    ck_assert_int_ge(live_workers(shm), 2);
    ck_assert_int_ge(atomic_load(&shm->retired), 7);
    /*
     * The workers that took the burst found min_spare or fewer idle ones
     * behind them and woke the master instead of leaving the burst waiting
     * for its next tick.
     */
    ck_assert_int_gt(atomic_load(&shm->nudges), 0);
    ck_assert_int_ge(probe_ms(), 0);
    shm_detach(shm);
    stop_all();
}
END_TEST

START_TEST(t_slow_clients)
{
    more_files();
    tl_app_start(&app[0], "a1");
    tl_proxy_start(&px,
                   "workers = auto\nmin_workers = 4\nmax_workers = 64\nmin_spare = 2\n"
                   "max_spare = 8\nmax_conns_per_ip = 24\nclient_header_min_rate = 256\n"
                   "access_log = off\nupstream = app\n[upstream app]\nserver = 127.0.0.1:%d\n",
                   app[0].port);
    pid_t attacker = tl_slowloris(px.port, 200, 2000, 6000);
    usleep(300 * 1000);
    /* a normal client, every 200 ms for 5 s: always answered within a second */
    int64_t worst = 0, t0 = tl_now_ms();
    int probes = 0;
    while (tl_now_ms() - t0 < 5000) {
        int64_t dt = probe_ms();
        ck_assert_msg(dt >= 0, "normal client not served at %lld ms",
                      (long long)(tl_now_ms() - t0));
        if (dt > worst)
            worst = dt;
        probes++;
        usleep(200 * 1000);
    }
    /* a slow but honest upload (about 4 KiB/s, well above client_body_min_rate) completes */
    int fd = tl_connect(px.port);
    ck_assert(tl_send_str(fd, "POST /sum HTTP/1.1\r\nHost: t\r\nContent-Length: 8192\r\n\r\n") ==
              0);
    char chunk[512];
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 16; i++) {
        ck_assert(tl_send(fd, chunk, sizeof(chunk)) == 0);
        usleep(125 * 1000);
    }
    struct tl_resp r;
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert(strncmp(r.body, "len=8192 ", 9) == 0);
    tl_resp_free(&r);
    close(fd);
    const struct shm *shm = shm_attach(px.pid);
    ck_assert(shm != NULL);
    fprintf(stderr,
            "slowloris x200: %d probes, worst %lld ms; %llu cut for slowness, %llu "
            "refused by max_conns_per_ip\n",
            probes, (long long)worst, (unsigned long long)atomic_load(&shm->slow_rejects),
            (unsigned long long)atomic_load(&shm->ip_rejects));
    ck_assert_int_lt(worst, 1000);
    ck_assert_int_gt(atomic_load(&shm->slow_rejects), 0);
    ck_assert_int_gt(atomic_load(&shm->ip_rejects), 0);
    shm_detach(shm);
    kill(attacker, SIGKILL);
    waitpid(attacker, NULL, 0);
    /* nothing wedged: still serving */
    ck_assert_int_ge(probe_ms(), 0);
    stop_all();
}
END_TEST

START_TEST(t_head_min_rate_and_ip_limit)
{
    tl_app_start(&app[0], "a1");
    tl_proxy_start(&px,
                   "workers = 8\nmax_conns_per_ip = 3\nclient_header_min_rate = 256\n"
                   "upstream = app\n[upstream app]\nserver = 127.0.0.1:%d\n",
                   app[0].port);
    /* a head trickled one byte every 300 ms is cut with 408 after its first second or so */
    int fd = tl_connect(px.port);
    int64_t t0 = tl_now_ms();
    struct tl_resp r;
    const char *head = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    for (size_t i = 0; head[i] != '\0'; i++) {
        if (tl_send(fd, head + i, 1) != 0)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 300) == 1)
            break;
    }
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert_int_eq(r.status, 408);
    int64_t dt = tl_now_ms() - t0;
    ck_assert_msg(dt >= 900 && dt < 2500, "cut after %lld ms", (long long)dt);
    tl_resp_free(&r);
    close(fd);
    ck_assert(tl_file_waitfor(px.errlog, "request head too slow", 1000));
    /* a body trickled at a few bytes a second is cut the same way */
    fd = tl_connect(px.port);
    t0 = tl_now_ms();
    ck_assert(tl_send_str(fd, "POST /sum HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n") ==
              0);
    for (int i = 0; i < 40; i++) {
        if (tl_send(fd, "x", 1) != 0)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) == 1)
            break;
    }
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert_int_eq(r.status, 408);
    dt = tl_now_ms() - t0;
    ck_assert_msg(dt >= 900 && dt < 2500, "body cut after %lld ms", (long long)dt);
    tl_resp_free(&r);
    close(fd);
    ck_assert(tl_file_waitfor(px.errlog, "client request body too slow", 1000));
    /* three connections from 127.0.0.2 are fine, the fourth is refused; 127.0.0.1 is not */
    int held[3];
    for (int i = 0; i < 3; i++) {
        held[i] = connect_from("127.0.0.2", px.port);
        ck_assert(tl_send_str(held[i], GET_ROOT) == 0);
        ck_assert_int_eq(tl_read_response(held[i], false, &r), 0);
        ck_assert_int_eq(r.status, 200);
        tl_resp_free(&r);
    }
    int extra = connect_from("127.0.0.2", px.port);
    ck_assert(tl_send_str(extra, GET_ROOT) == 0);
    ck_assert_int_eq(tl_read_response(extra, false, &r), 0);
    ck_assert_int_eq(r.status, 503);
    tl_resp_free(&r);
    close(extra);
    ck_assert_int_ge(probe_ms(), 0);
    /* one closes: room again */
    close(held[0]);
    usleep(100 * 1000);
    extra = connect_from("127.0.0.2", px.port);
    ck_assert(tl_send_str(extra, GET_ROOT) == 0);
    ck_assert_int_eq(tl_read_response(extra, false, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tl_resp_free(&r);
    close(extra);
    close(held[1]);
    close(held[2]);
    stop_all();
}
END_TEST

/* Voluntary context switches (sleeps) of all workers of the scoreboard so far. */
static long
worker_sleeps(const struct shm *shm)
{
    long sum = 0;
    for (uint32_t i = 0; i < shm->nworkers; i++) {
        int pid = atomic_load(&shm->workers[i].pid);
        char path[64], line[128];
        snprintf(path, sizeof(path), "/proc/%d/status", pid);
        FILE *f = pid > 0 ? fopen(path, "r") : NULL;
        if (f == NULL)
            continue;
        while (fgets(line, sizeof(line), f) != NULL)
            if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0)
                sum += atol(line + 24);
        fclose(f);
    }
    return sum;
}

/*
 * Two listeners (say 80 and 443): a worker waits for a client in poll()
 * over both, and poll() wakes every process that waits on a socket. Only
 * the holder of the accept lock polls, so a new connection wakes one idle
 * worker, not all 16. Before the lock, every connection woke every idle
 * worker (about 16 sleeps each; with 300 workers `Connection: close` fell
 * to a tenth). A holder killed with SIGKILL does not leave the listeners
 * unwatched: the master frees the lock when it reaps it. A graceful stop
 * reaches the workers asleep on the lock.
 */
START_TEST(t_two_listeners_wake_one_worker)
{
    enum { WORKERS = 16, CONNS = 40 };
    struct tl_resp r;
    int second = tl_free_port();

    tl_app_start(&app[0], "a1");
    tl_proxy_start(&px,
                   "workers = %d\nlisten = 127.0.0.1:%d\nupstream = app\n"
                   "[upstream app]\nhealth_check = off\nserver = 127.0.0.1:%d\n",
                   WORKERS, second, app[0].port);
    const struct shm *shm = shm_attach(px.pid);
    ck_assert(shm != NULL);
    int64_t t0 = tl_now_ms();
    while (atomic_load(&shm->idle_workers) < WORKERS && tl_now_ms() - t0 < 5000)
        usleep(20 * 1000);
    ck_assert_int_eq(atomic_load(&shm->idle_workers), WORKERS);
    usleep(200 * 1000);
    long before = worker_sleeps(shm);
    for (int i = 0; i < CONNS; i++) {
        ck_assert_int_eq(tl_request(i % 2 ? second : px.port,
                                    "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                                    &r),
                         200);
        tl_resp_free(&r);
    }
    usleep(100 * 1000);
    double per = (double)(worker_sleeps(shm) - before) / CONNS;
    printf("two listeners, %d idle workers: %.1f worker sleeps per connection\n", WORKERS, per);
    ck_assert_msg(per < WORKERS / 2.0, "%.1f sleeps per connection: idle workers all woke", per);
    /* the holder dies: the master frees the lock, both listeners keep serving */
    pid_t holder = atomic_load(&shm->accept_lock);
    ck_assert_int_gt(holder, 0);
    ck_assert_int_eq(kill(holder, SIGKILL), 0);
    t0 = tl_now_ms();
    while (atomic_load(&shm->accept_lock) == holder && tl_now_ms() - t0 < 5000)
        usleep(10 * 1000);
    ck_assert_int_ne(atomic_load(&shm->accept_lock), holder);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(tl_request(i % 2 ? second : px.port, GET_ROOT, &r), 200);
        tl_resp_free(&r);
    }
    shm_detach(shm);
    /* a graceful stop: the idle workers asleep on the lock hear it and go at once */
    ck_assert_int_eq(kill(px.pid, SIGQUIT), 0);
    int st;
    t0 = tl_now_ms();
    while (waitpid(px.pid, &st, WNOHANG) == 0 && tl_now_ms() - t0 < 10000)
        usleep(10 * 1000);
    int64_t dt = tl_now_ms() - t0;
    printf("two listeners: graceful stop with %d idle workers took %lld ms\n", WORKERS,
           (long long)dt);
    ck_assert_msg(dt < 3000, "graceful stop took %lld ms", (long long)dt);
    stop_all(); /* reaped already: this only forgets it */
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("it_pool");
    TCase *tc = tcase_create("pool");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_fair_keepalive);
    tcase_add_test(tc, t_pool_grows_and_shrinks);
    tcase_add_test(tc, t_slow_clients);
    tcase_add_test(tc, t_head_min_rate_and_ip_limit);
    tcase_add_test(tc, t_two_listeners_wake_one_worker);
    suite_add_tcase(s, tc);
    return tl_run(s);
}
