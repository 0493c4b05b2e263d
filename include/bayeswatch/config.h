/*
 * bayeswatch - configuration: one YAML file -> validated plain structs.
 *
 * Sections mirror src/ folders: `model.pf` configures src/model/pf.c,
 * `model.hier` src/model/hier.c, `model.fusion` src/model/fusion.c,
 * `engine` src/engine/, `ingest` src/ingest/, `emit` src/emit/, `pipeline`
 * src/pipeline/ (the Kafka stage); `kafka.consumer` and `kafka.producer`
 * are librdkafka properties passed through as written. Every key, its type,
 * range, default and meaning live in one declarative table (src/config/keys.c);
 * config/bayeswatch.yaml is the annotated reference.
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#ifndef BAYESWATCH_CONFIG_H
#define BAYESWATCH_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bayeswatch/err.h"

#define BW_NAME_MAX 64
#define BW_ROUTES_MAX 32
#define BW_RULES_MAX 16
#define BW_SIGNALS_MAX 8
#define BW_REGIONS_MAX 4096 /* model.hier.max_regions */
#define BW_SPANS_MAX 8 /* model.fusion.spans */
#define BW_T_NODES_MAX 16 /* model.pf.t_nodes */
#define BW_TOPICS_MAX 16
#define BW_TOPIC_MAX 250 /* Kafka's topic name limit is 249 */
#define BW_KV_MAX 64

/** Exit code for configuration errors (sysexits.h EX_CONFIG). */
#define BW_EXIT_CONFIG 78

typedef enum {
    BW_TRANSFORM_NONE,
    BW_TRANSFORM_LOG,
    BW_TRANSFORM_LOG1P
} bw_transform_t;
typedef enum {
    BW_MODEL_SERIES,        /* per-series particle filter */
    BW_MODEL_POOLED_COUNT,  /* Beta-Binomial hierarchy across regions */
    BW_MODEL_POOLED_NORMAL, /* normal hierarchy across regions */
} bw_model_kind_t;
typedef enum { BW_ENTITY_REGION, BW_ENTITY_REGION_SERVICE } bw_entity_kind_t;
typedef enum {
    BW_DIRECTION_UP,
    BW_DIRECTION_DOWN,
    BW_DIRECTION_BOTH
} bw_direction_cfg_t;

typedef struct {
    bool enabled;
    int bins;         /* phase bins per period */
    int min_cycles;   /* periods seen before a bin's estimate is applied */
    double half_life; /* periods; forgetting of each bin's mean */
} bw_season_cfg_t;

/** model.pf: the robust regime-switching particle filter. */
typedef struct {
    int particles;
    double ess_threshold;    /* resample when ESS < this * particles */
    bool rao_blackwell;      /* integrate the Gaussian state analytically */
    double t_dof;            /* Student-t degrees of freedom; 0 = Gaussian */
    int t_nodes;             /* quadrature nodes of the t scale mixture */
    double tail_scale;       /* sd of the learned tail node; 0 = off */
    double p_spike;          /* prior probability of a transient anomaly */
    double p_shift;          /* prior probability of a level shift */
    double spike_scale;      /* spike sd in units of the noise sd */
    double shift_scale;      /* shift sd in units of the noise sd */
    double p_episode;        /* prior probability an abnormal episode starts */
    double episode_duration; /* mean length of an abnormal episode, events */
    double episode_min; /* an abnormal level this near the baseline ends it */
    double adopt_after_ms; /* an episode this old is the new normal; 0 never */
    bool novel_episodes;   /* episodes at unvisited levels before profile */
    double novel_phase_ms; /* ... or visited only at other times of day */
    double p_recur;        /* prior probability of a jump to a familiar value */
    int recur_window;      /* recent values remembered; 0 = no recur regime */
    int recur_min_count;   /* recent values needed to call y familiar */
    double recur_bandwidth; /* familiarity radius, in noise sds */
    double recur_relative;  /* ... or this fraction of the excursion */
    double recur_gap; /* values this near the level are not another state */
    int recur_visit;  /* events a jump must behave like earlier stays */
    double recur_spike_prior; /* P(a phase holds a recurring spike); 0 off */
    int recur_spike_width;    /* bins either side of the phase */
    bool memory_normal_only;  /* anomalous values are not remembered */
    bool local_noise;    /* inflate the noise to the current state's spread */
    bool ar_noise;       /* learn AR(1) correlation of the observation noise */
    double ar_half_life; /* events; forgetting of its estimate */
    int block_size;      /* events per block of the collective model; 0 off */
    double level_ratio;  /* level innovation var / noise var per interval */
    bool trend;
    double trend_ratio; /* trend innovation var / noise var per interval */
    bool learn_scale;   /* conjugate inverse-gamma noise variance */
    double scale_prior; /* prior noise sd (relative to |first value|) */
    double scale_prior_dof;
    double scale_prior_spread; /* cap on the prior sd, in early spreads */
    double scale_discount;   /* per-event discount of the variance statistics */
    double scale_floor;      /* absolute floor on the noise sd */
    double resolution_floor; /* noise sd floor in units of the data step */
    double init_level_var;   /* first value's level variance, noise units */
    int warmup;              /* events before alerts are trusted */
    double interval_half_life; /* events; tracking of the sampling interval */
    bw_season_cfg_t daily;
    bw_season_cfg_t weekly;
} bw_pf_cfg_t;

/** model.hier: hierarchical pooled models across regions. */
typedef struct {
    int grid;                 /* grid points per hyperparameter axis */
    double grid_sd;           /* grid half-width in posterior sds */
    double half_life_ms;      /* exponential forgetting; 0 = none */
    double kappa_prior_power; /* p(alpha,beta) ~ (alpha+beta)^power */
    double kappa_min, kappa_max;
    int max_regions;
    double
        outlier_quantile;  /* population quantile a region is tested against */
    double credible_mass;  /* credible interval mass, e.g. 0.95 */
    double within_prior_n; /* normal: prior weight of pooled variance */
    int refresh_intervals; /* counts: population refit every this many
                              intervals per region; 0 = every event */
    /* counts: each region against its own baseline (ownrate.c) */
    double own_half_life_ms; /* forgetting of the region's baseline rate */
    double p_episode;        /* prior probability an abnormal episode starts */
    double episode_duration; /* its mean length, in intervals */
    double adopt_after_ms;   /* an episode this old is the new baseline */
    int own_warmup;          /* intervals before the own evidence counts */
    int own_direction;       /* bw_direction_cfg_t: rises, drops or both */
} bw_hier_cfg_t;

typedef struct {
    char metric[BW_NAME_MAX];
    double detection;   /* P(signal elevated | threat) */
    double false_alarm; /* P(signal elevated | no threat) */
    double elevation;   /* typical elevation, in baseline predictive sds */
    int direction;      /* bw_direction_cfg_t */
} bw_signal_cfg_t;

typedef struct {
    char name[BW_NAME_MAX];
    int n_signals;
    bw_signal_cfg_t signals[BW_SIGNALS_MAX];
} bw_rule_cfg_t;

/** model.fusion: Bayesian threat fusion. */
typedef struct {
    int entity; /* bw_entity_kind_t */
    double window_ms;
    int spans;          /* evidence spans: 1..BW_SPANS_MAX windows */
    double baseline_ms; /* horizon of a signal's own reference; 0 off */
    double prior;       /* prior threat probability per entity and window */
    double correlation; /* 0 independent .. 1 fully redundant signals */
    double emit_delta;  /* emit when score moves this much (0-100 points) */
    double band_moderate, band_high, band_critical;
    double level_hold; /* a level is kept while P >= this x its band */
    int n_rules;
    bw_rule_cfg_t rules[BW_RULES_MAX];
} bw_fusion_cfg_t;

typedef struct {
    char region[BW_NAME_MAX]; /* fnmatch(3) globs */
    char service[BW_NAME_MAX];
    char metric[BW_NAME_MAX];
    int model;     /* bw_model_kind_t */
    int transform; /* bw_transform_t */
    double slo;    /* pooled: SLO threshold on the rate / mean */
    double tail_scale; /* series: model.pf.tail_scale for these; < 0 none */
} bw_route_cfg_t;

typedef struct {
    int64_t seed;
    int max_series;
    double alert_threshold; /* p_anomaly at which an event is an alert */
    double stale_factor;    /* silent > this x usual interval: stale */
    double lateness_ms;     /* allowed lateness behind the watermark; 0 off */
    double retire_after_ms; /* silent this long: series retired; 0 never */
    int n_routes;
    bw_route_cfg_t routes[BW_ROUTES_MAX];
} bw_engine_cfg_t;

/** One `key: value` of a pass-through map, with where it was written. */
typedef struct {
    char key[128];
    char value[512];
    int line, col; /* 1-based position of the value; 0 = not from a file */
} bw_kv_t;

typedef struct {
    int n;
    bw_kv_t kv[BW_KV_MAX];
} bw_kvmap_t;

/** kafka: client properties (librdkafka CONFIGURATION.md names). */
typedef struct {
    char bootstrap_servers[512];
    char group_id[BW_NAME_MAX * 2];
    bw_kvmap_t client;   /* passed to every client, before the two below */
    bw_kvmap_t consumer; /* passed to the consumer as written */
    bw_kvmap_t producer; /* passed to the producer as written */
    bool allow_insecure; /* TLS without certificate verification allowed */
} bw_kafka_cfg_t;

typedef enum {
    BW_FORMAT_AVRO,       /* Confluent wire format: magic 0, schema id, Avro */
    BW_FORMAT_AVRO_PLAIN, /* bare Avro binary */
    BW_FORMAT_JSON,       /* one JSON object per record (output only) */
} bw_format_t;

/** ingest: the input topics and their encoding. */
typedef struct {
    int n_topics;
    char topics[BW_TOPICS_MAX][BW_TOPIC_MAX];
    int format;        /* bw_format_t: avro or avro_plain */
    int64_t schema_id; /* Confluent schema id of the metric-event schema */
} bw_ingest_cfg_t;

/** registry: a Confluent-compatible schema registry (src/registry/). */
typedef struct {
    char url[512];         /* base URL; "" = fixed schema ids */
    char username[256];    /* HTTP basic auth; "" = none */
    char password[512];    /* or ${file:PATH} */
    char ca_location[512]; /* CA bundle for https; "" = the system's */
    double timeout_ms;     /* one request */
    double backoff_max_ms; /* longest pause between tries while down */
} bw_registry_cfg_t;

typedef struct {
    char topic[BW_TOPIC_MAX];
    int format;        /* bw_format_t */
    int64_t schema_id; /* written in the Confluent header */
} bw_output_cfg_t;

typedef enum { BW_SIEM_ECS, BW_SIEM_OCSF } bw_siem_format_t;

/** emit.alerts: SIEM-shaped alert documents (src/emit/siem.c). */
typedef struct {
    char topic[BW_TOPIC_MAX]; /* empty: no alert topic */
    int format;               /* bw_siem_format_t */
    bool scores;              /* anomaly scores at engine.alert_threshold */
    bool slo;                 /* SLO breaches: p_slo at the threshold */
    int threat_level;         /* bw_level_t: threats at or above */
} bw_alerts_cfg_t;

/** emit: the output topics. */
typedef struct {
    bw_output_cfg_t scores;
    bw_output_cfg_t threats;
    bw_output_cfg_t dead_letters;
    bw_alerts_cfg_t alerts;
} bw_emit_cfg_t;

typedef enum {
    BW_GUARANTEE_EXACTLY_ONCE,
    BW_GUARANTEE_AT_LEAST_ONCE
} bw_guarantee_t;

/** pipeline: the Kafka stage (src/pipeline/). */
typedef struct {
    int guarantee; /* bw_guarantee_t */
    double commit_interval_ms;
    char instance_id[BW_NAME_MAX]; /* "" = host name */
    bool static_membership;        /* group.instance.id = instance_id */
    double stale_scan_ms;          /* how often silent series are looked for */
    double poll_timeout_ms;
    int threads; /* stream threads scoring partitions in parallel */
    double stats_interval_ms; /* progress line in the log; 0 = off */
    double max_ahead_ms;  /* event_time beyond wall clock + this: dead letter */
    double max_behind_ms; /* event_time before wall clock - this; 0 = off */
} bw_pipeline_cfg_t;

typedef struct {
    bool changelog;            /* state changelog on */
    char topic[BW_TOPIC_MAX];  /* "" = GROUP_ID-model-state-changelog */
    int replication_factor;    /* when created; -1 broker default */
    char dir[256];             /* local checkpoints; "" none */
    double restore_timeout_ms; /* a partition's restore gives up after */
    double flush_interval_ms;  /* changed state written this often; 0 =
                                  at every commit */
} bw_state_cfg_t;

/** obs: logs, metrics, health and the web view (src/obs/). */
typedef struct {
    char listen[128];      /* HOST:PORT of /metrics, /healthz, /; "" off */
    int log_level;         /* bw_log_level_t (obs.h) */
    int log_format;        /* bw_log_format_t (obs.h) */
    int region_label_cap;  /* regions that get their own metric label */
    int view_points;       /* web view: recent score points kept */
    int view_series;       /* web view: series tracked */
    double kafka_stats_ms; /* librdkafka statistics.interval.ms; 0 off */
} bw_obs_cfg_t;

/** The state version of each model kind (bw_config_t.state_version). */
typedef struct {
    uint64_t pf, hier, fusion;
} bw_state_versions_t;

typedef struct {
    bw_engine_cfg_t engine;
    struct {
        bw_pf_cfg_t pf;
        bw_hier_cfg_t hier;
        bw_fusion_cfg_t fusion;
    } model;
    bw_kafka_cfg_t kafka;
    bw_ingest_cfg_t ingest;
    bw_emit_cfg_t emit;
    bw_registry_cfg_t registry;
    bw_pipeline_cfg_t pipeline;
    bw_state_cfg_t state;
    bw_obs_cfg_t obs;
    /* FNV-1a of the effective engine and model sections: the config
     * version stamped on every record (transport settings do not change
     * scores, so they do not change the version). */
    uint64_t hash;
    /* FNV-1a of each model section alone, its keys and values without
     * their docs: the state version of that model kind. Saved state
     * loads only under the same state version (decision settings such as
     * engine.alert_threshold do not change it; see the README, "Running
     * several instances"). */
    bw_state_versions_t state_version;
    /* ... hashed with each key's doc as well, as builds before the
     * doc-free versions did: state they saved loads under these too. */
    bw_state_versions_t state_version_docs;
    char source[256]; /* the file it was loaded from, for messages */
} bw_config_t;

/** @brief Fill @p cfg with every default (the empty file). */
void bw_config_defaults(bw_config_t *cfg);

/**
 * @brief Load and validate a YAML file.
 * @param diag  every problem is written here, one line each, as
 *              `FILE:LINE:COL: error: key.path: ...` (1-based), and every
 *              warning (a setting that is valid but cannot do what it is
 *              for) as `FILE:LINE:COL: warning: ...`. May be NULL.
 * @returns BW_OK, BW_ERR_IO (unreadable) or BW_ERR_CONFIG (invalid).
 */
bw_err_t bw_config_load(bw_config_t *cfg, const char *path, FILE *diag);

/** @brief Same, from a string; @p name is used in messages. */
bw_err_t bw_config_load_string(bw_config_t *cfg, const char *name,
                               const char *yaml, size_t len, FILE *diag);

/** @brief Write the effective config (defaults filled in) as YAML. */
void bw_config_dump(const bw_config_t *cfg, FILE *out);

/**
 * @brief Report a problem with the value at @p kv as
 * `SOURCE:LINE:COL: error: PATH.KEY: MSG` (a later check, e.g. librdkafka's
 * verdict on a pass-through property).
 */
void bw_config_report_kv(const bw_config_t *cfg, const char *path,
                         const bw_kv_t *kv, const char *msg, FILE *diag);

/** @brief Whether a pass-through property names a secret (password,
 * secret, token, credentials, private key): its value is never logged or
 * dumped. */
bool bw_config_key_is_secret(const char *key);

/**
 * @brief @p value, or for `"${file:PATH}"` PATH's contents (one trailing
 * newline dropped), into @p out.
 * @returns false with @p why set when the file cannot be read or does not
 * fit.
 */
bool bw_config_secret(const char *value, char *out, size_t n, char *why,
                      size_t why_size);

/** Room for obs.listen's host. */
#define BW_LISTEN_HOST_MAX 128

/**
 * @brief Split obs.listen, "HOST:PORT" or "[V6]:PORT" (port 0-65535; 0 is
 * any free port), into @p host and @p port: the loader's check and the
 * listener's parse are this one function. false if it is neither form.
 */
bool bw_config_split_listen(const char *s, char *host, size_t hn, char *port,
                            size_t pn);

/**
 * @brief The changelog topic's name: state.topic, or by default
 * GROUP_ID-model-state-changelog (the loader's topic checks and the stage
 * name it with this one function).
 */
void bw_config_changelog_topic(const bw_config_t *cfg, char *out, size_t n);

/**
 * @brief The most rule @p rule of @p fu can say: its threat probability
 * with every signal elevated beyond doubt, each signal's likelihood ratio
 * at its cap detection / false_alarm, the k-th largest weighted
 * (1 - correlation)^(k-1), from prior (README, Threat fusion). A rule
 * whose ceiling is below band_high can never report high: the loader
 * warns of it (`FILE:LINE:COL: warning: ...`, the load still succeeds).
 * Needs detection > false_alarm for every signal (the loader's check).
 */
double bw_config_rule_ceiling(const bw_fusion_cfg_t *fu, int rule);

/** @brief The first route whose globs match the series, or -1 (a plain
 * per-series filter). */
int bw_config_route(const bw_engine_cfg_t *ec, const char *region,
                    const char *service, const char *metric);

const char *bw_model_kind_name(int kind);
const char *bw_format_name(int f);
const char *bw_transform_name(int t);

#endif
