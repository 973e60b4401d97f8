/* test-bad-input.c: bad input through a whole training pipeline ends it with
 * a bus ERROR whose message names the thing at fault.
 *
 * - truncated IDX: a data-set folder whose train-images file holds fewer
 *   pixels than its header says -> STREAM/DECODE from simclrdatasetsrc, the
 *   message names that file;
 * - resume-from a checkpoint that does not exist -> RESOURCE/NOT_FOUND from
 *   simclrencoder, the message names the file;
 * - divergence: SGD with learning rate 1e12 (batch norm makes the network
 *   scale-invariant, so ordinary large rates do not diverge; this one makes
 *   the weights overflow on the second update, reliably) with a checkpoint
 *   after every step -> STREAM/FAILED from simclrencoder naming the step
 *   (it refuses to write non-finite weights), and the last good checkpoint
 *   on disk is byte for byte the file as written at its save, loads with
 *   the core (simclr_trainer_load), holds finite tensors and its step.
 *   (ntxentsink's own non-finite-loss error cannot be reached through the
 *   encoder: the encoder checks its embeddings before pushing them, so the
 *   error comes from the encoder.)
 */
#include <math.h>
#include <string.h>

#include <glib/gstdio.h>

#include "pipeline-common.h"

#include "simclr/checkpoint.h"
#include "simclr/trainer.h"

#define PIPELINE_TAIL "simclraugment size=28 ! queue ! simclrencoder " \
  "batch-size=8 width=0.25 threads=1 "

static void
put_be32 (guint8 * p, guint32 v)
{
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
}

static void
test_truncated_idx (void)
{
  gchar *dir = g_dir_make_tmp ("pt-bad-idx-XXXXXX", NULL);
  gchar *images = g_build_filename (dir, "train-images-idx3-ubyte", NULL);
  gchar *labels = g_build_filename (dir, "train-labels-idx1-ubyte", NULL);
  const guint count = 100;
  guint8 *buf = g_malloc0 (16 + count * 28 * 28);
  gchar *desc;
  PtRun *run;

  /* Images: header for 100 images of 28 x 28, but only 10.5 images of
   * pixels. Labels: complete. */
  put_be32 (buf, 0x00000803);
  put_be32 (buf + 4, count);
  put_be32 (buf + 8, 28);
  put_be32 (buf + 12, 28);
  g_assert_true (g_file_set_contents (images, (gchar *) buf,
          16 + 10 * 28 * 28 + 392, NULL));
  memset (buf, 0, 8 + count);
  put_be32 (buf, 0x00000801);
  put_be32 (buf + 4, count);
  g_assert_true (g_file_set_contents (labels, (gchar *) buf, 8 + count,
          NULL));

  desc = g_strdup_printf ("simclrdatasetsrc location=\"%s\" ! "
      PIPELINE_TAIL " ! ntxentsink", dir);
  run = pt_run_pipeline (desc, 60);
  g_assert_nonnull (run->error);
  g_assert_cmpstr (run->error_source, ==, "simclrdatasetsrc");
  g_assert_error (run->error, GST_STREAM_ERROR, GST_STREAM_ERROR_DECODE);
  if (strstr (run->error->message, images) == NULL)
    g_error ("the error \"%s\" does not name %s", run->error->message, images);
  g_assert_nonnull (strstr (run->error->message, "truncated"));
  g_assert_cmpuint (run->train->len, ==, 0);

  pt_run_free (run);
  g_remove (images);
  g_remove (labels);
  g_rmdir (dir);
  g_free (desc);
  g_free (buf);
  g_free (images);
  g_free (labels);
  g_free (dir);
}

static void
test_missing_checkpoint (void)
{
  gchar *dir = g_dir_make_tmp ("pt-bad-ckpt-XXXXXX", NULL);
  gchar *missing = g_build_filename (dir, "no-such.safetensors", NULL);
  gchar *desc;
  PtRun *run;

  desc = g_strdup_printf ("simclrdatasetsrc location=" PT_FASHION_MNIST
      " num-samples=16 ! " PIPELINE_TAIL "resume-from=\"%s\" ! ntxentsink",
      missing);
  run = pt_run_pipeline (desc, 60);
  g_assert_nonnull (run->error);
  g_assert_cmpstr (run->error_source, ==, "simclrencoder");
  g_assert_error (run->error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND);
  if (strstr (run->error->message, missing) == NULL)
    g_error ("the error \"%s\" does not name %s", run->error->message,
        missing);
  g_assert_cmpuint (run->train->len, ==, 0);
  g_assert_false (g_file_test (missing, G_FILE_TEST_EXISTS));

  pt_run_free (run);
  g_rmdir (dir);
  g_free (desc);
  g_free (missing);
  g_free (dir);
}

static void
assert_all_finite (const gchar * path)
{
  SimclrError err = { 0 };
  SimclrSafetensors *st = simclr_safetensors_open (path, &err);
  int i, n_f32 = 0;

  if (st == NULL)
    g_error ("%s", err.message);
  for (i = 0; i < simclr_safetensors_n_tensors (st); i++) {
    const SimclrSafetensorsTensor *t = simclr_safetensors_tensor (st, i);
    gsize j;
    if (t->dtype != SIMCLR_DTYPE_F32)
      continue;
    n_f32++;
    for (j = 0; j < t->numel; j++)
      if (!isfinite (((const gfloat *) t->data)[j]))
        g_error ("%s: tensor %s element %" G_GSIZE_FORMAT " is %g", path,
            t->name, j, ((const gfloat *) t->data)[j]);
  }
  g_assert_cmpint (n_f32, >, 0);
  simclr_safetensors_free (st);
}

static void
test_divergence (void)
{
  gchar *dir = g_dir_make_tmp ("pt-bad-diverge-XXXXXX", NULL);
  gchar *ckpt = g_build_filename (dir, "last.safetensors", NULL);
  gchar *desc, *contents = NULL, *want_step;
  gsize len = 0;
  SimclrError err = { 0 };
  SimclrTrainer *t;
  PtRun *run;

  desc = g_strdup_printf ("simclrdatasetsrc location=" PT_FASHION_MNIST
      " shuffle=true seed=3 num-samples=160 ! simclraugment size=28 seed=5 ! "
      "queue ! simclrencoder batch-size=8 width=0.25 threads=1 "
      "total-steps=20 warmup-steps=0 optimizer=sgd learning-rate=1e12 "
      "lr-scaling=linear checkpoint-location=\"%s\" checkpoint-interval=1 ! "
      "ntxentsink temperature=0.2 interval=1", ckpt);
  run = pt_run_pipeline (desc, 60);
  g_assert_nonnull (run->error);
  g_assert_cmpstr (run->error_source, ==, "simclrencoder");
  g_assert_error (run->error, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED);
  g_assert_false (run->eos);

  /* At least one good step was saved before the model blew up. */
  g_assert_cmpuint (run->n_checkpoints, >=, 1);
  g_assert_cmpstr (run->last_checkpoint_location, ==, ckpt);
  g_test_message ("last good checkpoint at step %" G_GUINT64_FORMAT
      ", %u steps reported", run->last_checkpoint_step, run->train->len);
  /* The error names the step after the last good checkpoint. */
  want_step = g_strdup_printf ("step %" G_GUINT64_FORMAT,
      run->last_checkpoint_step + 1);
  if (strstr (run->error->message, want_step) == NULL)
    g_error ("the error \"%s\" does not name %s", run->error->message,
        want_step);
  g_assert_nonnull (strstr (run->error->message, "non-finite"));
  if (strstr (run->error->message, ckpt) == NULL)
    g_error ("the error \"%s\" does not name %s", run->error->message, ckpt);

  /* The file on disk is the one written at the last good save, byte for
   * byte, and the core loads it. */
  g_assert_nonnull (run->last_checkpoint_bytes);
  g_assert_true (g_file_get_contents (ckpt, &contents, &len, NULL));
  g_assert_cmpuint (len, ==, g_bytes_get_size (run->last_checkpoint_bytes));
  g_assert_true (memcmp (contents, g_bytes_get_data (run->last_checkpoint_bytes,
              NULL), len) == 0);
  t = simclr_trainer_load (ckpt, 16, &err);
  if (t == NULL)
    g_error ("%s", err.message);
  g_assert_cmpint (simclr_trainer_get_step (t), ==, run->last_checkpoint_step);
  simclr_trainer_free (t);
  assert_all_finite (ckpt);

  pt_run_free (run);
  g_remove (ckpt);
  g_rmdir (dir);
  g_free (want_step);
  g_free (contents);
  g_free (desc);
  g_free (ckpt);
  g_free (dir);
}

/* Without periodic checkpoints the encoder's check of its embeddings stops
 * the next step; nothing is written. */
static void
test_divergence_no_checkpoint (void)
{
  gchar *dir = g_dir_make_tmp ("pt-bad-diverge-XXXXXX", NULL);
  gchar *ckpt = g_build_filename (dir, "final.safetensors", NULL);
  gchar *desc, *want_step;
  PtRun *run;

  desc = g_strdup_printf ("simclrdatasetsrc location=" PT_FASHION_MNIST
      " shuffle=true seed=3 num-samples=160 ! simclraugment size=28 seed=5 ! "
      "queue ! simclrencoder batch-size=8 width=0.25 threads=1 "
      "total-steps=20 warmup-steps=0 optimizer=sgd learning-rate=1e12 "
      "lr-scaling=linear checkpoint-location=\"%s\" ! "
      "ntxentsink temperature=0.2 interval=1", ckpt);
  run = pt_run_pipeline (desc, 60);
  g_assert_nonnull (run->error);
  g_assert_cmpstr (run->error_source, ==, "simclrencoder");
  g_assert_error (run->error, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED);
  g_assert_cmpuint (run->train->len, >=, 1);
  /* The first step whose embeddings are not finite is the one after the
   * last reported loss. */
  want_step = g_strdup_printf ("step %u", run->train->len);
  if (strstr (run->error->message, want_step) == NULL)
    g_error ("the error \"%s\" does not name %s", run->error->message,
        want_step);
  g_assert_nonnull (strstr (run->error->message, "Non-finite"));
  g_assert_cmpuint (run->n_checkpoints, ==, 0);
  g_assert_false (g_file_test (ckpt, G_FILE_TEST_EXISTS));

  pt_run_free (run);
  g_rmdir (dir);
  g_free (want_step);
  g_free (desc);
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
  g_test_add_func ("/pipelines/bad-input/truncated-idx", test_truncated_idx);
  g_test_add_func ("/pipelines/bad-input/missing-checkpoint",
      test_missing_checkpoint);
  g_test_add_func ("/pipelines/bad-input/divergence", test_divergence);
  g_test_add_func ("/pipelines/bad-input/divergence-no-checkpoint",
      test_divergence_no_checkpoint);
  return g_test_run ();
}
