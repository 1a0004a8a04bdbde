/*
 * admin: the admin endpoints. See admin.h.
 */
#include "admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "status.h"

void
admin_serve(const struct config *cfg, struct shm *shm, struct conn *c,
            const struct http_request *req)
{
    const char *path = req->target.p;
    size_t plen = req->target.len;
    const char *q = memchr(path, '?', plen);
    bool head = req->method.len == 4 && memcmp(req->method.p, "HEAD", 4) == 0;

    if (q != NULL)
        plen = (size_t)(q - path);
    if (!head && !(req->method.len == 3 && memcmp(req->method.p, "GET", 3) == 0)) {
        conn_send_error(c, 405, true);
        return;
    }
    int kind = status_kind_for(path, plen);
    if (kind < 0) {
        conn_send_error(c, 404, true);
        return;
    }
    status_sample(shm, clock_ms());
    size_t cap = status_size_hint(cfg);
    char *body = malloc(cap);
    ssize_t n = body == NULL ? -1 : status_render((enum status_kind)kind, cfg, shm, body, cap);
    if (n < 0) {
        free(body);
        conn_send_error(c, 500, true);
        return;
    }
    char hdr[256];
    int hl = snprintf(hdr, sizeof(hdr),
                      "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zd\r\n"
                      "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                      status_content_type((enum status_kind)kind), n);
    struct iovec iov[2] = {{hdr, (size_t)hl}, {body, head ? 0 : (size_t)n}};
    if (conn_write_all(c, iov, 2) == -1)
        log_debug("%s: admin answer: %s", c->ip, strerror(errno));
    free(body);
}
