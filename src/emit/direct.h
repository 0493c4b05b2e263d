/*
 * A direct binary writer for the shipped AnomalyScore schema: the Avro
 * binary encoding (Avro 1.11 specification, "Binary Encoding": zig-zag
 * varints, little-endian IEEE doubles, length-prefixed strings, union
 * branch indices) written field by field, without Avro-C's generic values
 * (which cost ~15% of the stage's time per event). Used only when the
 * encoder's schema has exactly the field layout written here (checked once
 * at start-up); tests assert byte equality with the generic path.
 */
#ifndef BW_EMIT_DIRECT_H
#define BW_EMIT_DIRECT_H

#include <stdbool.h>

#include <avro.h>

#include "bayeswatch/emit.h"

/** True if @p schema is field for field the layout bw__direct_score writes. */
bool bw__direct_score_fits(avro_schema_t schema);

/** Append the unframed Avro encoding of one score record to @p w. */
void bw__direct_score(bw_wbuf_t *w, const bw_event_t *ev, const bw_score_t *sc,
                      const bw_origin_t *o);

/** Test hook: make @p e use Avro-C's generic values (the reference path). */
void bw__encoder_force_generic(bw_encoder_t *e);

#endif
