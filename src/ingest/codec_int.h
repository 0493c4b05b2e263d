/* Test hooks of the ingest codec (src/ingest/codec.c). */
#ifndef BW_INGEST_CODEC_INT_H
#define BW_INGEST_CODEC_INT_H

#include "bayeswatch/ingest.h"

/** Make @p c decode with Avro-C's generic values (the reference path). */
void bw__codec_force_generic(bw_codec_t *c);

#endif
