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

/* F.normalize's eps: u = z / max (||z||, eps), so a zero row gives u = 0
 * instead of a division by zero. */
#define NTXENT_NORM_EPS 1e-12

struct SimclrNtxent {
  int max_rows, max_dim, max_queue;
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
   * K = D fills the upper triangle; the row pass mirrors it. */
  cblas_ssyrk (CblasRowMajor, CblasUpper, CblasNoTrans, R, D, 1.0f, nt->u, D,
      0.0f, nt->prob, R);
  for (int i = 0; i < R; i++)
    for (int k = 0; k < i; k++)
      nt->prob[(size_t) i * R + k] = nt->prob[(size_t) k * R + i];
  /* Similarities to the queue Cq = U M^T, Cq (R,Q), U (R,D), M (Q,D):
   * M = R, N = Q, K = D. The queue's rows are used as given (loss.c stores
   * unit rows). */
  if (Q > 0)
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, R, Q, D, 1.0f,
        nt->u, D, queue, D, 0.0f, nt->qprob, Q);

  for (int i = 0; i < R; i++) {
    float *row = nt->prob + (size_t) i * R;
    float *qrow = Q > 0 ? nt->qprob + (size_t) i * Q : NULL;
    const double inv_tau = 1.0 / tau;
    /* cpos: the positive's similarity, or with groups the mean over the
     * positives; cbest: the most similar positive's (the rank's). */
    float cbest;
    double cpos, m = -INFINITY, sum = 0.0, lse;
    int above = 0;

    if (!group) {
      const int p = nt->positive[i];
      cpos = cbest = row[p];
      /* Contrastive rank of the positive: how many OTHER rows (neither the
       * anchor nor its positive) are strictly more similar. Ties count in
       * the positive's favour, so identical rows score top-1. */
      for (int k = 0; k < R; k++)
        if (k != i && k != p && row[k] > cbest)
          above++;
      for (int q = 0; q < Q; q++)
        above += qrow[q] > cbest;
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
        return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
            "ntxent: row %d is the only row of group %d: every row needs a "
            "positive", i, g);
      cpos = psum / npos;
      /* Rank of the best positive among the non-positive rows. */
      for (int k = 0; k < R; k++)
        if (k != i && group[k] != g && row[k] > cbest)
          above++;
      for (int q = 0; q < Q; q++)
        above += qrow[q] > cbest;
    }
    hits1 += above < 1;
    hits5 += above < 5;

    /* log sum_{k != i} exp (s_ik) with the largest s subtracted first.
     * Logits lie in [-1/tau, 1/tau]: for a small tau, exp (1/tau) overflows
     * (float past 88, double past 709), and when every other row is far
     * the terms e^{s} may all underflow, giving log (0). After the shift
     * every term is in (0, 1] and one is exactly 1, so the sum is in
     * [1, R-1] whatever tau is (llm.c softmax does the same). */
    for (int k = 0; k < R; k++)
      if (k != i && row[k] * inv_tau > m)
        m = row[k] * inv_tau;
    for (int q = 0; q < Q; q++)
      if (qrow[q] * inv_tau > m)
        m = qrow[q] * inv_tau;
    for (int k = 0; k < R; k++) {
      if (k == i)
        continue;
      double e = exp (row[k] * inv_tau - m);
      sum += e;
      row[k] = (float) e;       /* unnormalised for now */
    }
    /* The queue's terms after the batch's, so that Q = 0 is the same
     * arithmetic in the same order as without a queue. */
    for (int q = 0; q < Q; q++) {
      double e = exp (qrow[q] * inv_tau - m);
      sum += e;
      qrow[q] = (float) e;
    }
    lse = m + log (sum);
    loss_sum += lse - cpos * inv_tau;
    for (int k = 0; k < R; k++)
      row[k] = (k == i) ? 0.0f : (float) (row[k] / sum);
    for (int q = 0; q < Q; q++)
      qrow[q] = (float) (qrow[q] / sum);
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
  /* Symmetrise in place: A = (G + G^T) / (R tau). */
  {
    const float scale = 1.0f / ((float) R * nt->tau);
    for (int i = 0; i < R; i++) {
      float *ai = nt->grad_s + (size_t) i * R;
      ai[i] = 2.0f * ai[i] * scale;
      for (int k = i + 1; k < R; k++) {
        float v = (ai[k] + nt->grad_s[(size_t) k * R + i]) * scale;
        ai[k] = v;
        nt->grad_s[(size_t) k * R + i] = v;
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
