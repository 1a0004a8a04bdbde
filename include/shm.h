/*
 * shm: the table shared by the master, the workers and the health checker.
 * One region per generation, made by the master before it forks: a memfd
 * named "miniproxyd-shm" mapped MAP_SHARED, so children inherit the mapping
 * and a test or tool can read it through /proc/<master>/fd (shm_attach()).
 * Fixed size, no pointers, every field has one writer or is a C11 atomic
 * (Apache's scoreboard, done with atomics).
 *
 * Servers live in one flat table; server s of group g is
 * servers[groups[g].first + s] (shm_srv()).
 */
#ifndef MP_SHM_H
#define MP_SHM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

#define SHM_MAGIC 0x6d70726f78796432ULL /* "mproxyd2" */
#define SHM_NAME "miniproxyd-shm"
#define SHM_ERR_MAX 96
#define SHM_IP_BUCKETS 4096

enum shm_health {
    SHM_HEALTH_UNKNOWN = 0, /* not probed yet: gets no traffic */
    SHM_HEALTH_UP,
    SHM_HEALTH_DOWN,
};

enum shm_breaker {
    SHM_BREAKER_CLOSED = 0,
    SHM_BREAKER_OPEN,      /* no traffic until cooldown has passed */
    SHM_BREAKER_HALF_OPEN, /* one trial request is in flight */
};

/* One upstream server; aligned so workers counting on neighbours don't share a line. */
struct shm_server {
    /* traffic: workers, atomics */
    _Alignas(64) atomic_int_fast64_t active; /* requests in flight to it now */
    atomic_uint_fast64_t requests;           /* requests sent to it */
    atomic_uint_fast64_t failures;     /* passive failures: connect, reset, timeout, bad answer */
    atomic_uint_fast64_t responses[5]; /* answers by class: [0] 1xx .. [4] 5xx */
    atomic_uint_fast64_t latency_us_sum; /* request sent -> response head, summed over answers */

    /* active health: the health checker is the only writer */
    atomic_int health;                   /* enum shm_health */
    atomic_uint checks_ok;               /* consecutive good probes (rise) */
    atomic_uint checks_failed;           /* consecutive failed probes (fall) */
    atomic_uint_fast64_t checks;         /* probes done */
    atomic_int_fast64_t last_check_ms;   /* buf_now_ms() when the last probe ended, 0: none */
    atomic_int_fast64_t last_latency_us; /* of the last probe */
    atomic_uint error_seq;               /* seqlock over last_error: odd while it is written */
    char last_error[SHM_ERR_MAX];        /* why the last failed probe failed */

    /* passive health, circuit breaker: workers, atomics */
    atomic_int breaker;                   /* enum shm_breaker */
    atomic_int_fast64_t breaker_since_ms; /* when it last opened or went half-open */
    atomic_uint window_fails;             /* failures in the current fail_window */
    atomic_int_fast64_t window_start_ms;  /* start of that window */
    atomic_uint_fast64_t breaker_opens;   /* times it opened */
};

struct shm_group {
    _Alignas(64) atomic_uint_fast64_t rr_cursor; /* shared round-robin position */
    uint32_t first;                              /* index of its first server in servers[] */
    uint32_t nservers;
};

enum shm_worker_state {
    SHM_W_FREE = 0, /* slot unused */
    SHM_W_IDLE,     /* waiting in accept() */
    SHM_W_READ,     /* reading a request head */
    SHM_W_PROXY,    /* proxying a request */
    SHM_W_KEEPALIVE /* waiting for the next request on a kept-alive connection */
};

struct shm_worker {
    _Alignas(64) atomic_int pid;      /* written by the master */
    atomic_int state;                 /* enum shm_worker_state, written by the worker */
    atomic_uint_fast64_t requests;    /* served by this worker */
    atomic_uint_fast64_t connections; /* client connections accepted */
    atomic_int draining;              /* set by the worker when told to finish: accepts no more */
    atomic_int ip_bucket;             /* its client's slot in shm.ip_conns, -1: none */
    uint32_t generation;
};

struct shm {
    uint64_t magic;
    uint32_t generation;
    uint32_t nworkers;
    uint32_t ngroups;
    uint32_t nservers;
    int64_t started;         /* Unix time the master started (not this generation) */
    atomic_int health_ready; /* the checker finished its first round */
    atomic_int checker_pid;
    int fd; /* the memfd, open in the master (closed by shm_destroy) */

    /* the worker pool (issue: prefork under pressure) */
    _Alignas(64) atomic_int idle_workers; /* proxy workers waiting in accept() now */
    atomic_int evicting;                  /* fair keep-alive: an idle client is being let go */
    atomic_int pool_full;                 /* the pool cannot grow: all max_workers run */
    atomic_int pool_nudged;               /* nudge_fd written; the master's next tick clears it */
    int nudge_fd;                         /* the master's eventfd: workers ask for a tick now */
    atomic_uint_fast64_t spawned;         /* workers forked by the pool (the first ones too) */
    atomic_uint_fast64_t retired;         /* workers retired by the pool for being spare */
    atomic_uint_fast64_t nudges;          /* times a worker woke the master to grow the pool */
    atomic_uint_fast64_t evictions; /* idle keep-alive connections closed for a waiting client */
    atomic_uint_fast64_t slow_rejects; /* 408s for heads or bodies below the minimum rate */
    atomic_uint_fast64_t ip_rejects;   /* connections refused by max_conns_per_ip */
    /* connections per client address, by hash of the address (collisions share a slot) */
    atomic_int ip_conns[SHM_IP_BUCKETS];
    struct shm_group groups[CFG_MAX_GROUPS];
    struct shm_server servers[CFG_MAX_TOTAL_SERVERS];
    struct shm_worker workers[CFG_MAX_WORKERS];
};

/*
 * Makes a zeroed table for <cfg> tagged with <generation>: group offsets
 * filled in, every server UNKNOWN (or UP in groups with health_check off),
 * breakers closed. NULL on failure (errno).
 */
struct shm *shm_create(const struct config *cfg, uint32_t generation);

void shm_destroy(struct shm *shm);

/* Server <s> of group <g>. */
static inline struct shm_server *
shm_srv(struct shm *shm, size_t g, size_t s)
{
    return &shm->servers[shm->groups[g].first + s];
}

/* Sets a server's last_error (health checker only; readers use shm_read_error()). */
void shm_set_error(struct shm_server *srv, const char *text);

/* Copies a server's last_error consistently into <out>. */
void shm_read_error(struct shm_server *srv, char *out, size_t len);

/*
 * Maps, read-only, the table of the running master <pid> (found through
 * /proc/<pid>/fd). For tests and tools. NULL on failure (errno). Release
 * with shm_detach().
 */
const struct shm *shm_attach(pid_t master);
void shm_detach(const struct shm *shm);

#endif
