/*
 * status: the admin pages, rendered from the shared table. See status.h.
 *
 * Everything is written through one bounded writer (struct buf_out) that never
 * writes past <cap> and remembers that it ran out, so a render either fits
 * whole or returns -1. Nothing is allocated: numbers are formatted into a
 * small stack buffer, strings are escaped byte by byte straight into the
 * output. Every string that comes from the table or the config passes an
 * escaper for its format; text from the table (last_error) is also checked
 * as UTF-8, since a truncated or hostile error text must not make the JSON
 * or the exposition invalid.
 */
#include "status.h"

#include "buf.h"
#include "clock.h"
#include "tls.h"
#include "http.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#ifndef MP_VERSION
#define MP_VERSION "unknown"
#endif

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- output: struct buf_out (buf.h); a render fails when it is full ---------------------- */

static void
out_ch(struct buf_out *o, char c)
{
    buf_out_put(o, &c, 1);
}

/*
 * printf into the output. Formats only numbers and short literals (never a
 * string from the table: those go through an escaper), so a stack buffer is
 * enough; going through it also lets a piece fill <cap> exactly, which
 * vsnprintf straight into the output would not (it wants room for a NUL).
 */
__attribute__((format(printf, 2, 3))) static void
out_fmt(struct buf_out *o, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        o->full = true; /* a bug in a format here, not a small buffer: fail rather than cut */
        return;
    }
    buf_out_put(o, tmp, (size_t)n);
}

/*
 * The length of the valid UTF-8 sequence at <s> (at most <n> bytes), or 0
 * when it is not one (stray continuation, overlong form, surrogate, above
 * U+10FFFF, cut short).
 */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

enum esc { ESC_HTML, ESC_JSON, ESC_LABEL };

/*
 * Writes the NUL-terminated <s> escaped for <how>: HTML text and attribute
 * values, a JSON string's inside, a Prometheus label value's inside.
 * Invalid UTF-8 becomes U+FFFD; in HTML and label values, control
 * characters other than those with an escape become U+FFFD too (they have
 * no business on a page and a newline in a label must be "\n").
 */
static void
out_esc(struct buf_out *o, const char *s, enum esc how)
{
    static const char replacement[] = "\xef\xbf\xbd";
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);

    while (n > 0 && !o->full) {
        size_t k = utf8_len(p, n);
        unsigned char c = p[0];

        if (k == 0) {
            buf_out_str(o, how == ESC_JSON ? "\\ufffd" : replacement);
            p++;
            n--;
            continue;
        }
        if (k > 1) {
            buf_out_put(o, (const char *)p, k);
            p += k;
            n -= k;
            continue;
        }
        switch (how) {
        case ESC_HTML:
            if (c == '&')
                buf_out_str(o, "&amp;");
            else if (c == '<')
                buf_out_str(o, "&lt;");
            else if (c == '>')
                buf_out_str(o, "&gt;");
            else if (c == '"')
                buf_out_str(o, "&quot;");
            else if (c == '\'')
                buf_out_str(o, "&#39;");
            else if (c < 0x20 || c == 0x7f)
                buf_out_str(o, replacement);
            else
                out_ch(o, (char)c);
            break;
        case ESC_JSON:
            if (c == '"')
                buf_out_str(o, "\\\"");
            else if (c == '\\')
                buf_out_str(o, "\\\\");
            else if (c < 0x20 || c == 0x7f)
                out_fmt(o, "\\u%04x", c);
            else
                out_ch(o, (char)c);
            break;
        case ESC_LABEL:
            if (c == '"')
                buf_out_str(o, "\\\"");
            else if (c == '\\')
                buf_out_str(o, "\\\\");
            else if (c == '\n')
                buf_out_str(o, "\\n");
            else if (c < 0x20 || c == 0x7f)
                buf_out_str(o, replacement);
            else
                out_ch(o, (char)c);
            break;
        }
        p++;
        n--;
    }
}

/* ---- reading the table ------------------------------------------------------------------ */

/*
 * One server's figures, read once so that every format shows the same
 * numbers and the derived ones (response count, average) agree with them.
 */
struct srv_view {
    const char *addr;
    unsigned weight;
    bool backup;
    int health;
    uint64_t checks;
    unsigned checks_ok, checks_failed;
    int64_t last_check_ms; /* 0: never */
    int64_t age_ms;        /* now - last_check_ms, >= 0 */
    int64_t probe_us;
    int breaker;
    uint64_t breaker_opens;
    int64_t active;
    uint64_t requests, failures;
    uint64_t responses[5];
    uint64_t nresponses;
    uint64_t latency_us_sum;
    uint64_t avg_latency_us;
    int64_t down_ms;          /* how long it has been down, -1: not down (or not known since) */
    int64_t cooldown_left_ms; /* breaker open: what is left of its cooldown, -1: not open */
    char error[SHM_ERR_MAX];
};

/* A group's latency histogram, read once, and the percentiles it gives. */
struct lat_view {
    uint64_t bucket[SHM_LAT_BUCKETS]; /* as counted: per bucket, not cumulative */
    uint64_t count;                   /* their sum (saturating) */
    uint64_t sum_us;                  /* the group's servers' latency_us_sum (saturating) */
    int64_t p[3];                     /* p50, p90, p99 in us; -1: no data */
    bool over[3];                     /* ... above the last finite bound */
};

static const double quantiles[3] = {0.5, 0.9, 0.99};
static const char *const quantile_names[3] = {"p50", "p90", "p99"};

struct hdr_view {
    int64_t uptime_s;
    int64_t started;
    uint32_t generation;
    uint32_t nworkers;
    uint32_t ngroups;
    int64_t now_ms; /* CLOCK_MONOTONIC, as clock_ms() */
    unsigned by_state[SHM_W_NSTATES];
    uint64_t worker_requests, worker_connections, worker_bytes;
    uint32_t running; /* slots with a process (a pid) */
    uint64_t tunnels_opened;
    uint64_t spliced;
    uint64_t own[SHM_OWN_SLOTS];
    uint64_t own_total;
    /* rates between the admin's last two samples (status_sample()) */
    bool have_rates;
    int64_t rate_window_ms;
    double requests_per_s, bytes_per_s;
    /* the last reload */
    int64_t reload_time; /* Unix time, 0: none */
    bool reload_ok;
    char reload_text[SHM_RELOAD_MAX];
};

/* The TLS parts of each rendering (below, with the rest of TLS). */
static void html_tls(struct buf_out *o, const struct config *cfg);
static void json_tls(struct buf_out *o, const struct config *cfg);
static void prom_tls(struct buf_out *o, const struct config *cfg);

static const char *const health_names[] = {"unknown", "up", "down"};
static const char *const breaker_names[] = {"closed", "open", "half_open"};
static const char *const worker_names[] = {"free",     "idle",       "reading",
                                           "proxying", "keep-alive", "tunnel"};
static const char *const class_names[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

/* <a> + <b>, stuck at UINT64_MAX rather than wrapping around. */
static uint64_t
add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static const char *
name_of(const char *const *names, size_t n, int v)
{
    return v >= 0 && (size_t)v < n ? names[v] : "invalid";
}

/* The groups the table and the config agree on (they belong together, but a guard is cheap). */
static size_t
ngroups_of(const struct config *cfg, const struct shm *shm)
{
    size_t n = cfg->ngroups < shm->ngroups ? cfg->ngroups : shm->ngroups;
    return n < CFG_MAX_GROUPS ? n : CFG_MAX_GROUPS;
}

static size_t
nservers_of(const struct config *cfg, const struct shm *shm, size_t g)
{
    size_t n = cfg->groups[g].nservers;
    if (n > shm->groups[g].nservers)
        n = shm->groups[g].nservers;
    if (shm->groups[g].first > CFG_MAX_TOTAL_SERVERS)
        return 0;
    if (n > CFG_MAX_TOTAL_SERVERS - shm->groups[g].first)
        n = CFG_MAX_TOTAL_SERVERS - shm->groups[g].first;
    return n;
}

static uint32_t
nworkers_of(const struct shm *shm)
{
    return shm->nworkers < CFG_MAX_WORKERS ? shm->nworkers : CFG_MAX_WORKERS;
}

static void
read_header(const struct shm *shm, struct hdr_view *h)
{
    memset(h, 0, sizeof(*h));
    int64_t now = (int64_t)time(NULL);
    h->started = shm->started;
    h->uptime_s = shm->started > 0 && now > shm->started ? now - shm->started : 0;
    h->generation = shm->generation;
    h->nworkers = nworkers_of(shm);
    h->now_ms = clock_ms(); /* the clock last_check_ms is written with */
    for (uint32_t i = 0; i < h->nworkers; i++) {
        const struct shm_worker *w = &shm->workers[i];
        int st = atomic_load(&w->state);
        if (st >= 0 && (size_t)st < NELEM(h->by_state))
            h->by_state[st]++;
        h->worker_requests += (uint64_t)atomic_load(&w->requests);
        h->worker_connections += (uint64_t)atomic_load(&w->connections);
        h->worker_bytes = add_sat(h->worker_bytes, (uint64_t)atomic_load(&w->bytes));
        if (atomic_load(&w->pid) != 0)
            h->running++;
    }
    h->tunnels_opened = (uint64_t)atomic_load(&shm->tunnels);
    h->spliced = (uint64_t)atomic_load(&shm->spliced);
    for (size_t i = 0; i < SHM_OWN_SLOTS; i++) {
        h->own[i] = (uint64_t)atomic_load(&shm->own_responses[i]);
        h->own_total = add_sat(h->own_total, h->own[i]);
    }
    int64_t t0 = (int64_t)atomic_load(&shm->sample_prev.ms);
    int64_t t1 = (int64_t)atomic_load(&shm->sample_last.ms);
    if (t0 > 0 && t1 > t0) {
        uint64_t r0 = (uint64_t)atomic_load(&shm->sample_prev.requests);
        uint64_t r1 = (uint64_t)atomic_load(&shm->sample_last.requests);
        uint64_t b0 = (uint64_t)atomic_load(&shm->sample_prev.bytes);
        uint64_t b1 = (uint64_t)atomic_load(&shm->sample_last.bytes);
        h->have_rates = true;
        h->rate_window_ms = t1 - t0;
        /* a total that went down (a slot's counters lost with its process) reads as no traffic */
        h->requests_per_s = r1 > r0 ? (double)(r1 - r0) * 1000.0 / (double)(t1 - t0) : 0;
        h->bytes_per_s = b1 > b0 ? (double)(b1 - b0) * 1000.0 / (double)(t1 - t0) : 0;
    }
    h->reload_time = shm_read_reload(shm, &h->reload_ok, h->reload_text, sizeof(h->reload_text));
}

static void
read_server(const struct config *cfg, const struct shm *shm, const struct hdr_view *h, size_t g,
            size_t s, struct srv_view *v)
{
    const struct cfg_server *cs = &cfg->groups[g].servers[s];
    /* shm_srv() and shm_read_error() take a writable table; both only read here. */
    struct shm_server *srv = shm_srv((struct shm *)shm, g, s);

    v->addr = cs->addr.text;
    v->weight = cs->weight;
    v->backup = cs->backup;
    v->health = atomic_load(&srv->health);
    v->checks = (uint64_t)atomic_load(&srv->checks);
    v->checks_ok = atomic_load(&srv->checks_ok);
    v->checks_failed = atomic_load(&srv->checks_failed);
    v->last_check_ms = (int64_t)atomic_load(&srv->last_check_ms);
    v->age_ms =
        v->last_check_ms > 0 && h->now_ms > v->last_check_ms ? h->now_ms - v->last_check_ms : 0;
    v->probe_us = (int64_t)atomic_load(&srv->last_latency_us);
    v->breaker = shm_breaker_state(srv);
    v->breaker_opens = (uint64_t)atomic_load(&srv->breaker_opens);
    v->active = (int64_t)atomic_load(&srv->active);
    v->requests = (uint64_t)atomic_load(&srv->requests);
    v->failures = (uint64_t)atomic_load(&srv->failures);
    v->nresponses = 0;
    for (size_t i = 0; i < 5; i++) {
        v->responses[i] = (uint64_t)atomic_load(&srv->responses[i]);
        v->nresponses += v->responses[i];
    }
    v->latency_us_sum = (uint64_t)atomic_load(&srv->latency_us_sum);
    v->avg_latency_us = v->nresponses > 0 ? v->latency_us_sum / v->nresponses : 0;
    int64_t since = (int64_t)atomic_load(&srv->down_since_ms);
    v->down_ms = v->health == SHM_HEALTH_DOWN && since > 0
                     ? (h->now_ms > since ? h->now_ms - since : 0)
                     : -1;
    uint64_t bw = atomic_load(&srv->breaker);
    v->cooldown_left_ms = -1;
    if (shm_bw_state(bw) == SHM_BREAKER_OPEN) {
        int64_t end = shm_bw_since(bw) + cfg->groups[g].cooldown_ms;
        v->cooldown_left_ms = end > h->now_ms ? end - h->now_ms : 0;
    }
    shm_read_error(srv, v->error, sizeof(v->error));
}

/*
 * The <q> quantile of a histogram, as Prometheus' histogram_quantile()
 * estimates it: linear within the bucket the rank falls in. In the +Inf
 * bucket it is the last finite bound, with <*over> set.
 */
static int64_t
quantile_us(const struct lat_view *l, double q, bool *over)
{
    double rank = q * (double)l->count, cum = 0;

    *over = false;
    if (l->count == 0)
        return -1;
    for (size_t i = 0; i < SHM_LAT_BUCKETS; i++) {
        double prev = cum;
        cum += (double)l->bucket[i];
        if (l->bucket[i] == 0 || cum < rank)
            continue;
        if (i == SHM_LAT_BUCKETS - 1) {
            *over = true;
            return shm_lat_bound_us(i - 1);
        }
        double lo = i > 0 ? (double)shm_lat_bound_us(i - 1) : 0, hi = (double)shm_lat_bound_us(i);
        return (int64_t)(lo + (hi - lo) * (rank - prev) / (double)l->bucket[i]);
    }
    *over = true;
    return shm_lat_bound_us(SHM_LAT_BUCKETS - 2);
}

/*
 * Servers of group <g> that can take requests now: up, breaker closed. A
 * group with none answers 503 to everything, which the pages say in words.
 */
static size_t
usable_servers(const struct config *cfg, const struct shm *shm, size_t g)
{
    size_t n = nservers_of(cfg, shm, g), usable = 0;

    for (size_t s = 0; s < n; s++) {
        const struct shm_server *srv = &shm->servers[shm->groups[g].first + s];
        if (atomic_load(&srv->health) == SHM_HEALTH_UP &&
            shm_breaker_state(srv) == SHM_BREAKER_CLOSED)
            usable++;
    }
    return usable;
}

/* Reads group <g>'s histogram and works out its percentiles. */
static void
read_latency(const struct config *cfg, const struct shm *shm, size_t g, struct lat_view *l)
{
    memset(l, 0, sizeof(*l));
    for (size_t i = 0; i < SHM_LAT_BUCKETS; i++) {
        l->bucket[i] = (uint64_t)atomic_load(&shm->groups[g].latency[i]);
        l->count = add_sat(l->count, l->bucket[i]);
    }
    size_t n = nservers_of(cfg, shm, g);
    for (size_t s = 0; s < n; s++)
        l->sum_us =
            add_sat(l->sum_us,
                    (uint64_t)atomic_load(&shm->servers[shm->groups[g].first + s].latency_us_sum));
    for (size_t q = 0; q < 3; q++)
        l->p[q] = quantile_us(l, quantiles[q], &l->over[q]);
}

/* ---- HTML ------------------------------------------------------------------------------- */

static const char html_head[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta http-equiv=\"refresh\" content=\"2\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>miniproxyd status</title>\n"
    "<style>\n"
    ":root{--fg:#1f2933;--mute:#6b7785;--line:#e4e8ee;--bg:#f5f7fa;--card:#fff;"
    "--up:#1e9e5a;--down:#d93a3a;--unk:#8a94a3;--warn:#e07b12}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0;padding:20px 28px;background:var(--bg);color:var(--fg);"
    "font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif}\n"
    "header{display:flex;align-items:baseline;gap:18px;flex-wrap:wrap;margin-bottom:18px}\n"
    "h1{font-size:22px;margin:0;font-weight:650}\n"
    "h1 small{font-size:13px;color:var(--mute);font-weight:500;margin-left:6px}\n"
    ".facts{display:flex;gap:22px;color:var(--mute)}\n"
    ".facts b{color:var(--fg);font-weight:600;font-variant-numeric:tabular-nums}\n"
    "section{background:var(--card);border:1px solid var(--line);border-radius:8px;"
    "margin-bottom:18px;overflow:hidden}\n"
    "section>h2{font-size:15px;margin:0;padding:10px 14px;border-bottom:1px solid var(--line);"
    "display:flex;gap:10px;align-items:center}\n"
    "h2 .sub{color:var(--mute);font-weight:400;font-size:13px}\n"
    "h2 .right{margin-left:auto}\n"
    "table{border-collapse:collapse;width:100%}\n"
    "th,td{padding:6px 8px;border-bottom:1px solid var(--line);text-align:left;"
    "white-space:nowrap;vertical-align:middle}\n"
    "tr:last-child td{border-bottom:0}\n"
    "th{font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:var(--mute);"
    "font-weight:600;background:#fafbfc}\n"
    "td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\n"
    "td.addr{font-family:ui-monospace,'DejaVu Sans Mono',monospace;font-size:13px}\n"
    ".mute{color:var(--mute)}\n"
    ".badge{display:inline-block;min-width:52px;text-align:center;padding:1px 8px;"
    "border-radius:10px;font-size:12px;font-weight:600;color:#fff}\n"
    ".b-up{background:var(--up)}.b-down{background:var(--down)}.b-unknown{background:var(--unk)}\n"
    ".b-closed{background:#e9f5ee;color:var(--up)}.b-open{background:var(--down)}"
    ".b-half_open{background:var(--warn)}\n"
    ".tag{display:inline-block;font-size:11px;padding:0 6px;border-radius:4px;"
    "border:1px solid var(--line);color:var(--mute);margin-left:6px;font-family:system-ui,"
    "sans-serif}\n"
    ".hl{display:flex;align-items:center;gap:8px}\n"
    ".why{color:var(--down);font-size:12px;line-height:1.3;white-space:normal;"
    "min-width:140px;max-width:230px;overflow-wrap:anywhere}\n"
    "tr.down td{background:#fff6f6}\n"
    ".cls{color:var(--mute);font-size:12px}\n"
    ".bad{color:var(--down)}\n"
    "td.resp{white-space:nowrap}\n"
    ".bar{display:inline-flex;width:72px;height:8px;border-radius:4px;overflow:hidden;"
    "background:var(--line);vertical-align:middle}\n"
    ".bar i{display:block;height:100%;min-width:2px}\n"
    ".r1{background:#9aa5b1}.r2{background:var(--up)}.r3{background:#3b82c4}"
    ".r4{background:var(--warn)}.r5{background:var(--down)}\n"
    ".share{display:inline-block;min-width:58px;margin-left:6px;font-size:12px;"
    "color:var(--mute);font-variant-numeric:tabular-nums}\n"
    ".share.bad{color:var(--down);font-weight:600}\n"
    "table.sb{width:auto;min-width:520px}\n"
    ".pill{display:inline-flex;align-items:center;gap:6px;margin-right:14px}\n"
    ".dot{display:inline-block;width:12px;height:12px;border-radius:3px}\n"
    ".grid{display:flex;flex-wrap:wrap;gap:4px;padding:12px 14px 4px}\n"
    ".cell{width:34px;height:24px;border-radius:4px;font-size:11px;line-height:24px;"
    "text-align:center;color:#fff;font-variant-numeric:tabular-nums}\n"
    ".w-free{background:#e4e8ee;color:var(--mute)}.w-idle{background:#9aa5b1}"
    ".w-reading{background:#3b82c4}.w-proxying{background:var(--up)}"
    ".w-keep-alive{background:#8e6bc8}.w-tunnel{background:#d4a017}.w-invalid{background:#000}\n"
    ".legend{padding:8px 14px 12px;color:var(--mute);font-size:13px}\n"
    ".legend b{color:var(--fg);font-variant-numeric:tabular-nums}\n"
    "details>summary{padding:6px 14px;cursor:pointer;color:var(--mute);font-size:13px;"
    "border-top:1px solid var(--line)}\n"
    "footer{color:var(--mute);font-size:12px}\n"
    ".reload{margin:-8px 0 16px;padding:8px 14px;border-radius:8px;border:1px solid var(--line);"
    "background:var(--card);color:var(--mute)}\n"
    ".reload.failed{background:#fff0f0;border-color:var(--down);color:var(--down)}\n"
    ".reload b{color:inherit}\n"
    ".lat{color:var(--mute);font-weight:400;font-size:13px}\n"
    ".lat b{color:var(--fg);font-weight:600;font-variant-numeric:tabular-nums}\n"
    ".own{display:flex;flex-wrap:wrap;gap:8px 18px;padding:10px 14px}\n"
    ".own .code{font-weight:650}\n"
    "</style></head><body>\n";

/* "850 us", "1.23 ms", "4.5 s" */
static void
html_duration_us(struct buf_out *o, int64_t us)
{
    if (us < 0)
        us = 0;
    if (us < 1000)
        out_fmt(o, "%" PRId64 " &micro;s", us);
    else if (us < 10000)
        out_fmt(o, "%" PRId64 ".%02" PRId64 " ms", us / 1000, us % 1000 / 10);
    else if (us < 1000000)
        out_fmt(o, "%" PRId64 " ms", us / 1000);
    else
        out_fmt(o, "%" PRId64 ".%01" PRId64 " s", us / 1000000, us % 1000000 / 100000);
}

/* "3d 4h", "2h 05m", "7m 03s", "42s" */
static void
html_uptime(struct buf_out *o, int64_t s)
{
    if (s >= 86400)
        out_fmt(o, "%" PRId64 "d %" PRId64 "h", s / 86400, s % 86400 / 3600);
    else if (s >= 3600)
        out_fmt(o, "%" PRId64 "h %02" PRId64 "m", s / 3600, s % 3600 / 60);
    else if (s >= 60)
        out_fmt(o, "%" PRId64 "m %02" PRId64 "s", s / 60, s % 60);
    else
        out_fmt(o, "%" PRId64 "s", s);
}

/* <ms> as a duration for people: "850 ms", "4.2 s", "3m 12s" */
static void
html_duration_ms(struct buf_out *o, int64_t ms)
{
    if (ms < 1000)
        out_fmt(o, "%" PRId64 " ms", ms < 0 ? 0 : ms);
    else if (ms < 10000)
        out_fmt(o, "%" PRId64 ".%01" PRId64 " s", ms / 1000, ms % 1000 / 100);
    else
        html_uptime(o, ms / 1000);
}

/* <v> (a rate) with a unit prefix: "0.50", "12.3", "4.10 k", "1.25 MB" */
static void
html_rate(struct buf_out *o, double v, const char *unit)
{
    static const char *const prefix[] = {"", "k", "M", "G", "T"};
    size_t i = 0;

    while (v >= 1000 && i + 1 < NELEM(prefix)) {
        v /= 1000;
        i++;
    }
    if (v > 1e6)
        v = 1e6; /* a table that cannot be right: keep the cell short */
    out_fmt(o, v < 10 ? "%.2f" : "%.1f", v);
    if (*prefix[i] != '\0' || *unit != '\0')
        out_fmt(o, " %s%s", prefix[i], unit);
}

/* <v> with its digits in groups of three, "184 233" (narrow no-break spaces) */
static void
html_count(struct buf_out *o, uint64_t v)
{
    char digits[24];
    int n = snprintf(digits, sizeof(digits), "%" PRIu64, v);

    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf_out_str(o, "&#8239;");
        out_ch(o, digits[i]);
    }
}

/*
 * The responses cell: a bar of the status classes' shares (exact counts in
 * its tooltip) and the share of 5xx, which is what a person looks for.
 */
static void
html_responses(struct buf_out *o, const struct srv_view *v)
{
    buf_out_str(o, "<td class=\"resp\">");
    if (v->nresponses == 0) {
        buf_out_str(o, "<span class=\"mute\">no responses</span></td>");
        return;
    }
    buf_out_str(o, "<span class=\"bar\" title=\"");
    for (size_t i = 0; i < 5; i++)
        out_fmt(o, "%s%s: %" PRIu64, i ? ", " : "", class_names[i], v->responses[i]);
    buf_out_str(o, "\">");
    for (size_t i = 0; i < 5; i++)
        if (v->responses[i] > 0)
            out_fmt(o, "<i class=\"r%zu\" style=\"width:%.2f%%\"></i>", i + 1,
                    100.0 * (double)v->responses[i] / (double)v->nresponses);
    buf_out_str(o, "</span>");
    double pct5 = 100.0 * (double)v->responses[4] / (double)v->nresponses;
    if (v->responses[4] == 0)
        buf_out_str(o, "<span class=\"share\">5xx 0%</span>");
    else if (pct5 < 0.1)
        buf_out_str(o, "<span class=\"share bad\">5xx &lt;0.1%</span>");
    else
        out_fmt(o, "<span class=\"share bad\">5xx %.1f%%</span>", pct5);
    buf_out_str(o, "</td>");
}

static void
html_server(struct buf_out *o, const struct cfg_group *grp, const struct srv_view *v)
{
    const char *health = name_of(health_names, NELEM(health_names), v->health);
    const char *breaker = name_of(breaker_names, NELEM(breaker_names), v->breaker);

    buf_out_str(o, v->health == SHM_HEALTH_DOWN ? "<tr class=\"down\">" : "<tr>");
    buf_out_str(o, "<td class=\"addr\">");
    out_esc(o, v->addr, ESC_HTML);
    if (v->backup)
        buf_out_str(o, "<span class=\"tag\">backup</span>");
    out_fmt(o, "</td><td class=\"n\">%u</td>", v->weight);

    out_fmt(o, "<td><div class=\"hl\"><span class=\"badge b-%s\">%s</span>", health, health);
    if (v->health != SHM_HEALTH_UP && v->error[0] != '\0') {
        buf_out_str(o, "<span class=\"why\" title=\"last failed check\">");
        out_esc(o, v->error, ESC_HTML);
        buf_out_str(o, "</span>");
    }
    if (v->down_ms >= 0) {
        buf_out_str(o, "<span class=\"cls\">for ");
        html_duration_ms(o, v->down_ms);
        buf_out_str(o, "</span>");
    }
    buf_out_str(o, "</div></td>");

    if (!grp->health_check) {
        buf_out_str(o, "<td class=\"mute\">checks off</td><td class=\"n mute\">&ndash;</td>");
    } else if (v->last_check_ms <= 0) {
        buf_out_str(o, "<td class=\"mute\">not yet</td><td class=\"n mute\">&ndash;</td>");
    } else {
        if (v->age_ms < 10000)
            out_fmt(o, "<td>%" PRId64 " ms ago", v->age_ms);
        else
            out_fmt(o, "<td>%" PRId64 " s ago", v->age_ms / 1000);
        /* the streak that decides the next transition: rise while down, fall while up */
        if (v->checks_failed > 0)
            out_fmt(o, "<div class=\"cls\">%u failed in a row</div>", v->checks_failed);
        buf_out_str(o, "</td><td class=\"n\">");
        html_duration_us(o, v->probe_us);
        buf_out_str(o, "</td>");
    }

    out_fmt(o, "<td><span class=\"badge b-%s\">%s</span>", breaker,
            v->breaker == SHM_BREAKER_HALF_OPEN ? "half-open" : breaker);
    if (v->breaker_opens > 0)
        out_fmt(o, " <span class=\"cls\">&times;%" PRIu64 "</span>", v->breaker_opens);
    if (v->cooldown_left_ms > 0) {
        buf_out_str(o, "<div class=\"cls\">cooldown: ");
        html_duration_ms(o, v->cooldown_left_ms);
        buf_out_str(o, " left</div>");
    } else if (v->cooldown_left_ms == 0) {
        buf_out_str(o, "<div class=\"cls\">cooldown over: the next request is a trial</div>");
    }
    buf_out_str(o, "</td>");

    out_fmt(o, "<td class=\"n\">%" PRId64 "</td><td class=\"n\">", v->active);
    html_count(o, v->requests);
    buf_out_str(o, "</td><td class=\"n\">");
    html_count(o, v->failures);
    buf_out_str(o, "</td>");
    html_responses(o, v);
    buf_out_str(o, "<td class=\"n\">");
    if (v->nresponses > 0)
        html_duration_us(o,
                         (int64_t)(v->avg_latency_us > INT64_MAX ? INT64_MAX : v->avg_latency_us));
    else
        buf_out_str(o, "<span class=\"mute\">&ndash;</span>");
    buf_out_str(o, "</td></tr>\n");
}

/* "2026-12-01 09:10:00 UTC" */
static void
html_time(struct buf_out *o, int64_t when)
{
    char tmp[64];
    struct tm tm;
    time_t t = (time_t)when;

    if (gmtime_r(&t, &tm) == NULL || strftime(tmp, sizeof(tmp), "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(tmp, sizeof(tmp), "%" PRId64, when);
    buf_out_str(o, tmp);
}

/* The last reload, under the header: a failed one in red, with why. */
static void
html_reload(struct buf_out *o, const struct hdr_view *h)
{
    int64_t now = (int64_t)time(NULL);

    if (h->reload_time <= 0) {
        buf_out_str(o, "<div class=\"reload\">No reload since the start.</div>\n");
        return;
    }
    buf_out_str(o, h->reload_ok ? "<div class=\"reload\">Last reload <b>"
                                : "<div class=\"reload failed\">Last reload <b>failed</b>, <b>");
    html_uptime(o, now > h->reload_time ? now - h->reload_time : 0);
    buf_out_str(o, " ago</b> (");
    html_time(o, h->reload_time);
    buf_out_str(o, h->reload_ok ? "): " : "), the previous configuration still serves: ");
    out_esc(o, h->reload_text, ESC_HTML);
    buf_out_str(o, "</div>\n");
}

/* A group's latency percentiles, in its heading. */
static void
html_latency(struct buf_out *o, const struct lat_view *l)
{
    buf_out_str(o, " <span class=\"lat\">latency ");
    if (l->count == 0) {
        buf_out_str(o, "<b>&ndash;</b></span>");
        return;
    }
    for (size_t q = 0; q < 3; q++) {
        out_fmt(o, "%s%s <b>", q ? " &middot; " : "", quantile_names[q]);
        if (l->over[q])
            buf_out_str(o, "&gt; ");
        html_duration_us(o, l->p[q]);
        buf_out_str(o, "</b>");
    }
    buf_out_str(o, "</span>");
}

/* The answers the proxy made itself, by status. */
static void
html_own(struct buf_out *o, const struct hdr_view *h)
{
    buf_out_str(o, "<section><h2>Answers from the proxy itself <span class=\"sub\">");
    html_count(o, h->own_total);
    buf_out_str(o, " in all: errors it sent instead of an upstream's answer</span></h2>"
                   "<div class=\"own\">");
    if (h->own_total == 0)
        buf_out_str(o, "<span class=\"mute\">none</span>");
    for (size_t i = 0; i < SHM_OWN_SLOTS; i++) {
        if (h->own[i] == 0)
            continue;
        int st = shm_own_status(i);
        if (st != 0)
            out_fmt(o, "<span><span class=\"code\">%d</span> %s: <b>", st, http_reason(st));
        else
            buf_out_str(o, "<span><span class=\"code\">other</span>: <b>");
        html_count(o, h->own[i]);
        buf_out_str(o, "</b></span>");
    }
    buf_out_str(o, "</div></section>\n");
}

/* The page's head: version, uptime, totals, rates, tunnels, the last reload. */
static void
html_header(struct buf_out *o, const struct hdr_view *h)
{
    buf_out_str(o, html_head);
    buf_out_str(o, "<header><h1>miniproxyd<small>");
    out_esc(o, MP_VERSION, ESC_HTML);
    buf_out_str(o, "</small></h1><div class=\"facts\"><span>uptime <b>");
    html_uptime(o, h->uptime_s);
    out_fmt(o, "</b></span><span>generation <b>%" PRIu32 "</b></span>", h->generation);
    out_fmt(o, "<span>workers <b>%" PRIu32 "</b></span>", h->nworkers);
    buf_out_str(o, "<span>requests <b>");
    html_count(o, h->worker_requests);
    buf_out_str(o, "</b></span>");
    if (h->have_rates) {
        buf_out_str(o, "<span title=\"over the last ");
        html_duration_ms(o, h->rate_window_ms);
        buf_out_str(o, "\"><b>");
        html_rate(o, h->requests_per_s, "");
        buf_out_str(o, "</b> req/s &middot; <b>");
        html_rate(o, h->bytes_per_s, "B");
        buf_out_str(o, "</b>/s out</span>");
    } else {
        buf_out_str(o, "<span><b>&ndash;</b> req/s (rates from the next refresh)</span>");
    }
    out_fmt(o, "<span>tunnels <b>%u</b> open, %" PRIu64 " opened</span>",
            h->by_state[SHM_W_TUNNEL], h->tunnels_opened);
    buf_out_str(o, "</div></header>\n");
    html_reload(o, h);
}

/* One [upstream NAME] section: its servers' rows, health, latency. */
static void
html_group(struct buf_out *o, const struct config *cfg, const struct shm *shm,
           const struct hdr_view *h, size_t g)
{
    struct srv_view v;
    struct lat_view lat;
    const struct cfg_group *grp = &cfg->groups[g];
    size_t n = nservers_of(cfg, shm, g);
    size_t up = 0;

    for (size_t s = 0; s < n; s++)
        if (atomic_load(&shm->servers[shm->groups[g].first + s].health) == SHM_HEALTH_UP)
            up++;
    buf_out_str(o, "<section><h2>");
    out_esc(o, grp->name, ESC_HTML);
    buf_out_str(o, " <span class=\"sub\">");
    buf_out_str(o, cfg_balance_name(grp->balance));
    if (g == cfg->group)
        buf_out_str(o, " &middot; serves requests");
    buf_out_str(o, "</span>");
    if (usable_servers(cfg, shm, g) == 0)
        buf_out_str(o, " <span class=\"badge b-down\">no usable server: answering 503</span>");
    read_latency(cfg, shm, g, &lat);
    html_latency(o, &lat);
    out_fmt(o, "<span class=\"sub right\"><b>%zu</b> of %zu up</span></h2>\n", up, n);
    buf_out_str(o, "<table><thead><tr><th>Server</th><th class=\"n\">Weight</th>"
                   "<th>Health</th><th>Last check</th><th class=\"n\">Probe</th>"
                   "<th>Breaker</th><th class=\"n\">Active</th><th class=\"n\">Requests</th>"
                   "<th class=\"n\">Failures</th><th>Responses</th>"
                   "<th class=\"n\">Avg latency</th></tr></thead><tbody>\n");
    for (size_t s = 0; s < n; s++) {
        read_server(cfg, shm, h, g, s, &v);
        html_server(o, grp, &v);
    }
    buf_out_str(o, "</tbody></table></section>\n");
}

/* The workers: the pool's figures, the grid of running workers, the scoreboard. */
static void
html_workers(struct buf_out *o, const struct shm *shm, const struct hdr_view *h)
{
    html_own(o, h);
    out_fmt(o,
            "<section><h2>Workers <span class=\"sub\">%" PRIu32 " running of %" PRIu32
            " slots &middot; ",
            h->running, h->nworkers);
    html_count(o, h->worker_connections);
    out_fmt(o,
            " connections &middot; pool: %" PRIu64 " forked, %" PRIu64 " retired, %" PRIu64
            " nudges &middot; %" PRIu64
            " idle keep-alive closed for waiting clients &middot; %" PRIu64
            " slow clients cut &middot; %" PRIu64 " refused per address",
            (uint64_t)atomic_load(&shm->spawned), (uint64_t)atomic_load(&shm->retired),
            (uint64_t)atomic_load(&shm->nudges), (uint64_t)atomic_load(&shm->evictions),
            (uint64_t)atomic_load(&shm->slow_rejects), (uint64_t)atomic_load(&shm->ip_rejects));
    buf_out_str(o, "</span></h2>\n<div class=\"grid\">");
    /* the running workers only: an adaptive pool has up to max_workers slots, mostly empty */
    for (uint32_t i = 0; i < h->nworkers; i++) {
        const struct shm_worker *w = &shm->workers[i];
        if (atomic_load(&w->pid) == 0)
            continue;
        const char *st = name_of(worker_names, NELEM(worker_names), atomic_load(&w->state));
        out_fmt(o,
                "<div class=\"cell w-%s\" title=\"slot %" PRIu32 " pid %d: %s\">%" PRIu32 "</div>",
                st, i, atomic_load(&w->pid), st, i);
    }
    buf_out_str(o, "</div>\n<div class=\"legend\">");
    for (size_t st = 0; st < NELEM(worker_names); st++)
        out_fmt(o, "<span class=\"pill\"><span class=\"dot w-%s\"></span>%s <b>%u</b></span>",
                worker_names[st], worker_names[st], h->by_state[st]);
    buf_out_str(o, "</div>\n");
    /* the per-slot table: open when it is short enough to glance at */
    buf_out_str(o, h->running <= 16 ? "<details open>" : "<details>");
    buf_out_str(o, "<summary>scoreboard</summary><table class=\"sb\"><thead><tr>"
                   "<th class=\"n\">Slot</th><th class=\"n\">PID</th><th>State</th><th "
                   "class=\"n\">Requests</th>"
                   "<th class=\"n\">Connections</th></tr></thead><tbody>\n");
    for (uint32_t i = 0; i < h->nworkers; i++) {
        const struct shm_worker *w = &shm->workers[i];
        const char *st = name_of(worker_names, NELEM(worker_names), atomic_load(&w->state));
        int pid = atomic_load(&w->pid);
        if (pid == 0)
            continue;
        out_fmt(o, "<tr><td class=\"n\">%" PRIu32 "</td>", i);
        if (pid > 0)
            out_fmt(o, "<td class=\"n\">%d</td>", pid);
        else
            buf_out_str(o, "<td class=\"n mute\">&ndash;</td>");
        out_fmt(o, "<td><span class=\"dot w-%s\"></span> %s</td><td class=\"n\">", st, st);
        html_count(o, (uint64_t)atomic_load(&w->requests));
        buf_out_str(o, "</td><td class=\"n\">");
        html_count(o, (uint64_t)atomic_load(&w->connections));
        buf_out_str(o, "</td></tr>\n");
    }
    buf_out_str(o, "</tbody></table></details></section>\n");
}

static void
render_html(struct buf_out *o, const struct config *cfg, const struct shm *shm)
{
    struct hdr_view h;
    size_t ngroups = ngroups_of(cfg, shm);

    read_header(shm, &h);
    html_header(o, &h);
    for (size_t g = 0; g < ngroups; g++)
        html_group(o, cfg, shm, &h, g);
    html_workers(o, shm, &h);
    html_tls(o, cfg);
    buf_out_str(o, "<footer>Refreshes every 2 s &middot; also as <a href=\"/status.json\">JSON</a>"
                   " and <a href=\"/metrics\">Prometheus metrics</a></footer>\n</body></html>\n");
}

/* ---- JSON ------------------------------------------------------------------------------- */

static void
json_str(struct buf_out *o, const char *s)
{
    out_ch(o, '"');
    out_esc(o, s, ESC_JSON);
    out_ch(o, '"');
}

/* ,"<key>":<ms> or ,"<key>":null when <ms> is negative */
static void
json_ms_or_null(struct buf_out *o, const char *key, int64_t ms)
{
    if (ms >= 0)
        out_fmt(o, ",\"%s\":%" PRId64, key, ms);
    else
        out_fmt(o, ",\"%s\":null", key);
}

/* A rate as a JSON number (finite, never negative). */
static void
json_rate(struct buf_out *o, double v)
{
    out_fmt(o, "%.3f", v >= 0 && v < 1e15 ? v : v < 0 ? 0 : 1e15);
}

/* Rates, bytes, tunnels, the proxy's own answers and the last reload. */
static void
json_traffic(struct buf_out *o, const struct hdr_view *h)
{
    if (h->have_rates) {
        buf_out_str(o, ",\"requests_per_second\":");
        json_rate(o, h->requests_per_s);
        buf_out_str(o, ",\"bytes_per_second\":");
        json_rate(o, h->bytes_per_s);
        out_fmt(o, ",\"rate_window_ms\":%" PRId64, h->rate_window_ms);
    } else {
        buf_out_str(o, ",\"requests_per_second\":null,\"bytes_per_second\":null,"
                       "\"rate_window_ms\":null");
    }
    out_fmt(o,
            ",\"bytes\":%" PRIu64 ",\"spliced_bytes\":%" PRIu64
            ",\"tunnels\":{\"open\":%u,\"opened\":%" PRIu64 "}",
            h->worker_bytes, h->spliced, h->by_state[SHM_W_TUNNEL], h->tunnels_opened);
    buf_out_str(o, ",\"own_responses\":{");
    for (size_t i = 0; i < SHM_OWN_SLOTS; i++) {
        int st = shm_own_status(i);
        if (st != 0)
            out_fmt(o, "%s\"%d\":%" PRIu64, i ? "," : "", st, h->own[i]);
        else
            out_fmt(o, "%s\"other\":%" PRIu64, i ? "," : "", h->own[i]);
    }
    buf_out_str(o, "},\"last_reload\":");
    if (h->reload_time <= 0) {
        buf_out_str(o, "null");
        return;
    }
    out_fmt(o, "{\"time\":%" PRId64 ",\"ok\":%s,\"result\":", h->reload_time,
            h->reload_ok ? "true" : "false");
    json_str(o, h->reload_text);
    buf_out_str(o, "}");
}

/* ,"latency":{...}: a group's percentiles and buckets (per bucket, not cumulative). */
static void
json_latency(struct buf_out *o, const struct lat_view *l)
{
    out_fmt(o, ",\"latency\":{\"count\":%" PRIu64 ",\"sum_us\":%" PRIu64, l->count, l->sum_us);
    for (size_t q = 0; q < 3; q++) {
        char key[16];
        snprintf(key, sizeof(key), "%s_us", quantile_names[q]);
        json_ms_or_null(o, key, l->p[q]);
        out_fmt(o, ",\"%s_above_buckets\":%s", quantile_names[q], l->over[q] ? "true" : "false");
    }
    buf_out_str(o, ",\"buckets\":[");
    for (size_t i = 0; i < SHM_LAT_BUCKETS; i++) {
        if (i < SHM_LAT_BUCKETS - 1)
            out_fmt(o, "%s{\"le_us\":%" PRId64 ",\"n\":%" PRIu64 "}", i ? "," : "",
                    shm_lat_bound_us(i), l->bucket[i]);
        else
            out_fmt(o, ",{\"le_us\":null,\"n\":%" PRIu64 "}", l->bucket[i]);
    }
    buf_out_str(o, "]}");
}

/* One server of a group in status.json (<first>: no comma before it). */
static void
json_server(struct buf_out *o, const struct srv_view *v, bool first)
{
    buf_out_str(o, first ? "{\"address\":" : ",{\"address\":");
    json_str(o, v->addr);
    out_fmt(o, ",\"weight\":%u,\"backup\":%s,\"health\":\"%s\",\"last_error\":", v->weight,
            v->backup ? "true" : "false", name_of(health_names, NELEM(health_names), v->health));
    json_str(o, v->error);
    out_fmt(o, ",\"checks\":%" PRIu64 ",\"checks_ok\":%u,\"checks_failed\":%u", v->checks,
            v->checks_ok, v->checks_failed);
    /* null, not 0: "never checked" is not "just checked" */
    if (v->last_check_ms > 0)
        out_fmt(o, ",\"last_check_ms_ago\":%" PRId64, v->age_ms);
    else
        buf_out_str(o, ",\"last_check_ms_ago\":null");
    out_fmt(o, ",\"probe_latency_us\":%" PRId64, v->probe_us);
    out_fmt(o, ",\"breaker\":\"%s\",\"breaker_opens\":%" PRIu64,
            name_of(breaker_names, NELEM(breaker_names), v->breaker), v->breaker_opens);
    out_fmt(o, ",\"active\":%" PRId64 ",\"requests\":%" PRIu64 ",\"failures\":%" PRIu64, v->active,
            v->requests, v->failures);
    buf_out_str(o, ",\"responses\":{");
    for (size_t i = 0; i < 5; i++)
        out_fmt(o, "%s\"%s\":%" PRIu64, i ? "," : "", class_names[i], v->responses[i]);
    out_fmt(o, "},\"latency_us_sum\":%" PRIu64 ",\"avg_latency_us\":%" PRIu64, v->latency_us_sum,
            v->avg_latency_us);
    json_ms_or_null(o, "down_for_ms", v->down_ms);
    json_ms_or_null(o, "breaker_cooldown_left_ms", v->cooldown_left_ms);
    buf_out_str(o, "}");
}

static void
render_json(struct buf_out *o, const struct config *cfg, const struct shm *shm)
{
    struct hdr_view h;
    struct srv_view v;
    struct lat_view lat;
    size_t ngroups = ngroups_of(cfg, shm);

    read_header(shm, &h);
    buf_out_str(o, "{\"version\":");
    json_str(o, MP_VERSION);
    out_fmt(o, ",\"started\":%" PRId64 ",\"uptime_seconds\":%" PRId64, h.started, h.uptime_s);
    out_fmt(o, ",\"generation\":%" PRIu32 ",\"nworkers\":%" PRIu32, h.generation, h.nworkers);
    out_fmt(o,
            ",\"pool\":{\"spawned\":%" PRIu64 ",\"retired\":%" PRIu64 ",\"nudges\":%" PRIu64
            ",\"idle\":%d,\"keepalive_evictions\":%" PRIu64 ",\"slow_rejects\":%" PRIu64
            ",\"ip_rejects\":%" PRIu64 "}",
            (uint64_t)atomic_load(&shm->spawned), (uint64_t)atomic_load(&shm->retired),
            (uint64_t)atomic_load(&shm->nudges), atomic_load(&shm->idle_workers),
            (uint64_t)atomic_load(&shm->evictions), (uint64_t)atomic_load(&shm->slow_rejects),
            (uint64_t)atomic_load(&shm->ip_rejects));
    json_traffic(o, &h);
    buf_out_str(o, ",\"worker_states\":{");
    for (size_t st = 0; st < NELEM(worker_names); st++)
        out_fmt(o, "%s\"%s\":%u", st ? "," : "", worker_names[st], h.by_state[st]);
    out_fmt(o, "},\"running_workers\":%" PRIu32 ",\"workers\":[", h.running);
    /* the running workers (slots with a pid), as on the page */
    bool first = true;
    for (uint32_t i = 0; i < h.nworkers; i++) {
        const struct shm_worker *w = &shm->workers[i];
        if (atomic_load(&w->pid) == 0)
            continue;
        out_fmt(o, "%s{\"slot\":%" PRIu32 ",\"pid\":%d,\"state\":\"%s\"", first ? "" : ",", i,
                atomic_load(&w->pid),
                name_of(worker_names, NELEM(worker_names), atomic_load(&w->state)));
        out_fmt(o, ",\"requests\":%" PRIu64 ",\"connections\":%" PRIu64 "}",
                (uint64_t)atomic_load(&w->requests), (uint64_t)atomic_load(&w->connections));
        first = false;
    }
    buf_out_str(o, "],\"groups\":[");
    for (size_t g = 0; g < ngroups; g++) {
        const struct cfg_group *grp = &cfg->groups[g];
        size_t n = nservers_of(cfg, shm, g);

        buf_out_str(o, g ? ",{\"name\":" : "{\"name\":");
        json_str(o, grp->name);
        size_t usable = usable_servers(cfg, shm, g);
        out_fmt(o,
                ",\"balance\":\"%s\",\"health_check\":%s,\"usable\":%s,"
                "\"usable_servers\":%zu,\"servers\":[",
                cfg_balance_name(grp->balance), grp->health_check ? "true" : "false",
                usable > 0 ? "true" : "false", usable);
        read_latency(cfg, shm, g, &lat);
        for (size_t s = 0; s < n; s++) {
            read_server(cfg, shm, &h, g, s, &v);
            json_server(o, &v, s == 0);
        }
        buf_out_str(o, "]");
        json_latency(o, &lat);
        buf_out_str(o, "}");
    }
    buf_out_str(o, "],\"routes\":[");
    for (size_t r = 0; r < cfg->nroutes && r < CFG_MAX_ROUTES; r++) {
        out_fmt(o, "%s{\"name\":", r ? "," : "");
        json_str(o, cfg->routes[r].name);
        buf_out_str(o, ",\"upstream\":");
        json_str(o, cfg->routes[r].upstream);
        out_fmt(o, ",\"requests\":%" PRIu64 "}", (uint64_t)atomic_load(&shm->route_requests[r]));
    }
    buf_out_str(o, "]");
    json_tls(o, cfg);
    buf_out_str(o, "}\n");
}

/* ---- Prometheus ------------------------------------------------------------------------- */

/*
 * The per-server families. The exposition format wants all samples of a
 * family together, after its one HELP and TYPE, so the servers are walked
 * once per family (cheap: they are a few hundred at most).
 */
enum mfam {
    M_UP,
    M_HEALTH_STATE,
    M_WEIGHT,
    M_BACKUP,
    M_CHECKS,
    M_CHECK_FAILS,
    M_PROBE,
    M_BREAKER_OPEN,
    M_BREAKER_STATE,
    M_BREAKER_OPENS,
    M_ACTIVE,
    M_REQUESTS,
    M_FAILURES,
    M_RESPONSES,
    M_LATENCY,
    M_DOWN,
    M_COOLDOWN,
};

static const struct {
    const char *name, *type, *help;
} mfams[] = {
    [M_UP] = {"miniproxyd_upstream_server_up", "gauge",
              "1 when the server is up (gets traffic), 0 when down or not checked yet."},
    [M_HEALTH_STATE] = {"miniproxyd_upstream_server_health_state", "gauge",
                        "Health state of the server, one series per state set to 1."},
    [M_WEIGHT] = {"miniproxyd_upstream_server_weight", "gauge", "Configured weight."},
    [M_BACKUP] = {"miniproxyd_upstream_server_backup", "gauge",
                  "1 for a backup server (traffic only while no primary is usable)."},
    [M_CHECKS] = {"miniproxyd_upstream_health_checks_total", "counter",
                  "Active health probes done."},
    [M_CHECK_FAILS] = {"miniproxyd_upstream_health_checks_failed_in_row", "gauge",
                       "Consecutive failed health probes."},
    [M_PROBE] = {"miniproxyd_upstream_health_check_latency_seconds", "gauge",
                 "Latency of the last health probe."},
    [M_BREAKER_OPEN] = {"miniproxyd_upstream_breaker_open", "gauge",
                        "1 when the circuit breaker is open or half-open (traffic held back)."},
    [M_BREAKER_STATE] = {"miniproxyd_upstream_breaker_state", "gauge",
                         "Circuit breaker state, one series per state set to 1."},
    [M_BREAKER_OPENS] = {"miniproxyd_upstream_breaker_opens_total", "counter",
                         "Times the circuit breaker opened."},
    [M_ACTIVE] = {"miniproxyd_upstream_active_requests", "gauge",
                  "Requests in flight to the server."},
    [M_REQUESTS] = {"miniproxyd_upstream_requests_total", "counter",
                    "Requests sent to the server."},
    [M_FAILURES] = {"miniproxyd_upstream_failures_total", "counter",
                    "Passive failures: connect errors, resets, timeouts, bad answers."},
    [M_RESPONSES] = {"miniproxyd_upstream_responses_total", "counter",
                     "Responses from the server by status class."},
    [M_LATENCY] = {"miniproxyd_upstream_latency_seconds", "summary",
                   "Time from request sent to response head received."},
    [M_DOWN] = {"miniproxyd_upstream_server_down_seconds", "gauge",
                "How long the server has been down by its health checks; 0 when it is not."},
    [M_COOLDOWN] = {"miniproxyd_upstream_breaker_cooldown_remaining_seconds", "gauge",
                    "What is left of an open breaker's cooldown; 0 when it is not open."},
};

static void
prom_family(struct buf_out *o, const char *name, const char *type, const char *help)
{
    out_fmt(o, "# HELP %s ", name);
    buf_out_str(o, help);
    out_fmt(o, "\n# TYPE %s %s\n", name, type);
}

/* name{group="..",server=".."[,<extra>="<extra_val>"]} -- the value follows */
static void
prom_labels(struct buf_out *o, const char *name, const char *suffix, const char *group,
            const char *server, const char *extra, const char *extra_val)
{
    buf_out_str(o, name);
    buf_out_str(o, suffix);
    buf_out_str(o, "{group=\"");
    out_esc(o, group, ESC_LABEL);
    buf_out_str(o, "\",server=\"");
    out_esc(o, server, ESC_LABEL);
    if (extra != NULL) {
        out_fmt(o, "\",%s=\"", extra);
        out_esc(o, extra_val, ESC_LABEL);
    }
    buf_out_str(o, "\"} ");
}

/* <us> microseconds as seconds, exactly: "1.000250" */
static void
prom_seconds(struct buf_out *o, uint64_t us)
{
    out_fmt(o, "%" PRIu64 ".%06" PRIu64 "\n", us / 1000000, us % 1000000);
}

static void
prom_server(struct buf_out *o, enum mfam f, const char *group, const struct srv_view *v)
{
    const char *name = mfams[f].name;

    switch (f) {
    case M_UP:
        prom_labels(o, name, "", group, v->addr, NULL, NULL);
        buf_out_str(o, v->health == SHM_HEALTH_UP ? "1\n" : "0\n");
        break;
    case M_HEALTH_STATE:
        for (int st = 0; st < (int)NELEM(health_names); st++) {
            prom_labels(o, name, "", group, v->addr, "state", health_names[st]);
            buf_out_str(o, v->health == st ? "1\n" : "0\n");
        }
        break;
    case M_WEIGHT:
        prom_labels(o, name, "", group, v->addr, NULL, NULL);
        out_fmt(o, "%u\n", v->weight);
        break;
    case M_BACKUP:
        prom_labels(o, name, "", group, v->addr, NULL, NULL);
        buf_out_str(o, v->backup ? "1\n" : "0\n");
        break;
    case M_CHECKS:
        prom_labels(o, name, "", group, v->addr, NULL, NULL);
        out_fmt(o, "%" PRIu64 "\n", v->checks);
        break;
    case M_CHECK_FAILS:
        prom_labels(o, name, "", group, v->addr, NULL, NULL);
        out_fmt(o, "%u\n", v->checks_failed);
        break;
    case M_PROBE:
        prom_labels(o, name, "", group, v->addr, NULL, NULL);
        prom_seconds(o, v->probe_us > 0 ? (uint64_t)v->probe_us : 0);
        break;
    case M_BREAKER_OPEN:
        prom_labels(o, name, "", group, v->addr, NULL, NULL);
        buf_out_str(o, v->breaker != SHM_BREAKER_CLOSED ? "1\n" : "0\n");
        break;
    case M_BREAKER_STATE:
        for (int st = 0; st < (int)NELEM(breaker_names); st++) {
            prom_labels(o, name, "", group, v->addr, "state", breaker_names[st]);
            buf_out_str(o, v->breaker == st ? "1\n" : "0\n");
        }
        break;
    case M_BREAKER_OPENS:
        prom_labels(o, name, "", group, v->addr, NULL, NULL);
        out_fmt(o, "%" PRIu64 "\n", v->breaker_opens);
        break;
    case M_ACTIVE:
        prom_labels(o, name, "", group, v->addr, NULL, NULL);
        out_fmt(o, "%" PRId64 "\n", v->active);
        break;
    case M_REQUESTS:
        prom_labels(o, name, "", group, v->addr, NULL, NULL);
        out_fmt(o, "%" PRIu64 "\n", v->requests);
        break;
    case M_FAILURES:
        prom_labels(o, name, "", group, v->addr, NULL, NULL);
        out_fmt(o, "%" PRIu64 "\n", v->failures);
        break;
    case M_RESPONSES:
        for (size_t i = 0; i < 5; i++) {
            prom_labels(o, name, "", group, v->addr, "code", class_names[i]);
            out_fmt(o, "%" PRIu64 "\n", v->responses[i]);
        }
        break;
    case M_LATENCY:
        prom_labels(o, name, "_sum", group, v->addr, NULL, NULL);
        prom_seconds(o, v->latency_us_sum);
        prom_labels(o, name, "_count", group, v->addr, NULL, NULL);
        out_fmt(o, "%" PRIu64 "\n", v->nresponses);
        break;
    case M_DOWN:
        prom_labels(o, name, "", group, v->addr, NULL, NULL);
        prom_seconds(o, v->down_ms > 0 ? (uint64_t)v->down_ms * 1000 : 0);
        break;
    case M_COOLDOWN:
        prom_labels(o, name, "", group, v->addr, NULL, NULL);
        prom_seconds(o, v->cooldown_left_ms > 0 ? (uint64_t)v->cooldown_left_ms * 1000 : 0);
        break;
    }
}

/* Group <g>'s latency histogram: cumulative buckets, _sum and _count (= the +Inf bucket). */
static void
prom_histogram(struct buf_out *o, const struct config *cfg, const struct shm *shm, size_t g)
{
    static const char name[] = "miniproxyd_upstream_group_latency_seconds";
    struct lat_view l;
    uint64_t cum = 0;

    read_latency(cfg, shm, g, &l);
    for (size_t i = 0; i < SHM_LAT_BUCKETS; i++) {
        cum = add_sat(cum, l.bucket[i]);
        out_fmt(o, "%s_bucket{group=\"", name);
        out_esc(o, cfg->groups[g].name, ESC_LABEL);
        if (i < SHM_LAT_BUCKETS - 1) {
            int64_t us = shm_lat_bound_us(i);
            out_fmt(o, "\",le=\"%" PRId64 ".%06" PRId64 "\"} %" PRIu64 "\n", us / 1000000,
                    us % 1000000, cum);
        } else {
            out_fmt(o, "\",le=\"+Inf\"} %" PRIu64 "\n", cum);
        }
    }
    out_fmt(o, "%s_sum{group=\"", name);
    out_esc(o, cfg->groups[g].name, ESC_LABEL);
    buf_out_str(o, "\"} ");
    prom_seconds(o, l.sum_us);
    out_fmt(o, "%s_count{group=\"", name);
    out_esc(o, cfg->groups[g].name, ESC_LABEL);
    out_fmt(o, "\"} %" PRIu64 "\n", cum);
}

/* The process-wide families: build, uptime, workers, the pool, tunnels, own answers, reload. */
static void
prom_process(struct buf_out *o, const struct shm *shm, const struct hdr_view *h)
{
    prom_family(o, "miniproxyd_up", "gauge", "1 while the proxy answers.");
    buf_out_str(o, "miniproxyd_up 1\n");
    prom_family(o, "miniproxyd_build_info", "gauge", "Version of the running proxy.");
    buf_out_str(o, "miniproxyd_build_info{version=\"");
    out_esc(o, MP_VERSION, ESC_LABEL);
    buf_out_str(o, "\"} 1\n");
    prom_family(o, "miniproxyd_start_time_seconds", "gauge",
                "Unix time the master process started.");
    out_fmt(o, "miniproxyd_start_time_seconds %" PRId64 "\n", h->started);
    prom_family(o, "miniproxyd_uptime_seconds", "gauge", "Seconds since the master started.");
    out_fmt(o, "miniproxyd_uptime_seconds %" PRId64 "\n", h->uptime_s);
    prom_family(o, "miniproxyd_config_generation", "gauge",
                "Configuration generation (1 at start, +1 per successful reload).");
    out_fmt(o, "miniproxyd_config_generation %" PRIu32 "\n", h->generation);
    prom_family(o, "miniproxyd_workers", "gauge", "Worker slots by state.");
    for (size_t st = 0; st < NELEM(worker_names); st++)
        out_fmt(o, "miniproxyd_workers{state=\"%s\"} %u\n", worker_names[st], h->by_state[st]);
    prom_family(o, "miniproxyd_worker_requests_total", "counter",
                "Requests served by the current workers.");
    out_fmt(o, "miniproxyd_worker_requests_total %" PRIu64 "\n", h->worker_requests);
    prom_family(o, "miniproxyd_worker_connections_total", "counter",
                "Client connections accepted by the current workers.");
    out_fmt(o, "miniproxyd_worker_connections_total %" PRIu64 "\n", h->worker_connections);
    static const struct {
        const char *name, *help;
        size_t off;
    } pool[] = {
        {"miniproxyd_pool_spawned_total", "Workers forked (pool growth and respawns).",
         offsetof(struct shm, spawned)},
        {"miniproxyd_pool_retired_total", "Spare workers retired by the adaptive pool.",
         offsetof(struct shm, retired)},
        {"miniproxyd_pool_nudges_total",
         "Times a worker woke the master to grow the pool before its next tick.",
         offsetof(struct shm, nudges)},
        {"miniproxyd_keepalive_evictions_total",
         "Idle keep-alive connections closed so a waiting client got a worker.",
         offsetof(struct shm, evictions)},
        {"miniproxyd_slow_client_rejects_total",
         "Requests answered 408 for a head or body below the minimum rate.",
         offsetof(struct shm, slow_rejects)},
        {"miniproxyd_ip_limit_rejects_total", "Connections refused by max_conns_per_ip.",
         offsetof(struct shm, ip_rejects)},
        {"miniproxyd_spliced_bytes_total",
         "Body bytes, both directions, moved socket to socket by splice() (splice = on).",
         offsetof(struct shm, spliced)},
    };
    for (size_t i = 0; i < NELEM(pool); i++) {
        const atomic_uint_fast64_t *ctr =
            (const atomic_uint_fast64_t *)((const char *)shm + pool[i].off);
        prom_family(o, pool[i].name, "counter", pool[i].help);
        out_fmt(o, "%s %" PRIu64 "\n", pool[i].name, (uint64_t)atomic_load(ctr));
    }

    prom_family(o, "miniproxyd_response_bytes_total", "counter",
                "Response body bytes sent to clients by the current workers (tunnels: "
                "what went to the client).");
    out_fmt(o, "miniproxyd_response_bytes_total %" PRIu64 "\n", h->worker_bytes);
    prom_family(o, "miniproxyd_tunnels_open", "gauge", "WebSocket tunnels open now.");
    out_fmt(o, "miniproxyd_tunnels_open %u\n", h->by_state[SHM_W_TUNNEL]);
    prom_family(o, "miniproxyd_tunnels_total", "counter", "WebSocket tunnels opened.");
    out_fmt(o, "miniproxyd_tunnels_total %" PRIu64 "\n", h->tunnels_opened);
    prom_family(o, "miniproxyd_own_responses_total", "counter",
                "Answers the proxy made itself (errors instead of an upstream's answer), "
                "by status.");
    for (size_t i = 0; i < SHM_OWN_SLOTS; i++) {
        int st = shm_own_status(i);
        if (st != 0)
            out_fmt(o, "miniproxyd_own_responses_total{code=\"%d\"} %" PRIu64 "\n", st, h->own[i]);
        else
            out_fmt(o, "miniproxyd_own_responses_total{code=\"other\"} %" PRIu64 "\n", h->own[i]);
    }
    prom_family(o, "miniproxyd_last_reload_timestamp_seconds", "gauge",
                "Unix time of the last reload, good or failed; 0: none since the start.");
    out_fmt(o, "miniproxyd_last_reload_timestamp_seconds %" PRId64 "\n",
            h->reload_time > 0 ? h->reload_time : 0);
    prom_family(o, "miniproxyd_last_reload_success", "gauge",
                "0 when the last reload failed (the previous configuration serves), else 1.");
    out_fmt(o, "miniproxyd_last_reload_success %d\n", h->reload_time > 0 && !h->reload_ok ? 0 : 1);
}

static void
render_metrics(struct buf_out *o, const struct config *cfg, const struct shm *shm)
{
    struct hdr_view h;
    struct srv_view v;
    size_t ngroups = ngroups_of(cfg, shm);

    read_header(shm, &h);
    prom_process(o, shm, &h);

    prom_family(o, "miniproxyd_upstream_usable_servers", "gauge",
                "Servers of the group that can take requests now (up, breaker closed); "
                "0: every request to it gets 503.");
    for (size_t g = 0; g < ngroups; g++) {
        buf_out_str(o, "miniproxyd_upstream_usable_servers{group=\"");
        out_esc(o, cfg->groups[g].name, ESC_LABEL);
        out_fmt(o, "\"} %zu\n", usable_servers(cfg, shm, g));
    }

    if (cfg->nroutes > 0)
        prom_family(o, "miniproxyd_route_requests_total", "counter",
                    "Requests matched to the [route NAME] (the others go to [proxy] upstream).");
    for (size_t r = 0; r < cfg->nroutes && r < CFG_MAX_ROUTES; r++) {
        buf_out_str(o, "miniproxyd_route_requests_total{route=\"");
        out_esc(o, cfg->routes[r].name, ESC_LABEL);
        out_fmt(o, "\"} %" PRIu64 "\n", (uint64_t)atomic_load(&shm->route_requests[r]));
    }
    prom_family(o, "miniproxyd_upstream_group_latency_seconds", "histogram",
                "Time from request sent to response head received, per group.");
    for (size_t g = 0; g < ngroups && !o->full; g++)
        prom_histogram(o, cfg, shm, g);

    for (size_t f = 0; f < NELEM(mfams); f++) {
        prom_family(o, mfams[f].name, mfams[f].type, mfams[f].help);
        for (size_t g = 0; g < ngroups; g++) {
            size_t n = nservers_of(cfg, shm, g);
            for (size_t s = 0; s < n && !o->full; s++) {
                read_server(cfg, shm, &h, g, s, &v);
                prom_server(o, (enum mfam)f, cfg->groups[g].name, &v);
            }
        }
    }
    prom_tls(o, cfg);
}

/* ---- TLS: handshakes, failures by reason, certificates ------------------------------------ */

/*
 * The TLS counters come from the table every process shares
 * (tls_shared_get(), kept across reloads), the certificates from <cfg>'s
 * store. Nothing when there is no [tls].
 */

static void
html_tls(struct buf_out *o, const struct config *cfg)
{
    struct tls_counters c;
    char names[1024];
    time_t na;

    if (!cfg->tls || cfg->tls_store == NULL)
        return;
    tls_shared_counters(tls_shared_get(), &c);
    buf_out_str(o,
                "<section><h2>TLS</h2><div class=\"legend\"><span class=\"pill\">handshakes <b>");
    html_count(o, c.handshakes);
    buf_out_str(o, "</b></span><span class=\"pill\">resumed <b>");
    html_count(o, c.resumed);
    out_fmt(o, "</b></span><span class=\"pill\">cached sessions <b>%" PRIu64 "</b></span>",
            c.cache_entries);
    for (int i = 0; i < TLS_FAIL_N; i++) {
        out_fmt(o, "<span class=\"pill\">%s <b>", tls_fail_name((enum tls_fail)i));
        html_count(o, c.failures[i]);
        buf_out_str(o, "</b></span>");
    }
    buf_out_str(o, "</div><table class=\"sb\"><thead><tr><th>Certificate names</th>"
                   "<th>Expires</th><th class=\"n\">Days left</th></tr></thead><tbody>\n");
    for (size_t i = 0; i < tls_store_cert_count(cfg->tls_store); i++) {
        struct tm tm;
        char when[32] = "?";

        tls_store_cert_info(cfg->tls_store, i, names, sizeof(names), &na);
        if (gmtime_r(&na, &tm) != NULL)
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
        buf_out_str(o, "<tr><td>");
        out_esc(o, names[0] != '\0' ? names : "(no DNS names)", ESC_HTML);
        out_fmt(o, "</td><td>%s</td><td class=\"n\">%lld</td></tr>\n", when,
                (long long)((na - time(NULL)) / 86400));
    }
    buf_out_str(o, "</tbody></table></section>\n");
}

static void
json_tls(struct buf_out *o, const struct config *cfg)
{
    struct tls_counters c;
    char names[1024];
    time_t na;

    if (!cfg->tls || cfg->tls_store == NULL)
        return;
    tls_shared_counters(tls_shared_get(), &c);
    out_fmt(o,
            ",\"tls\":{\"handshakes\":%" PRIu64 ",\"resumed\":%" PRIu64
            ",\"cached_sessions\":%" PRIu64 ",\"failures\":{",
            c.handshakes, c.resumed, c.cache_entries);
    for (int i = 0; i < TLS_FAIL_N; i++)
        out_fmt(o, "%s\"%s\":%" PRIu64, i ? "," : "", tls_fail_name((enum tls_fail)i),
                c.failures[i]);
    buf_out_str(o, "},\"certificates\":[");
    for (size_t i = 0; i < tls_store_cert_count(cfg->tls_store); i++) {
        tls_store_cert_info(cfg->tls_store, i, names, sizeof(names), &na);
        buf_out_str(o, i ? ",{\"names\":" : "{\"names\":");
        json_str(o, names);
        out_fmt(o, ",\"not_after\":%lld}", (long long)na);
    }
    buf_out_str(o, "]}");
}

static void
prom_tls(struct buf_out *o, const struct config *cfg)
{
    struct tls_counters c;
    char names[1024];
    time_t na;

    if (!cfg->tls || cfg->tls_store == NULL)
        return;
    tls_shared_counters(tls_shared_get(), &c);
    prom_family(o, "miniproxyd_tls_handshakes_total", "counter", "Completed TLS handshakes.");
    out_fmt(o, "miniproxyd_tls_handshakes_total %" PRIu64 "\n", c.handshakes);
    prom_family(o, "miniproxyd_tls_resumed_total", "counter",
                "TLS handshakes that resumed a session (ticket or shared cache).");
    out_fmt(o, "miniproxyd_tls_resumed_total %" PRIu64 "\n", c.resumed);
    prom_family(o, "miniproxyd_tls_cached_sessions", "gauge",
                "Sessions in the shared session cache.");
    out_fmt(o, "miniproxyd_tls_cached_sessions %" PRIu64 "\n", c.cache_entries);
    prom_family(o, "miniproxyd_tls_handshake_failures_total", "counter",
                "TLS connections that failed before a request, by reason.");
    for (int i = 0; i < TLS_FAIL_N; i++)
        out_fmt(o, "miniproxyd_tls_handshake_failures_total{reason=\"%s\"} %" PRIu64 "\n",
                tls_fail_name((enum tls_fail)i), c.failures[i]);
    prom_family(o, "miniproxyd_tls_certificate_expiry_seconds", "gauge",
                "Unix time when the certificate expires (notAfter), by its names.");
    for (size_t i = 0; i < tls_store_cert_count(cfg->tls_store); i++) {
        tls_store_cert_info(cfg->tls_store, i, names, sizeof(names), &na);
        out_fmt(o, "miniproxyd_tls_certificate_expiry_seconds{index=\"%zu\",names=\"", i);
        out_esc(o, names, ESC_LABEL);
        out_fmt(o, "\"} %lld\n", (long long)na);
    }
}

/* ---- the API ---------------------------------------------------------------------------- */

void
status_sample(struct shm *shm, int64_t now_ms)
{
    int64_t last = (int64_t)atomic_load(&shm->sample_last.ms);
    uint64_t requests = 0, bytes = 0;

    if (last > 0 && now_ms - last < 1000)
        return; /* a window shorter than a second says more about timing than traffic */
    for (uint32_t i = 0; i < nworkers_of(shm); i++) {
        requests = add_sat(requests, (uint64_t)atomic_load(&shm->workers[i].requests));
        bytes = add_sat(bytes, (uint64_t)atomic_load(&shm->workers[i].bytes));
    }
    atomic_store(&shm->sample_prev.ms, last);
    atomic_store(&shm->sample_prev.requests, atomic_load(&shm->sample_last.requests));
    atomic_store(&shm->sample_prev.bytes, atomic_load(&shm->sample_last.bytes));
    atomic_store(&shm->sample_last.requests, requests);
    atomic_store(&shm->sample_last.bytes, bytes);
    atomic_store(&shm->sample_last.ms, now_ms);
}

int
status_kind_for(const char *path, size_t len)
{
    static const struct {
        const char *path;
        enum status_kind kind;
    } pages[] = {
        {"/status", STATUS_HTML},
        {"/status.json", STATUS_JSON},
        {"/metrics", STATUS_METRICS},
    };
    const char *q = memchr(path, '?', len);

    if (q != NULL)
        len = (size_t)(q - path);
    for (size_t i = 0; i < NELEM(pages); i++)
        if (strlen(pages[i].path) == len && memcmp(pages[i].path, path, len) == 0)
            return (int)pages[i].kind;
    return -1;
}

const char *
status_content_type(enum status_kind kind)
{
    switch (kind) {
    case STATUS_HTML:
        return "text/html; charset=utf-8";
    case STATUS_JSON:
        return "application/json";
    case STATUS_METRICS:
        return "text/plain; version=0.0.4; charset=utf-8";
    }
    return "application/octet-stream";
}

/* The longest <s> can get through any of the escapers. */
static size_t
esc_len(const char *s)
{
    size_t max = 0;

    for (int how = ESC_HTML; how <= ESC_LABEL; how++) {
        struct buf_out o = {.buf = NULL, .cap = 0, .len = 0, .full = false, .count = true};
        out_esc(&o, s, (enum esc)how);
        if (o.len > max)
            max = o.len;
    }
    return max;
}

/*
 * Upper bounds of the parts of the longest format (counted on the renders;
 * tests/unit_status.c renders every counter at its maximum, error texts of
 * the characters that escape longest, and checks the sum), with room to
 * spare. The group name and the address are counted at their escaped
 * length, once per line they appear on.
 */
#define HINT_FIXED 28672     /* page head and CSS, page header, HELP/TYPE of every family */
#define HINT_WORKER 768      /* HTML grid cell + table row; a JSON object */
#define HINT_GROUP 4096      /* section head and table head; the latency histogram */
#define HINT_GROUP_LINES 18  /* times the group name appears per group */
#define HINT_SERVER 2560     /* one server's markup and numbers (metrics: 26 lines) */
#define HINT_SERVER_LINES 28 /* times the group name and the address appear per server */
#define HINT_ERROR (SHM_ERR_MAX * 6)     /* last_error, each byte escaped as \u00XX */
#define HINT_RELOAD (SHM_RELOAD_MAX * 6) /* the last reload's text, escaped the same way */

size_t
status_size_hint(const struct config *cfg)
{
    /* the table holds at most CFG_MAX_WORKERS slots whatever cfg says */
    size_t workers = cfg->worker_slots < CFG_MAX_WORKERS ? cfg->worker_slots : CFG_MAX_WORKERS;
    size_t size = HINT_FIXED + HINT_RELOAD + workers * HINT_WORKER;

    /* TLS: the counters, and each certificate's names (escaped: up to 6 bytes each) */
    if (cfg->tls)
        size += 4096 + cfg->ntls_certs * (512 + 6 * 1024);

    for (size_t g = 0; g < cfg->ngroups; g++) {
        const struct cfg_group *grp = &cfg->groups[g];
        size_t glen = esc_len(grp->name);

        size += HINT_GROUP + HINT_GROUP_LINES * glen;
        for (size_t s = 0; s < grp->nservers; s++) {
            size_t alen = esc_len(grp->servers[s].addr.text);
            size += HINT_SERVER + HINT_ERROR + HINT_SERVER_LINES * (glen + alen);
        }
    }
    /* a route: its name twice (JSON, metrics), its group's, the numbers */
    for (size_t r = 0; r < cfg->nroutes; r++)
        size += 256 + 2 * esc_len(cfg->routes[r].name) + esc_len(cfg->routes[r].upstream);
    return size;
}

ssize_t
status_render(enum status_kind kind, const struct config *cfg, const struct shm *shm, char *buf,
              size_t cap)
{
    struct buf_out o = {.buf = buf, .cap = cap, .len = 0, .full = false, .count = false};

    switch (kind) {
    case STATUS_HTML:
        render_html(&o, cfg, shm);
        break;
    case STATUS_JSON:
        render_json(&o, cfg, shm);
        break;
    case STATUS_METRICS:
        render_metrics(&o, cfg, shm);
        break;
    default:
        return -1;
    }
    if (o.full || o.len > (size_t)SSIZE_MAX)
        return -1;
    /* a NUL when there is room, for callers that print it; not counted, not required */
    if (o.len < cap)
        buf[o.len] = '\0';
    return (ssize_t)o.len;
}
