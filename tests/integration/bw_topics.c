/*
 * bw_topics: create topics (Admin API) for the integration tests; a topic
 * that already exists is fine.
 *
 *   bw_topics BROKERS PARTITIONS TOPIC...
 */
#include <stdio.h>
#include <stdlib.h>

#include <librdkafka/rdkafka.h>

int main(int argc, char **argv)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    rd_kafka_NewTopic_t *nt[64];
    rd_kafka_queue_t *q;
    rd_kafka_event_t *ev;
    const rd_kafka_topic_result_t **res;
    size_t n_res = 0;
    int n = argc - 3, rc = 0;

    if (argc < 4 || n > 64) {
        fprintf(stderr, "usage: bw_topics BROKERS PARTITIONS TOPIC...\n");
        return 2;
    }
    if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], errstr,
                          sizeof(errstr)) ||
        (rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr))) ==
            NULL) {
        fprintf(stderr, "bw_topics: %s\n", errstr);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        nt[i] = rd_kafka_NewTopic_new(argv[3 + i], atoi(argv[2]), 1, errstr,
                                      sizeof(errstr));
    }
    q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, nt, (size_t)n, NULL, q);
    ev = rd_kafka_queue_poll(q, 30000);
    if (ev == NULL || rd_kafka_event_error(ev)) {
        fprintf(stderr, "bw_topics: %s\n",
                ev ? rd_kafka_event_error_string(ev) : "timed out");
        rc = 1;
    } else {
        res = rd_kafka_CreateTopics_result_topics(
            rd_kafka_event_CreateTopics_result(ev), &n_res);
        for (size_t i = 0; i < n_res; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
            if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                fprintf(stderr, "bw_topics: %s: %s\n",
                        rd_kafka_topic_result_name(res[i]),
                        rd_kafka_topic_result_error_string(res[i]));
                rc = 1;
            }
        }
    }
    if (ev != NULL) {
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_NewTopic_destroy_array(nt, (size_t)n);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}
