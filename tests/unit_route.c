/*
 * unit_route: [route NAME] sections (errors, the reload diff) and route
 * matching (route.c): hosts, wildcards, prefixes, normalisation, ties; and
 * the other pure parts of issue 12: the header rules of rewrite.c, the
 * real client address (realip.c), the access-log formats (alog.c).
 */
#include "alog.h"
#include "config.h"
#include "http.h"
#include "realip.h"
#include "rewrite.h"
#include "route.h"
#include "testlib.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define P "[proxy]\nlisten = 127.0.0.1:8080\nupstream = app\n"
#define U                                                                                         \
    "[upstream app]\nserver = 127.0.0.1:3001\n[upstream api]\nserver = 127.0.0.1:3002\n"          \
    "[upstream assets]\nserver = 127.0.0.1:3003\n"

static char err[512];

static struct config *
load(const char *text)
{
    return cfg_load_string(text, "t.ini", err, sizeof(err));
}

/* ---- normalisation ---------------------------------------------------- */

static const struct {
    const char *in, *out;
} norm_cases[] = {
    {"/", "/"},
    {"/api/users", "/api/users"},
    {"/api/", "/api/"},
    {"/api/../admin", "/admin"},
    {"/api/./x", "/api/x"},
    {"/api/.", "/api/"},
    {"/api/..", "/"},
    {"/..", "/"},
    {"/../../etc", "/etc"},
    {"/a/b/../../c", "/c"},
    {"//api//x", "/api/x"},
    {"/api%2Fx", "/api%2Fx"},        /* an encoded '/' is not a separator */
    {"/api%2fx", "/api%2Fx"},        /* ... and its hex is upper-cased */
    {"/%61pi/x", "/api/x"},          /* unreserved: decoded */
    {"/api/%2e%2e/admin", "/admin"}, /* "%2e%2e" is ".." once decoded */
    {"/api/%2E./admin", "/admin"},
    {"/a%20b", "/a%20b"}, /* reserved or other: kept encoded */
    {"/a%zz", "/a%zz"},   /* not an escape: kept as it is */
    {"/a%2", "/a%2"},
    {"/a..b/c", "/a..b/c"},
    {"/.hidden", "/.hidden"},
    {"/a/...", "/a/..."},
};

START_TEST(test_normalize)
{
    char out[256];
    const char *in = norm_cases[_i].in;
    ssize_t n = route_normalize(in, strlen(in), out, strlen(in) + 1);

    ck_assert_msg(n >= 0, "%s", in);
    ck_assert_str_eq(out, norm_cases[_i].out);
    ck_assert_uint_eq((size_t)n, strlen(norm_cases[_i].out));
}
END_TEST

START_TEST(test_normalize_errors)
{
    char out[16];

    ck_assert_int_eq(route_normalize("api", 3, out, sizeof(out)), -1);
    ck_assert_int_eq(route_normalize("", 0, out, sizeof(out)), -1);
    ck_assert_int_eq(route_normalize("/abc", 4, out, 4), -1); /* no room for the NUL */
}
END_TEST

/* ---- matching --------------------------------------------------------- */

/* Routes for the matching table; "-" is the default group. */
static const char routes_ini[] =
    P U "[route api]\nhost = api.example.com *.api.example.com\npath = /api/\nupstream = api\n"
        "[route static]\npath = /static/\nupstream = assets\n"
        "[route static_img]\npath = /static/img/\nupstream = api\n"
        "[route www]\nhost = www.example.com\nupstream = assets\n"
        "[route wild]\nhost = *.example.com\nupstream = api\n"
        "[route deep]\nhost = *.b.example.com\npath = /x\nupstream = assets\n"
        "[route tie1]\nhost = tie.example.com\npath = /t/\nupstream = api\n"
        "[route tie2]\nhost = tie.example.com other.example.com\npath = /t/\nupstream = assets\n"
        "[route v6]\nhost = [::1]\npath = /six\nupstream = api\n";

static const struct {
    const char *host, *target, *route;
} match_cases[] = {
    /* exact host, then its path */
    {"api.example.com", "/api/users", "api"},
    {"API.Example.COM", "/api/users", "api"},      /* no case */
    {"api.example.com:8080", "/api/users", "api"}, /* no port */
    {"api.example.com.", "/api/users", "api"},     /* no trailing dot */
    {"api.example.com", "/api", "wild"},           /* "/api/" is not a prefix of "/api" */
    /* the exact level has no match for /other: the wildcard level is next */
    {"api.example.com", "/other", "wild"},
    {"v1.api.example.com", "/api/x", "api"}, /* the longer wildcard */
    {"v1.api.example.com", "/y", "wild"},
    {"example.com", "/api/x", "-"},              /* *.example.com is not example.com */
    {"www.example.com", "/static/a.css", "www"}, /* a host level comes before the path */
    {"a.b.example.com", "/x/1", "deep"},         /* *.b.example.com beats *.example.com */
    {"a.b.example.com", "/y", "wild"},
    /* no host match: routes without host, longest prefix */
    {"other.org", "/static/a.css", "static"},
    {"other.org", "/static/img/a.png", "static_img"},
    {"other.org", "/static", "-"},
    {"", "/static/x", "static"}, /* no Host at all */
    {"other.org", "/", "-"},
    /* normalised before matching */
    {"api.example.com", "/api/../admin", "wild"},
    {"other.org", "/api/../static/x", "static"},
    {"other.org", "/static/../admin", "-"},
    {"other.org", "/%73tatic/x", "static"},
    {"other.org", "//static//x", "static"},
    {"other.org", "/static%2Fx", "-"},
    {"other.org", "/static/x?a=/b", "static"},
    {"other.org", "/x?/static/", "-"},
    /* ties: the first route in the file */
    {"tie.example.com", "/t/1", "tie1"},
    {"other.example.com", "/t/1", "tie2"},
    /* IPv6 literal host */
    {"[::1]:8080", "/six", "v6"},
};

START_TEST(test_match)
{
    struct config *cfg = load(routes_ini);
    struct route_table t;
    struct route_result r;
    char norm[256];
    const char *h = match_cases[_i].host, *tg = match_cases[_i].target;

    ck_assert_msg(cfg != NULL, "%s", err);
    ck_assert_int_eq(route_table_init(&t, cfg), 0);
    ck_assert_int_eq(route_match(&t, h, strlen(h), tg, strlen(tg), norm, sizeof(norm), &r), 0);
    ck_assert_msg(strcmp(r.route != NULL ? r.route->name : "-", match_cases[_i].route) == 0,
                  "host \"%s\" target \"%s\": route %s, want %s", h, tg,
                  r.route != NULL ? r.route->name : "-", match_cases[_i].route);
    if (r.route != NULL)
        ck_assert_ptr_eq(r.route, &cfg->routes[r.index]);
    route_table_free(&t);
    cfg_free(cfg);
}
END_TEST

START_TEST(test_no_routes)
{
    struct config *cfg = load(P U);
    struct route_table t;
    struct route_result r;
    char norm[64];

    ck_assert_msg(cfg != NULL, "%s", err);
    ck_assert_int_eq(route_table_init(&t, cfg), 0);
    ck_assert_int_eq(route_match(&t, "a", 1, "/x", 2, norm, sizeof(norm), &r), 0);
    ck_assert_ptr_null(r.route);
    route_table_free(&t);
    cfg_free(cfg);
}
END_TEST

static const struct {
    const char *path, *target, *want;
} strip_cases[] = {
    {"/api/", "/api/users", "/users"},
    {"/api/", "/api/users?q=1", "/users?q=1"},
    {"/api/", "/api/", "/"},
    {"/api", "/api", "/"},
    {"/api", "/api/x", "/x"},
    {"/api", "/apix", "/x"},
    {"/", "/a/b", "/a/b"},
    {"/api/", "/api/../api/x", "/x"}, /* from the normalised path */
};

START_TEST(test_strip)
{
    char text[512], norm[256], out[256];
    struct config *cfg;
    struct route_table t;
    struct route_result r;
    const char *tg = strip_cases[_i].target;

    snprintf(text, sizeof(text), P U "[route r]\npath = %s\nupstream = api\nstrip_prefix = yes\n",
             strip_cases[_i].path);
    cfg = load(text);
    ck_assert_msg(cfg != NULL, "%s", err);
    ck_assert_int_eq(route_table_init(&t, cfg), 0);
    ck_assert_int_eq(route_match(&t, "h", 1, tg, strlen(tg), norm, sizeof(norm), &r), 0);
    ck_assert_ptr_nonnull(r.route);
    ck_assert_int_ge(route_strip(r.route, norm, r.path_len, tg, strlen(tg), out, sizeof(out)), 0);
    ck_assert_str_eq(out, strip_cases[_i].want);
    route_table_free(&t);
    cfg_free(cfg);
}
END_TEST

/* ---- configuration ---------------------------------------------------- */

/* The reference configuration, as written. */
static const char ref_ini[] =
    "[proxy]\n"
    "listen = 127.0.0.1:8080\n"
    "upstream = app                     ; the group for requests that no route matches (as "
    "today)\n"
    "server_timing = off                ; on: responses carry Server-Timing (below)\n"
    "request_id = on                    ; X-Request-Id: kept if the client sent a valid one, "
    "else made\n"
    "trusted_proxies =                  ; CIDRs (e.g. 10.0.0.0/8 ::1/128) whose "
    "X-Forwarded-For is believed\n"
    "access_log_format = main           ; main (today's line) | combined | json\n"
    "\n" U "\n"
    "[route api]\n"
    "host = api.example.com *.api.example.com   ; names, exact or \"*.\" wildcard; absent: any "
    "host\n"
    "path = /api/                       ; a path prefix; absent: /\n"
    "upstream = api\n"
    "strip_prefix = no                  ; yes: /api/users reaches the upstream as /users\n"
    "request_header = X-Env: prod       ; repeatable: set (replace) a header on the way to the "
    "upstream\n"
    "response_header = Cache-Control: no-store   ; repeatable: set (replace) a header on the "
    "way back\n"
    "hide_response_header = X-Powered-By         ; repeatable: remove a header on the way "
    "back\n"
    "\n"
    "[route static]\n"
    "path = /static/\n"
    "upstream = assets\n";

START_TEST(test_reference)
{
    struct config *cfg = load(ref_ini);

    ck_assert_msg(cfg != NULL, "%s", err);
    ck_assert(cfg->request_id);
    ck_assert(!cfg->server_timing);
    ck_assert_uint_eq(cfg->ntrusted_proxies, 0);
    ck_assert_int_eq(cfg->access_log_format, CFG_LOG_MAIN);
    ck_assert_uint_eq(cfg->nroutes, 2);
    const struct cfg_route *a = &cfg->routes[0], *s = &cfg->routes[1];
    ck_assert_str_eq(a->name, "api");
    ck_assert_uint_eq(a->nhosts, 2);
    ck_assert_str_eq(a->hosts[0], "api.example.com");
    ck_assert_str_eq(a->hosts[1], "*.api.example.com");
    ck_assert_str_eq(a->path, "/api/");
    ck_assert_str_eq(cfg->groups[a->group].name, "api");
    ck_assert(!a->strip_prefix);
    ck_assert_uint_eq(a->nrequest_headers, 1);
    ck_assert_str_eq(a->request_headers[0].name, "X-Env");
    ck_assert_str_eq(a->request_headers[0].value, "prod");
    ck_assert_uint_eq(a->nresponse_headers, 1);
    ck_assert_str_eq(a->response_headers[0].name, "Cache-Control");
    ck_assert_str_eq(a->response_headers[0].value, "no-store");
    ck_assert_uint_eq(a->nhide_response_headers, 1);
    ck_assert_str_eq(a->hide_response_headers[0], "X-Powered-By");
    ck_assert_str_eq(s->name, "static");
    ck_assert_uint_eq(s->nhosts, 0);
    ck_assert_str_eq(s->path, "/static/");
    ck_assert_str_eq(cfg->groups[s->group].name, "assets");
    cfg_free(cfg);
}
END_TEST

START_TEST(test_trusted)
{
    struct config *cfg =
        load(P "trusted_proxies = 10.0.0.0/8 ::1/128 192.0.2.7 2001:db8::/32\n" U);

    ck_assert_msg(cfg != NULL, "%s", err);
    ck_assert_uint_eq(cfg->ntrusted_proxies, 4);
    ck_assert_uint_eq(cfg->trusted_proxies[0].bits, 8);
    ck_assert_uint_eq(cfg->trusted_proxies[1].bits, 128);
    ck_assert_uint_eq(cfg->trusted_proxies[2].bits, 32);
    ck_assert_uint_eq(cfg->trusted_proxies[3].bits, 32);
    cfg_free(cfg);
}
END_TEST

#define R "[route r]\nupstream = api\n"

static const struct {
    const char *text;
    const char *want; /* a substring of the message */
} error_cases[] = {
    {P U "[route]\n", "t.ini:10: [route]: missing route name"},
    {P U "[route a/b]\n", "t.ini:10: [route a/b]: bad route name"},
    {P U "[route r]\npath = /x\n", "t.ini:10: [route r] upstream: missing"},
    {P U "[route r]\nupstream = nope\n",
     "t.ini:11: [route r] upstream: no [upstream nope] section"},
    {P U R "[route r]\nupstream = api\n", "t.ini:12: [route r]: duplicate route name, first at "
                                          "line 10"},
    /* same host set (in another order) and path: both lines named */
    {P U "[route a]\nhost = x.org y.org\npath = /p/\nupstream = api\n"
         "[route b]\nhost = y.org X.org\npath = /p/\nupstream = app\n",
     "t.ini:14: [route b]: same host and path as [route a] at line 10"},
    {P U "[route a]\nupstream = api\n[route b]\nupstream = app\n",
     "t.ini:12: [route b]: same host and path as [route a] at line 10"},
    {P U R "path = api/\n", "t.ini:12: [route r] path: bad path \"api/\": must start with '/'"},
    {P U R "path = /api/../x/\n", "[route r] path: path \"/api/../x/\" is not normalised"},
    {P U R "path = //api/\n", "is not normalised: requests are matched as \"/api/\""},
    {P U R "path = /a?b\n", "bad character 0x3f"},
    {P U R "host = *\n", "bad host name \"*\""},
    {P U R "host = a_b.org\n", "bad host name \"a_b.org\""},
    {P U R "host = a.org A.org\n", "host a.org named twice"},
    {P U R "strip_prefix = maybe\n", "t.ini:12: [route r] strip_prefix: bad boolean"},
    {P U R "request_header = X-Env\n", "bad header \"X-Env\" (Name: value)"},
    {P U R "request_header = X Env: a\n", "bad header name \"X Env\""},
    {P U R "request_header = X-Env:\n", "empty value for X-Env"},
    {P U R "request_header = Content-Length: 5\n", "Content-Length is a framing or hop-by-hop"},
    {P U R "request_header = transfer-encoding: chunked\n", "framing or hop-by-hop"},
    {P U R "request_header = Host: a\n", "framing or hop-by-hop"},
    {P U R "request_header = Connection: close\n", "framing or hop-by-hop"},
    {P U R "request_header = Upgrade: h2c\n", "framing or hop-by-hop"},
    {P U R "request_header = Keep-Alive: 1\n", "framing or hop-by-hop"},
    {P U R "request_header = TE: trailers\n", "framing or hop-by-hop"},
    {P U R "request_header = Trailer: x\n", "framing or hop-by-hop"},
    {P U R "request_header = Proxy-Connection: x\n", "framing or hop-by-hop"},
    {P U R "response_header = Transfer-Encoding: chunked\n", "framing or hop-by-hop"},
    {P U R "hide_response_header = Content-Length\n", "framing or hop-by-hop"},
    {P U R "request_header = X-A: 1\nrequest_header = x-a: 2\n", "X-A set twice"},
    {P U R "hide_response_header = Server\nhide_response_header = server\n",
     "server hidden twice"},
    {P U R "response_header = X-A: a\x01"
           "b\n",
     "bad character 0x01"},
    {P "trusted_proxies = 10.0.0.1/8\n" U, "has host bits set"},
    {P "trusted_proxies = 10.0.0.0/33\n" U, "bad prefix length in \"10.0.0.0/33\" (0..32)"},
    {P "trusted_proxies = ::/129\n" U, "(0..128)"},
    {P "trusted_proxies = example.com\n" U, "bad address \"example.com\""},
    {P "trusted_proxies = 10.0.0.0/\n" U, "bad prefix length"},
    {P "access_log_format = xml\n" U, "bad log format \"xml\" (main|combined|json)"},
    {P "request_id = maybe\n" U, "[proxy] request_id: bad boolean"},
};

START_TEST(test_errors)
{
    struct config *cfg = load(error_cases[_i].text);

    ck_assert_msg(cfg == NULL, "case %d loaded", _i);
    ck_assert_msg(strstr(err, error_cases[_i].want) != NULL, "case %d: got '%s', want '%s'", _i,
                  err, error_cases[_i].want);
}
END_TEST

struct lines {
    char text[4096];
};

static void
add_line(void *arg, const char *line)
{
    struct lines *l = arg;
    size_t n = strlen(l->text);
    snprintf(l->text + n, sizeof(l->text) - n, "%s\n", line);
}

START_TEST(test_diff)
{
    struct config *a = load(P U "[route keep]\npath = /k/\nupstream = api\n"
                                "[route gone]\npath = /g/\nupstream = api\n");
    struct config *b =
        load(P U "[route keep]\npath = /k/\nupstream = assets\nrequest_header = X-A: 1\n"
                 "[route new]\npath = /n/\nupstream = api\n");
    static struct lines l;

    ck_assert_msg(a != NULL && b != NULL, "%s", err);
    l.text[0] = '\0';
    cfg_diff(a, b, add_line, &l);
    ck_assert_str_eq(l.text, "route removed gone\nroute added new\n"
                             "[route keep] upstream api -> assets\n"
                             "[route keep] request_header none -> X-A: 1\n");
    cfg_free(a);
    cfg_free(b);
}
END_TEST

/* ---- header rules (rewrite.c) ----------------------------------------- */

static void
parse_req(const char *head, struct http_request *req)
{
    int st = 0;
    ck_assert_int_gt(http_parse_request(head, strlen(head), 65536, req, &st), 0);
}

START_TEST(test_request_set)
{
    static const struct cfg_header set[] = {{"X-Forwarded-Proto", "https"}, {"X-Env", "prod"}};
    struct http_request req;
    char out[2048];

    parse_req("GET /a HTTP/1.1\r\nHost: h\r\nX-Env: dev\r\nx-request-id: old\r\n"
              "X-Forwarded-Proto: gopher\r\nAccept: */*\r\n\r\n",
              &req);
    struct rewrite_req rw = {.target = {"/a", 2},
                             .host = {"h", 1},
                             .upstream_host = "127.0.0.1:1",
                             .client_ip = "192.0.2.1",
                             .proto = "http",
                             .set = set,
                             .nset = 2,
                             .request_id = "rid1"};
    ssize_t n = rewrite_request(&req, &rw, out, sizeof(out));
    ck_assert_int_gt(n, 0);
    out[n] = '\0';
    ck_assert_str_eq(out, "GET /a HTTP/1.1\r\nHost: 127.0.0.1:1\r\nAccept: */*\r\n"
                          "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Host: h\r\n"
                          "X-Request-Id: rid1\r\nX-Forwarded-Proto: https\r\nX-Env: prod\r\n\r\n");
    /* too small a buffer: -1, as before */
    ck_assert_int_eq(rewrite_request(&req, &rw, out, (size_t)n - 1), -1);
}
END_TEST

static ssize_t
resp_with(const char *head, const struct rewrite_resp_opts *opts, char *out, size_t cap)
{
    struct http_response resp;
    int st = 0;

    ck_assert_int_gt(http_parse_response(head, strlen(head), 65536, false, &resp, &st), 0);
    ssize_t n = rewrite_response_opts(&resp, REWRITE_AS_IS, true, 1, opts, out, cap);
    if (n >= 0)
        out[n] = '\0';
    return n;
}

START_TEST(test_response_rules)
{
    static const struct cfg_header set[] = {{"Cache-Control", "no-store"}};
    static char *hide[] = {"X-Powered-By"};
    struct rewrite_resp_opts o = {.set = set,
                                  .nset = 1,
                                  .hide = hide,
                                  .nhide = 1,
                                  .request_id = "r1",
                                  .server_timing = "mp-total;dur=1.00"};
    char out[2048];

    ck_assert_int_gt(resp_with("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nx-powered-by: php\r\n"
                               "Cache-Control: max-age=60\r\nServer-Timing: db;dur=2\r\n"
                               "X-Request-Id: theirs\r\nServer-Timing: app;dur=5\r\n\r\n",
                               &o, out, sizeof(out)),
                     0);
    ck_assert_str_eq(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nServer-Timing: db;dur=2\r\n"
                          "Server-Timing: app;dur=5, mp-total;dur=1.00\r\nX-Request-Id: r1\r\n"
                          "Cache-Control: no-store\r\n\r\n");
    /* no Server-Timing from the app: ours on its own */
    ck_assert_int_gt(resp_with("HTTP/1.1 204 No Content\r\n\r\n", &o, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "HTTP/1.1 204 No Content\r\nServer-Timing: mp-total;dur=1.00\r\n"
                          "X-Request-Id: r1\r\nCache-Control: no-store\r\n\r\n");
    /* no options: as rewrite_response() */
    char plain[2048];
    struct http_response resp;
    int st = 0;
    const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-A: 1\r\n\r\n";
    ck_assert_int_gt(http_parse_response(h, strlen(h), 65536, false, &resp, &st), 0);
    ssize_t n = rewrite_response(&resp, REWRITE_AS_IS, true, 1, plain, sizeof(plain));
    ck_assert_int_gt(n, 0);
    plain[n] = '\0';
    ck_assert_int_eq(resp_with(h, NULL, out, sizeof(out)), n);
    ck_assert_str_eq(out, plain);
}
END_TEST

START_TEST(test_server_timing_text)
{
    char out[160];

    rewrite_server_timing(210, 3400, 3900, out, sizeof(out));
    ck_assert_str_eq(out, "mp-connect;dur=0.21, mp-upstream;dur=3.40, mp-total;dur=3.90");
    rewrite_server_timing(-1, -1, 12345, out, sizeof(out));
    ck_assert_str_eq(out, "mp-total;dur=12.35");
}
END_TEST

/* ---- the real client address (realip.c) -------------------------------- */

static const struct {
    const char *peer, *xff, *want;
} realip_cases[] = {
    {"192.0.2.1", "203.0.113.9", "192.0.2.1"},  /* untrusted peer: its own address */
    {"10.0.0.1", NULL, "10.0.0.1"},             /* trusted, no header: the peer */
    {"10.0.0.1", "203.0.113.9", "203.0.113.9"}, /* one hop */
    {"10.0.0.1", "198.51.100.1, 203.0.113.9, 10.9.9.9", "203.0.113.9"}, /* recursive */
    {"10.0.0.1", "10.1.1.1, 10.2.2.2", "10.1.1.1"},          /* all trusted: the leftmost */
    {"10.0.0.1", "203.0.113.9, junk, 10.2.2.2", "10.2.2.2"}, /* junk ends the walk */
    {"10.0.0.1", "203.0.113.9:4711", "203.0.113.9"},
    {"10.0.0.1", "[2001:db8::1]:80", "2001:db8::1"},
    {"::1", "2001:db8::2", "2001:db8::2"},
    {"::ffff:10.0.0.1", "203.0.113.9", "203.0.113.9"}, /* a mapped IPv4 peer */
    {"10.0.0.1", "203.0.113.9,,  ", "203.0.113.9"},
};

START_TEST(test_realip)
{
    struct config *cfg = load(P "trusted_proxies = 10.0.0.0/8 ::1/128\n" U);
    char head[512], out[64];
    struct http_request req;

    ck_assert_msg(cfg != NULL, "%s", err);
    if (realip_cases[_i].xff != NULL)
        snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: %s\r\n\r\n",
                 realip_cases[_i].xff);
    else
        snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    parse_req(head, &req);
    realip_client(cfg, realip_cases[_i].peer, &req, out, sizeof(out));
    ck_assert_str_eq(out, realip_cases[_i].want);
    cfg_free(cfg);
}
END_TEST

START_TEST(test_realip_lines)
{
    /* two X-Forwarded-For lines are one list, the last line last */
    struct config *cfg = load(P "trusted_proxies = 10.0.0.0/8\n" U);
    struct http_request req;
    char out[64];

    ck_assert_msg(cfg != NULL, "%s", err);
    parse_req("GET / HTTP/1.1\r\nX-Forwarded-For: 203.0.113.1\r\nHost: h\r\n"
              "X-Forwarded-For: 10.3.3.3\r\n\r\n",
              &req);
    realip_client(cfg, "10.0.0.1", &req, out, sizeof(out));
    ck_assert_str_eq(out, "203.0.113.1");
    ck_assert(realip_trusted(cfg, "10.255.0.1"));
    ck_assert(!realip_trusted(cfg, "11.0.0.1"));
    cfg_free(cfg);
}
END_TEST

/* ---- access-log lines (alog.c) ----------------------------------------- */

START_TEST(test_alog)
{
    char out[ALOG_LINE_MAX];
    static const char ua[] = "a\"b\\c\x01\xc3\xa9";
    struct conn_log_entry e = {.request = "GET /x",
                               .minor = 1,
                               .status = 200,
                               .bytes = 5,
                               .upstream = "127.0.0.1:1",
                               .upstream_status = 200,
                               .start_us = 0,
                               .upstream_us = 1000,
                               .method = {"GET", 3},
                               .target = {"/x", 2},
                               .user_agent = {ua, sizeof(ua) - 1},
                               .has_ua = true,
                               .route = "api",
                               .request_id = "rid"};
    size_t n = alog_line(CFG_LOG_MAIN, "192.0.2.1", &e, 2000, out, sizeof(out));
    out[n] = '\0';
    ck_assert_msg(strstr(out, "\"GET /x HTTP/1.1\" 200 5 upstream=127.0.0.1:1 ustatus=200 "
                              "rt=0.002 urt=0.001 route=api rid=rid\n") != NULL,
                  "%s", out);
    n = alog_line(CFG_LOG_COMBINED, "192.0.2.1", &e, 2000, out, sizeof(out));
    out[n] = '\0';
    ck_assert_msg(
        strstr(out, "\"GET /x HTTP/1.1\" 200 5 \"-\" \"a\\x22b\\x5cc\\x01\\xc3\\xa9\"\n") != NULL,
        "%s", out);
    n = alog_line(CFG_LOG_JSON, "192.0.2.1", &e, 2000, out, sizeof(out));
    out[n] = '\0';
    ck_assert_msg(strstr(out, ",\"client\":\"192.0.2.1\",\"method\":\"GET\",\"target\":\"/x\","
                              "\"protocol\":\"HTTP/1.1\",\"request\":\"GET /x\",\"status\":200,"
                              "\"bytes\":5,\"route\":\"api\",\"upstream\":\"127.0.0.1:1\","
                              "\"upstream_status\":200,\"request_time\":0.002,"
                              "\"upstream_time\":0.001,\"request_id\":\"rid\","
                              "\"user_agent\":\"a\\\"b\\\\c\\u0001\\u00c3\\u00a9\","
                              "\"referer\":null,\"tls_version\":null,\"tls_cipher\":null,"
                              "\"sni\":null,\"tls_resumed\":null}\n") != NULL,
                  "%s", out);
    /* on a TLS connection: the protocol, cipher, name and resumption, at the end */
    struct conn_log_entry t = e;
    t.tls_version = "TLSv1.3";
    t.tls_cipher = "TLS_AES_128_GCM_SHA256";
    t.sni = "a.test";
    t.tls_resumed = true;
    n = alog_line(CFG_LOG_MAIN, "192.0.2.1", &t, 2000, out, sizeof(out));
    out[n] = '\0';
    ck_assert_msg(strstr(out, " route=api rid=rid tls=TLSv1.3 cipher=TLS_AES_128_GCM_SHA256 "
                              "sni=a.test resumed=1\n") != NULL,
                  "%s", out);
    n = alog_line(CFG_LOG_JSON, "192.0.2.1", &t, 2000, out, sizeof(out));
    out[n] = '\0';
    ck_assert_msg(
        strstr(out,
               ",\"tls_version\":\"TLSv1.3\",\"tls_cipher\":"
               "\"TLS_AES_128_GCM_SHA256\",\"sni\":\"a.test\",\"tls_resumed\":true}\n") != NULL,
        "%s", out);
    /* a line too long for the buffer still ends well */
    n = alog_line(CFG_LOG_JSON, "192.0.2.1", &e, 2000, out, 300);
    ck_assert_uint_le(n, 300);
    ck_assert_int_eq(out[n - 1], '\n');
    ck_assert_int_eq(out[n - 2], '}');
}
END_TEST

static Suite *
route_suite(void)
{
    Suite *s = suite_create("route");
    TCase *tc = tcase_create("route");

    tcase_add_loop_test(tc, test_normalize, 0, (int)NELEM(norm_cases));
    tcase_add_test(tc, test_normalize_errors);
    tcase_add_loop_test(tc, test_match, 0, (int)NELEM(match_cases));
    tcase_add_test(tc, test_no_routes);
    tcase_add_loop_test(tc, test_strip, 0, (int)NELEM(strip_cases));
    tcase_add_test(tc, test_reference);
    tcase_add_test(tc, test_trusted);
    tcase_add_loop_test(tc, test_errors, 0, (int)NELEM(error_cases));
    tcase_add_test(tc, test_diff);
    tcase_add_test(tc, test_request_set);
    tcase_add_test(tc, test_response_rules);
    tcase_add_test(tc, test_server_timing_text);
    tcase_add_loop_test(tc, test_realip, 0, (int)NELEM(realip_cases));
    tcase_add_test(tc, test_realip_lines);
    tcase_add_test(tc, test_alog);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return tl_run(route_suite());
}
