/* test-core-equivalence.c: the training pipeline computes exactly what the
 * core library computes.
 *
 * The pipeline simclrdatasetsrc (shuffle, seed S) ! simclraugment (seed A) !
 * queue ! simclrencoder ! ntxentsink runs STEPS steps of N samples. The same
 * steps are then reproduced with the core API only: the epoch-0 order of
 * simclr_dataset_epoch_order (S, epoch 0), the first N * STEPS samples of it
 * (num-samples), views 0 and 1 from simclr_augmenter_view with seed A and key
 * = the sample id (epoch 0; see gstsimclraugment.c), rows = view 0 of the N
 * samples of the step in source order then view 1 (views of one frame are
 * pushed together, so pairs complete in source order), and a trainer
 * configured as gst_simclr_encoder_new_trainer configures it (stem auto ->
 * cifar for 28 pixels, max_batch 2N, proj 2 layers / hidden 0 / 128,
 * threads 1, LARS, momentum 0.9, wd 1e-6, the encoder's seed) stepped by
 * simclr_trainer_train_step with the sink's temperature.
 *
 * The same with 3 views per sample (simclraugment views=3, simclrencoder
 * views=3; ntxentsink's multi-positive loss from the caps) against a core
 * trainer of views 3 fed views 0, 1, 2.
 *
 * And multi-crop (issue 11): simclraugment views=2 small-views=2
 * small-size=14 (simclrencoder views=2 learns the small views from the
 * caps) against a core trainer of 4 views whose last 2 are small
 * (SimclrTrainerConfig.small_views; a second augmenter of size 14 with the
 * small crop-scale range, views 2 and 3 keyed as always).
 *
 * Tolerance: none. With one thread (OPENBLAS_NUM_THREADS=1, threads=1) the
 * losses, top-1 and top-5 of every step are equal bit for bit (measured),
 * and so are the final checkpoints (every tensor, velocity included, and
 * the step), read back with the core's safetensors reader.
 */
#include <math.h>
#include <string.h>

#include <glib/gstdio.h>

#include "pipeline-common.h"

#include "simclr/augment.h"
#include "simclr/checkpoint.h"
#include "simclr/dataset.h"
#include "simclr/trainer.h"

#define N 16
#define STEPS 6
#define SIZE 28
#define DATA_SEED 7
#define AUG_SEED 11
#define MODEL_SEED 42
#define WARMUP 2
#define TAU 0.2
#define SMALL 14
/* The test's parameter: total views + 100 x small views. */
#define VIEWS_OF(d) (GPOINTER_TO_INT (d) % 100)
#define SMALL_OF(d) (GPOINTER_TO_INT (d) / 100)

static void
core_losses (SimclrNtxentResult * out, const gchar * ckpt, int V, int K)
{
  SimclrError err = { 0 };
  SimclrDataset *ds;
  SimclrAugmentConfig acfg;
  SimclrAugmenter *aug, *small_aug = NULL;
  SimclrTrainerConfig cfg;
  SimclrTrainer *t;
  gint64 n, *order;
  guint8 *pix, *views;
  gsize frame = SIZE * SIZE;
  int step, i, v, w, h;

  ds = simclr_dataset_open (PT_FASHION_MNIST, "train", SIMCLR_DATASET_AUTO,
      &err);
  g_assert_nonnull (ds);
  g_assert_cmpint (simclr_dataset_channels (ds), ==, 1);
  n = simclr_dataset_size (ds);
  order = g_new (gint64, n);
  g_assert_cmpint (simclr_dataset_epoch_order (n, DATA_SEED, 0, 1, 0, 1,
          order), ==, n);

  simclr_augment_config_default (&acfg);
  acfg.size = SIZE;
  aug = simclr_augmenter_new (&acfg, &err);
  g_assert_nonnull (aug);
  if (K > 0) {
    /* simclraugment's small views: its defaults 0.05 .. 0.14 */
    acfg.size = SMALL;
    acfg.crop_scale_min = 0.05;
    acfg.crop_scale_max = 0.14;
    small_aug = simclr_augmenter_new (&acfg, &err);
    g_assert_nonnull (small_aug);
  }

  simclr_trainer_config_default (&cfg);
  cfg.model.arch = SIMCLR_ARCH_RESNET18;
  cfg.model.width = 0.25;
  cfg.model.in_channels = 1;
  cfg.model.stem = SIMCLR_STEM_CIFAR;
  cfg.model.image_size = SIZE;
  cfg.model.max_batch = V * N;
  cfg.model.proj_layers = 2;
  cfg.model.proj_hidden = 0;
  cfg.model.proj_dim = 128;
  cfg.model.threads = 1;
  cfg.optim.kind = SIMCLR_OPTIM_LARS;
  cfg.optim.base_lr = 0.075;
  cfg.optim.lr_scaling = SIMCLR_LR_SCALING_SQRT;
  cfg.optim.batch_size = N;
  cfg.optim.momentum = 0.9;
  cfg.optim.weight_decay = 1e-6;
  cfg.optim.warmup_steps = WARMUP;
  cfg.optim.total_steps = STEPS;
  cfg.temperature = TAU;
  cfg.seed = MODEL_SEED;
  cfg.views = V;
  cfg.small_views = K;
  cfg.small_size = K > 0 ? SMALL : 0;
  t = simclr_trainer_new (&cfg, &err);
  if (t == NULL)
    g_error ("trainer: %s", err.message);

  pix = g_malloc (simclr_dataset_max_image_bytes (ds));
  views = g_malloc ((gsize) V * N * frame);
  for (step = 0; step < STEPS; step++) {
    for (i = 0; i < N; i++) {
      gint64 id = order[step * N + i];
      g_assert_cmpint (simclr_dataset_get (ds, id, pix,
              simclr_dataset_max_image_bytes (ds), &w, &h, NULL, &err), ==,
          SIMCLR_OK);
      for (v = 0; v < V; v++) {
        /* packed rows: the full-size views, then the small ones */
        gboolean sm = v >= V - K;
        gsize off = sm ? (gsize) (V - K) * N * frame + (gsize) ((v - (V - K))
            * N + i) * SMALL * SMALL : (gsize) (v * N + i) * frame;
        g_assert_cmpint (simclr_augmenter_view (sm ? small_aug : aug,
                AUG_SEED, (guint64) id, v, pix, w, h, w, 1, views + off,
                sm ? SMALL : SIZE, NULL, &err), ==, SIMCLR_OK);
      }
    }
    if (simclr_trainer_train_step (t, views, V * N, &out[step], &err)
        != SIMCLR_OK)
      g_error ("core step %d: %s", step, err.message);
  }
  if (simclr_trainer_save (t, ckpt, &err) != SIMCLR_OK)
    g_error ("%s", err.message);
  g_free (views);
  g_free (pix);
  simclr_trainer_free (t);
  simclr_augmenter_free (aug);
  simclr_augmenter_free (small_aug);
  g_free (order);
  simclr_dataset_free (ds);
}

static void
test_pipeline_equals_core (gconstpointer data)
{
  const int V = VIEWS_OF (data), K = SMALL_OF (data);
  SimclrNtxentResult core[STEPS];
  gchar *dir = g_dir_make_tmp ("pt-equiv-XXXXXX", NULL);
  gchar *pipe_ckpt = g_build_filename (dir, "pipeline.safetensors", NULL);
  gchar *core_ckpt = g_build_filename (dir, "core.safetensors", NULL);
  gchar *desc;
  PtRun *run;
  guint i, bad = 0;

  desc = g_strdup_printf ("simclrdatasetsrc location=" PT_FASHION_MNIST
      " shuffle=true seed=%d num-samples=%d ! simclraugment size=%d seed=%d "
      "views=%d small-views=%d small-size=%d ! queue max-size-buffers=%d ! "
      "simclrencoder batch-size=%d "
      "views=%d width=0.25 threads=1 seed=%d "
      "total-steps=%d warmup-steps=%d learning-rate=0.075 lr-scaling=sqrt "
      "checkpoint-location=\"%s\" ! ntxentsink temperature=%g interval=1",
      DATA_SEED, N * STEPS, SIZE, AUG_SEED, V - K, K, K ? SMALL : 0,
      4 * V * N, N, V - K, MODEL_SEED, STEPS, WARMUP, pipe_ckpt, TAU);
  run = pt_run_pipeline (desc, 120);
  g_assert_no_error (run->error);
  g_assert_true (run->eos);
  g_assert_cmpuint (run->train->len, ==, STEPS);

  core_losses (core, core_ckpt, V, K);
  for (i = 0; i < STEPS; i++) {
    const PtTrainRow *r = &g_array_index (run->train, PtTrainRow, i);
    g_assert_cmpuint (r->step, ==, i);
    g_test_message ("step %u: pipeline loss %.17g top1 %g top5 %g; core loss "
        "%.17g top1 %g top5 %g", i, r->loss, r->top1, r->top5, core[i].loss,
        core[i].top1, core[i].top5);
    if (r->loss != core[i].loss || r->top1 != core[i].top1
        || r->top5 != core[i].top5) {
      if (bad++ == 0)
        g_printerr ("first mismatch at step %u: pipeline loss %.17g (top1 "
            "%g, top5 %g), core %.17g (top1 %g, top5 %g)\n", i, r->loss,
            r->top1, r->top5, core[i].loss, core[i].top1, core[i].top5);
    }
  }
  g_assert_cmpuint (bad, ==, 0);
  /* The losses moved: the comparison covers optimiser steps, not just the
   * initial model. */
  g_assert_cmpfloat (core[0].loss, !=, core[STEPS - 1].loss);

  /* The weights, running statistics and velocity after the last step are
   * the core's too. */
  pt_assert_same_tensors (core_ckpt, pipe_ckpt);

  /* The checkpoint records the temperature the sink's loss used (it reaches
   * the encoder with the gradient event), as the core's does. */
  {
    SimclrError err = { 0 };
    SimclrSafetensors *a = simclr_safetensors_open (core_ckpt, &err);
    SimclrSafetensors *b = simclr_safetensors_open (pipe_ckpt, &err);
    g_assert_nonnull (a);
    g_assert_nonnull (b);
    g_assert_cmpfloat (g_ascii_strtod (simclr_safetensors_metadata (b,
                "temperature"), NULL), ==, TAU);
    g_assert_cmpstr (simclr_safetensors_metadata (b, "temperature"), ==,
        simclr_safetensors_metadata (a, "temperature"));
    simclr_safetensors_free (a);
    simclr_safetensors_free (b);
  }

  pt_run_free (run);
  g_remove (pipe_ckpt);
  g_remove (core_ckpt);
  g_rmdir (dir);
  g_free (pipe_ckpt);
  g_free (core_ckpt);
  g_free (dir);
  g_free (desc);
}

int
main (int argc, char **argv)
{
  if (!pt_have_fashion_mnist ()) {
    g_print ("Fashion-MNIST not found in " PT_FASHION_MNIST ": skipping\n");
    return 77;
  }
  gst_init (&argc, &argv);
  g_test_init (&argc, &argv, NULL);
  g_test_add_data_func ("/pipelines/core-equivalence/losses",
      GINT_TO_POINTER (2), test_pipeline_equals_core);
  g_test_add_data_func ("/pipelines/core-equivalence/losses-3-views",
      GINT_TO_POINTER (3), test_pipeline_equals_core);
  g_test_add_data_func ("/pipelines/core-equivalence/losses-multicrop",
      GINT_TO_POINTER (4 + 100 * 2), test_pipeline_equals_core);
  return g_test_run ();
}
