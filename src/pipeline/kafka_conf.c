/*
 * librdkafka client configurations built from bayeswatch's config: the
 * properties bayeswatch manages (offsets, transactions, idempotence,
 * assignment strategy default), then kafka.client (every client), then
 * kafka.consumer / kafka.producer as written. Property names and meanings:
 * librdkafka CONFIGURATION.md.
 *
 * A value written `${file:PATH}` is read from PATH (a secret kept out of
 * the config file; one trailing newline dropped). Refused at the
 * property's line: TLS without certificate verification unless
 * kafka.allow_insecure, and a SASL mechanism or TLS that this librdkafka
 * build lacks (its builtin.features).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kafka_conf.h"

/* Set by bayeswatch from its own keys; a pass-through map may not. */
static const char *const consumer_managed[] = {"bootstrap.servers",
                                               "metadata.broker.list",
                                               "group.id",
                                               "enable.auto.commit",
                                               "enable.auto.offset.store",
                                               "group.instance.id",
                                               "isolation.level",
                                               NULL};
static const char *const producer_managed[] = {
    "bootstrap.servers", "metadata.broker.list", "transactional.id",
    "enable.idempotence", NULL};

static bool listed(const char *const *list, const char *key)
{
    for (int i = 0; list[i] != NULL; i++) {
        if (strcmp(list[i], key) == 0) {
            return true;
        }
    }
    return false;
}

/* Whose managed properties a map may not set: kafka.consumer the
 * consumer's, kafka.producer the producer's, kafka.client both. */
enum { OWN_CONSUMER = 1, OWN_PRODUCER = 2 };

static bool managed(int own, const char *key)
{
    return ((own & OWN_CONSUMER) && listed(consumer_managed, key)) ||
           ((own & OWN_PRODUCER) && listed(producer_managed, key));
}

void bw__kafka_instance(const bw_config_t *cfg, const char *override, char *out,
                        size_t n)
{
    if (override != NULL && override[0] != '\0') {
        snprintf(out, n, "%s", override);
    } else if (cfg->pipeline.instance_id[0] != '\0') {
        snprintf(out, n, "%s", cfg->pipeline.instance_id);
    } else if (gethostname(out, n) != 0 || out[0] == '\0') {
        snprintf(out, n, "bayeswatch");
    }
    out[n - 1] = '\0';
}

static bool set1(rd_kafka_conf_t *c, const char *k, const char *v, char *errstr,
                 size_t errstr_size)
{
    return rd_kafka_conf_set(c, k, v, errstr, errstr_size) == RD_KAFKA_CONF_OK;
}

/* The properties bayeswatch sets itself, before the user's map. */
static bool managed_props(rd_kafka_conf_t *c, const bw_config_t *cfg,
                          bw_kafka_role_t role, const char *bootstrap,
                          const char *instance, char *errstr,
                          size_t errstr_size)
{
    char id[512];
    bool ok = set1(c, "bootstrap.servers", bootstrap, errstr, errstr_size);

    snprintf(id, sizeof(id), "bayeswatch-%s", instance);
    ok = ok && set1(c, "client.id", id, errstr, errstr_size);
    if (role == BW_KAFKA_RESTORE) {
        snprintf(id, sizeof(id), "%s-restore", cfg->kafka.group_id);
        return ok && set1(c, "group.id", id, errstr, errstr_size) &&
               set1(c, "enable.auto.commit", "false", errstr, errstr_size) &&
               set1(c, "enable.auto.offset.store", "false", errstr,
                    errstr_size) &&
               set1(c, "enable.partition.eof", "true", errstr, errstr_size) &&
               set1(c, "fetch.wait.max.ms", "10", errstr, errstr_size) &&
               set1(c, "auto.offset.reset", "earliest", errstr, errstr_size) &&
               set1(c, "isolation.level", "read_committed", errstr,
                    errstr_size);
    }
    if (role == BW_KAFKA_CONSUMER) {
        ok =
            ok &&
            set1(c, "group.id", cfg->kafka.group_id, errstr, errstr_size) &&
            set1(c, "enable.auto.commit", "false", errstr, errstr_size) &&
            set1(c, "enable.auto.offset.store", "false", errstr, errstr_size) &&
            set1(c, "auto.offset.reset", "earliest", errstr, errstr_size) &&
            set1(c, "isolation.level", "read_committed", errstr, errstr_size) &&
            set1(c, "partition.assignment.strategy", "cooperative-sticky",
                 errstr, errstr_size);
        if (ok && cfg->pipeline.static_membership) {
            ok = set1(c, "group.instance.id", instance, errstr, errstr_size);
        }
        return ok;
    }
    ok = ok && set1(c, "enable.idempotence", "true", errstr, errstr_size);
    if (ok && cfg->pipeline.guarantee == BW_GUARANTEE_EXACTLY_ONCE) {
        snprintf(id, sizeof(id), "bayeswatch-%s-%s", cfg->kafka.group_id,
                 instance);
        ok = set1(c, "transactional.id", id, errstr, errstr_size);
    }
    return ok;
}

/* The builtin.features a property value needs, or NULL. */
static const char *needs_feature(const char *key, const char *value)
{
    static const char *const mech[][2] = {
        {"GSSAPI", "sasl_gssapi"},           {"PLAIN", "sasl_plain"},
        {"SCRAM-SHA-256", "sasl_scram"},     {"SCRAM-SHA-512", "sasl_scram"},
        {"OAUTHBEARER", "sasl_oauthbearer"},
    };

    if (strcmp(key, "sasl.mechanism") == 0 ||
        strcmp(key, "sasl.mechanisms") == 0) {
        for (size_t i = 0; i < sizeof(mech) / sizeof(mech[0]); i++) {
            if (strcmp(value, mech[i][0]) == 0) {
                return mech[i][1];
            }
        }
    }
    if (strcmp(key, "security.protocol") == 0 &&
        (strcmp(value, "ssl") == 0 || strcmp(value, "sasl_ssl") == 0)) {
        return "ssl";
    }
    if (strcmp(key, "sasl.oauthbearer.method") == 0 &&
        strcmp(value, "oidc") == 0) {
        return "oidc";
    }
    return NULL;
}

static bool has_feature(rd_kafka_conf_t *c, const char *feature)
{
    char list[512], *tok, *save = NULL;
    size_t n = sizeof(list);

    if (rd_kafka_conf_get(c, "builtin.features", list, &n) !=
        RD_KAFKA_CONF_OK) {
        return false;
    }
    for (tok = strtok_r(list, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (strcmp(tok, feature) == 0) {
            return true;
        }
    }
    return false;
}

/* One property of the user's map onto @p c; false with @p why set. */
static bool user_prop(rd_kafka_conf_t *c, const bw_kv_t *kv, int own, char *why,
                      size_t why_size)
{
    char value[4096];
    const char *feature;

    if (managed(own, kv->key)) {
        snprintf(why, why_size, "%s",
                 strcmp(kv->key, "isolation.level") == 0
                     ? "set by bayeswatch (read_committed: the stage "
                       "reads only committed records, or its "
                       "exactly-once guarantee is void); remove it here"
                     : "set by bayeswatch (kafka.bootstrap_servers, "
                       "kafka.group_id, pipeline.*); remove it here");
        return false;
    }
    if (!bw_config_secret(kv->value, value, sizeof(value), why, why_size)) {
        return false;
    }
    if ((feature = needs_feature(kv->key, value)) != NULL &&
        !has_feature(c, feature)) {
        snprintf(why, why_size,
                 "%s needs the librdkafka feature \"%s\", which this build "
                 "(%s) lacks (builtin.features)",
                 value, feature, rd_kafka_version_str());
        return false;
    }
    return set1(c, kv->key, value, why, why_size);
}

/* TLS that does not verify the broker's certificate, without
 * kafka.allow_insecure: the property's index in @p m, else -1 (also when
 * @p m does not set it). */
static int insecure_tls(rd_kafka_conf_t *c, const bw_config_t *cfg,
                        const bw_kvmap_t *m)
{
    char proto[32] = "", verify[16] = "";
    size_t n1 = sizeof(proto), n2 = sizeof(verify);

    if (cfg->kafka.allow_insecure ||
        rd_kafka_conf_get(c, "security.protocol", proto, &n1) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_get(c, "enable.ssl.certificate.verification", verify,
                          &n2) != RD_KAFKA_CONF_OK ||
        (strcmp(proto, "ssl") != 0 && strcmp(proto, "sasl_ssl") != 0) ||
        strcmp(verify, "false") != 0) {
        return -1;
    }
    for (int i = 0; i < m->n; i++) {
        if (strcmp(m->kv[i].key, "enable.ssl.certificate.verification") == 0) {
            return i;
        }
    }
    return -1;
}

int64_t bw__txn_timeout_ms(const rd_kafka_conf_t *c)
{
    char buf[32];
    size_t n = sizeof(buf);

    if (rd_kafka_conf_get(c, "transaction.timeout.ms", buf, &n) !=
        RD_KAFKA_CONF_OK) {
        return 60000; /* librdkafka's default */
    }
    return strtoll(buf, NULL, 10);
}

/* exactly_once: a transaction lasts about pipeline.commit_interval_ms; the
 * broker aborts one that outlives the producer's transaction.timeout.ms
 * (and the stage renews its producer), so a timeout at or below the
 * interval would abort them all. The problem (0 or 1) is reported at the
 * property that set the timeout, or else at the interval. */
static int short_txn_timeout(rd_kafka_conf_t *c, const bw_config_t *cfg,
                             const bw_kvmap_t *const maps[2],
                             const char *const paths[2], FILE *diag,
                             char *errstr, size_t errstr_size, int errors)
{
    char why[256];
    int64_t timeout = bw__txn_timeout_ms(c);

    if (cfg->pipeline.guarantee != BW_GUARANTEE_EXACTLY_ONCE ||
        (double)timeout > cfg->pipeline.commit_interval_ms) {
        return 0;
    }
    snprintf(why, sizeof(why),
             "transaction.timeout.ms (%lld) must exceed "
             "pipeline.commit_interval_ms (%g): the broker would abort "
             "every transaction",
             (long long)timeout, cfg->pipeline.commit_interval_ms);
    if (errors == 0) {
        snprintf(errstr, errstr_size, "kafka.producer: %s", why);
    }
    for (int k = 1; k >= 0; k--) {
        for (int i = 0; i < maps[k]->n; i++) {
            if (strcmp(maps[k]->kv[i].key, "transaction.timeout.ms") == 0) {
                bw_config_report_kv(cfg, paths[k], &maps[k]->kv[i], why, diag);
                return 1;
            }
        }
    }
    if (diag != NULL) {
        fprintf(diag, "%s: error: pipeline.commit_interval_ms: %s\n",
                cfg->source, why);
    }
    return 1;
}

/* One user map @p m (config path @p path) onto @p c; every problem
 * reported at its line when diag is set; the number of problems. */
static int map_props(rd_kafka_conf_t *c, const bw_config_t *cfg,
                     const bw_kvmap_t *m, const char *path, int own, FILE *diag,
                     char *errstr, size_t errstr_size, int errors)
{
    char why[512];

    for (int i = 0; i < m->n; i++) {
        if (user_prop(c, &m->kv[i], own, why, sizeof(why))) {
            continue;
        }
        if (errors++ == 0) {
            snprintf(errstr, errstr_size, "%s.%s: %s", path, m->kv[i].key, why);
        }
        bw_config_report_kv(cfg, path, &m->kv[i], why, diag);
    }
    return errors;
}

/* kafka.client, then the role's own map; TLS without verification is
 * reported at the line that turned it off (the role's map first). */
static int user_props(rd_kafka_conf_t *c, const bw_config_t *cfg,
                      bw_kafka_role_t role, FILE *diag, char *errstr,
                      size_t errstr_size)
{
    bool consumer = role != BW_KAFKA_PRODUCER;
    const bw_kvmap_t *maps[2] = {&cfg->kafka.client,
                                 consumer ? &cfg->kafka.consumer
                                          : &cfg->kafka.producer};
    const char *paths[2] = {"kafka.client",
                            consumer ? "kafka.consumer" : "kafka.producer"};
    int own = consumer ? OWN_CONSUMER : OWN_PRODUCER;
    /* kafka.client's problems are said once, with the consumer's */
    FILE *diags[2] = {role == BW_KAFKA_PRODUCER ? NULL : diag, diag};
    int errors =
        map_props(c, cfg, maps[0], paths[0], OWN_CONSUMER | OWN_PRODUCER,
                  diags[0], errstr, errstr_size, 0);

    errors = map_props(c, cfg, maps[1], paths[1], own, diag, errstr,
                       errstr_size, errors);
    for (int k = 1; k >= 0; k--) {
        int i = insecure_tls(c, cfg, maps[k]);
        if (i >= 0) {
            const char *why = "TLS without certificate verification is "
                              "refused under security.protocol ssl or "
                              "sasl_ssl; set kafka.allow_insecure: true to "
                              "allow it";
            if (errors++ == 0) {
                snprintf(errstr, errstr_size, "%s.%s: %s", paths[k],
                         maps[k]->kv[i].key, why);
            }
            bw_config_report_kv(cfg, paths[k], &maps[k]->kv[i], why, diags[k]);
            break;
        }
    }
    if (role == BW_KAFKA_PRODUCER) {
        errors += short_txn_timeout(c, cfg, maps, paths, diag, errstr,
                                    errstr_size, errors);
    }
    return errors;
}

rd_kafka_conf_t *bw__kafka_conf(const bw_config_t *cfg, bw_kafka_role_t role,
                                const char *bootstrap, const char *instance,
                                FILE *diag, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();

    if (c == NULL) {
        snprintf(errstr, errstr_size, "kafka: out of memory");
        return NULL;
    }
    /* the restore consumer takes the user's consumer map (security,
     * timeouts), then its own settings again: they are not negotiable */
    if (!managed_props(c, cfg, role, bootstrap, instance, errstr,
                       errstr_size) ||
        user_props(c, cfg, role, diag, errstr, errstr_size) != 0 ||
        (role == BW_KAFKA_RESTORE &&
         !managed_props(c, cfg, role, bootstrap, instance, errstr,
                        errstr_size))) {
        rd_kafka_conf_destroy(c);
        return NULL;
    }
    if (has_feature(c, "ssl")) {
        rd_kafka_conf_set_ssl_cert_verify_cb(c, bw__ssl_verify);
    }
    return c;
}

bw_err_t bw_pipeline_check_config(const bw_config_t *cfg, FILE *diag)
{
    char errstr[512], instance[BW_NAME_MAX];
    int bad = 0;

    bw__kafka_instance(cfg, NULL, instance, sizeof(instance));
    for (int role = 0; role < 2; role++) {
        rd_kafka_conf_t *c = bw__kafka_conf(
            cfg, (bw_kafka_role_t)role, cfg->kafka.bootstrap_servers, instance,
            diag, errstr, sizeof(errstr));
        if (c == NULL) {
            bad++;
        } else {
            rd_kafka_conf_destroy(c);
        }
    }
    return bad ? BW_ERR_CONFIG : BW_OK;
}
