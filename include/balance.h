/*
 * balance: choosing the upstream server for a request.
 *
 * Round-robin is weighted and smooth, and shared by all workers: at
 * start-up each group's weights are unrolled into the sequence nginx's
 * smooth weighted round-robin produces (weights 3,1 -> a a b a, not
 * a a a b), and workers step through it with one atomic increment of the
 * group's cursor in shared memory. No lock, no per-server shared state,
 * and the spread is even across workers.
 *
 * The health checker and circuit breaker (later) plug in through
 * balance_pick()'s eligibility test; backups are skipped for now.
 */
#ifndef MP_BALANCE_H
#define MP_BALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "shm.h"

/* A set of servers of one group (CFG_MAX_SERVERS bits). */
struct balance_set {
    uint64_t bits[CFG_MAX_SERVERS / 64];
};

struct balance_group {
    uint16_t *seq; /* server indexes, length = sum of the primaries' weights */
    size_t nseq;
};

struct balance {
    struct balance_group *groups; /* one per cfg group */
    size_t ngroups;
};

/* Builds the sequences for every group of <cfg>. Returns 0 or -1 (ENOMEM). */
int balance_init(struct balance *b, const struct config *cfg);

void balance_free(struct balance *b);

/*
 * Picks a server of group <g> for a new request, skipping those in
 * <exclude> (servers already tried for this request). Returns the server
 * index, or -1 when no server is available (the caller answers 503).
 */
int balance_pick(const struct balance *b, struct shm *shm, size_t g,
                 const struct balance_set *exclude);

static inline void
balance_set_add(struct balance_set *s, size_t i)
{
    s->bits[i / 64] |= UINT64_C(1) << (i % 64);
}

static inline bool
balance_set_has(const struct balance_set *s, size_t i)
{
    return (s->bits[i / 64] >> (i % 64)) & 1;
}

#endif
