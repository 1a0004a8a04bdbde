/*
 * Unit tests for src/tls.c (Check): loading and checking certificates,
 * name matching, SNI, protocols and client certificates.
 *
 * main() makes the test certificates once with tests/tls_certs.sh in a
 * temporary directory (removed at the end); nothing secret is in the tree.
 * Handshakes run in-process over a socketpair: the client side is an
 * OpenSSL client verifying against the test CA, the server side a
 * connection made from the store, both non-blocking and stepped in turn a
 * bounded number of times.
 */
#include "tls.h"
#include "testlib.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Where main() made the certificates. */
static char certdir[64];

/* The warnings of the last load, one per line. */
static char warns[4096];

/*
 * "<certdir>/<name>" (NULL for NULL), in a buffer of its own that lives as
 * long as the test: each test is a forked process, so the pool starts
 * empty in each one.
 */
static const char *
cpath(const char *name)
{
    static char bufs[512][160];
    static size_t next;
    char *b;

    if (name == NULL)
        return NULL;
    ck_assert_uint_lt(next, NELEM(bufs));
    b = bufs[next++];
    snprintf(b, sizeof(bufs[0]), "%s/%s", certdir, name);
    return b;
}

static void
collect_warn(void *arg, const char *msg)
{
    size_t n = strlen(warns);

    ck_assert_ptr_eq(arg, warns);
    snprintf(warns + n, sizeof(warns) - n, "%s\n", msg);
}

/* Settings for <certs> with every other key at its default. */
static struct tls_settings
settings(const struct tls_cert_spec *certs, size_t n)
{
    struct tls_settings s;

    memset(&s, 0, sizeof(s));
    s.certs = certs;
    s.ncerts = n;
    return s;
}

/* A certificate line <line> of test.ini: <cert> and <key> (NULL: none) in certdir. */
static struct tls_cert_spec
spec(const char *cert, const char *key, int line)
{
    struct tls_cert_spec c = {cpath(cert), cpath(key), {"test.ini", line}};

    return c;
}

/* Loads <set>, which must succeed; warnings land in <warns>. */
static struct tls_store *
load_ok(const struct tls_settings *set)
{
    struct tls_store *st = NULL;
    char err[1024];

    warns[0] = '\0';
    ck_assert_msg(tls_load(set, &st, err, sizeof(err), collect_warn, warns) == 0, "load: %s", err);
    ck_assert_ptr_nonnull(st);
    return st;
}

/* ---- tls_name_match() ---- */

static const struct {
    const char *pattern, *name;
    bool match;
} match_cases[] = {
    {"a.test", "a.test", true},
    {"A.TEST", "a.test", true},
    {"a.test", "A.Test", true},
    {"a.test", "b.test", false},
    {"a.test", "a.tes", false},
    {"a.test", "a.test.", false},
    {"a.test", "", false},
    {"*.w.test", "x.w.test", true},
    {"*.W.test", "X.w.TEST", true},
    {"*.w.test", "w.test", false},
    {"*.w.test", ".w.test", false},
    {"*.w.test", "a.b.w.test", false},
    {"*.w.test", "xw.test", false},
    {"*.w.test", "*.w.test", false},
    {"*.w.test", "x.w.test.", false},
    {"*.test", "a.test", false},
    {"*.", "a.", false},
    {"*", "a", false},
    {"f*.w.test", "f1.w.test", false},
    {"**.w.test", "x.w.test", false},
    {"*.*.test", "a.b.test", false},
    {"*..test", "a..test", false},
};

START_TEST(test_name_match)
{
    ck_assert_msg(tls_name_match(match_cases[_i].pattern, match_cases[_i].name) ==
                      match_cases[_i].match,
                  "tls_name_match(%s, %s) should be %d", match_cases[_i].pattern,
                  match_cases[_i].name, match_cases[_i].match);
}
END_TEST

/* ---- load errors ---- */

static const struct {
    const char *cert, *key;   /* line 10 */
    const char *cert2, *key2; /* line 11, if any */
    const char *protocols;    /* line 20 */
    const char *ciphers;      /* line 21 */
    const char *suites;       /* line 22 */
    enum tls_client_cert cc;  /* line 23 */
    const char *client_ca;    /* line 24 */
    int line;                 /* what the message must name */
    const char *key_name;
    const char *file; /* in certdir; NULL: none */
    const char *what;
} err_cases[] = {
    {"nope.crt", NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, 10, "certificate", "nope.crt",
     "cannot open: No such file or directory"},
    {"ec.crt/x", NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, 10, "certificate", "ec.crt/x",
     "cannot open: Not a directory"},
    {".", NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, 10, "certificate", ".",
     "not a regular file"},
    {"ec.key", NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, 10, "certificate", "ec.key",
     "no PEM certificate in the file"},
    {"ec.crt", "nope.key", NULL, NULL, NULL, NULL, NULL, 0, NULL, 10, "certificate", "nope.key",
     "cannot open: No such file or directory"},
    {"ec.crt", NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, 10, "certificate", "ec.crt",
     "no PEM private key in the file: append the key to it or name its file with key=PATH"},
    {"ec.crt", "ec.crt", NULL, NULL, NULL, NULL, NULL, 0, NULL, 10, "certificate", "ec.crt",
     "no PEM private key in the file"},
    {"ec.crt", "enc.key", NULL, NULL, NULL, NULL, NULL, 0, NULL, 10, "certificate", "enc.key",
     "the key is encrypted and a passphrase cannot be given"},
    {"ec.crt", "wild.key", NULL, NULL, NULL, NULL, NULL, 0, NULL, 10, "certificate", "wild.key",
     "the key does not match the certificate"},
    {"ec.crt", "rsa.key", NULL, NULL, NULL, NULL, NULL, 0, NULL, 10, "certificate", "rsa.key",
     "(key: RSA, certificate: ECDSA)"},
    {"cafirst.pem", "ec.key", NULL, NULL, NULL, NULL, NULL, 0, NULL, 10, "certificate",
     "cafirst.pem", "the first certificate is a CA, not the server's: put the leaf first"},
    {"expired.crt", "expired.key", NULL, NULL, NULL, NULL, NULL, 0, NULL, 10, "certificate",
     "expired.crt", "the certificate expired on 2021-01-01 00:00:00 UTC"},
    {"notyet.crt", "notyet.key", NULL, NULL, NULL, NULL, NULL, 0, NULL, 10, "certificate",
     "notyet.crt", "the certificate is not valid yet: from 2090-01-01 00:00:00 UTC"},
    {"rsa1024.crt", "rsa1024.key", NULL, NULL, NULL, NULL, NULL, 0, NULL, 10, "certificate",
     "rsa1024.crt", "has a key of 1024 bits (RSA), which security level 2 refuses"},
    {"sha1.crt", "sha1.key", NULL, NULL, NULL, NULL, NULL, 0, NULL, 10, "certificate", "sha1.crt",
     "is signed with SHA1, which security level 2 refuses"},
    {"ec.crt", "ec.key", "dup.crt", "dup.key", NULL, NULL, NULL, 0, NULL, 11, "certificate",
     "dup.crt", "the name a.test is also claimed by the certificate at test.ini:10"},
    {"ec.crt", "ec.key", "combined.pem", NULL, NULL, NULL, NULL, 0, NULL, 11, "certificate",
     "combined.pem",
     "the certificate at test.ini:10 has the same names and the same key type (ECDSA)"},
    {"ec.crt", "ec.key", "rsa_a.crt", "rsa_a.key", NULL, NULL, NULL, 0, NULL, 11, "certificate",
     "rsa_a.crt", "certificates of different key types for one name must list the same names"},
    {"ec.crt", "ec.key", "nosan.crt", "nosan.key", NULL, NULL, NULL, 0, NULL, 11, "certificate",
     "nosan.crt", "no DNS name in subjectAltName"},
    {"ec.crt", "ec.key", NULL, NULL, "TLSv1.2 TLSv1.4", NULL, NULL, 0, NULL, 20, "protocols", NULL,
     "unknown protocol TLSv1.4 (TLSv1.2, TLSv1.3)"},
    {"ec.crt", "ec.key", NULL, NULL, "TLSv1.1 TLSv1.2", NULL, NULL, 0, NULL, 20, "protocols", NULL,
     "TLSv1.1 is refused"},
    {"ec.crt", "ec.key", NULL, NULL, " , ", NULL, NULL, 0, NULL, 20, "protocols", NULL,
     "no protocol named"},
    {"ec.crt", "ec.key", NULL, NULL, NULL,
     "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA257", NULL, 0, NULL, 21, "ciphers", NULL,
     "unknown cipher ECDHE-RSA-AES128-GCM-SHA257"},
    {"ec.crt", "ec.key", NULL, NULL, NULL, "TLS_AES_128_GCM_SHA256", NULL, 0, NULL, 21, "ciphers",
     NULL, "unknown cipher TLS_AES_128_GCM_SHA256"},
    {"ec.crt", "ec.key", NULL, NULL, NULL, "!aNULL", NULL, 0, NULL, 21, "ciphers", NULL,
     "OpenSSL refuses the list: no cipher match"},
    {"ec.crt", "ec.key", NULL, NULL, NULL, "HIGH:@SECLEVEL=1", NULL, 0, NULL, 21, "ciphers", NULL,
     "@SECLEVEL below 2 is refused"},
    {"ec.crt", "ec.key", NULL, NULL, NULL, NULL, "TLS_AES_128_GCM_SHA256:TLS_AES_128_CCM_9_SHA256",
     0, NULL, 22, "ciphersuites", NULL, "unknown TLS 1.3 suite TLS_AES_128_CCM_9_SHA256"},
    {"ec.crt", "ec.key", NULL, NULL, NULL, NULL, NULL, TLS_CLIENT_CERT_REQUIRED, NULL, 23,
     "client_certificate", NULL, "required needs client_ca"},
    {"ec.crt", "ec.key", NULL, NULL, NULL, NULL, NULL, TLS_CLIENT_CERT_OPTIONAL, "nope.crt", 24,
     "client_ca", "nope.crt", "cannot open: No such file or directory"},
    {"ec.crt", "ec.key", NULL, NULL, NULL, NULL, NULL, TLS_CLIENT_CERT_OPTIONAL, "ec.key", 24,
     "client_ca", "ec.key", "no PEM certificate in the file"},
};

START_TEST(test_load_errors)
{
    struct tls_cert_spec certs[2] = {
        spec(err_cases[_i].cert, err_cases[_i].key, 10),
        spec(err_cases[_i].cert2, err_cases[_i].key2, 11),
    };
    struct tls_settings set = settings(certs, err_cases[_i].cert2 != NULL ? 2 : 1);
    struct tls_store *st = NULL;
    char err[1024], want[512];

    set.protocols = err_cases[_i].protocols;
    set.protocols_at = (struct tls_origin){"test.ini", 20};
    set.ciphers = err_cases[_i].ciphers;
    set.ciphers_at = (struct tls_origin){"test.ini", 21};
    set.ciphersuites = err_cases[_i].suites;
    set.ciphersuites_at = (struct tls_origin){"test.ini", 22};
    set.client_cert = err_cases[_i].cc;
    set.client_cert_at = (struct tls_origin){"test.ini", 23};
    set.client_ca = cpath(err_cases[_i].client_ca);
    set.client_ca_at = (struct tls_origin){"test.ini", 24};
    if (err_cases[_i].file != NULL)
        snprintf(want, sizeof(want), "test.ini:%d: [tls] %s: %s: ", err_cases[_i].line,
                 err_cases[_i].key_name, cpath(err_cases[_i].file));
    else
        snprintf(want, sizeof(want), "test.ini:%d: [tls] %s: ", err_cases[_i].line,
                 err_cases[_i].key_name);
    ck_assert_int_eq(tls_load(&set, &st, err, sizeof(err), NULL, NULL), -1);
    ck_assert_ptr_null(st);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "case %d: \"%s\" should begin \"%s\"", _i,
                  err, want);
    ck_assert_msg(strstr(err, err_cases[_i].what) != NULL, "case %d: \"%s\" should say \"%s\"", _i,
                  err, err_cases[_i].what);
    ck_assert_msg(strchr(err, '\n') == NULL, "one line: %s", err);
}
END_TEST

START_TEST(test_load_no_certificate)
{
    struct tls_settings set = settings(NULL, 0);
    struct tls_store *st = NULL;
    char err[256];

    ck_assert_int_eq(tls_load(&set, &st, err, sizeof(err), NULL, NULL), -1);
    ck_assert_str_eq(err, "[tls] certificate: no certificate given");
}
END_TEST

/* ---- successful loads, warnings, introspection ---- */

START_TEST(test_load_store_info)
{
    struct tls_cert_spec certs[] = {
        spec("wild.crt", "wild.key", 10),
        spec("ec.crt", "ec.key", 11),
        spec("rsa.crt", "rsa.key", 12),
    };
    struct tls_settings set = settings(certs, NELEM(certs));
    struct tls_store *st = load_ok(&set);
    char names[64];
    time_t na = 0, now = time(NULL);

    ck_assert_str_eq(warns, "");
    ck_assert_ptr_nonnull(tls_store_ctx(st));
    ck_assert_uint_eq(tls_store_cert_count(st), 3);
    ck_assert_int_eq(tls_store_cert_info(st, 0, names, sizeof(names), &na), 0);
    ck_assert_str_eq(names, "*.w.test");
    /* made with -days 30 */
    ck_assert_msg(na > now + 29 * 86400 && na <= now + 30 * 86400, "not_after %lld",
                  (long long)na);
    ck_assert_int_eq(tls_store_cert_info(st, 1, names, sizeof(names), &na), 0);
    ck_assert_str_eq(names, "a.test b.test");
    /* the RSA certificate lists "b.test, A.test": lower case, sorted */
    ck_assert_int_eq(tls_store_cert_info(st, 2, names, sizeof(names), &na), 0);
    ck_assert_str_eq(names, "a.test b.test");
    ck_assert_int_eq(tls_store_cert_info(st, 3, names, sizeof(names), &na), -1);
    ck_assert_str_eq(names, "");
    /* too small: the names that fit */
    ck_assert_int_eq(tls_store_cert_info(st, 1, names, 10, &na), -1);
    ck_assert_str_eq(names, "a.test");
    tls_free(st);

    /* a chain (leaf first) with the key in its own file; a PEM holding cert and key */
    certs[0] = spec("chain.pem", "ec.key", 10);
    certs[1] = spec("combined.pem", NULL, 11);
    set = settings(certs, 1);
    tls_free(load_ok(&set));
    ck_assert_str_eq(warns, "");
    certs[0] = certs[1];
    tls_free(load_ok(&set));
    ck_assert_str_eq(warns, "");
    tls_free(NULL);
}
END_TEST

START_TEST(test_load_warnings)
{
    struct tls_cert_spec certs[1] = {spec("soon.crt", "soon.key", 10)};
    struct tls_settings set = settings(certs, 1);
    char want[512], key[160], cmd[512];

    tls_free(load_ok(&set));
    snprintf(want, sizeof(want), "test.ini:10: [tls] certificate: %s: the certificate expires in ",
             cpath("soon.crt"));
    ck_assert_msg(strncmp(warns, want, strlen(want)) == 0, "warnings: %s", warns);
    ck_assert_msg(strstr(warns, "expires in 5 days, on ") != NULL, "warnings: %s", warns);

    /* key files readable by others or by their group */
    snprintf(key, sizeof(key), "%s", cpath("ec-mode.key"));
    snprintf(cmd, sizeof(cmd), "cp %s %s && chmod 644 %s", cpath("ec.key"), key, key);
    ck_assert_int_eq(tl_sh(NULL, 0, "%s", cmd), 0);
    certs[0] = spec("ec.crt", "ec-mode.key", 10);
    tls_free(load_ok(&set));
    snprintf(want, sizeof(want),
             "test.ini:10: [tls] certificate: %s: the key file is readable by others (mode "
             "0644): make it readable by root only\n",
             key);
    ck_assert_str_eq(warns, want);
    ck_assert_int_eq(chmod(key, 0640), 0);
    tls_free(load_ok(&set));
    ck_assert_msg(strstr(warns, "readable by its group (mode 0640)") != NULL, "%s", warns);
    ck_assert_int_eq(chmod(key, 0600), 0);
    tls_free(load_ok(&set));
    ck_assert_str_eq(warns, "");
    unlink(key);

    /* a chain whose second certificate is not the issuer of the first */
    certs[0] = spec("badchain.pem", "ec.key", 10);
    tls_free(load_ok(&set));
    snprintf(want, sizeof(want),
             "test.ini:10: [tls] certificate: %s: certificate 2 in the chain did not issue "
             "certificate 1: list each certificate's issuer after it\n",
             cpath("badchain.pem"));
    ck_assert_str_eq(warns, want);

    /* a client CA that is not used */
    certs[0] = spec("ec.crt", "ec.key", 10);
    set.client_ca = cpath("ca.crt");
    set.client_ca_at = (struct tls_origin){"test.ini", 24};
    tls_free(load_ok(&set));
    ck_assert_msg(strstr(warns, "test.ini:24: [tls] client_ca: ") == warns &&
                      strstr(warns, "not used: client_certificate is off") != NULL,
                  "%s", warns);
}
END_TEST

/* ---- handshakes ---- */

struct hs_opts {
    const char *sni;     /* NULL: none */
    bool verify_host;    /* the client checks that the certificate covers <sni> */
    int min, max;        /* the client's protocol versions (0: OpenSSL's default) */
    const char *sigalgs; /* the client's signature algorithms (NULL: default) */
    const char *ciphers; /* the client's TLS 1.2 ciphers (NULL: default) */
    const char *ccert;   /* a client certificate and its key, in certdir */
    const char *ckey;
    bool renegotiate;      /* once connected, the client asks for a renegotiation (TLS 1.2) */
    bool no_ticket;        /* the client asks for no session ticket */
    SSL_SESSION **session; /* in: offered if set; out: the client's session (caller frees) */
};

struct hs_result {
    bool ok;          /* both sides completed and exchanged a message */
    bool server_fail; /* the server side failed */
    int alert;        /* the last alert the client received, -1 if none */
    int version;
    char cn[64];        /* the server certificate's common name */
    char cipher[64];    /* the negotiated cipher */
    long server_verify; /* the server's verification of the client certificate */
    bool client_cert;   /* the server got a client certificate */
    bool resumed;       /* the session was resumed */
    int reneg_alert;    /* with <renegotiate>: the alert the client got in answer, -1 if none */
};

static int last_alert;

static void
client_info_cb(const SSL *ssl, int where, int ret)
{
    (void)ssl;
    /* SSL_CB_READ_ALERT and SSL_CB_WRITE_ALERT share the SSL_CB_ALERT bit: test both bits */
    if ((where & SSL_CB_READ_ALERT) == SSL_CB_READ_ALERT)
        last_alert = ret & 0xff;
}

/* One step of <ssl>'s handshake: 1 done, 0 wants more, -1 failed. */
static int
hs_step(SSL *ssl)
{
    int rc = SSL_do_handshake(ssl);

    if (rc == 1)
        return 1;
    switch (SSL_get_error(ssl, rc)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return 0;
    default:
        return -1;
    }
}

/* Sends "ping" from <from> and reads it on <to>; true when it arrived. */
static bool
hs_ping(SSL *from, SSL *to)
{
    char buf[8];
    int i, n;

    if (SSL_write(from, "ping", 4) != 4)
        return false;
    for (i = 0; i < 100; i++) {
        n = SSL_read(to, buf, sizeof(buf));
        if (n == 4)
            return memcmp(buf, "ping", 4) == 0;
        if (n <= 0 && SSL_get_error(to, n) != SSL_ERROR_WANT_READ)
            return false;
        /* the peer may owe post-handshake messages (TLS 1.3 tickets): let it read */
        (void)SSL_read(from, buf, 0);
    }
    return false;
}

/*
 * The client <c> asks for a renegotiation, the server <s> reads; returns the
 * alert the client received in answer (-1: none within the bound).
 */
static int
hs_renegotiate(SSL *c, SSL *s)
{
    char buf[8];
    int i;

    last_alert = -1;
    if (SSL_renegotiate(c) != 1)
        return -1;
    for (i = 0; i < 20 && last_alert == -1; i++) {
        (void)SSL_do_handshake(c);
        (void)SSL_read(s, buf, sizeof(buf));
        (void)SSL_read(c, buf, sizeof(buf));
    }
    return last_alert;
}

/* Runs one handshake between a client made from <o> and a server connection from <st>. */
static void
handshake(struct tls_store *st, const struct hs_opts *o, struct hs_result *r)
{
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL *c, *s;
    int sv[2], i, cs = 0, ss = 0, after = 0;
    X509 *peer;

    memset(r, 0, sizeof(*r));
    r->alert = -1;
    last_alert = -1;
    ERR_clear_error();
    ck_assert_ptr_nonnull(cctx);
    ck_assert_int_eq(SSL_CTX_load_verify_locations(cctx, cpath("ca.crt"), NULL), 1);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
    if (o->max != 0 && o->max < TLS1_2_VERSION) {
        /* OpenSSL 3 offers TLS 1.0/1.1 only at security level 0 */
        SSL_CTX_set_security_level(cctx, 0);
        ck_assert_int_eq(SSL_CTX_set_cipher_list(cctx, "DEFAULT:@SECLEVEL=0"), 1);
    }
    if (o->min != 0)
        ck_assert_int_eq(SSL_CTX_set_min_proto_version(cctx, o->min), 1);
    if (o->max != 0)
        ck_assert_int_eq(SSL_CTX_set_max_proto_version(cctx, o->max), 1);
    if (o->sigalgs != NULL)
        ck_assert_int_eq(SSL_CTX_set1_sigalgs_list(cctx, o->sigalgs), 1);
    if (o->ciphers != NULL)
        ck_assert_int_eq(SSL_CTX_set_cipher_list(cctx, o->ciphers), 1);
    if (o->ccert != NULL) {
        ck_assert_int_eq(SSL_CTX_use_certificate_file(cctx, cpath(o->ccert), SSL_FILETYPE_PEM), 1);
        ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(cctx, cpath(o->ckey), SSL_FILETYPE_PEM), 1);
    }
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    c = SSL_new(cctx);
    s = SSL_new(tls_store_ctx(st));
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(s);
    SSL_set_info_callback(c, client_info_cb);
    ck_assert_int_eq(SSL_set_fd(c, sv[0]), 1);
    ck_assert_int_eq(SSL_set_fd(s, sv[1]), 1);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    if (o->no_ticket)
        SSL_set_options(c, SSL_OP_NO_TICKET);
    if (o->session != NULL && *o->session != NULL)
        ck_assert_int_eq(SSL_set_session(c, *o->session), 1);
    if (o->sni != NULL)
        ck_assert_int_eq(SSL_set_tlsext_host_name(c, o->sni), 1);
    if (o->verify_host)
        ck_assert_int_eq(SSL_set1_host(c, o->sni), 1);
    /* Bounded: a handshake is a few flights; once a side failed, let the other read its alert. */
    for (i = 0; i < 100 && !(cs == 1 && ss == 1) && after < 4; i++) {
        if (cs == 0)
            cs = hs_step(c);
        if (ss == 0)
            ss = hs_step(s);
        if (cs == -1 || ss == -1)
            after++;
    }
    r->server_fail = ss == -1;
    r->ok = cs == 1 && ss == 1 && hs_ping(c, s) && hs_ping(s, c);
    r->alert = last_alert;
    r->reneg_alert = -1;
    if (r->ok && o->renegotiate)
        r->reneg_alert = hs_renegotiate(c, s);
    r->version = SSL_version(c);
    if (SSL_get_current_cipher(c) != NULL)
        snprintf(r->cipher, sizeof(r->cipher), "%s",
                 SSL_CIPHER_get_name(SSL_get_current_cipher(c)));
    peer = SSL_get0_peer_certificate(c);
    if (peer != NULL)
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, r->cn,
                                  sizeof(r->cn));
    r->client_cert = SSL_get0_peer_certificate(s) != NULL;
    r->server_verify = SSL_get_verify_result(s);
    r->resumed = SSL_session_reused(s) == 1;
    if (o->session != NULL) {
        SSL_SESSION_free(*o->session);
        *o->session = SSL_get1_session(c);
    }
    /* close_notify both ways: a session freed without it is dropped from the cache */
    if (r->ok) {
        (void)SSL_shutdown(s);
        (void)SSL_shutdown(c);
    }
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
    close(sv[0]);
    close(sv[1]);
    ERR_clear_error();
}

/* The store for the SNI tests: the wildcard first (the default), then a.test/b.test twice. */
static struct tls_store *
sni_store(bool strict)
{
    static struct tls_cert_spec certs[4];
    struct tls_settings set;

    certs[0] = spec("wild.crt", "wild.key", 10);
    certs[1] = spec("ec.crt", "ec.key", 11);
    certs[2] = spec("rsa.crt", "rsa.key", 12);
    certs[3] = spec("exact.crt", "exact.key", 13);
    set = settings(certs, NELEM(certs));
    set.strict_sni = strict;
    return load_ok(&set);
}

static const struct {
    const char *sni;
    bool verify_host;
    const char *cn;
} sni_cases[] = {
    {"a.test", true, "ec-ab"},     {"B.TEST", true, "ec-ab"},
    {"x.w.test", true, "exact"}, /* exact before the wildcard */
    {"y.w.test", true, "wild"},    {"Z.W.test", true, "wild"},
    {"a.b.w.test", false, "wild"}, /* unknown: the first certificate */
    {"zz.test", false, "wild"},    {NULL, false, "wild"},
};

START_TEST(test_sni_choice)
{
    struct tls_store *st = sni_store(false);
    struct hs_opts o = {.sni = sni_cases[_i].sni, .verify_host = sni_cases[_i].verify_host};
    struct hs_result r;

    handshake(st, &o, &r);
    ck_assert_msg(r.ok, "case %d: handshake failed (alert %d)", _i, r.alert);
    ck_assert_str_eq(r.cn, sni_cases[_i].cn);
    ck_assert_int_eq(r.version, TLS1_3_VERSION);
    tls_free(st);
}
END_TEST

START_TEST(test_sni_strict)
{
    struct tls_store *st = sni_store(true);
    struct hs_opts o = {.sni = "zz.test"};
    struct hs_result r;

    handshake(st, &o, &r);
    ck_assert(!r.ok);
    ck_assert(r.server_fail);
    ck_assert_int_eq(r.alert, SSL_AD_UNRECOGNIZED_NAME);
    o.sni = NULL;
    handshake(st, &o, &r);
    ck_assert(!r.ok);
    ck_assert_int_eq(r.alert, SSL_AD_UNRECOGNIZED_NAME);
    o.sni = "y.w.test";
    o.verify_host = true;
    handshake(st, &o, &r);
    ck_assert(r.ok);
    ck_assert_str_eq(r.cn, "wild");
    tls_free(st);
}
END_TEST

/* A client that can verify only RSA signatures gets the RSA certificate; others the ECDSA one. */
START_TEST(test_sni_key_type)
{
    struct tls_store *st = sni_store(false);
    struct hs_opts o = {.sni = "a.test", .verify_host = true};
    struct hs_result r;

    o.sigalgs = "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pkcs1_sha256";
    handshake(st, &o, &r);
    ck_assert(r.ok);
    ck_assert_str_eq(r.cn, "rsa-ab");
    ck_assert_int_eq(r.version, TLS1_3_VERSION);

    o.sigalgs = NULL;
    o.max = TLS1_2_VERSION;
    o.ciphers = "ECDHE-RSA-AES128-GCM-SHA256";
    handshake(st, &o, &r);
    ck_assert(r.ok);
    ck_assert_str_eq(r.cn, "rsa-ab");
    ck_assert_int_eq(r.version, TLS1_2_VERSION);
    ck_assert_str_eq(r.cipher, "ECDHE-RSA-AES128-GCM-SHA256");

    /* TLS 1.2, both kinds offered: the server's order decides */
    o.ciphers = "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384:"
                "ECDHE-ECDSA-AES128-GCM-SHA256";
    handshake(st, &o, &r);
    ck_assert(r.ok);
    ck_assert_str_eq(r.cn, "ec-ab");
    ck_assert_str_eq(r.cipher, "ECDHE-ECDSA-AES128-GCM-SHA256");
    tls_free(st);
}
END_TEST

START_TEST(test_protocols)
{
    struct tls_cert_spec certs[1] = {spec("ec.crt", "ec.key", 10)};
    struct tls_settings set = settings(certs, 1);
    struct tls_store *st = load_ok(&set);
    struct hs_opts o = {.sni = "a.test", .min = TLS1_1_VERSION, .max = TLS1_1_VERSION};
    struct hs_result r;

    /* a TLS 1.1-only client is refused by the server (the alert comes from it) */
    handshake(st, &o, &r);
    ck_assert(!r.ok);
    ck_assert(r.server_fail);
    ck_assert_int_eq(r.alert, SSL_AD_PROTOCOL_VERSION);
    o.min = o.max = TLS1_2_VERSION;
    handshake(st, &o, &r);
    ck_assert(r.ok);
    ck_assert_int_eq(r.version, TLS1_2_VERSION);
    tls_free(st);

    set.protocols = "TLSv1.3";
    st = load_ok(&set);
    handshake(st, &o, &r);
    ck_assert(!r.ok);
    ck_assert_int_eq(r.alert, SSL_AD_PROTOCOL_VERSION);
    tls_free(st);

    set.protocols = "tlsv1.2,";
    st = load_ok(&set);
    o.min = o.max = 0;
    handshake(st, &o, &r);
    ck_assert(r.ok);
    ck_assert_int_eq(r.version, TLS1_2_VERSION);
    tls_free(st);
}
END_TEST

/* The ciphers of <ctx> in order, TLS 1.3 suites first, joined with ':'. */
static void
cipher_names(SSL_CTX *ctx, char *out, size_t outlen)
{
    STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(ctx);
    size_t n = 0;
    int i;

    out[0] = '\0';
    for (i = 0; i < sk_SSL_CIPHER_num(sk); i++)
        n += (size_t)snprintf(out + n, outlen - n, "%s%s", i > 0 ? ":" : "",
                              SSL_CIPHER_get_name(sk_SSL_CIPHER_value(sk, i)));
    ck_assert_uint_lt(n, outlen);
}

START_TEST(test_ctx_settings)
{
    struct tls_cert_spec certs[1] = {spec("ec.crt", "ec.key", 10)};
    struct tls_settings set = settings(certs, 1);
    struct tls_store *st = load_ok(&set);
    SSL_CTX *ctx = tls_store_ctx(st);
    uint64_t want =
        SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE;
    char names[1024];

    ck_assert((SSL_CTX_get_options(ctx) & want) == want);
    ck_assert_int_eq(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    ck_assert_int_eq(SSL_CTX_get_max_proto_version(ctx), TLS1_3_VERSION);
    ck_assert_uint_eq(SSL_CTX_get_max_early_data(ctx), 0);
    ck_assert_uint_eq(SSL_CTX_get_recv_max_early_data(ctx), 0);
    ck_assert_int_eq(SSL_CTX_get_security_level(ctx), 2);
    cipher_names(ctx, names, sizeof(names));
    ck_assert_str_eq(names, MP_TLS_DEFAULT_CIPHERSUITES ":" MP_TLS_DEFAULT_CIPHERS);
    tls_free(st);

    set.protocols = "TLSv1.3";
    set.ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384";
    set.ciphersuites = "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384";
    st = load_ok(&set);
    ctx = tls_store_ctx(st);
    ck_assert_int_eq(SSL_CTX_get_min_proto_version(ctx), TLS1_3_VERSION);
    ck_assert_int_eq(SSL_CTX_get_max_proto_version(ctx), TLS1_3_VERSION);
    cipher_names(ctx, names, sizeof(names));
    ck_assert_str_eq(names, "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384:"
                            "ECDHE-ECDSA-AES256-GCM-SHA384");
    tls_free(st);
}
END_TEST

/* A TLS 1.2 client asking to renegotiate gets the no_renegotiation alert. */
START_TEST(test_no_renegotiation)
{
    struct tls_cert_spec certs[1] = {spec("ec.crt", "ec.key", 10)};
    struct tls_settings set = settings(certs, 1);
    struct tls_store *st = load_ok(&set);
    struct hs_opts o = {.sni = "a.test", .max = TLS1_2_VERSION, .renegotiate = true};
    struct hs_result r;

    handshake(st, &o, &r);
    ck_assert(r.ok);
    ck_assert_int_eq(r.version, TLS1_2_VERSION);
    ck_assert_int_eq(r.reneg_alert, SSL_AD_NO_RENEGOTIATION);
    tls_free(st);
}
END_TEST

START_TEST(test_client_certificates)
{
    struct tls_cert_spec certs[1] = {spec("ec.crt", "ec.key", 10)};
    struct tls_settings set = settings(certs, 1);
    struct tls_store *st;
    struct hs_opts o = {.sni = "a.test", .ccert = "client.crt", .ckey = "client.key"};
    struct hs_result r;
    int v;

    set.client_ca = cpath("ca.crt");
    for (v = 0; v < 2; v++) { /* TLS 1.3, then 1.2 */
        o.max = v == 0 ? 0 : TLS1_2_VERSION;
        set.client_cert = TLS_CLIENT_CERT_REQUIRED;
        st = load_ok(&set);
        o.ccert = "client.crt";
        o.ckey = "client.key";
        handshake(st, &o, &r);
        ck_assert(r.ok);
        ck_assert(r.client_cert);
        ck_assert_int_eq(r.server_verify, X509_V_OK);
        o.ccert = "rogue.crt";
        o.ckey = "rogue.key";
        handshake(st, &o, &r);
        ck_assert(!r.ok);
        ck_assert(r.server_fail);
        o.ccert = o.ckey = NULL;
        handshake(st, &o, &r);
        ck_assert(!r.ok);
        ck_assert(r.server_fail);
        tls_free(st);

        set.client_cert = TLS_CLIENT_CERT_OPTIONAL;
        st = load_ok(&set);
        handshake(st, &o, &r);
        ck_assert(r.ok);
        ck_assert(!r.client_cert);
        o.ccert = "rogue.crt";
        o.ckey = "rogue.key";
        handshake(st, &o, &r);
        ck_assert(r.ok);
        ck_assert(r.client_cert);
        ck_assert_int_ne(r.server_verify, X509_V_OK);
        tls_free(st);
    }
}
END_TEST

/*
 * The session cache in the shared table: a session made by one process
 * resumes in another, and a process that dies holding the cache's lock
 * leaves it usable (emptied).
 */
START_TEST(test_shared_session_cache)
{
    struct tls_cert_spec c[] = {spec("ec.crt", "ec.key", 2)};
    struct tls_settings set = settings(c, 1);
    struct tls_shared *sh = tls_shared_create(64 * 1024);
    struct hs_opts o = {.sni = "a.test", .max = TLS1_2_VERSION, .no_ticket = true};
    SSL_SESSION *sess = NULL;
    struct hs_result r;
    struct tls_counters n;
    struct tls_store *st;
    pid_t pid;
    int status;

    ck_assert_ptr_nonnull(sh);
    tls_shared_use(sh);
    set.shared_cache = true;
    set.timeout_s = 60;
    st = load_ok(&set);
    o.session = &sess;
    handshake(st, &o, &r);
    ck_assert(r.ok);
    ck_assert(!r.resumed);
    tls_shared_counters(sh, &n);
    ck_assert_uint_eq(n.cache_entries, 1);
    /* another process resumes it */
    pid = fork();
    ck_assert_int_ne(pid, -1);
    if (pid == 0) {
        handshake(st, &o, &r);
        _exit(r.ok && r.resumed ? 0 : 1);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "not resumed in a child");
    /* a process dies holding the lock */
    pid = fork();
    ck_assert_int_ne(pid, -1);
    if (pid == 0)
        _exit(tls_shared_hold_lock(sh) == 0 ? 0 : 1);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    alarm(10); /* a deadlock fails the test rather than hanging it */
    handshake(st, &o, &r);
    ck_assert(r.ok);
    ck_assert_msg(!r.resumed, "the cache was not emptied after its holder died");
    handshake(st, &o, &r);
    ck_assert(r.ok);
    ck_assert(r.resumed);
    alarm(0);
    SSL_SESSION_free(sess);
    tls_free(st);
    tls_shared_use(NULL);
    tls_shared_destroy(sh);
}
END_TEST

static Suite *
tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tn = tcase_create("names");
    TCase *tl = tcase_create("load");
    TCase *th = tcase_create("handshake");

    tcase_add_loop_test(tn, test_name_match, 0, (int)NELEM(match_cases));
    suite_add_tcase(s, tn);

    tcase_add_loop_test(tl, test_load_errors, 0, (int)NELEM(err_cases));
    tcase_add_test(tl, test_load_no_certificate);
    tcase_add_test(tl, test_load_store_info);
    tcase_add_test(tl, test_load_warnings);
    suite_add_tcase(s, tl);

    tcase_add_loop_test(th, test_sni_choice, 0, (int)NELEM(sni_cases));
    tcase_add_test(th, test_sni_strict);
    tcase_add_test(th, test_sni_key_type);
    tcase_add_test(th, test_protocols);
    tcase_add_test(th, test_client_certificates);
    tcase_add_test(th, test_ctx_settings);
    tcase_add_test(th, test_no_renegotiation);
    tcase_add_test(th, test_shared_session_cache);
    suite_add_tcase(s, th);
    return s;
}

int
main(void)
{
    int rc;

    if (tl_certs_make(certdir, sizeof(certdir), "unit_tls") == -1)
        return 1;
    rc = tl_run(tls_suite());
    tl_certs_remove(certdir);
    return rc;
}
