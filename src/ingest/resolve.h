/* Writer-schema resolution for the ingest codec (internal). */
#ifndef BW_INGEST_RESOLVE_H
#define BW_INGEST_RESOLVE_H

#include <stdbool.h>
#include <stdint.h>

#include <avro.h>

#include "bayeswatch/err.h"

/* One writer schema, ready to decode with. */
typedef struct {
    int32_t id;
    bw_err_t status;         /* BW_OK, or BW_ERR_PARSE: incompatible */
    char why[256];           /* why it is incompatible */
    avro_schema_t writer;    /* the writer schema, aliases applied */
    avro_schema_t reduced;   /* the reader less what the writer lacks */
    avro_value_iface_t *cls; /* generic class of `reduced` */
    avro_value_iface_t *res; /* resolved writer: writer -> reduced */
    avro_value_t out, rw;    /* a reduced value; the resolver around it */
    bool direct;             /* the shipped layout: read it directly */
} bw__writer_t;

/**
 * @brief Prepare @p w to decode records written with @p writer_json into
 * the reader schema @p reader_json (schemas/metric_event.avsc). Avro
 * schema resolution (Avro 1.11 specification, "Schema Resolution") by
 * Avro-C's resolved writer, with the two parts Avro-C lacks done here:
 * field aliases (a reader field matches a writer field of another name
 * when either lists the other's name among its aliases: the writer field
 * is renamed, which leaves the binary layout unchanged) and reader
 * defaults (a reader field the writer lacks is dropped from the reader
 * schema resolved against, and decodes as its default; without a default
 * the writer is incompatible).
 * @returns BW_OK with w->status BW_OK or BW_ERR_PARSE (incompatible,
 * w->why says why); BW_ERR_NOMEM.
 */
bw_err_t bw__writer_init(bw__writer_t *w, int32_t id, const char *writer_json,
                         const char *reader_json);
/** Release @p w (safe on a zeroed one). */
void bw__writer_free(bw__writer_t *w);

#endif
