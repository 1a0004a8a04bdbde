/*
 * status: what the admin listener serves, rendered from the shared table:
 *   /status        an HTML page for people (refreshes itself every 2 s)
 *   /status.json   the same data for scripts
 *   /metrics       Prometheus text exposition format 0.0.4
 * Every upstream group (its usable servers: up with the breaker closed;
 * none means every request gets 503, which the page says in words) and
 * server (health and the reason of its last failed check, how long it has
 * been down, breaker state and what is left of its cooldown, requests in
 * flight, requests, failures, last probe latency), each group's latency
 * percentiles (from the fixed-bucket histogram in the table; /metrics
 * exports it as a Prometheus histogram), the answers the proxy made
 * itself by status, requests and bytes per second, open tunnels, the last
 * reload's time and result, and the running workers (pid, state, requests,
 * connections). Pure functions over <cfg> and <shm>: no I/O; the one
 * writer is status_sample().
 */
#ifndef MP_STATUS_H
#define MP_STATUS_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"
#include "shm.h"

enum status_kind { STATUS_HTML, STATUS_JSON, STATUS_METRICS };

/*
 * Takes a sample of the request and byte totals for the rates, when the
 * last one is at least a second old (<now_ms>: clock_ms()). The admin
 * worker calls it before each render and is its only caller, hence the
 * samples' only writer. The rates shown are over the window between the
 * last two samples: with the page open, its 2 s refresh; for a script,
 * the time since its previous look (JSON gives the window's length).
 */
void status_sample(struct shm *shm, int64_t now_ms);

/* The page for a request path ("/status", ...); -1 when there is none (404). */
int status_kind_for(const char *path, size_t len);

/* The Content-Type header value for <kind>. */
const char *status_content_type(enum status_kind kind);

/* A buffer size that always fits status_render() of <cfg>. */
size_t status_size_hint(const struct config *cfg);

/*
 * Renders <kind> into <buf>, uptime from shm->started, the configuration
 * generation from shm->generation. Returns the length, or -1 when <cap> is
 * too small.
 */
ssize_t status_render(enum status_kind kind, const struct config *cfg, const struct shm *shm,
                      char *buf, size_t cap);

#endif
