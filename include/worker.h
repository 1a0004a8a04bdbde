/*
 * worker: a prefork worker process. Accepts on the shared listening
 * sockets, then serves that one client connection to its end (request after
 * request on keep-alive), each request proxied by proxy_serve().
 */
#ifndef MP_WORKER_H
#define MP_WORKER_H

#include <stddef.h>

#include "config.h"
#include "shm.h"

/* Exit codes a child reports to the master (style rule 4). */
#define MP_EXIT_OK 0
#define MP_EXIT_FATAL 2 /* set-up failed in a way a respawn cannot fix: don't respawn */

/*
 * Runs worker <slot> until told to stop: SIGQUIT (or SIGHUP, for the
 * reload of later) finishes the connection's current request, answers it
 * with Connection: close and exits; SIGTERM exits at once. Never returns.
 */
_Noreturn void worker_run(const struct config *cfg, struct shm *shm, int slot,
                          const int *listen_fds, size_t nlisten);

#endif
