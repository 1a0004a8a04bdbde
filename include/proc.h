/*
 * proc: spawning and reaping the master's children (workers, the health
 * checker, the admin worker), and the policy for their deaths.
 *
 * A child starts the same way whatever it runs (proc_spawn()): it lets go
 * of what the master gives it that is not its own (a hook the master
 * passes), drops privileges, asks to die with the master, and only then
 * checks that the master is still there (proc_child_init()). It tells the
 * master why it died through its exit code: MP_EXIT_FATAL is not respawned
 * (a respawn cannot fix it), MP_EXIT_SICK is respawned with back-off, any
 * other death is respawned at once the first time, with back-off when it
 * repeats within PROC_CRASH_WINDOW_MS of each start (Apache prefork's and
 * nginx's respawn rules).
 */
#ifndef MP_PROC_H
#define MP_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Exit codes a child reports to the master (style rule 4). */
#define MP_EXIT_OK 0
#define MP_EXIT_FATAL 2 /* set-up failed in a way a respawn cannot fix: don't respawn */
#define MP_EXIT_SICK 3  /* something is wrong that may pass: respawn, but slowly */

/* A child that dies sooner than this after its start counts as crashing. */
#define PROC_CRASH_WINDOW_MS 1000
#define PROC_BACKOFF_MAX_MS 5000

/* One child slot, as the master sees it. */
struct proc_child {
    bool wanted;        /* the slot should have a process (the adaptive pool clears it) */
    pid_t pid;          /* 0: not running */
    int64_t started;    /* clock_ms() of the last fork */
    int64_t respawn_at; /* when to fork again, 0 if not pending */
    unsigned crashes;   /* consecutive deaths within PROC_CRASH_WINDOW_MS */
    bool fatal;         /* exited with MP_EXIT_FATAL: not respawned */
};

/* How to start one child. */
struct proc_start {
    const char *name; /* "worker 3", for messages */
    const char *user; /* privileges to drop to, NULL: none */
    pid_t master;     /* the master's pid (getpid() before the fork) */
    /*
     * Runs in the parent just before fork(): fills what the child finds
     * at its start (its scoreboard slot), so that nothing the child may
     * already be writing is written by the parent after fork (Apache
     * prefork fills the slot first too). May be NULL.
     */
    void (*prepare)(void *arg);
    /*
     * Runs first in the child, before anything else: closes and unmaps
     * what belongs to other generations or other children. May be NULL.
     */
    void (*forget)(void *arg);
    void (*run)(void *arg); /* the child's body; never returns */
    void *arg;              /* for forget() and run() */
};

/*
 * Forks a child for <ch> as <st> says: st->prepare, then fork(). In the
 * parent: records the pid and
 * start time in <ch> (wanted, no respawn pending) and returns the pid, or
 * -1 when fork failed (logged; <ch> untouched). The child never returns: it
 * runs st->forget, then proc_child_init(), then st->run; it exits
 * MP_EXIT_FATAL when privileges cannot be dropped and MP_EXIT_OK when the
 * master is already gone.
 */
pid_t proc_spawn(struct proc_child *ch, const struct proc_start *st);

/*
 * The start-up order of every child: drops privileges to <user> (NULL:
 * none), which clears the parent-death signal, then sets it
 * (PR_SET_PDEATHSIG, SIGTERM), then checks that our parent is still
 * <master>: had the master died before the death signal was set, no signal
 * would ever come. Returns 0, 1 when the master is gone (the child should
 * exit), or -1 with a message in <err> when privileges could not be dropped.
 */
int proc_child_init(pid_t master, const char *user, char *err, size_t errlen);

/*
 * Reaps one dead child without waiting: returns its pid with its wait
 * status in <*status>, or 0 when there is none (or no child at all).
 */
pid_t proc_reap(int *status);

/*
 * Decides what follows the unexpected death of <ch> (named <name>, pid
 * <pid>, wait status <status>) at <now>: fatal (ch->fatal set), or a
 * respawn at ch->respawn_at, with back-off for a crash loop. Logs it.
 */
void proc_died(struct proc_child *ch, const char *name, pid_t pid, int status, int64_t now);

/*
 * The back-off before respawning a child that crashed <crashes> times in a
 * row: none for the first, then 100 ms doubling, at most
 * PROC_BACKOFF_MAX_MS.
 */
int64_t proc_backoff_ms(unsigned crashes);

/* "exited with code 2", "killed by signal 9 (Killed)", for messages. */
void proc_describe_exit(int status, char *out, size_t len);

/* How many of <ch>[0..<n>) run. */
unsigned proc_live(const struct proc_child *ch, unsigned n);

/* Sends <sig> to each running child of <ch>[0..<n>). */
void proc_signal(const struct proc_child *ch, unsigned n, int sig);

/*
 * For a slot waiting to be respawned: -1 when none is due (not wanted,
 * running, fatal or nothing pending), 0 when the time has come, otherwise
 * the ms left.
 */
int64_t proc_due_in(const struct proc_child *ch, int64_t now);

#endif
