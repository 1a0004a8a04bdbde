/*
 * master: listeners, shared memory, workers; spawn, reap, respawn, stop.
 * See master.h.
 */
#include "master.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "net.h"
#include "shm.h"
#include "health.h"
#include "worker.h"

/* A child that dies sooner than this after its start counts as crashing. */
#define CRASH_WINDOW_MS 1000
#define BACKOFF_MAX_MS 5000
#define FAST_STOP_MS 3000
#define GRACEFUL_STOP_MS 30000

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

struct child {
    pid_t pid;         /* 0: not running */
    int64_t started;   /* buf_now_ms() of the last fork */
    int64_t respawn_at;/* when to fork again, 0 if not pending */
    unsigned crashes;  /* consecutive deaths within CRASH_WINDOW_MS */
    bool fatal;        /* exited with MP_EXIT_FATAL: not respawned */
};

struct master {
    struct config *cfg;
    struct shm *shm;
    int lfds[CFG_MAX_LISTENERS];
    size_t nlisten;
    struct child *children; /* [0, workers): the workers; [workers]: the health checker */
    unsigned nchildren;
    sigset_t waitmask; /* the mask ppoll() waits with: our signals unblocked */
};

static bool
is_checker(const struct master *m, unsigned i)
{
    return i == m->cfg->workers;
}

/* "worker 3" or "health checker", for messages. */
static const char *
child_name(const struct master *m, unsigned i, char *buf, size_t len)
{
    if (is_checker(m, i))
        snprintf(buf, len, "health checker");
    else
        snprintf(buf, len, "worker %u", i);
    return buf;
}

/* Forks child <i>: a worker or, for the last slot, the health checker. */
static pid_t
spawn_child(struct master *m, unsigned i)
{
    char name[32];
    pid_t master = getpid();
    pid_t pid = fork();
    if (pid == -1) {
        log_error_errno("fork %s", child_name(m, i, name, sizeof(name)));
        return -1;
    }
    if (pid == 0) {
        if (getppid() != master)
            _exit(MP_EXIT_OK); /* the master died before we could ask to follow it */
        if (is_checker(m, i))
            health_run(m->cfg, m->shm);
        worker_run(m->cfg, m->shm, (int)i, m->lfds, m->nlisten);
    }
    struct child *ch = &m->children[i];
    ch->pid = pid;
    ch->started = buf_now_ms();
    ch->respawn_at = 0;
    if (!is_checker(m, i)) {
        atomic_store(&m->shm->workers[i].pid, pid);
        m->shm->workers[i].generation = m->shm->generation;
    }
    return pid;
}

static void
describe_exit(int status, char *out, size_t len)
{
    if (WIFEXITED(status))
        snprintf(out, len, "exited with code %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, len, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(out, len, "stopped (status %d)", status);
}

/* Reaps every dead child; schedules respawns unless <stopping>. */
static void
reap(struct master *m, bool stopping)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        char why[96];
        describe_exit(status, why, sizeof(why));
        for (unsigned i = 0; i < m->nchildren; i++) {
            struct child *ch = &m->children[i];
            char name[32];
            if (ch->pid != pid)
                continue;
            ch->pid = 0;
            if (!is_checker(m, i)) {
                atomic_store(&m->shm->workers[i].pid, 0);
                atomic_store(&m->shm->workers[i].state, SHM_W_FREE);
            }
            child_name(m, i, name, sizeof(name));
            if (stopping)
                break;
            int64_t now = buf_now_ms();
            if (WIFEXITED(status) && WEXITSTATUS(status) == MP_EXIT_FATAL) {
                ch->fatal = true;
                log_error("%s (pid %d) %s: fatal, not respawned", name, (int)pid, why);
                break;
            }
            if (now - ch->started < CRASH_WINDOW_MS)
                ch->crashes++;
            else
                ch->crashes = 0;
            /* The first death respawns at once; a crash loop backs off, doubling. */
            int64_t delay = 0;
            if (ch->crashes > 1) {
                delay = 100LL << (ch->crashes - 2 < 6 ? ch->crashes - 2 : 6);
                if (delay > BACKOFF_MAX_MS)
                    delay = BACKOFF_MAX_MS;
            }
            ch->respawn_at = now + delay;
            if (delay > 0)
                log_error("%s (pid %d) %s; crashing repeatedly, respawn in %lld ms", name,
                          (int)pid, why, (long long)delay);
            else
                log_warn("%s (pid %d) %s; respawning", name, (int)pid, why);
            break;
        }
    }
}

/* Forks the workers whose respawn time has come; returns ms until the next one, or -1. */
static int64_t
respawn_due(struct master *m)
{
    int64_t now = buf_now_ms(), next = -1;
    for (unsigned i = 0; i < m->nchildren; i++) {
        struct child *ch = &m->children[i];
        if (ch->pid != 0 || ch->fatal || ch->respawn_at == 0)
            continue;
        if (ch->respawn_at <= now) {
            if (spawn_child(m, i) == -1)
                ch->respawn_at = now + 1000; /* fork failed: try again, slowly */
            continue;
        }
        if (next == -1 || ch->respawn_at - now < next)
            next = ch->respawn_at - now;
    }
    return next;
}

static unsigned
live_children(struct master *m)
{
    unsigned n = 0;
    for (unsigned i = 0; i < m->nchildren; i++)
        n += m->children[i].pid != 0;
    return n;
}

static void
signal_children(struct master *m, int sig)
{
    for (unsigned i = 0; i < m->nchildren; i++)
        if (m->children[i].pid != 0)
            kill(m->children[i].pid, sig);
}

/* Waits for our signals (or <ms>, -1 = forever) with them unblocked. */
static void
wait_signal(struct master *m, int64_t ms)
{
    struct timespec ts, *tp = NULL;
    if (ms >= 0) {
        ts.tv_sec = ms / 1000;
        ts.tv_nsec = (ms % 1000) * 1000000;
        tp = &ts;
    }
    (void)ppoll(NULL, 0, tp, &m->waitmask);
}

/* Stops every child: <sig> first, SIGKILL for those still alive after <grace_ms>. */
static void
stop_children(struct master *m, int sig, int64_t grace_ms)
{
    int64_t deadline = buf_now_ms() + grace_ms;
    signal_children(m, sig);
    while (live_children(m) > 0) {
        int64_t left = deadline - buf_now_ms();
        if (left <= 0) {
            log_warn("%u children still running after %lld ms: killing them", live_children(m),
                     (long long)grace_ms);
            signal_children(m, SIGKILL);
            deadline = buf_now_ms() + 1000000;
            left = 1000;
        }
        sig_chld = 0;
        reap(m, true);
        if (live_children(m) == 0)
            break;
        wait_signal(m, left < 100 ? left : 100);
    }
}

/*
 * Waits until the checker's first round is done (every server probed once),
 * at most the longest health_timeout plus a second. Returns -1 when told to
 * stop meanwhile.
 */
static int
wait_health_ready(struct master *m)
{
    int64_t longest = 0;
    for (size_t g = 0; g < m->cfg->ngroups; g++)
        if (m->cfg->groups[g].health_check && m->cfg->groups[g].health_timeout_ms > longest)
            longest = m->cfg->groups[g].health_timeout_ms;
    int64_t deadline = buf_now_ms() + longest + 1000;
    while (!atomic_load(&m->shm->health_ready)) {
        if (sig_term || sig_quit)
            return -1;
        if (buf_now_ms() >= deadline) {
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

static int
open_listeners(struct master *m)
{
    for (size_t i = 0; i < m->cfg->nlisteners; i++) {
        const struct cfg_listener *l = &m->cfg->listeners[i];
        int fd = net_listen(&l->addr, 4096);
        if (fd == -1) {
            log_error_errno("%s:%d: [proxy] listen: cannot listen on %s", m->cfg->path, l->line,
                            l->addr.text);
            return -1;
        }
        /* With several listeners, workers poll them all and must not block in accept(). */
        if (m->cfg->nlisteners > 1 && net_prepare(fd) == -1) {
            log_error_errno("listener %s", l->addr.text);
            close(fd);
            return -1;
        }
        m->lfds[m->nlisten++] = fd;
        log_info("listening on %s (port %d)", l->addr.text, net_local_port(fd));
    }
    return 0;
}

int
master_run(struct config *cfg, const char *path)
{
    struct master m = {.cfg = cfg};
    struct sigaction sa = {0};
    sigset_t block;
    char err[512];
    int rc = 1;

    (void)path;
    if (log_open(cfg, err, sizeof(err)) == -1) {
        log_error("%s", err);
        return 1;
    }
    log_set_role("master");

    /* Our signals stay blocked except while the master waits in ppoll(). */
    sigemptyset(&block);
    int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaddset(&block, sigs[i]);
    sigprocmask(SIG_BLOCK, &block, &m.waitmask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigdelset(&m.waitmask, sigs[i]);
    sa.sa_handler = on_signal;
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    if (open_listeners(&m) == -1)
        goto out;
    m.shm = shm_create(cfg, 1);
    if (m.shm == NULL) {
        log_error_errno("shared memory");
        goto out;
    }
    m.nchildren = cfg->workers + 1;
    m.children = calloc(m.nchildren, sizeof(*m.children));
    if (m.children == NULL) {
        log_error("out of memory");
        goto out;
    }
    /*
     * The health checker first, and the workers once it has probed every
     * server: no request goes to a server before its first probe. Clients
     * that come meanwhile wait in the accept queue.
     */
    if (spawn_child(&m, cfg->workers) == -1)
        goto out;
    if (wait_health_ready(&m) == -1)
        goto stop;
    for (unsigned i = 0; i < cfg->workers; i++)
        if (spawn_child(&m, i) == -1)
            m.children[i].respawn_at = buf_now_ms() + 1000;
    log_info("miniproxyd %s started: %u workers, upstream %s", MP_VERSION, cfg->workers,
             cfg->groups[cfg->group].name);

    for (;;) {
        int64_t next = respawn_due(&m);
        if (!(sig_chld || sig_term || sig_quit || sig_hup || sig_usr1))
            wait_signal(&m, next);
        if (sig_term) {
            log_info("stopping (fast)");
            stop_children(&m, SIGTERM, FAST_STOP_MS);
            break;
        }
        if (sig_quit) {
            log_info("stopping (graceful): finishing requests in flight");
            stop_children(&m, SIGQUIT, GRACEFUL_STOP_MS);
            break;
        }
        if (sig_chld) {
            sig_chld = 0;
            reap(&m, false);
        }
        if (sig_hup) {
            sig_hup = 0;
            log_warn("SIGHUP: configuration reload is not implemented yet; still serving");
        }
        if (sig_usr1) {
            sig_usr1 = 0;
            log_reopen();
            signal_children(&m, SIGUSR1);
            log_info("log files reopened");
        }
    }
    rc = 0;
stop:
    if (live_children(&m) > 0)
        stop_children(&m, SIGTERM, FAST_STOP_MS);
    log_info("stopped");
out:
    for (size_t i = 0; i < m.nlisten; i++)
        close(m.lfds[i]);
    free(m.children);
    shm_destroy(m.shm);
    return rc;
}
