/* fd-check.h: finite-difference checks of an analytic gradient, shared by
 * the model's and the mixed-size step's gradient tests (test-model.c,
 * test-multicrop.c).
 *
 * Each probe perturbs one float value in place (a parameter or an input
 * pixel), evaluates the caller's loss around it and compares the analytic
 * gradient with Richardson-extrapolated central differences at three base
 * steps (fd-check.c says why and how). The verdict is over all probes
 * (fd_stats_assert), since ReLU kinks make single probes unreliable.
 */
#pragma once

/* The loss at the current values, in double precision. */
typedef double (*FdLossFunc) (void *ctx);

#define FD_MAX_PROBES 256

typedef struct {
  int probes, skipped, failed;
  double worst;                 /* of the relative errors below */
  double rel[FD_MAX_PROBES];    /* each scored probe's best relative error */
  int n_rel;
} FdStats;

/* Probes the gradient wrt *@v (restored afterwards): @an is the analytic
 * value, @eps the first base step, @what names the probe in messages
 * (printed for the first failure, and for every step with
 * SIMCLR_TEST_VERBOSE set). Counts into @st. */
void fd_probe (FdLossFunc loss, void *ctx, float *v, double an, double eps,
    const char *what, FdStats *st);

/* Prints "# @label: N probes, S skipped (kinks), F failed; relative error
 * median M, worst W" and fails the test unless at most 1 in 5 probes
 * failed, at most half were skipped and the median relative error is below
 * 5e-3. */
void fd_stats_assert (FdStats *st, const char *label);
