/*
 * unit_upconn: the upstream connection seam over TLS, in one process: the
 * client side is upconn.c with a group's context from a real config, the
 * server side a plain OpenSSL server, the two ends a socketpair, both
 * non-blocking and stepped in turn, so every case is deterministic.
 *
 * main() makes the test certificates once with tests/tls_certs.sh in a
 * temp dir (removed at exit).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "config.h"
#include "net.h"
#include "testlib.h"
#include "upconn.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static char certdir[64];

struct pair {
    struct config *cfg;
    SSL_CTX *sctx;
    SSL *srv; /* the server's end */
    int sfd;
    struct upconn up; /* the client's end */
    SSL_SESSION *slot;
};

/* A config whose group has tls = on, <server> and the extra lines <keys>. */
static struct config *
load(const char *server, const char *keys)
{
    char text[1024], err[512];

    snprintf(text, sizeof(text),
             "[proxy]\nlisten = 127.0.0.1:0\nupstream = app\n[upstream app]\nserver = %s\n"
             "tls = on\ntls_ca = %s/ca.crt\n%s",
             server, certdir, keys);
    struct config *c = cfg_load_string(text, "t.ini", err, sizeof(err));
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_ptr_nonnull(c->groups[0].tls_ctx);
    return c;
}

/*
 * Connects <p> (client: server <server> of a group with <keys>; server:
 * the certificate pair <certs>) and runs both handshakes in turn. Returns
 * the client's last step: 1 done, -1 failed with the reason in <why>.
 */
static int
pair_open(struct pair *p, const char *server, const char *keys, const char *certs, char *why,
          size_t whylen)
{
    char cert[128], key[128];
    int sv[2];

    memset(p, 0, sizeof(*p));
    p->cfg = load(server, keys);
    snprintf(cert, sizeof(cert), "%s/%s.crt", certdir, certs);
    snprintf(key, sizeof(key), "%s/%s.key", certdir, certs);
    p->sctx = SSL_CTX_new(TLS_server_method());
    ck_assert(SSL_CTX_use_certificate_chain_file(p->sctx, cert) == 1);
    ck_assert(SSL_CTX_use_PrivateKey_file(p->sctx, key, SSL_FILETYPE_PEM) == 1);
    ck_assert(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    ck_assert(net_set_blocking(sv[0], false) == 0 && net_set_blocking(sv[1], false) == 0);
    p->up = UPCONN_NONE;
    p->up.fd = sv[0];
    p->sfd = sv[1];
    p->srv = SSL_new(p->sctx);
    SSL_set_fd(p->srv, p->sfd);
    SSL_set_accept_state(p->srv);
    const struct cfg_group *g = &p->cfg->groups[0];
    ck_assert_int_eq(upconn_tls_begin(&p->up, g, &g->servers[0], &p->slot, why, whylen), 0);
    int c = 0, s = 0;
    for (int i = 0; i < 50 && (c != 1 || s != 1); i++) {
        if (c == 0) {
            c = upconn_handshake_step(&p->up, why, whylen);
            if (c == -1)
                return -1;
        }
        if (s != 1) {
            s = SSL_do_handshake(p->srv);
            if (s != 1)
                s = 0;
        }
        ERR_clear_error();
    }
    ck_assert_int_eq(c, 1);
    return 1;
}

static void
pair_close(struct pair *p)
{
    upconn_close(&p->up);
    SSL_free(p->srv);
    close(p->sfd);
    SSL_CTX_free(p->sctx);
    SSL_SESSION_free(p->slot);
    cfg_free(p->cfg);
    ERR_clear_error();
}

/* The server writes <s> as one record. */
static void
srv_write(struct pair *p, const char *s)
{
    size_t w;
    ck_assert(SSL_write_ex(p->srv, s, strlen(s), &w) == 1 && w == strlen(s));
}

/* Names and addresses: what is verified, and what a mismatch says. */
static const struct {
    const char *server, *keys, *certs;
    const char *why; /* NULL: verified */
} verify_cases[] = {
    {"127.0.0.1:1", "", "up", NULL},                                 /* the address, by IP entry */
    {"127.0.0.1:1", "tls_server_name = app.internal\n", "up", NULL}, /* by DNS entry */
    {"127.0.0.1:1", "tls_server_name = APP.internal\n", "up", NULL}, /* any case */
    {"127.0.0.1:1", "tls_server_name = wrong.internal\n", "up",
     "certificate verify failed: hostname mismatch (expected wrong.internal)"},
    {"127.0.0.2:1", "", "up",
     "certificate verify failed: IP address mismatch (expected 127.0.0.2)"},
    {"127.0.0.1:1", "", "uprogue", "certificate verify failed: unable to get local issuer"},
    {"127.0.0.1:1", "tls_verify = off\ntls_server_name = wrong.internal\n", "uprogue", NULL},
};

START_TEST(test_verify)
{
    struct pair p;
    char why[UPCONN_WHY_MAX] = "";
    int r = pair_open(&p, verify_cases[_i].server, verify_cases[_i].keys, verify_cases[_i].certs,
                      why, sizeof(why));

    if (verify_cases[_i].why == NULL) {
        ck_assert_msg(r == 1, "case %d: %s", _i, why);
    } else {
        ck_assert_msg(r == -1, "case %d: verified", _i);
        ck_assert_msg(strncmp(why, verify_cases[_i].why, strlen(verify_cases[_i].why)) == 0,
                      "case %d: got \"%s\"", _i, why);
        ck_assert_ptr_null(p.slot); /* a failed handshake leaves no session to resume */
    }
    pair_close(&p);
}
END_TEST

/*
 * Session tickets that come after the handshake (TLS 1.3) leave an idle
 * connection usable; the idle check takes them in, and the session lands
 * in the slot.
 */
START_TEST(test_idle_ticket)
{
    struct pair p;
    char why[UPCONN_WHY_MAX];

    ck_assert_int_eq(pair_open(&p, "127.0.0.1:1", "", "up", why, sizeof(why)), 1);
    ck_assert_str_eq(SSL_get_version(p.up.ssl), "TLSv1.3");
    ck_assert(!net_idle_open(p.up.fd)); /* the tickets wait in the socket */
    ck_assert(upconn_idle_open(&p.up));
    ck_assert_ptr_nonnull(p.slot);
    ck_assert(upconn_idle_open(&p.up));
    pair_close(&p);
}
END_TEST

/* Stray bytes read ahead into the TLS buffer, with the socket empty: not usable. */
START_TEST(test_idle_stray_read_ahead)
{
    struct pair p;
    char why[UPCONN_WHY_MAX], buf[4096];

    ck_assert_int_eq(pair_open(&p, "127.0.0.1:1", "", "up", why, sizeof(why)), 1);
    srv_write(&p, "answer");
    srv_write(&p, "JUNK"); /* a record of its own, behind the answer */
    ssize_t n = upconn_try_read(&p.up, buf, sizeof(buf));
    ck_assert_int_eq(n, 6);
    ck_assert(memcmp(buf, "answer", 6) == 0);
    ck_assert(net_idle_open(p.up.fd));   /* the socket alone looks idle ... */
    ck_assert(!upconn_idle_open(&p.up)); /* ... but the junk was read ahead */
    pair_close(&p);
}
END_TEST

/* A close_notify, or a bare close, ends an idle connection. */
START_TEST(test_idle_closed)
{
    struct pair p;
    char why[UPCONN_WHY_MAX];

    for (int bare = 0; bare < 2; bare++) {
        ck_assert_int_eq(pair_open(&p, "127.0.0.1:1", "", "up", why, sizeof(why)), 1);
        ck_assert(upconn_idle_open(&p.up));
        if (bare)
            shutdown(p.sfd, SHUT_WR);
        else
            SSL_shutdown(p.srv);
        ck_assert_msg(!upconn_idle_open(&p.up), "bare %d", bare);
        pair_close(&p);
    }
}
END_TEST

/* Reads: EAGAIN with POLLIN wanted when nothing came, then the bytes, then EOF. */
START_TEST(test_read_eagain_eof)
{
    struct pair p;
    char why[UPCONN_WHY_MAX], buf[64];

    ck_assert_int_eq(pair_open(&p, "127.0.0.1:1", "", "up", why, sizeof(why)), 1);
    errno = 0;
    ck_assert_int_eq(upconn_try_read(&p.up, buf, sizeof(buf)), -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_int_eq(upconn_read_events(&p.up), POLLIN);
    srv_write(&p, "hello");
    ck_assert_int_eq(upconn_try_read(&p.up, buf, sizeof(buf)), 5);
    SSL_shutdown(p.srv);
    ck_assert_int_eq(upconn_try_read(&p.up, buf, sizeof(buf)), 0);
    pair_close(&p);
}
END_TEST

/* Small pieces of one writev() go out as one record; a large first piece goes as it is. */
START_TEST(test_writev_gathers)
{
    struct pair p;
    char why[UPCONN_WHY_MAX], buf[65536];
    size_t n;

    ck_assert_int_eq(pair_open(&p, "127.0.0.1:1", "", "up", why, sizeof(why)), 1);
    struct iovec iov[3] = {{"GET / HTTP/1.1\r\n", 16}, {"Host: t\r\n", 9}, {"\r\n", 2}};
    ck_assert_int_eq(upconn_try_writev(&p.up, iov, 3), 27);
    ck_assert(SSL_read_ex(p.srv, buf, sizeof(buf), &n) == 1);
    ck_assert_uint_eq(n, 27); /* one record */
    ck_assert(memcmp(buf, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", 27) == 0);
    /* all of a 40000-byte piece, in records (the partial-write mode moves on per record) */
    static char big[40000];
    memset(big, 'x', sizeof(big));
    struct iovec biov[2] = {{big, sizeof(big)}, {"tail", 4}};
    struct iovec *next = biov;
    int cnt = 2;
    size_t got = 0;
    for (int i = 0; i < 100 && (cnt > 0 || got < sizeof(big) + 4); i++) {
        if (cnt > 0) {
            ssize_t w = upconn_try_writev(&p.up, next, cnt);
            ck_assert_msg(w > 0 || (w == -1 && errno == EAGAIN), "w %zd", w);
            if (w > 0)
                net_iov_advance(&next, &cnt, (size_t)w);
        }
        while (SSL_read_ex(p.srv, buf, sizeof(buf), &n) == 1)
            got += n;
        ERR_clear_error();
    }
    ck_assert_uint_eq(got, sizeof(big) + 4);
    pair_close(&p);
}
END_TEST

static Suite *
upconn_suite(void)
{
    Suite *s = suite_create("upconn");
    TCase *tc = tcase_create("tls");

    tcase_add_loop_test(tc, test_verify, 0, (int)NELEM(verify_cases));
    tcase_add_test(tc, test_idle_ticket);
    tcase_add_test(tc, test_idle_stray_read_ahead);
    tcase_add_test(tc, test_idle_closed);
    tcase_add_test(tc, test_read_eagain_eof);
    tcase_add_test(tc, test_writev_gathers);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    int rc;

    if (tl_certs_make(certdir, sizeof(certdir), "unit_upconn") == -1)
        return 1;
    rc = tl_run(upconn_suite());
    tl_certs_remove(certdir);
    return rc;
}
