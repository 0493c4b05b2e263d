/*
 * The few figures /metrics takes from librdkafka's statistics JSON
 * (STATISTICS.md, emitted every statistics.interval.ms): per partition the
 * end offsets (hi_offset, ls_offset: the last stable offset) and
 * consumer_lag (-1 unknown: librdkafka counts lag from the consumer's own
 * committed offsets, which a transactional stage never commits itself),
 * each broker's average round-trip time (brokers.*.rtt.avg, microseconds;
 * bootstrap entries, nodeid -1, and logical ones such as the group
 * coordinator's, skipped) and the transactional producer's state
 * (eos.txn_state).
 *
 * A recursive-descent walk over the text with bounds checks on every
 * read (no tokens, no allocation): only the paths above are descended,
 * every other value is skipped. Malformed input stops the walk and is
 * reported; what was read until then is kept.
 */
#include <stdlib.h>
#include <string.h>

#include "bayeswatch/obs.h"

typedef struct {
    const char *p, *end;
    bool bad;
    int depth;
} cur_t;

#define MAX_DEPTH 32

static void ws(cur_t *c)
{
    while (c->p < c->end &&
           (*c->p == ' ' || *c->p == '\n' || *c->p == '\t' || *c->p == '\r')) {
        c->p++;
    }
}

static bool eat(cur_t *c, char ch)
{
    ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* A string into @p out (truncated to @p n; escapes kept as the escaped
 * character, \u as '?': names here are ASCII). */
static bool str(cur_t *c, char *out, size_t n)
{
    size_t o = 0;

    if (!eat(c, '"')) {
        c->bad = true;
        return false;
    }
    while (c->p < c->end && *c->p != '"') {
        char ch = *c->p++;
        if (ch == '\\' && c->p < c->end) {
            ch = *c->p++;
            if (ch == 'u') {
                c->p = c->end - c->p >= 4 ? c->p + 4 : c->end;
                ch = '?';
            }
        }
        if (o + 1 < n) {
            out[o++] = ch;
        }
    }
    if (n > 0) {
        out[o] = '\0';
    }
    if (c->p >= c->end) {
        c->bad = true;
        return false;
    }
    c->p++;
    return true;
}

static double number(cur_t *c)
{
    char *e;
    double v;

    ws(c);
    v = strtod(c->p, &e); /* the text is NUL-terminated by the caller */
    if (e == c->p || e > c->end) {
        c->bad = true;
        return 0.0;
    }
    c->p = e;
    return v;
}

static void skip(cur_t *c);

/* Walk an object: @p fn sees each key with the cursor at its value and
 * must consume it. */
static void object(cur_t *c, void (*fn)(cur_t *, const char *, void *),
                   void *arg)
{
    char key[256];

    if (!eat(c, '{') || ++c->depth > MAX_DEPTH) {
        c->bad = true;
        return;
    }
    if (eat(c, '}')) {
        c->depth--;
        return;
    }
    do {
        if (!str(c, key, sizeof(key)) || !eat(c, ':')) {
            c->bad = true;
            return;
        }
        fn(c, key, arg);
    } while (!c->bad && eat(c, ','));
    if (!c->bad && !eat(c, '}')) {
        c->bad = true;
    }
    c->depth--;
}

static void skip_member(cur_t *c, const char *key, void *arg)
{
    (void)key, (void)arg;
    skip(c);
}

static void skip(cur_t *c)
{
    char tmp[8];

    ws(c);
    if (c->p >= c->end) {
        c->bad = true;
    } else if (*c->p == '{') {
        object(c, skip_member, NULL);
    } else if (*c->p == '[') {
        c->p++;
        if (++c->depth > MAX_DEPTH) {
            c->bad = true;
            return;
        }
        if (!eat(c, ']')) {
            do {
                skip(c);
            } while (!c->bad && eat(c, ','));
            c->bad = c->bad || !eat(c, ']');
        }
        c->depth--;
    } else if (*c->p == '"') {
        str(c, tmp, sizeof(tmp));
    } else if (strncmp(c->p, "true", 4) == 0 || strncmp(c->p, "null", 4) == 0) {
        c->p += 4;
    } else if (strncmp(c->p, "false", 5) == 0) {
        c->p += 5;
    } else {
        number(c);
    }
}

/* ---- the paths ---- */

typedef struct {
    bw_kstats_t *st;
    const char *topic;
    int32_t partition;
    int64_t lag, hi, ls;
    bool undesired; /* "desired": false: subscribed, not assigned here */
    double rtt;
    int64_t nodeid;
    bool logical;
} ctx_t;

static void partition_member(cur_t *c, const char *key, void *arg)
{
    ctx_t *x = arg;

    if (strcmp(key, "partition") == 0) {
        x->partition = (int32_t)number(c);
    } else if (strcmp(key, "consumer_lag") == 0) {
        x->lag = (int64_t)number(c);
    } else if (strcmp(key, "hi_offset") == 0) {
        x->hi = (int64_t)number(c);
    } else if (strcmp(key, "ls_offset") == 0) {
        x->ls = (int64_t)number(c);
    } else if (strcmp(key, "desired") == 0) {
        ws(c);
        x->undesired = c->p < c->end && *c->p == 'f';
        skip(c);
    } else {
        skip(c);
    }
}

static void partitions_member(cur_t *c, const char *key, void *arg)
{
    ctx_t *x = arg;
    bw_kstats_t *st = x->st;

    (void)key;
    x->partition = -1;
    x->lag = x->hi = x->ls = -1;
    x->undesired = false;
    object(c, partition_member, x);
    /* a consumer's document lists every partition of its topics: only
     * those it holds take one of the slots */
    if (!c->bad && x->partition >= 0 && !x->undesired &&
        st->n_parts < BW_KSTATS_PARTS) {
        snprintf(st->parts[st->n_parts].topic, sizeof(st->parts[0].topic), "%s",
                 x->topic);
        st->parts[st->n_parts].partition = x->partition;
        st->parts[st->n_parts].lag = x->lag;
        st->parts[st->n_parts].hi_offset = x->hi;
        st->parts[st->n_parts].ls_offset = x->ls;
        st->n_parts++;
    }
}

static void topic_member(cur_t *c, const char *key, void *arg)
{
    if (strcmp(key, "partitions") == 0) {
        object(c, partitions_member, arg);
    } else {
        skip(c);
    }
}

static void topics_member(cur_t *c, const char *key, void *arg)
{
    ctx_t *x = arg;

    x->topic = key;
    object(c, topic_member, x);
}

static void rtt_member(cur_t *c, const char *key, void *arg)
{
    if (strcmp(key, "avg") == 0) {
        ((ctx_t *)arg)->rtt = number(c) / 1e6;
    } else {
        skip(c);
    }
}

static void broker_member(cur_t *c, const char *key, void *arg)
{
    ctx_t *x = arg;

    char source[16];

    if (strcmp(key, "nodeid") == 0) {
        x->nodeid = (int64_t)number(c);
    } else if (strcmp(key, "source") == 0) {
        str(c, source, sizeof(source));
        x->logical =
            strcmp(source, "logical") == 0 || strcmp(source, "internal") == 0;
    } else if (strcmp(key, "rtt") == 0) {
        object(c, rtt_member, x);
    } else {
        skip(c);
    }
}

static void brokers_member(cur_t *c, const char *key, void *arg)
{
    ctx_t *x = arg;
    bw_kstats_t *st = x->st;

    x->nodeid = -1;
    x->rtt = -1;
    x->logical = false;
    object(c, broker_member, x);
    if (!c->bad && x->nodeid >= 0 && x->rtt >= 0 && !x->logical &&
        st->n_brokers < BW_KSTATS_BROKERS) {
        snprintf(st->brokers[st->n_brokers].name, sizeof(st->brokers[0].name),
                 "%s", key);
        st->brokers[st->n_brokers].rtt_s = x->rtt;
        st->n_brokers++;
    }
}

static void eos_member(cur_t *c, const char *key, void *arg)
{
    ctx_t *x = arg;

    if (strcmp(key, "txn_state") == 0) {
        str(c, x->st->txn_state, sizeof(x->st->txn_state));
    } else {
        skip(c);
    }
}

static void root_member(cur_t *c, const char *key, void *arg)
{
    if (strcmp(key, "topics") == 0) {
        object(c, topics_member, arg);
    } else if (strcmp(key, "brokers") == 0) {
        object(c, brokers_member, arg);
    } else if (strcmp(key, "eos") == 0) {
        object(c, eos_member, arg);
    } else {
        skip(c);
    }
}

bw_err_t bw_kstats_parse(const char *json, size_t len, bw_kstats_t *st)
{
    cur_t c = {.p = json, .end = json + len};
    ctx_t x = {.st = st};

    st->n_parts = st->n_brokers = 0;
    st->txn_state[0] = '\0';
    if (json[len] != '\0') {
        return BW_ERR_INVAL; /* strtod needs the terminator */
    }
    object(&c, root_member, &x);
    return c.bad ? BW_ERR_PARSE : BW_OK;
}

int64_t bw_kstats_lag(const bw_kstats_t *st, int i, int64_t position)
{
    int64_t end = st->parts[i].ls_offset >= 0 ? st->parts[i].ls_offset
                                              : st->parts[i].hi_offset;

    if (position < 0) {
        return st->parts[i].lag >= 0 ? st->parts[i].lag : -1;
    }
    if (end < 0) {
        return -1;
    }
    return end > position ? end - position : 0;
}
