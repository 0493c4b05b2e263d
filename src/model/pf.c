/*
 * Per-series robust regime-switching state-space model, filtered by a
 * Rao-Blackwellised particle filter ("mixture Kalman filter", Chen & Liu
 * 2000; Doucet, de Freitas, Murphy & Russell 2000).
 *
 * Model, on the (optionally transformed, de-seasonalised) value y_t:
 *   level_t = level_{t-1} + dt * trend_{t-1} + w_t,
 *   trend_t = trend_{t-1} + u_t                     (optional trend),
 *   y_t     = level_t + e_t,
 * with dt the time gap in units of the series' typical interval, and
 *   w_t ~ N(0, sigma^2 (q dt + [r_t = shift] k_shift^2)),  u_t ~ N(0, sigma^2
 * q_trend dt), e_t ~ N(0, sigma^2 / lambda_t)                 regime normal,
 *   e_t ~ N(0, sigma^2 k_spike^2)                  regime spike (transient),
 *   lambda_t ~ Gamma(nu/2, nu/2), i.e. Student-t noise, represented by a
 *   generalised Gauss-Laguerre quadrature of the scale mixture; with
 *   tail_scale set, one more node 1/lambda = tail_scale^2 whose weight
 *   the series learns (learn_tail).
 * From the normal state the regime r_t in {normal, spike, shift, enter}
 * is i.i.d. with prior probabilities (1 - p_spike - p_shift - p_episode -
 * p_recur, p_spike, p_shift, p_episode). A fifth,
 * recurrent regime (prior p_recur) restarts the level at y with the density
 * of recently seen values near y: a jump between familiar states (idle <->
 * busy), not an anomaly. A jump is a return to a known state only if it
 * lasts as the series' earlier stays near y did: for recur_visit events
 * after it, each further event at the new level costs the particle the
 * chance that a remembered value near y was followed by another in that
 * state (visit_stay: a sojourn read from the memory, cf. the
 * explicit-duration semi-Markov models of Yu 2010). Heavy-tailed noise's
 * scattered extremes make a level "familiar" but were never stayed at, so
 * a lasting change there stays an abnormal episode.
 *
 * Abnormal episodes (enter; a sticky two-state Markov switch, cf.
 * Hamilton 1989): the series moves to an abnormal level with a Kalman
 * filter of its own (ma, ca: from the baseline's prediction widened by
 * shift_scale), while the baseline is only predicted, so an episode's
 * values teach it nothing and every event of the episode is scored
 * against what normal would be. An episode goes on with probability
 * stay = 1 - 1/episode_duration per event (its other children are the
 * normal state's, times 1 - stay) and ends when its level comes within
 * episode_min noise sds of the baseline (update_abnormal). A particle that
 * enters from a visit not yet confirmed (a recurrent jump the data left
 * before it had lasted recur_visit events) is judged against the normal
 * particles' level, not the one value's level it jumped to (rebase_level):
 * kept there, its abnormal level followed the data as the normal particles
 * did, and the family grew by the priors alone (it stays with
 * 1 - 1/episode_duration, a normal particle keeps p_norm), a phantom
 * episode held for hours on clean data. A few normal particles are forced
 * to enter at every event, with importance weights that keep the filter
 * exact in expectation (draw_one). The record is in
 * an episode while P(abnormal) >= 1/2, through gaps of up to EPISODE_GAP
 * events. Until the daily profile applies (its first min_cycles days) a
 * familiar level may be the daily cycle, so changes are onset-only there,
 * but from the end of the first day a jump to a level the memory of recent
 * values has not held may start an episode (novel_wanted: no part of the
 * cycle the first day showed). One that has lasted adopt_after_ms, and is
 * abnormal on its last
 * EPISODE_GAP + 1 events, becomes the new normal (episode()). An episode
 * that keeps dipping below 1/2 more often than that is held abnormal, not
 * adopted, for as long as it flickers.
 *
 * Local noise (state-specific noise without a state label). A bursty series
 * learns sigma mostly in its quiet state, and its busy state's own spread
 * then reads as 10-sigma spikes. Before each event the memory of recent
 * values gives the pairs of consecutive values that both lie near the
 * previous value (its neighbourhood: recur_bandwidth noise sds, or
 * recur_relative of its distance from the memory's mean); half their mean
 * squared difference estimates the noise variance of the state the series
 * is in (the successive-difference estimator, von Neumann et al. 1941).
 * It is shrunk toward the learned sigma^2 with the weight of LN_W pairs (a
 * moderated variance, cf. Smyth 2004; sigma^2's own weight, its ~200
 * degrees of freedom, held a distinct busy state's noise at a third of its
 * value where the memory had a hundred of its pairs), and the
 * observation variance of every Kalman child is multiplied by the ratio
 * k_t = max(1, s_loc^2 / sigma^2): a known variance multiplier (West &
 * Harrison 1997, sec. 10.7), so the conjugate update stays exact. Only
 * inflation: a state quieter than the learned noise keeps sigma (deflating
 * makes quantised idle states hypersensitive).
 *
 * Conditional on the discrete path (regimes and scale nodes) the model is
 * linear-Gaussian with every variance proportional to sigma^2, so the state
 * AND sigma^2 are integrated analytically per particle: a Kalman filter on
 * variances scaled by sigma^2 plus conjugate inverse-gamma statistics
 * (n, d) for sigma^2 (West & Harrison 1997, sec. 4.6, "unknown observational
 * variance"), discounted per event so the noise scale tracks change. The
 * one-step predictive is then Student-t with n degrees of freedom.
 * sigma^2's prior is worth scale_prior_dof events at an sd of scale_prior
 * times the first value, capped after PRIOR_EVENTS events at
 * scale_prior_spread times the spread of their steps (cap_prior): a level
 * far above its noise (a gauge at 1e9) no longer hides the noise for
 * thousands of events. Because every variance is in units of sigma^2,
 * the data's share of a particle's d does not depend on the prior given
 * the particle's history, so the cap leaves each particle's statistic
 * where a start from the capped prior would have (the particles' weights
 * over the first events still carry the wide prior).
 *
 * Each particle carries only its discrete history. At each event every
 * particle enumerates its K children (t nodes, spike, shift, enter, stay,
 * recurrent jump: those that are on), which gives
 * the exact incremental weight (the optimal proposal for discrete latent
 * variables, Fearnhead & Clifford 2003) and the Rao-Blackwellised regime
 * posterior: P(anomalous | y_1:t) sums over children, not over samples.
 * One child is drawn per particle; systematic resampling runs when the ESS
 * falls below a fraction of N.
 *
 * Seasonal profiles (season.c) are subtracted before filtering; when one
 * starts to apply (after min_cycles periods) every particle's level is
 * moved into the new frame (reframe), otherwise the first value with the
 * profile applied reads as a jump of the size of the profile.
 *
 * Cost O(N K) per event, memory O(N) (N_ARRAYS + 2 = 12 doubles per
 * particle) plus the memory of recent values and the
 * seasonal profiles. The step runs as loops over particles (structure of
 * arrays) that GCC vectorises with glibc's vector exp/log/log1p
 * (vecmath.h); the likelihood is factored so that a particle costs one log,
 * one exp per child and one log1p per Kalman child (batch_t_terms). With
 * rao_blackwell=false the level/trend are sampled from their Gaussian
 * conditional (the fully adapted filter), used by tests to exercise the Monte
 * Carlo machinery against the exact Kalman filter.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_integration.h>
#include <gsl/gsl_sf_gamma.h>

#include "bayeswatch/model.h"
#include "bayeswatch/timefmt.h"
#include "block.h"
#include "sf.h"
#include "memory.h"
#include "phase.h"
#include "season.h"
#include "vecmath.h"
#include "bayeswatch/mem.h"

#define PHASE_ALPHA 0.05 /* other_hours: a chance share this unlikely */
#define LN_W 100.0    /* local noise: pairs' worth of the learned variance */
#define SPIKE_NODES 1 /* spike children: sizes spike_scale x 1 (x 4 ...) */
/* the noise sd's least value whatever scale_floor (which may be 0): a zero
 * sd on a constant series made the t terms 0/0 */
#define SD_MIN 1e-100
/* children per particle at most: t nodes, the learned tail node, spikes,
 * shift, enter, stay and the recurrent jump */
#define K_MAX (BW_T_NODES_MAX + SPIKE_NODES + 5)
#define N_ARRAYS 10
#define AR_MAX 0.95     /* AR(1) noise: the coefficient's bound */
#define AR_MIN 30.0     /* ... and the pairs' weight it needs */
#define BATCH_ARRAYS 24 /* per-particle scratch arrays of a step */
/* The learned tail node's weight: a Beta(TAIL_A0, TAIL_B0) prior (mean
 * 1e-3, worth 20 events) updated by its posterior responsibilities,
 * forgotten with a half-life of TAIL_HALF_LIFE events (learn_tail) */
#define TAIL_A0 0.02
#define TAIL_B0 20.0
#define TAIL_HALF_LIFE 2000.0
#define DAY_MS 86400000LL
#define WEEK_MS (7 * DAY_MS)
/* events whose steps set the noise prior's cap (cap_prior), and early_ss
 * once it is set */
#define PRIOR_EVENTS 10
#define PRIOR_CAPPED (-1.0)
#define PF_STATE_TAG 0x50463136u    /* "PF16" */
#define PF_STATE_TAG_15 0x50463135u /* "PF15": read, no open block's sum in
                                       the values' frame */
#define PF_STATE_TAG_14 0x50463134u /* "PF14": read, spikes' sizes held
                                       as values (phase.c) */
#define PF_STATE_TAG_13 0x50463133u /* "PF13": read, early steps unknown,
                                       memory origin 0 */
#define PF_STATE_TAG_12 0x50463132u /* "PF12": read, sums count unconfirmed,
                                       no memory times */
#define PF_STATE_TAG_11 0x50463131u /* "PF11": read, no unconfirmed bins */
#define PF_STATE_TAG_10 0x50463130u /* "PF10": read, no tail counts */
#define PF_STATE_TAG_09 0x50463039u /* "PF09": read, no gap counts */
#define PF_STATE_TAG_08 0x50463038u /* "PF08": read, visits from weights */
#define PF_STATE_TAG_07 0x50463037u /* "PF07": read, without `phase` */
#define PF_STATE_TAG_06 0x50463036u /* "PF06": read, without `vis` */
#define PF_STATE_TAG_05 0x50463035u /* "PF05": read, without `held_since` */
#define PF_STATE_TAG_04 0x50463034u /* "PF04": read, without `framed` */

enum {
    CHILD_NORMAL,
    CHILD_SPIKE,
    CHILD_SHIFT,
    CHILD_ENTER,
    CHILD_STAY,
    CHILD_RECUR
};

/* What the drawn child did to a particle's abnormal state. */
enum { DRAW_NORMAL, DRAW_ENTER, DRAW_STAY };

struct bw_pf_s {
    const bw_pf_cfg_t *cfg;
    int n; /* particles */
    int k; /* children per particle */
    double *mem;
    double *m0, *m1, *c00, *c01, *c11, *d, *logw;
    /* The abnormal state: ab 1 while the particle is in an abnormal
     * episode (0 otherwise; a double so the loops vectorise), and the
     * abnormal level's mean and variance (noise units) during it. */
    double *ab, *ma, *ca;
    /* The age (1..recur_visit) of the particle's visit to a level it
     * jumped to (recurrent regime); 0 when it is not on one. A double so
     * the loops vectorise; resampled with the particle, saved apart from
     * the arrays above (after them in the blob since PF07). */
    double *vis;
    double *wlin; /* exp(logw), normalised: cached, saved for bit-identity */
    double dof;   /* shared: degrees of freedom of sigma^2's posterior */
    double s0sq;  /* sigma^2: known (!learn_scale) or its prior's */
    int64_t t_first, t_last;
    double interval; /* ms; 0 until two distinct timestamps were seen */
    double quantum;  /* smallest positive step between values; INF none */
    double y_prev;
    double early_ss; /* squared steps summed until the prior's cap
                        (cap_prior); then PRIOR_CAPPED; NaN: unknown */
    uint64_t events, late;
    bw_rng_t rng;
    bw_season_t daily, weekly;
    bw__phase_t phase;   /* recurring spikes by time of day (phase.c) */
    bw_block_t block;    /* collective anomalies: filter on block means */
    bw__memory_t recent; /* recent de-seasonalised values (memory.c) */
    double sd_last;      /* noise sd after the previous event */
    double level_last;   /* posterior mean level after the previous event */
    /* The current abnormal episode (from abn_since, P(abnormal) >= 1/2 at
     * every event but gaps of up to EPISODE_GAP): its length in events,
     * gaps included (saturating), for adoption and the memory's skip. */
    int64_t abn_since;
    uint32_t abn_run;
    uint32_t abn_gap;  /* events below 1/2 since its last abnormal one */
    uint32_t abn_calm; /* events at or above 1/2 since its last gap (sat.) */
    /* The start of the last adopted episode (-1 none): the profiles learn
     * nothing from the change until a period of theirs has passed since. */
    int64_t held_since;
    /* Before a profile applies: the change the series is in (see
     * track_excursion; -1 none), and the level it left. */
    int64_t exc_since;
    double exc_level, exc_far; /* exc_far: NAN until the first event after */
    uint32_t calm;       /* events since the level last moved or was flagged */
    uint32_t exc_events; /* events of the excursion so far */
    /* AR(1) observation noise: the coefficient, its forgotten moment
     * sums from normal events, and the previous value and residual. */
    double phi, ar_uu, ar_u1, ar_w, u_prev, yd_prev, lvl_pred;
    double ar_keep; /* derived: the sums' forgetting per event */
    int u_ok;
    /* The profiles the levels are expressed without (bit 0 daily, bit 1
     * weekly): set when a profile starts to apply and the frame moves. */
    int framed;
    /* The tail node's discounted posterior responsibilities, and those of
     * the quadrature's nodes together (learn_tail; 0 without it). */
    double tail_w, tail_q;
    /* Derived from cfg at creation (not state), but for the normal
     * children's prior and vbar, which follow the tail's weight. */
    double child_p[K_MAX], child_v[K_MAX], child_w[K_MAX];
    int child_kind[K_MAX];
    double vbar;      /* E[1/lambda] under the quadrature and tail */
    double vbar_q;    /* ... under the quadrature alone */
    double quad_w[BW_T_NODES_MAX]; /* the quadrature's weights */
    int n_quad;       /* its nodes: children 0 .. n_quad - 1 */
    int j_tail;       /* the tail node's child, -1 none */
    double tail_keep; /* the tail counts' forgetting per event */
    double p_norm;    /* the normal children's prior, together */
    double stay;      /* P(an abnormal episode goes on at the next event) */
    int j_enter;      /* the episode-start child, -1 without episodes */
    int j_shift;      /* the level-shift child, -1 without shifts */
    double eps_enter; /* share of normal particles proposed to enter */
    /* Cache of the predictive t quantile for the current dof. */
    double q_dof, q_val;
    /* Cache of the t log-density constant for the current dof. */
    double k_dof, k_val;
};

struct bw_pf_ws_s {
    int cap;
    double *ll;  /* K_MAX * cap: children's likelihood terms, probabilities */
    double *tmp; /* N_ARRAYS * cap: resampling copies */
    double *pv;  /* BATCH_ARRAYS * cap: per-particle scratch of a step */
    int *idx;
};

const char *bw_direction_name(int dir)
{
    static const char *const names[] = {
        "none",       "spike",        "dip",           "shift_up",
        "shift_down", "sustained_up", "sustained_down"};
    return (dir >= 0 && dir <= BW_DIR_SUSTAINED_DOWN) ? names[dir] : "?";
}

/* ---- construction ---- */

int bw__pf_t_nodes(const bw_pf_cfg_t *cfg, double *lambda, double *omega)
{
    gsl_integration_fixed_workspace *w;
    const double *x, *wt;
    double sum = 0.0;
    int n = cfg->t_nodes;

    if (cfg->t_dof <= 0.0) {
        lambda[0] = omega[0] = 1.0;
        return 1;
    }
    if (n < 1 || n > BW_T_NODES_MAX) {
        return -1;
    }
    /* Gamma(nu/2, rate nu/2): weight x^(nu/2 - 1) exp(-(nu/2) x) on [0, inf).
     */
    w = gsl_integration_fixed_alloc(gsl_integration_fixed_laguerre, (size_t)n,
                                    0.0, cfg->t_dof / 2.0,
                                    cfg->t_dof / 2.0 - 1.0, 0.0);
    if (w == NULL) {
        return -1;
    }
    x = gsl_integration_fixed_nodes(w);
    wt = gsl_integration_fixed_weights(w);
    for (int i = 0; i < n; i++) {
        sum += wt[i];
    }
    for (int i = 0; i < n; i++) {
        lambda[i] = x[i];
        omega[i] = wt[i] / sum;
    }
    gsl_integration_fixed_free(w);
    return n;
}

/* The normal children's priors and vbar at the tail node's current weight
 * o (its Beta posterior mean): the quadrature keeps 1 - o of the normal
 * prior, in its own proportions, and the children whose noise is the
 * average one (shift, enter, stay) get the new E[1/lambda]. */
static void tail_weights(bw_pf_t *pf)
{
    double o;

    if (pf->j_tail < 0) {
        return;
    }
    o = (TAIL_A0 + pf->tail_w) / (TAIL_A0 + TAIL_B0 + pf->tail_w + pf->tail_q);
    for (int j = 0; j < pf->n_quad; j++) {
        pf->child_p[j] = pf->p_norm * (1.0 - o) * pf->quad_w[j];
    }
    pf->child_p[pf->j_tail] = pf->p_norm * o;
    pf->vbar = (1.0 - o) * pf->vbar_q + o * pf->child_v[pf->j_tail];
    for (int j = 0; j < pf->k; j++) {
        int kind = pf->child_kind[j];
        if (kind == CHILD_SHIFT || kind == CHILD_ENTER || kind == CHILD_STAY) {
            pf->child_v[j] = pf->vbar;
        }
    }
}

static int setup_children(bw_pf_t *pf)
{
    const bw_pf_cfg_t *cfg = pf->cfg;
    double lambda[BW_T_NODES_MAX], omega[BW_T_NODES_MAX];
    double p_norm = 1.0 - cfg->p_spike - cfg->p_shift - cfg->p_episode -
                    (cfg->recur_window > 0 ? cfg->p_recur : 0.0);
    int nn = bw__pf_t_nodes(cfg, lambda, omega), k = 0;

    pf->p_norm = p_norm;

    if (nn < 0) {
        return -1;
    }
    pf->vbar = 0.0;
    for (int j = 0; j < nn; j++) {
        pf->child_kind[k] = CHILD_NORMAL;
        pf->child_p[k] = p_norm * omega[j];
        pf->child_v[k] = 1.0 / lambda[j];
        pf->child_w[k++] = 0.0;
        pf->vbar += omega[j] / lambda[j];
        pf->quad_w[j] = omega[j];
    }
    pf->n_quad = nn;
    pf->vbar_q = pf->vbar;
    pf->j_tail = -1;
    if (cfg->tail_scale > 0.0 && cfg->t_dof > 0.0) {
        pf->j_tail = k;
        pf->child_kind[k] = CHILD_NORMAL;
        pf->child_v[k] = cfg->tail_scale * cfg->tail_scale;
        pf->child_w[k++] = 0.0;
    }
    /* A spike is Gaussian with sd spike_scale noise sds (SPIKE_NODES
     * children spaced by 4 would make its size a scale mixture; one ships).
     * The t noise is a finite Gauss-Laguerre mixture, so its tail is that
     * of its widest node (sd 1.46 noise scales at t_dof 4, t_nodes 3):
     * beyond a few of those the larger a lone deviation, the surer it is a
     * spike. */
    for (int m = 0; m < SPIKE_NODES && cfg->p_spike > 0.0; m++) {
        double sc = cfg->spike_scale * (1 << (2 * m));
        pf->child_kind[k] = CHILD_SPIKE;
        pf->child_p[k] = cfg->p_spike / SPIKE_NODES;
        pf->child_v[k] = sc * sc;
        pf->child_w[k++] = 0.0;
    }
    pf->j_shift = -1;
    if (cfg->p_shift > 0.0 || cfg->p_episode > 0.0) {
        pf->j_shift = k;
        pf->child_kind[k] = CHILD_SHIFT;
        pf->child_p[k] = cfg->p_shift;
        pf->child_v[k] = pf->vbar;
        pf->child_w[k++] = cfg->shift_scale * cfg->shift_scale;
    }
    pf->j_enter = -1;
    pf->eps_enter = 0.0;
    if (cfg->p_episode > 0.0) {
        pf->j_enter = k;
        pf->eps_enter = fmin(2.0 / pf->n, 0.25);
        pf->child_kind[k] = CHILD_ENTER;
        pf->child_p[k] = cfg->p_episode;
        pf->child_v[k] = pf->vbar;
        pf->child_w[k++] = cfg->shift_scale * cfg->shift_scale;
        /* An abnormal particle goes on (stay) or draws from the normal
         * particle's children (1 - stay): a geometric episode length with
         * mean episode_duration events. */
        pf->stay = 1.0 - 1.0 / cfg->episode_duration;
        pf->child_kind[k] = CHILD_STAY;
        pf->child_p[k] = pf->stay;
        pf->child_v[k] = pf->vbar;
        pf->child_w[k++] = 0.0;
    }
    if (cfg->p_recur > 0.0 && cfg->recur_window > 0) {
        pf->child_kind[k] = CHILD_RECUR;
        pf->child_p[k] = cfg->p_recur;
        pf->child_v[k] = 0.0;
        pf->child_w[k++] = 0.0;
    }
    pf->k = k;
    tail_weights(pf);
    return 0;
}

bw_pf_t *bw_pf_new(const bw_pf_cfg_t *cfg, uint64_t seed, char *errstr,
                   size_t errstr_size)
{
    bw_pf_t *pf = bw_calloc(1, sizeof(*pf));
    double **arrays[N_ARRAYS];

    if (pf == NULL) {
        goto fail;
    }
    pf->cfg = cfg;
    pf->n = cfg->particles;
    pf->mem = bw_malloc((size_t)(N_ARRAYS + 2) * pf->n * sizeof(double));
    if (pf->mem == NULL || bw__memory_init(&pf->recent, cfg->recur_window) ||
        bw__season_init(&pf->daily, &cfg->daily, DAY_MS) ||
        bw__season_init(&pf->weekly, &cfg->weekly, WEEK_MS) ||
        bw__phase_init(&pf->phase, cfg->daily.bins, cfg->recur_spike_width,
                       cfg->p_spike > 0.0 ? cfg->recur_spike_prior : 0.0,
                       cfg->daily.half_life)) {
        goto fail;
    }
    arrays[0] = &pf->m0, arrays[1] = &pf->m1, arrays[2] = &pf->c00;
    arrays[3] = &pf->c01, arrays[4] = &pf->c11, arrays[5] = &pf->d;
    arrays[6] = &pf->ab, arrays[7] = &pf->ma, arrays[8] = &pf->ca;
    arrays[9] = &pf->logw; /* last: resampling copies the others */
    for (int a = 0; a < N_ARRAYS; a++) {
        *arrays[a] = pf->mem + (size_t)a * pf->n;
    }
    pf->wlin = pf->mem + (size_t)N_ARRAYS * pf->n;
    pf->vis = pf->mem + (size_t)(N_ARRAYS + 1) * pf->n;
    memset(pf->vis, 0, (size_t)pf->n * sizeof(double)); /* checked on load */
    if (setup_children(pf) != 0) {
        bw_pf_destroy(pf);
        bw_seterr(errstr, errstr_size, BW_ERR_NUMERIC,
                  "model.pf: cannot build the t quadrature (t_nodes 1..%d)",
                  BW_T_NODES_MAX);
        return NULL;
    }
    bw_rng_seed(&pf->rng, seed);
    pf->ar_keep = exp2(-1.0 / cfg->ar_half_life);
    pf->tail_keep = exp2(-1.0 / TAIL_HALF_LIFE);
    pf->quantum = INFINITY; /* no step seen yet (also in a blob saved now) */
    if (bw__block_init(&pf->block, cfg, seed, errstr, errstr_size) != 0) {
        bw_pf_destroy(pf);
        return NULL;
    }
    return pf;
fail:
    bw_pf_destroy(pf);
    bw_seterr(errstr, errstr_size, BW_ERR_NOMEM, "model.pf: out of memory");
    return NULL;
}

void bw_pf_destroy(bw_pf_t *pf)
{
    if (pf == NULL) {
        return;
    }
    bw__block_free(&pf->block);
    bw__season_free(&pf->daily);
    bw__season_free(&pf->weekly);
    bw__phase_free(&pf->phase);
    bw__memory_free(&pf->recent);
    bw_free(pf->mem);
    bw_free(pf);
}

bw_pf_ws_t *bw_pf_ws_new(const bw_pf_cfg_t *cfg)
{
    bw_pf_ws_t *ws = bw_calloc(1, sizeof(*ws));

    if (ws == NULL) {
        return NULL;
    }
    ws->cap = cfg->particles;
    ws->ll = bw_malloc((size_t)ws->cap * K_MAX * sizeof(double));
    ws->tmp = bw_malloc((size_t)ws->cap * N_ARRAYS * sizeof(double));
    ws->idx = bw_malloc((size_t)ws->cap * sizeof(int));
    ws->pv = bw_malloc((size_t)ws->cap * BATCH_ARRAYS * sizeof(double));
    if (ws->ll == NULL || ws->tmp == NULL || ws->idx == NULL ||
        ws->pv == NULL) {
        bw_pf_ws_destroy(ws);
        return NULL;
    }
    return ws;
}

void bw_pf_ws_destroy(bw_pf_ws_t *ws)
{
    if (ws == NULL) {
        return;
    }
    bw_free(ws->ll);
    bw_free(ws->tmp);
    bw_free(ws->idx);
    bw_free(ws->pv);
    bw_free(ws);
}

size_t bw_pf_memory(const bw_pf_t *pf)
{
    return sizeof(*pf) + (size_t)(N_ARRAYS + 2) * pf->n * sizeof(double) +
           (size_t)(pf->cfg->recur_window + 1) * sizeof(float) +
           bw__season_memory(&pf->daily) + bw__season_memory(&pf->weekly) +
           bw__phase_memory(&pf->phase) + bw__block_memory(&pf->block);
}

uint64_t bw_pf_events(const bw_pf_t *pf)
{
    return pf->events;
}

uint64_t bw_pf_late(const bw_pf_t *pf)
{
    return pf->late;
}

/* ---- recent values (the recurrent regime) ---- */

static int has_recur(const bw_pf_t *pf)
{
    return pf->k > 0 && pf->child_kind[pf->k - 1] == CHILD_RECUR;
}

/* Balloon bandwidth around x: recur_bandwidth noise sds, or recur_relative
 * of the distance from the reference point. */
static double balloon(const bw_pf_t *pf, double x, double ref)
{
    return fmax(pf->cfg->recur_bandwidth * pf->sd_last,
                pf->cfg->recur_relative * fabs(x - ref));
}

/* The local noise's variance factor from the scan (header comment). */
static double local_factor(const bw_pf_t *pf, const bw__mem_scan_t *r)
{
    double s2 = pf->sd_last * pf->sd_last, k;

    if (!(s2 > 0.0)) {
        return 1.0;
    }
    k = (0.5 * r->ss + LN_W * s2) / ((r->pairs + LN_W) * s2);
    return k > 1.0 && isfinite(k) ? k : 1.0;
}

/* Of @p near remembered values in a kernel, @p dwell followed by a value in
 * the stay range: the chance a visit goes on, Laplace-smoothed. */
static double stay_chance(int dwell, int near)
{
    return (dwell + 1.0) / (near + 2.0);
}

/* The chance that a visit to y's state goes on for another event: of the
 * remembered values near y (the kernel), the share followed by a value in
 * the stay range (memory_terms), Laplace-smoothed. The
 * newest recur_visit values before the skipped episode are left out: they
 * are the visit being judged, and would vouch for themselves. */
static double visit_stay(const bw_pf_t *pf, int skip, bw__mem_scan_t *r)
{
    bw__memory_unscan(&pf->recent, skip, pf->cfg->recur_visit, r);
    return stay_chance(r->dwell, r->near);
}

/* Whether k of a kernel's c remembered values lying near this time of day,
 * in windows that hold a share p of the values scanned, says the kernel's
 * state belongs to other hours: k < recur_min_count (at most 1) and so
 * few would be a chance share of values scattered over the day with
 * probability under PHASE_ALPHA, P(Bin(c, p) <= k). */
static int other_hours(const bw_pf_t *pf, int k, int c, double p)
{
    double tail;

    if (c <= 0 || k >= pf->cfg->recur_min_count || k > 1) {
        return 0;
    }
    tail = pow(1.0 - p, c) + (k == 1 ? c * p * pow(1.0 - p, c - 1) : 0.0);
    return tail < PHASE_ALPHA;
}

/*
 * From the end of the first day (phase_wanted), a level earlier days
 * reached only at other hours (their afternoon peak, in the morning) is no
 * return to a familiar state: a daily pattern keeps its hour from day to
 * day. Once the profile applies, the profile holds the cycle, and a jump
 * to a level of other hours would otherwise still be read as a visit to a
 * familiar state that earlier stays there confirm (a saturation at the
 * peak's level at night, flagged at its onset only). The
 * memory's values within novel_phase_ms of this time on earlier days
 * (@p ph) tell it (other_hours: of the kernel's values, less the newest
 * recur_visit for a jump, @p fresh, as the novelty above counts them, and
 * with the zone's for a stay, as visit_stay counts them). A jump to such a
 * level may start an episode (*novel; once the profile applies every
 * jump may, and *novel changes nothing). The recurrent density at y is left
 * as it was: one tail value of heavy-tailed noise lands on levels the cycle
 * holds at other hours too, and is no change. What tells the two apart is
 * whether the series stays: while y's level is one of other hours (*hold),
 * a visit is not confirmed (visit_age) and goes on with the chance those
 * hours' values near y show (Laplace-smoothed: 1/2 with none), not the
 * whole memory's, so a stay there is soon read as the episode it is, and a
 * tail value's visit ends at the next event at no cost. A gap at this time
 * of day (no values there) leaves any hour counting.
 */
static void phase_terms(const bw_pf_t *pf, int skip, int64_t t_ms,
                        int jump, int fresh, bw__mem_scan_t *r, int *novel,
                        double *pstay, int *hold)
{
    bw__mem_phase_t ph;
    double p;
    /* other_hours is false once k reaches this: the scan stops there */
    int kmax = pf->cfg->recur_min_count < 2 ? pf->cfg->recur_min_count : 2;
    int stop_near = r->near > 0 ? kmax : 0;
    int stop_count = jump && fresh > 0 ? kmax : 0;

    if (stop_near <= 0 && stop_count <= 0) {
        return;
    }
    bw__memory_scan_phase(&pf->recent, skip, t_ms - pf->recent.t_push,
                          pf->daily.period_ms,
                          (int64_t)pf->cfg->novel_phase_ms, r, stop_near,
                          stop_count, &ph);
    if (ph.stopped || ph.held <= 0) {
        return;
    }
    p = fmin((double)ph.held / (pf->recent.n - skip), 1.0);
    if (other_hours(pf, ph.near, r->near, p)) {
        *hold = 1;
    } else if (!(jump && other_hours(pf, ph.count, fresh, p))) {
        return;
    }
    *novel = 1;
    if (has_recur(pf) && pf->cfg->recur_visit > 0) {
        *pstay = stay_chance(ph.dwell, ph.near);
    }
}

/* The step's terms from the memory: the recurrent child's log density at y
 * (its kernel is centred on y, with the excursion from the current level),
 * the local noise factor, a visit's chance to go on (visit_stay), and
 * whether y is a jump to a level the memory has not held (*novel: fewer
 * than recur_min_count values in the kernel, the newest recur_visit left
 * out as in visit_stay: a change's own first values vouch for nothing;
 * counted only if @p want_novel, see novel_wanted); with @p want_phase,
 * whether y's level belongs to other hours (phase_terms). */
static void memory_terms(const bw_pf_t *pf, double y, int64_t t_ms,
                         int want_novel, int want_phase, double *lrecur,
                         double *kt, double *pstay, int *novel, int *hold)
{
    int local = pf->cfg->local_noise && pf->cfg->learn_scale;
    int n = pf->recent.n;
    /* The ongoing episode's own values make nothing familiar. */
    int skip = pf->cfg->memory_normal_only
                   ? 0
                   : (pf->abn_run < (uint32_t)n ? (int)pf->abn_run : n);
    double h, ha, prev, g, hs, ry, rl;
    int jump, fresh;
    bw__mem_scan_t r;

    *lrecur = -INFINITY;
    *kt = 1.0;
    *pstay = 1.0;
    *novel = 0;
    *hold = 0;
    if (n - skip < 16 || (!has_recur(pf) && !local)) {
        return;
    }
    h = balloon(pf, y, pf->level_last);
    prev = bw__memory_back(&pf->recent, 0);
    ha = local ? balloon(pf, prev, bw__memory_mean(&pf->recent)) : -1.0;
    /* the scan's bounds are relative to the memory's origin */
    ry = bw__memory_rel(&pf->recent, y);
    rl = bw__memory_rel(&pf->recent, pf->level_last);
    prev = bw__memory_rel(&pf->recent, prev);
    r.lo = (float)(ry - h), r.hi = (float)(ry + h);
    /* Values within recur_gap noise sds of the current level are the
     * current state's own spread, not another state to jump to. */
    g = pf->cfg->recur_gap * pf->sd_last;
    r.zlo = (float)(rl - g), r.zhi = (float)(rl + g);
    r.alo = (float)(prev - ha), r.ahi = (float)(prev + ha);
    /* in float: below about 3e-39 (scale_floor 0 and values that far
     * apart) 1 / ha is inf, and every pair's square with it */
    r.inv = ha > 0.0 ? (float)fmin(1.0 / ha, FLT_MAX) : 0.0f;
    /* A stay at y's state: the next value within the state's own spread
     * (the zone's width) of y, or within half the jump from the level. */
    hs = fmax(g, 0.5 * fabs(y - pf->level_last));
    r.dlo = (float)(ry - hs), r.dhi = (float)(ry + hs);
    bw__memory_scan(&pf->recent, skip, &r);
    r.ss *= r.inv == FLT_MAX ? 1.0 / ((double)r.inv * r.inv) : ha * ha;
    jump = h > 0.0 && (g == 0.0 || fabs(y - pf->level_last) > g);
    if (has_recur(pf) && jump && r.count >= pf->cfg->recur_min_count) {
        *lrecur = log(r.count / (2.0 * h * (n - skip)));
    }
    fresh = r.count - bw__memory_count_newest(&pf->recent, skip,
                                              pf->cfg->recur_visit, &r);
    *novel = want_novel && jump && fresh < pf->cfg->recur_min_count;
    if (local) {
        *kt = local_factor(pf, &r);
    }
    if (has_recur(pf) && pf->cfg->recur_visit > 0) {
        *pstay = visit_stay(pf, skip, &r);
    }
    if (want_phase) {
        phase_terms(pf, skip, t_ms, jump, fresh, &r, novel, pstay, hold);
    }
}

/* ---- filtering ---- */

/* Sample the Gaussian state of particle i (rao_blackwell = false). */
static void sample_state(bw_pf_t *pf, int i, double scale)
{
    double z0 = bw_rng_gauss(&pf->rng), l00, l10, l11, r;

    l00 = sqrt(fmax(pf->c00[i], 0.0) * scale);
    if (!pf->cfg->trend) {
        pf->m0[i] += l00 * z0;
        pf->c00[i] = 0.0;
        return;
    }
    l10 = l00 > 0.0 ? pf->c01[i] * scale / l00 : 0.0;
    r = pf->c11[i] * scale - l10 * l10;
    l11 = sqrt(r > 0.0 ? r : 0.0);
    pf->m1[i] += l10 * z0 + l11 * bw_rng_gauss(&pf->rng);
    pf->m0[i] += l00 * z0;
    pf->c00[i] = pf->c01[i] = pf->c11[i] = 0.0;
}

static void first_event(bw_pf_t *pf, int64_t t_ms, double y, bw_pf_out_t *out)
{
    const bw_pf_cfg_t *cfg = pf->cfg;
    double s0 =
        fmax(fmax(cfg->scale_prior * fabs(y), cfg->scale_floor), SD_MIN);

    if (!cfg->learn_scale) {
        s0 = cfg->scale_prior;
    }
    pf->s0sq = s0 * s0;
    pf->dof = cfg->scale_prior_dof;
    for (int i = 0; i < pf->n; i++) {
        pf->m0[i] = y;
        pf->m1[i] = 0.0;
        pf->c00[i] = cfg->init_level_var;
        pf->c01[i] = 0.0;
        pf->c11[i] = cfg->trend ? cfg->init_level_var : 0.0;
        pf->d[i] = pf->dof * pf->s0sq;
        pf->ab[i] = 0.0;
        pf->vis[i] = 0.0;
        pf->ma[i] = y;
        pf->ca[i] = cfg->init_level_var;
        pf->logw[i] = -log((double)pf->n);
        pf->wlin[i] = 1.0 / pf->n;
        if (!cfg->rao_blackwell) {
            sample_state(pf, i, pf->s0sq);
        }
    }
    pf->t_first = pf->t_last = t_ms;
    pf->early_ss = 0.0;
    pf->abn_since = -1;
    pf->abn_run = 0;
    pf->abn_gap = pf->abn_calm = 0;
    pf->held_since = -1;
    pf->exc_since = -1;
    pf->yd_prev = y;
    out->since_ms = -1;
    pf->events = 1;
    pf->y_prev = y;
    out->expected = out->lower = out->upper = out->level = y;
    out->noise_sd = s0;
    pf->sd_last = s0;
    pf->level_last = y;
    bw__memory_push(&pf->recent, y, t_ms, y);
    out->p_value = 1.0;
    out->noise_factor = 1.0;
    out->ess = pf->n;
    out->warmup = cfg->warmup > 0;
}

/* A profile that starts to apply at this event moves the filter's frame:
 * the level it tracked (the value with the profile absent) is re-expressed
 * without the component now subtracted. "Starts to apply" is the first
 * event at which it is active (its first period estimated), recorded in
 * `framed`: a profile that became active by age before it had an
 * estimate must still move the frame when its estimate arrives. */
/* The memory of recent values moves with the frame: each value less the
 * newly applied profiles at its time (k values back: k of the memory's
 * spacings and the gaps it logged, bw__memory_age_ms; the profiles are
 * @p pf's), so that familiarity is judged
 * without the cycle: a lasting change to a level the cycle visited
 * yesterday is not familiar. @p mp is the filter itself or its block
 * model, whose values are block means of the same de-seasonalised values. */
static void reframe_memory(bw_pf_t *mp, const bw_pf_t *pf, int64_t age,
                           int which)
{
    for (int k = 0; k < mp->recent.n; k++) {
        int64_t t = mp->recent.t_push - bw__memory_age_ms(&mp->recent, k);
        double v = 0.0;
        if (which & 1) {
            v += bw__season_value(&pf->daily, t, age);
        }
        if (which & 2) {
            v += bw__season_value(&pf->weekly, t, age);
        }
        bw__memory_shift_back(&mp->recent, k, v);
    }
    bw__memory_resum(&mp->recent);
}

/* The block model filters block means of the de-seasonalised values, so
 * its frame moves with the filter's: its level, its memory and the open
 * block's sum (values of the old frame, re-expressed at this phase).
 * Without this, the first block with the profile applied is a step of the
 * profile's size, reported as a sustained anomaly of every series with a
 * cycle at the moment its profile starts to apply. */
static void reframe_block(bw_pf_t *pf, int64_t age, int which, double shift)
{
    bw_block_t *b = &pf->block;

    if (b->pf == NULL) {
        return;
    }
    if (b->pf->recent.n > 0) {
        reframe_memory(b->pf, pf, age, which);
    }
    bw__pf_shift(b->pf, -shift);
    b->sum -= shift * b->n;
}

/*
 * An excursion (track_excursion) still going on when the daily profile
 * starts to apply is an abnormal episode from its start. The filter had
 * followed it (changes were onset-only), so its level would otherwise
 * become the baseline: the rest of the incident would not be flagged
 * (test_episode: 1 of 57 events), and where the old level is not familiar
 * the return to normal would read as an abnormal drop until adopted. Each
 * particle keeps its level as the abnormal one and takes the level the
 * excursion left, in the new frame (less the profiles at the phase where
 * the excursion began, @p profile_then), as its baseline; the episode counts
 * from the excursion's start (adoption's horizon, and the memory's skip),
 * its abnormal events in a row from now (the particles entered it here,
 * so adoption waits for EPISODE_GAP + 1 of them, episode()). Only an
 * excursion converts: an onset the filter did not flag (p < 1/2) started
 * none, and stays in the baseline. A particle already in an episode (one
 * begun at an unvisited level after the excursion, novel_wanted) keeps it,
 * and an episode the filter reports keeps its start.
 */
static void excursion_to_episode(bw_pf_t *pf, double profile_then)
{
    const double base = pf->exc_level - profile_then;
    const double gap = pf->cfg->episode_min * pf->sd_last;
    double level = 0.0;

    for (int i = 0; i < pf->n; i++) {
        if (pf->ab[i] == 0.0) { /* one in an episode keeps it (above) */
            pf->ma[i] = pf->m0[i];
            pf->ca[i] = pf->c00[i];
            pf->ab[i] = fabs(pf->ma[i] - base) >= gap ? 1.0 : 0.0;
            if (pf->ab[i] != 0.0) {
                pf->m0[i] = base;
            }
        }
        level += pf->wlin[i] * pf->m0[i];
    }
    pf->level_last = level;
    if (pf->abn_since < 0) {
        pf->abn_since = pf->exc_since;
        pf->abn_run = pf->exc_events;
        pf->abn_gap = 0;
        pf->abn_calm = 0; /* its particles entered the episode now */
    }
    pf->exc_since = -1;
}

/*
 * The noise's autocorrelation was measured against a model without the
 * profile (a daily cycle the level lagged reads as correlated noise), so
 * it is measured again when a profile starts to apply, from the remembered
 * values, which reframe_memory has just put in the new frame. With a
 * slowly moving level the first differences d_t of AR(1) noise have lag-1
 * autocorrelation r = -(1 - phi) / 2 whatever the level (differencing
 * removes it): phi = 1 + 2 r, clamped as in learn_ar. The values are the
 * in-sample residuals of the profile's bins (estimated from them), so the
 * estimate is low (phi 0.5 reads as 0.39, 0.8 as 0.58:
 * test_profile_start_ar_estimate), the side of the zero it replaces; read
 * from the values before the move it is unbiased, but the cycle's own
 * steps then count as correlation (5-minute data: NAB CV -1.5). The moment
 * sums restart from it with the weight of the pairs it used (at most what
 * their forgetting keeps), and learn_ar goes on from there. Zeroed
 * instead, the correlated noise of the next half hour read as level
 * changes (test_profile_start_remeasures_ar: 19 of 3,600 events flagged;
 * the fleet's AR(1) series at 00:09-00:14 of day 3), and the old estimate
 * kept instead is the cycle's (test_quality: false alarms 6.5 -> 9.0 per
 * 10,000 on white noise). Spikes in the memory pull r toward -1/2, phi
 * toward 0: the side that was there before.
 */
static void ar_from_memory(bw_pf_t *pf)
{
    const bw__memory_t *m = &pf->recent;
    const double s2 = pf->sd_last * pf->sd_last;
    double dd = 0.0, d1 = 0.0, prev = 0.0, w;

    pf->phi = pf->ar_uu = pf->ar_u1 = pf->ar_w = 0.0;
    pf->u_ok = 0;
    if (!pf->cfg->ar_noise || pf->cfg->trend || m->n < AR_MIN + 2) {
        return;
    }
    for (int k = m->n - 2; k >= 0; k--) { /* oldest first */
        double d = bw__memory_back(m, k) - bw__memory_back(m, k + 1);
        dd += d * d;
        d1 += k < m->n - 2 ? d * prev : 0.0;
        prev = d;
    }
    if (!(dd > 0.0) || !(s2 > 0.0)) {
        return;
    }
    w = fmin(m->n - 2, 1.0 / (1.0 - pf->ar_keep));
    pf->phi = fmin(fmax(1.0 + 2.0 * d1 / dd, 0.0), AR_MAX);
    pf->ar_w = w;
    pf->ar_uu = w * s2;
    pf->ar_u1 = pf->phi * w * s2;
}

/*
 * The frame's move for the baseline of a particle in an abnormal episode:
 * that baseline has only been predicted since the episode began, so it is
 * the level of the episode's start, whose phase the profiles that now start
 * to apply (@p which) are read at, not this event's (as for an excursion,
 * excursion_to_episode). Only at the daily profile's start, where an
 * episode is one at a level the first day did not visit (novel_wanted): an
 * episode running when the weekly profile starts (week 3) moves with this
 * event's phase, as before novel_episodes (not measured: every run here is
 * shorter).
 */
static double episode_base_shift(const bw_pf_t *pf, int64_t age, int which,
                                 double shift)
{
    double base;

    if (pf->abn_since < 0 || !(which & 1)) {
        return shift;
    }
    base = bw__season_value(&pf->daily, pf->abn_since, age);
    if (which & 2) {
        base += bw__season_value(&pf->weekly, pf->abn_since, age);
    }
    return base;
}

static void reframe(bw_pf_t *pf, int64_t age, double sd, double sw)
{
    double shift = 0.0, base, level;
    int which = 0;

    if (!(pf->framed & 1) && bw__season_active(&pf->daily, age)) {
        shift += sd;
        which |= 1;
    }
    if (!(pf->framed & 2) && bw__season_active(&pf->weekly, age)) {
        shift += sw;
        which |= 2;
    }
    pf->framed |= which;
    if (which != 0 && pf->recent.n > 0) {
        reframe_memory(pf, pf, age, which);
    }
    if (which != 0) {
        reframe_block(pf, age, which, shift);
    }
    if (which == 0) {
        return;
    }
    base = episode_base_shift(pf, age, which, shift);
    if (shift == 0.0 && base == 0.0 && pf->exc_since < 0) {
        return;
    }
    ar_from_memory(pf);
    level = 0.0;
    for (int i = 0; i < pf->n; i++) {
        pf->m0[i] -= pf->ab[i] != 0.0 ? base : shift;
        pf->ma[i] -= shift;
        level += pf->wlin[i] * pf->m0[i];
    }
    pf->level_last = base == shift ? pf->level_last - shift : level;
    pf->yd_prev -= shift;
    if ((which & 1) && pf->exc_since >= 0 && pf->j_enter >= 0) {
        /* the level it left, in the new frame: less the profiles at the
         * excursion's start, not at this event's phase */
        double then = bw__season_value(&pf->daily, pf->exc_since, age);
        if (which & 2) {
            then += bw__season_value(&pf->weekly, pf->exc_since, age);
        }
        excursion_to_episode(pf, then);
    }
}

/*
 * Episodes are judged against a baseline that includes the daily pattern.
 * Until the daily profile applies (its first min_cycles days) there is no
 * such baseline to hold: a daily swing the level cannot follow would start
 * an episode that the frozen baseline never ends. Until then changes are
 * onset-only level shifts (prior p_episode when p_shift is 0), as without
 * episodes, except a jump to a level the series has not visited
 * (novel_wanted).
 */
static int episodes_on(const bw_pf_t *pf, int64_t age)
{
    return !pf->cfg->daily.enabled || bw__season_active(&pf->daily, age);
}

static void episode_phase(bw_pf_t *pf, int64_t age, int novel)
{
    const bw_pf_cfg_t *cfg = pf->cfg;
    int on = episodes_on(pf, age) || novel;

    if (pf->j_enter < 0) {
        return;
    }
    pf->child_p[pf->j_enter] = on ? cfg->p_episode : 0.0;
    pf->child_p[pf->j_shift] =
        on ? cfg->p_shift
           : (cfg->p_shift > 0.0 ? cfg->p_shift : cfg->p_episode);
    pf->eps_enter = on ? fmin(2.0 / pf->n, 0.25) : 0.0;
}

/* From the end of the first day, while the memory (recent.n values at the
 * typical interval) reaches back a day: a shorter one has forgotten the
 * first day, and a state it showed would read as unvisited. */
static int memory_spans_day(const bw_pf_t *pf, int64_t age)
{
    return age >= pf->daily.period_ms &&
           (double)pf->recent.n * pf->interval >= (double)pf->daily.period_ms;
}

/*
 * Before the daily profile applies a familiar level may be the daily cycle,
 * so a jump there stays onset-only (episode_phase). A jump to a level the
 * memory has not held near y (novel: fewer than recur_min_count remembered
 * values within the recurrent kernel) is no part of the cycle the first
 * day showed, so from the end of that day it may start an abnormal
 * episode as it would once the profile applies (novel_episodes: such a
 * y turns episode_phase on for its event). Wanted only while the memory
 * spans a day (memory_spans_day).
 */
static int novel_wanted(const bw_pf_t *pf, int64_t age)
{
    return pf->cfg->novel_episodes && pf->j_enter >= 0 &&
           !episodes_on(pf, age) && memory_spans_day(pf, age);
}

/* Whether a level's hour is read (phase_terms): with episodes, a daily
 * period and novel_phase_ms, while the memory spans a day; before the
 * profile applies (its first min_cycles days) only where novelty is read
 * (@p want_novel, novel_wanted's), from its application on every day. */
static int phase_wanted(const bw_pf_t *pf, int64_t age, int want_novel)
{
    return pf->cfg->novel_phase_ms > 0.0 && pf->cfg->daily.enabled &&
           (want_novel || (pf->j_enter >= 0 && episodes_on(pf, age) &&
                           memory_spans_day(pf, age)));
}

static double time_step(bw_pf_t *pf, int64_t t_ms)
{
    double gap = (double)(t_ms - pf->t_last);

    if (gap <= 0.0) {
        return 0.0;
    }
    pf->interval = bw_interval_update(
        pf->interval, gap, 1.0 - exp2(-1.0 / pf->cfg->interval_half_life));
    return gap / pf->interval;
}

typedef struct {
    double dt;
    double y;
    double kdof;       /* log-density constant for the current dof */
    double q, qt;      /* innovation variance ratios scaled by dt */
    double lrecur;     /* log density of recent values at y */
    double pstay;      /* a visit to y's state goes on (visit_stay) */
    int hold;          /* visits are held unconfirmed (phase_terms) */
    double kt;         /* local noise: observation variance factor */
    double phi;        /* AR(1) noise coefficient over this gap */
    double y_prev;     /* the previous de-seasonalised value */
    double spike_mult; /* spike children's prior / p_spike (phase.c) */
    double norm_mult;  /* normal children's prior / theirs */
} step_ctx_t;

/* Per-particle scratch of one step, arrays of ws->cap (structure of
 * arrays so the loops below vectorise). */
typedef struct {
    double *a0, *r00, *e2, *g, *m, *s, *sa, *ss;
    double *cw, *cv, *jump; /* the drawn child: its w, v, 1 if recurrent */
    double *ra, *ea2; /* abnormal level: predicted variance, innovation^2 */
    double *mult;     /* prior factor of the normal particle's children */
    double *draw;     /* DRAW_*: the drawn child's effect on the episode */
    double *se;       /* the abnormal children's sum (enter, stay) */
    /* AR(1) noise (measurement differencing): the normal children's
     * predictive mean mu0, variance ratio s0 (without the child's own
     * variance) and covariance g0 of the new level with the value; the
     * stay child's variance rs and covariance ga. With phi = 0: mu0 = a0,
     * s0 = g0 = r00, rs = ga = ra. */
    double *mu0, *s0, *g0, *rs, *ga;
    double *vf; /* prior factor of the normal children: a visit goes on */
    double *dcap; /* most the value adds to d under the drawn child */
    /* the baseline of a particle that enters an episode from a visit not
     * yet confirmed (rebase_level); NAN for every other particle */
    double *rebase;
} batch_t;

static batch_t batch_of(const bw_pf_ws_t *ws)
{
    double *p = ws->pv;
    size_t n = (size_t)ws->cap;
    batch_t b = {p,          p + n,      p + 2 * n,  p + 3 * n,  p + 4 * n,
                 p + 5 * n,  p + 6 * n,  p + 7 * n,  p + 8 * n,  p + 9 * n,
                 p + 10 * n, p + 11 * n, p + 12 * n, p + 13 * n, p + 14 * n,
                 p + 15 * n, p + 16 * n, p + 17 * n, p + 18 * n, p + 19 * n,
                 p + 20 * n, p + 21 * n, p + 22 * n, p + 23 * n};

    return b;
}

/*
 * AR(1) observation noise, e_t = phi e_{t-1} + eta_t, by measurement
 * differencing (Bryson & Henrikson 1968): given the particle's previous
 * level X (its baseline l_{t-1}, or its abnormal level in an episode) the
 * value is y_t = l_t + phi (y_{t-1} - X) + eta_t. For the baseline's
 * children, with C the variance of l_{t-1} and r00 = C + q that of l_t:
 *   normal before:   mean a0 + phi (y_{t-1} - m),  variance r00 -
 *                    phi (2 - phi) C,  cov(l_t, y_t) = r00 - phi C;
 *   in an episode:   mean a0 + phi (y_{t-1} - ma),  variance r00 +
 *                    phi^2 ca,  cov = r00 (the levels independent);
 * the stay child likewise against ma. A sustained offset then adds only
 * (1 - phi) of itself per event to the evidence: correlated noise is told
 * from a change by as much as it can be, no more.
 */
static void ar_terms(const bw_pf_t *pf, const step_ctx_t *c, const batch_t *b)
{
    const double phi = c->phi, f = phi * (2.0 - phi), p2 = phi * phi;

    for (int i = 0; i < pf->n; i++) {
        double ab = pf->ab[i], x = ab != 0.0 ? pf->ma[i] : pf->m0[i];
        b->mu0[i] = b->a0[i] + phi * (c->y_prev - x);
        b->s0[i] =
            ab != 0.0 ? b->r00[i] + p2 * pf->ca[i] : b->r00[i] - f * pf->c00[i];
        b->g0[i] = ab != 0.0 ? b->r00[i] : b->r00[i] - phi * pf->c00[i];
        b->ra[i] = pf->ca[i] + c->q;
        b->rs[i] = b->ra[i] - f * pf->ca[i];
        b->ga[i] = b->ra[i] - phi * pf->ca[i];
    }
}

/* Predicted level mean and (scaled) variance of every particle, and the
 * squared innovation. */
static void batch_predict(const bw_pf_t *pf, const step_ctx_t *c,
                          const batch_t *b)
{
    const double dt = c->dt, q = c->q;

    if (pf->cfg->trend) {
        for (int i = 0; i < pf->n; i++) {
            b->a0[i] = pf->m0[i] + dt * pf->m1[i];
            b->r00[i] =
                pf->c00[i] + 2.0 * dt * pf->c01[i] + dt * dt * pf->c11[i] + q;
        }
    } else {
        for (int i = 0; i < pf->n; i++) {
            b->a0[i] = pf->m0[i];
            b->r00[i] = pf->c00[i] + q;
        }
    }
    ar_terms(pf, c, b);
    for (int i = 0; i < pf->n; i++) {
        double e = c->y - b->mu0[i];
        double ea = c->y - pf->ma[i] - c->phi * (c->y_prev - pf->ma[i]);
        b->e2[i] = e * e;
        b->ea2[i] = ea * ea;
        b->mult[i] = 1.0 - pf->ab[i] * pf->stay;
        b->vf[i] = pf->vis[i] != 0.0 ? c->pstay : 1.0;
    }
}

/*
 * The children's likelihoods, factored so that the common part is one log
 * per particle. A Kalman child j (t node, spike, shift) with predictive
 * variance ratio qc_j has density exp(c_i) qc_j^(-1/2) exp(-t_j), where
 *
 *   learn_scale:  c_i = kdof - log(d_i) / 2,
 *                 t_j = (dof + 1) / 2 * log1p(e^2 / (qc_j d_i));
 *   known scale:  c_i = -log(2 pi s0^2) / 2,
 *                 t_j = e^2 / (2 qc_j s0^2);
 *
 * the recurrent child has density exp(lrecur). With m_i = min_j t_j,
 * g_i = exp(k0 - c_i) (k0: the part of c_i shared by all particles) and
 * h_i = max(0, lrecur - k0 + m_i) (guards exp against overflow),
 *
 *   p_j = pi_j qc_j^(-1/2) exp(m_i - t_j - h_i),
 *   p_r = pi_r g_i exp(lrecur - k0 + m_i - h_i)
 *
 * are the children's probabilities up to the factor exp(c_i - m_i + h_i),
 * and the particle's incremental log weight is
 * k0 - m_i + h_i + log(sum_j p_j / g_i). Per particle: one log, one exp per
 * child and one log1p per Kalman child. This function fills t_j (into
 * ws->ll), m_i and g_i and returns k0.
 */
/* The stay child's t_j: the value against the abnormal level; +inf for a
 * particle in the normal state (the child has prior 0 there and must not
 * set the particle's minimum). */
static void stay_terms(const bw_pf_t *pf, const batch_t *b, double cw,
                       double hd, double h2, double *t)
{
    for (int i = 0; i < pf->n; i++) {
        double qc = b->rs[i] + cw;
        double v = pf->cfg->learn_scale
                       ? hd * log1p(b->ea2[i] / (qc * pf->d[i]))
                       : h2 * b->ea2[i] / qc;
        t[i] = pf->ab[i] != 0.0 ? v : INFINITY;
    }
}

BW_VECTOR_CLONES
static double batch_t_terms(const bw_pf_t *pf, const step_ctx_t *c,
                            const batch_t *b, const bw_pf_ws_t *ws)
{
    const double hd = 0.5 * (pf->dof + 1.0), h2 = 0.5 / pf->s0sq;
    double k0 = c->kdof;

    for (int i = 0; i < pf->n; i++) {
        b->m[i] = INFINITY;
        b->g[i] = pf->cfg->learn_scale ? sqrt(pf->d[i]) : 1.0;
    }
    if (!pf->cfg->learn_scale) {
        k0 = -0.5 * log(2.0 * M_PI * pf->s0sq);
    }
    for (int j = 0; j < pf->k; j++) {
        const double cw = pf->child_w[j] + pf->child_v[j] * c->kt;
        double *t = ws->ll + (size_t)j * ws->cap;
        if (pf->child_kind[j] == CHILD_RECUR) {
            continue;
        }
        if (pf->child_kind[j] == CHILD_STAY) {
            stay_terms(pf, b, cw, hd, h2, t);
        } else if (pf->cfg->learn_scale) {
            for (int i = 0; i < pf->n; i++) {
                t[i] = hd * log1p(b->e2[i] / ((b->s0[i] + cw) * pf->d[i]));
            }
        } else {
            for (int i = 0; i < pf->n; i++) {
                t[i] = h2 * b->e2[i] / (b->s0[i] + cw);
            }
        }
        for (int i = 0; i < pf->n; i++) {
            b->m[i] = t[i] < b->m[i] ? t[i] : b->m[i];
        }
    }
    return k0;
}

/* Per particle: incremental log weight L[i] (L holds h_i on entry),
 * anomalous and shift probabilities. */
BW_VECTOR_CLONES
static void batch_weights(const batch_t *b, int n, double k0, double *L,
                          double *anom, double *shift, double *abn)
{
    const double *s = b->s, *sa = b->sa, *ss = b->ss, *m = b->m, *g = b->g;
    const double *se = b->se;

    for (int i = 0; i < n; i++) {
        anom[i] = (sa[i] + ss[i] + se[i]) / s[i];
        shift[i] = (ss[i] + se[i]) / s[i];
        abn[i] = se[i] / s[i];
    }
    for (int i = 0; i < n; i++) { /* apart: GCC 12 vectorises it alone */
        L[i] = k0 - m[i] + L[i] + log(s[i] / g[i]);
    }
}

/*
 * Every particle's children: their unnormalised probabilities in ws->ll
 * (child j of particle i at ll[j * cap + i]) with sum b->s[i]; per particle
 * the incremental log weight in L[i] and the anomalous and shift
 * probabilities in anom[i], shift[i].
 */
BW_VECTOR_CLONES
static void batch_children(const bw_pf_t *pf, const step_ctx_t *c,
                           const bw_pf_ws_t *ws, const batch_t *b, double *L,
                           double *anom, double *shift, double *abn)
{
    const int n = pf->n;
    double k0, *h = L; /* L holds h_i until the end */

    k0 = batch_t_terms(pf, c, b, ws);
    for (int i = 0; i < n; i++) {
        double a = c->lrecur - k0 + b->m[i];
        h[i] = a > 0.0 ? a : 0.0;
        b->s[i] = b->sa[i] = b->ss[i] = b->se[i] = 0.0;
    }
    for (int j = 0; j < pf->k; j++) {
        const double cw = pf->child_w[j] + pf->child_v[j] * c->kt;
        const int kind = pf->child_kind[j];
        const double pj =
            pf->child_p[j] * (kind == CHILD_SPIKE    ? c->spike_mult
                              : kind == CHILD_NORMAL ? c->norm_mult
                                                     : 1.0);
        double *p = ws->ll + (size_t)j * ws->cap;
        if (kind == CHILD_RECUR) {
            for (int i = 0; i < n; i++) {
                p[i] = pj * b->mult[i] * b->g[i] *
                       exp(c->lrecur - k0 + b->m[i] - h[i]);
            }
        } else if (kind == CHILD_STAY) { /* p holds t_j on entry */
            for (int i = 0; i < n; i++) {
                p[i] = pj * pf->ab[i] / sqrt(b->rs[i] + cw) *
                       exp(b->m[i] - p[i] - h[i]);
            }
        } else if (kind == CHILD_NORMAL) { /* the visit's cost */
            for (int i = 0; i < n; i++) {
                p[i] = pj * b->mult[i] * b->vf[i] / sqrt(b->s0[i] + cw) *
                       exp(b->m[i] - p[i] - h[i]);
            }
        } else {
            for (int i = 0; i < n; i++) {
                p[i] = pj * b->mult[i] / sqrt(b->s0[i] + cw) *
                       exp(b->m[i] - p[i] - h[i]);
            }
        }
        for (int i = 0; i < n; i++) {
            b->s[i] += p[i];
        }
        if (kind != CHILD_NORMAL && kind != CHILD_RECUR) {
            double *acc = kind == CHILD_SPIKE   ? b->sa
                          : kind == CHILD_SHIFT ? b->ss
                                                : b->se;
            for (int i = 0; i < n; i++) {
                acc[i] += p[i];
            }
        }
    }
    batch_weights(b, n, k0, L, anom, shift, abn);
}

/* Draw every particle's child (unnormalised probabilities in ws->ll, sum
 * b->s[i]); one uniform per particle, in particle order. kt: the local
 * noise factor of the observation variances. */
/*
 * The child of particle i from its uniform u: with probability eps (normal
 * particles, when episodes are on) the episode's start, otherwise a draw
 * from the children's posterior. Entering is rare a priori, and a sustained
 * change is only recognised if some particle entered at its onset; the
 * forced proposals make sure a few do, and their importance weights
 * (posterior over proposal probability: 1 / (1 - eps) for every other
 * child of a normal particle) keep the filter exact in expectation.
 * Returns the child; *lcorr gets the log weight correction (0 for a
 * particle in an episode, which is never forced).
 */
static int draw_one(const bw_pf_t *pf, const bw_pf_ws_t *ws, const batch_t *b,
                    int i, double u, double *lcorr)
{
    double eps = pf->ab[i] == 0.0 ? pf->eps_enter : 0.0, cum = 0.0, pe;
    int j;

    *lcorr = 0.0;
    if (u < eps) {
        j = pf->j_enter;
    } else {
        u = (u - eps) / (1.0 - eps) * b->s[i];
        for (j = 0; j < pf->k - 1; j++) {
            cum += ws->ll[(size_t)j * ws->cap + i];
            if (u < cum) {
                break;
            }
        }
    }
    if (eps > 0.0) { /* posterior / proposal probability of the child */
        pe = ws->ll[(size_t)pf->j_enter * ws->cap + i] / b->s[i];
        *lcorr = j == pf->j_enter ? log(pe / ((1.0 - eps) * pe + eps))
                                  : -log1p(-eps);
    }
    return j;
}

/* Fold the proposal corrections into the (normalised) weights. */
static void correct_weights(bw_pf_t *pf, double *w)
{
    double mx = -INFINITY, s = 0.0, lse;

    for (int i = 0; i < pf->n; i++) {
        mx = pf->logw[i] > mx ? pf->logw[i] : mx;
    }
    if (!isfinite(mx)) { /* every forced child's share underflowed: the
                          * weights stay those before the correction */
        for (int i = 0; i < pf->n; i++) {
            w[i] = pf->wlin[i];
            pf->logw[i] = log(w[i]);
        }
        return;
    }
    for (int i = 0; i < pf->n; i++) {
        w[i] = exp(pf->logw[i] - mx);
        s += w[i];
    }
    lse = mx + log(s);
    for (int i = 0; i < pf->n; i++) {
        pf->logw[i] -= lse;
        w[i] /= s;
        pf->wlin[i] = w[i];
    }
}

/* A recurrent jump starts a visit (age 1); each normal event on it ages it,
 * until it has lasted recur_visit events; any other child ends it. A
 * @p hold (phase_terms) keeps it at recur_visit, unconfirmed. */
static double visit_age(const bw_pf_t *pf, double age, int kind, int hold)
{
    if (kind == CHILD_RECUR) {
        return pf->cfg->recur_visit > 0 ? 1.0 : 0.0;
    }
    if (hold && age != 0.0 &&
        (kind == CHILD_NORMAL || kind == CHILD_SPIKE)) {
        /* at a level of other hours: not confirmed, not even by a spike
         * (whose particle would be normal there from then on) */
        return fmin(age + 1.0, pf->cfg->recur_visit);
    }
    if (kind != CHILD_NORMAL || age == 0.0) {
        return 0.0;
    }
    return age + 1.0 > pf->cfg->recur_visit ? 0.0 : age + 1.0;
}

/* The normal particles' predicted level (none on a visit, none in an
 * episode), by their weights as this event's value has reweighted them
 * (the draws come after the weighting): what normal is at this event,
 * which a visit's own level (the one value it jumped to) is not. The
 * filter's level after the previous event if no such particle has
 * weight. */
static double rebase_level(const bw_pf_t *pf, const batch_t *b)
{
    double m = 0.0, w = 0.0;

    for (int i = 0; i < pf->n; i++) {
        double u = pf->vis[i] == 0.0 && pf->ab[i] == 0.0 ? pf->wlin[i] : 0.0;
        m += u * b->a0[i];
        w += u;
    }
    return w > 0.0 ? m / w : pf->level_last;
}

static void draw_children(bw_pf_t *pf, const bw_pf_ws_t *ws, const batch_t *b,
                          const step_ctx_t *c)
{
    int corrected = 0;
    const double base = rebase_level(pf, b); /* before the draws move vis */

    for (int i = 0; i < pf->n; i++) {
        double lcorr;
        int j = draw_one(pf, ws, b, i, bw_rng_uniform(&pf->rng), &lcorr);
        if (lcorr != 0.0) {
            pf->logw[i] += lcorr;
            corrected = 1;
        }
        b->jump[i] = pf->child_kind[j] == CHILD_RECUR;
        b->rebase[i] = NAN;
        if (pf->vis[i] != 0.0 && pf->ab[i] == 0.0 &&
            pf->child_kind[j] == CHILD_ENTER) {
            b->rebase[i] = base;
        }
        pf->vis[i] = visit_age(pf, pf->vis[i], pf->child_kind[j], c->hold);
        b->draw[i] = pf->child_kind[j] == CHILD_ENTER  ? DRAW_ENTER
                     : pf->child_kind[j] == CHILD_STAY ? DRAW_STAY
                                                       : DRAW_NORMAL;
        /* A recurrent jump, and a value in an abnormal episode, leave the
         * baseline as predicted: an infinite observation variance. */
        b->cw[i] = b->jump[i] != 0.0 || b->draw[i] != DRAW_NORMAL
                       ? 0.0
                       : pf->child_w[j];
        b->cv[i] = b->jump[i] != 0.0 || b->draw[i] != DRAW_NORMAL
                       ? INFINITY
                       : pf->child_v[j] * c->kt;
        b->dcap[i] = INFINITY;
        if (pf->child_kind[j] == CHILD_SPIKE ||
            pf->child_kind[j] == CHILD_SHIFT) {
            b->dcap[i] = (pf->child_v[j] + pf->child_w[j]) * pf->d[i] / pf->dof;
        }
    }
    if (corrected) {
        correct_weights(pf, ws->tmp + 3 * (size_t)pf->n);
    }
}

/*
 * The abnormal state after the draw. A particle that enters an episode
 * starts its abnormal level from the baseline's prediction widened by the
 * shift (variance r00 + shift_scale^2); one that stays moves it by the
 * level's own random walk (ca + q); either then takes the value as a
 * Kalman observation (variance vbar kt). The baseline was only predicted
 * (draw_children), and the noise statistics learn nothing from the value:
 * d gains its own expectation d/dof, so the noise estimate stays where it
 * was (the value says nothing about the normal state's noise). Every
 * other child ends the episode, and so does an abnormal level that comes
 * within episode_min noise sds (the local noise's, when it is wider) of the
 * baseline (for a particle entering from a visit not yet confirmed, the
 * normal particles' level, rebase_level, replaces its own baseline first;
 * its abnormal level still starts from the visit's prediction, widened by
 * the shift): such a state cannot be told
 * from normal by any data, and a particle left in it would be carried
 * along by resampling at the normal particles' weight (neutral drift),
 * holding P(abnormal) up on normal data.
 */
static void update_abnormal(bw_pf_t *pf, const step_ctx_t *c, const batch_t *b)
{
    const double k2 = pf->cfg->shift_scale * pf->cfg->shift_scale;
    const double v = pf->vbar * c->kt;
    const double gap = pf->cfg->episode_min * pf->sd_last * sqrt(c->kt);

    for (int i = 0; i < pf->n; i++) {
        double r, m, g;
        if (b->draw[i] == DRAW_NORMAL) {
            pf->ab[i] = 0.0;
            pf->ma[i] = pf->m0[i];
            pf->ca[i] = pf->c00[i];
            continue;
        }
        if (!isnan(b->rebase[i])) {
            /* A visit not yet confirmed left for an episode: the jump was
             * no return to a familiar state, and the baseline the episode
             * is judged against is the normal particles', not the level
             * of the one value that jumped there (rebase_level). */
            pf->m0[i] = b->rebase[i];
        }
        if (b->draw[i] == DRAW_ENTER) {
            m = b->a0[i];
            r = b->r00[i] + k2;
            g = (b->g0[i] + k2) / (b->s0[i] + k2 + v);
            pf->ma[i] = m + g * (c->y - b->mu0[i]);
            pf->ca[i] = r - g * (b->g0[i] + k2);
        } else {
            m = pf->ma[i];
            r = b->ra[i];
            g = b->ga[i] / (b->rs[i] + v);
            pf->ma[i] = m + g * (c->y - m - c->phi * (c->y_prev - m));
            pf->ca[i] = r - g * b->ga[i];
        }
        pf->ab[i] = fabs(pf->ma[i] - pf->m0[i]) >= gap ? 1.0 : 0.0;
        if (pf->cfg->learn_scale) {
            pf->d[i] += pf->d[i] / pf->dof;
        }
    }
}

/* The level-only Kalman/conjugate update of n particles: prior mean a0,
 * variance r (the drawn child's w added); the value's predictive mean mu,
 * variance s + v and covariance g with the level (ar_terms; the child's w
 * added to s and g); restrict parameters so that GCC vectorises it. The
 * noise statistic d gains the standardised squared error, at most cap:
 * under a jump child (a spike or a level shift) as many noise variances
 * as the child's variance ratio, spike_scale^2 (or shift_scale^2 plus
 * the noise's own; draw_children). Uncapped, a value 900 noise sds out
 * added ~8,000 noise variances and the series' noise read several times
 * too wide for days (a 6-sd rise two days later went unflagged: test_pf,
 * test_huge_spike_does_not_blind). A bounded influence of any one value
 * on the scale (Huber 1981): a jump's size is evidence of the jump, not
 * of the normal noise. */
static void kalman_level(int n, double y, double learn,
                         const double *restrict a0, const double *restrict mu,
                         const double *restrict r, const double *restrict s,
                         const double *restrict g, const double *restrict v,
                         const double *restrict cap, double *restrict m,
                         double *restrict c, double *restrict d)
{
    for (int i = 0; i < n; i++) {
        double qc = s[i] + v[i], e = y - mu[i], A0 = g[i] / qc;
        double u = e * e / qc;
        m[i] = a0[i] + A0 * e;
        c[i] = r[i] - g[i] * A0;
        d[i] += learn * (u < cap[i] ? u : cap[i]);
    }
}

/* Kalman/conjugate update of every particle under its drawn child; a
 * recurrent jump (drawn with v = inf: no update, no scale statistic) then
 * restarts the level at y. Level-only model. */
BW_VECTOR_CLONES
static void update_level(bw_pf_t *pf, const step_ctx_t *ctx, const batch_t *b)
{
    double *r = b->sa, *sv = b->ss, *g = b->se; /* free after the weights */

    for (int i = 0; i < pf->n; i++) {
        r[i] = b->r00[i] + b->cw[i];
        sv[i] = b->s0[i] + b->cw[i];
        g[i] = b->g0[i] + b->cw[i];
    }
    kalman_level(pf->n, ctx->y, pf->cfg->learn_scale ? 1.0 : 0.0, b->a0, b->mu0,
                 r, sv, g, b->cv, b->dcap, pf->m0, pf->c00, pf->d);
    for (int i = 0; i < pf->n; i++) {
        if (b->jump[i] != 0.0) {
            pf->m0[i] = ctx->y;
            pf->c00[i] = pf->cfg->init_level_var;
        }
    }
}

/* The same with the trend. */
static void update_trend(bw_pf_t *pf, const step_ctx_t *c, const batch_t *b)
{
    const double y = c->y, dt = c->dt, v0 = pf->cfg->init_level_var;

    for (int i = 0; i < pf->n; i++) {
        double r00 = b->r00[i] + b->cw[i], qc = r00 + b->cv[i];
        double r01 = pf->c01[i] + dt * pf->c11[i], r11 = pf->c11[i] + c->qt;
        double a1 = pf->m1[i], e = y - b->a0[i], A0 = r00 / qc, A1 = r01 / qc;
        if (b->jump[i] != 0.0) {
            pf->m0[i] = y;
            pf->c00[i] = v0;
            pf->c01[i] = 0.0;
            pf->c11[i] = r11;
            continue;
        }
        pf->m0[i] = b->a0[i] + A0 * e;
        pf->m1[i] = a1 + A1 * e;
        pf->c00[i] = r00 - r00 * A0;
        pf->c01[i] = r01 - r00 * A1;
        pf->c11[i] = r11 - r01 * A1;
        if (pf->cfg->learn_scale) {
            pf->d[i] += fmin(e * e / qc, b->dcap[i]);
        }
    }
}

/* Draw, update, and (rao_blackwell = false) sample the states. */
static void propagate(bw_pf_t *pf, const bw_pf_ws_t *ws, const batch_t *b,
                      const step_ctx_t *c)
{
    draw_children(pf, ws, b, c);
    if (pf->cfg->trend) {
        update_trend(pf, c, b);
    } else {
        update_level(pf, c, b);
    }
    update_abnormal(pf, c, b);
    if (pf->cfg->rao_blackwell) {
        return;
    }
    for (int i = 0; i < pf->n; i++) {
        if (b->jump[i] == 0.0) {
            sample_state(pf, i,
                         pf->cfg->learn_scale ? pf->d[i] / (pf->dof + 1.0)
                                              : pf->s0sq);
        }
    }
}

/* Moment-matched one-step predictive (location, scale) from the prior
 * (normalised, linear) weights w[], the predicted moments in b and the
 * local noise factor kt. */
static void predictive(const bw_pf_t *pf, const batch_t *b, const double *w,
                       double kt, double *mu, double *sd)
{
    double m = 0.0, v = 0.0, m2 = 0.0;
    const double *a0 = b->mu0, *r00 = b->s0, vbar = pf->vbar * kt;

    if (pf->cfg->learn_scale) {
        for (int i = 0; i < pf->n; i++) {
            v += w[i] * (r00[i] + vbar) * pf->d[i];
        }
        v /= pf->dof;
    } else {
        for (int i = 0; i < pf->n; i++) {
            v += w[i] * (r00[i] + vbar);
        }
        v *= pf->s0sq;
    }
    /* The particles' spread by the shifted-data formula (Chan, Golub &
     * LeVeque 1983): sums of a0 - a0[0], whose mean is a few sds at most
     * (a particle far out leaves only its distance squared times 1e-16).
     * About 0, m2 - m^2 at a level of 1e10 kept 1e20's rounding (2e4). */
    for (int i = 0; i < pf->n; i++) {
        double d = a0[i] - a0[0];
        m += w[i] * d;
        m2 += w[i] * d * d;
    }
    *mu = a0[0] + m;
    *sd = sqrt(v + fmax(m2 - m * m, 0.0));
}

static double t_quantile(bw_pf_t *pf)
{
    if (!pf->cfg->learn_scale) {
        return 1.959963984540054;
    }
    if (pf->dof != pf->q_dof) {
        pf->q_dof = pf->dof;
        pf->q_val = gsl_cdf_tdist_Pinv(0.975, pf->dof);
    }
    return pf->q_val;
}

static void summarise(bw_pf_t *pf, double y, double mu, double sd,
                      bw_pf_out_t *out)
{
    double z = fabs(y - mu) / sd;

    out->expected = mu;
    out->pred_sd = sd;
    out->lower = mu - t_quantile(pf) * sd;
    out->upper = mu + t_quantile(pf) * sd;
    out->p_value = pf->cfg->learn_scale ? 2.0 * gsl_cdf_tdist_Q(z, pf->dof)
                                        : 2.0 * gsl_cdf_ugaussian_Q(z);
    if (out->p_anomaly >= 0.5) {
        int up = y >= mu;
        if (out->p_shift > out->p_spike) {
            out->direction = up ? BW_DIR_SHIFT_UP : BW_DIR_SHIFT_DOWN;
        } else {
            out->direction = up ? BW_DIR_SPIKE : BW_DIR_DIP;
        }
    }
}

/* P(the recurrent child | data): its share of each particle's children,
 * averaged with the updated weights w[]. */
static double recur_posterior(const bw_pf_t *pf, const bw_pf_ws_t *ws,
                              const batch_t *b, const double *w)
{
    const double *p = ws->ll + (size_t)(pf->k - 1) * ws->cap;
    double r = 0.0;

    if (pf->k == 0 || pf->child_kind[pf->k - 1] != CHILD_RECUR) {
        return 0.0;
    }
    for (int i = 0; i < pf->n; i++) {
        r += w[i] * p[i] / b->s[i];
    }
    return fmin(fmax(r, 0.0), 1.0);
}

/*
 * The tail of the noise, learned (learn_tail): the t quadrature's widest
 * node is 1.5 noise scales, so a series with heavier tails (Student-t with
 * 3 dof) reads its scattered extremes as spikes. A wider normal node
 * (tail_scale noise scales) has a weight o of its own, with a Beta prior
 * that holds it near 0; each event adds its posterior responsibility, the
 * Rao-Blackwellised P(the tail node | data) averaged with the updated
 * weights w[], and the quadrature's nodes add theirs, both forgotten with
 * a half-life of TAIL_HALF_LIFE events: the quasi-Bayes update of a
 * mixture's weights (Smith & Makov 1978; Titterington, Smith & Makov 1985,
 * ch. 6). Light-tailed noise leaves the tail node almost nothing (the
 * quadrature already explains its 3-4 sd values: about 1e-4 after 3,000
 * Gaussian events, which moves the 0.99 line for a lone value from 6.6 to
 * 7.1 sds); heavy-tailed noise gives it the share of values its
 * extremes need. Spikes themselves teach it little: their posterior is the
 * spike child's. Learned from the warm-up's end, where sigma is known
 * (tail_posterior: particles of weight 0 add nothing).
 */
static void tail_posterior(const bw_pf_t *pf, const bw_pf_ws_t *ws,
                           const batch_t *b, const double *w, double *rt,
                           double *rq)
{
    const double *pt;

    *rt = *rq = 0.0;
    for (int j = 0; j < pf->n_quad; j++) {
        const double *p = ws->ll + (size_t)j * ws->cap;
        for (int i = 0; i < pf->n; i++) {
            *rq += w[i] > 0.0 ? w[i] * p[i] / b->s[i] : 0.0;
        }
    }
    pt = ws->ll + (size_t)pf->j_tail * ws->cap;
    for (int i = 0; i < pf->n; i++) {
        *rt += w[i] > 0.0 ? w[i] * pt[i] / b->s[i] : 0.0;
    }
}

/* The counts take the event's responsibilities rt, rq (tail_posterior,
 * NAN: none); the new weight applies from the next event, after this
 * one's Kalman updates used the weight its likelihoods did. */
static void learn_tail(bw_pf_t *pf, double rt, double rq)
{
    if (!(rt >= 0.0 && rq >= 0.0 && rt + rq <= 1.0 + 1e-9)) {
        return;
    }
    pf->tail_w = pf->tail_keep * pf->tail_w + rt;
    pf->tail_q = pf->tail_keep * pf->tail_q + rq;
    tail_weights(pf);
}

/* Weight, Rao-Blackwellised regime posterior and propagation. */
static void filter(bw_pf_t *pf, bw_pf_ws_t *ws, const step_ctx_t *c,
                   bw_pf_out_t *out)
{
    const int n = pf->n;
    const batch_t b = batch_of(ws);
    double lse, anom = 0.0, shift = 0.0, abn = 0.0, mu, sd, mx = -INFINITY;
    double s = 0.0, rt = NAN, rq = NAN; /* the tail's responsibilities */
    /* per particle: child logsumexp, anomaly, shift; abnormal at 4n */
    double *L = ws->tmp;
    double *w = ws->tmp + 3 * (size_t)n; /* normalised weights */

    /* logw is normalised after every step; wlin caches exp(logw). */
    memcpy(w, pf->wlin, (size_t)n * sizeof(double));
    batch_predict(pf, c, &b);
    predictive(pf, &b, w, c->kt, &mu, &sd);
    pf->lvl_pred = 0.0;
    for (int i = 0; i < n; i++) {
        pf->lvl_pred += w[i] * b.a0[i];
    }
    batch_children(pf, c, ws, &b, L, L + n, L + 2 * n, L + 4 * n);
    for (int i = 0; i < n; i++) {
        pf->logw[i] += L[i];
        mx = pf->logw[i] > mx ? pf->logw[i] : mx;
    }
    if (!isfinite(mx)) { /* no particle's likelihood is finite (a numerical
                          * failure): they keep their prior weights */
        for (int i = 0; i < n; i++) {
            pf->logw[i] = log(w[i]);
            L[i] = 0.0;
        }
        mx = 0.0; /* normalised: every log weight is at most 0 */
    }
    for (int i = 0; i < n; i++) {
        w[i] = exp(pf->logw[i] - mx);
        s += w[i];
    }
    lse = mx + log(s);
    for (int i = 0; i < n; i++) {
        w[i] /= s;
        anom += w[i] * L[n + i];
        shift += w[i] * L[2 * n + i];
        abn += w[i] * L[4 * n + i];
        pf->logw[i] -= lse;
        pf->wlin[i] = w[i];
    }
    out->surprise = -lse;
    out->p_anomaly = fmin(fmax(anom, 0.0), 1.0);
    out->p_shift = fmin(fmax(shift, 0.0), 1.0);
    out->p_abnormal = fmin(fmax(abn, 0.0), 1.0);
    out->p_spike = fmax(out->p_anomaly - out->p_shift, 0.0);
    out->p_recur = recur_posterior(pf, ws, &b, w);
    if (pf->j_tail >= 0 && pf->events >= (uint64_t)pf->cfg->warmup) {
        tail_posterior(pf, ws, &b, w, &rt, &rq);
    }
    propagate(pf, ws, &b, c);
    learn_tail(pf, rt, rq);
    summarise(pf, c->y, mu, sd, out);
}

/*
 * The AR(1) coefficient of the observation noise: the lag-1 moment ratio
 * sum u_t u_{t-1} / sum u_{t-1}^2 of the residuals u_t = y_t - (predicted
 * level), over consecutive normal events, exponentially forgotten
 * (ar_half_life events), clamped to [0, AR_MAX] and 0 until AR_MIN pairs'
 * weight is in (the sums restart from the remembered values when a profile
 * starts to apply: ar_from_memory). A daily cycle not yet in the profile also
 * reads as correlated noise, which is what it is to the model until then.
 */
static void learn_ar(bw_pf_t *pf, double y, const bw_pf_out_t *out)
{
    double u = y - pf->lvl_pred, f;
    int ok = out->p_anomaly < 0.5;

    pf->yd_prev = y;
    if (!pf->cfg->ar_noise || pf->cfg->trend) {
        return;
    }
    f = pf->ar_keep;
    if (ok && pf->u_ok) {
        pf->ar_uu = f * pf->ar_uu + pf->u_prev * pf->u_prev;
        pf->ar_u1 = f * pf->ar_u1 + u * pf->u_prev;
        pf->ar_w = f * pf->ar_w + 1.0;
        pf->phi = pf->ar_w >= AR_MIN && pf->ar_uu > 0.0
                      ? fmin(fmax(pf->ar_u1 / pf->ar_uu, 0.0), AR_MAX)
                      : 0.0;
    }
    pf->u_prev = u;
    pf->u_ok = ok;
}

/* Every particle in an abnormal episode takes its abnormal level as its
 * baseline: the change is the new normal. Returns the filter's mean move
 * (all particles' weight); @p step is the change's size, the mean move of
 * the particles in the episode (0: none). */
static double adopt(bw_pf_t *pf, double *step)
{
    double moved = 0.0, w = 0.0;

    for (int i = 0; i < pf->n; i++) {
        if (pf->ab[i] != 0.0) {
            moved += pf->wlin[i] * (pf->ma[i] - pf->m0[i]);
            w += pf->wlin[i];
            pf->m0[i] = pf->ma[i];
            pf->c00[i] = pf->ca[i];
            /* the abnormal level has no covariance with the trend: the
             * baseline's, grown over the episode's predictions, made the
             * matrix indefinite (and the likelihoods NaN) */
            pf->c01[i] = 0.0;
            pf->ab[i] = 0.0;
        }
    }
    *step = w > 0.0 ? moved / w : 0.0;
    return moved;
}

void bw__pf_set_ar(bw_pf_t *pf, double phi)
{
    pf->phi = phi;
}

double bw__pf_tail(const bw_pf_t *pf)
{
    return pf->j_tail < 0 ? 0.0 : pf->child_p[pf->j_tail] / pf->p_norm;
}

const bw__memory_t *bw__pf_memory(const bw_pf_t *pf)
{
    return &pf->recent;
}

const bw_season_t *bw__pf_daily(const bw_pf_t *pf)
{
    return &pf->daily;
}

const bw_season_t *bw__pf_weekly(const bw_pf_t *pf)
{
    return &pf->weekly;
}

double bw__pf_ar(const bw_pf_t *pf)
{
    return pf->phi;
}

void bw__pf_shift(bw_pf_t *pf, double delta)
{
    if (pf == NULL) {
        return;
    }
    for (int i = 0; i < pf->n; i++) {
        pf->m0[i] += delta;
        pf->ma[i] += delta;
    }
    pf->level_last += delta;
    pf->yd_prev += delta;
}

/*
 * Values held back from the profiles, given to them now: those of the last
 * `events` events but the current one (learn_season takes it), oldest
 * first, read back from the memory of recent values at their own times
 * (bw__memory_age_ms), each with the profile's own component at its time
 * added back
 * (what bw__season_update is given). With memory_normal_only the memory
 * skips events and nothing is given.
 *  - HELD_ADOPTED: the profiles' baselines (each bin's latest value) learn
 *    only from normal values, so an abnormal episode left them where they
 *    were. Adopted, the change is the level from its start: its values
 *    become the latest values of their bins. Without this the next
 *    period's deviations would all be measured from a baseline of the old
 *    level. (The values of the episode's gaps are given too: each is one
 *    bin's latest value, 1/bins of the baseline, README.)
 *  - HELD_EXCURSION: a change before a profile applies that lasted
 *    adopt_after_ms is the new normal: its values teach the profiles that
 *    do not apply yet, with the weight of normal values (track_excursion).
 */
enum { HELD_ADOPTED, HELD_EXCURSION };
static void give_held(bw_pf_t *pf, int64_t t_ms, uint32_t events, int why)
{
    bw_season_t *const prof[2] = {&pf->daily, &pf->weekly};
    bw__visit_t late[2] = {BW__VISIT_NONE, BW__VISIT_NONE};
    int64_t age = t_ms - pf->t_first;
    double step = pf->interval > 0.0 ? pf->interval : 0.0;
    int n = events < (uint32_t)pf->recent.n ? (int)events : pf->recent.n;

    if (pf->cfg->memory_normal_only ||
        (!pf->cfg->daily.enabled && !pf->cfg->weekly.enabled)) {
        return;
    }
    for (int k = n - 1; k >= 1; k--) {
        int64_t t = pf->recent.t_push - bw__memory_age_ms(&pf->recent, k);
        double v = bw__memory_back(&pf->recent, k);
        for (int p = 0; p < 2; p++) {
            double x = v + bw__season_value(prof[p], t, age);
            if (why == HELD_ADOPTED) {
                bw__season_catch_up(prof[p], t, x);
            } else if (!bw__season_active(prof[p], age)) {
                bw__season_learn_late(prof[p], &late[p], t, x, 1.0, step);
            }
        }
    }
    for (int p = 0; p < 2; p++) {
        bw__season_late_done(prof[p], &late[p], step);
    }
}

/* A profile learns no shape for a period from an adopted episode's start
 * (learn_profile). */
static bool profile_held(const bw_pf_t *pf, const bw_season_t *s, int64_t t_ms)
{
    return pf->held_since >= 0 && t_ms - pf->held_since < s->period_ms &&
           bw__season_active(s, pf->held_since - pf->t_first - s->period_ms);
}

/*
 * An adopted change moves the level under a profile that applies and is
 * not held (learn_profile: in its first applied period it goes on
 * learning its bins at once). The bins learn deviations from the
 * baseline, the mean of their latest values; the episode's values catch
 * up only its own bins (give_held), so the baseline would lag the new
 * level by the share of the period the episode did not cover, and the
 * next visits of the other bins would learn that lag as the profile's
 * shape, on top of the level the filter has already moved: the demo's
 * lasting latency regression (+45%, adopted after 4 hours on the
 * profile's first day) then read 20% below `expected`, a drop, at once.
 * A held profile learns no shape for a period, while its latest values
 * catch up by themselves; one that does not apply yet predicts nothing.
 * The shift is the change's size (adopt's step): the profile learnt
 * almost none of the episode's values, whatever share of the particles
 * was in it.
 */
static void shift_learning(bw_pf_t *pf, bw_season_t *s, int64_t t_ms,
                           double step)
{
    if (bw__season_active(s, t_ms - pf->t_first) &&
        !profile_held(pf, s, t_ms)) {
        bw__season_shift_level(s, step);
    }
}

/*
 * The episode the series is in: it starts at the first event with
 * P(abnormal) >= 1/2 and lasts while that holds, or falls below for at most
 * EPISODE_GAP events in a row (a gap). One that has lasted adopt_after_ms
 * is adopted as the new normal (adopt): a configured horizon, since nothing
 * in the data tells a lasting incident from a permanent change before the
 * series returns. The horizon counts from the episode's first event,
 * through its gaps; adoption waits until EPISODE_GAP + 1 events in a row
 * since the last gap were abnormal, so it never moves the level to
 * particles that re-entered the episode an event ago. The gap: one
 * heavy-tailed value inside an episode (a spike away from the abnormal
 * level, or one that lands near the baseline) takes P(abnormal) below 1/2
 * for an event or two; ended there, the episode began again at the next
 * event with its adoption clock restarted, and was held abnormal for that
 * much longer than a lasting change should be. Returns the baseline's move
 * at an adoption (0 at any other event).
 */
#define EPISODE_GAP 3
static double episode(bw_pf_t *pf, int64_t t_ms, bw_pf_out_t *out)
{
    double moved = 0.0;

    if (out->p_abnormal < 0.5) {
        out->since_ms = -1;
        pf->abn_calm = 0;
        if (pf->abn_run > 0 && ++pf->abn_gap <= EPISODE_GAP) {
            /* its values are the episode's stretch */
            pf->abn_run += pf->abn_run < UINT32_MAX;
            return 0.0;
        }
        pf->abn_run = 0;
        pf->abn_gap = 0;
        pf->abn_since = -1;
        return 0.0;
    }
    pf->abn_gap = 0;
    pf->abn_calm += pf->abn_calm < UINT32_MAX;
    if (pf->abn_run == 0) {
        pf->abn_since = t_ms;
    }
    pf->abn_run += pf->abn_run < UINT32_MAX;
    out->since_ms = pf->abn_since;
    if (pf->cfg->adopt_after_ms > 0.0 && pf->abn_calm > EPISODE_GAP &&
        (double)(t_ms - pf->abn_since) >= pf->cfg->adopt_after_ms) {
        /* The block model's baseline moves with it: the change is not
         * reported again as a sustained one; so do the baselines of the
         * profiles that learn from it at once (shift_learning). */
        double step;
        moved = adopt(pf, &step);
        bw__pf_shift(pf->block.pf, moved);
        /* and the open block's inputs so far (the old baseline's, an
         * episode's values being taken out), as reframe_block does */
        if (pf->block.pf != NULL) {
            pf->block.sum += moved * pf->block.n;
            pf->block.raw_sum += moved * pf->block.n; /* NAN stays */
        }
        out->adopted = true;
        pf->held_since = pf->abn_since;
        shift_learning(pf, &pf->daily, t_ms, step);
        shift_learning(pf, &pf->weekly, t_ms, step);
        give_held(pf, t_ms, pf->abn_run, HELD_ADOPTED);
        pf->abn_run = 0;
        pf->abn_calm = 0;
        pf->abn_since = -1;
    }
    return moved;
}

/*
 * Before a profile applies the filter has no baseline to hold a change
 * against (changes are onset-only, episode_phase), yet the values of those
 * first periods are what the profile is first estimated from: a 75-minute
 * dip on day 2 would be predicted again on day 3 and the normal values
 * there read as a shift (the fleet: three quarters of its false-alarm rows
 * in runs of 5 or more). So the change is followed here:
 *  - an event flagged (p_anomaly >= 1/2, after warm-up) after EXC_CALM
 *    events in which the level settled (no flag, no step of episode_min
 *    noise sds; a level that just jumped, e.g. at a burst's first event, is
 *    no normal to measure from) starts an excursion from the level the
 *    filter had before it; the level at the next event is where it went;
 *  - it lasts while the level stays episode_min noise sds or more from the
 *    level it left and nearer the one it went to; a spike ends it within a
 *    few events (the level stays, or decays back);
 *  - its values teach a profile that does not apply yet nothing; if it
 *    came back they never do (an incident), if it lasted adopt_after_ms it
 *    is the new normal, as an adopted episode, and they are released to the
 *    profiles then (give_held).
 * Cost: a false excursion (a flag the daily cycle then carried away and
 * back) leaves its hours out of the first estimate, which the other
 * periods' visits fill. Nothing of this applies to the first period, whose
 * estimate is the mean of all its values (season.c).
 */
#define EXC_CALM 12 /* events of a settled level before an excursion counts */

static void track_excursion(bw_pf_t *pf, int64_t t_ms, double before,
                            const bw_pf_out_t *out)
{
    const bw_pf_cfg_t *cfg = pf->cfg;
    int64_t age = t_ms - pf->t_first;
    int young = (cfg->daily.enabled && !bw__season_active(&pf->daily, age)) ||
                (cfg->weekly.enabled && !bw__season_active(&pf->weekly, age));
    uint32_t calm = pf->calm;
    int moved = out->p_anomaly >= 0.5 ||
                fabs(out->level - before) >= cfg->episode_min * out->noise_sd;

    pf->calm = moved ? 0 : calm + (calm < UINT32_MAX);

    if (!young || cfg->p_episode <= 0.0) {
        pf->exc_since = -1;
        return;
    }
    if (pf->exc_since < 0) {
        /* pf->events counts the events before this one */
        if (out->p_anomaly >= 0.5 && calm >= EXC_CALM &&
            pf->events >= (uint64_t)cfg->warmup) {
            pf->exc_since = t_ms;
            pf->exc_level = before;
            pf->exc_far = NAN;
            pf->exc_events = 1;
        }
        return;
    }
    pf->exc_events += pf->exc_events < UINT32_MAX;
    if (isnan(pf->exc_far)) {
        pf->exc_far = out->level;
    }
    if (fabs(out->level - pf->exc_level) < cfg->episode_min * out->noise_sd ||
        fabs(out->level - pf->exc_level) < fabs(out->level - pf->exc_far)) {
        pf->exc_since = -1; /* it came back: its values stay out */
    } else if (cfg->adopt_after_ms > 0.0 &&
               (double)(t_ms - pf->exc_since) >= cfg->adopt_after_ms) {
        give_held(pf, t_ms, pf->exc_events, HELD_EXCURSION);
        pf->exc_since = -1;
    }
}

/* The recurring spikes' view of value @p y: the level and noise sd before
 * it (as they stand until the step ends) and the familiarity radius. */
static bw__phase_at_t phase_at(const bw_pf_t *pf, double y)
{
    return (bw__phase_at_t){y, pf->level_last, pf->sd_last,
                            pf->cfg->recur_bandwidth, pf->cfg->recur_relative};
}

/*
 * The spike regime's prior for this event from the recurring spikes at its
 * time of day (phase.c); the normal children give up what it gains.
 * Returns the share of a spike that is usual here (0: none).
 */
static double phase_prior(const bw_pf_t *pf, int64_t t_ms, step_ctx_t *c)
{
    const bw_pf_cfg_t *cfg = pf->cfg;
    bw__phase_at_t at = phase_at(pf, c->y);
    double anomalous, pr;

    c->spike_mult = c->norm_mult = 1.0;
    if (pf->phase.bin == NULL) {
        return 0.0;
    }
    pr = bw__phase_spike_prior(&pf->phase, t_ms, pf->interval, cfg->p_spike,
                               &at, &anomalous);
    /* the spike children gain only what the normal ones can give (a
     * guard from review: the config allows p_norm near 0, and a gain past
     * it would leave them a negative prior; not reproduced in a test) */
    pr = fmin(pr, cfg->p_spike + 0.99 * pf->p_norm);
    c->spike_mult = pr / cfg->p_spike;
    c->norm_mult = (pf->p_norm - (pr - cfg->p_spike)) / pf->p_norm;
    return 1.0 - anomalous;
}

/* A spike usual at this time of day (P = usual) is reported as normal; the
 * model learnt from the event as from any spike (the profile, the noise and
 * the block model leave it out). */
static void report_usual(bw_pf_out_t *out, double usual)
{
    if (!(usual > 0.0)) {
        return;
    }
    out->p_anomaly = fmax(out->p_anomaly - usual, 0.0);
    out->p_spike = fmax(out->p_spike - usual, 0.0);
    if (out->p_anomaly < 0.5 &&
        (out->direction == BW_DIR_SPIKE || out->direction == BW_DIR_DIP)) {
        out->direction = BW_DIR_NONE;
    }
}

/*
 * Only the normal regime teaches the seasonal profile: not anomalies, not
 * jumps between familiar states (bursts would print into it). Each value
 * weighs by its precision, 1 / the local noise factor: a bin's mean is a
 * weighted least-squares estimate, and a busy state's values are that much
 * noisier. A profile that does not apply yet predicts nothing, so no value
 * can be abnormal with respect to it: once the daily profile applies, an
 * abnormal episode (a weekly swing the daily baseline cannot follow)
 * teaches a weekly profile that does not apply yet too, else the bins of
 * the swing would never be learned. Before the daily profile applies an
 * episode teaches neither: it is one at a level the first day did not
 * visit (novel_wanted), and the next days would read that level as the
 * phase's normal.
 *
 * Adoption makes a lasting change the new normal *level*; whether the daily
 * (weekly) shape changed too can only be seen once the change has been
 * through every phase. So a profile learns nothing from the values of its
 * first period counted from the adopted episode's start (held_since): a
 * day without its usual pattern, adopted after adopt_after_ms, would
 * otherwise print into its bins and make the next day's normal pattern
 * read as a shift. A new pattern is learned from its second period on.
 * Only a profile that had applied for a full period when the episode began
 * holds: in its first applied period a profile is still being checked
 * against its own predictions, and an episode there is as likely its own
 * error, which it must go on learning to correct (test_quality: holding
 * there doubled the false alarms of the following day).
 */
static void learn_profile(const bw_pf_t *pf, bw_season_t *s, int64_t t_ms,
                          double y, double normal, double warm, double kt)
{
    double base = pf->interval > 0.0 ? pf->interval : 1.0, gain = normal;

    bw__season_tick(s, pf->t_last, t_ms);
    if (!bw__season_active(s, t_ms - pf->t_first)) {
        gain = pf->exc_since >= 0 ? 0.0 : warm;
    } else if (profile_held(pf, s, t_ms)) {
        /* level only: nor does it confirm or reject a bin */
        bw__season_update(s, t_ms, y, 0.0, normal, normal * kt, base);
        return;
    } else { /* the value was judged against the profile's prediction */
        bw__season_judged(s, t_ms, normal * kt);
    }
    bw__season_update(s, t_ms, y, gain, gain, gain * kt, base);
}

/* An unconfirmed bin's first check against the value before it is scored
 * (bw__season_precheck): the value less the filter's last level and the
 * other profile. Not made:
 *  - for a profile not yet in the filter's frame (the event it starts to
 *    apply at): the level still holds that profile's deviation, and
 *    reframe moves it by the very value y loses, so both predictions score
 *    the same; the bin is judged after scoring, as before;
 *  - in an abnormal episode (its values are not the baseline's, and the
 *    event that adopts one holds the profile, learn_profile): an episode
 *    value is read as abnormal and rejects the bin after scoring anyway;
 *  - for a held profile, which neither confirms nor rejects.
 * The daily check reads the weekly profile's value before the weekly's own
 * check (both unconfirmed at once needs a daily bin unvisited into the
 * second week: the weekly's kept value is then the daily's reference). */
static void precheck_profiles(bw_pf_t *pf, int64_t t_ms, int64_t age,
                              double y)
{
    double r = y - pf->level_last;

    if (pf->abn_since >= 0) {
        return;
    }
    if ((pf->framed & 1) && !profile_held(pf, &pf->daily, t_ms)) {
        bw__season_precheck(&pf->daily, t_ms, age,
                            r - bw__season_value(&pf->weekly, t_ms, age));
    }
    if ((pf->framed & 2) && !profile_held(pf, &pf->weekly, t_ms)) {
        bw__season_precheck(&pf->weekly, t_ms, age,
                            r - bw__season_value(&pf->daily, t_ms, age));
    }
}

static void learn_season(bw_pf_t *pf, int64_t t_ms, double y, double sd,
                         double sw, const bw_pf_out_t *out)
{
    double normal, warm;

    if (!pf->cfg->daily.enabled && !pf->cfg->weekly.enabled) {
        return;
    }
    normal = fmax(1.0 - out->p_anomaly - out->p_recur, 0.0) / out->noise_factor;
    warm = fmax(1.0 - out->p_anomaly + out->p_abnormal - out->p_recur, 0.0) /
           out->noise_factor;
    if (!episodes_on(pf, t_ms - pf->t_first)) {
        warm = normal; /* an episode there: an unvisited level (above) */
    }
    learn_profile(pf, &pf->daily, t_ms, y - sw, normal, warm,
                  out->noise_factor);
    learn_profile(pf, &pf->weekly, t_ms, y - sd, normal, warm,
                  out->noise_factor);
}

/*
 * Values recorded on a grid of step q (integer counts, rounded gauges)
 * carry at least rounding noise (Sheppard's correction: variance q^2/12);
 * without a floor a series that sits on one value learns sigma -> 0 and
 * then calls every one-step change a spike. The floor is
 * resolution_floor * q, with q the smallest positive step seen so far (for
 * continuous data it shrinks quickly to nothing). The steps are also
 * summed here until the prior's cap (cap_prior).
 */
static double noise_floor(bw_pf_t *pf, double y)
{
    double step = fabs(y - pf->y_prev);

    if (pf->early_ss >= 0.0) { /* until the prior is capped */
        pf->early_ss += step * step;
    }
    if (step > 0.0 && step < pf->quantum) {
        pf->quantum = step;
    }
    pf->y_prev = y;
    if (!isfinite(pf->quantum)) {
        return fmax(pf->cfg->scale_floor, SD_MIN);
    }
    return fmax(fmax(pf->cfg->scale_floor, SD_MIN),
                pf->cfg->resolution_floor * pf->quantum);
}

/* Level mean, noise sd and ESS from the normalised weights w[], one pass. */
static void summarise_posterior(const bw_pf_t *pf, const double *w,
                                bw_pf_out_t *out)
{
    double m = 0.0, d = 0.0, s2 = 0.0;

    for (int i = 0; i < pf->n; i++) {
        m += w[i] * pf->m0[i];
        d += w[i] * pf->d[i];
        s2 += w[i] * w[i];
    }
    out->level = m;
    out->noise_sd = pf->cfg->learn_scale ? sqrt(d / pf->dof) : sqrt(pf->s0sq);
    out->ess = s2 > 0.0 ? 1.0 / s2 : 0.0;
}

/* The noise prior's offset-free cap, at the end of event PRIOR_EVENTS
 * (or of the first event after it with a step, for a series that did not
 * move until then). The prior's sd, scale_prior times the first value, is
 * cut to scale_prior_spread times the spread of the steps so far (their
 * rms over sqrt 2, the sd of i.i.d. noise; at least the noise floor, @p fl
 * being dof times its square) when that is smaller. Its share of each
 * particle's statistic, scale_prior_dof s0^2 discounted once an event
 * since the first, is replaced by the cap's. The result is never put
 * below the capped prior's own share: where the statistic cannot resolve
 * the data's share next to the prior's (a level some 1e9 times its
 * noise) what the subtraction leaves is rounding. A particle that entered
 * an abnormal episode had its statistic, the prior's share included,
 * widened at the entry (filter), and keeps that part. A filter restored
 * from a record that lacks the steps (NaN) keeps its prior. */
static void cap_prior(bw_pf_t *pf, double fl)
{
    const bw_pf_cfg_t *cfg = pf->cfg;
    double steps = (double)pf->events; /* the events before this one */
    double spread, cap2, keep, share, least;

    spread = fmax(pf->early_ss / (2.0 * steps), fl / pf->dof);
    cap2 = cfg->scale_prior_spread * cfg->scale_prior_spread * spread;
    pf->early_ss = PRIOR_CAPPED;
    if (cfg->scale_prior_spread <= 0.0 || cap2 >= pf->s0sq) {
        return;
    }
    keep = pow(cfg->scale_discount, steps);
    share = cfg->scale_prior_dof * (pf->s0sq - cap2) * keep;
    least = fmax(fl, cfg->scale_prior_dof * cap2 * keep);
    for (int i = 0; i < pf->n; i++) {
        pf->d[i] = fmax(pf->d[i] - share, least);
    }
    pf->s0sq = cap2;
}

bw_err_t bw_pf_step(bw_pf_t *pf, bw_pf_ws_t *ws, int64_t t_ms, double y,
                    bw_pf_out_t *out)
{
    const bw_pf_cfg_t *cfg = pf->cfg;
    step_ctx_t c;
    double sd, sw, usual, spike, early, cleaned, raw, adopted_by;
    bw__phase_at_t at;
    int64_t age;
    int was, novel, want_novel;

    memset(out, 0, sizeof(*out));
    out->since_ms = -1;
    out->provisional = out->provisional_last = NAN;
    if (!isfinite(y) || fabs(y) > BW_MODEL_MAX_ABS) {
        return BW_ERR_RANGE;
    }
    if (pf->events == 0) {
        first_event(pf, t_ms, y, out);
        bw__block_add(&pf->block, ws, t_ms, y, y, true, out);
        return BW_OK;
    }
    if (t_ms < pf->t_last) {
        pf->late++;
        return BW_ERR_LATE;
    }
    age = t_ms - pf->t_first;
    precheck_profiles(pf, t_ms, age, y);
    sd = bw__season_value(&pf->daily, t_ms, age);
    sw = bw__season_value(&pf->weekly, t_ms, age);
    was = pf->framed;
    early = (was & 1) ? NAN : bw__season_early(&pf->daily, t_ms);
    reframe(pf, age, sd, sw);
    if (!(pf->framed & 1)) {
        out->provisional = early;
    } else if (was == 0) { /* the values' frame was the provisional one */
        out->provisional_last = early;
    }
    c.dt = time_step(pf, t_ms);
    c.y = y - sd - sw;
    c.q = cfg->level_ratio * c.dt;
    c.qt = cfg->trend_ratio * c.dt;
    if (cfg->learn_scale) {
        pf->dof *= cfg->scale_discount;
        for (int i = 0; i < pf->n; i++) {
            pf->d[i] *= cfg->scale_discount;
        }
        if (pf->dof != pf->k_dof) { /* dof settles at 1/(1 - discount) */
            pf->k_dof = pf->dof;
            pf->k_val = bw__lgamma(0.5 * (pf->dof + 1.0)) - bw__lgamma(0.5 * pf->dof) -
                        0.5 * log(M_PI);
        }
        c.kdof = pf->k_val;
    }
    c.phi = pf->phi > 0.0 && c.dt > 0.0 ? pow(pf->phi, c.dt) : 0.0;
    c.y_prev = pf->yd_prev;
    want_novel = novel_wanted(pf, age);
    memory_terms(pf, c.y, t_ms, want_novel,
                 phase_wanted(pf, age, want_novel), &c.lrecur, &c.kt,
                 &c.pstay, &novel, &c.hold);
    episode_phase(pf, age, novel);
    usual = phase_prior(pf, t_ms, &c);

    filter(pf, ws, &c, out);
    spike = out->p_spike;
    at = phase_at(pf, c.y);
    bw__phase_learn(&pf->phase, t_ms, &at, out->p_anomaly, pf->interval);
    learn_ar(pf, c.y, out);
    out->noise_factor = c.kt;
    /* Every value goes into the memory of recent values by default; an
     * ongoing episode's own values are left out where familiarity is read
     * (memory_terms), so an incident does not make its own level
     * familiar. memory_normal_only keeps anomalous values (p_anomaly >=
     * 1/2) out altogether (README: Where the precision goes). */
    if (!pf->cfg->memory_normal_only || out->p_anomaly < 0.5) {
        bw__memory_push(&pf->recent, c.y, t_ms, pf->level_last);
    }
    adopted_by = episode(pf, t_ms, out);
    if (cfg->learn_scale) {
        double fl;
        pf->dof += 1.0;
        fl = noise_floor(pf, y);
        fl = pf->dof * fl * fl;
        for (int i = 0; i < pf->n; i++) {
            pf->d[i] = pf->d[i] > fl ? pf->d[i] : fl; /* fmax, inline */
        }
        /* pf->events counts the events before this one: its steps */
        if (pf->early_ss > 0.0 && pf->events >= PRIOR_EVENTS - 1) {
            cap_prior(pf, fl);
        }
    }
    out->seasonal = sd + sw;
    out->frame = pf->framed;
    out->expected += sd + sw;
    out->lower += sd + sw;
    out->upper += sd + sw;
    summarise_posterior(pf, ws->tmp + 3 * (size_t)pf->n, out);
    track_excursion(pf, t_ms, pf->level_last, out);
    pf->sd_last = out->noise_sd;
    pf->level_last = out->level;
    learn_season(pf, t_ms, y, sd, sw, out);
    pf->t_last = t_ms;
    pf->events++;
    out->warmup = pf->events <= (uint64_t)cfg->warmup;
    /* With abnormal episodes configured but not yet applying (the first
     * days), the filter reports a change to a visited level only at its
     * onset and then follows it: the block model is then the one that
     * sees it last. An episode at an unvisited level (novel_wanted) holds
     * its change as later. */
    /* in the adopted baseline's frame, as the open block's earlier inputs */
    cleaned = c.y - out->p_anomaly * (y - out->expected) + adopted_by;
    raw = cleaned + out->seasonal; /* moved at adoption, not at reframes */
    report_usual(out, spike * usual); /* the block sees what is reported */
    bw__block_add(&pf->block, ws, t_ms, cleaned, raw,
                  pf->j_enter < 0 || episodes_on(pf, age) ||
                      pf->abn_since >= 0,
                  out);
    return BW_OK;
}

double bw_pf_ess(const bw_pf_t *pf)
{
    return bw_ess(pf->logw, pf->n);
}

void bw_pf_resample(bw_pf_t *pf, bw_pf_ws_t *ws)
{
    /* logw's slot carries vis: every array but the weights is copied */
    double *src[N_ARRAYS] = {pf->m0, pf->m1, pf->c00, pf->c01, pf->c11,
                             pf->d,  pf->ab, pf->ma,  pf->ca,  pf->vis};
    int n = pf->n;

    bw_resample_systematic(pf->logw, n, bw_rng_uniform(&pf->rng), ws->idx);
    for (int a = 0; a < N_ARRAYS; a++) {
        double *t = ws->tmp + (size_t)a * n;
        for (int i = 0; i < n; i++) {
            t[i] = src[a][ws->idx[i]];
        }
        memcpy(src[a], t, (size_t)n * sizeof(double));
    }
    for (int i = 0; i < n; i++) {
        pf->logw[i] = -log((double)n);
        pf->wlin[i] = 1.0 / n;
    }
}

bw_err_t bw_pf_update(bw_pf_t *pf, bw_pf_ws_t *ws, int64_t t_ms, double y,
                      bw_pf_out_t *out)
{
    bw_err_t err = bw_pf_step(pf, ws, t_ms, y, out);

    if (err == BW_OK && pf->events > 1 &&
        out->ess < pf->cfg->ess_threshold * pf->n) {
        bw_pf_resample(pf, ws);
        out->resampled = true;
    }
    return err;
}

void bw_pf_level(const bw_pf_t *pf, double *mean, double *var)
{
    double lse = bw_logsumexp(pf->logw, pf->n), m = 0.0, m2 = 0.0, v = 0.0;

    for (int i = 0; i < pf->n; i++) { /* shifted by m0[0]: predictive() */
        double w = exp(pf->logw[i] - lse);
        double s2 = pf->cfg->learn_scale ? pf->d[i] / pf->dof : pf->s0sq;
        double d = pf->m0[i] - pf->m0[0];
        m += w * d;
        m2 += w * d * d;
        v += w * pf->c00[i] * s2;
    }
    *mean = pf->m0[0] + m;
    *var = v + fmax(m2 - m * m, 0.0);
}

/* ---- state ---- */

bw_err_t bw_pf_save(const bw_pf_t *pf, bw_wbuf_t *w)
{
    bw_wbuf_u32(w, PF_STATE_TAG);
    bw_wbuf_u32(w, (uint32_t)pf->n);
    bw_wbuf_u32(w, (uint32_t)pf->k);
    bw_wbuf_u8(
        w, (uint8_t)(pf->cfg->daily.enabled | pf->cfg->weekly.enabled << 1));
    bw_wbuf_u32(w, (uint32_t)pf->cfg->daily.bins);
    bw_wbuf_u32(w, (uint32_t)pf->cfg->weekly.bins);
    bw_wbuf_f64s(w, pf->mem, (size_t)(N_ARRAYS + 1) * pf->n);
    bw_wbuf_f64s(w, pf->vis, (size_t)pf->n);
    bw_wbuf_f64(w, pf->dof);
    bw_wbuf_f64(w, pf->s0sq);
    bw_wbuf_i64(w, pf->t_first);
    bw_wbuf_i64(w, pf->t_last);
    bw_wbuf_f64(w, pf->interval);
    bw_wbuf_f64(w, pf->quantum);
    bw_wbuf_f64(w, pf->y_prev);
    bw_wbuf_f64(w, pf->sd_last);
    bw_wbuf_f64(w, pf->level_last);
    bw_wbuf_i64(w, pf->abn_since);
    bw_wbuf_u32(w, pf->abn_run);
    bw_wbuf_i64(w, pf->held_since);
    bw_wbuf_i64(w, pf->exc_since);
    bw_wbuf_f64(w, pf->exc_level);
    bw_wbuf_f64(w, pf->exc_far);
    bw_wbuf_u32(w, pf->calm);
    bw_wbuf_u32(w, pf->exc_events);
    bw_wbuf_f64(w, pf->phi);
    bw_wbuf_f64(w, pf->ar_uu);
    bw_wbuf_f64(w, pf->ar_u1);
    bw_wbuf_f64(w, pf->ar_w);
    bw_wbuf_f64(w, pf->u_prev);
    bw_wbuf_f64(w, pf->yd_prev);
    bw_wbuf_u8(w, (uint8_t)pf->u_ok);
    bw_wbuf_u8(w, (uint8_t)pf->framed);
    bw__memory_save(&pf->recent, w);
    bw_wbuf_u64(w, pf->events);
    bw_wbuf_u64(w, pf->late);
    for (int i = 0; i < 4; i++) {
        bw_wbuf_u64(w, pf->rng.s[i]);
    }
    bw__season_save(&pf->daily, w);
    bw__season_save(&pf->weekly, w);
    bw__block_save(&pf->block, w);
    bw__phase_save(&pf->phase, w);
    bw_wbuf_u32(w, pf->abn_gap);
    bw_wbuf_u32(w, pf->abn_calm);
    bw_wbuf_f64(w, pf->tail_w);
    bw_wbuf_f64(w, pf->tail_q);
    bw__memory_save_times(&pf->recent, w);
    bw_wbuf_f64(w, pf->early_ss);
    bw__memory_save_origin(&pf->recent, w);
    bw__block_save_raw(&pf->block, w); /* PF16 */
    return w->err;
}

/* The particles as loaded could have come from this filter: finite levels
 * and variances, a positive noise statistic (learn_scale), 0/1 episode
 * flags, log weights that are not NaN or +inf (-inf is a weight of 0, which
 * a forced proposal can give) and their linear weights in [0, 1]. */
static int particles_valid(const bw_pf_t *pf)
{
    for (int i = 0; i < pf->n; i++) {
        double fin = pf->m0[i] + pf->m1[i] + pf->c00[i] + pf->c01[i] +
                     pf->c11[i] + pf->ma[i] + pf->ca[i] + pf->d[i];
        if (!isfinite(fin) || !(pf->ab[i] == 0.0 || pf->ab[i] == 1.0) ||
            isnan(pf->logw[i]) || pf->logw[i] == INFINITY ||
            !(pf->wlin[i] >= 0.0 && pf->wlin[i] <= 1.0) ||
            (pf->cfg->learn_scale && !(pf->d[i] > 0.0))) {
            return 0;
        }
    }
    return 1;
}

/* An episode's, a hold's or an excursion's start as loaded: none (-1) or
 * an event time of the filter's own span (one after its last event held
 * adoption back by that much); a filter that has seen no event holds its
 * zeroed start. */
static int own_time(const bw_pf_t *pf, int64_t t)
{
    return pf->events == 0 || t == -1 ||
           (t >= pf->t_first && t <= pf->t_last);
}

bw_err_t bw_pf_load(bw_pf_t *pf, bw_rbuf_t *r)
{
    uint8_t seas;
    uint32_t tag = bw_rbuf_u32(r), k;
    int v16 = tag == PF_STATE_TAG;                            /* PF16 on */
    int v15 = v16 || tag == PF_STATE_TAG_15;                  /* PF15 on */
    int v14 = v15 || tag == PF_STATE_TAG_14;                  /* PF14 on */
    int v13 = v14 || tag == PF_STATE_TAG_13;                  /* PF13 on */
    int v12 = v13 || tag == PF_STATE_TAG_12;                  /* PF12 on */
    int v11 = v12 || tag == PF_STATE_TAG_11;                  /* PF11 on */
    int v10 = v11 || tag == PF_STATE_TAG_10;                  /* PF10 on */
    int v09 = v10 || tag == PF_STATE_TAG_09;                  /* PF09 on */

    if ((!v09 && tag != PF_STATE_TAG_08 && tag != PF_STATE_TAG_07 &&
         tag != PF_STATE_TAG_06 && tag != PF_STATE_TAG_05 &&
         tag != PF_STATE_TAG_04) ||
        bw_rbuf_u32(r) != (uint32_t)pf->n) {
        return BW_ERR_CORRUPT;
    }
    /* before PF11 no filter had the tail node: it starts from its prior */
    k = bw_rbuf_u32(r);
    if (k != (uint32_t)pf->k &&
        (v11 || pf->j_tail < 0 || k != (uint32_t)pf->k - 1)) {
        return BW_ERR_CORRUPT;
    }
    seas = bw_rbuf_u8(r);
    if (seas != (pf->cfg->daily.enabled | pf->cfg->weekly.enabled << 1) ||
        bw_rbuf_u32(r) != (uint32_t)pf->cfg->daily.bins ||
        bw_rbuf_u32(r) != (uint32_t)pf->cfg->weekly.bins) {
        return BW_ERR_CORRUPT;
    }
    bw_rbuf_f64s(r, pf->mem, (size_t)(N_ARRAYS + 1) * pf->n);
    memset(pf->vis, 0, (size_t)pf->n * sizeof(double));
    if (v09 || tag == PF_STATE_TAG_08 || tag == PF_STATE_TAG_07) {
        bw_rbuf_f64s(r, pf->vis, (size_t)pf->n);
        for (int i = 0; i < pf->n; i++) {
            if (!(pf->vis[i] >= 0.0 && pf->vis[i] <= pf->cfg->recur_visit)) {
                r->err = BW_ERR_CORRUPT;
            }
        }
    }
    pf->dof = bw_rbuf_finite(r);
    pf->s0sq = bw_rbuf_finite(r);
    pf->t_first = bw_rbuf_time(r, 0);
    pf->t_last = bw_rbuf_time(r, 0);
    pf->interval = bw_rbuf_finite(r);
    pf->quantum = bw_rbuf_f64(r);
    pf->y_prev = bw_rbuf_finite(r);
    pf->sd_last = bw_rbuf_finite(r);
    pf->level_last = bw_rbuf_finite(r);
    pf->abn_since = bw_rbuf_time(r, -1);
    pf->abn_run = bw_rbuf_u32(r);
    pf->abn_gap = 0;
    pf->abn_calm = pf->abn_run; /* PF09: no gap, so calm since the start */
    pf->held_since = pf->exc_since = -1;
    pf->exc_level = 0.0;
    pf->exc_far = NAN;
    pf->calm = pf->exc_events = 0;
    if (v09 || tag == PF_STATE_TAG_08 || tag == PF_STATE_TAG_07 ||
        tag == PF_STATE_TAG_06) {
        pf->held_since = bw_rbuf_time(r, -1);
        pf->exc_since = bw_rbuf_time(r, -1);
        pf->exc_level = bw_rbuf_finite(r);
        pf->exc_far = bw_rbuf_f64(r);
        pf->calm = bw_rbuf_u32(r);
        pf->exc_events = bw_rbuf_u32(r);
    }
    pf->phi = bw_rbuf_finite(r);
    pf->ar_uu = bw_rbuf_finite(r);
    pf->ar_u1 = bw_rbuf_finite(r);
    pf->ar_w = bw_rbuf_finite(r);
    pf->u_prev = bw_rbuf_finite(r);
    pf->yd_prev = bw_rbuf_finite(r);
    pf->u_ok = bw_rbuf_u8(r) != 0;
    pf->framed = tag != PF_STATE_TAG_04 ? (int)bw_rbuf_u8(r) : -1;
    if (pf->framed > 3) {
        r->err = BW_ERR_CORRUPT;
    }
    if (!(pf->phi >= 0.0 && pf->phi <= AR_MAX) || pf->ar_uu < 0.0 ||
        pf->ar_w < 0.0 || pf->t_first > pf->t_last) {
        r->err = BW_ERR_CORRUPT;
    }
    bw__memory_load(&pf->recent, r);
    if (!(pf->quantum > 0.0)) {
        r->err = BW_ERR_CORRUPT;
    }
    pf->events = bw_rbuf_u64(r);
    pf->late = bw_rbuf_u64(r);
    /* a filter that has seen no event holds its zeroed start */
    if (pf->events > 0 &&
        (!(pf->dof > 0.0) || !(pf->s0sq > 0.0) || !particles_valid(pf) ||
         (pf->abn_run > 0) != (pf->abn_since >= 0))) {
        r->err = BW_ERR_CORRUPT;
    }
    if (!own_time(pf, pf->abn_since) || !own_time(pf, pf->held_since) ||
        !own_time(pf, pf->exc_since)) {
        r->err = BW_ERR_CORRUPT;
    }
    for (int i = 0; i < 4; i++) {
        pf->rng.s[i] = bw_rbuf_u64(r);
    }
    if ((pf->rng.s[0] | pf->rng.s[1] | pf->rng.s[2] | pf->rng.s[3]) == 0) {
        r->err = BW_ERR_CORRUPT; /* xoshiro's one fixed point: 0 for ever */
    }
    bw__season_load(&pf->daily, r, v09);
    bw__season_load(&pf->weekly, r, v09);
    if (!v13) { /* before PF13 the sums counted unconfirmed */
        bw__season_recentre(&pf->daily);
        bw__season_recentre(&pf->weekly);
    }
    bw__block_load(&pf->block, r);
    if (v09 || tag == PF_STATE_TAG_08) { /* PF07: no phase */
        bw__phase_load(&pf->phase, r);
    }
    if (v10) { /* PF09: no gap in the episode */
        pf->abn_gap = bw_rbuf_u32_in(r, 0, pf->abn_run > 0 ? EPISODE_GAP : 0);
        pf->abn_calm = bw_rbuf_u32_in(r, 0, pf->abn_gap > 0 ? 0 : pf->abn_run);
    }
    pf->tail_w = pf->tail_q = 0.0;
    if (v11) {
        pf->tail_w = bw_rbuf_finite(r);
        pf->tail_q = bw_rbuf_finite(r);
        /* the counts are discounted sums of responsibilities of at most 1
         * an event: at most 1 / (1 - keep) together, none without the node
         * or before the warm-up's end */
        if (!(pf->tail_w >= 0.0 && pf->tail_q >= 0.0) ||
            pf->tail_w + pf->tail_q > 1.0 / (1.0 - pf->tail_keep) + 1.0 ||
            ((pf->j_tail < 0 || pf->events <= (uint64_t)pf->cfg->warmup) &&
             pf->tail_w + pf->tail_q != 0.0)) {
            r->err = BW_ERR_CORRUPT;
        }
    }
    if (v13) { /* before PF13 no times: no gap known */
        bw__memory_load_times(&pf->recent, r);
    } else {
        bw__memory_assume_times(&pf->recent, pf->t_last, pf->interval);
    }
    /* before PF14 the first steps are unknown (the prior is not capped)
     * and the memory held its values as they are (origin 0) */
    pf->early_ss = v14 ? bw_rbuf_f64(r) : NAN;
    if (v14) {
        bw__memory_load_origin(&pf->recent, r);
    }
    if (!(pf->early_ss >= 0.0 && isfinite(pf->early_ss)) &&
        !isnan(pf->early_ss) && pf->early_ss != PRIOR_CAPPED) {
        r->err = BW_ERR_CORRUPT;
    }
    bw__block_load_raw(&pf->block, r, v16);
    if (!v15 && (v09 || tag == PF_STATE_TAG_08)) {
        /* PF08-PF14 held the recurring spikes' values (PF07: none) */
        bw__phase_values_to_excursions(
            &pf->phase, pf->level_last,
            pf->cfg->recur_bandwidth * pf->sd_last);
    }
    if (r->err != BW_OK) {
        pf->tail_w = pf->tail_q = 0.0;
    }
    tail_weights(pf);
    if (pf->framed < 0) { /* PF04 moved the frame when a profile was due */
        int64_t age = pf->t_last - pf->t_first;
        pf->framed = bw__season_active(&pf->daily, age) |
                     bw__season_active(&pf->weekly, age) << 1;
    }
    return r->err != BW_OK ? BW_ERR_CORRUPT : BW_OK;
}
