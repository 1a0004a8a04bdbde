/*
 * Unit tests for the adaptive pool's decisions (pool.c) and the respawn
 * back-off (proc_backoff_ms()), both pure: each case is a script of ticks,
 * with the counts the master would see and what the pool must answer.
 */
#include "pool.h"
#include "proc.h"
#include "testlib.h"

#include <check.h>
#include <stdio.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* One tick: what the master counts, and what the pool must decide. */
struct tick {
    unsigned live, idle, queued; /* before the forks */
    unsigned want_fork;          /* pool_grow() */
    bool full, say_cap, retire;  /* pool_settle(), with live + want_fork workers */
};

struct script {
    const char *name;
    struct pool_limits lim;
    struct tick ticks[16];
    size_t nticks;
};

#define LIM(minw, maxw, mins, maxs)                                                               \
    {                                                                                             \
        .min_workers = (minw), .max_workers = (maxw), .min_spare = (mins), .max_spare = (maxs)    \
    }

static const struct script scripts[] = {
    {"enough idle: nothing to do",
     LIM(2, 64, 1, 8),
     {{4, 2, 0, 0, false, false, false}, {4, 1, 0, 0, false, false, false}},
     2},
    {"a shortage forks what is missing, at least 1, 2, 4 .. per tick",
     LIM(2, 64, 1, 8),
     {{2, 0, 0, 1, false, false, false},    /* need 1, rate 1 */
      {3, 0, 0, 2, false, false, false},    /* need 1, rate 2 */
      {5, 0, 0, 4, false, false, false},    /* rate 4 */
      {9, 0, 5, 8, false, false, false},    /* need 6 < rate 8 */
      {17, 0, 20, 21, false, false, false}, /* need 21 > rate 16 */
      {38, 1, 0, 0, false, false, false},   /* shortage over: rate back to 1 */
      {38, 0, 0, 1, false, false, false}},
     7},
    {"the rate stops doubling at 32",
     LIM(1, 1024, 1, 1024),
     {{1, 0, 0, 1, false, false, false},
      {2, 0, 0, 2, false, false, false},
      {4, 0, 0, 4, false, false, false},
      {8, 0, 0, 8, false, false, false},
      {16, 0, 0, 16, false, false, false},
      {32, 0, 0, 32, false, false, false},
      {64, 0, 0, 32, false, false, false}},
     7},
    {"one tick forks at most 128, however long the queue",
     LIM(1, 1024, 1, 1024),
     {{1, 0, 5000, POOL_MAX_SPAWN_TICK, false, false, false}},
     1},
    {"never above max_workers; the cap is said once, until idle workers are back",
     LIM(2, 8, 1, 8),
     {{6, 0, 10, 2, true, true, false},
      {8, 0, 10, 0, true, false, false},
      {8, 0, 0, 0, true, false, false},
      {8, 1, 0, 0, true, false, false},
      {8, 0, 3, 0, true, true, false}},
     5},
    {"a surplus for a second retires one idle worker per tick",
     LIM(2, 64, 1, 2),
     {{10, 5, 0, 0, false, false, false},
      {10, 5, 0, 0, false, false, false},
      {10, 5, 0, 0, false, false, false},
      {10, 5, 0, 0, false, false, false},
      {10, 5, 0, 0, false, false, false},
      {10, 5, 0, 0, false, false, false},
      {10, 5, 0, 0, false, false, false},
      {10, 5, 0, 0, false, false, false},
      {10, 5, 0, 0, false, false, false},
      {10, 5, 0, 0, false, false, true}, /* the 10th tick over */
      {9, 4, 0, 0, false, false, true},  /* and then one per tick */
      {8, 2, 0, 0, false, false, false}, /* surplus over: counting starts again */
      {8, 3, 0, 0, false, false, false}},
     13},
    {"never below min_workers",
     LIM(4, 64, 1, 1),
     {{4, 4, 0, 0, false, false, false},
      {4, 4, 0, 0, false, false, false},
      {4, 4, 0, 0, false, false, false},
      {4, 4, 0, 0, false, false, false},
      {4, 4, 0, 0, false, false, false},
      {4, 4, 0, 0, false, false, false},
      {4, 4, 0, 0, false, false, false},
      {4, 4, 0, 0, false, false, false},
      {4, 4, 0, 0, false, false, false},
      {4, 4, 0, 0, false, false, false},
      {4, 4, 0, 0, false, false, false}},
     11},
    {"a fixed pool is full and never grows",
     LIM(4, 4, 1, 8),
     {{4, 0, 3, 0, true, true, false}, {4, 1, 0, 0, true, false, false}},
     2},
};

START_TEST(test_pool_script)
{
    const struct script *sc = &scripts[_i];
    struct pool_state st;

    pool_reset(&st);
    for (size_t t = 0; t < sc->nticks; t++) {
        const struct tick *k = &sc->ticks[t];
        unsigned n = pool_grow(&st, &sc->lim, k->live, k->idle, k->queued);
        ck_assert_msg(n == k->want_fork, "%s, tick %zu: forks %u, want %u", sc->name, t, n,
                      k->want_fork);
        struct pool_verdict v = pool_settle(&st, &sc->lim, k->live + n, k->idle, k->idle > 0);
        ck_assert_msg(v.full == k->full, "%s, tick %zu: full %d", sc->name, t, v.full);
        ck_assert_msg(v.say_cap == k->say_cap, "%s, tick %zu: say_cap %d", sc->name, t, v.say_cap);
        ck_assert_msg(v.retire == k->retire, "%s, tick %zu: retire %d", sc->name, t, v.retire);
    }
}
END_TEST

/* No idle worker to retire (all idle ones already asked to go): no retirement. */
START_TEST(test_pool_nothing_to_retire)
{
    const struct pool_limits lim = LIM(1, 64, 1, 1);
    struct pool_state st;

    pool_reset(&st);
    for (int t = 0; t < 2 * POOL_OVER_TICKS; t++)
        ck_assert(!pool_settle(&st, &lim, 10, 5, false).retire);
}
END_TEST

START_TEST(test_backoff)
{
    static const struct {
        unsigned crashes;
        int64_t ms;
    } cases[] = {{0, 0},    {1, 0},    {2, 100},  {3, 200},    {4, 400},
                 {7, 3200}, {8, 5000}, {9, 5000}, {100, 5000}, {~0u, 5000}};
    for (size_t i = 0; i < NELEM(cases); i++)
        ck_assert_msg(proc_backoff_ms(cases[i].crashes) == cases[i].ms, "crashes %u: %lld",
                      cases[i].crashes, (long long)proc_backoff_ms(cases[i].crashes));
}
END_TEST

static Suite *
pool_suite(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("pool");

    tcase_add_loop_test(tc, test_pool_script, 0, (int)NELEM(scripts));
    tcase_add_test(tc, test_pool_nothing_to_retire);
    tcase_add_test(tc, test_backoff);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return tl_run(pool_suite());
}
