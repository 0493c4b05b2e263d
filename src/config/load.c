/*
 * YAML -> bw_config_t. libyaml's document API (yaml_parser_load) keeps the
 * line/column marks of every node; each mapping is walked against its key
 * table. Every problem is reported (compiler style, 1-based), then one
 * cross-field pass runs.
 */
#include <fnmatch.h>
#include <errno.h>
#include <sys/stat.h>
#include <stdbool.h>
#include <stdarg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "bayeswatch/config.h"
#include "keys.h"
#include "bayeswatch/mem.h"
#include "bayeswatch/hash.h"

#define PATH_MAX_LEN 256
#define MARKS_MAX 512

typedef struct {
    char path[PATH_MAX_LEN];
    int line, col;
} mark_t;

typedef struct {
    const char *name;
    FILE *diag;
    yaml_document_t *doc;
    int errors;
    int n_marks;
    mark_t marks[MARKS_MAX];
} loader_t;

static void report(loader_t *ld, const yaml_node_t *node, const char *path,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void report(loader_t *ld, const yaml_node_t *node, const char *path,
                   const char *fmt, ...)
{
    va_list ap;

    ld->errors++;
    if (ld->diag == NULL) {
        return;
    }
    if (node != NULL) {
        fprintf(ld->diag, "%s:%zu:%zu: error: ", ld->name,
                node->start_mark.line + 1, node->start_mark.column + 1);
    } else {
        fprintf(ld->diag, "%s: error: ", ld->name);
    }
    if (path != NULL && path[0] != '\0') {
        fprintf(ld->diag, "%s: ", path);
    }
    va_start(ap, fmt);
    vfprintf(ld->diag, fmt, ap);
    va_end(ap);
    fputc('\n', ld->diag);
}

static void remember(loader_t *ld, const char *path, const yaml_node_t *n)
{
    mark_t *m;

    if (ld->n_marks >= MARKS_MAX) {
        return;
    }
    m = &ld->marks[ld->n_marks++];
    snprintf(m->path, sizeof(m->path), "%s", path);
    m->line = (int)n->start_mark.line + 1;
    m->col = (int)n->start_mark.column + 1;
}

static const char *node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "mapping";
    case YAML_SEQUENCE_NODE:
        return "sequence";
    default:
        return "scalar";
    }
}

/* A scalar's text; "?" for a sequence or mapping (a key written as one,
 * named in the error that refuses it). */
static const char *scalar(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value
                                       : "?";
}

/* YAML's null (plain ~, null, Null, NULL or nothing): a string key given
 * it is empty, not the text "~". */
static bool is_null(const yaml_node_t *n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};

    if (n->type != YAML_SCALAR_NODE ||
        n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return false;
    }
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++) {
        if (strcmp(scalar(n), nulls[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* The first control character in @p s (C0 or DEL), except those in
 * @p allowed; NULL if none. */
static const char *control_char(const char *s, const char *allowed)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 || c == 0x7f) && strchr(allowed, *s) == NULL) {
            return s;
        }
    }
    return NULL;
}

/* --- scalar conversion, shared by the loader and the defaults pass ------ */

static int parse_number(const char *s, bool integer, double *out)
{
    char *end;
    double v;

    if (*s == '\0') {
        return -1;
    }
    errno = 0;
    if (integer) {
        long long ll = strtoll(s, &end, 10);
        v = (double)ll;
    } else {
        v = strtod(s, &end);
    }
    if (*end != '\0' || errno != 0 || !isfinite(v)) {
        return -1;
    }
    *out = v;
    return 0;
}

static void fmt_range(const bw_key_t *k, char *buf, size_t n)
{
    if (k->type == BW_KT_DOUBLE) {
        snprintf(buf, n, "number in [%g, %g]", k->min, k->max);
    } else {
        snprintf(buf, n, "integer in [%.0f, %.0f]", k->min, k->max);
    }
}

static void enum_list(const bw_key_t *k, char *buf, size_t n)
{
    size_t used = 0;

    buf[0] = '\0';
    for (int i = 0; k->enums[i] != NULL && used < n; i++) {
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "",
                                 k->enums[i]);
    }
}

/*
 * Store scalar text @p s into the field of @p k at @p base. Returns NULL on
 * success or writes the reason into @p why.
 */
static int store_scalar(const bw_key_t *k, void *base, const char *s,
                        bool plain, char *why, size_t why_n)
{
    char *field = (char *)base + k->off;
    char range[96];
    double v;

    switch (k->type) {
    case BW_KT_INT:
    case BW_KT_I64:
    case BW_KT_DOUBLE:
        fmt_range(k, range, sizeof(range));
        if (!plain || parse_number(s, k->type != BW_KT_DOUBLE, &v) != 0 ||
            v < k->min || v > k->max) {
            snprintf(why, why_n, "expected %s, got \"%s\"", range, s);
            return -1;
        }
        if (k->type == BW_KT_INT) {
            *(int *)field = (int)v;
        } else if (k->type == BW_KT_I64) {
            *(int64_t *)field = (int64_t)v;
        } else {
            /* -0 is 0: printed as "-0" it changed the state version */
            *(double *)field = v + 0.0;
        }
        return 0;
    case BW_KT_BOOL:
        if (plain && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)) {
            *(bool *)field = s[0] == 't';
            return 0;
        }
        snprintf(why, why_n, "expected true or false, got \"%s\"", s);
        return -1;
    case BW_KT_ENUM:
        for (int i = 0; k->enums[i] != NULL; i++) {
            if (strcmp(s, k->enums[i]) == 0) {
                *(int *)field = i;
                return 0;
            }
        }
        enum_list(k, range, sizeof(range));
        snprintf(why, why_n, "expected one of %s, got \"%s\"", range, s);
        return -1;
    case BW_KT_STRING:
        /* names, paths, topics and ids end up in logs, keys and
         * transactional ids: one line each */
        if (control_char(s, "") != NULL) {
            snprintf(why, why_n,
                     "control character 0x%02x in a string (written as an "
                     "escape in a double-quoted string?)",
                     (unsigned char)*control_char(s, ""));
            return -1;
        }
        if (strlen(s) >= k->size ||
            ((k->required || k->min > 0) && s[0] == '\0')) {
            /* a secret's value is never echoed, not even its start */
            if (bw_config_key_is_secret(k->name)) {
                snprintf(why, why_n,
                         "expected non-empty string of at most %zu "
                         "characters (the value is a secret: not shown)",
                         k->size - 1);
                return -1;
            }
            snprintf(why, why_n,
                     "expected non-empty string of at most %zu characters, "
                     "got \"%.40s\"",
                     k->size - 1, s);
            return -1;
        }
        memcpy(field, s, strlen(s) + 1);
        return 0;
    default:
        snprintf(why, why_n, "internal: not a scalar key");
        return -1;
    }
}

static void apply_defaults(const bw_key_t *tbl, void *base)
{
    char why[160];

    for (const bw_key_t *k = tbl; k->name != NULL; k++) {
        if (k->type == BW_KT_SECTION) {
            apply_defaults(k->sub, (char *)base + k->off);
        } else if (k->type == BW_KT_LIST) {
            *(int *)((char *)base + k->count_off) = 0;
        } else if (k->type == BW_KT_STRLIST) {
            bool one = k->def != NULL && k->def[0] != '\0';
            *(int *)((char *)base + k->count_off) = one ? 1 : 0;
            if (one) {
                snprintf((char *)base + k->off, k->size, "%s", k->def);
            }
        } else if (k->type == BW_KT_MAP) {
            ((bw_kvmap_t *)((char *)base + k->off))->n = 0;
        } else if (k->type == BW_KT_STRING) {
            /* "" is the default of a required string: nothing to check. */
            snprintf((char *)base + k->off, k->size, "%s", k->def);
        } else {
            int rc = store_scalar(k, base, k->def, true, why, sizeof(why));
            BW_ASSERT(rc == 0); /* a bad default is a bug in keys.c */
        }
    }
}

void bw_config_defaults(bw_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    apply_defaults(bw__config_root, cfg);
}

/* --- walking the document ----------------------------------------------- */

static void walk_mapping(loader_t *ld, const bw_key_t *tbl, void *base,
                         yaml_node_t *map, const char *path);

static void join(char *out, size_t n, const char *path, const char *key)
{
    snprintf(out, n, "%s%s%s", path, path[0] ? "." : "", key);
}

static const bw_key_t *find_key(const bw_key_t *tbl, const char *name,
                                int *index)
{
    for (int i = 0; tbl[i].name != NULL; i++) {
        if (strcmp(tbl[i].name, name) == 0) {
            *index = i;
            return &tbl[i];
        }
    }
    return NULL;
}

static void unknown_key(loader_t *ld, const bw_key_t *tbl, yaml_node_t *kn,
                        const char *path)
{
    char valid[1024];
    size_t used = 0;

    valid[0] = '\0';
    for (int i = 0; tbl[i].name != NULL; i++) {
        size_t room = sizeof(valid) - used - 5; /* room for ", ..." */
        int n =
            snprintf(valid + used, room, "%s%s", i ? ", " : "", tbl[i].name);
        if (n < 0 || (size_t)n >= room) { /* never cut a name in half */
            memcpy(valid + used, ", ...", 6);
            break;
        }
        used += (size_t)n;
    }
    report(ld, kn, path, "unknown key \"%s\" (valid: %s)", scalar(kn), valid);
}

static void walk_list(loader_t *ld, const bw_key_t *k, void *base,
                      yaml_node_t *seq, const char *path)
{
    int *count = (int *)((char *)base + k->count_off);
    char ipath[PATH_MAX_LEN];
    int n = 0;

    if (seq->type != YAML_SEQUENCE_NODE) {
        report(ld, seq, path, "expected sequence, got %s", node_kind(seq));
        return;
    }
    for (yaml_node_item_t *it = seq->data.sequence.items.start;
         it < seq->data.sequence.items.top; it++, n++) {
        yaml_node_t *item = yaml_document_get_node(ld->doc, *it);
        void *ibase = (char *)base + k->off + (size_t)n * k->size;

        snprintf(ipath, sizeof(ipath), "%s[%d]", path, n);
        if (n >= k->max_items) {
            report(ld, item, ipath, "at most %d items allowed", k->max_items);
            break;
        }
        apply_defaults(k->sub, ibase);
        walk_mapping(ld, k->sub, ibase, item, ipath);
    }
    *count = n < k->max_items ? n : k->max_items;
}

/* A sequence of non-empty strings, each shorter than the item size. */
static void walk_strlist(loader_t *ld, const bw_key_t *k, void *base,
                         yaml_node_t *seq, const char *path)
{
    int *count = (int *)((char *)base + k->count_off);
    char ipath[PATH_MAX_LEN];
    int n = 0;

    if (seq->type != YAML_SEQUENCE_NODE) {
        report(ld, seq, path, "expected sequence of strings, got %s",
               node_kind(seq));
        return;
    }
    remember(ld, path, seq); /* for the cross-field checks' messages */
    for (yaml_node_item_t *it = seq->data.sequence.items.start;
         it < seq->data.sequence.items.top; it++) {
        yaml_node_t *item = yaml_document_get_node(ld->doc, *it);
        const char *s = scalar(item);

        snprintf(ipath, sizeof(ipath), "%s[%d]", path, n);
        if (n >= k->max_items) {
            report(ld, item, ipath, "at most %d items allowed", k->max_items);
            break;
        }
        if (item->type != YAML_SCALAR_NODE || s[0] == '\0' ||
            strlen(s) >= k->size || control_char(s, "") != NULL) {
            report(ld, item, ipath,
                   "expected non-empty string of at most %zu characters, "
                   "without control characters",
                   k->size - 1);
            continue;
        }
        memcpy((char *)base + k->off + (size_t)n * k->size, s, strlen(s) + 1);
        n++;
    }
    if (n == 0 &&
        seq->data.sequence.items.start == seq->data.sequence.items.top) {
        report(ld, seq, path, "expected at least one item");
    }
    *count = n;
}

static bool kv_fits(const yaml_node_t *kn, const yaml_node_t *vn,
                    const bw_kv_t *kv)
{
    return kn->type == YAML_SCALAR_NODE && vn->type == YAML_SCALAR_NODE &&
           kn->data.scalar.length > 0 &&
           kn->data.scalar.length < sizeof(kv->key) &&
           vn->data.scalar.length < sizeof(kv->value);
}

typedef void (*pair_fn_t)(loader_t *ld, yaml_node_t *kn, yaml_node_t *vn,
                          const char *path, void *arg);

/* Call @p fn for every key/value pair of a mapping; false (reported) if
 * the node is not a mapping. */
static bool each_pair(loader_t *ld, yaml_node_t *map, const char *path,
                      pair_fn_t fn, void *arg)
{
    if (map->type != YAML_MAPPING_NODE) {
        report(ld, map, path, "expected mapping, got %s", node_kind(map));
        return false;
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
         p < map->data.mapping.pairs.top; p++) {
        fn(ld, yaml_document_get_node(ld->doc, p->key),
           yaml_document_get_node(ld->doc, p->value), path, arg);
    }
    return true;
}

/* One `property: value` of a pass-through map, position kept so a later
 * check (librdkafka's) can point at the line. */
static void map_entry(loader_t *ld, yaml_node_t *kn, yaml_node_t *vn,
                      const char *path, void *arg)
{
    bw_kvmap_t *m = arg;
    bw_kv_t *kv = &m->kv[m->n < BW_KV_MAX ? m->n : 0];
    char kpath[PATH_MAX_LEN];

    join(kpath, sizeof(kpath), path, scalar(kn));
    if (m->n >= BW_KV_MAX) {
        report(ld, kn, kpath, "at most %d properties allowed", BW_KV_MAX);
        return;
    }
    if (!kv_fits(kn, vn, kv)) {
        report(ld, vn, kpath,
               "expected a scalar property name and value (at most "
               "%zu and %zu characters)",
               sizeof(kv->key) - 1, sizeof(kv->value) - 1);
        return;
    }
    /* a property's value may hold a PEM's line breaks and tabs, no other
     * control character; its name none */
    if (control_char(scalar(kn), "") != NULL ||
        control_char(scalar(vn), "\n\r\t") != NULL) {
        report(ld, vn, kpath, "control character in a property name or value");
        return;
    }
    for (int i = 0; i < m->n; i++) {
        if (strcmp(m->kv[i].key, scalar(kn)) == 0) {
            report(ld, kn, kpath, "duplicate key (first at line %d)",
                   m->kv[i].line);
        }
    }
    snprintf(kv->key, sizeof(kv->key), "%s", scalar(kn));
    snprintf(kv->value, sizeof(kv->value), "%s", scalar(vn));
    kv->line = (int)vn->start_mark.line + 1;
    kv->col = (int)vn->start_mark.column + 1;
    m->n++;
}

static void walk_map(loader_t *ld, const bw_key_t *k, void *base,
                     yaml_node_t *map, const char *path)
{
    each_pair(ld, map, path, map_entry, (char *)base + k->off);
}

static void walk_value(loader_t *ld, const bw_key_t *k, void *base,
                       yaml_node_t *vn, const char *path)
{
    char why[256];

    if (k->type == BW_KT_SECTION) {
        walk_mapping(ld, k->sub, (char *)base + k->off, vn, path);
    } else if (k->type == BW_KT_LIST) {
        walk_list(ld, k, base, vn, path);
    } else if (k->type == BW_KT_STRLIST) {
        walk_strlist(ld, k, base, vn, path);
    } else if (k->type == BW_KT_MAP) {
        walk_map(ld, k, base, vn, path);
    } else if (vn->type != YAML_SCALAR_NODE) {
        char range[96] = "scalar";
        if (k->type == BW_KT_INT || k->type == BW_KT_DOUBLE ||
            k->type == BW_KT_I64) {
            fmt_range(k, range, sizeof(range));
        }
        report(ld, vn, path, "expected %s, got %s", range, node_kind(vn));
    } else {
        bool plain = vn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (k->type == BW_KT_STRING || k->type == BW_KT_ENUM) {
            plain = true;
        }
        const char *s = k->type == BW_KT_STRING && is_null(vn) ? ""
                                                               : scalar(vn);
        if (strlen(scalar(vn)) != vn->data.scalar.length) {
            /* "\0" in a double-quoted string: everything after it was
             * dropped unseen ("pw\0rest" read as "pw") */
            report(ld, vn, path, "a NUL byte (\\0) in a string");
        } else if (store_scalar(k, base, s, plain, why, sizeof(why)) != 0) {
            report(ld, vn, path, "%s", why);
        }
        remember(ld, path, vn);
    }
}

static void check_required(loader_t *ld, const bw_key_t *tbl, uint64_t seen,
                           yaml_node_t *map, const char *path)
{
    for (int i = 0; tbl[i].name != NULL; i++) {
        if (tbl[i].required && !(seen & (1ULL << i))) {
            report(ld, map, path, "missing required key \"%s\"", tbl[i].name);
        }
    }
}

typedef struct {
    const bw_key_t *tbl;
    void *base;
    yaml_node_t *first[64]; /* where each key was first seen */
    uint64_t seen;
} section_t;

/* One `key: value` of a section, checked against its key table. */
static void section_entry(loader_t *ld, yaml_node_t *kn, yaml_node_t *vn,
                          const char *path, void *arg)
{
    section_t *sec = arg;
    char kpath[PATH_MAX_LEN];
    const bw_key_t *k;
    int idx = -1;

    if (kn->type != YAML_SCALAR_NODE) {
        report(ld, kn, path, "expected a scalar key, got %s", node_kind(kn));
        return;
    }
    join(kpath, sizeof(kpath), path, scalar(kn));
    k = find_key(sec->tbl, scalar(kn), &idx);
    if (k == NULL) {
        unknown_key(ld, sec->tbl, kn, path[0] ? path : "(top level)");
        return;
    }
    if (sec->seen & (1ULL << idx)) {
        report(ld, kn, kpath, "duplicate key (first at line %zu)",
               sec->first[idx]->start_mark.line + 1);
        return;
    }
    sec->seen |= 1ULL << idx;
    sec->first[idx] = kn;
    walk_value(ld, k, sec->base, vn, kpath);
}

static void walk_mapping(loader_t *ld, const bw_key_t *tbl, void *base,
                         yaml_node_t *map, const char *path)
{
    section_t sec = {.tbl = tbl, .base = base};

    if (each_pair(ld, map, path, section_entry, &sec)) {
        check_required(ld, tbl, sec.seen, map, path);
    }
}

/* --- cross-field checks -----------------------------------------------------
 */

/* The mark of @p path, or else of the first key set beside it in its
 * section (a rule between keys broken by the one the user did write), or
 * -1. */
static int cross_mark(const loader_t *ld, const char *path)
{
    const char *dot = strrchr(path, '.');
    size_t parent = dot != NULL ? (size_t)(dot - path) + 1 : 0;

    for (int i = 0; i < ld->n_marks; i++) {
        if (strcmp(ld->marks[i].path, path) == 0) {
            return i;
        }
    }
    for (int i = 0; parent > 0 && i < ld->n_marks; i++) {
        if (strncmp(ld->marks[i].path, path, parent) == 0 &&
            strchr(ld->marks[i].path + parent, '.') == NULL) {
            return i;
        }
    }
    return -1;
}

/* A cross-field finding of @p kind ("error", "warning") at @p path's
 * mark, or without a position where the file set nothing near it. */
static void cross_say(const loader_t *ld, const char *kind, const char *path,
                      const char *msg)
{
    int i = cross_mark(ld, path);

    if (ld->diag == NULL) {
        return;
    }
    if (i < 0) {
        fprintf(ld->diag, "%s: %s: %s: %s\n", ld->name, kind, path, msg);
        return;
    }
    fprintf(ld->diag, "%s:%d:%d: %s: %s: %s\n", ld->name, ld->marks[i].line,
            ld->marks[i].col, kind, path, msg);
}

static void cross_report(loader_t *ld, const char *path, const char *msg)
{
    ld->errors++;
    cross_say(ld, "error", path, msg);
}

void bw_config_changelog_topic(const bw_config_t *cfg, char *out, size_t n)
{
    if (cfg->state.topic[0] != '\0') {
        snprintf(out, n, "%s", cfg->state.topic);
    } else {
        snprintf(out, n, "%s-model-state-changelog", cfg->kafka.group_id);
    }
}

bool bw_config_split_listen(const char *s, char *host, size_t hn, char *port,
                            size_t pn)
{
    const char *colon = strrchr(s, ':');
    size_t len;

    if (colon == NULL || colon[1] == '\0' ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
        strtoul(colon + 1, NULL, 10) > 65535) {
        return false;
    }
    len = (size_t)(colon - s);
    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        s++;
        len -= 2;
    }
    if (len == 0 || len >= hn || strlen(colon + 1) >= pn) {
        return false;
    }
    memcpy(host, s, len);
    host[len] = '\0';
    snprintf(port, pn, "%s", colon + 1);
    return true;
}

static int by_descending(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x < y) - (x > y);
}

double bw_config_rule_ceiling(const bw_fusion_cfg_t *fu, int rule)
{
    const bw_rule_cfg_t *r = &fu->rules[rule];
    double cap[BW_SIGNALS_MAX], total = 0.0, weight = 1.0;

    for (int s = 0; s < r->n_signals; s++) {
        cap[s] = log(r->signals[s].detection / r->signals[s].false_alarm);
    }
    qsort(cap, (size_t)r->n_signals, sizeof(double), by_descending);
    for (int s = 0; s < r->n_signals; s++) {
        total += weight * cap[s];
        weight *= 1.0 - fu->correlation;
    }
    return 1.0 / (1.0 + exp(-(log(fu->prior) - log1p(-fu->prior) + total)));
}

/* A rule that cannot reach high whatever its signals do: say so, with the
 * most it can say. */
static void warn_ceiling(const loader_t *ld, const bw_fusion_cfg_t *fu,
                         int r)
{
    char p[PATH_MAX_LEN], msg[512];
    double top = bw_config_rule_ceiling(fu, r);

    if (!(top < fu->band_high)) {
        return;
    }
    snprintf(p, sizeof(p), "model.fusion.rules[%d].name", r);
    snprintf(msg, sizeof(msg),
             "rule \"%s\" never reaches high: with all %d of its signals "
             "elevated its probability is at most %.3g, below band_high "
             "%.3g (each signal moves the odds by at most detection / "
             "false_alarm, the k-th by (1 - correlation)^(k-1) of that, "
             "from prior %g); raise detection / false_alarm, add signals, "
             "or lower correlation",
             fu->rules[r].name, fu->rules[r].n_signals, top, fu->band_high,
             fu->prior);
    cross_say(ld, "warning", p, msg); /* not an error: it loads */
}

static void cross_check_fusion(loader_t *ld, const bw_fusion_cfg_t *fu)
{
    char p[PATH_MAX_LEN];

    if (!(fu->band_moderate < fu->band_high &&
          fu->band_high < fu->band_critical)) {
        cross_report(ld, "model.fusion.band_high",
                     "bands must satisfy band_moderate < band_high < "
                     "band_critical");
    }
    for (int r = 0; r < fu->n_rules; r++) {
        const bw_rule_cfg_t *rule = &fu->rules[r];
        if (rule->n_signals == 0) {
            snprintf(p, sizeof(p), "model.fusion.rules[%d].name", r);
            cross_report(ld, p, "a rule needs at least one signal");
        }
        for (int s = 0; s < rule->n_signals; s++) {
            if (rule->signals[s].detection <= rule->signals[s].false_alarm) {
                snprintf(p, sizeof(p),
                         "model.fusion.rules[%d].signals[%d].detection", r, s);
                cross_report(ld, p, "detection must exceed false_alarm");
            }
        }
    }
}

/* Every topic the stage writes is its own and none is read: a dead-letter
 * topic that is also an input reads each dead letter back, fails it again
 * and writes it again without end; two outputs in one topic register two
 * schemas under one subject. */
static void cross_check_topics(loader_t *ld, const bw_config_t *cfg)
{
    struct {
        const char *path, *topic;
    } out[5] = {{"emit.scores.topic", cfg->emit.scores.topic},
                {"emit.threats.topic", cfg->emit.threats.topic},
                {"emit.dead_letters.topic", cfg->emit.dead_letters.topic}};
    char state_topic[sizeof(cfg->kafka.group_id) + 32], msg[160];
    int n = 3;

    if (cfg->emit.alerts.topic[0] != '\0') {
        out[n].path = "emit.alerts.topic", out[n++].topic = cfg->emit.alerts.topic;
    }
    if (cfg->state.changelog) {
        bw_config_changelog_topic(cfg, state_topic, sizeof(state_topic));
        out[n].path = "state.topic", out[n++].topic = state_topic;
    }
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < cfg->ingest.n_topics; k++) {
            if (strcmp(out[i].topic, cfg->ingest.topics[k]) == 0) {
                cross_report(ld, out[i].path,
                             "is also an input topic (ingest.topics): the "
                             "stage would read its own records back");
            }
        }
        for (int j = 0; j < i; j++) {
            if (strcmp(out[i].topic, out[j].topic) == 0) {
                snprintf(msg, sizeof(msg), "is also %s: each output needs "
                         "a topic of its own", out[j].path);
                cross_report(ld, out[i].path, msg);
            }
        }
    }
}

/* What the registry client refuses at start-up, here with its line: the
 * URL's scheme, and a password file it cannot read (read to be checked,
 * then wiped; the client reads it again when it is made). */
static void cross_check_registry(loader_t *ld, const bw_registry_cfg_t *r)
{
    char pw[512], why[256];

    if (r->url[0] != '\0' && strncmp(r->url, "http://", 7) != 0 &&
        strncmp(r->url, "https://", 8) != 0) {
        cross_report(ld, "registry.url", "expected an http:// or https:// URL");
    }
    if (r->url[0] != '\0' &&
        !bw_config_secret(r->password, pw, sizeof(pw), why, sizeof(why))) {
        cross_report(ld, "registry.password", why);
    }
    explicit_bzero(pw, sizeof(pw));
}

static void cross_check(loader_t *ld, bw_config_t *cfg)
{
    const bw_pf_cfg_t *pf = &cfg->model.pf;
    const bw_hier_cfg_t *hi = &cfg->model.hier;
    char host[BW_LISTEN_HOST_MAX], port[16];

    if (pf->p_spike + pf->p_shift + pf->p_episode +
            (pf->recur_window > 0 ? pf->p_recur : 0.0) >=
        1.0) {
        cross_report(ld, "model.pf.p_spike",
                     "p_spike + p_shift + p_episode + p_recur must be < 1");
    }
    if (pf->block_size == 1) {
        cross_report(ld, "model.pf.block_size",
                     "block_size must be 0 (off) or at least 2");
    }
    if (hi->kappa_prior_power >= -2.0) {
        /* on the grid's (logit mu, log kappa) the prior is
         * kappa^(power + 2), and the likelihood tends to a constant as
         * kappa grows (the binomial limit): the posterior's mass would
         * pile at kappa_max, complete pooling */
        cross_report(ld, "model.hier.kappa_prior_power",
                     "kappa_prior_power must be below -2: at -2 and above "
                     "the hyperposterior is improper in the concentration "
                     "(BDA3 5.3 uses -2.5)");
    }
    if (hi->kappa_min >= hi->kappa_max) {
        cross_report(ld, "model.hier.kappa_max",
                     "kappa_max must exceed kappa_min");
    }
    for (int r = 0; r < cfg->engine.n_routes; r++) {
        const bw_route_cfg_t *ro = &cfg->engine.routes[r];
        char p[PATH_MAX_LEN];
        if (ro->tail_scale < 0.0 && ro->tail_scale != -1.0) { /* -1: pf's */
            snprintf(p, sizeof(p), "engine.routes[%d].tail_scale", r);
            cross_report(ld, p, "tail_scale must be -1 (model.pf's) or >= 0");
        }
        if (ro->model == BW_MODEL_POOLED_COUNT && ro->slo > 1.0) {
            snprintf(p, sizeof(p), "engine.routes[%d].slo", r);
            cross_report(ld, p, "a pooled_count slo is a rate of bad events "
                                "per trial, at most 1 (0.01 = 1%)");
        }
    }
    cross_check_fusion(ld, &cfg->model.fusion);
    cross_check_topics(ld, cfg);
    cross_check_registry(ld, &cfg->registry);
    if (cfg->state.replication_factor == 0) {
        cross_report(ld, "state.replication_factor",
                     "expected -1 (the broker's default) or 1-32: Kafka "
                     "creates no topic with 0 replicas");
    }
    if (cfg->obs.kafka_stats_ms > 0.0 && cfg->obs.kafka_stats_ms < 1.0) {
        cross_report(ld, "obs.kafka_stats_ms",
                     "expected 0 (off) or at least 1 ms (librdkafka counts "
                     "whole milliseconds: it read as 0, off)");
    }
    if (cfg->obs.listen[0] != '\0' &&
        !bw_config_split_listen(cfg->obs.listen, host, sizeof(host), port,
                                sizeof(port))) {
        cross_report(ld, "obs.listen",
                     "expected HOST:PORT or [IPV6]:PORT with a port of at "
                     "most 65535 (or empty: off)");
    }
    if (cfg->state.changelog && cfg->ingest.n_topics > 1) {
        cross_report(ld, "ingest.topics",
                     "the state changelog serves one input topic (its "
                     "partition p holds input partition p's state): run one "
                     "group per input topic, or set state.changelog: false");
    }
}

void bw_config_report_kv(const bw_config_t *cfg, const char *path,
                         const bw_kv_t *kv, const char *msg, FILE *diag)
{
    if (diag == NULL) {
        return;
    }
    if (kv->line > 0) {
        fprintf(diag, "%s:%d:%d: error: %s.%s: %s\n", cfg->source, kv->line,
                kv->col, path, kv->key, msg);
    } else {
        fprintf(diag, "%s: error: %s.%s: %s\n", cfg->source, path, kv->key,
                msg);
    }
}

/* --- entry points -----------------------------------------------------------
 */

/* FNV-1a of what the dump prints (0 if it cannot be printed). */
static uint64_t dump_hash(const bw_config_t *cfg, const char *model,
                          bw_dump_mode_t mode)
{
    char *buf = NULL;
    size_t len = 0;
    uint64_t h = 0;
    FILE *mem = open_memstream(&buf, &len);

    if (mem == NULL) {
        return 0;
    }
    if (model == NULL) {
        bw__config_dump_models(cfg, mem, mode);
    } else {
        bw__config_dump_model(cfg, model, mem, mode);
    }
    fclose(mem);
    h = bw_hash64(BW_HASH64_INIT, buf, len);
    free(buf);
    return h;
}

static void finish(bw_config_t *cfg)
{
    if (cfg->engine.n_routes == 0) {
        bw_route_cfg_t *r = &cfg->engine.routes[0];
        strcpy(r->region, "*");
        strcpy(r->service, "*");
        strcpy(r->metric, "*");
        r->model = BW_MODEL_SERIES;
        r->transform = BW_TRANSFORM_NONE;
        r->slo = 0;
        r->tail_scale = -1; /* model.pf's */
        cfg->engine.n_routes = 1;
    }
    cfg->hash = dump_hash(cfg, NULL, BW_DUMP_VERSION_DOCS);
    cfg->state_version.pf = dump_hash(cfg, "pf", BW_DUMP_VERSION);
    cfg->state_version.hier = dump_hash(cfg, "hier", BW_DUMP_VERSION);
    cfg->state_version.fusion = dump_hash(cfg, "fusion", BW_DUMP_VERSION);
    cfg->state_version_docs.pf = dump_hash(cfg, "pf", BW_DUMP_VERSION_DOCS);
    cfg->state_version_docs.hier =
        dump_hash(cfg, "hier", BW_DUMP_VERSION_DOCS);
    cfg->state_version_docs.fusion =
        dump_hash(cfg, "fusion", BW_DUMP_VERSION_DOCS);
}

/* libyaml's error at its position: a reader error (bad UTF-8, a control
 * character) sets only the byte offset, from which the line is counted. */
static void yaml_error(const yaml_parser_t *parser, const char *name,
                       const char *yaml, size_t len, FILE *diag)
{
    size_t line = parser->problem_mark.line + 1;
    size_t col = parser->problem_mark.column + 1;

    if (parser->error == YAML_READER_ERROR) {
        line = col = 1;
        for (size_t i = 0; i < parser->problem_offset && i < len; i++) {
            line += yaml[i] == '\n';
            col = yaml[i] == '\n' ? 1 : col + 1;
        }
    }
    if (diag != NULL) {
        fprintf(diag, "%s:%zu:%zu: error: YAML: %s\n", name, line, col,
                parser->problem ? parser->problem : "syntax error");
    }
}

/* A config is one YAML document: a second one ("---") would be silently
 * ignored, so it is refused. */
static bool one_document(yaml_parser_t *parser, const char *name,
                         const char *yaml, size_t len, FILE *diag)
{
    yaml_document_t next;
    yaml_node_t *root;
    bool ok;

    if (!yaml_parser_load(parser, &next)) {
        yaml_error(parser, name, yaml, len, diag);
        return false;
    }
    root = yaml_document_get_root_node(&next);
    ok = root == NULL;
    if (!ok && diag != NULL) {
        fprintf(diag,
                "%s:%zu:%zu: error: a second YAML document; a config file "
                "holds one\n",
                name, next.start_mark.line + 1, next.start_mark.column + 1);
    }
    yaml_document_delete(&next);
    return ok;
}

bw_err_t bw_config_load_string(bw_config_t *cfg, const char *name,
                               const char *yaml, size_t len, FILE *diag)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_node_t *root;
    loader_t *ld = NULL;
    bw_err_t err = BW_OK;
    int have_doc = 0;

    bw_config_defaults(cfg);
    ld = bw_calloc(1, sizeof(*ld));
    if (ld == NULL || !yaml_parser_initialize(&parser)) {
        bw_free(ld);
        return BW_ERR_NOMEM;
    }
    ld->name = name;
    ld->diag = diag;
    snprintf(cfg->source, sizeof(cfg->source), "%s", name);
    ld->doc = &doc;
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_error(&parser, name, yaml, len, diag);
        err = BW_ERR_CONFIG;
        goto out;
    }
    have_doc = 1;
    if (!one_document(&parser, name, yaml, len, diag)) {
        err = BW_ERR_CONFIG;
        goto out;
    }
    root = yaml_document_get_root_node(&doc);
    if (root != NULL &&
        !(root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0)) {
        walk_mapping(ld, bw__config_root, cfg, root, "");
    }
    finish(cfg);
    cross_check(ld, cfg);
    if (ld->errors == 0) { /* warnings of a config that loads */
        for (int r = 0; r < cfg->model.fusion.n_rules; r++) {
            warn_ceiling(ld, &cfg->model.fusion, r);
        }
    }
    err = ld->errors ? BW_ERR_CONFIG : BW_OK;
out:
    if (have_doc) {
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    bw_free(ld);
    return err;
}

#define CONFIG_MAX_BYTES (16u << 20)

bw_err_t bw_config_load(bw_config_t *cfg, const char *path, FILE *diag)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    bw_err_t err;
    struct stat st;

    if (f == NULL || fstat(fileno(f), &st) != 0 || S_ISDIR(st.st_mode)) {
        if (diag != NULL) {
            fprintf(diag, "%s: error: cannot open: %s\n", path,
                    f == NULL ? strerror(errno) : "a directory");
        }
        if (f != NULL) {
            fclose(f);
        }
        return BW_ERR_IO;
    }
    for (;;) {
        if (len > CONFIG_MAX_BYTES) {
            if (diag != NULL) {
                fprintf(diag, "%s: error: larger than %u bytes\n", path,
                        CONFIG_MAX_BYTES);
            }
            free(buf);
            fclose(f);
            return BW_ERR_CONFIG;
        }
        if (len == cap) {
            char *nb;
            cap = cap ? cap * 2 : 4096;
            nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return BW_ERR_NOMEM;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        if (n == 0) {
            break;
        }
        len += n;
    }
    if (ferror(f)) {
        if (diag != NULL) {
            fprintf(diag, "%s: error: cannot read: %s\n", path,
                    strerror(errno));
        }
        free(buf);
        fclose(f);
        return BW_ERR_IO;
    }
    fclose(f);
    err = bw_config_load_string(cfg, path, buf, len, diag);
    free(buf);
    return err;
}

int bw_config_route(const bw_engine_cfg_t *ec, const char *region,
                    const char *service, const char *metric)
{
    for (int r = 0; r < ec->n_routes; r++) {
        const bw_route_cfg_t *ro = &ec->routes[r];
        if (fnmatch(ro->region, region, 0) == 0 &&
            fnmatch(ro->service, service, 0) == 0 &&
            fnmatch(ro->metric, metric, 0) == 0) {
            return r;
        }
    }
    return -1;
}
