/*
 * Unit tests for src/pidfile.c (Check): the pid file (write, read, remove),
 * and for src/privs.c: privs_drop(). Each test works in its own temporary
 * directory. The suite runs as root: privs_drop("nobody") is tried in a
 * forked child, which reports the first check that failed through its exit
 * code.
 */
#include "pidfile.h"
#include "privs.h"
#include "testlib.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static char dir[64];
static char path[128];
static char err[512];

/* A fresh directory with <path> = DIR/m.pid (not created). */
static void
setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/unit_pidfile.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/m.pid", dir);
    err[0] = '\0';
}

static void
teardown(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[sizeof(dir) + sizeof(e->d_name) + 1];

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void
put(const char *p, const char *text)
{
    FILE *fp = fopen(p, "w");

    ck_assert_ptr_nonnull(fp);
    fputs(text, fp);
    ck_assert_int_eq(fclose(fp), 0);
}

/* The whole file <p> into <out>. */
static void
get(const char *p, char *out, size_t outlen)
{
    FILE *fp = fopen(p, "r");
    size_t n;

    ck_assert_ptr_nonnull(fp);
    n = fread(out, 1, outlen - 1, fp);
    out[n] = '\0';
    fclose(fp);
}

/* Entries in the test directory: no temporary file may be left behind. */
static int
entries(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* A pid that no process has: a child that has exited and was reaped. */
static pid_t
dead_pid(void)
{
    pid_t pid = fork();
    int status;

    ck_assert_int_ne(pid, -1);
    if (pid == 0)
        _exit(0);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return pid;
}

/* A live process that is not us; stop it with kill_child(). */
static pid_t
live_child(void)
{
    pid_t pid = fork();

    ck_assert_int_ne(pid, -1);
    if (pid == 0) {
        pause();
        _exit(0);
    }
    return pid;
}

static void
kill_child(pid_t pid)
{
    int status;

    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
}

/* ---- pidfile_write --------------------------------------------------- */

START_TEST(test_write_read)
{
    char text[64], want[64];
    struct stat st;

    ck_assert_msg(pidfile_write(path, err, sizeof(err)) == 0, "%s", err);
    get(path, text, sizeof(text));
    snprintf(want, sizeof(want), "%ld\n", (long)getpid());
    ck_assert_str_eq(text, want);
    ck_assert_int_eq(pidfile_read(path, err, sizeof(err)), getpid());
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0644);
    ck_assert(S_ISREG(st.st_mode));
    ck_assert_int_eq(entries(), 1);

    /* again, over our own pid: fine */
    ck_assert_msg(pidfile_write(path, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(pidfile_read(path, err, sizeof(err)), getpid());
    ck_assert_int_eq(entries(), 1);
}
END_TEST

/*
 * What an old file may hold that does not stop a new master; "DEAD" stands
 * for the pid of a child that has exited.
 */
static const char *const stale_cases[] = {
    "DEAD", "",     "\n",    "garbage\n",
    "0\n",  "-1\n", "12x\n", "99999999999999999999999999999999999999\n",
};

START_TEST(test_write_replaces_stale)
{
    char text[64], want[64];

    if (strcmp(stale_cases[_i], "DEAD") == 0) {
        snprintf(text, sizeof(text), "%ld\n", (long)dead_pid());
        put(path, text);
    } else {
        put(path, stale_cases[_i]);
    }
    ck_assert_msg(pidfile_write(path, err, sizeof(err)) == 0, "'%s': %s", stale_cases[_i], err);
    get(path, text, sizeof(text));
    snprintf(want, sizeof(want), "%ld\n", (long)getpid());
    ck_assert_str_eq(text, want);
    ck_assert_int_eq(entries(), 1);
}
END_TEST

START_TEST(test_write_refuses_live)
{
    pid_t child = live_child();
    char text[64], want[256];

    snprintf(text, sizeof(text), "%ld\n", (long)child);
    put(path, text);
    ck_assert_int_eq(pidfile_write(path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "pid file %s names running process %ld", path, (long)child);
    ck_assert_str_eq(err, want);
    get(path, want, sizeof(want));
    ck_assert_str_eq(want, text); /* untouched */
    ck_assert_int_eq(entries(), 1);

    /* without a newline too */
    snprintf(text, sizeof(text), "%ld", (long)child);
    put(path, text);
    ck_assert_int_eq(pidfile_write(path, err, sizeof(err)), -1);
    kill_child(child);

    /* once it is gone, the file is stale */
    ck_assert_msg(pidfile_write(path, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(pidfile_read(path, err, sizeof(err)), getpid());
}
END_TEST

START_TEST(test_write_errors)
{
    char p[256], want[512];

    snprintf(p, sizeof(p), "%s/nodir/m.pid", dir);
    ck_assert_int_eq(pidfile_write(p, err, sizeof(err)), -1);
    snprintf(want, sizeof(want),
             "pid file %s: cannot create a temporary file in %s/nodir: No such file or directory",
             p, dir);
    ck_assert_str_eq(err, want);

    snprintf(p, sizeof(p), "%s/", dir);
    ck_assert_int_eq(pidfile_write(p, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "pid file %s: bad path", p);
    ck_assert_str_eq(err, want);

    /* the path is a directory: rename() fails, the temp file goes away */
    ck_assert_int_eq(mkdir(path, 0755), 0);
    ck_assert_int_eq(pidfile_write(path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "pid file %s: rename from %s/.m.pid.", path, dir);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
    ck_assert_ptr_nonnull(strstr(err, ": Is a directory"));
    ck_assert_int_eq(entries(), 1);
    ck_assert_int_eq(rmdir(path), 0);
}
END_TEST

/* A path without a directory part: the temp file goes in ".". */
START_TEST(test_write_relative)
{
    char cwd[512];

    ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
    ck_assert_int_eq(chdir(dir), 0);
    ck_assert_msg(pidfile_write("m.pid", err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(pidfile_read("m.pid", err, sizeof(err)), getpid());
    ck_assert_int_eq(chdir(cwd), 0);
    ck_assert_int_eq(pidfile_read(path, err, sizeof(err)), getpid());
    ck_assert_int_eq(entries(), 1);
}
END_TEST

/* ---- pidfile_read ---------------------------------------------------- */

static const struct {
    const char *text;
    pid_t want; /* -1: "no pid in it" */
} read_cases[] = {
    {"123\n", 123},
    {"123", 123},
    {"1\n", 1},
    {"2147483647\n", 2147483647},
    {"007\n", 7},
    {"", -1},
    {"\n", -1},
    {"0\n", -1},
    {"-5\n", -1},
    {"+5\n", -1},
    {" 5\n", -1},
    {"5 \n", -1},
    {"5\n\n", -1},
    {"5\r\n", -1},
    {"12a\n", -1},
    {"2147483648\n", -1},
    {"99999999999999999999\n", -1},
    {"1234567890123456789012345678901234567890\n", -1},
    {"nginx\n", -1},
};

START_TEST(test_read)
{
    char want[256];
    pid_t pid;

    put(path, read_cases[_i].text);
    pid = pidfile_read(path, err, sizeof(err));
    ck_assert_msg(pid == read_cases[_i].want, "'%s': got %ld", read_cases[_i].text, (long)pid);
    if (pid == -1) {
        snprintf(want, sizeof(want), "pid file %s: no pid in it (expected a number and a newline)",
                 path);
        ck_assert_str_eq(err, want);
    }
}
END_TEST

START_TEST(test_read_errors)
{
    char want[256];

    ck_assert_int_eq(pidfile_read(path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "pid file %s: No such file or directory", path);
    ck_assert_str_eq(err, want);

    ck_assert_int_eq(pidfile_read(dir, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "pid file %s: Is a directory", dir);
    ck_assert_str_eq(err, want);
}
END_TEST

/* ---- pidfile_remove -------------------------------------------------- */

START_TEST(test_remove)
{
    char text[64];

    /* ours: removed */
    ck_assert_msg(pidfile_write(path, err, sizeof(err)) == 0, "%s", err);
    pidfile_remove(path);
    ck_assert_int_eq(access(path, F_OK), -1);
    ck_assert_int_eq(errno, ENOENT);

    /* missing: nothing happens */
    pidfile_remove(path);

    /* a successor's (or anyone else's): kept */
    snprintf(text, sizeof(text), "%ld\n", (long)getpid() + 1);
    put(path, text);
    pidfile_remove(path);
    ck_assert_int_eq(access(path, F_OK), 0);
    put(path, "garbage\n");
    pidfile_remove(path);
    ck_assert_int_eq(access(path, F_OK), 0);
}
END_TEST

/* ---- privs_drop ------------------------------------------------------ */

START_TEST(test_privs_noop)
{
    if (geteuid() != 0)
        return; /* the suite is meant to run as root */
    ck_assert_int_eq(privs_drop(NULL, err, sizeof(err)), 0);
    ck_assert_int_eq(getuid(), 0);
    ck_assert_int_eq(geteuid(), 0);
    ck_assert_int_eq(getgid(), 0);
}
END_TEST

START_TEST(test_privs_bad_user)
{
    if (geteuid() != 0)
        return;
    ck_assert_int_eq(privs_drop("no-such-user-mp", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "user no-such-user-mp: no such user");
    ck_assert_int_eq(geteuid(), 0);

    /* uid 0 would drop nothing: refused, and nothing changed */
    ck_assert_int_eq(privs_drop("root", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "user root: has uid 0, so no privilege would be dropped");
    ck_assert_int_eq(geteuid(), 0);
    ck_assert_int_eq(getegid(), 0);
}
END_TEST

/*
 * In the child, after privs_drop("nobody"): returns 0 when every check
 * passed, else the number of the first one that failed.
 */
static int
privs_child(uid_t uid, gid_t gid, const char *pidpath)
{
    char e[256];
    gid_t groups[64];
    int n;

    if (privs_drop("nobody", e, sizeof(e)) != 0)
        return 1;
    if (getuid() != uid || geteuid() != uid)
        return 2;
    if (getgid() != gid || getegid() != gid)
        return 3;
    if (setuid(0) != -1 || errno != EPERM)
        return 4;
    if (seteuid(0) != -1 || setgid(0) != -1 || setegid(0) != -1)
        return 5;
    n = getgroups((int)NELEM(groups), groups);
    if (n == -1)
        return 6;
    for (int i = 0; i < n; i++)
        if (groups[i] == 0)
            return 7; /* root's supplementary groups are gone */
    /* no longer root: privs_drop() does nothing, whatever the user */
    if (privs_drop("nobody", e, sizeof(e)) != 0 || privs_drop("no-such-user-mp", e, 1) != 0)
        return 8;
    if (getuid() != uid)
        return 9;
    /* and root's files are out of reach: the pid file's 0700 directory */
    if (pidfile_write(pidpath, e, sizeof(e)) != -1 || strstr(e, "Permission denied") == NULL)
        return 10;
    return 0;
}

START_TEST(test_privs_nobody)
{
    struct passwd *pw;
    uid_t uid;
    gid_t gid;
    pid_t pid;
    int status;

    if (geteuid() != 0)
        return;
    pw = getpwnam("nobody");
    ck_assert_ptr_nonnull(pw);
    uid = pw->pw_uid;
    gid = pw->pw_gid;
    ck_assert_uint_ne(uid, 0);
    pid = fork();
    ck_assert_int_ne(pid, -1);
    if (pid == 0)
        _exit(privs_child(uid, gid, path));
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "child died, status %d", status);
    ck_assert_msg(WEXITSTATUS(status) == 0, "child's check %d failed", WEXITSTATUS(status));
    /* the parent is untouched */
    ck_assert_int_eq(getuid(), 0);
    ck_assert_int_eq(geteuid(), 0);
    ck_assert_int_eq(access(path, F_OK), -1);
}
END_TEST

static Suite *
pidfile_suite(void)
{
    Suite *s = suite_create("pidfile");
    TCase *tp = tcase_create("pidfile");
    TCase *tv = tcase_create("privs");

    tcase_add_checked_fixture(tp, setup, teardown);
    tcase_add_test(tp, test_write_read);
    tcase_add_loop_test(tp, test_write_replaces_stale, 0, (int)NELEM(stale_cases));
    tcase_add_test(tp, test_write_refuses_live);
    tcase_add_test(tp, test_write_errors);
    tcase_add_test(tp, test_write_relative);
    tcase_add_loop_test(tp, test_read, 0, (int)NELEM(read_cases));
    tcase_add_test(tp, test_read_errors);
    tcase_add_test(tp, test_remove);
    suite_add_tcase(s, tp);

    tcase_add_checked_fixture(tv, setup, teardown);
    tcase_add_test(tv, test_privs_noop);
    tcase_add_test(tv, test_privs_bad_user);
    tcase_add_test(tv, test_privs_nobody);
    suite_add_tcase(s, tv);
    return s;
}

int
main(void)
{
    return tl_run(pidfile_suite());
}
