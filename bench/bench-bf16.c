/* bench-bf16.c: how much an AVX512_BF16 compute path could gain (issue 14's
 * optional precision=bf16), measured before building one.
 *
 * It is a bound, not the path: it prints
 *  1. the instruction peak of one core: vfmadd231ps against vdpbf16ps on
 *     zmm registers (independent accumulators, no memory), as GFLOP/s
 *     (an FMA lane is 2 flops, a dpbf16 lane 4);
 *  2. the 3x3 stride-1 convolutions of ResNet-18 w0.25 on 28x28x1 (the main
 *     job's shape: 16 channels at 28x28 up to 128 at 4x4), forward, one
 *     thread, for
 *       fp32: the kernel the library runs there (the AVX-512 row of
 *             cpu.c's table, the same call conv.c makes), and
 *       bf16: a sliding-window vdpbf16ps kernel written here (input
 *             channel pairs against 16 output channels per instruction,
 *             fp32 accumulation), timed with and without the fp32 -> bf16
 *             conversion of its input (a padded bf16 copy of each image),
 *     alternated in every repetition, thread CPU time, best of the reps;
 *     the bf16 result's largest error against the fp32 one is printed;
 *     then the same for the weight gradient (the library's AVX-512 kernel
 *     against a vdpbf16ps kernel over pixel pairs, with and without the
 *     pair-interleaved bf16 re-layout of dout and the input);
 *  3. whether this OpenBLAS exports cblas_sbgemm (Debian's 0.3.21 declares
 *     it in cblas.h; looked up with dlsym, so a library without it still
 *     runs this program).
 * With the per-layer shares of a training step from
 *   bench-train --config w0.25-28x1 --profile
 * (conv forward, input gradient, weight gradient, BN, the rest), section 2's
 * speed-ups give the step's best case (bench/README.md): a bound, since it
 * grants each stride-1 input gradient (the forward of the turned weight,
 * on dout) its layer's forward speed-up.
 * Asserts nothing. Exits 77 where the CPU lacks AVX512_BF16.
 *
 * Usage: bench-bf16 [--batch B] [--reps R]   (B images per call, default 64)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu-private.h"
#include "layers-private.h"

#if defined(__GNUC__) && defined(__x86_64__) && __GNUC__ >= 10
#include <immintrin.h>

#define BF16 "avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,fma"

static double
cpu_now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- 1. instruction peak ------------------------------------------------ */

#define PEAK_ACC 12

__attribute__ ((target (BF16), noinline)) static float
peak_fma (long iters)
{
  __m512 acc[PEAK_ACC];
  __m512 a = _mm512_set1_ps (1e-7f), b = _mm512_set1_ps (0.999f);
  for (int i = 0; i < PEAK_ACC; i++)
    acc[i] = _mm512_set1_ps ((float) i);
  for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
    for (int i = 0; i < PEAK_ACC; i++)
      acc[i] = _mm512_fmadd_ps (a, b, acc[i]);
    __asm__ volatile ("" : "+v" (a));
  }
  __m512 s = acc[0];
  for (int i = 1; i < PEAK_ACC; i++)
    s = _mm512_add_ps (s, acc[i]);
  return _mm512_reduce_add_ps (s);
}

__attribute__ ((target (BF16), noinline)) static float
peak_dpbf16 (long iters)
{
  __m512 acc[PEAK_ACC];
  __m512bh a = _mm512_cvtne2ps_pbh (_mm512_set1_ps (1e-7f),
      _mm512_set1_ps (1e-7f));
  __m512bh b = _mm512_cvtne2ps_pbh (_mm512_set1_ps (0.999f),
      _mm512_set1_ps (0.999f));
  for (int i = 0; i < PEAK_ACC; i++)
    acc[i] = _mm512_set1_ps ((float) i);
  for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
    for (int i = 0; i < PEAK_ACC; i++)
      acc[i] = _mm512_dpbf16_ps (acc[i], a, b);
    __asm__ volatile ("" : "+v" (a));
  }
  __m512 s = acc[0];
  for (int i = 1; i < PEAK_ACC; i++)
    s = _mm512_add_ps (s, acc[i]);
  return _mm512_reduce_add_ps (s);
}

/* ---- 2. the bf16 forward kernel ----------------------------------------- */

/* Round-to-nearest-even fp32 -> bf16 of n floats (n % 16 == 0), the
 * instruction the path would use. */
__attribute__ ((target (BF16))) static void
to_bf16 (uint16_t *dst, const float *src, size_t n)
{
  for (size_t i = 0; i < n; i += 16) {
    __m256bh v = _mm512_cvtneps_pbh (_mm512_loadu_ps (src + i));
    _mm256_storeu_si256 ((__m256i *) (dst + i), (__m256i) v);
  }
}

/* Weights: fp32 wp (3, 3, C, OC) -> bf16 wb (3, 3, C/2, OC, 2): the pair of
 * input channels (2cp, 2cp+1) of output channel o side by side, so 16
 * output channels x one pair are one zmm, a vdpbf16ps operand. */
static void
pack_weight_bf16 (uint16_t *wb, const float *wp, int C, int OC)
{
  for (int t = 0; t < 9; t++)
    for (int cp = 0; cp < C / 2; cp++)
      for (int o = 0; o < OC; o++)
        for (int e = 0; e < 2; e++) {
          float f = wp[((size_t) t * C + 2 * cp + e) * OC + o];
          uint32_t u;
          memcpy (&u, &f, 4);
          /* round to nearest even, as vcvtneps2bf16 does (no NaNs here) */
          u += 0x7fff + ((u >> 16) & 1);
          wb[(((size_t) t * C / 2 + cp) * OC + o) * 2 + e] = u >> 16;
        }
}

#define MAX_R 14
#define MAX_NV 4

/* One block: R output pixels (ow0 ..) x 16*NV output channels from o0, of
 * output row oh, from the padded bf16 image xb ((H+2), (W+2), CT): each
 * input pair is broadcast once and meets the three weight vectors of its
 * row of taps (the sliding window of conv-avx512.c's s1 kernels). */
__attribute__ ((target (BF16), always_inline)) static inline void
bf16_block (const int NV, const int R, const int CT, float *o, int OC,
    const uint16_t *xb, int WP, const uint16_t *wb, int oh, int ow0,
    int o0, int nr)
{
  __m512 acc[MAX_R][MAX_NV];
#pragma GCC unroll 14
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
      acc[r][v] = _mm512_setzero_ps ();
  for (int kh = 0; kh < 3; kh++) {
    const uint16_t *x = xb + ((size_t) (oh + kh) * WP + ow0) * CT;
    const uint16_t *w = wb + (size_t) kh * 3 * (CT / 2) * OC * 2;
    for (int cp = 0; cp < CT / 2; cp++) {
      __m512bh wv[3][MAX_NV];
#pragma GCC unroll 3
      for (int kw = 0; kw < 3; kw++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
          wv[kw][v] = (__m512bh) _mm512_loadu_si512 (w +
              (((size_t) kw * (CT / 2) + cp) * OC + o0 + 16 * v) * 2);
#pragma GCC unroll 16
      for (int j = 0; j < R + 2; j++) {
        int32_t pair;
        memcpy (&pair, x + (size_t) j * CT + 2 * cp, 4);
        __m512bh xv = (__m512bh) _mm512_set1_epi32 (pair);
#pragma GCC unroll 3
        for (int kw = 0; kw < 3; kw++) {
          const int r = j - kw;
          if (r >= 0 && r < R)
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
              acc[r][v] = _mm512_dpbf16_ps (acc[r][v], wv[kw][v], xv);
        }
      }
    }
  }
#pragma GCC unroll 14
  for (int r = 0; r < R; r++) {
    if (r >= nr)
      break;
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
      _mm512_storeu_ps (o + (size_t) (ow0 + r) * OC + o0 + 16 * v,
          acc[r][v]);
  }
}

/* Images [0, B) of a 3x3 s1 p1 convolution, C = CT; xpad holds one padded
 * image plus slack for the last block's overrun (borders stay zero). With
 * convert, each image is first converted into xpad (timed with the kernel),
 * else xpad is taken as already holding image 0's bf16 copy (the kernel
 * alone). */
__attribute__ ((target (BF16), always_inline)) static inline void
bf16_rows (const int NV, const int R, const int CT, float *out,
    const float *inp, uint16_t *xpad, const uint16_t *wb, int B, int H,
    int W, int OC, int convert)
{
  const int WP = W + 2;
  for (int b = 0; b < B; b++) {
    if (convert)
      for (int h = 0; h < H; h++)
        to_bf16 (xpad + ((size_t) (h + 1) * WP + 1) * CT,
            inp + ((size_t) b * H + h) * W * CT, (size_t) W * CT);
    for (int oh = 0; oh < H; oh++) {
      float *o = out + ((size_t) b * H + oh) * W * OC;
      for (int o0 = 0; o0 < OC; o0 += 16 * NV)
        for (int ow0 = 0; ow0 < W; ow0 += R)
          bf16_block (NV, R, CT, o, OC, xpad, WP, wb, oh, ow0, o0,
              W - ow0 < R ? W - ow0 : R);
    }
  }
}

__attribute__ ((target (BF16))) static void
bf16_forward (float *out, const float *inp, uint16_t *xpad,
    const uint16_t *wb, int B, int H, int W, int C, int OC, int convert)
{
  /* R*NV accumulators + 3*NV weights + a broadcast within 32 registers */
  if (C == 16 && OC == 16 && W % 14 == 0)
    bf16_rows (1, 14, 16, out, inp, xpad, wb, B, H, W, OC, convert);
  else if (C == 32 && OC == 32)
    bf16_rows (2, 7, 32, out, inp, xpad, wb, B, H, W, OC, convert);
  else if (C == 64 && OC == 64)
    bf16_rows (2, 7, 64, out, inp, xpad, wb, B, H, W, OC, convert);
  else if (C == 128 && OC == 128 && W <= 4)
    bf16_rows (4, 4, 128, out, inp, xpad, wb, B, H, W, OC, convert);
  else
    abort ();                   /* only the shapes below are wired */
}

/* ---- 2b. the bf16 weight-gradient kernel ------------------------------- */

/* dW (3, 3, C, OC) += sum over pixels of x (pixel + tap) * dout (pixel).
 * vdpbf16ps reduces over pairs, so pairs run along the pixels of a row:
 * per image, dout is re-laid (H, NP, OC, 2) with NP = ceil (W / 2) pixel
 * pairs (an odd row's last pair has a zero second pixel), and the padded
 * input twice, pairs starting at even padded columns (XE, taps kw = 0, 2)
 * and at odd ones (XO, kw = 1): (H + 2, NP + 1, C, 2). One instruction:
 * 16 output channels x one pixel pair against the broadcast pair of one
 * input channel. The re-layout of a chunk of images is timed with the
 * kernel (a real path would pay it: the forward's padded copy has the
 * wrong layout). */
typedef struct {
  int G, H, W, C, OC, NP;
  uint16_t *d, *xe, *xo;        /* G images each */
} DwBufs;

__attribute__ ((target (BF16))) static inline uint16_t
bf16_of (float f)
{
  uint32_t u;
  memcpy (&u, &f, 4);
  u += 0x7fff + ((u >> 16) & 1);
  return u >> 16;
}

/* Re-lays images [b, b + g) of inp (B, H, W, C) and dout (B, H, W, OC). */
__attribute__ ((target (BF16))) static void
dw_relayout (DwBufs *q, const float *inp, const float *dout, int b, int g)
{
  const int H = q->H, W = q->W, C = q->C, OC = q->OC, NP = q->NP;
  /* interleave two pixels' 16 channels: lanes (v0[i], v1[i]) */
  const __m512i idx = _mm512_set_epi16 (31, 15, 30, 14, 29, 13, 28, 12, 27,
      11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17,
      1, 16, 0);
  const __m512 zero = _mm512_setzero_ps ();
  for (int i = 0; i < g; i++) {
    const float *di = dout + (size_t) (b + i) * H * W * OC;
    uint16_t *dd = q->d + (size_t) i * H * NP * OC * 2;
    for (int h = 0; h < H; h++)
      for (int p = 0; p < NP; p++)
        for (int o = 0; o < OC; o += 16) {
          const float *r = di + ((size_t) h * W + 2 * p) * OC + o;
          __m512 v0 = _mm512_loadu_ps (r);
          __m512 v1 = 2 * p + 1 < W ? _mm512_loadu_ps (r + OC) : zero;
          __m512i pr = (__m512i) _mm512_cvtne2ps_pbh (v1, v0);
          _mm512_storeu_si512 (dd + (((size_t) h * NP + p) * OC + o) * 2,
              _mm512_permutexvar_epi16 (idx, pr));
        }
    const float *xi = inp + (size_t) (b + i) * H * W * C;
    uint16_t *xe = q->xe + (size_t) i * (H + 2) * (NP + 1) * C * 2;
    uint16_t *xo = q->xo + (size_t) i * (H + 2) * (NP + 1) * C * 2;
    for (int h = 0; h < H; h++)
      for (int p = 0; p <= NP; p++)
        for (int c = 0; c < C; c += 16) {
          /* padded column j holds pixel j - 1; XE pair p = columns 2p,
           * 2p + 1; XO pair p = columns 2p + 1, 2p + 2 */
          __m512 col[3];
          for (int k = 0; k < 3; k++) {
            int iw = 2 * p + k - 1;
            col[k] = iw >= 0 && iw < W ?
                _mm512_loadu_ps (xi + ((size_t) h * W + iw) * C + c) : zero;
          }
          size_t at = (((size_t) (h + 1) * (NP + 1) + p) * C + c) * 2;
          _mm512_storeu_si512 (xe + at, _mm512_permutexvar_epi16 (idx,
                  (__m512i) _mm512_cvtne2ps_pbh (col[1], col[0])));
          _mm512_storeu_si512 (xo + at, _mm512_permutexvar_epi16 (idx,
                  (__m512i) _mm512_cvtne2ps_pbh (col[2], col[1])));
        }
  }
}

/* CB input channels from c0 x 16*NV output channels from o0, one tap, over
 * the chunk's g images: CB*NV accumulators + NV dout vectors + a
 * broadcast. */
__attribute__ ((target (BF16), always_inline)) static inline void
dw_bf16_block (const int NV, const int CB, float *dw, const DwBufs *q,
    int g, int kh, int kw, int c0, int o0)
{
  const int H = q->H, C = q->C, OC = q->OC, NP = q->NP;
  const uint16_t *xs = kw == 1 ? q->xo : q->xe;
  const int qoff = kw == 2 ? 1 : 0;
  __m512 acc[16][MAX_NV];
  float *dk = dw + ((size_t) (kh * 3 + kw) * C + c0) * OC + o0;
#pragma GCC unroll 16
  for (int j = 0; j < CB; j++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
      acc[j][v] = _mm512_loadu_ps (dk + (size_t) j * OC + 16 * v);
  for (int i = 0; i < g; i++)
    for (int h = 0; h < H; h++) {
      const uint16_t *d = q->d + ((size_t) (i * H + h) * NP * OC + o0) * 2;
      const uint16_t *x = xs + (((size_t) i * (H + 2) + h + kh) * (NP + 1) +
          qoff) * C * 2 + c0 * 2;
      for (int p = 0; p < NP; p++, d += OC * 2, x += C * 2) {
        __m512bh dv[MAX_NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
          dv[v] = (__m512bh) _mm512_loadu_si512 (d + 32 * v);
#pragma GCC unroll 16
        for (int j = 0; j < CB; j++) {
          int32_t pair;
          memcpy (&pair, x + 2 * j, 4);
          __m512bh xb = (__m512bh) _mm512_set1_epi32 (pair);
#pragma GCC unroll 4
          for (int v = 0; v < NV; v++)
            acc[j][v] = _mm512_dpbf16_ps (acc[j][v], dv[v], xb);
        }
      }
    }
#pragma GCC unroll 16
  for (int j = 0; j < CB; j++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
      _mm512_storeu_ps (dk + (size_t) j * OC + 16 * v, acc[j][v]);
}

/* dw (3, 3, C, OC) += the weight gradient of B images, in chunks of g
 * images re-laid then swept once per (tap, channel block). With relayout
 * 0 the buffers are taken as already holding chunk 0 (kernel alone). */
__attribute__ ((target (BF16))) static void
bf16_dweight (float *dw, const float *inp, const float *dout, DwBufs *q,
    int B, int relayout)
{
  for (int b = 0; b < B; b += q->G) {
    int g = B - b < q->G ? B - b : q->G;
    if (relayout)
      dw_relayout (q, inp, dout, b, g);
    for (int t = 0; t < 9; t++) {
      const int kh = t / 3, kw = t % 3;
      if (q->OC == 16)
        for (int c0 = 0; c0 < q->C; c0 += 16)
          dw_bf16_block (1, 16, dw, q, g, kh, kw, c0, 0);
      else
        for (int o0 = 0; o0 < q->OC; o0 += 32)
          for (int c0 = 0; c0 < q->C; c0 += 8)
            dw_bf16_block (2, 8, dw, q, g, kh, kw, c0, o0);
    }
  }
}

typedef struct {
  const char *name;
  int H, W, C;                  /* C = OC, 3x3 stride 1 pad 1 */
} Shape;

static const Shape shapes[] = {
  {"l1 28x28x16->16", 28, 28, 16},
  {"l2 14x14x32->32", 14, 14, 32},
  {"l3 7x7x64->64", 7, 7, 64},
  {"l4 4x4x128->128", 4, 4, 128},
};

static float
frand (uint64_t *st)
{
  *st = *st * 6364136223846793005ULL + 1442695040888963407ULL;
  return ((*st >> 40) / (float) (1 << 24)) * 2.0f - 1.0f;
}

int
main (int argc, char **argv)
{
  int B = 64, reps = 7;
  for (int i = 1; i < argc; i++) {
    if (!strcmp (argv[i], "--batch") && i + 1 < argc)
      B = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--reps") && i + 1 < argc)
      reps = atoi (argv[++i]);
    else {
      fprintf (stderr, "usage: %s [--batch B] [--reps R]\n", argv[0]);
      return 2;
    }
  }
  if (B < 1 || reps < 1) {
    fprintf (stderr, "bench-bf16: --batch and --reps must be >= 1\n");
    return 2;
  }
  __builtin_cpu_init ();
  if (!__builtin_cpu_supports ("avx512bf16")) {
    printf ("bench-bf16: this CPU has no AVX512_BF16: skipped\n");
    return 77;
  }
  const SimclrKernels *k = simclr_cpu_kernels_at (SIMCLR_CPU_AVX512);
  if (!k || !k->set[0] || !k->set[0]->conv) {
    printf ("bench-bf16: no AVX-512 kernel set: skipped\n");
    return 77;
  }
  const SimclrConvKernels *kc = k->set[0]->conv;
  printf ("bench-bf16: one thread, thread CPU time, best of %d alternated "
      "repetitions; kernel set %s\n", reps, k->set[0]->name);

  /* 1 */
  long iters = 20000000;
  double fma_best = 1e30, dp_best = 1e30;
  volatile float sink = 0;
  for (int r = 0; r < reps; r++) {
    double t0 = cpu_now ();
    sink += peak_fma (iters);
    double t1 = cpu_now ();
    sink += peak_dpbf16 (iters);
    double t2 = cpu_now ();
    fma_best = fmin (fma_best, t1 - t0);
    dp_best = fmin (dp_best, t2 - t1);
  }
  double per = (double) iters * PEAK_ACC * 16;
  printf ("\n| instruction (zmm, %d independent accumulators) | GFLOP/s one core "
      "| ratio |\n|---|---|---|\n", PEAK_ACC);
  printf ("| vfmadd231ps (16 lanes x 2 flops) | %.1f | 1.00 |\n",
      per * 2 / fma_best * 1e-9);
  printf ("| vdpbf16ps (16 lanes x 4 flops) | %.1f | %.2f |\n",
      per * 4 / dp_best * 1e-9, (per * 4 / dp_best) / (per * 2 / fma_best));

  /* 2 */
  printf ("\n| 3x3 s1 forward, %d images | fp32 ms (GFLOP/s) | bf16 kernel "
      "ms (GFLOP/s) | bf16 + conversion ms | speed-up kernel / with "
      "conversion | bf16 max abs err (max |out|) |\n|---|---|---|---|---|---|\n",
      B);
  double sum_fp32 = 0, sum_conv = 0;
  for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
    const Shape *sh = &shapes[si];
    const int H = sh->H, W = sh->W, C = sh->C, OC = sh->C;
    SimclrConvShape s = { 0 };
    s.B = B;
    s.H = H;
    s.W = W;
    s.C = C;
    s.OC = OC;
    s.KH = s.KW = 3;
    s.stride = 1;
    s.pad = 1;
    s.threads = 1;
    s.kernels = k;
    if (simclr_conv2d_shape_init (&s) != 0 || !kc->forward_ok (&s)) {
      printf ("| %s | shape refused | | | | |\n", sh->name);
      continue;
    }
    size_t nin = (size_t) B * H * W * C, nout = (size_t) B * H * W * OC;
    size_t nw = (size_t) 9 * C * OC;
    size_t npad = ((size_t) (H + 2) * (W + 2) + MAX_R + 2) * C;
    float *x = malloc (nin * sizeof (float));
    float *wp = malloc (nw * sizeof (float));
    float *y32 = malloc (nout * sizeof (float));
    float *y16 = malloc (nout * sizeof (float));
    uint16_t *wb = malloc (nw * sizeof (uint16_t));
    uint16_t *xpad = calloc (npad, sizeof (uint16_t));
    if (!x || !wp || !y32 || !y16 || !wb || !xpad) {
      fprintf (stderr, "bench-bf16: out of memory\n");
      return 1;
    }
    uint64_t st = 42 + si;
    for (size_t i = 0; i < nin; i++)
      x[i] = frand (&st);
    for (size_t i = 0; i < nw; i++)
      wp[i] = frand (&st) * 0.1f;
    pack_weight_bf16 (wb, wp, C, OC);
    /* error of the converted path on image 0 against fp32 */
    kc->forward (y32, x, wp, NULL, 0, &s, 0, B);
    bf16_forward (y16, x, xpad, wb, 1, H, W, C, OC, 1);
    double err = 0, mag = 0;
    for (size_t i = 0; i < (size_t) H * W * OC; i++) {
      err = fmax (err, fabs ((double) y16[i] - y32[i]));
      mag = fmax (mag, fabs ((double) y32[i]));
    }
    double t32 = 1e30, tk = 1e30, tc = 1e30;
    for (int r = 0; r < reps; r++) {
      double t0 = cpu_now ();
      kc->forward (y32, x, wp, NULL, 0, &s, 0, B);
      double t1 = cpu_now ();
      bf16_forward (y16, x, xpad, wb, B, H, W, C, OC, 0);
      double t2 = cpu_now ();
      /* the weight's conversion happens once per step in a real path:
       * counted here per call, an upper bound on its cost */
      pack_weight_bf16 (wb, wp, C, OC);
      bf16_forward (y16, x, xpad, wb, B, H, W, C, OC, 1);
      double t3 = cpu_now ();
      t32 = fmin (t32, t1 - t0);
      tk = fmin (tk, t2 - t1);
      tc = fmin (tc, t3 - t2);
    }
    double fl = 2.0 * nout * 9 * C;
    printf ("| %s | %.2f (%.0f) | %.2f (%.0f) | %.2f | %.2fx / %.2fx | %.2g (%.2g) |\n",
        sh->name, t32 * 1e3, fl / t32 * 1e-9, tk * 1e3, fl / tk * 1e-9,
        tc * 1e3, t32 / tk, t32 / tc, err, mag);
    sum_fp32 += t32;
    sum_conv += tc;
    free (x);
    free (wp);
    free (y32);
    free (y16);
    free (wb);
    free (xpad);
  }
  printf ("| all four (sum) | %.2f | | %.2f | - / %.2fx | |\n",
      sum_fp32 * 1e3, sum_conv * 1e3, sum_fp32 / sum_conv);

  /* 2b */
  printf ("\n| 3x3 s1 weight gradient, %d images | fp32 ms (GFLOP/s) | bf16 "
      "kernel ms (GFLOP/s) | bf16 + re-layout ms | speed-up kernel / with "
      "re-layout | bf16 max abs err (max |dW|) |\n|---|---|---|---|---|---|\n",
      B);
  double dsum32 = 0, dsum16 = 0;
  for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
    const Shape *sh = &shapes[si];
    const int H = sh->H, W = sh->W, C = sh->C, OC = sh->C;
    SimclrConvShape s = { 0 };
    s.B = B;
    s.H = H;
    s.W = W;
    s.C = C;
    s.OC = OC;
    s.KH = s.KW = 3;
    s.stride = 1;
    s.pad = 1;
    s.threads = 1;
    s.kernels = k;
    if (simclr_conv2d_shape_init (&s) != 0 || !kc->dweight_ok (&s)) {
      printf ("| %s | shape refused | | | | |\n", sh->name);
      continue;
    }
    size_t nin = (size_t) B * H * W * C, nout = (size_t) B * H * W * OC;
    size_t nw = (size_t) 9 * C * OC;
    DwBufs q = {.H = H, .W = W, .C = C, .OC = OC, .NP = (W + 1) / 2 };
    size_t per_img = ((size_t) H * q.NP * OC + 2 * (size_t) (H + 2) *
        (q.NP + 1) * C) * 2 * sizeof (uint16_t);
    q.G = (int) ((256 * 1024) / per_img);
    if (q.G < 1)
      q.G = 1;
    float *x = malloc (nin * sizeof (float));
    float *d = malloc (nout * sizeof (float));
    float *dw32 = malloc (nw * sizeof (float));
    float *dw16 = malloc (nw * sizeof (float));
    q.d = calloc ((size_t) q.G * H * q.NP * OC * 2, sizeof (uint16_t));
    q.xe = calloc ((size_t) q.G * (H + 2) * (q.NP + 1) * C * 2,
        sizeof (uint16_t));
    q.xo = calloc ((size_t) q.G * (H + 2) * (q.NP + 1) * C * 2,
        sizeof (uint16_t));
    if (!x || !d || !dw32 || !dw16 || !q.d || !q.xe || !q.xo) {
      fprintf (stderr, "bench-bf16: out of memory\n");
      return 1;
    }
    uint64_t st = 77 + si;
    for (size_t i = 0; i < nin; i++)
      x[i] = frand (&st);
    for (size_t i = 0; i < nout; i++)
      d[i] = frand (&st) * 0.01f;
    memset (dw32, 0, nw * sizeof (float));
    memset (dw16, 0, nw * sizeof (float));
    kc->dweight (dw32, x, d, &s, 0, B);
    bf16_dweight (dw16, x, d, &q, B, 1);
    double err = 0, mag = 0;
    for (size_t i = 0; i < nw; i++) {
      err = fmax (err, fabs ((double) dw16[i] - dw32[i]));
      mag = fmax (mag, fabs ((double) dw32[i]));
    }
    double t32 = 1e30, tk = 1e30, tc = 1e30;
    for (int r = 0; r < reps; r++) {
      double t0 = cpu_now ();
      kc->dweight (dw32, x, d, &s, 0, B);
      double t1 = cpu_now ();
      /* kernel alone: every chunk sweeps the buffers of the last one */
      bf16_dweight (dw16, x, d, &q, B, 0);
      double t2 = cpu_now ();
      bf16_dweight (dw16, x, d, &q, B, 1);
      double t3 = cpu_now ();
      t32 = fmin (t32, t1 - t0);
      tk = fmin (tk, t2 - t1);
      tc = fmin (tc, t3 - t2);
    }
    double fl = 2.0 * nout * 9 * C;
    printf ("| %s (chunks of %d images) | %.2f (%.0f) | %.2f (%.0f) | %.2f | %.2fx / %.2fx | %.2g (%.2g) |\n",
        sh->name, q.G, t32 * 1e3, fl / t32 * 1e-9, tk * 1e3, fl / tk * 1e-9,
        tc * 1e3, t32 / tk, t32 / tc, err, mag);
    dsum32 += t32;
    dsum16 += tc;
    free (x);
    free (d);
    free (dw32);
    free (dw16);
    free (q.d);
    free (q.xe);
    free (q.xo);
  }
  printf ("| all four (sum) | %.2f | | %.2f | - / %.2fx | |\n",
      dsum32 * 1e3, dsum16 * 1e3, dsum32 / dsum16);

  /* 3 */
  void *sym = dlsym (RTLD_DEFAULT, "cblas_sbgemm");
  printf ("\ncblas_sbgemm: %s\n", sym ? "exported by the loaded OpenBLAS" :
      "not exported by the loaded OpenBLAS (declared in its cblas.h only)");
  (void) sink;
  return 0;
}

#else
int
main (void)
{
  printf ("bench-bf16: needs GCC >= 10 on x86-64: skipped\n");
  return 77;
}
#endif
