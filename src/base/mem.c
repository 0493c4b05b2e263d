/*
 * Allocation wrappers with failure injection for tests.
 */
#include <stdlib.h>
#include <string.h>

#include "bayeswatch/err.h"

static long fail_after = -1;
static unsigned long n_calls; /* allocation calls, failed ones included */

void bw_mem_fail_after(long n)
{
    fail_after = n;
}

unsigned long bw_mem_calls(void)
{
    return n_calls;
}

static int should_fail(void)
{
    n_calls++;
    if (fail_after < 0) {
        return 0;
    }
    if (fail_after == 0) {
        return 1;
    }
    fail_after--;
    return 0;
}

void *bw_malloc(size_t size)
{
    return should_fail() ? NULL : malloc(size);
}

void *bw_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : calloc(n, size);
}

void *bw_realloc(void *ptr, size_t size)
{
    return should_fail() ? NULL : realloc(ptr, size);
}

void bw_free(void *ptr)
{
    free(ptr);
}

char *bw_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = bw_malloc(n);

    if (d != NULL) {
        memcpy(d, s, n);
    }
    return d;
}
