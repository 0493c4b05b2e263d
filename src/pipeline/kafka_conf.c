/*
 * librdkafka client configurations built from bayeswatch's config: the
 * properties bayeswatch manages (offsets, transactions, idempotence,
 * assignment strategy default), then kafka.consumer / kafka.producer as
 * written. Property names and meanings: librdkafka CONFIGURATION.md.
 */
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

static bool managed(const char *const *list, const char *key)
{
    for (int i = 0; list[i] != NULL; i++) {
        if (strcmp(list[i], key) == 0) {
            return true;
        }
    }
    return false;
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

/* The user's map; every problem reported at its line when diag is set. */
static int user_props(rd_kafka_conf_t *c, const bw_config_t *cfg,
                      bw_kafka_role_t role, FILE *diag, char *errstr,
                      size_t errstr_size)
{
    bool consumer = role != BW_KAFKA_PRODUCER;
    const bw_kvmap_t *m =
        consumer ? &cfg->kafka.consumer : &cfg->kafka.producer;
    const char *path = consumer ? "kafka.consumer" : "kafka.producer";
    const char *const *own = consumer ? consumer_managed : producer_managed;
    char why[512];
    int errors = 0;

    for (int i = 0; i < m->n; i++) {
        const bw_kv_t *kv = &m->kv[i];
        if (managed(own, kv->key)) {
            snprintf(why, sizeof(why), "%s",
                     strcmp(kv->key, "isolation.level") == 0
                         ? "set by bayeswatch (read_committed: the stage "
                           "reads only committed records, or its "
                           "exactly-once guarantee is void); remove it here"
                         : "set by bayeswatch (kafka.bootstrap_servers, "
                           "kafka.group_id, pipeline.*); remove it here");
        } else if (set1(c, kv->key, kv->value, why, sizeof(why))) {
            continue;
        }
        if (errors++ == 0) {
            snprintf(errstr, errstr_size, "%s.%s: %s", path, kv->key, why);
        }
        bw_config_report_kv(cfg, path, kv, why, diag);
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
