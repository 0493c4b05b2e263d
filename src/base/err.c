/*
 * Error strings, the assertion hook and the errstr helper.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "bayeswatch/err.h"

const char *bw_strerror(bw_err_t err)
{
    switch (err) {
#define BW__ERR_MSG(name, val, msg)                                            \
    case BW_ERR_##name:                                                        \
        return msg;
        BW_ERR_MAP(BW__ERR_MSG)
#undef BW__ERR_MSG
    }
    return "unknown error";
}

const char *bw_err_name(bw_err_t err)
{
    switch (err) {
#define BW__ERR_NAME(name, val, msg)                                           \
    case BW_ERR_##name:                                                        \
        return #name;
        BW_ERR_MAP(BW__ERR_NAME)
#undef BW__ERR_NAME
    }
    return "UNKNOWN";
}

bw_err_t bw_seterr(char *errstr, size_t errstr_size, bw_err_t err,
                   const char *fmt, ...)
{
    va_list ap;

    if (errstr != NULL && errstr_size > 0) {
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return err;
}

_Noreturn void bw__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "bayeswatch: assertion failed: %s (%s:%d)\n", expr, file,
            line);
    abort();
}
