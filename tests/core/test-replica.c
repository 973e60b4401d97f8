/* test-replica.c: the trainer's data-parallel side -- replica set-up
 * (simclr_trainer_join), the batch arithmetic and the schedule questions --
 * with K replicas simulated by threads in one process (replica-harness.h).
 *
 * The equivalence: 2 replicas of N samples stepped by the convenience
 * simclr_trainer_train_step (gathered SimclrLoss, SyncBN, gradient sum)
 * reach the weights of one trainer stepped with all 2N samples, within the
 * tolerances of tests/mpi/test-mpi-equivalence.c (same model and rates),
 * and the replicas hold bitwise identical weights, although replica 1
 * started from other weights (the join broadcasts replica 0's).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "simclr/rng.h"
#include "simclr/trainer.h"

#include "replica-harness.h"

#define N 4                     /* samples per replica per step */
#define K 2
#define SIZE 12
#define STEPS 6
#define SEED 11
#define TOL_LOSS 1e-5
#define TOL_UPDATE 5e-3

static void
make_config (SimclrTrainerConfig *cfg, int local_batch, int replicas,
    uint64_t seed)
{
  SimclrError err = { 0 };
  simclr_trainer_config_default (cfg);
  cfg->model.arch = SIMCLR_ARCH_RESNET18;
  cfg->model.width = 0.25;
  cfg->model.in_channels = 1;
  cfg->model.image_size = SIZE;
  cfg->model.proj_layers = 3;
  cfg->model.proj_dim = 16;
  cfg->model.threads = 1;
  cfg->optim.kind = SIMCLR_OPTIM_SGD;
  cfg->optim.base_lr = 0.001;
  cfg->optim.warmup_steps = 0;
  cfg->optim.total_steps = STEPS;
  cfg->optim.weight_decay = 1e-4;
  cfg->seed = seed;
  g_assert_cmpint (simclr_trainer_config_set_batch (cfg, local_batch,
          replicas, &err), ==, SIMCLR_OK);
}

/* Pixel of view @v of global sample @s at @step (test-mpi-equivalence's). */
static void
fill_view (uint8_t *dst, int step, int s, int v)
{
  uint64_t stream = ((uint64_t) step << 32) | ((uint64_t) s << 1) | v;
  for (int i = 0; i < SIZE * SIZE; i++) {
    float base = simclr_rng_uniform (SEED, ((uint64_t) s << 1), i);
    float noise = simclr_rng_uniform (SEED + 1, stream, i);
    dst[i] = (uint8_t) (255.0f * (0.7f * base + 0.3f * noise));
  }
}

/* Rows of samples first..first+n-1: view 0 of each, then view 1. */
static void
views_of (uint8_t *views, int step, int first, int n)
{
  for (int v = 0; v < 2; v++)
    for (int j = 0; j < n; j++)
      fill_view (views + (size_t) (v * n + j) * SIZE * SIZE, step,
          first + j, v);
}

static const ReplicaPlan plan = {
  .replicas = K, .samples = N, .steps = STEPS, .sample_bytes = 2 * SIZE * SIZE,
  .views_of = views_of, .tol_loss = TOL_LOSS, .tol_update = TOL_UPDATE,
};

/* the join alone */
static const ReplicaPlan join_plan = {
  .replicas = K, .samples = N, .steps = 0, .sample_bytes = 2 * SIZE * SIZE,
  .views_of = views_of,
};

static void
test_equivalence (void)
{
  SimclrTrainerConfig cfg;
  SimclrError err = { 0 };
  Replica reps[K];
  SimclrTrainer *t[K];

  /* the reference: one trainer, 2N samples per step */
  make_config (&cfg, N * K, 1, SEED);
  SimclrTrainer *ref = simclr_trainer_new (&cfg, &err);
  g_assert_nonnull (ref);
  double ref_losses[STEPS];
  float *init = replica_reference (&plan, ref, ref_losses);

  for (int q = 0; q < K; q++) {
    /* replica 1 starts elsewhere: the join must copy replica 0's state */
    make_config (&cfg, N, K, q == 0 ? SEED : SEED + 100);
    t[q] = simclr_trainer_new (&cfg, &err);
    g_assert_nonnull (t[q]);
    g_assert_cmpint (simclr_trainer_global_batch (t[q]), ==, N * K);
  }
  /* params, BN buffers, velocity */
  g_assert_cmpint (replica_run (&plan, t, reps), ==, 3);
  replica_assert_equivalent (&plan, reps, ref, ref_losses, init);

  /* the batch arithmetic after STEPS steps */
  g_assert_cmpint (simclr_trainer_replicas (t[0]), ==, K);
  g_assert_cmpint (simclr_trainer_local_batch (t[0]), ==, N);
  g_assert_cmpint (simclr_trainer_local_rows (t[0]), ==, 2 * N);
  g_assert_cmpuint (simclr_trainer_samples_seen (t[0]), ==,
      (guint64) STEPS * N * K);
  g_assert_cmpuint (simclr_trainer_local_samples_seen (t[0]), ==,
      (guint64) STEPS * N);
  g_assert_true (simclr_trainer_schedule_complete (t[0]));
  g_assert_true (simclr_trainer_schedule_complete (ref));

  for (int q = 0; q < K; q++)
    simclr_trainer_free (t[q]);
  simclr_trainer_free (ref);
  g_free (init);
}

/* Every replica refuses alike, and nothing is broadcast. */
static void
test_join_refusals (void)
{
  SimclrTrainerConfig cfg;
  SimclrError err = { 0 };
  SimclrTrainer *t[K];
  Replica reps[K];
  uint8_t *views = g_malloc0 ((size_t) 2 * N * SIZE * SIZE);

  /* different steps (one replica resumed elsewhere) */
  for (int q = 0; q < K; q++) {
    make_config (&cfg, N, K, SEED);
    t[q] = simclr_trainer_new (&cfg, &err);
  }
  for (int i = 0; i < 2 * N * SIZE * SIZE; i++)
    views[i] = (uint8_t) (i * 37);
  g_assert_cmpint (simclr_trainer_train_step (t[1], views, 2 * N, NULL,
          &err), ==, SIMCLR_OK);
  g_assert_cmpint (replica_run (&join_plan, t, reps), ==, 0);
  for (int q = 0; q < K; q++) {
    g_assert_cmpint (reps[q].status, ==, SIMCLR_ERROR_INVALID_ARGUMENT);
    g_assert_nonnull (strstr (reps[q].err.message, "different steps (0 .. 1)"));
    g_assert_cmpint (simclr_trainer_replicas (t[q]), ==, 1);
    simclr_trainer_free (t[q]);
  }

  /* a global batch of 5 does not split over 2 */
  for (int q = 0; q < K; q++) {
    make_config (&cfg, 5, 1, SEED);
    t[q] = simclr_trainer_new (&cfg, &err);
  }
  g_assert_cmpint (replica_run (&join_plan, t, reps), ==, 0);
  for (int q = 0; q < K; q++) {
    g_assert_cmpint (reps[q].status, ==, SIMCLR_ERROR_INVALID_ARGUMENT);
    g_assert_cmpstr (reps[q].err.field, ==, "optim.batch_size");
    g_assert_cmpstr (reps[q].err.message, ==, reps[0].err.message);
    simclr_trainer_free (t[q]);
  }

  /* replicas configured with different batches */
  for (int q = 0; q < K; q++) {
    make_config (&cfg, q == 0 ? N : N + 1, K, SEED);
    t[q] = simclr_trainer_new (&cfg, &err);
  }
  g_assert_cmpint (replica_run (&join_plan, t, reps), ==, 0);
  for (int q = 0; q < K; q++) {
    g_assert_cmpstr (reps[q].err.field, ==, "optim.batch_size");
    simclr_trainer_free (t[q]);
  }
  g_free (views);
}

/* One replica: the arithmetic is the identity, and a checkpoint's global
 * batch splits over the replicas of a resumed run. */
static void
test_batch_arithmetic (void)
{
  SimclrTrainerConfig cfg;
  SimclrError err = { 0 };
  SimclrComm local;
  char *dir = g_dir_make_tmp ("simclr-replica-XXXXXX", NULL);
  char *path = g_build_filename (dir, "t.safetensors", NULL);

  make_config (&cfg, 6, 1, SEED);
  g_assert_cmpint (cfg.optim.batch_size, ==, 6);
  g_assert_cmpint (cfg.model.max_batch, ==, 12);
  SimclrTrainer *t = simclr_trainer_new (&cfg, &err);
  g_assert_nonnull (t);
  simclr_comm_init_local (&local);
  g_assert_cmpint (simclr_trainer_join (t, &local, TRUE, &err), ==, SIMCLR_OK);
  g_assert_cmpint (simclr_trainer_replicas (t), ==, 1);
  g_assert_cmpint (simclr_trainer_local_batch (t), ==, 6);
  g_assert_cmpint (simclr_trainer_global_batch (t), ==, 6);
  g_assert_cmpint (simclr_trainer_views (t), ==, 2);
  g_assert_cmpint (simclr_trainer_local_rows (t), ==, 12);
  g_assert_cmpuint (simclr_trainer_samples_seen (t), ==, 0);
  g_assert_false (simclr_trainer_schedule_complete (t));
  g_assert_cmpint (simclr_trainer_set_temperature (t, 0.2, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_trainer_set_temperature (t, -1, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpstr (err.field, ==, "trainer.temperature");
  g_assert_cmpint (simclr_trainer_save (t, path, &err), ==, SIMCLR_OK);
  simclr_trainer_free (t);

  /* the checkpoint records the temperature set last */
  t = simclr_trainer_load (path, 12, &err);
  g_assert_nonnull (t);
  g_assert_cmpfloat (simclr_trainer_get_config (t)->temperature, ==, 0.2);
  simclr_trainer_free (t);

  /* 6 = 3 replicas x 2 */
  t = simclr_trainer_load_replica (path, 3, &err);
  g_assert_nonnull (t);
  g_assert_cmpint (simclr_trainer_get_config (t)->model.max_batch, ==, 4);
  g_assert_cmpint (simclr_trainer_global_batch (t), ==, 6);
  simclr_trainer_free (t);
  /* 6 does not split over 4 */
  g_assert_null (simclr_trainer_load_replica (path, 4, &err));
  g_assert_cmpstr (err.field, ==, "optim.batch_size");
  g_assert_nonnull (strstr (err.message, "4 replicas cannot split"));

  /* set_batch refuses nonsense */
  g_assert_cmpint (simclr_trainer_config_set_batch (&cfg, 0, 1, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpstr (err.field, ==, "optim.batch_size");
  g_assert_cmpint (simclr_trainer_config_set_batch (&cfg, 1 << 30, 4, &err),
      ==, SIMCLR_ERROR_INVALID_ARGUMENT);

  g_unlink (path);
  g_rmdir (dir);
  g_free (path);
  g_free (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/replica/equivalence", test_equivalence);
  g_test_add_func ("/replica/join-refusals", test_join_refusals);
  g_test_add_func ("/replica/batch-arithmetic", test_batch_arithmetic);
  return g_test_run ();
}
