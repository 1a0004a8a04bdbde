/*
 * bench_route: what route_match() costs per request with 1, 10 and 100
 * routes (run by hand: `make bench-route`; not a timed test). Each table
 * mixes exact hosts, wildcards and routes for any host, with paths of a
 * few segments; the requests cycle through targets that hit each kind and
 * miss, with dot segments and escapes for the normaliser. Prints ns per
 * match, the best of 5 runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "route.h"

static double
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* A config with <n> routes: a third exact hosts, a third wildcards, a third any host. */
static struct config *
make_config(int n)
{
    static char text[1 << 20];
    char err[512];
    size_t len = (size_t)snprintf(text, sizeof(text),
                                  "[proxy]\nlisten = 127.0.0.1:8080\nupstream = app\n"
                                  "[upstream app]\nserver = 127.0.0.1:3001\n");
    for (int i = 0; i < n; i++) {
        len +=
            (size_t)snprintf(text + len, sizeof(text) - len, "[route r%d]\nupstream = app\n", i);
        if (i % 3 == 0)
            len += (size_t)snprintf(text + len, sizeof(text) - len,
                                    "host = h%d.example.com\npath = /api/v%d/\n", i, i);
        else if (i % 3 == 1)
            len += (size_t)snprintf(text + len, sizeof(text) - len,
                                    "host = *.w%d.example.com\npath = /svc/%d/\n", i, i);
        else
            len += (size_t)snprintf(text + len, sizeof(text) - len, "path = /static/%d/\n", i);
    }
    struct config *cfg = cfg_load_string(text, "bench.ini", err, sizeof(err));
    if (cfg == NULL) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    return cfg;
}

int
main(void)
{
    static const int sizes[] = {1, 10, 100};
    enum { ITER = 1000000, RUNS = 5 };

    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        int n = sizes[k];
        struct config *cfg = make_config(n);
        struct route_table t;
        char hosts[4][64], targets[4][128], norm[256];
        if (route_table_init(&t, cfg) == -1)
            return 1;
        /* the last route of each kind, so a hit walks the whole of its level */
        int last = n - 1, wild = 1, any = 2;
        for (int i = 0; i < n; i++) {
            if (i % 3 == 1)
                wild = i;
            if (i % 3 == 2)
                any = i;
        }
        snprintf(hosts[0], sizeof(hosts[0]), "h%d.example.com", last - last % 3);
        snprintf(targets[0], sizeof(targets[0]), "/api/v%d/users/42?x=1", last - last % 3);
        snprintf(hosts[1], sizeof(hosts[1]), "a.w%d.example.com:8080", wild);
        snprintf(targets[1], sizeof(targets[1]), "/svc/%d/../%d/item", wild, wild);
        snprintf(hosts[2], sizeof(hosts[2]), "www.example.org");
        snprintf(targets[2], sizeof(targets[2]), "/static/%d/app.%%6as", any);
        snprintf(hosts[3], sizeof(hosts[3]), "nomatch.example.net");
        snprintf(targets[3], sizeof(targets[3]), "/index.html");
        size_t hl[4], tl[4];
        for (int i = 0; i < 4; i++) {
            hl[i] = strlen(hosts[i]);
            tl[i] = strlen(targets[i]);
        }
        double best = 1e18;
        unsigned matched = 0;
        for (int run = 0; run < RUNS; run++) {
            double t0 = now_ns();
            for (int i = 0; i < ITER; i++) {
                struct route_result r;
                int j = i & 3;
                route_match(&t, hosts[j], hl[j], targets[j], tl[j], norm, sizeof(norm), &r);
                matched += r.route != NULL;
            }
            double ns = (now_ns() - t0) / ITER;
            if (ns < best)
                best = ns;
        }
        printf("%3d routes: %6.1f ns per match (%u of %d matched)\n", n, best, matched,
               ITER * RUNS);
        route_table_free(&t);
        cfg_free(cfg);
    }
    return 0;
}
