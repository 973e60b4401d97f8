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
 * This is the kernel. A training step calls it through SimclrLoss (loss.h),
 * which gathers the rows of data-parallel replicas, builds the positives
 * map and sizes the workspace.
 */
#pragma once

#include <stddef.h>

#include "simclr/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct SimclrNtxent SimclrNtxent;

typedef struct {
  double loss;       /* mean over anchors, natural log */
  double top1;       /* in [0, 1] */
  double top5;       /* in [0, 1] */
} SimclrNtxentResult;

/* Returns a workspace, or NULL (with @err set) if sizes are out of range or
 * memory runs out. Free with simclr_ntxent_free. */
SimclrNtxent *simclr_ntxent_new (int max_rows, int dim, SimclrError *err);
void simclr_ntxent_free (SimclrNtxent *nt);   /* NULL is a no-op */

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

/* dz (rows, dim): dloss/dz of the last forward (overwritten, not accumulated:
 * the loss is the graph's root). */
void simclr_ntxent_backward (SimclrNtxent *nt, float *dz);

#ifdef __cplusplus
}
#endif
