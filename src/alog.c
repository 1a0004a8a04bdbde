/*
 * alog: access-log lines in the three formats. See alog.h.
 */
#include "alog.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

/* The user agent and referer are cut here: a line must stay a line, of bounded size. */
#define FIELD_MAX 512

struct out {
    char *p;
    size_t len, cap; /* cap excludes room kept for the line's end */
};

static void
put(struct out *o, const char *s, size_t n)
{
    if (o->len + n > o->cap)
        n = o->cap - o->len;
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void
puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void
putf(struct out *o, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        put(o, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* main and combined: \xHH for what is not printable ASCII, '"' and '\'. */
static void
put_clf(struct out *o, const char *s, size_t n)
{
    if (n > FIELD_MAX)
        n = FIELD_MAX;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        if (b < 0x20 || b > 0x7e || b == '"' || b == '\\')
            putf(o, "\\x%02x", b);
        else
            put(o, (const char *)&b, 1);
    }
}

/* A JSON string; NULL is null. */
static void
put_json(struct out *o, const char *s, size_t n)
{
    if (s == NULL) {
        puts_(o, "null");
        return;
    }
    if (n > FIELD_MAX)
        n = FIELD_MAX;
    put(o, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        if (b == '"' || b == '\\') {
            char esc[2] = {'\\', (char)b};
            put(o, esc, 2);
        } else if (b < 0x20 || b >= 0x7f) {
            putf(o, "\\u%04x", b);
        } else {
            put(o, (const char *)&b, 1);
        }
    }
    put(o, "\"", 1);
}

static void
put_json_str(struct out *o, const char *s)
{
    put_json(o, s, s != NULL ? strlen(s) : 0);
}

static void
put_json_slice(struct out *o, bool has, struct http_slice s)
{
    put_json(o, has ? s.p : NULL, s.len);
}

const char *
alog_time_iso8601(void)
{
    static char cached[40];
    static time_t cached_sec = -1;
    time_t now = time(NULL);

    if (now != cached_sec) {
        struct tm tm;
        char z[8];
        localtime_r(&now, &tm);
        strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
        strftime(z, sizeof(z), "%z", &tm); /* "+0100" -> "+01:00" */
        size_t n = strlen(cached);
        snprintf(cached + n, sizeof(cached) - n, "%.3s:%.2s", z, z + 3);
        cached_sec = now;
    }
    return cached;
}

static const char *
version_of(const struct conn_log_entry *e)
{
    return e->minor < 0 ? "" : e->minor == 0 ? " HTTP/1.0" : " HTTP/1.1";
}

size_t
alog_line(enum cfg_log_format fmt, const char *client, const struct conn_log_entry *e,
          int64_t now_us, char *out, size_t cap)
{
    /* two bytes kept: a cut json line still closes its object, every line its '\n' */
    struct out o = {.p = out, .len = 0, .cap = cap - 2};
    double rt = (double)(now_us - e->start_us) / 1e6;

    switch (fmt) {
    case CFG_LOG_COMBINED:
        putf(&o, "%s - - [%s] \"", client, log_time_local());
        puts_(&o, e->request); /* escaped already (conn.c, proxy.c's copy of a parsed line) */
        putf(&o, "%s\" %d %" PRIu64 " \"", version_of(e), e->status, e->bytes);
        if (e->has_referer)
            put_clf(&o, e->referer.p, e->referer.len);
        else
            put(&o, "-", 1);
        puts_(&o, "\" \"");
        if (e->has_ua)
            put_clf(&o, e->user_agent.p, e->user_agent.len);
        else
            put(&o, "-", 1);
        put(&o, "\"", 1);
        break;
    case CFG_LOG_JSON:
        puts_(&o, "{\"time\":");
        put_json_str(&o, alog_time_iso8601());
        puts_(&o, ",\"client\":");
        put_json_str(&o, client);
        puts_(&o, ",\"method\":");
        put_json_slice(&o, e->method.len > 0, e->method);
        puts_(&o, ",\"target\":");
        put_json_slice(&o, e->target.len > 0, e->target);
        puts_(&o, ",\"protocol\":");
        put_json_str(&o, e->minor < 0 ? NULL : e->minor == 0 ? "HTTP/1.0" : "HTTP/1.1");
        puts_(&o, ",\"request\":");
        put_json_str(&o, e->request);
        putf(&o, ",\"status\":%d,\"bytes\":%" PRIu64 ",\"route\":", e->status, e->bytes);
        put_json_str(&o, e->route);
        puts_(&o, ",\"upstream\":");
        put_json_str(&o, e->upstream);
        if (e->upstream_status != 0)
            putf(&o, ",\"upstream_status\":%d", e->upstream_status);
        else
            puts_(&o, ",\"upstream_status\":null");
        putf(&o, ",\"request_time\":%.3f", rt);
        if (e->upstream_us >= 0)
            putf(&o, ",\"upstream_time\":%.3f", (double)e->upstream_us / 1e6);
        else
            puts_(&o, ",\"upstream_time\":null");
        puts_(&o, ",\"request_id\":");
        put_json_str(&o, e->request_id);
        puts_(&o, ",\"user_agent\":");
        put_json_slice(&o, e->has_ua, e->user_agent);
        puts_(&o, ",\"referer\":");
        put_json_slice(&o, e->has_referer, e->referer);
        puts_(&o, ",\"tls_version\":");
        put_json_str(&o, e->tls_version);
        puts_(&o, ",\"tls_cipher\":");
        put_json_str(&o, e->tls_cipher);
        puts_(&o, ",\"sni\":");
        put_json_str(&o, e->tls_version != NULL ? e->sni : NULL);
        if (e->tls_version != NULL)
            putf(&o, ",\"tls_resumed\":%s", e->tls_resumed ? "true" : "false");
        else
            puts_(&o, ",\"tls_resumed\":null");
        break;
    case CFG_LOG_MAIN:
    default:
        putf(&o, "%s - - [%s] \"", client, log_time_local());
        puts_(&o, e->request);
        putf(&o, "%s\" %d %" PRIu64 " upstream=%s ustatus=%d rt=%.3f urt=", version_of(e),
             e->status, e->bytes, e->upstream != NULL ? e->upstream : "-", e->upstream_status, rt);
        if (e->upstream_us >= 0)
            putf(&o, "%.3f", (double)e->upstream_us / 1e6);
        else
            put(&o, "-", 1);
        putf(&o, " route=%s rid=", e->route != NULL ? e->route : "-");
        put_clf(&o, e->request_id != NULL ? e->request_id : "-",
                e->request_id != NULL ? strlen(e->request_id) : 1);
        if (e->tls_version != NULL) {
            putf(&o, " tls=%s cipher=%s sni=", e->tls_version,
                 e->tls_cipher != NULL ? e->tls_cipher : "-");
            put_clf(&o, e->sni != NULL ? e->sni : "-", e->sni != NULL ? strlen(e->sni) : 1);
            putf(&o, " resumed=%d", e->tls_resumed ? 1 : 0);
        }
        break;
    }
    if (fmt == CFG_LOG_JSON) {
        if (o.len == o.cap) {
            /* cut: end the object validly, losing the tail (a json string may be open) */
            o.len = 0;
            puts_(&o, "{\"time\":");
            put_json_str(&o, alog_time_iso8601());
            putf(&o, ",\"status\":%d,\"truncated\":true", e->status);
        }
        out[o.len++] = '}';
    }
    out[o.len++] = '\n';
    return o.len;
}
