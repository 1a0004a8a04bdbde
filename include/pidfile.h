/*
 * pidfile: the master's pid file (for `miniproxyd -s SIGNAL`, systemd and
 * logrotate) and dropping root privileges (`user =`).
 *
 * The pid file holds the decimal pid and a newline. It is replaced
 * atomically (temp file in the same directory, fsync, rename), so a reader
 * never sees it half-written. The master writes it at start-up, before it
 * forks, and removes it at exit; it stays root itself (it must be able to
 * remove the file, and to bind new listeners on reload), and only its
 * children drop privileges.
 *
 * Note for callers of privs_drop(): changing credentials clears the
 * parent-death signal (prctl(PR_SET_PDEATHSIG)) and the dumpable flag, so a
 * child drops privileges first and sets PR_SET_PDEATHSIG after (then checks
 * getppid(), as usual, in case the master died in between).
 */
#ifndef MP_PIDFILE_H
#define MP_PIDFILE_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Writes getpid() and "\n" to <path> atomically. Refuses, returning -1 with
 * "pid file PATH names running process N" in <err>, when <path> already
 * names a live process other than us; a stale or unreadable old file is
 * replaced. Returns 0, or -1 with a one-line message in <err>.
 */
int pidfile_write(const char *path, char *err, size_t errlen);

/*
 * Reads the pid in <path> (digits, then an optional newline). Returns it
 * (> 0), or -1 with a message in <err> when the file cannot be read or does
 * not hold a pid. Does not check that the process exists.
 */
pid_t pidfile_read(const char *path, char *err, size_t errlen);

/* Removes <path> if it still holds our pid (not a successor's); silent. */
void pidfile_remove(const char *path);

struct passwd;

/*
 * getpwnam() that tells "no such user" from a failed lookup: returns the
 * entry, or NULL with *<err> 0 when there is no such user and the errno of
 * the failure otherwise (getpwnam() reports a missing user in several ways).
 */
struct passwd *privs_lookup(const char *user, int *err);

/*
 * Makes the calling process run as <user>: its groups (initgroups), gid,
 * then uid, in that order, then checks that root cannot be regained
 * (setuid(0) must fail). Does nothing and returns 0 when <user> is NULL or
 * we are not root. Returns -1 with a message in <err> on any failure,
 * including a <user> whose uid is 0 (nothing would be dropped); the process
 * is then in an unknown state and should exit.
 */
int privs_drop(const char *user, char *err, size_t errlen);

#endif
