/* replica-harness.c: see replica-harness.h. */
#include <math.h>
#include <string.h>

#include <glib.h>

#include "replica-harness.h"

static gpointer
replica_thread (gpointer data)
{
  Replica *r = data;
  const ReplicaPlan *plan = r->plan;
  SimclrComm comm;

  fake_comm (&r->member, &comm);
  r->failed_step = -1;
  r->status = simclr_trainer_join (r->t, &comm, TRUE, &r->err);
  if (r->status != SIMCLR_OK || plan->steps == 0)
    return NULL;
  g_assert_cmpint (simclr_trainer_local_batch (r->t), ==, plan->samples);
  uint8_t *views = g_malloc (plan->samples * plan->sample_bytes);
  for (int step = 0; step < plan->steps; step++) {
    SimclrNtxentResult res;
    plan->views_of (views, plan->first_step + step,
        r->member.rank * plan->samples, plan->samples);
    r->status = simclr_trainer_train_step (r->t, views,
        simclr_trainer_local_rows (r->t), &res, &r->err);
    if (r->status != SIMCLR_OK) {
      r->failed_step = step;
      break;
    }
    r->losses[step] = res.loss;
  }
  g_free (views);
  return NULL;
}

int
replica_run (const ReplicaPlan *plan, SimclrTrainer **t, Replica *reps)
{
  FakeGroup g;
  GThread *threads[REPLICA_MAX];

  g_assert_cmpint (plan->replicas, <=, REPLICA_MAX);
  g_assert_cmpint (plan->steps, <=, REPLICA_MAX_STEPS);
  fake_group_init (&g, plan->replicas);
  for (int q = 0; q < plan->replicas; q++) {
    memset (&reps[q], 0, sizeof reps[q]);
    reps[q].member.g = &g;
    reps[q].member.rank = q;
    reps[q].t = t[q];
    reps[q].plan = plan;
  }
  for (int q = 0; q < plan->replicas; q++)
    threads[q] = g_thread_new ("replica", replica_thread, &reps[q]);
  for (int q = 0; q < plan->replicas; q++)
    g_thread_join (threads[q]);
  fake_group_clear (&g);
  return g.broadcasts;
}

float *
replica_reference (const ReplicaPlan *plan, SimclrTrainer *ref,
    double *losses)
{
  SimclrError err = { 0 };
  const int all = plan->samples * plan->replicas;
  size_t np;
  const float *p = simclr_model_params (simclr_trainer_get_model (ref), &np);
  float *init = g_memdup2 (p, np * sizeof (float));
  uint8_t *views = g_malloc (all * plan->sample_bytes);

  g_assert_cmpint (simclr_trainer_local_batch (ref), ==, all);
  for (int step = 0; step < plan->steps; step++) {
    SimclrNtxentResult res;
    plan->views_of (views, plan->first_step + step, 0, all);
    if (simclr_trainer_train_step (ref, views, simclr_trainer_local_rows (ref),
            &res, &err) != SIMCLR_OK)
      g_error ("one trainer of %d samples, step %d: %s", all, step,
          err.message);
    losses[step] = res.loss;
  }
  g_free (views);
  return init;
}

void
replica_assert_identical (const ReplicaPlan *plan, const Replica *reps)
{
  const int K = plan->replicas;

  for (int q = 0; q < K; q++)
    if (reps[q].status != SIMCLR_OK) {
      if (reps[q].failed_step < 0)
        g_error ("join of replica %d: %s", q, reps[q].err.message);
      g_error ("replica %d step %d: %s", q, reps[q].failed_step,
          reps[q].err.message);
    }
  for (int step = 0; step < plan->steps; step++)
    for (int q = 1; q < K; q++)
      g_assert_cmpfloat (reps[q].losses[step], ==, reps[0].losses[step]);
  size_t np;
  const float *p0 = simclr_model_params (simclr_trainer_get_model (reps[0].t),
      &np);
  for (int q = 1; q < K; q++)
    g_assert_cmpint (memcmp (p0, simclr_model_params (simclr_trainer_get_model
                (reps[q].t), NULL), np * sizeof (float)), ==, 0);
}

void
replica_assert_equivalent (const ReplicaPlan *plan, const Replica *reps,
    SimclrTrainer *ref, const double *ref_losses, const float *init)
{
  const int K = plan->replicas;

  replica_assert_identical (plan, reps);
  for (int step = 0; step < plan->steps; step++)
    if (!(fabs (reps[0].losses[step] - ref_losses[step]) <= plan->tol_loss))
      g_error ("step %d: %d replicas loss %.9g, one trainer %.9g", step, K,
          reps[0].losses[step], ref_losses[step]);
  size_t np;
  const float *p0 = simclr_model_params (simclr_trainer_get_model (reps[0].t),
      &np);
  const float *pr = simclr_model_params (simclr_trainer_get_model (ref), NULL);
  double num = 0, den = 0;
  for (size_t i = 0; i < np; i++) {
    num += ((double) p0[i] - pr[i]) * ((double) p0[i] - pr[i]);
    den += ((double) pr[i] - init[i]) * ((double) pr[i] - init[i]);
  }
  g_assert_cmpfloat (den, >, 0);
  if (!(sqrt (num / den) <= plan->tol_update))
    g_error ("the update of %d replicas differs from one trainer's by %.3g "
        "(relative)", K, sqrt (num / den));
}

/* Copies @from's weights, velocity and BN running statistics (of the
 * small views' model too) into @to. */
static void
copy_state (SimclrTrainer *to, SimclrTrainer *from)
{
  size_t np, nb;
  SimclrModel *mt = simclr_trainer_get_model (to);
  SimclrModel *mf = simclr_trainer_get_model (from);
  float *p = simclr_model_params (mt, &np);
  float *b = simclr_model_buffers (mt, &nb);
  memcpy (p, simclr_model_params (mf, NULL), np * sizeof (float));
  memcpy (b, simclr_model_buffers (mf, NULL), nb * sizeof (float));
  memcpy (simclr_trainer_get_velocity (to, NULL),
      simclr_trainer_get_velocity (from, NULL), np * sizeof (float));
  SimclrModel *st = simclr_trainer_get_small_model (to);
  SimclrModel *sf = simclr_trainer_get_small_model (from);
  if (st && sf) {
    b = simclr_model_buffers (st, &nb);
    if (b != simclr_model_buffers (mt, NULL))
      memcpy (b, simclr_model_buffers (sf, NULL), nb * sizeof (float));
  }
}

/* Step @step's errors of @a against @ref, which both started from the
 * parameters @before. */
static void
step_errors (SimclrTrainer *a, SimclrTrainer *ref, const float *before,
    double loss_a, double loss_ref, int step, ReplicaSteps *r)
{
  size_t np, nb;
  const float *pa = simclr_model_params (simclr_trainer_get_model (a), &np);
  const float *pr = simclr_model_params (simclr_trainer_get_model (ref),
      NULL);
  const float *ba = simclr_model_buffers (simclr_trainer_get_model (a), &nb);
  const float *br = simclr_model_buffers (simclr_trainer_get_model (ref),
      NULL);
  double num = 0, den = 0, bw = 0;
  for (size_t i = 0; i < np; i++) {
    num += ((double) pa[i] - pr[i]) * ((double) pa[i] - pr[i]);
    den += ((double) pr[i] - before[i]) * ((double) pr[i] - before[i]);
  }
  for (size_t i = 0; i < nb; i++) {
    double d = fabs ((double) ba[i] - br[i]) / (1 + fabs (br[i]));
    bw = fmax (bw, isnan (d) ? INFINITY : d);
  }
  double u = den > 0 ? sqrt (num / den) : INFINITY;
  double l = fabs (loss_a - loss_ref);
  r->loss[step] = isnan (l) ? INFINITY : l;
  r->update[step] = isnan (u) ? INFINITY : u;
  r->buffers[step] = bw;
}

void
replica_lockstep (const ReplicaPlan *plan, SimclrTrainer **t,
    SimclrTrainer *ref, SimclrTrainer *alt, const SimclrKernels *alt_kernels,
    ReplicaSteps *r, ReplicaSteps *fl)
{
  const int K = plan->replicas;
  size_t np;
  simclr_model_params (simclr_trainer_get_model (ref), &np);
  float *before = g_new (float, np);
  Replica reps[REPLICA_MAX];

  g_assert_cmpint (plan->steps, <=, REPLICA_MAX_STEPS);
  memset (r, 0, sizeof *r);
  r->steps = plan->steps;
  if (alt) {
    memset (fl, 0, sizeof *fl);
    fl->steps = plan->steps;
  }
  for (int step = 0; step < plan->steps; step++) {
    ReplicaPlan one = *plan;
    double ref_loss, alt_loss = 0;
    one.steps = 1;
    one.first_step = plan->first_step + step;
    memcpy (before, simclr_model_params (simclr_trainer_get_model (ref),
            NULL), np * sizeof (float));
    for (int q = 0; q < K; q++)
      copy_state (t[q], ref);
    replica_run (&one, t, reps);
    replica_assert_identical (&one, reps);
    if (alt) {
      copy_state (alt, ref);
      const SimclrKernels *was = simclr_cpu_force_kernels (alt_kernels);
      g_free (replica_reference (&one, alt, &alt_loss));
      simclr_cpu_force_kernels (was);
    }
    g_free (replica_reference (&one, ref, &ref_loss));
    step_errors (reps[0].t, ref, before, reps[0].losses[0], ref_loss, step,
        r);
    if (alt)
      step_errors (alt, ref, before, alt_loss, ref_loss, step, fl);
    g_test_message ("lockstep step %d: %d replicas vs one trainer: loss %.3g, "
        "update %.3g, BN statistics %.3g", step, K, r->loss[step],
        r->update[step], r->buffers[step]);
    if (alt)
      g_test_message ("lockstep step %d: noise floor: loss %.3g, update "
          "%.3g, BN statistics %.3g", step, fl->loss[step], fl->update[step],
          fl->buffers[step]);
  }
  g_free (before);
}
