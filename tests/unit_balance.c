/*
 * Unit tests for src/balance.c (Check): smooth weighted round-robin over
 * the shared cursor, exclusion, backups, several groups, several processes.
 * Configs come from cfg_load_string(), the cursor from a real shm table.
 */
#include "balance.h"
#include "config.h"
#include "shm.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define MAX_SET 8

/* One weight set; apart[] is a pair of servers never picked one right after the other. */
struct weight_case {
    unsigned w[MAX_SET];
    size_t n;
    int apart[2]; /* -1: no such pair */
};

static const struct weight_case weight_cases[] = {
    {{1, 1, 1}, 3, {0, 0}}, /* plain round-robin: never the same one twice */
    {{3, 1}, 2, {1, 1}},    /* the lone server never twice in a row */
    {{5, 1, 1}, 3, {1, 2}}, /* the two light ones never next to each other */
    {{2, 3, 5}, 3, {0, 0}}, /* the lightest one never twice in a row */
    {{1}, 1, {-1, -1}},     /* a single server */
    {{100, 1}, 2, {1, 1}},  /* the largest weight against the smallest */
};

/* A loaded config, its shared table and the balancer over them. */
struct fixture {
    struct config *cfg;
    struct shm *shm;
    struct balance bal;
};

static void
setup_text(struct fixture *f, const char *text)
{
    char err[512] = "";

    f->cfg = cfg_load_string(text, "t.ini", err, sizeof(err));
    ck_assert_msg(f->cfg != NULL, "config: %s\n%s", err, text);
    f->shm = shm_create(f->cfg, 1);
    ck_assert_msg(f->shm != NULL, "shm_create: %s", strerror(errno));
    ck_assert_int_eq(balance_init(&f->bal, f->cfg), 0);
}

/* Group "app" with one server per weight, ports 3001, 3002, ... */
static void
setup_weights(struct fixture *f, const unsigned *w, size_t n)
{
    char text[4096];
    size_t len = (size_t)snprintf(text, sizeof(text),
                                  "[proxy]\nlisten = 127.0.0.1:0\nupstream = app\n"
                                  "[upstream app]\n");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len,
                                "server = 127.0.0.1:%zu weight=%u\n", 3001 + i, w[i]);
    ck_assert_uint_lt(len, sizeof(text));
    setup_text(f, text);
}

static void
teardown(struct fixture *f)
{
    balance_free(&f->bal);
    shm_destroy(f->shm);
    cfg_free(f->cfg);
}

static unsigned
sum_of(const struct weight_case *c)
{
    unsigned sum = 0;
    for (size_t i = 0; i < c->n; i++)
        sum += c->w[i];
    return sum;
}

/* ---- the sequence ----------------------------------------------------------------------- */

#define ROUNDS 3

/*
 * Over ROUNDS * sum(weights) picks from a fresh cursor:
 *  - every server is picked exactly ROUNDS * weight times;
 *  - every window of sum(weights) consecutive picks holds each server
 *    exactly weight times (the sequence repeats with that period);
 *  - smooth: after every prefix of t picks, each server's count is less
 *    than one pick away from its share t * weight / sum (this is what tells
 *    "a a b a c a a" from "a a a a a b c" for 5,1,1; nginx's algorithm keeps
 *    to it);
 *  - the case's <apart> pair is never adjacent.
 */
START_TEST(test_sequence)
{
    const struct weight_case *c = &weight_cases[_i];
    const unsigned sum = sum_of(c);
    const size_t npicks = ROUNDS * (size_t)sum;
    struct fixture f;
    int *picks = malloc(npicks * sizeof(*picks));
    unsigned count[MAX_SET] = {0};

    ck_assert_ptr_nonnull(picks);
    setup_weights(&f, c->w, c->n);
    for (size_t t = 0; t < npicks; t++) {
        picks[t] = balance_pick(&f.bal, f.shm, 0, NULL);
        ck_assert_msg(picks[t] >= 0 && (size_t)picks[t] < c->n, "case %d: pick %zu = %d", _i, t,
                      picks[t]);
    }

    for (size_t t = 0; t < npicks; t++)
        count[picks[t]]++;
    for (size_t s = 0; s < c->n; s++)
        ck_assert_msg(count[s] == ROUNDS * c->w[s], "case %d: server %zu picked %u times, want %u",
                      _i, s, count[s], ROUNDS * c->w[s]);

    for (size_t start = 0; start + sum <= npicks; start++) {
        unsigned win[MAX_SET] = {0};
        for (size_t t = start; t < start + sum; t++)
            win[picks[t]]++;
        for (size_t s = 0; s < c->n; s++)
            ck_assert_msg(win[s] == c->w[s],
                          "case %d: window at %zu has server %zu %u times, want %u", _i, start, s,
                          win[s], c->w[s]);
    }

    unsigned pre[MAX_SET] = {0};
    for (size_t t = 1; t <= sum; t++) {
        pre[picks[t - 1]]++;
        for (size_t s = 0; s < c->n; s++) {
            /* |pre * sum - t * w| < sum, in integers */
            long dev = (long)pre[s] * (long)sum - (long)t * (long)c->w[s];
            ck_assert_msg(labs(dev) < (long)sum,
                          "case %d: not smooth: server %zu has %u of the first %zu picks", _i, s,
                          pre[s], t);
        }
    }

    if (c->apart[0] >= 0)
        for (size_t t = 1; t < npicks; t++) {
            int a = picks[t - 1], b = picks[t];
            ck_assert_msg(!((a == c->apart[0] && b == c->apart[1]) ||
                            (a == c->apart[1] && b == c->apart[0])),
                          "case %d: servers %d and %d adjacent at pick %zu", _i, a, b, t);
        }

    free(picks);
    teardown(&f);
}
END_TEST

/* The documented example: weights 3,1 give a a b a (nginx's order, from a fresh cursor). */
START_TEST(test_sequence_nginx_order)
{
    static const unsigned w[] = {3, 1};
    static const int want[] = {0, 0, 1, 0, 0, 0, 1, 0};
    struct fixture f;

    setup_weights(&f, w, NELEM(w));
    for (size_t t = 0; t < NELEM(want); t++)
        ck_assert_int_eq(balance_pick(&f.bal, f.shm, 0, NULL), want[t]);
    teardown(&f);
}
END_TEST

/* ---- exclusion -------------------------------------------------------------------------- */

/*
 * For every server j: excluding all others always gives j; excluding j
 * never does; excluding everyone gives -1. Each pick moves the shared
 * cursor by exactly one, however many servers it skipped.
 */
START_TEST(test_exclude)
{
    const struct weight_case *c = &weight_cases[_i];
    const unsigned sum = sum_of(c);
    struct fixture f;
    struct balance_set all = {{0}};
    uint64_t calls = 0;

    setup_weights(&f, c->w, c->n);
    for (size_t s = 0; s < c->n; s++)
        balance_set_add(&all, s);

    for (size_t j = 0; j < c->n; j++) {
        struct balance_set others = {{0}}, only_j = {{0}};
        for (size_t s = 0; s < c->n; s++)
            if (s != j)
                balance_set_add(&others, s);
        balance_set_add(&only_j, j);
        for (unsigned k = 0; k < 2 * sum; k++, calls += 2) {
            int p = balance_pick(&f.bal, f.shm, 0, &others);
            ck_assert_msg(p == (int)j, "case %d: all but %zu excluded, got %d", _i, j, p);
            p = balance_pick(&f.bal, f.shm, 0, &only_j);
            if (c->n == 1)
                ck_assert_msg(p == -1, "case %d: only server excluded, got %d", _i, p);
            else
                ck_assert_msg(p >= 0 && (size_t)p < c->n && (size_t)p != j,
                              "case %d: %zu excluded, got %d", _i, j, p);
        }
    }
    for (unsigned k = 0; k < 2 * sum; k++, calls++)
        ck_assert_int_eq(balance_pick(&f.bal, f.shm, 0, &all), -1);

    ck_assert_uint_eq(atomic_load(&f.shm->groups[0].rr_cursor), calls);
    teardown(&f);
}
END_TEST

/* An empty exclude set is the same as none: the counts still follow the weights. */
START_TEST(test_exclude_empty)
{
    static const unsigned w[] = {2, 3, 5};
    struct fixture f;
    struct balance_set none = {{0}};
    unsigned count[NELEM(w)] = {0};

    setup_weights(&f, w, NELEM(w));
    for (int t = 0; t < 100; t++) {
        int p = balance_pick(&f.bal, f.shm, 0, &none);
        ck_assert(p >= 0 && (size_t)p < NELEM(w));
        count[p]++;
    }
    for (size_t s = 0; s < NELEM(w); s++)
        ck_assert_uint_eq(count[s], 10 * w[s]);
    teardown(&f);
}
END_TEST

/* Server indexes above 63 live in the second word of the set. */
START_TEST(test_exclude_high_index)
{
    char text[8192];
    size_t len = (size_t)snprintf(text, sizeof(text),
                                  "[proxy]\nlisten = 127.0.0.1:0\nupstream = app\n"
                                  "[upstream app]\n");
    struct fixture f;
    struct balance_set ex = {{0}};

    for (int i = 0; i < 70; i++)
        len +=
            (size_t)snprintf(text + len, sizeof(text) - len, "server = 127.0.0.1:%d\n", 4000 + i);
    ck_assert_uint_lt(len, sizeof(text));
    setup_text(&f, text);
    for (size_t s = 0; s < 70; s++)
        if (s != 66)
            balance_set_add(&ex, s);
    for (int t = 0; t < 140; t++)
        ck_assert_int_eq(balance_pick(&f.bal, f.shm, 0, &ex), 66);
    teardown(&f);
}
END_TEST

/* ---- backups and groups ----------------------------------------------------------------- */

struct backup_case {
    const char *servers; /* the [upstream app] server lines */
    unsigned want[4];    /* picks per server over 12 picks; 0 for backups */
};

static const struct backup_case backup_cases[] = {
    {"server = 127.0.0.1:3001\nserver = 127.0.0.1:3002 backup\n", {12, 0}},
    {"server = 127.0.0.1:3001 backup\nserver = 127.0.0.1:3002\n", {0, 12}},
    {"server = 127.0.0.1:3001\nserver = 127.0.0.1:3002 backup\n"
     "server = 127.0.0.1:3003 weight=2\n",
     {4, 0, 8}},
    {"server = 127.0.0.1:3001 weight=5 backup\nserver = 127.0.0.1:3002 weight=3\n"
     "server = 127.0.0.1:3003 backup\nserver = 127.0.0.1:3004 weight=1\n",
     {0, 9, 0, 3}},
};

START_TEST(test_backup)
{
    const struct backup_case *c = &backup_cases[_i];
    char text[1024];
    struct fixture f;
    unsigned count[4] = {0};

    snprintf(text, sizeof(text),
             "[proxy]\nlisten = 127.0.0.1:0\nupstream = app\n"
             "[upstream app]\n%s",
             c->servers);
    setup_text(&f, text);
    for (int t = 0; t < 12; t++) {
        int p = balance_pick(&f.bal, f.shm, 0, NULL);
        ck_assert_msg(p >= 0 && (size_t)p < f.cfg->groups[0].nservers, "case %d: got %d", _i, p);
        count[p]++;
    }
    for (size_t s = 0; s < f.cfg->groups[0].nservers; s++)
        ck_assert_msg(count[s] == c->want[s], "case %d: server %zu picked %u times, want %u", _i,
                      s, count[s], c->want[s]);
    teardown(&f);
}
END_TEST

/* Each group has its own sequence and cursor. */
START_TEST(test_groups)
{
    static const char text[] = "[proxy]\nlisten = 127.0.0.1:0\nupstream = app\n"
                               "[upstream app]\nserver = 127.0.0.1:3001\n"
                               "server = 127.0.0.1:3002\n"
                               "[upstream other]\nserver = 127.0.0.1:4001 weight=2\n"
                               "server = 127.0.0.1:4002\nserver = 127.0.0.1:4003\n";
    struct fixture f;
    unsigned c0[2] = {0}, c1[3] = {0};

    setup_text(&f, text);
    ck_assert_uint_eq(f.cfg->ngroups, 2);
    ck_assert_uint_eq(f.bal.ngroups, 2);
    /* Uneven interleaving: group 1 is picked three times as often. */
    for (int t = 0; t < 40; t++) {
        int p = balance_pick(&f.bal, f.shm, 0, NULL);
        ck_assert(p >= 0 && p < 2);
        c0[p]++;
        for (int k = 0; k < 3; k++) {
            p = balance_pick(&f.bal, f.shm, 1, NULL);
            ck_assert(p >= 0 && p < 3);
            c1[p]++;
        }
    }
    ck_assert_uint_eq(c0[0], 20);
    ck_assert_uint_eq(c0[1], 20);
    ck_assert_uint_eq(c1[0], 60);
    ck_assert_uint_eq(c1[1], 30);
    ck_assert_uint_eq(c1[2], 30);
    teardown(&f);
}
END_TEST

/* ---- several processes on one cursor ---------------------------------------------------- */

#define NCHILD 4
#define CHILD_PICKS 1000

struct fork_case {
    unsigned w[MAX_SET];
    size_t n;
};

static const struct fork_case fork_cases[] = {
    {{1, 1}, 2},
    {{3, 1}, 2},
    {{2, 3, 5}, 3},
};

/*
 * NCHILD processes pick CHILD_PICKS times each at once and report their
 * counts through a pipe. The cursor is one atomic counter, so the
 * NCHILD * CHILD_PICKS picks are exactly that many consecutive steps of the
 * sequence: the totals match the weights exactly whatever the interleaving
 * (NCHILD * CHILD_PICKS is a multiple of every sum here).
 */
START_TEST(test_processes)
{
    const struct fork_case *c = &fork_cases[_i];
    struct fixture f;
    unsigned total[MAX_SET] = {0}, sum = 0;
    pid_t pids[NCHILD];
    int pfd[2];

    setup_weights(&f, c->w, c->n);
    for (size_t s = 0; s < c->n; s++)
        sum += c->w[s];
    ck_assert_uint_eq((NCHILD * CHILD_PICKS) % sum, 0);
    ck_assert_int_ne(pipe(pfd), -1);

    for (int k = 0; k < NCHILD; k++) {
        pids[k] = fork();
        ck_assert_int_ne(pids[k], -1);
        if (pids[k] == 0) {
            unsigned count[MAX_SET] = {0};
            close(pfd[0]);
            for (int t = 0; t < CHILD_PICKS; t++) {
                int p = balance_pick(&f.bal, f.shm, 0, NULL);
                if (p < 0 || (size_t)p >= c->n)
                    _exit(2);
                count[p]++;
            }
            /* One write of under PIPE_BUF bytes: atomic, never interleaved. */
            _exit(write(pfd[1], count, sizeof(count)) == (ssize_t)sizeof(count) ? 0 : 3);
        }
    }
    close(pfd[1]);

    for (int k = 0; k < NCHILD; k++) {
        unsigned count[MAX_SET];
        ssize_t r = read(pfd[0], count, sizeof(count));
        ck_assert_int_eq(r, (ssize_t)sizeof(count));
        unsigned got = 0;
        for (size_t s = 0; s < MAX_SET; s++) {
            total[s] += count[s];
            got += count[s];
        }
        ck_assert_uint_eq(got, CHILD_PICKS);
    }
    close(pfd[0]);
    for (int k = 0; k < NCHILD; k++) {
        int st;
        ck_assert_int_eq(waitpid(pids[k], &st, 0), pids[k]);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d: status %#x", k, st);
    }

    for (size_t s = 0; s < c->n; s++)
        ck_assert_msg(total[s] == NCHILD * CHILD_PICKS / sum * c->w[s],
                      "case %d: server %zu picked %u times, want %u", _i, s, total[s],
                      NCHILD * CHILD_PICKS / sum * c->w[s]);
    ck_assert_uint_eq(atomic_load(&f.shm->groups[0].rr_cursor), NCHILD * CHILD_PICKS);
    teardown(&f);
}
END_TEST

static Suite *
balance_suite(void)
{
    Suite *s = suite_create("balance");
    TCase *tc = tcase_create("balance");

    tcase_add_loop_test(tc, test_sequence, 0, (int)NELEM(weight_cases));
    tcase_add_test(tc, test_sequence_nginx_order);
    tcase_add_loop_test(tc, test_exclude, 0, (int)NELEM(weight_cases));
    tcase_add_test(tc, test_exclude_empty);
    tcase_add_test(tc, test_exclude_high_index);
    tcase_add_loop_test(tc, test_backup, 0, (int)NELEM(backup_cases));
    tcase_add_test(tc, test_groups);
    tcase_add_loop_test(tc, test_processes, 0, (int)NELEM(fork_cases));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(balance_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
