/* trainer.c: model + optimiser state + schedule + step counter (see
 * include/simclr/trainer.h).
 *
 * The optimiser sees one parameter group per parameter tensor (LARS norms are
 * per layer), taken from the model's table: conv and linear weights adapt
 * (weight decay + trust ratio), BN parameters and biases do not. Checkpoints
 * are model checkpoints plus "optim.velocity.*" tensors and metadata.
 */
#include "simclr/trainer.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint-private.h"
#include "simclr/ckptdir.h"

#define VELOCITY_PREFIX "optim.velocity."

struct SimclrTrainer {
  SimclrTrainerConfig cfg;
  SimclrModel *model;
  SimclrModel *small;         /* multi-crop: shares model's buffers; NULL */
  float *velocity;            /* parameter layout */
  SimclrParamGroup *groups;
  int n_groups;
  int64_t step;
  SimclrLoss *loss;           /* of the convenience train step */
  SimclrComm comm;            /* the replicas (size 1 unless joined) */
  SimclrFrame *frames;        /* (max_batch) views of packed uint8 input */
  float *z, *dz;              /* (max_batch, out) */
  int rows;                   /* rows of the last forward, 0 if none */
  SimclrAllreduceFn allreduce;
  void *allreduce_user;
  int replicas;
  /* Pretraining wall time: seconds carried in from a resumed checkpoint,
   * plus the time since this object was made (saved as "train_seconds", so
   * a result can state its budget). Not part of the training state. */
  double wall_before;
  struct timespec wall_start;
};

static double
seconds_since (const struct timespec *t0)
{
  struct timespec now;
  clock_gettime (CLOCK_MONOTONIC, &now);
  return (now.tv_sec - t0->tv_sec) + (now.tv_nsec - t0->tv_nsec) * 1e-9;
}

void
simclr_trainer_config_default (SimclrTrainerConfig *cfg)
{
  memset (cfg, 0, sizeof *cfg);
  simclr_model_config_default (&cfg->model);
  simclr_optim_config_default (&cfg->optim);
  cfg->temperature = 0.5;
  cfg->seed = 0;
  cfg->views = 2;
}

SimclrStatus
simclr_trainer_config_set_batch (SimclrTrainerConfig *cfg, int local_batch,
    int replicas, SimclrError *err)
{
  int views = cfg->views > 0 ? cfg->views : 2;
  if (local_batch < 1 || replicas < 1
      || (long long) local_batch * replicas > INT_MAX
      || (long long) local_batch * views > INT_MAX)
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "optim.batch_size", NULL, "trainer: a batch of %d samples on each "
        "of %d replicas is out of range", local_batch, replicas);
  cfg->optim.batch_size = local_batch * replicas;
  cfg->model.max_batch = local_batch * views;
  return SIMCLR_OK;
}

void
simclr_trainer_free (SimclrTrainer *t)
{
  if (!t)
    return;
  simclr_model_free (t->small);    /* before the model it borrows from */
  simclr_model_free (t->model);
  simclr_loss_free (t->loss);
  free (t->velocity);
  free (t->groups);
  free (t->frames);
  free (t->z);
  free (t->dz);
  free (t);
}

/* Builds the trainer around an existing model (taken over) and, with small
 * views, @small (taken over, sharing @model's buffers). */
static SimclrTrainer *
trainer_wrap (const SimclrTrainerConfig *cfg, SimclrModel *model,
    SimclrModel *small, SimclrError *err)
{
  SimclrTrainer *t = calloc (1, sizeof *t);
  if (!t) {
    simclr_model_free (small);
    simclr_model_free (model);
    simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "trainer: out of memory");
    return NULL;
  }
  clock_gettime (CLOCK_MONOTONIC, &t->wall_start);
  t->cfg = *cfg;
  t->cfg.model = *simclr_model_get_config (model);
  /* The rows of a whole forward (the main model takes only the full-size
   * ones with small views). */
  t->cfg.model.max_batch = cfg->model.max_batch;
  t->model = model;
  t->small = small;
  t->replicas = 1;
  simclr_comm_init_local (&t->comm);
  const SimclrModelConfig *mc = &t->cfg.model;
  size_t np;
  simclr_model_params (model, &np);
  int out = simclr_model_output_dim (model);
  t->velocity = calloc (np ? np : 1, sizeof (float));
  t->groups = calloc (simclr_model_n_tensors (model), sizeof *t->groups);
  t->frames = malloc ((size_t) mc->max_batch * sizeof (SimclrFrame));
  t->z = malloc ((size_t) mc->max_batch * out * sizeof (float));
  t->dz = malloc ((size_t) mc->max_batch * out * sizeof (float));
  if (!t->velocity || !t->groups || !t->frames || !t->z || !t->dz) {
    simclr_trainer_free (t);
    simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "trainer: out of memory");
    return NULL;
  }
  for (int i = 0; i < simclr_model_n_tensors (model); i++) {
    const SimclrTensorInfo *ti = simclr_model_tensor (model, i);
    if (ti->storage != SIMCLR_TENSOR_PARAM)
      continue;
    t->groups[t->n_groups].offset = ti->offset;
    t->groups[t->n_groups].numel = ti->numel;
    t->groups[t->n_groups].adapt = ti->adapt;
    t->n_groups++;
  }
  SimclrLossConfig lc;
  simclr_loss_config_default (&lc);
  lc.temperature = cfg->temperature;
  lc.views = cfg->views;
  t->loss = simclr_loss_new (&lc, NULL, err);
  if (!t->loss) {
    simclr_trainer_free (t);
    return NULL;
  }
  return t;
}

SimclrStatus
simclr_trainer_config_validate (const SimclrTrainerConfig *cfg,
    SimclrError *err)
{
  if (!cfg)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "trainer: config is NULL");
  SimclrStatus s = simclr_model_config_validate (&cfg->model, err);
  if (s != SIMCLR_OK)
    return s;
  s = simclr_optim_config_validate (&cfg->optim, err);
  if (s != SIMCLR_OK)
    return s;
  if (!(cfg->temperature > 0) || !isfinite (cfg->temperature))
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "trainer.temperature", NULL, "trainer: temperature %g must be > 0",
        cfg->temperature);
  if (cfg->small_views < 0 || (cfg->small_views > 0
          && cfg->small_views >= cfg->views))
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "trainer.small_views", NULL, "trainer: %d small views of %d views "
        "per sample: need 0 .. views - 1 (at least one full-size view)",
        cfg->small_views, cfg->views);
  if (cfg->small_views > 0) {
    if (cfg->small_size < 1 || cfg->small_size > cfg->model.image_size)
      return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "trainer.small_size", NULL, "trainer: small views of %d pixels: "
          "need 1 .. image_size %d", cfg->small_size, cfg->model.image_size);
    if (cfg->model.max_batch < cfg->views)
      return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "model.max_batch", NULL, "trainer: max_batch %d rows is less than "
          "one sample's %d views", cfg->model.max_batch, cfg->views);
    SimclrModelConfig sc = cfg->model;
    sc.image_size = cfg->small_size;
    s = simclr_model_config_validate (&sc, err);
    if (s != SIMCLR_OK) {
      if (err && err->field && !strcmp (err->field, "model.image_size"))
        err->field = "trainer.small_size";
      return s;
    }
  }
  SimclrLossConfig lc;
  simclr_loss_config_default (&lc);
  lc.temperature = cfg->temperature;
  lc.views = cfg->views;
  s = simclr_loss_config_validate (&lc, err);
  if (s != SIMCLR_OK && err && err->field && !strcmp (err->field,
          "loss.views"))
    err->field = "trainer.views";
  return s;
}

SimclrTrainer *
simclr_trainer_new (const SimclrTrainerConfig *cfg, SimclrError *err)
{
  if (simclr_trainer_config_validate (cfg, err) != SIMCLR_OK)
    return NULL;
  if (cfg->small_views == 0) {
    SimclrModel *m = simclr_model_new (&cfg->model, cfg->seed, err);
    if (!m)
      return NULL;
    return trainer_wrap (cfg, m, NULL, err);
  }
  /* Multi-crop: rows come in whole samples, so each model holds its share
   * of max_batch. */
  int n = cfg->model.max_batch / cfg->views;
  SimclrModelConfig mc = cfg->model, sc = cfg->model;
  mc.max_batch = n * (cfg->views - cfg->small_views);
  sc.max_batch = n * cfg->small_views;
  sc.image_size = cfg->small_size;
  SimclrModel *m = simclr_model_new (&mc, cfg->seed, err);
  if (!m)
    return NULL;
  SimclrModel *small = simclr_model_new_shared (&sc, m, err);
  if (!small) {
    simclr_model_free (m);
    return NULL;
  }
  return trainer_wrap (cfg, m, small, err);
}

int
simclr_trainer_full_rows (const SimclrTrainer *t, int n)
{
  return (t->cfg.views - t->cfg.small_views) * n;
}

/* With small views: @rows must be whole samples; *@full receives the
 * full-size rows. */
static SimclrStatus
split_rows (SimclrTrainer *t, int rows, int *full, SimclrError *err)
{
  const int V = t->cfg.views;
  *full = rows;
  if (!t->small)
    return SIMCLR_OK;
  if (rows < V || rows % V != 0 || rows > t->cfg.model.max_batch)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "trainer forward: %d rows: with %d small views the rows must be "
        "whole samples of %d views, at most max_batch %d", rows,
        t->cfg.small_views, V, t->cfg.model.max_batch);
  *full = simclr_trainer_full_rows (t, rows / V);
  return SIMCLR_OK;
}

/* With small views: the small rows' frames (@full .. @rows - 1), checked
 * before either forward, since the main model's train forward moves its
 * running statistics before the small model would refuse them. */
static SimclrStatus
check_small_frames (const SimclrTrainer *t, const SimclrFrame *frames,
    int channels, int full, int rows, SimclrError *err)
{
  const int side = t->cfg.small_size;
  if (channels != t->cfg.model.in_channels)
    return SIMCLR_OK;           /* the main model's refusal, before it runs */
  for (int r = full; r < rows; r++) {
    if (!frames[r].data)
      return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "trainer forward: row %d of %d, a small view of %d x %d, has no "
          "data", r, rows, side, side);
    if (frames[r].width != side || frames[r].height != side)
      return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "trainer forward: row %d of %d is a %d x %d frame; small views are "
          "%d x %d", r, rows, frames[r].width, frames[r].height, side, side);
    if (frames[r].stride < side * channels)
      return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "trainer forward: row %d of %d, a small view of %d x %d x %d, "
          "has a stride of %d bytes, less than a row of %d", r, rows, side,
          side, channels, frames[r].stride, side * channels);
  }
  return SIMCLR_OK;
}

/* The forward of every entry: @views (float) or @frames (uint8). */
static SimclrStatus
trainer_forward (SimclrTrainer *t, const float *views,
    const SimclrFrame *frames, int channels, int rows, float *z_out,
    SimclrError *err)
{
  SimclrStatus s;
  int full;
  t->rows = 0;
  s = split_rows (t, rows, &full, err);
  if (s == SIMCLR_OK && frames && full < rows)
    s = check_small_frames (t, frames, channels, full, rows, err);
  if (s != SIMCLR_OK)
    return s;
  if (frames)
    s = simclr_model_forward_frames (t->model, frames, full, channels, 1,
        NULL, t->z, err);
  else
    s = simclr_model_forward (t->model, views, full, 1, NULL, t->z, err);
  if (s == SIMCLR_OK && full < rows) {
    /* The small views, after the full-size ones in the loss's order. */
    const SimclrModelConfig *mc = &t->cfg.model;
    float *zs = t->z + (size_t) full * simclr_model_output_dim (t->model);
    if (frames)
      s = simclr_model_forward_frames (t->small, frames + full, rows - full,
          channels, 1, NULL, zs, err);
    else
      s = simclr_model_forward (t->small, views + (size_t) full
          * mc->image_size * mc->image_size * mc->in_channels, rows - full,
          1, NULL, zs, err);
  }
  if (s != SIMCLR_OK)
    return s;
  t->rows = rows;
  if (z_out)
    memcpy (z_out, t->z, (size_t) rows * simclr_model_output_dim (t->model)
        * sizeof (float));
  return SIMCLR_OK;
}

SimclrStatus
simclr_trainer_forward (SimclrTrainer *t, const float *views, int rows,
    float *z_out, SimclrError *err)
{
  return trainer_forward (t, views, NULL, 0, rows, z_out, err);
}

SimclrStatus
simclr_trainer_forward_frames (SimclrTrainer *t, const SimclrFrame *frames,
    int rows, int channels, float *z_out, SimclrError *err)
{
  if (!frames) {
    t->rows = 0;
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "trainer forward: frames is NULL");
  }
  return trainer_forward (t, NULL, frames, channels, rows, z_out, err);
}

SimclrStatus
simclr_trainer_forward_u8 (SimclrTrainer *t, const uint8_t *views, int rows,
    float *z_out, SimclrError *err)
{
  const SimclrModelConfig *mc = &t->cfg.model;
  if (!views)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "trainer forward: views is NULL");
  if (rows < 1 || rows > mc->max_batch)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "trainer forward: %d rows out of range [1, max_batch %d]", rows,
        mc->max_batch);
  int full;
  SimclrStatus s = split_rows (t, rows, &full, err);
  if (s != SIMCLR_OK)
    return s;
  simclr_frames_packed (t->frames, views, full, mc->image_size,
      mc->in_channels);
  if (full < rows)
    simclr_frames_packed (t->frames + full, views + (size_t) full
        * mc->image_size * mc->image_size * mc->in_channels, rows - full,
        t->cfg.small_size, mc->in_channels);
  return trainer_forward (t, NULL, t->frames, mc->in_channels, rows, z_out,
      err);
}

SimclrStatus
simclr_trainer_backward_and_step (SimclrTrainer *t, const float *dz,
    SimclrError *err)
{
  if (!t->rows)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "trainer: backward_and_step without a forward");
  simclr_model_zero_grad (t->model);
  SimclrStatus s = simclr_model_backward (t->model, dz, err);
  if (s == SIMCLR_OK && t->small) {
    /* Into the same gradient buffer: the sum over both sizes. */
    int full = simclr_trainer_full_rows (t, t->rows / t->cfg.views);
    s = simclr_model_backward (t->small, dz + (size_t) full
        * simclr_model_output_dim (t->model), err);
  }
  if (s != SIMCLR_OK)
    return s;
  t->rows = 0;
  size_t np;
  float *grads = simclr_model_grads (t->model, &np);
  if (t->allreduce) {
    t->allreduce (grads, (int) np, t->allreduce_user);
    if (t->replicas > 1) {
      float inv = 1.0f / (float) t->replicas;
      for (size_t i = 0; i < np; i++)
        grads[i] *= inv;
    }
  }
  double lr = simclr_optim_lr (&t->cfg.optim, t->step);
  s = simclr_optim_step (&t->cfg.optim, lr, simclr_model_params (t->model,
          NULL), grads, t->velocity, t->groups, t->n_groups, err);
  if (s != SIMCLR_OK)
    return s;
  t->step++;
  return SIMCLR_OK;
}

static SimclrStatus
loss_and_step (SimclrTrainer *t, int rows, SimclrNtxentResult *result,
    SimclrError *err)
{
  SimclrLossResult r;
  int out = simclr_model_output_dim (t->model);
  SimclrStatus s = simclr_loss_forward (t->loss, t->z, rows, out, &r, err);
  if (s == SIMCLR_OK)
    s = simclr_loss_backward (t->loss, t->dz, err);
  if (s == SIMCLR_OK)
    s = simclr_trainer_backward_and_step (t, t->dz, err);
  if (s == SIMCLR_OK && result) {
    result->loss = r.loss;
    result->top1 = r.top1;
    result->top5 = r.top5;
  }
  return s;
}

static SimclrStatus
check_rows (SimclrTrainer *t, int rows, SimclrError *err)
{
  const int V = t->cfg.views;
  if (rows < V || rows % V != 0)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "trainer train step: %d rows: need a multiple of the %d views per "
        "sample, at least %d (V x N views)", rows, V, V);
  return SIMCLR_OK;
}

SimclrStatus
simclr_trainer_train_step (SimclrTrainer *t, const uint8_t *views, int rows,
    SimclrNtxentResult *result, SimclrError *err)
{
  SimclrStatus s = check_rows (t, rows, err);
  if (s == SIMCLR_OK)
    s = simclr_trainer_forward_u8 (t, views, rows, NULL, err);
  if (s == SIMCLR_OK)
    s = loss_and_step (t, rows, result, err);
  return s;
}

SimclrStatus
simclr_trainer_train_step_f32 (SimclrTrainer *t, const float *views, int rows,
    SimclrNtxentResult *result, SimclrError *err)
{
  SimclrStatus s = check_rows (t, rows, err);
  if (s == SIMCLR_OK)
    s = simclr_trainer_forward (t, views, rows, NULL, err);
  if (s == SIMCLR_OK)
    s = loss_and_step (t, rows, result, err);
  return s;
}

int64_t
simclr_trainer_get_step (const SimclrTrainer *t)
{
  return t->step;
}

double
simclr_trainer_get_lr (const SimclrTrainer *t)
{
  return simclr_optim_lr (&t->cfg.optim, t->step);
}

int
simclr_trainer_schedule_complete (const SimclrTrainer *t)
{
  /* The stream schedules (constant, cosine restarts) never end. */
  return t->cfg.optim.schedule == SIMCLR_LR_SCHEDULE_COSINE
      && t->step >= t->cfg.optim.total_steps;
}

int
simclr_trainer_replicas (const SimclrTrainer *t)
{
  return t->comm.size;
}

int
simclr_trainer_global_batch (const SimclrTrainer *t)
{
  return t->cfg.optim.batch_size;
}

int
simclr_trainer_local_batch (const SimclrTrainer *t)
{
  /* simclr_trainer_join made sure it divides. */
  return t->cfg.optim.batch_size / t->comm.size;
}

int
simclr_trainer_views (const SimclrTrainer *t)
{
  return t->cfg.views;
}

int
simclr_trainer_local_rows (const SimclrTrainer *t)
{
  return t->cfg.views * simclr_trainer_local_batch (t);
}

uint64_t
simclr_trainer_samples_seen (const SimclrTrainer *t)
{
  return (uint64_t) t->step * (uint64_t) simclr_trainer_global_batch (t);
}

uint64_t
simclr_trainer_local_samples_seen (const SimclrTrainer *t)
{
  return (uint64_t) t->step * (uint64_t) simclr_trainer_local_batch (t);
}

SimclrStatus
simclr_trainer_set_temperature (SimclrTrainer *t, double tau,
    SimclrError *err)
{
  if (!(tau > 0) || !isfinite (tau))
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "trainer.temperature", NULL, "trainer: temperature %g must be > 0",
        tau);
  t->cfg.temperature = tau;
  return simclr_loss_set_temperature (t->loss, tau, err);
}

SimclrModel *
simclr_trainer_get_model (SimclrTrainer *t)
{
  return t->model;
}

SimclrModel *
simclr_trainer_get_small_model (SimclrTrainer *t)
{
  return t->small;
}

const SimclrTrainerConfig *
simclr_trainer_get_config (const SimclrTrainer *t)
{
  return &t->cfg;
}

float *
simclr_trainer_get_velocity (SimclrTrainer *t, size_t *n)
{
  simclr_model_params (t->model, n);
  return t->velocity;
}

void
simclr_trainer_set_gradient_allreduce (SimclrTrainer *t, SimclrAllreduceFn fn,
    void *user)
{
  t->allreduce = fn;
  t->allreduce_user = user;
}

void
simclr_trainer_set_replicas (SimclrTrainer *t, int replicas)
{
  t->replicas = replicas < 1 ? 1 : replicas;
}

/* ------------------------------------------------------------------------ */
/* checkpoints */

SimclrStatus
simclr_trainer_save (SimclrTrainer *t, const char *path, SimclrError *err)
{
  if (!t || !path)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "trainer save: NULL trainer or path");
  const SimclrOptimConfig *o = &t->cfg.optim;
  SimclrSafetensorsWriter *w = simclr_safetensors_writer_new ();
  if (!w)
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory");
  SimclrStatus s;
  if ((s = simclr_checkpoint_add_model (w, t->model, err))
      || (s = simclr_checkpoint_add_param_like (w, t->model, VELOCITY_PREFIX,
              t->velocity, err))
      || (s = simclr_checkpoint_set_meta_int64 (w, "step", t->step, err))
      || (s = simclr_checkpoint_set_meta_int64 (w, "seed",
              (int64_t) t->cfg.seed, err))
      || (s = simclr_checkpoint_set_meta_double (w, "temperature",
              t->cfg.temperature, err))
      || (s = simclr_checkpoint_set_meta_int64 (w, "views", t->cfg.views,
              err))
      || (t->cfg.small_views > 0
          && ((s = simclr_checkpoint_set_meta_int64 (w, "small_views",
                      t->cfg.small_views, err))
              || (s = simclr_checkpoint_set_meta_int64 (w, "small_size",
                      t->cfg.small_size, err))))
      || (s = simclr_safetensors_writer_set_metadata (w, "optim_kind",
              o->kind == SIMCLR_OPTIM_SGD ? "sgd" : "lars", err))
      || (s = simclr_checkpoint_set_meta_double (w, "base_lr", o->base_lr,
              err))
      || (s = simclr_safetensors_writer_set_metadata (w, "lr_scaling",
              o->lr_scaling == SIMCLR_LR_SCALING_SQRT ? "sqrt" : "linear",
              err))
      || (s = simclr_checkpoint_set_meta_int64 (w, "batch_size",
              o->batch_size, err))
      || (s = simclr_checkpoint_set_meta_double (w, "momentum", o->momentum,
              err))
      || (s = simclr_checkpoint_set_meta_double (w, "weight_decay",
              o->weight_decay, err))
      || (s = simclr_checkpoint_set_meta_double (w, "trust_coefficient",
              o->trust_coefficient, err))
      || (s = simclr_checkpoint_set_meta_int64 (w, "warmup_steps",
              o->warmup_steps, err))
      || (s = simclr_checkpoint_set_meta_int64 (w, "total_steps",
              o->total_steps, err))
      || (s = simclr_safetensors_writer_set_metadata (w, "lr_schedule",
              simclr_lr_schedule_to_string (o->schedule), err))
      || (s = simclr_checkpoint_set_meta_int64 (w, "restart_period",
              o->restart_period, err))
      || (s = simclr_checkpoint_set_meta_double (w, "train_seconds",
              t->wall_before + seconds_since (&t->wall_start), err))
      || (s = simclr_safetensors_writer_write (w, path, err))) {
    /* s holds the first failure */
  }
  simclr_safetensors_writer_free (w);
  return s;
}

static int
all_finite (const float *x, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (!isfinite (x[i]))
      return 0;
  return 1;
}

SimclrStatus
simclr_trainer_save_run (SimclrTrainer *t, const char *location, int keep,
    char **path, int *removed, SimclrError *rotate_err, SimclrError *err)
{
  size_t n_params = 0, n_buffers = 0;
  const float *params, *buffers;
  SimclrStatus st;
  char *p;

  if (removed)
    *removed = 0;
  if (rotate_err)
    rotate_err->message[0] = '\0';
  if (path)
    *path = NULL;
  if (!t || !location)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "trainer save: NULL trainer or location");
  p = keep > 0 ? simclr_ckptdir_path (location, t->step) : strdup (location);
  if (!p)
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory");
  if (path)
    *path = p;
  params = simclr_model_params (t->model, &n_params);
  buffers = simclr_model_buffers (t->model, &n_buffers);
  if (!all_finite (params, n_params) || !all_finite (buffers, n_buffers))
    st = simclr_error_set (err, SIMCLR_ERROR_NUMERIC, "%s: the model has "
        "non-finite weights at step %lld: not written", p,
        (long long) t->step);
  else
    st = simclr_trainer_save (t, p, err);
  if (st == SIMCLR_OK && keep > 0)
    simclr_ckptdir_rotate (location, keep, t->step, removed, rotate_err);
  if (!path)
    free (p);
  return st;
}

static SimclrStatus
read_enum (const SimclrSafetensors *st, const char *key, const char *a,
    const char *b, int *out, SimclrError *err)
{
  const char *v = simclr_safetensors_metadata (st, key);
  if (!v)
    return simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "%s: metadata \"%s\" missing: not a trainer checkpoint",
        simclr_safetensors_path (st), key);
  if (strcmp (v, a) == 0)
    *out = 0;
  else if (strcmp (v, b) == 0)
    *out = 1;
  else
    return simclr_error_set (err, SIMCLR_ERROR_FORMAT,
        "%s: metadata \"%s\" = \"%s\" (expected %s or %s)",
        simclr_safetensors_path (st), key, v, a, b);
  return SIMCLR_OK;
}

SimclrTrainer *
simclr_trainer_load (const char *path, int max_batch, SimclrError *err)
{
  SimclrSafetensors *st = simclr_safetensors_open (path, err);
  if (!st)
    return NULL;
  SimclrTrainer *t = NULL;
  SimclrTrainerConfig cfg;
  simclr_trainer_config_default (&cfg);
  SimclrOptimConfig *o = &cfg.optim;
  int kind = 0, scaling = 0;
  int64_t seed = 0, step = 0, bs = o->batch_size;
  if (simclr_checkpoint_config_from_metadata (st, &cfg.model, err)
      || read_enum (st, "optim_kind", "lars", "sgd", &kind, err)
      || read_enum (st, "lr_scaling", "linear", "sqrt", &scaling, err)
      || simclr_checkpoint_meta_int64 (st, "step", 1, &step, err)
      || simclr_checkpoint_meta_int64 (st, "seed", 1, &seed, err)
      || simclr_checkpoint_meta_double (st, "temperature", 1,
          &cfg.temperature, err)
      || simclr_checkpoint_meta_double (st, "base_lr", 1, &o->base_lr, err)
      || simclr_checkpoint_meta_int64 (st, "batch_size", 1, &bs, err)
      || simclr_checkpoint_meta_double (st, "momentum", 1, &o->momentum, err)
      || simclr_checkpoint_meta_double (st, "weight_decay", 1,
          &o->weight_decay, err)
      || simclr_checkpoint_meta_double (st, "trust_coefficient", 1,
          &o->trust_coefficient, err)
      || simclr_checkpoint_meta_int64 (st, "warmup_steps", 1,
          &o->warmup_steps, err)
      || simclr_checkpoint_meta_int64 (st, "total_steps", 1, &o->total_steps,
          err))
    goto out;
  /* Optional: files written before multi-view training (issue 11) have no
   * "views" and were trained on pairs. */
  {
    int64_t views = 2;
    if (simclr_checkpoint_meta_int64 (st, "views", 0, &views, err))
      goto out;
    cfg.views = views >= 2 && views <= SIMCLR_LOSS_MAX_VIEWS ? (int) views : 0;
    if (!cfg.views) {
      simclr_error_set (err, SIMCLR_ERROR_FORMAT, "%s: metadata \"views\" = "
          "%lld (expected 2 .. %d)", path, (long long) views,
          SIMCLR_LOSS_MAX_VIEWS);
      goto out;
    }
  }
  /* Optional: multi-crop runs only (checked by the validation below). */
  {
    int64_t sv = 0, ss = 0;
    if (simclr_checkpoint_meta_int64 (st, "small_views", 0, &sv, err)
        || simclr_checkpoint_meta_int64 (st, "small_size", 0, &ss, err))
      goto out;
    if (sv < 0 || sv > SIMCLR_LOSS_MAX_VIEWS || ss < 0 || ss > 4096) {
      simclr_error_set (err, SIMCLR_ERROR_FORMAT, "%s: metadata "
          "\"small_views\" = %lld, \"small_size\" = %lld out of range",
          path, (long long) sv, (long long) ss);
      goto out;
    }
    cfg.small_views = (int) sv;
    cfg.small_size = (int) ss;
  }
  /* Optional: files written before the stream schedules (issue 13) have
   * neither key and were trained with the cosine schedule. */
  if (simclr_checkpoint_meta_int64 (st, "restart_period", 0,
          &o->restart_period, err))
    goto out;
  const char *sched = simclr_safetensors_metadata (st, "lr_schedule");
  if (sched) {
    int k = simclr_lr_schedule_from_string (sched);
    if (k < 0) {
      simclr_error_set (err, SIMCLR_ERROR_FORMAT, "%s: metadata "
          "\"lr_schedule\" = \"%s\" (expected cosine, constant or "
          "cosine-restarts)", path, sched);
      goto out;
    }
    o->schedule = (SimclrLrSchedule) k;
  } else {
    o->schedule = SIMCLR_LR_SCHEDULE_COSINE;
  }
  o->kind = kind ? SIMCLR_OPTIM_SGD : SIMCLR_OPTIM_LARS;
  o->lr_scaling = scaling ? SIMCLR_LR_SCALING_SQRT : SIMCLR_LR_SCALING_LINEAR;
  o->batch_size = (int) bs;
  cfg.seed = (uint64_t) seed;
  cfg.model.max_batch = max_batch;
  if (step < 0) {
    simclr_error_set (err, SIMCLR_ERROR_FORMAT, "%s: negative step %lld",
        path, (long long) step);
    goto out;
  }
  if (simclr_trainer_config_validate (&cfg, err) != SIMCLR_OK)
    goto out;
  /* Skip the random initialisation cost? It is cheap next to a checkpoint
   * read, and keeps one construction path. */
  t = simclr_trainer_new (&cfg, err);
  if (!t)
    goto out;
  if (simclr_checkpoint_read_model (st, t->model, "optim.", err)
      || simclr_checkpoint_read_param_like (st, t->model, VELOCITY_PREFIX,
          t->velocity, err)) {
    simclr_trainer_free (t);
    t = NULL;
    goto out;
  }
  t->step = step;
  /* Optional: files written before it existed have no wall time. */
  if (simclr_safetensors_metadata (st, "train_seconds")
      && simclr_checkpoint_meta_double (st, "train_seconds", 0,
          &t->wall_before, NULL) != SIMCLR_OK)
    t->wall_before = 0;
out:
  simclr_safetensors_free (st);
  return t;
}

SimclrTrainer *
simclr_trainer_load_replica (const char *path, int replicas, SimclrError *err)
{
  SimclrSafetensors *st;
  int64_t global = 0;
  SimclrTrainerConfig cfg;

  if (replicas < 1) {
    simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "trainer load: %d replicas", replicas);
    return NULL;
  }
  st = simclr_safetensors_open (path, err);
  if (!st)
    return NULL;
  int64_t views = 2;
  if (simclr_checkpoint_meta_int64 (st, "batch_size", 1, &global, err)
      != SIMCLR_OK
      || simclr_checkpoint_meta_int64 (st, "views", 0, &views, err)
      != SIMCLR_OK) {
    simclr_safetensors_free (st);
    return NULL;
  }
  simclr_safetensors_free (st);
  simclr_trainer_config_default (&cfg);
  /* (a bad value is reported by simclr_trainer_load) */
  if (views >= 2 && views <= SIMCLR_LOSS_MAX_VIEWS)
    cfg.views = (int) views;
  if (global < 1 || global > INT_MAX || global % replicas != 0) {
    simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "optim.batch_size", NULL, "%s was trained with a global batch of "
        "%lld samples, which %d replicas cannot split evenly", path,
        (long long) global, replicas);
    return NULL;
  }
  if (simclr_trainer_config_set_batch (&cfg, (int) (global / replicas),
          replicas, err) != SIMCLR_OK)
    return NULL;
  return simclr_trainer_load (path, cfg.model.max_batch, err);
}

/* What each replica tells the others before joining. */
typedef struct {
  int64_t step;
  int64_t batch;              /* global batch */
  int64_t max_batch;          /* rows the model takes */
  int64_t small_views, small_size;
} JoinRecord;

SimclrStatus
simclr_trainer_join (SimclrTrainer *t, const SimclrComm *comm, int sync_bn,
    SimclrError *err)
{
  SimclrStatus s;
  SimclrLoss *loss;
  JoinRecord mine, *all;
  int64_t lo, hi;
  size_t n;
  float *p;

  if (!t)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "trainer join: NULL trainer");
  s = simclr_comm_validate (comm, err);
  if (s != SIMCLR_OK)
    return s;
  if (comm->size == 1) {
    t->comm = *comm;
    return SIMCLR_OK;
  }

  /* Checks every replica makes alike on the same gathered records, so all
   * of them fail together (none waits in a broadcast for a failed one). A
   * replica that cannot allocate its new loss says so with step -1. */
  loss = simclr_loss_new (simclr_loss_get_config (t->loss), comm, NULL);
  all = malloc ((size_t) comm->size * sizeof *all);
  if (!all) {
    /* Without a receive buffer this replica cannot take part; the others
     * wait in the gather until the job's failure handling ends them. */
    simclr_loss_free (loss);
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "trainer join: out of memory");
  }
  memset (&mine, 0, sizeof mine);
  mine.step = loss ? t->step : -1;
  mine.batch = t->cfg.optim.batch_size;
  mine.max_batch = t->cfg.model.max_batch;
  mine.small_views = t->cfg.small_views;
  mine.small_size = t->cfg.small_size;
  comm->allgather (&mine, sizeof mine, all, comm->user);
  lo = hi = all[0].step;
  for (int q = 0; q < comm->size; q++) {
    if (all[q].step < lo)
      lo = all[q].step;
    if (all[q].step > hi)
      hi = all[q].step;
  }
  if (lo < 0)
    s = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "trainer join: a replica ran out of memory");
  else if (lo != hi)
    s = simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "The ranks start at different steps (%lld .. %lld): every rank "
        "must resume from the same checkpoint", (long long) lo,
        (long long) hi);
  for (int q = 0; q < comm->size && s == SIMCLR_OK; q++) {
    if (all[q].batch != all[0].batch)
      s = simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "optim.batch_size", NULL, "replica %d has a global batch of %lld "
          "samples, replica 0 one of %lld: every replica must be "
          "configured alike", q, (long long) all[q].batch,
          (long long) all[0].batch);
    else if (all[q].small_views != all[0].small_views
        || all[q].small_size != all[0].small_size)
      s = simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "trainer.small_views", NULL, "replica %d has %lld small views of "
          "%lld pixels, replica 0 %lld of %lld: every replica must be "
          "configured alike", q, (long long) all[q].small_views,
          (long long) all[q].small_size, (long long) all[0].small_views,
          (long long) all[0].small_size);
    else if (all[q].batch % comm->size != 0)
      s = simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "optim.batch_size", NULL, "a global batch of %lld samples does "
          "not split evenly over %d replicas", (long long) all[q].batch,
          comm->size);
    else if (all[q].max_batch < t->cfg.views * (all[q].batch / comm->size))
      s = simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "model.max_batch", NULL, "replica %d takes %lld rows per forward, "
          "fewer than its %d x %lld views per step", q,
          (long long) all[q].max_batch, t->cfg.views,
          (long long) (all[q].batch / comm->size));
  }
  free (all);
  if (s != SIMCLR_OK) {
    simclr_loss_free (loss);
    return s;
  }

  p = simclr_model_params (t->model, &n);
  comm->broadcast (p, n * sizeof (float), comm->user);
  p = simclr_model_buffers (t->model, &n);
  if (p && n > 0)
    comm->broadcast (p, n * sizeof (float), comm->user);
  simclr_model_params (t->model, &n);
  comm->broadcast (t->velocity, n * sizeof (float), comm->user);

  /* The convenience step's loss gathers every replica's rows. */
  simclr_loss_free (t->loss);
  t->loss = loss;
  simclr_model_set_allreduce (t->model, sync_bn ? comm->allreduce : NULL,
      comm->user);
  if (t->small)
    simclr_model_set_allreduce (t->small, sync_bn ? comm->allreduce : NULL,
        comm->user);
  simclr_trainer_set_gradient_allreduce (t, comm->allreduce, comm->user);
  simclr_trainer_set_replicas (t, 1);
  t->comm = *comm;
  return SIMCLR_OK;
}
