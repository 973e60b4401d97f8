/* test-optim.c: LARS / SGD against a double-precision naive reference written
 * here, closed forms for decay and momentum, the learning-rate schedule at
 * known points, and the configuration checks. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <glib.h>

#include "simclr/optim.h"
#include "simclr/rng.h"

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
#undef EXPECT_BAD
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
  g_test_add_func ("/optim/config", test_config);
  return g_test_run ();
}
