/*
 * bayeswatch - string-keyed open-addressing hash map (linear probing,
 * FNV-1a). It holds at most max_items keys (BW_ERR_FULL beyond) and starts
 * small: the table doubles, rehashing every key, when it would pass load
 * 1/2, so a new key can cost a rehash; lookups never do. Deletion keeps
 * probe sequences intact (backward shift).
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#ifndef BAYESWATCH_MAP_H
#define BAYESWATCH_MAP_H

#include <stddef.h>

#include "bayeswatch/err.h"

typedef struct bw_map_s bw_map_t;

/** @param max_items the most keys it will hold. */
bw_map_t *bw_map_new(size_t max_items);
/** @brief Free the map and its key copies; values are the caller's. */
void bw_map_destroy(bw_map_t *m);
void *bw_map_get(const bw_map_t *m, const char *key);
/** @brief Insert (copies the key). BW_ERR_FULL at capacity. */
bw_err_t bw_map_put(bw_map_t *m, const char *key, void *value);
/** @brief Remove a key; returns its value (the caller's) or NULL. Do not
 * call from inside bw_map_each. */
void *bw_map_del(bw_map_t *m, const char *key);
size_t bw_map_size(const bw_map_t *m);
/** @brief Visit every key and value in slot order: the same for the same
 * history of puts and deletes, but not across a rebuild (a restored map
 * may order colliding keys differently); sort where order is output. */
void bw_map_each(const bw_map_t *m,
                 void (*fn)(const char *key, void *value, void *arg),
                 void *arg);

#endif
