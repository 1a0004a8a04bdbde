/*
 * balance: picking a server, and the circuit breaker. See balance.h.
 */
#include "balance.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* ---- set-up -------------------------------------------------------------------------------- */

/*
 * Unrolls nginx's smooth weighted round-robin over the servers of <grp>
 * whose backup flag is <backup>: each step adds every server's weight to
 * its current weight, picks the largest, and subtracts the total from it.
 * After sum(weights) steps the state is back at zero, so the sequence
 * repeats exactly.
 */
static int
build_sequence(const struct cfg_group *grp, bool backup, uint16_t **seq, size_t *nseq)
{
    size_t total = 0;
    for (size_t i = 0; i < grp->nservers; i++)
        if (grp->servers[i].backup == backup)
            total += grp->servers[i].weight;
    *nseq = total;
    *seq = NULL;
    if (total == 0)
        return 0;
    uint16_t *out = malloc(total * sizeof(*out));
    long *cur = calloc(grp->nservers, sizeof(*cur));
    if (out == NULL || cur == NULL) {
        free(out);
        free(cur);
        errno = ENOMEM;
        return -1;
    }
    for (size_t step = 0; step < total; step++) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < grp->nservers; i++) {
            if (grp->servers[i].backup != backup)
                continue;
            cur[i] += grp->servers[i].weight;
            if (best == SIZE_MAX || cur[i] > cur[best])
                best = i;
        }
        cur[best] -= (long)total;
        out[step] = (uint16_t)best;
    }
    free(cur);
    *seq = out;
    return 0;
}

int
balance_init(struct balance *b, const struct config *cfg)
{
    b->cfg = cfg;
    b->ngroups = cfg->ngroups;
    b->groups = calloc(cfg->ngroups, sizeof(*b->groups));
    if (b->groups == NULL)
        return -1;
    for (size_t g = 0; g < cfg->ngroups; g++) {
        struct balance_group *bg = &b->groups[g];
        if (build_sequence(&cfg->groups[g], false, &bg->seq, &bg->nseq) == -1 ||
            build_sequence(&cfg->groups[g], true, &bg->bseq, &bg->nbseq) == -1) {
            balance_free(b);
            return -1;
        }
    }
    return 0;
}

void
balance_free(struct balance *b)
{
    for (size_t g = 0; g < b->ngroups && b->groups != NULL; g++) {
        free(b->groups[g].seq);
        free(b->groups[g].bseq);
    }
    free(b->groups);
    b->groups = NULL;
    b->ngroups = 0;
}

/* ---- usability and the breaker ---------------------------------------------------------- */

/*
 * A half-open breaker whose trial never reported back (its worker died)
 * would keep a server out forever; after this long another trial may go.
 */
static int64_t
trial_expiry_ms(const struct cfg_group *grp)
{
    return grp->cooldown_ms + grp->connect_timeout_ms + grp->read_timeout_ms;
}

bool
balance_usable(const struct balance *b, const struct shm *shm, size_t g, size_t s, int64_t now_ms)
{
    const struct cfg_group *grp = &b->cfg->groups[g];
    const struct shm_server *srv = &shm->servers[shm->groups[g].first + s];

    if (atomic_load_explicit(&srv->health, memory_order_relaxed) != SHM_HEALTH_UP)
        return false;
    uint64_t w = atomic_load_explicit(&srv->breaker, memory_order_acquire);
    switch (shm_bw_state(w)) {
    case SHM_BREAKER_OPEN:
        return now_ms - shm_bw_since(w) >= grp->cooldown_ms;
    case SHM_BREAKER_HALF_OPEN:
        return now_ms - shm_bw_since(w) >= trial_expiry_ms(grp);
    default:
        return true;
    }
}

/*
 * Takes server <s> for a request if it is usable: with a closed breaker
 * anyone may; an open one past its cooldown, or a half-open one whose
 * trial was lost, lets exactly one request through as the trial: the
 * worker whose compare-and-swap of the whole breaker word wins. Sets
 * t->trial and t->trial_word.
 */
static bool
take(const struct balance *b, struct shm *shm, size_t g, size_t s, int64_t now_ms,
     struct balance_ticket *t)
{
    const struct cfg_group *grp = &b->cfg->groups[g];
    struct shm_server *srv = shm_srv(shm, g, s);

    t->trial = false;
    if (atomic_load_explicit(&srv->health, memory_order_relaxed) != SHM_HEALTH_UP)
        return false;
    uint64_t w = atomic_load_explicit(&srv->breaker, memory_order_acquire);
    int state = shm_bw_state(w);
    int64_t since = shm_bw_since(w);
    if (state == SHM_BREAKER_CLOSED)
        return true;
    bool lost = state == SHM_BREAKER_HALF_OPEN;
    if (now_ms - since < (lost ? trial_expiry_ms(grp) : grp->cooldown_ms))
        return false;
    uint64_t want = shm_bw_make(SHM_BREAKER_HALF_OPEN, now_ms);
    if (!atomic_compare_exchange_strong(&srv->breaker, &w, want))
        return false; /* another worker moved it first: its trial, or a close */
    if (lost)
        log_warn("[%s] %s: the breaker's trial request never reported back; trying another",
                 grp->name, grp->servers[s].addr.text);
    t->trial = true;
    t->trial_word = want;
    log_info("[%s] %s circuit half-open: one trial request after %lld ms", grp->name,
             grp->servers[s].addr.text, (long long)(now_ms - since));
    return true;
}

/* A duration for the log: "10s" when whole seconds, else "250ms". */
static const char *
duration_text(int64_t ms, char *out, size_t len)
{
    if (ms % 1000 == 0)
        snprintf(out, len, "%llds", (long long)(ms / 1000));
    else
        snprintf(out, len, "%lldms", (long long)ms);
    return out;
}

/* ", last: connect to 127.0.0.1:3001: Connection refused", or "" when <t> has no cause. */
static const char *
cause_text(const struct balance_ticket *t, const char *addr, char *out, size_t len)
{
    if (t->fail_what == NULL)
        out[0] = '\0';
    else if (t->fail_err != 0)
        snprintf(out, len, ", last: %s %s: %s", t->fail_what, addr, strerror(t->fail_err));
    else
        snprintf(out, len, ", last: %s %s", t->fail_what, addr);
    return out;
}

/*
 * Counts a failure in the run of server <srv> (restarted when the run's
 * first failure is older than fail_window). Returns the run's length.
 */
static unsigned
count_failure(const struct cfg_group *grp, struct shm_server *srv, int64_t now_ms)
{
    uint64_t r = atomic_load(&srv->fail_run), next;
    do {
        unsigned n = shm_run_count(r);
        if (n == 0 || now_ms - shm_run_first(r) > grp->fail_window_ms)
            next = shm_run_make(1, now_ms);
        else
            next = shm_run_make(n + 1, shm_run_first(r));
    } while (!atomic_compare_exchange_weak(&srv->fail_run, &r, next));
    return shm_run_count(next);
}

/* After this long a holder of a group's eject_lock is taken for dead (killed in between). */
#define EJECT_LOCK_STALE_MS 1000

static bool
eject_lock(struct shm_group *sg, int64_t now_ms)
{
    int_fast64_t held = 0;
    int_fast64_t mine = now_ms > 0 ? now_ms : 1; /* 0 means free */
    if (atomic_compare_exchange_strong(&sg->eject_lock, &held, mine))
        return true;
    return now_ms - held > EJECT_LOCK_STALE_MS &&
           atomic_compare_exchange_strong(&sg->eject_lock, &held, mine);
}

/*
 * Opens the breaker of server <s> after <fails> consecutive failures, if
 * the group's cap allows: at most max_ejected_percent of the servers that
 * are up may be held out (open or half-open), and never all of them. The
 * decision is taken under the group's eject_lock, so two workers ejecting
 * two servers at once cannot both pass the cap; when another worker holds
 * it, this failure gives up and the run's next one tries again. Closing
 * needs no lock: it only ever makes room.
 */
static void
eject(const struct balance *b, struct shm *shm, size_t g, size_t s, unsigned fails,
      const struct balance_ticket *t, int64_t now_ms)
{
    const struct cfg_group *grp = &b->cfg->groups[g];
    struct shm_group *sg = &shm->groups[g];
    const char *addr = grp->servers[s].addr.text;
    struct shm_server *srv = shm_srv(shm, g, s);
    char cause[SHM_ERR_MAX + 160], dur[32];

    if (!eject_lock(sg, now_ms))
        return;
    unsigned up = 0, out = 0;
    for (size_t i = 0; i < grp->nservers; i++) {
        const struct shm_server *o = shm_srv(shm, g, i);
        if (atomic_load(&o->health) != SHM_HEALTH_UP)
            continue;
        up++;
        if (shm_breaker_state(o) != SHM_BREAKER_CLOSED)
            out++;
    }
    unsigned cap = up * grp->max_ejected_percent / 100;
    if (cap + 1 > up)
        cap = up > 0 ? up - 1 : 0;
    uint64_t w = atomic_load(&srv->breaker);
    if (shm_bw_state(w) != SHM_BREAKER_CLOSED || atomic_load(&srv->health) != SHM_HEALTH_UP) {
        /* already out, by a concurrent report or by health: nothing to decide */
    } else if (out + 1 > cap) {
        /* Once per run: every failure after it would say the same. */
        if (fails == grp->max_fails)
            log_warn("[%s] %s stays in: %u consecutive failures, but %u of the %u servers up "
                     "%s already out (max_ejected_percent = %u)%s",
                     grp->name, addr, fails, out, up, out == 1 ? "is" : "are",
                     grp->max_ejected_percent, cause_text(t, addr, cause, sizeof(cause)));
    } else if (atomic_compare_exchange_strong(&srv->breaker, &w,
                                              shm_bw_make(SHM_BREAKER_OPEN, now_ms))) {
        atomic_fetch_add(&srv->breaker_opens, 1);
        log_warn("[%s] %s ejected for %s: %u consecutive failures%s", grp->name, addr,
                 duration_text(grp->cooldown_ms, dur, sizeof(dur)), fails,
                 cause_text(t, addr, cause, sizeof(cause)));
    }
    atomic_store(&sg->eject_lock, 0);
}

void
balance_done(const struct balance *b, struct shm *shm, size_t g, const struct balance_ticket *t,
             bool ok, int64_t now_ms)
{
    if (t->server < 0)
        return;
    const struct cfg_group *grp = &b->cfg->groups[g];
    const char *addr = grp->servers[t->server].addr.text;
    struct shm_server *srv = shm_srv(shm, g, (size_t)t->server);
    char cause[SHM_ERR_MAX + 160], dur[32];

    if (t->trial) {
        /*
         * The trial decides only if the breaker is still where it put it: the
         * checker may have closed it meanwhile, or, the trial having taken too
         * long, another worker taken a new one.
         */
        uint64_t w = t->trial_word;
        if (ok) {
            if (atomic_compare_exchange_strong(&srv->breaker, &w,
                                               shm_bw_make(SHM_BREAKER_CLOSED, now_ms))) {
                atomic_store(&srv->fail_run, 0);
                log_info("[%s] %s circuit closed: the trial request succeeded", grp->name, addr);
            }
        } else if (atomic_compare_exchange_strong(&srv->breaker, &w,
                                                  shm_bw_make(SHM_BREAKER_OPEN, now_ms))) {
            atomic_fetch_add(&srv->breaker_opens, 1);
            log_warn("[%s] %s ejected again for %s: the trial request failed%s", grp->name, addr,
                     duration_text(grp->cooldown_ms, dur, sizeof(dur)),
                     cause_text(t, addr, cause, sizeof(cause)));
        }
        return;
    }
    if (ok) {
        /* A success ends the run; read first, so that the common case writes nothing shared. */
        if (atomic_load_explicit(&srv->fail_run, memory_order_relaxed) != 0)
            atomic_store(&srv->fail_run, 0);
        return;
    }
    if (grp->max_fails == 0)
        return;
    unsigned fails = count_failure(grp, srv, now_ms);
    if (fails >= grp->max_fails && shm_breaker_state(srv) == SHM_BREAKER_CLOSED)
        eject(b, shm, g, (size_t)t->server, fails, t, now_ms);
}

bool
balance_uneject(struct shm *shm, size_t g, size_t s, int64_t now_ms)
{
    struct shm_server *srv = shm_srv(shm, g, s);
    uint64_t w = atomic_exchange(&srv->breaker, shm_bw_make(SHM_BREAKER_CLOSED, now_ms));
    atomic_store(&srv->fail_run, 0);
    return shm_bw_state(w) != SHM_BREAKER_CLOSED;
}

/* ---- algorithms ------------------------------------------------------------------------- */

/* Candidates of one pick: usable, not excluded, of one tier (primaries or backups). */
struct cands {
    uint16_t idx[CFG_MAX_SERVERS];
    size_t n;
};

static void
gather(const struct balance *b, struct shm *shm, size_t g, bool backup,
       const struct balance_set *exclude, int64_t now_ms, struct cands *c)
{
    const struct cfg_group *grp = &b->cfg->groups[g];
    c->n = 0;
    for (size_t s = 0; s < grp->nservers; s++) {
        if (grp->servers[s].backup != backup || (exclude && balance_set_has(exclude, s)))
            continue;
        if (balance_usable(b, shm, g, s, now_ms))
            c->idx[c->n++] = (uint16_t)s;
    }
}

static void
drop(struct cands *c, size_t i)
{
    c->idx[i] = c->idx[--c->n];
}

/* a/wa < b/wb without division: fewer active requests per unit of weight. */
static bool
less_loaded(int64_t a, unsigned wa, int64_t b, unsigned wb)
{
    return a * (int64_t)wb < b * (int64_t)wa;
}

static int64_t
active_of(struct shm *shm, size_t g, size_t s)
{
    return atomic_load_explicit(&shm_srv(shm, g, s)->active, memory_order_relaxed);
}

/* A small per-process generator (xorshift64*), seeded from pid and time. */
static uint64_t
rnd(void)
{
    static uint64_t x;
    if (x == 0)
        x = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL) ^ 0x9e3779b97f4a7c15ULL;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    return x * 0x2545f4914f6cdd1dULL;
}

/* A 64-bit mix (splitmix64's finaliser). */
static uint64_t
mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t
hash_bytes(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ULL;
    return mix64(h);
}

/* Weighted rendezvous score of server <s> for key hash <kh>: -w / ln(u), u in (0, 1). */
static double
hrw_score(const struct cfg_server *srv, uint64_t kh)
{
    uint64_t h = mix64(kh ^ hash_bytes(srv->addr.text, strlen(srv->addr.text)));
    double u = ((double)(h >> 11) + 0.5) / 9007199254740992.0; /* 2^53 */
    return -(double)srv->weight / log(u);
}

/* The request's slot of the group's shared cursor, taken at its first pick only. */
static uint64_t
slot(struct shm *shm, size_t g, struct balance_ticket *t)
{
    if (!t->started) {
        t->rr_start =
            atomic_fetch_add_explicit(&shm->groups[g].rr_cursor, 1, memory_order_relaxed);
        t->started = true;
    }
    return t->rr_start;
}

/* Index in <c> of the server the group's algorithm chooses. */
static size_t
choose(const struct balance *b, struct shm *shm, size_t g, const struct cands *c, bool backup,
       const char *key, size_t keylen, struct balance_ticket *t)
{
    const struct cfg_group *grp = &b->cfg->groups[g];
    const struct balance_group *bg = &b->groups[g];

    switch (grp->balance) {
    case CFG_BAL_LEAST_CONN: {
        /* Start the scan at a rotating place so ties spread instead of piling on one. */
        size_t start = slot(shm, g, t) % c->n;
        size_t best = start;
        int64_t best_a = active_of(shm, g, c->idx[best]);
        for (size_t k = 1; k < c->n; k++) {
            size_t i = (start + k) % c->n;
            int64_t a = active_of(shm, g, c->idx[i]);
            if (less_loaded(a, grp->servers[c->idx[i]].weight, best_a,
                            grp->servers[c->idx[best]].weight)) {
                best = i;
                best_a = a;
            }
        }
        return best;
    }
    case CFG_BAL_RANDOM: {
        /* Two weighted random choices; the less loaded one wins. */
        uint64_t total = 0;
        for (size_t i = 0; i < c->n; i++)
            total += grp->servers[c->idx[i]].weight;
        size_t pick[2];
        for (int k = 0; k < 2; k++) {
            uint64_t r = rnd() % total;
            size_t i = 0;
            while (r >= grp->servers[c->idx[i]].weight) {
                r -= grp->servers[c->idx[i]].weight;
                i++;
            }
            pick[k] = i;
        }
        int64_t a0 = active_of(shm, g, c->idx[pick[0]]), a1 = active_of(shm, g, c->idx[pick[1]]);
        return less_loaded(a1, grp->servers[c->idx[pick[1]]].weight, a0,
                           grp->servers[c->idx[pick[0]]].weight)
                   ? pick[1]
                   : pick[0];
    }
    case CFG_BAL_HASH: {
        uint64_t kh = hash_bytes(key, keylen);
        size_t best = 0;
        double best_score = hrw_score(&grp->servers[c->idx[0]], kh);
        for (size_t i = 1; i < c->n; i++) {
            double sc = hrw_score(&grp->servers[c->idx[i]], kh);
            if (sc > best_score) {
                best = i;
                best_score = sc;
            }
        }
        return best;
    }
    case CFG_BAL_ROUND_ROBIN:
    default: {
        /*
         * The request's slot of the smooth sequence names its server. When that
         * one is out (down, open, or already tried), the slot goes to a usable
         * server drawn in proportion to weight from the slot number, not to
         * the next one in the sequence, which would inherit the missing
         * server's whole share (1,1,1 with the first down: 2/3 for the second).
         * The cursor moves once per request, whatever is skipped.
         */
        const uint16_t *seq = backup ? bg->bseq : bg->seq;
        size_t nseq = backup ? bg->nbseq : bg->nseq;
        uint64_t start = slot(shm, g, t);
        uint16_t want = seq[start % nseq];
        uint64_t total = 0;
        for (size_t i = 0; i < c->n; i++) {
            if (c->idx[i] == want)
                return i;
            total += grp->servers[c->idx[i]].weight;
        }
        uint64_t r = mix64(start) % total;
        for (size_t i = 0; i < c->n; i++) {
            if (r < grp->servers[c->idx[i]].weight)
                return i;
            r -= grp->servers[c->idx[i]].weight;
        }
        return 0; /* unreachable: r < total */
    }
    }
}

void
balance_pick(const struct balance *b, struct shm *shm, size_t g, const struct balance_set *exclude,
             const char *key, size_t keylen, int64_t now_ms, struct balance_ticket *t)
{
    struct cands c;

    t->server = -1;
    t->trial = false;
    balance_ticket_failed(t, NULL, 0);
    for (int tier = 0; tier < 2; tier++) {
        bool backup = tier == 1;
        gather(b, shm, g, backup, exclude, now_ms, &c);
        /* Another worker may take a half-open server's only trial first: choose again. */
        while (c.n > 0) {
            size_t i = choose(b, shm, g, &c, backup, key, keylen, t);
            if (take(b, shm, g, c.idx[i], now_ms, t)) {
                t->server = c.idx[i];
                return;
            }
            drop(&c, i);
        }
    }

    /*
     * Nothing usable, tried or not, yet the health checker has a server up
     * that its breaker holds out: the others went down after it was
     * ejected. Counted now, the cap would not have ejected it (never the
     * last one), so it is let back in rather than leave the group empty
     * until its cooldown ends.
     */
    const struct cfg_group *grp = &b->cfg->groups[g];
    for (size_t s = 0; s < grp->nservers; s++)
        if (balance_usable(b, shm, g, s, now_ms))
            return;
    for (size_t s = 0; s < grp->nservers; s++) {
        struct shm_server *srv = shm_srv(shm, g, s);
        if ((exclude != NULL && balance_set_has(exclude, s)) ||
            atomic_load(&srv->health) != SHM_HEALTH_UP)
            continue;
        uint64_t w = atomic_load(&srv->breaker);
        if (shm_bw_state(w) == SHM_BREAKER_CLOSED)
            continue;
        if (atomic_compare_exchange_strong(&srv->breaker, &w,
                                           shm_bw_make(SHM_BREAKER_CLOSED, now_ms))) {
            atomic_store(&srv->fail_run, 0);
            log_warn("[%s] %s back in before its cooldown: no other server is usable", grp->name,
                     grp->servers[s].addr.text);
        } else if (shm_bw_state(w) != SHM_BREAKER_CLOSED) {
            continue; /* another worker took a trial meanwhile: that one decides */
        }
        t->server = (int)s;
        return;
    }
}
