/*
 * kbench: the pieces of the broker benchmark (bench/kafka.sh).
 *
 *   kbench feed BROKERS TOPIC N RATE [POISON_EVERY]
 *       N synthetic metric events (16 series, Confluent-framed Avro, key =
 *       region), paced at RATE events/s (0 = as fast as possible); every
 *       POISON_EVERY-th record is not Avro (a dead letter for the stage).
 *   kbench passthrough BROKERS IN OUT N COMMIT_MS
 *       the Kafka ceiling, like for like with the stage: a transactional
 *       consume -> produce of N records unchanged, read_committed input,
 *       offsets sent in the transaction, committed every COMMIT_MS (the
 *       stage's commit_interval_ms); timed by a `tail` of OUT, as the
 *       stage is.
 *   kbench tail BROKERS TOPIC N [SKIP]
 *       a read_committed reader of an output topic: the rate at which N
 *       records become visible (first to last) and, for score records, the
 *       latency from each input's append (its Kafka timestamp, carried in
 *       the score's source_timestamp) to the moment the score is readable,
 *       over all but the first SKIP (start-up: metadata, first fetches).
 *   kbench count BROKERS TOPIC
 *       the records a read_committed reader sees on TOPIC, to the end of
 *       every partition.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <avro.h>
#include <librdkafka/rdkafka.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/ingest.h"
#include "bayeswatch/schemas.h"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static rd_kafka_t *client(rd_kafka_type_t type, const char *brokers,
                          const char *group)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char err[512];
    rd_kafka_t *rk;

    rd_kafka_conf_set(c, "bootstrap.servers", brokers, NULL, 0);
    if (type == RD_KAFKA_PRODUCER) {
        rd_kafka_conf_set(c, "enable.idempotence", "true", NULL, 0);
    } else {
        rd_kafka_conf_set(c, "group.id", group, NULL, 0);
        rd_kafka_conf_set(c, "auto.offset.reset", "earliest", NULL, 0);
        rd_kafka_conf_set(c, "enable.auto.commit", "false", NULL, 0);
        rd_kafka_conf_set(c, "isolation.level", "read_committed", NULL, 0);
        /* `count` stops at every partition's end; the others skip it */
        rd_kafka_conf_set(c, "enable.partition.eof", "true", NULL, 0);
        /* a reader that wants scores promptly does not let the broker hold
         * its fetch for the default 500 ms */
        rd_kafka_conf_set(c, "fetch.wait.max.ms", "10", NULL, 0);
    }
    rk = rd_kafka_new(type, c, err, sizeof(err));
    if (rk == NULL) {
        fprintf(stderr, "kbench: %s\n", err);
        exit(1);
    }
    return rk;
}

/* A group consumer (a fresh group: from the beginning) of @p topic. */
static rd_kafka_t *subscriber(const char *brokers, const char *what,
                              const char *topic)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    char group[64];
    rd_kafka_t *cons;

    snprintf(group, sizeof(group), "kbench-%s-%ld-%ld", what, (long)time(NULL),
             (long)getpid());
    cons = client(RD_KAFKA_CONSUMER, brokers, group);
    rd_kafka_poll_set_consumer(cons);
    rd_kafka_topic_partition_list_add(l, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(cons, l);
    rd_kafka_topic_partition_list_destroy(l);
    return cons;
}

static void produce(rd_kafka_t *rk, const char *topic, const void *key,
                    size_t klen, const void *v, size_t n)
{
    rd_kafka_resp_err_t e;

    while ((e = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY((void *)key, klen),
                RD_KAFKA_V_VALUE((void *)v, n),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(rk, 5);
    }
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "kbench: produce: %s\n", rd_kafka_err2str(e));
        exit(1);
    }
}

/* N events of SERIES series (regions r0.. with two metrics each), one
 * event per series per minute. */
static int feed(const char *brokers, const char *topic, long n, double rate,
                long poison, long series)
{
    static const char *const metrics[2] = {"latency_ms", "cpu"};
    char region[32];
    rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, brokers, NULL);
    char err[256];
    bw_codec_t *c =
        bw_codec_new(bw_schema_metric_event, bw_schema_metric_event_len,
                     BW_FRAMING_CONFLUENT, 1, err, sizeof(err));
    bw_wbuf_t w = {0};
    double t0 = now_s();
    uint64_t x = 88172645463325252ULL;
    long bad = 0;

    for (long i = 0; i < n; i++) {
        bw_event_t ev = {.time_ms = 1764000000000LL + (i / series) * 60000,
                         .region = region,
                         .service = "api",
                         .metric = metrics[i % 2],
                         .count = NAN};
        snprintf(region, sizeof(region), "r%ld", (i % series) / 2);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 noise */
        ev.value = 100 + (double)(x % 1000) / 100.0;
        w.len = 0;
        bw_codec_encode(c, &ev, &w);
        if (poison > 0 && i % poison == poison - 1) { /* not Avro at all */
            produce(rk, topic, ev.region, 2, "\x07poison", 7);
            bad++;
        } else {
            produce(rk, topic, ev.region, 2, w.data, w.len);
        }
        if (rate > 0) {
            double due = t0 + (double)(i + 1) / rate;
            while (now_s() < due) {
                rd_kafka_poll(rk, 1);
            }
        } else {
            rd_kafka_poll(rk, 0);
        }
    }
    rd_kafka_flush(rk, 60000);
    printf("fed %ld events in %.2f s (%ld poison)\n", n, now_s() - t0, bad);
    bw_codec_destroy(c);
    bw_wbuf_free(&w);
    rd_kafka_destroy(rk);
    return 0;
}

/* The transactional producer of the pass-through, as the stage's. */
static rd_kafka_t *txn_producer(const char *brokers)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char err[512], id[64];
    rd_kafka_t *rk;
    rd_kafka_error_t *e;

    snprintf(id, sizeof(id), "kbench-pt-%ld", (long)getpid());
    rd_kafka_conf_set(c, "bootstrap.servers", brokers, NULL, 0);
    rd_kafka_conf_set(c, "enable.idempotence", "true", NULL, 0);
    rd_kafka_conf_set(c, "transactional.id", id, NULL, 0);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
    if (rk == NULL) {
        fprintf(stderr, "kbench: %s\n", err);
        exit(1);
    }
    if ((e = rd_kafka_init_transactions(rk, 60000)) != NULL ||
        (e = rd_kafka_begin_transaction(rk)) != NULL) {
        fprintf(stderr, "kbench: %s\n", rd_kafka_error_string(e));
        exit(1);
    }
    return rk;
}

/* Send the consumer's positions with its group metadata, commit, begin
 * the next transaction (KIP-447, as the stage does). */
static void commit_txn(rd_kafka_t *prod, rd_kafka_t *cons, bool again)
{
    rd_kafka_topic_partition_list_t *pos = NULL;
    rd_kafka_consumer_group_metadata_t *md =
        rd_kafka_consumer_group_metadata(cons);
    rd_kafka_error_t *e = NULL;

    rd_kafka_assignment(cons, &pos);
    rd_kafka_position(cons, pos);
    e = rd_kafka_send_offsets_to_transaction(prod, pos, md, 10000);
    if (e == NULL) {
        e = rd_kafka_commit_transaction(prod, 10000);
    }
    if (e == NULL && again) {
        e = rd_kafka_begin_transaction(prod);
    }
    if (e != NULL) {
        fprintf(stderr, "kbench: %s\n", rd_kafka_error_string(e));
        exit(1);
    }
    rd_kafka_consumer_group_metadata_destroy(md);
    rd_kafka_topic_partition_list_destroy(pos);
}

/* The ceiling for the stage: a transactional consume -> produce of the
 * same records with the stage's commit interval, read_committed input;
 * timed, like the stage, by a read_committed `tail` of its output. */
static int passthrough(const char *brokers, const char *in, const char *out,
                       long n, double commit_ms)
{
    rd_kafka_t *prod = txn_producer(brokers);
    rd_kafka_t *cons = subscriber(brokers, "pt", in);
    double last = now_s();
    long got = 0;

    while (got < n) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 100);
        if (m != NULL && m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            produce(prod, out, m->key, m->key_len, m->payload, m->len);
            got++;
        }
        if (m != NULL) {
            rd_kafka_message_destroy(m);
        }
        rd_kafka_poll(prod, 0);
        if ((now_s() - last) * 1e3 >= commit_ms) {
            commit_txn(prod, cons, true);
            last = now_s();
        }
    }
    commit_txn(prod, cons, false);
    rd_kafka_consumer_close(cons);
    rd_kafka_destroy(cons);
    rd_kafka_destroy(prod);
    return 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* source_timestamp of a Confluent-framed AnomalyScore record, or -1. */
static int64_t source_ts(avro_value_t *v, avro_reader_t r,
                         const rd_kafka_message_t *m)
{
    avro_value_t f;
    int64_t ts = -1;

    if (m->len < 5) {
        return -1;
    }
    avro_reader_memory_set_source(r, (const char *)m->payload + 5,
                                  (int64_t)m->len - 5);
    avro_value_reset(v);
    if (avro_value_read(r, v) != 0 ||
        avro_value_get_by_name(v, "source_timestamp", &f, NULL) != 0 ||
        avro_value_get_long(&f, &ts) != 0) {
        return -1;
    }
    return ts;
}

static int tail(const char *brokers, const char *topic, long n, long skip)
{
    rd_kafka_t *cons;
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t v;
    avro_reader_t r = avro_reader_memory(NULL, 0);
    double *lat = malloc(sizeof(double) * (size_t)n), t0 = 0, t1 = 0;
    long got = 0, nlat = 0;

    if (lat == NULL ||
        avro_schema_from_json_length(bw_schema_anomaly_score,
                                     bw_schema_anomaly_score_len, &schema)) {
        return 1;
    }
    iface = avro_generic_class_from_schema(schema);
    avro_generic_value_new(iface, &v);
    cons = subscriber(brokers, "tail", topic);
    while (got < n) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 1000);
        if (m == NULL) {
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            double t = now_s();
            int64_t ts = source_ts(&v, r, m);
            t0 = got == 0 ? t : t0;
            t1 = t;
            got++;
            if (ts > 0) { /* score records; a pass-through's have none */
                lat[nlat++] = t * 1e3 - (double)ts;
            }
        }
        rd_kafka_message_destroy(m);
    }
    if (getenv("KBENCH_DUMP") != NULL) { /* latencies in arrival order */
        FILE *f = fopen(getenv("KBENCH_DUMP"), "w");
        for (long i = 0; f != NULL && i < nlat; i++) {
            fprintf(f, "%.1f\n", lat[i]);
        }
        if (f != NULL) {
            fclose(f);
        }
    }
    printf("tail %ld records visible in %.3f s: %.0f records/s", n, t1 - t0,
           (double)(n - 1) / (t1 - t0));
    if (nlat > skip) {
        double first = lat[0], *xs = lat + skip;
        long m = nlat - skip;
        qsort(xs, (size_t)m, sizeof(double), cmp_d);
        printf("; latency append->readable p50 %.1f ms, p99 %.1f ms (first "
               "%ld excluded; the very first %.0f ms)",
               xs[m / 2], xs[(long)(0.99 * (double)(m - 1))], skip, first);
    }
    putchar('\n');
    rd_kafka_consumer_close(cons);
    rd_kafka_destroy(cons);
    avro_value_decref(&v);
    avro_value_iface_decref(iface);
    avro_schema_decref(schema);
    avro_reader_free(r);
    free(lat);
    return 0;
}

/* Records a read_committed reader sees on @p topic, to the end of every
 * partition (an exactly-once stage: as many as its inputs). */
static int count(const char *brokers, const char *topic)
{
    rd_kafka_t *cons;
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *rkt;
    long n = 0;
    int parts, eof = 0;
    double idle = now_s();

    cons = client(RD_KAFKA_CONSUMER, brokers, "kbench-count");
    rkt = rd_kafka_topic_new(cons, topic, NULL);
    if (rd_kafka_metadata(cons, 0, rkt, &md, 10000) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        md->topic_cnt != 1) {
        fprintf(stderr, "kbench: no metadata for %s\n", topic);
        return 1;
    }
    parts = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    {
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_new(parts);
        for (int p = 0; p < parts; p++) {
            rd_kafka_topic_partition_list_add(l, topic, p)->offset =
                RD_KAFKA_OFFSET_BEGINNING;
        }
        rd_kafka_assign(cons, l);
        rd_kafka_topic_partition_list_destroy(l);
    }
    while (eof < parts && now_s() - idle < 30) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 500);
        if (m == NULL) {
            continue;
        }
        idle = now_s();
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            eof++;
        } else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            n++;
        }
        rd_kafka_message_destroy(m);
    }
    printf("%ld\n", n);
    rd_kafka_destroy(cons);
    return eof == parts ? 0 : 1;
}

int main(int argc, char **argv)
{
    if ((argc >= 6 && argc <= 8) && strcmp(argv[1], "feed") == 0) {
        long series = argc == 8 ? atol(argv[7]) : 16;
        return series >= 2
                   ? feed(argv[2], argv[3], atol(argv[4]), atof(argv[5]),
                          argc >= 7 ? atol(argv[6]) : 0, series)
                   : 64;
    }
    if (argc == 7 && strcmp(argv[1], "passthrough") == 0) {
        return passthrough(argv[2], argv[3], argv[4], atol(argv[5]),
                           atof(argv[6]));
    }
    if (argc == 4 && strcmp(argv[1], "count") == 0) {
        return count(argv[2], argv[3]);
    }
    if ((argc == 5 || argc == 6) && strcmp(argv[1], "tail") == 0) {
        long n = atol(argv[4]), skip = argc == 6 ? atol(argv[5]) : 0;
        return n > 0 && skip >= 0 && skip < n ? tail(argv[2], argv[3], n, skip)
                                              : 64;
    }
    fprintf(stderr, "usage: kbench feed BROKERS TOPIC N RATE [POISON_EVERY "
                    "[SERIES]]\n"
                    "       kbench passthrough BROKERS IN OUT N COMMIT_MS\n"
                    "       kbench tail BROKERS TOPIC N [SKIP]\n"
                    "       kbench count BROKERS TOPIC\n");
    return 64;
}
