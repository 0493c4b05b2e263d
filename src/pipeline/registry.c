/*
 * The stage and its schema registry (registry.url): at start-up the
 * output schemas are registered under TOPIC-value (Confluent's
 * TopicNameStrategy) and the ids returned are written in the Confluent
 * header; on input every schema id is looked up (bw_registry_schema, then
 * resolved by the codec). A record whose writer schema cannot be had now
 * (the registry unreachable) is not a dead letter: its partition is
 * paused and rewound to it, and tried again a second later (the registry
 * client itself backs off exponentially), while partitions whose schemas
 * are cached go on.
 */
#include <string.h>

#include "bayeswatch/schemas.h"
#include "pipeline_int.h"

#define RETRY_MS 1000 /* a waiting partition is tried again after */

bw_err_t bw__registry_open(bw_pipeline_t *p, char *errstr, size_t errstr_size)
{
    const bw_emit_cfg_t *em = &p->cfg->emit;
    const bw_output_cfg_t *outs[3] = {&em->scores, &em->threats,
                                      &em->dead_letters};
    const char *schemas[3] = {bw_schema_anomaly_score, bw_schema_threat_score,
                              bw_schema_dead_letter};
    char subject[BW_TOPIC_MAX + 8];

    for (int i = 0; i < 3; i++) {
        p->schema_ids[i] = (int32_t)outs[i]->schema_id;
    }
    if (p->cfg->registry.url[0] == '\0') {
        return BW_OK;
    }
    p->registry = bw_registry_new(&p->cfg->registry, errstr, errstr_size);
    if (p->registry == NULL) {
        return BW_ERR_CONFIG;
    }
    /* unreachable or credentials refused: a clear start-up error also
     * when no output registers a schema (at run time a 401 is waited
     * out, so a wrong password would only have stalled every record) */
    if (bw_registry_check(p->registry, errstr, errstr_size) != BW_OK) {
        return BW_ERR_KAFKA;
    }
    for (int i = 0; i < 3; i++) {
        if (outs[i]->format != BW_FORMAT_AVRO) {
            continue; /* no schema id on the wire */
        }
        snprintf(subject, sizeof(subject), "%s-value", outs[i]->topic);
        if (bw_registry_register(p->registry, subject, schemas[i],
                                 &p->schema_ids[i], errstr,
                                 errstr_size) != BW_OK) {
            return BW_ERR_KAFKA;
        }
        bw__log(p, "registry: %s has schema id %d", subject, p->schema_ids[i]);
    }
    return BW_OK;
}

bw_err_t bw__registry_lookup(void *ctx, int32_t id, const char **json,
                             char *errstr, size_t errstr_size)
{
    bw_pipeline_t *p = ctx;

    return bw_registry_schema(p->registry, id, json, errstr, errstr_size);
}

void bw__schema_wait(bw_pipeline_t *p, task_t *t, const rd_kafka_message_t *m,
                     const char *why)
{
    if (atomic_load(&t->wait_state) != WAIT_NONE) {
        return;
    }
    t->waiting_at = m->offset;
    atomic_store(&t->wait_state, WAIT_ASKED);
    atomic_fetch_add(&p->schema_waits, 1);
    BW_LOG(BW_LOG_WARN, "pipeline", t->partition,
           "%s [%d] waits at offset %lld for its writer schema: %s", t->topic,
           t->partition, (long long)m->offset, why);
}

/* Pause or resume one partition, seeking it to @p offset when >= 0. */
static bw_err_t pause_resume(bw_pipeline_t *p, task_t *t, bool pause,
                             int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_t *tp =
        rd_kafka_topic_partition_list_add(l, t->topic, t->partition);
    rd_kafka_resp_err_t e = pause ? rd_kafka_pause_partitions(p->consumer, l)
                                  : rd_kafka_resume_partitions(p->consumer, l);
    rd_kafka_error_t *se = NULL;
    bw_err_t err = BW_OK;

    if (e == RD_KAFKA_RESP_ERR_NO_ERROR && offset >= 0) {
        tp->offset = offset;
        se = rd_kafka_seek_partitions(p->consumer, l, 10000);
        if (se == NULL && tp->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            e = tp->err; /* the partition's own result */
        }
    }
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR || se != NULL) {
        err = bw__fatal(p, pause ? "pause for the registry" : "resume",
                        se ? rd_kafka_error_string(se) : rd_kafka_err2str(e));
    }
    if (se != NULL) {
        rd_kafka_error_destroy(se);
    }
    rd_kafka_topic_partition_list_destroy(l);
    return err;
}

bw_err_t bw__schema_waits(bw_pipeline_t *p, int64_t now)
{
    bw_err_t err = BW_OK;
    bool quiet = false;

    for (int i = 0; i < p->n_tasks && err == BW_OK; i++) {
        task_t *t = p->tasks[i];
        int s = atomic_load(&t->wait_state);
        if (s == WAIT_NONE || (s == WAIT_PAUSED && now < t->wait_until)) {
            continue;
        }
        if (!quiet) { /* no record of the task in a queue any more */
            bw__quiesce(p);
            quiet = true;
        }
        if (s == WAIT_ASKED) {
            err = pause_resume(p, t, true, t->waiting_at);
            t->wait_until = now + RETRY_MS;
            atomic_store(&t->wait_state, WAIT_PAUSED);
        } else {
            atomic_store(&t->wait_state, WAIT_NONE);
            err = pause_resume(p, t, false, -1);
        }
    }
    return err;
}
