/*
 * Unit tests for src/balance.c (Check): smooth weighted round-robin over
 * the shared cursor, exclusion and retries, usability (health and
 * backups), least_conn, random (two choices), rendezvous hashing, several
 * processes, and the circuit breaker driven with explicit clock values.
 * Configs come from cfg_load_string(), the cursor and the counters from a
 * real shm table.
 */
#include "balance.h"
#include "config.h"
#include "log.h"
#include "shm.h"
#include "testlib.h"

#include <check.h>
#include <sched.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define MAX_SET 8

/* The clock of every pick that is not about time; far from 0 so that no fail window is open. */
#define NOW INT64_C(1000000)

/* Health check off: every server starts UP. */
#define RR "health_check = off\n"
#define LC "health_check = off\nbalance = least_conn\n"
#define RAND "health_check = off\nbalance = random\n"
#define HASH "health_check = off\nbalance = hash\n"

/* ---- fixtures --------------------------------------------------------------------------- */

/* A loaded config, its shared table and the balancer over them. */
struct fixture {
    struct config *cfg;
    struct shm *shm;
    struct balance bal;
};

static void
setup_text(struct fixture *f, const char *text)
{
    char err[512] = "";

    f->cfg = cfg_load_string(text, "t.ini", err, sizeof(err));
    ck_assert_msg(f->cfg != NULL, "config: %s\n%s", err, text);
    f->shm = shm_create(f->cfg, 1);
    ck_assert_msg(f->shm != NULL, "shm_create: %s", strerror(errno));
    ck_assert_int_eq(balance_init(&f->bal, f->cfg), 0);
}

/* Group "app" with the keys <head> and the server lines <servers>. */
static void
setup_app(struct fixture *f, const char *head, const char *servers)
{
    char text[8192];
    int len = snprintf(text, sizeof(text),
                       "[proxy]\nlisten = 127.0.0.1:0\nupstream = app\n"
                       "[upstream app]\n%s%s",
                       head, servers);

    ck_assert(len > 0 && (size_t)len < sizeof(text));
    setup_text(f, text);
}

/* Group "app" with <head> and one server per weight, on <ports> (NULL: 3001, 3002, ...). */
static void
setup_weights(struct fixture *f, const char *head, const unsigned *w, const unsigned *ports,
              size_t n)
{
    char lines[4096];
    size_t len = 0;

    lines[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        len +=
            (size_t)snprintf(lines + len, sizeof(lines) - len, "server = 127.0.0.1:%u weight=%u\n",
                             ports ? ports[i] : 3001 + (unsigned)i, w[i]);
        ck_assert_uint_lt(len, sizeof(lines));
    }
    setup_app(f, head, lines);
}

static void
teardown(struct fixture *f)
{
    balance_free(&f->bal);
    shm_destroy(f->shm);
    cfg_free(f->cfg);
}

/* A new request's pick, in group 0: the server, or -1. */
static int
pick_at(struct fixture *f, const struct balance_set *ex, int64_t now, bool *trial)
{
    struct balance_ticket t = {0};

    balance_pick(&f->bal, f->shm, 0, ex, NULL, 0, now, &t);
    if (trial != NULL)
        *trial = t.trial;
    else
        ck_assert(!t.trial);
    ck_assert_msg(t.server >= -1 && t.server < (int)f->cfg->groups[0].nservers, "server %d",
                  t.server);
    return t.server;
}

static int
pick(struct fixture *f, const struct balance_set *ex)
{
    return pick_at(f, ex, NOW, NULL);
}

static int
pick_key(struct fixture *f, const struct balance_set *ex, const char *key)
{
    struct balance_ticket t = {0};

    balance_pick(&f->bal, f->shm, 0, ex, key, strlen(key), NOW, &t);
    ck_assert_msg(t.server >= -1 && t.server < (int)f->cfg->groups[0].nservers, "server %d",
                  t.server);
    return t.server;
}

/* The address of server <s> of group 0 ("" for -1), to compare picks across configs. */
static const char *
addr_of(const struct fixture *f, int s)
{
    return s < 0 ? "" : f->cfg->groups[0].servers[s].addr.text;
}

/* The <i>th of many distinct client addresses. */
static const char *
key_of(unsigned i, char *buf, size_t len)
{
    snprintf(buf, len, "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    return buf;
}

static struct shm_server *
srv(struct fixture *f, size_t s)
{
    return shm_srv(f->shm, 0, s);
}

static void
set_health(struct fixture *f, size_t s, int health)
{
    atomic_store(&srv(f, s)->health, health);
}

static uint64_t
cursor(struct fixture *f)
{
    return atomic_load(&f->shm->groups[0].rr_cursor);
}

/* Reports <n> failures of server <s> (not trials) at <now>. */
static void
fail_n(struct fixture *f, size_t s, unsigned n, int64_t now)
{
    struct balance_ticket t = {.server = (int)s};

    for (unsigned k = 0; k < n; k++)
        balance_done(&f->bal, f->shm, 0, &t, false, now);
}

/* ---- round-robin: the sequence ---------------------------------------------------------- */

/* One weight set; apart[] is a pair of servers never picked one right after the other. */
struct weight_case {
    unsigned w[MAX_SET];
    size_t n;
    int apart[2]; /* -1: no such pair */
};

static const struct weight_case weight_cases[] = {
    {{1, 1, 1}, 3, {0, 0}}, /* plain round-robin: never the same one twice */
    {{3, 1}, 2, {1, 1}},    /* the lone server never twice in a row */
    {{5, 1, 1}, 3, {1, 2}}, /* the two light ones never next to each other */
    {{2, 3, 5}, 3, {0, 0}}, /* the lightest one never twice in a row */
    {{1}, 1, {-1, -1}},     /* a single server */
    {{100, 1}, 2, {1, 1}},  /* the largest weight against the smallest */
};

static unsigned
sum_of(const unsigned *w, size_t n)
{
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += w[i];
    return sum;
}

#define ROUNDS 3

/*
 * Over ROUNDS * sum(weights) picks from a fresh cursor:
 *  - every server is picked exactly ROUNDS * weight times;
 *  - every window of sum(weights) consecutive picks holds each server
 *    exactly weight times (the sequence repeats with that period);
 *  - smooth: after every prefix of t picks, each server's count is less
 *    than one pick away from its share t * weight / sum (this is what tells
 *    "a a b a c a a" from "a a a a a b c" for 5,1,1; nginx's algorithm keeps
 *    to it);
 *  - the case's <apart> pair is never adjacent;
 *  - each pick (a new request) takes one slot of the cursor.
 */
START_TEST(test_sequence)
{
    const struct weight_case *c = &weight_cases[_i];
    const unsigned sum = sum_of(c->w, c->n);
    const size_t npicks = ROUNDS * (size_t)sum;
    struct fixture f;
    int *picks = malloc(npicks * sizeof(*picks));
    unsigned count[MAX_SET] = {0};

    ck_assert_ptr_nonnull(picks);
    setup_weights(&f, RR, c->w, NULL, c->n);
    for (size_t t = 0; t < npicks; t++) {
        picks[t] = pick(&f, NULL);
        ck_assert_msg(picks[t] >= 0, "case %d: pick %zu = %d", _i, t, picks[t]);
    }
    ck_assert_uint_eq(cursor(&f), npicks);

    for (size_t t = 0; t < npicks; t++)
        count[picks[t]]++;
    for (size_t s = 0; s < c->n; s++)
        ck_assert_msg(count[s] == ROUNDS * c->w[s], "case %d: server %zu picked %u times, want %u",
                      _i, s, count[s], ROUNDS * c->w[s]);

    for (size_t start = 0; start + sum <= npicks; start++) {
        unsigned win[MAX_SET] = {0};
        for (size_t t = start; t < start + sum; t++)
            win[picks[t]]++;
        for (size_t s = 0; s < c->n; s++)
            ck_assert_msg(win[s] == c->w[s],
                          "case %d: window at %zu has server %zu %u times, want %u", _i, start, s,
                          win[s], c->w[s]);
    }

    unsigned pre[MAX_SET] = {0};
    for (size_t t = 1; t <= sum; t++) {
        pre[picks[t - 1]]++;
        for (size_t s = 0; s < c->n; s++) {
            /* |pre * sum - t * w| < sum, in integers */
            long dev = (long)pre[s] * (long)sum - (long)t * (long)c->w[s];
            ck_assert_msg(labs(dev) < (long)sum,
                          "case %d: not smooth: server %zu has %u of the first %zu picks", _i, s,
                          pre[s], t);
        }
    }

    if (c->apart[0] >= 0)
        for (size_t t = 1; t < npicks; t++) {
            int a = picks[t - 1], b = picks[t];
            ck_assert_msg(!((a == c->apart[0] && b == c->apart[1]) ||
                            (a == c->apart[1] && b == c->apart[0])),
                          "case %d: servers %d and %d adjacent at pick %zu", _i, a, b, t);
        }

    free(picks);
    teardown(&f);
}
END_TEST

/* The documented example: weights 3,1 give a a b a (nginx's order, from a fresh cursor). */
START_TEST(test_sequence_nginx_order)
{
    static const unsigned w[] = {3, 1};
    static const int want[] = {0, 0, 1, 0, 0, 0, 1, 0};
    struct fixture f;

    setup_weights(&f, RR, w, NULL, NELEM(w));
    for (size_t t = 0; t < NELEM(want); t++)
        ck_assert_int_eq(pick(&f, NULL), want[t]);
    teardown(&f);
}
END_TEST

/* ---- exclusion -------------------------------------------------------------------------- */

/*
 * For every server j: excluding all others always gives j; excluding j
 * never does; excluding everyone gives -1. Every pick that found a server
 * took exactly one slot of the cursor, however many it skipped.
 */
START_TEST(test_exclude)
{
    const struct weight_case *c = &weight_cases[_i];
    const unsigned sum = sum_of(c->w, c->n);
    struct fixture f;
    struct balance_set all = {{0}};
    uint64_t found = 0, calls = 0;

    setup_weights(&f, RR, c->w, NULL, c->n);
    for (size_t s = 0; s < c->n; s++)
        balance_set_add(&all, s);

    for (size_t j = 0; j < c->n; j++) {
        struct balance_set others = {{0}}, only_j = {{0}};
        for (size_t s = 0; s < c->n; s++)
            if (s != j)
                balance_set_add(&others, s);
        balance_set_add(&only_j, j);
        for (unsigned k = 0; k < 2 * sum; k++, calls += 2) {
            int p = pick(&f, &others);
            ck_assert_msg(p == (int)j, "case %d: all but %zu excluded, got %d", _i, j, p);
            found++;
            p = pick(&f, &only_j);
            if (c->n == 1) {
                ck_assert_msg(p == -1, "case %d: only server excluded, got %d", _i, p);
            } else {
                ck_assert_msg(p >= 0 && (size_t)p != j, "case %d: %zu excluded, got %d", _i, j, p);
                found++;
            }
        }
    }
    for (unsigned k = 0; k < 2 * sum; k++, calls++)
        ck_assert_int_eq(pick(&f, &all), -1);

    /* Whether a pick that found nothing takes a slot is left open. */
    ck_assert_uint_ge(cursor(&f), found);
    ck_assert_uint_le(cursor(&f), calls);
    teardown(&f);
}
END_TEST

/* An empty exclude set is the same as none: the counts still follow the weights. */
START_TEST(test_exclude_empty)
{
    static const unsigned w[] = {2, 3, 5};
    struct fixture f;
    struct balance_set none = {{0}};
    unsigned count[NELEM(w)] = {0};

    setup_weights(&f, RR, w, NULL, NELEM(w));
    for (int t = 0; t < 100; t++) {
        int p = pick(&f, &none);
        ck_assert(p >= 0);
        count[p]++;
    }
    for (size_t s = 0; s < NELEM(w); s++)
        ck_assert_uint_eq(count[s], 10 * w[s]);
    teardown(&f);
}
END_TEST

/* Server indexes above 63 live in the second word of the set. */
START_TEST(test_exclude_high_index)
{
    char lines[4096];
    size_t len = 0;
    struct fixture f;
    struct balance_set ex = {{0}};

    for (int i = 0; i < 70; i++)
        len += (size_t)snprintf(lines + len, sizeof(lines) - len, "server = 127.0.0.1:%d\n",
                                4000 + i);
    ck_assert_uint_lt(len, sizeof(lines));
    setup_app(&f, RR, lines);
    for (size_t s = 0; s < 70; s++)
        if (s != 66)
            balance_set_add(&ex, s);
    for (int t = 0; t < 140; t++)
        ck_assert_int_eq(pick(&f, &ex), 66);
    teardown(&f);
}
END_TEST

/* ---- retries: one ticket, one slot ------------------------------------------------------ */

struct retry_case {
    const char *head;
    bool slots; /* the algorithm uses the shared cursor: a fresh ticket takes a new slot */
};

static const struct retry_case retry_cases[] = {
    {RR, true},
    {LC, true},
    {RAND, false},
    {HASH, false},
};

/*
 * One request tries the three servers in turn, each retry excluding what
 * it tried: every retry gives a server not tried yet and moves the cursor
 * no further; with all tried, -1. A fresh ticket takes the next slot.
 */
START_TEST(test_retry)
{
    static const unsigned w[] = {1, 1, 1};
    const struct retry_case *c = &retry_cases[_i];
    struct fixture f;
    struct balance_set tried = {{0}};
    struct balance_ticket t = {0};

    setup_weights(&f, c->head, w, NULL, NELEM(w));
    balance_pick(&f.bal, f.shm, 0, &tried, "k", 1, NOW, &t);
    ck_assert_int_ge(t.server, 0);
    const uint64_t after_first = cursor(&f);
    if (c->slots)
        ck_assert_uint_eq(after_first, 1);

    for (size_t k = 1; k < NELEM(w); k++) {
        int prev = t.server;
        balance_set_add(&tried, (size_t)prev);
        balance_pick(&f.bal, f.shm, 0, &tried, "k", 1, NOW, &t);
        ck_assert_msg(t.server >= 0 && !balance_set_has(&tried, (size_t)t.server),
                      "case %d: retry %zu after %d gave %d", _i, k, prev, t.server);
        ck_assert_msg(cursor(&f) == after_first, "case %d: retry %zu moved the cursor to %llu", _i,
                      k, (unsigned long long)cursor(&f));
    }
    balance_set_add(&tried, (size_t)t.server);
    balance_pick(&f.bal, f.shm, 0, &tried, "k", 1, NOW, &t);
    ck_assert_int_eq(t.server, -1);
    ck_assert_uint_eq(cursor(&f), after_first);

    struct balance_ticket fresh = {0};
    balance_pick(&f.bal, f.shm, 0, NULL, "k", 1, NOW, &fresh);
    ck_assert_int_ge(fresh.server, 0);
    if (c->slots)
        ck_assert_uint_eq(cursor(&f), after_first + 1);
    teardown(&f);
}
END_TEST

/* ---- usability: health and backups ------------------------------------------------------ */

#define UNK SHM_HEALTH_UNKNOWN
#define UP SHM_HEALTH_UP
#define DOWN SHM_HEALTH_DOWN

/* Two primaries of weight 1 and 2, two backups of weight 1 and 2. */
#define PB                                                                                        \
    "server = 127.0.0.1:3001\nserver = 127.0.0.1:3002 weight=2\n"                                 \
    "server = 127.0.0.1:3003 backup\nserver = 127.0.0.1:3004 weight=2 backup\n"
#define P3 "server = 127.0.0.1:3001\nserver = 127.0.0.1:3002\nserver = 127.0.0.1:3003\n"

/*
 * Health check on (the default): the table starts UNKNOWN and each case sets
 * every server's health. Counts over 12 picks; <none> picks found no server.
 * The chosen tier is always fully usable or down to one server here, so the
 * counts are exact (spread over a partly usable tier: test_rr_spread).
 */
struct usable_case {
    const char *servers;
    int health[MAX_SET];
    unsigned want[MAX_SET];
    unsigned none;
};

static const struct usable_case usable_cases[] = {
    {P3, {UP, UP, UP}, {4, 4, 4}, 0},
    {P3, {UP, UNK, DOWN}, {12, 0, 0}, 0},
    {P3, {DOWN, UNK, UP}, {0, 0, 12}, 0},
    {P3, {UNK, UNK, UNK}, {0, 0, 0}, 12},
    {P3, {DOWN, DOWN, DOWN}, {0, 0, 0}, 12},
    {P3, {UNK, DOWN, UNK}, {0, 0, 0}, 12},
    {PB, {UP, UP, UP, UP}, {4, 8, 0, 0}, 0},    /* backups idle */
    {PB, {UP, DOWN, UP, UP}, {12, 0, 0, 0}, 0}, /* one primary is enough */
    {PB, {UNK, UP, UP, UP}, {0, 12, 0, 0}, 0},
    {PB, {DOWN, UNK, UP, UP}, {0, 0, 4, 8}, 0}, /* backups, weighted */
    {PB, {DOWN, DOWN, DOWN, UP}, {0, 0, 0, 12}, 0},
    {PB, {UNK, DOWN, UP, UNK}, {0, 0, 12, 0}, 0},
    {PB, {DOWN, DOWN, DOWN, DOWN}, {0, 0, 0, 0}, 12},
    {PB, {UP, UP, DOWN, DOWN}, {4, 8, 0, 0}, 0},
};

START_TEST(test_usable)
{
    const struct usable_case *c = &usable_cases[_i];
    struct fixture f;
    unsigned count[MAX_SET] = {0}, none = 0;

    setup_app(&f, "", c->servers);
    ck_assert(f.cfg->groups[0].health_check);
    const size_t n = f.cfg->groups[0].nservers;
    for (size_t s = 0; s < n; s++) {
        ck_assert_int_eq(atomic_load(&srv(&f, s)->health), SHM_HEALTH_UNKNOWN);
        set_health(&f, s, c->health[s]);
    }
    for (size_t s = 0; s < n; s++)
        ck_assert_msg(balance_usable(&f.bal, f.shm, 0, s, NOW) == (c->health[s] == UP),
                      "case %d: server %zu health %d: usable %d", _i, s, c->health[s],
                      balance_usable(&f.bal, f.shm, 0, s, NOW));
    for (int t = 0; t < 12; t++) {
        int p = pick(&f, NULL);
        if (p < 0)
            none++;
        else
            count[p]++;
    }
    for (size_t s = 0; s < n; s++)
        ck_assert_msg(count[s] == c->want[s], "case %d: server %zu picked %u times, want %u", _i,
                      s, count[s], c->want[s]);
    ck_assert_msg(none == c->none, "case %d: %u picks found none, want %u", _i, none, c->none);
    teardown(&f);
}
END_TEST

/* Counts of 12 picks at <now> into <count> (4 servers); trials must not happen. */
static void
count12(struct fixture *f, int64_t now, unsigned *count)
{
    memset(count, 0, 4 * sizeof(*count));
    for (int t = 0; t < 12; t++) {
        int p = pick_at(f, NULL, now, NULL);
        ck_assert_int_ge(p, 0);
        count[p]++;
    }
}

#define ASSERT_COUNTS(count, a, b, c, d)                                                          \
    do {                                                                                          \
        const unsigned want_[4] = {a, b, c, d};                                                   \
        for (size_t s_ = 0; s_ < 4; s_++)                                                         \
            ck_assert_msg((count)[s_] == want_[s_], "line %d: server %zu picked %u, want %u",     \
                          __LINE__, s_, (count)[s_], want_[s_]);                                  \
    } while (0)

/*
 * One group through a failover and back: backups take over when the
 * primaries go down or their breakers open, and hand back as soon as one
 * primary is usable again (a breaker's trial request goes to the primary).
 */
START_TEST(test_backup_failover)
{
    struct fixture f;
    unsigned count[4];

    setup_app(&f, "max_fails = 3\ncooldown = 1s\n", PB);
    for (size_t s = 0; s < 4; s++)
        set_health(&f, s, UP);
    count12(&f, NOW, count);
    ASSERT_COUNTS(count, 4, 8, 0, 0);

    set_health(&f, 0, DOWN);
    set_health(&f, 1, DOWN);
    count12(&f, NOW, count);
    ASSERT_COUNTS(count, 0, 0, 4, 8);

    set_health(&f, 1, UP);
    count12(&f, NOW, count);
    ASSERT_COUNTS(count, 0, 12, 0, 0);

    /* The breaker makes a primary just as unusable as its health does. */
    fail_n(&f, 1, 3, NOW);
    ck_assert_int_eq(shm_breaker_state(srv(&f, 1)), SHM_BREAKER_OPEN);
    count12(&f, NOW + 999, count);
    ASSERT_COUNTS(count, 0, 0, 4, 8);

    /* After the cooldown the primary gets the trial, the backups the rest meanwhile. */
    struct balance_ticket t = {0};
    balance_pick(&f.bal, f.shm, 0, NULL, NULL, 0, NOW + 1000, &t);
    ck_assert_int_eq(t.server, 1);
    ck_assert(t.trial);
    count12(&f, NOW + 1001, count);
    ASSERT_COUNTS(count, 0, 0, 4, 8);
    balance_done(&f.bal, f.shm, 0, &t, true, NOW + 1002);
    count12(&f, NOW + 1003, count);
    ASSERT_COUNTS(count, 0, 12, 0, 0);

    set_health(&f, 0, UP);
    count12(&f, NOW + 1004, count);
    ASSERT_COUNTS(count, 4, 8, 0, 0);
    teardown(&f);
}
END_TEST

/*
 * Round-robin over a tier of which some servers are unusable: the usable
 * ones share the traffic by their weights, as nginx's smooth round-robin
 * does when it skips down peers. A down server must not hand its whole
 * share to the one after it in the sequence (with 1,1,1 and the first down,
 * that would double the second's load). Shares in percent, +-5.
 */
struct spread_case {
    unsigned w[MAX_SET];
    size_t n;
    int health[MAX_SET];
    double want[MAX_SET];
};

static const struct spread_case spread_cases[] = {
    {{1, 1, 1}, 3, {DOWN, UP, UP}, {0, 50, 50}},
    {{1, 1, 1}, 3, {UP, DOWN, UP}, {50, 0, 50}},
    {{1, 1, 1, 1}, 4, {UP, DOWN, UP, UP}, {33.3, 0, 33.3, 33.3}},
    {{3, 1, 1}, 3, {UP, UP, DOWN}, {75, 25, 0}},
    {{2, 3, 5}, 3, {UP, UP, DOWN}, {40, 60, 0}},
    {{2, 3, 5}, 3, {DOWN, UP, UP}, {0, 37.5, 62.5}},
};

START_TEST(test_rr_spread)
{
    const struct spread_case *c = &spread_cases[_i];
    const unsigned npicks = 120 * sum_of(c->w, c->n);
    struct fixture f;
    unsigned count[MAX_SET] = {0};

    setup_weights(&f, "", c->w, NULL, c->n);
    for (size_t s = 0; s < c->n; s++)
        set_health(&f, s, c->health[s]);
    for (unsigned t = 0; t < npicks; t++) {
        int p = pick(&f, NULL);
        ck_assert_int_ge(p, 0);
        count[p]++;
    }
    for (size_t s = 0; s < c->n; s++) {
        double pct = 100.0 * count[s] / npicks;
        ck_assert_msg(pct >= c->want[s] - 5 && pct <= c->want[s] + 5,
                      "case %d: server %zu got %.1f%% of %u picks, want %.1f%%", _i, s, pct,
                      npicks, c->want[s]);
    }
    teardown(&f);
}
END_TEST

/* Each group has its own sequence and cursor. */
START_TEST(test_groups)
{
    static const char text[] = "[proxy]\nlisten = 127.0.0.1:0\nupstream = app\n"
                               "[upstream app]\nhealth_check = off\n"
                               "server = 127.0.0.1:3001\nserver = 127.0.0.1:3002\n"
                               "[upstream other]\nhealth_check = off\n"
                               "server = 127.0.0.1:4001 weight=2\n"
                               "server = 127.0.0.1:4002\nserver = 127.0.0.1:4003\n";
    struct fixture f;
    unsigned c0[2] = {0}, c1[3] = {0};

    setup_text(&f, text);
    ck_assert_uint_eq(f.cfg->ngroups, 2);
    ck_assert_uint_eq(f.bal.ngroups, 2);
    /* Uneven interleaving: group 1 is picked three times as often. */
    for (int t = 0; t < 40; t++) {
        struct balance_ticket t0 = {0};
        balance_pick(&f.bal, f.shm, 0, NULL, NULL, 0, NOW, &t0);
        ck_assert(t0.server >= 0 && t0.server < 2);
        c0[t0.server]++;
        for (int k = 0; k < 3; k++) {
            struct balance_ticket t1 = {0};
            balance_pick(&f.bal, f.shm, 1, NULL, NULL, 0, NOW, &t1);
            ck_assert(t1.server >= 0 && t1.server < 3);
            c1[t1.server]++;
        }
    }
    ck_assert_uint_eq(c0[0], 20);
    ck_assert_uint_eq(c0[1], 20);
    ck_assert_uint_eq(c1[0], 60);
    ck_assert_uint_eq(c1[1], 30);
    ck_assert_uint_eq(c1[2], 30);
    ck_assert_uint_eq(atomic_load(&f.shm->groups[0].rr_cursor), 40);
    ck_assert_uint_eq(atomic_load(&f.shm->groups[1].rr_cursor), 120);
    teardown(&f);
}
END_TEST

/* ---- several processes on one cursor ---------------------------------------------------- */

#define NCHILD 4
#define CHILD_PICKS 1000

struct fork_case {
    unsigned w[MAX_SET];
    size_t n;
};

static const struct fork_case fork_cases[] = {
    {{1, 1}, 2},
    {{3, 1}, 2},
    {{2, 3, 5}, 3},
};

/*
 * NCHILD processes pick CHILD_PICKS times each at once and report their
 * counts through a pipe. The cursor is one atomic counter, so the
 * NCHILD * CHILD_PICKS picks are exactly that many consecutive steps of the
 * sequence: the totals match the weights exactly whatever the interleaving
 * (NCHILD * CHILD_PICKS is a multiple of every sum here).
 */
START_TEST(test_processes)
{
    const struct fork_case *c = &fork_cases[_i];
    const unsigned sum = sum_of(c->w, c->n);
    struct fixture f;
    unsigned total[MAX_SET] = {0};
    pid_t pids[NCHILD];
    int pfd[2];

    setup_weights(&f, RR, c->w, NULL, c->n);
    ck_assert_uint_eq((NCHILD * CHILD_PICKS) % sum, 0);
    ck_assert_int_ne(pipe(pfd), -1);

    for (int k = 0; k < NCHILD; k++) {
        pids[k] = fork();
        ck_assert_int_ne(pids[k], -1);
        if (pids[k] == 0) {
            unsigned count[MAX_SET] = {0};
            close(pfd[0]);
            for (int t = 0; t < CHILD_PICKS; t++) {
                struct balance_ticket tk = {0};
                balance_pick(&f.bal, f.shm, 0, NULL, NULL, 0, NOW, &tk);
                if (tk.server < 0 || (size_t)tk.server >= c->n)
                    _exit(2);
                count[tk.server]++;
            }
            /* One write of under PIPE_BUF bytes: atomic, never interleaved. */
            _exit(write(pfd[1], count, sizeof(count)) == (ssize_t)sizeof(count) ? 0 : 3);
        }
    }
    close(pfd[1]);

    for (int k = 0; k < NCHILD; k++) {
        unsigned count[MAX_SET];
        ssize_t r = read(pfd[0], count, sizeof(count));
        ck_assert_int_eq(r, (ssize_t)sizeof(count));
        unsigned got = 0;
        for (size_t s = 0; s < MAX_SET; s++) {
            total[s] += count[s];
            got += count[s];
        }
        ck_assert_uint_eq(got, CHILD_PICKS);
    }
    close(pfd[0]);
    for (int k = 0; k < NCHILD; k++) {
        int st;
        ck_assert_int_eq(waitpid(pids[k], &st, 0), pids[k]);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d: status %#x", k, st);
    }

    for (size_t s = 0; s < c->n; s++)
        ck_assert_msg(total[s] == NCHILD * CHILD_PICKS / sum * c->w[s],
                      "case %d: server %zu picked %u times, want %u", _i, s, total[s],
                      NCHILD * CHILD_PICKS / sum * c->w[s]);
    ck_assert_uint_eq(cursor(&f), NCHILD * CHILD_PICKS);
    teardown(&f);
}
END_TEST

/* ---- least_conn ------------------------------------------------------------------------- */

/*
 * Active counts and weights -> the servers with the fewest active requests
 * per weight (<best>, one or several when tied). Every pick is one of them,
 * and over 4 * n picks every tied one is picked (ties rotate).
 */
struct lc_case {
    unsigned w[MAX_SET];
    int64_t active[MAX_SET];
    size_t n;
    bool best[MAX_SET];
};

static const struct lc_case lc_cases[] = {
    {{1, 1, 1}, {5, 2, 7}, 3, {0, 1, 0}},
    {{1, 1, 1}, {10, 10, 9}, 3, {0, 0, 1}},
    {{1, 1, 1}, {0, 1, 1}, 3, {1, 0, 0}},
    {{3, 1}, {3, 2}, 2, {1, 0}}, /* 1 per weight against 2 */
    {{3, 1}, {7, 2}, 2, {0, 1}}, /* 2.33 against 2 */
    {{5, 1, 1}, {4, 1, 1}, 3, {1, 0, 0}},
    {{100, 1}, {100, 0}, 2, {0, 1}},
    {{100, 1}, {99, 1}, 2, {1, 0}},
    {{2, 3, 5}, {9, 3, 4}, 3, {0, 0, 1}},
    {{1}, {50}, 1, {1}},
    /* ties */
    {{1, 1, 1}, {0, 0, 0}, 3, {1, 1, 1}},
    {{1, 1, 1}, {4, 4, 4}, 3, {1, 1, 1}},
    {{1, 1, 1}, {1, 1, 5}, 3, {1, 1, 0}},
    {{2, 1}, {2, 1}, 2, {1, 1}},
    {{3, 1}, {6, 2}, 2, {1, 1}},
    {{1, 1, 1, 1}, {3, 0, 3, 0}, 4, {0, 1, 0, 1}},
    {{2, 3, 5}, {2, 3, 5}, 3, {1, 1, 1}},
};

START_TEST(test_least_conn)
{
    const struct lc_case *c = &lc_cases[_i];
    struct fixture f;
    unsigned count[MAX_SET] = {0};

    setup_weights(&f, LC, c->w, NULL, c->n);
    for (size_t s = 0; s < c->n; s++)
        atomic_store(&srv(&f, s)->active, c->active[s]);
    for (size_t t = 0; t < 4 * c->n; t++) {
        int p = pick(&f, NULL);
        ck_assert_msg(p >= 0 && c->best[p], "case %d: pick %zu gave server %d", _i, t, p);
        count[p]++;
    }
    for (size_t s = 0; s < c->n; s++)
        ck_assert_msg(!c->best[s] || count[s] > 0, "case %d: tied server %zu never picked", _i, s);
    teardown(&f);
}
END_TEST

/* ---- shares: random and hash ------------------------------------------------------------ */

#define SHARE_PICKS 10000

/* Weights and active counts -> each server's share of SHARE_PICKS, in percent, lo..hi. */
struct share_case {
    unsigned w[MAX_SET];
    int64_t active[MAX_SET];
    size_t n;
    double lo[MAX_SET], hi[MAX_SET];
};

static const struct share_case random_cases[] = {
    {{1, 1, 1}, {0, 0, 0}, 3, {30.3, 30.3, 30.3}, {36.3, 36.3, 36.3}},
    {{1, 1, 1}, {7, 7, 7}, 3, {30.3, 30.3, 30.3}, {36.3, 36.3, 36.3}},
    {{3, 1}, {0, 0}, 2, {72, 22}, {78, 28}},
    {{2, 3, 5}, {0, 0, 0}, 3, {17, 27, 47}, {23, 33, 53}},
    {{1}, {0}, 1, {100}, {100}},
    /* heavily loaded: picked only when both choices fall on it (1/9 if they can) */
    {{1, 1, 1}, {100, 0, 0}, 3, {0, 40, 40}, {15, 60, 60}},
    {{1, 1, 1, 1}, {100, 100, 0, 0}, 4, {0, 0, 35, 35}, {15, 15, 65, 65}},
};

static const struct share_case hash_cases[] = {
    {{1, 1, 1, 1}, {0}, 4, {21, 21, 21, 21}, {29, 29, 29, 29}},
    {{1, 1}, {0}, 2, {46, 46}, {54, 54}},
    /* weight 3 among weight 1: 3/6 of the keys, 3 times each other's 1/6 */
    {{3, 1, 1, 1}, {0}, 4, {46, 12.7, 12.7, 12.7}, {54, 20.7, 20.7, 20.7}},
    {{2, 3, 5}, {0}, 3, {16, 26, 46}, {24, 34, 54}},
    /* active counts don't matter to hashing */
    {{1, 1, 1, 1}, {100, 0, 0, 0}, 4, {21, 21, 21, 21}, {29, 29, 29, 29}},
};

static void
check_shares(const struct share_case *c, int i, const unsigned *count)
{
    for (size_t s = 0; s < c->n; s++) {
        double pct = 100.0 * count[s] / SHARE_PICKS;
        ck_assert_msg(pct >= c->lo[s] && pct <= c->hi[s],
                      "case %d: server %zu got %.2f%%, want %.1f..%.1f%%", i, s, pct, c->lo[s],
                      c->hi[s]);
    }
}

START_TEST(test_random)
{
    const struct share_case *c = &random_cases[_i];
    struct fixture f;
    unsigned count[MAX_SET] = {0};

    setup_weights(&f, RAND, c->w, NULL, c->n);
    for (size_t s = 0; s < c->n; s++)
        atomic_store(&srv(&f, s)->active, c->active[s]);
    for (int t = 0; t < SHARE_PICKS; t++) {
        int p = pick(&f, NULL);
        ck_assert_int_ge(p, 0);
        count[p]++;
    }
    check_shares(c, _i, count);
    teardown(&f);
}
END_TEST

/* SHARE_PICKS distinct keys, one pick each. */
START_TEST(test_hash_spread)
{
    const struct share_case *c = &hash_cases[_i];
    struct fixture f;
    unsigned count[MAX_SET] = {0};
    char key[32];

    setup_weights(&f, HASH, c->w, NULL, c->n);
    for (size_t s = 0; s < c->n; s++)
        atomic_store(&srv(&f, s)->active, c->active[s]);
    for (unsigned i = 0; i < SHARE_PICKS; i++) {
        int p = pick_key(&f, NULL, key_of(i, key, sizeof(key)));
        ck_assert_int_ge(p, 0);
        count[p]++;
    }
    check_shares(c, _i, count);
    teardown(&f);
}
END_TEST

/* ---- hash: stable and consistent -------------------------------------------------------- */

#define HASH_KEYS 10000

/* The same key gives the same server, whatever happened in between and whatever the key's form. */
START_TEST(test_hash_stable)
{
    static const unsigned w[] = {1, 1, 1, 1};
    static const char *const odd[] = {"", "x", "[::1]", "a fairly long header value, with spaces"};
    struct fixture f;
    char key[32];
    int first[1000];

    setup_weights(&f, HASH, w, NULL, NELEM(w));
    for (unsigned i = 0; i < NELEM(first); i++)
        first[i] = pick_key(&f, NULL, key_of(i, key, sizeof(key)));
    for (int round = 0; round < 3; round++)
        for (unsigned i = 0; i < NELEM(first); i++) {
            /* other traffic in between moves no cursor that matters */
            atomic_store(&srv(&f, i % 4)->active, (int64_t)(i * 7 % 13));
            ck_assert_int_eq(pick_key(&f, NULL, key_of(i, key, sizeof(key))), first[i]);
        }
    for (size_t k = 0; k < NELEM(odd); k++) {
        int p = pick_key(&f, NULL, odd[k]);
        ck_assert_int_ge(p, 0);
        for (int round = 0; round < 3; round++)
            ck_assert_int_eq(pick_key(&f, NULL, odd[k]), p);
    }
    teardown(&f);
}
END_TEST

#define NHASH 5

/*
 * Removing server <_i> of 5 (the others keep their addresses, their indexes
 * shift): only the keys it had move, and about 1/5 of them did.
 */
START_TEST(test_hash_remove)
{
    static const unsigned w[NHASH + 1] = {1, 1, 1, 1, 1, 1};
    unsigned all[NHASH], rest[NHASH - 1];
    struct fixture a, b;
    char key[32], removed[64];
    unsigned moved = 0;

    for (size_t s = 0, r = 0; s < NHASH; s++) {
        all[s] = 3001 + (unsigned)s;
        if (s != (size_t)_i)
            rest[r++] = all[s];
    }
    setup_weights(&a, HASH, w, all, NHASH);
    setup_weights(&b, HASH, w, rest, NHASH - 1);
    snprintf(removed, sizeof(removed), "%s", addr_of(&a, _i));
    for (unsigned i = 0; i < HASH_KEYS; i++) {
        key_of(i, key, sizeof(key));
        const char *before = addr_of(&a, pick_key(&a, NULL, key));
        const char *after = addr_of(&b, pick_key(&b, NULL, key));
        ck_assert_str_ne(after, "");
        if (strcmp(before, removed) == 0)
            moved++;
        else
            ck_assert_msg(strcmp(before, after) == 0, "key %s moved from %s to %s (removed %s)",
                          key, before, after, removed);
    }
    ck_assert_msg(moved > HASH_KEYS * 15 / 100 && moved < HASH_KEYS * 25 / 100,
                  "%u of %u keys were on the removed server", moved, HASH_KEYS);
    teardown(&a);
    teardown(&b);
}
END_TEST

/* Adding a sixth server: about 1/6 of the keys move, and all of them to it. */
START_TEST(test_hash_add)
{
    static const unsigned w[NHASH + 1] = {1, 1, 1, 1, 1, 1};
    static const unsigned ports[NHASH + 1] = {3001, 3002, 3003, 3004, 3005, 3006};
    struct fixture a, b;
    char key[32];
    unsigned moved = 0;

    setup_weights(&a, HASH, w, ports, NHASH);
    setup_weights(&b, HASH, w, ports, NHASH + 1);
    for (unsigned i = 0; i < HASH_KEYS; i++) {
        key_of(i, key, sizeof(key));
        const char *before = addr_of(&a, pick_key(&a, NULL, key));
        const char *after = addr_of(&b, pick_key(&b, NULL, key));
        if (strcmp(before, after) != 0) {
            moved++;
            ck_assert_msg(strcmp(after, "127.0.0.1:3006") == 0,
                          "key %s moved from %s to %s, not to the new server", key, before, after);
        }
    }
    ck_assert_msg(moved >= HASH_KEYS * 10 / 100 && moved <= HASH_KEYS * 25 / 100,
                  "%u of %u keys moved", moved, HASH_KEYS);
    teardown(&a);
    teardown(&b);
}
END_TEST

/* Ways to take server 1 out of a hash group. */
enum out_way { OUT_EXCLUDE, OUT_DOWN, OUT_UNKNOWN, OUT_BREAKER };

static const enum out_way out_ways[] = {OUT_EXCLUDE, OUT_DOWN, OUT_UNKNOWN, OUT_BREAKER};

/* Server 1 out: its keys go to the others; every other key stays where it was. */
START_TEST(test_hash_out)
{
    static const unsigned w[] = {1, 1, 1, 1};
    const enum out_way way = out_ways[_i];
    struct fixture f;
    struct balance_set ex = {{0}};
    char key[32];
    int before[2000];
    unsigned had = 0;

    setup_weights(&f, "balance = hash\nmax_fails = 2\n", w, NULL, NELEM(w));
    for (size_t s = 0; s < NELEM(w); s++)
        set_health(&f, s, UP);
    for (unsigned i = 0; i < NELEM(before); i++)
        before[i] = pick_key(&f, NULL, key_of(i, key, sizeof(key)));

    switch (way) {
    case OUT_EXCLUDE:
        balance_set_add(&ex, 1);
        break;
    case OUT_DOWN:
        set_health(&f, 1, DOWN);
        break;
    case OUT_UNKNOWN:
        set_health(&f, 1, UNK);
        break;
    case OUT_BREAKER:
        fail_n(&f, 1, 2, NOW);
        ck_assert_int_eq(shm_breaker_state(srv(&f, 1)), SHM_BREAKER_OPEN);
        break;
    }
    for (unsigned i = 0; i < NELEM(before); i++) {
        int p = pick_key(&f, &ex, key_of(i, key, sizeof(key)));
        if (before[i] == 1) {
            had++;
            ck_assert_msg(p >= 0 && p != 1, "way %d: key %s still on 1: %d", _i, key, p);
        } else {
            ck_assert_msg(p == before[i], "way %d: key %s moved from %d to %d", _i, key, before[i],
                          p);
        }
    }
    ck_assert_uint_gt(had, NELEM(before) / 8);
    teardown(&f);
}
END_TEST

/* ---- the circuit breaker ---------------------------------------------------------------- */

#define CLOSED SHM_BREAKER_CLOSED
#define OPEN SHM_BREAKER_OPEN
#define HALF SHM_BREAKER_HALF_OPEN

enum bop {
    B_END = 0,
    B_FAIL,       /* a request (not the trial) to server 0 failed */
    B_OK,         /* one succeeded */
    B_PICK,       /* 4 new requests: server 0 picked <picked> times, <trials> of them trials */
    B_TRIAL_OK,   /* the last trial reports success */
    B_TRIAL_FAIL, /* ... failure */
};

/* One step at T0 + <at>, then: server 0's breaker, its breaker_opens and balance_usable(). */
struct bstep {
    enum bop op;
    int64_t at;
    int state;
    unsigned opens;
    bool usable;
    int picked, trials;
};

#define BSTEPS 16

/*
 * A scenario over two servers of weight 1 (server 1 always healthy), with
 * max_fails = <max_fails>, fail_window = 10s, cooldown = 1s, and
 * connect_timeout + read_timeout = 2s + 5s: a lost trial expires after 8s.
 */
struct breaker_case {
    const char *name;
    unsigned max_fails;
    struct bstep steps[BSTEPS];
};

static const struct breaker_case breaker_cases[] = {
    {"two failures keep it closed",
     3,
     {{B_FAIL, 0, CLOSED, 0, true, 0, 0},
      {B_FAIL, 100, CLOSED, 0, true, 0, 0},
      {B_PICK, 200, CLOSED, 0, true, 2, 0},
      {B_OK, 300, CLOSED, 0, true, 0, 0}}},
    {"the third failure within the window opens it",
     3,
     {{B_FAIL, 0, CLOSED, 0, true, 0, 0},
      {B_FAIL, 100, CLOSED, 0, true, 0, 0},
      {B_FAIL, 9999, OPEN, 1, false, 0, 0},
      {B_PICK, 10000, OPEN, 1, false, 0, 0},
      {B_FAIL, 10001, OPEN, 1, false, 0, 0}, /* late reports don't open it twice */
      {B_FAIL, 10002, OPEN, 1, false, 0, 0},
      {B_PICK, 10998, OPEN, 1, false, 0, 0}}},
    {"failures spread wider than the window don't open it",
     3,
     {{B_FAIL, 0, CLOSED, 0, true, 0, 0},
      {B_FAIL, 6000, CLOSED, 0, true, 0, 0},
      {B_FAIL, 12000, CLOSED, 0, true, 0, 0},
      {B_FAIL, 18000, CLOSED, 0, true, 0, 0},
      {B_FAIL, 24000, CLOSED, 0, true, 0, 0},
      {B_FAIL, 30000, CLOSED, 0, true, 0, 0},
      {B_PICK, 30001, CLOSED, 0, true, 2, 0}}},
    {"after the cooldown one trial; its success closes it",
     3,
     {{B_FAIL, 0, CLOSED, 0, true, 0, 0},
      {B_FAIL, 1, CLOSED, 0, true, 0, 0},
      {B_FAIL, 2, OPEN, 1, false, 0, 0},
      {B_PICK, 1001, OPEN, 1, false, 0, 0},
      {B_PICK, 1002, HALF, 1, false, 1, 1},
      {B_PICK, 1500, HALF, 1, false, 0, 0},
      {B_TRIAL_OK, 1600, CLOSED, 1, true, 0, 0},
      {B_PICK, 1700, CLOSED, 1, true, 2, 0},
      /* closing forgot the old failures: it takes three new ones */
      {B_FAIL, 1800, CLOSED, 1, true, 0, 0},
      {B_FAIL, 1900, CLOSED, 1, true, 0, 0},
      {B_FAIL, 2000, OPEN, 2, false, 0, 0},
      {B_PICK, 2001, OPEN, 2, false, 0, 0}}},
    {"a failed trial opens it again until the next cooldown",
     3,
     {{B_FAIL, 0, CLOSED, 0, true, 0, 0},
      {B_FAIL, 0, CLOSED, 0, true, 0, 0},
      {B_FAIL, 0, OPEN, 1, false, 0, 0},
      {B_PICK, 1000, HALF, 1, false, 1, 1},
      {B_TRIAL_FAIL, 1200, OPEN, 2, false, 0, 0},
      {B_PICK, 2199, OPEN, 2, false, 0, 0},
      {B_PICK, 2200, HALF, 2, false, 1, 1},
      {B_TRIAL_FAIL, 2300, OPEN, 3, false, 0, 0},
      {B_PICK, 3300, HALF, 3, false, 1, 1},
      {B_TRIAL_OK, 3400, CLOSED, 3, true, 0, 0},
      {B_PICK, 3500, CLOSED, 3, true, 2, 0}}},
    {"a trial that never reports back: another after cooldown + connect + read",
     3,
     {{B_FAIL, 0, CLOSED, 0, true, 0, 0},
      {B_FAIL, 0, CLOSED, 0, true, 0, 0},
      {B_FAIL, 0, OPEN, 1, false, 0, 0},
      {B_PICK, 1000, HALF, 1, false, 1, 1},
      {B_PICK, 5000, HALF, 1, false, 0, 0},
      {B_PICK, 8999, HALF, 1, false, 0, 0},
      {B_PICK, 9000, HALF, 1, false, 1, 1},
      {B_PICK, 9001, HALF, 1, false, 0, 0},
      {B_TRIAL_OK, 9100, CLOSED, 1, true, 0, 0},
      {B_PICK, 9200, CLOSED, 1, true, 2, 0}}},
    {"failures of other requests while half-open change nothing",
     3,
     {{B_FAIL, 0, CLOSED, 0, true, 0, 0},
      {B_FAIL, 0, CLOSED, 0, true, 0, 0},
      {B_FAIL, 0, OPEN, 1, false, 0, 0},
      {B_PICK, 1000, HALF, 1, false, 1, 1},
      {B_FAIL, 1100, HALF, 1, false, 0, 0},
      {B_FAIL, 1101, HALF, 1, false, 0, 0},
      {B_FAIL, 1102, HALF, 1, false, 0, 0},
      {B_PICK, 1200, HALF, 1, false, 0, 0},
      {B_TRIAL_OK, 1300, CLOSED, 1, true, 0, 0},
      {B_PICK, 1400, CLOSED, 1, true, 2, 0}}},
    {"a success ends the run: failures count only in a row",
     3,
     {{B_FAIL, 0, CLOSED, 0, true, 0, 0},
      {B_FAIL, 100, CLOSED, 0, true, 0, 0},
      {B_OK, 200, CLOSED, 0, true, 0, 0},
      {B_FAIL, 300, CLOSED, 0, true, 0, 0},
      {B_FAIL, 400, CLOSED, 0, true, 0, 0},
      {B_OK, 500, CLOSED, 0, true, 0, 0},
      {B_FAIL, 600, CLOSED, 0, true, 0, 0},
      {B_FAIL, 700, CLOSED, 0, true, 0, 0},
      {B_FAIL, 800, OPEN, 1, false, 0, 0}}},
    {"a run that outlives the window starts again at its next failure",
     3,
     {{B_FAIL, 0, CLOSED, 0, true, 0, 0},
      {B_FAIL, 9000, CLOSED, 0, true, 0, 0},
      {B_FAIL, 10001, CLOSED, 0, true, 0, 0}, /* the run restarts here */
      {B_FAIL, 12000, CLOSED, 0, true, 0, 0},
      {B_FAIL, 13000, OPEN, 1, false, 0, 0}}},
    {"max_fails = 1: the first failure opens it",
     1,
     {{B_FAIL, 0, OPEN, 1, false, 0, 0},
      {B_PICK, 999, OPEN, 1, false, 0, 0},
      {B_PICK, 1000, HALF, 1, false, 1, 1},
      {B_TRIAL_OK, 1100, CLOSED, 1, true, 0, 0}}},
    {"max_fails = 0 never opens",
     0,
     {{B_FAIL, 0, CLOSED, 0, true, 0, 0},
      {B_FAIL, 1, CLOSED, 0, true, 0, 0},
      {B_FAIL, 2, CLOSED, 0, true, 0, 0},
      {B_FAIL, 3, CLOSED, 0, true, 0, 0},
      {B_FAIL, 4, CLOSED, 0, true, 0, 0},
      {B_FAIL, 5, CLOSED, 0, true, 0, 0},
      {B_FAIL, 6, CLOSED, 0, true, 0, 0},
      {B_PICK, 7, CLOSED, 0, true, 2, 0}}},
};

START_TEST(test_breaker)
{
    static const unsigned w[] = {1, 1};
    const struct breaker_case *c = &breaker_cases[_i];
    struct fixture f;
    struct balance_ticket trial = {.server = -1};
    char head[256];

    snprintf(head, sizeof(head),
             RR "max_fails = %u\nfail_window = 10s\ncooldown = 1s\n"
                "connect_timeout = 2s\nread_timeout = 5s\n",
             c->max_fails);
    setup_weights(&f, head, w, NULL, NELEM(w));
    struct shm_server *s0 = srv(&f, 0);

    for (size_t k = 0; k < BSTEPS && c->steps[k].op != B_END; k++) {
        const struct bstep *st = &c->steps[k];
        const int64_t now = NOW + st->at;
        struct balance_ticket t = {.server = 0};
        int picked = 0, trials = 0;

        switch (st->op) {
        case B_FAIL:
        case B_OK:
            balance_done(&f.bal, f.shm, 0, &t, st->op == B_OK, now);
            break;
        case B_PICK:
            for (int r = 0; r < 4; r++) {
                struct balance_ticket p = {0};
                balance_pick(&f.bal, f.shm, 0, NULL, NULL, 0, now, &p);
                ck_assert_msg(p.server >= 0, "%s: step %zu: no server", c->name, k);
                ck_assert_msg(p.server == 0 || !p.trial, "%s: step %zu: trial on server 1",
                              c->name, k);
                if (p.server == 0) {
                    picked++;
                    if (p.trial) {
                        trials++;
                        trial = p;
                    }
                }
            }
            break;
        case B_TRIAL_OK:
        case B_TRIAL_FAIL:
            ck_assert_msg(trial.server == 0 && trial.trial, "%s: step %zu: no trial to report",
                          c->name, k);
            balance_done(&f.bal, f.shm, 0, &trial, st->op == B_TRIAL_OK, now);
            trial = (struct balance_ticket){.server = -1};
            break;
        case B_END:
            break;
        }
        ck_assert_msg(picked == st->picked && trials == st->trials,
                      "%s: step %zu: server 0 picked %d times (%d trials), want %d (%d)", c->name,
                      k, picked, trials, st->picked, st->trials);
        ck_assert_msg(shm_breaker_state(s0) == st->state, "%s: step %zu: breaker %d, want %d",
                      c->name, k, shm_breaker_state(s0), st->state);
        ck_assert_msg(atomic_load(&s0->breaker_opens) == st->opens,
                      "%s: step %zu: breaker_opens %llu, want %u", c->name, k,
                      (unsigned long long)atomic_load(&s0->breaker_opens), st->opens);
        ck_assert_msg(balance_usable(&f.bal, f.shm, 0, 0, now) == st->usable,
                      "%s: step %zu: usable %d, want %d", c->name, k,
                      balance_usable(&f.bal, f.shm, 0, 0, now), st->usable);
        /* Server 1 never failed: its breaker never moves. */
        ck_assert_int_eq(shm_breaker_state(srv(&f, 1)), SHM_BREAKER_CLOSED);
    }
    teardown(&f);
}
END_TEST

/*
 * The one trial after the cooldown: every other request finds the server
 * out. Server 1 is excluded, as if already tried, so server 0 is all there
 * is (a group of one never ejects it at all: test_cap).
 */
START_TEST(test_breaker_single)
{
    static const unsigned w[] = {1, 1};
    struct fixture f;
    struct balance_ticket t = {0};
    struct balance_set ex = {{0}};
    bool trial;

    setup_weights(&f, RR "max_fails = 3\ncooldown = 1s\n", w, NULL, 2);
    balance_set_add(&ex, 1);
    fail_n(&f, 0, 3, NOW);
    ck_assert_int_eq(pick_at(&f, &ex, NOW + 999, NULL), -1);
    balance_pick(&f.bal, f.shm, 0, &ex, NULL, 0, NOW + 1000, &t);
    ck_assert_int_eq(t.server, 0);
    ck_assert(t.trial);
    for (int k = 0; k < 10; k++)
        ck_assert_int_eq(pick_at(&f, &ex, NOW + 1000 + k, &trial), -1);
    balance_done(&f.bal, f.shm, 0, &t, true, NOW + 1100);
    for (int k = 0; k < 10; k++) {
        ck_assert_int_eq(pick_at(&f, &ex, NOW + 1100 + k, &trial), 0);
        ck_assert(!trial);
    }
    teardown(&f);
}
END_TEST

/*
 * max_ejected_percent (Envoy's max_ejection_percent): every server of the
 * group fails max_fails times in a row, over and over, as when a client
 * makes the app fail on purpose. At most <want> breakers open (the share of
 * the servers up, rounded down, never all of them), and every pick still
 * finds a server.
 */
struct cap_case {
    size_t n;
    unsigned percent;
    int health[MAX_SET];
    unsigned want;
};

static const struct cap_case cap_cases[] = {
    {3, 50, {UP, UP, UP}, 1},
    {2, 50, {UP, UP}, 1},
    {4, 50, {UP, UP, UP, UP}, 2},
    {5, 50, {UP, UP, UP, UP, UP}, 2},
    {1, 50, {UP}, 0},  /* a group of one keeps its server */
    {1, 100, {UP}, 0}, /* ... whatever the cap */
    {3, 100, {UP, UP, UP}, 2},
    {3, 0, {UP, UP, UP}, 0},
    {8, 10, {UP, UP, UP, UP, UP, UP, UP, UP}, 0},
    {4, 50, {UP, DOWN, UP, UP}, 1}, /* the share is of the servers up */
    {4, 100, {DOWN, DOWN, UP, UP}, 1},
};

START_TEST(test_cap)
{
    const struct cap_case *c = &cap_cases[_i];
    static const unsigned w[MAX_SET] = {1, 1, 1, 1, 1, 1, 1, 1};
    struct fixture f;
    char head[128];

    snprintf(head, sizeof(head), "max_fails = 2\ncooldown = 1s\nmax_ejected_percent = %u\n",
             c->percent);
    setup_weights(&f, head, w, NULL, c->n);
    for (size_t s = 0; s < c->n; s++)
        set_health(&f, s, c->health[s]);
    for (int round = 0; round < 5; round++) {
        for (size_t s = 0; s < c->n; s++)
            fail_n(&f, s, 2, NOW + round);
        unsigned open = 0;
        for (size_t s = 0; s < c->n; s++)
            if (shm_breaker_state(srv(&f, s)) != CLOSED) {
                ck_assert_int_eq(c->health[s], UP);
                open++;
            }
        ck_assert_msg(open == c->want, "case %d round %d: %u open, want %u", _i, round, open,
                      c->want);
        for (int k = 0; k < 8; k++) {
            int p = pick_at(&f, NULL, NOW + round, NULL);
            ck_assert_msg(p >= 0 && shm_breaker_state(srv(&f, (size_t)p)) == CLOSED,
                          "case %d: picked %d", _i, p);
        }
    }
    teardown(&f);
}
END_TEST

/*
 * The cap is decided at ejection; when the servers left in go down after
 * it, the ejected one (up, by health) is let back in at once instead of
 * after the cooldown: the breaker is never what empties the group.
 */
START_TEST(test_cap_others_down)
{
    static const unsigned w[] = {1, 1, 1};
    struct fixture f;

    setup_weights(&f, "max_fails = 2\ncooldown = 30s\n", w, NULL, 3);
    for (size_t s = 0; s < 3; s++)
        set_health(&f, s, UP);
    fail_n(&f, 0, 2, NOW);
    ck_assert_int_eq(shm_breaker_state(srv(&f, 0)), OPEN);
    ck_assert_int_ne(pick(&f, NULL), 0);
    set_health(&f, 1, DOWN);
    ck_assert_int_eq(pick(&f, NULL), 2);
    ck_assert_int_eq(shm_breaker_state(srv(&f, 0)), OPEN);
    set_health(&f, 2, DOWN);
    for (int k = 0; k < 4; k++)
        ck_assert_int_eq(pick(&f, NULL), 0);
    ck_assert_int_eq(shm_breaker_state(srv(&f, 0)), CLOSED);
    /* the last one up now stays in whatever it does */
    fail_n(&f, 0, 6, NOW + 1);
    ck_assert_int_eq(shm_breaker_state(srv(&f, 0)), CLOSED);
    /* a server down by health is not let in: nothing then */
    set_health(&f, 0, DOWN);
    ck_assert_int_eq(pick(&f, NULL), -1);
    teardown(&f);
}
END_TEST

/* When an ejected server's breaker closes, the cap has room for another. */
START_TEST(test_cap_frees)
{
    static const unsigned w[] = {1, 1, 1};
    struct fixture f;

    setup_weights(&f, RR "max_fails = 2\ncooldown = 1s\n", w, NULL, 3);
    fail_n(&f, 0, 2, NOW);
    fail_n(&f, 1, 2, NOW);
    ck_assert_int_eq(shm_breaker_state(srv(&f, 0)), OPEN);
    ck_assert_int_eq(shm_breaker_state(srv(&f, 1)), CLOSED);
    /* server 0's trial succeeds: it is back, and server 1's next failure ejects it */
    struct balance_ticket t = {0};
    struct balance_set ex = {{0}};
    balance_set_add(&ex, 1);
    balance_set_add(&ex, 2);
    balance_pick(&f.bal, f.shm, 0, &ex, NULL, 0, NOW + 1000, &t);
    ck_assert(t.server == 0 && t.trial);
    balance_done(&f.bal, f.shm, 0, &t, true, NOW + 1001);
    fail_n(&f, 1, 1, NOW + 1002);
    ck_assert_int_eq(shm_breaker_state(srv(&f, 0)), CLOSED);
    ck_assert_int_eq(shm_breaker_state(srv(&f, 1)), OPEN);
    teardown(&f);
}
END_TEST

/*
 * The health checker's up transition closes an open or half-open breaker at
 * once; the trial that was in flight then reports to a breaker that moved
 * on, and neither reopens nor closes it again.
 */
START_TEST(test_uneject)
{
    static const unsigned w[] = {1, 1};
    struct fixture f;
    struct balance_ticket t = {0};
    struct balance_set ex = {{0}};

    setup_weights(&f, RR "max_fails = 3\ncooldown = 30s\n", w, NULL, 2);
    ck_assert(!balance_uneject(f.shm, 0, 0, NOW)); /* closed: nothing to say */
    fail_n(&f, 0, 3, NOW);
    ck_assert(!balance_usable(&f.bal, f.shm, 0, 0, NOW + 1));
    ck_assert(balance_uneject(f.shm, 0, 0, NOW + 1));
    ck_assert_int_eq(shm_breaker_state(srv(&f, 0)), CLOSED);
    ck_assert(balance_usable(&f.bal, f.shm, 0, 0, NOW + 1));
    /* the run ended with it: two more failures do not open it again */
    fail_n(&f, 0, 2, NOW + 2);
    ck_assert_int_eq(shm_breaker_state(srv(&f, 0)), CLOSED);

    /* half-open, its trial in flight: closed by the checker, the trial's failure is stale */
    fail_n(&f, 0, 1, NOW + 3);
    ck_assert_int_eq(shm_breaker_state(srv(&f, 0)), OPEN);
    balance_set_add(&ex, 1);
    balance_pick(&f.bal, f.shm, 0, &ex, NULL, 0, NOW + 30003, &t);
    ck_assert(t.server == 0 && t.trial);
    ck_assert(balance_uneject(f.shm, 0, 0, NOW + 30004));
    balance_done(&f.bal, f.shm, 0, &t, false, NOW + 30005);
    ck_assert_int_eq(shm_breaker_state(srv(&f, 0)), CLOSED);
    ck_assert_uint_eq(atomic_load(&srv(&f, 0)->breaker_opens), 2);
    teardown(&f);
}
END_TEST

/*
 * Many processes race for the half-open trial, released together from a
 * barrier in shared memory: exactly one gets it, however long ago the
 * breaker opened (with state and time in two words, a worker could see
 * half-open with the opening's stale time and take a second "single"
 * trial). Variant 0 races from open past the cooldown, variant 1 from a
 * trial that never reported back. Many rounds, to give a race its chances.
 */
#define RACERS 16
#define RACE_ROUNDS 40

struct race_gate {
    atomic_int ready;
    atomic_int go;
};

START_TEST(test_trial_race)
{
    static const unsigned w[] = {1, 1};
    struct race_gate *gate =
        mmap(NULL, sizeof(*gate), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert(gate != MAP_FAILED);

    for (int round = 0; round < RACE_ROUNDS; round++) {
        struct fixture f;
        struct balance_set ex = {{0}};
        pid_t pids[RACERS];
        /* far past the cooldown and the trial's expiry (1s + 2s + 5s) */
        const int64_t later = NOW + 3600 * 1000;

        setup_weights(&f,
                      RR "max_fails = 1\ncooldown = 1s\nconnect_timeout = 2s\n"
                         "read_timeout = 5s\n",
                      w, NULL, 2);
        balance_set_add(&ex, 1);
        fail_n(&f, 0, 1, NOW);
        if (_i == 1) {
            struct balance_ticket lost = {0};
            balance_pick(&f.bal, f.shm, 0, &ex, NULL, 0, NOW + 1000, &lost);
            ck_assert(lost.server == 0 && lost.trial); /* and it never reports */
        }
        atomic_store(&gate->ready, 0);
        atomic_store(&gate->go, 0);
        for (int k = 0; k < RACERS; k++) {
            pids[k] = fork();
            ck_assert_int_ne(pids[k], -1);
            if (pids[k] == 0) {
                struct balance_ticket t = {0};
                atomic_fetch_add(&gate->ready, 1);
                int64_t t0 = tl_now_ms();
                while (!atomic_load(&gate->go)) {
                    if (tl_now_ms() - t0 > 5000)
                        _exit(3);
                    sched_yield(); /* two cores: let the parent fork the others */
                }
                balance_pick(&f.bal, f.shm, 0, &ex, NULL, 0, later, &t);
                if (t.server != (t.trial ? 0 : -1))
                    _exit(2);
                _exit(t.trial ? 1 : 0);
            }
        }
        int64_t t0 = tl_now_ms();
        while (atomic_load(&gate->ready) < RACERS && tl_now_ms() - t0 < 5000)
            usleep(100);
        atomic_store(&gate->go, 1);
        int winners = 0;
        for (int k = 0; k < RACERS; k++) {
            int st;
            ck_assert_int_eq(waitpid(pids[k], &st, 0), pids[k]);
            ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) <= 1, "racer %d: status %#x", k, st);
            winners += WEXITSTATUS(st);
        }
        ck_assert_msg(winners == 1, "variant %d round %d: %d trials", _i, round, winners);
        uint64_t word = atomic_load(&srv(&f, 0)->breaker);
        ck_assert_int_eq(shm_bw_state(word), HALF);
        ck_assert_int_eq(shm_bw_since(word), later);
        teardown(&f);
    }
    munmap(gate, sizeof(*gate));
}
END_TEST

static Suite *
balance_suite(void)
{
    Suite *s = suite_create("balance");
    TCase *tc = tcase_create("balance");

    tcase_set_timeout(tc, 20);
    tcase_add_loop_test(tc, test_sequence, 0, (int)NELEM(weight_cases));
    tcase_add_test(tc, test_sequence_nginx_order);
    tcase_add_loop_test(tc, test_exclude, 0, (int)NELEM(weight_cases));
    tcase_add_test(tc, test_exclude_empty);
    tcase_add_test(tc, test_exclude_high_index);
    tcase_add_loop_test(tc, test_retry, 0, (int)NELEM(retry_cases));
    tcase_add_loop_test(tc, test_usable, 0, (int)NELEM(usable_cases));
    tcase_add_test(tc, test_backup_failover);
    tcase_add_loop_test(tc, test_rr_spread, 0, (int)NELEM(spread_cases));
    tcase_add_test(tc, test_groups);
    tcase_add_loop_test(tc, test_processes, 0, (int)NELEM(fork_cases));
    tcase_add_loop_test(tc, test_least_conn, 0, (int)NELEM(lc_cases));
    tcase_add_loop_test(tc, test_random, 0, (int)NELEM(random_cases));
    tcase_add_loop_test(tc, test_hash_spread, 0, (int)NELEM(hash_cases));
    tcase_add_test(tc, test_hash_stable);
    tcase_add_loop_test(tc, test_hash_remove, 0, NHASH);
    tcase_add_test(tc, test_hash_add);
    tcase_add_loop_test(tc, test_hash_out, 0, (int)NELEM(out_ways));
    tcase_add_loop_test(tc, test_breaker, 0, (int)NELEM(breaker_cases));
    tcase_add_test(tc, test_breaker_single);
    tcase_add_loop_test(tc, test_cap, 0, (int)NELEM(cap_cases));
    tcase_add_test(tc, test_cap_frees);
    tcase_add_test(tc, test_cap_others_down);
    tcase_add_test(tc, test_uneject);
    tcase_add_loop_test(tc, test_trial_race, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    /* The breaker logs every opening and closing: keep the output to the results. */
    log_set_level(CFG_LOG_ERROR);
    return tl_run(balance_suite());
}
