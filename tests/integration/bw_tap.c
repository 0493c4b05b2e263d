/*
 * bw_tap: read a whole topic (every partition, from the beginning to the
 * end offsets at start) as a read_committed consumer would, and print
 * one line per record: PARTITION OFFSET KEY_HEX VALUE_HEX HEADERS
 * (headers as name=value;...; "-" when none). The integration tests
 * decode the values with fastavro.
 *
 *   bw_tap BROKERS TOPIC [read_committed|read_uncommitted]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#define MAX_PARTS 256

static void hex(const void *p, size_t n)
{
    const unsigned char *b = p;

    if (p == NULL) {
        fputc('-', stdout);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        printf("%02x", b[i]);
    }
    if (n == 0) {
        fputc('-', stdout);
    }
}

static void headers(const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *h = NULL;
    const char *name;
    const void *val;
    size_t len;
    int any = 0;

    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &val, &len);
             i++) {
            printf("%s%s=%.*s", any++ ? ";" : "", name, (int)len,
                   (const char *)val);
        }
    }
    if (!any) {
        fputc('-', stdout);
    }
}

static int partitions(rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    int n = -1;

    if (rd_kafka_metadata(rk, 0, t, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1 && md->topics[0].err == 0) {
        n = md->topics[0].partition_cnt;
    }
    if (md != NULL) {
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(t);
    return n;
}

int main(int argc, char **argv)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    rd_kafka_topic_partition_list_t *l;
    int64_t end[MAX_PARTS];
    int n, open = 0;

    if (argc < 3) {
        fprintf(stderr, "usage: bw_tap BROKERS TOPIC [isolation]\n");
        return 2;
    }
    if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], errstr,
                          sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "group.id", "bw_tap", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr,
                          sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "isolation.level",
                          argc > 3 ? argv[3] : "read_committed", errstr,
                          sizeof(errstr)) ||
        (rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr))) ==
            NULL) {
        fprintf(stderr, "bw_tap: %s\n", errstr);
        return 1;
    }
    n = partitions(rk, argv[2]);
    if (n <= 0 || n > MAX_PARTS) {
        fprintf(stderr, "bw_tap: no topic %s\n", argv[2]);
        rd_kafka_destroy(rk);
        return 1;
    }
    l = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++) {
        int64_t lo = 0;
        rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__TIMED_OUT;
        /* a busy broker may time a query out, and a broker just resumed
         * may not have served the partition's metadata yet ("Unknown
         * partition", at once): retry, with a pause for the latter, and
         * never take an unanswered query for an empty partition */
        for (int attempt = 0; attempt < 20 && e != RD_KAFKA_RESP_ERR_NO_ERROR;
             attempt++) {
            e = rd_kafka_query_watermark_offsets(rk, argv[2], p, &lo, &end[p],
                                                 10000);
            if (e != RD_KAFKA_RESP_ERR_NO_ERROR &&
                e != RD_KAFKA_RESP_ERR__TIMED_OUT) {
                rd_kafka_poll(rk, 500); /* metadata refreshes meanwhile */
            }
        }
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "bw_tap: %s [%d] end offsets: %s\n", argv[2], p,
                    rd_kafka_err2str(e));
            rd_kafka_topic_partition_list_destroy(l);
            rd_kafka_destroy(rk);
            return 1;
        }
        rd_kafka_topic_partition_list_add(l, argv[2], p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
        open += end[p] > lo;
    }
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    while (open > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 10000);
        if (m == NULL) {
            fprintf(stderr, "bw_tap: timed out with %d partitions open\n",
                    open);
            break;
        }
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            printf("%d %lld ", (int)m->partition, (long long)m->offset);
            hex(m->key, m->key_len);
            fputc(' ', stdout);
            hex(m->payload, m->len);
            fputc(' ', stdout);
            headers(m);
            fputc('\n', stdout);
        }
        /* a transaction's commit marker may be the last offset: the
         * partition EOF event ends such a partition */
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF ||
            (m->err == 0 && m->offset + 1 >= end[m->partition])) {
            if (end[m->partition] >= 0) {
                end[m->partition] = -1;
                open--;
            }
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return open > 0;
}
