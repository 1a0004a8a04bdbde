/*
 * testlib: processes and HTTP client helpers for the integration suites.
 * See testlib.h.
 */
#include "testlib.h"
#include "testpattern.h"

#include <arpa/inet.h>
#include <check.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS 64

static pid_t procs[MAX_PROCS];
static int nprocs;
static bool hooked;

static void
kill_all(void)
{
    for (int i = 0; i < nprocs; i++) {
        if (procs[i] > 0) {
            kill(procs[i], SIGKILL);
            waitpid(procs[i], NULL, 0);
            procs[i] = 0;
        }
    }
}

static void
track(pid_t pid)
{
    if (!hooked) {
        atexit(kill_all);
        hooked = true;
    }
    for (int i = 0; i < nprocs; i++)
        if (procs[i] == 0) {
            procs[i] = pid;
            return;
        }
    ck_assert_int_lt(nprocs, MAX_PROCS);
    procs[nprocs++] = pid;
}

static void
untrack(pid_t pid)
{
    for (int i = 0; i < nprocs; i++)
        if (procs[i] == pid)
            procs[i] = 0;
}

int64_t
tl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *
tl_build(void)
{
    const char *b = getenv("MP_BUILD");
    return b != NULL && *b != '\0' ? b : "build";
}

/* fork + exec <argv> with stdout to <out_fd> (or /dev/null when -1). */
static pid_t
spawn(char *const argv[], int out_fd)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_msg(pid != -1, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* Dies with the test process, whatever way that ends. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        if (out_fd != -1) {
            dup2(out_fd, STDOUT_FILENO);
            close(out_fd);
        }
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], argv);
        _exit(127);
    }
    track(pid);
    return pid;
}

void
tl_app_start(struct tl_proc *p, const char *name)
{
    tl_app_start_opts(p, name, 0, 0);
}

void
tl_app_start_opts(struct tl_proc *p, const char *name, int port, int delay_ms)
{
    tl_app_start_tls(p, name, port, delay_ms, NULL, NULL);
}

void
tl_app_start_tls(struct tl_proc *p, const char *name, int port, int delay_ms, const char *cert,
                 const char *key)
{
    char bin[256], portarg[16], delay[16];
    int pfd[2];
    snprintf(bin, sizeof(bin), "%s/testapp", tl_build());
    snprintf(portarg, sizeof(portarg), "%d", port);
    snprintf(delay, sizeof(delay), "%d", delay_ms);
    char *argv[] = {bin,  "-l",  "127.0.0.1", "-p",         portarg,     "-n", (char *)name,
                    "-d", delay, "--tls",     (char *)cert, (char *)key, NULL};
    if (cert == NULL)
        argv[9] = NULL; /* plain HTTP */

    ck_assert(pipe(pfd) == 0);
    p->pid = spawn(argv, pfd[1]);
    close(pfd[1]);
    char line[64] = {0};
    size_t n = 0;
    struct timeval tv = {5, 0};
    fd_set rs;
    while (n < sizeof(line) - 1 && strchr(line, '\n') == NULL) {
        FD_ZERO(&rs);
        FD_SET(pfd[0], &rs);
        ck_assert_msg(select(pfd[0] + 1, &rs, NULL, NULL, &tv) == 1, "testapp %s: no PORT line",
                      name);
        ssize_t r = read(pfd[0], line + n, sizeof(line) - 1 - n);
        ck_assert_msg(r > 0, "testapp %s exited before listening", name);
        n += (size_t)r;
    }
    close(pfd[0]);
    ck_assert_msg(sscanf(line, "PORT %d", &p->port) == 1, "testapp said %s", line);
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

static void
write_conf(struct tl_proxy *p, const char *fmt, va_list ap)
{
    char body[8192], text[10240];
    vsnprintf(body, sizeof(body), fmt, ap);
    /* The test's own access_log (e.g. off) wins over ours. */
    char acc[256] = "";
    if (strstr(body, "access_log =") == NULL)
        snprintf(acc, sizeof(acc), "access_log = %s\n", p->acclog);
    snprintf(text, sizeof(text),
             "[proxy]\nlisten = 127.0.0.1:0\nerror_log = %s\n%slog_level = debug\n%s", p->errlog,
             acc, body);
    /* Written aside and renamed: a reload never reads a half-written file. */
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s.tmp", p->conf);
    write_file(tmp, text);
    ck_assert(rename(tmp, p->conf) == 0);
}

void
tl_proxy_write_conf(struct tl_proxy *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    write_conf(p, fmt, ap);
    va_end(ap);
}

void
tl_proxy_start(struct tl_proxy *p, const char *fmt, ...)
{
    char bin[256];
    va_list ap;

    snprintf(p->dir, sizeof(p->dir), "/tmp/mp-test-XXXXXX");
    ck_assert(mkdtemp(p->dir) != NULL);
    snprintf(p->conf, sizeof(p->conf), "%s/miniproxy.ini", p->dir);
    snprintf(p->errlog, sizeof(p->errlog), "%s/error.log", p->dir);
    snprintf(p->acclog, sizeof(p->acclog), "%s/access.log", p->dir);
    va_start(ap, fmt);
    write_conf(p, fmt, ap);
    va_end(ap);

    snprintf(bin, sizeof(bin), "%s/miniproxyd", tl_build());
    char *argv[] = {bin, "-c", p->conf, NULL};
    p->pid = spawn(argv, -1);

    /* The master logs each port it bound, then "started" once it serves. */
    int64_t deadline = tl_now_ms() + 5000;
    p->port = p->admin_port = 0;
    bool started = false;
    while (tl_now_ms() < deadline) {
        FILE *f = fopen(p->errlog, "r");
        char line[1024];
        while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
            char *s = strstr(line, "(port ");
            if (s != NULL && strstr(line, "listening on") != NULL) {
                if (strstr(line, "for /status") != NULL)
                    p->admin_port = atoi(s + 6);
                else if (p->port == 0)
                    p->port = atoi(s + 6);
            }
            if (strstr(line, "started:") != NULL)
                started = true;
        }
        if (f != NULL)
            fclose(f);
        if (p->port > 0 && started)
            return;
        int st;
        ck_assert_msg(waitpid(p->pid, &st, WNOHANG) == 0, "miniproxyd exited at start-up");
        usleep(10 * 1000);
    }
    ck_abort_msg("miniproxyd did not start within 5 s");
}

int
tl_proxy_cmd(const char *args, char *out, size_t cap)
{
    return tl_sh(out, cap, "%s/miniproxyd %s 2>&1", tl_build(), args);
}

int
tl_stop(pid_t pid)
{
    int st = 0;
    if (pid <= 0)
        return -1;
    kill(pid, SIGTERM);
    int64_t deadline = tl_now_ms() + 5000;
    while (tl_now_ms() < deadline) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid || (r == -1 && errno == ECHILD)) {
            untrack(pid);
            return st;
        }
        usleep(5 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    untrack(pid);
    return st;
}

int
tl_connect(int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert(fd != -1);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ck_assert_msg(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0, "connect %d: %s", port,
                  strerror(errno));
    return fd;
}

int
tl_send(int fd, const void *s, size_t len)
{
    const char *p = s;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0) {
            if (n == -1 && errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int
tl_send_str(int fd, const char *s)
{
    return tl_send(fd, s, strlen(s));
}

/* A small buffered reader over a socket, for parsing responses. */
struct rd {
    int fd;
    char buf[65536];
    size_t start, len;
};

static int
rd_fill(struct rd *r)
{
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->len - r->start);
        r->len -= r->start;
        r->start = 0;
    }
    if (r->len == sizeof(r->buf))
        return -1;
    ssize_t n = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, 0);
    if (n <= 0)
        return n == 0 ? 0 : -1;
    r->len += (size_t)n;
    return 1;
}

/* Reads a CRLF line (without the CRLF) into <out>; -1 on EOF/overlong. */
static int
rd_line(struct rd *r, char *out, size_t cap)
{
    for (;;) {
        char *p = memmem(r->buf + r->start, r->len - r->start, "\r\n", 2);
        if (p != NULL) {
            size_t n = (size_t)(p - (r->buf + r->start));
            if (n >= cap)
                return -1;
            memcpy(out, r->buf + r->start, n);
            out[n] = '\0';
            r->start += n + 2;
            return 0;
        }
        if (rd_fill(r) <= 0)
            return -1;
    }
}

static int
body_append(struct tl_resp *resp, size_t *cap, const char *p, size_t n)
{
    if (resp->body_len + n + 1 > *cap) {
        size_t nc = (*cap ? *cap : 4096);
        while (nc < resp->body_len + n + 1)
            nc *= 2;
        char *nb = realloc(resp->body, nc);
        if (nb == NULL)
            return -1;
        resp->body = nb;
        *cap = nc;
    }
    memcpy(resp->body + resp->body_len, p, n);
    resp->body_len += n;
    resp->body[resp->body_len] = '\0';
    return 0;
}

/* Reads exactly <n> body bytes. */
static int
rd_body(struct rd *r, struct tl_resp *resp, size_t *cap, uint64_t n)
{
    while (n > 0) {
        if (r->len == r->start && rd_fill(r) <= 0)
            return -1;
        size_t take = r->len - r->start;
        if (take > n)
            take = (size_t)n;
        if (body_append(resp, cap, r->buf + r->start, take) == -1)
            return -1;
        r->start += take;
        n -= take;
    }
    return 0;
}

/*
 * One reader per fd is kept across calls so pipelined/keep-alive responses
 * that arrived in one recv() are not lost between tl_read_response calls.
 */
static struct rd *
reader_for(int fd)
{
    static struct rd readers[8];
    static int fds[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
    static int next;
    for (int i = 0; i < 8; i++)
        if (fds[i] == fd)
            return &readers[i];
    int i = next++ % 8;
    fds[i] = fd;
    readers[i].fd = fd;
    readers[i].start = readers[i].len = 0;
    return &readers[i];
}

static int read_response(int fd, bool head_req, struct tl_resp *resp);

int
tl_read_response(int fd, bool head_req, struct tl_resp *resp)
{
    int rc = read_response(fd, head_req, resp);
    if (rc == -1)
        tl_resp_free(resp); /* nothing to hand back: the caller frees nothing */
    return rc;
}

static int
read_response(int fd, bool head_req, struct tl_resp *resp)
{
    struct rd *r = reader_for(fd);
    char line[8192];
    size_t cap = 0, hl = 0;
    long long cl = -1;

    memset(resp, 0, sizeof(*resp));
    for (;;) { /* skip interim 1xx responses */
        if (rd_line(r, line, sizeof(line)) == -1)
            return -1;
        if (sscanf(line, "HTTP/1.%*d %d", &resp->status) != 1)
            return -1;
        hl = (size_t)snprintf(resp->head, sizeof(resp->head), "%s\r\n", line);
        for (;;) {
            if (rd_line(r, line, sizeof(line)) == -1)
                return -1;
            if (line[0] == '\0')
                break;
            hl += (size_t)snprintf(resp->head + hl, sizeof(resp->head) - hl, "%s\r\n", line);
            if (hl >= sizeof(resp->head))
                return -1;
            if (strncasecmp(line, "content-length:", 15) == 0)
                cl = atoll(line + 15);
            if (strncasecmp(line, "transfer-encoding:", 18) == 0 && strcasestr(line, "chunked"))
                resp->chunked = true;
        }
        if (resp->status >= 200 || resp->status == 101)
            break;
        cl = -1;
        resp->chunked = false;
    }
    body_append(resp, &cap, "", 0);
    if (head_req || resp->status == 204 || resp->status == 304)
        return 0;
    if (resp->chunked) {
        for (;;) {
            if (rd_line(r, line, sizeof(line)) == -1)
                return -1;
            unsigned long long n = strtoull(line, NULL, 16);
            if (n == 0)
                break;
            if (rd_body(r, resp, &cap, n) == -1 || rd_line(r, line, sizeof(line)) == -1)
                return -1;
        }
        do {
            if (rd_line(r, line, sizeof(line)) == -1)
                return -1;
        } while (line[0] != '\0');
        return 0;
    }
    if (cl >= 0)
        return rd_body(r, resp, &cap, (uint64_t)cl);
    /* close-delimited */
    for (;;) {
        if (r->len > r->start) {
            body_append(resp, &cap, r->buf + r->start, r->len - r->start);
            r->start = r->len;
        }
        int f = rd_fill(r);
        if (f == 0) {
            resp->closed = true;
            return 0;
        }
        if (f < 0)
            return -1;
    }
}

void
tl_resp_free(struct tl_resp *r)
{
    free(r->body);
    r->body = NULL;
}

bool
tl_resp_header(const struct tl_resp *r, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = strstr(r->head, "\r\n");
    while (p != NULL && p[2] != '\0') {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t n = (size_t)(e - v);
            if (n >= cap)
                n = cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return true;
        }
        p = strstr(p, "\r\n");
    }
    return false;
}

int
tl_request_len(int port, const char *raw, size_t *body_len)
{
    struct tl_resp r;
    int st = tl_request(port, raw, &r);
    *body_len = st == -1 ? 0 : r.body_len;
    if (st != -1)
        tl_resp_free(&r);
    return st;
}

int
tl_request(int port, const char *raw, struct tl_resp *r)
{
    int fd = tl_connect(port);
    bool head = strncmp(raw, "HEAD ", 5) == 0;
    ck_assert(tl_send_str(fd, raw) == 0);
    int rc = tl_read_response(fd, head, r);
    reader_for(fd)->start = reader_for(fd)->len = 0;
    close(fd);
    return rc == 0 ? r->status : -1;
}

int
tl_sh(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    FILE *f = popen(cmd, "r");
    ck_assert_msg(f != NULL, "popen %s", cmd);
    size_t n = 0;
    if (out != NULL && cap > 0) {
        n = fread(out, 1, cap - 1, f);
        out[n] = '\0';
    } else {
        char sink[4096];
        while (fread(sink, 1, sizeof(sink), f) > 0)
            ;
    }
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    size_t cap = 65536, n = 0;
    char *s = malloc(cap);
    size_t r;
    while ((r = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            cap *= 2;
            s = realloc(s, cap);
        }
    }
    s[n] = '\0';
    fclose(f);
    return s;
}

bool
tl_file_waitfor(const char *path, const char *needle, int ms)
{
    int64_t deadline = tl_now_ms() + ms;
    do {
        char *s = slurp(path);
        bool found = s != NULL && strstr(s, needle) != NULL;
        free(s);
        if (found)
            return true;
        usleep(10 * 1000);
    } while (tl_now_ms() < deadline);
    return false;
}

int
tl_file_count(const char *path, const char *needle)
{
    char *s = slurp(path);
    int n = 0;
    for (char *p = s; p != NULL && (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(s);
    return n;
}

void
tl_app_stats(int port, long *conns, long *reqs)
{
    struct tl_resp r;
    ck_assert_int_eq(
        tl_request(port, "GET /stats HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r), 200);
    ck_assert(sscanf(r.body, "connections=%ld requests=%ld", conns, reqs) == 2);
    *conns -= 1;
    *reqs -= 1;
    tl_resp_free(&r);
}

long
tl_rss_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kb;
}

int
tl_children(pid_t pid, pid_t *out, int max)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;
    while (d != NULL && (e = readdir(d)) != NULL && n < max) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t r = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[r] = '\0';
        char *rp = strrchr(buf, ')');
        int ppid;
        char state;
        if (rp != NULL && sscanf(rp + 2, "%c %d", &state, &ppid) == 2 && ppid == pid &&
            state != 'Z')
            out[n++] = atoi(e->d_name);
    }
    if (d != NULL)
        closedir(d);
    return n;
}

bool
tl_pid_alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    size_t r = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[r] = '\0';
    char *rp = strrchr(buf, ')');
    return rp != NULL && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

int
tl_who(const struct tl_resp *r)
{
    int k = 0;
    if (r->status != 200 || r->body == NULL || sscanf(r->body, "hello from a%d", &k) != 1)
        return 0;
    return k;
}

void
tl_stop_all(struct tl_proxy *px, struct tl_proc *apps, int n)
{
    if (px->pid > 0)
        tl_stop(px->pid);
    px->pid = 0;
    for (int i = 0; i < n; i++)
        if (apps[i].pid > 0)
            tl_stop(apps[i].pid);
    memset(apps, 0, (size_t)n * sizeof(*apps));
}

int
tl_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

int
tl_listen_local(int backlog, int *port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert(fd != -1);
    ck_assert(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
    ck_assert(backlog < 0 || listen(fd, backlog) == 0);
    ck_assert(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

int
tl_dead_port(void)
{
    int port;
    (void)tl_listen_local(-1, &port); /* kept open on purpose: it holds the port */
    return port;
}

int
tl_free_port(void)
{
    int port;
    int fd = tl_listen_local(-1, &port);
    close(fd);
    return port;
}

bool
tl_port_listening(int port)
{
    char line[512];
    bool found = false;
    FILE *f = fopen("/proc/net/tcp", "r");
    ck_assert_ptr_nonnull(f);
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        unsigned addr, lport, state;
        /* "  0: 0100007F:1F90 00000000:0000 0A ..." (0A: LISTEN) */
        if (sscanf(line, " %*d: %x:%x %*x:%*x %x", &addr, &lport, &state) == 3)
            found = (int)lport == port && state == 0x0A &&
                    (addr == 0 || addr == htonl(INADDR_LOOPBACK));
    }
    fclose(f);
    return found;
}

int
tl_connect_errno(int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ne(fd, -1);
    int rc = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ? errno : 0;
    close(fd);
    return rc;
}

int
tl_fd_count(pid_t pid, const char *needle)
{
    char dir[64], path[400], target[256];
    struct dirent *e;
    int n = 0;
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    while (d != NULL && (e = readdir(d)) != NULL) {
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        ssize_t len = readlink(path, target, sizeof(target) - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        n += strstr(target, needle) != NULL;
    }
    if (d != NULL)
        closedir(d);
    return n;
}

int
tl_maps_count(pid_t pid, const char *needle)
{
    char path[64], line[1024];
    int n = 0;
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, needle) != NULL;
    if (f != NULL)
        fclose(f);
    return n;
}

/* See testlib.h. */
pid_t
tl_slowloris(int port, int n, int gap_ms, int dur_ms)
{
    pid_t pid = fork();
    ck_assert(pid != -1);
    if (pid != 0)
        return pid;
    signal(SIGTERM, SIG_DFL);
    static const char head[] = "GET / HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    int *fd = calloc((size_t)n, sizeof(int));
    size_t *pos = calloc((size_t)n, sizeof(size_t));
    int64_t end = tl_now_ms() + dur_ms;
    for (int i = 0; i < n; i++)
        fd[i] = -1;
    while (tl_now_ms() < end) {
        for (int i = 0; i < n; i++) {
            if (fd[i] == -1) {
                fd[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
                struct sockaddr_in a = {.sin_family = AF_INET};
                inet_pton(AF_INET, "127.0.0.2", &a.sin_addr);
                bind(fd[i], (struct sockaddr *)&a, sizeof(a));
                struct sockaddr_in d = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
                d.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                connect(fd[i], (struct sockaddr *)&d, sizeof(d));
                pos[i] = 0;
            }
            if (send(fd[i], head + pos[i] % (sizeof(head) - 1), 1, MSG_NOSIGNAL) == -1 &&
                errno != EAGAIN && errno != EINPROGRESS && errno != ENOTCONN) {
                close(fd[i]);
                fd[i] = -1;
                continue;
            }
            pos[i]++;
            char sink[512];
            ssize_t r = recv(fd[i], sink, sizeof(sink), MSG_DONTWAIT);
            if (r == 0 || (r == -1 && errno != EAGAIN)) { /* cut by the proxy: come back */
                close(fd[i]);
                fd[i] = -1;
            }
        }
        usleep((useconds_t)gap_ms * 1000);
    }
    _exit(0);
}

int
tl_certs_make(char *dir, size_t len, const char *name)
{
    char cmd[512];

    snprintf(dir, len, "/tmp/%s.XXXXXX", name);
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "%s: mkdtemp: %s\n", name, strerror(errno));
        return -1;
    }
    snprintf(cmd, sizeof(cmd), "sh tests/tls_certs.sh %s", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "%s: %s failed (run from the top of the tree)\n", name, cmd);
        tl_certs_remove(dir);
        return -1;
    }
    return 0;
}

void
tl_certs_remove(const char *dir)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "rm -rf %s failed\n", dir);
}

uint64_t
tl_fnv_file(const char *path, uint64_t *len)
{
    static char buf[1 << 16];
    uint64_t h = TP_FNV_INIT;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    ck_assert_msg(fd != -1, "%s: %s", path, strerror(errno));
    *len = 0;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        h = tp_fnv1a(h, buf, (size_t)n);
        *len += (uint64_t)n;
    }
    close(fd);
    return h;
}
