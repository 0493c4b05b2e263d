/*
 * bayeswatch - error codes, allocation hooks and small shared utilities.
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

/*
 * Allocation goes through these wrappers so a test can make the Nth call
 * fail (bw_mem_fail_after) and exercise cleanup paths.
 */
void *bw_malloc(size_t size);
void *bw_calloc(size_t n, size_t size);
void bw_free(void *ptr);
char *bw_strdup(const char *s);
/** @brief Make the allocation after @p n more successful ones fail; -1 off. */
void bw_mem_fail_after(long n);
/** Allocation calls made through bw_malloc/bw_calloc so far (tests). */
unsigned long bw_mem_calls(void);

/** @brief Bugs only: bad input never reaches an assertion. */
#define BW_ASSERT(cond)                                                        \
    do {                                                                       \
        if (!(cond)) {                                                         \
            bw__assert_fail(#cond, __FILE__, __LINE__);                        \
        }                                                                      \
    } while (0)
_Noreturn void bw__assert_fail(const char *expr, const char *file, int line);

/** @brief CRC-32 (IEEE 802.3, reflected, as zlib's crc32). */
uint32_t bw_crc32(uint32_t crc, const void *buf, size_t len);

/** @brief FNV-1a 64-bit hash of @p len bytes, chained through @p h. */
uint64_t bw_hash64(uint64_t h, const void *buf, size_t len);
#define BW_HASH64_INIT 0xcbf29ce484222325ULL

#endif
