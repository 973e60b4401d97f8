/* test-ntxent.c: NT-Xent loss, gradient and contrastive accuracy against
 * independent references: a double-precision naive loss written here (its
 * central differences check dz), closed forms, a hand-made accuracy case and
 * a PyTorch fixture (tests/data/make-ntxent-fixture.py); the same for the
 * multi-positive form of K views per sample (groups), with its own PyTorch
 * fixture (tests/data/make-multiview-fixture.py). The kernel's vectorised
 * exponentials against libm, and its row pass at every instruction-set
 * level (same bits). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "simclr/cpu.h"
#include "simclr/ntxent.h"
#include "simclr/rng.h"

#include "ntxent-private.h"

#include "loss-ref.h"

/* ---------------------------------------------------------------------------
 * The reference is loss_ref_ntxent (loss-ref.h): double precision, straight
 * from the definition.
 */
static void
random_z (float *z, int R, int D, uint64_t seed)
{
  for (int j = 0; j < R * D; j++)
    z[j] = (float) simclr_rng_normal (seed, 1, j);
}

/* Forward + backward through the API; fails the test on a non-OK status. */
static SimclrNtxentResult
run (const float *z, int R, int D, float tau, const int *pos, float *dz)
{
  SimclrError err = { 0 };
  SimclrNtxentResult res = { 0 };
  SimclrNtxent *nt = simclr_ntxent_new (R, D, &err);
  SimclrStatus st;

  g_assert_nonnull (nt);
  st = simclr_ntxent_forward (nt, z, R, D, tau, pos, &res, &err);
  if (st != SIMCLR_OK)
    g_error ("forward failed: %s", err.message);
  if (dz)
    simclr_ntxent_backward (nt, dz);
  simclr_ntxent_free (nt);
  return res;
}

/* ---------------------------------------------------------------------------
 * Finite differences of the naive double loss against the C gradient.
 */
typedef struct {
  int R, D;
  float tau;
  int map;      /* 0: default i <-> i+R/2; 1: neighbours i <-> i^1;
                 * 2: one-way cycle p(i) = i+1 mod R (not symmetric) */
} GradCase;

static const GradCase grad_cases[] = {
  { 2, 3, 0.5f, 0 },
  { 4, 2, 1.0f, 0 },
  { 8, 5, 0.1f, 0 },
  { 8, 5, 0.5f, 1 },
  { 12, 16, 0.07f, 0 },
  { 16, 32, 0.2f, 2 },
  { 34, 128, 0.5f, 0 },
  { 34, 128, 0.1f, 1 },
};

static void
test_grad_fd (gconstpointer data)
{
  const GradCase *gc = data;
  const int R = gc->R, D = gc->D, n = R * D;
  float *z = g_new (float, n), *dz = g_new (float, n);
  double *zd = g_new (double, n);
  int *pos = NULL;
  double ref, gmax = 0.0, worst = 0.0;
  int worst_j = -1, stride;
  double worst_fd = 0.0;
  SimclrNtxentResult res;

  random_z (z, R, D, 1000 + R * 7 + D + gc->map);
  if (gc->map) {
    pos = g_new (int, R);
    for (int i = 0; i < R; i++)
      pos[i] = gc->map == 1 ? (i ^ 1) : (i + 1) % R;
  }
  for (int j = 0; j < n; j++)
    zd[j] = z[j];

  res = run (z, R, D, gc->tau, pos, dz);
  ref = loss_ref_ntxent (zd, R, D, gc->tau, pos, NULL, NULL, 0);
  if (fabs (res.loss - ref) > 1e-5 * fabs (ref))
    g_error ("R %d D %d tau %g: loss %.9g, naive double %.9g", R, D,
        (double) gc->tau, res.loss, ref);

  for (int j = 0; j < n; j++)
    gmax = fmax (gmax, fabs (dz[j]));
  if (R == 2) {
    /* One other row, and it is the positive: loss 0 whatever z is. */
    g_assert_cmpfloat_with_epsilon (res.loss, 0.0, 1e-7);
    g_assert_cmpfloat (gmax, <, 1e-6);
    goto out;
  }
  g_assert_cmpfloat (gmax, >, 0.0);

  /* At most ~300 probes per case, spread over the whole matrix. Central
   * differences in double with h = 1e-5: truncation ~h^2 and rounding
   * ~1e-16/h, both far below the float gradient's own error. The metric is
   * the error relative to the gradient's largest element, so entries near 0
   * are not judged by a meaningless ratio. */
  stride = n > 300 ? n / 300 + 1 : 1;
  for (int j = 0; j < n; j += stride) {
    const double h = 1e-5;
    double keep = zd[j], fp, fm, fd, e;
    zd[j] = keep + h;
    fp = loss_ref_ntxent (zd, R, D, gc->tau, pos, NULL, NULL, 0);
    zd[j] = keep - h;
    fm = loss_ref_ntxent (zd, R, D, gc->tau, pos, NULL, NULL, 0);
    zd[j] = keep;
    fd = (fp - fm) / (2 * h);
    e = fabs (fd - dz[j]) / gmax;
    if (e > worst) {
      worst = e;
      worst_j = j;
      worst_fd = fd;
    }
  }
  if (worst > 1e-5)
    g_error ("R %d D %d tau %g map %d: dz[%d] = %.9g, finite difference %.9g "
        "(error %.3g of max |dz| %.3g)", R, D, (double) gc->tau, gc->map,
        worst_j, (double) dz[worst_j], worst_fd, worst, gmax);
  g_test_message ("R %d D %d tau %g map %d: loss %.6f, worst fd error %.2e",
      R, D, (double) gc->tau, gc->map, res.loss, worst);

out:
  g_free (z);
  g_free (dz);
  g_free (zd);
  g_free (pos);
}

/* ---------------------------------------------------------------------------
 * Closed forms.
 */
static void
test_identical_rows (void)
{
  /* Every s_ik = 1/tau, so each anchor's softmax is uniform over the R-1
   * others: loss = -1/tau + log ((R-1) e^{1/tau}) = ln. The gradient
   * P_ik - [k == p] sums to 0 against the common u, and what is left is along
   * u, which the normalisation's Jacobian removes: dz = 0. */
  const int sizes[] = { 2, 4, 16, 64 };
  for (unsigned t = 0; t < G_N_ELEMENTS (sizes); t++) {
    const int R = sizes[t], D = 6;
    float *z = g_new (float, R * D), *dz = g_new (float, R * D);
    SimclrNtxentResult res;
    for (int i = 0; i < R; i++)
      for (int c = 0; c < D; c++)
        z[i * D + c] = 0.3f * (c + 1) - 1.0f;
    res = run (z, R, D, 0.1f, NULL, dz);
    g_assert_cmpfloat_with_epsilon (res.loss, log (R - 1.0), 1e-5);
    for (int j = 0; j < R * D; j++)
      if (fabs (dz[j]) > 1e-5)
        g_error ("R %d: dz[%d] = %g, expected 0", R, j, (double) dz[j]);
    /* Ties count for the positive. */
    g_assert_cmpfloat (res.top1, ==, 1.0);
    g_free (z);
    g_free (dz);
  }
}

static void
test_orthogonal_negatives (void)
{
  /* Sample s's two views are c e_s and c' e_s (different lengths, same
   * direction), so s_{i,p(i)} = 1/tau and every other s_ik = 0:
   *   loss_i = -1/tau + log (e^{1/tau} + (R-2) e^0)
   *          = log (1 + (R-2) e^{-1/tau}),
   * the same for every anchor, hence for the mean. */
  const int sizes[] = { 2, 4, 10, 32 };
  /* tau = 0.001 puts the positive's logit at 1000, where exp overflows even
   * in double: only the max-shifted log-sum-exp gives the closed form (~0). */
  const float taus[] = { 0.001f, 0.1f, 0.5f, 1.0f };
  for (unsigned t = 0; t < G_N_ELEMENTS (sizes); t++) {
    for (unsigned q = 0; q < G_N_ELEMENTS (taus); q++) {
      const int R = sizes[t], N = R / 2, D = N + 3;
      const double tau = taus[q];
      float *z = g_new0 (float, R * D);
      double expect = log (1.0 + (R - 2) * exp (-1.0 / tau));
      SimclrNtxentResult res;
      for (int s = 0; s < N; s++) {
        z[s * D + s] = 0.5f + s;
        z[(s + N) * D + s] = 2.0f;
      }
      float *dz = g_new (float, R * D);
      res = run (z, R, D, taus[q], NULL, dz);
      for (int j = 0; j < R * D; j++)
        g_assert_true (isfinite (dz[j]));
      g_free (dz);
      if (fabs (res.loss - expect) > 1e-6 * fmax (1.0, expect))
        g_error ("R %d tau %g: loss %.9g, closed form %.9g", R, tau,
            res.loss, expect);
      g_assert_cmpfloat (res.top1, ==, 1.0);
      g_assert_cmpfloat (res.top5, ==, 1.0);
      g_free (z);
    }
  }
}

/* ---------------------------------------------------------------------------
 * Accuracy by hand. Eight unit vectors in a plane at angles (degrees)
 *   row:   0   1   2   3   4    5    6    7
 *   angle: 0  10  25  45  70  100  135  175
 * (lengths vary; the third coordinate is 0). All gaps are below 180 degrees,
 * so more similar means a smaller angle between them.
 * Default map (i <-> i+4), "others closer than the positive":
 *   0: 1,2,3 (3)   1: 0,2,3,4 (4)   2: 0,1,3,4,5 (5)   3: 0,1,2,4,5,6 (6)
 *   4: 1,2,3,5,6 (5)   5: 2,3,4,6,7 (5)   6: 3,4,5,7 (4)   7: 4,5,6 (3)
 *   -> top-1 0/8, top-5 4/8 (anchors 0, 1, 6, 7).
 * Neighbour map (i <-> i^1): 0: none; 1: none (2 is 15 away, 0 is 10);
 *   2: 1 (15 < 20); 3: none (4 is 25 > 20); 4: 3 (25 < 30); 5: none (6 is
 *   35 > 30); 6: 5 (35 < 40); 7: none -> top-1 5/8, top-5 8/8.
 */
static void
test_accuracy_by_hand (void)
{
  static const double deg[8] = { 0, 10, 25, 45, 70, 100, 135, 175 };
  static const int neighbours[8] = { 1, 0, 3, 2, 5, 4, 7, 6 };
  float z[8 * 3];
  SimclrNtxentResult res;

  for (int i = 0; i < 8; i++) {
    double len = 0.5 + 0.25 * i;
    z[i * 3 + 0] = (float) (len * cos (deg[i] * G_PI / 180.0));
    z[i * 3 + 1] = (float) (len * sin (deg[i] * G_PI / 180.0));
    z[i * 3 + 2] = 0.0f;
  }
  res = run (z, 8, 3, 0.5f, NULL, NULL);
  g_assert_cmpfloat (res.top1, ==, 0.0);
  g_assert_cmpfloat (res.top5, ==, 0.5);
  res = run (z, 8, 3, 0.5f, neighbours, NULL);
  g_assert_cmpfloat (res.top1, ==, 5.0 / 8.0);
  g_assert_cmpfloat (res.top5, ==, 1.0);
}

/* ---------------------------------------------------------------------------
 * PyTorch fixture.
 */
static void
test_torch_fixture (void)
{
  char *path = g_build_filename (SIMCLR_TEST_DATA, "ntxent-fixture.txt", NULL);
  FILE *f = fopen (path, "r");
  char word[64];
  int cases = 0;

  /* The fixture is committed: missing means a broken tree, not a skip. */
  if (!f)
    g_error ("cannot open %s (regenerate with tests/data/make-ntxent-fixture.py)",
        path);
  while (fscanf (f, "%63s", word) == 1) {
    char name[64];
    int R, D;
    double tau, loss, top1, top5, dmax = 0.0;
    float *z, *dz;
    double *dref;
    SimclrNtxentResult res;

    if (word[0] == '#') {
      int ch;
      while ((ch = fgetc (f)) != EOF && ch != '\n');
      continue;
    }
    g_assert_cmpstr (word, ==, "case");
    if (fscanf (f, "%63s %d %d %lf", name, &R, &D, &tau) != 4)
      g_error ("ntxent fixture: bad case header");
    z = g_new (float, R * D);
    dz = g_new (float, R * D);
    dref = g_new (double, R * D);
    fixture_word (f, "z");
    for (int j = 0; j < R * D; j++)
      z[j] = (float) fixture_number (f);
    fixture_word (f, "loss");
    loss = fixture_number (f);
    fixture_word (f, "top1");
    top1 = fixture_number (f);
    fixture_word (f, "top5");
    top5 = fixture_number (f);
    fixture_word (f, "dz");
    for (int j = 0; j < R * D; j++) {
      dref[j] = fixture_number (f);
      dmax = fmax (dmax, fabs (dref[j]));
    }

    res = run (z, R, D, (float) tau, NULL, dz);
    /* Tolerances: float32 similarities carry ~1e-7 relative error, scaled by
     * 1/tau <= 10 in the logits: 1e-5 relative on the loss, and 1e-5 of the
     * largest |dz| per element (dz entries near 0 make a per-element ratio
     * meaningless). */
    if (fabs (res.loss - loss) > 1e-5 * fabs (loss))
      g_error ("%s: loss %.9g, torch %.9g", name, res.loss, loss);
    g_assert_cmpfloat (res.top1, ==, top1);
    g_assert_cmpfloat (res.top5, ==, top5);
    for (int j = 0; j < R * D; j++)
      if (fabs (dz[j] - dref[j]) > 1e-5 * dmax)
        g_error ("%s: dz[%d] = %.9g, torch %.9g", name, j, (double) dz[j],
            dref[j]);
    cases++;
    g_free (z);
    g_free (dz);
    g_free (dref);
  }
  fclose (f);
  g_free (path);
  g_assert_cmpint (cases, ==, 3);
}

/* ---------------------------------------------------------------------------
 * Multi-positive (groups): every other row of an anchor's group is a
 * positive, loss_i = log sum_{k != i} exp (s_ik) - mean_{p in P(i)} s_ip
 * (loss_ref_ntxent with a group map).
 */
static SimclrNtxentResult
run_groups (const float *z, int R, int D, float tau, const int *group,
    float *dz)
{
  SimclrError err = { 0 };
  SimclrNtxentResult res = { 0 };
  SimclrNtxent *nt = simclr_ntxent_new (R + R % 2, D, &err);

  g_assert_nonnull (nt);
  if (simclr_ntxent_forward_groups (nt, z, R, D, tau, group, &res, &err)
      != SIMCLR_OK)
    g_error ("groups forward failed: %s", err.message);
  if (dz)
    simclr_ntxent_backward (nt, dz);
  simclr_ntxent_free (nt);
  return res;
}

typedef struct {
  int views, n, D;
  float tau;
  int uneven;   /* 1: groups of 2, 3 and 4 rows, interleaved */
} GroupCase;

static const GroupCase group_cases[] = {
  { 3, 4, 5, 0.5f, 0 },
  { 4, 3, 8, 0.2f, 0 },
  { 5, 2, 6, 0.1f, 0 },
  { 3, 5, 16, 0.07f, 0 },       /* 15 rows: odd */
  { 0, 0, 7, 0.3f, 1 },
};

static void
test_groups_fd (gconstpointer data)
{
  const GroupCase *gc = data;
  static const int uneven_groups[9] = { 0, 1, 2, 0, 1, 2, 2, 1, 2 };
  const int R = gc->uneven ? 9 : gc->views * gc->n, D = gc->D, n = R * D;
  float *z = g_new (float, n), *dz = g_new (float, n);
  double *zd = g_new (double, n);
  int *group = g_new (int, R);
  double ref, gmax = 0.0, worst = 0.0, worst_fd = 0.0;
  int worst_j = -1;
  SimclrNtxentResult res;

  for (int i = 0; i < R; i++)
    group[i] = gc->uneven ? uneven_groups[i] : i % gc->n;
  /* Views of a sample near each other, so the loss is not flat. */
  for (int i = 0; i < R; i++)
    for (int c = 0; c < D; c++)
      z[i * D + c] = (float) (simclr_rng_normal (77, group[i], c)
          + 0.7 * simclr_rng_normal (78 + gc->views, i, c));
  for (int j = 0; j < n; j++)
    zd[j] = z[j];
  res = run_groups (z, R, D, gc->tau, group, dz);
  ref = loss_ref_ntxent (zd, R, D, gc->tau, NULL, group, NULL, 0);
  if (fabs (res.loss - ref) > 1e-5 * fabs (ref))
    g_error ("groups R %d D %d tau %g: loss %.9g, naive double %.9g", R, D,
        (double) gc->tau, res.loss, ref);
  for (int j = 0; j < n; j++)
    gmax = fmax (gmax, fabs (dz[j]));
  g_assert_cmpfloat (gmax, >, 0.0);
  /* Every element: the cases are small. Same metric as test_grad_fd. */
  for (int j = 0; j < n; j++) {
    const double h = 1e-5;
    double keep = zd[j], fp, fm, fd, e;
    zd[j] = keep + h;
    fp = loss_ref_ntxent (zd, R, D, gc->tau, NULL, group, NULL, 0);
    zd[j] = keep - h;
    fm = loss_ref_ntxent (zd, R, D, gc->tau, NULL, group, NULL, 0);
    zd[j] = keep;
    fd = (fp - fm) / (2 * h);
    e = fabs (fd - dz[j]) / gmax;
    if (e > worst) {
      worst = e;
      worst_j = j;
      worst_fd = fd;
    }
  }
  if (worst > 1e-5)
    g_error ("groups R %d D %d tau %g: dz[%d] = %.9g, finite difference %.9g "
        "(error %.3g of max |dz| %.3g)", R, D, (double) gc->tau, worst_j,
        (double) dz[worst_j], worst_fd, worst, gmax);
  g_test_message ("groups R %d D %d tau %g: loss %.6f top-1 %.3f, worst fd "
      "error %.2e", R, D, (double) gc->tau, res.loss, res.top1, worst);
  g_free (z);
  g_free (dz);
  g_free (zd);
  g_free (group);
}

/* Groups of two are NT-Xent: same loss, accuracies and dz as the pairs
 * mode with the default map. Identical rows: every log-probability is
 * -ln, so loss ln and dz = 0 whatever the group sizes. */
static void
test_groups_closed_forms (void)
{
  const int R = 12, D = 7;
  float z[12 * 7], dz_pairs[12 * 7], dz_groups[12 * 7];
  int group[12];
  SimclrNtxentResult a, b;

  random_z (z, R, D, 4242);
  for (int i = 0; i < R; i++)
    group[i] = i % (R / 2);
  a = run (z, R, D, 0.3f, NULL, dz_pairs);
  b = run_groups (z, R, D, 0.3f, group, dz_groups);
  g_assert_cmpfloat_with_epsilon (a.loss, b.loss, 1e-6 * fabs (a.loss));
  g_assert_cmpfloat (a.top1, ==, b.top1);
  g_assert_cmpfloat (a.top5, ==, b.top5);
  for (int j = 0; j < R * D; j++)
    if (fabs (dz_pairs[j] - dz_groups[j]) > 1e-6)
      g_error ("groups of 2: dz[%d] = %.9g, pairs %.9g", j,
          (double) dz_groups[j], (double) dz_pairs[j]);

  for (int i = 0; i < R; i++) {
    group[i] = i % 3;           /* 3 groups of 4 */
    for (int c = 0; c < D; c++)
      z[i * D + c] = 0.2f * c - 0.5f;
  }
  b = run_groups (z, R, D, 0.1f, group, dz_groups);
  g_assert_cmpfloat_with_epsilon (b.loss, log (R - 1.0), 1e-5);
  g_assert_cmpfloat (b.top1, ==, 1.0);
  for (int j = 0; j < R * D; j++)
    if (fabs (dz_groups[j]) > 1e-5)
      g_error ("identical rows: dz[%d] = %g, expected 0", j,
          (double) dz_groups[j]);
}

/* The PyTorch fixture of the multi-positive loss
 * (tests/data/make-multiview-fixture.py): SupCon's L_out with the sample
 * as the label, written independently in torch. */
static void
test_groups_torch_fixture (void)
{
  char *path = g_build_filename (SIMCLR_TEST_DATA, "multiview-fixture.txt",
      NULL);
  FILE *f = fopen (path, "r");
  char word[64];
  int cases = 0;

  if (!f)
    g_error ("cannot open %s (regenerate with "
        "tests/data/make-multiview-fixture.py)", path);
  while (fscanf (f, "%63s", word) == 1) {
    char name[64];
    int R, D, V;
    double tau, loss, top1, top5, dmax = 0.0;
    float *z, *dz;
    double *dref;
    int *group;
    SimclrNtxentResult res;

    if (word[0] == '#') {
      int ch;
      while ((ch = fgetc (f)) != EOF && ch != '\n');
      continue;
    }
    g_assert_cmpstr (word, ==, "case");
    if (fscanf (f, "%63s %d %d %lf %d", name, &R, &D, &tau, &V) != 5)
      g_error ("multiview fixture: bad case header");
    z = g_new (float, R * D);
    dz = g_new (float, R * D);
    dref = g_new (double, R * D);
    group = g_new (int, R);
    fixture_word (f, "z");
    for (int j = 0; j < R * D; j++)
      z[j] = (float) fixture_number (f);
    fixture_word (f, "loss");
    loss = fixture_number (f);
    fixture_word (f, "top1");
    top1 = fixture_number (f);
    fixture_word (f, "top5");
    top5 = fixture_number (f);
    fixture_word (f, "dz");
    for (int j = 0; j < R * D; j++) {
      dref[j] = fixture_number (f);
      dmax = fmax (dmax, fabs (dref[j]));
    }
    for (int i = 0; i < R; i++)
      group[i] = i % (R / V);   /* view-major: row v * n + j */
    res = run_groups (z, R, D, (float) tau, group, dz);
    /* Tolerances as the NT-Xent fixture's (1/tau <= 10). */
    if (fabs (res.loss - loss) > 1e-5 * fabs (loss))
      g_error ("%s: loss %.9g, torch %.9g", name, res.loss, loss);
    if (res.top1 != top1 || res.top5 != top5)
      g_error ("%s: top-1 %g top-5 %g, torch %g %g", name, res.top1,
          res.top5, top1, top5);
    for (int j = 0; j < R * D; j++)
      if (fabs (dz[j] - dref[j]) > 1e-5 * dmax)
        g_error ("%s: dz[%d] = %.9g, torch %.9g", name, j, (double) dz[j],
            dref[j]);
    g_test_message ("%s: loss %.6f (torch %.6f), top-1 %.3f", name,
        res.loss, loss, res.top1);
    cases++;
    g_free (z);
    g_free (dz);
    g_free (dref);
    g_free (group);
  }
  fclose (f);
  g_free (path);
  g_assert_cmpint (cases, ==, 4);
}

static void
test_groups_rejects (void)
{
  SimclrError err = { 0 };
  SimclrNtxentResult res;
  float z[6 * 4];
  int lonely[6] = { 0, 0, 1, 1, 2, 3 };   /* rows 4 and 5 have no positive */
  SimclrNtxent *nt = simclr_ntxent_new (6, 4, &err);

  random_z (z, 6, 4, 9);
  g_assert_cmpint (simclr_ntxent_forward_groups (nt, z, 6, 4, 0.5f, lonely,
          &res, &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "only row of group"));
  g_assert_cmpint (simclr_ntxent_forward_groups (nt, z, 6, 4, 0.5f, NULL,
          &res, &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_ntxent_forward_groups (nt, z, 1, 4, 0.5f, lonely,
          &res, &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_ntxent_forward_groups (nt, z, 8, 4, 0.5f, lonely,
          &res, &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  simclr_ntxent_free (nt);
}

/* ---------------------------------------------------------------------------
 * Rejections.
 */
static void
test_rejects (void)
{
  SimclrError err = { 0 };
  SimclrNtxentResult res;
  float z[8 * 4], dz[8 * 4];
  int bad_pos[8] = { 4, 5, 6, 7, 0, 1, 2, 7 };  /* 7 is its own positive */
  SimclrNtxent *nt;

  g_assert_null (simclr_ntxent_new (7, 4, &err));
  g_assert_cmpint (err.status, ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "7"));
  g_assert_null (simclr_ntxent_new (8, 0, &err));
  g_assert_cmpint (err.status, ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  simclr_ntxent_free (NULL);

  nt = simclr_ntxent_new (8, 4, &err);
  g_assert_nonnull (nt);
  random_z (z, 8, 4, 5);

  /* Backward before any forward writes nothing. */
  for (int j = 0; j < 32; j++)
    dz[j] = 42.0f;
  simclr_ntxent_backward (nt, dz);
  g_assert_cmpfloat (dz[0], ==, 42.0f);

  g_assert_cmpint (simclr_ntxent_forward (nt, z, 5, 4, 0.5f, NULL, &res, &err),
      ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "rows 5"));
  g_assert_cmpint (simclr_ntxent_forward (nt, z, 10, 4, 0.5f, NULL, &res, &err),
      ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_ntxent_forward (nt, z, 0, 4, 0.5f, NULL, &res, &err),
      ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_ntxent_forward (nt, z, 8, 0, 0.5f, NULL, &res, &err),
      ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "dim 0"));
  g_assert_cmpint (simclr_ntxent_forward (nt, z, 8, 5, 0.5f, NULL, &res, &err),
      ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_ntxent_forward (nt, z, 8, 4, 0.0f, NULL, &res, &err),
      ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "temperature"));
  g_assert_cmpint (simclr_ntxent_forward (nt, z, 8, 4, -1.0f, NULL, &res, &err),
      ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_ntxent_forward (nt, z, 8, 4, NAN, NULL, &res, &err),
      ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_ntxent_forward (nt, z, 8, 4, 0.5f, bad_pos, &res,
          &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "positive[7]"));
  bad_pos[7] = 8;
  g_assert_cmpint (simclr_ntxent_forward (nt, z, 8, 4, 0.5f, bad_pos, &res,
          &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);

  /* A good forward, then a failed one: backward must not use stale state. */
  g_assert_cmpint (simclr_ntxent_forward (nt, z, 8, 4, 0.5f, NULL, &res, &err),
      ==, SIMCLR_OK);
  z[13] = NAN;
  g_assert_cmpint (simclr_ntxent_forward (nt, z, 8, 4, 0.5f, NULL, &res, &err),
      ==, SIMCLR_ERROR_NUMERIC);
  g_assert_nonnull (strstr (err.message, "row 3"));
  z[13] = INFINITY;
  g_assert_cmpint (simclr_ntxent_forward (nt, z, 8, 4, 0.5f, NULL, &res, &err),
      ==, SIMCLR_ERROR_NUMERIC);
  simclr_ntxent_backward (nt, dz);
  g_assert_cmpfloat (dz[0], ==, 42.0f);

  /* A smaller batch than the workspace is fine. */
  z[13] = 0.25f;
  g_assert_cmpint (simclr_ntxent_forward (nt, z, 4, 3, 0.5f, NULL, &res, &err),
      ==, SIMCLR_OK);
  g_assert_true (isfinite (res.loss));
  simclr_ntxent_free (nt);
}

/* ---------------------------------------------------------------------------
 * The vectorised row pass (ntxent-private.h hooks): its exponentials against
 * libm's double exp, and the same bits at every instruction-set level.
 */
static void
test_exp_accuracy (void)
{
  /* Logits minus their maximum over [-90, 0] on a fine grid (every ~1e-4,
   * so every reduction interval k and every part of [-ln2/2, ln2/2] is
   * hit) plus the edges: 0 (exactly 1), the underflow cut at -87 and -inf
   * (the anchor's own column: 0). n is not a multiple of the lanes, so the
   * padded tail runs too. */
  const int n = 900001 + 4;
  float *x = g_new (float, n), *y = g_new (float, n), *first = NULL;
  for (int k = 0; k < n - 4; k++)
    x[k] = -90.0f * (float) k / (float) (n - 5);
  x[n - 4] = 0.0f;
  x[n - 3] = -INFINITY;
  x[n - 2] = -87.0f;
  x[n - 1] = -1e30f;
  for (int lv = 0; lv <= (int) simclr_cpu_best_level (); lv++) {
    double worst = 0.0, sum, ref = 0.0;
    int worst_k = -1;
    memcpy (y, x, n * sizeof (float));
    sum = simclr_ntxent_exp_sum_at ((SimclrCpuLevel) lv, y, n, 0.0f, 1.0f);
    for (int k = 0; k < n; k++) {
      const double e = exp ((double) x[k]);
      if (x[k] < -87.0f) {
        if (y[k] != 0.0f)
          g_error ("level %s: e^%g = %g, expected 0 below the cut",
              simclr_cpu_level_name (lv), (double) x[k], (double) y[k]);
        continue;
      }
      /* Relative error in units of 2^-24 (half an ulp at 1). */
      double err = fabs (y[k] - e) / e * 16777216.0;
      if (err > worst) {
        worst = err;
        worst_k = k;
      }
      ref += y[k];
    }
    /* Within 2 ulp (4 half-ulps) at every point of the grid. */
    if (worst > 4.0)
      g_error ("level %s: e^%.9g = %.9g, libm %.9g (%.2f x 2^-24 relative)",
          simclr_cpu_level_name (lv), (double) x[worst_k],
          (double) y[worst_k], exp ((double) x[worst_k]), worst);
    g_assert_cmpfloat (y[n - 4], ==, 1.0f);
    /* The returned sum is the float64 sum of the stored terms (in another
     * order than ref's). */
    if (fabs (sum - ref) > 1e-12 * ref)
      g_error ("level %s: sum %.17g, terms add to %.17g",
          simclr_cpu_level_name (lv), sum, ref);
    g_test_message ("level %s: worst %.2f x 2^-24 at e^%.6g",
        simclr_cpu_level_name (lv), worst, (double) x[worst_k]);
    if (!first) {
      first = g_memdup2 (y, n * sizeof (float));
    } else if (memcmp (first, y, n * sizeof (float)) != 0) {
      g_error ("level %s: exponentials differ from level generic's",
          simclr_cpu_level_name (lv));
    }
  }
  g_free (first);
  g_free (x);
  g_free (y);
}

/* Forward + backward of @nt at @level: pairs (positive or NULL), groups or
 * with a queue; dz and the result out. */
static void
level_run (SimclrCpuLevel level, const float *z, int R, int D, float tau,
    const int *pos, const int *group, const float *queue, int Q,
    SimclrNtxentResult *res, float *dz)
{
  SimclrError err = { 0 };
  SimclrNtxent *nt = simclr_ntxent_new_with_queue (R + R % 2, Q, D, &err);

  g_assert_nonnull (nt);
  simclr_ntxent_set_cpu_level (nt, level);
  if (simclr_ntxent_forward_queue (nt, z, R, D, tau, pos, group, queue, Q,
          res, &err) != SIMCLR_OK)
    g_error ("level %s: forward failed: %s", simclr_cpu_level_name (level),
        err.message);
  simclr_ntxent_backward (nt, dz);
  simclr_ntxent_free (nt);
}

static void
test_levels_same_bits (void)
{
  /* R = 518 (not a multiple of 8 lanes), the main job's D = 128; pairs,
   * groups of 3 views and a queue of 37 rows (unit rows, as loss.c keeps
   * them). */
  const int R = 518, D = 128, Q = 37;
  float *z = g_new (float, R * D), *queue = g_new (float, Q * D);
  float *dz0 = g_new (float, R * D), *dz = g_new (float, R * D);
  int *group = g_new (int, R - 2);

  random_z (z, R, D, 77);
  random_z (queue, Q, D, 78);
  for (int q = 0; q < Q; q++) {
    double ss = 0.0;
    for (int c = 0; c < D; c++)
      ss += (double) queue[q * D + c] * queue[q * D + c];
    for (int c = 0; c < D; c++)
      queue[q * D + c] = (float) (queue[q * D + c] / sqrt (ss));
  }
  for (int i = 0; i < R - 2; i++)
    group[i] = i % ((R - 2) / 3);
  for (int mode = 0; mode < 3; mode++) {
    SimclrNtxentResult r0, r;
    const int rows = mode == 1 ? R - 2 : R;
    const int *g = mode == 1 ? group : NULL;
    const float *qq = mode == 2 ? queue : NULL;
    const int nq = mode == 2 ? Q : 0;
    level_run (SIMCLR_CPU_GENERIC, z, rows, D, 0.2f, NULL, g, qq, nq, &r0,
        dz0);
    for (int lv = 1; lv <= (int) simclr_cpu_best_level (); lv++) {
      level_run ((SimclrCpuLevel) lv, z, rows, D, 0.2f, NULL, g, qq, nq, &r,
          dz);
      if (r.loss != r0.loss || r.top1 != r0.top1 || r.top5 != r0.top5)
        g_error ("mode %d level %s: loss %.17g top-1 %g top-5 %g; generic "
            "%.17g %g %g", mode, simclr_cpu_level_name (lv), r.loss,
            r.top1, r.top5, r0.loss, r0.top1, r0.top5);
      for (int j = 0; j < rows * D; j++)
        if (memcmp (&dz[j], &dz0[j], sizeof (float)) != 0)
          g_error ("mode %d level %s: dz[%d] = %.9g, generic %.9g", mode,
              simclr_cpu_level_name (lv), j, (double) dz[j],
              (double) dz0[j]);
    }
  }
  g_free (z);
  g_free (queue);
  g_free (dz0);
  g_free (dz);
  g_free (group);
}

static char *
gc_name (const GroupCase *gc)
{
  if (gc->uneven)
    return g_strdup_printf ("/ntxent/groups/fd/uneven-D%d-tau%g", gc->D,
        (double) gc->tau);
  return g_strdup_printf ("/ntxent/groups/fd/V%d-n%d-D%d-tau%g", gc->views,
      gc->n, gc->D, (double) gc->tau);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  for (unsigned i = 0; i < G_N_ELEMENTS (grad_cases); i++) {
    char *name = g_strdup_printf ("/ntxent/grad-fd/R%d-D%d-tau%g-map%d",
        grad_cases[i].R, grad_cases[i].D, (double) grad_cases[i].tau,
        grad_cases[i].map);
    g_test_add_data_func (name, &grad_cases[i], test_grad_fd);
    g_free (name);
  }
  g_test_add_func ("/ntxent/identical-rows", test_identical_rows);
  g_test_add_func ("/ntxent/orthogonal-negatives", test_orthogonal_negatives);
  g_test_add_func ("/ntxent/accuracy-by-hand", test_accuracy_by_hand);
  g_test_add_func ("/ntxent/torch-fixture", test_torch_fixture);
  g_test_add_func ("/ntxent/rejects", test_rejects);
  for (unsigned i = 0; i < G_N_ELEMENTS (group_cases); i++) {
    char *name = gc_name (&group_cases[i]);
    g_test_add_data_func (name, &group_cases[i], test_groups_fd);
    g_free (name);
  }
  g_test_add_func ("/ntxent/groups/closed-forms", test_groups_closed_forms);
  g_test_add_func ("/ntxent/groups/torch-fixture", test_groups_torch_fixture);
  g_test_add_func ("/ntxent/groups/rejects", test_groups_rejects);
  g_test_add_func ("/ntxent/exp-accuracy", test_exp_accuracy);
  g_test_add_func ("/ntxent/levels-same-bits", test_levels_same_bits);
  return g_test_run ();
}
