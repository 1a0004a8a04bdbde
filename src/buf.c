/*
 * buf: range-checked number parsing, case-insensitive comparison. See
 * include/buf.h for the contracts.
 */
#include "buf.h"

#include <string.h>

#define BUF_DAY_MS (24 * 60 * 60 * 1000ULL)
#define BUF_TIB (1024ULL * 1024 * 1024 * 1024)

int
buf_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (s == NULL || len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned d;

        if (s[i] < '0' || s[i] > '9')
            return -1;
        d = (unsigned)(s[i] - '0');
        /* v * 10 + d > max, written so that it cannot overflow */
        if (max < d || v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Length of the leading run of decimal digits in <s>. */
static size_t
buf_digits(const char *s)
{
    size_t n = 0;

    while (s[n] >= '0' && s[n] <= '9')
        n++;
    return n;
}

int
buf_parse_duration_ms(const char *s, int64_t *out_ms)
{
    size_t n;
    uint64_t v, mult;
    const char *unit;

    if (s == NULL)
        return -1;
    n = buf_digits(s);
    unit = s + n;
    if (strcmp(unit, "") == 0 || strcmp(unit, "s") == 0)
        mult = 1000;
    else if (strcmp(unit, "ms") == 0)
        mult = 1;
    else if (strcmp(unit, "m") == 0)
        mult = 60 * 1000;
    else if (strcmp(unit, "h") == 0)
        mult = 60 * 60 * 1000;
    else
        return -1;
    if (buf_parse_u64(s, n, BUF_DAY_MS / mult, &v) == -1)
        return -1;
    *out_ms = (int64_t)(v * mult);
    return 0;
}

int
buf_parse_size(const char *s, uint64_t *out)
{
    size_t n;
    uint64_t v, mult;
    const char *unit;

    if (s == NULL)
        return -1;
    n = buf_digits(s);
    unit = s + n;
    if (unit[0] == '\0')
        mult = 1;
    else if (unit[1] != '\0')
        return -1;
    else if (unit[0] == 'k' || unit[0] == 'K')
        mult = 1024;
    else if (unit[0] == 'm' || unit[0] == 'M')
        mult = 1024 * 1024;
    else if (unit[0] == 'g' || unit[0] == 'G')
        mult = 1024 * 1024 * 1024;
    else
        return -1;
    if (buf_parse_u64(s, n, BUF_TIB / mult, &v) == -1)
        return -1;
    *out = v * mult;
    return 0;
}

bool
buf_ieq(const char *a, size_t alen, const char *b)
{
    /* ASCII only, whatever the locale: header names and tokens are ASCII. */
    for (size_t i = 0; i < alen; i++) {
        unsigned char ca = (unsigned char)a[i], cb = (unsigned char)b[i];

        if (cb == '\0')
            return false;
        if (ca >= 'A' && ca <= 'Z')
            ca = (unsigned char)(ca + 32);
        if (cb >= 'A' && cb <= 'Z')
            cb = (unsigned char)(cb + 32);
        if (ca != cb)
            return false;
    }
    return b[alen] == '\0';
}
