/*
 * buf: small shared helpers: range-checked number parsing
 * (integers, durations, sizes), case-insensitive slice comparison and a
 * bounded writer.
 *
 * Nothing here allocates. Parsers return 0 on success and -1 on any
 * malformed or out-of-range input; they never fall back to a default.
 */
#ifndef MP_BUF_H
#define MP_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/*
 * Parses the decimal number in <s>[0..<len>) into <*out>. Only the digits
 * 0-9 are accepted (no sign, no space, no empty string); values above <max>
 * are rejected.
 */
int buf_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out);

/*
 * Parses a NUL-terminated duration: a decimal number followed by "ms", "s"
 * or "m" (a bare number is seconds, as in nginx). Stores milliseconds.
 * Rejects values above one day.
 */
int buf_parse_duration_ms(const char *s, int64_t *out_ms);

/*
 * Parses a NUL-terminated size: a decimal number optionally followed by
 * "k", "m" or "g" (case-insensitive, powers of 1024). Stores bytes. Rejects
 * values above 1 TiB.
 */
int buf_parse_size(const char *s, uint64_t *out);

/* True when <a>[0..<alen>) equals the NUL-terminated <b>, ignoring ASCII case. */
bool buf_ieq(const char *a, size_t alen, const char *b);

/*
 * A bounded writer: appends to <buf>, <cap> bytes at most. A piece that
 * does not fit sets <full> and every later one is dropped, so the caller
 * checks once, at the end. With <count> set nothing is written, <len> only
 * adds up what would be (to size a buffer). Inline: request heads are
 * rewritten with it on every request.
 */
struct buf_out {
    char *buf;
    size_t cap;
    size_t len;
    bool full;
    bool count;
};

static inline void
buf_out_put(struct buf_out *o, const void *s, size_t n)
{
    if (o->full)
        return;
    if (o->count) {
        o->len += n;
        return;
    }
    if (n > o->cap - o->len) {
        o->full = true;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static inline void
buf_out_str(struct buf_out *o, const char *s)
{
    buf_out_put(o, s, strlen(s));
}

/* Appends <v> in decimal (no snprintf(): a status code and a length go out with every response). */
static inline void
buf_out_u64(struct buf_out *o, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    buf_out_put(o, tmp + i, sizeof(tmp) - i);
}

#endif
