/*
 * Secrets kept out of the config file: a value written `${file:PATH}` is
 * PATH's contents (one trailing newline dropped), read when a client is
 * made, so it never enters the parsed config, dump-config or a log line.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bayeswatch/config.h"

#define FILE_REF "${file:"

bool bw_config_secret(const char *value, char *out, size_t n, char *why,
                      size_t why_size)
{
    size_t len = strlen(value), got;
    bool nl;
    char path[512];
    FILE *f;

    if (strncmp(value, FILE_REF, strlen(FILE_REF)) != 0 ||
        value[len - 1] != '}') {
        snprintf(out, n, "%s", value);
        return true;
    }
    snprintf(path, sizeof(path), "%.*s", (int)(len - strlen(FILE_REF) - 1),
             value + strlen(FILE_REF));
    if ((f = fopen(path, "r")) == NULL) {
        snprintf(why, why_size, "cannot read %s: %s", path, strerror(errno));
        return false;
    }
    got = fread(out, 1, n, f);
    /* n - 1 bytes and a newline fit: the newline is dropped anyway */
    nl = got == n && out[n - 1] == '\n' && fgetc(f) == EOF;
    got -= nl;
    if (ferror(f)) { /* a directory reads as an error, not as "" */
        snprintf(why, why_size, "cannot read %s: %s", path, strerror(errno));
        fclose(f);
        return false;
    }
    fclose(f);
    if (got == n) {
        snprintf(why, why_size, "%s: longer than %zu bytes", path, n - 1);
        return false;
    }
    if (memchr(out, '\0', got) != NULL) { /* it would cut the secret */
        snprintf(why, why_size, "%s holds a NUL byte", path);
        return false;
    }
    out[got] = '\0';
    if (!nl && got > 0 && out[got - 1] == '\n') {
        out[--got] = '\0';
    }
    if (got > 0 && out[got - 1] == '\r') {
        out[--got] = '\0';
    }
    return true;
}
