/* conv-winograd.c: Winograd F(2x2, 3x3) and F(4x4, 3x3) forward of 3x3
 * stride-1 pad-1 convolutions on NHWC activations, portable C twins (the
 * tests' reference besides the double-precision naive loops) and AVX-512
 * sets (cpu.c's table row tries F(4x4, 3x3), then F(2x2, 3x3); conv.c
 * routes the shapes their predicates take, forward and, as the transposed
 * convolution, input gradient); and the weight gradient of the same
 * convolutions by the transposed transforms (the "Weight gradient"
 * sections: twins, AVX-512).
 *
 * Per call conv.c transforms the weight once (simclr_winograd_weight). Per
 * worker, the images [b0, b1) are cut into m x m output tiles (across image
 * boundaries) and processed a block of T tiles at a time, so the block's
 * transformed input V (P, T, C) and products M (P, T, OC), P = (m+2)^2
 * points, stay in L2 instead of a tensor 4x the input in memory:
 *   1. V[e][t][:] = (B^T d B)[e] for the input tile d of tile t (pad 0);
 *   2. M[e] = V[e] U[e] for each point e: (T x C) x (C x OC);
 *   3. the m x m outputs A^T M A (+ bias, or += out), clipped at the edges.
 * Every tile's arithmetic is the same whichever block or worker it falls in
 * (a block only groups tiles), so results do not depend on the thread
 * count. While a tile row is transformed, the input rows and output rows of
 * the next tile row are prefetched: without that the kernels waited on
 * memory (the activations of a batch are far larger than the caches), which
 * is what had made F(2x2, 3x3) lose at 16 channels.
 *
 * F(2x2, 3x3) transforms (Lavin & Gray 2015), correlation as in a CNN:
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
 *   A^T = [1 1 1 0; 0 1 -1 -1]
 * Additions only besides the GEMMs; the weights' halves are exact in float.
 * F(4x4, 3x3): see the section of its twin (points 0, +-1, +-2, inf);
 * multiplications by 2, 4, 5 and 8 besides the GEMMs, its error bound in
 * test-conv-winograd.c (about 10x F(2x2, 3x3)'s).
 */
#include "conv-winograd-private.h"

#include <stdint.h>
#include <string.h>

/* Largest channel count (the zero pixel for padded taps). */
#define WINO_MAX_C 1024
static const float wino_zeros[WINO_MAX_C];

/* Target floats of a block's V + M: 256 KiB, half a Zen 4 L2 (1 MiB on
 * Zen 5), leaving room for the transformed weight's slice in use. */
#ifndef WINO_BLOCK_FLOATS
#define WINO_BLOCK_FLOATS (64 * 1024)
#endif
/* The same for F(4x4, 3x3) blocks (36 points). */
#ifndef WINO43_BLOCK_FLOATS
#define WINO43_BLOCK_FLOATS (64 * 1024)
#endif
/* Rows the GEMM may compute past the block's last tile (its register block
 * of tiles is at most this); those rows of V are zeroed, their products
 * dropped. */
#define WINO_ROW_PAD 16

/* Floats between two points' slices of a block's V (rows of @n floats) or
 * M in the SIMD kernels: one cache line more than the rows, so the
 * points' slices, written (V) and read (M) together per tile, do not fall
 * in one cache set: at rows * n a multiple of 4 KiB (e.g. 16 + 16 rows
 * of 128 channels) they did, and F(4x4, 3x3)'s 36 points at 128 channels
 * ran 1.2-1.3x slower. The portable twins keep rows * n (within this). */
static size_t
wino_pstride (size_t rows, int n)
{
  return rows * n + 16;
}

int
simclr_winograd_points (const SimclrWinogradKernels *k)
{
  return (k->m + 2) * (k->m + 2);
}

int
simclr_winograd_shape_ok (const SimclrConvShape *s)
{
  return s->KH == 3 && s->KW == 3 && s->stride == 1 && s->pad == 1 &&
      s->C > 0 && s->OC > 0 && s->C <= WINO_MAX_C && s->OH == s->H &&
      s->OW == s->W;
}

size_t
simclr_winograd_u_floats (const SimclrWinogradKernels *k,
    const SimclrConvShape *s)
{
  return (size_t) simclr_winograd_points (k) * s->C * s->OC;
}

int
simclr_winograd_block_tiles (const SimclrWinogradKernels *k,
    const SimclrConvShape *s)
{
  size_t t = (k->m == 4 ? WINO43_BLOCK_FLOATS : WINO_BLOCK_FLOATS) /
      ((size_t) simclr_winograd_points (k) * (s->C + s->OC));
  if (t < 16)
    t = 16;
  if (t > 1024)
    t = 1024;
  /* F(4x4, 3x3) past 64*64 channel pairs: the transformed weight (36 C
   * OC floats, 2.3 MiB at 128*128) no longer stays in L2 and is reread
   * every block, so at least 48 tiles a block (V + M then mostly in L3).
   * `bench-conv --tiles`, 4x4x128->128 b512, one thread, direct/F(4x4,
   * 3x3) time, medians of 3 runs at load 6: 2.64 at 16 tiles, 2.87 at
   * 36, 2.97 at 48, 2.87 at 64 and 96; AVX2 2.8 -> 3.0-3.15. */
  if (k->m == 4 && (size_t) s->C * s->OC > 64 * 64 && t < 48)
    t = 48;
  return (int) t;
}

size_t
simclr_winograd_work_floats (const SimclrWinogradKernels *k,
    const SimclrConvShape *s)
{
  size_t rows = (size_t) simclr_winograd_block_tiles (k, s) + WINO_ROW_PAD;
  return (size_t) simclr_winograd_points (k) * (wino_pstride (rows, s->C) +
      wino_pstride (rows, s->OC));
}

/* Channel pairs the weight transforms take at a time. The planes of wp
 * (9) and u (16 or 36) are C*OC floats apart, a multiple of 4 KiB for
 * the channel counts here: walked one pair at a time, their 25-45 streams
 * fall in one cache set and evict each other on every pair (at 128*128,
 * 6 ms a call for F(4x4, 3x3), more than its convolution); a run of pairs
 * per plane reads and writes whole lines. Each pair's arithmetic is the
 * same as one at a time. */
#define WINO_WT_PAIRS 64

/* F(2x2, 3x3): u (16, C, OC) = G g G^T (halves: exact). */
static void
weight23 (float *u, const float *wp, int C, int OC)
{
  const size_t plane = (size_t) C * OC;
  for (size_t j0 = 0; j0 < plane; j0 += WINO_WT_PAIRS) {
    const int n = plane - j0 < WINO_WT_PAIRS ? (int) (plane - j0) :
        WINO_WT_PAIRS;
    float g[9][WINO_WT_PAIRS], t[4][3][WINO_WT_PAIRS];
    for (int tap = 0; tap < 9; tap++)
      memcpy (g[tap], wp + (size_t) tap * plane + j0, sizeof (float) * n);
    /* t = G g (g[3 kh + kw]) */
    for (int k = 0; k < 3; k++)
      for (int j = 0; j < n; j++) {
        t[0][k][j] = g[k][j];
        t[1][k][j] = 0.5f * (g[k][j] + g[3 + k][j] + g[6 + k][j]);
        t[2][k][j] = 0.5f * (g[k][j] - g[3 + k][j] + g[6 + k][j]);
        t[3][k][j] = g[6 + k][j];
      }
    /* u = t G^T */
    for (int i = 0; i < 4; i++) {
      float *ui = u + (size_t) i * 4 * plane + j0;
      for (int j = 0; j < n; j++) {
        ui[j] = t[i][0][j];
        ui[plane + j] = 0.5f * (t[i][0][j] + t[i][1][j] + t[i][2][j]);
        ui[2 * plane + j] = 0.5f * (t[i][0][j] - t[i][1][j] + t[i][2][j]);
        ui[3 * plane + j] = t[i][2][j];
      }
    }
  }
}

/* F(4x4, 3x3) G (6x3) for the points 0, 1, -1, 2, -2 and inf, scaled as in
 * Lavin & Gray (the transforms: the twin's section below). */
static const double G43[6][3] = {
  {1.0 / 4, 0, 0},
  {-1.0 / 6, -1.0 / 6, -1.0 / 6},
  {-1.0 / 6, 1.0 / 6, -1.0 / 6},
  {1.0 / 24, 1.0 / 12, 1.0 / 6},
  {1.0 / 24, -1.0 / 12, 1.0 / 6},
  {0, 0, 1},
};

/* F(4x4, 3x3): u (36, C, OC) = G g G^T in double, rounded once (1/6 and
 * 1/24 are not exact in float), for the @n pairs from j0 (n a constant
 * where inlined with WINO_WT_PAIRS: the loops then vectorize, each pair's
 * operations unchanged, no contraction: -std=c11). */
__attribute__ ((always_inline)) static inline void
weight43_pairs (float *u, const float *wp, size_t plane, size_t j0,
    const int n)
{
  double g[9][WINO_WT_PAIRS], t[6][3][WINO_WT_PAIRS];
  for (int tap = 0; tap < 9; tap++)
    for (int j = 0; j < n; j++)
      g[tap][j] = wp[(size_t) tap * plane + j0 + j];
  for (int i = 0; i < 6; i++)
    for (int k = 0; k < 3; k++)
      for (int j = 0; j < n; j++)
        t[i][k][j] = G43[i][0] * g[k][j] + G43[i][1] * g[3 + k][j] +
            G43[i][2] * g[6 + k][j];
  for (int i = 0; i < 6; i++)
    for (int l = 0; l < 6; l++) {
      float *ue = u + (size_t) (i * 6 + l) * plane + j0;
      for (int j = 0; j < n; j++)
        ue[j] = (float) (t[i][0][j] * G43[l][0] + t[i][1][j] * G43[l][1] +
            t[i][2][j] * G43[l][2]);
    }
}

/* Every plane's pairs, WINO_WT_PAIRS at a time; inlined into each
 * instruction set's function below, so one body serves all three. */
__attribute__ ((always_inline)) static inline void
weight43_planes (float *u, const float *wp, int C, int OC)
{
  const size_t plane = (size_t) C * OC;
  size_t j0 = 0;
  for (; j0 + WINO_WT_PAIRS <= plane; j0 += WINO_WT_PAIRS)
    weight43_pairs (u, wp, plane, j0, WINO_WT_PAIRS);
  if (j0 < plane)
    weight43_pairs (u, wp, plane, j0, (int) (plane - j0));
}

static void
weight43 (float *u, const float *wp, int C, int OC)
{
  weight43_planes (u, wp, C, OC);
}

#if defined(__GNUC__) && defined(__x86_64__)
/* weight43 on 8 doubles per vector (the same operations per pair, so the
 * same bits): for the AVX-512 kernels, 0.65 -> 0.15 ms at 128*128. */
__attribute__ ((target ("avx512f,avx512dq,avx512vl,avx512bw"))) static void
weight43_avx512 (float *u, const float *wp, int C, int OC)
{
  weight43_planes (u, wp, C, OC);
}

/* The same on 4 doubles per vector, for the AVX2 kernels. */
__attribute__ ((target ("avx2"))) static void
weight43_avx2 (float *u, const float *wp, int C, int OC)
{
  weight43_planes (u, wp, C, OC);
}
#endif

void
simclr_winograd_weight (const SimclrWinogradKernels *k, float *u,
    const float *wp, int C, int OC)
{
#if defined(__GNUC__) && defined(__x86_64__)
  if (k == &simclr_winograd43_avx512) {
    weight43_avx512 (u, wp, C, OC);
    return;
  }
  if (k == &simclr_winograd43_avx2) {
    weight43_avx2 (u, wp, C, OC);
    return;
  }
#endif
  if (k->m == 4)
    weight43 (u, wp, C, OC);
  else
    weight23 (u, wp, C, OC);
}

/* ---------------------------------------------------------------------------
 * Weight gradient (dweight). The forward is linear in the weight g: per
 * tile y = A^T [(G g G^T) (.) (B^T d B)] A, so its transpose gives, for the
 * tile's output gradient dy (m x m),
 *   dg = G^T [(B^T d B) (.) (A dy A^T)] G,
 * summed over every tile of every image: the forward's input transform V,
 * the output gradient's Z = A dy A^T ((m+2) x (m+2) from m x m; A is A^T
 * transposed, additions and multiples of 2, 4 and 8 only), per point e the
 * sum over tiles du[e] (OC, C) += Z[e]^T V[e] (a GEMM with the tiles as its
 * long inner dimension), and G^T du G once at the end. Multiplications per
 * tile and channel pair: 16 for 4 outputs' worth of positions instead of
 * 36 (F(2x2, 3x3)), 36 for 16 instead of 144 (F(4x4, 3x3)).
 * The sums over tiles run in the tiles' order (image by image, tile rows
 * top down) within a call's images [b0, b1), one point's sum on one
 * thread: conv.c cuts the batch into a number of image groups fixed by
 * the shape (each summed by these kernels into its own partial du) and
 * splits groups x rows of points over its threads, then adds the partials
 * in double in group order in simclr_winograd_dweight_out_sum, so the bits
 * do not depend on the thread count. */

/* Target floats of a weight-gradient block's V + Z (all points): one
 * point's slice (T (C + OC) floats) is what a GEMM sweep rereads. */
#ifndef WINO_DW_BLOCK_FLOATS
#define WINO_DW_BLOCK_FLOATS (128 * 1024)
#endif
#ifndef WINO_DW_MIN_TILES
#define WINO_DW_MIN_TILES 32
#endif

int
simclr_winograd_dw_block_tiles (const SimclrWinogradKernels *k,
    const SimclrConvShape *s)
{
  size_t t = WINO_DW_BLOCK_FLOATS /
      ((size_t) simclr_winograd_points (k) * (s->C + s->OC));
  if (t < WINO_DW_MIN_TILES)
    t = WINO_DW_MIN_TILES;
  if (t > 1024)
    t = 1024;
  return (int) t;
}

/* Floats between two points' slices of V (or Z): T rows of @n floats and
 * one cache line more, so the points' slices do not all fall into the same
 * cache sets when T n floats is a multiple of 4 KiB (measured: F(4x4, 3x3)
 * at 7x7x64 ran at 0.6x with T = 128 unpadded). */
static size_t
dw_stride (int T, int n)
{
  return (size_t) T * n + 16;
}

size_t
simclr_winograd_dw_work_floats (const SimclrWinogradKernels *k,
    const SimclrConvShape *s)
{
  const int T = simclr_winograd_dw_block_tiles (k, s);
  return (size_t) simclr_winograd_points (k) * (dw_stride (T, s->C) +
      dw_stride (T, s->OC));
}

/* F(2x2, 3x3)'s G (4x3). */
static const double G23[4][3] = {
  {1, 0, 0},
  {0.5, 0.5, 0.5},
  {0.5, -0.5, 0.5},
  {0, 0, 1},
};

/* Channels of one step of the weight-side transform (its inner loops run
 * over them: contiguous in du and dweight, vectorized; 64: four cache
 * lines of each of the P planes of du per step, which at 128*128 ran
 * 1.2-1.3x faster than one). */
#define DW_OUT_CB 64

/* dweight (OC, 3, 3, C) channels [c0, c0 + nc) of row o += G^T du G, du
 * summed over the groups first (simclr_winograd_dweight_out_sum). Per
 * element the operations of a scalar loop in the same order (inlined with
 * a constant nc for full steps; no contraction: -std=c11), so the
 * vector-width clones below give the same bits. */
static inline __attribute__ ((always_inline)) void
dw_out_step (const int nc, float *dweight, const float *du, int groups,
    size_t gstride, size_t plane, int a, const double (*G)[3], int o,
    int c0, int C)
{
  const float *d = du + (size_t) o * C + c0;
  double t[6][3][DW_OUT_CB];    /* du G */
  for (int i = 0; i < a; i++) {
    double r[6][DW_OUT_CB];     /* row i of du, groups summed */
    for (int l = 0; l < a; l++) {
      const float *src = d + (size_t) (i * a + l) * plane;
      for (int j = 0; j < nc; j++)
        r[l][j] = src[j];
      for (int g = 1; g < groups; g++)
        for (int j = 0; j < nc; j++)
          r[l][j] += src[g * gstride + j];
    }
    for (int kw = 0; kw < 3; kw++) {
      for (int j = 0; j < nc; j++)
        t[i][kw][j] = 0.0;
      for (int l = 0; l < a; l++)
        for (int j = 0; j < nc; j++)
          t[i][kw][j] += r[l][j] * G[l][kw];
    }
  }
  for (int kh = 0; kh < 3; kh++)
    for (int kw = 0; kw < 3; kw++) {
      double acc[DW_OUT_CB];
      for (int j = 0; j < nc; j++)
        acc[j] = 0.0;
      for (int i = 0; i < a; i++)
        for (int j = 0; j < nc; j++)
          acc[j] += G[i][kh] * t[i][kw][j];
      float *dst = dweight + ((size_t) o * 9 + kh * 3 + kw) * C + c0;
      for (int j = 0; j < nc; j++)
        dst[j] = (float) (dst[j] + acc[j]);
    }
}

static inline __attribute__ ((always_inline)) void
dw_out_rows (const SimclrWinogradKernels *k, float *dweight,
    const float *du, int groups, int o0, int o1, int C, int OC)
{
  const int a = k->m + 2;
  const double (*G)[3] = k->m == 4 ? G43 : G23;
  const size_t plane = (size_t) OC * C, gstride = (size_t) a * a * plane;
  for (int o = o0; o < o1; o++) {
    int c0 = 0;
    for (; c0 + DW_OUT_CB <= C; c0 += DW_OUT_CB)
      dw_out_step (DW_OUT_CB, dweight, du, groups, gstride, plane, a, G, o,
          c0, C);
    /* 16- and 32-channel layers: constant steps too */
    for (; c0 + 32 <= C; c0 += 32)
      dw_out_step (32, dweight, du, groups, gstride, plane, a, G, o, c0, C);
    for (; c0 + 16 <= C; c0 += 16)
      dw_out_step (16, dweight, du, groups, gstride, plane, a, G, o, c0, C);
    if (c0 < C)
      dw_out_step (C - c0, dweight, du, groups, gstride, plane, a, G, o, c0,
          C);
  }
}

static void
dw_out_generic (const SimclrWinogradKernels *k, float *dweight,
    const float *du, int groups, int o0, int o1, int C, int OC)
{
  dw_out_rows (k, dweight, du, groups, o0, o1, C, OC);
}

#if defined(__GNUC__) && defined(__x86_64__)
/* The same on 8 (4) doubles per vector, for the AVX-512 (AVX2) kernels.
 * One thread, thread CPU time, best of 7, load about 6, against the
 * pair-at-a-time loops before: 128*128 1.82 -> 0.34 ms, 64*64 0.44 ->
 * 0.07, 32*32 0.11 -> 0.02 (F(4x4, 3x3), AVX-512). */
__attribute__ ((target ("avx512f,avx512dq,avx512vl,avx512bw"))) static void
dw_out_avx512 (const SimclrWinogradKernels *k, float *dweight,
    const float *du, int groups, int o0, int o1, int C, int OC)
{
  dw_out_rows (k, dweight, du, groups, o0, o1, C, OC);
}

__attribute__ ((target ("avx2"))) static void
dw_out_avx2 (const SimclrWinogradKernels *k, float *dweight,
    const float *du, int groups, int o0, int o1, int C, int OC)
{
  dw_out_rows (k, dweight, du, groups, o0, o1, C, OC);
}
#endif

void
simclr_winograd_dweight_out_sum (const SimclrWinogradKernels *k,
    float *dweight, const float *du, int groups, int o0, int o1, int C,
    int OC)
{
#if defined(__GNUC__) && defined(__x86_64__)
  if (k == &simclr_winograd43_dw_avx512 || k == &simclr_winograd_dw_avx512) {
    dw_out_avx512 (k, dweight, du, groups, o0, o1, C, OC);
    return;
  }
  if (k == &simclr_winograd43_dw_avx2) {
    dw_out_avx2 (k, dweight, du, groups, o0, o1, C, OC);
    return;
  }
#endif
  dw_out_generic (k, dweight, du, groups, o0, o1, C, OC);
}

void
simclr_winograd_dweight_out (const SimclrWinogradKernels *k,
    float *dweight, const float *du, int C, int OC)
{
  simclr_winograd_dweight_out_sum (k, dweight, du, 1, 0, OC, C, OC);
}

/* Tiles of one image: TH x TW, 2x2 outputs each. */
static void
wino_tiles (const SimclrConvShape *s, int *th, int *tw)
{
  *th = (s->OH + 1) / 2;
  *tw = (s->OW + 1) / 2;
}

/* The 16 input pixels of tile `tile` (counted from image b0): pointers to
 * their C channels, or to zeros where the 4x4 window leaves the image. Also
 * returns the output pixel (b, oh, ow) of the tile's top left. */
static void
wino_tile_pixels (const float *p[16], const float *inp,
    const SimclrConvShape *s, int b0, long tile, int *b, int *oh, int *ow)
{
  int TH, TW;
  wino_tiles (s, &TH, &TW);
  long per_img = (long) TH * TW;
  *b = b0 + (int) (tile / per_img);
  int r = (int) (tile % per_img);
  *oh = 2 * (r / TW);
  *ow = 2 * (r % TW);
  const float *img = inp + (size_t) *b * s->H * s->W * s->C;
  for (int i = 0; i < 4; i++) {
    int ih = *oh - 1 + i;
    for (int j = 0; j < 4; j++) {
      int iw = *ow - 1 + j;
      p[i * 4 + j] = ih >= 0 && ih < s->H && iw >= 0 && iw < s->W ?
          img + ((size_t) ih * s->W + iw) * s->C : wino_zeros;
    }
  }
}

/* ---------------------------------------------------------------------------
 * Portable twin: the same blocks and transforms in plain loops. */

static void
generic_forward (float *out, const float *inp, const float *u,
    const float *bias, int accumulate, const SimclrConvShape *s, int b0,
    int b1, float *work)
{
  const int C = s->C, OC = s->OC;
  const int T = simclr_winograd_block_tiles (&simclr_winograd_generic, s);
  const size_t rows = (size_t) T + WINO_ROW_PAD;
  float *V = work, *M = work + 16 * rows * C;
  int TH, TW;
  wino_tiles (s, &TH, &TW);
  const long ntiles = (long) (b1 - b0) * TH * TW;
  for (long t0 = 0; t0 < ntiles; t0 += T) {
    int nt = ntiles - t0 < T ? (int) (ntiles - t0) : T;
    /* 1. input transform */
    for (int t = 0; t < nt; t++) {
      const float *p[16];
      int b, oh, ow;
      wino_tile_pixels (p, inp, s, b0, t0 + t, &b, &oh, &ow);
      for (int c = 0; c < C; c++) {
        float d[4][4], x[4][4];
        for (int i = 0; i < 16; i++)
          d[i / 4][i % 4] = p[i][c];
        for (int j = 0; j < 4; j++) {   /* B^T d */
          x[0][j] = d[0][j] - d[2][j];
          x[1][j] = d[1][j] + d[2][j];
          x[2][j] = d[2][j] - d[1][j];
          x[3][j] = d[1][j] - d[3][j];
        }
        for (int i = 0; i < 4; i++) {   /* (B^T d) B */
          float *v = V + ((size_t) (i * 4) * rows + t) * C + c;
          v[0] = x[i][0] - x[i][2];
          v[rows * C] = x[i][1] + x[i][2];
          v[2 * rows * C] = x[i][2] - x[i][1];
          v[3 * rows * C] = x[i][1] - x[i][3];
        }
      }
    }
    /* 2. the 16 GEMMs over the channels */
    for (int e = 0; e < 16; e++) {
      const float *ue = u + (size_t) e * C * OC;
      for (int t = 0; t < nt; t++) {
        const float *v = V + ((size_t) e * rows + t) * C;
        float *m = M + ((size_t) e * rows + t) * OC;
        for (int o = 0; o < OC; o++)
          m[o] = 0.0f;
        for (int c = 0; c < C; c++)
          for (int o = 0; o < OC; o++)
            m[o] += v[c] * ue[(size_t) c * OC + o];
      }
    }
    /* 3. output transform */
    for (int t = 0; t < nt; t++) {
      const float *p[16];
      int b, oh, ow;
      wino_tile_pixels (p, inp, s, b0, t0 + t, &b, &oh, &ow);
      for (int o = 0; o < OC; o++) {
        float m[4][4], y[2][4];
        for (int e = 0; e < 16; e++)
          m[e / 4][e % 4] = M[((size_t) e * rows + t) * OC + o];
        for (int j = 0; j < 4; j++) {   /* A^T m */
          y[0][j] = m[0][j] + m[1][j] + m[2][j];
          y[1][j] = m[1][j] - m[2][j] - m[3][j];
        }
        for (int i = 0; i < 2 && oh + i < s->OH; i++) {
          float r[2] = { y[i][0] + y[i][1] + y[i][2],
            y[i][1] - y[i][2] - y[i][3]
          };
          for (int j = 0; j < 2 && ow + j < s->OW; j++) {
            float *dst = out + (((size_t) b * s->OH + oh + i) * s->OW + ow +
                j) * OC + o;
            if (accumulate)
              *dst += r[j];
            else
              *dst = r[j] + (bias ? bias[o] : 0.0f);
          }
        }
      }
    }
  }
}

static int
generic_ok (const SimclrConvShape *s)
{
  /* not routed (cpu.c keeps it out of the table); the shapes it computes */
  return simclr_winograd_shape_ok (s);
}

const SimclrWinogradKernels simclr_winograd_generic = {
  .m = 2,
  .ok = generic_ok,
  .forward = generic_forward,
};

/* ---------------------------------------------------------------------------
 * F(4x4, 3x3), portable twin: 6x6 input tiles, 36 points, the same blocks.
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
 *          0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 * and G43 above. The 1-d transforms as the AVX-512 set computes them
 * (shared differences, multiples of 2, 4, 5 and 8: exact scalings). */

static inline void
bt6 (float r[6], const float d[6])
{
  float t1 = d[1] + d[2], t2 = d[3] + d[4];
  float t3 = d[1] - d[2], t4 = d[4] - d[3];
  float t5 = d[4] - d[2], t6 = d[3] - d[1];
  r[0] = 4.0f * d[0] + (d[4] - 5.0f * d[2]);
  r[1] = t2 - 4.0f * t1;
  r[2] = t4 + 4.0f * t3;
  r[3] = t5 + 2.0f * t6;
  r[4] = t5 - 2.0f * t6;
  r[5] = 4.0f * d[1] + (d[5] - 5.0f * d[3]);
}

static inline void
at6 (float y[4], const float m[6])
{
  float a = m[1] + m[2], b = m[1] - m[2], c = m[3] + m[4], d = m[3] - m[4];
  y[0] = (m[0] + a) + c;
  y[1] = b + 2.0f * d;
  y[2] = a + 4.0f * c;
  y[3] = (b + 8.0f * d) + m[5];
}

/* Whether F(4x4, 3x3) multiplies less than F(2x2, 3x3) on this map: 36
 * points per 4x4 tile against 16 per 2x2 tile (4x4: 36 against 64, 14x14:
 * 576 against 784; 2x2: 36 against 16; 5x5 and 6x6: 144 both). */
static int
wino43_fewer_points (const SimclrConvShape *s)
{
  size_t p43 = (size_t) 36 * ((s->OH + 3) / 4) * ((s->OW + 3) / 4);
  size_t p23 = (size_t) 16 * ((s->OH + 1) / 2) * ((s->OW + 1) / 2);
  return p43 < p23;
}

static void
wino43_tiles (const SimclrConvShape *s, int *th, int *tw)
{
  *th = (s->OH + 3) / 4;
  *tw = (s->OW + 3) / 4;
}

static void
generic43_forward (float *out, const float *inp, const float *u,
    const float *bias, int accumulate, const SimclrConvShape *s, int b0,
    int b1, float *work)
{
  const int C = s->C, OC = s->OC;
  const int T = simclr_winograd_block_tiles (&simclr_winograd43_generic, s);
  const size_t rows = (size_t) T + WINO_ROW_PAD;
  float *V = work, *M = work + 36 * rows * C;
  int TH, TW;
  wino43_tiles (s, &TH, &TW);
  const long per_img = (long) TH * TW;
  const long ntiles = (long) (b1 - b0) * per_img;
  for (long t0 = 0; t0 < ntiles; t0 += T) {
    int nt = ntiles - t0 < T ? (int) (ntiles - t0) : T;
    /* 1. input transform */
    for (int t = 0; t < nt; t++) {
      long g = t0 + t;
      int b = b0 + (int) (g / per_img), r = (int) (g % per_img);
      int oh = 4 * (r / TW), ow = 4 * (r % TW);
      const float *img = inp + (size_t) b * s->H * s->W * C;
      for (int c = 0; c < C; c++) {
        float d[6][6], x[6][6], col[6], res[6];
        for (int i = 0; i < 6; i++)
          for (int j = 0; j < 6; j++) {
            int ih = oh - 1 + i, iw = ow - 1 + j;
            d[i][j] = ih >= 0 && ih < s->H && iw >= 0 && iw < s->W ?
                img[((size_t) ih * s->W + iw) * C + c] : 0.0f;
          }
        for (int j = 0; j < 6; j++) {   /* B^T d, column by column */
          for (int i = 0; i < 6; i++)
            col[i] = d[i][j];
          bt6 (res, col);
          for (int i = 0; i < 6; i++)
            x[i][j] = res[i];
        }
        for (int i = 0; i < 6; i++) {   /* (B^T d) B, row by row */
          bt6 (res, x[i]);
          for (int k = 0; k < 6; k++)
            V[((size_t) (i * 6 + k) * rows + t) * C + c] = res[k];
        }
      }
    }
    /* 2. the 36 GEMMs over the channels */
    for (int e = 0; e < 36; e++) {
      const float *ue = u + (size_t) e * C * OC;
      for (int t = 0; t < nt; t++) {
        const float *v = V + ((size_t) e * rows + t) * C;
        float *m = M + ((size_t) e * rows + t) * OC;
        for (int o = 0; o < OC; o++)
          m[o] = 0.0f;
        for (int c = 0; c < C; c++)
          for (int o = 0; o < OC; o++)
            m[o] += v[c] * ue[(size_t) c * OC + o];
      }
    }
    /* 3. output transform */
    for (int t = 0; t < nt; t++) {
      long g = t0 + t;
      int b = b0 + (int) (g / per_img), r = (int) (g % per_img);
      int oh = 4 * (r / TW), ow = 4 * (r % TW);
      for (int o = 0; o < OC; o++) {
        float y[4][6], col[6], res[4];
        for (int j = 0; j < 6; j++) {   /* A^T m, column by column */
          for (int i = 0; i < 6; i++)
            col[i] = M[((size_t) (i * 6 + j) * rows + t) * OC + o];
          at6 (res, col);
          for (int i = 0; i < 4; i++)
            y[i][j] = res[i];
        }
        for (int i = 0; i < 4 && oh + i < s->OH; i++) {
          at6 (res, y[i]);
          for (int j = 0; j < 4 && ow + j < s->OW; j++) {
            float *dst = out + (((size_t) b * s->OH + oh + i) * s->OW + ow +
                j) * OC + o;
            if (accumulate)
              *dst += res[j];
            else
              *dst = res[j] + (bias ? bias[o] : 0.0f);
          }
        }
      }
    }
  }
}

const SimclrWinogradKernels simclr_winograd43_generic = {
  .m = 4,
  .ok = generic_ok,
  .forward = generic43_forward,
};

/* ---------------------------------------------------------------------------
 * Weight gradient, portable twin (F(2x2, 3x3) and F(4x4, 3x3)): tile by
 * tile, the same transforms in plain loops. */

/* B^T of one input column, m = 2 (the twin forward's x rows). */
static inline void
bt4 (float r[4], const float d[4])
{
  r[0] = d[0] - d[2];
  r[1] = d[1] + d[2];
  r[2] = d[2] - d[1];
  r[3] = d[1] - d[3];
}

/* A of one output-gradient column, m = 2: z (4) = A y (2). */
static inline void
a4 (float z[4], const float y[2])
{
  z[0] = y[0];
  z[1] = y[0] + y[1];
  z[2] = y[0] - y[1];
  z[3] = -y[1];
}

/* m = 4: z (6) = A y (4), A = (A^T)^T above: rows 1, 1 1 1 1, 1 -1 1 -1,
 * 1 2 4 8, 1 -2 4 -8, 0 0 0 1 (as the AVX-512 set computes them: the
 * multiples of 2 and 4 are exact, so y0 + 4 y2 rounds once either way). */
static inline void
a6 (float z[6], const float y[4])
{
  float s02 = y[0] + y[2], s13 = y[1] + y[3];
  float t02 = y[0] + 4.0f * y[2], t13 = 2.0f * (y[1] + 4.0f * y[3]);
  z[0] = y[0];
  z[1] = s02 + s13;
  z[2] = s02 - s13;
  z[3] = t02 + t13;
  z[4] = t02 - t13;
  z[5] = y[3];
}

static void
generic_dweight_m (const int m, float *du, const float *inp,
    const float *dout, const SimclrConvShape *s, int b0, int b1, int r0,
    int r1, float *work)
{
  const int C = s->C, OC = s->OC, a = m + 2, P = a * a;
  float *V = work, *Z = work + (size_t) P * C;  /* one tile's */
  const int TH = (s->OH + m - 1) / m, TW = (s->OW + m - 1) / m;
  for (int b = b0; b < b1; b++)
    for (int th = 0; th < TH; th++)
      for (int tw = 0; tw < TW; tw++) {
        const int oh = m * th, ow = m * tw;
        const float *img = inp + (size_t) b * s->H * s->W * C;
        const float *dimg = dout + (size_t) b * s->OH * s->OW * OC;
        for (int c = 0; c < C; c++) {
          float d[6][6], x[6][6], col[6], res[6];
          for (int i = 0; i < a; i++)
            for (int j = 0; j < a; j++) {
              int ih = oh - 1 + i, iw = ow - 1 + j;
              d[i][j] = ih >= 0 && ih < s->H && iw >= 0 && iw < s->W ?
                  img[((size_t) ih * s->W + iw) * C + c] : 0.0f;
            }
          for (int j = 0; j < a; j++) {   /* B^T d */
            for (int i = 0; i < a; i++)
              col[i] = d[i][j];
            if (m == 4)
              bt6 (res, col);
            else
              bt4 (res, col);
            for (int i = 0; i < a; i++)
              x[i][j] = res[i];
          }
          for (int i = r0; i < r1; i++) {       /* (B^T d) B */
            if (m == 4)
              bt6 (res, x[i]);
            else
              bt4 (res, x[i]);
            for (int k = 0; k < a; k++)
              V[(size_t) (i * a + k) * C + c] = res[k];
          }
        }
        for (int o = 0; o < OC; o++) {
          float y[4][4], z[6][4], col[4], res[6];
          for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++)
              y[i][j] = oh + i < s->OH && ow + j < s->OW ?
                  dimg[((size_t) (oh + i) * s->OW + ow + j) * OC + o] :
                  0.0f;
          for (int j = 0; j < m; j++) {   /* A dy */
            for (int i = 0; i < m; i++)
              col[i] = y[i][j];
            if (m == 4)
              a6 (res, col);
            else
              a4 (res, col);
            for (int i = 0; i < a; i++)
              z[i][j] = res[i];
          }
          for (int i = r0; i < r1; i++) {       /* (A dy) A^T */
            if (m == 4)
              a6 (res, z[i]);
            else
              a4 (res, z[i]);
            for (int k = 0; k < a; k++)
              Z[(size_t) (i * a + k) * OC + o] = res[k];
          }
        }
        for (int e = r0 * a; e < r1 * a; e++)
          for (int o = 0; o < OC; o++) {
            const float zo = Z[(size_t) e * OC + o];
            float *dst = du + ((size_t) e * OC + o) * C;
            const float *v = V + (size_t) e * C;
            for (int c = 0; c < C; c++)
              dst[c] += zo * v[c];
          }
      }
}

static void
generic_dweight (float *du, const float *inp, const float *dout,
    const SimclrConvShape *s, int b0, int b1, int r0, int r1, float *work)
{
  generic_dweight_m (2, du, inp, dout, s, b0, b1, r0, r1, work);
}

static void
generic43_dweight (float *du, const float *inp, const float *dout,
    const SimclrConvShape *s, int b0, int b1, int r0, int r1, float *work)
{
  generic_dweight_m (4, du, inp, dout, s, b0, b1, r0, r1, work);
}

const SimclrWinogradKernels simclr_winograd_dw_generic = {
  .m = 2,
  .ok = generic_ok,
  .dweight = generic_dweight,
};

const SimclrWinogradKernels simclr_winograd43_dw_generic = {
  .m = 4,
  .ok = generic_ok,
  .dweight = generic43_dweight,
};

/* ---------------------------------------------------------------------------
 * AVX-512: the same blocks, 16 channels per vector. The GEMMs keep a block
 * of R tiles x 16*NV output channels in R*NV registers over all C input
 * channels, one broadcast of V against NV weight vectors of U per step (the
 * direct kernels' scheme, conv-avx512.c). */
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>

#define AVX512 "avx512f,avx512bw,avx512dq,avx512vl,fma,prfchw"
#define KERNEL __attribute__ ((target (AVX512), always_inline)) static inline

#define MAX_R 16
#define MAX_NV 4

/* m (R tiles, 16*NV channels from o0) = v (R, C) u (C, OC) for one point:
 * v rows are `C` floats apart, m rows `OC`. */
KERNEL void
gemm_block (const int NV, const int R, float *m, const float *v,
    const float *u, int C, int OC, int o0)
{
  __m512 acc[MAX_R][MAX_NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int k = 0; k < NV; k++)
      acc[r][k] = _mm512_setzero_ps ();
  const float *w = u + o0;
  for (int c = 0; c < C; c++, w += OC) {
    __m512 wv[MAX_NV];
#pragma GCC unroll 4
    for (int k = 0; k < NV; k++)
      wv[k] = _mm512_loadu_ps (w + 16 * k);
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) {
      __m512 x = _mm512_set1_ps (v[(size_t) r * C + c]);
#pragma GCC unroll 4
      for (int k = 0; k < NV; k++)
        acc[r][k] = _mm512_fmadd_ps (x, wv[k], acc[r][k]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int k = 0; k < NV; k++)
      _mm512_storeu_ps (m + (size_t) r * OC + o0 + 16 * k, acc[r][k]);
}

/* B^T d of one input column: the 4 tile rows at offset @off, rows outside
 * the image (@rm) and a column outside it (@cm) read as zeros. */
KERNEL void
in_column (__m512 x[4], const float *const row[4], const __mmask16 rm[4],
    __mmask16 cm, size_t off)
{
  __m512 d0 = _mm512_maskz_loadu_ps (rm[0] & cm, row[0] + off);
  __m512 d1 = _mm512_maskz_loadu_ps (rm[1] & cm, row[1] + off);
  __m512 d2 = _mm512_maskz_loadu_ps (rm[2] & cm, row[2] + off);
  __m512 d3 = _mm512_maskz_loadu_ps (rm[3] & cm, row[3] + off);
  x[0] = _mm512_sub_ps (d0, d2);
  x[1] = _mm512_add_ps (d1, d2);
  x[2] = _mm512_sub_ps (d2, d1);
  x[3] = _mm512_sub_ps (d1, d3);
}

/* Input transform of one tile row segment: tiles tw0 .. tw0+n-1 of tile
 * row th of image img, into V rows v0 ... (row stride C, point stride
 * vstride). Rows and columns outside the image read zeros through masked
 * loads (a zero mask loads nothing, so the clamped address never faults),
 * so no tile needs a branch. Each input column's B^T combination over the
 * tile's 4 rows is shared by the two tiles that read it. */
KERNEL void
in_segment (float *v0, size_t vstride, const float *img,
    const SimclrConvShape *s, int th, int tw0, int n, int i0, int i1)
{
  const int C = s->C, W = s->W;
  const float *row[4];
  __mmask16 rm[4];
  for (int i = 0; i < 4; i++) {
    int ih = 2 * th - 1 + i;
    rm[i] = ih >= 0 && ih < s->H ? 0xffff : 0;
    row[i] = img + (size_t) (ih < 0 ? 0 : ih >= s->H ? s->H - 1 : ih) * W *
        C;
  }
  /* the rows the next tile row reads first (2 th + 3, 2 th + 4; into the
   * next image past the last tile row), prefetched as in in_segment43 */
  uintptr_t pf = (uintptr_t) (img + (size_t) (2 * th + 3) * W * C);
  const size_t prow = sizeof (float) * W * C;
  for (int c = 0; c < C; c += 16) {
    /* x[j][i]: (B^T d) row i of input column iw0 + j */
    __m512 x[4][4];
    int iw0 = 2 * tw0 - 1;
#pragma GCC unroll 2
    for (int j = 0; j < 2; j++) {
      int iw = iw0 + j;
      __mmask16 cm = iw >= 0 && iw < W ? 0xffff : 0;
      size_t off = (size_t) (iw < 0 ? 0 : iw >= W ? W - 1 : iw) * C + c;
      in_column (x[j], row, rm, cm, off);
    }
    float *v = v0 + c;
    for (int t = 0; t < n; t++, v += C) {
#pragma GCC unroll 2
      for (int j = 2; j < 4; j++) {
        int iw = iw0 + 2 * t + j;
        __mmask16 cm = iw < W ? 0xffff : 0;
        size_t off = (size_t) (iw >= W ? W - 1 : iw) * C + c;
        _mm_prefetch ((const char *) (pf + off * sizeof (float)),
            _MM_HINT_T0);
        _mm_prefetch ((const char *) (pf + prow + off * sizeof (float)),
            _MM_HINT_T0);
        in_column (x[j], row, rm, cm, off);
      }
      /* ((B^T d) B) row i: point e = 4 i + k, stored at 4 (i - i0) + k
       * for the rows [i0, i1) asked for (the forward: all) */
#pragma GCC unroll 4
      for (int i = 0; i < 4; i++) {
        if (i < i0 || i >= i1)
          continue;
        float *vi = v + (size_t) (4 * (i - i0)) * vstride;
        _mm512_storeu_ps (vi, _mm512_sub_ps (x[0][i], x[2][i]));
        _mm512_storeu_ps (vi + vstride, _mm512_add_ps (x[1][i], x[2][i]));
        _mm512_storeu_ps (vi + 2 * vstride, _mm512_sub_ps (x[2][i],
                x[1][i]));
        _mm512_storeu_ps (vi + 3 * vstride, _mm512_sub_ps (x[1][i],
                x[3][i]));
      }
#pragma GCC unroll 4
      for (int i = 0; i < 4; i++) {
        x[0][i] = x[2][i];
        x[1][i] = x[3][i];
      }
    }
  }
}

/* Output transform of one tile row segment (as in_segment): the 2x2
 * outputs of tiles tw0 .. tw0+n-1, = + bias or += out; a second row or
 * column past an odd edge is masked out. */
KERNEL void
out_segment (float *o_img, const float *m0, size_t mstride,
    const float *bias, int accumulate, const SimclrConvShape *s, int th,
    int tw0, int n)
{
  const int OC = s->OC, OW = s->OW;
  const int oh = 2 * th;
  const int nh = s->OH - oh < 2 ? 1 : 2;
  for (int c = 0; c < OC; c += 16) {
    __m512 bv = bias && !accumulate ? _mm512_loadu_ps (bias + c) :
        _mm512_setzero_ps ();
    const float *m = m0 + c;
    for (int t = 0; t < n; t++, m += OC) {
      int ow = 2 * (tw0 + t);
      __mmask16 cm = ow + 1 < OW ? 0xffff : 0;
      __m512 y[2][4];
#pragma GCC unroll 4
      for (int j = 0; j < 4; j++) {
        __m512 a0 = _mm512_loadu_ps (m + (size_t) j * mstride);
        __m512 a1 = _mm512_loadu_ps (m + (size_t) (4 + j) * mstride);
        __m512 a2 = _mm512_loadu_ps (m + (size_t) (8 + j) * mstride);
        __m512 a3 = _mm512_loadu_ps (m + (size_t) (12 + j) * mstride);
        y[0][j] = _mm512_add_ps (_mm512_add_ps (a0, a1), a2);
        y[1][j] = _mm512_sub_ps (_mm512_sub_ps (a1, a2), a3);
      }
      for (int i = 0; i < nh; i++) {
        __m512 r0 = _mm512_add_ps (_mm512_add_ps (y[i][0], y[i][1]),
            y[i][2]);
        __m512 r1 = _mm512_sub_ps (_mm512_sub_ps (y[i][1], y[i][2]),
            y[i][3]);
        float *dst = o_img + ((size_t) (oh + i) * OW + ow) * OC + c;
        /* the next tile row's output, 2 rows down, prefetched for writing */
        uintptr_t pf = (uintptr_t) dst + sizeof (float) * 2 * OW * OC;
        __builtin_prefetch ((const void *) pf, 1, 3);
        __builtin_prefetch ((const void *) (pf + sizeof (float) * OC), 1, 3);
        if (accumulate) {
          r0 = _mm512_add_ps (r0, _mm512_loadu_ps (dst));
          r1 = _mm512_add_ps (r1, _mm512_maskz_loadu_ps (cm, dst + OC));
        } else {
          r0 = _mm512_add_ps (r0, bv);
          r1 = _mm512_add_ps (r1, bv);
        }
        _mm512_storeu_ps (dst, r0);
        _mm512_mask_storeu_ps (dst + OC, cm, r1);
      }
    }
  }
}

/* One block of nt tiles from tile t0 of images [b0, ...), walked as
 * segments of tile rows. */
KERNEL void
avx512_block (const int NV, const int R, float *out, const float *inp,
    const float *u, const float *bias, int accumulate,
    const SimclrConvShape *s, int b0, long t0, int nt, float *V, float *M,
    size_t rows)
{
  const int C = s->C, OC = s->OC;
  const size_t vstride = wino_pstride (rows, C),
      mstride = wino_pstride (rows, OC);
  int TH, TW;
  wino_tiles (s, &TH, &TW);
  const long per_img = (long) TH * TW;
  /* 1. input transform */
  for (int t = 0; t < nt;) {
    long g = t0 + t;
    int b = b0 + (int) (g / per_img), r = (int) (g % per_img);
    int th = r / TW, tw = r % TW;
    int n = TW - tw < nt - t ? TW - tw : nt - t;
    in_segment (V + (size_t) t * C, vstride, inp + (size_t) b * s->H * s->W *
        C, s, th, tw, n, 0, 4);
    t += n;
  }
  /* rows the last register block reads past nt: zeros, not stale values
   * (a stale NaN or denormal would only slow down dropped rows, but keep
   * the arithmetic clean) */
  int ntr = (nt + R - 1) / R * R;
  if (ntr > nt)
    for (int e = 0; e < 16; e++)
      memset (V + (size_t) e * vstride + (size_t) nt * C, 0,
          sizeof (float) * (ntr - nt) * C);
  /* 2. the 16 GEMMs */
  for (int e = 0; e < 16; e++) {
    const float *ue = u + (size_t) e * C * OC;
    const float *ve = V + (size_t) e * vstride;
    float *me = M + (size_t) e * mstride;
    for (int r0 = 0; r0 < nt; r0 += R)
      for (int o0 = 0; o0 < OC; o0 += 16 * NV)
        gemm_block (NV, R, me + (size_t) r0 * OC, ve + (size_t) r0 * C, ue,
            C, OC, o0);
  }
  /* 3. output transform */
  for (int t = 0; t < nt;) {
    long g = t0 + t;
    int b = b0 + (int) (g / per_img), r = (int) (g % per_img);
    int th = r / TW, tw = r % TW;
    int n = TW - tw < nt - t ? TW - tw : nt - t;
    out_segment (out + (size_t) b * s->OH * s->OW * OC, M + (size_t) t * OC,
        mstride, bias, accumulate, s, th, tw, n);
    t += n;
  }
}

KERNEL void
avx512_blocks (const int NV, const int R, float *out, const float *inp,
    const float *u, const float *bias, int accumulate,
    const SimclrConvShape *s, int b0, int b1, float *work)
{
  const int T = simclr_winograd_block_tiles (&simclr_winograd_avx512, s);
  const size_t rows = (size_t) T + WINO_ROW_PAD;
  float *V = work, *M = work + 16 * wino_pstride (rows, s->C);
  int TH, TW;
  wino_tiles (s, &TH, &TW);
  const long ntiles = (long) (b1 - b0) * TH * TW;
  for (long t0 = 0; t0 < ntiles; t0 += T) {
    int nt = ntiles - t0 < T ? (int) (ntiles - t0) : T;
    avx512_block (NV, R, out, inp, u, bias, accumulate, s, b0, t0, nt, V, M,
        rows);
  }
}

__attribute__ ((target (AVX512))) static void
wino_avx512_forward (float *out, const float *inp, const float *u,
    const float *bias, int accumulate, const SimclrConvShape *s, int b0,
    int b1, float *work)
{
  /* R*NV accumulators, NV weights and a broadcast within 32 registers */
  if (s->OC % 64 == 0)
    avx512_blocks (4, 6, out, inp, u, bias, accumulate, s, b0, b1, work);
  else if (s->OC % 32 == 0)
    avx512_blocks (2, 12, out, inp, u, bias, accumulate, s, b0, b1, work);
  else
    avx512_blocks (1, 14, out, inp, u, bias, accumulate, s, b0, b1, work);
}

/* Shapes routed here (conv.c): 3x3 s1 p1 with C and OC multiples of 16,
 * at least 64, and C*OC at most 128*128. From `bench-conv --winograd`
 * (AMD EPYC Zen 5, one thread, thread CPU time, best of 7, on a shared
 * machine; direct:Winograd time forward / input gradient, two runs):
 *   w0.25 28x28 16->16  b512  0.69 / 0.65                      not taken
 *   w0.25 14x14 32->32  b512  1.11 / 1.07, 1.00 / 0.97         not taken
 *   w0.25 7x7 64->64    b512  1.04 / 1.04, 1.00 / 1.02         taken
 *   w0.25 4x4 128->128  b512  1.58 / 1.59, 1.28 / 1.26         taken
 *                       b256  1.35 / 1.35, 1.07 / 1.06
 *   w1 28x28 64->64     b32   1.15 / 1.15, 1.13 / 1.18         taken
 *   w1 14x14 128->128   b32   1.45 / 1.50, 1.38 / 1.37         taken
 *   w1 7x7 256->256     b32   1.12 / 1.17, 1.04 / 1.03 (b16 0.73) not taken
 *   w1 4x4 512->512     b32   0.54 / 0.51, 0.82 / 0.80         not taken
 * In the training step (bench-train --profile --units, one thread, CPU
 * time) layer4's three 3x3 s1 convolutions went from 50-53 to 30-34 ms
 * forward and 49-51 to 30-34 ms input gradient, layer3's stayed within
 * 0.89-1.01 of direct. At 16 channels the tile transforms cost as much as
 * the multiplications saved (the direct kernel runs at 80 % of the FMA
 * peak there); at 32 the gain is within noise (and routing it moved
 * test-mpi-equivalence's 20-step free-running trajectory past its loss
 * tolerance by a ReLU flip: 1.9e-4, main's own figure under
 * SIMCLR_CPU=avx2). From 256*256 up the transformed weight (16 C OC
 * floats, 4 MiB and more) no longer stays in L2 across blocks of tiles. */
static int
wino_avx512_ok (const SimclrConvShape *s)
{
  return simclr_winograd_shape_ok (s) && s->C % 16 == 0 &&
      s->OC % 16 == 0 && s->C >= 64 && s->OC >= 64 &&
      (size_t) s->C * s->OC <= 128 * 128;
}

const SimclrWinogradKernels simclr_winograd_avx512 = {
  .m = 2,
  .ok = wino_avx512_ok,
  .forward = wino_avx512_forward,
};
/* ---------------------------------------------------------------------------
 * F(4x4, 3x3), AVX-512: the same blocks with 6x6 tiles and 36 points, 16
 * channels per vector, the GEMMs on gemm_block. */

/* B^T of 6 vectors (bt6 above, the same operations). */
KERNEL void
bt6_ps (__m512 r[6], __m512 d0, __m512 d1, __m512 d2, __m512 d3,
    __m512 d4, __m512 d5)
{
  const __m512 two = _mm512_set1_ps (2.0f), four = _mm512_set1_ps (4.0f),
      five = _mm512_set1_ps (5.0f);
  __m512 t1 = _mm512_add_ps (d1, d2), t2 = _mm512_add_ps (d3, d4);
  __m512 t3 = _mm512_sub_ps (d1, d2), t4 = _mm512_sub_ps (d4, d3);
  __m512 t5 = _mm512_sub_ps (d4, d2), t6 = _mm512_sub_ps (d3, d1);
  r[0] = _mm512_fmadd_ps (four, d0, _mm512_fnmadd_ps (five, d2, d4));
  r[1] = _mm512_fnmadd_ps (four, t1, t2);
  r[2] = _mm512_fmadd_ps (four, t3, t4);
  r[3] = _mm512_fmadd_ps (two, t6, t5);
  r[4] = _mm512_fnmadd_ps (two, t6, t5);
  r[5] = _mm512_fmadd_ps (four, d1, _mm512_fnmadd_ps (five, d3, d5));
}

/* A^T of 6 vectors (at6 above). */
KERNEL void
at6_ps (__m512 y[4], __m512 m0, __m512 m1, __m512 m2, __m512 m3,
    __m512 m4, __m512 m5)
{
  const __m512 two = _mm512_set1_ps (2.0f), four = _mm512_set1_ps (4.0f),
      eight = _mm512_set1_ps (8.0f);
  __m512 a = _mm512_add_ps (m1, m2), b = _mm512_sub_ps (m1, m2);
  __m512 c = _mm512_add_ps (m3, m4), d = _mm512_sub_ps (m3, m4);
  y[0] = _mm512_add_ps (_mm512_add_ps (m0, a), c);
  y[1] = _mm512_fmadd_ps (two, d, b);
  y[2] = _mm512_fmadd_ps (four, c, a);
  y[3] = _mm512_add_ps (_mm512_fmadd_ps (eight, d, b), m5);
}

/* Input transform of one tile row segment (as in_segment): tiles tw0 ..
 * tw0+n-1 of tile row th. Per 16 channels, the B^T combination of each
 * input column over the tile's 6 rows goes to xb (column-major, 6 columns
 * of 6 vectors), computed once per column: a tile's last 2 columns are the
 * next tile's first 2. */
KERNEL void
in_segment43 (float *v0, size_t vstride, const float *img,
    const SimclrConvShape *s, int th, int tw0, int n, int i0, int i1)
{
  const int C = s->C, W = s->W;
  const float *row[6];
  __mmask16 rm[6];
  for (int i = 0; i < 6; i++) {
    int ih = 4 * th - 1 + i;
    rm[i] = ih >= 0 && ih < s->H ? 0xffff : 0;
    row[i] = img + (size_t) (ih < 0 ? 0 : ih >= s->H ? s->H - 1 : ih) * W *
        C;
  }
  /* the input rows the next tile row reads first (rows 4 th + 5 ... 4 th
   * + 8, into the next image past the last tile row): prefetched as this
   * row's columns are read, so the next segment finds them in cache (an
   * address past the batch is only prefetched, never read) */
  uintptr_t pf = (uintptr_t) (img + (size_t) (4 * th + 5) * W * C);
  const size_t prow = sizeof (float) * W * C;
  for (int c = 0; c < C; c += 16) {
    __m512 xb[6][6];            /* [column][row of B^T d] */
    int iw0 = 4 * tw0 - 1;
    float *v = v0 + c;
    for (int t = 0; t < n; t++, v += C) {
      for (int j = t == 0 ? 0 : 2; j < 6; j++) {
        int iw = iw0 + 4 * t + j;
        __mmask16 cm = iw >= 0 && iw < W ? 0xffff : 0;
        size_t off = (size_t) (iw < 0 ? 0 : iw >= W ? W - 1 : iw) * C + c;
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++)
          _mm_prefetch ((const char *) (pf + k * prow + off * sizeof (float)),
              _MM_HINT_T0);
        bt6_ps (xb[j],
            _mm512_maskz_loadu_ps (rm[0] & cm, row[0] + off),
            _mm512_maskz_loadu_ps (rm[1] & cm, row[1] + off),
            _mm512_maskz_loadu_ps (rm[2] & cm, row[2] + off),
            _mm512_maskz_loadu_ps (rm[3] & cm, row[3] + off),
            _mm512_maskz_loadu_ps (rm[4] & cm, row[4] + off),
            _mm512_maskz_loadu_ps (rm[5] & cm, row[5] + off));
      }
      /* ((B^T d) B) row i: point e = 6 i + k, stored at 6 (i - i0) + k
       * for the rows [i0, i1) asked for (the forward: all) */
#pragma GCC unroll 6
      for (int i = 0; i < 6; i++) {
        if (i < i0 || i >= i1)
          continue;
        __m512 r[6];
        bt6_ps (r, xb[0][i], xb[1][i], xb[2][i], xb[3][i], xb[4][i],
            xb[5][i]);
        float *vi = v + (size_t) (6 * (i - i0)) * vstride;
#pragma GCC unroll 6
        for (int k = 0; k < 6; k++)
          _mm512_storeu_ps (vi + k * vstride, r[k]);
      }
#pragma GCC unroll 6
      for (int i = 0; i < 6; i++) {
        xb[0][i] = xb[4][i];
        xb[1][i] = xb[5][i];
      }
    }
  }
}

/* Output transform of one tile row segment (as out_segment): the 4x4
 * outputs of tiles tw0 .. tw0+n-1, = + bias or += out, clipped at the
 * image's bottom and right edges. */
KERNEL void
out_segment43 (float *o_img, const float *m0, size_t mstride,
    const float *bias, int accumulate, const SimclrConvShape *s, int th,
    int tw0, int n)
{
  const int OC = s->OC, OW = s->OW;
  const int oh = 4 * th;
  const int nh = s->OH - oh < 4 ? s->OH - oh : 4;
  for (int c = 0; c < OC; c += 16) {
    __m512 bv = bias && !accumulate ? _mm512_loadu_ps (bias + c) :
        _mm512_setzero_ps ();
    const float *m = m0 + c;
    for (int t = 0; t < n; t++, m += OC) {
      int ow = 4 * (tw0 + t);
      int nw = OW - ow < 4 ? OW - ow : 4;
      __m512 y[6][4];           /* [column][row of A^T m] */
#pragma GCC unroll 6
      for (int j = 0; j < 6; j++)
        at6_ps (y[j], _mm512_loadu_ps (m + (size_t) j * mstride),
            _mm512_loadu_ps (m + (size_t) (6 + j) * mstride),
            _mm512_loadu_ps (m + (size_t) (12 + j) * mstride),
            _mm512_loadu_ps (m + (size_t) (18 + j) * mstride),
            _mm512_loadu_ps (m + (size_t) (24 + j) * mstride),
            _mm512_loadu_ps (m + (size_t) (30 + j) * mstride));
      for (int i = 0; i < nh; i++) {
        __m512 r[4];
        at6_ps (r, y[0][i], y[1][i], y[2][i], y[3][i], y[4][i], y[5][i]);
        float *dst = o_img + ((size_t) (oh + i) * OW + ow) * OC + c;
        /* the next tile row's output (4 rows down, into the next image
         * past the last row): prefetched for writing */
        uintptr_t pf = (uintptr_t) dst + sizeof (float) * 4 * OW * OC;
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
          __builtin_prefetch ((const void *) (pf + sizeof (float) * j * OC),
              1, 3);
        if (nw == 4) {
#pragma GCC unroll 4
          for (int j = 0; j < 4; j++) {
            __m512 a = accumulate ? _mm512_loadu_ps (dst + j * OC) : bv;
            _mm512_storeu_ps (dst + j * OC, _mm512_add_ps (r[j], a));
          }
        } else {
          for (int j = 0; j < nw; j++) {
            __m512 a = accumulate ? _mm512_loadu_ps (dst + j * OC) : bv;
            _mm512_storeu_ps (dst + j * OC, _mm512_add_ps (r[j], a));
          }
        }
      }
    }
  }
}

KERNEL void
avx512_block43 (const int NV, const int R, float *out, const float *inp,
    const float *u, const float *bias, int accumulate,
    const SimclrConvShape *s, int b0, long t0, int nt, float *V, float *M,
    size_t rows)
{
  const int C = s->C, OC = s->OC;
  const size_t vstride = wino_pstride (rows, C),
      mstride = wino_pstride (rows, OC);
  int TH, TW;
  wino43_tiles (s, &TH, &TW);
  const long per_img = (long) TH * TW;
  for (int t = 0; t < nt;) {
    long g = t0 + t;
    int b = b0 + (int) (g / per_img), r = (int) (g % per_img);
    int th = r / TW, tw = r % TW;
    int n = TW - tw < nt - t ? TW - tw : nt - t;
    in_segment43 (V + (size_t) t * C, vstride, inp + (size_t) b * s->H *
        s->W * C, s, th, tw, n, 0, 6);
    t += n;
  }
  int ntr = (nt + R - 1) / R * R;
  if (ntr > nt)
    for (int e = 0; e < 36; e++)
      memset (V + (size_t) e * vstride + (size_t) nt * C, 0,
          sizeof (float) * (ntr - nt) * C);
  for (int e = 0; e < 36; e++) {
    const float *ue = u + (size_t) e * C * OC;
    const float *ve = V + (size_t) e * vstride;
    float *me = M + (size_t) e * mstride;
    for (int r0 = 0; r0 < nt; r0 += R)
      for (int o0 = 0; o0 < OC; o0 += 16 * NV)
        gemm_block (NV, R, me + (size_t) r0 * OC, ve + (size_t) r0 * C, ue,
            C, OC, o0);
  }
  for (int t = 0; t < nt;) {
    long g = t0 + t;
    int b = b0 + (int) (g / per_img), r = (int) (g % per_img);
    int th = r / TW, tw = r % TW;
    int n = TW - tw < nt - t ? TW - tw : nt - t;
    out_segment43 (out + (size_t) b * s->OH * s->OW * OC, M + (size_t) t *
        OC, mstride, bias, accumulate, s, th, tw, n);
    t += n;
  }
}

KERNEL void
avx512_blocks43 (const int NV, const int R, float *out, const float *inp,
    const float *u, const float *bias, int accumulate,
    const SimclrConvShape *s, int b0, int b1, float *work)
{
  const int T = simclr_winograd_block_tiles (&simclr_winograd43_avx512, s);
  const size_t rows = (size_t) T + WINO_ROW_PAD;
  float *V = work, *M = work + 36 * wino_pstride (rows, s->C);
  int TH, TW;
  wino43_tiles (s, &TH, &TW);
  const long ntiles = (long) (b1 - b0) * TH * TW;
  for (long t0 = 0; t0 < ntiles; t0 += T) {
    int nt = ntiles - t0 < T ? (int) (ntiles - t0) : T;
    avx512_block43 (NV, R, out, inp, u, bias, accumulate, s, b0, t0, nt, V,
        M, rows);
  }
}

__attribute__ ((target (AVX512))) static void
wino43_avx512_forward (float *out, const float *inp, const float *u,
    const float *bias, int accumulate, const SimclrConvShape *s, int b0,
    int b1, float *work)
{
  if (s->OC % 64 == 0)
    avx512_blocks43 (4, 6, out, inp, u, bias, accumulate, s, b0, b1, work);
  else if (s->OC % 32 == 0)
    avx512_blocks43 (2, 12, out, inp, u, bias, accumulate, s, b0, b1, work);
  else
    avx512_blocks43 (1, 14, out, inp, u, bias, accumulate, s, b0, b1, work);
}

/* Shapes routed here (conv.c, before F(2x2, 3x3)): 3x3 s1 p1 with C and
 * OC multiples of 16 and C*OC at most 128*128. At 128*128 the transformed
 * weight (2.3 MiB) outgrows L2; what had made F(2x2, 3x3) win there was
 * the weight transform (6 ms a call, cache-set conflicts, see weight43)
 * and the blocks' points 4 KiB apart (see wino_pstride), not the GEMMs.
 * `bench-conv --tiles`, one thread, thread CPU time, best of 5-7, load
 * 5-7 (direct:F(2x2, 3x3) / direct:F(4x4, 3x3) time):
 *   w0.25 4x4 128->128  b512  1.70-1.88 / 2.64-3.00
 *   w1 14x14 128->128   b64   2.18-2.23 / 2.59-2.98; b32 2.07-2.12 / 2.44-2.68
 *   w1 7x7 256->256     b64   1.77-1.81 / 2.02-2.26 (not taken: unchecked
 *                             against the equivalence tests)
 *   w1 4x4 512->512     b32   0.63 / 0.64-0.72 (not taken)
 * Past 64*64 pairs only on maps where F(4x4, 3x3) multiplies less than
 * F(2x2, 3x3) (wino43_fewer_points: not 2x2, 5x5, 6x6), where the GEMMs
 * dominate; on a 2x2 map (36 points against 16) it routed test-replica's
 * 12x12 model's layer4 and moved its loss 2.9e-5 from one trainer's
 * (tolerance 1e-5). Earlier measurements of 16-64 channels: see the
 * commit and STATUS.md. */
static int
wino43_avx512_ok (const SimclrConvShape *s)
{
  return simclr_winograd_shape_ok (s) && s->C % 16 == 0 &&
      s->OC % 16 == 0 && ((size_t) s->C * s->OC <= 64 * 64 ||
      ((size_t) s->C * s->OC <= 128 * 128 && wino43_fewer_points (s)));
}

const SimclrWinogradKernels simclr_winograd43_avx512 = {
  .m = 4,
  .ok = wino43_avx512_ok,
  .forward = wino43_avx512_forward,
};
/* ---------------------------------------------------------------------------
 * Weight gradient, AVX-512: blocks of T tiles; per block the input tiles
 * through in_segment / in_segment43 (the points of the worker's rows only)
 * and the output-gradient tiles through dy_segment / dy_segment43 into V
 * (points, T, C) and Z (points, T, OC), then per point du (OC, C) += Z^T V:
 * R output channels x 16*NV input channels of du held in R*NV registers
 * over the block's tiles, one broadcast of Z against NV vectors of V per
 * tile. */

/* du rows o0 .. o0+R-1, channels c0 .. c0+16*NV-1 (rows C floats apart)
 * += sum over nt tiles of z[t][o] v[t][c]; z rows OC, v rows C apart. */
KERNEL void
dw_gemm_block (const int NV, const int R, float *du, const float *z,
    const float *v, int nt, int C, int OC, int o0, int c0)
{
  __m512 acc[MAX_R][MAX_NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int k = 0; k < NV; k++)
      acc[r][k] = _mm512_loadu_ps (du + (size_t) (o0 + r) * C + c0 + 16 * k);
  const float *zt = z + o0, *vt = v + c0;
  for (int t = 0; t < nt; t++, zt += OC, vt += C) {
    __m512 vv[MAX_NV];
#pragma GCC unroll 4
    for (int k = 0; k < NV; k++)
      vv[k] = _mm512_loadu_ps (vt + 16 * k);
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) {
      __m512 x = _mm512_set1_ps (zt[r]);
#pragma GCC unroll 4
      for (int k = 0; k < NV; k++)
        acc[r][k] = _mm512_fmadd_ps (x, vv[k], acc[r][k]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int k = 0; k < NV; k++)
      _mm512_storeu_ps (du + (size_t) (o0 + r) * C + c0 + 16 * k, acc[r][k]);
}

/* Z = A dy A^T of the 2x2 output-gradient tiles tw0 .. tw0+n-1 of tile row
 * th (a second row or column past an odd edge reads zeros through masked
 * loads), points of rows [i0, i1) at 4 (i - i0) + k, rows OC apart, points
 * zstride apart. The next tile row's dy rows are prefetched. */
KERNEL void
dy_segment (float *z0, size_t zstride, const float *dimg,
    const SimclrConvShape *s, int th, int tw0, int n, int i0, int i1)
{
  const int OC = s->OC, OW = s->OW;
  const int oh = 2 * th;
  const __mmask16 m1 = oh + 1 < s->OH ? 0xffff : 0;
  const float *row0 = dimg + (size_t) oh * OW * OC;
  const float *row1 = m1 ? row0 + (size_t) OW * OC : row0;
  const uintptr_t pf = (uintptr_t) (row0 + (size_t) 2 * OW * OC);
  const size_t prow = sizeof (float) * OW * OC;
  const __m512 zero = _mm512_setzero_ps ();
  for (int c = 0; c < OC; c += 16) {
    float *z = z0 + c;
    for (int t = 0; t < n; t++, z += OC) {
      int ow = 2 * (tw0 + t);
      __mmask16 cm = ow + 1 < OW ? 0xffff : 0;
      size_t off = (size_t) ow * OC + c;
      _mm_prefetch ((const char *) (pf + off * sizeof (float)), _MM_HINT_T0);
      _mm_prefetch ((const char *) (pf + prow + off * sizeof (float)),
          _MM_HINT_T0);
      __m512 y00 = _mm512_loadu_ps (row0 + off);
      __m512 y01 = _mm512_maskz_loadu_ps (cm, row0 + off + OC);
      __m512 y10 = _mm512_maskz_loadu_ps (m1, row1 + off);
      __m512 y11 = _mm512_maskz_loadu_ps (m1 & cm, row1 + off + OC);
      /* A dy: column j's 4 values, [row][column] */
      __m512 q[4][2] = {
        {y00, y01},
        {_mm512_add_ps (y00, y10), _mm512_add_ps (y01, y11)},
        {_mm512_sub_ps (y00, y10), _mm512_sub_ps (y01, y11)},
        {_mm512_sub_ps (zero, y10), _mm512_sub_ps (zero, y11)},
      };
#pragma GCC unroll 4
      for (int i = 0; i < 4; i++) {
        if (i < i0 || i >= i1)
          continue;
        float *zi = z + (size_t) (4 * (i - i0)) * zstride;
        _mm512_storeu_ps (zi, q[i][0]);
        _mm512_storeu_ps (zi + zstride, _mm512_add_ps (q[i][0], q[i][1]));
        _mm512_storeu_ps (zi + 2 * zstride, _mm512_sub_ps (q[i][0],
                q[i][1]));
        _mm512_storeu_ps (zi + 3 * zstride, _mm512_sub_ps (zero, q[i][1]));
      }
    }
  }
}

/* A of 4 vectors (a6 above, the same operations). */
KERNEL void
a6_ps (__m512 z[6], __m512 y0, __m512 y1, __m512 y2, __m512 y3)
{
  const __m512 four = _mm512_set1_ps (4.0f);
  __m512 s02 = _mm512_add_ps (y0, y2), s13 = _mm512_add_ps (y1, y3);
  __m512 t02 = _mm512_fmadd_ps (four, y2, y0);
  __m512 h13 = _mm512_fmadd_ps (four, y3, y1);
  __m512 t13 = _mm512_add_ps (h13, h13);
  z[0] = y0;
  z[1] = _mm512_add_ps (s02, s13);
  z[2] = _mm512_sub_ps (s02, s13);
  z[3] = _mm512_add_ps (t02, t13);
  z[4] = _mm512_sub_ps (t02, t13);
  z[5] = y3;
}

/* dy_segment for 4x4 output-gradient tiles: rows and columns past the
 * output read zeros. */
KERNEL void
dy_segment43 (float *z0, size_t zstride, const float *dimg,
    const SimclrConvShape *s, int th, int tw0, int n, int i0, int i1)
{
  const int OC = s->OC, OW = s->OW;
  const int oh = 4 * th;
  const float *row[4];
  __mmask16 rm[4];
  for (int i = 0; i < 4; i++) {
    rm[i] = oh + i < s->OH ? 0xffff : 0;
    row[i] = dimg + (size_t) (oh + i < s->OH ? oh + i : oh) * OW * OC;
  }
  const uintptr_t pf = (uintptr_t) (dimg + (size_t) (oh + 4) * OW * OC);
  const size_t prow = sizeof (float) * OW * OC;
  for (int c = 0; c < OC; c += 16) {
    float *z = z0 + c;
    for (int t = 0; t < n; t++, z += OC) {
      int ow = 4 * (tw0 + t);
      __m512 q[4][6];           /* [column][row of A dy] */
#pragma GCC unroll 4
      for (int j = 0; j < 4; j++) {
        __mmask16 cm = ow + j < OW ? 0xffff : 0;
        size_t off = (size_t) (ow + j < OW ? ow + j : ow) * OC + c;
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++)
          _mm_prefetch ((const char *) (pf + k * prow + off * sizeof (float)),
              _MM_HINT_T0);
        a6_ps (q[j], _mm512_maskz_loadu_ps (rm[0] & cm, row[0] + off),
            _mm512_maskz_loadu_ps (rm[1] & cm, row[1] + off),
            _mm512_maskz_loadu_ps (rm[2] & cm, row[2] + off),
            _mm512_maskz_loadu_ps (rm[3] & cm, row[3] + off));
      }
#pragma GCC unroll 6
      for (int i = 0; i < 6; i++) {
        if (i < i0 || i >= i1)
          continue;
        __m512 r[6];
        a6_ps (r, q[0][i], q[1][i], q[2][i], q[3][i]);
        float *zi = z + (size_t) (6 * (i - i0)) * zstride;
#pragma GCC unroll 6
        for (int k = 0; k < 6; k++)
          _mm512_storeu_ps (zi + k * zstride, r[k]);
      }
    }
  }
}

KERNEL void
dw_avx512_blocks (const int M, const int NV, const int R, float *du,
    const float *inp, const float *dout, const SimclrConvShape *s, int b0,
    int b1, int r0, int r1, float *work)
{
  const int C = s->C, OC = s->OC, a = M + 2;
  const int T = simclr_winograd_dw_block_tiles (M == 4 ?
      &simclr_winograd43_dw_avx512 : &simclr_winograd_dw_avx512, s);
  const int pw = (r1 - r0) * a;
  const size_t vstride = dw_stride (T, C), zstride = dw_stride (T, OC);
  float *V = work, *Z = work + (size_t) pw * vstride;
  const int TH = (s->OH + M - 1) / M, TW = (s->OW + M - 1) / M;
  const long per_img = (long) TH * TW;
  const long ntiles = (long) (b1 - b0) * per_img;
  for (long t0 = 0; t0 < ntiles; t0 += T) {
    int nt = ntiles - t0 < T ? (int) (ntiles - t0) : T;
    for (int t = 0; t < nt;) {
      long g = t0 + t;
      int b = b0 + (int) (g / per_img), r = (int) (g % per_img);
      int th = r / TW, tw = r % TW;
      int n = TW - tw < nt - t ? TW - tw : nt - t;
      const float *img = inp + (size_t) b * s->H * s->W * C;
      const float *dimg = dout + (size_t) b * s->OH * s->OW * OC;
      if (M == 4) {
        in_segment43 (V + (size_t) t * C, vstride, img, s, th, tw, n, r0, r1);
        dy_segment43 (Z + (size_t) t * OC, zstride, dimg, s, th, tw, n, r0,
            r1);
      } else {
        in_segment (V + (size_t) t * C, vstride, img, s, th, tw, n, r0, r1);
        dy_segment (Z + (size_t) t * OC, zstride, dimg, s, th, tw, n, r0,
            r1);
      }
      t += n;
    }
    for (int e = 0; e < pw; e++) {
      float *due = du + (size_t) (r0 * a + e) * OC * C;
      const float *ve = V + (size_t) e * vstride;
      const float *ze = Z + (size_t) e * zstride;
      for (int o0 = 0; o0 < OC; o0 += R)
        for (int c0 = 0; c0 < C; c0 += 16 * NV)
          dw_gemm_block (NV, R, due, ze, ve, nt, C, OC, o0, c0);
    }
  }
}

/* R*NV = 16 accumulators; R divides OC (a multiple of 16). */
__attribute__ ((target (AVX512))) static void
wino_dw_avx512 (float *du, const float *inp, const float *dout,
    const SimclrConvShape *s, int b0, int b1, int r0, int r1, float *work)
{
  if (s->C % 64 == 0)
    dw_avx512_blocks (2, 4, 4, du, inp, dout, s, b0, b1, r0, r1, work);
  else if (s->C % 32 == 0)
    dw_avx512_blocks (2, 2, 8, du, inp, dout, s, b0, b1, r0, r1, work);
  else
    dw_avx512_blocks (2, 1, 16, du, inp, dout, s, b0, b1, r0, r1, work);
}

__attribute__ ((target (AVX512))) static void
wino43_dw_avx512 (float *du, const float *inp, const float *dout,
    const SimclrConvShape *s, int b0, int b1, int r0, int r1, float *work)
{
  if (s->C % 64 == 0)
    dw_avx512_blocks (4, 4, 4, du, inp, dout, s, b0, b1, r0, r1, work);
  else if (s->C % 32 == 0)
    dw_avx512_blocks (4, 2, 8, du, inp, dout, s, b0, b1, r0, r1, work);
  else
    dw_avx512_blocks (4, 1, 16, du, inp, dout, s, b0, b1, r0, r1, work);
}

/* Shapes routed here (cpu.c tries F(4x4, 3x3) first): 3x3 s1 p1, C and
 * OC multiples of 16. From `bench-conv --tiles` (AMD EPYC Zen 5, one
 * thread, thread CPU time, best of 5, on a shared machine, load 4-6),
 * direct:Winograd time of the weight gradient, F(2x2, 3x3) / F(4x4, 3x3):
 *   w0.25 28x28 16->16   b512  0.91 / 1.41               F(4x4)
 *   w0.25 14x14 32->32   b512  1.32 / 1.56               F(4x4)
 *   w0.25 7x7 64->64     b512  1.16 / 1.71               F(4x4)
 *   w0.25 4x4 128->128   b512  1.21 / 1.59               F(4x4)
 *   w1 28x28 64->64      b32   1.73 / 2.21               F(4x4)
 *   w1 14x14 128->128    b32   1.45 / 1.25               F(2x2)
 *   w1 7x7 256->256      b32   0.89 / 0.74               neither
 *   w1 4x4 512->512      b32   0.50 / 0.35               neither
 * (batch 256: the same within 0.05.) du, P C OC floats, is reread every
 * block of tiles: past 128*128 channel pairs it no longer stays in L2. At
 * 128*128, F(4x4, 3x3)'s 36 points win on a 4x4 map (one tile covers it)
 * and lose on 14x14 (16x16 covered). */
static int
wino_dw_avx512_ok (const SimclrConvShape *s)
{
  return simclr_winograd_shape_ok (s) && s->C % 16 == 0 &&
      s->OC % 16 == 0 && (size_t) s->C * s->OC <= 128 * 128;
}

static int
wino43_dw_avx512_ok (const SimclrConvShape *s)
{
  return simclr_winograd_shape_ok (s) && s->C % 16 == 0 &&
      s->OC % 16 == 0 && ((size_t) s->C * s->OC <= 64 * 64 ||
      ((size_t) s->C * s->OC <= 128 * 128 && s->H <= 4 && s->W <= 4));
}

const SimclrWinogradKernels simclr_winograd_dw_avx512 = {
  .m = 2,
  .ok = wino_dw_avx512_ok,
  .dweight = wino_dw_avx512,
};

const SimclrWinogradKernels simclr_winograd43_dw_avx512 = {
  .m = 4,
  .ok = wino43_dw_avx512_ok,
  .dweight = wino43_dw_avx512,
};

/* ---------------------------------------------------------------------------
 * F(4x4, 3x3), AVX2 + FMA (CPUs without AVX-512): the same blocks and
 * arithmetic as the AVX-512 set, 8 channels per vector; taps outside the
 * image read wino_zeros instead of a masked load. */
#define AVX2 "avx2,fma,prfchw"
#define KERNEL2 __attribute__ ((target (AVX2), always_inline)) static inline

#define MAX_R2 6
#define MAX_NV2 2

/* gemm_block with 8-float vectors: m (R tiles, 8*NV channels from o0). */
KERNEL2 void
gemm_block2 (const int NV, const int R, float *m, const float *v,
    const float *u, int C, int OC, int o0)
{
  __m256 acc[MAX_R2][MAX_NV2];
#pragma GCC unroll 6
  for (int r = 0; r < R; r++)
#pragma GCC unroll 2
    for (int k = 0; k < NV; k++)
      acc[r][k] = _mm256_setzero_ps ();
  const float *w = u + o0;
  for (int c = 0; c < C; c++, w += OC) {
    __m256 wv[MAX_NV2];
#pragma GCC unroll 2
    for (int k = 0; k < NV; k++)
      wv[k] = _mm256_loadu_ps (w + 8 * k);
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
      __m256 x = _mm256_broadcast_ss (v + (size_t) r * C + c);
#pragma GCC unroll 2
      for (int k = 0; k < NV; k++)
        acc[r][k] = _mm256_fmadd_ps (x, wv[k], acc[r][k]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; r++)
#pragma GCC unroll 2
    for (int k = 0; k < NV; k++)
      _mm256_storeu_ps (m + (size_t) r * OC + o0 + 8 * k, acc[r][k]);
}

KERNEL2 void
bt6_ps2 (__m256 r[6], __m256 d0, __m256 d1, __m256 d2, __m256 d3,
    __m256 d4, __m256 d5)
{
  const __m256 two = _mm256_set1_ps (2.0f), four = _mm256_set1_ps (4.0f),
      five = _mm256_set1_ps (5.0f);
  __m256 t1 = _mm256_add_ps (d1, d2), t2 = _mm256_add_ps (d3, d4);
  __m256 t3 = _mm256_sub_ps (d1, d2), t4 = _mm256_sub_ps (d4, d3);
  __m256 t5 = _mm256_sub_ps (d4, d2), t6 = _mm256_sub_ps (d3, d1);
  r[0] = _mm256_fmadd_ps (four, d0, _mm256_fnmadd_ps (five, d2, d4));
  r[1] = _mm256_fnmadd_ps (four, t1, t2);
  r[2] = _mm256_fmadd_ps (four, t3, t4);
  r[3] = _mm256_fmadd_ps (two, t6, t5);
  r[4] = _mm256_fnmadd_ps (two, t6, t5);
  r[5] = _mm256_fmadd_ps (four, d1, _mm256_fnmadd_ps (five, d3, d5));
}

KERNEL2 void
at6_ps2 (__m256 y[4], __m256 m0, __m256 m1, __m256 m2, __m256 m3,
    __m256 m4, __m256 m5)
{
  const __m256 two = _mm256_set1_ps (2.0f), four = _mm256_set1_ps (4.0f),
      eight = _mm256_set1_ps (8.0f);
  __m256 a = _mm256_add_ps (m1, m2), b = _mm256_sub_ps (m1, m2);
  __m256 c = _mm256_add_ps (m3, m4), d = _mm256_sub_ps (m3, m4);
  y[0] = _mm256_add_ps (_mm256_add_ps (m0, a), c);
  y[1] = _mm256_fmadd_ps (two, d, b);
  y[2] = _mm256_fmadd_ps (four, c, a);
  y[3] = _mm256_add_ps (_mm256_fmadd_ps (eight, d, b), m5);
}

/* in_segment43 with 8-float vectors. */
KERNEL2 void
in_segment43_avx2 (float *v0, size_t vstride, const float *img,
    const SimclrConvShape *s, int th, int tw0, int n, int i0, int i1)
{
  const int C = s->C, W = s->W;
  const float *row[6];
  int rv[6];
  for (int i = 0; i < 6; i++) {
    int ih = 4 * th - 1 + i;
    rv[i] = ih >= 0 && ih < s->H;
    row[i] = img + (size_t) (rv[i] ? ih : 0) * W * C;
  }
  uintptr_t pf = (uintptr_t) (img + (size_t) (4 * th + 5) * W * C);
  const size_t prow = sizeof (float) * W * C;
  for (int c = 0; c < C; c += 8) {
    __m256 xb[6][6];
    int iw0 = 4 * tw0 - 1;
    float *v = v0 + c;
    for (int t = 0; t < n; t++, v += C) {
      for (int j = t == 0 ? 0 : 2; j < 6; j++) {
        int iw = iw0 + 4 * t + j;
        int cv = iw >= 0 && iw < W;
        size_t off = (size_t) (cv ? iw : 0) * C + c;
        const float *p[6];
        for (int i = 0; i < 6; i++)
          p[i] = rv[i] && cv ? row[i] + off : wino_zeros + c;
        if (cv && (c & 15) == 0)
          for (int k = 0; k < 4; k++)
            _mm_prefetch ((const char *) (pf + k * prow + off *
                    sizeof (float)), _MM_HINT_T0);
        bt6_ps2 (xb[j], _mm256_loadu_ps (p[0]), _mm256_loadu_ps (p[1]),
            _mm256_loadu_ps (p[2]), _mm256_loadu_ps (p[3]),
            _mm256_loadu_ps (p[4]), _mm256_loadu_ps (p[5]));
      }
#pragma GCC unroll 6
      for (int i = 0; i < 6; i++) {
        if (i < i0 || i >= i1)
          continue;
        __m256 r[6];
        bt6_ps2 (r, xb[0][i], xb[1][i], xb[2][i], xb[3][i], xb[4][i],
            xb[5][i]);
        float *vi = v + (size_t) (6 * (i - i0)) * vstride;
#pragma GCC unroll 6
        for (int k = 0; k < 6; k++)
          _mm256_storeu_ps (vi + k * vstride, r[k]);
      }
#pragma GCC unroll 6
      for (int i = 0; i < 6; i++) {
        xb[0][i] = xb[4][i];
        xb[1][i] = xb[5][i];
      }
    }
  }
}

/* out_segment43 with 8-float vectors. */
KERNEL2 void
out_segment43_avx2 (float *o_img, const float *m0, size_t mstride,
    const float *bias, int accumulate, const SimclrConvShape *s, int th,
    int tw0, int n)
{
  const int OC = s->OC, OW = s->OW;
  const int oh = 4 * th;
  const int nh = s->OH - oh < 4 ? s->OH - oh : 4;
  for (int c = 0; c < OC; c += 8) {
    __m256 bv = bias && !accumulate ? _mm256_loadu_ps (bias + c) :
        _mm256_setzero_ps ();
    const float *m = m0 + c;
    for (int t = 0; t < n; t++, m += OC) {
      int ow = 4 * (tw0 + t);
      int nw = OW - ow < 4 ? OW - ow : 4;
      __m256 y[6][4];
#pragma GCC unroll 6
      for (int j = 0; j < 6; j++)
        at6_ps2 (y[j], _mm256_loadu_ps (m + (size_t) j * mstride),
            _mm256_loadu_ps (m + (size_t) (6 + j) * mstride),
            _mm256_loadu_ps (m + (size_t) (12 + j) * mstride),
            _mm256_loadu_ps (m + (size_t) (18 + j) * mstride),
            _mm256_loadu_ps (m + (size_t) (24 + j) * mstride),
            _mm256_loadu_ps (m + (size_t) (30 + j) * mstride));
      for (int i = 0; i < nh; i++) {
        __m256 r[4];
        at6_ps2 (r, y[0][i], y[1][i], y[2][i], y[3][i], y[4][i], y[5][i]);
        float *dst = o_img + ((size_t) (oh + i) * OW + ow) * OC + c;
        if ((c & 15) == 0) {
          uintptr_t pf = (uintptr_t) dst + sizeof (float) * 4 * OW * OC;
          for (int j = 0; j < 4; j++)
            __builtin_prefetch ((const void *) (pf + sizeof (float) * j *
                    OC), 1, 3);
        }
        for (int j = 0; j < nw; j++) {
          __m256 a = accumulate ? _mm256_loadu_ps (dst + j * OC) : bv;
          _mm256_storeu_ps (dst + j * OC, _mm256_add_ps (r[j], a));
        }
      }
    }
  }
}

KERNEL2 void
avx2_block43 (float *out, const float *inp, const float *u,
    const float *bias, int accumulate, const SimclrConvShape *s, int b0,
    long t0, int nt, float *V, float *M, size_t rows)
{
  const int C = s->C, OC = s->OC, R = MAX_R2;
  const size_t vstride = wino_pstride (rows, C),
      mstride = wino_pstride (rows, OC);
  int TH, TW;
  wino43_tiles (s, &TH, &TW);
  const long per_img = (long) TH * TW;
  for (int t = 0; t < nt;) {
    long g = t0 + t;
    int b = b0 + (int) (g / per_img), r = (int) (g % per_img);
    int th = r / TW, tw = r % TW;
    int n = TW - tw < nt - t ? TW - tw : nt - t;
    in_segment43_avx2 (V + (size_t) t * C, vstride, inp + (size_t) b * s->H *
        s->W * C, s, th, tw, n, 0, 6);
    t += n;
  }
  int ntr = (nt + R - 1) / R * R;
  if (ntr > nt)
    for (int e = 0; e < 36; e++)
      memset (V + (size_t) e * vstride + (size_t) nt * C, 0,
          sizeof (float) * (ntr - nt) * C);
  for (int e = 0; e < 36; e++) {
    const float *ue = u + (size_t) e * C * OC;
    const float *ve = V + (size_t) e * vstride;
    float *me = M + (size_t) e * mstride;
    for (int r0 = 0; r0 < nt; r0 += R)
      for (int o0 = 0; o0 < OC; o0 += 16)
        gemm_block2 (2, R, me + (size_t) r0 * OC, ve + (size_t) r0 * C, ue,
            C, OC, o0);
  }
  for (int t = 0; t < nt;) {
    long g = t0 + t;
    int b = b0 + (int) (g / per_img), r = (int) (g % per_img);
    int th = r / TW, tw = r % TW;
    int n = TW - tw < nt - t ? TW - tw : nt - t;
    out_segment43_avx2 (out + (size_t) b * s->OH * s->OW * OC, M + (size_t)
        t * OC, mstride, bias, accumulate, s, th, tw, n);
    t += n;
  }
}

__attribute__ ((target (AVX2))) static void
wino43_avx2_forward (float *out, const float *inp, const float *u,
    const float *bias, int accumulate, const SimclrConvShape *s, int b0,
    int b1, float *work)
{
  const int T = simclr_winograd_block_tiles (&simclr_winograd43_avx2, s);
  const size_t rows = (size_t) T + WINO_ROW_PAD;
  float *V = work, *M = work + 36 * wino_pstride (rows, s->C);
  int TH, TW;
  wino43_tiles (s, &TH, &TW);
  const long ntiles = (long) (b1 - b0) * TH * TW;
  for (long t0 = 0; t0 < ntiles; t0 += T) {
    int nt = ntiles - t0 < T ? (int) (ntiles - t0) : T;
    avx2_block43 (out, inp, u, bias, accumulate, s, b0, t0, nt, V, M, rows);
  }
}

/* Shapes routed here: see the commit and STATUS.md. C a multiple of 8, OC
 * of 16, C*OC at most 128*128 as on AVX-512 (past 64*64 on the same maps). At 128*128, `SIMCLR_CPU=avx2
 * bench-conv --tiles` (Zen 5 held to AVX2, one thread, best of 5, load 5)
 * direct (GEMM there):F(4x4, 3x3) time: w0.25 4x4 b512 3.0-3.15, b256
 * 2.8; w1 14x14 b64 2.6, b32 2.3-2.4. */
static int
wino43_avx2_ok (const SimclrConvShape *s)
{
  return simclr_winograd_shape_ok (s) && s->C % 8 == 0 &&
      s->OC % 16 == 0 && ((size_t) s->C * s->OC <= 64 * 64 ||
      ((size_t) s->C * s->OC <= 128 * 128 && wino43_fewer_points (s)));
}

const SimclrWinogradKernels simclr_winograd43_avx2 = {
  .m = 4,
  .ok = wino43_avx2_ok,
  .forward = wino43_avx2_forward,
};

/* ---------------------------------------------------------------------------
 * Weight gradient F(4x4, 3x3), AVX2 + FMA: dw_avx512_blocks' scheme with
 * 8-float vectors; taps and outputs outside the image read wino_zeros. */

/* dw_gemm_block with 8-float vectors: du rows o0 .. o0+R-1, channels
 * c0 .. c0+8*NV-1. */
KERNEL2 void
dw_gemm_block2 (const int NV, const int R, float *du, const float *z,
    const float *v, int nt, int C, int OC, int o0, int c0)
{
  __m256 acc[MAX_R2][MAX_NV2];
#pragma GCC unroll 6
  for (int r = 0; r < R; r++)
#pragma GCC unroll 2
    for (int k = 0; k < NV; k++)
      acc[r][k] = _mm256_loadu_ps (du + (size_t) (o0 + r) * C + c0 + 8 * k);
  const float *zt = z + o0, *vt = v + c0;
  for (int t = 0; t < nt; t++, zt += OC, vt += C) {
    __m256 vv[MAX_NV2];
#pragma GCC unroll 2
    for (int k = 0; k < NV; k++)
      vv[k] = _mm256_loadu_ps (vt + 8 * k);
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
      __m256 x = _mm256_broadcast_ss (zt + r);
#pragma GCC unroll 2
      for (int k = 0; k < NV; k++)
        acc[r][k] = _mm256_fmadd_ps (x, vv[k], acc[r][k]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; r++)
#pragma GCC unroll 2
    for (int k = 0; k < NV; k++)
      _mm256_storeu_ps (du + (size_t) (o0 + r) * C + c0 + 8 * k, acc[r][k]);
}

/* All OC rows of one point: blocks of MAX_R2 rows, then the rest. */
KERNEL2 void
dw_gemm_point2 (const int NV, float *du, const float *z, const float *v,
    int nt, int C, int OC)
{
  for (int c0 = 0; c0 < C; c0 += 8 * NV) {
    int o0 = 0;
    for (; o0 + MAX_R2 <= OC; o0 += MAX_R2)
      dw_gemm_block2 (NV, MAX_R2, du, z, v, nt, C, OC, o0, c0);
    switch (OC - o0) {
      case 5:
        dw_gemm_block2 (NV, 5, du, z, v, nt, C, OC, o0, c0);
        break;
      case 4:
        dw_gemm_block2 (NV, 4, du, z, v, nt, C, OC, o0, c0);
        break;
      case 3:
        dw_gemm_block2 (NV, 3, du, z, v, nt, C, OC, o0, c0);
        break;
      case 2:
        dw_gemm_block2 (NV, 2, du, z, v, nt, C, OC, o0, c0);
        break;
      case 1:
        dw_gemm_block2 (NV, 1, du, z, v, nt, C, OC, o0, c0);
        break;
      default:
        break;
    }
  }
}

KERNEL2 void
a6_ps2 (__m256 z[6], __m256 y0, __m256 y1, __m256 y2, __m256 y3)
{
  const __m256 four = _mm256_set1_ps (4.0f);
  __m256 s02 = _mm256_add_ps (y0, y2), s13 = _mm256_add_ps (y1, y3);
  __m256 t02 = _mm256_fmadd_ps (four, y2, y0);
  __m256 h13 = _mm256_fmadd_ps (four, y3, y1);
  __m256 t13 = _mm256_add_ps (h13, h13);
  z[0] = y0;
  z[1] = _mm256_add_ps (s02, s13);
  z[2] = _mm256_sub_ps (s02, s13);
  z[3] = _mm256_add_ps (t02, t13);
  z[4] = _mm256_sub_ps (t02, t13);
  z[5] = y3;
}

/* dy_segment43 with 8-float vectors (OC a multiple of 8). */
KERNEL2 void
dy_segment43_avx2 (float *z0, size_t zstride, const float *dimg,
    const SimclrConvShape *s, int th, int tw0, int n, int i0, int i1)
{
  const int OC = s->OC, OW = s->OW;
  const int oh = 4 * th;
  const float *row[4];
  int rv[4];
  for (int i = 0; i < 4; i++) {
    rv[i] = oh + i < s->OH;
    row[i] = dimg + (size_t) (rv[i] ? oh + i : oh) * OW * OC;
  }
  const uintptr_t pf = (uintptr_t) (dimg + (size_t) (oh + 4) * OW * OC);
  const size_t prow = sizeof (float) * OW * OC;
  for (int c = 0; c < OC; c += 8) {
    float *z = z0 + c;
    for (int t = 0; t < n; t++, z += OC) {
      int ow = 4 * (tw0 + t);
      __m256 q[4][6];
#pragma GCC unroll 4
      for (int j = 0; j < 4; j++) {
        int cv = ow + j < OW;
        size_t off = (size_t) (cv ? ow + j : ow) * OC + c;
        const float *p[4];
        for (int i = 0; i < 4; i++)
          p[i] = rv[i] && cv ? row[i] + off : wino_zeros + c;
        if (cv && (c & 15) == 0)
          for (int k = 0; k < 4; k++)
            _mm_prefetch ((const char *) (pf + k * prow + off *
                    sizeof (float)), _MM_HINT_T0);
        a6_ps2 (q[j], _mm256_loadu_ps (p[0]), _mm256_loadu_ps (p[1]),
            _mm256_loadu_ps (p[2]), _mm256_loadu_ps (p[3]));
      }
#pragma GCC unroll 6
      for (int i = 0; i < 6; i++) {
        if (i < i0 || i >= i1)
          continue;
        __m256 r[6];
        a6_ps2 (r, q[0][i], q[1][i], q[2][i], q[3][i]);
        float *zi = z + (size_t) (6 * (i - i0)) * zstride;
#pragma GCC unroll 6
        for (int k = 0; k < 6; k++)
          _mm256_storeu_ps (zi + k * zstride, r[k]);
      }
    }
  }
}

KERNEL2 void
dw_avx2_blocks43 (const int NV, float *du, const float *inp,
    const float *dout, const SimclrConvShape *s, int b0, int b1, int r0,
    int r1, float *work)
{
  const int C = s->C, OC = s->OC, a = 6;
  const int T = simclr_winograd_dw_block_tiles (&simclr_winograd43_dw_avx2,
      s);
  const int pw = (r1 - r0) * a;
  const size_t vstride = dw_stride (T, C), zstride = dw_stride (T, OC);
  float *V = work, *Z = work + (size_t) pw * vstride;
  int TH, TW;
  wino43_tiles (s, &TH, &TW);
  const long per_img = (long) TH * TW;
  const long ntiles = (long) (b1 - b0) * per_img;
  for (long t0 = 0; t0 < ntiles; t0 += T) {
    int nt = ntiles - t0 < T ? (int) (ntiles - t0) : T;
    for (int t = 0; t < nt;) {
      long g = t0 + t;
      int b = b0 + (int) (g / per_img), r = (int) (g % per_img);
      int th = r / TW, tw = r % TW;
      int n = TW - tw < nt - t ? TW - tw : nt - t;
      in_segment43_avx2 (V + (size_t) t * C, vstride, inp + (size_t) b *
          s->H * s->W * C, s, th, tw, n, r0, r1);
      dy_segment43_avx2 (Z + (size_t) t * OC, zstride, dout + (size_t) b *
          s->OH * s->OW * OC, s, th, tw, n, r0, r1);
      t += n;
    }
    for (int e = 0; e < pw; e++)
      dw_gemm_point2 (NV, du + (size_t) (r0 * a + e) * OC * C,
          Z + (size_t) e * zstride, V + (size_t) e * vstride, nt, C, OC);
  }
}

__attribute__ ((target (AVX2))) static void
wino43_dw_avx2 (float *du, const float *inp, const float *dout,
    const SimclrConvShape *s, int b0, int b1, int r0, int r1, float *work)
{
  if (s->C % 16 == 0)
    dw_avx2_blocks43 (2, du, inp, dout, s, b0, b1, r0, r1, work);
  else
    dw_avx2_blocks43 (1, du, inp, dout, s, b0, b1, r0, r1, work);
}

/* Shapes routed here: C and OC multiples of 8, C*OC at most 128*128 (du,
 * 36 C OC floats). `SIMCLR_CPU=avx2 bench-conv --tiles` (AMD EPYC Zen 5
 * held to AVX2, one thread, thread CPU time, best of 5, load 9-10),
 * direct (the AVX2 kernel to 32 channels, GEMM above):F(4x4, 3x3) time:
 *   w0.25 28x28 16->16 b512 1.86, 14x14 32->32 1.94, 7x7 64->64 2.65,
 *   4x4 128->128 2.87; w1 28x28 64->64 b32 3.22, 14x14 128->128 2.14.
 * Not measured on an AVX2-only CPU (Zen 3). From the AVX-512 level this
 * set also takes channel counts that are multiples of 8 but not of 16
 * (no ResNet-18 width here has them; unmeasured against AVX-512's direct
 * kernel there). */
static int
wino43_dw_avx2_ok (const SimclrConvShape *s)
{
  return simclr_winograd_shape_ok (s) && s->C % 8 == 0 && s->OC % 8 == 0 &&
      (size_t) s->C * s->OC <= 128 * 128;
}

const SimclrWinogradKernels simclr_winograd43_dw_avx2 = {
  .m = 4,
  .ok = wino43_dw_avx2_ok,
  .dweight = wino43_dw_avx2,
};
#endif
