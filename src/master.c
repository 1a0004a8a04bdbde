/*
 * master: signals, generations, listeners, reload, stop. See master.h.
 * How a child is forked and what its death means is proc.c; how big the
 * adaptive pool should be is pool.c; what a reload hands from one table
 * to the next is carry.c.
 *
 * Children belong to a generation: a configuration, its shared table and
 * its processes (workers, the health checker, the admin worker). SIGHUP
 * builds a whole new generation next to the live one and, once it serves,
 * retires the old one: its workers finish the request they are on and exit
 * (nginx's reload, done with prefork workers). Listening sockets belong to
 * the master and outlive generations, so connections waiting in the accept
 * queue are served by whichever generation accepts next; each child
 * keeps only its own generation's (and closes the rest right after fork).
 */
#include "master.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "carry.h"
#include "health.h"
#include "log.h"
#include "net.h"
#include "pidfile.h"
#include "pool.h"
#include "proc.h"
#include "shm.h"
#include "tls.h"
#include "worker.h"

#define FAST_STOP_MS 3000
/* Generations alive at once: the current one and those still draining. */
#define MAX_GENS 8
#define MAX_LISTENERS (2 * (CFG_MAX_LISTENERS + 1))

static volatile sig_atomic_t sig_chld, sig_term, sig_quit, sig_hup, sig_usr1;

static void
on_signal(int sig)
{
    switch (sig) {
    case SIGCHLD:
        sig_chld = 1;
        break;
    case SIGTERM:
    case SIGINT:
        sig_term = 1;
        break;
    case SIGQUIT:
        sig_quit = 1;
        break;
    case SIGHUP:
        sig_hup = 1;
        break;
    case SIGUSR1:
        sig_usr1 = 1;
        break;
    }
}

/* A listening socket, owned by the master across generations. */
struct listener {
    char key[96]; /* "proxy 127.0.0.1:8080", "admin 127.0.0.1:9090" */
    int fd;
    int port;
};

struct master;

/* One configuration and the processes serving it. */
struct generation {
    struct master *m; /* the master it belongs to */
    uint32_t id;
    struct config *cfg;
    struct shm *shm;
    struct proc_child *children; /* workers, then the checker, then the admin worker if any */
    unsigned nchildren;
    int lfds[CFG_MAX_LISTENERS]; /* the proxy listeners its workers accept on */
    size_t nlisten;
    int admin_fd; /* -1: no [admin] */
    bool retiring;
    int64_t kill_at;        /* retiring: SIGKILL whatever is left then */
    struct pool_state pool; /* adaptive pool (workers = auto) */
    uint64_t *handed;       /* its counters when a reload handed them on (carry_snapshot()) */
};

struct master {
    const char *path;
    struct generation *gens[MAX_GENS]; /* gens[0] is the current one */
    size_t ngens;
    struct listener ls[MAX_LISTENERS];
    size_t nls;
    uint32_t next_id;
    int64_t started_unix;
    sigset_t waitmask; /* the mask ppoll() waits with: our signals unblocked */
    int nudge_fd;      /* eventfd: workers ask for a pool tick now (shm.nudge_fd) */
    bool nudged;       /* nudge_fd was written since the last pool tick */
    char *pid_file;    /* the pid file we wrote (a reload does not move it), NULL: none */
    /*
     * TLS: the table of ticket keys, session cache and counters, made once
     * (at the first configuration with [tls]) and kept across generations,
     * so that sessions survive reloads. <tls_rotate_at>: clock_ms() of the
     * next ticket key rotation, 0 for none (keys from a file, or no tickets).
     */
    struct tls_shared *tls;
    int64_t tls_rotate_at;
    uint64_t tls_cache_bytes; /* the session cache the table was made with */
};

static struct generation *
current(struct master *m)
{
    return m->gens[0];
}

/* "2 workers" or "2 workers (adaptive 2..256)": what runs, for the start and reload lines. */
static const char *
describe_pool(const struct config *cfg, char *buf, size_t len)
{
    if (cfg->workers_auto)
        snprintf(buf, len, "%u workers (adaptive %u..%u)", cfg->min_workers, cfg->min_workers,
                 cfg->max_workers);
    else
        snprintf(buf, len, "%u workers", cfg->min_workers);
    return buf;
}

/* ---- children -------------------------------------------------------------------------- */

static bool
is_checker(const struct generation *gen, unsigned i)
{
    return i == gen->cfg->worker_slots;
}

static bool
is_admin(const struct generation *gen, unsigned i)
{
    return i == gen->cfg->worker_slots + 1;
}

/* "worker 3", "health checker", "admin worker", for messages. */
static const char *
child_name(const struct generation *gen, unsigned i, char *buf, size_t len)
{
    if (is_checker(gen, i))
        snprintf(buf, len, "health checker");
    else if (is_admin(gen, i))
        snprintf(buf, len, "admin worker");
    else
        snprintf(buf, len, "worker %u", i);
    return buf;
}

/* What a child needs to know to start: its generation and its slot. */
struct spawn_arg {
    struct generation *gen;
    unsigned i;
};

/* The body of child <i> of <gen> (in the child, after proc_child_init()). */
static _Noreturn void
child_main(void *arg)
{
    const struct spawn_arg *a = arg;
    struct generation *gen = a->gen;

    if (is_checker(gen, a->i))
        health_run(gen->cfg, gen->shm);
    if (is_admin(gen, a->i))
        worker_run(gen->cfg, gen->shm, -1, &gen->admin_fd, 1, true);
    worker_run(gen->cfg, gen->shm, (int)a->i, gen->lfds, gen->nlisten, false);
}

/*
 * In the parent, before the fork: fills worker <i>'s scoreboard slot with
 * what the child will find there. After the fork the master writes only
 * what it owns (the pid), never a field the child may already be writing
 * (ip_bucket, draining, head_since).
 */
static void
child_prepare(void *arg)
{
    const struct spawn_arg *a = arg;
    struct shm_worker *w;

    if (a->i >= a->gen->cfg->worker_slots)
        return;
    w = &a->gen->shm->workers[a->i];
    atomic_store(&w->draining, 0);
    atomic_store(&w->ip_bucket, -1);
    atomic_store(&w->head_since, 0);
    w->generation = a->gen->id;
}

/* Whether child <i> of <gen> accepts on the listener <fd>. */
static bool
child_uses(const struct generation *gen, unsigned i, int fd)
{
    if (is_checker(gen, i))
        return false;
    if (is_admin(gen, i))
        return fd == gen->admin_fd;
    for (size_t k = 0; k < gen->nlisten; k++)
        if (gen->lfds[k] == fd)
            return true;
    return false;
}

/*
 * In the child, first thing: lets go of what the master holds for others.
 * Listeners it does not accept on (another generation's, or a removed
 * one's: a child holding it would keep it in LISTEN after the master
 * closed it), every generation's shared-memory descriptor (a child needs
 * only its own mapping), other generations' mappings, and the nudge eventfd
 * unless it is a proxy worker (the only ones that nudge).
 */
static void
child_forget(void *arg)
{
    const struct spawn_arg *a = arg;
    const struct generation *gen = a->gen;
    struct master *m = gen->m;

    for (size_t k = 0; k < m->nls; k++)
        if (!child_uses(gen, a->i, m->ls[k].fd))
            close(m->ls[k].fd);
    for (size_t k = 0; k < m->ngens; k++) {
        if (m->gens[k] == gen)
            close(gen->shm->fd);
        else
            shm_destroy(m->gens[k]->shm);
    }
    if (a->i >= gen->cfg->worker_slots)
        close(m->nudge_fd);
}

/* Forks child <i> of <gen>. Returns its pid, or -1 (logged). */
static pid_t
spawn_child(struct generation *gen, unsigned i)
{
    char name[32];
    struct spawn_arg arg = {.gen = gen, .i = i};
    struct proc_start st = {
        .name = child_name(gen, i, name, sizeof(name)),
        .user = gen->cfg->user,
        .master = getpid(),
        .prepare = child_prepare,
        .forget = child_forget,
        .run = child_main,
        .arg = &arg,
    };
    pid_t pid = proc_spawn(&gen->children[i], &st);
    if (pid == -1)
        return -1;
    if (i < gen->cfg->worker_slots) {
        atomic_fetch_add(&gen->shm->spawned, 1);
        atomic_store(&gen->shm->workers[i].pid, pid);
    }
    return pid;
}

static unsigned
live_in(const struct generation *gen)
{
    return proc_live(gen->children, gen->nchildren);
}

static unsigned
live_children(const struct master *m)
{
    unsigned n = 0;
    for (size_t k = 0; k < m->ngens; k++)
        n += live_in(m->gens[k]);
    return n;
}

static void
signal_gen(struct generation *gen, int sig)
{
    proc_signal(gen->children, gen->nchildren, sig);
}

static void
signal_all(struct master *m, int sig)
{
    for (size_t k = 0; k < m->ngens; k++)
        signal_gen(m->gens[k], sig);
}

/*
 * Clears what a dead worker left in the shared table: its scoreboard
 * entry, and the shared counts it held (an idle slot, its client's
 * per-address count, the fair keep-alive token), so a kill -9 leaks none.
 */
static void
forget_worker(struct generation *gen, unsigned i, pid_t pid)
{
    struct shm *shm = gen->shm;
    struct shm_worker *w = &shm->workers[i];
    if (atomic_exchange(&w->state, SHM_W_FREE) == SHM_W_IDLE)
        atomic_fetch_sub(&shm->idle_workers, 1);
    int b = atomic_exchange(&w->ip_bucket, -1);
    if (b >= 0 && b < SHM_IP_BUCKETS)
        atomic_fetch_sub(&shm->ip_conns[b], 1);
    int token = pid;
    atomic_compare_exchange_strong(&shm->evicting, &token, 0);
    atomic_store(&w->head_since, 0);
    atomic_store(&w->pid, 0);
}

/* Finds the generation and slot of child <pid>; false when it is none of ours. */
static bool
find_child(struct master *m, pid_t pid, struct generation **genp, unsigned *slot)
{
    for (size_t k = 0; k < m->ngens; k++) {
        struct generation *gen = m->gens[k];
        for (unsigned i = 0; i < gen->nchildren; i++) {
            if (gen->children[i].pid == pid) {
                *genp = gen;
                *slot = i;
                return true;
            }
        }
    }
    return false;
}

/* Reaps every dead child; schedules respawns in live generations unless <stopping>. */
static void
reap(struct master *m, bool stopping)
{
    int status;
    pid_t pid;

    while ((pid = proc_reap(&status)) > 0) {
        struct generation *gen;
        unsigned i;
        char name[32];

        if (!find_child(m, pid, &gen, &i))
            continue;
        gen->children[i].pid = 0;
        shm_accept_lock_reap(gen->shm, pid); /* it may have died watching the listeners */
        if (i < gen->cfg->worker_slots)
            forget_worker(gen, i, pid);
        child_name(gen, i, name, sizeof(name));
        if (gen->retiring || stopping || !gen->children[i].wanted) {
            /* Expected: an old generation drains away. */
            char why[96];
            proc_describe_exit(status, why, sizeof(why));
            log_debug("generation %u: %s (pid %d) %s", gen->id, name, (int)pid, why);
        } else {
            proc_died(&gen->children[i], name, pid, status, clock_ms());
        }
    }
}

/* Forks the children whose respawn time has come; returns ms until the next one, or -1. */
static int64_t
respawn_due(struct master *m)
{
    int64_t now = clock_ms(), next = -1;
    for (size_t k = 0; k < m->ngens; k++) {
        struct generation *gen = m->gens[k];
        if (gen->retiring)
            continue;
        for (unsigned i = 0; i < gen->nchildren; i++) {
            int64_t left = proc_due_in(&gen->children[i], now);
            if (left == 0) {
                if (spawn_child(gen, i) == -1)
                    gen->children[i].respawn_at = now + 1000; /* fork failed: try again, slowly */
                continue;
            }
            if (left > 0 && (next == -1 || left < next))
                next = left;
        }
    }
    return next;
}

/*
 * Waits for our signals (or <ms>, -1 = forever) with them unblocked, or for
 * a worker's nudge (m->nudged).
 */
static void
wait_signal(struct master *m, int64_t ms)
{
    struct timespec ts, *tp = NULL;
    struct pollfd pfd = {.fd = m->nudge_fd, .events = POLLIN};
    if (ms >= 0) {
        ts.tv_sec = ms / 1000;
        ts.tv_nsec = (ms % 1000) * 1000000;
        tp = &ts;
    }
    if (ppoll(&pfd, 1, tp, &m->waitmask) > 0 && pfd.revents != 0) {
        uint64_t n;
        if (read(m->nudge_fd, &n, sizeof(n)) == (ssize_t)sizeof(n))
            m->nudged = true;
    }
}

/* ---- listeners ------------------------------------------------------------------------- */

/* The port in <addr>. */
static int
addr_port(const struct cfg_addr *addr)
{
    if (addr->ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&addr->ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)&addr->ss)->sin_port);
}

/*
 * Whether another socket is bound to <addr>: a bind() without SO_REUSEPORT
 * (but with SO_REUSEADDR, so that connections in TIME_WAIT do not count)
 * fails then. Our listeners use SO_REUSEPORT, and Linux lets any socket of
 * the same user join a port whose sockets all have it, so without this a
 * second instance would silently share our port (or we its). Returns 1 when
 * taken, 0 when free, -1 on another error (errno).
 *
 * A probe, then the real bind: a process that binds the address in between
 * (microseconds) goes unnoticed; any that binds it later fails this same
 * probe, since our socket then holds the address. That is race-free enough
 * for its purpose (two instances started by mistake on one address), and
 * needs no parsing of /proc/net/tcp.
 */
static int
addr_taken(const struct cfg_addr *addr)
{
    int one = 1, rc = 0;
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        (addr->ss.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1))
        rc = -1;
    else if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) == -1)
        rc = errno == EADDRINUSE ? 1 : -1;
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* Whether one of our own listeners has <port> (a wildcard and a specific address may share). */
static bool
port_is_ours(const struct master *m, int port)
{
    for (size_t i = 0; i < m->nls; i++)
        if (m->ls[i].port == port)
            return true;
    return false;
}

/*
 * The master's socket for <addr> (opening it when no generation has it
 * yet). An address another process listens on is refused, at start as on
 * reload. Returns the fd or -1 (logged).
 */
static int
listener_get(struct master *m, const char *kind, const struct cfg_addr *addr,
             const struct config *cfg, const char *section, int line)
{
    char key[96];
    snprintf(key, sizeof(key), "%s %s", kind, addr->text);
    for (size_t i = 0; i < m->nls; i++)
        if (strcmp(m->ls[i].key, key) == 0)
            return m->ls[i].fd;
    if (m->nls == MAX_LISTENERS) {
        log_error("too many listening sockets");
        return -1;
    }
    int port = addr_port(addr);
    if (port != 0 && !port_is_ours(m, port) && addr_taken(addr) == 1) {
        log_error("%s:%d: [%s] listen %s: address already in use (another process has it)",
                  cfg->path, line, section, addr->text);
        return -1;
    }
    int fd = net_listen(addr, 4096);
    if (fd == -1) {
        log_error_errno("%s:%d: [%s] listen: cannot listen on %s", cfg->path, line, section,
                        addr->text);
        return -1;
    }
    struct listener *l = &m->ls[m->nls++];
    snprintf(l->key, sizeof(l->key), "%s", key);
    l->fd = fd;
    l->port = net_local_port(fd);
    log_info("listening on %s (port %d)%s", addr->text, l->port,
             strcmp(kind, "admin") == 0 ? " for /status, /status.json, /metrics" : "");
    return fd;
}

static bool
gen_uses(const struct generation *gen, int fd)
{
    if (gen->admin_fd == fd)
        return true;
    for (size_t i = 0; i < gen->nlisten; i++)
        if (gen->lfds[i] == fd)
            return true;
    return false;
}

/* Closes the listening sockets no generation uses any more. */
static void
listeners_prune(struct master *m)
{
    for (size_t i = 0; i < m->nls;) {
        bool used = false;
        for (size_t k = 0; k < m->ngens && !used; k++)
            used = gen_uses(m->gens[k], m->ls[i].fd);
        if (used) {
            i++;
            continue;
        }
        log_info("closed listener %s", m->ls[i].key);
        close(m->ls[i].fd);
        m->ls[i] = m->ls[--m->nls];
    }
}

/* ---- generations ----------------------------------------------------------------------- */

static void
gen_free(struct generation *gen)
{
    if (gen == NULL)
        return;
    shm_destroy(gen->shm);
    cfg_free(gen->cfg);
    free(gen->children);
    free(gen->handed);
    free(gen);
}

/*
 * Hands <old>'s counters to <gen> at a reload, so that counters only go up
 * (Prometheus reads a drop as a restart): what <old> counted so far now,
 * and what it counts while it drains when it finishes (gens_collect()).
 */
static void
hand_counters(struct generation *old, struct generation *gen)
{
    uint64_t *now = carry_snapshot(old->cfg, old->shm);
    if (now == NULL) {
        log_warn("reload: out of memory: counters start again from zero");
        return;
    }
    carry_counters(old->cfg, now, NULL, gen->cfg, gen->shm);
    old->handed = now;
}

/* <old> finished: hands what it counted since hand_counters() to the current generation. */
static void
hand_rest(struct generation *old, struct generation *cur)
{
    if (old->handed == NULL)
        return;
    uint64_t *now = carry_snapshot(old->cfg, old->shm);
    if (now != NULL)
        carry_counters(old->cfg, now, old->handed, cur->cfg, cur->shm);
    free(now);
}

/*
 * Makes a generation for <cfg> (taking it over): its listeners, shared
 * table and child slots; no process yet. NULL on failure (logged; <cfg>
 * freed).
 */
static struct generation *
gen_new(struct master *m, struct config *cfg)
{
    struct generation *gen = calloc(1, sizeof(*gen));
    if (gen == NULL) {
        cfg_free(cfg);
        log_error("out of memory");
        return NULL;
    }
    gen->m = m;
    gen->cfg = cfg;
    gen->id = m->next_id;
    gen->admin_fd = -1;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct cfg_listener *l = &cfg->listeners[i];
        int fd = listener_get(m, "proxy", &l->addr, cfg, "proxy", l->line);
        if (fd == -1)
            goto fail;
        if (net_defer_accept(fd, l->deferred) == -1)
            log_warn_errno("%s:%d: [proxy] listen %s: TCP_DEFER_ACCEPT", cfg->path, l->line,
                           l->addr.text);
        gen->lfds[gen->nlisten++] = fd;
    }
    if (cfg->admin) {
        gen->admin_fd = listener_get(m, "admin", &cfg->admin_addr, cfg, "admin", cfg->admin_line);
        if (gen->admin_fd == -1)
            goto fail;
    }
    gen->shm = shm_create(cfg, gen->id);
    if (gen->shm == NULL) {
        log_error_errno("shared memory");
        goto fail;
    }
    gen->shm->started = m->started_unix;
    gen->shm->nudge_fd = m->nudge_fd;
    gen->nchildren = cfg->worker_slots + 1 + (cfg->admin ? 1 : 0);
    gen->children = calloc(gen->nchildren, sizeof(*gen->children));
    if (gen->children == NULL) {
        log_error("out of memory");
        goto fail;
    }
    m->next_id++;
    return gen;
fail:
    gen_free(gen);
    /* Sockets opened for it and used by nobody else go again. */
    listeners_prune(m);
    return NULL;
}

/*
 * Sets the listeners' blocking mode for <gen>'s workers: with one proxy
 * listener they block in accept() (the kernel wakes one worker per
 * connection); with several they poll them all and accept without blocking.
 * The mode is the socket's, shared with a retiring generation, which only
 * drains and accepts no more.
 */
static void
gen_listener_mode(struct generation *gen)
{
    for (size_t i = 0; i < gen->nlisten; i++)
        net_set_blocking(gen->lfds[i], gen->nlisten == 1);
    if (gen->admin_fd != -1)
        net_set_blocking(gen->admin_fd, true);
}

/*
 * Waits until <gen>'s checker has probed every server it must (at most the
 * longest health_timeout plus a second), reaping and respawning meanwhile.
 * Returns -1 when told to stop during the wait.
 */
static int
wait_health_ready(struct master *m, struct generation *gen)
{
    int64_t longest = 0;
    for (size_t g = 0; g < gen->cfg->ngroups; g++)
        if (gen->cfg->groups[g].health_check && gen->cfg->groups[g].health_timeout_ms > longest)
            longest = gen->cfg->groups[g].health_timeout_ms;
    int64_t deadline = clock_ms() + longest + 1000;
    while (!atomic_load(&gen->shm->health_ready)) {
        if (sig_term || sig_quit)
            return -1;
        if (clock_ms() >= deadline) {
            log_warn("first health checks not done after %lld ms; starting the workers anyway "
                     "(servers not checked yet get no traffic)",
                     (long long)(longest + 1000));
            break;
        }
        if (sig_chld) {
            sig_chld = 0;
            reap(m, false);
            respawn_due(m);
        }
        wait_signal(m, 5);
    }
    return 0;
}

/*
 * Starts <gen>'s processes: the checker first, the workers (and the admin
 * worker) once it has probed every server, so no request goes to a server
 * before its first probe; clients that come meanwhile wait in the accept
 * queue, or are served by the generation being replaced. Returns -1 when
 * told to stop meanwhile.
 */
static int
gen_start(struct master *m, struct generation *gen)
{
    struct config *cfg = gen->cfg;
    gen->children[cfg->worker_slots].wanted = true;
    if (spawn_child(gen, cfg->worker_slots) == -1)
        gen->children[cfg->worker_slots].respawn_at = clock_ms() + 1000;
    if (wait_health_ready(m, gen) == -1)
        return -1;
    gen_listener_mode(gen);
    pool_reset(&gen->pool);
    /* A fixed pool is full from the start; an adaptive one says so at its ticks. */
    atomic_store(&gen->shm->pool_full, cfg->min_workers >= cfg->max_workers);
    for (unsigned i = 0; i < gen->nchildren; i++) {
        if (is_checker(gen, i) || (i < cfg->worker_slots && i >= cfg->min_workers))
            continue; /* slots above min_workers are the adaptive pool's */
        gen->children[i].wanted = true;
        if (spawn_child(gen, i) == -1)
            gen->children[i].respawn_at = clock_ms() + 1000;
    }
    return 0;
}

/* Asks <gen> to finish: workers complete their request, answer it with close, and exit. */
static void
gen_retire(struct generation *gen)
{
    gen->retiring = true;
    gen->kill_at = clock_ms() + gen->cfg->shutdown_timeout_ms;
    signal_gen(gen, SIGQUIT);
}

/*
 * Waits (at most a second) until every worker of the retiring <gen> has
 * taken the signal in, so none of them accepts a connection any more: from
 * then on, new connections go to the new generation only.
 */
static void
wait_retired(struct master *m, struct generation *gen)
{
    int64_t deadline = clock_ms() + 1000;
    for (;;) {
        unsigned pending = 0;
        for (unsigned i = 0; i < gen->cfg->worker_slots; i++)
            if (gen->children[i].pid != 0 && !atomic_load(&gen->shm->workers[i].draining))
                pending++;
        if (pending == 0 || clock_ms() >= deadline)
            return;
        if (sig_chld) {
            sig_chld = 0;
            reap(m, false);
        }
        wait_signal(m, 1);
    }
}

/* Frees retired generations that have no process left; kills overdue ones. */
static void
gens_collect(struct master *m)
{
    int64_t now = clock_ms();
    bool freed = false;
    for (size_t k = 1; k < m->ngens;) {
        struct generation *gen = m->gens[k];
        if (live_in(gen) > 0) {
            if (now >= gen->kill_at) {
                log_warn("generation %u: %u processes still running after shutdown_timeout "
                         "(%lld ms): killing them",
                         gen->id, live_in(gen), (long long)gen->cfg->shutdown_timeout_ms);
                signal_gen(gen, SIGKILL);
                gen->kill_at = now + 1000000;
            }
            k++;
            continue;
        }
        log_info("generation %u finished", gen->id);
        hand_rest(gen, current(m));
        gen_free(gen);
        memmove(&m->gens[k], &m->gens[k + 1], (m->ngens - k - 1) * sizeof(m->gens[0]));
        m->ngens--;
        freed = true;
    }
    if (freed)
        listeners_prune(m);
}

/* ms until the earliest kill_at of a retiring generation, or -1. */
static int64_t
next_kill(const struct master *m)
{
    int64_t now = clock_ms(), next = -1;
    for (size_t k = 1; k < m->ngens; k++) {
        int64_t left = m->gens[k]->kill_at - now;
        if (left < 0)
            left = 0;
        if (next == -1 || left < next)
            next = left;
    }
    return next;
}

/*
 * Makes the shared TLS table if <cfg> is the first with [tls], and puts
 * its ticket keys in: the key file's, else a random key when there is none
 * yet (then rotated every session_timeout). Returns 0 or -1 (logged).
 */
static int
tls_prepare(struct master *m, const struct config *cfg)
{
    const struct tls_ticket_key *keys;
    size_t n;

    if (!cfg->tls)
        return 0;
    if (m->tls == NULL) {
        m->tls = tls_shared_create(cfg->tls_session_cache);
        if (m->tls == NULL) {
            log_error_errno("TLS: shared memory for %llu bytes of session cache",
                            (unsigned long long)cfg->tls_session_cache);
            return -1;
        }
        tls_shared_use(m->tls); /* the children inherit it */
        m->tls_cache_bytes = cfg->tls_session_cache;
    } else if (cfg->tls_session_cache != m->tls_cache_bytes) {
        log_warn("reload: [tls] session_cache %llu -> %llu bytes takes effect at the next start; "
                 "keeping %llu",
                 (unsigned long long)m->tls_cache_bytes,
                 (unsigned long long)cfg->tls_session_cache,
                 (unsigned long long)m->tls_cache_bytes);
    }
    keys = tls_store_ticket_keys(cfg->tls_store, &n);
    if (n > 0) {
        tls_shared_set_keys(m->tls, keys, n);
        m->tls_rotate_at = 0;
        log_info("TLS: %zu session ticket key%s from %s", n, n > 1 ? "s" : "",
                 cfg->tls_ticket_key_file);
        return 0;
    }
    if (!cfg->tls_session_tickets) {
        m->tls_rotate_at = 0;
        return 0;
    }
    /* random keys: a new one now unless they are random already (a reload keeps them) */
    if (m->tls_rotate_at == 0 && tls_shared_set_keys(m->tls, NULL, 0) == -1) {
        log_error("TLS: no random bytes for a session ticket key");
        return -1;
    }
    m->tls_rotate_at = clock_ms() + cfg->tls_session_timeout_ms;
    return 0;
}

/* ms until the next ticket key rotation (after doing it when due), or -1. */
static int64_t
tls_rotate_due(struct master *m)
{
    const struct config *cfg = current(m)->cfg;
    int64_t now = clock_ms();

    if (m->tls == NULL || m->tls_rotate_at == 0)
        return -1;
    if (now >= m->tls_rotate_at) {
        if (tls_shared_set_keys(m->tls, NULL, 0) == -1)
            log_error("TLS: no random bytes for a new session ticket key: keeping the old one");
        else
            log_info("TLS: new session ticket key (the previous one is still accepted)");
        m->tls_rotate_at = now + cfg->tls_session_timeout_ms;
    }
    return m->tls_rotate_at - now;
}

/*
 * A reload does not move the pid file (nginx does the same): the master
 * keeps the file it wrote at start, and removes that one at exit. A change
 * of pid_file is said, and takes effect at the next start.
 */
static void
pid_file_unchanged(const struct master *m, const struct config *cfg)
{
    const char *now = m->pid_file != NULL ? m->pid_file : "(none)";
    const char *asked = cfg->pid_file != NULL ? cfg->pid_file : "(none)";
    if (strcmp(now, asked) != 0)
        log_warn("reload: pid_file %s -> %s takes effect at the next start; keeping %s", now,
                 asked, now);
}

static void
log_change(void *arg, const char *line)
{
    (void)arg;
    log_info("reload: %s", line);
}

/*
 * SIGHUP: reads and validates the file again. On any error the old
 * configuration keeps serving, untouched. Otherwise a new generation starts
 * beside the current one and, once its workers run, the current one is
 * retired.
 */
static void
reload(struct master *m)
{
    struct generation *old = current(m);
    char err[1024];

    log_info("reload: reading %s", m->path);
    struct config *cfg = cfg_load(m->path, err, sizeof(err));
    if (cfg == NULL) {
        log_error("reload failed, still serving generation %u: %s", old->id, err);
        shm_set_reload(old->shm, (int64_t)time(NULL), false, err);
        return;
    }
    if (m->ngens == MAX_GENS) {
        log_error("reload refused: %d generations are still draining", MAX_GENS - 1);
        snprintf(err, sizeof(err), "refused: %d generations are still draining", MAX_GENS - 1);
        shm_set_reload(old->shm, (int64_t)time(NULL), false, err);
        cfg_free(cfg);
        return;
    }
    if (cfg_diff(old->cfg, cfg, log_change, NULL) == 0)
        log_info("reload: no changes");
    if (log_open(cfg, err, sizeof(err)) == -1) {
        log_error("reload failed, still serving generation %u: %s", old->id, err);
        shm_set_reload(old->shm, (int64_t)time(NULL), false, err);
        cfg_free(cfg);
        return;
    }
    log_chown(cfg->user);
    pid_file_unchanged(m, cfg);
    if (tls_prepare(m, cfg) == -1) {
        log_open(old->cfg, err, sizeof(err));
        log_error("reload failed, still serving generation %u", old->id);
        cfg_free(cfg);
        return;
    }
    struct generation *gen = gen_new(m, cfg);
    if (gen == NULL) {
        log_open(old->cfg, err, sizeof(err));
        log_error("reload failed, still serving generation %u", old->id);
        shm_set_reload(old->shm, (int64_t)time(NULL), false,
                       "could not start a new generation (see the error log)");
        return;
    }
    /* in the new table, where the status page will read it from now on */
    snprintf(err, sizeof(err), "generation %u from %s", gen->id, m->path);
    shm_set_reload(gen->shm, (int64_t)time(NULL), true, err);
    carry_health(old->cfg, old->shm, gen->cfg, gen->shm);
    hand_counters(old, gen);
    /* The new generation counts as live from now on: its children are respawned. */
    memmove(&m->gens[1], &m->gens[0], m->ngens * sizeof(m->gens[0]));
    m->gens[0] = gen;
    m->ngens++;
    if (gen_start(m, gen) == -1)
        return; /* stopping: the main loop stops everything */
    gen_retire(old);
    wait_retired(m, old);
    char pool[96];
    log_info("reloaded: generation %u serving (%s), generation %u finishing", gen->id,
             describe_pool(gen->cfg, pool, sizeof(pool)), old->id);
}

/* ---- the adaptive pool -------------------------------------------------------------------- */

/* Connections waiting in the accept queues of <gen>'s proxy listeners. */
static unsigned
listen_queue(const struct generation *gen)
{
    unsigned q = 0;
    for (size_t i = 0; i < gen->nlisten; i++) {
        /* For a listening socket, Linux reports its accept queue length as tcpi_unacked. */
        struct tcp_info ti;
        socklen_t len = sizeof(ti);
        if (getsockopt(gen->lfds[i], IPPROTO_TCP, TCP_INFO, &ti, &len) == 0)
            q += ti.tcpi_unacked;
    }
    return q;
}

/* Forks up to <n> workers into free pool slots; returns how many were forked. */
static unsigned
pool_fork(struct generation *gen, unsigned n)
{
    unsigned forked = 0;
    for (unsigned i = 0; i < gen->cfg->worker_slots && forked < n; i++) {
        if (gen->children[i].wanted)
            continue;
        gen->children[i].crashes = 0;
        gen->children[i].fatal = false;
        if (spawn_child(gen, i) == -1)
            break;
        forked++;
    }
    return forked;
}

/*
 * One look at <gen>'s adaptive pool (pool.h decides): counts the wanted
 * and idle workers on the scoreboard and the accept queue, forks what
 * pool_grow() asks, then retires the highest idle worker when
 * pool_settle() says so, gracefully (SIGQUIT: it is in accept(), so it
 * exits at once).
 */
static void
pool_tick(struct generation *gen)
{
    const struct config *cfg = gen->cfg;
    const struct pool_limits lim = {.min_workers = cfg->min_workers,
                                    .max_workers = cfg->max_workers,
                                    .min_spare = cfg->min_spare,
                                    .max_spare = cfg->max_spare};
    unsigned live = 0, idle = 0, top_idle = UINT32_MAX;

    atomic_store(&gen->shm->pool_nudged, 0); /* the next shortage may nudge again */
    for (unsigned i = 0; i < cfg->worker_slots; i++) {
        if (!gen->children[i].wanted)
            continue;
        live++;
        if (gen->children[i].pid != 0 &&
            atomic_load_explicit(&gen->shm->workers[i].state, memory_order_relaxed) ==
                SHM_W_IDLE) {
            idle++;
            top_idle = i;
        }
    }
    unsigned queued = listen_queue(gen);
    unsigned n = pool_grow(&gen->pool, &lim, live, idle, queued);
    if (n > 0) {
        unsigned forked = pool_fork(gen, n);
        live += forked;
        log_debug("pool: %u idle of %u workers, %u waiting, forked %u", idle, live, queued,
                  forked);
    }
    struct pool_verdict v = pool_settle(&gen->pool, &lim, live, idle, top_idle != UINT32_MAX);
    atomic_store(&gen->shm->pool_full, v.full);
    if (v.say_cap)
        log_warn("pool: max_workers (%u) reached, none idle: new connections wait in the "
                 "accept queue, and idle keep-alive connections are closed for them",
                 cfg->max_workers);
    if (v.retire) {
        gen->children[top_idle].wanted = false;
        kill(gen->children[top_idle].pid, SIGQUIT);
        atomic_fetch_add(&gen->shm->retired, 1);
        log_debug("pool: %u idle of %u workers, retiring worker %u", idle, live, top_idle);
    }
}

/* ---- stop -------------------------------------------------------------------------------- */

/* Stops every child: <sig> first, SIGKILL for those still alive after <grace_ms>. */
static void
stop_children(struct master *m, int sig, int64_t grace_ms)
{
    int64_t deadline = clock_ms() + grace_ms;
    signal_all(m, sig);
    while (live_children(m) > 0) {
        int64_t left = deadline - clock_ms();
        if (left <= 0) {
            log_warn("%u children still running after %lld ms: killing them", live_children(m),
                     (long long)grace_ms);
            signal_all(m, SIGKILL);
            deadline = clock_ms() + 1000000;
            left = 1000;
        }
        sig_chld = 0;
        reap(m, true);
        if (live_children(m) == 0)
            break;
        if (sig_term && sig == SIGQUIT) {
            /* A graceful stop, overtaken by a fast one. */
            sig = SIGTERM;
            signal_all(m, SIGTERM);
            deadline = clock_ms() + FAST_STOP_MS;
        }
        wait_signal(m, left < 100 ? left : 100);
    }
}

/* ---- main loop --------------------------------------------------------------------------- */

/*
 * Blocks our signals (they are taken only while the master waits in
 * ppoll(), with the mask saved in m->waitmask) and installs the flag-setting
 * handlers.
 */
static void
setup_signals(struct master *m)
{
    static const int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1};
    struct sigaction sa = {0};
    sigset_t block;

    sigemptyset(&block);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaddset(&block, sigs[i]);
    sigprocmask(SIG_BLOCK, &block, &m->waitmask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigdelset(&m->waitmask, sigs[i]);
    sa.sa_handler = on_signal;
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

/*
 * Looks at the adaptive pool when its tick is due (or soon after a
 * worker's nudge); returns ms until the next tick.
 */
static int64_t
pool_due(struct master *m, int64_t *last_tick, int64_t *next_tick)
{
    int64_t now = clock_ms();
    if (m->nudged) {
        /* A worker found too few idle workers: grow now, not at the next tick. */
        m->nudged = false;
        if (*last_tick + POOL_NUDGE_MIN_MS < *next_tick)
            *next_tick = *last_tick + POOL_NUDGE_MIN_MS;
    }
    if (now >= *next_tick) {
        pool_tick(current(m));
        *last_tick = now;
        *next_tick = now + POOL_TICK_MS;
    }
    return *next_tick - now;
}

/* Acts on the signals that came: reap, reload, reopen the logs. */
static void
handle_signals(struct master *m)
{
    if (sig_chld) {
        sig_chld = 0;
        reap(m, false);
    }
    gens_collect(m);
    if (sig_hup) {
        sig_hup = 0;
        reload(m);
    }
    if (sig_usr1) {
        sig_usr1 = 0;
        log_reopen();
        log_chown(current(m)->cfg->user);
        signal_all(m, SIGUSR1);
        log_info("log files reopened");
    }
}

/* Serves until told to stop, then stops every child (as the signal says). */
static void
serve(struct master *m)
{
    int64_t last_tick = clock_ms(), next_tick = last_tick + POOL_TICK_MS;
    for (;;) {
        int64_t next = respawn_due(m), k = next_kill(m), t = tls_rotate_due(m);
        if (k != -1 && (next == -1 || k < next))
            next = k;
        if (t != -1 && (next == -1 || t < next))
            next = t;
        if (current(m)->cfg->workers_auto) {
            int64_t p = pool_due(m, &last_tick, &next_tick);
            if (next == -1 || p < next)
                next = p;
        }
        if (!(sig_chld || sig_term || sig_quit || sig_hup || sig_usr1))
            wait_signal(m, next);
        if (sig_term) {
            log_info("stopping (fast)");
            stop_children(m, SIGTERM, FAST_STOP_MS);
            return;
        }
        if (sig_quit) {
            int64_t grace = current(m)->cfg->shutdown_timeout_ms;
            log_info("stopping (graceful): finishing requests in flight, at most %lld ms",
                     (long long)grace);
            stop_children(m, SIGQUIT, grace);
            return;
        }
        handle_signals(m);
    }
}

int
master_run(struct config *cfg, const char *path)
{
    struct master m = {.path = path, .next_id = 1, .nudge_fd = -1};
    char err[512], pool[96];
    int rc = 1;

    if (log_open(cfg, err, sizeof(err)) == -1) {
        log_error("%s", err);
        cfg_free(cfg);
        return 1;
    }
    log_set_role("master");
    log_chown(cfg->user); /* children running as <user> must be able to reopen them */
    m.started_unix = (int64_t)time(NULL);
    m.nudge_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (m.nudge_fd == -1) {
        log_error_errno("eventfd");
        cfg_free(cfg);
        return 1;
    }
    setup_signals(&m);
    if (tls_prepare(&m, cfg) == -1) {
        cfg_free(cfg);
        goto out;
    }

    struct generation *gen = gen_new(&m, cfg);
    if (gen == NULL)
        goto out;
    m.gens[m.ngens++] = gen;
    if (cfg->pid_file != NULL) {
        if (pidfile_write(cfg->pid_file, err, sizeof(err)) == -1) {
            log_error("%s", err);
            goto out;
        }
        m.pid_file = strdup(cfg->pid_file);
        if (m.pid_file == NULL) {
            pidfile_remove(cfg->pid_file);
            log_error("out of memory");
            goto out;
        }
    }
    if (gen_start(&m, gen) == -1)
        goto stop;
    log_info("miniproxyd %s started: %s, upstream %s", MP_VERSION,
             describe_pool(cfg, pool, sizeof(pool)), cfg->groups[cfg->group].name);
    serve(&m);
    rc = 0;
stop:
    if (live_children(&m) > 0)
        stop_children(&m, SIGTERM, FAST_STOP_MS);
    log_info("stopped");
out:
    if (m.pid_file != NULL)
        pidfile_remove(m.pid_file);
    free(m.pid_file);
    for (size_t k = 0; k < m.ngens; k++)
        gen_free(m.gens[k]);
    for (size_t i = 0; i < m.nls; i++)
        close(m.ls[i].fd);
    close(m.nudge_fd);
    tls_shared_destroy(m.tls);
    return rc;
}
