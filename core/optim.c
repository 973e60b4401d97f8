/* optim.c: LARS / SGD with momentum over one flat buffer, and the learning-rate
 * schedule (see include/simclr/optim.h).
 *
 * Not here: which tensors are adapted (the model's parameter table decides)
 * or gradient all-reduce (the trainer does it before the step).
 */
#include "simclr/optim.h"

#include <math.h>
#include <string.h>

void
simclr_optim_config_default (SimclrOptimConfig *cfg)
{
  if (!cfg)
    return;
  cfg->kind = SIMCLR_OPTIM_LARS;
  cfg->base_lr = 0.3;
  cfg->lr_scaling = SIMCLR_LR_SCALING_LINEAR;
  cfg->batch_size = 256;
  cfg->momentum = 0.9;
  cfg->weight_decay = 1e-6;
  cfg->trust_coefficient = 0.001;
  cfg->warmup_steps = 10;
  cfg->total_steps = 100;
  cfg->schedule = SIMCLR_LR_SCHEDULE_COSINE;
  cfg->restart_period = 1000;
}

static const char *const schedule_names[] = {
  [SIMCLR_LR_SCHEDULE_COSINE] = "cosine",
  [SIMCLR_LR_SCHEDULE_CONSTANT] = "constant",
  [SIMCLR_LR_SCHEDULE_COSINE_RESTARTS] = "cosine-restarts",
};
#define N_SCHEDULES ((int) (sizeof schedule_names / sizeof schedule_names[0]))

const char *
simclr_lr_schedule_to_string (SimclrLrSchedule schedule)
{
  if ((int) schedule < 0 || (int) schedule >= N_SCHEDULES)
    return NULL;
  return schedule_names[schedule];
}

int
simclr_lr_schedule_from_string (const char *name)
{
  if (!name)
    return -1;
  for (int i = 0; i < N_SCHEDULES; i++)
    if (strcmp (name, schedule_names[i]) == 0)
      return i;
  return -1;
}

SimclrStatus
simclr_optim_config_validate (const SimclrOptimConfig *cfg, SimclrError *err)
{
  if (!cfg)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "optim: NULL configuration");
  if (cfg->kind != SIMCLR_OPTIM_LARS && cfg->kind != SIMCLR_OPTIM_SGD)
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "optim.kind", NULL,
        "optim: unknown optimiser kind %d", (int) cfg->kind);
  if (cfg->lr_scaling != SIMCLR_LR_SCALING_LINEAR
      && cfg->lr_scaling != SIMCLR_LR_SCALING_SQRT)
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "optim.lr_scaling", NULL,
        "optim: unknown learning-rate scaling %d", (int) cfg->lr_scaling);
  if (!(cfg->base_lr > 0.0) || !isfinite (cfg->base_lr))
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "optim.base_lr", NULL,
        "optim: base learning rate %g must be positive and finite",
        cfg->base_lr);
  if (cfg->batch_size <= 0)
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "optim.batch_size", NULL,
        "optim: batch size %d must be positive", cfg->batch_size);
  if (!(cfg->momentum >= 0.0 && cfg->momentum < 1.0))
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "optim.momentum", NULL,
        "optim: momentum %g must be in [0, 1)", cfg->momentum);
  if (!(cfg->weight_decay >= 0.0) || !isfinite (cfg->weight_decay))
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "optim.weight_decay", NULL,
        "optim: weight decay %g must be >= 0 and finite", cfg->weight_decay);
  if (cfg->kind == SIMCLR_OPTIM_LARS && (!(cfg->trust_coefficient > 0.0)
          || !isfinite (cfg->trust_coefficient)))
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "optim.trust_coefficient", NULL,
        "optim: LARS trust coefficient %g must be positive and finite",
        cfg->trust_coefficient);
  if (cfg->warmup_steps < 0)
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "optim.warmup_steps", NULL,
        "optim: warm-up steps %lld must be >= 0",
        (long long) cfg->warmup_steps);
  if (!simclr_lr_schedule_to_string (cfg->schedule))
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "optim.schedule", NULL,
        "optim: unknown learning-rate schedule %d", (int) cfg->schedule);
  /* Only the cosine decay has a horizon; the stream schedules run for ever. */
  if (cfg->schedule == SIMCLR_LR_SCHEDULE_COSINE
      && cfg->total_steps <= cfg->warmup_steps)
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "optim.total_steps", "optim.warmup_steps",
        "optim: total steps %lld must exceed warm-up steps %lld",
        (long long) cfg->total_steps, (long long) cfg->warmup_steps);
  if (cfg->schedule == SIMCLR_LR_SCHEDULE_COSINE_RESTARTS
      && cfg->restart_period < 1)
    return simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "optim.restart_period", NULL, "optim: restart period %lld of the cosine-restarts schedule must be "
        ">= 1 step", (long long) cfg->restart_period);
  return SIMCLR_OK;
}

/* The rate after scaling by the batch size: SimCLR's 0.3 x N/256 (linear) or
 * 0.075 x sqrt (N) (square root, better for small batches, paper appendix B). */
static double
peak_lr (const SimclrOptimConfig *cfg)
{
  if (cfg->lr_scaling == SIMCLR_LR_SCALING_SQRT)
    return cfg->base_lr * sqrt ((double) cfg->batch_size);
  return cfg->base_lr * cfg->batch_size / 256.0;
}

/* Warm-up then the stream schedules (constant, cosine with restarts). The
 * cosine code in simclr_optim_lr stays as it was, so its rates are bit for
 * bit those of earlier releases (resumed runs depend on it). */
static double
stream_lr (const SimclrOptimConfig *cfg, int64_t step)
{
  double peak = peak_lr (cfg);
  int64_t cycle;

  if (step < cfg->warmup_steps)
    return peak * (double) (step + 1) / (double) cfg->warmup_steps;
  if (cfg->schedule == SIMCLR_LR_SCHEDULE_CONSTANT)
    return peak;
  if (cfg->schedule != SIMCLR_LR_SCHEDULE_COSINE_RESTARTS
      || cfg->restart_period < 1)
    return 0.0;                 /* invalid configuration: do not move */
  cycle = (step - cfg->warmup_steps) % cfg->restart_period;
  return peak * 0.5 * (1.0 + cos (M_PI * (double) cycle
          / (double) cfg->restart_period));
}

double
simclr_optim_lr (const SimclrOptimConfig *cfg, int64_t step)
{
  double peak, progress;

  if (cfg && step >= 0 && cfg->schedule != SIMCLR_LR_SCHEDULE_COSINE)
    return stream_lr (cfg, step);
  if (!cfg || step < 0 || step >= cfg->total_steps)
    return 0.0;
  peak = peak_lr (cfg);
  /* (step + 1) so that step 0 already moves and step warmup-1 is the peak. */
  if (step < cfg->warmup_steps)
    return peak * (double) (step + 1) / (double) cfg->warmup_steps;
  progress = (double) (step - cfg->warmup_steps)
      / (double) (cfg->total_steps - cfg->warmup_steps);
  return peak * 0.5 * (1.0 + cos (M_PI * progress));
}

SimclrStatus
simclr_optim_step (const SimclrOptimConfig *cfg, double lr, float *params,
    const float *grads, float *velocity, const SimclrParamGroup *groups,
    int n_groups, SimclrError *err)
{
  /* params, grads, velocity: one flat buffer each, same layout; groups name
   * slices [offset, offset + numel). */
  if (!cfg || !params || !grads || !velocity || (n_groups > 0 && !groups)
      || n_groups < 0)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "optim: NULL buffer or negative group count");
  if (!(lr >= 0.0) || !isfinite (lr))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "optim: learning rate %g must be >= 0 and finite", lr);

  /* First pass checks every gradient so a bad one leaves all buffers as they
   * were (a later group's NaN must not follow half an update). */
  for (int gi = 0; gi < n_groups; gi++) {
    const float *g = grads + groups[gi].offset;
    for (size_t j = 0; j < groups[gi].numel; j++)
      if (!isfinite (g[j]))
        return simclr_error_set (err, SIMCLR_ERROR_NUMERIC,
            "optim: gradient of group %d (offset %zu) element %zu is %g",
            gi, groups[gi].offset, j, (double) g[j]);
  }

  for (int gi = 0; gi < n_groups; gi++) {
    float *p = params + groups[gi].offset;
    const float *g = grads + groups[gi].offset;
    float *v = velocity + groups[gi].offset;
    const size_t n = groups[gi].numel;
    const int adapt = groups[gi].adapt != 0;
    const double wd = adapt ? cfg->weight_decay : 0.0;
    const double m = cfg->momentum;
    double scale = lr;

    if (adapt && cfg->kind == SIMCLR_OPTIM_LARS) {
      /* trust = eta ||p|| / ||g + wd p||, norms in double (a ResNet layer
       * holds millions of floats); 1 when either norm is 0, as the peer's. */
      double pn = 0.0, dn = 0.0;
      for (size_t j = 0; j < n; j++) {
        double d = (double) g[j] + wd * p[j];
        pn += (double) p[j] * p[j];
        dn += d * d;
      }
      pn = sqrt (pn);
      dn = sqrt (dn);
      if (pn > 0.0 && dn > 0.0)
        scale *= cfg->trust_coefficient * pn / dn;
    }
    for (size_t j = 0; j < n; j++) {
      double d = (double) g[j] + wd * p[j];
      double vj = m * v[j] + scale * d;
      v[j] = (float) vj;
      p[j] -= v[j];     /* the stored velocity, as torch's p.sub_(v) */
    }
  }
  return SIMCLR_OK;
}
