/*
 * carry: what a reload hands from one generation's shared table to the
 * next, so that a reload changes the configuration and nothing else a
 * reader can see. Servers of two configurations are the same server when
 * their group name and address are.
 *
 * - Health state (carry_health()): a reload never sends a healthy server
 *   back to unknown, nor a sick one back into rotation.
 * - Counters (carry_snapshot(), carry_counters()): those /metrics exports
 *   as counters only go up (Prometheus reads a drop as a restart). Per
 *   server: requests, failures, responses by class, the latency sum and
 *   breaker opens (its probe count goes with the health state); per worker
 *   slot: requests, connections and bytes; the pool's counters, tunnels
 *   opened and the proxy's own answers by status; per group (by name) the
 *   latency histogram; per route (by name) its requests. The old
 *   generation keeps counting while it drains, so the master hands its
 *   counts at the reload and the rest when it finishes, with the first
 *   snapshot as the base.
 */
#ifndef MP_CARRY_H
#define MP_CARRY_H

#include <stdint.h>

#include "config.h"
#include "shm.h"

/*
 * Copies the active health state of every server of <from_cfg> (table
 * <from>) that <to_cfg> also has, both with health_check on, into <to>.
 * To be called before <to>'s health checker runs (it is then the only
 * writer of those fields).
 */
void carry_health(const struct config *from_cfg, struct shm *from, const struct config *to_cfg,
                  struct shm *to);

/*
 * A snapshot of the counters of table <shm> (configuration <cfg>), for
 * carry_counters(): malloc'd, to be freed by the caller; NULL when out of
 * memory.
 */
uint64_t *carry_snapshot(const struct config *cfg, struct shm *shm);

/*
 * Adds what the generation of <from_cfg> counted, snapshot <now> less
 * snapshot <base> (NULL: zero; both taken with <from_cfg>), into table
 * <to> of <to_cfg>, where processes may be counting too (atomics): a
 * server's counts into the same server (a removed server's are dropped),
 * worker slot i into slot i modulo <to_cfg>'s slots (per-slot figures are
 * approximate, totals exact), a route's into the route of the same name.
 */
void carry_counters(const struct config *from_cfg, const uint64_t *now, const uint64_t *base,
                    const struct config *to_cfg, struct shm *to);

#endif
