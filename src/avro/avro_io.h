/*
 * One Avro schema with a reusable generic value and a memory writer, and
 * Confluent framing: shared by the ingest codec and the emit encoders.
 */
#ifndef BW_INGEST_AVRO_IO_H
#define BW_INGEST_AVRO_IO_H

#include <stddef.h>
#include <stdint.h>

#include <avro.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/err.h"

#define BW__AVRO_SCRATCH 65536
#define BW__FRAME_LEN 5

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

/** Test hook: make the codec decode with Avro-C's generic values. */
struct bw_codec_s;
void bw__codec_force_generic(struct bw_codec_s *c);
#endif
