/*
 * Vector variants of exp, log and log1p for the particle filter's loops over
 * particles.
 *
 * glibc's libmvec (>= 2.35 for log1p) implements exp, log and log1p on 2
 * (SSE) or 4 (AVX2) doubles at a time, within 4 ulp (glibc manual, "Errors in
 * Math Functions"). GCC calls them from a vectorised loop when the scalar
 * function is declared with the simd attribute, which glibc's own headers
 * do only under -ffast-math; here it is declared for these three functions
 * alone, so the rest of the model keeps IEEE semantics (infinities, NaN,
 * no reassociation). The linker finds libmvec through libm's linker script.
 * Other compilers and C libraries get the scalar functions: the same
 * model, a slower loop, last-bit differences.
 *
 * Accuracy: the model's tests (exact Kalman filter to 1e-9, enumeration of
 * regime histories, calibration) pass unchanged with them.
 *
 * Determinism: the same binary on the same kind of CPU gives the same bits
 * (libmvec, like libm, picks its code path by CPU features, so two CPU
 * families may differ in the last bits, as they already could with libm).
 */
#ifndef BW_MODEL_VECMATH_H
#define BW_MODEL_VECMATH_H

#include <math.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) &&         \
    defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 35) &&          \
    !defined(__FAST_MATH__)
#define BW_VECMATH 1
extern double exp(double) __attribute__((__simd__("notinbranch")));
extern double log1p(double) __attribute__((__simd__("notinbranch")));
extern double log(double) __attribute__((__simd__("notinbranch")));
/* Loops worth an AVX2 clone (chosen at load time by CPU features). */
#define BW_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define BW_VECMATH 0
#define BW_VECTOR_CLONES
#endif

/*
 * A sum over a loop in a fixed vector order: with -fopenmp-simd (GCC builds,
 * set in CMakeLists.txt for pf.c) the loop is vectorised and its partial
 * sums are combined in an order fixed by the binary and the chosen clone, so
 * a result is repeatable on one kind of CPU, like the rest of the filter.
 * Elsewhere it is a plain sequential loop.
 */
#define BW_PRAGMA(...) _Pragma(#__VA_ARGS__)
#if defined(BW_OMP_SIMD)
#define BW_SIMD_SUM(...) BW_PRAGMA(omp simd reduction(+ : __VA_ARGS__))
#else
#define BW_SIMD_SUM(...)
#endif

#endif
