/*
 * The Kafka stage's internals, shared by pipeline.c (clients, transactions,
 * rebalances, life cycle), records.c (one record: decode, score, produce)
 * and workers.c (stream threads).
 *
 * Threading: the main thread owns the clients' control calls (poll,
 * transactions, rebalances, seeks) and the task table; each task (input
 * partition) is bound to one worker, which alone touches its engine while
 * records flow. The main thread quiesces the workers (every queue empty,
 * every worker idle) before anything that reads task state or must see
 * every output produced: commits, aborts, rebalances, stale scans. With
 * pipeline.threads = 1 there is no worker thread: records are processed
 * inline by the main thread.
 */
#ifndef BW_PIPELINE_INT_H
#define BW_PIPELINE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "bayeswatch/emit.h"
#include "bayeswatch/engine.h"
#include "bayeswatch/ingest.h"
#include "bayeswatch/obs.h"
#include "bayeswatch/registry.h"
#include "bayeswatch/timefmt.h"
#include "kafka_conf.h"

#define MAX_TASKS 4096
#define QUEUE_CAP 4096 /* records queued per worker */
#define BATCH 64       /* records a worker takes per lock */

/* One input partition: its models and its offsets. */
#define OUT_ALERTS 3
#define OUT_TOPICS 4

typedef struct {
    char topic[BW_TOPIC_MAX];
    int32_t partition;
    int worker; /* the worker that processes it */
    bw_engine_t *eng;
    int64_t next;         /* offset after the last record processed */
    int64_t committed;    /* `next` at the last commit; -1 none yet */
    int64_t txn_first;    /* first offset in the open transaction; -1 */
    int64_t mark;         /* the engine's watermark (event time) */
    int64_t wall_at_mark; /* wall clock when it last moved */
    bool restore_failed;  /* its state is not the changelog's: not written */
    int64_t state_offset; /* input offset its restored state reflects; -1 */
    int64_t txn_first_ts; /* Kafka timestamp of its first record in txn */
    int64_t flushed_at;   /* wall ms of its last state flush; -1 never */
    bool force_flush;     /* a wall-clock decision changed it: flush */
    bool txn_touched; /* state records or stale markers in the open
                         transaction (an abort rewinds its state too) */
    _Atomic uint64_t consumed; /* records processed (metrics) */
    /* its engine's retirement counts (series, pooled groups, fusion
     * entities) already in the pipeline's retired_total */
    uint64_t retired_seen[3];
    /* waiting for a writer schema the registry cannot give now: the
     * worker sets waiting_at (the record's offset), then wait_state
     * WAIT_ASKED; the main thread pauses and seeks the partition
     * (WAIT_PAUSED) and resumes it at wait_until; records of a waiting
     * task are dropped unprocessed (they come again) */
    _Atomic int wait_state;
    int64_t waiting_at;
    int64_t wait_until; /* wall ms */
} task_t;

enum { WAIT_NONE, WAIT_ASKED, WAIT_PAUSED };

#define N_DLQ (BW_DLQ_TIME_SKEW + 1)

/** The input offset @p t's state reflects (records processed or restored). */
static inline int64_t bw__state_offset(const task_t *t)
{
    return t->next > t->state_offset ? t->next : t->state_offset;
}

typedef struct {
    rd_kafka_message_t *m;
    task_t *t;
} item_t;

typedef struct bw_worker_s {
    bw_pipeline_t *p;
    /* per-worker codecs and buffer: nothing shared on the record path */
    bw_codec_t *codec;
    bw_encoder_t *enc[3]; /* score, threat, dead letter */
    bw_wbuf_t buf;
    const rd_kafka_message_t *cur; /* for the threat callback */
    bw_err_t cb_err;
    _Atomic uint64_t consumed, scored, threats, siem_alerts, stale,
        dead_letters, late;
    /* metrics (metrics.c): counted here, summed into each page */
    _Atomic uint64_t dlq[N_DLQ], rule_threats[BW_RULES_MAX];
    _Atomic uint64_t alerts, resampled, warmup;
    bw_hist_t proc; /* seconds to decode, score and produce a record */
    bw_hist_t ess;  /* ESS / particles of series scores */
    bw_hist_t pit;  /* predictive tail probability of series scores */
    double ess_min; /* since the last page (read while quiesced) */
    /* the thread and its queue (pipeline.threads > 1) */
    pthread_t thread;
    bool running, quit, busy;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    item_t q[QUEUE_CAP];
    int head, count;
} bw_worker_t;

#define FLUSH_TIMEOUT_MS                                                       \
    10000 /* outputs acknowledged, at a commit or close                        \
           */

/* An output of the open transaction, kept for an abort (resend.c): its
 * source topic's name, key and value lie in rs_bytes from src_off. */
typedef struct {
    int out;                  /* its output topic: p->out[out] (a renewed
                                 producer has new handles) */
    bool has_key;             /* a NULL key stays NULL */
    rd_kafka_headers_t *hdrs; /* a copy, or NULL */
    int32_t src_part;
    size_t src_off, src_len, key_len, val_len;
} rs_msg_t;

struct bw_pipeline_s {
    const bw_config_t *cfg;
    bw_pipeline_opts_t opts;
    rd_kafka_t *consumer, *producer;
    bw_registry_t *registry; /* NULL without registry.url */
    int32_t schema_ids[3];   /* written on scores, threats, dead letters */
    _Atomic uint64_t schema_waits; /* records that waited for the registry */
    /* scores, threats, dead letters (bw_record_kind_t), then the SIEM
     * alerts (OUT_ALERTS; NULL without emit.alerts.topic): made once */
    rd_kafka_topic_t *out[OUT_TOPICS];
    bool eos, txn_open, closed, subscribed;
    bool offsets_sent; /* the open transaction has its offsets */
    int64_t last_commit, last_scan, last_stats;
    uint64_t stats_consumed; /* records at the last progress line */
    task_t *tasks[MAX_TASKS];
    int n_tasks;
    task_t *last; /* the task of the previous record */
    const rd_kafka_topic_t *last_rkt;
    int n_workers;
    bw_worker_t *workers;
    char version[20];
    char instance[BW_NAME_MAX];
    uint64_t commits, aborts, rebalances;
    /* series, pooled groups and fusion entities retired by every engine
     * this instance has held (metrics: counters that a partition leaving
     * does not take down) */
    uint64_t retired_total[3];
    uint64_t renewals;              /* producers replaced (self-fenced) */
    uint64_t commits_at_renewal;    /* `commits` at the last renewal */
    _Atomic int64_t txn_begun_ms;   /* bw_boot_ms; -1 no transaction */
    int64_t txn_timeout_ms;         /* the producer's transaction.timeout.ms */
    _Atomic uint64_t delivery_failures;
    /* failures, from any thread */
    pthread_mutex_t mu;
    atomic_bool failed;        /* fatal: fatal[] says why */
    atomic_bool abort_pending; /* the open transaction must abort */
    char abort_why[256];
    char fatal[1024];
    char fatal_hint[768]; /* a fatal consumer error, explained */
    char tls_why[384];    /* the last certificate rejected, in words (mu) */
    /* the state changelog (changelog.c) */
    bool changelog;
    char cl_topic[BW_TOPIC_MAX];
    rd_kafka_topic_t *cl_rkt;
    rd_kafka_t *restorer; /* read_committed, assigned one partition at a time */
    uint64_t cl_records, cl_bytes; /* changelog records and bytes produced */
    uint64_t restores;
    int64_t restore_ms;
    uint64_t replayed; /* input records replayed by restores */
    _Atomic uint64_t skipped; /* records a restored state had learned */
    bool flush_all;    /* the next commit flushes every partition's state */
    /* without a changelog: the open transaction's outputs (resend.c) */
    bool resend; /* exactly_once without a changelog: they are kept */
    pthread_mutex_t rs_mu;
    rs_msg_t *rs;
    size_t rs_n, rs_cap;
    bw_wbuf_t rs_bytes;
    /* observability (metrics.c) */
    bw_obs_t *obs;            /* borrowed from opts; NULL = none */
    bw_wbuf_t page;           /* the metrics page, rebuilt in place */
    int64_t last_page;        /* monotonic ms */
    bw_hist_t commit_hist;    /* seconds per commit */
    bw_hist_t e2c_hist;       /* record's Kafka timestamp to its commit */
    bw_kstats_t *kstats;      /* consumer lag, rtt (under mu) */
    bw_kstats_t *kstats_prod; /* the producer's (under mu) */
    int64_t health_window_ms; /* half of max.poll.interval.ms */
    int ready_state;          /* last published readiness; -1 none */
    char txn_state[32];       /* the producer's, from its statistics */
    char *stats_json;         /* a terminated copy of a statistics doc */
    size_t stats_cap;
    int restore_pending;   /* partitions still to restore */
    uint64_t restore_read; /* changelog records read, this restore */
    bool producer_ready;   /* transactions initialised (or none) */
    bool joined;           /* the group has given this member an assignment
                              (possibly empty): until then not ready */
};

/* status.c */
/* The stage's log lines go to the one sink (obs.h): info, warnings and
 * errors; the level is checked before the arguments are formatted. */
#define bw__logx(p, level, part, ...)                                          \
    do {                                                                       \
        (void)(p);                                                             \
        BW_LOG((level), "pipeline", (part), __VA_ARGS__);                      \
    } while (0)
#define bw__log(p, ...) bw__logx(p, BW_LOG_INFO, -1, __VA_ARGS__)
#define bw__warn(p, ...) bw__logx(p, BW_LOG_WARN, -1, __VA_ARGS__)
bw_err_t bw__fatal(bw_pipeline_t *p, const char *what, const char *why);
void bw__request_abort(bw_pipeline_t *p, const char *why);
/** The producer's fatal error follows the open transaction outliving the
 * producer's transaction.timeout.ms (a stall of the stage or the broker):
 * the coordinator aborted it and bumped the epoch, so the producer was
 * fenced by itself, not by another instance, and a new one heals it
 * (bw__renew_producer). Any thread. */
bool bw__self_fenced(bw_pipeline_t *p);
/** Whether produce error @p e can never succeed for this record (too
 * large for the topic or the client, no such topic, an invalid record):
 * an abort and replay would fail the same way without end. @p why gets
 * the reason (status.c). */
bool bw__never_produced(rd_kafka_resp_err_t e, const char *topic, char *why,
                        size_t n);
/** A failed produce: abortable (the transaction is replayed) unless the
 * producer has a fatal error that is not self-fenced, or there is no
 * transaction. */
bw_err_t bw__produce_failed(bw_pipeline_t *p, rd_kafka_resp_err_t e,
                            const char *topic);
/** Produce one message (copied; @p hdrs taken, also on failure) to
 * @p partition (RD_KAFKA_PARTITION_UA: the partitioner's), waiting out a
 * full queue; a failure is bw__produce_failed's. */
bw_err_t bw__producev(bw_pipeline_t *p, rd_kafka_topic_t *rkt,
                      int32_t partition, const void *key, size_t klen,
                      const void *val, size_t vlen, rd_kafka_headers_t *hdrs);

/* pipeline.c (main thread; the stream threads quiesced) */
/** Replace a self-fenced producer (bw__self_fenced) by a new one under the
 * same transactional.id (its initialisation aborts the old transaction at
 * the coordinator), as Kafka Streams does for a fenced task producer; the
 * open transaction is gone and its records are not delivered.
 * @returns BW_OK, or the fatal error. */
bw_err_t bw__renew_producer(bw_pipeline_t *p);

/* checkpoint.c (main thread) */
/** Write @p t's state to state.dir (clean stop, partition given up). */
void bw__checkpoint_write(bw_pipeline_t *p, task_t *t);
/** Load @p t's local checkpoint into its (fresh) engine if it can be
 * trusted; @p from is then the changelog offset to read on from.
 * @returns BW_OK, or BW_ERR_NOTFOUND / BW_ERR_CORRUPT (not used; logged). */
bw_err_t bw__checkpoint_load(bw_pipeline_t *p, task_t *t, int64_t *from,
                             bw_restore_stats_t *rs);

/* resend.c: keep is called by the stream threads, the rest by the main
 * thread with them quiesced */
void bw__resend_init(bw_pipeline_t *p);
void bw__resend_free(bw_pipeline_t *p);
/** Keep a copy of an output of the open transaction (exactly_once
 * without a changelog); @p src_topic / @p src_part: its input partition. */
bw_err_t bw__resend_keep(bw_pipeline_t *p, rd_kafka_topic_t *rkt,
                         const void *key, size_t klen, const void *val,
                         size_t vlen, const rd_kafka_headers_t *hdrs,
                         const char *src_topic, int32_t src_part);
/** A commit: nothing kept. */
void bw__resend_clear(bw_pipeline_t *p);
/** A lost partition's outputs are not produced again. */
void bw__resend_forget(bw_pipeline_t *p, const char *topic, int32_t part);
/** After an abort: begin a transaction and produce every kept output
 * again, in order (a failure that asks for another abort is not fatal:
 * they are kept for it). */
bw_err_t bw__resend(bw_pipeline_t *p);

/* changelog.c (main thread; the stream threads quiesced) */
/** Check or create the changelog topic; the restore consumer. No-op when
 * state.changelog is off. */
bw_err_t bw__changelog_open(bw_pipeline_t *p, const char *bootstrap,
                            char *errstr, size_t errstr_size);
void bw__changelog_close(bw_pipeline_t *p);
/** Produce the changed keys of each partition whose flush is due
 * (state.flush_interval_ms, a forced flush, p->flush_all), in the open
 * transaction. */
bw_err_t bw__changelog_write(bw_pipeline_t *p);
/** Whether some partition has changed state whose flush is due. */
bool bw__changelog_due(const bw_pipeline_t *p);
/** Restore @p t's fresh engine: checkpoint, then the changelog to its end,
 * then the input from the state's offset up to @p upto (the committed
 * input offset; -1 none) replayed without outputs. */
bw_err_t bw__restore(bw_pipeline_t *p, task_t *t, int64_t upto);

/* metrics.c (main thread) */
/** Whether a second has passed since the last metrics page. */
bool bw__metrics_due(const bw_pipeline_t *p);
/** Rebuild and publish the metrics page (stream threads quiesced by the
 * caller). No-op without an obs handle. */
void bw__metrics_publish(bw_pipeline_t *p);
/** Readiness for /readyz, and the heartbeat for /healthz. */
void bw__health(bw_pipeline_t *p);
/** librdkafka statistics callback (both clients). */
int bw__on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque);
void bw__metrics_init(bw_pipeline_t *p);
void bw__metrics_free(bw_pipeline_t *p);
/** Give @p t the engine @p eng (owned; NULL: none), freeing its old one,
 * whose retirements stay in the pipeline's totals (metrics). */
void bw__task_engine(bw_pipeline_t *p, task_t *t, bw_engine_t *eng);
/** Per-worker histograms. */
void bw__worker_metrics_init(bw_worker_t *w);

/* txn.c (main thread; the stream threads quiesced) */
/** Open a transaction if exactly_once and none is open. */
bw_err_t bw__begin_txn(bw_pipeline_t *p);
/** Commit the open transaction with the consumed offsets (exactly_once),
 * or the acknowledged outputs' offsets (at_least_once); a commit that
 * cannot complete aborts and rewinds. */
bw_err_t bw__commit(bw_pipeline_t *p);
/** Abort the open transaction and rewind each partition to its first
 * record in it. */
bw_err_t bw__abort_and_rewind(bw_pipeline_t *p, const char *why);
/** Abort and rewind for the reason a stream thread requested
 * (bw__request_abort). */
bw_err_t bw__abort_pending(bw_pipeline_t *p);
/** The producer's delivery report: counts failures (at_least_once). */
void bw__on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);

/* records.c */
bw_err_t bw__worker_init(bw_worker_t *w, bw_pipeline_t *p, char *errstr,
                         size_t errstr_size);
void bw__worker_free(bw_worker_t *w);
/** Whether @p t_ms lies outside pipeline.max_ahead_ms / max_behind_ms of
 * the wall clock @p now_ms; if so, why, in @p detail. */
bool bw__time_skew(const bw_pipeline_cfg_t *c, int64_t t_ms, int64_t now_ms,
                   char *detail, size_t n);
/** Decode, score and produce one record of task @p t; failures are
 * reported through bw__fatal / bw__request_abort. */
void bw__record(bw_worker_t *w, task_t *t, const rd_kafka_message_t *m);
/** Replay record @p m into @p t's engine as bw__record scored it, with
 * no output (a restore's tail; main thread, workers quiesced). */
void bw__replay_record(bw_worker_t *w, task_t *t, const rd_kafka_message_t *m);
/** Stale markers for the silent series of @p t at wall time @p now (main
 * thread, workers quiesced: it may open a transaction). */
void bw__stale_scan(bw_worker_t *w, task_t *t, int64_t now);

/* registry.c */
/** The registry client (registry.url set): output schemas registered,
 * their ids in p->schema_ids (else the configured ids). */
bw_err_t bw__registry_open(bw_pipeline_t *p, char *errstr, size_t errstr_size);
/** bw_schema_lookup_fn over p->registry (ctx: the pipeline). */
bw_err_t bw__registry_lookup(void *ctx, int32_t id, const char **json,
                             char *errstr, size_t errstr_size);
/** A worker: record @p m of @p t waits for its writer schema (why). */
void bw__schema_wait(bw_pipeline_t *p, task_t *t, const rd_kafka_message_t *m,
                     const char *why);
/** Main thread: pause and rewind the partitions that wait, resume those
 * whose wait is over (workers quiesced first). */
bw_err_t bw__schema_waits(bw_pipeline_t *p, int64_t now);

/* security.c */
/** Whether client error @p err (@p reason) is an authentication or
 * certificate failure, which retrying cannot heal; if so, the operator's
 * message in @p out. */
bool bw__security_failure(bw_pipeline_t *p, rd_kafka_t *rk, int err,
                          const char *reason, char *out, size_t n);
/** Whether @p err is an authorization failure; if so, a message naming
 * the operation @p op, the resource (@p topic for a topic) and the ACL
 * that is missing, in @p out. */
bool bw__denied(const bw_pipeline_t *p, rd_kafka_resp_err_t err, const char *op,
                const char *topic, char *out, size_t n);

/* workers.c */
bw_err_t bw__workers_start(bw_pipeline_t *p, char *errstr, size_t errstr_size);
void bw__workers_stop(bw_pipeline_t *p);
/** Hand record @p m (ownership passes) to its task's worker. */
void bw__dispatch(bw_pipeline_t *p, task_t *t, rd_kafka_message_t *m);
/** Wait until every queued record has been processed. */
void bw__quiesce(bw_pipeline_t *p);

#endif
