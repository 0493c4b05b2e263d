/*
 * Writer-schema resolution (Avro 1.11 specification, "Schema Resolution")
 * for the metric-event reader schema. Avro-C 1.11's resolved writer does
 * the type rules (field order, writer-only fields skipped, int -> long ->
 * float -> double promotion, unions on either side) but matches fields by
 * exact name and has no reader defaults; both are done here on the JSON
 * before Avro-C sees it (jansson, Avro-C's own JSON library):
 *  - aliases: a reader field R and a writer field W of another name match
 *    when R lists W's name or W lists R's name among its aliases (a rename
 *    declared on either side; Java's Schema.applyAliases uses the reader's
 *    only, but here the reader is the fixed, shipped schema and producers
 *    evolve, so a producer's rename that keeps the old name as an alias is
 *    honoured too); W is renamed to R's name, which does not change the
 *    binary layout;
 *  - defaults: reader fields the writer lacks are dropped from the reader
 *    schema resolved against (the decoded record then lacks them, and the
 *    codec takes their defaults); a missing field without a default makes
 *    the writer incompatible.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "resolve.h"

static bool listed(json_t *field, const char *name)
{
    json_t *aliases = json_object_get(field, "aliases");
    size_t i;
    json_t *a;

    json_array_foreach(aliases, i, a)
    {
        if (json_is_string(a) && strcmp(json_string_value(a), name) == 0) {
            return true;
        }
    }
    return false;
}

static const char *name_of(json_t *field)
{
    const char *s = json_string_value(json_object_get(field, "name"));
    return s != NULL ? s : "";
}

/* The writer field matching reader field @p rf, or NULL. */
static json_t *match(json_t *wfields, json_t *rf)
{
    const char *rn = name_of(rf);
    size_t i;
    json_t *wf, *alias = NULL;

    json_array_foreach(wfields, i, wf)
    {
        if (strcmp(name_of(wf), rn) == 0) {
            return wf;
        }
        if (alias == NULL && (listed(rf, name_of(wf)) || listed(wf, rn))) {
            alias = wf;
        }
    }
    return alias;
}

/* Rename writer fields to the reader's names (aliases) and drop from
 * @p reader the fields the writer lacks; false with @p why when one
 * without a default is missing. */
static bool reconcile(json_t *writer, json_t *reader, char *why, size_t n)
{
    json_t *wfields = json_object_get(writer, "fields");
    json_t *rfields = json_object_get(reader, "fields");
    size_t i = 0;

    if (!json_is_array(wfields) || !json_is_array(rfields)) {
        snprintf(why, n, "the writer schema is not a record");
        return false;
    }
    while (i < json_array_size(rfields)) {
        json_t *rf = json_array_get(rfields, i);
        json_t *wf = match(wfields, rf);
        if (wf != NULL) {
            json_object_set(wf, "name", json_object_get(rf, "name"));
            i++;
        } else if (json_object_get(rf, "default") != NULL) {
            json_array_remove(rfields, i);
        } else {
            snprintf(why, n,
                     "the writer schema lacks field %s, which has no default",
                     name_of(rf));
            return false;
        }
    }
    return true;
}

static avro_schema_t parse(json_t *j, char *why, size_t n)
{
    char *text = json_dumps(j, JSON_COMPACT);
    avro_schema_t s = NULL;

    if (text == NULL || avro_schema_from_json_length(text, strlen(text), &s)) {
        snprintf(why, n, "%s", text ? avro_strerror() : "out of memory");
        s = NULL;
    }
    free(text);
    return s;
}

/* Everything after the JSON: schemas, resolver, values. */
static void build(bw__writer_t *w, json_t *wj, json_t *rj)
{
    w->status = BW_ERR_PARSE;
    if ((w->writer = parse(wj, w->why, sizeof(w->why))) == NULL ||
        (w->reduced = parse(rj, w->why, sizeof(w->why))) == NULL) {
        return;
    }
    if ((w->res = avro_resolved_writer_new(w->writer, w->reduced)) == NULL) {
        snprintf(w->why, sizeof(w->why), "%s", avro_strerror());
        return;
    }
    if ((w->cls = avro_generic_class_from_schema(w->reduced)) == NULL ||
        avro_generic_value_new(w->cls, &w->out) != 0 ||
        avro_resolved_writer_new_value(w->res, &w->rw) != 0) {
        snprintf(w->why, sizeof(w->why), "%s", avro_strerror());
        return;
    }
    avro_resolved_writer_set_dest(&w->rw, &w->out);
    w->status = BW_OK;
}

bw_err_t bw__writer_init(bw__writer_t *w, int32_t id, const char *writer_json,
                         const char *reader_json)
{
    json_t *wj = json_loads(writer_json, 0, NULL);
    json_t *rj = json_loads(reader_json, 0, NULL);
    const char *type = json_string_value(json_object_get(wj, "type"));

    memset(w, 0, sizeof(*w));
    w->id = id;
    w->status = BW_ERR_PARSE;
    if (rj == NULL) {
        json_decref(wj);
        return BW_ERR_NOMEM; /* our own schema always parses */
    }
    if (wj == NULL || !json_is_object(wj)) {
        snprintf(w->why, sizeof(w->why), "the writer schema is not JSON");
    } else if (type == NULL || strcmp(type, "record") != 0) {
        snprintf(w->why, sizeof(w->why), "the writer schema is not a record");
    } else if (reconcile(wj, rj, w->why, sizeof(w->why))) {
        build(w, wj, rj);
    }
    json_decref(wj);
    json_decref(rj);
    return BW_OK;
}

void bw__writer_free(bw__writer_t *w)
{
    if (w->rw.iface != NULL) {
        avro_value_decref(&w->rw);
    }
    if (w->out.iface != NULL) {
        avro_value_decref(&w->out);
    }
    if (w->res != NULL) {
        avro_value_iface_decref(w->res);
    }
    if (w->cls != NULL) {
        avro_value_iface_decref(w->cls);
    }
    if (w->writer != NULL) {
        avro_schema_decref(w->writer);
    }
    if (w->reduced != NULL) {
        avro_schema_decref(w->reduced);
    }
    memset(w, 0, sizeof(*w));
}
