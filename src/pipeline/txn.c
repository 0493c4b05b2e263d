/*
 * Transactions and commits of the stage. exactly_once follows
 * KIP-98/KIP-447 as librdkafka's examples/transactions.c does: a
 * transaction is begun at the first record after a commit; at the commit
 * interval the consumed offsets are sent with the consumer's group
 * metadata and the transaction committed (a timed-out commit is resumed,
 * retriable failures retried); an abortable error aborts it and rewinds
 * each partition to the first record of the aborted transaction, so its
 * outputs are produced again (without a state changelog the kept outputs
 * are produced again instead, resend.c); a producer fenced by the stage's
 * own stall past transaction.timeout.ms is replaced (bw__renew_producer).
 * at_least_once: outputs flushed and acknowledged, then the state
 * changelog written and acknowledged, then the offsets committed. Callers
 * quiesce the stream threads first (workers.c): every output of the
 * offsets is produced.
 */
#include <string.h>

#include "pipeline_int.h"

#define TXN_TIMEOUT_MS 10000 /* one attempt of a transactional call */
#define TXN_ATTEMPTS 30      /* retriable failures (5 min) before giving up */

static bool is_fatal_error(bw_pipeline_t *p, rd_kafka_error_t *e,
                           const char *what)
{
    if (!rd_kafka_error_is_fatal(e)) {
        return false;
    }
    bw__fatal(p, what, rd_kafka_error_string(e));
    return true;
}

bw_err_t bw__begin_txn(bw_pipeline_t *p)
{
    rd_kafka_error_t *e;

    if (!p->eos || p->txn_open) {
        return BW_OK;
    }
    e = rd_kafka_begin_transaction(p->producer);
    if (e != NULL) {
        bw__fatal(p, "begin transaction", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return BW_ERR_KAFKA;
    }
    p->txn_open = true;
    atomic_store(&p->txn_begun_ms, bw_boot_ms());
    p->offsets_sent = false;
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
    int64_t now = bw_wall_ms();

    for (int i = 0; i < p->n_tasks; i++) {
        task_t *t = p->tasks[i];
        if (t->txn_first >= 0 && t->txn_first_ts >= 0) {
            bw_hist_observe(&p->e2c_hist,
                            (double)(now - t->txn_first_ts) / 1000.0);
        }
        t->committed = t->next;
        t->txn_first = -1;
        t->txn_touched = false;
    }
    atomic_store(&p->txn_begun_ms, -1);
    bw__resend_clear(p);
    p->commits++;
}

/* The models of a partition whose records were in an aborted transaction
 * go back to the last commit with its offsets: a fresh engine restored from
 * the changelog (read_committed: the aborted records are not in it).
 * Without a changelog there is nothing to go back to: the abort produces
 * the kept outputs again instead (resend.c) and rewinds nothing. */
static bw_err_t rewind_state(bw_pipeline_t *p, task_t *t)
{
    char errstr[256];
    bw_engine_t *eng;

    if (!p->changelog) {
        return BW_OK;
    }
    eng = bw_engine_new(p->cfg, errstr, sizeof(errstr));
    if (eng == NULL) {
        return bw__fatal(p, "rewind state", errstr);
    }
    bw__task_engine(p, t, eng);
    return bw__restore(p, t, t->next); /* to the last commit */
}

/* The open transaction aborted by the producer, or, when the producer was
 * fenced by its own stall, by a new producer (bw__renew_producer). */
static bw_err_t abort_txn(bw_pipeline_t *p)
{
    rd_kafka_error_t *e = NULL;
    bw_err_t err = BW_OK;
    char buf[256];

    for (int attempt = 0; p->txn_open; attempt++) {
        if (rd_kafka_fatal_error(p->producer, buf, sizeof(buf)) !=
            RD_KAFKA_RESP_ERR_NO_ERROR) {
            err = bw__self_fenced(p) ? bw__renew_producer(p)
                                     : bw__fatal(p, "abort transaction", buf);
            break;
        }
        e = rd_kafka_abort_transaction(p->producer, TXN_TIMEOUT_MS);
        if (e != NULL && rd_kafka_error_is_fatal(e) && bw__self_fenced(p)) {
            rd_kafka_error_destroy(e);
            e = NULL;
            err = bw__renew_producer(p);
            break;
        }
        if (e == NULL || is_fatal_error(p, e, "abort transaction") ||
            !rd_kafka_error_is_retriable(e) || attempt + 1 >= TXN_ATTEMPTS) {
            break;
        }
        rd_kafka_error_destroy(e);
        e = NULL;
    }
    if (e != NULL) {
        err = bw__fatal(p, "abort transaction", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    p->txn_open = false;
    atomic_store(&p->txn_begun_ms, -1);
    return err;
}

/* Abort, then seek every partition back to the first record of the
 * aborted transaction: its outputs will be produced again. */
bw_err_t bw__abort_and_rewind(bw_pipeline_t *p, const char *why)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_error_t *e;
    bw_err_t err;

    atomic_store(&p->abort_pending, false);
    bw__warn(p, "aborting the open transaction: %s", why);
    err = abort_txn(p);
    p->aborts++;
    if (p->resend) { /* no changelog: the same outputs again, no rewind */
        return err != BW_OK ? err : bw__resend(p);
    }
    l = rd_kafka_topic_partition_list_new(1);
    for (int i = 0; i < p->n_tasks; i++) {
        task_t *t = p->tasks[i];
        bool rewind = t->txn_first >= 0 || t->txn_touched;
        if (t->txn_first >= 0) {
            rd_kafka_topic_partition_list_add(l, t->topic, t->partition)
                ->offset = t->txn_first;
            t->next = t->txn_first;
            /* a wait for the registry seeks to its record later: never
             * past the records this abort gives back */
            if (atomic_load(&t->wait_state) != WAIT_NONE &&
                t->waiting_at > t->txn_first) {
                t->waiting_at = t->txn_first;
            }
            t->txn_first = -1;
        }
        /* a partition with no input in the transaction may still have
         * had its changes or stale markers in it: its engine counts them
         * written, so it goes back to the changelog as well */
        t->txn_touched = false;
        if (rewind && err == BW_OK) {
            err = rewind_state(p, t);
        }
    }
    if (err == BW_OK && l->cnt > 0) {
        e = rd_kafka_seek_partitions(p->consumer, l, TXN_TIMEOUT_MS);
        if (e != NULL) {
            err = bw__fatal(p, "rewind after abort", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
        /* each partition's own result: one that did not move back would
         * skip the aborted records' outputs and commit past them */
        for (int i = 0; err == BW_OK && i < l->cnt; i++) {
            if (l->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                char msg[512];
                snprintf(msg, sizeof(msg), "%s [%d]: %s", l->elems[i].topic,
                         (int)l->elems[i].partition,
                         rd_kafka_err2str(l->elems[i].err));
                err = bw__fatal(p, "rewind after abort", msg);
            }
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    return err;
}

bw_err_t bw__abort_pending(bw_pipeline_t *p)
{
    char why[256];

    pthread_mutex_lock(&p->mu);
    snprintf(why, sizeof(why), "%s", p->abort_why);
    pthread_mutex_unlock(&p->mu);
    return bw__abort_and_rewind(p, why);
}

/* One attempt: offsets into the transaction (once), then commit. A
 * commit that timed out is still running inside librdkafka: the retry
 * calls commit_transaction alone, which resumes it (any other
 * transactional call would conflict with it). */
static rd_kafka_error_t *try_commit_txn(bw_pipeline_t *p)
{
    rd_kafka_topic_partition_list_t *l = pending_offsets(p);
    rd_kafka_error_t *e = NULL;

    /* A transaction with no new input (state flushed on its own, stale
     * markers) still sends the offsets already committed: the group's
     * generation is checked with them (KIP-447), so an instance that has
     * lost its partitions without noticing yet is fenced here too, and
     * its older state does not land in the changelog after the new
     * owner's. */
    bool no_input = l->cnt == 0;

    for (int i = 0; no_input && i < p->n_tasks; i++) {
        const task_t *t = p->tasks[i];
        if (t->committed >= 0) {
            rd_kafka_topic_partition_list_add(l, t->topic, t->partition)
                ->offset = t->committed;
        }
    }

    if (l->cnt > 0 && !p->offsets_sent) {
        rd_kafka_consumer_group_metadata_t *md =
            rd_kafka_consumer_group_metadata(p->consumer);
        e = rd_kafka_send_offsets_to_transaction(p->producer, l, md,
                                                 TXN_TIMEOUT_MS);
        rd_kafka_consumer_group_metadata_destroy(md);
        p->offsets_sent = e == NULL;
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
        if (rd_kafka_error_is_fatal(e) && bw__self_fenced(p)) {
            break; /* the abort renews the producer */
        }
        if (is_fatal_error(p, e, "commit transaction")) {
            rd_kafka_error_destroy(e);
            return BW_ERR_KAFKA;
        }
        if (!rd_kafka_error_is_retriable(e)) {
            break;
        }
        bw__warn(p, "commit: %s (retrying)", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        e = NULL;
    }
    snprintf(why, sizeof(why), "%s",
             e != NULL ? rd_kafka_error_string(e) : "commit timed out");
    if (e != NULL) {
        rd_kafka_error_destroy(e);
    }
    return bw__abort_and_rewind(p, why);
}

void bw__on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    bw_pipeline_t *p = opaque;
    char why[512];

    (void)rk;
    if (bw__denied(p, m->err, "Write", rd_kafka_topic_name(m->rkt), why,
                   sizeof(why)) ||
        bw__never_produced(m->err, rd_kafka_topic_name(m->rkt), why,
                           sizeof(why))) {
        bw__fatal(p, "produce", why);
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (atomic_fetch_add(&p->delivery_failures, 1) == 0) {
            bw__warn(p, "delivery to %s failed: %s",
                     rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
        }
    }
}

/* at_least_once: every record produced so far acknowledged (false: not
 * yet, or a delivery failed and *err is fatal). */
static bool alo_acknowledged(bw_pipeline_t *p, bw_err_t *err)
{
    *err = BW_OK;
    if (rd_kafka_flush(p->producer, FLUSH_TIMEOUT_MS) != 0) {
        bw__warn(p, "outputs not yet acknowledged; offsets not committed");
        return false;
    }
    if (atomic_load(&p->delivery_failures) > 0) {
        *err = bw__fatal(p, "delivery",
                         "output records could not be delivered; their "
                         "input offsets are not committed and will be "
                         "reprocessed on restart");
        return false;
    }
    return true;
}

/* at_least_once: the outputs acknowledged, then the state written and
 * acknowledged, then the offsets. A state in the changelog has had its
 * outputs delivered, so a restart may skip the records it has learned
 * from (bw__record) even when their offsets were not committed. */
static bw_err_t commit_alo(bw_pipeline_t *p)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_resp_err_t e;
    bw_err_t err;

    if (!alo_acknowledged(p, &err) ||
        (err = bw__changelog_write(p)) != BW_OK ||
        !alo_acknowledged(p, &err)) {
        return err;
    }
    l = pending_offsets(p);
    e = l->cnt > 0 ? rd_kafka_commit(p->consumer, l, 0)
                   : RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_destroy(l);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        bw__warn(p, "offset commit: %s (retrying later)", rd_kafka_err2str(e));
        return BW_OK;
    }
    mark_committed(p);
    return BW_OK;
}

bw_err_t bw__commit(bw_pipeline_t *p)
{
    uint64_t commits = p->commits;
    double t0 = bw_mono_s();
    bw_err_t err;

    /* a worker may have asked for an abort while the caller quiesced (a
     * produce that failed at once): its record's outputs are not in the
     * transaction, so it must not commit the offsets past it */
    if (atomic_load(&p->abort_pending)) {
        return bw__abort_pending(p);
    }
    p->last_commit = bw_wall_ms();
    if (p->eos && !p->txn_open) {
        /* nothing consumed since the last commit; state that was not
         * flushed then and is due now gets a transaction of its own */
        if (!bw__changelog_due(p) || bw__begin_txn(p) != BW_OK) {
            return BW_OK;
        }
    }
    if (!p->eos) {
        err = commit_alo(p);
    } else if ((err = bw__changelog_write(p)) != BW_OK) { /* state first */
        return atomic_load(&p->abort_pending) ? bw__abort_pending(p)
                                              : err; /* fatal */
    } else {
        err = commit_txn(p);
    }
    if (p->commits > commits) {
        bw_hist_observe(&p->commit_hist, bw_mono_s() - t0);
    }
    return err;
}
