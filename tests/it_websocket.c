/*
 * it_websocket: WebSocket tunnels end to end. A real WebSocket server
 * (testapp /ws, an RFC 6455 echo) behind the real daemon, and a small
 * RFC 6455 client here (tests/testws.h): the handshake and its accept key,
 * messages both ways, a 10 MB message, ping/pong, the close handshake, a
 * half-close, an idle tunnel timing out, a drain, 100 tunnels at once while
 * plain requests are served, and what must not become a tunnel (h2c, a 101
 * to a plain request, websocket = off).
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testlib.h"
#include "testpattern.h"
#include "testws.h"

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" /* RFC 6455 1.3's example */

static struct tl_proc app[1];
static struct tl_proxy px;

/* One WebSocket upstream and the proxy, with <proxy_keys> in [proxy]. */
static void
start(const char *proxy_keys)
{
    tl_app_start(&app[0], "w1");
    tl_proxy_start(&px,
                   "upstream = app\n%s\n[admin]\nlisten = 127.0.0.1:0\n"
                   "[upstream app]\nhealth_check = off\nmax_fails = 0\nserver = 127.0.0.1:%d\n",
                   proxy_keys, app[0].port);
}

static void
stop_all(void)
{
    tl_stop_all(&px, app, 1);
}

/* Reads exactly <len> bytes; 0, or -1 at EOF, timeout or error. */
static int
read_exact(int fd, void *dst, size_t len)
{
    char *d = dst;

    while (len > 0) {
        ssize_t n = recv(fd, d, len, 0);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        d += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * Sends a handshake for <path> with <fields> (full lines) and reads the
 * response head byte by byte, so no frame after it is taken, into <head>.
 * Returns the status, or -1.
 */
static int
ws_handshake(int fd, const char *path, const char *fields, char *head, size_t cap)
{
    char req[1024];
    size_t n = 0;

    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n", path, fields);
    ck_assert_int_eq(tl_send_str(fd, req), 0);
    while (n + 1 < cap) {
        if (read_exact(fd, head + n, 1) == -1)
            return -1;
        n++;
        head[n] = '\0';
        if (n >= 4 && memcmp(head + n - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    int status = -1;
    if (sscanf(head, "HTTP/1.1 %d", &status) != 1)
        return -1;
    return status;
}

#define WS_FIELDS                                                                                 \
    "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"                  \
    "Sec-WebSocket-Key: " KEY "\r\n"

/* A tunnel to /ws<query>: connected, 101 checked. Returns the fd. */
static int
ws_open(const char *query)
{
    char path[128], head[4096];
    int fd = tl_connect(px.port);

    snprintf(path, sizeof(path), "/ws%s", query);
    int st = ws_handshake(fd, path, WS_FIELDS, head, sizeof(head));
    ck_assert_msg(st == 101, "handshake: %d\n%s", st, head);
    ck_assert_msg(strstr(head, "Sec-WebSocket-Accept: " ACCEPT "\r\n") != NULL, "%s", head);
    ck_assert_msg(strstr(head, "Upgrade: websocket\r\n") != NULL, "%s", head);
    ck_assert_msg(strstr(head, "Connection: upgrade\r\n") != NULL, "%s", head);
    ck_assert_msg(strstr(head, "X-Upstream: w1\r\n") != NULL, "%s", head);
    return fd;
}

/* Sends one masked frame; the payload is masked in pieces, so any size goes. */
static int
ws_send(int fd, int fin, int opcode, const void *data, size_t len)
{
    static const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    struct ws_head h = {.fin = fin, .opcode = opcode, .masked = 1, .len = len};
    unsigned char hb[14], piece[65536];

    memcpy(h.mask, mask, 4);
    if (tl_send(fd, hb, ws_head_put(&h, hb)) == -1)
        return -1;
    for (size_t off = 0; off < len;) {
        size_t n = len - off < sizeof(piece) ? len - off : sizeof(piece);
        memcpy(piece, (const char *)data + off, n);
        ws_unmask(piece, n, mask, off); /* masking is the same XOR */
        if (tl_send(fd, piece, n) == -1)
            return -1;
        off += n;
    }
    return 0;
}

/* Reads one frame's header; the payload is the caller's to read. Returns 0 or -1. */
static int
ws_recv_head(int fd, struct ws_head *h)
{
    unsigned char hb[14];

    if (read_exact(fd, hb, 2) == -1)
        return -1;
    size_t l7 = hb[1] & 0x7f;
    size_t more = (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((hb[1] & 0x80) ? 4 : 0);
    if (more > 0 && read_exact(fd, hb + 2, more) == -1)
        return -1;
    ck_assert_uint_eq(ws_head_get(hb, 2 + more, h), 2 + more);
    ck_assert_msg(!h->masked, "a server's frames are not masked");
    return 0;
}

/* Reads one frame of at most <cap> bytes into <buf>; returns its length, opcode in <*op>. */
static size_t
ws_recv(int fd, int *op, char *buf, size_t cap)
{
    struct ws_head h;

    ck_assert_int_eq(ws_recv_head(fd, &h), 0);
    ck_assert_uint_le(h.len, cap);
    ck_assert_int_eq(read_exact(fd, buf, (size_t)h.len), 0);
    ck_assert(h.fin);
    *op = h.opcode;
    return (size_t)h.len;
}

/* Sends <text> as one message and checks that the same comes back. */
static void
ws_roundtrip(int fd, int opcode, const char *data, size_t len)
{
    char got[4096];
    int op = -1;

    ck_assert_int_eq(ws_send(fd, 1, opcode, data, len), 0);
    size_t n = ws_recv(fd, &op, got, sizeof(got));
    ck_assert_int_eq(op, opcode);
    ck_assert_uint_eq(n, len);
    ck_assert(memcmp(got, data, len) == 0);
}

/* Waits up to <ms> for EOF on <fd>; returns the ms it took, or -1 when it did not come. */
static int64_t
wait_eof(int fd, int ms)
{
    int64_t t0 = tl_now_ms();
    char b[256];

    while (tl_now_ms() - t0 < ms) {
        ssize_t n = recv(fd, b, sizeof(b), 0);
        if (n == 0 || (n == -1 && errno == ECONNRESET))
            return tl_now_ms() - t0;
        if (n == -1 && errno != EINTR && errno != EAGAIN)
            return -1;
    }
    return -1;
}

/* Messages both ways, a frame that came with the 101, ping/pong, the close handshake. */
START_TEST(test_messages)
{
    char buf[256];
    int op = -1;

    start("");
    int fd = ws_open("?hello=1");
    /* the upstream's first frame came in the same packet as its 101 */
    size_t n = ws_recv(fd, &op, buf, sizeof(buf));
    ck_assert_int_eq(op, WS_TEXT);
    ck_assert_uint_eq(n, 5);
    ck_assert(memcmp(buf, "hello", 5) == 0);

    ws_roundtrip(fd, WS_TEXT, "ping-pong text", 14);
    ws_roundtrip(fd, WS_BINARY, "\x00\x01\xff", 3);
    char mid[3000];
    tp_fill(mid, 0, sizeof(mid));
    ws_roundtrip(fd, WS_BINARY, mid, sizeof(mid));

    /* ping -> pong with the same payload */
    ck_assert_int_eq(ws_send(fd, 1, WS_PING, "p1", 2), 0);
    n = ws_recv(fd, &op, buf, sizeof(buf));
    ck_assert_int_eq(op, WS_PONG);
    ck_assert_uint_eq(n, 2);
    ck_assert(memcmp(buf, "p1", 2) == 0);

    /* a message in two fragments comes back as two fragments */
    struct ws_head h;
    ck_assert_int_eq(ws_send(fd, 0, WS_TEXT, "frag", 4), 0);
    ck_assert_int_eq(ws_send(fd, 1, WS_CONT, "ment", 4), 0);
    ck_assert_int_eq(ws_recv_head(fd, &h), 0);
    ck_assert(!h.fin && h.opcode == WS_TEXT && h.len == 4);
    ck_assert_int_eq(read_exact(fd, buf, 4), 0);
    ck_assert_int_eq(ws_recv_head(fd, &h), 0);
    ck_assert(h.fin && h.opcode == WS_CONT && h.len == 4);
    ck_assert_int_eq(read_exact(fd, buf, 4), 0);

    /* close handshake: our close (1000), its close, then the connection ends */
    ck_assert_int_eq(ws_send(fd, 1, WS_CLOSE, "\x03\xe8", 2), 0);
    n = ws_recv(fd, &op, buf, sizeof(buf));
    ck_assert_int_eq(op, WS_CLOSE);
    ck_assert_uint_eq(n, 2);
    ck_assert(memcmp(buf, "\x03\xe8", 2) == 0);
    ck_assert_int_ge(wait_eof(fd, 5000), 0);
    close(fd);
    ck_assert(tl_file_waitfor(px.acclog, "\"GET /ws?hello=1 HTTP/1.1\" 101 ", 3000));
    ck_assert(tl_file_waitfor(px.errlog, "closed by both sides", 3000));
    stop_all();
}
END_TEST

struct sender {
    int fd;
    size_t len;
    int rc;
};

static void *
send_big(void *arg)
{
    struct sender *s = arg;
    char *msg = malloc(s->len);

    ck_assert_ptr_nonnull(msg);
    tp_fill(msg, 0, s->len);
    s->rc = ws_send(s->fd, 1, WS_BINARY, msg, s->len);
    free(msg);
    return NULL;
}

/* A 10 MB message, sent while its echo streams back (neither side holds it whole). */
START_TEST(test_big_message)
{
    const size_t len = 10 * 1024 * 1024;
    static char piece[65536];
    struct ws_head h;
    pthread_t th;

    start("");
    int fd = ws_open("");
    struct sender s = {.fd = fd, .len = len, .rc = -1};
    ck_assert_int_eq(pthread_create(&th, NULL, send_big, &s), 0);
    ck_assert_int_eq(ws_recv_head(fd, &h), 0);
    ck_assert(h.fin && h.opcode == WS_BINARY);
    ck_assert_uint_eq(h.len, len);
    uint64_t want = TP_FNV_INIT, got = TP_FNV_INIT;
    for (size_t off = 0; off < len;) {
        size_t n = len - off < sizeof(piece) ? len - off : sizeof(piece);
        ck_assert_int_eq(read_exact(fd, piece, n), 0);
        got = tp_fnv1a(got, piece, n);
        tp_fill(piece, off, n);
        want = tp_fnv1a(want, piece, n);
        off += n;
    }
    pthread_join(th, NULL);
    ck_assert_int_eq(s.rc, 0);
    ck_assert_uint_eq(got, want);
    ws_roundtrip(fd, WS_TEXT, "after", 5); /* the tunnel still works */
    close(fd);
    stop_all();
}
END_TEST

/* A half-close is passed on: the upstream sees our FIN (it then closes), we still get its bytes.
 */
START_TEST(test_half_close)
{
    char buf[64];
    int op = -1;

    start("");
    int fd = ws_open("");
    ck_assert_int_eq(ws_send(fd, 1, WS_TEXT, "last", 4), 0);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    size_t n = ws_recv(fd, &op, buf, sizeof(buf));
    ck_assert_uint_eq(n, 4);
    ck_assert(memcmp(buf, "last", 4) == 0);
    ck_assert_int_ge(wait_eof(fd, 5000), 0);
    close(fd);
    stop_all();
}
END_TEST

/* tunnel_timeout: a tunnel idle both ways is closed; traffic keeps it open. */
START_TEST(test_idle_timeout)
{
    start("tunnel_timeout = 1s");
    int fd = ws_open("");
    /* traffic every 400 ms for 2 s: never idle for 1 s */
    for (int i = 0; i < 5; i++) {
        usleep(400 * 1000);
        ws_roundtrip(fd, WS_TEXT, "tick", 4);
    }
    int64_t took = wait_eof(fd, 8000);
    ck_assert_msg(took >= 800 && took < 6000, "closed after %lld ms", (long long)took);
    close(fd);
    ck_assert(tl_file_waitfor(px.errlog, "idle for tunnel_timeout", 3000));
    stop_all();
}
END_TEST

/* SIGQUIT: a tunnel keeps working while the proxy drains, until shutdown_timeout. */
START_TEST(test_drain)
{
    start("shutdown_timeout = 2s");
    int fd = ws_open("");
    int64_t t0 = tl_now_ms();
    ck_assert_int_eq(kill(px.pid, SIGQUIT), 0);
    usleep(500 * 1000);
    ws_roundtrip(fd, WS_TEXT, "still here", 10);
    int64_t took = wait_eof(fd, 10000);
    ck_assert_msg(took >= 0, "the tunnel outlived shutdown_timeout");
    int64_t total = tl_now_ms() - t0;
    ck_assert_msg(total >= 1500, "cut after %lld ms, before shutdown_timeout", (long long)total);
    close(fd);
    stop_all();
}
END_TEST

/* The number of workers in state <state> on /status.json. */
static int
workers_in(const char *state)
{
    struct tl_resp r;
    char key[64];
    int n = -1;

    ck_assert_int_eq(tl_request(px.admin_port, "GET /status.json HTTP/1.1\r\nHost: t\r\n\r\n", &r),
                     200);
    snprintf(key, sizeof(key), "\"%s\":", state);
    const char *p = strstr(r.body, "\"worker_states\":{");
    ck_assert_ptr_nonnull(p);
    p = strstr(p, key);
    ck_assert_ptr_nonnull(p);
    n = atoi(p + strlen(key));
    tl_resp_free(&r);
    return n;
}

#define NTUNNELS 100

/* 100 tunnels at once; plain requests keep being served; the scoreboard shows them. */
START_TEST(test_concurrent)
{
    static int fds[NTUNNELS];
    char msg[32];
    struct tl_resp r;

    start("workers = 108");
    for (int i = 0; i < NTUNNELS; i++)
        fds[i] = ws_open("");
    for (int i = 0; i < NTUNNELS; i++) {
        int len = snprintf(msg, sizeof(msg), "tunnel %d", i);
        ws_roundtrip(fds[i], WS_TEXT, msg, (size_t)len);
    }
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq(tl_request(px.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
        ck_assert_str_eq(r.body, "hello from w1\n");
        tl_resp_free(&r);
    }
    ck_assert_int_eq(workers_in("tunnel"), NTUNNELS);
    /* every tunnel still answers after the plain requests */
    for (int i = NTUNNELS - 1; i >= 0; i--) {
        int len = snprintf(msg, sizeof(msg), "again %d", i);
        ws_roundtrip(fds[i], WS_TEXT, msg, (size_t)len);
        close(fds[i]);
    }
    int64_t t0 = tl_now_ms();
    while (workers_in("tunnel") > 0 && tl_now_ms() - t0 < 5000)
        usleep(50 * 1000);
    ck_assert_int_eq(workers_in("tunnel"), 0);
    stop_all();
}
END_TEST

/* Upgrade: h2c is not tunnelled: its fields are dropped and the answer is ordinary. */
START_TEST(test_h2c_not_tunnelled)
{
    char head[4096];

    start("");
    int fd = tl_connect(px.port);
    int st = ws_handshake(fd, "/ws",
                          "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                          "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n",
                          head, sizeof(head));
    ck_assert_msg(st == 426, "%d\n%s", st, head);
    char body[16] = {0};
    ck_assert_int_eq(read_exact(fd, body, 9), 0); /* "upgrade=\n": no Upgrade reached it */
    ck_assert_str_eq(body, "upgrade=\n");
    close(fd);
    stop_all();
}
END_TEST

/* A 101 to a request that did not ask for a WebSocket is a bad answer: 502. */
START_TEST(test_101_without_upgrade)
{
    struct tl_resp r;

    start("");
    ck_assert_int_eq(tl_request(px.port, "GET /upgrade101 HTTP/1.1\r\nHost: t\r\n\r\n", &r), 502);
    tl_resp_free(&r);
    ck_assert(tl_file_waitfor(px.errlog, "101 to a request without Upgrade", 3000));
    stop_all();
}
END_TEST

/* websocket = off: a handshake reaches the app without its upgrade fields; a 101 is a 502. */
START_TEST(test_websocket_off)
{
    char head[4096];

    start("websocket = off");
    int fd = tl_connect(px.port);
    ck_assert_int_eq(ws_handshake(fd, "/ws", WS_FIELDS, head, sizeof(head)), 426);
    close(fd);
    fd = tl_connect(px.port);
    ck_assert_int_eq(ws_handshake(fd, "/upgrade101", WS_FIELDS, head, sizeof(head)), 502);
    close(fd);
    stop_all();
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("it_websocket");
    TCase *tc = tcase_create("websocket");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_messages);
    tcase_add_test(tc, test_big_message);
    tcase_add_test(tc, test_half_close);
    tcase_add_test(tc, test_idle_timeout);
    tcase_add_test(tc, test_drain);
    tcase_add_test(tc, test_concurrent);
    tcase_add_test(tc, test_h2c_not_tunnelled);
    tcase_add_test(tc, test_101_without_upgrade);
    tcase_add_test(tc, test_websocket_off);
    suite_add_tcase(s, tc);
    return tl_run(s);
}
