/*
 * config: the INI file (read with inih) -> an immutable struct config.
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

enum cfg_log_level { CFG_LOG_ERROR, CFG_LOG_WARN, CFG_LOG_INFO, CFG_LOG_DEBUG };

enum cfg_balance { CFG_BAL_ROUND_ROBIN, CFG_BAL_LEAST_CONN, CFG_BAL_RANDOM, CFG_BAL_HASH };

enum cfg_hash_key { CFG_HASH_CLIENT_IP, CFG_HASH_HEADER };

/* An IPv4 or IPv6 address with port, as written "127.0.0.1:80" / "[::1]:80". */
struct cfg_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[64]; /* canonical "host:port" form, for logs and Host headers */
};

struct cfg_server {
    struct cfg_addr addr;
    unsigned weight; /* 1..CFG_MAX_WEIGHT, default 1 */
    bool backup;     /* gets traffic only while no primary of its group is usable */
    int line;        /* where it was defined, for messages */
};

struct cfg_group {
    char name[CFG_NAME_MAX];
    struct cfg_server *servers;
    size_t nservers;
    int64_t connect_timeout_ms; /* default 3s */
    int64_t read_timeout_ms;    /* default 60s: between two reads from the upstream */
    unsigned keepalive;         /* idle connections kept per worker, default 16; 0 = none */
    bool preserve_host;         /* default no */
    int line;                   /* line of the [upstream NAME] header */

    /* balancing */
    enum cfg_balance balance;   /* balance = round_robin (default) | least_conn | random | hash */
    enum cfg_hash_key hash_key; /* hash_key = client_ip (default) | header:NAME */
    char hash_header[CFG_NAME_MAX]; /* NAME of header:NAME (a token) */
    unsigned retries;               /* retries = 2: other servers tried after a failure, 0..10 */

    /* active health checks (the health-check child) */
    bool health_check;          /* health_check = on (default) | off */
    char health_path[256];      /* health_path = /health: origin-form, starts with '/' */
    int64_t health_interval_ms; /* health_interval = 2s, > 0 */
    int64_t health_timeout_ms;  /* health_timeout = 1s, > 0 */
    unsigned rise;              /* rise = 2: good probes to go up, 1..100 */
    unsigned fall;              /* fall = 3: failed probes to go down, 1..100 */
    unsigned health_status_min; /* health_status = 200-399: statuses that count as healthy, */
    unsigned health_status_max; /* "N" or "N-M" within 100..599 */
    /* health_interval_down = 1s (or health_interval if less), > 0: the interval while down */
    int64_t health_interval_down_ms;

    /* passive health: the circuit breaker */
    unsigned max_fails;     /* max_fails = 5: consecutive failures that open it; 0 = never */
    int64_t fail_window_ms; /* fail_window = 10s, > 0: ... all within this of the first one */
    int64_t cooldown_ms;    /* cooldown = 10s, > 0: open this long, then one trial */
    bool fail_on_5xx;       /* fail_on_5xx = no: count 5xx answers as failures too */
    /* max_ejected_percent = 50, 0..100: most servers up that the breaker may hold out */
    unsigned max_ejected_percent;
};

struct cfg_listener {
    struct cfg_addr addr;
    int line;
};

struct config {
    char *path; /* the file it was read from */

    /* [proxy] */
    struct cfg_listener *listeners; /* listen =, repeatable, at least one */
    size_t nlisteners;
    /*
     * Worker pool. `workers = N` is a fixed pool of N; `workers = auto` (the
     * default) an adaptive one between min_workers and max_workers that
     * keeps min_spare..max_spare idle workers. <workers> is the number of
     * worker slots: N, or max_workers.
     */
    unsigned workers;
    bool workers_auto;
    unsigned min_workers; /* min_workers: default max(2, CPUs); N when fixed */
    unsigned max_workers; /* max_workers: default min(1024, 128 x CPUs); N when fixed */
    unsigned min_spare;   /* min_spare: default max(2, CPUs) */
    unsigned max_spare;   /* max_spare: default max(8, 4 x CPUs) */

    /* slow clients (mod_reqtimeout's MinRate): bytes/s after a 1 s grace; 0 = off */
    unsigned client_header_min_rate; /* default 256 */
    unsigned client_body_min_rate;   /* default 256 */
    unsigned
        max_conns_per_ip; /* concurrent connections per client address; 0 (default) = no limit */
    size_t group;         /* index in groups[] of `upstream =` (required) */
    char *error_log;      /* "stderr" (default) or a path */
    char *access_log;     /* "stderr" (default), "off" or a path */
    enum cfg_log_level log_level;     /* default info */
    int64_t keepalive_timeout_ms;     /* default 5s; 0 disables client keep-alive */
    unsigned keepalive_requests;      /* default 1000 */
    int64_t client_header_timeout_ms; /* default 10s: the whole head */
    int64_t client_body_timeout_ms;   /* default 30s: between two reads of the body */
    int64_t send_timeout_ms;          /* default 30s: between two writes to the client */
    uint64_t client_max_body_size;    /* default 1m; 0 = unlimited */
    size_t max_header_size;           /* default 16k; 1k..1m */
    char *pid_file;                   /* pid_file = PATH; NULL (default): none */
    char *user;                       /* user = NAME: children run as NAME; NULL: unchanged */
    int64_t shutdown_timeout_ms;      /* default 30s: graceful stop and reload drain bound */

    /* [admin] (optional) */
    bool admin;                 /* the section is present */
    struct cfg_addr admin_addr; /* listen = (required in [admin]), loopback advised */
    int admin_line;             /* line of its listen = */

    /* [upstream NAME] sections, in file order */
    struct cfg_group *groups;
    size_t ngroups;
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

#endif
