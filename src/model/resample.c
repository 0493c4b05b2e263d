/*
 * Weights in log space and systematic resampling.
 *
 * Systematic resampling (Kitagawa 1996; Douc, Cappe & Moulines 2005 for its
 * variance): one uniform u, points (u + k) / N, k = 0..N-1, matched against
 * the cumulative normalised weights in a single O(N) merge. Weights and
 * their prefix sums are double.
 */
#include <math.h>

#include "bayeswatch/model.h"

double bw_logsumexp(const double *x, int n)
{
    double mx = -INFINITY, s = 0.0;

    for (int i = 0; i < n; i++) {
        if (x[i] > mx) {
            mx = x[i];
        }
    }
    if (!isfinite(mx)) {
        return mx;
    }
    for (int i = 0; i < n; i++) {
        s += exp(x[i] - mx);
    }
    return mx + log(s);
}

double bw_ess(const double *logw, int n)
{
    double lse = bw_logsumexp(logw, n), s2 = 0.0;

    for (int i = 0; i < n; i++) {
        double w = exp(logw[i] - lse);
        s2 += w * w;
    }
    return s2 > 0.0 ? 1.0 / s2 : 0.0;
}

void bw_resample_systematic(const double *logw, int n, double u, int *idx)
{
    double lse = bw_logsumexp(logw, n);
    double cum = exp(logw[0] - lse);
    int j = 0;

    for (int k = 0; k < n; k++) {
        double point = (u + (double)k) / (double)n;
        while (point > cum && j < n - 1) {
            j++;
            cum += exp(logw[j] - lse);
        }
        idx[k] = j;
    }
}
