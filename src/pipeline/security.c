/*
 * What the stage says when the cluster refuses it: authentication and
 * certificate failures, which retrying cannot heal, end the stage with a
 * reason an operator can act on; authorization failures name the resource
 * and the ACL that is missing (the README's minimal ACL set).
 *
 * TLS: a certificate verification callback (librdkafka
 * ssl.certificate.verify_cb) turns OpenSSL's verify error code into words
 * (hostname mismatch, untrusted CA, expiry); the codes are OpenSSL's
 * X509_V_ERR_* values, stable across its releases. The verdict is
 * OpenSSL's own: the callback never accepts what OpenSSL rejected.
 *
 * SCRAM: librdkafka before 2.6.1 repeats the client nonce in its final
 * message; brokers with the CVE-2024-56128 fix (Kafka 3.7.2, 3.8.1, 3.9
 * and 4.x) reject that as invalid credentials (confluentinc/librdkafka
 * #4895). The failure says so when this build is affected.
 */
#include <string.h>

#include "pipeline_int.h"

#define SCRAM_FIXED_VERSION 0x020601ff /* librdkafka 2.6.1 */

static const struct {
    int code;
    const char *what;
} x509_errors[] = {
    {62, "hostname mismatch: the certificate does not name the host the "
         "stage connected to (use a broker address from its subjectAltName)"},
    {64, "IP address mismatch: the certificate does not name this address "
         "(use a broker address from its subjectAltName)"},
    {18, "self-signed certificate that ssl.ca.location does not trust"},
    {19, "its chain ends at a CA that ssl.ca.location does not trust"},
    {20, "issued by a CA that ssl.ca.location does not trust"},
    {21, "issued by a CA that ssl.ca.location does not trust"},
    {2, "issued by a CA that ssl.ca.location does not trust"},
    {10, "certificate has expired"},
    {9, "certificate is not yet valid"},
    {23, "certificate has been revoked"},
};

int bw__ssl_verify(rd_kafka_t *rk, const char *broker_name, int32_t broker_id,
                   int *x509_error, int depth, const char *buf, size_t size,
                   char *errstr, size_t errstr_size, void *opaque)
{
    const char *what = "certificate rejected";

    (void)rk, (void)broker_id, (void)buf, (void)size;
    if (*x509_error == 0) {
        return 1;
    }
    for (size_t i = 0; i < sizeof(x509_errors) / sizeof(x509_errors[0]); i++) {
        if (x509_errors[i].code == *x509_error) {
            what = x509_errors[i].what;
        }
    }
    snprintf(errstr, errstr_size,
             "broker certificate verify failed for %s (depth %d, X509 error "
             "%d): %s",
             broker_name, depth, *x509_error, what);
    if (opaque != NULL) { /* the stage's clients: kept for the fatal error */
        bw_pipeline_t *p = opaque;
        pthread_mutex_lock(&p->mu);
        snprintf(p->tls_why, sizeof(p->tls_why), "%s", errstr);
        pthread_mutex_unlock(&p->mu);
    }
    return 0;
}

/* The SASL mechanism @p rk uses, into @p out ("" if none). */
static void mechanism(rd_kafka_t *rk, char *out, size_t n)
{
    size_t len = n;

    if (rd_kafka_conf_get(rd_kafka_conf(rk), "sasl.mechanisms", out, &len) !=
        RD_KAFKA_CONF_OK) {
        out[0] = '\0';
    }
}

bool bw__security_failure(bw_pipeline_t *p, rd_kafka_t *rk, int err,
                          const char *reason, char *out, size_t n)
{
    char mech[64], why[sizeof(p->tls_why)];

    if (err == RD_KAFKA_RESP_ERR__SSL &&
        (strstr(reason, "verif") != NULL ||
         strstr(reason, "certificate") != NULL)) {
        pthread_mutex_lock(&p->mu);
        snprintf(why, sizeof(why), "%s", p->tls_why);
        pthread_mutex_unlock(&p->mu);
        if (why[0] != '\0') {
            snprintf(out, n, "TLS: %s", why);
        } else {
            snprintf(out, n, "TLS: %s", reason);
        }
        return true;
    }
    if (err != RD_KAFKA_RESP_ERR__AUTHENTICATION) {
        return false;
    }
    mechanism(rk, mech, sizeof(mech));
    if (strncmp(mech, "SCRAM", 5) == 0 &&
        rd_kafka_version() < SCRAM_FIXED_VERSION) {
        snprintf(out, n,
                 "authentication failed: %s; note: this librdkafka (%s) "
                 "predates 2.6.1, whose SCRAM fix brokers from Kafka 3.7.2, "
                 "3.8.1, 3.9 and 4.x require (their fix of CVE-2024-56128 "
                 "rejects older clients' SCRAM proofs as invalid "
                 "credentials): use librdkafka >= 2.6.1, or PLAIN or mTLS "
                 "with this build",
                 reason, rd_kafka_version_str());
    } else {
        snprintf(out, n,
                 "authentication failed: %s (check sasl.username and the "
                 "password or key it is given)",
                 reason);
    }
    return true;
}

/* A transaction reports a refused topic on whichever record comes next,
 * so the message names every topic the stage writes. */
static void write_denied(const bw_pipeline_t *p, const char *topic, char *out,
                         size_t n)
{
    const bw_emit_cfg_t *em = &p->cfg->emit;
    const char *names[] = {em->scores.topic, em->threats.topic,
                           em->dead_letters.topic, em->alerts.topic,
                           p->changelog ? p->cl_topic : ""};
    size_t len;

    snprintf(out, n,
             "not authorized: Write on a Topic is not allowed for this "
             "principal (refused while writing %s); the stage needs an "
             "ALLOW Write ACL on each topic it writes:",
             topic);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        len = strlen(out);
        if (names[i][0] != '\0' && len < n) {
            snprintf(out + len, n - len, " %s", names[i]);
        }
    }
    len = strlen(out);
    if (len < n) {
        snprintf(out + len, n - len, " (README, Security: minimal ACLs)");
    }
}

bool bw__denied(const bw_pipeline_t *p, rd_kafka_resp_err_t err, const char *op,
                const char *topic, char *out, size_t n)
{
    const char *g = p->cfg->kafka.group_id;

    switch (err) {
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
        if (strcmp(op, "Write") == 0) {
            write_denied(p, topic, out, n);
            return true;
        }
        snprintf(out, n,
                 "not authorized: %s on Topic %s is not allowed for this "
                 "principal (grant it an ALLOW %s ACL on Topic %s; README, "
                 "Security: minimal ACLs)",
                 op, topic, op, topic);
        return true;
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
        snprintf(out, n,
                 "not authorized: Read on Group %s (kafka.group_id) is not "
                 "allowed for this principal (grant it an ALLOW Read ACL on "
                 "Group %s; README, Security: minimal ACLs)",
                 g, g);
        return true;
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
        snprintf(out, n,
                 "not authorized: Write on TransactionalId bayeswatch-%s-%s "
                 "is not allowed for this principal (grant it an ALLOW Write "
                 "ACL on the TransactionalId prefix bayeswatch-%s-; README, "
                 "Security: minimal ACLs)",
                 g, p->instance, g);
        return true;
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
        snprintf(out, n, "not authorized: %s on the Cluster (%s)", op,
                 rd_kafka_err2str(err));
        return true;
    default:
        return false;
    }
}
