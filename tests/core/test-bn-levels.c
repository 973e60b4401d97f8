/* test-bn-levels.c: batch norm gives bit-identical results at every
 * instruction-set level the CPU has.
 *
 * core/batchnorm.c compiles its loops once per level (generic, AVX2,
 * AVX-512) and picks a copy from simclr_cpu_level (), which is fixed per
 * process (SIMCLR_CPU forces a lower level). So the test runs itself once
 * per level with SIMCLR_CPU set (`--hash`: fused forward and backward with
 * and without residual and ReLU, on 1 and 2 threads, and the eval affine
 * pass, hashed bit for bit) and asserts every level's hash equals the
 * generic one. The naive-reference checks of each level are test-layers'
 * per-level runs; this one pins the stronger claim that levels agree
 * exactly (no FMA contraction, channel sums in the same order).
 *
 * Each level's run also checks that a channel gets the same bits in a
 * vector lane (a whole group of batchnorm.c's BN_VEC channels) as in the
 * scalar loops that take the channels past the last group: every channel
 * of a C = 21 tensor (2 groups of 8 + 5) against the same column
 * normalised alone (C = 1: scalar loops only), forward, both backward
 * entries, one thread; and that a downsampling block's fused forward
 * (simclr_batchnorm_stats_train + act_forward_train_bn_residual) gives the
 * bits of the two passes it replaces.
 */
#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers-private.h"
#include "simclr/cpu.h"

static uint64_t
fnv (const void *p, size_t n, uint64_t h)
{
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++) {
    h ^= c[i];
    h *= 1099511628211ULL;
  }
  return h;
}

static float
uniform (uint64_t *s)
{
  *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
  return (float) ((*s >> 40) / 16777216.0);
}

/* Batch norm of every channel of an (M, C) tensor against the same column
 * normalised on its own (C = 1: the scalar loops), bit for bit: forward
 * (output, batch statistics, running statistics), act_backward (relu and
 * accumulate on) and residual_relu_backward (dmask, dinp, parameter
 * gradients). Returns the number of mismatches (each printed with both
 * values) and counts the compared values in *compared. */
static int
check_lanes_vs_scalar (size_t *compared)
{
  enum { M = 1000 + 13, C = 21 };
  const size_t n = (size_t) M * C;
  float *x = g_new (float, n), *r = g_new (float, n), *d = g_new (float, n);
  float *y = g_new (float, n), *dx = g_new (float, n), *dm = g_new (float, n);
  float *dx2 = g_new (float, n), *acc0 = g_new (float, n);
  float w[C], b[C], rm[C] = { 0 }, rv[C], mean[C], rstd[C];
  float dw[C] = { 0 }, db[C] = { 0 }, dw2[C] = { 0 }, db2[C] = { 0 };
  float cx[M], cr[M], cd[M], cy[M], cdx[M], cdm[M], cdx2[M];
  uint64_t s = 11;
  int bad = 0;
  *compared = 0;
  for (size_t i = 0; i < n; i++) {
    x[i] = uniform (&s) * 3.0f - 1.0f;
    r[i] = uniform (&s) - 0.5f;
    d[i] = uniform (&s) - 0.5f;
    /* the backward passes accumulate into dinp: start from these */
    acc0[i] = dx[i] = dx2[i] = uniform (&s) - 0.5f;
  }
  for (int c = 0; c < C; c++) {
    w[c] = 0.7f + 0.02f * c;
    b[c] = 0.05f * (c % 7) - 0.15f;
    rv[c] = 1.0f;
  }
  simclr_batchnorm_act_forward_train (y, mean, rstd, rm, rv, x, r, 1, w, b,
      M, C, 0.1f, 1e-5f, 1, NULL, NULL);
  simclr_batchnorm_act_backward (dx, dw, db, d, x, w, b, mean, rstd, 1, 1, M,
      C, 1, NULL, NULL);
  simclr_batchnorm_residual_relu_backward (dx2, dm, dw2, db2, d, y, x, w,
      mean, rstd, 1, M, C, 1, NULL, NULL);
  for (int c = 0; c < C; c++) {
    float m1, s1, rm1 = 0.0f, rv1 = 1.0f, dw1 = 0.0f, db1 = 0.0f;
    float dwb = 0.0f, dbb = 0.0f;
    for (int i = 0; i < M; i++) {
      cx[i] = x[(size_t) i * C + c];
      cr[i] = r[(size_t) i * C + c];
      cd[i] = d[(size_t) i * C + c];
      cdx[i] = cdx2[i] = acc0[(size_t) i * C + c];
    }
    simclr_batchnorm_act_forward_train (cy, &m1, &s1, &rm1, &rv1, cx, cr, 1,
        &w[c], &b[c], M, 1, 0.1f, 1e-5f, 1, NULL, NULL);
    simclr_batchnorm_act_backward (cdx, &dw1, &db1, cd, cx, &w[c], &b[c],
        &m1, &s1, 1, 1, M, 1, 1, NULL, NULL);
    simclr_batchnorm_residual_relu_backward (cdx2, cdm, &dwb, &dbb, cd, cy,
        cx, &w[c], &m1, &s1, 1, M, 1, 1, NULL, NULL);
    const float lane[] = { mean[c], rstd[c], rm[c], rv[c], dw[c], db[c],
      dw2[c], db2[c]
    };
    const float alone[] = { m1, s1, rm1, rv1, dw1, db1, dwb, dbb };
    for (size_t k = 0; k < G_N_ELEMENTS (lane); k++, (*compared)++)
      if (memcmp (&lane[k], &alone[k], sizeof (float))) {
        if (bad++ < 10)
          printf ("channel %d statistic/gradient %zu: lane %.9g, alone "
              "%.9g\n", c, k, lane[k], alone[k]);
      }
    for (int i = 0; i < M; i++) {
      const size_t o = (size_t) i * C + c;
      const float lv[] = { y[o], dx[o], dm[o], dx2[o] };
      const float av[] = { cy[i], cdx[i], cdm[i], cdx2[i] };
      for (size_t k = 0; k < G_N_ELEMENTS (lv); k++, (*compared)++)
        if (memcmp (&lv[k], &av[k], sizeof (float))) {
          if (bad++ < 10)
            printf ("channel %d row %d tensor %zu: lane %.9g, alone %.9g\n",
                c, i, k, lv[k], av[k]);
        }
    }
  }
  g_free (x);
  g_free (r);
  g_free (d);
  g_free (y);
  g_free (dx);
  g_free (dm);
  g_free (dx2);
  g_free (acc0);
  return bad;
}

/* A downsampling block's fused forward against the two passes it replaces,
 * bit for bit, on 1 and 2 threads: simclr_batchnorm_stats_train on the
 * shortcut (its statistics and running statistics as act_forward_train's)
 * then act_forward_train_bn_residual, against act_forward_train of the
 * shortcut (relu 0, no residual) into a tensor and act_forward_train with
 * that tensor as the residual. C = 37: vector groups and scalar channels.
 * Returns the number of mismatches (printed) and counts the compared
 * values. */
static int
check_bn_residual (size_t *compared)
{
  enum { M = 3000 + 5, C = 37 };
  const size_t n = (size_t) M * C;
  float *x = g_new (float, n), *xs = g_new (float, n);
  float *ys = g_new (float, n), *y1 = g_new (float, n), *y2 = g_new (float, n);
  float w[C], b[C], ws[C], bs[C];
  uint64_t s = 23;
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    x[i] = uniform (&s) * 3.0f - 1.2f;
    xs[i] = uniform (&s) * 2.0f - 0.7f;
  }
  for (int c = 0; c < C; c++) {
    w[c] = 0.6f + 0.03f * c;
    b[c] = 0.04f * (c % 6) - 0.1f;
    ws[c] = 1.1f - 0.02f * c;
    bs[c] = 0.03f * (c % 4) - 0.05f;
  }
  for (int threads = 1; threads <= 2; threads++) {
    /* [0]: two passes, [1]: fused; means, rstd, running mean, running var
     * of the shortcut (s) and of the main path */
    float sm[2][C], sr[2][C], srm[2][C], srv[2][C];
    float mm[2][C], mr[2][C], mrm[2][C], mrv[2][C];
    for (int k = 0; k < 2; k++)
      for (int c = 0; c < C; c++) {
        srm[k][c] = mrm[k][c] = 0.1f;
        srv[k][c] = mrv[k][c] = 0.9f;
      }
    simclr_batchnorm_act_forward_train (ys, sm[0], sr[0], srm[0], srv[0], xs,
        NULL, 0, ws, bs, M, C, 0.1f, 1e-5f, threads, NULL, NULL);
    simclr_batchnorm_act_forward_train (y1, mm[0], mr[0], mrm[0], mrv[0], x,
        ys, 1, w, b, M, C, 0.1f, 1e-5f, threads, NULL, NULL);
    simclr_batchnorm_stats_train (sm[1], sr[1], srm[1], srv[1], xs, M, C,
        0.1f, 1e-5f, threads, NULL, NULL);
    simclr_batchnorm_act_forward_train_bn_residual (y2, mm[1], mr[1], mrm[1],
        mrv[1], x, xs, ws, bs, sm[1], sr[1], 1, w, b, M, C, 0.1f, 1e-5f,
        threads, NULL, NULL);
    const float *pairs[][2] = { {sm[0], sm[1]}, {sr[0], sr[1]},
      {srm[0], srm[1]}, {srv[0], srv[1]}, {mm[0], mm[1]}, {mr[0], mr[1]},
      {mrm[0], mrm[1]}, {mrv[0], mrv[1]}
    };
    for (size_t k = 0; k < G_N_ELEMENTS (pairs); k++)
      for (int c = 0; c < C; c++, (*compared)++)
        if (memcmp (&pairs[k][0][c], &pairs[k][1][c], sizeof (float))) {
          if (bad++ < 10)
            printf ("threads %d statistic %zu channel %d: two passes %.9g, "
                "fused %.9g\n", threads, k, c, pairs[k][0][c], pairs[k][1][c]);
        }
    for (size_t i = 0; i < n; i++, (*compared)++)
      if (memcmp (&y1[i], &y2[i], sizeof (float))) {
        if (bad++ < 10)
          printf ("threads %d output %zu: two passes %.9g, fused %.9g\n",
              threads, i, y1[i], y2[i]);
      }
  }
  g_free (x);
  g_free (xs);
  g_free (ys);
  g_free (y1);
  g_free (y2);
  return bad;
}

/* Prints "<level> <hash> <nonzero>" for the level this process runs, after
 * the lanes-vs-scalar and fused-shortcut checks (exit 1 when one fails). */
static int
print_hash (void)
{
  size_t compared = 0;
  int bad = check_lanes_vs_scalar (&compared);
  if (bad || compared == 0) {
    printf ("%s: %d of %zu values differ between a vector lane and the "
        "scalar loops\n", simclr_cpu_level_name (simclr_cpu_level ()), bad,
        compared);
    return 1;
  }
  bad = check_bn_residual (&compared);
  if (bad || compared == 0) {
    printf ("%s: %d of %zu values differ between the fused shortcut batch "
        "norm and its two passes\n",
        simclr_cpu_level_name (simclr_cpu_level ()), bad, compared);
    return 1;
  }

  /* M not a multiple of the 64-row blocks, C above one 16-wide group and
   * not a multiple of 8, so every loop's tail runs */
  const int M = 4096 + 37, C = 52;
  const size_t n = (size_t) M * C;
  float *x = g_new (float, n), *r = g_new (float, n), *y = g_new (float, n);
  float *d = g_new (float, n), *dx = g_new (float, n);
  float w[52], b[52], rm[52] = { 0 }, rv[52], mean[52], rstd[52];
  float dw[52] = { 0 }, db[52] = { 0 }, sc[52], sh[52];
  uint64_t s = 7, h = 1469598103934665603ULL;
  size_t nonzero = 0;
  for (size_t i = 0; i < n; i++) {
    x[i] = uniform (&s) * 4.0f - 1.5f;
    r[i] = uniform (&s) - 0.5f;
    d[i] = uniform (&s) - 0.5f;
  }
  for (int c = 0; c < C; c++) {
    w[c] = 0.5f + 0.01f * c;
    b[c] = 0.1f * (c % 5) - 0.2f;
    rv[c] = 1.0f;
  }
  for (int relu = 0; relu < 2; relu++)
    for (int threads = 1; threads <= 2; threads++) {
      simclr_batchnorm_act_forward_train (y, mean, rstd, rm, rv, x,
          relu ? r : NULL, relu, w, b, M, C, 0.1f, 1e-5f, threads, NULL,
          NULL);
      simclr_batchnorm_act_backward (dx, dw, db, d, x, w, b, mean, rstd,
          relu, relu, M, C, threads, NULL, NULL);
      h = fnv (y, n * sizeof (float), h);
      h = fnv (dx, n * sizeof (float), h);
      if (relu) {
        /* a block's last unit: the mask inside the sums pass */
        float *dm = g_new (float, n);
        simclr_batchnorm_residual_relu_backward (dx, dm, dw, db, d, y, x, w,
            mean, rstd, 0, M, C, threads, NULL, NULL);
        h = fnv (dm, n * sizeof (float), h);
        h = fnv (dx, n * sizeof (float), h);
        g_free (dm);
      }
      h = fnv (dw, sizeof dw, h);
      h = fnv (db, sizeof db, h);
      h = fnv (mean, sizeof mean, h);
      h = fnv (rstd, sizeof rstd, h);
      h = fnv (rm, sizeof rm, h);
      h = fnv (rv, sizeof rv, h);
      for (size_t i = 0; i < n; i++)
        nonzero += y[i] != 0.0f && dx[i] != 0.0f;
    }
  for (int c = 0; c < C; c++) {
    sc[c] = 0.9f * w[c];
    sh[c] = b[c];
  }
  simclr_affine_act (y, x, r, 1, (size_t) M, C, sc, sh);
  h = fnv (y, n * sizeof (float), h);
  printf ("%s %016" G_GINT64_MODIFIER "x %zu\n",
      simclr_cpu_level_name (simclr_cpu_level ()), (guint64) h, nonzero);
  g_free (x);
  g_free (r);
  g_free (y);
  g_free (d);
  g_free (dx);
  return 0;
}

static const char *self;

/* Runs this program with SIMCLR_CPU=level and returns its output line. */
static char *
hash_at (const char *level)
{
  char **env = g_environ_setenv (g_get_environ (), "SIMCLR_CPU", level, TRUE);
  char *argv[] = { (char *) self, (char *) "--hash", NULL };
  char *out = NULL, *err = NULL;
  int status = 0;
  GError *error = NULL;
  gboolean ok = g_spawn_sync (NULL, argv, env, G_SPAWN_DEFAULT, NULL, NULL,
      &out, &err, &status, &error);
  if (!ok)
    g_error ("cannot run %s --hash: %s", self, error->message);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("%s --hash at %s failed: %s", self, level, err);
  g_strfreev (env);
  g_free (err);
  g_strstrip (out);
  return out;
}

static void
test_levels_identical (void)
{
  const SimclrCpuLevel best = simclr_cpu_best_level ();
  if (best == SIMCLR_CPU_GENERIC) {
    g_test_skip ("this CPU has one level only");
    return;
  }
  char *ref = hash_at ("generic");
  g_test_message ("generic: %s", ref);
  g_assert_true (g_str_has_prefix (ref, "generic "));
  /* the data is not degenerate: most outputs are non-zero */
  guint64 nonzero = g_ascii_strtoull (strrchr (ref, ' ') + 1, NULL, 10);
  g_assert_cmpuint (nonzero, >, 4 * (4096 + 37) * 52 / 4);
  for (int l = SIMCLR_CPU_GENERIC + 1; l <= (int) best; l++) {
    const char *name = simclr_cpu_level_name ((SimclrCpuLevel) l);
    char *got = hash_at (name);
    g_test_message ("%s: %s", name, got);
    /* the child ran the level asked for ... */
    g_assert_true (g_str_has_prefix (got, name));
    /* ... and got generic's bits */
    g_assert_cmpstr (strchr (got, ' '), ==, strchr (ref, ' '));
    g_free (got);
  }
  g_free (ref);
}

int
main (int argc, char **argv)
{
  if (argc > 1 && strcmp (argv[1], "--hash") == 0)
    return print_hash ();
  self = argv[0];
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/batchnorm/levels-bit-identical", test_levels_identical);
  return g_test_run ();
}
