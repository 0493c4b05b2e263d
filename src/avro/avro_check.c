/*
 * Structural validation of Avro binary against a schema, before Avro-C
 * reads it. Avro-C allocates whatever a length prefix claims before
 * checking it against the input, so a 3-byte prefix can ask for gigabytes;
 * this walk (Avro 1.11 specification, "Binary Encoding") checks every
 * length, union index, enum index and block count against the bytes that
 * remain, bounds the nesting depth, and bounds the items of all arrays and
 * maps together by the input's size. O(size of the input).
 */
#include <avro.h>

#include "avro_check.h"
#include "avro_io.h"

#define MAX_DEPTH 32

typedef struct {
    const uint8_t *p;
    size_t left;
    /* array and map items the datum may still hold: items can take 0
     * bytes (null, an empty record), so a per-block check against the
     * bytes left let blocks of them cost quadratic time; one budget of the
     * input's length + 1 for the whole datum keeps the walk linear */
    uint64_t items;
} cursor_t;

static int read_long(cursor_t *c, int64_t *out)
{
    const uint8_t *p = c->p;

    if (bw__avro_get_long(&p, c->p + c->left, out) != 0) {
        return -1;
    }
    c->left -= (size_t)(p - c->p);
    c->p = p;
    return 0;
}

static int skip(cursor_t *c, int64_t n)
{
    if (n < 0 || (uint64_t)n > c->left) {
        return -1;
    }
    c->p += n;
    c->left -= (size_t)n;
    return 0;
}

static int walk(avro_schema_t s, cursor_t *c, int depth);

/* Map and array blocks: count (negative: followed by a byte size). */
static int walk_blocks(avro_schema_t items, int is_map, cursor_t *c, int depth)
{
    for (;;) {
        int64_t count, size;
        if (read_long(c, &count) != 0) {
            return -1;
        }
        if (count == 0) {
            return 0;
        }
        if (count < 0) {
            if (count == INT64_MIN || read_long(c, &size) != 0 || size < 0) {
                return -1;
            }
            count = -count;
        }
        if ((uint64_t)count > c->left + 1 || (uint64_t)count > c->items) {
            return -1;
        }
        c->items -= (uint64_t)count;
        for (int64_t i = 0; i < count; i++) {
            int64_t klen;
            if (is_map && (read_long(c, &klen) != 0 || skip(c, klen) != 0)) {
                return -1;
            }
            if (walk(items, c, depth + 1) != 0) {
                return -1;
            }
        }
    }
}

static int walk(avro_schema_t s, cursor_t *c, int depth)
{
    int64_t v;

    if (depth > MAX_DEPTH) {
        return -1;
    }
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return 0;
    case AVRO_BOOLEAN:
        return skip(c, 1);
    case AVRO_INT32:
    case AVRO_INT64:
        return read_long(c, &v);
    case AVRO_FLOAT:
        return skip(c, 4);
    case AVRO_DOUBLE:
        return skip(c, 8);
    case AVRO_STRING:
    case AVRO_BYTES:
        return read_long(c, &v) != 0 ? -1 : skip(c, v);
    case AVRO_FIXED:
        return skip(c, avro_schema_fixed_size(s));
    case AVRO_ENUM:
        return read_long(c, &v) != 0 || v < 0 ||
                       v >= avro_schema_enum_number_of_symbols(s)
                   ? -1
                   : 0;
    case AVRO_UNION:
        if (read_long(c, &v) != 0 || v < 0 ||
            (uint64_t)v >= avro_schema_union_size(s)) {
            return -1;
        }
        return walk(avro_schema_union_branch(s, (int)v), c, depth + 1);
    case AVRO_RECORD:
        for (size_t i = 0; i < avro_schema_record_size(s); i++) {
            if (walk(avro_schema_record_field_get_by_index(s, (int)i), c,
                     depth + 1) != 0) {
                return -1;
            }
        }
        return 0;
    case AVRO_MAP:
        return walk_blocks(avro_schema_map_values(s), 1, c, depth);
    case AVRO_ARRAY:
        return walk_blocks(avro_schema_array_items(s), 0, c, depth);
    case AVRO_LINK:
        /* a named type used again by name (Avro-C links every reuse, not
         * only recursive ones); recursion is bounded by the depth */
        return walk(avro_schema_link_target(s), c, depth + 1);
    default:
        return -1;
    }
}

long bw__avro_check(avro_schema_t schema, const uint8_t *buf, size_t len)
{
    cursor_t c = {buf, len, (uint64_t)len + 1};

    if (walk(schema, &c, 0) != 0) {
        return -1;
    }
    return (long)(len - c.left);
}
