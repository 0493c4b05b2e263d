/*
 * CSV replay. The header row names the columns (any order); rows stream
 * through the engine one at a time, so memory does not grow with the file.
 * A bad row is reported as INPUT:LINE: error: ... and skipped; an event
 * beyond engine.lateness_ms as INPUT:LINE: late: ... (counted late, no row).
 * Output fields are quoted per RFC 4180 where they need it.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/emit.h"
#include "bayeswatch/engine.h"
#include "bayeswatch/numfmt.h"
#include "bayeswatch/replay.h"
#include "bayeswatch/timefmt.h"

#define MAX_COLS 64

enum { C_TIME, C_VALUE, C_REGION, C_SERVICE, C_METRIC, C_COUNT, C_N };
static const char *const col_names[C_N] = {"timestamp", "value",  "region",
                                           "service",   "metric", "count"};

#define STALE_SCAN_MS 60000 /* scan for silent series every event minute */

typedef struct {
    const bw_replay_opts_t *o;
    const bw_config_t *cfg;
    bw_replay_stats_t *st;
    int col[C_N];
    uint64_t line;
    int64_t last_scan;
    bw_wbuf_t buf;    /* reused: an NDJSON line or a CSV row */
    bw_wbuf_t field;  /* reused: a CSV field built before quoting */
    char version[20]; /* config hash, hex */
} replay_t;

/* Offline lineage: the file and line; processed "at" event time, so that
 * the output stays byte-identical across runs. */
static bw_origin_t origin(const replay_t *rp, int64_t t_ms)
{
    bw_origin_t o = {.source_timestamp = t_ms,
                     .processed_at = t_ms,
                     .stale = false,
                     .config_version = rp->version,
                     .source_topic = rp->o->input,
                     .source_partition = 0,
                     .source_offset = (int64_t)rp->line};
    return o;
}

static void flush_buf(replay_t *rp, FILE *out)
{
    fwrite(rp->buf.data, 1, rp->buf.len, out);
    bw_wbuf_reset(&rp->buf);
}

#define SPLIT_QUOTE (-1) /* an unterminated or misplaced quote */
#define SPLIT_WIDE (-2)  /* more than MAX_COLS fields */

/* Split a CSV line in place (RFC 4180 quotes; no embedded newlines); the
 * field count, or SPLIT_QUOTE / SPLIT_WIDE. */
static int split(char *line, char **f, int max)
{
    int n = 0;
    char *p = line;

    for (;;) {
        char *w = p;
        if (n == max) {
            return SPLIT_WIDE;
        }
        f[n++] = p;
        if (*p == '"') {
            char *r = p + 1;
            for (;;) {
                if (*r == '\0') {
                    return SPLIT_QUOTE;
                }
                if (*r == '"' && r[1] == '"') {
                    *w++ = '"';
                    r += 2;
                } else if (*r == '"') {
                    r++;
                    break;
                } else {
                    *w++ = *r++;
                }
            }
            if (*r != ',' && *r != '\0') {
                return SPLIT_QUOTE;
            }
            p = r;
        } else {
            while (*p != ',' && *p != '\0') {
                if (*p++ == '"') { /* RFC 4180: none in an unquoted field
                                      (the rest of a quoted field that
                                      spanned lines would read as a row) */
                    return SPLIT_QUOTE;
                }
            }
            w = p;
        }
        if (*p == '\0') {
            *w = '\0';
            return n;
        }
        *w = '\0';
        p++;
    }
}

#define STR_(x) #x
#define STR(x) STR_(x)

static const char *split_error(int n)
{
    return n == SPLIT_WIDE ? "more than " STR(MAX_COLS) " columns"
                           : "malformed CSV (a quote not closed, text "
                             "after a closing quote, or a quote in an "
                             "unquoted field)";
}

static void chomp(char *s)
{
    size_t n = strlen(s);

    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) {
        s[--n] = '\0';
    }
}

/* The header: each known column's index; a UTF-8 byte order mark (a
 * spreadsheet's export) skipped; a known column named twice is an error
 * (which one holds the data is a guess). */
static bw_err_t read_header(replay_t *rp, char *line)
{
    char *f[MAX_COLS];
    int n;

    if (strncmp(line, "\xEF\xBB\xBF", 3) == 0) {
        line += 3;
    }
    n = split(line, f, MAX_COLS);
    for (int c = 0; c < C_N; c++) {
        rp->col[c] = -1;
    }
    if (n < 0) {
        fprintf(rp->o->diag, "%s:%llu: error: header: %s\n", rp->o->input,
                (unsigned long long)rp->line, split_error(n));
        return BW_ERR_PARSE;
    }
    for (int i = 0; i < n; i++) {
        for (int c = 0; c < C_N; c++) {
            if (strcmp(f[i], col_names[c]) != 0) {
                continue;
            }
            if (rp->col[c] >= 0) {
                fprintf(rp->o->diag,
                        "%s:%llu: error: header names the column %s twice\n",
                        rp->o->input, (unsigned long long)rp->line,
                        col_names[c]);
                return BW_ERR_PARSE;
            }
            rp->col[c] = i;
        }
    }
    if (rp->col[C_TIME] < 0 || rp->col[C_VALUE] < 0) {
        fprintf(rp->o->diag,
                "%s:%llu: error: header must name the columns timestamp and "
                "value\n",
                rp->o->input, (unsigned long long)rp->line);
        return BW_ERR_PARSE;
    }
    return BW_OK;
}

static void bad_row(replay_t *rp, const char *fmt, const char *arg)
{
    fprintf(rp->o->diag, "%s:%llu: error: ", rp->o->input,
            (unsigned long long)rp->line);
    fprintf(rp->o->diag, fmt, arg);
    fputc('\n', rp->o->diag);
    rp->st->bad++;
}

/* Output rows are built in a reused buffer and written with one fwrite. */
static void put_str(bw_wbuf_t *w, const char *v)
{
    bw_wbuf_bytes(w, v, strlen(v));
}

/* One output field per RFC 4180: quoted (quotes doubled) when it holds a
 * comma, a quote or a line break, as is otherwise. */
static void put_field(bw_wbuf_t *w, const char *v)
{
    if (strpbrk(v, ",\"\r\n") == NULL) {
        put_str(w, v);
        return;
    }
    bw_wbuf_u8(w, '"');
    for (; *v != '\0'; v++) {
        if (*v == '"') {
            bw_wbuf_u8(w, '"');
        }
        bw_wbuf_u8(w, (uint8_t)*v);
    }
    bw_wbuf_u8(w, '"');
}

/* put_field after a separator */
static void put_sep_field(bw_wbuf_t *w, const char *v)
{
    bw_wbuf_u8(w, ',');
    put_field(w, v);
}

/* ",%.{prec}{style}" with style 'g' or 'f', or a bare separator for NaN */
static void put_dbl(bw_wbuf_t *w, double v, char style, int prec)
{
    char num[BW_NUMFMT_MAX + 1];
    size_t n = 0;

    num[0] = ',';
    if (!isnan(v)) {
        n = style == 'f' ? bw_fmt_f(num + 1, v, prec)
                         : bw_fmt_g(num + 1, v, prec);
    }
    bw_wbuf_bytes(w, num, n + 1);
}

static void put_num(bw_wbuf_t *w, double v)
{
    put_dbl(w, v, 'g', 9);
}

/* A field in the value's own units, exactly (17 significant digits, as
 * the JSON output and the Avro doubles): at 9 a gauge at 1e10 printed an
 * interval narrower than 10 as one number. */
static void put_val(bw_wbuf_t *w, double v)
{
    put_dbl(w, v, 'g', 17);
}

/* ",%lld" */
static void put_int(bw_wbuf_t *w, int64_t v)
{
    char num[BW_NUMFMT_MAX + 1];

    num[0] = ',';
    bw_wbuf_bytes(w, num, 1 + bw_fmt_i64(num + 1, v));
}

/* An event time after a separator, or a bare separator when there is none
 * (< 0). */
static void put_time_opt(bw_wbuf_t *w, int64_t t)
{
    if (t >= 0) {
        put_int(w, t);
    } else {
        bw_wbuf_u8(w, ',');
    }
}

static void write_header(FILE *out)
{
    fputs("timestamp,value,anomaly_score,region,service,metric,model,score,"
          "p_value,expected,lower,upper,ess,resampled,surprise,direction,"
          "alert,warmup,late,actual,p_slo,shrinkage,pop_mean,pop_z,p_point,"
          "p_collective,block_mean,block_expected,p_own,p_population,"
          "abnormal_since,adopted,baseline_z\n",
          out);
}

/* The score's fields after the event's own (timestamp, value). */
static void score_fields(bw_wbuf_t *w, const bw_event_t *ev,
                         const bw_score_t *s)
{
    /* 17 digits for the fields in the value's units (put_val) */
    const struct {
        double v;
        int digits;
    } tail[] = {{s->actual, 17},         {s->p_slo, 9},
                {s->shrinkage, 9},       {s->pop_mean, 17},
                {s->pop_z, 9},           {s->p_anomaly, 9},
                {s->p_collective, 9},    {s->block_mean, 17},
                {s->block_expected, 17}, {s->p_own, 9},
                {s->p_population, 9}};

    put_num(w, bw_score_evidence(s));
    put_sep_field(w, ev->region);
    put_sep_field(w, ev->service);
    put_sep_field(w, ev->metric);
    put_sep_field(w, bw_model_kind_name(s->model));
    put_dbl(w, s->score, 'f', 2);
    put_num(w, s->p_value);
    put_val(w, s->expected);
    put_val(w, s->lower);
    put_val(w, s->upper);
    put_num(w, s->ess);
    put_int(w, s->resampled);
    put_num(w, s->surprise);
    put_sep_field(w, bw_direction_name(s->direction));
    put_int(w, s->alert);
    put_int(w, s->warmup);
    put_int(w, s->late);
    for (size_t i = 0; i < sizeof(tail) / sizeof(tail[0]); i++) {
        put_dbl(w, tail[i].v, 'g', tail[i].digits);
    }
    put_time_opt(w, s->abnormal_since);
    put_int(w, s->adopted);
    put_num(w, s->baseline_z);
    bw_wbuf_u8(w, '\n');
}

static void write_score(replay_t *rp, const char *ts, const char *value,
                        const bw_event_t *ev, const bw_score_t *s)
{
    put_field(&rp->buf, ts);
    put_sep_field(&rp->buf, value);
    score_fields(&rp->buf, ev, s);
    flush_buf(rp, rp->o->out);
}

/* metric:llr;metric:llr... as one CSV field: built in @p tmp (reused),
 * then appended to @p w quoted as it needs. */
static void contributors(bw_wbuf_t *w, const bw_threat_rec_t *rec,
                         bw_wbuf_t *tmp)
{
    const bw_threat_t *t = &rec->threat;
    char llr[BW_NUMFMT_MAX + 1];

    tmp->len = 0;
    for (int k = 0; k < t->n_contrib; k++) {
        const char *metric = rec->rule->signals[t->contrib[k].signal].metric;
        if (k > 0) {
            bw_wbuf_u8(tmp, ';');
        }
        put_str(tmp, metric);
        llr[0] = ':';
        bw_wbuf_bytes(tmp, llr, 1 + bw_fmt_f(llr + 1, t->contrib[k].llr, 4));
    }
    bw_wbuf_u8(tmp, 0);
    if (tmp->err == BW_OK) {
        put_field(w, (const char *)tmp->data);
    }
}

/* The SIEM alert documents of a score (emit.alerts), one per line. */
static void score_alerts(replay_t *rp, const bw_event_t *ev,
                         const bw_score_t *sc)
{
    const bw_alerts_cfg_t *al = &rp->cfg->emit.alerts;
    int mask =
        rp->o->alerts == NULL
            ? 0
            : bw_siem_score_alerts(al, rp->cfg->engine.alert_threshold, sc);

    for (int k = BW_ALERT_ANOMALY; k <= BW_ALERT_SLO; k++) {
        if (mask & (1 << k)) {
            bw_origin_t o = origin(rp, ev->time_ms);
            bw_siem_score(al->format, (bw_alert_kind_t)k, ev, sc, &o, &rp->buf);
            bw_wbuf_bytes(&rp->buf, "\n", 1);
            flush_buf(rp, rp->o->alerts);
            rp->st->alerts++;
        }
    }
}

static void threat_alert(replay_t *rp, const bw_threat_rec_t *rec)
{
    const bw_alerts_cfg_t *al = &rp->cfg->emit.alerts;
    bw_origin_t o = origin(rp, rec->time_ms);

    if ((int)rec->threat.level >= al->threat_level) {
        bw_siem_threat(al->format, rec, &o, &rp->buf);
        bw_wbuf_bytes(&rp->buf, "\n", 1);
        flush_buf(rp, rp->o->alerts);
        rp->st->alerts++;
    }
}

static void on_threat(void *opaque, const bw_threat_rec_t *rec)
{
    replay_t *rp = opaque;
    FILE *out = rp->o->threats;
    const bw_threat_t *t = &rec->threat;
    bw_wbuf_t *w = &rp->buf;
    char ms[BW_NUMFMT_MAX];

    if (rp->o->alerts != NULL) {
        threat_alert(rp, rec);
    }
    if (out == NULL) {
        return;
    }
    if (rp->o->json) {
        bw_origin_t o = origin(rp, rec->time_ms);
        bw_json_threat(rec, &o, &rp->buf);
        flush_buf(rp, out);
        rp->st->threats++;
        return;
    }

    bw_wbuf_bytes(w, ms, bw_fmt_i64(ms, rec->time_ms));
    put_sep_field(w, rec->entity);
    put_sep_field(w, rec->rule->name);
    put_num(w, t->probability);
    put_dbl(w, t->score, 'f', 2);
    put_sep_field(w, bw_level_name(t->level));
    put_dbl(w, t->llr, 'g', 6);
    bw_wbuf_u8(w, ',');
    contributors(w, rec, &rp->field);
    put_time_opt(w, t->since_ms);
    bw_wbuf_u8(w, '\n');
    flush_buf(rp, out);
    rp->st->threats++;
}

static void on_stale(void *opaque, const bw_stale_t *st)
{
    replay_t *rp = opaque;
    bw_wbuf_t *w = &rp->buf;
    char ms[BW_NUMFMT_MAX];

    bw_wbuf_bytes(w, ms, bw_fmt_i64(ms, st->last_event_ms + st->silent_ms));
    put_sep_field(w, st->region);
    put_sep_field(w, st->service);
    put_sep_field(w, st->metric);
    put_int(w, st->last_event_ms);
    put_int(w, st->silent_ms);
    put_dbl(w, st->interval_ms, 'f', 0);
    bw_wbuf_u8(w, '\n');
    flush_buf(rp, rp->o->stale);
    rp->st->stale++;
}

static void scan_stale(replay_t *rp, bw_engine_t *eng)
{
    int64_t now = bw_engine_watermark(eng);

    if (rp->o->stale == NULL || now < 0) {
        return;
    }
    if (rp->last_scan < 0) {
        rp->last_scan = now;
    }
    if (now - rp->last_scan >= STALE_SCAN_MS) {
        bw_engine_stale_scan(eng, now, on_stale, rp);
        rp->last_scan = now;
    }
}

static const char *field(char **f, int n, int col, const char *dflt)
{
    if (col < 0 || col >= n || f[col][0] == '\0') {
        return dflt;
    }
    return f[col];
}

static int parse_row(replay_t *rp, char **f, int n, bw_event_t *ev)
{
    const char *ts = field(f, n, rp->col[C_TIME], NULL);
    const char *val = field(f, n, rp->col[C_VALUE], NULL);
    const char *cnt = field(f, n, rp->col[C_COUNT], NULL);
    bw_err_t err;

    if (ts == NULL || val == NULL) {
        bad_row(rp, "missing field '%s'", ts == NULL ? "timestamp" : "value");
        return -1;
    }
    if (bw_time_parse(ts, &ev->time_ms) != BW_OK) {
        bad_row(rp, "cannot parse timestamp \"%s\"", ts);
        return -1;
    }
    if ((err = bw_parse_double(val, &ev->value)) != BW_OK) {
        bad_row(rp,
                err == BW_ERR_RANGE ? "value \"%s\" is not finite"
                                    : "cannot parse value \"%s\"",
                val);
        return -1;
    }
    ev->count = NAN;
    if (cnt != NULL && (err = bw_parse_double(cnt, &ev->count)) != BW_OK) {
        bad_row(rp, "cannot parse count \"%s\"", cnt);
        return -1;
    }
    ev->region = field(f, n, rp->col[C_REGION], "default");
    ev->service = field(f, n, rp->col[C_SERVICE], "default");
    ev->metric = field(f, n, rp->col[C_METRIC], "default");
    /* a file without the column is one series ("default"); an empty
     * region or metric in a column that is there is the stage's dead
     * letter (missing_field), so it is a bad row here too */
    if ((rp->col[C_REGION] >= 0 &&
         field(f, n, rp->col[C_REGION], NULL) == NULL) ||
        (rp->col[C_METRIC] >= 0 &&
         field(f, n, rp->col[C_METRIC], NULL) == NULL)) {
        bad_row(rp, "%s", "empty region or metric");
        return -1;
    }
    /* as the stage's codec refuses them (a dead letter there) */
    if (!bw_utf8_valid(ev->region) || !bw_utf8_valid(ev->service) ||
        !bw_utf8_valid(ev->metric)) {
        bad_row(rp, "%s", "region, service or metric is not valid UTF-8");
        return -1;
    }
    if (bw_has_control(ev->region) || bw_has_control(ev->service) ||
        bw_has_control(ev->metric)) {
        bad_row(rp, "%s",
                "region, service or metric holds a control character");
        return -1;
    }
    return 0;
}

static void process_line(replay_t *rp, bw_engine_t *eng, char *line)
{
    char *f[MAX_COLS], errstr[256];
    bw_event_t ev;
    bw_score_t sc;
    bw_err_t err;
    int n = split(line, f, MAX_COLS);

    rp->st->rows++;
    if (n < 0) {
        bad_row(rp, "%s", split_error(n));
        return;
    }
    if (parse_row(rp, f, n, &ev) != 0) {
        return;
    }
    err = bw_engine_process(eng, &ev, &sc,
                            rp->o->threats || rp->o->alerts ? on_threat : NULL,
                            rp, errstr, sizeof(errstr));
    if (err == BW_ERR_LATE) { /* beyond engine.lateness_ms: reported, no row */
        fprintf(rp->o->diag, "%s:%llu: late: %s\n", rp->o->input,
                (unsigned long long)rp->line, errstr);
        rp->st->late++;
        return;
    }
    if (err != BW_OK) {
        bad_row(rp, "%s", errstr);
        return;
    }
    rp->st->late += sc.late;
    rp->st->scored += !sc.late;
    score_alerts(rp, &ev, &sc);
    if (rp->o->json) {
        bw_origin_t o = origin(rp, ev.time_ms);
        bw_json_score(&ev, &sc, &o, &rp->buf);
        flush_buf(rp, rp->o->out);
        return;
    }
    write_score(rp, f[rp->col[C_TIME]], f[rp->col[C_VALUE]], &ev, &sc);
}

static bw_err_t stream(replay_t *rp, bw_engine_t *eng, FILE *in)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    bw_err_t err = BW_OK;

    rp->line = 1;
    if (getline(&line, &cap, in) < 0) {
        if (ferror(in)) {
            fprintf(rp->o->diag, "%s:1: error: read: %s\n", rp->o->input,
                    strerror(errno));
        } else {
            fprintf(rp->o->diag, "%s:1: error: empty input (no header row)\n",
                    rp->o->input);
        }
        err = BW_ERR_IO;
        goto out;
    }
    chomp(line);
    if ((err = read_header(rp, line)) != BW_OK) {
        goto out;
    }
    if (!rp->o->json) {
        write_header(rp->o->out);
    }
    if (rp->o->threats != NULL && !rp->o->json) {
        fputs("timestamp,entity,rule,probability,score,level,llr,"
              "contributors,elevated_since\n",
              rp->o->threats);
    }
    if (rp->o->stale != NULL) {
        fputs("timestamp,region,service,metric,last_event,silent_ms,"
              "interval_ms\n",
              rp->o->stale);
    }
    while ((got = getline(&line, &cap, in)) >= 0) {
        rp->line++;
        if (memchr(line, 0, (size_t)got) != NULL) { /* the rest would be lost */
            rp->st->rows++;
            bad_row(rp, "%s", "the line holds a NUL byte");
            continue;
        }
        chomp(line);
        if (line[0] != '\0') {
            process_line(rp, eng, line);
            scan_stale(rp, eng);
        }
    }
    if (ferror(in)) { /* getline's -1 is an error here, not the end */
        fprintf(rp->o->diag, "%s:%llu: error: read: %s\n", rp->o->input,
                (unsigned long long)rp->line + 1, strerror(errno));
        err = BW_ERR_IO;
    }
out:
    free(line);
    return err;
}

bw_err_t bw_replay_run(const bw_config_t *cfg, const bw_replay_opts_t *o,
                       bw_replay_stats_t *st)
{
    replay_t rp = {.o = o, .cfg = cfg, .st = st, .last_scan = -1};
    char errstr[256];
    bw_engine_t *eng = NULL;
    bw_engine_stats_t es;
    FILE *in = NULL;
    bw_err_t err;

    memset(st, 0, sizeof(*st));
    if (o->in != NULL) {
        in = o->in;
    } else {
        in = strcmp(o->input, "-") == 0 ? stdin : fopen(o->input, "r");
    }
    if (in == NULL) {
        fprintf(o->diag, "%s: error: cannot open: %s\n", o->input,
                strerror(errno));
        return BW_ERR_IO;
    }
    eng = bw_engine_new(cfg, errstr, sizeof(errstr));
    if (eng == NULL) {
        fprintf(o->diag, "error: %s\n", errstr);
        err = BW_ERR_NOMEM;
        goto out;
    }
    bw_engine_untracked(eng); /* no changelog to write */
    snprintf(rp.version, sizeof(rp.version), "%016llx",
             (unsigned long long)cfg->hash);
    err = stream(&rp, eng, in);
    bw_wbuf_free(&rp.buf);
    bw_wbuf_free(&rp.field);
    bw_engine_stats(eng, &es);
    st->series = es.series + es.groups;
    fprintf(o->diag,
            "replay: %s: %llu rows, %llu scored, %llu bad, %llu late, "
            "%llu models, %llu threat rows, %llu stale markers\n",
            o->input, (unsigned long long)st->rows,
            (unsigned long long)st->scored, (unsigned long long)st->bad,
            (unsigned long long)st->late, (unsigned long long)st->series,
            (unsigned long long)st->threats, (unsigned long long)st->stale);
out:
    bw_engine_destroy(eng);
    if (in != stdin && in != o->in) {
        fclose(in);
    }
    return err;
}
