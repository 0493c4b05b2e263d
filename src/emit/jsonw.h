/*
 * A small JSON object writer for the emit stage's JSON records (json.c)
 * and SIEM documents (siem.c): keys in order, one `first` flag per open
 * object; non-finite numbers are null; strings escaped per RFC 8259.
 */
#ifndef BW_EMIT_JSONW_H
#define BW_EMIT_JSONW_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/numfmt.h"

static inline void put(bw_wbuf_t *w, const char *s)
{
    bw_wbuf_bytes(w, s, strlen(s));
}

/* The separator before an array item or object member. */
static inline void jitem(bw_wbuf_t *w, int *first)
{
    if (!*first) {
        put(w, ",");
    }
    *first = 0;
}

static inline void key(bw_wbuf_t *w, const char *k, int *first)
{
    jitem(w, first);
    put(w, "\"");
    put(w, k);
    put(w, "\":");
}

static inline void jstr(bw_wbuf_t *w, const char *k, const char *s, int *first)
{
    key(w, k, first);
    bw_wbuf_json_str(w, s);
}

static inline void jnum(bw_wbuf_t *w, const char *k, double v, int *first)
{
    char buf[BW_NUMFMT_MAX];

    key(w, k, first);
    if (!isfinite(v)) {
        put(w, "null");
        return;
    }
    bw_wbuf_bytes(w, buf, bw_fmt_g(buf, v, 17));
}

static inline void jint(bw_wbuf_t *w, const char *k, int64_t v, int *first)
{
    char buf[BW_NUMFMT_MAX];

    key(w, k, first);
    bw_wbuf_bytes(w, buf, bw_fmt_i64(buf, v));
}

/* A time that may be absent (negative): null then. */
static inline void jtime_opt(bw_wbuf_t *w, const char *k, int64_t t,
                             int *first)
{
    if (t >= 0) {
        jint(w, k, t, first);
    } else {
        jnum(w, k, NAN, first);
    }
}

static inline void jbool(bw_wbuf_t *w, const char *k, bool v, int *first)
{
    key(w, k, first);
    put(w, v ? "true" : "false");
}

/* Open a nested object (or array, @p open "[") under key @p k; its own
 * first flag is *inner. */
static inline void jopen(bw_wbuf_t *w, const char *k, const char *open,
                         int *first, int *inner)
{
    key(w, k, first);
    put(w, open);
    *inner = 1;
}

#endif
