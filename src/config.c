/*
 * config: reads the INI file with inih and validates it into a struct config.
 *
 * Every key is one row of cfg_keys[] below: its section, name, type, where
 * it is stored (offsetof), its range, its default as the file writes it, how
 * a reload treats it and one line of documentation. Parsing, defaults,
 * range checks, the reload diff (cfg_diff), the dump (cfg_dump, `-T`) and
 * the documentation test (tests/unit_docs.c) all come from the rows, so the
 * behaviour and the README / miniproxy.ini(5) cannot say different things.
 * A default is applied by parsing the row's default text with the row's own
 * setter before the section's lines are read; defaults that depend on the
 * CPU count are computed in cfg_validate_pool() and documented as formulas.
 *
 * Errors read "FILE:LINE: [SECTION] KEY: REASON", or "FILE:LINE: [SECTION]:
 * REASON" for a whole section (LINE is then the header's).
 *
 * Comments: a line that starts with ';' or '#', and after a value ' ;' or
 * ' #' (whitespace, then ';' or '#', as nginx and shell users write them).
 * So no value can hold whitespace followed by ';' or '#'; none of ours needs
 * to (a ';' or '#' inside a word, as in "header:X#1", stays part of it).
 *
 * How inih is used: Debian's libinih is built without INI_HANDLER_LINENO, so
 * the handler learns no line number; it also calls no handler for a section
 * header (an empty [upstream x] must still be seen, to report "no server" at
 * its line) and truncates section names to 49 bytes (which "upstream " + 63
 * would exceed). So inih reads the lines through cfg_reader(), which counts
 * them and handles the section headers itself; inih splits "key = value"
 * and strips comments, and calls cfg_handler() right after the reader
 * returned that key's line. There is one reader of the file: the reader is
 * inih's line source, not a second parser. The reader stops the parse
 * (returns NULL) once an error has been recorded.
 */
#include "config.h"

#include "buf.h"
#include "log.h"
#include "privs.h"
#include "tls.h"
#include "route.h"
#include "upconn.h"

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

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Rows per section at most (the `seen` arrays); checked against the table below. */
#define CFG_NKEYS_MAX 128

enum cfg_section {
    CFG_SEC_NONE,
    CFG_SEC_PROXY,
    CFG_SEC_ADMIN,
    CFG_SEC_UPSTREAM,
    CFG_SEC_TLS,
    CFG_SEC_ROUTE
};

/* How a row's value is parsed, printed and compared (CFG_T_CUSTOM: by its own functions). */
enum cfg_type {
    CFG_T_UNSIGNED, /* digits, within min..max; stored in `width` bytes */
    CFG_T_DURATION, /* "100ms", "5s", "2m", bare seconds; int64_t ms; min 1: must be > 0 */
    CFG_T_SIZE,     /* bytes or k/m/g; min..max, <range_text> in messages */
    CFG_T_BOOL,     /* yes/no/on/off/true/false; <words> prints it: {false, true} */
    CFG_T_STRING,   /* a char * that the config owns; NULL: not set */
    CFG_T_ENUM,     /* one of <words> (indexed by value), <what> names it in messages */
    CFG_T_ADDR,     /* a struct cfg_addr (cfg_parse_addr) */
    CFG_T_CUSTOM,
};

/* Row flags. */
#define CFG_REPEATABLE 0x1 /* may be given more than once (listen, server) */
#define CFG_AT_START                                                                              \
    0x2 /* read at start-up only: a reload logs the change, a restart applies it */
#define CFG_POOL_KEY 0x4 /* only with workers = auto; printed by the workers row in a diff */
#define CFG_EMPTY_OK                                                                              \
    0x8 /* "key =" is allowed: a CFG_T_STRING is then unset, a custom                             \
          setter gets "" ("trusted_proxies =": none) */

struct cfg_state;
struct cfg_key;

/* Where dump and diff lines go: one call per line, without newline. */
struct cfg_out {
    void (*emit)(void *arg, const char *line);
    void *arg;
    int lines;
};

/*
 * Parses <val> into <base> (the struct config, or the struct cfg_group of
 * the section). Returns 0, or -1 with the reason in <why>.
 */
typedef int (*cfg_set_fn)(struct cfg_state *st, const struct cfg_key *key, void *base,
                          const char *val, char *why, size_t whylen);
/* Writes the value as the file writes it; returns false when it has none (an unset path). */
typedef bool (*cfg_format_fn)(const struct cfg_key *key, const struct config *cfg,
                              const void *base, char *out, size_t outlen);
/* Writes the key's lines of a dump (repeatable keys). */
typedef void (*cfg_dump_fn)(struct cfg_out *o, const struct cfg_key *key, const void *base);
/* Writes the key's lines of a reload diff; <pfx> is "", "admin " or "[app] ". */
typedef void (*cfg_diff_fn)(struct cfg_out *o, const struct cfg_key *key, const char *pfx,
                            const struct config *old, const void *old_base,
                            const struct config *new, const void *new_base);

/* One configuration key. NULL functions mean the generic ones of the type. */
struct cfg_key {
    enum cfg_section section;
    size_t offset; /* in struct config ([proxy], [admin]) or struct cfg_group */
    size_t width;  /* sizeof the field */
    const char *name;
    enum cfg_type type;
    unsigned flags;
    uint64_t min, max;
    const char *range_text;   /* CFG_T_SIZE: the range as messages write it */
    const char *const *words; /* CFG_T_BOOL, CFG_T_ENUM */
    size_t nwords;
    const char *what; /* CFG_T_ENUM: "bad <what> ..." */
    /* the default as a value of the file, parsed before the section; NULL: none */
    const char *default_value;
    /* the default as documented (README, miniproxy.ini(5)); NULL: <default_value> */
    const char *default_doc;
    cfg_set_fn set;
    cfg_format_fn format;
    cfg_dump_fn dump;
    cfg_diff_fn diff;
    const char *doc;
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
    enum cfg_section section;
    char section_text[80]; /* "proxy", "upstream app": for messages */
    size_t group;          /* index of the current group in an [upstream NAME] */
    size_t route;          /* index of the current route in a [route NAME] */
    size_t total_servers;  /* over all groups, against CFG_MAX_TOTAL_SERVERS */

    int proxy_line; /* line of [proxy], 0 if absent */
    int admin_line; /* line of [admin], 0 if absent */
    int tls_line;   /* line of [tls], 0 if absent */
    char upstream[CFG_NAME_MAX];
    /* line where each key (by row) was first given, per section */
    int proxy_seen[CFG_NKEYS_MAX];
    int group_seen[CFG_MAX_GROUPS][CFG_NKEYS_MAX];
    int route_seen[CFG_MAX_ROUTES][CFG_NKEYS_MAX];
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

__attribute__((format(printf, 2, 3))) static void
cfg_line(struct cfg_out *o, const char *fmt, ...)
{
    /* two paths of up to a line each, and some words */
    char line[2 * CFG_MAX_LINE + 128];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    o->emit(o->arg, line);
    o->lines++;
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

/*
 * cfg_push() for a key's list: at most <max> elements (0: no bound),
 * saying "too many <what> (max <max>)" or "out of memory" in <why> when it
 * returns NULL.
 */
static void *
cfg_add(void *arr, size_t *n, size_t max, size_t elsize, void **newarr, const char *what,
        char *why, size_t whylen)
{
    if (max > 0 && *n >= max) {
        snprintf(why, whylen, "too many %s (max %zu)", what, max);
        return NULL;
    }
    void *el = cfg_push(arr, n, elsize, newarr);
    if (el == NULL)
        snprintf(why, whylen, "out of memory");
    return el;
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
cfg_duration(const char *val, bool positive, int64_t *out, char *why, size_t whylen)
{
    const char *unit = val + strspn(val, "0123456789");

    if (unit == val) {
        snprintf(why, whylen, "bad duration \"%s\" (a number, then ms, s, m or h)", val);
        return -1;
    }
    if (*unit != '\0' && strcmp(unit, "ms") != 0 && strcmp(unit, "s") != 0 &&
        strcmp(unit, "m") != 0 && strcmp(unit, "h") != 0) {
        snprintf(why, whylen, "bad duration unit \"%s\" in \"%s\" (ms, s, m or h)", unit, val);
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

    for (size_t i = 0; i < NELEM(yes); i++) {
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

/* "a|b|c": a name list as the messages write it. */
static void
cfg_join(const char *const *words, size_t n, char *out, size_t outlen)
{
    size_t len = 0;

    out[0] = '\0';
    for (size_t i = 0; i < n && len < outlen; i++)
        len += (size_t)snprintf(out + len, outlen - len, "%s%s", i ? "|" : "", words[i]);
}

/*
 * Splits "host:port" or "[v6]:port" <s> into <host> and <port> (a pointer
 * into <s>). Returns 0, or -1 with the reason in <why>.
 */
static int
cfg_split_addr(const char *s, char *host, size_t hostcap, const char **port, char *why,
               size_t whylen)
{
    const char *hostp, *colon;
    size_t hostlen;

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
        *port = end + 2;
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
        *port = colon + 1;
    }
    if (hostlen == 0 || hostlen >= hostcap) {
        snprintf(why, whylen, "bad address \"%s\": %s host", s, hostlen ? "too long a" : "no");
        return -1;
    }
    memcpy(host, hostp, hostlen);
    host[hostlen] = '\0';
    if (**port == '\0') {
        snprintf(why, whylen, "missing port in \"%s\"", s);
        return -1;
    }
    return 0;
}

int
cfg_parse_addr(const char *s, struct cfg_addr *out, char *why, size_t whylen)
{
    char host[256], ip[INET6_ADDRSTRLEN];
    const char *port;
    uint64_t portnum;
    struct addrinfo hints, *res = NULL;
    int rc;

    if (cfg_split_addr(s, host, sizeof(host), &port, why, whylen) == -1)
        return -1;
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

/* ---- a row's field --------------------------------------------------- */

static void *
cfg_field(const struct cfg_key *key, void *base)
{
    return (char *)base + key->offset;
}

static const void *
cfg_cfield(const struct cfg_key *key, const void *base)
{
    return (const char *)base + key->offset;
}

/* A custom row's value that is a NUL-terminated char array at the row's offset. */
static bool
format_chars(const struct cfg_key *key, const struct config *cfg, const void *base, char *out,
             size_t outlen)
{
    (void)cfg;
    snprintf(out, outlen, "%s", (const char *)cfg_cfield(key, base));
    return true;
}

/* Unsigned integers of 4 or 8 bytes (unsigned, enums, size_t, uint64_t). */
static void
cfg_store_uint(const struct cfg_key *key, void *base, uint64_t v)
{
    if (key->width == sizeof(uint32_t)) {
        uint32_t u = (uint32_t)v;
        memcpy(cfg_field(key, base), &u, sizeof(u));
    } else {
        memcpy(cfg_field(key, base), &v, sizeof(v));
    }
}

static uint64_t
cfg_load_uint(const struct cfg_key *key, const void *base)
{
    if (key->width == sizeof(uint32_t)) {
        uint32_t u;
        memcpy(&u, cfg_cfield(key, base), sizeof(u));
        return u;
    }
    uint64_t v;
    memcpy(&v, cfg_cfield(key, base), sizeof(v));
    return v;
}

/* ---- generic setters and formatters, by type ------------------------- */

static int
cfg_set_generic(struct cfg_state *st, const struct cfg_key *key, void *base, const char *val,
                char *why, size_t whylen)
{
    uint64_t v;
    char list[256];

    (void)st;
    switch (key->type) {
    case CFG_T_UNSIGNED:
        if (cfg_number(val, key->min, key->max, &v, why, whylen) == -1)
            return -1;
        cfg_store_uint(key, base, v);
        return 0;
    case CFG_T_DURATION:
        return cfg_duration(val, key->min > 0, cfg_field(key, base), why, whylen);
    case CFG_T_SIZE:
        if (cfg_size(val, key->min, key->max, key->range_text, &v, why, whylen) == -1)
            return -1;
        cfg_store_uint(key, base, v);
        return 0;
    case CFG_T_BOOL:
        return cfg_bool(val, cfg_field(key, base), why, whylen);
    case CFG_T_STRING:
        return cfg_string(val, cfg_field(key, base), why, whylen);
    case CFG_T_ENUM:
        for (size_t i = 0; i < key->nwords; i++) {
            if (strcmp(val, key->words[i]) == 0) {
                cfg_store_uint(key, base, i);
                return 0;
            }
        }
        cfg_join(key->words, key->nwords, list, sizeof(list));
        snprintf(why, whylen, "bad %s \"%s\" (%s)", key->what, val, list);
        return -1;
    case CFG_T_ADDR:
        return cfg_parse_addr(val, cfg_field(key, base), why, whylen);
    case CFG_T_CUSTOM:
        break;
    }
    snprintf(why, whylen, "no setter"); /* a row without one: caught by the tests */
    return -1;
}

/* <ms> in seconds when whole ("60s", "0s"), else in milliseconds ("1500ms"). */
static void
cfg_format_ms(int64_t ms, char *out, size_t outlen)
{
    if (ms % 1000 == 0)
        snprintf(out, outlen, "%llds", (long long)(ms / 1000));
    else
        snprintf(out, outlen, "%lldms", (long long)ms);
}

/* <bytes> with the largest exact suffix: "1g", "16k", "1000". */
static void
cfg_format_bytes(uint64_t bytes, char *out, size_t outlen)
{
    static const char suffix[] = "gmk";
    uint64_t unit = 1024ULL * 1024 * 1024;

    for (size_t i = 0; i < 3; i++, unit /= 1024) {
        if (bytes != 0 && bytes % unit == 0) {
            snprintf(out, outlen, "%llu%c", (unsigned long long)(bytes / unit), suffix[i]);
            return;
        }
    }
    snprintf(out, outlen, "%llu", (unsigned long long)bytes);
}

static bool
cfg_format_generic(const struct cfg_key *key, const struct config *cfg, const void *base,
                   char *out, size_t outlen)
{
    const void *p = cfg_cfield(key, base);
    uint64_t v;

    (void)cfg;
    switch (key->type) {
    case CFG_T_UNSIGNED:
        snprintf(out, outlen, "%llu", (unsigned long long)cfg_load_uint(key, base));
        return true;
    case CFG_T_DURATION:
        cfg_format_ms(*(const int64_t *)p, out, outlen);
        return true;
    case CFG_T_SIZE:
        cfg_format_bytes(cfg_load_uint(key, base), out, outlen);
        return true;
    case CFG_T_BOOL:
        snprintf(out, outlen, "%s", key->words[*(const bool *)p ? 1 : 0]);
        return true;
    case CFG_T_STRING:
        if (*(char *const *)p == NULL)
            return false;
        snprintf(out, outlen, "%s", *(char *const *)p);
        return true;
    case CFG_T_ENUM:
        v = cfg_load_uint(key, base);
        snprintf(out, outlen, "%s", v < key->nwords ? key->words[v] : "invalid");
        return true;
    case CFG_T_ADDR:
        snprintf(out, outlen, "%s", ((const struct cfg_addr *)p)->text);
        return true;
    case CFG_T_CUSTOM:
        break;
    }
    return false;
}

static int
cfg_set(struct cfg_state *st, const struct cfg_key *key, void *base, const char *val, char *why,
        size_t whylen)
{
    return (key->set != NULL ? key->set : cfg_set_generic)(st, key, base, val, why, whylen);
}

static bool
cfg_format(const struct cfg_key *key, const struct config *cfg, const void *base, char *out,
           size_t outlen)
{
    return (key->format != NULL ? key->format : cfg_format_generic)(key, cfg, base, out, outlen);
}

/* ---- the name lists -------------------------------------------------- */

/* Indexed by enum cfg_log_level. */
static const char *const cfg_log_level_names[] = {"error", "warn", "info", "debug"};
/* Indexed by enum cfg_balance. */
static const char *const cfg_balance_names[] = {"round_robin", "least_conn", "random", "hash"};
/* Indexed by enum cfg_hash_key; "header" is written "header:NAME". */
static const char *const cfg_hash_key_names[] = {"client_ip", "header"};
/* How a boolean prints, {false, true}: the word its documentation uses. */
static const char *const cfg_yes_no[] = {"no", "yes"};
static const char *const cfg_on_off[] = {"off", "on"};
/* Indexed by enum cfg_underscores. */
static const char *const cfg_underscores_names[] = {"drop", "reject", "allow"};
/* Indexed by enum cfg_lingering. */
static const char *const cfg_lingering_names[] = {"off", "on", "always"};
/* Indexed by enum tls_client_cert. */
static const char *const cfg_client_cert_names[] = {"off", "optional", "required"};
/* Indexed by enum cfg_log_format. */
static const char *const cfg_log_format_names[] = {"main", "combined", "json"};

static const char *
cfg_name_of(const char *const *names, size_t n, int v)
{
    return v >= 0 && (size_t)v < n ? names[v] : "invalid";
}

const char *
cfg_log_level_name(enum cfg_log_level level)
{
    return cfg_name_of(cfg_log_level_names, NELEM(cfg_log_level_names), (int)level);
}

const char *
cfg_balance_name(enum cfg_balance balance)
{
    return cfg_name_of(cfg_balance_names, NELEM(cfg_balance_names), (int)balance);
}

const char *
cfg_hash_key_name(enum cfg_hash_key key)
{
    return cfg_name_of(cfg_hash_key_names, NELEM(cfg_hash_key_names), (int)key);
}

const char *
cfg_log_format_name(enum cfg_log_format format)
{
    return cfg_name_of(cfg_log_format_names, NELEM(cfg_log_format_names), (int)format);
}

/* ---- [proxy] keys that are special ----------------------------------- */

static int
set_listen(struct cfg_state *st, const struct cfg_key *key, void *base, const char *val, char *why,
           size_t whylen)
{
    struct config *cfg = base;
    struct cfg_addr addr;
    struct cfg_listener *l;
    void *arr;

    char text[CFG_MAX_LINE];
    bool tls = false, deferred = true;
    size_t n;

    (void)key;
    /* "ADDR [tls] [deferred | nodeferred]" */
    snprintf(text, sizeof(text), "%s", val);
    n = strcspn(text, " \t");
    for (char *flag = text + n; *flag != '\0';) {
        *flag++ = '\0';
        flag += strspn(flag, " \t");
        size_t len = strcspn(flag, " \t");
        if (len == 0)
            break;
        if (len == 3 && strncmp(flag, "tls", 3) == 0) {
            tls = true;
        } else if (len == 8 && strncmp(flag, "deferred", 8) == 0) {
            deferred = true;
        } else if (len == 10 && strncmp(flag, "nodeferred", 10) == 0) {
            deferred = false;
        } else {
            snprintf(why, whylen, "unknown listener option \"%.*s\" (tls, deferred, nodeferred)",
                     (int)len, flag);
            return -1;
        }
        flag += len;
    }
    if (cfg_parse_addr(text, &addr, why, whylen) == -1)
        return -1;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        if (strcmp(cfg->listeners[i].addr.text, addr.text) == 0) {
            snprintf(why, whylen, "duplicate listener %s, first at line %d", addr.text,
                     cfg->listeners[i].line);
            return -1;
        }
    }
    l = cfg_add(cfg->listeners, &cfg->nlisteners, CFG_MAX_LISTENERS, sizeof(*l), &arr,
                "listeners", why, whylen);
    if (l == NULL)
        return -1;
    cfg->listeners = arr;
    l->addr = addr;
    l->tls = tls;
    l->deferred = deferred;
    l->line = st->lineno;
    return 0;
}

static void
dump_listen(struct cfg_out *o, const struct cfg_key *key, const void *base)
{
    const struct config *cfg = base;

    for (size_t i = 0; i < cfg->nlisteners; i++)
        cfg_line(o, "%s = %s%s%s", key->name, cfg->listeners[i].addr.text,
                 cfg->listeners[i].tls ? " tls" : "",
                 cfg->listeners[i].deferred ? "" : " nodeferred");
}

/* Whether <cfg> has the listener <l>, with the same tls flag. */
static bool
cfg_has_listener(const struct config *cfg, const struct cfg_listener *l)
{
    for (size_t i = 0; i < cfg->nlisteners; i++)
        if (strcmp(cfg->listeners[i].addr.text, l->addr.text) == 0 &&
            cfg->listeners[i].tls == l->tls)
            return true;
    return false;
}

static void
diff_listen(struct cfg_out *o, const struct cfg_key *key, const char *pfx,
            const struct config *old, const void *old_base, const struct config *new,
            const void *new_base)
{
    (void)key, (void)pfx, (void)old_base, (void)new_base;
    for (size_t i = 0; i < old->nlisteners; i++)
        if (!cfg_has_listener(new, &old->listeners[i]))
            cfg_line(o, "listener removed %s%s", old->listeners[i].addr.text,
                     old->listeners[i].tls ? " tls" : "");
    for (size_t i = 0; i < new->nlisteners; i++)
        if (!cfg_has_listener(old, &new->listeners[i]))
            cfg_line(o, "listener added %s%s", new->listeners[i].addr.text,
                     new->listeners[i].tls ? " tls" : "");
    for (size_t i = 0; i < new->nlisteners; i++)
        for (size_t k = 0; k < old->nlisteners; k++)
            if (strcmp(old->listeners[k].addr.text, new->listeners[i].addr.text) == 0 &&
                old->listeners[k].deferred != new->listeners[i].deferred)
                cfg_line(o, "listener %s %s", new->listeners[i].addr.text,
                         new->listeners[i].deferred ? "deferred" : "nodeferred");
}

/*
 * "auto" or N. The pool keys are checked against it, and their defaults
 * computed, in cfg_validate_pool(): they may come before it in the file.
 */
static int
set_workers(struct cfg_state *st, const struct cfg_key *key, void *base, const char *val,
            char *why, size_t whylen)
{
    struct config *cfg = base;
    uint64_t v;

    (void)st;
    if (strcmp(val, "auto") == 0) {
        cfg->workers_auto = true;
        return 0;
    }
    if (!cfg_all_digits(val)) {
        snprintf(why, whylen, "bad value \"%s\" (auto or 1..%d)", val, CFG_MAX_WORKERS);
        return -1;
    }
    if (cfg_number(val, key->min, key->max, &v, why, whylen) == -1)
        return -1;
    cfg->worker_slots = (unsigned)v;
    cfg->workers_auto = false;
    return 0;
}

static bool
format_workers(const struct cfg_key *key, const struct config *cfg, const void *base, char *out,
               size_t outlen)
{
    (void)key, (void)base;
    if (cfg->workers_auto)
        snprintf(out, outlen, "auto");
    else
        snprintf(out, outlen, "%u", cfg->worker_slots);
    return true;
}

/* With the other diff functions, below: it needs the table. */
static void diff_workers(struct cfg_out *o, const struct cfg_key *key, const char *pfx,
                         const struct config *old, const void *old_base, const struct config *new,
                         const void *new_base);

static int
set_upstream(struct cfg_state *st, const struct cfg_key *key, void *base, const char *val,
             char *why, size_t whylen)
{
    (void)key, (void)base;
    if (!cfg_valid_name(val)) {
        snprintf(why, whylen, "bad group name \"%s\" ([A-Za-z0-9_.-], 1 to %d characters)", val,
                 CFG_NAME_MAX - 1);
        return -1;
    }
    snprintf(st->upstream, sizeof(st->upstream), "%s", val);
    return 0;
}

static bool
format_upstream(const struct cfg_key *key, const struct config *cfg, const void *base, char *out,
                size_t outlen)
{
    (void)key, (void)base;
    snprintf(out, outlen, "%s", cfg->groups[cfg->group].name);
    return true;
}

/* The master writes it at start-up; a path ending in '/' can only be a directory. */
static int
set_pid_file(struct cfg_state *st, const struct cfg_key *key, void *base, const char *val,
             char *why, size_t whylen)
{
    if (val[strlen(val) - 1] == '/') {
        snprintf(why, whylen, "bad path \"%s\": names a directory", val);
        return -1;
    }
    return cfg_set_generic(st, key, base, val, why, whylen);
}

/*
 * Looked up now, so that -t and a reload catch a typo; the uid is looked
 * up again when privileges are dropped (see privs_drop()).
 */
static int
set_user(struct cfg_state *st, const struct cfg_key *key, void *base, const char *val, char *why,
         size_t whylen)
{
    int err;

    if (privs_lookup(val, &err) == NULL) {
        if (err != 0)
            snprintf(why, whylen, "cannot look up user \"%s\": %s", val, strerror(err));
        else
            snprintf(why, whylen, "no such user \"%s\"", val);
        return -1;
    }
    return cfg_set_generic(st, key, base, val, why, whylen);
}

/* ---- [upstream NAME] keys that are special ---------------------------- */

static bool
cfg_port_zero(const struct cfg_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->ss)->sin_port == 0;
    return ((const struct sockaddr_in6 *)&a->ss)->sin6_port == 0;
}

/* "ADDR [weight=N] [backup]" into <srv>; nothing else is checked. */
static int
cfg_parse_server(const char *val, struct cfg_server *srv, char *why, size_t whylen)
{
    char copy[CFG_MAX_LINE], *tok, *save = NULL;
    bool have_weight = false;
    uint64_t w;

    snprintf(copy, sizeof(copy), "%s", val);
    tok = strtok_r(copy, " \t", &save);
    if (tok == NULL) {
        snprintf(why, whylen, "empty value");
        return -1;
    }
    if (cfg_parse_addr(tok, &srv->addr, why, whylen) == -1)
        return -1;
    if (cfg_port_zero(&srv->addr)) {
        snprintf(why, whylen, "bad port 0 in \"%s\" (1..65535)", tok);
        return -1;
    }
    /* the name as written: with tls = on, the name verified unless tls_server_name says */
    const char *port;
    if (cfg_split_addr(tok, srv->host, sizeof(srv->host), &port, why, whylen) == -1)
        return -1;
    while ((tok = strtok_r(NULL, " \t", &save)) != NULL) {
        if (strncmp(tok, "weight=", 7) == 0) {
            if (have_weight) {
                snprintf(why, whylen, "weight given twice");
                return -1;
            }
            if (!cfg_all_digits(tok + 7) ||
                buf_parse_u64(tok + 7, strlen(tok + 7), CFG_MAX_WEIGHT, &w) == -1 || w < 1) {
                snprintf(why, whylen, "bad weight \"%s\" (1..%d)", tok + 7, CFG_MAX_WEIGHT);
                return -1;
            }
            srv->weight = (unsigned)w;
            have_weight = true;
        } else if (strcmp(tok, "backup") == 0) {
            if (srv->backup) {
                snprintf(why, whylen, "backup given twice");
                return -1;
            }
            srv->backup = true;
        } else {
            snprintf(why, whylen, "unknown option \"%s\" (weight=N, backup)", tok);
            return -1;
        }
    }
    return 0;
}

static const struct cfg_server *
cfg_find_server(const struct cfg_group *g, const char *text)
{
    for (size_t i = 0; i < g->nservers; i++)
        if (strcmp(g->servers[i].addr.text, text) == 0)
            return &g->servers[i];
    return NULL;
}

static int
set_server(struct cfg_state *st, const struct cfg_key *key, void *base, const char *val, char *why,
           size_t whylen)
{
    struct cfg_group *g = base;
    struct cfg_server srv, *s;
    const struct cfg_server *first;
    void *arr;

    (void)key;
    memset(&srv, 0, sizeof(srv));
    srv.weight = 1;
    srv.line = st->lineno;
    if (cfg_parse_server(val, &srv, why, whylen) == -1)
        return -1;
    first = cfg_find_server(g, srv.addr.text);
    if (first != NULL) {
        snprintf(why, whylen, "duplicate server %s, first at line %d", srv.addr.text, first->line);
        return -1;
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
    s = cfg_add(g->servers, &g->nservers, 0, sizeof(*s), &arr, "servers", why, whylen);
    if (s == NULL)
        return -1;
    g->servers = arr;
    *s = srv;
    st->total_servers++;
    return 0;
}

static void
dump_server(struct cfg_out *o, const struct cfg_key *key, const void *base)
{
    const struct cfg_group *g = base;

    for (size_t i = 0; i < g->nservers; i++)
        cfg_line(o, "%s = %s weight=%u%s", key->name, g->servers[i].addr.text,
                 g->servers[i].weight, g->servers[i].backup ? " backup" : "");
}

/* Servers matched by address: removed, added, then reweighted or switched. */
static void
diff_server(struct cfg_out *o, const struct cfg_key *key, const char *pfx,
            const struct config *old, const void *old_base, const struct config *new,
            const void *new_base)
{
    const struct cfg_group *a = old_base, *b = new_base;

    (void)key, (void)old, (void)new;
    for (size_t i = 0; i < a->nservers; i++)
        if (cfg_find_server(b, a->servers[i].addr.text) == NULL)
            cfg_line(o, "%sserver removed %s", pfx, a->servers[i].addr.text);
    for (size_t i = 0; i < b->nservers; i++)
        if (cfg_find_server(a, b->servers[i].addr.text) == NULL)
            cfg_line(o, "%sserver added %s", pfx, b->servers[i].addr.text);
    for (size_t i = 0; i < b->nservers; i++) {
        const struct cfg_server *ns = &b->servers[i];
        const struct cfg_server *os = cfg_find_server(a, ns->addr.text);

        if (os == NULL)
            continue;
        if (os->weight != ns->weight)
            cfg_line(o, "%s%s weight %u -> %u", pfx, ns->addr.text, os->weight, ns->weight);
        if (os->backup != ns->backup)
            cfg_line(o, "%s%s now %s", pfx, ns->addr.text, ns->backup ? "backup" : "primary");
    }
}

/* RFC 9110 tchar: what a header field name is made of. */
static bool
cfg_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/*
 * "client_ip" or "header:NAME". Whether balance = hash goes with it is not
 * checked: hash_key is accepted with any balance and used only by hash.
 */
static int
set_hash_key(struct cfg_state *st, const struct cfg_key *key, void *base, const char *val,
             char *why, size_t whylen)
{
    struct cfg_group *g = base;
    const char *name;
    size_t n;

    (void)st, (void)key;
    if (strcmp(val, cfg_hash_key_names[CFG_HASH_CLIENT_IP]) == 0) {
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

static bool
format_hash_key(const struct cfg_key *key, const struct config *cfg, const void *base, char *out,
                size_t outlen)
{
    const struct cfg_group *g = base;

    (void)key, (void)cfg;
    if (g->hash_key == CFG_HASH_HEADER)
        snprintf(out, outlen, "%s:%s", cfg_hash_key_name(g->hash_key), g->hash_header);
    else
        snprintf(out, outlen, "%s", cfg_hash_key_name(g->hash_key));
    return true;
}

/* Goes verbatim into the probe's request line, hence visible ASCII only. */
static int
set_health_path(struct cfg_state *st, const struct cfg_key *key, void *base, const char *val,
                char *why, size_t whylen)
{
    struct cfg_group *g = base;
    size_t n = strlen(val);

    (void)st, (void)key;
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

/* "N" or "N-M", 100 <= N <= M <= 599. */
static int
set_health_status(struct cfg_state *st, const struct cfg_key *key, void *base, const char *val,
                  char *why, size_t whylen)
{
    struct cfg_group *g = base;
    const char *dash = strchr(val, '-');
    size_t nlen = dash != NULL ? (size_t)(dash - val) : strlen(val);
    const char *m = dash != NULL ? dash + 1 : val;
    uint64_t lo, hi;

    (void)st, (void)key;
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

static bool
format_health_status(const struct cfg_key *key, const struct config *cfg, const void *base,
                     char *out, size_t outlen)
{
    const struct cfg_group *g = base;

    (void)key, (void)cfg;
    snprintf(out, outlen, "%u-%u", g->health_status_min, g->health_status_max);
    return true;
}

/* ---- [tls] keys that are special ------------------------------------- */

/* "PATH" or "PATH key=PATH": one more certificate line. */
static int
set_tls_cert(struct cfg_state *st, const struct cfg_key *key, void *base, const char *val,
             char *why, size_t whylen)
{
    struct config *cfg = base;
    struct cfg_tls_cert *c;
    char text[CFG_MAX_LINE], *cert, *keyp = NULL;
    void *arr;
    size_t n;

    (void)key;
    snprintf(text, sizeof(text), "%s", val);
    n = strcspn(text, " \t");
    cert = text;
    if (text[n] != '\0') {
        char *opt = text + n + strspn(text + n, " \t");

        text[n] = '\0';
        if (strncmp(opt, "key=", 4) != 0 || opt[4] == '\0' || strpbrk(opt + 4, " \t") != NULL) {
            snprintf(why, whylen, "bad option \"%s\" (key=PATH)", opt);
            return -1;
        }
        keyp = opt + 4;
    }
    c = cfg_add(cfg->tls_certs, &cfg->ntls_certs, 0, sizeof(*c), &arr, "certificates", why,
                whylen);
    if (c == NULL)
        return -1;
    cfg->tls_certs = arr;
    c->cert = strdup(cert);
    c->key = keyp != NULL ? strdup(keyp) : NULL;
    c->line = st->lineno;
    if (c->cert == NULL || (keyp != NULL && c->key == NULL)) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    return 0;
}

static void
dump_tls_cert(struct cfg_out *o, const struct cfg_key *key, const void *base)
{
    const struct config *cfg = base;

    for (size_t i = 0; i < cfg->ntls_certs; i++) {
        const struct cfg_tls_cert *c = &cfg->tls_certs[i];

        if (c->key != NULL)
            cfg_line(o, "%s = %s key=%s", key->name, c->cert, c->key);
        else
            cfg_line(o, "%s = %s", key->name, c->cert);
    }
}

/* Whether <cfg> has the certificate line <c> (the same files). */
static bool
cfg_has_tls_cert(const struct config *cfg, const struct cfg_tls_cert *c)
{
    for (size_t i = 0; i < cfg->ntls_certs; i++) {
        const struct cfg_tls_cert *d = &cfg->tls_certs[i];

        if (strcmp(d->cert, c->cert) == 0 &&
            strcmp(d->key != NULL ? d->key : "", c->key != NULL ? c->key : "") == 0)
            return true;
    }
    return false;
}

static void
diff_tls_cert(struct cfg_out *o, const struct cfg_key *key, const char *pfx,
              const struct config *old, const void *old_base, const struct config *new,
              const void *new_base)
{
    (void)key, (void)pfx, (void)old_base, (void)new_base;
    for (size_t i = 0; i < old->ntls_certs; i++)
        if (!cfg_has_tls_cert(new, &old->tls_certs[i]))
            cfg_line(o, "tls certificate removed %s", old->tls_certs[i].cert);
    for (size_t i = 0; i < new->ntls_certs; i++)
        if (!cfg_has_tls_cert(old, &new->tls_certs[i]))
            cfg_line(o, "tls certificate added %s", new->tls_certs[i].cert);
}

/* Whole hours as hours ("1h"): how [tls] session_timeout is usually written. */
static bool
format_duration_h(const struct cfg_key *key, const struct config *cfg, const void *base, char *out,
                  size_t outlen)
{
    int64_t ms = *(const int64_t *)cfg_cfield(key, base);

    (void)cfg;
    if (ms > 0 && ms % (3600 * 1000) == 0)
        snprintf(out, outlen, "%lldh", (long long)(ms / (3600 * 1000)));
    else
        cfg_format_ms(ms, out, outlen);
    return true;
}

/* ---- [proxy] trusted_proxies, access_log_format --------------------- */

/* "10.0.0.0/8", "::1/128" or a bare address (a /32 or /128) into <c>. */
static int
cfg_parse_cidr(const char *s, struct cfg_cidr *c, char *why, size_t whylen)
{
    char addr[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(s, '/');
    size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
    uint64_t bits;

    memset(c, 0, sizeof(*c));
    if (alen == 0 || alen >= sizeof(addr)) {
        snprintf(why, whylen, "bad network \"%s\" (ADDRESS or ADDRESS/BITS)", s);
        return -1;
    }
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    if (inet_pton(AF_INET, addr, c->addr) == 1)
        c->family = AF_INET;
    else if (inet_pton(AF_INET6, addr, c->addr) == 1)
        c->family = AF_INET6;
    else {
        snprintf(why, whylen, "bad address \"%s\" in \"%s\" (an IPv4 or IPv6 address)", addr, s);
        return -1;
    }
    unsigned max = c->family == AF_INET ? 32 : 128;
    bits = max;
    if (slash != NULL && (!cfg_all_digits(slash + 1) ||
                          buf_parse_u64(slash + 1, strlen(slash + 1), max, &bits) == -1)) {
        snprintf(why, whylen, "bad prefix length in \"%s\" (0..%u)", s, max);
        return -1;
    }
    c->bits = (unsigned)bits;
    /* host bits set ("10.1.2.3/8") are most likely a typo for another network: refuse */
    for (unsigned i = c->bits; i < max; i++) {
        if (c->addr[i / 8] & (0x80 >> (i % 8))) {
            snprintf(why, whylen, "\"%s\" has host bits set (the network is not that)", s);
            return -1;
        }
    }
    return 0;
}

/* "CIDR CIDR ..."; an empty value (as the reference file writes it) means none. */
static int
set_trusted_proxies(struct cfg_state *st, const struct cfg_key *key, void *base, const char *val,
                    char *why, size_t whylen)
{
    struct config *cfg = base;
    char copy[CFG_MAX_LINE], *tok, *save = NULL;
    struct cfg_cidr *arr = NULL;
    size_t n = 0;

    (void)st, (void)key;
    snprintf(copy, sizeof(copy), "%s", val);
    for (tok = strtok_r(copy, " \t", &save); tok != NULL; tok = strtok_r(NULL, " \t", &save)) {
        struct cfg_cidr c, *slot;
        void *na;

        if (cfg_parse_cidr(tok, &c, why, whylen) == -1)
            goto fail;
        slot = cfg_add(arr, &n, CFG_MAX_TRUSTED, sizeof(*slot), &na, "networks", why, whylen);
        if (slot == NULL)
            goto fail;
        arr = na;
        *slot = c;
    }
    free(cfg->trusted_proxies);
    cfg->trusted_proxies = arr;
    cfg->ntrusted_proxies = n;
    return 0;
fail:
    free(arr);
    return -1;
}

static bool
format_trusted_proxies(const struct cfg_key *key, const struct config *cfg, const void *base,
                       char *out, size_t outlen)
{
    size_t len = 0;

    (void)key, (void)base;
    if (cfg->ntrusted_proxies == 0)
        return false;
    out[0] = '\0';
    for (size_t i = 0; i < cfg->ntrusted_proxies && len < outlen; i++) {
        const struct cfg_cidr *c = &cfg->trusted_proxies[i];
        char a[INET6_ADDRSTRLEN];

        inet_ntop(c->family, c->addr, a, sizeof(a));
        len += (size_t)snprintf(out + len, outlen - len, "%s%s/%u", i ? " " : "", a, c->bits);
    }
    return true;
}

/* ---- [route NAME] keys ----------------------------------------------- */

/* The framing and hop-by-hop fields a route can neither set nor hide. */
static bool
cfg_framing_header(const char *name)
{
    static const char *const names[] = {
        "content-length", "transfer-encoding", "connection", "host", "upgrade", "keep-alive", "te",
        "trailer",        "proxy-connection"};

    for (size_t i = 0; i < NELEM(names); i++)
        if (strcasecmp(name, names[i]) == 0)
            return true;
    return false;
}

/* A header name a route may set or hide: a token, not a framing field. */
static int
cfg_header_name(const char *name, size_t n, char *why, size_t whylen)
{
    if (n == 0) {
        snprintf(why, whylen, "missing header name");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!cfg_tchar(name[i])) {
            snprintf(why, whylen,
                     "bad header name \"%.*s\" (a token: letters, digits and "
                     "!#$%%&'*+-.^_`|~)",
                     (int)n, name);
            return -1;
        }
    }
    if (n >= CFG_NAME_MAX) {
        snprintf(why, whylen, "header name too long (%zu characters, max %d)", n,
                 CFG_NAME_MAX - 1);
        return -1;
    }
    char tmp[CFG_NAME_MAX];
    memcpy(tmp, name, n);
    tmp[n] = '\0';
    if (cfg_framing_header(tmp)) {
        snprintf(why, whylen, "%s is a framing or hop-by-hop header: the proxy sets it", tmp);
        return -1;
    }
    return 0;
}

static char *
cfg_strndup_or(const char *s, size_t n, char *why, size_t whylen)
{
    char *p = strndup(s, n);

    if (p == NULL)
        snprintf(why, whylen, "out of memory");
    return p;
}

/*
 * "Name: value" appended to <*arr>. The value is literal and must be a
 * valid field value (RFC 9110 5.5: visible ASCII, obs-text, inner spaces
 * and tabs); it is not empty (hide_response_header removes a header).
 */
static int
cfg_add_header(struct cfg_header **arr, size_t *n, const char *val, char *why, size_t whylen)
{
    const char *colon = strchr(val, ':'), *v;
    struct cfg_header *h;
    void *na;

    if (colon == NULL) {
        snprintf(why, whylen, "bad header \"%s\" (Name: value)", val);
        return -1;
    }
    if (cfg_header_name(val, (size_t)(colon - val), why, whylen) == -1)
        return -1;
    v = colon + 1 + strspn(colon + 1, " \t");
    if (*v == '\0') {
        snprintf(why, whylen, "empty value for %.*s (hide_response_header removes one)",
                 (int)(colon - val), val);
        return -1;
    }
    for (const char *p = v; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            snprintf(why, whylen, "bad character 0x%02x in the value of %.*s", c,
                     (int)(colon - val), val);
            return -1;
        }
    }
    for (size_t i = 0; i < *n; i++) {
        if (strncasecmp((*arr)[i].name, val, (size_t)(colon - val)) == 0 &&
            (*arr)[i].name[colon - val] == '\0') {
            snprintf(why, whylen, "%s set twice", (*arr)[i].name);
            return -1;
        }
    }
    h = cfg_add(*arr, n, CFG_MAX_ROUTE_HEADERS, sizeof(*h), &na, "headers", why, whylen);
    if (h == NULL)
        return -1;
    *arr = na;
    h->name = cfg_strndup_or(val, (size_t)(colon - val), why, whylen);
    h->value = cfg_strndup_or(v, strlen(v), why, whylen);
    if (h->name == NULL || h->value == NULL)
        return -1; /* freed with the route */
    return 0;
}

static int
set_request_header(struct cfg_state *st, const struct cfg_key *key, void *base, const char *val,
                   char *why, size_t whylen)
{
    struct cfg_route *r = base;

    (void)st, (void)key;
    return cfg_add_header(&r->request_headers, &r->nrequest_headers, val, why, whylen);
}

static int
set_response_header(struct cfg_state *st, const struct cfg_key *key, void *base, const char *val,
                    char *why, size_t whylen)
{
    struct cfg_route *r = base;

    (void)st, (void)key;
    return cfg_add_header(&r->response_headers, &r->nresponse_headers, val, why, whylen);
}

/* The headers of <key> in <base> (a route): request_header or response_header. */
static void
cfg_route_headers(const struct cfg_key *key, const void *base, const struct cfg_header **h,
                  size_t *n)
{
    const struct cfg_route *r = base;

    if (strcmp(key->name, "request_header") == 0) {
        *h = r->request_headers;
        *n = r->nrequest_headers;
    } else {
        *h = r->response_headers;
        *n = r->nresponse_headers;
    }
}

static void
dump_headers(struct cfg_out *o, const struct cfg_key *key, const void *base)
{
    const struct cfg_header *h;
    size_t n;

    cfg_route_headers(key, base, &h, &n);
    if (n == 0)
        cfg_line(o, "; %s: not set", key->name);
    for (size_t i = 0; i < n; i++)
        cfg_line(o, "%s = %s: %s", key->name, h[i].name, h[i].value);
}

/* For the reload diff: every header, in order. */
static bool
format_headers(const struct cfg_key *key, const struct config *cfg, const void *base, char *out,
               size_t outlen)
{
    const struct cfg_header *h;
    size_t n, len = 0;

    (void)cfg;
    cfg_route_headers(key, base, &h, &n);
    if (n == 0)
        return false;
    out[0] = '\0';
    for (size_t i = 0; i < n && len < outlen; i++)
        len += (size_t)snprintf(out + len, outlen - len, "%s%s: %s", i ? ", " : "", h[i].name,
                                h[i].value);
    return true;
}

static int
set_hide_response_header(struct cfg_state *st, const struct cfg_key *key, void *base,
                         const char *val, char *why, size_t whylen)
{
    struct cfg_route *r = base;
    char **slot;
    void *na;

    (void)st, (void)key;
    if (cfg_header_name(val, strlen(val), why, whylen) == -1)
        return -1;
    for (size_t i = 0; i < r->nhide_response_headers; i++) {
        if (strcasecmp(r->hide_response_headers[i], val) == 0) {
            snprintf(why, whylen, "%s hidden twice", val);
            return -1;
        }
    }
    slot = cfg_add(r->hide_response_headers, &r->nhide_response_headers, CFG_MAX_ROUTE_HEADERS,
                   sizeof(*slot), &na, "headers", why, whylen);
    if (slot == NULL)
        return -1;
    r->hide_response_headers = na;
    *slot = cfg_strndup_or(val, strlen(val), why, whylen);
    return *slot != NULL ? 0 : -1;
}

static void
dump_hide(struct cfg_out *o, const struct cfg_key *key, const void *base)
{
    const struct cfg_route *r = base;

    if (r->nhide_response_headers == 0)
        cfg_line(o, "; %s: not set", key->name);
    for (size_t i = 0; i < r->nhide_response_headers; i++)
        cfg_line(o, "%s = %s", key->name, r->hide_response_headers[i]);
}

static bool
format_hide(const struct cfg_key *key, const struct config *cfg, const void *base, char *out,
            size_t outlen)
{
    const struct cfg_route *r = base;
    size_t len = 0;

    (void)key, (void)cfg;
    if (r->nhide_response_headers == 0)
        return false;
    out[0] = '\0';
    for (size_t i = 0; i < r->nhide_response_headers && len < outlen; i++)
        len += (size_t)snprintf(out + len, outlen - len, "%s%s", i ? ", " : "",
                                r->hide_response_headers[i]);
    return true;
}

static void
cfg_free_strings(char **s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(s[i]);
    free(s);
}

/* A host name as routes write it: letters, digits, '-' and '.', or an IPv6 literal. */
static bool
cfg_host_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 253)
        return false;
    if (s[0] == '[')
        return s[n - 1] == ']' && strspn(s + 1, "0123456789abcdef:.") == n - 2 && n > 2;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
              s[i] == '.'))
            return false;
    return s[0] != '.' && strstr(s, "..") == NULL;
}

/*
 * "name *.wildcard ...": names compare without case and without a trailing
 * dot, so they are stored lower case without it. "*" alone is no name:
 * leave host out for any host.
 */
static int
set_route_host(struct cfg_state *st, const struct cfg_key *key, void *base, const char *val,
               char *why, size_t whylen)
{
    struct cfg_route *r = base;
    char copy[CFG_MAX_LINE], *tok, *save = NULL;

    (void)st, (void)key;
    cfg_free_strings(r->hosts, r->nhosts);
    r->hosts = NULL;
    r->nhosts = 0;
    snprintf(copy, sizeof(copy), "%s", val);
    for (tok = strtok_r(copy, " \t", &save); tok != NULL; tok = strtok_r(NULL, " \t", &save)) {
        size_t n = strlen(tok);
        char **slot;
        void *na;

        for (size_t i = 0; i < n; i++)
            tok[i] = (char)(tok[i] >= 'A' && tok[i] <= 'Z' ? tok[i] - 'A' + 'a' : tok[i]);
        if (n > 1 && tok[n - 1] == '.')
            tok[--n] = '\0';
        bool wild = strncmp(tok, "*.", 2) == 0;
        if (!cfg_host_name(wild ? tok + 2 : tok)) {
            snprintf(why, whylen,
                     "bad host name \"%s\" (a name, or *.name for its subdomains; leave host "
                     "out for any host)",
                     tok);
            return -1;
        }
        for (size_t i = 0; i < r->nhosts; i++) {
            if (strcmp(r->hosts[i], tok) == 0) {
                snprintf(why, whylen, "host %s named twice", tok);
                return -1;
            }
        }
        slot = cfg_add(r->hosts, &r->nhosts, CFG_MAX_ROUTE_HOSTS, sizeof(*slot), &na, "host names",
                       why, whylen);
        if (slot == NULL)
            return -1;
        r->hosts = na;
        if ((*slot = cfg_strndup_or(tok, n, why, whylen)) == NULL)
            return -1;
    }
    return 0;
}

static bool
format_route_host(const struct cfg_key *key, const struct config *cfg, const void *base, char *out,
                  size_t outlen)
{
    const struct cfg_route *r = base;
    size_t len = 0;

    (void)key, (void)cfg;
    if (r->nhosts == 0)
        return false;
    out[0] = '\0';
    for (size_t i = 0; i < r->nhosts && len < outlen; i++)
        len += (size_t)snprintf(out + len, outlen - len, "%s%s", i ? " " : "", r->hosts[i]);
    return true;
}

/* A prefix starting with '/', written in normalised form (route_normalize()). */
static int
set_route_path(struct cfg_state *st, const struct cfg_key *key, void *base, const char *val,
               char *why, size_t whylen)
{
    struct cfg_route *r = base;
    size_t n = strlen(val);
    char norm[CFG_MAX_LINE];

    (void)st, (void)key;
    if (val[0] != '/') {
        snprintf(why, whylen, "bad path \"%s\": must start with '/'", val);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)val[i];

        if (c < 0x21 || c > 0x7e || c == '?' || c == '#') {
            snprintf(why, whylen,
                     "bad character 0x%02x at byte %zu of the path (visible ASCII, no '?' "
                     "or '#')",
                     c, i + 1);
            return -1;
        }
    }
    if (route_normalize(val, n, norm, sizeof(norm)) == -1 || strcmp(norm, val) != 0) {
        snprintf(why, whylen,
                 "path \"%s\" is not normalised: requests are matched as \"%s\", write that", val,
                 norm);
        return -1;
    }
    char *p = cfg_strndup_or(val, n, why, whylen);
    if (p == NULL)
        return -1;
    free(r->path);
    r->path = p;
    return 0;
}

static bool
format_route_path(const struct cfg_key *key, const struct config *cfg, const void *base, char *out,
                  size_t outlen)
{
    (void)key, (void)cfg;
    snprintf(out, outlen, "%s", ((const struct cfg_route *)base)->path);
    return true;
}

static int
set_route_upstream(struct cfg_state *st, const struct cfg_key *key, void *base, const char *val,
                   char *why, size_t whylen)
{
    struct cfg_route *r = base;

    (void)st, (void)key;
    if (!cfg_valid_name(val)) {
        snprintf(why, whylen, "bad group name \"%s\" ([A-Za-z0-9_.-], 1 to %d characters)", val,
                 CFG_NAME_MAX - 1);
        return -1;
    }
    snprintf(r->upstream, sizeof(r->upstream), "%s", val);
    return 0;
}

/*
 * A DNS name (letters, digits, '-' and '.', at most 253 characters) or an
 * IP address: it is sent as SNI and matched against the certificate.
 */
static int
set_tls_server_name(struct cfg_state *st, const struct cfg_key *key, void *base, const char *val,
                    char *why, size_t whylen)
{
    size_t n = strlen(val);
    unsigned char ip[sizeof(struct in6_addr)];

    if (inet_pton(AF_INET6, val, ip) != 1) {
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)val[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.')) {
                snprintf(why, whylen,
                         "bad name \"%s\" (a DNS name: letters, digits, '-' and '.'; or an IP "
                         "address)",
                         val);
                return -1;
            }
        }
        if (n > 253 || val[0] == '.' || strstr(val, "..") != NULL) {
            snprintf(why, whylen, "bad name \"%s\" (a DNS name of at most 253 characters)", val);
            return -1;
        }
    }
    return cfg_set_generic(st, key, base, val, why, whylen);
}

/* ---- the table ------------------------------------------------------- */

#define PROXY(field)                                                                              \
    .section = CFG_SEC_PROXY, .offset = offsetof(struct config, field),                           \
    .width = sizeof(((struct config *)0)->field)
#define ADMIN(field)                                                                              \
    .section = CFG_SEC_ADMIN, .offset = offsetof(struct config, field),                           \
    .width = sizeof(((struct config *)0)->field)
#define GROUP(field)                                                                              \
    .section = CFG_SEC_UPSTREAM, .offset = offsetof(struct cfg_group, field),                     \
    .width = sizeof(((struct cfg_group *)0)->field)
#define TLS(field)                                                                                \
    .section = CFG_SEC_TLS, .offset = offsetof(struct config, field),                             \
    .width = sizeof(((struct config *)0)->field)
#define ROUTE(field)                                                                              \
    .section = CFG_SEC_ROUTE, .offset = offsetof(struct cfg_route, field),                        \
    .width = sizeof(((struct cfg_route *)0)->field)
#define WORDS(list) .words = list, .nwords = NELEM(list)
#define RANGE(lo, hi) .min = (lo), .max = (hi)

/*
 * One row per key, in the order of the file format: the order of the
 * documentation, of the dump and of the reload diff. Within a section the
 * names are unique; [proxy] listen and [admin] listen are two rows.
 */
static const struct cfg_key cfg_keys[] = {
    /* [proxy] */
    {.section = CFG_SEC_PROXY,
     .name = "listen",
     .type = CFG_T_CUSTOM,
     .flags = CFG_REPEATABLE,
     .default_doc = "required",
     .set = set_listen,
     .dump = dump_listen,
     .diff = diff_listen,
     .doc = "ip:port, [v6]:port or name:port to accept clients on, then tls, deferred (the default) or nodeferred; repeatable (at most 32)"},
    {PROXY(worker_slots), .name = "workers", .type = CFG_T_CUSTOM, RANGE(1, CFG_MAX_WORKERS),
     .default_value = "auto", .set = set_workers, .format = format_workers, .diff = diff_workers,
     .doc = "auto (an adaptive pool) or N (1..1024, a fixed pool of N)"},
    {PROXY(min_workers), .name = "min_workers", .type = CFG_T_UNSIGNED, .flags = CFG_POOL_KEY,
     RANGE(1, CFG_MAX_WORKERS), .default_doc = "max(2, CPUs)",
     .doc = "with auto: workers kept even when idle, at most max_workers"},
    {PROXY(max_workers), .name = "max_workers", .type = CFG_T_UNSIGNED, .flags = CFG_POOL_KEY,
     RANGE(1, CFG_MAX_WORKERS), .default_doc = "min(1024, 128 x CPUs)",
     .doc = "with auto: the most workers, hence the most concurrent client connections"},
    {PROXY(min_spare), .name = "min_spare", .type = CFG_T_UNSIGNED, .flags = CFG_POOL_KEY,
     RANGE(0, CFG_MAX_WORKERS), .default_doc = "max(2, CPUs)",
     .doc = "with auto: fewer idle workers than this starts more; below max_spare"},
    {PROXY(max_spare), .name = "max_spare", .type = CFG_T_UNSIGNED, .flags = CFG_POOL_KEY,
     RANGE(1, CFG_MAX_WORKERS), .default_doc = "max(8, 4 x CPUs)",
     .doc = "with auto: more idle workers than this stops some; at most max_workers"},
    {.section = CFG_SEC_PROXY,
     .name = "upstream",
     .type = CFG_T_CUSTOM,
     .default_doc = "required",
     .set = set_upstream,
     .format = format_upstream,
     .doc = "the [upstream NAME] group that serves requests"},
    {PROXY(error_log), .name = "error_log", .type = CFG_T_STRING, .default_value = "stderr",
     .doc = "stderr or a path"},
    {PROXY(access_log), .name = "access_log", .type = CFG_T_STRING, .default_value = "stderr",
     .doc = "stderr, a path, or off"},
    {PROXY(access_log_format), .name = "access_log_format", .type = CFG_T_ENUM,
     WORDS(cfg_log_format_names), .what = "log format", .default_value = "main",
     .doc =
         "main (with route and request id), combined (Apache/nginx) or json (one object a line)"},
    {PROXY(log_level), .name = "log_level", .type = CFG_T_ENUM, WORDS(cfg_log_level_names),
     .what = "level", .default_value = "info", .doc = "error, warn, info or debug"},
    {PROXY(keepalive_timeout_ms), .name = "keepalive_timeout", .type = CFG_T_DURATION,
     .default_value = "5s", .doc = "idle client connection between requests; 0 = no keep-alive"},
    {PROXY(keepalive_requests), .name = "keepalive_requests", .type = CFG_T_UNSIGNED,
     RANGE(1, 1000000), .default_value = "1000", .doc = "requests per client connection"},
    {PROXY(client_header_timeout_ms), .name = "client_header_timeout", .type = CFG_T_DURATION,
     RANGE(1, 0), .default_value = "10s", .doc = "for the whole request head, > 0"},
    {PROXY(client_body_timeout_ms), .name = "client_body_timeout", .type = CFG_T_DURATION,
     RANGE(1, 0), .default_value = "30s", .doc = "between two reads of a request body, > 0"},
    {PROXY(send_timeout_ms), .name = "send_timeout", .type = CFG_T_DURATION, RANGE(1, 0),
     .default_value = "30s", .doc = "between two writes to the client, > 0"},
    {PROXY(lingering_close), .name = "lingering_close", .type = CFG_T_ENUM,
     WORDS(cfg_lingering_names), .what = "mode", .default_value = "on",
     .doc = "read what the client still sends before closing: off, on (when it may) or always"},
    {PROXY(lingering_time_ms), .name = "lingering_time", .type = CFG_T_DURATION, RANGE(1, 0),
     .default_value = "30s", .doc = "the most a lingering close reads and discards, > 0"},
    {PROXY(lingering_timeout_ms), .name = "lingering_timeout", .type = CFG_T_DURATION, RANGE(1, 0),
     .default_value = "5s",
     .doc = "a lingering close waits this long for more bytes, then closes, > 0"},
    {PROXY(client_header_min_rate), .name = "client_header_min_rate", .type = CFG_T_UNSIGNED,
     RANGE(0, 1000000000), .default_value = "256",
     .doc = "bytes/s a request head must keep up after its first second; 0 = off"},
    {PROXY(client_body_min_rate), .name = "client_body_min_rate", .type = CFG_T_UNSIGNED,
     RANGE(0, 1000000000), .default_value = "256",
     .doc = "bytes/s a request body must keep up from its first byte, after a second; 0 = off"},
    {PROXY(max_conns_per_ip), .name = "max_conns_per_ip", .type = CFG_T_UNSIGNED,
     RANGE(0, 1000000), .default_value = "0",
     .doc = "concurrent connections per client address; 0 = unlimited"},
    {PROXY(client_max_body_size), .name = "client_max_body_size", .type = CFG_T_SIZE,
     RANGE(0, UINT64_MAX), .range_text = "max 1024g", .default_value = "1m",
     .doc = "larger request bodies get 413; 0 = unlimited"},
    {PROXY(max_header_size), .name = "max_header_size", .type = CFG_T_SIZE,
     RANGE(1024, 1024 * 1024), .range_text = "1k..1m", .default_value = "16k",
     .doc = "the request head: a longer request line gets 414, a longer head 431"},
    {PROXY(underscores_in_headers), .name = "underscores_in_headers", .type = CFG_T_ENUM,
     WORDS(cfg_underscores_names), .what = "policy", .default_value = "drop",
     .doc = "request headers with '_' in their name: drop, reject (400) or allow"},
    {PROXY(pid_file), .name = "pid_file", .type = CFG_T_STRING, .flags = CFG_AT_START,
     .default_doc = "none", .set = set_pid_file,
     .doc = "a path where the master writes its pid; needed by -s"},
    {PROXY(user), .name = "user", .type = CFG_T_STRING, .default_doc = "none", .set = set_user,
     .doc = "started as root, the workers and the health checker run as this user"},
    {PROXY(shutdown_timeout_ms), .name = "shutdown_timeout", .type = CFG_T_DURATION, RANGE(1, 0),
     .default_value = "30s", .doc = "bounds a graceful stop and a reload's drain, > 0"},
    {PROXY(redirect_https), .name = "redirect_https", .type = CFG_T_BOOL, WORDS(cfg_yes_no),
     .default_value = "no",
     .doc = "plain listeners answer 301 (GET, HEAD) or 308 to https://host[:first tls port]"},
    {PROXY(server_timing), .name = "server_timing", .type = CFG_T_BOOL, WORDS(cfg_on_off),
     .default_value = "off",
     .doc = "responses carry Server-Timing: mp-connect, mp-upstream, mp-total"},
    {PROXY(splice), .name = "splice", .type = CFG_T_BOOL, WORDS(cfg_on_off),
     .default_value = "on",
     .doc = "bodies not re-framed go socket to socket by splice(), without TLS (zero copy)"},
    {PROXY(request_id), .name = "request_id", .type = CFG_T_BOOL, WORDS(cfg_on_off),
     .default_value = "off",
     .doc =
         "X-Request-Id: the client's kept if valid, else made; to the upstream, back and logged"},
    {.section = CFG_SEC_PROXY,
     .name = "trusted_proxies",
     .type = CFG_T_CUSTOM,
     .flags = CFG_EMPTY_OK,
     .default_doc = "none",
     .set = set_trusted_proxies,
     .format = format_trusted_proxies,
     .doc = "CIDRs whose X-Forwarded-For is believed (the client: its last untrusted entry)"},
    {PROXY(websocket), .name = "websocket", .type = CFG_T_BOOL, WORDS(cfg_on_off),
     .default_value = "on",
     .doc = "tunnel requests with Upgrade: websocket; other Upgrade values are dropped"},
    {PROXY(tunnel_timeout_ms), .name = "tunnel_timeout", .type = CFG_T_DURATION, RANGE(1, 0),
     .default_value = "1h", .doc = "a WebSocket tunnel idle this long both ways is closed, > 0"},

    /* [admin] */
    {ADMIN(admin_addr), .name = "listen", .type = CFG_T_ADDR, .default_doc = "required",
     .doc = "ip:port that serves /status, /status.json and /metrics; keep it on loopback"},

    /* [tls] */
    {.section = CFG_SEC_TLS,
     .name = "certificate",
     .type = CFG_T_CUSTOM,
     .flags = CFG_REPEATABLE,
     .default_doc = "required",
     .set = set_tls_cert,
     .dump = dump_tls_cert,
     .diff = diff_tls_cert,
     .doc = "PEM chain, leaf first, with its key or key=PATH; repeatable; first is the default"},
    {TLS(tls_protocols), .name = "protocols", .type = CFG_T_STRING,
     .default_value = MP_TLS_DEFAULT_PROTOCOLS, .doc = "TLSv1.2 and/or TLSv1.3"},
    {TLS(tls_ciphers), .name = "ciphers", .type = CFG_T_STRING,
     .default_value = MP_TLS_DEFAULT_CIPHERS,
     .doc = "TLS 1.2 ciphers, OpenSSL syntax, server order"},
    {TLS(tls_ciphersuites), .name = "ciphersuites", .type = CFG_T_STRING,
     .default_value = MP_TLS_DEFAULT_CIPHERSUITES, .doc = "TLS 1.3 suites, ':'-separated"},
    {TLS(tls_session_cache), .name = "session_cache", .type = CFG_T_SIZE, .flags = CFG_AT_START,
     RANGE(0, 1024 * 1024 * 1024), .range_text = "0..1g", .default_value = "4m",
     .doc = "session cache shared by every worker, in bytes; 0 = off"},
    {TLS(tls_session_timeout_ms), .name = "session_timeout", .type = CFG_T_DURATION, RANGE(1, 0),
     .default_value = "1h", .format = format_duration_h,
     .doc = "how long a session resumes, and the ticket key rotation period, > 0"},
    {TLS(tls_session_tickets), .name = "session_tickets", .type = CFG_T_BOOL, WORDS(cfg_on_off),
     .default_value = "on", .doc = "session tickets with keys the master makes and rotates"},
    {TLS(tls_ticket_key_file), .name = "session_ticket_key_file", .type = CFG_T_STRING,
     .flags = CFG_EMPTY_OK, .default_doc = "none",
     .doc = "48-byte ticket keys shared by several instances; the first one encrypts"},
    {TLS(tls_handshake_timeout_ms), .name = "handshake_timeout", .type = CFG_T_DURATION,
     RANGE(1, 0), .default_value = "10s", .doc = "for the whole TLS handshake, > 0"},
    {TLS(tls_strict_sni), .name = "strict_sni", .type = CFG_T_BOOL, WORDS(cfg_yes_no),
     .default_value = "no", .doc = "yes: a name no certificate covers gets a handshake alert"},
    {TLS(tls_hsts), .name = "hsts", .type = CFG_T_UNSIGNED, RANGE(0, 315360000),
     .default_value = "0", .doc = "Strict-Transport-Security max-age on TLS responses; 0 = none"},
    {TLS(tls_client_cert), .name = "client_certificate", .type = CFG_T_ENUM,
     WORDS(cfg_client_cert_names), .what = "mode", .default_value = "off",
     .doc = "off, optional or required (mutual TLS)"},
    {TLS(tls_client_ca), .name = "client_ca", .type = CFG_T_STRING, .flags = CFG_EMPTY_OK,
     .default_doc = "none", .doc = "the CA file client certificates must chain to"},

    /* [upstream NAME] */
    {.section = CFG_SEC_UPSTREAM,
     .name = "server",
     .type = CFG_T_CUSTOM,
     .flags = CFG_REPEATABLE,
     .default_doc = "required",
     .set = set_server,
     .dump = dump_server,
     .diff = diff_server,
     .doc = "ip:port [weight=N] [backup]; repeatable (at most 256)"},
    {GROUP(connect_timeout_ms), .name = "connect_timeout", .type = CFG_T_DURATION, RANGE(1, 0),
     .default_value = "3s", .doc = "connecting to a server, > 0; 504 on timeout"},
    {GROUP(read_timeout_ms), .name = "read_timeout", .type = CFG_T_DURATION, RANGE(1, 0),
     .default_value = "60s", .doc = "between two reads from the upstream, > 0"},
    {GROUP(keepalive), .name = "keepalive", .type = CFG_T_UNSIGNED, RANGE(0, 1024),
     .default_value = "16", .doc = "idle upstream connections kept per worker; 0 = none"},
    {GROUP(preserve_host), .name = "preserve_host", .type = CFG_T_BOOL, WORDS(cfg_yes_no),
     .default_value = "no", .doc = "forward the client's Host instead of the server's"},
    {GROUP(balance), .name = "balance", .type = CFG_T_ENUM, WORDS(cfg_balance_names),
     .what = "balance", .default_value = "round_robin",
     .doc = "round_robin, least_conn, random or hash"},
    {GROUP(hash_key), .name = "hash_key", .type = CFG_T_CUSTOM, .default_value = "client_ip",
     .set = set_hash_key, .format = format_hash_key,
     .doc = "for balance = hash: client_ip or header:NAME"},
    {GROUP(retries), .name = "retries", .type = CFG_T_UNSIGNED, RANGE(0, 10), .default_value = "2",
     .doc = "other servers tried after a failure"},
    {GROUP(health_check), .name = "health_check", .type = CFG_T_BOOL, WORDS(cfg_on_off),
     .default_value = "on", .doc = "active health checks of the group's servers"},
    {GROUP(health_path), .name = "health_path", .type = CFG_T_CUSTOM, .default_value = "/health",
     .set = set_health_path, .format = format_chars,
     .doc = "the path probed with GET: starts with '/', visible ASCII, at most 255 bytes"},
    {GROUP(health_interval_ms), .name = "health_interval", .type = CFG_T_DURATION, RANGE(1, 0),
     .default_value = "2s", .doc = "between two probes of a server, > 0"},
    {GROUP(health_interval_down_ms), .name = "health_interval_down", .type = CFG_T_DURATION,
     RANGE(1, 0), .default_doc = "min(1s, health_interval)",
     .doc = "between two probes of a server that is down (HAProxy's downinter), > 0"},
    {GROUP(health_timeout_ms), .name = "health_timeout", .type = CFG_T_DURATION, RANGE(1, 0),
     .default_value = "1s", .doc = "a probe without a status line by then fails, > 0"},
    {GROUP(rise), .name = "rise", .type = CFG_T_UNSIGNED, RANGE(1, 100), .default_value = "2",
     .doc = "good probes in a row before a down server is up"},
    {GROUP(fall), .name = "fall", .type = CFG_T_UNSIGNED, RANGE(1, 100), .default_value = "3",
     .doc = "failed probes in a row before an up server is down"},
    {GROUP(health_status_min), .name = "health_status", .type = CFG_T_CUSTOM,
     .default_value = "200-399", .set = set_health_status, .format = format_health_status,
     .doc = "statuses that make a probe good: N or N-M within 100..599"},
    {GROUP(max_fails), .name = "max_fails", .type = CFG_T_UNSIGNED, RANGE(0, 1000),
     .default_value = "5",
     .doc = "consecutive failures (a success resets the count) that open the breaker; 0 = never"},
    {GROUP(fail_window_ms), .name = "fail_window", .type = CFG_T_DURATION, RANGE(1, 0),
     .default_value = "10s", .doc = "max_fails failures must all come within this span, > 0"},
    {GROUP(max_ejected_percent), .name = "max_ejected_percent", .type = CFG_T_UNSIGNED,
     RANGE(0, 100), .default_value = "50",
     .doc = "most of the servers up that the breaker may hold out (never the last one), in %"},
    {GROUP(cooldown_ms), .name = "cooldown", .type = CFG_T_DURATION, RANGE(1, 0),
     .default_value = "10s", .doc = "an open breaker keeps the server out this long, > 0"},
    {GROUP(fail_on_5xx), .name = "fail_on_5xx", .type = CFG_T_BOOL, WORDS(cfg_yes_no),
     .default_value = "no", .doc = "count 5xx answers as failures too"},
    {GROUP(tls), .name = "tls", .type = CFG_T_BOOL, WORDS(cfg_on_off), .default_value = "off",
     .doc = "on: connect to the group's servers (and probe them) with TLS"},
    {GROUP(tls_verify), .name = "tls_verify", .type = CFG_T_BOOL, WORDS(cfg_on_off),
     .default_value = "on", .doc = "verify the server's certificate chain and name"},
    {GROUP(tls_ca), .name = "tls_ca", .type = CFG_T_STRING, .default_value = "system",
     .doc = "the CAs that verify servers: system (the system's store) or a PEM file"},
    {GROUP(tls_server_name), .name = "tls_server_name", .type = CFG_T_STRING,
     .default_doc = "the server's host", .set = set_tls_server_name,
     .doc = "the name sent as SNI and verified; not set: each server's host as written"},

    /* [route NAME] */
    {.section = CFG_SEC_ROUTE,
     .name = "host",
     .type = CFG_T_CUSTOM,
     .default_doc = "any",
     .set = set_route_host,
     .format = format_route_host,
     .doc = "host names, exact or *.wildcard, separated by spaces; absent: any host"},
    {.section = CFG_SEC_ROUTE,
     .name = "path",
     .type = CFG_T_CUSTOM,
     .default_value = "/",
     .set = set_route_path,
     .format = format_route_path,
     .doc = "a path prefix, matched on the normalised path"},
    {ROUTE(upstream), .name = "upstream", .type = CFG_T_CUSTOM, .default_doc = "required",
     .set = set_route_upstream, .format = format_chars,
     .doc = "the [upstream NAME] group that serves the route's requests"},
    {ROUTE(strip_prefix), .name = "strip_prefix", .type = CFG_T_BOOL, WORDS(cfg_yes_no),
     .default_value = "no", .doc = "yes: the path reaches the upstream without the prefix"},
    {.section = CFG_SEC_ROUTE,
     .name = "request_header",
     .type = CFG_T_CUSTOM,
     .flags = CFG_REPEATABLE,
     .default_doc = "none",
     .set = set_request_header,
     .format = format_headers,
     .dump = dump_headers,
     .doc = "Name: value, set (replacing) on the way to the upstream; repeatable"},
    {.section = CFG_SEC_ROUTE,
     .name = "response_header",
     .type = CFG_T_CUSTOM,
     .flags = CFG_REPEATABLE,
     .default_doc = "none",
     .set = set_response_header,
     .format = format_headers,
     .dump = dump_headers,
     .doc = "Name: value, set (replacing) on the way back to the client; repeatable"},
    {.section = CFG_SEC_ROUTE,
     .name = "hide_response_header",
     .type = CFG_T_CUSTOM,
     .flags = CFG_REPEATABLE,
     .default_doc = "none",
     .set = set_hide_response_header,
     .format = format_hide,
     .dump = dump_hide,
     .doc = "a header removed from the upstream's responses; repeatable"},
};

_Static_assert(NELEM(cfg_keys) <= CFG_NKEYS_MAX, "raise CFG_NKEYS_MAX");

static const char *
cfg_section_name(enum cfg_section section)
{
    switch (section) {
    case CFG_SEC_PROXY:
        return "proxy";
    case CFG_SEC_ADMIN:
        return "admin";
    case CFG_SEC_UPSTREAM:
        return "upstream NAME";
    case CFG_SEC_TLS:
        return "tls";
    case CFG_SEC_ROUTE:
        return "route NAME";
    case CFG_SEC_NONE:
        break;
    }
    return "";
}

/* The row of <name> in <section>, or -1. */
static int
cfg_find_key(enum cfg_section section, const char *name)
{
    for (size_t i = 0; i < NELEM(cfg_keys); i++)
        if (cfg_keys[i].section == section && strcmp(cfg_keys[i].name, name) == 0)
            return (int)i;
    return -1;
}

int
cfg_key_doc(size_t i, struct cfg_key_doc *out)
{
    const struct cfg_key *key;

    if (i >= NELEM(cfg_keys))
        return -1;
    key = &cfg_keys[i];
    out->section = cfg_section_name(key->section);
    out->name = key->name;
    out->default_value = key->default_value;
    out->default_doc = key->default_doc != NULL ? key->default_doc : key->default_value;
    out->doc = key->doc;
    out->reloadable = (key->flags & CFG_AT_START) == 0;
    return 0;
}

/*
 * Applies the defaults of <section>'s rows to <base>, by parsing each
 * row's default text with its setter. Returns 0, or -1 after recording
 * the error (a row whose default does not parse: a bug the tests catch).
 */
static int
cfg_apply_defaults(struct cfg_state *st, enum cfg_section section, void *base)
{
    char why[512];

    for (size_t i = 0; i < NELEM(cfg_keys); i++) {
        const struct cfg_key *key = &cfg_keys[i];

        if (key->section != section || key->default_value == NULL)
            continue;
        if (cfg_set(st, key, base, key->default_value, why, sizeof(why)) == -1) {
            cfg_fail(st, st->lineno, "[%s] %s: bad default \"%s\": %s", cfg_section_name(section),
                     key->name, key->default_value, why);
            return -1;
        }
    }
    return 0;
}

/* ---- inih callbacks -------------------------------------------------- */

/* The struct a row of the current section is stored in. */
static void *
cfg_base(struct cfg_state *st)
{
    if (st->section == CFG_SEC_UPSTREAM)
        return &st->cfg->groups[st->group];
    if (st->section == CFG_SEC_ROUTE)
        return &st->cfg->routes[st->route];
    return st->cfg;
}

/* Where the lines of first use are kept for the current section. */
static int *
cfg_seen(struct cfg_state *st)
{
    if (st->section == CFG_SEC_UPSTREAM)
        return st->group_seen[st->group];
    if (st->section == CFG_SEC_ROUTE)
        return st->route_seen[st->route];
    return st->proxy_seen; /* [proxy] and [admin] rows are distinct */
}

/* The line where [proxy] or [admin] <name> was first given, 0 if not. */
static int
cfg_seen_line(const struct cfg_state *st, enum cfg_section section, const char *name)
{
    int i = cfg_find_key(section, name);

    return i >= 0 ? st->proxy_seen[i] : 0;
}

/*
 * inih handler: one "key = value" of the current section (tracked by the
 * reader; inih's <section> argument is ignored, see the top of the file).
 * Returns 0 (error) after recording the message.
 */
static int
cfg_handler(void *user, const char *section, const char *name, const char *val)
{
    struct cfg_state *st = user;
    const struct cfg_key *key;
    char why[512];
    int *seen, i;

    (void)section;
    if (st->section == CFG_SEC_NONE) {
        cfg_fail(st, st->lineno, "%s: key outside of any section", name);
        return 0;
    }
    i = cfg_find_key(st->section, name);
    if (i < 0) {
        cfg_fail(st, st->lineno, "[%s] %s: unknown key", st->section_text, name);
        return 0;
    }
    key = &cfg_keys[i];
    seen = cfg_seen(st);
    if (!(key->flags & CFG_REPEATABLE) && seen[i] != 0) {
        cfg_fail(st, st->lineno, "[%s] %s: given twice, first at line %d", st->section_text, name,
                 seen[i]);
        return 0;
    }
    if (seen[i] == 0)
        seen[i] = st->lineno;
    if (*val == '\0' && (key->flags & CFG_EMPTY_OK) && key->type == CFG_T_STRING) {
        char **p = cfg_field(key, cfg_base(st));

        free(*p);
        *p = NULL;
        return 1;
    }
    if (*val == '\0' && !(key->flags & CFG_EMPTY_OK)) {
        cfg_fail(st, st->lineno, "[%s] %s: empty value", st->section_text, name);
        return 0;
    }
    if (cfg_set(st, key, cfg_base(st), val, why, sizeof(why)) == -1) {
        cfg_fail(st, st->lineno, "[%s] %s: %s", st->section_text, name, why);
        return 0;
    }
    return 1;
}

/*
 * Checks the <name> of a new [<kind> NAME] section (written <header>): given,
 * valid, not the name of one of the <n> entries of <arr> (each <size> bytes,
 * its name first, its line at <line_off>), and fewer than <max> of them
 * (<plural>: "upstream groups"). <what> names the name in messages ("group").
 * Returns 0, or -1 after recording the error.
 */
_Static_assert(offsetof(struct cfg_group, name) == 0 && offsetof(struct cfg_route, name) == 0,
               "cfg_check_new_name() reads an entry's name at its start");

static int
cfg_check_new_name(struct cfg_state *st, const char *kind, const char *what, const char *plural,
                   const char *header, const char *name, const void *arr, size_t n, size_t size,
                   size_t line_off, size_t max)
{
    if (*name == '\0') {
        cfg_fail(st, st->lineno, "[%s]: missing %s name ([%s NAME])", kind, what, kind);
        return -1;
    }
    if (!cfg_valid_name(name)) {
        cfg_fail(st, st->lineno, "[%s]: bad %s name \"%s\" ([A-Za-z0-9_.-], 1 to %d characters)",
                 header, what, name, CFG_NAME_MAX - 1);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const char *entry = (const char *)arr + i * size;
        if (strcmp(entry, name) == 0) {
            cfg_fail(st, st->lineno, "[%s %s]: duplicate %s name, first at line %d", kind, name,
                     what, *(const int *)(entry + line_off));
            return -1;
        }
    }
    if (n >= max) {
        cfg_fail(st, st->lineno, "[%s %s]: too many %s (max %zu)", kind, name, plural, max);
        return -1;
    }
    return 0;
}

/* [upstream <name>] (the name not yet checked): a new group with its defaults. */
static void
cfg_new_group(struct cfg_state *st, const char *header, const char *name)
{
    struct config *cfg = st->cfg;
    struct cfg_group *g;
    void *arr;

    if (cfg_check_new_name(st, "upstream", "group", "upstream groups", header, name, cfg->groups,
                           cfg->ngroups, sizeof(*g), offsetof(struct cfg_group, line),
                           CFG_MAX_GROUPS) == -1)
        return;
    g = cfg_push(cfg->groups, &cfg->ngroups, sizeof(*g), &arr);
    if (g == NULL) {
        cfg_fail(st, st->lineno, "out of memory");
        return;
    }
    cfg->groups = arr;
    snprintf(g->name, sizeof(g->name), "%s", name);
    g->line = st->lineno;
    st->section = CFG_SEC_UPSTREAM;
    st->group = cfg->ngroups - 1;
    snprintf(st->section_text, sizeof(st->section_text), "upstream %s", name);
    cfg_apply_defaults(st, CFG_SEC_UPSTREAM, g);
}

/* [route <name>] (the name not yet checked): a new route with its defaults. */
static void
cfg_new_route(struct cfg_state *st, const char *header, const char *name)
{
    struct config *cfg = st->cfg;
    struct cfg_route *r;
    void *arr;

    if (cfg_check_new_name(st, "route", "route", "routes", header, name, cfg->routes, cfg->nroutes,
                           sizeof(*r), offsetof(struct cfg_route, line), CFG_MAX_ROUTES) == -1)
        return;
    r = cfg_push(cfg->routes, &cfg->nroutes, sizeof(*r), &arr);
    if (r == NULL) {
        cfg_fail(st, st->lineno, "out of memory");
        return;
    }
    cfg->routes = arr;
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->line = st->lineno;
    st->section = CFG_SEC_ROUTE;
    st->route = cfg->nroutes - 1;
    snprintf(st->section_text, sizeof(st->section_text), "route %s", name);
    cfg_apply_defaults(st, CFG_SEC_ROUTE, r);
}

/* Whether <text> is "<word>" or "<word> ...": a section with a name. */
static bool
cfg_named_section(const char *text, const char *word)
{
    size_t n = strlen(word);

    return strncmp(text, word, n) == 0 && (text[n] == '\0' || text[n] == ' ' || text[n] == '\t');
}

/* [proxy] or [admin]: at most once each; <*first_line> records where. */
static void
cfg_single_section(struct cfg_state *st, enum cfg_section section, int *first_line)
{
    const char *name = cfg_section_name(section);

    if (*first_line != 0) {
        cfg_fail(st, st->lineno, "[%s]: section given twice, first at line %d", name, *first_line);
        return;
    }
    *first_line = st->lineno;
    st->section = section;
    snprintf(st->section_text, sizeof(st->section_text), "%s", name);
}

/* A section header line <p> (at its '['): switches the current section. */
static void
cfg_section_header(struct cfg_state *st, const char *p)
{
    const char *end = strchr(p, ']'), *rest, *b, *e;
    char text[CFG_MAX_LINE];

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

    if (strcmp(text, "proxy") == 0) {
        cfg_single_section(st, CFG_SEC_PROXY, &st->proxy_line);
        return;
    }
    if (strcmp(text, "admin") == 0) {
        cfg_single_section(st, CFG_SEC_ADMIN, &st->admin_line);
        st->cfg->admin = true;
        return;
    }
    if (strcmp(text, "tls") == 0) {
        cfg_single_section(st, CFG_SEC_TLS, &st->tls_line);
        st->cfg->tls = true;
        st->cfg->tls_line = st->lineno;
        cfg_apply_defaults(st, CFG_SEC_TLS, st->cfg);
        return;
    }
    if (cfg_named_section(text, "route")) {
        cfg_new_route(st, text, text + 5 + strspn(text + 5, " \t"));
        return;
    }
    if (!cfg_named_section(text, "upstream")) {
        cfg_fail(st, st->lineno,
                 "[%s]: unknown section (proxy, admin, tls, upstream NAME, route NAME)", text);
        return;
    }
    cfg_new_group(st, text, text + 8 + strspn(text + 8, " \t"));
}

/* Whether <c> starts a comment after a value: ';' or '#' after whitespace. */
static bool
cfg_inline_comment(const char *line, const char *c)
{
    return (*c == ';' || *c == '#') && c > line && (c[-1] == ' ' || c[-1] == '\t');
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
        cfg_section_header(st, p);
        return;
    }
    if (*p == '=') {
        cfg_fail(st, st->lineno, "syntax error: no key before '='");
        return;
    }
    for (const char *q = p; *q != '\0'; q++) {
        if (*q == '=')
            return;
        if (*q == ':' || cfg_inline_comment(p, q))
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

/* ---- validation ------------------------------------------------------ */

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
    cfg->admin_line = cfg_seen_line(st, CFG_SEC_ADMIN, "listen");
    if (cfg->admin_line == 0) {
        cfg_fail(st, st->admin_line, "[admin] listen: missing, listen = ADDR is required");
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
 * workers = N: min_workers = max_workers = N; min_spare and max_spare stay
 * 0 (a fixed pool keeps no spares); the four pool keys are errors, reported
 * at the first of them in the file.
 */
static int
cfg_validate_fixed_pool(struct cfg_state *st)
{
    struct config *cfg = st->cfg;
    const char *first = NULL;
    int line = 0;

    for (size_t i = 0; i < NELEM(cfg_keys); i++) {
        int l = st->proxy_seen[i];

        if ((cfg_keys[i].flags & CFG_POOL_KEY) && l != 0 && (line == 0 || l < line)) {
            line = l;
            first = cfg_keys[i].name;
        }
    }
    if (line != 0) {
        cfg_fail(st, line, "[proxy] %s: only with workers = auto", first);
        return -1;
    }
    cfg->min_workers = cfg->max_workers = cfg->worker_slots;
    cfg->min_spare = cfg->max_spare = 0;
    return 0;
}

/*
 * The worker pool, once every [proxy] key is known (`workers` may come
 * after the keys it forbids, so errors are reported at their own lines).
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
 * <worker_slots> is max_workers.
 */
static int
cfg_validate_pool(struct cfg_state *st)
{
    struct config *cfg = st->cfg;
    int min_workers = cfg_seen_line(st, CFG_SEC_PROXY, "min_workers");
    int max_workers = cfg_seen_line(st, CFG_SEC_PROXY, "max_workers");
    int min_spare = cfg_seen_line(st, CFG_SEC_PROXY, "min_spare");
    int max_spare = cfg_seen_line(st, CFG_SEC_PROXY, "max_spare");
    unsigned cpus = cfg_cpus(), v;

    if (!cfg->workers_auto)
        return cfg_validate_fixed_pool(st);
    if (max_workers == 0)
        cfg->max_workers = cfg_umin(128 * cpus, CFG_MAX_WORKERS);
    if (min_workers == 0)
        cfg->min_workers = cfg_umin(cfg_umax(2, cpus), cfg->max_workers);
    if (max_spare == 0) {
        v = cfg_umax(8, 4 * cpus);
        if (min_spare != 0)
            v = cfg_umax(v, cfg->min_spare + 1);
        cfg->max_spare = cfg_umin(v, cfg->max_workers); /* >= 1: so is max_workers */
    }
    if (min_spare == 0)
        cfg->min_spare = cfg_umin(cfg_umax(2, cpus), cfg->max_spare - 1);

    /* Given the defaults above, each failure below implies its key was given. */
    if (cfg->min_workers > cfg->max_workers) {
        cfg_fail(st, min_workers, "[proxy] min_workers: min_workers %u is above max_workers %u",
                 cfg->min_workers, cfg->max_workers);
        return -1;
    }
    if (cfg->max_spare > cfg->max_workers) {
        cfg_fail(st, max_spare, "[proxy] max_spare: max_spare %u is above max_workers %u",
                 cfg->max_spare, cfg->max_workers);
        return -1;
    }
    if (cfg->min_spare >= cfg->max_spare) {
        /* without a max_spare, only max_workers (its bound) can be in the way */
        cfg_fail(st, min_spare, "[proxy] min_spare: min_spare %u is not below %s %u",
                 cfg->min_spare, max_spare != 0 ? "max_spare" : "max_workers",
                 max_spare != 0 ? cfg->max_spare : cfg->max_workers);
        return -1;
    }
    cfg->worker_slots = cfg->max_workers;
    return 0;
}

/*
 * TLS to group <i>'s servers: its context, made here once (in the master:
 * the workers and the checker inherit it), which also reads and checks a
 * CA file. A CA file is checked with tls = off too, so that a typo shows
 * before tls is turned on. Errors are reported at tls_ca's line, or the
 * group's when it is not given.
 */
static int
cfg_validate_group_tls(struct cfg_state *st, size_t i)
{
    struct cfg_group *g = &st->cfg->groups[i];
    char why[512];
    SSL_CTX *ctx;

    if (!g->tls && strcmp(g->tls_ca, "system") == 0)
        return 0;
    if (upconn_ctx_new(g, &ctx, why, sizeof(why)) == -1) {
        int line = st->group_seen[i][cfg_find_key(CFG_SEC_UPSTREAM, "tls_ca")];
        cfg_fail(st, line != 0 ? line : g->line, "[upstream %s] tls_ca: %s", g->name, why);
        return -1;
    }
    if (g->tls)
        g->tls_ctx = ctx;
    else
        upconn_ctx_free(ctx);
    return 0;
}

/* Every group has a server that is not a backup; derived group defaults. */
static int
cfg_validate_groups(struct cfg_state *st)
{
    struct config *cfg = st->cfg;

    for (size_t i = 0; i < cfg->ngroups; i++) {
        struct cfg_group *g = &cfg->groups[i];
        size_t j;

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
        /* Unset: 1s, but never probing a down server less often than an up one. */
        if (st->group_seen[i][cfg_find_key(CFG_SEC_UPSTREAM, "health_interval_down")] == 0)
            g->health_interval_down_ms =
                g->health_interval_ms < 1000 ? g->health_interval_ms : 1000;
        if (cfg_validate_group_tls(st, i) == -1)
            return -1;
    }
    return 0;
}

/* tls_load()'s warnings go to the error log (stderr for -t, -T). */
static void
cfg_tls_warn(void *arg, const char *msg)
{
    (void)arg;
    log_warn("%s", msg);
}

/*
 * [tls] and the tls listeners: a tls listener needs [tls], [tls] needs a
 * certificate; then every certificate and key is loaded and checked
 * (tls_load(): the one code path for start, -t, -T and reload).
 */
static int
cfg_validate_tls(struct cfg_state *st)
{
    struct config *cfg = st->cfg;
    struct tls_cert_spec *specs;
    char why[1024];
    int rc;

    for (size_t i = 0; i < cfg->nlisteners; i++) {
        if (cfg->listeners[i].tls && (!cfg->tls || cfg->ntls_certs == 0)) {
            cfg_fail(st, cfg->listeners[i].line,
                     "[proxy] listen: %s tls: no [tls] section with a certificate",
                     cfg->listeners[i].addr.text);
            return -1;
        }
    }
    if (cfg->redirect_https) {
        size_t i;

        for (i = 0; i < cfg->nlisteners && !cfg->listeners[i].tls; i++)
            ;
        if (i == cfg->nlisteners) {
            cfg_fail(st, cfg_seen_line(st, CFG_SEC_PROXY, "redirect_https"),
                     "[proxy] redirect_https: yes, but no listen = ADDR tls to redirect to");
            return -1;
        }
    }
    if (!cfg->tls)
        return 0;
    if (cfg->ntls_certs == 0) {
        cfg_fail(st, cfg->tls_line, "[tls] certificate: missing, at least one is required");
        return -1;
    }
    specs = calloc(cfg->ntls_certs, sizeof(*specs));
    if (specs == NULL) {
        cfg_fail(st, cfg->tls_line, "[tls]: out of memory");
        return -1;
    }
    for (size_t i = 0; i < cfg->ntls_certs; i++)
        specs[i] = (struct tls_cert_spec){.cert_path = cfg->tls_certs[i].cert,
                                          .key_path = cfg->tls_certs[i].key,
                                          .at = {st->name, cfg->tls_certs[i].line}};
#define AT(k) ((struct tls_origin){st->name, cfg_seen_line(st, CFG_SEC_TLS, k)})
    struct tls_settings set = {
        .certs = specs,
        .ncerts = cfg->ntls_certs,
        .protocols = cfg->tls_protocols,
        .protocols_at = AT("protocols"),
        .ciphers = cfg->tls_ciphers,
        .ciphers_at = AT("ciphers"),
        .ciphersuites = cfg->tls_ciphersuites,
        .ciphersuites_at = AT("ciphersuites"),
        .strict_sni = cfg->tls_strict_sni,
        .client_cert = (enum tls_client_cert)cfg->tls_client_cert,
        .client_cert_at = AT("client_certificate"),
        .client_ca = cfg->tls_client_ca,
        .client_ca_at = AT("client_ca"),
        .tickets = cfg->tls_session_tickets,
        .shared_cache = cfg->tls_session_cache > 0,
        .timeout_s =
            (long)(cfg->tls_session_timeout_ms / 1000 > 0 ? cfg->tls_session_timeout_ms / 1000
                                                          : 1),
        .ticket_key_file = cfg->tls_ticket_key_file,
        .ticket_key_file_at = AT("session_ticket_key_file"),
    };
#undef AT
    /* A default has no line: tls_load() then leaves the origin out. */
    if (set.protocols_at.line == 0)
        set.protocols_at.file = NULL;
    if (set.ciphers_at.line == 0)
        set.ciphers_at.file = NULL;
    if (set.ciphersuites_at.line == 0)
        set.ciphersuites_at.file = NULL;
    if (set.client_cert_at.line == 0)
        set.client_cert_at = (struct tls_origin){st->name, cfg->tls_line};
    if (set.client_ca_at.line == 0)
        set.client_ca_at.file = NULL;
    rc = tls_load(&set, &cfg->tls_store, why, sizeof(why), cfg_tls_warn, NULL);
    free(specs);
    if (rc == -1) {
        /* tls_load() names file, line and key itself */
        snprintf(st->err, st->errlen, "%s", why);
        st->failed = true;
        return -1;
    }
    return 0;
}

/* Whether routes <a> and <b> name the same set of hosts (in any order). */
static bool
cfg_same_hosts(const struct cfg_route *a, const struct cfg_route *b)
{
    if (a->nhosts != b->nhosts)
        return false;
    for (size_t i = 0; i < a->nhosts; i++) {
        size_t j;
        for (j = 0; j < b->nhosts; j++)
            if (strcmp(a->hosts[i], b->hosts[j]) == 0)
                break;
        if (j == b->nhosts)
            return false; /* names are unique within a route, so this is enough */
    }
    return true;
}

/*
 * Each route names an existing group; no two routes have the same host set
 * and path (the second could never be chosen: an error naming both lines).
 */
static int
cfg_validate_routes(struct cfg_state *st)
{
    struct config *cfg = st->cfg;
    int up = cfg_find_key(CFG_SEC_ROUTE, "upstream");

    for (size_t i = 0; i < cfg->nroutes; i++) {
        struct cfg_route *r = &cfg->routes[i];
        size_t g;

        if (st->route_seen[i][up] == 0) {
            cfg_fail(st, r->line, "[route %s] upstream: missing, upstream = NAME is required",
                     r->name);
            return -1;
        }
        for (g = 0; g < cfg->ngroups; g++)
            if (strcmp(cfg->groups[g].name, r->upstream) == 0)
                break;
        if (g == cfg->ngroups) {
            cfg_fail(st, st->route_seen[i][up], "[route %s] upstream: no [upstream %s] section",
                     r->name, r->upstream);
            return -1;
        }
        r->group = g;
        for (size_t j = 0; j < i; j++) {
            const struct cfg_route *o = &cfg->routes[j];

            if (strcmp(o->path, r->path) == 0 && cfg_same_hosts(o, r)) {
                cfg_fail(st, r->line,
                         "[route %s]: same host and path as [route %s] at line %d: it could "
                         "never match",
                         r->name, o->name, o->line);
                return -1;
            }
        }
    }
    return 0;
}

/* The whole-file checks, once every line was read. */
static int
cfg_validate(struct cfg_state *st)
{
    struct config *cfg = st->cfg;
    int pline = st->proxy_line != 0 ? st->proxy_line : 1;
    int upstream_line = cfg_seen_line(st, CFG_SEC_PROXY, "upstream");
    size_t i;

    if (cfg->nlisteners == 0) {
        cfg_fail(st, pline, "[proxy] listen: missing, at least one listen = is required");
        return -1;
    }
    if (upstream_line == 0) {
        cfg_fail(st, pline, "[proxy] upstream: missing, upstream = NAME is required");
        return -1;
    }
    for (i = 0; i < cfg->ngroups; i++)
        if (strcmp(cfg->groups[i].name, st->upstream) == 0)
            break;
    if (i == cfg->ngroups) {
        cfg_fail(st, upstream_line, "[proxy] upstream: no [upstream %s] section", st->upstream);
        return -1;
    }
    cfg->group = i;
    if (cfg_validate_pool(st) == -1 || cfg_validate_admin(st) == -1 ||
        cfg_validate_groups(st) == -1 || cfg_validate_tls(st) == -1 ||
        cfg_validate_routes(st) == -1)
        return -1;
    return 0;
}

/* ---- loading --------------------------------------------------------- */

/* inih's runtime options (globals in Debian's build): set them all, every time. */
static void
cfg_setup_inih(void)
{
    static char start_comments[] = ";#", inline_comments[] = ";#";

    ini_allow_multiline = false; /* one line is one key */
    ini_allow_bom = true;
    ini_start_comment_prefixes = start_comments;
    /* "key = value   ; comment" or "# comment": inih takes a prefix after whitespace only */
    ini_allow_inline_comments = true;
    ini_inline_comment_prefixes = inline_comments;
    ini_use_stack = true;
    ini_max_line = CFG_MAX_LINE;
    ini_allow_realloc = false;
    ini_stop_on_first_error = true;
    ini_allow_no_value = false;
}

/* Runs the parse over <st> (whose fp or text is set). */
static struct config *
cfg_run(struct cfg_state *st)
{
    struct config *cfg;
    int rc;

    cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        snprintf(st->err, st->errlen, "%s: out of memory", st->name);
        return NULL;
    }
    st->cfg = cfg;
    cfg->path = strdup(st->name);
    if (cfg->path == NULL) {
        snprintf(st->err, st->errlen, "%s: out of memory", st->name);
        goto fail;
    }
    if (cfg_apply_defaults(st, CFG_SEC_PROXY, cfg) == -1)
        goto fail;

    cfg_setup_inih();
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

/*
 * A load's state: large (the lines each key was first given, per group), so
 * on the heap rather than on a worker's stack.
 */
static struct config *
cfg_load_with(const char *name, FILE *fp, const char *text, char *err, size_t errlen)
{
    struct cfg_state *st = calloc(1, sizeof(*st));
    struct config *cfg;

    if (st == NULL) {
        snprintf(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    st->name = name;
    st->err = err;
    st->errlen = errlen;
    st->fp = fp;
    st->text = text;
    cfg = cfg_run(st);
    free(st);
    return cfg;
}

struct config *
cfg_load(const char *path, char *err, size_t errlen)
{
    struct config *cfg;
    FILE *fp = fopen(path, "r");

    if (fp == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    cfg = cfg_load_with(path, fp, NULL, err, errlen);
    fclose(fp);
    return cfg;
}

struct config *
cfg_load_string(const char *text, const char *name, char *err, size_t errlen)
{
    return cfg_load_with(name, NULL, text, err, errlen);
}

void
cfg_free(struct config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->ngroups; i++) {
        free(cfg->groups[i].servers);
        free(cfg->groups[i].tls_ca);
        free(cfg->groups[i].tls_server_name);
        upconn_ctx_free(cfg->groups[i].tls_ctx);
    }
    free(cfg->groups);
    for (size_t i = 0; i < cfg->nroutes; i++) {
        struct cfg_route *r = &cfg->routes[i];

        cfg_free_strings(r->hosts, r->nhosts);
        free(r->path);
        for (size_t j = 0; j < r->nrequest_headers; j++) {
            free(r->request_headers[j].name);
            free(r->request_headers[j].value);
        }
        free(r->request_headers);
        for (size_t j = 0; j < r->nresponse_headers; j++) {
            free(r->response_headers[j].name);
            free(r->response_headers[j].value);
        }
        free(r->response_headers);
        cfg_free_strings(r->hide_response_headers, r->nhide_response_headers);
    }
    free(cfg->routes);
    free(cfg->trusted_proxies);
    free(cfg->listeners);
    for (size_t i = 0; i < cfg->ntls_certs; i++) {
        free(cfg->tls_certs[i].cert);
        free(cfg->tls_certs[i].key);
    }
    free(cfg->tls_certs);
    free(cfg->tls_protocols);
    free(cfg->tls_ciphers);
    free(cfg->tls_ciphersuites);
    free(cfg->tls_ticket_key_file);
    free(cfg->tls_client_ca);
    tls_free(cfg->tls_store);
    free(cfg->error_log);
    free(cfg->access_log);
    free(cfg->pid_file);
    free(cfg->user);
    free(cfg->path);
    free(cfg);
}

/* ---- cfg_diff and cfg_dump ------------------------------------------- */

/* Whether <cfg> has the section of <key> ([admin] is optional). */
static bool
cfg_has_section(const struct config *cfg, const struct cfg_key *key)
{
    return (key->section != CFG_SEC_ADMIN || cfg->admin) &&
           (key->section != CFG_SEC_TLS || cfg->tls);
}

/*
 * "KEY OLD -> NEW": numbers in the unit the code uses (ms, bytes), the rest
 * as the file writes it; "none" for a value not set.
 */
static void
cfg_diff_value(struct cfg_out *o, const struct cfg_key *key, const char *pfx,
               const struct config *old, const void *old_base, const struct config *new,
               const void *new_base)
{
    char a[CFG_MAX_LINE], b[CFG_MAX_LINE];
    uint64_t ua, ub;

    switch (key->type) {
    case CFG_T_UNSIGNED:
    case CFG_T_SIZE:
        ua = cfg_load_uint(key, old_base);
        ub = cfg_load_uint(key, new_base);
        if (ua != ub)
            cfg_line(o, "%s%s %llu%s -> %llu%s", pfx, key->name, (unsigned long long)ua,
                     key->type == CFG_T_SIZE ? " bytes" : "", (unsigned long long)ub,
                     key->type == CFG_T_SIZE ? " bytes" : "");
        return;
    case CFG_T_DURATION: {
        int64_t ma = *(const int64_t *)cfg_cfield(key, old_base);
        int64_t mb = *(const int64_t *)cfg_cfield(key, new_base);

        if (ma != mb)
            cfg_line(o, "%s%s %lld ms -> %lld ms", pfx, key->name, (long long)ma, (long long)mb);
        return;
    }
    default:
        break;
    }
    if (!cfg_has_section(old, key) || !cfg_format(key, old, old_base, a, sizeof(a)))
        snprintf(a, sizeof(a), "none");
    if (!cfg_has_section(new, key) || !cfg_format(key, new, new_base, b, sizeof(b)))
        snprintf(b, sizeof(b), "none");
    if (strcmp(a, b) != 0)
        cfg_line(o, "%s%s %s -> %s", pfx, key->name, a, b);
}

/*
 * The pool: "workers 4 -> 8", "workers auto -> 8", "workers 8 -> auto"; the
 * adaptive pool's bounds (the CFG_POOL_KEY rows) only when both are auto (a
 * fixed pool has none).
 */
static void
diff_workers(struct cfg_out *o, const struct cfg_key *key, const char *pfx,
             const struct config *old, const void *old_base, const struct config *new,
             const void *new_base)
{
    if (!old->workers_auto || !new->workers_auto) {
        cfg_diff_value(o, key, pfx, old, old_base, new, new_base);
        return;
    }
    for (size_t i = 0; i < NELEM(cfg_keys); i++)
        if (cfg_keys[i].flags & CFG_POOL_KEY)
            cfg_diff_value(o, &cfg_keys[i], pfx, old, old_base, new, new_base);
}

/* Each row of <section>, in table order. */
static void
cfg_diff_section(struct cfg_out *o, enum cfg_section section, const char *pfx,
                 const struct config *old, const void *old_base, const struct config *new,
                 const void *new_base)
{
    for (size_t i = 0; i < NELEM(cfg_keys); i++) {
        const struct cfg_key *key = &cfg_keys[i];

        if (key->section != section || (key->flags & CFG_POOL_KEY))
            continue;
        (key->diff != NULL ? key->diff : cfg_diff_value)(o, key, pfx, old, old_base, new,
                                                         new_base);
    }
}

static const struct cfg_group *
cfg_find_group(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->ngroups; i++)
        if (strcmp(cfg->groups[i].name, name) == 0)
            return &cfg->groups[i];
    return NULL;
}

static const struct cfg_route *
cfg_find_route(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (strcmp(cfg->routes[i].name, name) == 0)
            return &cfg->routes[i];
    return NULL;
}

/*
 * Order: [proxy] keys (listeners first), [admin], groups removed then
 * added, then each group kept (in <new>'s order), then routes the same way. Line numbers and the
 * file name are not compared: they are not behaviour.
 */
int
cfg_diff(const struct config *old, const struct config *new,
         void (*log)(void *arg, const char *line), void *arg)
{
    struct cfg_out o = {log, arg, 0};
    char pfx[CFG_NAME_MAX + 4];

    cfg_diff_section(&o, CFG_SEC_PROXY, "", old, old, new, new);
    cfg_diff_section(&o, CFG_SEC_ADMIN, "admin ", old, old, new, new);
    if (old->tls || new->tls)
        cfg_diff_section(&o, CFG_SEC_TLS, "tls ", old, old, new, new);
    for (size_t i = 0; i < old->ngroups; i++)
        if (cfg_find_group(new, old->groups[i].name) == NULL)
            cfg_line(&o, "upstream group removed %s", old->groups[i].name);
    for (size_t i = 0; i < new->ngroups; i++)
        if (cfg_find_group(old, new->groups[i].name) == NULL)
            cfg_line(&o, "upstream group added %s", new->groups[i].name);
    for (size_t i = 0; i < new->ngroups; i++) {
        const struct cfg_group *og = cfg_find_group(old, new->groups[i].name);

        if (og == NULL)
            continue;
        snprintf(pfx, sizeof(pfx), "[%s] ", og->name);
        cfg_diff_section(&o, CFG_SEC_UPSTREAM, pfx, old, og, new, &new->groups[i]);
    }
    for (size_t i = 0; i < old->nroutes; i++)
        if (cfg_find_route(new, old->routes[i].name) == NULL)
            cfg_line(&o, "route removed %s", old->routes[i].name);
    for (size_t i = 0; i < new->nroutes; i++)
        if (cfg_find_route(old, new->routes[i].name) == NULL)
            cfg_line(&o, "route added %s", new->routes[i].name);
    for (size_t i = 0; i < new->nroutes; i++) {
        const struct cfg_route *orr = cfg_find_route(old, new->routes[i].name);
        char rpfx[CFG_NAME_MAX + 16];

        if (orr == NULL)
            continue;
        snprintf(rpfx, sizeof(rpfx), "[route %s] ", orr->name);
        cfg_diff_section(&o, CFG_SEC_ROUTE, rpfx, old, orr, new, &new->routes[i]);
    }
    return o.lines;
}

/* Each row of <section> as "key = value"; what has no value is a comment. */
static void
cfg_dump_section(struct cfg_out *o, enum cfg_section section, const struct config *cfg,
                 const void *base)
{
    char text[CFG_MAX_LINE];

    for (size_t i = 0; i < NELEM(cfg_keys); i++) {
        const struct cfg_key *key = &cfg_keys[i];

        if (key->section != section)
            continue;
        if (key->dump != NULL)
            key->dump(o, key, base);
        else if ((key->flags & CFG_POOL_KEY) && !cfg->workers_auto)
            cfg_line(o, "; %s: only with workers = auto", key->name);
        else if (!cfg_format(key, cfg, base, text, sizeof(text)))
            cfg_line(o, "; %s: not set", key->name);
        else
            cfg_line(o, "%s = %s", key->name, text);
    }
}

int
cfg_dump(const struct config *cfg, void (*emit)(void *arg, const char *line), void *arg)
{
    struct cfg_out o = {emit, arg, 0};

    cfg_line(&o, "; the effective configuration of %s: every key, defaults filled in", cfg->path);
    cfg_line(&o, "[proxy]");
    cfg_dump_section(&o, CFG_SEC_PROXY, cfg, cfg);
    cfg_line(&o, "%s", "");
    if (cfg->admin) {
        cfg_line(&o, "[admin]");
        cfg_dump_section(&o, CFG_SEC_ADMIN, cfg, cfg);
    } else {
        cfg_line(&o, "; [admin]: none");
    }
    cfg_line(&o, "%s", "");
    if (cfg->tls) {
        cfg_line(&o, "[tls]");
        cfg_dump_section(&o, CFG_SEC_TLS, cfg, cfg);
    } else {
        cfg_line(&o, "; [tls]: none");
    }
    for (size_t i = 0; i < cfg->ngroups; i++) {
        cfg_line(&o, "%s", "");
        cfg_line(&o, "[upstream %s]", cfg->groups[i].name);
        cfg_dump_section(&o, CFG_SEC_UPSTREAM, cfg, &cfg->groups[i]);
    }
    for (size_t i = 0; i < cfg->nroutes; i++) {
        cfg_line(&o, "%s", "");
        cfg_line(&o, "[route %s]", cfg->routes[i].name);
        cfg_dump_section(&o, CFG_SEC_ROUTE, cfg, &cfg->routes[i]);
    }
    return o.lines;
}
