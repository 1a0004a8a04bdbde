/*
 * config: reads the INI file with inih and validates it into a struct config.
 *
 * The format, every key with its default (the README copies this block):
 *
 *   ; comments start a line with ';' or '#'; after a value, ' ;' starts one.
 *   ; Lines are "key = value"; one line is one key (no continuation lines).
 *   ; Unknown sections and keys are errors; a bad value is never replaced by
 *   ; a default. Durations: 100ms, 5s, 2m or bare seconds (max 1 day). Sizes:
 *   ; bytes, or with a k/m/g suffix in any case (powers of 1024).
 *
 *   [proxy]                      ; once
 *   listen = 127.0.0.1:8080      ; required, repeatable (at most 32); "ip:port",
 *                                ; "[v6]:port" or "name:port"; port 0 picks one;
 *                                ; the same address twice is an error
 *   workers = auto               ; auto (default) or N (1..1024). N is a fixed
 *                                ; pool of N workers; auto an adaptive one
 *                                ; between min_workers and max_workers that
 *                                ; keeps min_spare..max_spare of them idle.
 *                                ; The four keys below are errors with N.
 *                                ; CPUs: the online ones (at least 1)
 *   min_workers = 4              ; 1..1024, at most max_workers; default
 *                                ; max(2, CPUs), lowered to max_workers
 *   max_workers = 256            ; 1..1024; default min(1024, 128 x CPUs);
 *                                ; the number of worker slots
 *   min_spare = 2                ; 0..1024, below max_spare; default
 *                                ; max(2, CPUs), lowered below max_spare
 *   max_spare = 8                ; 1..1024, at most max_workers; default
 *                                ; max(8, 4 x CPUs), raised above a given
 *                                ; min_spare, lowered to max_workers
 *   upstream = app               ; required; names an [upstream NAME] section,
 *                                ; which may come later in the file
 *   error_log = stderr           ; default stderr; or a path
 *   access_log = stderr          ; default stderr; or a path, or off
 *   log_level = info             ; error|warn|info|debug; default info
 *   keepalive_timeout = 5s       ; default 5s; 0 disables client keep-alive
 *   keepalive_requests = 1000    ; 1..1000000; default 1000
 *   client_header_timeout = 10s  ; > 0; default 10s: to read the whole head
 *   client_body_timeout = 30s    ; > 0; default 30s: between two body reads
 *   send_timeout = 30s           ; > 0; default 30s: between two client writes
 *   client_header_min_rate = 256 ; 0..1000000000 bytes/s; default 256: the
 *                                ; rate a request head must keep up after
 *                                ; its first second; 0 = off
 *   client_body_min_rate = 256   ; the same for request bodies; default 256
 *   max_conns_per_ip = 0         ; 0..1000000; default 0 = unlimited:
 *                                ; concurrent connections per client address
 *   client_max_body_size = 1m    ; default 1m; 0 = unlimited
 *   max_header_size = 16k        ; 1k..1m; default 16k
 *   pid_file = /run/miniproxyd.pid ; a path (not ending in '/'); default:
 *                                ; none (no pid file). Needed by -s
 *   user = nobody                ; a user that exists (getpwnam); workers
 *                                ; and the health checker run as it when
 *                                ; started as root; default: none (unchanged)
 *   shutdown_timeout = 30s       ; > 0; default 30s: bounds a graceful stop
 *                                ; and the drain of a reload
 *
 *   [admin]                      ; optional, at most once
 *   listen = 127.0.0.1:9090      ; required in [admin]; serves /status,
 *                                ; /status.json and /metrics; port 0 picks
 *                                ; one; must not take the traffic of a
 *                                ; [proxy] listen (the same address, or a
 *                                ; wildcard, on the same port)
 *
 *   [upstream app]               ; NAME is [A-Za-z0-9_.-]{1,63}, unique; at
 *                                ; most 64 groups
 *   server = 127.0.0.1:3001      ; required, repeatable (at most 256 per
 *   server = 127.0.0.1:3002 weight=2   ; group, 1024 over all groups); the
 *   server = 127.0.0.1:3003 backup     ; address (port 1..65535) may be
 *                                ; followed by weight=N (1..100, default 1)
 *                                ; and backup (gets traffic only while no
 *                                ; primary is usable); at least one server
 *                                ; must not be a backup; the same address
 *                                ; twice in a group is an error
 *   connect_timeout = 3s         ; > 0; default 3s
 *   read_timeout = 60s           ; > 0; default 60s: between two upstream reads
 *   keepalive = 16               ; 0..1024; default 16 idle connections per
 *                                ; worker; 0 = none
 *   preserve_host = no           ; yes|no|on|off|true|false; default no
 *   balance = round_robin        ; round_robin|least_conn|random|hash;
 *                                ; default round_robin
 *   hash_key = client_ip         ; client_ip or header:NAME (NAME a token of
 *                                ; 1..63 characters); default client_ip;
 *                                ; used by balance = hash, ignored otherwise
 *   retries = 2                  ; 0..10; default 2: other servers tried
 *                                ; after a failure
 *   health_check = on            ; boolean as preserve_host; default on
 *   health_path = /health        ; starts with '/', bytes 0x21-0x7e only, at
 *                                ; most 255; default /health
 *   health_interval = 2s         ; > 0; default 2s
 *   health_interval_down = 1s    ; > 0; default 1s, or health_interval if
 *                                ; shorter: the interval while a server is
 *                                ; down (HAProxy's downinter)
 *   health_timeout = 1s          ; > 0; default 1s
 *   rise = 2                     ; 1..100; default 2 good probes to go up
 *   fall = 3                     ; 1..100; default 3 failed probes to go down
 *   health_status = 200-399      ; "N" or "N-M", 100 <= N <= M <= 599;
 *                                ; default 200-399
 *   max_fails = 5                ; 0..1000; default 5 consecutive failures
 *                                ; (a success resets the count) open the
 *                                ; circuit breaker; 0 disables it
 *   fail_window = 10s            ; > 0; default 10s: those failures must all
 *                                ; come within this of the run's first one
 *   max_ejected_percent = 50     ; 0..100; default 50: the breaker holds out
 *                                ; at most this share of the servers that
 *                                ; are up, and never the last one
 *   cooldown = 10s               ; > 0; default 10s: open this long, then
 *                                ; one trial request
 *   fail_on_5xx = no             ; boolean; default no: 5xx answers count as
 *                                ; failures too when yes
 *
 * Errors read "FILE:LINE: [SECTION] KEY: REASON", or "FILE:LINE: [SECTION]:
 * REASON" for a whole section (LINE is then the header's).
 *
 * How inih is used: Debian's libinih is built without INI_HANDLER_LINENO, so
 * the handler learns no line number. We parse through ini_parse_stream() with
 * our own reader, which counts lines; inih calls the handler right after the
 * reader returned that handler's line, so the reader's count is the line of
 * the key. inih calls no handler for a section header, so the reader also
 * recognises headers itself: that is where sections are checked, groups are
 * created and header lines recorded (inih also truncates section names to
 * 49 bytes, which "upstream " + 63 would exceed). The reader stops the parse
 * (returns NULL) once an error has been recorded.
 */
#include "config.h"

#include "buf.h"
#include "pidfile.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* inih's line buffer (a VLA in Debian's build); 3 bytes go to \r\n\0. */
#define CFG_MAX_LINE 1024

enum cfg_section { CFG_SEC_NONE, CFG_SEC_PROXY, CFG_SEC_ADMIN, CFG_SEC_UPSTREAM };

enum cfg_proxy_key {
    PK_LISTEN,
    PK_WORKERS,
    PK_MIN_WORKERS,
    PK_MAX_WORKERS,
    PK_MIN_SPARE,
    PK_MAX_SPARE,
    PK_UPSTREAM,
    PK_ERROR_LOG,
    PK_ACCESS_LOG,
    PK_LOG_LEVEL,
    PK_KEEPALIVE_TIMEOUT,
    PK_KEEPALIVE_REQUESTS,
    PK_CLIENT_HEADER_TIMEOUT,
    PK_CLIENT_BODY_TIMEOUT,
    PK_SEND_TIMEOUT,
    PK_CLIENT_HEADER_MIN_RATE,
    PK_CLIENT_BODY_MIN_RATE,
    PK_MAX_CONNS_PER_IP,
    PK_CLIENT_MAX_BODY_SIZE,
    PK_MAX_HEADER_SIZE,
    PK_PID_FILE,
    PK_USER,
    PK_SHUTDOWN_TIMEOUT,
    PK_COUNT
};

enum cfg_admin_key { AK_LISTEN, AK_COUNT };

enum cfg_group_key {
    GK_SERVER,
    GK_CONNECT_TIMEOUT,
    GK_READ_TIMEOUT,
    GK_KEEPALIVE,
    GK_PRESERVE_HOST,
    GK_BALANCE,
    GK_HASH_KEY,
    GK_RETRIES,
    GK_HEALTH_CHECK,
    GK_HEALTH_PATH,
    GK_HEALTH_INTERVAL,
    GK_HEALTH_TIMEOUT,
    GK_RISE,
    GK_FALL,
    GK_HEALTH_STATUS,
    GK_MAX_FAILS,
    GK_FAIL_WINDOW,
    GK_COOLDOWN,
    GK_FAIL_ON_5XX,
    GK_HEALTH_INTERVAL_DOWN,
    GK_MAX_EJECTED_PERCENT,
    GK_COUNT
};

/* Everything one load needs; lives on cfg_load*()'s stack. */
struct cfg_state {
    struct config *cfg; /* the draft */
    const char *name;   /* file name for messages */
    char *err;
    size_t errlen;
    bool failed;

    /* reader */
    FILE *fp;         /* either a file ... */
    const char *text; /* ... or the rest of a string */
    int lineno;
    int read_errno;

    /* the section being read */
    enum cfg_section sec;
    char sectext[80]; /* "proxy", "upstream app": for messages */
    int secline;
    size_t group;         /* index of the current group when sec is CFG_SEC_UPSTREAM */
    size_t total_servers; /* over all groups, against CFG_MAX_TOTAL_SERVERS */

    int proxy_line;    /* line of [proxy], 0 if absent */
    int admin_secline; /* line of [admin], 0 if absent */
    char upstream[CFG_NAME_MAX];
    int proxy_seen[PK_COUNT]; /* line where each key was first given */
    int admin_seen[AK_COUNT];
    int group_seen[CFG_MAX_GROUPS][GK_COUNT];
};

typedef int (*cfg_setter)(struct cfg_state *st, const char *val, char *why, size_t whylen);

struct cfg_key {
    const char *name;
    bool repeatable;
    cfg_setter set;
};

__attribute__((format(printf, 3, 4))) static void
cfg_fail(struct cfg_state *st, int line, const char *fmt, ...)
{
    int n;
    va_list ap;

    if (st->failed)
        return; /* keep the first error */
    st->failed = true;
    n = snprintf(st->err, st->errlen, "%s:%d: ", st->name, line);
    if (n < 0 || (size_t)n >= st->errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(st->err + n, st->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/*
 * Appends one zeroed element to the array <arr> of <*n> elements of
 * <elsize> bytes. Returns the new element, with the (maybe moved) array in
 * <*newarr>, or NULL when out of memory (<arr> is then unchanged).
 */
static void *
cfg_push(void *arr, size_t *n, size_t elsize, void **newarr)
{
    char *p = realloc(arr, (*n + 1) * elsize);

    if (p == NULL)
        return NULL;
    *newarr = p;
    memset(p + *n * elsize, 0, elsize);
    return p + (*n)++ * elsize;
}

static bool
cfg_valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n < 1 || n >= CFG_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* ---- values ---------------------------------------------------------- */

static bool
cfg_all_digits(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static int
cfg_number(const char *val, uint64_t min, uint64_t max, uint64_t *out, char *why, size_t whylen)
{
    uint64_t v;

    if (!cfg_all_digits(val)) {
        snprintf(why, whylen, "bad number \"%s\"", val);
        return -1;
    }
    if (buf_parse_u64(val, strlen(val), max, &v) == -1 || v < min) {
        snprintf(why, whylen, "%s out of range (%llu..%llu)", val, (unsigned long long)min,
                 (unsigned long long)max);
        return -1;
    }
    *out = v;
    return 0;
}

static int
cfg_unsigned(const char *val, unsigned min, unsigned max, unsigned *out, char *why, size_t whylen)
{
    uint64_t v;

    if (cfg_number(val, min, max, &v, why, whylen) == -1)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int
cfg_duration(const char *val, bool positive, int64_t *out, char *why, size_t whylen)
{
    const char *unit = val + strspn(val, "0123456789");

    if (unit == val) {
        snprintf(why, whylen, "bad duration \"%s\" (a number, then ms, s or m)", val);
        return -1;
    }
    if (*unit != '\0' && strcmp(unit, "ms") != 0 && strcmp(unit, "s") != 0 &&
        strcmp(unit, "m") != 0) {
        snprintf(why, whylen, "bad duration unit \"%s\" in \"%s\" (ms, s or m)", unit, val);
        return -1;
    }
    if (buf_parse_duration_ms(val, out) == -1) {
        snprintf(why, whylen, "duration %s out of range (max 1 day)", val);
        return -1;
    }
    if (positive && *out == 0) {
        snprintf(why, whylen, "must be greater than 0");
        return -1;
    }
    return 0;
}

static int
cfg_size(const char *val, uint64_t min, uint64_t max, const char *range, uint64_t *out, char *why,
         size_t whylen)
{
    const char *unit = val + strspn(val, "0123456789");

    if (unit == val) {
        snprintf(why, whylen, "bad size \"%s\" (a number, then k, m or g)", val);
        return -1;
    }
    if (*unit != '\0' && (unit[1] != '\0' || strchr("kKmMgG", *unit) == NULL)) {
        snprintf(why, whylen, "bad size unit \"%s\" in \"%s\" (k, m or g)", unit, val);
        return -1;
    }
    if (buf_parse_size(val, out) == -1 || *out < min || *out > max) {
        snprintf(why, whylen, "size %s out of range (%s)", val, range);
        return -1;
    }
    return 0;
}

static int
cfg_bool(const char *val, bool *out, char *why, size_t whylen)
{
    static const char *const yes[] = {"yes", "on", "true"};
    static const char *const no[] = {"no", "off", "false"};

    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(val, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(val, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    snprintf(why, whylen, "bad boolean \"%s\" (yes|no|on|off|true|false)", val);
    return -1;
}

static int
cfg_string(const char *val, char **out, char *why, size_t whylen)
{
    char *s = strdup(val);

    if (s == NULL) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    free(*out);
    *out = s;
    return 0;
}

int
cfg_parse_addr(const char *s, struct cfg_addr *out, char *why, size_t whylen)
{
    char host[256], ip[INET6_ADDRSTRLEN];
    const char *hostp, *port, *colon;
    size_t hostlen;
    uint64_t portnum;
    struct addrinfo hints, *res = NULL;
    int rc;

    if (*s == '[') {
        const char *end = strchr(s, ']');

        if (end == NULL) {
            snprintf(why, whylen, "bad address \"%s\": missing ']'", s);
            return -1;
        }
        if (end[1] != ':') {
            snprintf(why, whylen, "missing port in \"%s\"", s);
            return -1;
        }
        hostp = s + 1;
        hostlen = (size_t)(end - hostp);
        port = end + 2;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            snprintf(why, whylen, "missing port in \"%s\"", s);
            return -1;
        }
        if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
            snprintf(why, whylen, "bad address \"%s\": write IPv6 as [addr]:port", s);
            return -1;
        }
        hostp = s;
        hostlen = (size_t)(colon - s);
        port = colon + 1;
    }
    if (hostlen == 0 || hostlen >= sizeof(host)) {
        snprintf(why, whylen, "bad address \"%s\": %s host", s, hostlen ? "too long a" : "no");
        return -1;
    }
    memcpy(host, hostp, hostlen);
    host[hostlen] = '\0';
    if (*port == '\0') {
        snprintf(why, whylen, "missing port in \"%s\"", s);
        return -1;
    }
    if (buf_parse_u64(port, strlen(port), 65535, &portnum) == -1) {
        snprintf(why, whylen, "bad port \"%s\"", port);
        return -1;
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = *s == '[' ? AF_INET6 : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (*s == '[' ? AI_NUMERICHOST : 0);
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(why, whylen, "cannot resolve \"%s\": %s", host,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -1;
    }
    if (res->ai_addrlen > sizeof(out->ss) ||
        (res->ai_family != AF_INET && res->ai_family != AF_INET6)) {
        snprintf(why, whylen, "cannot resolve \"%s\": no IPv4 or IPv6 address", host);
        freeaddrinfo(res);
        return -1;
    }
    memset(out, 0, sizeof(*out));
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    freeaddrinfo(res);

    if (out->ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        snprintf(out->text, sizeof(out->text), "%s:%u", ip, (unsigned)portnum);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        snprintf(out->text, sizeof(out->text), "[%s]:%u", ip, (unsigned)portnum);
    }
    return 0;
}

/* ---- [proxy] keys ---------------------------------------------------- */

static int
set_listen(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    struct config *cfg = st->cfg;
    struct cfg_addr addr;
    struct cfg_listener *l;
    void *arr;

    if (cfg_parse_addr(val, &addr, why, whylen) == -1)
        return -1;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        if (strcmp(cfg->listeners[i].addr.text, addr.text) == 0) {
            snprintf(why, whylen, "duplicate listener %s, first at line %d", addr.text,
                     cfg->listeners[i].line);
            return -1;
        }
    }
    if (cfg->nlisteners >= CFG_MAX_LISTENERS) {
        snprintf(why, whylen, "too many listeners (max %d)", CFG_MAX_LISTENERS);
        return -1;
    }
    l = cfg_push(cfg->listeners, &cfg->nlisteners, sizeof(*l), &arr);
    if (l == NULL) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    cfg->listeners = arr;
    l->addr = addr;
    l->line = st->lineno;
    return 0;
}

/*
 * "auto" or N. The pool keys are checked against it, and their defaults
 * computed, in cfg_validate_pool(): they may come before it in the file.
 */
static int
set_workers(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    if (strcmp(val, "auto") == 0) {
        st->cfg->workers_auto = true;
        return 0;
    }
    if (!cfg_all_digits(val)) {
        snprintf(why, whylen, "bad value \"%s\" (auto or 1..%d)", val, CFG_MAX_WORKERS);
        return -1;
    }
    if (cfg_unsigned(val, 1, CFG_MAX_WORKERS, &st->cfg->workers, why, whylen) == -1)
        return -1;
    st->cfg->workers_auto = false;
    return 0;
}

static int
set_min_workers(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_unsigned(val, 1, CFG_MAX_WORKERS, &st->cfg->min_workers, why, whylen);
}

static int
set_max_workers(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_unsigned(val, 1, CFG_MAX_WORKERS, &st->cfg->max_workers, why, whylen);
}

static int
set_min_spare(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_unsigned(val, 0, CFG_MAX_WORKERS, &st->cfg->min_spare, why, whylen);
}

static int
set_max_spare(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_unsigned(val, 1, CFG_MAX_WORKERS, &st->cfg->max_spare, why, whylen);
}

static int
set_upstream(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    if (!cfg_valid_name(val)) {
        snprintf(why, whylen, "bad group name \"%s\" ([A-Za-z0-9_.-], 1 to %d characters)", val,
                 CFG_NAME_MAX - 1);
        return -1;
    }
    snprintf(st->upstream, sizeof(st->upstream), "%s", val);
    return 0;
}

static int
set_error_log(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_string(val, &st->cfg->error_log, why, whylen);
}

static int
set_access_log(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_string(val, &st->cfg->access_log, why, whylen);
}

static int
set_log_level(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(val, names[i]) == 0) {
            st->cfg->log_level = (enum cfg_log_level)i;
            return 0;
        }
    }
    snprintf(why, whylen, "bad level \"%s\" (error|warn|info|debug)", val);
    return -1;
}

static int
set_keepalive_timeout(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_duration(val, false, &st->cfg->keepalive_timeout_ms, why, whylen);
}

static int
set_keepalive_requests(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    uint64_t v;

    if (cfg_number(val, 1, 1000000, &v, why, whylen) == -1)
        return -1;
    st->cfg->keepalive_requests = (unsigned)v;
    return 0;
}

static int
set_client_header_timeout(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_duration(val, true, &st->cfg->client_header_timeout_ms, why, whylen);
}

static int
set_client_body_timeout(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_duration(val, true, &st->cfg->client_body_timeout_ms, why, whylen);
}

static int
set_send_timeout(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_duration(val, true, &st->cfg->send_timeout_ms, why, whylen);
}

static int
set_client_header_min_rate(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_unsigned(val, 0, 1000000000, &st->cfg->client_header_min_rate, why, whylen);
}

static int
set_client_body_min_rate(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_unsigned(val, 0, 1000000000, &st->cfg->client_body_min_rate, why, whylen);
}

static int
set_max_conns_per_ip(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_unsigned(val, 0, 1000000, &st->cfg->max_conns_per_ip, why, whylen);
}

static int
set_client_max_body_size(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_size(val, 0, UINT64_MAX, "max 1024g", &st->cfg->client_max_body_size, why, whylen);
}

static int
set_max_header_size(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    uint64_t v;

    if (cfg_size(val, 1024, 1024 * 1024, "1k..1m", &v, why, whylen) == -1)
        return -1;
    st->cfg->max_header_size = (size_t)v;
    return 0;
}

/* The master writes it at start-up; a path ending in '/' can only be a directory. */
static int
set_pid_file(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    if (val[strlen(val) - 1] == '/') {
        snprintf(why, whylen, "bad path \"%s\": names a directory", val);
        return -1;
    }
    return cfg_string(val, &st->cfg->pid_file, why, whylen);
}

/*
 * Looked up now, so that -t and a reload catch a typo; the uid is looked
 * up again when privileges are dropped (see privs_drop()).
 */
static int
set_user(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    int err;

    if (privs_lookup(val, &err) == NULL) {
        if (err != 0)
            snprintf(why, whylen, "cannot look up user \"%s\": %s", val, strerror(err));
        else
            snprintf(why, whylen, "no such user \"%s\"", val);
        return -1;
    }
    return cfg_string(val, &st->cfg->user, why, whylen);
}

static int
set_shutdown_timeout(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_duration(val, true, &st->cfg->shutdown_timeout_ms, why, whylen);
}

/* Indexed by enum cfg_proxy_key. */
static const struct cfg_key cfg_proxy_keys[PK_COUNT] = {
    [PK_LISTEN] = {"listen", true, set_listen},
    [PK_WORKERS] = {"workers", false, set_workers},
    [PK_MIN_WORKERS] = {"min_workers", false, set_min_workers},
    [PK_MAX_WORKERS] = {"max_workers", false, set_max_workers},
    [PK_MIN_SPARE] = {"min_spare", false, set_min_spare},
    [PK_MAX_SPARE] = {"max_spare", false, set_max_spare},
    [PK_UPSTREAM] = {"upstream", false, set_upstream},
    [PK_ERROR_LOG] = {"error_log", false, set_error_log},
    [PK_ACCESS_LOG] = {"access_log", false, set_access_log},
    [PK_LOG_LEVEL] = {"log_level", false, set_log_level},
    [PK_KEEPALIVE_TIMEOUT] = {"keepalive_timeout", false, set_keepalive_timeout},
    [PK_KEEPALIVE_REQUESTS] = {"keepalive_requests", false, set_keepalive_requests},
    [PK_CLIENT_HEADER_TIMEOUT] = {"client_header_timeout", false, set_client_header_timeout},
    [PK_CLIENT_BODY_TIMEOUT] = {"client_body_timeout", false, set_client_body_timeout},
    [PK_SEND_TIMEOUT] = {"send_timeout", false, set_send_timeout},
    [PK_CLIENT_HEADER_MIN_RATE] = {"client_header_min_rate", false, set_client_header_min_rate},
    [PK_CLIENT_BODY_MIN_RATE] = {"client_body_min_rate", false, set_client_body_min_rate},
    [PK_MAX_CONNS_PER_IP] = {"max_conns_per_ip", false, set_max_conns_per_ip},
    [PK_CLIENT_MAX_BODY_SIZE] = {"client_max_body_size", false, set_client_max_body_size},
    [PK_MAX_HEADER_SIZE] = {"max_header_size", false, set_max_header_size},
    [PK_PID_FILE] = {"pid_file", false, set_pid_file},
    [PK_USER] = {"user", false, set_user},
    [PK_SHUTDOWN_TIMEOUT] = {"shutdown_timeout", false, set_shutdown_timeout},
};

/* ---- [admin] keys ---------------------------------------------------- */

/* Whether it clashes with a [proxy] listen is checked in cfg_validate(). */
static int
set_admin_listen(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    if (cfg_parse_addr(val, &st->cfg->admin_addr, why, whylen) == -1)
        return -1;
    st->cfg->admin_line = st->lineno;
    return 0;
}

/* Indexed by enum cfg_admin_key. */
static const struct cfg_key cfg_admin_keys[AK_COUNT] = {
    [AK_LISTEN] = {"listen", false, set_admin_listen},
};

/* ---- [upstream NAME] keys -------------------------------------------- */

/* "ADDR [weight=N] [backup]" */
static int
set_server(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    struct cfg_group *g = &st->cfg->groups[st->group];
    struct cfg_server srv, *s;
    char copy[CFG_MAX_LINE], *tok, *save = NULL;
    bool have_weight = false;
    void *arr;

    memset(&srv, 0, sizeof(srv));
    srv.weight = 1;
    srv.line = st->lineno;
    snprintf(copy, sizeof(copy), "%s", val);
    tok = strtok_r(copy, " \t", &save);
    if (tok == NULL) {
        snprintf(why, whylen, "empty value");
        return -1;
    }
    if (cfg_parse_addr(tok, &srv.addr, why, whylen) == -1)
        return -1;
    if ((srv.addr.ss.ss_family == AF_INET &&
         ((struct sockaddr_in *)&srv.addr.ss)->sin_port == 0) ||
        (srv.addr.ss.ss_family == AF_INET6 &&
         ((struct sockaddr_in6 *)&srv.addr.ss)->sin6_port == 0)) {
        snprintf(why, whylen, "bad port 0 in \"%s\" (1..65535)", tok);
        return -1;
    }
    while ((tok = strtok_r(NULL, " \t", &save)) != NULL) {
        if (strncmp(tok, "weight=", 7) == 0) {
            uint64_t w;

            if (have_weight) {
                snprintf(why, whylen, "weight given twice");
                return -1;
            }
            if (!cfg_all_digits(tok + 7) ||
                buf_parse_u64(tok + 7, strlen(tok + 7), CFG_MAX_WEIGHT, &w) == -1 || w < 1) {
                snprintf(why, whylen, "bad weight \"%s\" (1..%d)", tok + 7, CFG_MAX_WEIGHT);
                return -1;
            }
            srv.weight = (unsigned)w;
            have_weight = true;
        } else if (strcmp(tok, "backup") == 0) {
            if (srv.backup) {
                snprintf(why, whylen, "backup given twice");
                return -1;
            }
            srv.backup = true;
        } else {
            snprintf(why, whylen, "unknown option \"%s\" (weight=N, backup)", tok);
            return -1;
        }
    }
    for (size_t i = 0; i < g->nservers; i++) {
        if (strcmp(g->servers[i].addr.text, srv.addr.text) == 0) {
            snprintf(why, whylen, "duplicate server %s, first at line %d", srv.addr.text,
                     g->servers[i].line);
            return -1;
        }
    }
    if (g->nservers >= CFG_MAX_SERVERS) {
        snprintf(why, whylen, "too many servers (max %d)", CFG_MAX_SERVERS);
        return -1;
    }
    /* the shared table has one slot per server of every group */
    if (st->total_servers >= CFG_MAX_TOTAL_SERVERS) {
        snprintf(why, whylen, "too many servers over all groups (max %d)", CFG_MAX_TOTAL_SERVERS);
        return -1;
    }
    s = cfg_push(g->servers, &g->nservers, sizeof(*s), &arr);
    if (s == NULL) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    g->servers = arr;
    *s = srv;
    st->total_servers++;
    return 0;
}

static int
set_connect_timeout(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_duration(val, true, &st->cfg->groups[st->group].connect_timeout_ms, why, whylen);
}

static int
set_read_timeout(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_duration(val, true, &st->cfg->groups[st->group].read_timeout_ms, why, whylen);
}

static int
set_keepalive(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    uint64_t v;

    if (cfg_number(val, 0, 1024, &v, why, whylen) == -1)
        return -1;
    st->cfg->groups[st->group].keepalive = (unsigned)v;
    return 0;
}

static int
set_preserve_host(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_bool(val, &st->cfg->groups[st->group].preserve_host, why, whylen);
}

static int
set_balance(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    /* indexed by enum cfg_balance */
    static const char *const names[] = {"round_robin", "least_conn", "random", "hash"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(val, names[i]) == 0) {
            st->cfg->groups[st->group].balance = (enum cfg_balance)i;
            return 0;
        }
    }
    snprintf(why, whylen, "bad balance \"%s\" (round_robin|least_conn|random|hash)", val);
    return -1;
}

/* RFC 9110 tchar: what a header field name is made of. */
static bool
cfg_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/*
 * "client_ip" or "header:NAME". Whether balance = hash goes with it is
 * checked in cfg_validate(), since balance may come later in the section.
 */
static int
set_hash_key(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    struct cfg_group *g = &st->cfg->groups[st->group];
    const char *name;
    size_t n;

    if (strcmp(val, "client_ip") == 0) {
        g->hash_key = CFG_HASH_CLIENT_IP;
        return 0;
    }
    if (strncmp(val, "header:", 7) != 0) {
        snprintf(why, whylen, "bad hash key \"%s\" (client_ip or header:NAME)", val);
        return -1;
    }
    name = val + 7;
    n = strlen(name);
    if (n == 0) {
        snprintf(why, whylen, "missing header name in \"%s\" (header:NAME)", val);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!cfg_tchar(name[i])) {
            snprintf(why, whylen,
                     "bad header name \"%s\" (a token: letters, digits and "
                     "!#$%%&'*+-.^_`|~)",
                     name);
            return -1;
        }
    }
    if (n >= sizeof(g->hash_header)) {
        snprintf(why, whylen, "header name too long (%zu characters, max %zu)", n,
                 sizeof(g->hash_header) - 1);
        return -1;
    }
    g->hash_key = CFG_HASH_HEADER;
    memcpy(g->hash_header, name, n + 1);
    return 0;
}

static int
set_retries(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    uint64_t v;

    if (cfg_number(val, 0, 10, &v, why, whylen) == -1)
        return -1;
    st->cfg->groups[st->group].retries = (unsigned)v;
    return 0;
}

static int
set_health_check(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_bool(val, &st->cfg->groups[st->group].health_check, why, whylen);
}

/* Goes verbatim into the probe's request line, hence visible ASCII only. */
static int
set_health_path(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    struct cfg_group *g = &st->cfg->groups[st->group];
    size_t n = strlen(val);

    if (val[0] != '/') {
        snprintf(why, whylen, "bad path \"%s\": must start with '/'", val);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)val[i];

        if (c < 0x21 || c > 0x7e) {
            snprintf(why, whylen,
                     "bad character 0x%02x at byte %zu of the path (visible ASCII "
                     "only)",
                     c, i + 1);
            return -1;
        }
    }
    if (n >= sizeof(g->health_path)) {
        snprintf(why, whylen, "path too long (%zu bytes, max %zu)", n, sizeof(g->health_path) - 1);
        return -1;
    }
    memcpy(g->health_path, val, n + 1);
    return 0;
}

static int
set_health_interval(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_duration(val, true, &st->cfg->groups[st->group].health_interval_ms, why, whylen);
}

static int
set_health_timeout(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_duration(val, true, &st->cfg->groups[st->group].health_timeout_ms, why, whylen);
}

static int
set_rise(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    uint64_t v;

    if (cfg_number(val, 1, 100, &v, why, whylen) == -1)
        return -1;
    st->cfg->groups[st->group].rise = (unsigned)v;
    return 0;
}

static int
set_fall(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    uint64_t v;

    if (cfg_number(val, 1, 100, &v, why, whylen) == -1)
        return -1;
    st->cfg->groups[st->group].fall = (unsigned)v;
    return 0;
}

/* "N" or "N-M", 100 <= N <= M <= 599. */
static int
set_health_status(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    struct cfg_group *g = &st->cfg->groups[st->group];
    const char *dash = strchr(val, '-');
    size_t nlen = dash != NULL ? (size_t)(dash - val) : strlen(val);
    const char *m = dash != NULL ? dash + 1 : val;
    uint64_t lo, hi;

    /* buf_parse_u64() takes digits only, so "", "+2" and "2xx" fail here */
    if (buf_parse_u64(val, nlen, 599, &lo) == -1 || lo < 100 ||
        buf_parse_u64(m, strlen(m), 599, &hi) == -1 || hi < lo) {
        snprintf(why, whylen, "bad status range \"%s\" (N or N-M, 100 <= N <= M <= 599)", val);
        return -1;
    }
    g->health_status_min = (unsigned)lo;
    g->health_status_max = (unsigned)hi;
    return 0;
}

static int
set_max_fails(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    uint64_t v;

    if (cfg_number(val, 0, 1000, &v, why, whylen) == -1)
        return -1;
    st->cfg->groups[st->group].max_fails = (unsigned)v;
    return 0;
}

static int
set_fail_window(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_duration(val, true, &st->cfg->groups[st->group].fail_window_ms, why, whylen);
}

static int
set_cooldown(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_duration(val, true, &st->cfg->groups[st->group].cooldown_ms, why, whylen);
}

static int
set_max_ejected_percent(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    uint64_t v;

    if (cfg_number(val, 0, 100, &v, why, whylen) == -1)
        return -1;
    st->cfg->groups[st->group].max_ejected_percent = (unsigned)v;
    return 0;
}

static int
set_health_interval_down(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_duration(val, true, &st->cfg->groups[st->group].health_interval_down_ms, why,
                        whylen);
}

static int
set_fail_on_5xx(struct cfg_state *st, const char *val, char *why, size_t whylen)
{
    return cfg_bool(val, &st->cfg->groups[st->group].fail_on_5xx, why, whylen);
}

/* Indexed by enum cfg_group_key. */
static const struct cfg_key cfg_group_keys[GK_COUNT] = {
    [GK_SERVER] = {"server", true, set_server},
    [GK_CONNECT_TIMEOUT] = {"connect_timeout", false, set_connect_timeout},
    [GK_READ_TIMEOUT] = {"read_timeout", false, set_read_timeout},
    [GK_KEEPALIVE] = {"keepalive", false, set_keepalive},
    [GK_PRESERVE_HOST] = {"preserve_host", false, set_preserve_host},
    [GK_BALANCE] = {"balance", false, set_balance},
    [GK_HASH_KEY] = {"hash_key", false, set_hash_key},
    [GK_RETRIES] = {"retries", false, set_retries},
    [GK_HEALTH_CHECK] = {"health_check", false, set_health_check},
    [GK_HEALTH_PATH] = {"health_path", false, set_health_path},
    [GK_HEALTH_INTERVAL] = {"health_interval", false, set_health_interval},
    [GK_HEALTH_TIMEOUT] = {"health_timeout", false, set_health_timeout},
    [GK_RISE] = {"rise", false, set_rise},
    [GK_FALL] = {"fall", false, set_fall},
    [GK_HEALTH_STATUS] = {"health_status", false, set_health_status},
    [GK_MAX_FAILS] = {"max_fails", false, set_max_fails},
    [GK_FAIL_WINDOW] = {"fail_window", false, set_fail_window},
    [GK_COOLDOWN] = {"cooldown", false, set_cooldown},
    [GK_FAIL_ON_5XX] = {"fail_on_5xx", false, set_fail_on_5xx},
    [GK_HEALTH_INTERVAL_DOWN] = {"health_interval_down", false, set_health_interval_down},
    [GK_MAX_EJECTED_PERCENT] = {"max_ejected_percent", false, set_max_ejected_percent},
};

/* ---- inih callbacks -------------------------------------------------- */

/*
 * inih handler: one "key = value" of the current section (tracked by the
 * reader; inih's <section> argument is ignored, see the top of the file).
 * Returns 0 (error) after recording the message.
 */
static int
cfg_handler(void *user, const char *section, const char *key, const char *val)
{
    struct cfg_state *st = user;
    const struct cfg_key *keys;
    int *seen;
    size_t nkeys;
    char why[512];

    (void)section;
    if (st->sec == CFG_SEC_NONE) {
        cfg_fail(st, st->lineno, "%s: key outside of any section", key);
        return 0;
    }
    if (st->sec == CFG_SEC_PROXY) {
        keys = cfg_proxy_keys;
        nkeys = PK_COUNT;
        seen = st->proxy_seen;
    } else if (st->sec == CFG_SEC_ADMIN) {
        keys = cfg_admin_keys;
        nkeys = AK_COUNT;
        seen = st->admin_seen;
    } else {
        keys = cfg_group_keys;
        nkeys = GK_COUNT;
        seen = st->group_seen[st->group];
    }
    for (size_t i = 0; i < nkeys; i++) {
        if (strcmp(key, keys[i].name) != 0)
            continue;
        if (!keys[i].repeatable && seen[i] != 0) {
            cfg_fail(st, st->lineno, "[%s] %s: given twice, first at line %d", st->sectext, key,
                     seen[i]);
            return 0;
        }
        if (seen[i] == 0)
            seen[i] = st->lineno;
        if (*val == '\0') {
            cfg_fail(st, st->lineno, "[%s] %s: empty value", st->sectext, key);
            return 0;
        }
        if (keys[i].set(st, val, why, sizeof(why)) == -1) {
            cfg_fail(st, st->lineno, "[%s] %s: %s", st->sectext, key, why);
            return 0;
        }
        return 1;
    }
    cfg_fail(st, st->lineno, "[%s] %s: unknown key", st->sectext, key);
    return 0;
}

/* A section header line <p> (at its '['): switches the current section. */
static void
cfg_section(struct cfg_state *st, const char *p)
{
    struct config *cfg = st->cfg;
    const char *end = strchr(p, ']'), *rest, *b, *e;
    char text[CFG_MAX_LINE];
    struct cfg_group *g;
    void *arr;

    if (end == NULL) {
        cfg_fail(st, st->lineno, "syntax error: no ']' after '['");
        return;
    }
    rest = end + 1 + strspn(end + 1, " \t\r\n");
    if (*rest != '\0' && *rest != ';' && *rest != '#') {
        cfg_fail(st, st->lineno, "syntax error: text after ']'");
        return;
    }
    b = p + 1 + strspn(p + 1, " \t");
    for (e = end; e > b && (e[-1] == ' ' || e[-1] == '\t'); e--)
        ;
    snprintf(text, sizeof(text), "%.*s", (int)(e - b), b);

    st->secline = st->lineno;
    if (strcmp(text, "proxy") == 0) {
        if (st->proxy_line != 0) {
            cfg_fail(st, st->lineno, "[proxy]: section given twice, first at line %d",
                     st->proxy_line);
            return;
        }
        st->sec = CFG_SEC_PROXY;
        st->proxy_line = st->lineno;
        snprintf(st->sectext, sizeof(st->sectext), "proxy");
        return;
    }
    if (strcmp(text, "admin") == 0) {
        if (st->admin_secline != 0) {
            cfg_fail(st, st->lineno, "[admin]: section given twice, first at line %d",
                     st->admin_secline);
            return;
        }
        st->sec = CFG_SEC_ADMIN;
        st->admin_secline = st->lineno;
        cfg->admin = true;
        snprintf(st->sectext, sizeof(st->sectext), "admin");
        return;
    }
    if (strncmp(text, "upstream", 8) != 0 ||
        (text[8] != '\0' && text[8] != ' ' && text[8] != '\t')) {
        cfg_fail(st, st->lineno, "[%s]: unknown section (proxy, admin, upstream NAME)", text);
        return;
    }
    b = text + 8 + strspn(text + 8, " \t");
    if (*b == '\0') {
        cfg_fail(st, st->lineno, "[upstream]: missing group name ([upstream NAME])");
        return;
    }
    if (!cfg_valid_name(b)) {
        cfg_fail(st, st->lineno,
                 "[%s]: bad group name \"%s\" ([A-Za-z0-9_.-], 1 to %d characters)", text, b,
                 CFG_NAME_MAX - 1);
        return;
    }
    for (size_t i = 0; i < cfg->ngroups; i++) {
        if (strcmp(cfg->groups[i].name, b) == 0) {
            cfg_fail(st, st->lineno, "[upstream %s]: duplicate group name, first at line %d", b,
                     cfg->groups[i].line);
            return;
        }
    }
    if (cfg->ngroups >= CFG_MAX_GROUPS) {
        cfg_fail(st, st->lineno, "[upstream %s]: too many upstream groups (max %d)", b,
                 CFG_MAX_GROUPS);
        return;
    }
    g = cfg_push(cfg->groups, &cfg->ngroups, sizeof(*g), &arr);
    if (g == NULL) {
        cfg_fail(st, st->lineno, "out of memory");
        return;
    }
    cfg->groups = arr;
    snprintf(g->name, sizeof(g->name), "%s", b);
    g->connect_timeout_ms = 3000;
    g->read_timeout_ms = 60000;
    g->keepalive = 16;
    g->preserve_host = false;
    g->balance = CFG_BAL_ROUND_ROBIN;
    g->hash_key = CFG_HASH_CLIENT_IP;
    g->retries = 2;
    g->health_check = true;
    snprintf(g->health_path, sizeof(g->health_path), "/health");
    g->health_interval_ms = 2000;
    g->health_interval_down_ms = 1000;
    g->health_timeout_ms = 1000;
    g->rise = 2;
    g->fall = 3;
    g->health_status_min = 200;
    g->health_status_max = 399;
    g->max_fails = 5;
    g->fail_window_ms = 10000;
    g->cooldown_ms = 10000;
    g->max_ejected_percent = 50;
    g->fail_on_5xx = false;
    g->line = st->lineno;
    st->sec = CFG_SEC_UPSTREAM;
    st->group = cfg->ngroups - 1;
    snprintf(st->sectext, sizeof(st->sectext), "upstream %s", b);
}

/*
 * Looks at the line inih is about to parse: handles section headers, and
 * rejects lines inih would misread ("listen 1.2.3.4:80" has no '=' but a
 * ':', which inih takes as "key: value").
 */
static void
cfg_inspect(struct cfg_state *st, const char *line)
{
    const char *p = line;

    if (st->lineno == 1 && strncmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3; /* UTF-8 BOM, which inih skips too */
    p += strspn(p, " \t\r\n");
    if (*p == '\0' || *p == ';' || *p == '#')
        return;
    if (*p == '[') {
        cfg_section(st, p);
        return;
    }
    if (*p == '=') {
        cfg_fail(st, st->lineno, "syntax error: no key before '='");
        return;
    }
    for (const char *q = p; *q != '\0'; q++) {
        if (*q == '=')
            return;
        if (*q == ':' || (*q == ';' && (q[-1] == ' ' || q[-1] == '\t')))
            break;
    }
    cfg_fail(st, st->lineno, "syntax error: expected key = value");
}

/*
 * inih reader: fgets() over a FILE or a string, counting lines. A line that
 * does not fit in <num> bytes with its newline is an error: inih would
 * take its tail for another line, and the line numbers would be off.
 */
static char *
cfg_reader(char *str, int num, void *stream)
{
    struct cfg_state *st = stream;
    bool too_long = false;
    size_t len;

    if (st->failed || num < 3)
        return NULL;
    if (st->fp != NULL) {
        if (fgets(str, num, st->fp) == NULL) {
            if (ferror(st->fp))
                st->read_errno = errno != 0 ? errno : EIO;
            return NULL;
        }
        len = strlen(str);
        if (len > 0 && str[len - 1] != '\n') {
            int c = getc(st->fp);

            if (c != EOF) {
                ungetc(c, st->fp);
                too_long = true;
            }
        }
    } else {
        const char *nl;

        if (*st->text == '\0')
            return NULL;
        nl = strchr(st->text, '\n');
        len = nl != NULL ? (size_t)(nl - st->text) + 1 : strlen(st->text);
        if (len < (size_t)num) {
            memcpy(str, st->text, len);
            str[len] = '\0';
        } else {
            too_long = true;
        }
        st->text += len;
    }
    st->lineno++;
    if (too_long) {
        cfg_fail(st, st->lineno, "line too long (max %d bytes)", num - 3);
        return NULL;
    }
    cfg_inspect(st, str);
    return st->failed ? NULL : str;
}

/* ---- loading --------------------------------------------------------- */

static unsigned short
cfg_port(const struct cfg_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

static bool
cfg_wildcard(const struct cfg_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
}

/*
 * Whether binding <a> and <b> would take the same connections. Listeners
 * are bound with SO_REUSEPORT, so such a clash would not fail at bind()
 * time: the two sockets would silently share, or steal, traffic. Port 0
 * picks a distinct free port for each. A wildcard takes its port on every
 * address of its family ("[::]" on IPv4 too: dual stack).
 */
static bool
cfg_addr_overlap(const struct cfg_addr *a, const struct cfg_addr *b)
{
    if (cfg_port(a) == 0 || cfg_port(a) != cfg_port(b))
        return false;
    if (a->ss.ss_family != b->ss.ss_family)
        return (a->ss.ss_family == AF_INET6 && cfg_wildcard(a)) ||
               (b->ss.ss_family == AF_INET6 && cfg_wildcard(b));
    if (cfg_wildcard(a) || cfg_wildcard(b))
        return true;
    if (a->ss.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)&b->ss)->sin_addr.s_addr;
    return IN6_ARE_ADDR_EQUAL(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr,
                              &((const struct sockaddr_in6 *)&b->ss)->sin6_addr);
}

/* [admin]: listen is required and must not take a [proxy] listener's traffic. */
static int
cfg_validate_admin(struct cfg_state *st)
{
    struct config *cfg = st->cfg;

    if (!cfg->admin)
        return 0;
    if (st->admin_seen[AK_LISTEN] == 0) {
        cfg_fail(st, st->admin_secline, "[admin] listen: missing, listen = ADDR is required");
        return -1;
    }
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct cfg_listener *l = &cfg->listeners[i];

        if (!cfg_addr_overlap(&cfg->admin_addr, &l->addr))
            continue;
        if (strcmp(cfg->admin_addr.text, l->addr.text) == 0)
            cfg_fail(st, cfg->admin_line, "[admin] listen: %s is also a [proxy] listen (line %d)",
                     l->addr.text, l->line);
        else
            cfg_fail(st, cfg->admin_line,
                     "[admin] listen: %s overlaps the [proxy] listen %s (line %d)",
                     cfg->admin_addr.text, l->addr.text, l->line);
        return -1;
    }
    return 0;
}

/* Online CPUs, at least 1 and at most CFG_MAX_WORKERS (so 128 x CPUs fits). */
static unsigned
cfg_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    if (n < 1)
        return 1;
    return n > CFG_MAX_WORKERS ? CFG_MAX_WORKERS : (unsigned)n;
}

static unsigned
cfg_umin(unsigned a, unsigned b)
{
    return a < b ? a : b;
}

static unsigned
cfg_umax(unsigned a, unsigned b)
{
    return a > b ? a : b;
}

/*
 * The worker pool, once every [proxy] key is known (`workers` may come
 * after the keys it forbids, so errors are reported at their own lines).
 *
 * workers = N: min_workers = max_workers = N; min_spare and max_spare stay
 * 0 (a fixed pool keeps no spares); the four pool keys are errors.
 *
 * workers = auto: the keys not given get defaults from the CPU count, bent
 * so that a default never contradicts a given value: a given max_workers
 * below the default min_workers lowers min_workers to it (rather than
 * failing); the default max_spare rises above a given min_spare and stays
 * within max_workers; the default min_spare stays below max_spare. The
 * default max_workers is never raised: it bounds memory and processes, so a
 * min_workers or max_spare above it must come with an explicit max_workers.
 * What is left to fail is explicit values that contradict each other (or
 * the max_workers default), each reported at the line of the key named.
 * <workers>, the number of slots, is max_workers.
 */
static int
cfg_validate_pool(struct cfg_state *st)
{
    static const enum cfg_proxy_key pool_keys[] = {PK_MIN_WORKERS, PK_MAX_WORKERS, PK_MIN_SPARE,
                                                   PK_MAX_SPARE};
    struct config *cfg = st->cfg;
    const int *seen = st->proxy_seen;
    unsigned cpus = cfg_cpus(), v;

    if (!cfg->workers_auto) {
        int line = 0;
        enum cfg_proxy_key first = PK_MIN_WORKERS;

        for (size_t i = 0; i < sizeof(pool_keys) / sizeof(pool_keys[0]); i++) {
            int l = seen[pool_keys[i]];

            if (l != 0 && (line == 0 || l < line)) {
                line = l;
                first = pool_keys[i];
            }
        }
        if (line != 0) {
            cfg_fail(st, line, "[proxy] %s: only with workers = auto", cfg_proxy_keys[first].name);
            return -1;
        }
        cfg->min_workers = cfg->max_workers = cfg->workers;
        cfg->min_spare = cfg->max_spare = 0;
        return 0;
    }

    if (seen[PK_MAX_WORKERS] == 0)
        cfg->max_workers = cfg_umin(128 * cpus, CFG_MAX_WORKERS);
    if (seen[PK_MIN_WORKERS] == 0)
        cfg->min_workers = cfg_umin(cfg_umax(2, cpus), cfg->max_workers);
    if (seen[PK_MAX_SPARE] == 0) {
        v = cfg_umax(8, 4 * cpus);
        if (seen[PK_MIN_SPARE] != 0)
            v = cfg_umax(v, cfg->min_spare + 1);
        cfg->max_spare = cfg_umin(v, cfg->max_workers); /* >= 1: so is max_workers */
    }
    if (seen[PK_MIN_SPARE] == 0)
        cfg->min_spare = cfg_umin(cfg_umax(2, cpus), cfg->max_spare - 1);

    /* Given the defaults above, each failure below implies its key was given. */
    if (cfg->min_workers > cfg->max_workers) {
        cfg_fail(st, seen[PK_MIN_WORKERS],
                 "[proxy] min_workers: min_workers %u is above max_workers %u", cfg->min_workers,
                 cfg->max_workers);
        return -1;
    }
    if (cfg->max_spare > cfg->max_workers) {
        cfg_fail(st, seen[PK_MAX_SPARE], "[proxy] max_spare: max_spare %u is above max_workers %u",
                 cfg->max_spare, cfg->max_workers);
        return -1;
    }
    if (cfg->min_spare >= cfg->max_spare) {
        /* without a max_spare, only max_workers (its bound) can be in the way */
        if (seen[PK_MAX_SPARE] != 0)
            cfg_fail(st, seen[PK_MIN_SPARE],
                     "[proxy] min_spare: min_spare %u is not below max_spare %u", cfg->min_spare,
                     cfg->max_spare);
        else
            cfg_fail(st, seen[PK_MIN_SPARE],
                     "[proxy] min_spare: min_spare %u is not below max_workers %u", cfg->min_spare,
                     cfg->max_workers);
        return -1;
    }
    cfg->workers = cfg->max_workers;
    return 0;
}

/* The whole-file checks, once every line was read. */
static int
cfg_validate(struct cfg_state *st)
{
    struct config *cfg = st->cfg;
    int pline = st->proxy_line != 0 ? st->proxy_line : 1;
    size_t i, j;

    if (cfg->nlisteners == 0) {
        cfg_fail(st, pline, "[proxy] listen: missing, at least one listen = is required");
        return -1;
    }
    if (st->proxy_seen[PK_UPSTREAM] == 0) {
        cfg_fail(st, pline, "[proxy] upstream: missing, upstream = NAME is required");
        return -1;
    }
    for (i = 0; i < cfg->ngroups; i++)
        if (strcmp(cfg->groups[i].name, st->upstream) == 0)
            break;
    if (i == cfg->ngroups) {
        cfg_fail(st, st->proxy_seen[PK_UPSTREAM], "[proxy] upstream: no [upstream %s] section",
                 st->upstream);
        return -1;
    }
    cfg->group = i;
    if (cfg_validate_pool(st) == -1)
        return -1;
    if (cfg_validate_admin(st) == -1)
        return -1;
    for (i = 0; i < cfg->ngroups; i++) {
        struct cfg_group *g = &cfg->groups[i];

        if (g->nservers == 0) {
            cfg_fail(st, g->line, "[upstream %s]: no server", g->name);
            return -1;
        }
        for (j = 0; j < g->nservers; j++)
            if (!g->servers[j].backup)
                break;
        if (j == g->nservers) {
            cfg_fail(st, g->line, "[upstream %s]: only backup servers", g->name);
            return -1;
        }
        /* Unset, it never probes a down server less often than an up one. */
        if (st->group_seen[i][GK_HEALTH_INTERVAL_DOWN] == 0 &&
            g->health_interval_ms < g->health_interval_down_ms)
            g->health_interval_down_ms = g->health_interval_ms;
    }
    return 0;
}

/* Runs the parse over <st> (whose fp or text is set). */
static struct config *
cfg_run(struct cfg_state *st)
{
    static char start_comments[] = ";#", inline_comments[] = ";";
    struct config *cfg;
    int rc;

    cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        snprintf(st->err, st->errlen, "%s: out of memory", st->name);
        return NULL;
    }
    st->cfg = cfg;
    cfg->path = strdup(st->name);
    cfg->error_log = strdup("stderr");
    cfg->access_log = strdup("stderr");
    if (cfg->path == NULL || cfg->error_log == NULL || cfg->access_log == NULL) {
        snprintf(st->err, st->errlen, "%s: out of memory", st->name);
        goto fail;
    }
    cfg->workers_auto = true; /* the pool's numbers: cfg_validate_pool() */
    cfg->log_level = CFG_LOG_INFO;
    cfg->keepalive_timeout_ms = 5000;
    cfg->keepalive_requests = 1000;
    cfg->client_header_timeout_ms = 10000;
    cfg->client_body_timeout_ms = 30000;
    cfg->send_timeout_ms = 30000;
    cfg->client_header_min_rate = 256;
    cfg->client_body_min_rate = 256;
    cfg->max_conns_per_ip = 0;
    cfg->client_max_body_size = 1024 * 1024;
    cfg->max_header_size = 16 * 1024;
    cfg->shutdown_timeout_ms = 30000;

    /* inih's runtime options (globals in Debian's build): set them all. */
    ini_allow_multiline = false; /* one line is one key */
    ini_allow_bom = true;
    ini_start_comment_prefixes = start_comments;
    ini_allow_inline_comments = true; /* "key = value   ; comment" */
    ini_inline_comment_prefixes = inline_comments;
    ini_use_stack = true;
    ini_max_line = CFG_MAX_LINE;
    ini_allow_realloc = false;
    ini_stop_on_first_error = true;
    ini_allow_no_value = false;

    rc = ini_parse_stream(cfg_reader, st, cfg_handler, st);
    if (st->failed)
        goto fail;
    if (st->read_errno != 0) {
        snprintf(st->err, st->errlen, "%s: read error: %s", st->name, strerror(st->read_errno));
        goto fail;
    }
    if (rc > 0) {
        snprintf(st->err, st->errlen, "%s:%d: syntax error", st->name, rc);
        goto fail;
    }
    if (rc < 0) {
        snprintf(st->err, st->errlen, "%s: cannot parse (inih error %d)", st->name, rc);
        goto fail;
    }
    if (cfg_validate(st) == -1)
        goto fail;
    return cfg;

fail:
    cfg_free(cfg);
    return NULL;
}

struct config *
cfg_load(const char *path, char *err, size_t errlen)
{
    struct cfg_state st;
    struct config *cfg;

    memset(&st, 0, sizeof(st));
    st.name = path;
    st.err = err;
    st.errlen = errlen;
    st.fp = fopen(path, "r");
    if (st.fp == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    cfg = cfg_run(&st);
    fclose(st.fp);
    return cfg;
}

struct config *
cfg_load_string(const char *text, const char *name, char *err, size_t errlen)
{
    struct cfg_state st;

    memset(&st, 0, sizeof(st));
    st.name = name;
    st.err = err;
    st.errlen = errlen;
    st.text = text;
    return cfg_run(&st);
}

void
cfg_free(struct config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->ngroups; i++)
        free(cfg->groups[i].servers);
    free(cfg->groups);
    free(cfg->listeners);
    free(cfg->error_log);
    free(cfg->access_log);
    free(cfg->pid_file);
    free(cfg->user);
    free(cfg->path);
    free(cfg);
}

/* ---- cfg_diff -------------------------------------------------------- */

struct cfg_diff_out {
    void (*log)(void *arg, const char *line);
    void *arg;
    int n;
};

__attribute__((format(printf, 2, 3))) static void
cfg_dline(struct cfg_diff_out *d, const char *fmt, ...)
{
    /* two paths of up to a line each, and some words */
    char line[2 * CFG_MAX_LINE + 128];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    d->log(d->arg, line);
    d->n++;
}

/* "KEY OLD -> NEW" for each kind of value; <pfx> is "" or "[app] ". */
static void
cfg_dms(struct cfg_diff_out *d, const char *pfx, const char *key, int64_t a, int64_t b)
{
    if (a != b)
        cfg_dline(d, "%s%s %lld ms -> %lld ms", pfx, key, (long long)a, (long long)b);
}

static void
cfg_duint(struct cfg_diff_out *d, const char *pfx, const char *key, uint64_t a, uint64_t b)
{
    if (a != b)
        cfg_dline(d, "%s%s %llu -> %llu", pfx, key, (unsigned long long)a, (unsigned long long)b);
}

static void
cfg_dbytes(struct cfg_diff_out *d, const char *key, uint64_t a, uint64_t b)
{
    if (a != b)
        cfg_dline(d, "%s %llu bytes -> %llu bytes", key, (unsigned long long)a,
                  (unsigned long long)b);
}

/* Strings that may be NULL ("none": the key is not set). */
static void
cfg_dstr(struct cfg_diff_out *d, const char *pfx, const char *key, const char *a, const char *b)
{
    if ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0))
        cfg_dline(d, "%s%s %s -> %s", pfx, key, a != NULL ? a : "none", b != NULL ? b : "none");
}

static void
cfg_dbool(struct cfg_diff_out *d, const char *pfx, const char *key, bool a, bool b,
          const char *yes, const char *no)
{
    if (a != b)
        cfg_dline(d, "%s%s %s -> %s", pfx, key, a ? yes : no, b ? yes : no);
}

static const char *
cfg_balance_name(enum cfg_balance b)
{
    switch (b) {
    case CFG_BAL_ROUND_ROBIN:
        return "round_robin";
    case CFG_BAL_LEAST_CONN:
        return "least_conn";
    case CFG_BAL_RANDOM:
        return "random";
    case CFG_BAL_HASH:
        return "hash";
    }
    return "?";
}

static const char *
cfg_level_name(enum cfg_log_level l)
{
    switch (l) {
    case CFG_LOG_ERROR:
        return "error";
    case CFG_LOG_WARN:
        return "warn";
    case CFG_LOG_INFO:
        return "info";
    case CFG_LOG_DEBUG:
        return "debug";
    }
    return "?";
}

/* hash_key as written in the file: "client_ip" or "header:NAME". */
static void
cfg_hash_key_text(const struct cfg_group *g, char *out, size_t outlen)
{
    if (g->hash_key == CFG_HASH_HEADER)
        snprintf(out, outlen, "header:%s", g->hash_header);
    else
        snprintf(out, outlen, "client_ip");
}

static const struct cfg_server *
cfg_find_server(const struct cfg_group *g, const char *text)
{
    for (size_t i = 0; i < g->nservers; i++)
        if (strcmp(g->servers[i].addr.text, text) == 0)
            return &g->servers[i];
    return NULL;
}

static const struct cfg_group *
cfg_find_group(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->ngroups; i++)
        if (strcmp(cfg->groups[i].name, name) == 0)
            return &cfg->groups[i];
    return NULL;
}

static bool
cfg_has_listener(const struct config *cfg, const char *text)
{
    for (size_t i = 0; i < cfg->nlisteners; i++)
        if (strcmp(cfg->listeners[i].addr.text, text) == 0)
            return true;
    return false;
}

/* workers as written in the file: "auto" or N. */
static void
cfg_workers_text(const struct config *cfg, char *out, size_t outlen)
{
    if (cfg->workers_auto)
        snprintf(out, outlen, "auto");
    else
        snprintf(out, outlen, "%u", cfg->workers);
}

/*
 * The pool: "workers 4 -> 8", "workers auto -> 8", "workers 8 -> auto"; the
 * adaptive pool's bounds only when both are auto (a fixed pool has none).
 */
static void
cfg_diff_workers(struct cfg_diff_out *d, const struct config *a, const struct config *b)
{
    char wa[16], wb[16];

    if (a->workers_auto && b->workers_auto) {
        cfg_duint(d, "", "min_workers", a->min_workers, b->min_workers);
        cfg_duint(d, "", "max_workers", a->max_workers, b->max_workers);
        cfg_duint(d, "", "min_spare", a->min_spare, b->min_spare);
        cfg_duint(d, "", "max_spare", a->max_spare, b->max_spare);
        return;
    }
    if (a->workers_auto == b->workers_auto && a->workers == b->workers)
        return;
    cfg_workers_text(a, wa, sizeof(wa));
    cfg_workers_text(b, wb, sizeof(wb));
    cfg_dline(d, "workers %s -> %s", wa, wb);
}

/* One group present in both configs: servers (matched by address), then keys. */
static void
cfg_diff_group(struct cfg_diff_out *d, const struct cfg_group *a, const struct cfg_group *b)
{
    char pfx[CFG_NAME_MAX + 4], ka[CFG_NAME_MAX + 8], kb[CFG_NAME_MAX + 8];

    snprintf(pfx, sizeof(pfx), "[%s] ", a->name);
    for (size_t i = 0; i < a->nservers; i++)
        if (cfg_find_server(b, a->servers[i].addr.text) == NULL)
            cfg_dline(d, "%sserver removed %s", pfx, a->servers[i].addr.text);
    for (size_t i = 0; i < b->nservers; i++)
        if (cfg_find_server(a, b->servers[i].addr.text) == NULL)
            cfg_dline(d, "%sserver added %s", pfx, b->servers[i].addr.text);
    for (size_t i = 0; i < b->nservers; i++) {
        const struct cfg_server *ns = &b->servers[i];
        const struct cfg_server *os = cfg_find_server(a, ns->addr.text);

        if (os == NULL)
            continue;
        if (os->weight != ns->weight)
            cfg_dline(d, "%s%s weight %u -> %u", pfx, ns->addr.text, os->weight, ns->weight);
        if (os->backup != ns->backup)
            cfg_dline(d, "%s%s now %s", pfx, ns->addr.text, ns->backup ? "backup" : "primary");
    }
    cfg_dms(d, pfx, "connect_timeout", a->connect_timeout_ms, b->connect_timeout_ms);
    cfg_dms(d, pfx, "read_timeout", a->read_timeout_ms, b->read_timeout_ms);
    cfg_duint(d, pfx, "keepalive", a->keepalive, b->keepalive);
    cfg_dbool(d, pfx, "preserve_host", a->preserve_host, b->preserve_host, "yes", "no");
    if (a->balance != b->balance)
        cfg_dline(d, "%sbalance %s -> %s", pfx, cfg_balance_name(a->balance),
                  cfg_balance_name(b->balance));
    cfg_hash_key_text(a, ka, sizeof(ka));
    cfg_hash_key_text(b, kb, sizeof(kb));
    cfg_dstr(d, pfx, "hash_key", ka, kb);
    cfg_duint(d, pfx, "retries", a->retries, b->retries);
    cfg_dbool(d, pfx, "health_check", a->health_check, b->health_check, "on", "off");
    cfg_dstr(d, pfx, "health_path", a->health_path, b->health_path);
    cfg_dms(d, pfx, "health_interval", a->health_interval_ms, b->health_interval_ms);
    cfg_dms(d, pfx, "health_interval_down", a->health_interval_down_ms,
            b->health_interval_down_ms);
    cfg_dms(d, pfx, "health_timeout", a->health_timeout_ms, b->health_timeout_ms);
    cfg_duint(d, pfx, "rise", a->rise, b->rise);
    cfg_duint(d, pfx, "fall", a->fall, b->fall);
    if (a->health_status_min != b->health_status_min ||
        a->health_status_max != b->health_status_max)
        cfg_dline(d, "%shealth_status %u-%u -> %u-%u", pfx, a->health_status_min,
                  a->health_status_max, b->health_status_min, b->health_status_max);
    cfg_duint(d, pfx, "max_fails", a->max_fails, b->max_fails);
    cfg_dms(d, pfx, "fail_window", a->fail_window_ms, b->fail_window_ms);
    cfg_dms(d, pfx, "cooldown", a->cooldown_ms, b->cooldown_ms);
    cfg_duint(d, pfx, "max_ejected_percent", a->max_ejected_percent, b->max_ejected_percent);
    cfg_dbool(d, pfx, "fail_on_5xx", a->fail_on_5xx, b->fail_on_5xx, "yes", "no");
}

/*
 * Order: listeners, [proxy] keys in the order of the file format, [admin],
 * groups removed then added, then each group kept (in <new>'s order).
 * Line numbers and the file name are not compared: they are not behaviour.
 */
int
cfg_diff(const struct config *old, const struct config *new,
         void (*log)(void *arg, const char *line), void *arg)
{
    struct cfg_diff_out d = {log, arg, 0};
    const char *oa, *na;

    for (size_t i = 0; i < old->nlisteners; i++)
        if (!cfg_has_listener(new, old->listeners[i].addr.text))
            cfg_dline(&d, "listener removed %s", old->listeners[i].addr.text);
    for (size_t i = 0; i < new->nlisteners; i++)
        if (!cfg_has_listener(old, new->listeners[i].addr.text))
            cfg_dline(&d, "listener added %s", new->listeners[i].addr.text);
    cfg_diff_workers(&d, old, new);
    cfg_dstr(&d, "", "upstream", old->groups[old->group].name, new->groups[new->group].name);
    cfg_dstr(&d, "", "error_log", old->error_log, new->error_log);
    cfg_dstr(&d, "", "access_log", old->access_log, new->access_log);
    if (old->log_level != new->log_level)
        cfg_dline(&d, "log_level %s -> %s", cfg_level_name(old->log_level),
                  cfg_level_name(new->log_level));
    cfg_dms(&d, "", "keepalive_timeout", old->keepalive_timeout_ms, new->keepalive_timeout_ms);
    cfg_duint(&d, "", "keepalive_requests", old->keepalive_requests, new->keepalive_requests);
    cfg_dms(&d, "", "client_header_timeout", old->client_header_timeout_ms,
            new->client_header_timeout_ms);
    cfg_dms(&d, "", "client_body_timeout", old->client_body_timeout_ms,
            new->client_body_timeout_ms);
    cfg_dms(&d, "", "send_timeout", old->send_timeout_ms, new->send_timeout_ms);
    cfg_duint(&d, "", "client_header_min_rate", old->client_header_min_rate,
              new->client_header_min_rate);
    cfg_duint(&d, "", "client_body_min_rate", old->client_body_min_rate,
              new->client_body_min_rate);
    cfg_duint(&d, "", "max_conns_per_ip", old->max_conns_per_ip, new->max_conns_per_ip);
    cfg_dbytes(&d, "client_max_body_size", old->client_max_body_size, new->client_max_body_size);
    cfg_dbytes(&d, "max_header_size", old->max_header_size, new->max_header_size);
    cfg_dstr(&d, "", "pid_file", old->pid_file, new->pid_file);
    cfg_dstr(&d, "", "user", old->user, new->user);
    cfg_dms(&d, "", "shutdown_timeout", old->shutdown_timeout_ms, new->shutdown_timeout_ms);
    oa = old->admin ? old->admin_addr.text : NULL;
    na = new->admin ? new->admin_addr.text : NULL;
    cfg_dstr(&d, "", "admin listen", oa, na);

    for (size_t i = 0; i < old->ngroups; i++)
        if (cfg_find_group(new, old->groups[i].name) == NULL)
            cfg_dline(&d, "upstream group removed %s", old->groups[i].name);
    for (size_t i = 0; i < new->ngroups; i++)
        if (cfg_find_group(old, new->groups[i].name) == NULL)
            cfg_dline(&d, "upstream group added %s", new->groups[i].name);
    for (size_t i = 0; i < new->ngroups; i++) {
        const struct cfg_group *og = cfg_find_group(old, new->groups[i].name);

        if (og != NULL)
            cfg_diff_group(&d, og, &new->groups[i]);
    }
    return d.n;
}
