/* test-conv-winograd.c: Winograd F(2x2, 3x3) and F(4x4, 3x3) convolutions
 * (conv-winograd.c) against a double-precision naive convolution written
 * here; the weight-gradient kernels against a double-precision naive weight
 * gradient (test_dweight, with its own error bound: see there), directly
 * (twins always, AVX-512 where the CPU has it; split over two workers'
 * points and two halves of the batch) and through conv.c with each table.
 *
 * 1. Each Winograd kernel set the machine has (the portable twins always,
 *    AVX-512 where the CPU has it), called directly, forward and input
 *    gradient (the forward of the transposed convolution with the turned
 *    weight, the route conv.c takes), on the ResNet-18 w0.25 3x3 stride-1
 *    shapes and odd ones: H, W odd, 1x1 and 2x2 images, batch 1, channel
 *    counts not a multiple of 16 (the twin only: the AVX-512 predicate
 *    refuses them, asserted in 3).
 * 2. Through conv.c (simclr_conv2d_forward, _backward_input(_set)) at the
 *    level in use with Winograd routed (simclr_cpu_kernels_winograd_at),
 *    with accumulation into non-zero gradients.
 * 3. The dispatch really takes Winograd for the routed shapes (batch 512
 *    and 256 as in training, forward and input gradient; F(4x4, 3x3) for
 *    16-128 channels, in the forward too unless SIMCLR_WINOGRAD=f23;
 *    F(2x2, 3x3) for 64 and 128 in the f23 forward) where the
 *    level has it, and never for other shapes or levels; by default unless
 *    SIMCLR_WINOGRAD=0 (meson runs this test with 0, f23 and unset);
 *    threads 1 and 2 give identical bits.
 * 4. The weight gradient's image groups through conv.c (the number a
 *    function of the shape): threads 1, 2, 3 and 5 give identical bits on
 *    an odd batch, within the reference's bound (test_dweight_groups); the
 *    weight-side transform of the summed groups' du, every vector-width
 *    clone the same bits, against a double reference (test_dweight_out).
 *
 * Error bound. Let S(y) = sum over taps and channels of |w| |x| for output
 * y (computed with the reference). A float dot product of n terms is off by
 * at most about n eps S; Winograd first forms sums of up to 4 inputs (B^T d
 * B: 2 roundings) and of up to 9 weights (G g G^T, halves exact), multiplies
 * and sums them over C channels, then sums up to 9 products per output
 * (A^T M A: 2 roundings per direction), all in float. Taking absolute
 * values in place of the cancellations, the mass the roundings act on is
 * the 1-d factor sum_i |A_oi| (sum_a |G_ia|) (sum_b |B_ib|) = 8 against the
 * direct convolution's 3 per direction, (8/3)^2 < 7.2 in 2-d. Hence
 *   |y - ref| <= 7.2 * (C + 8) * eps * S(y),
 * a worst-case bound (rounding errors all of one sign) that holds whatever
 * the inputs' magnitude (the error grows with |x| and |w| through S:
 * inputs offset far from 0, where the transforms' differences cancel, are
 * one of the cases). Any wrong transform or index is off by O(S), far
 * above it.
 * F(4x4, 3x3): the row sums of |B^T| are 10, 10, 10, 6, 6, 10, of |G| 1/4,
 * 1/2, 1/2, 7/24, 7/24, 1, and |A^T|'s rows weight them so that the 1-d
 * factor is 16, 17, 24 and 48 for the four outputs of a tile, against 3:
 * (48/3)^2 = 256 in 2-d, hence
 *   |y - ref| <= 256 * (C + 8) * eps * S(y)
 * (G g G^T is computed in double and rounded once). That is the price of
 * the 4x fewer multiplications: the observed error is an order of
 * magnitude above F(2x2, 3x3)'s (worst err / (eps S) up to 25 here against
 * 1.5).
 * The observed worst ratio err / (eps S) is printed.
 */
#include <float.h>
#include <math.h>
#include <string.h>
#include <glib.h>

#include "conv-winograd-private.h"
#include "cpu-level.h"

static GRand *rng;

static void
fill (float *f, size_t n, double lo, double hi)
{
  for (size_t i = 0; i < n; i++)
    f[i] = (float) g_rand_double_range (rng, lo, hi);
}

/* out (B,H,W,OC) = conv (inp) + bias in double, and S (see above) per
 * output; weight (OC, 3, 3, C), 3x3 stride 1 pad 1. */
static void
ref_conv (double *out, double *S, const float *inp, const float *w,
    const float *bias, int B, int H, int W, int C, int OC)
{
  for (int b = 0; b < B; b++)
    for (int oh = 0; oh < H; oh++)
      for (int ow = 0; ow < W; ow++)
        for (int o = 0; o < OC; o++) {
          double acc = bias ? bias[o] : 0.0, mass = bias ? fabs (bias[o]) :
              0.0;
          for (int kh = 0; kh < 3; kh++) {
            int ih = oh - 1 + kh;
            if (ih < 0 || ih >= H)
              continue;
            for (int kw = 0; kw < 3; kw++) {
              int iw = ow - 1 + kw;
              if (iw < 0 || iw >= W)
                continue;
              const float *x = inp + (((size_t) b * H + ih) * W + iw) * C;
              const float *wr = w + (((size_t) o * 3 + kh) * 3 + kw) * C;
              for (int c = 0; c < C; c++) {
                acc += (double) x[c] * wr[c];
                mass += fabs ((double) x[c] * wr[c]);
              }
            }
          }
          size_t i = (((size_t) b * H + oh) * W + ow) * OC + o;
          out[i] = acc;
          S[i] = mass;
        }
}

/* The input gradient's weight: the transposed convolution's (C, 3, 3, OC)
 * with the kernel turned, w't[c][kh][kw][o] = w[o][2-kh][2-kw][c]. */
static void
turn_weight (float *wt, const float *w, int C, int OC)
{
  for (int o = 0; o < OC; o++)
    for (int kh = 0; kh < 3; kh++)
      for (int kw = 0; kw < 3; kw++)
        for (int c = 0; c < C; c++)
          wt[(((size_t) c * 3 + 2 - kh) * 3 + 2 - kw) * OC + o] =
              w[(((size_t) o * 3 + kh) * 3 + kw) * C + c];
}

/* The factor of the bound above: (8/3)^2 for F(2x2, 3x3), (48/3)^2 for
 * F(4x4, 3x3). */
static double
bound_factor (int m)
{
  return m == 4 ? 256.0 : 7.2;
}

/* Worst err / (eps S) over n outputs; fails on the first output past the
 * bound with both values. */
static double
check_bound (const char *what, const float *got, const double *ref,
    const double *S, const double *base, size_t n, int C, int m)
{
  const double k = bound_factor (m) * (C + 8) * FLT_EPSILON;
  double worst = 0.0;
  for (size_t i = 0; i < n; i++) {
    double want = ref[i] + (base ? base[i] : 0.0);
    double err = fabs ((double) got[i] - want);
    double bound = k * (S[i] + (base ? fabs (base[i]) : 0.0)) + 1e-30;
    if (!(err <= bound))
      g_error ("%s: output %zu is %.9g, want %.9g (error %.3g > bound %.3g)",
          what, i, got[i], want, err, bound);
    if (S[i] > 0 && err / (FLT_EPSILON * S[i]) > worst)
      worst = err / (FLT_EPSILON * S[i]);
  }
  return worst;
}

typedef struct {
  const char *name;
  int B, H, W, C, OC;
  double lo, hi;        /* input range */
} Spec;

static const Spec specs[] = {
  {"l1-28x28x16-16", 2, 28, 28, 16, 16, -1, 1},
  {"l2-14x14x32-32", 3, 14, 14, 32, 32, -1, 1},
  {"l3-7x7x64-64", 3, 7, 7, 64, 64, -1, 1},
  {"l4-4x4x128-128", 4, 4, 4, 128, 128, -1, 1},
  {"l4-offset-inputs", 2, 4, 4, 128, 128, 90, 110},
  {"w1-l2-14x14x128-128", 2, 14, 14, 128, 128, -1, 1},
  {"partial-6x9x128-128", 3, 6, 9, 128, 128, -1, 1},
  {"c128-oc64-7x5", 2, 7, 5, 128, 64, -1, 1},
  {"l1-large-magnitude", 1, 28, 28, 16, 16, -1e4, 1e4},
  {"odd-5x7-16-32", 3, 5, 7, 16, 32, -1, 1},
  {"odd-9x3-48-16", 2, 9, 3, 48, 16, -1, 1},
  {"1x1-image", 5, 1, 1, 16, 16, -1, 1},
  {"2x2-image", 3, 2, 2, 32, 16, -1, 1},
  {"batch1-3x3", 1, 3, 3, 16, 64, -1, 1},
  {"c3-oc5", 2, 6, 5, 3, 5, -1, 1},
  {"c17-oc20", 2, 7, 4, 17, 20, -1, 1},
};

static void
shape_of (SimclrConvShape *s, const Spec *sp, int C, int OC)
{
  memset (s, 0, sizeof (*s));
  s->B = sp->B;
  s->H = sp->H;
  s->W = sp->W;
  s->C = C;
  s->OC = OC;
  s->KH = s->KW = 3;
  s->stride = s->pad = 1;
  s->threads = 1;
  g_assert_cmpint (simclr_conv2d_shape_init (s), ==, 0);
  g_assert_true (simclr_winograd_shape_ok (s));
}

/* The sets to run a shape on: the twin, and AVX-512 if the CPU has it and
 * its channel constraint (multiples of 16) holds. */
static int
kernel_sets (const SimclrWinogradKernels *k[5], const char *names[5], int C,
    int OC)
{
  int n = 0;
  k[n] = &simclr_winograd_generic;
  names[n++] = "generic F(2,3)";
  k[n] = &simclr_winograd43_generic;
  names[n++] = "generic F(4,3)";
#if defined(__GNUC__) && defined(__x86_64__)
  if (simclr_cpu_best_level () >= SIMCLR_CPU_AVX512 && C % 16 == 0 &&
      OC % 16 == 0) {
    k[n] = &simclr_winograd_avx512;
    names[n++] = "avx512 F(2,3)";
    k[n] = &simclr_winograd43_avx512;
    names[n++] = "avx512 F(4,3)";
  }
  if (simclr_cpu_best_level () >= SIMCLR_CPU_AVX2 && C % 8 == 0 &&
      OC % 16 == 0) {
    k[n] = &simclr_winograd43_avx2;
    names[n++] = "avx2 F(4,3)";
  }
#endif
  return n;
}

/* out = winograd (inp, weight (3,3,C,OC) packed) with kernel k on shape s,
 * two workers' halves of the batch to exercise b0 > 0. */
static void
run_kernel (const SimclrWinogradKernels *k, float *out, const float *inp,
    const float *wp, const float *bias, int accumulate,
    const SimclrConvShape *s)
{
  float *u = g_new (float, simclr_winograd_u_floats (k, s));
  float *work = g_new (float, simclr_winograd_work_floats (k, s));
  simclr_winograd_weight (k, u, wp, s->C, s->OC);
  int half = s->B / 2;
  if (half > 0)
    k->forward (out, inp, u, bias, accumulate, s, 0, half, work);
  k->forward (out, inp, u, bias, accumulate, s, half, s->B, work);
  g_free (work);
  g_free (u);
}

/* w (OC, 3, 3, C) -> wp (3, 3, C, OC) */
static void
pack_c_oc (float *wp, const float *w, int C, int OC)
{
  for (int o = 0; o < OC; o++)
    for (int t = 0; t < 9; t++)
      for (int c = 0; c < C; c++)
        wp[((size_t) t * C + c) * OC + o] = w[((size_t) o * 9 + t) * C + c];
}

static void
test_kernels (gconstpointer data)
{
  const Spec *sp = data;
  SimclrConvShape s, ts;
  shape_of (&s, sp, sp->C, sp->OC);
  shape_of (&ts, sp, sp->OC, sp->C);    /* the transposed convolution */
  const size_t nin = (size_t) s.B * s.H * s.W * s.C;
  const size_t nout = (size_t) s.B * s.H * s.W * s.OC;
  const size_t nw = (size_t) s.OC * 9 * s.C;
  float *x = g_new (float, nin), *w = g_new (float, nw);
  float *bias = g_new (float, s.OC), *dout = g_new (float, nout);
  fill (x, nin, sp->lo, sp->hi);
  fill (w, nw, -0.5, 0.5);
  fill (bias, s.OC, -1, 1);
  fill (dout, nout, -1, 1);
  float *wp = g_new (float, nw), *wt = g_new (float, nw),
      *wtp = g_new (float, nw);
  pack_c_oc (wp, w, s.C, s.OC);
  turn_weight (wt, w, s.C, s.OC);       /* (C, 3, 3, OC) */
  pack_c_oc (wtp, wt, s.OC, s.C);

  double *ref = g_new (double, nout), *S = g_new (double, nout);
  double *dref = g_new (double, nin), *dS = g_new (double, nin);
  ref_conv (ref, S, x, w, bias, s.B, s.H, s.W, s.C, s.OC);
  ref_conv (dref, dS, dout, wt, NULL, s.B, s.H, s.W, s.OC, s.C);

  const SimclrWinogradKernels *k[5];
  const char *names[5];
  int nk = kernel_sets (k, names, s.C, s.OC);
  g_assert_cmpint (nk, >=, 1);
  float *out = g_new (float, nout), *dx = g_new (float, nin);
  double *base = g_new (double, nin);
  for (int i = 0; i < nk; i++) {
    char what[128];
    /* forward, bias */
    fill (out, nout, 1e6, 2e6);         /* overwritten, never read */
    run_kernel (k[i], out, x, wp, bias, 0, &s);
    g_snprintf (what, sizeof (what), "%s %s forward", sp->name, names[i]);
    double wf = check_bound (what, out, ref, S, NULL, nout, s.C, k[i]->m);
    /* input gradient, accumulating into a non-zero dinp */
    fill (dx, nin, -1, 1);
    for (size_t j = 0; j < nin; j++)
      base[j] = dx[j];
    run_kernel (k[i], dx, dout, wtp, NULL, 1, &ts);
    g_snprintf (what, sizeof (what), "%s %s input gradient", sp->name,
        names[i]);
    double wd = check_bound (what, dx, dref, dS, base, nin, s.OC, k[i]->m);
    g_test_message ("%s %s: worst error / (eps S) forward %.2f, input "
        "gradient %.2f (bound %.0f, %.0f)", sp->name, names[i], wf, wd,
        bound_factor (k[i]->m) * (s.C + 8),
        bound_factor (k[i]->m) * (s.OC + 8));
    /* The bound above is a worst case; rounding errors of random data
     * mostly cancel (observed: at most 3 eps S on every case here for
     * F(2x2, 3x3), 25 for F(4x4, 3x3)). A ratio past 16 (64) means an
     * error beyond rounding (e.g. a transform off by a rounding-sized
     * coefficient) that the worst-case bound would miss. */
    g_assert_cmpfloat (wf, <, k[i]->m == 4 ? 64.0 : 16.0);
    g_assert_cmpfloat (wd, <, k[i]->m == 4 ? 64.0 : 16.0);
  }

  /* through conv.c at the level in use, with the default Winograd table
   * and with F(4x4, 3x3) routed (SIMCLR_WINOGRAD=f43) */
  for (int tab = 0; tab < 2; tab++) {
    s.kernels = tab ? simclr_cpu_kernels_winograd43_at (simclr_cpu_level ()) :
        simclr_cpu_kernels_winograd_at (simclr_cpu_level ());
    float *scratch = g_new (float, simclr_conv2d_scratch_floats (&s) + 1);
    simclr_conv2d_forward (out, x, w, bias, &s, scratch);
    check_bound ("conv.c forward", out, ref, S, NULL, nout, s.C,
        simclr_conv2d_winograd_tile (&s, SIMCLR_CONV_FORWARD));
    fill (dx, nin, 3e6, 4e6);
    simclr_conv2d_backward_input_set (dx, dout, w, &s, scratch);
    check_bound ("conv.c input gradient (set)", dx, dref, dS, NULL, nin,
        s.OC, simclr_conv2d_winograd_tile (&s, SIMCLR_CONV_DINPUT));
    fill (dx, nin, -1, 1);
    for (size_t j = 0; j < nin; j++)
      base[j] = dx[j];
    simclr_conv2d_backward_input (dx, dout, w, &s, scratch);
    check_bound ("conv.c input gradient (accumulate)", dx, dref, dS, base,
        nin, s.OC, simclr_conv2d_winograd_tile (&s, SIMCLR_CONV_DINPUT));
    g_test_message ("%s via conv.c (%s table): forward %s F(%d,3), input "
        "gradient %s F(%d,3) (F(0,3): not Winograd)", sp->name,
        tab ? "f43" : "default",
        simclr_conv2d_kernel_name (&s, SIMCLR_CONV_FORWARD),
        simclr_conv2d_winograd_tile (&s, SIMCLR_CONV_FORWARD),
        simclr_conv2d_kernel_name (&s, SIMCLR_CONV_DINPUT),
        simclr_conv2d_winograd_tile (&s, SIMCLR_CONV_DINPUT));
    g_free (scratch);
  }

  g_free (base);
  g_free (dx);
  g_free (out);
  g_free (dS);
  g_free (dref);
  g_free (S);
  g_free (ref);
  g_free (wtp);
  g_free (wt);
  g_free (wp);
  g_free (dout);
  g_free (bias);
  g_free (w);
  g_free (x);
}

/* ---------------------------------------------------------------------------
 * Weight gradient (conv-winograd.c's dweight kernels).
 *
 * Reference: dW[o][kh][kw][c] = sum over images and output pixels of
 * dy[o] x[c] at the tap's input pixel, in double. Error bound. Winograd
 * forms, per tile of m x m outputs and its (m+2) x (m+2) input window,
 * V = B^T d B and Z = A dy A^T in float, sums V (.) Z over the n tiles of
 * the call in one float chain per point and (c, o), and applies G^T . G in
 * double, rounded once into dW. Expanding everything, every term is some
 * x_p dy_q of one tile (p in its input window, q among its outputs) with
 * coefficient sum_{i,k} G_{i,kh} G_{k,kw} B^T_{i,p1} B^T_{k,p2} A_{i,q1}
 * A_{k,q2}, whose absolute value is at most f_m = (max over kh, p1, q1 of
 * sum_i |G_{i,kh}| |B^T_{i,p1}| |A_{i,q1}|)^2 (computed below from the
 * matrices: 4 for F(2x2, 3x3), 113.8 for F(4x4, 3x3)). Each float
 * operation rounds by at most eps of the mass it acts on, and no chain of
 * operations is longer than n + 8 (3 in each transform, the product, n
 * additions), so with the tile mass
 *   T(o, c) = sum over tiles (sum_p |x_p,c|) (sum_q |dy_q,o|)
 * (T >= the reference's own sum of |dy x| of every tap: each of those
 * pairs lies in one tile),
 *   |dW - ref| <= f_m (n + 8) eps T(o, c) + eps |dW before|
 * a worst case. A wrong transform or index is off by O(T / n) per tile:
 * over the batch, O(ref) itself, far above the observed errors, which are
 * printed and also held to a tighter observed limit below. */

/* The transforms (Lavin & Gray 2015), as conv-winograd.c states them. */
static const double BT23[4][4] = {
  {1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1},
};
static const double A23[4][2] = { {1, 0}, {1, 1}, {1, -1}, {0, -1} };
static const double G23t[4][3] = {
  {1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1},
};
static const double BT43[6][6] = {
  {4, 0, -5, 0, 1, 0}, {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
  {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1},
};
static const double A43[6][4] = {
  {1, 0, 0, 0}, {1, 1, 1, 1}, {1, -1, 1, -1}, {1, 2, 4, 8}, {1, -2, 4, -8},
  {0, 0, 0, 1},
};
static const double G43t[6][3] = {
  {1.0 / 4, 0, 0}, {-1.0 / 6, -1.0 / 6, -1.0 / 6},
  {-1.0 / 6, 1.0 / 6, -1.0 / 6}, {1.0 / 24, 1.0 / 12, 1.0 / 6},
  {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1},
};

/* f_m above. */
static double
dw_factor (int m)
{
  const int a = m + 2;
  double best = 0.0;
  for (int kh = 0; kh < 3; kh++)
    for (int p = 0; p < a; p++)
      for (int q = 0; q < m; q++) {
        double sum = 0.0;
        for (int i = 0; i < a; i++)
          sum += m == 4 ? fabs (G43t[i][kh] * BT43[i][p] * A43[i][q]) :
              fabs (G23t[i][kh] * BT23[i][p] * A23[i][q]);
        if (sum > best)
          best = sum;
      }
  return best * best;
}

/* ref (OC, 3, 3, C) = the weight gradient in double, S its per-weight sum
 * of |dy x|, T[m == 4] (OC, C) the tile masses for m = 2 and 4. */
static void
ref_dweight (double *ref, double *S, double *T2, double *T4,
    const float *x, const float *dy, int B, int H, int W, int C, int OC)
{
  memset (ref, 0, sizeof (double) * OC * 9 * C);
  memset (S, 0, sizeof (double) * OC * 9 * C);
  for (int b = 0; b < B; b++)
    for (int oh = 0; oh < H; oh++)
      for (int ow = 0; ow < W; ow++)
        for (int kh = 0; kh < 3; kh++)
          for (int kw = 0; kw < 3; kw++) {
            int ih = oh - 1 + kh, iw = ow - 1 + kw;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W)
              continue;
            const float *xp = x + (((size_t) b * H + ih) * W + iw) * C;
            const float *dp = dy + (((size_t) b * H + oh) * W + ow) * OC;
            for (int o = 0; o < OC; o++)
              for (int c = 0; c < C; c++) {
                size_t i = ((size_t) o * 9 + kh * 3 + kw) * C + c;
                ref[i] += (double) dp[o] * xp[c];
                S[i] += fabs ((double) dp[o] * xp[c]);
              }
          }
  for (int mi = 0; mi < 2; mi++) {
    const int m = mi ? 4 : 2;
    double *T = mi ? T4 : T2;
    double *sx = g_new (double, C), *sd = g_new (double, OC);
    memset (T, 0, sizeof (double) * OC * C);
    for (int b = 0; b < B; b++)
      for (int oh = 0; oh < H; oh += m)
        for (int ow = 0; ow < W; ow += m) {
          memset (sx, 0, sizeof (double) * C);
          memset (sd, 0, sizeof (double) * OC);
          for (int i = 0; i < m + 2; i++)
            for (int j = 0; j < m + 2; j++) {
              int ih = oh - 1 + i, iw = ow - 1 + j;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W)
                continue;
              for (int c = 0; c < C; c++)
                sx[c] += fabs (x[(((size_t) b * H + ih) * W + iw) * C + c]);
            }
          for (int i = 0; i < m && oh + i < H; i++)
            for (int j = 0; j < m && ow + j < W; j++)
              for (int o = 0; o < OC; o++)
                sd[o] += fabs (dy[(((size_t) b * H + oh + i) * W + ow + j) *
                        OC + o]);
          for (int o = 0; o < OC; o++)
            for (int c = 0; c < C; c++)
              T[(size_t) o * C + c] += sd[o] * sx[c];
        }
    g_free (sd);
    g_free (sx);
  }
}

/* Checks got (OC, 3, 3, C) = base + ref within the bound of tile side m
 * (0: a direct kernel or GEMM, a chain of up to B H W products per weight
 * in one sum: n = B H W, factor 1, mass S) with n tiles per chain; returns
 * the worst err / (eps mass), the mass being T (or S for m = 0). */
static double
check_dw_bound (const char *what, const float *got, const double *ref,
    const double *S, const double *T2, const double *T4, const float *base,
    int m, long n, int C, int OC)
{
  const double f = m ? dw_factor (m) : 1.0;
  double worst = 0.0;
  for (int o = 0; o < OC; o++)
    for (int t = 0; t < 9; t++)
      for (int c = 0; c < C; c++) {
        size_t i = ((size_t) o * 9 + t) * C + c;
        double mass = m == 4 ? T4[(size_t) o * C + c] :
            m == 2 ? T2[(size_t) o * C + c] : S[i];
        double b = base ? base[i] : 0.0;
        double want = ref[i] + b;
        double err = fabs ((double) got[i] - want);
        double bound = f * (n + 8) * FLT_EPSILON * mass +
            FLT_EPSILON * fabs (b) + 1e-30;
        if (!(err <= bound))
          g_error ("%s: dweight[%d][%d][%d][%d] is %.9g, want %.9g (error "
              "%.3g > bound %.3g)", what, o, t / 3, t % 3, c, got[i], want,
              err, bound);
        if (mass > 0 && err / (FLT_EPSILON * mass) > worst)
          worst = err / (FLT_EPSILON * mass);
      }
  return worst;
}

/* The weight-gradient kernels to run a shape on: the twins always,
 * AVX-512 where the CPU has it and C, OC are multiples of 16, AVX2 where
 * it has that and they are multiples of 8. */
static int
dw_kernel_sets (const SimclrWinogradKernels *k[5], const char *names[5],
    int C, int OC)
{
  int n = 0;
  k[n] = &simclr_winograd_dw_generic;
  names[n++] = "generic dweight F(2,3)";
  k[n] = &simclr_winograd43_dw_generic;
  names[n++] = "generic dweight F(4,3)";
#if defined(__GNUC__) && defined(__x86_64__)
  if (simclr_cpu_best_level () >= SIMCLR_CPU_AVX512 && C % 16 == 0 &&
      OC % 16 == 0) {
    k[n] = &simclr_winograd_dw_avx512;
    names[n++] = "avx512 dweight F(2,3)";
    k[n] = &simclr_winograd43_dw_avx512;
    names[n++] = "avx512 dweight F(4,3)";
  }
  if (simclr_cpu_best_level () >= SIMCLR_CPU_AVX2 && C % 8 == 0 &&
      OC % 8 == 0) {
    k[n] = &simclr_winograd43_dw_avx2;
    names[n++] = "avx2 dweight F(4,3)";
  }
#endif
  return n;
}

static void
test_dweight (gconstpointer data)
{
  const Spec *sp = data;
  SimclrConvShape s;
  shape_of (&s, sp, sp->C, sp->OC);
  const int C = s.C, OC = s.OC;
  const size_t nin = (size_t) s.B * s.H * s.W * C;
  const size_t nout = (size_t) s.B * s.H * s.W * OC;
  const size_t nw = (size_t) OC * 9 * C;
  float *x = g_new (float, nin), *dy = g_new (float, nout);
  fill (x, nin, sp->lo, sp->hi);
  fill (dy, nout, -1, 1);
  double *ref = g_new (double, nw), *S = g_new (double, nw);
  double *T2 = g_new (double, (size_t) OC * C), *T4 = g_new (double,
      (size_t) OC * C);
  ref_dweight (ref, S, T2, T4, x, dy, s.B, s.H, s.W, C, OC);
  float *base = g_new (float, nw), *dw = g_new (float, nw);
  fill (base, nw, -1, 1);

  const SimclrWinogradKernels *k[5];
  const char *names[5];
  int nk = dw_kernel_sets (k, names, C, OC);
  for (int i = 0; i < nk; i++) {
    const int m = k[i]->m, a = m + 2;
    float *du = g_new (float, simclr_winograd_u_floats (k[i], &s));
    float *work = g_new (float, simclr_winograd_dw_work_floats (k[i], &s));
    fill (work, simclr_winograd_dw_work_floats (k[i], &s), 1e6, 2e6);
    memset (du, 0, sizeof (float) * simclr_winograd_u_floats (k[i], &s));
    /* two workers' rows of points ([0, 1) and [1, a)), each in two halves
     * of the batch (b0 > 0; one chain per point all the same) */
    int half = s.B / 2;
    for (int r = 0; r < 2; r++) {
      int r0 = r ? 1 : 0, r1 = r ? a : 1;
      if (half > 0)
        k[i]->dweight (du, x, dy, &s, 0, half, r0, r1, work);
      k[i]->dweight (du, x, dy, &s, half, s.B, r0, r1, work);
    }
    memcpy (dw, base, sizeof (float) * nw);
    simclr_winograd_dweight_out (k[i], dw, du, C, OC);
    long n = (long) s.B * ((s.H + m - 1) / m) * ((s.W + m - 1) / m);
    char what[128];
    g_snprintf (what, sizeof (what), "%s %s", sp->name, names[i]);
    double wr = check_dw_bound (what, dw, ref, S, T2, T4, base, m, n, C, OC);
    g_test_message ("%s %s: worst error / (eps T) %.2f (%ld tiles, factor "
        "%.1f)", sp->name, names[i], wr, n, dw_factor (m));
    /* Observed on every case here: at most 1.6 eps T for either tile
     * (against S, the reference's own mass: up to 2.6 for F(2x2, 3x3)
     * and 21 for F(4x4, 3x3) at 128 channels, the direct kernel 1.9);
     * past 8 (16) the error is beyond rounding (e.g. a transform
     * coefficient off by a rounding-sized amount, which the worst-case
     * bound could miss on a small batch). */
    g_assert_cmpfloat (wr, <, m == 4 ? 16.0 : 8.0);
    g_free (work);
    g_free (du);
  }

  /* through conv.c at the level in use with each table, accumulating into
   * a non-zero dweight; dbias alongside */
  const SimclrKernels *tabs[3] = {
    simclr_cpu_kernels_winograd_at (simclr_cpu_level ()),
    simclr_cpu_kernels_winograd43_at (simclr_cpu_level ()),
    simclr_cpu_kernels_direct_at (simclr_cpu_level ()),
  };
  float *wt = g_new (float, nw);
  fill (wt, nw, -0.5, 0.5);
  for (int tab = 0; tab < 3; tab++) {
    s.kernels = tabs[tab];
    float *scratch = g_new (float, simclr_conv2d_scratch_floats (&s) + 1);
    float *dbias = g_new0 (float, OC);
    memcpy (dw, base, sizeof (float) * nw);
    simclr_conv2d_backward_weight (dw, dbias, dy, x, &s, scratch);
    int m = simclr_conv2d_winograd_tile (&s, SIMCLR_CONV_DWEIGHT);
    long n = m ? (long) s.B * ((s.H + m - 1) / m) * ((s.W + m - 1) / m) :
        (long) s.B * s.H * s.W;
    double wr = check_dw_bound ("conv.c weight gradient", dw, ref, S, T2, T4,
        base, m, n, C, OC);
    for (int o = 0; o < OC; o++) {
      double want = 0.0, mass = 0.0;
      for (size_t r = 0; r < (size_t) s.B * s.H * s.W; r++) {
        want += dy[r * OC + o];
        mass += fabs (dy[r * OC + o]);
      }
      g_assert_cmpfloat (fabs (dbias[o] - want), <=,
          (s.B * s.H * s.W + 1) * FLT_EPSILON * mass);
    }
    g_test_message ("%s via conv.c (%s table): weight gradient %s F(%d,3) "
        "(F(0,3): not Winograd), worst error / (eps T, or S) %.2f", sp->name,
        tab == 2 ? "direct" : tab ? "f43" : "default",
        simclr_conv2d_kernel_name (&s, SIMCLR_CONV_DWEIGHT), m, wr);
    g_free (dbias);
    g_free (scratch);
  }
  g_free (wt);
  g_free (dw);
  g_free (base);
  g_free (T4);
  g_free (T2);
  g_free (S);
  g_free (ref);
  g_free (dy);
  g_free (x);
}

/* The ResNet-18 w0.25 3x3 stride-1 layers, as the model runs them. */
static const int layers[4][3] = {
  {28, 16, 16}, {14, 32, 32}, {7, 64, 64}, {4, 128, 128},
};

/* The Winograd tile conv.c runs pass @op of the ResNet-18 w0.25 layer @l
 * on at @level (0: none), as cpu.c's tables route it: F(4x4, 3x3) for 16
 * to 128 channels on AVX-512 and AVX2; except that the default table (not @f43) keeps F(4x4, 3x3) out of the
 * forward: there it runs F(2x2, 3x3) for 64 and 128 channels on AVX-512
 * only. The weight gradient: F(4x4, 3x3) on every layer on AVX-512 (4x4
 * maps at 128 channels) and AVX2, in both tables. */
static int
expected_tile (int f43, SimclrCpuLevel level, int l, SimclrConvOp op)
{
  (void) l;
  if (op == SIMCLR_CONV_DWEIGHT)
    return level >= SIMCLR_CPU_AVX2 ? 4 : 0;
  if (!f43 && op == SIMCLR_CONV_FORWARD)
    return level >= SIMCLR_CPU_AVX512 && l >= 2 ? 2 : 0;
  return level >= SIMCLR_CPU_AVX2 ? 4 : 0;
}

/* The dispatch takes Winograd exactly where the tables route it (see
 * expected_tile): the four layers at batch 512 and 256, forward and input
 * gradient; never the weight gradient, channel counts that are not
 * multiples of 16 (8 for AVX2's C), other kernel shapes, or the direct
 * table. */
static void
test_dispatch (void)
{
  const SimclrCpuLevel level = simclr_cpu_level ();
  const SimclrKernels *tabs[2] = { simclr_cpu_kernels_winograd_at (level),
    simclr_cpu_kernels_winograd43_at (level)
  };
  const SimclrKernels *direct = simclr_cpu_kernels_direct_at (level);
  g_assert_nonnull (direct);
  /* the default table is the f43 one (F(4x4, 3x3) in the forward too);
   * SIMCLR_WINOGRAD=f23 selects tabs[0], SIMCLR_WINOGRAD=0 the direct */
  const char *env = g_getenv ("SIMCLR_WINOGRAD");
  int on = !(env && (!strcmp (env, "0") || !g_ascii_strcasecmp (env, "off")));
  int f43 = on && !(env && !g_ascii_strcasecmp (env, "f23"));
  g_assert_true (simclr_cpu_kernels () == (f43 ? tabs[1] : on ? tabs[0] :
          direct));
  for (int l = 0; l < 4; l++)
    for (int bi = 0; bi < 2; bi++)
      for (int t = 0; t < 2; t++) {
        SimclrConvShape s = { .B = bi ? 256 : 512, .H = layers[l][0],
          .W = layers[l][0], .C = layers[l][1], .OC = layers[l][2],
          .KH = 3, .KW = 3, .stride = 1, .pad = 1, .threads = 2,
          .kernels = tabs[t]
        };
        g_assert_cmpint (simclr_conv2d_shape_init (&s), ==, 0);
        int m = expected_tile (t, level, l, SIMCLR_CONV_FORWARD);
        int md = expected_tile (t, level, l, SIMCLR_CONV_DINPUT);
        if (t == 0) {
          /* the default table, as the model calls it */
          SimclrConvShape dflt = s;
          dflt.kernels = NULL;
          g_assert_cmpint (simclr_conv2d_winograd_tile (&dflt,
                  SIMCLR_CONV_FORWARD), ==, f43 ? expected_tile (1, level,
                  l, SIMCLR_CONV_FORWARD) : on ? m : 0);
          g_assert_cmpint (simclr_conv2d_winograd_tile (&dflt,
                  SIMCLR_CONV_DINPUT), ==, f43 ? expected_tile (1, level,
                  l, SIMCLR_CONV_DINPUT) : on ? md : 0);
        }
        g_test_message ("%s table, layer %dx%d %d->%d batch %d: forward %s "
            "F(%d,3), input gradient %s F(%d,3)", t ? "f43" : "default",
            s.H, s.W, s.C, s.OC, s.B,
            simclr_conv2d_kernel_name (&s, SIMCLR_CONV_FORWARD),
            simclr_conv2d_winograd_tile (&s, SIMCLR_CONV_FORWARD),
            simclr_conv2d_kernel_name (&s, SIMCLR_CONV_DINPUT),
            simclr_conv2d_winograd_tile (&s, SIMCLR_CONV_DINPUT));
        g_assert_cmpint (simclr_conv2d_winograd_tile (&s,
                SIMCLR_CONV_FORWARD), ==, m);
        g_assert_cmpint (simclr_conv2d_winograd_tile (&s,
                SIMCLR_CONV_DINPUT), ==, md);
        g_assert_cmpint (simclr_conv2d_uses_winograd (&s,
                SIMCLR_CONV_FORWARD), ==, m != 0);
        g_assert_cmpint (simclr_conv2d_uses_winograd (&s, SIMCLR_CONV_DINPUT),
            ==, md != 0);
        int mw = expected_tile (t, level, l, SIMCLR_CONV_DWEIGHT);
        g_assert_cmpint (simclr_conv2d_winograd_tile (&s,
                SIMCLR_CONV_DWEIGHT), ==, mw);
        g_assert_cmpint (simclr_conv2d_uses_winograd (&s,
                SIMCLR_CONV_DWEIGHT), ==, mw != 0);
        if (t == 0) {
          SimclrConvShape dflt = s;
          dflt.kernels = NULL;
          g_assert_cmpint (simclr_conv2d_winograd_tile (&dflt,
                  SIMCLR_CONV_DWEIGHT), ==, on ? mw : 0);
        }
        if (mw) {
          g_assert_cmpstr (simclr_conv2d_kernel_name (&s,
                  SIMCLR_CONV_DWEIGHT), ==, simclr_cpu_level_name (level));
          /* the scratch covers du and the workers' buffers */
          const SimclrWinogradKernels *wk = level >= SIMCLR_CPU_AVX512 ?
              &simclr_winograd43_dw_avx512 : &simclr_winograd43_dw_avx2;
          g_assert_cmpuint (simclr_conv2d_scratch_floats (&s), >=,
              simclr_winograd_u_floats (wk, &s) + 2 *
              simclr_winograd_dw_work_floats (wk, &s));
        }
        if (m) {
          g_assert_cmpstr (simclr_conv2d_kernel_name (&s,
                  SIMCLR_CONV_FORWARD), ==, simclr_cpu_level_name (level));
          /* the scratch covers Winograd's weights and work buffers */
          const SimclrWinogradKernels *wk = m == 2 ?
              &simclr_winograd_avx512 : level >= SIMCLR_CPU_AVX512 ?
              &simclr_winograd43_avx512 : &simclr_winograd43_avx2;
          g_assert_cmpuint (simclr_conv2d_scratch_floats (&s), >=,
              (size_t) (9 + simclr_winograd_points (wk)) * s.C * s.OC +
              simclr_winograd_work_floats (wk, &s));
        }
        /* the direct table never takes it */
        SimclrConvShape d = s;
        d.kernels = direct;
        g_assert_false (simclr_conv2d_uses_winograd (&d,
                SIMCLR_CONV_FORWARD));
        g_assert_false (simclr_conv2d_uses_winograd (&d, SIMCLR_CONV_DINPUT));
        g_assert_false (simclr_conv2d_uses_winograd (&d,
                SIMCLR_CONV_DWEIGHT));
      }
  /* taken by F(4x4, 3x3) (f43 table): C*OC up to 128*128, channels
   * multiples of 16; by the default table for the input gradient only */
  SimclrConvShape f4[] = {
    {.B = 8, .H = 8, .W = 8, .C = 16, .OC = 64, .KH = 3, .KW = 3,
        .stride = 1, .pad = 1},
    {.B = 8, .H = 9, .W = 5, .C = 32, .OC = 128, .KH = 3, .KW = 3,
        .stride = 1, .pad = 1},
  };
  for (size_t i = 0; i < G_N_ELEMENTS (f4); i++) {
    int m = level >= SIMCLR_CPU_AVX2 ? 4 : 0;
    f4[i].kernels = tabs[1];
    g_assert_cmpint (simclr_conv2d_shape_init (&f4[i]), ==, 0);
    g_assert_cmpint (simclr_conv2d_winograd_tile (&f4[i],
            SIMCLR_CONV_FORWARD), ==, m);
    g_assert_cmpint (simclr_conv2d_winograd_tile (&f4[i],
            SIMCLR_CONV_DINPUT), ==, m);
    f4[i].kernels = tabs[0];
    g_assert_cmpint (simclr_conv2d_winograd_tile (&f4[i],
            SIMCLR_CONV_FORWARD), ==, 0);
    g_assert_cmpint (simclr_conv2d_winograd_tile (&f4[i],
            SIMCLR_CONV_DINPUT), ==, m);
    /* the weight gradient: F(4x4, 3x3) on AVX-512 and AVX2, both tables */
    for (int t = 0; t < 2; t++) {
      f4[i].kernels = tabs[t];
      g_assert_cmpint (simclr_conv2d_winograd_tile (&f4[i],
              SIMCLR_CONV_DWEIGHT), ==, m);
    }
  }
  /* the weight gradient at 128*128 channel pairs: on AVX-512 F(4x4, 3x3)
   * on maps up to 4x4, F(2x2, 3x3) on larger ones; on AVX2 F(4x4, 3x3) */
  SimclrConvShape w2 = {.B = 8, .H = 14, .W = 14, .C = 128, .OC = 128,
    .KH = 3, .KW = 3, .stride = 1, .pad = 1, .kernels = tabs[0]
  };
  g_assert_cmpint (simclr_conv2d_shape_init (&w2), ==, 0);
  g_assert_cmpint (simclr_conv2d_winograd_tile (&w2, SIMCLR_CONV_DWEIGHT),
      ==, level >= SIMCLR_CPU_AVX512 ? 2 : level >= SIMCLR_CPU_AVX2 ? 4 : 0);
  /* F(4x4, 3x3) past 64*64 channel pairs (the f43 table's forward, both
   * tables' input gradient) only on maps where it multiplies less than
   * F(2x2, 3x3): 14x14, not 2x2 (there F(2x2, 3x3) on AVX-512, the GEMM
   * path on AVX2) */
  for (int i = 0; i < 2; i++) {
    SimclrConvShape q = {.B = 8, .H = i ? 2 : 14, .W = i ? 2 : 14,
      .C = 128, .OC = 128, .KH = 3, .KW = 3, .stride = 1, .pad = 1,
      .kernels = tabs[1]
    };
    g_assert_cmpint (simclr_conv2d_shape_init (&q), ==, 0);
    int want = i == 0 ? (level >= SIMCLR_CPU_AVX2 ? 4 : 0) :
        (level >= SIMCLR_CPU_AVX512 ? 2 : 0);
    g_assert_cmpint (simclr_conv2d_winograd_tile (&q, SIMCLR_CONV_FORWARD),
        ==, want);
    q.kernels = tabs[0];
    g_assert_cmpint (simclr_conv2d_winograd_tile (&q, SIMCLR_CONV_DINPUT),
        ==, want);
  }
  /* refused by both tables: channels not multiples of 16 (or 8 for AVX2's
   * C) either way, strided, 5x5, pad 0, 1x1, a transformed weight above
   * 128*128*16 floats */
  SimclrConvShape r[] = {
    {.B = 8, .H = 8, .W = 8, .C = 72, .OC = 72, .KH = 3, .KW = 3,
        .stride = 1, .pad = 1},
    {.B = 8, .H = 8, .W = 8, .C = 40, .OC = 40, .KH = 3, .KW = 3,
        .stride = 1, .pad = 1},
    {.B = 8, .H = 4, .W = 4, .C = 512, .OC = 512, .KH = 3, .KW = 3,
        .stride = 1, .pad = 1},
    {.B = 8, .H = 7, .W = 7, .C = 256, .OC = 128, .KH = 3, .KW = 3,
        .stride = 1, .pad = 1},
    {.B = 8, .H = 8, .W = 8, .C = 17, .OC = 16, .KH = 3, .KW = 3,
        .stride = 1, .pad = 1},
    {.B = 8, .H = 8, .W = 8, .C = 16, .OC = 20, .KH = 3, .KW = 3,
        .stride = 1, .pad = 1},
    {.B = 8, .H = 8, .W = 8, .C = 16, .OC = 16, .KH = 3, .KW = 3,
        .stride = 2, .pad = 1},
    {.B = 8, .H = 8, .W = 8, .C = 16, .OC = 16, .KH = 5, .KW = 5,
        .stride = 1, .pad = 2},
    {.B = 8, .H = 8, .W = 8, .C = 16, .OC = 16, .KH = 3, .KW = 3,
        .stride = 1, .pad = 0},
    {.B = 8, .H = 8, .W = 8, .C = 16, .OC = 16, .KH = 1, .KW = 1,
        .stride = 1, .pad = 0},
  };
  for (size_t i = 0; i < G_N_ELEMENTS (r); i++)
    for (int t = 0; t < 2; t++) {
      r[i].kernels = tabs[t];
      g_assert_cmpint (simclr_conv2d_shape_init (&r[i]), ==, 0);
      g_assert_false (simclr_conv2d_uses_winograd (&r[i],
              SIMCLR_CONV_FORWARD));
      g_assert_false (simclr_conv2d_uses_winograd (&r[i],
              SIMCLR_CONV_DINPUT));
      /* the weight gradient of 3x3 s1 p1 shapes whose channels are
       * multiples of 8 (72->72, 40->40) goes to AVX2's F(4x4, 3x3) from
       * AVX2 up; the rest is refused */
      const SimclrConvShape *q = &r[i];
      int dw8 = q->KH == 3 && q->KW == 3 && q->stride == 1 && q->pad == 1 &&
          q->C % 8 == 0 && q->OC % 8 == 0 && q->C * q->OC <= 128 * 128;
      g_assert_cmpint (simclr_conv2d_winograd_tile (&r[i],
              SIMCLR_CONV_DWEIGHT), ==, dw8 && level >= SIMCLR_CPU_AVX2 ?
          4 : 0);
    }
}

/* Threads 1 and 2 give identical bits (each tile's arithmetic does not
 * depend on the block or worker it falls in; each weight-gradient point is
 * summed by one worker over the tiles of its image group in one order, the
 * groups fixed by the shape: test_dweight_groups), forward, input gradient
 * and weight gradient. */
static void
test_threads (gconstpointer data)
{
  const int *job = data;        /* layer, f43 table */
  const int *layer = layers[job[0]];
  const SimclrCpuLevel level = simclr_cpu_level ();
  SimclrConvShape s = { .B = 48, .H = layer[0], .W = layer[0],
    .C = layer[1], .OC = layer[2], .KH = 3, .KW = 3, .stride = 1, .pad = 1,
    .threads = 2, .kernels = job[1] ?
        simclr_cpu_kernels_winograd43_at (level) :
        simclr_cpu_kernels_winograd_at (level)
  };
  g_assert_cmpint (simclr_conv2d_shape_init (&s), ==, 0);
  while (simclr_conv2d_max_workers (&s) < 2) {
    s.B *= 2;
    g_assert_cmpint (simclr_conv2d_shape_init (&s), ==, 0);
  }
  /* the GEMM path's sums depend on its chunks; only Winograd promises
   * the same bits on any thread count: each pass is compared where it runs
   * on Winograd */
  int wf = simclr_conv2d_uses_winograd (&s, SIMCLR_CONV_FORWARD);
  int wd = simclr_conv2d_uses_winograd (&s, SIMCLR_CONV_DINPUT);
  int ww = simclr_conv2d_uses_winograd (&s, SIMCLR_CONV_DWEIGHT);
  g_assert_cmpint (wf, ==, expected_tile (job[1], level, job[0],
          SIMCLR_CONV_FORWARD) != 0);
  g_assert_cmpint (wd, ==, expected_tile (job[1], level, job[0],
          SIMCLR_CONV_DINPUT) != 0);
  g_assert_cmpint (ww, ==, expected_tile (job[1], level, job[0],
          SIMCLR_CONV_DWEIGHT) != 0);
  if (!wf && !wd && !ww) {
    g_test_skip ("not a Winograd shape at this level");
    return;
  }
  SimclrConvShape s1 = s;
  s1.threads = 1;
  const size_t nin = (size_t) s.B * s.H * s.W * s.C;
  const size_t nout = (size_t) s.B * s.H * s.W * s.OC;
  const size_t nw = (size_t) s.OC * 9 * s.C;
  float *x = g_new (float, nin), *w = g_new (float, nw);
  float *bias = g_new (float, s.OC), *dout = g_new (float, nout);
  fill (x, nin, -1, 1);
  fill (w, nw, -0.5, 0.5);
  fill (bias, s.OC, -1, 1);
  fill (dout, nout, -1, 1);
  float *o1 = g_new (float, nout), *o2 = g_new (float, nout);
  float *d1 = g_new (float, nin), *d2 = g_new (float, nin);
  size_t n = MAX (simclr_conv2d_scratch_floats (&s),
      simclr_conv2d_scratch_floats (&s1));
  float *scratch = g_new (float, n + 1);
  simclr_conv2d_forward (o1, x, w, bias, &s1, scratch);
  simclr_conv2d_forward (o2, x, w, bias, &s, scratch);
  simclr_conv2d_backward_input_set (d1, dout, w, &s1, scratch);
  simclr_conv2d_backward_input_set (d2, dout, w, &s, scratch);
  /* the weight gradient, accumulated onto the same non-zero start */
  float *g1 = g_new (float, nw), *g2 = g_new (float, nw);
  fill (g1, nw, -1, 1);
  memcpy (g2, g1, sizeof (float) * nw);
  simclr_conv2d_backward_weight (g1, NULL, dout, x, &s1, scratch);
  simclr_conv2d_backward_weight (g2, NULL, dout, x, &s, scratch);
  g_test_message ("%dx%d %d->%d batch %d: %d workers, winograd forward %d, "
      "input gradient %d, weight gradient %d", s.H, s.W, s.C, s.OC, s.B,
      simclr_conv2d_max_workers (&s), wf, wd, ww);
  g_assert_cmpint (simclr_conv2d_max_workers (&s), ==, 2);
  for (size_t i = 0; wf && i < nout; i++)
    if (memcmp (&o1[i], &o2[i], sizeof (float)) != 0)
      g_error ("forward output %zu: %.9g on 1 thread, %.9g on 2", i, o1[i],
          o2[i]);
  for (size_t i = 0; wd && i < nin; i++)
    if (memcmp (&d1[i], &d2[i], sizeof (float)) != 0)
      g_error ("input gradient %zu: %.9g on 1 thread, %.9g on 2", i, d1[i],
          d2[i]);
  for (size_t i = 0; ww && i < nw; i++)
    if (memcmp (&g1[i], &g2[i], sizeof (float)) != 0)
      g_error ("weight gradient %zu: %.9g on 1 thread, %.9g on 2", i, g1[i],
          g2[i]);
  g_free (g2);
  g_free (g1);
  g_free (scratch);
  g_free (d2);
  g_free (d1);
  g_free (o2);
  g_free (o1);
  g_free (dout);
  g_free (bias);
  g_free (w);
  g_free (x);
}

/* G^T (sum of the groups' du) G into dweight (simclr_winograd_dweight_out_
 * sum): each vector-width clone (picked by the kernel set: generic, AVX2,
 * AVX-512) gives the same bits as the twin's, rows split over calls the
 * same bits as one call, and all agree with a double reference written
 * here to a rounding of the result (the sums are in double, rounded once):
 * channel counts below, at and past a step of 64, 1 and 3 groups. */
static void
test_dweight_out (void)
{
  static const int shapes[5][2] = {
    {16, 16}, {128, 128}, {3, 5}, {80, 48}, {64, 136},
  };
  for (int mi = 0; mi < 2; mi++) {
    const int m = mi ? 4 : 2, a = m + 2, P = a * a;
    const double (*G)[3] = m == 4 ? G43t : G23t;
    const SimclrWinogradKernels *k[3];
    const char *names[3];
    int nk = 0;
    k[nk] = m == 4 ? &simclr_winograd43_dw_generic :
        &simclr_winograd_dw_generic;
    names[nk++] = "generic";
#if defined(__GNUC__) && defined(__x86_64__)
    if (simclr_cpu_best_level () >= SIMCLR_CPU_AVX512) {
      k[nk] = m == 4 ? &simclr_winograd43_dw_avx512 :
          &simclr_winograd_dw_avx512;
      names[nk++] = "avx512";
    }
    if (m == 4 && simclr_cpu_best_level () >= SIMCLR_CPU_AVX2) {
      k[nk] = &simclr_winograd43_dw_avx2;
      names[nk++] = "avx2";
    }
#endif
    for (int si = 0; si < 5; si++)
      for (int groups = 1; groups <= 3; groups += 2) {
        const int C = shapes[si][0], OC = shapes[si][1];
        const size_t plane = (size_t) OC * C, nw = (size_t) OC * 9 * C;
        const size_t ndu = (size_t) groups * P * plane;
        float *du = g_new (float, ndu), *base = g_new (float, nw);
        float *first = g_new (float, nw), *got = g_new (float, nw);
        fill (du, ndu, -1, 1);
        fill (base, nw, -1, 1);
        for (int i = 0; i < nk; i++)
          for (int split = 0; split < 2; split++) {
            memcpy (got, base, sizeof (float) * nw);
            if (split) {
              simclr_winograd_dweight_out_sum (k[i], got, du, groups, 0,
                  OC / 3, C, OC);
              simclr_winograd_dweight_out_sum (k[i], got, du, groups,
                  OC / 3, OC, C, OC);
            } else {
              simclr_winograd_dweight_out_sum (k[i], got, du, groups, 0, OC,
                  C, OC);
            }
            if (i == 0 && !split) {
              memcpy (first, got, sizeof (float) * nw);
              if (groups == 1) {
                /* the one-group entry point is the same */
                float *one = g_new (float, nw);
                memcpy (one, base, sizeof (float) * nw);
                simclr_winograd_dweight_out (k[i], one, du, C, OC);
                g_assert_cmpmem (one, sizeof (float) * nw, first,
                    sizeof (float) * nw);
                g_free (one);
              }
              continue;
            }
            for (size_t j = 0; j < nw; j++)
              if (memcmp (&got[j], &first[j], sizeof (float)) != 0)
                g_error ("F(%d,3) %d->%d, %d groups, %s%s: dweight %zu is "
                    "%.9g, the generic twin's %.9g", m, C, OC, groups,
                    names[i], split ? " (rows split)" : "", j, got[j],
                    first[j]);
          }
        /* against the reference */
        for (int o = 0; o < OC; o++)
          for (int c = 0; c < C; c++)
            for (int kh = 0; kh < 3; kh++)
              for (int kw = 0; kw < 3; kw++) {
                double want = 0.0, mass = 0.0;
                for (int i = 0; i < a; i++)
                  for (int l = 0; l < a; l++) {
                    double d = 0.0;
                    for (int g = 0; g < groups; g++)
                      d += du[(size_t) g * P * plane +
                          (size_t) (i * a + l) * plane + (size_t) o * C + c];
                    want += G[i][kh] * d * G[l][kw];
                    mass += fabs (G[i][kh] * d * G[l][kw]);
                  }
                size_t j = ((size_t) o * 9 + kh * 3 + kw) * C + c;
                want += base[j];
                double err = fabs ((double) first[j] - want);
                double bound = FLT_EPSILON * fabs (want) + 1e-12 * (mass +
                    fabs (base[j])) + 1e-30;
                if (!(err <= bound))
                  g_error ("F(%d,3) %d->%d, %d groups: dweight[%d][%d][%d]"
                      "[%d] is %.9g, want %.9g (error %.3g > %.3g)", m, C,
                      OC, groups, o, kh, kw, c, first[j], want, err, bound);
              }
        g_free (got);
        g_free (first);
        g_free (base);
        g_free (du);
      }
  }
}

/* The weight gradient's image groups (conv.c cuts the batch into a number
 * of groups that depends on the shape only, each summed into its own
 * partial du, and splits groups x rows of points over the workers): on an
 * odd batch (uneven groups) threads 1, 2, 3 and 5 (shares that cut a
 * group's rows) give identical bits, accumulated onto a non-zero start,
 * each within test_dweight's bound of the reference. The ResNet-18 w0.25
 * layers take 2 groups up to 32 channels (a partial du of at most
 * 64 Ki floats), 1 above, and a batch of 1 one group. */
static void
test_dweight_groups (gconstpointer data)
{
  const int *layer = layers[*(const int *) data];
  SimclrConvShape s = { .B = 37, .H = layer[0], .W = layer[0],
    .C = layer[1], .OC = layer[2], .KH = 3, .KW = 3, .stride = 1, .pad = 1,
    .threads = 1
  };
  g_assert_cmpint (simclr_conv2d_shape_init (&s), ==, 0);
  if (!simclr_conv2d_uses_winograd (&s, SIMCLR_CONV_DWEIGHT)) {
    g_assert_cmpint (simclr_conv2d_winograd_dw_groups (&s), ==, 0);
    g_test_skip ("no Winograd weight gradient at this level");
    return;
  }
  const int m = simclr_conv2d_winograd_tile (&s, SIMCLR_CONV_DWEIGHT);
  const int groups = simclr_conv2d_winograd_dw_groups (&s);
  g_assert_cmpint (groups, ==, s.C <= 32 ? 2 : 1);
  SimclrConvShape one = s;
  one.B = 1;
  g_assert_cmpint (simclr_conv2d_shape_init (&one), ==, 0);
  g_assert_cmpint (simclr_conv2d_winograd_dw_groups (&one), ==, 1);
  const int C = s.C, OC = s.OC;
  const size_t nin = (size_t) s.B * s.H * s.W * C;
  const size_t nout = (size_t) s.B * s.H * s.W * OC;
  const size_t nw = (size_t) OC * 9 * C;
  float *x = g_new (float, nin), *dy = g_new (float, nout);
  fill (x, nin, -1, 1);
  fill (dy, nout, -1, 1);
  double *ref = g_new (double, nw), *S = g_new (double, nw);
  double *T2 = g_new (double, (size_t) OC * C), *T4 = g_new (double,
      (size_t) OC * C);
  ref_dweight (ref, S, T2, T4, x, dy, s.B, s.H, s.W, C, OC);
  float *base = g_new (float, nw), *g1 = g_new (float, nw);
  float *gt = g_new (float, nw);
  fill (base, nw, -1, 1);
  const long n = (long) s.B * ((s.H + m - 1) / m) * ((s.W + m - 1) / m);
  static const int threads[4] = { 1, 2, 3, 5 };
  for (int i = 0; i < 4; i++) {
    SimclrConvShape st = s;
    st.threads = threads[i];
    g_assert_cmpint (simclr_conv2d_winograd_dw_groups (&st), ==, groups);
    float *scratch = g_new (float, simclr_conv2d_scratch_floats (&st) + 1);
    float *dw = i ? gt : g1;
    memcpy (dw, base, sizeof (float) * nw);
    simclr_conv2d_backward_weight (dw, NULL, dy, x, &st, scratch);
    g_free (scratch);
    char what[96];
    g_snprintf (what, sizeof (what), "%dx%d %d->%d batch %d, %d groups, "
        "%d threads", s.H, s.W, C, OC, s.B, groups, threads[i]);
    double wr = check_dw_bound (what, dw, ref, S, T2, T4, base, m, n, C, OC);
    g_assert_cmpfloat (wr, <, m == 4 ? 16.0 : 8.0);
    g_test_message ("%s: F(%d,3), worst error / (eps T) %.2f", what, m, wr);
    for (size_t j = 0; i && j < nw; j++)
      if (memcmp (&gt[j], &g1[j], sizeof (float)) != 0)
        g_error ("%s: weight gradient %zu is %.9g, %.9g on 1 thread", what,
            j, gt[j], g1[j]);
  }
  g_free (gt);
  g_free (g1);
  g_free (base);
  g_free (T4);
  g_free (T2);
  g_free (S);
  g_free (ref);
  g_free (dy);
  g_free (x);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (cpu_level_unavailable ("conv-winograd"))
    return g_test_run ();
  rng = g_rand_new_with_seed (14);
  for (size_t i = 0; i < G_N_ELEMENTS (specs); i++) {
    char *path = g_strdup_printf ("/conv-winograd/kernels/%s",
        specs[i].name);
    g_test_add_data_func (path, &specs[i], test_kernels);
    g_free (path);
    path = g_strdup_printf ("/conv-winograd/dweight/%s", specs[i].name);
    g_test_add_data_func (path, &specs[i], test_dweight);
    g_free (path);
  }
  g_test_add_func ("/conv-winograd/dispatch", test_dispatch);
  static const int jobs[8][2] = {
    {0, 0}, {1, 0}, {2, 0}, {3, 0}, {0, 1}, {1, 1}, {2, 1}, {3, 1},
  };
  for (int j = 0; j < 8; j++) {
    char *path = g_strdup_printf ("/conv-winograd/threads%s/%dx%d-%d",
        jobs[j][1] ? "-f43" : "", layers[jobs[j][0]][0],
        layers[jobs[j][0]][0], layers[jobs[j][0]][1]);
    g_test_add_data_func (path, jobs[j], test_threads);
    g_free (path);
  }
  g_test_add_func ("/conv-winograd/dweight-out", test_dweight_out);
  static const int dw_layers[4] = { 0, 1, 2, 3 };
  for (int l = 0; l < 4; l++) {
    char *path = g_strdup_printf ("/conv-winograd/dweight-groups/%dx%d-%d",
        layers[l][0], layers[l][0], layers[l][1]);
    g_test_add_data_func (path, &dw_layers[l], test_dweight_groups);
    g_free (path);
  }
  int rc = g_test_run ();
  g_rand_free (rng);
  return rc;
}
