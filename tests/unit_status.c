/*
 * Unit tests for src/status.c (Check): the path table, and each of the three
 * renders over a real config (cfg_load_string()) and a real shared table
 * (shm_create()) with known counters. The JSON goes through a strict
 * RFC 8259 checker and the exposition through a line-by-line checker of
 * format 0.0.4, both written here and themselves tested on bad inputs so
 * that a pass means something. Every cap below the exact length must fail
 * without writing past it; the size hint must hold at the worst case.
 */
#include "clock.h"
#include "config.h"
#include "shm.h"
#include "status.h"
#include "testlib.h"

#include <check.h>
#include <math.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- fixture ---------------------------------------------------------------------------- */

static const char base_ini[] = "[proxy]\n"
                               "listen = 127.0.0.1:0\n"
                               "workers = 3\n"
                               "upstream = app\n"
                               "[upstream app]\n"
                               "health_check = off\n"
                               "server = 127.0.0.1:3001 weight=3\n"
                               "server = 127.0.0.1:3002 backup\n"
                               "[upstream api]\n"
                               "balance = least_conn\n"
                               "server = 10.0.0.1:8000\n";

static struct config *cfg;
static struct shm *shm;
static char *out; /* a render buffer of status_size_hint() bytes */
static size_t out_cap;
static int64_t t_started;

static int64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
load(const char *text)
{
    char err[512] = "";

    cfg = cfg_load_string(text, "t.ini", err, sizeof(err));
    ck_assert_msg(cfg != NULL, "config: %s", err);
    shm = shm_create(cfg, 7);
    ck_assert_msg(shm != NULL, "shm_create: %s", strerror(errno));
    out_cap = status_size_hint(cfg);
    out = malloc(out_cap);
    ck_assert(out != NULL);
}

/*
 * Known values: app/127.0.0.1:3001 has traffic and an open breaker,
 * api/10.0.0.1:8000 is down with an error, three workers in three states.
 */
static void
setup(void)
{
    load(base_ini);
    t_started = (int64_t)time(NULL) - 100;
    shm->started = t_started;

    struct shm_server *a = shm_srv(shm, 0, 0);
    atomic_store(&a->requests, 1234);
    atomic_store(&a->failures, 5);
    const uint64_t resp[5] = {1, 1000, 20, 30, 4}; /* 1055 answers */
    for (size_t i = 0; i < 5; i++)
        atomic_store(&a->responses[i], resp[i]);
    atomic_store(&a->latency_us_sum, 1055 * 250); /* 250 us on average */
    atomic_store(&a->active, 2);
    atomic_store(&a->breaker, SHM_BREAKER_OPEN);
    atomic_store(&a->breaker_opens, 3);

    struct shm_server *d = shm_srv(shm, 1, 0);
    atomic_store(&d->health, SHM_HEALTH_DOWN);
    atomic_store(&d->checks, 17);
    atomic_store(&d->checks_failed, 4);
    atomic_store(&d->last_check_ms, mono_ms() - 1500);
    atomic_store(&d->last_latency_us, 1000000);
    atomic_store(&d->down_since_ms, mono_ms() - 65000);
    shm_set_error(d, "connect to 10.0.0.1:8000: Connection refused");

    const int states[3] = {SHM_W_IDLE, SHM_W_PROXY, SHM_W_KEEPALIVE};
    for (int i = 0; i < 3; i++) {
        atomic_store(&shm->workers[i].pid, 100 + i);
        atomic_store(&shm->workers[i].state, states[i]);
        atomic_store(&shm->workers[i].requests, (uint64_t)(10 * (i + 1)));
        atomic_store(&shm->workers[i].connections, (uint64_t)(i + 1));
    }
}

static void
teardown(void)
{
    free(out);
    out = NULL;
    shm_destroy(shm);
    shm = NULL;
    cfg_free(cfg);
    cfg = NULL;
}

/* Renders <kind> into out; the result is NUL-terminated for strstr(). */
static size_t
render(enum status_kind kind)
{
    ssize_t n = status_render(kind, cfg, shm, out, out_cap);

    ck_assert_msg(n > 0, "render %d failed (hint %zu)", (int)kind, out_cap);
    ck_assert_msg((size_t)n < out_cap, "no room for a NUL");
    out[n] = '\0';
    return (size_t)n;
}

#define ck_assert_has(hay, needle)                                                                \
    ck_assert_msg(strstr((hay), (needle)) != NULL, "missing: %s", (needle))
#define ck_assert_lacks(hay, needle)                                                              \
    ck_assert_msg(strstr((hay), (needle)) == NULL, "unexpected: %s", (needle))

/* Occurrences of <needle> in <hay>. */
static int
count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* ---- a strict JSON checker (RFC 8259) --------------------------------------------------- */

struct jp {
    const char *s;
    size_t len, pos;
    int depth;
};

static int j_value(struct jp *p);

static void
j_ws(struct jp *p)
{
    while (p->pos < p->len && strchr(" \t\r\n", p->s[p->pos]) != NULL && p->s[p->pos] != '\0')
        p->pos++;
}

static int
j_lit(struct jp *p, const char *lit)
{
    size_t n = strlen(lit);

    if (p->len - p->pos < n || memcmp(p->s + p->pos, lit, n) != 0)
        return -1;
    p->pos += n;
    return 0;
}

static int
j_digits(struct jp *p)
{
    size_t start = p->pos;

    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
        p->pos++;
    return p->pos > start ? 0 : -1;
}

static int
j_number(struct jp *p)
{
    if (p->s[p->pos] == '-')
        p->pos++;
    if (p->pos < p->len && p->s[p->pos] == '0')
        p->pos++; /* no leading zeros */
    else if (j_digits(p) == -1)
        return -1;
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        if (j_digits(p) == -1)
            return -1;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        if (j_digits(p) == -1)
            return -1;
    }
    return 0;
}

/* A string, with valid escapes, no raw control characters and valid UTF-8. */
static int
j_string(struct jp *p)
{
    if (p->s[p->pos] != '"')
        return -1;
    p->pos++;
    while (p->pos < p->len) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            if (++p->pos >= p->len)
                return -1;
            char e = p->s[p->pos++];
            if (e == 'u') {
                for (int i = 0; i < 4; i++, p->pos++)
                    if (p->pos >= p->len ||
                        strchr("0123456789abcdefABCDEF", p->s[p->pos]) == NULL ||
                        p->s[p->pos] == '\0')
                        return -1;
            } else if (strchr("\"\\/bfnrt", e) == NULL || e == '\0') {
                return -1;
            }
            continue;
        }
        if (c < 0x80) {
            p->pos++;
            continue;
        }
        /* UTF-8: lead byte, then continuation bytes (overlongs and surrogates rejected) */
        size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
        if (n == 0 || c > 0xf4 || p->len - p->pos < n)
            return -1;
        const unsigned char *u = (const unsigned char *)p->s + p->pos;
        for (size_t i = 1; i < n; i++)
            if ((u[i] & 0xc0) != 0x80)
                return -1;
        if ((c == 0xe0 && u[1] < 0xa0) || (c == 0xed && u[1] >= 0xa0) ||
            (c == 0xf0 && u[1] < 0x90) || (c == 0xf4 && u[1] >= 0x90))
            return -1;
        p->pos += n;
    }
    return -1;
}

static int
j_container(struct jp *p, char open, char close)
{
    if (++p->depth > 32)
        return -1;
    p->pos++; /* open */
    (void)open;
    j_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        p->depth--;
        return 0;
    }
    for (;;) {
        if (close == '}') {
            j_ws(p);
            if (p->pos >= p->len || j_string(p) == -1)
                return -1;
            j_ws(p);
            if (p->pos >= p->len || p->s[p->pos++] != ':')
                return -1;
        }
        if (j_value(p) == -1)
            return -1;
        j_ws(p);
        if (p->pos >= p->len)
            return -1;
        char c = p->s[p->pos++];
        if (c == close)
            break;
        if (c != ',')
            return -1;
    }
    p->depth--;
    return 0;
}

static int
j_value(struct jp *p)
{
    j_ws(p);
    if (p->pos >= p->len)
        return -1;
    switch (p->s[p->pos]) {
    case '{':
        return j_container(p, '{', '}');
    case '[':
        return j_container(p, '[', ']');
    case '"':
        return j_string(p);
    case 't':
        return j_lit(p, "true");
    case 'f':
        return j_lit(p, "false");
    case 'n':
        return j_lit(p, "null");
    default:
        if (p->s[p->pos] == '-' || (p->s[p->pos] >= '0' && p->s[p->pos] <= '9'))
            return j_number(p);
        return -1;
    }
}

/* 0 when <s>[0..<len>) is exactly one JSON value (whitespace around it allowed). */
static int
json_valid(const char *s, size_t len)
{
    struct jp p = {.s = s, .len = len, .pos = 0, .depth = 0};

    if (j_value(&p) == -1)
        return -1;
    j_ws(&p);
    return p.pos == len ? 0 : -1;
}

START_TEST(test_json_checker)
{
    static const char *const good[] = {
        "{}",
        "[]",
        "0",
        "-1.5e+3",
        "\"a\\u00e9\\n\"",
        "{\"a\":[1,true,null,{\"b\":\"\xc3\xa9\"}]}",
        " {\"a\" : 1 }\n",
    };
    static const char *const bad[] = {
        "",          "{",        "{\"a\":1,}", "[1,]",
        "01",        "1.",       "-",          "\"abc",
        "\"a\x01\"", "\"\\x\"",  "\"\\u12\"",  "{a:1}",
        "[1] 2",     "\"\xff\"", "\"\xc3\"",   "\"\xed\xa0\x80\"",
        "tru",       "{\"a\"1}", "NaN",
    };

    for (size_t i = 0; i < NELEM(good); i++)
        ck_assert_msg(json_valid(good[i], strlen(good[i])) == 0, "rejected %s", good[i]);
    for (size_t i = 0; i < NELEM(bad); i++)
        ck_assert_msg(json_valid(bad[i], strlen(bad[i])) == -1, "accepted %s", bad[i]);
}
END_TEST

/* ---- a checker of the Prometheus text format 0.0.4 -------------------------------------- */

#define PM_MAX 512

struct pm {
    char fam[PM_MAX][128]; /* families seen (HELP or TYPE or samples) */
    char type[PM_MAX][16];
    bool help[PM_MAX];
    bool closed[PM_MAX]; /* another family's sample came after its samples */
    size_t nfam;
    int last; /* family of the previous sample, -1: none */
    char series[4 * PM_MAX][400];
    size_t series_len[4 * PM_MAX];
    size_t nseries;
    /* histograms: one entry per family and label set (le left out) */
    struct pm_hist {
        char key[400];
        double last_le, inf_count, count;
        bool any_bucket, seen_inf, has_sum, has_count;
        double last_bucket;
    } hist[PM_MAX];
    size_t nhist;
    char why[256];
};

static bool
pm_name_ok(const char *s, size_t n, bool colon)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

static int
pm_find(struct pm *m, const char *name, size_t n, bool add)
{
    for (size_t i = 0; i < m->nfam; i++)
        if (strlen(m->fam[i]) == n && memcmp(m->fam[i], name, n) == 0)
            return (int)i;
    if (!add || m->nfam == PM_MAX || n >= sizeof(m->fam[0]))
        return -1;
    memcpy(m->fam[m->nfam], name, n);
    m->fam[m->nfam][n] = '\0';
    m->type[m->nfam][0] = '\0';
    m->help[m->nfam] = false;
    m->closed[m->nfam] = false;
    return (int)m->nfam++;
}

static bool
pm_value_ok(const char *s, size_t n)
{
    char tmp[64], *end;

    if (n == 0 || n >= sizeof(tmp))
        return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (strcmp(tmp, "NaN") == 0 || strcmp(tmp, "+Inf") == 0 || strcmp(tmp, "-Inf") == 0)
        return true;
    errno = 0;
    strtod(tmp, &end);
    return *end == '\0' && strchr(tmp, 'x') == NULL && strchr(tmp, 'X') == NULL &&
           strspn(tmp, "0123456789+-.eE") == n;
}

/* A "# HELP" or "# TYPE" line, or a plain comment. */
static int
pm_comment(struct pm *m, const char *l, size_t n)
{
    bool help = n > 7 && memcmp(l, "# HELP ", 7) == 0;
    bool type = n > 7 && memcmp(l, "# TYPE ", 7) == 0;

    if (!help && !type)
        return 0;
    const char *name = l + 7;
    size_t nlen = strcspn(name, " \n");
    if (nlen > n - 7)
        nlen = n - 7;
    if (!pm_name_ok(name, nlen, true)) {
        snprintf(m->why, sizeof(m->why), "bad name in: %.*s", (int)n, l);
        return -1;
    }
    int f = pm_find(m, name, nlen, true);
    if (f == -1 || m->closed[f] || m->last == f) {
        snprintf(m->why, sizeof(m->why), "HELP/TYPE after samples: %.*s", (int)n, l);
        return -1;
    }
    if (help) {
        if (m->help[f]) {
            snprintf(m->why, sizeof(m->why), "second HELP: %.*s", (int)n, l);
            return -1;
        }
        m->help[f] = true;
        return 0;
    }
    if (m->type[f][0] != '\0') {
        snprintf(m->why, sizeof(m->why), "second TYPE: %.*s", (int)n, l);
        return -1;
    }
    const char *t = name + nlen;
    size_t tlen = n - 7 - nlen;
    static const char *const types[] = {" counter", " gauge", " summary", " histogram",
                                        " untyped"};
    for (size_t i = 0; i < NELEM(types); i++)
        if (tlen == strlen(types[i]) && memcmp(t, types[i], tlen) == 0) {
            snprintf(m->type[f], sizeof(m->type[f]), "%s", types[i] + 1);
            if (i == 0 && (nlen < 6 || memcmp(name + nlen - 6, "_total", 6) != 0)) {
                snprintf(m->why, sizeof(m->why), "counter without _total: %.*s", (int)n, l);
                return -1;
            }
            return 0;
        }
    snprintf(m->why, sizeof(m->why), "bad type: %.*s", (int)n, l);
    return -1;
}

/* The family a sample named <name> belongs to: itself, or a summary/histogram's base. */
static int
pm_family_of(struct pm *m, const char *name, size_t n)
{
    int f = pm_find(m, name, n, false);
    if (f != -1 && m->type[f][0] != '\0')
        return f;
    static const char *const suffixes[] = {"_sum", "_count", "_bucket"};
    for (size_t i = 0; i < NELEM(suffixes); i++) {
        size_t sl = strlen(suffixes[i]);
        if (n > sl && memcmp(name + n - sl, suffixes[i], sl) == 0) {
            int b = pm_find(m, name, n - sl, false);
            if (b != -1 &&
                (strcmp(m->type[b], "summary") == 0 || (strcmp(m->type[b], "histogram") == 0)))
                return b;
        }
    }
    return -1;
}

/*
 * The histogram rules for sample <l>[0..<n>) of histogram family <f>, its
 * name <i> bytes long, its value at <v>: only _bucket, _sum and _count;
 * every bucket has le, the le of a label set increase, their counts do not
 * decrease, the last is +Inf, and _count equals it.
 */
static int
pm_histogram(struct pm *m, int f, const char *l, size_t n, size_t i, const char *v)
{
    size_t base = strlen(m->fam[f]);
    const char *suffix = l + base;
    size_t sl = i - base;
    bool bucket = sl == 7 && memcmp(suffix, "_bucket", 7) == 0;
    bool sum = sl == 4 && memcmp(suffix, "_sum", 4) == 0;
    bool count = sl == 6 && memcmp(suffix, "_count", 6) == 0;
    char key[400], le[64] = "";
    size_t k = 0;

    if (!bucket && !sum && !count) {
        snprintf(m->why, sizeof(m->why), "histogram sample not _bucket/_sum/_count: %.*s", (int)n,
                 l);
        return -1;
    }
    /* the key: the family and its labels other than le, as written */
    k = (size_t)snprintf(key, sizeof(key), "%s{", m->fam[f]);
    if (i < n && l[i] == '{') {
        const char *p = l + i + 1, *end = memchr(l, '}', n);
        while (p < end) {
            const char *eq = memchr(p, '=', (size_t)(end - p));
            const char *q = eq + 2; /* past =" */
            while (*q != '"')
                q += *q == '\\' ? 2 : 1;
            if (eq - p == 2 && memcmp(p, "le", 2) == 0)
                snprintf(le, sizeof(le), "%.*s", (int)(q - eq - 2), eq + 2);
            else if (k + (size_t)(q + 1 - p) + 2 < sizeof(key))
                k += (size_t)snprintf(key + k, sizeof(key) - k, "%.*s,", (int)(q + 1 - p), p);
            p = q + 1;
            if (p < end && *p == ',')
                p++;
        }
    }
    key[k] = '\0';
    struct pm_hist *h = NULL;
    for (size_t j = 0; j < m->nhist && h == NULL; j++)
        if (strcmp(m->hist[j].key, key) == 0)
            h = &m->hist[j];
    if (h == NULL) {
        if (m->nhist == PM_MAX) {
            snprintf(m->why, sizeof(m->why), "too many histograms");
            return -1;
        }
        h = &m->hist[m->nhist++];
        memset(h, 0, sizeof(*h));
        snprintf(h->key, sizeof(h->key), "%s", key);
    }
    double val = strtod(v, NULL);
    if (sum) {
        h->has_sum = true;
        return 0;
    }
    if (count) {
        h->has_count = true;
        h->count = val;
        return 0;
    }
    if (le[0] == '\0' || !pm_value_ok(le, strlen(le))) {
        snprintf(m->why, sizeof(m->why), "bucket without a valid le: %.*s", (int)n, l);
        return -1;
    }
    double bound = strcmp(le, "+Inf") == 0 ? INFINITY : strtod(le, NULL);
    if (h->seen_inf || (h->any_bucket && bound <= h->last_le)) {
        snprintf(m->why, sizeof(m->why), "le not increasing: %.*s", (int)n, l);
        return -1;
    }
    if (h->any_bucket && val < h->last_bucket) {
        snprintf(m->why, sizeof(m->why), "buckets not cumulative: %.*s", (int)n, l);
        return -1;
    }
    h->any_bucket = true;
    h->last_le = bound;
    h->last_bucket = val;
    if (isinf(bound)) {
        h->seen_inf = true;
        h->inf_count = val;
    }
    return 0;
}

static int
pm_sample(struct pm *m, const char *l, size_t n)
{
    size_t i = strcspn(l, "{ ");
    if (i > n)
        i = n;
    if (!pm_name_ok(l, i, true)) {
        snprintf(m->why, sizeof(m->why), "bad metric name: %.*s", (int)n, l);
        return -1;
    }
    int f = pm_family_of(m, l, i);
    if (f == -1 || !m->help[f]) {
        snprintf(m->why, sizeof(m->why), "sample without HELP and TYPE first: %.*s", (int)n, l);
        return -1;
    }
    if (m->closed[f]) {
        snprintf(m->why, sizeof(m->why), "family not contiguous: %.*s", (int)n, l);
        return -1;
    }
    if (m->last != -1 && m->last != f)
        m->closed[m->last] = true;
    m->last = f;

    if (i < n && l[i] == '{') {
        i++;
        for (;;) {
            size_t ln = strcspn(l + i, "=");
            if (i + ln >= n || !pm_name_ok(l + i, ln, false)) {
                snprintf(m->why, sizeof(m->why), "bad label name: %.*s", (int)n, l);
                return -1;
            }
            i += ln + 1;
            if (i >= n || l[i] != '"') {
                snprintf(m->why, sizeof(m->why), "label value not quoted: %.*s", (int)n, l);
                return -1;
            }
            i++;
            while (i < n && l[i] != '"') {
                if (l[i] == '\\') {
                    if (i + 1 >= n || strchr("\\\"n", l[i + 1]) == NULL || l[i + 1] == '\0') {
                        snprintf(m->why, sizeof(m->why), "bad escape: %.*s", (int)n, l);
                        return -1;
                    }
                    i++;
                }
                i++;
            }
            if (i >= n) {
                snprintf(m->why, sizeof(m->why), "unterminated label: %.*s", (int)n, l);
                return -1;
            }
            i++; /* closing quote */
            if (i < n && l[i] == ',') {
                i++;
                if (i < n && l[i] == '}')
                    break; /* a trailing comma is allowed */
                continue;
            }
            if (i < n && l[i] == '}')
                break;
            snprintf(m->why, sizeof(m->why), "bad label list: %.*s", (int)n, l);
            return -1;
        }
        i++; /* '}' */
    }
    size_t key = i;
    if (i >= n || l[i] != ' ') {
        snprintf(m->why, sizeof(m->why), "no space before the value: %.*s", (int)n, l);
        return -1;
    }
    i++;
    size_t vlen = strcspn(l + i, " \n");
    if (i + vlen > n)
        vlen = n - i;
    if (!pm_value_ok(l + i, vlen)) {
        snprintf(m->why, sizeof(m->why), "bad value: %.*s", (int)n, l);
        return -1;
    }
    if (strcmp(m->type[f], "histogram") == 0 &&
        pm_histogram(m, f, l, n, strcspn(l, "{ "), l + i) == -1)
        return -1;
    i += vlen;
    if (i < n) { /* a timestamp: an integer */
        if (l[i] != ' ' || strspn(l + i + 1, "-0123456789") != n - i - 1 || n - i - 1 == 0) {
            snprintf(m->why, sizeof(m->why), "junk after the value: %.*s", (int)n, l);
            return -1;
        }
    }
    /* no series twice */
    for (size_t s = 0; s < m->nseries; s++)
        if (m->series_len[s] == key && memcmp(m->series[s], l, key) == 0) {
            snprintf(m->why, sizeof(m->why), "duplicate series: %.*s", (int)n, l);
            return -1;
        }
    if (m->nseries < NELEM(m->series) && key < sizeof(m->series[0])) {
        memcpy(m->series[m->nseries], l, key);
        m->series[m->nseries][key] = '\0';
        m->series_len[m->nseries++] = key;
    }
    return 0;
}

/* 0 when <s> is a valid exposition; otherwise -1 with the reason in <why>. */
static int
prom_valid(const char *s, size_t len, char *why, size_t whylen)
{
    static struct pm m; /* large: not on the stack */

    memset(&m, 0, sizeof(m));
    m.last = -1;
    if (len == 0 || s[len - 1] != '\n') {
        snprintf(why, whylen, "does not end with a newline");
        return -1;
    }
    for (size_t pos = 0; pos < len;) {
        const char *l = s + pos;
        const char *nl = memchr(l, '\n', len - pos);
        size_t n = (size_t)(nl - l);
        int rc = 0;

        if (memchr(l, '\0', n) != NULL) {
            snprintf(m.why, sizeof(m.why), "NUL in a line");
            rc = -1;
        } else if (n == 0) {
            rc = 0; /* empty lines are ignored */
        } else if (l[0] == '#') {
            rc = pm_comment(&m, l, n);
        } else {
            rc = pm_sample(&m, l, n);
        }
        if (rc == -1) {
            snprintf(why, whylen, "%s", m.why);
            return -1;
        }
        pos += n + 1;
    }
    for (size_t f = 0; f < m.nfam; f++)
        if (m.type[f][0] == '\0' || !m.help[f]) {
            snprintf(why, whylen, "family %s lacks HELP or TYPE", m.fam[f]);
            return -1;
        }
    for (size_t j = 0; j < m.nhist; j++) {
        const struct pm_hist *h = &m.hist[j];
        if (!h->seen_inf || !h->has_sum || !h->has_count || h->count != h->inf_count) {
            snprintf(why, whylen,
                     "histogram %s: needs a +Inf bucket, _sum, and _count equal to it", h->key);
            return -1;
        }
    }
    return 0;
}

START_TEST(test_prom_checker)
{
#define HT(n, t) "# HELP " n " h\n# TYPE " n " " t "\n"
    static const char *const good[] = {
        HT("a_total", "counter") "a_total 1\n",
        HT("g", "gauge") "g{x=\"1\",y=\"a\\\"b\\\\c\\nd\"} -2.5e3\ng{x=\"2\"} NaN\n",
        HT("s", "summary") "s_sum{x=\"a\"} 0.5\ns_count{x=\"a\"} 3\n",
        "# just a comment\n" HT("g", "gauge") "g 1 1700000000000\n",
        HT("h",
           "histogram") "h_bucket{a=\"x\",le=\"0.1\"} 1\nh_bucket{a=\"x\",le=\"1\"} 3\n"
                        "h_bucket{a=\"x\",le=\"+Inf\"} 3\nh_sum{a=\"x\"} 1.5\nh_count{a=\"x\"} 3\n"
                        "h_bucket{a=\"y\",le=\"+Inf\"} 0\nh_sum{a=\"y\"} 0\nh_count{a=\"y\"} 0\n",
    };
    static const char *const bad[] = {
        "a_total 1\n",                                                /* no HELP/TYPE */
        HT("a", "counter") "a 1\n",                                   /* counter without _total */
        HT("g", "gauge") "# TYPE g gauge\ng 1\n",                     /* TYPE twice */
        HT("g", "gauge") "g 1\n# HELP g again\n",                     /* HELP after samples */
        HT("g", "gauge") "g 1",                                       /* no final newline */
        HT("g", "gauge") "g 0x10\n",                                  /* hex value */
        HT("g", "gauge") "g one\n",                                   /* not a number */
        HT("g", "gauge") "g{x=\"a\"b\"} 1\n",                         /* unescaped quote */
        HT("g", "gauge") "g{x=\"a\\tb\"} 1\n",                        /* unknown escape */
        HT("g", "gauge") "g{1x=\"a\"} 1\n",                           /* bad label name */
        HT("g", "gauge") "g{x=a} 1\n",                                /* unquoted label value */
        HT("g", "gauge") "g 1\ng 2\n",                                /* the same series twice */
        HT("g", "gauge") HT("h", "gauge") "g 1\nh 1\ng{a=\"b\"} 1\n", /* not contiguous */
        HT("g", "gauge") "g  1\n",                                    /* two spaces */
        "# HELP 9g x\n# TYPE 9g gauge\n9g 1\n",                       /* bad metric name */
        HT("g", "gauge") "g{x=\"1\"}1\n",                             /* no space */
        HT("g", "gauges") "g 1\n",                                    /* bad type */
        "# HELP g h\ng 1\n",                                          /* TYPE missing */
        /* histograms */
        HT("h", "histogram") "h 1\n",                            /* a bare sample */
        HT("h", "histogram") "h_bucket 1\nh_sum 1\nh_count 1\n", /* a bucket without le */
        HT("h", "histogram") "h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\n"
                             "h_count 1\n", /* not cumulative */
        HT("h", "histogram") "h_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n"
                             "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", /* le decreasing */
        HT("h", "histogram") "h_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",    /* no +Inf */
        HT("h", "histogram") "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n", /* count != +Inf */
        HT("h", "histogram") "h_bucket{le=\"+Inf\"} 2\nh_count 2\n",          /* no _sum */
        HT("h", "histogram") "h_bucket{le=\"one\"} 2\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\n"
                             "h_count 2\n", /* le not a number */
    };
#undef HT
    char why[256];

    for (size_t i = 0; i < NELEM(good); i++)
        ck_assert_msg(prom_valid(good[i], strlen(good[i]), why, sizeof(why)) == 0,
                      "rejected %s: %s", good[i], why);
    for (size_t i = 0; i < NELEM(bad); i++)
        ck_assert_msg(prom_valid(bad[i], strlen(bad[i]), why, sizeof(why)) == -1, "accepted %s",
                      bad[i]);
}
END_TEST

/* ---- the path table --------------------------------------------------------------------- */

START_TEST(test_kind_for)
{
    static const struct {
        const char *path;
        size_t len; /* 0: strlen */
        int want;
    } cases[] = {
        {"/status", 0, STATUS_HTML},
        {"/status.json", 0, STATUS_JSON},
        {"/metrics", 0, STATUS_METRICS},
        {"/status?refresh=1", 0, STATUS_HTML},
        {"/status.json?pretty", 0, STATUS_JSON},
        {"/metrics?", 0, STATUS_METRICS},
        {"/metrics?a?b", 0, STATUS_METRICS},
        {"/statusXYZ", 7, STATUS_HTML}, /* the length is honoured, not a NUL */
        {"/status.json", 7, STATUS_HTML},
        {"/status", 6, -1},
        {"/status/", 0, -1},
        {"/Status", 0, -1},
        {"/status.jso", 0, -1},
        {"/status.json/", 0, -1},
        {"/metricsx", 0, -1},
        {"/metrics/", 0, -1},
        {"status", 0, -1},
        {"/", 0, -1},
        {"", 0, -1},
        {"?/status", 0, -1},
        {"/status#x", 0, -1},
        {"//status", 0, -1},
        {"/status%2ejson", 0, -1},
    };

    for (size_t i = 0; i < NELEM(cases); i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].path);
        ck_assert_msg(status_kind_for(cases[i].path, len) == cases[i].want, "%s (%zu): %d",
                      cases[i].path, len, status_kind_for(cases[i].path, len));
    }
}
END_TEST

START_TEST(test_content_type)
{
    ck_assert_str_eq(status_content_type(STATUS_HTML), "text/html; charset=utf-8");
    ck_assert_str_eq(status_content_type(STATUS_JSON), "application/json");
    ck_assert_str_eq(status_content_type(STATUS_METRICS),
                     "text/plain; version=0.0.4; charset=utf-8");
}
END_TEST

/* ---- JSON ------------------------------------------------------------------------------- */

/* The number after <key> (e.g. "\"uptime_seconds\":") in <s>. */
static long long
json_num_after(const char *s, const char *key)
{
    const char *p = strstr(s, key);

    ck_assert_msg(p != NULL, "missing %s", key);
    return strtoll(p + strlen(key), NULL, 10);
}

START_TEST(test_json_values)
{
    size_t n = render(STATUS_JSON);

    ck_assert_msg(json_valid(out, n) == 0, "invalid JSON:\n%s", out);
    ck_assert_has(out, "{\"version\":\"" MP_VERSION "\"");
    ck_assert_has(out, "\"generation\":7,");
    long long up = json_num_after(out, "\"uptime_seconds\":");
    ck_assert_msg(up >= 100 && up <= 105, "uptime %lld", up);
    ck_assert_has(out, "\"worker_states\":{\"free\":0,\"idle\":1,\"reading\":0,\"proxying\":1,"
                       "\"keep-alive\":1,\"tunnel\":0}");
    ck_assert_has(out, "\"workers\":[{\"slot\":0,\"pid\":100,\"state\":\"idle\",\"requests\":10,"
                       "\"connections\":1},{\"slot\":1,\"pid\":101,\"state\":\"proxying\","
                       "\"requests\":20,\"connections\":2},{\"slot\":2,\"pid\":102,"
                       "\"state\":\"keep-alive\",\"requests\":30,\"connections\":3}]");
    /* app: 3001's breaker is open, 3002 (a backup) takes the traffic; api: its one server is down
     */
    ck_assert_has(out, "{\"name\":\"app\",\"balance\":\"round_robin\",\"health_check\":false,"
                       "\"usable\":true,\"usable_servers\":1,\"servers\":[{\"address\":\"127.0.0."
                       "1:3001\",\"weight\":3,"
                       "\"backup\":false,\"health\":\"up\",\"last_error\":\"\",\"checks\":0,");
    ck_assert_has(out, "\"last_check_ms_ago\":null,\"probe_latency_us\":0,\"breaker\":\"open\","
                       "\"breaker_opens\":3,\"active\":2,\"requests\":1234,\"failures\":5,"
                       "\"responses\":{\"1xx\":1,\"2xx\":1000,\"3xx\":20,\"4xx\":30,\"5xx\":4},"
                       "\"latency_us_sum\":263750,\"avg_latency_us\":250,\"down_for_ms\":null,"
                       "\"breaker_cooldown_left_ms\":0}");
    ck_assert_has(out, "{\"address\":\"127.0.0.1:3002\",\"weight\":1,\"backup\":true,"
                       "\"health\":\"up\"");
    /* no answers yet: the average is 0, not a division by zero */
    ck_assert_has(out, "\"responses\":{\"1xx\":0,\"2xx\":0,\"3xx\":0,\"4xx\":0,\"5xx\":0},"
                       "\"latency_us_sum\":0,\"avg_latency_us\":0,\"down_for_ms\":null,"
                       "\"breaker_cooldown_left_ms\":null}");
    ck_assert_has(out, "{\"name\":\"api\",\"balance\":\"least_conn\",\"health_check\":true,"
                       "\"usable\":false,\"usable_servers\":0,\"servers\":[{\"address\":\"10.0.0."
                       "1:8000\",\"weight\":1,"
                       "\"backup\":false,\"health\":\"down\",\"last_error\":\"connect to "
                       "10.0.0.1:8000: Connection refused\",\"checks\":17,\"checks_ok\":0,"
                       "\"checks_failed\":4,\"last_check_ms_ago\":");
    long long ago = json_num_after(out, "\"checks_failed\":4,\"last_check_ms_ago\":");
    ck_assert_msg(ago >= 1500 && ago < 5000, "last check %lld ms ago", ago);
    ck_assert_has(out, "\"probe_latency_us\":1000000,\"breaker\":\"closed\"");
    ck_assert_int_eq(out[n - 1], '\n');
}
END_TEST

START_TEST(test_json_escapes)
{
    /* quotes, backslash, control characters, valid UTF-8, a stray byte, a cut sequence */
    shm_set_error(shm_srv(shm, 1, 0), "a\"b\\c\x01\td\ne\x7f \xc3\xa9 \xff \xe2\x82");
    size_t n = render(STATUS_JSON);

    ck_assert_msg(json_valid(out, n) == 0, "invalid JSON:\n%s", out);
    ck_assert_has(out, "\"last_error\":\"a\\\"b\\\\c\\u0001\\u0009d\\u000ae\\u007f \xc3\xa9 "
                       "\\ufffd \\ufffd\\ufffd\"");
}
END_TEST

START_TEST(test_json_uptime_unset)
{
    shm->started = 0; /* an old master that does not set it */
    render(STATUS_JSON);
    ck_assert_has(out, "\"started\":0,\"uptime_seconds\":0,");
}
END_TEST

/* ---- HTML ------------------------------------------------------------------------------- */

START_TEST(test_html_page)
{
    render(STATUS_HTML);

    ck_assert(strncmp(out, "<!DOCTYPE html>", 15) == 0);
    ck_assert_has(out, "<meta http-equiv=\"refresh\" content=\"2\">");
    ck_assert_has(out, "<meta charset=\"utf-8\">");
    ck_assert_has(out, "<style>");
    ck_assert_has(out, "</html>\n");
    /* self-contained: nothing to fetch, nothing to run */
    ck_assert_lacks(out, "<script");
    ck_assert_lacks(out, "<link");
    ck_assert_lacks(out, " src=");
    ck_assert_lacks(out, "http://");
    ck_assert_lacks(out, "https://");
    ck_assert_lacks(out, "url(");
    ck_assert_lacks(out, "@import");
    /* the header */
    ck_assert_has(out, MP_VERSION);
    ck_assert_has(out, "generation <b>7</b>");
    ck_assert_has(out, "workers <b>3</b>");
    ck_assert_has(out, "uptime <b>1m 4");
    /* groups, servers, badges, numbers */
    ck_assert_has(out, "<h2>app <span class=\"sub\">round_robin");
    ck_assert_has(out, "<h2>api <span class=\"sub\">least_conn");
    /* api answers 503 to everything, and the page says so in words; app has its backup */
    ck_assert_has(out, "least_conn</span> <span class=\"badge b-down\">no usable server: "
                       "answering 503</span>");
    ck_assert_int_eq(count_of(out, "no usable server"), 1);
    ck_assert_has(out, "127.0.0.1:3001");
    ck_assert_has(out, "127.0.0.1:3002<span class=\"tag\">backup</span>");
    ck_assert_has(out, "<span class=\"badge b-up\">up</span>");
    ck_assert_has(out, "<span class=\"badge b-down\">down</span><span class=\"why\" "
                       "title=\"last failed check\">connect to 10.0.0.1:8000: Connection "
                       "refused</span>");
    ck_assert_has(out, "<span class=\"badge b-open\">open</span>");
    ck_assert_has(out, "<td class=\"n\">1&#8239;234</td>");  /* requests, grouped */
    ck_assert_has(out, "<td class=\"n\">250 &micro;s</td>"); /* average latency */
    ck_assert_has(out, "ms ago");
    ck_assert_has(out, "checks off");
    /* the scoreboard */
    ck_assert_has(out, "<div class=\"cell w-idle\"");
    ck_assert_has(out, "<div class=\"cell w-proxying\"");
    ck_assert_has(out, "<div class=\"cell w-keep-alive\"");
    ck_assert_has(out, "proxying <b>1</b>");
    ck_assert_has(out, "free <b>0</b>");
    ck_assert_has(out, "<td class=\"n\">102</td>");
}
END_TEST

START_TEST(test_html_escapes)
{
    shm_set_error(shm_srv(shm, 1, 0), "<script>alert(\"x\")</script> & 'y'\x01");
    render(STATUS_HTML);

    ck_assert_lacks(out, "<script");
    ck_assert_lacks(out, "\x01");
    ck_assert_has(out, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
                       "\xef\xbf\xbd</span>");
}
END_TEST

START_TEST(test_html_breaker_half_open)
{
    atomic_store(&shm_srv(shm, 0, 1)->breaker, SHM_BREAKER_HALF_OPEN);
    atomic_store(&shm_srv(shm, 1, 0)->health, SHM_HEALTH_UNKNOWN);
    atomic_store(&shm_srv(shm, 1, 0)->last_check_ms, 0);
    render(STATUS_HTML);
    ck_assert_has(out, "<span class=\"badge b-half_open\">half-open</span>");
    ck_assert_has(out, "<span class=\"badge b-unknown\">unknown</span>");
    ck_assert_has(out, "not yet");
}
END_TEST

/* ---- /metrics --------------------------------------------------------------------------- */

START_TEST(test_metrics_values)
{
    char why[256];
    size_t n = render(STATUS_METRICS);

    ck_assert_msg(prom_valid(out, n, why, sizeof(why)) == 0, "%s\n%s", why, out);
#define A "{group=\"app\",server=\"127.0.0.1:3001\"}"
#define B "{group=\"app\",server=\"127.0.0.1:3002\"}"
#define D "{group=\"api\",server=\"10.0.0.1:8000\"}"
#define D_(l) "{group=\"api\",server=\"10.0.0.1:8000\"," l "}"
#define A_(l) "{group=\"app\",server=\"127.0.0.1:3001\"," l "}"
    static const char *const lines[] = {
        "\nminiproxyd_up 1\n",
        "\nminiproxyd_config_generation 7\n",
        "\nminiproxyd_build_info{version=\"" MP_VERSION "\"} 1\n",
        "\nminiproxyd_workers{state=\"free\"} 0\n",
        "\nminiproxyd_workers{state=\"idle\"} 1\n",
        "\nminiproxyd_workers{state=\"proxying\"} 1\n",
        "\nminiproxyd_workers{state=\"keep-alive\"} 1\n",
        "\nminiproxyd_worker_requests_total 60\n",
        "\nminiproxyd_worker_connections_total 6\n",
        "\nminiproxyd_upstream_server_up" A " 1\n",
        "\nminiproxyd_upstream_server_up" D " 0\n",
        "\nminiproxyd_upstream_server_health_state" D_("state=\"down\"") " 1\n",
        "\nminiproxyd_upstream_server_health_state" D_("state=\"up\"") " 0\n",
        "\nminiproxyd_upstream_server_weight" A " 3\n",
        "\nminiproxyd_upstream_server_backup" B " 1\n",
        "\nminiproxyd_upstream_breaker_open" A " 1\n",
        "\nminiproxyd_upstream_breaker_open" B " 0\n",
        "\nminiproxyd_upstream_breaker_state" A_("state=\"open\"") " 1\n",
        "\nminiproxyd_upstream_breaker_state" A_("state=\"closed\"") " 0\n",
        "\nminiproxyd_upstream_breaker_opens_total" A " 3\n",
        "\nminiproxyd_upstream_active_requests" A " 2\n",
        "\nminiproxyd_upstream_requests_total" A " 1234\n",
        "\nminiproxyd_upstream_failures_total" A " 5\n",
        "\nminiproxyd_upstream_responses_total" A_("code=\"1xx\"") " 1\n",
        "\nminiproxyd_upstream_responses_total" A_("code=\"2xx\"") " 1000\n",
        "\nminiproxyd_upstream_responses_total" A_("code=\"5xx\"") " 4\n",
        "\nminiproxyd_upstream_latency_seconds_sum" A " 0.263750\n",
        "\nminiproxyd_upstream_latency_seconds_count" A " 1055\n",
        "\nminiproxyd_upstream_latency_seconds_count" B " 0\n",
        "\nminiproxyd_upstream_health_checks_total" D " 17\n",
        "\nminiproxyd_upstream_health_check_latency_seconds" D " 1.000000\n",
        "\n# TYPE miniproxyd_upstream_usable_servers gauge\n",
        "\nminiproxyd_upstream_usable_servers{group=\"app\"} 1\n",
        "\nminiproxyd_upstream_usable_servers{group=\"api\"} 0\n",
        "\n# TYPE miniproxyd_upstream_latency_seconds summary\n",
        "\n# TYPE miniproxyd_upstream_requests_total counter\n",
    };
#undef A
#undef B
#undef D
#undef D_
#undef A_
    for (size_t i = 0; i < NELEM(lines); i++)
        ck_assert_has(out, lines[i]);
    long long up = json_num_after(out, "\nminiproxyd_uptime_seconds ");
    ck_assert_msg(up >= 100 && up <= 105, "uptime %lld", up);
}
END_TEST

START_TEST(test_metrics_odd_states)
{
    char why[256];

    /* values the table should never hold still give a valid exposition */
    atomic_store(&shm_srv(shm, 0, 0)->health, 42);
    atomic_store(&shm_srv(shm, 0, 1)->breaker, -1);
    atomic_store(&shm->workers[0].state, 9);
    atomic_store(&shm_srv(shm, 0, 0)->active, -3);
    for (int k = 0; k < 3; k++) {
        size_t n = render((enum status_kind)k);
        if (k == STATUS_METRICS)
            ck_assert_msg(prom_valid(out, n, why, sizeof(why)) == 0, "%s", why);
        if (k == STATUS_JSON)
            ck_assert_msg(json_valid(out, n) == 0, "invalid JSON:\n%s", out);
    }
    ck_assert_has(out, "{group=\"app\",server=\"127.0.0.1:3001\"} -3\n");
    ck_assert_has(out,
                  "miniproxyd_upstream_breaker_open{group=\"app\",server=\"127.0.0.1:3002\"} 1");
}
END_TEST

/* ---- caps and the size hint ------------------------------------------------------------- */

START_TEST(test_caps)
{
    enum status_kind kind = (enum status_kind)_i;
    size_t len = render(kind);
    char *buf = malloc(len + 64);
    const size_t caps[] = {0, 1, 2, 100, len / 2, len - 2, len - 1};

    ck_assert(buf != NULL);
    for (size_t i = 0; i < NELEM(caps); i++) {
        memset(buf, 0xa5, len + 64);
        ck_assert_msg(status_render(kind, cfg, shm, buf, caps[i]) == -1, "cap %zu of %zu", caps[i],
                      len);
        for (size_t b = caps[i]; b < len + 64; b++)
            ck_assert_msg((unsigned char)buf[b] == 0xa5, "cap %zu: byte %zu written", caps[i], b);
    }
    /* the exact length fits (without a NUL), and so does more */
    memset(buf, 0xa5, len + 64);
    ck_assert_int_eq(status_render(kind, cfg, shm, buf, len), (ssize_t)len);
    ck_assert((unsigned char)buf[len] == 0xa5);
    ck_assert_int_eq(status_render(kind, cfg, shm, buf, len + 1), (ssize_t)len);
    ck_assert_int_eq(buf[len], '\0');
    ck_assert_int_eq(status_render(kind, cfg, shm, NULL, 0), -1);
    free(buf);
}
END_TEST

START_TEST(test_bad_kind)
{
    ck_assert_int_eq(status_render((enum status_kind)99, cfg, shm, out, out_cap), -1);
}
END_TEST

/* Fills every counter of the table with its largest value and every error with <fill>. */
static void
fill_worst(char fill)
{
    char err[SHM_ERR_MAX];

    memset(err, fill, sizeof(err) - 1);
    err[sizeof(err) - 1] = '\0';
    for (size_t i = 0; i < shm->nservers; i++) {
        struct shm_server *v = &shm->servers[i];
        atomic_store(&v->active, INT64_MIN);
        atomic_store(&v->requests, UINT64_MAX);
        atomic_store(&v->failures, UINT64_MAX);
        for (size_t c = 0; c < 5; c++)
            atomic_store(&v->responses[c], UINT64_MAX / 5);
        atomic_store(&v->latency_us_sum, UINT64_MAX);
        atomic_store(&v->health, SHM_HEALTH_DOWN);
        atomic_store(&v->checks, UINT64_MAX);
        atomic_store(&v->checks_ok, UINT32_MAX);
        atomic_store(&v->checks_failed, UINT32_MAX);
        atomic_store(&v->last_check_ms, 1);
        atomic_store(&v->last_latency_us, INT64_MAX);
        atomic_store(&v->breaker, SHM_BREAKER_HALF_OPEN);
        atomic_store(&v->breaker_opens, UINT64_MAX);
        shm_set_error(v, err);
    }
    for (size_t i = 0; i < shm->nworkers; i++) {
        atomic_store(&shm->workers[i].pid, INT32_MIN);
        atomic_store(&shm->workers[i].state, SHM_W_KEEPALIVE);
        atomic_store(&shm->workers[i].requests, UINT64_MAX);
        atomic_store(&shm->workers[i].connections, UINT64_MAX);
        atomic_store(&shm->workers[i].bytes, UINT64_MAX);
    }
    for (size_t i = 0; i < shm->nservers; i++)
        atomic_store(&shm->servers[i].down_since_ms, 1);
    for (size_t g = 0; g < shm->ngroups; g++)
        for (size_t b = 0; b < SHM_LAT_BUCKETS; b++)
            atomic_store(&shm->groups[g].latency[b], UINT64_MAX);
    for (size_t i = 0; i < SHM_OWN_SLOTS; i++)
        atomic_store(&shm->own_responses[i], UINT64_MAX);
    atomic_store(&shm->tunnels, UINT64_MAX);
    atomic_store(&shm->sample_prev.ms, 1);
    atomic_store(&shm->sample_last.ms, 2);
    atomic_store(&shm->sample_last.requests, UINT64_MAX);
    atomic_store(&shm->sample_last.bytes, UINT64_MAX);
    char text[SHM_RELOAD_MAX];
    memset(text, fill, sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    shm_set_reload(shm, 1, false, text);
    shm->started = 1;
    shm->generation = UINT32_MAX;
}

/* The largest config there can be: every limit at its maximum, the longest names. */
static char *
big_ini(void)
{
    size_t cap = 1 << 20, len = 0;
    char *text = malloc(cap);

    ck_assert(text != NULL);
    len += (size_t)snprintf(text + len, cap - len,
                            "[proxy]\nlisten = 127.0.0.1:0\nworkers = %d\nupstream = g0%061d\n",
                            CFG_MAX_WORKERS, 0);
    int per = CFG_MAX_TOTAL_SERVERS / 4;
    for (int g = 0; g < 4; g++) {
        len += (size_t)snprintf(text + len, cap - len, "[upstream g%d%061d]\n", g, 0);
        for (int s = 0; s < per; s++)
            len += (size_t)snprintf(text + len, cap - len,
                                    "server = [ffff:ffff:ffff:ffff:ffff:ffff:ffff:%x]:%d "
                                    "weight=100\n",
                                    0xf000 + s, 60000 + s);
        ck_assert(len < cap);
    }
    return text;
}

START_TEST(test_size_hint_worst)
{
    static const char fills[] = {'"', '\x01', '\\', '<', '\xff'};
    char why[256];

    teardown();
    char *text = big_ini();
    load(text);
    free(text);
    ck_assert_int_eq(cfg->ngroups, 4);
    ck_assert_int_eq(shm->nservers, CFG_MAX_TOTAL_SERVERS);
    ck_assert_int_eq(shm->nworkers, CFG_MAX_WORKERS);

    size_t largest = 0;
    for (size_t f = 0; f < NELEM(fills); f++) {
        fill_worst(fills[f]);
        for (int k = 0; k < 3; k++) {
            ssize_t n = status_render((enum status_kind)k, cfg, shm, out, out_cap);
            ck_assert_msg(n > 0, "kind %d, fill 0x%02x: does not fit the hint %zu", k,
                          (unsigned char)fills[f], out_cap);
            if ((size_t)n > largest)
                largest = (size_t)n;
            if (k == STATUS_JSON)
                ck_assert(json_valid(out, (size_t)n) == 0);
            if (k == STATUS_METRICS)
                ck_assert_msg(prom_valid(out, (size_t)n, why, sizeof(why)) == 0, "%s", why);
        }
    }
    /* generous, not absurd */
    ck_assert_msg(out_cap < 2 * largest, "hint %zu for at most %zu", out_cap, largest);
}
END_TEST

START_TEST(test_size_hint_small)
{
    /* the fixture's renders fit, and the hint stays modest for a small config */
    for (int k = 0; k < 3; k++)
        render((enum status_kind)k);
    ck_assert_msg(out_cap < 256 * 1024, "hint %zu", out_cap);
}
END_TEST

START_TEST(test_table_bigger_than_config)
{
    /* a table that claims more workers than it can hold: clamped, never read past */
    shm->nworkers = 100000;
    for (int k = 0; k < 3; k++) {
        ssize_t n = status_render((enum status_kind)k, cfg, shm, out, out_cap);
        ck_assert(n == -1 || (size_t)n <= out_cap);
    }
    size_t big = 4 << 20;
    char *buf = malloc(big);
    ck_assert(buf != NULL);
    ssize_t n = status_render(STATUS_JSON, cfg, shm, buf, big);
    ck_assert(n > 0);
    ck_assert(json_valid(buf, (size_t)n) == 0);
    ck_assert_int_eq(json_num_after(buf, "\"nworkers\":"), CFG_MAX_WORKERS);
    free(buf);
}
END_TEST

/* ---- what an operator looks for: rates, own answers, tunnels, reloads, latency ----------- */

/* Known values for the figures of issue 12's status page. */
static void
setup_operator(void)
{
    atomic_store(&shm->own_responses[shm_own_slot(502)], 7);
    atomic_store(&shm->own_responses[shm_own_slot(408)], 2);
    shm_count_own(shm, 418); /* not one of ours: "other" */
    atomic_store(&shm->tunnels, 5);
    atomic_store(&shm->workers[1].state, SHM_W_TUNNEL);
    atomic_store(&shm->sample_prev.ms, 1000);
    atomic_store(&shm->sample_prev.requests, 100);
    atomic_store(&shm->sample_prev.bytes, 1000);
    atomic_store(&shm->sample_last.ms, 3000);
    atomic_store(&shm->sample_last.requests, 300);
    atomic_store(&shm->sample_last.bytes, 5000);
    shm_set_reload(shm, (int64_t)time(NULL) - 30, false, "t.ini:3: [proxy] workers: bad \"x\"");
    /* app: 50 answers within 1 ms, 40 in 5..10 ms, 10 above the last bound */
    atomic_store(&shm->groups[0].latency[0], 50);
    atomic_store(&shm->groups[0].latency[2], 40);
    atomic_store(&shm->groups[0].latency[SHM_LAT_BUCKETS - 1], 10);
}

START_TEST(test_operator_json)
{
    setup_operator();
    size_t n = render(STATUS_JSON);

    ck_assert_msg(json_valid(out, n) == 0, "invalid JSON:\n%s", out);
    ck_assert_has(out, ",\"requests_per_second\":100.000,\"bytes_per_second\":2000.000,"
                       "\"rate_window_ms\":2000,");
    ck_assert_has(out, ",\"tunnels\":{\"open\":1,\"opened\":5},");
    ck_assert_has(out, "\"own_responses\":{\"400\":0,\"405\":0,\"408\":2,\"413\":0,\"414\":0,"
                       "\"431\":0,\"501\":0,\"502\":7,\"503\":0,\"504\":0,\"505\":0,"
                       "\"other\":1}");
    ck_assert_has(out, "\"ok\":false,\"result\":\"t.ini:3: [proxy] workers: bad \\\"x\\\"\"}");
    long long when = json_num_after(out, "\"last_reload\":{\"time\":");
    ck_assert_int_eq(when, (long long)time(NULL) - 30);
    ck_assert_has(out, "\"worker_states\":{\"free\":0,\"idle\":1,\"reading\":0,\"proxying\":0,"
                       "\"keep-alive\":1,\"tunnel\":1}");
    ck_assert_has(out, "\"running_workers\":3,");
    /* the percentiles, interpolated within their bucket as histogram_quantile() does */
    ck_assert_has(out,
                  "\"latency\":{\"count\":100,\"sum_us\":263750,\"p50_us\":1000,"
                  "\"p50_above_buckets\":false,\"p90_us\":10000,\"p90_above_buckets\":false,"
                  "\"p99_us\":10000000,\"p99_above_buckets\":true,\"buckets\":[{\"le_us\":1000,"
                  "\"n\":50},{\"le_us\":5000,\"n\":0},{\"le_us\":10000,\"n\":40},");
    ck_assert_has(out, "{\"le_us\":null,\"n\":10}]}");
    /* api has no answers: no percentiles */
    ck_assert_has(out, "\"latency\":{\"count\":0,\"sum_us\":0,\"p50_us\":null,");
    /* api's server has been down for 65 s */
    const char *api = strstr(out, "\"address\":\"10.0.0.1:8000\"");
    ck_assert_ptr_nonnull(api);
    long long d = json_num_after(api, "\"down_for_ms\":");
    ck_assert_msg(d >= 65000 && d < 70000, "down for %lld ms", d);
}
END_TEST

START_TEST(test_operator_metrics)
{
    char why[256];

    setup_operator();
    size_t n = render(STATUS_METRICS);
    ck_assert_msg(prom_valid(out, n, why, sizeof(why)) == 0, "%s\n%s", why, out);
#define H "miniproxyd_upstream_group_latency_seconds"
    static const char *const lines[] = {
        "\n# TYPE " H " histogram\n",
        "\n" H "_bucket{group=\"app\",le=\"0.001000\"} 50\n",
        "\n" H "_bucket{group=\"app\",le=\"0.005000\"} 50\n",
        "\n" H "_bucket{group=\"app\",le=\"0.010000\"} 90\n",
        "\n" H "_bucket{group=\"app\",le=\"10.000000\"} 90\n",
        "\n" H "_bucket{group=\"app\",le=\"+Inf\"} 100\n",
        "\n" H "_sum{group=\"app\"} 0.263750\n",
        "\n" H "_count{group=\"app\"} 100\n",
        "\n" H "_bucket{group=\"api\",le=\"+Inf\"} 0\n",
        "\n" H "_count{group=\"api\"} 0\n",
        "\nminiproxyd_own_responses_total{code=\"502\"} 7\n",
        "\nminiproxyd_own_responses_total{code=\"408\"} 2\n",
        "\nminiproxyd_own_responses_total{code=\"400\"} 0\n",
        "\nminiproxyd_own_responses_total{code=\"other\"} 1\n",
        "\nminiproxyd_tunnels_open 1\n",
        "\nminiproxyd_tunnels_total 5\n",
        "\nminiproxyd_workers{state=\"tunnel\"} 1\n",
        "\nminiproxyd_last_reload_success 0\n",
        "\nminiproxyd_upstream_breaker_cooldown_remaining_seconds"
        "{group=\"app\",server=\"127.0.0.1:3001\"} 0.000000\n",
        "\nminiproxyd_upstream_server_down_seconds{group=\"app\",server=\"127.0.0.1:3001\"} "
        "0.000000\n",
        "\nminiproxyd_upstream_server_down_seconds{group=\"api\",server=\"10.0.0.1:8000\"} 6",
    };
#undef H
    for (size_t i = 0; i < NELEM(lines); i++)
        ck_assert_has(out, lines[i]);
    long long when = json_num_after(out, "\nminiproxyd_last_reload_timestamp_seconds ");
    ck_assert_int_eq(when, (long long)time(NULL) - 30);
}
END_TEST

START_TEST(test_operator_html)
{
    setup_operator();
    /* slot 2 is empty: the grid and the table show the running workers only */
    atomic_store(&shm->workers[2].pid, 0);
    atomic_store(&shm->workers[2].state, SHM_W_FREE);
    render(STATUS_HTML);

    ck_assert_has(out, "<div class=\"reload failed\">Last reload <b>failed</b>, <b>3");
    ck_assert_has(out, "the previous configuration still serves: t.ini:3: [proxy] workers: bad "
                       "&quot;x&quot;</div>");
    ck_assert_has(out, "<b>100.0</b> req/s &middot; <b>2.00 kB</b>/s out");
    ck_assert_has(out, "tunnels <b>1</b> open, 5 opened");
    ck_assert_has(out, "latency p50 <b>1.00 ms</b> &middot; p90 <b>10 ms</b> &middot; p99 "
                       "<b>&gt; 10.0 s</b>");
    ck_assert_has(out, "<span class=\"code\">502</span> Bad Gateway: <b>7</b>");
    ck_assert_has(out, "<span class=\"code\">408</span> Request Timeout: <b>2</b>");
    ck_assert_has(out, "<span class=\"code\">other</span>: <b>1</b>");
    ck_assert_lacks(out, "<span class=\"code\">400</span>");
    ck_assert_has(out, "refused</span><span class=\"cls\">for 1m 0");
    ck_assert_has(out, "cooldown over: the next request is a trial");
    ck_assert_has(out, "<div class=\"cell w-tunnel\"");
    ck_assert_has(out, "2 running of 3 slots");
    ck_assert_lacks(out, "title=\"slot 2 ");
    ck_assert_lacks(out, "<tr><td class=\"n\">2</td>");
    ck_assert_has(out, "<tr><td class=\"n\">1</td>");
}
END_TEST

START_TEST(test_operator_html_quiet)
{
    /* a good reload, an open breaker with cooldown left, no rates yet, no answers of ours */
    shm_set_reload(shm, (int64_t)time(NULL), true, "generation 8 from t.ini");
    atomic_store(&shm_srv(shm, 0, 0)->breaker, shm_bw_make(SHM_BREAKER_OPEN, clock_ms() + 1000));
    render(STATUS_HTML);
    ck_assert_has(out, "<div class=\"reload\">Last reload <b>0s ago</b> (");
    ck_assert_has(out, "): generation 8 from t.ini</div>");
    ck_assert_has(out, "<div class=\"cls\">cooldown: 1");
    ck_assert_has(out, "s left</div>");
    ck_assert_has(out, "<b>&ndash;</b> req/s");
    ck_assert_has(out, "Answers from the proxy itself <span class=\"sub\">0 in all");
    ck_assert_has(out, "<span class=\"mute\">none</span>");
    render(STATUS_METRICS);
    ck_assert_has(out, "\nminiproxyd_last_reload_success 1\n");
    ck_assert_has(out, "\nminiproxyd_upstream_breaker_cooldown_remaining_seconds"
                       "{group=\"app\",server=\"127.0.0.1:3001\"} 1");
}
END_TEST

START_TEST(test_sample)
{
    /* the fixture's workers served 10 + 20 + 30 requests */
    status_sample(shm, 10000);
    ck_assert_int_eq(atomic_load(&shm->sample_last.ms), 10000);
    ck_assert_uint_eq(atomic_load(&shm->sample_last.requests), 60);
    ck_assert_int_eq(atomic_load(&shm->sample_prev.ms), 0);
    render(STATUS_JSON);
    ck_assert_has(out, "\"requests_per_second\":null,");
    /* within a second: no new sample */
    atomic_store(&shm->workers[0].requests, 50);
    atomic_store(&shm->workers[0].bytes, 4096);
    status_sample(shm, 10500);
    ck_assert_int_eq(atomic_load(&shm->sample_last.ms), 10000);
    status_sample(shm, 12000);
    ck_assert_int_eq(atomic_load(&shm->sample_prev.ms), 10000);
    ck_assert_uint_eq(atomic_load(&shm->sample_prev.requests), 60);
    ck_assert_uint_eq(atomic_load(&shm->sample_last.requests), 100);
    render(STATUS_JSON);
    ck_assert_has(out, "\"requests_per_second\":20.000,\"bytes_per_second\":2048.000,"
                       "\"rate_window_ms\":2000,\"bytes\":4096,");
    /* a total that went down (a slot's counts lost) reads as no traffic, not a wrap-around */
    atomic_store(&shm->workers[0].requests, 0);
    status_sample(shm, 14000);
    render(STATUS_JSON);
    ck_assert_has(out, "\"requests_per_second\":0.000,");
}
END_TEST

START_TEST(test_own_slots)
{
    ck_assert_int_eq(shm_own_status(shm_own_slot(400)), 400);
    ck_assert_int_eq(shm_own_status(shm_own_slot(504)), 504);
    ck_assert_uint_eq(shm_own_slot(200), SHM_OWN_SLOTS - 1);
    ck_assert_int_eq(shm_own_status(SHM_OWN_SLOTS - 1), 0);
    ck_assert_uint_eq(shm_lat_bucket(0), 0);
    ck_assert_uint_eq(shm_lat_bucket(1000), 0); /* le: bounds are inclusive */
    ck_assert_uint_eq(shm_lat_bucket(1001), 1);
    ck_assert_uint_eq(shm_lat_bucket(10000000), SHM_LAT_BUCKETS - 2);
    ck_assert_uint_eq(shm_lat_bucket(10000001), SHM_LAT_BUCKETS - 1);
    ck_assert_uint_eq(shm_lat_bucket(INT64_MAX), SHM_LAT_BUCKETS - 1);
}
END_TEST

static Suite *
status_suite(void)
{
    Suite *s = suite_create("status");
    TCase *tc = tcase_create("checkers");

    tcase_add_test(tc, test_json_checker);
    tcase_add_test(tc, test_prom_checker);
    tcase_add_test(tc, test_kind_for);
    tcase_add_test(tc, test_content_type);
    suite_add_tcase(s, tc);

    tc = tcase_create("render");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_json_values);
    tcase_add_test(tc, test_json_escapes);
    tcase_add_test(tc, test_json_uptime_unset);
    tcase_add_test(tc, test_html_page);
    tcase_add_test(tc, test_html_escapes);
    tcase_add_test(tc, test_html_breaker_half_open);
    tcase_add_test(tc, test_metrics_values);
    tcase_add_test(tc, test_metrics_odd_states);
    tcase_add_loop_test(tc, test_caps, STATUS_HTML, STATUS_METRICS + 1);
    tcase_add_test(tc, test_bad_kind);
    tcase_add_test(tc, test_size_hint_worst);
    tcase_add_test(tc, test_size_hint_small);
    tcase_add_test(tc, test_table_bigger_than_config);
    tcase_add_test(tc, test_operator_json);
    tcase_add_test(tc, test_operator_metrics);
    tcase_add_test(tc, test_operator_html);
    tcase_add_test(tc, test_operator_html_quiet);
    tcase_add_test(tc, test_sample);
    tcase_add_test(tc, test_own_slots);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return tl_run(status_suite());
}
