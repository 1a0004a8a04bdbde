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

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

#define SHM_MAGIC 0x6d70726f78796432ULL /* "mproxyd2" */
#define SHM_NAME "miniproxyd-shm"
#define SHM_ERR_MAX 96
#define SHM_IP_BUCKETS 4096
#define SHM_RELOAD_MAX 256 /* the last reload's result, in words */

/*
 * Upper bounds (microseconds) of the latency histogram's buckets, the last
 * one +Inf: the Prometheus client libraries' default buckets, which span
 * what a web app answers in, with 1 ms added below.
 */
#define SHM_LAT_BOUNDS_US                                                                         \
    1000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000
#define SHM_LAT_BUCKETS 13 /* the bounds above and +Inf */

/*
 * The statuses the proxy answers with itself that are counted one by one
 * (shm->own_responses); any other lands in the last slot.
 */
#define SHM_OWN_STATUSES 400, 405, 408, 413, 414, 431, 501, 502, 503, 504, 505
#define SHM_OWN_SLOTS 12 /* the statuses above and "other" */

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
    atomic_int_fast64_t last_check_ms;   /* clock_ms() when the last probe ended, 0: none */
    atomic_int_fast64_t last_latency_us; /* of the last probe */
    atomic_uint error_seq;               /* seqlock over last_error: odd while it is written */
    char last_error[SHM_ERR_MAX];        /* why the last failed probe failed */

    /*
     * passive health, circuit breaker: workers, atomics; the checker closes
     * it when the server comes up. State and time share one word so that
     * every transition is one compare-and-swap: a worker can never see a
     * new state with an old time (shm_bw_*()).
     */
    atomic_uint_fast64_t breaker;       /* shm_bw_make(enum shm_breaker, since_ms) */
    atomic_uint_fast64_t fail_run;      /* consecutive failures: shm_run_make(count, first_ms) */
    atomic_uint_fast64_t breaker_opens; /* times it opened */
    atomic_int_fast64_t down_since_ms; /* the checker: clock_ms() when it went down, 0: not down */
};

struct shm_group {
    _Alignas(64) atomic_uint_fast64_t rr_cursor; /* shared round-robin position */
    uint32_t first;                              /* index of its first server in servers[] */
    uint32_t nservers;
    /*
     * Held (clock_ms() of the taker, 0: free) by the worker deciding an
     * ejection, so that two workers ejecting two servers at once cannot
     * both pass max_ejected_percent. Taken with a CAS, never waited for.
     */
    atomic_int_fast64_t eject_lock;
    atomic_int no_usable; /* the checker: 1 while no server of the group is up */
    /*
     * Upstream latency (request sent -> response head, as servers'
     * latency_us_sum) by bucket, not cumulative: one atomic per response,
     * from the workers. Bounds: SHM_LAT_BOUNDS_US.
     */
    _Alignas(64) atomic_uint_fast64_t latency[SHM_LAT_BUCKETS];
};

enum shm_worker_state {
    SHM_W_FREE = 0,  /* slot unused */
    SHM_W_IDLE,      /* waiting in accept() */
    SHM_W_READ,      /* reading a request head */
    SHM_W_PROXY,     /* proxying a request */
    SHM_W_KEEPALIVE, /* waiting for the next request on a kept-alive connection */
    SHM_W_TUNNEL,    /* relaying a WebSocket tunnel (tunnel.c): busy until it closes */
    SHM_W_NSTATES
};

struct shm_worker {
    _Alignas(64) atomic_int pid;      /* written by the master */
    atomic_int state;                 /* enum shm_worker_state, written by the worker */
    atomic_uint_fast64_t requests;    /* served by this worker */
    atomic_uint_fast64_t connections; /* client connections accepted */
    atomic_uint_fast64_t bytes; /* response body bytes sent to clients (tunnels: downstream) */
    atomic_int draining;        /* set by the worker when told to finish: accepts no more */
    atomic_int ip_bucket;       /* its client's slot in shm.ip_conns, -1: none */
    uint32_t generation;
    /* written by the worker: clock_ms() since it waits for an incomplete head, 0: none */
    atomic_int_fast64_t head_since;
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
    /*
     * The accept lock (shm_accept_lock()): 0 free, else the pid of the
     * worker that polls the listeners. <accept_waiters> sleep on the futex
     * <accept_seq>, which every release (and every drain) moves on.
     */
    _Alignas(64) atomic_int accept_lock;
    atomic_int accept_seq;
    atomic_int accept_waiters;
    atomic_int pool_full;                 /* the pool cannot grow: all max_workers run */
    atomic_int pool_nudged;               /* nudge_fd written; the master's next tick clears it */
    int nudge_fd;                         /* the master's eventfd: workers ask for a tick now */
    atomic_uint_fast64_t spawned;         /* workers forked by the pool (the first ones too) */
    atomic_uint_fast64_t retired;         /* workers retired by the pool for being spare */
    atomic_uint_fast64_t nudges;          /* times a worker woke the master to grow the pool */
    atomic_uint_fast64_t evictions; /* idle keep-alive connections closed for a waiting client */
    atomic_uint_fast64_t slow_rejects; /* 408s for heads or bodies below the minimum rate */
    atomic_uint_fast64_t ip_rejects;   /* connections refused by max_conns_per_ip */
    atomic_uint_fast64_t tunnels;      /* WebSocket tunnels opened (open now: the scoreboard) */
    atomic_uint_fast64_t spliced;      /* body bytes moved by splice() (splice = on), both ways */
    /* answers the proxy made itself (conn_refuse(), proxy.c's answer()), by SHM_OWN_STATUSES */
    atomic_uint_fast64_t own_responses[SHM_OWN_SLOTS];
    /*
     * Two samples of the request and byte totals, for the rates on the
     * status page: the admin worker is the only writer (status_sample()).
     */
    struct shm_sample {
        atomic_int_fast64_t ms; /* clock_ms() of the sample, 0: none */
        atomic_uint_fast64_t requests, bytes;
    } sample_prev, sample_last;
    /*
     * The last reload, written by the master into the live table: a failed
     * one into the table that keeps serving, a good one into the new one.
     */
    atomic_int_fast64_t reload_time; /* Unix time, 0: no reload yet */
    atomic_int reload_ok;            /* 1: it took effect; 0: it failed */
    atomic_uint reload_seq;          /* seqlock over reload_text: odd while it is written */
    char reload_text[SHM_RELOAD_MAX];
    /* connections per client address, by hash of the address (collisions share a slot) */
    atomic_int ip_conns[SHM_IP_BUCKETS];
    struct shm_group groups[CFG_MAX_GROUPS];
    struct shm_server servers[CFG_MAX_TOTAL_SERVERS];
    struct shm_worker workers[CFG_MAX_WORKERS];
    /* requests matched to each [route NAME], by its index in the config (workers, atomics) */
    atomic_uint_fast64_t route_requests[CFG_MAX_ROUTES];
};

/*
 * Makes a zeroed table for <cfg> tagged with <generation>: group offsets
 * filled in, every server UNKNOWN (or UP in groups with health_check off),
 * breakers closed. NULL on failure (errno).
 */
struct shm *shm_create(const struct config *cfg, uint32_t generation);

void shm_destroy(struct shm *shm);

/*
 * The breaker word: the state in the low 2 bits, the time it entered it
 * (clock_ms(), never negative) above them.
 */
static inline uint64_t
shm_bw_make(int state, int64_t since_ms)
{
    return ((uint64_t)since_ms << 2) | (uint64_t)(state & 3);
}

static inline int
shm_bw_state(uint64_t w)
{
    return (int)(w & 3);
}

static inline int64_t
shm_bw_since(uint64_t w)
{
    return (int64_t)(w >> 2);
}

/* The state of <srv>'s breaker now (enum shm_breaker). */
static inline int
shm_breaker_state(const struct shm_server *srv)
{
    return shm_bw_state(atomic_load_explicit(&srv->breaker, memory_order_acquire));
}

/*
 * The run of consecutive failures: the count in the low 16 bits
 * (max_fails <= 1000; it saturates at 0xffff), the time of its first
 * failure above them. 0: no run.
 */
static inline uint64_t
shm_run_make(unsigned count, int64_t first_ms)
{
    return ((uint64_t)first_ms << 16) | (count > 0xffff ? 0xffff : count);
}

static inline unsigned
shm_run_count(uint64_t r)
{
    return (unsigned)(r & 0xffff);
}

static inline int64_t
shm_run_first(uint64_t r)
{
    return (int64_t)(r >> 16);
}

/* The slot of client address <ip> (text) in ip_conns: FNV-1a, collisions share one. */
static inline uint32_t
shm_ip_bucket(const char *ip)
{
    uint32_t h = 2166136261u;

    for (const char *p = ip; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % SHM_IP_BUCKETS;
}

/* Server <s> of group <g>. */
static inline struct shm_server *
shm_srv(struct shm *shm, size_t g, size_t s)
{
    return &shm->servers[shm->groups[g].first + s];
}

/* Sets a server's last_error (health checker only; readers use shm_read_error()). */
void shm_set_error(struct shm_server *srv, const char *text);

/*
 * The accept lock, Apache prefork's accept mutex: with several listeners a
 * worker waits for a client in poll() over all of them, and poll() wakes
 * every process waiting on a socket, so each new connection would wake
 * every idle worker (with hundreds, accepting costs more than serving).
 * With the lock only its holder polls; the others sleep on a futex and one
 * is woken when it is let go. (One listener needs no lock: a blocking
 * accept() wakes one process.) shm_accept_lock() returns 0 once this
 * process holds it, or -1 when a signal interrupted the wait or <*stop> is
 * set (the caller looks at its flags). A holder that dies is cleared by the master
 * (shm_accept_lock_reap()), so a crash never leaves the listeners unwatched.
 */
int shm_accept_lock(struct shm *shm, const volatile sig_atomic_t *stop);
void shm_accept_unlock(struct shm *shm);
/*
 * From a signal handler that set <*stop> (async-signal-safe): wakes this
 * generation's lock waiters, so the one that must stop sees its flag even
 * when the signal came just before it went to sleep.
 */
void shm_accept_lock_kick(struct shm *shm);
/* Called by the master for each dead child <pid>: frees the lock it held, if it did. */
void shm_accept_lock_reap(struct shm *shm, pid_t pid);

/* Copies a server's last_error consistently into <out>. */
void shm_read_error(struct shm_server *srv, char *out, size_t len);

/* The master: records a reload at Unix time <when>, good or not, and its result <text>. */
void shm_set_reload(struct shm *shm, int64_t when, bool ok, const char *text);

/* Copies the last reload's result consistently into <out>; returns its time, 0: none. */
int64_t shm_read_reload(const struct shm *shm, bool *ok, char *out, size_t len);

/* The slot of shm->own_responses that counts <status>. */
size_t shm_own_slot(int status);

/* The status counted in slot <i> of shm->own_responses; 0 for the last ("other"). */
int shm_own_status(size_t i);

/* The upper bound (us) of latency bucket <i>; INT64_MAX for the last (+Inf). */
int64_t shm_lat_bound_us(size_t i);

/* The latency bucket <us> microseconds fall in. */
size_t shm_lat_bucket(int64_t us);

/* Counts one answer the proxy made itself with <status> (one relaxed atomic). */
static inline void
shm_count_own(struct shm *shm, int status)
{
    atomic_fetch_add_explicit(&shm->own_responses[shm_own_slot(status)], 1, memory_order_relaxed);
}

/*
 * Maps, read-only, the table of the running master <pid> (found through
 * /proc/<pid>/fd). For tests and tools. NULL on failure (errno). Release
 * with shm_detach().
 */
const struct shm *shm_attach(pid_t master);
void shm_detach(const struct shm *shm);

#endif
