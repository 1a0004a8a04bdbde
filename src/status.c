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
    char error[SHM_ERR_MAX];
};

struct hdr_view {
    int64_t uptime_s;
    int64_t started;
    uint32_t generation;
    uint32_t nworkers;
    uint32_t ngroups;
    int64_t now_ms; /* CLOCK_MONOTONIC, as clock_ms() */
    unsigned by_state[SHM_W_NSTATES];
    uint64_t worker_requests, worker_connections;
};

static const char *const health_names[] = {"unknown", "up", "down"};
static const char *const breaker_names[] = {"closed", "open", "half_open"};
static const char *const worker_names[] = {"free",     "idle",       "reading",
                                           "proxying", "keep-alive", "tunnel"};
static const char *const class_names[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

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
    }
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
    shm_read_error(srv, v->error, sizeof(v->error));
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

static void
render_html(struct buf_out *o, const struct config *cfg, const struct shm *shm)
{
    struct hdr_view h;
    struct srv_view v;
    size_t ngroups = ngroups_of(cfg, shm);

    read_header(shm, &h);
    buf_out_str(o, html_head);
    buf_out_str(o, "<header><h1>miniproxyd<small>");
    out_esc(o, MP_VERSION, ESC_HTML);
    buf_out_str(o, "</small></h1><div class=\"facts\"><span>uptime <b>");
    html_uptime(o, h.uptime_s);
    out_fmt(o, "</b></span><span>generation <b>%" PRIu32 "</b></span>", h.generation);
    out_fmt(o, "<span>workers <b>%" PRIu32 "</b></span>", h.nworkers);
    buf_out_str(o, "<span>requests <b>");
    html_count(o, h.worker_requests);
    buf_out_str(o, "</b></span>");
    buf_out_str(o, "</div></header>\n");

    for (size_t g = 0; g < ngroups; g++) {
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
        out_fmt(o, "<span class=\"sub right\"><b>%zu</b> of %zu up</span></h2>\n", up, n);
        buf_out_str(o, "<table><thead><tr><th>Server</th><th class=\"n\">Weight</th>"
                       "<th>Health</th><th>Last check</th><th class=\"n\">Probe</th>"
                       "<th>Breaker</th><th class=\"n\">Active</th><th class=\"n\">Requests</th>"
                       "<th class=\"n\">Failures</th><th>Responses</th>"
                       "<th class=\"n\">Avg latency</th></tr></thead><tbody>\n");
        for (size_t s = 0; s < n; s++) {
            read_server(cfg, shm, &h, g, s, &v);
            html_server(o, grp, &v);
        }
        buf_out_str(o, "</tbody></table></section>\n");
    }

    out_fmt(o, "<section><h2>Workers <span class=\"sub\">%" PRIu32 " slots &middot; ", h.nworkers);
    html_count(o, h.worker_connections);
    out_fmt(o,
            " connections &middot; pool: %" PRIu64 " forked, %" PRIu64 " retired, %" PRIu64
            " nudges &middot; %" PRIu64
            " idle keep-alive closed for waiting clients &middot; %" PRIu64
            " slow clients cut &middot; %" PRIu64 " refused per address",
            (uint64_t)atomic_load(&shm->spawned), (uint64_t)atomic_load(&shm->retired),
            (uint64_t)atomic_load(&shm->nudges), (uint64_t)atomic_load(&shm->evictions),
            (uint64_t)atomic_load(&shm->slow_rejects), (uint64_t)atomic_load(&shm->ip_rejects));
    buf_out_str(o, "</span></h2>\n<div class=\"grid\">");
    for (uint32_t i = 0; i < h.nworkers; i++) {
        const struct shm_worker *w = &shm->workers[i];
        const char *st = name_of(worker_names, NELEM(worker_names), atomic_load(&w->state));
        out_fmt(o,
                "<div class=\"cell w-%s\" title=\"slot %" PRIu32 " pid %d: %s\">%" PRIu32 "</div>",
                st, i, atomic_load(&w->pid), st, i);
    }
    buf_out_str(o, "</div>\n<div class=\"legend\">");
    for (size_t st = 0; st < NELEM(worker_names); st++)
        out_fmt(o, "<span class=\"pill\"><span class=\"dot w-%s\"></span>%s <b>%u</b></span>",
                worker_names[st], worker_names[st], h.by_state[st]);
    buf_out_str(o, "</div>\n");
    /* the per-slot table: open when it is short enough to glance at */
    buf_out_str(o, h.nworkers <= 16 ? "<details open>" : "<details>");
    buf_out_str(o, "<summary>scoreboard</summary><table class=\"sb\"><thead><tr>"
                   "<th class=\"n\">Slot</th><th class=\"n\">PID</th><th>State</th><th "
                   "class=\"n\">Requests</th>"
                   "<th class=\"n\">Connections</th></tr></thead><tbody>\n");
    for (uint32_t i = 0; i < h.nworkers; i++) {
        const struct shm_worker *w = &shm->workers[i];
        const char *st = name_of(worker_names, NELEM(worker_names), atomic_load(&w->state));
        int pid = atomic_load(&w->pid);
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

static void
render_json(struct buf_out *o, const struct config *cfg, const struct shm *shm)
{
    struct hdr_view h;
    struct srv_view v;
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
    buf_out_str(o, ",\"worker_states\":{");
    for (size_t st = 0; st < NELEM(worker_names); st++)
        out_fmt(o, "%s\"%s\":%u", st ? "," : "", worker_names[st], h.by_state[st]);
    buf_out_str(o, "},\"workers\":[");
    for (uint32_t i = 0; i < h.nworkers; i++) {
        const struct shm_worker *w = &shm->workers[i];
        out_fmt(o, "%s{\"slot\":%" PRIu32 ",\"pid\":%d,\"state\":\"%s\"", i ? "," : "", i,
                atomic_load(&w->pid),
                name_of(worker_names, NELEM(worker_names), atomic_load(&w->state)));
        out_fmt(o, ",\"requests\":%" PRIu64 ",\"connections\":%" PRIu64 "}",
                (uint64_t)atomic_load(&w->requests), (uint64_t)atomic_load(&w->connections));
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
        for (size_t s = 0; s < n; s++) {
            read_server(cfg, shm, &h, g, s, &v);
            buf_out_str(o, s ? ",{\"address\":" : "{\"address\":");
            json_str(o, v.addr);
            out_fmt(o, ",\"weight\":%u,\"backup\":%s,\"health\":\"%s\",\"last_error\":", v.weight,
                    v.backup ? "true" : "false",
                    name_of(health_names, NELEM(health_names), v.health));
            json_str(o, v.error);
            out_fmt(o, ",\"checks\":%" PRIu64 ",\"checks_ok\":%u,\"checks_failed\":%u", v.checks,
                    v.checks_ok, v.checks_failed);
            /* null, not 0: "never checked" is not "just checked" */
            if (v.last_check_ms > 0)
                out_fmt(o, ",\"last_check_ms_ago\":%" PRId64, v.age_ms);
            else
                buf_out_str(o, ",\"last_check_ms_ago\":null");
            out_fmt(o, ",\"probe_latency_us\":%" PRId64, v.probe_us);
            out_fmt(o, ",\"breaker\":\"%s\",\"breaker_opens\":%" PRIu64,
                    name_of(breaker_names, NELEM(breaker_names), v.breaker), v.breaker_opens);
            out_fmt(o, ",\"active\":%" PRId64 ",\"requests\":%" PRIu64 ",\"failures\":%" PRIu64,
                    v.active, v.requests, v.failures);
            buf_out_str(o, ",\"responses\":{");
            for (size_t i = 0; i < 5; i++)
                out_fmt(o, "%s\"%s\":%" PRIu64, i ? "," : "", class_names[i], v.responses[i]);
            out_fmt(o, "},\"latency_us_sum\":%" PRIu64 ",\"avg_latency_us\":%" PRIu64 "}",
                    v.latency_us_sum, v.avg_latency_us);
        }
        buf_out_str(o, "]}");
    }
    buf_out_str(o, "]}\n");
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
    }
}

static void
render_metrics(struct buf_out *o, const struct config *cfg, const struct shm *shm)
{
    struct hdr_view h;
    struct srv_view v;
    size_t ngroups = ngroups_of(cfg, shm);

    read_header(shm, &h);
    prom_family(o, "miniproxyd_up", "gauge", "1 while the proxy answers.");
    buf_out_str(o, "miniproxyd_up 1\n");
    prom_family(o, "miniproxyd_build_info", "gauge", "Version of the running proxy.");
    buf_out_str(o, "miniproxyd_build_info{version=\"");
    out_esc(o, MP_VERSION, ESC_LABEL);
    buf_out_str(o, "\"} 1\n");
    prom_family(o, "miniproxyd_start_time_seconds", "gauge",
                "Unix time the master process started.");
    out_fmt(o, "miniproxyd_start_time_seconds %" PRId64 "\n", h.started);
    prom_family(o, "miniproxyd_uptime_seconds", "gauge", "Seconds since the master started.");
    out_fmt(o, "miniproxyd_uptime_seconds %" PRId64 "\n", h.uptime_s);
    prom_family(o, "miniproxyd_config_generation", "gauge",
                "Configuration generation (1 at start, +1 per successful reload).");
    out_fmt(o, "miniproxyd_config_generation %" PRIu32 "\n", h.generation);
    prom_family(o, "miniproxyd_workers", "gauge", "Worker slots by state.");
    for (size_t st = 0; st < NELEM(worker_names); st++)
        out_fmt(o, "miniproxyd_workers{state=\"%s\"} %u\n", worker_names[st], h.by_state[st]);
    prom_family(o, "miniproxyd_worker_requests_total", "counter",
                "Requests served by the current workers.");
    out_fmt(o, "miniproxyd_worker_requests_total %" PRIu64 "\n", h.worker_requests);
    prom_family(o, "miniproxyd_worker_connections_total", "counter",
                "Client connections accepted by the current workers.");
    out_fmt(o, "miniproxyd_worker_connections_total %" PRIu64 "\n", h.worker_connections);
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
    };
    for (size_t i = 0; i < NELEM(pool); i++) {
        const atomic_uint_fast64_t *ctr =
            (const atomic_uint_fast64_t *)((const char *)shm + pool[i].off);
        prom_family(o, pool[i].name, "counter", pool[i].help);
        out_fmt(o, "%s %" PRIu64 "\n", pool[i].name, (uint64_t)atomic_load(ctr));
    }

    prom_family(o, "miniproxyd_upstream_usable_servers", "gauge",
                "Servers of the group that can take requests now (up, breaker closed); "
                "0: every request to it gets 503.");
    for (size_t g = 0; g < ngroups; g++) {
        buf_out_str(o, "miniproxyd_upstream_usable_servers{group=\"");
        out_esc(o, cfg->groups[g].name, ESC_LABEL);
        out_fmt(o, "\"} %zu\n", usable_servers(cfg, shm, g));
    }

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
}

/* ---- the API ---------------------------------------------------------------------------- */

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
#define HINT_FIXED 20480     /* page head and CSS, page header, HELP/TYPE of every family */
#define HINT_WORKER 768      /* HTML grid cell + table row; a JSON object */
#define HINT_GROUP 2048      /* section head and table head */
#define HINT_SERVER 2048     /* one server's markup and numbers (metrics: 24 lines) */
#define HINT_SERVER_LINES 26 /* times the group name and the address appear per server */
#define HINT_ERROR (SHM_ERR_MAX * 6) /* last_error, each byte escaped as \u00XX */

size_t
status_size_hint(const struct config *cfg)
{
    /* the table holds at most CFG_MAX_WORKERS slots whatever cfg says */
    size_t workers = cfg->worker_slots < CFG_MAX_WORKERS ? cfg->worker_slots : CFG_MAX_WORKERS;
    size_t size = HINT_FIXED + workers * HINT_WORKER;

    for (size_t g = 0; g < cfg->ngroups; g++) {
        const struct cfg_group *grp = &cfg->groups[g];
        size_t glen = esc_len(grp->name);

        size += HINT_GROUP + glen;
        for (size_t s = 0; s < grp->nservers; s++) {
            size_t alen = esc_len(grp->servers[s].addr.text);
            size += HINT_SERVER + HINT_ERROR + HINT_SERVER_LINES * (glen + alen);
        }
    }
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
