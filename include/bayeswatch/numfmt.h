/*
 * bayeswatch - decimal text of doubles and integers for the output writers,
 * byte-identical to printf's "%.*g", "%.*f" and "%lld" (C11 7.21.6.1; glibc
 * rounds the exact binary value half to even), without printf's format
 * parsing and multi-precision arithmetic.
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#ifndef BAYESWATCH_NUMFMT_H
#define BAYESWATCH_NUMFMT_H

#include <stddef.h>
#include <stdint.h>

/** Room for any bw_fmt_* result with its NUL. */
#define BW_NUMFMT_MAX 48

/**
 * @brief @p v as snprintf(out, BW_NUMFMT_MAX, "%.*g", prec, v) writes it
 * (@p out holds BW_NUMFMT_MAX bytes). Values the exact integer path cannot
 * hold (very large or very small magnitudes, precision outside 1-17,
 * infinities, NaN) go to snprintf itself.
 * @returns the length written.
 */
size_t bw_fmt_g(char *out, double v, int prec);

/** @brief @p v as "%.*f" with 0-9 @p decimals (snprintf beyond that, or
 * for magnitudes of 1e17 and more). @returns the length written. */
size_t bw_fmt_f(char *out, double v, int decimals);

/** @brief @p v as "%lld". @returns the length written. */
size_t bw_fmt_i64(char *out, int64_t v);

#endif
