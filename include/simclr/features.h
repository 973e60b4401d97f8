/* features.h: frozen features of a labelled data set, for linear evaluation.
 *
 * The linear-evaluation protocol trains a classifier on features of a FROZEN
 * encoder: eval mode (running batch-norm statistics), no augmentation, no
 * gradient, no update. simclr_features_extract enforces that: it hashes the
 * model's parameters and running statistics before and after and fails if a
 * single byte changed (other implementations have reported inflated results
 * from forgetting eval mode, which silently updates BN statistics).
 *
 * Ownership: the feature and label arrays are allocated here and returned to
 * the caller, who frees them with free(). Thread-safety: one model, one thread.
 */
#pragma once

#include <stdint.h>

#include "simclr/dataset.h"
#include "simclr/error.h"
#include "simclr/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  SIMCLR_FEATURES_REPRESENTATION = 0,  /* h: the encoder's pooled output (d) */
  SIMCLR_FEATURES_PROJECTION = 1,      /* z: the head's output */
  SIMCLR_FEATURES_HEAD_HIDDEN = 2,     /* the head's first hidden layer after
                                        * its ReLU (proj_hidden wide): v1
                                        * relu(head.0 h), v2 relu(head.1(head.0 h))
                                        * with running statistics (SimCLR v2
                                        * probes this layer) */
} SimclrFeatureKind;

/* 64-bit FNV-1a hash of the model's parameters, running statistics and
 * num_batches_tracked: equal hashes mean byte-identical state. */
uint64_t simclr_model_state_hash (SimclrModel *m);

/* Width of the features of @kind; fails (with @err) for the hidden layer of
 * a model without a projection head. */
SimclrStatus simclr_features_dim (const SimclrModel *m, SimclrFeatureKind kind,
    int *dim, SimclrError *err);

/* Features of the first @limit samples of @ds (limit <= 0: all), in data-set
 * order, computed in batches of at most the model's max_batch images.
 * Images must match the model's image_size and in_channels. On success
 * *features (n, *dim) and *labels (n) are malloc'ed for the caller. */
SimclrStatus simclr_features_extract (SimclrModel *m, SimclrDataset *ds,
    int64_t limit, SimclrFeatureKind kind, float **features, int **labels,
    int64_t *n, int *dim, SimclrError *err);

/* Raw pixels / 255 as features (the pixel baseline): dim = H*W*C. */
SimclrStatus simclr_features_raw (SimclrDataset *ds, int64_t limit,
    float **features, int **labels, int64_t *n, int *dim, SimclrError *err);

/* ---------------------------------------------------------------------------
 * kNN accuracy of a frozen encoder: the sequence the encoder's kNN monitor
 * and simclr-lineval share (features of both splits, then linclf.h's
 * weighted kNN of every test row on the training rows).
 */

/* Features of a split; x and labels malloc'ed, freed by
 * simclr_feature_set_clear. */
typedef struct {
  float *x;                    /* (n, dim) row-major */
  int *labels;                 /* (n) */
  int64_t n;
  int dim;
} SimclrFeatureSet;

/* Frees the arrays and zeroes @fs (a zeroed set is a no-op). */
void simclr_feature_set_clear (SimclrFeatureSet *fs);

typedef struct {
  SimclrFeatureKind kind;      /* h */
  int64_t train_limit;         /* first samples of the train split; <= 0: all */
  int64_t test_limit;          /* first samples of the test split; <= 0: all */
  int k;                       /* neighbours (clamped to the training rows);
                                * 0: features only, no kNN; default
                                * SIMCLR_KNN_DEFAULT_K */
  double temperature;          /* vote weight exp (sim / T);
                                * SIMCLR_KNN_DEFAULT_TEMPERATURE */
} SimclrKnnEvalConfig;

typedef struct {
  double top1, top5;           /* test accuracy, [0, 1]; NaN when k is 0 */
  int64_t n_train, n_test;     /* rows used */
  int dim;                     /* feature width */
  double feature_seconds;      /* wall time of the two extractions */
  double knn_seconds;          /* wall time of the classification */
} SimclrKnnEvalResult;

/* kind h, limits 0 (all), k SIMCLR_KNN_DEFAULT_K, temperature
 * SIMCLR_KNN_DEFAULT_TEMPERATURE. */
void simclr_knn_eval_config_default (SimclrKnnEvalConfig *cfg);

/* Features of @train and @test (@m NULL: raw pixels, the pixel baseline;
 * else the frozen model in eval mode, checked unchanged as in
 * simclr_features_extract), then the kNN accuracy of the test rows with
 * the training rows as neighbours and simclr_dataset_n_classes (@train)
 * classes. @train_out / @test_out (each may be NULL) receive the features
 * for further use (a linear probe); the caller clears them. On failure
 * nothing is returned in them. */
SimclrStatus simclr_knn_evaluate (SimclrModel *m, SimclrDataset *train,
    SimclrDataset *test, const SimclrKnnEvalConfig *cfg,
    SimclrKnnEvalResult *result, SimclrFeatureSet *train_out,
    SimclrFeatureSet *test_out, SimclrError *err);

#ifdef __cplusplus
}
#endif
