/*
 * it_proxy: the daemon end to end. Each test starts real testapp upstreams
 * and the real miniproxyd on ephemeral ports, drives it with curl or raw
 * sockets, and stops everything by PID.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm.h"
#include "testlib.h"
#include "testpattern.h"

#define REQ(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"

static struct tl_proc app[3];
static struct tl_proxy px;

/* Three upstreams (a1, a2, a3) and the proxy with <workers> and extra group keys. */
static void
start3(int workers, const char *proxy_keys, const char *group_keys)
{
    tl_app_start(&app[0], "a1");
    tl_app_start(&app[1], "a2");
    tl_app_start(&app[2], "a3");
    /*
     * Health checks and the breaker are it_balance's subject: here probes would
     * skew upstream counts, and the failures these tests provoke would open it.
     */
    tl_proxy_start(
        &px,
        "workers = %d\nupstream = app\n%s\n[upstream app]\nhealth_check = off\n"
        "max_fails = 0\nserver = 127.0.0.1:%d\nserver = 127.0.0.1:%d\nserver = 127.0.0.1:%d\n%s\n",
        workers, proxy_keys, app[0].port, app[1].port, app[2].port, group_keys);
}

/* One upstream and the proxy. */
static void
start1(int workers, const char *proxy_keys, const char *group_keys)
{
    tl_app_start(&app[0], "a1");
    tl_proxy_start(&px,
                   "workers = %d\nupstream = app\n%s\n[upstream app]\nhealth_check = off\n"
                   "max_fails = 0\nserver = 127.0.0.1:%d\n%s\n",
                   workers, proxy_keys, app[0].port, group_keys);
}

static void
stop_all(void)
{
    tl_stop_all(&px, app, 3);
}

/* ---- balancing and rewriting ---------------------------------------------------------- */

START_TEST(t_round_robin_with_curl)
{
    char out[256];
    int seen[3] = {0};
    start3(4, "", "");
    for (int i = 0; i < 9; i++) {
        ck_assert_int_eq(tl_sh(out, sizeof(out), "curl -s http://127.0.0.1:%d/", px.port), 0);
        int k = -1;
        ck_assert_msg(sscanf(out, "hello from a%d", &k) == 1, "got %s", out);
        seen[k - 1]++;
    }
    /* One shared cursor: each instance answers exactly its share, whichever worker took it. */
    ck_assert_int_eq(seen[0], 3);
    ck_assert_int_eq(seen[1], 3);
    ck_assert_int_eq(seen[2], 3);
    ck_assert(tl_file_waitfor(px.acclog, "\"GET / HTTP/1.1\" 200 14 upstream=127.0.0.1:", 2000));
    stop_all();
}
END_TEST

START_TEST(t_weighted)
{
    tl_app_start(&app[0], "a1");
    tl_app_start(&app[1], "a2");
    tl_proxy_start(&px,
                   "workers = 2\nupstream = app\n[upstream app]\nserver = 127.0.0.1:%d weight=3\n"
                   "server = 127.0.0.1:%d\n",
                   app[0].port, app[1].port);
    int seen[2] = {0};
    for (int i = 0; i < 40; i++) {
        struct tl_resp r;
        ck_assert_int_eq(tl_request(px.port, REQ("/"), &r), 200);
        seen[r.body[strlen("hello from a")] - '1']++;
        tl_resp_free(&r);
    }
    ck_assert_int_eq(seen[0], 30);
    ck_assert_int_eq(seen[1], 10);
    stop_all();
}
END_TEST

START_TEST(t_request_rewrite)
{
    struct tl_resp r;
    char want[128];
    start1(2, "", "");
    ck_assert_int_eq(
        tl_request(
            px.port,
            "GET /headers HTTP/1.1\r\nHost: example.test\r\nConnection: keep-alive, X-Hop\r\n"
            "X-Hop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: websocket\r\n"
            "Proxy-Connection: keep-alive\r\nX-Forwarded-For: 10.9.8.7\r\n"
            "X-Forwarded-Proto: https\r\nX-Keep: yes\r\n\r\n",
            &r),
        200);
    snprintf(want, sizeof(want), "Host: 127.0.0.1:%d\r\n", app[0].port);
    ck_assert_msg(strstr(r.body, want) != NULL, "%s", r.body);
    ck_assert_msg(strncmp(r.body, "GET /headers HTTP/1.1\r\n", 23) == 0, "%s", r.body);
    ck_assert(strstr(r.body, "X-Forwarded-For: 10.9.8.7, 127.0.0.1\r\n") != NULL);
    ck_assert(strstr(r.body, "X-Forwarded-Proto: http\r\n") != NULL);
    ck_assert(strstr(r.body, "X-Forwarded-Host: example.test\r\n") != NULL);
    ck_assert(strstr(r.body, "X-Keep: yes\r\n") != NULL);
    const char *gone[] = {"X-Hop",      "Keep-Alive", "TE:", "Upgrade", "Proxy-Connection",
                          "Connection", "https"};
    for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
        ck_assert_msg(strstr(r.body, gone[i]) == NULL, "%s forwarded:\n%s", gone[i], r.body);
    tl_resp_free(&r);
    stop_all();
}
END_TEST

START_TEST(t_preserve_host)
{
    struct tl_resp r;
    start1(2, "", "preserve_host = yes");
    ck_assert_int_eq(
        tl_request(px.port, "GET /headers HTTP/1.1\r\nHost: example.test:81\r\n\r\n", &r), 200);
    ck_assert_msg(strstr(r.body, "\r\nHost: example.test:81\r\n") != NULL, "%s", r.body);
    tl_resp_free(&r);
    /* absolute-form: the authority replaces Host, the path is sent in origin-form */
    ck_assert_int_eq(
        tl_request(px.port,
                   "GET http://other.test/headers?x=1 HTTP/1.1\r\nHost: example.test\r\n\r\n", &r),
        200);
    ck_assert_msg(strncmp(r.body, "GET /headers?x=1 HTTP/1.1\r\n", 27) == 0, "%s", r.body);
    ck_assert_msg(strstr(r.body, "\r\nHost: other.test\r\n") != NULL, "%s", r.body);
    tl_resp_free(&r);
    stop_all();
}
END_TEST

/* ---- bodies ----------------------------------------------------------------------------- */

/* Body bytes the proxy moved by splice() so far. */
static uint64_t
spliced_now(void)
{
    const struct shm *shm = shm_attach(px.pid);
    ck_assert(shm != NULL);
    uint64_t n = atomic_load(&shm->spliced);
    shm_detach(shm);
    return n;
}

/* The loop tests below run once with splice = on (_i 0), the default, and once with it off. */
static const char *const splice_keys[] = {"", "splice = off\n"};

/*
 * A 64 MiB response, framed each way, reaches the client whole. With
 * splice = on, those that need no re-framing (Content-Length, and a
 * close-delimited body to an HTTP/1.0 client) go by splice(); chunked ones
 * and a close-delimited body re-chunked for an HTTP/1.1 client are copied.
 */
START_TEST(t_download_integrity)
{
    static const struct {
        const char *mode, *curl;
        bool spliced; /* with splice = on */
    } cases[] = {
        {"length", "", true},
        {"chunked", "", false},
        {"close", "", false},   /* re-chunked for HTTP/1.1 */
        {"close", "-0", true},  /* close-delimited for HTTP/1.0, as it came */
        {"length", "-0", true}, /* Content-Length to HTTP/1.0 */
    };
    char out[512], path[256];
    start1(2, splice_keys[_i], "");
    snprintf(path, sizeof(path), "%s/dl", px.dir);
    uint64_t n = 64ull << 20, len;
    uint64_t want = tp_pattern_fnv(n);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t before = spliced_now();
        ck_assert_int_eq(tl_sh(out, sizeof(out),
                               "curl -s %s -o %s -w '%%{http_code}' "
                               "'http://127.0.0.1:%d/bytes?n=%llu&mode=%s&chunk=1000'",
                               cases[i].curl, path, px.port, (unsigned long long)n,
                               cases[i].mode),
                         0);
        ck_assert_str_eq(out, "200");
        ck_assert_msg(tl_fnv_file(path, &len) == want, "mode %s %s: body differs", cases[i].mode,
                      cases[i].curl);
        ck_assert_int_eq(len, n);
        uint64_t moved = spliced_now() - before;
        printf("%s: mode %s %s: %llu of %llu bytes spliced\n", splice_keys[_i][0] ? "off" : "on",
               cases[i].mode, cases[i].curl, (unsigned long long)moved, (unsigned long long)n);
        if (_i == 0 && cases[i].spliced)
            /* all but what came with the head, in the first read */
            ck_assert_uint_ge(moved, n - 64 * 1024);
        else
            ck_assert_uint_eq(moved, 0);
    }
    unlink(path);
    stop_all();
}
END_TEST

START_TEST(t_upload_integrity)
{
    char out[512], path[256], want[128];
    char keys[128];
    snprintf(keys, sizeof(keys), "client_max_body_size = 1g\n%s", splice_keys[_i]);
    start1(2, keys, "");
    snprintf(path, sizeof(path), "%s/up", px.dir);
    ck_assert_int_eq(tl_sh(NULL, 0, "head -c 50000000 /dev/urandom > %s", path), 0);
    uint64_t len, h = tl_fnv_file(path, &len);
    snprintf(want, sizeof(want), "len=%llu fnv=%016llx\n", (unsigned long long)len,
             (unsigned long long)h);
    /* Content-Length upload (curl also sends Expect: 100-continue for it): spliced when on */
    uint64_t before = spliced_now();
    ck_assert_int_eq(tl_sh(out, sizeof(out), "curl -s --data-binary @%s http://127.0.0.1:%d/sum",
                           path, px.port),
                     0);
    ck_assert_str_eq(out, want);
    uint64_t moved = spliced_now() - before;
    printf("%s: Content-Length upload: %llu of %llu bytes spliced\n",
           _i == 0 ? "on" : "off", (unsigned long long)moved, (unsigned long long)len);
    if (_i == 0)
        ck_assert_uint_ge(moved, len - 64 * 1024);
    else
        ck_assert_uint_eq(moved, 0);
    /* chunked upload: always copied (re-chunked) */
    before = spliced_now();
    ck_assert_int_eq(tl_sh(out, sizeof(out),
                           "curl -s -H 'Transfer-Encoding: chunked' --data-binary @%s "
                           "http://127.0.0.1:%d/sum",
                           path, px.port),
                     0);
    ck_assert_str_eq(out, want);
    ck_assert_uint_eq(spliced_now() - before, 0);
    /* echo: the upstream streams its answer while it still reads the body; both flow at once */
    ck_assert_int_eq(
        tl_sh(out, sizeof(out),
              "curl -s --data-binary @%s http://127.0.0.1:%d/echo | cmp - %s && echo same", path,
              px.port, path),
        0);
    ck_assert_str_eq(out, "same\n");
    ck_assert_int_eq(tl_sh(out, sizeof(out),
                           "curl -s -H 'Transfer-Encoding: chunked' --data-binary @%s "
                           "http://127.0.0.1:%d/echo | cmp - %s && echo same",
                           path, px.port, path),
                     0);
    ck_assert_str_eq(out, "same\n");
    unlink(path);
    stop_all();
}
END_TEST

/*
 * read_timeout waits for the upstream's answer from the request's last
 * byte (nginx's proxy_read_timeout): a slow upload that keeps going for
 * longer than read_timeout is not a stalled upstream. Before, it was
 * answered 504 once read_timeout had passed since the relay began.
 */
START_TEST(t_slow_upload_is_not_an_upstream_timeout)
{
    static char piece[1000];
    struct tl_resp r;
    char want[64];
    start1(1, "client_body_timeout = 2s", "read_timeout = 300ms");
    memset(piece, 'u', sizeof(piece));
    int fd = tl_connect(px.port);
    ck_assert(tl_send_str(fd, "POST /sum HTTP/1.1\r\nHost: t\r\nContent-Length: 10000\r\n\r\n") ==
              0);
    for (int i = 0; i < 10; i++) { /* 1 s in all */
        usleep(100 * 1000);
        ck_assert(tl_send(fd, piece, sizeof(piece)) == 0);
    }
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert_int_eq(r.status, 200);
    uint64_t h = tp_fnv1a(TP_FNV_INIT, "", 0);
    for (int i = 0; i < 10; i++)
        h = tp_fnv1a(h, piece, sizeof(piece));
    snprintf(want, sizeof(want), "len=10000 fnv=%016llx\n", (unsigned long long)h);
    ck_assert_str_eq(r.body, want);
    tl_resp_free(&r);
    close(fd);
    stop_all();
}
END_TEST

/*
 * The deadlines hold on the splice path as on the copy path: an upstream
 * that stalls in the middle of a large body is cut after read_timeout, a
 * client that stops sending a large body gets 408 after
 * client_body_timeout, and the worker serves the next client.
 */
START_TEST(t_splice_deadlines)
{
    struct tl_resp r;
    start1(1, "client_body_timeout = 400ms\nclient_max_body_size = 1g", "read_timeout = 800ms");
    /* the upstream sends 512 KiB of 1 MiB, then stalls for 3 s */
    uint64_t before = spliced_now();
    int fd = tl_connect(px.port);
    int64_t t0 = tl_now_ms();
    ck_assert(tl_send_str(fd, REQ("/slowbody?ms=3000&n=1048576")) == 0);
    ck_assert_int_eq(tl_read_response(fd, false, &r), -1); /* a short body, then EOF */
    int64_t dt = tl_now_ms() - t0;
    close(fd);
    printf("splice: an upstream stalled mid-body is cut after %lld ms\n", (long long)dt);
    ck_assert_msg(dt >= 750 && dt < 2900, "cut after %lld ms", (long long)dt);
    ck_assert(tl_file_waitfor(px.errlog, "reading response body from", 2000));
    ck_assert_uint_gt(spliced_now() - before, 256 * 1024);
    /* a client that sends 256 KiB of a 1 MiB body, then nothing */
    static char chunk[256 * 1024];
    memset(chunk, 'x', sizeof(chunk));
    before = spliced_now();
    fd = tl_connect(px.port);
    ck_assert(tl_send_str(fd, "POST /sum HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n") ==
              0);
    ck_assert(tl_send(fd, chunk, sizeof(chunk)) == 0);
    t0 = tl_now_ms();
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    dt = tl_now_ms() - t0;
    ck_assert_int_eq(r.status, 408);
    tl_resp_free(&r);
    close(fd);
    printf("splice: a client that stops sending its body gets 408 after %lld ms\n",
           (long long)dt);
    ck_assert_msg(dt >= 350 && dt < 2500, "408 after %lld ms", (long long)dt);
    ck_assert_uint_gt(spliced_now() - before, 128 * 1024);
    /* the one worker is free, and its pipes (left holding bytes) work again */
    ck_assert_int_eq(tl_request(px.port, REQ("/bytes?n=1048576"), &r), 200);
    ck_assert_uint_eq(r.body_len, 1048576);
    ck_assert_uint_eq(tp_verify(r.body, 0, r.body_len), r.body_len);
    tl_resp_free(&r);
    stop_all();
}
END_TEST

/* Peak RSS of the workers while <cmd> runs in the background. */
static long
peak_worker_rss_during(const char *cmd, long *before)
{
    pid_t kids[64];
    int n = tl_children(px.pid, kids, 64);
    ck_assert_int_gt(n, 0);
    *before = 0;
    for (int i = 0; i < n; i++)
        if (tl_rss_kb(kids[i]) > *before)
            *before = tl_rss_kb(kids[i]);
    FILE *f = popen(cmd, "r");
    ck_assert(f != NULL);
    int fd = fileno(f);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    long peak = 0;
    char buf[256];
    int64_t deadline = tl_now_ms() + 60000;
    for (;;) {
        for (int i = 0; i < n; i++) {
            long kb = tl_rss_kb(kids[i]);
            if (kb > peak)
                peak = kb;
        }
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r == 0 || tl_now_ms() > deadline)
            break;
        usleep(20 * 1000);
    }
    ck_assert_int_eq(pclose(f), 0);
    return peak;
}

START_TEST(t_one_gib_constant_memory)
{
    long before, peak;
    start1(2, "client_max_body_size = 2g", "");
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "curl -s -o /dev/null 'http://127.0.0.1:%d/bytes?n=1073741824' && echo done",
             px.port);
    peak = peak_worker_rss_during(cmd, &before);
    fprintf(stderr, "1 GiB download: worker RSS %ld KiB before, peak %ld KiB\n", before, peak);
    ck_assert_int_lt(peak, before + 4096);
    snprintf(cmd, sizeof(cmd),
             "head -c 1073741824 /dev/zero | curl -s -T - -X POST http://127.0.0.1:%d/sum "
             "| grep -q len=1073741824 && echo done",
             px.port);
    peak = peak_worker_rss_during(cmd, &before);
    fprintf(stderr, "1 GiB chunked upload: worker RSS %ld KiB before, peak %ld KiB\n", before,
            peak);
    ck_assert_int_lt(peak, before + 4096);
    stop_all();
}
END_TEST

START_TEST(t_response_framings)
{
    struct tl_resp r;
    char v[64];
    start1(2, "", "");
    int fd = tl_connect(px.port);
    /* close-delimited upstream body to an HTTP/1.1 client: re-chunked, connection kept */
    ck_assert(tl_send_str(fd, REQ("/bytes?n=5000&mode=close")) == 0);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert(r.chunked);
    ck_assert_int_eq(r.body_len, 5000);
    ck_assert_int_eq(tp_verify(r.body, 0, 5000), 5000);
    tl_resp_free(&r);
    /* chunked passes as chunked */
    ck_assert(tl_send_str(fd, REQ("/bytes?n=7000&mode=chunked&chunk=3")) == 0);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert(r.chunked);
    ck_assert_int_eq(tp_verify(r.body, 0, 7000), 7000);
    tl_resp_free(&r);
    /* HEAD: headers, no body, and the connection still works after */
    ck_assert(tl_send_str(fd, "HEAD /bytes?n=100 HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    ck_assert_int_eq(tl_read_response(fd, true, &r), 0);
    ck_assert(tl_resp_header(&r, "Content-Length", v, sizeof(v)));
    ck_assert_str_eq(v, "100");
    tl_resp_free(&r);
    /* 204 and 304 have no body */
    ck_assert(tl_send_str(fd, REQ("/status?code=204")) == 0);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert_int_eq(r.status, 204);
    tl_resp_free(&r);
    ck_assert(tl_send_str(fd, REQ("/status?code=304")) == 0);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert_int_eq(r.status, 304);
    tl_resp_free(&r);
    ck_assert(tl_send_str(fd, REQ("/")) == 0);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert_str_eq(r.body, "hello from a1\n");
    tl_resp_free(&r);
    close(fd);
    stop_all();
}
END_TEST

START_TEST(t_http10_clients)
{
    struct tl_resp r;
    char v[64];
    start1(2, "", "");
    /* 1.0 without keep-alive: answered and closed */
    int fd = tl_connect(px.port);
    ck_assert(tl_send_str(fd, "GET / HTTP/1.0\r\n\r\n") == 0);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert(tl_resp_header(&r, "Connection", v, sizeof(v)));
    ck_assert_str_eq(v, "close");
    tl_resp_free(&r);
    char c;
    ck_assert_int_eq(recv(fd, &c, 1, 0), 0);
    close(fd);
    /* 1.0 with keep-alive: kept; a chunked upstream body arrives close-delimited */
    fd = tl_connect(px.port);
    ck_assert(tl_send_str(fd, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") == 0);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert(tl_resp_header(&r, "Connection", v, sizeof(v)));
    ck_assert_str_eq(v, "keep-alive");
    tl_resp_free(&r);
    ck_assert(tl_send_str(fd, "GET /bytes?n=3000&mode=chunked HTTP/1.0\r\n"
                              "Connection: keep-alive\r\n\r\n") == 0);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert(!r.chunked);
    ck_assert(r.closed);
    ck_assert_int_eq(r.body_len, 3000);
    ck_assert_int_eq(tp_verify(r.body, 0, 3000), 3000);
    tl_resp_free(&r);
    close(fd);
    stop_all();
}
END_TEST

START_TEST(t_pipelining_and_expect)
{
    struct tl_resp r;
    start1(2, "", "");
    int fd = tl_connect(px.port);
    ck_assert(tl_send_str(fd,
                          "POST /sum HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
                          "GET /delay?ms=1 HTTP/1.1\r\nHost: t\r\n\r\n"
                          "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "3;ext=1\r\nxyz\r\n0\r\nX-Trailer: 1\r\n\r\n"
                          "GET / HTTP/1.1\r\nHost: t\r\n\r\n") == 0);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert_str_eq(r.body, "len=3 fnv=e71fa2190541574b\n");
    tl_resp_free(&r);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert_str_eq(r.body, "delayed\n");
    tl_resp_free(&r);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert_str_eq(r.body, "xyz");
    tl_resp_free(&r);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert_str_eq(r.body, "hello from a1\n");
    tl_resp_free(&r);

    /* Expect: 100-continue: the proxy says 100 before the body is sent */
    ck_assert(tl_send_str(fd, "POST /sum HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                              "Expect: 100-continue\r\n\r\n") == 0);
    char buf[64] = {0};
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    ck_assert_int_gt(n, 0);
    ck_assert_str_eq(buf, "HTTP/1.1 100 Continue\r\n\r\n");
    ck_assert(tl_send_str(fd, "abc") == 0);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert_str_eq(r.body, "len=3 fnv=e71fa2190541574b\n");
    tl_resp_free(&r);
    close(fd);
    stop_all();
}
END_TEST

/* ---- keep-alive ------------------------------------------------------------------------ */

START_TEST(t_upstream_keepalive_reuse)
{
    struct tl_resp r;
    long conns, reqs;
    start3(2, "", "keepalive = 16");
    int fd = tl_connect(px.port);
    for (int i = 0; i < 1000; i++) {
        ck_assert(tl_send_str(fd, REQ("/")) == 0);
        ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
        ck_assert_int_eq(r.status, 200);
        tl_resp_free(&r);
    }
    close(fd);
    long total_conns = 0, total_reqs = 0;
    for (int i = 0; i < 3; i++) {
        tl_app_stats(app[i].port, &conns, &reqs);
        total_conns += conns;
        total_reqs += reqs;
    }
    fprintf(stderr, "1000 requests on one client connection: %ld upstream connections\n",
            total_conns);
    ck_assert_int_eq(total_reqs, 1000);
    ck_assert_int_le(total_conns, 3); /* one worker served them: one per upstream */
    stop_all();
}
END_TEST

START_TEST(t_keepalive_requests_limit)
{
    struct tl_resp r;
    char v[32];
    start1(2, "keepalive_requests = 3", "");
    int fd = tl_connect(px.port);
    for (int i = 1; i <= 3; i++) {
        ck_assert(tl_send_str(fd, REQ("/")) == 0);
        ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
        ck_assert_int_eq(tl_resp_header(&r, "Connection", v, sizeof(v)), i == 3);
        tl_resp_free(&r);
    }
    char c;
    ck_assert_int_eq(recv(fd, &c, 1, 0), 0);
    close(fd);
    stop_all();
}
END_TEST

START_TEST(t_stale_pooled_connection)
{
    struct tl_resp r;
    char bin[256], portarg[16];
    start1(1, "", "keepalive = 4");
    int fd = tl_connect(px.port);
    ck_assert(tl_send_str(fd, REQ("/")) == 0);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    tl_resp_free(&r);
    /* Restart the upstream on the same port: the pooled connection is now dead. */
    int port = app[0].port;
    tl_stop(app[0].pid);
    snprintf(bin, sizeof(bin), "%s/testapp", tl_build());
    snprintf(portarg, sizeof(portarg), "%d", port);
    char out[64];
    /* background it through the shell; its pid is read back to stop it by PID */
    ck_assert_int_eq(tl_sh(out, sizeof(out),
                           "(%s -l 127.0.0.1 -p %s -n b1 >/dev/null 2>&1 & echo $!)", bin,
                           portarg),
                     0);
    pid_t npid = atoi(out);
    ck_assert_int_gt(npid, 0);
    usleep(200 * 1000);
    ck_assert(tl_send_str(fd, REQ("/")) == 0);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "hello from b1\n");
    tl_resp_free(&r);
    close(fd);
    kill(npid, SIGKILL);
    app[0].pid = 0;
    stop_all();
}
END_TEST

/* ---- errors ---------------------------------------------------------------------------- */

START_TEST(t_502_unreachable_and_lying)
{
    struct tl_resp r;
    int port = tl_dead_port();
    tl_app_start(&app[0], "a1");
    tl_proxy_start(&px,
                   "workers = 2\nupstream = dead\n[upstream dead]\nserver = 127.0.0.1:%d\n"
                   "health_check = off\n"
                   "[upstream live]\nserver = 127.0.0.1:%d\n",
                   port, app[0].port);
    int64_t t0 = tl_now_ms();
    ck_assert_int_eq(tl_request(px.port, REQ("/"), &r), 502);
    ck_assert_int_lt(tl_now_ms() - t0, 1000);
    tl_resp_free(&r);
    ck_assert(tl_file_waitfor(px.errlog, "Connection refused", 2000));
    tl_stop(px.pid);

    tl_proxy_start(&px,
                   "workers = 2\nupstream = app\n[upstream app]\nserver = 127.0.0.1:%d\n"
                   "health_check = off\nmax_fails = 0\n",
                   app[0].port);
    const char *bad[] = {REQ("/garbage"), REQ("/close"), REQ("/reset")};
    for (size_t i = 0; i < 3; i++) {
        t0 = tl_now_ms();
        ck_assert_int_eq(tl_request(px.port, bad[i], &r), 502);
        ck_assert_int_lt(tl_now_ms() - t0, 1000);
        tl_resp_free(&r);
    }
    /* and the worker is still fine */
    ck_assert_int_eq(tl_request(px.port, REQ("/"), &r), 200);
    tl_resp_free(&r);
    stop_all();
}
END_TEST

START_TEST(t_504_timeouts)
{
    struct tl_resp r;
    start1(2, "", "read_timeout = 300ms");
    int64_t t0 = tl_now_ms();
    ck_assert_int_eq(tl_request(px.port, REQ("/hang"), &r), 504);
    int64_t dt = tl_now_ms() - t0;
    ck_assert_msg(dt >= 250 && dt < 2000, "504 after %lld ms", (long long)dt);
    tl_resp_free(&r);
    /* read_timeout is between two reads: a slow but steady body is fine... */
    ck_assert_int_eq(tl_request(px.port, REQ("/delay?ms=100"), &r), 200);
    tl_resp_free(&r);
    /* ...and a stall mid-body cuts the response: the client sees a short body, then EOF */
    int fd = tl_connect(px.port);
    ck_assert(tl_send_str(fd, REQ("/slowbody?ms=1000")) == 0);
    ck_assert_int_eq(tl_read_response(fd, false, &r), -1);
    close(fd);
    ck_assert(tl_file_waitfor(px.errlog, "response body from", 2000));
    stop_all();
}
END_TEST

START_TEST(t_connect_timeout_504)
{
    struct tl_resp r;
    /* 192.0.2.0/24 is TEST-NET-1... but we must never send traffic off this machine:
     * instead fill a listener's accept queue so connects to it hang. */
    int port, lfd = tl_listen_local(0, &port);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fill[8];
    for (int i = 0; i < 8; i++) { /* never accepted: the SYN queue overflows */
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&sin, sizeof(sin));
    }
    usleep(100 * 1000);
    tl_proxy_start(&px,
                   "workers = 1\nupstream = app\n[upstream app]\nserver = 127.0.0.1:%d\n"
                   "connect_timeout = 300ms\nhealth_check = off\n",
                   port);
    int64_t t0 = tl_now_ms();
    int st = tl_request(px.port, REQ("/"), &r);
    int64_t dt = tl_now_ms() - t0;
    ck_assert_int_eq(st, 504);
    ck_assert_msg(dt >= 250 && dt < 3000, "504 after %lld ms", (long long)dt);
    tl_resp_free(&r);
    for (int i = 0; i < 8; i++)
        close(fill[i]);
    close(lfd);
    tl_stop(px.pid);
}
END_TEST

START_TEST(t_bad_requests_rejected)
{
    static const struct {
        const char *req;
        int status;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
        {"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +3\r\n\r\nabc", 400},
        {"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
        {"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: t\r\nX: a\x01\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        {"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505},
        {"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405},
        {"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
         "fffffffffffffffffff\r\n",
         400},
    };
    start1(2, "max_header_size = 1k\nclient_max_body_size = 10", "");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tl_resp r;
        int fd = tl_connect(px.port);
        ck_assert(tl_send_str(fd, cases[i].req) == 0);
        ck_assert_msg(tl_read_response(fd, false, &r) == 0, "case %zu: no response", i);
        ck_assert_msg(r.status == cases[i].status, "case %zu: %d, want %d", i, r.status,
                      cases[i].status);
        char c;
        ck_assert_msg(recv(fd, &c, 1, 0) == 0, "case %zu: connection not closed", i);
        tl_resp_free(&r);
        close(fd);
    }
    /* 414, 431 and 413 */
    char big[3000];
    struct tl_resp r;
    snprintf(big, sizeof(big), "GET /%02000d HTTP/1.1\r\nHost: t\r\n\r\n", 0);
    ck_assert_int_eq(tl_request(px.port, big, &r), 414);
    tl_resp_free(&r);
    snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: t\r\nX: %01500d\r\n\r\n", 0);
    ck_assert_int_eq(tl_request(px.port, big, &r), 431);
    tl_resp_free(&r);
    ck_assert_int_eq(tl_request(px.port,
                                "POST /sum HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n"
                                "01234567890",
                                &r),
                     413);
    tl_resp_free(&r);
    ck_assert_int_eq(
        tl_request(px.port,
                   "POST /sum HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "b\r\n01234567890\r\n0\r\n\r\n",
                   &r),
        413);
    tl_resp_free(&r);
    /* Nothing of all that reached the upstream. */
    long conns, reqs;
    tl_app_stats(app[0].port, &conns, &reqs);
    ck_assert_int_eq(reqs, 0);
    /* and the proxy still serves */
    ck_assert_int_eq(tl_request(px.port, REQ("/"), &r), 200);
    tl_resp_free(&r);
    stop_all();
}
END_TEST

/*
 * Any CONNECT is refused with 405, whatever its target's form, and never
 * reaches an app (an app that resets it would count as failing, and enough
 * of them open every breaker); method names are case-sensitive (RFC 9110
 * 9.1): "options *" is not OPTIONS.
 */
START_TEST(t_connect_refused_methods_case_sensitive)
{
    static const struct {
        const char *req;
        int status;
    } cases[] = {
        {"CONNECT /x HTTP/1.1\r\nHost: t\r\n\r\n", 405},
        {"CONNECT * HTTP/1.1\r\nHost: t\r\n\r\n", 405},
        {"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405},
        {"CONNECT http://a/x HTTP/1.1\r\nHost: a\r\n\r\n", 405},
        {"options * HTTP/1.1\r\nHost: t\r\n\r\n", 400},
        {"Options * HTTP/1.1\r\nHost: t\r\n\r\n", 400},
    };
    start1(2, "", "");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tl_resp r;
        int fd = tl_connect(px.port);
        ck_assert(tl_send_str(fd, cases[i].req) == 0);
        ck_assert_msg(tl_read_response(fd, false, &r) == 0, "case %zu: no response", i);
        ck_assert_msg(r.status == cases[i].status, "case %zu: %d, want %d", i, r.status,
                      cases[i].status);
        char c;
        ck_assert_msg(recv(fd, &c, 1, 0) == 0, "case %zu: connection not closed", i);
        tl_resp_free(&r);
        close(fd);
    }
    long conns, reqs;
    tl_app_stats(app[0].port, &conns, &reqs);
    ck_assert_int_eq(reqs, 0);
    /* OPTIONS * spelled right still goes through */
    struct tl_resp r;
    ck_assert_int_ne(tl_request(px.port, "OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", &r), 400);
    tl_resp_free(&r);
    tl_app_stats(app[0].port, &conns, &reqs);
    ck_assert_int_eq(reqs, 2); /* the OPTIONS, and the first /stats */
    stop_all();
}
END_TEST

/*
 * Every response gets an access-log line with the body bytes it really had:
 * heads the parser rejects (logged with their request line as received,
 * escaped), heads too slow, answers the proxy makes itself, and refusals
 * before any byte (max_conns_per_ip).
 */
START_TEST(t_access_log_every_response)
{
    static const struct {
        const char *req;
        int status;
        const char *logged; /* the request as the access log quotes it */
    } cases[] = {
        {"GET /bad HTTP/1.1\r\nHost : t\r\n\r\n", 400, "\"GET /bad HTTP/1.1\""},
        {"GET /v HTTP/2.0\r\nHost: t\r\n\r\n", 505, "\"GET /v HTTP/2.0\""},
        {"GET /a\x01\"b HTTP/1.1\r\nHost: t\r\n\r\n", 400, "\"GET /a\\x01\\x22b HTTP/1.1\""},
        {"POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n01234567890", 413,
         "\"POST /big HTTP/1.1\""},
        {"CONNECT /x HTTP/1.1\r\nHost: t\r\n\r\n", 405, "\"CONNECT /x HTTP/1.1\""},
        {"GET /slow HTTP/1.1\r\nHost: t\r\n", 408, "\"GET /slow HTTP/1.1\""},
    };
    char want[256];
    size_t len;
    start1(2, "client_max_body_size = 10\nclient_header_timeout = 300ms", "");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_int_eq(tl_request_len(px.port, cases[i].req, &len), cases[i].status);
        ck_assert_uint_gt(len, 0);
        snprintf(want, sizeof(want), "%s %d %zu upstream=- ", cases[i].logged, cases[i].status,
                 len);
        ck_assert_msg(tl_file_waitfor(px.acclog, want, 2000), "case %zu: no \"%s\" in the log", i,
                      want);
    }
    tl_stop(px.pid);

    /* refused before a byte was read: the request is "-" */
    tl_proxy_start(&px,
                   "workers = 2\nmax_conns_per_ip = 1\nupstream = app\n[upstream app]\n"
                   "health_check = off\nserver = 127.0.0.1:%d\n",
                   app[0].port);
    int hold = tl_connect(px.port);
    ck_assert_int_eq(tl_send_str(hold, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    struct tl_resp r;
    ck_assert_int_eq(tl_read_response(hold, false, &r), 0); /* it is in, and stays open */
    tl_resp_free(&r);
    int fd = tl_connect(px.port);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert_int_eq(r.status, 503);
    snprintf(want, sizeof(want), "\"-\" 503 %zu upstream=- ", r.body_len);
    tl_resp_free(&r);
    close(fd);
    close(hold);
    ck_assert_msg(tl_file_waitfor(px.acclog, want, 2000), "no \"%s\" in the log", want);
    stop_all();
}
END_TEST

START_TEST(t_client_timeouts)
{
    start1(1,
           "client_header_timeout = 300ms\nclient_body_timeout = 300ms\nkeepalive_timeout = 300ms",
           "");
    struct tl_resp r;
    /* a slow head: 408 after the whole-head deadline, though bytes keep coming */
    int fd = tl_connect(px.port);
    int64_t t0 = tl_now_ms();
    ck_assert(tl_send_str(fd, "GET / HTTP/1.1\r\n") == 0);
    for (int i = 0; i < 10; i++) {
        usleep(50 * 1000);
        if (tl_send_str(fd, "X-A: b\r\n") != 0)
            break;
    }
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert_int_eq(r.status, 408);
    ck_assert_int_lt(tl_now_ms() - t0, 2000);
    tl_resp_free(&r);
    close(fd);
    /* a body that stops: 408 */
    fd = tl_connect(px.port);
    ck_assert(tl_send_str(fd, "POST /sum HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc") ==
              0);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert_int_eq(r.status, 408);
    tl_resp_free(&r);
    close(fd);
    /* an idle keep-alive connection is closed quietly after keepalive_timeout */
    fd = tl_connect(px.port);
    ck_assert(tl_send_str(fd, REQ("/")) == 0);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    tl_resp_free(&r);
    t0 = tl_now_ms();
    char c;
    ck_assert_int_eq(recv(fd, &c, 1, 0), 0);
    ck_assert_int_lt(tl_now_ms() - t0, 2000);
    close(fd);
    /* one worker, and it is free again */
    ck_assert_int_eq(tl_request(px.port, REQ("/"), &r), 200);
    tl_resp_free(&r);
    stop_all();
}
END_TEST

START_TEST(t_send_timeout_frees_worker)
{
    struct tl_resp r;
    start1(1, "send_timeout = 300ms", "");
    /* A client that asks for 256 MiB and never reads: the only worker must not stay stuck. */
    int fd = tl_connect(px.port);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    ck_assert(tl_send_str(fd, REQ("/bytes?n=268435456")) == 0);
    int64_t t0 = tl_now_ms();
    ck_assert_int_eq(tl_request(px.port, REQ("/"), &r), 200);
    int64_t dt = tl_now_ms() - t0;
    ck_assert_msg(dt < 3000, "second client waited %lld ms", (long long)dt);
    tl_resp_free(&r);
    ck_assert(tl_file_waitfor(px.errlog, "client stopped reading the response", 1000));
    close(fd);
    stop_all();
}
END_TEST

/* ---- processes ------------------------------------------------------------------------- */

START_TEST(t_worker_respawn_under_load)
{
    pid_t kids[16], after[16];
    start3(4, "", "");
    int n = tl_children(px.pid, kids, 16);
    ck_assert_int_eq(n, 5); /* 4 workers and the health checker */
    const struct shm *shm = shm_attach(px.pid);
    ck_assert(shm != NULL);
    pid_t victim = atomic_load(&shm->workers[0].pid);
    ck_assert_int_gt(victim, 0);
    shm_detach(shm);
    /* load in the background: curl loops, 400 requests */
    char cmd[512], out[256];
    snprintf(cmd, sizeof(cmd),
             "for i in $(seq 1 400); do curl -s -o /dev/null -w '%%{http_code}\\n' "
             "http://127.0.0.1:%d/delay?ms=1; done | sort | uniq -c",
             px.port);
    FILE *f = popen(cmd, "r");
    usleep(200 * 1000);
    ck_assert(kill(victim, SIGKILL) == 0);
    int64_t t0 = tl_now_ms();
    bool replaced = false;
    while (tl_now_ms() - t0 < 1000 && !replaced) {
        int m = tl_children(px.pid, after, 16);
        bool old_gone = true;
        for (int i = 0; i < m; i++)
            old_gone &= after[i] != victim;
        replaced = m == 5 && old_gone;
        usleep(10 * 1000);
    }
    ck_assert_msg(replaced, "no replacement worker within 1 s");
    size_t k = fread(out, 1, sizeof(out) - 1, f);
    out[k] = '\0';
    pclose(f);
    /* Only the request on the killed worker may have failed (curl sees 000). */
    int ok = 0;
    char *p = strstr(out, " 200");
    ck_assert(p != NULL);
    while (p > out && p[-1] == ' ')
        p--;
    while (p > out && p[-1] >= '0' && p[-1] <= '9')
        p--;
    ok = atoi(p);
    ck_assert_msg(ok >= 399, "only %d of 400 succeeded: %s", ok, out);
    ck_assert(tl_file_waitfor(px.errlog, "killed by signal 9", 1000));
    stop_all();
}
END_TEST

START_TEST(t_stop_leaves_no_orphans)
{
    pid_t kids[16];
    start1(3, "", "");
    int n = tl_children(px.pid, kids, 16);
    ck_assert_int_eq(n, 4); /* 3 workers and the health checker */
    int64_t t0 = tl_now_ms();
    int st = tl_stop(px.pid);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ck_assert_int_lt(tl_now_ms() - t0, 3000);
    for (int i = 0; i < n; i++)
        ck_assert_msg(!tl_pid_alive(kids[i]), "worker %d survived", kids[i]);
    /* kill -9 of the master: the workers follow it (PR_SET_PDEATHSIG) */
    tl_proxy_start(&px, "workers = 2\nupstream = app\n[upstream app]\nserver = 127.0.0.1:%d\n",
                   app[0].port);
    n = tl_children(px.pid, kids, 16);
    ck_assert_int_eq(n, 3);
    kill(px.pid, SIGKILL);
    waitpid(px.pid, NULL, 0);
    for (int i = 0; i < n; i++) {
        t0 = tl_now_ms();
        while (tl_pid_alive(kids[i]) && tl_now_ms() - t0 < 2000)
            usleep(10 * 1000);
        ck_assert_msg(!tl_pid_alive(kids[i]), "orphan worker %d", kids[i]);
    }
    px.pid = 0;
    stop_all();
}
END_TEST

START_TEST(t_config_check_flag)
{
    char out[1024], path[] = "/tmp/mp-conf-XXXXXX";
    int fd = mkstemp(path);
    const char *good = "[proxy]\nlisten = 127.0.0.1:0\nupstream = app\n[upstream app]\n"
                       "server = 127.0.0.1:3001\n";
    ck_assert(write(fd, good, strlen(good)) == (ssize_t)strlen(good));
    char args[256];
    snprintf(args, sizeof(args), "-t -c %s", path);
    ck_assert_int_eq(tl_proxy_cmd(args, out, sizeof(out)), 0);
    ck_assert(strstr(out, "test is successful") != NULL);
    const char *bad = "server = 127.0.0.1:30o1\n";
    ck_assert(write(fd, bad, strlen(bad)) == (ssize_t)strlen(bad));
    close(fd);
    ck_assert_int_ne(tl_proxy_cmd(args, out, sizeof(out)), 0);
    char want[256];
    snprintf(want, sizeof(want), "%s:6: [upstream app] server: bad port \"30o1\"", path);
    ck_assert_msg(strstr(out, want) != NULL, "%s", out);
    ck_assert_int_eq(tl_proxy_cmd("-v", out, sizeof(out)), 0);
    ck_assert(strncmp(out, "miniproxyd ", 11) == 0);
    unlink(path);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("it_proxy");
    TCase *tc = tcase_create("proxy");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_round_robin_with_curl);
    tcase_add_test(tc, t_weighted);
    tcase_add_test(tc, t_request_rewrite);
    tcase_add_test(tc, t_preserve_host);
    tcase_add_loop_test(tc, t_download_integrity, 0, 2);
    tcase_add_loop_test(tc, t_upload_integrity, 0, 2);
    tcase_add_test(tc, t_splice_deadlines);
    tcase_add_test(tc, t_slow_upload_is_not_an_upstream_timeout);
    tcase_add_test(tc, t_one_gib_constant_memory);
    tcase_add_test(tc, t_response_framings);
    tcase_add_test(tc, t_http10_clients);
    tcase_add_test(tc, t_pipelining_and_expect);
    tcase_add_test(tc, t_upstream_keepalive_reuse);
    tcase_add_test(tc, t_keepalive_requests_limit);
    tcase_add_test(tc, t_stale_pooled_connection);
    tcase_add_test(tc, t_502_unreachable_and_lying);
    tcase_add_test(tc, t_504_timeouts);
    tcase_add_test(tc, t_connect_timeout_504);
    tcase_add_test(tc, t_bad_requests_rejected);
    tcase_add_test(tc, t_connect_refused_methods_case_sensitive);
    tcase_add_test(tc, t_access_log_every_response);
    tcase_add_test(tc, t_client_timeouts);
    tcase_add_test(tc, t_send_timeout_frees_worker);
    tcase_add_test(tc, t_worker_respawn_under_load);
    tcase_add_test(tc, t_stop_leaves_no_orphans);
    tcase_add_test(tc, t_config_check_flag);
    suite_add_tcase(s, tc);
    return tl_run(s);
}
