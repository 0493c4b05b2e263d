/* librdkafka configurations of the stage's clients (internal). */
#ifndef BW_PIPELINE_KAFKA_CONF_H
#define BW_PIPELINE_KAFKA_CONF_H

#include <stdio.h>

#include <librdkafka/rdkafka.h>

#include "bayeswatch/pipeline.h"

typedef enum {
    BW_KAFKA_CONSUMER,
    BW_KAFKA_PRODUCER,
    BW_KAFKA_RESTORE /* the changelog reader: no group, read_committed */
} bw_kafka_role_t;

/** The instance name: @p override, pipeline.instance_id, or the host name. */
void bw__kafka_instance(const bw_config_t *cfg, const char *override, char *out,
                        size_t n);

/** librdkafka ssl.certificate.verify_cb (security.c): OpenSSL's verdict,
 * with its reason in words. */
int bw__ssl_verify(rd_kafka_t *rk, const char *broker_name, int32_t broker_id,
                   int *x509_error, int depth, const char *buf, size_t size,
                   char *errstr, size_t errstr_size, void *opaque);

/**
 * @brief A client configuration: managed properties, then the user's map.
 * @param diag  problems with the map are also reported here at their line.
 * @returns NULL with errstr set (the first problem).
 */
/** The transaction.timeout.ms @p c gives its producer (ms). */
int64_t bw__txn_timeout_ms(const rd_kafka_conf_t *c);

rd_kafka_conf_t *bw__kafka_conf(const bw_config_t *cfg, bw_kafka_role_t role,
                                const char *bootstrap, const char *instance,
                                FILE *diag, char *errstr, size_t errstr_size);

#endif
