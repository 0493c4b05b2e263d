/*
 * Snapshot framing around each model's own serialisation.
 */
#include <string.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/state.h"
#include "bayeswatch/hash.h"

#define HDR_LEN 20
static const uint8_t magic[4] = {'B', 'W', 'S', 'T'};

typedef bw_err_t (*save_fn)(const void *model, bw_wbuf_t *w);
typedef bw_err_t (*load_fn)(void *model, bw_rbuf_t *r);

static bw_err_t save(const void *model, save_fn fn, bw_state_kind_t kind,
                     uint8_t **blob, size_t *len)
{
    bw_wbuf_t w = {0};
    size_t plen;
    bw_err_t err;

    bw_wbuf_bytes(&w, magic, 4);
    bw_wbuf_u32(&w, BW_STATE_VERSION);
    bw_wbuf_u32(&w, (uint32_t)kind);
    bw_wbuf_u64(&w, 0); /* patched below */
    err = fn(model, &w);
    if (err != BW_OK || w.err != BW_OK) {
        bw_wbuf_free(&w);
        return err != BW_OK ? err : w.err;
    }
    plen = w.len - HDR_LEN;
    for (int i = 0; i < 8; i++) {
        w.data[12 + i] = (uint8_t)((uint64_t)plen >> (8 * i));
    }
    bw_wbuf_u32(&w, bw_crc32(0, w.data, w.len));
    if (w.err != BW_OK) {
        bw_wbuf_free(&w);
        return BW_ERR_NOMEM;
    }
    *blob = w.data;
    *len = w.len;
    return BW_OK;
}

static bw_err_t load(void *model, load_fn fn, bw_state_kind_t kind,
                     const uint8_t *blob, size_t len, char *errstr,
                     size_t errstr_size)
{
    bw_rbuf_t r;
    uint32_t version, k, crc;
    uint64_t plen;
    bw_err_t err;

    if (blob == NULL || len < HDR_LEN + 4 || memcmp(blob, magic, 4) != 0) {
        return bw_seterr(errstr, errstr_size, BW_ERR_CORRUPT,
                         "state: not a bayeswatch state blob");
    }
    bw_rbuf_init(&r, blob + 4, len - 4);
    version = bw_rbuf_u32(&r);
    k = bw_rbuf_u32(&r);
    plen = bw_rbuf_u64(&r);
    if (version != BW_STATE_VERSION) {
        return bw_seterr(errstr, errstr_size, BW_ERR_VERSION,
                         "state: unsupported format version %u (this build "
                         "reads %d)",
                         version, BW_STATE_VERSION);
    }
    if (plen != len - HDR_LEN - 4) {
        return bw_seterr(errstr, errstr_size, BW_ERR_CORRUPT,
                         "state: length mismatch");
    }
    bw_rbuf_init(&r, blob + len - 4, 4);
    crc = bw_rbuf_u32(&r);
    if (crc != bw_crc32(0, blob, len - 4)) {
        return bw_seterr(errstr, errstr_size, BW_ERR_CORRUPT,
                         "state: checksum mismatch");
    }
    if (k != (uint32_t)kind) {
        return bw_seterr(errstr, errstr_size, BW_ERR_CORRUPT,
                         "state: blob holds model kind %u, expected %d", k,
                         (int)kind);
    }
    bw_rbuf_init(&r, blob + HDR_LEN, (size_t)plen);
    err = fn(model, &r);
    if (err == BW_OK && r.pos != r.len) {
        err = BW_ERR_CORRUPT;
    }
    if (err != BW_OK) {
        return bw_seterr(errstr, errstr_size, err,
                         "state: payload does not fit this model (%s)",
                         bw_strerror(err));
    }
    return BW_OK;
}

/* Adapters from the typed model functions to the generic ones. */
static bw_err_t pf_save(const void *m, bw_wbuf_t *w)
{
    return bw_pf_save(m, w);
}
static bw_err_t pf_load(void *m, bw_rbuf_t *r)
{
    return bw_pf_load(m, r);
}
static bw_err_t hier_save(const void *m, bw_wbuf_t *w)
{
    return bw_hier_save(m, w);
}
static bw_err_t hier_load(void *m, bw_rbuf_t *r)
{
    return bw_hier_load(m, r);
}
static bw_err_t fusion_save(const void *m, bw_wbuf_t *w)
{
    return bw_fusion_save(m, w);
}
static bw_err_t fusion_load(void *m, bw_rbuf_t *r)
{
    return bw_fusion_load(m, r);
}

bw_err_t bw_state_save_pf(const bw_pf_t *pf, uint8_t **blob, size_t *len)
{
    return save(pf, pf_save, BW_STATE_PF, blob, len);
}

bw_err_t bw_state_save_hier(const bw_hier_t *h, uint8_t **blob, size_t *len)
{
    return save(h, hier_save, BW_STATE_HIER, blob, len);
}

bw_err_t bw_state_save_fusion(const bw_fusion_t *fu, uint8_t **blob,
                              size_t *len)
{
    return save(fu, fusion_save, BW_STATE_FUSION, blob, len);
}

bw_err_t bw_state_load_pf(bw_pf_t *pf, const uint8_t *blob, size_t len,
                          char *errstr, size_t errstr_size)
{
    return load(pf, pf_load, BW_STATE_PF, blob, len, errstr, errstr_size);
}

bw_err_t bw_state_load_hier(bw_hier_t *h, const uint8_t *blob, size_t len,
                            char *errstr, size_t errstr_size)
{
    return load(h, hier_load, BW_STATE_HIER, blob, len, errstr, errstr_size);
}

bw_err_t bw_state_load_fusion(bw_fusion_t *fu, const uint8_t *blob, size_t len,
                              char *errstr, size_t errstr_size)
{
    return load(fu, fusion_load, BW_STATE_FUSION, blob, len, errstr,
                errstr_size);
}
