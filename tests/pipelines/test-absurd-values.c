/* test-absurd-values.c: absurd settings of the training pipeline give a
 * clear error naming the property, never a crash, a silent no-op or a lost
 * file (issue 15).
 *
 * - batch-size 64 on a stream of 10 samples: the stream ends before a first
 *   step: an error naming batch-size, and the checkpoint file that was
 *   there before the run is left as it was (an untrained model used to
 *   replace it silently);
 * - ntxentsink temperature at the bottom of its range trains (at the old
 *   bottom, 1.2e-38, the first gradient was NaN);
 * - simclraugment size at its maximum on 28x28 frames: an error naming size.
 */
#include <string.h>

#include <glib/gstdio.h>

#include "pipeline-common.h"

#define SRC "simclrdatasetsrc location=" PT_FASHION_MNIST " split=test "

static void
test_batch_larger_than_stream (void)
{
  gchar *dir = g_dir_make_tmp ("pt-absurd-XXXXXX", NULL);
  gchar *ckpt = g_build_filename (dir, "keep.safetensors", NULL);
  gchar *desc, *after = NULL;
  gsize len;
  PtRun *run;

  g_assert_true (g_file_set_contents (ckpt, "a good checkpoint", -1, NULL));
  desc = g_strdup_printf (SRC "num-samples=10 ! simclraugment size=28 ! queue "
      "! simclrencoder batch-size=64 width=0.25 threads=1 total-steps=4 "
      "warmup-steps=1 checkpoint-location=\"%s\" ! ntxentsink", ckpt);
  run = pt_run_pipeline (desc, 120);
  g_assert_nonnull (run->error);
  g_test_message ("error: %s", run->error->message);
  g_assert_cmpstr (run->error_source, ==, "simclrencoder");
  g_assert_nonnull (strstr (run->error->message, "batch-size = 64"));
  g_assert_nonnull (strstr (run->error->message, "10 samples"));
  g_assert_true (g_file_get_contents (ckpt, &after, &len, NULL));
  g_assert_cmpstr (after, ==, "a good checkpoint");
  g_free (after);
  pt_run_free (run);
  g_free (desc);
  g_remove (ckpt);
  g_rmdir (dir);
  g_free (ckpt);
  g_free (dir);
}

static void
test_smallest_temperature_trains (void)
{
  PtRun *run = pt_run_pipeline (SRC "num-samples=32 ! simclraugment size=28 "
      "! queue ! simclrencoder batch-size=8 width=0.25 threads=1 "
      "total-steps=4 warmup-steps=1 ! ntxentsink temperature=1e-30", 120);
  g_assert_no_error (run->error);
  g_assert_true (run->eos);
  g_assert_cmpuint (run->train->len, ==, 4);
  pt_run_free (run);
}

static void
test_view_size_far_above_input (void)
{
  PtRun *run = pt_run_pipeline (SRC "num-samples=4 ! simclraugment "
      "size=4096 ! fakesink", 60);
  g_assert_nonnull (run->error);
  g_test_message ("error: %s", run->error->message);
  g_assert_nonnull (strstr (run->error->message, "size = 4096"));
  pt_run_free (run);
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
  g_test_add_func ("/pipelines/absurd/batch-larger-than-stream",
      test_batch_larger_than_stream);
  g_test_add_func ("/pipelines/absurd/smallest-temperature",
      test_smallest_temperature_trains);
  g_test_add_func ("/pipelines/absurd/view-size", test_view_size_far_above_input);
  return g_test_run ();
}
