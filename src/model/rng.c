/*
 * xoshiro256** 1.0 (D. Blackman, S. Vigna, "Scrambled linear pseudorandom
 * number generators", ACM TOMS 2021), seeded through splitmix64. 32 bytes of
 * state, so every series carries its own generator and the state is saved
 * with the model: restarts replay bit-identically.
 * Normal deviates: Marsaglia's polar method, spare discarded so that the
 * state is the four words only.
 */
#include <math.h>

#include "bayeswatch/model.h"

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void bw_rng_seed(bw_rng_t *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        rng->s[i] = splitmix64(&seed);
    }
}

uint64_t bw_rng_next(bw_rng_t *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double bw_rng_uniform(bw_rng_t *rng)
{
    return (double)(bw_rng_next(rng) >> 11) * 0x1.0p-53;
}

double bw_rng_gauss(bw_rng_t *rng)
{
    double u, v, s;

    do {
        u = 2.0 * bw_rng_uniform(rng) - 1.0;
        v = 2.0 * bw_rng_uniform(rng) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    return u * sqrt(-2.0 * log(s) / s);
}
