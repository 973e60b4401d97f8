/* test-linclf.c: linear evaluation: standardisation, the logistic-regression
 * objective and gradient against a double-precision naive twin written here
 * (finite differences on it), L-BFGS against slow naive gradient descent,
 * separable data, top-1/top-5 by hand, lambda selection, and kNN votes by
 * hand. */
#include <math.h>
#include <string.h>
#include <glib.h>

#include "simclr/linclf.h"
#include "simclr/rng.h"

/* ---------------------------------------------------------------------------
 * Naive objective in double: z_i = x_i W + b,
 *   f = 1/n sum_i (log sum_c exp z_ic - z_{i,y_i}) + lambda/2 ||W||^2,
 *   df/dz_ic = (softmax (z_i)_c - [c == y_i]) / n.
 * w: W (D, C) row-major then b (C). grad may be NULL.
 */
static double
naive_objective (const double *w, const double *x, const int *y, int n, int D,
    int C, double lambda, double *grad)
{
  const double *b = w + D * C;
  double f = 0.0;
  double *z = g_new (double, C);

  if (grad)
    memset (grad, 0, (size_t) (D * C + C) * sizeof (double));
  for (int i = 0; i < n; i++) {
    double m = -INFINITY, s = 0.0;
    for (int c = 0; c < C; c++) {
      z[c] = b[c];
      for (int j = 0; j < D; j++)
        z[c] += x[i * D + j] * w[j * C + c];
      m = fmax (m, z[c]);
    }
    for (int c = 0; c < C; c++)
      s += exp (z[c] - m);
    f += m + log (s) - z[y[i]];
    if (grad) {
      for (int c = 0; c < C; c++) {
        double g = (exp (z[c] - m) / s - (c == y[i])) / n;
        grad[D * C + c] += g;
        for (int j = 0; j < D; j++)
          grad[j * C + c] += x[i * D + j] * g;
      }
    }
  }
  f /= n;
  for (int j = 0; j < D * C; j++) {
    f += 0.5 * lambda * w[j] * w[j];
    if (grad)
      grad[j] += lambda * w[j];
  }
  g_free (z);
  return f;
}

/* Gaussian blobs: class c has mean `sep` along axis c mod D (sign by c / D),
 * noise 1; labels cycle so every class is present. */
static void
make_blobs (float *x, int *y, int n, int D, int C, double sep, uint64_t seed)
{
  for (int i = 0; i < n; i++) {
    int c = i % C;
    y[i] = c;
    for (int j = 0; j < D; j++) {
      double mu = (j == c % D) ? ((c / D) % 2 ? -sep : sep) : 0.0;
      x[i * D + j] = (float) (mu + simclr_rng_normal (seed, i, j));
    }
  }
}

static double
max_abs_diff (const float *a, const double *b, int n, int *where)
{
  double m = 0.0;
  for (int j = 0; j < n; j++)
    if (fabs (a[j] - b[j]) > m) {
      m = fabs (a[j] - b[j]);
      *where = j;
    }
  return m;
}

/* ---------------------------------------------------------------------------
 * Standardisation
 */
static void
test_standardize (void)
{
  /* Feature 0: 1, 2, 3, 6 -> mean 3, population variance (4+1+0+9)/4 = 3.5.
   * Feature 1: constant 7 -> std 1, becomes 0. Feature 2 far from 0: 1e4 +
   * {-1, 1, -1, 1} -> mean 1e4, std 1 (a one-pass E[x^2]-E[x]^2 in float
   * would lose it). */
  float x[4 * 3] = {
    1, 7, 9999, 2, 7, 10001, 3, 7, 9999, 6, 7, 10001,
  };
  float mean[3], std[3];
  SimclrError err = { 0 };

  g_assert_cmpint (simclr_linclf_standardize_fit (x, 4, 3, mean, std, &err),
      ==, SIMCLR_OK);
  g_assert_cmpfloat_with_epsilon (mean[0], 3.0, 1e-6);
  g_assert_cmpfloat_with_epsilon (std[0], sqrt (3.5), 1e-6);
  g_assert_cmpfloat_with_epsilon (mean[1], 7.0, 1e-6);
  g_assert_cmpfloat (std[1], ==, 1.0f);
  g_assert_cmpfloat_with_epsilon (mean[2], 1e4, 1e-3);
  g_assert_cmpfloat_with_epsilon (std[2], 1.0, 1e-6);
  simclr_linclf_standardize_apply (x, 4, 3, mean, std);
  g_assert_cmpfloat_with_epsilon (x[0], -2.0 / sqrt (3.5), 1e-6);
  g_assert_cmpfloat (x[1], ==, 0.0f);
  g_assert_cmpfloat_with_epsilon (x[5], 1.0, 1e-6);

  x[4] = NAN;
  g_assert_cmpint (simclr_linclf_standardize_fit (x, 4, 3, mean, std, &err),
      ==, SIMCLR_ERROR_NUMERIC);
  g_assert_nonnull (strstr (err.message, "feature 1"));
}

/* ---------------------------------------------------------------------------
 * Objective and gradient: the C objective at random parameters against the
 * naive twin, and the naive twin's gradient against its own central
 * differences (so both the twin and, through it, the C gradient are
 * checked). Several sizes; n = 300 crosses the 256-row block boundary.
 */
typedef struct {
  int n, D, C;
  double lambda;
} ObjCase;

static const ObjCase obj_cases[] = {
  { 7, 3, 2, 0.0 },
  { 37, 6, 4, 0.3 },
  { 300, 20, 10, 1e-3 },
};

static void
test_objective (gconstpointer data)
{
  const ObjCase *oc = data;
  const int n = oc->n, D = oc->D, C = oc->C, P = D * C + C;
  float *x = g_new (float, n * D), *gf = g_new (float, P);
  double *xd = g_new (double, n * D), *w = g_new (double, P);
  double *gd = g_new (double, P);
  int *y = g_new (int, n);
  SimclrError err = { 0 };
  SimclrLinclf *clf = simclr_linclf_new (D, C, &err);
  float *params;
  size_t np;
  double loss, ref, gmax = 0.0, worst = 0.0;
  int where = 0;

  g_assert_nonnull (clf);
  params = simclr_linclf_params (clf, &np);
  g_assert_cmpuint (np, ==, (guint) P);
  make_blobs (x, y, n, D, C, 1.0, 11);
  for (int j = 0; j < n * D; j++)
    xd[j] = x[j];
  for (int j = 0; j < P; j++) {
    params[j] = (float) (0.5 * simclr_rng_normal (12, 0, j));
    w[j] = params[j];
  }

  g_assert_cmpint (simclr_linclf_objective (clf, x, y, n, oc->lambda, &loss,
          gf, &err), ==, SIMCLR_OK);
  ref = naive_objective (w, xd, y, n, D, C, oc->lambda, gd);
  if (fabs (loss - ref) > 1e-6 * fabs (ref))
    g_error ("n %d D %d C %d: loss %.9g, naive %.9g", n, D, C, loss, ref);
  for (int j = 0; j < P; j++)
    gmax = fmax (gmax, fabs (gd[j]));
  if (max_abs_diff (gf, gd, P, &where) > 1e-5 * gmax)
    g_error ("n %d D %d C %d: grad[%d] = %.9g, naive %.9g", n, D, C, where,
        (double) gf[where], gd[where]);

  /* Central differences of the naive objective, every parameter. */
  for (int j = 0; j < P; j++) {
    const double h = 1e-6;
    double keep = w[j], fp, fm, fd;
    w[j] = keep + h;
    fp = naive_objective (w, xd, y, n, D, C, oc->lambda, NULL);
    w[j] = keep - h;
    fm = naive_objective (w, xd, y, n, D, C, oc->lambda, NULL);
    w[j] = keep;
    fd = (fp - fm) / (2 * h);
    worst = fmax (worst, fabs (fd - gd[j]) / gmax);
    if (fabs (fd - gf[j]) > 2e-5 * gmax)
      g_error ("n %d D %d C %d: grad[%d] = %.9g, finite difference %.9g", n,
          D, C, j, (double) gf[j], fd);
  }
  g_assert_cmpfloat (worst, <, 1e-7);

  simclr_linclf_free (clf);
  g_free (x);
  g_free (gf);
  g_free (xd);
  g_free (w);
  g_free (gd);
  g_free (y);
}

/* ---------------------------------------------------------------------------
 * L-BFGS against slow naive gradient descent to convergence, on a small
 * overlapping problem (a finite optimum even with small lambda).
 */
static void
test_optimum_vs_naive_descent (void)
{
  const int n = 60, D = 3, C = 3, P = D * C + C;
  const double lambda = 0.05;
  float x[60 * 3];
  double xd[60 * 3], w[12] = { 0 }, g[12], gc[12], wc[12];
  int y[60];
  SimclrLinclfConfig cfg;
  SimclrLinclfReport rep;
  SimclrError err = { 0 };
  SimclrLinclf *clf = simclr_linclf_new (D, C, &err);
  float *params = simclr_linclf_params (clf, NULL);
  double f = 0.0, fc, gnorm = 1.0, step;
  int it;

  make_blobs (x, y, n, D, C, 1.0, 21);
  for (int j = 0; j < n * D; j++)
    xd[j] = x[j];

  /* Gradient descent with step 1/L, L = max row norm^2 / 2 + lambda bounds
   * the Hessian's largest eigenvalue (softmax curvature <= 1/2 per row). */
  {
    double r2 = 0.0;
    for (int i = 0; i < n; i++) {
      double s = 1.0;            /* the bias column */
      for (int j = 0; j < D; j++)
        s += xd[i * D + j] * xd[i * D + j];
      r2 = fmax (r2, s);
    }
    step = 1.0 / (0.5 * r2 + lambda);
  }
  for (it = 0; it < 200000 && gnorm > 1e-11; it++) {
    f = naive_objective (w, xd, y, n, D, C, lambda, g);
    gnorm = 0.0;
    for (int j = 0; j < P; j++) {
      gnorm = fmax (gnorm, fabs (g[j]));
      w[j] -= step * g[j];
    }
  }
  g_assert_cmpfloat (gnorm, <=, 1e-11);
  g_test_message ("naive descent: %d iterations, f %.12f", it, f);

  simclr_linclf_config_default (&cfg);
  cfg.lambda = lambda;
  cfg.grad_tol = 1e-6;
  g_assert_cmpint (simclr_linclf_train (clf, x, y, n, &cfg, &rep, &err), ==,
      SIMCLR_OK);
  g_test_message ("L-BFGS: %d iterations, %d evaluations, f %.12f, grad %.2e",
      rep.iterations, rep.evaluations, rep.loss, rep.grad_max);
  g_assert_true (rep.converged);
  g_assert_cmpint (rep.iterations, <, 100);
  for (int j = 0; j < P; j++)
    wc[j] = params[j];
  /* The naive gradient at the C optimum is ~0, and the objective agrees. */
  fc = naive_objective (wc, xd, y, n, D, C, lambda, gc);
  for (int j = 0; j < P; j++)
    if (fabs (gc[j]) > 1e-5)
      g_error ("naive gradient at the L-BFGS optimum: g[%d] = %g", j, gc[j]);
  if (fabs (fc - f) > 1e-9 * f)
    g_error ("L-BFGS objective %.12g, naive descent %.12g", fc, f);
  /* Strong convexity (lambda) makes the minimiser unique: parameters agree
   * within ~ gradient / lambda. */
  for (int j = 0; j < D * C; j++)
    if (fabs (wc[j] - w[j]) > 1e-3)
      g_error ("W[%d]: L-BFGS %.9g, naive descent %.9g", j, wc[j], w[j]);
  simclr_linclf_free (clf);
}

/* ---------------------------------------------------------------------------
 * Separable data: far blobs, standardised, small lambda: 100% on fresh data.
 */
static void
test_separable (void)
{
  const int n = 600, D = 8, C = 5;
  float *x = g_new (float, n * D), *xt = g_new (float, n * D);
  int *y = g_new (int, n), *yt = g_new (int, n), *pred = g_new (int, n);
  float mean[8], std[8];
  SimclrLinclfConfig cfg;
  SimclrLinclfReport rep;
  SimclrError err = { 0 };
  SimclrLinclf *clf = simclr_linclf_new (D, C, &err);
  double top1 = 0, top5 = 0;

  make_blobs (x, y, n, D, C, 12.0, 31);
  make_blobs (xt, yt, n, D, C, 12.0, 32);
  g_assert_cmpint (simclr_linclf_standardize_fit (x, n, D, mean, std, &err),
      ==, SIMCLR_OK);
  simclr_linclf_standardize_apply (x, n, D, mean, std);
  simclr_linclf_standardize_apply (xt, n, D, mean, std);
  simclr_linclf_config_default (&cfg);
  g_assert_cmpint (simclr_linclf_train (clf, x, y, n, &cfg, &rep, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_linclf_evaluate (clf, x, y, n, NULL, &top1, &top5,
          &err), ==, SIMCLR_OK);
  g_assert_cmpfloat (top1, ==, 1.0);
  g_assert_cmpint (simclr_linclf_evaluate (clf, xt, yt, n, pred, &top1, &top5,
          &err), ==, SIMCLR_OK);
  g_assert_cmpfloat (top1, ==, 1.0);
  g_assert_cmpfloat (top5, ==, 1.0);
  for (int i = 0; i < n; i++)
    g_assert_cmpint (pred[i], ==, yt[i]);
  simclr_linclf_free (clf);
  g_free (x);
  g_free (xt);
  g_free (y);
  g_free (yt);
  g_free (pred);
}

/* ---------------------------------------------------------------------------
 * top-1 / top-5 by hand: W = I (6 x 7 padded with a zero column), b = 0, so
 * the logits are the features themselves (class 6 always scores 0).
 *   row 0: scores 5 4 3 2 1 0.5 | 0, label 0 -> rank 0 (top-1, top-5)
 *   row 1: same scores, label 4 -> rank 4 (top-5 only)
 *   row 2: same scores, label 5 -> rank 5 (neither)
 *   row 3: scores 1 1 0 0 0 0 | 0, label 1 -> tie with class 0: rank 0, but
 *          the prediction is class 0 (the lower index)
 *   -> top-1 2/4, top-5 3/4.
 */
static void
test_topk_by_hand (void)
{
  const int D = 6, C = 7;
  const float x[4 * 6] = {
    5, 4, 3, 2, 1, 0.5f,
    5, 4, 3, 2, 1, 0.5f,
    5, 4, 3, 2, 1, 0.5f,
    1, 1, 0, 0, 0, 0,
  };
  const int y[4] = { 0, 4, 5, 1 };
  int pred[4];
  double top1, top5;
  SimclrLinclf *clf = simclr_linclf_new (D, C, NULL);
  float *W = simclr_linclf_params (clf, NULL);

  for (int j = 0; j < D; j++)
    W[j * C + j] = 1.0f;
  g_assert_cmpint (simclr_linclf_evaluate (clf, x, y, 4, pred, &top1, &top5,
          NULL), ==, SIMCLR_OK);
  g_assert_cmpfloat (top1, ==, 0.5);
  g_assert_cmpfloat (top5, ==, 0.75);
  g_assert_cmpint (pred[0], ==, 0);
  g_assert_cmpint (pred[3], ==, 0);
  simclr_linclf_free (clf);
}

/* ---------------------------------------------------------------------------
 * Lambda selection: a few informative features among many noise features
 * with few rows, so weak regularisation overfits. Rows are sorted by class
 * (the hashed split must still hold out every class). The result must be a
 * grid value, and the final fit the optimum on all rows for it.
 */
static void
test_select_lambda (void)
{
  const int n = 200, D = 40, C = 4;
  float *x = g_new (float, n * D), *g = g_new (float, D * C + C);
  int *y = g_new (int, n);
  const double grid[] = { 1e-4, 1e-2, 1.0, 1e-3, 1e-1 };
  SimclrLinclfConfig cfg;
  SimclrLinclfReport rep;
  SimclrError err = { 0 };
  SimclrLinclf *clf = simclr_linclf_new (D, C, &err);
  double best = -1, acc = -1, loss, gmax = 0;
  gboolean in_grid = FALSE;

  for (int i = 0; i < n; i++) {
    int c = i * C / n;           /* sorted by class */
    y[i] = c;
    for (int j = 0; j < D; j++)
      x[i * D + j] = (float) ((j == c ? 2.0 : 0.0) + simclr_rng_normal (41, i, j));
  }
  simclr_linclf_config_default (&cfg);
  g_assert_cmpint (simclr_linclf_select_lambda (clf, x, y, n, grid, 5, 0.25,
          &cfg, &best, &acc, &rep, &err), ==, SIMCLR_OK);
  for (int q = 0; q < 5; q++)
    in_grid |= best == grid[q];
  g_assert_true (in_grid);
  g_test_message ("best lambda %g, held-out top-1 %.3f", best, acc);
  /* Four balanced classes: chance is 0.25; the informative features give
   * far more. */
  g_assert_cmpfloat (acc, >, 0.5);
  g_assert_cmpfloat (acc, <=, 1.0);
  g_assert_true (rep.converged);
  g_assert_cmpint (simclr_linclf_objective (clf, x, y, n, best, &loss, g,
          &err), ==, SIMCLR_OK);
  for (int j = 0; j < D * C + C; j++)
    gmax = fmax (gmax, fabs (g[j]));
  g_assert_cmpfloat (gmax, <, 1e-4);

  /* select_max_iter caps only the comparison fits: with 1 iteration each,
   * the refit still runs to convergence (it starts from a poor point, so it
   * needs more than one iteration); with max_iter 1 the refit stops after
   * one iteration whatever select_max_iter is. */
  simclr_linclf_free (clf);
  clf = simclr_linclf_new (D, C, &err);
  cfg.select_max_iter = 1;
  g_assert_cmpint (simclr_linclf_select_lambda (clf, x, y, n, grid, 5, 0.25,
          &cfg, &best, &acc, &rep, &err), ==, SIMCLR_OK);
  g_test_message ("select_max_iter 1: lambda %g, refit %d iterations, "
      "converged %d", best, rep.iterations, rep.converged);
  g_assert_true (rep.converged);
  g_assert_cmpint (rep.iterations, >, 1);
  cfg.select_max_iter = 500;
  cfg.max_iter = 1;
  g_assert_cmpint (simclr_linclf_select_lambda (clf, x, y, n, grid, 5, 0.25,
          &cfg, &best, &acc, &rep, &err), ==, SIMCLR_OK);
  g_assert_cmpint (rep.iterations, ==, 1);
  simclr_linclf_config_default (&cfg);

  /* Bad arguments. */
  cfg.select_max_iter = -1;
  g_assert_cmpint (simclr_linclf_select_lambda (clf, x, y, n, grid, 5, 0.25,
          &cfg, NULL, NULL, NULL, &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "select_max_iter"));
  cfg.select_max_iter = 0;
  g_assert_cmpint (simclr_linclf_select_lambda (clf, x, y, n, grid, 5, 1.0,
          &cfg, NULL, NULL, NULL, &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_linclf_select_lambda (clf, x, y, n, grid, 0, 0.1,
          &cfg, NULL, NULL, NULL, &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_free (x);
  g_free (g);
  g_free (y);
  simclr_linclf_free (clf);
}

/* ---------------------------------------------------------------------------
 * kNN by hand. Training rows in a plane (lengths vary; cosine ignores them):
 *   row 0: angle  0 deg, class 0
 *   row 1: angle 30 deg, class 1     cos 30 = 0.8660
 *   row 2: angle 40 deg, class 1     cos 40 = 0.7660
 *   row 3: angle 90 deg, class 2     cos 90 = 0
 * Test row at 0 deg, k = 3 (rows 0, 1, 2):
 *   T = 0.1: class 0: e^{10} = 22026; class 1: e^{8.660} + e^{7.660}
 *            = 5768 + 2122 = 7890 -> class 0
 *   T = 1:   class 0: e^1 = 2.718; class 1: e^{0.866} + e^{0.766}
 *            = 2.377 + 2.151 = 4.529 -> class 1
 *   k = 1: class 0 whatever T. k = 4 adds class 2 with e^0 = 1 (T = 1):
 *            still class 1, and class 2 then ranks third.
 * A second test row at 85 deg, label 2: k = 1 -> row 3 (class 2).
 */
static void
test_knn_by_hand (void)
{
  static const double deg[4] = { 0, 30, 40, 90 };
  static const int ytr[4] = { 0, 1, 1, 2 };
  float tr[4 * 2], te[2 * 2];
  int yte[2] = { 0, 2 }, pred[2];
  double top1, top5;
  SimclrError err = { 0 };

  for (int i = 0; i < 4; i++) {
    tr[i * 2] = (float) ((1 + i) * cos (deg[i] * G_PI / 180));
    tr[i * 2 + 1] = (float) ((1 + i) * sin (deg[i] * G_PI / 180));
  }
  te[0] = 3.0f;
  te[1] = 0.0f;
  te[2] = (float) (0.5 * cos (85 * G_PI / 180));
  te[3] = (float) (0.5 * sin (85 * G_PI / 180));

  g_assert_cmpint (simclr_knn_classify (tr, ytr, 4, te, yte, 2, 2, 3, 3, 0.1,
          pred, &top1, &top5, &err), ==, SIMCLR_OK);
  g_assert_cmpint (pred[0], ==, 0);
  /* Row 2 (85 deg), k = 3: rows 3 (cos 5 = .996), 2 (cos 45 = .707),
   * 1 (cos 55 = .574): class 2 e^{9.96} = 21170 beats class 1 e^{7.07} +
   * e^{5.74} = 1176 + 311. */
  g_assert_cmpint (pred[1], ==, 2);
  g_assert_cmpfloat (top1, ==, 1.0);

  g_assert_cmpint (simclr_knn_classify (tr, ytr, 4, te, yte, 2, 2, 3, 3, 1.0,
          pred, &top1, &top5, &err), ==, SIMCLR_OK);
  g_assert_cmpint (pred[0], ==, 1);
  /* Row 2 at T = 1: class 2 e^{.996} = 2.71; class 1 e^{.707} + e^{.574}
   * = 2.03 + 1.78 = 3.80 -> class 1. */
  g_assert_cmpint (pred[1], ==, 1);
  g_assert_cmpfloat (top1, ==, 0.0);
  g_assert_cmpfloat (top5, ==, 1.0);

  g_assert_cmpint (simclr_knn_classify (tr, ytr, 4, te, yte, 2, 2, 3, 1, 1.0,
          pred, &top1, NULL, &err), ==, SIMCLR_OK);
  g_assert_cmpint (pred[0], ==, 0);
  g_assert_cmpint (pred[1], ==, 2);
  g_assert_cmpfloat (top1, ==, 1.0);

  /* k beyond the training set is clamped (all 4 vote). */
  g_assert_cmpint (simclr_knn_classify (tr, ytr, 4, te, NULL, 2, 2, 3, 200,
          1.0, pred, NULL, NULL, &err), ==, SIMCLR_OK);
  g_assert_cmpint (pred[0], ==, 1);

  /* Labels without a vote are not top-5: k = 1, test 0 labelled 2. */
  yte[0] = 2;
  g_assert_cmpint (simclr_knn_classify (tr, ytr, 4, te, yte, 2, 2, 3, 1, 1.0,
          NULL, &top1, &top5, &err), ==, SIMCLR_OK);
  g_assert_cmpfloat (top5, ==, 0.5);

  /* Rejections. */
  g_assert_cmpint (simclr_knn_classify (tr, ytr, 4, te, NULL, 2, 2, 3, 0, 1.0,
          pred, NULL, NULL, &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_knn_classify (tr, ytr, 4, te, NULL, 2, 2, 3, 3, 0.0,
          pred, NULL, NULL, &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "temperature"));
  g_assert_cmpint (simclr_knn_classify (tr, ytr, 4, te, NULL, 2, 2, 2, 3, 1.0,
          pred, NULL, NULL, &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "label[3] = 2"));
  te[1] = NAN;
  g_assert_cmpint (simclr_knn_classify (tr, ytr, 4, te, NULL, 2, 2, 3, 3, 1.0,
          pred, NULL, NULL, &err), ==, SIMCLR_ERROR_NUMERIC);
}

/* kNN on blobs against a brute-force reference (full sort by similarity):
 * crosses the 64-row test block and uses the default k and T. */
static int
cmp_sim_desc (const void *a, const void *b)
{
  const double *x = a, *y = b;
  return (x[0] < y[0]) - (x[0] > y[0]);
}

static void
test_knn_vs_brute_force (void)
{
  const int ntr = 500, nte = 150, D = 6, C = 4, k = SIMCLR_KNN_DEFAULT_K;
  const double T = SIMCLR_KNN_DEFAULT_TEMPERATURE;
  float *tr = g_new (float, ntr * D), *te = g_new (float, nte * D);
  int *ytr = g_new (int, ntr), *yte = g_new (int, nte), *pred = g_new (int, nte);
  double *pairs = g_new (double, 2 * ntr);
  double top1, hits = 0;
  SimclrError err = { 0 };

  make_blobs (tr, ytr, ntr, D, C, 1.0, 51);
  make_blobs (te, yte, nte, D, C, 1.0, 52);
  g_assert_cmpint (simclr_knn_classify (tr, ytr, ntr, te, yte, nte, D, C, k,
          T, pred, &top1, NULL, &err), ==, SIMCLR_OK);
  for (int i = 0; i < nte; i++) {
    double votes[4] = { 0 }, na = 0;
    int best = 0;
    for (int c = 0; c < D; c++)
      na += (double) te[i * D + c] * te[i * D + c];
    for (int j = 0; j < ntr; j++) {
      double dp = 0, nb = 0;
      for (int c = 0; c < D; c++) {
        dp += (double) te[i * D + c] * tr[j * D + c];
        nb += (double) tr[j * D + c] * tr[j * D + c];
      }
      pairs[2 * j] = dp / sqrt (na * nb);
      pairs[2 * j + 1] = ytr[j];
    }
    qsort (pairs, ntr, 2 * sizeof (double), cmp_sim_desc);
    for (int q = 0; q < k; q++)
      votes[(int) pairs[2 * q + 1]] += exp (pairs[2 * q] / T);
    for (int c = 1; c < C; c++)
      if (votes[c] > votes[best])
        best = c;
    if (pred[i] != best)
      g_error ("test row %d: knn predicts %d, brute force %d (votes %g %g %g "
          "%g)", i, pred[i], best, votes[0], votes[1], votes[2], votes[3]);
    hits += best == yte[i];
  }
  g_assert_cmpfloat (top1, ==, hits / nte);
  g_test_message ("knn top-1 on blobs: %.3f", top1);
  g_free (tr);
  g_free (te);
  g_free (ytr);
  g_free (yte);
  g_free (pred);
  g_free (pairs);
}

/* ---------------------------------------------------------------------------
 * Rejections of the regression API.
 */
static void
test_linclf_rejects (void)
{
  SimclrError err = { 0 };
  SimclrLinclfConfig cfg;
  SimclrLinclf *clf;
  float x[3 * 2] = { 1, 2, 3, 4, 5, 6 };
  int y[3] = { 0, 1, 3 };
  double loss;

  g_assert_null (simclr_linclf_new (0, 3, &err));
  g_assert_cmpint (err.status, ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_null (simclr_linclf_new (4, 1, &err));
  simclr_linclf_free (NULL);
  clf = simclr_linclf_new (2, 3, &err);
  simclr_linclf_config_default (&cfg);
  g_assert_cmpint (simclr_linclf_train (clf, x, y, 3, &cfg, NULL, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "label[2] = 3"));
  y[2] = 2;
  g_assert_cmpint (simclr_linclf_train (clf, x, y, 0, &cfg, NULL, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  cfg.lambda = -1;
  g_assert_cmpint (simclr_linclf_train (clf, x, y, 3, &cfg, NULL, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  x[3] = INFINITY;
  simclr_linclf_params (clf, NULL)[2] = 1.0f;
  g_assert_cmpint (simclr_linclf_objective (clf, x, y, 3, 0.1, &loss, NULL,
          &err), ==, SIMCLR_ERROR_NUMERIC);
  simclr_linclf_free (clf);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/linclf/standardize", test_standardize);
  for (unsigned i = 0; i < G_N_ELEMENTS (obj_cases); i++) {
    char *name = g_strdup_printf ("/linclf/objective/n%d-D%d-C%d",
        obj_cases[i].n, obj_cases[i].D, obj_cases[i].C);
    g_test_add_data_func (name, &obj_cases[i], test_objective);
    g_free (name);
  }
  g_test_add_func ("/linclf/optimum-vs-naive-descent",
      test_optimum_vs_naive_descent);
  g_test_add_func ("/linclf/separable", test_separable);
  g_test_add_func ("/linclf/topk-by-hand", test_topk_by_hand);
  g_test_add_func ("/linclf/select-lambda", test_select_lambda);
  g_test_add_func ("/linclf/knn-by-hand", test_knn_by_hand);
  g_test_add_func ("/linclf/knn-vs-brute-force", test_knn_vs_brute_force);
  g_test_add_func ("/linclf/rejects", test_linclf_rejects);
  return g_test_run ();
}
