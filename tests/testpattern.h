/*
 * testpattern: the deterministic body pattern served by testapp's /bytes and
 * the FNV-1a 64 hash printed by its /sum, shared with the test suites so they
 * can verify bodies that went through the proxy without storing them.
 *
 * Byte <i> of the pattern is (i * 31 + 7) & 0xff. The pattern repeats every
 * 256 bytes, so any window starting at a multiple of 256 is the same bytes.
 *
 * Header-only (static inline) on purpose: testapp.c must build on its own.
 */
#ifndef MP_TESTPATTERN_H
#define MP_TESTPATTERN_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a 64 offset basis and prime: start a hash with tp_fnv1a(TP_FNV_INIT, ...). */
#define TP_FNV_INIT UINT64_C(0xcbf29ce484222325)
#define TP_FNV_PRIME UINT64_C(0x100000001b3)

/* Byte <i> of the pattern (the byte at offset <i> of a /bytes body). */
static inline unsigned char
tp_byte(uint64_t i)
{
    return (unsigned char)((i * 31 + 7) & 0xff);
}

/* Writes the pattern bytes [<off>, <off> + <len>) into <buf>. */
static inline void
tp_fill(void *buf, uint64_t off, size_t len)
{
    unsigned char *p = buf;

    for (size_t i = 0; i < len; i++)
        p[i] = tp_byte(off + i);
}

/*
 * Checks that <buf>[0..<len>) holds the pattern bytes starting at offset <off>.
 * Returns <len> when all match, else the index in <buf> of the first mismatch.
 */
static inline size_t
tp_verify(const void *buf, uint64_t off, size_t len)
{
    const unsigned char *p = buf;

    for (size_t i = 0; i < len; i++)
        if (p[i] != tp_byte(off + i))
            return i;
    return len;
}

/*
 * Continues the FNV-1a 64 hash <h> over <buf>[0..<len>) and returns it.
 * Hash a stream piece by piece: h = TP_FNV_INIT; h = tp_fnv1a(h, p, n); ...
 */
static inline uint64_t
tp_fnv1a(uint64_t h, const void *buf, size_t len)
{
    const unsigned char *p = buf;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= TP_FNV_PRIME;
    }
    return h;
}

/* FNV-1a 64 of the first <n> pattern bytes: what /sum answers for a /bytes?n=<n> body. */
static inline uint64_t
tp_pattern_fnv(uint64_t n)
{
    uint64_t h = TP_FNV_INIT;

    for (uint64_t i = 0; i < n; i++) {
        h ^= tp_byte(i);
        h *= TP_FNV_PRIME;
    }
    return h;
}

#endif /* MP_TESTPATTERN_H */
