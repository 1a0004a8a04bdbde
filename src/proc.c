/*
 * proc: spawning and reaping children. See proc.h.
 */
#include "proc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "privs.h"

int
proc_child_init(pid_t master, const char *user, char *err, size_t errlen)
{
    /* Credentials first: changing them clears a death signal set before. */
    if (privs_drop(user, err, errlen) == -1)
        return -1;
    /* Die with the master: no orphan keeps serving a stale config. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1) {
        snprintf(err, errlen, "prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
        return -1;
    }
    /* Only now: a master that died before the line above sent us no signal. */
    if (getppid() != master)
        return 1;
    return 0;
}

pid_t
proc_spawn(struct proc_child *ch, const struct proc_start *st)
{
    if (st->prepare != NULL)
        st->prepare(st->arg);
    pid_t pid = fork();
    if (pid == -1) {
        log_error_errno("fork %s", st->name);
        return -1;
    }
    if (pid == 0) {
        char err[256];
        if (st->forget != NULL)
            st->forget(st->arg);
        int rc = proc_child_init(st->master, st->user, err, sizeof(err));
        if (rc == -1)
            log_fatal(MP_EXIT_FATAL, "%s", err);
        if (rc == 1)
            _exit(MP_EXIT_OK); /* the master died before we could ask to follow it */
        st->run(st->arg);
        _exit(MP_EXIT_FATAL); /* run() must not return: that is a bug a respawn cannot fix */
    }
    ch->pid = pid;
    ch->wanted = true;
    ch->started = clock_ms();
    ch->respawn_at = 0;
    return pid;
}

pid_t
proc_reap(int *status)
{
    pid_t pid = waitpid(-1, status, WNOHANG);
    return pid > 0 ? pid : 0;
}

void
proc_describe_exit(int status, char *out, size_t len)
{
    if (WIFEXITED(status))
        snprintf(out, len, "exited with code %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, len, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(out, len, "stopped (status %d)", status);
}

int64_t
proc_backoff_ms(unsigned crashes)
{
    if (crashes <= 1)
        return 0;
    int64_t delay = 100LL << (crashes - 2 < 6 ? crashes - 2 : 6);
    return delay > PROC_BACKOFF_MAX_MS ? PROC_BACKOFF_MAX_MS : delay;
}

void
proc_died(struct proc_child *ch, const char *name, pid_t pid, int status, int64_t now)
{
    char why[96];

    proc_describe_exit(status, why, sizeof(why));
    if (WIFEXITED(status) && WEXITSTATUS(status) == MP_EXIT_FATAL) {
        ch->fatal = true;
        log_error("%s (pid %d) %s: fatal, not respawned", name, (int)pid, why);
        return;
    }
    bool sick = WIFEXITED(status) && WEXITSTATUS(status) == MP_EXIT_SICK;
    if (now - ch->started < PROC_CRASH_WINDOW_MS || sick)
        ch->crashes++;
    else
        ch->crashes = 0;
    /* The first death respawns at once; a crash loop (or a sick child) backs off, doubling. */
    int64_t delay = proc_backoff_ms(sick && ch->crashes < 2 ? 2 : ch->crashes);
    ch->respawn_at = now + delay;
    if (delay > 0)
        log_error("%s (pid %d) %s; %s, respawn in %lld ms", name, (int)pid, why,
                  sick ? "sick" : "crashing repeatedly", (long long)delay);
    else
        log_warn("%s (pid %d) %s; respawning", name, (int)pid, why);
}

unsigned
proc_live(const struct proc_child *ch, unsigned n)
{
    unsigned live = 0;
    for (unsigned i = 0; i < n; i++)
        live += ch[i].pid != 0;
    return live;
}

void
proc_signal(const struct proc_child *ch, unsigned n, int sig)
{
    for (unsigned i = 0; i < n; i++)
        if (ch[i].pid != 0)
            kill(ch[i].pid, sig);
}

int64_t
proc_due_in(const struct proc_child *ch, int64_t now)
{
    if (!ch->wanted || ch->pid != 0 || ch->fatal || ch->respawn_at == 0)
        return -1;
    return ch->respawn_at <= now ? 0 : ch->respawn_at - now;
}
