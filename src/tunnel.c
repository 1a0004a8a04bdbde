/*
 * tunnel: an upgraded connection's bytes, both ways. See tunnel.h.
 */
#include "tunnel.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "clock.h"
#include "net.h"
#include "upconn.h"

/* One end of the tunnel: the client (through conn.c) or the upstream (through upconn.c). */
struct side {
    struct conn *client; /* NULL for the upstream */
    struct upconn *up;   /* NULL for the client */
    int fd;
};

/* One direction: bytes read from <src> and not yet written to <dst> are buf[off..len). */
struct dir {
    struct side *src, *dst;
    char *buf;
    size_t off, len;
    bool eof;  /* <src> sent its FIN */
    bool shut; /* ... and it was passed on to <dst> */
    uint64_t bytes;
};

static ssize_t
side_read(struct side *s, char *buf, size_t len)
{
    return s->client != NULL ? conn_read(s->client, buf, len) : upconn_try_read(s->up, buf, len);
}

static ssize_t
side_write(struct side *s, const char *buf, size_t len)
{
    struct iovec iov = {(void *)buf, len};
    return s->client != NULL ? conn_write(s->client, &iov, 1) : upconn_try_writev(s->up, &iov, 1);
}

static void
side_shut(struct side *s)
{
    if (s->client != NULL)
        conn_shutdown_write(s->client);
    else
        upconn_shutdown_write(s->up);
}

/*
 * Rounds of read-then-write a direction makes before the other gets its
 * turn, so a fast sender cannot starve the opposite direction.
 */
#define ROUNDS 4

/*
 * Moves <d> on without waiting. Returns 1 when something moved, 0 when it
 * is blocked, -1 when a side failed (<*failed> says which, errno why).
 */
static int
dir_step(struct dir *d, struct side **failed)
{
    int moved = 0;

    for (int i = 0; i < ROUNDS; i++) {
        if (d->len > d->off) {
            ssize_t n = side_write(d->dst, d->buf + d->off, d->len - d->off);
            if (n == -1) {
                if (errno == EAGAIN)
                    return moved;
                *failed = d->dst;
                return -1;
            }
            d->off += (size_t)n;
            d->bytes += (uint64_t)n;
            moved = 1;
            if (d->off < d->len)
                continue; /* partly written: try the rest, EAGAIN tells when it is full */
            d->off = d->len = 0;
        } else if (!d->eof) {
            ssize_t n = side_read(d->src, d->buf, NET_IO_BUF);
            if (n == -1) {
                if (errno == EAGAIN)
                    return moved;
                *failed = d->src;
                return -1;
            }
            if (n == 0)
                d->eof = true;
            d->len = (size_t)n;
            moved = 1;
        } else if (!d->shut) {
            side_shut(d->dst);
            d->shut = true;
            return 1;
        } else {
            return moved;
        }
    }
    return moved;
}

/*
 * The poll events <s> needs: readable while <in> wants bytes, writable while <out> has some
 * (for a TLS upstream, what its last read or write asked for: a read may need to write).
 */
static short
events_for(const struct side *s, const struct dir *in, const struct dir *out)
{
    short ev = 0;

    if (!in->eof && in->len == 0)
        ev |= s->up != NULL ? upconn_read_events(s->up) : POLLIN;
    if (out->len > out->off)
        ev |= s->up != NULL ? upconn_write_events(s->up) : POLLOUT;
    return ev;
}

enum tunnel_end
tunnel_run(struct tunnel *t)
{
    struct side client = {.client = t->client, .fd = conn_fd(t->client)};
    struct side upstream = {.up = t->up, .fd = t->up->fd};
    struct dir up = {.src = &client, .dst = &upstream, .buf = t->up_buf};
    struct dir down = {.src = &upstream, .dst = &client, .buf = t->down_buf};
    struct side *failed = NULL;
    enum tunnel_end end;
    int64_t last = clock_ms();

    for (;;) {
        int a = dir_step(&up, &failed);
        int b = a == -1 ? -1 : dir_step(&down, &failed);
        if (a == -1 || b == -1) {
            t->err = errno;
            end = failed == &client ? TUNNEL_CLIENT_FAILED : TUNNEL_UPSTREAM_FAILED;
            break;
        }
        if (up.shut && down.shut) {
            end = TUNNEL_CLOSED;
            break;
        }
        if (a > 0 || b > 0) {
            last = clock_ms();
            continue;
        }
        struct pollfd pfd[2] = {
            {.fd = client.fd, .events = events_for(&client, &up, &down)},
            {.fd = upstream.fd, .events = events_for(&upstream, &down, &up)},
        };
        for (int i = 0; i < 2; i++)
            if (pfd[i].events == 0)
                pfd[i].fd = -1; /* nothing to wait for there: its hang-up must not wake us */
        /* A signal (a drain) does not end a tunnel: shutdown_timeout does, by killing us. */
        if (net_poll(pfd, 2, last + t->idle_ms) == -1) {
            /* poll() itself failing (EINVAL, ENOMEM) cannot be told apart: blamed on the client */
            t->err = errno;
            end = errno == ETIMEDOUT ? TUNNEL_IDLE : TUNNEL_CLIENT_FAILED;
            break;
        }
    }
    t->up_bytes = up.bytes;
    t->down_bytes = down.bytes;
    return end;
}

const char *
tunnel_end_name(enum tunnel_end e)
{
    switch (e) {
    case TUNNEL_CLOSED:
        return "closed by both sides";
    case TUNNEL_IDLE:
        return "idle for tunnel_timeout";
    case TUNNEL_CLIENT_FAILED:
        return "client connection failed";
    case TUNNEL_UPSTREAM_FAILED:
        return "upstream connection failed";
    }
    return "invalid";
}
