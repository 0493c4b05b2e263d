/*
 * dump-config: the effective configuration as YAML, every key with its
 * meaning as a trailing comment. Walks the same key tables as the loader.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bayeswatch/config.h"
#include "keys.h"

static void dump_table(const bw_key_t *tbl, const void *base, int indent,
                       FILE *out, bool first_dash, bw_dump_mode_t mode);

/* Shortest %g form that reads back to the same double. */
static void print_double(double v, FILE *out)
{
    char buf[40];

    if (v == floor(v) && fabs(v) < 1e15) {
        fprintf(out, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, v);
        if (strtod(buf, NULL) == v) {
            break;
        }
    }
    fputs(buf, out);
}

/* A YAML double-quoted scalar (control characters as escapes, so that
 * the dump loads back: a PEM's line breaks in a Kafka property). */
static void dump_quoted(const char *s, FILE *out)
{
    fputc('"', out);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (*s == '"' || *s == '\\') {
            fputc('\\', out);
            fputc(*s, out);
        } else if (*s == '\n') {
            fputs("\\n", out);
        } else if (*s == '\t') {
            fputs("\\t", out);
        } else if (*s == '\r') {
            fputs("\\r", out);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(out, "\\x%02x", c);
        } else {
            fputc(*s, out);
        }
    }
    fputc('"', out);
}

static void dump_scalar(const bw_key_t *k, const void *base, FILE *out)
{
    const char *field = (const char *)base + k->off;

    switch (k->type) {
    case BW_KT_INT:
        fprintf(out, "%d", *(const int *)field);
        break;
    case BW_KT_I64:
        fprintf(out, "%lld", (long long)*(const int64_t *)field);
        break;
    case BW_KT_DOUBLE:
        print_double(*(const double *)field, out);
        break;
    case BW_KT_BOOL:
        fputs(*(const bool *)field ? "true" : "false", out);
        break;
    case BW_KT_ENUM:
        fputs(k->enums[*(const int *)field], out);
        break;
    case BW_KT_STRING:
        dump_quoted(field, out);
        break;
    default:
        break;
    }
}

static void dump_list(const bw_key_t *k, const void *base, int indent,
                      FILE *out, bw_dump_mode_t mode)
{
    int n = *(const int *)((const char *)base + k->count_off);

    if (n == 0) {
        fprintf(out, " []\n");
        return;
    }
    fputc('\n', out);
    for (int i = 0; i < n; i++) {
        const void *item = (const char *)base + k->off + (size_t)i * k->size;
        fprintf(out, "%*s- ", indent + 2, "");
        dump_table(k->sub, item, indent + 4, out, true, mode);
    }
}

/* A key's doc comment, unless @p mode leaves docs out. */
static void dump_doc(const bw_key_t *k, bw_dump_mode_t mode, FILE *out)
{
    if (mode == BW_DUMP_VERSION) {
        fputc('\n', out);
    } else {
        fprintf(out, "  # %s\n", k->doc);
    }
}

static void dump_strlist(const bw_key_t *k, const void *base, FILE *out,
                         bw_dump_mode_t mode)
{
    int n = *(const int *)((const char *)base + k->count_off);

    fputs(" [", out);
    for (int i = 0; i < n; i++) {
        fputs(i ? ", " : "", out);
        dump_quoted((const char *)base + k->off + (size_t)i * k->size, out);
    }
    fputc(']', out);
    dump_doc(k, mode, out);
}

static void dump_map(const bw_key_t *k, const void *base, int indent, FILE *out,
                     bw_dump_mode_t mode)
{
    const bw_kvmap_t *m = (const bw_kvmap_t *)((const char *)base + k->off);

    if (m->n == 0) {
        fputs(" {}", out);
        dump_doc(k, mode, out);
        return;
    }
    dump_doc(k, mode, out);
    for (int i = 0; i < m->n; i++) {
        fprintf(out, "%*s", indent + 2, "");
        dump_quoted(m->kv[i].key, out);
        fputs(": ", out);
        if (bw_config_key_is_secret(m->kv[i].key)) {
            fputs("\"***\"  # a secret: not shown", out);
        } else {
            dump_quoted(m->kv[i].value, out);
        }
        fputc('\n', out);
    }
}

/* A neutral key (bw_key_t.neutral) at its default: left out of a hash. */
static bool neutral_default(const bw_key_t *k, const void *base)
{
    const char *field = (const char *)base + k->off;

    return k->neutral && k->type == BW_KT_DOUBLE &&
           *(const double *)field == strtod(k->def, NULL);
}

/* @p mode: all of it (dump-config), or the text a version is hashed from
 * (dump_hash, keys.h: bw_dump_mode_t), which leaves out neutral keys at
 * their default. */
static void dump_table(const bw_key_t *tbl, const void *base, int indent,
                       FILE *out, bool first_dash, bw_dump_mode_t mode)
{
    for (const bw_key_t *k = tbl; k->name != NULL; k++) {
        int pad = first_dash ? 0 : indent; /* a list item's first key */
        if (mode != BW_DUMP_ALL && neutral_default(k, base)) {
            continue;
        }
        first_dash = false;
        fprintf(out, "%*s%s:", pad, "", k->name);
        if (k->type == BW_KT_SECTION) {
            dump_doc(k, mode, out);
            dump_table(k->sub, (const char *)base + k->off, indent + 2, out,
                       false, mode);
        } else if (k->type == BW_KT_LIST) {
            dump_list(k, base, indent, out, mode);
        } else if (k->type == BW_KT_STRLIST) {
            dump_strlist(k, base, out, mode);
        } else if (k->type == BW_KT_MAP) {
            dump_map(k, base, indent, out, mode);
        } else if (k->type == BW_KT_STRING &&
                   bw_config_key_is_secret(k->name) &&
                   ((const char *)base + k->off)[0] != '\0') {
            fprintf(out, " \"***\"  # a secret: not shown\n");
        } else {
            fputc(' ', out);
            dump_scalar(k, base, out);
            dump_doc(k, mode, out);
        }
    }
}

void bw_config_dump(const bw_config_t *cfg, FILE *out)
{
    dump_table(bw__config_root, cfg, 0, out, false, BW_DUMP_ALL);
}

void bw__config_dump_models(const bw_config_t *cfg, FILE *out,
                            bw_dump_mode_t mode)
{
    for (const bw_key_t *k = bw__config_root; k->name != NULL; k++) {
        if (strcmp(k->name, "engine") == 0 || strcmp(k->name, "model") == 0) {
            bw_key_t one[2] = {*k, {.name = NULL}};
            dump_table(one, cfg, 0, out, false, mode);
        }
    }
}

void bw__config_dump_model(const bw_config_t *cfg, const char *name,
                           FILE *out, bw_dump_mode_t mode)
{
    for (const bw_key_t *k = bw__config_root; k->name != NULL; k++) {
        if (strcmp(k->name, "model") != 0) {
            continue;
        }
        for (const bw_key_t *m = k->sub; m->name != NULL; m++) {
            if (strcmp(m->name, name) == 0) {
                bw_key_t one[2] = {*m, {.name = NULL}};
                dump_table(one, (const char *)cfg + k->off, 0, out, false,
                           mode);
            }
        }
    }
}

bool bw_config_key_is_secret(const char *key)
{
    static const char *const words[] = {
        "password", "secret", "token",  "credential",         "private",
        "key.pem",  "passwd", "apikey", "oauthbearer.config", "jaas",
        "api.key"};
    char low[256];
    size_t n = 0;

    for (; key[n] != '\0' && n + 1 < sizeof(low); n++) {
        low[n] = (char)(key[n] >= 'A' && key[n] <= 'Z' ? key[n] + 32 : key[n]);
    }
    low[n] = '\0';
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strstr(low, words[i]) != NULL) {
            return true;
        }
    }
    return false;
}
