/* test-pretrain.c: a short SimCLR pretraining through the real pipeline
 *
 *   simclrdatasetsrc ! simclraugment ! queue ! simclrencoder ! ntxentsink
 *
 * on 3840 Fashion-MNIST images (120 steps of N = 32, one thread) learns:
 * the NT-Xent loss falls clearly below ln(2N - 1) (the loss of embeddings
 * that cannot tell the positive from the 2N - 2 negatives) and the
 * contrastive top-1 accuracy rises well above chance, 1 / (2N - 1).
 *
 * Measured here (OPENBLAS_NUM_THREADS=1, about 28 s): mean loss of the
 * first 10 steps 4.136, of the last 20 steps 3.57 (ln 63 = 4.143); mean
 * top-1 of the last 20 steps 0.090 (chance 0.0159). The thresholds below
 * leave wide margins: last-20 loss < ln(63) - 0.30 and < first-10 loss -
 * 0.25; last-20 top-1 > 3 x chance (0.048). The metrics CSV must hold the
 * same rows as the bus messages.
 */
#include <math.h>
#include <stdlib.h>

#include <glib/gstdio.h>

#include "pipeline-common.h"

#define N 32
#define STEPS 120

static gdouble
mean_of (GArray * rows, guint from, guint to, gboolean top1)
{
  gdouble s = 0.0;
  guint i;
  for (i = from; i < to; i++) {
    const PtTrainRow *r = &g_array_index (rows, PtTrainRow, i);
    s += top1 ? r->top1 : r->loss;
  }
  return s / (to - from);
}

static void
test_pretrain_learns (void)
{
  gchar *dir = g_dir_make_tmp ("pt-pretrain-XXXXXX", NULL);
  gchar *csv = g_build_filename (dir, "metrics.csv", NULL);
  gchar *desc, *contents = NULL;
  gchar **lines;
  PtRun *run;
  gdouble chance = 1.0 / (2 * N - 1), ln = log (2.0 * N - 1.0);
  gdouble first_loss, last_loss, last_top1;
  guint i, n_lines;

  desc = g_strdup_printf ("simclrdatasetsrc location=" PT_FASHION_MNIST
      " shuffle=true seed=3 num-samples=%d ! simclraugment size=28 seed=5 ! "
      "queue ! simclrencoder batch-size=%d width=0.25 threads=1 "
      "total-steps=%d warmup-steps=12 learning-rate=0.075 lr-scaling=sqrt ! "
      "ntxentsink temperature=0.2 interval=1 metrics-location=\"%s\"",
      N * STEPS, N, STEPS, csv);
  run = pt_run_pipeline (desc, 300);
  g_assert_no_error (run->error);
  g_assert_true (run->eos);
  g_assert_cmpuint (run->train->len, ==, STEPS);
  for (i = 0; i < STEPS; i++) {
    const PtTrainRow *r = &g_array_index (run->train, PtTrainRow, i);
    g_assert_cmpuint (r->step, ==, i);
    g_assert_true (isfinite (r->loss));
  }

  first_loss = mean_of (run->train, 0, 10, FALSE);
  last_loss = mean_of (run->train, STEPS - 20, STEPS, FALSE);
  last_top1 = mean_of (run->train, STEPS - 20, STEPS, TRUE);
  g_test_message ("ln(2N-1) %.4f, chance %.4f; loss first 10 %.4f, last 20 "
      "%.4f; top-1 last 20 %.4f", ln, chance, first_loss, last_loss,
      last_top1);
  /* At initialisation the loss is about ln(2N-1). */
  g_assert_cmpfloat (fabs (first_loss - ln), <, 0.1);
  g_assert_cmpfloat (last_loss, <, ln - 0.30);
  g_assert_cmpfloat (last_loss, <, first_loss - 0.25);
  g_assert_cmpfloat (last_top1, >, 3.0 * chance);

  /* The CSV holds the same steps and losses (17 significant digits). */
  g_assert_true (g_file_get_contents (csv, &contents, NULL, NULL));
  lines = g_strsplit (contents, "\n", -1);
  n_lines = g_strv_length (lines);
  g_assert_cmpstr (lines[0], ==, "step,epoch,loss,top1,top5,lr,"
      "views-per-second");
  g_assert_cmpuint (n_lines, ==, STEPS + 2);   /* header, rows, "" */
  for (i = 0; i < STEPS; i++) {
    const PtTrainRow *r = &g_array_index (run->train, PtTrainRow, i);
    gchar **f = g_strsplit (lines[i + 1], ",", -1);
    g_assert_cmpuint (g_strv_length (f), ==, 7);
    g_assert_cmpuint (g_ascii_strtoull (f[0], NULL, 10), ==, r->step);
    g_assert_cmpfloat (g_ascii_strtod (f[2], NULL), ==, r->loss);
    g_assert_cmpfloat (g_ascii_strtod (f[3], NULL), ==, r->top1);
    g_strfreev (f);
  }
  g_strfreev (lines);
  g_free (contents);

  pt_run_free (run);
  g_remove (csv);
  g_rmdir (dir);
  g_free (desc);
  g_free (csv);
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
  g_test_add_func ("/pipelines/pretrain/learns", test_pretrain_learns);
  return g_test_run ();
}
