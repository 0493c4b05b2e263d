/*
 * Shared Avro plumbing (see avro_io.h): parse once, reuse the value.
 */
#include "avro_io.h"

bw_err_t bw__avro_init(bw__avro_t *a, const char *json, size_t len, int framed,
                       int32_t schema_id, const char *who, char *errstr,
                       size_t errstr_size)
{
    avro_schema_t s = NULL;

    a->framed = framed;
    a->schema_id = schema_id;
    if (avro_schema_from_json_length(json, len, &s) != 0) {
        return bw_seterr(errstr, errstr_size, BW_ERR_CONFIG, "%s: schema: %s",
                         who, avro_strerror());
    }
    a->schema = s;
    a->iface = avro_generic_class_from_schema(s);
    if (a->iface == NULL || avro_generic_value_new(a->iface, &a->value) != 0) {
        if (a->iface != NULL) {
            avro_value_iface_decref(a->iface);
            a->iface = NULL;
        }
        return bw_seterr(errstr, errstr_size, BW_ERR_NOMEM, "%s: %s", who,
                         avro_strerror());
    }
    a->writer = avro_writer_memory(a->scratch, BW__AVRO_SCRATCH);
    if (a->writer == NULL) {
        return bw_seterr(errstr, errstr_size, BW_ERR_NOMEM, "%s: %s", who,
                         avro_strerror());
    }
    return BW_OK;
}

void bw__avro_free(bw__avro_t *a)
{
    if (a->iface != NULL) {
        avro_value_decref(&a->value);
        avro_value_iface_decref(a->iface);
    }
    if (a->writer != NULL) {
        avro_writer_free(a->writer);
    }
    if (a->schema != NULL) {
        avro_schema_decref(a->schema);
    }
    a->iface = NULL, a->writer = NULL, a->schema = NULL;
}

void bw__avro_frame(const bw__avro_t *a, bw_wbuf_t *w)
{
    uint8_t frame[BW__FRAME_LEN] = {
        0, (uint8_t)(a->schema_id >> 24), (uint8_t)(a->schema_id >> 16),
        (uint8_t)(a->schema_id >> 8), (uint8_t)a->schema_id};

    if (a->framed) {
        bw_wbuf_bytes(w, frame, BW__FRAME_LEN);
    }
}

bw_err_t bw__avro_write(bw__avro_t *a, bw_wbuf_t *w)
{
    avro_writer_reset(a->writer);
    if (avro_value_write(a->writer, &a->value) != 0) {
        return BW_ERR_FULL;
    }
    bw__avro_frame(a, w);
    bw_wbuf_bytes(w, a->scratch, (size_t)avro_writer_tell(a->writer));
    return w->err;
}
