/*
 * Every configuration key of bayeswatch: type, range, default and meaning.
 * This table is the single source of truth: defaults, validation messages,
 * dump-config and the reference file config/bayeswatch.yaml all come from it.
 */
#include <math.h>
#include <stddef.h>

#include "bayeswatch/config.h"
#include "keys.h"

#define K_NUM(type_, st, fld, lo, hi, dflt, dc)                                \
    {                                                                          \
        .name = #fld, .type = (type_), .off = offsetof(st, fld), .min = (lo),  \
        .max = (hi), .def = (dflt), .doc = (dc)                                \
    }
#define K_INT(st, fld, lo, hi, d, dc) K_NUM(BW_KT_INT, st, fld, lo, hi, d, dc)
#define K_I64(st, fld, lo, hi, d, dc) K_NUM(BW_KT_I64, st, fld, lo, hi, d, dc)
#define K_DBL(st, fld, lo, hi, d, dc)                                          \
    K_NUM(BW_KT_DOUBLE, st, fld, lo, hi, d, dc)
/* a neutral double (bw_key_t.neutral) */
#define K_DBL_NEUTRAL(st, fld, lo, hi, dflt, dc)                               \
    {                                                                          \
        .name = #fld, .type = BW_KT_DOUBLE, .off = offsetof(st, fld),          \
        .min = (lo), .max = (hi), .def = (dflt), .neutral = true, .doc = (dc)  \
    }
#define K_BOOL(st, fld, d, dc)                                                 \
    {                                                                          \
        .name = #fld, .type = BW_KT_BOOL, .off = offsetof(st, fld),            \
        .def = (d), .doc = (dc)                                                \
    }
#define K_ENUM(st, fld, e, d, dc)                                              \
    {                                                                          \
        .name = #fld, .type = BW_KT_ENUM, .off = offsetof(st, fld),            \
        .enums = (e), .def = (d), .doc = (dc)                                  \
    }
#define K_STR(st, fld, d, req, dc)                                             \
    {                                                                          \
        .name = #fld, .type = BW_KT_STRING, .off = offsetof(st, fld),          \
        .size = sizeof(((st *)0)->fld), .def = (d), .required = (req),         \
        .doc = (dc)                                                            \
    }
/* A string that may be omitted (default) but not set empty. */
#define K_STRNE(st, fld, d, dc)                                                \
    {                                                                          \
        .name = #fld, .type = BW_KT_STRING, .off = offsetof(st, fld),          \
        .size = sizeof(((st *)0)->fld), .def = (d), .min = 1, .doc = (dc)      \
    }
#define K_SEC(st, fld, tbl, dc)                                                \
    {                                                                          \
        .name = #fld, .type = BW_KT_SECTION, .off = offsetof(st, fld),         \
        .sub = (tbl), .doc = (dc)                                              \
    }
#define K_LIST(st, fld, cnt, tbl, dc)                                          \
    {                                                                          \
        .name = #fld, .type = BW_KT_LIST, .off = offsetof(st, fld),            \
        .sub = (tbl), .size = sizeof(((st *)0)->fld[0]),                       \
        .count_off = offsetof(st, cnt),                                        \
        .max_items =                                                           \
            (int)(sizeof(((st *)0)->fld) / sizeof(((st *)0)->fld[0])),         \
        .doc = (dc)                                                            \
    }
#define K_STRLIST(st, fld, cnt, d, dc)                                         \
    {                                                                          \
        .name = #fld, .type = BW_KT_STRLIST, .off = offsetof(st, fld),         \
        .size = sizeof(((st *)0)->fld[0]), .count_off = offsetof(st, cnt),     \
        .max_items =                                                           \
            (int)(sizeof(((st *)0)->fld) / sizeof(((st *)0)->fld[0])),         \
        .def = (d), .doc = (dc)                                                \
    }
#define K_MAP(st, fld, dc)                                                     \
    {                                                                          \
        .name = #fld, .type = BW_KT_MAP, .off = offsetof(st, fld), .doc = (dc) \
    }
#define K_END                                                                  \
    {                                                                          \
        .name = NULL                                                           \
    }

static const char *const transform_enum[] = {"none", "log", "log1p", NULL};
static const char *const model_enum[] = {"series", "pooled_count",
                                         "pooled_normal", NULL};
static const char *const entity_enum[] = {"region", "region_service", NULL};
static const char *const direction_enum[] = {"up", "down", "both", NULL};
static const char *const format_enum[] = {"avro", "avro_plain", "json", NULL};
static const char *const input_format_enum[] = {"avro", "avro_plain", NULL};
static const char *const guarantee_enum[] = {"exactly_once", "at_least_once",
                                             NULL};

const char *bw_format_name(int f)
{
    return (f >= 0 && f <= 2) ? format_enum[f] : "?";
}

const char *bw_model_kind_name(int kind)
{
    return (kind >= 0 && kind <= 2) ? model_enum[kind] : "?";
}

const char *bw_transform_name(int t)
{
    return (t >= 0 && t <= 2) ? transform_enum[t] : "?";
}

/* Daily and weekly profiles share keys; only the defaults differ. */
#define SEASON_KEYS(on, nbins, cycles, hl)                                     \
    {                                                                          \
        K_BOOL(bw_season_cfg_t, enabled, on, "learn this seasonal profile"),   \
            K_INT(bw_season_cfg_t, bins, 4, 4096, nbins,                       \
                  "phase bins per period"),                                    \
            K_INT(bw_season_cfg_t, min_cycles, 1, 1000, cycles,                \
                  "periods a bin must see before its estimate is applied"),    \
            K_DBL(bw_season_cfg_t, half_life, 0.5, 1e6, hl,                    \
                  "forgetting half-life of each bin's mean, in periods"),      \
            K_END,                                                             \
    }

static const bw_key_t season_keys[] = SEASON_KEYS("true", "288", "2", "7");
/* Weekly: three weeks before it applies. After two, each hourly bin has
 * seen two days, and two bursts on two Mondays' evenings are a "pattern";
 * the third visit is the first that can disagree with a pair (README,
 * the weekly profile). */
static const bw_key_t weekly_keys[] = SEASON_KEYS("true", "168", "3", "4");

#define PF bw_pf_cfg_t
static const bw_key_t pf_keys[] = {
    K_INT(PF, particles, 1, 65536, "32", "particles per series"),
    K_DBL(PF, ess_threshold, 0, 1, "0.5",
          "resample when ESS < ess_threshold * particles"),
    K_BOOL(PF, rao_blackwell, "true",
           "integrate level/trend analytically (Kalman per particle)"),
    K_DBL(PF, t_dof, 0, 1000, "4",
          "Student-t dof of the observation noise; 0 = Gaussian"),
    K_INT(PF, t_nodes, 1, BW_T_NODES_MAX, "3",
          "Gauss-Laguerre nodes of the t scale mixture"),
    K_DBL_NEUTRAL(PF, tail_scale, 0, 1000, "0",
          "heavy-tailed noise: the sd, in noise scales, of a wide normal "
          "node added to the t mixture, whose weight each series learns "
          "from its own data (from near 0): a series whose noise has heavy "
          "tails learns that its scattered extremes are noise, one whose "
          "noise has not keeps them spikes (4: measured in the README, "
          "A learned tail node); 0 = off (also with t_dof 0); below about 2 "
          "the node lies inside the t quadrature's own width and adds "
          "little; a route's tail_scale overrides it for its series"),
    K_DBL(PF, p_spike, 0, 0.5, "0.005",
          "prior probability that an event is a transient anomaly"),
    K_DBL(PF, p_shift, 0, 0.5, "0",
          "prior probability that an event starts a level shift (a "
          "permanent change: the new level is normal from the next event)"),
    K_DBL(PF, p_episode, 0, 0.5, "0.001",
          "prior probability that an event starts an abnormal episode: the "
          "series moves to an abnormal level and stays there while its "
          "baseline goes on predicting what normal would be, so every "
          "event of the episode is scored as abnormal; 0 = off"),
    K_DBL(PF, episode_duration, 1, 1e9, "120",
          "mean length of an abnormal episode, in events (the regime is "
          "sticky: it goes on with probability 1 - 1/episode_duration per "
          "event)"),
    K_DBL(PF, episode_min, 0, 1e6, "3",
          "an episode ends when its abnormal level comes within this many "
          "noise sds of the baseline (no data can tell it from normal)"),
    K_DBL(PF, adopt_after_ms, 0, 1e15, "14400000",
          "an abnormal episode that has lasted this long (event time; 4 "
          "hours) becomes the new normal: the baseline moves to it and the "
          "record says so; 0 = never"),
    K_BOOL(PF, novel_episodes, "true",
           "before the daily profile applies (from the end of the series' "
           "first day), a jump to a level the memory of recent values has "
           "not held starts an abnormal episode, flagged until it ends or is "
           "adopted as it would be later; a jump to a familiar level stays "
           "onset-only then (it may be the daily cycle the profile has not "
           "learnt yet); only while the memory (recur_window values at the "
           "series' interval) spans a day; false: every change before the "
           "profile applies is onset-only"),
    K_DBL_NEUTRAL(PF, novel_phase_ms, 0, 43200000, "3600000",
          "from the end of a series' first day (before the daily "
          "profile applies, with novel_episodes only): a level counts "
          "as visited at this hour only if the memory holds it within "
          "this long of the same time of day on an earlier day (one "
          "hour: a daily pattern keeps its hour from day to day); a "
          "stay at a level earlier days reached only at other hours (a "
          "saturation at the afternoon peak's level in the morning, on "
          "day 2; in the daily profile's frame once it applies) is "
          "then read as an abnormal episode within about ten events, "
          "not as a return to a familiar state, while one tail value "
          "there stays one value; where the memory holds nothing that "
          "near the time of day (a gap), any hour counts; 0 = any hour "
          "counts"),
    K_DBL(PF, p_recur, 0, 0.5, "0.01",
          "prior probability that the value jumps to one seen recently "
          "(e.g. idle <-> busy): a regime change the series has shown "
          "before, not an anomaly"),
    K_INT(PF, recur_window, 0, 65536, "2016",
          "recent values remembered for the recurrent regime (2016: a week of "
          "5-minute data); 0 disables it"),
    K_INT(PF, recur_min_count, 1, 65536, "2",
          "recent values needed near y for it to count as familiar"),
    K_DBL(PF, recur_bandwidth, 0.01, 1000, "2",
          "a value is familiar if recent values lie within this many noise "
          "sds"),
    K_DBL(PF, recur_relative, 0, 10, "0.2",
          "... or within this fraction of its distance from the level (a "
          "burst to 1e8 is familiar if earlier bursts reached 1e8 +- 20%)"),
    K_DBL(PF, recur_gap, 0, 1000, "4",
          "remembered values within this many noise sds of the current "
          "level are the current state's own spread, not another state: "
          "they do not make a value familiar, and a value that near is no "
          "recurrent jump (0: every remembered value counts)"),
    K_DBL(PF, recur_spike_prior, 0, 0.5, "0.00001",
          "prior probability that a time of day holds a recurring spike (a "
          "daily job): a spike of about the size earlier days showed within "
          "recur_spike_width bins of its phase is then usual, not an "
          "anomaly (a Bayes factor over the days, model section); 0 = off"),
    K_INT(PF, recur_spike_width, 0, 1000, "3",
          "daily profile bins either side of an event's phase where "
          "earlier days' spikes count as recurring (3 of 288: +- 15 "
          "minutes)"),
    K_INT(PF, recur_visit, 0, 1000, "8",
          "a jump to a familiar value must last as the series' earlier "
          "stays there did: for this many events after it, each further "
          "event at the new level has the chance, read from the memory, "
          "that a remembered value near it was followed by one within "
          "recur_gap noise sds of it or half the jump (scattered tail "
          "values were not, a state's were); 0 = off"),
    K_BOOL(PF, memory_normal_only, "false",
           "remember only values that are not anomalous (p_anomaly < 0.5): "
           "a spike or an incident does not make its own level familiar; "
           "false: every value is remembered, and only an ongoing episode's "
           "own values are left out"),
    K_BOOL(PF, ar_noise, "true",
           "learn the lag-1 autocorrelation of the observation noise (AR(1) "
           "noise, measurement differencing): correlated noise is not "
           "mistaken for a change of level"),
    K_DBL(PF, ar_half_life, 10, 1e9, "1000",
          "events; forgetting of the noise autocorrelation's estimate"),
    K_BOOL(PF, local_noise, "true",
           "widen the noise to the spread the series has shown near its "
           "previous value (consecutive recent values both near it), e.g. "
           "a busy state noisier than idle; needs recur_window > 0 and "
           "learn_scale"),
    K_INT(PF, block_size, 0, 4096, "12",
          "events per block of the collective-anomaly model (12: an hour of "
          "5-minute data): a second filter on block means finds runs of "
          "values that are each unremarkable but together far from normal; "
          "0 disables it"),
    K_DBL(PF, spike_scale, 1, 1e6, "10",
          "sd of a transient anomaly, in noise sds"),
    K_DBL(PF, shift_scale, 1, 1e6, "10", "sd of a level shift, in noise sds"),
    K_DBL(PF, level_ratio, 0, 1e6, "0.01",
          "level innovation variance per interval / noise variance"),
    K_BOOL(PF, trend, "false", "add a local linear trend"),
    K_DBL(PF, trend_ratio, 0, 1e6, "0.0001",
          "trend innovation variance per interval / noise variance"),
    K_BOOL(PF, learn_scale, "true",
           "learn the noise variance online (conjugate inverse-gamma)"),
    K_DBL(PF, scale_prior, 1e-12, 1e12, "0.05",
          "prior noise sd as a fraction of |first value| (absolute if "
          "learn_scale is false)"),
    K_DBL_NEUTRAL(PF, scale_prior_spread, 0, 1e6, "10",
                  "cap on the prior noise sd, set at the 10th event (or "
                  "the first step after it): this many times the spread "
                  "of the steps so far (their rms / sqrt 2), so a level "
                  "far above its noise does not hide it; 0 disables"),
    K_DBL(PF, scale_prior_dof, 0.1, 1e6, "1",
          "prior degrees of freedom (pseudo-events) of the noise variance"),
    K_DBL(PF, scale_discount, 0.5, 1, "0.995",
          "per-event discount of the noise statistics (1 = no forgetting)"),
    K_DBL(PF, scale_floor, 0, 1e12, "1e-6", "absolute floor on the noise sd"),
    K_DBL(PF, resolution_floor, 0, 10, "0.5",
          "floor on the noise sd in units of the data's resolution (the "
          "smallest step seen between values): integer counts get >= 0.5"),
    K_DBL(PF, init_level_var, 1e-6, 1e12, "1",
          "variance of the level after the first value, in noise variances"),
    K_INT(PF, warmup, 0, 1000000, "30",
          "events before a new series may raise alerts"),
    K_DBL(PF, interval_half_life, 1, 1e9, "20",
          "events; tracking of the typical sampling interval"),
    K_SEC(PF, daily, season_keys, "daily seasonal profile"),
    K_SEC(PF, weekly, weekly_keys, "weekly seasonal profile"),
    K_END,
};
#undef PF

#define HI bw_hier_cfg_t
static const bw_key_t hier_keys[] = {
    K_INT(HI, grid, 5, 201, "13", "grid points per hyperparameter axis"),
    K_DBL(HI, grid_sd, 2, 20, "6", "grid half-width in posterior sds"),
    K_DBL(HI, half_life_ms, 0, 1e15, "3600000",
          "half-life of the exponential forgetting of counts; 0 = none"),
    K_DBL(HI, kappa_prior_power, -10, 0, "-2.5",
          "hyperprior p(alpha,beta) ~ (alpha+beta)^power (BDA3 5.3: -2.5)"),
    K_DBL(HI, kappa_min, 1e-6, 1e12, "2",
          "smallest concentration (alpha+beta): below 2 the population "
          "of rates is U-shaped (mass piled at 0 and 1), which a handful "
          "of regions cannot rule out under the BDA prior alone"),
    K_DBL(HI, kappa_max, 1e-6, 1e12, "1e7",
          "largest concentration (alpha+beta) on the grid"),
    K_INT(HI, max_regions, 2, BW_REGIONS_MAX, "64", "regions per pooled group"),
    K_DBL(HI, outlier_quantile, 0.5, 0.999999, "0.99",
          "a region is anomalous when its rate exceeds this population "
          "quantile"),
    K_DBL(HI, credible_mass, 0.5, 0.9999, "0.95", "credible interval mass"),
    K_DBL(HI, within_prior_n, 0, 1e9, "5",
          "normal model: weight (in events) of the pooled within-region "
          "variance"),
    K_INT(HI, refresh_intervals, 0, 1000000, "32",
          "count model: the population's hyperposterior is refitted once "
          "every this many intervals per region (between refits each "
          "region's population prior is the one fitted without it at the "
          "last refit); 0 = refit at every event (exact, slow)"),
    K_DBL(HI, own_half_life_ms, 0, 1e15, "21600000",
          "count model: half-life of each region's own baseline rate (6 "
          "hours); 0 = no forgetting"),
    K_DBL(HI, p_episode, 1e-9, 0.5, "0.001",
          "count model: prior probability per interval that a region's rate "
          "leaves its own baseline (an abnormal episode starts)"),
    K_DBL(HI, episode_duration, 1, 1e9, "60",
          "count model: mean length of an abnormal episode, in intervals "
          "(sticky regime)"),
    K_DBL(HI, adopt_after_ms, 0, 1e15, "14400000",
          "count model: an episode that has lasted this long becomes the "
          "region's new baseline (4 hours); 0 = never"),
    K_INT(HI, own_warmup, 0, 1000000, "30",
          "count model: intervals of a region before its own-baseline "
          "evidence raises alerts"),
    K_ENUM(HI, own_direction, direction_enum, "up",
           "count model: which changes of a region's rate against its own "
           "baseline are anomalies (error counts: up)"),
    K_END,
};
#undef HI

static const bw_key_t signal_keys[] = {
    K_STR(bw_signal_cfg_t, metric, "", true, "metric name of the signal"),
    K_DBL(bw_signal_cfg_t, detection, 1e-9, 1, "0.8",
          "P(signal elevated in the window | threat)"),
    K_DBL(bw_signal_cfg_t, false_alarm, 1e-9, 1, "0.02",
          "P(signal elevated in the window | no threat): bounds what one "
          "signal alone can say (its likelihood ratio is at most "
          "detection / false_alarm)"),
    K_DBL(bw_signal_cfg_t, elevation, 0.01, 100, "1",
          "typical elevation under a threat, in sds of the baseline "
          "prediction (prior of the mean shift: normal with this mean and "
          "half of it as sd)"),
    K_ENUM(bw_signal_cfg_t, direction, direction_enum, "up",
           "which way the signal moves under a threat"),
    K_END,
};

static const bw_key_t rule_keys[] = {
    K_STR(bw_rule_cfg_t, name, "", true, "threat name"),
    K_LIST(bw_rule_cfg_t, signals, n_signals, signal_keys,
           "signals combined by the rule"),
    K_END,
};

#define FU bw_fusion_cfg_t
static const bw_key_t fusion_keys[] = {
    K_ENUM(FU, entity, entity_enum, "region", "what a threat is about"),
    K_DBL(FU, window_ms, 1, 1e12, "600000", "sliding evidence window"),
    K_INT(FU, spans, 1, BW_SPANS_MAX, "4",
          "a signal's elevation is judged over its last 1, 2, ... spans "
          "windows (a Bayes factor averaged over when it began), so the "
          "evidence of a lasting elevation goes on growing after one window; "
          "1 = the last window only"),
    K_DBL(FU, baseline_ms, 0, 1e13, "7200000",
          "horizon of each signal's reference, learnt from data that has "
          "left the window (0: judge against the filter's own baseline)"),
    K_DBL(FU, prior, 1e-12, 0.5, "0.001",
          "prior threat probability per entity and window"),
    K_DBL(FU, correlation, 0, 1, "0.3",
          "discount for correlated signals: 0 independent, 1 redundant"),
    K_DBL(FU, emit_delta, 0, 100, "1",
          "emit a threat row when the score moves by this many points"),
    K_DBL(FU, band_moderate, 0, 1, "0.2",
          "probability at which level is moderate"),
    K_DBL(FU, band_high, 0, 1, "0.5", "probability at which level is high"),
    K_DBL(FU, band_critical, 0, 1, "0.8",
          "probability at which level is critical"),
    K_DBL(FU, level_hold, 0.01, 1, "0.25",
          "a level, once reached, is kept until the probability falls below "
          "this fraction of its band (hysteresis, so that a level does not "
          "flap while the evidence hovers at its band); 1 = none"),
    K_LIST(FU, rules, n_rules, rule_keys, "threat rules"),
    K_END,
};
#undef FU

static const bw_key_t model_keys[] = {
    {.name = "pf",
     .type = BW_KT_SECTION,
     .off = offsetof(bw_config_t, model.pf) - offsetof(bw_config_t, model),
     .sub = pf_keys,
     .doc = "per-series particle filter"},
    {.name = "hier",
     .type = BW_KT_SECTION,
     .off = offsetof(bw_config_t, model.hier) - offsetof(bw_config_t, model),
     .sub = hier_keys,
     .doc = "hierarchical pooled models"},
    {.name = "fusion",
     .type = BW_KT_SECTION,
     .off = offsetof(bw_config_t, model.fusion) - offsetof(bw_config_t, model),
     .sub = fusion_keys,
     .doc = "threat fusion"},
    K_END,
};

#define RO bw_route_cfg_t
static const bw_key_t route_keys[] = {
    K_STR(RO, region, "*", false, "glob on the region"),
    K_STR(RO, service, "*", false, "glob on the service"),
    K_STR(RO, metric, "*", false, "glob on the metric"),
    K_ENUM(RO, model, model_enum, "series", "model for matching series"),
    K_ENUM(RO, transform, transform_enum, "none",
           "transform applied to values before modelling"),
    K_DBL(RO, slo, 0, 1e300, "0",
          "pooled models: SLO threshold on the rate or mean; 0 = none"),
    K_DBL_NEUTRAL(RO, tail_scale, -1, 1000, "-1",
          "series models: model.pf.tail_scale for matching series (a "
          "metric known to be heavy-tailed, whose extremes are noise); -1 = "
          "model.pf's value"),
    K_END,
};
#undef RO

#define EN bw_engine_cfg_t
static const bw_key_t engine_keys[] = {
    K_I64(EN, seed, 0, 9007199254740991.0, "1", "seed of every model's RNG"),
    K_INT(EN, max_series, 1, 10000000, "100000",
          "series held at once (memory is allocated per series on first "
          "sight)"),
    K_DBL(EN, alert_threshold, 0, 1, "0.99",
          "anomaly probability at which an event counts as an alert"),
    K_DBL(EN, stale_factor, 1, 1e6, "5",
          "a series silent for longer than this many of its usual intervals "
          "is reported stale (once, until data resumes)"),
    K_DBL(EN, lateness_ms, 0, 1e12, "0",
          "events older than the newest event time seen minus this are "
          "rejected as late (dead letters); 0 = no limit"),
    K_DBL(EN, retire_after_ms, 0, 1e13, "0",
          "a series silent for this long (stream time) is retired: its "
          "models are freed and its changelog key gets a tombstone (so "
          "are fusion entities and pooled groups nothing feeds any more); "
          "it starts from the prior if it comes back; 0 = never"),
    K_LIST(EN, routes, n_routes, route_keys,
           "first matching route picks the model; none matching = series"),
    K_END,
};
#undef EN

#define KA bw_kafka_cfg_t
static const bw_key_t kafka_keys[] = {
    K_STRNE(KA, bootstrap_servers, "127.0.0.1:9092",
            "brokers to bootstrap from (host:port, comma separated)"),
    K_STRNE(KA, group_id, "bayeswatch", "consumer group of the stage"),
    K_MAP(KA, client,
          "librdkafka properties for every client (consumer, producer, state "
          "restore), e.g. security.protocol, sasl.*, ssl.*; kafka.consumer "
          "and kafka.producer override them"),
    K_MAP(KA, consumer,
          "extra librdkafka consumer properties, passed through as written"),
    K_MAP(KA, producer,
          "extra librdkafka producer properties, passed through as written"),
    K_BOOL(KA, allow_insecure, "false",
           "allow enable.ssl.certificate.verification: false under "
           "security.protocol ssl or sasl_ssl (refused otherwise)"),
    K_END,
};
#undef KA

#define IN bw_ingest_cfg_t
static const bw_key_t ingest_keys[] = {
    K_STRLIST(IN, topics, n_topics, "metrics",
              "topics of metric events (schemas/metric_event.avsc)"),
    K_ENUM(IN, format, input_format_enum, "avro",
           "avro: Confluent wire format (magic 0, 4-byte schema id); "
           "avro_plain: bare Avro binary"),
    K_I64(IN, schema_id, 0, 2147483647, "1",
          "schema id expected in the Confluent header; others are dead "
          "letters (unknown_schema); with registry.url, every id is looked "
          "up instead"),
    K_END,
};
#undef IN

#define OUTPUT_KEYS(topic_, id_, what)                                         \
    {                                                                          \
        K_STRNE(bw_output_cfg_t, topic, topic_, "topic of " what),             \
            K_ENUM(bw_output_cfg_t, format, format_enum, "avro",               \
                   "avro (Confluent framing), avro_plain or json"),            \
            K_I64(bw_output_cfg_t, schema_id, 0, 2147483647, id_,              \
                  "schema id written in the Confluent header (with "           \
                  "registry.url: the registry's id instead)"),                 \
            K_END,                                                             \
    }
static const bw_key_t scores_keys[] =
    OUTPUT_KEYS("bayeswatch.scores", "2", "anomaly scores and stale markers");
static const bw_key_t threats_keys[] =
    OUTPUT_KEYS("bayeswatch.threats", "3", "fused threat assessments");
static const bw_key_t dead_keys[] = OUTPUT_KEYS(
    "bayeswatch.dead-letters", "4", "input records that could not be scored");

static const char *const siem_enum[] = {"ecs", "ocsf", NULL};
static const char *const level_enum[] = {"low", "moderate", "high", "critical",
                                         NULL};

#define AL bw_alerts_cfg_t
static const bw_key_t alerts_keys[] = {
    K_STR(AL, topic, "", false,
          "topic of SIEM alert documents (JSON), written in the same "
          "transaction as the scores; empty: none"),
    K_ENUM(AL, format, siem_enum, "ecs",
           "ecs: Elastic Common Schema; ocsf: OCSF Detection Finding (2004)"),
    K_BOOL(AL, scores, "true",
           "an alert for every score at or above engine.alert_threshold"),
    K_BOOL(AL, slo, "true",
           "an alert for every pooled record whose p_slo is at or above "
           "engine.alert_threshold"),
    K_ENUM(AL, threat_level, level_enum, "high",
           "an alert for every threat record at or above this level"),
    K_END,
};
#undef AL

#define EM bw_emit_cfg_t
static const bw_key_t emit_keys[] = {
    K_SEC(EM, scores, scores_keys, "schemas/anomaly_score.avsc"),
    K_SEC(EM, threats, threats_keys, "schemas/threat_score.avsc"),
    K_SEC(EM, dead_letters, dead_keys, "schemas/dead_letter.avsc"),
    K_SEC(EM, alerts, alerts_keys, "SIEM alerts (ECS or OCSF JSON)"),
    K_END,
};
#undef EM

#define PI bw_pipeline_cfg_t
static const bw_key_t pipeline_keys[] = {
    K_ENUM(PI, guarantee, guarantee_enum, "exactly_once",
           "exactly_once: transactional producer, input offsets committed in "
           "the output transaction; at_least_once: offsets committed after "
           "the outputs are acknowledged"),
    K_DBL(PI, commit_interval_ms, 1, 600000, "100",
          "how often the open transaction (or the offsets) is committed"),
    K_STR(PI, instance_id, "", false,
          "this instance's stable name (transactional.id suffix, static "
          "member id); empty = the host name"),
    K_BOOL(PI, static_membership, "true",
           "join the group as a static member (group.instance.id = the "
           "instance id): a restarted or crashed instance with the same id "
           "gets its partitions back at once instead of after "
           "session.timeout.ms; its partitions also wait for it that long "
           "when it stops for good (scale-down: lower session.timeout.ms, or "
           "false where ids are not stable)"),
    K_DBL(PI, stale_scan_ms, 100, 86400000, "10000",
          "how often (wall clock) silent series are looked for"),
    K_DBL(PI, poll_timeout_ms, 1, 10000, "100",
          "longest wait for input before timers are checked"),
    K_INT(PI, threads, 1, 64, "1",
          "stream threads: partitions are scored in parallel, each "
          "partition on one thread (1 = inline, no thread)"),
    K_DBL(PI, stats_interval_ms, 0, 86400000, "60000",
          "a progress line (records, rates, dead letters, commits) in the "
          "log this often; 0 = off"),
    K_DBL(PI, max_ahead_ms, 1000, 1e13, "3600000",
          "an event dated more than this ahead of the wall clock goes to the "
          "dead letters (time_skew) and moves no stream time: a producer's "
          "clock or unit error must not mark every other series stale"),
    K_DBL(PI, max_behind_ms, 0, 1e13, "0",
          "an event dated more than this before the wall clock goes to the "
          "dead letters (time_skew), e.g. seconds sent as milliseconds; 0 = "
          "off (backfills and replays of old data are scored)"),
    K_END,
};
#undef PI

#define ST bw_state_cfg_t
static const bw_key_t state_keys[] = {
    K_BOOL(ST, changelog, "true",
           "the Kafka stage keeps each partition's model state in a "
           "compacted changelog topic, written in the output transaction and "
           "restored on assignment: restarts, deploys and rebalances continue "
           "the models instead of starting from the prior"),
    K_STR(ST, topic, "", false,
          "the changelog topic; empty = GROUP_ID-model-state-changelog. "
          "Created at start-up if missing (compacted, as many partitions as "
          "the input topic)"),
    K_INT(ST, replication_factor, -1, 32, "-1",
          "replication factor when the stage creates the changelog topic; "
          "-1 = the broker's default"),
    K_STR(ST, dir, "", false,
          "directory for local checkpoints (one file per partition, written "
          "on a clean stop or when a partition is given up): a restart "
          "restores from local disk plus the changelog's tail; empty = "
          "restore from the changelog alone"),
    K_DBL(ST, flush_interval_ms, 0, 3600000, "10000",
          "how often a partition's changed state is written to the "
          "changelog, in the transaction of a commit; 0 = at every commit. "
          "Between flushes a crash restores the last flush and replays the "
          "input since it (deterministic, outputs not produced again), so a "
          "restore reads at most this much input; clean stops, rebalances, "
          "stale markers and time-skew dead letters always flush"),
    K_DBL(ST, restore_timeout_ms, 1000, 3600000, "300000",
          "longest a partition's restore may take before the stage gives up "
          "(exit 1)"),
    K_END,
};
#undef ST

static const char *const log_level_enum[] = {"error", "warn", "info", "debug",
                                             NULL};
static const char *const log_format_enum[] = {"plain", "json", NULL};

#define OB bw_obs_cfg_t
static const bw_key_t obs_keys[] = {
    K_STR(OB, listen, "127.0.0.1:9464", false,
          "HOST:PORT of the one HTTP listener: /metrics (Prometheus), "
          "/healthz, /readyz and the web view at /; port 0 = any free port "
          "(logged); empty = off"),
    K_ENUM(OB, log_level, log_level_enum, "info",
           "the least severe log level written: error, warn, info or debug"),
    K_ENUM(OB, log_format, log_format_enum, "plain",
           "plain text lines, or json: one object per line with time, "
           "level, component, partition and message"),
    K_INT(OB, region_label_cap, 0, 1000, "32",
          "the first this many regions seen get their own `region` label on "
          "the per-region metrics; later ones are counted as region=\"other\""),
    K_INT(OB, view_points, 1000, 10000000, "200000",
          "the web view keeps this many recent score points (all series "
          "together; about 100 bytes each) for its series charts"),
    K_INT(OB, view_series, 16, 1000000, "20000",
          "series the web view tracks (latest score, freshness); later ones "
          "are counted, not shown"),
    K_DBL(OB, kafka_stats_ms, 0, 3600000, "5000",
          "librdkafka statistics.interval.ms: how often consumer lag, broker "
          "round-trip time and the producer's transaction state are "
          "refreshed for /metrics; 0 = off"),
    K_END,
};
#undef OB

#define RG bw_registry_cfg_t
static const bw_key_t registry_keys[] = {
    K_STR(RG, url, "", false,
          "base URL of a Confluent-compatible schema registry (e.g. "
          "http://host:8080/apis/ccompat/v7 for Apicurio); set: the output "
          "schemas are registered under TOPIC-value and their ids written, "
          "and each input record's writer schema is fetched by its id and "
          "resolved against schemas/metric_event.avsc; empty: the fixed "
          "schema_id settings"),
    K_STR(RG, username, "", false, "HTTP basic-auth user; empty: none"),
    K_STR(RG, password, "", false,
          "HTTP basic-auth password, or \"${file:PATH}\""),
    K_STR(RG, ca_location, "", false,
          "CA certificates (PEM file) to verify an https registry; empty: "
          "the system's"),
    K_DBL(RG, timeout_ms, 100, 600000, "5000", "timeout of one request"),
    K_DBL(RG, backoff_max_ms, 100, 3600000, "30000",
          "while the registry cannot be reached, records with a schema id "
          "not yet cached wait (their partition paused, the others go on) "
          "and the fetch is retried after 0.5 s, doubling up to this"),
    K_END,
};
#undef RG

const bw_key_t bw__config_root[] = {
    K_SEC(bw_config_t, engine, engine_keys, "routing of series to models"),
    K_SEC(bw_config_t, model, model_keys, "statistical models"),
    K_SEC(bw_config_t, kafka, kafka_keys, "Kafka clients (librdkafka)"),
    K_SEC(bw_config_t, ingest, ingest_keys, "input topics"),
    K_SEC(bw_config_t, emit, emit_keys, "output topics"),
    K_SEC(bw_config_t, registry, registry_keys,
          "schema registry (Confluent-compatible REST API)"),
    K_SEC(bw_config_t, pipeline, pipeline_keys,
          "the Kafka stage: guarantees, commits, timers"),
    K_SEC(bw_config_t, state, state_keys,
          "model state: changelog and local checkpoints (the Kafka stage)"),
    K_SEC(bw_config_t, obs, obs_keys,
          "logs, metrics, health probes and the web view"),
    K_END,
};
