/*
 * The stage's log, wall clock and failure state, shared by every file of
 * the stage and by the stream threads (under the pipeline's mutex): a
 * fatal error ends the stage with its first reason; an abort request
 * (from a stream thread) is carried out by the main thread (txn.c).
 */

#include "pipeline_int.h"

bw_err_t bw__fatal(bw_pipeline_t *p, const char *what, const char *why)
{
    pthread_mutex_lock(&p->mu);
    if (!atomic_load(&p->failed)) {
        snprintf(p->fatal, sizeof(p->fatal), "%s: %s", what, why);
        atomic_store(&p->failed, true);
        BW_LOG(BW_LOG_ERROR, "pipeline", -1, "fatal: %s", p->fatal);
    }
    pthread_mutex_unlock(&p->mu);
    return BW_ERR_KAFKA;
}

void bw__request_abort(bw_pipeline_t *p, const char *why)
{
    pthread_mutex_lock(&p->mu);
    if (!atomic_load(&p->abort_pending)) {
        snprintf(p->abort_why, sizeof(p->abort_why), "%s", why);
        atomic_store(&p->abort_pending, true);
    }
    pthread_mutex_unlock(&p->mu);
}

bool bw__self_fenced(bw_pipeline_t *p)
{
    int64_t begun = atomic_load(&p->txn_begun_ms);
    char buf[256];
    rd_kafka_resp_err_t e;

    if (!p->eos || begun < 0 || bw_boot_ms() - begun < p->txn_timeout_ms) {
        return false;
    }
    /* a fence, not another fatal error (a commit the broker completed
     * after the transaction failed locally must not be replayed) */
    e = rd_kafka_fatal_error(p->producer, buf, sizeof(buf));
    return e == RD_KAFKA_RESP_ERR__FENCED ||
           e == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
           e == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
}

bool bw__never_produced(rd_kafka_resp_err_t e, const char *topic, char *why,
                        size_t n)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
        snprintf(why, n,
                 "%s: %s: the record can never be produced there; stopping "
                 "rather than aborting and replaying it without end (its "
                 "input offsets are not committed: fix the topic or its "
                 "limits, e.g. max.message.bytes, and restart)",
                 topic != NULL ? topic : "output", rd_kafka_err2str(e));
        return true;
    default:
        return false;
    }
}

bw_err_t bw__producev(bw_pipeline_t *p, rd_kafka_topic_t *rkt,
                      int32_t partition, const void *key, size_t klen,
                      const void *val, size_t vlen, rd_kafka_headers_t *hdrs)
{
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            p->producer, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_KEY((void *)key, klen),
            RD_KAFKA_V_VALUE((void *)val, vlen),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
            RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            return BW_OK;
        }
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            if (hdrs != NULL) {
                rd_kafka_headers_destroy(hdrs);
            }
            return bw__produce_failed(p, e, rd_kafka_topic_name(rkt));
        }
        rd_kafka_poll(p->producer, 10); /* serve delivery reports */
    }
}

bw_err_t bw__produce_failed(bw_pipeline_t *p, rd_kafka_resp_err_t e,
                            const char *topic)
{
    char fatal[256], why[1024];

    if (bw__denied(p, e, "Write", topic, why, sizeof(why)) ||
        bw__never_produced(e, topic, why, sizeof(why))) {
        return bw__fatal(p, "produce", why); /* an abort cannot heal it */
    }
    if (p->eos && (rd_kafka_fatal_error(p->producer, fatal, sizeof(fatal)) ==
                       RD_KAFKA_RESP_ERR_NO_ERROR ||
                   bw__self_fenced(p))) {
        snprintf(why, sizeof(why), "produce: %s", rd_kafka_err2str(e));
        bw__request_abort(p, why);
        return BW_ERR_KAFKA;
    }
    return bw__fatal(p, "produce", rd_kafka_err2str(e));
}
