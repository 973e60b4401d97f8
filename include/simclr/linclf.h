/* linclf.h: linear evaluation of frozen features: multinomial logistic
 * regression on standardised features, and a weighted kNN classifier.
 *
 * Independent of the model: features (n, dim) float32 row-major and integer
 * labels in [0, classes) go in, accuracies come out. This is the SimCLR
 * linear-evaluation protocol's classifier (the encoder is frozen, h is the
 * feature); the peer's reference is sklearn's StandardScaler +
 * LogisticRegression.
 *
 * Logistic regression: W (dim, classes), b (classes); logits = x W + b;
 *   objective = mean_i CE (softmax (logits_i), y_i) + lambda/2 ||W||_F^2
 * (the bias is not regularised). sklearn's C matches lambda = 1 / (C n).
 * Training is L-BFGS in double on float32 BLAS products (X W, X^T G),
 * blocked over rows so each block of X is read once per evaluation.
 *
 * kNN: cosine similarity on L2-normalised features, the k most similar
 * training rows vote with weight exp (sim / T) (InstDisc / lightly's
 * knn_predict); blocked sgemm over the test set.
 *
 * Ownership: every array argument is caller-owned and only read, except the
 * outputs named as such. Thread-safety: one SimclrLinclf, one thread at a
 * time; distinct objects and the plain functions run concurrently (OpenBLAS
 * threads are process-wide and never set here).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "simclr/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
 * Standardisation (StandardScaler): x <- (x - mean) / std per feature.
 */

/* mean (dim), std (dim), caller-owned outputs: the per-feature mean and the
 * population standard deviation (divisor n) of x (n, dim), accumulated in
 * double. A feature with std below 1e-12 (constant) gets std 1, so applying
 * leaves it at 0. Fails with SIMCLR_ERROR_NUMERIC on a non-finite x. */
SimclrStatus simclr_linclf_standardize_fit (const float *x, int n, int dim,
    float *mean, float *std, SimclrError *err);

/* x (n, dim) in place: x[i][c] = (x[i][c] - mean[c]) / std[c]. */
void simclr_linclf_standardize_apply (float *x, int n, int dim,
    const float *mean, const float *std);

/* ---------------------------------------------------------------------------
 * Logistic regression.
 */
typedef struct SimclrLinclf SimclrLinclf;

typedef struct {
  double lambda;       /* L2 strength on W (see above), >= 0; default 1e-4 */
  int max_iter;        /* L-BFGS iterations, default 500 */
  double grad_tol;     /* stop when max |gradient| <= grad_tol; 1e-5 */
  int history;         /* L-BFGS memory (pairs), default 10 */
  uint64_t seed;       /* held-out split of simclr_linclf_select_lambda */
  int select_max_iter; /* L-BFGS iterations of each fit that compares
                        * lambdas in simclr_linclf_select_lambda (the final
                        * refit uses max_iter); 0 = max_iter. Default 0 */
} SimclrLinclfConfig;

typedef struct {
  int iterations;      /* L-BFGS iterations done */
  int evaluations;     /* objective + gradient evaluations */
  double loss;         /* final objective */
  double grad_max;     /* final max |gradient| */
  int converged;       /* 1: grad_tol reached; 0: max_iter hit or the line
                        * search found no acceptable step */
} SimclrLinclfReport;

/* lambda 1e-4, max_iter 500, grad_tol 1e-5, history 10, seed 0,
 * select_max_iter 0. */
void simclr_linclf_config_default (SimclrLinclfConfig *cfg);

/* A classifier with W = 0, b = 0 (uniform predictions), or NULL with @err
 * set. Free with simclr_linclf_free (NULL is a no-op). */
SimclrLinclf *simclr_linclf_new (int dim, int classes, SimclrError *err);
void simclr_linclf_free (SimclrLinclf *clf);

/* The parameters: W (dim, classes) row-major, then b (classes); *n_params
 * (if not NULL) gets dim * classes + classes. Owned by @clf, valid until it
 * is freed; the caller may write them (a warm start, a test). */
float *simclr_linclf_params (SimclrLinclf *clf, size_t *n_params);

/* The regularised objective at the current parameters over x (n, dim) with
 * labels (n), into *loss; grad (params layout) is overwritten with its
 * gradient unless NULL. Fails on a label out of range or a non-finite loss. */
SimclrStatus simclr_linclf_objective (SimclrLinclf *clf, const float *x,
    const int *labels, int n, double lambda, double *loss, float *grad,
    SimclrError *err);

/* Minimises the objective with cfg->lambda by L-BFGS, starting from the
 * current parameters (call again with another lambda to warm-start).
 * @report may be NULL. Features should be standardised. */
SimclrStatus simclr_linclf_train (SimclrLinclf *clf, const float *x,
    const int *labels, int n, const SimclrLinclfConfig *cfg,
    SimclrLinclfReport *report, SimclrError *err);

/* Predicts x (n, dim). predictions (n) may be NULL. If labels is not NULL,
 * *top1 / *top5 (each may be NULL) get the fraction of rows whose label is
 * the highest / among the five highest logits (ties count for the label). */
SimclrStatus simclr_linclf_evaluate (SimclrLinclf *clf, const float *x,
    const int *labels, int n, int *predictions, double *top1, double *top5,
    SimclrError *err);

/* Picks lambda from @grid (n_grid values >= 0) by training on a
 * pseudo-random (cfg->seed) 1 - @holdout of the rows and measuring top-1 on
 * the other @holdout (0 < holdout < 1, e.g. 0.1); the split is hashed per
 * row, so data sorted by class still gives a fair held-out set. Grid values
 * are tried from the largest down, each warm-started from the last, for at
 * most cfg->select_max_iter iterations (0: max_iter). Then refits on all n
 * rows with the best lambda (ties: the larger lambda), from that lambda's
 * selection fit, for at most cfg->max_iter iterations.
 * *best_lambda, *holdout_top1 and @report (of the final fit) may be NULL. */
SimclrStatus simclr_linclf_select_lambda (SimclrLinclf *clf, const float *x,
    const int *labels, int n, const double *grid, int n_grid, double holdout,
    const SimclrLinclfConfig *cfg, double *best_lambda, double *holdout_top1,
    SimclrLinclfReport *report, SimclrError *err);

/* ---------------------------------------------------------------------------
 * kNN.
 */
#define SIMCLR_KNN_DEFAULT_K 200
#define SIMCLR_KNN_DEFAULT_TEMPERATURE 0.1

/* train (n_train, dim) with train_labels (n_train), test (n_test, dim).
 * Features need not be normalised: similarities are cosines. Each test row
 * takes the k (clamped to n_train) most similar training rows; class c scores
 * sum of exp (sim / temperature) over those labelled c; the prediction is the
 * best score (ties: the lower class). predictions (n_test) may be NULL. With
 * test_labels, *top1 / *top5 (each may be NULL) get the fraction whose label
 * is the prediction / among the five best scores (with at least one vote;
 * ties count for the label). A zero row has similarity 0 to
 * everything. Allocates O(block * n_train) scratch. */
SimclrStatus simclr_knn_classify (const float *train, const int *train_labels,
    int n_train, const float *test, const int *test_labels, int n_test,
    int dim, int classes, int k, double temperature, int *predictions,
    double *top1, double *top5, SimclrError *err);

#ifdef __cplusplus
}
#endif
