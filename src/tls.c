/*
 * tls: loading and checking certificates and keys, the OpenSSL server
 * contexts, and choosing the certificate by SNI. See include/tls.h.
 *
 * tls_load() works in three passes, so that every check can name the
 * configuration line it is about: parse and check each `certificate =` line
 * on its own (files, chain order, dates, strength, key), then group the
 * certificates by their set of names (checking that no name is claimed
 * twice), then build one SSL_CTX per group with the settings.
 */
#include "tls.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

/* A PEM file larger than this is not a certificate chain or a key. */
#define MP_TLS_FILE_MAX (1024 * 1024)

/* Security level 2: 112-bit security (RSA 2048, ECDSA P-256, SHA-256 signatures). */
#define MP_TLS_SECLEVEL 2
#define MP_TLS_SECBITS 112

/* The key exchange groups of Mozilla's "intermediate" profile. */
#define MP_TLS_GROUPS "X25519:P-256:P-384"

/* The same for every context, so that a session resumes whichever context SNI picked. */
static const unsigned char tls_sid_ctx[] = "miniproxyd";

/* A list of certificates (a typedef: clang-format cannot read STACK_OF() as a type). */
typedef STACK_OF(X509) tls_x509s;

/* One `certificate =` line once loaded. */
struct tls_cert {
    char **names; /* DNS names from subjectAltName: lower case, sorted, unique */
    size_t nnames;
    time_t not_after;
    int key_type; /* EVP_PKEY_get_base_id() of its key */
    size_t site;  /* index in tls_store.sites */
};

/* One set of names: one context, holding one certificate per key type. */
struct tls_site {
    SSL_CTX *ctx;
    size_t cert; /* a certificate of this site: its names are the site's */
};

struct tls_store {
    struct tls_cert *certs;
    size_t ncerts;
    struct tls_site *sites;
    size_t nsites;
    bool strict_sni;
    struct tls_ticket_key tkeys[TLS_TICKET_KEYS_MAX]; /* from ticket_key_file */
    size_t ntkeys;
};

static void tls_setup_resumption(const struct tls_settings *set, SSL_CTX *ctx);
static void tls_servername_seen(SSL *ssl);

/* What the first pass keeps of a certificate line until its context is built. */
struct tls_parsed {
    tls_x509s *chain; /* leaf first */
    EVP_PKEY *key;
};

/* The state of one tls_load() call. */
struct tls_loader {
    const struct tls_settings *set;
    char *err;
    size_t errlen;
    tls_warn_fn warn;
    void *warn_arg;
    time_t now;
};

/*
 * Formats "FILE:LINE: [tls] KEY: PATH: " and the message into <out>; the
 * origin is left out when unknown (a default), the path when NULL.
 */
static void
tls_vformat(char *out, size_t outlen, const struct tls_origin *at, const char *key,
            const char *path, const char *fmt, va_list ap)
{
    size_t n = 0;
    int r;

    if (outlen == 0)
        return;
    out[0] = '\0';
    if (at != NULL && at->file != NULL)
        r = snprintf(out, outlen, "%s:%d: [tls] %s: ", at->file, at->line, key);
    else
        r = snprintf(out, outlen, "[tls] %s: ", key);
    if (r < 0 || (size_t)r >= outlen)
        return;
    n = (size_t)r;
    if (path != NULL) {
        r = snprintf(out + n, outlen - n, "%s: ", path);
        if (r < 0 || (size_t)r >= outlen - n)
            return;
        n += (size_t)r;
    }
    vsnprintf(out + n, outlen - n, fmt, ap);
}

/* Stores an error in the loader's buffer (see tls_vformat()). Always returns -1. */
__attribute__((format(printf, 5, 6))) static int
tls_fail(struct tls_loader *ld, const struct tls_origin *at, const char *key, const char *path,
         const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    tls_vformat(ld->err, ld->errlen, at, key, path, fmt, ap);
    va_end(ap);
    ERR_clear_error();
    return -1;
}

/* Passes a warning to the loader's callback, if any (see tls_vformat()). */
__attribute__((format(printf, 5, 6))) static void
tls_warn(struct tls_loader *ld, const struct tls_origin *at, const char *key, const char *path,
         const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (ld->warn == NULL)
        return;
    va_start(ap, fmt);
    tls_vformat(msg, sizeof(msg), at, key, path, fmt, ap);
    va_end(ap);
    ld->warn(ld->warn_arg, msg);
}

/* OpenSSL's reason for the last error in the queue (which it clears), for messages. */
static const char *
tls_ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    return r != NULL ? r : "unknown OpenSSL error";
}

/* "2026-12-06 08:37:26 UTC" for <t>, in <out> (at least 32 bytes). */
static const char *
tls_fmt_time(time_t t, char *out, size_t outlen)
{
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(out, outlen, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(out, outlen, "(time %lld)", (long long)t);
    return out;
}

/* An ASN1_TIME as a time_t; returns 0, or -1 when it does not parse. */
static int
tls_asn1_time(const ASN1_TIME *a, time_t *out)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (a == NULL || ASN1_TIME_to_tm(a, &tm) != 1)
        return -1;
    *out = timegm(&tm);
    return 0;
}

/* "ECDSA", "RSA", or OpenSSL's name of the key type of <k>. */
static const char *
tls_key_type_name(const EVP_PKEY *k)
{
    const char *n;

    switch (EVP_PKEY_get_base_id(k)) {
    case EVP_PKEY_EC:
        return "ECDSA";
    case EVP_PKEY_RSA:
        return "RSA";
    default:
        n = EVP_PKEY_get0_type_name(k);
        return n != NULL ? n : "unknown";
    }
}

/* A file read whole into memory; it may hold a key, so tls_file_free() wipes it. */
struct tls_file {
    char *data;
    size_t len;
};

/*
 * Reads the whole file <path> into <f>. Stores its mode in <*mode> when not
 * NULL. Returns 0, or -1 with the error stored (naming <at> and <key>).
 */
static int
tls_read_file(struct tls_loader *ld, const struct tls_origin *at, const char *key,
              const char *path, struct tls_file *f, mode_t *mode)
{
    struct stat sb;
    ssize_t n;
    int fd;
    int rc = -1;

    f->data = NULL;
    f->len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd == -1)
        return tls_fail(ld, at, key, path, "cannot open: %s", strerror(errno));
    if (fstat(fd, &sb) == -1) {
        tls_fail(ld, at, key, path, "cannot stat: %s", strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        tls_fail(ld, at, key, path, "not a regular file");
        goto out;
    }
    if (sb.st_size > MP_TLS_FILE_MAX) {
        tls_fail(ld, at, key, path, "larger than %d bytes: not a PEM file", MP_TLS_FILE_MAX);
        goto out;
    }
    f->data = malloc((size_t)sb.st_size + 1);
    if (f->data == NULL) {
        tls_fail(ld, at, key, path, "out of memory");
        goto out;
    }
    /* st_size bounds the read: a file that grows meanwhile is cut, not overrun. */
    while (f->len < (size_t)sb.st_size) {
        n = read(fd, f->data + f->len, (size_t)sb.st_size - f->len);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1) {
            tls_fail(ld, at, key, path, "cannot read: %s", strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        f->len += (size_t)n;
    }
    if (mode != NULL)
        *mode = sb.st_mode;
    rc = 0;
out:
    close(fd);
    return rc;
}

/* Wipes and frees what tls_read_file() read (nothing when it failed). */
static void
tls_file_free(struct tls_file *f)
{
    if (f->data != NULL) {
        OPENSSL_cleanse(f->data, f->len);
        free(f->data);
    }
    f->data = NULL;
    f->len = 0;
}

/* A read-only BIO over <f> (which must outlive it), or NULL with the error stored. */
static BIO *
tls_file_bio(struct tls_loader *ld, const struct tls_origin *at, const char *key, const char *path,
             const struct tls_file *f)
{
    BIO *b = BIO_new_mem_buf(f->data, (int)f->len);

    if (b == NULL)
        tls_fail(ld, at, key, path, "out of memory");
    return b;
}

/* True when the last error in the queue says "no more PEM blocks" (a clean end of file). */
static bool
tls_pem_at_end(void)
{
    unsigned long e = ERR_peek_last_error();

    return ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
}

/*
 * Reads every certificate in <f> into a new stack in <*out>. Returns 0, or
 * -1 with the error stored: no certificate at all, or one that does not parse.
 */
static int
tls_read_certs(struct tls_loader *ld, const struct tls_origin *at, const char *key,
               const char *path, const struct tls_file *f, tls_x509s **out)
{
    tls_x509s *sk = sk_X509_new_null();
    BIO *b = tls_file_bio(ld, at, key, path, f);
    X509 *x;
    int rc = -1;

    if (b == NULL)
        goto out;
    if (sk == NULL) {
        tls_fail(ld, at, key, path, "out of memory");
        goto out;
    }
    ERR_clear_error();
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (sk_X509_push(sk, x) == 0) {
            X509_free(x);
            tls_fail(ld, at, key, path, "out of memory");
            goto out;
        }
    }
    if (!tls_pem_at_end()) {
        tls_fail(ld, at, key, path, "certificate %d in the file does not parse: %s",
                 sk_X509_num(sk) + 1, tls_ssl_reason());
        goto out;
    }
    ERR_clear_error();
    if (sk_X509_num(sk) == 0) {
        tls_fail(ld, at, key, path, "no PEM certificate in the file");
        goto out;
    }
    *out = sk;
    sk = NULL;
    rc = 0;
out:
    sk_X509_pop_free(sk, X509_free);
    BIO_free(b);
    return rc;
}

/* A passphrase callback that refuses, so that OpenSSL never prompts; notes it was asked. */
static int
tls_no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    *(bool *)arg = true;
    return -1;
}

/* True when <f> holds a PEM block of a private key, encrypted or not, of any type. */
static bool
tls_has_key_block(const struct tls_file *f)
{
    BIO *b = BIO_new_mem_buf(f->data, (int)f->len);
    char *name = NULL, *header = NULL;
    unsigned char *data = NULL;
    long len;
    bool found = false;

    while (b != NULL && !found && PEM_read_bio(b, &name, &header, &data, &len) == 1) {
        found = strstr(name, "PRIVATE KEY") != NULL;
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_clear_free(data, (size_t)len);
        name = header = NULL;
        data = NULL;
    }
    BIO_free(b);
    ERR_clear_error();
    return found;
}

/*
 * Reads the first private key in <f> (the file <path>, the key's own file
 * when <own_file>) into <*out>. Returns 0, or -1 with the error stored: no
 * key, an encrypted key, a key that does not parse.
 */
static int
tls_read_key(struct tls_loader *ld, const struct tls_origin *at, const char *path,
             const struct tls_file *f, bool own_file, EVP_PKEY **out)
{
    BIO *b = tls_file_bio(ld, at, "certificate", path, f);
    bool asked = false;

    if (b == NULL)
        return -1;
    /* OpenSSL's decoders do not tell "no key here" from a key they cannot read. */
    if (!tls_has_key_block(f)) {
        BIO_free(b);
        return tls_fail(ld, at, "certificate", path,
                        own_file ? "no PEM private key in the file"
                                 : "no PEM private key in the file: append the key to it "
                                   "or name its file with key=PATH");
    }
    ERR_clear_error();
    *out = PEM_read_bio_PrivateKey(b, NULL, tls_no_passphrase, &asked);
    BIO_free(b);
    if (*out != NULL) {
        ERR_clear_error();
        return 0;
    }
    if (asked)
        return tls_fail(ld, at, "certificate", path,
                        "the key is encrypted and a passphrase cannot be given: store it "
                        "decrypted, readable by root only (openssl pkey -in KEY -out NEW)");
    return tls_fail(ld, at, "certificate", path, "the private key does not parse: %s",
                    tls_ssl_reason());
}

/* Orders strings for qsort(). */
static int
tls_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Stores the DNS names of <x>'s subjectAltName in <c> (lower case, sorted,
 * without repeats). Returns 0, or -1 with the error stored.
 */
static int
tls_cert_names(struct tls_loader *ld, const struct tls_origin *at, const char *path, X509 *x,
               struct tls_cert *c)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int i, n = gens != NULL ? sk_GENERAL_NAME_num(gens) : 0;
    size_t j, k;
    int rc = -1;

    c->names = calloc(n > 0 ? (size_t)n : 1, sizeof(*c->names));
    if (c->names == NULL) {
        tls_fail(ld, at, "certificate", path, "out of memory");
        goto out;
    }
    for (i = 0; i < n; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        const unsigned char *d;
        int len;
        char *s;

        if (g->type != GEN_DNS)
            continue;
        d = ASN1_STRING_get0_data(g->d.dNSName);
        len = ASN1_STRING_length(g->d.dNSName);
        if (len <= 0 || memchr(d, '\0', (size_t)len) != NULL) {
            tls_fail(ld, at, "certificate", path,
                     "a DNS name in subjectAltName is empty or "
                     "holds a NUL byte");
            goto out;
        }
        s = malloc((size_t)len + 1);
        if (s == NULL) {
            tls_fail(ld, at, "certificate", path, "out of memory");
            goto out;
        }
        for (k = 0; k < (size_t)len; k++)
            s[k] = (char)tolower(d[k]);
        s[len] = '\0';
        c->names[c->nnames++] = s;
    }
    qsort(c->names, c->nnames, sizeof(*c->names), tls_cmp_str);
    for (j = k = 0; j < c->nnames; j++) {
        if (k > 0 && strcmp(c->names[k - 1], c->names[j]) == 0)
            free(c->names[j]);
        else
            c->names[k++] = c->names[j];
    }
    c->nnames = k;
    rc = 0;
out:
    GENERAL_NAMES_free(gens);
    return rc;
}

/*
 * Checks that certificate <x> (number <pos> in the file, 0 the leaf) is
 * within its validity and strong enough for security level 2; warns when it
 * expires soon. Returns 0, or -1 with the error stored.
 */
static int
tls_check_one(struct tls_loader *ld, const struct tls_origin *at, const char *path, X509 *x,
              int pos)
{
    char which[48], tbuf[48];
    time_t nb, na;
    EVP_PKEY *pk = X509_get0_pubkey(x);
    int mdnid = NID_undef, secbits = -1;

    if (pos == 0)
        snprintf(which, sizeof(which), "the certificate");
    else
        snprintf(which, sizeof(which), "certificate %d in the chain", pos + 1);
    if (tls_asn1_time(X509_get0_notBefore(x), &nb) == -1 ||
        tls_asn1_time(X509_get0_notAfter(x), &na) == -1)
        return tls_fail(ld, at, "certificate", path, "%s has a validity date that does not parse",
                        which);
    if (nb > ld->now)
        return tls_fail(ld, at, "certificate", path, "%s is not valid yet: from %s", which,
                        tls_fmt_time(nb, tbuf, sizeof(tbuf)));
    if (na < ld->now)
        return tls_fail(ld, at, "certificate", path, "%s expired on %s", which,
                        tls_fmt_time(na, tbuf, sizeof(tbuf)));
    /* Days rounded up: "in 5 days" for a certificate made today with -days 5. */
    if (na - ld->now < (time_t)MP_TLS_EXPIRY_WARN_DAYS * 86400)
        tls_warn(ld, at, "certificate", path, "%s expires in %lld day%s, on %s", which,
                 (long long)((na - ld->now + 86399) / 86400), na - ld->now > 86400 ? "s" : "",
                 tls_fmt_time(na, tbuf, sizeof(tbuf)));
    if (pk == NULL)
        return tls_fail(ld, at, "certificate", path, "%s holds a public key OpenSSL cannot use",
                        which);
    if (EVP_PKEY_get_security_bits(pk) < MP_TLS_SECBITS)
        return tls_fail(ld, at, "certificate", path,
                        "%s has a key of %d bits (%s), which security level %d refuses "
                        "(use RSA 2048 or ECDSA P-256 or stronger)",
                        which, EVP_PKEY_get_bits(pk), tls_key_type_name(pk), MP_TLS_SECLEVEL);
    /* A self-signed certificate's own signature proves nothing, so OpenSSL does not weigh it. */
    if ((X509_get_extension_flags(x) & EXFLAG_SS) == 0 &&
        X509_get_signature_info(x, &mdnid, NULL, &secbits, NULL) == 1 && secbits >= 0 &&
        secbits < MP_TLS_SECBITS)
        return tls_fail(ld, at, "certificate", path,
                        "%s is signed with %s, which security level %d refuses", which,
                        mdnid != NID_undef ? OBJ_nid2sn(mdnid) : "a weak digest", MP_TLS_SECLEVEL);
    ERR_clear_error();
    return 0;
}

/* True when <x> says it is a CA (basicConstraints CA:TRUE). */
static bool
tls_is_ca(X509 *x)
{
    return (X509_get_extension_flags(x) & EXFLAG_CA) != 0;
}

/*
 * First pass for certificate line <i>: reads its files, checks the chain,
 * the dates, the strength and the key, and fills <c> and <p>. Returns 0,
 * or -1 with the error stored.
 */
static int
tls_parse_cert(struct tls_loader *ld, size_t i, struct tls_cert *c, struct tls_parsed *p)
{
    const struct tls_cert_spec *spec = &ld->set->certs[i];
    const struct tls_origin *at = &spec->at;
    const char *keypath = spec->key_path != NULL ? spec->key_path : spec->cert_path;
    struct tls_file cf = {NULL, 0}, kf = {NULL, 0};
    mode_t kmode = 0;
    X509 *leaf;
    int k, n, rc = -1;

    if (spec->cert_path == NULL || spec->cert_path[0] == '\0')
        return tls_fail(ld, at, "certificate", NULL, "no file named");
    if (tls_read_file(ld, at, "certificate", spec->cert_path, &cf,
                      spec->key_path == NULL ? &kmode : NULL) == -1)
        return -1;
    if (tls_read_certs(ld, at, "certificate", spec->cert_path, &cf, &p->chain) == -1)
        goto out;
    n = sk_X509_num(p->chain);
    leaf = sk_X509_value(p->chain, 0);
    /*
     * A self-signed CA alone is a usable (test) server certificate; a CA
     * followed by other certificates, or a CA that is not self-signed, is
     * a chain in the wrong order.
     */
    if (tls_is_ca(leaf) && (n > 1 || (X509_get_extension_flags(leaf) & EXFLAG_SS) == 0)) {
        tls_fail(ld, at, "certificate", spec->cert_path,
                 "the first certificate is a CA, not the server's: put the leaf first, then "
                 "its issuers");
        goto out;
    }
    for (k = 0; k < n; k++)
        if (tls_check_one(ld, at, spec->cert_path, sk_X509_value(p->chain, k), k) == -1)
            goto out;
    /*
     * Only a warning: TLS 1.3 lets clients sort the chain themselves, and
     * some fetch missing issuers, but many older clients give up.
     */
    for (k = 1; k < n; k++)
        if (X509_check_issued(sk_X509_value(p->chain, k), sk_X509_value(p->chain, k - 1)) !=
            X509_V_OK)
            tls_warn(ld, at, "certificate", spec->cert_path,
                     "certificate %d in the chain did not issue certificate %d: list each "
                     "certificate's issuer after it",
                     k + 1, k);
    if (spec->key_path != NULL &&
        tls_read_file(ld, at, "certificate", spec->key_path, &kf, &kmode) == -1)
        goto out;
    if (tls_read_key(ld, at, keypath, spec->key_path != NULL ? &kf : &cf, spec->key_path != NULL,
                     &p->key) == -1)
        goto out;
    if (X509_check_private_key(leaf, p->key) != 1) {
        tls_fail(ld, at, "certificate", keypath,
                 "the key does not match the certificate %s (key: %s, certificate: %s)",
                 spec->cert_path, tls_key_type_name(p->key),
                 tls_key_type_name(X509_get0_pubkey(leaf)));
        goto out;
    }
    if ((kmode & (S_IRGRP | S_IROTH)) != 0)
        tls_warn(ld, at, "certificate", keypath,
                 "the key file is readable by %s (mode %04o): make it readable by root only",
                 (kmode & S_IROTH) != 0 ? "others" : "its group", (unsigned)(kmode & 07777));
    if (tls_cert_names(ld, at, spec->cert_path, leaf, c) == -1)
        goto out;
    if (tls_asn1_time(X509_get0_notAfter(leaf), &c->not_after) == -1) {
        tls_fail(ld, at, "certificate", spec->cert_path, "notAfter does not parse");
        goto out;
    }
    c->key_type = EVP_PKEY_get_base_id(p->key);
    rc = 0;
out:
    tls_file_free(&cf);
    tls_file_free(&kf);
    return rc;
}

/* True when <a> and <b> hold the same names (both sorted). */
static bool
tls_same_names(const struct tls_cert *a, const struct tls_cert *b)
{
    size_t i;

    if (a->nnames != b->nnames)
        return false;
    for (i = 0; i < a->nnames; i++)
        if (strcmp(a->names[i], b->names[i]) != 0)
            return false;
    return true;
}

/* A name both <a> and <b> hold, or NULL. */
static const char *
tls_shared_name(const struct tls_cert *a, const struct tls_cert *b)
{
    size_t i, j;

    for (i = 0; i < a->nnames; i++)
        for (j = 0; j < b->nnames; j++)
            if (strcmp(a->names[i], b->names[j]) == 0)
                return a->names[i];
    return NULL;
}

/*
 * Second pass: puts each certificate in a site, the sites of earlier ones
 * or a new one, refusing two certificates that claim a name for the same
 * key type, names that overlap without being equal, and a certificate with
 * no DNS name that is not in the first site. Returns 0, or -1 with the
 * error stored.
 */
static int
tls_group(struct tls_loader *ld, struct tls_store *st, struct tls_parsed *parsed)
{
    size_t i, j;

    for (i = 0; i < st->ncerts; i++) {
        struct tls_cert *c = &st->certs[i];
        const struct tls_cert_spec *spec = &ld->set->certs[i];
        bool placed = false;

        for (j = 0; j < i; j++) {
            const struct tls_cert *o = &st->certs[j];
            const struct tls_origin *oat = &ld->set->certs[j].at;
            const char *ofile = oat->file != NULL ? oat->file : "(unknown file)";
            const char *shared;

            if (tls_same_names(c, o)) {
                if (c->key_type == o->key_type)
                    return tls_fail(ld, &spec->at, "certificate", spec->cert_path,
                                    "the certificate at %s:%d has the same names and the same "
                                    "key type (%s): give one certificate per key type",
                                    ofile, oat->line, tls_key_type_name(parsed[i].key));
                c->site = o->site;
                placed = true;
                continue;
            }
            shared = tls_shared_name(c, o);
            if (shared == NULL)
                continue;
            if (c->key_type == o->key_type)
                return tls_fail(ld, &spec->at, "certificate", spec->cert_path,
                                "the name %s is also claimed by the certificate at %s:%d", shared,
                                ofile, oat->line);
            return tls_fail(ld, &spec->at, "certificate", spec->cert_path,
                            "the name %s is also in the certificate at %s:%d, which has other "
                            "names: certificates of different key types for one name must list "
                            "the same names",
                            shared, ofile, oat->line);
        }
        if (placed)
            continue;
        if (c->nnames == 0 && i > 0)
            return tls_fail(ld, &spec->at, "certificate", spec->cert_path,
                            "no DNS name in subjectAltName, so SNI can never choose it (only "
                            "the first certificate may have none)");
        c->site = st->nsites++;
        st->sites[c->site].cert = i;
    }
    return 0;
}

/* Lower-case ASCII comparison of <a> and <b>. */
static bool
tls_eq_nocase(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

bool
tls_name_match(const char *pattern, const char *name)
{
    const char *rest, *dot;

    if (pattern == NULL || name == NULL || name[0] == '\0' || strchr(name, '*') != NULL)
        return false;
    if (name[strlen(name) - 1] == '.')
        return false;
    if (pattern[0] != '*')
        return tls_eq_nocase(pattern, name);
    /* "*.REST": REST must hold at least two labels, so "*.com" covers nothing. */
    if (pattern[1] != '.')
        return false;
    rest = pattern + 2;
    dot = strchr(rest, '.');
    if (rest[0] == '\0' || strchr(rest, '*') != NULL || dot == NULL || dot == rest ||
        dot[1] == '\0')
        return false;
    dot = strchr(name, '.');
    if (dot == NULL || dot == name)
        return false;
    return tls_eq_nocase(dot + 1, rest);
}

/* The site whose names cover <name>: exact names first, then wildcards; NULL if none. */
static const struct tls_site *
tls_find_site(const struct tls_store *st, const char *name)
{
    size_t s, i;
    int pass;

    for (pass = 0; pass < 2; pass++) {
        for (s = 0; s < st->nsites; s++) {
            const struct tls_cert *c = &st->certs[st->sites[s].cert];

            for (i = 0; i < c->nnames; i++) {
                bool wild = c->names[i][0] == '*';

                if (wild == (pass == 1) && tls_name_match(c->names[i], name))
                    return &st->sites[s];
            }
        }
    }
    return NULL;
}

/*
 * The SNI callback: switches <ssl> to the context of the certificate that
 * covers the name the client asked for. No name or an unknown one keeps the
 * first context, or fails the handshake with unrecognized_name when
 * strict_sni is set.
 */
static int
tls_servername_cb(SSL *ssl, int *alert, void *arg)
{
    const struct tls_store *st = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    const struct tls_site *site = name != NULL ? tls_find_site(st, name) : NULL;

    if (site == NULL) {
        if (!st->strict_sni)
            return SSL_TLSEXT_ERR_NOACK;
        tls_servername_seen(ssl);
        *alert = SSL_AD_UNRECOGNIZED_NAME;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    if (site->ctx != SSL_get_SSL_CTX(ssl) && SSL_set_SSL_CTX(ssl, site->ctx) == NULL) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_OK;
}

/* Optional client certificates: the handshake goes on whatever the verification found. */
static int
tls_verify_optional(int preverify_ok, X509_STORE_CTX *x)
{
    (void)preverify_ok;
    (void)x;
    return 1;
}

/*
 * Parses the protocol names of <ld>'s settings into <*min> and <*max>.
 * Returns 0, or -1 with the error stored.
 */
static int
tls_parse_protocols(struct tls_loader *ld, int *min, int *max)
{
    static const struct {
        const char *name;
        int version; /* 0: known, refused */
    } known[] = {
        {"SSLv2", 0},
        {"SSLv3", 0},
        {"TLSv1", 0},
        {"TLSv1.0", 0},
        {"TLSv1.1", 0},
        {"TLSv1.2", TLS1_2_VERSION},
        {"TLSv1.3", TLS1_3_VERSION},
    };
    const char *s = ld->set->protocols != NULL ? ld->set->protocols : MP_TLS_DEFAULT_PROTOCOLS;
    const struct tls_origin *at = &ld->set->protocols_at;
    char tok[32];
    size_t len, i;

    *min = *max = 0;
    while (*s != '\0') {
        len = strcspn(s, " \t,");
        if (len == 0) {
            s++;
            continue;
        }
        if (len >= sizeof(tok))
            return tls_fail(ld, at, "protocols", NULL, "unknown protocol %.*s (TLSv1.2, TLSv1.3)",
                            (int)len, s);
        memcpy(tok, s, len);
        tok[len] = '\0';
        s += len;
        for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            if (tls_eq_nocase(tok, known[i].name))
                break;
        if (i == sizeof(known) / sizeof(known[0]))
            return tls_fail(ld, at, "protocols", NULL, "unknown protocol %s (TLSv1.2, TLSv1.3)",
                            tok);
        if (known[i].version == 0)
            return tls_fail(ld, at, "protocols", NULL,
                            "%s is refused: it is insecure; only TLSv1.2 and TLSv1.3 are offered",
                            tok);
        if (*min == 0 || known[i].version < *min)
            *min = known[i].version;
        if (known[i].version > *max)
            *max = known[i].version;
    }
    if (*min == 0)
        return tls_fail(ld, at, "protocols", NULL, "no protocol named (TLSv1.2, TLSv1.3)");
    return 0;
}

/*
 * Sets the TLS 1.2 cipher list on <ctx>. OpenSSL skips names it does not
 * know, so each element that adds ciphers is first tried alone: one that
 * selects nothing is an error. Returns 0, or -1 with the error stored.
 */
static int
tls_set_ciphers(struct tls_loader *ld, SSL_CTX *ctx)
{
    const char *list = ld->set->ciphers != NULL ? ld->set->ciphers : MP_TLS_DEFAULT_CIPHERS;
    const struct tls_origin *at = &ld->set->ciphers_at;
    const char *s = list;
    char tok[128];
    size_t len;

    while (*s != '\0') {
        len = strcspn(s, ": ,;");
        if (len == 0) {
            s++;
            continue;
        }
        if (len >= sizeof(tok))
            return tls_fail(ld, at, "ciphers", NULL, "unknown cipher %.*s", (int)len, s);
        memcpy(tok, s, len);
        tok[len] = '\0';
        s += len;
        /* Exclusions and @ commands select nothing by themselves: OpenSSL judges the list. */
        if (tok[0] == '!' || tok[0] == '-' || tok[0] == '@')
            continue;
        if (SSL_CTX_set_cipher_list(ctx, tok[0] == '+' ? tok + 1 : tok) != 1)
            return tls_fail(ld, at, "ciphers", NULL,
                            "unknown cipher %s (or it selects no TLS 1.2 cipher)", tok);
    }
    if (SSL_CTX_set_cipher_list(ctx, list) != 1)
        return tls_fail(ld, at, "ciphers", NULL, "OpenSSL refuses the list: %s", tls_ssl_reason());
    /* "@SECLEVEL=n" in the list would lower the floor below what the checks above assumed. */
    if (SSL_CTX_get_security_level(ctx) < MP_TLS_SECLEVEL)
        return tls_fail(ld, at, "ciphers", NULL,
                        "@SECLEVEL below %d is refused: certificates are checked at level %d",
                        MP_TLS_SECLEVEL, MP_TLS_SECLEVEL);
    return 0;
}

/* True when <ctx>'s ciphers hold the TLS 1.3 suite named <name>. */
static bool
tls_has_suite(SSL_CTX *ctx, const char *name)
{
    STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(ctx);
    int i;

    for (i = 0; i < sk_SSL_CIPHER_num(sk); i++) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(sk, i);
        const char *std = SSL_CIPHER_standard_name(c);

        if (strcmp(SSL_CIPHER_get_version(c), "TLSv1.3") == 0 && std != NULL &&
            strcmp(std, name) == 0)
            return true;
    }
    return false;
}

/*
 * Sets the TLS 1.3 suites on <ctx> (after the cipher list), each name
 * checked on its own, since OpenSSL skips names it does not know. Returns
 * 0, or -1 with the error stored.
 */
static int
tls_set_suites(struct tls_loader *ld, SSL_CTX *ctx)
{
    const char *list =
        ld->set->ciphersuites != NULL ? ld->set->ciphersuites : MP_TLS_DEFAULT_CIPHERSUITES;
    const struct tls_origin *at = &ld->set->ciphersuites_at;
    const char *s = list;
    char tok[128];
    size_t len;
    int n = 0;

    while (*s != '\0') {
        len = strcspn(s, ":");
        if (len == 0) {
            s++;
            continue;
        }
        if (len >= sizeof(tok))
            return tls_fail(ld, at, "ciphersuites", NULL, "unknown suite %.*s", (int)len, s);
        memcpy(tok, s, len);
        tok[len] = '\0';
        s += len;
        if (SSL_CTX_set_ciphersuites(ctx, tok) != 1 || !tls_has_suite(ctx, tok))
            return tls_fail(ld, at, "ciphersuites", NULL,
                            "unknown TLS 1.3 suite %s (e.g. TLS_AES_128_GCM_SHA256)", tok);
        n++;
    }
    if (n == 0)
        return tls_fail(ld, at, "ciphersuites", NULL, "no suite named");
    if (SSL_CTX_set_ciphersuites(ctx, list) != 1)
        return tls_fail(ld, at, "ciphersuites", NULL, "OpenSSL refuses the list: %s",
                        tls_ssl_reason());
    return 0;
}

/*
 * Reads the client CA file into a new stack in <*out> (NULL when client
 * certificates are off). Returns 0, or -1 with the error stored.
 */
static int
tls_read_client_ca(struct tls_loader *ld, tls_x509s **out)
{
    const struct tls_settings *set = ld->set;
    struct tls_file f = {NULL, 0};
    int rc;

    *out = NULL;
    if (set->client_cert == TLS_CLIENT_CERT_OFF) {
        if (set->client_ca != NULL)
            tls_warn(ld, &set->client_ca_at, "client_ca", set->client_ca,
                     "not used: client_certificate is off");
        return 0;
    }
    if (set->client_ca == NULL || set->client_ca[0] == '\0')
        return tls_fail(ld, &set->client_cert_at, "client_certificate", NULL,
                        "%s needs client_ca, the CA file client certificates must chain to",
                        set->client_cert == TLS_CLIENT_CERT_REQUIRED ? "required" : "optional");
    if (tls_read_file(ld, &set->client_ca_at, "client_ca", set->client_ca, &f, NULL) == -1)
        return -1;
    rc = tls_read_certs(ld, &set->client_ca_at, "client_ca", set->client_ca, &f, out);
    tls_file_free(&f);
    return rc;
}

/*
 * Applies the settings shared by every context to <ctx>: protocols,
 * options, ciphers, groups, client certificates, SNI. Returns 0, or -1 with
 * the error stored.
 */
static int
tls_setup_ctx(struct tls_loader *ld, struct tls_store *st, SSL_CTX *ctx, tls_x509s *ca)
{
    const struct tls_settings *set = ld->set;
    int min, max, i;

    if (tls_parse_protocols(ld, &min, &max) == -1)
        return -1;
    if (SSL_CTX_set_min_proto_version(ctx, min) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, max) != 1)
        return tls_fail(ld, &set->protocols_at, "protocols", NULL, "OpenSSL refuses them: %s",
                        tls_ssl_reason());
    /*
     * Renegotiation and compression are attack surface we do not need; the
     * server orders the TLS 1.2 ciphers, so a client cannot pick a weaker
     * one of ours first.
     */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Idle connections give their record buffers back (a worker may hold many). */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* No 0-RTT: early data can be replayed. */
    SSL_CTX_set_max_early_data(ctx, 0);
    SSL_CTX_set_recv_max_early_data(ctx, 0);
    SSL_CTX_set_security_level(ctx, MP_TLS_SECLEVEL);
    if (tls_set_ciphers(ld, ctx) == -1 || tls_set_suites(ld, ctx) == -1)
        return -1;
    if (SSL_CTX_set1_groups_list(ctx, MP_TLS_GROUPS) != 1)
        return tls_fail(ld, NULL, "groups", NULL, "OpenSSL refuses %s: %s", MP_TLS_GROUPS,
                        tls_ssl_reason());
    if (SSL_CTX_set_session_id_context(ctx, tls_sid_ctx, sizeof(tls_sid_ctx) - 1) != 1)
        return tls_fail(ld, NULL, "certificate", NULL, "out of memory");
    if (ca != NULL) {
        X509_STORE *xs = SSL_CTX_get_cert_store(ctx);

        for (i = 0; i < sk_X509_num(ca); i++) {
            X509 *x = sk_X509_value(ca, i);

            if (X509_STORE_add_cert(xs, x) != 1 || SSL_CTX_add_client_CA(ctx, x) != 1)
                return tls_fail(ld, &set->client_ca_at, "client_ca", set->client_ca,
                                "certificate %d: %s", i + 1, tls_ssl_reason());
        }
        if (set->client_cert == TLS_CLIENT_CERT_REQUIRED)
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        else
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, tls_verify_optional);
    }
    SSL_CTX_set_tlsext_servername_callback(ctx, tls_servername_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, st);
    tls_setup_resumption(set, ctx);
    return 0;
}

/*
 * Reads the ticket key file of <ld>'s settings into <st>: whole 48-byte
 * keys, at most TLS_TICKET_KEYS_MAX. Returns 0, or -1 with the error stored.
 */
static int
tls_read_ticket_keys(struct tls_loader *ld, struct tls_store *st)
{
    const struct tls_settings *set = ld->set;
    const struct tls_origin *at = &set->ticket_key_file_at;
    struct tls_file f = {NULL, 0};
    mode_t mode = 0;
    size_t i;

    if (set->ticket_key_file == NULL || set->ticket_key_file[0] == '\0')
        return 0;
    if (tls_read_file(ld, at, "session_ticket_key_file", set->ticket_key_file, &f, &mode) == -1)
        return -1;
    if (f.len == 0 || f.len % TLS_TICKET_KEY_LEN != 0 ||
        f.len > TLS_TICKET_KEY_LEN * TLS_TICKET_KEYS_MAX) {
        tls_fail(ld, at, "session_ticket_key_file", set->ticket_key_file,
                 "%zu bytes: expected 1 to %d keys of %d bytes (openssl rand 48 > FILE)", f.len,
                 TLS_TICKET_KEYS_MAX, TLS_TICKET_KEY_LEN);
        tls_file_free(&f);
        return -1;
    }
    if (mode & (S_IRWXG | S_IRWXO))
        tls_warn(ld, at, "session_ticket_key_file", set->ticket_key_file,
                 "readable by group or others: whoever reads it can decrypt sessions");
    st->ntkeys = f.len / TLS_TICKET_KEY_LEN;
    for (i = 0; i < st->ntkeys; i++) {
        const unsigned char *k = (const unsigned char *)f.data + i * TLS_TICKET_KEY_LEN;

        memcpy(st->tkeys[i].name, k, 16);
        memcpy(st->tkeys[i].hmac, k + 16, 16);
        memcpy(st->tkeys[i].aes, k + 32, 16);
    }
    tls_file_free(&f);
    return 0;
}

const struct tls_ticket_key *
tls_store_ticket_keys(const struct tls_store *st, size_t *n)
{
    *n = st->ntkeys;
    return st->tkeys;
}

/*
 * Puts certificate line <i> (parsed in <p>) into <ctx>: the leaf, its chain,
 * its key. Returns 0, or -1 with the error stored (OpenSSL's refusals that
 * the first pass did not foresee).
 */
static int
tls_use_cert(struct tls_loader *ld, SSL_CTX *ctx, size_t i, const struct tls_parsed *p)
{
    const struct tls_cert_spec *spec = &ld->set->certs[i];
    int k;

    if (SSL_CTX_use_certificate(ctx, sk_X509_value(p->chain, 0)) != 1)
        return tls_fail(ld, &spec->at, "certificate", spec->cert_path, "OpenSSL refuses it: %s",
                        tls_ssl_reason());
    for (k = 1; k < sk_X509_num(p->chain); k++)
        if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(p->chain, k)) != 1)
            return tls_fail(ld, &spec->at, "certificate", spec->cert_path,
                            "OpenSSL refuses certificate %d in the chain: %s", k + 1,
                            tls_ssl_reason());
    if (SSL_CTX_use_PrivateKey(ctx, p->key) != 1 || SSL_CTX_check_private_key(ctx) != 1)
        return tls_fail(ld, &spec->at, "certificate",
                        spec->key_path != NULL ? spec->key_path : spec->cert_path,
                        "OpenSSL refuses the key: %s", tls_ssl_reason());
    return 0;
}

void
tls_free(struct tls_store *st)
{
    size_t i, j;

    if (st == NULL)
        return;
    for (i = 0; i < st->nsites; i++)
        SSL_CTX_free(st->sites[i].ctx);
    for (i = 0; i < st->ncerts; i++) {
        for (j = 0; j < st->certs[i].nnames; j++)
            free(st->certs[i].names[j]);
        free(st->certs[i].names);
    }
    free(st->sites);
    free(st->certs);
    OPENSSL_cleanse(st->tkeys, sizeof(st->tkeys));
    free(st);
}

int
tls_load(const struct tls_settings *set, struct tls_store **out, char *err, size_t errlen,
         tls_warn_fn warn, void *warn_arg)
{
    struct tls_loader ld = {set, err, errlen, warn, warn_arg, time(NULL)};
    struct tls_store *st = NULL;
    struct tls_parsed *parsed = NULL;
    tls_x509s *ca = NULL;
    size_t i, s;
    int rc = -1;

    if (errlen > 0)
        err[0] = '\0';
    if (set->ncerts == 0 || set->certs == NULL)
        return tls_fail(&ld, NULL, "certificate", NULL, "no certificate given");
    st = calloc(1, sizeof(*st));
    parsed = calloc(set->ncerts, sizeof(*parsed));
    if (st == NULL || parsed == NULL) {
        tls_fail(&ld, NULL, "certificate", NULL, "out of memory");
        goto out;
    }
    st->strict_sni = set->strict_sni;
    st->certs = calloc(set->ncerts, sizeof(*st->certs));
    st->sites = calloc(set->ncerts, sizeof(*st->sites));
    if (st->certs == NULL || st->sites == NULL) {
        tls_fail(&ld, NULL, "certificate", NULL, "out of memory");
        goto out;
    }
    for (i = 0; i < set->ncerts; i++) {
        st->ncerts = i + 1; /* so that tls_free() frees what this one got */
        if (tls_parse_cert(&ld, i, &st->certs[i], &parsed[i]) == -1)
            goto out;
    }
    if (tls_group(&ld, st, parsed) == -1 || tls_read_client_ca(&ld, &ca) == -1 ||
        tls_read_ticket_keys(&ld, st) == -1)
        goto out;
    for (s = 0; s < st->nsites; s++) {
        st->sites[s].ctx = SSL_CTX_new(TLS_server_method());
        if (st->sites[s].ctx == NULL) {
            tls_fail(&ld, NULL, "certificate", NULL, "cannot make a context: %s",
                     tls_ssl_reason());
            goto out;
        }
        if (tls_setup_ctx(&ld, st, st->sites[s].ctx, ca) == -1)
            goto out;
    }
    for (i = 0; i < st->ncerts; i++)
        if (tls_use_cert(&ld, st->sites[st->certs[i].site].ctx, i, &parsed[i]) == -1)
            goto out;
    *out = st;
    st = NULL;
    rc = 0;
out:
    if (parsed != NULL) {
        for (i = 0; i < set->ncerts; i++) {
            sk_X509_pop_free(parsed[i].chain, X509_free);
            EVP_PKEY_free(parsed[i].key);
        }
        free(parsed);
    }
    sk_X509_pop_free(ca, X509_free);
    tls_free(st);
    ERR_clear_error();
    return rc;
}

SSL_CTX *
tls_store_ctx(const struct tls_store *st)
{
    return st->sites[0].ctx;
}

size_t
tls_store_cert_count(const struct tls_store *st)
{
    return st->ncerts;
}

int
tls_store_cert_info(const struct tls_store *st, size_t i, char *names, size_t nameslen,
                    time_t *not_after)
{
    const struct tls_cert *c;
    size_t j, n = 0, len;

    if (nameslen > 0)
        names[0] = '\0';
    if (i >= st->ncerts)
        return -1;
    c = &st->certs[i];
    *not_after = c->not_after;
    for (j = 0; j < c->nnames; j++) {
        len = strlen(c->names[j]);
        if (n + (n > 0) + len + 1 > nameslen)
            return -1;
        if (n > 0)
            names[n++] = ' ';
        memcpy(names + n, c->names[j], len + 1);
        n += len;
    }
    return 0;
}

/* ---- the shared table: ticket keys, session cache, counters ------------------------------ */

/* A session in DER larger than this is not cached (one with a long client chain). */
#define TLS_SLOT_DER 2048

/* One cached session; <used> is 0 for a free slot. Written and read under the lock. */
struct tls_slot {
    uint32_t used;
    uint32_t id_len;
    unsigned char id[SSL_MAX_SSL_SESSION_ID_LENGTH];
    int64_t expires; /* Unix time */
    uint32_t der_len;
    unsigned char der[TLS_SLOT_DER];
};

struct tls_shared {
    size_t map_len;
    /* ticket keys: the master writes, workers read; a seqlock (odd while written) */
    atomic_uint key_seq;
    uint32_t nkeys;
    struct tls_ticket_key keys[TLS_TICKET_KEYS_MAX];
    /* counters: every worker, atomics */
    _Alignas(64) atomic_uint_fast64_t handshakes;
    atomic_uint_fast64_t resumed;
    atomic_uint_fast64_t failures[TLS_FAIL_N];
    atomic_uint_fast64_t entries;
    /*
     * The session cache: direct-mapped by a hash of the session id. A
     * robust process-shared mutex: when a worker dies holding it, the next
     * taker is told (EOWNERDEAD) and empties the cache, since the slot the
     * dead one was writing may be torn.
     */
    _Alignas(64) pthread_mutex_t lock;
    uint32_t nslots;
    struct tls_slot slots[];
};

/* The table of this process (inherited over fork()). */
static struct tls_shared *tls_sh;

static const char *const tls_fail_names[TLS_FAIL_N] = {
    "no_shared_cipher", "unknown_name", "bad_client_certificate", "timeout", "plain_http",
    "protocol",         "other",
};

const char *
tls_fail_name(enum tls_fail f)
{
    return (unsigned)f < TLS_FAIL_N ? tls_fail_names[f] : "other";
}

struct tls_shared *
tls_shared_create(size_t cache_bytes)
{
    size_t nslots = cache_bytes / sizeof(struct tls_slot);
    size_t len = sizeof(struct tls_shared) + nslots * sizeof(struct tls_slot);
    pthread_mutexattr_t ma;
    struct tls_shared *sh;

    if (cache_bytes > 0 && nslots == 0)
        nslots = 1;
    len = sizeof(struct tls_shared) + nslots * sizeof(struct tls_slot);
    sh = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return NULL;
    sh->map_len = len;
    sh->nslots = (uint32_t)nslots;
    if (pthread_mutexattr_init(&ma) != 0 ||
        pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED) != 0 ||
        pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST) != 0 ||
        pthread_mutex_init(&sh->lock, &ma) != 0) {
        munmap(sh, len);
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutexattr_destroy(&ma);
    return sh;
}

void
tls_shared_destroy(struct tls_shared *sh)
{
    if (sh == NULL)
        return;
    if (tls_sh == sh)
        tls_sh = NULL;
    OPENSSL_cleanse(sh->keys, sizeof(sh->keys));
    munmap(sh, sh->map_len);
}

void
tls_shared_use(struct tls_shared *sh)
{
    tls_sh = sh;
}

struct tls_shared *
tls_shared_get(void)
{
    return tls_sh;
}

int
tls_shared_set_keys(struct tls_shared *sh, const struct tls_ticket_key *keys, size_t n)
{
    struct tls_ticket_key fresh[TLS_TICKET_KEYS_MAX];
    size_t i, nf;

    if (keys != NULL) {
        nf = n < TLS_TICKET_KEYS_MAX ? n : TLS_TICKET_KEYS_MAX;
        memcpy(fresh, keys, nf * sizeof(*fresh));
    } else {
        if (RAND_bytes((unsigned char *)&fresh[0], sizeof(fresh[0])) != 1)
            return -1;
        nf = 1;
        /* the key in use until now still decrypts for one more period */
        if (sh->nkeys > 0)
            fresh[nf++] = sh->keys[0];
    }
    atomic_fetch_add_explicit(&sh->key_seq, 1, memory_order_acq_rel); /* odd: being written */
    atomic_thread_fence(memory_order_release);
    for (i = 0; i < nf; i++)
        sh->keys[i] = fresh[i];
    sh->nkeys = (uint32_t)nf;
    atomic_thread_fence(memory_order_release);
    atomic_fetch_add_explicit(&sh->key_seq, 1, memory_order_release);
    OPENSSL_cleanse(fresh, sizeof(fresh));
    return 0;
}

/* Copies the keys consistently into <out>; returns how many. */
static size_t
tls_read_keys(struct tls_ticket_key *out)
{
    struct tls_shared *sh = tls_sh;
    unsigned seq;
    size_t n;

    if (sh == NULL)
        return 0;
    for (int tries = 0; tries < 1000; tries++) {
        seq = atomic_load_explicit(&sh->key_seq, memory_order_acquire);
        if (seq & 1)
            continue;
        n = sh->nkeys <= TLS_TICKET_KEYS_MAX ? sh->nkeys : 0;
        memcpy(out, sh->keys, n * sizeof(*out));
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&sh->key_seq, memory_order_relaxed) == seq)
            return n;
    }
    return 0;
}

/*
 * OpenSSL's ticket key callback: encrypts new tickets with the first key,
 * decrypts with any; a ticket of an older key is accepted and renewed
 * (returns 2). No key yet, or an unknown name: no ticket, a full handshake.
 */
static int
tls_ticket_cb(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
              EVP_MAC_CTX *hctx, int enc)
{
    struct tls_ticket_key keys[TLS_TICKET_KEYS_MAX];
    size_t n = tls_read_keys(keys), i = 0;
    OSSL_PARAM params[3];
    int rc = 0;

    (void)ssl;
    if (n == 0)
        goto out;
    if (enc) {
        if (RAND_bytes(iv, 16) != 1) {
            rc = -1;
            goto out;
        }
        memcpy(name, keys[0].name, 16);
        if (EVP_EncryptInit_ex(cctx, EVP_aes_128_cbc(), NULL, keys[0].aes, iv) != 1) {
            rc = -1;
            goto out;
        }
    } else {
        for (i = 0; i < n; i++)
            if (memcmp(name, keys[i].name, 16) == 0)
                break;
        if (i == n)
            goto out; /* rc 0: not ours, or too old */
        if (EVP_DecryptInit_ex(cctx, EVP_aes_128_cbc(), NULL, keys[i].aes, iv) != 1) {
            rc = -1;
            goto out;
        }
    }
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, keys[i].hmac, 16);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (EVP_MAC_CTX_set_params(hctx, params) != 1) {
        rc = -1;
        goto out;
    }
    rc = enc || i == 0 ? 1 : 2;
out:
    OPENSSL_cleanse(keys, sizeof(keys));
    return rc;
}

/* Takes the cache lock; empties the cache when its last holder died. Returns 0 or -1. */
static int
tls_lock(struct tls_shared *sh)
{
    int r = pthread_mutex_lock(&sh->lock);

    if (r == EOWNERDEAD) {
        for (uint32_t i = 0; i < sh->nslots; i++)
            sh->slots[i].used = 0;
        atomic_store(&sh->entries, 0);
        pthread_mutex_consistent(&sh->lock);
        return 0;
    }
    return r == 0 ? 0 : -1;
}

static struct tls_slot *
tls_slot_of(struct tls_shared *sh, const unsigned char *id, unsigned len)
{
    uint32_t h = 2166136261u;

    for (unsigned i = 0; i < len; i++)
        h = (h ^ id[i]) * 16777619u;
    return &sh->slots[h % sh->nslots];
}

/* A new session: into the shared cache (a slot taken by another one is overwritten). */
static int
tls_sess_new(SSL *ssl, SSL_SESSION *sess)
{
    struct tls_shared *sh = tls_sh;
    unsigned char der[TLS_SLOT_DER], *p = der;
    unsigned int idlen;
    const unsigned char *id = SSL_SESSION_get_id(sess, &idlen);
    int len;

    (void)ssl;
    if (sh == NULL || sh->nslots == 0 || idlen == 0 || idlen > SSL_MAX_SSL_SESSION_ID_LENGTH)
        return 0;
    len = i2d_SSL_SESSION(sess, NULL);
    if (len <= 0 || len > TLS_SLOT_DER)
        return 0;
    if (i2d_SSL_SESSION(sess, &p) != len)
        return 0;
    if (tls_lock(sh) == 0) {
        struct tls_slot *sl = tls_slot_of(sh, id, idlen);

        if (!sl->used)
            atomic_fetch_add(&sh->entries, 1);
        sl->used = 1;
        sl->id_len = idlen;
        memcpy(sl->id, id, idlen);
        sl->expires = (int64_t)(SSL_SESSION_get_time(sess) + SSL_SESSION_get_timeout(sess));
        sl->der_len = (uint32_t)len;
        memcpy(sl->der, der, (size_t)len);
        pthread_mutex_unlock(&sh->lock);
    }
    OPENSSL_cleanse(der, sizeof(der));
    return 0; /* we kept no reference */
}

/* A client offers session <id>: from the shared cache, if it is there and not expired. */
static SSL_SESSION *
tls_sess_get(SSL *ssl, const unsigned char *id, int idlen, int *copy)
{
    struct tls_shared *sh = tls_sh;
    unsigned char der[TLS_SLOT_DER];
    const unsigned char *p = der;
    SSL_SESSION *sess = NULL;
    size_t len = 0;

    (void)ssl;
    *copy = 0;
    if (sh == NULL || sh->nslots == 0 || idlen <= 0 || idlen > SSL_MAX_SSL_SESSION_ID_LENGTH)
        return NULL;
    if (tls_lock(sh) == -1)
        return NULL;
    struct tls_slot *sl = tls_slot_of(sh, id, (unsigned)idlen);
    if (sl->used && sl->id_len == (uint32_t)idlen && memcmp(sl->id, id, (size_t)idlen) == 0) {
        if (sl->expires > (int64_t)time(NULL)) {
            len = sl->der_len;
            memcpy(der, sl->der, len);
        } else {
            sl->used = 0;
            atomic_fetch_sub(&sh->entries, 1);
        }
    }
    pthread_mutex_unlock(&sh->lock);
    if (len > 0)
        sess = d2i_SSL_SESSION(NULL, &p, (long)len);
    OPENSSL_cleanse(der, sizeof(der));
    return sess;
}

/* OpenSSL drops a session (a failed or timed-out one): from the shared cache too. */
static void
tls_sess_remove(SSL_CTX *ctx, SSL_SESSION *sess)
{
    struct tls_shared *sh = tls_sh;
    unsigned int idlen;
    const unsigned char *id = SSL_SESSION_get_id(sess, &idlen);

    (void)ctx;
    if (sh == NULL || sh->nslots == 0 || idlen == 0 || idlen > SSL_MAX_SSL_SESSION_ID_LENGTH)
        return;
    if (tls_lock(sh) == -1)
        return;
    struct tls_slot *sl = tls_slot_of(sh, id, idlen);
    if (sl->used && sl->id_len == idlen && memcmp(sl->id, id, idlen) == 0) {
        sl->used = 0;
        atomic_fetch_sub(&sh->entries, 1);
    }
    pthread_mutex_unlock(&sh->lock);
}

/* Counts the KeyUpdate messages a client sends (tls_conn_state in the SSL's app data). */
static void
tls_msg_cb(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl,
           void *arg)
{
    struct tls_conn_state *cs;

    (void)version;
    (void)arg;
    if (write_p || content_type != SSL3_RT_HANDSHAKE || len == 0 ||
        ((const unsigned char *)buf)[0] != SSL3_MT_KEY_UPDATE)
        return;
    cs = SSL_get_app_data(ssl);
    if (cs != NULL)
        cs->key_updates++;
}

/* The SNI callback refused the name: noted for tls_classify_failure(). */
static void
tls_servername_seen(SSL *ssl)
{
    struct tls_conn_state *cs = SSL_get_app_data(ssl);

    if (cs != NULL)
        cs->unknown_name = true;
}

/*
 * Sessions for <ctx>: lifetime, tickets (keys from the shared table, one
 * ticket per TLS 1.3 handshake), the shared cache instead of OpenSSL's
 * per-process one, and the KeyUpdate counter.
 */
static void
tls_setup_resumption(const struct tls_settings *set, SSL_CTX *ctx)
{
    if (set->timeout_s > 0)
        SSL_CTX_set_timeout(ctx, set->timeout_s);
    SSL_CTX_set_msg_callback(ctx, tls_msg_cb);
    if (set->tickets) {
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tls_ticket_cb);
        SSL_CTX_set_num_tickets(ctx, 1);
    } else {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        /* TLS 1.3 without tickets: stateful "tickets" that are ids in the cache */
        SSL_CTX_set_num_tickets(ctx, set->shared_cache ? 1 : 0);
    }
    if (set->shared_cache) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
        SSL_CTX_sess_set_new_cb(ctx, tls_sess_new);
        SSL_CTX_sess_set_get_cb(ctx, tls_sess_get);
        SSL_CTX_sess_set_remove_cb(ctx, tls_sess_remove);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
}

int
tls_shared_hold_lock(struct tls_shared *sh)
{
    return tls_lock(sh);
}

void
tls_count_failure(enum tls_fail f)
{
    if (tls_sh != NULL && (unsigned)f < TLS_FAIL_N)
        atomic_fetch_add_explicit(&tls_sh->failures[f], 1, memory_order_relaxed);
}

void
tls_count_handshake(SSL *ssl)
{
    if (tls_sh == NULL)
        return;
    atomic_fetch_add_explicit(&tls_sh->handshakes, 1, memory_order_relaxed);
    if (SSL_session_reused(ssl))
        atomic_fetch_add_explicit(&tls_sh->resumed, 1, memory_order_relaxed);
}

void
tls_shared_counters(const struct tls_shared *sh, struct tls_counters *out)
{
    memset(out, 0, sizeof(*out));
    if (sh == NULL)
        return;
    out->handshakes = atomic_load_explicit(&sh->handshakes, memory_order_relaxed);
    out->resumed = atomic_load_explicit(&sh->resumed, memory_order_relaxed);
    for (int i = 0; i < TLS_FAIL_N; i++)
        out->failures[i] = atomic_load_explicit(&sh->failures[i], memory_order_relaxed);
    out->cache_entries = atomic_load_explicit(&sh->entries, memory_order_relaxed);
}

enum tls_fail
tls_classify_failure(SSL *ssl, const struct tls_conn_state *st, char *why, size_t whylen)
{
    unsigned long e = ERR_peek_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    enum tls_fail f = TLS_FAIL_OTHER;

    (void)ssl;
    snprintf(why, whylen, "%s", r != NULL ? r : "connection closed during the handshake");
    if (st != NULL && st->unknown_name)
        f = TLS_FAIL_UNKNOWN_NAME;
    else if (e == 0 || ERR_GET_LIB(e) != ERR_LIB_SSL)
        f = TLS_FAIL_OTHER;
    else {
        switch (ERR_GET_REASON(e)) {
        case SSL_R_NO_SHARED_CIPHER:
        case SSL_R_NO_SHARED_GROUPS:
        case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
            f = TLS_FAIL_NO_SHARED_CIPHER;
            break;
        case SSL_R_UNSUPPORTED_PROTOCOL:
        case SSL_R_VERSION_TOO_LOW:
        case SSL_R_NO_PROTOCOLS_AVAILABLE:
        case SSL_R_WRONG_VERSION_NUMBER:
            f = TLS_FAIL_PROTOCOL;
            break;
        case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        case SSL_R_CERTIFICATE_VERIFY_FAILED:
        case SSL_R_NO_CERTIFICATES_RETURNED:
            f = TLS_FAIL_CLIENT_CERT;
            break;
        default:
            break;
        }
    }
    ERR_clear_error();
    return f;
}

/* Replaces control characters in <s> with '?', so that it fits in a header. */
static void
tls_header_safe(char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

void
tls_client_verify(SSL *ssl, char *out, size_t outlen, char *subject, size_t subjlen)
{
    X509 *peer = SSL_get0_peer_certificate(ssl);
    long v;

    if (subjlen > 0)
        subject[0] = '\0';
    if (peer == NULL) {
        snprintf(out, outlen, "NONE");
        return;
    }
    v = SSL_get_verify_result(ssl);
    if (v == X509_V_OK)
        snprintf(out, outlen, "SUCCESS");
    else
        snprintf(out, outlen, "FAILED:%s", X509_verify_cert_error_string(v));
    tls_header_safe(out);
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        return;
    if (X509_NAME_print_ex(b, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253) >= 0) {
        int n = BIO_read(b, subject, subjlen > 1 ? (int)subjlen - 1 : 0);
        subject[n > 0 ? n : 0] = '\0';
        tls_header_safe(subject);
    }
    BIO_free(b);
}
