/*
 * SIEM-shaped alerts: an anomaly score at the alert threshold, an SLO
 * breach or a threat at the configured level, as one JSON document in
 * the Elastic Common Schema (ECS 8.11: event.kind "alert") or as an OCSF
 * Detection Finding (OCSF 1.5.0, class_uid 2004). The field lists they
 * are checked against ship in schemas/siem/ (tests/siem_test.py).
 *
 * Deduplication: every document carries a deterministic id (ECS event.id,
 * OCSF finding_info.uid and metadata.uid): FNV-1a over the source record's
 * coordinates (topic, partition, offset), the rule and the subject (the
 * series or entity), two 64-bit hashes with different bases, 32 hex
 * digits. Re-processing the same input record after a crash or under
 * at-least-once gives the same id, so a sink can drop duplicates.
 *
 * One severity scale for both formats (OCSF severity_id; ECS
 * event.severity carries the same number): a score or SLO alert is 3
 * (Medium) and 4 (High) from a probability of 0.999; a threat is its
 * level + 1: moderate 3, high 4, critical 5 (low 2, when configured).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bayeswatch/emit.h"
#include "bayeswatch/hash.h"
#include "bayeswatch/timefmt.h"
#include "jsonw.h"

#define ECS_VERSION "8.11.0"
#define OCSF_VERSION "1.5.0"
#define PRODUCT "bayeswatch"
#define HIGH_P 0.999

/* What one alert document says, whatever its format. */
typedef struct {
    bw_alert_kind_t kind;
    const char *rule;    /* rule name */
    const char *subject; /* series id or entity */
    const char *region, *service, *metric;
    int64_t time_ms, since_ms; /* event time; start of the state, -1 */
    double p, score;           /* probability; risk 0-100 */
    int severity;              /* OCSF severity_id */
    double actual, expected, lower, upper;
    const bw_threat_rec_t *threat; /* threats: contributors */
    const bw_origin_t *o;
    char id[33];
    /* the whole message: an entity id (BW_ID_MAX), a rule and a signal
     * name (255 each) and the figures; 512 bytes cut the figures off the
     * end of messages about long names */
    char msg[BW_ID_MAX + 2 * BW_EVENT_NAME_MAX + 256];
} alert_t;

static const char *const kind_names[] = {"anomaly", "slo_breach", "threat"};
static const char *const severity_names[] = {
    "Unknown", "Informational", "Low", "Medium", "High", "Critical", "Fatal"};

int bw_siem_score_alerts(const bw_alerts_cfg_t *cfg, double threshold,
                         const bw_score_t *sc)
{
    int m = 0;

    if (sc->warmup || sc->late) {
        return 0;
    }
    if (cfg->scores && sc->alert) {
        m |= 1 << BW_ALERT_ANOMALY;
    }
    if (cfg->slo && isfinite(sc->p_slo) && sc->p_slo >= threshold) {
        m |= 1 << BW_ALERT_SLO;
    }
    return m;
}

void bw_alert_id(const bw_origin_t *o, const char *rule, const char *subject,
                 char out[33])
{
    uint64_t h[2] = {0xcbf29ce484222325ULL, 0x84222325cbf29ce4ULL};
    int64_t part = o->source_partition, off = o->source_offset;

    for (int i = 0; i < 2; i++) {
        h[i] = bw_hash64(h[i], o->source_topic, strlen(o->source_topic) + 1);
        h[i] = bw_hash64(h[i], &part, sizeof(part));
        h[i] = bw_hash64(h[i], &off, sizeof(off));
        h[i] = bw_hash64(h[i], rule, strlen(rule) + 1);
        h[i] = bw_hash64(h[i], subject, strlen(subject) + 1);
    }
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h[0],
             (unsigned long long)h[1]);
}

static void jtime(bw_wbuf_t *w, const char *k, int64_t ms, int *first)
{
    char t[40];

    bw_time_format(ms, t, sizeof(t));
    jstr(w, k, t, first);
}

static void close_obj(bw_wbuf_t *w)
{
    put(w, "}");
}

/* A one-string array under key @p k. */
static void jstr1(bw_wbuf_t *w, const char *k, const char *s, int *first)
{
    int f;

    jopen(w, k, "[", first, &f);
    jitem(w, &f);
    bw_wbuf_json_str(w, s);
    put(w, "]");
}

/* ---- ECS ---- */

static void ecs_event(bw_wbuf_t *w, const alert_t *a, int *first)
{
    int f;

    jopen(w, "event", "{", first, &f);
    jstr(w, "kind", "alert", &f);
    jstr1(w, "category",
          a->kind == BW_ALERT_THREAT ? "intrusion_detection" : "host", &f);
    jstr1(w, "type", "info", &f);
    jstr(w, "id", a->id, &f);
    jstr(w, "module", PRODUCT, &f);
    jstr(w, "dataset", PRODUCT ".alerts", &f);
    jstr(w, "provider", PRODUCT, &f);
    jtime(w, "created", a->o->processed_at, &f);
    if (a->since_ms >= 0) {
        jtime(w, "start", a->since_ms, &f);
    }
    jint(w, "severity", a->severity, &f);
    jnum(w, "risk_score", a->score, &f);
    jnum(w, "risk_score_norm", a->score, &f);
    jstr(w, "reason", a->msg, &f);
    close_obj(w);
}

static void contributors(bw_wbuf_t *w, const bw_threat_rec_t *t, int *first)
{
    int f, g;

    jopen(w, "contributors", "[", first, &f);
    for (int k = 0; k < t->threat.n_contrib; k++) {
        const bw_contrib_t *c = &t->threat.contrib[k];
        jitem(w, &f);
        put(w, "{");
        g = 1;
        jint(w, "rank", k + 1, &g);
        jstr(w, "metric", t->rule->signals[c->signal].metric, &g);
        jnum(w, "p_elevated", c->p, &g);
        jnum(w, "log_bayes_factor", c->lbf, &g);
        jnum(w, "log_likelihood_ratio", c->llr, &g);
        close_obj(w);
    }
    put(w, "]");
}

/* Our own fields: the custom namespace `bayeswatch` (ECS) and
 * `unmapped` (OCSF). */
static void extras(bw_wbuf_t *w, const alert_t *a, const char *name, int *first)
{
    int f, g;

    jopen(w, name, "{", first, &f);
    jstr(w, "alert_kind", kind_names[a->kind], &f);
    jstr(w, "subject", a->subject, &f);
    jnum(w, "probability", a->p, &f);
    if (a->threat != NULL) {
        jstr(w, "level", bw_level_name((int)a->threat->threat.level), &f);
        jnum(w, "log_likelihood_ratio", a->threat->threat.llr, &f);
        contributors(w, a->threat, &f);
    } else {
        jstr(w, "metric", a->metric, &f);
        jnum(w, "actual", a->actual, &f);
        jnum(w, "expected", a->expected, &f);
        jnum(w, "lower", a->lower, &f);
        jnum(w, "upper", a->upper, &f);
    }
    /* none: null, as in the JSON and Avro records */
    jtime_opt(w, a->threat != NULL ? "elevated_since" : "abnormal_since",
              a->since_ms, &f);
    jstr(w, "config_version", a->o->config_version, &f);
    jopen(w, "source", "{", &f, &g);
    jstr(w, "topic", a->o->source_topic, &g);
    jint(w, "partition", a->o->source_partition, &g);
    jint(w, "offset", a->o->source_offset, &g);
    jint(w, "timestamp", a->o->source_timestamp, &g);
    close_obj(w);
    close_obj(w);
}

static void ecs(bw_wbuf_t *w, const alert_t *a)
{
    int first = 1, f;

    put(w, "{");
    jtime(w, "@timestamp", a->time_ms, &first);
    jstr(w, "message", a->msg, &first);
    jopen(w, "ecs", "{", &first, &f);
    jstr(w, "version", ECS_VERSION, &f);
    close_obj(w);
    ecs_event(w, a, &first);
    jopen(w, "rule", "{", &first, &f);
    jstr(w, "name", a->rule, &f);
    jstr(w, "category", kind_names[a->kind], &f);
    jstr(w, "ruleset", PRODUCT, &f);
    close_obj(w);
    jopen(w, "observer", "{", &first, &f);
    jstr(w, "vendor", PRODUCT, &f);
    jstr(w, "product", PRODUCT, &f);
    jstr(w, "type", "anomaly-detector", &f);
    jstr(w, "version", BW_VERSION, &f);
    close_obj(w);
    if (a->service != NULL) {
        jopen(w, "service", "{", &first, &f);
        jstr(w, "name", a->service, &f);
        close_obj(w);
    }
    jopen(w, "cloud", "{", &first, &f);
    jstr(w, "region", a->region, &f);
    close_obj(w);
    extras(w, a, PRODUCT, &first);
    close_obj(w);
}

/* ---- OCSF ---- */

static void ocsf_observation(bw_wbuf_t *w, const char *k, const alert_t *a,
                             double v, int *first)
{
    int f, g;
    char num[40];

    jopen(w, k, "[", first, &f);
    jitem(w, &f);
    put(w, "{");
    g = 1;
    jstr(w, "observation_parameter", a->metric, &g);
    jopen(w, "observations", "[", &g, &f);
    jitem(w, &f);
    put(w, "{");
    f = 1;
    snprintf(num, sizeof(num), "%.17g", v);
    jstr(w, "value", num, &f);
    close_obj(w);
    put(w, "]");
    close_obj(w);
    put(w, "]");
}

/* anomaly_analyses: the series, the value observed and its baseline. */
static void ocsf_anomaly(bw_wbuf_t *w, const alert_t *a, int *first)
{
    int f, g, h;

    if (a->threat != NULL) {
        return;
    }
    jopen(w, "anomaly_analyses", "[", first, &f);
    jitem(w, &f);
    put(w, "{");
    g = 1;
    jopen(w, "analysis_targets", "[", &g, &f);
    jitem(w, &f);
    put(w, "{");
    h = 1;
    jstr(w, "name", a->subject, &h);
    jstr(w, "type", "series", &h);
    close_obj(w);
    put(w, "]");
    ocsf_observation(w, "anomalies", a, a->actual, &g);
    ocsf_observation(w, "baselines", a, a->expected, &g);
    close_obj(w);
    put(w, "]");
}

static void ocsf_finding_info(bw_wbuf_t *w, const alert_t *a, int *first)
{
    int f, g;

    jopen(w, "finding_info", "{", first, &f);
    jstr(w, "uid", a->id, &f);
    jstr(w, "title", a->msg, &f);
    jint(w, "created_time", a->o->processed_at, &f);
    jint(w, "first_seen_time", a->since_ms >= 0 ? a->since_ms : a->time_ms, &f);
    jint(w, "last_seen_time", a->time_ms, &f);
    jstr1(w, "types", kind_names[a->kind], &f);
    jopen(w, "analytic", "{", &f, &g);
    jstr(w, "name", a->rule, &g);
    jint(w, "type_id", 3, &g); /* Statistical */
    jstr(w, "type", "Statistical", &g);
    close_obj(w);
    close_obj(w);
}

static void ocsf(bw_wbuf_t *w, const alert_t *a)
{
    int first = 1, f, g;

    put(w, "{");
    jint(w, "activity_id", 1, &first);
    jstr(w, "activity_name", "Create", &first);
    jint(w, "category_uid", 2, &first);
    jstr(w, "category_name", "Findings", &first);
    jint(w, "class_uid", 2004, &first);
    jstr(w, "class_name", "Detection Finding", &first);
    jint(w, "type_uid", 200401, &first);
    jstr(w, "type_name", "Detection Finding: Create", &first);
    jint(w, "severity_id", a->severity, &first);
    jstr(w, "severity", severity_names[a->severity], &first);
    jint(w, "status_id", 1, &first);
    jstr(w, "status", "New", &first);
    jint(w, "time", a->time_ms, &first);
    jbool(w, "is_alert", true, &first);
    jstr(w, "message", a->msg, &first);
    jint(w, "risk_score", (int64_t)lround(a->score), &first);
    jopen(w, "metadata", "{", &first, &f);
    jstr(w, "version", OCSF_VERSION, &f);
    jstr(w, "uid", a->id, &f);
    jint(w, "logged_time", a->o->processed_at, &f);
    jopen(w, "product", "{", &f, &g);
    jstr(w, "name", PRODUCT, &g);
    jstr(w, "vendor_name", PRODUCT, &g);
    jstr(w, "version", BW_VERSION, &g);
    close_obj(w);
    close_obj(w);
    ocsf_finding_info(w, a, &first);
    ocsf_anomaly(w, a, &first);
    extras(w, a, "unmapped", &first);
    close_obj(w);
}

static bw_err_t write_alert(int format, alert_t *a, bw_wbuf_t *w)
{
    bw_alert_id(a->o, a->rule, a->subject, a->id);
    if (format == BW_SIEM_OCSF) {
        ocsf(w, a);
    } else {
        ecs(w, a);
    }
    return w->err;
}

static int severity_of(double p)
{
    return p >= HIGH_P ? 4 : 3;
}

bw_err_t bw_siem_score(int format, bw_alert_kind_t kind, const bw_event_t *ev,
                       const bw_score_t *sc, const bw_origin_t *o, bw_wbuf_t *w)
{
    char subject[BW_ID_MAX], rule[320], since[40] = "";
    /* NULL names are "default" (event.h), as every other writer has it */
    const char *region = bw_name_or_default(ev->region),
               *service = bw_name_or_default(ev->service),
               *metric = bw_name_or_default(ev->metric);
    alert_t a = {.kind = kind,
                 .rule = rule,
                 .subject = subject,
                 .region = region,
                 .service = service,
                 .metric = metric,
                 .time_ms = ev->time_ms,
                 .since_ms = sc->abnormal_since,
                 .actual = sc->actual,
                 .expected = sc->expected,
                 .lower = sc->lower,
                 .upper = sc->upper,
                 .o = o};

    bw_join_esc(subject, sizeof(subject), '/', region, service, metric);
    a.p = kind == BW_ALERT_SLO ? sc->p_slo : bw_score_evidence(sc);
    a.score = 100.0 * a.p;
    a.severity = severity_of(a.p);
    snprintf(rule, sizeof(rule), "%s:%s", kind_names[kind], metric);
    if (a.since_ms >= 0) {
        char t[40];
        bw_time_format(a.since_ms, t, sizeof(t));
        snprintf(since, sizeof(since), ", since %s", t);
    }
    snprintf(a.msg, sizeof(a.msg),
             kind == BW_ALERT_SLO
                 ? "%s of %s/%s: P(SLO breached) = %.4f (rate %.4g, %.4g "
                   "expected)%s"
                 : "%s of %s/%s is abnormal: P = %.4f (actual %.4g, expected "
                   "%.4g)%s",
             metric, region, service, a.p, a.actual, a.expected, since);
    return write_alert(format, &a, w);
}

bw_err_t bw_siem_threat(int format, const bw_threat_rec_t *t,
                        const bw_origin_t *o, bw_wbuf_t *w)
{
    alert_t a = {.kind = BW_ALERT_THREAT,
                 .rule = t->rule->name,
                 .subject = t->entity,
                 .region = t->region,
                 .time_ms = t->time_ms,
                 .since_ms = t->threat.since_ms,
                 .p = t->threat.probability,
                 .score = t->threat.score,
                 .severity = (int)t->threat.level + 2,
                 .actual = NAN,
                 .expected = NAN,
                 .lower = NAN,
                 .upper = NAN,
                 .threat = t,
                 .o = o};

    a.service = t->service;
    snprintf(a.msg, sizeof(a.msg),
             "threat %s on %s: P = %.4f, level %s, led by %s", t->rule->name,
             t->entity, a.p, bw_level_name((int)t->threat.level),
             t->threat.n_contrib > 0
                 ? t->rule->signals[t->threat.contrib[0].signal].metric
                 : "no signal");
    return write_alert(format, &a, w);
}
