/*
 * The one HTTP listener (obs.listen), on libmicrohttpd's own thread:
 *   GET /metrics   Prometheus text 0.0.4: the stage's published page, the
 *                  web view store's per-region families, the log's counts
 *   GET /healthz   200 while the poll loop turns (a heartbeat within its
 *                  window: half of max.poll.interval.ms), else 503
 *   GET /readyz    200 once the producer is initialised, the group has
 *                  given this member its assignment (possibly empty) and
 *                  every assigned partition is restored, else 503 with the
 *                  reason
 *   GET /          the web view (embedded; no external fetch), its
 *                  /app.js and /app.css, and its JSON under /api/
 * Read-only: any other method is 405. The socket is bound here (so a
 * taken port is a clear error, and port 0 picks a free one) and handed
 * to the daemon.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bayeswatch/mem.h"
#include "bayeswatch/timefmt.h"
#include "obs_int.h"

extern const char bw_web_index[], bw_web_app_js[], bw_web_app_css[];
extern const size_t bw_web_index_len, bw_web_app_js_len, bw_web_app_css_len;

#define PROM_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* ---- the stage's side ---- */

void bw_obs_publish_metrics(bw_obs_t *obs, const bw_wbuf_t *text)
{
    if (obs == NULL) {
        return;
    }
    pthread_mutex_lock(&obs->mu);
    bw_wbuf_reset(&obs->page);
    obs->page.err = BW_OK;
    bw_wbuf_bytes(&obs->page, text->data, text->len);
    pthread_mutex_unlock(&obs->mu);
}

void bw_obs_heartbeat(bw_obs_t *obs, int64_t now_ms, int64_t window_ms)
{
    if (obs != NULL) {
        atomic_store(&obs->beat_window_ms, window_ms);
        atomic_store(&obs->beat_ms, now_ms);
    }
}

void bw_obs_set_ready(bw_obs_t *obs, bool ready, const char *why)
{
    if (obs == NULL) {
        return;
    }
    pthread_mutex_lock(&obs->mu);
    snprintf(obs->not_ready, sizeof(obs->not_ready), "%s",
             why != NULL ? why : "");
    atomic_store(&obs->ready, ready);
    pthread_mutex_unlock(&obs->mu);
}

const char *bw_obs_url(const bw_obs_t *obs)
{
    return obs != NULL && obs->daemon != NULL ? obs->url : NULL;
}

/* ---- pages ---- */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code,
                             const char *ctype, const void *data, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, (void *)data, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;

    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static void log_families(bw_wbuf_t *w)
{
    static const char *const lv[] = {"error", "warn", "info", "debug"};
    bw_log_stats_t st;

    bw_log_stats(&st);
    bw_prom_family(w, "bayeswatch_log_lines_total", "counter",
                   "log lines written, by level");
    for (int i = 0; i < 4; i++) {
        bw_prom_sample1(w, "bayeswatch_log_lines_total", "level", lv[i],
                        (double)st.lines[i]);
    }
    bw_prom_family(w, "bayeswatch_log_suppressed_total", "counter",
                   "repeated warnings and errors not written (rate limit)");
    bw_prom_sample(w, "bayeswatch_log_suppressed_total", "",
                   (double)st.suppressed);
}

static enum MHD_Result metrics(bw_obs_t *obs, struct MHD_Connection *c)
{
    bw_wbuf_t w = {0};
    enum MHD_Result ret;

    pthread_mutex_lock(&obs->mu);
    bw_wbuf_bytes(&w, obs->page.data, obs->page.len);
    pthread_mutex_unlock(&obs->mu);
    bw_obs_view_metrics(obs, bw_wall_ms(), &w);
    log_families(&w);
    ret = w.err == BW_OK ? reply(c, MHD_HTTP_OK, PROM_TYPE, w.data, w.len)
                         : reply(c, 500, "text/plain", "out of memory\n", 14);
    bw_wbuf_free(&w);
    return ret;
}

static enum MHD_Result healthz(bw_obs_t *obs, struct MHD_Connection *c)
{
    char body[160];
    int64_t beat = atomic_load(&obs->beat_ms),
            window = atomic_load(&obs->beat_window_ms),
            idle = bw_mono_ms() - beat;
    int n;

    if (beat == 0 || idle <= window) {
        n = snprintf(body, sizeof(body), "ok: %s\n",
                     beat == 0 ? "starting" : "the poll loop is turning");
        return reply(c, MHD_HTTP_OK, "text/plain", body, (size_t)n);
    }
    n = snprintf(body, sizeof(body),
                 "unhealthy: the poll loop has not turned for %.1f s "
                 "(limit %.1f s)\n",
                 (double)idle / 1000.0, (double)window / 1000.0);
    return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", body,
                 (size_t)n);
}

static enum MHD_Result readyz(bw_obs_t *obs, struct MHD_Connection *c)
{
    char body[300];
    bool ready;
    int n;

    pthread_mutex_lock(&obs->mu);
    ready = atomic_load(&obs->ready); /* read once: body and status agree */
    n = ready ? snprintf(body, sizeof(body), "ready\n")
              : snprintf(body, sizeof(body), "not ready: %s\n",
                         obs->not_ready);
    pthread_mutex_unlock(&obs->mu);
    return reply(c, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                 "text/plain", body, (size_t)n);
}

static enum MHD_Result api(bw_obs_t *obs, struct MHD_Connection *c,
                           const char *what)
{
    const char *key =
        MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "key");
    bw_wbuf_t w = {0};
    enum MHD_Result ret;

    if (!bw_obs_view_json(obs, what, key, bw_wall_ms(), &w)) {
        ret = reply(c, MHD_HTTP_NOT_FOUND, "application/json",
                    "{\"error\":\"not found\"}", 21);
    } else if (w.err != BW_OK) {
        ret = reply(c, 500, "text/plain", "out of memory\n", 14);
    } else {
        ret = reply(c, MHD_HTTP_OK, "application/json", w.data, w.len);
    }
    bw_wbuf_free(&w);
    return ret;
}

static enum MHD_Result route(void *cls, struct MHD_Connection *c,
                             const char *url, const char *method,
                             const char *version, const char *upload,
                             size_t *upload_size, void **state)
{
    bw_obs_t *obs = cls;

    (void)version, (void)upload, (void)upload_size, (void)state;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
                     "read-only: GET or HEAD\n", 23);
    }
    if (strcmp(url, "/metrics") == 0) {
        return metrics(obs, c);
    }
    if (strcmp(url, "/healthz") == 0) {
        return healthz(obs, c);
    }
    if (strcmp(url, "/readyz") == 0) {
        return readyz(obs, c);
    }
    if (strncmp(url, "/api/", 5) == 0) {
        return api(obs, c, url + 5);
    }
    if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0) {
        return reply(c, MHD_HTTP_OK, "text/html; charset=utf-8", bw_web_index,
                     bw_web_index_len);
    }
    if (strcmp(url, "/app.js") == 0) {
        return reply(c, MHD_HTTP_OK, "text/javascript; charset=utf-8",
                     bw_web_app_js, bw_web_app_js_len);
    }
    if (strcmp(url, "/app.css") == 0) {
        return reply(c, MHD_HTTP_OK, "text/css; charset=utf-8", bw_web_app_css,
                     bw_web_app_css_len);
    }
    return reply(c, MHD_HTTP_NOT_FOUND, "text/plain", "not found\n", 10);
}

/* ---- the socket ---- */

static int bind_to(const struct addrinfo *ai, bool any_port)
{
    int one = 1, fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                             ai->ai_protocol);
    struct sockaddr_storage sa;

    if (fd < 0) {
        return -1;
    }
    memcpy(&sa, ai->ai_addr, ai->ai_addrlen);
    if (any_port) {
        ((struct sockaddr_in *)&sa)->sin_port = 0; /* same offset in v6 */
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, ai->ai_addrlen) != 0 ||
        listen(fd, 64) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static void set_url(bw_obs_t *obs, int fd, const char *host)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    int port = 0;

    if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0) {
        port = ntohs(sa.ss_family == AF_INET6
                         ? ((struct sockaddr_in6 *)&sa)->sin6_port
                         : ((struct sockaddr_in *)&sa)->sin_port);
    }
    snprintf(obs->url, sizeof(obs->url),
             strchr(host, ':') != NULL ? "http://[%s]:%d/" : "http://%s:%d/",
             host, port);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];

    (void)cls;
    vsnprintf(line, sizeof(line), fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    BW_LOG(BW_LOG_WARN, "http", -1, "%s", line);
}

static bw_err_t start(bw_obs_t *obs, bool fallback, char *errstr,
                      size_t errstr_size)
{
    const char *listen_at = obs->cfg->obs.listen;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *ai = NULL;
    char host[BW_LISTEN_HOST_MAX], port[16];
    int fd, rc;

    if (!bw_config_split_listen(listen_at, host, sizeof(host), port,
                                sizeof(port))) {
        snprintf(errstr, errstr_size,
                 "obs.listen: expected HOST:PORT, got \"%s\"", listen_at);
        return BW_ERR_CONFIG;
    }
    if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0) {
        snprintf(errstr, errstr_size, "obs.listen: %s: %s", listen_at,
                 gai_strerror(rc));
        return BW_ERR_CONFIG;
    }
    fd = bind_to(ai, false);
    if (fd < 0 && errno == EADDRINUSE && fallback) {
        BW_LOG(BW_LOG_WARN, "http", -1, "%s is taken; using a free port",
               listen_at);
        fd = bind_to(ai, true);
    }
    if (fd < 0) {
        snprintf(errstr, errstr_size, "obs.listen: cannot listen on %s: %s",
                 listen_at, strerror(errno));
        freeaddrinfo(ai);
        return BW_ERR_IO;
    }
    set_url(obs, fd, host);
    obs->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
            (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0),
        0, NULL, NULL, route, obs, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
        MHD_OPTION_CONNECTION_LIMIT, 64u,
        /* one client's idle or slow connections cannot take all 64 and
         * starve the health probes */
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, 16u, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (obs->daemon == NULL) {
        close(fd);
        snprintf(errstr, errstr_size, "obs.listen: cannot start on %s",
                 listen_at);
        return BW_ERR_IO;
    }
    return BW_OK;
}

bw_obs_t *bw_obs_new(const bw_config_t *cfg, bool fallback, char *errstr,
                     size_t errstr_size)
{
    bw_obs_t *obs = bw_calloc(1, sizeof(*obs));

    if (obs == NULL) {
        snprintf(errstr, errstr_size, "obs: out of memory");
        return NULL;
    }
    obs->cfg = cfg;
    pthread_mutex_init(&obs->mu, NULL);
    snprintf(obs->not_ready, sizeof(obs->not_ready), "starting");
    if (bw__view_init(obs, errstr, errstr_size) != BW_OK ||
        (cfg->obs.listen[0] != '\0' &&
         start(obs, fallback, errstr, errstr_size) != BW_OK)) {
        bw_obs_destroy(obs);
        return NULL;
    }
    return obs;
}

void bw_obs_destroy(bw_obs_t *obs)
{
    if (obs == NULL) {
        return;
    }
    if (obs->daemon != NULL) {
        MHD_stop_daemon(obs->daemon); /* and closes the socket */
    }
    bw__view_free(obs);
    bw_wbuf_free(&obs->page);
    pthread_mutex_destroy(&obs->mu);
    bw_free(obs);
}
