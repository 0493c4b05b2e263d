/*
 * The state changelog: each partition's model state in a compacted topic,
 * as Kafka Streams backs its state stores (KIP-98 transactions; KIP-447
 * stable offsets).
 *
 *  - The topic (state.topic, default GROUP_ID-model-state-changelog) has
 *    the input topic's partition count; changelog partition p serves input
 *    partition p. It is created at start-up if missing (compacted, with
 *    segments small enough for the cleaner to keep it near one record per
 *    live key); a wrong partition count or cleanup policy is a start-up
 *    error.
 *  - At every commit, each partition's changed keys (bw_engine_changes:
 *    at most one record per key, tombstones for retired keys) are produced
 *    to its changelog partition inside the open transaction, before the
 *    offsets: the committed changelog always equals the state that
 *    produced the committed scores. at_least_once writes them before it
 *    commits the offsets.
 *  - On assignment, a partition waits for its committed input offset to be
 *    stable (a previous owner's transaction finished), then restores: its
 *    local checkpoint if one matches (checkpoint.c), then the changelog
 *    partition read_committed to its end, record by record into a fresh
 *    engine (bw_engine_restore: all or nothing per key), before its first
 *    input record is scored. After an aborted transaction the partitions
 *    in it are restored the same way: their models are back at the last
 *    commit, as their input offsets are.
 */
#include <string.h>
#include <unistd.h>

#include "bayeswatch/map.h"
#include "bayeswatch/mem.h"
#include "pipeline_int.h"

#define ADMIN_TIMEOUT_MS 30000
#define WATERMARK_TIMEOUT_MS 10000
#define SEGMENT_BYTES "67108864" /* the cleaner compacts closed segments */
#define SEGMENT_MS "600000"
#define DIRTY_RATIO "0.1"
#define INPUT_WAIT_ATTEMPTS 20 /* 10 s for a new input topic to show */

/* ---- the topic ---- */

static int partitions_of(const rd_kafka_metadata_t *md, const char *topic,
                         rd_kafka_resp_err_t *err)
{
    for (int i = 0; i < md->topic_cnt; i++) {
        if (strcmp(md->topics[i].topic, topic) == 0) {
            *err = md->topics[i].err;
            return md->topics[i].partition_cnt;
        }
    }
    *err = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    return 0;
}

/* Wait for one admin result event of @p type on @p q. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, int type)
{
    for (int waited = 0; waited < ADMIN_TIMEOUT_MS; waited += 500) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 500);
        if (ev != NULL && rd_kafka_event_type(ev) == type) {
            return ev;
        }
        if (ev != NULL) {
            rd_kafka_event_destroy(ev);
        }
    }
    return NULL;
}

static bw_err_t create_topic(bw_pipeline_t *p, int partitions, char *errstr,
                             size_t n)
{
    char why[512];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(
        p->cl_topic, partitions, p->cfg->state.replication_factor, why,
        sizeof(why));
    rd_kafka_queue_t *q = rd_kafka_queue_new(p->producer);
    rd_kafka_event_t *ev = NULL;
    bw_err_t err = BW_ERR_KAFKA;

    if (nt == NULL) {
        snprintf(errstr, n, "state: changelog topic %s: %s", p->cl_topic, why);
        goto out;
    }
    rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
    rd_kafka_NewTopic_set_config(nt, "segment.bytes", SEGMENT_BYTES);
    rd_kafka_NewTopic_set_config(nt, "segment.ms", SEGMENT_MS);
    rd_kafka_NewTopic_set_config(nt, "min.cleanable.dirty.ratio", DIRTY_RATIO);
    rd_kafka_CreateTopics(p->producer, &nt, 1, NULL, q);
    ev = admin_wait(q, RD_KAFKA_EVENT_CREATETOPICS_RESULT);
    if (ev == NULL) {
        snprintf(errstr, n, "state: creating changelog topic %s timed out",
                 p->cl_topic);
    } else {
        size_t cnt;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(
                rd_kafka_event_CreateTopics_result(ev), &cnt);
        rd_kafka_resp_err_t e = rd_kafka_event_error(ev);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR && cnt == 1) {
            e = rd_kafka_topic_result_error(res[0]);
        }
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR ||
            e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            err = BW_OK;
            bw__log(p,
                    "state: created changelog topic %s (%d partitions, "
                    "compacted)",
                    p->cl_topic, partitions);
        } else {
            snprintf(errstr, n, "state: cannot create changelog topic %s: %s%s",
                     p->cl_topic,
                     cnt == 1 && rd_kafka_topic_result_error_string(res[0])
                         ? rd_kafka_topic_result_error_string(res[0])
                         : rd_kafka_err2str(e),
                     e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED
                         ? " (allow this principal Create on it, or create "
                           "it yourself: compacted, the input's partition "
                           "count; the stage also needs Read, Write and "
                           "DescribeConfigs on it; README, Security)"
                         : "");
        }
    }
out:
    if (ev != NULL) {
        rd_kafka_event_destroy(ev);
    }
    if (nt != NULL) {
        rd_kafka_NewTopic_destroy(nt);
    }
    rd_kafka_queue_destroy(q);
    return err;
}

/* The topic's cleanup.policy, into @p out ("" if it cannot be read). */
static bw_err_t cleanup_policy(bw_pipeline_t *p, char *out, size_t n,
                               char *errstr, size_t en)
{
    rd_kafka_ConfigResource_t *res =
        rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, p->cl_topic);
    rd_kafka_queue_t *q = rd_kafka_queue_new(p->producer);
    rd_kafka_event_t *ev;
    bw_err_t err = BW_ERR_KAFKA;

    out[0] = '\0';
    rd_kafka_DescribeConfigs(p->producer, &res, 1, NULL, q);
    ev = admin_wait(q, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT);
    if (ev == NULL || rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(errstr, en, "state: cannot describe changelog topic %s: %s",
                 p->cl_topic,
                 ev != NULL ? rd_kafka_event_error_string(ev) : "timed out");
    } else {
        size_t nr, nc;
        const rd_kafka_ConfigResource_t **rs =
            rd_kafka_DescribeConfigs_result_resources(
                rd_kafka_event_DescribeConfigs_result(ev), &nr);
        const rd_kafka_ConfigEntry_t **ce =
            nr == 1 ? rd_kafka_ConfigResource_configs(rs[0], &nc) : NULL;
        for (size_t i = 0; ce != NULL && i < nc; i++) {
            if (strcmp(rd_kafka_ConfigEntry_name(ce[i]), "cleanup.policy") ==
                    0 &&
                rd_kafka_ConfigEntry_value(ce[i]) != NULL) {
                snprintf(out, n, "%s", rd_kafka_ConfigEntry_value(ce[i]));
            }
        }
        err = BW_OK;
    }
    if (ev != NULL) {
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_ConfigResource_destroy(res);
    rd_kafka_queue_destroy(q);
    return err;
}

/* The topic exists with the input's partition count and compaction. */
static bw_err_t ensure_topic(bw_pipeline_t *p, char *errstr, size_t n)
{
    const char *input = p->cfg->ingest.topics[0];
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_resp_err_t e;
    char policy[128];
    int in_parts, cl_parts;
    bool created = false;
    bw_err_t err;

    /* a topic just created shows in the metadata after a moment */
    for (int attempt = 0; attempt < 60; attempt++) {
        e = rd_kafka_metadata(p->producer, 1, NULL, &md, ADMIN_TIMEOUT_MS);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(errstr, n, "state: cluster metadata: %s",
                     rd_kafka_err2str(e));
            return BW_ERR_KAFKA;
        }
        in_parts = partitions_of(md, input, &e);
        if ((e != RD_KAFKA_RESP_ERR_NO_ERROR || in_parts <= 0) &&
            attempt < INPUT_WAIT_ATTEMPTS) {
            /* a topic created a moment ago is not in every broker's
             * metadata yet */
            rd_kafka_metadata_destroy(md);
            usleep(500 * 1000);
            continue;
        }
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR || in_parts <= 0) {
            rd_kafka_metadata_destroy(md);
            snprintf(errstr, n,
                     "state: input topic %s not found (%s): create it "
                     "first, or allow this principal Read on Topic %s "
                     "(unauthorized topics are not shown); the changelog "
                     "needs its partition count",
                     input, rd_kafka_err2str(e), input);
            return BW_ERR_KAFKA;
        }
        cl_parts = partitions_of(md, p->cl_topic, &e);
        rd_kafka_metadata_destroy(md);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            break;
        }
        if (!created && create_topic(p, in_parts, errstr, n) != BW_OK) {
            return BW_ERR_KAFKA;
        }
        created = true;
        if (attempt == 59) {
            snprintf(errstr, n, "state: changelog topic %s: %s", p->cl_topic,
                     rd_kafka_err2str(e));
            return BW_ERR_KAFKA;
        }
        usleep(500 * 1000);
    }
    if (cl_parts != in_parts) {
        snprintf(errstr, n,
                 "state: changelog topic %s has %d partitions, input topic "
                 "%s has %d: they must match (changelog partition p holds "
                 "input partition p's state); delete it or set state.topic",
                 p->cl_topic, cl_parts, input, in_parts);
        return BW_ERR_CONFIG;
    }
    err = cleanup_policy(p, policy, sizeof(policy), errstr, n);
    if (err == BW_OK && strstr(policy, "compact") == NULL) {
        snprintf(errstr, n,
                 "state: changelog topic %s has cleanup.policy=%s: it must "
                 "be compact (with delete, old state is lost; without "
                 "compaction, restores grow with history)",
                 p->cl_topic, policy[0] ? policy : "(unknown)");
        err = BW_ERR_CONFIG;
    }
    return err;
}

static rd_kafka_t *restore_consumer(bw_pipeline_t *p, const char *boot,
                                    char *errstr, size_t n)
{
    rd_kafka_conf_t *c = bw__kafka_conf(p->cfg, BW_KAFKA_RESTORE, boot,
                                        p->instance, NULL, errstr, n);
    rd_kafka_t *rk;

    if (c == NULL) {
        return NULL;
    }
    rd_kafka_conf_set_opaque(c, p); /* bw__ssl_verify's */
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, errstr, n);
    if (rk == NULL) {
        rd_kafka_conf_destroy(c);
    }
    return rk;
}

bw_err_t bw__changelog_open(bw_pipeline_t *p, const char *boot, char *errstr,
                            size_t n)
{
    const bw_state_cfg_t *sc = &p->cfg->state;

    if (!sc->changelog) {
        return BW_OK;
    }
    bw_config_changelog_topic(p->cfg, p->cl_topic, sizeof(p->cl_topic));
    if (ensure_topic(p, errstr, n) != BW_OK) {
        return BW_ERR_KAFKA;
    }
    p->cl_rkt = rd_kafka_topic_new(p->producer, p->cl_topic, NULL);
    p->restorer = restore_consumer(p, boot, errstr, n);
    if (p->cl_rkt == NULL || p->restorer == NULL) {
        if (p->cl_rkt == NULL) {
            snprintf(errstr, n, "state: changelog topic handle: %s",
                     rd_kafka_err2str(rd_kafka_last_error()));
        }
        return BW_ERR_KAFKA;
    }
    p->changelog = true;
    return BW_OK;
}

void bw__changelog_close(bw_pipeline_t *p)
{
    if (p->restorer != NULL) {
        rd_kafka_consumer_close(p->restorer);
        rd_kafka_destroy(p->restorer);
        p->restorer = NULL;
    }
    if (p->cl_rkt != NULL) {
        rd_kafka_topic_destroy(p->cl_rkt);
        p->cl_rkt = NULL;
    }
}

/* ---- writing ---- */

typedef struct {
    bw_pipeline_t *p;
    int32_t partition;
    bw_err_t err;
} write_ctx_t;

static void write_one(void *opaque, const char *key, size_t klen,
                      const uint8_t *v, size_t len)
{
    write_ctx_t *wc = opaque;
    bw_pipeline_t *p = wc->p;

    if (wc->err == BW_OK) {
        wc->err = bw__producev(p, p->cl_rkt, wc->partition, key, klen, v, len,
                               NULL);
    }
    if (wc->err == BW_OK) {
        p->cl_records++;
        p->cl_bytes += klen + len;
    }
}

/* Whether @p t's state is written at this commit: its first, then every
 * state.flush_interval_ms, and whenever a decision a replay could not
 * repeat (a stale marker, a time-skew or unknown-schema dead letter) was
 * made: the state and input position after it must be in the changelog. */
static bool flush_due(const bw_pipeline_t *p, const task_t *t, int64_t now)
{
    return p->flush_all || t->force_flush || t->flushed_at < 0 ||
           (double)(now - t->flushed_at) >= p->cfg->state.flush_interval_ms;
}

bool bw__changelog_due(const bw_pipeline_t *p)
{
    int64_t now = bw_wall_ms();

    for (int i = 0; p->changelog && i < p->n_tasks; i++) {
        const task_t *t = p->tasks[i];
        if (!t->restore_failed && flush_due(p, t, now) &&
            (t->force_flush || bw_engine_pending(t->eng) > 0)) {
            return true;
        }
    }
    return false;
}

bw_err_t bw__changelog_write(bw_pipeline_t *p)
{
    int64_t now = bw_wall_ms();
    char why[256];

    if (!p->changelog) {
        return BW_OK;
    }
    for (int i = 0; i < p->n_tasks; i++) {
        task_t *t = p->tasks[i];
        write_ctx_t wc = {p, t->partition, BW_OK};
        if (t->restore_failed || !flush_due(p, t, now)) {
            continue;
        }
        /* a forced flush writes the engine's own record even if no model
         * changed: the input position moved past records (refused by the
         * clock or the registry) that a restore must not replay */
        if (t->force_flush) {
            bw_engine_touch(t->eng);
        }
        if (bw_engine_pending(t->eng) == 0) {
            continue; /* nothing changed: a first flush stays due */
        }
        t->flushed_at = now;
        t->force_flush = false;
        t->txn_touched = true;
        if (bw_engine_changes(t->eng, bw__state_offset(t), write_one, &wc, why,
                              sizeof(why)) != BW_OK) {
            return bw__fatal(p, "state changelog", why);
        }
        if (wc.err != BW_OK) {
            return wc.err; /* an abort was requested (or fatal) */
        }
    }
    return BW_OK;
}

/* ---- restoring ---- */

typedef struct {
    uint64_t records, bytes, tombstones;
    bw_restore_stats_t rs;
} restore_count_t;

/* Load one record (the latest of its key) into @p t's engine. */
static void apply(bw_pipeline_t *p, task_t *t, const rd_kafka_message_t *m,
                  restore_count_t *c)
{
    char why[256];
    bw_err_t err;

    c->tombstones += m->payload == NULL;
    err = bw_engine_restore(t->eng, m->key, m->key_len, m->payload, m->len,
                            &c->rs, why, sizeof(why));
    if (err != BW_OK && err != BW_ERR_VERSION &&
        c->rs.corrupt + c->rs.failed <= 3) { /* the first few, then counted */
        bw__warn(p, "state: %s [%d] offset %lld: %s (%s)", p->cl_topic,
                 (int)t->partition, (long long)m->offset, why,
                 err == BW_ERR_CORRUPT ? "that key starts from the prior"
                                       : "the key cannot be held");
    }
}

typedef struct {
    bw_pipeline_t *p;
    task_t *t;
    restore_count_t *c;
} apply_ctx_t;

static void apply_latest(const char *key, void *v, void *arg)
{
    apply_ctx_t *ac = arg;

    (void)key;
    apply(ac->p, ac->t, v, ac->c);
    rd_kafka_message_destroy(v);
}

/* Keep only the latest record of each key (a changelog the cleaner has
 * not compacted yet holds older ones): each key is decoded once. */
static void keep_latest(bw_pipeline_t *p, task_t *t, bw_map_t *latest,
                        rd_kafka_message_t *m, restore_count_t *c)
{
    /* the longest key the engine writes: an entity's, three %-encoded
     * names (1,024 bytes dropped the longest as "not a state record") */
    char key[BW_ID_MAX + 64];
    rd_kafka_message_t *old;

    c->records++;
    c->bytes += m->len + m->key_len;
    if (m->key == NULL || m->key_len == 0 || m->key_len >= sizeof(key) ||
        memchr(m->key, 0, m->key_len) != NULL) {
        rd_kafka_message_destroy(m); /* not a state record: no key */
        return;
    }
    memcpy(key, m->key, m->key_len);
    key[m->key_len] = '\0';
    old = bw_map_get(latest, key);
    if (bw_map_put(latest, key, m) != BW_OK) {
        apply(p, t, m, c); /* past the map's capacity: load it now */
        rd_kafka_message_destroy(m);
        return;
    }
    if (old != NULL) {
        rd_kafka_message_destroy(old);
    }
}

/* Read the changelog partition from @p from to its read_committed end. */
static bw_err_t read_to_end(bw_pipeline_t *p, task_t *t, int64_t from,
                            restore_count_t *c)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    bw_map_t *latest = NULL;
    apply_ctx_t ac = {p, t, c};
    int64_t deadline = bw_wall_ms() + (int64_t)p->cfg->state.restore_timeout_ms;
    int64_t lo = 0, hi = 0;
    bw_err_t err = BW_OK;

    /* nothing to read past @p from: no fetch round trip (a new
     * partition's restore is then immediate) */
    if (rd_kafka_query_watermark_offsets(p->restorer, p->cl_topic, t->partition,
                                         &lo, &hi, WATERMARK_TIMEOUT_MS) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        (hi == lo || (from >= 0 && from >= hi))) {
        rd_kafka_topic_partition_list_destroy(l);
        return BW_OK;
    }
    rd_kafka_topic_partition_list_add(l, p->cl_topic, t->partition)->offset =
        from;
    latest = bw_map_new(3 * (size_t)p->cfg->engine.max_series + 16);
    if (latest == NULL) {
        err = bw__fatal(p, "state restore", "out of memory");
    } else if (rd_kafka_assign(p->restorer, l) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        err = bw__fatal(p, "state restore", "cannot assign the changelog");
    }
    while (err == BW_OK) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(p->restorer, 200);
        if (m == NULL) {
            if (bw_wall_ms() > deadline) {
                err = bw__fatal(p, "state restore",
                                "state.restore_timeout_ms passed before the "
                                "changelog's end");
            }
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            rd_kafka_message_destroy(m);
            break;
        }
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            bw__warn(p, "state restore: %s", rd_kafka_message_errstr(m));
            if (m->err == RD_KAFKA_RESP_ERR__FATAL ||
                m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
                err = bw__fatal(p, "state restore", rd_kafka_message_errstr(m));
            } else if (bw_wall_ms() > deadline) { /* errors without end */
                err = bw__fatal(p, "state restore",
                                "state.restore_timeout_ms passed before the "
                                "changelog's end, with errors");
            }
        } else {
            keep_latest(p, t, latest, m, c);
            if ((++p->restore_read & 1023) == 0) {
                bw__health(p); /* a long restore is not a stalled loop */
            }
            continue; /* m is the map's (or loaded and freed) */
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(p->restorer, NULL);
    rd_kafka_topic_partition_list_destroy(l);
    if (latest != NULL) {
        bw_map_each(latest, apply_latest, &ac); /* frees every message */
        bw_map_destroy(latest);
    }
    if (err == BW_OK && c->rs.failed > 0) {
        /* a key left out would start from the prior and its next change
         * replace its record: the stage stops instead, state intact */
        char why[160];
        snprintf(why, sizeof(why),
                 "%llu keys could not be held (out of memory, or "
                 "engine.max_series reached)",
                 (unsigned long long)c->rs.failed);
        err = bw__fatal(p, "state restore", why);
    }
    return err;
}

/* ---- replaying the input since the last flush ---- */

/* Poll the restore consumer for the next record of its assignment; NULL
 * at the partition's end or on a fatal error (err set). */
static rd_kafka_message_t *next_input(bw_pipeline_t *p, int64_t deadline,
                                      bw_err_t *err)
{
    for (;;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(p->restorer, 200);
        if (m == NULL) {
            if (bw_wall_ms() > deadline) {
                *err = bw__fatal(p, "state replay",
                                 "state.restore_timeout_ms passed before the "
                                 "committed input offset");
                return NULL;
            }
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            return m;
        }
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            bw__warn(p, "state replay: %s", rd_kafka_message_errstr(m));
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF ||
            m->err == RD_KAFKA_RESP_ERR__FATAL ||
            m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                *err = bw__fatal(p, "state replay", rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
            return NULL;
        }
        rd_kafka_message_destroy(m);
        if (bw_wall_ms() > deadline) { /* errors without end */
            *err = bw__fatal(p, "state replay",
                             "state.restore_timeout_ms passed before the "
                             "committed input offset, with errors");
            return NULL;
        }
    }
}

/* The input records [from, upto) of @p t, scored again into its engine as
 * they were the first time (bw__replay_record: no outputs), so its models
 * reach the committed input offset. The records are the same (offsets are
 * immutable) and scoring is deterministic (the RNG is model state; the
 * wall-clock decisions force a flush, so none lies in the range).
 * @returns the records replayed, or -1 with err set. */
static int64_t replay(bw_pipeline_t *p, task_t *t, int64_t from, int64_t upto,
                      bw_err_t *err)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    int64_t deadline = bw_wall_ms() + (int64_t)p->cfg->state.restore_timeout_ms;
    int64_t n = 0, last = from - 1, lo = -1, hi = -1;
    rd_kafka_message_t *m;

    if (rd_kafka_query_watermark_offsets(p->restorer, t->topic, t->partition,
                                         &lo, &hi, WATERMARK_TIMEOUT_MS) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        lo > from) {
        bw__logx(p, BW_LOG_WARN, t->partition,
                 "state: %s [%d]: input offsets %lld..%lld are no longer in "
                 "the topic (retention): their effect on the models is lost",
                 t->topic, (int)t->partition, (long long)from,
                 (long long)(lo - 1));
    }

    rd_kafka_topic_partition_list_add(l, t->topic, t->partition)->offset = from;
    if (rd_kafka_assign(p->restorer, l) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        *err = bw__fatal(p, "state replay", "cannot assign the input");
    }
    while (*err == BW_OK && last + 1 < upto &&
           (m = next_input(p, deadline, err)) != NULL) {
        if (m->offset < upto) {
            bw__replay_record(&p->workers[0], t, m);
            n++;
            if ((n & 1023) == 0) {
                bw__health(p);
            }
        }
        last = m->offset;
        rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(p->restorer, NULL);
    rd_kafka_topic_partition_list_destroy(l);
    return *err == BW_OK ? n : -1;
}

bw_err_t bw__restore(bw_pipeline_t *p, task_t *t, int64_t upto)
{
    restore_count_t c = {0};
    int64_t replayed = 0;
    bw_engine_stats_t es;
    int64_t t0 = bw_wall_ms(), from = RD_KAFKA_OFFSET_BEGINNING;
    bw_err_t err;
    char why[256];

    if (!p->changelog) {
        return BW_OK;
    }
    c.rs.offset = -1;
    p->restore_read = 0;
    bw__logx(p, BW_LOG_INFO, t->partition, "state: restoring %s [%d] from %s",
             t->topic, (int)t->partition, p->cl_topic);
    err = bw__checkpoint_load(p, t, &from, &c.rs);
    if (err == BW_OK) {
        bw__logx(p, BW_LOG_INFO, t->partition,
                 "state: %s [%d]: local checkpoint holds %llu keys; "
                 "reading the changelog from offset %lld",
                 t->topic, (int)t->partition, (unsigned long long)c.rs.loaded,
                 (long long)from);
    }
    err = err == BW_OK || err == BW_ERR_NOTFOUND || err == BW_ERR_CORRUPT
              ? read_to_end(p, t, from, &c)
              : err; /* fatal */
    if (err == BW_OK && bw_engine_restore_done(t->eng) != BW_OK) {
        snprintf(why, sizeof(why), "pooled series could not be relinked");
        err = bw__fatal(p, "state restore", why);
    }
    if (err == BW_OK && c.rs.offset >= 0 && upto > c.rs.offset) {
        replayed = replay(p, t, c.rs.offset, upto, &err);
        c.rs.offset = upto; /* the models have seen every record before it */
        p->replayed += replayed > 0 ? (uint64_t)replayed : 0;
    }
    t->restore_failed = err != BW_OK;
    t->state_offset = c.rs.offset;
    /* stream time resumes from the state: a silent input's series go
     * stale by wall time from here, not only after the next record (a
     * rewind to the same watermark keeps its clock) */
    if (bw_engine_watermark(t->eng) != t->mark) {
        t->mark = bw_engine_watermark(t->eng);
        t->wall_at_mark = bw_wall_ms();
    }
    t->flushed_at = -1; /* the first commit after a restore flushes */
    p->restores++;
    p->restore_ms += bw_wall_ms() - t0;
    bw_engine_stats(t->eng, &es);
    bw__logx(p, BW_LOG_INFO, t->partition,
             "state: restored %s [%d]: %llu keys (%llu series, models %.1f MB) "
             "from %llu records (%.1f MB, %llu tombstones) and %lld input "
             "records replayed in %.2f s; %llu "
             "written under another model config and %llu unreadable start "
             "from the prior; state at input offset %lld",
             t->topic, (int)t->partition,
             (unsigned long long)(es.series + es.groups + es.entities),
             (unsigned long long)es.series, (double)es.bytes / 1e6,
             (unsigned long long)c.records, (double)c.bytes / 1e6,
             (unsigned long long)c.tombstones, (long long)replayed,
             (double)(bw_wall_ms() - t0) / 1000.0,
             (unsigned long long)c.rs.config_changed,
             (unsigned long long)c.rs.corrupt, (long long)c.rs.offset);
    return err;
}
