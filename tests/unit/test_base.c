/*
 * base/ on its own: the UTF-8 validator against the Unicode standard's
 * table 3-7 (well-formed byte sequences) and its examples of ill-formed
 * ones; CRC-32 and FNV-1a 64 against their published check values; the
 * hash map (growth, capacity, overwrite, iteration); timestamp parsing
 * against hand-computed epochs and impossible dates.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/hash.h"
#include "bayeswatch/map.h"
#include "bayeswatch/timefmt.h"

static void test_utf8_well_formed(void **state)
{
    static const char *const good[] = {
        "",
        "eu-west",
        "s\xc3\xa9rvice",             /* U+00E9 */
        "\xe0\xa0\x80",               /* U+0800, lowest 3-byte */
        "\xed\x9f\xbf",               /* U+D7FF, below the surrogates */
        "\xee\x80\x80",               /* U+E000, above them */
        "\xef\xbf\xbd",               /* U+FFFD */
        "\xf0\x90\x80\x80",           /* U+10000, lowest 4-byte */
        "\xf4\x8f\xbf\xbf",           /* U+10FFFF, highest */
        "\xe6\x9d\xb1\xe4\xba\xac-1", /* mixed */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!bw_utf8_valid(good[i])) {
            fail_msg("rejected well-formed case %zu", i);
        }
    }
    assert_int_equal(bw_utf8_seq((const unsigned char *)"\xf0\x90\x80\x80", 4),
                     4);
}

static void test_utf8_ill_formed(void **state)
{
    static const char *const bad[] = {
        "\x80",             /* lone continuation */
        "\xc0\xaf",         /* overlong '/' */
        "\xc1\xbf",         /* overlong */
        "\xe0\x9f\xbf",     /* overlong 3-byte */
        "\xed\xa0\x80",     /* surrogate U+D800 */
        "\xed\xbf\xbf",     /* surrogate U+DFFF */
        "\xf0\x8f\xbf\xbf", /* overlong 4-byte */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xf5\x80\x80\x80", /* no such lead byte */
        "\xff",             /* never in UTF-8 */
        "ab\xe2\x82",       /* truncated at the end */
        "\xe2\x82x",        /* truncated in the middle */
        "\xc3\xa9\xc3",     /* good then truncated */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (bw_utf8_valid(bad[i])) {
            fail_msg("accepted ill-formed case %zu", i);
        }
    }
    /* a sequence never reads past the bytes it was given */
    assert_int_equal(bw_utf8_seq((const unsigned char *)"\xc3\xa9", 1), 0);
    assert_int_equal(bw_utf8_seq((const unsigned char *)"a", 0), 0);
}

/* The check values: CRC-32 of "123456789" (the catalogue of parametrised
 * CRC algorithms, CRC-32/ISO-HDLC) and FNV-1a 64 of "", "a", "foobar"
 * (Fowler, Noll, Vo: the reference test vectors). */
static void test_checksums(void **state)
{
    (void)state;
    assert_int_equal(bw_crc32(0, "123456789", 9), 0xCBF43926u);
    assert_int_equal(bw_crc32(0, "", 0), 0);
    assert_int_equal(bw_crc32(bw_crc32(0, "1234", 4), "56789", 5),
                     0xCBF43926u); /* chained = whole */
    assert_true(bw_hash64(BW_HASH64_INIT, "", 0) == 0xcbf29ce484222325ULL);
    assert_true(bw_hash64(BW_HASH64_INIT, "a", 1) == 0xaf63dc4c8601ec8cULL);
    assert_true(bw_hash64(BW_HASH64_INIT, "foobar", 6) ==
                0x85944171f73967e8ULL);
}

static void count_item(const char *key, void *value, void *arg)
{
    long *sum = arg;

    (void)key;
    *sum += (long)(intptr_t)value;
}

static void test_map(void **state)
{
    bw_map_t *m = bw_map_new(1000);
    char key[32];
    long sum = 0;

    (void)state;
    assert_non_null(m);
    for (long i = 1; i <= 1000; i++) { /* grows many times on the way */
        snprintf(key, sizeof(key), "region-%ld/api/latency", i);
        assert_int_equal(bw_map_put(m, key, (void *)(intptr_t)i), BW_OK);
    }
    assert_int_equal(bw_map_size(m), 1000);
    for (long i = 1; i <= 1000; i++) {
        snprintf(key, sizeof(key), "region-%ld/api/latency", i);
        assert_int_equal((intptr_t)bw_map_get(m, key), i);
    }
    assert_null(bw_map_get(m, "region-0/api/latency"));
    assert_int_equal(bw_map_put(m, "one more", NULL), BW_ERR_FULL);
    assert_int_equal(bw_map_put(m, "region-7/api/latency", (void *)7000),
                     BW_OK); /* an existing key: overwritten, not added */
    assert_int_equal(bw_map_size(m), 1000);
    bw_map_each(m, count_item, &sum);
    assert_int_equal(sum, 1000L * 1001 / 2 - 7 + 7000);
    bw_map_destroy(m);
    bw_map_destroy(NULL);
}

/* Deletion against a reference (a presence array): random puts and
 * deletes keep every lookup right, clusters included (a small table at
 * load 1/2 probes long runs; backward shift must keep them reachable). */
static void test_map_delete(void **state)
{
    enum { N = 300 };
    bw_map_t *m = bw_map_new(N);
    bool in[N] = {false};
    uint64_t x = 12345;
    char key[32];
    size_t size = 0;

    (void)state;
    for (int step = 0; step < 20000; step++) {
        int k;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
        k = (int)(x % N);
        snprintf(key, sizeof(key), "k%d", k);
        if ((x >> 32) % 3 != 0) {
            assert_int_equal(bw_map_put(m, key, (void *)(intptr_t)(k + 1)),
                             BW_OK);
            size += !in[k];
            in[k] = true;
        } else {
            void *v = bw_map_del(m, key);
            assert_int_equal((intptr_t)v, in[k] ? k + 1 : 0);
            size -= in[k];
            in[k] = false;
        }
        if (step % 97 == 0) {
            for (int j = 0; j < N; j++) {
                snprintf(key, sizeof(key), "k%d", j);
                assert_int_equal((intptr_t)bw_map_get(m, key),
                                 in[j] ? j + 1 : 0);
            }
        }
        assert_int_equal(bw_map_size(m), size);
    }
    bw_map_destroy(m);
}

static void test_time_parse(void **state)
{
    static const struct {
        const char *s;
        int64_t ms;
    } good[] = {
        {"1970-01-01 00:00:00", 0},
        {"2026-01-01 00:00:00", INT64_C(1767225600000)},
        {"2026-01-01T00:01:00Z", INT64_C(1767225660000)},
        {"2026-01-01 00:07:00.250", INT64_C(1767226020250)},
        {"2024-02-29 12:00:00", INT64_C(1709208000000)}, /* leap day */
        {"2000-02-29 00:00:00", INT64_C(951782400000)},  /* 400-year leap */
        {"1767225600000", INT64_C(1767225600000)},       /* epoch ms */
        {"9999-12-31 23:59:59.999", BW_TIME_MAX_MS},
    };
    static const char *const bad[] = {
        "2026-13-01 00:00:00",
        "2026-02-29 00:00:00", /* not a leap year */
        "1900-02-29 00:00:00", /* centuries are not */
        "2026-04-31 00:00:00",
        "2026-01-01 24:00:00",
        "2026-01-01 00:60:00",
        "1969-12-31 23:59:59",
        "yesterday",
        "",
        "-5",
        "99999999999999999",
        "2026-01-01 00:00:00 extra",
    };
    int64_t ms;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (bw_time_parse(good[i].s, &ms) != BW_OK || ms != good[i].ms) {
            fail_msg("\"%s\": got %lld", good[i].s, (long long)ms);
        }
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (bw_time_parse(bad[i], &ms) == BW_OK && bw_time_valid(ms)) {
            fail_msg("accepted \"%s\" as %lld", bad[i], (long long)ms);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checksums),
        cmocka_unit_test(test_map),
        cmocka_unit_test(test_map_delete),
        cmocka_unit_test(test_time_parse),
        cmocka_unit_test(test_utf8_well_formed),
        cmocka_unit_test(test_utf8_ill_formed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
