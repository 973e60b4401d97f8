/* replica-harness.h: K data-parallel trainer replicas as threads of one
 * process (fake-comm.h), and their comparison with one trainer stepped
 * with all K x n samples (test-replica.c, test-multicrop.c).
 *
 * The equivalence: K replicas of n samples, each stepped by the
 * convenience simclr_trainer_train_step (gathered SimclrLoss, SyncBN,
 * gradient sum) after simclr_trainer_join, reach the weights of one trainer
 * stepped with all K x n samples within the plan's tolerances, and the
 * replicas hold bitwise identical weights and losses.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "simclr/trainer.h"

#include "fake-comm.h"
#include "cpu-private.h"

#define REPLICA_MAX 4
#define REPLICA_MAX_STEPS 32

/* Fills @dst with the packed uint8 rows of global samples
 * @first..@first+@n-1 at @step, as simclr_trainer_train_step takes them;
 * pixels a pure function of (step, sample, view, pixel). */
typedef void (*ReplicaViewsFunc) (uint8_t *dst, int step, int first, int n);

typedef struct {
  int replicas;                 /* K, <= REPLICA_MAX */
  int samples;                  /* n, per replica per step */
  int steps;                    /* <= REPLICA_MAX_STEPS; 0: join only */
  size_t sample_bytes;          /* packed bytes of one sample's views */
  ReplicaViewsFunc views_of;
  double tol_loss;              /* |loss - one trainer's| per step */
  double tol_update;            /* ||p - ref|| / ||ref - init|| */
  int first_step;               /* step 0 of this run is views_of's step
                                 * first_step (replica_lockstep) */
} ReplicaPlan;

typedef struct {
  FakeMember member;
  SimclrTrainer *t;             /* not owned */
  const ReplicaPlan *plan;
  double losses[REPLICA_MAX_STEPS];
  SimclrStatus status;          /* of the join, then of each step */
  int failed_step;              /* -1: the join (when status != OK) */
  SimclrError err;
} Replica;

/* Joins the plan->replicas trainers @t (simclr_trainer_join, SyncBN on), each in
 * its own thread; then, if plan->steps > 0, replica q makes plan->steps
 * steps on global samples q*n..q*n+n-1, stopping at its first error
 * (reps[q].status, failed_step, err). Returns the group's broadcast count. */
int replica_run (const ReplicaPlan *plan, SimclrTrainer **t, Replica *reps);

/* Steps @ref (configured for K x n samples, one replica) plan->steps times
 * with all samples; fills @losses. Returns a copy of its parameters before
 * the first step (g_free). */
float *replica_reference (const ReplicaPlan *plan, SimclrTrainer *ref,
    double *losses);

/* Fails the test unless every replica ran all steps and their losses and
 * parameters equal replica 0's bitwise. */
void replica_assert_identical (const ReplicaPlan *plan, const Replica *reps);

/* Fails the test unless replica_assert_identical holds, the losses are
 * within plan->tol_loss of @ref_losses and the parameters within
 * plan->tol_update of @ref's relative to @ref's update from @init. */
void replica_assert_equivalent (const ReplicaPlan *plan, const Replica *reps,
    SimclrTrainer *ref, const double *ref_losses, const float *init);

/* Lockstep (as tests/mpi/test-mpi-equivalence.c): before each of
 * plan->steps steps (<= REPLICA_MAX_STEPS; views_of's steps
 * plan->first_step + 0, 1, ...) every replica @t takes @ref's weights,
 * velocity and BN running statistics, the replicas make one step
 * (replica_run, joining again; replica_assert_identical) and @ref makes
 * its step on all samples from the same state. In a free run, rounding
 * noise (the replicas sum in another order) is amplified from step to
 * step and by ReLU flips; in lockstep each step is compared from one
 * state. @r gets each step's errors. With @alt (configured as @ref,
 * created under @alt_kernels, simclr_cpu_force_kernels), the noise floor
 * in the same run: @alt makes @ref's step from the same state under
 * @alt_kernels and @fl gets its errors against @ref. */
typedef struct {
  int steps;
  double loss[REPLICA_MAX_STEPS];       /* |loss - @ref's| */
  double update[REPLICA_MAX_STEPS];     /* ||p - ref|| / ||ref - before||
                                         * over all parameters */
  double buffers[REPLICA_MAX_STEPS];    /* max |b - ref| / (1 + |ref|) */
} ReplicaSteps;

void replica_lockstep (const ReplicaPlan *plan, SimclrTrainer **t,
    SimclrTrainer *ref, SimclrTrainer *alt, const SimclrKernels *alt_kernels,
    ReplicaSteps *r, ReplicaSteps *fl);
