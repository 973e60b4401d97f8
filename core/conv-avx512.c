/* conv-avx512.c: direct convolution kernels for AVX-512 (F, BW, DQ, VL)
 * (one row of the kernel table in cpu.c; dispatch, threads and the portable
 * path live in conv.c).
 *
 * The AVX2 kernels' scheme (conv-avx2.c) on 16-float vectors and 32
 * registers: the NHWC input is read in place, a block of R output pixels x
 * 16*NV channels is accumulated in R*NV zmm registers over all taps (kh, kw,
 * c), one broadcast input value against NV weight vectors per step. Wider
 * layers run in groups of 64 channels (the packed weight keeps a group's 64
 * values of one (kh, kw, c) contiguous), so OpenBLAS's AVX2 sgemm is not the
 * only path for them; conv.c's table decides per shape (predicates below,
 * from bench-conv measurements). Padded taps read a zero vector (forward,
 * input gradient) or are skipped (weight gradient).
 * Every kernel is compiled for AVX-512 through target attributes and only
 * called when cpu.c found it; the predicates are portable code.
 */
#include "cpu-private.h"

#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>

#define CONV_DIRECT_MAX_C 1024
#define CONV_DIRECT_MAX_K 16
static const float conv_zeros[CONV_DIRECT_MAX_C];

#define AVX512 "avx512f,avx512bw,avx512dq,avx512vl,fma"
#define KERNEL __attribute__ ((target (AVX512), always_inline)) static inline

/* Largest block: R pixels x NV vectors. */
#define MAX_R 16
#define MAX_NV 4

/* out row block: R output pixels (b, oh, ow0 .. ow0+R-1) x 16*NV channels
 * from o0, accumulated in R*NV registers over the taps and input channels
 * [c0, c0 + cn). wp is the weight packed (KH, KW, C, OC). `o` points at
 * out (b, oh, 0, 0). With accumulate the block adds to out, else it
 * writes conv + bias (bias may be NULL). */
KERNEL void
fwd_block (const int NV, const int R, float *o, const float *img,
    const float *wp, const float *bias, int accumulate,
    const SimclrConvShape *s, int oh, int ow0, int o0, int c0, int cn)
{
  const int C = s->C, OC = s->OC, W = s->W;
  __m512 acc[MAX_R][MAX_NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
      acc[r][v] = _mm512_setzero_ps ();
  for (int kh = 0; kh < s->KH; kh++) {
    int ih = oh * s->stride - s->pad + kh;
    if (ih < 0 || ih >= s->H)
      continue;
    const float *row = img + (size_t) ih * W * C + c0;
    for (int kw = 0; kw < s->KW; kw++) {
      const float *p[MAX_R];
#pragma GCC unroll 16
      for (int r = 0; r < R; r++) {
        int iw = (ow0 + r) * s->stride - s->pad + kw;
        p[r] = iw >= 0 && iw < W ? row + (size_t) iw * C : conv_zeros;
      }
      const float *w = wp + ((size_t) (kh * s->KW + kw) * C + c0) * OC + o0;
      for (int c = 0; c < cn; c++, w += OC) {
        __m512 wv[MAX_NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
          wv[v] = _mm512_loadu_ps (w + 16 * v);
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
          __m512 x = _mm512_set1_ps (p[r][c]);
#pragma GCC unroll 4
          for (int v = 0; v < NV; v++)
            acc[r][v] = _mm512_fmadd_ps (x, wv[v], acc[r][v]);
        }
      }
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; r++) {
    float *dst = o + (size_t) (ow0 + r) * OC + o0;
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      __m512 y = acc[r][v];
      if (accumulate)
        y = _mm512_add_ps (y, _mm512_loadu_ps (dst + 16 * v));
      else if (bias)
        y = _mm512_add_ps (y, _mm512_loadu_ps (bias + o0 + 16 * v));
      _mm512_storeu_ps (dst + 16 * v, y);
    }
  }
}

/* One output row (b, oh), channel group o0, input channels [c0, c0 + cn):
 * blocks of R pixels, the rest in blocks of 8/4/2/1. */
KERNEL void
fwd_row (const int NV, const int R, float *o, const float *img,
    const float *wp, const float *bias, int accumulate,
    const SimclrConvShape *s, int oh, int o0, int c0, int cn)
{
  int ow = 0;
  for (; ow + R <= s->OW; ow += R)
    fwd_block (NV, R, o, img, wp, bias, accumulate, s, oh, ow, o0, c0, cn);
  if (R > 8 && ow + 8 <= s->OW) {
    fwd_block (NV, 8, o, img, wp, bias, accumulate, s, oh, ow, o0, c0, cn);
    ow += 8;
  }
  if (R > 4 && ow + 4 <= s->OW) {
    fwd_block (NV, 4, o, img, wp, bias, accumulate, s, oh, ow, o0, c0, cn);
    ow += 4;
  }
  if (R > 2 && ow + 2 <= s->OW) {
    fwd_block (NV, 2, o, img, wp, bias, accumulate, s, oh, ow, o0, c0, cn);
    ow += 2;
  }
  if (ow < s->OW)
    fwd_block (NV, 1, o, img, wp, bias, accumulate, s, oh, ow, o0, c0, cn);
}

/* Bytes of packed weight one pass over the chunk may stream: above, the
 * input channels are split into blocks so that a block's slice (KH*KW*cb
 * x 16*NV floats) stays in L2 for all pixels of the chunk. */
#define FWD_WEIGHT_BYTES (192 * 1024)

KERNEL void
fwd_rows (const int NV, const int R, float *out, const float *inp,
    const float *wp, const float *bias, int accumulate,
    const SimclrConvShape *s, int b0, int b1)
{
  const size_t tap_bytes = (size_t) s->KH * s->KW * 16 * NV * sizeof (float);
  int cb = s->C;
  while (cb % 2 == 0 && cb > 16 && cb * tap_bytes > FWD_WEIGHT_BYTES)
    cb /= 2;
  for (int o0 = 0; o0 < s->OC; o0 += 16 * NV)
    for (int c0 = 0; c0 < s->C; c0 += cb) {
      /* later input-channel blocks add to the first one's sums */
      int acc = accumulate || c0 > 0;
      const float *bi = c0 > 0 ? NULL : bias;
      for (int b = b0; b < b1; b++) {
        const float *img = inp + (size_t) b * s->H * s->W * s->C;
        for (int oh = 0; oh < s->OH; oh++)
          fwd_row (NV, R, out + ((size_t) b * s->OH + oh) * s->OW * s->OC,
              img, wp, bi, acc, s, oh, o0, c0, cb);
      }
    }
}

/* 3x3, stride 1, pad 1, thin layers: a sliding window along the row.
 * Each input value is broadcast once and meets the three weight vectors of
 * its row of taps (kw = 0, 1, 2), feeding three neighbouring outputs, so a
 * broadcast serves 3*NV multiply-adds instead of NV (the blocks above need
 * one broadcast load per multiply-add at 16 channels, and measured 60 % of
 * the FMA peak). The input channel count CT is a compile-time constant
 * (16, 32 or 64), so every input offset is an immediate. Each input row is
 * first copied with a zero pixel at both ends, so no tap needs a test. */
#define S1_MAX_W 64

KERNEL void
s1_block (const int NV, const int R, const int CT, float *o, int OC,
    const float *rows[3], const float *wp, const float *bias,
    int accumulate, int ow0, int nr)
{
  __m512 acc[MAX_R][2];
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++)
      acc[r][v] = _mm512_setzero_ps ();
  for (int kh = 0; kh < 3; kh++) {
    if (!rows[kh])
      continue;
    /* padded pixel p = iw + 1; output ow0 + r reads p = ow0 + r + kw */
    const float *x = rows[kh] + (size_t) ow0 * CT;
    const float *w = wp + (size_t) kh * 3 * CT * OC;
    for (int c = 0; c < CT; c++) {
      __m512 wv[3][2];
#pragma GCC unroll 3
      for (int kw = 0; kw < 3; kw++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++)
          wv[kw][v] = _mm512_loadu_ps (w + ((size_t) kw * CT + c) * OC +
              16 * v);
#pragma GCC unroll 18
      for (int j = 0; j < R + 2; j++) {
        __m512 xb = _mm512_set1_ps (x[j * CT + c]);
#pragma GCC unroll 3
        for (int kw = 0; kw < 3; kw++) {
          const int r = j - kw;
          if (r >= 0 && r < R)
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++)
              acc[r][v] = _mm512_fmadd_ps (xb, wv[kw][v], acc[r][v]);
        }
      }
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; r++) {
    if (r >= nr)
      break;
    float *dst = o + (size_t) (ow0 + r) * OC;
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) {
      __m512 y = acc[r][v];
      if (accumulate)
        y = _mm512_add_ps (y, _mm512_loadu_ps (dst + 16 * v));
      else if (bias)
        y = _mm512_add_ps (y, _mm512_loadu_ps (bias + 16 * v));
      _mm512_storeu_ps (dst + 16 * v, y);
    }
  }
}

/* Images [b0, b1) of a 3x3 s1 p1 convolution with C = CT, OC = 16*NV. */
KERNEL void
s1_rows (const int NV, const int R, const int CT, float *out,
    const float *inp, const float *wp, const float *bias, int accumulate,
    const SimclrConvShape *s, int b0, int b1)
{
  const int H = s->H, W = s->W, OC = s->OC;
  /* padded rows: W + 2 pixels, plus R + 2 so the last block may read past
   * the row's end (its extra outputs are computed and dropped) */
  float buf[3][(S1_MAX_W + 2 + MAX_R + 2) * 64];
  for (int b = b0; b < b1; b++) {
    const float *img = inp + (size_t) b * H * W * CT;
    for (int oh = 0; oh < H; oh++) {
      const float *rows[3];
      for (int kh = 0; kh < 3; kh++) {
        int ih = oh - 1 + kh;
        if (ih < 0 || ih >= H) {
          rows[kh] = NULL;
          continue;
        }
        float *pr = buf[kh];
        memset (pr, 0, sizeof (float) * CT);
        memcpy (pr + CT, img + (size_t) ih * W * CT, sizeof (float) * W * CT);
        memset (pr + (size_t) (W + 1) * CT, 0, sizeof (float) * (R + 2) * CT);
        rows[kh] = pr;
      }
      float *o = out + ((size_t) b * H + oh) * W * OC;
      for (int ow0 = 0; ow0 < W; ow0 += R)
        s1_block (NV, R, CT, o, OC, rows, wp, bias, accumulate, ow0,
            W - ow0 < R ? W - ow0 : R);
    }
  }
}

/* Whether s1_rows serves the shape, and with which constants. */
static int
s1_ok (const SimclrConvShape *s)
{
  return s->KH == 3 && s->KW == 3 && s->stride == 1 && s->pad == 1 &&
      (s->OC == 16 || s->OC == 32) && s->W <= S1_MAX_W &&
      (s->C == 16 || s->C == 32 || s->C == 64);
}

/* The C = 1 stem (3x3, stride 1, pad 1, one input channel): the blocks
 * above would run one tap of one input channel per block, 14 broadcasts
 * against one weight vector behind a pointer set-up per tap, and the
 * weight gradient's block one accumulator chain per tap (a multiply-add
 * every 4 cycles: 22-27 GFLOP/s measured). Here each image is first copied
 * into a zero-bordered buffer (no tap needs a test), the 9 weight vectors
 * of a 16-channel group stay in registers (forward), and the weight
 * gradient sums all 9 taps in one sweep, in two copies by pixel parity, so
 * 18 independent chains keep both FMA pipes busy. */
#define C1_MAX_W 64
#define C1_R 14
/* padded image: H + 2 rows of W + 2 pixels plus C1_R, so a row's last
 * block may read past its end (those outputs are dropped) */
#define C1_PW (C1_MAX_W + 2 + C1_R)

static int
c1_ok (const SimclrConvShape *s)
{
  return s->C == 1 && s->KH == 3 && s->KW == 3 && s->stride == 1 &&
      s->pad == 1 && s->OC % 16 == 0 && s->W <= C1_MAX_W &&
      s->H <= C1_MAX_W;
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

/* R outputs (oh, ow0 ..) of channels [o0, o0 + 16), nr of them stored. */
KERNEL void
c1_fwd_block (const int R, float *o, int OC, const float *xp,
    const __m512 w[9], const float *bias, int accumulate, int oh, int ow0,
    int nr)
{
  __m512 acc[C1_R];
#pragma GCC unroll 14
  for (int r = 0; r < R; r++)
    acc[r] = _mm512_setzero_ps ();
#pragma GCC unroll 3
  for (int kh = 0; kh < 3; kh++) {
    const float *x = xp + (size_t) (oh + kh) * C1_PW + ow0;
#pragma GCC unroll 3
    for (int kw = 0; kw < 3; kw++)
#pragma GCC unroll 14
      for (int r = 0; r < R; r++)
        acc[r] = _mm512_fmadd_ps (_mm512_set1_ps (x[r + kw]), w[kh * 3 + kw],
            acc[r]);
  }
  for (int r = 0; r < nr; r++) {
    float *dst = o + (size_t) (ow0 + r) * OC;
    __m512 y = acc[r];
    if (accumulate)
      y = _mm512_add_ps (y, _mm512_loadu_ps (dst));
    else if (bias)
      y = _mm512_add_ps (y, _mm512_loadu_ps (bias));
    _mm512_storeu_ps (dst, y);
  }
}

__attribute__ ((target (AVX512))) static void
c1_forward (float *out, const float *inp, const float *wp,
    const float *bias, int accumulate, const SimclrConvShape *s, int b0,
    int b1)
{
  const int H = s->H, W = s->W, OC = s->OC;
  float xp[(C1_MAX_W + 2) * C1_PW];
  for (int b = b0; b < b1; b++) {
    c1_pad_image (xp, inp + (size_t) b * H * W, H, W);
    for (int o0 = 0; o0 < OC; o0 += 16) {
      __m512 w[9];
      for (int t = 0; t < 9; t++)
        w[t] = _mm512_loadu_ps (wp + (size_t) t * OC + o0);
      for (int oh = 0; oh < H; oh++) {
        float *o = out + ((size_t) b * H + oh) * W * OC + o0;
        for (int ow0 = 0; ow0 < W; ow0 += C1_R)
          c1_fwd_block (C1_R, o, OC, xp, w, bias ? bias + o0 : NULL,
              accumulate, oh, ow0, W - ow0 < C1_R ? W - ow0 : C1_R);
      }
    }
  }
}

/* dwp (3, 3, 1, OC) += the weight gradient of images [b0, b1):
 * dwp[kh][kw][o] += sum x[oh + kh - 1][ow + kw - 1] dout[oh][ow][o]. */
__attribute__ ((target (AVX512))) static void
c1_dweight (float *dwp, const float *inp, const float *dout,
    const SimclrConvShape *s, int b0, int b1)
{
  const int H = s->H, W = s->W, OC = s->OC;
  float xp[(C1_MAX_W + 2) * C1_PW];
  for (int o0 = 0; o0 < OC; o0 += 16) {
    /* acc[0]: even output pixels, acc[1]: odd (independent chains) */
    __m512 acc[2][9];
#pragma GCC unroll 9
    for (int t = 0; t < 9; t++) {
      acc[0][t] = _mm512_loadu_ps (dwp + (size_t) t * OC + o0);
      acc[1][t] = _mm512_setzero_ps ();
    }
    for (int b = b0; b < b1; b++) {
      c1_pad_image (xp, inp + (size_t) b * H * W, H, W);
      for (int oh = 0; oh < H; oh++) {
        const float *d = dout + ((size_t) b * H + oh) * W * OC + o0;
        const float *x = xp + (size_t) oh * C1_PW;
        int ow = 0;
        for (; ow + 2 <= W; ow += 2) {
#pragma GCC unroll 2
          for (int p = 0; p < 2; p++) {
            __m512 dv = _mm512_loadu_ps (d + (size_t) (ow + p) * OC);
#pragma GCC unroll 3
            for (int kh = 0; kh < 3; kh++)
#pragma GCC unroll 3
              for (int kw = 0; kw < 3; kw++)
                acc[p][kh * 3 + kw] = _mm512_fmadd_ps (_mm512_set1_ps (x[
                            (size_t) kh * C1_PW + ow + p + kw]), dv,
                    acc[p][kh * 3 + kw]);
          }
        }
        if (ow < W) {
          __m512 dv = _mm512_loadu_ps (d + (size_t) ow * OC);
#pragma GCC unroll 3
          for (int kh = 0; kh < 3; kh++)
#pragma GCC unroll 3
            for (int kw = 0; kw < 3; kw++)
              acc[0][kh * 3 + kw] = _mm512_fmadd_ps (_mm512_set1_ps (x[
                          (size_t) kh * C1_PW + ow + kw]), dv,
                  acc[0][kh * 3 + kw]);
        }
      }
    }
#pragma GCC unroll 9
    for (int t = 0; t < 9; t++)
      _mm512_storeu_ps (dwp + (size_t) t * OC + o0,
          _mm512_add_ps (acc[0][t], acc[1][t]));
  }
}

/* out (B,OH,OW,OC) for images [b0, b1): = conv + bias, or += conv. */
__attribute__ ((target (AVX512))) static void
avx512_forward (float *out, const float *inp, const float *wp,
    const float *bias, int accumulate, const SimclrConvShape *s, int b0,
    int b1)
{
  if (c1_ok (s)) {
    c1_forward (out, inp, wp, bias, accumulate, s, b0, b1);
    return;
  }
  if (s1_ok (s)) {
    /* R*NV accumulators, 3*NV weights and a broadcast */
    /* R divides the row where it can: 14 or 7 pixels per block at 16
     * output channels, 7 at 32 (R > 7 would not leave room for 6 weight
     * vectors) */
    const int r7 = s->OC == 32 || s->W % 14 != 0;
    const int key = s->OC / 16 * 1000 + r7 * 100 + s->C;
    switch (key) {
      case 1016:
        s1_rows (1, 14, 16, out, inp, wp, bias, accumulate, s, b0, b1);
        return;
      case 1032:
        s1_rows (1, 14, 32, out, inp, wp, bias, accumulate, s, b0, b1);
        return;
      case 1064:
        s1_rows (1, 14, 64, out, inp, wp, bias, accumulate, s, b0, b1);
        return;
      case 1116:
        s1_rows (1, 7, 16, out, inp, wp, bias, accumulate, s, b0, b1);
        return;
      case 1132:
        s1_rows (1, 7, 32, out, inp, wp, bias, accumulate, s, b0, b1);
        return;
      case 1164:
        s1_rows (1, 7, 64, out, inp, wp, bias, accumulate, s, b0, b1);
        return;
      case 2116:
        s1_rows (2, 7, 16, out, inp, wp, bias, accumulate, s, b0, b1);
        return;
      case 2132:
        s1_rows (2, 7, 32, out, inp, wp, bias, accumulate, s, b0, b1);
        return;
      case 2164:
        s1_rows (2, 7, 64, out, inp, wp, bias, accumulate, s, b0, b1);
        return;
    }
  }
  /* R*NV accumulators, NV weights and a broadcast within 32 registers */
  switch (s->OC % 64 == 0 ? 4 : s->OC / 16) {
    case 1:
      fwd_rows (1, 14, out, inp, wp, bias, accumulate, s, b0, b1);
      break;
    case 2:
      fwd_rows (2, 12, out, inp, wp, bias, accumulate, s, b0, b1);
      break;
    case 3:
      fwd_rows (3, 8, out, inp, wp, bias, accumulate, s, b0, b1);
      break;
    default:
      fwd_rows (4, 6, out, inp, wp, bias, accumulate, s, b0, b1);
      break;
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

#define MAX_CB 16

/* One block of the packed gradient, dwp[c0 + j][o0 + o] for j < CB,
 * o < 16*NV, at one tap (kh, kw), held in CB*NV registers while every
 * output row of images [b0, b1) adds its run of pixels:
 * += sum_i x[i*xstep + j] * d[i*OC + o]. Loading and storing the block
 * once per chunk of images instead of once per row matters where rows are
 * short (4 or 7 pixels); the chunk's input and dout stay in L2. */
KERNEL void
dw_block (const int NV, const int CB, float *dwp, const float *inp,
    const float *dout, const SimclrConvShape *s, int b0, int b1, int kh,
    int kw, int c0, int o0, int lo, int hi)
{
  const int C = s->C, OC = s->OC, H = s->H, W = s->W;
  const size_t xstep = (size_t) s->stride * C;
  const int n = hi - lo;
  float *dk = dwp + (((size_t) kh * s->KW + kw) * C + c0) * OC + o0;
  __m512 acc[MAX_CB][2];
#pragma GCC unroll 16
  for (int j = 0; j < CB; j++)
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++)
      acc[j][v] = _mm512_loadu_ps (dk + (size_t) j * OC + 16 * v);
  for (int b = b0; b < b1; b++)
    for (int oh = 0; oh < s->OH; oh++) {
      int ih = oh * s->stride - s->pad + kh;
      if (ih < 0 || ih >= H)
        continue;
      const float *x = inp + ((size_t) b * H + ih) * W * C +
          (size_t) (lo * s->stride - s->pad + kw) * C + c0;
      const float *d = dout + (((size_t) b * s->OH + oh) * s->OW + lo) * OC +
          o0;
      for (int i = 0; i < n; i++, x += xstep, d += OC) {
        __m512 dv[2];
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++)
          dv[v] = _mm512_loadu_ps (d + 16 * v);
#pragma GCC unroll 16
        for (int j = 0; j < CB; j++) {
          __m512 xb = _mm512_set1_ps (x[j]);
#pragma GCC unroll 2
          for (int v = 0; v < NV; v++)
            acc[j][v] = _mm512_fmadd_ps (xb, dv[v], acc[j][v]);
        }
      }
    }
#pragma GCC unroll 16
  for (int j = 0; j < CB; j++)
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++)
      _mm512_storeu_ps (dk + (size_t) j * OC + 16 * v, acc[j][v]);
}

/* dwp (KH, KW, C, OC) channels [o0, o0 + 16*NV) += weight gradient of
 * images [b0, b1), block by block. */
KERNEL void
dw_rows (const int NV, const int CB, float *dwp, const float *inp,
    const float *dout, const SimclrConvShape *s, int b0, int b1, int o0)
{
  const int C = s->C;
  for (int kh = 0; kh < s->KH; kh++)
    for (int kw = 0; kw < s->KW; kw++) {
      int lo, hi;
      tap_range (s->W, s->OW, s->stride, s->pad, kw, &lo, &hi);
      if (hi <= lo)
        continue;
      int c = 0;
      for (; c + CB <= C; c += CB)
        dw_block (NV, CB, dwp, inp, dout, s, b0, b1, kh, kw, c, o0, lo, hi);
      if (CB > 8 && c + 8 <= C) {
        dw_block (NV, 8, dwp, inp, dout, s, b0, b1, kh, kw, c, o0, lo, hi);
        c += 8;
      }
      if (CB > 4 && c + 4 <= C) {
        dw_block (NV, 4, dwp, inp, dout, s, b0, b1, kh, kw, c, o0, lo, hi);
        c += 4;
      }
      if (CB > 2 && c + 2 <= C) {
        dw_block (NV, 2, dwp, inp, dout, s, b0, b1, kh, kw, c, o0, lo, hi);
        c += 2;
      }
      for (; c < C; c++)
        dw_block (NV, 1, dwp, inp, dout, s, b0, b1, kh, kw, c, o0, lo, hi);
    }
}

/* Weight gradient of a 3x3 stride-1 pad-1 convolution with 16 output
 * channels, sliding along the row as s1_block does: the three taps
 * kw = 0, 1, 2 of one (kh, input-channel block) are accumulated together,
 * each input value broadcast once against the dout vectors of the three
 * outputs it reaches (held in registers as the window slides), so a
 * broadcast serves 3*NV multiply-adds. acc[kw][j][v] is the packed
 * gradient dwp[kh][kw][c0 + j][16 v ..], kept in registers over the chunk. */
KERNEL void
dw_s1_block (const int NV, const int CB, float *dwp, const float *inp,
    const float *dout, const SimclrConvShape *s, int b0, int b1, int kh,
    int c0)
{
  const int C = s->C, OC = s->OC, H = s->H, W = s->W;
  __m512 acc[3][8][2];
#pragma GCC unroll 3
  for (int kw = 0; kw < 3; kw++)
#pragma GCC unroll 8
    for (int j = 0; j < CB; j++)
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++)
        acc[kw][j][v] = _mm512_loadu_ps (dwp + (((size_t) kh * 3 + kw) * C +
                c0 + j) * OC + 16 * v);
  for (int b = b0; b < b1; b++)
    for (int oh = 0; oh < H; oh++) {
      int ih = oh - 1 + kh;
      if (ih < 0 || ih >= H)
        continue;
      const float *x = inp + ((size_t) b * H + ih) * W * C + c0;
      const float *d = dout + ((size_t) b * H + oh) * W * OC;
      /* dv[0]: dout at ow = iw + 1 (kw = 0), dv[1]: iw (kw = 1), dv[2]:
       * iw - 1 (kw = 2); zero outside the row */
      __m512 dv[3][2];
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++) {
        dv[2][v] = _mm512_setzero_ps ();
        dv[1][v] = _mm512_setzero_ps ();
        dv[0][v] = _mm512_loadu_ps (d + 16 * v);
      }
      for (int iw = 0; iw < W; iw++, x += C) {
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) {
          dv[2][v] = dv[1][v];
          dv[1][v] = dv[0][v];
          dv[0][v] = iw + 1 < W ?
              _mm512_loadu_ps (d + (size_t) (iw + 1) * OC + 16 * v) :
              _mm512_setzero_ps ();
        }
#pragma GCC unroll 8
        for (int j = 0; j < CB; j++) {
          __m512 xb = _mm512_set1_ps (x[j]);
#pragma GCC unroll 3
          for (int kw = 0; kw < 3; kw++)
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++)
              acc[kw][j][v] = _mm512_fmadd_ps (xb, dv[kw][v], acc[kw][j][v]);
        }
      }
    }
#pragma GCC unroll 3
  for (int kw = 0; kw < 3; kw++)
#pragma GCC unroll 8
    for (int j = 0; j < CB; j++)
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++)
        _mm512_storeu_ps (dwp + (((size_t) kh * 3 + kw) * C + c0 + j) * OC +
            16 * v, acc[kw][j][v]);
}

/* Whether dw_s1_block serves the shape: 3x3 s1 p1 with 16 outputs, input
 * channels in whole blocks of 8. (At 32 outputs, NV = 2 with blocks of 4,
 * it measured the same as dw_block, which stays.) */
static int
dw_s1_ok (const SimclrConvShape *s)
{
  return s->KH == 3 && s->KW == 3 && s->stride == 1 && s->pad == 1 &&
      s->OC == 16 && s->C % 8 == 0;
}

/* Weight gradient of a 3x3 stride-2 pad-1 convolution, sliding along the
 * row as s2_dinp_block does: input pixel 2 ow + 1 meets dout pixel ow
 * through kw = 2 and ow + 1 through kw = 0, so with both dout vectors in
 * registers the taps kw = 0, 1, 2 of one (kh, channel block) take two
 * broadcasts per output pixel and input channel for three multiply-adds
 * each (dw_block: one per tap). acc[kw][j][v] is dwp[kh][kw][c0 + j][o0 +
 * 16 v ..], kept in registers over the chunk of images. */
#define DW_S2_CB 4

KERNEL void
dw_s2_block (float *dwp, const float *inp, const float *dout,
    const SimclrConvShape *s, int b0, int b1, int kh, int c0, int o0)
{
  const int C = s->C, OC = s->OC, H = s->H, W = s->W, OW = s->OW;
  const int CB = DW_S2_CB, NV = 2;
  __m512 acc[3][DW_S2_CB][2];
#pragma GCC unroll 3
  for (int kw = 0; kw < 3; kw++)
#pragma GCC unroll 4
    for (int j = 0; j < CB; j++)
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++)
        acc[kw][j][v] = _mm512_loadu_ps (dwp + (((size_t) kh * 3 + kw) * C +
                c0 + j) * OC + o0 + 16 * v);
  for (int b = b0; b < b1; b++)
    for (int oh = 0; oh < s->OH; oh++) {
      int ih = 2 * oh - 1 + kh;
      if (ih < 0 || ih >= H)
        continue;
      const float *x = inp + ((size_t) b * H + ih) * W * C + c0;
      const float *d = dout + ((size_t) b * s->OH + oh) * OW * OC + o0;
      __m512 dv[2], dn[2];
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++)
        dv[v] = _mm512_loadu_ps (d + 16 * v);
      int ow = 0;
      /* every pixel but the last: x[2 ow] (kw 1), x[2 ow + 1] (kw 2 with
       * dout ow, kw 0 with dout ow + 1) */
      for (; ow + 1 < OW; ow++) {
        const float *xp = x + (size_t) 2 * ow * C;
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++)
          dn[v] = _mm512_loadu_ps (d + (size_t) (ow + 1) * OC + 16 * v);
#pragma GCC unroll 4
        for (int j = 0; j < CB; j++) {
          __m512 x1 = _mm512_set1_ps (xp[j]);
          __m512 x2 = _mm512_set1_ps (xp[C + j]);
#pragma GCC unroll 2
          for (int v = 0; v < NV; v++) {
            acc[1][j][v] = _mm512_fmadd_ps (x1, dv[v], acc[1][j][v]);
            acc[2][j][v] = _mm512_fmadd_ps (x2, dv[v], acc[2][j][v]);
            acc[0][j][v] = _mm512_fmadd_ps (x2, dn[v], acc[0][j][v]);
          }
        }
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++)
          dv[v] = dn[v];
      }
      /* the last: kw 1, and kw 2 where 2 ow + 1 is inside the row */
      const float *xp = x + (size_t) 2 * ow * C;
      const int has2 = 2 * ow + 1 < W;
#pragma GCC unroll 4
      for (int j = 0; j < CB; j++) {
        __m512 x1 = _mm512_set1_ps (xp[j]);
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++)
          acc[1][j][v] = _mm512_fmadd_ps (x1, dv[v], acc[1][j][v]);
        if (has2) {
          __m512 x2 = _mm512_set1_ps (xp[C + j]);
#pragma GCC unroll 2
          for (int v = 0; v < NV; v++)
            acc[2][j][v] = _mm512_fmadd_ps (x2, dv[v], acc[2][j][v]);
        }
      }
    }
#pragma GCC unroll 3
  for (int kw = 0; kw < 3; kw++)
#pragma GCC unroll 4
    for (int j = 0; j < CB; j++)
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++)
        _mm512_storeu_ps (dwp + (((size_t) kh * 3 + kw) * C + c0 + j) * OC +
            o0 + 16 * v, acc[kw][j][v]);
}

/* Whether dw_s2_block serves the shape: 3x3 s2 p1, input channels in
 * blocks of 4, outputs in groups of 32, rows covered (2 OW >= W). */
static int
dw_s2_ok (const SimclrConvShape *s)
{
  return s->KH == 3 && s->KW == 3 && s->stride == 2 && s->pad == 1 &&
      s->C % DW_S2_CB == 0 && s->OC % 32 == 0 && 2 * s->OW >= s->W &&
      2 * s->OH >= s->H;
}

/* Input + dout bytes of the images one round of dw_rows blocks sweeps
 * (below L2's 1 MiB with room for the packed gradient). */
#define DW_GROUP_BYTES (384 * 1024)

/* dwp (KH, KW, C, OC) += dout^T x columns of images [b0, b1): the weight
 * gradient in the packed layout. */
__attribute__ ((target (AVX512))) static void
avx512_dweight (float *dwp, const float *inp, const float *dout,
    const SimclrConvShape *s, int b0, int b1)
{
  if (c1_ok (s)) {
    c1_dweight (dwp, inp, dout, s, b0, b1);
    return;
  }
  if (dw_s2_ok (s)) {
    /* 3*CB*NV accumulators + 2*NV dout vectors + 2 broadcasts */
    for (int o0 = 0; o0 < s->OC; o0 += 32)
      for (int kh = 0; kh < 3; kh++)
        for (int c0 = 0; c0 < s->C; c0 += DW_S2_CB)
          dw_s2_block (dwp, inp, dout, s, b0, b1, kh, c0, o0);
    return;
  }
  if (dw_s1_ok (s)) {
    /* 3*CB*NV accumulators + 3*NV dout vectors + a broadcast */
    for (int kh = 0; kh < 3; kh++)
      for (int c0 = 0; c0 < s->C; c0 += 8)
        dw_s1_block (1, 8, dwp, inp, dout, s, b0, b1, kh, c0);
    return;
  }
  /* Every block sweeps the chunk's input and dout once, so a chunk sized
   * for im2col columns (conv.c: 31-96 images of a 1x1 stride-2 shortcut,
   * 2 MB) would stream from L3 once per block (24 blocks at 64 -> 128
   * channels): run the blocks over groups of images that stay in L2. Each
   * gradient element still sums its terms in image order (the block
   * stores and reloads its accumulators between groups): same results. */
  const size_t img_bytes = sizeof (float) * ((size_t) s->H * s->W * s->C +
      (size_t) s->OH * s->OW * s->OC);
  int g = (int) (DW_GROUP_BYTES / img_bytes);
  if (g < 1)
    g = 1;
  for (int bg = b0; bg < b1; bg += g) {
    int be = b1 - bg < g ? b1 : bg + g;
    /* CB*NV accumulators + NV dout vectors + a broadcast within 32
     * registers; wider layers in groups of 32 channels. */
    if (s->OC == 16) {
      dw_rows (1, 16, dwp, inp, dout, s, bg, be, 0);
    } else if (s->OC == 48) {
      dw_rows (1, 16, dwp, inp, dout, s, bg, be, 0);
      dw_rows (2, 12, dwp, inp, dout, s, bg, be, 16);
    } else {
      for (int o0 = 0; o0 < s->OC; o0 += 32)
        dw_rows (2, 12, dwp, inp, dout, s, bg, be, o0);
    }
  }
}

/* Input gradient of a strided convolution, gathered per input pixel:
 * dinp (b, ih, iw, :) += sum over taps (kh, kw) that reach an output pixel
 * (oh, ow) of dout (b, oh, ow, :) x wt[kh][kw] (OC x C). For stride s the
 * input pixels iw0, iw0+s, iw0+2s, ... of one residue class reach the same
 * taps, at consecutive output pixels, so a block of R of them reads R
 * consecutive dout pixels per tap, like the forward block with the roles of
 * C and OC swapped. wt is packed (KH, KW, OC, C); channels [c0, c0 +
 * 16*NV). */
KERNEL void
bwd_block (const int NV, const int R, float *drow, const float *dout_img,
    const float *wt, const SimclrConvShape *s, int ih, int iw0, int c0)
{
  const int C = s->C, OC = s->OC, st = s->stride;
  __m512 acc[MAX_R][MAX_NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
      acc[r][v] = _mm512_setzero_ps ();
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
      const float *p[MAX_R];
#pragma GCC unroll 16
      for (int r = 0; r < R; r++)
        p[r] = ow0 + r >= 0 && ow0 + r < s->OW ?
            orow + (size_t) (ow0 + r) * OC : conv_zeros;
      const float *w = wt + (size_t) (kh * s->KW + kw) * OC * C + c0;
      for (int o = 0; o < OC; o++, w += C) {
        __m512 wv[MAX_NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
          wv[v] = _mm512_loadu_ps (w + 16 * v);
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
          __m512 x = _mm512_set1_ps (p[r][o]);
#pragma GCC unroll 4
          for (int v = 0; v < NV; v++)
            acc[r][v] = _mm512_fmadd_ps (x, wv[v], acc[r][v]);
        }
      }
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; r++) {
    float *dst = drow + (size_t) (iw0 + st * r) * C + c0;
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
      _mm512_storeu_ps (dst + 16 * v,
          _mm512_add_ps (acc[r][v], _mm512_loadu_ps (dst + 16 * v)));
  }
}

KERNEL void
bwd_row (const int NV, const int R, float *drow, const float *dout_img,
    const float *wt, const SimclrConvShape *s, int ih)
{
  const int st = s->stride;
  for (int c0 = 0; c0 < s->C; c0 += 16 * NV)
    for (int q = 0; q < st && q < s->W; q++) {
      int n = (s->W - q + st - 1) / st; /* pixels q, q+st, ... < W */
      int j = 0;
      for (; j + R <= n; j += R)
        bwd_block (NV, R, drow, dout_img, wt, s, ih, q + st * j, c0);
      if (R > 8 && j + 8 <= n) {
        bwd_block (NV, 8, drow, dout_img, wt, s, ih, q + st * j, c0);
        j += 8;
      }
      if (R > 4 && j + 4 <= n) {
        bwd_block (NV, 4, drow, dout_img, wt, s, ih, q + st * j, c0);
        j += 4;
      }
      if (R > 2 && j + 2 <= n) {
        bwd_block (NV, 2, drow, dout_img, wt, s, ih, q + st * j, c0);
        j += 2;
      }
      if (j < n)
        bwd_block (NV, 1, drow, dout_img, wt, s, ih, q + st * j, c0);
    }
}

KERNEL void
bwd_rows (const int NV, const int R, float *dinp, const float *dout,
    const float *wt, const SimclrConvShape *s, int b0, int b1)
{
  for (int b = b0; b < b1; b++) {
    const float *dimg = dout + (size_t) b * s->OH * s->OW * s->OC;
    for (int ih = 0; ih < s->H; ih++)
      bwd_row (NV, R, dinp + ((size_t) b * s->H + ih) * s->W * s->C, dimg,
          wt, s, ih);
  }
}

/* dinp (B,H,W,C) += input gradient of images [b0, b1); wt packed (KH, KW,
 * OC, C). */
__attribute__ ((target (AVX512))) static void
avx512_backward_data (float *dinp, const float *dout, const float *wt,
    const SimclrConvShape *s, int b0, int b1)
{
  switch (s->C % 64 == 0 ? 4 : s->C / 16) {
    case 1:
      bwd_rows (1, 14, dinp, dout, wt, s, b0, b1);
      break;
    case 2:
      bwd_rows (2, 12, dinp, dout, wt, s, b0, b1);
      break;
    case 3:
      bwd_rows (3, 8, dinp, dout, wt, s, b0, b1);
      break;
    default:
      bwd_rows (4, 6, dinp, dout, wt, s, b0, b1);
      break;
  }
}

/* Input gradient of a 3x3 stride-2 pad-1 convolution, scattered along the
 * row: input pixel iw = 2 ow - 1 + kw, so dout pixel ow reaches input
 * pixels 2 ow - 1, 2 ow and 2 ow + 1 through kw = 0, 1, 2, and one
 * broadcast of dout (oh, ow, o) feeds three multiply-adds (the gather
 * above: one). A block owns the 2R input pixels 2 ow0 .. 2 ow0 + 2R - 1 of
 * one input row and sums every contribution to them, reading dout pixels
 * ow0 .. ow0 + R (the last only through kw = 0), so it writes its pixels
 * once: no zeroing pass and no read-modify-write in write mode. Input row
 * ih takes kh = 1 from dout row ih / 2 when even, kh = 0 from (ih + 1) / 2
 * and kh = 2 from (ih - 1) / 2 when odd. Optionally the block also adds
 * the input gradient of the block's 1x1 stride-2 pad-0 shortcut, which
 * reaches even rows' even pixels only (dsc (B,OH,OW,ocsc), wsc (ocsc, C)):
 * the two gradients of the block input in one pass (conv.c
 * simclr_conv2d_backward_input_s2_shortcut). wt packed (3, 3, OC, C);
 * channels [c0, c0 + 16). */
#define S2_R 7

KERNEL void
s2_dinp_block (const int NV, const int R, float *drow, const float *dimg,
    const float *wt, const float *dsc_img, const float *wsc, int ocsc,
    int accumulate, const SimclrConvShape *s, int ih, int ow0, int c0)
{
  const int C = s->C, OC = s->OC, OW = s->OW, W = s->W;
  __m512 acc[2 * S2_R][2];
#pragma GCC unroll 14
  for (int i = 0; i < 2 * R; i++)
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++)
      acc[i][v] = _mm512_setzero_ps ();
  for (int k = 0; k < 2; k++) {
    int kh, oh;
    if (ih % 2 == 0) {
      if (k > 0)
        break;
      kh = 1;
      oh = ih / 2;
    } else {
      kh = k == 0 ? 0 : 2;
      oh = k == 0 ? (ih + 1) / 2 : (ih - 1) / 2;
      if (oh >= s->OH)
        continue;
    }
    const float *orow = dimg + (size_t) oh * OW * OC;
    const float *p[S2_R + 1];
#pragma GCC unroll 8
    for (int r = 0; r <= R; r++)
      p[r] = ow0 + r < OW ? orow + (size_t) (ow0 + r) * OC : conv_zeros;
    const float *w = wt + (size_t) kh * 3 * OC * C + c0;
    const size_t tap = (size_t) OC * C;
    for (int o = 0; o < OC; o++, w += C) {
      __m512 w0[2], w1[2], w2[2];
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++) {
        w0[v] = _mm512_loadu_ps (w + 16 * v);
        w1[v] = _mm512_loadu_ps (w + tap + 16 * v);
        w2[v] = _mm512_loadu_ps (w + 2 * tap + 16 * v);
      }
#pragma GCC unroll 8
      for (int r = 0; r <= R; r++) {
        __m512 x = _mm512_set1_ps (p[r][o]);
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) {
          if (r >= 1)
            acc[2 * r - 1][v] = _mm512_fmadd_ps (x, w0[v],
                acc[2 * r - 1][v]);
          if (r < R) {
            acc[2 * r][v] = _mm512_fmadd_ps (x, w1[v], acc[2 * r][v]);
            acc[2 * r + 1][v] = _mm512_fmadd_ps (x, w2[v],
                acc[2 * r + 1][v]);
          }
        }
      }
    }
  }
  if (dsc_img && ih % 2 == 0) {
    const float *srow = dsc_img + (size_t) (ih / 2) * OW * ocsc;
    const float *p[S2_R];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
      p[r] = ow0 + r < OW ? srow + (size_t) (ow0 + r) * ocsc : conv_zeros;
    const float *w = wsc + c0;
    for (int o = 0; o < ocsc; o++, w += C) {
      __m512 wv[2];
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++)
        wv[v] = _mm512_loadu_ps (w + 16 * v);
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) {
        __m512 x = _mm512_set1_ps (p[r][o]);
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++)
          acc[2 * r][v] = _mm512_fmadd_ps (x, wv[v], acc[2 * r][v]);
      }
    }
  }
#pragma GCC unroll 14
  for (int i = 0; i < 2 * R; i++) {
    int iw = 2 * ow0 + i;
    if (iw >= W)
      break;
    float *dst = drow + (size_t) iw * C + c0;
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) {
      __m512 y = acc[i][v];
      if (accumulate)
        y = _mm512_add_ps (y, _mm512_loadu_ps (dst + 16 * v));
      _mm512_storeu_ps (dst + 16 * v, y);
    }
  }
}

/* One input row's blocks of R (then the rest) dout pixels, channel
 * groups of 16 NV. */
KERNEL void
s2_dinp_row (const int NV, const int R, float *drow, const float *dimg,
    const float *wt, const float *simg, const float *wsc, int ocsc,
    int accumulate, const SimclrConvShape *s, int ih)
{
  const int OW = s->OW;
  for (int c0 = 0; c0 < s->C; c0 += 16 * NV) {
    int ow0 = 0;
    for (; ow0 + R <= OW; ow0 += R)
      s2_dinp_block (NV, R, drow, dimg, wt, simg, wsc, ocsc, accumulate, s,
          ih, ow0, c0);
    /* the rest, in blocks of one size each */
#pragma GCC unroll 7
    for (int r = R - 1; r >= 1; r--)
      if (OW - ow0 == r)
        s2_dinp_block (NV, r, drow, dimg, wt, simg, wsc, ocsc, accumulate,
            s, ih, ow0, c0);
  }
}

/* dinp (B,H,W,C) = (or += with accumulate) the input gradient of images
 * [b0, b1) of a 3x3 stride-2 pad-1 convolution, plus with dsc that of the
 * 1x1 stride-2 pad-0 shortcut on the same input (dsc (B,OH,OW,ocsc), wsc
 * (ocsc, C), the unpacked weight); wt packed (3, 3, OC, C). Blocks of 7
 * dout pixels x 16 channels (14 accumulators) where rows are 7 or 14
 * pixels; on shorter rows of 32k channels, 4 x 32 (16 accumulators), so a
 * broadcast serves 6 multiply-adds (bench-conv: 7x7x64 -> 128 ran 122
 * GFLOP/s with 4 x 16, slower than the gather). */
__attribute__ ((target (AVX512))) static void
avx512_dinput_s2 (float *dinp, const float *dout, const float *wt,
    const float *dsc, const float *wsc, int ocsc, int accumulate,
    const SimclrConvShape *s, int b0, int b1)
{
  const int wide = s->OW % S2_R != 0 && s->C % 32 == 0;
  for (int b = b0; b < b1; b++) {
    const float *dimg = dout + (size_t) b * s->OH * s->OW * s->OC;
    const float *simg = dsc ? dsc + (size_t) b * s->OH * s->OW * ocsc :
        NULL;
    for (int ih = 0; ih < s->H; ih++) {
      float *drow = dinp + ((size_t) b * s->H + ih) * s->W * s->C;
      if (wide)
        s2_dinp_row (2, 4, drow, dimg, wt, simg, wsc, ocsc, accumulate, s,
            ih);
      else
        s2_dinp_row (1, S2_R, drow, dimg, wt, simg, wsc, ocsc, accumulate,
            s, ih);
    }
  }
}

/* 3x3 stride-2 pad-1 with C a multiple of 16 (the blocks take 16
 * channels at a time); its output must cover the input (2 OW >= W). */
static int
avx512_dinput_s2_ok (const SimclrConvShape *s)
{
  return s->KH == 3 && s->KW == 3 && s->stride == 2 && s->pad == 1 &&
      s->C % 16 == 0 && s->C <= CONV_DIRECT_MAX_C &&
      s->OC <= CONV_DIRECT_MAX_C && 2 * s->OW >= s->W &&
      2 * s->OH >= s->H;
}

/* Channel counts the blocks cover: 16, 32, 48, or a multiple of 64. */
static int
avx512_channels_ok (int n)
{
  return n % 16 == 0 && (n <= 64 || n % 64 == 0) && n <= CONV_DIRECT_MAX_C;
}

static int
avx512_forward_ok (const SimclrConvShape *s)
{
  return avx512_channels_ok (s->OC) &&
      s->C <= CONV_DIRECT_MAX_C && s->KW <= CONV_DIRECT_MAX_K;
}

static int
avx512_dweight_ok (const SimclrConvShape *s)
{
  return avx512_channels_ok (s->OC) &&
      s->C <= CONV_DIRECT_MAX_C && s->KW <= CONV_DIRECT_MAX_K;
}

/* Strided convolutions. */
static int
avx512_backward_data_ok (const SimclrConvShape *s)
{
  return s->stride >= 2 && avx512_channels_ok (s->C) &&
      s->OC <= CONV_DIRECT_MAX_C;
}

const SimclrConvKernels simclr_conv_kernels_avx512 = {
  .forward_ok = avx512_forward_ok,
  .forward = avx512_forward,
  .dweight_ok = avx512_dweight_ok,
  .dweight = avx512_dweight,
  .backward_data_ok = avx512_backward_data_ok,
  .backward_data = avx512_backward_data,
  .dinput_s2_ok = avx512_dinput_s2_ok,
  .dinput_s2 = avx512_dinput_s2,
};
#endif
