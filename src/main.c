/*
 * bayeswatch command line: argv and exit codes only; the work is in the
 * libraries.
 *
 *   bayeswatch replay [--config FILE] [--threats FILE] [--stale FILE]
 *                     [--alerts FILE]
 *                     INPUT.csv
 *   bayeswatch demo [--config FILE] [--speed N] [--hours H] [--plain]
 *                   [--events FILE] [--linger SECONDS] [--feed BROKERS]
 *   bayeswatch run [--config FILE] [--instance ID]
 *   bayeswatch probe [URL]
 *   bayeswatch check-config FILE
 *   bayeswatch dump-config [FILE]
 *   bayeswatch version
 *
 * Copyright (C) 2026 the bayeswatch authors. GPL-3.0-or-later.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gsl/gsl_errno.h>

#include "bayeswatch/config.h"
#include "bayeswatch/demo.h"
#include "bayeswatch/obs.h"
#include "bayeswatch/pipeline.h"
#include "bayeswatch/replay.h"

#define EX_USAGE 64
#define EX_NOINPUT 66
#define EX_SOFTWARE 70
#define EX_IOERR 74

#ifndef BW_VERSION
#define BW_VERSION "0.1.0"
#endif

#define DEFAULT_PROBE "http://127.0.0.1:9464/healthz"

static int usage(FILE *out, int code)
{
    fprintf(out,
            "usage: bayeswatch <command> [options]\n"
            "\n"
            "commands:\n"
            "  replay [--config FILE] [--threats FILE] [--stale FILE]\n"
            "         [--alerts FILE] [--format csv|json] INPUT.csv\n"
            "        score a CSV of metric events; scores to stdout\n"
            "  demo [--config FILE] [--speed N] [--hours H] [--plain]\n"
            "       [--events FILE] [--linger SECONDS] [--feed BROKERS]\n"
            "        no Kafka needed: synthetic telemetry with incidents\n"
            "        through the real stage on an in-process Kafka cluster,\n"
            "        shown live and in the web view (obs.listen); N simulated\n"
            "        minutes per second (0 = as fast as possible, default\n"
            "        10), H live hours (default 6); the web view stays up\n"
            "        SECONDS after the summary (-1 = until Ctrl-C, the\n"
            "        default at a terminal; 0 elsewhere); --feed: only\n"
            "        produce the telemetry to a real cluster's ingest topic\n"
            "  run [--config FILE] [--instance ID]\n"
            "        the Kafka stage: consume metric events, produce scores,\n"
            "        threats, stale markers and dead letters (until SIGTERM)\n"
            "  probe [URL]         GET URL (default " DEFAULT_PROBE ");\n"
            "                      exit 0 on 200 (health checks)\n"
            "  check-config FILE   validate a config (exit 78 if invalid)\n"
            "  dump-config [FILE]  print the effective config with defaults\n"
            "  version             print the version\n");
    return code;
}

static int load_config(bw_config_t *cfg, const char *path)
{
    bw_err_t err;

    if (path == NULL) {
        bw_config_defaults(cfg);
        return bw_config_load_string(cfg, "<defaults>", "", 0, stderr) ? 1 : 0;
    }
    err = bw_config_load(cfg, path, stderr);
    if (err == BW_ERR_IO) {
        return EX_NOINPUT;
    }
    return err == BW_OK ? 0 : BW_EXIT_CONFIG;
}

/* load_config plus librdkafka's verdict on the pass-through maps. */
static int load_stage_config(bw_config_t *cfg, const char *path)
{
    int rc = load_config(cfg, path);

    if (rc == 0 && bw_pipeline_check_config(cfg, stderr) != BW_OK) {
        rc = BW_EXIT_CONFIG;
    }
    return rc;
}

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void trap_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

static void print_stats(const bw_pipeline_t *p)
{
    bw_pipeline_stats_t st;

    bw_pipeline_stats(p, &st);
    fprintf(stderr,
            "bayeswatch: %llu records in, %llu scores, %llu threats, "
            "%llu stale markers, %llu dead letters, %llu late; "
            "%llu commits, %llu aborts, %llu rebalances\n",
            (unsigned long long)st.consumed, (unsigned long long)st.scored,
            (unsigned long long)st.threats, (unsigned long long)st.stale,
            (unsigned long long)st.dead_letters, (unsigned long long)st.late,
            (unsigned long long)st.commits, (unsigned long long)st.aborts,
            (unsigned long long)st.rebalances);
    fprintf(stderr,
            "bayeswatch: state: %llu changelog records (%.1f MB); %llu "
            "partition restores in %.2f s\n",
            (unsigned long long)st.changelog_records,
            (double)st.changelog_bytes / 1e6, (unsigned long long)st.restores,
            st.restore_s);
}

static int cmd_run(int argc, char **argv)
{
    static bw_config_t cfg; /* borrowed by the pipeline for its lifetime */
    const char *config = NULL;
    bw_pipeline_opts_t o = {0};
    bw_obs_t *obs;
    bw_pipeline_t *p;
    char errstr[512];
    bw_err_t err;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(argv[i], "--instance") == 0 && i + 1 < argc) {
            o.instance_id = argv[++i];
        } else {
            return usage(stderr, EX_USAGE);
        }
    }
    if ((rc = load_stage_config(&cfg, config)) != 0) {
        return rc;
    }
    trap_signals();
    bw_log_setup((bw_log_level_t)cfg.obs.log_level,
                 (bw_log_format_t)cfg.obs.log_format, NULL);
    if ((obs = bw_obs_new(&cfg, false, errstr, sizeof(errstr))) == NULL) {
        fprintf(stderr, "bayeswatch: error: %s\n", errstr);
        return 1;
    }
    if (bw_obs_url(obs) != NULL) {
        BW_LOG(BW_LOG_INFO, "obs", -1,
               "serving /metrics, /healthz, /readyz and the web view at %s",
               bw_obs_url(obs));
    }
    o.obs = bw_obs_url(obs) != NULL ? obs : NULL; /* no listener: no feed */
    p = bw_pipeline_new(&cfg, &o, errstr, sizeof(errstr));
    if (p == NULL) {
        fprintf(stderr, "bayeswatch: error: %s\n", errstr);
        bw_obs_destroy(obs);
        return 1;
    }
    err = bw_pipeline_run(p, &g_stop, errstr, sizeof(errstr));
    print_stats(p);
    bw_pipeline_destroy(p);
    bw_obs_destroy(obs);
    if (err != BW_OK) {
        fprintf(stderr, "bayeswatch: error: %s\n", errstr);
        return 1;
    }
    return 0;
}

static int cmd_demo(int argc, char **argv)
{
    bw_demo_opts_t o = {
        .speed = 10, .hours = 6, .out = stdout, .linger_s = NAN};
    char errstr[512], *end;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            o.config_path = argv[++i];
        } else if (strcmp(argv[i], "--speed") == 0 && i + 1 < argc) {
            o.speed = strtod(argv[++i], &end);
            if (*end != '\0' || !(o.speed >= 0)) {
                return usage(stderr, EX_USAGE);
            }
        } else if (strcmp(argv[i], "--hours") == 0 && i + 1 < argc) {
            o.hours = (int)strtol(argv[++i], &end, 10);
            if (*end != '\0' || o.hours < 1 || o.hours > 240) {
                return usage(stderr, EX_USAGE);
            }
        } else if (strcmp(argv[i], "--plain") == 0) {
            o.plain = true;
        } else if (strcmp(argv[i], "--feed") == 0 && i + 1 < argc) {
            o.feed_brokers = argv[++i];
        } else if (strcmp(argv[i], "--linger") == 0 && i + 1 < argc) {
            o.linger_s = strtod(argv[++i], &end);
            if (*end != '\0' || isnan(o.linger_s)) {
                return usage(stderr, EX_USAGE);
            }
        } else if (strcmp(argv[i], "--events") == 0 && i + 1 < argc) {
            if ((o.events = fopen(argv[++i], "w")) == NULL) {
                perror(argv[i]);
                return EX_IOERR;
            }
        } else {
            return usage(stderr, EX_USAGE);
        }
    }
    if (isnan(o.linger_s)) { /* at a terminal: until Ctrl-C */
        o.linger_s = !o.plain && isatty(fileno(stdout)) ? -1 : 0;
    }
    rc = bw_demo_run(&o, errstr, sizeof(errstr));
    if (o.events != NULL && fclose(o.events) != 0) {
        rc = EX_IOERR;
    }
    if (rc == 2) {
        fprintf(stderr, "bayeswatch: demo: %s\n", errstr);
    }
    return rc;
}

/* An optional output file of replay: NULL path, NULL stream. */
static int open_out(const char *path, FILE **f)
{
    if (path != NULL && (*f = fopen(path, "w")) == NULL) {
        perror(path);
        return -1;
    }
    return 0;
}

static int close_out(const char *path, FILE *f)
{
    if (f != NULL && fclose(f) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

static int cmd_replay(int argc, char **argv)
{
    const char *config = NULL, *threats = NULL, *stale = NULL, *input = NULL;
    const char *alerts = NULL;
    bw_replay_opts_t o = {.out = stdout, .diag = stderr};
    bw_replay_stats_t st;
    bw_config_t cfg;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(argv[i], "--threats") == 0 && i + 1 < argc) {
            threats = argv[++i];
        } else if (strcmp(argv[i], "--stale") == 0 && i + 1 < argc) {
            stale = argv[++i];
        } else if (strcmp(argv[i], "--alerts") == 0 && i + 1 < argc) {
            alerts = argv[++i];
        } else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc) {
            const char *fmt = argv[++i];
            if (strcmp(fmt, "json") != 0 && strcmp(fmt, "csv") != 0) {
                return usage(stderr, EX_USAGE);
            }
            o.json = strcmp(fmt, "json") == 0;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return usage(stderr, EX_USAGE);
        } else if (input == NULL) {
            input = argv[i];
        } else {
            return usage(stderr, EX_USAGE);
        }
    }
    if (input == NULL) {
        return usage(stderr, EX_USAGE);
    }
    if ((rc = load_config(&cfg, config)) != 0) {
        return rc;
    }
    if (open_out(threats, &o.threats) != 0 || open_out(stale, &o.stale) != 0 ||
        open_out(alerts, &o.alerts) != 0) {
        rc = EX_IOERR;
        goto done;
    }
    o.input = input;
    rc = bw_replay_run(&cfg, &o, &st);
    rc = rc == BW_OK ? 0 : (rc == BW_ERR_IO ? EX_NOINPUT : 1);
done:
    if ((close_out(stale, o.stale) | close_out(threats, o.threats) |
         close_out(alerts, o.alerts)) != 0) {
        rc = EX_IOERR;
    }
    if (fflush(stdout) != 0) {
        return EX_IOERR;
    }
    return rc;
}

/* Exit 0 when @p url answers 200 (the container's HEALTHCHECK). */
static int cmd_probe(const char *url)
{
    char body[256];
    int code = bw_obs_probe(url, 3000, body, sizeof(body));

    printf("%s: %d %s\n", url, code, body);
    return code == 200 ? 0 : 1;
}

int main(int argc, char **argv)
{
    bw_config_t cfg;
    int rc;

    gsl_set_error_handler_off();
    if (argc < 2) {
        return usage(stderr, EX_USAGE);
    }
    if (strcmp(argv[1], "replay") == 0) {
        return cmd_replay(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "demo") == 0) {
        return cmd_demo(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "run") == 0) {
        return cmd_run(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "check-config") == 0 && argc == 3) {
        rc = load_stage_config(&cfg, argv[2]);
        if (rc == 0) {
            printf("%s: ok (config version %016llx)\n", argv[2],
                   (unsigned long long)cfg.hash);
        }
        return rc;
    }
    if (strcmp(argv[1], "dump-config") == 0 && argc <= 3) {
        rc = load_config(&cfg, argc == 3 ? argv[2] : NULL);
        if (rc == 0) {
            bw_config_dump(&cfg, stdout);
        }
        return rc;
    }
    if (strcmp(argv[1], "probe") == 0 && argc <= 3) {
        return cmd_probe(argc == 3 ? argv[2] : DEFAULT_PROBE);
    }
    if (strcmp(argv[1], "version") == 0) {
        printf("bayeswatch %s\n", BW_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
        return usage(stdout, 0);
    }
    return usage(stderr, EX_USAGE);
}
