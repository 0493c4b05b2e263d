/*
 * bayeswatch - observability: the process's one log sink, the Prometheus
 * text exposition format, and the HTTP listener (obs.listen) that serves
 * /metrics, /healthz, /readyz and the read-only web view.
 *
 * The listener runs on its own thread (libmicrohttpd). It never reads the
 * stage's state: the stage publishes a rendered metrics page, a heartbeat
 * and its readiness (bw_obs_publish_metrics, bw_obs_heartbeat,
 * bw_obs_set_ready), and feeds the web view's store with the scores and
 * threats it produces (bw_obs_score, bw_obs_threat, bw_obs_stale), each
 * under the obs handle's own lock.
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#ifndef BAYESWATCH_OBS_H
#define BAYESWATCH_OBS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/config.h"
#include "bayeswatch/event.h"

/* ---- the log (src/obs/log.c) -------------------------------------------- */

typedef enum {
    BW_LOG_ERROR,
    BW_LOG_WARN,
    BW_LOG_INFO,
    BW_LOG_DEBUG
} bw_log_level_t;

typedef enum { BW_LOG_PLAIN, BW_LOG_JSON } bw_log_format_t;

/**
 * @brief Configure the process's log sink: the least severe level written,
 * plain lines or JSON lines, and where they go.
 * @param sink borrowed, must outlive logging; NULL = stderr.
 * @remark Call before other threads log (start-up); later calls are
 * allowed but racy with concurrent writers' choice of format.
 */
void bw_log_setup(bw_log_level_t min, bw_log_format_t format, FILE *sink);

/** @brief The instance name every line carries (copied). */
void bw_log_instance(const char *instance);

/** @brief Whether @p level is written: checked before any formatting. */
bool bw_log_enabled(bw_log_level_t level);

/**
 * @brief Write one line. Use BW_LOG, which checks the level first.
 * @param component the module ("pipeline", "state", "rdkafka", ...).
 * @param partition the input partition it concerns, or -1.
 * @remark Thread-safe. Warnings and errors from one call site are
 * rate-limited (5 per 10 s); the count suppressed is written with the
 * site's next line. Registered secrets never appear (bw_log_secret).
 */
void bw_log_write(bw_log_level_t level, const char *component, int partition,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define BW_LOG(level, component, partition, ...)                               \
    do {                                                                       \
        if (bw_log_enabled(level)) {                                           \
            bw_log_write((level), (component), (partition), __VA_ARGS__);      \
        }                                                                      \
    } while (0)

/** @brief The level of a syslog severity (librdkafka's log callback). */
bw_log_level_t bw_log_level_of_syslog(int severity);

/** @brief Never write @p value (a password, a token): every occurrence in
 * a line is replaced by "***". Copies; values shorter than 4 bytes are
 * ignored (they would blank ordinary words). */
void bw_log_secret(const char *value);

/** @brief Register every kafka.* pass-through value whose key names a
 * secret (bw_config_key_is_secret). */
void bw_log_config_secrets(const bw_config_t *cfg);

/** Lines written per level, and lines suppressed by the rate limit. */
typedef struct {
    uint64_t lines[4];
    uint64_t suppressed;
} bw_log_stats_t;

void bw_log_stats(bw_log_stats_t *st);

/* ---- Prometheus text format 0.0.4 (src/obs/prom.c) ---------------------- */

/** @brief `# HELP` and `# TYPE` lines of a metric family. */
void bw_prom_family(bw_wbuf_t *w, const char *name, const char *type,
                    const char *help);

/** @brief One sample; @p labels is "" or `a="x",b="y"` (values escaped
 * with bw_prom_escape). Non-finite values are written as +Inf/-Inf/NaN. */
void bw_prom_sample(bw_wbuf_t *w, const char *name, const char *labels,
                    double v);

/** @brief One sample with one label, `name{label="value"} v`, the value
 * escaped. */
void bw_prom_sample1(bw_wbuf_t *w, const char *name, const char *label,
                     const char *value, double v);

/** @brief Escape a label value (backslash, quote, newline) into @p dst. */
void bw_prom_escape(char *dst, size_t cap, const char *v);

#define BW_HIST_MAX 24

/** A histogram of durations with fixed bounds (seconds), updated from any
 * thread without a lock. Zero-initialise, then bw_hist_init. */
typedef struct {
    const double *bounds; /* upper bounds, ascending, seconds */
    int n;
    _Atomic uint64_t bucket[BW_HIST_MAX]; /* not cumulative */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_bits; /* the sum of seconds, a double's bits
                                  (nanoseconds in a u64 wrapped after
                                  ~30,000 ages of a week's backlog) */
} bw_hist_t;

/** @param bounds borrowed (static storage); at most BW_HIST_MAX. */
void bw_hist_init(bw_hist_t *h, const double *bounds, int n);
void bw_hist_observe(bw_hist_t *h, double seconds);
/** @brief Add @p src's counts into @p dst (same bounds): per-thread
 * histograms summed for a page. */
void bw_hist_add(bw_hist_t *dst, const bw_hist_t *src);
/** @brief The `_bucket`, `_sum` and `_count` samples of @p h. */
void bw_hist_write(bw_wbuf_t *w, const char *name, const char *labels,
                   const bw_hist_t *h);

/* ---- librdkafka statistics (src/obs/kstats.c) -------------------------- */

#define BW_KSTATS_PARTS 1024
#define BW_KSTATS_BROKERS 64

/** What /metrics takes from one librdkafka statistics JSON document. */
typedef struct {
    int n_parts;
    struct {
        char topic[256];
        int32_t partition;
        int64_t lag;       /* consumer_lag; -1 unknown */
        int64_t hi_offset; /* high watermark; -1 unknown */
        int64_t ls_offset; /* last stable offset (read_committed end) */
    } parts[BW_KSTATS_PARTS];
    int n_brokers;
    struct {
        char name[128];
        double rtt_s; /* average round-trip time */
    } brokers[BW_KSTATS_BROKERS];
    char txn_state[32]; /* "" when not a transactional producer */
} bw_kstats_t;

/**
 * @brief Read consumer lag per partition, broker round-trip times and the
 * transaction state from librdkafka's statistics (STATISTICS.md).
 * @param json NUL-terminated at json[len].
 * @returns BW_OK, or BW_ERR_PARSE (what was read before the fault is
 * kept), BW_ERR_INVAL (not terminated).
 */
bw_err_t bw_kstats_parse(const char *json, size_t len, bw_kstats_t *st);

/**
 * @brief The lag of statistics partition @p i for an instance whose next
 * offset to process there is @p position: the partition's end (the last
 * stable offset, else the high watermark) less it, 0 if the statistics
 * are older than the position. Before the first record (@p position -1)
 * librdkafka's consumer_lag, which counts from the committed offset read
 * at assignment; after it, never: a stage whose offsets go through
 * transactions does not move the consumer's committed offset, so that
 * figure grows with every record. -1 unknown.
 */
int64_t bw_kstats_lag(const bw_kstats_t *st, int i, int64_t position);

/* ---- the listener and the web view (src/obs/http.c, src/obs/view.c) ---- */

typedef struct bw_obs_s bw_obs_t;

/**
 * @brief Start the listener on cfg->listen (unless empty) with an empty
 * metrics page, not ready, and a web view store sized by cfg.
 * @param cfg borrowed; must outlive the handle.
 * @param fallback when the address is taken, listen on any free port of
 * the same host instead (the demo) rather than fail.
 * @returns NULL with errstr set (bad address, port taken, no memory).
 */
bw_obs_t *bw_obs_new(const bw_config_t *cfg, bool fallback, char *errstr,
                     size_t errstr_size);

/** @brief NULL-safe: stops the listener, frees the store. */
void bw_obs_destroy(bw_obs_t *obs);

/** @brief "http://HOST:PORT/" being served, or NULL (off). */
const char *bw_obs_url(const bw_obs_t *obs);

/** @brief Replace the metrics page (copied). The page served is this
 * text followed by the web view store's own families. */
void bw_obs_publish_metrics(bw_obs_t *obs, const bw_wbuf_t *text);

/** @brief The poll loop turned at @p now_ms (monotonic ms): /healthz
 * fails once no heartbeat came for @p window_ms. */
void bw_obs_heartbeat(bw_obs_t *obs, int64_t now_ms, int64_t window_ms);

/** @brief /readyz: 200 when ready, else 503 with @p why (copied). */
void bw_obs_set_ready(bw_obs_t *obs, bool ready, const char *why);

/** @brief Feed the web view one score (any thread; strings copied). */
void bw_obs_score(bw_obs_t *obs, const bw_event_t *ev, const bw_score_t *sc,
                  int64_t wall_ms);

/** @brief Feed the web view one threat assessment (any thread). */
void bw_obs_threat(bw_obs_t *obs, const bw_threat_rec_t *t, int64_t wall_ms);

/** @brief Mark a series stale in the web view (any thread). */
void bw_obs_stale(bw_obs_t *obs, const bw_stale_t *st);

/** @brief The series left this instance (its partition was revoked): the
 * view stops counting it (region gauges, cells, lists) until it scores
 * here again; its past points stay in the charts. Any thread. */
void bw_obs_moved(bw_obs_t *obs, const char *region, const char *service,
                  const char *metric);

/** @brief Render the web view store's metric families (per-region
 * gauges under obs.region_label_cap) into @p w; @p now_ms is the wall
 * clock, for input ages. */
void bw_obs_view_metrics(bw_obs_t *obs, int64_t now_ms, bw_wbuf_t *w);

/** @brief The JSON a web view endpoint serves: "overview", "slo" or
 * "series" (with @p arg the series key `region/service/metric`).
 * @returns false for an unknown endpoint or series. */
bool bw_obs_view_json(bw_obs_t *obs, const char *what, const char *arg,
                      int64_t now_ms, bw_wbuf_t *w);

/**
 * @brief GET @p url (http:// only) within @p timeout_ms.
 * @param out the first line of the body, or why there was none.
 * @returns the HTTP status, or -1 (no connection, no answer, bad URL).
 */
int bw_obs_probe(const char *url, int timeout_ms, char *out, size_t out_size);

#endif
