/*
 * base/ on its own: the UTF-8 validator against the Unicode standard's
 * table 3-7 (well-formed byte sequences) and its examples of ill-formed
 * ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bayeswatch/buf.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_well_formed),
        cmocka_unit_test(test_utf8_ill_formed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
