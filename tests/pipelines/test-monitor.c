/* test-monitor.c: simclrencoder's kNN monitor (monitor-location).
 *
 * 3 epochs of 64 Fashion-MNIST images with N = 16 (4 steps an epoch, 12 in
 * all) and monitor-samples = 300:
 *   1. one "simclr-monitor" message per epoch: epochs 0 and 1 when the first
 *      batch of the next epoch arrives (steps 4 and 8: the model has trained
 *      on exactly that epoch), epoch 2 at EOS (step 12); 300 test samples,
 * *      kNN top-1 above 2.5 x chance (10 classes) and top-5 >= top-1.
 *   2. the last message is the kNN of the final checkpoint computed by the
 *      core (features of the first 300 images of each split, k 200, T 0.1):
 *      equal, so the monitor evaluates the model being trained.
 *   3. monitoring leaves training untouched: the same pipeline without it
 *      gives bit-identical losses (one thread; the monitor's forwards are
 *      eval-mode and features.c checks the model bytes).
 *   4. a monitor-location that does not exist fails at start with an error
 *      naming the property and the path.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>

#include "pipeline-common.h"

#include "simclr/checkpoint.h"
#include "simclr/dataset.h"
#include "simclr/features.h"
#include "simclr/linclf.h"

#define N 16
#define SAMPLES 64
#define EPOCHS 3
#define STEPS (SAMPLES / N * EPOCHS)
#define MONITOR 300

static gchar *
pipeline (const gchar * monitor, const gchar * ckpt)
{
  return g_strdup_printf ("simclrdatasetsrc location=" PT_FASHION_MNIST
      " shuffle=true seed=3 num-samples=%d epochs=%d ! simclraugment size=28 "
      "seed=5 ! queue ! simclrencoder batch-size=%d width=0.25 threads=1 "
      "total-steps=%d warmup-steps=1 learning-rate=0.075 lr-scaling=sqrt "
      "checkpoint-location=\"%s\" %s%s%s monitor-samples=%d ! ntxentsink "
      "temperature=0.2 interval=1", SAMPLES, EPOCHS, N, STEPS, ckpt,
      monitor ? "monitor-location=\"" : "", monitor ? monitor : "",
      monitor ? "\"" : "", MONITOR);
}

/* kNN top-1 of @ckpt on the first MONITOR images of each split, by the core. */
static gdouble
core_knn (const gchar * ckpt)
{
  SimclrError err = { 0 };
  SimclrModel *m = simclr_checkpoint_load_model (ckpt, 100, &err);
  g_assert_nonnull (m);
  SimclrDataset *tr = simclr_dataset_open (PT_FASHION_MNIST, "train",
      SIMCLR_DATASET_AUTO, &err);
  SimclrDataset *te = simclr_dataset_open (PT_FASHION_MNIST, "test",
      SIMCLR_DATASET_AUTO, &err);
  g_assert_nonnull (tr);
  g_assert_nonnull (te);
  float *xtr, *xte;
  int *ytr, *yte, dim, dim_te;
  int64_t ntr, nte;
  g_assert_cmpint (simclr_features_extract (m, tr, MONITOR,
          SIMCLR_FEATURES_REPRESENTATION, &xtr, &ytr, &ntr, &dim, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_features_extract (m, te, MONITOR,
          SIMCLR_FEATURES_REPRESENTATION, &xte, &yte, &nte, &dim_te, &err), ==,
      SIMCLR_OK);
  double top1 = -1;
  g_assert_cmpint (simclr_knn_classify (xtr, ytr, (int) ntr, xte, yte,
          (int) nte, dim, 10, 200, 0.1, NULL, &top1, NULL, &err), ==,
      SIMCLR_OK);
  free (xtr);
  free (xte);
  free (ytr);
  free (yte);
  simclr_dataset_free (tr);
  simclr_dataset_free (te);
  simclr_model_free (m);
  return top1;
}

static void
test_monitor (void)
{
  gchar *dir = g_dir_make_tmp ("pt-monitor-XXXXXX", NULL);
  gchar *ckpt = g_build_filename (dir, "m.safetensors", NULL);
  gchar *ckpt_plain = g_build_filename (dir, "plain.safetensors", NULL);
  gchar *desc = pipeline (PT_FASHION_MNIST, ckpt);
  PtRun *run = pt_run_pipeline (desc, 240);
  g_assert_no_error (run->error);
  g_assert_true (run->eos);
  g_assert_cmpuint (run->train->len, ==, STEPS);

  /* 1. one message per epoch, at its end */
  g_assert_cmpuint (run->monitor->len, ==, EPOCHS);
  for (guint e = 0; e < EPOCHS; e++) {
    const PtMonitorRow *r = &g_array_index (run->monitor, PtMonitorRow, e);
    g_test_message ("epoch %" G_GUINT64_FORMAT " step %" G_GUINT64_FORMAT
        ": kNN top-1 %.4f top-5 %.4f on %d", r->epoch, r->step, r->knn_top1,
        r->knn_top5, r->samples);
    g_assert_cmpuint (r->epoch, ==, e);
    g_assert_cmpuint (r->step, ==, (e + 1) * (SAMPLES / N));
    g_assert_cmpint (r->samples, ==, MONITOR);
    g_assert_cmpfloat (r->knn_top1, >, 0.25);     /* chance 0.1; 0.32 measured after 4 steps */
    g_assert_cmpfloat (r->knn_top5, >=, r->knn_top1);
    g_assert_cmpfloat (r->knn_top5, <=, 1.0);
  }

  /* 2. the last one is the final checkpoint's kNN */
  const PtMonitorRow *last = &g_array_index (run->monitor, PtMonitorRow,
      EPOCHS - 1);
  gdouble ref = core_knn (ckpt);
  g_test_message ("final checkpoint kNN by the core: %.4f", ref);
  g_assert_cmpfloat (last->knn_top1, ==, ref);

  /* 3. training is the same without the monitor */
  gchar *desc_plain = pipeline (NULL, ckpt_plain);
  PtRun *plain = pt_run_pipeline (desc_plain, 240);
  g_assert_no_error (plain->error);
  g_assert_cmpuint (plain->monitor->len, ==, 0);
  g_assert_cmpuint (plain->train->len, ==, STEPS);
  for (guint i = 0; i < STEPS; i++)
    g_assert_cmpfloat (g_array_index (plain->train, PtTrainRow, i).loss, ==,
        g_array_index (run->train, PtTrainRow, i).loss);
  pt_assert_same_tensors (ckpt, ckpt_plain);

  pt_run_free (plain);
  pt_run_free (run);
  g_free (desc_plain);
  g_free (desc);
  g_unlink (ckpt);
  g_unlink (ckpt_plain);
  g_rmdir (dir);
  g_free (ckpt);
  g_free (ckpt_plain);
  g_free (dir);
}

static void
test_missing_monitor_set (void)
{
  gchar *dir = g_dir_make_tmp ("pt-monitor-XXXXXX", NULL);
  gchar *ckpt = g_build_filename (dir, "m.safetensors", NULL);
  gchar *missing = g_build_filename (dir, "no-such-set", NULL);
  gchar *desc = pipeline (missing, ckpt);
  PtRun *run = pt_run_pipeline (desc, 60);
  g_assert_nonnull (run->error);
  g_assert_cmpstr (run->error_source, ==, "simclrencoder");
  g_assert_nonnull (strstr (run->error->message, "monitor-location"));
  g_assert_nonnull (strstr (run->error->message, missing));
  g_assert_false (g_file_test (ckpt, G_FILE_TEST_EXISTS));
  pt_run_free (run);
  g_free (desc);
  g_rmdir (dir);
  g_free (missing);
  g_free (ckpt);
  g_free (dir);
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
  g_test_add_func ("/pipelines/monitor/every-epoch", test_monitor);
  g_test_add_func ("/pipelines/monitor/missing-set", test_missing_monitor_set);
  return g_test_run ();
}
