/* test-resume.c: a stopped and resumed pipeline continues exactly.
 *
 * Run A: 2K steps of N samples uninterrupted, final checkpoint a.
 * Run B: the first K steps only (num-samples = K * N, same schedule
 *        total-steps = 2K), final checkpoint b (step K).
 * Run C: resume-from=b, simclrdatasetsrc start-position = K * N with
 *        num-samples = 2K * N and the same seeds, final checkpoint c.
 * Asserted, bit for bit (one thread): the losses of B's steps 0..K-1 are A's,
 * the losses of C's steps K..2K-1 are A's, and c holds exactly a's tensors
 * (every model tensor and optimiser velocity: same names, dtypes, shapes and
 * bytes) and the same "step" metadata. The checkpoints are read with the
 * core's safetensors reader.
 */
#include <math.h>
#include <string.h>

#include <glib/gstdio.h>

#include "pipeline-common.h"

#include "simclr/checkpoint.h"

#define N 8
#define K 4
#define WARMUP 2

static PtRun *
run_training (guint64 num_samples, guint64 start, const gchar * resume,
    const gchar * ckpt)
{
  gchar *resume_prop = resume ? g_strdup_printf ("resume-from=\"%s\"",
      resume) : g_strdup ("");
  gchar *desc = g_strdup_printf ("simclrdatasetsrc location="
      PT_FASHION_MNIST " shuffle=true seed=21 num-samples=%" G_GUINT64_FORMAT
      " start-position=%" G_GUINT64_FORMAT " ! simclraugment size=28 seed=4 ! "
      "queue ! simclrencoder batch-size=%d width=0.25 threads=1 seed=9 "
      "total-steps=%d warmup-steps=%d learning-rate=0.075 lr-scaling=sqrt "
      "checkpoint-location=\"%s\" %s ! ntxentsink temperature=0.2 interval=1",
      num_samples, start, N, 2 * K, WARMUP, ckpt, resume_prop);
  PtRun *run = pt_run_pipeline (desc, 120);
  g_assert_no_error (run->error);
  g_assert_true (run->eos);
  g_free (desc);
  g_free (resume_prop);
  return run;
}

static void
test_resume_exact (void)
{
  gchar *dir = g_dir_make_tmp ("pt-resume-XXXXXX", NULL);
  gchar *a = g_build_filename (dir, "a.safetensors", NULL);
  gchar *b = g_build_filename (dir, "b.safetensors", NULL);
  gchar *c = g_build_filename (dir, "c.safetensors", NULL);
  PtRun *ra, *rb, *rc;

  ra = run_training (2 * K * N, 0, NULL, a);
  g_assert_cmpuint (ra->train->len, ==, 2 * K);
  g_assert_cmpuint (ra->last_checkpoint_step, ==, 2 * K);

  rb = run_training (K * N, 0, NULL, b);
  pt_assert_same_losses (ra, rb, 0, K);
  g_assert_cmpuint (rb->last_checkpoint_step, ==, K);

  rc = run_training (2 * K * N, K * N, b, c);
  pt_assert_same_losses (ra, rc, K, K);
  g_assert_cmpuint (rc->last_checkpoint_step, ==, 2 * K);

  pt_assert_same_tensors (a, c);
  {
    SimclrError err = { 0 };
    SimclrSafetensors *st = simclr_safetensors_open (c, &err);
    g_assert_nonnull (st);
    g_assert_cmpstr (simclr_safetensors_metadata (st, "step"), ==, "8");
    simclr_safetensors_free (st);
  }

  pt_run_free (ra);
  pt_run_free (rb);
  pt_run_free (rc);
  g_remove (a);
  g_remove (b);
  g_remove (c);
  g_rmdir (dir);
  g_free (a);
  g_free (b);
  g_free (c);
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
  g_test_add_func ("/pipelines/resume/exact", test_resume_exact);
  return g_test_run ();
}
