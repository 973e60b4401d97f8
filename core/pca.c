/* pca.c: PCA by an eigendecomposition of the covariance (pca.h). */
#include "simclr/pca.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

/* LAPACK's symmetric eigensolver, exported by OpenBLAS (Debian ships no
 * lapacke.h for it). Fortran calling convention, with the hidden lengths of
 * the two character arguments at the end, as gfortran passes them. */
extern void ssyevd_ (const char *jobz, const char *uplo, const int *n,
    float *a, const int *lda, float *w, float *work, const int *lwork,
    int *iwork, const int *liwork, int *info, size_t jobz_len,
    size_t uplo_len);

#define ROW_BLOCK 4096

SimclrStatus
simclr_pca (const float *x, int64_t n, int d, int k, float *mean,
    float *components, float *variance, float *projected, SimclrError *err)
{
  double *mu = NULL;
  float *muf = NULL, *cov = NULL, *block = NULL, *w = NULL, *work = NULL;
  int *iwork = NULL, lwork = -1, liwork = -1, info = 0, iw = 0;
  float wq = 0.0f;
  SimclrStatus status = SIMCLR_OK;

  if (n < 2 || d < 1 || d > 4096 || k < 1 || k > d || !x || !components)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "pca: %lld rows of %d with %d components (need at least 2 rows and "
        "1 <= k <= d <= 4096)", (long long) n, d, k);
  mu = calloc (d, sizeof (double));
  muf = malloc ((size_t) d * sizeof (float));
  cov = calloc ((size_t) d * d, sizeof (float));
  block = malloc ((size_t) ROW_BLOCK * d * sizeof (float));
  w = malloc ((size_t) d * sizeof (float));
  if (!mu || !muf || !cov || !block || !w)
    goto no_memory;

  for (int64_t i = 0; i < n; i++)
    for (int j = 0; j < d; j++) {
      if (!isfinite (x[(size_t) i * d + j])) {
        status = simclr_error_set (err, SIMCLR_ERROR_NUMERIC,
            "pca: row %lld has a non-finite value", (long long) i);
        goto done;
      }
      mu[j] += x[(size_t) i * d + j];
    }
  for (int j = 0; j < d; j++)
    muf[j] = (float) (mu[j] / n);

  /* cov (d, d) += B^T B over blocks B (rows, d) of centred rows: ssyrk
   * fills the upper triangle (row-major), i.e. the lower one in LAPACK's
   * column-major view. */
  for (int64_t r0 = 0; r0 < n; r0 += ROW_BLOCK) {
    int rb = n - r0 < ROW_BLOCK ? (int) (n - r0) : ROW_BLOCK;
    for (int i = 0; i < rb; i++)
      for (int j = 0; j < d; j++)
        block[(size_t) i * d + j] = x[(size_t) (r0 + i) * d + j] - muf[j];
    cblas_ssyrk (CblasRowMajor, CblasUpper, CblasTrans, d, rb, 1.0f, block, d,
        1.0f, cov, d);
  }
  for (size_t i = 0; i < (size_t) d * d; i++)
    cov[i] /= (float) (n - 1);

  ssyevd_ ("V", "L", &d, cov, &d, w, &wq, &lwork, &iw, &liwork, &info, 1, 1);
  if (info != 0)
    goto lapack_failed;
  lwork = (int) wq + 1;
  liwork = iw;
  work = malloc ((size_t) lwork * sizeof (float));
  iwork = malloc ((size_t) liwork * sizeof (int));
  if (!work || !iwork)
    goto no_memory;
  ssyevd_ ("V", "L", &d, cov, &d, w, work, &lwork, iwork, &liwork, &info, 1,
      1);
  if (info != 0)
    goto lapack_failed;

  /* Eigenvalues ascend; eigenvector j is column j of the column-major
   * result, i.e. the contiguous cov[j*d .. j*d+d). */
  for (int c = 0; c < k; c++) {
    const float *v = cov + (size_t) (d - 1 - c) * d;
    float *out = components + (size_t) c * d;
    int big = 0;
    for (int j = 1; j < d; j++)
      if (fabsf (v[j]) > fabsf (v[big]))
        big = j;
    for (int j = 0; j < d; j++)
      out[j] = v[big] < 0 ? -v[j] : v[j];
    if (variance)
      variance[c] = w[d - 1 - c] > 0 ? w[d - 1 - c] : 0.0f;
  }
  if (mean)
    memcpy (mean, muf, (size_t) d * sizeof (float));
  if (projected) {
    for (int64_t r0 = 0; r0 < n; r0 += ROW_BLOCK) {
      int rb = n - r0 < ROW_BLOCK ? (int) (n - r0) : ROW_BLOCK;
      for (int i = 0; i < rb; i++)
        for (int j = 0; j < d; j++)
          block[(size_t) i * d + j] = x[(size_t) (r0 + i) * d + j] - muf[j];
      /* projected (rb, k) = block (rb, d) . components (k, d)^T:
       * M = rb, N = k, K = d. */
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, rb, k, d, 1.0f,
          block, d, components, d, 0.0f, projected + (size_t) r0 * k, k);
    }
  }
  goto done;

no_memory:
  status = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
      "pca: out of memory for %d x %d", d, d);
  goto done;
lapack_failed:
  status = simclr_error_set (err, SIMCLR_ERROR_NUMERIC,
      "pca: ssyevd failed (info %d)", info);
done:
  free (mu);
  free (muf);
  free (cov);
  free (block);
  free (w);
  free (work);
  free (iwork);
  return status;
}
