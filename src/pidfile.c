/*
 * pidfile: the master's pid file. The contract is in include/pidfile.h.
 */
#include "pidfile.h"

#include "buf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A pid, its newline, and room to notice that a file holds more. */
#define PIDFILE_MAX 32

/*
 * The pid in <path>, or -1 with errno set (EINVAL: not a pid). <*bad> is
 * set when the file was read but holds no pid.
 */
static pid_t
pidfile_parse(const char *path, bool *bad)
{
    char text[PIDFILE_MAX];
    size_t len = 0;
    uint64_t pid;
    ssize_t n;
    int fd;

    *bad = false;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return -1;
    while (len < sizeof(text)) {
        n = read(fd, text + len, sizeof(text) - len);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1) {
            int e = errno;

            close(fd);
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (len > 0 && text[len - 1] == '\n')
        len--;
    if (len == sizeof(text) || buf_parse_u64(text, len, INT_MAX, &pid) == -1 || pid == 0) {
        *bad = true;
        errno = EINVAL;
        return -1;
    }
    return (pid_t)pid;
}

pid_t
pidfile_read(const char *path, char *err, size_t errlen)
{
    bool bad;
    pid_t pid = pidfile_parse(path, &bad);

    if (pid == -1) {
        if (bad)
            snprintf(err, errlen, "pid file %s: no pid in it (expected a number and a newline)",
                     path);
        else
            snprintf(err, errlen, "pid file %s: %s", path, strerror(errno));
    }
    return pid;
}

/* A process that exists, even one we may not signal. */
static bool
pidfile_alive(pid_t pid)
{
    return kill(pid, 0) == 0 || errno == EPERM;
}

/* Best effort: makes the rename itself survive a crash. */
static void
pidfile_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd == -1)
        return;
    (void)fsync(fd);
    close(fd);
}

/* Writes all of <buf> to <fd>; -1 with errno on failure. */
static int
pidfile_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int
pidfile_write(const char *path, char *err, size_t errlen)
{
    char dir[PATH_MAX], tmp[PATH_MAX + 16], text[PIDFILE_MAX];
    const char *slash = strrchr(path, '/'), *base;
    bool bad;
    pid_t old, me = getpid();
    int fd = -1, len, n;

    old = pidfile_parse(path, &bad);
    if (old > 0 && old != me && pidfile_alive(old)) {
        snprintf(err, errlen, "pid file %s names running process %ld", path, (long)old);
        return -1;
    }
    /* the temp file goes next to <path>, so that rename() is atomic */
    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
        base = path;
    } else {
        snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
        base = slash + 1;
    }
    n = snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, base);
    if (*base == '\0' || n < 0 || (size_t)n >= sizeof(tmp)) {
        snprintf(err, errlen, "pid file %s: bad path", path);
        return -1;
    }
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, errlen, "pid file %s: cannot create a temporary file in %s: %s", path, dir,
                 strerror(errno));
        return -1;
    }
    len = snprintf(text, sizeof(text), "%ld\n", (long)me);
    if (pidfile_write_all(fd, text, (size_t)len) == -1) {
        snprintf(err, errlen, "pid file %s: write %s: %s", path, tmp, strerror(errno));
        goto fail;
    }
    /* mkostemp() makes it 0600; others (logrotate, monitoring) read it */
    if (fchmod(fd, 0644) == -1) {
        snprintf(err, errlen, "pid file %s: chmod %s: %s", path, tmp, strerror(errno));
        goto fail;
    }
    if (fsync(fd) == -1) {
        snprintf(err, errlen, "pid file %s: fsync %s: %s", path, tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) == -1) {
        fd = -1;
        snprintf(err, errlen, "pid file %s: close %s: %s", path, tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) == -1) {
        snprintf(err, errlen, "pid file %s: rename from %s: %s", path, tmp, strerror(errno));
        goto fail;
    }
    pidfile_sync_dir(dir);
    return 0;

fail:
    if (fd != -1)
        close(fd);
    unlink(tmp);
    return -1;
}

void
pidfile_remove(const char *path)
{
    bool bad;

    if (pidfile_parse(path, &bad) == getpid())
        unlink(path);
}
