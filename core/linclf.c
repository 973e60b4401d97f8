/* linclf.c: linear evaluation on frozen features: standardisation,
 * multinomial logistic regression trained by L-BFGS, and weighted kNN
 * (see include/simclr/linclf.h).
 *
 * Not here: feature extraction (the model does it) or data loading. The
 * heavy work is BLAS: X W and X^T G per block of rows for the regression,
 * test-block x train^T for kNN; everything else is O(n * classes).
 */
#include "simclr/linclf.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "simclr/rng.h"

/* Rows per block of the objective: 256 rows of a 512-wide feature are 512 KiB,
 * so the block of X read by X W is still in cache for X^T G. */
#define LINCLF_BLOCK_ROWS 256
/* Classes whose exps the objective keeps on the stack (more: recomputed). */
#define LINCLF_MAX_CLASSES_STACK 128
/* Test rows per kNN block: 64 x 60000 similarities are 15 MiB. */
#define KNN_BLOCK_ROWS 64

struct SimclrLinclf {
  int dim, classes;
  size_t n_params;
  float *params;     /* W (dim, classes) row-major, then b (classes) */
};

/* ---------------------------------------------------------------------------
 * Standardisation
 */
SimclrStatus
simclr_linclf_standardize_fit (const float *x, int n, int dim, float *mean,
    float *std, SimclrError *err)
{
  double *sum, *sumsq;

  if (!x || !mean || !std || n <= 0 || dim <= 0)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "linclf: standardize needs n > 0 (got %d) rows of dim > 0 (got %d)",
        n, dim);
  sum = calloc ((size_t) dim, sizeof (double));
  sumsq = calloc ((size_t) dim, sizeof (double));
  if (!sum || !sumsq) {
    free (sum);
    free (sumsq);
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "linclf: standardize of dim %d", dim);
  }
  /* Two passes (mean, then squared deviations) avoid the cancellation of
   * E[x^2] - E[x]^2 on features far from 0. */
  for (int i = 0; i < n; i++) {
    const float *xi = x + (size_t) i * dim;
    for (int c = 0; c < dim; c++)
      sum[c] += xi[c];
  }
  for (int c = 0; c < dim; c++)
    sum[c] /= n;
  for (int i = 0; i < n; i++) {
    const float *xi = x + (size_t) i * dim;
    for (int c = 0; c < dim; c++) {
      double d = xi[c] - sum[c];
      sumsq[c] += d * d;
    }
  }
  for (int c = 0; c < dim; c++) {
    double sd = sqrt (sumsq[c] / n);
    if (!isfinite (sd) || !isfinite (sum[c])) {
      free (sum);
      free (sumsq);
      return simclr_error_set (err, SIMCLR_ERROR_NUMERIC,
          "linclf: feature %d of %d x %d is not finite", c, n, dim);
    }
    mean[c] = (float) sum[c];
    std[c] = sd < 1e-12 ? 1.0f : (float) sd;
  }
  free (sum);
  free (sumsq);
  return SIMCLR_OK;
}

void
simclr_linclf_standardize_apply (float *x, int n, int dim, const float *mean,
    const float *std)
{
  if (!x || !mean || !std)
    return;
  for (int i = 0; i < n; i++) {
    float *xi = x + (size_t) i * dim;
    for (int c = 0; c < dim; c++)
      xi[c] = (xi[c] - mean[c]) / std[c];
  }
}

/* ---------------------------------------------------------------------------
 * Logistic regression
 */
void
simclr_linclf_config_default (SimclrLinclfConfig *cfg)
{
  if (!cfg)
    return;
  cfg->lambda = 1e-4;
  cfg->max_iter = 500;
  cfg->grad_tol = 1e-5;
  cfg->history = 10;
  cfg->seed = 0;
  cfg->select_max_iter = 0;
}

SimclrLinclf *
simclr_linclf_new (int dim, int classes, SimclrError *err)
{
  SimclrLinclf *clf;

  if (dim <= 0 || classes < 2 || (size_t) dim * classes > ((size_t) 1 << 31)) {
    simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "linclf: dim %d and classes %d must be > 0 and >= 2", dim, classes);
    return NULL;
  }
  clf = calloc (1, sizeof *clf);
  if (clf) {
    clf->dim = dim;
    clf->classes = classes;
    clf->n_params = (size_t) dim * classes + classes;
    clf->params = calloc (clf->n_params, sizeof (float));
  }
  if (!clf || !clf->params) {
    simclr_linclf_free (clf);
    simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "linclf: parameters of %d x %d", dim, classes);
    return NULL;
  }
  return clf;
}

void
simclr_linclf_free (SimclrLinclf *clf)
{
  if (!clf)
    return;
  free (clf->params);
  free (clf);
}

float *
simclr_linclf_params (SimclrLinclf *clf, size_t *n_params)
{
  if (!clf)
    return NULL;
  if (n_params)
    *n_params = clf->n_params;
  return clf->params;
}

static SimclrStatus
check_data (const SimclrLinclf *clf, const float *x, const int *labels, int n,
    const char *what, SimclrError *err)
{
  if (!clf || !x || n <= 0)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "linclf: %s needs a classifier and n > 0 rows (got %d)", what, n);
  if (labels) {
    for (int i = 0; i < n; i++)
      if (labels[i] < 0 || labels[i] >= clf->classes)
        return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
            "linclf: %s: label[%d] = %d is outside [0, %d)", what, i,
            labels[i], clf->classes);
  }
  return SIMCLR_OK;
}

/* logits (bn, C) = X_blk (bn, D) W (D, C) + b: M = bn, N = C, K = D. */
static void
block_logits (float *logits, const float *xb, int bn, const float *params,
    int D, int C)
{
  const float *b = params + (size_t) D * C;
  for (int i = 0; i < bn; i++)
    memcpy (logits + (size_t) i * C, b, (size_t) C * sizeof (float));
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, bn, C, D, 1.0f, xb,
      D, params, C, 1.0f, logits, C);
}

/* The objective at clf->params; grad (n_params, double) unless NULL.
 * scratch: 2 * LINCLF_BLOCK_ROWS * C + D * C floats. */
static SimclrStatus
objective (const SimclrLinclf *clf, const float *x, const int *labels, int n,
    double lambda, double *loss, double *grad, float *scratch,
    SimclrError *err)
{
  const int D = clf->dim, C = clf->classes;
  const float *W = clf->params;
  float *logits = scratch;                          /* (BLK, C) */
  float *G = scratch + LINCLF_BLOCK_ROWS * C;       /* (BLK, C) */
  float *gW = G + LINCLF_BLOCK_ROWS * C;            /* (D, C) */
  double ce = 0.0, reg = 0.0;

  if (grad)
    memset (grad, 0, clf->n_params * sizeof (double));
  for (int r0 = 0; r0 < n; r0 += LINCLF_BLOCK_ROWS) {
    const int bn = n - r0 < LINCLF_BLOCK_ROWS ? n - r0 : LINCLF_BLOCK_ROWS;
    const float *xb = x + (size_t) r0 * D;
    block_logits (logits, xb, bn, clf->params, D, C);
    for (int i = 0; i < bn; i++) {
      const float *li = logits + (size_t) i * C;
      float *gi = G + (size_t) i * C;
      const int y = labels[r0 + i];
      double m = li[0], sum = 0.0, e[LINCLF_MAX_CLASSES_STACK];
      double *ex = C <= LINCLF_MAX_CLASSES_STACK ? e : NULL;
      /* Shift by the row's largest logit before exp so no term overflows and
       * the largest is exactly 1 (llm.c softmax). Each exp is computed once
       * and kept for the gradient: the exps cost about as much as the
       * products when there are 10 classes. */
      for (int c = 1; c < C; c++)
        m = li[c] > m ? li[c] : m;
      for (int c = 0; c < C; c++) {
        double v = exp (li[c] - m);
        if (ex)
          ex[c] = v;
        sum += v;
      }
      ce += m + log (sum) - li[y];
      if (grad) {
        for (int c = 0; c < C; c++) {
          double p = (ex ? ex[c] : exp (li[c] - m)) / sum;
          double g = (p - (c == y)) / n;
          gi[c] = (float) g;
          grad[(size_t) D * C + c] += g;
        }
      }
    }
    if (grad) {
      /* gW_blk (D, C) = X_blk^T (D, bn) G (bn, C): M = D, N = C, K = bn;
       * summed over blocks in double. */
      cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, D, C, bn, 1.0f,
          xb, D, G, C, 0.0f, gW, C);
      for (size_t j = 0; j < (size_t) D * C; j++)
        grad[j] += gW[j];
    }
  }
  for (size_t j = 0; j < (size_t) D * C; j++) {
    reg += (double) W[j] * W[j];
    if (grad)
      grad[j] += lambda * W[j];
  }
  *loss = ce / n + 0.5 * lambda * reg;
  if (!isfinite (*loss))
    return simclr_error_set (err, SIMCLR_ERROR_NUMERIC,
        "linclf: objective is not finite (%d rows of %d, lambda %g)", n, D,
        lambda);
  return SIMCLR_OK;
}

static float *
objective_scratch (const SimclrLinclf *clf)
{
  return malloc (((size_t) 2 * LINCLF_BLOCK_ROWS * clf->classes
          + (size_t) clf->dim * clf->classes) * sizeof (float));
}

SimclrStatus
simclr_linclf_objective (SimclrLinclf *clf, const float *x, const int *labels,
    int n, double lambda, double *loss, float *grad, SimclrError *err)
{
  SimclrStatus st = check_data (clf, x, labels, n, "objective", err);
  float *scratch;
  double *g = NULL;

  if (st != SIMCLR_OK)
    return st;
  if (!labels || !loss || !(lambda >= 0.0))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "linclf: objective needs labels, a loss output and lambda >= 0");
  scratch = objective_scratch (clf);
  if (grad)
    g = malloc (clf->n_params * sizeof (double));
  if (!scratch || (grad && !g)) {
    free (scratch);
    free (g);
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "linclf: objective scratch");
  }
  st = objective (clf, x, labels, n, lambda, loss, g, scratch, err);
  if (st == SIMCLR_OK && grad)
    for (size_t j = 0; j < clf->n_params; j++)
      grad[j] = (float) g[j];
  free (scratch);
  free (g);
  return st;
}

static double
dot (const double *a, const double *b, size_t n)
{
  double s = 0.0;
  for (size_t j = 0; j < n; j++)
    s += a[j] * b[j];
  return s;
}

static double
max_abs (const double *a, size_t n)
{
  double m = 0.0;
  for (size_t j = 0; j < n; j++)
    m = fabs (a[j]) > m ? fabs (a[j]) : m;
  return m;
}

/* Writes the double iterate into the float parameters the BLAS reads. */
static void
set_params (SimclrLinclf *clf, const double *w)
{
  for (size_t j = 0; j < clf->n_params; j++)
    clf->params[j] = (float) w[j];
}

SimclrStatus
simclr_linclf_train (SimclrLinclf *clf, const float *x, const int *labels,
    int n, const SimclrLinclfConfig *cfg, SimclrLinclfReport *report,
    SimclrError *err)
{
  SimclrStatus st = check_data (clf, x, labels, n, "train", err);
  SimclrLinclfReport rep = { 0 };
  size_t P;
  int m, n_hist = 0, newest = -1;
  double *w, *g, *w_new, *g_new, *d, *alpha, *rho, *S, *Y;
  double f, f_new;
  float *scratch;

  if (st != SIMCLR_OK)
    return st;
  if (!labels || !cfg)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "linclf: train needs labels and a configuration");
  if (!(cfg->lambda >= 0.0) || !isfinite (cfg->lambda) || cfg->max_iter < 0
      || cfg->history < 1 || !(cfg->grad_tol >= 0.0))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "linclf: lambda %g, max_iter %d, history %d, grad_tol %g out of range",
        cfg->lambda, cfg->max_iter, cfg->history, cfg->grad_tol);

  P = clf->n_params;
  m = cfg->history;
  scratch = objective_scratch (clf);
  w = malloc (P * sizeof (double));
  g = malloc (P * sizeof (double));
  w_new = malloc (P * sizeof (double));
  g_new = malloc (P * sizeof (double));
  d = malloc (P * sizeof (double));
  alpha = malloc ((size_t) m * sizeof (double));
  rho = malloc ((size_t) m * sizeof (double));
  S = malloc ((size_t) m * P * sizeof (double));
  Y = malloc ((size_t) m * P * sizeof (double));
  if (!scratch || !w || !g || !w_new || !g_new || !d || !alpha || !rho || !S
      || !Y) {
    st = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "linclf: L-BFGS state for %zu parameters", P);
    goto out;
  }

  for (size_t j = 0; j < P; j++)
    w[j] = clf->params[j];
  st = objective (clf, x, labels, n, cfg->lambda, &f, g, scratch, err);
  rep.evaluations = 1;
  if (st != SIMCLR_OK)
    goto out;

  while (1) {
    double gmax = max_abs (g, P), gd, t;
    int accepted = 0;

    rep.loss = f;
    rep.grad_max = gmax;
    if (gmax <= cfg->grad_tol) {
      rep.converged = 1;
      break;
    }
    if (rep.iterations >= cfg->max_iter)
      break;

    /* Direction d = -H g by the two-loop recursion over the stored pairs,
     * newest first; H0 = gamma I with gamma = s.y / y.y of the newest pair
     * (Nocedal & Wright, Algorithm 7.4). Without pairs, a steepest-descent
     * step of length at most 1 in the max norm. */
    memcpy (d, g, P * sizeof (double));
    for (int h = 0; h < n_hist; h++) {
      int k = (newest - h + m) % m;
      alpha[k] = rho[k] * dot (S + (size_t) k * P, d, P);
      for (size_t j = 0; j < P; j++)
        d[j] -= alpha[k] * Y[(size_t) k * P + j];
    }
    {
      double gamma = n_hist > 0
          ? 1.0 / (rho[newest] * dot (Y + (size_t) newest * P,
                  Y + (size_t) newest * P, P))
          : (gmax > 1.0 ? 1.0 / gmax : 1.0);
      for (size_t j = 0; j < P; j++)
        d[j] *= gamma;
    }
    for (int h = n_hist - 1; h >= 0; h--) {
      int k = (newest - h + m) % m;
      double beta = rho[k] * dot (Y + (size_t) k * P, d, P);
      for (size_t j = 0; j < P; j++)
        d[j] += S[(size_t) k * P + j] * (alpha[k] - beta);
    }
    for (size_t j = 0; j < P; j++)
      d[j] = -d[j];
    gd = dot (g, d, P);
    if (!(gd < 0.0)) {
      /* Not a descent direction (float noise in y): forget the history. */
      double gamma = gmax > 1.0 ? 1.0 / gmax : 1.0;
      n_hist = 0;
      for (size_t j = 0; j < P; j++)
        d[j] = -gamma * g[j];
      gd = dot (g, d, P);
    }

    /* Backtracking line search. Accept on the Armijo condition, or on
     * Hager & Zhang's approximate Wolfe condition (CG_DESCENT, 2005):
     *   f_new <= f + 1e-6 |f|  and  0.9 gd <= g_new.d <= -0.8 gd.
     * The objective comes from float32 logits, so near the optimum its
     * decrease (~ g^2) sinks below its rounding noise (~1e-7 |f|) and Armijo
     * alone stalls; the gradient stays accurate, so the derivative test
     * still decides. Trial steps come from the quadratic through f,
     * f'(0) = gd and f (t), kept within [0.1 t, 0.5 t]. */
    t = 1.0;
    for (int ls = 0; ls < 40; ls++) {
      double gd_new;
      for (size_t j = 0; j < P; j++)
        w_new[j] = w[j] + t * d[j];
      set_params (clf, w_new);
      st = objective (clf, x, labels, n, cfg->lambda, &f_new, g_new, scratch,
          NULL);
      rep.evaluations++;
      if (st != SIMCLR_OK) {
        t *= 0.1;
        continue;
      }
      gd_new = dot (g_new, d, P);
      if (f_new <= f + 1e-4 * t * gd
          || (f_new <= f + 1e-6 * fabs (f) && gd_new >= 0.9 * gd
              && gd_new <= -0.8 * gd)) {
        accepted = 1;
        break;
      }
      {
        double tq = -gd * t * t / (2.0 * (f_new - f - gd * t));
        t = !(tq >= 0.1 * t) ? 0.1 * t : (tq > 0.5 * t ? 0.5 * t : tq);
      }
    }
    st = SIMCLR_OK;
    if (!accepted) {
      /* No acceptable step along a descent direction: give up with the
       * last iterate (converged stays 0 unless the gradient is small). */
      set_params (clf, w);
      break;
    }
    rep.iterations++;

    {
      int k = (newest + 1) % m;
      double *s = S + (size_t) k * P, *y = Y + (size_t) k * P, sy;
      for (size_t j = 0; j < P; j++) {
        s[j] = w_new[j] - w[j];
        y[j] = g_new[j] - g[j];
      }
      sy = dot (s, y, P);
      /* Keep the pair only with positive curvature, or H is not positive
       * definite. */
      if (sy > 1e-12 * sqrt (dot (s, s, P) * dot (y, y, P))) {
        rho[k] = 1.0 / sy;
        newest = k;
        n_hist = n_hist < m ? n_hist + 1 : m;
      }
    }
    memcpy (w, w_new, P * sizeof (double));
    memcpy (g, g_new, P * sizeof (double));
    f = f_new;
  }
  set_params (clf, w);

out:
  if (report)
    *report = rep;
  free (scratch);
  free (w);
  free (g);
  free (w_new);
  free (g_new);
  free (d);
  free (alpha);
  free (rho);
  free (S);
  free (Y);
  return st;
}

/* Rank of @label among @scores: how many classes score strictly higher. */
static int
rank_of (const double *scores, int C, int label)
{
  int above = 0;
  for (int c = 0; c < C; c++)
    above += scores[c] > scores[label];
  return above;
}

static int
argmax (const double *scores, int C)
{
  int best = 0;
  for (int c = 1; c < C; c++)
    if (scores[c] > scores[best])
      best = c;
  return best;
}

SimclrStatus
simclr_linclf_evaluate (SimclrLinclf *clf, const float *x, const int *labels,
    int n, int *predictions, double *top1, double *top5, SimclrError *err)
{
  SimclrStatus st = check_data (clf, x, labels, n, "evaluate", err);
  const int D = clf ? clf->dim : 0, C = clf ? clf->classes : 0;
  float *logits;
  double *scores;
  long hits1 = 0, hits5 = 0;

  if (st != SIMCLR_OK)
    return st;
  logits = malloc ((size_t) LINCLF_BLOCK_ROWS * C * sizeof (float));
  scores = malloc ((size_t) C * sizeof (double));
  if (!logits || !scores) {
    free (logits);
    free (scores);
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "linclf: evaluate");
  }
  for (int r0 = 0; r0 < n; r0 += LINCLF_BLOCK_ROWS) {
    const int bn = n - r0 < LINCLF_BLOCK_ROWS ? n - r0 : LINCLF_BLOCK_ROWS;
    block_logits (logits, x + (size_t) r0 * D, bn, clf->params, D, C);
    for (int i = 0; i < bn; i++) {
      for (int c = 0; c < C; c++)
        scores[c] = logits[(size_t) i * C + c];
      if (predictions)
        predictions[r0 + i] = argmax (scores, C);
      if (labels) {
        int r = rank_of (scores, C, labels[r0 + i]);
        hits1 += r < 1;
        hits5 += r < 5;
      }
    }
  }
  if (labels) {
    if (top1)
      *top1 = (double) hits1 / n;
    if (top5)
      *top5 = (double) hits5 / n;
  }
  free (logits);
  free (scores);
  return SIMCLR_OK;
}

static int
cmp_desc (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x < y) - (x > y);
}

SimclrStatus
simclr_linclf_select_lambda (SimclrLinclf *clf, const float *x,
    const int *labels, int n, const double *grid, int n_grid, double holdout,
    const SimclrLinclfConfig *cfg, double *best_lambda, double *holdout_top1,
    SimclrLinclfReport *report, SimclrError *err)
{
  SimclrStatus st = check_data (clf, x, labels, n, "select_lambda", err);
  SimclrLinclfConfig c;
  int n_fit = 0, n_val = 0, D;
  float *xf = NULL, *xv = NULL, *best_params = NULL;
  int *yf = NULL, *yv = NULL;
  double *lams = NULL, best = -1.0, best_lam = 0.0;
  /* Stream key of the held-out draw: one per row index. */
  const uint64_t stream = simclr_rng_stream2 (0x6c696e, 0x686f6c64);

  if (st != SIMCLR_OK)
    return st;
  if (!labels || !cfg || !grid || n_grid <= 0 || !(holdout > 0.0 && holdout < 1.0)
      || cfg->select_max_iter < 0)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "linclf: select_lambda needs labels, a configuration, a grid "
        "(%d values), 0 < holdout < 1 (got %g) and select_max_iter >= 0 "
        "(got %d)", n_grid, holdout, cfg ? cfg->select_max_iter : 0);
  for (int q = 0; q < n_grid; q++)
    if (!(grid[q] >= 0.0) || !isfinite (grid[q]))
      return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "linclf: lambda grid[%d] = %g must be >= 0 and finite", q, grid[q]);
  D = clf->dim;
  for (int i = 0; i < n; i++)
    n_val += simclr_rng_uniform_double (cfg->seed, stream, i) < holdout;
  n_fit = n - n_val;
  if (n_val == 0 || n_fit == 0)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "linclf: holdout %g of %d rows leaves %d to fit and %d to check",
        holdout, n, n_fit, n_val);

  xf = malloc ((size_t) n_fit * D * sizeof (float));
  xv = malloc ((size_t) n_val * D * sizeof (float));
  yf = malloc ((size_t) n_fit * sizeof (int));
  yv = malloc ((size_t) n_val * sizeof (int));
  lams = malloc ((size_t) n_grid * sizeof (double));
  best_params = malloc (clf->n_params * sizeof (float));
  if (!xf || !xv || !yf || !yv || !lams || !best_params) {
    st = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "linclf: held-out split of %d x %d", n, D);
    goto out;
  }
  {
    int a = 0, b = 0;
    for (int i = 0; i < n; i++) {
      const float *xi = x + (size_t) i * D;
      if (simclr_rng_uniform_double (cfg->seed, stream, i) < holdout) {
        memcpy (xv + (size_t) b * D, xi, (size_t) D * sizeof (float));
        yv[b++] = labels[i];
      } else {
        memcpy (xf + (size_t) a * D, xi, (size_t) D * sizeof (float));
        yf[a++] = labels[i];
      }
    }
  }

  /* Strongest regularisation first: each fit warm-starts the next, weaker
   * one, and the path from a smooth solution is short. */
  memcpy (lams, grid, (size_t) n_grid * sizeof (double));
  qsort (lams, (size_t) n_grid, sizeof (double), cmp_desc);
  c = *cfg;
  if (cfg->select_max_iter > 0)
    c.max_iter = cfg->select_max_iter;
  for (int q = 0; q < n_grid; q++) {
    double acc;
    c.lambda = lams[q];
    st = simclr_linclf_train (clf, xf, yf, n_fit, &c, NULL, err);
    if (st != SIMCLR_OK)
      goto out;
    st = simclr_linclf_evaluate (clf, xv, yv, n_val, NULL, &acc, NULL, err);
    if (st != SIMCLR_OK)
      goto out;
    /* Strictly better only: on a tie the larger lambda (seen first) stays. */
    if (acc > best) {
      best = acc;
      best_lam = lams[q];
      memcpy (best_params, clf->params, clf->n_params * sizeof (float));
    }
  }

  memcpy (clf->params, best_params, clf->n_params * sizeof (float));
  c.lambda = best_lam;
  c.max_iter = cfg->max_iter;
  st = simclr_linclf_train (clf, x, labels, n, &c, report, err);
  if (st == SIMCLR_OK) {
    if (best_lambda)
      *best_lambda = best_lam;
    if (holdout_top1)
      *holdout_top1 = best;
  }

out:
  free (xf);
  free (xv);
  free (yf);
  free (yv);
  free (lams);
  free (best_params);
  return st;
}

/* ---------------------------------------------------------------------------
 * kNN
 */

/* Min-heap on sim of the k best (sim, index) seen so far: the root is the
 * weakest kept neighbour, replaced when a better one comes. */
static void
heap_sift_down (float *hs, int *hi, int size, int pos)
{
  while (1) {
    int l = 2 * pos + 1, r = l + 1, s = pos;
    if (l < size && hs[l] < hs[s])
      s = l;
    if (r < size && hs[r] < hs[s])
      s = r;
    if (s == pos)
      return;
    {
      float tf = hs[s];
      int ti = hi[s];
      hs[s] = hs[pos];
      hi[s] = hi[pos];
      hs[pos] = tf;
      hi[pos] = ti;
    }
    pos = s;
  }
}

static void
heap_sift_up (float *hs, int *hi, int pos)
{
  while (pos > 0) {
    int parent = (pos - 1) / 2;
    if (hs[parent] <= hs[pos])
      return;
    {
      float tf = hs[parent];
      int ti = hi[parent];
      hs[parent] = hs[pos];
      hi[parent] = hi[pos];
      hs[pos] = tf;
      hi[pos] = ti;
    }
    pos = parent;
  }
}

/* inv (n): 1 / ||row||, 0 for a zero row (its similarities become 0). */
static SimclrStatus
inverse_norms (float *inv, const float *x, int n, int dim, const char *what,
    SimclrError *err)
{
  for (int i = 0; i < n; i++) {
    const float *xi = x + (size_t) i * dim;
    double ss = 0.0;
    for (int c = 0; c < dim; c++)
      ss += (double) xi[c] * xi[c];
    if (!isfinite (ss))
      return simclr_error_set (err, SIMCLR_ERROR_NUMERIC,
          "knn: %s row %d is not finite", what, i);
    inv[i] = ss > 0.0 ? (float) (1.0 / sqrt (ss)) : 0.0f;
  }
  return SIMCLR_OK;
}

SimclrStatus
simclr_knn_classify (const float *train, const int *train_labels, int n_train,
    const float *test, const int *test_labels, int n_test, int dim,
    int classes, int k, double temperature, int *predictions, double *top1,
    double *top5, SimclrError *err)
{
  /* train (Ntr, D), test (Nte, D), sims (BLK, Ntr). */
  SimclrStatus st = SIMCLR_OK;
  float *inv_tr = NULL, *inv_te = NULL, *sims = NULL, *hs = NULL;
  int *hi = NULL;
  double *votes = NULL;
  long hits1 = 0, hits5 = 0;

  if (!train || !train_labels || !test || n_train <= 0 || n_test <= 0
      || dim <= 0 || classes <= 0 || k <= 0)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "knn: needs train (%d rows) and test (%d rows) of dim %d, %d classes, "
        "k %d, all > 0", n_train, n_test, dim, classes, k);
  if (!(temperature > 0.0) || !isfinite (temperature))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "knn: temperature %g must be positive and finite", temperature);
  for (int i = 0; i < n_train; i++)
    if (train_labels[i] < 0 || train_labels[i] >= classes)
      return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "knn: train label[%d] = %d is outside [0, %d)", i, train_labels[i],
          classes);
  if (test_labels)
    for (int i = 0; i < n_test; i++)
      if (test_labels[i] < 0 || test_labels[i] >= classes)
        return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
            "knn: test label[%d] = %d is outside [0, %d)", i, test_labels[i],
            classes);
  if (k > n_train)
    k = n_train;

  inv_tr = malloc ((size_t) n_train * sizeof (float));
  inv_te = malloc ((size_t) n_test * sizeof (float));
  sims = malloc ((size_t) KNN_BLOCK_ROWS * n_train * sizeof (float));
  hs = malloc ((size_t) k * sizeof (float));
  hi = malloc ((size_t) k * sizeof (int));
  votes = malloc ((size_t) classes * sizeof (double));
  if (!inv_tr || !inv_te || !sims || !hs || !hi || !votes) {
    st = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "knn: scratch for %d x %d similarities", KNN_BLOCK_ROWS, n_train);
    goto out;
  }
  st = inverse_norms (inv_tr, train, n_train, dim, "train", err);
  if (st == SIMCLR_OK)
    st = inverse_norms (inv_te, test, n_test, dim, "test", err);
  if (st != SIMCLR_OK)
    goto out;

  for (int r0 = 0; r0 < n_test; r0 += KNN_BLOCK_ROWS) {
    const int bn = n_test - r0 < KNN_BLOCK_ROWS ? n_test - r0 : KNN_BLOCK_ROWS;
    /* sims (bn, Ntr) = test_blk (bn, D) train^T (D, Ntr): M = bn, N = Ntr,
     * K = D; then scaled by both inverse norms into cosines. */
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, bn, n_train, dim,
        1.0f, test + (size_t) r0 * dim, dim, train, dim, 0.0f, sims, n_train);
    for (int i = 0; i < bn; i++) {
      const float *si = sims + (size_t) i * n_train;
      const float a = inv_te[r0 + i];
      int size = 0, pred;

      for (int j = 0; j < n_train; j++) {
        float s = si[j] * a * inv_tr[j];
        if (size < k) {
          hs[size] = s;
          hi[size] = j;
          heap_sift_up (hs, hi, size);
          size++;
        } else if (s > hs[0]) {
          hs[0] = s;
          hi[0] = j;
          heap_sift_down (hs, hi, size, 0);
        }
      }
      /* exp ((sim - 1) / T) rather than exp (sim / T): the common factor
       * e^{-1/T} changes no comparison, and with sim <= 1 no weight can
       * overflow however small T is. */
      for (int c = 0; c < classes; c++)
        votes[c] = 0.0;
      for (int q = 0; q < size; q++)
        votes[train_labels[hi[q]]] += exp ((hs[q] - 1.0) / temperature);
      pred = argmax (votes, classes);
      if (predictions)
        predictions[r0 + i] = pred;
      if (test_labels) {
        const int y = test_labels[r0 + i];
        hits1 += pred == y;
        /* A label without a vote is not in the top five, whatever ties at
         * 0 with it. */
        if (votes[y] > 0.0)
          hits5 += rank_of (votes, classes, y) < 5;
      }
    }
  }
  if (test_labels) {
    if (top1)
      *top1 = (double) hits1 / n_test;
    if (top5)
      *top5 = (double) hits5 / n_test;
  }

out:
  free (inv_tr);
  free (inv_te);
  free (sims);
  free (hs);
  free (hi);
  free (votes);
  return st;
}
