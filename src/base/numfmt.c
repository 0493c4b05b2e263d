/*
 * Decimal text of doubles, exactly as printf writes it.
 *
 * A finite double is m * 2^e with an integer m < 2^53. Its "%.*g" text
 * needs the precision's leading digits of |v|, rounded half to even on the
 * exact binary value (glibc's rounding, the IEEE default mode):
 *     N = round(m * 2^e * 10^s),   s = prec - 1 - k,   k = floor(log10 |v|)
 * which is one 128-bit integer division (or a shift), m * 5^s * 2^(e+s)
 * with the negative powers in the denominator, exact whenever both fit in
 * 126 bits (at 9 digits, |v| from about 1e-30 to 1e25). k from the binary
 * exponent can be one off, and rounding can carry into a new digit
 * (9.9999999995 -> 10.0000000), so N is recomputed with k +- 1 until the exact
 * value has at least prec digits and its rounding at most prec: this is the
 * exponent X of C11 7.21.6.1's %g rule, which then picks the f or e style and
 * removes trailing zeros. Anything the integer path cannot hold goes to
 * snprintf, so the output is printf's in every case (test_base compares the two
 * on random and edge values).
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bayeswatch/numfmt.h"

size_t bw_fmt_i64(char *out, int64_t v)
{
    char tmp[24];
    size_t n = 0, len = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        out[len++] = '-';
    }
    while (n > 0) {
        out[len++] = tmp[--n];
    }
    out[len] = '\0';
    return len;
}

static size_t fallback(char *out, const char *fmt, int prec, double v)
{
    int n = snprintf(out, BW_NUMFMT_MAX, fmt, prec, v);

    return n < 0 ? 0 : (size_t)n;
}

#ifdef __SIZEOF_INT128__

__extension__ typedef unsigned __int128 u128;

#define LIMIT_BITS 126

static u128 pow_u128(unsigned base, int s)
{
    u128 p = 1;

    while (s-- > 0) {
        p *= base;
    }
    return p;
}

/* 5^s, from a table while it fits in 64 bits */
static u128 pow5(int s)
{
    /* clang-format off */
    static const uint64_t table[28] = {
        1u, 5u, 25u, 125u, 625u, 3125u, 15625u, 78125u, 390625u, 1953125u,
        9765625u, 48828125u, 244140625u, 1220703125u, 6103515625u,
        30517578125u, 152587890625u, 762939453125u, 3814697265625u,
        19073486328125u, 95367431640625u, 476837158203125u, 2384185791015625u,
        11920928955078125u, 59604644775390625u, 298023223876953125u,
        1490116119384765625u, 7450580596923828125u
    };
    /* clang-format on */

    return s < 28 ? table[s] : pow_u128(5, s);
}

/* An upper bound of the bit length of 5^s (log2 5 < 2378 / 1024). */
static int pow5_bits(int s)
{
    return s * 2378 / 1024 + 1;
}

/* round_half_even(q + r / den) with 0 <= r < den */
static u128 round_even(u128 q, u128 r, u128 den)
{
    if (2 * r > den || (2 * r == den && (q & 1) != 0)) {
        q++;
    }
    return q;
}

/* *n = round_half_even(m * 2^e * 10^s) and *t its truncation; 0 if they
 * are not exact in 126 bits. As 10^s = 5^s 2^s, the value is
 * m 5^s 2^(e+s): the 5s go to the numerator or the denominator, the 2s
 * to a shift. */
static int scaled_round(uint64_t m, int e, int s, u128 *n, u128 *t)
{
    int sh = e + s, five = s < 0 ? -s : s;
    int nbits = 53 + (s > 0 ? pow5_bits(five) : 0) + (sh > 0 ? sh : 0);
    int dbits = (s < 0 ? pow5_bits(five) : 0) + (sh < 0 ? -sh : 0);
    u128 num = m, den, q;

    if (nbits > LIMIT_BITS || dbits > LIMIT_BITS) {
        return 0;
    }
    if (s > 0) {
        num *= pow5(five);
    }
    if (sh > 0) {
        num <<= sh;
    }
    if (s >= 0) { /* the denominator is 2^-sh: a shift */
        if (sh >= 0) {
            *n = *t = num;
            return 1;
        }
        q = num >> -sh;
        *t = q;
        *n = round_even(q, num - (q << -sh), (u128)1 << -sh);
        return 1;
    }
    den = pow5(five);
    if (sh < 0) {
        den <<= -sh;
    }
    q = num / den;
    *t = q;
    *n = round_even(q, num - q * den, den);
    return 1;
}

/* |v| (finite, > 0) as m * 2^e with m < 2^53 an integer. */
static void split(double v, uint64_t *m, int *e)
{
    int ex;
    double f = frexp(v, &ex);

    *m = (uint64_t)ldexp(f, 53);
    *e = ex - 53;
}

/* The prec digits of |v| rounded, and the decimal exponent X; 0 if the
 * integer path cannot do it. */
static int digits_of(double v, int prec, char *d, int *x)
{
    uint64_t m, n64;
    int e, k;
    u128 n = 0, t = 0, lo = pow5(prec - 1) << (prec - 1), hi = lo * 10;

    split(v, &m, &e);
    /* log10 v from log2 v ~ e + 52 + (m / 2^52 - 1), which is at most 0.09
     * low: k is right or one low, and the loop below corrects it */
    k = (int)floor((e + 52 + ((double)m * 0x1.0p-52 - 1.0)) *
                   0.30102999566398119521);
    for (int tries = 0;; tries++) {
        if (tries == 3 || !scaled_round(m, e, prec - 1 - k, &n, &t)) {
            return 0;
        }
        /* k is right when the exact value has prec digits (t); rounding
         * can then only carry to 10^prec, which is 1 at the next exponent,
         * as %g's X says */
        if (t < lo) {
            k--;
        } else if (t >= hi) {
            k++;
        } else {
            if (n == hi) {
                n = lo;
                k++;
            }
            break;
        }
    }
    n64 = (uint64_t)n;
    for (int i = prec - 1; i >= 0; i--) {
        d[i] = (char)('0' + n64 % 10);
        n64 /= 10;
    }
    *x = k;
    return 1;
}

/* Append d[from..to) without its trailing zeros, after a '.'. */
static size_t put_fraction(char *p, const char *d, int from, int to)
{
    size_t len = 0;

    while (to > from && d[to - 1] == '0') {
        to--;
    }
    if (to > from) {
        p[len++] = '.';
        memcpy(p + len, d + from, (size_t)(to - from));
        len += (size_t)(to - from);
    }
    return len;
}

/* The f style of %g: X in [-4, prec). */
static size_t put_fixed(char *p, const char *d, int prec, int x)
{
    char z[32];
    size_t len = 0;

    if (x >= 0) {
        memcpy(p, d, (size_t)x + 1);
        return (size_t)x + 1 + put_fraction(p + x + 1, d, x + 1, prec);
    }
    /* 0.000ddd: -x-1 zeros, then the digits */
    memset(z, '0', (size_t)(-x - 1));
    memcpy(z + (-x - 1), d, (size_t)prec);
    p[len++] = '0';
    return len + put_fraction(p + len, z, 0, -x - 1 + prec);
}

/* The e style: d.ddde+XX, at least two exponent digits. */
static size_t put_exp(char *p, const char *d, int prec, int x)
{
    size_t len = 0;
    int ax = x < 0 ? -x : x;

    p[len++] = d[0];
    len += put_fraction(p + len, d, 1, prec);
    p[len++] = 'e';
    p[len++] = x < 0 ? '-' : '+';
    if (ax < 10) {
        p[len++] = '0';
    }
    return len + bw_fmt_i64(p + len, ax);
}

size_t bw_fmt_g(char *out, double v, int prec)
{
    char d[17];
    size_t len = 0;
    int x;

    if (!isfinite(v) || prec < 1 || prec > 17) {
        return fallback(out, "%.*g", prec, v);
    }
    if (signbit(v)) {
        out[len++] = '-';
    }
    if (v == 0.0) {
        out[len++] = '0';
        out[len] = '\0';
        return len;
    }
    if (!digits_of(fabs(v), prec, d, &x)) {
        return fallback(out, "%.*g", prec, v);
    }
    len += (x < prec && x >= -4) ? put_fixed(out + len, d, prec, x)
                                 : put_exp(out + len, d, prec, x);
    out[len] = '\0';
    return len;
}

size_t bw_fmt_f(char *out, double v, int decimals)
{
    uint64_t m, ip, scale = 1;
    u128 n = 0, t;
    size_t len = 0;
    int e;
    double a = fabs(v);

    if (!isfinite(v) || decimals < 0 || decimals > 9 || a >= 1e17) {
        return fallback(out, "%.*f", decimals, v);
    }
    for (int i = 0; i < decimals; i++) {
        scale *= 10;
    }
    if (a >= 1e-10) { /* below, |v| * 10^decimals < 0.1 rounds to 0 */
        split(a, &m, &e);
        if (!scaled_round(m, e, decimals, &n, &t)) {
            return fallback(out, "%.*f", decimals, v);
        }
    }
    if (signbit(v)) {
        out[len++] = '-';
    }
    ip = (uint64_t)(n / scale);
    len += bw_fmt_i64(out + len, (int64_t)ip);
    if (decimals > 0) {
        uint64_t frac = (uint64_t)(n % scale);

        out[len++] = '.';
        for (int i = decimals - 1; i >= 0; i--) {
            out[len + (size_t)i] = (char)('0' + frac % 10);
            frac /= 10;
        }
        len += (size_t)decimals;
    }
    out[len] = '\0';
    return len;
}

#else /* no 128-bit integers: printf itself */

size_t bw_fmt_g(char *out, double v, int prec)
{
    return fallback(out, "%.*g", prec, v);
}

size_t bw_fmt_f(char *out, double v, int decimals)
{
    return fallback(out, "%.*f", decimals, v);
}

#endif
