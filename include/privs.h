/*
 * privs: dropping root privileges (`user =`). The master stays root (it
 * removes the pid file and binds new listeners on reload); its children
 * drop privileges right after fork (proc.c).
 *
 * Note for callers of privs_drop(): changing credentials clears the
 * parent-death signal (prctl(PR_SET_PDEATHSIG)) and the dumpable flag, so a
 * child drops privileges first and sets PR_SET_PDEATHSIG after, then checks
 * getppid() in case the master died before the death signal was set
 * (proc_child_init() does all three, in that order).
 */
#ifndef MP_PRIVS_H
#define MP_PRIVS_H

#include <stddef.h>

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
