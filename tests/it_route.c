/*
 * it_route: routing by host and path, header control, the real client
 * address behind trusted proxies, request ids, Server-Timing and the
 * access-log formats, end to end: real testapp upstreams (one per group,
 * each answering "hello from NAME"), the real daemon, raw-socket clients.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

static struct tl_proc app[3]; /* groups app, api, assets */
static struct tl_proxy px;

#define GROUPS                                                                                    \
    "[upstream app]\nhealth_check = off\nserver = 127.0.0.1:%d\n"                                 \
    "[upstream api]\nhealth_check = off\nserver = 127.0.0.1:%d\n"                                 \
    "[upstream assets]\nhealth_check = off\nserver = 127.0.0.1:%d\n"

static void
start_apps(void)
{
    tl_app_start(&app[0], "app");
    tl_app_start(&app[1], "api");
    tl_app_start(&app[2], "assets");
}

static void
stop_all(void)
{
    tl_stop_all(&px, app, 3);
}

/* GET <path> with Host <host> and <extra> header lines; returns the status, <r> filled. */
static int
get(const char *host, const char *path, const char *extra, struct tl_resp *r)
{
    char req[4096];

    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n", path,
             host, extra);
    return tl_request(px.port, req, r);
}

/* Which group answered <path> on <host>: "app", "api", "assets". */
static void
expect_group(const char *host, const char *path, const char *group)
{
    struct tl_resp r;
    char want[64];

    ck_assert_int_eq(get(host, path, "", &r), 200);
    snprintf(want, sizeof(want), "hello from %s\n", group);
    ck_assert_msg(strcmp(r.body, want) == 0, "Host %s %s: got \"%s\", want \"%s\"", host, path,
                  r.body, want);
    tl_resp_free(&r);
}

/* The reference configuration, as written, with our ports and log files. */
START_TEST(test_reference)
{
    struct tl_resp r;
    char v[256];

    start_apps();
    tl_proxy_start(
        &px,
        "upstream = app                     ; the group for requests that no route matches "
        "(as today)\n"
        "server_timing = off                ; on: responses carry Server-Timing (below)\n"
        "request_id = on                    ; X-Request-Id: kept if the client sent a valid "
        "one, else made\n"
        "trusted_proxies =                  ; CIDRs (e.g. 10.0.0.0/8 ::1/128) whose "
        "X-Forwarded-For is believed\n"
        "access_log_format = main           ; main (today's line) | combined | json\n"
        "\n" GROUPS "\n"
        "[route api]\n"
        "host = api.example.com *.api.example.com   ; names, exact or \"*.\" wildcard; "
        "absent: any host\n"
        "path = /api/                       ; a path prefix; absent: /\n"
        "upstream = api\n"
        "strip_prefix = no                  ; yes: /api/users reaches the upstream as /users\n"
        "request_header = X-Env: prod       ; repeatable: set (replace) a header on the way "
        "to the upstream\n"
        "response_header = Cache-Control: no-store   ; repeatable: set (replace) a header on "
        "the way back\n"
        "hide_response_header = X-Powered-By         ; repeatable: remove a header on the way "
        "back\n"
        "\n"
        "[route static]\n"
        "path = /static/\n"
        "upstream = assets\n",
        app[0].port, app[1].port, app[2].port);

    expect_group("api.example.com", "/api/users", "api");
    expect_group("API.example.com:8080", "/api/users", "api");
    expect_group("v2.api.example.com", "/api/x", "api");
    expect_group("api.example.com", "/api", "app");          /* not under /api/ */
    expect_group("api.example.com", "/api/../admin", "app"); /* normalised: /admin */
    expect_group("api.example.com", "/api/%2e%2e/admin", "app");
    expect_group("api.example.com", "/static/a.css", "assets"); /* any host, next level */
    expect_group("www.example.com", "/static/a.css", "assets");
    expect_group("www.example.com", "/api/users", "app"); /* the api route wants its hosts */
    expect_group("example.com", "/", "app");

    /* the api route's response headers, and a request id */
    ck_assert_int_eq(get("api.example.com", "/api/users", "", &r), 200);
    ck_assert(tl_resp_header(&r, "Cache-Control", v, sizeof(v)));
    ck_assert_str_eq(v, "no-store");
    ck_assert(tl_resp_header(&r, "X-Request-Id", v, sizeof(v)));
    ck_assert_uint_eq(strlen(v), 32);
    ck_assert(!tl_resp_header(&r, "Server-Timing", v, sizeof(v)));
    tl_resp_free(&r);
    /* another route's responses are untouched */
    ck_assert_int_eq(get("x", "/static/headers", "", &r), 200);
    ck_assert(!tl_resp_header(&r, "Cache-Control", v, sizeof(v)));
    ck_assert_msg(strstr(r.body, "X-Env") == NULL, "%s", r.body);
    tl_resp_free(&r);
    ck_assert(tl_file_waitfor(px.acclog, "\"GET /api/users HTTP/1.1\" 200", 2000));
    ck_assert(tl_file_waitfor(px.acclog, " route=api rid=", 2000));
    ck_assert(tl_file_waitfor(px.acclog, " route=static rid=", 2000));
    ck_assert(tl_file_waitfor(px.acclog, " route=- rid=", 2000));
    stop_all();
}
END_TEST

START_TEST(test_strip_and_headers)
{
    struct tl_resp r;
    char v[256];

    start_apps();
    tl_proxy_start(&px,
                   "upstream = app\n" GROUPS "[route api]\npath = /api/\nupstream = api\n"
                   "strip_prefix = yes\nrequest_header = X-Forwarded-Proto: https\n"
                   "request_header = X-Env: prod\nresponse_header = X-Frame-Options: DENY\n"
                   "response_header = Content-Type: text/x-test\n"
                   "hide_response_header = X-Upstream\n",
                   app[0].port, app[1].port, app[2].port);
    ck_assert_int_eq(get("h", "/api/headers?a=1", "X-Forwarded-Proto: gopher\r\n", &r), 200);
    ck_assert_msg(strncmp(r.body, "GET /headers?a=1 HTTP/1.1\r\n", 27) == 0, "%s", r.body);
    ck_assert_msg(strstr(r.body, "\r\nX-Forwarded-Proto: https\r\n") != NULL, "%s", r.body);
    ck_assert_msg(strstr(r.body, "X-Forwarded-Proto: http\r\n") == NULL, "%s", r.body);
    ck_assert_msg(strstr(r.body, "gopher") == NULL, "%s", r.body);
    ck_assert_msg(strstr(r.body, "\r\nX-Env: prod\r\n") != NULL, "%s", r.body);
    ck_assert(!tl_resp_header(&r, "X-Upstream", v, sizeof(v)));
    ck_assert(tl_resp_header(&r, "X-Frame-Options", v, sizeof(v)));
    ck_assert_str_eq(v, "DENY");
    ck_assert(tl_resp_header(&r, "Content-Type", v, sizeof(v)));
    ck_assert_str_eq(v, "text/x-test");
    ck_assert_ptr_null(strstr(r.head, "text/plain")); /* replaced, not added */
    tl_resp_free(&r);
    /* the prefix alone is the upstream's root */
    ck_assert_int_eq(get("h", "/api/", "", &r), 200);
    ck_assert_str_eq(r.body, "hello from api\n");
    tl_resp_free(&r);
    /* the default group: no route, no rules */
    ck_assert_int_eq(get("h", "/headers", "", &r), 200);
    ck_assert(tl_resp_header(&r, "X-Upstream", v, sizeof(v)));
    ck_assert_str_eq(v, "app");
    ck_assert(!tl_resp_header(&r, "X-Frame-Options", v, sizeof(v)));
    tl_resp_free(&r);
    stop_all();
}
END_TEST

START_TEST(test_request_id)
{
    struct tl_resp r;
    char v[256], w[256], hdr[300], big[200];

    start_apps();
    tl_proxy_start(&px, "upstream = app\nrequest_id = on\n" GROUPS, app[0].port, app[1].port,
                   app[2].port);
    /* a valid one is kept, both ways */
    ck_assert_int_eq(get("h", "/headers", "X-Request-Id: abc-123_XYZ\r\n", &r), 200);
    ck_assert(tl_resp_header(&r, "X-Request-Id", v, sizeof(v)));
    ck_assert_str_eq(v, "abc-123_XYZ");
    ck_assert_msg(strstr(r.body, "\r\nX-Request-Id: abc-123_XYZ\r\n") != NULL, "%s", r.body);
    tl_resp_free(&r);
    ck_assert(tl_file_waitfor(px.acclog, " rid=abc-123_XYZ\n", 2000));
    /* none: made, 32 hex digits, a new one each time */
    ck_assert_int_eq(get("h", "/", "", &r), 200);
    ck_assert(tl_resp_header(&r, "X-Request-Id", v, sizeof(v)));
    tl_resp_free(&r);
    ck_assert_int_eq(get("h", "/", "", &r), 200);
    ck_assert(tl_resp_header(&r, "X-Request-Id", w, sizeof(w)));
    tl_resp_free(&r);
    ck_assert_uint_eq(strlen(v), 32);
    ck_assert_uint_eq(strspn(v, "0123456789abcdef"), 32);
    ck_assert_str_ne(v, w);
    /* 129 characters, or one that is not visible ASCII: replaced */
    memset(big, 'a', 129);
    big[129] = '\0';
    snprintf(hdr, sizeof(hdr), "X-Request-Id: %s\r\n", big);
    ck_assert_int_eq(get("h", "/headers", hdr, &r), 200);
    ck_assert(tl_resp_header(&r, "X-Request-Id", v, sizeof(v)));
    ck_assert_uint_eq(strlen(v), 32);
    ck_assert_msg(strstr(r.body, big) == NULL, "%s", r.body);
    tl_resp_free(&r);
    big[128] = '\0'; /* 128: kept */
    snprintf(hdr, sizeof(hdr), "X-Request-Id: %s\r\n", big);
    ck_assert_int_eq(get("h", "/", hdr, &r), 200);
    ck_assert(tl_resp_header(&r, "X-Request-Id", v, sizeof(v)));
    ck_assert_str_eq(v, big);
    tl_resp_free(&r);
    ck_assert_int_eq(get("h", "/", "X-Request-Id: a b\r\n", &r), 200);
    ck_assert(tl_resp_header(&r, "X-Request-Id", v, sizeof(v)));
    ck_assert_uint_eq(strlen(v), 32);
    tl_resp_free(&r);
    stop_all();

    /* the proxy's own answers carry it too: a 502 from a dead upstream */
    tl_proxy_start(&px,
                   "upstream = app\nrequest_id = on\n[upstream app]\nhealth_check = off\n"
                   "max_fails = 0\nretries = 0\nserver = 127.0.0.1:%d\n",
                   tl_dead_port());
    ck_assert_int_eq(get("h", "/", "X-Request-Id: failing-1\r\n", &r), 502);
    ck_assert(tl_resp_header(&r, "X-Request-Id", v, sizeof(v)));
    ck_assert_str_eq(v, "failing-1");
    tl_resp_free(&r);
    ck_assert(tl_file_waitfor(px.acclog, "\" 502 ", 2000));
    ck_assert(tl_file_waitfor(px.acclog, " rid=failing-1\n", 2000));
    stop_all();
}
END_TEST

/* "mp-connect;dur=N, mp-upstream;dur=N, mp-total;dur=N", each N a number. */
static bool
timing_ok(const char *s)
{
    static const char *const names[] = {"mp-connect;dur=", "mp-upstream;dur=", "mp-total;dur="};

    for (size_t i = 0; i < 3; i++) {
        if (strncmp(s, names[i], strlen(names[i])) != 0)
            return false;
        s += strlen(names[i]);
        char *end;
        double d = strtod(s, &end);
        if (end == s || d < 0)
            return false;
        s = end;
        if (i < 2) {
            if (strncmp(s, ", ", 2) != 0)
                return false;
            s += 2;
        }
    }
    return *s == '\0';
}

START_TEST(test_server_timing)
{
    struct tl_resp r;
    char v[256];

    start_apps();
    tl_proxy_start(&px, "upstream = app\nserver_timing = on\n" GROUPS, app[0].port, app[1].port,
                   app[2].port);
    ck_assert_int_eq(get("h", "/delay?ms=50", "", &r), 200);
    ck_assert(tl_resp_header(&r, "Server-Timing", v, sizeof(v)));
    ck_assert_msg(timing_ok(v), "%s", v);
    /* the upstream took 50 ms: mp-upstream and mp-total say so */
    double up = strtod(strstr(v, "mp-upstream;dur=") + 16, NULL);
    double total = strtod(strstr(v, "mp-total;dur=") + 13, NULL);
    ck_assert_msg(up >= 45 && total >= up, "%s", v);
    tl_resp_free(&r);
    /* with a request body too */
    ck_assert_int_eq(tl_request(px.port,
                                "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                                "Connection: close\r\n\r\nhello",
                                &r),
                     200);
    ck_assert(tl_resp_header(&r, "Server-Timing", v, sizeof(v)));
    ck_assert_msg(timing_ok(v), "%s", v);
    ck_assert_str_eq(r.body, "hello");
    tl_resp_free(&r);
    stop_all();
}
END_TEST

START_TEST(test_trusted_proxies)
{
    struct tl_resp r;

    start_apps();
    tl_proxy_start(&px,
                   "upstream = app\nworkers = 4\nmax_conns_per_ip = 1\n"
                   "trusted_proxies = 127.0.0.0/8 10.0.0.0/8\n" GROUPS,
                   app[0].port, app[1].port, app[2].port);
    /* recursive: 10.1.1.1 is trusted too, so the client is 203.0.113.9 */
    ck_assert_int_eq(
        get("h", "/headers", "X-Forwarded-For: 198.51.100.1, 203.0.113.9, 10.1.1.1\r\n", &r), 200);
    ck_assert_msg(strstr(r.body, "\r\nX-Forwarded-For: 198.51.100.1, 203.0.113.9, 10.1.1.1, "
                                 "203.0.113.9\r\n") != NULL,
                  "%s", r.body);
    tl_resp_free(&r);
    ck_assert(tl_file_waitfor(px.acclog, "203.0.113.9 - - [", 2000));
    /* no X-Forwarded-For: the peer is the client */
    ck_assert_int_eq(get("h", "/headers", "", &r), 200);
    ck_assert_msg(strstr(r.body, "\r\nX-Forwarded-For: 127.0.0.1\r\n") != NULL, "%s", r.body);
    tl_resp_free(&r);

    /*
     * max_conns_per_ip counts the real client: the proxy's own connections
     * (all from 127.0.0.1) are not limited, a second one for the same
     * client is refused, one for another client is not.
     */
    int a = tl_connect(px.port);
    ck_assert(tl_send_str(a, "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n") ==
              0);
    ck_assert_int_eq(tl_read_response(a, false, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tl_resp_free(&r); /* a stays open: 192.0.2.1 holds its one connection */
    ck_assert_int_eq(get("h", "/", "X-Forwarded-For: 192.0.2.1\r\n", &r), 503);
    tl_resp_free(&r);
    ck_assert_int_eq(get("h", "/", "X-Forwarded-For: 192.0.2.2\r\n", &r), 200);
    tl_resp_free(&r);
    ck_assert(tl_file_waitfor(px.errlog, "192.0.2.1: refused: 2 connections", 2000));
    close(a);
    stop_all();

    /* an untrusted peer's X-Forwarded-For is not believed */
    start_apps();
    tl_proxy_start(&px, "upstream = app\ntrusted_proxies = 10.0.0.0/8\n" GROUPS, app[0].port,
                   app[1].port, app[2].port);
    ck_assert_int_eq(get("h", "/headers", "X-Forwarded-For: 203.0.113.9\r\n", &r), 200);
    ck_assert_msg(strstr(r.body, "\r\nX-Forwarded-For: 203.0.113.9, 127.0.0.1\r\n") != NULL, "%s",
                  r.body);
    tl_resp_free(&r);
    ck_assert(tl_file_waitfor(px.acclog, "127.0.0.1 - - [", 2000));
    ck_assert_int_eq(tl_file_count(px.acclog, "203.0.113.9 - -"), 0);
    stop_all();
}
END_TEST

/* balance = hash with hash_key = client_ip hashes the real client, not the trusted peer. */
START_TEST(test_hash_real_client)
{
    struct tl_resp r;
    char xff[64];
    int first[8], seen = 0;

    tl_app_start(&app[0], "a1");
    tl_app_start(&app[1], "a2");
    tl_app_start(&app[2], "a3");
    tl_proxy_start(&px,
                   "upstream = app\ntrusted_proxies = 127.0.0.1\n[upstream app]\n"
                   "health_check = off\nbalance = hash\nhash_key = client_ip\n"
                   "server = 127.0.0.1:%d\nserver = 127.0.0.1:%d\nserver = 127.0.0.1:%d\n",
                   app[0].port, app[1].port, app[2].port);
    for (int c = 0; c < 8; c++) {
        snprintf(xff, sizeof(xff), "X-Forwarded-For: 198.51.100.%d\r\n", 10 + c);
        for (int i = 0; i < 3; i++) {
            ck_assert_int_eq(get("h", "/", xff, &r), 200);
            int who = tl_who(&r);
            tl_resp_free(&r);
            ck_assert_int_gt(who, 0);
            if (i == 0)
                first[c] = who;
            ck_assert_msg(who == first[c], "client %d: a%d then a%d", c, first[c], who);
        }
        seen |= 1 << first[c];
    }
    /* eight clients behind one peer do not all land on one server */
    ck_assert_msg(seen != 1 << 1 && seen != 1 << 2 && seen != 1 << 3, "one server for all: %x",
                  seen);
    stop_all();
}
END_TEST

/* Requests whose fields try to break a log line. */
static void
nasty_requests(void)
{
    static const char *const reqs[] = {
        "GET /a?q=\"x\" HTTP/1.1\r\nHost: h\r\nUser-Agent: Mozilla/5.0 \"quoted\" \\ back\r\n"
        "Referer: http://r.example/?a=\"b\"\r\nConnection: close\r\n\r\n",
        "GET /b HTTP/1.1\r\nHost: h\r\nUser-Agent: caf\xc3\xa9 \xff\xfe\r\nConnection: "
        "close\r\n\r\n",
        "GET /c HTTP/1.1\r\nHost: h\r\nUser-Agent: \t} {\"json\": 1}\r\nConnection: close\r\n\r\n",
        "GET /d HTTP/1.0\r\n\r\n",
        "BOGUS\r\n\r\n", /* refused: logged with the line as received */
    };
    struct tl_resp r;

    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        tl_request(px.port, reqs[i], &r);
        tl_resp_free(&r);
    }
    ck_assert(tl_file_waitfor(px.acclog, "BOGUS", 3000));
}

static const char *const log_formats[] = {"main", "combined", "json"};

/* Checks every line of the access log with a parser for the format. */
static const char *const log_checks[] = {
    /* main */
    "import re,sys\n"
    "p=re.compile(r'^\\S+ - - \\[[^]]+\\] \"[^\"]*\" \\d{3} \\d+ upstream=\\S+ ustatus=\\d+ "
    "rt=[\\d.]+ urt=\\S+ route=\\S+ rid=\\S+$')\n"
    "n=0\n"
    "for l in open(sys.argv[1],'rb').read().decode('latin-1').split('\\n')[:-1]:\n"
    "    assert p.match(l), l\n"
    "    n+=1\n"
    "assert n>=5, n\n"
    "print('ok', n)\n",
    /* combined, as log tools parse it */
    "import re,sys\n"
    "p=re.compile(r'^(\\S+) (\\S+) (\\S+) \\[([^]]+)\\] \"((?:[^\"\\\\]|\\\\.)*)\" (\\d{3}) "
    "(\\d+|-) \"((?:[^\"\\\\]|\\\\.)*)\" \"((?:[^\"\\\\]|\\\\.)*)\"$')\n"
    "n=0\n"
    "for l in open(sys.argv[1],'rb').read().decode('latin-1').split('\\n')[:-1]:\n"
    "    m=p.match(l)\n"
    "    assert m, l\n"
    "    n+=1\n"
    "    if m.group(5).startswith('GET /a'):\n"
    "        assert 'quoted' in m.group(9) and 'r.example' in m.group(8), l\n"
    "assert n>=5, n\n"
    "print('ok', n)\n",
    /* json */
    "import json,sys\n"
    "n=0\n"
    "for l in open(sys.argv[1],'rb').read().split(b'\\n')[:-1]:\n"
    "    o=json.loads(l.decode('ascii'))\n"
    "    for k in ('time','client','method','target','status','bytes','route','upstream',\n"
    "              'upstream_status','request_time','upstream_time','request_id',\n"
    "              'user_agent','referer'):\n"
    "        assert k in o, (k, l)\n"
    "    n+=1\n"
    "    if o['target']=='/a?q=\"x\"':\n"
    "        assert o['user_agent']=='Mozilla/5.0 \"quoted\" \\\\ back', o\n"
    "        assert o['referer']=='http://r.example/?a=\"b\"', o\n"
    "        assert o['status']==200 and o['upstream_status']==200 and o['route']=='r', o\n"
    "        assert len(o['request_id'])==32, o\n"
    "    if o['target']=='/c':\n"
    "        assert o['user_agent']=='} {\"json\": 1}', o\n"
    "    if o['method'] is None:\n"
    "        assert o['request']=='BOGUS' and o['status']==400, o\n"
    "assert n>=5, n\n"
    "print('ok', n)\n",
};

START_TEST(test_log_formats)
{
    char out[4096], script[256];

    start_apps();
    tl_proxy_start(&px,
                   "upstream = app\nrequest_id = on\naccess_log_format = %s\n" GROUPS
                   "[route r]\npath = /a\nupstream = api\n",
                   log_formats[_i], app[0].port, app[1].port, app[2].port);
    nasty_requests();
    snprintf(script, sizeof(script), "%s/check.py", px.dir);
    FILE *f = fopen(script, "w");
    ck_assert_ptr_nonnull(f);
    fputs(log_checks[_i], f);
    fclose(f);
    int rc = tl_sh(out, sizeof(out), "python3 %s %s 2>&1", script, px.acclog);
    char logtext[8192] = "";
    tl_sh(logtext, sizeof(logtext), "cat %s", px.acclog);
    ck_assert_msg(rc == 0, "%s: %s\n%s", log_formats[_i], out, logtext);
    stop_all();
}
END_TEST

START_TEST(test_reload_routes)
{
    const char *before = "upstream = app\n" GROUPS "[route keep]\npath = /k/\nupstream = api\n"
                         "[route gone]\npath = /g/\nupstream = api\n";
    const char *after = "upstream = app\n" GROUPS "[route keep]\npath = /k/\nupstream = assets\n"
                        "[route new]\npath = /n/\nupstream = api\n";
    char text[128];

    start_apps();
    tl_proxy_start(&px, before, app[0].port, app[1].port, app[2].port);
    expect_group("h", "/k/1", "api");
    expect_group("h", "/g/1", "api");
    expect_group("h", "/n/1", "app");
    tl_proxy_write_conf(&px, after, app[0].port, app[1].port, app[2].port);
    ck_assert(kill(px.pid, SIGHUP) == 0);
    ck_assert(tl_file_waitfor(px.errlog, "reloaded: generation 2 serving", 5000));
    ck_assert(tl_file_waitfor(px.errlog, "reload: route removed gone", 1000));
    ck_assert(tl_file_waitfor(px.errlog, "reload: route added new", 1000));
    snprintf(text, sizeof(text), "reload: [route keep] upstream api -> assets");
    ck_assert(tl_file_waitfor(px.errlog, text, 1000));
    expect_group("h", "/k/1", "assets");
    expect_group("h", "/g/1", "app");
    expect_group("h", "/n/1", "api");
    stop_all();
}
END_TEST

START_TEST(test_route_counters)
{
    char out[65536];

    start_apps();
    tl_proxy_start(&px,
                   "upstream = app\n" GROUPS "[route api]\npath = /api/\nupstream = api\n"
                   "[route static]\npath = /static/\nupstream = assets\n"
                   "[admin]\nlisten = 127.0.0.1:0\n",
                   app[0].port, app[1].port, app[2].port);
    for (int i = 0; i < 3; i++)
        expect_group("h", "/api/x", "api");
    expect_group("h", "/static/x", "assets");
    expect_group("h", "/other", "app");
    ck_assert_int_gt(px.admin_port, 0);
    ck_assert_int_eq(tl_sh(out, sizeof(out), "curl -s http://127.0.0.1:%d/metrics", px.admin_port),
                     0);
    ck_assert_msg(strstr(out, "\nminiproxyd_route_requests_total{route=\"api\"} 3\n") != NULL,
                  "%s", out);
    ck_assert_msg(strstr(out, "\nminiproxyd_route_requests_total{route=\"static\"} 1\n") != NULL,
                  "%s", out);
    ck_assert_int_eq(
        tl_sh(out, sizeof(out),
              "curl -s http://127.0.0.1:%d/status.json | python3 -c 'import json,sys; "
              "d=json.load(sys.stdin); print(sorted((r[\"name\"], r[\"upstream\"], "
              "r[\"requests\"]) for r in d[\"routes\"]))'",
              px.admin_port),
        0);
    ck_assert_str_eq(out, "[('api', 'api', 3), ('static', 'assets', 1)]\n");

    /* a reload keeps a kept route's count (counters only go up), by name, not by position */
    tl_proxy_write_conf(&px,
                        "upstream = app\n" GROUPS "[route new]\npath = /new/\nupstream = api\n"
                        "[route api]\npath = /api/\nupstream = api\n"
                        "[admin]\nlisten = 127.0.0.1:%d\n",
                        app[0].port, app[1].port, app[2].port, px.admin_port);
    ck_assert(kill(px.pid, SIGHUP) == 0);
    ck_assert(tl_file_waitfor(px.errlog, "reloaded: generation 2 serving", 5000));
    expect_group("h", "/api/x", "api");
    ck_assert(tl_file_waitfor(px.errlog, "generation 1 finished", 5000));
    ck_assert_int_eq(tl_sh(out, sizeof(out), "curl -s http://127.0.0.1:%d/metrics", px.admin_port),
                     0);
    ck_assert_msg(strstr(out, "\nminiproxyd_route_requests_total{route=\"api\"} 4\n") != NULL,
                  "%s", out);
    ck_assert_msg(strstr(out, "\nminiproxyd_route_requests_total{route=\"new\"} 0\n") != NULL,
                  "%s", out);
    ck_assert_ptr_null(strstr(out, "route=\"static\""));
    stop_all();
}
END_TEST

static Suite *
route_suite(void)
{
    Suite *s = suite_create("it_route");
    TCase *tc = tcase_create("route");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_reference);
    tcase_add_test(tc, test_strip_and_headers);
    tcase_add_test(tc, test_request_id);
    tcase_add_test(tc, test_server_timing);
    tcase_add_test(tc, test_trusted_proxies);
    tcase_add_test(tc, test_hash_real_client);
    tcase_add_loop_test(tc, test_log_formats, 0, 3);
    tcase_add_test(tc, test_reload_routes);
    tcase_add_test(tc, test_route_counters);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return tl_run(route_suite());
}
