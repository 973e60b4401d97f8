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

#ifdef __cplusplus
}
#endif
