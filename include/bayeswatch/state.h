/*
 * bayeswatch - model snapshots: versioned, checksummed binary blobs.
 *
 * Layout (little-endian): "BWST" | u32 format version | u32 kind |
 * u64 payload length | payload | u32 CRC-32 of all preceding bytes.
 * The payload is the model's own save format, which starts with a model
 * tag and its shape, and includes the RNG state: a model restored from a
 * blob continues bit-identically.
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#ifndef BAYESWATCH_STATE_H
#define BAYESWATCH_STATE_H

#include <stddef.h>
#include <stdint.h>

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

/**
 * @brief Restore a snapshot into a model created with the same config.
 * @returns BW_ERR_CORRUPT (bad magic, length, checksum, shape or trailing
 * bytes) or BW_ERR_VERSION (unknown format version), with errstr set; the
 * model may then hold partial state and should be discarded.
 */
bw_err_t bw_state_load_pf(bw_pf_t *pf, const uint8_t *blob, size_t len,
                          char *errstr, size_t errstr_size);
bw_err_t bw_state_load_hier(bw_hier_t *h, const uint8_t *blob, size_t len,
                            char *errstr, size_t errstr_size);
bw_err_t bw_state_load_fusion(bw_fusion_t *fu, const uint8_t *blob, size_t len,
                              char *errstr, size_t errstr_size);

#endif
