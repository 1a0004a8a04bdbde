/*
 * Unit tests for the byte pipe of an upgraded connection (src/tunnel.c)
 * (Check). Both ends are socketpairs: the client's through conn.c (with
 * bytes already buffered after a head), the upstream's a plain socket; the
 * tunnel runs in a thread while the test drives the far ends.
 */
#include "conn.h"
#include "log.h"
#include "net.h"
#include "shm.h"
#include "testlib.h"
#include "tunnel.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char ini[] = "[proxy]\n"
                          "listen = 127.0.0.1:0\n"
                          "workers = 1\n"
                          "upstream = app\n"
                          "[upstream app]\n"
                          "health_check = off\n"
                          "server = 127.0.0.1:3001\n";

static struct config *cfg;
static struct shm *shm;
static struct conn conn;
static int client = -1;   /* the client's far end */
static int upstream = -1; /* the upstream's far end */
static struct tunnel t;
static struct upconn uc; /* the upstream end: plain */
static enum tunnel_end end;
static pthread_t th;

static void
setup(void)
{
    char err[512] = "";
    int cs[2], us[2];
    struct sockaddr_storage ss = {.ss_family = AF_INET};

    cfg = cfg_load_string(ini, "t.ini", err, sizeof(err));
    ck_assert_msg(cfg != NULL, "config: %s", err);
    log_set_level(CFG_LOG_WARN);
    signal(SIGPIPE, SIG_IGN); /* as in a worker: a write to a closed peer fails with EPIPE */
    shm = shm_create(cfg, 1);
    ck_assert(shm != NULL);
    ck_assert_int_eq(conn_init(&conn, cfg, shm), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, cs), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, us), 0);
    ck_assert_int_eq(net_set_blocking(cs[0], false), 0);
    ck_assert_int_eq(net_set_blocking(us[0], false), 0);
    conn_open(&conn, cs[0], &ss);
    client = cs[1];
    upstream = us[1];
    struct timeval tv = {.tv_sec = 5};
    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(upstream, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    uc = UPCONN_NONE;
    uc.fd = us[0];
    t = (struct tunnel){
        .client = &conn,
        .up = &uc,
        .idle_ms = 5000,
        .up_buf = malloc(NET_IO_BUF),
        .down_buf = malloc(NET_IO_BUF),
    };
    ck_assert(t.up_buf != NULL && t.down_buf != NULL);
}

static void
teardown(void)
{
    conn_close(&conn);
    conn_free(&conn);
    close(uc.fd);
    close(client);
    close(upstream);
    free(t.up_buf);
    free(t.down_buf);
    shm_destroy(shm);
    cfg_free(cfg);
}

static void *
run(void *arg)
{
    (void)arg;
    end = tunnel_run(&t);
    return NULL;
}

static void
start(void)
{
    ck_assert_int_eq(pthread_create(&th, NULL, run, NULL), 0);
}

/* Reads exactly <n> bytes from <fd> into <buf>. */
static void
read_n(int fd, char *buf, size_t n)
{
    while (n > 0) {
        ssize_t r = recv(fd, buf, n, 0);
        ck_assert_msg(r > 0, "recv: %zd (%s)", r, strerror(errno));
        buf += r;
        n -= (size_t)r;
    }
}

/* True when <fd> reads EOF (within its 5 s timeout). */
static bool
at_eof(int fd)
{
    char b;
    return recv(fd, &b, 1, 0) == 0;
}

/* Bytes both ways, the client's buffered ones first; each half-close passed on. */
START_TEST(test_both_ways_and_half_close)
{
    static const char head[] = "GET /ws HTTP/1.1\r\nHost: t\r\n\r\n";
    struct http_request req;
    char buf[64];

    /* a head, then bytes that came with it: they are the tunnel's first */
    ck_assert_int_eq(tl_send_str(client, "GET /ws HTTP/1.1\r\nHost: t\r\n\r\nearly"), 0);
    ck_assert_int_eq(conn_read_head(&conn, &req), (ssize_t)strlen(head));
    start();
    read_n(upstream, buf, 5);
    ck_assert(memcmp(buf, "early", 5) == 0);
    ck_assert_int_eq(tl_send_str(upstream, "down1"), 0);
    read_n(client, buf, 5);
    ck_assert(memcmp(buf, "down1", 5) == 0);
    ck_assert_int_eq(tl_send_str(client, "up2"), 0);
    read_n(upstream, buf, 3);
    ck_assert(memcmp(buf, "up2", 3) == 0);
    /* the client is done sending: the upstream sees its FIN, and may still answer */
    ck_assert_int_eq(shutdown(client, SHUT_WR), 0);
    ck_assert(at_eof(upstream));
    ck_assert_int_eq(tl_send_str(upstream, "last"), 0);
    read_n(client, buf, 4);
    ck_assert(memcmp(buf, "last", 4) == 0);
    /* then the upstream closes too: the client sees EOF, and the tunnel is over */
    ck_assert_int_eq(shutdown(upstream, SHUT_WR), 0);
    ck_assert(at_eof(client));
    pthread_join(th, NULL);
    ck_assert_int_eq(end, TUNNEL_CLOSED);
    ck_assert_uint_eq(t.up_bytes, 8);
    ck_assert_uint_eq(t.down_bytes, 9);
}
END_TEST

#define LARGE_TOTAL (8 * 1024 * 1024)

/*
 * The upstream's side of test_large_transfer: a thread, not a forked
 * process (a fork while the tunnel's thread runs can leave the child stuck
 * on a lock that thread held, as ASan's allocator did about once in 20).
 */
static void *
send_large(void *arg)
{
    static char piece[65536];
    (void)arg;
    for (size_t off = 0; off < LARGE_TOTAL; off += sizeof(piece)) {
        for (size_t i = 0; i < sizeof(piece); i++)
            piece[i] = (char)((off + i) * 7);
        if (tl_send(upstream, piece, sizeof(piece)) == -1)
            return (void *)1;
    }
    shutdown(upstream, SHUT_WR);
    return NULL;
}

/* A large transfer one way while the other end is slow to read: nothing is lost or reordered. */
START_TEST(test_large_transfer)
{
    const size_t total = LARGE_TOTAL;
    static char piece[65536];
    uint64_t want = 0, got = 0;
    pthread_t sender;
    void *sent;

    start();
    ck_assert_int_eq(pthread_create(&sender, NULL, send_large, NULL), 0);
    for (size_t off = 0; off < total; off += sizeof(piece)) {
        read_n(client, piece, sizeof(piece));
        for (size_t i = 0; i < sizeof(piece); i++) {
            want += (unsigned char)(char)((off + i) * 7);
            got += (unsigned char)piece[i];
        }
    }
    ck_assert_uint_eq(got, want);
    ck_assert(at_eof(client));
    ck_assert_int_eq(pthread_join(sender, &sent), 0);
    ck_assert_ptr_null(sent);
    shutdown(client, SHUT_WR);
    pthread_join(th, NULL);
    ck_assert_int_eq(end, TUNNEL_CLOSED);
    ck_assert_uint_eq(t.down_bytes, total);
}
END_TEST

/* Nothing either way for idle_ms: the tunnel ends; traffic before that kept it open. */
START_TEST(test_idle)
{
    char buf[8];

    t.idle_ms = 300;
    int64_t t0 = tl_now_ms();
    start();
    for (int i = 0; i < 3; i++) {
        usleep(150 * 1000);
        ck_assert_int_eq(tl_send_str(client, "x"), 0);
        read_n(upstream, buf, 1);
    }
    pthread_join(th, NULL);
    int64_t took = tl_now_ms() - t0;
    ck_assert_int_eq(end, TUNNEL_IDLE);
    ck_assert_msg(took >= 700 && took < 3000, "ended after %lld ms", (long long)took);
}
END_TEST

/* An upstream that goes away: its EOF reaches the client, whose next bytes cannot be passed on. */
START_TEST(test_upstream_gone)
{
    char buf[8];

    start();
    ck_assert_int_eq(tl_send_str(client, "data"), 0);
    read_n(upstream, buf, 4);
    close(upstream);
    upstream = -1;
    ck_assert(at_eof(client));
    ck_assert_int_eq(tl_send_str(client, "more"), 0);
    pthread_join(th, NULL);
    ck_assert_int_eq(end, TUNNEL_UPSTREAM_FAILED);
    ck_assert_int_eq(t.err, EPIPE);
}
END_TEST

static Suite *
tunnel_suite(void)
{
    Suite *s = suite_create("tunnel");
    TCase *tc = tcase_create("tunnel");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_both_ways_and_half_close);
    tcase_add_test(tc, test_large_transfer);
    tcase_add_test(tc, test_idle);
    tcase_add_test(tc, test_upstream_gone);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return tl_run(tunnel_suite());
}
