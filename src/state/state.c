/*
 * Snapshot framing around each model's own serialisation, and the
 * changelog envelope (state.h). Loads are all-or-nothing: the live model
 * is snapshotted before the blob is read into it and the snapshot is put
 * back if anything in the blob fails its checks (sizes, shape, finite
 * values, ranges, trailing bytes), so a bad blob never leaves a
 * half-loaded model.
 */
#include <string.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/state.h"
#include "bayeswatch/hash.h"

#define HDR_LEN 20
static const uint8_t magic[4] = {'B', 'W', 'S', 'T'};

typedef bw_err_t (*save_fn)(const void *model, bw_wbuf_t *w);
typedef bw_err_t (*load_fn)(void *model, bw_rbuf_t *r);

/* Append a framed snapshot of @p model to @p w. */
static bw_err_t append(const void *model, save_fn fn, bw_state_kind_t kind,
                       bw_wbuf_t *w)
{
    size_t start = w->len, plen;
    bw_err_t err;

    bw_wbuf_bytes(w, magic, 4);
    bw_wbuf_u32(w, BW_STATE_VERSION);
    bw_wbuf_u32(w, (uint32_t)kind);
    bw_wbuf_u64(w, 0); /* patched below */
    err = fn(model, w);
    if (err != BW_OK || w->err != BW_OK) {
        return err != BW_OK ? err : w->err;
    }
    plen = w->len - start - HDR_LEN;
    bw_wbuf_patch_u64(w, start + 12, (uint64_t)plen);
    bw_wbuf_u32(w, bw_crc32(0, w->data + start, w->len - start));
    return w->err;
}

static bw_err_t save(const void *model, save_fn fn, bw_state_kind_t kind,
                     uint8_t **blob, size_t *len)
{
    bw_wbuf_t w = {0};
    bw_err_t err = append(model, fn, kind, &w);

    if (err != BW_OK) {
        bw_wbuf_free(&w);
        return err;
    }
    *blob = w.data;
    *len = w.len;
    return BW_OK;
}

static bw_err_t load_into(void *model, load_fn fn, bw_state_kind_t kind,
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

/* All-or-nothing: the model's own snapshot is put back if the blob fails.
 * Reloading a snapshot this build just wrote cannot fail. */
static bw_err_t load(void *model, save_fn sfn, load_fn lfn,
                     bw_state_kind_t kind, const uint8_t *blob, size_t len,
                     char *errstr, size_t errstr_size)
{
    bw_wbuf_t backup = {0};
    bw_err_t err = append(model, sfn, kind, &backup);

    if (err != BW_OK) {
        bw_wbuf_free(&backup);
        return bw_seterr(errstr, errstr_size, err,
                         "state: cannot snapshot the model before loading");
    }
    err = load_into(model, lfn, kind, blob, len, errstr, errstr_size);
    /* a model's load that runs out of memory has changed nothing (each
     * allocates before it reads, fusion's scratch): putting the snapshot
     * back would need memory too, and had aborted the process */
    if (err != BW_OK && err != BW_ERR_NOMEM) {
        BW_ASSERT(load_into(model, lfn, kind, backup.data, backup.len, NULL,
                            0) == BW_OK);
    }
    bw_wbuf_free(&backup);
    return err;
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
    return load(pf, pf_save, pf_load, BW_STATE_PF, blob, len, errstr,
                errstr_size);
}

bw_err_t bw_state_load_hier(bw_hier_t *h, const uint8_t *blob, size_t len,
                            char *errstr, size_t errstr_size)
{
    return load(h, hier_save, hier_load, BW_STATE_HIER, blob, len, errstr,
                errstr_size);
}

bw_err_t bw_state_load_fusion(bw_fusion_t *fu, const uint8_t *blob, size_t len,
                              char *errstr, size_t errstr_size)
{
    return load(fu, fusion_save, fusion_load, BW_STATE_FUSION, blob, len,
                errstr, errstr_size);
}

bw_err_t bw_state_append_pf(const bw_pf_t *pf, bw_wbuf_t *w)
{
    return append(pf, pf_save, BW_STATE_PF, w);
}

bw_err_t bw_state_append_hier(const bw_hier_t *h, bw_wbuf_t *w)
{
    return append(h, hier_save, BW_STATE_HIER, w);
}

bw_err_t bw_state_append_fusion(const bw_fusion_t *fu, bw_wbuf_t *w)
{
    return append(fu, fusion_save, BW_STATE_FUSION, w);
}

/* ---- the changelog envelope ---- */

#define ENV_HDR_LEN 36
static const uint8_t env_magic[4] = {'B', 'W', 'C', 'L'};

size_t bw_envelope_begin(bw_wbuf_t *w, bw_rec_kind_t kind,
                         uint64_t config_version, int64_t offset)
{
    size_t start = w->len;

    bw_wbuf_bytes(w, env_magic, 4);
    bw_wbuf_u32(w, BW_ENVELOPE_VERSION);
    bw_wbuf_u32(w, (uint32_t)kind);
    bw_wbuf_u64(w, config_version);
    bw_wbuf_i64(w, offset);
    bw_wbuf_u64(w, 0); /* body length, patched by bw_envelope_end */
    return start;
}

bw_err_t bw_envelope_end(bw_wbuf_t *w, size_t start)
{
    uint64_t blen;

    if (w->err != BW_OK) {
        return w->err;
    }
    blen = (uint64_t)(w->len - start - ENV_HDR_LEN);
    bw_wbuf_patch_u64(w, start + 28, blen);
    bw_wbuf_u32(w, bw_crc32(0, w->data + start, w->len - start));
    return w->err;
}

bw_err_t bw_envelope_parse(const uint8_t *v, size_t len, bw_envelope_t *env,
                           char *errstr, size_t errstr_size)
{
    bw_rbuf_t r;
    uint64_t blen;

    if (v == NULL || len < ENV_HDR_LEN + 4 || memcmp(v, env_magic, 4) != 0) {
        return bw_seterr(errstr, errstr_size, BW_ERR_CORRUPT,
                         "changelog record: not a bayeswatch state envelope");
    }
    bw_rbuf_init(&r, v + 4, len - 4);
    env->version = bw_rbuf_u32(&r);
    env->kind = bw_rbuf_u32(&r);
    env->config_version = bw_rbuf_u64(&r);
    env->offset = bw_rbuf_i64(&r);
    blen = bw_rbuf_u64(&r);
    if (env->version != BW_ENVELOPE_VERSION) {
        return bw_seterr(errstr, errstr_size, BW_ERR_VERSION,
                         "changelog record: envelope version %u (this build "
                         "reads %d)",
                         env->version, BW_ENVELOPE_VERSION);
    }
    if (blen != len - ENV_HDR_LEN - 4) {
        return bw_seterr(errstr, errstr_size, BW_ERR_CORRUPT,
                         "changelog record: length mismatch");
    }
    bw_rbuf_init(&r, v + len - 4, 4);
    if (bw_rbuf_u32(&r) != bw_crc32(0, v, len - 4)) {
        return bw_seterr(errstr, errstr_size, BW_ERR_CORRUPT,
                         "changelog record: checksum mismatch");
    }
    if (env->kind < BW_REC_SERIES || env->kind > BW_REC_META) {
        return bw_seterr(errstr, errstr_size, BW_ERR_CORRUPT,
                         "changelog record: unknown record kind %u", env->kind);
    }
    env->body = v + ENV_HDR_LEN;
    env->body_len = (size_t)blen;
    return BW_OK;
}
