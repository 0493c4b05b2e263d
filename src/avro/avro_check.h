/*
 * Bounds-checked structural walk of Avro binary (see avro_check.c).
 */
#ifndef BW_AVRO_CHECK_H
#define BW_AVRO_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include <avro.h>

/** @returns the bytes one datum of @p schema occupies at @p buf, or -1 if
 * the bytes are not a well-formed datum of it within @p len. */
long bw__avro_check(avro_schema_t schema, const uint8_t *buf, size_t len);

#endif
