/*
 * carry: what a reload hands from one generation's table to the next. See
 * carry.h.
 */
#include "carry.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/*
 * Finds, in <cfg>, the server of group <group> at <addr>: servers of two
 * configurations are the same when their group name and address are.
 */
static bool
find_server(const struct config *cfg, const char *group, const char *addr, size_t *g, size_t *s)
{
    for (*g = 0; *g < cfg->ngroups; (*g)++) {
        if (strcmp(cfg->groups[*g].name, group) != 0)
            continue;
        for (*s = 0; *s < cfg->groups[*g].nservers; (*s)++)
            if (strcmp(cfg->groups[*g].servers[*s].addr.text, addr) == 0)
                return true;
    }
    return false;
}

/* Copies the active health state of one server (the checker is not running in <to> yet). */
static void
copy_health(struct shm_server *from, struct shm_server *to)
{
    char err[SHM_ERR_MAX];
    atomic_store(&to->checks_ok, atomic_load(&from->checks_ok));
    atomic_store(&to->checks_failed, atomic_load(&from->checks_failed));
    atomic_store(&to->checks, atomic_load(&from->checks));
    atomic_store(&to->last_check_ms, atomic_load(&from->last_check_ms));
    atomic_store(&to->last_latency_us, atomic_load(&from->last_latency_us));
    atomic_store(&to->down_since_ms, atomic_load(&from->down_since_ms));
    shm_read_error(from, err, sizeof(err));
    shm_set_error(to, err);
    atomic_store(&to->health, atomic_load(&from->health));
}

void
carry_health(const struct config *from_cfg, struct shm *from, const struct config *to_cfg,
             struct shm *to)
{
    for (size_t og = 0; og < from_cfg->ngroups; og++) {
        const struct cfg_group *pg = &from_cfg->groups[og];
        for (size_t os = 0; os < pg->nservers; os++) {
            size_t g, s;
            if (!pg->health_check ||
                !find_server(to_cfg, pg->name, pg->servers[os].addr.text, &g, &s) ||
                !to_cfg->groups[g].health_check)
                continue;
            copy_health(shm_srv(from, og, os), shm_srv(to, g, s));
        }
    }
}

/*
 * The counters /metrics exports as counters, which must only go up across
 * reloads: per server (those of the checker, `checks`, carry over with the
 * health state), per worker slot, and the pool's.
 */
static const size_t srv_counters[] = {
    offsetof(struct shm_server, requests),      offsetof(struct shm_server, failures),
    offsetof(struct shm_server, responses[0]),  offsetof(struct shm_server, responses[1]),
    offsetof(struct shm_server, responses[2]),  offsetof(struct shm_server, responses[3]),
    offsetof(struct shm_server, responses[4]),  offsetof(struct shm_server, latency_us_sum),
    offsetof(struct shm_server, breaker_opens),
};
static const size_t wrk_counters[] = {
    offsetof(struct shm_worker, requests),
    offsetof(struct shm_worker, connections),
    offsetof(struct shm_worker, bytes),
};
#define OWN(i) offsetof(struct shm, own_responses[i])
static const size_t pool_counters[] = {
    offsetof(struct shm, spawned),
    offsetof(struct shm, retired),
    offsetof(struct shm, nudges),
    offsetof(struct shm, evictions),
    offsetof(struct shm, slow_rejects),
    offsetof(struct shm, ip_rejects),
    offsetof(struct shm, tunnels),
    offsetof(struct shm, spliced),
    OWN(0),
    OWN(1),
    OWN(2),
    OWN(3),
    OWN(4),
    OWN(5),
    OWN(6),
    OWN(7),
    OWN(8),
    OWN(9),
    OWN(10),
    OWN(11),
};
_Static_assert(SHM_OWN_SLOTS == 12, "list every slot of own_responses in pool_counters");
/* per group: the latency histogram's buckets, carried to the group of the same name */
#define GRP_COUNTERS SHM_LAT_BUCKETS
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static atomic_uint_fast64_t *
counter(void *base, size_t off)
{
    return (atomic_uint_fast64_t *)((char *)base + off);
}

uint64_t *
carry_snapshot(const struct config *cfg, struct shm *shm)
{
    size_t n = NELEM(pool_counters) + cfg->worker_slots * NELEM(wrk_counters) +
               shm->nservers * NELEM(srv_counters) + cfg->nroutes + shm->ngroups * GRP_COUNTERS;
    uint64_t *v = malloc(n * sizeof(*v)), *p = v;
    if (v == NULL)
        return NULL;
    for (size_t c = 0; c < NELEM(pool_counters); c++)
        *p++ = atomic_load(counter(shm, pool_counters[c]));
    for (unsigned i = 0; i < cfg->worker_slots; i++)
        for (size_t c = 0; c < NELEM(wrk_counters); c++)
            *p++ = atomic_load(counter(&shm->workers[i], wrk_counters[c]));
    for (uint32_t k = 0; k < shm->nservers; k++)
        for (size_t c = 0; c < NELEM(srv_counters); c++)
            *p++ = atomic_load(counter(&shm->servers[k], srv_counters[c]));
    for (size_t r = 0; r < cfg->nroutes; r++)
        *p++ = atomic_load(&shm->route_requests[r]);
    for (uint32_t g = 0; g < shm->ngroups; g++)
        for (size_t b = 0; b < GRP_COUNTERS; b++)
            *p++ = atomic_load(&shm->groups[g].latency[b]);
    return v;
}

/* Entry <k> of <now> less that of <base> (NULL: zero). */
static uint64_t
delta(const uint64_t *now, const uint64_t *base, size_t k)
{
    return now[k] - (base != NULL ? base[k] : 0);
}

void
carry_counters(const struct config *from_cfg, const uint64_t *now, const uint64_t *base,
               const struct config *to_cfg, struct shm *to)
{
    size_t k = 0;
    for (size_t c = 0; c < NELEM(pool_counters); c++, k++)
        atomic_fetch_add(counter(to, pool_counters[c]), delta(now, base, k));
    for (unsigned i = 0; i < from_cfg->worker_slots; i++) {
        struct shm_worker *w = &to->workers[i % to_cfg->worker_slots];
        for (size_t c = 0; c < NELEM(wrk_counters); c++, k++)
            atomic_fetch_add(counter(w, wrk_counters[c]), delta(now, base, k));
    }
    for (size_t og = 0; og < from_cfg->ngroups; og++) {
        const struct cfg_group *pg = &from_cfg->groups[og];
        for (size_t os = 0; os < pg->nservers; os++) {
            size_t g, s;
            bool same = find_server(to_cfg, pg->name, pg->servers[os].addr.text, &g, &s);
            struct shm_server *srv = same ? shm_srv(to, g, s) : NULL;
            for (size_t c = 0; c < NELEM(srv_counters); c++, k++)
                if (srv != NULL)
                    atomic_fetch_add(counter(srv, srv_counters[c]), delta(now, base, k));
        }
    }
    /* a route's requests go to the route of the same name (a removed route's are dropped) */
    for (size_t r = 0; r < from_cfg->nroutes; r++, k++)
        for (size_t t = 0; t < to_cfg->nroutes; t++)
            if (strcmp(from_cfg->routes[r].name, to_cfg->routes[t].name) == 0)
                atomic_fetch_add(&to->route_requests[t], delta(now, base, k));
    for (size_t og = 0; og < from_cfg->ngroups; og++) {
        size_t g = 0;
        while (g < to_cfg->ngroups && strcmp(to_cfg->groups[g].name, from_cfg->groups[og].name))
            g++;
        for (size_t b = 0; b < GRP_COUNTERS; b++, k++)
            if (g < to_cfg->ngroups)
                atomic_fetch_add(&to->groups[g].latency[b], delta(now, base, k));
    }
}
