/*
 * it_tls: TLS termination with the real daemon, real upstream processes and
 * real clients (curl and openssl s_client). main() makes the certificates
 * once with tests/tls_certs.sh in a temporary directory: a CA, ECDSA and RSA
 * leaves for a.test and b.test, a wildcard *.w.test, client certificates.
 *
 * Every proxy here has a plain listener first (tl_proxy_start()'s, whose
 * port is px.port) and a tls one on 127.0.0.2 (tls_port(); two listeners
 * on port 0 of one address would be the same listener to the config).
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"
#include "testpattern.h"

static char certdir[64];
static struct tl_proc app[1];
static struct tl_proxy px;

static void
stop_all(void)
{
    tl_stop_all(&px, app, 1);
}

/* The port of the proxy's second listener, the tls one (from the log of the ports it bound). */
static int
tls_port(void)
{
    FILE *f = fopen(px.errlog, "r");
    char line[1024];
    int n = 0, port = 0;

    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        char *s = strstr(line, "(port ");
        if (s != NULL && strstr(line, "listening on") != NULL && ++n == 2) {
            port = atoi(s + 6);
            break;
        }
    }
    fclose(f);
    ck_assert_int_gt(port, 0);
    return port;
}

/* The [tls] section with the ECDSA and RSA certificates for a.test/b.test and *.w.test. */
#define TLS_SECTION                                                                               \
    "[tls]\ncertificate = %s/combined.pem\ncertificate = %s/rsa.crt key=%s/rsa.key\n"             \
    "certificate = %s/wild.crt key=%s/wild.key\n"
#define TLS_ARGS certdir, certdir, certdir, certdir, certdir

/* Starts the app and a proxy with a tls listener; <extra_proxy> and <extra_tls> go in. */
static void
start(const char *extra_proxy, const char *extra_tls)
{
    tl_app_start(&app[0], "app1");
    tl_proxy_start(&px,
                   "listen = 127.0.0.2:0 tls\nworkers = 4\nupstream = app\n%s"
                   "[upstream app]\nserver = 127.0.0.1:%d\nhealth_check = off\n" TLS_SECTION "%s",
                   extra_proxy, app[0].port, TLS_ARGS, extra_tls);
}

/* curl <args> against https://<name>:<tls port><path>, the test CA trusted; its output in <out>.
 */
static int
curl_tls(char *out, size_t cap, const char *name, const char *path, const char *args)
{
    int port = tls_port();

    return tl_sh(out, cap,
                 "curl -sS --max-time 100 --cacert %s/ca.crt --resolve %s:%d:127.0.0.2 %s "
                 "https://%s:%d%s 2>&1",
                 certdir, name, port, args, name, port, path);
}

/*
 * openssl s_client to the tls port with <args>, sending one HTTP/1.0
 * request and reading until the close (so that TLS 1.3 session tickets,
 * sent after the handshake, are received); what it printed in <out>.
 */
static int
s_client(char *out, size_t cap, const char *args)
{
    return tl_sh(out, cap,
                 "printf 'GET / HTTP/1.0\\r\\nHost: a.test\\r\\n\\r\\n' | timeout 20 openssl "
                 "s_client -ign_eof -connect 127.0.0.2:%d -CAfile %s/ca.crt %s 2>&1",
                 tls_port(), certdir, args);
}

/* Sends SIGHUP and waits for the new generation to serve. */
static void
reload_and_wait(int nth)
{
    char want[64];

    snprintf(want, sizeof(want), "generation %d serving", nth + 1);
    kill(px.pid, SIGHUP);
    ck_assert_msg(tl_file_waitfor(px.errlog, want, 10000), "no \"%s\"", want);
}

/* HTTPS end to end: headers the upstream sees, HSTS, the access log, protocols. */
START_TEST(test_https_basics)
{
    static char out[16384];

    start("", "hsts = 600\n");
    /* the client's own X-Client-* are not passed on */
    ck_assert_int_eq(curl_tls(out, sizeof(out), "a.test", "/headers",
                              "-i -H 'X-Client-Verify: SUCCESS' -H 'X-Client-Subject: CN=me'"),
                     0);
    ck_assert_msg(strstr(out, "HTTP/1.1 200") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "X-Forwarded-Proto: https\r\n") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "X-Client-") == NULL, "%s", out);
    ck_assert_msg(strstr(out, "Strict-Transport-Security: max-age=600\r\n") != NULL, "%s", out);
    /* our own error pages too */
    ck_assert_int_eq(curl_tls(out, sizeof(out), "a.test", "/",
                              "-i -H \"X-Big: $(head -c 20000 /dev/zero | tr '\\0' a)\""),
                     0);
    ck_assert_msg(strncmp(out, "HTTP/1.1 431 ", 13) == 0, "%s", out);
    ck_assert_msg(strstr(out, "Strict-Transport-Security: max-age=600\r\n") != NULL, "%s", out);
    ck_assert(
        tl_file_waitfor(px.acclog, "tls=TLSv1.3 cipher=TLS_AES_128_GCM_SHA256 sni=a.test", 2000));
    /* TLS 1.2, the RSA certificate, the wildcard */
    ck_assert_int_eq(curl_tls(out, sizeof(out), "b.test", "/",
                              "--tls-max 1.2 --ciphers "
                              "ECDHE-RSA-AES128-GCM-SHA256"),
                     0);
    ck_assert_str_eq(out, "hello from app1\n");
    ck_assert(tl_file_waitfor(px.acclog, "tls=TLSv1.2 cipher=ECDHE-RSA-AES128-GCM-SHA256", 2000));
    ck_assert_int_eq(curl_tls(out, sizeof(out), "x.w.test", "/", ""), 0);
    ck_assert_str_eq(out, "hello from app1\n");
    /* the plain listener: X-Forwarded-Proto http, no HSTS */
    struct tl_resp r;
    ck_assert_int_eq(tl_request(px.port, "GET /headers HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "X-Forwarded-Proto: http\r\n"));
    ck_assert(!tl_resp_header(&r, "Strict-Transport-Security", out, sizeof(out)));
    tl_resp_free(&r);
    /* TLS 1.1 is refused */
    s_client(out, sizeof(out), "-tls1_1");
    ck_assert_msg(strstr(out, "Cipher is (NONE)") != NULL || strstr(out, "alert") != NULL, "%s",
                  out);
    ck_assert(tl_file_waitfor(px.errlog, "TLS handshake failed (protocol)", 2000));
    stop_all();
}
END_TEST

/* Plain HTTP to the TLS port: 400 in plain text, then a close. */
START_TEST(test_plain_on_tls_port)
{
    static char out[4096];

    start("", "");
    ck_assert_int_eq(
        tl_sh(out, sizeof(out), "curl -sS -i --max-time 10 http://127.0.0.2:%d/ 2>&1", tls_port()),
        0);
    ck_assert_msg(strncmp(out, "HTTP/1.1 400 Bad Request\r\n", 26) == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "Connection: close\r\n"));
    ck_assert(tl_file_waitfor(px.errlog, "plain HTTP on a TLS port: 400", 2000));
    ck_assert(tl_file_waitfor(px.acclog, "\"GET / HTTP/1.1\" 400", 2000));
    stop_all();
}
END_TEST

/* Sessions resume in any worker, with tickets and with the shared cache, and across a reload. */
START_TEST(test_resumption)
{
    static char out[65536];
    char sess[256], sess12[256], args[512];
    int reused = 0, reused12 = 0;

    start("", "");
    snprintf(sess, sizeof(sess), "%s/sess.pem", px.dir);
    snprintf(sess12, sizeof(sess12), "%s/sess12.pem", px.dir);
    snprintf(args, sizeof(args), "-servername a.test -sess_out %s", sess);
    s_client(out, sizeof(out), args);
    ck_assert_msg(strstr(out, "New, TLSv1.3") != NULL, "%s", out);
    /* TLS 1.2 without tickets: the session id, in the shared cache */
    snprintf(args, sizeof(args), "-servername a.test -tls1_2 -no_ticket -sess_out %s", sess12);
    s_client(out, sizeof(out), args);
    ck_assert_msg(strstr(out, "New, TLSv1.2") != NULL, "%s", out);
    /* 4 workers: 6 new connections land on several of them */
    for (int i = 0; i < 6; i++) {
        snprintf(args, sizeof(args), "-servername a.test -sess_in %s", sess);
        s_client(out, sizeof(out), args);
        reused += strstr(out, "Reused, TLSv1.3") != NULL;
        snprintf(args, sizeof(args), "-servername a.test -tls1_2 -no_ticket -sess_in %s", sess12);
        s_client(out, sizeof(out), args);
        reused12 += strstr(out, "Reused, TLSv1.2") != NULL;
    }
    ck_assert_msg(reused == 6, "%d of 6 resumed: %s", reused, out);
    ck_assert_int_eq(reused12, 6);
    reload_and_wait(1);
    snprintf(args, sizeof(args), "-servername a.test -sess_in %s", sess);
    s_client(out, sizeof(out), args);
    ck_assert_msg(strstr(out, "Reused, TLSv1.3") != NULL, "after the reload: %s", out);
    snprintf(args, sizeof(args), "-servername a.test -tls1_2 -no_ticket -sess_in %s", sess12);
    s_client(out, sizeof(out), args);
    ck_assert_msg(strstr(out, "Reused, TLSv1.2") != NULL, "after the reload: %s", out);
    ck_assert(tl_file_waitfor(px.acclog, "resumed=1", 1000));
    ck_assert_int_ge(tl_file_count(px.acclog, "resumed=1"), 14);
    stop_all();
}
END_TEST

/*
 * The master rotates the ticket key every session_timeout and keeps the
 * previous one: a ticket made just before a rotation still resumes after it.
 */
START_TEST(test_ticket_rotation)
{
    static char out[65536];
    char sess[256], args[512];

    start("", "session_timeout = 3s\nsession_cache = 0\n");
    int64_t t0 = tl_now_ms();
    usleep(2200 * 1000);
    snprintf(sess, sizeof(sess), "%s/sess.pem", px.dir);
    snprintf(args, sizeof(args), "-servername a.test -sess_out %s", sess);
    s_client(out, sizeof(out), args);
    ck_assert_msg(strstr(out, "New, TLSv1.3") != NULL, "%s", out);
    ck_assert(tl_file_waitfor(px.errlog, "TLS: new session ticket key", 3000));
    ck_assert_msg(tl_now_ms() - t0 < 4500, "too slow to tell the keys apart");
    snprintf(args, sizeof(args), "-servername a.test -sess_in %s", sess);
    s_client(out, sizeof(out), args);
    ck_assert_msg(strstr(out, "Reused, TLSv1.3") != NULL, "after a rotation: %s", out);
    stop_all();
}
END_TEST

/* Ticket keys from session_ticket_key_file: a ticket of one instance resumes on another. */
START_TEST(test_ticket_key_file)
{
    static char out[65536];
    char keys[256], sess[256], args[512];

    snprintf(keys, sizeof(keys), "%s/ticket.key", certdir);
    ck_assert_int_eq(tl_sh(NULL, 0, "umask 077; openssl rand 96 > %s", keys), 0);
    snprintf(args, sizeof(args), "session_ticket_key_file = %s\nsession_cache = 0\n", keys);
    start("", args);
    snprintf(sess, sizeof(sess), "%s/sess.pem", certdir);
    snprintf(args, sizeof(args), "-servername a.test -sess_out %s", sess);
    s_client(out, sizeof(out), args);
    ck_assert_msg(strstr(out, "New, TLSv1.3") != NULL, "%s", out);
    ck_assert(tl_file_waitfor(px.errlog, "2 session ticket keys from", 1000));
    stop_all();
    /* a second instance with the same keys */
    snprintf(args, sizeof(args), "session_ticket_key_file = %s\nsession_cache = 0\n", keys);
    start("", args);
    snprintf(args, sizeof(args), "-servername a.test -sess_in %s", sess);
    s_client(out, sizeof(out), args);
    ck_assert_msg(strstr(out, "Reused, TLSv1.3") != NULL, "%s", out);
    stop_all();
}
END_TEST

/* Client certificates, optional then required: what the upstream is told. */
START_TEST(test_client_certificates)
{
    static char out[16384];
    char args[512], tls[512];

    snprintf(tls, sizeof(tls), "client_certificate = optional\nclient_ca = %s/ca.crt\n", certdir);
    start("", tls);
    snprintf(args, sizeof(args), "--cert %s/client.crt --key %s/client.key", certdir, certdir);
    ck_assert_int_eq(curl_tls(out, sizeof(out), "a.test", "/headers", args), 0);
    ck_assert_msg(strstr(out, "X-Client-Verify: SUCCESS\r\n") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "X-Client-Subject: CN=client\r\n") != NULL, "%s", out);
    ck_assert_int_eq(curl_tls(out, sizeof(out), "a.test", "/headers", ""), 0);
    ck_assert_msg(strstr(out, "X-Client-Verify: NONE\r\n") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "X-Client-Subject") == NULL, "%s", out);
    snprintf(args, sizeof(args), "--cert %s/rogue.crt --key %s/rogue.key", certdir, certdir);
    ck_assert_int_eq(curl_tls(out, sizeof(out), "a.test", "/headers", args), 0);
    ck_assert_msg(strstr(out, "X-Client-Verify: FAILED:") != NULL, "%s", out);

    /* required: no certificate, no handshake */
    snprintf(tls, sizeof(tls), "client_certificate = required\nclient_ca = %s/ca.crt\n", certdir);
    tl_proxy_write_conf(&px,
                        "listen = 127.0.0.2:0 tls\nworkers = 4\nupstream = app\n"
                        "[upstream app]\nserver = 127.0.0.1:%d\nhealth_check = off\n" TLS_SECTION
                        "%s",
                        app[0].port, TLS_ARGS, tls);
    reload_and_wait(1);
    ck_assert_int_ne(curl_tls(out, sizeof(out), "a.test", "/headers", ""), 0);
    ck_assert(tl_file_waitfor(px.errlog, "TLS handshake failed (bad_client_certificate)", 2000));
    snprintf(args, sizeof(args), "--cert %s/client.crt --key %s/client.key", certdir, certdir);
    ck_assert_int_eq(curl_tls(out, sizeof(out), "a.test", "/headers", args), 0);
    ck_assert_msg(strstr(out, "X-Client-Verify: SUCCESS\r\n") != NULL, "%s", out);
    stop_all();
}
END_TEST

/* redirect_https: 301 for GET and HEAD, 308 for the rest, to the tls listener's port. */
START_TEST(test_redirect_https)
{
    struct tl_resp r;
    char loc[512], want[512];

    start("redirect_https = yes\n", "");
    ck_assert_int_eq(
        tl_request(px.port, "GET /a/b?c=d HTTP/1.1\r\nHost: ex.test:8080\r\n\r\n", &r), 301);
    ck_assert(tl_resp_header(&r, "Location", loc, sizeof(loc)));
    snprintf(want, sizeof(want), "https://ex.test:%d/a/b?c=d", tls_port());
    ck_assert_str_eq(loc, want);
    tl_resp_free(&r);
    ck_assert_int_eq(
        tl_request(px.port, "POST /p HTTP/1.1\r\nHost: [::1]:80\r\nContent-Length: 2\r\n\r\nhi",
                   &r),
        308);
    ck_assert(tl_resp_header(&r, "Location", loc, sizeof(loc)));
    snprintf(want, sizeof(want), "https://[::1]:%d/p", tls_port());
    ck_assert_str_eq(loc, want);
    tl_resp_free(&r);
    /* the tls listener serves */
    static char out[4096];
    ck_assert_int_eq(curl_tls(out, sizeof(out), "a.test", "/", ""), 0);
    ck_assert_str_eq(out, "hello from app1\n");
    stop_all();
}
END_TEST

/* A client that stalls in the handshake is cut by handshake_timeout, and frees its worker. */
START_TEST(test_handshake_timeout)
{
    start("client_header_min_rate = 0\n", "handshake_timeout = 1s\n");
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)tls_port())};
    struct timeval tv = {10, 0};
    inet_pton(AF_INET, "127.0.0.2", &sin.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    /* the start of a ClientHello record, and nothing more */
    ck_assert_int_eq(tl_send(fd, "\x16\x03\x01\x00\xc8\x01", 6), 0);
    int64_t t0 = tl_now_ms();
    char b;
    ssize_t n = recv(fd, &b, 1, 0);
    int64_t dt = tl_now_ms() - t0;
    ck_assert_msg(n <= 0, "got a byte");
    ck_assert_msg(dt >= 700 && dt < 4000, "closed after %lld ms", (long long)dt);
    close(fd);
    ck_assert(tl_file_waitfor(px.errlog, "TLS handshake timed out", 2000));
    stop_all();
}
END_TEST

/* Below client_header_min_rate, a handshake is cut after its first second, as a slow head is. */
START_TEST(test_handshake_too_slow)
{
    start("client_header_min_rate = 256\n", "handshake_timeout = 10s\n");
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)tls_port())};
    struct timeval tv = {10, 0};
    inet_pton(AF_INET, "127.0.0.2", &sin.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ck_assert_int_eq(tl_send(fd, "\x16\x03\x01\x00\xc8\x01", 6), 0);
    int64_t t0 = tl_now_ms();
    char b;
    ssize_t n = recv(fd, &b, 1, 0);
    int64_t dt = tl_now_ms() - t0;
    ck_assert_msg(n <= 0, "got a byte");
    ck_assert_msg(dt >= 700 && dt < 5000, "closed after %lld ms", (long long)dt);
    close(fd);
    ck_assert(tl_file_waitfor(px.errlog, "TLS handshake too slow", 2000));
    stop_all();
}
END_TEST

/* A client that keeps asking for KeyUpdates is cut after TLS_MAX_KEY_UPDATES (8). */
START_TEST(test_key_updates)
{
    static char out[65536];

    start("client_header_min_rate = 0\n", ""); /* KeyUpdates are no request bytes */
    /*
     * s_client sends a KeyUpdate (update_requested) for each "K" it reads
     * (lines read together count once: more lines than needed, spaced)
     */
    tl_sh(out, sizeof(out),
          "(sleep 0.5; for i in $(seq 40); do echo K; sleep 0.1; done; sleep 1) | timeout 20 "
          "openssl "
          "s_client -connect 127.0.0.2:%d -servername a.test 2>&1",
          tls_port());
    ck_assert(
        tl_file_waitfor(px.errlog, "9 KeyUpdates on one connection (at most 8): closing", 8000));
    stop_all();
}
END_TEST

/*
 * A keep-alive client whose next request is already waiting in the socket
 * when the worker comes back for it (sent while the upstream was slow): the
 * worker's first try at the next request must go through TLS. It once read
 * the raw socket there and answered the ciphertext with 400.
 */
START_TEST(test_next_request_waiting)
{
    static char out[65536];

    start("", "");
    tl_sh(out, sizeof(out),
          "(printf 'GET /delay?ms=300 HTTP/1.1\\r\\nHost: a.test\\r\\n\\r\\n'; sleep 0.1; "
          "printf 'GET / HTTP/1.1\\r\\nHost: a.test\\r\\nConnection: close\\r\\n\\r\\n'; "
          "sleep 1.5) | timeout 20 openssl s_client -quiet -ign_eof -connect 127.0.0.2:%d "
          "-servername a.test -CAfile %s/ca.crt 2>&1",
          tls_port(), certdir);
    ck_assert_msg(strstr(out, "delayed\n") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "hello from app1") != NULL, "no second answer:\n%s", out);
    ck_assert_msg(strstr(out, " 400 ") == NULL, "%s", out);
    stop_all();
}
END_TEST

/*
 * <n> connections to the tls port that start a handshake (a record header
 * announcing a ClientHello) and then trickle a byte every <gap_ms>, for
 * <dur_ms>, coming back when cut. Returns the pid of the process doing it.
 */
static pid_t
handshake_tricklers(int n, int gap_ms, int dur_ms)
{
    int port = tls_port();
    pid_t pid = fork();
    ck_assert(pid != -1);
    if (pid != 0)
        return pid;
    static const unsigned char hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc};
    int fd[64];
    size_t pos[64];
    int64_t end = tl_now_ms() + dur_ms;
    for (int i = 0; i < n; i++)
        fd[i] = -1;
    while (tl_now_ms() < end) {
        for (int i = 0; i < n; i++) {
            if (fd[i] == -1) {
                fd[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
                struct sockaddr_in d = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
                inet_pton(AF_INET, "127.0.0.2", &d.sin_addr);
                connect(fd[i], (struct sockaddr *)&d, sizeof(d));
                pos[i] = 0;
            }
            /* the record header at once, then a byte of its body each round */
            size_t k = pos[i] == 0 ? 5 : 1;
            const unsigned char *b = pos[i] < sizeof(hello) ? hello + pos[i] : hello + 5;
            if (send(fd[i], b, k, MSG_NOSIGNAL) == -1 && errno != EAGAIN && errno != EINPROGRESS &&
                errno != ENOTCONN) {
                close(fd[i]);
                fd[i] = -1;
                continue;
            }
            pos[i] += k;
            char sink[512];
            ssize_t r = recv(fd[i], sink, sizeof(sink), MSG_DONTWAIT);
            if (r == 0 || (r == -1 && errno != EAGAIN && errno != ENOTCONN)) {
                close(fd[i]); /* cut by the proxy: come back */
                fd[i] = -1;
            }
        }
        usleep((useconds_t)gap_ms * 1000);
    }
    _exit(0);
}

/*
 * 3 x workers connections stall their handshakes (no minimum rate, a long
 * handshake_timeout): under pressure each is given up for a client waiting
 * in the queue, as a slow head is, so a normal HTTPS client is answered
 * within a second at every moment. Before, they held every worker for the
 * whole handshake_timeout.
 */
START_TEST(test_stalled_handshakes_under_pressure)
{
    static char out[4096];

    start("client_header_min_rate = 0\n", "handshake_timeout = 20s\n");
    pid_t attacker = handshake_tricklers(12, 2000, 10000);
    usleep(500 * 1000);
    double worst = 0;
    int probes = 0;
    int64_t t0 = tl_now_ms();
    while (tl_now_ms() - t0 < 7000) {
        int rc = curl_tls(out, sizeof(out), "a.test", "/",
                          "-o /dev/null -w '%{http_code} %{time_total}'");
        int code = 0;
        double t = 99;
        ck_assert_msg(rc == 0 && sscanf(out, "%d %lf", &code, &t) == 2 && code == 200,
                      "probe %d: %s", probes, out);
        if (t > worst)
            worst = t;
        probes++;
        usleep(100 * 1000);
    }
    kill(attacker, SIGKILL);
    waitpid(attacker, NULL, 0);
    fprintf(stderr, "stalled handshakes x12 before 4 workers: %d probes, worst %.3f s\n", probes,
            worst);
    ck_assert_msg(worst < 1.0, "a normal client waited %.3f s", worst);
    ck_assert(tl_file_waitfor(px.errlog, "TLS handshake given up for a waiting client", 1000));
    stop_all();
}
END_TEST

/* The private memory (Private_Clean + Private_Dirty of smaps_rollup) of <pid> in KiB. */
static long
private_kb(pid_t pid)
{
    char path[64], line[256];
    long total = 0, v;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if ((sscanf(line, "Private_Clean: %ld kB", &v) == 1) ||
            (sscanf(line, "Private_Dirty: %ld kB", &v) == 1))
            total += v;
    fclose(f);
    return total;
}

/* The largest private memory of the proxy's children, in KiB. */
static long
max_child_private_kb(void)
{
    pid_t kids[64];
    int n = tl_children(px.pid, kids, 64);
    long m = 0;

    for (int i = 0; i < n; i++) {
        long k = private_kb(kids[i]);
        if (k > m)
            m = k;
    }
    return m;
}

/*
 * A large body both ways over TLS, checksums matching, worker memory flat.
 * MP_TLS_BIG_MB (default 64) sets the size: 1024 was run by hand.
 */
START_TEST(test_large_bodies)
{
    static char out[4096];
    const char *e = getenv("MP_TLS_BIG_MB");
    uint64_t mb = e != NULL ? strtoull(e, NULL, 10) : 64, n = mb << 20, len;
    char path[256], args[512], want[128];

    start("client_max_body_size = 0\n", "");
    /* idle, then after one small request */
    long idle = max_child_private_kb();
    ck_assert_int_eq(curl_tls(out, sizeof(out), "a.test", "/", ""), 0);
    long small = max_child_private_kb();
    snprintf(path, sizeof(path), "%s/big", px.dir);
    snprintf(args, sizeof(args), "-o %s", path);
    char q[64];
    snprintf(q, sizeof(q), "/bytes?n=%llu", (unsigned long long)n);
    ck_assert_int_eq(curl_tls(out, sizeof(out), "a.test", q, args), 0);
    ck_assert_uint_eq(tl_fnv_file(path, &len), tp_pattern_fnv(n));
    ck_assert_uint_eq(len, n);
    long after_down = max_child_private_kb();
    snprintf(args, sizeof(args), "-X POST -T %s -H 'Content-Type: application/octet-stream'",
             path);
    ck_assert_int_eq(curl_tls(out, sizeof(out), "a.test", "/sum", args), 0);
    snprintf(want, sizeof(want), "len=%llu fnv=%016llx\n", (unsigned long long)n,
             (unsigned long long)tp_pattern_fnv(n));
    ck_assert_str_eq(out, want);
    long after_up = max_child_private_kb();
    fprintf(stderr,
            "it_tls: worker private memory (KiB): idle %ld, after a request %ld, after %llu MiB "
            "down %ld, up %ld\n",
            idle, small, (unsigned long long)mb, after_down, after_up);
    /*
     * flat: a body streams through fixed buffers, whatever its size. Not
     * under AddressSanitizer, whose quarantine keeps what OpenSSL frees
     * (its record buffers, released while idle) for a while.
     */
#ifndef __SANITIZE_ADDRESS__
    ck_assert_msg(after_down - small < 4096 && after_up - small < 4096,
                  "worker memory grew: %ld -> %ld / %ld KiB", small, after_down, after_up);
#endif
    unlink(path);
    stop_all();
}
END_TEST

/* A reload loop under HTTPS load, with a certificate swap: no request fails. */
START_TEST(test_reload_under_load)
{
    enum { CLIENTS = 4, REQUESTS = 40, RELOADS = 5 };
    pid_t kids[CLIENTS];
    char cmd[1024], res[CLIENTS][256];

    start("", "");
    int port = tls_port();
    for (int i = 0; i < CLIENTS; i++) {
        snprintf(res[i], sizeof(res[i]), "%s/codes.%d", px.dir, i);
        snprintf(cmd, sizeof(cmd),
                 "for i in $(seq %d); do curl -s -o /dev/null -w '%%{http_code}\\n' --max-time 10 "
                 "--cacert %s/ca.crt --resolve a.test:%d:127.0.0.2 https://a.test:%d/; done > %s",
                 REQUESTS, certdir, port, port, res[i]);
        kids[i] = fork();
        ck_assert_int_ne(kids[i], -1);
        if (kids[i] == 0) {
            execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
            _exit(127);
        }
    }
    for (int k = 0; k < RELOADS; k++) {
        /* swap: the RSA certificate first (the default), or the ECDSA one */
        if (k % 2 == 0)
            tl_proxy_write_conf(&px,
                                "listen = 127.0.0.2:0 tls\nworkers = 4\nupstream = app\n"
                                "[upstream app]\nserver = 127.0.0.1:%d\nhealth_check = off\n"
                                "[tls]\ncertificate = %s/rsa.crt key=%s/rsa.key\n",
                                app[0].port, certdir, certdir);
        else
            tl_proxy_write_conf(&px,
                                "listen = 127.0.0.2:0 tls\nworkers = 4\nupstream = app\n"
                                "[upstream app]\nserver = 127.0.0.1:%d\nhealth_check = off\n"
                                "[tls]\ncertificate = %s/combined.pem\n",
                                app[0].port, certdir);
        reload_and_wait(k + 1);
        usleep(200 * 1000);
    }
    int ok = 0, bad = 0;
    for (int i = 0; i < CLIENTS; i++) {
        int st;
        ck_assert_int_eq(waitpid(kids[i], &st, 0), kids[i]);
        FILE *f = fopen(res[i], "r");
        char line[32];
        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f) != NULL) {
            if (strcmp(line, "200\n") == 0)
                ok++;
            else
                bad++;
        }
        fclose(f);
    }
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(ok, CLIENTS * REQUESTS);
    stop_all();
}
END_TEST

/* A reload with a broken certificate keeps the old generation serving, and says why. */
START_TEST(test_reload_broken_certificate)
{
    static char out[4096];

    start("", "");
    tl_proxy_write_conf(&px,
                        "listen = 127.0.0.2:0 tls\nworkers = 4\nupstream = app\n"
                        "[upstream app]\nserver = 127.0.0.1:%d\nhealth_check = off\n"
                        "[tls]\ncertificate = %s/ec.crt key=%s/rsa.key\n",
                        app[0].port, certdir, certdir);
    kill(px.pid, SIGHUP);
    ck_assert(tl_file_waitfor(px.errlog, "reload failed, still serving generation 1", 5000));
    ck_assert(tl_file_waitfor(px.errlog, "[tls] certificate: ", 1000));
    ck_assert_int_eq(curl_tls(out, sizeof(out), "a.test", "/", ""), 0);
    ck_assert_str_eq(out, "hello from app1\n");
    /* -t says the same, with file and line */
    char args[512];
    snprintf(args, sizeof(args), "-t -c %s", px.conf);
    ck_assert_int_ne(tl_proxy_cmd(args, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "miniproxy.ini:13: [tls] certificate: ") != NULL, "%s", out);
    stop_all();
}
END_TEST

/* /metrics, /status.json, /status: handshakes, resumptions, failures by reason, certificates. */
START_TEST(test_observability)
{
    static char out[65536];
    char sess[256], args[512];
    struct tl_resp r;

    tl_app_start(&app[0], "app1");
    tl_proxy_start(&px,
                   "listen = 127.0.0.2:0 tls\nworkers = 2\nupstream = app\n"
                   "[admin]\nlisten = 127.0.0.1:0\n"
                   "[upstream app]\nserver = 127.0.0.1:%d\nhealth_check = off\n" TLS_SECTION
                   "strict_sni = yes\nhandshake_timeout = 1s\n",
                   app[0].port, TLS_ARGS);
    ck_assert_int_gt(px.admin_port, 0);
    snprintf(sess, sizeof(sess), "%s/sess.pem", px.dir);
    snprintf(args, sizeof(args), "-servername a.test -sess_out %s", sess);
    s_client(out, sizeof(out), args);
    snprintf(args, sizeof(args), "-servername a.test -sess_in %s", sess);
    s_client(out, sizeof(out), args);
    ck_assert_msg(strstr(out, "Reused, TLSv1.3") != NULL, "%s", out);
    s_client(out, sizeof(out), "-servername nobody.test");                       /* unknown name */
    s_client(out, sizeof(out), "-servername a.test -tls1_2 -cipher AES128-SHA"); /* no cipher */
    tl_sh(out, sizeof(out), "curl -s -o /dev/null --max-time 5 http://127.0.0.2:%d/", tls_port());
    ck_assert_int_eq(tl_request(px.admin_port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", &r),
                     200);
    ck_assert_msg(strstr(r.body, "\nminiproxyd_tls_handshakes_total 2\n") != NULL, "%s", r.body);
    ck_assert_msg(strstr(r.body, "\nminiproxyd_tls_resumed_total 1\n") != NULL, "%s", r.body);
    ck_assert_ptr_nonnull(strstr(r.body, "{reason=\"unknown_name\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "{reason=\"no_shared_cipher\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "{reason=\"plain_http\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "miniproxyd_tls_certificate_expiry_seconds{index=\"0\","
                                         "names=\"a.test b.test\"} "));
    ck_assert_ptr_nonnull(strstr(r.body, "names=\"*.w.test\"}"));
    tl_resp_free(&r);
    ck_assert_int_eq(tl_request(px.admin_port, "GET /status.json HTTP/1.1\r\nHost: t\r\n\r\n", &r),
                     200);
    ck_assert_msg(strstr(r.body, "\"tls\":{\"handshakes\":2,\"resumed\":1,") != NULL, "%s",
                  r.body);
    ck_assert_ptr_nonnull(strstr(r.body, "\"certificates\":[{\"names\":\"a.test b.test\""));
    tl_resp_free(&r);
    ck_assert_int_eq(tl_request(px.admin_port, "GET /status HTTP/1.1\r\nHost: t\r\n\r\n", &r),
                     200);
    ck_assert_ptr_nonnull(strstr(r.body, "<h2>TLS</h2>"));
    tl_resp_free(&r);
    stop_all();
}
END_TEST

static Suite *
tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("tls");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_https_basics);
    tcase_add_test(tc, test_plain_on_tls_port);
    tcase_add_test(tc, test_resumption);
    tcase_add_test(tc, test_ticket_key_file);
    tcase_add_test(tc, test_ticket_rotation);
    tcase_add_test(tc, test_client_certificates);
    tcase_add_test(tc, test_redirect_https);
    tcase_add_test(tc, test_handshake_timeout);
    tcase_add_test(tc, test_handshake_too_slow);
    tcase_add_test(tc, test_key_updates);
    tcase_add_test(tc, test_next_request_waiting);
    tcase_add_test(tc, test_stalled_handshakes_under_pressure);
    tcase_add_test(tc, test_large_bodies);
    tcase_add_test(tc, test_reload_under_load);
    tcase_add_test(tc, test_reload_broken_certificate);
    tcase_add_test(tc, test_observability);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    int rc;

    if (tl_certs_make(certdir, sizeof(certdir), "it_tls") == -1)
        return 1;
    rc = tl_run(tls_suite());
    tl_certs_remove(certdir);
    return rc;
}
