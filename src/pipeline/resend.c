/*
 * The open transaction's outputs, kept to be produced again after an
 * abort when there is no state changelog (exactly_once with
 * state.changelog: false; the demo, several input topics).
 *
 * With a changelog an abort restores the models of the partitions in the
 * transaction to its start and scores their records again (txn.c).
 * Without one the models keep what the aborted records taught them:
 * scored again, those records were late for their series (unscored, the
 * score lost) or counted twice in a pooled group. But the outputs they
 * gave the first time are what an uninterrupted run writes, so the stage
 * produces those again in the next transaction, in the order they were
 * produced, and goes on from where its input was (no seek back). A
 * read_committed consumer then sees what one uninterrupted run writes:
 * the aborted copies are never visible (KIP-98). An output whose produce
 * failed and asked for the abort is kept as well, so its record counts as
 * done and is not scored twice. A partition lost to a rebalance takes its
 * outputs with it: its new owner scores its records again.
 *
 * Memory: the open transaction's outputs (keys, values, headers), kept in
 * buffers that a commit empties and the next transaction reuses.
 */
#include <string.h>

#include "bayeswatch/mem.h"
#include "pipeline_int.h"

void bw__resend_init(bw_pipeline_t *p)
{
    pthread_mutex_init(&p->rs_mu, NULL);
}

static void drop_headers(bw_pipeline_t *p)
{
    for (size_t i = 0; i < p->rs_n; i++) {
        if (p->rs[i].hdrs != NULL) {
            rd_kafka_headers_destroy(p->rs[i].hdrs);
            p->rs[i].hdrs = NULL;
        }
    }
}

void bw__resend_free(bw_pipeline_t *p)
{
    drop_headers(p);
    bw_free(p->rs);
    bw_wbuf_free(&p->rs_bytes);
    pthread_mutex_destroy(&p->rs_mu);
}

void bw__resend_clear(bw_pipeline_t *p)
{
    pthread_mutex_lock(&p->rs_mu);
    drop_headers(p);
    p->rs_n = 0;
    bw_wbuf_reset(&p->rs_bytes);
    pthread_mutex_unlock(&p->rs_mu);
}

/* Room for one more output (rs_mu held). */
static bw_err_t grow(bw_pipeline_t *p)
{
    size_t cap = p->rs_cap ? 2 * p->rs_cap : 256;
    rs_msg_t *m;

    if (p->rs_n < p->rs_cap) {
        return BW_OK;
    }
    m = bw_realloc(p->rs, cap * sizeof(*m));
    if (m == NULL) {
        return BW_ERR_NOMEM;
    }
    p->rs = m;
    p->rs_cap = cap;
    return BW_OK;
}

bw_err_t bw__resend_keep(bw_pipeline_t *p, rd_kafka_topic_t *rkt,
                         const void *key, size_t klen, const void *val,
                         size_t vlen, const rd_kafka_headers_t *hdrs,
                         const char *src_topic, int32_t src_part)
{
    size_t tlen = src_topic != NULL ? strlen(src_topic) : 0;
    bw_err_t err;
    rs_msg_t *m;

    pthread_mutex_lock(&p->rs_mu);
    err = grow(p);
    if (err == BW_OK) {
        m = &p->rs[p->rs_n];
        m->out = 0;
        while (m->out + 1 < OUT_TOPICS && p->out[m->out] != rkt) {
            m->out++;
        }
        m->has_key = key != NULL;
        m->src_part = src_part;
        m->src_off = p->rs_bytes.len;
        m->src_len = tlen;
        m->key_len = klen;
        m->val_len = vlen;
        bw_wbuf_bytes(&p->rs_bytes, src_topic != NULL ? src_topic : "", tlen);
        bw_wbuf_bytes(&p->rs_bytes, key != NULL ? key : "", klen);
        bw_wbuf_bytes(&p->rs_bytes, val != NULL ? val : "", vlen);
        m->hdrs = hdrs != NULL ? rd_kafka_headers_copy(hdrs) : NULL;
        err = p->rs_bytes.err != BW_OK || (hdrs != NULL && m->hdrs == NULL)
                  ? BW_ERR_NOMEM
                  : BW_OK;
        if (err == BW_OK) {
            p->rs_n++;
        } else if (m->hdrs != NULL) {
            rd_kafka_headers_destroy(m->hdrs);
        }
    }
    pthread_mutex_unlock(&p->rs_mu);
    return err != BW_OK ? bw__fatal(p, "keep an output", bw_strerror(err))
                        : BW_OK;
}

static bool from(const bw_pipeline_t *p, const rs_msg_t *m, const char *topic,
                 int32_t part)
{
    return m->src_part == part && m->src_len == strlen(topic) &&
           memcmp(p->rs_bytes.data + m->src_off, topic, m->src_len) == 0;
}

void bw__resend_forget(bw_pipeline_t *p, const char *topic, int32_t part)
{
    size_t n = 0;

    pthread_mutex_lock(&p->rs_mu);
    for (size_t i = 0; i < p->rs_n; i++) {
        if (from(p, &p->rs[i], topic, part)) {
            if (p->rs[i].hdrs != NULL) {
                rd_kafka_headers_destroy(p->rs[i].hdrs);
            }
            continue; /* its bytes stay until the commit empties them */
        }
        p->rs[n++] = p->rs[i];
    }
    p->rs_n = n;
    pthread_mutex_unlock(&p->rs_mu);
}

/* Produce one kept output again (its own copy of the headers). */
static bw_err_t produce_again(bw_pipeline_t *p, const rs_msg_t *m)
{
    const uint8_t *at = p->rs_bytes.data + m->src_off + m->src_len;

    return bw__producev(
        p, p->out[m->out], RD_KAFKA_PARTITION_UA, m->has_key ? at : NULL,
        m->key_len, at + m->key_len, m->val_len,
        m->hdrs != NULL ? rd_kafka_headers_copy(m->hdrs) : NULL);
}

/* Whether a partition has consumed past its committed offset. */
static bool moved(const bw_pipeline_t *p)
{
    for (int i = 0; i < p->n_tasks; i++) {
        if (p->tasks[i]->next > p->tasks[i]->committed) {
            return true;
        }
    }
    return false;
}

bw_err_t bw__resend(bw_pipeline_t *p)
{
    bw_err_t err = BW_OK;

    if (!p->resend || (p->rs_n == 0 && !moved(p))) {
        return BW_OK;
    }
    /* a transaction even with no output: the offsets past the aborted
     * records go into it (a commit without one sends none) */
    pthread_mutex_lock(&p->rs_mu);
    err = bw__begin_txn(p);
    for (size_t i = 0; err == BW_OK && i < p->rs_n; i++) {
        err = produce_again(p, &p->rs[i]);
    }
    pthread_mutex_unlock(&p->rs_mu);
    if (err == BW_OK) {
        bw__log(p, "produced the aborted transaction's %zu outputs again "
                   "(no state changelog: the models keep their records)",
                p->rs_n);
    }
    /* an abort it asked for produces them again at the next step */
    return atomic_load(&p->failed) ? err : BW_OK;
}
