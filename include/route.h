/*
 * route: which [route NAME] serves a request, a step of the request path
 * of its own (proxy.c asks once, after resolving the target; the driver
 * does not branch on routes).
 *
 * Matching, in this order:
 *  1. the most specific host match: a route naming the request's host
 *     exactly, then the longest matching wildcard ("*.example.com" matches
 *     "a.example.com" and "a.b.example.com", not "example.com"), then
 *     routes without host;
 *  2. within that host level, the longest path prefix of the normalised
 *     path (route_normalize()); a level where no prefix matches gives way
 *     to the next, less specific one;
 *  3. the first route in the file breaks a tie;
 *  4. no match: the request goes to [proxy] upstream (route_match() says
 *     NULL).
 * Hosts compare case-insensitively, without the port and a trailing dot.
 * A path prefix is a prefix of bytes: "/api/" matches "/api/x" but not
 * "/api"; "/api" matches "/api", "/api/x" and "/apix".
 *
 * The table is built once per configuration (route_table_init()): exact
 * names sorted for a binary search, wildcards sorted by suffix, each
 * level's routes sorted by prefix length. Matching allocates nothing.
 */
#ifndef MP_ROUTE_H
#define MP_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"

/* A route in a level: its prefix with its length, so matching never measures it. */
struct route_entry {
    const char *path;
    size_t len;
    size_t index; /* in cfg->routes */
};

/* One host level: the routes it holds, longest prefix first, file order among equals. */
struct route_level {
    const char *key; /* the lower-case name, or the wildcard's suffix ".example.com" */
    size_t keylen;
    struct route_entry *routes;
    size_t nroutes;
};

struct route_table {
    const struct config *cfg;
    struct route_level *exact; /* sorted by key (memcmp, then length) */
    size_t nexact;
    struct route_level *wild; /* sorted by key (memcmp, then length) */
    size_t nwild;
    struct route_level any; /* routes without host */
};

/* Builds the table for <cfg>'s routes. Returns 0 or -1 (out of memory). */
int route_table_init(struct route_table *t, const struct config *cfg);
void route_table_free(struct route_table *t);

/* What route_match() found. */
struct route_result {
    const struct cfg_route *route; /* NULL: no route, [proxy] upstream */
    size_t index;                  /* in cfg->routes, when route != NULL */
    size_t path_len;               /* the normalised path's length, in the caller's buffer */
};

/*
 * Matches the request for host <host>[0..<hostlen>) (the Host header or
 * the absolute-form authority; may hold a port; empty: none) and the
 * origin-form <target>[0..<tlen>) (its query is ignored). The normalised
 * path is written to <norm> (<normcap> >= <tlen> + 1 always suffices: it
 * never grows). Returns 0, or -1 when the path cannot be normalised
 * (then no route matches: the caller sends the request to [proxy]
 * upstream, which sees it as sent).
 */
int route_match(const struct route_table *t, const char *host, size_t hostlen, const char *target,
                size_t tlen, char *norm, size_t normcap, struct route_result *out);

/*
 * Normalises the path <path>[0..<len>) (which starts with '/', no query)
 * into <out> (NUL-terminated): percent-encoded unreserved characters
 * (ALPHA DIGIT - . _ ~) are decoded and the hex digits of the other
 * escapes upper-cased (so "%2f" is "%2F", still not a separator); dot
 * segments are removed (RFC 3986 5.2.4, so "/api/../admin" is "/admin";
 * ".." never climbs above "/"); runs of '/' become one (as nginx's
 * merge_slashes). Returns the length, or -1 when <path> does not start
 * with '/' or <cap> is too small (<len> + 1 always suffices).
 */
ssize_t route_normalize(const char *path, size_t len, char *out, size_t cap);

/*
 * The target sent upstream for <route> with strip_prefix: the normalised
 * path <norm>[0..<nlen>) without the prefix (its trailing '/' kept, so
 * "/api/" on "/api/users" gives "/users"; a result not starting with '/'
 * gets one), then the query of <target>[0..<tlen>), into <out>. Returns
 * the length or -1 when <cap> is too small (<tlen> + 2 suffices).
 */
ssize_t route_strip(const struct cfg_route *route, const char *norm, size_t nlen,
                    const char *target, size_t tlen, char *out, size_t cap);

#endif
