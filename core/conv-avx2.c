/* conv-avx2.c: direct convolution kernels for AVX2 + FMA (one row of the
 * kernel table in cpu.c; dispatch, threads and the portable path live in
 * conv.c).
 *
 * Thin layers are memory-bound as GEMMs (the columns are KH*KW times the
 * input, and an N = OC = 16 GEMM is far from peak), so these kernels read
 * the NHWC input in place: along (kh, kw, c) a weight row is contiguous per
 * (kh, kw), and so is the input pixel it multiplies. Padded taps read a
 * zero vector (forward) or are skipped (weight gradient). Shapes: OC (the
 * forward and weight gradient) or C (the strided input gradient) a multiple
 * of 8, at most 32: 8-float vectors, all accumulators in the 16 ymm
 * registers. Every kernel here is compiled for AVX2 + FMA through target
 * attributes and is only called when cpu.c found both; the predicates are
 * portable code.
 */
#include "cpu-private.h"

#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__)
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

/* The C = 1 stem (3x3, stride 1, pad 1, one input channel), as in
 * conv-avx512.c: each image copied into a zero-bordered buffer, 8 output
 * channels at a time; the forward keeps the 9 weight vectors in registers
 * (6 pixels per block), the weight gradient sums the 9 taps in 9
 * independent chains in one sweep (the blocks above: one chain per tap). */
#define C1_MAX_W 64
#define C1_R 6
#define C1_PW (C1_MAX_W + 2 + C1_R)

static int
c1_ok (const SimclrConvShape *s)
{
  return s->C == 1 && s->KH == 3 && s->KW == 3 && s->stride == 1 &&
      s->pad == 1 && s->W <= C1_MAX_W && s->H <= C1_MAX_W;
}

/* xp ((H + 2) x C1_PW) = image (H, W) with a zero border */
static void
c1_pad_image (float *xp, const float *img, int H, int W)
{
  memset (xp, 0, sizeof (float) * C1_PW);
  for (int ih = 0; ih < H; ih++) {
    float *row = xp + (size_t) (ih + 1) * C1_PW;
    row[0] = 0.0f;
    memcpy (row + 1, img + (size_t) ih * W, sizeof (float) * W);
    memset (row + W + 1, 0, sizeof (float) * (C1_PW - W - 1));
  }
  memset (xp + (size_t) (H + 1) * C1_PW, 0, sizeof (float) * C1_PW);
}

__attribute__ ((target ("avx2,fma"))) static void
c1_forward (float *out, const float *inp, const float *wp,
    const float *bias, int accumulate, const SimclrConvShape *s, int b0,
    int b1)
{
  const int H = s->H, W = s->W, OC = s->OC;
  float xp[(C1_MAX_W + 2) * C1_PW];
  for (int b = b0; b < b1; b++) {
    c1_pad_image (xp, inp + (size_t) b * H * W, H, W);
    for (int o0 = 0; o0 < OC; o0 += 8) {
      __m256 w[9];
      for (int t = 0; t < 9; t++)
        w[t] = _mm256_loadu_ps (wp + (size_t) t * OC + o0);
      for (int oh = 0; oh < H; oh++) {
        float *o = out + ((size_t) b * H + oh) * W * OC + o0;
        for (int ow0 = 0; ow0 < W; ow0 += C1_R) {
          __m256 acc[C1_R];
#pragma GCC unroll 6
          for (int r = 0; r < C1_R; r++)
            acc[r] = _mm256_setzero_ps ();
#pragma GCC unroll 3
          for (int kh = 0; kh < 3; kh++) {
            const float *x = xp + (size_t) (oh + kh) * C1_PW + ow0;
#pragma GCC unroll 3
            for (int kw = 0; kw < 3; kw++)
#pragma GCC unroll 6
              for (int r = 0; r < C1_R; r++)
                acc[r] = _mm256_fmadd_ps (_mm256_broadcast_ss (x + r + kw),
                    w[kh * 3 + kw], acc[r]);
          }
          int nr = W - ow0 < C1_R ? W - ow0 : C1_R;
          for (int r = 0; r < nr; r++) {
            float *dst = o + (size_t) (ow0 + r) * OC;
            __m256 y = acc[r];
            if (accumulate)
              y = _mm256_add_ps (y, _mm256_loadu_ps (dst));
            else if (bias)
              y = _mm256_add_ps (y, _mm256_loadu_ps (bias + o0));
            _mm256_storeu_ps (dst, y);
          }
        }
      }
    }
  }
}

/* dwp (3, 3, 1, OC) += the weight gradient of images [b0, b1). */
__attribute__ ((target ("avx2,fma"))) static void
c1_dweight (float *dwp, const float *inp, const float *dout,
    const SimclrConvShape *s, int b0, int b1)
{
  const int H = s->H, W = s->W, OC = s->OC;
  float xp[(C1_MAX_W + 2) * C1_PW];
  for (int o0 = 0; o0 < OC; o0 += 8) {
    __m256 acc[9];
#pragma GCC unroll 9
    for (int t = 0; t < 9; t++)
      acc[t] = _mm256_loadu_ps (dwp + (size_t) t * OC + o0);
    for (int b = b0; b < b1; b++) {
      c1_pad_image (xp, inp + (size_t) b * H * W, H, W);
      for (int oh = 0; oh < H; oh++) {
        const float *d = dout + ((size_t) b * H + oh) * W * OC + o0;
        const float *x = xp + (size_t) oh * C1_PW;
        for (int ow = 0; ow < W; ow++) {
          __m256 dv = _mm256_loadu_ps (d + (size_t) ow * OC);
#pragma GCC unroll 3
          for (int kh = 0; kh < 3; kh++)
#pragma GCC unroll 3
            for (int kw = 0; kw < 3; kw++)
              acc[kh * 3 + kw] = _mm256_fmadd_ps (_mm256_broadcast_ss (x +
                      (size_t) kh * C1_PW + ow + kw), dv, acc[kh * 3 + kw]);
        }
      }
    }
#pragma GCC unroll 9
    for (int t = 0; t < 9; t++)
      _mm256_storeu_ps (dwp + (size_t) t * OC + o0, acc[t]);
  }
}

/* out (B,OH,OW,OC) for images [b0, b1): = conv + bias, or += conv. */
__attribute__ ((target ("avx2,fma"))) static void
conv_direct_forward (float *out, const float *inp, const float *wp,
    const float *bias, int accumulate, const SimclrConvShape *s, int b0,
    int b1)
{
  if (c1_ok (s)) {
    c1_forward (out, inp, wp, bias, accumulate, s, b0, b1);
    return;
  }
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
  if (c1_ok (s)) {
    c1_dweight (dwp, inp, dout, s, b0, b1);
    return;
  }
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

static int
avx2_forward_ok (const SimclrConvShape *s)
{
  return s->OC % 8 == 0 && s->OC <= 32 && s->C <= CONV_DIRECT_MAX_C &&
      s->KW <= CONV_DIRECT_MAX_K;
}

/* Strided convolutions with C a multiple of 8, at most 32. */
static int
avx2_backward_data_ok (const SimclrConvShape *s)
{
  return s->stride >= 2 && s->C % 8 == 0 && s->C <= 32 &&
      s->OC <= CONV_DIRECT_MAX_C;
}

const SimclrConvKernels simclr_conv_kernels_avx2 = {
  .forward_ok = avx2_forward_ok,
  .forward = conv_direct_forward,
  .dweight_ok = avx2_forward_ok,
  .dweight = conv_direct_dweight,
  .backward_data_ok = avx2_backward_data_ok,
  .backward_data = conv_direct_backward_data,
};
#endif
