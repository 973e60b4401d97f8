/* test-layers.c: gradients and fast paths of the layer kernels.
 *
 * 1. Finite differences: for every layer, L = sum(out * R) with a random R
 *    is evaluated by an independent double-precision forward written here;
 *    central differences of L (in double) are compared with the float
 *    analytic gradients from the kernels' backward with dout = R. Probes are
 *    capped per tensor; inputs keep clear of ReLU and max-pool kinks.
 * 2. Fast kernels (im2col/GEMM, chunked, threaded) against their naive twins
 *    on shapes that cross chunk boundaries, with threads > 1.
 * 3. Batch norm with a fake 2-replica allreduce equals one replica holding
 *    all rows. Run with OPENBLAS_NUM_THREADS=1 (meson sets it).
 */
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <glib.h>

#include <cblas.h>

#include "layers-private.h"
#include "cpu-level.h"

#define FD_H 1e-4
#define FD_MAX_PROBES 24

/* ---------------------------------------------------------------------------
 * random data */
static GRand *rng;

static void
fill_uniform (float *f, double *d, size_t n, double lo, double hi)
{
  for (size_t i = 0; i < n; i++) {
    float v = (float) g_rand_double_range (rng, lo, hi);
    if (f)
      f[i] = v;
    if (d)
      d[i] = v;
  }
}

/* Values away from 0 (ReLU kink) by at least 0.05. */
static void
fill_nonzero (float *f, double *d, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    double m = g_rand_double_range (rng, 0.05, 1.0);
    float v = (float) (g_rand_boolean (rng) ? m : -m);
    f[i] = v;
    d[i] = v;
  }
}

/* Distinct values with gaps well above FD_H (max-pool kinks): a random
 * permutation of 0..n-1 scaled to [-2, 2) plus a jitter of a quarter step. */
static void
fill_distinct (float *f, double *d, size_t n)
{
  guint *perm = g_new (guint, n);
  for (size_t i = 0; i < n; i++)
    perm[i] = i;
  for (size_t i = n - 1; i > 0; i--) {
    size_t j = g_rand_int_range (rng, 0, (gint32) i + 1);
    guint t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  for (size_t i = 0; i < n; i++) {
    double step = 4.0 / n;
    float v = (float) (-2.0 + step * (perm[i] + g_rand_double_range (rng, 0,
                0.25)));
    f[i] = v;
    d[i] = v;
  }
  g_free (perm);
}

/* ---------------------------------------------------------------------------
 * double-precision reference forwards (independent of the kernels) */
static void
ref_conv (double *out, const double *inp, const double *w, const double *bias,
    const SimclrConvShape *s)
{
  for (int b = 0; b < s->B; b++)
    for (int oh = 0; oh < s->OH; oh++)
      for (int ow = 0; ow < s->OW; ow++)
        for (int o = 0; o < s->OC; o++) {
          double acc = bias ? bias[o] : 0.0;
          for (int kh = 0; kh < s->KH; kh++)
            for (int kw = 0; kw < s->KW; kw++) {
              int ih = oh * s->stride + kh - s->pad;
              int iw = ow * s->stride + kw - s->pad;
              if (ih < 0 || iw < 0 || ih >= s->H || iw >= s->W)
                continue;
              for (int c = 0; c < s->C; c++)
                acc += inp[((b * s->H + ih) * s->W + iw) * s->C + c] *
                    w[((o * s->KH + kh) * s->KW + kw) * s->C + c];
            }
          out[((b * s->OH + oh) * s->OW + ow) * s->OC + o] = acc;
        }
}

static void
ref_bn_train (double *out, double *mean, double *var, const double *x,
    const double *g, const double *bt, int M, int C, double eps)
{
  for (int c = 0; c < C; c++) {
    double m = 0, v = 0;
    for (int r = 0; r < M; r++)
      m += x[r * C + c];
    m /= M;
    for (int r = 0; r < M; r++)
      v += (x[r * C + c] - m) * (x[r * C + c] - m);
    v /= M;
    if (mean)
      mean[c] = m;
    if (var)
      var[c] = v;
    for (int r = 0; r < M; r++)
      out[r * C + c] = (x[r * C + c] - m) / sqrt (v + eps) * g[c] + bt[c];
  }
}

static void
ref_maxpool (double *out, const double *x, int B, int H, int W, int C)
{
  int OH = (H - 1) / 2 + 1, OW = (W - 1) / 2 + 1;
  for (int b = 0; b < B; b++)
    for (int oh = 0; oh < OH; oh++)
      for (int ow = 0; ow < OW; ow++)
        for (int c = 0; c < C; c++) {
          double m = -INFINITY;
          for (int ih = 2 * oh - 1; ih <= 2 * oh + 1; ih++)
            for (int iw = 2 * ow - 1; iw <= 2 * ow + 1; iw++)
              if (ih >= 0 && iw >= 0 && ih < H && iw < W)
                m = fmax (m, x[((b * H + ih) * W + iw) * C + c]);
          out[((b * OH + oh) * OW + ow) * C + c] = m;
        }
}

static void
ref_avgpool (double *out, const double *x, int B, int HW, int C)
{
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++) {
      double acc = 0;
      for (int p = 0; p < HW; p++)
        acc += x[(b * HW + p) * C + c];
      out[b * C + c] = acc / HW;
    }
}

static void
ref_linear (double *out, const double *x, const double *w, const double *bias,
    int B, int IC, int OC)
{
  for (int b = 0; b < B; b++)
    for (int o = 0; o < OC; o++) {
      double acc = bias ? bias[o] : 0;
      for (int i = 0; i < IC; i++)
        acc += x[b * IC + i] * w[o * IC + i];
      out[b * OC + o] = acc;
    }
}

/* ---------------------------------------------------------------------------
 * a layer under gradient check: double tensors t[i] (inputs and parameters),
 * the loss weights R, and a double forward */
enum { K_CONV, K_BN, K_MAXPOOL, K_AVGPOOL, K_LINEAR, K_ADD, K_RELU };

typedef struct {
  int kind;
  SimclrConvShape cs;
  int B, H, W, C, M, IC, OC, has_bias;
  double eps;
  int nt;
  double *t[3];
  size_t n[3];
  const char *tname[3];
  double *R, *out;
  size_t nout;
} Case;

static double
case_loss (Case *c)
{
  switch (c->kind) {
    case K_CONV:
      ref_conv (c->out, c->t[0], c->t[1], c->has_bias ? c->t[2] : NULL,
          &c->cs);
      break;
    case K_BN:
      ref_bn_train (c->out, NULL, NULL, c->t[0], c->t[1], c->t[2], c->M,
          c->C, c->eps);
      break;
    case K_MAXPOOL:
      ref_maxpool (c->out, c->t[0], c->B, c->H, c->W, c->C);
      break;
    case K_AVGPOOL:
      ref_avgpool (c->out, c->t[0], c->B, c->H * c->W, c->C);
      break;
    case K_LINEAR:
      ref_linear (c->out, c->t[0], c->t[1], c->has_bias ? c->t[2] : NULL,
          c->B, c->IC, c->OC);
      break;
    case K_ADD:
      for (size_t i = 0; i < c->nout; i++)
        c->out[i] = c->t[0][i] + c->t[1][i];
      break;
    case K_RELU:
      for (size_t i = 0; i < c->nout; i++)
        c->out[i] = c->t[0][i] > 0 ? c->t[0][i] : 0;
      break;
  }
  double L = 0;
  for (size_t i = 0; i < c->nout; i++)
    L += c->out[i] * c->R[i];
  return L;
}

/* Central-difference check of the float analytic gradient `grad` of tensor
 * ti. Metric: |a - n| / max(|n|, 0.05 * max|a|, 1e-3) <= tol; returns FALSE and
 * prints the first mismatch. */
static gboolean
check_fd (Case *c, int ti, const float *grad, double tol)
{
  size_t n = c->n[ti];
  double gmax = 0;
  for (size_t i = 0; i < n; i++)
    gmax = fmax (gmax, fabs (grad[i]));
  int probes = n < FD_MAX_PROBES ? (int) n : FD_MAX_PROBES;
  for (int p = 0; p < probes; p++) {
    size_t i = n <= FD_MAX_PROBES ? (size_t) p :
        (size_t) g_rand_int_range (rng, 0, (gint32) n);
    double keep = c->t[ti][i];
    c->t[ti][i] = keep + FD_H;
    double lp = case_loss (c);
    c->t[ti][i] = keep - FD_H;
    double lm = case_loss (c);
    c->t[ti][i] = keep;
    double num = (lp - lm) / (2 * FD_H);
    /* the 1e-3 floor ignores float round-off on near-zero gradients */
    double denom = fmax (fmax (fabs (num), 0.05 * gmax), 1e-3);
    double rel = fabs (grad[i] - num) / denom;
    if (!(rel <= tol)) {
      g_printerr ("FD mismatch in d%s[%zu]: analytic %.8g, numeric %.8g "
          "(rel %.3g > %.3g)\n", c->tname[ti], i, grad[i], num, rel, tol);
      return FALSE;
    }
  }
  return TRUE;
}

/* Forward output (float) against the double reference. */
static gboolean
check_close (const char *what, const float *a, const double *ref, size_t n,
    double rtol, double atol)
{
  for (size_t i = 0; i < n; i++) {
    if (!(fabs (a[i] - ref[i]) <= atol + rtol * fabs (ref[i]))) {
      g_printerr ("%s mismatch at [%zu]: got %.8g, want %.8g\n", what, i,
          a[i], ref[i]);
      return FALSE;
    }
  }
  return TRUE;
}

static void
case_free (Case *c)
{
  for (int i = 0; i < c->nt; i++)
    g_free (c->t[i]);
  g_free (c->R);
  g_free (c->out);
}

/* ---------------------------------------------------------------------------
 * conv2d gradient checks, table-driven */
typedef struct {
  const char *name;
  int B, H, W, C, OC, KH, KW, stride, pad, bias, threads;
} ConvSpec;

static const ConvSpec conv_specs[] = {
  {"3x3-s1-p1-c3-bias", 2, 5, 5, 3, 4, 3, 3, 1, 1, 1, 1},
  {"3x3-s2-p1-c1-nobias-odd", 2, 7, 6, 1, 3, 3, 3, 2, 1, 0, 1},
  {"7x7-s2-p3-c3-bias", 2, 9, 9, 3, 4, 7, 7, 2, 3, 1, 1},
  {"7x7-s2-p3-c1-nobias-odd", 3, 11, 8, 1, 2, 7, 7, 2, 3, 0, 1},
  {"1x1-s1-p0-bias", 2, 4, 3, 5, 3, 1, 1, 1, 0, 1, 1},
  {"1x1-s1-p0-nobias-c1", 2, 3, 5, 1, 4, 1, 1, 1, 0, 0, 1},
  {"1x1-s2-p0-nobias", 2, 5, 5, 4, 6, 1, 1, 2, 0, 0, 1},
  {"3x3-s1-p0-odd", 3, 6, 5, 2, 3, 3, 3, 1, 0, 1, 1},
  {"3x3-s2-p1-c3-threads2", 5, 7, 7, 3, 4, 3, 3, 2, 1, 1, 2},
  /* OC a multiple of 8 (<= 32): the direct kernels on AVX2 machines */
  {"3x3-s1-p1-oc8-bias", 2, 5, 6, 3, 8, 3, 3, 1, 1, 1, 1},
  {"3x3-s2-p1-c1-oc16", 2, 7, 7, 1, 16, 3, 3, 2, 1, 0, 2},
  {"7x7-s2-p3-c3-oc32-bias", 2, 9, 8, 3, 32, 7, 7, 2, 3, 1, 1},
  {"3x3-s1-p1-c8-oc24", 2, 5, 7, 8, 24, 3, 3, 1, 1, 1, 1},
  /* strided with C a multiple of 8: the direct input-gradient gather */
  {"3x3-s2-p1-c8-gather", 2, 7, 8, 8, 4, 3, 3, 2, 1, 1, 1},
  {"5x5-s3-p2-c16-gather", 2, 11, 10, 16, 8, 5, 5, 3, 2, 0, 1},
  {"1x1-s2-c24-gather", 2, 5, 6, 24, 8, 1, 1, 2, 0, 0, 1},
};

static void
test_conv_grad (gconstpointer data)
{
  const ConvSpec *sp = data;
  SimclrConvShape s = { .B = sp->B, .H = sp->H, .W = sp->W, .C = sp->C,
    .OC = sp->OC, .KH = sp->KH, .KW = sp->KW, .stride = sp->stride,
    .pad = sp->pad, .threads = sp->threads };
  g_assert_cmpint (simclr_conv2d_shape_init (&s), ==, 0);
  size_t nin = (size_t) s.B * s.H * s.W * s.C;
  size_t nw = (size_t) s.OC * s.KH * s.KW * s.C;
  size_t nout = (size_t) s.B * s.OH * s.OW * s.OC;
  Case c = { .kind = K_CONV, .cs = s, .has_bias = sp->bias, .nt = 3,
    .n = { nin, nw, s.OC }, .tname = { "inp", "weight", "bias" },
    .nout = nout };
  float *x = g_new (float, nin), *w = g_new (float, nw);
  float *bias = g_new (float, s.OC), *R = g_new (float, nout);
  c.t[0] = g_new (double, nin);
  c.t[1] = g_new (double, nw);
  c.t[2] = g_new (double, s.OC);
  c.R = g_new (double, nout);
  c.out = g_new (double, nout);
  fill_uniform (x, c.t[0], nin, -1, 1);
  fill_uniform (w, c.t[1], nw, -1, 1);
  fill_uniform (bias, c.t[2], s.OC, -1, 1);
  fill_uniform (R, c.R, nout, -1, 1);

  float *out = g_new (float, nout);
  float *scratch = g_new (float, simclr_conv2d_scratch_floats (&s) + 1);
  simclr_conv2d_forward (out, x, w, sp->bias ? bias : NULL, &s, scratch);
  case_loss (&c);
  g_assert_true (check_close ("conv forward", out, c.out, nout, 1e-5, 1e-5));

  float *dx = g_new0 (float, nin), *dw = g_new0 (float, nw);
  float *db = g_new0 (float, s.OC);
  simclr_conv2d_backward (dx, dw, sp->bias ? db : NULL, R, x, w, &s, scratch);
  g_assert_true (check_fd (&c, 0, dx, 1e-4));
  g_assert_true (check_fd (&c, 1, dw, 1e-4));
  if (sp->bias)
    g_assert_true (check_fd (&c, 2, db, 1e-4));
  else
    for (int o = 0; o < s.OC; o++)
      g_assert_cmpfloat (db[o], ==, 0.0f);

  /* The naive twin against the same differences. */
  memset (dx, 0, sizeof (float) * nin);
  memset (dw, 0, sizeof (float) * nw);
  memset (db, 0, sizeof (float) * s.OC);
  simclr_conv2d_forward_naive (out, x, w, sp->bias ? bias : NULL, &s);
  case_loss (&c);               /* check_fd left c.out perturbed */
  g_assert_true (check_close ("conv naive forward", out, c.out, nout, 1e-5,
          1e-5));
  simclr_conv2d_backward_naive (dx, dw, sp->bias ? db : NULL, R, x, w, &s);
  g_assert_true (check_fd (&c, 0, dx, 1e-4));
  g_assert_true (check_fd (&c, 1, dw, 1e-4));
  if (sp->bias)
    g_assert_true (check_fd (&c, 2, db, 1e-4));

  case_free (&c);
  g_free (x);
  g_free (w);
  g_free (bias);
  g_free (R);
  g_free (out);
  g_free (scratch);
  g_free (dx);
  g_free (dw);
  g_free (db);
}

static void
test_conv_bad_shape (void)
{
  SimclrConvShape s = { .B = 1, .H = 2, .W = 2, .C = 1, .OC = 1, .KH = 7,
    .KW = 7, .stride = 1, .pad = 0 };
  g_assert_cmpint (simclr_conv2d_shape_init (&s), ==, -1);
  s.pad = 3;
  g_assert_cmpint (simclr_conv2d_shape_init (&s), ==, 0);
  g_assert_cmpint (s.OH, ==, 2);
  s.stride = 0;
  g_assert_cmpint (simclr_conv2d_shape_init (&s), ==, -1);
}

/* ---------------------------------------------------------------------------
 * fast conv against the naive twin, incl. accumulation into non-zero grads */
static gboolean
check_float_close (const char *what, const float *a, const float *b,
    size_t n, double rtol, const char *ref)
{
  double scale = 0;
  for (size_t i = 0; i < n; i++)
    scale = fmax (scale, fabs (b[i]));
  for (size_t i = 0; i < n; i++) {
    if (!(fabs (a[i] - b[i]) <= rtol * (scale + fabs (b[i])))) {
      g_printerr ("%s mismatch at [%zu]: fast %.8g, %s %.8g\n", what, i,
          a[i], ref, b[i]);
      return FALSE;
    }
  }
  return TRUE;
}

static void test_conv_fast_vs_naive (gconstpointer data);

static const ConvSpec conv_fast_specs[] = {
  /* B = 0: several chunks, the last one partial (B is chosen from the
   * kernel's chunk size so this holds whatever the tuning) */
  {"3x3-s1-p1-chunks", 0, 5, 5, 16, 16, 3, 3, 1, 1, 1, 1},
  {"3x3-s1-p1-chunks-t2", 0, 5, 5, 16, 16, 3, 3, 1, 1, 1, 2},
  {"3x3-s1-p1-chunks-t3", 0, 5, 5, 8, 12, 3, 3, 1, 1, 0, 3},
  {"3x3-s2-p1-chunks-t2", 0, 9, 9, 4, 8, 3, 3, 2, 1, 1, 2},
  {"3x3-s2-p1-t2", 9, 14, 14, 16, 32, 3, 3, 2, 1, 0, 2},
  {"7x7-s2-p3-c3-t2", 5, 28, 28, 3, 8, 7, 7, 2, 3, 0, 2},
  {"1x1-s2-downsample-t2", 11, 8, 8, 16, 32, 1, 1, 2, 0, 0, 2},
  {"1x1-pointwise", 7, 6, 6, 24, 40, 1, 1, 1, 0, 1, 2},
  {"3x3-wide-t4-few-images", 3, 4, 4, 64, 64, 3, 3, 1, 1, 0, 4},
  {"3x3-b1", 1, 9, 7, 5, 6, 3, 3, 1, 1, 1, 2},
  /* non-square kernel: backward-data through col2im, not transposed */
  {"3x1-s1-p1-t2", 6, 6, 5, 3, 4, 3, 1, 1, 1, 1, 2},
  {"5x5-s1-p2-t2", 6, 9, 9, 8, 8, 5, 5, 1, 2, 1, 2},
  /* direct kernels: every OC/8 and ragged row tails */
  {"oc8-ow13", 3, 5, 13, 3, 8, 3, 3, 1, 1, 1, 1},
  {"oc16-ow11-c5", 4, 6, 11, 5, 16, 3, 3, 1, 1, 1, 2},
  {"oc24-ow7-c16", 3, 7, 7, 16, 24, 3, 3, 1, 1, 0, 2},
  {"oc32-ow5-c32", 3, 5, 5, 32, 32, 3, 3, 1, 1, 1, 2},
  {"oc32-s2-ow6-c7", 3, 12, 11, 7, 32, 3, 3, 2, 1, 1, 1},
  {"gather-s2-c32-w13", 3, 13, 13, 32, 16, 3, 3, 2, 1, 0, 2},
  {"gather-s3-c8-w17", 2, 9, 17, 8, 12, 5, 5, 3, 2, 1, 1},
  {"gather-s2-p0-c16-w20", 2, 6, 20, 16, 8, 3, 3, 2, 0, 0, 2},
  /* AVX-512 blocks: 3 vectors (OC 48), groups of 64 channels, input
   * channels split for L2 (C 128 x 64 outputs), row tails 8 + 4 + 1
   * (OW 13), strided gathers with 48 and 64 channels, a 1x1 shortcut */
  {"oc48-ow13-c16", 2, 5, 13, 16, 48, 3, 3, 1, 1, 1, 2},
  {"oc128-c64-ow7", 2, 7, 7, 64, 128, 3, 3, 1, 1, 0, 2},
  {"oc64-c128-cblocks", 2, 4, 4, 128, 64, 3, 3, 1, 1, 1, 1},
  {"oc64-c48-s2-ow4", 3, 7, 7, 48, 64, 3, 3, 2, 1, 0, 1},
  {"gather-s2-c64-oc128", 2, 7, 7, 64, 128, 3, 3, 2, 1, 0, 2},
  {"1x1-s2-c32-oc64", 3, 14, 14, 32, 64, 1, 1, 2, 0, 0, 2},
  /* AVX-512 sliding 3x3 s1 rows: 16 outputs over rows of 14 and 7
   * (W 28, 9), 32 outputs from 64 inputs, rows shorter than a block */
  {"s1-c16-oc16-w28", 2, 5, 28, 16, 16, 3, 3, 1, 1, 1, 2},
  {"s1-c64-oc16-w9", 2, 4, 9, 64, 16, 3, 3, 1, 1, 0, 1},
  {"s1-c64-oc32-w3", 3, 3, 3, 64, 32, 3, 3, 1, 1, 1, 2},
  {"s1-c32-oc16-w16", 2, 3, 16, 32, 16, 3, 3, 1, 1, 0, 1},
  /* the C = 1 stem (AVX-512: padded image, 9 taps in one sweep): rows of
   * two blocks (W 28), a short last block and an odd row (W 13), two
   * groups of 16 outputs, several chunks on 2 threads */
  {"stem-c1-oc16-w28", 3, 28, 28, 1, 16, 3, 3, 1, 1, 1, 2},
  {"stem-c1-oc32-w13", 2, 9, 13, 1, 32, 3, 3, 1, 1, 0, 1},
  {"stem-c1-chunks-t2", 0, 28, 28, 1, 16, 3, 3, 1, 1, 0, 2},
  /* AVX-512 3x3 stride-2 input gradient scattered along rows: two blocks
   * of 7 (W 28), a wide row of 4 + 1 (C 32, W 9, even H), 4 + 4 (C 64) */
  {"s2-scatter-c16-w28", 2, 28, 28, 16, 32, 3, 3, 2, 1, 0, 2},
  {"s2-scatter-c32-w9-h10", 3, 10, 9, 32, 16, 3, 3, 2, 1, 0, 1},
  {"s2-scatter-c64-w16", 2, 6, 16, 64, 32, 3, 3, 2, 1, 0, 2},
};

/* With OpenBLAS running 2 threads the workers slice their GEMMs (or fall
 * back to one worker for wide shapes): the same comparisons must hold. The
 * core never sets OpenBLAS threads; this test does and restores 1. */
static void
test_conv_openblas_threads (void)
{
  static const ConvSpec specs[] = {
    /* OC not a multiple of 8: GEMM path, sliced */
    {"thin-sliced", 0, 7, 7, 16, 12, 3, 3, 1, 1, 1, 2},
    {"thin-s2-sliced", 0, 9, 9, 8, 20, 3, 3, 2, 1, 0, 2},
    /* direct path; stride 2 backward-data through sliced GEMM + col2im */
    {"direct-s2", 0, 9, 9, 8, 16, 3, 3, 2, 1, 0, 2},
    {"wide-one-worker", 6, 4, 4, 64, 64, 3, 3, 1, 1, 0, 2},
  };
  openblas_set_num_threads (2);
  for (size_t i = 0; i < G_N_ELEMENTS (specs); i++)
    test_conv_fast_vs_naive (&specs[i]);
  openblas_set_num_threads (1);
}

/* Runs the fast kernels on shape s (forward, backward with and without
 * dinp/dbias, into non-zero gradients: backward must accumulate) and the
 * reference: the naive twin, or with naive FALSE the fast path on one
 * thread (for shapes too large for the naive loops). */
static void
conv_compare (const SimclrConvShape *s, gboolean with_bias, gboolean naive)
{
  size_t nin = (size_t) s->B * s->H * s->W * s->C;
  size_t nw = (size_t) s->OC * s->KH * s->KW * s->C;
  size_t nout = (size_t) s->B * s->OH * s->OW * s->OC;
  SimclrConvShape s1 = *s;
  s1.threads = 1;
  float *x = g_new (float, nin), *w = g_new (float, nw);
  float *bias = g_new (float, s->OC), *dout = g_new (float, nout);
  float *o1 = g_new (float, nout), *o2 = g_new (float, nout);
  float *dx1 = g_new (float, nin), *dx2 = g_new (float, nin);
  float *dw1 = g_new (float, nw), *dw2 = g_new (float, nw);
  float *db1 = g_new (float, s->OC), *db2 = g_new (float, s->OC);
  fill_uniform (x, NULL, nin, -1, 1);
  fill_uniform (w, NULL, nw, -1, 1);
  fill_uniform (bias, NULL, s->OC, -1, 1);
  fill_uniform (dout, NULL, nout, -1, 1);
  fill_uniform (dx1, NULL, nin, -1, 1);
  fill_uniform (dw1, NULL, nw, -1, 1);
  fill_uniform (db1, NULL, s->OC, -1, 1);
  memcpy (dx2, dx1, sizeof (float) * nin);
  memcpy (dw2, dw1, sizeof (float) * nw);
  memcpy (db2, db1, sizeof (float) * s->OC);
  float *scratch = g_new (float, simclr_conv2d_scratch_floats (s) + 1);
  float *scratch1 = g_new (float, simclr_conv2d_scratch_floats (&s1) + 1);
  const float *b = with_bias ? bias : NULL;
  const char *ref = naive ? "naive" : "1 thread";

  simclr_conv2d_forward (o1, x, w, b, s, scratch);
  if (naive)
    simclr_conv2d_forward_naive (o2, x, w, b, s);
  else
    simclr_conv2d_forward (o2, x, w, b, &s1, scratch1);
  g_assert_true (check_float_close ("forward", o1, o2, nout, 1e-5, ref));
  simclr_conv2d_backward (dx1, dw1, db1, dout, x, w, s, scratch);
  if (naive)
    simclr_conv2d_backward_naive (dx2, dw2, db2, dout, x, w, s);
  else
    simclr_conv2d_backward (dx2, dw2, db2, dout, x, w, &s1, scratch1);
  g_assert_true (check_float_close ("dinp", dx1, dx2, nin, 1e-5, ref));
  g_assert_true (check_float_close ("dweight", dw1, dw2, nw, 1e-5, ref));
  g_assert_true (check_float_close ("dbias", db1, db2, s->OC, 1e-5, ref));

  /* dinp NULL and dbias NULL (the stem) leave dweight the same. */
  memcpy (dw1, dw2, sizeof (float) * nw);
  simclr_conv2d_backward (NULL, dw1, NULL, dout, x, w, s, scratch);
  if (naive)
    simclr_conv2d_backward_naive (NULL, dw2, NULL, dout, x, w, s);
  else
    simclr_conv2d_backward (NULL, dw2, NULL, dout, x, w, &s1, scratch1);
  g_assert_true (check_float_close ("dweight (no dinp)", dw1, dw2, nw, 1e-5,
          ref));

  /* Write mode: dinp = the input gradient whatever dinp held (large
   * values, so a leftover term cannot pass), against the reference
   * accumulated into zeros. */
  fill_uniform (dx1, NULL, nin, 1e3, 2e3);
  simclr_conv2d_backward_input_set (dx1, dout, w, s, scratch);
  memset (dx2, 0, sizeof (float) * nin);
  if (naive)
    simclr_conv2d_backward_naive (dx2, dw2, NULL, dout, x, w, s);
  else
    simclr_conv2d_backward_input (dx2, dout, w, &s1, scratch1);
  g_assert_true (check_float_close ("dinp (write mode)", dx1, dx2, nin, 1e-5,
          ref));

  g_free (x);
  g_free (w);
  g_free (bias);
  g_free (dout);
  g_free (o1);
  g_free (o2);
  g_free (dx1);
  g_free (dx2);
  g_free (dw1);
  g_free (dw2);
  g_free (db1);
  g_free (db2);
  g_free (scratch);
  g_free (scratch1);
}

static void
test_conv_fast_vs_naive (gconstpointer data)
{
  const ConvSpec *sp = data;
  SimclrConvShape s = { .B = sp->B, .H = sp->H, .W = sp->W, .C = sp->C,
    .OC = sp->OC, .KH = sp->KH, .KW = sp->KW, .stride = sp->stride,
    .pad = sp->pad, .threads = sp->threads };
  if (sp->B == 0) {
    s.B = 1000;
    g_assert_cmpint (simclr_conv2d_shape_init (&s), ==, 0);
    int n = simclr_conv2d_chunk_images (&s);
    s.B = 2 * n + (n + 1) / 2;
  }
  g_assert_cmpint (simclr_conv2d_shape_init (&s), ==, 0);
  int nimg = simclr_conv2d_chunk_images (&s);
  g_test_message ("%s: B %d, chunk of %d images, %d workers, %zu scratch "
      "floats; kernels: forward %s, dweight %s, dinput %s", sp->name, s.B,
      nimg, simclr_conv2d_max_workers (&s),
      simclr_conv2d_scratch_floats (&s),
      simclr_conv2d_kernel_name (&s, SIMCLR_CONV_FORWARD),
      simclr_conv2d_kernel_name (&s, SIMCLR_CONV_DWEIGHT),
      simclr_conv2d_kernel_name (&s, SIMCLR_CONV_DINPUT));
  if (sp->B == 0) {
    /* several chunks, the last one partial */
    g_assert_cmpint (s.B / nimg, >=, 2);
    g_assert_cmpint (s.B % nimg, !=, 0);
  }
  conv_compare (&s, sp->bias, TRUE);

  /* The kernel gives small shapes fewer workers than asked for (each must
   * get enough work): grow the batch until threads > 1 runs that many, and
   * compare with one thread there (the naive loops would be too slow). */
  if (s.threads > 1 && nimg > 0) {
    while (simclr_conv2d_max_workers (&s) < s.threads && s.B < 100000) {
      s.B = s.B * 3 / 2 + 1;
      g_assert_cmpint (simclr_conv2d_shape_init (&s), ==, 0);
    }
    nimg = simclr_conv2d_chunk_images (&s);
    g_test_message ("%s threaded: B %d, chunk of %d images, %d workers",
        sp->name, s.B, nimg, simclr_conv2d_max_workers (&s));
    g_assert_cmpint (simclr_conv2d_max_workers (&s), ==, s.threads);
    conv_compare (&s, sp->bias, FALSE);
  }
}

/* dx (B,H,W,C) += the input gradient of convolution s, in double: the
 * reference of the fused stride-2 + shortcut input gradient. */
static void
conv_dinput_double (double *dx, const float *dout, const float *w,
    const SimclrConvShape *s)
{
  for (int b = 0; b < s->B; b++)
    for (int oh = 0; oh < s->OH; oh++)
      for (int ow = 0; ow < s->OW; ow++)
        for (int o = 0; o < s->OC; o++) {
          double d = dout[(((size_t) b * s->OH + oh) * s->OW + ow) * s->OC +
              o];
          for (int kh = 0; kh < s->KH; kh++)
            for (int kw = 0; kw < s->KW; kw++) {
              int ih = oh * s->stride - s->pad + kh;
              int iw = ow * s->stride - s->pad + kw;
              if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W)
                continue;
              for (int c = 0; c < s->C; c++)
                dx[(((size_t) b * s->H + ih) * s->W + iw) * s->C + c] +=
                    d * w[(((size_t) o * s->KH + kh) * s->KW + kw) * s->C +
                    c];
            }
        }
}

typedef struct {
  const char *name;
  int B, H, W, C, OC, OCsc, threads;
} S2ShortcutSpec;

/* A ResNet block's two input gradients in one pass (the 3x3 stride-2 pad-1
 * conv1 and the 1x1 stride-2 shortcut, written into a dinp holding
 * garbage) against the double-precision sum of both. Where the level has
 * no such kernel (below AVX-512) the call must refuse and leave dinp
 * alone; at AVX-512 it must take these shapes. */
static void
test_conv_s2_shortcut (gconstpointer data)
{
  const S2ShortcutSpec *sp = data;
  SimclrConvShape s = { .B = sp->B, .H = sp->H, .W = sp->W, .C = sp->C,
    .OC = sp->OC, .KH = 3, .KW = 3, .stride = 2, .pad = 1,
    .threads = sp->threads };
  SimclrConvShape ssc = s;
  ssc.OC = sp->OCsc;
  ssc.KH = ssc.KW = 1;
  ssc.pad = 0;
  g_assert_cmpint (simclr_conv2d_shape_init (&s), ==, 0);
  g_assert_cmpint (simclr_conv2d_shape_init (&ssc), ==, 0);
  size_t nin = (size_t) s.B * s.H * s.W * s.C;
  size_t nout = (size_t) s.B * s.OH * s.OW * s.OC;
  size_t nsc = (size_t) s.B * ssc.OH * ssc.OW * ssc.OC;
  float *w = g_new (float, (size_t) s.OC * 9 * s.C);
  float *wsc = g_new (float, (size_t) ssc.OC * s.C);
  float *dout = g_new (float, nout), *dsc = g_new (float, nsc);
  float *dx = g_new (float, nin), *dx0 = g_new (float, nin);
  float *ref = g_new (float, nin);
  double *refd = g_new0 (double, nin);
  float *scratch = g_new (float, simclr_conv2d_scratch_floats (&s) + 1);
  fill_uniform (w, NULL, (size_t) s.OC * 9 * s.C, -1, 1);
  fill_uniform (wsc, NULL, (size_t) ssc.OC * s.C, -1, 1);
  fill_uniform (dout, NULL, nout, -1, 1);
  fill_uniform (dsc, NULL, nsc, -1, 1);
  fill_uniform (dx, NULL, nin, 1e3, 2e3);
  memcpy (dx0, dx, sizeof (float) * nin);
  conv_dinput_double (refd, dout, w, &s);
  conv_dinput_double (refd, dsc, wsc, &ssc);
  for (size_t i = 0; i < nin; i++)
    ref[i] = (float) refd[i];

  int fused = simclr_conv2d_backward_input_s2_shortcut (dx, dout, w, &s,
      dsc, wsc, &ssc, scratch);
  g_test_message ("%s: level %s, fused %d", sp->name,
      simclr_cpu_level_name (simclr_cpu_level ()), fused);
  g_assert_cmpint (fused, ==, simclr_conv2d_s2_shortcut_fusable (&s, &ssc));
  if (simclr_cpu_level () == SIMCLR_CPU_AVX512)
    g_assert_cmpint (fused, ==, 1);
  if (fused)
    g_assert_true (check_float_close ("fused dinp", dx, ref, nin, 1e-5,
            "double"));
  else
    g_assert_cmpmem (dx, sizeof (float) * nin, dx0, sizeof (float) * nin);

  /* a shortcut of another shape is refused, dinp untouched */
  SimclrConvShape bad = ssc;
  bad.stride = 1;
  g_assert_cmpint (simclr_conv2d_shape_init (&bad), ==, 0);
  memcpy (dx, dx0, sizeof (float) * nin);
  g_assert_cmpint (simclr_conv2d_backward_input_s2_shortcut (dx, dout, w,
          &s, dsc, wsc, &bad, scratch), ==, 0);
  g_assert_cmpmem (dx, sizeof (float) * nin, dx0, sizeof (float) * nin);

  g_free (w);
  g_free (wsc);
  g_free (dout);
  g_free (dsc);
  g_free (dx);
  g_free (dx0);
  g_free (ref);
  g_free (refd);
  g_free (scratch);
}

static const S2ShortcutSpec s2_shortcut_specs[] = {
  /* the three ResNet-18 w0.25 block shapes at a small batch, one odd row
   * (W 13) and channels of 48 */
  {"w25-l2-28x28x16-32", 3, 28, 28, 16, 32, 32, 2},
  {"w25-l3-14x14x32-64", 4, 14, 14, 32, 64, 64, 2},
  {"w25-l4-7x7x64-128", 5, 7, 7, 64, 128, 128, 1},
  {"odd-13x11x48-16-sc24", 2, 13, 11, 48, 16, 24, 1},
};

/* Eval mode's convolution epilogue (batch norm scale/shift, residual,
 * ReLU per chunk) gives exactly the convolution followed by the separate
 * affine pass, on direct and GEMM paths, pointwise too. */
static void
test_conv_epilogue (void)
{
  static const ConvSpec specs[] = {
    {"3x3-s1-c16", 5, 9, 9, 16, 16, 3, 3, 1, 1, 0, 2},
    {"3x3-s2-c16-oc32", 4, 9, 9, 16, 32, 3, 3, 2, 1, 1, 2},
    {"3x3-oc12-gemm", 3, 7, 7, 8, 12, 3, 3, 1, 1, 0, 2},
    {"1x1-pointwise", 3, 5, 5, 16, 24, 1, 1, 1, 0, 0, 1},
    {"1x1-s2", 6, 8, 8, 16, 32, 1, 1, 2, 0, 0, 2},
  };
  for (size_t k = 0; k < G_N_ELEMENTS (specs); k++) {
    const ConvSpec *sp = &specs[k];
    SimclrConvShape s = { .B = sp->B, .H = sp->H, .W = sp->W, .C = sp->C,
      .OC = sp->OC, .KH = sp->KH, .KW = sp->KW, .stride = sp->stride,
      .pad = sp->pad, .threads = sp->threads };
    g_assert_cmpint (simclr_conv2d_shape_init (&s), ==, 0);
    size_t nin = (size_t) s.B * s.H * s.W * s.C;
    size_t nw = (size_t) s.OC * s.KH * s.KW * s.C;
    size_t nout = (size_t) s.B * s.OH * s.OW * s.OC;
    float *x = g_new (float, nin), *w = g_new (float, nw);
    float *res = g_new (float, nout), *o1 = g_new (float, nout);
    float *o2 = g_new (float, nout), *scale = g_new (float, s.OC);
    float *shift = g_new (float, s.OC);
    float *scratch = g_new (float, simclr_conv2d_scratch_floats (&s) + 1);
    fill_uniform (x, NULL, nin, -1, 1);
    fill_uniform (w, NULL, nw, -1, 1);
    fill_uniform (res, NULL, nout, -1, 1);
    fill_uniform (scale, NULL, s.OC, 0.5, 2);
    fill_uniform (shift, NULL, s.OC, -1, 1);
    for (int variant = 0; variant < 3; variant++) {
      SimclrConvEpilogue ep = { scale, shift, variant == 2 ? res : NULL,
        variant > 0 };
      simclr_conv2d_forward_epilogue (o1, x, w, NULL, &ep, &s, scratch);
      simclr_conv2d_forward (o2, x, w, NULL, &s, scratch);
      simclr_affine_act (o2, o2, ep.residual, ep.relu, nout / s.OC, s.OC,
          scale, shift);
      for (size_t i = 0; i < nout; i++)
        if (o1[i] != o2[i])
          g_error ("%s variant %d (%s): out[%zu] %.9g fused, %.9g apart",
              sp->name, variant, simclr_conv2d_kernel_name (&s,
                  SIMCLR_CONV_FORWARD), i, o1[i], o2[i]);
    }
    g_free (x);
    g_free (w);
    g_free (res);
    g_free (o1);
    g_free (o2);
    g_free (scale);
    g_free (shift);
    g_free (scratch);
  }
}

/* Thread count changes summation order only. */
static void
test_conv_threads_agree (void)
{
  SimclrConvShape s = { .B = 64, .H = 14, .W = 14, .C = 16, .OC = 16,
    .KH = 3, .KW = 3, .stride = 1, .pad = 1, .threads = 2 };
  g_assert_cmpint (simclr_conv2d_shape_init (&s), ==, 0);
  g_assert_cmpint (simclr_conv2d_max_workers (&s), ==, 2);
  s.threads = 1;
  size_t nin = (size_t) s.B * s.H * s.W * s.C, nw = 16 * 9 * 16;
  size_t nout = (size_t) s.B * s.OH * s.OW * s.OC;
  float *x = g_new (float, nin), *w = g_new (float, nw);
  float *o1 = g_new (float, nout), *o2 = g_new (float, nout);
  fill_uniform (x, NULL, nin, -1, 1);
  fill_uniform (w, NULL, nw, -1, 1);
  float *sc = g_new (float, simclr_conv2d_scratch_floats (&s) + 1);
  simclr_conv2d_forward (o1, x, w, NULL, &s, sc);
  g_free (sc);
  s.threads = 2;
  sc = g_new (float, simclr_conv2d_scratch_floats (&s) + 1);
  simclr_conv2d_forward (o2, x, w, NULL, &s, sc);
  /* Only the GEMM blocking (rounding order) may differ. */
  g_assert_true (check_float_close ("threads 2 vs 1", o2, o1, nout, 1e-6,
          "1 thread"));
  g_free (sc);
  g_free (x);
  g_free (w);
  g_free (o1);
  g_free (o2);
}

/* ---------------------------------------------------------------------------
 * batch norm */
typedef struct {
  const char *name;
  int M, C;
} BnSpec;

static const BnSpec bn_specs[] = {
  {"m13-c5", 13, 5},
  {"m3-c3", 3, 3},
  {"m7-c300-two-blocks", 7, 300},
  {"m150-c16-row-blocks", 150, 16},
};

static void
test_bn_train (gconstpointer data)
{
  const BnSpec *sp = data;
  const int M = sp->M, C = sp->C;
  const float eps = 1e-5f, momentum = 0.1f;
  size_t n = (size_t) M * C;
  Case c = { .kind = K_BN, .M = M, .C = C, .eps = eps, .nt = 3,
    .n = { n, C, C }, .tname = { "inp", "weight", "bias" }, .nout = n };
  float *x = g_new (float, n), *g = g_new (float, C), *bt = g_new (float, C);
  float *R = g_new (float, n), *out = g_new (float, n);
  c.t[0] = g_new (double, n);
  c.t[1] = g_new (double, C);
  c.t[2] = g_new (double, C);
  c.R = g_new (double, n);
  c.out = g_new (double, n);
  /* an offset mean and a non-unit spread per channel */
  fill_uniform (x, c.t[0], n, -1, 1);
  for (size_t i = 0; i < n; i++) {
    x[i] = x[i] * (1 + (i % C) * 0.1f) + 3.0f;
    c.t[0][i] = x[i];
  }
  fill_uniform (g, c.t[1], C, 0.5, 1.5);
  fill_uniform (bt, c.t[2], C, -1, 1);
  fill_uniform (R, c.R, n, -1, 1);

  float *mean = g_new (float, C), *rstd = g_new (float, C);
  float *rm = g_new (float, C), *rv = g_new (float, C);
  float *rm0 = g_new (float, C), *rv0 = g_new (float, C);
  fill_uniform (rm, NULL, C, -1, 1);
  fill_uniform (rv, NULL, C, 0.5, 2);
  memcpy (rm0, rm, sizeof (float) * C);
  memcpy (rv0, rv, sizeof (float) * C);
  simclr_batchnorm_forward_train (out, mean, rstd, rm, rv, x, g, bt, M, C,
      momentum, eps, NULL, NULL);

  double *rmean = g_new (double, C), *rvar = g_new (double, C);
  ref_bn_train (c.out, rmean, rvar, c.t[0], c.t[1], c.t[2], M, C, eps);
  g_assert_true (check_close ("bn forward", out, c.out, n, 1e-4, 1e-4));
  for (int ch = 0; ch < C; ch++) {
    /* PyTorch: running_var uses the unbiased variance M / (M - 1). */
    double want_rm = 0.9 * rm0[ch] + 0.1 * rmean[ch];
    double want_rv = 0.9 * rv0[ch] + 0.1 * rvar[ch] * M / (M - 1);
    g_assert_cmpfloat_with_epsilon (mean[ch], rmean[ch], 1e-5);
    g_assert_cmpfloat_with_epsilon (rstd[ch], 1 / sqrt (rvar[ch] + eps),
        1e-4 / sqrt (rvar[ch] + eps));
    g_assert_cmpfloat_with_epsilon (rm[ch], want_rm, 1e-5);
    g_assert_cmpfloat_with_epsilon (rv[ch], want_rv, 1e-5 * want_rv);
  }

  float *dx = g_new0 (float, n), *dg = g_new0 (float, C);
  float *db = g_new0 (float, C);
  simclr_batchnorm_backward (dx, dg, db, R, x, g, mean, rstd, M, C, NULL,
      NULL);
  g_assert_true (check_fd (&c, 0, dx, 2e-3));
  g_assert_true (check_fd (&c, 1, dg, 1e-4));
  g_assert_true (check_fd (&c, 2, db, 1e-4));

  case_free (&c);
  g_free (x);
  g_free (g);
  g_free (bt);
  g_free (R);
  g_free (out);
  g_free (mean);
  g_free (rstd);
  g_free (rm);
  g_free (rv);
  g_free (rm0);
  g_free (rv0);
  g_free (rmean);
  g_free (rvar);
  g_free (dx);
  g_free (dg);
  g_free (db);
}

/* Batch norm fused with a residual and a ReLU (the units of a ResNet
 * block), threaded: forward against the double reference; backward with
 * the ReLU's mask recomputed from the input must equal, bit for bit, the
 * plain backward fed dout masked by the forward's output > 0 (same
 * arithmetic, so any mask mismatch shows); write mode equals accumulate
 * into zeros; eval mode against the double formula. */
typedef struct {
  const char *name;
  int M, C, residual, relu, threads;
} BnFusedSpec;

static const BnFusedSpec bn_fused_specs[] = {
  {"relu-m1000-c24", 1000, 24, 0, 1, 1},
  {"residual-relu-m999-c16", 999, 16, 1, 1, 1},
  {"residual-m300-c40", 300, 40, 1, 0, 1},
  {"plain-m77-c300", 77, 300, 0, 0, 1},
  /* enough rows for several tasks (a task wants 128 Ki floats) */
  {"relu-threads3-m20000-c32", 20000, 32, 0, 1, 3},
  {"residual-relu-threads2-m12345-c48", 12345, 48, 1, 1, 2},
};

static void
test_bn_fused (gconstpointer data)
{
  const BnFusedSpec *sp = data;
  const int M = sp->M, C = sp->C;
  const float eps = 1e-5f, momentum = 0.1f;
  size_t n = (size_t) M * C;
  float *x = g_new (float, n), *res = g_new (float, n), *out = g_new (float, n);
  float *dout = g_new (float, n), *masked = g_new (float, n);
  float *g = g_new (float, C), *bt = g_new (float, C);
  double *xd = g_new (double, n), *ref = g_new (double, n);
  double *gd = g_new (double, C), *btd = g_new (double, C);
  fill_uniform (x, xd, n, -1, 1);
  for (size_t i = 0; i < n; i++) {
    x[i] = x[i] * (1 + (i % C) * 0.1f) + 2.0f;
    xd[i] = x[i];
  }
  fill_uniform (res, NULL, n, -1, 1);
  fill_uniform (dout, NULL, n, -1, 1);
  fill_uniform (g, gd, C, 0.5, 1.5);
  fill_uniform (bt, btd, C, -1, 1);
  float *mean = g_new (float, C), *rstd = g_new (float, C);
  float *rm = g_new0 (float, C), *rv = g_new (float, C);
  for (int c = 0; c < C; c++)
    rv[c] = 1.0f;
  const float *r = sp->residual ? res : NULL;

  simclr_batchnorm_act_forward_train (out, mean, rstd, rm, rv, x, r,
      sp->relu, g, bt, M, C, momentum, eps, sp->threads, NULL, NULL);
  ref_bn_train (ref, NULL, NULL, xd, gd, btd, M, C, eps);
  for (size_t i = 0; i < n; i++) {
    if (r)
      ref[i] += res[i];
    if (sp->relu)
      ref[i] = fmax (ref[i], 0.0);
  }
  g_assert_true (check_close ("fused bn forward", out, ref, n, 1e-4, 1e-4));

  /* the same threaded and not: only the merge order of partial sums may
   * differ */
  float *out1 = g_new (float, n), *mean1 = g_new (float, C);
  float *rstd1 = g_new (float, C), *rm1 = g_new0 (float, C);
  float *rv1 = g_new (float, C);
  for (int c = 0; c < C; c++)
    rv1[c] = 1.0f;
  simclr_batchnorm_act_forward_train (out1, mean1, rstd1, rm1, rv1, x, r,
      sp->relu, g, bt, M, C, momentum, eps, 1, NULL, NULL);
  g_assert_true (check_float_close ("threads vs 1", out, out1, n, 1e-6,
          "1 thread"));

  if (!r) {
    /* backward: recomputed mask == the output's mask, exactly */
    for (size_t i = 0; i < n; i++)
      masked[i] = !sp->relu || out[i] > 0.0f ? dout[i] : 0.0f;
    float *dx1 = g_new (float, n), *dx2 = g_new (float, n);
    float *dg1 = g_new0 (float, C), *db1 = g_new0 (float, C);
    float *dg2 = g_new0 (float, C), *db2 = g_new0 (float, C);
    memset (dx1, 0xff, sizeof (float) * n);   /* write mode: NaN garbage */
    simclr_batchnorm_act_backward (dx1, dg1, db1, dout, x, g, bt, mean, rstd,
        sp->relu, 0, M, C, sp->threads, NULL, NULL);
    memset (dx2, 0, sizeof (float) * n);
    simclr_batchnorm_act_backward (dx2, dg2, db2, masked, x, g, bt, mean,
        rstd, 0, 1, M, C, sp->threads, NULL, NULL);
    for (size_t i = 0; i < n; i++)
      if (dx1[i] != dx2[i])
        g_error ("%s: dinp[%zu] %.9g with the recomputed mask, %.9g with "
            "the output's", sp->name, i, dx1[i], dx2[i]);
    for (int c = 0; c < C; c++) {
      g_assert_cmpfloat (dg1[c], ==, dg2[c]);
      g_assert_cmpfloat (db1[c], ==, db2[c]);
    }
    g_free (dx1);
    g_free (dx2);
    g_free (dg1);
    g_free (db1);
    g_free (dg2);
    g_free (db2);
  }

  if (r && sp->relu) {
    /* a block's last unit: the ReLU after the sum masked inside the
     * sums pass (dmask) == masking by the output first, then the plain
     * backward; bit for bit, separate dmask and in place (dmask = dout) */
    for (size_t i = 0; i < n; i++)
      masked[i] = out[i] > 0.0f ? dout[i] : 0.0f;
    float *dx1 = g_new (float, n), *dx2 = g_new0 (float, n);
    float *dm = g_new (float, n), *io = g_new (float, n);
    float *dx3 = g_new0 (float, n);
    float *dg1 = g_new0 (float, C), *db1 = g_new0 (float, C);
    float *dg2 = g_new0 (float, C), *db2 = g_new0 (float, C);
    float *dg3 = g_new0 (float, C), *db3 = g_new0 (float, C);
    memset (dx1, 0xff, sizeof (float) * n);   /* write mode: NaN garbage */
    memset (dm, 0xff, sizeof (float) * n);
    simclr_batchnorm_residual_relu_backward (dx1, dm, dg1, db1, dout, out, x,
        g, mean, rstd, 0, M, C, sp->threads, NULL, NULL);
    simclr_batchnorm_act_backward (dx2, dg2, db2, masked, x, g, bt, mean,
        rstd, 0, 1, M, C, sp->threads, NULL, NULL);
    memcpy (io, dout, sizeof (float) * n);
    simclr_batchnorm_residual_relu_backward (dx3, io, dg3, db3, io, out, x,
        g, mean, rstd, 1, M, C, sp->threads, NULL, NULL);
    for (size_t i = 0; i < n; i++) {
      if (dm[i] != masked[i] || io[i] != masked[i])
        g_error ("%s: dmask[%zu] %.9g (in place %.9g), want %.9g", sp->name,
            i, dm[i], io[i], masked[i]);
      if (dx1[i] != dx2[i] || dx3[i] != dx2[i])
        g_error ("%s: dinp[%zu] %.9g (in place, accumulated into 0: %.9g), "
            "%.9g masking first", sp->name, i, dx1[i], dx3[i], dx2[i]);
    }
    for (int c = 0; c < C; c++) {
      g_assert_cmpfloat (dg1[c], ==, dg2[c]);
      g_assert_cmpfloat (db1[c], ==, db2[c]);
      g_assert_cmpfloat (dg3[c], ==, dg2[c]);
      g_assert_cmpfloat (db3[c], ==, db2[c]);
    }
    g_free (dx1);
    g_free (dx2);
    g_free (dx3);
    g_free (dm);
    g_free (io);
    g_free (dg1);
    g_free (db1);
    g_free (dg2);
    g_free (db2);
    g_free (dg3);
    g_free (db3);
  }

  /* eval mode with the running statistics */
  simclr_batchnorm_act_forward_eval (out, x, r, sp->relu, g, bt, rm, rv, M,
      C, eps, sp->threads);
  for (size_t i = 0; i < n; i++) {
    int c = i % C;
    double want = ((double) x[i] - rm[c]) / sqrt ((double) rv[c] + eps) *
        g[c] + bt[c];
    if (r)
      want += res[i];
    if (sp->relu)
      want = fmax (want, 0.0);
    if (!(fabs (out[i] - want) <= 1e-5 * (1 + fabs (want))))
      g_error ("%s: eval out[%zu] %.9g, want %.9g", sp->name, i, out[i],
          want);
  }

  g_free (x);
  g_free (res);
  g_free (out);
  g_free (dout);
  g_free (masked);
  g_free (g);
  g_free (bt);
  g_free (xd);
  g_free (ref);
  g_free (gd);
  g_free (btd);
  g_free (mean);
  g_free (rstd);
  g_free (rm);
  g_free (rv);
  g_free (out1);
  g_free (mean1);
  g_free (rstd1);
  g_free (rm1);
  g_free (rv1);
}

/* Finite differences of a block's last unit, y = relu (BN (x) + r), through
 * the fused backward: L = sum (w * y) in double (ref_bn_train), central
 * differences in x and r against dinp and dmask (dout = w). Probes whose
 * pre-activation lies near the ReLU's kink are skipped. */
static double
bn_res_relu_loss (const double *x, const double *r, const double *w,
    const double *g, const double *bt, int M, int C, double *pre)
{
  ref_bn_train (pre, NULL, NULL, x, g, bt, M, C, 1e-5);
  double l = 0;
  for (int i = 0; i < M * C; i++) {
    pre[i] += r[i];
    l += w[i] * fmax (pre[i], 0.0);
  }
  return l;
}

static void
test_bn_residual_relu_fd (void)
{
  const int M = 150, C = 12;
  const size_t n = (size_t) M * C;
  const double h = 1e-3;
  float *x = g_new (float, n), *r = g_new (float, n), *w = g_new (float, n);
  float *out = g_new (float, n), *dx = g_new (float, n);
  float *dm = g_new (float, n);
  double *xd = g_new (double, n), *rd = g_new (double, n);
  double *wd = g_new (double, n), *pre = g_new (double, n);
  float g[12], bt[12], mean[12], rstd[12], rm[12] = { 0 }, rv[12];
  float dg[12] = { 0 }, db[12] = { 0 };
  double gd[12], btd[12];
  fill_uniform (x, xd, n, -2, 2);
  fill_uniform (r, rd, n, -1, 1);
  fill_uniform (w, wd, n, -1, 1);
  fill_uniform (g, gd, C, 0.5, 1.5);
  fill_uniform (bt, btd, C, -0.5, 0.5);
  for (int c = 0; c < C; c++)
    rv[c] = 1.0f;
  simclr_batchnorm_act_forward_train (out, mean, rstd, rm, rv, x, r, 1, g,
      bt, M, C, 0.1f, 1e-5f, 1, NULL, NULL);
  simclr_batchnorm_residual_relu_backward (dx, dm, dg, db, w, out, x, g,
      mean, rstd, 0, M, C, 1, NULL, NULL);
  bn_res_relu_loss (xd, rd, wd, gd, btd, M, C, pre);
  double *base = g_memdup2 (pre, sizeof (double) * n);
  int probed = 0;
  for (int p = 0; p < 64; p++) {
    size_t i = (size_t) g_rand_int_range (rng, 0, (gint32) n);
    /* a kink within reach of the probe's step (BN moves every row's
     * output a little too) */
    if (fabs (base[i]) < 0.05)
      continue;
    for (int t = 0; t < 2; t++) {
      double *v = t ? rd : xd;
      double keep = v[i];
      v[i] = keep + h;
      double lp = bn_res_relu_loss (xd, rd, wd, gd, btd, M, C, pre);
      v[i] = keep - h;
      double lm = bn_res_relu_loss (xd, rd, wd, gd, btd, M, C, pre);
      v[i] = keep;
      double num = (lp - lm) / (2 * h), got = t ? dm[i] : dx[i];
      if (!(fabs (got - num) <= 2e-3 * (1 + fabs (num))))
        g_error ("residual-relu FD: d%s[%zu] analytic %.8g, numeric %.8g",
            t ? "res" : "inp", i, got, num);
    }
    probed++;
  }
  g_assert_cmpint (probed, >=, 32);
  g_free (base);
  g_free (x);
  g_free (r);
  g_free (w);
  g_free (out);
  g_free (dx);
  g_free (dm);
  g_free (xd);
  g_free (rd);
  g_free (wd);
  g_free (pre);
}

static void
test_bn_eval (void)
{
  const int M = 9, C = 4;
  const float eps = 1e-5f;
  float x[36], g[4], bt[4], rm[4], rv[4], out[36];
  fill_uniform (x, NULL, M * C, -2, 2);
  fill_uniform (g, NULL, C, 0.5, 1.5);
  fill_uniform (bt, NULL, C, -1, 1);
  fill_uniform (rm, NULL, C, -1, 1);
  fill_uniform (rv, NULL, C, 0.2, 2);
  simclr_batchnorm_forward_eval (out, x, g, bt, rm, rv, M, C, eps);
  for (int i = 0; i < M * C; i++) {
    int c = i % C;
    double want = ((double) x[i] - rm[c]) / sqrt ((double) rv[c] + eps) *
        g[c] + bt[c];
    g_assert_cmpfloat_with_epsilon (out[i], want, 1e-5 * (1 + fabs (want)));
  }
}

/* Two replicas in two threads; the fake allreduce sums both buffers in a
 * fixed order, like MPI_Allreduce(MPI_SUM). */
typedef struct {
  pthread_barrier_t barrier;
  float *slot[2];
  int n[2];
} FakeComm;

typedef struct {
  FakeComm *comm;
  int rank;
  int M, C;
  const float *x, *g, *bt, *dout;
  float *out, *mean, *rstd, *rm, *rv, *dx, *dg, *db;
} Replica;

static __thread Replica *current_replica;

static void
fake_allreduce (float *buf, int n, void *user)
{
  FakeComm *comm = user;
  int rank = current_replica->rank;
  comm->slot[rank] = buf;
  comm->n[rank] = n;
  pthread_barrier_wait (&comm->barrier);
  g_assert_cmpint (comm->n[0], ==, comm->n[1]);
  float *sum = g_new (float, n);
  for (int i = 0; i < n; i++)
    sum[i] = comm->slot[0][i] + comm->slot[1][i];
  pthread_barrier_wait (&comm->barrier);        /* both have read */
  memcpy (buf, sum, sizeof (float) * n);
  g_free (sum);
}

static void *
replica_run (void *arg)
{
  Replica *r = arg;
  current_replica = r;
  simclr_batchnorm_forward_train (r->out, r->mean, r->rstd, r->rm, r->rv,
      r->x, r->g, r->bt, r->M, r->C, 0.1f, 1e-5f, fake_allreduce, r->comm);
  simclr_batchnorm_backward (r->dx, r->dg, r->db, r->dout, r->x, r->g,
      r->mean, r->rstd, r->M, r->C, fake_allreduce, r->comm);
  return NULL;
}

static void
test_bn_allreduce (void)
{
  const int M = 11, C = 5, M0 = 4;     /* uneven split: 4 + 7 rows */
  size_t n = (size_t) M * C;
  float *x = g_new (float, n), *dout = g_new (float, n);
  float g[5], bt[5];
  fill_uniform (x, NULL, n, -1, 3);
  fill_uniform (dout, NULL, n, -1, 1);
  fill_uniform (g, NULL, C, 0.5, 1.5);
  fill_uniform (bt, NULL, C, -1, 1);

  /* one replica, all rows */
  float *out1 = g_new (float, n), *dx1 = g_new0 (float, n);
  float mean1[5], rstd1[5], rm1[5] = { 0 }, rv1[5] = { 1, 1, 1, 1, 1 };
  float dg1[5] = { 0 }, db1[5] = { 0 };
  simclr_batchnorm_forward_train (out1, mean1, rstd1, rm1, rv1, x, g, bt, M,
      C, 0.1f, 1e-5f, NULL, NULL);
  simclr_batchnorm_backward (dx1, dg1, db1, dout, x, g, mean1, rstd1, M, C,
      NULL, NULL);

  /* two replicas */
  FakeComm comm;
  pthread_barrier_init (&comm.barrier, NULL, 2);
  float *out2 = g_new (float, n), *dx2 = g_new0 (float, n);
  float mean2[2][5], rstd2[2][5], rm2[2][5] = { { 0 } };
  float rv2[2][5] = { { 1, 1, 1, 1, 1 }, { 1, 1, 1, 1, 1 } };
  float dg2[2][5] = { { 0 } }, db2[2][5] = { { 0 } };
  Replica rep[2];
  for (int k = 0; k < 2; k++) {
    size_t off = k == 0 ? 0 : (size_t) M0 * C;
    rep[k] = (Replica) { .comm = &comm, .rank = k, .M = k == 0 ? M0 : M - M0,
      .C = C, .x = x + off, .g = g, .bt = bt, .dout = dout + off,
      .out = out2 + off, .mean = mean2[k], .rstd = rstd2[k], .rm = rm2[k],
      .rv = rv2[k], .dx = dx2 + off, .dg = dg2[k], .db = db2[k] };
  }
  pthread_t tid[2];
  for (int k = 0; k < 2; k++)
    g_assert_cmpint (pthread_create (&tid[k], NULL, replica_run, &rep[k]),
        ==, 0);
  for (int k = 0; k < 2; k++)
    pthread_join (tid[k], NULL);
  pthread_barrier_destroy (&comm.barrier);

  for (size_t i = 0; i < n; i++) {
    g_assert_cmpfloat_with_epsilon (out2[i], out1[i], 1e-5);
    g_assert_cmpfloat_with_epsilon (dx2[i], dx1[i], 1e-5);
  }
  for (int k = 0; k < 2; k++)
    for (int c = 0; c < C; c++) {
      g_assert_cmpfloat_with_epsilon (mean2[k][c], mean1[c], 1e-6);
      g_assert_cmpfloat_with_epsilon (rstd2[k][c], rstd1[c], 1e-5);
      g_assert_cmpfloat_with_epsilon (rm2[k][c], rm1[c], 1e-6);
      /* running_var uses the GLOBAL count: M / (M - 1), not M_k / (M_k - 1) */
      g_assert_cmpfloat_with_epsilon (rv2[k][c], rv1[c], 1e-6);
    }
  /* dweight, dbias: each replica holds its share; the sum is the whole. */
  for (int c = 0; c < C; c++) {
    g_assert_cmpfloat_with_epsilon (dg2[0][c] + dg2[1][c], dg1[c], 1e-5);
    g_assert_cmpfloat_with_epsilon (db2[0][c] + db2[1][c], db1[c], 1e-5);
  }
  g_free (x);
  g_free (dout);
  g_free (out1);
  g_free (dx1);
  g_free (out2);
  g_free (dx2);
}

/* ---------------------------------------------------------------------------
 * pools, elementwise, linear */
static void
simple_case (Case *c, int kind, int nt, const size_t *sizes, size_t nout)
{
  static const char *names[3] = { "inp", "weight", "bias" };
  c->kind = kind;
  c->nt = nt;
  c->nout = nout;
  for (int i = 0; i < nt; i++) {
    c->n[i] = sizes[i];
    c->t[i] = g_new (double, sizes[i]);
    c->tname[i] = names[i];
  }
  c->R = g_new (double, nout);
  c->out = g_new (double, nout);
}

static void
test_maxpool (gconstpointer data)
{
  const int *d = data;          /* B, H, W, C */
  Case c = { .B = d[0], .H = d[1], .W = d[2], .C = d[3] };
  int OH = (c.H - 1) / 2 + 1, OW = (c.W - 1) / 2 + 1;
  size_t nin = (size_t) c.B * c.H * c.W * c.C;
  size_t nout = (size_t) c.B * OH * OW * c.C;
  simple_case (&c, K_MAXPOOL, 1, &nin, nout);
  float *x = g_new (float, nin), *R = g_new (float, nout);
  float *out = g_new (float, nout), *dx = g_new0 (float, nin);
  int32_t *am = g_new (int32_t, nout);
  fill_distinct (x, c.t[0], nin);
  fill_uniform (R, c.R, nout, -1, 1);
  simclr_maxpool_forward (out, am, x, c.B, c.H, c.W, c.C);
  case_loss (&c);
  g_assert_true (check_close ("maxpool forward", out, c.out, nout, 0, 0));
  for (size_t i = 0; i < nout; i++)
    g_assert_cmpfloat (x[am[i]], ==, out[i]);
  simclr_maxpool_backward (dx, R, am, c.B, OH, OW, c.C);
  g_assert_true (check_fd (&c, 0, dx, 1e-4));
  case_free (&c);
  g_free (x);
  g_free (R);
  g_free (out);
  g_free (dx);
  g_free (am);
}

static void
test_avgpool (void)
{
  Case c = { .B = 3, .H = 3, .W = 5, .C = 4 };
  size_t nin = 3 * 15 * 4, nout = 3 * 4;
  simple_case (&c, K_AVGPOOL, 1, &nin, nout);
  float x[180], R[12], out[12], dx[180] = { 0 };
  fill_uniform (x, c.t[0], nin, -1, 1);
  fill_uniform (R, c.R, nout, -1, 1);
  simclr_avgpool_forward (out, x, 3, 15, 4);
  case_loss (&c);
  g_assert_true (check_close ("avgpool forward", out, c.out, nout, 1e-6,
          1e-6));
  simclr_avgpool_backward (dx, R, 3, 15, 4);
  g_assert_true (check_fd (&c, 0, dx, 1e-4));
  case_free (&c);
}

static void
test_relu_add (void)
{
  const size_t n = 50;
  Case c = { 0 };
  simple_case (&c, K_RELU, 1, &n, n);
  float x[50], R[50], out[50], dx[50];
  fill_nonzero (x, c.t[0], n);
  fill_uniform (R, c.R, n, -1, 1);
  fill_uniform (dx, NULL, n, -1, 1);
  float dx0[50];
  memcpy (dx0, dx, sizeof (dx));
  simclr_relu_forward (out, x, n);
  case_loss (&c);
  g_assert_true (check_close ("relu forward", out, c.out, n, 0, 0));
  simclr_relu_backward (dx, R, out, n);
  for (size_t i = 0; i < n; i++)
    dx[i] -= dx0[i];            /* accumulated: take the increment */
  g_assert_true (check_fd (&c, 0, dx, 1e-4));
  /* in place */
  simclr_relu_forward (x, x, n);
  g_assert_cmpmem (x, sizeof (x), out, sizeof (out));
  case_free (&c);

  size_t sizes[2] = { n, n };
  Case a = { 0 };
  simple_case (&a, K_ADD, 2, sizes, n);
  a.tname[1] = "b";
  float p[50], q[50], dp[50] = { 0 }, dq[50] = { 0 };
  fill_uniform (p, a.t[0], n, -1, 1);
  fill_uniform (q, a.t[1], n, -1, 1);
  fill_uniform (R, a.R, n, -1, 1);
  simclr_add_forward (out, p, q, n);
  case_loss (&a);
  g_assert_true (check_close ("add forward", out, a.out, n, 1e-7, 0));
  simclr_add_backward (dp, dq, R, n);
  g_assert_true (check_fd (&a, 0, dp, 1e-4));
  g_assert_true (check_fd (&a, 1, dq, 1e-4));
  /* residual: out aliases a; two backward calls accumulate */
  simclr_add_forward (p, p, q, n);
  g_assert_cmpmem (p, sizeof (p), out, sizeof (out));
  simclr_add_backward (dp, NULL, R, n);
  for (size_t i = 0; i < n; i++)
    g_assert_cmpfloat (dp[i], ==, 2 * R[i]);
  case_free (&a);
}

typedef struct {
  const char *name;
  int B, IC, OC, bias;
} LinSpec;

static const LinSpec lin_specs[] = {
  {"b5-ic7-oc3-bias", 5, 7, 3, 1},
  {"b1-ic1-oc1", 1, 1, 1, 0},
  {"b9-ic33-oc17-nobias", 9, 33, 17, 0},
};

static void
test_linear (gconstpointer data)
{
  const LinSpec *sp = data;
  size_t nx = (size_t) sp->B * sp->IC, nw = (size_t) sp->IC * sp->OC;
  size_t nout = (size_t) sp->B * sp->OC;
  size_t sizes[3] = { nx, nw, sp->OC };
  Case c = { .B = sp->B, .IC = sp->IC, .OC = sp->OC, .has_bias = sp->bias };
  simple_case (&c, K_LINEAR, 3, sizes, nout);
  float *x = g_new (float, nx), *w = g_new (float, nw);
  float *b = g_new (float, sp->OC), *R = g_new (float, nout);
  float *out = g_new (float, nout), *out2 = g_new (float, nout);
  fill_uniform (x, c.t[0], nx, -1, 1);
  fill_uniform (w, c.t[1], nw, -1, 1);
  fill_uniform (b, c.t[2], sp->OC, -1, 1);
  fill_uniform (R, c.R, nout, -1, 1);
  const float *bias = sp->bias ? b : NULL;
  simclr_linear_forward (out, x, w, bias, sp->B, sp->IC, sp->OC);
  simclr_linear_forward_naive (out2, x, w, bias, sp->B, sp->IC, sp->OC);
  case_loss (&c);
  g_assert_true (check_close ("linear forward", out, c.out, nout, 1e-5,
          1e-5));
  g_assert_true (check_close ("linear naive forward", out2, c.out, nout,
          1e-5, 1e-5));
  for (int naive = 0; naive < 2; naive++) {
    float *dx = g_new0 (float, nx), *dw = g_new0 (float, nw);
    float *db = g_new0 (float, sp->OC);
    if (naive)
      simclr_linear_backward_naive (dx, dw, sp->bias ? db : NULL, R, x, w,
          sp->B, sp->IC, sp->OC);
    else
      simclr_linear_backward (dx, dw, sp->bias ? db : NULL, R, x, w, sp->B,
          sp->IC, sp->OC);
    g_assert_true (check_fd (&c, 0, dx, 1e-4));
    g_assert_true (check_fd (&c, 1, dw, 1e-4));
    if (sp->bias)
      g_assert_true (check_fd (&c, 2, db, 1e-4));
    g_free (dx);
    g_free (dw);
    g_free (db);
  }
  case_free (&c);
  g_free (x);
  g_free (w);
  g_free (b);
  g_free (R);
  g_free (out);
  g_free (out2);
}

/* The checker itself must reject a gradient that is 1% off. */
static void
test_fd_rejects_wrong (void)
{
  size_t sizes[3] = { 12, 6, 2 };
  Case c = { .B = 4, .IC = 3, .OC = 2, .has_bias = 1 };
  simple_case (&c, K_LINEAR, 3, sizes, 8);
  float x[12], w[6], b[2], R[8], dx[12] = { 0 }, dw[6] = { 0 }, db[2] = { 0 };
  fill_uniform (x, c.t[0], 12, -1, 1);
  fill_uniform (w, c.t[1], 6, -1, 1);
  fill_uniform (b, c.t[2], 2, -1, 1);
  fill_uniform (R, c.R, 8, -1, 1);
  simclr_linear_backward_naive (dx, dw, db, R, x, w, 4, 3, 2);
  g_assert_true (check_fd (&c, 1, dw, 1e-4));
  dw[3] *= 1.01f;
  g_printerr ("(a mismatch line is expected next)\n");
  g_assert_false (check_fd (&c, 1, dw, 1e-4));
  case_free (&c);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (cpu_level_unavailable ("layers"))
    return g_test_run ();
  rng = g_rand_new_with_seed (20240611);

  for (size_t i = 0; i < G_N_ELEMENTS (conv_specs); i++) {
    char *path = g_strdup_printf ("/layers/conv/grad/%s", conv_specs[i].name);
    g_test_add_data_func (path, &conv_specs[i], test_conv_grad);
    g_free (path);
  }
  for (size_t i = 0; i < G_N_ELEMENTS (conv_fast_specs); i++) {
    char *path = g_strdup_printf ("/layers/conv/fast-vs-naive/%s",
        conv_fast_specs[i].name);
    g_test_add_data_func (path, &conv_fast_specs[i], test_conv_fast_vs_naive);
    g_free (path);
  }
  for (size_t i = 0; i < G_N_ELEMENTS (s2_shortcut_specs); i++) {
    char path[128];
    g_snprintf (path, sizeof path, "/layers/conv/s2-shortcut-dinput/%s",
        s2_shortcut_specs[i].name);
    g_test_add_data_func (path, &s2_shortcut_specs[i],
        test_conv_s2_shortcut);
  }
  g_test_add_func ("/layers/conv/bad-shape", test_conv_bad_shape);
  g_test_add_func ("/layers/conv/threads-agree", test_conv_threads_agree);
  g_test_add_func ("/layers/conv/eval-epilogue", test_conv_epilogue);
  g_test_add_func ("/layers/conv/openblas-threads-2",
      test_conv_openblas_threads);
  for (size_t i = 0; i < G_N_ELEMENTS (bn_specs); i++) {
    char *path = g_strdup_printf ("/layers/batchnorm/train/%s",
        bn_specs[i].name);
    g_test_add_data_func (path, &bn_specs[i], test_bn_train);
    g_free (path);
  }
  for (size_t i = 0; i < G_N_ELEMENTS (bn_fused_specs); i++) {
    char *path = g_strdup_printf ("/layers/batchnorm/fused/%s",
        bn_fused_specs[i].name);
    g_test_add_data_func (path, &bn_fused_specs[i], test_bn_fused);
    g_free (path);
  }
  g_test_add_func ("/layers/batchnorm/residual-relu-fd",
      test_bn_residual_relu_fd);
  g_test_add_func ("/layers/batchnorm/eval", test_bn_eval);
  g_test_add_func ("/layers/batchnorm/allreduce-2-replicas",
      test_bn_allreduce);
  static const int mp1[4] = { 2, 7, 6, 3 }, mp2[4] = { 1, 8, 8, 1 };
  g_test_add_data_func ("/layers/maxpool/b2-7x6-c3", mp1, test_maxpool);
  g_test_add_data_func ("/layers/maxpool/b1-8x8-c1", mp2, test_maxpool);
  g_test_add_func ("/layers/avgpool", test_avgpool);
  g_test_add_func ("/layers/relu-add", test_relu_add);
  for (size_t i = 0; i < G_N_ELEMENTS (lin_specs); i++) {
    char *path = g_strdup_printf ("/layers/linear/%s", lin_specs[i].name);
    g_test_add_data_func (path, &lin_specs[i], test_linear);
    g_free (path);
  }
  g_test_add_func ("/layers/fd-rejects-wrong", test_fd_rejects_wrong);

  int ret = g_test_run ();
  g_rand_free (rng);
  return ret;
}
