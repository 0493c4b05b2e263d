/*
 * bayeswatch - allocation. Every allocation goes through these wrappers so
 * a test can make the Nth call fail (bw_mem_fail_after) and exercise the
 * cleanup paths.
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#ifndef BAYESWATCH_MEM_H
#define BAYESWATCH_MEM_H

#include <stddef.h>

void *bw_malloc(size_t size);
void *bw_calloc(size_t n, size_t size);
/** @brief realloc(3); on failure @p ptr is untouched (still the caller's). */
void *bw_realloc(void *ptr, size_t size);
void bw_free(void *ptr);
char *bw_strdup(const char *s);
/** @brief Make the allocation after @p n more successful ones fail; -1 off. */
void bw_mem_fail_after(long n);
/** Allocation calls made through bw_malloc/bw_calloc so far (tests). */
unsigned long bw_mem_calls(void);

#endif
