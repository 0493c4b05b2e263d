/*
 * bw_offsets: set a consumer group's committed offset of one partition
 * (Admin API, AlterConsumerGroupOffsets), as `kafka-consumer-groups
 * --reset-offsets` does: the integration tests' stand-in for a crash
 * between a stage's state write and its offset commit. The group must
 * have no members; a group that still has one is retried for 30 s.
 *
 *   bw_offsets BROKERS GROUP TOPIC PARTITION OFFSET
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#define ATTEMPTS 60 /* 30 s */

/* One attempt: 0 done, 1 failed (message in @p why). */
static int alter(rd_kafka_t *rk, char **argv, char *why, size_t n)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_AlterConsumerGroupOffsets_t *a;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_event_t *ev;
    const rd_kafka_group_result_t **res;
    const rd_kafka_topic_partition_list_t *parts;
    size_t n_res = 0;
    int rc = 1;

    rd_kafka_topic_partition_list_add(l, argv[3], atoi(argv[4]))->offset =
        strtoll(argv[5], NULL, 10);
    a = rd_kafka_AlterConsumerGroupOffsets_new(argv[2], l);
    rd_kafka_AlterConsumerGroupOffsets(rk, &a, 1, NULL, q);
    ev = rd_kafka_queue_poll(q, 30000);
    if (ev == NULL || rd_kafka_event_error(ev)) {
        snprintf(why, n, "%s", ev ? rd_kafka_event_error_string(ev) : "timed out");
    } else {
        res = rd_kafka_AlterConsumerGroupOffsets_result_groups(
            rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &n_res);
        parts = n_res == 1 ? rd_kafka_group_result_partitions(res[0]) : NULL;
        if (n_res != 1 || rd_kafka_group_result_error(res[0]) != NULL) {
            snprintf(why, n, "%s",
                     n_res != 1 ? "no group result"
                                : rd_kafka_error_string(
                                      rd_kafka_group_result_error(res[0])));
        } else if (parts == NULL || parts->cnt != 1 || parts->elems[0].err) {
            snprintf(why, n, "%s",
                     parts == NULL || parts->cnt != 1
                         ? "no partition result"
                         : rd_kafka_err2str(parts->elems[0].err));
        } else {
            rc = 0;
        }
    }
    if (ev != NULL) {
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AlterConsumerGroupOffsets_destroy(a);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_queue_destroy(q);
    return rc;
}

int main(int argc, char **argv)
{
    char errstr[512] = "";
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    int rc = 1;

    if (argc != 6) {
        fprintf(stderr, "usage: bw_offsets BROKERS GROUP TOPIC PARTITION "
                        "OFFSET\n");
        return 2;
    }
    if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], errstr,
                          sizeof(errstr)) ||
        (rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr))) ==
            NULL) {
        fprintf(stderr, "bw_offsets: %s\n", errstr);
        return 1;
    }
    for (int i = 0; i < ATTEMPTS && rc != 0; i++) {
        if (i > 0) {
            usleep(500 * 1000); /* a member that is still leaving */
        }
        rc = alter(rk, argv, errstr, sizeof(errstr));
    }
    if (rc != 0) {
        fprintf(stderr, "bw_offsets: %s\n", errstr);
    }
    rd_kafka_destroy(rk);
    return rc;
}
