/*
 * worker: a prefork worker process. Accepts on the shared listening
 * sockets, then serves that one client connection to its end (request after
 * request on keep-alive), each request proxied by proxy_serve().
 */
#ifndef MP_WORKER_H
#define MP_WORKER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "shm.h"

/*
 * Runs worker <slot> (its scoreboard entry; -1 for none) until told to
 * stop: SIGQUIT (graceful stop, or its generation retiring after a reload)
 * finishes the request in flight, answers it with Connection: close, closes
 * an idle keep-alive connection at once, and exits; SIGTERM exits at once.
 * With <admin> it serves the status pages on its listener instead of
 * proxying. Never returns.
 */
_Noreturn void worker_run(const struct config *cfg, struct shm *shm, int slot,
                          const int *listen_fds, size_t nlisten, bool admin);

#endif
