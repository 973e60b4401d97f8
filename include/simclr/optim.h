/* optim.h: LARS and SGD with momentum over one flat parameter buffer, and the
 * learning-rate schedules: linear warm-up, then cosine decay to 0 at
 * total_steps (the default, SimCLR's), a constant rate, or cosine with warm
 * restarts (for streams without an end, issue 13).
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

/* What follows the linear warm-up (see simclr_optim_lr). */
typedef enum {
  SIMCLR_LR_SCHEDULE_COSINE = 0,          /* cosine to 0 at total_steps, then 0 */
  SIMCLR_LR_SCHEDULE_CONSTANT = 1,        /* the peak rate for ever */
  SIMCLR_LR_SCHEDULE_COSINE_RESTARTS = 2, /* cosine from the peak over
                                           * restart_period steps, repeated */
} SimclrLrSchedule;

typedef struct {
  SimclrOptimKind kind;
  double base_lr;            /* 0.3 (linear) or 0.075 (sqrt) in SimCLR */
  SimclrLrScaling lr_scaling;
  int batch_size;            /* N images (2N views) per step, global */
  double momentum;           /* 0.9 */
  double weight_decay;       /* 1e-6 */
  double trust_coefficient;  /* LARS eta, 0.001 */
  int64_t warmup_steps;      /* linear warm-up from 0 over these steps */
  int64_t total_steps;       /* cosine decay reaches 0 here; > warmup_steps
                              * (the cosine schedule only) */
  SimclrLrSchedule schedule; /* 0 = cosine, so a zeroed struct is today's */
  int64_t restart_period;    /* cosine-restarts: steps per cycle, >= 1 */
} SimclrOptimConfig;

typedef struct {
  size_t offset;             /* first float in the parameter buffer */
  size_t numel;
  int adapt;                 /* 1: weight decay + LARS trust ratio */
} SimclrParamGroup;

/* SimCLR's defaults: LARS, base 0.3 linear, N 256, momentum 0.9, wd 1e-6,
 * eta 0.001, warm-up 10 steps of 100, cosine (restart period 1000, unused). */
void simclr_optim_config_default (SimclrOptimConfig *cfg);

/* Checks ranges (positive lr and batch, momentum in [0,1), ...). */
SimclrStatus simclr_optim_config_validate (const SimclrOptimConfig *cfg,
    SimclrError *err);

/* The learning rate at 0-based @step, with peak = the scaled base rate and
 * W = warmup_steps:
 *   step < W:  peak * (step + 1) / W                      (every schedule)
 *   cosine:    peak * (1 + cos (pi * (step - W) / (T - W))) / 2 for step < T
 *              = total_steps, 0 from T on
 *   constant:  peak
 *   cosine-restarts: peak * (1 + cos (pi * ((step - W) mod P) / P)) / 2 with
 *              P = restart_period (SGDR with T_mult 1 and eta_min 0: the
 *              rate jumps back to the peak every P steps; total_steps is not
 *              used)
 * 0 for a negative step. */
double simclr_optim_lr (const SimclrOptimConfig *cfg, int64_t step);

/* "cosine", "constant", "cosine-restarts" (checkpoint metadata "lr_schedule");
 * NULL out of range. */
const char *simclr_lr_schedule_to_string (SimclrLrSchedule schedule);
/* The inverse; -1 for an unknown name or NULL. */
int simclr_lr_schedule_from_string (const char *name);

/* One update of params (and velocity, same layout) from grads with rate @lr.
 * Fails with SIMCLR_ERROR_NUMERIC (touching nothing) if a gradient is not
 * finite. */
SimclrStatus simclr_optim_step (const SimclrOptimConfig *cfg, double lr,
    float *params, const float *grads, float *velocity,
    const SimclrParamGroup *groups, int n_groups, SimclrError *err);

#ifdef __cplusplus
}
#endif
