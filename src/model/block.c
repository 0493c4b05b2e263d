/*
 * Collective anomalies: a second filter on block means.
 *
 * A run of values that are each unremarkable can together be far from
 * normal: an hour spent 2 noise sds high, spikes that come three times as
 * often, a busy state that lasts too long. The point model absorbs such a
 * run (its level follows it, its recurrent regime explains values it has
 * seen before), so no single event's posterior moves. Averaging m events
 * divides the noise variance by m and leaves a sustained deviation as it
 * is, so at the block scale the run is a clear spike or shift. This is the
 * multi-resolution view of a series (the aggregation step of multiscale
 * detectors); the means of m consecutive values of a local level model
 * follow again a local level model (temporal aggregation, Harvey 1989,
 * sec. 6.3), so the block means are filtered by the same robust
 * regime-switching model as the events (pf.c), with the same settings:
 * memory of the same time span (recur_window / m blocks), prior and floor
 * of the noise sd divided by sqrt(m), warm-up counted in blocks, and no
 * seasonal profile of its own.
 *
 * Inputs are the series' de-seasonalised values (its own profile) with each
 * value's point anomaly removed, v = y - p_anomaly (y - expected): a spike
 * the point model has already explained does not also move its block. Its
 * posterior probability that the block mean is anomalous is reported as
 * p_collective on the event that closes the block, except when the point
 * model reported an anomaly (p_anomaly >= 0.5) in this block or the
 * previous one and holds the changes it reports (abnormal episodes): that
 * deviation is already reported at its events, and a level shift moves
 * the next block's mean as well. Before the point model's episodes apply
 * (the first days, when its changes are onset-only) a flagged onset is
 * all it says of a change, which it then follows; the block's sustained
 * deviation is reported then, flag or not. When a seasonal profile
 * starts to apply, the series' filter moves this model's frame with its
 * own (pf.c, reframe_block), as it does at an adoption (bw__pf_shift).
 *
 * Cost: one filter step per m events and O(1) per event; memory: one
 * filter without seasonal profiles and with a memory m times shorter.
 */
#include <math.h>
#include <string.h>

#include "block.h"

#define BLOCK_SEED 0x9e3779b97f4a7c15ull

int bw__block_init(bw_block_t *b, const bw_pf_cfg_t *parent, uint64_t seed,
                   char *errstr, size_t errstr_size)
{
    memset(b, 0, sizeof(*b));
    if (parent->block_size < 2) {
        return 0;
    }
    b->size = parent->block_size;
    b->cfg = *parent;
    b->cfg.block_size = 0;
    b->cfg.recur_window = parent->recur_window / b->size;
    /* Sustained deviations are the point model's abnormal episodes when it
     * has them; the blocks keep onset-only shifts (a change of spike
     * density, a busy spell), with the default shift prior if the point
     * model has none. */
    b->cfg.p_episode = 0.0;
    /* A block mean of m values is near Gaussian whatever the tails of its
     * values (central limit): the blocks do not learn a tail. */
    b->cfg.tail_scale = 0.0;
    b->cfg.p_shift = parent->p_shift > 0.0 ? parent->p_shift : 0.001;

    /* A mean of m values has 1/sqrt(m) of their noise sd: so do the
     * block model's prior and floor (else the prior, worth one event, takes
     * hundreds of blocks to wash out under the discount). */
    b->cfg.scale_prior = parent->scale_prior / sqrt(b->size);
    b->cfg.scale_floor = parent->scale_floor / sqrt(b->size);
    b->cfg.daily.enabled = false;
    b->cfg.weekly.enabled = false;
    b->pf = bw_pf_new(&b->cfg, seed ^ BLOCK_SEED, errstr, errstr_size);
    return b->pf != NULL ? 0 : -1;
}

void bw__block_free(bw_block_t *b)
{
    bw_pf_destroy(b->pf);
    b->pf = NULL;
}

/* The block closes: filter its mean and report. */
static void close_block(bw_block_t *b, bw_pf_ws_t *ws, int64_t t_ms,
                        bool point_holds, bw_pf_out_t *out)
{
    bw_pf_out_t bo;
    double mean = b->sum / b->size;
    /* the reported mean is the values' own, and the prediction is moved
     * into their frame by the same offset: the profile's mean over the
     * block (its closing event's value had stood for it, off by up to a
     * tenth of a daily cycle's amplitude), any shift since they came */
    double offset = isnan(b->raw_sum) ? out->seasonal
                                      : b->raw_sum / b->size - mean;
    bool reported = point_holds && fmax(b->p_max, b->p_prev) >= 0.5;

    b->p_prev = b->p_max;
    b->p_max = 0.0;
    b->sum = b->raw_sum = 0.0;
    b->n = 0;
    if (bw_pf_update(b->pf, ws, t_ms, mean, &bo) != BW_OK || bo.warmup) {
        return;
    }
    out->block_closed = true;
    out->block_mean = mean + offset;
    out->block_expected = bo.expected + offset;
    out->p_collective = reported ? 0.0 : bo.p_anomaly;
    if (out->p_collective >= 0.5 && out->p_anomaly < 0.5) {
        /* the event's own direction stands where it reports one */
        out->direction =
            mean >= bo.expected ? BW_DIR_SUSTAINED_UP : BW_DIR_SUSTAINED_DOWN;
    }
}

void bw__block_add(bw_block_t *b, bw_pf_ws_t *ws, int64_t t_ms, double v,
                   double raw, bool point_holds, bw_pf_out_t *out)
{
    if (b->pf == NULL) {
        return;
    }
    b->sum += v;
    b->raw_sum += raw;
    b->p_max = fmax(b->p_max, out->p_anomaly);
    if (++b->n == b->size) {
        close_block(b, ws, t_ms, point_holds, out);
    }
}

void bw__block_save(const bw_block_t *b, bw_wbuf_t *w)
{
    if (b->pf == NULL) {
        return;
    }
    bw_wbuf_u32(w, (uint32_t)b->n);
    bw_wbuf_f64(w, b->sum);
    bw_wbuf_f64(w, b->p_max);
    bw_wbuf_f64(w, b->p_prev);
    bw_pf_save(b->pf, w); /* sticky w->err */
}

void bw__block_save_raw(const bw_block_t *b, bw_wbuf_t *w)
{
    if (b->pf != NULL) {
        bw_wbuf_f64(w, b->raw_sum);
    }
}

void bw__block_load_raw(bw_block_t *b, bw_rbuf_t *r, bool held)
{
    if (b->pf == NULL) {
        return;
    }
    /* before PF16 an open block's sum with the profile added back is not
     * known: its report uses the closing event's profile value, as then,
     * and a record saved before it closes holds the NaN (an open block's
     * only) */
    b->raw_sum = held ? bw_rbuf_f64(r) : b->n > 0 ? NAN : 0.0;
    if ((b->n == 0 && b->raw_sum != 0.0) ||
        !(isnan(b->raw_sum) ||
          fabs(b->raw_sum) <= 8.0 * BW_MODEL_MAX_ABS * b->size)) {
        r->err = BW_ERR_CORRUPT; /* an empty block; the models' range */
    }
}

void bw__block_load(bw_block_t *b, bw_rbuf_t *r)
{
    if (b->pf == NULL) {
        return;
    }
    b->n = (int)bw_rbuf_u32_in(r, 0, (uint32_t)b->size - 1);
    b->sum = bw_rbuf_finite(r);
    b->p_max = bw_rbuf_finite(r);
    b->p_prev = bw_rbuf_finite(r);
    if (!(b->p_max >= 0.0 && b->p_max <= 1.0 && b->p_prev >= 0.0 &&
          b->p_prev <= 1.0) ||
        (b->n == 0 && b->sum != 0.0)) { /* probabilities; an empty block */
        r->err = BW_ERR_CORRUPT;
    }
    if (r->err == BW_OK && bw_pf_load(b->pf, r) != BW_OK) {
        r->err = BW_ERR_CORRUPT;
    }
}

size_t bw__block_memory(const bw_block_t *b)
{
    return b->pf != NULL ? bw_pf_memory(b->pf) : 0;
}
