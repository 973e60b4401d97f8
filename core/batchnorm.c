/* batchnorm.c: batch normalisation over the rows of an (M, C) matrix, fused
 * with the ReLU and the residual add that follow it in a ResNet.
 *
 * Serves BatchNorm2d on NHWC activations (M = B*H*W) and BatchNorm1d (M = B)
 * with PyTorch's semantics: the biased batch variance normalises, the
 * unbiased one updates running_var. Data-parallel replicas reduce their
 * per-channel sums through an optional allreduce callback so every replica
 * normalises with the exact global statistics: sum and count first (mean),
 * then the centred sum of squares (variance).
 *
 * Memory traffic is the cost here (a thin layer's batch norm moved as many
 * bytes as its convolution), so each pass reads its tensors once:
 * - statistics in one pass over blocks of BN_ROWS rows: each block (in L1)
 *   gives its float sum and its sum of squares around its own mean, and
 *   the blocks combine in double by Chan et al.'s pairwise update, which
 *   avoids the cancellation of E[x^2] - E[x]^2;
 * - normalise, add the residual, rectify: one pass;
 * - backward: one pass for the two per-channel sums and one for dinp, the
 *   ReLU's mask recomputed on the fly from the input (no read of the
 *   forward's output), dinp written rather than accumulated where the
 *   caller has no other gradient for it (no zeroing pass).
 * Not here: the allreduce itself (the caller's callback), allocation (the
 * small reduction buffers live on the stack in blocks of channels).
 */
#include <math.h>
#include <string.h>

#include "layers-private.h"
#include "simclr/cpu.h"

/* Channels reduced per allreduce call; keeps the buffers on the stack.
 * Every replica has the same C, so all make the same sequence of calls. */
#define BN_BLOCK 256
/* Rows per statistics block (summed in float, combined in double). */
#define BN_ROWS 64
/* The loops run over groups of BN_VEC channels held in GCC vector types
 * (BnVec), which each level's copy compiles to its own registers: one ymm
 * on AVX2 and AVX-512, two xmm in the portable build. A block's sums over
 * rows stay in registers for the thin layers (see BN_GROUPS; the scalar
 * loops' sums went through memory on every row, a store-to-load chain
 * that made the statistics pass twice as slow as a copy of the tensor).
 * 8 lanes, not 16: the model's activations come from calloc (mmap), 16
 * bytes past a page boundary, so every 64-byte access split two cache
 * lines and 16-lane groups made the passes of C = 64 and 128 1.3-1.6x
 * slower than 8 lanes (bench: 16-byte offset buffers). Channels past the
 * last whole group run in scalar loops with the same float operations.
 * Every operation is per lane, in the scalar code's order, so results do
 * not depend on the width (test-bn-levels). */
#define BN_VEC 8
typedef float BnVec __attribute__ ((vector_size (BN_VEC * sizeof (float))));
typedef int BnMask __attribute__ ((vector_size (BN_VEC * sizeof (int))));
/* 8 channels in double: the per-block merges. */
#define BN_DVEC 8
typedef double BnDVec
    __attribute__ ((vector_size (BN_DVEC * sizeof (double))));
typedef float BnHVec __attribute__ ((vector_size (BN_DVEC * sizeof (float))));

/* The fused loops come in variants (residual or not, ReLU or not, mask or
 * not): always_inline bodies with constant flags, so every variant is a
 * branch-free loop. Each instruction-set level gets its own copy of the
 * dispatchers below (BN_LEVEL_FUNCTIONS). */
#define BN_INLINE static inline __attribute__ ((always_inline))

/* Unaligned loads and stores of a group (memcpy: no aliasing or alignment
 * assumption, compiled to one vector move). Macros rather than functions:
 * a vector passed by value to a function compiled for the portable level
 * changes the ABI (-Wpsabi). */
#define BN_LOAD(v, p) memcpy (&(v), (p), sizeof (BnVec))
#define BN_STORE(p, v) memcpy ((p), &(v), sizeof (BnVec))
/* a > 0 ? b : 0 per lane, as the scalar select: the comparison's all-ones
 * lanes keep b's bits, the others give +0 (also for a NaN) */
#define BN_SELECT_POS(a, b) ((BnVec) ((BnMask) (b) & ((a) > 0.0f)))
/* dout's rows are prefetched this far ahead in the backward passes: on
 * AVX-512 GCC turns the select of a loaded d into a masked load, which
 * waits for the mask, so the d stream missed the cache in series with the
 * mask's operands (the relu sums pass ran 1.7x slower than the SSE/AVX2
 * style blend of main's loops until this prefetch). */
#define BN_PF_ROWS 16

/* Chan et al.: merge (count, mean, m2) of channels [0, n) with a block's
 * (nb rows, float mean bm[], float centred sum of squares fq[]). */
BN_INLINE void
bn_chan_merge (double *mean, double *m2, double count, double nb,
    const float *bm, const float *fq, int n)
{
  const double total = count + nb;
  const double wb = nb / total, wab = count * nb / total;
  int c = 0;
  for (; c + BN_DVEC <= n; c += BN_DVEC) {
    BnHVec hb, hq;
    BnDVec mu, mm;
    memcpy (&hb, bm + c, sizeof hb);
    memcpy (&hq, fq + c, sizeof hq);
    memcpy (&mu, mean + c, sizeof mu);
    memcpy (&mm, m2 + c, sizeof mm);
    BnDVec delta = __builtin_convertvector (hb, BnDVec) - mu;
    mu += delta * wb;
    mm += __builtin_convertvector (hq, BnDVec) + delta * delta * wab;
    memcpy (mean + c, &mu, sizeof mu);
    memcpy (m2 + c, &mm, sizeof mm);
  }
  for (; c < n; c++) {
    double delta = (double) bm[c] - mean[c];
    mean[c] += delta * wb;
    m2[c] += fq[c] + delta * delta * wab;
  }
}

/* How the blocks are walked: rows outer, the ng groups of a row inner, so
 * a block streams through memory in order (walking one group down all
 * the block's rows, then the next, was slower for the wide layers). The
 * per-group sums and constants sit in local arrays of ng vectors: called
 * with a constant ng of 1, 2 or 4 (C = 8, 16, 32), GCC keeps them in
 * registers (the one-chain-per-row through memory is what made main's
 * statistics pass slow for C = 16); with more groups they are independent
 * chains through L1, whose latencies overlap. */
#define BN_GROUPS (BN_BLOCK / BN_VEC)
/* The group loops of a row, unrolled: GCC's -O2 left the 4-group loop
 * (C = 32) rolled, so its sums went through memory like the wide layers'
 * (a store-to-load chain per row and group); unrolled, they stay in
 * registers. The statistics run as quads of groups for wider blocks too
 * (bn_moments_body): in L1, C = 32 / 64 / 128 ran 3.2 / 2.0 / 1.6x faster
 * (19-33 GB/s before, 55-63 GB/s after, data in L1, Zen 5). Every
 * channel's operations keep their order, so the bits are unchanged. The
 * backward sums only unroll: quads of their wider blocks (4 tensors
 * walked 4 times per block) measured slower for C = 64 and 128. */
#define BN_UNROLL _Pragma ("GCC unroll 4")

/* A block's float means bm[] and centred sums of squares fq[] of ng
 * groups (rows of xb, stride C): the sums, the means, then the block
 * again (from L1) for the squares around them. */
BN_INLINE void
bn_block_moments (float *bm, float *fq, const float *xb, int rows, int C,
    const int ng, float nb)
{
  const BnVec zero = { 0 };
  BnVec s[BN_GROUPS], q[BN_GROUPS], v;
  for (int g = 0; g < ng; g++) {
    s[g] = zero;
    q[g] = zero;
  }
  for (int r = 0; r < rows; r++)
    BN_UNROLL for (int g = 0; g < ng; g++) {
      BN_LOAD (v, xb + (size_t) r * C + g * BN_VEC);
      s[g] += v;
    }
  for (int g = 0; g < ng; g++)
    s[g] = s[g] / nb;
  for (int r = 0; r < rows; r++)
    BN_UNROLL for (int g = 0; g < ng; g++) {
      BN_LOAD (v, xb + (size_t) r * C + g * BN_VEC);
      BnVec d = v - s[g];
      q[g] += d * d;
    }
  for (int g = 0; g < ng; g++) {
    BN_STORE (bm + g * BN_VEC, s[g]);
    BN_STORE (fq + g * BN_VEC, q[g]);
  }
}

/* Per-channel mean and centred sum of squares of rows [r0, r1), channels
 * [c0, c0 + n), as (count, mean[], m2[]) in double. */
BN_INLINE void
bn_moments_body (double *mean, double *m2, const float *inp, int r0, int r1,
    int C, int c0, int n)
{
  float bm[BN_BLOCK], fq[BN_BLOCK];
  const int ng = n / BN_VEC;
  double count = 0;
  memset (mean, 0, sizeof (double) * n);
  memset (m2, 0, sizeof (double) * n);
  for (int rb = r0; rb < r1; rb += BN_ROWS) {
    const int rows = (rb + BN_ROWS < r1 ? rb + BN_ROWS : r1) - rb;
    const float nb = (float) rows;
    const float *xb = inp + (size_t) rb * C + c0;
    int g0 = 0;
    for (; g0 + 4 <= ng; g0 += 4)
      bn_block_moments (bm + g0 * BN_VEC, fq + g0 * BN_VEC,
          xb + g0 * BN_VEC, rows, C, 4, nb);
    if (ng - g0 == 1)
      bn_block_moments (bm + g0 * BN_VEC, fq + g0 * BN_VEC,
          xb + g0 * BN_VEC, rows, C, 1, nb);
    else if (ng - g0 == 2)
      bn_block_moments (bm + g0 * BN_VEC, fq + g0 * BN_VEC,
          xb + g0 * BN_VEC, rows, C, 2, nb);
    else if (ng - g0 == 3)
      bn_block_moments (bm + g0 * BN_VEC, fq + g0 * BN_VEC,
          xb + g0 * BN_VEC, rows, C, 3, nb);
    for (int c = ng * BN_VEC; c < n; c++) {
      float fs = 0.0f, f2 = 0.0f;
      for (int r = 0; r < rows; r++)
        fs += xb[(size_t) r * C + c];
      bm[c] = fs / nb;
      for (int r = 0; r < rows; r++) {
        float d = xb[(size_t) r * C + c] - bm[c];
        f2 += d * d;
      }
      fq[c] = f2;
    }
    bn_chan_merge (mean, m2, count, nb, bm, fq, n);
    count += nb;
  }
}

/* out = act (x * scale + shift [+ res]) for rows [r0, r1), channels
 * c0..c0+n: act is max (., 0) with relu. With res_bn the residual is
 * res * rscale + rshift, computed as the float its own affine pass would
 * have stored (a downsampling shortcut's batch norm, fused). */
BN_INLINE void
bn_affine_act_body (float *out, const float *inp, const float *res,
    const int has_res, const int res_bn, const int relu, int r0, int r1,
    int C, int c0, int n, const float *scale, const float *shift,
    const float *rscale, const float *rshift)
{
  for (int r = r0; r < r1; r++) {
    const float *x = inp + (size_t) r * C + c0;
    const float *s = has_res ? res + (size_t) r * C + c0 : NULL;
    float *y = out + (size_t) r * C + c0;
    int c = 0;
    for (; c + BN_VEC <= n; c += BN_VEC) {
      BnVec t, a, b, v;
      BN_LOAD (v, x + c);
      BN_LOAD (a, scale + c);
      BN_LOAD (b, shift + c);
      t = v * a + b;
      if (has_res) {
        BN_LOAD (v, s + c);
        if (res_bn) {
          BN_LOAD (a, rscale + c);
          BN_LOAD (b, rshift + c);
          v = v * a + b;
        }
        t += v;
      }
      if (relu)
        t = BN_SELECT_POS (t, t);
      BN_STORE (y + c, t);
    }
    for (; c < n; c++) {
      float t = x[c] * scale[c] + shift[c];
      if (has_res)
        t += res_bn ? s[c] * rscale[c] + rshift[c] : s[c];
      if (relu)
        t = t > 0.0f ? t : 0.0f;
      y[c] = t;
    }
  }
}

/* The per-level copies of the dispatchers (BN_LEVEL_FUNCTIONS below). */
typedef struct {
  void (*moments) (double *mean, double *m2, const float *inp, int r0,
      int r1, int C, int c0, int n);
  void (*affine_act) (float *out, const float *inp, const float *res,
      int relu, int r0, int r1, int C, int c0, int n, const float *scale,
      const float *shift, const float *rscale, const float *rshift);
  void (*bwd_sums) (double *sd, double *sdx, const float *dout, int relu,
      const float *inp, const float *m, const float *rs, const float *scale,
      const float *shift, int r0, int r1, int C, int c0, int n);
  void (*bwd_sums_mask) (double *sd, double *sdx, float *dmask,
      const float *dout, const float *y, const float *inp, const float *m,
      const float *rs, int r0, int r1, int C, int c0, int n);
  void (*bwd_dx) (float *dinp, int accumulate, const float *dout, int relu,
      const float *inp, const float *m, const float *rs, const float *scale,
      const float *shift, const float *k, const float *mean_d,
      const float *mean_dx, int r0, int r1, int C, int c0, int n);
} BnFns;

static const BnFns *bn_fns (void);

void
simclr_affine_act (float *out, const float *inp, const float *residual,
    int relu, size_t rows, int C, const float *scale, const float *shift)
{
  /* inp, residual (or NULL), out (rows, C); scale, shift (C). Channel
   * blocks as the batch-norm passes, so the arithmetic is theirs. */
  const BnFns *fns = bn_fns ();
  for (int c0 = 0; c0 < C; c0 += BN_BLOCK) {
    const int n = C - c0 < BN_BLOCK ? C - c0 : BN_BLOCK;
    fns->affine_act (out, inp, residual, relu, 0, (int) rows, C, c0, n,
        scale + c0, shift + c0, NULL, NULL);
  }
}

/* ---------------------------------------------------------------------------
 * Threads: the rows are split into ranges of whole BN_ROWS blocks, one per
 * task; per-task partial statistics are merged in task order. */

/* Floats a task must have to be worth a thread. */
#define BN_MIN_TASK_FLOATS (128 * 1024)

typedef enum {
  BN_PHASE_MOMENTS,
  BN_PHASE_AFFINE,
  BN_PHASE_BWD_SUMS,
  BN_PHASE_BWD_SUMS_MASK,
  BN_PHASE_BWD_DX,
} BnPhase;

typedef struct {
  BnPhase phase;
  const BnFns *fns;             /* this CPU level's loops */
  int tasks, M, C, c0, n;
  const float *inp, *res, *dout, *y;
  float *out, *dinp, *dmask;
  int relu, accumulate;
  const float *scale, *shift, *mean, *rstd, *mean_d, *mean_dx;
  const float *rscale, *rshift; /* a batch-normalised residual, or NULL */
  /* per task: moments (count, mean, m2) or backward sums (sd, sdx) */
  double count[SIMCLR_MAX_THREADS];
  double a[SIMCLR_MAX_THREADS][BN_BLOCK], b[SIMCLR_MAX_THREADS][BN_BLOCK];
} BnJob;

static int
bn_tasks (int threads, int M, int n)
{
  int blocks = (M + BN_ROWS - 1) / BN_ROWS;
  double t = (double) M * n / BN_MIN_TASK_FLOATS;
  int tasks = threads < t ? threads : (int) t;
  if (tasks > blocks)
    tasks = blocks;
  if (tasks > SIMCLR_MAX_THREADS)
    tasks = SIMCLR_MAX_THREADS;
  return tasks < 1 ? 1 : tasks;
}

static void
bn_task (void *ctx, int task)
{
  BnJob *j = ctx;
  int blocks = (j->M + BN_ROWS - 1) / BN_ROWS;
  int r0 = (int) ((long) blocks * task / j->tasks) * BN_ROWS;
  int r1 = (int) ((long) blocks * (task + 1) / j->tasks) * BN_ROWS;
  if (r1 > j->M)
    r1 = j->M;
  switch (j->phase) {
    case BN_PHASE_MOMENTS:
      j->fns->moments (j->a[task], j->b[task], j->inp, r0, r1, j->C, j->c0,
          j->n);
      j->count[task] = r1 - r0;
      break;
    case BN_PHASE_AFFINE:
      j->fns->affine_act (j->out, j->inp, j->res, j->relu, r0, r1, j->C, j->c0,
          j->n, j->scale, j->shift, j->rscale, j->rshift);
      break;
    case BN_PHASE_BWD_SUMS:
      j->fns->bwd_sums (j->a[task], j->b[task], j->dout, j->relu, j->inp,
          j->mean, j->rstd, j->scale, j->shift, r0, r1, j->C, j->c0, j->n);
      break;
    case BN_PHASE_BWD_SUMS_MASK:
      j->fns->bwd_sums_mask (j->a[task], j->b[task], j->dmask, j->dout, j->y,
          j->inp, j->mean, j->rstd, r0, r1, j->C, j->c0, j->n);
      break;
    case BN_PHASE_BWD_DX:
      j->fns->bwd_dx (j->dinp, j->accumulate, j->dout, j->relu, j->inp,
          j->mean, j->rstd, j->scale, j->shift, j->scale, j->mean_d,
          j->mean_dx, r0, r1, j->C, j->c0, j->n);
      break;
  }
}

static void
bn_run (BnJob *j, BnPhase phase)
{
  j->phase = phase;
  if (j->tasks > 1)
    simclr_parallel_for (j->tasks, bn_task, j);
  else
    bn_task (j, 0);
}

/* The training forward: statistics (and running statistics), then unless
 * out is NULL the affine pass. res_weight (with res_bias, res_mean,
 * res_rstd) or NULL: residual is another batch norm's input, normalised
 * on the fly. */
static void
bn_forward_train (float *out, float *mean, float *rstd,
    float *running_mean, float *running_var, const float *inp,
    const float *residual, const float *res_weight, const float *res_bias,
    const float *res_mean, const float *res_rstd, int relu,
    const float *weight, const float *bias, int M, int C, float momentum,
    float eps, int threads, SimclrAllreduceFn allreduce,
    void *allreduce_user)
{
  /* inp, residual (or NULL), out (M, C); weight, bias, running_*, mean,
   * rstd (C). Writes out, mean, rstd (the batch statistics backward needs)
   * and updates running_mean, running_var in place. out may alias
   * residual, not inp. */
  BnJob job = {.fns = bn_fns (), .M = M, .C = C, .inp = inp, .res = residual, .out = out,
    .relu = relu
  };
  for (int c0 = 0; c0 < C; c0 += BN_BLOCK) {
    const int n = C - c0 < BN_BLOCK ? C - c0 : BN_BLOCK;
    double lmean[BN_BLOCK], lm2[BN_BLOCK];
    float buf[BN_BLOCK + 1];

    job.c0 = c0;
    job.n = n;
    job.tasks = bn_tasks (threads, M, n);
    bn_run (&job, BN_PHASE_MOMENTS);
    /* the tasks' moments, merged in order (Chan et al. again) */
    double count = job.count[0];
    memcpy (lmean, job.a[0], sizeof (double) * n);
    memcpy (lm2, job.b[0], sizeof (double) * n);
    for (int t = 1; t < job.tasks; t++) {
      const double nb = job.count[t], total = count + nb;
      const double wb = nb / total, wab = count * nb / total;
      for (int c = 0; c < n; c++) {
        double delta = job.a[t][c] - lmean[c];
        lmean[c] += delta * wb;
        lm2[c] += job.b[t][c] + delta * delta * wab;
      }
      count = total;
    }

    /* round 1: per-channel sum and the row count -> the global mean */
    for (int c = 0; c < n; c++)
      buf[c] = (float) (lmean[c] * M);
    buf[n] = (float) M;
    if (allreduce)
      allreduce (buf, n + 1, allreduce_user);
    const double gcount = buf[n];
    for (int c = 0; c < n; c++)
      mean[c0 + c] = (float) (buf[c] / gcount);

    /* round 2: centred sum of squares around the global mean (a replica's
     * own m2 plus its mean's offset, Chan's merge again) */
    for (int c = 0; c < n; c++) {
      double delta = lmean[c] - mean[c0 + c];
      buf[c] = (float) (lm2[c] + delta * delta * M);
    }
    if (allreduce)
      allreduce (buf, n, allreduce_user);
    for (int c = 0; c < n; c++) {
      double var = buf[c] / gcount;
      double unbiased = gcount > 1 ? buf[c] / (gcount - 1) : var;
      rstd[c0 + c] = (float) (1.0 / sqrt (var + eps));
      running_mean[c0 + c] = (1.0f - momentum) * running_mean[c0 + c] +
          momentum * mean[c0 + c];
      running_var[c0 + c] = (1.0f - momentum) * running_var[c0 + c] +
          momentum * (float) unbiased;
    }

    if (!out)
      continue;
    /* out = (x - mean) * rstd * weight + bias, as one scale and shift;
     * the residual's likewise, as its own forward computes them */
    float scale[BN_BLOCK], shift[BN_BLOCK], rscale[BN_BLOCK], rshift[BN_BLOCK];
    for (int c = 0; c < n; c++) {
      scale[c] = rstd[c0 + c] * weight[c0 + c];
      shift[c] = bias[c0 + c] - mean[c0 + c] * scale[c];
      if (res_weight) {
        rscale[c] = res_rstd[c0 + c] * res_weight[c0 + c];
        rshift[c] = res_bias[c0 + c] - res_mean[c0 + c] * rscale[c];
      }
    }
    job.scale = scale;
    job.shift = shift;
    job.rscale = res_weight ? rscale : NULL;
    job.rshift = res_weight ? rshift : NULL;
    bn_run (&job, BN_PHASE_AFFINE);
  }
}

void
simclr_batchnorm_act_forward_train (float *out, float *mean, float *rstd,
    float *running_mean, float *running_var, const float *inp,
    const float *residual, int relu, const float *weight, const float *bias,
    int M, int C, float momentum, float eps, int threads,
    SimclrAllreduceFn allreduce, void *allreduce_user)
{
  bn_forward_train (out, mean, rstd, running_mean, running_var, inp,
      residual, NULL, NULL, NULL, NULL, relu, weight, bias, M, C, momentum,
      eps, threads, allreduce, allreduce_user);
}

void
simclr_batchnorm_stats_train (float *mean, float *rstd, float *running_mean,
    float *running_var, const float *inp, int M, int C, float momentum,
    float eps, int threads, SimclrAllreduceFn allreduce,
    void *allreduce_user)
{
  bn_forward_train (NULL, mean, rstd, running_mean, running_var, inp, NULL,
      NULL, NULL, NULL, NULL, 0, NULL, NULL, M, C, momentum, eps, threads,
      allreduce, allreduce_user);
}

void
simclr_batchnorm_act_forward_train_bn_residual (float *out, float *mean,
    float *rstd, float *running_mean, float *running_var, const float *inp,
    const float *res_inp, const float *res_weight, const float *res_bias,
    const float *res_mean, const float *res_rstd, int relu,
    const float *weight, const float *bias, int M, int C, float momentum,
    float eps, int threads, SimclrAllreduceFn allreduce,
    void *allreduce_user)
{
  bn_forward_train (out, mean, rstd, running_mean, running_var, inp,
      res_inp, res_weight, res_bias, res_mean, res_rstd, relu, weight, bias,
      M, C, momentum, eps, threads, allreduce, allreduce_user);
}

void
simclr_batchnorm_forward_train (float *out, float *mean, float *rstd,
    float *running_mean, float *running_var, const float *inp,
    const float *weight, const float *bias, int M, int C, float momentum,
    float eps, SimclrAllreduceFn allreduce, void *allreduce_user)
{
  simclr_batchnorm_act_forward_train (out, mean, rstd, running_mean,
      running_var, inp, NULL, 0, weight, bias, M, C, momentum, eps, 1,
      allreduce, allreduce_user);
}

void
simclr_batchnorm_eval_affine (float *scale, float *shift, const float *weight,
    const float *bias, const float *running_mean, const float *running_var,
    int C, float eps)
{
  for (int c = 0; c < C; c++) {
    scale[c] = weight[c] / sqrtf (running_var[c] + eps);
    shift[c] = bias[c] - running_mean[c] * scale[c];
  }
}

void
simclr_batchnorm_act_forward_eval (float *out, const float *inp,
    const float *residual, int relu, const float *weight, const float *bias,
    const float *running_mean, const float *running_var, int M, int C,
    float eps, int threads)
{
  /* inp, residual (or NULL), out (M, C); weight, bias, running_mean,
   * running_var (C) */
  BnJob job = {.fns = bn_fns (), .M = M, .C = C, .inp = inp, .res = residual, .out = out,
    .relu = relu
  };
  for (int c0 = 0; c0 < C; c0 += BN_BLOCK) {
    const int n = C - c0 < BN_BLOCK ? C - c0 : BN_BLOCK;
    float scale[BN_BLOCK], shift[BN_BLOCK];
    simclr_batchnorm_eval_affine (scale, shift, weight + c0, bias + c0,
        running_mean + c0, running_var + c0, n, eps);
    job.c0 = c0;
    job.n = n;
    job.tasks = bn_tasks (threads, M, n);
    job.scale = scale;
    job.shift = shift;
    bn_run (&job, BN_PHASE_AFFINE);
  }
}

void
simclr_batchnorm_forward_eval (float *out, const float *inp,
    const float *weight, const float *bias, const float *running_mean,
    const float *running_var, int M, int C, float eps)
{
  simclr_batchnorm_act_forward_eval (out, inp, NULL, 0, weight, bias,
      running_mean, running_var, M, C, eps, 1);
}

/* d = dout, masked by the unit's ReLU where it has one: the forward's
 * output was x * scale + shift > 0 there, recomputed here with the same
 * float operations (no contraction in ISO C mode), so the mask is exact and
 * the output need not be read. Both loads are unconditional, so the select
 * is branch-free. bn_grad is a channel's, BN_GRAD a group's (a, b: the
 * group's scale and shift). */
BN_INLINE float
bn_grad (const float *dout, const float *x, const float *scale,
    const float *shift, const int relu, int i)
{
  float d = dout[i];
  if (!relu)
    return d;
  float t = x[i] * scale[i] + shift[i];
  return t > 0.0f ? d : 0.0f;
}

#define BN_GRAD(d, x, a, b, relu) \
  ((relu) ? BN_SELECT_POS ((x) * (a) + (b), (d)) : (d))

/* acc[c] += f[c] in double, c < n (a block's float sums into the task's) */
BN_INLINE void
bn_accumulate_double (double *acc, const float *f, int n)
{
  int c = 0;
  for (; c + BN_DVEC <= n; c += BN_DVEC) {
    BnHVec h;
    BnDVec a;
    memcpy (&h, f + c, sizeof h);
    memcpy (&a, acc + c, sizeof a);
    a += __builtin_convertvector (h, BnDVec);
    memcpy (acc + c, &a, sizeof a);
  }
  for (; c < n; c++)
    acc[c] += f[c];
}

/* A block's float sums fd[] of d and fdx[] of d * xhat for ng groups
 * (rows of stride C from offset ob; the group constants m, rs, scale,
 * shift start at the block's first channel). */
BN_INLINE void
bn_block_sums (float *fd, float *fdx, float *dmask, const float *dout,
    const float *y, const int has_y, const int relu, const float *inp,
    const float *m, const float *rs, const float *scale, const float *shift,
    size_t ob, int rows, int C, const int ng)
{
  const BnVec zero = { 0 };
  BnVec s[BN_GROUPS], sx[BN_GROUPS], va[BN_GROUPS], vb[BN_GROUPS];
  BnVec vm[BN_GROUPS], vr[BN_GROUPS];
  for (int g = 0; g < ng; g++) {
    s[g] = sx[g] = va[g] = vb[g] = zero;
    if (relu) {
      BN_LOAD (va[g], scale + g * BN_VEC);
      BN_LOAD (vb[g], shift + g * BN_VEC);
    }
    BN_LOAD (vm[g], m + g * BN_VEC);
    BN_LOAD (vr[g], rs + g * BN_VEC);
  }
  for (int r = 0; r < rows; r++) {
    BN_UNROLL for (int g = 0; g < ng; g++) {
      const size_t o = ob + (size_t) r * C + g * BN_VEC;
      __builtin_prefetch (dout + o + (size_t) BN_PF_ROWS * C);
      BnVec x, d, gr;
      BN_LOAD (x, inp + o);
      BN_LOAD (d, dout + o);
      if (has_y) {
        BnVec vy;
        BN_LOAD (vy, y + o);
        gr = BN_SELECT_POS (vy, d);
      } else {
        gr = BN_GRAD (d, x, va[g], vb[g], relu);
      }
      s[g] += gr;
      sx[g] += gr * ((x - vm[g]) * vr[g]);
      if (has_y)
        BN_STORE (dmask + o, gr);
    }
  }
  for (int g = 0; g < ng; g++) {
    BN_STORE (fd + g * BN_VEC, s[g]);
    BN_STORE (fdx + g * BN_VEC, sx[g]);
  }
}

/* Rows [r0, r1), channels [c0, c0 + n): the per-channel sums of d and
 * d * xhat (float over blocks of BN_ROWS rows, double across). With y
 * (has_y), d = (y > 0 ? dout : 0), the gradient through the ReLU after a
 * block's residual sum, whose output y is at hand; d is then also stored
 * into dmask (may alias dout), for the dx pass and for the shortcut, which
 * takes the same gradient: the mask costs no pass of its own. Same float
 * operations as masking first, then summing with relu 0. */
BN_INLINE void
bn_backward_sums_body (double *sd, double *sdx, float *dmask,
    const float *dout, const float *y, const int has_y, const int relu,
    const float *inp, const float *m, const float *rs, const float *scale,
    const float *shift, int r0, int r1, int C, int c0, int n)
{
  float fd[BN_BLOCK], fdx[BN_BLOCK];
  const int ng = n / BN_VEC;
  memset (sd, 0, sizeof (double) * n);
  memset (sdx, 0, sizeof (double) * n);
  for (int rb = r0; rb < r1; rb += BN_ROWS) {
    const int rows = (rb + BN_ROWS < r1 ? rb + BN_ROWS : r1) - rb;
    const size_t ob = (size_t) rb * C + c0;
    if (ng == 1)
      bn_block_sums (fd, fdx, dmask, dout, y, has_y, relu, inp, m, rs,
          scale, shift, ob, rows, C, 1);
    else if (ng == 2)
      bn_block_sums (fd, fdx, dmask, dout, y, has_y, relu, inp, m, rs,
          scale, shift, ob, rows, C, 2);
    else if (ng == 4)
      bn_block_sums (fd, fdx, dmask, dout, y, has_y, relu, inp, m, rs,
          scale, shift, ob, rows, C, 4);
    else if (ng > 2)
      bn_block_sums (fd, fdx, dmask, dout, y, has_y, relu, inp, m, rs,
          scale, shift, ob, rows, C, ng);
    for (int c = ng * BN_VEC; c < n; c++) {
      float s = 0.0f, sx = 0.0f;
      for (int r = 0; r < rows; r++) {
        const size_t o = ob + (size_t) r * C + c;
        float g;
        if (has_y) {
          float dj = dout[o];
          g = y[o] > 0.0f ? dj : 0.0f;
        } else {
          g = bn_grad (dout + o - c, inp + o - c, scale, shift, relu, c);
        }
        s += g;
        sx += g * ((inp[o] - m[c]) * rs[c]);
        if (has_y)
          dmask[o] = g;
      }
      fd[c] = s;
      fdx[c] = sx;
    }
    bn_accumulate_double (sd, fd, n);
    bn_accumulate_double (sdx, fdx, n);
  }
}

/* dinp (+)= k * (d - mean_d - xhat * mean_dx) for rows [r0, r1) of ng
 * groups (the constants start at the first channel, the tensors at
 * offset o0). */
BN_INLINE void
bn_rows_dx (float *dinp, const int accumulate, const float *dout,
    const int relu, const float *inp, const float *m, const float *rs,
    const float *scale, const float *shift, const float *k,
    const float *mean_d, const float *mean_dx, size_t o0, int rows, int C,
    const int ng)
{
  const BnVec zero = { 0 };
  BnVec va[BN_GROUPS], vb[BN_GROUPS], vm[BN_GROUPS], vr[BN_GROUPS];
  BnVec vk[BN_GROUPS], md[BN_GROUPS], mdx[BN_GROUPS];
  for (int g = 0; g < ng; g++) {
    const int c = g * BN_VEC;
    va[g] = vb[g] = zero;
    if (relu) {
      BN_LOAD (va[g], scale + c);
      BN_LOAD (vb[g], shift + c);
    }
    BN_LOAD (vm[g], m + c);
    BN_LOAD (vr[g], rs + c);
    BN_LOAD (vk[g], k + c);
    BN_LOAD (md[g], mean_d + c);
    BN_LOAD (mdx[g], mean_dx + c);
  }
  for (int r = 0; r < rows; r++) {
    for (int g = 0; g < ng; g++) {
      const size_t o = o0 + (size_t) r * C + g * BN_VEC;
      __builtin_prefetch (dout + o + (size_t) BN_PF_ROWS * C);
      BnVec x, d, t;
      BN_LOAD (x, inp + o);
      BN_LOAD (d, dout + o);
      BnVec xhat = (x - vm[g]) * vr[g];
      t = vk[g] * (BN_GRAD (d, x, va[g], vb[g], relu) - md[g] -
          xhat * mdx[g]);
      if (accumulate) {
        BnVec old;
        BN_LOAD (old, dinp + o);
        t = old + t;
      }
      BN_STORE (dinp + o, t);
    }
  }
}

/* dinp (+)= k * (d - mean_d - xhat * mean_dx), rows [r0, r1), in blocks of
 * BN_ROWS rows. */
BN_INLINE void
bn_backward_dx_body (float *dinp, const int accumulate, const float *dout,
    const int relu, const float *inp, const float *m, const float *rs,
    const float *scale, const float *shift, const float *k,
    const float *mean_d, const float *mean_dx, int r0, int r1, int C, int c0,
    int n)
{
  const int ng = n / BN_VEC;
  for (int rb = r0; rb < r1; rb += BN_ROWS) {
    const int rows = (rb + BN_ROWS < r1 ? rb + BN_ROWS : r1) - rb;
    const size_t ob = (size_t) rb * C + c0;
    if (ng == 1)
      bn_rows_dx (dinp, accumulate, dout, relu, inp, m, rs, scale, shift, k,
          mean_d, mean_dx, ob, rows, C, 1);
    else if (ng == 2)
      bn_rows_dx (dinp, accumulate, dout, relu, inp, m, rs, scale, shift, k,
          mean_d, mean_dx, ob, rows, C, 2);
    else if (ng == 4)
      bn_rows_dx (dinp, accumulate, dout, relu, inp, m, rs, scale, shift, k,
          mean_d, mean_dx, ob, rows, C, 4);
    else if (ng > 2)
      bn_rows_dx (dinp, accumulate, dout, relu, inp, m, rs, scale, shift, k,
          mean_d, mean_dx, ob, rows, C, ng);
    for (int r = 0; r < rows; r++)
      for (int c = ng * BN_VEC; c < n; c++) {
        const size_t o = ob + (size_t) r * C + c;
        float xhat = (inp[o] - m[c]) * rs[c];
        float t = k[c] * (bn_grad (dout + o - c, inp + o - c, scale, shift,
                relu, c) - mean_d[c] - xhat * mean_dx[c]);
        dinp[o] = accumulate ? dinp[o] + t : t;
      }
  }
}

/* ---------------------------------------------------------------------------
 * One copy of the dispatchers per instruction-set level, chosen by
 * simclr_cpu_level () (SIMCLR_CPU forces a lower one). The bodies are the
 * same source, inlined into functions compiled for each level: these
 * passes are memory-bound, and the portable build's SSE2 loops moved each
 * 8-channel group in two halves (bench-train --profile, one thread, Zen 5:
 * batch norm 145 -> 125 ms of a 900 ms step with 8-wide AVX vectors).
 * Results are bit-identical across levels: the loops are element-wise
 * across channels (each channel's sums keep their order) and ISO C mode
 * contracts no multiply-add into an FMA. */
#define BN_LEVEL_FUNCTIONS(L, ATTR)                                         \
  ATTR static void                                                          \
  bn_moments_##L (double *mean, double *m2, const float *inp, int r0,       \
      int r1, int C, int c0, int n)                                         \
  {                                                                         \
    bn_moments_body (mean, m2, inp, r0, r1, C, c0, n);                      \
  }                                                                         \
                                                                            \
  ATTR static void                                                          \
  bn_affine_act_##L (float *out, const float *inp, const float *res,        \
      int relu, int r0, int r1, int C, int c0, int n, const float *scale,   \
      const float *shift, const float *rscale, const float *rshift)         \
  {                                                                         \
    if (res && rscale && relu)                                              \
      bn_affine_act_body (out, inp, res, 1, 1, 1, r0, r1, C, c0, n, scale,  \
          shift, rscale, rshift);                                           \
    else if (res && rscale)                                                 \
      bn_affine_act_body (out, inp, res, 1, 1, 0, r0, r1, C, c0, n, scale,  \
          shift, rscale, rshift);                                           \
    else if (res && relu)                                                   \
      bn_affine_act_body (out, inp, res, 1, 0, 1, r0, r1, C, c0, n, scale,  \
          shift, NULL, NULL);                                               \
    else if (res)                                                           \
      bn_affine_act_body (out, inp, res, 1, 0, 0, r0, r1, C, c0, n, scale,  \
          shift, NULL, NULL);                                               \
    else if (relu)                                                          \
      bn_affine_act_body (out, inp, NULL, 0, 0, 1, r0, r1, C, c0, n, scale, \
          shift, NULL, NULL);                                               \
    else                                                                    \
      bn_affine_act_body (out, inp, NULL, 0, 0, 0, r0, r1, C, c0, n, scale, \
          shift, NULL, NULL);                                               \
  }                                                                         \
                                                                            \
  ATTR static void                                                          \
  bn_backward_sums_##L (double *sd, double *sdx, const float *dout,         \
      int relu, const float *inp, const float *m, const float *rs,          \
      const float *scale, const float *shift, int r0, int r1, int C,        \
      int c0, int n)                                                        \
  {                                                                         \
    if (relu)                                                               \
      bn_backward_sums_body (sd, sdx, NULL, dout, NULL, 0, 1, inp, m, rs,   \
          scale, shift, r0, r1, C, c0, n);                                  \
    else                                                                    \
      bn_backward_sums_body (sd, sdx, NULL, dout, NULL, 0, 0, inp, m, rs,   \
          scale, shift, r0, r1, C, c0, n);                                  \
  }                                                                         \
                                                                            \
  ATTR static void                                                          \
  bn_backward_sums_mask_##L (double *sd, double *sdx, float *dmask,         \
      const float *dout, const float *y, const float *inp, const float *m,  \
      const float *rs, int r0, int r1, int C, int c0, int n)                \
  {                                                                         \
    bn_backward_sums_body (sd, sdx, dmask, dout, y, 1, 0, inp, m, rs,       \
        NULL, NULL, r0, r1, C, c0, n);                                      \
  }                                                                         \
                                                                            \
  ATTR static void                                                          \
  bn_backward_dx_##L (float *dinp, int accumulate, const float *dout,       \
      int relu, const float *inp, const float *m, const float *rs,          \
      const float *scale, const float *shift, const float *k,               \
      const float *mean_d, const float *mean_dx, int r0, int r1, int C,     \
      int c0, int n)                                                        \
  {                                                                         \
    if (relu && accumulate)                                                 \
      bn_backward_dx_body (dinp, 1, dout, 1, inp, m, rs, scale, shift, k,   \
          mean_d, mean_dx, r0, r1, C, c0, n);                               \
    else if (relu)                                                          \
      bn_backward_dx_body (dinp, 0, dout, 1, inp, m, rs, scale, shift, k,   \
          mean_d, mean_dx, r0, r1, C, c0, n);                               \
    else if (accumulate)                                                    \
      bn_backward_dx_body (dinp, 1, dout, 0, inp, m, rs, scale, shift, k,   \
          mean_d, mean_dx, r0, r1, C, c0, n);                               \
    else                                                                    \
      bn_backward_dx_body (dinp, 0, dout, 0, inp, m, rs, scale, shift, k,   \
          mean_d, mean_dx, r0, r1, C, c0, n);                               \
  }                                                                         \
                                                                            \
  static const BnFns bn_fns_##L = {                                         \
    bn_moments_##L, bn_affine_act_##L, bn_backward_sums_##L,                \
    bn_backward_sums_mask_##L, bn_backward_dx_##L                           \
  };

BN_LEVEL_FUNCTIONS (generic,)
#if defined(__GNUC__) && defined(__x86_64__)
#define BN_X86 1
BN_LEVEL_FUNCTIONS (avx2, __attribute__ ((target ("avx2"))))
BN_LEVEL_FUNCTIONS (avx512,
    __attribute__ ((target ("avx512f,avx512bw,avx512dq,avx512vl,avx2"))))
#endif

static const BnFns *
bn_fns (void)
{
#ifdef BN_X86
  const SimclrCpuLevel level = simclr_cpu_level ();
  if (level >= SIMCLR_CPU_AVX512)
    return &bn_fns_avx512;
  if (level >= SIMCLR_CPU_AVX2)
    return &bn_fns_avx2;
#endif
  return &bn_fns_generic;
}

/* Both backward entries: with y, dout is masked by y > 0 (stored into
 * dmask) in the sums pass and the dx pass reads dmask; without, relu says
 * whether the mask is recomputed from inp. */
static void
bn_backward (float *dinp, float *dmask, float *dweight, float *dbias,
    const float *dout, const float *y, const float *inp, const float *weight,
    const float *bias, const float *mean, const float *rstd, int relu,
    int accumulate, int M, int C, int threads, SimclrAllreduceFn allreduce,
    void *allreduce_user)
{
  /* dout, inp, dinp (M, C); weight, bias, mean, rstd, dweight, dbias (C).
   * Accumulates dweight, dbias and, with accumulate, dinp (else writes it).
   * With d the gradient wrt the BN output (dout masked by the ReLU when
   * relu), xhat = (x - mean) * rstd and N the global row count:
   *   dinp = rstd * w * (d - sum(d) / N - xhat * sum(d * xhat) / N)
   * where the two sums run over all replicas' rows. dweight and dbias get
   * this replica's share only (sum over local rows): the trainer reduces the
   * gradient buffer across replicas afterwards, as for every parameter. */
  BnJob job = {.fns = bn_fns (), .M = M, .C = C, .inp = inp, .dout = dout, .dinp = dinp,
    .y = y, .dmask = dmask, .relu = y ? 0 : relu, .accumulate = accumulate
  };
  for (int c0 = 0; c0 < C; c0 += BN_BLOCK) {
    const int n = C - c0 < BN_BLOCK ? C - c0 : BN_BLOCK;
    float buf[2 * BN_BLOCK + 1];
    /* the forward's scale and shift, computed as it did; k = rstd * weight
     * of the formula above is the scale */
    float scale[BN_BLOCK], shift[BN_BLOCK];
    for (int c = 0; c < n; c++) {
      scale[c] = rstd[c0 + c] * weight[c0 + c];
      shift[c] = job.relu ? bias[c0 + c] - mean[c0 + c] * scale[c] : 0.0f;
    }
    job.c0 = c0;
    job.n = n;
    job.tasks = bn_tasks (threads, M, n);
    job.mean = mean + c0;
    job.rstd = rstd + c0;
    job.scale = scale;
    job.shift = shift;
    if (y) {
      job.dout = dout;
      bn_run (&job, BN_PHASE_BWD_SUMS_MASK);
      job.dout = dmask;         /* the dx pass reads the masked gradient */
    } else {
      bn_run (&job, BN_PHASE_BWD_SUMS);
    }
    for (int c = 0; c < n; c++) {
      double sd = 0, sdx = 0;
      for (int t = 0; t < job.tasks; t++) {
        sd += job.a[t][c];
        sdx += job.b[t][c];
      }
      dbias[c0 + c] += (float) sd;
      dweight[c0 + c] += (float) sdx;
      buf[c] = (float) sd;
      buf[n + c] = (float) sdx;
    }
    buf[2 * n] = (float) M;
    if (allreduce)
      allreduce (buf, 2 * n + 1, allreduce_user);
    const float count = buf[2 * n];
    float mean_d[BN_BLOCK], mean_dx[BN_BLOCK];
    for (int c = 0; c < n; c++) {
      mean_d[c] = buf[c] / count;
      mean_dx[c] = buf[n + c] / count;
    }
    job.mean_d = mean_d;
    job.mean_dx = mean_dx;
    bn_run (&job, BN_PHASE_BWD_DX);
  }
}

void
simclr_batchnorm_act_backward (float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight,
    const float *bias, const float *mean, const float *rstd, int relu,
    int accumulate, int M, int C, int threads, SimclrAllreduceFn allreduce,
    void *allreduce_user)
{
  bn_backward (dinp, NULL, dweight, dbias, dout, NULL, inp, weight, bias,
      mean, rstd, relu, accumulate, M, C, threads, allreduce,
      allreduce_user);
}

void
simclr_batchnorm_residual_relu_backward (float *dinp, float *dmask,
    float *dweight, float *dbias, const float *dout, const float *y,
    const float *inp, const float *weight, const float *mean,
    const float *rstd, int accumulate, int M, int C, int threads,
    SimclrAllreduceFn allreduce, void *allreduce_user)
{
  /* dout, y, inp, dinp, dmask (M, C); weight, mean, rstd, dweight, dbias
   * (C). dmask may alias dout. */
  bn_backward (dinp, dmask, dweight, dbias, dout, y, inp, weight, NULL,
      mean, rstd, 0, accumulate, M, C, threads, allreduce, allreduce_user);
}

void
simclr_batchnorm_backward (float *dinp, float *dweight, float *dbias,
    const float *dout, const float *inp, const float *weight,
    const float *mean, const float *rstd, int M, int C,
    SimclrAllreduceFn allreduce, void *allreduce_user)
{
  simclr_batchnorm_act_backward (dinp, dweight, dbias, dout, inp, weight,
      NULL, mean, rstd, 0, 1, M, C, 1, allreduce, allreduce_user);
}
