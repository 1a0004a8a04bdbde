/*
 * master: owns the listening sockets, the shared memory and the children.
 * It never touches client traffic. Signal handlers only set flags; the
 * master's loop waits in ppoll() with the signals unblocked and does the
 * work (nginx's ngx_master_process_cycle, with a timeout for respawn
 * back-off).
 */
#ifndef MP_MASTER_H
#define MP_MASTER_H

#include "config.h"

/*
 * Runs the master with the validated <cfg> (read from <path>, which SIGHUP
 * reads again), taking ownership of <cfg>. Returns the process exit status
 * after a stop: 0, or 1 when start-up failed.
 */
int master_run(struct config *cfg, const char *path);

#endif
