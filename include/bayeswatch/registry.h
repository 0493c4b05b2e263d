/*
 * bayeswatch - registry: a client of a Confluent-compatible schema registry
 * (Confluent Schema Registry REST API v7; Apicurio Registry serves it under
 * /apis/ccompat/v7): register the output schemas, fetch input writer
 * schemas by id. Thread-safe (one lock around the HTTP handle, another
 * around the cache: a cached id is answered while a request is waiting on
 * the network); fetched schemas are cached for the client's life, ids
 * that are not found (or whose answer is over 4 MiB) for a minute.
 *
 * While the registry cannot be reached a fetch fails at once with BW_ERR_IO
 * until a backoff ends (0.5 s, doubling up to registry.backoff_max_ms), so
 * callers can keep going with what they have cached.
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#ifndef BAYESWATCH_REGISTRY_H
#define BAYESWATCH_REGISTRY_H

#include <stdint.h>

#include "bayeswatch/config.h"
#include "bayeswatch/err.h"

typedef struct bw_registry_s bw_registry_t;

/**
 * @brief A client of the registry at cfg->url (copied; the password is
 * read from its file now, if given as ${file:PATH}).
 * @returns NULL with errstr set (bad URL scheme, unreadable secret).
 */
bw_registry_t *bw_registry_new(const bw_registry_cfg_t *cfg, char *errstr,
                               size_t errstr_size);
void bw_registry_destroy(bw_registry_t *r);

/**
 * @brief Whether the registry answers and takes the client's credentials
 * (GET /config; a 403 there passes: the grant for /config may be missing).
 * @returns BW_OK; BW_ERR_IO when it cannot be reached; BW_ERR_CONFIG on
 * 401, with its message.
 */
bw_err_t bw_registry_check(bw_registry_t *r, char *errstr, size_t errstr_size);

/**
 * @brief Register @p schema (Avro JSON) under @p subject, or find it there
 * already: its global id in @p id.
 * @returns BW_OK; BW_ERR_IO when the registry cannot be reached or fails
 * (5xx); BW_ERR_CONFIG when it refuses (authentication, an incompatible
 * schema for the subject's compatibility rule), with its message.
 */
bw_err_t bw_registry_register(bw_registry_t *r, const char *subject,
                              const char *schema, int32_t *id, char *errstr,
                              size_t errstr_size);

/**
 * @brief The schema registered with global id @p id.
 * @param schema  set to the Avro JSON text, owned by @p r (valid until
 *                bw_registry_destroy).
 * @returns BW_OK; BW_ERR_NOTFOUND (no such id, or not an Avro schema);
 * BW_ERR_IO while the registry cannot be reached or refuses the client's
 * credentials (401; retried after the backoff, not before); BW_ERR_CONFIG
 * when it refuses otherwise (403: an ACL on the schema's subject).
 */
bw_err_t bw_registry_schema(bw_registry_t *r, int32_t id, const char **schema,
                            char *errstr, size_t errstr_size);

#endif
