/* trainer.h: a SimCLR training loop in one object.
 *
 * A SimclrTrainer holds a model, the optimiser's velocity, the learning-rate
 * schedule and the step counter. The caller (simclrencoder, the benchmark,
 * the tools) feeds batches of 2N views; the loss may be computed outside
 * (forward -> z, loss gradient dz, backward_and_step) or by the convenience
 * train_step (NT-Xent with the configured temperature).
 *
 * Checkpoints (simclr_trainer_save / _load) hold the model checkpoint (see
 * checkpoint.h) plus the velocity as "optim.velocity.<tensor name>" (same
 * layout as the tensor, conv OIHW) and metadata "step", "seed",
 * "temperature" and the optimiser configuration ("optim_kind" lars|sgd,
 * "base_lr", "lr_scaling" linear|sqrt, "batch_size", "momentum",
 * "weight_decay", "trust_coefficient", "warmup_steps", "total_steps"). Floats
 * are written with 17 significant digits, so a resumed trainer continues
 * exactly (same next losses, bit for bit, with one thread).
 *
 * Thread-safety: one trainer, one thread at a time.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "simclr/error.h"
#include "simclr/model.h"
#include "simclr/ntxent.h"
#include "simclr/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct SimclrTrainer SimclrTrainer;

typedef struct {
  SimclrModelConfig model;
  SimclrOptimConfig optim;
  double temperature;        /* used by the convenience train step; 0.5 */
  uint64_t seed;             /* initialisation */
} SimclrTrainerConfig;

/* simclr_model_config_default, simclr_optim_config_default, temperature 0.5,
 * seed 0. */
void simclr_trainer_config_default (SimclrTrainerConfig *cfg);

/* Returns NULL with @err set on an invalid configuration or no memory. Free
 * with simclr_trainer_free. */
SimclrTrainer *simclr_trainer_new (const SimclrTrainerConfig *cfg,
    SimclrError *err);
void simclr_trainer_free (SimclrTrainer *t);   /* NULL is a no-op */

/* views: rows = 2N images (H,W,C) uint8 NHWC (H = W = image_size, C =
 * in_channels), view 0 of samples 0..N-1 then view 1 of the same samples;
 * rows <= model max_batch. Train-mode forward; z_out (rows, out_dim)
 * caller-owned (may be NULL). Pixels are scaled by 1/255. */
SimclrStatus simclr_trainer_forward_u8 (SimclrTrainer *t, const uint8_t *views,
    int rows, float *z_out, SimclrError *err);
/* As above with float views already scaled to [0, 1]. */
SimclrStatus simclr_trainer_forward (SimclrTrainer *t, const float *views,
    int rows, float *z_out, SimclrError *err);

/* Zeroes the gradients, backpropagates dz (rows, out) of the last forward,
 * calls the gradient allreduce hook and divides by the replica count (so the
 * gradient is averaged over replicas), takes an optimiser
 * step with the schedule's lr for the current step, then step += 1. Fails
 * with SIMCLR_ERROR_NUMERIC (weights untouched) on a non-finite gradient. */
SimclrStatus simclr_trainer_backward_and_step (SimclrTrainer *t,
    const float *dz, SimclrError *err);

/* Convenience: forward_u8 + NT-Xent(temperature) + backward_and_step.
 * @result (may be NULL) receives the loss and accuracies of this batch. */
SimclrStatus simclr_trainer_train_step (SimclrTrainer *t, const uint8_t *views,
    int rows, SimclrNtxentResult *result, SimclrError *err);
/* As above on float views in [0, 1]. */
SimclrStatus simclr_trainer_train_step_f32 (SimclrTrainer *t,
    const float *views, int rows, SimclrNtxentResult *result, SimclrError *err);

int64_t simclr_trainer_get_step (const SimclrTrainer *t);
double simclr_trainer_get_lr (const SimclrTrainer *t);   /* lr of the current step */
/* Borrowed; valid while @t lives. */
SimclrModel *simclr_trainer_get_model (SimclrTrainer *t);
const SimclrTrainerConfig *simclr_trainer_get_config (const SimclrTrainer *t);
/* The optimiser velocity (same layout as the parameters). Borrowed. */
float *simclr_trainer_get_velocity (SimclrTrainer *t, size_t *n);

/* Atomic write of model + optimiser state + step (see above). */
SimclrStatus simclr_trainer_save (SimclrTrainer *t, const char *path,
    SimclrError *err);
/* Resumes from @path: configuration, weights, running statistics, velocity
 * and step; the model's max_batch becomes @max_batch. NULL with @err set on
 * failure. */
SimclrTrainer *simclr_trainer_load (const char *path, int max_batch,
    SimclrError *err);

/* Gradient sum across data-parallel replicas: @fn (MPI_Allreduce SUM, in
 * place) is called on the whole gradient buffer in backward_and_step before
 * the optimiser; the trainer then multiplies by 1 / replicas (see
 * simclr_trainer_set_replicas), which averages. NULL fn: no call. */
void simclr_trainer_set_gradient_allreduce (SimclrTrainer *t,
    SimclrAllreduceFn fn, void *user);
/* Number of replicas the allreduce sums over (default 1). If your hook
 * already averages, leave it at 1. Values < 1 are taken as 1. */
void simclr_trainer_set_replicas (SimclrTrainer *t, int replicas);

#ifdef __cplusplus
}
#endif
