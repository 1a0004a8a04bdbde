/*
 * pool: the adaptive worker pool's decisions (workers = auto), as pure
 * functions of counts, so that a unit test can drive them tick by tick.
 * The master counts (live, idle, queued), asks, and acts (forks, retires).
 *
 * Apache prefork's idle-server maintenance, on the scoreboard: fewer than
 * min_spare idle workers, or clients waiting in the accept queue: fork what
 * is missing (the queue's length plus min_spare, less the idle ones), at
 * least 1, 2, 4 .. POOL_MAX_SPAWN_RATE per tick while the shortage lasts,
 * at most POOL_MAX_SPAWN_TICK per tick; more than max_spare idle for
 * POOL_OVER_TICKS ticks: retire one idle worker per tick while the surplus
 * lasts. Never above max_workers (said once when reached, until idle
 * workers are back) nor below min_workers.
 */
#ifndef MP_POOL_H
#define MP_POOL_H

#include <stdbool.h>

/* How often the master looks at the pool (Apache prefork looks once a second; we ramp faster). */
#define POOL_TICK_MS 100
/* Spare workers beyond max_spare for this many ticks (a second): retire. */
#define POOL_OVER_TICKS 10
#define POOL_MAX_SPAWN_RATE 32
/*
 * Forks in one tick at most, however long the accept queue: a fork is
 * cheap but not free (see doc/benchmarks.md).
 */
#define POOL_MAX_SPAWN_TICK 128
/* A worker's nudge brings the next tick forward, to no sooner than this after the last one. */
#define POOL_NUDGE_MIN_MS 5

/* The configured bounds. */
struct pool_limits {
    unsigned min_workers, max_workers;
    unsigned min_spare, max_spare;
};

/* What the pool remembers from tick to tick; zero it, then pool_reset(). */
struct pool_state {
    unsigned spawn_rate; /* workers to fork at the next tick if still short: 1, 2, 4 .. 32 */
    unsigned over_ticks; /* consecutive ticks with more than max_spare idle workers */
    bool cap_logged;     /* "max_workers reached" was said (until idle workers are back) */
};

/* What to do after the forks of a tick. */
struct pool_verdict {
    bool full;    /* the pool cannot grow: max_workers run (shm.pool_full) */
    bool say_cap; /* log, once, that max_workers is reached with none idle */
    bool retire;  /* retire one idle worker now */
};

/* A new pool: spawn rate 1, no surplus counted, nothing said. */
void pool_reset(struct pool_state *st);

/*
 * The first half of a tick: how many workers to fork now, with <live>
 * wanted workers, <idle> of them in accept() and <queued> connections in the
 * accept queues. Updates the spawn rate in <st> (it doubles while a
 * shortage lasts, back to 1 when it ends).
 */
unsigned pool_grow(struct pool_state *st, const struct pool_limits *lim, unsigned live,
                   unsigned idle, unsigned queued);

/*
 * The second half, once the forks are done: <live> is the count after
 * them, <idle> as before, <can_retire> whether an idle worker is there to
 * be retired. Updates the surplus count and the cap message state in <st>.
 */
struct pool_verdict pool_settle(struct pool_state *st, const struct pool_limits *lim,
                                unsigned live, unsigned idle, bool can_retire);

#endif
