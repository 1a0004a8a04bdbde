/*
 * Unit tests for health_parse_status() (Check): one table of inputs, each
 * also fed byte by byte, so every prefix of a good status line must say
 * "need more" and garbage must be rejected as soon as it shows. Each input
 * sits against a guard page, as picohttpparser's tests do: an over-read
 * crashes.
 */
#include "health.h"
#include "testlib.h"

#include <check.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define S(lit) lit, sizeof(lit) - 1

struct status_case {
    const char *in;
    size_t len;    /* inputs may hold a NUL */
    int want;      /* the result for the whole input */
    size_t bad_at; /* -1 cases: the length of the shortest prefix already rejected */
};

static const struct status_case cases[] = {
    /* complete */
    {S("HTTP/1.1 200 OK\r\n"), 200, 0},
    {S("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"), 200, 0},
    {S("HTTP/1.0 204 No Content\r\n"), 204, 0},
    {S("HTTP/1.1 503 Service Unavailable\r\n"), 503, 0},
    {S("HTTP/1.1 301 "), 301, 0},
    {S("HTTP/1.1 100 Continue\r\n"), 100, 0},
    {S("HTTP/1.1 599 x"), 599, 0},
    {S("HTTP/1.9 200 OK"), 200, 0},          /* any 1.x minor version */
    {S("HTTP/1.1 200\r\n"), 200, 0},         /* no reason phrase, no SP */
    {S("HTTP/1.1 404\n"), 404, 0},           /* bare LF */
    {S("HTTP/1.1 200  two spaces"), 200, 0}, /* the reason phrase may start with anything */
    /* partial: need more */
    {S(""), 0, 0},
    {S("H"), 0, 0},
    {S("HTTP/1."), 0, 0},
    {S("HTTP/1.1"), 0, 0},
    {S("HTTP/1.1 "), 0, 0},
    {S("HTTP/1.1 2"), 0, 0},
    {S("HTTP/1.1 200"), 0, 0}, /* three digits only: a fourth could still follow */
    /* garbage */
    {S("http/1.1 200 OK\r\n"), -1, 1}, /* the protocol name is case-sensitive */
    {S("HTTP/2 200\r\n"), -1, 6},
    {S("HTTP/2.0 200 OK\r\n"), -1, 6},
    {S("HTTP/1.x 200 OK\r\n"), -1, 8},
    {S("HTTP/1.10 200 OK\r\n"), -1, 9},
    {S("HTTP/1.1  200 OK\r\n"), -1, 10}, /* two spaces before the code */
    {S("HTTP/1.1 2000 OK\r\n"), -1, 13},
    {S("HTTP/1.1 20 OK\r\n"), -1, 12},
    {S("HTTP/1.1 2O0 OK\r\n"), -1, 11},
    {S("HTTP/1.1 099 x\r\n"), -1, 10}, /* below 100 */
    {S("HTTP/1.1 600 x\r\n"), -1, 10}, /* above 599 */
    {S("HTTP/1.1 200\tOK\r\n"), -1, 13},
    {S(" HTTP/1.1 200 OK\r\n"), -1, 1},
    {S("\r\nHTTP/1.1 200 OK\r\n"), -1, 1},
    {S("SSH-2.0-OpenSSH_9.2p1\r\n"), -1, 1},
    {S("<html>"), -1, 1},
    {S("\x16\x03\x01\x02\x00"), -1, 1}, /* a TLS handshake from a TLS-only port */
    {S("HTTP/1.1 200 OK\0"), 200, 0},
    {S("HTTP/1.1 \0 OK"), -1, 10},
};

/* A readable page followed by a PROT_NONE one; inputs are copied to its very end. */
static char *guard;
static long page;

static void
guard_setup(void)
{
    page = sysconf(_SC_PAGESIZE);
    guard =
        mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(guard != MAP_FAILED);
    ck_assert(mprotect(guard + page, (size_t)page, PROT_NONE) == 0);
}

static void
guard_teardown(void)
{
    munmap(guard, (size_t)page * 2);
}

static int
parse_guarded(const char *s, size_t len)
{
    char *p = guard + page - len;
    memcpy(p, s, len);
    return health_parse_status(p, len);
}

START_TEST(t_status_table)
{
    const struct status_case *c = &cases[_i];
    size_t len = c->len;
    int got = parse_guarded(c->in, len);
    ck_assert_msg(got == c->want, "case %d \"%s\": got %d, want %d", _i, c->in, got, c->want);
}
END_TEST

/* Every prefix gives "need more" until the answer is decided, then the answer, never a flip. */
START_TEST(t_status_prefixes)
{
    const struct status_case *c = &cases[_i];
    size_t len = c->len;
    /* where the answer is known: the bad byte, the 13th byte of a status line, or never */
    size_t decided = c->want == -1 ? c->bad_at : c->want > 0 ? 13 : len + 1;
    for (size_t k = 0; k <= len; k++) {
        int got = parse_guarded(c->in, k);
        int want = k < decided ? 0 : c->want;
        ck_assert_msg(got == want, "case %d \"%s\" prefix %zu: got %d, want %d", _i, c->in, k, got,
                      want);
    }
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("unit_health");
    TCase *tc = tcase_create("parse_status");
    tcase_add_checked_fixture(tc, guard_setup, guard_teardown);
    tcase_add_loop_test(tc, t_status_table, 0, (int)NELEM(cases));
    tcase_add_loop_test(tc, t_status_prefixes, 0, (int)NELEM(cases));
    suite_add_tcase(s, tc);
    return tl_run(s);
}
