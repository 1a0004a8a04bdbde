/*
 * shm: the table shared by the master, the workers and (later) the health
 * checker. One anonymous MAP_SHARED region per generation, made by the
 * master before it forks. Fixed size, no pointers, every field has one
 * writer or is a C11 atomic (Apache's scoreboard, done with atomics).
 *
 * Index: servers[g][s] is server s of upstream group g in config order.
 */
#ifndef MP_SHM_H
#define MP_SHM_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

#define SHM_MAGIC 0x6d70726f78796431ULL /* "mproxyd1" */

/* One upstream server; aligned so workers counting on neighbours don't share a line. */
struct shm_server {
    _Alignas(64) atomic_int_fast64_t active; /* requests in flight to it now */
    atomic_uint_fast64_t requests;           /* requests sent to it */
    atomic_uint_fast64_t failures;           /* connect / read failures and timeouts */
};

struct shm_group {
    _Alignas(64) atomic_uint_fast64_t rr_cursor; /* shared round-robin position */
};

enum shm_worker_state {
    SHM_W_FREE = 0, /* slot unused */
    SHM_W_IDLE,     /* waiting in accept() */
    SHM_W_READ,     /* reading a request head */
    SHM_W_PROXY,    /* proxying a request */
    SHM_W_KEEPALIVE /* waiting for the next request on a kept-alive connection */
};

struct shm_worker {
    _Alignas(64) atomic_int pid;  /* written by the master */
    atomic_int state;             /* enum shm_worker_state, written by the worker */
    atomic_uint_fast64_t requests;     /* served by this worker */
    atomic_uint_fast64_t connections;  /* client connections accepted */
    uint32_t generation;
};

struct shm {
    uint64_t magic;
    uint32_t generation;
    uint32_t nworkers;
    struct shm_group groups[CFG_MAX_GROUPS];
    struct shm_server servers[CFG_MAX_GROUPS][CFG_MAX_SERVERS];
    struct shm_worker workers[CFG_MAX_WORKERS];
};

/* Maps a zeroed table for <cfg> tagged with <generation>; NULL on failure (errno). */
struct shm *shm_create(const struct config *cfg, uint32_t generation);

void shm_destroy(struct shm *shm);

#endif
