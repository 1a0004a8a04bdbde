/*
 * tunnel: the bytes of an upgraded connection (a WebSocket after its 101),
 * both ways, until both sides have closed, one of them fails, or nothing
 * moved either way for the idle timeout. It knows nothing of WebSocket
 * frames: it is a byte pipe. A half-close is passed on: the side that sent
 * its FIN gets our shutdown(SHUT_WR) towards the other, which may go on
 * sending. The client side is read and written only through conn.c (so a
 * TLS layer works unchanged), the upstream through upconn.c (plain or
 * TLS: a half-close towards a TLS upstream is its close_notify); every
 * wait is one net_poll() over both sockets.
 */
#ifndef MP_TUNNEL_H
#define MP_TUNNEL_H

#include <stdint.h>

#include "conn.h"
#include "upconn.h"

/* How a tunnel ended. */
enum tunnel_end {
    TUNNEL_CLOSED,          /* both sides closed (each FIN passed on) */
    TUNNEL_IDLE,            /* nothing moved either way for the idle timeout */
    TUNNEL_CLIENT_FAILED,   /* reading from or writing to the client failed (reset...) */
    TUNNEL_UPSTREAM_FAILED, /* the same with the upstream */
};

/* One tunnel: set the inputs, call tunnel_run(), read the results. */
struct tunnel {
    struct conn *client;
    struct upconn *up;
    int64_t idle_ms; /* tunnel_timeout */
    char *up_buf;    /* client -> upstream, NET_IO_BUF bytes */
    char *down_buf;  /* upstream -> client, NET_IO_BUF bytes */
    /* results */
    uint64_t up_bytes;   /* bytes the upstream took from the client */
    uint64_t down_bytes; /* bytes the client took from the upstream */
    int err;             /* errno of a failure */
};

/* Runs the tunnel to its end; the caller closes both sockets. */
enum tunnel_end tunnel_run(struct tunnel *t);

/* "closed", "idle", ... for the log. */
const char *tunnel_end_name(enum tunnel_end e);

#endif
