/* conv.c: 2-d convolution on NHWC activations, forward and backward.
 *
 * Paths, chosen per shape:
 * - 1x1 stride-1 pad-0: a plain GEMM on the activations (OpenBLAS threads).
 * - thin layers (OC a multiple of 8, at most 32) on CPUs with AVX2 + FMA:
 *   direct kernels that read the NHWC input in place (no columns).
 * - otherwise im2col + cblas_sgemm over chunks of images, so the column
 *   buffer stays bounded (and cache-sized for thin layers).
 * The input gradient of a thin stride-1 convolution runs as the forward of
 * the transposed convolution (turned weights), of a thin strided one as a
 * direct gather; wide layers use GEMM + col2im.
 * With s->threads > 1 the chunks are spread over worker threads.
 * The *_naive twins are plain loops, kept as the test reference.
 * This file does not allocate (the caller passes scratch) and never prints.
 */
#include <pthread.h>
#include <string.h>

#include <cblas.h>

#include "layers-private.h"

/* Upper bound on worker threads of one call (scratch grows with it). */
#define CONV_MAX_THREADS 16

/* Column buffer of one chunk: aim at about CONV_CHUNK_FLOATS floats (fits the
 * 512 KiB L2 of a Zen core with room for the weights), but never fewer than
 * CONV_MIN_ROWS rows: the weight-gradient GEMM reduces over the rows of a
 * chunk and rewrites the whole (OC, K) dweight once per chunk, so tiny chunks
 * of wide layers would stream dweight through memory for little work. */
#define CONV_CHUNK_FLOATS (96 * 1024)
#define CONV_MIN_ROWS 256

int
simclr_conv2d_shape_init (SimclrConvShape *s)
{
  if (s->B <= 0 || s->H <= 0 || s->W <= 0 || s->C <= 0 || s->OC <= 0 ||
      s->KH <= 0 || s->KW <= 0 || s->stride <= 0 || s->pad < 0)
    return -1;
  if (s->H + 2 * s->pad < s->KH || s->W + 2 * s->pad < s->KW)
    return -1;
  s->OH = (s->H + 2 * s->pad - s->KH) / s->stride + 1;
  s->OW = (s->W + 2 * s->pad - s->KW) / s->stride + 1;
  /* Flat indices are int32 elsewhere (max-pool argmax); keep tensors below. */
  if ((double) s->B * s->H * s->W * s->C > 2147483647.0 ||
      (double) s->B * s->OH * s->OW * s->OC > 2147483647.0)
    return -1;
  return 0;
}

static int
conv_is_pointwise (const SimclrConvShape *s)
{
  return s->KH == 1 && s->KW == 1 && s->stride == 1 && s->pad == 0;
}

/* Threads used: the requested count, but each worker must get at least
 * CONV_MIN_WORKER_FLOPS of work. Workers are started per call, and a thread
 * created while the cores are busy can wait a scheduler time slice (ms)
 * before it runs: a 26 MFLOP layer (1x1 stride-2 shortcut, batch 128) took
 * 3x longer on two threads than on one on a loaded machine. */
#define CONV_MIN_WORKER_FLOPS 2e7

static int
conv_threads (const SimclrConvShape *s)
{
  int t = s->threads;
  double flops = 2.0 * s->B * s->OH * s->OW * s->OC * s->KH * s->KW * s->C;
  if (t > flops / CONV_MIN_WORKER_FLOPS)
    t = (int) (flops / CONV_MIN_WORKER_FLOPS);
  if (t < 1)
    t = 1;
  if (t > CONV_MAX_THREADS)
    t = CONV_MAX_THREADS;
  return t;
}

/* Images per chunk: a pure function of the shape, so scratch sizing and the
 * kernels agree. */
static int
conv_chunk_images (const SimclrConvShape *s)
{
  size_t per_img_rows = (size_t) s->OH * s->OW;
  size_t K = (size_t) s->KH * s->KW * s->C;
  size_t n = CONV_CHUNK_FLOATS / (per_img_rows * K);
  size_t min_n = (CONV_MIN_ROWS + per_img_rows - 1) / per_img_rows;
  if (n < min_n)
    n = min_n;
  if (n < 1)
    n = 1;
  /* With several workers, make sure each gets at least one chunk. */
  int t = conv_threads (s);
  if (t > 1 && n * t > (size_t) s->B) {
    n = (size_t) s->B / t;
    if (n < 1)
      n = 1;
  }
  if (n > (size_t) s->B)
    n = s->B;
  return (int) n;
}

int
simclr_conv2d_chunk_images (const SimclrConvShape *s)
{
  return conv_is_pointwise (s) ? 0 : conv_chunk_images (s);
}

/* Workers a shape's chunks can keep busy: the requested threads, no more
 * than there are chunks. */
static int
conv_max_workers (const SimclrConvShape *s)
{
  int t = conv_threads (s);
  int nimg = conv_chunk_images (s);
  int chunks = (s->B + nimg - 1) / nimg;
  return t < chunks ? t : chunks;
}

int
simclr_conv2d_max_workers (const SimclrConvShape *s)
{
  return conv_is_pointwise (s) ? 1 : conv_max_workers (s);
}

/* Column floats of one worker's chunk. */
static size_t
conv_cols_floats (const SimclrConvShape *s)
{
  return (size_t) conv_chunk_images (s) * s->OH * s->OW *
      s->KH * s->KW * s->C;
}

static int conv_direct_ok (const SimclrConvShape *s);
static int conv_direct_bwd_ok (const SimclrConvShape *s);

/* The input gradient of a stride-1 convolution is itself a stride-1
 * convolution: dinp = conv (dout, w') with C and OC swapped, the kernel
 * turned by 180 degrees, w'[c][kh][kw][o] = w[o][KH-1-kh][KW-1-kw][c], and
 * padding KH-1-pad. For thin layers it then runs on the direct forward
 * kernel instead of a GEMM with inner dimension OC into columns plus a
 * col2im (measured 2-3x faster). Fills *t and returns 1 when this applies:
 * stride 1, square kernel, pad <= K-1, not 1x1, and the direct kernel takes
 * the transposed shape (C a multiple of 8, at most 32). Wide layers keep
 * GEMM + col2im: the same transposition on the GEMM path measured slower
 * there (turning a large weight costs more than col2im). */
static int
conv_transposed_shape (const SimclrConvShape *s, SimclrConvShape *t)
{
  if (s->stride != 1 || s->KH != s->KW || s->pad > s->KH - 1 ||
      conv_is_pointwise (s))
    return 0;
  *t = *s;
  t->H = s->OH;
  t->W = s->OW;
  t->C = s->OC;
  t->OC = s->C;
  t->pad = s->KH - 1 - s->pad;
  if (simclr_conv2d_shape_init (t) != 0 || t->OH != s->H || t->OW != s->W)
    return 0;
  return conv_direct_ok (t);
}

size_t
simclr_conv2d_scratch_floats (const SimclrConvShape *s)
{
  if (conv_is_pointwise (s))
    return 0;
  size_t K = (size_t) s->KH * s->KW * s->C;
  int T = conv_max_workers (s);
  /* Forward and backward-weights, per worker: one column buffer (reused for
   * dcols when backward-data goes through col2im); workers beyond the first
   * also keep a private dweight (OC, K) and dbias (OC). */
  size_t need = (size_t) T * conv_cols_floats (s) +
      (size_t) (T - 1) * ((size_t) s->OC * K + s->OC);
  /* The direct kernels: forward's packed weight, or each worker's packed
   * weight gradient after the above. */
  if (conv_direct_ok (s))
    need += (size_t) T * s->OC * K;
  /* Backward-data as a transposed direct convolution, run after the
   * above: the turned, packed weight. */
  SimclrConvShape t;
  if (conv_transposed_shape (s, &t) && need < (size_t) s->OC * K)
    need = (size_t) s->OC * K;
  /* Or a strided one gathered directly: its packed weight. */
  if (conv_direct_bwd_ok (s) && need < (size_t) s->OC * K)
    need = (size_t) s->OC * K;
  return need;
}
/* ---------------------------------------------------------------------------
 * im2col / col2im
 * inp (n, H, W, C) -> cols (n*OH*OW, KH*KW*C): row (b, oh, ow), column
 * (kh, kw, c) in the order of a weight row (OC, KH, KW, C). Padding reads 0. */
static void
im2col (float *cols, const float *inp, int n, const SimclrConvShape *s)
{
  const int H = s->H, W = s->W, C = s->C;
  const size_t K = (size_t) s->KH * s->KW * C;
  float *row = cols;
  for (int b = 0; b < n; b++) {
    const float *img = inp + (size_t) b * H * W * C;
    for (int oh = 0; oh < s->OH; oh++) {
      for (int ow = 0; ow < s->OW; ow++, row += K) {
        float *dst = row;
        int ih0 = oh * s->stride - s->pad, iw0 = ow * s->stride - s->pad;
        for (int kh = 0; kh < s->KH; kh++) {
          int ih = ih0 + kh;
          if (ih < 0 || ih >= H) {
            memset (dst, 0, sizeof (float) * s->KW * C);
            dst += (size_t) s->KW * C;
            continue;
          }
          const float *src_row = img + (size_t) ih * W * C;
          /* Copy the in-range run of kw in one memcpy (NHWC keeps it
           * contiguous); zero the padded ends. */
          int kw_lo = iw0 < 0 ? -iw0 : 0;
          int kw_hi = s->KW;
          if (iw0 + kw_hi > W)
            kw_hi = W - iw0;
          if (kw_hi < kw_lo)
            kw_hi = kw_lo;
          if (kw_lo > 0)
            memset (dst, 0, sizeof (float) * kw_lo * C);
          if (kw_hi > kw_lo)
            memcpy (dst + (size_t) kw_lo * C,
                src_row + (size_t) (iw0 + kw_lo) * C,
                sizeof (float) * (kw_hi - kw_lo) * C);
          if (kw_hi < s->KW)
            memset (dst + (size_t) kw_hi * C, 0,
                sizeof (float) * (s->KW - kw_hi) * C);
          dst += (size_t) s->KW * C;
        }
      }
    }
  }
}

/* Accumulates cols (n*OH*OW, KH*KW*C) back into dinp (n, H, W, C). */
static void
col2im_add (float *dinp, const float *cols, int n, const SimclrConvShape *s)
{
  const int H = s->H, W = s->W, C = s->C;
  const size_t K = (size_t) s->KH * s->KW * C;
  const float *row = cols;
  for (int b = 0; b < n; b++) {
    float *img = dinp + (size_t) b * H * W * C;
    for (int oh = 0; oh < s->OH; oh++) {
      for (int ow = 0; ow < s->OW; ow++, row += K) {
        int ih0 = oh * s->stride - s->pad, iw0 = ow * s->stride - s->pad;
        for (int kh = 0; kh < s->KH; kh++) {
          int ih = ih0 + kh;
          if (ih < 0 || ih >= H)
            continue;
          int kw_lo = iw0 < 0 ? -iw0 : 0;
          int kw_hi = s->KW;
          if (iw0 + kw_hi > W)
            kw_hi = W - iw0;
          if (kw_hi <= kw_lo)
            continue;
          /* (kw, c) of the run is contiguous in both cols and dinp. */
          const float *src = row + ((size_t) kh * s->KW + kw_lo) * C;
          float *dst = img + ((size_t) ih * W + iw0 + kw_lo) * C;
          size_t len = (size_t) (kw_hi - kw_lo) * C;
          for (size_t i = 0; i < len; i++)
            dst[i] += src[i];
        }
      }
    }
  }
}

/* ---------------------------------------------------------------------------
 * Direct convolution for thin layers (OC a multiple of 8, at most 32), AVX2
 * + FMA, chosen at run time; other CPUs and shapes take im2col + GEMM.
 * Thin layers are memory-bound as GEMMs (the columns are KH*KW times the
 * input, and an N = OC = 16 GEMM is far from peak), so these kernels read
 * the NHWC input in place: along (kh, kw, c) a weight row is contiguous per
 * (kh, kw), and so is the input pixel it multiplies. Padded taps read a
 * zero vector (forward) or are skipped (weight gradient). */
/* Build with -DSIMCLR_CONV_NO_DIRECT to test the portable path on x86. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(SIMCLR_CONV_NO_DIRECT)
#define CONV_HAVE_DIRECT 1
#include <immintrin.h>

#define CONV_DIRECT_MAX_C 1024
#define CONV_DIRECT_MAX_K 16
static const float conv_zeros[CONV_DIRECT_MAX_C];

/* out row block: R output pixels (b, oh, ow0 .. ow0+R-1) x OC = 8*NV
 * channels, accumulated in R*NV registers over all taps. wp is the weight
 * packed (KH, KW, C, OC). `o` points at out (b, oh, 0, 0). */
__attribute__ ((target ("avx2,fma"), always_inline)) static inline void
direct_fwd_block (const int NV, const int R, float *o, const float *img,
    const float *wp, const float *bias, int accumulate,
    const SimclrConvShape *s, int oh, int ow0)
{
  const int C = s->C, OC = s->OC, W = s->W;
  __m256 acc[8][4];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
      acc[r][v] = _mm256_setzero_ps ();
  for (int kh = 0; kh < s->KH; kh++) {
    int ih = oh * s->stride - s->pad + kh;
    if (ih < 0 || ih >= s->H)
      continue;
    const float *row = img + (size_t) ih * W * C;
    for (int kw = 0; kw < s->KW; kw++) {
      const float *p[8];
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) {
        int iw = (ow0 + r) * s->stride - s->pad + kw;
        p[r] = iw >= 0 && iw < W ? row + (size_t) iw * C : conv_zeros;
      }
      const float *w = wp + (size_t) (kh * s->KW + kw) * C * OC;
      for (int c = 0; c < C; c++, w += OC) {
        __m256 wv[4];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
          wv[v] = _mm256_loadu_ps (w + 8 * v);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
          __m256 x = _mm256_broadcast_ss (p[r] + c);
#pragma GCC unroll 4
          for (int v = 0; v < NV; v++)
            acc[r][v] = _mm256_fmadd_ps (x, wv[v], acc[r][v]);
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
    float *dst = o + (size_t) (ow0 + r) * OC;
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      __m256 y = acc[r][v];
      if (accumulate)
        y = _mm256_add_ps (y, _mm256_loadu_ps (dst + 8 * v));
      else if (bias)
        y = _mm256_add_ps (y, _mm256_loadu_ps (bias + 8 * v));
      _mm256_storeu_ps (dst + 8 * v, y);
    }
  }
}

/* One output row (b, oh): blocks of R pixels, the rest in blocks of 4/2/1. */
__attribute__ ((target ("avx2,fma"), always_inline)) static inline void
direct_fwd_row (const int NV, const int R, float *o, const float *img,
    const float *wp, const float *bias, int accumulate,
    const SimclrConvShape *s, int oh)
{
  int ow = 0;
  for (; ow + R <= s->OW; ow += R)
    direct_fwd_block (NV, R, o, img, wp, bias, accumulate, s, oh, ow);
  if (R > 4 && ow + 4 <= s->OW) {
    direct_fwd_block (NV, 4, o, img, wp, bias, accumulate, s, oh, ow);
    ow += 4;
  }
  if (R > 2 && ow + 2 <= s->OW) {
    direct_fwd_block (NV, 2, o, img, wp, bias, accumulate, s, oh, ow);
    ow += 2;
  }
  if (ow < s->OW)
    direct_fwd_block (NV, 1, o, img, wp, bias, accumulate, s, oh, ow);
}

/* out (B,OH,OW,OC) for images [b0, b1): = conv + bias, or += conv. */
__attribute__ ((target ("avx2,fma"))) static void
conv_direct_forward (float *out, const float *inp, const float *wp,
    const float *bias, int accumulate, const SimclrConvShape *s, int b0,
    int b1)
{
  for (int b = b0; b < b1; b++) {
    const float *img = inp + (size_t) b * s->H * s->W * s->C;
    for (int oh = 0; oh < s->OH; oh++) {
      float *o = out + ((size_t) b * s->OH + oh) * s->OW * s->OC;
      /* 12 accumulators of 16 leave room for the weights and a broadcast */
      switch (s->OC / 8) {
        case 1:
          direct_fwd_row (1, 8, o, img, wp, bias, accumulate, s, oh);
          break;
        case 2:
          direct_fwd_row (2, 6, o, img, wp, bias, accumulate, s, oh);
          break;
        case 3:
          direct_fwd_row (3, 4, o, img, wp, bias, accumulate, s, oh);
          break;
        default:
          direct_fwd_row (4, 3, o, img, wp, bias, accumulate, s, oh);
          break;
      }
    }
  }
}

/* First output index whose tap k lands inside [0, n): o*stride - pad + k
 * >= 0, and one past the last. */
static void
tap_range (int n, int on, int stride, int pad, int k, int *lo, int *hi)
{
  int a = pad - k;
  *lo = a > 0 ? (a + stride - 1) / stride : 0;
  int last = n - 1 + pad - k;
  *hi = last < 0 ? 0 : last / stride + 1;
  if (*hi > on)
    *hi = on;
  if (*lo > *hi)
    *lo = *hi;
}

/* One run of n output pixels along ow sharing (b, oh) and tap (kh, kw):
 * dwp[c0 + j][o] += sum_i x[i*xstep + j] * d[i*OC + o] for j < CB, with the
 * CB x OC block of the packed gradient held in CB*NV registers. The run's
 * input and dout rows are a few KiB, so the sweep stays in L1. */
__attribute__ ((target ("avx2,fma"), always_inline)) static inline void
direct_dw_run (const int NV, const int CB, float *dwp, const float *x,
    size_t xstep, const float *d, int n, int OC)
{
  __m256 acc[12][4];
#pragma GCC unroll 12
  for (int j = 0; j < CB; j++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
      acc[j][v] = _mm256_loadu_ps (dwp + (size_t) j * OC + 8 * v);
  for (int i = 0; i < n; i++, x += xstep, d += OC) {
    __m256 dv[4];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
      dv[v] = _mm256_loadu_ps (d + 8 * v);
#pragma GCC unroll 12
    for (int j = 0; j < CB; j++) {
      __m256 xb = _mm256_broadcast_ss (x + j);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++)
        acc[j][v] = _mm256_fmadd_ps (xb, dv[v], acc[j][v]);
    }
  }
#pragma GCC unroll 12
  for (int j = 0; j < CB; j++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
      _mm256_storeu_ps (dwp + (size_t) j * OC + 8 * v, acc[j][v]);
}

/* dwp (KH, KW, C, OC) += weight gradient of images [b0, b1), one output
 * row (b, oh) at a time so its input rows and dout row stay in L1. */
__attribute__ ((target ("avx2,fma"), always_inline)) static inline void
direct_dw_rows (const int NV, const int CB, float *dwp, const float *inp,
    const float *dout, const SimclrConvShape *s, int b0, int b1, int o0)
{
  const int C = s->C, OC = s->OC, H = s->H, W = s->W;
  const size_t xstep = (size_t) s->stride * C;
  int lo[CONV_DIRECT_MAX_K], hi[CONV_DIRECT_MAX_K];
  for (int kw = 0; kw < s->KW; kw++)
    tap_range (W, s->OW, s->stride, s->pad, kw, &lo[kw], &hi[kw]);
  for (int b = b0; b < b1; b++)
    for (int oh = 0; oh < s->OH; oh++) {
      const float *drow = dout + ((size_t) b * s->OH + oh) * s->OW * OC;
      for (int kh = 0; kh < s->KH; kh++) {
        int ih = oh * s->stride - s->pad + kh;
        if (ih < 0 || ih >= H)
          continue;
        const float *xrow = inp + ((size_t) b * H + ih) * W * C;
        for (int kw = 0; kw < s->KW; kw++) {
          int n = hi[kw] - lo[kw];
          if (n <= 0)
            continue;
          const float *x = xrow +
              (size_t) (lo[kw] * s->stride - s->pad + kw) * C;
          const float *d = drow + (size_t) lo[kw] * OC + o0;
          float *dk = dwp + ((size_t) kh * s->KW + kw) * C * OC + o0;
          int c = 0;
          for (; c + CB <= C; c += CB)
            direct_dw_run (NV, CB, dk + (size_t) c * OC, x + c, xstep, d, n,
                OC);
          if (CB > 4 && c + 4 <= C) {
            direct_dw_run (NV, 4, dk + (size_t) c * OC, x + c, xstep, d, n,
                OC);
            c += 4;
          }
          if (CB > 2 && c + 2 <= C) {
            direct_dw_run (NV, 2, dk + (size_t) c * OC, x + c, xstep, d, n,
                OC);
            c += 2;
          }
          for (; c < C; c++)
            direct_dw_run (NV, 1, dk + (size_t) c * OC, x + c, xstep, d, n,
                OC);
        }
      }
    }
}

/* dwp (KH, KW, C, OC) += dout^T x columns of images [b0, b1): the weight
 * gradient in the packed layout (conv_unpack_add_dweight turns it back). */
__attribute__ ((target ("avx2,fma"))) static void
conv_direct_dweight (float *dwp, const float *inp, const float *dout,
    const SimclrConvShape *s, int b0, int b1)
{
  /* CB*NV accumulators + NV dout vectors + 1 broadcast <= 16 registers;
   * OC = 32 runs as two halves of 16 (6 x 2 blocks beat 2 x 4). */
  switch (s->OC / 8) {
    case 1:
      direct_dw_rows (1, 12, dwp, inp, dout, s, b0, b1, 0);
      break;
    case 2:
      direct_dw_rows (2, 6, dwp, inp, dout, s, b0, b1, 0);
      break;
    case 3:
      direct_dw_rows (3, 4, dwp, inp, dout, s, b0, b1, 0);
      break;
    default:
      direct_dw_rows (2, 6, dwp, inp, dout, s, b0, b1, 0);
      direct_dw_rows (2, 6, dwp, inp, dout, s, b0, b1, 16);
      break;
  }
}
/* Input gradient of a strided convolution, gathered per input pixel:
 * dinp (b, ih, iw, :) += sum over taps (kh, kw) that reach an output pixel
 * (oh, ow) of dout (b, oh, ow, :) x wt[kh][kw] (OC x C). For stride s the
 * input pixels iw0, iw0+s, iw0+2s, ... of one residue class reach the same
 * taps, at consecutive output pixels, so a block of R of them reads R
 * consecutive dout pixels per tap, like the forward block with the roles of
 * C and OC swapped. wt is packed (KH, KW, OC, C); C = 8*NV. */
__attribute__ ((target ("avx2,fma"), always_inline)) static inline void
direct_bwd_block (const int NV, const int R, float *drow,
    const float *dout_img, const float *wt, const SimclrConvShape *s, int ih,
    int iw0)
{
  const int C = s->C, OC = s->OC, st = s->stride;
  __m256 acc[8][4];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
      acc[r][v] = _mm256_setzero_ps ();
  for (int kh = 0; kh < s->KH; kh++) {
    int t = ih + s->pad - kh;
    if (t < 0 || t % st != 0 || t / st >= s->OH)
      continue;
    const float *orow = dout_img + (size_t) (t / st) * s->OW * OC;
    for (int kw = 0; kw < s->KW; kw++) {
      int u = iw0 + s->pad - kw;
      if (((u % st) + st) % st != 0)
        continue;
      int ow0 = u / st;         /* exact: u is a multiple of st */
      const float *p[8];
#pragma GCC unroll 8
      for (int r = 0; r < R; r++)
        p[r] = ow0 + r >= 0 && ow0 + r < s->OW ?
            orow + (size_t) (ow0 + r) * OC : conv_zeros;
      const float *w = wt + (size_t) (kh * s->KW + kw) * OC * C;
      for (int o = 0; o < OC; o++, w += C) {
        __m256 wv[4];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
          wv[v] = _mm256_loadu_ps (w + 8 * v);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
          __m256 x = _mm256_broadcast_ss (p[r] + o);
#pragma GCC unroll 4
          for (int v = 0; v < NV; v++)
            acc[r][v] = _mm256_fmadd_ps (x, wv[v], acc[r][v]);
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
    float *dst = drow + (size_t) (iw0 + st * r) * C;
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
      _mm256_storeu_ps (dst + 8 * v,
          _mm256_add_ps (acc[r][v], _mm256_loadu_ps (dst + 8 * v)));
  }
}

__attribute__ ((target ("avx2,fma"), always_inline)) static inline void
direct_bwd_row (const int NV, const int R, float *drow,
    const float *dout_img, const float *wt, const SimclrConvShape *s, int ih)
{
  const int st = s->stride;
  for (int q = 0; q < st && q < s->W; q++) {
    int n = (s->W - q + st - 1) / st;   /* pixels q, q+st, ... < W */
    int j = 0;
    for (; j + R <= n; j += R)
      direct_bwd_block (NV, R, drow, dout_img, wt, s, ih, q + st * j);
    if (R > 4 && j + 4 <= n) {
      direct_bwd_block (NV, 4, drow, dout_img, wt, s, ih, q + st * j);
      j += 4;
    }
    if (R > 2 && j + 2 <= n) {
      direct_bwd_block (NV, 2, drow, dout_img, wt, s, ih, q + st * j);
      j += 2;
    }
    if (j < n)
      direct_bwd_block (NV, 1, drow, dout_img, wt, s, ih, q + st * j);
  }
}

/* dinp (B,H,W,C) += input gradient of images [b0, b1); wt from
 * conv_pack_weight (..., CONV_PACK_OC_C). */
__attribute__ ((target ("avx2,fma"))) static void
conv_direct_backward_data (float *dinp, const float *dout, const float *wt,
    const SimclrConvShape *s, int b0, int b1)
{
  for (int b = b0; b < b1; b++) {
    const float *dimg = dout + (size_t) b * s->OH * s->OW * s->OC;
    for (int ih = 0; ih < s->H; ih++) {
      float *drow = dinp + ((size_t) b * s->H + ih) * s->W * s->C;
      switch (s->C / 8) {
        case 1:
          direct_bwd_row (1, 8, drow, dimg, wt, s, ih);
          break;
        case 2:
          direct_bwd_row (2, 6, drow, dimg, wt, s, ih);
          break;
        case 3:
          direct_bwd_row (3, 4, drow, dimg, wt, s, ih);
          break;
        default:
          direct_bwd_row (4, 3, drow, dimg, wt, s, ih);
          break;
      }
    }
  }
}
#endif

/* Whether conv_direct_backward_data serves this shape's input gradient:
 * strided convolutions with C a multiple of 8, at most 32 (stride 1 goes
 * through the transposed forward instead). */
static int
conv_direct_bwd_ok (const SimclrConvShape *s)
{
#ifdef CONV_HAVE_DIRECT
  if (conv_is_pointwise (s) || s->stride < 2 || s->C % 8 != 0 ||
      s->C > 32 || s->OC > CONV_DIRECT_MAX_C)
    return 0;
  __builtin_cpu_init ();
  return __builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma");
#else
  return 0;
#endif
}

/* Whether the direct kernels serve this shape on this CPU. */
static int
conv_direct_ok (const SimclrConvShape *s)
{
#ifdef CONV_HAVE_DIRECT
  if (conv_is_pointwise (s) || s->OC % 8 != 0 || s->OC > 32 ||
      s->C > CONV_DIRECT_MAX_C || s->KW > CONV_DIRECT_MAX_K)
    return 0;
  __builtin_cpu_init ();
  return __builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma");
#else
  return 0;
#endif
}

/* Packs weight (OC, KH, KW, C) for the direct kernels:
 * CONV_PACK_C_OC: wp (KH, KW, C, OC), as the direct forward reads it;
 * CONV_PACK_TURNED: the weight of the transposed convolution (see
 * conv_transposed_shape) packed likewise, wp (KH, KW, OC, C) with
 * wp[kh][kw][o][c] = weight[o][KH-1-kh][KW-1-kw][c];
 * CONV_PACK_OC_C: wp (KH, KW, OC, C), for conv_direct_backward_data. */
enum { CONV_PACK_C_OC, CONV_PACK_TURNED, CONV_PACK_OC_C };

static void
conv_pack_weight (float *wp, const float *weight, const SimclrConvShape *s,
    int layout)
{
  const int OC = s->OC, KH = s->KH, KW = s->KW, C = s->C;
  for (int o = 0; o < OC; o++)
    for (int kh = 0; kh < KH; kh++)
      for (int kw = 0; kw < KW; kw++)
        for (int c = 0; c < C; c++) {
          float w = weight[(((size_t) o * KH + kh) * KW + kw) * C + c];
          if (layout == CONV_PACK_TURNED)
            wp[(((size_t) (KH - 1 - kh) * KW + (KW - 1 - kw)) * OC + o) * C +
                c] = w;
          else if (layout == CONV_PACK_OC_C)
            wp[(((size_t) kh * KW + kw) * OC + o) * C + c] = w;
          else
            wp[(((size_t) kh * KW + kw) * C + c) * OC + o] = w;
        }
}

/* ---------------------------------------------------------------------------
 * Chunk workers. One task covers a contiguous range of chunks; the caller
 * runs task 0 itself and tasks 1.. on pthreads.
 *
 * GEMMs called from several of our threads must not start OpenBLAS's own
 * threads: OpenBLAS 0.3.x (interface/gemm.c) keeps a GEMM on the calling
 * thread when M*N*K <= 65536 * GEMM_MULTITHREAD_THRESHOLD (4 by default),
 * while larger calls from several threads queue on its one thread server
 * and oversubscribe the cores (measured here: backward-data of a thin layer
 * fell from 21 to 1-3 GFLOP/s). So when OpenBLAS runs more than one thread,
 * workers slice their GEMMs below that size, and shapes too wide for useful
 * slices run on one worker, letting OpenBLAS thread the GEMM instead. */
#define CONV_SERIAL_MNK ((size_t) 65536 * 4)
#define CONV_MIN_SLICE_ROWS 16

typedef struct {
  const SimclrConvShape *s;
  int img_begin, img_end, nimg;
  size_t max_mnk;               /* largest M*N*K per GEMM call, 0: any */
  float *cols;
  /* forward */
  float *out;
  const float *inp, *weight, *bias;
  int accumulate;               /* out += conv instead of out = conv + bias */
  int direct;                   /* use the direct kernels (forward: wpack) */
  const float *wpack;
  float *dwp;                   /* direct backward: packed dweight (K, OC) */
  /* backward */
  float *dinp, *dweight, *dbias;
  const float *dout;
} ConvTask;

static void
bias_fill (float *out, const float *bias, size_t rows, int OC)
{
  for (size_t r = 0; r < rows; r++) {
    if (bias)
      memcpy (out + r * OC, bias, sizeof (float) * OC);
    else
      memset (out + r * OC, 0, sizeof (float) * OC);
  }
}

/* Rows per GEMM call so that rows * nk <= max_mnk. */
static int
slice_rows (size_t max_mnk, size_t nk, int rows)
{
  if (max_mnk == 0)
    return rows;
  size_t r = max_mnk / nk;
  if (r < 1)
    r = 1;
  return r < (size_t) rows ? (int) r : rows;
}

static void *
conv_forward_task (void *arg)
{
  ConvTask *t = arg;
  const SimclrConvShape *s = t->s;
  const int K = s->KH * s->KW * s->C, OC = s->OC;
  const size_t in_img = (size_t) s->H * s->W * s->C;
  const size_t out_rows_img = (size_t) s->OH * s->OW;
#ifdef CONV_HAVE_DIRECT
  if (t->direct) {
    conv_direct_forward (t->out, t->inp, t->wpack, t->bias, t->accumulate, s,
        t->img_begin, t->img_end);
    return NULL;
  }
#endif
  for (int b = t->img_begin; b < t->img_end; b += t->nimg) {
    int n = t->img_end - b < t->nimg ? t->img_end - b : t->nimg;
    int rows = (int) (n * out_rows_img);
    float *o = t->out + (size_t) b * out_rows_img * OC;
    im2col (t->cols, t->inp + (size_t) b * in_img, n, s);
    if (!t->accumulate)
      bias_fill (o, t->bias, rows, OC);
    int step = slice_rows (t->max_mnk, (size_t) OC * K, rows);
    for (int r0 = 0; r0 < rows; r0 += step) {
      int m = rows - r0 < step ? rows - r0 : step;
      /* GEMM M = m output pixels, N = OC, K = KH*KW*C:
       * out (M, N) += cols (M, K) x weight^T, weight stored (N, K). */
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, m, OC, K,
          1.0f, t->cols + (size_t) r0 * K, K, t->weight, K,
          1.0f, o + (size_t) r0 * OC, OC);
    }
  }
  return NULL;
}

static void *
conv_backward_task (void *arg)
{
  ConvTask *t = arg;
  const SimclrConvShape *s = t->s;
  const int K = s->KH * s->KW * s->C, OC = s->OC;
  const size_t in_img = (size_t) s->H * s->W * s->C;
  const size_t out_rows_img = (size_t) s->OH * s->OW;
  if (t->direct)
    memset (t->dwp, 0, sizeof (float) * K * OC);
  for (int b = t->img_begin; b < t->img_end; b += t->nimg) {
    int n = t->img_end - b < t->nimg ? t->img_end - b : t->nimg;
    int rows = (int) (n * out_rows_img);
    const float *d = t->dout + (size_t) b * out_rows_img * OC;
    if (t->dbias) {
      for (int r = 0; r < rows; r++)
        for (int o = 0; o < OC; o++)
          t->dbias[o] += d[(size_t) r * OC + o];
    }
    int step = slice_rows (t->max_mnk, (size_t) OC * K, rows);
#ifdef CONV_HAVE_DIRECT
    if (t->direct)
      conv_direct_dweight (t->dwp, t->inp, t->dout, s, b, b + n);
    else
#endif
    {
      im2col (t->cols, t->inp + (size_t) b * in_img, n, s);
      for (int r0 = 0; r0 < rows; r0 += step) {
        int m = rows - r0 < step ? rows - r0 : step;
        /* dweight: GEMM M = OC, N = K, K = m rows:
         * dweight (OC, K) += dout^T (OC, m) x cols (m, K). */
        cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, OC, K, m,
            1.0f, d + (size_t) r0 * OC, OC, t->cols + (size_t) r0 * K, K,
            1.0f, t->dweight, K);
      }
    }
    if (t->dinp) {
      for (int r0 = 0; r0 < rows; r0 += step) {
        int m = rows - r0 < step ? rows - r0 : step;
        /* dcols: GEMM M = m rows, N = K, K = OC, into the column buffer:
         * dcols (m, K) = dout (m, OC) x weight (OC, K). */
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, m, K, OC,
            1.0f, d + (size_t) r0 * OC, OC, t->weight, K,
            0.0f, t->cols + (size_t) r0 * K, K);
      }
      col2im_add (t->dinp + (size_t) b * in_img, t->cols, n, s);
    }
  }
  if (t->direct) {
    /* dweight (OC, K) += dwp (K, OC)^T */
    for (int o = 0; o < OC; o++)
      for (int k = 0; k < K; k++)
        t->dweight[(size_t) o * K + k] += t->dwp[(size_t) k * OC + o];
  }
  return NULL;
}

static void *
conv_backward_data_task (void *arg)
{
#ifdef CONV_HAVE_DIRECT
  ConvTask *t = arg;
  conv_direct_backward_data (t->dinp, t->dout, t->wpack, t->s, t->img_begin,
      t->img_end);
#endif
  return NULL;
}

/* Runs fn on tasks 1.. in pthreads and task 0 on the calling thread. If a
 * thread cannot be created its task runs here: same results, slower. */
static void
conv_run_tasks (ConvTask *tasks, int workers, void *(*fn) (void *))
{
  pthread_t tid[CONV_MAX_THREADS];
  int started[CONV_MAX_THREADS] = { 0 };
  for (int i = 1; i < workers; i++)
    started[i] = pthread_create (&tid[i], NULL, fn, &tasks[i]) == 0;
  fn (&tasks[0]);
  for (int i = 1; i < workers; i++) {
    if (started[i])
      pthread_join (tid[i], NULL);
    else
      fn (&tasks[i]);
  }
}

/* Splits the B images into contiguous ranges of whole chunks, one per
 * worker, with column buffers from scratch; returns the worker count.
 * `blas`: whether the tasks will call OpenBLAS. */
static int
conv_split (ConvTask *tasks, const SimclrConvShape *s, float *scratch,
    int blas)
{
  const int nimg = conv_chunk_images (s);
  const int chunks = (s->B + nimg - 1) / nimg;
  const size_t col_floats = conv_cols_floats (s);
  int workers = conv_max_workers (s);
  size_t max_mnk = 0;
  if (blas && workers > 1 && openblas_get_num_threads () > 1) {
    max_mnk = CONV_SERIAL_MNK;
    if ((size_t) s->OC * s->KH * s->KW * s->C * CONV_MIN_SLICE_ROWS >
        max_mnk) {
      workers = 1;
      max_mnk = 0;
    }
  }
  int chunk = 0;
  for (int i = 0; i < workers; i++) {
    int c1 = (int) ((long) chunks * (i + 1) / workers);
    memset (&tasks[i], 0, sizeof (tasks[i]));
    tasks[i].s = s;
    tasks[i].nimg = nimg;
    tasks[i].max_mnk = max_mnk;
    tasks[i].img_begin = chunk * nimg;
    tasks[i].img_end = c1 * nimg < s->B ? c1 * nimg : s->B;
    tasks[i].cols = scratch + (size_t) i * col_floats;
    chunk = c1;
  }
  return workers;
}

/* out = conv (inp) + bias, or out += conv (inp) with accumulate. With
 * wpack (the weight packed by conv_pack_weight) the direct kernel runs,
 * otherwise im2col + GEMM on weight with columns in scratch. */
static void
conv_forward_chunks (float *out, const float *inp, const float *weight,
    const float *wpack, const float *bias, int accumulate,
    const SimclrConvShape *s, float *scratch)
{
  ConvTask tasks[CONV_MAX_THREADS];
  int workers = conv_split (tasks, s, scratch, wpack == NULL);
  for (int i = 0; i < workers; i++) {
    tasks[i].out = out;
    tasks[i].inp = inp;
    tasks[i].weight = weight;
    tasks[i].bias = bias;
    tasks[i].accumulate = accumulate;
    tasks[i].direct = wpack != NULL;
    tasks[i].wpack = wpack;
  }
  conv_run_tasks (tasks, workers, conv_forward_task);
}

void
simclr_conv2d_forward (float *out, const float *inp, const float *weight,
    const float *bias, const SimclrConvShape *s, float *scratch)
{
  /* inp (B,H,W,C), weight (OC, KH*KW*C), bias (OC) or NULL,
   * out (B,OH,OW,OC) */
  if (conv_is_pointwise (s)) {
    const int M = s->B * s->H * s->W;
    bias_fill (out, bias, M, s->OC);
    /* GEMM M = B*H*W, N = OC, K = C: out (M, N) += inp (M, K) x weight^T. */
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, M, s->OC, s->C,
        1.0f, inp, s->C, weight, s->C, 1.0f, out, s->OC);
    return;
  }
  if (conv_direct_ok (s)) {
    conv_pack_weight (scratch, weight, s, CONV_PACK_C_OC);
    conv_forward_chunks (out, inp, NULL, scratch, bias, 0, s,
        scratch + (size_t) s->OC * s->KH * s->KW * s->C);
  } else {
    conv_forward_chunks (out, inp, weight, NULL, bias, 0, s, scratch);
  }
}

void
simclr_conv2d_backward (float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight,
    const SimclrConvShape *s, float *scratch)
{
  /* dout (B,OH,OW,OC), inp (B,H,W,C), weight (OC, KH*KW*C);
   * accumulates dinp (B,H,W,C) (if not NULL), dweight (OC, K), dbias (OC)
   * (if not NULL). */
  const int OC = s->OC;
  if (conv_is_pointwise (s)) {
    const int M = s->B * s->H * s->W, C = s->C;
    if (dbias) {
      for (int r = 0; r < M; r++)
        for (int o = 0; o < OC; o++)
          dbias[o] += dout[(size_t) r * OC + o];
    }
    /* dweight: GEMM M = OC, N = C, K = B*H*W:
     * dweight (OC, C) += dout^T (OC, M) x inp (M, C). */
    cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, M,
        1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (dinp) {
      /* dinp: GEMM M = B*H*W, N = C, K = OC:
       * dinp (M, C) += dout (M, OC) x weight (OC, C). */
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, M, C, OC,
          1.0f, dout, OC, weight, C, 1.0f, dinp, C);
    }
    return;
  }

  SimclrConvShape ts;
  const int transposed = dinp && conv_transposed_shape (s, &ts);
  const int gather = dinp && !transposed && conv_direct_bwd_ok (s);
  const int direct = conv_direct_ok (s);
  const size_t K = (size_t) s->KH * s->KW * s->C;

  /* dweight, dbias (and dinp through GEMM + col2im unless transposed or
   * gathered: both run afterwards) */
  ConvTask tasks[CONV_MAX_THREADS];
  int workers = conv_split (tasks, s, scratch,
      !direct || (dinp && !transposed && !gather));
  /* Workers 1.. accumulate into private dweight/dbias after the column
   * buffers, summed into the caller's in a fixed order at the end. */
  float *priv = scratch + (size_t) workers * conv_cols_floats (s);
  float *dwp = priv + (size_t) (workers - 1) * (OC * K + OC);
  for (int i = 0; i < workers; i++) {
    tasks[i].dinp = transposed || gather ? NULL : dinp;
    tasks[i].dout = dout;
    tasks[i].inp = inp;
    tasks[i].weight = weight;
    tasks[i].direct = direct;
    tasks[i].dwp = dwp + (size_t) i * OC * K;
    if (i == 0) {
      tasks[i].dweight = dweight;
      tasks[i].dbias = dbias;
    } else {
      float *p = priv + (size_t) (i - 1) * (OC * K + OC);
      memset (p, 0, sizeof (float) * (OC * K + OC));
      tasks[i].dweight = p;
      tasks[i].dbias = dbias ? p + OC * K : NULL;
    }
  }
  conv_run_tasks (tasks, workers, conv_backward_task);
  for (int i = 1; i < workers; i++) {
    const float *p = tasks[i].dweight;
    for (size_t j = 0; j < OC * K; j++)
      dweight[j] += p[j];
    if (dbias)
      for (int o = 0; o < OC; o++)
        dbias[o] += p[OC * K + o];
  }

  if (transposed) {
    /* dinp += conv (dout) with the turned weight packed at scratch */
    conv_pack_weight (scratch, weight, s, CONV_PACK_TURNED);
    conv_forward_chunks (dinp, dout, NULL, scratch, NULL, 1, &ts,
        scratch + OC * K);
  } else if (gather) {
    conv_pack_weight (scratch, weight, s, CONV_PACK_OC_C);
    workers = conv_split (tasks, s, scratch + OC * K, 0);
    for (int i = 0; i < workers; i++) {
      tasks[i].dinp = dinp;
      tasks[i].dout = dout;
      tasks[i].wpack = scratch;
    }
    conv_run_tasks (tasks, workers, conv_backward_data_task);
  }
}

/* ---------------------------------------------------------------------------
 * Naive twins: direct loops over the definition, the test reference. */
void
simclr_conv2d_forward_naive (float *out, const float *inp,
    const float *weight, const float *bias, const SimclrConvShape *s)
{
  const int H = s->H, W = s->W, C = s->C;
  for (int b = 0; b < s->B; b++)
    for (int oh = 0; oh < s->OH; oh++)
      for (int ow = 0; ow < s->OW; ow++)
        for (int o = 0; o < s->OC; o++) {
          float acc = bias ? bias[o] : 0.0f;
          for (int kh = 0; kh < s->KH; kh++) {
            int ih = oh * s->stride - s->pad + kh;
            if (ih < 0 || ih >= H)
              continue;
            for (int kw = 0; kw < s->KW; kw++) {
              int iw = ow * s->stride - s->pad + kw;
              if (iw < 0 || iw >= W)
                continue;
              const float *x = inp + (((size_t) b * H + ih) * W + iw) * C;
              const float *w = weight +
                  (((size_t) o * s->KH + kh) * s->KW + kw) * C;
              for (int c = 0; c < C; c++)
                acc += x[c] * w[c];
            }
          }
          out[(((size_t) b * s->OH + oh) * s->OW + ow) * s->OC + o] = acc;
        }
}

void
simclr_conv2d_backward_naive (float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight,
    const SimclrConvShape *s)
{
  const int H = s->H, W = s->W, C = s->C;
  for (int b = 0; b < s->B; b++)
    for (int oh = 0; oh < s->OH; oh++)
      for (int ow = 0; ow < s->OW; ow++)
        for (int o = 0; o < s->OC; o++) {
          float d = dout[(((size_t) b * s->OH + oh) * s->OW + ow) * s->OC + o];
          if (dbias)
            dbias[o] += d;
          for (int kh = 0; kh < s->KH; kh++) {
            int ih = oh * s->stride - s->pad + kh;
            if (ih < 0 || ih >= H)
              continue;
            for (int kw = 0; kw < s->KW; kw++) {
              int iw = ow * s->stride - s->pad + kw;
              if (iw < 0 || iw >= W)
                continue;
              size_t xi = (((size_t) b * H + ih) * W + iw) * C;
              size_t wi = (((size_t) o * s->KH + kh) * s->KW + kw) * C;
              for (int c = 0; c < C; c++) {
                dweight[wi + c] += d * inp[xi + c];
                if (dinp)
                  dinp[xi + c] += d * weight[wi + c];
              }
            }
          }
        }
}
