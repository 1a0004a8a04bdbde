/*
 * shm: the shared table. See shm.h.
 */
#include "shm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

struct shm *
shm_create(const struct config *cfg, uint32_t generation)
{
    /*
     * A memfd rather than an anonymous mapping: the children inherit the
     * mapping all the same, and a reader outside (tests, tools) can map it
     * through /proc/<master>/fd. It disappears with the last process.
     */
    int fd = memfd_create(SHM_NAME, MFD_CLOEXEC);
    if (fd == -1)
        return NULL;
    if (ftruncate(fd, sizeof(struct shm)) == -1) {
        int saved = errno;
        close(fd);
        errno = saved;
        return NULL;
    }
    struct shm *shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (shm == MAP_FAILED) {
        int saved = errno;
        close(fd);
        errno = saved;
        return NULL;
    }
    /*
     * The fd stays open in the master only: tools find the table through it
     * (shm_attach()). A child closes it right after fork (proc_child_init()),
     * and keeps only the mapping of its own generation.
     */
    /* A new memfd is zero-filled: counters, UNKNOWN health, closed breakers. */
    shm->magic = SHM_MAGIC;
    shm->fd = fd;
    shm->generation = generation;
    shm->nworkers = cfg->worker_slots;
    shm->ngroups = (uint32_t)cfg->ngroups;
    uint32_t first = 0;
    for (size_t g = 0; g < cfg->ngroups; g++) {
        shm->groups[g].first = first;
        shm->groups[g].nservers = (uint32_t)cfg->groups[g].nservers;
        if (!cfg->groups[g].health_check)
            for (size_t s = 0; s < cfg->groups[g].nservers; s++)
                atomic_store(&shm->servers[first + s].health, SHM_HEALTH_UP);
        first += (uint32_t)cfg->groups[g].nservers;
    }
    shm->nservers = first;
    return shm;
}

void
shm_destroy(struct shm *shm)
{
    if (shm == NULL)
        return;
    close(shm->fd);
    munmap(shm, sizeof(*shm));
}

/* A shared (not process-private) futex: the table is mapped by every process of a generation. */
static long
futex(atomic_int *addr, int op, int val)
{
    return syscall(SYS_futex, (int *)addr, op, val, NULL, NULL, 0);
}

int
shm_accept_lock(struct shm *shm, const volatile sig_atomic_t *stop)
{
    int me = (int)getpid();

    for (;;) {
        /* read before trying: a release or a kick after this makes the sleep below not start */
        int seq = atomic_load(&shm->accept_seq);
        int cur = 0;
        if (atomic_compare_exchange_strong(&shm->accept_lock, &cur, me))
            return 0;
        if (*stop)
            return -1;
        atomic_fetch_add(&shm->accept_waiters, 1);
        long r = futex(&shm->accept_seq, FUTEX_WAIT, seq);
        int err = errno;
        atomic_fetch_sub(&shm->accept_waiters, 1);
        if (r == -1 && err == EINTR)
            return -1;
    }
}

/* Moves the sequence on and wakes <n> waiters, if there are any. */
static void
accept_wake(struct shm *shm, int n)
{
    atomic_fetch_add(&shm->accept_seq, 1);
    if (atomic_load(&shm->accept_waiters) > 0)
        futex(&shm->accept_seq, FUTEX_WAKE, n);
}

void
shm_accept_unlock(struct shm *shm)
{
    atomic_store(&shm->accept_lock, 0);
    accept_wake(shm, 1);
}

void
shm_accept_lock_kick(struct shm *shm)
{
    accept_wake(shm, INT_MAX);
}

void
shm_accept_lock_reap(struct shm *shm, pid_t pid)
{
    int dead = (int)pid;
    if (atomic_compare_exchange_strong(&shm->accept_lock, &dead, 0))
        accept_wake(shm, 1);
}

void
shm_set_error(struct shm_server *srv, const char *text)
{
    /* One writer (the checker): a seqlock is enough for readers to see whole strings. */
    atomic_fetch_add_explicit(&srv->error_seq, 1, memory_order_acq_rel);
    atomic_thread_fence(memory_order_release);
    snprintf(srv->last_error, sizeof(srv->last_error), "%s", text);
    atomic_thread_fence(memory_order_release);
    atomic_fetch_add_explicit(&srv->error_seq, 1, memory_order_acq_rel);
}

void
shm_read_error(struct shm_server *srv, char *out, size_t len)
{
    for (int tries = 0; tries < 100; tries++) {
        unsigned seq = atomic_load_explicit(&srv->error_seq, memory_order_acquire);
        if (seq & 1)
            continue;
        atomic_thread_fence(memory_order_acquire);
        snprintf(out, len, "%.*s", (int)sizeof(srv->last_error), srv->last_error);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&srv->error_seq, memory_order_acquire) == seq)
            return;
    }
    snprintf(out, len, "(being updated)");
}

void
shm_set_reload(struct shm *shm, int64_t when, bool ok, const char *text)
{
    /* One writer (the master), as shm_set_error(). */
    atomic_fetch_add_explicit(&shm->reload_seq, 1, memory_order_acq_rel);
    atomic_thread_fence(memory_order_release);
    snprintf(shm->reload_text, sizeof(shm->reload_text), "%s", text);
    atomic_store(&shm->reload_ok, ok ? 1 : 0);
    atomic_store(&shm->reload_time, when);
    atomic_thread_fence(memory_order_release);
    atomic_fetch_add_explicit(&shm->reload_seq, 1, memory_order_acq_rel);
}

int64_t
shm_read_reload(const struct shm *shm, bool *ok, char *out, size_t len)
{
    /* the seqlock's counter is only read here, but atomics take a writable pointer */
    struct shm *s = (struct shm *)shm;

    for (int tries = 0; tries < 100; tries++) {
        unsigned seq = atomic_load_explicit(&s->reload_seq, memory_order_acquire);
        if (seq & 1)
            continue;
        atomic_thread_fence(memory_order_acquire);
        snprintf(out, len, "%.*s", (int)sizeof(s->reload_text), s->reload_text);
        int64_t when = (int64_t)atomic_load(&s->reload_time);
        *ok = atomic_load(&s->reload_ok) != 0;
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&s->reload_seq, memory_order_acquire) == seq)
            return when;
    }
    snprintf(out, len, "(being updated)");
    *ok = false;
    return (int64_t)atomic_load(&s->reload_time);
}

static const int own_statuses[] = {SHM_OWN_STATUSES};
_Static_assert(sizeof(own_statuses) / sizeof(own_statuses[0]) + 1 == SHM_OWN_SLOTS,
               "SHM_OWN_SLOTS must be the statuses and one");

size_t
shm_own_slot(int status)
{
    size_t i = 0;

    while (i < SHM_OWN_SLOTS - 1 && own_statuses[i] != status)
        i++;
    return i;
}

int
shm_own_status(size_t i)
{
    return i < SHM_OWN_SLOTS - 1 ? own_statuses[i] : 0;
}

static const int64_t lat_bounds[] = {SHM_LAT_BOUNDS_US};
_Static_assert(sizeof(lat_bounds) / sizeof(lat_bounds[0]) + 1 == SHM_LAT_BUCKETS,
               "SHM_LAT_BUCKETS must be the bounds and one");

int64_t
shm_lat_bound_us(size_t i)
{
    return i < SHM_LAT_BUCKETS - 1 ? lat_bounds[i] : INT64_MAX;
}

size_t
shm_lat_bucket(int64_t us)
{
    size_t i = 0;

    /* a dozen compares, on a line the CPU has cached: cheaper than the atomic that follows */
    while (i < SHM_LAT_BUCKETS - 1 && us > lat_bounds[i])
        i++;
    return i;
}

const struct shm *
shm_attach(pid_t master)
{
    char dir[64], path[320], target[256];
    struct dirent *e;
    const struct shm *found = NULL;

    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)master);
    DIR *d = opendir(dir);
    if (d == NULL)
        return NULL;
    while (found == NULL && (e = readdir(d)) != NULL) {
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strncmp(target, "/memfd:" SHM_NAME, strlen("/memfd:" SHM_NAME)) != 0)
            continue;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd == -1)
            continue;
        void *p = mmap(NULL, sizeof(struct shm), PROT_READ, MAP_SHARED, fd, 0);
        close(fd);
        if (p == MAP_FAILED)
            continue;
        if (((const struct shm *)p)->magic != SHM_MAGIC) {
            munmap(p, sizeof(struct shm));
            continue;
        }
        found = p;
    }
    closedir(d);
    if (found == NULL)
        errno = ENOENT;
    return found;
}

void
shm_detach(const struct shm *shm)
{
    if (shm != NULL)
        munmap((void *)shm, sizeof(struct shm));
}
