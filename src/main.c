/*
 * main: the command line.
 *   miniproxyd [-c FILE]   run (master + workers)
 *   miniproxyd -t -c FILE  validate the configuration and exit
 *   miniproxyd -v | -h
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "master.h"

#define DEFAULT_CONFIG "/etc/miniproxyd/miniproxy.ini"

static void
usage(FILE *f)
{
    fprintf(f, "usage: miniproxyd [-t] [-c FILE]\n"
               "       miniproxyd -v | -h\n"
               "  -c FILE  configuration file (default " DEFAULT_CONFIG ")\n"
               "  -t       check the configuration and exit\n"
               "  -v       print the version and exit\n"
               "  -h       this help\n");
}

int
main(int argc, char **argv)
{
    const char *path = DEFAULT_CONFIG;
    int test = 0, opt;
    char err[1024];

    while ((opt = getopt(argc, argv, "c:tvh")) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 't':
            test = 1;
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
    if (optind != argc) {
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
    if (test) {
        printf("miniproxyd: configuration file %s test is successful\n", path);
        cfg_free(cfg);
        return 0;
    }
    int rc = master_run(cfg, path);
    cfg_free(cfg);
    return rc;
}
