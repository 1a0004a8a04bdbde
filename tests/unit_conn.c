/*
 * Unit tests for the client connection (src/conn.c) and the one wait of a
 * worker, net_poll() (src/net.c) (Check). The client is the other end of a
 * socketpair, written by this process, or by a child that stays within
 * the case's time bound, for heads that arrive in pieces.
 */
#include "clock.h"
#include "conn.h"
#include "log.h"
#include "net.h"
#include "shm.h"
#include "testlib.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const char ini[] = "[proxy]\n"
                          "listen = 127.0.0.1:0\n"
                          "workers = 1\n"
                          "upstream = app\n"
                          "client_header_timeout = 300ms\n"
                          "max_header_size = 1k\n"
                          "[upstream app]\n"
                          "health_check = off\n"
                          "server = 127.0.0.1:3001\n";

static struct config *cfg;
static struct shm *shm;
static struct conn conn;
static int peer = -1; /* the client's end */

static void
setup(void)
{
    char err[512] = "";
    int sv[2];
    struct sockaddr_storage ss = {.ss_family = AF_INET};

    cfg = cfg_load_string(ini, "t.ini", err, sizeof(err));
    ck_assert_msg(cfg != NULL, "config: %s", err);
    log_set_level(CFG_LOG_WARN); /* the rejections each case provokes are logged at info */
    shm = shm_create(cfg, 1);
    ck_assert(shm != NULL);
    ck_assert_int_eq(conn_init(&conn, cfg, shm), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(net_set_blocking(sv[0], false), 0);
    conn_open(&conn, sv[0], &ss);
    peer = sv[1];
}

static void
teardown(void)
{
    conn_close(&conn);
    conn_free(&conn);
    if (peer != -1)
        close(peer);
    peer = -1;
    shm_destroy(shm);
    cfg_free(cfg);
}

static void
put(const char *s)
{
    ck_assert_int_eq(tl_send(peer, s, strlen(s)), 0);
}

/* What the client got back, NUL-terminated (waits up to 2 s for the first bytes). */
static void
got(char *out, size_t cap)
{
    struct timeval tv = {.tv_sec = 2};
    setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssize_t n = recv(peer, out, cap - 1, 0);
    out[n > 0 ? n : 0] = '\0';
}

/* ---- heads ------------------------------------------------------------------------------ */

/* Heads that come whole, in pieces, or not at all, and what conn_read_head() makes of them. */
static const struct head_case {
    const char *name;
    const char *pieces[4]; /* written in turn, 50 ms apart (NULL ends) */
    ssize_t ret;           /* > 0: the head's length */
    const char *answer;    /* what the client gets back first, NULL: nothing */
    const char *rest;      /* what stays buffered after the head */
} head_cases[] = {
    {"whole", {"GET / HTTP/1.1\r\nHost: t\r\n\r\n"}, 27, NULL, ""},
    {"pieces", {"GET / HT", "TP/1.1\r\nHo", "st: t\r\n\r\n"}, 27, NULL, ""},
    {"with a body",
     {"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"},
     47,
     NULL,
     "abc"},
    {"pipelined",
     {"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n"},
     28,
     NULL,
     "GET /b HTTP/1.1\r\nHost: t\r\n\r\n"},
    {"invalid", {"GET / HTTP/1.1\r\nHost : t\r\n\r\n"}, -1, "HTTP/1.1 400 ", NULL},
    {"bad version", {"GET / HTTP/2.0\r\nHost: t\r\n\r\n"}, -1, "HTTP/1.1 505 ", NULL},
    {"too large", {"GET / HTTP/1.1\r\nHost: t\r\nX: %01100d\r\n\r\n"}, -1, "HTTP/1.1 431 ", NULL},
    {"stalls", {"GET / HTTP/1.1\r\n"}, -1, "HTTP/1.1 408 ", NULL},
    {"nothing", {NULL}, 0, NULL, NULL},
};

START_TEST(test_head)
{
    const struct head_case *hc = &head_cases[_i];
    struct http_request req;
    char big[2048];

    /* The first piece now, the others from a child while conn_read_head() waits. */
    const char *first = hc->pieces[0];
    if (first != NULL && strstr(first, "%01100d") != NULL) {
        snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: t\r\nX: %01100d\r\n\r\n", 0);
        first = big;
    }
    if (first != NULL)
        put(first);
    pid_t child = -1;
    if (hc->pieces[1] != NULL) {
        child = fork();
        ck_assert(child != -1);
        if (child == 0) {
            for (size_t i = 1; i < NELEM(hc->pieces) && hc->pieces[i] != NULL; i++) {
                usleep(50 * 1000);
                if (tl_send(peer, hc->pieces[i], strlen(hc->pieces[i])) == -1)
                    _exit(1);
            }
            _exit(0);
        }
    }
    if (first == NULL)
        shutdown(peer, SHUT_WR);
    int64_t t0 = tl_now_ms();
    ssize_t r = conn_read_head(&conn, &req);
    ck_assert_msg(r == hc->ret, "%s: returned %zd, want %zd", hc->name, r, hc->ret);
    ck_assert_int_lt(tl_now_ms() - t0, 2000);
    if (child != -1) {
        int st;
        ck_assert_int_eq(waitpid(child, &st, 0), child);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    if (hc->answer != NULL) {
        char buf[512];
        got(buf, sizeof(buf));
        ck_assert_msg(strncmp(buf, hc->answer, strlen(hc->answer)) == 0, "%s: answered %.40s",
                      hc->name, buf);
    }
    if (hc->rest != NULL) {
        struct conn_bytes b = conn_unread(&conn);
        ck_assert_uint_eq(b.len, strlen(hc->rest));
        ck_assert(memcmp(b.p, hc->rest, b.len) == 0);
        ck_assert_uint_eq(conn.requests, 1);
    }
}
END_TEST

/* The head's slices stay valid while its body is read and the next request is given back. */
START_TEST(test_slices_outlive_body)
{
    struct http_request req;
    char body[8];

    put("POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nab");
    ck_assert_int_gt(conn_read_head(&conn, &req), 0);
    struct conn_bytes b = conn_unread(&conn);
    ck_assert_uint_eq(b.len, 2);
    conn_take(&conn, b.len);
    put("cdefGET /y HTTP/1.1\r\nHost: t\r\n\r\n");
    usleep(20 * 1000);
    ssize_t n = conn_read(&conn, body, 4);
    ck_assert_int_eq(n, 4);
    ck_assert(memcmp(body, "cdef", 4) == 0);
    ck_assert(req.target.len == 2 && memcmp(req.target.p, "/x", 2) == 0);
    /* a relay that read past the body gives the next request back */
    char more[64];
    n = conn_read(&conn, more, sizeof(more));
    ck_assert_int_gt(n, 0);
    conn_give_back(&conn, more, (size_t)n);
    ck_assert(req.target.len == 2 && memcmp(req.target.p, "/x", 2) == 0);
    ck_assert(conn_has_pending(&conn));
    ck_assert_int_gt(conn_read_head(&conn, &req), 0);
    ck_assert(req.target.len == 2 && memcmp(req.target.p, "/y", 2) == 0);
    ck_assert_uint_eq(conn.requests, 2);
}
END_TEST

/* A keep-alive client's next request, found without sleeping, or not there yet, or gone. */
START_TEST(test_try_first_bytes)
{
    ck_assert_int_eq(conn_try_first_bytes(&conn), -1);
    put("GET / HTTP/1.1\r\n");
    ck_assert_int_eq(conn_try_first_bytes(&conn), 1);
    ck_assert(conn_has_pending(&conn));
    shutdown(peer, SHUT_WR);
    ck_assert_int_eq(conn_try_first_bytes(&conn), 0);
}
END_TEST

START_TEST(test_send_error)
{
    char buf[512];

    uint64_t n = conn_send_error(&conn, 502, false);
    got(buf, sizeof(buf));
    ck_assert(strncmp(buf, "HTTP/1.1 502 Bad Gateway\r\n", 26) == 0);
    ck_assert(strstr(buf, "Connection: close") == NULL);
    const char *body = strstr(buf, "\r\n\r\n");
    ck_assert(body != NULL);
    ck_assert_uint_eq(n, strlen(body + 4));
}
END_TEST

/* ---- net_poll ----------------------------------------------------------------------------- */

static void
on_alarm(int sig)
{
    (void)sig;
}

START_TEST(test_poll_deadlines)
{
    struct pollfd pfd = {.fd = conn_fd(&conn), .events = POLLIN};

    /* passed: no sleep at all */
    int64_t t0 = tl_now_ms();
    errno = 0;
    ck_assert_int_eq(net_poll(&pfd, 1, clock_ms() - 1), -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
    /* reached: about on time */
    ck_assert_int_eq(net_poll(&pfd, 1, clock_ms() + 100), -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
    int64_t took = tl_now_ms() - t0;
    ck_assert_msg(took >= 100 && took < 1000, "took %lld ms", (long long)took);
    /* ready: at once, even with no deadline */
    put("x");
    ck_assert_int_eq(net_poll(&pfd, 1, NET_NO_DEADLINE), 1);
    ck_assert(pfd.revents & POLLIN);
}
END_TEST

START_TEST(test_poll_signal)
{
    struct pollfd pfd = {.fd = conn_fd(&conn), .events = POLLIN};
    struct sigaction sa = {.sa_handler = on_alarm}; /* no SA_RESTART, as in the worker */
    struct itimerval it = {.it_value = {.tv_usec = 50 * 1000}};

    ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
    ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
    int64_t t0 = tl_now_ms();
    /* a signal ends the wait with 0: the caller looks at its flags */
    ck_assert_int_eq(net_poll(&pfd, 1, clock_ms() + 5000), 0);
    ck_assert_int_lt(tl_now_ms() - t0, 2000);
    /* net_wait() does not stop for one */
    ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
    ck_assert_int_eq(net_wait(conn_fd(&conn), POLLIN, clock_ms() + 200), -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
    ck_assert_int_ge(tl_now_ms() - t0, 200);
}
END_TEST

static Suite *
conn_suite(void)
{
    Suite *s = suite_create("conn");
    TCase *th = tcase_create("heads");
    tcase_add_checked_fixture(th, setup, teardown);
    tcase_add_loop_test(th, test_head, 0, (int)NELEM(head_cases));
    tcase_add_test(th, test_slices_outlive_body);
    tcase_add_test(th, test_try_first_bytes);
    tcase_add_test(th, test_send_error);
    suite_add_tcase(s, th);
    TCase *tp = tcase_create("net_poll");
    tcase_add_checked_fixture(tp, setup, teardown);
    tcase_add_test(tp, test_poll_deadlines);
    tcase_add_test(tp, test_poll_signal);
    suite_add_tcase(s, tp);
    return s;
}

int
main(void)
{
    return tl_run(conn_suite());
}
