/*
 * bayeswatch - model snapshots: versioned, checksummed binary blobs.
 *
 * Layout (little-endian): "BWST" | u32 format version | u32 kind |
 * u64 payload length | payload | u32 CRC-32 of all preceding bytes.
 * The payload is the model's own save format, which starts with a model
 * tag and its shape, and includes the RNG state: a model restored from a
 * blob continues bit-identically.
 *
 * The changelog envelope (one Kafka record of the state changelog) wraps
 * one key's state: "BWCL" | u32 envelope version | u32 record kind |
 * u64 config version | i64 input offset the state reflects | u64 body
 * length | body | u32 CRC-32 of all preceding bytes. Bodies are the
 * engine's (src/engine/snapshot.c).
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#ifndef BAYESWATCH_STATE_H
#define BAYESWATCH_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/err.h"
#include "bayeswatch/model.h"

#define BW_STATE_VERSION 1

typedef enum {
    BW_STATE_PF = 1,
    BW_STATE_HIER = 2,
    BW_STATE_FUSION = 3,
} bw_state_kind_t;

/**
 * @brief Snapshot a model.
 * @param blob  set to a new buffer; the caller owns it (release: bw_free).
 */
bw_err_t bw_state_save_pf(const bw_pf_t *pf, uint8_t **blob, size_t *len);
bw_err_t bw_state_save_hier(const bw_hier_t *h, uint8_t **blob, size_t *len);
bw_err_t bw_state_save_fusion(const bw_fusion_t *fu, uint8_t **blob,
                              size_t *len);

/** @brief Append a snapshot to @p w (a reused buffer; no allocation once
 * it has grown). */
bw_err_t bw_state_append_pf(const bw_pf_t *pf, bw_wbuf_t *w);
bw_err_t bw_state_append_hier(const bw_hier_t *h, bw_wbuf_t *w);
bw_err_t bw_state_append_fusion(const bw_fusion_t *fu, bw_wbuf_t *w);

/**
 * @brief Restore a snapshot into a model created with the same config.
 * @returns BW_ERR_CORRUPT (bad magic, length, checksum, shape or trailing
 * bytes, a value out of range) or BW_ERR_VERSION (unknown format
 * version), with errstr set. All or nothing: on failure the model is
 * exactly as it was before the call.
 */
bw_err_t bw_state_load_pf(bw_pf_t *pf, const uint8_t *blob, size_t len,
                          char *errstr, size_t errstr_size);
bw_err_t bw_state_load_hier(bw_hier_t *h, const uint8_t *blob, size_t len,
                            char *errstr, size_t errstr_size);
bw_err_t bw_state_load_fusion(bw_fusion_t *fu, const uint8_t *blob, size_t len,
                              char *errstr, size_t errstr_size);

/* ---- the changelog envelope ---- */

#define BW_ENVELOPE_VERSION 1

typedef enum {
    BW_REC_SERIES = 1, /* a series: activity and its filter (if any) */
    BW_REC_GROUP = 2,  /* a pooled group: regions and hierarchy */
    BW_REC_ENTITY = 3, /* a fusion entity's windows */
    BW_REC_META = 4,   /* the partition's engine: watermark */
} bw_rec_kind_t;

typedef struct {
    uint32_t version;
    uint32_t kind;           /* bw_rec_kind_t */
    uint64_t config_version; /* of the config section the state belongs to */
    int64_t offset;          /* the input offset after the state's last event */
    const uint8_t *body;     /* borrowed from the parsed bytes */
    size_t body_len;
} bw_envelope_t;

/** @brief Start an envelope at the end of @p w; returns its start for
 * bw_envelope_end. */
size_t bw_envelope_begin(bw_wbuf_t *w, bw_rec_kind_t kind,
                         uint64_t config_version, int64_t offset);
/** @brief Patch the body length and append the checksum. */
bw_err_t bw_envelope_end(bw_wbuf_t *w, size_t start);
/**
 * @brief Check magic, version, length and checksum of a record value.
 * @returns BW_OK (env's body borrows @p v), BW_ERR_VERSION (a newer
 * envelope) or BW_ERR_CORRUPT, with errstr set.
 */
bw_err_t bw_envelope_parse(const uint8_t *v, size_t len, bw_envelope_t *env,
                           char *errstr, size_t errstr_size);

#endif
