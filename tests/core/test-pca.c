/* test-pca.c: PCA against a double-precision power iteration on the same
 * sample covariance, on data with known principal axes. */
#include <math.h>
#include <string.h>

#include <glib.h>

#include "simclr/pca.h"
#include "simclr/rng.h"

#define D 6
#define N 3000

/* Top eigenvector of the symmetric c (D, D) by power iteration, then
 * deflation; double precision throughout. */
static void
ref_components (double c[D][D], int k, double vec[][D], double *val)
{
  for (int t = 0; t < k; t++) {
    double v[D], nv = 0;
    for (int j = 0; j < D; j++)
      v[j] = 1.0 + 0.1 * j;
    for (int it = 0; it < 5000; it++) {
      double u[D] = { 0 };
      nv = 0;
      for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++)
          u[i] += c[i][j] * v[j];
      for (int i = 0; i < D; i++)
        nv += u[i] * u[i];
      nv = sqrt (nv);
      for (int i = 0; i < D; i++)
        v[i] = u[i] / nv;
    }
    memcpy (vec[t], v, sizeof v);
    val[t] = nv;
    for (int i = 0; i < D; i++)
      for (int j = 0; j < D; j++)
        c[i][j] -= nv * v[i] * v[j];
  }
}

static void
test_pca (void)
{
  static float x[N * D];
  static float proj[N * 2];
  const double sd[D] = { 3.0, 2.0, 1.0, 0.5, 0.3, 0.1 };
  double mu[D] = { 0 }, c[D][D] = { {0} }, vec[2][D], val[2];
  float comp[2 * D], var[2], mean[D];
  SimclrError err = { 0 };

  /* Axes: a fixed rotation (Givens mixes of coordinate pairs) of seeded
   * Gaussians with decreasing spread, plus an offset. */
  for (int i = 0; i < N; i++) {
    double z[D];
    for (int j = 0; j < D; j++)
      z[j] = sd[j] * simclr_rng_normal (4, i, j);
    for (int j = 0; j + 1 < D; j++) {
      double a = 0.4 + 0.2 * j, p = z[j], q = z[j + 1];
      z[j] = cos (a) * p - sin (a) * q;
      z[j + 1] = sin (a) * p + cos (a) * q;
    }
    for (int j = 0; j < D; j++)
      x[i * D + j] = (float) (z[j] + 5.0 - j);
  }
  for (int i = 0; i < N; i++)
    for (int j = 0; j < D; j++)
      mu[j] += x[i * D + j] / (double) N;
  for (int i = 0; i < N; i++)
    for (int a = 0; a < D; a++)
      for (int b = 0; b < D; b++)
        c[a][b] += (x[i * D + a] - mu[a]) * (x[i * D + b] - mu[b]) / (N - 1);
  ref_components (c, 2, vec, val);

  g_assert_cmpint (simclr_pca (x, N, D, 2, mean, comp, var, proj, &err), ==,
      SIMCLR_OK);
  for (int j = 0; j < D; j++)
    g_assert_cmpfloat_with_epsilon (mean[j], mu[j], 1e-4);
  for (int t = 0; t < 2; t++) {
    double dot = 0;
    for (int j = 0; j < D; j++)
      dot += comp[t * D + j] * vec[t][j];
    if (fabs (fabs (dot) - 1.0) > 1e-4 || fabs (var[t] - val[t]) > 1e-3 *
        val[t]) {
      g_printerr ("component %d: |cos| %.7f with the reference, variance "
          "%.6f vs %.6f\n", t, fabs (dot), var[t], val[t]);
      g_assert_not_reached ();
    }
  }
  /* Projections are the centred rows on the components. */
  for (int i = 0; i < N; i += 97)
    for (int t = 0; t < 2; t++) {
      double p = 0;
      for (int j = 0; j < D; j++)
        p += (x[i * D + j] - mean[j]) * comp[t * D + j];
      g_assert_cmpfloat_with_epsilon (proj[i * 2 + t], p, 1e-3);
    }
  g_assert_cmpint (simclr_pca (x, 1, D, 2, NULL, comp, NULL, NULL, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_pca (x, N, D, D + 1, NULL, comp, NULL, NULL, &err),
      ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  x[5] = NAN;
  g_assert_cmpint (simclr_pca (x, N, D, 2, NULL, comp, NULL, NULL, &err), ==,
      SIMCLR_ERROR_NUMERIC);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/pca/against-power-iteration", test_pca);
  return g_test_run ();
}
