/*
 * it_upstream_tls: TLS from the proxy to its upstreams ([upstream] tls,
 * tls_verify, tls_ca, tls_server_name). Real testapp upstreams serving
 * HTTPS (testapp --tls) with certificates made at start by
 * tests/tls_certs.sh in a temp dir (removed at exit), the real daemon in
 * front of them, curl and raw sockets as clients.
 */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "testlib.h"
#include "testpattern.h"
#include "testws.h"

#define REQ(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"

static char certs[128]; /* the temp dir of tls_certs.sh */
static struct tl_proc app[2];
static struct tl_proxy px;

/* Starts TLS upstream <i> named <name> with the certificate pair <pair> ("up", "uprogue"). */
static void
start_app(int i, const char *name, const char *pair)
{
    char cert[192], key[192];

    snprintf(cert, sizeof(cert), "%s/%s.crt", certs, pair);
    snprintf(key, sizeof(key), "%s/%s.key", certs, pair);
    tl_app_start_tls(&app[i], name, 0, 0, cert, key);
}

/* The proxy in front of upstream 0, with <workers> and the group keys <keys> (printf-style). */
static void
start_proxy1(int workers, const char *keys)
{
    tl_proxy_start(&px,
                   "workers = %d\nupstream = app\nclient_max_body_size = 1g\n"
                   "[upstream app]\nhealth_check = off\nmax_fails = 0\nserver = 127.0.0.1:%d\ntls "
                   "= on\ntls_ca = %s/ca.crt\n%s\n",
                   workers, app[0].port, certs, keys);
}

static void
stop_all(void)
{
    tl_stop_all(&px, app, 2);
}

/* One GET <path> through the proxy on a new connection; returns the status, body in <r>. */
static int
get(const char *path, struct tl_resp *r)
{
    char req[256];

    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
    return tl_request(px.port, req, r);
}

/* The connections upstream <i> accepted, asked over HTTPS directly (that one not counted). */
static long
app_conns(int i)
{
    char out[128];
    long conns = -1, reqs = -1;

    ck_assert_int_eq(tl_sh(out, sizeof(out),
                           "curl -s --cacert %s/ca.crt https://127.0.0.1:%d/stats", certs,
                           app[i].port),
                     0);
    ck_assert_msg(sscanf(out, "connections=%ld requests=%ld", &conns, &reqs) == 2, "got %s", out);
    return conns - 1;
}

/* ---- verification ------------------------------------------------------------------------ */

/* Verified by the server's IP (its default name), then by tls_server_name, sent as SNI. */
START_TEST(t_verified)
{
    struct tl_resp r;

    start_app(0, "t1", "up");
    start_proxy1(2, "");
    ck_assert_int_eq(get("/", &r), 200);
    ck_assert_str_eq(r.body, "hello from t1\n");
    tl_resp_free(&r);
    /* an address is verified against the IP entries and, as RFC 6066 says, not sent as SNI */
    ck_assert_int_eq(get("/tls", &r), 200);
    ck_assert_msg(strncmp(r.body, "tls=1 resumed=", 14) == 0 && strstr(r.body, " sni=-\n"), "%s",
                  r.body);
    tl_resp_free(&r);
    tl_stop(px.pid);
    px.pid = 0;

    start_proxy1(2, "tls_server_name = app.internal");
    ck_assert_int_eq(get("/tls", &r), 200);
    ck_assert_msg(strstr(r.body, " sni=app.internal\n") != NULL, "%s", r.body);
    tl_resp_free(&r);
    ck_assert_int_eq(tl_file_count(px.errlog, "TLS to"), 0);
    stop_all();
}
END_TEST

/* A name the certificate does not carry: 502 and a log line that says what was expected. */
START_TEST(t_wrong_name_502)
{
    struct tl_resp r;
    char want[192];

    start_app(0, "t1", "up");
    start_proxy1(1, "tls_server_name = wrong.internal");
    int64_t t0 = tl_now_ms();
    ck_assert_int_eq(get("/", &r), 502);
    tl_resp_free(&r);
    ck_assert_int_lt(tl_now_ms() - t0, 2000);
    snprintf(want, sizeof(want),
             "TLS to 127.0.0.1:%d: certificate verify failed: hostname mismatch "
             "(expected wrong.internal)",
             app[0].port);
    ck_assert_msg(tl_file_waitfor(px.errlog, want, 2000), "no \"%s\" in the error log", want);
    ck_assert(tl_file_waitfor(px.acclog, "\"GET / HTTP/1.1\" 502 ", 2000));
    stop_all();
}
END_TEST

/*
 * An upstream whose certificate comes from a CA we do not trust: 502, and
 * a failure for the breaker, which ejects it while its peer serves.
 */
START_TEST(t_unknown_ca_502_and_breaker)
{
    struct tl_resp r;
    char want[192];
    int st[8], n502 = 0;

    start_app(0, "good", "up");
    start_app(1, "rogue", "uprogue");
    tl_proxy_start(&px,
                   "workers = 1\nupstream = app\n[upstream app]\nhealth_check = off\n"
                   "retries = 0\nmax_fails = 2\ncooldown = 60s\nserver = 127.0.0.1:%d\n"
                   "server = 127.0.0.1:%d\ntls = on\ntls_ca = %s/ca.crt\n",
                   app[0].port, app[1].port, certs);
    for (int i = 0; i < 8; i++) {
        st[i] = get("/", &r);
        if (st[i] == 200)
            ck_assert_str_eq(r.body, "hello from good\n");
        tl_resp_free(&r);
        ck_assert_msg(st[i] == 200 || st[i] == 502, "request %d: %d", i, st[i]);
        n502 += st[i] == 502;
    }
    /* round robin sends every other request to it until its second failure ejects it */
    ck_assert_int_eq(n502, 2);
    ck_assert_int_eq(st[6], 200);
    ck_assert_int_eq(st[7], 200);
    snprintf(want, sizeof(want),
             "TLS to 127.0.0.1:%d: certificate verify failed: unable to get local issuer "
             "certificate",
             app[1].port);
    ck_assert_msg(tl_file_waitfor(px.errlog, want, 2000), "no \"%s\"", want);
    snprintf(want, sizeof(want),
             "127.0.0.1:%d ejected for 60s: 2 consecutive failures, last: TLS to", app[1].port);
    ck_assert_msg(tl_file_waitfor(px.errlog, want, 2000), "no \"%s\"", want);
    stop_all();
}
END_TEST

/* tls_verify = off takes any certificate (here: an unknown CA's, a name not asked for). */
START_TEST(t_verify_off)
{
    struct tl_resp r;

    start_app(0, "rogue", "uprogue");
    tl_proxy_start(&px,
                   "workers = 1\nupstream = app\n[upstream app]\nhealth_check = off\n"
                   "server = 127.0.0.1:%d\ntls = on\ntls_verify = off\n"
                   "tls_server_name = other.test\n",
                   app[0].port);
    ck_assert_int_eq(get("/", &r), 200);
    ck_assert_str_eq(r.body, "hello from rogue\n");
    tl_resp_free(&r);
    ck_assert_int_eq(get("/tls", &r), 200);
    ck_assert_msg(strstr(r.body, " sni=other.test\n") != NULL, "%s", r.body);
    tl_resp_free(&r);
    stop_all();
}
END_TEST

/* ---- connections --------------------------------------------------------------------------- */

/* Keep-alive to a TLS upstream: 300 requests, one upstream connection. */
START_TEST(t_keepalive_reuse)
{
    struct tl_resp r;

    start_app(0, "t1", "up");
    start_proxy1(1, "keepalive = 16");
    int fd = tl_connect(px.port);
    for (int i = 0; i < 300; i++) {
        ck_assert(tl_send_str(fd, REQ("/")) == 0);
        ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
        ck_assert_int_eq(r.status, 200);
        tl_resp_free(&r);
    }
    close(fd);
    /* and new client connections take the pooled one too */
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq(get("/", &r), 200);
        tl_resp_free(&r);
    }
    ck_assert_int_eq(app_conns(0), 1);
    stop_all();
}
END_TEST

/* Without keep-alive, each request connects anew and resumes the last session. */
START_TEST(t_session_resumed)
{
    struct tl_resp r;

    start_app(0, "t1", "up");
    start_proxy1(1, "keepalive = 0");
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(get("/tls", &r), 200);
        ck_assert_msg(strncmp(r.body, i == 0 ? "tls=1 resumed=0" : "tls=1 resumed=1", 15) == 0,
                      "request %d: %s", i, r.body);
        tl_resp_free(&r);
    }
    ck_assert_int_eq(app_conns(0), 5);
    stop_all();
}
END_TEST

/*
 * A pooled TLS connection whose server went away (restarted on the same
 * port): a POST, which cannot be retried, finds it closed before using it
 * (the idle check reads the TLS close); a GET trusts it, fails, and is
 * retried on a fresh one. Both resume no session of the old process but
 * make a full handshake with the new one.
 */
START_TEST(t_stale_pooled_tls)
{
    struct tl_resp r;
    char cert[192], key[192];

    snprintf(cert, sizeof(cert), "%s/up.crt", certs);
    snprintf(key, sizeof(key), "%s/up.key", certs);
    start_app(0, "a1", "up");
    start_proxy1(1, "keepalive = 4");
    int port = app[0].port;
    int fd = tl_connect(px.port);
    ck_assert(tl_send_str(fd, REQ("/")) == 0);
    ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
    tl_resp_free(&r);
    for (int round = 0; round < 2; round++) {
        tl_stop(app[0].pid);
        tl_app_start_tls(&app[0], round == 0 ? "b1" : "b2", port, 0, cert, key);
        usleep(100 * 1000);
        if (round == 0)
            ck_assert(tl_send_str(fd, "POST /sum HTTP/1.1\r\nHost: t\r\n"
                                      "Content-Length: 3\r\n\r\nabc") == 0);
        else
            ck_assert(tl_send_str(fd, REQ("/")) == 0);
        ck_assert_int_eq(tl_read_response(fd, false, &r), 0);
        ck_assert_msg(r.status == 200, "round %d: %d", round, r.status);
        ck_assert_str_eq(r.body, round == 0 ? "len=3 fnv=e71fa2190541574b\n" : "hello from b2\n");
        tl_resp_free(&r);
    }
    close(fd);
    ck_assert_int_eq(tl_file_count(px.errlog, "TLS to"), 0);
    stop_all();
}
END_TEST

/* Large bodies both ways through TLS, every framing, checked byte for byte. */
START_TEST(t_large_bodies)
{
    const char *modes[] = {"length", "chunked", "close"};
    char out[512], path[256], want[128];
    uint64_t n = 32ull << 20, len;

    start_app(0, "t1", "up");
    start_proxy1(2, "keepalive = 4");
    snprintf(path, sizeof(path), "%s/dl", px.dir);
    uint64_t h = tp_pattern_fnv(n);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(tl_sh(out, sizeof(out),
                               "curl -s -o %s -w '%%{http_code}' "
                               "'http://127.0.0.1:%d/bytes?n=%llu&mode=%s&chunk=1000'",
                               path, px.port, (unsigned long long)n, modes[i]),
                         0);
        ck_assert_str_eq(out, "200");
        ck_assert_msg(tl_fnv_file(path, &len) == h, "mode %s: body differs", modes[i]);
        ck_assert_int_eq(len, n);
    }
    ck_assert_int_eq(tl_sh(NULL, 0, "head -c 40000000 /dev/urandom > %s", path), 0);
    h = tl_fnv_file(path, &len);
    snprintf(want, sizeof(want), "len=%llu fnv=%016llx\n", (unsigned long long)len,
             (unsigned long long)h);
    const char *te[] = {"", "-H 'Transfer-Encoding: chunked'"};
    for (size_t i = 0; i < 2; i++) {
        ck_assert_int_eq(tl_sh(out, sizeof(out),
                               "curl -s %s --data-binary @%s http://127.0.0.1:%d/sum", te[i], path,
                               px.port),
                         0);
        ck_assert_str_eq(out, want);
        /* echo: the upstream answers while it still reads, both directions at once */
        ck_assert_int_eq(tl_sh(out, sizeof(out),
                               "curl -s %s --data-binary @%s http://127.0.0.1:%d/echo | "
                               "cmp - %s && echo same",
                               te[i], path, px.port, path),
                         0);
        ck_assert_str_eq(out, "same\n");
    }
    unlink(path);
    stop_all();
}
END_TEST

/*
 * A WebSocket to a TLS upstream: the 101 comes over TLS, and the tunnel
 * then carries the frames through the same TLS connection both ways, its
 * close too.
 */
START_TEST(t_websocket_over_tls)
{
    static const unsigned char mask[4] = {1, 2, 3, 4};
    char req[512], head[4096], msg[] = "hello over tls";
    unsigned char frame[64], got[64];
    size_t n = 0;

    start_app(0, "w1", "up");
    start_proxy1(1, "");
    int fd = tl_connect(px.port);
    snprintf(req, sizeof(req),
             "GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    ck_assert_int_eq(tl_send_str(fd, req), 0);
    /* the head byte by byte, so no frame after it is taken */
    while (n + 1 < sizeof(head) && (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0)) {
        ck_assert_int_eq(recv(fd, head + n, 1, 0), 1);
        head[++n] = '\0';
    }
    ck_assert_msg(strncmp(head, "HTTP/1.1 101 ", 13) == 0, "%s", head);
    struct ws_head h = {.fin = 1, .opcode = 1, .masked = 1, .len = sizeof(msg) - 1};
    memcpy(h.mask, mask, 4);
    size_t hl = ws_head_put(&h, frame);
    memcpy(frame + hl, msg, sizeof(msg) - 1);
    ws_unmask(frame + hl, sizeof(msg) - 1, mask, 0);
    ck_assert_int_eq(tl_send(fd, frame, hl + sizeof(msg) - 1), 0);
    size_t want = 2 + sizeof(msg) - 1, have = 0; /* the echo: unmasked, a 2-byte header */
    while (have < want) {
        ssize_t r = recv(fd, got + have, want - have, 0);
        ck_assert_msg(r > 0, "the echo did not come back");
        have += (size_t)r;
    }
    ck_assert_int_eq(got[0], 0x81);
    ck_assert_int_eq(got[1], sizeof(msg) - 1);
    ck_assert(memcmp(got + 2, msg, sizeof(msg) - 1) == 0);
    /* a close frame gets a close back, and the tunnel ends */
    struct ws_head c = {.fin = 1, .opcode = 8, .masked = 1, .len = 0};
    memcpy(c.mask, mask, 4);
    ck_assert_int_eq(tl_send(fd, frame, ws_head_put(&c, frame)), 0);
    ck_assert_int_eq(recv(fd, got, 2, MSG_WAITALL), 2);
    ck_assert_int_eq(got[0], 0x88);
    close(fd);
    ck_assert(tl_file_waitfor(px.errlog, "tunnel 127.0.0.1 <-> 127.0.0.1:", 3000));
    stop_all();
}
END_TEST

/* ---- health checks ------------------------------------------------------------------------- */

/*
 * Probes go over TLS with the group's verification: a TLS upstream is up,
 * then down when it dies; a group that expects another name finds it down.
 */
START_TEST(t_health_over_tls)
{
    struct tl_resp r;
    char want[256];

    start_app(0, "t1", "up");
    tl_proxy_start(&px,
                   "workers = 1\nupstream = app\n"
                   "[upstream app]\nserver = 127.0.0.1:%d\ntls = on\ntls_ca = %s/ca.crt\n"
                   "health_interval = 200ms\nfall = 2\nrise = 1\n"
                   "[upstream other]\nserver = 127.0.0.1:%d\ntls = on\ntls_ca = %s/ca.crt\n"
                   "tls_server_name = wrong.internal\nhealth_interval = 200ms\n",
                   app[0].port, certs, app[0].port, certs);
    snprintf(want, sizeof(want), "[app] 127.0.0.1:%d unknown -> up", app[0].port);
    ck_assert_msg(tl_file_waitfor(px.errlog, want, 3000), "no \"%s\"", want);
    snprintf(want, sizeof(want),
             "[other] 127.0.0.1:%d unknown -> down: TLS: certificate verify failed: hostname "
             "mismatch (expected wrong.internal)",
             app[0].port);
    ck_assert_msg(tl_file_waitfor(px.errlog, want, 3000), "no \"%s\"", want);
    ck_assert_int_eq(get("/", &r), 200);
    tl_resp_free(&r);

    tl_stop(app[0].pid);
    app[0].pid = 0;
    snprintf(want, sizeof(want), "[app] 127.0.0.1:%d up -> down: connect refused", app[0].port);
    ck_assert_msg(tl_file_waitfor(px.errlog, want, 3000), "no \"%s\"", want);
    ck_assert_int_eq(get("/", &r), 503);
    tl_resp_free(&r);
    stop_all();
}
END_TEST

/*
 * A server that takes the connection and never answers the handshake: the
 * request gets 504 after connect_timeout, the probe fails after
 * health_timeout, each saying it was the handshake.
 */
START_TEST(t_handshake_timeout)
{
    struct tl_resp r;
    char want[256];
    int port;
    int lfd = tl_listen_local(16, &port); /* the kernel accepts; nobody reads the ClientHello */

    tl_proxy_start(&px,
                   "workers = 1\nupstream = app\n"
                   "[upstream app]\nserver = 127.0.0.1:%d\ntls = on\nhealth_check = off\n"
                   "connect_timeout = 300ms\nmax_fails = 0\n"
                   "[upstream probed]\nserver = 127.0.0.1:%d\ntls = on\nhealth_timeout = 300ms\n",
                   port, port);
    snprintf(want, sizeof(want),
             "[probed] 127.0.0.1:%d unknown -> down: TLS handshake timed out after 300 ms", port);
    ck_assert_msg(tl_file_waitfor(px.errlog, want, 3000), "no \"%s\"", want);
    int64_t t0 = tl_now_ms();
    ck_assert_int_eq(get("/", &r), 504);
    tl_resp_free(&r);
    int64_t took = tl_now_ms() - t0;
    ck_assert_msg(took >= 250 && took < 2000, "took %lld ms", (long long)took);
    snprintf(want, sizeof(want), "TLS handshake with 127.0.0.1:%d: Connection timed out", port);
    ck_assert_msg(tl_file_waitfor(px.errlog, want, 2000), "no \"%s\"", want);
    stop_all();
    close(lfd);
}
END_TEST

/* -t checks a CA file and names file, line and key. */
START_TEST(t_config_check)
{
    char path[256], args[320], out[1024], want[640];
    FILE *f;

    snprintf(path, sizeof(path), "%s/bad.ini", certs);
    f = fopen(path, "w");
    ck_assert(f != NULL);
    fprintf(f,
            "[proxy]\nlisten = 127.0.0.1:0\nupstream = app\n[upstream app]\n"
            "server = 127.0.0.1:1\ntls = on\ntls_ca = %s/missing.pem\n",
            certs);
    fclose(f);
    snprintf(args, sizeof(args), "-t -c %s", path);
    ck_assert_int_ne(tl_proxy_cmd(args, out, sizeof(out)), 0);
    snprintf(want, sizeof(want),
             "%s:7: [upstream app] tls_ca: %s/missing.pem: cannot open: No such file or directory",
             path, certs);
    ck_assert_msg(strstr(out, want) != NULL, "%s", out);
    /* the CA's key is no CA file */
    f = fopen(path, "w");
    ck_assert(f != NULL);
    fprintf(f,
            "[proxy]\nlisten = 127.0.0.1:0\nupstream = app\n[upstream app]\n"
            "server = 127.0.0.1:1\ntls = on\ntls_ca = %s/ca.key\n",
            certs);
    fclose(f);
    ck_assert_int_ne(tl_proxy_cmd(args, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, ":7: [upstream app] tls_ca: ") != NULL &&
                      strstr(out, "no CA certificate in it") != NULL,
                  "%s", out);
    unlink(path);
}
END_TEST

static pid_t main_pid; /* Check forks a child per test: only the runner removes the files */

static void
remove_certs(void)
{
    char cmd[192];

    if (certs[0] == '\0' || getpid() != main_pid)
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", certs);
    if (system(cmd) != 0)
        fprintf(stderr, "it_upstream_tls: could not remove %s\n", certs);
}

int
main(void)
{
    snprintf(certs, sizeof(certs), "/tmp/mp-uptls-XXXXXX");
    if (mkdtemp(certs) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    main_pid = getpid();
    atexit(remove_certs);
    /* not tl_sh(): its assertions need a running test */
    char cmd[192];
    snprintf(cmd, sizeof(cmd), "sh tests/tls_certs.sh %s", certs);
    if (system(cmd) != 0) {
        fprintf(stderr, "it_upstream_tls: tests/tls_certs.sh failed\n");
        return 1;
    }
    Suite *s = suite_create("it_upstream_tls");
    TCase *tc = tcase_create("upstream_tls");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_verified);
    tcase_add_test(tc, t_wrong_name_502);
    tcase_add_test(tc, t_unknown_ca_502_and_breaker);
    tcase_add_test(tc, t_verify_off);
    tcase_add_test(tc, t_keepalive_reuse);
    tcase_add_test(tc, t_session_resumed);
    tcase_add_test(tc, t_stale_pooled_tls);
    tcase_add_test(tc, t_large_bodies);
    tcase_add_test(tc, t_websocket_over_tls);
    tcase_add_test(tc, t_health_over_tls);
    tcase_add_test(tc, t_handshake_timeout);
    tcase_add_test(tc, t_config_check);
    suite_add_tcase(s, tc);
    return tl_run(s);
}
