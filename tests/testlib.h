/*
 * testlib: what the integration suites share. Starting real processes
 * (build/testapp upstreams, the real daemon on a config in a temp dir),
 * stopping them by PID (always: an atexit hook and PR_SET_PDEATHSIG cover a
 * failed assertion), and small raw-socket HTTP client helpers.
 *
 * Everything binds 127.0.0.1 port 0 and reads the port back: the testapp
 * prints "PORT n", the daemon logs "listening on ... (port n)".
 */
#ifndef MP_TESTLIB_H
#define MP_TESTLIB_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tl_proc {
    pid_t pid;
    int port;
};

struct tl_proxy {
    pid_t pid;
    int port;       /* the first proxy listener's */
    int admin_port; /* the [admin] listener's, 0 if none */
    char dir[128];  /* temp dir holding the files below */
    char conf[192];
    char errlog[192];
    char acclog[192];
};

/* The build directory (MP_BUILD, default "build"). */
const char *tl_build(void);

/* Starts build/testapp -n <name> on an ephemeral port. */
void tl_app_start(struct tl_proc *p, const char *name);

/* The same on <port> (0: ephemeral), answering "/" after <delay_ms> (testapp -d). */
void tl_app_start_opts(struct tl_proc *p, const char *name, int port, int delay_ms);

/* The same serving HTTPS with <cert> and <key> (testapp --tls); NULL <cert>: plain. */
void tl_app_start_tls(struct tl_proc *p, const char *name, int port, int delay_ms,
                      const char *cert, const char *key);

/*
 * Writes a config and starts build/miniproxyd on it. The file begins with
 * "[proxy]", listen on 127.0.0.1:0, error and access logs in the temp dir
 * and log_level = debug; <fmt> continues the [proxy] section (it must name
 * `upstream =` and define the groups). Waits until the daemon listens.
 */
void tl_proxy_start(struct tl_proxy *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Writes the config file of <p> anew (same preamble as tl_proxy_start,
 * <fmt> continuing [proxy]), e.g. before sending SIGHUP.
 */
void tl_proxy_write_conf(struct tl_proxy *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Runs miniproxyd with <args> (e.g. "-t -c FILE"); returns its exit status, output in <out>. */
int tl_proxy_cmd(const char *args, char *out, size_t cap);

/* SIGTERM, wait up to 5 s, then SIGKILL; reaps. Returns the wait status. */
int tl_stop(pid_t pid);

/* A blocking client socket connected to 127.0.0.1:<port>, with 10 s I/O timeouts. */
int tl_connect(int port);

/* Writes all of <s>[0..<len>); returns 0 or -1. */
int tl_send(int fd, const void *s, size_t len);
int tl_send_str(int fd, const char *s);

struct tl_resp {
    int status;
    char head[16384]; /* the response head, NUL-terminated */
    char *body;       /* malloc'd, NUL-terminated; free with tl_resp_free */
    size_t body_len;
    bool chunked;
    bool closed; /* the server closed after the response (close-delimited or EOF seen) */
};

/*
 * Reads one response from <fd> (the request being <head_req> or not: no
 * body then). Returns 0, or -1 on EOF/timeout/garbage before a full one.
 */
int tl_read_response(int fd, bool head_req, struct tl_resp *r);
void tl_resp_free(struct tl_resp *r);

/* A header's value in r->head (case-insensitive), copied to <out>; false if absent. */
bool tl_resp_header(const struct tl_resp *r, const char *name, char *out, size_t cap);

/* One request on a fresh connection; returns the status, body (malloc'd) in <r>. */
int tl_request(int port, const char *raw, struct tl_resp *r);

/* tl_request() that keeps only the answer's body length, in <*body_len>; -1: no answer. */
int tl_request_len(int port, const char *raw, size_t *body_len);

/* Runs a shell command; returns its exit status; stdout in <out> (NUL-terminated). */
int tl_sh(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Waits up to <ms> for <path> to contain <needle>; returns true if it does. */
bool tl_file_waitfor(const char *path, const char *needle, int ms);

/* Counts occurrences of <needle> in <path>. */
int tl_file_count(const char *path, const char *needle);

/* Reads testapp /stats: accepted connections and requests, minus the /stats call itself. */
void tl_app_stats(int port, long *conns, long *reqs);

/*
 * A TCP socket on 127.0.0.1, on an ephemeral port (stored in <port>):
 * listening with <backlog>, or only bound when <backlog> is negative
 * (connecting to it is then refused). Returns the fd.
 */
int tl_listen_local(int backlog, int *port);

/*
 * A loopback port nobody listens on, reserved: a socket stays bound to it
 * (not listening) until the test process exits, so connecting is refused
 * and no other bind(0) can be handed the same port meanwhile.
 */
int tl_dead_port(void);

/* Which testapp instance answered "hello from aN": N, or 0 for anything else. */
int tl_who(const struct tl_resp *r);

/* Stops the proxy and the <n> apps (those with a pid) by PID, and forgets them. */
void tl_stop_all(struct tl_proxy *px, struct tl_proc *apps, int n);

/* Runs suite <s> (freeing it); returns the process exit status: 0 when all passed. */
int tl_run(Suite *s);

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t tl_now_ms(void);

/* Resident set size (VmRSS) of <pid> in KiB, or -1. */
long tl_rss_kb(pid_t pid);

/* True when <pid> runs (exists and is not a zombie). */
bool tl_pid_alive(pid_t pid);

/* PIDs of the children of <pid> (from /proc); returns how many were stored. */
int tl_children(pid_t pid, pid_t *out, int max);

/*
 * A loopback port free just now: bound to port 0, read back, closed. For a
 * config that must name a port (a second listener, another instance).
 */
int tl_free_port(void);

/* Whether some socket is in LISTEN on 127.0.0.1:<port> or *:<port> (/proc/net/tcp). */
bool tl_port_listening(int port);

/* Connects to 127.0.0.1:<port> and closes: 0 when it connected, else the errno. */
int tl_connect_errno(int port);

/* How many of <pid>'s descriptors (/proc/PID/fd links) contain <needle>. */
int tl_fd_count(pid_t pid, const char *needle);

/* How many lines of /proc/<pid>/maps contain <needle>. */
int tl_maps_count(pid_t pid, const char *needle);

/*
 * An attacker process: <n> connections from 127.0.0.2 to 127.0.0.1:<port>
 * that trickle a request head one byte every <gap_ms>, reconnecting when the
 * proxy cuts them, for <dur_ms>; it exits 0. Returns its pid (stop it by
 * that pid).
 */
pid_t tl_slowloris(int port, int n, int gap_ms, int dur_ms);

/*
 * Makes the test certificates (tests/tls_certs.sh; the suites run from the
 * top of the tree) in a new directory "/tmp/<name>.XXXXXX", whose path goes
 * into <dir> (<len> bytes). For main(), before the suite runs: it uses no
 * Check assertion. Returns 0, or -1 after saying why on stderr.
 */
int tl_certs_make(char *dir, size_t len, const char *name);

/* Removes a directory tl_certs_make() made, with what is in it. */
void tl_certs_remove(const char *dir);

/* FNV-1a 64 of the file <path> (testpattern.h's hash), and its length in <*len>. */
uint64_t tl_fnv_file(const char *path, uint64_t *len);

#endif
