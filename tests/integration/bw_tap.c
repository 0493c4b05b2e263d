/*
 * bw_tap: read a whole topic (every partition, from the beginning to the
 * end offsets at start) as a read_committed consumer would, and print
 * one line per record: PARTITION OFFSET KEY_HEX VALUE_HEX HEADERS
 * (headers as name=value;...; "-" when none). The integration tests
 * decode the values with fastavro.
 *
 *   bw_tap BROKERS TOPIC [read_committed|read_uncommitted [SETTLE_S]]
 *
 * The end offsets are the high watermarks (asked read_uncommitted). A
 * read_committed consumer's end is the last stable offset: records of a
 * transaction whose commit marker is not yet written (markers are written
 * asynchronously after the commit returns) are not visible yet. With
 * SETTLE_S > 0 a partition whose end comes short of the high watermark
 * taken at start stays open for up to SETTLE_S seconds without progress;
 * if it is still short then, each such partition is reported and the exit
 * status is 3 (records stuck behind an open transaction). SETTLE_S 0 (the
 * default) takes the end as it is (a read while a stage is running).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Each partition still short of its end offset, to stderr. */
static void report_short(const char *topic, const int64_t *end,
                         const int64_t *at, const char *done, int n,
                         double settle)
{
    for (int p = 0; p < n; p++) {
        if (!done[p]) {
            fprintf(stderr,
                    "bw_tap: %s [%d]: read_committed end %lld short of the "
                    "high watermark %lld after %.0f s without progress (a "
                    "transaction still open?)\n",
                    topic, p, (long long)at[p], (long long)end[p], settle);
        }
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

/* A consumer at @p isolation. The end offsets are asked with a
 * read_uncommitted one, so that they are the high watermarks (a
 * read_committed ListOffsets answers the last stable offset: a partition
 * whose first transaction were still open would read as empty and be
 * skipped without a word). */
static rd_kafka_t *consumer(const char *brokers, const char *isolation,
                            char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk = NULL;

    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr,
                          errstr_size) ||
        rd_kafka_conf_set(conf, "group.id", "bw_tap", errstr, errstr_size) ||
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr,
                          errstr_size) ||
        rd_kafka_conf_set(conf, "isolation.level", isolation, errstr,
                          errstr_size) ||
        (rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size)) ==
            NULL) {
        rd_kafka_conf_destroy(conf); /* no handle took it */
        return NULL;
    }
    return rk;
}

int main(int argc, char **argv)
{
    char errstr[512];
    rd_kafka_t *rk, *wk;
    rd_kafka_topic_partition_list_t *l;
    int64_t end[MAX_PARTS], at[MAX_PARTS];
    char done[MAX_PARTS]; /* a partition read to its end, or empty */
    int n, open = 0, shorts = 0;
    int committed = argc <= 3 || strcmp(argv[3], "read_uncommitted") != 0;
    double settle = argc > 4 ? atof(argv[4]) : 0.0, last;

    if (argc < 3) {
        fprintf(stderr, "usage: bw_tap BROKERS TOPIC "
                        "[read_committed|read_uncommitted [SETTLE_S]]\n");
        return 2;
    }
    rk = consumer(argv[1], argc > 3 ? argv[3] : "read_committed", errstr,
                  sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "bw_tap: %s\n", errstr);
        return 1;
    }
    wk = consumer(argv[1], "read_uncommitted", errstr, sizeof(errstr));
    if (wk == NULL) {
        fprintf(stderr, "bw_tap: %s\n", errstr);
        rd_kafka_destroy(rk);
        return 1;
    }
    n = partitions(wk, argv[2]);
    if (n <= 0 || n > MAX_PARTS) {
        fprintf(stderr, "bw_tap: no topic %s\n", argv[2]);
        rd_kafka_destroy(wk);
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
            e = rd_kafka_query_watermark_offsets(wk, argv[2], p, &lo, &end[p],
                                                 10000);
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR && (lo < 0 || end[p] < lo)) {
                e = RD_KAFKA_RESP_ERR__NO_OFFSET; /* none given: ask again */
            }
            if (e != RD_KAFKA_RESP_ERR_NO_ERROR &&
                e != RD_KAFKA_RESP_ERR__TIMED_OUT) {
                rd_kafka_poll(wk, 500); /* metadata refreshes meanwhile */
            }
        }
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "bw_tap: %s [%d] end offsets: %s\n", argv[2], p,
                    rd_kafka_err2str(e));
            rd_kafka_topic_partition_list_destroy(l);
            rd_kafka_destroy(wk);
            rd_kafka_destroy(rk);
            return 1;
        }
        rd_kafka_topic_partition_list_add(l, argv[2], p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
        /* an empty partition is done at once: its EOF event must not
         * count as the end of another */
        done[p] = end[p] <= lo;
        open += !done[p];
    }
    rd_kafka_destroy(wk);
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    for (int p = 0; p < n; p++) {
        at[p] = -1;
    }
    last = now_s();
    while (open > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 1000);
        int p;

        if (m == NULL) {
            if (shorts == open && now_s() - last >= settle) {
                report_short(argv[2], end, at, done, n, settle);
                break;
            }
            if (now_s() - last >= 10.0 && shorts < open) {
                fprintf(stderr, "bw_tap: timed out with %d partitions open\n",
                        open);
                break;
            }
            continue;
        }
        p = m->partition;
        if (p < 0 || p >= n || done[p]) {
            /* not one of ours, or already ended: no progress */
            rd_kafka_message_destroy(m);
            continue;
        }
        last = now_s();
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->offset < end[p]) {
            printf("%d %lld ", p, (long long)m->offset);
            hex(m->key, m->key_len);
            fputc(' ', stdout);
            hex(m->payload, m->len);
            fputc(' ', stdout);
            headers(m);
            fputc('\n', stdout);
        }
        /* a transaction's commit marker may be the last offset: the
         * partition EOF event ends such a partition; an EOF short of the
         * end (read_committed: a marker not yet written) ends it only
         * without SETTLE_S */
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && committed &&
            settle > 0.0 && m->offset < end[p]) {
            shorts += at[p] < 0;
            at[p] = m->offset;
        } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF ||
                   (m->err == 0 && m->offset + 1 >= end[p])) {
            shorts -= at[p] >= 0;
            done[p] = 1;
            open--;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return open == 0 ? 0 : shorts == open ? 3 : 1;
}
