/*
 * Open addressing with linear probing (Knuth, TAOCP vol. 3, 6.4,
 * algorithm L); the table doubles when it would pass load 1/2, so an
 * engine that sees few series holds a small table whatever its cap.
 * Deletion backward-shifts the entries after the gap (algorithm R), so no
 * tombstones are left to slow lookups.
 */
#include <stdbool.h>
#include <string.h>

#include "bayeswatch/map.h"
#include "bayeswatch/mem.h"
#include "bayeswatch/hash.h"

typedef struct {
    char *key;
    void *value;
} slot_t;

struct bw_map_s {
    size_t cap; /* power of two */
    size_t max;
    size_t size;
    slot_t *slots;
};

bw_map_t *bw_map_new(size_t max_items)
{
    bw_map_t *m = bw_calloc(1, sizeof(*m));
    size_t cap = 16;

    if (m == NULL) {
        return NULL;
    }
    m->cap = cap;
    m->max = max_items;
    m->slots = bw_calloc(cap, sizeof(slot_t));
    if (m->slots == NULL) {
        bw_free(m);
        return NULL;
    }
    return m;
}

void bw_map_destroy(bw_map_t *m)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->cap; i++) {
        bw_free(m->slots[i].key);
    }
    bw_free(m->slots);
    bw_free(m);
}

static size_t find(const bw_map_t *m, const char *key)
{
    size_t i = bw_hash64(BW_HASH64_INIT, key, strlen(key)) & (m->cap - 1);

    while (m->slots[i].key != NULL && strcmp(m->slots[i].key, key) != 0) {
        i = (i + 1) & (m->cap - 1);
    }
    return i;
}

void *bw_map_get(const bw_map_t *m, const char *key)
{
    size_t i = find(m, key);

    return m->slots[i].key != NULL ? m->slots[i].value : NULL;
}

/* Double the table and re-insert every key (order is a function of the
 * key set, so iteration stays deterministic). */
static bw_err_t grow(bw_map_t *m)
{
    slot_t *old = m->slots;
    size_t old_cap = m->cap;

    m->slots = bw_calloc(old_cap * 2, sizeof(slot_t));
    if (m->slots == NULL) {
        m->slots = old;
        return BW_ERR_NOMEM;
    }
    m->cap = old_cap * 2;
    for (size_t j = 0; j < old_cap; j++) {
        if (old[j].key != NULL) {
            m->slots[find(m, old[j].key)] = old[j];
        }
    }
    bw_free(old);
    return BW_OK;
}

bw_err_t bw_map_put(bw_map_t *m, const char *key, void *value)
{
    size_t i = find(m, key);

    if (m->slots[i].key != NULL) {
        m->slots[i].value = value;
        return BW_OK;
    }
    if (m->size >= m->max) {
        return BW_ERR_FULL;
    }
    if (2 * (m->size + 1) > m->cap) {
        if (grow(m) != BW_OK) {
            return BW_ERR_NOMEM;
        }
        i = find(m, key);
    }
    m->slots[i].key = bw_strdup(key);
    if (m->slots[i].key == NULL) {
        return BW_ERR_NOMEM;
    }
    m->slots[i].value = value;
    m->size++;
    return BW_OK;
}

/* Whether home slot h lies cyclically in (gap, j]: the key at j may then
 * not move to the gap. */
static bool between(size_t gap, size_t h, size_t j)
{
    return gap <= j ? (gap < h && h <= j) : (gap < h || h <= j);
}

void *bw_map_del(bw_map_t *m, const char *key)
{
    size_t gap = find(m, key), j = gap, mask = m->cap - 1;
    void *value = m->slots[gap].value;

    if (m->slots[gap].key == NULL) {
        return NULL;
    }
    bw_free(m->slots[gap].key);
    m->slots[gap].key = NULL;
    m->slots[gap].value = NULL;
    m->size--;
    for (;;) {
        size_t h;
        j = (j + 1) & mask;
        if (m->slots[j].key == NULL) {
            return value;
        }
        h = bw_hash64(BW_HASH64_INIT, m->slots[j].key,
                      strlen(m->slots[j].key)) &
            mask;
        if (!between(gap, h, j)) {
            m->slots[gap] = m->slots[j];
            m->slots[j].key = NULL;
            m->slots[j].value = NULL;
            gap = j;
        }
    }
}

size_t bw_map_size(const bw_map_t *m)
{
    return m->size;
}

void bw_map_each(const bw_map_t *m,
                 void (*fn)(const char *key, void *value, void *arg), void *arg)
{
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key != NULL) {
            fn(m->slots[i].key, m->slots[i].value, arg);
        }
    }
}
