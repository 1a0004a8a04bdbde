/*
 * Unit tests for proc.c (Check): the start-up order every child goes
 * through (issue 10, item 7), the slot prepared before fork (item 6), and
 * the exit-code policy. Children are real processes, each stopped by its
 * PID; every wait is bounded.
 */
#include "proc.h"
#include "testlib.h"

#include <check.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* What a child reports to the test, in a shared page. */
struct report {
    int prepared; /* written by the prepare hook (the parent, before fork) */
    int seen;     /* what the child found there at its start */
    int deathsig; /* PR_GET_PDEATHSIG once the child runs */
    int ran;
};

static struct report *rep;

static void
setup(void)
{
    rep = mmap(NULL, sizeof(*rep), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert(rep != MAP_FAILED);
    memset(rep, 0, sizeof(*rep));
}

static void
teardown(void)
{
    munmap(rep, sizeof(*rep));
}

/* Waits at most <ms> for our child <pid>; its status, or -1 (it is then killed and reaped). */
static int
wait_child(pid_t pid, int ms)
{
    int st;
    int64_t deadline = tl_now_ms() + ms;
    while (tl_now_ms() < deadline) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return st;
        usleep(5 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

static void
prepare_slot(void *arg)
{
    (void)arg;
    rep->prepared++;
}

static _Noreturn void
run_report(void *arg)
{
    (void)arg;
    int sig = 0;
    rep->seen = rep->prepared;
    prctl(PR_GET_PDEATHSIG, &sig);
    rep->deathsig = sig;
    rep->ran = 1;
    _exit(0);
}

/*
 * Item 6: the slot is filled before fork, so the child finds it filled at
 * its very first instruction, and the parent has nothing left to write that
 * the child may be writing already.
 */
START_TEST(test_prepare_before_fork)
{
    for (int i = 1; i <= 20; i++) {
        struct proc_child ch = {0};
        struct proc_start st = {
            .name = "test child", .master = getpid(), .prepare = prepare_slot, .run = run_report};
        pid_t pid = proc_spawn(&ch, &st);
        ck_assert_int_gt(pid, 0);
        ck_assert_int_eq(ch.pid, pid);
        ck_assert(ch.wanted);
        int status = wait_child(pid, 5000);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        ck_assert_int_eq(rep->seen, i);
    }
}
END_TEST

/*
 * Item 7: the death signal is set after privileges are dropped (which
 * clears it), so it is there when the child's body runs, as root and as
 * nobody. Before, proc's start-up checked getppid() and dropped privileges,
 * and the signal was set later, by the body.
 */
static const char *const users[] = {NULL, "nobody"};

START_TEST(test_death_signal_set)
{
    const char *user = users[_i];
    if (user != NULL && geteuid() != 0)
        return; /* the suite is meant to run as root */
    struct proc_child ch = {0};
    struct proc_start st = {
        .name = "test child", .user = user, .master = getpid(), .run = run_report};
    pid_t pid = proc_spawn(&ch, &st);
    ck_assert_int_gt(pid, 0);
    int status = wait_child(pid, 5000);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_int_eq(rep->ran, 1);
    ck_assert_int_eq(rep->deathsig, SIGTERM);
}
END_TEST

static _Noreturn void
run_ready_and_wait(void *arg)
{
    int fd = *(int *)arg;
    pid_t me = getpid();
    /* as a worker does: Check's SIGTERM handler would signal the whole test */
    signal(SIGTERM, SIG_DFL);
    if (write(fd, &me, sizeof(me)) != (ssize_t)sizeof(me))
        _exit(3);
    for (int i = 0; i < 100; i++)
        sleep(1); /* the master's death must end this */
    _exit(4);
}

/*
 * Item 7: a child whose master dies after the child's start-up dies too
 * (SIGTERM). The test is a subreaper, so the orphan comes back to it and is
 * reaped (or killed) by its PID.
 */
START_TEST(test_child_follows_master)
{
    int p[2];
    pid_t child = 0;
    ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    ck_assert_int_eq(pipe(p), 0);
    pid_t master = fork();
    ck_assert_int_ne(master, -1);
    if (master == 0) {
        struct proc_child ch = {0};
        struct proc_start st = {
            .name = "test child", .master = getpid(), .run = run_ready_and_wait, .arg = &p[1]};
        if (proc_spawn(&ch, &st) == -1)
            _exit(1);
        for (int i = 0; i < 100; i++)
            sleep(1); /* the test kills us */
        _exit(2);
    }
    /* the child is ready (its start-up done) when it writes its pid; then its master dies */
    ck_assert_int_eq(read(p[0], &child, sizeof(child)), (ssize_t)sizeof(child));
    ck_assert_int_eq(kill(master, SIGKILL), 0);
    int st = wait_child(master, 5000);
    ck_assert(WIFSIGNALED(st));
    st = wait_child(child, 5000);
    ck_assert_msg(st != -1, "child %d outlived its master", (int)child);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
    close(p[0]);
    close(p[1]);
}
END_TEST

/* Item 7: a child whose master is already gone exits at once, without running its body. */
START_TEST(test_orphan_exits)
{
    struct proc_child ch = {0};
    /* the runner's pid: alive, but not the child's parent, as after a master's death */
    struct proc_start st = {.name = "test child", .master = getppid(), .run = run_report};
    pid_t pid = proc_spawn(&ch, &st);
    ck_assert_int_gt(pid, 0);
    int status = wait_child(pid, 5000);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == MP_EXIT_OK);
    ck_assert_int_eq(rep->ran, 0);
}
END_TEST

/* The exit-code policy: what follows a death, at a time after the start. */
static const struct {
    int status;       /* a wait status, as W* macros read it */
    int64_t lived_ms; /* time since the start */
    unsigned crashes; /* before */
    bool fatal;       /* after */
    unsigned crashes_after;
    int64_t delay_ms;
} deaths[] = {
    {MP_EXIT_FATAL << 8, 5000, 0, true, 0, 0}, /* fatal: not respawned */
    {1 << 8, 5000, 3, false, 0, 0},            /* lived long: at once, count reset */
    {SIGSEGV, 10, 0, false, 1, 0},             /* first crash: at once */
    {SIGSEGV, 10, 1, false, 2, 100},           /* crash loop: back-off */
    {SIGSEGV, 10, 5, false, 6, 1600},
    {MP_EXIT_SICK << 8, 5000, 0, false, 1, 100}, /* sick: slowly, even after a long life */
    {MP_EXIT_SICK << 8, 10, 3, false, 4, 400},
};

START_TEST(test_died_policy)
{
    struct proc_child ch = {.wanted = true, .started = 100000, .crashes = deaths[_i].crashes};
    int64_t now = ch.started + deaths[_i].lived_ms;
    proc_died(&ch, "worker 1", 1234, deaths[_i].status, now);
    ck_assert(ch.fatal == deaths[_i].fatal);
    if (!deaths[_i].fatal) {
        ck_assert_uint_eq(ch.crashes, deaths[_i].crashes_after);
        ck_assert_int_eq(ch.respawn_at - now, deaths[_i].delay_ms);
    }
}
END_TEST

static Suite *
proc_suite(void)
{
    Suite *s = suite_create("proc");
    TCase *tc = tcase_create("proc");

    tcase_set_timeout(tc, 20);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_prepare_before_fork);
    tcase_add_loop_test(tc, test_death_signal_set, 0, (int)NELEM(users));
    tcase_add_test(tc, test_child_follows_master);
    tcase_add_test(tc, test_orphan_exits);
    tcase_add_loop_test(tc, test_died_policy, 0, (int)NELEM(deaths));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return tl_run(proc_suite());
}
