/* conv.c: 2-d convolution on NHWC activations, forward and backward.
 *
 * Paths, chosen per shape:
 * - 1x1 stride-1 pad-0: a plain GEMM on the activations (OpenBLAS threads).
 * - shapes a direct kernel of the CPU's instruction set accepts (the kernel
 *   table of cpu.c; AVX2: OC a multiple of 8, at most 32): kernels that
 *   read the NHWC input in place (no columns), in conv-<set>.c.
 * - otherwise im2col + cblas_sgemm over chunks of images, so the column
 *   buffer stays bounded (and cache-sized for thin layers).
 * - 3x3 stride-1 pad-1 shapes a set's Winograd predicate takes (measured
 *   faster there than its direct kernel): Winograd F(4x4, 3x3) or
 *   F(2x2, 3x3) in conv-winograd.c; the weight gradient by its own
 *   predicates (winograd_dweight), threads splitting fixed groups of
 *   images and the transformed points (conv_backward_weight_winograd).
 * The input gradient of a stride-1 convolution whose transposed shape a
 * direct or Winograd kernel takes runs as the forward of the transposed
 * convolution (turned weights), of a strided one as a direct gather where a
 * set has one; the rest uses GEMM + col2im.
 * With s->threads > 1 the chunks are spread over worker threads.
 * This file holds the dispatch, the threads, the GEMM path and the naive
 * twins (plain loops, kept as the test reference). It does not allocate
 * (the caller passes scratch) and never prints.
 */
#include <string.h>

#include <cblas.h>

#include "conv-winograd-private.h"
#include "cpu-private.h"

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

/* The kernel sets for this shape: the pinned ones, or the CPU's. */
static const SimclrKernels *
conv_kernels (const SimclrConvShape *s)
{
  return s->kernels ? s->kernels : simclr_cpu_kernels ();
}

/* The best set with a direct kernel for @op on this shape, or NULL (the
 * GEMM path). Strided input gradients only: stride 1 runs as the forward of
 * the transposed convolution (conv_transposed_shape). */
static const SimclrKernelSet *
conv_pick (const SimclrConvShape *s, SimclrConvOp op)
{
  if (conv_is_pointwise (s) || (op == SIMCLR_CONV_DINPUT && s->stride < 2))
    return NULL;
  for (const SimclrKernelSet *const *k = conv_kernels (s)->set; *k; k++) {
    const SimclrConvKernels *c = (*k)->conv;
    if (c == NULL)
      continue;
    if ((op == SIMCLR_CONV_FORWARD && c->forward && c->forward_ok (s)) ||
        (op == SIMCLR_CONV_DWEIGHT && c->dweight && c->dweight_ok (s)) ||
        (op == SIMCLR_CONV_DINPUT && c->backward_data &&
            c->backward_data_ok (s)))
      return *k;
  }
  return NULL;
}

/* The best set whose Winograd predicate routes this shape there, or NULL;
 * *wk (if not NULL) gets that kernel (a set tries its Winograd kernels in
 * its order, e.g. F(4x4, 3x3) before F(2x2, 3x3); for the transposed
 * convolution of an input gradient, @dinput, its winograd_dinput ones
 * first). Checked before the
 * direct kernels: a set's predicate only takes shapes where Winograd
 * measured faster than its direct kernel, and no set takes a shape a
 * higher set's direct kernel serves better (AVX-512 has F(2x2, 3x3) and
 * F(4x4, 3x3), AVX2 F(4x4, 3x3) for input gradients; a shape of a channel
 * count that is a multiple of 8 but not of 16 could reach AVX2's from the
 * AVX-512 level, which no ResNet-18 width here has). */
static const SimclrKernelSet *
conv_pick_winograd_set (const SimclrConvShape *s, int dinput,
    const SimclrWinogradKernels **wk)
{
  if (!simclr_winograd_shape_ok (s))
    return NULL;
  for (const SimclrKernelSet *const *k = conv_kernels (s)->set; *k; k++)
    for (int i = dinput ? 0 : 2; i < 4; i++) {
      const SimclrWinogradKernels *w = i < 2 ? (*k)->winograd_dinput[i] :
          (*k)->winograd[i - 2];
      if (w && w->ok (s)) {
        if (wk)
          *wk = w;
        return *k;
      }
    }
  return NULL;
}

static const SimclrWinogradKernels *
conv_pick_winograd (const SimclrConvShape *s, int dinput)
{
  const SimclrWinogradKernels *wk = NULL;
  return conv_pick_winograd_set (s, dinput, &wk) ? wk : NULL;
}

/* The weight-gradient Winograd kernel routed for this shape (the best set
 * whose winograd_dweight predicate takes it; *set gets that set), or
 * NULL: the direct kernel or GEMM. */
static const SimclrWinogradKernels *
conv_pick_winograd_dw (const SimclrConvShape *s, const SimclrKernelSet **set)
{
  if (!simclr_winograd_shape_ok (s))
    return NULL;
  for (const SimclrKernelSet *const *k = conv_kernels (s)->set; *k; k++)
    for (int i = 0; i < 2; i++) {
      const SimclrWinogradKernels *w = (*k)->winograd_dweight[i];
      if (w && w->ok (s)) {
        if (set)
          *set = *k;
        return w;
      }
    }
  return NULL;
}

/* Image groups of a Winograd weight gradient: the batch is cut into this
 * many groups, each summed over its own tiles into its own partial du,
 * the partials added in a fixed order at the end. A pure function of the
 * shape (never of the thread count), so the bits do not depend on the
 * threads. Two groups while a partial du (P C OC floats) is at most
 * CONV_WINO_DW_GROUP_FLOATS: two workers then each read and transform only
 * half of x and dy, where splitting the points made both read and
 * transform all of them (the first pass of each transform in full). Past
 * it one group, the points split: each worker's half of du and of the
 * block of transformed tiles then stays in its L2, where a whole du per
 * worker did not. Measured (AMD EPYC Zen 5, batch 512, F(4x4, 3x3), in
 * one process alternating the variants 41 times on a machine at load
 * 6-7; per call the largest worker's thread CPU time, what the wall time
 * would be on idle cores), 2 groups : 1 group, medians of two runs: 2
 * threads 28x28 16->16 0.77, 14x14 32->32 0.81-0.86, 7x7 64->64
 * 0.94-0.96 (left at 1 group: 1.01-1.03 on one thread, and a step saves
 * little there), 4x4 128->128 1.21-1.46; 1 thread 1.00-1.05 up to 32
 * channels, 1.03-1.27 at 128. */
#ifndef CONV_WINO_DW_GROUP_FLOATS
#define CONV_WINO_DW_GROUP_FLOATS (64 * 1024)
#endif

static int
conv_winograd_dw_groups (const SimclrWinogradKernels *wk,
    const SimclrConvShape *s)
{
  if (s->B < 2 ||
      simclr_winograd_u_floats (wk, s) > CONV_WINO_DW_GROUP_FLOATS)
    return 1;
  return 2;
}

/* Workers of a Winograd weight gradient: one per row of transformed
 * points and group at most. */
static int
conv_winograd_dw_workers (const SimclrWinogradKernels *wk,
    const SimclrConvShape *s)
{
  int t = conv_threads (s), units = conv_winograd_dw_groups (wk, s) *
      (wk->m + 2);
  return t < units ? t : units;
}

static const SimclrConvKernels *
conv_pick_forward (const SimclrConvShape *s)
{
  const SimclrKernelSet *k = conv_pick (s, SIMCLR_CONV_FORWARD);
  return k ? k->conv : NULL;
}

static const SimclrConvKernels *
conv_pick_dweight (const SimclrConvShape *s)
{
  const SimclrKernelSet *k = conv_pick (s, SIMCLR_CONV_DWEIGHT);
  return k ? k->conv : NULL;
}

static const SimclrConvKernels *
conv_pick_backward_data (const SimclrConvShape *s)
{
  const SimclrKernelSet *k = conv_pick (s, SIMCLR_CONV_DINPUT);
  return k ? k->conv : NULL;
}

/* The best set's 3x3 stride-2 pad-1 input gradient (written once per input
 * pixel, the shortcut's optionally fused) for this shape, or NULL. Taken
 * before the set's gather: bench-conv measured it faster on every stride-2
 * ResNet-18 shape here. */
static const SimclrConvKernels *
conv_pick_dinput_s2 (const SimclrConvShape *s)
{
  if (s->KH != 3 || s->KW != 3 || s->stride != 2 || s->pad != 1)
    return NULL;
  for (const SimclrKernelSet *const *k = conv_kernels (s)->set; *k; k++) {
    const SimclrConvKernels *c = (*k)->conv;
    if (c && c->dinput_s2 && c->dinput_s2_ok (s))
      return c;
  }
  return NULL;
}

/* The input gradient of a stride-1 convolution is itself a stride-1
 * convolution: dinp = conv (dout, w') with C and OC swapped, the kernel
 * turned by 180 degrees, w'[c][kh][kw][o] = w[o][KH-1-kh][KW-1-kw][c], and
 * padding KH-1-pad. For thin layers it then runs on the direct forward
 * kernel instead of a GEMM with inner dimension OC into columns plus a
 * col2im (measured 2-3x faster). Fills *t and returns 1 when this applies:
 * stride 1, square kernel, pad <= K-1, not 1x1, and a direct forward takes
 * the transposed shape (AVX2: C a multiple of 8, at most 32). Others keep
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
  return conv_pick_winograd (t, 1) != NULL || conv_pick_forward (t) != NULL;
}

/* The set whose kernel runs one pass (NULL: GEMM); *wino tells whether it
 * is its Winograd kernel. */
static const SimclrKernelSet *
conv_pass_set (const SimclrConvShape *s, SimclrConvOp op, int *wino)
{
  SimclrConvShape t;
  const SimclrKernelSet *k;
  int dinput = 0;
  *wino = 0;
  if (op == SIMCLR_CONV_DWEIGHT && conv_pick_winograd_dw (s, &k)) {
    *wino = 1;
    return k;
  }
  if (op == SIMCLR_CONV_DINPUT && conv_transposed_shape (s, &t))
    s = &t, op = SIMCLR_CONV_FORWARD, dinput = 1;
  if (op == SIMCLR_CONV_FORWARD &&
      (k = conv_pick_winograd_set (s, dinput, NULL)) != NULL) {
    *wino = 1;
    return k;
  }
  return conv_pick (s, op);
}

const char *
simclr_conv2d_kernel_name (const SimclrConvShape *s, SimclrConvOp op)
{
  int wino;
  const SimclrKernelSet *k = conv_pass_set (s, op, &wino);
  return k ? k->name : "gemm";
}

int
simclr_conv2d_uses_winograd (const SimclrConvShape *s, SimclrConvOp op)
{
  int wino;
  conv_pass_set (s, op, &wino);
  return wino;
}

int
simclr_conv2d_winograd_tile (const SimclrConvShape *s, SimclrConvOp op)
{
  SimclrConvShape t;
  const SimclrWinogradKernels *wk;
  int dinput = 0;
  if (op == SIMCLR_CONV_DWEIGHT)
    return (wk = conv_pick_winograd_dw (s, NULL)) ? wk->m : 0;
  if (op == SIMCLR_CONV_DINPUT && conv_transposed_shape (s, &t))
    s = &t, op = SIMCLR_CONV_FORWARD, dinput = 1;
  if (op != SIMCLR_CONV_FORWARD ||
      (wk = conv_pick_winograd (s, dinput)) == NULL)
    return 0;
  return wk->m;
}

int
simclr_conv2d_winograd_dw_groups (const SimclrConvShape *s)
{
  const SimclrWinogradKernels *wk = conv_pick_winograd_dw (s, NULL);
  return wk ? conv_winograd_dw_groups (wk, s) : 0;
}

/* Scratch of a Winograd forward: the packed weight (9*C*OC), its
 * transform u, then one work buffer per worker. */
static size_t
conv_winograd_scratch (const SimclrWinogradKernels *wk,
    const SimclrConvShape *s)
{
  return (size_t) 9 * s->C * s->OC + simclr_winograd_u_floats (wk, s) +
      (size_t) conv_max_workers (s) * simclr_winograd_work_floats (wk, s);
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
  if (conv_pick_forward (s) || conv_pick_dweight (s))
    need += (size_t) T * s->OC * K;
  /* Backward-data as a transposed direct convolution, run after the
   * above: the turned, packed weight. */
  SimclrConvShape t;
  if (conv_transposed_shape (s, &t) && need < (size_t) s->OC * K)
    need = (size_t) s->OC * K;
  /* Or a strided one gathered directly: its packed weight. */
  if ((conv_pick_backward_data (s) || conv_pick_dinput_s2 (s)) &&
      need < (size_t) s->OC * K)
    need = (size_t) s->OC * K;
  /* Winograd, forward or the transposed convolution of the input
   * gradient, also run alone */
  const SimclrWinogradKernels *wk;
  if ((wk = conv_pick_winograd (s, 0)) &&
      need < conv_winograd_scratch (wk, s))
    need = conv_winograd_scratch (wk, s);
  if (conv_transposed_shape (s, &t) && (wk = conv_pick_winograd (&t, 1)) &&
      need < conv_winograd_scratch (wk, &t))
    need = conv_winograd_scratch (wk, &t);
  /* Winograd weight gradient: du (points, OC, C) per image group, one
   * work buffer per worker */
  if ((wk = conv_pick_winograd_dw (s, NULL)) != NULL) {
    size_t dw = (size_t) conv_winograd_dw_groups (wk, s) *
        simclr_winograd_u_floats (wk, s) +
        (size_t) conv_winograd_dw_workers (wk, s) *
        simclr_winograd_dw_work_floats (wk, s);
    if (need < dw)
      need = dw;
  }
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


/* Packs weight (OC, KH, KW, C) for the direct kernels:
 * CONV_PACK_C_OC: wp (KH, KW, C, OC), as the direct forward reads it;
 * CONV_PACK_TURNED: the weight of the transposed convolution (see
 * conv_transposed_shape) packed likewise, wp (KH, KW, OC, C) with
 * wp[kh][kw][o][c] = weight[o][KH-1-kh][KW-1-kw][c];
 * CONV_PACK_OC_C: wp (KH, KW, OC, C), for the strided input-gradient
 * kernels (SimclrConvKernels.backward_data). */
enum { CONV_PACK_C_OC, CONV_PACK_TURNED, CONV_PACK_OC_C };

/* Tile side of the blocked transposes: a 16 x 16 tile of floats is 16
 * cache lines each way, so neither the rows read nor the rows written
 * stride through memory (a plain loop over one side measured as slow as
 * the whole direct forward of a wide layer, 512 x 4608 floats). */
#define CONV_TILE 16

/* dst (cols, rows) = src (rows, cols)^T, or += with add. */
static void
transpose_tiled (float *dst, const float *src, size_t rows, size_t cols,
    int add)
{
  for (size_t r0 = 0; r0 < rows; r0 += CONV_TILE)
    for (size_t c0 = 0; c0 < cols; c0 += CONV_TILE) {
      size_t r1 = r0 + CONV_TILE < rows ? r0 + CONV_TILE : rows;
      size_t c1 = c0 + CONV_TILE < cols ? c0 + CONV_TILE : cols;
      for (size_t c = c0; c < c1; c++)
        for (size_t r = r0; r < r1; r++) {
          if (add)
            dst[c * rows + r] += src[r * cols + c];
          else
            dst[c * rows + r] = src[r * cols + c];
        }
    }
}

static void
conv_pack_weight (float *wp, const float *weight, const SimclrConvShape *s,
    int layout)
{
  const int OC = s->OC, KH = s->KH, KW = s->KW, C = s->C;
  const size_t K = (size_t) KH * KW * C;
  if (layout == CONV_PACK_C_OC) {
    /* (OC, K) -> (K, OC) */
    transpose_tiled (wp, weight, OC, K, 0);
    return;
  }
  /* runs of C floats move whole */
  for (int o = 0; o < OC; o++)
    for (int kh = 0; kh < KH; kh++)
      for (int kw = 0; kw < KW; kw++) {
        const float *src = weight + (((size_t) o * KH + kh) * KW + kw) * C;
        float *dst = layout == CONV_PACK_TURNED ?
            wp + (((size_t) (KH - 1 - kh) * KW + (KW - 1 - kw)) * OC + o) * C
            : wp + (((size_t) kh * KW + kw) * OC + o) * C;
        memcpy (dst, src, sizeof (float) * C);
      }
}

/* ---------------------------------------------------------------------------
 * Chunk workers. One task covers a contiguous range of chunks; the caller
 * runs task 0 itself and tasks 1.. on the worker pool (layers.c).
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
  const SimclrConvEpilogue *ep; /* forward: applied per chunk, or NULL */
  const SimclrConvKernels *direct;      /* forward: its kernel on wpack;
                                         * backward: its dweight on dwp;
                                         * backward-data: its gather */
  const float *wpack;
  const SimclrWinogradKernels *wino;    /* forward: Winograd on wpack (u) */
  float *work;                  /* its private buffer */
  float *dwp;                   /* direct backward: packed dweight (K, OC) */
  /* backward */
  float *dinp, *dweight, *dbias;
  const float *dout;
  /* input gradient of a 3x3 stride-2 convolution: the fused 1x1
   * shortcut's dout (B,OH,OW,ocsc) and weight (ocsc, C), or NULL */
  const float *dsc, *wsc;
  int ocsc;
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
  if (t->wino && !t->ep) {
    t->wino->forward (t->out, t->inp, t->wpack, t->bias, t->accumulate, s,
        t->img_begin, t->img_end, t->work);
    return NULL;
  }
  if (t->direct && !t->ep) {
    t->direct->forward (t->out, t->inp, t->wpack, t->bias, t->accumulate, s,
        t->img_begin, t->img_end);
    return NULL;
  }
  for (int b = t->img_begin; b < t->img_end; b += t->nimg) {
    int n = t->img_end - b < t->nimg ? t->img_end - b : t->nimg;
    int rows = (int) (n * out_rows_img);
    float *o = t->out + (size_t) b * out_rows_img * OC;
    if (t->wino) {
      t->wino->forward (t->out, t->inp, t->wpack, t->bias, t->accumulate,
          s, b, b + n, t->work);
    } else if (t->direct) {
      t->direct->forward (t->out, t->inp, t->wpack, t->bias, t->accumulate,
          s, b, b + n);
    } else {
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
    /* the chunk's rows while they are in cache */
    if (t->ep)
      simclr_affine_act (o, o, t->ep->residual ? t->ep->residual +
          (size_t) b * out_rows_img * OC : NULL, t->ep->relu, rows, OC,
          t->ep->scale, t->ep->shift);
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
  if (t->dweight && t->direct)
    memset (t->dwp, 0, sizeof (float) * K * OC);
  for (int b = t->img_begin; b < t->img_end; b += t->nimg) {
    int n = t->img_end - b < t->nimg ? t->img_end - b : t->nimg;
    int rows = (int) (n * out_rows_img);
    const float *d = t->dout + (size_t) b * out_rows_img * OC;
    if (t->dbias) {
      /* per chunk, then into dbias: a float sum running over every row of
       * a large batch drifted (2e-5 relative over 500k rows) */
      float part[OC];
      memset (part, 0, sizeof (part));
      for (int r = 0; r < rows; r++)
        for (int o = 0; o < OC; o++)
          part[o] += d[(size_t) r * OC + o];
      for (int o = 0; o < OC; o++)
        t->dbias[o] += part[o];
    }
    int step = slice_rows (t->max_mnk, (size_t) OC * K, rows);
    if (!t->dweight) {
      /* input gradient only */
    } else if (t->direct) {
      t->direct->dweight (t->dwp, t->inp, t->dout, s, b, b + n);
    } else {
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
      if (!t->accumulate)
        memset (t->dinp + (size_t) b * in_img, 0, sizeof (float) * n *
            in_img);
      col2im_add (t->dinp + (size_t) b * in_img, t->cols, n, s);
    }
  }
  if (t->dweight && t->direct) /* dweight (OC, K) += dwp (K, OC)^T */
    transpose_tiled (t->dweight, t->dwp, K, OC, 1);
  return NULL;
}

static void *
conv_backward_data_task (void *arg)
{
  ConvTask *t = arg;
  const SimclrConvShape *s = t->s;
  const size_t in_img = (size_t) s->H * s->W * s->C;
  if (t->accumulate) {
    t->direct->backward_data (t->dinp, t->dout, t->wpack, s, t->img_begin,
        t->img_end);
    return NULL;
  }
  /* write mode: the gather adds, so zero each chunk just before it (in
   * cache, on this worker) instead of a zeroing pass over all of dinp */
  for (int b = t->img_begin; b < t->img_end; b += t->nimg) {
    int n = t->img_end - b < t->nimg ? t->img_end - b : t->nimg;
    memset (t->dinp + (size_t) b * in_img, 0, sizeof (float) * n * in_img);
    t->direct->backward_data (t->dinp, t->dout, t->wpack, s, b, b + n);
  }
  return NULL;
}

static void *
conv_dinput_s2_task (void *arg)
{
  ConvTask *t = arg;
  t->direct->dinput_s2 (t->dinp, t->dout, t->wpack, t->dsc, t->wsc,
      t->ocsc, t->accumulate, t->s, t->img_begin, t->img_end);
  return NULL;
}

/* Runs fn on tasks[i] as task i of simclr_parallel_for (layers.c): task 0
 * on the calling thread, the others on its pool's workers. */
typedef struct {
  ConvTask *tasks;
  void *(*fn) (void *);
} ConvRun;

static void
conv_run_one (void *ctx, int task)
{
  ConvRun *r = ctx;
  r->fn (&r->tasks[task]);
}

static void
conv_run_tasks (ConvTask *tasks, int workers, void *(*fn) (void *))
{
  ConvRun r = { tasks, fn };
  _Static_assert (CONV_MAX_THREADS <= SIMCLR_MAX_THREADS,
      "simclr_parallel_for runs every worker's task");
  if (workers > 1)
    simclr_parallel_for (workers, conv_run_one, &r);
  else
    fn (&tasks[0]);
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
 * direct, its kernel runs on wpack (the weight packed by conv_pack_weight),
 * with wino, Winograd on wpack (the transformed weight) with its work
 * buffers in scratch, otherwise im2col + GEMM on weight with columns in
 * scratch. */
static void
conv_forward_chunks (float *out, const float *inp, const float *weight,
    const SimclrConvKernels *direct, const SimclrWinogradKernels *wino,
    const float *wpack, const float *bias, int accumulate,
    const SimclrConvEpilogue *ep, const SimclrConvShape *s, float *scratch)
{
  ConvTask tasks[CONV_MAX_THREADS];
  int workers = conv_split (tasks, s, scratch,
      direct == NULL && wino == NULL);
  for (int i = 0; i < workers; i++) {
    tasks[i].wino = wino;
    tasks[i].work = wino ? scratch + (size_t) i *
        simclr_winograd_work_floats (wino, s) : NULL;
    tasks[i].out = out;
    tasks[i].inp = inp;
    tasks[i].weight = weight;
    tasks[i].bias = bias;
    tasks[i].accumulate = accumulate;
    tasks[i].direct = direct;
    tasks[i].wpack = wpack;
    tasks[i].ep = ep;
  }
  conv_run_tasks (tasks, workers, conv_forward_task);
}

/* Winograd: the weight packed as `layout` (CONV_PACK_C_OC, or
 * CONV_PACK_TURNED for the transposed convolution of an input gradient,
 * whose shape s then is), transformed, then the chunks (scratch layout:
 * conv_winograd_scratch). */
static void
conv_forward_winograd (float *out, const float *inp, const float *weight,
    const SimclrWinogradKernels *wino, int layout, const float *bias,
    int accumulate, const SimclrConvEpilogue *ep, const SimclrConvShape *s,
    float *scratch)
{
  float *u = scratch + (size_t) 9 * s->C * s->OC;
  if (layout == CONV_PACK_TURNED) {
    /* the original convolution's shape, as conv_pack_weight reads it */
    SimclrConvShape o = *s;
    o.C = s->OC;
    o.OC = s->C;
    conv_pack_weight (scratch, weight, &o, layout);
  } else {
    conv_pack_weight (scratch, weight, s, layout);
  }
  simclr_winograd_weight (wino, u, scratch, s->C, s->OC);
  conv_forward_chunks (out, inp, NULL, NULL, wino, u, bias, accumulate, ep,
      s, u + simclr_winograd_u_floats (wino, s));
}

void
simclr_conv2d_forward_epilogue (float *out, const float *inp,
    const float *weight, const float *bias, const SimclrConvEpilogue *ep,
    const SimclrConvShape *s, float *scratch)
{
  /* inp (B,H,W,C), weight (OC, KH*KW*C), bias (OC) or NULL,
   * out (B,OH,OW,OC) */
  if (conv_is_pointwise (s)) {
    const int M = s->B * s->H * s->W;
    bias_fill (out, bias, M, s->OC);
    /* GEMM M = B*H*W, N = OC, K = C: out (M, N) += inp (M, K) x weight^T. */
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, M, s->OC, s->C,
        1.0f, inp, s->C, weight, s->C, 1.0f, out, s->OC);
    if (ep)
      simclr_affine_act (out, out, ep->residual, ep->relu, (size_t) M, s->OC,
          ep->scale, ep->shift);
    return;
  }
  const SimclrWinogradKernels *wino = conv_pick_winograd (s, 0);
  const SimclrConvKernels *direct = conv_pick_forward (s);
  if (wino) {
    conv_forward_winograd (out, inp, weight, wino, CONV_PACK_C_OC, bias, 0,
        ep, s, scratch);
  } else if (direct) {
    conv_pack_weight (scratch, weight, s, CONV_PACK_C_OC);
    conv_forward_chunks (out, inp, NULL, direct, NULL, scratch, bias, 0, ep,
        s, scratch + (size_t) s->OC * s->KH * s->KW * s->C);
  } else {
    conv_forward_chunks (out, inp, weight, NULL, NULL, NULL, bias, 0, ep, s,
        scratch);
  }
}

void
simclr_conv2d_forward (float *out, const float *inp, const float *weight,
    const float *bias, const SimclrConvShape *s, float *scratch)
{
  simclr_conv2d_forward_epilogue (out, inp, weight, bias, NULL, s, scratch);
}

/* One worker of a Winograd weight gradient: units [u0, u1) of the
 * groups x rows of transformed points (unit g a + r: the points of row r
 * over the images of group g, summed into group g's partial du), then
 * the output rows [o0, o1) of G^T du G. */
typedef struct {
  const SimclrWinogradKernels *wk;
  const SimclrConvShape *s;
  float *du, *work, *dweight;
  const float *inp, *dout;
  int groups, u0, u1, o0, o1;
} ConvDwTask;

static void
conv_dw_run (void *ctx, int task)
{
  ConvDwTask *t = (ConvDwTask *) ctx + task;
  const SimclrConvShape *s = t->s;
  const size_t plane = (size_t) s->OC * s->C;
  const int a = t->wk->m + 2;
  for (int u = t->u0; u < t->u1;) {
    /* this group's rows in [u0, u1) */
    const int g = u / a, r0 = u % a;
    const int r1 = t->u1 - g * a < a ? t->u1 - g * a : a;
    float *du = t->du + (size_t) g * a * a * plane;
    memset (du + (size_t) r0 * a * plane, 0,
        sizeof (float) * (r1 - r0) * a * plane);
    t->wk->dweight (du, t->inp, t->dout, s,
        (int) ((long) s->B * g / t->groups),
        (int) ((long) s->B * (g + 1) / t->groups), r0, r1, t->work);
    u = g * a + r1;
  }
}

static void
conv_dw_out_run (void *ctx, int task)
{
  ConvDwTask *t = (ConvDwTask *) ctx + task;
  simclr_winograd_dweight_out_sum (t->wk, t->dweight, t->du, t->groups,
      t->o0, t->o1, t->s->C, t->s->OC);
}

/* Weight gradient by Winograd (conv-winograd.c): the images are cut into
 * conv_winograd_dw_groups groups, each summed over its tiles in the same
 * order into its own partial du; workers take fixed shares of the units
 * (group, row of points), so the bits do not depend on the thread count;
 * then dweight += G^T (sum of the partials) G, the workers splitting the
 * output channels. Scratch: the partials, then the workers' buffers. */
static void
conv_backward_weight_winograd (float *dweight, float *dbias,
    const float *dout, const float *inp, const SimclrWinogradKernels *wk,
    const SimclrConvShape *s, float *scratch)
{
  const int OC = s->OC, a = wk->m + 2;
  if (dbias) {
    /* per image, then into dbias (as conv_backward_task: a float sum over
     * every row of a large batch drifts) */
    const size_t rows = (size_t) s->OH * s->OW;
    for (int b = 0; b < s->B; b++) {
      float part[OC];
      memset (part, 0, sizeof (part));
      const float *d = dout + (size_t) b * rows * OC;
      for (size_t r = 0; r < rows; r++)
        for (int o = 0; o < OC; o++)
          part[o] += d[r * OC + o];
      for (int o = 0; o < OC; o++)
        dbias[o] += part[o];
    }
  }
  ConvDwTask tasks[CONV_MAX_THREADS];
  const int groups = conv_winograd_dw_groups (wk, s);
  const int units = groups * a;
  const int workers = conv_winograd_dw_workers (wk, s);
  float *du = scratch;
  float *work = du + (size_t) groups * simclr_winograd_u_floats (wk, s);
  for (int i = 0; i < workers; i++) {
    tasks[i].wk = wk;
    tasks[i].s = s;
    tasks[i].du = du;
    tasks[i].dweight = dweight;
    tasks[i].inp = inp;
    tasks[i].dout = dout;
    tasks[i].work = work + (size_t) i * simclr_winograd_dw_work_floats (wk,
        s);
    tasks[i].groups = groups;
    tasks[i].u0 = units * i / workers;
    tasks[i].u1 = units * (i + 1) / workers;
    tasks[i].o0 = OC * i / workers;
    tasks[i].o1 = OC * (i + 1) / workers;
  }
  if (workers > 1) {
    simclr_parallel_for (workers, conv_dw_run, tasks);
    simclr_parallel_for (workers, conv_dw_out_run, tasks);
  } else {
    conv_dw_run (tasks, 0);
    conv_dw_out_run (tasks, 0);
  }
}

void
simclr_conv2d_backward_weight (float *dweight, float *dbias,
    const float *dout, const float *inp, const SimclrConvShape *s,
    float *scratch)
{
  /* dout (B,OH,OW,OC), inp (B,H,W,C); accumulates dweight (OC, K) and
   * dbias (OC) (if not NULL). */
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
    return;
  }

  const SimclrWinogradKernels *wdw = conv_pick_winograd_dw (s, NULL);
  if (wdw) {
    conv_backward_weight_winograd (dweight, dbias, dout, inp, wdw, s,
        scratch);
    return;
  }
  const SimclrConvKernels *direct = conv_pick_dweight (s);
  const size_t K = (size_t) s->KH * s->KW * s->C;
  ConvTask tasks[CONV_MAX_THREADS];
  int workers = conv_split (tasks, s, scratch, direct == NULL);
  /* Workers 1.. accumulate into private dweight/dbias after the column
   * buffers, summed into the caller's in a fixed order at the end. */
  float *priv = scratch + (size_t) workers * conv_cols_floats (s);
  float *dwp = priv + (size_t) (workers - 1) * (OC * K + OC);
  for (int i = 0; i < workers; i++) {
    tasks[i].dout = dout;
    tasks[i].inp = inp;
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
}

/* dinp (B,H,W,C) += (accumulate) or = the input gradient of a 3x3
 * stride-2 pad-1 convolution by the set's kernel k, plus with dsc that of
 * a 1x1 stride-2 shortcut (dsc (B,OH,OW,ocsc), wsc (ocsc, C)). */
static void
conv_dinput_s2 (const SimclrConvKernels *k, float *dinp, const float *dout,
    const float *weight, const float *dsc, const float *wsc, int ocsc,
    const SimclrConvShape *s, float *scratch, int accumulate)
{
  ConvTask tasks[CONV_MAX_THREADS];
  const size_t wfloats = (size_t) s->OC * 9 * s->C;
  conv_pack_weight (scratch, weight, s, CONV_PACK_OC_C);
  int workers = conv_split (tasks, s, scratch + wfloats, 0);
  for (int i = 0; i < workers; i++) {
    tasks[i].dinp = dinp;
    tasks[i].dout = dout;
    tasks[i].wpack = scratch;
    tasks[i].direct = k;
    tasks[i].accumulate = accumulate;
    tasks[i].dsc = dsc;
    tasks[i].wsc = wsc;
    tasks[i].ocsc = ocsc;
  }
  conv_run_tasks (tasks, workers, conv_dinput_s2_task);
}

int
simclr_conv2d_s2_shortcut_fusable (const SimclrConvShape *s,
    const SimclrConvShape *ssc)
{
  return conv_pick_dinput_s2 (s) != NULL && ssc->KH == 1 && ssc->KW == 1 &&
      ssc->stride == 2 && ssc->pad == 0 && ssc->B == s->B &&
      ssc->H == s->H && ssc->W == s->W && ssc->C == s->C &&
      ssc->OH == s->OH && ssc->OW == s->OW;
}

int
simclr_conv2d_backward_input_s2_shortcut (float *dinp, const float *dout,
    const float *weight, const SimclrConvShape *s, const float *dsc,
    const float *wsc, const SimclrConvShape *ssc, float *scratch)
{
  if (!simclr_conv2d_s2_shortcut_fusable (s, ssc))
    return 0;
  conv_dinput_s2 (conv_pick_dinput_s2 (s), dinp, dout, weight, dsc, wsc,
      ssc->OC, s, scratch, 0);
  return 1;
}

/* dinp (B,H,W,C) += (accumulate) or = the input gradient. */
static void
conv_backward_input (float *dinp, const float *dout, const float *weight,
    const SimclrConvShape *s, float *scratch, int accumulate)
{
  /* dout (B,OH,OW,OC), weight (OC, KH*KW*C), dinp (B,H,W,C). */
  const int OC = s->OC;
  const size_t K = (size_t) s->KH * s->KW * s->C;
  if (conv_is_pointwise (s)) {
    /* dinp: GEMM M = B*H*W, N = C, K = OC:
     * dinp (M, C) (+)= dout (M, OC) x weight (OC, C). */
    const int M = s->B * s->H * s->W, C = s->C;
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, M, C, OC,
        1.0f, dout, OC, weight, C, accumulate ? 1.0f : 0.0f, dinp, C);
    return;
  }

  SimclrConvShape ts;
  ConvTask tasks[CONV_MAX_THREADS];
  const SimclrConvKernels *gather;
  const SimclrWinogradKernels *wino;
  if ((gather = conv_pick_dinput_s2 (s)) != NULL) {
    conv_dinput_s2 (gather, dinp, dout, weight, NULL, NULL, 0, s, scratch,
        accumulate);
  } else if (conv_transposed_shape (s, &ts) &&
      (wino = conv_pick_winograd (&ts, 1)) != NULL) {
    /* dinp (+)= conv (dout) with the turned weight, by Winograd */
    conv_forward_winograd (dinp, dout, weight, wino, CONV_PACK_TURNED, NULL,
        accumulate, NULL, &ts, scratch);
  } else if (conv_transposed_shape (s, &ts)) {
    /* dinp (+)= conv (dout) with the turned weight packed at scratch */
    conv_pack_weight (scratch, weight, s, CONV_PACK_TURNED);
    conv_forward_chunks (dinp, dout, NULL, conv_pick_forward (&ts), NULL,
        scratch, NULL, accumulate, NULL, &ts, scratch + OC * K);
  } else if ((gather = conv_pick_backward_data (s)) != NULL) {
    conv_pack_weight (scratch, weight, s, CONV_PACK_OC_C);
    int workers = conv_split (tasks, s, scratch + OC * K, 0);
    for (int i = 0; i < workers; i++) {
      tasks[i].dinp = dinp;
      tasks[i].dout = dout;
      tasks[i].wpack = scratch;
      tasks[i].direct = gather;
      tasks[i].accumulate = accumulate;
    }
    conv_run_tasks (tasks, workers, conv_backward_data_task);
  } else {
    /* GEMM into the columns, col2im */
    int workers = conv_split (tasks, s, scratch, 1);
    for (int i = 0; i < workers; i++) {
      tasks[i].dinp = dinp;
      tasks[i].dout = dout;
      tasks[i].weight = weight;
      tasks[i].accumulate = accumulate;
    }
    conv_run_tasks (tasks, workers, conv_backward_task);
  }
}

void
simclr_conv2d_backward_input (float *dinp, const float *dout,
    const float *weight, const SimclrConvShape *s, float *scratch)
{
  conv_backward_input (dinp, dout, weight, s, scratch, 1);
}

void
simclr_conv2d_backward_input_set (float *dinp, const float *dout,
    const float *weight, const SimclrConvShape *s, float *scratch)
{
  conv_backward_input (dinp, dout, weight, s, scratch, 0);
}

void
simclr_conv2d_backward (float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight,
    const SimclrConvShape *s, float *scratch)
{
  simclr_conv2d_backward_weight (dweight, dbias, dout, inp, s, scratch);
  if (dinp)
    simclr_conv2d_backward_input (dinp, dout, weight, s, scratch);
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
