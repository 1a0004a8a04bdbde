/*
 * testws: the RFC 6455 pieces testapp's WebSocket echo server and the
 * it_websocket client share: the Sec-WebSocket-Accept value and frame
 * headers. Written for the tests (no extensions, no UTF-8 checks of text
 * frames), header-only (static inline) because testapp.c must build on its
 * own.
 */
#ifndef MP_TESTWS_H
#define MP_TESTWS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum { WS_CONT = 0, WS_TEXT = 1, WS_BINARY = 2, WS_CLOSE = 8, WS_PING = 9, WS_PONG = 10 };

/* The Sec-WebSocket-Accept for key <key>[0..<len>) into <out> (29 bytes with the NUL). */
static inline void
ws_accept_key(const char *key, size_t len, char out[29])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char in[128];

    if (len > sizeof(in) - sizeof(WS_GUID))
        len = sizeof(in) - sizeof(WS_GUID);
    memcpy(in, key, len);
    memcpy(in + len, WS_GUID, sizeof(WS_GUID) - 1);
    EVP_Digest(in, len + sizeof(WS_GUID) - 1, md, &mdlen, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen); /* 20 bytes: 28 characters and NUL */
}

/* A frame header: FIN bit, opcode, payload length and the mask key (when masked). */
struct ws_head {
    int fin, opcode, masked;
    uint64_t len;
    unsigned char mask[4];
};

/* Writes <h> into <out> (14 bytes at most); returns its length. */
static inline size_t
ws_head_put(const struct ws_head *h, unsigned char *out)
{
    size_t n = 0;

    out[n++] = (unsigned char)((h->fin ? 0x80 : 0) | (h->opcode & 0x0f));
    unsigned char m = h->masked ? 0x80 : 0;
    if (h->len < 126) {
        out[n++] = (unsigned char)(m | h->len);
    } else if (h->len <= 0xffff) {
        out[n++] = m | 126;
        out[n++] = (unsigned char)(h->len >> 8);
        out[n++] = (unsigned char)h->len;
    } else {
        out[n++] = m | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (unsigned char)(h->len >> (8 * i));
    }
    if (h->masked) {
        memcpy(out + n, h->mask, 4);
        n += 4;
    }
    return n;
}

/*
 * Parses a frame header from <p>[0..<n>). Returns its length, 0 when more
 * bytes are needed.
 */
static inline size_t
ws_head_get(const unsigned char *p, size_t n, struct ws_head *h)
{
    size_t need = 2;

    if (n < 2)
        return 0;
    h->fin = (p[0] & 0x80) != 0;
    h->opcode = p[0] & 0x0f;
    h->masked = (p[1] & 0x80) != 0;
    unsigned l7 = p[1] & 0x7f;
    need += l7 == 126 ? 2 : l7 == 127 ? 8 : 0;
    need += h->masked ? 4 : 0;
    if (n < need)
        return 0;
    size_t i = 2;
    if (l7 < 126) {
        h->len = l7;
    } else if (l7 == 126) {
        h->len = ((uint64_t)p[2] << 8) | p[3];
        i = 4;
    } else {
        h->len = 0;
        for (int k = 0; k < 8; k++)
            h->len = (h->len << 8) | p[2 + k];
        i = 10;
    }
    if (h->masked)
        memcpy(h->mask, p + i, 4);
    return need;
}

/* XORs <buf>[0..<len>) with <mask>, the payload starting at offset <off> of the frame. */
static inline void
ws_unmask(unsigned char *buf, size_t len, const unsigned char mask[4], uint64_t off)
{
    for (size_t i = 0; i < len; i++)
        buf[i] ^= mask[(off + i) & 3];
}

#endif
