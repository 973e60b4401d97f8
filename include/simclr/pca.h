/* pca.h: principal component analysis of a set of rows, for 2-D maps of an
 * embedding space.
 *
 * The covariance (d x d, in float, accumulated by cblas_ssyrk over blocks of
 * centred rows, divided by n - 1) is diagonalised by LAPACK's ssyevd (from
 * OpenBLAS): exact up to float rounding, and cheap for embedding widths
 * (d = 128: well under a millisecond), so no iterative method is needed.
 * Each component's sign is fixed so that its largest-magnitude coordinate
 * is positive, which makes the result reproducible.
 *
 * Thread-safety: reentrant (no state).
 */
#pragma once

#include <stdint.h>

#include "simclr/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* x (n, d) row-major, n >= 2, 1 <= k <= d <= 4096. Caller-owned outputs:
 * mean (d), components (k, d) unit rows by decreasing variance, variance (k)
 * (the eigenvalues), projected (n, k) = (x - mean) . components^T; any
 * output may be NULL except components. */
SimclrStatus simclr_pca (const float *x, int64_t n, int d, int k, float *mean,
    float *components, float *variance, float *projected, SimclrError *err);

#ifdef __cplusplus
}
#endif
