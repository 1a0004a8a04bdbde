/*
 * upool: the per-worker pool of idle upstream connections. See upool.h.
 */
#include "upool.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "net.h"

/* Idle connections older than this are not trusted: most servers close them by then. */
#define UPOOL_MAX_IDLE_MS 50000
/* Idle for less than this, a connection is not checked before an idempotent request. */
#define UPOOL_TRUST_MS 2000

int
upool_init(struct upool *p, const struct config *cfg)
{
    p->ngroups = cfg->ngroups;
    p->groups = calloc(cfg->ngroups, sizeof(*p->groups));
    if (p->groups == NULL)
        return -1;
    for (size_t g = 0; g < cfg->ngroups; g++) {
        struct upool_group *pg = &p->groups[g];
        pg->cap = cfg->groups[g].keepalive;
        if (pg->cap == 0)
            continue;
        pg->idle = calloc(pg->cap, sizeof(*pg->idle));
        if (pg->idle == NULL) {
            upool_free(p);
            return -1;
        }
    }
    return 0;
}

void
upool_free(struct upool *p)
{
    for (size_t g = 0; g < p->ngroups && p->groups != NULL; g++) {
        struct upool_group *pg = &p->groups[g];
        for (size_t i = 0; i < pg->n; i++)
            close(pg->idle[i].fd);
        free(pg->idle);
    }
    free(p->groups);
    p->groups = NULL;
    p->ngroups = 0;
}

static void
remove_at(struct upool_group *pg, size_t i)
{
    memmove(&pg->idle[i], &pg->idle[i + 1], (pg->n - i - 1) * sizeof(pg->idle[0]));
    pg->n--;
}

int
upool_get(struct upool *p, size_t g, size_t s, bool retryable)
{
    struct upool_group *pg = &p->groups[g];
    int64_t now = -1;

    for (size_t i = pg->n; i-- > 0;) {
        if (pg->idle[i].server != s)
            continue;
        struct upool_entry e = pg->idle[i];
        remove_at(pg, i);
        if (now == -1)
            now = clock_ms();
        int64_t idle = now - e.since_ms;
        /*
         * A connection idle for a moment is trusted as it is for a request that
         * can be retried on a fresh one if it turns out closed (one syscall
         * less per request); otherwise it is checked first.
         */
        if (idle < UPOOL_MAX_IDLE_MS &&
            ((retryable && idle < UPOOL_TRUST_MS) || net_idle_open(e.fd)))
            return e.fd;
        close(e.fd);
    }
    return -1;
}

void
upool_put(struct upool *p, size_t g, size_t s, int fd)
{
    struct upool_group *pg = &p->groups[g];

    if (pg->cap == 0) {
        close(fd);
        return;
    }
    if (pg->n == pg->cap) {
        close(pg->idle[0].fd);
        remove_at(pg, 0);
    }
    pg->idle[pg->n++] =
        (struct upool_entry){.fd = fd, .server = (uint16_t)s, .since_ms = clock_ms()};
}
