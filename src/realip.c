/*
 * realip: the client's real address behind trusted proxies. See realip.h.
 */
#include "realip.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"

/* Parses <s>[0..<n>) as an address ("1.2.3.4", "::1", "[::1]:80", "1.2.3.4:80"). */
static bool
parse_ip(const char *s, size_t n, int *family, unsigned char addr[16], char *text, size_t cap)
{
    char tmp[INET6_ADDRSTRLEN + 1];

    while (n > 0 && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n > 0 && s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (rb == NULL)
            return false;
        s++;
        n = (size_t)(rb - s);
    } else {
        const char *c = memchr(s, ':', n);
        if (c != NULL && memchr(c + 1, ':', n - (size_t)(c + 1 - s)) == NULL)
            n = (size_t)(c - s); /* "1.2.3.4:80" */
    }
    if (n == 0 || n >= sizeof(tmp))
        return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (inet_pton(AF_INET, tmp, addr) == 1) {
        *family = AF_INET;
    } else if (inet_pton(AF_INET6, tmp, addr) == 1) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        *family = AF_INET6;
        if (memcmp(addr, mapped, 12) == 0) { /* ::ffff:a.b.c.d is a.b.c.d */
            memmove(addr, addr + 12, 4);
            *family = AF_INET;
        }
    } else {
        return false;
    }
    if (text != NULL)
        inet_ntop(*family, addr, text, (socklen_t)cap);
    return true;
}

static bool
in_trusted(const struct config *cfg, int family, const unsigned char *addr)
{
    for (size_t i = 0; i < cfg->ntrusted_proxies; i++) {
        const struct cfg_cidr *c = &cfg->trusted_proxies[i];
        unsigned full = c->bits / 8, rest = c->bits % 8;

        if (c->family != family || memcmp(c->addr, addr, full) != 0)
            continue;
        if (rest == 0 || ((c->addr[full] ^ addr[full]) & (0xff00 >> rest) & 0xff) == 0)
            return true;
    }
    return false;
}

bool
realip_trusted(const struct config *cfg, const char *ip)
{
    unsigned char addr[16];
    int family;

    if (cfg->ntrusted_proxies == 0 || !parse_ip(ip, strlen(ip), &family, addr, NULL, 0))
        return false;
    return in_trusted(cfg, family, addr);
}

bool
realip_client(const struct config *cfg, const char *peer, const struct http_request *req,
              char *out, size_t cap)
{
    snprintf(out, cap, "%s", peer);
    if (!realip_trusted(cfg, peer))
        return false;
    bool found = false;
    /* X-Forwarded-For lines are one list: walk them from the last, each from its end */
    for (size_t i = req->nheaders; i-- > 0;) {
        const struct http_header *h = &req->headers[i];
        if (!buf_ieq(h->name.p, h->name.len, "x-forwarded-for"))
            continue;
        const char *b = h->value.p, *e = h->value.p + h->value.len;
        while (e > b) {
            const char *c = e;
            while (c > b && c[-1] != ',')
                c--;
            unsigned char addr[16];
            int family;
            char text[64];
            size_t n = (size_t)(e - c);
            e = c > b ? c - 1 : b;
            if (n == 0 || strspn(c, " \t") >= n)
                continue; /* an empty element ("a, , b") is no address, and no one */
            if (!parse_ip(c, n, &family, addr, text, sizeof(text)))
                return found; /* not an address: the last trusted one stands */
            snprintf(out, cap, "%s", text);
            found = true;
            if (!in_trusted(cfg, family, addr))
                return true;
        }
    }
    return found;
}
