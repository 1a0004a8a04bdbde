/*
 * log: error log and access log. See log.h.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int error_fd = STDERR_FILENO;
static int access_fd = -1; /* -1: off */
static char *error_path;   /* NULL: stderr */
static char *access_path;  /* NULL: stderr or off */
static enum cfg_log_level min_level = CFG_LOG_INFO;
static const char *role = "master";

static int
open_log_file(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

int
log_open(const struct config *cfg, char *err, size_t errlen)
{
    int efd = STDERR_FILENO, afd = -1;
    char *epath = NULL, *apath = NULL;

    if (strcmp(cfg->error_log, "stderr") != 0) {
        efd = open_log_file(cfg->error_log);
        if (efd == -1) {
            snprintf(err, errlen, "error_log %s: %s", cfg->error_log, strerror(errno));
            return -1;
        }
        epath = strdup(cfg->error_log);
    }
    if (strcmp(cfg->access_log, "off") == 0) {
        afd = -1;
    } else if (strcmp(cfg->access_log, "stderr") == 0) {
        afd = STDERR_FILENO;
    } else {
        afd = open_log_file(cfg->access_log);
        if (afd == -1) {
            snprintf(err, errlen, "access_log %s: %s", cfg->access_log, strerror(errno));
            if (efd != STDERR_FILENO)
                close(efd);
            free(epath);
            return -1;
        }
        apath = strdup(cfg->access_log);
    }
    if (error_fd != STDERR_FILENO)
        close(error_fd);
    if (access_fd != -1 && access_fd != STDERR_FILENO)
        close(access_fd);
    free(error_path);
    free(access_path);
    error_fd = efd;
    access_fd = afd;
    error_path = epath;
    access_path = apath;
    min_level = cfg->log_level;
    return 0;
}

/* Opens <path> anew and moves it onto <*fd>, so the descriptor number stays. */
static void
reopen_one(const char *path, int *fd)
{
    if (path == NULL || *fd == -1)
        return;
    int nfd = open_log_file(path);
    if (nfd == -1) {
        log_error_errno("reopen %s", path);
        return;
    }
    if (dup3(nfd, *fd, O_CLOEXEC) == -1)
        log_error_errno("reopen %s: dup3", path);
    close(nfd);
}

void
log_reopen(void)
{
    reopen_one(error_path, &error_fd);
    reopen_one(access_path, &access_fd);
}

void
log_chown(const char *user)
{
    if (user == NULL || geteuid() != 0)
        return;
    struct passwd *pw = getpwnam(user);
    if (pw == NULL)
        return;
    const char *paths[] = {error_path, access_path};
    for (size_t i = 0; i < 2; i++)
        if (paths[i] != NULL && chown(paths[i], pw->pw_uid, pw->pw_gid) == -1)
            log_warn_errno("chown %s to %s", paths[i], user);
}

void
log_set_role(const char *r)
{
    role = r;
}

void
log_set_level(enum cfg_log_level level)
{
    min_level = level;
}

static void
vlog(enum cfg_log_level level, int errnum, const char *fmt, va_list ap)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int r;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(line + n, sizeof(line) - n, ".%03ldZ [%s] %s[%d]: ", ts.tv_nsec / 1000000,
                 cfg_log_level_name(level), role, (int)getpid());
    if (r > 0)
        n += (size_t)r;
    r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    if (r > 0)
        n += (size_t)r;
    if (n > sizeof(line) - 64)
        n = sizeof(line) - 64; /* truncated: keep room for errno and newline */
    if (errnum != 0) {
        r = snprintf(line + n, sizeof(line) - n, ": %s", strerror(errnum));
        if (r > 0)
            n += (size_t)r;
    }
    if (n >= sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w = write(error_fd, line, n);
    (void)w; /* nowhere left to report a failing log */
}

#define LOG_FN(name, level, with_errno)                                                           \
    void name(const char *fmt, ...)                                                               \
    {                                                                                             \
        int saved = errno;                                                                        \
        if (level > min_level)                                                                    \
            return;                                                                               \
        va_list ap;                                                                               \
        va_start(ap, fmt);                                                                        \
        vlog(level, with_errno ? saved : 0, fmt, ap);                                             \
        va_end(ap);                                                                               \
        errno = saved;                                                                            \
    }

LOG_FN(log_error, CFG_LOG_ERROR, 0)
LOG_FN(log_error_errno, CFG_LOG_ERROR, 1)
LOG_FN(log_warn, CFG_LOG_WARN, 0)
LOG_FN(log_warn_errno, CFG_LOG_WARN, 1)
LOG_FN(log_info, CFG_LOG_INFO, 0)
LOG_FN(log_debug, CFG_LOG_DEBUG, 0)

void
log_fatal(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(CFG_LOG_ERROR, 0, fmt, ap);
    va_end(ap);
    exit(code);
}

int
log_access_enabled(void)
{
    return access_fd != -1;
}

void
log_access(const char *line, size_t len)
{
    if (access_fd == -1)
        return;
    ssize_t w = write(access_fd, line, len);
    (void)w;
}

const char *
log_time_local(void)
{
    static char cached[40];
    static time_t cached_sec = -1;
    time_t now = time(NULL);

    if (now != cached_sec) {
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(cached, sizeof(cached), "%d/%b/%Y:%H:%M:%S %z", &tm);
        cached_sec = now;
    }
    return cached;
}
