/*
 * Shared Avro plumbing (see avro_io.h): parse once, reuse the value.
 */
#include <string.h>

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

int bw__avro_unframe(const uint8_t *buf, size_t len, int32_t *schema_id,
                     const uint8_t **body, size_t *blen)
{
    if (len < BW__FRAME_LEN || buf[0] != BW__FRAME_MAGIC) {
        return -1;
    }
    *schema_id = (int32_t)((uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 |
                           (uint32_t)buf[3] << 8 | buf[4]);
    *body = buf + BW__FRAME_LEN;
    *blen = len - BW__FRAME_LEN;
    return 0;
}

int bw__avro_get_long(const uint8_t **p, const uint8_t *end, int64_t *out)
{
    uint64_t v = 0;
    const uint8_t *q = *p;

    for (int shift = 0; shift < 70; shift += 7) {
        uint8_t b;
        if (q >= end) {
            return -1;
        }
        b = *q++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            *p = q;
            return 0;
        }
    }
    return -1;
}

int bw__avro_get_double(const uint8_t **p, const uint8_t *end, double *out)
{
    uint64_t u = 0;

    if (end - *p < 8) {
        return -1;
    }
    for (int i = 0; i < 8; i++) {
        u |= (uint64_t)(*p)[i] << (8 * i);
    }
    memcpy(out, &u, 8);
    *p += 8;
    return 0;
}

void bw__avro_put_long(bw_wbuf_t *w, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    uint8_t b[10];
    size_t n = 0;

    while (z > 0x7f) {
        b[n++] = (uint8_t)((z & 0x7f) | 0x80);
        z >>= 7;
    }
    b[n++] = (uint8_t)z;
    bw_wbuf_bytes(w, b, n);
}
