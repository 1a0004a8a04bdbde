/*
 * realip: the client's real address behind trusted proxies (nginx's realip
 * module with real_ip_recursive on). When the peer is in [proxy]
 * trusted_proxies, X-Forwarded-For is read from the right: the client is
 * the last entry that is not trusted. If every entry is trusted, the
 * leftmost one is the client; an entry that is not an address ends the
 * walk, and the last trusted address seen is the client (a forged or
 * broken list can name no one beyond it).
 */
#ifndef MP_REALIP_H
#define MP_REALIP_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "http.h"

/* Whether the address <ip> (text, as net_addr_ip() writes it) is in trusted_proxies. */
bool realip_trusted(const struct config *cfg, const char *ip);

/*
 * Writes the client's address for request <req> from peer <peer> into
 * <out> (<cap> >= 64): <peer> itself unless it is trusted. Returns true
 * when the address came from X-Forwarded-For.
 */
bool realip_client(const struct config *cfg, const char *peer, const struct http_request *req,
                   char *out, size_t cap);

#endif
