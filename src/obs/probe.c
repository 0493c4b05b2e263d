/*
 * `bayeswatch probe [URL]`: one HTTP GET (plain http, loopback or any
 * host) whose status decides the exit code. The container's HEALTHCHECK
 * and Kubernetes exec probes use it, so the image needs no curl.
 */
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bayeswatch/obs.h"

/* "http://HOST[:PORT][/PATH]" into its parts; HOST may be "[V6]". */
static bool parse_url(const char *url, char *host, size_t hn, char *port,
                      size_t pn, const char **path)
{
    const char *h = url, *slash, *colon, *rb;
    size_t len;

    if (strncmp(h, "http://", 7) != 0) {
        return false;
    }
    h += 7;
    slash = strchr(h, '/');
    *path = slash != NULL ? slash : "/";
    len = slash != NULL ? (size_t)(slash - h) : strlen(h);
    if (len == 0 || len >= hn) {
        return false;
    }
    if (h[0] == '[') { /* an IPv6 literal: its colons are not the port's */
        rb = memchr(h, ']', len);
        if (rb == NULL ||
            (rb + 1 < h + len && rb[1] != ':')) {
            return false;
        }
        if (rb + 1 < h + len) {
            snprintf(port, pn, "%.*s", (int)(h + len - rb - 2), rb + 2);
        } else {
            snprintf(port, pn, "80");
        }
        snprintf(host, hn, "%.*s", (int)(rb - h - 1), h + 1);
        return host[0] != '\0' && port[0] != '\0';
    }
    colon = memchr(h, ':', len);
    if (colon != NULL) {
        snprintf(port, pn, "%.*s", (int)(len - (size_t)(colon - h) - 1),
                 colon + 1);
        len = (size_t)(colon - h);
    } else {
        snprintf(port, pn, "80");
    }
    snprintf(host, hn, "%.*s", (int)len, h);
    return host[0] != '\0' && port[0] != '\0';
}

static int connect_to(const char *host, const char *port, int timeout_ms)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL, *a;
    int fd = -1;

    if (getaddrinfo(host, port, &hints, &ai) != 0) {
        return -1;
    }
    for (a = ai; a != NULL && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd >= 0) {
            /* the timeouts before connect: on Linux SO_SNDTIMEO bounds
             * connect too, so a host that drops packets costs the probe's
             * timeout, not the kernel's two minutes of SYN retries */
            struct timeval tv = {timeout_ms / 1000,
                                 (timeout_ms % 1000) * 1000};
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        }
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    return fd;
}

/* The answer's first @p cap - 1 bytes, NUL-terminated: read until they
 * are there or the server closes (HTTP/1.0), since the headers and the
 * body may come in separate segments. Returns the bytes read. */
static ssize_t read_answer(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    ssize_t n;

    while (got < cap - 1 && (n = read(fd, buf + got, cap - 1 - got)) > 0) {
        got += (size_t)n;
    }
    buf[got] = '\0';
    return (ssize_t)got;
}

int bw_obs_probe(const char *url, int timeout_ms, char *out, size_t out_size)
{
    char host[256], port[16], req[512], resp[512];
    const char *path;
    ssize_t n;
    int fd, code = -1;

    if (!parse_url(url, host, sizeof(host), port, sizeof(port), &path)) {
        snprintf(out, out_size, "not an http:// URL: %s", url);
        return -1;
    }
    if ((fd = connect_to(host, port, timeout_ms)) < 0) {
        snprintf(out, out_size, "cannot connect to %s:%s", host, port);
        return -1;
    }
    snprintf(req, sizeof(req),
             "GET %s HTTP/1.0\r\nHost: %s%s%s\r\nUser-Agent: "
             "bayeswatch-probe\r\n\r\n",
             path, strchr(host, ':') ? "[" : "", host,
             strchr(host, ':') ? "]" : "");
    if (write(fd, req, strlen(req)) == (ssize_t)strlen(req) &&
        (n = read_answer(fd, resp, sizeof(resp))) > 0) {
        if (sscanf(resp, "HTTP/1.%*d %d", &code) != 1) {
            code = -1;
        }
        snprintf(out, out_size, "%s",
                 strstr(resp, "\r\n\r\n") != NULL ? strstr(resp, "\r\n\r\n") + 4
                                                  : "");
        out[strcspn(out, "\n")] = '\0';
    } else {
        snprintf(out, out_size, "no answer from %s:%s", host, port);
    }
    close(fd);
    return code;
}
