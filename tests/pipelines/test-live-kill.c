/* test-live-kill.c: kill -9 of a live training run with rotating
 * checkpoints, then resume (issue 13).
 *
 * The child is gst-launch-1.0 -m on a live source (videotestsrc
 * is-live=true) training in replay mode, checkpointing every INTERVAL steps
 * into a folder that keeps KEEP files, and started with resume-from= that
 * same folder, as a supervisor would restart it. The test kills it with
 * SIGKILL, alternately while a checkpoint is being written (a temporary
 * file "ckpt-*.safetensors.tmp-*" is in the folder) and at a moment after
 * training started, several times. After each kill:
 *   - the newest checkpoint of the folder opens and loads as a trainer
 *     (every file under its final name is complete: writes are atomic);
 *   - at most one checkpoint interval was lost: its step is at least the
 *     steps the child reported done (its simclr-train messages on stdout)
 *     minus INTERVAL;
 *   - at most KEEP + 1 files are in the folder (KEEP + 1: killed between a
 *     rename and the rotation);
 * and the next child resumes from exactly that step (its first reported
 * step). The last child gets a source that ends (num-buffers): it runs to
 * EOS, writes its final checkpoint, and leaves exactly KEEP files and no
 * temporary file. Live runs are not bit-reproducible (which frames a batch
 * draws depends on timing), so this test is about what survives a kill;
 * tests/pipelines/test-kill-resume.c checks bit-exact resumes, also from a
 * rotating folder.
 *
 * SIMCLR_LIVE_KILL_TRIALS (default 6) sets the number of kills.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "simclr/checkpoint.h"
#include "simclr/ckptdir.h"
#include "simclr/trainer.h"

#define INTERVAL 2
#define KEEP 3
#define N 8

static guint time_scale = 1;

static gchar *
describe (const gchar * dir, gint num_buffers)
{
  /* width 0.5 at 16 pixels: files of about 22 MB, so a save takes long
   * enough to be caught in progress, and steps stay short */
  return g_strdup_printf ("videotestsrc is-live=true pattern=ball "
      "num-buffers=%d ! video/x-raw,format=RGB,width=32,height=32,"
      "framerate=30/1 ! simclraugment size=16 pair-mode=temporal "
      "temporal-offset=2 ! simclrencoder batch-size=%d width=0.5 threads=1 "
      "replay-size=64 lr-schedule=constant warmup-steps=2 "
      "checkpoint-location=\"%s\" checkpoint-interval=%d checkpoint-keep=%d "
      "resume-from=\"%s\" ! ntxentsink interval=1", num_buffers, N, dir,
      INTERVAL, KEEP, dir);
}

typedef struct
{
  GPid pid;
  gint out;                     /* the child's stdout, non-blocking */
  GString *buf;
  gint64 first_step;            /* first simclr-train step, -1 before */
  gint64 last_step;             /* last one, -1 before */
} Child;

static void
spawn (Child * c, const gchar * desc)
{
  gchar *cmd = g_strdup_printf ("gst-launch-1.0 -m %s", desc);
  gchar **argv = NULL;
  GError *error = NULL;

  g_assert_true (g_shell_parse_argv (cmd, NULL, &argv, &error));
  g_assert_true (g_spawn_async_with_pipes (NULL, argv, NULL,
          G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD |
          G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, &c->pid, NULL, &c->out,
          NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (fcntl (c->out, F_SETFL, O_NONBLOCK), ==, 0);
  c->buf = g_string_new (NULL);
  c->first_step = c->last_step = -1;
  g_strfreev (argv);
  g_free (cmd);
}

/* Reads what the child printed; notes the steps of its simclr-train
 * messages ("step=(guint64)K"). */
static void
drain (Child * c)
{
  gchar chunk[4096];
  gssize k;
  gchar *nl;

  while ((k = read (c->out, chunk, sizeof chunk)) > 0)
    g_string_append_len (c->buf, chunk, k);
  while ((nl = strchr (c->buf->str, '\n')) != NULL) {
    gchar *line = g_strndup (c->buf->str, nl - c->buf->str);
    const gchar *p = strstr (line, "simclr-train, step=(guint64)");
    if (p) {
      gint64 s = g_ascii_strtoll (p + strlen ("simclr-train, step=(guint64)"),
          NULL, 10);
      if (c->first_step < 0)
        c->first_step = s;
      c->last_step = s;
    }
    g_free (line);
    g_string_erase (c->buf, 0, nl - c->buf->str + 1);
  }
}

static void
child_close (Child * c)
{
  drain (c);
  close (c->out);
  g_string_free (c->buf, TRUE);
  g_spawn_close_pid (c->pid);
}

static gint
count_files (const gchar * dir, const gchar * part)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const gchar *name;
  gint n = 0;
  if (!d)
    return 0;
  while ((name = g_dir_read_name (d)))
    if (strstr (name, part))
      n++;
  g_dir_close (d);
  return n;
}

static gint
count_checkpoints (const gchar * dir)
{
  SimclrError err = { 0 };
  int64_t *steps = NULL;
  int n = 0;
  g_assert_cmpint (simclr_ckptdir_list (dir, &steps, &n, &err), ==,
      SIMCLR_OK);
  free (steps);
  return n;
}

/* The step of the folder's newest checkpoint, loaded as a trainer; 0 if
 * the folder holds none. */
static gint64
newest_step (const gchar * dir, gint trial)
{
  SimclrError err = { 0 };
  char *p = simclr_ckptdir_resolve (dir, NULL, &err);
  SimclrTrainer *t;
  gint64 k;

  if (p == NULL && err.status == SIMCLR_ERROR_END)
    return 0;
  if (p == NULL)
    g_error ("trial %d: no checkpoint opens in %s: %s", trial, dir,
        err.message);
  t = simclr_trainer_load (p, 2 * N, &err);
  if (t == NULL)
    g_error ("trial %d: the newest checkpoint %s does not load: %s", trial, p,
        err.message);
  k = simclr_trainer_get_step (t);
  simclr_trainer_free (t);
  free (p);
  return k;
}

static void
test_live_kill (void)
{
  const gchar *env = g_getenv ("SIMCLR_LIVE_KILL_TRIALS");
  gint trials = env ? MAX (2, atoi (env)) : 6;
  gchar *dir = g_dir_make_tmp ("pt-live-kill-XXXXXX", NULL);
  gchar *desc = describe (dir, -1);
  gint64 expect_start = 0, newest = 0, prev_newest = -1;
  gint during_write = 0, timed = 0;
  GString *log = g_string_new (NULL);

  if (g_getenv ("SIMCLR_SANITIZED") && atoi (g_getenv ("SIMCLR_SANITIZED"))) {
    g_test_skip ("the child gst-launch-1.0 cannot load an ASan plugin");
    goto done;
  }
  for (gint t = 0; t <= trials; t++) {
    const gboolean final = t == trials;
    const gboolean in_write = !final && t % 2 == 0;
    gint64 deadline = g_get_monotonic_time () + (gint64) (120 * time_scale)
        * G_TIME_SPAN_SECOND;
    gchar *d = final ? describe (dir, 150) : NULL;
    Child c;
    gint status = 0;
    gboolean killed_in_write = FALSE;

    spawn (&c, final ? d : desc);
    for (;;) {
      pid_t r;
      drain (&c);
      r = waitpid (c.pid, &status, WNOHANG);
      if (r == c.pid) {
        if (!final)
          g_error ("trial %d: the live run ended by itself (status %d)", t,
              status);
        break;
      }
      if (!final && c.first_step >= 0) {
        if (in_write && c.last_step >= c.first_step + 2
            && count_files (dir, ".tmp-") > 0) {
          /* a save in progress (not a stale file: the child cleaned those
           * at its first save, two steps ago) */
          kill (c.pid, SIGKILL);
          killed_in_write = TRUE;
          during_write++;
          waitpid (c.pid, &status, 0);
          break;
        }
        if (!in_write && c.last_step >= c.first_step + 3 + t) {
          kill (c.pid, SIGKILL);
          timed++;
          waitpid (c.pid, &status, 0);
          break;
        }
      }
      if (g_get_monotonic_time () > deadline)
        g_error ("trial %d: no progress within the deadline (first step %"
            G_GINT64_FORMAT ", last %" G_GINT64_FORMAT ")", t, c.first_step,
            c.last_step);
      g_usleep (200);
    }
    drain (&c);
    if (final) {
      g_assert_true (WIFEXITED (status));
      g_assert_cmpint (WEXITSTATUS (status), ==, 0);
    } else {
      g_assert_true (WIFSIGNALED (status));
    }

    /* The child resumed from the newest complete checkpoint. */
    g_assert_cmpint (c.first_step, ==, expect_start);
    newest = newest_step (dir, t);
    g_string_append_printf (log, " %s:%" G_GINT64_FORMAT "->%" G_GINT64_FORMAT,
        final ? "end" : killed_in_write ? "w" : "t", c.last_step + 1, newest);
    /* At most one interval lost: steps reported done (last step + 1) minus
     * the newest checkpoint's step. */
    g_assert_cmpint (newest, >=, expect_start);
    if (c.last_step + 1 - newest > INTERVAL)
      g_error ("trial %d: %" G_GINT64_FORMAT " steps done, newest checkpoint "
          "at step %" G_GINT64_FORMAT ": more than one interval (%d) lost", t,
          c.last_step + 1, newest, INTERVAL);
    g_assert_cmpint (count_checkpoints (dir), <=, KEEP + 1);
    if (final) {
      g_assert_cmpint (newest, >, prev_newest);
      g_assert_cmpint (newest, ==, c.last_step + 1);
      g_assert_cmpint (count_checkpoints (dir), ==, KEEP);
      g_assert_cmpint (count_files (dir, ".tmp-"), ==, 0);
    }
    prev_newest = newest;
    expect_start = newest;
    child_close (&c);
    g_free (d);
  }
  g_assert_cmpint (during_write, >=, trials / 2);
  g_print ("# live kill -9: %d kills during a checkpoint write, %d at other "
      "moments, then a run to the end; steps reached -> newest checkpoint "
      "per run:%s; every newest checkpoint loaded, every restart resumed it, "
      "at most %d steps (one interval) lost\n", during_write, timed,
      log->str, INTERVAL);
done:
  {
    GDir *dd = g_dir_open (dir, 0, NULL);
    const gchar *name;
    while (dd && (name = g_dir_read_name (dd))) {
      gchar *p = g_build_filename (dir, name, NULL);
      g_remove (p);
      g_free (p);
    }
    if (dd)
      g_dir_close (dd);
    g_rmdir (dir);
  }
  g_string_free (log, TRUE);
  g_free (desc);
  g_free (dir);
}

int
main (int argc, char **argv)
{
  const gchar *scale = g_getenv ("SIMCLR_TEST_TIME_SCALE");
  if (scale)
    time_scale = (guint) MAX (1, atoi (scale));
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/pipelines/live-kill", test_live_kill);
  return g_test_run ();
}
