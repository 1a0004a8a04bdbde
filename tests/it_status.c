/*
 * it_status: what the status page shows an operator, end to end: the real
 * daemon with an [admin] listener in front of real upstreams, driven into
 * the states the page must show (answers of its own, an open breaker, a
 * server down, rates, a failed and a good reload, an adaptive pool with
 * empty slots), then read back from /status.json, /metrics and /status.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

#define REQ(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"

static struct tl_proc app[2];
static struct tl_proxy px;

static void
stop_all(void)
{
    tl_stop_all(&px, app, 2);
}

/*
 * The proxy's config after [proxy]: two servers in app (one may be ejected,
 * cooldown 30 s), a group "spare" whose only server is down, an admin
 * listener, and <extra> in [proxy].
 */
static const char conf_fmt[] =
    "upstream = app\nclient_max_body_size = 10\n%s\n"
    "[admin]\nlisten = 127.0.0.1:0\n"
    "[upstream app]\nhealth_check = off\nmax_fails = 1\ncooldown = 30s\n"
    "retries = 0\nserver = 127.0.0.1:%d\nserver = 127.0.0.1:%d\n"
    "[upstream spare]\nhealth_interval = 200ms\nserver = 127.0.0.1:%d\n";

static int dead;

static void
start(const char *extra)
{
    tl_app_start(&app[0], "a1");
    tl_app_start(&app[1], "a2");
    dead = tl_dead_port();
    tl_proxy_start(&px, conf_fmt, extra, app[0].port, app[1].port, dead);
}

/* GETs <path> from the admin listener; the body (malloc'd, NUL-terminated) in <r>. */
static void
admin_get(const char *path, struct tl_resp *r)
{
    char req[128];

    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    ck_assert_int_eq(tl_request(px.admin_port, req, r), 200);
}

/* The number after <key> in <s> (after <within>, when not NULL), or -1 when absent. */
static long long
num_after(const char *s, const char *within, const char *key)
{
    if (within != NULL && (s = strstr(s, within)) == NULL)
        return -1;
    const char *p = strstr(s, key);
    return p == NULL ? -1 : atoll(p + strlen(key));
}

/* Sends <raw> on a fresh connection and returns the status of the answer. */
static int
status_of(const char *raw)
{
    struct tl_resp r;
    int st = tl_request(px.port, raw, &r);
    tl_resp_free(&r);
    return st;
}

/* The proxy's own answers by status; the upstream latency histogram; an open breaker. */
START_TEST(test_own_answers_latency_breaker)
{
    struct tl_resp r;

    start("");
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(status_of(REQ("/")), 200);
    ck_assert_int_eq(status_of("GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n"), 400);
    ck_assert_int_eq(status_of("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"), 405);
    ck_assert_int_eq(status_of("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n"
                               "hello world"),
                     413);
    /* an invalid answer: 502, and the server's breaker opens (max_fails = 1) */
    ck_assert_int_eq(status_of(REQ("/garbage")), 502);

    admin_get("/status.json", &r);
    ck_assert_int_eq(num_after(r.body, "\"own_responses\":", "\"400\":"), 1);
    ck_assert_int_eq(num_after(r.body, "\"own_responses\":", "\"405\":"), 1);
    ck_assert_int_eq(num_after(r.body, "\"own_responses\":", "\"413\":"), 1);
    ck_assert_int_eq(num_after(r.body, "\"own_responses\":", "\"502\":"), 1);
    ck_assert_int_eq(num_after(r.body, "\"own_responses\":", "\"503\":"), 0);
    /* app's six answers are in its histogram, all well under 10 s */
    ck_assert_int_eq(num_after(r.body, "{\"name\":\"app\"", "\"latency\":{\"count\":"), 6);
    long long p99 = num_after(r.body, "{\"name\":\"app\"", "\"p99_us\":");
    ck_assert_msg(p99 > 0 && p99 <= 10000000, "p99 %lld us", p99);
    /* the breaker that opened: most of its 30 s cooldown left */
    const char *open = strstr(r.body, "\"breaker\":\"open\"");
    ck_assert_msg(open != NULL, "%s", r.body);
    long long left = num_after(open, NULL, "\"breaker_cooldown_left_ms\":");
    ck_assert_msg(left > 20000 && left <= 30000, "cooldown left %lld ms", left);
    tl_resp_free(&r);

    admin_get("/metrics", &r);
    ck_assert_msg(strstr(r.body, "\nminiproxyd_own_responses_total{code=\"502\"} 1\n") != NULL,
                  "%s", r.body);
    ck_assert(strstr(r.body, "\nminiproxyd_own_responses_total{code=\"400\"} 1\n") != NULL);
    ck_assert(strstr(r.body, "\n# TYPE miniproxyd_upstream_group_latency_seconds histogram\n"));
    ck_assert(strstr(r.body, "\nminiproxyd_upstream_group_latency_seconds_bucket{group=\"app\","
                             "le=\"+Inf\"} 6\n"));
    ck_assert(strstr(r.body, "\nminiproxyd_upstream_group_latency_seconds_count{group=\"app\"} "
                             "6\n"));
    ck_assert(strstr(r.body, "\nminiproxyd_upstream_group_latency_seconds_bucket{group=\"app\","
                             "le=\"10.000000\"} 6\n"));
    tl_resp_free(&r);

    admin_get("/status", &r);
    ck_assert(strstr(r.body, "<span class=\"code\">502</span> Bad Gateway: <b>1</b>"));
    /* the open breaker's row says how much of its 30 s cooldown is left, in seconds */
    const char *app_row = strstr(r.body, "<section><h2>app");
    const char *cd = strstr(r.body, "cooldown: ");
    long long cd_s = cd != NULL ? atoll(cd + strlen("cooldown: ")) : -1;
    ck_assert_msg(cd_s > 0 && cd_s <= 30 && strstr(cd, "s left") != NULL, "%.1500s",
                  app_row != NULL ? app_row : r.body);
    tl_resp_free(&r);
    stop_all();
}
END_TEST

/* A server down shows for how long; the count grows. */
START_TEST(test_down_for)
{
    struct tl_resp r;
    char spare[64];

    start("");
    snprintf(spare, sizeof(spare), "\"address\":\"127.0.0.1:%d\"", dead);
    long long first = -1;
    for (int i = 0; i < 50 && first < 0; i++) {
        admin_get("/status.json", &r);
        first = num_after(r.body, spare, "\"down_for_ms\":");
        tl_resp_free(&r);
        if (first < 0)
            usleep(100 * 1000);
    }
    ck_assert_msg(first >= 0, "the spare server never showed as down");
    usleep(1200 * 1000);
    admin_get("/status.json", &r);
    long long later = num_after(r.body, spare, "\"down_for_ms\":");
    tl_resp_free(&r);
    ck_assert_msg(later >= first + 1000, "down for %lld then %lld ms", first, later);
    admin_get("/status", &r);
    ck_assert(strstr(r.body, "<span class=\"cls\">for 1") != NULL);
    tl_resp_free(&r);
    stop_all();
}
END_TEST

/* Requests and bytes per second, from two samples of the admin worker a second apart. */
START_TEST(test_rates)
{
    struct tl_resp r;

    start("");
    admin_get("/status.json", &r); /* the first sample */
    ck_assert(strstr(r.body, "\"requests_per_second\":null,") != NULL);
    tl_resp_free(&r);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(status_of(REQ("/bytes?n=1000")), 200);
    usleep(1100 * 1000);
    admin_get("/status.json", &r); /* the second: the rates are over the window between */
    long long window = num_after(r.body, NULL, "\"rate_window_ms\":");
    ck_assert_msg(window >= 1000 && window < 5000, "window %lld ms", window);
    const char *p = strstr(r.body, "\"requests_per_second\":");
    ck_assert_ptr_nonnull(p);
    double rps = atof(p + strlen("\"requests_per_second\":"));
    double want = 20 * 1000.0 / (double)window;
    ck_assert_msg(rps > want * 0.99 && rps < want * 1.01, "%f req/s, want %f", rps, want);
    p = strstr(r.body, "\"bytes_per_second\":");
    double bps = atof(p + strlen("\"bytes_per_second\":"));
    ck_assert_msg(bps > 20000 * 1000.0 / (double)window * 0.99, "%f bytes/s", bps);
    ck_assert_int_ge(num_after(r.body, NULL, "\"bytes\":"), 20000);
    tl_resp_free(&r);
    stop_all();
}
END_TEST

/* A failed reload is visible on the page and in the metrics; a good one replaces it. */
START_TEST(test_reload_result)
{
    struct tl_resp r;

    start("");
    ck_assert_int_eq(status_of("GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n"), 400);
    admin_get("/status.json", &r);
    ck_assert(strstr(r.body, "\"last_reload\":null") != NULL);
    tl_resp_free(&r);

    tl_proxy_write_conf(&px, conf_fmt, "workers = banana", app[0].port, app[1].port, dead);
    ck_assert(kill(px.pid, SIGHUP) == 0);
    ck_assert(tl_file_waitfor(px.errlog, "reload failed, still serving generation 1", 3000));
    admin_get("/status.json", &r);
    ck_assert_msg(strstr(r.body, "\"ok\":false,\"result\":\"") != NULL, "%s", r.body);
    ck_assert(strstr(r.body, "workers: bad value \\\"banana\\\"") != NULL);
    tl_resp_free(&r);
    admin_get("/metrics", &r);
    ck_assert(strstr(r.body, "\nminiproxyd_last_reload_success 0\n") != NULL);
    tl_resp_free(&r);
    admin_get("/status", &r);
    ck_assert(strstr(r.body, "<div class=\"reload failed\">Last reload <b>failed</b>") != NULL);
    tl_resp_free(&r);

    tl_proxy_write_conf(&px, conf_fmt, "", app[0].port, app[1].port, dead);
    ck_assert(kill(px.pid, SIGHUP) == 0);
    ck_assert(tl_file_waitfor(px.errlog, "reloaded: generation 2 serving", 5000));
    /* the new generation's admin worker answers from the new table */
    long long ok = -1;
    for (int i = 0; i < 50 && ok != 1; i++) {
        admin_get("/status.json", &r);
        ok = strstr(r.body, "\"ok\":true,\"result\":\"generation 2 from ") != NULL;
        if (ok == 1) {
            /* the counts carried over: the 400 of generation 1 is still counted */
            ck_assert_int_eq(num_after(r.body, "\"own_responses\":", "\"400\":"), 1);
        }
        tl_resp_free(&r);
        if (ok != 1)
            usleep(100 * 1000);
    }
    ck_assert_msg(ok == 1, "the good reload never showed");
    admin_get("/metrics", &r);
    ck_assert(strstr(r.body, "\nminiproxyd_last_reload_success 1\n") != NULL);
    tl_resp_free(&r);
    stop_all();
}
END_TEST

/* An adaptive pool: the grid and the JSON list the running workers, not the empty slots. */
START_TEST(test_running_workers_only)
{
    struct tl_resp r;

    start("workers = auto\nmin_workers = 2\nmax_workers = 64\nmin_spare = 2\nmax_spare = 4");
    admin_get("/status.json", &r);
    long long running = num_after(r.body, NULL, "\"running_workers\":");
    ck_assert_int_eq(num_after(r.body, NULL, "\"nworkers\":"), 64);
    ck_assert_msg(running >= 2 && running < 16, "%lld running", running);
    int listed = 0;
    for (const char *p = r.body; (p = strstr(p, "{\"slot\":")) != NULL; p++)
        listed++;
    tl_resp_free(&r);
    ck_assert_int_eq(listed, running);

    admin_get("/status", &r);
    int cells = 0;
    for (const char *p = r.body; (p = strstr(p, "<div class=\"cell ")) != NULL; p++)
        cells++;
    char want[64];
    snprintf(want, sizeof(want), "%lld running of 64 slots", running);
    /* the pool may change between the two reads; it does not here (no traffic) */
    ck_assert_msg(strstr(r.body, want) != NULL, "no \"%s\"", want);
    ck_assert_int_eq(cells, running);
    ck_assert(strstr(r.body, "w-free\" title") == NULL);
    tl_resp_free(&r);
    stop_all();
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("it_status");
    TCase *tc = tcase_create("status");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_own_answers_latency_breaker);
    tcase_add_test(tc, test_down_for);
    tcase_add_test(tc, test_rates);
    tcase_add_test(tc, test_reload_result);
    tcase_add_test(tc, test_running_workers_only);
    suite_add_tcase(s, tc);
    return tl_run(s);
}
