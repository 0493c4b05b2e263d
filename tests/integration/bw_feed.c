/*
 * bw_feed: produce metric events to a topic for the integration tests, as
 * an upstream service would: Avro in the Confluent wire format (our codec,
 * the same bytes fastavro writes), key = region. With --poison N, after
 * every N good records one bad record follows, cycling through the
 * dead-letter reasons the stage must handle.
 *
 *   bw_feed BROKERS TOPIC FILE [--poison N] [--schema-id ID]
 *   FILE lines: time_ms,region,service,metric,value[,count]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/ingest.h"
#include "bayeswatch/schemas.h"

static int send1(rd_kafka_t *rk, const char *topic, const char *key,
                 const void *v, size_t n)
{
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_KEY((void *)key, strlen(key)),
            RD_KAFKA_V_VALUE((void *)v, n),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            return 0;
        }
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            fprintf(stderr, "bw_feed: %s\n", rd_kafka_err2str(e));
            return -1;
        }
        rd_kafka_poll(rk, 10);
    }
}

/* Bad record number k: garbage, unknown schema id, NaN, absurd time,
 * truncated, 100 KB of garbage (more than a dead letter copies). */
static int poison(rd_kafka_t *rk, const char *topic, bw_codec_t *c,
                  const bw_event_t *good, int k, bw_wbuf_t *w)
{
    static const unsigned char garbage[] = "not avro at all";
    bw_event_t ev = *good;

    w->len = 0;
    switch (k % 6) {
    case 0:
        return send1(rk, topic, "poison", garbage, sizeof(garbage) - 1);
    case 5:
        for (int i = 0; i < 100000; i++) {
            bw_wbuf_u8(w, 0x01);
        }
        break;
    case 1:
        bw_codec_encode(c, &ev, w);
        w->data[4] ^= 0x7f; /* schema id */
        break;
    case 2:
        ev.value = NAN;
        bw_codec_encode(c, &ev, w);
        break;
    case 3:
        ev.time_ms = 400000000000000LL; /* year ~14645 */
        bw_codec_encode(c, &ev, w);
        break;
    case 4:
        bw_codec_encode(c, &ev, w);
        w->len /= 2;
        break;
    }
    return send1(rk, topic, "poison", w->data, w->len);
}

static int parse(char *line, bw_event_t *ev)
{
    char *f[6];
    int n = 0;

    for (char *tok = strtok(line, ",\n"); tok != NULL && n < 6;
         tok = strtok(NULL, ",\n")) {
        f[n++] = tok;
    }
    if (n < 5) {
        return -1;
    }
    ev->time_ms = strtoll(f[0], NULL, 10);
    ev->region = f[1];
    ev->service = f[2];
    ev->metric = f[3];
    ev->value = strtod(f[4], NULL);
    ev->count = n > 5 ? strtod(f[5], NULL) : NAN;
    return 0;
}

int main(int argc, char **argv)
{
    char errstr[512], line[1024];
    int every = 0, good = 0, bad = 0, rc = 1;
    long schema_id = 1;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk = NULL;
    bw_codec_t *c = NULL;
    bw_wbuf_t w = {0};
    FILE *in = NULL;

    for (int i = 4; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--poison") == 0) {
            every = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--schema-id") == 0) {
            schema_id = atol(argv[i + 1]);
        }
    }
    if (argc < 4 || (in = fopen(argv[3], "r")) == NULL) {
        fprintf(stderr, "usage: bw_feed BROKERS TOPIC FILE [--poison N]\n");
        goto out;
    }
    c = bw_codec_new(bw_schema_metric_event, bw_schema_metric_event_len,
                     BW_FRAMING_CONFLUENT, (int32_t)schema_id, errstr,
                     sizeof(errstr));
    if (c == NULL ||
        rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK ||
        (rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr))) ==
            NULL) {
        fprintf(stderr, "bw_feed: %s\n", errstr);
        goto out;
    }
    conf = NULL;
    while (fgets(line, sizeof(line), in) != NULL) {
        bw_event_t ev;
        if (parse(line, &ev) != 0) {
            continue;
        }
        w.len = 0;
        if (bw_codec_encode(c, &ev, &w) != BW_OK ||
            send1(rk, argv[2], ev.region, w.data, w.len) != 0) {
            goto out;
        }
        good++;
        if (every > 0 && good % every == 0) {
            if (poison(rk, argv[2], c, &ev, bad, &w) != 0) {
                goto out;
            }
            bad++;
        }
    }
    if (rd_kafka_flush(rk, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "bw_feed: flush timed out\n");
        goto out;
    }
    printf("%d %d\n", good, bad);
    rc = 0;
out:
    if (conf != NULL) {
        rd_kafka_conf_destroy(conf);
    }
    if (rk != NULL) {
        rd_kafka_destroy(rk);
    }
    if (in != NULL) {
        fclose(in);
    }
    bw_codec_destroy(c);
    bw_wbuf_free(&w);
    return rc;
}
