/*
 * config: the INI file (read with inih) -> an immutable struct config.
 *
 * The keys, their values and defaults are documented in README.md
 * ("Configuration") and miniproxy.ini(5); both are checked against the key
 * table of src/config.c by tests/unit_docs.c. This header documents the API
 * and the meaning of the fields, not the keys' defaults or ranges.
 *
 * Loading happens in two passes, as in HAProxy: the inih handler fills a
 * draft and checks each value's syntax; a validation pass then checks the
 * whole (required keys, references between sections, duplicates). Only a
 * config that passed both is returned. Every error names file, line, section
 * and key: "miniproxy.ini:12: [upstream app] server: bad port \"30o1\"".
 * A bad value is an error, never a silent default; unknown sections and
 * keys are errors.
 */
#ifndef MP_CONFIG_H
#define MP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CFG_NAME_MAX 64 /* upstream group names, including the NUL */
#define CFG_MAX_LISTENERS 32
#define CFG_MAX_GROUPS 64
#define CFG_MAX_SERVERS 256        /* per group */
#define CFG_MAX_TOTAL_SERVERS 1024 /* over all groups: the shared table's size */
#define CFG_MAX_WORKERS 1024
#define CFG_MAX_WEIGHT 100
#define CFG_MAX_ROUTES 256
#define CFG_MAX_ROUTE_HOSTS 32   /* names on one host = line */
#define CFG_MAX_ROUTE_HEADERS 32 /* per repeatable header key of a route */
#define CFG_MAX_TRUSTED 64       /* trusted_proxies CIDRs */

enum cfg_log_level { CFG_LOG_ERROR, CFG_LOG_WARN, CFG_LOG_INFO, CFG_LOG_DEBUG };

enum cfg_balance { CFG_BAL_ROUND_ROBIN, CFG_BAL_LEAST_CONN, CFG_BAL_RANDOM, CFG_BAL_HASH };

enum cfg_hash_key { CFG_HASH_CLIENT_IP, CFG_HASH_HEADER };

/* underscores_in_headers: what becomes of a request header whose name has a '_'. */
enum cfg_underscores { CFG_US_DROP, CFG_US_REJECT, CFG_US_ALLOW };

/* lingering_close (nginx's): when a close first reads what the client still sends. */
enum cfg_lingering { CFG_LINGER_OFF, CFG_LINGER_ON, CFG_LINGER_ALWAYS };
enum cfg_log_format { CFG_LOG_MAIN, CFG_LOG_COMBINED, CFG_LOG_JSON };

/* An IPv4 or IPv6 address with port, as written "127.0.0.1:80" / "[::1]:80". */
struct cfg_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[64]; /* canonical "host:port" form, for logs and Host headers */
};

struct cfg_server {
    struct cfg_addr addr;
    unsigned weight; /* 1..CFG_MAX_WEIGHT */
    bool backup;     /* gets traffic only while no primary of its group is usable */
    int line;        /* where it was defined, for messages */
    char host[256];  /* the host as written (a name or an IP): the TLS name by default */
};

/* An [upstream NAME] section; each field is the key of the same name (durations in ms). */
struct cfg_group {
    char name[CFG_NAME_MAX];
    struct cfg_server *servers; /* server =, in file order */
    size_t nservers;
    int64_t connect_timeout_ms;
    int64_t read_timeout_ms; /* between two reads from the upstream */
    unsigned keepalive;      /* idle connections kept per worker; 0 = none */
    bool preserve_host;
    int line; /* line of the [upstream NAME] header */

    /* balancing */
    enum cfg_balance balance;
    enum cfg_hash_key hash_key;     /* hash_key = client_ip | header:NAME */
    char hash_header[CFG_NAME_MAX]; /* NAME of header:NAME (a token) */
    unsigned retries;               /* other servers tried after a failure */

    /* active health checks (the health-check child) */
    bool health_check;
    char health_path[256]; /* origin-form, starts with '/' */
    int64_t health_interval_ms;
    int64_t health_timeout_ms;
    unsigned rise;              /* good probes to go up */
    unsigned fall;              /* failed probes to go down */
    unsigned health_status_min; /* health_status = N-M: statuses that count as healthy */
    unsigned health_status_max;
    int64_t health_interval_down_ms; /* the interval while a server is down */

    /* passive health: the circuit breaker */
    unsigned max_fails;           /* consecutive failures that open it; 0 = never */
    int64_t fail_window_ms;       /* ... all within this span of the first one */
    int64_t cooldown_ms;          /* open this long, then one trial */
    bool fail_on_5xx;             /* count 5xx answers as failures too */
    unsigned max_ejected_percent; /* most servers up that the breaker may hold out */

    /* TLS to the servers (upconn.c) */
    bool tls;                   /* connect with TLS */
    bool tls_verify;            /* verify the server's certificate and name */
    char *tls_ca;               /* "system" or a PEM CA file */
    char *tls_server_name;      /* SNI and the name verified; NULL: each server's host */
    struct ssl_ctx_st *tls_ctx; /* built at load when tls is on (one per group), else NULL */
};

/* A header a route sets ("Name: value"): name a token, value a valid field value. */
struct cfg_header {
    char *name;
    char *value;
};

/*
 * A [route NAME] section; each field is the key of the same name. How
 * requests are matched to routes is route.h's business.
 */
struct cfg_route {
    char name[CFG_NAME_MAX];
    char **hosts;  /* lower case, "*.example.com" for a wildcard; none: any host */
    size_t nhosts; /* in the order written */
    char *path;    /* the prefix, normalised (route_normalize()); "/" when not given */
    char upstream[CFG_NAME_MAX];
    size_t group; /* index in groups[] of upstream */
    bool strip_prefix;
    struct cfg_header *request_headers; /* set on the way to the upstream */
    size_t nrequest_headers;
    struct cfg_header *response_headers; /* set on the way back */
    size_t nresponse_headers;
    char **hide_response_headers; /* removed on the way back */
    size_t nhide_response_headers;
    int line; /* line of the [route NAME] header */
};

/* One trusted_proxies entry: an IPv4 or IPv6 network. */
struct cfg_cidr {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* network address, host bits zero (4 bytes for IPv4) */
    unsigned bits;          /* prefix length */
};

struct cfg_listener {
    struct cfg_addr addr;
    bool tls;      /* "listen = ADDR tls": this listener terminates TLS */
    bool deferred; /* TCP_DEFER_ACCEPT (the default; "ADDR nodeferred": off) */
    int line;
};

/* One [tls] `certificate = PATH [key=PATH]` line. */
struct cfg_tls_cert {
    char *cert;
    char *key; /* NULL: the key is in <cert> */
    int line;
};

struct tls_store;

/* The whole file; each field is the key of the same name (durations in ms). */
struct config {
    char *path; /* the file it was read from */

    /* [proxy] */
    struct cfg_listener *listeners; /* listen =, repeatable, at least one */
    size_t nlisteners;
    /*
     * Worker pool. `workers = N` is a fixed pool of N; `workers = auto` an
     * adaptive one between min_workers and max_workers that keeps
     * min_spare..max_spare idle workers (the defaults, from the CPU count,
     * are computed once the file is read). <worker_slots> is the number of
     * worker slots (shared-memory entries, most workers at once): N, or
     * max_workers; not the number of workers running.
     */
    unsigned worker_slots;
    bool workers_auto;
    unsigned min_workers; /* N when fixed */
    unsigned max_workers; /* N when fixed */
    unsigned min_spare;   /* 0 when fixed */
    unsigned max_spare;   /* 0 when fixed */

    /* slow clients (mod_reqtimeout's MinRate): bytes/s after a 1 s grace; 0 = off */
    unsigned client_header_min_rate;
    unsigned client_body_min_rate;
    unsigned max_conns_per_ip; /* concurrent connections per client address; 0 = no limit */
    size_t group;              /* index in groups[] of `upstream =` */
    char *error_log;           /* "stderr" or a path */
    char *access_log;          /* "stderr", "off" or a path */
    enum cfg_log_level log_level;
    int64_t keepalive_timeout_ms; /* 0 disables client keep-alive */
    unsigned keepalive_requests;
    int64_t client_header_timeout_ms; /* the whole head */
    int64_t client_body_timeout_ms;   /* between two reads of the body */
    int64_t send_timeout_ms;          /* between two writes to the client */
    uint64_t client_max_body_size;    /* 0 = unlimited */
    size_t max_header_size;
    enum cfg_underscores underscores_in_headers;
    /* lingering close: how long it reads and discards, and waits for the next bytes */
    enum cfg_lingering lingering_close;
    int64_t lingering_time_ms;
    int64_t lingering_timeout_ms;
    char *pid_file;                   /* NULL: none */
    char *user;                       /* children run as it; NULL: unchanged */
    int64_t shutdown_timeout_ms;      /* graceful stop and reload drain bound */
    bool redirect_https;              /* plain listeners answer 301/308 to https:// */
    bool server_timing;               /* responses carry Server-Timing */
    bool splice;                      /* zero-copy bodies (relay.h) */
    bool request_id;                  /* X-Request-Id kept or made, both ways */
    struct cfg_cidr *trusted_proxies; /* peers whose X-Forwarded-For is believed */
    size_t ntrusted_proxies;
    enum cfg_log_format access_log_format;

    /* [tls] (optional; needed by a tls listener) */
    bool tls; /* the section is present */
    int tls_line;
    struct cfg_tls_cert *tls_certs; /* certificate =, in file order */
    size_t ntls_certs;
    char *tls_protocols, *tls_ciphers, *tls_ciphersuites;
    uint64_t tls_session_cache;     /* bytes of the shared session cache; 0 = off */
    int64_t tls_session_timeout_ms; /* session lifetime and ticket key rotation */
    bool tls_session_tickets;
    char *tls_ticket_key_file; /* NULL: the master makes and rotates the keys */
    int64_t tls_handshake_timeout_ms;
    bool tls_strict_sni;
    unsigned tls_hsts;        /* Strict-Transport-Security max-age; 0 = none */
    unsigned tls_client_cert; /* enum tls_client_cert */
    char *tls_client_ca;
    /*
     * The certificates and contexts, loaded by cfg_load() (tls_load(), as
     * the master, before any child is forked) when [tls] is present; freed
     * by cfg_free(). NULL without [tls].
     */
    struct tls_store *tls_store;
    bool websocket;            /* Upgrade: websocket is tunnelled (tunnel.c) */
    int64_t tunnel_timeout_ms; /* a tunnel idle this long in both directions is closed */

    /* [admin] (optional) */
    bool admin;                 /* the section is present */
    struct cfg_addr admin_addr; /* its listen = */
    int admin_line;             /* line of its listen = */

    /* [upstream NAME] sections, in file order */
    struct cfg_group *groups;
    size_t ngroups;

    /* [route NAME] sections, in file order */
    struct cfg_route *routes;
    size_t nroutes;
};

/*
 * Reads and validates <path>. Returns a config to free with cfg_free(), or
 * NULL with a one-line message (no trailing newline) in <err>.
 */
struct config *cfg_load(const char *path, char *err, size_t errlen);

/* As cfg_load(), from the NUL-terminated <text>; <name> stands for the file in messages. */
struct config *cfg_load_string(const char *text, const char *name, char *err, size_t errlen);

void cfg_free(struct config *cfg);

/*
 * Writes to <log> (one call per line, no newline) what differs between
 * <old> and <new>, for the reload message: listeners added/removed, groups
 * added/removed, servers added/removed/reweighted per group, workers,
 * timeouts and other changed keys. Returns the number of lines.
 */
int cfg_diff(const struct config *old, const struct config *new,
             void (*log)(void *arg, const char *line), void *arg);

/*
 * Parses "host:port" ("127.0.0.1:8080", "[::1]:8080", "localhost:80";
 * names are resolved with getaddrinfo, first result). Returns 0 or -1 with a
 * reason ("bad port \"30o1\"") in <why>.
 */
int cfg_parse_addr(const char *s, struct cfg_addr *out, char *why, size_t whylen);

/*
 * Writes to <emit> (one call per line, no newline) the effective
 * configuration as an INI file (`miniproxyd -T`): every key of every
 * section with its resolved value, defaults filled in, durations and sizes
 * in their units; keys without a value are comments. Loading the output
 * gives the same configuration, and dumping that the same lines. Returns
 * the number of lines.
 */
int cfg_dump(const struct config *cfg, void (*emit)(void *arg, const char *line), void *arg);

/* The names the file uses for these values ("round_robin", "debug"...); "invalid" if none. */
const char *cfg_balance_name(enum cfg_balance balance);
const char *cfg_log_level_name(enum cfg_log_level level);
const char *cfg_hash_key_name(enum cfg_hash_key key);        /* "client_ip", "header" */
const char *cfg_log_format_name(enum cfg_log_format format); /* "main", "combined", "json" */

/* One row of the key table, for the documentation test. */
struct cfg_key_doc {
    const char *section;       /* "proxy", "admin", "upstream NAME", "route NAME" */
    const char *name;          /* "keepalive_timeout" */
    const char *default_value; /* a value of the file ("5s"), or NULL when computed or none */
    const char *default_doc;   /* as documented: "5s", "required", "none", "max(2, CPUs)" */
    const char *doc;           /* one line */
    bool reloadable;           /* false: read at start-up; a reload only logs the change */
};

/* Fills <out> with row <i> of the key table; returns 0, or -1 past its end. */
int cfg_key_doc(size_t i, struct cfg_key_doc *out);

#endif
