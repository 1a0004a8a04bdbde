/*
 * it_lifecycle: reload under load, graceful stop, crash handling, log
 * reopening, pid file and -s, privilege drop, and the status pages, with
 * the real daemon, real upstreams and real signals.
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

static struct tl_proc app[4];
static struct tl_proxy px;

static void
stop_all(void)
{
    tl_stop_all(&px, app, 4);
}

/* Writes a config whose group serves apps <first> and <first+1> (0-based). */
static void
conf_pair(int first)
{
    tl_proxy_write_conf(&px,
                        "workers = 4\nupstream = app\naccess_log = off\n[upstream app]\n"
                        "server = 127.0.0.1:%d\nserver = 127.0.0.1:%d\n"
                        "health_interval = 200ms\nhealth_timeout = 200ms\n",
                        app[first].port, app[first + 1].port);
}

/*
 * A client process for the reload test: <n> requests, keep-alive or not.
 * Like real HTTP clients, a keep-alive client that finds its reused
 * connection closed before any byte of an answer (the server may close an
 * idle connection at any time, RFC 9112 9.3.1) sends the request again on
 * a new connection, once. Anything else counts as a failure. Exits with the
 * number of failures (capped at 255).
 */
static void
client_loop(int port, int n, bool keepalive)
{
    const char *req = keepalive ? "GET / HTTP/1.1\r\nHost: t\r\n\r\n"
                                : "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    int failures = 0, fd = -1;
    bool reused = false;
    for (int i = 0; i < n; i++) {
        struct tl_resp r;
        for (int attempt = 0; attempt < 2; attempt++) {
            if (fd == -1) {
                fd = tl_connect(port);
                reused = false;
            }
            int rc = tl_send_str(fd, req) == 0 ? tl_read_response(fd, false, &r) : -1;
            if (rc == 0) {
                bool keep = keepalive && strstr(r.head, "Connection: close") == NULL;
                if (tl_who(&r) == 0) {
                    fprintf(stderr, "client: status %d\n", r.status);
                    failures++;
                }
                tl_resp_free(&r);
                if (!keep) {
                    close(fd);
                    fd = -1;
                } else {
                    reused = true;
                }
                break;
            }
            close(fd);
            fd = -1;
            if (!reused || attempt == 1) {
                fprintf(stderr, "client: request %d failed (%s)\n", i,
                        reused ? "retried" : "fresh connection");
                failures++;
                break;
            }
        }
    }
    _exit(failures > 255 ? 255 : failures);
}

START_TEST(t_reload_under_load_loses_nothing)
{
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof(name), "a%d", i + 1);
        tl_app_start(&app[i], name);
    }
    tl_proxy_start(&px,
                   "workers = 4\nupstream = app\naccess_log = off\n[upstream app]\n"
                   "server = 127.0.0.1:%d\nserver = 127.0.0.1:%d\n"
                   "health_interval = 200ms\nhealth_timeout = 200ms\n",
                   app[0].port, app[1].port);
    /* two keep-alive and two one-request-per-connection clients, 1500 requests each */
    pid_t kids[4];
    for (int k = 0; k < 4; k++) {
        kids[k] = fork();
        ck_assert(kids[k] != -1);
        if (kids[k] == 0) {
            signal(SIGTERM, SIG_DFL);
            client_loop(px.port, 1500, k < 2);
        }
    }
    /* 20 reloads: the upstream set flips between {a1,a2} and {a3,a4}; one file is broken */
    int set = 0;
    for (int h = 1; h <= 20; h++) {
        usleep(100 * 1000);
        if (h == 10) {
            tl_proxy_write_conf(&px, "workers = 4\nupstream = app\n[upstream app]\n"
                                     "server = 127.0.0.1:30o1\n");
        } else if (h % 3 == 0) {
            set = set == 0 ? 2 : 0;
            conf_pair(set);
        } else {
            conf_pair(set);
        }
        ck_assert(kill(px.pid, SIGHUP) == 0);
        if (h == 10) {
            ck_assert(tl_file_waitfor(px.errlog, "reload failed, still serving", 2000));
            conf_pair(set);
            continue;
        }
        /* the new generation serves: every answer comes from the new set */
        char want[64];
        snprintf(want, sizeof(want), "reloaded: generation %d serving", h + 1 - (h > 10));
        ck_assert_msg(tl_file_waitfor(px.errlog, want, 3000), "no \"%s\"", want);
        for (int i = 0; i < 4; i++) {
            struct tl_resp r;
            ck_assert_int_eq(tl_request(px.port,
                                        "GET / HTTP/1.1\r\nHost: t\r\n"
                                        "Connection: close\r\n\r\n",
                                        &r),
                             200);
            int k = tl_who(&r);
            tl_resp_free(&r);
            ck_assert_msg(k == set + 1 || k == set + 2, "reload %d: a%d answered, want a%d/a%d", h,
                          k, set + 1, set + 2);
        }
    }
    int failed = 0;
    for (int k = 0; k < 4; k++) {
        int st;
        ck_assert(waitpid(kids[k], &st, 0) == kids[k]);
        ck_assert(WIFEXITED(st));
        failed += WEXITSTATUS(st);
    }
    fprintf(stderr, "20 reloads under 4 clients x 1500 requests: %d failed\n", failed);
    ck_assert_int_eq(failed, 0);
    ck_assert(tl_file_waitfor(px.errlog, "reload: [app] server added", 100));
    ck_assert(tl_file_waitfor(px.errlog, "reload: [app] server removed", 100));
    ck_assert(tl_file_waitfor(px.errlog,
                              "miniproxy.ini:9: [upstream app] server: bad port \"30o1\"", 100));
    stop_all();
}
END_TEST

START_TEST(t_reload_finishes_slow_request)
{
    tl_app_start(&app[0], "a1");
    tl_app_start(&app[1], "a2");
    tl_proxy_start(&px, "workers = 2\nupstream = app\n[upstream app]\nserver = 127.0.0.1:%d\n",
                   app[0].port);
    int fd = tl_connect(px.port);
    ck_assert(tl_send_str(fd, "GET /delay?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    usleep(200 * 1000);
    tl_proxy_write_conf(&px,
                        "workers = 2\nupstream = app\n[upstream app]\n"
                        "server = 127.0.0.1:%d\n",
                        app[1].port);
    ck_assert(kill(px.pid, SIGHUP) == 0);
    ck_assert(tl_file_waitfor(px.errlog, "reloaded: generation 2 serving", 3000));
    /* the old worker completes its 1.5 s answer, with Connection: close, then exits */
    struct tl_resp r;
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "delayed\n");
    char v[32];
    ck_assert(tl_resp_header(&r, "Connection", v, sizeof(v)));
    ck_assert_str_eq(v, "close");
    tl_resp_free(&r);
    close(fd);
    ck_assert(tl_file_waitfor(px.errlog, "generation 1 finished", 2000));
    ck_assert_int_eq(tl_request(px.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    ck_assert_str_eq(r.body, "hello from a2\n");
    tl_resp_free(&r);
    stop_all();
}
END_TEST

START_TEST(t_graceful_quit)
{
    pid_t kids[16];
    tl_app_start(&app[0], "a1");
    tl_proxy_start(&px,
                   "workers = 2\nupstream = app\nshutdown_timeout = 5s\n[upstream app]\n"
                   "server = 127.0.0.1:%d\n",
                   app[0].port);
    int n = tl_children(px.pid, kids, 16);
    int fd = tl_connect(px.port);
    ck_assert(tl_send_str(fd, "GET /delay?ms=1000 HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    /* an idle keep-alive client too: it is closed at once, not kept until its timeout */
    int idle = tl_connect(px.port);
    struct tl_resp r;
    ck_assert(tl_send_str(idle, "GET / HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    ck_assert_int_eq(tl_read_response(idle, false, &r), 0);
    tl_resp_free(&r);
    usleep(100 * 1000);
    int64_t t0 = tl_now_ms();
    ck_assert(kill(px.pid, SIGQUIT) == 0);
    char c;
    ck_assert_int_eq(recv(idle, &c, 1, 0), 0);
    ck_assert_int_lt(tl_now_ms() - t0, 500);
    close(idle);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert_str_eq(r.body, "delayed\n");
    tl_resp_free(&r);
    close(fd);
    int st;
    int64_t deadline = tl_now_ms() + 3000;
    while (waitpid(px.pid, &st, WNOHANG) == 0 && tl_now_ms() < deadline)
        usleep(10 * 1000);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    for (int i = 0; i < n; i++)
        ck_assert_msg(!tl_pid_alive(kids[i]), "child %d survived", kids[i]);
    px.pid = 0;
    stop_all();
}
END_TEST

START_TEST(t_crash_loop_backs_off)
{
    tl_app_start(&app[0], "a1");
    tl_proxy_start(&px,
                   "workers = 1\nupstream = app\n[upstream app]\nserver = 127.0.0.1:%d\n"
                   "health_check = off\n",
                   app[0].port);
    const struct shm *shm = shm_attach(px.pid);
    ck_assert(shm != NULL);
    /*
     * Kill the worker as soon as it appears, for 2 s: a crash loop. Each
     * process counts once: until the master reaps a killed worker, its pid
     * stays in the slot and kill() on the zombie still succeeds.
     */
    int kills = 0;
    pid_t last = 0;
    int64_t t0 = tl_now_ms();
    while (tl_now_ms() - t0 < 2000) {
        pid_t w = atomic_load(&shm->workers[0].pid);
        if (w > 0 && w != last && kill(w, SIGKILL) == 0) {
            kills++;
            last = w;
        }
        usleep(2 * 1000);
    }
    fprintf(stderr, "crash loop: %d respawns in 2 s\n", kills);
    /* 100, 200, 400, 800 ms of back-off: a handful of forks, not hundreds */
    ck_assert_int_le(kills, 8);
    ck_assert_int_ge(kills, 3);
    ck_assert(tl_file_waitfor(px.errlog, "crashing repeatedly, respawn in", 100));
    shm_detach(shm);
    /* and it recovers: the worker comes back and serves */
    struct tl_resp r;
    int64_t t1 = tl_now_ms();
    int st = 0;
    while (tl_now_ms() - t1 < 7000) {
        int fd = tl_connect(px.port);
        struct timeval tv = {0, 300 * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (tl_send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n") == 0 &&
            tl_read_response(fd, false, &r) == 0) {
            st = r.status;
            tl_resp_free(&r);
        }
        close(fd);
        if (st == 200)
            break;
    }
    ck_assert_int_eq(st, 200);
    stop_all();
}
END_TEST

START_TEST(t_usr1_reopens_logs)
{
    struct tl_resp r;
    char moved[256];
    tl_app_start(&app[0], "a1");
    tl_proxy_start(&px, "workers = 2\nupstream = app\n[upstream app]\nserver = 127.0.0.1:%d\n",
                   app[0].port);
    ck_assert_int_eq(tl_request(px.port, "GET /one HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    tl_resp_free(&r);
    ck_assert(tl_file_waitfor(px.acclog, "GET /one", 1000));
    /* logrotate: rename, then signal */
    snprintf(moved, sizeof(moved), "%s.1", px.acclog);
    ck_assert(rename(px.acclog, moved) == 0);
    ck_assert(kill(px.pid, SIGUSR1) == 0);
    ck_assert(tl_file_waitfor(px.errlog, "log files reopened", 2000));
    usleep(100 * 1000);
    ck_assert_int_eq(tl_request(px.port, "GET /two HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    tl_resp_free(&r);
    ck_assert(tl_file_waitfor(px.acclog, "GET /two", 2000));
    ck_assert_int_eq(tl_file_count(moved, "GET /two"), 0);
    ck_assert_int_eq(tl_file_count(px.acclog, "GET /one"), 0);
    stop_all();
}
END_TEST

START_TEST(t_pid_file_signals_and_user)
{
    char pidfile[256], args[512], out[1024];
    struct tl_resp r;
    tl_app_start(&app[0], "a1");
    tl_app_start(&app[1], "a2");
    /* the pid file lives in the test's temp dir, known only after start: a fixed name there */
    char dir[] = "/tmp/mp-pid-XXXXXX";
    ck_assert(mkdtemp(dir) != NULL);
    snprintf(pidfile, sizeof(pidfile), "%s/miniproxyd.pid", dir);
    tl_proxy_start(&px,
                   "workers = 2\nupstream = app\npid_file = %s\nuser = nobody\n[upstream app]\n"
                   "server = 127.0.0.1:%d\n",
                   pidfile, app[0].port);
    /* the pid file names the master */
    ck_assert_int_eq(tl_sh(out, sizeof(out), "cat %s", pidfile), 0);
    ck_assert_int_eq(atoi(out), px.pid);
    /* workers run as nobody, the master stays root (it binds and reopens) */
    pid_t kids[16];
    int n = tl_children(px.pid, kids, 16);
    ck_assert_int_ge(n, 3);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(
            tl_sh(out, sizeof(out), "awk '/^Uid:/{print $2}' /proc/%d/status", kids[i]), 0);
        ck_assert_int_eq(atoi(out), 65534);
    }
    ck_assert_int_eq(tl_request(px.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    tl_resp_free(&r);
    /* -s reload: a new upstream set */
    tl_proxy_write_conf(&px,
                        "workers = 2\nupstream = app\npid_file = %s\nuser = nobody\n"
                        "[upstream app]\nserver = 127.0.0.1:%d\n",
                        pidfile, app[1].port);
    snprintf(args, sizeof(args), "-s reload -c %s", px.conf);
    ck_assert_int_eq(tl_proxy_cmd(args, out, sizeof(out)), 0);
    ck_assert(tl_file_waitfor(px.errlog, "reloaded: generation 2 serving", 3000));
    ck_assert_int_eq(tl_request(px.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    ck_assert_str_eq(r.body, "hello from a2\n");
    tl_resp_free(&r);
    /* -s quit: graceful stop; the pid file goes with the master */
    snprintf(args, sizeof(args), "-s quit -c %s", px.conf);
    ck_assert_int_eq(tl_proxy_cmd(args, out, sizeof(out)), 0);
    int st;
    int64_t deadline = tl_now_ms() + 5000;
    while (waitpid(px.pid, &st, WNOHANG) == 0 && tl_now_ms() < deadline)
        usleep(10 * 1000);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    px.pid = 0;
    ck_assert(access(pidfile, F_OK) == -1);
    /* and -s with nobody to signal says so */
    ck_assert_int_ne(tl_proxy_cmd(args, out, sizeof(out)), 0);
    rmdir(dir);
    stop_all();
}
END_TEST

/* A number that follows <key> in <text>, or -1. */
static long
num_after(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    return p == NULL ? -1 : atol(p + strlen(key));
}

START_TEST(t_status_pages)
{
    struct tl_resp r;
    char line[256];
    tl_app_start(&app[0], "a1");
    tl_app_start(&app[1], "a2");
    tl_proxy_start(&px,
                   "workers = 3\nupstream = app\n[admin]\nlisten = 127.0.0.1:0\n"
                   "[upstream app]\nserver = 127.0.0.1:%d\nserver = 127.0.0.1:%d\n",
                   app[0].port, app[1].port);
    ck_assert_int_gt(px.admin_port, 0);
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(tl_request(px.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
        tl_resp_free(&r);
    }
    usleep(50 * 1000);
    /* HTML */
    ck_assert_int_eq(tl_request(px.admin_port, "GET /status HTTP/1.1\r\nHost: t\r\n\r\n", &r),
                     200);
    ck_assert(strstr(r.head, "text/html") != NULL);
    snprintf(line, sizeof(line), "127.0.0.1:%d", app[0].port);
    ck_assert(strstr(r.body, line) != NULL);
    ck_assert(strstr(r.body, "http-equiv=\"refresh\"") != NULL);
    tl_resp_free(&r);
    /* JSON: 5 requests to each server, all 2xx, none in flight */
    ck_assert_int_eq(tl_request(px.admin_port, "GET /status.json HTTP/1.1\r\nHost: t\r\n\r\n", &r),
                     200);
    ck_assert(strstr(r.head, "application/json") != NULL);
    snprintf(line, sizeof(line), "\"address\":\"127.0.0.1:%d\"", app[0].port);
    const char *srv = strstr(r.body, line);
    ck_assert_msg(srv != NULL, "%s", r.body);
    ck_assert_int_eq(num_after(srv, "\"requests\":"), 5);
    ck_assert(strstr(r.body, "\"health\":\"up\"") != NULL);
    tl_resp_free(&r);
    /* Prometheus */
    ck_assert_int_eq(tl_request(px.admin_port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", &r),
                     200);
    snprintf(line, sizeof(line),
             "miniproxyd_upstream_requests_total{group=\"app\",server=\"127.0.0.1:%d\"} ",
             app[1].port);
    ck_assert_msg(num_after(r.body, line) == 5, "%s", r.body);
    ck_assert(strstr(r.body, "# TYPE miniproxyd_upstream_requests_total counter") != NULL);
    tl_resp_free(&r);
    ck_assert_int_eq(tl_request(px.admin_port, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", &r), 404);
    tl_resp_free(&r);
    /* the proxy listener does not serve them: the upstream gets /metrics */
    ck_assert_int_eq(tl_request(px.port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    ck_assert_str_eq(r.body, "hello from a1\n");
    tl_resp_free(&r);
    stop_all();
}
END_TEST

/*
 * Issue 10, item 5: a listener removed by a reload stops accepting. Before,
 * every child inherited every listener and memfd and closed none, so the
 * new generation's workers and checker kept the removed port in LISTEN:
 * the kernel completed handshakes nobody would serve.
 */
START_TEST(t_reload_removes_listener)
{
    struct tl_resp r;
    tl_app_start(&app[0], "a1");
    int second = tl_free_port();
    tl_proxy_start(&px,
                   "workers = 2\nlisten = 127.0.0.1:%d\nupstream = app\n[upstream app]\n"
                   "server = 127.0.0.1:%d\n",
                   second, app[0].port);
    ck_assert_int_eq(tl_request(second, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    tl_resp_free(&r);
    tl_proxy_write_conf(
        &px, "workers = 2\nupstream = app\n[upstream app]\nserver = 127.0.0.1:%d\n", app[0].port);
    ck_assert(kill(px.pid, SIGHUP) == 0);
    ck_assert(tl_file_waitfor(px.errlog, "reloaded: generation 2 serving", 3000));
    char closed[96];
    snprintf(closed, sizeof(closed), "closed listener proxy 127.0.0.1:%d", second);
    ck_assert_msg(tl_file_waitfor(px.errlog, closed, 5000), "no \"%s\"", closed);
    /* nobody holds it any more: refused, not left hanging */
    ck_assert_int_eq(tl_connect_errno(second), ECONNREFUSED);
    ck_assert(!tl_port_listening(second));
    /* the children hold no memfd, and map their own generation's table only */
    pid_t kids[16];
    int n = tl_children(px.pid, kids, 16);
    ck_assert_int_ge(n, 3);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(tl_fd_count(kids[i], "memfd:miniproxyd-shm"), 0);
        ck_assert_int_eq(tl_maps_count(kids[i], "memfd:miniproxyd-shm"), 1);
    }
    ck_assert_int_eq(tl_request(px.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    tl_resp_free(&r);
    stop_all();
}
END_TEST

/* A second proxy's paths (the first is px), made as tl_proxy_start() makes them. */
static void
other_paths(struct tl_proxy *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->dir, sizeof(o->dir), "/tmp/mp-test-XXXXXX");
    ck_assert(mkdtemp(o->dir) != NULL);
    snprintf(o->conf, sizeof(o->conf), "%s/miniproxy.ini", o->dir);
    snprintf(o->errlog, sizeof(o->errlog), "%s/error.log", o->dir);
    snprintf(o->acclog, sizeof(o->acclog), "%s/access.log", o->dir);
}

/*
 * Issue 10, item 4: a second instance on an address the first listens on
 * fails at start, instead of silently taking part of its traffic (both
 * bind with SO_REUSEPORT as the same user, so bind() alone never failed);
 * and a reload that adds such an address is refused, the old config
 * serving on.
 */
START_TEST(t_address_in_use)
{
    struct tl_proxy other;
    struct tl_resp r;
    char out[4096], want[96];
    tl_app_start(&app[0], "a1");
    tl_proxy_start(&px, "workers = 2\nupstream = app\n[upstream app]\nserver = 127.0.0.1:%d\n",
                   app[0].port);
    snprintf(want, sizeof(want), "listen 127.0.0.1:%d: address already in use", px.port);

    other_paths(&other);
    tl_proxy_write_conf(&other,
                        "workers = 2\nlisten = 127.0.0.1:%d\nupstream = app\n[upstream app]\n"
                        "server = 127.0.0.1:%d\n",
                        px.port, app[0].port);
    /* bounded: before the fix it started and served */
    int rc = tl_sh(out, sizeof(out), "timeout 5 %s/miniproxyd -c %s 2>&1", tl_build(), other.conf);
    ck_assert_msg(rc == 1, "second instance: exit %d", rc);
    ck_assert_msg(tl_file_count(other.errlog, want) == 1, "no \"%s\" in %s", want, other.errlog);

    /* a running instance asked to add it on reload refuses, and serves on */
    tl_proxy_start(&other, "workers = 2\nupstream = app\n[upstream app]\nserver = 127.0.0.1:%d\n",
                   app[0].port);
    tl_proxy_write_conf(&other,
                        "workers = 2\nlisten = 127.0.0.1:%d\nupstream = app\n[upstream app]\n"
                        "server = 127.0.0.1:%d\n",
                        px.port, app[0].port);
    ck_assert(kill(other.pid, SIGHUP) == 0);
    ck_assert(tl_file_waitfor(other.errlog, "reload failed, still serving generation 1", 3000));
    ck_assert_int_eq(tl_file_count(other.errlog, want), 1);
    ck_assert_int_eq(tl_request(other.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    tl_resp_free(&r);
    ck_assert_int_eq(tl_request(px.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    tl_resp_free(&r);
    tl_stop(other.pid);
    stop_all();
}
END_TEST

/*
 * Issue 10, item 9: a reload that changes pid_file does not move it (as
 * nginx): it says so, and at exit the master removes the file it wrote.
 * Before, it removed the current config's file and left the first behind.
 */
START_TEST(t_reload_keeps_pid_file)
{
    char first[256], second[256], out[64];
    tl_app_start(&app[0], "a1");
    char dir[] = "/tmp/mp-pid-XXXXXX";
    ck_assert(mkdtemp(dir) != NULL);
    snprintf(first, sizeof(first), "%s/first.pid", dir);
    snprintf(second, sizeof(second), "%s/second.pid", dir);
    tl_proxy_start(&px,
                   "workers = 2\nupstream = app\npid_file = %s\n[upstream app]\n"
                   "server = 127.0.0.1:%d\n",
                   first, app[0].port);
    tl_proxy_write_conf(&px,
                        "workers = 2\nupstream = app\npid_file = %s\n[upstream app]\n"
                        "server = 127.0.0.1:%d\n",
                        second, app[0].port);
    ck_assert(kill(px.pid, SIGHUP) == 0);
    ck_assert(tl_file_waitfor(px.errlog, "reloaded: generation 2 serving", 3000));
    ck_assert(access(second, F_OK) == -1);
    ck_assert_int_eq(tl_sh(out, sizeof(out), "cat %s", first), 0);
    ck_assert_int_eq(atoi(out), px.pid);
    int st = tl_stop(px.pid);
    px.pid = 0;
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ck_assert_msg(access(first, F_OK) == -1, "%s left behind", first);
    ck_assert(access(second, F_OK) == -1);
    ck_assert_int_eq(tl_file_count(px.errlog, "takes effect at the next start; keeping"), 1);
    rmdir(dir);
    stop_all();
}
END_TEST

/* The value of the /metrics series <series> (name and labels, then a space), or -1. */
static long
metric(int admin_port, const char *series)
{
    struct tl_resp r;
    char line[256];
    ck_assert_int_eq(tl_request(admin_port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    snprintf(line, sizeof(line), "\n%s", series); /* a sample line, not its # HELP */
    long v = num_after(r.body, line);
    tl_resp_free(&r);
    return v;
}

/*
 * Issue 10, item 10: counters survive reloads (Prometheus reads a drop as
 * a restart): those of a server that stays, and the workers' totals.
 * Before, the new generation's table started from zero.
 */
START_TEST(t_reload_keeps_counters)
{
    struct tl_resp r;
    char srv[128];
    tl_app_start(&app[0], "a1");
    tl_app_start(&app[1], "a2");
    const char *conf = "workers = 2\nupstream = app\n[admin]\nlisten = 127.0.0.1:0\n"
                       "[upstream app]\nserver = 127.0.0.1:%d\n%s";
    tl_proxy_start(&px, conf, app[0].port, "");
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(tl_request(px.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
        tl_resp_free(&r);
    }
    snprintf(srv, sizeof(srv),
             "miniproxyd_upstream_requests_total{group=\"app\",server=\"127.0.0.1:%d\"} ",
             app[0].port);
    ck_assert_int_eq(metric(px.admin_port, srv), 10);
    long spawned = metric(px.admin_port, "miniproxyd_pool_spawned_total ");
    ck_assert_int_ge(spawned, 2);
    /* the server stays, another one joins */
    char more[64];
    snprintf(more, sizeof(more), "server = 127.0.0.1:%d\n", app[1].port);
    tl_proxy_write_conf(&px, conf, app[0].port, more);
    ck_assert(kill(px.pid, SIGHUP) == 0);
    ck_assert(tl_file_waitfor(px.errlog, "reloaded: generation 2 serving", 3000));
    ck_assert(tl_file_waitfor(px.errlog, "generation 1 finished", 5000));
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(tl_request(px.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
        tl_resp_free(&r);
    }
    long a1 = metric(px.admin_port, srv);
    snprintf(srv, sizeof(srv),
             "miniproxyd_upstream_requests_total{group=\"app\",server=\"127.0.0.1:%d\"} ",
             app[1].port);
    long a2 = metric(px.admin_port, srv);
    ck_assert_msg(a1 >= 10 && a1 + a2 == 14, "a1 %ld, a2 %ld", a1, a2);
    /* a worker counts a request after its response is out: give the last one a moment */
    long served = 0;
    for (int64_t t = tl_now_ms();
         (served = metric(px.admin_port, "miniproxyd_worker_requests_total ")) < 14 &&
         tl_now_ms() - t < 2000;)
        usleep(10 * 1000);
    ck_assert_int_eq(served, 14);
    ck_assert_int_ge(metric(px.admin_port, "miniproxyd_worker_connections_total "), 14);
    ck_assert_int_ge(metric(px.admin_port, "miniproxyd_pool_spawned_total "), spawned + 2);
    stop_all();
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("it_lifecycle");
    TCase *tc = tcase_create("lifecycle");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, t_reload_under_load_loses_nothing);
    tcase_add_test(tc, t_reload_finishes_slow_request);
    tcase_add_test(tc, t_graceful_quit);
    tcase_add_test(tc, t_crash_loop_backs_off);
    tcase_add_test(tc, t_usr1_reopens_logs);
    tcase_add_test(tc, t_pid_file_signals_and_user);
    tcase_add_test(tc, t_status_pages);
    tcase_add_test(tc, t_reload_removes_listener);
    tcase_add_test(tc, t_address_in_use);
    tcase_add_test(tc, t_reload_keeps_pid_file);
    tcase_add_test(tc, t_reload_keeps_counters);
    suite_add_tcase(s, tc);
    return tl_run(s);
}
