/*
 * Config loader: golden-file tests for the error messages (every fixture
 * tests/data/config/NAME.yaml has NAME.err with the exact diagnostics),
 * the shipped configs load, and config/bayeswatch.yaml is exactly the
 * dump of the defaults (the reference cannot drift from the key table).
 * Set BW_UPDATE_GOLDEN=1 to rewrite the .err files after a deliberate
 * message change (then review the diff).
 */
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>

#include <gsl/gsl_errno.h>

#include "testutil.h"

#ifndef BW_SOURCE_DIR
#error BW_SOURCE_DIR must be defined
#endif

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        n = 0;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void check_fixture(const char *dir, const char *name)
{
    char path[1024], golden[1024], *yaml, *want, *got = NULL;
    size_t ylen = 0, wlen = 0, glen = 0;
    bw_config_t cfg;
    FILE *diag = open_memstream(&got, &glen);
    bw_err_t err;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(golden, sizeof(golden), "%s/%.*s.err", dir,
             (int)(strlen(name) - 5), name);
    yaml = slurp(path, &ylen);
    assert_non_null(yaml);
    err = bw_config_load_string(&cfg, name, yaml, ylen, diag);
    fclose(diag);
    assert_int_equal(err, BW_ERR_CONFIG);
    if (getenv("BW_UPDATE_GOLDEN") != NULL) {
        FILE *g = fopen(golden, "w");
        fputs(got, g);
        fclose(g);
    }
    want = slurp(golden, &wlen);
    if (want == NULL || strcmp(want, got) != 0) {
        fail_msg("%s: diagnostics differ\n--- want\n%s--- got\n%s", name,
                 want ? want : "(no golden file)\n", got);
    }
    free(yaml);
    free(want);
    free(got);
}

static void test_golden_messages(void **state)
{
    const char *dir = BW_SOURCE_DIR "/tests/data/config";
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    (void)state;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".yaml") == 0) {
            check_fixture(dir, e->d_name);
            n++;
        }
    }
    closedir(d);
    assert_true(n >= 10);
}

static void test_shipped_configs_load(void **state)
{
    const char *files[] = {BW_SOURCE_DIR "/config/bayeswatch.yaml",
                           BW_SOURCE_DIR "/config/sample.yaml"};
    bw_config_t cfg;

    (void)state;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        assert_int_equal(bw_config_load(&cfg, files[i], stderr), BW_OK);
    }
    assert_true(cfg.model.fusion.n_rules > 0);
}

static void test_reference_is_dump_of_defaults(void **state)
{
    bw_config_t cfg;
    char *dump = NULL, *ref;
    size_t dlen = 0, rlen;
    FILE *f = open_memstream(&dump, &dlen);
    const char *body;

    (void)state;
    assert_int_equal(bw_config_load_string(&cfg, "<empty>", "", 0, stderr),
                     BW_OK);
    bw_config_dump(&cfg, f);
    fclose(f);
    ref = slurp(BW_SOURCE_DIR "/config/bayeswatch.yaml", &rlen);
    assert_non_null(ref);
    /* the reference is a comment header followed by the dump */
    body = strstr(ref, "\nengine:");
    assert_non_null(body);
    assert_string_equal(body + 1, dump);
    free(ref);
    free(dump);
}

static void test_dump_round_trip(void **state)
{
    bw_config_t a, b;
    char *d1 = NULL, *d2 = NULL;
    size_t l1 = 0, l2 = 0;
    FILE *f;

    (void)state;
    assert_int_equal(
        bw_config_load(&a, BW_SOURCE_DIR "/config/sample.yaml", stderr), BW_OK);
    f = open_memstream(&d1, &l1);
    bw_config_dump(&a, f);
    fclose(f);
    assert_int_equal(bw_config_load_string(&b, "<dump>", d1, l1, stderr),
                     BW_OK);
    f = open_memstream(&d2, &l2);
    bw_config_dump(&b, f);
    fclose(f);
    assert_string_equal(d1, d2);
    assert_true(a.hash == b.hash);
    free(d1);
    free(d2);
}

static void versions_of(const char *yaml, bw_config_t *c)
{
    assert_int_equal(bw_config_load_string(c, "t", yaml, strlen(yaml), stderr),
                     BW_OK);
}

/* The state versions are what saved state is checked against (README, "A
 * config change and the state"); the config version is stamped on every
 * output record. Pinned: the versions of the empty config as the build
 * before model.pf.tail_scale computed them (the config version, and the
 * state versions with the keys' docs), so that state it saved still
 * loads; and the doc-free state versions records are written under now.
 * A neutral key (keys.h) at its default leaves them unchanged, written or
 * not; set, it changes them. Changing a pinned state version discards
 * every series' state on upgrade: say so there. */
static void test_versions_neutral_keys(void **state)
{
    bw_config_t a, b;

    (void)state;
    versions_of("", &a);
    assert_true(a.hash == 0xba7cfd3060a9513dULL);
    assert_true(a.state_version_docs.pf == 0x40010d7ca4a1b765ULL);
    assert_true(a.state_version_docs.hier == 0x71a486472a573b6fULL);
    assert_true(a.state_version_docs.fusion == 0xb4cf962111586e5fULL);
    /* the doc-free versions records are written under from this build */
    assert_true(a.state_version.pf == 0xe02a50cfe137b17cULL);
    assert_true(a.state_version.hier == 0xd4102034641e0d0cULL);
    assert_true(a.state_version.fusion == 0x7aac52ca2c6630e1ULL);
    versions_of("model:\n  pf:\n    tail_scale: 0\n"
                "engine:\n  routes:\n    - metric: \"*\"\n"
                "      tail_scale: -1\n",
                &b);
    assert_true(a.hash == b.hash && a.state_version.pf == b.state_version.pf &&
                a.state_version_docs.pf == b.state_version_docs.pf);
    versions_of("model:\n  pf:\n    tail_scale: 4\n", &b);
    assert_true(a.hash != b.hash && a.state_version.pf != b.state_version.pf);
    versions_of("engine:\n  routes:\n    - metric: \"*\"\n"
                "      tail_scale: 4\n",
                &b);
    assert_true(a.hash != b.hash && a.state_version.pf == b.state_version.pf);
    { /* one spelling of "model.pf's" for a route */
        static const char half[] = "engine:\n  routes:\n"
                                   "    - tail_scale: -0.5\n";
        assert_int_equal(
            bw_config_load_string(&b, "t", half, sizeof(half) - 1, NULL),
            BW_ERR_CONFIG);
    }
}

/* A Kafka property's PEM (line breaks, a tab) dumps as escapes and loads
 * back the same; YAML's null in a string key is the empty string. */
static void test_dump_escapes_and_null(void **state)
{
    static const char yaml[] =
        "kafka:\n"
        "  client:\n"
        "    ssl.certificate.pem: \"-----BEGIN-----\\nAB\\tCD\\r\\n-----END-----\"\n"
        "registry:\n"
        "  password: ~\n";
    bw_config_t a, b;
    char *d = NULL;
    size_t l = 0;
    FILE *f;

    (void)state;
    assert_int_equal(bw_config_load_string(&a, "t", yaml, sizeof(yaml) - 1,
                                           stderr),
                     BW_OK);
    assert_string_equal(a.registry.password, "");
    assert_string_equal(a.kafka.client.kv[0].value,
                        "-----BEGIN-----\nAB\tCD\r\n-----END-----");
    f = open_memstream(&d, &l);
    bw_config_dump(&a, f);
    fclose(f);
    assert_null(strchr(strstr(d, "ssl.certificate.pem"), '\t'));
    assert_int_equal(bw_config_load_string(&b, "<dump>", d, l, stderr), BW_OK);
    assert_string_equal(b.kafka.client.kv[0].value, a.kafka.client.kv[0].value);
    free(d);
}

/* -0 is 0: the same config version and state versions (printed "-0",
 * it discarded saved state for nothing). */
static void test_negative_zero(void **state)
{
    static const char a[] = "model: {pf: {p_shift: -0}}\n",
                      b[] = "model: {pf: {p_shift: 0}}\n";
    bw_config_t ca, cb;

    (void)state;
    assert_int_equal(bw_config_load_string(&ca, "a", a, strlen(a), NULL),
                     BW_OK);
    assert_int_equal(bw_config_load_string(&cb, "b", b, strlen(b), NULL),
                     BW_OK);
    assert_true(ca.state_version.pf == cb.state_version.pf);
    assert_true(ca.hash == cb.hash);
}

/* A secret file of exactly the buffer's room and a trailing newline fits
 * (the newline is dropped); one byte more does not; nor a NUL byte in it,
 * nor a directory. */
static void test_secret_file_fits(void **state)
{
    char path[] = "/tmp/bw_secret_XXXXXX", ref[64], out[16], why[256];
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "0123456789abcde\n", 16), 16);
    close(fd);
    snprintf(ref, sizeof(ref), "${file:%s}", path);
    assert_true(bw_config_secret(ref, out, sizeof(out), why, sizeof(why)));
    assert_string_equal(out, "0123456789abcde");
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, "0123456789abcdef\n", 17), 17);
    close(fd);
    assert_false(bw_config_secret(ref, out, sizeof(out), why, sizeof(why)));
    /* a NUL byte would cut the secret short: refused */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, "pw\0rest\n", 8), 8);
    close(fd);
    assert_false(bw_config_secret(ref, out, sizeof(out), why, sizeof(why)));
    assert_non_null(strstr(why, "NUL"));
    unlink(path);
    /* a directory reads as an error (it read as an empty password) */
    assert_false(bw_config_secret("${file:/tmp}", out, sizeof(out), why,
                                  sizeof(why)));
    assert_non_null(strstr(why, "Is a directory"));
}

/* A directory is not a config (fread of one fails: it read as empty, all
 * defaults, "ok"). */
static void test_directory_refused(void **state)
{
    bw_config_t c;

    (void)state;
    assert_int_equal(bw_config_load(&c, BW_SOURCE_DIR "/config", NULL),
                     BW_ERR_IO);
}

/* A rule that can never reach high loads, with a warning at its name;
 * one that can, without. At the defaults (detection 0.8, false_alarm
 * 0.02, prior 0.001, correlation 0.3, band_high 0.5) two signals reach
 * at most 1 / (1 + 999 / 40^1.7) = 0.346, three 1 / (1 + 999 / 40^2.19)
 * = 0.764 (at false_alarm 0.05, the default before, three reached 0.302:
 * a rule written with the defaults never reported high). */
static void test_rule_ceiling_warning(void **state)
{
    static const char y[] = "model:\n"
                            "  fusion:\n"
                            "    rules:\n"
                            "      - name: pair\n"
                            "        signals:\n"
                            "          - metric: a\n"
                            "          - metric: b\n"
                            "      - name: trio\n"
                            "        signals:\n"
                            "          - metric: a\n"
                            "          - metric: b\n"
                            "          - metric: c\n";
    char *got = NULL;
    size_t glen = 0;
    FILE *diag = open_memstream(&got, &glen);
    bw_config_t c;

    (void)state;
    assert_int_equal(bw_config_load_string(&c, "t", y, strlen(y), diag),
                     BW_OK);
    fclose(diag);
    assert_float_equal(bw_config_rule_ceiling(&c.model.fusion, 0),
                       1.0 / (1.0 + 999.0 / pow(40.0, 1.7)), 1e-12);
    assert_float_equal(bw_config_rule_ceiling(&c.model.fusion, 1),
                       1.0 / (1.0 + 999.0 / pow(40.0, 2.19)), 1e-12);
    /* one line, the pair's, at its name */
    assert_non_null(strstr(got, "t:4:15: warning: model.fusion.rules[0].name: "
                                "rule \"pair\" never reaches high"));
    assert_non_null(strstr(got, "at most 0.346, below band_high 0.5"));
    assert_null(strstr(got, "trio"));
    assert_int_equal(strchr(got, '\n') - got + 1, (long)glen);
    free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule_ceiling_warning),
        cmocka_unit_test(test_golden_messages),
        cmocka_unit_test(test_shipped_configs_load),
        cmocka_unit_test(test_reference_is_dump_of_defaults),
        cmocka_unit_test(test_dump_round_trip),
        cmocka_unit_test(test_dump_escapes_and_null),
        cmocka_unit_test(test_versions_neutral_keys),
        cmocka_unit_test(test_directory_refused),
        cmocka_unit_test(test_secret_file_fits),
        cmocka_unit_test(test_negative_zero),
    };

    gsl_set_error_handler_off();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
