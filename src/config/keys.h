/*
 * Declarative key tables: {key, type, offset, range, default, enum strings,
 * doc}, walked by the loader, the defaults pass and dump-config alike
 * (after librdkafka's rd_kafka_properties[] in src/rdkafka_conf.c).
 */
#ifndef BW_CONFIG_KEYS_H
#define BW_CONFIG_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "bayeswatch/config.h"

typedef enum {
    BW_KT_INT,
    BW_KT_I64,
    BW_KT_DOUBLE,
    BW_KT_BOOL,
    BW_KT_ENUM,
    BW_KT_STRING,
    BW_KT_SECTION,
    BW_KT_LIST,    /* sequence of mappings (sub table) */
    BW_KT_STRLIST, /* sequence of strings; def = the one default item */
    BW_KT_MAP,     /* string -> string pass-through (bw_kvmap_t) */
} bw_ktype_t;

typedef struct bw_key_s {
    const char *name;
    bw_ktype_t type;
    size_t off;                 /* offset in the enclosing struct */
    double min, max;            /* numeric range, inclusive */
    const char *def;            /* default, as YAML scalar text */
    const char *const *enums;   /* NULL-terminated, for BW_KT_ENUM */
    const struct bw_key_s *sub; /* SECTION / LIST item table */
    size_t size;      /* STRING buffer size; LIST, STRLIST item size */
    size_t count_off; /* LIST: offset of the int item count */
    int max_items;    /* LIST capacity */
    bool required;    /* LIST item keys only */
    /* A key added after models' state was first kept, at whose default
     * state saved before it existed still means what it meant: its default
     * is the behaviour from before it, or changes the scores but not what
     * the state holds (scale_prior_spread, novel_phase_ms). At its default
     * it is left out of the state and config versions (dump_hash), so that
     * state still loads. Doubles only (dump.c, neutral_default). */
    bool neutral;
    const char *doc;
} bw_key_t;

/** The root table of bw_config_t. */
extern const bw_key_t bw__config_root[];

/** What a dump prints: everything (dump-config); the text a version was
 * hashed from before this build (BW_DUMP_VERSION_DOCS: with each key's
 * doc, neutral keys at their default left out); the text it is hashed
 * from now (BW_DUMP_VERSION: without the docs, so rewording a key's doc
 * changes no version). */
typedef enum {
    BW_DUMP_ALL,
    BW_DUMP_VERSION_DOCS,
    BW_DUMP_VERSION
} bw_dump_mode_t;

/** dump-config of the sections that decide scores (engine, model): the
 * text the config version hashes (BW_DUMP_VERSION_DOCS). */
void bw__config_dump_models(const bw_config_t *cfg, FILE *out,
                            bw_dump_mode_t mode);
/** dump-config of one model section (model.NAME): what a state version of
 * that model's kind hashes. */
void bw__config_dump_model(const bw_config_t *cfg, const char *name,
                           FILE *out, bw_dump_mode_t mode);
#endif
