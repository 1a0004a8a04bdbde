/*
 * it_hard: what one odd client must not break (issue 10): header names
 * with underscores, honest slow bodies against the minimum rates, more
 * slow heads than workers, unread input at close (lingering close), and
 * the logs that say what happened; and deferred accept (issue 13). The real daemon in front of a real
 * testapp, driven by raw sockets, curl and Python's http.client.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
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

#include "net.h"
#include "shm.h"
#include "testlib.h"

#define REQ(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"

static struct tl_proc app[1];
static struct tl_proxy px;

/* One upstream and the proxy with <workers> and extra [proxy] keys. */
static void
start1(int workers, const char *proxy_keys)
{
    tl_app_start(&app[0], "a1");
    tl_proxy_start(&px,
                   "workers = %d\nupstream = app\n%s\n[upstream app]\nhealth_check = off\n"
                   "max_fails = 0\nserver = 127.0.0.1:%d\n",
                   workers, proxy_keys, app[0].port);
}

static void
stop_all(void)
{
    tl_stop_all(&px, app, 1);
}

/* ---- item 3: underscores in header names ---------------------------------------------- */

/*
 * A second framing spelled with underscores beside the real one: a
 * CGI-style app would read it as Transfer-Encoding / Content-Length.
 */
#define UNDERSCORED                                                                               \
    "POST /headers HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer_Encoding: chunked\r\n"    \
    "Content_Length: 500\r\nX_Custom: 1\r\nX-Fine: 2\r\n\r\nhello"

START_TEST(t_underscores_dropped_by_default)
{
    struct tl_resp r;
    start1(2, "");
    ck_assert_int_eq(tl_request(px.port, UNDERSCORED, &r), 200);
    const char *gone[] = {"Transfer_Encoding", "Content_Length", "X_Custom", "chunked"};
    for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
        ck_assert_msg(strstr(r.body, gone[i]) == NULL, "%s forwarded:\n%s", gone[i], r.body);
    ck_assert_msg(strstr(r.body, "Content-Length: 5\r\n") != NULL, "%s", r.body);
    ck_assert_msg(strstr(r.body, "X-Fine: 2\r\n") != NULL, "%s", r.body);
    tl_resp_free(&r);
    ck_assert(tl_file_waitfor(px.errlog, "dropped header \"Transfer_Encoding\"", 2000));
    stop_all();
}
END_TEST

START_TEST(t_underscores_rejected)
{
    struct tl_resp r;
    start1(2, "underscores_in_headers = reject");
    ck_assert_int_eq(tl_request(px.port, UNDERSCORED, &r), 400);
    tl_resp_free(&r);
    ck_assert(tl_file_waitfor(px.errlog,
                              "rejected request head: 400: underscore in field name "
                              "(underscores_in_headers = reject) in header 3",
                              2000));
    ck_assert(tl_file_waitfor(px.acclog, "\"POST /headers HTTP/1.1\" 400 ", 2000));
    /* nothing reached the app; a head without underscores still does */
    long conns, reqs;
    tl_app_stats(app[0].port, &conns, &reqs);
    ck_assert_int_eq(reqs, 0);
    ck_assert_int_eq(tl_request(px.port, REQ("/"), &r), 200);
    tl_resp_free(&r);
    stop_all();
}
END_TEST

START_TEST(t_underscores_allowed)
{
    struct tl_resp r;
    start1(2, "underscores_in_headers = allow");
    ck_assert_int_eq(tl_request(px.port, UNDERSCORED, &r), 200);
    ck_assert_msg(strstr(r.body, "Transfer_Encoding: chunked\r\n") != NULL, "%s", r.body);
    ck_assert_msg(strstr(r.body, "X_Custom: 1\r\n") != NULL, "%s", r.body);
    tl_resp_free(&r);
    stop_all();
}
END_TEST

/* ---- item 14: the minimum body rate and honest clients ------------------------------- */

/*
 * Sends <head>, waits for "100 Continue" when <expect>, pauses <pause_ms>,
 * then sends <body> in one piece; returns the status of the answer.
 */
static int
paused_body(const char *head, bool expect, int pause_ms, const char *body, struct tl_resp *r)
{
    int fd = tl_connect(px.port);
    ck_assert(tl_send_str(fd, head) == 0);
    if (expect) {
        char cont[64] = "";
        size_t got = 0;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        while (strstr(cont, "\r\n\r\n") == NULL && got < sizeof(cont) - 1 &&
               poll(&pfd, 1, 2000) == 1) {
            ssize_t n = recv(fd, cont + got, sizeof(cont) - 1 - got, 0);
            if (n <= 0)
                break;
            got += (size_t)n;
            cont[got] = '\0';
        }
        ck_assert_msg(strncmp(cont, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0, "got \"%s\"", cont);
    }
    usleep((useconds_t)pause_ms * 1000);
    if (tl_send_str(fd, body) != 0) {
        close(fd);
        return -1;
    }
    int rc = tl_read_response(fd, false, r);
    close(fd);
    return rc == 0 ? r->status : -1;
}

START_TEST(t_small_body_after_a_pause)
{
    struct tl_resp r;
    start1(2, "client_body_min_rate = 256\nclient_body_timeout = 5s");
    /* Expect: 100-continue, our 100, and the 5 bytes 1.5 s later */
    ck_assert_int_eq(paused_body("POST /sum HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                                 "Expect: 100-continue\r\n\r\n",
                                 true, 1500, "hello", &r),
                     200);
    ck_assert_msg(strncmp(r.body, "len=5 ", 6) == 0, "%s", r.body);
    tl_resp_free(&r);
    /* no Expect: the body clock starts with the complete head */
    ck_assert_int_eq(paused_body("POST /sum HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n",
                                 false, 1500, "hello", &r),
                     200);
    ck_assert_msg(strncmp(r.body, "len=5 ", 6) == 0, "%s", r.body);
    tl_resp_free(&r);
    /* chunked, after a pause too */
    ck_assert_int_eq(paused_body("POST /sum HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                                 "\r\n",
                                 false, 1500, "5\r\nhello\r\n0\r\n\r\n", &r),
                     200);
    ck_assert_msg(strncmp(r.body, "len=5 ", 6) == 0, "%s", r.body);
    tl_resp_free(&r);
    /* curl's own Expect: it waits for our 100, then sends */
    char out[256], path[300];
    snprintf(path, sizeof(path), "%s/body.bin", px.dir);
    ck_assert_int_eq(tl_sh(out, sizeof(out), "head -c 2000 /dev/zero > %s", path), 0);
    ck_assert_int_eq(tl_sh(out, sizeof(out),
                           "curl -s -H 'Expect: 100-continue' --data-binary @%s "
                           "http://127.0.0.1:%d/sum",
                           path, px.port),
                     0);
    ck_assert_msg(strncmp(out, "len=2000 ", 9) == 0, "%s", out);
    /* a pause longer than client_body_timeout still gets 408 */
    int64_t t0 = tl_now_ms();
    int fd = tl_connect(px.port);
    ck_assert(tl_send_str(fd, "POST /sum HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n") == 0);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert_int_eq(r.status, 408);
    tl_resp_free(&r);
    close(fd);
    ck_assert_int_ge(tl_now_ms() - t0, 4900);
    stop_all();
}
END_TEST

/* ---- item 15: more slow heads than workers ------------------------------------------- */

/*
 * 3 x max_workers connections trickle their heads, one byte every 2 s,
 * from one address, with no per-address limit: a normal client is answered
 * within a second at every moment, because the worker holding the oldest
 * incomplete head gives it up (408) for a client waiting in the queue.
 */
START_TEST(t_more_slow_heads_than_workers)
{
    struct rlimit rl = {4096, 4096};
    setrlimit(RLIMIT_NOFILE, &rl);
    start1(8, "access_log = off");
    pid_t attacker = tl_slowloris(px.port, 24, 2000, 15000);
    usleep(500 * 1000);
    int64_t worst = 0, t0 = tl_now_ms();
    int probes = 0;
    while (tl_now_ms() - t0 < 12000) {
        struct tl_resp r;
        int64_t p0 = tl_now_ms();
        int st = tl_request(px.port, REQ("/"), &r);
        int64_t dt = tl_now_ms() - p0;
        ck_assert_msg(st == 200, "normal client got %d at %lld ms", st,
                      (long long)(tl_now_ms() - t0));
        tl_resp_free(&r);
        if (dt > worst)
            worst = dt;
        probes++;
        usleep(100 * 1000);
    }
    const struct shm *shm = shm_attach(px.pid);
    ck_assert(shm != NULL);
    fprintf(stderr, "slow heads x24 before 8 workers: %d probes, worst %lld ms; %llu cut\n",
            probes, (long long)worst, (unsigned long long)atomic_load(&shm->slow_rejects));
    shm_detach(shm);
    kill(attacker, SIGKILL);
    waitpid(attacker, NULL, 0);
    ck_assert_int_lt(worst, 1000);
    ck_assert(tl_file_waitfor(px.errlog, "request head given up for a waiting client", 1000));
    stop_all();
}
END_TEST

/* ---- item 16: lingering close --------------------------------------------------------- */

/*
 * Python's http.client sends the whole body before it reads: POST <mb> MB
 * to /sum; prints the status it read, or the exception that stopped it.
 */
static void
python_post(int mb, char *out, size_t cap)
{
    tl_sh(out, cap,
          "python3 -c '\n"
          "import http.client\n"
          "c = http.client.HTTPConnection(\"127.0.0.1\", %d, timeout=20)\n"
          "try:\n"
          "    c.request(\"POST\", \"/sum\", body=b\"x\" * (%d * 1000 * 1000))\n"
          "    r = c.getresponse()\n"
          "    print(r.status, len(r.read()))\n"
          "except Exception as e:\n"
          "    print(type(e).__name__)\n"
          "' 2>&1",
          px.port, mb);
}

START_TEST(t_lingering_close_lets_python_read_413)
{
    char out[256];
    start1(2, "client_max_body_size = 1m");
    python_post(20, out, sizeof(out));
    ck_assert_msg(strncmp(out, "413 ", 4) == 0, "python read: %s", out);
    /* the worker is free again, and the connection was not kept */
    struct tl_resp r;
    ck_assert_int_eq(tl_request(px.port, REQ("/"), &r), 200);
    tl_resp_free(&r);
    tl_stop(px.pid);
    /* lingering_close = off: the close resets the connection under the unread body */
    tl_proxy_start(&px,
                   "workers = 2\nupstream = app\nclient_max_body_size = 1m\n"
                   "lingering_close = off\n[upstream app]\nhealth_check = off\n"
                   "server = 127.0.0.1:%d\n",
                   app[0].port);
    python_post(20, out, sizeof(out));
    ck_assert_msg(strncmp(out, "413 ", 4) != 0, "python read: %s", out);
    fprintf(stderr, "lingering_close: on: python read 413; off: %s", out);
    stop_all();
}
END_TEST

/*
 * A lingering close is bounded by lingering_timeout (no byte) and, under
 * pressure (a client waits, no worker is idle, the pool is full), given up
 * at once for the waiting client.
 */
START_TEST(t_lingering_close_bounded)
{
    struct tl_resp r;
    start1(1, "client_max_body_size = 10\nlingering_timeout = 1500ms\nlingering_time = 20s");
    /* a body over the limit, then silence: 413, and the worker lingers for up to 1.5 s */
    int fd = tl_connect(px.port);
    ck_assert(tl_send_str(fd, "POST /sum HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n"
                              "0123456789") == 0);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert_int_eq(r.status, 413);
    tl_resp_free(&r);
    int64_t t0 = tl_now_ms();
    char c;
    ck_assert_int_eq(recv(fd, &c, 1, 0), 0); /* our FIN came with the answer */
    /* the only worker lingers: a new client gets it at once all the same */
    ck_assert_int_eq(tl_request(px.port, REQ("/"), &r), 200);
    tl_resp_free(&r);
    int64_t dt = tl_now_ms() - t0;
    ck_assert_msg(dt < 1000, "the waiting client was answered after %lld ms", (long long)dt);
    ck_assert(tl_file_waitfor(px.errlog, "lingering connection closed: a new client waits", 2000));
    close(fd);
    /* without a waiting client, lingering ends after lingering_timeout without a byte */
    fd = tl_connect(px.port);
    ck_assert(tl_send_str(fd, "POST /sum HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n"
                              "0123456789") == 0);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert_int_eq(r.status, 413);
    tl_resp_free(&r);
    t0 = tl_now_ms();
    const struct shm *shm = shm_attach(px.pid);
    ck_assert(shm != NULL);
    while (atomic_load(&shm->idle_workers) == 0 && tl_now_ms() - t0 < 5000)
        usleep(20 * 1000);
    dt = tl_now_ms() - t0;
    shm_detach(shm);
    ck_assert_msg(dt >= 1300 && dt < 3500, "lingered %lld ms", (long long)dt);
    close(fd);
    stop_all();
}
END_TEST

/* ---- issue 13: deferred accept ------------------------------------------------------------ */

/* The state (/proc/net/tcp "st") of the proxy's end of the connection from <cport> to <lport>. */
static int
server_side_state(int lport, int cport)
{
    char line[512];
    int st = -1;
    FILE *f = fopen("/proc/net/tcp", "r");

    ck_assert(f != NULL);
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned lp, rp, state;
        if (sscanf(line, " %*d: %*x:%x %*x:%x %x", &lp, &rp, &state) == 3 && (int)lp == lport &&
            (int)rp == cport)
            st = (int)state;
    }
    fclose(f);
    return st;
}

/*
 * Listeners defer accept by default: a connection that has sent nothing
 * stays with the kernel (SYN_RECV on our side) instead of taking a worker,
 * and is served as soon as it sends. One that never sends is accepted
 * after about a second and then has client_header_timeout, as before.
 * `nodeferred` accepts at once.
 */
START_TEST(t_deferred_accept)
{
    enum { ESTABLISHED = 1, SYN_RECV = 3 };
    struct tl_resp r;
    char keys[128];
    int plain = tl_free_port();

    snprintf(keys, sizeof(keys), "client_header_timeout = 1s\nlisten = 127.0.0.1:%d nodeferred",
             plain);
    start1(2, keys);
    ck_assert(tl_port_listening(plain));
    int fd = tl_connect(px.port), fn = tl_connect(plain);
    usleep(300 * 1000);
    int sd = server_side_state(px.port, net_local_port(fd));
    int sn = server_side_state(plain, net_local_port(fn));
    printf("deferred accept: idle 300 ms: st %02X (deferred), %02X (nodeferred)\n", sd, sn);
    ck_assert_int_eq(sd, SYN_RECV);
    ck_assert_int_eq(sn, ESTABLISHED);
    /* the deferred one is served the moment it sends */
    ck_assert(tl_send_str(fd, REQ("/")) == 0);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tl_resp_free(&r);
    close(fd);
    close(fn);
    /* one that never sends: accepted after the deferral, then client_header_timeout */
    fd = tl_connect(px.port);
    int64_t t0 = tl_now_ms();
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    ck_assert_int_eq(poll(&pfd, 1, 8000), 1);
    char buf[512];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    int64_t dt = tl_now_ms() - t0;
    printf("deferred accept: a silent client is closed after %lld ms\n", (long long)dt);
    ck_assert_msg(n >= 0, "recv: %s", strerror(errno));
    ck_assert_msg(dt >= 1500 && dt < 6000, "closed after %lld ms", (long long)dt);
    close(fd);
    stop_all();
}
END_TEST

/* ---- item 17: logs that say what happened -------------------------------------------- */

/*
 * Each rejection of a head names the parser's reason in the error log and
 * gets its access-log line, with the bytes its answer really had.
 */
START_TEST(t_rejections_name_their_reason)
{
    static const struct {
        const char *req;
        int status;
        const char *why;  /* after "rejected request head: " */
        const char *line; /* the request as the access log quotes it */
    } cases[] = {
        {"GET /ws HTTP/1.1\r\nHost: t\r\nX-A: 1\r\nX-B : 2\r\n\r\n", 400,
         "400: whitespace before colon in header 3", "GET /ws HTTP/1.1"},
        {"GET /v HTTP/3.0\r\nHost: t\r\n\r\n", 505, "505: unsupported HTTP version",
         "GET /v HTTP/3.0"},
        {"POST /te HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
         "501: unsupported transfer coding in header 2", "POST /te HTTP/1.1"},
        {"GET /nohost HTTP/1.1\r\nX-A: 1\r\n\r\n", 400, "400: missing Host",
         "GET /nohost HTTP/1.1"},
    };
    char want[256];
    size_t len;

    start1(2, "");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_int_eq(tl_request_len(px.port, cases[i].req, &len), cases[i].status);
        ck_assert_uint_gt(len, 0);
        snprintf(want, sizeof(want), "127.0.0.1: rejected request head: %s\n", cases[i].why);
        ck_assert_msg(tl_file_waitfor(px.errlog, want, 2000), "case %zu: no \"%s\" in the log", i,
                      want);
        snprintf(want, sizeof(want), "\"%s\" %d %zu upstream=- ", cases[i].line, cases[i].status,
                 len);
        ck_assert_msg(tl_file_waitfor(px.acclog, want, 2000), "case %zu: no \"%s\" in the log", i,
                      want);
    }
    stop_all();
}
END_TEST

/*
 * An invalid response head names the parser's reason (and the header), an
 * invalid chunked body from the upstream the decoder's.
 */
START_TEST(t_upstream_garbage_names_its_reason)
{
    static const struct {
        const char *what;
        int status; /* the client's: 502, or the 200 already sent before the body failed */
        const char *logged;
    } cases[] = {
        {"status", 502, "invalid response head from 127.0.0.1:%d: status code not 3 digits ("},
        {"header", 502,
         "invalid response head from 127.0.0.1:%d: whitespace before colon in header 2 ("},
        {"chunk", 200, "invalid chunked body from 127.0.0.1:%d: invalid chunk size ("},
    };
    char req[128], want[256];
    struct tl_resp r;

    start1(2, "");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(req, sizeof(req), "GET /garbage?what=%s HTTP/1.1\r\nHost: t\r\n\r\n",
                 cases[i].what);
        int fd = tl_connect(px.port);
        ck_assert(tl_send_str(fd, req) == 0);
        int rc = tl_read_response(fd, false, &r);
        if (cases[i].status == 502) {
            ck_assert_int_eq(rc, 0);
            ck_assert_int_eq(r.status, 502);
        } else {
            ck_assert_int_eq(rc, -1); /* the body is cut: the client sees it incomplete */
        }
        if (rc == 0)
            tl_resp_free(&r);
        close(fd);
        snprintf(want, sizeof(want), cases[i].logged, app[0].port);
        ck_assert_msg(tl_file_waitfor(px.errlog, want, 2000), "case %s: no \"%s\" in the log",
                      cases[i].what, want);
    }
    stop_all();
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("it_hard");
    TCase *tc = tcase_create("hard");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_underscores_dropped_by_default);
    tcase_add_test(tc, t_underscores_rejected);
    tcase_add_test(tc, t_underscores_allowed);
    tcase_add_test(tc, t_small_body_after_a_pause);
    tcase_add_test(tc, t_more_slow_heads_than_workers);
    tcase_add_test(tc, t_lingering_close_lets_python_read_413);
    tcase_add_test(tc, t_lingering_close_bounded);
    tcase_add_test(tc, t_rejections_name_their_reason);
    tcase_add_test(tc, t_upstream_garbage_names_its_reason);
    tcase_add_test(tc, t_deferred_accept);
    suite_add_tcase(s, tc);
    return tl_run(s);
}
