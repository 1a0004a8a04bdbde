/*
 * log: the error log (levels, errno variants) and the access log.
 *
 * Two levels of API as in OpenBSD's relayd: the plain functions log the
 * message, the *_errno ones append ": <strerror(errno)>". Every line is one
 * write(2) to a file opened with O_APPEND, so lines from the master and all
 * workers never interleave. Before log_open() everything goes to stderr.
 */
#ifndef MP_LOG_H
#define MP_LOG_H

#include <stddef.h>

#include "config.h"

#define MP_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Opens the logs <cfg> names; returns 0, or -1 with a message in <err>. */
int log_open(const struct config *cfg, char *err, size_t errlen);

/* Reopens the log files by name (logrotate). */
void log_reopen(void);

/*
 * Gives the log files to <user> (NULL: nothing to do), so children that
 * run as that user can reopen them after a rotation.
 */
void log_chown(const char *user);

/* Sets the role shown in each line: "master", "worker", "health". */
void log_set_role(const char *role);

/* Sets the level below which messages are dropped. */
void log_set_level(enum cfg_log_level level);

void log_error(const char *fmt, ...) MP_PRINTF(1, 2);
void log_error_errno(const char *fmt, ...) MP_PRINTF(1, 2);
void log_warn(const char *fmt, ...) MP_PRINTF(1, 2);
void log_warn_errno(const char *fmt, ...) MP_PRINTF(1, 2);
void log_info(const char *fmt, ...) MP_PRINTF(1, 2);
void log_debug(const char *fmt, ...) MP_PRINTF(1, 2);

/* Logs at error level and exits with <code>; never returns. */
_Noreturn void log_fatal(int code, const char *fmt, ...) MP_PRINTF(2, 3);

/* True when an access log is configured (not "off"). */
int log_access_enabled(void);

/* Writes one access-log line (<line> must end in '\n'). */
void log_access(const char *line, size_t len);

/* "27/Nov/2026:08:15:02 +0000", cached per second; for access-log lines. */
const char *log_time_local(void);

#endif
