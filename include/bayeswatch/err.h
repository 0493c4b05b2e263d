/*
 * bayeswatch - error codes and assertions (allocation: mem.h; hashing and
 * checksums: hash.h).
 *
 * One error enum for the whole project, generated from a single X-macro list
 * together with its names and messages so the three cannot drift (the same
 * habit as libuv's UV_ERRNO_MAP). 0 is success, errors are negative.
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#ifndef BAYESWATCH_ERR_H
#define BAYESWATCH_ERR_H

#include <stddef.h>
#include <stdint.h>

#define BW_ERR_MAP(X)                                                          \
    X(OK, 0, "success")                                                        \
    X(NOMEM, -1, "out of memory")                                              \
    X(INVAL, -2, "invalid argument")                                           \
    X(CONFIG, -3, "configuration error")                                       \
    X(IO, -4, "input/output error")                                            \
    X(PARSE, -5, "malformed input")                                            \
    X(RANGE, -6, "value out of range")                                         \
    X(LATE, -7, "event older than the series' last event")                     \
    X(FULL, -8, "capacity exhausted")                                          \
    X(NUMERIC, -9, "numerical failure")                                        \
    X(VERSION, -10, "unsupported state version")                               \
    X(CORRUPT, -11, "corrupt state blob")                                      \
    X(NOTFOUND, -12, "not found")                                              \
    X(KAFKA, -13, "Kafka client error")

typedef enum {
#define BW__ERR_ENUM(name, val, msg) BW_ERR_##name = (val),
    BW_ERR_MAP(BW__ERR_ENUM)
#undef BW__ERR_ENUM
} bw_err_t;

#define BW_OK BW_ERR_OK

/** @brief Human-readable message for @p err ("unknown error" if unknown). */
const char *bw_strerror(bw_err_t err);
/** @brief Symbolic name of @p err without prefix, e.g. "NOMEM". */
const char *bw_err_name(bw_err_t err);

/**
 * @brief printf into errstr (if non-NULL) and return @p err.
 * @remark Convenience for the `char *errstr, size_t errstr_size` convention.
 */
bw_err_t bw_seterr(char *errstr, size_t errstr_size, bw_err_t err,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/** @brief Bugs only: bad input never reaches an assertion. */
#define BW_ASSERT(cond)                                                        \
    do {                                                                       \
        if (!(cond)) {                                                         \
            bw__assert_fail(#cond, __FILE__, __LINE__);                        \
        }                                                                      \
    } while (0)
_Noreturn void bw__assert_fail(const char *expr, const char *file, int line);

#endif
