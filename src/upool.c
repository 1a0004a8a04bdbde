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
    p->cfg = cfg;
    p->ngroups = cfg->ngroups;
    p->groups = calloc(cfg->ngroups, sizeof(*p->groups));
    if (p->groups == NULL)
        return -1;
    for (size_t g = 0; g < cfg->ngroups; g++) {
        struct upool_group *pg = &p->groups[g];
        if (cfg->groups[g].tls) {
            pg->sessions = calloc(cfg->groups[g].nservers, sizeof(*pg->sessions));
            if (pg->sessions == NULL) {
                upool_free(p);
                return -1;
            }
        }
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
            upconn_close(&pg->idle[i].conn);
        free(pg->idle);
        if (pg->sessions != NULL) {
            for (size_t s = 0; s < p->cfg->groups[g].nservers; s++)
                SSL_SESSION_free(pg->sessions[s]);
            free(pg->sessions);
        }
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

bool
upool_get(struct upool *p, size_t g, size_t s, bool retryable, struct upconn *out)
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
            ((retryable && idle < UPOOL_TRUST_MS) || upconn_idle_open(&e.conn))) {
            *out = e.conn;
            return true;
        }
        upconn_close(&e.conn);
    }
    return false;
}

void
upool_put(struct upool *p, size_t g, size_t s, struct upconn *c)
{
    struct upool_group *pg = &p->groups[g];

    if (pg->cap == 0) {
        upconn_close(c);
        return;
    }
    if (pg->n == pg->cap) {
        upconn_close(&pg->idle[0].conn);
        remove_at(pg, 0);
    }
    pg->idle[pg->n++] =
        (struct upool_entry){.conn = *c, .server = (uint16_t)s, .since_ms = clock_ms()};
    *c = UPCONN_NONE;
}

SSL_SESSION **
upool_session(struct upool *p, size_t g, size_t s)
{
    struct upool_group *pg = &p->groups[g];

    return pg->sessions != NULL ? &pg->sessions[s] : NULL;
}
