/*
 * Config loader: golden-file tests for the error messages (every fixture
 * tests/data/config/NAME.yaml has NAME.err with the exact diagnostics),
 * the shipped configs load, and config/bayeswatch.yaml is exactly the
 * dump of the defaults (the reference cannot drift from the key table).
 * Set BW_UPDATE_GOLDEN=1 to rewrite the .err files after a deliberate
 * message change (then review the diff).
 */
#include <dirent.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_messages),
        cmocka_unit_test(test_shipped_configs_load),
        cmocka_unit_test(test_reference_is_dump_of_defaults),
        cmocka_unit_test(test_dump_round_trip),
    };

    gsl_set_error_handler_off();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
