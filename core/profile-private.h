/* profile-private.h: where a model's forward and backward time goes, per
 * layer kind and per convolution unit (bench-train --profile prints it).
 *
 * Private to libsimclr (benchmarks and tests reach it through the static
 * library). When a profile is attached, the model times each convolution
 * pass and each batch-norm unit (with the ReLU, residual add and ReLU-mask
 * passes around it) with CLOCK_MONOTONIC (or the process CPU clock) and ADDS the seconds and FLOPs to
 * the profile: the caller zeroes it and divides by the steps it ran.
 * Everything else (stem input copy, pooling, head, loss, optimiser) is
 * "the rest": the caller's step time minus these.
 */
#pragma once

#include "simclr/model.h"
#include "layers-private.h"

typedef enum {
  SIMCLR_PROFILE_CONV_FORWARD,
  SIMCLR_PROFILE_CONV_DINPUT,   /* input gradient */
  SIMCLR_PROFILE_CONV_DWEIGHT,  /* weight gradient */
  SIMCLR_PROFILE_BN,            /* batch norm forward + backward, ReLU, add */
  SIMCLR_PROFILE_N_KINDS
} SimclrProfileKind;

#define SIMCLR_PROFILE_MAX_UNITS 64

/* One convolution + batch-norm unit. */
typedef struct {
  const char *name;             /* the convolution's weight tensor, owned by
                                 * the model */
  SimclrConvShape shape;        /* of the last call (its B) */
  double seconds[SIMCLR_PROFILE_N_KINDS];
  double flops[SIMCLR_PROFILE_N_KINDS];   /* 2 x MACs per conv pass; 0 BN */
} SimclrProfileUnit;

typedef struct {
  int cpu_time;                 /* time with the process's CPU clock
                                 * (meaningful with one thread: on a shared
                                 * machine other jobs then do not count) */
  double seconds[SIMCLR_PROFILE_N_KINDS];
  double flops[SIMCLR_PROFILE_N_KINDS];
  int n_units;                  /* units seen (the model's, in call order) */
  SimclrProfileUnit unit[SIMCLR_PROFILE_MAX_UNITS];
} SimclrProfile;

/* Attaches @p (caller-owned, zeroed by the caller) to @m, or detaches with
 * NULL. Units beyond SIMCLR_PROFILE_MAX_UNITS count in the totals only. */
void simclr_model_set_profile (SimclrModel *m, SimclrProfile *p);
