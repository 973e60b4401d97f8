/* trainer.h: a SimCLR training loop in one object.
 *
 * A SimclrTrainer holds a model, the optimiser's velocity, the learning-rate
 * schedule, the step counter and the batch arithmetic of a data-parallel
 * run. The caller (simclrencoder, the benchmark, the tools) feeds batches of
 * 2N views; the loss may be computed outside (forward -> z, a SimclrLoss
 * gives dz, backward_and_step) or by the convenience train_step (the
 * trainer's own SimclrLoss with the configured temperature).
 *
 * Batches. optim.batch_size is the GLOBAL batch N (the schedule's, the one
 * checkpoints record). A data-parallel run has K replicas (simclr_trainer_join)
 * of N / K samples each; every replica feeds views x N / K rows per step.
 * Ask the trainer for these numbers (simclr_trainer_local_batch, ...); a
 * caller never divides itself.
 *
 * Checkpoints (simclr_trainer_save / _load) hold the model checkpoint (see
 * checkpoint.h) plus the velocity as "optim.velocity.<tensor name>" (same
 * layout as the tensor, conv OIHW) and metadata "step", "seed",
 * "temperature" and the optimiser configuration ("optim_kind" lars|sgd,
 * "base_lr", "lr_scaling" linear|sqrt, "batch_size", "momentum",
 * "weight_decay", "trust_coefficient", "warmup_steps", "total_steps",
 * "lr_schedule" cosine|constant|cosine-restarts, "restart_period" and,
 * with multi-crop, "small_views" and "small_size" (absent = 0); a file
 * without lr_schedule and restart_period, written before they existed,
 * loads with the cosine schedule). Floats are written with 17 significant
 * digits, so a resumed trainer continues exactly (same next losses, bit
 * for bit, with one thread).
 *
 * Thread-safety: one trainer, one thread at a time.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "simclr/comm.h"
#include "simclr/error.h"
#include "simclr/loss.h"
#include "simclr/model.h"
#include "simclr/ntxent.h"
#include "simclr/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct SimclrTrainer SimclrTrainer;

typedef struct {
  SimclrModelConfig model;
  SimclrOptimConfig optim;   /* optim.batch_size: the global batch N */
  double temperature;        /* the loss's; recorded in checkpoints; 0.5 */
  uint64_t seed;             /* initialisation */
  int views;                 /* views per sample (rows = views x N); 2 */
  /* Multi-crop (Caron et al. 2020, SwAV): the last small_views of the views
   * are small_size x small_size crops that run through a second model
   * sharing the first's parameters, gradients and running statistics
   * (simclr_model_new_shared), so one step trains on two input sizes; the
   * loss still sees views x N rows (every pair of an image's views
   * positive). small_views 0 (default): every view is image_size.
   * 1 <= small_views <= views - 1, 1 <= small_size <= model.image_size.
   * model.max_batch is the rows of a whole forward (all sizes). */
  int small_views;
  int small_size;
} SimclrTrainerConfig;

/* simclr_model_config_default, simclr_optim_config_default, temperature 0.5,
 * seed 0, views 2. */
void simclr_trainer_config_default (SimclrTrainerConfig *cfg);

/* Sets the batch of a run of @replicas replicas (1 without data
 * parallelism) that each take @local_batch samples per step:
 * optim.batch_size = the global batch, model.max_batch = views x
 * @local_batch rows. Fails (field "optim.batch_size") when either is < 1 or
 * the product overflows. */
SimclrStatus simclr_trainer_config_set_batch (SimclrTrainerConfig *cfg,
    int local_batch, int replicas, SimclrError *err);

/* Checks every field (model, optimiser, temperature, views, small_views,
 * small_size: fields "trainer.small_views", "trainer.small_size"); the error
 * names the field (SimclrError.field: "model.width", "optim.total_steps",
 * "trainer.temperature", ...). */
SimclrStatus simclr_trainer_config_validate (const SimclrTrainerConfig *cfg,
    SimclrError *err);

/* Returns NULL with @err set on an invalid configuration or no memory. Free
 * with simclr_trainer_free. */
SimclrTrainer *simclr_trainer_new (const SimclrTrainerConfig *cfg,
    SimclrError *err);
void simclr_trainer_free (SimclrTrainer *t);   /* NULL is a no-op */

/* views: rows = 2N images (H,W,C) uint8 NHWC (H = W = image_size, C =
 * in_channels), view 0 of samples 0..N-1 then view 1 of the same samples;
 * rows <= model max_batch. Train-mode forward; z_out (rows, out_dim)
 * caller-owned (may be NULL). Pixels are scaled by 1/255.
 * With small views (multi-crop) rows = views x N, view-major as always:
 * the first (views - small_views) x N rows are image_size images, the last
 * small_views x N rows small_size images, packed one after the other. */
SimclrStatus simclr_trainer_forward_u8 (SimclrTrainer *t, const uint8_t *views,
    int rows, float *z_out, SimclrError *err);
/* As above with float views already scaled to [0, 1]. */
SimclrStatus simclr_trainer_forward (SimclrTrainer *t, const float *views,
    int rows, float *z_out, SimclrError *err);
/* As above with one borrowed uint8 frame per row, each with its own row
 * stride (frame.h; @channels: 1 GRAY8, 3 RGB, the model's in_channels),
 * rows in the order of simclr_trainer_forward_u8. Each pixel is converted
 * once, into the model's input; the frames may be released on return.
 * With small views the row count and every small frame's data and stride
 * are checked before either model runs (a refusal changes nothing). A
 * SimclrFrame has no size: each must hold its image_size (small_size)
 * rows, which the caller vouches for (simclr_batcher_add checks it). */
SimclrStatus simclr_trainer_forward_frames (SimclrTrainer *t,
    const SimclrFrame *frames, int rows, int channels, float *z_out,
    SimclrError *err);

/* Zeroes the gradients, backpropagates dz (rows, out) of the last forward,
 * calls the gradient allreduce hook and divides by the replica count (so the
 * gradient is averaged over replicas), takes an optimiser
 * step with the schedule's lr for the current step, then step += 1. Fails
 * with SIMCLR_ERROR_NUMERIC (weights untouched) on a non-finite gradient. */
SimclrStatus simclr_trainer_backward_and_step (SimclrTrainer *t,
    const float *dz, SimclrError *err);

/* Convenience: forward_u8 + the trainer's SimclrLoss (temperature; all
 * replicas' rows after simclr_trainer_join) + backward_and_step.
 * @result (may be NULL) receives the loss and accuracies of this batch. */
SimclrStatus simclr_trainer_train_step (SimclrTrainer *t, const uint8_t *views,
    int rows, SimclrNtxentResult *result, SimclrError *err);
/* As above on float views in [0, 1]. */
SimclrStatus simclr_trainer_train_step_f32 (SimclrTrainer *t,
    const float *views, int rows, SimclrNtxentResult *result, SimclrError *err);

int64_t simclr_trainer_get_step (const SimclrTrainer *t);
double simclr_trainer_get_lr (const SimclrTrainer *t);   /* lr of the current step */
/* 1 once the cosine schedule reached optim.total_steps: the learning rate
 * has decayed to 0 and further steps no longer change the weights. The
 * stream schedules (constant, cosine restarts) never complete. */
int simclr_trainer_schedule_complete (const SimclrTrainer *t);

/* Batch arithmetic (see above). */
int simclr_trainer_replicas (const SimclrTrainer *t);       /* K, 1 unless joined */
int simclr_trainer_global_batch (const SimclrTrainer *t);   /* N = optim.batch_size */
int simclr_trainer_local_batch (const SimclrTrainer *t);    /* N / K samples */
int simclr_trainer_views (const SimclrTrainer *t);          /* views per sample */
int simclr_trainer_local_rows (const SimclrTrainer *t);     /* views x N / K */
/* Samples consumed so far: step x N over all replicas, and step x N / K of
 * this replica (the position in its shard a resumed run skips to). */
uint64_t simclr_trainer_samples_seen (const SimclrTrainer *t);
uint64_t simclr_trainer_local_samples_seen (const SimclrTrainer *t);

/* The loss temperature the checkpoint records (and the convenience step
 * uses): a caller whose loss runs elsewhere (ntxentsink) reports it here.
 * Fails (field "trainer.temperature") unless positive and finite. */
SimclrStatus simclr_trainer_set_temperature (SimclrTrainer *t, double tau,
    SimclrError *err);
/* Borrowed; valid while @t lives. */
SimclrModel *simclr_trainer_get_model (SimclrTrainer *t);
/* The model of the small views (sharing the main model's parameters), NULL
 * without small views. Borrowed; valid while @t lives. */
SimclrModel *simclr_trainer_get_small_model (SimclrTrainer *t);
/* Rows of a batch of @n samples that are full-size (views - small_views)
 * x n; the rest are small. */
int simclr_trainer_full_rows (const SimclrTrainer *t, int n);
const SimclrTrainerConfig *simclr_trainer_get_config (const SimclrTrainer *t);
/* The optimiser velocity (same layout as the parameters). Borrowed. */
float *simclr_trainer_get_velocity (SimclrTrainer *t, size_t *n);

/* Atomic write of model + optimiser state + step (see above). */
SimclrStatus simclr_trainer_save (SimclrTrainer *t, const char *path,
    SimclrError *err);
/* A run's checkpoint save. @location is a file (written as
 * simclr_trainer_save does) or, with @keep > 0, a folder: the file is then
 * DIR/ckpt-<step>.safetensors and after a successful write the folder keeps
 * the newest @keep checkpoints (simclr_ckptdir_rotate, protecting the one
 * written). A model whose parameters or buffers are not all finite is never
 * written (SIMCLR_ERROR_NUMERIC), so the last good file stays. *@path
 * receives the file meant (malloc'd, free(); also on failure, NULL only
 * when it could not be made). A failed rotation does not fail the save: it
 * fills @rotate_err (may be NULL; message empty when none) and *@removed
 * (may be NULL) counts the files removed. */
SimclrStatus simclr_trainer_save_run (SimclrTrainer *t, const char *location,
    int keep, char **path, int *removed, SimclrError *rotate_err,
    SimclrError *err);
/* Resumes from @path: configuration, weights, running statistics, velocity
 * and step; the model's max_batch becomes @max_batch. NULL with @err set on
 * failure. */
SimclrTrainer *simclr_trainer_load (const char *path, int max_batch,
    SimclrError *err);
/* As simclr_trainer_load for one of @replicas replicas: the file's global
 * batch is split over them (an error, field "optim.batch_size", if it does
 * not split evenly) and max_batch is views x the local batch. Join the
 * replicas afterwards (simclr_trainer_join). */
SimclrTrainer *simclr_trainer_load_replica (const char *path, int replicas,
    SimclrError *err);

/* Makes @t one replica of a data-parallel group (a collective on @comm:
 * every replica calls it; with comm->size 1 it only records the comm).
 * Checks on every replica alike that all start at the same step with the
 * same global batch and that the batch splits into comm->size equal parts;
 * copies replica 0's parameters, BN running statistics and velocity to all
 * (broadcast); then installs comm->allreduce as the gradient sum (replicas
 * 1: the loss gradient of a gathered SimclrLoss is already that of the
 * global mean, so the sum over replicas is the whole batch's gradient) and,
 * if @sync_bn, as the batch-norm statistics sum (SyncBN); the convenience
 * train step then gathers every replica's rows. K replicas of N / K then
 * compute the update of one process with N, up to float rounding. On
 * failure (every replica fails alike, before any broadcast) @t is
 * unchanged. */
SimclrStatus simclr_trainer_join (SimclrTrainer *t, const SimclrComm *comm,
    int sync_bn, SimclrError *err);

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
