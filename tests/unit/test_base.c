/*
 * base/ on its own: the UTF-8 validator against the Unicode standard's
 * table 3-7 (well-formed byte sequences) and its examples of ill-formed
 * ones; CRC-32 and FNV-1a 64 against their published check values; the
 * hash map (growth, capacity, overwrite, iteration); timestamp parsing
 * against hand-computed epochs and impossible dates; the number formatter
 * against snprintf on edge values and random doubles (fixed seed); a
 * writer buffer reused after a failed allocation.
 */
#include <float.h>
#include <math.h>
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
#include "bayeswatch/mem.h"
#include "bayeswatch/numfmt.h"
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
        /* a leap second: the next day's first (POSIX time has none) */
        {"2016-12-31 23:59:60", INT64_C(1483228800000)},
    };
    static const char *const bad[] = {
        "2026-13-01 00:00:00",
        "2026-02-29 00:00:00", /* not a leap year */
        "1900-02-29 00:00:00", /* centuries are not */
        "2026-04-31 00:00:00",
        "2026-01-01 24:00:00",
        "2026-01-01 00:60:00",
        "2026-03-05 12:30:60", /* a second 60 outside 23:59: a typo */
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

/* splitmix64: the test's own deterministic stream */
static uint64_t next_u64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static double next_unit(uint64_t *x)
{
    return (double)(next_u64(x) >> 11) * 0x1.0p-53;
}

/* bw_fmt_g and bw_fmt_f write what snprintf writes, at every precision */
static void check_fmt(double v)
{
    char want[BW_NUMFMT_MAX], got[BW_NUMFMT_MAX];
    size_t n;

    for (int prec = 1; prec <= 17; prec++) {
        snprintf(want, sizeof(want), "%.*g", prec, v);
        n = bw_fmt_g(got, v, prec);
        if (strcmp(want, got) != 0 || n != strlen(want)) {
            fail_msg("%%.%dg of %a: printf \"%s\", bw_fmt_g \"%s\"", prec, v,
                     want, got);
        }
    }
    for (int dec = 0; dec <= 9; dec++) {
        if (fabs(v) >= 1e30) {
            break; /* printf's own path; long text */
        }
        snprintf(want, sizeof(want), "%.*f", dec, v);
        n = bw_fmt_f(got, v, dec);
        if (strcmp(want, got) != 0 || n != strlen(want)) {
            fail_msg("%%.%df of %a: printf \"%s\", bw_fmt_f \"%s\"", dec, v,
                     want, got);
        }
    }
}

static void test_numfmt_edges(void **state)
{
    /* clang-format off */
    static const double fixed[] = {
        0.0, -0.0, 1.0, -1.0, 0.5, 1.5, 2.5, -2.5, 0.125, 0.0001, 0.00001,
        9.9999999995e-5, 99999.5, 999999999.5, 1234567895.0, 144.52, 0.1,
        0.3, 1e-300, 5e-324, DBL_MIN, DBL_MAX, -DBL_MAX, 1e16, 1e17, 1e21,
        1e22, 123456789012345678.0, 0.005, 0.015, 0.025, 1.005, 2.675,
        HUGE_VAL, -HUGE_VAL, 4503599627370496.5, 9007199254740993.0
    };
    /* clang-format on */
    char got[BW_NUMFMT_MAX], want[BW_NUMFMT_MAX];
    int64_t ints[] = {
        0, 7, -7, 10, 9223372036854775807LL, INT64_MIN, 1767225600000LL};

    (void)state;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        check_fmt(fixed[i]);
    }
    for (int k = -25; k <= 25; k++) { /* powers of ten and neighbours */
        double p = pow(10.0, k);

        check_fmt(p);
        check_fmt(nextafter(p, 0.0));
        check_fmt(nextafter(p, HUGE_VAL));
        check_fmt(-p);
    }
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        snprintf(want, sizeof(want), "%lld", (long long)ints[i]);
        bw_fmt_i64(got, ints[i]);
        assert_string_equal(got, want);
    }
}

static void test_numfmt_random(void **state)
{
    uint64_t x = 20261203;
    double v;

    (void)state;
    for (int i = 0; i < 20000; i++) {
        uint64_t bits = next_u64(&x);

        memcpy(&v, &bits, sizeof(v)); /* any double */
        if (isfinite(v)) {
            check_fmt(v);
        }
        /* magnitudes telemetry has, log-uniform over 1e-16..1e22 */
        v = pow(10.0, -16.0 + 38.0 * next_unit(&x));
        check_fmt(next_u64(&x) & 1 ? v : -v);
        /* decimal readings (144.52, 0.0035), their halves (ties) and
         * integers */
        v = (double)(next_u64(&x) % 100000000) /
            pow(10.0, (int)(next_u64(&x) % 12));
        check_fmt(v);
        check_fmt(v / 2.0);
        check_fmt((double)(int64_t)(next_u64(&x) >> 8));
    }
}

/* A failed allocation makes the writer's error sticky until the buffer is
 * reset for its next use; the reset keeps the capacity. */
static void test_wbuf_reset(void **state)
{
    bw_wbuf_t w = {0};
    static const char big[300]; /* past the first 256 bytes of capacity */

    (void)state;
    bw_wbuf_u32(&w, 7);
    assert_int_equal(w.err, BW_OK);
    bw_mem_fail_after(0);
    bw_wbuf_bytes(&w, big, sizeof(big));
    bw_mem_fail_after(-1);
    assert_int_not_equal(w.err, BW_OK);
    bw_wbuf_u8(&w, 1);
    assert_int_not_equal(w.err, BW_OK); /* sticky */
    bw_wbuf_reset(&w);
    assert_int_equal(w.err, BW_OK);
    assert_int_equal(w.len, 0);
    bw_wbuf_u32(&w, 9);
    assert_int_equal(w.err, BW_OK);
    assert_int_equal(w.len, 4);
    bw_wbuf_free(&w);
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
        cmocka_unit_test(test_numfmt_edges),
        cmocka_unit_test(test_numfmt_random),
        cmocka_unit_test(test_wbuf_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
