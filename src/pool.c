/*
 * pool: the adaptive pool's decisions. See pool.h.
 */
#include "pool.h"

void
pool_reset(struct pool_state *st)
{
    st->spawn_rate = 1;
    st->over_ticks = 0;
    st->cap_logged = false;
}

unsigned
pool_grow(struct pool_state *st, const struct pool_limits *lim, unsigned live, unsigned idle,
          unsigned queued)
{
    unsigned want = queued + lim->min_spare;
    unsigned need = want > idle ? want - idle : 0;
    if (need == 0 || live >= lim->max_workers) {
        st->spawn_rate = 1;
        return 0;
    }
    unsigned n = need > st->spawn_rate ? need : st->spawn_rate;
    if (n > POOL_MAX_SPAWN_TICK)
        n = POOL_MAX_SPAWN_TICK;
    if (n > lim->max_workers - live)
        n = lim->max_workers - live;
    if (st->spawn_rate < POOL_MAX_SPAWN_RATE)
        st->spawn_rate *= 2;
    return n;
}

struct pool_verdict
pool_settle(struct pool_state *st, const struct pool_limits *lim, unsigned live, unsigned idle,
            bool can_retire)
{
    struct pool_verdict v = {.full = live >= lim->max_workers};

    if (idle == 0 && live >= lim->max_workers) {
        v.say_cap = !st->cap_logged;
        st->cap_logged = true;
    } else if (idle > 0) {
        st->cap_logged = false;
    }
    if (idle > lim->max_spare && live > lim->min_workers && can_retire) {
        if (++st->over_ticks >= POOL_OVER_TICKS) {
            /* over for a second: one per tick from now on, while the surplus lasts */
            st->over_ticks = POOL_OVER_TICKS - 1;
            v.retire = true;
        }
    } else {
        st->over_ticks = 0;
    }
    return v;
}
