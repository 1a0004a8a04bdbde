/*
 * balance: smooth weighted round-robin over a shared cursor. See balance.h.
 */
#include "balance.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * Unrolls nginx's smooth weighted round-robin for one group: each step adds
 * every server's weight to its current weight, picks the largest, and
 * subtracts the total from it. After sum(weights) steps the state is back
 * at zero, so the sequence repeats exactly.
 */
static int
build_sequence(const struct cfg_group *grp, struct balance_group *out)
{
    size_t total = 0;
    for (size_t i = 0; i < grp->nservers; i++)
        if (!grp->servers[i].backup)
            total += grp->servers[i].weight;
    out->nseq = total;
    out->seq = NULL;
    if (total == 0)
        return 0;
    out->seq = malloc(total * sizeof(*out->seq));
    long *cur = calloc(grp->nservers, sizeof(*cur));
    if (out->seq == NULL || cur == NULL) {
        free(out->seq);
        free(cur);
        out->seq = NULL;
        errno = ENOMEM;
        return -1;
    }
    for (size_t step = 0; step < total; step++) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < grp->nservers; i++) {
            if (grp->servers[i].backup)
                continue;
            cur[i] += grp->servers[i].weight;
            if (best == SIZE_MAX || cur[i] > cur[best])
                best = i;
        }
        cur[best] -= (long)total;
        out->seq[step] = (uint16_t)best;
    }
    free(cur);
    return 0;
}

int
balance_init(struct balance *b, const struct config *cfg)
{
    b->ngroups = cfg->ngroups;
    b->groups = calloc(cfg->ngroups, sizeof(*b->groups));
    if (b->groups == NULL)
        return -1;
    for (size_t g = 0; g < cfg->ngroups; g++) {
        if (build_sequence(&cfg->groups[g], &b->groups[g]) == -1) {
            balance_free(b);
            return -1;
        }
    }
    return 0;
}

void
balance_free(struct balance *b)
{
    for (size_t g = 0; g < b->ngroups && b->groups != NULL; g++)
        free(b->groups[g].seq);
    free(b->groups);
    b->groups = NULL;
    b->ngroups = 0;
}

int
balance_pick(const struct balance *b, struct shm *shm, size_t g,
             const struct balance_set *exclude)
{
    const struct balance_group *bg = &b->groups[g];
    if (bg->nseq == 0)
        return -1;
    uint64_t start = atomic_fetch_add_explicit(&shm->groups[g].rr_cursor, 1,
                                               memory_order_relaxed);
    /*
     * Walk forward from our slot until a server not excluded; one full lap
     * means none is left. The cursor only moved once: retries of this
     * request do not skew the spread for everyone else.
     */
    for (size_t i = 0; i < bg->nseq; i++) {
        uint16_t s = bg->seq[(start + i) % bg->nseq];
        if (exclude == NULL || !balance_set_has(exclude, s))
            return s;
    }
    return -1;
}
