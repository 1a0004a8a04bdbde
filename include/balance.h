/*
 * balance: choosing the upstream server for a request, and the circuit
 * breaker that keeps failing servers out (nginx's get/free pair:
 * balance_pick() before, balance_done() after).
 *
 * A server is usable when the health checker has it UP (or its group has
 * health_check off) and its breaker lets traffic through. Backup servers
 * are picked only while no primary of the group is usable.
 *
 * Algorithms (cfg_group.balance):
 *  - round_robin: weighted and smooth, shared by all workers: each group's
 *    weights are unrolled at start-up into the sequence nginx's smooth
 *    weighted round-robin produces (weights 3,1 -> a a b a), and workers
 *    step through it with one atomic increment of the group's cursor in
 *    shared memory. Unusable servers are skipped.
 *  - least_conn: fewest active requests relative to weight (active counts
 *    are atomics in shared memory); ties go round the cursor.
 *  - random: two random choices (weighted), the one with fewer active
 *    requests relative to weight.
 *  - hash: rendezvous (highest random weight) hashing of the key over the
 *    usable servers: consistent, removing one of N servers moves only the
 *    keys it had (about 1/N).
 *
 * Circuit breaker, per server, shared by all workers (Envoy's outlier
 * detection with consecutive gateway failures): max_fails failures in a
 * row, all within fail_window of the first, open it (eject the server); a
 * success ends the run. It stays open for cooldown, then one trial request
 * goes through (half-open): success closes it, failure reopens it. An up
 * transition by the health checker closes it at once (Envoy's
 * successful_active_health_check_uneject_host). The breaker never holds out
 * more than max_ejected_percent of the group's servers that are up, and
 * never the last one: a client that makes the app fail on purpose cannot
 * empty a group. An ejection that the cap refuses leaves the breaker
 * closed, and says so in the log; and when the other servers go down after
 * an ejection, the ejected one is let back in at once, not after cooldown. Every transition is one
 * compare-and-swap of the server's breaker word (state and time together), so of many workers
 * racing for the half-open trial exactly one wins.
 */
#ifndef MP_BALANCE_H
#define MP_BALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "shm.h"

/* A set of servers of one group (CFG_MAX_SERVERS bits). */
struct balance_set {
    uint64_t bits[CFG_MAX_SERVERS / 64];
};

struct balance_group {
    uint16_t *seq; /* primaries, unrolled smooth WRR; length = sum of their weights */
    size_t nseq;
    uint16_t *bseq; /* the same for the backups */
    size_t nbseq;
};

struct balance {
    const struct config *cfg;
    struct balance_group *groups; /* one per cfg group */
    size_t ngroups;
};

/* What balance_pick() chose, to hand back to balance_done(). */
struct balance_ticket {
    int server;          /* index in the group, -1: none usable */
    bool trial;          /* the half-open breaker's one trial request */
    bool started;        /* rr_start is set: later picks are this request's retries */
    uint64_t rr_start;   /* the request's slot of the shared cursor */
    uint64_t trial_word; /* the breaker word the trial set: its report must find it there */
    /* why the request failed, for the ejection's log line (balance_ticket_failed()) */
    const char *fail_what; /* "connect to": a string that outlives the ticket; NULL: none */
    int fail_err;          /* its errno, 0: none */
};

/* Builds the sequences for every group of <cfg> (kept by pointer). Returns 0 or -1 (ENOMEM). */
int balance_init(struct balance *b, const struct config *cfg);

void balance_free(struct balance *b);

/*
 * Picks a usable server of group <g> for a new request, skipping those in
 * <exclude> (servers already tried for this request; may be NULL). <key>
 * [0..<keylen>) is the hash key (client address or header value) for
 * balance = hash, ignored otherwise. <now_ms> is clock_ms(). Sets
 * t->server to -1 when none is usable (the caller answers 503).
 * Zero <t> before a request's first pick; pass it again for its retries,
 * which then move the shared cursor no further: a request takes one slot,
 * however many servers it tries, so retries don't skew the spread.
 */
void balance_pick(const struct balance *b, struct shm *shm, size_t g,
                  const struct balance_set *exclude, const char *key, size_t keylen,
                  int64_t now_ms, struct balance_ticket *t);

/*
 * Reports how the request sent with ticket <t> went: <ok> false when it
 * failed in a way that counts against the server (connect refused or timed
 * out, reset, timeout, invalid answer; 5xx with fail_on_5xx). Drives the
 * breaker; logs when it opens (with the failures' count and the last
 * cause, see balance_ticket_failed()), when the cap keeps it closed, and
 * when it closes.
 */
void balance_done(const struct balance *b, struct shm *shm, size_t g,
                  const struct balance_ticket *t, bool ok, int64_t now_ms);

/*
 * Closes the breaker of server <s> of group <g> and ends its run of
 * failures: the health checker saw the server come up. Returns true when
 * the breaker was open or half-open (the caller logs it). A trial in flight
 * then reports to a breaker that has moved on, and changes nothing.
 */
bool balance_uneject(struct shm *shm, size_t g, size_t s, int64_t now_ms);

/* Records why the request of ticket <t> failed: <what> as "connect to", <err> an errno or 0. */
static inline void
balance_ticket_failed(struct balance_ticket *t, const char *what, int err)
{
    t->fail_what = what;
    t->fail_err = err;
}

/* True when server <s> of group <g> could get traffic now (health and breaker). */
bool balance_usable(const struct balance *b, const struct shm *shm, size_t g, size_t s,
                    int64_t now_ms);

static inline void
balance_set_add(struct balance_set *s, size_t i)
{
    s->bits[i / 64] |= UINT64_C(1) << (i % 64);
}

static inline bool
balance_set_has(const struct balance_set *s, size_t i)
{
    return (s->bits[i / 64] >> (i % 64)) & 1;
}

#endif
