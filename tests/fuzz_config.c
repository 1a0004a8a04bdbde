/*
 * fuzz_config: libFuzzer target for the configuration loader.
 *
 * The input is a whole INI file: it goes through cfg_load_string(), that is
 * inih, the per-key setters and the validation pass, and the result through
 * cfg_free(). Checked: a refused file always comes with a message that names
 * the file ("fuzz.ini:..."), a message never overruns its buffer, and an
 * accepted file has what the daemon relies on (a listener, a known
 * `upstream =` group, a server in every group).
 *
 * Name resolution: cfg_parse_addr() resolves host names with getaddrinfo(),
 * which would make the fuzzer wait on the resolver for every mutated name.
 * This file interposes getaddrinfo() and adds AI_NUMERICHOST, so numeric
 * addresses are parsed exactly as in the daemon and names fail at once with
 * EAI_NONAME (the "cannot resolve" path), with no DNS and no /etc/hosts.
 */
#include "config.h"

#include <dlfcn.h>
#include <netdb.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond)                                                                         \
    do {                                                                                          \
        if (!(cond))                                                                              \
            abort();                                                                              \
    } while (0)

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

/* The C library's getaddrinfo(), restricted to numeric hosts (see the top). */
int
getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
            struct addrinfo **res)
{
    static gai_fn real;
    struct addrinfo h;

    if (real == NULL) {
        real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
        FUZZ_ASSERT(real != NULL);
    }
    if (hints != NULL)
        h = *hints;
    else
        memset(&h, 0, sizeof(h));
    h.ai_flags |= AI_NUMERICHOST;
    return real(node, service, &h, res);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a guard after the message buffer: cfg_load_string must stay inside errlen */
    static char err[256 + 16];
    char *text = malloc(size + 1);
    struct config *cfg;

    FUZZ_ASSERT(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    memset(err, 'G', sizeof(err));
    cfg = cfg_load_string(text, "fuzz.ini", err, 256);
    for (size_t i = 256; i < sizeof(err); i++)
        FUZZ_ASSERT(err[i] == 'G');
    if (cfg == NULL) {
        FUZZ_ASSERT(memchr(err, '\0', 256) != NULL);
        FUZZ_ASSERT(strncmp(err, "fuzz.ini", 8) == 0);
    } else {
        FUZZ_ASSERT(cfg->nlisteners >= 1 && cfg->listeners != NULL);
        FUZZ_ASSERT(cfg->ngroups >= 1 && cfg->group < cfg->ngroups);
        for (size_t i = 0; i < cfg->ngroups; i++)
            FUZZ_ASSERT(cfg->groups[i].nservers >= 1 && cfg->groups[i].servers != NULL);
    }
    cfg_free(cfg);
    free(text);
    return 0;
}
