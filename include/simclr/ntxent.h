/* ntxent.h: the NT-Xent (normalised temperature-scaled cross-entropy) loss.
 *
 * For R = 2N embedding rows z (R, D), each row i is an anchor whose positive
 * is row positive(i) (by default i <-> i+N: view 0 of sample s is row s, view 1
 * is row s+N). With u = z / ||z|| and s_ij = u_i.u_j / tau,
 *   loss_i = -s_{i,p(i)} + log sum_{k != i} exp(s_ik),   loss = mean_i loss_i.
 * L2 normalisation happens inside and is differentiated through. Contrastive
 * top-1 / top-5 accuracy: the fraction of anchors whose positive is among the
 * 1 / 5 most similar other rows.
 *
 * A SimclrNtxent is a workspace for up to max_rows rows of dimension dim; it
 * caches what backward needs. One object, one thread at a time.
 *
 * Extra negatives (simclr_ntxent_forward_queue): Q further rows m_q, e.g. a
 * queue of earlier steps' unit projections, join every anchor's denominator,
 *   loss_i = -s_{i,p(i)} + log (sum_{k != i} exp (s_ik) + sum_q exp (u_i.m_q / tau)),
 * as constants: no gradient flows into them.
 *
 * This is the kernel. A training step calls it through SimclrLoss (loss.h),
 * which gathers the rows of data-parallel replicas, builds the positives
 * map, keeps the queue and sizes the workspace.
 */
#pragma once

#include <stddef.h>

#include "simclr/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct SimclrNtxent SimclrNtxent;

/* The most extra negatives one forward takes. */
#define SIMCLR_NTXENT_MAX_QUEUE 65536

typedef struct {
  double loss;       /* mean over anchors, natural log */
  double top1;       /* in [0, 1] */
  double top5;       /* in [0, 1] */
} SimclrNtxentResult;

/* Returns a workspace, or NULL (with @err set) if sizes are out of range or
 * memory runs out. Free with simclr_ntxent_free. */
SimclrNtxent *simclr_ntxent_new (int max_rows, int dim, SimclrError *err);
void simclr_ntxent_free (SimclrNtxent *nt);   /* NULL is a no-op */

/* The same, with room for up to @max_queue extra negatives per forward
 * ([0, SIMCLR_NTXENT_MAX_QUEUE]; another max_rows x max_queue floats). */
SimclrNtxent *simclr_ntxent_new_with_queue (int max_rows, int max_queue,
    int dim, SimclrError *err);

/* z (rows, dim) row-major; rows even, 2 <= rows <= max_rows; 1 <= dim <=
 * the workspace's dim; tau > 0.
 * positive (rows) gives each anchor's partner, or NULL for i <-> i +- rows/2.
 * Fails with SIMCLR_ERROR_NUMERIC if z or the loss is not finite. */
SimclrStatus simclr_ntxent_forward (SimclrNtxent *nt, const float *z, int rows,
    int dim, float tau, const int *positive, SimclrNtxentResult *result,
    SimclrError *err);

/* Multi-positive NT-Xent: rows with equal group[i] are views of one sample
 * and positives of each other (SupCon's L_out with the sample as the label,
 * the form SimCLR-style multi-view and multi-crop training use). With
 * P(i) = { k != i : group[k] == group[i] },
 *   loss_i = log sum_{k != i} exp (s_ik) - (1 / |P(i)|) sum_{p in P(i)} s_ip,
 * loss = mean_i loss_i; with two rows per group it is NT-Xent above.
 * Accuracy: the anchor's MOST similar positive is ranked among the
 * non-positive rows (top-1: no non-positive row is more similar).
 * group (rows): any integers; every row needs another row of its group.
 * rows >= 2 (need not be even; the workspace's max_rows bounds it).
 * Fails with SIMCLR_ERROR_INVALID_ARGUMENT on a row alone in its group,
 * SIMCLR_ERROR_NUMERIC as above. Backward as after simclr_ntxent_forward. */
SimclrStatus simclr_ntxent_forward_groups (SimclrNtxent *nt, const float *z,
    int rows, int dim, float tau, const int *group, SimclrNtxentResult *result,
    SimclrError *err);

/* Either form with @queue_rows extra negatives: @queue (queue_rows, dim)
 * row-major, used as given (pass unit rows for cosine similarities),
 * borrowed until the next forward or backward returns and constant to the
 * gradient. @group non-NULL: the groups form (then @positive must be NULL);
 * else pairs with @positive (NULL: i <-> i +- rows/2). queue_rows 0 is
 * bit for bit the form without a queue. Accuracy ranks the positive among
 * the other rows and the queue's. Fails (SIMCLR_ERROR_INVALID_ARGUMENT) if
 * queue_rows exceeds the workspace's max_queue. */
SimclrStatus simclr_ntxent_forward_queue (SimclrNtxent *nt, const float *z,
    int rows, int dim, float tau, const int *positive, const int *group,
    const float *queue, int queue_rows, SimclrNtxentResult *result,
    SimclrError *err);

/* The unit rows u (rows, dim) of the last successful forward (owned by @nt,
 * valid until its next forward; NULL and *rows 0 if there was none). */
const float *simclr_ntxent_unit_rows (const SimclrNtxent *nt, int *rows);

/* dz (rows, dim): dloss/dz of the last forward (overwritten, not accumulated:
 * the loss is the graph's root). */
void simclr_ntxent_backward (SimclrNtxent *nt, float *dz);

#ifdef __cplusplus
}
#endif
