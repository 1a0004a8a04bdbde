/*
 * tls: the server side of TLS termination. Loading and checking the
 * certificates and keys, building the OpenSSL contexts, choosing the
 * certificate by SNI, and describing the certificates for the status page.
 *
 * The master calls tls_load() as root, in one code path at start, for -t/-T
 * and on SIGHUP; workers are forked holding the store and never read a key
 * file. A store is immutable once loaded: a reload loads a new one and frees
 * the old one when its generation is gone.
 *
 * Contexts: one SSL_CTX per set of names. Certificates listing the same
 * names (an ECDSA and an RSA one, say) share one SSL_CTX, since OpenSSL
 * picks among the certificates of one context by the client's signature
 * algorithms; SNI then switches the connection to the context whose names
 * match. The first certificate's context is the default: it is the one a
 * connection starts with (tls_store_ctx()).
 *
 * The settings describe what the configuration holds, independently of
 * config.h: every string is owned by the caller and only read during
 * tls_load().
 */
#ifndef MP_TLS_H
#define MP_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/ssl.h>

/* Where a key was configured: for messages ("FILE:LINE: [tls] KEY: ..."). */
struct tls_origin {
    const char *file;
    int line;
};

/* One `certificate =` line: a PEM chain, leaf first, and its key. */
struct tls_cert_spec {
    const char *cert_path;
    const char *key_path; /* NULL: the key is in the certificate's PEM file */
    struct tls_origin at;
};

enum tls_client_cert {
    TLS_CLIENT_CERT_OFF,
    TLS_CLIENT_CERT_OPTIONAL, /* asked for; a missing or unverified one is let through */
    TLS_CLIENT_CERT_REQUIRED, /* a missing or unverified one fails the handshake */
};

/*
 * The [tls] section. A NULL string means the default (Mozilla's
 * "intermediate" profile): MP_TLS_DEFAULT_PROTOCOLS, MP_TLS_DEFAULT_CIPHERS,
 * MP_TLS_DEFAULT_CIPHERSUITES.
 */
struct tls_settings {
    const struct tls_cert_spec *certs; /* at least one */
    size_t ncerts;
    const char *protocols; /* "TLSv1.2 TLSv1.3": names separated by spaces or commas */
    struct tls_origin protocols_at;
    const char *ciphers; /* TLS 1.2 cipher list, OpenSSL syntax */
    struct tls_origin ciphers_at;
    const char *ciphersuites; /* TLS 1.3 suites, ':'-separated */
    struct tls_origin ciphersuites_at;
    bool strict_sni; /* no SNI or a name no certificate covers: alert unrecognized_name */
    enum tls_client_cert client_cert;
    struct tls_origin client_cert_at;
    const char *client_ca; /* PEM CA file for client certificates; needed unless off */
    struct tls_origin client_ca_at;
    /* resumption; all zero: OpenSSL's own defaults, no tickets, no shared cache */
    bool tickets;                /* session tickets, keys from the shared table */
    bool shared_cache;           /* the session cache in the shared table */
    long timeout_s;              /* session lifetime; 0: OpenSSL's default */
    const char *ticket_key_file; /* 48-byte keys shared by several instances; NULL: none */
    struct tls_origin ticket_key_file_at;
};

#define MP_TLS_DEFAULT_PROTOCOLS "TLSv1.2 TLSv1.3"
#define MP_TLS_DEFAULT_CIPHERS                                                                    \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                  \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                  \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define MP_TLS_DEFAULT_CIPHERSUITES                                                               \
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

/* Certificates expiring within this many days give a warning at load. */
#define MP_TLS_EXPIRY_WARN_DAYS 14

struct tls_store;

/* Receives one warning (a whole line, no newline) from tls_load(). */
typedef void (*tls_warn_fn)(void *arg, const char *msg);

/*
 * Loads and checks every certificate and key of <set> and builds the
 * contexts. On success stores a new store in <*out> and returns 0; on the
 * first problem returns -1 with one line in <err>, "FILE:LINE: [tls] KEY:
 * PATH: what is wrong", and stores nothing.
 *
 * Errors: a missing or unreadable file, an encrypted key (OpenSSL is never
 * let to prompt), a key that does not match its certificate, a chain whose
 * first certificate is a CA, an expired or not-yet-valid certificate in the
 * chain, a key or signature security level 2 refuses, two certificates of
 * the same key type claiming a name (or certificates of different key
 * types whose names overlap without being equal), a certificate other than
 * the first without DNS names, an unknown or refused protocol (anything
 * but TLSv1.2 and TLSv1.3), an unknown cipher or suite name, a list OpenSSL
 * refuses, "@SECLEVEL" below 2, client certificates without a CA file.
 * Warnings go to <warn> (may be NULL) with <warn_arg>: a certificate
 * expiring within MP_TLS_EXPIRY_WARN_DAYS days, a key file readable by
 * group or others, a chain out of order, a client CA that is not used.
 *
 * Every context gets: the protocols, ciphers and suites of <set>, server
 * cipher order for TLS 1.2, security level 2, groups X25519, P-256, P-384,
 * no renegotiation, no compression, no 0-RTT, record buffers released
 * while idle, the same session id context, and the client certificate
 * policy. With strict_sni, a client that sends no name fails as one that
 * sends an unknown name does. Resumption as the settings say: the session
 * lifetime, tickets whose keys come from the shared table (tls_shared_use()),
 * the shared session cache instead of OpenSSL's own; the ticket key file is
 * read here (tls_store_ticket_keys()). A KeyUpdate counter for every
 * connection whose app data is a struct tls_conn_state.
 */
int tls_load(const struct tls_settings *set, struct tls_store **out, char *err, size_t errlen,
             tls_warn_fn warn, void *warn_arg);

/*
 * Frees <st> and its contexts (NULL: nothing). The SNI callback of its
 * contexts reads <st>: free it only when no connection made from it is
 * left (in a worker: at exit; in the master: after its generation is gone).
 */
void tls_free(struct tls_store *st);

/*
 * The context a server connection starts with (the first certificate's);
 * SNI switches it during the handshake. Owned by <st>.
 */
SSL_CTX *tls_store_ctx(const struct tls_store *st);

/* How many certificates <st> holds: one per `certificate =` line, in order. */
size_t tls_store_cert_count(const struct tls_store *st);

/*
 * Describes certificate <i> (in configuration order): its DNS names from
 * subjectAltName, lower case, separated by spaces, in <names> (always
 * NUL-terminated; "" when it has none), and its notAfter in <*not_after>.
 * Returns 0, or -1 when <i> is out of range or <names> was too small
 * (it then holds as many whole names as fit).
 */
int tls_store_cert_info(const struct tls_store *st, size_t i, char *names, size_t nameslen,
                        time_t *not_after);

/*
 * True when the subjectAltName DNS entry <pattern> covers the host name
 * <name>, case-insensitively: equal, or <pattern> is "*.REST" (REST holding
 * at least two labels) and <name> is one nonempty label followed by ".REST".
 * A name holding '*' or ending in '.' never matches; nor does any other
 * form of wildcard ("f*.example.com", "*.com").
 */
bool tls_name_match(const char *pattern, const char *name);

/* ---- resumption and counters shared by every process -------------------------------- */

/* A ticket key as nginx writes them: 16 bytes name, 16 HMAC-SHA256 key, 16 AES-128 key. */
#define TLS_TICKET_KEY_LEN 48
#define TLS_TICKET_KEYS_MAX 8
struct tls_ticket_key {
    unsigned char name[16];
    unsigned char hmac[16];
    unsigned char aes[16];
};

/*
 * The ticket keys of a key file, read by tls_load() (and so by the master,
 * as root): keys[0] encrypts new tickets, all decrypt. *n is 0 without a
 * file. Owned by <st>.
 */
const struct tls_ticket_key *tls_store_ticket_keys(const struct tls_store *st, size_t *n);

/* Why a TLS connection failed, for the counters. */
enum tls_fail {
    TLS_FAIL_NO_SHARED_CIPHER,
    TLS_FAIL_UNKNOWN_NAME,
    TLS_FAIL_CLIENT_CERT,
    TLS_FAIL_TIMEOUT,
    TLS_FAIL_PLAIN_HTTP,
    TLS_FAIL_PROTOCOL, /* a protocol version we do not offer */
    TLS_FAIL_OTHER,
    TLS_FAIL_N
};

/* "no_shared_cipher", "unknown_name", ...: the label in /metrics. */
const char *tls_fail_name(enum tls_fail f);

/* Counters of every worker together (C11 atomics in the shared table). */
struct tls_counters {
    uint64_t handshakes; /* completed */
    uint64_t resumed;    /* of them, resumed sessions */
    uint64_t failures[TLS_FAIL_N];
    uint64_t cache_entries; /* sessions held in the shared cache now */
};

struct tls_shared;

/*
 * Makes the table shared by the master and every process it forks: ticket
 * keys, a session cache of <cache_bytes> (fixed-size slots; 0: none) and the
 * counters. Made once by the master, before any fork, and kept across
 * reloads, so that sessions and keys outlive generations. NULL on failure
 * (errno).
 */
struct tls_shared *tls_shared_create(size_t cache_bytes);
void tls_shared_destroy(struct tls_shared *sh);

/* Makes <sh> the table this process's contexts use (the callbacks read it). NULL: none. */
void tls_shared_use(struct tls_shared *sh);

/* The table tls_shared_use() set, or NULL. */
struct tls_shared *tls_shared_get(void);

/*
 * Master: publishes <n> keys (keys[0] encrypts) for every worker; with
 * <keys> NULL, makes a new random key and keeps the one in use as the
 * second (still accepted, tickets it made are renewed). Returns 0 or -1.
 */
int tls_shared_set_keys(struct tls_shared *sh, const struct tls_ticket_key *keys, size_t n);

/* Adds one to failure counter <f> (workers). */
void tls_count_failure(enum tls_fail f);

/* Counts a completed handshake on <ssl> (workers). */
void tls_count_handshake(SSL *ssl);

/*
 * Takes the session cache's lock and keeps it: for tests, a process that
 * dies holding it (the next taker empties the cache). Returns 0 or -1.
 */
int tls_shared_hold_lock(struct tls_shared *sh);

/* Copies the counters of <sh> (NULL: zeros) into <out>. */
void tls_shared_counters(const struct tls_shared *sh, struct tls_counters *out);

/* ---- one connection ------------------------------------------------------------------ */

/* More TLS 1.3 KeyUpdates than this on one connection close it. */
#define TLS_MAX_KEY_UPDATES 8

/* What the callbacks learn about one connection; its SSL's app data. */
struct tls_conn_state {
    unsigned key_updates; /* KeyUpdate messages received */
    bool unknown_name;    /* the SNI callback refused the name (strict_sni) */
};

/*
 * Why the handshake of <ssl> failed, from <st> and the OpenSSL error
 * queue (which it clears); OpenSSL's reason, for the log, in <why>.
 */
enum tls_fail tls_classify_failure(SSL *ssl, const struct tls_conn_state *st, char *why,
                                   size_t whylen);

/*
 * For X-Client-Verify: "SUCCESS", "FAILED:reason" or "NONE" (no client
 * certificate) in <out>; and the RFC 2253 subject of the client
 * certificate in <subject> ("" when none), control characters replaced.
 */
void tls_client_verify(SSL *ssl, char *out, size_t outlen, char *subject, size_t subjlen);

#endif
