/* ntxent.c: the NT-Xent loss, its gradient and contrastive accuracy
 * (see include/simclr/ntxent.h).
 *
 * Two modes: pairs (one positive per anchor, SimCLR's two views) and groups
 * (every other row of the anchor's sample is a positive: K views per
 * sample, the multi-positive form). Either mode may add Q extra negatives
 * (a queue of earlier projections: constants, no gradient flows into them).
 * Not here: gathering z across replicas or keeping the queue (loss.c does
 * both) or any network layer. The (R,R) similarity matrix is one
 * cblas_ssyrk, the (R,Q) similarities to the queue one cblas_sgemm; the
 * backward pass is one cblas_sgemm (two with a queue) plus the Jacobian of
 * the L2 normalisation.
 */
#include "simclr/ntxent.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "simclr/cpu.h"
#include "ntxent-private.h"

/* F.normalize's eps: u = z / max (||z||, eps), so a zero row gives u = 0
 * instead of a division by zero. */
#define NTXENT_NORM_EPS 1e-12

/* Tiles of the (R,R) matrix's mirror (forward) and symmetrisation
 * (backward): a row-major walk of one triangle reads the other down its
 * columns, a cache miss per element once R rows of R floats outgrow L1. */
#define NTXENT_TILE 32

struct SimclrNtxent {
  int max_rows, max_dim, max_queue;
  SimclrCpuLevel level;  /* which copy of the row pass runs (cpu.c) */
  /* The last successful forward (rows == 0: none yet). */
  int rows, dim;
  float tau;
  float *u;        /* (R, D) unit rows u_i = z_i / max (||z_i||, eps) */
  float *inv_norm; /* (R) 1 / max (||z_i||, eps) */
  int *clamped;    /* (R) 1 where ||z_i|| < eps (u is then linear in z) */
  float *prob;     /* (R, R) softmax_k (s_ik) over k != i, 0 on the diagonal;
                    * holds the raw cosine similarities between the ssyrk and
                    * the row pass */
  float *grad_s;   /* (R, R) backward scratch */
  int *positive;   /* (R) the partner of each anchor (pairs mode) */
  int *group;      /* (R) each row's sample (groups mode) */
  int grouped;     /* the last forward: 1 groups, 0 pairs */
  /* Extra negatives of the last forward (Q = queue_rows, 0: none). */
  const float *queue; /* (Q, D) borrowed from the caller until backward */
  int queue_rows;
  float *qprob;    /* (R, max_queue) softmax_q (s_iq), beside prob's row i;
                    * holds the raw similarities u_i.m_q first */
};

SimclrNtxent *
simclr_ntxent_new (int max_rows, int dim, SimclrError *err)
{
  return simclr_ntxent_new_with_queue (max_rows, 0, dim, err);
}

SimclrNtxent *
simclr_ntxent_new_with_queue (int max_rows, int max_queue, int dim,
    SimclrError *err)
{
  SimclrNtxent *nt;
  size_t r, d;

  if (max_rows < 2 || max_rows % 2 != 0 || max_rows > 65536) {
    simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "ntxent: max_rows %d must be even and in [2, 65536]", max_rows);
    return NULL;
  }
  if (dim <= 0 || dim > (1 << 24)) {
    simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "ntxent: dim %d must be in [1, 16777216]", dim);
    return NULL;
  }
  if (max_queue < 0 || max_queue > SIMCLR_NTXENT_MAX_QUEUE) {
    simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "ntxent: max_queue %d must be in [0, %d]", max_queue,
        SIMCLR_NTXENT_MAX_QUEUE);
    return NULL;
  }
  r = (size_t) max_rows;
  d = (size_t) dim;

  nt = calloc (1, sizeof *nt);
  if (!nt)
    goto no_memory;
  nt->max_rows = max_rows;
  nt->max_dim = dim;
  nt->max_queue = max_queue;
  nt->level = simclr_cpu_level ();
  if (max_queue > 0) {
    nt->qprob = malloc (r * (size_t) max_queue * sizeof (float));
    if (!nt->qprob)
      goto no_memory;
  }
  nt->u = malloc (r * d * sizeof (float));
  nt->inv_norm = malloc (r * sizeof (float));
  nt->clamped = malloc (r * sizeof (int));
  nt->prob = malloc (r * r * sizeof (float));
  nt->grad_s = malloc (r * r * sizeof (float));
  nt->positive = malloc (r * sizeof (int));
  nt->group = malloc (r * sizeof (int));
  if (!nt->u || !nt->inv_norm || !nt->clamped || !nt->prob || !nt->grad_s
      || !nt->positive || !nt->group)
    goto no_memory;
  return nt;

  /* ERRORS */
no_memory:
  simclr_ntxent_free (nt);
  simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
      "ntxent: cannot allocate a workspace for %d rows of %d (queue %d)",
      max_rows, dim, max_queue);
  return NULL;
}

void
simclr_ntxent_free (SimclrNtxent *nt)
{
  if (!nt)
    return;
  free (nt->u);
  free (nt->inv_norm);
  free (nt->clamped);
  free (nt->prob);
  free (nt->grad_s);
  free (nt->positive);
  free (nt->group);
  free (nt->qprob);
  free (nt);
}

/* ---------------------------------------------------------------------------
 * The row pass: every anchor's rank, log-sum-exp and softmax, vectorised.
 *
 * Vectors of 8 floats in whatever SIMD the target has (GCC / Clang vector
 * extension, lowered to narrower registers where needed). The pass is
 * built three times (row_pass_generic / _avx2 / _avx512 below, the same
 * body inlined under another target) and the workspace runs the copy of
 * its CPU level (cpu.c: the CPU's best, or the lower one SIMCLR_CPU
 * forces). The arithmetic is the same IEEE float32 / float64 operations in
 * the same order in every copy (no FMA contraction in ISO C mode), so the
 * three give the same bits. 8 lanes rather than AVX-512's 16: GCC lowers
 * a 16-lane float64 conversion through scalars in the AVX2 copy (1.7x
 * slower there), and 16 lanes gained only ~15 % in the AVX-512 one. No
 * helper takes a vector argument (nt_exp is a macro): GCC warns that such
 * functions change ABI with the target. */
typedef float nt_vf __attribute__ ((vector_size (32)));
typedef int32_t nt_vi __attribute__ ((vector_size (32)));
typedef double nt_vd __attribute__ ((vector_size (64)));
typedef float nt_vf_u __attribute__ ((vector_size (32), aligned (4),
        may_alias));
#define NT_VL 8
#define NT_HOT static inline __attribute__ ((always_inline))
#define NT_VS(x) ((nt_vf) { (x), (x), (x), (x), (x), (x), (x), (x) })
#define NT_VSI(x) ((nt_vi) { (x), (x), (x), (x), (x), (x), (x), (x) })
#define nt_load(p) (*(const nt_vf_u *) (p))
#define nt_store(p, v) (*(nt_vf_u *) (p) = (v))
/* Lane-wise m ? a : b, m from a vector comparison (all ones or zero). */
#define nt_sel(m, a, b) ((nt_vf) (((m) & (nt_vi) (a)) | (~(m) & (nt_vi) (b))))

/* e^t for every lane of t <= 0 (the logits minus their maximum), float32
 * within about 1 ulp: t = k ln 2 + r with k = round (t / ln 2) and
 * |r| <= ln 2 / 2; e^r by its Taylor polynomial to r^7 (the first term
 * left out, r^8 / 8! < 5.2e-9, is below half an ulp); times 2^k built in the
 * exponent bits. ln 2 is split in two so that k ln2_hi is exact (ln2_hi
 * has 16 significant bits, |k| <= 127). Lanes below -87 give 0: e^-87 =
 * 1.6e-38 is at the bottom of float32's normal range, and it is added to a
 * sum that holds at least one term of 1 (the maximum's), so it could not
 * count. Lanes may be -inf (the anchor's own column): clamped first so no
 * conversion overflows, then 0. Rounding k: adding 1.5 * 2^23 leaves no
 * fraction bits (strict IEEE evaluation: never -ffast-math). */
#define NT_LOG2E 1.44269504088896341f
#define NT_LN2_HI 0.693145751953125f
#define NT_LN2_LO 1.42860682030941723212e-6f
#define nt_exp(out, tin) do {                                               \
    nt_vf t_ = (tin);                                                       \
    nt_vi under_ = t_ < NT_VS (-87.0f);                                     \
    t_ = nt_sel (t_ < NT_VS (-88.0f), NT_VS (-88.0f), t_);                  \
    nt_vf k_ = (t_ * NT_VS (NT_LOG2E) + NT_VS (12582912.0f))                \
        - NT_VS (12582912.0f);                                              \
    nt_vf r_ = (t_ - k_ * NT_VS (NT_LN2_HI)) - k_ * NT_VS (NT_LN2_LO);      \
    nt_vf p_ = NT_VS (1.0f / 5040.0f);                                      \
    p_ = p_ * r_ + NT_VS (1.0f / 720.0f);                                   \
    p_ = p_ * r_ + NT_VS (1.0f / 120.0f);                                   \
    p_ = p_ * r_ + NT_VS (1.0f / 24.0f);                                    \
    p_ = p_ * r_ + NT_VS (1.0f / 6.0f);                                     \
    p_ = p_ * r_ + NT_VS (0.5f);                                            \
    p_ = p_ * r_ + NT_VS (1.0f);                                            \
    p_ = p_ * r_ + NT_VS (1.0f);                                            \
    nt_vi e_ = (__builtin_convertvector (k_, nt_vi) + NT_VSI (127)) << 23;  \
    (out) = nt_sel (under_, NT_VS (0.0f), p_ * (nt_vf) e_);                 \
  } while (0)

/* max_k x[k] (-inf for n = 0). */
NT_HOT float
nt_max (const float *x, int n)
{
  nt_vf m = NT_VS (-INFINITY);
  float r = -INFINITY;
  int k = 0;
  for (; k + NT_VL <= n; k += NT_VL) {
    nt_vf v = nt_load (x + k);
    m = nt_sel (v > m, v, m);
  }
  for (int l = 0; l < NT_VL; l++)
    r = m[l] > r ? m[l] : r;
  for (; k < n; k++)
    r = x[k] > r ? x[k] : r;
  return r;
}

/* How many x[k] > c. */
NT_HOT int
nt_count_above (const float *x, int n, float c)
{
  nt_vi acc = NT_VSI (0);
  int r = 0, k = 0;
  for (; k + NT_VL <= n; k += NT_VL)
    acc -= nt_load (x + k) > NT_VS (c);        /* true lanes are -1 */
  for (int l = 0; l < NT_VL; l++)
    r += acc[l];
  for (; k < n; k++)
    r += x[k] > c;
  return r;
}

/* x[k] <- e^((x[k] - xmax) inv_tau); returns their sum, accumulated in
 * float64 (8 lanes, then the lanes in order). The tail goes through a
 * block padded with -inf (terms of 0). */
NT_HOT double
nt_exp_sum (float *x, int n, float xmax, float inv_tau)
{
  nt_vd acc = { 0 };
  double sum = 0.0;
  int k = 0;
  for (; k + NT_VL <= n; k += NT_VL) {
    nt_vf e;
    nt_exp (e, (nt_load (x + k) - NT_VS (xmax)) * NT_VS (inv_tau));
    nt_store (x + k, e);
    acc += __builtin_convertvector (e, nt_vd);
  }
  if (k < n) {
    float tail[NT_VL];
    nt_vf e;
    for (int l = 0; l < NT_VL; l++)
      tail[l] = k + l < n ? x[k + l] : -INFINITY;
    nt_exp (e, (nt_load (tail) - NT_VS (xmax)) * NT_VS (inv_tau));
    nt_store (tail, e);
    acc += __builtin_convertvector (e, nt_vd);
    for (int l = 0; k + l < n; l++)
      x[k + l] = tail[l];
  }
  for (int l = 0; l < NT_VL; l++)
    sum += acc[l];
  return sum;
}

/* x[k] <- x[k] * s. */
NT_HOT void
nt_scale (float *x, int n, float s)
{
  int k = 0;
  for (; k + NT_VL <= n; k += NT_VL)
    nt_store (x + k, nt_load (x + k) * NT_VS (s));
  for (; k < n; k++)
    x[k] *= s;
}

/* Per anchor i of prob (R, R) (the similarities; the queue's in qprob
 * (R, Q)): the contrastive rank (hits1/hits5), the loss term
 * lse_i - cpos_i / tau summed into *loss_sum, and the row replaced by its
 * softmax over k != i (0 at k = i; qprob's row likewise, in the same
 * denominator). Pairs mode: positive; groups mode: group. Returns the
 * first row that has no positive (groups mode), or -1. */
NT_HOT int
row_pass (float *prob, float *qprob, int R, int Q, float tau,
    const int *positive, const int *group, double *loss_sum, int *hits1,
    int *hits5)
{
  const double inv_tau = 1.0 / tau;
  const float inv_tau_f = (float) inv_tau;

  for (int i = 0; i < R; i++) {
    float *row = prob + (size_t) i * R;
    float *qrow = Q > 0 ? qprob + (size_t) i * Q : NULL;
    /* cpos: the positive's similarity, or with groups the mean over the
     * positives; cbest: the most similar positive's (the rank's). */
    float cbest, rmax;
    double cpos, m, sum;
    int above;

    /* The anchor's own column leaves the rank, the maximum and the sum:
     * -inf is never above anything and its term is 0. */
    row[i] = -INFINITY;
    if (!group) {
      const int p = positive[i];
      cpos = cbest = row[p];
      /* Contrastive rank of the positive: how many OTHER rows (neither the
       * anchor nor its positive) are strictly more similar. Ties count in
       * the positive's favour, so identical rows score top-1 (the positive
       * itself is never strictly above cbest). */
      above = nt_count_above (row, R, cbest);
    } else {
      const int g = group[i];
      int npos = 0;
      double psum = 0.0;
      cbest = -INFINITY;
      for (int k = 0; k < R; k++)
        if (k != i && group[k] == g) {
          npos++;
          psum += row[k];
          cbest = row[k] > cbest ? row[k] : cbest;
        }
      if (npos == 0)
        return i;
      cpos = psum / npos;
      /* Rank of the best positive among the non-positive rows. */
      above = 0;
      for (int k = 0; k < R; k++)
        if (k != i && group[k] != g && row[k] > cbest)
          above++;
    }
    if (Q > 0)
      above += nt_count_above (qrow, Q, cbest);
    *hits1 += above < 1;
    *hits5 += above < 5;

    /* log sum_{k != i} exp (s_ik) with the largest s subtracted first.
     * Logits lie in [-1/tau, 1/tau]: for a small tau, exp (1/tau) overflows
     * (float past 88, double past 709), and when every other row is far
     * the terms e^{s} may all underflow, giving log (0). After the shift
     * every term is in (0, 1] and one is exactly 1 (e^0: the polynomial
     * gives 1 at r = 0), so the sum is in [1, R-1] whatever tau is (llm.c
     * softmax does the same). The shift is taken on the similarities
     * (inv_tau > 0 keeps the order) and subtracted before the scaling,
     * so a logit near the maximum loses no digits. */
    rmax = nt_max (row, R);
    if (Q > 0) {
      float qmax = nt_max (qrow, Q);
      rmax = qmax > rmax ? qmax : rmax;
    }
    m = rmax * inv_tau;
    sum = nt_exp_sum (row, R, rmax, inv_tau_f);
    /* The queue's terms after the batch's, so that Q = 0 is the same
     * arithmetic in the same order as without a queue. */
    if (Q > 0)
      sum += nt_exp_sum (qrow, Q, rmax, inv_tau_f);
    *loss_sum += m + log (sum) - cpos * inv_tau;
    /* Row i's softmax (its own column's term is 0). */
    nt_scale (row, R, (float) (1.0 / sum));
    if (Q > 0)
      nt_scale (qrow, Q, (float) (1.0 / sum));
  }
  return -1;
}

/* Per level: the kernel's exp pass over x (see nt_exp_sum), for tests. */
static double
exp_sum_generic (float *x, int n, float xmax, float inv_tau)
{
  return nt_exp_sum (x, n, xmax, inv_tau);
}

static int
row_pass_generic (float *prob, float *qprob, int R, int Q, float tau,
    const int *positive, const int *group, double *loss_sum, int *hits1,
    int *hits5)
{
  return row_pass (prob, qprob, R, Q, tau, positive, group, loss_sum, hits1,
      hits5);
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__ ((target ("avx2,fma"))) static int
row_pass_avx2 (float *prob, float *qprob, int R, int Q, float tau,
    const int *positive, const int *group, double *loss_sum, int *hits1,
    int *hits5)
{
  return row_pass (prob, qprob, R, Q, tau, positive, group, loss_sum, hits1,
      hits5);
}

__attribute__ ((target ("avx2,fma"))) static double
exp_sum_avx2 (float *x, int n, float xmax, float inv_tau)
{
  return nt_exp_sum (x, n, xmax, inv_tau);
}

__attribute__ ((target ("avx512f,avx512bw,avx512dq,avx512vl"))) static double
exp_sum_avx512 (float *x, int n, float xmax, float inv_tau)
{
  return nt_exp_sum (x, n, xmax, inv_tau);
}

__attribute__ ((target ("avx512f,avx512bw,avx512dq,avx512vl"))) static int
row_pass_avx512 (float *prob, float *qprob, int R, int Q, float tau,
    const int *positive, const int *group, double *loss_sum, int *hits1,
    int *hits5)
{
  return row_pass (prob, qprob, R, Q, tau, positive, group, loss_sum, hits1,
      hits5);
}
#else
#define row_pass_avx2 row_pass_generic
#define row_pass_avx512 row_pass_generic
#define exp_sum_avx2 exp_sum_generic
#define exp_sum_avx512 exp_sum_generic
#endif

double
simclr_ntxent_exp_sum_at (SimclrCpuLevel level, float *x, int n, float xmax,
    float inv_tau)
{
  if (level > simclr_cpu_best_level ())
    level = simclr_cpu_best_level ();
  return level >= SIMCLR_CPU_AVX512 ? exp_sum_avx512 (x, n, xmax, inv_tau)
      : level >= SIMCLR_CPU_AVX2 ? exp_sum_avx2 (x, n, xmax, inv_tau)
      : exp_sum_generic (x, n, xmax, inv_tau);
}

void
simclr_ntxent_set_cpu_level (SimclrNtxent *nt, SimclrCpuLevel level)
{
  if (!nt)
    return;
  nt->level = level < simclr_cpu_best_level () ? level
      : simclr_cpu_best_level ();
}

/* The forward of both modes: pairs (@group NULL: @positive, or the default
 * i <-> i +- R/2) or groups (@group: every other row of the group). */
static SimclrStatus
forward (SimclrNtxent *nt, const float *z, int rows, int dim, float tau,
    const int *positive, const int *group, const float *queue,
    int queue_rows, SimclrNtxentResult *result, SimclrError *err)
{
  /* z (R, D), u (R, D), prob (R, R), queue M (Q, D), qprob (R, Q);
   * R = rows, D = dim, Q = queue_rows. */
  const int R = rows, D = dim, Q = queue_rows;
  double loss_sum = 0.0;
  int hits1 = 0, hits5 = 0;

  if (!nt || !z || !result)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "ntxent: NULL workspace, z or result");
  /* Any failure below leaves nothing for backward. */
  nt->rows = 0;
  if (group && (R < 2 || R > nt->max_rows))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "ntxent: rows %d must be in [2, %d]", R, nt->max_rows);
  if (!group && (R < 2 || R % 2 != 0 || R > nt->max_rows))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "ntxent: rows %d must be even and in [2, %d]", R, nt->max_rows);
  if (D <= 0 || D > nt->max_dim)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "ntxent: dim %d must be in [1, %d]", D, nt->max_dim);
  if (!(tau > 0.0f) || !isfinite (tau))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "ntxent: temperature %g must be positive and finite", (double) tau);
  if (Q < 0 || Q > nt->max_queue || (Q > 0 && !queue))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "ntxent: %d queue rows (%s) for a workspace of at most %d", Q,
        queue ? "given" : "NULL", nt->max_queue);
  if (positive) {
    for (int i = 0; i < R; i++)
      if (positive[i] < 0 || positive[i] >= R || positive[i] == i)
        return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
            "ntxent: positive[%d] = %d must be another row in [0, %d)",
            i, positive[i], R);
  }

  /* Normalise rows; the norm in double so large D loses nothing. */
  for (int i = 0; i < R; i++) {
    const float *zi = z + (size_t) i * D;
    float *ui = nt->u + (size_t) i * D;
    double ss = 0.0, n;
    float inv;
    for (int c = 0; c < D; c++)
      ss += (double) zi[c] * zi[c];
    if (!isfinite (ss))
      return simclr_error_set (err, SIMCLR_ERROR_NUMERIC,
          "ntxent: row %d of z (%d x %d) is not finite", i, R, D);
    n = sqrt (ss);
    nt->clamped[i] = n < NTXENT_NORM_EPS;
    inv = (float) (1.0 / (nt->clamped[i] ? NTXENT_NORM_EPS : n));
    nt->inv_norm[i] = inv;
    for (int c = 0; c < D; c++)
      ui[c] = zi[c] * inv;
    if (group)
      nt->group[i] = group[i];
    else
      nt->positive[i] = positive ? positive[i]
          : (i < R / 2 ? i + R / 2 : i - R / 2);
  }
  nt->grouped = group != NULL;
  nt->queue = Q > 0 ? queue : NULL;
  nt->queue_rows = Q;

  /* Cosine similarities C = U U^T, C (R,R), U (R,D): ssyrk with N = R,
   * K = D fills the upper triangle, mirrored below into the lower. */
  cblas_ssyrk (CblasRowMajor, CblasUpper, CblasNoTrans, R, D, 1.0f, nt->u, D,
      0.0f, nt->prob, R);
  /* Lower triangle from the upper, tile by tile. */
  for (int i0 = 0; i0 < R; i0 += NTXENT_TILE)
    for (int k0 = 0; k0 <= i0; k0 += NTXENT_TILE) {
      const int i1 = i0 + NTXENT_TILE < R ? i0 + NTXENT_TILE : R;
      const int k1 = k0 + NTXENT_TILE < R ? k0 + NTXENT_TILE : R;
      for (int i = i0; i < i1; i++)
        for (int k = k0; k < k1 && k < i; k++)
          nt->prob[(size_t) i * R + k] = nt->prob[(size_t) k * R + i];
    }
  /* Similarities to the queue Cq = U M^T, Cq (R,Q), U (R,D), M (Q,D):
   * M = R, N = Q, K = D. The queue's rows are used as given (loss.c stores
   * unit rows). */
  if (Q > 0)
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, R, Q, D, 1.0f,
        nt->u, D, queue, D, 0.0f, nt->qprob, Q);

  {
    int (*pass) (float *, float *, int, int, float, const int *, const int *,
        double *, int *, int *) = nt->level >= SIMCLR_CPU_AVX512
        ? row_pass_avx512 : nt->level >= SIMCLR_CPU_AVX2 ? row_pass_avx2
        : row_pass_generic;
    int lone = pass (nt->prob, nt->qprob, R, Q, tau, nt->positive, group,
        &loss_sum, &hits1, &hits5);
    if (lone >= 0)
      return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "ntxent: row %d is the only row of group %d: every row needs a "
          "positive", lone, group[lone]);
  }

  result->loss = loss_sum / R;
  result->top1 = (double) hits1 / R;
  result->top5 = (double) hits5 / R;
  if (!isfinite (result->loss))
    return simclr_error_set (err, SIMCLR_ERROR_NUMERIC,
        "ntxent: loss is not finite (%d rows, tau %g)", R, (double) tau);

  nt->rows = R;
  nt->dim = D;
  nt->tau = tau;
  return SIMCLR_OK;
}

SimclrStatus
simclr_ntxent_forward (SimclrNtxent *nt, const float *z, int rows, int dim,
    float tau, const int *positive, SimclrNtxentResult *result,
    SimclrError *err)
{
  return forward (nt, z, rows, dim, tau, positive, NULL, NULL, 0, result,
      err);
}

SimclrStatus
simclr_ntxent_forward_groups (SimclrNtxent *nt, const float *z, int rows,
    int dim, float tau, const int *group, SimclrNtxentResult *result,
    SimclrError *err)
{
  if (!group)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "ntxent: groups forward needs a group per row");
  return forward (nt, z, rows, dim, tau, NULL, group, NULL, 0, result, err);
}

SimclrStatus
simclr_ntxent_forward_queue (SimclrNtxent *nt, const float *z, int rows,
    int dim, float tau, const int *positive, const int *group,
    const float *queue, int queue_rows, SimclrNtxentResult *result,
    SimclrError *err)
{
  if (positive && group)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "ntxent: give a positives map or groups, not both");
  return forward (nt, z, rows, dim, tau, positive, group, queue, queue_rows,
      result, err);
}

const float *
simclr_ntxent_unit_rows (const SimclrNtxent *nt, int *rows)
{
  if (rows)
    *rows = nt ? nt->rows : 0;
  return nt && nt->rows > 0 ? nt->u : NULL;
}

void
simclr_ntxent_backward (SimclrNtxent *nt, float *dz)
{
  /* dz (R, D), u (R, D), prob P (R, R), grad_s A (R, R).
   * With s_ik = u_i.u_k / tau and L = mean_i loss_i,
   *   dL/ds_ik = (P_ik - [k == p(i)]) / R   (k != i; 0 for k == i)
   * (groups: (P_ik - [k in P(i)] / |P(i)|) / R)
   * and since s_ik uses u_i and u_k, dL/du = (G + G^T) U / tau.
   * Queue rows m_q are constants: dL/ds_iq = P_iq / R adds only
   * (1 / (R tau)) sum_q P_iq m_q to dL/du_i. */
  int R, D;

  if (!nt || !dz || nt->rows == 0)
    return;
  R = nt->rows;
  D = nt->dim;

  for (int i = 0; i < R; i++) {
    const float *pi = nt->prob + (size_t) i * R;
    float *ai = nt->grad_s + (size_t) i * R;
    for (int k = 0; k < R; k++)
      ai[k] = pi[k];
    if (!nt->grouped) {
      ai[nt->positive[i]] -= 1.0f;
    } else {
      const int g = nt->group[i];
      int npos = 0;
      for (int k = 0; k < R; k++)
        npos += k != i && nt->group[k] == g;
      for (int k = 0; k < R; k++)
        if (k != i && nt->group[k] == g)
          ai[k] -= 1.0f / npos;
    }
  }
  /* Symmetrise in place: A = (G + G^T) / (R tau), tile by tile (each pair
   * (i,k), k > i, once: it reads both and writes both). */
  {
    const float scale = 1.0f / ((float) R * nt->tau);
    float *a = nt->grad_s;
    for (int i = 0; i < R; i++)
      a[(size_t) i * R + i] = 2.0f * a[(size_t) i * R + i] * scale;
    for (int i0 = 0; i0 < R; i0 += NTXENT_TILE)
      for (int k0 = i0; k0 < R; k0 += NTXENT_TILE) {
        const int i1 = i0 + NTXENT_TILE < R ? i0 + NTXENT_TILE : R;
        const int k1 = k0 + NTXENT_TILE < R ? k0 + NTXENT_TILE : R;
        for (int i = i0; i < i1; i++)
          for (int k = k0 > i + 1 ? k0 : i + 1; k < k1; k++) {
            float v = (a[(size_t) i * R + k] + a[(size_t) k * R + i]) * scale;
            a[(size_t) i * R + k] = v;
            a[(size_t) k * R + i] = v;
          }
      }
  }
  /* dU = A U: M = R, N = D, K = R; A (R,R), U (R,D), dU -> dz (R,D). */
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, R, D, R, 1.0f,
      nt->grad_s, R, nt->u, D, 0.0f, dz, D);
  /* dU += Pq M / (R tau): M = R, N = D, K = Q; Pq (R,Q), M (Q,D). */
  if (nt->queue_rows > 0)
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, R, D,
        nt->queue_rows, 1.0f / ((float) R * nt->tau), nt->qprob,
        nt->queue_rows, nt->queue, D, 1.0f, dz, D);

  /* Through u = z / ||z||: dz = (du - (du.u) u) / ||z||. Below eps the norm is
   * the constant eps, so dz = du / eps. */
  for (int i = 0; i < R; i++) {
    float *gi = dz + (size_t) i * D;
    const float *ui = nt->u + (size_t) i * D;
    const float inv = nt->inv_norm[i];
    double dot = 0.0;
    if (nt->clamped[i]) {
      for (int c = 0; c < D; c++)
        gi[c] *= inv;
      continue;
    }
    for (int c = 0; c < D; c++)
      dot += (double) gi[c] * ui[c];
    for (int c = 0; c < D; c++)
      gi[c] = (float) ((gi[c] - dot * ui[c]) * inv);
  }
}
