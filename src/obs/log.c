/*
 * The process's one log sink: levels (error, warn, info, debug) checked
 * before formatting (BW_LOG), plain or JSON lines, secrets blanked, and
 * warnings and errors rate-limited per call site.
 *
 * Rate limit: a token-bucket-like window per call site (keyed by the
 * format string's address, as redis' and the kernel's printk_ratelimit
 * key theirs): at most BURST lines per WINDOW_MS; the rest are counted
 * and the count is written with the site's next line after the window.
 * Sites live in a small open-addressed table; when it is full, sites
 * share the last slot (still limited, never unlimited).
 */
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "bayeswatch/obs.h"
#include "bayeswatch/timefmt.h"

#define BURST 5
#define WINDOW_MS 10000
#define SITES 64
#define SECRETS 32
#define LINE_MAX 2048

typedef struct {
    const char *fmt; /* the call site */
    int64_t window_start;
    uint32_t in_window;
    uint64_t suppressed;
} site_t;

static struct {
    pthread_mutex_t mu;
    atomic_int min_level;
    int format;
    FILE *sink;
    char instance[128];
    site_t sites[SITES];
    char *secrets[SECRETS];
    int n_secrets;
    bw_wbuf_t line; /* reused for every line */
    _Atomic uint64_t lines[4];
    _Atomic uint64_t suppressed;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .min_level = BW_LOG_INFO};

static const char *const level_name[] = {"error", "warn", "info", "debug"};

void bw_log_setup(bw_log_level_t min, bw_log_format_t format, FILE *sink)
{
    pthread_mutex_lock(&g.mu);
    atomic_store(&g.min_level, (int)min);
    g.format = (int)format;
    g.sink = sink;
    pthread_mutex_unlock(&g.mu);
}

void bw_log_instance(const char *instance)
{
    pthread_mutex_lock(&g.mu);
    snprintf(g.instance, sizeof(g.instance), "%s",
             instance != NULL ? instance : "");
    pthread_mutex_unlock(&g.mu);
}

bool bw_log_enabled(bw_log_level_t level)
{
    return (int)level <=
           atomic_load_explicit(&g.min_level, memory_order_relaxed);
}

bw_log_level_t bw_log_level_of_syslog(int severity)
{
    return severity <= 3   ? BW_LOG_ERROR
           : severity == 4 ? BW_LOG_WARN
           : severity <= 6 ? BW_LOG_INFO
                           : BW_LOG_DEBUG;
}

/* ---- secrets ---- */

void bw_log_secret(const char *value)
{
    if (value == NULL || strlen(value) < 4) {
        return;
    }
    pthread_mutex_lock(&g.mu);
    for (int i = 0; i < g.n_secrets; i++) {
        if (strcmp(g.secrets[i], value) == 0) {
            pthread_mutex_unlock(&g.mu);
            return;
        }
    }
    if (g.n_secrets < SECRETS) {
        g.secrets[g.n_secrets] = strdup(value);
        g.n_secrets += g.secrets[g.n_secrets] != NULL;
    }
    pthread_mutex_unlock(&g.mu);
}

/* A secret as written and, for `${file:PATH}`, as PATH holds it (what
 * the clients are given, and so what a library's message could quote). */
static void secret_value(const char *v)
{
    char out[4096], why[256];

    bw_log_secret(v);
    if (bw_config_secret(v, out, sizeof(out), why, sizeof(why)) &&
        out[0] != '\0' && strcmp(out, v) != 0) {
        bw_log_secret(out);
    }
    memset(out, 0, sizeof(out));
}

static void kv_secrets(const bw_kvmap_t *m)
{
    for (int i = 0; i < m->n; i++) {
        if (bw_config_key_is_secret(m->kv[i].key)) {
            secret_value(m->kv[i].value);
        }
    }
}

void bw_log_config_secrets(const bw_config_t *cfg)
{
    if (cfg->registry.password[0] != '\0') {
        secret_value(cfg->registry.password);
    }
    kv_secrets(&cfg->kafka.client);
    kv_secrets(&cfg->kafka.consumer);
    kv_secrets(&cfg->kafka.producer);
}

/* Blank every registered secret in @p s in place (g.mu held). */
static void blank_secrets(char *s)
{
    for (int i = 0; i < g.n_secrets; i++) {
        size_t n = strlen(g.secrets[i]);
        char *at;
        while ((at = strstr(s, g.secrets[i])) != NULL) {
            memcpy(at, "***", 3);
            memmove(at + 3, at + n, strlen(at + n) + 1);
        }
    }
}

/* ---- rate limit ---- */

static site_t *site_of(const char *fmt)
{
    size_t h = ((uintptr_t)fmt >> 3) % SITES;

    for (int i = 0; i < SITES; i++) {
        site_t *s = &g.sites[(h + (size_t)i) % SITES];
        if (s->fmt == fmt || s->fmt == NULL) {
            s->fmt = fmt;
            return s;
        }
    }
    return &g.sites[SITES - 1];
}

/* Whether the line may be written (g.mu held); *reported is the count
 * suppressed since this site's last line, to be written with it. */
static bool admit(const char *fmt, uint64_t *reported)
{
    site_t *s = site_of(fmt);
    int64_t now = bw_mono_ms();

    *reported = 0;
    if (now - s->window_start >= WINDOW_MS) {
        *reported = s->suppressed;
        s->suppressed = 0;
        s->window_start = now;
        s->in_window = 0;
    }
    if (s->in_window >= BURST) {
        s->suppressed++;
        atomic_fetch_add(&g.suppressed, 1);
        return false;
    }
    s->in_window++;
    return true;
}

/* ---- writing ---- */

static void iso_now(char *out, size_t n)
{
    int64_t ms = bw_wall_ms();
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&secs, &tm);
    snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ms % 1000));
}

/* One line into g.line (g.mu held), written with one fwrite. */
static void emit_line(FILE *f, bw_log_level_t level, const char *comp, int part,
                      const char *msg)
{
    bw_wbuf_t *w = &g.line;
    char ts[40];

    iso_now(ts, sizeof(ts));
    w->len = 0;
    w->err = BW_OK;
    if (g.format == BW_LOG_JSON) {
        bw_wbuf_printf(w,
                       "{\"time\":\"%s\",\"level\":\"%s\",\"component\":", ts,
                       level_name[level]);
        bw_wbuf_json_str(w, comp);
        bw_wbuf_printf(w, ",\"instance\":");
        bw_wbuf_json_str(w, g.instance);
        if (part >= 0) {
            bw_wbuf_printf(w, ",\"partition\":%d", part);
        }
        bw_wbuf_printf(w, ",\"msg\":");
        bw_wbuf_json_str(w, msg);
        bw_wbuf_printf(w, "}\n");
    } else {
        bw_wbuf_printf(w, "%s %-5s bayeswatch[%s] %s", ts, level_name[level],
                       g.instance, comp);
        if (part >= 0) {
            bw_wbuf_printf(w, " [%d]", part);
        }
        bw_wbuf_printf(w, ": %s\n", msg);
    }
    if (w->err == BW_OK) {
        fwrite(w->data, 1, w->len, f);
        fflush(f);
    }
}

void bw_log_write(bw_log_level_t level, const char *component, int partition,
                  const char *fmt, ...)
{
    char msg[LINE_MAX];
    uint64_t reported = 0;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    pthread_mutex_lock(&g.mu);
    if (level <= BW_LOG_WARN && !admit(fmt, &reported)) {
        pthread_mutex_unlock(&g.mu);
        return;
    }
    if (reported > 0) {
        size_t len = strlen(msg);
        snprintf(msg + len, sizeof(msg) - len,
                 " (and %llu more like it suppressed in the last %d s)",
                 (unsigned long long)reported, WINDOW_MS / 1000);
    }
    blank_secrets(msg);
    emit_line(g.sink != NULL ? g.sink : stderr, level, component, partition,
              msg);
    atomic_fetch_add(&g.lines[level], 1);
    pthread_mutex_unlock(&g.mu);
}

void bw_log_stats(bw_log_stats_t *st)
{
    for (int i = 0; i < 4; i++) {
        st->lines[i] = atomic_load(&g.lines[i]);
    }
    st->suppressed = atomic_load(&g.suppressed);
}
