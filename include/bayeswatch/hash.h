/*
 * bayeswatch - checksums and hashing: CRC-32 for state blobs, FNV-1a 64 for
 * hash tables, seeds and config versions.
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#ifndef BAYESWATCH_HASH_H
#define BAYESWATCH_HASH_H

#include <stddef.h>
#include <stdint.h>

/** @brief CRC-32 (IEEE 802.3, reflected, as zlib's crc32). */
uint32_t bw_crc32(uint32_t crc, const void *buf, size_t len);

/** @brief FNV-1a 64-bit hash of @p len bytes, chained through @p h. */
uint64_t bw_hash64(uint64_t h, const void *buf, size_t len);
#define BW_HASH64_INIT 0xcbf29ce484222325ULL

#endif
