/*
 * Unit tests for src/config.c and src/buf.c (Check). Tables where the cases
 * are alike: errors, addresses, number parsers.
 */
#include "buf.h"
#include "clock.h"
#include "config.h"
#include "testlib.h"

#include <check.h>
#include <limits.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* The reference config of the brief, verbatim. */
static const char ref_ini[] =
    "[proxy]\n"
    "listen = 127.0.0.1:8080        ; repeatable (>=1 required; duplicates are an error)\n"
    "workers = 8                    ; 1..1024, default: number of online CPUs, at least 2\n"
    "upstream = app                 ; required; must name an [upstream NAME] section (which "
    "may come later in the file)\n"
    "error_log = stderr             ; or a path\n"
    "access_log = stderr            ; or a path, or off\n"
    "log_level = info               ; error|warn|info|debug\n"
    "keepalive_timeout = 5s         ; 0 disables client keep-alive\n"
    "keepalive_requests = 1000      ; 1..1000000\n"
    "client_header_timeout = 10s    ; > 0\n"
    "client_body_timeout = 30s      ; > 0\n"
    "send_timeout = 30s             ; > 0\n"
    "client_max_body_size = 1g      ; default 1m, 0 = unlimited\n"
    "max_header_size = 16k          ; 1k..1m, default 16k\n"
    "\n"
    "[upstream app]                 ; NAME: [A-Za-z0-9_.-]{1,63}; duplicate names are an "
    "error\n"
    "server = 127.0.0.1:3001        ; repeatable, >= 1 required; options after the address: "
    "weight=N (1..100), backup\n"
    "server = 127.0.0.1:3002 weight=2\n"
    "connect_timeout = 3s           ; > 0\n"
    "read_timeout = 60s             ; > 0\n"
    "keepalive = 16                 ; 0..1024\n"
    "preserve_host = no             ; yes|no|on|off|true|false\n";

/*
 * The [upstream NAME] reference block of the health-check/balancing brief,
 * verbatim (lines 4-20 after P): a contract, it must load as written
 * (hash_key is accepted with any balance and used only by balance = hash).
 */
static const char ref_upstream_ini[] =
    "[upstream app]\n"
    "server = 127.0.0.1:3001 weight=3\n"
    "server = 127.0.0.1:3009 backup\n"
    "balance = round_robin          ; round_robin | least_conn | random | hash  (default "
    "round_robin)\n"
    "hash_key = client_ip           ; with balance = hash: client_ip, or header:NAME (NAME a "
    "token, < 64 chars) (default client_ip)\n"
    "health_check = on              ; on|off (also yes/no/true/false like preserve_host), "
    "default on\n"
    "health_path = /health          ; must start with '/', visible ASCII only (0x21-0x7e), < "
    "256 bytes; default /health\n"
    "health_interval = 2s           ; duration > 0, default 2s\n"
    "health_timeout = 1s            ; duration > 0, default 1s\n"
    "rise = 2                       ; 1..100, default 2\n"
    "fall = 3                       ; 1..100, default 3\n"
    "health_status = 200-399        ; \"N\" or \"N-M\", 100 <= N <= M <= 599; default 200-399 "
    "-> health_status_min/max\n"
    "max_fails = 5                  ; 0..1000, default 5 (0 disables the circuit breaker)\n"
    "fail_window = 10s              ; duration > 0, default 10s\n"
    "cooldown = 10s                 ; duration > 0, default 10s\n"
    "retries = 2                    ; 0..10, default 2\n"
    "fail_on_5xx = no               ; boolean, default no\n";

/* A minimal valid config; P is lines 1-3, U lines 4-5 when both are used. */
#define P "[proxy]\nlisten = 127.0.0.1:8080\nupstream = app\n"
#define U "[upstream app]\nserver = 127.0.0.1:3001\n"

static char err[1024];

/*
 * Test certificates (tests/tls_certs.sh, made by main()) and [tls] sections
 * that use them: <tls_min> the smallest one, <tls_full> every key away from
 * its default.
 */
static char certdir[64];
static char tls_min[256], tls_full[2048];

static struct config *
load(const char *text)
{
    err[0] = '\0';
    return cfg_load_string(text, "t.ini", err, sizeof(err));
}

static unsigned short
port_of(const struct cfg_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

/* ---- whole configs --------------------------------------------------- */

START_TEST(test_reference)
{
    struct config *c = load(ref_ini);
    struct cfg_group *g;

    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_str_eq(c->path, "t.ini");
    ck_assert_uint_eq(c->nlisteners, 1);
    ck_assert_str_eq(c->listeners[0].addr.text, "127.0.0.1:8080");
    ck_assert_int_eq(c->listeners[0].addr.ss.ss_family, AF_INET);
    ck_assert_uint_eq(c->listeners[0].addr.len, sizeof(struct sockaddr_in));
    ck_assert_uint_eq(port_of(&c->listeners[0].addr), 8080);
    ck_assert_int_eq(c->listeners[0].line, 2);
    ck_assert_uint_eq(c->worker_slots, 8);
    ck_assert(!c->workers_auto);
    ck_assert_uint_eq(c->min_workers, 8);
    ck_assert_uint_eq(c->max_workers, 8);
    ck_assert_uint_eq(c->min_spare, 0);
    ck_assert_uint_eq(c->max_spare, 0);
    ck_assert_uint_eq(c->group, 0);
    ck_assert_str_eq(c->error_log, "stderr");
    ck_assert_str_eq(c->access_log, "stderr");
    ck_assert_int_eq(c->log_level, CFG_LOG_INFO);
    ck_assert_int_eq(c->keepalive_timeout_ms, 5000);
    ck_assert_uint_eq(c->keepalive_requests, 1000);
    ck_assert_int_eq(c->client_header_timeout_ms, 10000);
    ck_assert_int_eq(c->client_body_timeout_ms, 30000);
    ck_assert_int_eq(c->send_timeout_ms, 30000);
    ck_assert_uint_eq(c->client_max_body_size, 1024ULL * 1024 * 1024);
    ck_assert_uint_eq(c->max_header_size, 16384);
    ck_assert_uint_eq(c->ngroups, 1);
    g = &c->groups[0];
    ck_assert_str_eq(g->name, "app");
    ck_assert_int_eq(g->line, 16);
    ck_assert_uint_eq(g->nservers, 2);
    ck_assert_str_eq(g->servers[0].addr.text, "127.0.0.1:3001");
    ck_assert_uint_eq(port_of(&g->servers[0].addr), 3001);
    ck_assert_uint_eq(g->servers[0].weight, 1);
    ck_assert(!g->servers[0].backup);
    ck_assert_int_eq(g->servers[0].line, 17);
    ck_assert_str_eq(g->servers[1].addr.text, "127.0.0.1:3002");
    ck_assert_uint_eq(g->servers[1].weight, 2);
    ck_assert(!g->servers[1].backup);
    ck_assert_int_eq(g->servers[1].line, 18);
    ck_assert_int_eq(g->connect_timeout_ms, 3000);
    ck_assert_int_eq(g->read_timeout_ms, 60000);
    ck_assert_uint_eq(g->keepalive, 16);
    ck_assert(!g->preserve_host);
    cfg_free(c);
}
END_TEST

/*
 * The adaptive pool's defaults on this machine, spelled out from the
 * README: min_workers max(2, CPUs), max_workers min(1024, 128 x CPUs),
 * min_spare max(2, CPUs), max_spare max(8, 4 x CPUs), each within its
 * bounds (CPUs at least 1).
 */
struct pool {
    unsigned min_workers, max_workers, min_spare, max_spare;
};

static struct pool
default_pool(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned long cpus = n < 1 ? 1 : (unsigned long)n;
    struct pool p;

    p.max_workers = 128 * cpus > 1024 ? 1024 : (unsigned)(128 * cpus);
    p.min_workers = cpus < 2 ? 2 : cpus > 1024 ? 1024 : (unsigned)cpus;
    p.max_spare = 4 * cpus < 8 ? 8 : 4 * cpus > 1024 ? 1024 : (unsigned)(4 * cpus);
    p.min_spare = cpus < 2 ? 2 : cpus > 1024 ? 1024 : (unsigned)cpus;
    if (p.min_spare >= p.max_spare)
        p.min_spare = p.max_spare - 1;
    return p;
}

START_TEST(test_defaults)
{
    /* upstream = names a group that comes later; the unused group stays */
    struct config *c = load("[proxy]\nlisten = 127.0.0.1:0\nupstream = b\n"
                            "[upstream a]\nserver = 127.0.0.1:1\n"
                            "[upstream b]\nserver = localhost:2\n");
    struct pool want = default_pool();
    struct cfg_group *g;

    ck_assert_msg(c != NULL, "%s", err);
    /* workers = auto: as many slots as max_workers */
    ck_assert(c->workers_auto);
    ck_assert_uint_eq(c->worker_slots, want.max_workers);
    ck_assert_uint_eq(c->max_workers, want.max_workers);
    ck_assert_uint_ge(c->max_workers, 128);
    ck_assert_uint_eq(c->min_workers, want.min_workers);
    ck_assert_uint_ge(c->min_workers, 2);
    ck_assert_uint_eq(c->min_spare, want.min_spare);
    ck_assert_uint_eq(c->max_spare, want.max_spare);
    ck_assert_uint_ge(c->max_spare, 8);
    ck_assert_uint_lt(c->min_spare, c->max_spare);
    ck_assert_uint_eq(c->client_header_min_rate, 256);
    ck_assert_uint_eq(c->client_body_min_rate, 256);
    ck_assert_uint_eq(c->max_conns_per_ip, 0);
    ck_assert_str_eq(c->listeners[0].addr.text, "127.0.0.1:0");
    ck_assert_str_eq(c->error_log, "stderr");
    ck_assert_str_eq(c->access_log, "stderr");
    ck_assert_int_eq(c->log_level, CFG_LOG_INFO);
    ck_assert_int_eq(c->keepalive_timeout_ms, 5000);
    ck_assert_uint_eq(c->keepalive_requests, 1000);
    ck_assert_int_eq(c->client_header_timeout_ms, 10000);
    ck_assert_int_eq(c->client_body_timeout_ms, 30000);
    ck_assert_int_eq(c->send_timeout_ms, 30000);
    ck_assert_uint_eq(c->client_max_body_size, 1024 * 1024);
    ck_assert_uint_eq(c->max_header_size, 16 * 1024);
    ck_assert_ptr_null(c->pid_file);
    ck_assert_ptr_null(c->user);
    ck_assert_int_eq(c->shutdown_timeout_ms, 30000);
    ck_assert(c->websocket);
    ck_assert_int_eq(c->tunnel_timeout_ms, 3600 * 1000);
    ck_assert(!c->admin);
    ck_assert_int_eq(c->admin_line, 0);
    ck_assert_uint_eq(c->ngroups, 2);
    ck_assert_uint_eq(c->group, 1);
    ck_assert_str_eq(c->groups[0].name, "a");
    ck_assert_int_eq(c->groups[0].line, 4);
    g = &c->groups[1];
    ck_assert_str_eq(g->name, "b");
    ck_assert_int_eq(g->line, 6);
    ck_assert_uint_eq(g->nservers, 1);
    ck_assert_uint_eq(port_of(&g->servers[0].addr), 2);
    ck_assert_uint_eq(g->servers[0].weight, 1);
    ck_assert(!g->servers[0].backup);
    ck_assert_int_eq(g->connect_timeout_ms, 3000);
    ck_assert_int_eq(g->read_timeout_ms, 60000);
    ck_assert_uint_eq(g->keepalive, 16);
    ck_assert(!g->preserve_host);
    ck_assert_int_eq(g->balance, CFG_BAL_ROUND_ROBIN);
    ck_assert_int_eq(g->hash_key, CFG_HASH_CLIENT_IP);
    ck_assert_str_eq(g->hash_header, "");
    ck_assert_uint_eq(g->retries, 2);
    ck_assert(g->health_check);
    ck_assert_str_eq(g->health_path, "/health");
    ck_assert_int_eq(g->health_interval_ms, 2000);
    ck_assert_int_eq(g->health_timeout_ms, 1000);
    ck_assert_uint_eq(g->rise, 2);
    ck_assert_uint_eq(g->fall, 3);
    ck_assert_uint_eq(g->health_status_min, 200);
    ck_assert_uint_eq(g->health_status_max, 399);
    ck_assert_uint_eq(g->max_fails, 5);
    ck_assert_int_eq(g->fail_window_ms, 10000);
    ck_assert_int_eq(g->cooldown_ms, 10000);
    ck_assert_uint_eq(g->max_ejected_percent, 50);
    ck_assert_int_eq(g->health_interval_down_ms, 1000);
    ck_assert(!g->fail_on_5xx);
    /* every group gets them, not only the one in use */
    ck_assert_int_eq(c->groups[0].balance, CFG_BAL_ROUND_ROBIN);
    ck_assert_uint_eq(c->groups[0].retries, 2);
    ck_assert(c->groups[0].health_check);
    ck_assert_str_eq(c->groups[0].health_path, "/health");
    ck_assert_uint_eq(c->groups[0].health_status_max, 399);
    ck_assert_int_eq(c->groups[0].cooldown_ms, 10000);
    cfg_free(c);
}
END_TEST

/* The [proxy] block of the worker-pool/slow-client brief, verbatim. */
static const char ref_pool_ini[] =
    "[proxy]\n"
    "listen = 127.0.0.1:8080\n"
    "upstream = app\n"
    "workers = auto            ; auto (default) | N (1..1024): N = fixed pool (min_workers = "
    "max_workers = N)\n"
    "min_workers = 4           ; with auto: default max(2, CPUs); 1..1024\n"
    "max_workers = 256         ; with auto: default min(1024, 128 x CPUs); 1..1024 "
    "(CFG_MAX_WORKERS)\n"
    "min_spare = 2             ; with auto: default max(2, CPUs); 0..1024\n"
    "max_spare = 8             ; with auto: default max(8, 4 x CPUs); 1..1024\n"
    "client_header_min_rate = 256  ; bytes/s a request head must keep up after its first "
    "second; 0 = off; default 256; 0..1000000000\n"
    "client_body_min_rate = 256    ; the same for request bodies; default 256\n"
    "max_conns_per_ip = 0          ; concurrent connections per client address; 0 = unlimited "
    "(default); 0..1000000\n" U;

/* DEF in pool_cases: this machine's default for that field, from default_pool() */
#define DEF UINT_MAX

/* workers and the pool keys, when they load */
static const struct {
    const char *proxy; /* [proxy] keys after P */
    bool automatic;
    unsigned min_workers, max_workers, min_spare, max_spare; /* or DEF */
} pool_cases[] = {
    /* a fixed pool: N..N, no spares */
    {"workers = 1\n", false, 1, 1, 0, 0},
    {"workers = 8\n", false, 8, 8, 0, 0},
    {"workers = 1024\n", false, 1024, 1024, 0, 0},
    {"workers = 012\n", false, 12, 12, 0, 0},
    /* auto, said or not */
    {"", true, DEF, DEF, DEF, DEF},
    {"workers = auto\n", true, DEF, DEF, DEF, DEF},
    /* everything given, before or after workers = auto */
    {"min_workers = 4\nmax_workers = 256\nmin_spare = 2\nmax_spare = 8\nworkers = auto\n", true, 4,
     256, 2, 8},
    {"min_workers = 1\nmax_workers = 1\nmin_spare = 0\nmax_spare = 1\n", true, 1, 1, 0, 1},
    {"min_workers = 1024\nmax_workers = 1024\nmin_spare = 1023\nmax_spare = 1024\n", true, 1024,
     1024, 1023, 1024},
    {"max_workers = 1024\nmax_spare = 1024\n", true, DEF, 1024, DEF, 1024},
    {"min_workers = 1\n", true, 1, DEF, DEF, DEF},
    {"min_spare = 0\n", true, DEF, DEF, 0, DEF},
    /* defaults yield to given values: a max_workers below the default min_workers lowers it */
    {"max_workers = 1\n", true, 1, 1, 0, 1},
    {"max_workers = 2\n", true, 2, 2, 1, 2},
    {"min_workers = 3\nmax_workers = 3\nmin_spare = 0\n", true, 3, 3, 0, 3},
    /* a small max_spare lowers the default min_spare */
    {"max_spare = 1\n", true, DEF, DEF, 0, 1},
    {"max_spare = 2\nmin_workers = 1\n", true, 1, DEF, 1, 2},
    /* a large min_spare raises the default max_spare, within max_workers */
    {"min_spare = 99\nmax_workers = 100\nmin_workers = 2\n", true, 2, 100, 99, 100},
    {"min_spare = 1000\nmax_workers = 1001\nmin_workers = 2\n", true, 2, 1001, 1000, 1001},
};

START_TEST(test_pool)
{
    struct pool def = default_pool();
    unsigned minw = pool_cases[_i].min_workers, maxw = pool_cases[_i].max_workers;
    unsigned mins = pool_cases[_i].min_spare, maxs = pool_cases[_i].max_spare;
    char text[1024];
    struct config *c;

    snprintf(text, sizeof(text), P "%s" U, pool_cases[_i].proxy);
    c = load(text);
    ck_assert_msg(c != NULL, "case %d: %s", _i, err);
    minw = minw == DEF ? def.min_workers : minw;
    maxw = maxw == DEF ? def.max_workers : maxw;
    mins = mins == DEF ? def.min_spare : mins;
    maxs = maxs == DEF ? def.max_spare : maxs;
    ck_assert_msg(c->workers_auto == pool_cases[_i].automatic, "case %d", _i);
    ck_assert_msg(c->min_workers == minw, "case %d: min_workers %u, want %u", _i, c->min_workers,
                  minw);
    ck_assert_msg(c->max_workers == maxw, "case %d: max_workers %u, want %u", _i, c->max_workers,
                  maxw);
    ck_assert_msg(c->min_spare == mins, "case %d: min_spare %u, want %u", _i, c->min_spare, mins);
    ck_assert_msg(c->max_spare == maxs, "case %d: max_spare %u, want %u", _i, c->max_spare, maxs);
    /* the slots: N, or max_workers */
    ck_assert_uint_eq(c->worker_slots, maxw);
    cfg_free(c);
}
END_TEST

START_TEST(test_pool_reference)
{
    struct pool def = default_pool();
    struct config *c = load(ref_pool_ini);

    ck_assert_msg(c != NULL, "%s", err);
    ck_assert(c->workers_auto);
    ck_assert_uint_eq(c->worker_slots, 256);
    ck_assert_uint_eq(c->min_workers, 4);
    ck_assert_uint_eq(c->max_workers, 256);
    ck_assert_uint_eq(c->min_spare, 2);
    ck_assert_uint_eq(c->max_spare, 8);
    ck_assert_uint_eq(c->client_header_min_rate, 256);
    ck_assert_uint_eq(c->client_body_min_rate, 256);
    ck_assert_uint_eq(c->max_conns_per_ip, 0);
    cfg_free(c);

    /* the raised default max_spare, where this machine's default may be above 1001 */
    c = load(P "min_spare = 1000\nmax_workers = 1024\n" U);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_uint_eq(c->min_spare, 1000);
    ck_assert_uint_eq(c->max_spare, def.max_spare > 1001 ? def.max_spare : 1001);
    cfg_free(c);

    c = load(P "client_header_min_rate = 0\nclient_body_min_rate = 1000000000\n"
               "max_conns_per_ip = 1000000\n" U);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_uint_eq(c->client_header_min_rate, 0);
    ck_assert_uint_eq(c->client_body_min_rate, 1000000000);
    ck_assert_uint_eq(c->max_conns_per_ip, 1000000);
    cfg_free(c);

    c = load(P "client_body_min_rate = 0\nmax_conns_per_ip = 1\nclient_header_min_rate = 1\n" U);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_uint_eq(c->client_header_min_rate, 1);
    ck_assert_uint_eq(c->client_body_min_rate, 0);
    ck_assert_uint_eq(c->max_conns_per_ip, 1);
    cfg_free(c);
}
END_TEST

START_TEST(test_upstream_reference)
{
    char text[4096], *bal;
    struct config *c;
    struct cfg_group *g;

    snprintf(text, sizeof(text), P "%s", ref_upstream_ini);
    c = load(text);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(c->groups[0].balance, CFG_BAL_ROUND_ROBIN);
    ck_assert_int_eq(c->groups[0].hash_key, CFG_HASH_CLIENT_IP);
    cfg_free(c);

    bal = strstr(text, "balance = round_robin");
    ck_assert_ptr_nonnull(bal);
    memcpy(bal, "balance = hash       ", 21); /* same length: line numbers stay */
    c = load(text);
    ck_assert_msg(c != NULL, "%s", err);
    g = &c->groups[0];
    ck_assert_str_eq(g->name, "app");
    ck_assert_int_eq(g->line, 4);
    ck_assert_uint_eq(g->nservers, 2);
    ck_assert_str_eq(g->servers[0].addr.text, "127.0.0.1:3001");
    ck_assert_uint_eq(g->servers[0].weight, 3);
    ck_assert(!g->servers[0].backup);
    ck_assert_int_eq(g->servers[0].line, 5);
    ck_assert_str_eq(g->servers[1].addr.text, "127.0.0.1:3009");
    ck_assert_uint_eq(g->servers[1].weight, 1);
    ck_assert(g->servers[1].backup);
    ck_assert_int_eq(g->servers[1].line, 6);
    ck_assert_int_eq(g->balance, CFG_BAL_HASH);
    ck_assert_int_eq(g->hash_key, CFG_HASH_CLIENT_IP);
    ck_assert_str_eq(g->hash_header, "");
    ck_assert(g->health_check);
    ck_assert_str_eq(g->health_path, "/health");
    ck_assert_int_eq(g->health_interval_ms, 2000);
    ck_assert_int_eq(g->health_timeout_ms, 1000);
    ck_assert_uint_eq(g->rise, 2);
    ck_assert_uint_eq(g->fall, 3);
    ck_assert_uint_eq(g->health_status_min, 200);
    ck_assert_uint_eq(g->health_status_max, 399);
    ck_assert_uint_eq(g->max_fails, 5);
    ck_assert_int_eq(g->fail_window_ms, 10000);
    ck_assert_int_eq(g->cooldown_ms, 10000);
    ck_assert_uint_eq(g->retries, 2);
    ck_assert(!g->fail_on_5xx);
    /* untouched keys of the group keep their defaults */
    ck_assert_int_eq(g->connect_timeout_ms, 3000);
    ck_assert_uint_eq(g->keepalive, 16);
    cfg_free(c);
}
END_TEST

/* ---- [upstream NAME] values: one key (or two) after P U, one field checked */

enum vtype { V_UINT, V_MS, V_BOOL, V_BALANCE, V_HASH_KEY, V_STR, V_PSTR /* a char * */ };

#define F(field) offsetof(struct cfg_group, field)

static const struct {
    const char *lines;
    size_t off;
    enum vtype type;
    int64_t want;
    const char *swant; /* for V_STR */
} value_cases[] = {
    {"balance = round_robin", F(balance), V_BALANCE, CFG_BAL_ROUND_ROBIN, NULL},
    {"balance = least_conn", F(balance), V_BALANCE, CFG_BAL_LEAST_CONN, NULL},
    {"balance = random", F(balance), V_BALANCE, CFG_BAL_RANDOM, NULL},
    {"balance = hash", F(balance), V_BALANCE, CFG_BAL_HASH, NULL},
    {"balance = hash\nhash_key = client_ip", F(hash_key), V_HASH_KEY, CFG_HASH_CLIENT_IP, NULL},
    /* hash_key may come before balance: checked once the file is read */
    {"hash_key = header:X-User\nbalance = hash", F(hash_key), V_HASH_KEY, CFG_HASH_HEADER, NULL},
    {"hash_key = header:X-User\nbalance = hash", F(hash_header), V_STR, 0, "X-User"},
    {"balance = hash\nhash_key = header:!#$%&'*+-.^_`|~09aZ", F(hash_header), V_STR, 0,
     "!#$%&'*+-.^_`|~09aZ"},
    {"retries = 0", F(retries), V_UINT, 0, NULL},
    {"retries = 10", F(retries), V_UINT, 10, NULL},
    {"health_check = off", F(health_check), V_BOOL, false, NULL},
    {"health_check = No", F(health_check), V_BOOL, false, NULL},
    {"health_check = true", F(health_check), V_BOOL, true, NULL},
    {"health_path = /", F(health_path), V_STR, 0, "/"},
    {"health_path = /healthz?full=1&x=%20;y#z", F(health_path), V_STR, 0,
     "/healthz?full=1&x=%20;y#z"},
    {"health_path = /a ; comment", F(health_path), V_STR, 0, "/a"},
    {"health_interval = 100ms", F(health_interval_ms), V_MS, 100, NULL},
    {"health_interval = 1440m", F(health_interval_ms), V_MS, 86400000, NULL},
    {"health_timeout = 5", F(health_timeout_ms), V_MS, 5000, NULL},
    {"health_timeout = 1ms", F(health_timeout_ms), V_MS, 1, NULL},
    {"rise = 1", F(rise), V_UINT, 1, NULL},
    {"rise = 100", F(rise), V_UINT, 100, NULL},
    {"fall = 1", F(fall), V_UINT, 1, NULL},
    {"fall = 100", F(fall), V_UINT, 100, NULL},
    {"health_status = 200", F(health_status_min), V_UINT, 200, NULL},
    {"health_status = 200", F(health_status_max), V_UINT, 200, NULL},
    {"health_status = 100-599", F(health_status_min), V_UINT, 100, NULL},
    {"health_status = 100-599", F(health_status_max), V_UINT, 599, NULL},
    {"health_status = 204-204", F(health_status_max), V_UINT, 204, NULL},
    {"health_status = 200-299", F(health_status_max), V_UINT, 299, NULL},
    {"max_fails = 0", F(max_fails), V_UINT, 0, NULL},
    {"max_fails = 1000", F(max_fails), V_UINT, 1000, NULL},
    {"fail_window = 1m", F(fail_window_ms), V_MS, 60000, NULL},
    {"fail_window = 250ms", F(fail_window_ms), V_MS, 250, NULL},
    {"cooldown = 30", F(cooldown_ms), V_MS, 30000, NULL},
    {"cooldown = 1ms", F(cooldown_ms), V_MS, 1, NULL},
    {"tls = on", F(tls), V_BOOL, true, NULL},
    {"tls = off", F(tls), V_BOOL, false, NULL},
    {"tls_verify = off", F(tls_verify), V_BOOL, false, NULL},
    {"tls_verify = yes", F(tls_verify), V_BOOL, true, NULL},
    {"tls_server_name = app.internal", F(tls_server_name), V_PSTR, 0, "app.internal"},
    {"tls_server_name = 10.0.0.1", F(tls_server_name), V_PSTR, 0, "10.0.0.1"},
    {"tls_server_name = ::1", F(tls_server_name), V_PSTR, 0, "::1"},
    {"tls_ca = system", F(tls_ca), V_PSTR, 0, "system"},
    {"max_ejected_percent = 0", F(max_ejected_percent), V_UINT, 0, NULL},
    {"max_ejected_percent = 100", F(max_ejected_percent), V_UINT, 100, NULL},
    {"health_interval_down = 250ms", F(health_interval_down_ms), V_MS, 250, NULL},
    {"health_interval_down = 1m", F(health_interval_down_ms), V_MS, 60000, NULL},
    /* unset, it follows a shorter health_interval; set, it is what it says */
    {"health_interval = 100ms", F(health_interval_down_ms), V_MS, 100, NULL},
    {"health_interval = 5s", F(health_interval_down_ms), V_MS, 1000, NULL},
    {"health_interval = 100ms\nhealth_interval_down = 3s", F(health_interval_down_ms), V_MS, 3000,
     NULL},
    {"fail_on_5xx = yes", F(fail_on_5xx), V_BOOL, true, NULL},
    {"fail_on_5xx = ON", F(fail_on_5xx), V_BOOL, true, NULL},
    {"fail_on_5xx = false", F(fail_on_5xx), V_BOOL, false, NULL},
};

START_TEST(test_values)
{
    char text[512];
    struct config *c;
    const char *p;
    int64_t got = 0;

    snprintf(text, sizeof(text), P U "%s\n", value_cases[_i].lines);
    c = load(text);
    ck_assert_msg(c != NULL, "%s: %s", value_cases[_i].lines, err);
    p = (const char *)&c->groups[0] + value_cases[_i].off;
    switch (value_cases[_i].type) {
    case V_UINT:
        got = *(const unsigned *)(const void *)p;
        break;
    case V_MS:
        got = *(const int64_t *)(const void *)p;
        break;
    case V_BOOL:
        got = *(const bool *)(const void *)p;
        break;
    case V_BALANCE:
        got = *(const enum cfg_balance *)(const void *)p;
        break;
    case V_HASH_KEY:
        got = *(const enum cfg_hash_key *)(const void *)p;
        break;
    case V_STR:
        ck_assert_msg(strcmp(p, value_cases[_i].swant) == 0, "%s: got '%s'", value_cases[_i].lines,
                      p);
        break;
    case V_PSTR:
        p = *(const char *const *)(const void *)p;
        ck_assert_msg(p != NULL && strcmp(p, value_cases[_i].swant) == 0, "%s: got '%s'",
                      value_cases[_i].lines, p != NULL ? p : "(null)");
        break;
    }
    if (value_cases[_i].type != V_STR)
        ck_assert_msg(got == value_cases[_i].want, "%s: got %lld, want %lld",
                      value_cases[_i].lines, (long long)got, (long long)value_cases[_i].want);
    cfg_free(c);
}
END_TEST

/* The longest header name (63) and health_path (255) fit; one more does not. */
START_TEST(test_upstream_lengths)
{
    char text[1024], name[65], path[257];
    struct config *c;

    memset(name, 'h', 64);
    name[63] = '\0';
    snprintf(text, sizeof(text), P U "balance = hash\nhash_key = header:%s\n", name);
    c = load(text);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_str_eq(c->groups[0].hash_header, name);
    cfg_free(c);
    name[63] = 'h';
    name[64] = '\0';
    snprintf(text, sizeof(text), P U "balance = hash\nhash_key = header:%s\n", name);
    ck_assert_ptr_null(load(text));
    ck_assert_str_eq(err, "t.ini:7: [upstream app] hash_key: header name too long (64 characters, "
                          "max 63)");

    path[0] = '/';
    memset(path + 1, 'p', 255);
    path[255] = '\0';
    snprintf(text, sizeof(text), P U "health_path = %s\n", path);
    c = load(text);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_str_eq(c->groups[0].health_path, path);
    cfg_free(c);
    path[255] = 'p';
    path[256] = '\0';
    snprintf(text, sizeof(text), P U "health_path = %s\n", path);
    ck_assert_ptr_null(load(text));
    ck_assert_str_eq(err,
                     "t.ini:6: [upstream app] health_path: path too long (256 bytes, max 255)");
}
END_TEST

/*
 * CFG_MAX_TOTAL_SERVERS over all groups: four full groups fill it; one more
 * server anywhere is an error at its line.
 */
START_TEST(test_total_servers)
{
    size_t cap = 64 * 1024, n = 0;
    char *text = malloc(cap);
    struct config *c;

    ck_assert_ptr_nonnull(text);
    n += (size_t)snprintf(text + n, cap - n, "[proxy]\nlisten = 127.0.0.1:1\nupstream = g0\n");
    for (int gi = 0; gi < 4; gi++) {
        n += (size_t)snprintf(text + n, cap - n, "[upstream g%d]\n", gi);
        for (int i = 0; i < CFG_MAX_SERVERS; i++)
            n += (size_t)snprintf(text + n, cap - n, "server = 127.0.0.1:%d\n", 1000 + i);
    }
    ck_assert_uint_lt(n, cap - 100);
    c = load(text);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_uint_eq(c->ngroups, 4);
    ck_assert_uint_eq(c->groups[3].nservers, CFG_MAX_SERVERS);
    cfg_free(c);

    /* lines: 3 of [proxy], 4 x 257 of groups, then the header at 1032 */
    snprintf(text + n, cap - n, "[upstream g4]\nserver = 127.0.0.1:2000\n");
    ck_assert_ptr_null(load(text));
    ck_assert_str_eq(err, "t.ini:1033: [upstream g4] server: too many servers over all groups "
                          "(max 1024)");
    free(text);
}
END_TEST

START_TEST(test_variants)
{
    /* CRLF, indentation, '#' comments, no spaces around '=', units, options */
    struct config *c = load("# a comment\r\n"
                            "  ; another\r\n"
                            "[ proxy ]   # trailing comment\r\n"
                            "  listen=127.0.0.1:8080\r\n"
                            "listen = [::1]:0 ; v6\r\n"
                            "listen = 0.0.0.0:8081\r\n"
                            "upstream = my.app-1_x\r\n"
                            "access_log = off\r\n"
                            "error_log = /var/log/miniproxy/error.log\r\n"
                            "log_level = debug\r\n"
                            "keepalive_timeout = 0\r\n"
                            "client_header_timeout = 100ms\r\n"
                            "client_body_timeout = 2m\r\n"
                            "send_timeout = 7\r\n"
                            "client_max_body_size = 0\r\n"
                            "max_header_size = 1M\r\n"
                            "keepalive_requests = 1\r\n"
                            "workers = 1024\r\n"
                            "[upstream   my.app-1_x]\r\n"
                            "server = 127.0.0.1:3001 weight=100\r\n"
                            "server = 127.0.0.1:3002 backup weight=3\r\n"
                            "server = [::1]:3001\tbackup\r\n"
                            "keepalive = 0\r\n"
                            "preserve_host = On\r\n"
                            "connect_timeout = 250ms\r\n"
                            "read_timeout = 1440m");
    struct cfg_group *g;

    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_uint_eq(c->nlisteners, 3);
    ck_assert_str_eq(c->listeners[0].addr.text, "127.0.0.1:8080");
    ck_assert_int_eq(c->listeners[0].line, 4);
    ck_assert_str_eq(c->listeners[1].addr.text, "[::1]:0");
    ck_assert_int_eq(c->listeners[1].addr.ss.ss_family, AF_INET6);
    ck_assert_uint_eq(c->listeners[1].addr.len, sizeof(struct sockaddr_in6));
    ck_assert_str_eq(c->listeners[2].addr.text, "0.0.0.0:8081");
    ck_assert_str_eq(c->access_log, "off");
    ck_assert_str_eq(c->error_log, "/var/log/miniproxy/error.log");
    ck_assert_int_eq(c->log_level, CFG_LOG_DEBUG);
    ck_assert_int_eq(c->keepalive_timeout_ms, 0);
    ck_assert_int_eq(c->client_header_timeout_ms, 100);
    ck_assert_int_eq(c->client_body_timeout_ms, 120000);
    ck_assert_int_eq(c->send_timeout_ms, 7000);
    ck_assert_uint_eq(c->client_max_body_size, 0);
    ck_assert_uint_eq(c->max_header_size, 1024 * 1024);
    ck_assert_uint_eq(c->keepalive_requests, 1);
    ck_assert_uint_eq(c->worker_slots, 1024);
    g = &c->groups[c->group];
    ck_assert_str_eq(g->name, "my.app-1_x");
    ck_assert_int_eq(g->line, 19);
    ck_assert_uint_eq(g->nservers, 3);
    ck_assert_uint_eq(g->servers[0].weight, 100);
    ck_assert(!g->servers[0].backup);
    ck_assert_uint_eq(g->servers[1].weight, 3);
    ck_assert(g->servers[1].backup);
    ck_assert_str_eq(g->servers[2].addr.text, "[::1]:3001");
    ck_assert(g->servers[2].backup);
    ck_assert_int_eq(g->servers[2].line, 22);
    ck_assert_uint_eq(g->keepalive, 0);
    ck_assert(g->preserve_host);
    ck_assert_int_eq(g->connect_timeout_ms, 250);
    ck_assert_int_eq(g->read_timeout_ms, 86400000);
    cfg_free(c);
}
END_TEST

/* pid_file, user, shutdown_timeout and [admin], wherever they are in the file. */
START_TEST(test_process_keys)
{
    struct config *c = load("[upstream app]\nserver = 127.0.0.1:3001\n"
                            "[admin]                  ; status pages\n"
                            "listen = 127.0.0.1:9090  ; loopback only\n"
                            "[proxy]\n"
                            "listen = 127.0.0.1:8080\n"
                            "upstream = app\n"
                            "pid_file = /run/miniproxyd.pid   ; a path\n"
                            "user = nobody\n"
                            "shutdown_timeout = 45s\n");

    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_str_eq(c->pid_file, "/run/miniproxyd.pid");
    ck_assert_str_eq(c->user, "nobody");
    ck_assert_int_eq(c->shutdown_timeout_ms, 45000);
    ck_assert(c->admin);
    ck_assert_str_eq(c->admin_addr.text, "127.0.0.1:9090");
    ck_assert_int_eq(c->admin_addr.ss.ss_family, AF_INET);
    ck_assert_uint_eq(c->admin_addr.len, sizeof(struct sockaddr_in));
    ck_assert_uint_eq(port_of(&c->admin_addr), 9090);
    ck_assert_int_eq(c->admin_line, 4);
    cfg_free(c);

    /* a relative pid file, units, an IPv6 admin address */
    c = load(P "pid_file = run/m.pid\nshutdown_timeout = 100ms\nuser = root\n" U
               "[admin]\nlisten = [::1]:9090\n");
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_str_eq(c->pid_file, "run/m.pid");
    ck_assert_int_eq(c->shutdown_timeout_ms, 100);
    ck_assert_str_eq(c->user, "root");
    ck_assert_str_eq(c->admin_addr.text, "[::1]:9090");
    ck_assert_int_eq(c->admin_line, 10);
    cfg_free(c);

    /* WebSocket tunnels: off, and the hour unit */
    c = load(P "websocket = off\ntunnel_timeout = 2h\n" U);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert(!c->websocket);
    ck_assert_int_eq(c->tunnel_timeout_ms, 2 * 3600 * 1000);
    cfg_free(c);
}
END_TEST

/* [admin] listen next to [proxy] listeners: what does not clash. */
static const struct {
    const char *proxy; /* the [proxy] listen */
    const char *admin; /* the [admin] listen */
} admin_ok_cases[] = {
    {"127.0.0.1:0", "127.0.0.1:0"}, /* port 0: each gets its own free port */
    {"0.0.0.0:0", "127.0.0.1:0"},         {"127.0.0.1:8080", "127.0.0.1:8081"},
    {"127.0.0.1:8080", "127.0.0.2:8080"}, {"127.0.0.1:8080", "[::1]:8080"},
    {"0.0.0.0:8080", "[::1]:8080"}, /* an IPv4 wildcard leaves IPv6 alone */
    {"[::1]:8080", "127.0.0.1:8080"},     {"0.0.0.0:80", "127.0.0.1:9090"},
    {"127.0.0.1:8080", "127.0.0.1:1"},
};

START_TEST(test_admin_ok)
{
    char text[512];
    struct config *c;

    snprintf(text, sizeof(text),
             "[proxy]\nlisten = %s\nupstream = app\n" U "[admin]\nlisten = %s\n",
             admin_ok_cases[_i].proxy, admin_ok_cases[_i].admin);
    c = load(text);
    ck_assert_msg(c != NULL, "%s / %s: %s", admin_ok_cases[_i].proxy, admin_ok_cases[_i].admin,
                  err);
    ck_assert(c->admin);
    ck_assert_str_eq(c->admin_addr.text, admin_ok_cases[_i].admin);
    ck_assert_int_eq(c->admin_line, 7);
    ck_assert_str_eq(c->listeners[0].addr.text, admin_ok_cases[_i].proxy);
    cfg_free(c);
}
END_TEST

/* inih keeps only 49 bytes of a section name; we track sections ourselves. */
START_TEST(test_long_group_name)
{
    char text[512], name[64];
    struct config *c;

    memset(name, 'n', 63);
    name[63] = '\0';
    snprintf(text, sizeof(text),
             "[proxy]\nlisten = 127.0.0.1:1\nupstream = %s\n"
             "[upstream %s]\nserver = 127.0.0.1:2\n",
             name, name);
    c = load(text);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_str_eq(c->groups[0].name, name);
    cfg_free(c);
}
END_TEST

START_TEST(test_bools)
{
    static const struct {
        const char *v;
        bool want;
    } cases[] = {{"yes", true}, {"on", true},   {"true", true},   {"TRUE", true},
                 {"no", false}, {"off", false}, {"false", false}, {"No", false}};

    for (size_t i = 0; i < NELEM(cases); i++) {
        char text[256];
        struct config *c;

        snprintf(text, sizeof(text), P U "preserve_host = %s\n", cases[i].v);
        c = load(text);
        ck_assert_msg(c != NULL, "%s: %s", cases[i].v, err);
        ck_assert_msg(c->groups[0].preserve_host == cases[i].want, "%s", cases[i].v);
        cfg_free(c);
    }
}
END_TEST

/* ---- errors ---------------------------------------------------------- */

static const struct {
    const char *text;
    const char *want;
    bool exact; /* else <want> is a substring */
} error_cases[] = {
    /* sections */
    {P U "[foo]\n",
     "t.ini:6: [foo]: unknown section (proxy, admin, tls, upstream NAME, route NAME)", true},
    {P U "[upstream]\n", "t.ini:6: [upstream]: missing group name", false},
    {P U "[upstreamx]\n", "t.ini:6: [upstreamx]: unknown section", false},
    {P U "[upstream a/b]\n", "t.ini:6: [upstream a/b]: bad group name \"a/b\"", false},
    {P U "[upstream a b]\n", "t.ini:6: [upstream a b]: bad group name \"a b\"", false},
    {P U "[upstream "
         "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn]\n",
     "bad group name \"nnnnnnnn", false},
    {P U "[upstream app]\nserver = 127.0.0.1:3002\n",
     "t.ini:6: [upstream app]: duplicate group name, first at line 4", true},
    {P "[upstream app]\n", "t.ini:4: [upstream app]: no server", true},
    {P U "[upstream other]\nkeepalive = 1\n", "t.ini:6: [upstream other]: no server", true},
    {P "[upstream app]\nserver = 127.0.0.1:1 backup\n",
     "t.ini:4: [upstream app]: only backup servers", true},
    {P U "[proxy]\n", "t.ini:6: [proxy]: section given twice, first at line 1", true},
    {"workers = 3\n" P U, "t.ini:1: workers: key outside of any section", true},
    /* syntax */
    {P "workers\n" U, "t.ini:4: syntax error", false},
    {"[proxy]\nlisten 127.0.0.1:8080\n", "t.ini:2: syntax error", false},
    {"[proxy]\nlisten: 127.0.0.1:8080\n", "t.ini:2: syntax error", false},
    {P "[upstream app\n", "t.ini:4: syntax error", false},
    {P "[upstream app] x\n", "t.ini:4: syntax error", false},
    {P "= 3\n" U, "t.ini:4: syntax error", false},
    /* keys */
    {P "worker = 3\n" U, "t.ini:4: [proxy] worker: unknown key", true},
    {P U "weight = 3\n", "t.ini:6: [upstream app] weight: unknown key", true},
    {P U "server\t=\n", "t.ini:6: [upstream app] server: empty value", true},
    {"[proxy]\nlisten = 127.0.0.1:1\nworkers = 2\nworkers = 3\n",
     "t.ini:4: [proxy] workers: given twice, first at line 3", true},
    {P "upstream = app\n" U, "t.ini:4: [proxy] upstream: given twice, first at line 3", true},
    {P U "connect_timeout = 1s\nconnect_timeout = 2s\n",
     "t.ini:7: [upstream app] connect_timeout: given twice, first at line 6", true},
    /* [proxy] values */
    {P "workers = abc\n" U, "t.ini:4: [proxy] workers: bad value \"abc\" (auto or 1..1024)", true},
    {P "workers = -1\n" U, "t.ini:4: [proxy] workers: bad value \"-1\" (auto or 1..1024)", true},
    {P "workers = 4;x\n" U, "t.ini:4: [proxy] workers: bad value \"4;x\"", false},
    {P "workers = AUTO\n" U, "t.ini:4: [proxy] workers: bad value \"AUTO\"", false},
    {P "workers = auto4\n" U, "t.ini:4: [proxy] workers: bad value \"auto4\"", false},
    {P "workers = 0\n" U, "t.ini:4: [proxy] workers: 0 out of range (1..1024)", true},
    {P "workers = 1025\n" U, "workers: 1025 out of range (1..1024)", false},
    {P "workers = 99999999999999999999999\n" U, "workers: 99999999999999999999999 out of range",
     false},
    {P "workers = auto\nworkers = 4\n" U, "t.ini:5: [proxy] workers: given twice, first at line 4",
     true},
    /* the pool keys: values */
    {P "min_workers = 0\n" U, "t.ini:4: [proxy] min_workers: 0 out of range (1..1024)", true},
    {P "min_workers = 1025\n" U, "t.ini:4: [proxy] min_workers: 1025 out of range (1..1024)",
     true},
    {P "min_workers = auto\n" U, "t.ini:4: [proxy] min_workers: bad number \"auto\"", true},
    {P "max_workers = 0\n" U, "t.ini:4: [proxy] max_workers: 0 out of range (1..1024)", true},
    {P "max_workers = 1025\n" U, "t.ini:4: [proxy] max_workers: 1025 out of range (1..1024)",
     true},
    {P "max_workers = 2k\n" U, "t.ini:4: [proxy] max_workers: bad number \"2k\"", true},
    {P "min_spare = 1025\n" U, "t.ini:4: [proxy] min_spare: 1025 out of range (0..1024)", true},
    {P "min_spare = -1\n" U, "t.ini:4: [proxy] min_spare: bad number \"-1\"", true},
    {P "max_spare = 0\n" U, "t.ini:4: [proxy] max_spare: 0 out of range (1..1024)", true},
    {P "max_spare = 1025\n" U, "t.ini:4: [proxy] max_spare: 1025 out of range (1..1024)", true},
    {P "min_workers =\n" U, "t.ini:4: [proxy] min_workers: empty value", true},
    {P "min_workers = 2\nmin_workers = 2\n" U,
     "t.ini:5: [proxy] min_workers: given twice, first at line 4", true},
    {P "max_workers = 8\nmax_workers = 8\n" U,
     "t.ini:5: [proxy] max_workers: given twice, first at line 4", true},
    {P "min_spare = 1\nmin_spare = 1\n" U,
     "t.ini:5: [proxy] min_spare: given twice, first at line 4", true},
    {P "max_spare = 9\nmax_spare = 9\n" U,
     "t.ini:5: [proxy] max_spare: given twice, first at line 4", true},
    /* the pool keys with a fixed pool, before or after workers = N: at their own line */
    {P "workers = 4\nmin_workers = 2\n" U,
     "t.ini:5: [proxy] min_workers: only with workers = auto", true},
    {P "max_workers = 8\nworkers = 4\n" U,
     "t.ini:4: [proxy] max_workers: only with workers = auto", true},
    {P "min_spare = 1\nworkers = 1\n" U, "t.ini:4: [proxy] min_spare: only with workers = auto",
     true},
    {P "workers = 4\nmax_spare = 2\n" U, "t.ini:5: [proxy] max_spare: only with workers = auto",
     true},
    {P "workers = 4\nmax_spare = 2\nmin_workers = 4\n" U,
     "t.ini:5: [proxy] max_spare: only with workers = auto", true}, /* the first of them */
    {"[proxy]\nmax_workers = 4\nworkers = 4\nlisten = 127.0.0.1:1\nupstream = app\n" U,
     "t.ini:2: [proxy] max_workers: only with workers = auto", true},
    /* the pool keys with auto: what contradicts */
    {P "min_workers = 10\nmax_workers = 5\n" U,
     "t.ini:4: [proxy] min_workers: min_workers 10 is above max_workers 5", true},
    {P "max_workers = 5\nmin_workers = 6\n" U,
     "t.ini:5: [proxy] min_workers: min_workers 6 is above max_workers 5", true},
    {P "max_workers = 5\nmax_spare = 6\n" U,
     "t.ini:5: [proxy] max_spare: max_spare 6 is above max_workers 5", true},
    {P "max_spare = 600\nmax_workers = 599\n" U,
     "t.ini:4: [proxy] max_spare: max_spare 600 is above max_workers 599", true},
    {P "min_spare = 4\nmax_spare = 4\n" U,
     "t.ini:4: [proxy] min_spare: min_spare 4 is not below max_spare 4", true},
    {P "max_spare = 3\nmin_spare = 5\nworkers = auto\n" U,
     "t.ini:5: [proxy] min_spare: min_spare 5 is not below max_spare 3", true},
    /* without max_spare, max_workers bounds it */
    {P "min_spare = 5\nmax_workers = 5\n" U,
     "t.ini:4: [proxy] min_spare: min_spare 5 is not below max_workers 5", true},
    {P "max_workers = 1\nmin_spare = 1\n" U,
     "t.ini:5: [proxy] min_spare: min_spare 1 is not below max_workers 1", true},
    /* slow clients */
    {P "client_header_min_rate = 1000000001\n" U,
     "t.ini:4: [proxy] client_header_min_rate: 1000000001 out of range (0..1000000000)", true},
    {P "client_header_min_rate = 1k\n" U,
     "t.ini:4: [proxy] client_header_min_rate: bad number \"1k\"", true},
    {P "client_header_min_rate = off\n" U,
     "t.ini:4: [proxy] client_header_min_rate: bad number \"off\"", true},
    {P "client_body_min_rate = 99999999999\n" U,
     "t.ini:4: [proxy] client_body_min_rate: 99999999999 out of range (0..1000000000)", true},
    {P "client_body_min_rate = -1\n" U, "t.ini:4: [proxy] client_body_min_rate: bad number \"-1\"",
     true},
    {P "client_body_min_rate = 1\nclient_body_min_rate = 2\n" U,
     "t.ini:5: [proxy] client_body_min_rate: given twice, first at line 4", true},
    {P "max_conns_per_ip = 1000001\n" U,
     "t.ini:4: [proxy] max_conns_per_ip: 1000001 out of range (0..1000000)", true},
    {P "max_conns_per_ip = unlimited\n" U,
     "t.ini:4: [proxy] max_conns_per_ip: bad number \"unlimited\"", true},
    {P "max_conns_per_ip =\n" U, "t.ini:4: [proxy] max_conns_per_ip: empty value", true},
    {P "keepalive_requests = 0\n" U, "keepalive_requests: 0 out of range (1..1000000)", false},
    {P "keepalive_requests = 1000001\n" U, "keepalive_requests: 1000001 out of range", false},
    {P "log_level = verbose\n" U,
     "t.ini:4: [proxy] log_level: bad level \"verbose\" (error|warn|info|debug)", true},
    {P "log_level = INFO\n" U, "log_level: bad level \"INFO\"", false},
    {P "error_log =\n" U, "t.ini:4: [proxy] error_log: empty value", true},
    {P "keepalive_timeout = 5d\n" U,
     "t.ini:4: [proxy] keepalive_timeout: bad duration unit \"d\" in \"5d\" (ms, s, m or h)",
     true},
    {P "tunnel_timeout = 25h\n" U, "tunnel_timeout: duration 25h out of range (max 1 day)", false},
    {P "tunnel_timeout = 0\n" U, "tunnel_timeout: must be greater than 0", false},
    {P "websocket = maybe\n" U,
     "t.ini:4: [proxy] websocket: bad boolean \"maybe\" (yes|no|on|off|true|false)", true},
    {P "keepalive_timeout = s\n" U, "keepalive_timeout: bad duration \"s\"", false},
    {P "keepalive_timeout = -5s\n" U, "keepalive_timeout: bad duration \"-5s\"", false},
    {P "keepalive_timeout = 5 s\n" U, "keepalive_timeout: bad duration unit \" s\"", false},
    {P "keepalive_timeout = 86401\n" U,
     "keepalive_timeout: duration 86401 out of range (max 1 day)", false},
    {P "keepalive_timeout = 99999999999999999999999ms\n" U, "keepalive_timeout: duration", false},
    {P "client_header_timeout = 0\n" U,
     "t.ini:4: [proxy] client_header_timeout: must be greater than 0", true},
    {P "client_body_timeout = 0ms\n" U, "client_body_timeout: must be greater than 0", false},
    {P "send_timeout = 0s\n" U, "send_timeout: must be greater than 0", false},
    {P "send_timeout = 1d\n" U, "send_timeout: bad duration unit \"d\"", false},
    {P "client_max_body_size = 1t\n" U,
     "t.ini:4: [proxy] client_max_body_size: bad size unit \"t\" in \"1t\" (k, m or g)", true},
    {P "client_max_body_size = 1kb\n" U, "client_max_body_size: bad size unit \"kb\"", false},
    {P "client_max_body_size = big\n" U, "client_max_body_size: bad size \"big\"", false},
    {P "client_max_body_size = 1025g\n" U, "client_max_body_size: size 1025g out of range", false},
    {P "max_header_size = 1023\n" U,
     "t.ini:4: [proxy] max_header_size: size 1023 out of range (1k..1m)", true},
    {P "max_header_size = 1025k\n" U, "max_header_size: size 1025k out of range (1k..1m)", false},
    {"[proxy]\nlisten = 127.0.0.1:1\nupstream = no/pe\n" U,
     "t.ini:3: [proxy] upstream: bad group name \"no/pe\"", false},
    {"[proxy]\nlisten = 127.0.0.1:1\nupstream = nope\n" U,
     "t.ini:3: [proxy] upstream: no [upstream nope] section", true},
    /* listeners */
    {P "listen = 127.0.0.1:8080\n" U,
     "t.ini:4: [proxy] listen: duplicate listener 127.0.0.1:8080, first at line 2", true},
    {P "listen = 127.0.0.1\n" U, "t.ini:4: [proxy] listen: missing port in \"127.0.0.1\"", true},
    {P "listen = 127.0.0.1:30o1\n" U, "t.ini:4: [proxy] listen: bad port \"30o1\"", true},
    {P "listen = 127.0.0.1:65536\n" U, "listen: bad port \"65536\"", false},
    {P "listen = no-such-host.invalid:80\n" U, "listen: cannot resolve \"no-such-host.invalid\"",
     false},
    {P "listen = ::1:80\n" U, "listen: bad address \"::1:80\": write IPv6 as [addr]:port", false},
    {"[proxy]\nupstream = app\n" U,
     "t.ini:1: [proxy] listen: missing, at least one listen = is required", true},
    {"; comment\n\n[proxy]\nupstream = app\n" U,
     "t.ini:3: [proxy] listen: missing, at least one listen = is required", true},
    {U, "t.ini:1: [proxy] listen: missing, at least one listen = is required", true},
    {"", "t.ini:1: [proxy] listen: missing, at least one listen = is required", true},
    {"[proxy]\nlisten = 127.0.0.1:1\n" U,
     "t.ini:1: [proxy] upstream: missing, upstream = NAME is required", true},
    /* servers */
    {P "[upstream app]\nserver = 127.0.0.1:30o1 weight=2\n",
     "t.ini:5: [upstream app] server: bad port \"30o1\"", true},
    {P "[upstream app]\nserver = 127.0.0.1:0\n",
     "t.ini:5: [upstream app] server: bad port 0 in \"127.0.0.1:0\" (1..65535)", true},
    {P "[upstream app]\nserver = [::1]:0\n", "server: bad port 0", false},
    {P "[upstream app]\nserver = 127.0.0.1:65536\n", "server: bad port \"65536\"", false},
    {P "[upstream app]\nserver = 127.0.0.1\n", "server: missing port", false},
    {P "[upstream app]\nserver = 127.0.0.1:1 slow\n",
     "t.ini:5: [upstream app] server: unknown option \"slow\" (weight=N, backup)", true},
    {P "[upstream app]\nserver = 127.0.0.1:1 weight=0\n",
     "t.ini:5: [upstream app] server: bad weight \"0\" (1..100)", true},
    {P "[upstream app]\nserver = 127.0.0.1:1 weight=101\n", "server: bad weight \"101\"", false},
    {P "[upstream app]\nserver = 127.0.0.1:1 weight=x\n", "server: bad weight \"x\"", false},
    {P "[upstream app]\nserver = 127.0.0.1:1 weight=\n", "server: bad weight \"\"", false},
    {P "[upstream app]\nserver = 127.0.0.1:1 weight = 2\n", "server: unknown option \"weight\"",
     false},
    {P "[upstream app]\nserver = 127.0.0.1:1 weight=2 weight=3\n", "server: weight given twice",
     false},
    {P "[upstream app]\nserver = 127.0.0.1:1 backup backup\n", "server: backup given twice",
     false},
    {P U "server = 127.0.0.1:3001 weight=5\n",
     "t.ini:6: [upstream app] server: duplicate server 127.0.0.1:3001, first at line 5", true},
    /* [upstream] values */
    {P U "connect_timeout = 0\n",
     "t.ini:6: [upstream app] connect_timeout: must be greater than 0", true},
    {P U "read_timeout = 1x\n", "read_timeout: bad duration unit \"x\"", false},
    {P U "keepalive = 1025\n", "t.ini:6: [upstream app] keepalive: 1025 out of range (0..1024)",
     true},
    {P U "keepalive = many\n", "keepalive: bad number \"many\"", false},
    {P U "preserve_host = maybe\n",
     "t.ini:6: [upstream app] preserve_host: bad boolean \"maybe\" (yes|no|on|off|true|false)",
     true},
    /* balancing */
    {P U "balance = weighted\n",
     "t.ini:6: [upstream app] balance: bad balance \"weighted\" "
     "(round_robin|least_conn|random|hash)",
     true},
    {P U "balance = Round_Robin\n", "balance: bad balance \"Round_Robin\"", false},
    {P U "balance = round-robin\n", "balance: bad balance \"round-robin\"", false},
    {P U "balance = hash\nhash_key = cookie\n",
     "t.ini:7: [upstream app] hash_key: bad hash key \"cookie\" (client_ip or header:NAME)", true},
    {P U "balance = hash\nhash_key = header\n", "hash_key: bad hash key \"header\"", false},
    {P U "balance = hash\nhash_key = Header:X\n", "hash_key: bad hash key \"Header:X\"", false},
    {P U "balance = hash\nhash_key = header:\n",
     "t.ini:7: [upstream app] hash_key: missing header name in \"header:\" (header:NAME)", true},
    {P U "balance = hash\nhash_key = header:X User\n",
     "t.ini:7: [upstream app] hash_key: bad header name \"X User\" (a token: letters, digits "
     "and !#$%&'*+-.^_`|~)",
     true},
    {P U "balance = hash\nhash_key = header: X\n", "hash_key: bad header name \" X\"", false},
    {P U "balance = hash\nhash_key = header:X:Y\n", "hash_key: bad header name \"X:Y\"", false},
    {P U "balance = hash\nhash_key = header:X(1)\n", "hash_key: bad header name \"X(1)\"", false},
    {P U "balance = hash\nhash_key = header:X\xc3\xa9\n", "hash_key: bad header name", false},
    {P U "balance = hash\nhash_key = client_ip\nhash_key = header:X\n",
     "t.ini:8: [upstream app] hash_key: given twice, first at line 7", true},
    {P U "balance = random\nbalance = hash\n",
     "t.ini:7: [upstream app] balance: given twice, first at line 6", true},
    {P U "retries = 11\n", "t.ini:6: [upstream app] retries: 11 out of range (0..10)", true},
    {P U "retries = -1\n", "retries: bad number \"-1\"", false},
    /* active health checks */
    {P U "health_check = maybe\n",
     "t.ini:6: [upstream app] health_check: bad boolean \"maybe\" (yes|no|on|off|true|false)",
     true},
    {P U "health_check = 1\n", "health_check: bad boolean \"1\"", false},
    {P U "health_path = health\n",
     "t.ini:6: [upstream app] health_path: bad path \"health\": must start with '/'", true},
    {P U "health_path = http://a/health\n", "health_path: bad path \"http://a/health\"", false},
    {P U "health_path = /a b\n",
     "t.ini:6: [upstream app] health_path: bad character 0x20 at byte 3 of the path (visible "
     "ASCII only)",
     true},
    {P U "health_path = /a\tb\n", "health_path: bad character 0x09 at byte 3", false},
    {P U "health_path = /\xc3\xa9\n", "health_path: bad character 0xc3 at byte 2", false},
    {P U "health_path = /\x7f\n", "health_path: bad character 0x7f at byte 2", false},
    {P U "health_interval = 0\n",
     "t.ini:6: [upstream app] health_interval: must be greater than 0", true},
    {P U "health_interval = 2d\n", "health_interval: bad duration unit \"d\"", false},
    {P U "health_timeout = 0ms\n", "health_timeout: must be greater than 0", false},
    {P U "health_timeout = 86401\n", "health_timeout: duration 86401 out of range", false},
    {P U "rise = 0\n", "t.ini:6: [upstream app] rise: 0 out of range (1..100)", true},
    {P U "rise = 101\n", "t.ini:6: [upstream app] rise: 101 out of range (1..100)", true},
    {P U "fall = 0\n", "t.ini:6: [upstream app] fall: 0 out of range (1..100)", true},
    {P U "fall = 101\n", "fall: 101 out of range (1..100)", false},
    {P U "fall = three\n", "fall: bad number \"three\"", false},
    {P U "health_status = 99\n",
     "t.ini:6: [upstream app] health_status: bad status range \"99\" (N or N-M, "
     "100 <= N <= M <= 599)",
     true},
    {P U "health_status = 600\n", "health_status: bad status range \"600\"", false},
    {P U "tls = maybe\n", "t.ini:6: [upstream app] tls: bad boolean \"maybe\"", false},
    {P U "tls_verify = 2\n", "t.ini:6: [upstream app] tls_verify: bad boolean", false},
    {P U "tls = on\ntls_ca = /nonexistent/ca.pem\n",
     "t.ini:7: [upstream app] tls_ca: /nonexistent/ca.pem: cannot open: No such file or directory",
     true},
    /* a CA file is checked with tls = off too */
    {P U "tls_ca = /nonexistent/ca.pem\n",
     "t.ini:6: [upstream app] tls_ca: /nonexistent/ca.pem: cannot open", false},
    {P U "tls = on\ntls_ca = /dev/null\n",
     "t.ini:7: [upstream app] tls_ca: /dev/null: no CA certificate in it (PEM expected)", false},
    {P U "tls_server_name = a_b.test\n",
     "t.ini:6: [upstream app] tls_server_name: bad name \"a_b.test\"", false},
    {P U "tls_server_name = a..test\n", "tls_server_name: bad name \"a..test\"", false},
    {P U "tls_server_name = .a.test\n", "tls_server_name: bad name \".a.test\"", false},
    {P U "health_status = 300-200\n", "health_status: bad status range \"300-200\"", false},
    {P U "health_status = 2xx\n", "health_status: bad status range \"2xx\"", false},
    {P U "health_status = 200-600\n", "health_status: bad status range \"200-600\"", false},
    {P U "health_status = 99-200\n", "health_status: bad status range \"99-200\"", false},
    {P U "health_status = 200-\n", "health_status: bad status range \"200-\"", false},
    {P U "health_status = -399\n", "health_status: bad status range \"-399\"", false},
    {P U "health_status = 200-300-400\n", "health_status: bad status range \"200-300-400\"",
     false},
    {P U "health_status = 200 - 399\n", "health_status: bad status range \"200 - 399\"", false},
    {P U "health_status = 200,204\n", "health_status: bad status range \"200,204\"", false},
    {P U "health_status = 99999999999999999999999\n", "health_status: bad status range", false},
    {P U "health_status = 200-399\nhealth_status = 200\n",
     "t.ini:7: [upstream app] health_status: given twice, first at line 6", true},
    /* the circuit breaker */
    {P U "max_fails = 1001\n", "t.ini:6: [upstream app] max_fails: 1001 out of range (0..1000)",
     true},
    {P U "max_fails = -1\n", "max_fails: bad number \"-1\"", false},
    {P U "fail_window = 0\n", "t.ini:6: [upstream app] fail_window: must be greater than 0", true},
    {P U "fail_window = 10x\n", "fail_window: bad duration unit \"x\"", false},
    {P U "cooldown = 0s\n", "t.ini:6: [upstream app] cooldown: must be greater than 0", true},
    {P U "max_ejected_percent = 101\n",
     "t.ini:6: [upstream app] max_ejected_percent: 101 out of range (0..100)", true},
    {P U "max_ejected_percent = 50%\n", "max_ejected_percent: bad number \"50%\"", false},
    {P U "health_interval_down = 0\n",
     "t.ini:6: [upstream app] health_interval_down: must be greater than 0", true},
    {P U "fail_on_5xx = sometimes\n",
     "t.ini:6: [upstream app] fail_on_5xx: bad boolean \"sometimes\" "
     "(yes|no|on|off|true|false)",
     true},
    {P U "fail_on_5xx =\n", "t.ini:6: [upstream app] fail_on_5xx: empty value", true},
    {P U "fail_on_5xx = no\nfail_on_5xx = yes\n",
     "t.ini:7: [upstream app] fail_on_5xx: given twice, first at line 6", true},
    {P U "max_fail = 3\n", "t.ini:6: [upstream app] max_fail: unknown key", true},
    /* pid_file, user, shutdown_timeout */
    {P "pid_file =\n" U, "t.ini:4: [proxy] pid_file: empty value", true},
    {P "pid_file = /run/\n" U, "t.ini:4: [proxy] pid_file: bad path \"/run/\": names a directory",
     true},
    {P "pid_file = /run/a.pid\npid_file = /run/b.pid\n" U,
     "t.ini:5: [proxy] pid_file: given twice, first at line 4", true},
    {P "user = no-such-user-mp\n" U, "t.ini:4: [proxy] user: no such user \"no-such-user-mp\"",
     true},
    {P "user = Nobody\n" U, "t.ini:4: [proxy] user: no such user \"Nobody\"", true},
    {P "user =\n" U, "t.ini:4: [proxy] user: empty value", true},
    {P "user = nobody\nuser = root\n" U, "t.ini:5: [proxy] user: given twice, first at line 4",
     true},
    {P "shutdown_timeout = 0\n" U, "t.ini:4: [proxy] shutdown_timeout: must be greater than 0",
     true},
    {P "shutdown_timeout = 0ms\n" U, "t.ini:4: [proxy] shutdown_timeout: must be greater than 0",
     true},
    {P "shutdown_timeout = 30x\n" U,
     "t.ini:4: [proxy] shutdown_timeout: bad duration unit \"x\" in \"30x\" (ms, s, m or h)",
     true},
    {P "shutdown_timeout = soon\n" U, "shutdown_timeout: bad duration \"soon\"", false},
    {P "shutdown_timeout = 86401\n" U,
     "t.ini:4: [proxy] shutdown_timeout: duration 86401 out of range (max 1 day)", true},
    {P "shutdown_timeout = 1s\nshutdown_timeout = 2s\n" U,
     "t.ini:5: [proxy] shutdown_timeout: given twice, first at line 4", true},
    /* [admin] */
    {P U "[admin]\n", "t.ini:6: [admin] listen: missing, listen = ADDR is required", true},
    {P "[admin]\n; nothing here\n" U,
     "t.ini:4: [admin] listen: missing, listen = ADDR is required", true},
    {P U "[admin]\nlisten = 127.0.0.1:9090\n[admin]\nlisten = 127.0.0.1:9091\n",
     "t.ini:8: [admin]: section given twice, first at line 6", true},
    {P U "[ admin ]\nlisten = 127.0.0.1:9090\n[admin]\n",
     "t.ini:8: [admin]: section given twice, first at line 6", true},
    {P U "[admin]\nlisten = 127.0.0.1:9090\nport = 9090\n", "t.ini:8: [admin] port: unknown key",
     true},
    {P U "[admin]\nworkers = 2\nlisten = 127.0.0.1:9090\n",
     "t.ini:7: [admin] workers: unknown key", true},
    {P U "[admin]\nlisten = 127.0.0.1:9090\nlisten = 127.0.0.1:9091\n",
     "t.ini:8: [admin] listen: given twice, first at line 7", true},
    {P U "[admin]\nlisten =\n", "t.ini:7: [admin] listen: empty value", true},
    {P U "[admin]\nlisten = 127.0.0.1\n", "t.ini:7: [admin] listen: missing port in \"127.0.0.1\"",
     true},
    {P U "[admin]\nlisten = 127.0.0.1:90x0\n", "t.ini:7: [admin] listen: bad port \"90x0\"", true},
    {P U "[admin]\nlisten = 127.0.0.1:65536\n", "t.ini:7: [admin] listen: bad port \"65536\"",
     true},
    {P U "[admin]\nlisten = ::1:9090\n",
     "t.ini:7: [admin] listen: bad address \"::1:9090\": write IPv6 as [addr]:port", true},
    {P U "[admin]\nlisten = no-such-host.invalid:9090\n",
     "t.ini:7: [admin] listen: cannot resolve \"no-such-host.invalid\"", false},
    {P U "[admin]\nlisten = 127.0.0.1:8080\n",
     "t.ini:7: [admin] listen: 127.0.0.1:8080 is also a [proxy] listen (line 2)", true},
    /* [admin] before [proxy]: checked once the whole file is read */
    {"[admin]\nlisten = 127.0.0.1:8080\n" P U,
     "t.ini:2: [admin] listen: 127.0.0.1:8080 is also a [proxy] listen (line 4)", true},
    {"[proxy]\nlisten = 127.0.0.1:1\nlisten = 0.0.0.0:8080\nupstream = app\n" U
     "[admin]\nlisten = 127.0.0.1:8080\n",
     "t.ini:8: [admin] listen: 127.0.0.1:8080 overlaps the [proxy] listen 0.0.0.0:8080 (line 3)",
     true},
    {"[proxy]\nlisten = 127.0.0.1:8080\nupstream = app\n" U "[admin]\nlisten = 0.0.0.0:8080\n",
     "t.ini:7: [admin] listen: 0.0.0.0:8080 overlaps the [proxy] listen 127.0.0.1:8080 (line 2)",
     true},
    {"[proxy]\nlisten = [::]:8080\nupstream = app\n" U "[admin]\nlisten = 127.0.0.1:8080\n",
     "t.ini:7: [admin] listen: 127.0.0.1:8080 overlaps the [proxy] listen [::]:8080 (line 2)",
     true},
    {"[proxy]\nlisten = [::1]:8080\nupstream = app\n" U "[admin]\nlisten = [::]:8080\n",
     "t.ini:7: [admin] listen: [::]:8080 overlaps the [proxy] listen [::1]:8080 (line 2)", true},
    {"[proxy]\nlisten = [::1]:8080\nupstream = app\n" U "[admin]\nlisten = [::1]:8080\n",
     "t.ini:7: [admin] listen: [::1]:8080 is also a [proxy] listen (line 2)", true},
    {P U "[admin]\nlisten = 127.0.0.1:9090\n[upstream app]\n",
     "t.ini:8: [upstream app]: duplicate group name, first at line 4", true},
    {P U "[administration]\n", "t.ini:6: [administration]: unknown section", false},
};

START_TEST(test_errors)
{
    struct config *c = load(error_cases[_i].text);

    ck_assert_msg(c == NULL, "case %d loaded", _i);
    if (error_cases[_i].exact)
        ck_assert_msg(strcmp(err, error_cases[_i].want) == 0, "case %d: got '%s', want '%s'", _i,
                      err, error_cases[_i].want);
    else
        ck_assert_msg(strstr(err, error_cases[_i].want) != NULL,
                      "case %d: got '%s', want '...%s...'", _i, err, error_cases[_i].want);
}
END_TEST

START_TEST(test_too_many_listeners)
{
    char text[4096];
    size_t n = 0;

    n += (size_t)snprintf(text + n, sizeof(text) - n, "[proxy]\nupstream = app\n");
    for (int i = 0; i <= CFG_MAX_LISTENERS; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "listen = 127.0.0.1:%d\n", 1000 + i);
    ck_assert_ptr_null(load(text));
    ck_assert_str_eq(err, "t.ini:35: [proxy] listen: too many listeners (max 32)");
}
END_TEST

START_TEST(test_long_line)
{
    char text[2048];
    struct config *c;

    /* a 1021-byte line still fits inih's buffer (1024 with \r\n\0) */
    snprintf(text, sizeof(text), P "\nerror_log = /%01008d\r\n" U, 0);
    c = load(text);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_uint_eq(strlen(c->error_log), 1009);
    cfg_free(c);

    snprintf(text, sizeof(text), P "\nerror_log = /%01009d\r\n" U, 0);
    ck_assert_ptr_null(load(text));
    ck_assert_str_eq(err, "t.ini:5: line too long (max 1021 bytes)");
}
END_TEST

/* The error message is cut to fit a small buffer, and stays terminated. */
START_TEST(test_small_err)
{
    char small[16];

    memset(small, 'x', sizeof(small));
    ck_assert_ptr_null(cfg_load_string(P "worker = 1\n" U, "t.ini", small, sizeof(small)));
    ck_assert_str_eq(small, "t.ini:4: [proxy");
}
END_TEST

/* ---- files ----------------------------------------------------------- */

static void
write_temp(char *path, const char *text)
{
    int fd = mkstemp(path);
    FILE *fp;

    ck_assert_int_ne(fd, -1);
    fp = fdopen(fd, "w");
    ck_assert_ptr_nonnull(fp);
    fputs(text, fp);
    ck_assert_int_eq(fclose(fp), 0);
}

START_TEST(test_file_ok)
{
    char path[] = "/tmp/unit_config.XXXXXX";
    struct config *c;

    write_temp(path, ref_ini);
    c = cfg_load(path, err, sizeof(err));
    unlink(path);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_str_eq(c->path, path);
    ck_assert_uint_eq(c->groups[0].nservers, 2);
    ck_assert_int_eq(c->groups[0].servers[1].line, 18);
    ck_assert_uint_eq(c->client_max_body_size, 1024ULL * 1024 * 1024);
    cfg_free(c);
}
END_TEST

START_TEST(test_file_errors)
{
    char path[] = "/tmp/unit_config.XXXXXX";
    char want[256], text[2048];

    write_temp(path, "; x\r\n[proxy]\r\nlisten = 127.0.0.1:1\r\nupstream = app\r\n"
                     "[upstream app]\r\nserver = 127.0.0.1:30o1\r\n");
    ck_assert_ptr_null(cfg_load(path, err, sizeof(err)));
    unlink(path);
    snprintf(want, sizeof(want), "%s:6: [upstream app] server: bad port \"30o1\"", path);
    ck_assert_str_eq(err, want);

    /* a long line in a file: fgets() would split it */
    snprintf(text, sizeof(text), P "workers = 2\nerror_log = /%01200d\nworkers = x\n" U, 0);
    strcpy(path, "/tmp/unit_config.XXXXXX");
    write_temp(path, text);
    ck_assert_ptr_null(cfg_load(path, err, sizeof(err)));
    unlink(path);
    snprintf(want, sizeof(want), "%s:5: line too long (max 1021 bytes)", path);
    ck_assert_str_eq(err, want);

    ck_assert_ptr_null(cfg_load("/nonexistent/miniproxy.ini", err, sizeof(err)));
    ck_assert_str_eq(err, "/nonexistent/miniproxy.ini: cannot open: No such file or directory");
}
END_TEST

/* ---- cfg_diff -------------------------------------------------------- */

/*
 * D(p, u): a base config with <p> added to [proxy] and <u> after [upstream
 * app] (<u> may open more sections). DX(p, u) leaves out "upstream = app".
 */
#define DX(p, u)                                                                                  \
    "[proxy]\nlisten = 127.0.0.1:8080\nworkers = 4\n" p                                           \
    "[upstream app]\nserver = 127.0.0.1:3001\nserver = 127.0.0.1:3002\n" u
#define D(p, u) DX("upstream = app\n" p, u)
#define GB "[upstream b]\nserver = 127.0.0.1:4001\n"
/* DA(p): the same with workers = auto (by default), <p> added to [proxy] */
#define DA(p)                                                                                     \
    "[proxy]\nlisten = 127.0.0.1:8080\nupstream = app\n" p                                        \
    "[upstream app]\nserver = 127.0.0.1:3001\nserver = 127.0.0.1:3002\n"
#define POOL "min_workers = 2\nmax_workers = 256\nmin_spare = 2\nmax_spare = 8\n"

static const struct {
    const char *old, *new;
    const char *want; /* the lines, each ended with '\n'; "" for none */
} diff_cases[] = {
    /* nothing that behaves differently */
    {D("", ""), D("", ""), ""},
    {D("", ""),
     "; same config, other order, other lines\n\n[upstream app]\nserver = 127.0.0.1:3002\n"
     "server = 127.0.0.1:3001 weight=1\nkeepalive = 16\n[proxy]\nupstream = app\n"
     "workers = 4\nlisten = 127.0.0.1:8080\nkeepalive_timeout = 5s\n",
     ""},
    {D("pid_file = /run/m.pid\n", "[admin]\nlisten = 127.0.0.1:9090\n"),
     D("pid_file = /run/m.pid\n", "[admin]\nlisten = 127.0.0.1:9090\n"), ""},
    /* listeners */
    {D("", ""), D("listen = 127.0.0.1:8081\n", ""), "listener added 127.0.0.1:8081\n"},
    {D("listen = 127.0.0.1:8081\n", ""), D("", ""), "listener removed 127.0.0.1:8081\n"},
    {D("listen = 127.0.0.1:8081\n", ""), D("listen = [::1]:8081\n", ""),
     "listener removed 127.0.0.1:8081\nlistener added [::1]:8081\n"},
    /* deferred accept: the same socket, told again */
    {D("", ""),
     "[proxy]\nlisten = 127.0.0.1:8080 nodeferred\nworkers = 4\nupstream = app\n"
     "[upstream app]\nserver = 127.0.0.1:3001\nserver = 127.0.0.1:3002\n",
     "listener 127.0.0.1:8080 nodeferred\n"},
    {"[proxy]\nlisten = 127.0.0.1:8080 nodeferred\nworkers = 4\nupstream = app\n"
     "[upstream app]\nserver = 127.0.0.1:3001\nserver = 127.0.0.1:3002\n",
     D("", ""), "listener 127.0.0.1:8080 deferred\n"},
    /* [proxy] keys */
    {D("", ""),
     "[proxy]\nlisten = 127.0.0.1:8080\nworkers = 8\nupstream = app\n"
     "[upstream app]\nserver = 127.0.0.1:3001\nserver = 127.0.0.1:3002\n",
     "workers 4 -> 8\n"},
    /* the pool: workers when fixed or switched, the bounds when both are auto */
    {D("", ""), DA(""), "workers 4 -> auto\n"},
    {DA(""), D("", ""), "workers auto -> 4\n"},
    {DA(POOL), DA("workers = 8\n"), "workers auto -> 8\n"},
    {DA("workers = 8\n"), DA("workers = auto\n" POOL), "workers 8 -> auto\n"},
    {DA(""), DA("workers = auto\n"), ""},
    {DA(POOL), DA("workers = auto\n" POOL), ""},
    {DA(POOL), DA("min_workers = 2\nmax_workers = 64\nmin_spare = 2\nmax_spare = 8\n"),
     "max_workers 256 -> 64\n"},
    {DA(POOL), DA("min_workers = 4\nmax_workers = 128\nmin_spare = 0\nmax_spare = 16\n"),
     "min_workers 2 -> 4\nmax_workers 256 -> 128\nmin_spare 2 -> 0\nmax_spare 8 -> 16\n"},
    /* slow clients */
    {D("", ""), D("client_header_min_rate = 0\n", ""), "client_header_min_rate 256 -> 0\n"},
    {D("", ""), D("client_body_min_rate = 1024\n", ""), "client_body_min_rate 256 -> 1024\n"},
    {D("", ""), D("max_conns_per_ip = 10\n", ""), "max_conns_per_ip 0 -> 10\n"},
    {D("max_conns_per_ip = 10\n", ""), D("max_conns_per_ip = 0\n", ""),
     "max_conns_per_ip 10 -> 0\n"},
    {D("", GB), DX("upstream = b\n", GB), "upstream app -> b\n"},
    {D("", ""), D("error_log = /var/log/miniproxyd/error.log\n", ""),
     "error_log stderr -> /var/log/miniproxyd/error.log\n"},
    {D("access_log = /var/log/a.log\n", ""), D("access_log = off\n", ""),
     "access_log /var/log/a.log -> off\n"},
    {D("", ""), D("log_level = debug\n", ""), "log_level info -> debug\n"},
    {D("log_level = error\n", ""), D("log_level = warn\n", ""), "log_level error -> warn\n"},
    {D("", ""), D("keepalive_timeout = 0\n", ""), "keepalive_timeout 5000 ms -> 0 ms\n"},
    {D("", ""), D("keepalive_requests = 10\n", ""), "keepalive_requests 1000 -> 10\n"},
    {D("", ""), D("client_header_timeout = 2s\n", ""),
     "client_header_timeout 10000 ms -> 2000 ms\n"},
    {D("", ""), D("client_body_timeout = 1m\n", ""), "client_body_timeout 30000 ms -> 60000 ms\n"},
    {D("", ""), D("send_timeout = 100ms\n", ""), "send_timeout 30000 ms -> 100 ms\n"},
    {D("", ""), D("client_max_body_size = 0\n", ""),
     "client_max_body_size 1048576 bytes -> 0 bytes\n"},
    {D("", ""), D("max_header_size = 32k\n", ""), "max_header_size 16384 bytes -> 32768 bytes\n"},
    {D("", ""), D("pid_file = /run/m.pid\n", ""), "pid_file none -> /run/m.pid\n"},
    {D("pid_file = /run/a.pid\n", ""), D("pid_file = /run/b.pid\n", ""),
     "pid_file /run/a.pid -> /run/b.pid\n"},
    {D("pid_file = /run/m.pid\n", ""), D("", ""), "pid_file /run/m.pid -> none\n"},
    {D("", ""), D("user = nobody\n", ""), "user none -> nobody\n"},
    {D("user = root\n", ""), D("user = nobody\n", ""), "user root -> nobody\n"},
    {D("", ""), D("shutdown_timeout = 5s\n", ""), "shutdown_timeout 30000 ms -> 5000 ms\n"},
    /* [admin] */
    {D("", ""), D("", "[admin]\nlisten = 127.0.0.1:9090\n"),
     "admin listen none -> 127.0.0.1:9090\n"},
    {D("", "[admin]\nlisten = 127.0.0.1:9090\n"), D("", ""),
     "admin listen 127.0.0.1:9090 -> none\n"},
    {D("", "[admin]\nlisten = 127.0.0.1:9090\n"), D("", "[admin]\nlisten = 127.0.0.1:9091\n"),
     "admin listen 127.0.0.1:9090 -> 127.0.0.1:9091\n"},
    /* groups */
    {D("", ""), D("", GB), "upstream group added b\n"},
    {D("", GB), D("", ""), "upstream group removed b\n"},
    {D("", GB), D("", "[upstream c]\nserver = 127.0.0.1:4001\n"),
     "upstream group removed b\nupstream group added c\n"},
    {D("", GB), D("", "[upstream b]\nserver = 127.0.0.1:4001\nserver = 127.0.0.1:4002\n"),
     "[b] server added 127.0.0.1:4002\n"},
    /* servers, matched by address text */
    {D("", ""), D("", "server = 127.0.0.1:3004\n"), "[app] server added 127.0.0.1:3004\n"},
    {D("", "server = 127.0.0.1:3004\n"), D("", ""), "[app] server removed 127.0.0.1:3004\n"},
    {"[proxy]\nlisten = 127.0.0.1:8080\nworkers = 4\nupstream = app\n"
     "[upstream app]\nserver = 127.0.0.1:3001\nserver = 127.0.0.1:3002\n",
     "[proxy]\nlisten = 127.0.0.1:8080\nworkers = 4\nupstream = app\n"
     "[upstream app]\nserver = 127.0.0.1:3001 weight=3\nserver = 127.0.0.1:3003\n",
     "[app] server removed 127.0.0.1:3002\n[app] server added 127.0.0.1:3003\n"
     "[app] 127.0.0.1:3001 weight 1 -> 3\n"},
    {D("", "server = 127.0.0.1:3005 weight=2\n"), D("", "server = 127.0.0.1:3005 backup\n"),
     "[app] 127.0.0.1:3005 weight 2 -> 1\n[app] 127.0.0.1:3005 now backup\n"},
    {D("", "server = 127.0.0.1:3005 backup\n"), D("", "server = 127.0.0.1:3005\n"),
     "[app] 127.0.0.1:3005 now primary\n"},
    /* [upstream NAME] keys */
    {D("", ""), D("", "connect_timeout = 1s\n"), "[app] connect_timeout 3000 ms -> 1000 ms\n"},
    {D("", ""), D("", "read_timeout = 1s\n"), "[app] read_timeout 60000 ms -> 1000 ms\n"},
    {D("", ""), D("", "keepalive = 0\n"), "[app] keepalive 16 -> 0\n"},
    {D("", ""), D("", "preserve_host = yes\n"), "[app] preserve_host no -> yes\n"},
    {D("", ""), D("", "balance = least_conn\n"), "[app] balance round_robin -> least_conn\n"},
    {D("", "balance = random\n"), D("", "balance = hash\n"), "[app] balance random -> hash\n"},
    {D("", "balance = hash\n"), D("", "balance = hash\nhash_key = header:X-User\n"),
     "[app] hash_key client_ip -> header:X-User\n"},
    {D("", "hash_key = header:A\n"), D("", "hash_key = header:B\n"),
     "[app] hash_key header:A -> header:B\n"},
    {D("", ""), D("", "retries = 0\n"), "[app] retries 2 -> 0\n"},
    {D("", ""), D("", "health_check = off\n"), "[app] health_check on -> off\n"},
    {D("", ""), D("", "health_path = /ready\n"), "[app] health_path /health -> /ready\n"},
    /* health_interval_down, unset, follows a health_interval shorter than its 1s */
    {D("", ""), D("", "health_interval = 500ms\n"),
     "[app] health_interval 2000 ms -> 500 ms\n[app] health_interval_down 1000 ms -> 500 ms\n"},
    {D("", ""), D("", "health_interval = 5s\n"), "[app] health_interval 2000 ms -> 5000 ms\n"},
    {D("", ""), D("", "health_interval_down = 250ms\n"),
     "[app] health_interval_down 1000 ms -> 250 ms\n"},
    {D("", ""), D("", "max_ejected_percent = 100\n"), "[app] max_ejected_percent 50 -> 100\n"},
    {D("", ""), D("", "health_timeout = 2s\n"), "[app] health_timeout 1000 ms -> 2000 ms\n"},
    {D("", ""), D("", "rise = 5\n"), "[app] rise 2 -> 5\n"},
    {D("", ""), D("", "fall = 1\n"), "[app] fall 3 -> 1\n"},
    {D("", ""), D("", "health_status = 200-299\n"), "[app] health_status 200-399 -> 200-299\n"},
    {D("", ""), D("", "health_status = 200\n"), "[app] health_status 200-399 -> 200-200\n"},
    {D("", ""), D("", "max_fails = 0\n"), "[app] max_fails 5 -> 0\n"},
    {D("", ""), D("", "fail_window = 1m\n"), "[app] fail_window 10000 ms -> 60000 ms\n"},
    {D("", ""), D("", "cooldown = 1s\n"), "[app] cooldown 10000 ms -> 1000 ms\n"},
    {D("", ""), D("", "fail_on_5xx = on\n"), "[app] fail_on_5xx no -> yes\n"},
    /* many at once, in order: listeners, [proxy], [admin], groups, each group kept */
    {D("listen = 127.0.0.1:8081\nlog_level = warn\n", GB "read_timeout = 5s\n"),
     DX("upstream = c\nlisten = 127.0.0.1:8082\nlog_level = warn\nshutdown_timeout = 1m\n",
        "server = 127.0.0.1:3003\nbalance = least_conn\nfall = 4\n"
        "[admin]\nlisten = 127.0.0.1:9090\n"
        "[upstream c]\nserver = 127.0.0.1:5001\n"
        "[upstream b]\nserver = 127.0.0.1:4001 weight=2\nread_timeout = 5s\n"),
     "listener removed 127.0.0.1:8081\n"
     "listener added 127.0.0.1:8082\n"
     "upstream app -> c\n"
     "shutdown_timeout 30000 ms -> 60000 ms\n"
     "admin listen none -> 127.0.0.1:9090\n"
     "upstream group added c\n"
     "[app] server added 127.0.0.1:3003\n"
     "[app] balance round_robin -> least_conn\n"
     "[app] fall 3 -> 4\n"
     "[b] 127.0.0.1:4001 weight 1 -> 2\n"},
};

struct diff_lines {
    char text[4096];
    size_t len;
};

static void
collect_line(void *arg, const char *line)
{
    struct diff_lines *dl = arg;
    int n = snprintf(dl->text + dl->len, sizeof(dl->text) - dl->len, "%s\n", line);

    ck_assert_int_ge(n, 0);
    ck_assert_uint_lt(dl->len + (size_t)n, sizeof(dl->text));
    ck_assert_ptr_null(strchr(line, '\n'));
    dl->len += (size_t)n;
}

START_TEST(test_diff)
{
    struct config *a, *b;
    struct diff_lines dl = {"", 0};
    int n, want_n = 0;

    a = load(diff_cases[_i].old);
    ck_assert_msg(a != NULL, "case %d old: %s", _i, err);
    b = load(diff_cases[_i].new);
    ck_assert_msg(b != NULL, "case %d new: %s", _i, err);
    n = cfg_diff(a, b, collect_line, &dl);
    ck_assert_msg(strcmp(dl.text, diff_cases[_i].want) == 0, "case %d: got\n%s\nwant\n%s", _i,
                  dl.text, diff_cases[_i].want);
    for (const char *p = diff_cases[_i].want; *p != '\0'; p++)
        want_n += *p == '\n';
    ck_assert_int_eq(n, want_n);

    /* a config against itself: no changes */
    dl.len = 0;
    dl.text[0] = '\0';
    ck_assert_int_eq(cfg_diff(b, b, collect_line, &dl), 0);
    ck_assert_str_eq(dl.text, "");
    cfg_free(a);
    cfg_free(b);
}
END_TEST

/* Every key set away from its default, then reset: each one gives its line. */
START_TEST(test_diff_all_keys)
{
    static const char all[] = "[proxy]\nlisten = 127.0.0.1:8080\nworkers = 3\nupstream = app\n"
                              "error_log = /e\naccess_log = off\nlog_level = debug\n"
                              "keepalive_timeout = 1s\nkeepalive_requests = 5\n"
                              "client_header_timeout = 1s\nclient_body_timeout = 1s\n"
                              "send_timeout = 1s\nclient_header_min_rate = 1\n"
                              "client_body_min_rate = 0\nmax_conns_per_ip = 3\n"
                              "client_max_body_size = 2m\n"
                              "max_header_size = 8k\npid_file = /p\nuser = nobody\n"
                              "shutdown_timeout = 1s\n"
                              "[admin]\nlisten = 127.0.0.1:9090\n"
                              "[upstream app]\nserver = 127.0.0.1:3001 weight=2 backup\n"
                              "server = 127.0.0.1:3002\n"
                              "connect_timeout = 1s\nread_timeout = 1s\nkeepalive = 1\n"
                              "preserve_host = yes\nbalance = hash\nhash_key = header:X\n"
                              "retries = 1\nhealth_check = off\nhealth_path = /h\n"
                              "health_interval = 1s\nhealth_timeout = 2s\nrise = 1\nfall = 1\n"
                              "health_status = 200\nmax_fails = 1\nfail_window = 1s\n"
                              "cooldown = 1s\nfail_on_5xx = yes\n";
    static const char base[] = "[proxy]\nlisten = 127.0.0.1:8080\nworkers = 4\nupstream = app\n"
                               "[upstream app]\nserver = 127.0.0.1:3001\n"
                               "server = 127.0.0.1:3002\n";
    struct config *a = load(all), *b;
    struct diff_lines dl = {"", 0};

    ck_assert_msg(a != NULL, "%s", err);
    b = load(base);
    ck_assert_msg(b != NULL, "%s", err);
    /* 17 [proxy] keys, [admin], 2 server changes, 18 group keys */
    ck_assert_int_eq(cfg_diff(a, b, collect_line, &dl), 38);
    ck_assert_str_eq(dl.text, "workers 3 -> 4\n"
                              "error_log /e -> stderr\n"
                              "access_log off -> stderr\n"
                              "log_level debug -> info\n"
                              "keepalive_timeout 1000 ms -> 5000 ms\n"
                              "keepalive_requests 5 -> 1000\n"
                              "client_header_timeout 1000 ms -> 10000 ms\n"
                              "client_body_timeout 1000 ms -> 30000 ms\n"
                              "send_timeout 1000 ms -> 30000 ms\n"
                              "client_header_min_rate 1 -> 256\n"
                              "client_body_min_rate 0 -> 256\n"
                              "max_conns_per_ip 3 -> 0\n"
                              "client_max_body_size 2097152 bytes -> 1048576 bytes\n"
                              "max_header_size 8192 bytes -> 16384 bytes\n"
                              "pid_file /p -> none\n"
                              "user nobody -> none\n"
                              "shutdown_timeout 1000 ms -> 30000 ms\n"
                              "admin listen 127.0.0.1:9090 -> none\n"
                              "[app] 127.0.0.1:3001 weight 2 -> 1\n"
                              "[app] 127.0.0.1:3001 now primary\n"
                              "[app] connect_timeout 1000 ms -> 3000 ms\n"
                              "[app] read_timeout 1000 ms -> 60000 ms\n"
                              "[app] keepalive 1 -> 16\n"
                              "[app] preserve_host yes -> no\n"
                              "[app] balance hash -> round_robin\n"
                              "[app] hash_key header:X -> client_ip\n"
                              "[app] retries 1 -> 2\n"
                              "[app] health_check off -> on\n"
                              "[app] health_path /h -> /health\n"
                              "[app] health_interval 1000 ms -> 2000 ms\n"
                              "[app] health_timeout 2000 ms -> 1000 ms\n"
                              "[app] rise 1 -> 2\n"
                              "[app] fall 1 -> 3\n"
                              "[app] health_status 200-200 -> 200-399\n"
                              "[app] max_fails 1 -> 5\n"
                              "[app] fail_window 1000 ms -> 10000 ms\n"
                              "[app] cooldown 1000 ms -> 10000 ms\n"
                              "[app] fail_on_5xx yes -> no\n");
    cfg_free(a);
    cfg_free(b);
}
END_TEST

/* ---- comments after values ------------------------------------------ */

static const struct {
    const char *text;
    const char *access_log; /* what access_log must be */
    const char *hash_header;
} inline_cases[] = {
    /* " #" after a value, as nginx and shell users write it */
    {P "access_log = /var/log/mp.log   # main log\n" U, "/var/log/mp.log", ""},
    {P "access_log = /var/log/mp.log\t# after a tab\n" U, "/var/log/mp.log", ""},
    {P "access_log = /var/log/mp.log #\n" U, "/var/log/mp.log", ""},
    /* " ;" as before */
    {P "access_log = /var/log/mp.log ; main log\n" U, "/var/log/mp.log", ""},
    {P "access_log = /var/log/mp.log ; a # in the comment\n" U, "/var/log/mp.log", ""},
    /* inside a word, '#' and ';' are part of the value */
    {P "access_log = /var/log/a#b.log\n" U, "/var/log/a#b.log", ""},
    {P "access_log = /var/log/a;b.log\n" U, "/var/log/a;b.log", ""},
    {P "access_log = off\n" U "hash_key = header:X#1 # a header name may hold '#'\n", "off",
     "X#1"},
    {P U "[admin] # the status endpoint\nlisten = 127.0.0.1:9090 # loopback\n", "stderr", ""},
};

START_TEST(test_inline_comments)
{
    struct config *c = load(inline_cases[_i].text);

    ck_assert_msg(c != NULL, "case %d: %s", _i, err);
    ck_assert_str_eq(c->access_log, inline_cases[_i].access_log);
    ck_assert_str_eq(c->groups[0].hash_header, inline_cases[_i].hash_header);
    cfg_free(c);
}
END_TEST

START_TEST(test_inline_comment_errors)
{
    ck_assert_ptr_null(load(P "workers # = 4\n" U));
    ck_assert_str_eq(err, "t.ini:4: syntax error: expected key = value");
    ck_assert_ptr_null(load(P "workers = 4 #\n"
                              "workers = 5 # twice\n" U));
    ck_assert_str_eq(err, "t.ini:5: [proxy] workers: given twice, first at line 4");
    ck_assert_ptr_null(load(P "workers = # nothing\n" U));
    ck_assert_str_eq(err, "t.ini:4: [proxy] workers: empty value"); /* as with " ;" */
}
END_TEST

/* ---- the key table: defaults and the dump (-T) ------------------------ */

struct dump_text {
    char text[16384];
    size_t len;
};

static void
collect_dump(void *arg, const char *line)
{
    struct dump_text *dt = arg;
    int n = snprintf(dt->text + dt->len, sizeof(dt->text) - dt->len, "%s\n", line);

    ck_assert_int_ge(n, 0);
    ck_assert_uint_lt(dt->len + (size_t)n, sizeof(dt->text));
    ck_assert_ptr_null(strchr(line, '\n'));
    dt->len += (size_t)n;
}

static void
dump(const struct config *c, struct dump_text *dt)
{
    dt->len = 0;
    dt->text[0] = '\0';
    ck_assert_int_gt(cfg_dump(c, collect_dump, dt), 0);
}

static void
no_line(void *arg, const char *line)
{
    ck_abort_msg("%s: unexpected difference: %s", (const char *)arg, line);
}

/* test_row_defaults() for a [tls] row <k>: against the smallest [tls] section. */
static void
test_tls_row_default(const struct cfg_key_doc *k)
{
    static struct dump_text plain, with;
    static char text[1024];
    struct config *base, *c;

    snprintf(text, sizeof(text), P U "%s", tls_min);
    base = load(text);
    ck_assert_msg(base != NULL, "%s", err);
    dump(base, &plain);
    snprintf(text, sizeof(text), P U "%s%s = %s\n", tls_min, k->name, k->default_value);
    c = load(text);
    ck_assert_msg(c != NULL, "[tls] %s = %s: %s", k->name, k->default_value, err);
    ck_assert_int_eq(cfg_diff(base, c, no_line, (void *)k->name), 0);
    dump(c, &with);
    ck_assert_str_eq(plain.text, with.text);
    cfg_free(c);
    cfg_free(base);
}

/*
 * Every row's documented default is a value its own setter takes, and
 * writing it changes nothing: the default in the documentation is the one
 * the code applies.
 */
START_TEST(test_row_defaults)
{
    static struct dump_text plain, with;
    struct config *base = load(P U), *c;
    struct cfg_key_doc k;
    char text[512];
    size_t i, tried = 0;

    ck_assert_msg(base != NULL, "%s", err);
    dump(base, &plain);
    for (i = 0; cfg_key_doc(i, &k) == 0; i++) {
        ck_assert_ptr_nonnull(k.default_doc);
        if (k.default_value == NULL)
            continue; /* required, none, or computed from the CPUs */
        ck_assert_str_eq(k.default_doc, k.default_value);
        if (strcmp(k.section, "tls") == 0) {
            test_tls_row_default(&k);
            tried++;
            continue;
        }
        if (strcmp(k.section, "proxy") == 0)
            snprintf(text, sizeof(text), P "%s = %s\n" U, k.name, k.default_value);
        else if (strcmp(k.section, "route NAME") == 0)
            snprintf(text, sizeof(text), P U "[route r]\nupstream = app\n%s = %s\n", k.name,
                     k.default_value);
        else
            snprintf(text, sizeof(text), P U "%s = %s\n", k.name, k.default_value);
        if (strcmp(k.section, "route NAME") == 0) {
            /* a route of its own: compared with the same route without the key */
            char bare[512];
            struct config *b;
            snprintf(bare, sizeof(bare), P U "[route r]\nupstream = app\n");
            b = load(bare);
            ck_assert_msg(b != NULL, "%s", err);
            c = load(text);
            ck_assert_msg(c != NULL, "[%s] %s = %s: %s", k.section, k.name, k.default_value, err);
            ck_assert_int_eq(cfg_diff(b, c, no_line, (void *)k.name), 0);
            cfg_free(b);
            cfg_free(c);
            tried++;
            continue;
        }
        c = load(text);
        ck_assert_msg(c != NULL, "[%s] %s = %s: %s", k.section, k.name, k.default_value, err);
        ck_assert_int_eq(cfg_diff(base, c, no_line, (void *)k.name), 0);
        dump(c, &with);
        ck_assert_str_eq(plain.text, with.text);
        cfg_free(c);
        tried++;
    }
    ck_assert_uint_gt(i, 40);
    ck_assert_uint_gt(tried, 30);
    cfg_free(base);
}
END_TEST

static const char *const dump_cases[] = {
    ref_ini,
    ref_pool_ini,
    /* the adaptive pool with its bounds given, [admin], every value away from its default */
    "[proxy]\nlisten = 127.0.0.1:8080\nlisten = [::1]:0\nlisten = localhost:8081\n"
    "workers = auto\nmin_workers = 3\nmax_workers = 40\nmin_spare = 1\nmax_spare = 5\n"
    "upstream = b\nerror_log = /tmp/e.log\naccess_log = off\nlog_level = debug\n"
    "keepalive_timeout = 0\nkeepalive_requests = 7\nclient_header_timeout = 1500ms\n"
    "client_body_timeout = 2m\nsend_timeout = 86400\nclient_header_min_rate = 0\n"
    "client_body_min_rate = 1000000000\nmax_conns_per_ip = 9\nclient_max_body_size = 0\n"
    "max_header_size = 1025\npid_file = /run/x.pid\nuser = nobody\nshutdown_timeout = 1ms\n"
    "server_timing = on\nrequest_id = on\ntrusted_proxies = 10.0.0.0/8 ::1/128 192.0.2.7\n"
    "access_log_format = json\n"
    "[admin]\nlisten = [::1]:9090\n"
    "[upstream a]\nserver = 127.0.0.1:1 weight=100\nserver = 127.0.0.1:2 backup\n"
    "[upstream b]\nserver = [::1]:3 weight=2 backup\nserver = localhost:4\n"
    "connect_timeout = 1\nread_timeout = 999ms\nkeepalive = 0\npreserve_host = TRUE\n"
    "balance = hash\nhash_key = header:X-User#1\nretries = 10\nhealth_check = no\n"
    "health_path = /a/b?c=d;e\nhealth_interval = 3m\nhealth_timeout = 10ms\nrise = 100\n"
    "fall = 1\nhealth_status = 204\nmax_fails = 0\nfail_window = 61s\ncooldown = 90\n"
    "fail_on_5xx = on\ntls = on\ntls_verify = off\ntls_server_name = app.internal\n"
    "[route r1]\nhost = API.example.com. *.api.example.com\npath = /api/\nupstream = a\n"
    "strip_prefix = yes\nrequest_header = X-Env: prod\nrequest_header = X-Two: a b  c\n"
    "response_header = Cache-Control: no-store\nhide_response_header = X-Powered-By\n"
    "hide_response_header = Server\n"
    "[route r2]\npath = /static/\nupstream = b\n",
    /* workers = auto with nothing else: the computed pool */
    P U,
    "[proxy]\nlisten = 0.0.0.0:80\nworkers = 1\nupstream = app\nclient_max_body_size = 1024g\n" U,
};

/* load -> dump -> load -> dump: the same lines, and the same configuration. */
START_TEST(test_dump_round_trip)
{
    static struct dump_text first, second;
    struct config *a = load(dump_cases[_i]), *b;

    ck_assert_msg(a != NULL, "case %d: %s", _i, err);
    dump(a, &first);
    b = load(first.text);
    ck_assert_msg(b != NULL, "case %d: the dump does not load: %s\n%s", _i, err, first.text);
    dump(b, &second);
    ck_assert_str_eq(first.text, second.text);
    ck_assert_int_eq(cfg_diff(a, b, no_line, "round trip"), 0);
    ck_assert_uint_eq(a->worker_slots, b->worker_slots);
    ck_assert_uint_eq(a->min_workers, b->min_workers);
    ck_assert_uint_eq(a->min_spare, b->min_spare);
    ck_assert_int_eq(a->admin, b->admin);
    ck_assert_uint_eq(a->ngroups, b->ngroups);
    ck_assert_uint_eq(a->group, b->group);
    cfg_free(a);
    cfg_free(b);
}
END_TEST

/* A [tls] section with every key: load -> dump -> load -> dump gives the same lines. */
START_TEST(test_tls_round_trip)
{
    static struct dump_text first, second;
    struct config *a = load(tls_full), *b;

    ck_assert_msg(a != NULL, "%s", err);
    ck_assert_ptr_nonnull(a->tls_store);
    ck_assert(a->listeners[1].tls);
    ck_assert(!a->listeners[0].tls);
    ck_assert(a->listeners[0].deferred);
    ck_assert(!a->listeners[1].deferred);
    ck_assert_uint_eq(a->tls_hsts, 600);
    ck_assert_int_eq(a->tls_session_timeout_ms, 2 * 3600 * 1000);
    dump(a, &first);
    b = load(first.text);
    ck_assert_msg(b != NULL, "the dump does not load: %s\n%s", err, first.text);
    dump(b, &second);
    ck_assert_str_eq(first.text, second.text);
    cfg_free(a);
    cfg_free(b);
}
END_TEST

/* [tls] and tls listeners: what is refused, with file, line and key. */
static const struct {
    const char *text;
    const char *want;
} tls_error_cases[] = {
    {"[proxy]\nlisten = 127.0.0.1:8443 tls\nupstream = app\n" U,
     "t.ini:2: [proxy] listen: 127.0.0.1:8443 tls: no [tls] section with a certificate"},
    {"[proxy]\nlisten = 127.0.0.1:8443 ssl\nupstream = app\n" U,
     "t.ini:2: [proxy] listen: unknown listener option \"ssl\" (tls, deferred, nodeferred)"},
    {"[proxy]\nlisten = 127.0.0.1:8443 deferred  tl\nupstream = app\n" U,
     "t.ini:2: [proxy] listen: unknown listener option \"tl\" (tls, deferred, nodeferred)"},
    {P U "[tls]\nhsts = 5\n", "t.ini:6: [tls] certificate: missing, at least one is required"},
    {P U "[tls]\ncertificate = /nonexistent/x.pem\n",
     "t.ini:7: [tls] certificate: /nonexistent/x.pem: cannot open: No such file or directory"},
    {P U "[tls]\ncertificate = a.pem kee=b.key\n",
     "t.ini:7: [tls] certificate: bad option \"kee=b.key\" (key=PATH)"},
    {P U "[tls]\nsession_timeout = 25h\n", "t.ini:7: [tls] session_timeout: duration 25h out of "
                                           "range (max 1 day)"},
    {P U "[tls]\nclient_certificate = maybe\n",
     "t.ini:7: [tls] client_certificate: bad mode \"maybe\" (off|optional|required)"},
    {P U "[tls]\nhsts = -1\n", "t.ini:7: [tls] hsts: bad number \"-1\""},
    {P U "[tls]\n[tls]\n", "t.ini:7: [tls]: section given twice, first at line 6"},
    {"[proxy]\nlisten = 127.0.0.1:8080\nupstream = app\nredirect_https = yes\n" U,
     "t.ini:4: [proxy] redirect_https: yes, but no listen = ADDR tls to redirect to"},
};

START_TEST(test_tls_errors)
{
    struct config *c = load(tls_error_cases[_i].text);

    ck_assert_msg(c == NULL, "case %d loaded", _i);
    ck_assert_msg(strcmp(err, tls_error_cases[_i].want) == 0, "case %d: got '%s', want '%s'", _i,
                  err, tls_error_cases[_i].want);
}
END_TEST

/* An error of tls_load() names the line of the key it is about; empty values mean none. */
START_TEST(test_tls_load_errors)
{
    static char text[1024];
    struct config *c;

    snprintf(text, sizeof(text), P U "[tls]\ncertificate = %s/ec.crt key=%s/rsa.key\n", certdir,
             certdir);
    c = load(text);
    ck_assert_ptr_null(c);
    ck_assert_msg(strncmp(err, "t.ini:7: [tls] certificate: ", 28) == 0, "%s", err);
    snprintf(text, sizeof(text), P U "%sprotocols = TLSv1.1\n", tls_min);
    ck_assert_ptr_null(load(text));
    ck_assert_msg(strstr(err, "t.ini:8: [tls] protocols: TLSv1.1 is refused") != NULL, "%s", err);
    snprintf(text, sizeof(text), P U "%sclient_certificate = required\nclient_ca =\n", tls_min);
    ck_assert_ptr_null(load(text));
    ck_assert_msg(strstr(err, "t.ini:8: [tls] client_certificate: required needs client_ca") !=
                      NULL,
                  "%s", err);
    snprintf(text, sizeof(text), "head -c 47 %s/ticket.key > %s/short.key", certdir, certdir);
    ck_assert_int_eq(system(text), 0);
    snprintf(text, sizeof(text), P U "%ssession_ticket_key_file = %s/short.key\n", tls_min,
             certdir);
    ck_assert_ptr_null(load(text));
    ck_assert_msg(strstr(err, "t.ini:8: [tls] session_ticket_key_file: ") != NULL &&
                      strstr(err, "short.key: 47 bytes: expected 1 to 8 keys of 48 bytes") != NULL,
                  "%s", err);
    snprintf(text, sizeof(text), P U "%ssession_ticket_key_file =\n", tls_min);
    c = load(text);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_ptr_null(c->tls_ticket_key_file);
    cfg_free(c);
}
END_TEST

/* Every key of every section is in the dump, as "key = value" or as a comment that names it. */
START_TEST(test_dump_every_key)
{
    static struct dump_text dt;
    struct config *c = load(dump_cases[2]);
    struct cfg_key_doc k;
    char want[128];

    ck_assert_msg(c != NULL, "%s", err);
    dump(c, &dt);
    for (size_t i = 0; cfg_key_doc(i, &k) == 0; i++) {
        if (strcmp(k.section, "tls") == 0)
            continue; /* below, with a [tls] section */
        snprintf(want, sizeof(want), "\n%s = ", k.name);
        ck_assert_msg(strstr(dt.text, want) != NULL, "%s missing in\n%s", k.name, dt.text);
    }
    cfg_free(c);
    c = load(tls_full);
    ck_assert_msg(c != NULL, "%s", err);
    dump(c, &dt);
    for (size_t i = 0; cfg_key_doc(i, &k) == 0; i++) {
        if (strcmp(k.section, "tls") != 0)
            continue;
        snprintf(want, sizeof(want), "\n%s = ", k.name);
        ck_assert_msg(strstr(dt.text, want) != NULL, "%s missing in\n%s", k.name, dt.text);
    }
    ck_assert_ptr_nonnull(strstr(dt.text, "\nlisten = 127.0.0.1:8443 tls nodeferred\n"));
    ck_assert_ptr_nonnull(strstr(dt.text, "\nsession_timeout = 2h\n"));
    ck_assert_ptr_nonnull(strstr(dt.text, " key="));
    cfg_free(c);
    c = load(dump_cases[2]);
    ck_assert_msg(c != NULL, "%s", err);
    dump(c, &dt);
    ck_assert_ptr_nonnull(strstr(dt.text, "\n[proxy]\nlisten = 127.0.0.1:8080\nlisten = [::1]:0\n"
                                          "listen = 127.0.0.1:8081\nworkers = auto\n"
                                          "min_workers = 3\nmax_workers = 40\nmin_spare = 1\n"
                                          "max_spare = 5\nupstream = b\n"));
    ck_assert_ptr_nonnull(strstr(dt.text, "\nclient_header_timeout = 1500ms\n"
                                          "client_body_timeout = 120s\nsend_timeout = 86400s\n"));
    ck_assert_ptr_nonnull(strstr(dt.text, "\nclient_max_body_size = 0\nmax_header_size = 1025\n"));
    ck_assert_ptr_nonnull(strstr(dt.text, "\n[admin]\nlisten = [::1]:9090\n"));
    ck_assert_ptr_nonnull(strstr(dt.text, "\n[upstream b]\nserver = [::1]:3 weight=2 backup\n"
                                          "server = 127.0.0.1:4 weight=1\n"));
    ck_assert_ptr_nonnull(strstr(dt.text, "\npreserve_host = yes\nbalance = hash\n"
                                          "hash_key = header:X-User#1\n"));
    ck_assert_ptr_nonnull(strstr(dt.text, "\nhealth_check = off\nhealth_path = /a/b?c=d;e\n"));
    ck_assert_ptr_nonnull(strstr(dt.text, "\nhealth_status = 204-204\n"));
    cfg_free(c);

    /* what has no value: comments */
    c = load(P U);
    ck_assert_msg(c != NULL, "%s", err);
    dump(c, &dt);
    ck_assert_ptr_nonnull(strstr(dt.text, "\n; pid_file: not set\n; user: not set\n"));
    ck_assert_ptr_nonnull(strstr(dt.text, "\n; [admin]: none\n"));
    cfg_free(c);
    c = load(ref_ini);
    ck_assert_msg(c != NULL, "%s", err);
    dump(c, &dt);
    ck_assert_ptr_nonnull(
        strstr(dt.text, "\nworkers = 8\n; min_workers: only with workers = auto\n"));
    ck_assert_ptr_nonnull(strstr(dt.text, "\nclient_max_body_size = 1g\nmax_header_size = 16k\n"));
    cfg_free(c);
}
END_TEST

START_TEST(test_names)
{
    ck_assert_str_eq(cfg_balance_name(CFG_BAL_ROUND_ROBIN), "round_robin");
    ck_assert_str_eq(cfg_balance_name(CFG_BAL_LEAST_CONN), "least_conn");
    ck_assert_str_eq(cfg_balance_name(CFG_BAL_RANDOM), "random");
    ck_assert_str_eq(cfg_balance_name(CFG_BAL_HASH), "hash");
    ck_assert_str_eq(cfg_balance_name((enum cfg_balance)4), "invalid");
    ck_assert_str_eq(cfg_log_level_name(CFG_LOG_ERROR), "error");
    ck_assert_str_eq(cfg_log_level_name(CFG_LOG_DEBUG), "debug");
    ck_assert_str_eq(cfg_log_level_name((enum cfg_log_level) - 1), "invalid");
    ck_assert_str_eq(cfg_hash_key_name(CFG_HASH_CLIENT_IP), "client_ip");
    ck_assert_str_eq(cfg_hash_key_name(CFG_HASH_HEADER), "header");
}
END_TEST

/* ---- cfg_parse_addr -------------------------------------------------- */

static const struct {
    const char *in;
    const char *want; /* canonical text, or the reason when it fails */
    bool ok;
} addr_cases[] = {
    {"127.0.0.1:8080", "127.0.0.1:8080", true},
    {"127.0.0.1:0", "127.0.0.1:0", true},
    {"0.0.0.0:65535", "0.0.0.0:65535", true},
    {"127.0.0.1:080", "127.0.0.1:80", true},
    {"[::1]:80", "[::1]:80", true},
    {"[0:0:0:0:0:0:0:1]:80", "[::1]:80", true},
    {"[::]:443", "[::]:443", true},
    {"127.0.0.1", "missing port in \"127.0.0.1\"", false},
    {"127.0.0.1:", "missing port in \"127.0.0.1:\"", false},
    {"", "missing port in \"\"", false},
    {":80", "bad address \":80\": no host", false},
    {"127.0.0.1:30o1", "bad port \"30o1\"", false},
    {"127.0.0.1:65536", "bad port \"65536\"", false},
    {"127.0.0.1:-1", "bad port \"-1\"", false},
    {"127.0.0.1: 80", "bad port \" 80\"", false},
    {"127.0.0.1:99999999999999999999999", "bad port \"99999999999999999999999\"", false},
    {"::1:80", "bad address \"::1:80\": write IPv6 as [addr]:port", false},
    {"[::1]", "missing port in \"[::1]\"", false},
    {"[::1]80", "missing port in \"[::1]80\"", false},
    {"[::1:80", "bad address \"[::1:80\": missing ']'", false},
    {"[]:80", "bad address \"[]:80\": no host", false},
    {"[127.0.0.1]:80", "cannot resolve \"127.0.0.1\"", false},
    {"no-such-host.invalid:80", "cannot resolve \"no-such-host.invalid\"", false},
};

START_TEST(test_addr)
{
    struct cfg_addr a;
    char why[256] = "";
    int rc = cfg_parse_addr(addr_cases[_i].in, &a, why, sizeof(why));

    if (addr_cases[_i].ok) {
        ck_assert_msg(rc == 0, "%s: %s", addr_cases[_i].in, why);
        ck_assert_str_eq(a.text, addr_cases[_i].want);
        ck_assert_uint_eq(a.len, a.ss.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                           : sizeof(struct sockaddr_in6));
    } else {
        ck_assert_msg(rc == -1, "%s parsed", addr_cases[_i].in);
        ck_assert_msg(strncmp(why, addr_cases[_i].want, strlen(addr_cases[_i].want)) == 0,
                      "%s: got '%s', want '%s'", addr_cases[_i].in, why, addr_cases[_i].want);
    }
}
END_TEST

START_TEST(test_addr_name)
{
    struct cfg_addr a;
    char why[256] = "";

    ck_assert_msg(cfg_parse_addr("localhost:80", &a, why, sizeof(why)) == 0, "%s", why);
    ck_assert_msg(strcmp(a.text, "127.0.0.1:80") == 0 || strcmp(a.text, "[::1]:80") == 0, "%s",
                  a.text);
    ck_assert_uint_eq(port_of(&a), 80);
}
END_TEST

/* ---- buf ------------------------------------------------------------- */

static const struct {
    const char *s;
    size_t len;
    uint64_t max;
    int rc;
    uint64_t want;
} u64_cases[] = {
    {"0", 1, 10, 0, 0},
    {"10", 2, 10, 0, 10},
    {"11", 2, 10, -1, 0},
    {"123abc", 3, 1000, 0, 123}, /* only <len> bytes are looked at */
    {"", 0, 10, -1, 0},
    {"-1", 2, 10, -1, 0},
    {"+1", 2, 10, -1, 0},
    {" 1", 2, 10, -1, 0},
    {"1 ", 2, 10, -1, 0},
    {"1a", 2, 10, -1, 0},
    {"007", 3, 10, 0, 7},
    {"18446744073709551615", 20, UINT64_MAX, 0, UINT64_MAX},
    {"18446744073709551616", 20, UINT64_MAX, -1, 0},
    {"99999999999999999999", 20, UINT64_MAX, -1, 0},
    {"184467440737095516150", 21, UINT64_MAX, -1, 0},
    {"9223372036854775807", 19, INT64_MAX, 0, INT64_MAX},
    {"9223372036854775808", 19, INT64_MAX, -1, 0},
    {"5", 1, 0, -1, 0},
    {"0", 1, 0, 0, 0},
};

START_TEST(test_u64)
{
    uint64_t v = 424242;
    int rc = buf_parse_u64(u64_cases[_i].s, u64_cases[_i].len, u64_cases[_i].max, &v);

    ck_assert_msg(rc == u64_cases[_i].rc, "case %d (%s): rc %d", _i, u64_cases[_i].s, rc);
    if (rc == 0)
        ck_assert_uint_eq(v, u64_cases[_i].want);
    else
        ck_assert_uint_eq(v, 424242); /* untouched on failure */
}
END_TEST

static const struct {
    const char *s;
    int rc;
    int64_t ms;
} duration_cases[] = {
    {"100ms", 0, 100},
    {"5s", 0, 5000},
    {"2m", 0, 120000},
    {"7", 0, 7000},
    {"0", 0, 0},
    {"0ms", 0, 0},
    {"86400", 0, 86400000},
    {"86400000ms", 0, 86400000},
    {"1440m", 0, 86400000},
    {"86401", -1, 0},
    {"86400001ms", -1, 0},
    {"1441m", -1, 0},
    {"", -1, 0},
    {"ms", -1, 0},
    {"s", -1, 0},
    {"5h", 0, 5 * 3600 * 1000},
    {"24h", 0, 86400000},
    {"25h", -1, 0},
    {"5d", -1, 0},
    {"5H", -1, 0},
    {"5S", -1, 0},
    {"-1", -1, 0},
    {"5 s", -1, 0},
    {" 5s", -1, 0},
    {"5sec", -1, 0},
    {"1.5s", -1, 0},
    {"99999999999999999999999s", -1, 0},
    {"18446744073709551616ms", -1, 0},
};

START_TEST(test_duration)
{
    int64_t ms = -42;
    int rc = buf_parse_duration_ms(duration_cases[_i].s, &ms);

    ck_assert_msg(rc == duration_cases[_i].rc, "'%s': rc %d", duration_cases[_i].s, rc);
    ck_assert_int_eq(ms, rc == 0 ? duration_cases[_i].ms : -42);
}
END_TEST

static const struct {
    const char *s;
    int rc;
    uint64_t bytes;
} size_cases[] = {
    {"0", 0, 0},
    {"16", 0, 16},
    {"1k", 0, 1024},
    {"16K", 0, 16384},
    {"1m", 0, 1048576},
    {"1M", 0, 1048576},
    {"1g", 0, 1073741824},
    {"1G", 0, 1073741824},
    {"1024g", 0, 1ULL << 40},
    {"1048576m", 0, 1ULL << 40},
    {"1099511627776", 0, 1ULL << 40},
    {"1025g", -1, 0},
    {"1099511627777", -1, 0},
    {"17179869184g", -1, 0}, /* * 2^30 would wrap to 2^64 */
    {"", -1, 0},
    {"k", -1, 0},
    {"1kb", -1, 0},
    {"1t", -1, 0},
    {"1 k", -1, 0},
    {"-1", -1, 0},
    {"1.5k", -1, 0},
};

START_TEST(test_size)
{
    uint64_t v = 42;
    int rc = buf_parse_size(size_cases[_i].s, &v);

    ck_assert_msg(rc == size_cases[_i].rc, "'%s': rc %d", size_cases[_i].s, rc);
    ck_assert_uint_eq(v, rc == 0 ? size_cases[_i].bytes : 42);
}
END_TEST

START_TEST(test_ieq)
{
    ck_assert(buf_ieq("Content-Length", 14, "content-length"));
    ck_assert(buf_ieq("HOST: x", 4, "host"));
    ck_assert(buf_ieq("", 0, ""));
    ck_assert(!buf_ieq("Hos", 3, "host"));
    ck_assert(!buf_ieq("Hosts", 5, "host"));
    ck_assert(!buf_ieq("h\0st", 4, "host"));
    ck_assert(!buf_ieq("[", 1, "{")); /* no case folding outside A-Z */
    ck_assert(!buf_ieq("\xc9", 1, "\xe9"));
}
END_TEST

START_TEST(test_now)
{
    int64_t ms1 = clock_ms(), us1 = clock_us();
    int64_t ms2, us2;

    usleep(20000);
    ms2 = clock_ms();
    us2 = clock_us();
    ck_assert_int_ge(ms2 - ms1, 19);
    ck_assert_int_ge(us2 - us1, 19000);
    ck_assert_int_lt(ms2 - ms1, 5000);
    /* same clock: ms and us agree */
    ck_assert_int_le(us2 / 1000 - ms2, 1);
    ck_assert_int_ge(us2 / 1000 - ms2, 0);
}
END_TEST

static Suite *
config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    TCase *tb = tcase_create("buf");

    tcase_add_test(tc, test_reference);
    tcase_add_test(tc, test_defaults);
    tcase_add_loop_test(tc, test_pool, 0, (int)NELEM(pool_cases));
    tcase_add_test(tc, test_pool_reference);
    tcase_add_test(tc, test_upstream_reference);
    tcase_add_loop_test(tc, test_values, 0, (int)NELEM(value_cases));
    tcase_add_test(tc, test_upstream_lengths);
    tcase_add_test(tc, test_total_servers);
    tcase_add_test(tc, test_variants);
    tcase_add_test(tc, test_long_group_name);
    tcase_add_test(tc, test_process_keys);
    tcase_add_loop_test(tc, test_admin_ok, 0, (int)NELEM(admin_ok_cases));
    tcase_add_test(tc, test_bools);
    tcase_add_loop_test(tc, test_errors, 0, (int)NELEM(error_cases));
    tcase_add_test(tc, test_too_many_listeners);
    tcase_add_test(tc, test_long_line);
    tcase_add_test(tc, test_small_err);
    tcase_add_test(tc, test_file_ok);
    tcase_add_test(tc, test_file_errors);
    tcase_add_loop_test(tc, test_diff, 0, (int)NELEM(diff_cases));
    tcase_add_test(tc, test_diff_all_keys);
    tcase_add_loop_test(tc, test_inline_comments, 0, (int)NELEM(inline_cases));
    tcase_add_test(tc, test_inline_comment_errors);
    tcase_add_test(tc, test_row_defaults);
    tcase_add_loop_test(tc, test_dump_round_trip, 0, (int)NELEM(dump_cases));
    tcase_add_test(tc, test_dump_every_key);
    tcase_add_test(tc, test_tls_round_trip);
    tcase_add_loop_test(tc, test_tls_errors, 0, (int)NELEM(tls_error_cases));
    tcase_add_test(tc, test_tls_load_errors);
    tcase_add_test(tc, test_names);
    tcase_add_loop_test(tc, test_addr, 0, (int)NELEM(addr_cases));
    tcase_add_test(tc, test_addr_name);
    suite_add_tcase(s, tc);

    tcase_add_loop_test(tb, test_u64, 0, (int)NELEM(u64_cases));
    tcase_add_loop_test(tb, test_duration, 0, (int)NELEM(duration_cases));
    tcase_add_loop_test(tb, test_size, 0, (int)NELEM(size_cases));
    tcase_add_test(tb, test_ieq);
    tcase_add_test(tb, test_now);
    suite_add_tcase(s, tb);
    return s;
}

int
main(void)
{
    char cmd[256];
    int rc;

    if (tl_certs_make(certdir, sizeof(certdir), "unit_config") == -1)
        return 1;
    snprintf(tls_min, sizeof(tls_min), "[tls]\ncertificate = %s/combined.pem\n", certdir);
    snprintf(tls_full, sizeof(tls_full),
             "[proxy]\nlisten = 127.0.0.1:8080\nlisten = 127.0.0.1:8443 tls nodeferred\n"
             "upstream = app\nredirect_https = yes\n" U "[tls]\ncertificate = %s/ec.crt key=%s/ec.key\n"
             "certificate = %s/wild.crt key=%s/wild.key\nprotocols = TLSv1.3\n"
             "ciphers = ECDHE-ECDSA-AES256-GCM-SHA384\nciphersuites = TLS_AES_256_GCM_SHA384\n"
             "session_cache = 1m\nsession_timeout = 2h\nsession_tickets = off\n"
             "session_ticket_key_file = %s/ticket.key\nhandshake_timeout = 3s\nstrict_sni = yes\n"
             "hsts = 600\nclient_certificate = optional\nclient_ca = %s/ca.crt\n",
             certdir, certdir, certdir, certdir, certdir, certdir);
    snprintf(cmd, sizeof(cmd), "openssl rand 48 > %s/ticket.key", certdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "unit_config: %s failed\n", cmd);
        rc = 1;
    } else {
        rc = tl_run(config_suite());
    }
    tl_certs_remove(certdir);
    return rc;
}
