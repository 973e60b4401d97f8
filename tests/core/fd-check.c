/* fd-check.c: see fd-check.h. */
#include <math.h>
#include <stdlib.h>

#include <glib.h>

#include "fd-check.h"

/* Central difference of the loss wrt *v with step h (the float step
 * actually taken). */
static double
central (FdLossFunc loss, void *ctx, float *v, double h)
{
  float orig = *v;
  float up = orig + (float) h, down = orig - (float) h;
  *v = up;
  double fp = loss (ctx);
  *v = down;
  double fm = loss (ctx);
  *v = orig;
  return (fp - fm) / ((double) up - (double) down);
}

/* The networks under test are tiny and strongly curved (batch norm over a
 * few rows, 8-16 channels), so plain central differences carry O(h^2)
 * errors of several percent at steps large enough to beat float rounding:
 * use Richardson extrapolation, r(h) = (4 c(h/2) - c(h)) / 3 (error
 * O(h^4)), at h and h/2. If r(h) and r(h/2) disagree, a ReLU kink or a
 * max-pool switch lies inside the step. ReLU kinks are dense here (one
 * parameter moves hundreds of pre-activations), and a kink closer than h/4
 * biases all three differences alike, so each probe is tried at base steps
 * eps, eps/3 and eps/9 and passes if one of them agrees:
 *   |r - an| <= 1e-2 * max(|r|, |an|) + 1e-4.
 * Smaller steps are limited by float rounding of the forward (about 1e-4 of
 * absolute gradient at eps/9). A probe where every step is a kink is
 * skipped; a wrong gradient (factor, sign, missing term) fails at all steps.
 * Over all probes (fd_stats_assert): the median relative error must stay
 * below 5e-3 (measured 0.6e-3 to 2.0e-3 for test-model's networks across
 * OpenBLAS kernels and thread counts), at most 1 in 5 probes may miss the
 * tolerance (kinks that the three steps all straddle; measured 1-2 of 63
 * for ResNet-18, 4-7 of 63 for ResNet-50), and at most half may be skipped
 * (measured 2-4 and 16-21 of 63). No bound on the worst probe: a kink right
 * at the operating point moves one probe by up to ~100 %. A wiring bug (a
 * missing residual gradient, a wrong stride or BN cache) moves most probes
 * by O(1), which the median catches. The exact comparison of every
 * gradient is torch-crosscheck.py's (float64 PyTorch reference, 1e-4). */
void
fd_probe (FdLossFunc loss, void *ctx, float *v, double an, double eps,
    const char *what, FdStats *st)
{
  int any_smooth = 0, agrees = 0;
  double best = INFINITY, best_fd = 0, first_fd = 0;
  st->probes++;
  for (int k = 0; k < 3 && !agrees; k++, eps /= 3) {
    double c1 = central (loss, ctx, v, eps);
    double c2 = central (loss, ctx, v, eps / 2);
    double c4 = central (loss, ctx, v, eps / 4);
    double r1 = (4 * c2 - c1) / 3, r2 = (4 * c4 - c2) / 3;
    double scale = fmax (fabs (r2), fabs (an));
    double tol = 1e-2 * scale + 1e-4;
    int kink = fabs (r1 - r2) > tol;
    if (g_getenv ("SIMCLR_TEST_VERBOSE"))
      g_printerr ("%s %s h=%.2g an %.6g fd %.6g (%.6g)\n",
          kink ? "KINK" : fabs (r2 - an) > tol ? "DIFF" : "ok", what, eps, an,
          r2, r1);
    if (kink)
      continue;
    if (!any_smooth)
      first_fd = r2;
    any_smooth = 1;
    double rel = fabs (r2 - an) / (scale + 1e-4);
    if (rel < best) {
      best = rel;
      best_fd = r2;
    }
    agrees = fabs (r2 - an) <= tol;
  }
  if (!any_smooth) {
    st->skipped++;
    return;
  }
  g_assert_cmpint (st->n_rel, <, FD_MAX_PROBES);
  st->rel[st->n_rel++] = best;
  if (best > st->worst)
    st->worst = best;
  if (!agrees) {
    if (!st->failed)
      g_printerr ("# first probe out of tolerance: %s analytic %.6g "
          "finite-diff %.6g (relative error %.3g; first smooth step: "
          "%.6g)\n", what, an, best_fd, best, first_fd);
    st->failed++;
  }
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

void
fd_stats_assert (FdStats *st, const char *label)
{
  qsort (st->rel, st->n_rel, sizeof (double), cmp_double);
  double median = st->n_rel ? st->rel[st->n_rel / 2] : 1;
  g_printerr ("# %s: %d probes, %d skipped (kinks), %d failed; relative "
      "error median %.2g, worst %.2g\n", label, st->probes, st->skipped,
      st->failed, median, st->worst);
  g_assert_cmpint (st->failed * 5, <=, st->probes);
  g_assert_cmpint (st->skipped * 2, <=, st->probes);
  g_assert_cmpfloat (median, <, 5e-3);
}
