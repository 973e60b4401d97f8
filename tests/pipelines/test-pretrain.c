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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* The step profile of simclrencoder and simclraugment (debug INFO): the
 * lines they log at EOS, caught by a log function. */
static GMutex prof_lock;
static GPtrArray *prof_lines;

static void
prof_log (GstDebugCategory * category, GstDebugLevel level,
    const gchar * file, const gchar * function, gint line, GObject * object,
    GstDebugMessage * message, gpointer user_data)
{
  const gchar *name = gst_debug_category_get_name (category);
  const gchar *text;

  if (level != GST_LEVEL_INFO || (g_strcmp0 (name, "simclrencoder") != 0
          && g_strcmp0 (name, "simclraugment") != 0))
    return;
  text = gst_debug_message_get (message);
  if (!text || !(strstr (text, "step profile") || strstr (text,
              "thread CPU") || strstr (text, "streaming thread:")))
    return;
  g_mutex_lock (&prof_lock);
  g_ptr_array_add (prof_lines, g_strdup (text));
  g_mutex_unlock (&prof_lock);
}

static const gchar *
prof_find (const gchar * what)
{
  for (guint i = 0; i < prof_lines->len; i++)
    if (strstr (g_ptr_array_index (prof_lines, i), what))
      return g_ptr_array_index (prof_lines, i);
  return NULL;
}

/* A run of 6 steps: the encoder's profile counts 4 (after the first 2),
 * its phases add up to its total, no phase is negative, the thread CPU
 * of a phase is not above its wall time; the augmentation counted every
 * view. Without the INFO threshold nothing is logged. */
static void
run_profiled (gboolean enabled)
{
  const gint n = 16, steps = 6;
  gchar *desc;
  PtRun *run;

  prof_lines = g_ptr_array_new_with_free_func (g_free);
  gst_debug_set_threshold_for_name ("simclrencoder", enabled ?
      GST_LEVEL_INFO : GST_LEVEL_WARNING);
  gst_debug_set_threshold_for_name ("simclraugment", enabled ?
      GST_LEVEL_INFO : GST_LEVEL_WARNING);
  gst_debug_add_log_function (prof_log, NULL, NULL);
  desc = g_strdup_printf ("simclrdatasetsrc location=" PT_FASHION_MNIST
      " shuffle=true seed=3 num-samples=%d ! simclraugment size=28 seed=5 ! "
      "queue ! simclrencoder batch-size=%d width=0.25 threads=1 "
      "total-steps=%d warmup-steps=1 ! ntxentsink", n * steps, n, steps);
  run = pt_run_pipeline (desc, 120);
  gst_debug_remove_log_function (prof_log);
  gst_debug_set_threshold_for_name ("simclrencoder", GST_LEVEL_WARNING);
  gst_debug_set_threshold_for_name ("simclraugment", GST_LEVEL_WARNING);
  g_assert_no_error (run->error);
  g_assert_true (run->eos);
  g_assert_cmpuint (run->train->len, ==, steps);

  if (!enabled) {
    g_assert_cmpuint (prof_lines->len, ==, 0);
  } else {
    const gchar *line = prof_find ("step profile"), *p;
    const gchar *names[] = { "input", "forward", "exchange", "apply",
      "after"
    };
    gdouble tw, tc, sw = 0, sc = 0;
    gchar *expect;

    g_assert_nonnull (line);
    g_test_message ("%s", line);
    g_assert_nonnull (strstr (line, "rank 0 of 1, 4 steps after the first 2"));
    p = strstr (line, "total ");
    g_assert_nonnull (p);
    g_assert_cmpint (sscanf (p, "total %lf/%lf", &tw, &tc), ==, 2);
    for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
      gchar *key = g_strdup_printf (" %s ", names[i]);
      gdouble w, c;
      p = strstr (strstr (line, "total"), key);
      g_assert_nonnull (p);
      g_assert_cmpint (sscanf (p + strlen (key), "%lf/%lf", &w, &c), ==, 2);
      g_assert_cmpfloat (w, >=, 0.0);
      g_assert_cmpfloat (c, >=, 0.0);
      /* thread CPU within its wall time (0.1 ms of print rounding, and the
       * CPU clock's granularity) */
      g_assert_cmpfloat (c, <=, w + 0.3);
      sw += w;
      sc += c;
      g_free (key);
    }
    g_assert_cmpfloat (fabs (sw - tw), <, 0.5);
    g_assert_cmpfloat (fabs (sc - tc), <, 0.5);
    g_assert_cmpfloat (tc, >, 0.0);
    g_assert_nonnull (prof_find ("thread CPU, rank 0 of 1:"));
    line = prof_find ("streaming thread:");
    g_assert_nonnull (line);
    g_test_message ("%s", line);
    expect = g_strdup_printf ("the %d views' augmentation", 2 * n * steps);
    g_assert_nonnull (strstr (line, expect));
    g_free (expect);
  }
  pt_run_free (run);
  g_free (desc);
  g_ptr_array_unref (prof_lines);
  prof_lines = NULL;
}

static void
test_pretrain_profile (void)
{
  run_profiled (TRUE);
  run_profiled (FALSE);
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
  g_test_add_func ("/pipelines/pretrain/step-profile", test_pretrain_profile);
  return g_test_run ();
}
