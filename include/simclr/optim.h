/* optim.h: LARS and SGD with momentum over one flat parameter buffer, and the
 * learning-rate schedule (linear warm-up then cosine decay to 0).
 *
 * The optimiser does not know the model: it walks a table of parameter groups
 * (slices of the one buffer). A group with `adapt` set gets weight decay and,
 * under LARS, the layer-wise trust ratio; biases and batch-norm parameters are
 * groups without it (plain momentum, no decay), as in SimCLR.
 *
 * Update, per group, with g its gradient and p its weights:
 *   d = g + wd * p                       (adapt groups; d = g otherwise)
 *   LARS, adapt: d *= trust * ||p|| / ||d||  (1 when either norm is 0)
 *   v = momentum * v + lr * d;  p -= v
 * (SimCLR's TF LARS and ../shared/peer's; SGD is the same without the trust
 * ratio.) Pure functions on caller-owned buffers; thread-safe per buffer.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "simclr/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  SIMCLR_OPTIM_LARS = 0,
  SIMCLR_OPTIM_SGD = 1,
} SimclrOptimKind;

typedef enum {
  SIMCLR_LR_SCALING_LINEAR = 0,  /* peak lr = base_lr * batch_size / 256 */
  SIMCLR_LR_SCALING_SQRT = 1,    /* peak lr = base_lr * sqrt (batch_size) */
} SimclrLrScaling;

typedef struct {
  SimclrOptimKind kind;
  double base_lr;            /* 0.3 (linear) or 0.075 (sqrt) in SimCLR */
  SimclrLrScaling lr_scaling;
  int batch_size;            /* N images (2N views) per step, global */
  double momentum;           /* 0.9 */
  double weight_decay;       /* 1e-6 */
  double trust_coefficient;  /* LARS eta, 0.001 */
  int64_t warmup_steps;      /* linear warm-up from 0 over these steps */
  int64_t total_steps;       /* cosine decay reaches 0 here; > warmup_steps */
} SimclrOptimConfig;

typedef struct {
  size_t offset;             /* first float in the parameter buffer */
  size_t numel;
  int adapt;                 /* 1: weight decay + LARS trust ratio */
} SimclrParamGroup;

/* SimCLR's defaults: LARS, base 0.3 linear, N 256, momentum 0.9, wd 1e-6,
 * eta 0.001, warm-up 10 steps of 100. */
void simclr_optim_config_default (SimclrOptimConfig *cfg);

/* Checks ranges (positive lr and batch, momentum in [0,1), ...). */
SimclrStatus simclr_optim_config_validate (const SimclrOptimConfig *cfg,
    SimclrError *err);

/* The learning rate at 0-based @step: step+1 over warm-up, then cosine to 0;
 * 0 from total_steps on. */
double simclr_optim_lr (const SimclrOptimConfig *cfg, int64_t step);

/* One update of params (and velocity, same layout) from grads with rate @lr.
 * Fails with SIMCLR_ERROR_NUMERIC (touching nothing) if a gradient is not
 * finite. */
SimclrStatus simclr_optim_step (const SimclrOptimConfig *cfg, double lr,
    float *params, const float *grads, float *velocity,
    const SimclrParamGroup *groups, int n_groups, SimclrError *err);

#ifdef __cplusplus
}
#endif
