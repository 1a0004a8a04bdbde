/*
 * health: the health-check child. Forked by the master (and respawned if
 * it dies), it probes every server of every group with health_check on,
 * GET <health_path> over HTTP/1.1 with its own Host header, all probes of a
 * round in flight at once (non-blocking connect + one poll()), so a
 * black-holed server delays no other check. It is the only writer of the
 * health fields in shared memory.
 *
 * A server goes DOWN after `fall` failed probes in a row and UP after `rise`
 * good ones; its very first probe decides its state at once (UNKNOWN ->
 * UP or DOWN), so traffic starts as soon as the first round is done. A probe
 * is good when it connects, and the status line arrives within
 * health_timeout with a status in health_status. Every transition is logged
 * once with its reason. Servers of groups with health_check off are UP
 * from the start and never probed.
 */
#ifndef MP_HEALTH_H
#define MP_HEALTH_H

#include <stddef.h>

#include "config.h"
#include "shm.h"

/*
 * Runs the checker until the master goes away or sends SIGTERM. Sets
 * shm->health_ready once every probed server has had its first result.
 * Never returns.
 */
_Noreturn void health_run(const struct config *cfg, struct shm *shm);

/*
 * Reads the status code from the start of a response in <buf>[0..<len>):
 * "HTTP/1.x NNN". Returns the code, 0 when more bytes are needed, or -1
 * when it is not an HTTP/1.x status line.
 */
int health_parse_status(const char *buf, size_t len);

#endif
