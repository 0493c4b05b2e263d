/*
 * dump-config: the effective configuration as YAML, every key with its
 * meaning as a trailing comment. Walks the same key tables as the loader.
 */
#include <stdlib.h>
#include <string.h>

#include "bayeswatch/config.h"
#include "keys.h"

static void dump_table(const bw_key_t *tbl, const void *base, int indent,
                       FILE *out, bool first_dash);

/* Shortest %g form that reads back to the same double. */
static void print_double(double v, FILE *out)
{
    char buf[40];

    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, v);
        if (strtod(buf, NULL) == v) {
            break;
        }
    }
    fputs(buf, out);
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
        fprintf(out, "\"%s\"", field);
        break;
    default:
        break;
    }
}

static void dump_list(const bw_key_t *k, const void *base, int indent,
                      FILE *out)
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
        dump_table(k->sub, item, indent + 4, out, true);
    }
}

static void dump_table(const bw_key_t *tbl, const void *base, int indent,
                       FILE *out, bool first_dash)
{
    for (const bw_key_t *k = tbl; k->name != NULL; k++) {
        int pad = (first_dash && k == tbl) ? 0 : indent;
        fprintf(out, "%*s%s:", pad, "", k->name);
        if (k->type == BW_KT_SECTION) {
            fprintf(out, "  # %s\n", k->doc);
            dump_table(k->sub, (const char *)base + k->off, indent + 2, out,
                       false);
        } else if (k->type == BW_KT_LIST) {
            dump_list(k, base, indent, out);
        } else {
            fputc(' ', out);
            dump_scalar(k, base, out);
            fprintf(out, "  # %s\n", k->doc);
        }
    }
}

void bw_config_dump(const bw_config_t *cfg, FILE *out)
{
    dump_table(bw__config_root, cfg, 0, out, false);
}
