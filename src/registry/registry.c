/*
 * Schema registry client: the Confluent Schema Registry REST API
 * (POST /subjects/{subject}/versions -> {"id": N};
 * GET /schemas/ids/{id} -> {"schema": "...", "schemaType": ...}), over
 * libcurl, JSON by jansson. Errors map to bw_err_t: unreachable, 5xx, 408,
 * 429 and 401 are BW_ERR_IO (transient: the registry does not answer us
 * now; records wait, they are not dead letters), 404 and an answer over
 * BODY_MAX are BW_ERR_NOTFOUND (remembered, asked again after
 * NOTFOUND_TTL_MS), any other refusal BW_ERR_CONFIG with the registry's
 * own message.
 *
 * Once a request finds the registry unreachable, fetches fail at once
 * (nothing waits on the network on the record path) and a prober thread
 * asks GET /config with exponential backoff (0.5 s doubling to
 * registry.backoff_max_ms) until the registry answers again.
 *
 * Two locks: net (the one HTTP handle and its response body) and mu (the
 * cache and the backoff), always taken in that order. No request holds
 * mu, so a lookup of a cached id never waits on the network, even while
 * another thread's request or the prober's hangs until its timeout.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/mem.h"
#include "bayeswatch/registry.h"
#include "bayeswatch/timefmt.h"

#define MISS_MAX 256               /* unknown schema ids remembered */
#define NOTFOUND_TTL_MS 60000      /* an unknown id is asked again after */
#define BACKOFF_MIN_MS 500.0       /* first pause while unreachable */
#define BODY_MAX (4 * 1024 * 1024) /* longest response accepted */
#define CONTENT "application/vnd.schemaregistry.v1+json"

typedef struct {
    int32_t id;
    char *schema;    /* NULL: not found (until checked + NOTFOUND_TTL_MS) */
    int64_t checked; /* bw_mono_ms of the answer */
} entry_t;

struct bw_registry_s {
    pthread_mutex_t net; /* curl and body: one request at a time */
    pthread_mutex_t mu;  /* the cache, backoff, stop (after net) */
    pthread_cond_t cv; /* the prober's: down, or stopping */
    pthread_t prober;
    bool prober_on, stop;
    CURL *curl;
    struct curl_slist *headers;
    char url[512];
    char userpwd[800];
    char ca[512];
    long timeout_ms;
    double backoff_max, backoff; /* ms; backoff 0 while reachable */
    int64_t down_until;          /* bw_mono_ms; no request before it */
    char down_why[384];          /* the answer that put it down */
    /* Found schemas are kept for the registry's life: their text is
     * handed out (bw_registry_schema) and must stay valid, and an id's
     * schema never changes. Unknown ids are remembered up to MISS_MAX,
     * the oldest such entry reused first; evicting found schemas among
     * them freed text a codec was still reading. */
    entry_t *cache;
    int n_cache, cap, n_miss, next_evict;
    bw_wbuf_t body; /* the last response */
    bool body_over; /* the last response was longer than BODY_MAX */
};

static void *probe_loop(void *arg);

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

bw_registry_t *bw_registry_new(const bw_registry_cfg_t *cfg, char *errstr,
                               size_t errstr_size)
{
    bw_registry_t *r;
    char pw[512], why[256];

    if (strncmp(cfg->url, "http://", 7) != 0 &&
        strncmp(cfg->url, "https://", 8) != 0) {
        bw_seterr(errstr, errstr_size, BW_ERR_CONFIG,
                  "registry.url: %s is not an http:// or https:// URL",
                  cfg->url);
        return NULL;
    }
    if (!bw_config_secret(cfg->password, pw, sizeof(pw), why, sizeof(why))) {
        bw_seterr(errstr, errstr_size, BW_ERR_CONFIG, "registry.password: %s",
                  why);
        return NULL;
    }
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK || (r = bw_calloc(1, sizeof(*r))) == NULL) {
        bw_seterr(errstr, errstr_size, BW_ERR_NOMEM, "registry: no client");
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->net, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&r->cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    snprintf(r->url, sizeof(r->url), "%s", cfg->url);
    while (strlen(r->url) > 0 && r->url[strlen(r->url) - 1] == '/') {
        r->url[strlen(r->url) - 1] = '\0';
    }
    if (cfg->username[0] != '\0') {
        snprintf(r->userpwd, sizeof(r->userpwd), "%s:%s", cfg->username, pw);
    }
    snprintf(r->ca, sizeof(r->ca), "%s", cfg->ca_location);
    r->timeout_ms = (long)cfg->timeout_ms;
    r->backoff_max = cfg->backoff_max_ms;
    r->curl = curl_easy_init();
    r->headers = curl_slist_append(NULL, "Content-Type: " CONTENT);
    r->headers = r->headers
                     ? curl_slist_append(r->headers, "Accept: " CONTENT
                                                     ", application/json")
                     : NULL;
    r->prober_on = r->curl != NULL && r->headers != NULL &&
                   pthread_create(&r->prober, NULL, probe_loop, r) == 0;
    if (!r->prober_on) {
        bw_registry_destroy(r);
        bw_seterr(errstr, errstr_size, BW_ERR_NOMEM, "registry: no client");
        return NULL;
    }
    return r;
}

void bw_registry_destroy(bw_registry_t *r)
{
    if (r == NULL) {
        return;
    }
    if (r->prober_on) {
        pthread_mutex_lock(&r->mu);
        r->stop = true;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->prober, NULL);
    }
    pthread_cond_destroy(&r->cv);
    for (int i = 0; i < r->n_cache; i++) {
        bw_free(r->cache[i].schema);
    }
    bw_free(r->cache);
    curl_slist_free_all(r->headers);
    if (r->curl != NULL) {
        curl_easy_cleanup(r->curl);
    }
    bw_wbuf_free(&r->body);
    explicit_bzero(r->userpwd, sizeof(r->userpwd));
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->net);
    bw_free(r);
}

static size_t on_body(char *p, size_t size, size_t n, void *opaque)
{
    bw_registry_t *r = opaque;

    if (r->body.len + size * n > BODY_MAX) {
        r->body_over = true;
        return 0; /* aborts the transfer */
    }
    bw_wbuf_bytes(&r->body, p, size * n);
    return r->body.err == BW_OK ? size * n : 0;
}

/* The registry's own message from an error body ({"error_code": N,
 * "message": "..."}), else the HTTP status. */
static void error_message(bw_registry_t *r, long status, char *out, size_t n)
{
    json_t *root = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
    const char *msg =
        root ? json_string_value(json_object_get(root, "message")) : NULL;

    snprintf(out, n, "HTTP %ld%s%s", status, msg ? ": " : "", msg ? msg : "");
    json_decref(root);
}

/* An answer longer than BODY_MAX: no schema, and no sign of an outage. */
#define STATUS_OVER (-1)

/* One request (r->net held, r->mu not): the HTTP status, 0 when
 * unreachable, STATUS_OVER for an answer too long to read; the body in
 * r->body. */
static long request(bw_registry_t *r, const char *path, const char *post,
                    char *why, size_t n)
{
    char url[1024], detail[CURL_ERROR_SIZE] = "";
    long status = 0;
    CURLcode rc;

    snprintf(url, sizeof(url), "%s%s", r->url, path);
    bw_wbuf_reset(&r->body);
    r->body_over = false;
    curl_easy_reset(r->curl);
    curl_easy_setopt(r->curl, CURLOPT_URL, url);
    curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(r->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(r->curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->curl, CURLOPT_TIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(r->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(r->curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(r->curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(r->curl, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(r->curl, CURLOPT_ERRORBUFFER, detail);
    if (r->userpwd[0] != '\0') {
        curl_easy_setopt(r->curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(r->curl, CURLOPT_USERPWD, r->userpwd);
    }
    if (r->ca[0] != '\0') {
        curl_easy_setopt(r->curl, CURLOPT_CAINFO, r->ca);
    }
    if (post != NULL) {
        curl_easy_setopt(r->curl, CURLOPT_POSTFIELDS, post);
    }
    rc = curl_easy_perform(r->curl);
    if (rc == CURLE_WRITE_ERROR && r->body_over) {
        snprintf(why, n, "%s: an answer over %d bytes", url, BODY_MAX);
        return STATUS_OVER;
    }
    if (rc != CURLE_OK) {
        snprintf(why, n, "%s: %s", url,
                 detail[0] ? detail : curl_easy_strerror(rc));
        return 0;
    }
    curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status >= 300) {
        char msg[384];
        error_message(r, status, msg, sizeof(msg));
        snprintf(why, n, "%s: %s", url, msg);
    }
    return status;
}

/* An answer that says nothing about the schema asked for, only that the
 * registry does not answer us now: unreachable, 5xx, a timeout (408), a
 * rate limit (429), or credentials it no longer takes (401: rotated while
 * the stage runs; at start-up bw_registry_check ends it). A record is
 * never a dead letter for the registry's state: its partition waits. A
 * 403 is a refusal of the one resource (an ACL on its subject): its
 * records are dead letters with the registry's message, as before. */
static bool transient(long status)
{
    return status == 0 || status >= 500 || status == 408 || status == 429 ||
           status == 401;
}

/* The outcome of a request as bw_err_t; keeps the backoff and, when it is
 * down, @p why (r->mu held). */
static bw_err_t outcome(bw_registry_t *r, long status, const char *why)
{
    if (transient(status)) {
        snprintf(r->down_why, sizeof(r->down_why), "%s", why);
        r->backoff = r->backoff > 0 ? r->backoff * 2 : BACKOFF_MIN_MS;
        if (r->backoff > r->backoff_max) {
            r->backoff = r->backoff_max;
        }
        r->down_until = bw_mono_ms() + (int64_t)r->backoff;
        pthread_cond_broadcast(&r->cv);
        return BW_ERR_IO;
    }
    r->backoff = 0;
    r->down_until = 0;
    if (status >= 200 && status < 300) {
        return BW_OK;
    }
    return status == 404 || status == STATUS_OVER ? BW_ERR_NOTFOUND
                                                  : BW_ERR_CONFIG;
}

bw_err_t bw_registry_check(bw_registry_t *r, char *errstr, size_t errstr_size)
{
    char why[512] = "";
    long status;
    bw_err_t err;

    pthread_mutex_lock(&r->net);
    status = request(r, "/config", NULL, why, sizeof(why));
    pthread_mutex_unlock(&r->net);
    err = status == 0 ? BW_ERR_IO : status == 401 ? BW_ERR_CONFIG : BW_OK;
    if (err != BW_OK) {
        bw_seterr(errstr, errstr_size, err, "registry: %s", why);
    }
    return err;
}

bw_err_t bw_registry_register(bw_registry_t *r, const char *subject,
                              const char *schema, int32_t *id, char *errstr,
                              size_t errstr_size)
{
    char path[512], why[512] = "";
    json_t *req = json_pack("{s:s}", "schema", schema), *root = NULL;
    char *post = req ? json_dumps(req, JSON_COMPACT) : NULL;
    bw_err_t err = BW_ERR_NOMEM;
    json_int_t got;

    snprintf(path, sizeof(path), "/subjects/%s/versions", subject);
    pthread_mutex_lock(&r->net);
    if (post != NULL) {
        long status = request(r, path, post, why, sizeof(why));
        pthread_mutex_lock(&r->mu);
        err = outcome(r, status, why);
        pthread_mutex_unlock(&r->mu);
    }
    if (err == BW_OK) {
        root = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
        got = json_integer_value(json_object_get(root, "id"));
        if (!json_is_integer(json_object_get(root, "id")) || got < 0 ||
            got > INT32_MAX) {
            err = BW_ERR_PARSE;
            snprintf(why, sizeof(why), "%s: no schema id in the answer", path);
        } else {
            *id = (int32_t)got;
        }
    }
    pthread_mutex_unlock(&r->net);
    if (err != BW_OK) {
        bw_seterr(errstr, errstr_size, err, "registry: registering %s: %s",
                  subject, why[0] ? why : bw_strerror(err));
    }
    json_decref(root);
    json_decref(req);
    free(post);
    return err;
}

/* The cache entry of @p id, or NULL (r->mu held). */
static entry_t *cached(bw_registry_t *r, int32_t id)
{
    for (int i = 0; i < r->n_cache; i++) {
        if (r->cache[i].id == id) {
            return &r->cache[i];
        }
    }
    return NULL;
}

/* The oldest-reused entry of an unknown id, to hold another (r->mu held;
 * n_miss > 0). */
static entry_t *reuse_miss(bw_registry_t *r)
{
    for (int k = 0; k < r->n_cache; k++) {
        int i = (r->next_evict + k) % r->n_cache;
        if (r->cache[i].schema == NULL) {
            r->next_evict = (i + 1) % r->n_cache;
            return &r->cache[i];
        }
    }
    return NULL; /* cannot happen while n_miss > 0 */
}

/* A new entry (r->mu held); NULL when out of memory. */
static entry_t *new_entry(bw_registry_t *r, bool miss)
{
    entry_t *e;

    if (miss && r->n_miss >= MISS_MAX) {
        return reuse_miss(r);
    }
    if (r->n_cache == r->cap) {
        int cap = r->cap > 0 ? 2 * r->cap : 16;
        entry_t *c = bw_realloc(r->cache, (size_t)cap * sizeof(*c));
        if (c == NULL) {
            return NULL;
        }
        r->cache = c, r->cap = cap;
    }
    e = &r->cache[r->n_cache++];
    e->schema = NULL;
    r->n_miss++; /* until it holds a schema */
    return e;
}

/* Remember the answer for @p id: the schema text (copied) or NULL.
 * Returns the entry, NULL when out of memory. */
static entry_t *remember(bw_registry_t *r, int32_t id, const char *schema)
{
    entry_t *e = cached(r, id);

    if (e == NULL && (e = new_entry(r, schema == NULL)) == NULL) {
        return NULL;
    }
    e->id = id;
    e->checked = bw_mono_ms();
    if (schema != NULL && e->schema == NULL &&
        (e->schema = bw_strdup(schema)) != NULL) {
        r->n_miss--;
    }
    return e;
}

/* GET /schemas/ids/ID into the cache (r->net held, r->mu not). */
static bw_err_t fetch(bw_registry_t *r, int32_t id, char *why, size_t n)
{
    char path[64];
    json_t *root = NULL;
    const char *text = NULL, *type = NULL;
    long status;
    bw_err_t err;

    snprintf(path, sizeof(path), "/schemas/ids/%d", id);
    status = request(r, path, NULL, why, n);
    if (status >= 200 && status < 300) {
        root = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
        text = json_string_value(json_object_get(root, "schema"));
        type = json_string_value(json_object_get(root, "schemaType"));
    }
    pthread_mutex_lock(&r->mu);
    err = outcome(r, status, why);
    if (err == BW_OK &&
        (text == NULL || (type != NULL && strcmp(type, "AVRO") != 0))) {
        snprintf(why, n, "schema id %d: %s", id,
                 text == NULL ? "no schema in the answer" : "not Avro");
        err = BW_ERR_NOTFOUND;
    }
    if (err == BW_ERR_NOTFOUND) {
        remember(r, id, NULL);
    } else if (err == BW_OK) {
        entry_t *e = remember(r, id, text);
        err = e != NULL && e->schema != NULL ? BW_OK : BW_ERR_NOMEM;
    }
    pthread_mutex_unlock(&r->mu);
    json_decref(root);
    return err;
}

#define ASK 1 /* known(): a request must ask (every bw_err_t is <= 0) */

/* What the cache (or the backoff) says of @p id without a request, as a
 * bw_err_t, or ASK (r->mu held). */
static int known(bw_registry_t *r, int32_t id, int64_t now, char *why,
                 size_t n)
{
    entry_t *e = cached(r, id);

    if (e != NULL &&
        (e->schema != NULL || now - e->checked < NOTFOUND_TTL_MS)) {
        snprintf(why, n, "schema id %d not found", id);
        return e->schema != NULL ? BW_OK : BW_ERR_NOTFOUND;
    }
    if (r->backoff > 0) { /* down: the prober finds out when not */
        snprintf(why, n, "%s; next try in %.1f s",
                 r->down_why[0] ? r->down_why : r->url,
                 (double)(r->down_until - now) / 1000.0);
        return BW_ERR_IO;
    }
    return ASK;
}

bw_err_t bw_registry_schema(bw_registry_t *r, int32_t id, const char **schema,
                            char *errstr, size_t errstr_size)
{
    char why[512] = "";
    int k;
    bw_err_t err;

    pthread_mutex_lock(&r->mu);
    k = known(r, id, bw_mono_ms(), why, sizeof(why));
    pthread_mutex_unlock(&r->mu);
    if (k == ASK) {
        pthread_mutex_lock(&r->net);
        pthread_mutex_lock(&r->mu); /* another thread may have asked */
        k = known(r, id, bw_mono_ms(), why, sizeof(why));
        pthread_mutex_unlock(&r->mu);
        if (k == ASK) {
            k = (int)fetch(r, id, why, sizeof(why));
        }
        pthread_mutex_unlock(&r->net);
    }
    err = (bw_err_t)k;
    if (err == BW_OK) { /* found text stays put for the registry's life */
        pthread_mutex_lock(&r->mu);
        *schema = cached(r, id)->schema;
        pthread_mutex_unlock(&r->mu);
    }
    if (err != BW_OK) {
        bw_seterr(errstr, errstr_size, err, "registry: %s",
                  why[0] ? why : bw_strerror(err));
    }
    return err;
}

/* Wait on r->cv until @p until (bw_mono_ms) or a signal (r->mu held). */
static void wait_until(bw_registry_t *r, int64_t until)
{
    struct timespec ts = {.tv_sec = (time_t)(until / 1000),
                          .tv_nsec = (long)(until % 1000) * 1000000L};

    pthread_cond_timedwait(&r->cv, &r->mu, &ts);
}

/* While the registry is down: GET /config after each backoff until it
 * answers. Any HTTP status below 500 but 408 and 429 means it is back,
 * 401 and 403 too: a principal may lack the grant for /config itself,
 * and a credentials problem is found again by the next real request. */
static void *probe_loop(void *arg)
{
    bw_registry_t *r = arg;
    char why[512];

    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        if (r->backoff <= 0) {
            pthread_cond_wait(&r->cv, &r->mu);
        } else if (bw_mono_ms() < r->down_until) {
            wait_until(r, r->down_until);
        } else { /* the request without mu: lookups go on meanwhile */
            long status;
            pthread_mutex_unlock(&r->mu);
            pthread_mutex_lock(&r->net);
            status = request(r, "/config", NULL, why, sizeof(why));
            pthread_mutex_unlock(&r->net);
            pthread_mutex_lock(&r->mu);
            outcome(r, status == 401 || status == 403 ? 200 : status, why);
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}
