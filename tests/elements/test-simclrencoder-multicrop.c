/* test-simclrencoder-multicrop.c: simclrencoder trained with multi-crop
 * (simclraugment small-views/small-size, which simclrencoder reads from the
 * caps), stopped, and resumed from its checkpoint.
 *
 * The data set is a synthetic IDX set written at run time (no download),
 * the pipeline as test-core-equivalence's multi-crop case builds it:
 *   simclrdatasetsrc ! simclraugment views=2 small-views=2 small-size=8 !
 *   queue ! simclrencoder ! ntxentsink
 *
 * - /resume-exact: the resume guarantee of tests/pipelines/test-resume.c
 *   with small views. Run A: 2K steps uninterrupted, final checkpoint a.
 *   Run B: the first K steps (same schedule), checkpoint b. Run C:
 *   resume-from=b, start-position K x N. Bit for bit (one thread): B's and
 *   C's losses are A's, and c holds a's tensors (every model tensor and the
 *   optimiser velocity) and step; b and c record the multi-crop
 *   configuration.
 * - /caps-vs-checkpoint: caps whose small-views/small-size differ from
 *   the checkpoint's (other small size, no small views, small views on a
 *   pair-trained file) are refused with an error from simclrencoder naming
 *   the checkpoint and simclraugment small-views, and the checkpoint, which
 *   is also the run's checkpoint-location, keeps its bytes.
 */
#include <string.h>

#include <glib/gstdio.h>
#include <gst/gst.h>

#include "pipeline-common.h"

#include "simclr/checkpoint.h"
#include "simclr/trainer.h"

#define IMAGES 32
#define SIDE 16                 /* the IDX images and the full-size views */
#define SMALL 8                 /* the small views */
#define N 4                     /* samples per step */
#define K 3                     /* steps before the stop */

static gchar *tmp_root;
static gchar *idx_dir;

/* Per image a blob on a gradient (an IDX set for simclrdatasetsrc). */
static gchar *
make_idx (void)
{
  gchar *dir = g_build_filename (tmp_root, "idx", NULL);
  guint8 *px = g_malloc (IMAGES * SIDE * SIDE), *p = px;

  for (gint i = 0; i < IMAGES; i++) {
    gint cy = 3 + (i * 7) % 10, cx = 3 + (i * 5) % 10;
    for (gint y = 0; y < SIDE; y++)
      for (gint x = 0; x < SIDE; x++) {
        gint d2 = (y - cy) * (y - cy) + (x - cx) * (x - cx);
        *p++ = (guint8) (d2 < 4 + i % 9 ? 230 - 3 * i : 8 * x + 4 * y
            + (guint8) (i * 37 + y * x) % 16);
      }
  }
  pt_write_idx (dir, IMAGES, SIDE, px);
  g_free (px);
  return dir;
}

/* The training pipeline with @small_views small views of @small_size. */
static PtRun *
run_training (guint64 num_samples, guint64 start, gint small_views,
    gint small_size, const gchar * resume, const gchar * ckpt)
{
  gchar *resume_prop = resume ? g_strdup_printf ("resume-from=\"%s\"",
      resume) : g_strdup ("");
  gchar *desc = g_strdup_printf ("simclrdatasetsrc location=\"%s\" "
      "shuffle=true seed=21 num-samples=%" G_GUINT64_FORMAT
      " start-position=%" G_GUINT64_FORMAT " ! simclraugment size=%d "
      "seed=4 views=2 small-views=%d small-size=%d ! queue ! "
      "simclrencoder batch-size=%d width=0.25 threads=1 seed=9 "
      "total-steps=%d warmup-steps=1 learning-rate=0.075 lr-scaling=sqrt "
      "checkpoint-location=\"%s\" %s ! ntxentsink temperature=0.2 "
      "interval=1", idx_dir, num_samples, start, SIDE, small_views,
      small_size, N, 2 * K, ckpt, resume_prop);
  PtRun *run = pt_run_pipeline (desc, 120);
  g_free (desc);
  g_free (resume_prop);
  return run;
}

/* @path, written by the element, resumes to @step with the caps' multi-crop
 * configuration: 2 full-size views of SIDE and 2 small ones of SMALL. */
static void
assert_multicrop_checkpoint (const gchar * path, gint64 step)
{
  SimclrError err = { 0 };
  SimclrTrainer *t = simclr_trainer_load (path, 4 * N, &err);

  if (!t)
    g_error ("%s: %s", path, err.message);
  const SimclrTrainerConfig *tc = simclr_trainer_get_config (t);
  g_assert_cmpint (simclr_trainer_get_step (t), ==, step);
  g_assert_cmpint (tc->views, ==, 4);
  g_assert_cmpint (tc->small_views, ==, 2);
  g_assert_cmpint (tc->small_size, ==, SMALL);
  g_assert_cmpint (tc->model.image_size, ==, SIDE);
  g_assert_nonnull (simclr_trainer_get_small_model (t));
  simclr_trainer_free (t);
}

static void
test_resume_exact (void)
{
  gchar *dir = g_build_filename (tmp_root, "resume", NULL);
  gchar *a = g_build_filename (dir, "a.safetensors", NULL);
  gchar *b = g_build_filename (dir, "b.safetensors", NULL);
  gchar *c = g_build_filename (dir, "c.safetensors", NULL);
  PtRun *ra, *rb, *rc;

  g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
  ra = run_training (2 * K * N, 0, 2, SMALL, NULL, a);
  g_assert_no_error (ra->error);
  g_assert_true (ra->eos);
  g_assert_cmpuint (ra->train->len, ==, 2 * K);
  g_assert_cmpuint (ra->last_checkpoint_step, ==, 2 * K);
  /* the steps moved the loss: the comparison covers optimiser steps */
  g_assert_cmpfloat (pt_run_loss (ra, 0), !=, pt_run_loss (ra, 2 * K - 1));

  rb = run_training (K * N, 0, 2, SMALL, NULL, b);
  g_assert_no_error (rb->error);
  pt_assert_same_losses (ra, rb, 0, K);
  g_assert_cmpuint (rb->last_checkpoint_step, ==, K);
  assert_multicrop_checkpoint (b, K);

  rc = run_training (2 * K * N, K * N, 2, SMALL, b, c);
  g_assert_no_error (rc->error);
  g_assert_true (rc->eos);
  pt_assert_same_losses (ra, rc, K, K);
  g_assert_cmpuint (rc->last_checkpoint_step, ==, 2 * K);

  pt_assert_same_tensors (a, c);
  assert_multicrop_checkpoint (c, 2 * K);

  pt_run_free (ra);
  pt_run_free (rb);
  pt_run_free (rc);
  pt_remove_tree (dir);
  g_free (a);
  g_free (b);
  g_free (c);
  g_free (dir);
}

/* A checkpoint of @small_views small views of @small_size after one step,
 * written by the core trainer with the element's model settings. */
static void
save_checkpoint (const gchar * path, gint small_views, gint small_size)
{
  SimclrTrainerConfig cfg;
  SimclrError err = { 0 };
  const int rows = N * (2 + small_views);

  simclr_trainer_config_default (&cfg);
  cfg.model.width = 0.25;
  cfg.model.in_channels = 1;
  cfg.model.image_size = SIDE;
  cfg.model.threads = 1;
  cfg.views = 2 + small_views;
  cfg.small_views = small_views;
  cfg.small_size = small_size;
  cfg.optim.total_steps = 2 * K;
  cfg.optim.warmup_steps = 1;
  cfg.seed = 9;
  g_assert_cmpint (simclr_trainer_config_set_batch (&cfg, N, 1, &err), ==,
      SIMCLR_OK);
  SimclrTrainer *t = simclr_trainer_new (&cfg, &err);
  if (!t)
    g_error ("trainer: %s", err.message);
  gsize bytes = (gsize) N * (2 * SIDE * SIDE + small_views * small_size
      * small_size);
  guint8 *u8 = g_malloc (bytes);
  for (gsize i = 0; i < bytes; i++)
    u8[i] = (guint8) (i * 131 + i / 7);
  if (simclr_trainer_train_step (t, u8, rows, NULL, &err) != SIMCLR_OK
      || simclr_trainer_save (t, path, &err) != SIMCLR_OK)
    g_error ("%s: %s", path, err.message);
  g_free (u8);
  simclr_trainer_free (t);
}

static GBytes *
file_bytes (const gchar * path)
{
  gchar *data;
  gsize n;

  g_assert_true (g_file_get_contents (path, &data, &n, NULL));
  return g_bytes_new_take (data, n);
}

/* Resuming @path (also the checkpoint-location) with caps of @small_views
 * small views of @small_size fails in simclrencoder with an error naming
 * the file and the caps' source, and the file keeps its bytes. */
static void
assert_refused (const gchar * path, gint small_views, gint small_size)
{
  GBytes *before = file_bytes (path), *after;
  PtRun *run = run_training (2 * K * N, N, small_views, small_size, path,
      path);

  if (!run->error)
    g_error ("resuming %s with caps small-views=%d small-size=%d: no error "
        "(EOS %d, %u steps)", path, small_views, small_size, run->eos,
        run->train->len);
  g_assert_cmpstr (run->error_source, ==, "simclrencoder");
  g_test_message ("small-views=%d small-size=%d: %s", small_views,
      small_size, run->error->message);
  if (!strstr (run->error->message, path)
      || !strstr (run->error->message, "small-views"))
    g_error ("the error does not name %s and small-views: %s", path,
        run->error->message);
  /* no step, no save */
  g_assert_cmpuint (run->train->len, ==, 0);
  g_assert_cmpuint (run->n_checkpoints, ==, 0);
  after = file_bytes (path);
  if (!g_bytes_equal (before, after))
    g_error ("%s changed: %" G_GSIZE_FORMAT " bytes before the refused run, "
        "%" G_GSIZE_FORMAT " after", path, g_bytes_get_size (before),
        g_bytes_get_size (after));
  pt_run_free (run);
  g_bytes_unref (before);
  g_bytes_unref (after);
}

static void
test_caps_vs_checkpoint (void)
{
  gchar *dir = g_build_filename (tmp_root, "refusal", NULL);
  gchar *mc = g_build_filename (dir, "multicrop.safetensors", NULL);
  gchar *pairs = g_build_filename (dir, "pairs.safetensors", NULL);

  g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
  save_checkpoint (mc, 2, SMALL);
  save_checkpoint (pairs, 0, 0);

  assert_refused (mc, 2, SMALL - 2);    /* another small size */
  assert_refused (mc, 1, SMALL);        /* another number of small views */
  assert_refused (mc, 0, 0);    /* no small views */
  assert_refused (pairs, 2, SMALL);     /* small views on pairs */

  /* the matching caps resume it */
  {
    gchar *out = g_build_filename (dir, "resumed.safetensors", NULL);
    PtRun *run = run_training (2 * N, N, 2, SMALL, mc, out);
    g_assert_no_error (run->error);
    g_assert_true (run->eos);
    g_assert_cmpuint (run->train->len, ==, 1);
    g_assert_cmpuint (g_array_index (run->train, PtTrainRow, 0).step, ==, 1);
    pt_run_free (run);
    g_remove (out);
    g_free (out);
  }

  g_remove (mc);
  g_remove (pairs);
  g_rmdir (dir);
  g_free (mc);
  g_free (pairs);
  g_free (dir);
}

int
main (int argc, char **argv)
{
  int ret;

  gst_init (&argc, &argv);
  g_test_init (&argc, &argv, NULL);
  tmp_root = g_dir_make_tmp ("simclrencoder-multicrop-XXXXXX", NULL);
  idx_dir = make_idx ();
  g_test_add_func ("/simclrencoder-multicrop/resume-exact",
      test_resume_exact);
  g_test_add_func ("/simclrencoder-multicrop/caps-vs-checkpoint",
      test_caps_vs_checkpoint);
  ret = g_test_run ();
  pt_remove_tree (tmp_root);
  g_free (idx_dir);
  g_free (tmp_root);
  return ret;
}
