/*
 * The Kafka stage (see include/bayeswatch/pipeline.h for the contract).
 *
 * exactly_once follows KIP-98/KIP-447 as librdkafka's
 * examples/transactions.c does: begin a transaction at the first record
 * after a commit; produce every output of a record inside it; at the
 * commit interval send the consumed offsets with the consumer's group
 * metadata and commit. An abortable error aborts the transaction and
 * rewinds each partition to the first record of the aborted transaction,
 * so its outputs are produced again in the next one (without a state
 * changelog the kept outputs are produced again instead: resend.c).
 * Rebalances are cooperative (KIP-429): revoked partitions have their
 * transaction committed before they are given up; lost partitions abort
 * it. Records are scored inline or by stream threads (workers.c, records.c);
 * transactions and commits are txn.c's, logging and failure state
 * status.c's. The files depend downwards only: pipeline.c -> workers.c ->
 * records.c -> txn.c -> status.c.
 */
#include <string.h>
#include <time.h>

#include "pipeline_int.h"
#include "bayeswatch/mem.h"

#define INIT_TXN_S 60 /* longest wait for the transaction coordinator */

static bool failed(const bw_pipeline_t *p)
{
    return atomic_load(&((bw_pipeline_t *)p)->failed);
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

/* The worker with the fewest partitions: balances the threads. */
static int least_loaded(const bw_pipeline_t *p)
{
    int load[64] = {0}, best = 0;

    for (int i = 0; i < p->n_tasks; i++) {
        load[p->tasks[i]->worker]++;
    }
    for (int w = 1; w < p->n_workers && w < 64; w++) {
        best = load[w] < load[best] ? w : best;
    }
    return best;
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
    if (!p->changelog) {
        bw_engine_untracked(t->eng); /* nothing drains the change list */
    }
    snprintf(t->topic, sizeof(t->topic), "%s", topic);
    t->partition = part;
    t->worker = least_loaded(p);
    t->next = t->committed = t->txn_first = t->mark = t->state_offset = -1;
    t->flushed_at = -1;
    p->tasks[p->n_tasks++] = t;
    return t;
}

static void series_moved(void *opaque, const char *region,
                         const char *service, const char *metric)
{
    bw_obs_moved(opaque, region, service, metric);
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
    /* its series are another instance's from now: the web view and the
     * per-region gauges stop showing this one's last word on them (not
     * at a close: no one takes them over here, and the view, e.g. the
     * demo's, goes on showing the run's end) */
    if (p->obs != NULL && t->eng != NULL && !p->closed) {
        bw_engine_each_series(t->eng, series_moved, p->obs);
    }
    bw__task_engine(p, t, NULL);
    bw_free(t);
    p->tasks[i] = p->tasks[--p->n_tasks];
}

/* A commit that writes every partition's changed state (a clean stop, a
 * revocation): the changelog then needs no replay. */
static bw_err_t flush_commit(bw_pipeline_t *p)
{
    bw_err_t err;

    p->flush_all = true;
    err = bw__commit(p);
    p->flush_all = false;
    return err;
}

/* The metrics page, rebuilt when due (or now) with the workers quiesced. */
static void publish(bw_pipeline_t *p, bool force)
{
    if (p->obs != NULL && (force || bw__metrics_due(p))) {
        bw__quiesce(p);
        bw__metrics_publish(p);
    }
}

/* ---- rebalancing ---------------------------------------------------------
 */

static bool retry_committed(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_UNSTABLE_OFFSET_COMMIT ||
           e == RD_KAFKA_RESP_ERR__TIMED_OUT ||
           e == RD_KAFKA_RESP_ERR__TRANSPORT;
}

/* The committed offsets of @p parts, retried while they are not stable
 * yet (a previous owner's transaction still open: librdkafka gives up on
 * that after a few tries) or the coordinator cannot answer, until
 * state.restore_timeout_ms. */
static rd_kafka_resp_err_t committed(bw_pipeline_t *p,
                                     rd_kafka_topic_partition_list_t *parts)
{
    double deadline = bw_mono_s() + p->cfg->state.restore_timeout_ms / 1000.0;
    rd_kafka_resp_err_t re;

    for (;;) {
        for (int i = 0; i < parts->cnt; i++) {
            parts->elems[i].err = RD_KAFKA_RESP_ERR_NO_ERROR;
        }
        re = rd_kafka_committed(p->consumer, parts,
                                (int)p->cfg->state.restore_timeout_ms);
        for (int i = 0; re == RD_KAFKA_RESP_ERR_NO_ERROR && i < parts->cnt;
             i++) {
            re = parts->elems[i].err; /* the first partition's error */
        }
        if (!retry_committed(re) || bw_mono_s() >= deadline) {
            return re;
        }
        nanosleep(&(struct timespec){0, 500 * 1000 * 1000}, NULL);
        bw__health(p);
    }
}

/* A restored partition resumes at its committed offset @p from. A state
 * ahead of it (at_least_once: a crash after the state was written, before
 * the offsets; or offsets reset by hand) has learned from the records in
 * between, so they are skipped (bw__record), not scored a second time. */
static void resumed(bw_pipeline_t *p, const task_t *t, int64_t from)
{
    char committed[24] = "none";

    if (t->state_offset <= from || t->state_offset <= 0) {
        bw__log(p, "state: %s [%d] resumes at committed input offset %lld",
                t->topic, (int)t->partition, (long long)from);
        return;
    }
    if (from >= 0) {
        snprintf(committed, sizeof(committed), "%lld", (long long)from);
    }
    bw__logx(p, BW_LOG_WARN, t->partition,
             "state: %s [%d]: the state has learned from the input up to "
             "offset %lld, beyond the committed offset (%s; "
             "at_least_once: stopped after the state was written, before "
             "the offsets; or offsets reset by hand): skips the input "
             "records before offset %lld, whose outputs were delivered when "
             "they were scored (to score them again, start from a fresh "
             "state.topic)",
             t->topic, (int)t->partition, (long long)t->state_offset,
             committed, (long long)t->state_offset);
}

/* Restore the partitions new to this instance before any of their
 * records is scored. Their committed offsets are read first: a read_committed
 * consumer gets them only once they are stable (KIP-447), i.e. once a
 * previous owner's transaction has ended, so the changelog read next holds
 * every state that transaction committed. */
static void restore_new(bw_pipeline_t *p,
                        rd_kafka_topic_partition_list_t *fresh)
{
    rd_kafka_resp_err_t re;

    if (!p->changelog || fresh->cnt == 0) {
        return;
    }
    p->restore_pending = fresh->cnt;
    bw__health(p);
    re = committed(p, fresh);
    if (re != RD_KAFKA_RESP_ERR_NO_ERROR) {
        /* without them the restore cannot replay to where the input
         * resumes: the records in between would miss the models */
        bw__fatal(p, "state: committed offsets", rd_kafka_err2str(re));
        return;
    }
    bw__quiesce(p); /* a replay uses worker 0's codec */
    for (int i = 0; i < fresh->cnt && !failed(p); i++) {
        task_t *t = find_task(p, fresh->elems[i].topic,
                              fresh->elems[i].partition, NULL);
        if (bw__restore(p, t, fresh->elems[i].offset) == BW_OK) {
            resumed(p, t, fresh->elems[i].offset);
            /* the group's offset, or none: also when nothing was replayed
             * (a clean handoff's state is at it), so that a transaction
             * without input sends it and is fenced if the group has moved
             * on (txn.c); left at -1 until a record came, a quiet
             * partition's was not sent */
            if (t->next < 0 && fresh->elems[i].offset >= 0) {
                t->next = fresh->elems[i].offset;
            }
            t->committed = t->next;
        }
        p->restore_pending--;
        bw__health(p);
    }
    p->restore_pending = 0;
    bw__health(p);
    publish(p, true);
}

static void assign(bw_pipeline_t *p, rd_kafka_topic_partition_list_t *parts,
                   bool cooperative)
{
    rd_kafka_error_t *e = NULL;
    rd_kafka_resp_err_t re = RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_t *fresh =
        rd_kafka_topic_partition_list_new(parts->cnt > 0 ? parts->cnt : 1);

    for (int i = 0; i < parts->cnt; i++) {
        const char *topic = parts->elems[i].topic;
        int32_t part = parts->elems[i].partition;
        if (find_task(p, topic, part, NULL) == NULL) {
            rd_kafka_topic_partition_list_add(fresh, topic, part);
        }
        if (add_task(p, topic, part) == NULL) {
            bw__fatal(p, "assign", "out of memory for a partition's models");
        }
    }
    /* a partition paused for the registry and then lost keeps librdkafka's
     * application pause across its reassignment: resume it */
    if (fresh->cnt > 0) {
        rd_kafka_resume_partitions(p->consumer, fresh);
    }
    restore_new(p, fresh);
    rd_kafka_topic_partition_list_destroy(fresh);
    if (cooperative) {
        e = rd_kafka_incremental_assign(p->consumer, parts);
    } else {
        re = rd_kafka_assign(p->consumer, parts);
    }
    if (e != NULL) {
        bw__fatal(p, "incremental assign", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    } else if (re != RD_KAFKA_RESP_ERR_NO_ERROR) {
        bw__fatal(p, "assign", rd_kafka_err2str(re));
    }
}

/* The revoked partitions' kept outputs (resend.c) are not produced again
 * if the commit that gives them up aborts: their tasks are dropped, so
 * their offsets would not be in the next commit, and their new owner
 * scores the records again. */
static void forget_outputs(bw_pipeline_t *p,
                           const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        bw__resend_forget(p, parts->elems[i].topic, parts->elems[i].partition);
    }
}

static void checkpoint_parts(bw_pipeline_t *p,
                             const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        task_t *t = find_task(p, parts->elems[i].topic,
                              parts->elems[i].partition, NULL);
        if (t != NULL) {
            bw__checkpoint_write(p, t);
        }
    }
}

static void revoke(bw_pipeline_t *p, rd_kafka_topic_partition_list_t *parts,
                   bool cooperative)
{
    rd_kafka_error_t *e = NULL;

    bw__quiesce(p);
    forget_outputs(p, parts);
    if (failed(p)) {
        /* fatal (e.g. fenced): nothing can be committed or aborted; the
         * broker aborts the open transaction */
    } else if (rd_kafka_assignment_lost(p->consumer)) {
        /* the lost partitions' models are dropped below: no rewind (a
         * full changelog restore each) and no seek for them */
        for (int i = 0; i < parts->cnt; i++) {
            task_t *t = find_task(p, parts->elems[i].topic,
                                  parts->elems[i].partition, NULL);
            if (t != NULL) {
                t->txn_first = -1;
                t->txn_touched = false;
            }
        }
        if (p->txn_open) {
            bw__abort_and_rewind(p, "partitions lost");
        }
    } else if (flush_commit(p) == BW_OK) { /* a failure aborted, rewound */
        checkpoint_parts(p, parts);
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
        bw__warn(p, "unassign: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    bw_pipeline_t *p = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;

    p->rebalances++;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        p->joined = true; /* also with no partitions: the join is done */
        assign(p, parts, coop);
    } else {
        /* lost (session or poll interval expired): not ready until the
         * group has assigned again */
        p->joined = p->joined && !rd_kafka_assignment_lost(rk);
        revoke(p, parts, coop);
    }
    bw__log(p, "%s %d partition(s); %d assigned",
            err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? "assigned"
                                                        : "revoked",
            parts->cnt, p->n_tasks);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    bw_pipeline_t *p = opaque;
    char buf[512], why[1024];

    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_resp_err_t e = rd_kafka_fatal_error(rk, buf, sizeof(buf));
        bool denied = bw__denied(p, e, "Write", "?", why, sizeof(why));
        if (rk == p->producer && !denied && bw__self_fenced(p)) {
            bw__request_abort(p, buf); /* the abort renews the producer */
            return;
        }
        bw__fatal(p, rd_kafka_name(rk), denied ? why : buf);
        return;
    }
    if (bw__security_failure(p, rk, err, reason, buf, sizeof(buf))) {
        bw__fatal(p, "kafka security", buf);
        return;
    }
    /* transient (broker down, timeouts): librdkafka retries with backoff */
    bw__warn(p, "%s: %s (retrying)", rd_kafka_err2name(err), reason);
}

static bool consumer_error_fatal(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR__FATAL ||
           e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
           e == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED ||
           e == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED;
}

/* The consumer's fatal error, said for an operator. A static member is
 * fenced when another instance took its group.instance.id, or when its own
 * session expired while the coordinator was unreachable (librdkafka treats
 * both alike; issue #3437 upstream): either way a restart rejoins. */
static const char *fatal_reason(bw_pipeline_t *p, const rd_kafka_message_t *m)
{
    char why[256];

    if (m->err == RD_KAFKA_RESP_ERR__FATAL &&
        rd_kafka_fatal_error(p->consumer, why, sizeof(why)) ==
            RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID) {
        snprintf(p->fatal_hint, sizeof(p->fatal_hint),
                 "static member %s fenced: another instance uses this "
                 "instance id, or this one's session expired while the "
                 "broker was unreachable for longer than session.timeout.ms; "
                 "exactly-once holds (the open transaction is aborted): "
                 "restart it and it rejoins at once, or set "
                 "pipeline.static_membership: false (%s)",
                 p->instance, why);
        return p->fatal_hint;
    }
    if (bw__denied(p, m->err, "Read",
                   m->rkt != NULL ? rd_kafka_topic_name(m->rkt) : "?",
                   p->fatal_hint, sizeof(p->fatal_hint))) {
        return p->fatal_hint;
    }
    return rd_kafka_message_errstr(m);
}

static bw_err_t on_message(bw_pipeline_t *p, rd_kafka_message_t *m)
{
    task_t *t;
    bw_err_t err;

    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (consumer_error_fatal(m->err)) {
            err = bw__fatal(p, "consume", fatal_reason(p, m));
        } else {
            bw__warn(p, "consume: %s", rd_kafka_message_errstr(m));
            err = BW_OK;
        }
        rd_kafka_message_destroy(m);
        return err;
    }
    t = p->last != NULL && p->last_rkt == m->rkt &&
                p->last->partition == m->partition
            ? p->last
            : find_task(p, rd_kafka_topic_name(m->rkt), m->partition, NULL);
    if (t == NULL) {
        t = add_task(p, rd_kafka_topic_name(m->rkt), m->partition);
        if (t == NULL) {
            rd_kafka_message_destroy(m);
            return bw__fatal(p, "consume", "out of memory for models");
        }
    }
    p->last = t;
    p->last_rkt = m->rkt;
    if (atomic_load(&t->wait_state) != WAIT_NONE) {
        rd_kafka_message_destroy(m); /* it comes again after the wait */
        return BW_OK;
    }
    err = bw__begin_txn(p);
    if (err != BW_OK) {
        rd_kafka_message_destroy(m);
        return err;
    }
    if (t->txn_first < 0) {
        t->txn_first = m->offset; /* an abort rewinds to here */
        t->txn_first_ts = rd_kafka_message_timestamp(m, NULL);
    }
    bw__dispatch(p, t, m); /* m is the worker's now */
    return BW_OK;
}

/* Stale markers of every partition (workers quiesced: the main thread
 * uses worker 0's encoders). */
static void scan_stale(bw_pipeline_t *p, int64_t now)
{
    bw__quiesce(p);
    for (int i = 0; i < p->n_tasks; i++) {
        bw__stale_scan(&p->workers[0], p->tasks[i], now);
    }
    p->last_scan = now;
}

/* ---- life cycle ------------------------------------------------------------
 */

static bw_err_t make_workers(bw_pipeline_t *p, char *errstr, size_t errstr_size)
{
    p->n_workers = p->cfg->pipeline.threads;
    if (p->n_workers > 1 &&
        (p->opts.observer.score != NULL || p->opts.observer.threat != NULL)) {
        snprintf(errstr, errstr_size,
                 "pipeline: observers need pipeline.threads: 1");
        return BW_ERR_CONFIG;
    }
    p->workers = bw_calloc((size_t)p->n_workers, sizeof(bw_worker_t));
    if (p->workers == NULL) {
        snprintf(errstr, errstr_size, "pipeline: out of memory");
        p->n_workers = 0;
        return BW_ERR_NOMEM;
    }
    for (int i = 0; i < p->n_workers; i++) {
        pthread_mutex_init(&p->workers[i].mu, NULL);
        pthread_cond_init(&p->workers[i].cv, NULL);
        bw__worker_metrics_init(&p->workers[i]);
        if (bw__worker_init(&p->workers[i], p, errstr, errstr_size) != BW_OK) {
            return BW_ERR_CONFIG;
        }
    }
    return BW_OK;
}

/* librdkafka's own messages, into the same sink at their own level. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
    BW_LOG(bw_log_level_of_syslog(level), "rdkafka", -1, "%s: %s: %s",
           rd_kafka_name(rk), fac, buf);
}

/* librdkafka statistics for /metrics (obs.kafka_stats_ms), unless the
 * config sets statistics.interval.ms itself. */
static bool stats_on(bw_pipeline_t *p, rd_kafka_conf_t *c, char *errstr,
                     size_t errstr_size)
{
    char cur[32];
    size_t n = sizeof(cur);

    if (p->obs == NULL || p->cfg->obs.kafka_stats_ms <= 0) {
        return true;
    }
    rd_kafka_conf_set_stats_cb(c, bw__on_stats);
    if (rd_kafka_conf_get(c, "statistics.interval.ms", cur, &n) ==
            RD_KAFKA_CONF_OK &&
        strcmp(cur, "0") != 0) {
        return true;
    }
    snprintf(cur, sizeof(cur), "%.0f", p->cfg->obs.kafka_stats_ms);
    return rd_kafka_conf_set(c, "statistics.interval.ms", cur, errstr,
                             errstr_size) == RD_KAFKA_CONF_OK;
}

static const char *bootstrap(const bw_pipeline_t *p)
{
    return p->opts.bootstrap_servers != NULL ? p->opts.bootstrap_servers
                                             : p->cfg->kafka.bootstrap_servers;
}

static rd_kafka_t *client(bw_pipeline_t *p, bw_kafka_role_t role, char *errstr,
                          size_t errstr_size)
{
    const char *boot = bootstrap(p);
    rd_kafka_conf_t *c = bw__kafka_conf(p->cfg, role, boot, p->instance, NULL,
                                        errstr, errstr_size);
    rd_kafka_t *rk;

    if (c == NULL) {
        return NULL;
    }
    rd_kafka_conf_set_opaque(c, p);
    rd_kafka_conf_set_error_cb(c, on_error);
    rd_kafka_conf_set_log_cb(c, on_log);
    if (!stats_on(p, c, errstr, errstr_size)) {
        rd_kafka_conf_destroy(c);
        return NULL;
    }
    if (role == BW_KAFKA_CONSUMER) {
        rd_kafka_conf_set_rebalance_cb(c, on_rebalance);
    } else {
        rd_kafka_conf_set_dr_msg_cb(c, bw__on_delivery);
    }
    rk = rd_kafka_new(role == BW_KAFKA_CONSUMER ? RD_KAFKA_CONSUMER
                                                : RD_KAFKA_PRODUCER,
                      c, errstr, errstr_size);
    if (rk == NULL) {
        rd_kafka_conf_destroy(c);
    }
    return rk;
}

static bw_err_t subscribe(bw_pipeline_t *p, char *errstr, size_t errstr_size)
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
        snprintf(errstr, errstr_size, "subscribe: %s", rd_kafka_err2str(e));
        return BW_ERR_KAFKA;
    }
    p->subscribed = true;
    return BW_OK;
}

/* The producer's transactional id, in slices of a second (a call that
 * timed out resumes; a retriable error, e.g. the coordinator still
 * loading, is tried again), serving its error callback in between: a
 * refused login or certificate ends the start-up at once, with its
 * reason. */
static bw_err_t init_txns(bw_pipeline_t *p, char *errstr, size_t errstr_size)
{
    rd_kafka_error_t *e = NULL;
    char why[512];
    int64_t deadline = bw_mono_ms() + INIT_TXN_S * 1000;

    while (p->eos) {
        e = rd_kafka_init_transactions(p->producer, 1000);
        rd_kafka_poll(p->producer,
                      e != NULL && rd_kafka_error_is_retriable(e) ? 100 : 0);
        if (e == NULL || failed(p) || bw_mono_ms() >= deadline ||
            !rd_kafka_error_is_retriable(e)) {
            break;
        }
        rd_kafka_error_destroy(e);
        e = NULL;
    }
    if (failed(p)) {
        snprintf(errstr, errstr_size, "%s", p->fatal);
    } else if (e != NULL) {
        snprintf(errstr, errstr_size, "init transactions: %s",
                 bw__denied(p, rd_kafka_error_code(e), "Write", NULL, why,
                            sizeof(why))
                     ? why
                     : rd_kafka_error_string(e));
    }
    if (e != NULL) {
        rd_kafka_error_destroy(e);
    }
    if (failed(p) || e != NULL) {
        return BW_ERR_KAFKA;
    }
    p->txn_timeout_ms = bw__txn_timeout_ms(rd_kafka_conf(p->producer));
    p->producer_ready = true;
    return BW_OK;
}

/* The output topics' handles, made once so that producing a record does not
 * look its topic up by name. */
static bw_err_t output_topics(bw_pipeline_t *p, char *errstr,
                              size_t errstr_size)
{
    const bw_emit_cfg_t *em = &p->cfg->emit;
    const char *names[OUT_TOPICS] = {em->scores.topic, em->threats.topic,
                                     em->dead_letters.topic, em->alerts.topic};

    for (int i = 0; i < OUT_TOPICS; i++) {
        if (names[i][0] == '\0') {
            continue; /* an optional topic that is off */
        }
        p->out[i] = rd_kafka_topic_new(p->producer, names[i], NULL);
        if (p->out[i] == NULL) {
            snprintf(errstr, errstr_size, "pipeline: output topic %s: %s",
                     names[i], rd_kafka_err2str(rd_kafka_last_error()));
            return BW_ERR_KAFKA;
        }
    }
    return BW_OK;
}

/* The topic handles made on the producer (outputs, changelog). */
static void drop_producer_topics(bw_pipeline_t *p)
{
    for (int i = 0; i < OUT_TOPICS; i++) {
        if (p->out[i] != NULL) {
            rd_kafka_topic_destroy(p->out[i]);
            p->out[i] = NULL;
        }
    }
    if (p->cl_rkt != NULL) {
        rd_kafka_topic_destroy(p->cl_rkt);
        p->cl_rkt = NULL;
    }
}

bw_err_t bw__renew_producer(bw_pipeline_t *p)
{
    char errstr[512] = "";
    rd_kafka_t *rk;

    if (p->consumer == NULL || rd_kafka_assignment_lost(p->consumer)) {
        /* the group gave the partitions away during the stall: another
         * member (perhaps a replacement under this transactional.id)
         * owns them now, and a new producer would fence it */
        return bw__fatal(p, "producer",
                         "fenced after a stall that also cost the group "
                         "membership; restart the stage");
    }
    if (p->renewals > 0 && p->commits == p->commits_at_renewal) {
        /* fenced again before any commit: not a passing stall */
        snprintf(errstr, sizeof(errstr),
                 "fenced again before a commit since the last renewal: "
                 "a transaction cannot finish within transaction.timeout.ms "
                 "(%lld ms); raise it (the broker caps it at "
                 "transaction.max.timeout.ms)",
                 (long long)p->txn_timeout_ms);
        return bw__fatal(p, "producer", errstr);
    }
    p->commits_at_renewal = p->commits;
    bw__warn(p, "the producer was fenced by its own stall: its transaction "
                "outlived transaction.timeout.ms (%lld ms), so the "
                "coordinator aborted it; a new producer takes over the same "
                "transactional.id and the transaction's outputs are made "
                "again",
             (long long)p->txn_timeout_ms);
    drop_producer_topics(p);
    p->producer_ready = p->txn_open = false;
    atomic_store(&p->txn_begun_ms, -1);
    if ((rk = client(p, BW_KAFKA_PRODUCER, errstr, sizeof(errstr))) == NULL) {
        return bw__fatal(p, "renew producer", errstr); /* the old one stays */
    }
    rd_kafka_purge(p->producer,
                   RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_destroy(p->producer);
    p->producer = rk;
    if (output_topics(p, errstr, sizeof(errstr)) != BW_OK ||
        init_txns(p, errstr, sizeof(errstr)) != BW_OK) {
        return bw__fatal(p, "renew producer", errstr);
    }
    if (p->changelog &&
        (p->cl_rkt = rd_kafka_topic_new(p->producer, p->cl_topic, NULL)) ==
            NULL) {
        return bw__fatal(p, "renew producer",
                         rd_kafka_err2str(rd_kafka_last_error()));
    }
    atomic_store(&p->delivery_failures, 0); /* the purged records' */
    /* the old producer's fence, seen again while it aborted, is healed */
    atomic_store(&p->abort_pending, false);
    p->renewals++;
    return BW_OK;
}

bw_pipeline_t *bw_pipeline_new(const bw_config_t *cfg,
                               const bw_pipeline_opts_t *opts, char *errstr,
                               size_t errstr_size)
{
    bw_pipeline_t *p = bw_calloc(1, sizeof(*p));

    if (p == NULL) {
        snprintf(errstr, errstr_size, "pipeline: out of memory");
        return NULL;
    }
    p->cfg = cfg;
    pthread_mutex_init(&p->mu, NULL);
    bw__resend_init(p);
    if (opts != NULL) {
        p->opts = *opts;
    }
    if (p->opts.log != NULL) {
        bw_log_setup((bw_log_level_t)cfg->obs.log_level,
                     (bw_log_format_t)cfg->obs.log_format, p->opts.log);
    }
    p->eos = cfg->pipeline.guarantee == BW_GUARANTEE_EXACTLY_ONCE;
    atomic_store(&p->txn_begun_ms, -1);
    p->closed = true; /* nothing to close until the clients exist */
    snprintf(p->version, sizeof(p->version), "%016llx",
             (unsigned long long)cfg->hash);
    bw__kafka_instance(cfg, p->opts.instance_id, p->instance,
                       sizeof(p->instance));
    bw_log_instance(p->instance);
    bw_log_config_secrets(cfg);
    bw__metrics_init(p);
    bw__health(p);
    if (bw__registry_open(p, errstr, errstr_size) != BW_OK ||
        make_workers(p, errstr, errstr_size) != BW_OK ||
        (p->producer = client(p, BW_KAFKA_PRODUCER, errstr, errstr_size)) ==
            NULL ||
        output_topics(p, errstr, errstr_size) != BW_OK ||
        init_txns(p, errstr, errstr_size) != BW_OK ||
        bw__changelog_open(p, bootstrap(p), errstr, errstr_size) != BW_OK ||
        (p->consumer = client(p, BW_KAFKA_CONSUMER, errstr, errstr_size)) ==
            NULL) {
        goto fail;
    }
    p->closed = false;
    p->resend = p->eos && !p->changelog;
    if (bw__workers_start(p, errstr, errstr_size) != BW_OK ||
        subscribe(p, errstr, errstr_size) != BW_OK) {
        goto fail;
    }
    p->last_commit = p->last_scan = p->last_stats = bw_wall_ms();
    bw__health(p);
    bw__log(p,
            "started: %s, group %s, %d input topic(s), %d stream thread(s), "
            "state changelog %s",
            p->eos ? "exactly_once" : "at_least_once", cfg->kafka.group_id,
            cfg->ingest.n_topics, p->n_workers,
            p->changelog ? p->cl_topic : "off");
    return p;
fail:
    bw_pipeline_destroy(p);
    return NULL;
}

/* The periodic progress line: what an operator tails the log for. */
static void progress(bw_pipeline_t *p, int64_t now)
{
    bw_pipeline_stats_t st;
    double secs = (double)(now - p->last_stats) / 1000.0;

    bw_pipeline_stats(p, &st);
    bw__log(p,
            "progress: %llu records (%.0f/s), %llu scores, %llu threats, "
            "%llu stale, %llu dead letters; %d partitions, %llu commits, "
            "%llu aborts",
            (unsigned long long)st.consumed,
            secs > 0 ? (double)(st.consumed - p->stats_consumed) / secs : 0.0,
            (unsigned long long)st.scored, (unsigned long long)st.threats,
            (unsigned long long)st.stale, (unsigned long long)st.dead_letters,
            st.partitions, (unsigned long long)st.commits,
            (unsigned long long)st.aborts);
    if (p->changelog) {
        bw__log(p,
                "progress: state changelog %llu records, %.1f MB (%.0f "
                "bytes per record); %llu partition restores, %.2f s",
                (unsigned long long)st.changelog_records,
                (double)st.changelog_bytes / 1e6,
                st.changelog_records > 0
                    ? (double)st.changelog_bytes / (double)st.changelog_records
                    : 0.0,
                (unsigned long long)st.restores, st.restore_s);
    }
    p->stats_consumed = st.consumed;
    p->last_stats = now;
}

bw_err_t bw_pipeline_step(bw_pipeline_t *p, int timeout_ms, char *errstr,
                          size_t errstr_size)
{
    rd_kafka_message_t *m;
    bw_err_t err = BW_OK;
    int64_t now;

    if (!failed(p)) {
        m = rd_kafka_consumer_poll(p->consumer, timeout_ms);
        if (m != NULL) {
            err = on_message(p, m);
        }
        if (atomic_load(&p->abort_pending) && !failed(p)) {
            bw__quiesce(p);
            err = bw__abort_pending(p);
        }
        rd_kafka_poll(p->producer, 0);
        now = bw_wall_ms();
        if (err == BW_OK && failed(p)) {
            err = BW_ERR_KAFKA; /* e.g. in a rebalance callback of the poll */
        }
        if (err == BW_OK &&
            now - p->last_commit >= p->cfg->pipeline.commit_interval_ms) {
            bw__quiesce(p); /* every output of the offsets is produced */
            err = bw__commit(p);
        }
        if (err == BW_OK && p->registry != NULL) {
            err = bw__schema_waits(p, now);
        }
        if (err == BW_OK &&
            now - p->last_scan >= p->cfg->pipeline.stale_scan_ms) {
            scan_stale(p, now);
        }
        if (p->cfg->pipeline.stats_interval_ms > 0 &&
            now - p->last_stats >= p->cfg->pipeline.stats_interval_ms) {
            progress(p, now);
        }
        bw__health(p);
        publish(p, false);
    }
    if (failed(p)) {
        snprintf(errstr, errstr_size, "%s", p->fatal);
        return BW_ERR_KAFKA;
    }
    return err;
}

bw_err_t bw_pipeline_run(bw_pipeline_t *p, volatile sig_atomic_t *stop,
                         char *errstr, size_t errstr_size)
{
    bw_err_t err = BW_OK;
    int timeout = (int)p->cfg->pipeline.poll_timeout_ms;

    while (err == BW_OK && !*stop) {
        err = bw_pipeline_step(p, timeout, errstr, errstr_size);
    }
    if (err != BW_OK) {
        return err;
    }
    bw__log(p, "stopping: committing and leaving the group");
    return bw_pipeline_close(p, errstr, errstr_size);
}

bw_err_t bw_pipeline_close(bw_pipeline_t *p, char *errstr, size_t errstr_size)
{
    bw_err_t err = BW_OK;

    if (p == NULL || p->closed) {
        return BW_OK;
    }
    p->closed = true;
    if (!failed(p)) {
        bw__quiesce(p);
        flush_commit(p);
    }
    publish(p, true); /* the final figures, partitions held */
    if (p->consumer != NULL && p->subscribed) {
        rd_kafka_consumer_close(p->consumer); /* revokes: commits */
    }
    bw__quiesce(p);
    if (!failed(p) && p->txn_open) {
        flush_commit(p);
    }
    if (p->producer != NULL &&
        rd_kafka_flush(p->producer, FLUSH_TIMEOUT_MS) != 0) {
        bw__fatal(p, "close", "outputs not acknowledged before the timeout");
    }
    /* at_least_once: an output lost in the final flush (exactly-once
     * counts the records its aborted transactions purged here too, and
     * rewinds for them) */
    if (!failed(p) &&
        p->cfg->pipeline.guarantee == BW_GUARANTEE_AT_LEAST_ONCE &&
        atomic_load(&p->delivery_failures) > 0) {
        bw__fatal(p, "close", "output records could not be delivered");
    }
    if (failed(p)) {
        snprintf(errstr, errstr_size, "%s", p->fatal);
        err = BW_ERR_KAFKA;
    }
    return err;
}

void bw_pipeline_destroy(bw_pipeline_t *p)
{
    char errstr[256];

    if (p == NULL) {
        return;
    }
    bw_pipeline_close(p, errstr, sizeof(errstr));
    bw__workers_stop(p);
    if (p->consumer != NULL) {
        rd_kafka_destroy(p->consumer);
    }
    drop_producer_topics(p);
    bw__changelog_close(p);
    if (p->producer != NULL) {
        rd_kafka_destroy(p->producer);
    }
    while (p->n_tasks > 0) {
        drop_task(p, p->tasks[0]->topic, p->tasks[0]->partition);
    }
    for (int i = 0; p->workers != NULL && i < p->n_workers; i++) {
        bw__worker_free(&p->workers[i]);
        pthread_mutex_destroy(&p->workers[i].mu);
        pthread_cond_destroy(&p->workers[i].cv);
    }
    bw_free(p->workers);
    bw_registry_destroy(p->registry);
    bw__metrics_free(p);
    bw__resend_free(p);
    pthread_mutex_destroy(&p->mu);
    bw_free(p);
}
