/*
 * bayeswatch - little-endian byte writer and bounds-checked reader used by
 * every model's save/load. Plain data, no allocation by the reader.
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#ifndef BAYESWATCH_BUF_H
#define BAYESWATCH_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bayeswatch/err.h"

/** Growable writer. Zero-initialise; release data with bw_free. */
typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
    bw_err_t err; /* sticky: first failure */
} bw_wbuf_t;

void bw_wbuf_bytes(bw_wbuf_t *w, const void *p, size_t n);
void bw_wbuf_u8(bw_wbuf_t *w, uint8_t v);
void bw_wbuf_u32(bw_wbuf_t *w, uint32_t v);
void bw_wbuf_u64(bw_wbuf_t *w, uint64_t v);
void bw_wbuf_i64(bw_wbuf_t *w, int64_t v);
void bw_wbuf_f64(bw_wbuf_t *w, double v);
void bw_wbuf_f64s(bw_wbuf_t *w, const double *v, size_t n);
/** Floats as their IEEE bits (u32), so a load restores them exactly. */
void bw_wbuf_f32s(bw_wbuf_t *w, const float *v, size_t n);
/** Empty @p w for reuse, keeping its capacity, and clear its sticky
 * error: a buffer reused after one failed allocation would otherwise fail
 * every later write. */
void bw_wbuf_reset(bw_wbuf_t *w);
void bw_wbuf_free(bw_wbuf_t *w);
/** @brief Append formatted text (no NUL counted in len; one is kept
 * after it while capacity allows). */
void bw_wbuf_printf(bw_wbuf_t *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/** @brief Append @p s (NULL = "") as a quoted JSON string: quotes,
 * backslashes and control characters escaped, ill-formed UTF-8 as
 * U+FFFD. */
void bw_wbuf_json_str(bw_wbuf_t *w, const char *s);
/** @brief Overwrite the little-endian u32 / u64 written earlier at @p pos
 * (a length or count known only once what follows it is written). */
void bw_wbuf_patch_u32(bw_wbuf_t *w, size_t pos, uint32_t v);
void bw_wbuf_patch_u64(bw_wbuf_t *w, size_t pos, uint64_t v);

/**
 * @brief Join up to three strings with a separator into dst (capacity cap
 * >= 1), truncating like snprintf; c may be NULL for two parts. Returns the
 * length written. For keys built on every event (no format parsing).
 */
size_t bw_join(char *dst, size_t cap, char sep, const char *a, const char *b,
               const char *c);

/**
 * @brief bw_join for ids that must name one tuple of parts: a part's
 * separator bytes and '%' are percent-encoded (RFC 3986: "/" -> "%2F",
 * "%" -> "%25"), so "a/b" + "c" and "a" + "b/c" differ. Parts without either
 * byte join as with bw_join. Needs 3 bytes per input byte at worst.
 */
size_t bw_join_esc(char *dst, size_t cap, char sep, const char *a,
                   const char *b, const char *c);

/**
 * @brief Length of the well-formed UTF-8 sequence at p (at most n bytes),
 * or 0 if it is not one (RFC 3629: no overlongs, no surrogates, nothing
 * above U+10FFFF, no truncation). An ASCII byte is a sequence of 1.
 */
size_t bw_utf8_seq(const unsigned char *p, size_t n);

/** @brief Whether the NUL-terminated string s is well-formed UTF-8. */
bool bw_utf8_valid(const char *s);

/**
 * @brief Copy @p src (NULL = "") into @p dst (@p cap > 0 bytes, always
 * NUL-terminated) as well-formed UTF-8: a byte outside any well-formed
 * sequence becomes U+FFFD, and a cut to fit falls between sequences (a
 * message cut by snprintf inside a character is made whole this way).
 * @returns the bytes written, NUL not counted.
 */
size_t bw_utf8_clean(char *dst, size_t cap, const char *src);

/** @brief Whether s holds a C0 control character (U+0001-U+001F) or DEL:
 * never part of a region, service or metric name (0x1F separates the
 * parts of the engine's keys). */
bool bw_has_control(const char *s);

/** Reader over borrowed bytes; any overrun sets err=BW_ERR_CORRUPT. */
typedef struct {
    const uint8_t *data;
    size_t len;
    size_t pos;
    bw_err_t err;
} bw_rbuf_t;

void bw_rbuf_init(bw_rbuf_t *r, const void *data, size_t len);
void bw_rbuf_bytes(bw_rbuf_t *r, void *p, size_t n);
uint8_t bw_rbuf_u8(bw_rbuf_t *r);
uint32_t bw_rbuf_u32(bw_rbuf_t *r);
uint64_t bw_rbuf_u64(bw_rbuf_t *r);
int64_t bw_rbuf_i64(bw_rbuf_t *r);
double bw_rbuf_f64(bw_rbuf_t *r);
void bw_rbuf_f64s(bw_rbuf_t *r, double *v, size_t n);
void bw_rbuf_f32s(bw_rbuf_t *r, float *v, size_t n);
/** @brief Read a u32 that must lie in [lo, hi]; else err=BW_ERR_CORRUPT
 * and @p lo is returned (a count read with it never overruns). */
uint32_t bw_rbuf_u32_in(bw_rbuf_t *r, uint32_t lo, uint32_t hi);
/** @brief Read an event time (or a time / width index): @p none (the
 * field's "no time yet") or 0..BW_TIME_MAX_MS; else err=BW_ERR_CORRUPT
 * and @p none is returned (time differences of loaded state can then
 * never overflow). */
int64_t bw_rbuf_time(bw_rbuf_t *r, int64_t none);
/** @brief Read a finite double; NaN/Inf set err=BW_ERR_CORRUPT. */
double bw_rbuf_finite(bw_rbuf_t *r);

#endif
