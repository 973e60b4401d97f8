/* test-optim.c: LARS / SGD against a double-precision naive reference written
 * here, closed forms for decay and momentum, the learning-rate schedules at
 * known points (the cosine schedule also against a copy of its first
 * release, bit for bit), the schedule in trainer checkpoints, and the
 * configuration checks. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "simclr/checkpoint.h"
#include "simclr/optim.h"
#include "simclr/rng.h"
#include "simclr/trainer.h"

/* ---------------------------------------------------------------------------
 * Naive reference in double, written from the peer's LARS class
 * (../shared/peer/torch_simclr.py): per group,
 *   d = g + wd p (adapt only); LARS adapt: trust = eta ||p|| / ||d|| (1 if
 *   either is 0), d = d * trust; v = m v + lr d; p = p - v.
 */
static void
naive_step (const SimclrOptimConfig *cfg, double lr, double *p,
    const double *g, double *v, const SimclrParamGroup *groups, int n_groups)
{
  for (int gi = 0; gi < n_groups; gi++) {
    size_t o = groups[gi].offset, n = groups[gi].numel;
    double wd = groups[gi].adapt ? cfg->weight_decay : 0.0;
    double *d = g_new (double, n);
    double trust = 1.0;
    for (size_t j = 0; j < n; j++)
      d[j] = g[o + j] + wd * p[o + j];
    if (groups[gi].adapt && cfg->kind == SIMCLR_OPTIM_LARS) {
      double wn = 0, dn = 0;
      for (size_t j = 0; j < n; j++) {
        wn += p[o + j] * p[o + j];
        dn += d[j] * d[j];
      }
      wn = sqrt (wn);
      dn = sqrt (dn);
      if (wn > 0 && dn > 0)
        trust = cfg->trust_coefficient * wn / dn;
    }
    for (size_t j = 0; j < n; j++) {
      v[o + j] = cfg->momentum * v[o + j] + lr * trust * d[j];
      p[o + j] -= v[o + j];
    }
    g_free (d);
  }
}

/* Four groups with a gap between two of them (elements 30..39 belong to no
 * group and must not move), one all-zero adapt group (trust falls back to 1). */
static const SimclrParamGroup groups4[] = {
  { 0, 20, 1 },      /* a weight matrix */
  { 20, 10, 0 },     /* its bias */
  { 40, 50, 1 },     /* another weight, starts at 0 */
  { 90, 7, 0 },      /* batch-norm gamma/beta */
};
#define NUMEL 97

static void
check_against_naive (SimclrOptimKind kind)
{
  SimclrOptimConfig cfg;
  SimclrError err = { 0 };
  float p[NUMEL], g[NUMEL], v[NUMEL] = { 0 };
  double pd[NUMEL], gd[NUMEL], vd[NUMEL] = { 0 };

  simclr_optim_config_default (&cfg);
  cfg.kind = kind;
  cfg.weight_decay = 1e-2;     /* large enough to matter in the check */
  for (int j = 0; j < NUMEL; j++) {
    p[j] = (j >= 40 && j < 90) ? 0.0f : (float) simclr_rng_normal (3, 0, j);
    pd[j] = p[j];
  }
  for (int step = 0; step < 6; step++) {
    double lr = simclr_optim_lr (&cfg, step);
    for (int j = 0; j < NUMEL; j++) {
      g[j] = (float) (0.1 * simclr_rng_normal (3, 1 + step, j));
      gd[j] = g[j];
    }
    g_assert_cmpint (simclr_optim_step (&cfg, lr, p, g, v, groups4, 4, &err),
        ==, SIMCLR_OK);
    naive_step (&cfg, lr, pd, gd, vd, groups4, 4);
    /* Float storage rounds p and v each step (~6e-8 relative), and
     * v = m v + lr d may cancel, so the error is judged against each group's
     * largest reference magnitude: 1e-6 of it after six steps leaves room
     * for rounding and none for a wrong trust ratio or decay. */
    for (int gi = 0; gi < 4; gi++) {
      size_t o = groups4[gi].offset, n = groups4[gi].numel;
      double pmax = 0, vmax = 0;
      for (size_t j = o; j < o + n; j++) {
        pmax = fmax (pmax, fabs (pd[j]));
        vmax = fmax (vmax, fabs (vd[j]));
      }
      for (size_t j = o; j < o + n; j++) {
        if (fabs (p[j] - pd[j]) > 1e-6 * pmax)
          g_error ("kind %d step %d: p[%zu] = %.9g, reference %.9g", kind,
              step, j, (double) p[j], pd[j]);
        if (fabs (v[j] - vd[j]) > 1e-6 * vmax)
          g_error ("kind %d step %d: v[%zu] = %.9g, reference %.9g", kind,
              step, j, (double) v[j], vd[j]);
      }
    }
  }
  /* The gap never moves. */
  for (int j = 30; j < 40; j++) {
    g_assert_cmpfloat (p[j], ==, (float) simclr_rng_normal (3, 0, j));
    g_assert_cmpfloat (v[j], ==, 0.0f);
  }
}

static void
test_lars_vs_naive (void)
{
  check_against_naive (SIMCLR_OPTIM_LARS);
}

static void
test_sgd_vs_naive (void)
{
  check_against_naive (SIMCLR_OPTIM_SGD);
}

/* With a zero gradient only weight decay acts. LARS adapt group:
 * d = wd p, trust = eta ||p|| / (wd ||p||) = eta / wd, so the step is
 * lr eta p: p1 = (1 - lr eta) p. SGD adapt group: p1 = (1 - lr wd) p.
 * Non-adapt groups get no decay: p1 = p. */
static void
test_decay_only_adapt_groups (void)
{
  const SimclrParamGroup groups[] = { { 0, 4, 1 }, { 4, 4, 0 } };
  const float p0[8] = { 1, -2, 3, 0.5f, 1, -2, 3, 0.5f };
  const float zero[8] = { 0 };
  SimclrOptimConfig cfg;
  float p[8], v[8];
  const double lr = 0.5;

  simclr_optim_config_default (&cfg);
  cfg.weight_decay = 1e-3;
  cfg.trust_coefficient = 0.02;
  for (int kind = 0; kind < 2; kind++) {
    double shrink;
    cfg.kind = kind;
    shrink = kind == SIMCLR_OPTIM_LARS ? lr * cfg.trust_coefficient
        : lr * cfg.weight_decay;
    memcpy (p, p0, sizeof p);
    memset (v, 0, sizeof v);
    g_assert_cmpint (simclr_optim_step (&cfg, lr, p, zero, v, groups, 2, NULL),
        ==, SIMCLR_OK);
    for (int j = 0; j < 4; j++)
      g_assert_cmpfloat_with_epsilon (p[j], p0[j] * (1 - shrink), 1e-6);
    for (int j = 4; j < 8; j++) {
      g_assert_cmpfloat (p[j], ==, p0[j]);
      g_assert_cmpfloat (v[j], ==, 0.0f);
    }
  }
}

/* Momentum on a non-adapt group with a constant gradient 1:
 * v1 = lr, p1 = p0 - lr; v2 = m lr + lr, p2 = p1 - v2. No trust ratio is
 * applied even under LARS. */
static void
test_momentum (void)
{
  const SimclrParamGroup groups[] = { { 0, 3, 0 } };
  const float ones[3] = { 1, 1, 1 };
  SimclrOptimConfig cfg;
  float p[3] = { 5, 5, 5 }, v[3] = { 0 };
  const double lr = 0.1, m = 0.9;

  simclr_optim_config_default (&cfg);
  g_assert_cmpint (simclr_optim_step (&cfg, lr, p, ones, v, groups, 1, NULL),
      ==, SIMCLR_OK);
  g_assert_cmpfloat_with_epsilon (p[0], 5 - lr, 1e-6);
  g_assert_cmpfloat_with_epsilon (v[1], lr, 1e-7);
  g_assert_cmpint (simclr_optim_step (&cfg, lr, p, ones, v, groups, 1, NULL),
      ==, SIMCLR_OK);
  g_assert_cmpfloat_with_epsilon (v[2], m * lr + lr, 1e-7);
  g_assert_cmpfloat_with_epsilon (p[2], 5 - lr - (m * lr + lr), 1e-6);
}

/* A NaN or infinity anywhere in any group: error, and no buffer changes. */
static void
test_nonfinite_gradient (void)
{
  SimclrOptimConfig cfg;
  SimclrError err = { 0 };
  float p[NUMEL], g[NUMEL], v[NUMEL], p0[NUMEL], v0[NUMEL];

  simclr_optim_config_default (&cfg);
  for (int j = 0; j < NUMEL; j++) {
    p[j] = (float) simclr_rng_normal (4, 0, j);
    v[j] = (float) simclr_rng_normal (4, 1, j);
    g[j] = (float) simclr_rng_normal (4, 2, j);
  }
  memcpy (p0, p, sizeof p);
  memcpy (v0, v, sizeof v);
  g[95] = NAN;   /* in the last group: earlier groups must not be updated */
  g_assert_cmpint (simclr_optim_step (&cfg, 0.1, p, g, v, groups4, 4, &err),
      ==, SIMCLR_ERROR_NUMERIC);
  g_assert_nonnull (strstr (err.message, "group 3"));
  g_assert_cmpmem (p, sizeof p, p0, sizeof p0);
  g_assert_cmpmem (v, sizeof v, v0, sizeof v0);
  g[95] = -INFINITY;
  g_assert_cmpint (simclr_optim_step (&cfg, 0.1, p, g, v, groups4, 4, &err),
      ==, SIMCLR_ERROR_NUMERIC);
  g_assert_cmpmem (p, sizeof p, p0, sizeof p0);
  /* A gradient in the gap is nobody's: ignored. */
  g[95] = 0.0f;
  g[35] = NAN;
  g_assert_cmpint (simclr_optim_step (&cfg, 0.1, p, g, v, groups4, 4, &err),
      ==, SIMCLR_OK);
  g_assert_cmpint (simclr_optim_step (&cfg, NAN, p, g, v, groups4, 4, &err),
      ==, SIMCLR_ERROR_INVALID_ARGUMENT);
}

/* ---------------------------------------------------------------------------
 * PyTorch fixture (tests/data/make-lars-fixture.py): the peer's LARS class,
 * five steps with changing lr over two adapt tensors and one plain tensor.
 */
static double
fixture_number (FILE *f)
{
  double v;
  if (fscanf (f, "%lf", &v) != 1)
    g_error ("lars fixture: expected a number");
  return v;
}

static void
fixture_word (FILE *f, const char *word)
{
  char buf[64];
  int ch;
  /* Skip '#' comment lines before the word. */
  while ((ch = fgetc (f)) == '#' || ch == '\n' || ch == ' ')
    if (ch == '#')
      while ((ch = fgetc (f)) != EOF && ch != '\n');
  ungetc (ch, f);
  if (fscanf (f, "%63s", buf) != 1 || strcmp (buf, word) != 0)
    g_error ("lars fixture: expected '%s'", word);
}

static void
test_lars_torch_fixture (void)
{
  char *path = g_build_filename (SIMCLR_TEST_DATA, "lars-fixture.txt", NULL);
  FILE *f = fopen (path, "r");
  SimclrOptimConfig cfg;
  SimclrParamGroup groups[8];
  SimclrError err = { 0 };
  int n_groups, steps;
  size_t numel = 0;
  float *p, *g, *v;
  double *ref;

  /* Committed with the test: missing means a broken tree, not a skip. */
  if (!f)
    g_error ("cannot open %s (regenerate with tests/data/make-lars-fixture.py)",
        path);
  simclr_optim_config_default (&cfg);
  fixture_word (f, "hyper");
  cfg.momentum = fixture_number (f);
  cfg.weight_decay = fixture_number (f);
  cfg.trust_coefficient = fixture_number (f);
  fixture_word (f, "groups");
  n_groups = (int) fixture_number (f);
  g_assert_cmpint (n_groups, <=, 8);
  for (int q = 0; q < n_groups; q++) {
    fixture_word (f, "group");
    groups[q].offset = (size_t) fixture_number (f);
    groups[q].numel = (size_t) fixture_number (f);
    groups[q].adapt = (int) fixture_number (f);
    numel = groups[q].offset + groups[q].numel;
  }
  p = g_new (float, numel);
  g = g_new (float, numel);
  v = g_new0 (float, numel);
  ref = g_new (double, numel);
  fixture_word (f, "p0");
  for (size_t j = 0; j < numel; j++)
    p[j] = (float) fixture_number (f);
  fixture_word (f, "steps");
  steps = (int) fixture_number (f);
  for (int s = 0; s < steps; s++) {
    double lr;
    fixture_word (f, "lr");
    lr = fixture_number (f);
    fixture_word (f, "grad");
    for (size_t j = 0; j < numel; j++)
      g[j] = (float) fixture_number (f);
    g_assert_cmpint (simclr_optim_step (&cfg, lr, p, g, v, groups, n_groups,
            &err), ==, SIMCLR_OK);
  }
  /* Same per-group metric as the naive comparison: 1e-6 of the group's
   * largest reference magnitude after five float32 steps. */
  for (int which = 0; which < 2; which++) {
    const float *mine = which == 0 ? p : v;
    fixture_word (f, which == 0 ? "p" : "v");
    for (size_t j = 0; j < numel; j++)
      ref[j] = fixture_number (f);
    for (int q = 0; q < n_groups; q++) {
      double mx = 0;
      for (size_t j = groups[q].offset; j < groups[q].offset + groups[q].numel; j++)
        mx = fmax (mx, fabs (ref[j]));
      for (size_t j = groups[q].offset; j < groups[q].offset + groups[q].numel; j++)
        if (fabs (mine[j] - ref[j]) > 1e-6 * mx)
          g_error ("%s[%zu] = %.9g, torch %.9g", which == 0 ? "p" : "v", j,
              (double) mine[j], ref[j]);
    }
  }
  fclose (f);
  g_free (path);
  g_free (p);
  g_free (g);
  g_free (v);
  g_free (ref);
}

/* ---------------------------------------------------------------------------
 * Schedule.
 */
static void
test_schedule_points (void)
{
  SimclrOptimConfig cfg;
  double peak;

  simclr_optim_config_default (&cfg);   /* 0.3 x 256/256, warm-up 10 of 100 */
  peak = 0.3;
  g_assert_cmpfloat_with_epsilon (simclr_optim_lr (&cfg, 0), peak / 10, 1e-12);
  g_assert_cmpfloat_with_epsilon (simclr_optim_lr (&cfg, 4), peak * 5 / 10, 1e-12);
  /* Last warm-up step reaches the peak; the cosine starts there too. */
  g_assert_cmpfloat_with_epsilon (simclr_optim_lr (&cfg, 9), peak, 1e-12);
  g_assert_cmpfloat_with_epsilon (simclr_optim_lr (&cfg, 10), peak, 1e-12);
  /* Halfway through the cosine (10 + 90/2 = 55): cos (pi/2) = 0, half peak. */
  g_assert_cmpfloat_with_epsilon (simclr_optim_lr (&cfg, 55), peak / 2, 1e-12);
  /* A quarter: (1 + cos (pi/4)) / 2. */
  cfg.total_steps = 90;
  g_assert_cmpfloat_with_epsilon (simclr_optim_lr (&cfg, 30),
      peak * 0.5 * (1 + sqrt (0.5)), 1e-12);
  cfg.total_steps = 100;
  g_assert_cmpfloat (simclr_optim_lr (&cfg, 99), >, 0.0);
  g_assert_cmpfloat (simclr_optim_lr (&cfg, 99), <, peak * 1e-3);
  g_assert_cmpfloat (simclr_optim_lr (&cfg, 100), ==, 0.0);
  g_assert_cmpfloat (simclr_optim_lr (&cfg, 1000), ==, 0.0);
  g_assert_cmpfloat (simclr_optim_lr (&cfg, -1), ==, 0.0);
  /* Monotone: up through warm-up, down after. */
  for (int s = 1; s < 100; s++) {
    double a = simclr_optim_lr (&cfg, s - 1), b = simclr_optim_lr (&cfg, s);
    if (s < 10)
      g_assert_cmpfloat (b, >, a);
    else
      g_assert_cmpfloat (b, <=, a);
  }
  /* No warm-up: step 0 is the peak. */
  cfg.warmup_steps = 0;
  g_assert_cmpfloat_with_epsilon (simclr_optim_lr (&cfg, 0), peak, 1e-12);
  g_assert_cmpfloat_with_epsilon (simclr_optim_lr (&cfg, 50), peak / 2, 1e-12);
}

static void
test_schedule_scaling (void)
{
  SimclrOptimConfig cfg;

  simclr_optim_config_default (&cfg);
  cfg.warmup_steps = 0;
  cfg.batch_size = 512;          /* linear: 0.3 x 512 / 256 = 0.6 */
  g_assert_cmpfloat_with_epsilon (simclr_optim_lr (&cfg, 0), 0.6, 1e-12);
  cfg.batch_size = 64;           /* 0.075 */
  g_assert_cmpfloat_with_epsilon (simclr_optim_lr (&cfg, 0), 0.075, 1e-12);
  cfg.lr_scaling = SIMCLR_LR_SCALING_SQRT;
  cfg.base_lr = 0.075;           /* sqrt: 0.075 x sqrt (64) = 0.6 */
  g_assert_cmpfloat_with_epsilon (simclr_optim_lr (&cfg, 0), 0.6, 1e-12);
  cfg.batch_size = 4096;         /* 0.075 x 64 = 4.8 */
  g_assert_cmpfloat_with_epsilon (simclr_optim_lr (&cfg, 0), 4.8, 1e-12);
}

/* The cosine schedule as first released (commit 4b9d1b1), copied here: the
 * stream schedules must leave it unchanged bit for bit. */
static double
cosine_as_released (const SimclrOptimConfig *cfg, int64_t step)
{
  double peak, progress;

  if (!cfg || step < 0 || step >= cfg->total_steps)
    return 0.0;
  if (cfg->lr_scaling == SIMCLR_LR_SCALING_SQRT)
    peak = cfg->base_lr * sqrt ((double) cfg->batch_size);
  else
    peak = cfg->base_lr * cfg->batch_size / 256.0;
  if (step < cfg->warmup_steps)
    return peak * (double) (step + 1) / (double) cfg->warmup_steps;
  progress = (double) (step - cfg->warmup_steps)
      / (double) (cfg->total_steps - cfg->warmup_steps);
  return peak * 0.5 * (1.0 + cos (M_PI * progress));
}

static void
test_schedule_cosine_unchanged (void)
{
  static const int64_t warmups[] = { 0, 1, 7, 24 };
  static const int64_t totals[] = { 25, 100, 937, 12345 };
  SimclrOptimConfig cfg;
  int checked = 0;

  simclr_optim_config_default (&cfg);
  g_assert_cmpint (cfg.schedule, ==, SIMCLR_LR_SCHEDULE_COSINE);
  for (int sc = 0; sc < 2; sc++)
    for (guint wi = 0; wi < G_N_ELEMENTS (warmups); wi++)
      for (guint ti = 0; ti < G_N_ELEMENTS (totals); ti++) {
        cfg.lr_scaling = sc ? SIMCLR_LR_SCALING_SQRT : SIMCLR_LR_SCALING_LINEAR;
        cfg.base_lr = sc ? 0.075 : 0.3;
        cfg.batch_size = sc ? 32 : 256;
        cfg.warmup_steps = warmups[wi];
        cfg.total_steps = totals[ti];
        /* A restart period set beside the cosine schedule changes nothing. */
        cfg.restart_period = 7;
        for (int64_t step = -2; step < cfg.total_steps + 5; step++) {
          double want = cosine_as_released (&cfg, step);
          double got = simclr_optim_lr (&cfg, step);
          if (memcmp (&want, &got, sizeof want) != 0)
            g_error ("cosine W %" G_GINT64_FORMAT " T %" G_GINT64_FORMAT
                " step %" G_GINT64_FORMAT ": %.17g, released %.17g",
                cfg.warmup_steps, cfg.total_steps, step, got, want);
          checked++;
        }
      }
  g_assert_cmpint (checked, >, 20000);
}

static void
test_schedule_constant (void)
{
  SimclrOptimConfig cfg;
  SimclrError err = { 0 };
  const double peak = 0.075 * sqrt (64.0);

  simclr_optim_config_default (&cfg);
  cfg.schedule = SIMCLR_LR_SCHEDULE_CONSTANT;
  cfg.lr_scaling = SIMCLR_LR_SCALING_SQRT;
  cfg.base_lr = 0.075;
  cfg.batch_size = 64;
  cfg.warmup_steps = 4;
  cfg.total_steps = 0;          /* no horizon: not used, not checked */
  g_assert_cmpint (simclr_optim_config_validate (&cfg, &err), ==, SIMCLR_OK);
  g_assert_cmpfloat (simclr_optim_lr (&cfg, -1), ==, 0.0);
  for (int64_t s = 0; s < 4; s++)
    g_assert_cmpfloat_with_epsilon (simclr_optim_lr (&cfg, s),
        peak * (s + 1) / 4.0, 1e-12);
  /* The same rate for ever, far past any total_steps. */
  static const int64_t later[] = { 4, 5, 99, 100, 101, 1000000,
    G_GINT64_CONSTANT (1) << 40 };
  for (guint i = 0; i < G_N_ELEMENTS (later); i++)
    g_assert_cmpfloat (simclr_optim_lr (&cfg, later[i]), ==, peak);
  cfg.warmup_steps = 0;
  g_assert_cmpfloat (simclr_optim_lr (&cfg, 0), ==, peak);
}

static void
test_schedule_restarts (void)
{
  SimclrOptimConfig cfg;
  SimclrError err = { 0 };
  const double peak = 0.3;      /* defaults: 0.3 x 256 / 256 */
  const int64_t W = 10, P = 40;

  simclr_optim_config_default (&cfg);
  cfg.schedule = SIMCLR_LR_SCHEDULE_COSINE_RESTARTS;
  cfg.warmup_steps = W;
  cfg.restart_period = P;
  cfg.total_steps = 20;         /* not used by this schedule */
  g_assert_cmpint (simclr_optim_config_validate (&cfg, &err), ==, SIMCLR_OK);
  /* Warm-up as in every schedule. */
  g_assert_cmpfloat_with_epsilon (simclr_optim_lr (&cfg, 0), peak / W, 1e-12);
  g_assert_cmpfloat_with_epsilon (simclr_optim_lr (&cfg, W - 1), peak, 1e-12);
  for (int64_t c = 0; c < 5; c++) {
    int64_t s0 = W + c * P;
    /* Each cycle starts at the peak, is half-way at P/2, a quarter in at
     * (1 + cos (pi/4)) / 2, and its last step is just above 0. */
    g_assert_cmpfloat (simclr_optim_lr (&cfg, s0), ==, peak);
    g_assert_cmpfloat_with_epsilon (simclr_optim_lr (&cfg, s0 + P / 2),
        peak / 2, 1e-12);
    g_assert_cmpfloat_with_epsilon (simclr_optim_lr (&cfg, s0 + P / 4),
        peak * 0.5 * (1 + sqrt (0.5)), 1e-12);
    g_assert_cmpfloat_with_epsilon (simclr_optim_lr (&cfg, s0 + P - 1),
        peak * 0.5 * (1 + cos (M_PI * (P - 1) / P)), 1e-12);
    g_assert_cmpfloat (simclr_optim_lr (&cfg, s0 + P - 1), >, 0.0);
    /* Strictly decreasing inside a cycle. */
    for (int64_t s = s0 + 1; s < s0 + P; s++)
      g_assert_cmpfloat (simclr_optim_lr (&cfg, s), <,
          simclr_optim_lr (&cfg, s - 1));
  }
  /* Its first cycle is the cosine schedule with total_steps = W + P. */
  SimclrOptimConfig cos_cfg = cfg;
  cos_cfg.schedule = SIMCLR_LR_SCHEDULE_COSINE;
  cos_cfg.total_steps = W + P;
  for (int64_t s = 0; s < W + P; s++)
    g_assert_cmpfloat_with_epsilon (simclr_optim_lr (&cfg, s),
        simclr_optim_lr (&cos_cfg, s), 1e-15);
  /* Far cycles: the same closed form. */
  int64_t far = W + (G_GINT64_CONSTANT (1) << 40) * P + 3 * P / 4;
  g_assert_cmpfloat_with_epsilon (simclr_optim_lr (&cfg, far),
      peak * 0.5 * (1 + cos (M_PI * 0.75)), 1e-12);
  /* Period 1: the peak at every step after the warm-up. */
  cfg.restart_period = 1;
  for (int64_t s = W; s < W + 20; s++)
    g_assert_cmpfloat (simclr_optim_lr (&cfg, s), ==, peak);
  /* An invalid configuration never yields a rate. */
  cfg.restart_period = 0;
  g_assert_cmpfloat (simclr_optim_lr (&cfg, W + 3), ==, 0.0);
  cfg.restart_period = P;
  cfg.schedule = (SimclrLrSchedule) 9;
  g_assert_cmpfloat (simclr_optim_lr (&cfg, W + 3), ==, 0.0);
}

static void
test_schedule_names (void)
{
  static const SimclrLrSchedule all[] = { SIMCLR_LR_SCHEDULE_COSINE,
    SIMCLR_LR_SCHEDULE_CONSTANT, SIMCLR_LR_SCHEDULE_COSINE_RESTARTS
  };
  for (guint i = 0; i < G_N_ELEMENTS (all); i++) {
    const char *name = simclr_lr_schedule_to_string (all[i]);
    g_assert_nonnull (name);
    g_assert_cmpint (simclr_lr_schedule_from_string (name), ==, all[i]);
  }
  g_assert_cmpstr (simclr_lr_schedule_to_string (SIMCLR_LR_SCHEDULE_COSINE),
      ==, "cosine");
  g_assert_null (simclr_lr_schedule_to_string ((SimclrLrSchedule) 3));
  g_assert_null (simclr_lr_schedule_to_string ((SimclrLrSchedule) - 1));
  g_assert_cmpint (simclr_lr_schedule_from_string ("Cosine"), ==, -1);
  g_assert_cmpint (simclr_lr_schedule_from_string (""), ==, -1);
  g_assert_cmpint (simclr_lr_schedule_from_string (NULL), ==, -1);
}

/* ---------------------------------------------------------------------------
 * The schedule in trainer checkpoints.
 */
static SimclrTrainer *
tiny_trainer (SimclrLrSchedule schedule, int64_t period)
{
  SimclrTrainerConfig cfg;
  SimclrError err = { 0 };

  simclr_trainer_config_default (&cfg);
  cfg.model.width = 0.25;
  cfg.model.image_size = 8;
  cfg.model.in_channels = 1;
  cfg.model.max_batch = 4;
  cfg.model.proj_hidden = 8;
  cfg.model.proj_dim = 8;
  cfg.optim.batch_size = 2;
  cfg.optim.warmup_steps = 3;
  cfg.optim.total_steps = 50;
  cfg.optim.schedule = schedule;
  cfg.optim.restart_period = period;
  SimclrTrainer *t = simclr_trainer_new (&cfg, &err);
  if (!t)
    g_error ("trainer: %s", err.message);
  return t;
}

/* Copies trainer checkpoint @src to @dst without the metadata keys in @drop
 * (NULL-ended), as a file written before those keys existed, and with
 * @key = @value added when @key is not NULL. */
static void
copy_checkpoint (const char *src, const char *dst, const char *const *drop,
    const char *key, const char *value)
{
  SimclrError err = { 0 };
  SimclrSafetensors *st = simclr_safetensors_open (src, &err);
  SimclrSafetensorsWriter *w = simclr_safetensors_writer_new ();
  static const char *const keys[] = { "format", "format_version", "arch",
    "width", "stem", "in_channels", "image_size", "proj_layers",
    "proj_hidden", "proj_dim", "zero_init_residual", "bn_momentum", "bn_eps",
    "feature_dim", "step", "seed", "temperature", "optim_kind", "base_lr",
    "lr_scaling", "batch_size", "momentum", "weight_decay",
    "trust_coefficient", "warmup_steps", "total_steps", "lr_schedule",
    "restart_period", "train_seconds", NULL
  };

  if (!st)
    g_error ("%s", err.message);
  for (int i = 0; i < simclr_safetensors_n_tensors (st); i++) {
    const SimclrSafetensorsTensor *t = simclr_safetensors_tensor (st, i);
    g_assert_cmpint (simclr_safetensors_writer_add (w, t->name, t->dtype,
            t->ndim, t->shape, t->data, &err), ==, SIMCLR_OK);
  }
  for (int i = 0; keys[i]; i++) {
    const char *v = simclr_safetensors_metadata (st, keys[i]);
    gboolean skip = FALSE;
    for (int j = 0; drop[j]; j++)
      skip |= strcmp (drop[j], keys[i]) == 0;
    if (v && !skip)
      g_assert_cmpint (simclr_safetensors_writer_set_metadata (w, keys[i], v,
              &err), ==, SIMCLR_OK);
  }
  if (key)
    g_assert_cmpint (simclr_safetensors_writer_set_metadata (w, key, value,
            &err), ==, SIMCLR_OK);
  /* The tensors are borrowed from @st: write before freeing it. */
  g_assert_cmpint (simclr_safetensors_writer_write (w, dst, &err), ==,
      SIMCLR_OK);
  simclr_safetensors_writer_free (w);
  simclr_safetensors_free (st);
}

static void
test_schedule_checkpoint (void)
{
  gchar *dir = g_dir_make_tmp ("test-optim-XXXXXX", NULL);
  gchar *a = g_build_filename (dir, "a.safetensors", NULL);
  gchar *old = g_build_filename (dir, "old.safetensors", NULL);
  gchar *bad = g_build_filename (dir, "bad.safetensors", NULL);
  static const char *const no_schedule[] = { "lr_schedule", "restart_period",
    NULL
  };
  SimclrError err = { 0 };
  SimclrTrainer *t, *u;

  /* Each schedule and its period survive a save and load. */
  for (int k = 0; k < 3; k++) {
    t = tiny_trainer ((SimclrLrSchedule) k, 17 + k);
    g_assert_cmpint (simclr_trainer_save (t, a, &err), ==, SIMCLR_OK);
    u = simclr_trainer_load (a, 4, &err);
    if (!u)
      g_error ("load: %s", err.message);
    g_assert_cmpint (simclr_trainer_get_config (u)->optim.schedule, ==, k);
    g_assert_cmpint (simclr_trainer_get_config (u)->optim.restart_period, ==,
        17 + k);
    for (int64_t s = 0; s < 200; s++)
      g_assert_cmpfloat (simclr_optim_lr (&simclr_trainer_get_config
              (u)->optim, s), ==, simclr_optim_lr (&simclr_trainer_get_config
              (t)->optim, s));
    simclr_trainer_free (u);
    simclr_trainer_free (t);
  }

  /* A checkpoint written before the schedules existed loads as cosine with
   * the released rates. */
  t = tiny_trainer (SIMCLR_LR_SCHEDULE_COSINE, 1000);
  g_assert_cmpint (simclr_trainer_save (t, a, &err), ==, SIMCLR_OK);
  copy_checkpoint (a, old, no_schedule, NULL, NULL);
  {
    SimclrSafetensors *st = simclr_safetensors_open (old, &err);
    g_assert_null (simclr_safetensors_metadata (st, "lr_schedule"));
    g_assert_null (simclr_safetensors_metadata (st, "restart_period"));
    g_assert_nonnull (simclr_safetensors_metadata (st, "total_steps"));
    simclr_safetensors_free (st);
  }
  u = simclr_trainer_load (old, 4, &err);
  if (!u)
    g_error ("load of a file without lr_schedule: %s", err.message);
  g_assert_cmpint (simclr_trainer_get_config (u)->optim.schedule, ==,
      SIMCLR_LR_SCHEDULE_COSINE);
  g_assert_cmpint (simclr_trainer_get_config (u)->optim.total_steps, ==, 50);
  for (int64_t s = 0; s < 60; s++)
    g_assert_cmpfloat (simclr_optim_lr (&simclr_trainer_get_config (u)->optim,
            s), ==, cosine_as_released (&simclr_trainer_get_config
            (t)->optim, s));
  simclr_trainer_free (u);
  simclr_trainer_free (t);

  /* An unknown schedule name is a format error naming the key and value. */
  copy_checkpoint (a, bad, no_schedule, "lr_schedule", "linear-decay");
  simclr_error_clear (&err);
  g_assert_null (simclr_trainer_load (bad, 4, &err));
  g_assert_cmpint (err.status, ==, SIMCLR_ERROR_FORMAT);
  if (!strstr (err.message, "lr_schedule")
      || !strstr (err.message, "linear-decay"))
    g_error ("message '%s' names neither the key nor the value", err.message);

  g_unlink (a);
  g_unlink (old);
  g_unlink (bad);
  g_rmdir (dir);
  g_free (a);
  g_free (old);
  g_free (bad);
  g_free (dir);
}

/* ---------------------------------------------------------------------------
 * Configuration.
 */
static void
test_config (void)
{
  SimclrOptimConfig def, cfg;
  SimclrError err = { 0 };

  simclr_optim_config_default (&def);
  g_assert_cmpint (def.kind, ==, SIMCLR_OPTIM_LARS);
  g_assert_cmpfloat (def.base_lr, ==, 0.3);
  g_assert_cmpint (def.lr_scaling, ==, SIMCLR_LR_SCALING_LINEAR);
  g_assert_cmpint (def.batch_size, ==, 256);
  g_assert_cmpfloat (def.momentum, ==, 0.9);
  g_assert_cmpfloat (def.weight_decay, ==, 1e-6);
  g_assert_cmpfloat (def.trust_coefficient, ==, 0.001);
  g_assert_cmpint (def.warmup_steps, ==, 10);
  g_assert_cmpint (def.total_steps, ==, 100);
  g_assert_cmpint (simclr_optim_config_validate (&def, &err), ==, SIMCLR_OK);

#define EXPECT_BAD(field, value, word) \
  do { \
    cfg = def; \
    cfg.field = value; \
    g_assert_cmpint (simclr_optim_config_validate (&cfg, &err), ==, \
        SIMCLR_ERROR_INVALID_ARGUMENT); \
    if (!strstr (err.message, word)) \
      g_error ("%s = %s: message '%s' lacks '%s'", #field, #value, \
          err.message, word); \
  } while (0)
  EXPECT_BAD (kind, 7, "kind");
  EXPECT_BAD (lr_scaling, 3, "scaling");
  EXPECT_BAD (base_lr, 0.0, "learning rate");
  EXPECT_BAD (base_lr, -0.1, "learning rate");
  EXPECT_BAD (base_lr, INFINITY, "learning rate");
  EXPECT_BAD (batch_size, 0, "batch");
  EXPECT_BAD (momentum, 1.0, "momentum");
  EXPECT_BAD (momentum, -0.1, "momentum");
  EXPECT_BAD (momentum, NAN, "momentum");
  EXPECT_BAD (weight_decay, -1e-6, "decay");
  EXPECT_BAD (trust_coefficient, 0.0, "trust");
  EXPECT_BAD (warmup_steps, -1, "warm-up");
  EXPECT_BAD (total_steps, 10, "total");
  EXPECT_BAD (schedule, 3, "schedule");
  EXPECT_BAD (schedule, -1, "schedule");
  cfg = def;
  cfg.schedule = SIMCLR_LR_SCHEDULE_COSINE_RESTARTS;
  def = cfg;
  EXPECT_BAD (restart_period, 0, "restart period");
  EXPECT_BAD (restart_period, -5, "restart period");
  simclr_optim_config_default (&def);
#undef EXPECT_BAD
  /* The stream schedules have no horizon to check. */
  cfg = def;
  cfg.schedule = SIMCLR_LR_SCHEDULE_CONSTANT;
  cfg.total_steps = 0;
  cfg.restart_period = 0;
  g_assert_cmpint (simclr_optim_config_validate (&cfg, &err), ==, SIMCLR_OK);
  cfg.schedule = SIMCLR_LR_SCHEDULE_COSINE_RESTARTS;
  cfg.restart_period = 1;
  g_assert_cmpint (simclr_optim_config_validate (&cfg, &err), ==, SIMCLR_OK);
  /* SGD has no trust coefficient to check. */
  cfg = def;
  cfg.kind = SIMCLR_OPTIM_SGD;
  cfg.trust_coefficient = 0.0;
  g_assert_cmpint (simclr_optim_config_validate (&cfg, &err), ==, SIMCLR_OK);
  cfg.warmup_steps = 0;
  cfg.total_steps = 1;
  g_assert_cmpint (simclr_optim_config_validate (&cfg, &err), ==, SIMCLR_OK);
  g_assert_cmpint (simclr_optim_config_validate (NULL, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/optim/lars-vs-naive", test_lars_vs_naive);
  g_test_add_func ("/optim/sgd-vs-naive", test_sgd_vs_naive);
  g_test_add_func ("/optim/decay-only-adapt-groups", test_decay_only_adapt_groups);
  g_test_add_func ("/optim/lars-torch-fixture", test_lars_torch_fixture);
  g_test_add_func ("/optim/momentum", test_momentum);
  g_test_add_func ("/optim/nonfinite-gradient", test_nonfinite_gradient);
  g_test_add_func ("/optim/schedule-points", test_schedule_points);
  g_test_add_func ("/optim/schedule-scaling", test_schedule_scaling);
  g_test_add_func ("/optim/schedule-cosine-unchanged",
      test_schedule_cosine_unchanged);
  g_test_add_func ("/optim/schedule-constant", test_schedule_constant);
  g_test_add_func ("/optim/schedule-restarts", test_schedule_restarts);
  g_test_add_func ("/optim/schedule-names", test_schedule_names);
  g_test_add_func ("/optim/schedule-checkpoint", test_schedule_checkpoint);
  g_test_add_func ("/optim/config", test_config);
  return g_test_run ();
}
