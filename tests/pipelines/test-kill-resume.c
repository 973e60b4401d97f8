/* test-kill-resume.c: kill -9 of a training pipeline at random moments,
 * including during a checkpoint write, then resume (issue 15).
 *
 * Reference A (in this process): S steps of N samples uninterrupted, a
 * checkpoint every step; its losses and final tensors.
 * Each trial: the same pipeline in a child gst-launch-1.0 with its own
 * checkpoint file, killed with SIGKILL either while a checkpoint is being
 * written (a "<file>.tmp-XXXXXX" beside it exists) or at a random time.
 * Asserted per trial:
 *   - the checkpoint file, if any, opens and loads as a trainer checkpoint
 *     (the last complete one: writes are atomic), at some step k;
 *   - resuming from it (resume-from, start-position = k N) reproduces, bit
 *     for bit, A's losses of steps k .. S-1 and A's final tensors (every
 *     model tensor and optimiser velocity) and step.
 * A trial killed before the first checkpoint has nothing to resume (k = 0)
 * and counts as such. Temporary files a kill leaves behind are counted
 * (SIGKILL gives no chance to remove them) and must never be the file
 * itself.
 *
 * SIMCLR_KILL_TRIALS (default 4) sets the number of trials and
 * SIMCLR_KILL_SEED (default 15) their random moments; the summary line
 * "kill-resume: T trials ..." gives what happened. To add a checkpoint
 * layout (e.g. rotating checkpoints in a folder), add a Layout entry: how
 * the child is told where to write, and how the newest complete checkpoint
 * is found after the kill.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "pipeline-common.h"

#include "simclr/checkpoint.h"
#include "simclr/ckptdir.h"

#define N 8
#define S 10
#define WARMUP 2

/* The training pipeline; @ckpt gets a checkpoint every step. */
static gchar *
describe (guint64 start, const gchar * resume, const gchar * ckpt)
{
  gchar *resume_prop = resume ? g_strdup_printf ("resume-from=\"%s\"",
      resume) : g_strdup ("");
  /* split=test: 10000 images, a fast open; one thread: bit-exact */
  gchar *desc = g_strdup_printf ("simclrdatasetsrc location="
      PT_FASHION_MNIST " split=test shuffle=true seed=21 num-samples=%d "
      "start-position=%" G_GUINT64_FORMAT " ! simclraugment size=28 seed=4 ! "
      "queue ! simclrencoder batch-size=%d width=0.25 threads=1 seed=9 "
      "total-steps=%d warmup-steps=%d learning-rate=0.075 lr-scaling=sqrt "
      "checkpoint-interval=1 checkpoint-location=\"%s\" %s ! ntxentsink "
      "temperature=0.2 interval=1", S * N, start, N, S, WARMUP, ckpt,
      resume_prop);
  g_free (resume_prop);
  return desc;
}

/* A place to write checkpoints and how to find the newest complete one. */
typedef struct
{
  const gchar *name;
  /* the checkpoint-location given to the pipeline, inside @dir */
  gchar *(*location) (const gchar * dir);
  /* the checkpoint to resume from after a kill, NULL if none was written */
  gchar *(*newest) (const gchar * dir);
} Layout;

static gchar *
single_file_location (const gchar * dir)
{
  return g_build_filename (dir, "ckpt.safetensors", NULL);
}

static gchar *
single_file_newest (const gchar * dir)
{
  gchar *p = single_file_location (dir);
  if (!g_file_test (p, G_FILE_TEST_EXISTS)) {
    g_free (p);
    return NULL;
  }
  return p;
}

/* checkpoint-location a folder: rotating ckpt-<step>.safetensors files
 * (issue 13); the newest complete one is what resume-from=FOLDER takes. */
static gchar *
folder_location (const gchar * dir)
{
  return g_strdup (dir);
}

static gchar *
folder_newest (const gchar * dir)
{
  SimclrError err = { 0 };
  char *p = simclr_ckptdir_resolve (dir, NULL, &err);
  gchar *ret;
  if (p == NULL) {
    if (err.status != SIMCLR_ERROR_END)
      g_error ("checkpoint folder %s: %s", dir, err.message);
    return NULL;
  }
  ret = g_strdup (p);
  free (p);
  return ret;
}

static const Layout layouts[] = {
  {"single file", single_file_location, single_file_newest},
  {"rotating folder", folder_location, folder_newest},
};

/* Files in @dir whose name contains ".tmp-" (a write in progress). */
static gint
count_temp_files (const gchar * dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const gchar *name;
  gint n = 0;
  if (!d)
    return 0;
  while ((name = g_dir_read_name (d)))
    if (strstr (name, ".tmp-"))
      n++;
  g_dir_close (d);
  return n;
}

static void
remove_dir (const gchar * dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const gchar *name;
  if (d) {
    while ((name = g_dir_read_name (d))) {
      gchar *p = g_build_filename (dir, name, NULL);
      g_remove (p);
      g_free (p);
    }
    g_dir_close (d);
  }
  g_rmdir (dir);
}

/* Starts gst-launch-1.0 on @desc; returns its pid. */
static GPid
spawn_pipeline (const gchar * desc)
{
  gchar *cmd = g_strdup_printf ("gst-launch-1.0 -q %s", desc);
  gchar **argv = NULL;
  GError *error = NULL;
  GPid pid;

  g_assert_true (g_shell_parse_argv (cmd, NULL, &argv, &error));
  g_assert_no_error (error);
  g_assert_true (g_spawn_async (NULL, argv, NULL, G_SPAWN_SEARCH_PATH |
          G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL |
          G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, &pid, &error));
  g_assert_no_error (error);
  g_strfreev (argv);
  g_free (cmd);
  return pid;
}

/* Waits for @pid; TRUE if it ended by itself (exit), FALSE if killed. */
static gboolean
reap (GPid pid, gint * status)
{
  while (waitpid (pid, status, 0) < 0 && errno == EINTR);
  return WIFEXITED (*status);
}

typedef struct
{
  gint trials, during_write, at_random, before_first, finished, temps_left;
  GString *steps;
} Tally;

/* One trial; returns the step the kill left (0 if no checkpoint). */
static void
trial (const Layout * lay, const PtRun * ref, const gchar * ref_ckpt,
    GRand * r, gdouble full_run_s, gboolean hit_write, Tally * t)
{
  gchar *dir = g_dir_make_tmp ("pt-kill-XXXXXX", NULL);
  gchar *loc = lay->location (dir);
  gchar *desc = describe (0, NULL, loc);
  gchar *newest, *out, *resume_desc;
  GPid pid;
  gint status;
  gboolean killed_in_write = FALSE, ended;
  guint64 k = 0;
  gint64 t0 = g_get_monotonic_time (), deadline;
  /* a random moment of the run (start-up, about a third of it, mostly
   * excluded: nothing is written then) */
  gdouble when = g_rand_double_range (r, full_run_s * 0.3, full_run_s);
  /* with hit_write, the j-th checkpoint write in progress is the moment
   * (j >= 2: an earlier checkpoint is complete) */
  gint target_write = g_rand_int_range (r, 2, S + 1);
  gint writes_seen = 0;
  gboolean in_write = FALSE;

  pid = spawn_pipeline (desc);
  deadline = t0 + (gint64) ((full_run_s * 3 + 30) * G_USEC_PER_SEC);
  for (;;) {
    gint64 now = g_get_monotonic_time ();
    gint temps = count_temp_files (dir);
    pid_t done = waitpid (pid, &status, WNOHANG);

    if (done == pid)
      break;                    /* it finished before the moment came */
    if (hit_write) {
      if (temps > 0 && !in_write) {
        writes_seen++;
        in_write = TRUE;
        if (writes_seen >= target_write) {
          kill (pid, SIGKILL);
          killed_in_write = TRUE;
          reap (pid, &status);
          break;
        }
      } else if (temps == 0) {
        in_write = FALSE;
      }
    } else if (now - t0 >= (gint64) (when * G_USEC_PER_SEC)) {
      /* note whether this random moment fell inside a write */
      killed_in_write = temps > 0;
      kill (pid, SIGKILL);
      reap (pid, &status);
      break;
    }
    g_assert_cmpint (now, <, deadline);
    g_usleep (200);
  }
  ended = WIFEXITED (status);
  t->trials++;
  if (ended) {
    g_assert_cmpint (WEXITSTATUS (status), ==, 0);
    t->finished++;
  } else if (killed_in_write) {
    t->during_write++;
  } else {
    t->at_random++;
  }
  t->temps_left += count_temp_files (dir);

  newest = lay->newest (dir);
  if (newest == NULL) {
    t->before_first++;
    g_string_append (t->steps, " -");
    goto out;
  }
  {
    /* the last complete checkpoint always loads */
    SimclrError err = { 0 };
    SimclrSafetensors *st = simclr_safetensors_open (newest, &err);
    SimclrModel *m;
    const gchar *step;
    if (st == NULL)
      g_error ("trial %d: the checkpoint left by the kill does not open: %s",
          t->trials, err.message);
    step = simclr_safetensors_metadata (st, "step");
    g_assert_nonnull (step);
    k = g_ascii_strtoull (step, NULL, 10);
    g_assert_cmpuint (k, >=, 1);
    g_assert_cmpuint (k, <=, S);
    simclr_safetensors_free (st);
    m = simclr_checkpoint_load_model (newest, 2, &err);
    if (m == NULL)
      g_error ("trial %d: the checkpoint of step %" G_GUINT64_FORMAT
          " does not load as a model: %s", t->trials, k, err.message);
    simclr_model_free (m);
  }
  g_string_append_printf (t->steps, " %" G_GUINT64_FORMAT "%s", k,
      killed_in_write ? "w" : ended ? "e" : "");

  /* resume: exactly A from step k on */
  out = g_build_filename (dir, "resumed.safetensors", NULL);
  resume_desc = describe (k * N, newest, out);
  {
    PtRun *rc = pt_run_pipeline (resume_desc, 120);
    g_assert_no_error (rc->error);
    g_assert_true (rc->eos);
    g_assert_cmpuint (rc->train->len, ==, S - k);
    for (guint i = 0; i < rc->train->len; i++) {
      const PtTrainRow *row = &g_array_index (rc->train, PtTrainRow, i);
      gdouble want = pt_run_loss (ref, k + i);
      g_assert_cmpuint (row->step, ==, k + i);
      if (row->loss != want)
        g_error ("trial %d (killed at step %" G_GUINT64_FORMAT "%s): step %"
            G_GUINT64_FORMAT ": resumed loss %.17g, uninterrupted %.17g",
            t->trials, k, killed_in_write ? ", during a write" : "",
            row->step, row->loss, want);
    }
    if (k < S)
      g_assert_cmpuint (rc->last_checkpoint_step, ==, S);
    pt_run_free (rc);
  }
  if (k < S)
    pt_assert_same_tensors (ref_ckpt, out);
  g_free (resume_desc);
  g_free (out);
  g_free (newest);
out:
  remove_dir (dir);
  g_free (desc);
  g_free (loc);
  g_free (dir);
}

static void
test_kill_resume (void)
{
  const gchar *env = g_getenv ("SIMCLR_KILL_TRIALS");
  gint trials = env ? atoi (env) : 4;
  guint32 seed = g_getenv ("SIMCLR_KILL_SEED") ?
      (guint32) atoi (g_getenv ("SIMCLR_KILL_SEED")) : 15;
  gchar *dir = g_dir_make_tmp ("pt-kill-ref-XXXXXX", NULL);
  gchar *a = g_build_filename (dir, "a.safetensors", NULL);
  gchar *desc = describe (0, NULL, a);
  GRand *r = g_rand_new_with_seed (seed);
  PtRun *ra;
  gdouble full_run_s;
  gint64 t0;
  GPid pid;
  gint status;

  if (g_getenv ("SIMCLR_SANITIZED") && atoi (g_getenv ("SIMCLR_SANITIZED"))) {
    g_test_skip ("the child gst-launch-1.0 cannot load an ASan plugin");
    goto done;
  }
  ra = pt_run_pipeline (desc, 120);
  g_assert_no_error (ra->error);
  g_assert_cmpuint (ra->train->len, ==, S);
  g_assert_cmpuint (ra->last_checkpoint_step, ==, S);

  /* How long a whole child run takes here, so random moments span it. */
  {
    gchar *d2 = g_dir_make_tmp ("pt-kill-time-XXXXXX", NULL);
    gchar *loc = single_file_location (d2);
    gchar *td = describe (0, NULL, loc);
    t0 = g_get_monotonic_time ();
    pid = spawn_pipeline (td);
    g_assert_true (reap (pid, &status));
    g_assert_cmpint (WEXITSTATUS (status), ==, 0);
    full_run_s = (g_get_monotonic_time () - t0) / 1e6;
    /* the uninterrupted child run is A too */
    pt_assert_same_tensors (a, loc);
    remove_dir (d2);
    g_free (td);
    g_free (loc);
    g_free (d2);
  }

  for (guint l = 0; l < G_N_ELEMENTS (layouts); l++) {
    Tally t = { 0 };
    t.steps = g_string_new (NULL);
    for (gint i = 0; i < trials; i++)
      trial (&layouts[l], ra, a, r, full_run_s, i % 2 == 0, &t);
    g_print ("# kill-resume (%s): %d trials in runs of %.1f s: %d killed "
        "during a checkpoint write, %d at a random moment, %d before the "
        "first checkpoint, %d finished first; %d temporary files left; "
        "resumed from steps:%s; every resume matched the uninterrupted run "
        "bit for bit\n", layouts[l].name, t.trials, full_run_s,
        t.during_write, t.at_random, t.before_first, t.finished,
        t.temps_left, t.steps->str);
    g_string_free (t.steps, TRUE);
  }
  pt_run_free (ra);
done:
  g_rand_free (r);
  g_remove (a);
  g_rmdir (dir);
  g_free (a);
  g_free (desc);
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
  g_test_add_func ("/pipelines/kill-resume", test_kill_resume);
  return g_test_run ();
}
