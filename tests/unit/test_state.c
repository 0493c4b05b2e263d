/*
 * Model state: run half a series, save, load into a fresh model, run the
 * rest -> output bit-identical to an uninterrupted run. Corrupt, truncated,
 * wrong-kind, wrong-shape and unknown-version blobs are rejected. Cleanup
 * paths are exercised by failing the Nth allocation.
 */
#include <gsl/gsl_errno.h>

#include "../../src/model/block.h"
#include "bayeswatch/engine.h"
#include "bayeswatch/state.h"
#include "testutil.h"
#include "bayeswatch/mem.h"

#define N_EV 3000
#define HALF 1700

static double series_value(bw_rng_t *rng, int t)
{
    double v = 100 + 10 * sin(2 * M_PI * t / 288.0) + bw_rng_gauss(rng);

    return (t % 500 == 250) ? v + 40 : v;
}

static void run_pf(const bw_pf_cfg_t *c, bw_pf_t *pf, bw_pf_ws_t *ws, int from,
                   int to, bw_pf_out_t *outs)
{
    bw_rng_t rng;

    bw_rng_seed(&rng, 77);
    for (int t = 0; t < to; t++) {
        double v = series_value(&rng, t);
        if (t >= from) {
            assert_int_equal(
                bw_pf_update(pf, ws, (int64_t)t * 300000, v, &outs[t]), BW_OK);
        }
    }
    (void)c;
}

static void test_pf_identity(void **state)
{
    bw_pf_cfg_t c = test_pf_cfg();
    static bw_pf_out_t a[N_EV], b[N_EV];
    bw_pf_t *pf1, *pf2, *pf3;
    bw_pf_ws_t *ws = NULL;
    uint8_t *blob = NULL;
    size_t len = 0;
    char err[128];

    (void)state;
    c.daily.enabled = true;
    c.weekly.enabled = true;
    c.trend = true;
    ws = bw_pf_ws_new(&c);
    pf1 = bw_pf_new(&c, 42, NULL, 0);
    run_pf(&c, pf1, ws, 0, N_EV, a);

    memset(b, 0, sizeof(b));
    pf2 = bw_pf_new(&c, 42, NULL, 0);
    run_pf(&c, pf2, ws, 0, HALF, b);
    assert_int_equal(bw_state_save_pf(pf2, &blob, &len), BW_OK);
    bw_pf_destroy(pf2);
    pf3 = bw_pf_new(&c, 999, NULL, 0); /* a different seed: the blob wins */
    if (bw_state_load_pf(pf3, blob, len, err, sizeof(err)) != BW_OK) {
        fail_msg("load: %s", err);
    }
    run_pf(&c, pf3, ws, HALF, N_EV, b);
    assert_memory_equal(a, b, sizeof(a));
    { /* the blob held an open block and a warm block model */
        int closed = 0;
        for (int t = HALF; t < N_EV; t++) {
            closed += b[t].block_closed;
        }
        assert_int_not_equal(HALF % c.block_size, 0);
        /* event t closes a block when t + 1 is a multiple of the size */
        assert_int_equal(closed, N_EV / c.block_size - HALF / c.block_size);
    }
    print_message("pf blob: %zu bytes (particles %d, daily+weekly)\n", len,
                  c.particles);
    bw_free(blob);
    bw_pf_destroy(pf1);
    bw_pf_destroy(pf3);
    bw_pf_ws_destroy(ws);
}

/* One filter over 60 one-minute values of N(1e6, 1) from @p from to @p
 * to (the data the same whatever the range). */
static void run_far(bw_pf_t *pf, bw_pf_ws_t *ws, int from, int to,
                    bw_pf_out_t *outs)
{
    bw_rng_t rng;

    bw_rng_seed(&rng, 5);
    for (int t = 0; t < to; t++) {
        double v = 1e6 + bw_rng_gauss(&rng);
        if (t >= from) {
            assert_int_equal(
                bw_pf_update(pf, ws, (int64_t)t * 60000, v, &outs[t]), BW_OK);
        }
    }
}

/* A cut before the noise prior's cap (at the 10th event): the steps summed
 * so far are state. At 1e6 with unit noise the cap binds, so a filter
 * saved at event 5 and restored goes on exactly as the one never cut; its
 * PF14 end is then checked: the sum negative (but for the capped mark,
 * -1) or infinite, the memory's origin beyond the models' range, not
 * finite, or set before any value, each refuse the blob. */
static void test_pf_cut_before_the_cap(void **state)
{
    bw_pf_cfg_t c = test_pf_cfg();
    static bw_pf_out_t a[60], b[60];
    bw_pf_t *pf1, *pf2, *pf3;
    bw_pf_ws_t *ws;
    bw_wbuf_t w = {0};
    bw_rbuf_t r;
    static const double bad_sum[] = {-2.0, -0.5, INFINITY};
    static const double bad_origin[] = {1e300, -2e30, INFINITY, NAN};
    /* PF16's open block sum with the profile added back comes last */
    const size_t blk = c.block_size > 0 ? 8 : 0;

    (void)state;
    ws = bw_pf_ws_new(&c);
    pf1 = bw_pf_new(&c, 42, NULL, 0);
    pf2 = bw_pf_new(&c, 42, NULL, 0);
    pf3 = bw_pf_new(&c, 999, NULL, 0);
    run_far(pf1, ws, 0, 60, a);
    run_far(pf2, ws, 0, 5, b);
    assert_int_equal(bw_pf_save(pf2, &w), BW_OK);
    bw_rbuf_init(&r, w.data, w.len);
    assert_int_equal(bw_pf_load(pf3, &r), BW_OK);
    run_far(pf3, ws, 5, 60, b);
    assert_memory_equal(a, b, sizeof(a));
    for (size_t i = 0; i < sizeof(bad_sum) / sizeof(bad_sum[0]); i++) {
        put_f64_le(w.data, w.len - 16 - blk, bad_sum[i]);
        bw_rbuf_init(&r, w.data, w.len);
        assert_int_equal(bw_pf_load(pf3, &r), BW_ERR_CORRUPT);
    }
    put_f64_le(w.data, w.len - 16 - blk, -1.0); /* capped */
    bw_rbuf_init(&r, w.data, w.len);
    assert_int_equal(bw_pf_load(pf3, &r), BW_OK);
    for (size_t i = 0; i < sizeof(bad_origin) / sizeof(bad_origin[0]); i++) {
        put_f64_le(w.data, w.len - 8 - blk, bad_origin[i]);
        bw_rbuf_init(&r, w.data, w.len);
        assert_int_equal(bw_pf_load(pf3, &r), BW_ERR_CORRUPT);
    }
    bw_wbuf_free(&w);
    w = (bw_wbuf_t){0};
    bw_pf_destroy(pf2); /* before any value: the origin must be 0 */
    pf2 = bw_pf_new(&c, 42, NULL, 0);
    assert_int_equal(bw_pf_save(pf2, &w), BW_OK);
    bw_rbuf_init(&r, w.data, w.len);
    assert_int_equal(bw_pf_load(pf3, &r), BW_OK);
    put_f64_le(w.data, w.len - 8 - blk, 5.0);
    bw_rbuf_init(&r, w.data, w.len);
    assert_int_equal(bw_pf_load(pf3, &r), BW_ERR_CORRUPT);
    bw_wbuf_free(&w);
    bw_pf_destroy(pf1);
    bw_pf_destroy(pf2);
    bw_pf_destroy(pf3);
    bw_pf_ws_destroy(ws);
}

/* Earlier particle-filter formats are read. A PF16 blob without a block
 * model is PF15's under another tag. A PF15 blob's layout is
 * PF14's (PF15 holds the recurring spikes' sizes as excursions from the
 * level, PF14 as values: off here, so the PF14 blob is the PF15 one under
 * its tag; test_phase checks the conversion). A PF14 blob is a PF13 one
 * with the sum of the first steps (gone: the cap on the noise prior it
 * sets was made long before the cut) and the memory's origin at its end:
 * PF13 held the remembered values as they are, so the filter the PF14
 * blob came from is first put onto origin 0 (memory_at_origin_zero) and
 * goes on from there. A PF13 blob is a PF12 one
 * under its tag with the memory's times at its end (gone: none was logged
 * at the cut, and a PF12 memory is taken to have none); PF13 also leaves
 * an unconfirmed bin out of the profile's running sums, and a PF12
 * profile holding one has them recomputed on load: none has one at the
 * cut. A PF12 blob is a PF11 one
 * under its tag (PF12 adds a value to the profile's variances, an
 * unconfirmed bin's -1, that none has at the cut), and is turned into its
 * PF10 form (the tail counts gone). A PF10 blob is turned into its
 * PF09 form (the episode's gap and calm counts, two u32 at the end, gone:
 * no episode at the cut), a PF09 blob (daily profile
 * only) into its PF08 form (the profile's visit counts, their
 * sum and the open visit gone from its end: with one event per visit,
 * 5-minute data and 288 bins, the counts PF08 derives from the weights are
 * the same and no visit is open between events), and that PF08 blob
 * (PF08 as the tag says when the recurring spikes are off) into the forms
 * below. A PF07 blob is turned into its
 * PF06 form (tag "PF06", no visit ages after the 11 particle arrays), its
 * PF05 form (also no profile hold and pre-profile excursion after
 * `abn_run`) or its PF04 form (also no `framed` byte after `u_ok`); the
 * layouts are spelled out here, so a change to any of them fails this
 * test. Each loads, and the model goes on exactly as the PF07 one does (no
 * particle is on a visit at the cut, no episode was adopted and the
 * profile applies, so the missing visits, hold and excursion are none; the
 * frame flags PF04 lacked are derived from the profiles' age). */
#define PF06_EXTRA (8 + 8 + 8 + 8 + 4 + 4) /* held, excursion, calm, count */
/* PF13's memory times at a filter blob's end with no gap logged: newest
 * time, spacing, values pushed, horizon, its time and the time before
 * it, gap count; the tail counts before them */
#define PF_TIMES 52
/* PF14's end after the times: the first steps' sum and the memory's
 * origin */
#define PF14_END 16
#define PF_TAIL_END (PF14_END + PF_TIMES + 16)

/* The byte of a PF07-PF14 blob's `framed` flag (the layout below), with
 * no recurring spikes: the memory of recent values follows it. */
static size_t framed_at(int particles)
{
    size_t vis = 21 + 8 * 11 * (size_t)particles, nv = 8 * (size_t)particles;
    return vis + nv + 10 * 8 + 4 + PF06_EXTRA + 6 * 8 + 1; /* after u_ok */
}

/* A PF14 blob's memory re-expressed about origin 0, as PF13 held it (each
 * value plus the origin, to single precision; the running sum recomputed
 * as a wrap does): the filter it loads into then goes on as one loaded
 * from the PF13 form does. Values are little-endian floats after the
 * count, position and sum. */
static void memory_at_origin_zero(bw_wbuf_t *w, int particles)
{
    size_t mem = framed_at(particles) + 1;
    double ref = get_f64_le(w->data, w->len - 8), sum = 0.0;
    uint32_t n = get_u32_le(w->data, mem);

    assert_true(ref != 0.0); /* the filter's level */
    assert_true(n > 0);
    for (uint32_t k = 0; k < n; k++) {
        size_t at = mem + 16 + 4 * (size_t)k;
        float v = (float)(get_f32_le(w->data, at) + ref);
        sum += v;
        put_f32_le(w->data, at, v);
    }
    put_f64_le(w->data, mem + 8, sum);
    put_f64_le(w->data, w->len - 8, 0.0);
}
static void old_pf_format(bw_wbuf_t *w, int particles, int bins, int version)
{
    /* the daily profile's PF09 tail: bins doubles, a double, a u32 (the
     * open visit's bin + 1) and three doubles; nothing after it here */
    size_t pf09 = 8 * (size_t)bins + 8 + 4 + 3 * 8;
    /* header 21 bytes, 11 arrays of n doubles, the n visit ages (PF07), 10
     * 8-byte scalars and the
     * u32 abn_run, then held_since, exc_since, exc_level, exc_far, calm
     * and exc_events; 6 more 8-byte scalars, u_ok, framed */
    size_t vis = 21 + 8 * 11 * (size_t)particles, nv = 8 * (size_t)particles;
    size_t held = vis + 10 * 8 + 4;
    size_t framed = held + PF06_EXTRA + 6 * 8 + 1;

    /* "PF0v" or "PF1v", little-endian */
    w->data[0] = (uint8_t)('0' + version % 10);
    w->data[1] = (uint8_t)('0' + version / 10);
    if (version >= 14) {
        return; /* PF15 held the recurring spikes' sizes as excursions, as
                   values before: none here (test_phase converts them);
                   PF16 an open block's sum with the profile added back:
                   no block here */
    }
    /* PF14's sum of the first steps and memory origin at the end (the
     * origin 0 here: memory_at_origin_zero) */
    assert_true(get_f64_le(w->data, w->len - 8) == 0.0);
    w->len -= PF14_END;
    if (version == 13) {
        return;
    }
    /* PF13's memory times at the end (newest time, spacing, pushes,
     * horizon, its time and the one before, gap count, the gaps): this
     * regular series has no gap */
    assert_true(w->len > PF_TIMES);
    for (int i = 1; i <= 4; i++) {
        assert_int_equal(w->data[w->len - i], 0);
    }
    w->len -= PF_TIMES;
    if (version >= 11) {
        return; /* PF11's and PF12's layouts are PF13's (unconfirmed bins) */
    }
    assert_true(w->len > pf09 + 8 + 16);
    for (int i = 1; i <= 16; i++) { /* no tail node: its counts 0 */
        assert_int_equal(w->data[w->len - i], 0);
    }
    w->len -= 16;
    if (version == 10) {
        return;
    }
    for (int i = 1; i <= 8; i++) { /* no episode: gap and calm counts 0 */
        assert_int_equal(w->data[w->len - i], 0);
    }
    w->len -= 8;
    if (version == 9) {
        return;
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(w->data[w->len - 28 + i], 0); /* no open visit */
    }
    w->len -= pf09;
    if (version >= 7) {
        return; /* PF07 lacks only the recurring spikes, off here */
    }
    for (size_t i = 0; i < nv; i++) {
        assert_int_equal(w->data[vis + i], 0); /* no particle on a visit */
    }
    memmove(w->data + vis, w->data + vis + nv, w->len - vis - nv);
    w->len -= nv;
    if (version == 6) {
        return;
    }
    assert_true(framed < w->len);
    assert_int_equal(w->data[framed], 1); /* the daily frame moved */
    if (version == 4) {
        memmove(w->data + framed, w->data + framed + 1, w->len - framed - 1);
        w->len--;
    }
    for (int i = 0; i < 16; i++) {
        assert_int_equal(w->data[held + i], 0xff); /* held, exc_since -1 */
    }
    memmove(w->data + held, w->data + held + PF06_EXTRA,
            w->len - held - PF06_EXTRA);
    w->len -= PF06_EXTRA;
}

static void pf_reads_old(int version)
{
    bw_pf_cfg_t c = test_pf_cfg();
    static bw_pf_out_t a[N_EV], b[N_EV];
    bw_pf_t *pf = NULL, *old = NULL;
    bw_pf_ws_t *ws = NULL;
    bw_wbuf_t w = {0};
    bw_rbuf_t r;

    c.daily.enabled = true;    /* a profile in use: framed = 1 by HALF */
    c.weekly.enabled = false;  /* one profile in the layout below */
    c.block_size = 0;          /* no nested filter (it would be old too) */
    c.recur_spike_prior = 0.0; /* no recurring spikes (PF08) to leave out */
    ws = bw_pf_ws_new(&c);
    pf = bw_pf_new(&c, 5, NULL, 0);
    run_pf(&c, pf, ws, 0, HALF, a);
    assert_int_equal(bw_pf_save(pf, &w), BW_OK);
    assert_memory_equal(w.data, "\x36\x31\x46\x50", 4); /* "PF16" */
    if (version < 14) {
        /* the filter goes on from its memory as an older format held it */
        memory_at_origin_zero(&w, c.particles);
        bw_rbuf_init(&r, w.data, w.len);
        assert_int_equal(bw_pf_load(pf, &r), BW_OK);
    }
    old_pf_format(&w, c.particles, c.daily.bins, version);
    old = bw_pf_new(&c, 99, NULL, 0);
    run_pf(&c, old, ws, 0, HALF, b); /* a live filter: its own origin */
    bw_rbuf_init(&r, w.data, w.len);
    assert_int_equal(bw_pf_load(old, &r), BW_OK);
    assert_int_equal(r.pos, w.len);
    memset(b, 0, sizeof(b));
    memcpy(b, a, sizeof(a[0]) * HALF);
    run_pf(&c, pf, ws, HALF, N_EV, a);
    run_pf(&c, old, ws, HALF, N_EV, b);
    assert_memory_equal(a, b, sizeof(a));
    bw_wbuf_free(&w);
    bw_pf_destroy(pf);
    bw_pf_destroy(old);
    bw_pf_ws_destroy(ws);
}

static void test_pf_reads_pf15(void **state)
{
    (void)state;
    pf_reads_old(15);
}

static void test_pf_reads_pf14(void **state)
{
    (void)state;
    pf_reads_old(14);
}

static void test_pf_reads_pf13(void **state)
{
    (void)state;
    pf_reads_old(13);
}

static void test_pf_reads_pf12(void **state)
{
    (void)state;
    pf_reads_old(12);
}

static void test_pf_reads_pf11(void **state)
{
    (void)state;
    pf_reads_old(11);
}

static void test_pf_reads_pf10(void **state)
{
    (void)state;
    pf_reads_old(10);
}

/* A PF10 blob (no tail node) loads into a filter that learns the tail
 * (model.pf.tail_scale set since; through the engine the changed state
 * version discards it first): the tail restarts from its prior, even in a
 * filter that had learned one. A current blob's counts are checked: not
 * negative, at most the forgetting's bound, none without the node. */
static void test_pf10_gains_the_tail(void **state)
{
    bw_pf_cfg_t c = test_pf_cfg(), ct;
    static bw_pf_out_t a[N_EV];
    bw_pf_t *pf = NULL, *tailed = NULL;
    bw_pf_ws_t *ws = NULL;
    bw_wbuf_t w = {0}, wt = {0};
    bw_rbuf_t r;

    (void)state;
    c.daily.enabled = true;
    c.weekly.enabled = false;
    c.block_size = 0;
    c.recur_spike_prior = 0.0;
    ct = c;
    ct.tail_scale = 4.0;
    ws = bw_pf_ws_new(&ct);
    pf = bw_pf_new(&c, 5, NULL, 0);
    tailed = bw_pf_new(&ct, 99, NULL, 0);
    run_pf(&c, pf, ws, 0, HALF, a);
    run_pf(&ct, tailed, ws, 0, N_EV, a);
    /* Gaussian noise: learned down to 1.0e-4, away from the prior's mean */
    assert_true(fabs(bw__pf_tail(tailed) - 0.02 / 20.02) > 5e-4);
    assert_int_equal(bw_pf_save(tailed, &wt), BW_OK);
    assert_int_equal(bw_pf_save(pf, &w), BW_OK);
    memory_at_origin_zero(&w, c.particles);
    old_pf_format(&w, c.particles, c.daily.bins, 10);
    bw_rbuf_init(&r, w.data, w.len);
    assert_int_equal(bw_pf_load(tailed, &r), BW_OK);
    assert_int_equal(r.pos, w.len);
    assert_true(fabs(bw__pf_tail(tailed) - 0.02 / 20.02) < 1e-12);
    run_pf(&ct, tailed, ws, HALF, N_EV, a); /* and it runs on */
    /* a current blob without the node is another model: refused */
    bw_wbuf_free(&w);
    w = (bw_wbuf_t){0};
    assert_int_equal(bw_pf_save(pf, &w), BW_OK);
    bw_rbuf_init(&r, w.data, w.len);
    assert_int_equal(bw_pf_load(tailed, &r), BW_ERR_CORRUPT);
    /* the counts are the 16 bytes before the memory's times */
    {
        const double bad[][2] = {{-1.0, 10.0}, {10.0, 1e300}, {2000, 2000}};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            uint8_t *copy = bw_malloc(wt.len);
            memcpy(copy, wt.data, wt.len);
            put_f64_le(copy, wt.len - PF_TAIL_END, bad[i][0]);
            put_f64_le(copy, wt.len - PF_TAIL_END + 8, bad[i][1]);
            bw_rbuf_init(&r, copy, wt.len);
            assert_int_equal(bw_pf_load(tailed, &r), BW_ERR_CORRUPT);
            bw_free(copy);
        }
        put_f64_le(w.data, w.len - PF_TAIL_END, 1.0); /* without the node */
        bw_rbuf_init(&r, w.data, w.len);
        assert_int_equal(bw_pf_load(pf, &r), BW_ERR_CORRUPT);
    }
    bw_wbuf_free(&w);
    bw_wbuf_free(&wt);
    bw_pf_destroy(pf);
    bw_pf_destroy(tailed);
    bw_pf_ws_destroy(ws);
}

static void test_pf_reads_pf09(void **state)
{
    (void)state;
    pf_reads_old(9);
}

static void test_pf_reads_pf08(void **state)
{
    (void)state;
    pf_reads_old(8);
}

static void test_pf_reads_pf07(void **state)
{
    (void)state;
    pf_reads_old(7);
}

static void test_pf_reads_pf06(void **state)
{
    (void)state;
    pf_reads_old(6);
}

static void test_pf_reads_pf05(void **state)
{
    (void)state;
    pf_reads_old(5);
}

static void test_pf_reads_pf04(void **state)
{
    (void)state;
    pf_reads_old(4);
}

static void test_rejects_bad_blobs(void **state)
{
    bw_pf_cfg_t c = test_pf_cfg(), c2;
    bw_pf_t *pf = bw_pf_new(&c, 1, NULL, 0), *other;
    bw_pf_ws_t *ws = bw_pf_ws_new(&c);
    bw_pf_out_t out;
    uint8_t *blob = NULL;
    size_t len = 0;
    char err[128];

    (void)state;
    for (int t = 0; t < 10; t++) {
        bw_pf_update(pf, ws, t * 1000, t, &out);
    }
    assert_int_equal(bw_state_save_pf(pf, &blob, &len), BW_OK);
    /* flipped payload byte: checksum */
    blob[40] ^= 0x10;
    assert_int_equal(bw_state_load_pf(pf, blob, len, err, sizeof(err)),
                     BW_ERR_CORRUPT);
    assert_non_null(strstr(err, "checksum"));
    blob[40] ^= 0x10;
    /* truncated */
    assert_int_equal(bw_state_load_pf(pf, blob, len - 1, err, sizeof(err)),
                     BW_ERR_CORRUPT);
    assert_int_equal(bw_state_load_pf(pf, blob, 3, err, sizeof(err)),
                     BW_ERR_CORRUPT);
    /* unknown version */
    blob[4] = 99;
    assert_int_equal(bw_state_load_pf(pf, blob, len, err, sizeof(err)),
                     BW_ERR_VERSION);
    assert_non_null(strstr(err, "version 99"));
    blob[4] = BW_STATE_VERSION;
    /* wrong kind */
    {
        bw_hier_cfg_t hc;
        bw_config_t cfg;
        bw_hier_t *h;
        bw_config_defaults(&cfg);
        hc = cfg.model.hier;
        h = bw_hier_new(&hc, BW_HIER_COUNT, NULL, 0);
        assert_int_equal(bw_state_load_hier(h, blob, len, err, sizeof(err)),
                         BW_ERR_CORRUPT);
        bw_hier_destroy(h);
    }
    /* a filter of another shape */
    c2 = c;
    c2.particles = 16;
    other = bw_pf_new(&c2, 1, NULL, 0);
    assert_int_equal(bw_state_load_pf(other, blob, len, err, sizeof(err)),
                     BW_ERR_CORRUPT);
    /* the intact blob still loads */
    assert_int_equal(bw_state_load_pf(pf, blob, len, err, sizeof(err)), BW_OK);
    bw_pf_destroy(other);
    bw_free(blob);
    bw_pf_ws_destroy(ws);
    bw_pf_destroy(pf);
}

/* The saved blob (into @p w) of a filter of @p c fed @p steps values, t
 * at step t, or t % @p mod if mod > 0. */
static void saved_pf(const bw_pf_cfg_t *c, int steps, int mod, bw_wbuf_t *w)
{
    bw_pf_t *pf = bw_pf_new(c, 1, NULL, 0);
    bw_pf_ws_t *ws = bw_pf_ws_new(c);
    bw_pf_out_t out;

    for (int t = 0; t < steps; t++) {
        bw_pf_update(pf, ws, t * 1000, mod > 0 ? t % mod : t, &out);
    }
    assert_int_equal(bw_pf_save(pf, w), BW_OK);
    bw_pf_ws_destroy(ws);
    bw_pf_destroy(pf);
}

/* The episode's gap and calm counts (the PF10 tail, two u32, before the
 * tail counts and the memory's times) are checked on load: outside an
 * episode both must be 0, and a gap is at most EPISODE_GAP (3) events.
 * (Before PF13 this test wrote the blob's last 8 bytes, which since PF11
 * were the tail counts, refused for another reason.) */
static void test_pf_rejects_bad_gap(void **state)
{
    bw_pf_cfg_t c = test_pf_cfg();
    bw_pf_t *other = bw_pf_new(&c, 1, NULL, 0);
    bw_wbuf_t w = {0};
    const uint32_t bad[][2] = {{1, 0}, {0, 1}, {4, 0}};

    (void)state;
    saved_pf(&c, 10, 0, &w);
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        bw_rbuf_t r;
        for (int i = 0; i < 4; i++) { /* little-endian u32s */
            w.data[w.len - PF_TAIL_END - 8 + i] =
                (uint8_t)(bad[k][0] >> (8 * i));
            w.data[w.len - PF_TAIL_END - 4 + i] =
                (uint8_t)(bad[k][1] >> (8 * i));
        }
        bw_rbuf_init(&r, w.data, w.len);
        assert_int_equal(bw_pf_load(other, &r), BW_ERR_CORRUPT);
    }
    memset(w.data + w.len - PF_TAIL_END - 8, 0, 8);
    {
        bw_rbuf_t r;
        bw_rbuf_init(&r, w.data, w.len);
        assert_int_equal(bw_pf_load(other, &r), BW_OK);
    }
    bw_wbuf_free(&w);
    bw_pf_destroy(other);
}

typedef bw_err_t (*load_fn_t)(void *model, bw_rbuf_t *r);

static bw_err_t load_pf(void *model, bw_rbuf_t *r)
{
    return bw_pf_load(model, r);
}

static bw_err_t load_hier(void *model, bw_rbuf_t *r)
{
    return bw_hier_load(model, r);
}

/* Load the blob @p w into @p model with its double at byte @p off
 * replaced by @p v. */
static bw_err_t load_patched(const bw_wbuf_t *w, size_t off, double v,
                             load_fn_t load, void *model)
{
    uint8_t *copy = bw_malloc(w->len);
    bw_rbuf_t r;
    bw_err_t err;

    assert_non_null(copy);
    memcpy(copy, w->data, w->len);
    put_f64_le(copy, off, v);
    bw_rbuf_init(&r, copy, w->len);
    err = load(model, &r);
    bw_free(copy);
    return err;
}

/* A pf blob whose particles could not have come from a filter is refused:
 * NaN levels, a zero noise statistic (its t terms would be 0/0), an
 * episode flag that is neither 0 nor 1, a NaN log weight, a linear
 * weight above 1. The payload (bw_pf_save) is a tag and five header
 * fields (21 bytes), then the particle arrays m0 m1 c00 c01 c11 d ab ma
 * ca logw wlin, n doubles each. */
static void test_pf_rejects_bad_particles(void **state)
{
    bw_pf_cfg_t c = test_pf_cfg();
    bw_pf_t *other = bw_pf_new(&c, 1, NULL, 0);
    bw_wbuf_t w = {0};
    const struct {
        int array, particle;
        double v;
    } bad[] = {
        {0, 0, NAN}, {5, 3, 0.0}, {6, 1, 0.5}, {9, 2, NAN}, {10, 0, 2.0}};
    bw_rbuf_t r;

    (void)state;
    saved_pf(&c, 50, 7, &w);
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        size_t off = 21 + 8 * ((size_t)bad[k].array * (size_t)c.particles +
                               (size_t)bad[k].particle);
        assert_int_equal(load_patched(&w, off, bad[k].v, load_pf, other),
                         BW_ERR_CORRUPT);
    }
    bw_rbuf_init(&r, w.data, w.len);
    assert_int_equal(bw_pf_load(other, &r), BW_OK);
    bw_wbuf_free(&w);
    bw_pf_destroy(other);
}

/* The memory of recent values in a pf blob: its header (u32 n, u32 pos,
 * f64 sum) found by its contents, 50 values of t % 7 summing to 147. */
static size_t find_memory(const bw_wbuf_t *w)
{
    for (size_t off = 0; off + 16 <= w->len; off++) {
        uint32_t n, pos;
        double sum;
        memcpy(&n, w->data + off, 4);
        memcpy(&pos, w->data + off + 4, 4);
        memcpy(&sum, w->data + off + 8, 8);
        if (n == 50 && pos == 50 && sum == 147.0) {
            return off;
        }
    }
    fail_msg("no memory header in the blob");
    return 0;
}

/* A memory no push could leave is refused: a NaN value (every kernel
 * count NaN), a running sum that is not finite, a ring still filling whose
 * write position is not its count. (A finite sum off its values' is not
 * refused: a live ring's may be, test_pf's test_memory_residue_loads.) */
static void test_pf_rejects_bad_memory(void **state)
{
    bw_pf_cfg_t c = test_pf_cfg();
    bw_pf_t *other = bw_pf_new(&c, 1, NULL, 0);
    bw_wbuf_t w = {0};
    uint8_t *copy;
    bw_rbuf_t r;
    size_t off;

    (void)state;
    saved_pf(&c, 50, 7, &w);
    off = find_memory(&w);
    /* the double's high half is the float NaN 0x7ff80000 */
    assert_int_equal(load_patched(&w, off + 16 + 4 * 10, NAN, load_pf, other),
                     BW_ERR_CORRUPT);
    assert_int_equal(load_patched(&w, off + 8, INFINITY, load_pf, other),
                     BW_ERR_CORRUPT);
    copy = bw_malloc(w.len);
    assert_non_null(copy);
    memcpy(copy, w.data, w.len);
    copy[off + 4] = 49;
    bw_rbuf_init(&r, copy, w.len);
    assert_int_equal(bw_pf_load(other, &r), BW_ERR_CORRUPT);
    bw_free(copy);
    bw_rbuf_init(&r, w.data, w.len);
    assert_int_equal(bw_pf_load(other, &r), BW_OK);
    bw_wbuf_free(&w);
    bw_pf_destroy(other);
}

/* A pooled group's blob whose statistics no group could hold is refused:
 * a count above its trials (the pooled logit would take the log of a
 * negative: every grid point NaN, every event refused), a negative
 * weight. The payload is a tag, the kind and the region slots (12
 * bytes), then y, n and s2, one double per slot each. */
static void test_hier_rejects_bad_stats(void **state)
{
    bw_config_t cfg;
    bw_hier_t *h, *other;
    bw_hier_out_t out;
    bw_wbuf_t w = {0};
    bw_rbuf_t r;
    int nr;

    (void)state;
    bw_config_defaults(&cfg);
    h = bw_hier_new(&cfg.model.hier, BW_HIER_COUNT, NULL, 0);
    other = bw_hier_new(&cfg.model.hier, BW_HIER_COUNT, NULL, 0);
    for (int t = 0; t < 20; t++) {
        bw_hier_observe(h, t % 3, (int64_t)t * 60000, 2, 1000, 0, &out);
    }
    assert_int_equal(bw_hier_save(h, &w), BW_OK);
    nr = (int)get_u32_le(w.data, 8);
    /* y[0] above its trials; n[1] negative */
    assert_int_equal(load_patched(&w, 12, 1e9, load_hier, other),
                     BW_ERR_CORRUPT);
    assert_int_equal(
        load_patched(&w, 12 + 8 * ((size_t)nr + 1), -1.0, load_hier, other),
        BW_ERR_CORRUPT);
    bw_rbuf_init(&r, w.data, w.len);
    assert_int_equal(bw_hier_load(other, &r), BW_OK);
    bw_wbuf_free(&w);
    bw_hier_destroy(h);
    bw_hier_destroy(other);
}

static void test_hier_identity(void **state)
{
    bw_config_t cfg;
    bw_hier_t *h1, *h2;
    bw_hier_out_t a[400], b[400];
    uint8_t *blob = NULL;
    size_t len;
    bw_rng_t rng;

    (void)state;
    bw_config_defaults(&cfg);
    h1 = bw_hier_new(&cfg.model.hier, BW_HIER_COUNT, NULL, 0);
    h2 = bw_hier_new(&cfg.model.hier, BW_HIER_COUNT, NULL, 0);
    bw_rng_seed(&rng, 3);
    for (int t = 0; t < 400; t++) {
        int j = t % 5;
        double n = 100 + 1000 * j, y = floor(n * 0.01 * bw_rng_uniform(&rng));
        assert_int_equal(bw_hier_observe(h1, j, t * 60000, y, n, 0.01, &a[t]),
                         BW_OK);
        if (t == 200) {
            assert_int_equal(bw_state_save_hier(h2, &blob, &len), BW_OK);
            bw_hier_destroy(h2);
            h2 = bw_hier_new(&cfg.model.hier, BW_HIER_COUNT, NULL, 0);
            assert_int_equal(bw_state_load_hier(h2, blob, len, NULL, 0), BW_OK);
        }
        assert_int_equal(bw_hier_observe(h2, j, t * 60000, y, n, 0.01, &b[t]),
                         BW_OK);
    }
    assert_memory_equal(a, b, sizeof(a));
    bw_free(blob);
    bw_hier_destroy(h1);
    bw_hier_destroy(h2);
}

/* Defaults with one rule of @p signals signals and @p spans spans. The
 * signals' detection, false alarm and elevation are set here: their
 * defaults are the YAML loader's, not bw_config_defaults'. */
static void fusion_test_cfg(bw_config_t *cfg, int signals, int spans)
{
    bw_config_defaults(cfg);
    cfg->model.fusion.spans = spans;
    cfg->model.fusion.n_rules = 1;
    cfg->model.fusion.rules[0].n_signals = signals;
    for (int k = 0; k < signals; k++) {
        bw_signal_cfg_t *sg = &cfg->model.fusion.rules[0].signals[k];
        sg->detection = 0.9;
        sg->false_alarm = 0.02;
        sg->elevation = 1.0;
    }
}

/* The previous fusion formats are read, written here from an FU08 blob of
 * one span, which holds no null samples of phi and so is an FU07 blob
 * but for its tag; less its last 8 bytes (the last event time) it is
 * FU06 (bytes: tag, windows, spans; per window the count of its
 * buckets (16, or 0 for a signal the rule does not have), each bucket's
 * slot, n, z, nx, x, x2, sd2, then ref_slot, shift, frame, the frame's
 * source and mixed flag, 4 reference doubles, phi's two, p_elev; per rule
 * score, level, start). FU05 is that without the source and flag; FU04
 * is FU05 without the spans count, the bucket counts and ref_slot, and
 * with 16 buckets (empty ones for the signals not there) in every
 * window; FU03 is FU04 without each rule's level start (its last 8
 * bytes); FU02 (windows of z sums only) keeps only the buckets' slot, n,
 * z. All load, and the window goes on exactly as the FU06 one (the level
 * below moderate throughout: no start to lose). */
static void test_fusion_reads_fu02(void **state)
{
    bw_config_t cfg;
    bw_fusion_t *f1, *fo[5];
    bw_wbuf_t w = {0}, v4 = {0}, v5 = {0}, old = {0};
    bw_rbuf_t r;
    bw_threat_t a, b;
    size_t at = 12;
    const int nwin = 1 * BW_SIGNALS_MAX;
    const double zero[6] = {0};

    (void)state;
    fusion_test_cfg(&cfg, 2, 1);
    f1 = bw_fusion_new(&cfg.model.fusion, NULL, 0);
    for (int k = 0; k < 5; k++) {
        fo[k] = bw_fusion_new(&cfg.model.fusion, NULL, 0);
    }
    for (int t = 0; t < 40; t++) {
        bw_fusion_observe(f1, 0, t % 2, t * 10000, (t % 5) / 5.0);
    }
    assert_int_equal(bw_fusion_save(f1, &w), BW_OK);
    assert_int_equal(w.data[0], 0x38); /* "FU08" */
    w.data[0] = 0x37;                  /* "FU07" */
    bw_rbuf_init(&r, w.data, w.len);
    assert_int_equal(bw_fusion_load(fo[4], &r), BW_OK);
    assert_int_equal(r.pos, w.len);
    assert_int_equal(bw_fusion_last_ms(fo[4]), bw_fusion_last_ms(f1));
    w.len -= 8;
    w.data[0] = 0x36; /* "FU06" */
    bw_rbuf_init(&r, w.data, w.len);
    assert_int_equal(bw_fusion_load(fo[4], &r), BW_OK);
    assert_int_equal(r.pos, w.len);
    /* FU06's last event time: the start of its newest bucket (37.5 s
     * wide), never after the newest event */
    assert_int_equal(bw_fusion_last_ms(f1), 390000);
    assert_int_equal(bw_fusion_last_ms(fo[4]), 375000);
    bw_wbuf_bytes(&v5, w.data, 12);
    v5.data[0] = 0x35;             /* "FU05" */
    bw_wbuf_u32(&v4, 0x46553034u); /* "FU04" */
    bw_wbuf_u32(&v4, (uint32_t)nwin);
    bw_wbuf_u32(&old, 0x46553032u); /* "FU02" */
    bw_wbuf_u32(&old, (uint32_t)nwin);
    for (int i = 0; i < nwin; i++) {
        uint32_t nb = 0;
        for (int k = 3; k >= 0; k--) { /* little-endian */
            nb = nb << 8 | w.data[at + (size_t)k];
        }
        bw_wbuf_bytes(&v5, w.data + at, 4 + nb * 56 + 8 + 12);
        bw_wbuf_bytes(&v5, w.data + at + 4 + nb * 56 + 8 + 12 + 8, 7 * 8);
        at += 4;
        assert_true(nb == (i < 2 ? 16u : 0u));
        for (int k = 0; k < 16; k++) {
            if (nb == 0) {
                bw_wbuf_i64(&v4, -1);
                bw_wbuf_bytes(&v4, zero, sizeof(zero));
                bw_wbuf_i64(&old, -1);
                bw_wbuf_bytes(&old, zero, 16);
                continue;
            }
            bw_wbuf_bytes(&v4, w.data + at, 56);
            bw_wbuf_bytes(&old, w.data + at, 24);
            at += 56;
        }
        bw_wbuf_bytes(&v4, w.data + at + 8, 8 + 4);
        bw_wbuf_bytes(&v4, w.data + at + 8 + 8 + 4 + 8, 7 * 8);
        at += 8 + 8 + 4 + 8 + 7 * 8;
    }
    bw_wbuf_bytes(&v5, w.data + at, w.len - at);
    bw_rbuf_init(&r, v5.data, v5.len);
    assert_int_equal(bw_fusion_load(fo[3], &r), BW_OK);
    assert_int_equal(r.pos, v5.len);
    bw_wbuf_bytes(&v4, w.data + at, w.len - at);
    bw_wbuf_bytes(&old, w.data + at, w.len - at - 8);
    bw_rbuf_init(&r, v4.data, v4.len);
    assert_int_equal(bw_fusion_load(fo[0], &r), BW_OK);
    assert_int_equal(r.pos, v4.len);
    bw_rbuf_init(&r, old.data, old.len);
    assert_int_equal(bw_fusion_load(fo[1], &r), BW_OK);
    assert_int_equal(r.pos, old.len);
    old.len = 0;
    bw_wbuf_u32(&old, 0x46553033u); /* "FU03" */
    bw_wbuf_bytes(&old, v4.data + 4, v4.len - 4 - 8);
    bw_rbuf_init(&r, old.data, old.len);
    assert_int_equal(bw_fusion_load(fo[2], &r), BW_OK);
    assert_int_equal(r.pos, old.len);
    for (int t = 40; t < 120; t++) {
        bw_fusion_observe(f1, 0, t % 2, t * 10000, (t % 3) / 3.0);
        bool e = bw_fusion_eval(f1, 0, t * 10000, &a);
        for (int k = 0; k < 5; k++) {
            bw_fusion_observe(fo[k], 0, t % 2, t * 10000, (t % 3) / 3.0);
            assert_int_equal(e, bw_fusion_eval(fo[k], 0, t * 10000, &b));
            assert_memory_equal(&a, &b, sizeof(a));
        }
        assert_int_equal(a.n_contrib, 2);
        assert_int_equal(a.since_ms, -1);
    }
    bw_wbuf_free(&w);
    bw_wbuf_free(&v4);
    bw_wbuf_free(&v5);
    bw_wbuf_free(&old);
    bw_fusion_destroy(f1);
    for (int k = 0; k < 5; k++) {
        bw_fusion_destroy(fo[k]);
    }
}

/* An FU08 blob of @p spans spans less the held null samples of phi: FU07.
 * Per window: the bucket count, each bucket's 56 bytes then spans - 1
 * held samples (left out), then ref_slot, shift, frame, source, mixed,
 * the reference's 4 doubles, phi's two per span and p_elev. */
static void fu08_to_fu07(const bw_wbuf_t *in, bw_wbuf_t *out, int spans)
{
    size_t at = 12;
    const size_t tail = 8 + 8 + 4 + 4 + 4 + 32 + (size_t)spans * 16 + 8;

    bw_wbuf_u32(out, 0x46553037u); /* "FU07" */
    bw_wbuf_bytes(out, in->data + 4, 8);
    for (int i = 0; i < BW_SIGNALS_MAX; i++) {
        uint32_t nb = 0;
        for (int k = 3; k >= 0; k--) { /* little-endian */
            nb = nb << 8 | in->data[at + (size_t)k];
        }
        bw_wbuf_bytes(out, in->data + at, 4);
        at += 4;
        for (uint32_t b = 0; b < nb; b++) {
            bw_wbuf_bytes(out, in->data + at, 56);
            at += 56 + (size_t)(spans - 1) * 8;
        }
        bw_wbuf_bytes(out, in->data + at, tail);
        at += tail;
    }
    bw_wbuf_bytes(out, in->data + at, in->len - at);
}

/* The null samples of phi held for hindsight (fusion.c, release_held)
 * are state: one signal of AR(1) values (coefficient 0.9, so phi is well
 * above 1), 4 spans of 10-minute windows, an event a minute; saved at
 * minute 400 and restored, the copy's evaluations equal the original's bit
 * for bit over the next 299 minutes. Restored from the same blob without
 * them (FU07, which loads: those samples are lost), they differ, so the
 * held samples change the evidence and the first check can fail. */
static void test_fusion_held_restored(void **state)
{
    bw_config_t cfg;
    bw_fusion_t *f1, *f2, *f3;
    bw_wbuf_t w = {0}, w7 = {0};
    bw_rbuf_t r;
    bw_rng_t rng;
    double x = 0.0;
    int differ = 0;

    (void)state;
    fusion_test_cfg(&cfg, 1, 4);
    f1 = bw_fusion_new(&cfg.model.fusion, NULL, 0);
    f2 = bw_fusion_new(&cfg.model.fusion, NULL, 0);
    f3 = bw_fusion_new(&cfg.model.fusion, NULL, 0);
    bw_rng_seed(&rng, 17);
    for (int t = 0; t < 700; t++) {
        bw_fusion_obs_t ob = {0.0, 0.0, 1.0, 0, NAN, 0, 1};
        x = 0.9 * x + sqrt(1.0 - 0.81) * bw_rng_gauss(&rng);
        ob.x = x;
        ob.z = 0.3 * x;
        bw_fusion_observe_value(f1, 0, 0, (int64_t)t * 60000, &ob);
        if (t == 400) {
            assert_int_equal(bw_fusion_save(f1, &w), BW_OK);
            bw_rbuf_init(&r, w.data, w.len);
            assert_int_equal(bw_fusion_load(f2, &r), BW_OK);
            fu08_to_fu07(&w, &w7, 4);
            bw_rbuf_init(&r, w7.data, w7.len);
            assert_int_equal(bw_fusion_load(f3, &r), BW_OK);
            assert_int_equal(r.pos, w7.len);
        }
        if (t > 400) {
            bw_threat_t a, b, c;
            bw_fusion_observe_value(f2, 0, 0, (int64_t)t * 60000, &ob);
            bw_fusion_observe_value(f3, 0, 0, (int64_t)t * 60000, &ob);
            bw_fusion_eval(f1, 0, (int64_t)t * 60000, &a);
            bw_fusion_eval(f2, 0, (int64_t)t * 60000, &b);
            bw_fusion_eval(f3, 0, (int64_t)t * 60000, &c);
            assert_memory_equal(&a, &b, sizeof(a));
            differ += memcmp(&a.llr, &c.llr, sizeof(double)) != 0;
        }
    }
    print_message("held samples: restored without them, %d of 299 "
                  "evaluations differ\n", differ);
    assert_true(differ > 0);
    bw_wbuf_free(&w);
    bw_wbuf_free(&w7);
    bw_fusion_destroy(f1);
    bw_fusion_destroy(f2);
    bw_fusion_destroy(f3);
}

/* An FU04 state folded a bucket only when a newer one took its place, so
 * its ring can hold buckets older than the newest by more than the new
 * ring's width (here slots 0-3 and 12-15 beside 100-107, after a gap).
 * Loaded, they go into the reference at once: 160 values at 0 make it
 * warm, and values at +3 (innovations 0) then read as elevated against
 * it. Left out of it, the reference stays cold, the innovations judge,
 * and the evidence is against elevation. Measured: log BF 357 (-4.17
 * without the fold at load). */
static void test_fusion_fu04_folds_held(void **state)
{
    bw_config_t cfg;
    bw_fusion_t *f;
    bw_wbuf_t w = {0};
    bw_rbuf_t r;
    bw_threat_t t;
    const double width = 600000.0 / 16;

    (void)state;
    fusion_test_cfg(&cfg, 1, 4);
    f = bw_fusion_new(&cfg.model.fusion, NULL, 0);
    bw_wbuf_u32(&w, 0x46553034u); /* "FU04" */
    bw_wbuf_u32(&w, BW_SIGNALS_MAX);
    for (int i = 0; i < BW_SIGNALS_MAX; i++) {
        for (int p = 0; p < 16; p++) {
            bool held = i == 0;
            int64_t slot = p >= 4 && p < 12 ? 96 + p : p;
            bw_wbuf_i64(&w, held ? slot : -1);
            bw_wbuf_f64(&w, held ? 20.0 : 0.0); /* n */
            bw_wbuf_f64(&w, 0.0);               /* z */
            bw_wbuf_f64(&w, held ? 20.0 : 0.0); /* nx */
            bw_wbuf_f64(&w, 0.0);               /* x */
            bw_wbuf_f64(&w, held ? 20.0 : 0.0); /* x2 */
            bw_wbuf_f64(&w, held ? 20.0 : 0.0); /* sd2 */
        }
        bw_wbuf_f64(&w, i == 0 ? 0.0 : NAN); /* shift */
        bw_wbuf_u32(&w, 0);                  /* frame */
        for (int k = 0; k < 7; k++) {        /* reference, phi, p_elev */
            bw_wbuf_f64(&w, 0.0);
        }
    }
    bw_wbuf_f64(&w, -1.0); /* the rule: score, level, start */
    bw_wbuf_u32(&w, 0);
    bw_wbuf_i64(&w, -1);
    bw_rbuf_init(&r, w.data, w.len);
    assert_int_equal(bw_fusion_load(f, &r), BW_OK);
    assert_int_equal(r.pos, w.len);
    for (int slot = 108; slot < 116; slot++) {
        for (int k = 0; k < 20; k++) {
            bw_fusion_obs_t ob = {0.0, 3.0, 1.0, 0, NAN, 0, 0};
            bw_fusion_observe_value(f, 0, 0, (int64_t)(slot * width) + k, &ob);
        }
    }
    bw_fusion_eval(f, 0, (int64_t)(115 * width), &t);
    print_message("FU04 with held buckets: log BF %.2f\n", t.contrib[0].lbf);
    assert_true(t.contrib[0].lbf > 5.0);
    bw_wbuf_free(&w);
    bw_fusion_destroy(f);
}

/* A blob written with other spans than the config's (an operator changed
 * model.fusion.spans) loads: the buckets both rings hold and the spans
 * both have are kept, the rest start empty. Saved with 4 spans and read
 * with 1, the evidence (innovations only: the buckets' sums) is that of
 * a one-span fusion fed the same events; read back with 4, the last
 * window is there. */
static void test_fusion_spans_change(void **state)
{
    bw_config_t c4, c1;
    bw_fusion_t *f4, *f1, *g4, *fresh;
    bw_wbuf_t w = {0}, w1 = {0};
    bw_rbuf_t r;
    bw_threat_t a, b;

    (void)state;
    fusion_test_cfg(&c4, 2, 4);
    c1 = c4;
    c1.model.fusion.spans = 1;
    f4 = bw_fusion_new(&c4.model.fusion, NULL, 0);
    f1 = bw_fusion_new(&c1.model.fusion, NULL, 0);
    g4 = bw_fusion_new(&c4.model.fusion, NULL, 0);
    fresh = bw_fusion_new(&c1.model.fusion, NULL, 0);
    for (int t = 0; t < 400; t++) {
        bw_fusion_observe(f4, 0, t % 2, t * 10000, (t % 5) / 5.0 + t / 400.0);
        bw_fusion_observe(fresh, 0, t % 2, t * 10000,
                          (t % 5) / 5.0 + t / 400.0);
    }
    assert_int_equal(bw_fusion_save(f4, &w), BW_OK);
    bw_rbuf_init(&r, w.data, w.len);
    assert_int_equal(bw_fusion_load(f1, &r), BW_OK);
    assert_int_equal(r.pos, w.len);
    bw_fusion_eval(f1, 0, 399 * 10000, &a);
    bw_fusion_eval(fresh, 0, 399 * 10000, &b);
    assert_int_equal(a.n_contrib, 2);
    assert_memory_equal(a.contrib, b.contrib, sizeof(a.contrib));
    assert_int_equal(bw_fusion_save(f1, &w1), BW_OK);
    bw_rbuf_init(&r, w1.data, w1.len);
    assert_int_equal(bw_fusion_load(g4, &r), BW_OK);
    bw_fusion_eval(g4, 0, 399 * 10000, &b);
    assert_int_equal(b.n_contrib, 2);
    for (int k = 0; k < 2; k++) { /* no older windows: the last one's */
        assert_float_equal(a.contrib[k].lbf, b.contrib[k].lbf, 1e-12);
    }
    bw_wbuf_free(&w);
    bw_wbuf_free(&w1);
    bw_fusion_destroy(f4);
    bw_fusion_destroy(f1);
    bw_fusion_destroy(g4);
    bw_fusion_destroy(fresh);
}

/* A fusion payload with a bad header or bucket count is refused whole
 * (the checksum around it catches flipped bits; these are a writer's
 * errors): spans 0 or above BW_SPANS_MAX, a window's bucket count neither
 * 0 nor 16 x spans, a truncation. The live windows are untouched. And a
 * write buffer asked for more than memory can hold fails cleanly (its
 * capacity doubling once wrapped and never ended). */
static void test_fusion_rejects_bad(void **state)
{
    bw_config_t cfg;
    bw_fusion_t *f, *g;
    bw_wbuf_t w = {0}, big = {0};
    bw_rbuf_t r;
    bw_threat_t a, b;
    uint8_t *bad;
    double before;

    (void)state;
    fusion_test_cfg(&cfg, 1, 4);
    f = bw_fusion_new(&cfg.model.fusion, NULL, 0);
    g = bw_fusion_new(&cfg.model.fusion, NULL, 0);
    for (int t = 0; t < 100; t++) {
        bw_fusion_observe(f, 0, 0, t * 10000, 1.0);
        bw_fusion_observe(g, 0, 0, t * 10000, 0.5);
    }
    bw_fusion_eval(g, 0, 99 * 10000, &b);
    before = b.contrib[0].lbf;
    assert_int_equal(bw_fusion_save(f, &w), BW_OK);
    bad = bw_malloc(w.len);
    assert_non_null(bad);
    for (int c = 0; c < 4; c++) {
        static const size_t at[] = {8, 8, 12, 12};
        static const uint8_t v[] = {0, BW_SPANS_MAX + 1, 15, 1};
        memcpy(bad, w.data, w.len);
        bad[at[c]] = v[c];
        bw_rbuf_init(&r, bad, w.len);
        assert_int_equal(bw_fusion_load(g, &r), BW_ERR_CORRUPT);
    }
    bw_rbuf_init(&r, w.data, w.len - 3);
    assert_int_not_equal(bw_fusion_load(g, &r), BW_OK);
    bw_fusion_eval(g, 0, 99 * 10000, &b);
    assert_float_equal(b.contrib[0].lbf, before, 0.0);
    bw_rbuf_init(&r, w.data, w.len);
    assert_int_equal(bw_fusion_load(g, &r), BW_OK);
    bw_fusion_eval(f, 0, 99 * 10000, &a);
    bw_fusion_eval(g, 0, 99 * 10000, &b);
    assert_memory_equal(&a, &b, sizeof(a));
    bw_wbuf_u32(&big, 1);
    bw_wbuf_bytes(&big, bad, SIZE_MAX - 8);
    assert_int_equal(big.err, BW_ERR_NOMEM);
    bw_free(bad);
    bw_wbuf_free(&w);
    bw_wbuf_free(&big);
    bw_fusion_destroy(f);
    bw_fusion_destroy(g);
}

static void test_fusion_identity(void **state)
{
    bw_config_t cfg;
    bw_fusion_t *f1, *f2;
    uint8_t *blob = NULL;
    size_t len;
    bw_threat_t a, b;

    (void)state;
    bw_config_defaults(&cfg);
    cfg.model.fusion.n_rules = 1;
    cfg.model.fusion.rules[0].n_signals = 2;
    cfg.model.fusion.rules[0].signals[0].detection = 0.9;
    cfg.model.fusion.rules[0].signals[1].detection = 0.9;
    f1 = bw_fusion_new(&cfg.model.fusion, NULL, 0);
    f2 = bw_fusion_new(&cfg.model.fusion, NULL, 0);
    for (int t = 0; t < 1200; t++) {
        bool e1, e2;
        /* values too: the signals' references are state (frame 1 from
         * event 300 on restarts them) */
        bw_fusion_obs_t ob = {
            (t % 7) / 7.0, 3.0 + (t % 5) / 5.0, 0.3, t >= 300, NAN, 0, 0};
        bw_fusion_observe_value(f1, 0, t % 2, t * 10000, &ob);
        bw_fusion_observe_value(f2, 0, t % 2, t * 10000, &ob);
        e1 = bw_fusion_eval(f1, 0, t * 10000, &a);
        if (t == 250 || t == 900) {
            bw_free(blob);
            assert_int_equal(bw_state_save_fusion(f2, &blob, &len), BW_OK);
            bw_fusion_destroy(f2);
            f2 = bw_fusion_new(&cfg.model.fusion, NULL, 0);
            assert_int_equal(bw_state_load_fusion(f2, blob, len, NULL, 0),
                             BW_OK);
        }
        e2 = bw_fusion_eval(f2, 0, t * 10000, &b);
        assert_int_equal(e1, e2);
        assert_memory_equal(&a, &b, sizeof(a));
    }
    bw_free(blob);
    bw_fusion_destroy(f1);
    bw_fusion_destroy(f2);
}

/* Every allocation of every constructor may fail: counted first (a
 * successful construction's allocation calls), then each one failed in
 * turn; the constructor must return NULL with a reason every time (a
 * failure it ignored would be a crash or a half-built object later) and
 * free what it had (ASan's leak check in CI). Once every allocation
 * succeeds, so does the constructor. */
typedef void *(*ctor_fn)(const bw_config_t *cfg, char *errstr, size_t n);
typedef void (*dtor_fn)(void *obj);

static void *new_engine(const bw_config_t *c, char *e, size_t n)
{
    return bw_engine_new(c, e, n);
}
static void *new_pf(const bw_config_t *c, char *e, size_t n)
{
    return bw_pf_new(&c->model.pf, 1, e, n);
}
static void *new_hier(const bw_config_t *c, char *e, size_t n)
{
    return bw_hier_new(&c->model.hier, BW_HIER_COUNT, e, n);
}
static void *new_fusion(const bw_config_t *c, char *e, size_t n)
{
    return bw_fusion_new(&c->model.fusion, e, n);
}
static void del_engine(void *o)
{
    bw_engine_destroy(o);
}
static void del_pf(void *o)
{
    bw_pf_destroy(o);
}
static void del_hier(void *o)
{
    bw_hier_destroy(o);
}
static void del_fusion(void *o)
{
    bw_fusion_destroy(o);
}

static void every_allocation_fails(const char *name, ctor_fn ctor, dtor_fn dtor,
                                   const bw_config_t *cfg)
{
    unsigned long before = bw_mem_calls(), calls;
    char errstr[256];
    void *obj = ctor(cfg, errstr, sizeof(errstr));

    assert_non_null(obj);
    calls = bw_mem_calls() - before;
    dtor(obj);
    assert_true(calls > 0);
    for (unsigned long k = 0; k < calls; k++) {
        errstr[0] = '\0';
        bw_mem_fail_after((long)k);
        obj = ctor(cfg, errstr, sizeof(errstr));
        bw_mem_fail_after(-1);
        if (obj != NULL) {
            dtor(obj);
            fail_msg("%s: built although allocation %lu of %lu failed", name,
                     k + 1, calls);
        }
        if (errstr[0] == '\0') {
            fail_msg("%s: no reason given when allocation %lu failed", name,
                     k + 1);
        }
    }
    print_message("%s: each of its %lu allocations failed in turn\n", name,
                  calls);
}

static void test_allocation_failures(void **state)
{
    bw_config_t cfg;

    (void)state;
    bw_config_defaults(&cfg);
    every_allocation_fails("engine", new_engine, del_engine, &cfg);
    every_allocation_fails("pf", new_pf, del_pf, &cfg);
    every_allocation_fails("hier", new_hier, del_hier, &cfg);
    every_allocation_fails("fusion", new_fusion, del_fusion, &cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pf_identity),
        cmocka_unit_test(test_pf_cut_before_the_cap),
        cmocka_unit_test(test_pf_reads_pf15),
        cmocka_unit_test(test_pf_reads_pf14),
        cmocka_unit_test(test_pf_reads_pf13),
        cmocka_unit_test(test_pf_reads_pf12),
        cmocka_unit_test(test_pf_reads_pf11),
        cmocka_unit_test(test_pf_reads_pf10),
        cmocka_unit_test(test_pf10_gains_the_tail),
        cmocka_unit_test(test_pf_reads_pf09),
        cmocka_unit_test(test_pf_reads_pf08),
        cmocka_unit_test(test_pf_reads_pf07),
        cmocka_unit_test(test_pf_reads_pf06),
        cmocka_unit_test(test_pf_reads_pf05),
        cmocka_unit_test(test_pf_reads_pf04),
        cmocka_unit_test(test_rejects_bad_blobs),
        cmocka_unit_test(test_pf_rejects_bad_gap),
        cmocka_unit_test(test_pf_rejects_bad_particles),
        cmocka_unit_test(test_pf_rejects_bad_memory),
        cmocka_unit_test(test_hier_rejects_bad_stats),
        cmocka_unit_test(test_hier_identity),
        cmocka_unit_test(test_fusion_identity),
        cmocka_unit_test(test_fusion_reads_fu02),
        cmocka_unit_test(test_fusion_spans_change),
        cmocka_unit_test(test_fusion_fu04_folds_held),
        cmocka_unit_test(test_fusion_held_restored),
        cmocka_unit_test(test_fusion_rejects_bad),
        cmocka_unit_test(test_allocation_failures),
    };

    gsl_set_error_handler_off();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
