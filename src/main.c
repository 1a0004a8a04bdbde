/*
 * main: the command line.
 *   miniproxyd [-c FILE]          run (master + workers)
 *   miniproxyd -t -c FILE         validate the configuration and exit
 *   miniproxyd -T -c FILE         validate it and print the effective
 *                                 configuration (every key, defaults filled
 *                                 in), as nginx -T
 *   miniproxyd -s SIGNAL -c FILE  signal the running master, as nginx -s:
 *                                 reload (HUP), stop (TERM), quit (QUIT),
 *                                 reopen (USR1); the master is found through
 *                                 FILE's pid_file
 *   miniproxyd -v | -h
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "master.h"
#include "pidfile.h"

#define DEFAULT_CONFIG "/etc/miniproxyd/miniproxy.ini"

static void
usage(FILE *f)
{
    fprintf(f, "usage: miniproxyd [-t | -T] [-c FILE]\n"
               "       miniproxyd -s reload|stop|quit|reopen [-c FILE]\n"
               "       miniproxyd -v | -h\n"
               "  -c FILE    configuration file (default " DEFAULT_CONFIG ")\n"
               "  -t         check the configuration and exit\n"
               "  -T         check it, print the effective configuration (every key,\n"
               "             defaults filled in) and exit\n"
               "  -s SIGNAL  send SIGNAL to the master named by FILE's pid_file and exit:\n"
               "             reload (SIGHUP), stop (SIGTERM, fast), quit (SIGQUIT, graceful),\n"
               "             reopen (SIGUSR1, reopen the log files)\n"
               "  -v         print the version and exit\n"
               "  -h         this help\n");
}

/* -s names, as nginx's */
static const struct {
    const char *name;
    int sig;
} signals[] = {
    {"reload", SIGHUP},
    {"stop", SIGTERM},
    {"quit", SIGQUIT},
    {"reopen", SIGUSR1},
};

/* -T: one line of the dump on stdout. */
static void
print_line(void *arg, const char *line)
{
    fprintf(arg, "%s\n", line);
}

/*
 * -s: sends <sig> to the master whose pid is in <cfg>'s pid_file (<path>
 * is the config file, for messages). Returns the exit status; prints
 * nothing on success.
 */
static int
signal_master(const struct config *cfg, const char *path, int sig)
{
    char err[1024];
    pid_t pid;

    if (cfg->pid_file == NULL) {
        fprintf(stderr, "miniproxyd: %s has no pid_file; cannot find the master\n", path);
        return 1;
    }
    pid = pidfile_read(cfg->pid_file, err, sizeof(err));
    if (pid == -1) {
        fprintf(stderr, "miniproxyd: %s\n", err);
        return 1;
    }
    if (kill(pid, 0) == -1) {
        if (errno == ESRCH)
            fprintf(stderr, "miniproxyd: no running master with pid %ld (from %s)\n", (long)pid,
                    cfg->pid_file);
        else
            fprintf(stderr, "miniproxyd: cannot signal pid %ld (from %s): %s\n", (long)pid,
                    cfg->pid_file, strerror(errno));
        return 1;
    }
    if (kill(pid, sig) == -1) {
        fprintf(stderr, "miniproxyd: cannot signal pid %ld (from %s): %s\n", (long)pid,
                cfg->pid_file, strerror(errno));
        return 1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    const char *path = DEFAULT_CONFIG;
    int test = 0, dump = 0, sig = 0, opt;
    char err[1024];

    while ((opt = getopt(argc, argv, "c:tTs:vh")) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 't':
            test = 1;
            break;
        case 'T':
            test = dump = 1;
            break;
        case 's':
            sig = 0;
            for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
                if (strcmp(optarg, signals[i].name) == 0)
                    sig = signals[i].sig;
            if (sig == 0) {
                fprintf(stderr, "miniproxyd: unknown signal \"%s\" (reload|stop|quit|reopen)\n",
                        optarg);
                usage(stderr);
                return 2;
            }
            break;
        case 'v':
            printf("miniproxyd %s\n", MP_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || (test && sig != 0)) {
        usage(stderr);
        return 2;
    }

    struct config *cfg = cfg_load(path, err, sizeof(err));
    if (cfg == NULL) {
        fprintf(stderr, "miniproxyd: %s\n", err);
        if (test)
            fprintf(stderr, "miniproxyd: configuration file %s test failed\n", path);
        return 1;
    }
    if (dump) {
        cfg_dump(cfg, print_line, stdout);
        if (fflush(stdout) == EOF || ferror(stdout)) {
            fprintf(stderr, "miniproxyd: writing the configuration: %s\n", strerror(errno));
            cfg_free(cfg);
            return 1;
        }
    }
    if (test) {
        /* on stderr with -T, so that stdout is the configuration alone */
        fprintf(dump ? stderr : stdout, "miniproxyd: configuration file %s test is successful\n",
                path);
        cfg_free(cfg);
        return 0;
    }
    if (sig != 0) {
        int rc = signal_master(cfg, path, sig);

        cfg_free(cfg);
        return rc;
    }
    return master_run(cfg, path); /* it owns <cfg> from here */
}
