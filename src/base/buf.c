/*
 * Little-endian serialisation helpers for model state.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/timefmt.h"
#include "bayeswatch/mem.h"

static int wbuf_reserve(bw_wbuf_t *w, size_t n)
{
    size_t cap;
    uint8_t *p;

    if (w->err != BW_OK) {
        return -1;
    }
    if (n > SIZE_MAX / 2 - w->len) { /* the doubling below would wrap */
        w->err = BW_ERR_NOMEM;
        return -1;
    }
    if (w->len + n <= w->cap) {
        return 0;
    }
    cap = w->cap ? w->cap : 256;
    while (cap < w->len + n) {
        cap *= 2;
    }
    p = bw_malloc(cap);
    if (p == NULL) {
        w->err = BW_ERR_NOMEM;
        return -1;
    }
    if (w->len > 0) {
        memcpy(p, w->data, w->len);
    }
    bw_free(w->data);
    w->data = p;
    w->cap = cap;
    return 0;
}

void bw_wbuf_bytes(bw_wbuf_t *w, const void *p, size_t n)
{
    if (n == 0 || wbuf_reserve(w, n) != 0) {
        return;
    }
    memcpy(w->data + w->len, p, n);
    w->len += n;
}

void bw_wbuf_printf(bw_wbuf_t *w, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0 || wbuf_reserve(w, (size_t)n + 1) != 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf((char *)w->data + w->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    w->len += (size_t)n; /* the NUL stays past len */
}

void bw_wbuf_json_str(bw_wbuf_t *w, const char *s)
{
    char esc[8];
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t n = strlen((const char *)p), step;

    bw_wbuf_bytes(w, "\"", 1);
    for (; n > 0; p += step, n -= step) {
        step = bw_utf8_seq(p, n);
        if (step == 0) { /* a byte outside any well-formed sequence: U+FFFD */
            bw_wbuf_bytes(w, "\\ufffd", 6);
            step = 1;
        } else if (*p == '"' || *p == '\\') {
            snprintf(esc, sizeof(esc), "\\%c", *p);
            bw_wbuf_bytes(w, esc, 2);
        } else if (*p < 0x20 || *p == 0x7F) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            bw_wbuf_bytes(w, esc, 6);
        } else {
            bw_wbuf_bytes(w, p, step);
        }
    }
    bw_wbuf_bytes(w, "\"", 1);
}

void bw_wbuf_u64(bw_wbuf_t *w, uint64_t v)
{
    uint8_t b[8];

    for (int i = 0; i < 8; i++) {
        b[i] = (uint8_t)(v >> (8 * i));
    }
    bw_wbuf_bytes(w, b, 8);
}

void bw_wbuf_u8(bw_wbuf_t *w, uint8_t v)
{
    bw_wbuf_bytes(w, &v, 1);
}

void bw_wbuf_u32(bw_wbuf_t *w, uint32_t v)
{
    uint8_t b[4];

    for (int i = 0; i < 4; i++) {
        b[i] = (uint8_t)(v >> (8 * i));
    }
    bw_wbuf_bytes(w, b, 4);
}

void bw_wbuf_i64(bw_wbuf_t *w, int64_t v)
{
    bw_wbuf_u64(w, (uint64_t)v);
}

void bw_wbuf_f64(bw_wbuf_t *w, double v)
{
    uint64_t u;

    memcpy(&u, &v, 8);
    bw_wbuf_u64(w, u);
}

void bw_wbuf_f64s(bw_wbuf_t *w, const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bw_wbuf_f64(w, v[i]);
    }
}

void bw_wbuf_f32s(bw_wbuf_t *w, const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], sizeof(u));
        bw_wbuf_u32(w, u);
    }
}

void bw_wbuf_patch_u32(bw_wbuf_t *w, size_t pos, uint32_t v)
{
    for (int i = 0; w->err == BW_OK && i < 4; i++) {
        w->data[pos + i] = (uint8_t)(v >> (8 * i));
    }
}

void bw_wbuf_patch_u64(bw_wbuf_t *w, size_t pos, uint64_t v)
{
    for (int i = 0; w->err == BW_OK && i < 8; i++) {
        w->data[pos + i] = (uint8_t)(v >> (8 * i));
    }
}

void bw_wbuf_reset(bw_wbuf_t *w)
{
    w->len = 0;
    w->err = BW_OK;
}

void bw_wbuf_free(bw_wbuf_t *w)
{
    bw_free(w->data);
    memset(w, 0, sizeof(*w));
}

void bw_rbuf_init(bw_rbuf_t *r, const void *data, size_t len)
{
    r->data = data;
    r->len = len;
    r->pos = 0;
    r->err = BW_OK;
}

void bw_rbuf_bytes(bw_rbuf_t *r, void *p, size_t n)
{
    if (r->err != BW_OK || r->len - r->pos < n) {
        r->err = BW_ERR_CORRUPT;
        memset(p, 0, n);
        return;
    }
    memcpy(p, r->data + r->pos, n);
    r->pos += n;
}

uint64_t bw_rbuf_u64(bw_rbuf_t *r)
{
    uint8_t b[8];
    uint64_t v = 0;

    bw_rbuf_bytes(r, b, 8);
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | b[i];
    }
    return v;
}

uint8_t bw_rbuf_u8(bw_rbuf_t *r)
{
    uint8_t v;

    bw_rbuf_bytes(r, &v, 1);
    return v;
}

uint32_t bw_rbuf_u32(bw_rbuf_t *r)
{
    uint8_t b[4];

    bw_rbuf_bytes(r, b, 4);
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) |
           ((uint32_t)b[3] << 24);
}

int64_t bw_rbuf_i64(bw_rbuf_t *r)
{
    return (int64_t)bw_rbuf_u64(r);
}

double bw_rbuf_f64(bw_rbuf_t *r)
{
    uint64_t u = bw_rbuf_u64(r);
    double v;

    memcpy(&v, &u, 8);
    return v;
}

void bw_rbuf_f64s(bw_rbuf_t *r, double *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        v[i] = bw_rbuf_f64(r);
    }
}

void bw_rbuf_f32s(bw_rbuf_t *r, float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u = bw_rbuf_u32(r);
        memcpy(&v[i], &u, sizeof(u));
    }
}

uint32_t bw_rbuf_u32_in(bw_rbuf_t *r, uint32_t lo, uint32_t hi)
{
    uint32_t v = bw_rbuf_u32(r);

    if (v < lo || v > hi) {
        r->err = BW_ERR_CORRUPT;
        return lo; /* never an out-of-range size to whoever reads on */
    }
    return v;
}

int64_t bw_rbuf_time(bw_rbuf_t *r, int64_t none)
{
    int64_t v = bw_rbuf_i64(r);

    if (v != none && !bw_time_valid(v)) {
        r->err = BW_ERR_CORRUPT;
        return none;
    }
    return v;
}

double bw_rbuf_finite(bw_rbuf_t *r)
{
    double v = bw_rbuf_f64(r);

    if (!isfinite(v)) {
        r->err = BW_ERR_CORRUPT;
    }
    return v;
}

static size_t join_part(char *dst, size_t pos, size_t cap, const char *s)
{
    size_t n = strlen(s);

    if (n > cap - 1 - pos) {
        n = cap - 1 - pos;
    }
    memcpy(dst + pos, s, n);
    return pos + n;
}

/* A part with its separator and '%' written as %XX (RFC 3986's
 * percent-encoding), so that the joined id names one tuple of parts. */
static size_t join_part_esc(char *dst, size_t pos, size_t cap, const char *s,
                            char sep)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch != (unsigned char)sep && ch != '%') {
            if (pos + 1 > cap - 1) {
                break;
            }
            dst[pos++] = (char)ch;
            continue;
        }
        if (pos + 3 > cap - 1) {
            break;
        }
        dst[pos++] = '%';
        dst[pos++] = hex[ch >> 4];
        dst[pos++] = hex[ch & 15];
    }
    return pos;
}

static size_t join_parts(char *dst, size_t cap, char sep, bool esc,
                         const char *const parts[3])
{
    size_t pos = 0;

    for (int i = 0; i < 3 && parts[i] != NULL; i++) {
        if (i > 0 && pos < cap - 1) {
            dst[pos++] = sep;
        }
        pos = esc ? join_part_esc(dst, pos, cap, parts[i], sep)
                  : join_part(dst, pos, cap, parts[i]);
    }
    dst[pos] = '\0';
    return pos;
}

size_t bw_join(char *dst, size_t cap, char sep, const char *a, const char *b,
               const char *c)
{
    const char *const parts[3] = {a, b, c};

    return join_parts(dst, cap, sep, false, parts);
}

size_t bw_join_esc(char *dst, size_t cap, char sep, const char *a,
                   const char *b, const char *c)
{
    const char *const parts[3] = {a, b, c};

    return join_parts(dst, cap, sep, true, parts);
}

/* ---- UTF-8 (RFC 3629, table 3-7 of the Unicode standard) ---- */

size_t bw_utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char b = p[0], lo = 0x80, hi = 0xBF;
    size_t len;

    if (n == 0) {
        return 0;
    }
    if (b < 0x80) {
        return 1;
    }
    if (b >= 0xC2 && b <= 0xDF) {
        len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
        len = 3;
        lo = b == 0xE0 ? 0xA0 : 0x80; /* no overlongs */
        hi = b == 0xED ? 0x9F : 0xBF; /* no surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        len = 4;
        lo = b == 0xF0 ? 0x90 : 0x80; /* no overlongs */
        hi = b == 0xF4 ? 0x8F : 0xBF; /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < len; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF) {
            return 0;
        }
    }
    return len;
}

bool bw_has_control(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != 0; p++) {
        if (*p < 0x20 || *p == 0x7F) {
            return true;
        }
    }
    return false;
}

size_t bw_utf8_clean(char *dst, size_t cap, const char *src)
{
    const unsigned char *p = (const unsigned char *)(src ? src : "");
    size_t n = strlen((const char *)p), out = 0, step;

    for (; n > 0; p += step, n -= step) {
        const unsigned char *from = p;
        size_t k = step = bw_utf8_seq(p, n);
        if (step == 0) { /* U+FFFD */
            from = (const unsigned char *)"\xef\xbf\xbd";
            k = 3;
            step = 1;
        }
        if (out + k >= cap) {
            break;
        }
        memcpy(dst + out, from, k);
        out += k;
    }
    dst[out] = '\0';
    return out;
}

bool bw_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);

    while (n > 0) {
        size_t k = bw_utf8_seq(p, n);
        if (k == 0) {
            return false;
        }
        p += k;
        n -= k;
    }
    return true;
}
