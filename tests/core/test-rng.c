/* test-rng.c: the counter-based generator is a pure function of its keys and
 * its uniform / normal outputs have the right moments. */
#include <math.h>
#include <glib.h>

#include "simclr/rng.h"

static void
test_pure (void)
{
  /* Same keys, same bits, whatever the call order. */
  uint64_t a = simclr_rng_u64 (7, 3, 11);
  (void) simclr_rng_u64 (7, 3, 12);
  g_assert_cmphex (simclr_rng_u64 (7, 3, 11), ==, a);
  /* Each key matters. */
  g_assert_cmphex (simclr_rng_u64 (8, 3, 11), !=, a);
  g_assert_cmphex (simclr_rng_u64 (7, 4, 11), !=, a);
  g_assert_cmphex (simclr_rng_u64 (7, 3, 10), !=, a);
  g_assert_cmphex (simclr_rng_stream2 (1, 2), !=, simclr_rng_stream2 (2, 1));
}

static void
test_uniform_moments (void)
{
  const int n = 200000;
  double sum = 0, sumsq = 0;
  for (int i = 0; i < n; i++) {
    float u = simclr_rng_uniform (42, 5, i);
    g_assert_cmpfloat (u, >=, 0.0f);
    g_assert_cmpfloat (u, <, 1.0f);
    sum += u;
    sumsq += (double) u * u;
  }
  double mean = sum / n, var = sumsq / n - mean * mean;
  /* Standard error of the mean is sqrt(1/12/n) ~ 6.5e-4: 5 sigma bounds. */
  g_assert_cmpfloat_with_epsilon (mean, 0.5, 3.3e-3);
  g_assert_cmpfloat_with_epsilon (var, 1.0 / 12.0, 2e-3);
}

static void
test_normal_moments (void)
{
  const int n = 200000;
  double sum = 0, sumsq = 0;
  for (int i = 0; i < n; i++) {
    double x = simclr_rng_normal (1, 2, i);
    g_assert_true (isfinite (x));
    sum += x;
    sumsq += x * x;
  }
  double mean = sum / n, var = sumsq / n - mean * mean;
  g_assert_cmpfloat_with_epsilon (mean, 0.0, 5 * sqrt (1.0 / n));
  g_assert_cmpfloat_with_epsilon (var, 1.0, 5 * sqrt (2.0 / n));
}

static void
test_below_is_uniform (void)
{
  /* Chi-square over 10 bins; the 0.999 quantile with 9 degrees is 27.9. */
  int counts[10] = { 0 };
  const int n = 100000;
  for (int i = 0; i < n; i++) {
    uint32_t v = simclr_rng_below (3, 9, i, 10);
    g_assert_cmpuint (v, <, 10);
    counts[v]++;
  }
  double chi2 = 0, expect = n / 10.0;
  for (int b = 0; b < 10; b++)
    chi2 += (counts[b] - expect) * (counts[b] - expect) / expect;
  g_assert_cmpfloat (chi2, <, 27.9);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/rng/pure", test_pure);
  g_test_add_func ("/rng/uniform-moments", test_uniform_moments);
  g_test_add_func ("/rng/normal-moments", test_normal_moments);
  g_test_add_func ("/rng/below-uniform", test_below_is_uniform);
  return g_test_run ();
}
