/*
 * admin: the admin listener's endpoints (/status, /status.json, /metrics),
 * served by the admin worker one request per connection. Rendering is
 * status.c's; this is the HTTP side.
 */
#ifndef MP_ADMIN_H
#define MP_ADMIN_H

#include "config.h"
#include "conn.h"
#include "http.h"
#include "shm.h"

/*
 * Answers <req> on <c>: GET or HEAD of a status page rendered from <shm>,
 * 405 for another method, 404 for another path, 500 when rendering fails;
 * always with Connection: close (the caller closes).
 */
void admin_serve(const struct config *cfg, struct shm *shm, struct conn *c,
                 const struct http_request *req);

#endif
