/*
 * route: which [route NAME] serves a request. See route.h for the rules.
 */
#include "route.h"

#include <stdlib.h>
#include <string.h>

/* ---- normalisation ---------------------------------------------------- */

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool
unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

/*
 * One pass over the input, writing segments as they come: a segment is
 * decoded into <out> after its '/', then dropped when it is "." or "..",
 * and ".." also drops the segment before it. Decoding first means "%2e%2e"
 * is "..": what an application would make of it.
 */
ssize_t
route_normalize(const char *path, size_t len, char *out, size_t cap)
{
    size_t i = 0, o = 0;

    if (len == 0 || path[0] != '/' || cap < len + 1)
        return -1;
    while (i < len) {
        /* at a '/': skip the run, then decode the segment after it */
        while (i < len && path[i] == '/')
            i++;
        size_t seg = o;
        out[o++] = '/';
        while (i < len && path[i] != '/') {
            int hi, lo;
            if (path[i] == '%' && i + 2 < len && (hi = hexval(path[i + 1])) >= 0 &&
                (lo = hexval(path[i + 2])) >= 0) {
                unsigned char c = (unsigned char)(hi * 16 + lo);
                if (unreserved(c)) {
                    out[o++] = (char)c;
                } else {
                    static const char hex[] = "0123456789ABCDEF";
                    out[o++] = '%';
                    out[o++] = hex[hi];
                    out[o++] = hex[lo];
                }
                i += 3;
            } else {
                out[o++] = path[i++];
            }
        }
        size_t slen = o - seg - 1;
        if (slen == 1 && out[seg + 1] == '.') {
            o = seg; /* "." */
        } else if (slen == 2 && out[seg + 1] == '.' && out[seg + 2] == '.') {
            o = seg; /* "..": and the segment before, if any */
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
        } else {
            continue;
        }
        /* a dropped last segment leaves its directory: "/a/." is "/a/" */
        if (i >= len) {
            out[o++] = '/';
        }
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    return (ssize_t)o;
}

ssize_t
route_strip(const struct cfg_route *route, const char *norm, size_t nlen, const char *target,
            size_t tlen, char *out, size_t cap)
{
    size_t plen = strlen(route->path);
    const char *q = memchr(target, '?', tlen);
    size_t qlen = q != NULL ? tlen - (size_t)(q - target) : 0;
    size_t o = 0;

    if (plen > 0 && route->path[plen - 1] == '/')
        plen--; /* keep the prefix's last '/' as the remainder's first */
    if (plen > nlen)
        plen = nlen;
    const char *rest = norm + plen;
    size_t rlen = nlen - plen;
    if (cap < rlen + qlen + 2)
        return -1;
    if (rlen == 0 || rest[0] != '/')
        out[o++] = '/';
    memcpy(out + o, rest, rlen);
    o += rlen;
    if (qlen > 0)
        memcpy(out + o, q, qlen);
    o += qlen;
    out[o] = '\0';
    return (ssize_t)o;
}

/* ---- the table -------------------------------------------------------- */

static int
key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int
level_cmp(const void *a, const void *b)
{
    const struct route_level *x = a, *y = b;
    return key_cmp(x->key, x->keylen, y->key, y->keylen);
}

/* For qsort of a level's routes: longest prefix first, then file order (a stable order). */
static int
route_cmp(const void *a, const void *b)
{
    const struct route_entry *x = a, *y = b;

    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index ? 1 : 0;
}

/* Finds or appends the level of <key> in <*lv>. NULL when out of memory. */
static struct route_level *
level_of(struct route_level **lv, size_t *n, const char *key, size_t keylen)
{
    for (size_t i = 0; i < *n; i++)
        if (key_cmp((*lv)[i].key, (*lv)[i].keylen, key, keylen) == 0)
            return &(*lv)[i];
    struct route_level *p = realloc(*lv, (*n + 1) * sizeof(**lv));
    if (p == NULL)
        return NULL;
    *lv = p;
    p[*n] = (struct route_level){.key = key, .keylen = keylen};
    return &p[(*n)++];
}

static int
level_add(struct route_level *l, const struct config *cfg, size_t route)
{
    struct route_entry *p = realloc(l->routes, (l->nroutes + 1) * sizeof(*p));
    if (p == NULL)
        return -1;
    l->routes = p;
    p[l->nroutes++] =
        (struct route_entry){cfg->routes[route].path, strlen(cfg->routes[route].path), route};
    return 0;
}

static void
levels_sort(struct route_level *lv, size_t n)
{
    /* qsort() must not be given NULL, even for nothing to sort */
    for (size_t i = 0; i < n; i++)
        if (lv[i].nroutes > 1)
            qsort(lv[i].routes, lv[i].nroutes, sizeof(lv[i].routes[0]), route_cmp);
    if (n > 1)
        qsort(lv, n, sizeof(*lv), level_cmp);
}

int
route_table_init(struct route_table *t, const struct config *cfg)
{
    memset(t, 0, sizeof(*t));
    t->cfg = cfg;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct cfg_route *r = &cfg->routes[i];
        struct route_level *l;

        if (r->nhosts == 0 && level_add(&t->any, cfg, i) == -1)
            goto fail;
        for (size_t h = 0; h < r->nhosts; h++) {
            const char *name = r->hosts[h];
            if (strncmp(name, "*.", 2) == 0)
                l = level_of(&t->wild, &t->nwild, name + 1, strlen(name + 1)); /* ".example.com" */
            else
                l = level_of(&t->exact, &t->nexact, name, strlen(name));
            if (l == NULL || level_add(l, cfg, i) == -1)
                goto fail;
        }
    }
    levels_sort(t->exact, t->nexact);
    levels_sort(t->wild, t->nwild);
    levels_sort(&t->any, 1);
    return 0;
fail:
    route_table_free(t);
    return -1;
}

void
route_table_free(struct route_table *t)
{
    for (size_t i = 0; i < t->nexact; i++)
        free(t->exact[i].routes);
    for (size_t i = 0; i < t->nwild; i++)
        free(t->wild[i].routes);
    free(t->exact);
    free(t->wild);
    free(t->any.routes);
    memset(t, 0, sizeof(*t));
}

static const struct route_level *
level_find(const struct route_level *lv, size_t n, const char *key, size_t keylen)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = key_cmp(lv[mid].key, lv[mid].keylen, key, keylen);
        if (c == 0)
            return &lv[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The first route of level <l> whose prefix starts <path>: the longest, then the first. */
static bool
level_match(const struct config *cfg, const struct route_level *l, const char *path, size_t plen,
            struct route_result *out)
{
    if (l == NULL)
        return false;
    for (size_t i = 0; i < l->nroutes; i++) {
        const struct route_entry *e = &l->routes[i];
        if (e->len <= plen && memcmp(e->path, path, e->len) == 0) {
            out->route = &cfg->routes[e->index];
            out->index = e->index;
            return true;
        }
    }
    return false;
}

int
route_match(const struct route_table *t, const char *host, size_t hostlen, const char *target,
            size_t tlen, char *norm, size_t normcap, struct route_result *out)
{
    const struct config *cfg = t->cfg;
    char h[256];
    size_t n = 0;

    *out = (struct route_result){0};
    if (cfg->nroutes == 0)
        return 0;
    size_t plen = tlen;
    const char *q = memchr(target, '?', tlen);
    if (q != NULL)
        plen = (size_t)(q - target);
    const char *hash = memchr(target, '#', plen);
    if (hash != NULL)
        plen = (size_t)(hash - target);
    ssize_t nl = route_normalize(target, plen, norm, normcap);
    if (nl < 0)
        return -1;
    out->path_len = (size_t)nl;

    /* the host: lower case, no port, no trailing dot; an IPv6 literal keeps its brackets */
    if (hostlen > 0) {
        const char *end = host + hostlen;
        if (host[0] == '[') {
            const char *rb = memchr(host, ']', hostlen);
            if (rb != NULL)
                end = rb + 1;
        } else {
            const char *colon = memchr(host, ':', hostlen);
            if (colon != NULL)
                end = colon;
        }
        for (const char *p = host; p < end && n < sizeof(h); p++)
            h[n++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
        if (n > 0 && h[n - 1] == '.')
            n--;
    }
    if (n > 0 && n < sizeof(h)) {
        if (level_match(cfg, level_find(t->exact, t->nexact, h, n), norm, out->path_len, out))
            return 0;
        /* wildcards, longest suffix first: ".b.example.com", then ".example.com", ... */
        for (size_t i = 1; i < n; i++) {
            if (h[i] != '.')
                continue;
            if (level_match(cfg, level_find(t->wild, t->nwild, h + i, n - i), norm, out->path_len,
                            out))
                return 0;
        }
    }
    level_match(cfg, &t->any, norm, out->path_len, out);
    return 0;
}
