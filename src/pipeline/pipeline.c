/*
 * The Kafka stage (see include/bayeswatch/pipeline.h for the contract).
 *
 * exactly_once follows KIP-98/KIP-447 as librdkafka's
 * examples/transactions.c does: begin a transaction at the first record
 * after a commit; produce every output of a record inside it; at the
 * commit interval send the consumed offsets with the consumer's group
 * metadata and commit. An abortable error aborts the transaction and
 * rewinds each partition to the first record of the aborted transaction,
 * so its outputs are produced again in the next one. Rebalances are
 * cooperative (KIP-429): revoked partitions have their transaction
 * committed before they are given up; lost partitions abort it.
 */
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "bayeswatch/emit.h"
#include "bayeswatch/ingest.h"
#include "bayeswatch/schemas.h"
#include "bayeswatch/timefmt.h"
#include "kafka_conf.h"

#define TXN_TIMEOUT_MS 10000 /* one attempt of a transactional call */
#define TXN_ATTEMPTS 6       /* retriable failures before giving up */
#define FLUSH_TIMEOUT_MS 10000
#define MAX_TASKS 4096

/* One input partition: its models and its offsets. */
typedef struct {
    char topic[BW_TOPIC_MAX];
    int32_t partition;
    bw_engine_t *eng;
    int64_t next;         /* offset after the last record processed */
    int64_t committed;    /* `next` at the last commit; -1 none yet */
    int64_t txn_first;    /* first offset in the open transaction; -1 */
    int64_t mark;         /* the engine's watermark (event time) */
    int64_t wall_at_mark; /* wall clock when it last moved */
} task_t;

struct bw_pipeline_s {
    const bw_config_t *cfg;
    bw_pipeline_opts_t opts;
    FILE *log;
    rd_kafka_t *consumer, *producer;
    bool eos, txn_open, closed, subscribed;
    int64_t last_commit, last_scan;
    task_t *tasks[MAX_TASKS];
    int n_tasks;
    task_t *last; /* the task of the previous record */
    const rd_kafka_topic_t *last_rkt;
    bw_codec_t *codec;
    bw_encoder_t *enc[3]; /* score, threat, dead letter */
    bw_wbuf_t buf;
    char version[20];
    char instance[BW_NAME_MAX];
    bw_pipeline_stats_t st;
    /* the record being processed, for the threat callback */
    const rd_kafka_message_t *cur;
    bw_err_t cb_err;
    uint64_t delivery_failures;
    char abort_why[256]; /* non-empty: the open transaction must abort */
    char fatal[512];     /* non-empty once a fatal error happened */
};

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void logf_(bw_pipeline_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void logf_(bw_pipeline_t *p, const char *fmt, ...)
{
    va_list ap;

    fprintf(p->log, "bayeswatch[%s]: ", p->instance);
    va_start(ap, fmt);
    vfprintf(p->log, fmt, ap);
    va_end(ap);
    fputc('\n', p->log);
    fflush(p->log);
}

static bw_err_t set_fatal(bw_pipeline_t *p, const char *what, const char *why)
{
    if (p->fatal[0] == '\0') {
        snprintf(p->fatal, sizeof(p->fatal), "%s: %s", what, why);
        logf_(p, "fatal: %s", p->fatal);
    }
    return BW_ERR_KAFKA;
}

/* ---- tasks ---------------------------------------------------------------
 */

static task_t *find_task(bw_pipeline_t *p, const char *topic, int32_t part,
                         int *index)
{
    for (int i = 0; i < p->n_tasks; i++) {
        task_t *t = p->tasks[i];
        if (t->partition == part && strcmp(t->topic, topic) == 0) {
            if (index != NULL) {
                *index = i;
            }
            return t;
        }
    }
    return NULL;
}

static task_t *add_task(bw_pipeline_t *p, const char *topic, int32_t part)
{
    char errstr[256];
    task_t *t = find_task(p, topic, part, NULL);

    if (t != NULL) {
        return t;
    }
    if (p->n_tasks >= MAX_TASKS || (t = bw_calloc(1, sizeof(*t))) == NULL) {
        return NULL;
    }
    t->eng = bw_engine_new(p->cfg, errstr, sizeof(errstr));
    if (t->eng == NULL) {
        bw_free(t);
        return NULL;
    }
    snprintf(t->topic, sizeof(t->topic), "%s", topic);
    t->partition = part;
    t->next = t->committed = t->txn_first = t->mark = -1;
    p->tasks[p->n_tasks++] = t;
    return t;
}

static void drop_task(bw_pipeline_t *p, const char *topic, int32_t part)
{
    int i;
    task_t *t = find_task(p, topic, part, &i);

    if (t == NULL) {
        return;
    }
    if (p->last == t) {
        p->last = NULL;
    }
    bw_engine_destroy(t->eng);
    bw_free(t);
    p->tasks[i] = p->tasks[--p->n_tasks];
}

/* ---- producing -----------------------------------------------------------
 */

static bw_err_t produce(bw_pipeline_t *p, const char *topic, const void *key,
                        size_t klen, const void *val, size_t vlen,
                        rd_kafka_headers_t *hdrs)
{
    for (;;) {
        rd_kafka_resp_err_t e =
            rd_kafka_producev(p->producer, RD_KAFKA_V_TOPIC(topic),
                              RD_KAFKA_V_KEY((void *)key, klen),
                              RD_KAFKA_V_VALUE((void *)val, vlen),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            return BW_OK;
        }
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            char fatal[256];
            if (hdrs != NULL) {
                rd_kafka_headers_destroy(hdrs);
            }
            if (p->eos &&
                rd_kafka_fatal_error(p->producer, fatal, sizeof(fatal)) ==
                    RD_KAFKA_RESP_ERR_NO_ERROR) {
                /* the transaction is in an abortable state: abort it and
                 * replay its input (bw_pipeline_step) */
                snprintf(p->abort_why, sizeof(p->abort_why), "produce: %s",
                         rd_kafka_err2str(e));
                return BW_ERR_KAFKA;
            }
            return set_fatal(p, "produce", rd_kafka_err2str(e));
        }
        rd_kafka_poll(p->producer, 10); /* serve delivery reports */
    }
}

static bw_origin_t origin_of(const bw_pipeline_t *p,
                             const rd_kafka_message_t *m, int64_t event_time)
{
    int64_t ts = m != NULL ? rd_kafka_message_timestamp(m, NULL) : -1;
    bw_origin_t o = {
        .source_timestamp = ts >= 0 ? ts : event_time,
        .processed_at = wall_ms(),
        .stale = false,
        .config_version = p->version,
        .source_topic = m != NULL ? rd_kafka_topic_name(m->rkt) : "",
        .source_partition = m != NULL ? m->partition : -1,
        .source_offset = m != NULL ? m->offset : -1,
    };
    return o;
}

static bw_err_t emit_score(bw_pipeline_t *p, const bw_event_t *ev,
                           const bw_score_t *sc, const bw_origin_t *o)
{
    const bw_output_cfg_t *out = &p->cfg->emit.scores;
    char key[800];
    bw_err_t err;

    snprintf(key, sizeof(key), "%s/%s/%s", ev->region, ev->service, ev->metric);
    p->buf.len = 0;
    err = out->format == BW_FORMAT_JSON
              ? bw_json_score(ev, sc, o, &p->buf)
              : bw_encode_score(p->enc[0], ev, sc, o, &p->buf);
    if (err != BW_OK) {
        return set_fatal(p, "encode score", bw_strerror(err));
    }
    return produce(p, out->topic, key, strlen(key), p->buf.data, p->buf.len,
                   NULL);
}

static void on_threat(void *opaque, const bw_threat_rec_t *t)
{
    bw_pipeline_t *p = opaque;
    const bw_output_cfg_t *out = &p->cfg->emit.threats;
    int entity = p->cfg->model.fusion.entity;
    bw_origin_t o = origin_of(p, p->cur, t->time_ms);
    bw_err_t err;

    p->buf.len = 0;
    err = out->format == BW_FORMAT_JSON
              ? bw_json_threat(t, entity, &o, &p->buf)
              : bw_encode_threat(p->enc[1], t, entity, &o, &p->buf);
    if (err == BW_OK) {
        err = produce(p, out->topic, t->entity, strlen(t->entity), p->buf.data,
                      p->buf.len, NULL);
    } else {
        err = set_fatal(p, "encode threat", bw_strerror(err));
    }
    if (err == BW_OK) {
        p->st.threats++;
        if (p->opts.observer.threat != NULL) {
            p->opts.observer.threat(p->opts.observer.opaque, t);
        }
    } else {
        p->cb_err = err;
    }
}

/* The dead letter carries the original bytes; headers repeat the reason
 * and the coordinates for readers that do not decode Avro (kcat -J). */
static bw_err_t dead_letter(bw_pipeline_t *p, const rd_kafka_message_t *m,
                            int reason, const char *detail)
{
    const bw_output_cfg_t *out = &p->cfg->emit.dead_letters;
    bw_dead_letter_t d = {.reason = reason,
                          .detail = detail,
                          .key = m->key,
                          .key_len = m->key_len,
                          .value = m->payload,
                          .value_len = m->len};
    bw_origin_t o = origin_of(p, m, 0);
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    char num[32];
    bw_err_t err;

    p->buf.len = 0;
    err = out->format == BW_FORMAT_JSON
              ? bw_json_dead_letter(&d, &o, &p->buf)
              : bw_encode_dead_letter(p->enc[2], &d, &o, &p->buf);
    if (err != BW_OK) {
        rd_kafka_headers_destroy(h);
        return set_fatal(p, "encode dead letter", bw_strerror(err));
    }
    rd_kafka_header_add(h, "bw.reason", -1, bw_dlq_reason_name(reason), -1);
    rd_kafka_header_add(h, "bw.source.topic", -1, o.source_topic, -1);
    snprintf(num, sizeof(num), "%d", (int)m->partition);
    rd_kafka_header_add(h, "bw.source.partition", -1, num, -1);
    snprintf(num, sizeof(num), "%lld", (long long)m->offset);
    rd_kafka_header_add(h, "bw.source.offset", -1, num, -1);
    p->st.dead_letters++;
    p->st.late += reason == BW_DLQ_LATE;
    return produce(p, out->topic, m->key, m->key_len, p->buf.data, p->buf.len,
                   h);
}

/* ---- transactions and commits ----------------------------------------------
 */

static bool is_fatal_error(bw_pipeline_t *p, rd_kafka_error_t *e,
                           const char *what)
{
    if (!rd_kafka_error_is_fatal(e)) {
        return false;
    }
    set_fatal(p, what, rd_kafka_error_string(e));
    return true;
}

static bw_err_t begin_txn(bw_pipeline_t *p)
{
    rd_kafka_error_t *e;

    if (!p->eos || p->txn_open) {
        return BW_OK;
    }
    e = rd_kafka_begin_transaction(p->producer);
    if (e != NULL) {
        set_fatal(p, "begin transaction", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return BW_ERR_KAFKA;
    }
    p->txn_open = true;
    return BW_OK;
}

/* Offsets to commit: every task that moved since its last commit. */
static rd_kafka_topic_partition_list_t *pending_offsets(bw_pipeline_t *p)
{
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(p->n_tasks > 0 ? p->n_tasks : 1);

    for (int i = 0; i < p->n_tasks; i++) {
        task_t *t = p->tasks[i];
        if (t->next > t->committed) {
            rd_kafka_topic_partition_list_add(l, t->topic, t->partition)
                ->offset = t->next;
        }
    }
    return l;
}

static void mark_committed(bw_pipeline_t *p)
{
    for (int i = 0; i < p->n_tasks; i++) {
        p->tasks[i]->committed = p->tasks[i]->next;
        p->tasks[i]->txn_first = -1;
    }
    p->st.commits++;
}

/* Abort, then seek every partition back to the first record of the
 * aborted transaction: its outputs will be produced again. */
static bw_err_t abort_and_rewind(bw_pipeline_t *p, const char *why)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_error_t *e;
    bw_err_t err = BW_OK;

    logf_(p, "aborting the open transaction: %s", why);
    for (int attempt = 0;; attempt++) {
        e = rd_kafka_abort_transaction(p->producer, TXN_TIMEOUT_MS);
        if (e == NULL || is_fatal_error(p, e, "abort transaction") ||
            !rd_kafka_error_is_retriable(e) || attempt + 1 >= TXN_ATTEMPTS) {
            break;
        }
        rd_kafka_error_destroy(e);
    }
    if (e != NULL) {
        err = set_fatal(p, "abort transaction", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    p->txn_open = false;
    p->st.aborts++;
    for (int i = 0; i < p->n_tasks; i++) {
        task_t *t = p->tasks[i];
        if (t->txn_first >= 0) {
            rd_kafka_topic_partition_list_add(l, t->topic, t->partition)
                ->offset = t->txn_first;
            t->next = t->txn_first;
            t->txn_first = -1;
        }
    }
    if (err == BW_OK && l->cnt > 0) {
        e = rd_kafka_seek_partitions(p->consumer, l, TXN_TIMEOUT_MS);
        if (e != NULL) {
            err = set_fatal(p, "rewind after abort", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    return err;
}

/* One attempt: offsets into the transaction, then commit. */
static rd_kafka_error_t *try_commit_txn(bw_pipeline_t *p)
{
    rd_kafka_topic_partition_list_t *l = pending_offsets(p);
    rd_kafka_error_t *e = NULL;

    if (l->cnt > 0) {
        rd_kafka_consumer_group_metadata_t *md =
            rd_kafka_consumer_group_metadata(p->consumer);
        e = rd_kafka_send_offsets_to_transaction(p->producer, l, md,
                                                 TXN_TIMEOUT_MS);
        rd_kafka_consumer_group_metadata_destroy(md);
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (e == NULL) {
        e = rd_kafka_commit_transaction(p->producer, TXN_TIMEOUT_MS);
    }
    return e;
}

static bw_err_t commit_txn(bw_pipeline_t *p)
{
    rd_kafka_error_t *e = NULL;
    char why[512];

    if (!p->txn_open) {
        return BW_OK;
    }
    for (int attempt = 0; attempt < TXN_ATTEMPTS; attempt++) {
        e = try_commit_txn(p);
        if (e == NULL) {
            p->txn_open = false;
            mark_committed(p);
            return BW_OK;
        }
        if (is_fatal_error(p, e, "commit transaction")) {
            rd_kafka_error_destroy(e);
            return BW_ERR_KAFKA;
        }
        if (!rd_kafka_error_is_retriable(e)) {
            break;
        }
        logf_(p, "commit: %s (retrying)", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        e = NULL;
    }
    snprintf(why, sizeof(why), "%s",
             e != NULL ? rd_kafka_error_string(e) : "commit timed out");
    if (e != NULL) {
        rd_kafka_error_destroy(e);
    }
    return abort_and_rewind(p, why);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
    bw_pipeline_t *p = opaque;

    (void)rk;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (p->delivery_failures++ == 0) {
            logf_(p, "delivery to %s failed: %s", rd_kafka_topic_name(m->rkt),
                  rd_kafka_err2str(m->err));
        }
    }
}

/* at_least_once: every output acknowledged, then the offsets. */
static bw_err_t commit_alo(bw_pipeline_t *p)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_resp_err_t e;

    if (rd_kafka_flush(p->producer, FLUSH_TIMEOUT_MS) != 0) {
        logf_(p, "outputs not yet acknowledged; offsets not committed");
        return BW_OK;
    }
    if (p->delivery_failures > 0) {
        return set_fatal(p, "delivery",
                         "output records could not be delivered; their "
                         "input offsets are not committed and will be "
                         "reprocessed on restart");
    }
    l = pending_offsets(p);
    e = l->cnt > 0 ? rd_kafka_commit(p->consumer, l, 0)
                   : RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_destroy(l);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        logf_(p, "offset commit: %s (retrying later)", rd_kafka_err2str(e));
        return BW_OK;
    }
    mark_committed(p);
    return BW_OK;
}

static bw_err_t commit(bw_pipeline_t *p)
{
    p->last_commit = wall_ms();
    return p->eos ? commit_txn(p) : commit_alo(p);
}

/* ---- rebalancing ---------------------------------------------------------
 */

static void assign(bw_pipeline_t *p, rd_kafka_topic_partition_list_t *parts,
                   bool cooperative)
{
    rd_kafka_error_t *e = NULL;
    rd_kafka_resp_err_t re = RD_KAFKA_RESP_ERR_NO_ERROR;

    for (int i = 0; i < parts->cnt; i++) {
        if (add_task(p, parts->elems[i].topic, parts->elems[i].partition) ==
            NULL) {
            set_fatal(p, "assign", "out of memory for a partition's models");
        }
    }
    if (cooperative) {
        e = rd_kafka_incremental_assign(p->consumer, parts);
    } else {
        re = rd_kafka_assign(p->consumer, parts);
    }
    if (e != NULL) {
        set_fatal(p, "incremental assign", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    } else if (re != RD_KAFKA_RESP_ERR_NO_ERROR) {
        set_fatal(p, "assign", rd_kafka_err2str(re));
    }
}

static void revoke(bw_pipeline_t *p, rd_kafka_topic_partition_list_t *parts,
                   bool cooperative)
{
    rd_kafka_error_t *e = NULL;

    if (rd_kafka_assignment_lost(p->consumer)) {
        if (p->txn_open) {
            abort_and_rewind(p, "partitions lost");
        }
    } else {
        commit(p); /* a failure has aborted and rewound: nothing is lost */
    }
    for (int i = 0; i < parts->cnt; i++) {
        drop_task(p, parts->elems[i].topic, parts->elems[i].partition);
    }
    if (cooperative) {
        e = rd_kafka_incremental_unassign(p->consumer, parts);
    } else {
        rd_kafka_assign(p->consumer, NULL);
    }
    if (e != NULL) {
        logf_(p, "unassign: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    bw_pipeline_t *p = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;

    p->st.rebalances++;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        assign(p, parts, coop);
    } else {
        revoke(p, parts, coop);
    }
    p->st.partitions = p->n_tasks;
    logf_(p, "%s %d partition(s); %d assigned",
          err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? "assigned" : "revoked",
          parts->cnt, p->n_tasks);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    bw_pipeline_t *p = opaque;
    char buf[512];

    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_fatal_error(rk, buf, sizeof(buf));
        set_fatal(p, rd_kafka_name(rk), buf);
        return;
    }
    /* transient (broker down, timeouts): librdkafka retries with backoff */
    logf_(p, "%s: %s (retrying)", rd_kafka_err2name(err), reason);
}

/* ---- records ---------------------------------------------------------------
 */

static int engine_reason(bw_err_t err, const bw_event_t *ev)
{
    if (err == BW_ERR_LATE) {
        return BW_DLQ_LATE;
    }
    if (!bw_time_valid(ev->time_ms)) {
        return BW_DLQ_BAD_TIMESTAMP;
    }
    return isfinite(ev->value) ? BW_DLQ_REJECTED : BW_DLQ_NON_FINITE;
}

static void track(bw_pipeline_t *p, task_t *t, const rd_kafka_message_t *m)
{
    int64_t mark = bw_engine_watermark(t->eng);

    t->next = m->offset + 1;
    if (mark != t->mark) {
        t->mark = mark;
        t->wall_at_mark = wall_ms();
    }
    p->st.consumed++;
}

static bw_err_t score(bw_pipeline_t *p, task_t *t, const rd_kafka_message_t *m)
{
    bw_event_t ev;
    bw_score_t sc;
    bw_dlq_reason_t reason;
    char detail[256];
    bw_err_t err;

    err = bw_codec_decode(p->codec, m->payload, m->len, &ev, &reason, detail,
                          sizeof(detail));
    if (err != BW_OK) {
        return dead_letter(p, m, reason, detail);
    }
    p->cur = m;
    p->cb_err = BW_OK;
    err = bw_engine_process(t->eng, &ev, &sc, on_threat, p, detail,
                            sizeof(detail));
    p->cur = NULL;
    if (p->cb_err != BW_OK) {
        return p->cb_err;
    }
    if (err != BW_OK) {
        return dead_letter(p, m, engine_reason(err, &ev), detail);
    }
    bw_origin_t o = origin_of(p, m, ev.time_ms);
    err = emit_score(p, &ev, &sc, &o);
    if (err == BW_OK) {
        p->st.scored++;
        if (p->opts.observer.score != NULL) {
            p->opts.observer.score(p->opts.observer.opaque, &ev, &sc);
        }
    }
    return err;
}

static bool consumer_error_fatal(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR__FATAL ||
           e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
           e == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED ||
           e == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED;
}

static bw_err_t on_message(bw_pipeline_t *p, const rd_kafka_message_t *m)
{
    task_t *t;
    bw_err_t err;

    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (consumer_error_fatal(m->err)) {
            return set_fatal(p, "consume", rd_kafka_message_errstr(m));
        }
        logf_(p, "consume: %s", rd_kafka_message_errstr(m));
        return BW_OK;
    }
    t = p->last != NULL && p->last_rkt == m->rkt &&
                p->last->partition == m->partition
            ? p->last
            : find_task(p, rd_kafka_topic_name(m->rkt), m->partition, NULL);
    if (t == NULL) {
        t = add_task(p, rd_kafka_topic_name(m->rkt), m->partition);
        if (t == NULL) {
            return set_fatal(p, "consume", "out of memory for models");
        }
    }
    p->last = t;
    p->last_rkt = m->rkt;
    err = begin_txn(p);
    if (err == BW_OK) {
        if (t->txn_first < 0) {
            t->txn_first = m->offset; /* an abort rewinds to here */
        }
        err = score(p, t, m);
    }
    if (err == BW_OK) {
        track(p, t, m);
    }
    return err;
}

/* ---- stale series ----------------------------------------------------------
 */

typedef struct {
    bw_pipeline_t *p;
    task_t *t;
} stale_ctx_t;

static void on_stale(void *opaque, const bw_stale_t *s)
{
    stale_ctx_t *c = opaque;
    bw_pipeline_t *p = c->p;
    bw_event_t ev = {.time_ms = s->last_event_ms,
                     .region = s->region,
                     .service = s->service,
                     .metric = s->metric,
                     .value = NAN,
                     .count = NAN};
    bw_score_t sc;
    bw_origin_t o = origin_of(p, NULL, s->last_event_ms);

    o.stale = true;
    o.source_topic = c->t->topic;
    o.source_partition = c->t->partition;
    bw_stale_score(&sc, BW_MODEL_SERIES);
    if (begin_txn(p) == BW_OK && emit_score(p, &ev, &sc, &o) == BW_OK) {
        p->st.stale++;
    }
}

/* Stream time of a task: its watermark, advanced by the wall-clock time
 * since it last moved (a silent input still ages its series). */
static void scan_stale(bw_pipeline_t *p, int64_t now)
{
    for (int i = 0; i < p->n_tasks; i++) {
        task_t *t = p->tasks[i];
        stale_ctx_t c = {p, t};
        if (t->mark >= 0) {
            bw_engine_stale_scan(t->eng, t->mark + (now - t->wall_at_mark),
                                 on_stale, &c);
        }
    }
    p->last_scan = now;
}

/* ---- life cycle ------------------------------------------------------------
 */

static bw_err_t make_codecs(bw_pipeline_t *p, char *errstr, size_t n)
{
    const bw_emit_cfg_t *em = &p->cfg->emit;
    const bw_output_cfg_t *outs[3] = {&em->scores, &em->threats,
                                      &em->dead_letters};
    const char *schemas[3] = {bw_schema_anomaly_score, bw_schema_threat_score,
                              bw_schema_dead_letter};
    const size_t lens[3] = {bw_schema_anomaly_score_len,
                            bw_schema_threat_score_len,
                            bw_schema_dead_letter_len};

    p->codec = bw_codec_new(bw_schema_metric_event, bw_schema_metric_event_len,
                            p->cfg->ingest.format == BW_FORMAT_AVRO
                                ? BW_FRAMING_CONFLUENT
                                : BW_FRAMING_PLAIN,
                            (int32_t)p->cfg->ingest.schema_id, errstr, n);
    if (p->codec == NULL) {
        return BW_ERR_CONFIG;
    }
    for (int i = 0; i < 3; i++) {
        p->enc[i] = bw_encoder_new((bw_record_kind_t)i, schemas[i], lens[i],
                                   outs[i]->format == BW_FORMAT_AVRO
                                       ? BW_FRAMING_CONFLUENT
                                       : BW_FRAMING_PLAIN,
                                   (int32_t)outs[i]->schema_id, errstr, n);
        if (p->enc[i] == NULL) {
            return BW_ERR_CONFIG;
        }
    }
    return BW_OK;
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
    bw_pipeline_t *p = rd_kafka_opaque(rk);

    (void)level;
    if (p != NULL) {
        logf_(p, "%s: %s: %s", rd_kafka_name(rk), fac, buf);
    }
}

static rd_kafka_t *client(bw_pipeline_t *p, bw_kafka_role_t role, char *errstr,
                          size_t n)
{
    const char *boot = p->opts.bootstrap_servers != NULL
                           ? p->opts.bootstrap_servers
                           : p->cfg->kafka.bootstrap_servers;
    rd_kafka_conf_t *c =
        bw__kafka_conf(p->cfg, role, boot, p->instance, NULL, errstr, n);
    rd_kafka_t *rk;

    if (c == NULL) {
        return NULL;
    }
    rd_kafka_conf_set_opaque(c, p);
    rd_kafka_conf_set_error_cb(c, on_error);
    rd_kafka_conf_set_log_cb(c, on_log);
    if (role == BW_KAFKA_CONSUMER) {
        rd_kafka_conf_set_rebalance_cb(c, on_rebalance);
    } else {
        rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
    }
    rk = rd_kafka_new(role == BW_KAFKA_CONSUMER ? RD_KAFKA_CONSUMER
                                                : RD_KAFKA_PRODUCER,
                      c, errstr, n);
    if (rk == NULL) {
        rd_kafka_conf_destroy(c);
    }
    return rk;
}

static bw_err_t subscribe(bw_pipeline_t *p, char *errstr, size_t n)
{
    const bw_ingest_cfg_t *in = &p->cfg->ingest;
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(in->n_topics);
    rd_kafka_resp_err_t e;

    for (int i = 0; i < in->n_topics; i++) {
        rd_kafka_topic_partition_list_add(l, in->topics[i],
                                          RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_poll_set_consumer(p->consumer);
    e = rd_kafka_subscribe(p->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(errstr, n, "subscribe: %s", rd_kafka_err2str(e));
        return BW_ERR_KAFKA;
    }
    p->subscribed = true;
    return BW_OK;
}

static bw_err_t init_txns(bw_pipeline_t *p, char *errstr, size_t n)
{
    rd_kafka_error_t *e;

    if (!p->eos) {
        return BW_OK;
    }
    e = rd_kafka_init_transactions(p->producer, 60000);
    if (e != NULL) {
        snprintf(errstr, n, "init transactions: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return BW_ERR_KAFKA;
    }
    return BW_OK;
}

bw_pipeline_t *bw_pipeline_new(const bw_config_t *cfg,
                               const bw_pipeline_opts_t *opts, char *errstr,
                               size_t n)
{
    bw_pipeline_t *p = bw_calloc(1, sizeof(*p));

    if (p == NULL) {
        snprintf(errstr, n, "pipeline: out of memory");
        return NULL;
    }
    p->cfg = cfg;
    if (opts != NULL) {
        p->opts = *opts;
    }
    p->log = p->opts.log != NULL ? p->opts.log : stderr;
    p->eos = cfg->pipeline.guarantee == BW_GUARANTEE_EXACTLY_ONCE;
    p->closed = true; /* nothing to close until the clients exist */
    snprintf(p->version, sizeof(p->version), "%016llx",
             (unsigned long long)cfg->hash);
    bw__kafka_instance(cfg, p->opts.instance_id, p->instance,
                       sizeof(p->instance));
    if (make_codecs(p, errstr, n) != BW_OK ||
        (p->producer = client(p, BW_KAFKA_PRODUCER, errstr, n)) == NULL ||
        init_txns(p, errstr, n) != BW_OK ||
        (p->consumer = client(p, BW_KAFKA_CONSUMER, errstr, n)) == NULL) {
        goto fail;
    }
    p->closed = false;
    if (subscribe(p, errstr, n) != BW_OK) {
        goto fail;
    }
    p->last_commit = p->last_scan = wall_ms();
    logf_(p, "started: %s, group %s, %d input topic(s)",
          p->eos ? "exactly_once" : "at_least_once", cfg->kafka.group_id,
          cfg->ingest.n_topics);
    return p;
fail:
    bw_pipeline_destroy(p);
    return NULL;
}

bw_err_t bw_pipeline_step(bw_pipeline_t *p, int timeout_ms, char *errstr,
                          size_t n)
{
    rd_kafka_message_t *m;
    bw_err_t err = BW_OK;
    int64_t now;

    if (p->fatal[0] == '\0') {
        m = rd_kafka_consumer_poll(p->consumer, timeout_ms);
        if (m != NULL) {
            err = on_message(p, m);
            rd_kafka_message_destroy(m);
        }
        if (p->abort_why[0] != '\0') {
            err = abort_and_rewind(p, p->abort_why);
            p->abort_why[0] = '\0';
        }
        rd_kafka_poll(p->producer, 0);
        now = wall_ms();
        if (err == BW_OK &&
            now - p->last_commit >= p->cfg->pipeline.commit_interval_ms) {
            err = commit(p);
        }
        if (err == BW_OK &&
            now - p->last_scan >= p->cfg->pipeline.stale_scan_ms) {
            scan_stale(p, now);
        }
    }
    if (p->fatal[0] != '\0') {
        snprintf(errstr, n, "%s", p->fatal);
        return BW_ERR_KAFKA;
    }
    return err;
}

bw_err_t bw_pipeline_run(bw_pipeline_t *p, volatile sig_atomic_t *stop,
                         char *errstr, size_t n)
{
    bw_err_t err = BW_OK;
    int timeout = (int)p->cfg->pipeline.poll_timeout_ms;

    while (err == BW_OK && !*stop) {
        err = bw_pipeline_step(p, timeout, errstr, n);
    }
    if (err != BW_OK) {
        return err;
    }
    logf_(p, "stopping: committing and leaving the group");
    return bw_pipeline_close(p, errstr, n);
}

bw_err_t bw_pipeline_close(bw_pipeline_t *p, char *errstr, size_t n)
{
    bw_err_t err = BW_OK;

    if (p == NULL || p->closed) {
        return BW_OK;
    }
    p->closed = true;
    if (p->fatal[0] == '\0') {
        commit(p);
    }
    if (p->consumer != NULL && p->subscribed) {
        rd_kafka_consumer_close(p->consumer); /* revokes: commits */
    }
    if (p->fatal[0] == '\0' && p->txn_open) {
        commit(p);
    }
    if (p->producer != NULL &&
        rd_kafka_flush(p->producer, FLUSH_TIMEOUT_MS) != 0) {
        set_fatal(p, "close", "outputs not acknowledged before the timeout");
    }
    if (p->fatal[0] != '\0') {
        snprintf(errstr, n, "%s", p->fatal);
        err = BW_ERR_KAFKA;
    }
    return err;
}

void bw_pipeline_stats(const bw_pipeline_t *p, bw_pipeline_stats_t *st)
{
    *st = p->st;
    st->partitions = p->n_tasks;
}

void bw_pipeline_destroy(bw_pipeline_t *p)
{
    char errstr[256];

    if (p == NULL) {
        return;
    }
    bw_pipeline_close(p, errstr, sizeof(errstr));
    if (p->consumer != NULL) {
        rd_kafka_destroy(p->consumer);
    }
    if (p->producer != NULL) {
        rd_kafka_destroy(p->producer);
    }
    while (p->n_tasks > 0) {
        drop_task(p, p->tasks[0]->topic, p->tasks[0]->partition);
    }
    bw_codec_destroy(p->codec);
    for (int i = 0; i < 3; i++) {
        bw_encoder_destroy(p->enc[i]);
    }
    bw_wbuf_free(&p->buf);
    bw_free(p);
}
