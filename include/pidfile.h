/*
 * pidfile: the master's pid file (for `miniproxyd -s SIGNAL`, systemd and
 * logrotate). Dropping privileges (`user =`) is privs.h.
 *
 * The pid file holds the decimal pid and a newline. It is replaced
 * atomically (temp file in the same directory, fsync, rename), so a reader
 * never sees it half-written. The master writes it at start-up, before it
 * forks, and removes it at exit; it stays root itself (it must be able to
 * remove the file, and to bind new listeners on reload), and only its
 * children drop privileges.
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

#endif
