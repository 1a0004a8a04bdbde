/*
 * alog: the access-log line of one request, in [proxy] access_log_format:
 *   main      the classic line, then " route=NAME rid=ID" ("-" for none):
 *             CLIENT - - [TIME] "METHOD TARGET HTTP/1.x" STATUS BYTES upstream=ADDR
 *             ustatus=N rt=SECONDS urt=SECONDS route=NAME rid=ID, and on TLS
 *             " tls=PROTOCOL cipher=NAME sni=NAME|- resumed=0|1"
 *   combined  Apache's and nginx's combined format, which log tools parse:
 *             CLIENT - - [TIME] "REQUEST" STATUS BYTES "REFERER" "USER-AGENT"
 *   json      one object per line: time (ISO 8601), client, method, target,
 *             protocol, request (the line as logged), status, bytes, route,
 *             upstream, upstream_status, request_time, upstream_time (seconds),
 *             request_id, user_agent, referer, tls_version, tls_cipher, sni,
 *             tls_resumed; null for what is not known (the TLS fields on plain HTTP).
 * Whatever a client sent is escaped so that it cannot break or forge a
 * line: in main and combined, bytes outside printable ASCII, '"' and '\'
 * as \xHH (nginx's escaping); in json, as JSON escapes, bytes >= 0x7f as
 * \u00XX (so each line is valid JSON whatever the encoding). Pure: no I/O.
 */
#ifndef MP_ALOG_H
#define MP_ALOG_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"

/* The longest line; a longer one is cut (and still ends with '\n'; json: still an object). */
#define ALOG_LINE_MAX 4096

/*
 * Writes the line for <e>, from client address <client>, at clock_us()
 * <now_us>, into <out> (<cap> >= 256), ending with '\n'. Returns its length.
 */
size_t alog_line(enum cfg_log_format fmt, const char *client, const struct conn_log_entry *e,
                 int64_t now_us, char *out, size_t cap);

/* "2026-12-01T09:10:00+00:00", local time, cached per second; for json lines. */
const char *alog_time_iso8601(void);

#endif
