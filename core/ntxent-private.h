/* ntxent-private.h: test hooks of the NT-Xent kernel (ntxent.c), for the
 * tests that run its vectorised row pass at every instruction-set level. */
#pragma once

#include "simclr/cpu.h"
#include "simclr/ntxent.h"

/* Makes @nt run its row pass (rank, log-sum-exp, softmax) at @level,
 * clamped to the CPU's best; the default is simclr_cpu_level (). */
void simclr_ntxent_set_cpu_level (SimclrNtxent *nt, SimclrCpuLevel level);

/* The row pass's exponentials at @level (clamped to the CPU's best):
 * x[k] <- e^((x[k] - xmax) inv_tau) for k < n, returning their sum
 * (float64). Every x[k] must be <= xmax (or -inf: a term of 0). */
double simclr_ntxent_exp_sum_at (SimclrCpuLevel level, float *x, int n,
    float xmax, float inv_tau);
