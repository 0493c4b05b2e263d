/*
 * bw_avro: the Avro plumbing the ingest codec and the emit encoders share
 * (Avro 1.11 specification, "Binary Encoding"; Confluent wire format):
 * one schema with a reusable generic value and a memory writer, the
 * Confluent frame (magic byte 0, big-endian schema id), and the zig-zag
 * varint and little-endian double read and written directly.
 */
#ifndef BW_AVRO_IO_H
#define BW_AVRO_IO_H

#include <stddef.h>
#include <stdint.h>

#include <avro.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/err.h"

#define BW__AVRO_SCRATCH 65536
#define BW__FRAME_LEN 5
#define BW__FRAME_MAGIC 0

typedef struct {
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t value;
    avro_writer_t writer;
    int framed; /* Confluent framing on output */
    int32_t schema_id;
    char scratch[BW__AVRO_SCRATCH];
} bw__avro_t;

/** Parse @p json and set up the value and writer; errstr on failure. */
bw_err_t bw__avro_init(bw__avro_t *a, const char *json, size_t len, int framed,
                       int32_t schema_id, const char *who, char *errstr,
                       size_t errstr_size);
/** Release what init set up (safe on a zeroed or half-initialised one). */
void bw__avro_free(bw__avro_t *a);
/** Append the Confluent header (magic 0, schema id) if framed. */
void bw__avro_frame(const bw__avro_t *a, bw_wbuf_t *w);
/** Append the (framed) encoding of a->value to @p w. */
bw_err_t bw__avro_write(bw__avro_t *a, bw_wbuf_t *w);

/**
 * @brief Split a Confluent-framed message: its schema id and Avro body.
 * @returns 0, or -1 if @p buf is shorter than a frame or its magic byte
 *  is not 0.
 */
int bw__avro_unframe(const uint8_t *buf, size_t len, int32_t *schema_id,
                     const uint8_t **body, size_t *blen);

/** A zig-zag varint at *p (before @p end), at most 10 bytes; advances *p.
 * @returns 0, or -1 if it runs past @p end or over 10 bytes. */
int bw__avro_get_long(const uint8_t **p, const uint8_t *end, int64_t *out);
/** A little-endian IEEE double; -1 if fewer than 8 bytes remain. */
int bw__avro_get_double(const uint8_t **p, const uint8_t *end, double *out);
/** Append @p v as a zig-zag varint. */
void bw__avro_put_long(bw_wbuf_t *w, int64_t v);

#endif
