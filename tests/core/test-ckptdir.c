/* test-ckptdir.c: rotating checkpoints in a folder (include/simclr/ckptdir.h).
 *
 * - Names, listing (other files ignored), rotation (newest M kept, the file
 *   just written never removed, stale temporary files removed, an unlink
 *   failure named while the other removals go on).
 * - resume-from resolution: a file, a folder (newest complete; a corrupt
 *   newer file skipped and named), a glob pattern (largest "step"), an empty
 *   folder (SIMCLR_ERROR_END), a missing name.
 * - kill -9: a child process trains a small model and checkpoints every
 *   INTERVAL steps into a folder with rotation; the test kills it with
 *   SIGKILL at fixed delays and, alternately, the moment a temporary
 *   checkpoint file appears (a save in progress). After each kill the newest
 *   checkpoint loads with the trainer, at most one interval of steps is lost,
 *   and the next child resumes from exactly that checkpoint. The last child
 *   runs to the end and leaves exactly KEEP files.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>
#include <fcntl.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "simclr/checkpoint.h"
#include "simclr/ckptdir.h"
#include "simclr/rng.h"
#include "simclr/trainer.h"

static gchar *
make_dir (void)
{
  gchar *d = g_dir_make_tmp ("test-ckptdir-XXXXXX", NULL);
  g_assert_nonnull (d);
  return d;
}

static void
remove_tree (const gchar * dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const gchar *name;
  if (!d)
    return;
  while ((name = g_dir_read_name (d)) != NULL) {
    gchar *p = g_build_filename (dir, name, NULL);
    if (g_file_test (p, G_FILE_TEST_IS_DIR))
      remove_tree (p);
    else
      g_unlink (p);
    g_free (p);
  }
  g_dir_close (d);
  g_rmdir (dir);
}

static void
touch (const gchar * dir, const gchar * name, const gchar * content)
{
  gchar *p = g_build_filename (dir, name, NULL);
  g_assert_true (g_file_set_contents (p, content, -1, NULL));
  g_free (p);
}

static gboolean
exists (const gchar * dir, const gchar * name)
{
  gchar *p = g_build_filename (dir, name, NULL);
  gboolean e = g_file_test (p, G_FILE_TEST_EXISTS);
  g_free (p);
  return e;
}

static void
assert_message (const SimclrError * err, const gchar * word)
{
  if (!strstr (err->message, word))
    g_error ("message '%s' lacks '%s'", err->message, word);
}

/* ---------------------------------------------------------------------------
 * Names, listing, rotation.
 */
static void
test_path (void)
{
  char *p = simclr_ckptdir_path ("runs/a", 42);
  g_assert_cmpstr (p, ==, "runs/a/ckpt-000000000042.safetensors");
  free (p);
  p = simclr_ckptdir_path ("runs/a/", 123456789012);
  g_assert_cmpstr (p, ==, "runs/a/ckpt-123456789012.safetensors");
  free (p);
  g_assert_null (simclr_ckptdir_path ("x", -1));
  g_assert_null (simclr_ckptdir_path (NULL, 1));
}

static void
test_list (void)
{
  gchar *dir = make_dir (), *missing;
  SimclrError err = { 0 };
  int64_t *steps = NULL;
  int n = -1;

  g_assert_cmpint (simclr_ckptdir_list (dir, &steps, &n, &err), ==, SIMCLR_OK);
  g_assert_cmpint (n, ==, 0);
  g_assert_null (steps);
  touch (dir, "ckpt-000000000005.safetensors", "x");
  touch (dir, "ckpt-000000000100.safetensors", "x");
  touch (dir, "ckpt-000000000020.safetensors", "x");
  touch (dir, "ckpt-abc.safetensors", "x");
  touch (dir, "ckpt-.safetensors", "x");
  touch (dir, "ckpt-000000000009.bin", "x");
  touch (dir, "notes.txt", "x");
  touch (dir, "ckpt-000000000007.safetensors.tmp-AbC123", "x");
  g_assert_cmpint (simclr_ckptdir_list (dir, &steps, &n, &err), ==, SIMCLR_OK);
  g_assert_cmpint (n, ==, 3);
  g_assert_cmpint (steps[0], ==, 100);
  g_assert_cmpint (steps[1], ==, 20);
  g_assert_cmpint (steps[2], ==, 5);
  free (steps);

  missing = g_build_filename (dir, "nope", NULL);
  g_assert_cmpint (simclr_ckptdir_list (missing, &steps, &n, &err), ==,
      SIMCLR_ERROR_IO);
  assert_message (&err, missing);
  g_free (missing);
  remove_tree (dir);
  g_free (dir);
}

static void
test_rotate (void)
{
  gchar *dir = make_dir (), *sub;
  SimclrError err = { 0 };
  int removed = -1;

  touch (dir, "ckpt-000000000005.safetensors", "x");
  touch (dir, "ckpt-000000000100.safetensors", "x");
  touch (dir, "ckpt-000000000020.safetensors", "x");
  touch (dir, "ckpt-000000000030.safetensors.tmp-AbC123", "x");
  touch (dir, "notes.txt", "x");
  touch (dir, "other.safetensors.tmp-AbC123", "x");
  g_assert_cmpint (simclr_ckptdir_rotate (dir, 2, -1, &removed, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (removed, ==, 2);
  g_assert_true (exists (dir, "ckpt-000000000100.safetensors"));
  g_assert_true (exists (dir, "ckpt-000000000020.safetensors"));
  g_assert_false (exists (dir, "ckpt-000000000005.safetensors"));
  g_assert_false (exists (dir, "ckpt-000000000030.safetensors.tmp-AbC123"));
  /* Files that are not ours stay. */
  g_assert_true (exists (dir, "notes.txt"));
  g_assert_true (exists (dir, "other.safetensors.tmp-AbC123"));

  /* The file just written stays even when newer steps (an abandoned run)
   * fill the quota. */
  touch (dir, "ckpt-000000000007.safetensors", "x");
  g_assert_cmpint (simclr_ckptdir_rotate (dir, 1, 7, &removed, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (removed, ==, 1);
  g_assert_true (exists (dir, "ckpt-000000000100.safetensors"));
  g_assert_false (exists (dir, "ckpt-000000000020.safetensors"));
  g_assert_true (exists (dir, "ckpt-000000000007.safetensors"));

  /* An unlink failure names the file; the other removals go on. */
  sub = g_build_filename (dir, "ckpt-000000000001.safetensors", NULL);
  g_assert_cmpint (g_mkdir (sub, 0700), ==, 0);
  touch (sub, "keep-me", "x");
  touch (dir, "ckpt-000000000003.safetensors", "x");
  g_assert_cmpint (simclr_ckptdir_rotate (dir, 1, 100, &removed, &err), ==,
      SIMCLR_ERROR_IO);
  assert_message (&err, "ckpt-000000000001.safetensors");
  g_assert_false (exists (dir, "ckpt-000000000003.safetensors"));
  g_assert_false (exists (dir, "ckpt-000000000007.safetensors"));
  g_assert_true (exists (dir, "ckpt-000000000100.safetensors"));
  g_assert_cmpint (removed, ==, 2);
  g_assert_cmpint (simclr_ckptdir_rotate (dir, 0, -1, NULL, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_free (sub);
  remove_tree (dir);
  g_free (dir);
}

/* ---------------------------------------------------------------------------
 * resume-from resolution, on real trainer checkpoints.
 */
static SimclrTrainer *
small_trainer (double width)
{
  SimclrTrainerConfig cfg;
  SimclrError err = { 0 };
  SimclrTrainer *t;

  simclr_trainer_config_default (&cfg);
  cfg.model.width = width;
  cfg.model.image_size = 8;
  cfg.model.in_channels = 1;
  cfg.model.max_batch = 4;
  cfg.model.proj_hidden = 16;
  cfg.model.proj_dim = 8;
  cfg.model.threads = 1;
  cfg.optim.batch_size = 2;
  cfg.optim.schedule = SIMCLR_LR_SCHEDULE_CONSTANT;
  cfg.optim.warmup_steps = 2;
  cfg.seed = 3;
  t = simclr_trainer_new (&cfg, &err);
  if (!t)
    g_error ("trainer: %s", err.message);
  return t;
}

/* One step on 2 samples of 8x8 gray views keyed by the step. */
static SimclrStatus
train_one (SimclrTrainer * t, SimclrError * err)
{
  uint8_t views[4 * 64];
  uint64_t s = (uint64_t) simclr_trainer_get_step (t);
  for (int i = 0; i < 4 * 64; i++)
    views[i] = (uint8_t) (simclr_rng_u64 (11, s, (uint64_t) i) >> 56);
  return simclr_trainer_train_step (t, views, 4, NULL, err);
}

static void
save_at (SimclrTrainer * t, const gchar * dir)
{
  SimclrError err = { 0 };
  char *p = simclr_ckptdir_path (dir, simclr_trainer_get_step (t));
  if (simclr_trainer_save (t, p, &err) != SIMCLR_OK)
    g_error ("save %s: %s", p, err.message);
  free (p);
}

static void
truncate_half (const gchar * path)
{
  gchar *data;
  gsize len;
  g_assert_true (g_file_get_contents (path, &data, &len, NULL));
  g_assert_true (g_file_set_contents (path, data, (gssize) len / 2, NULL));
  g_free (data);
}

static void
test_resolve (void)
{
  gchar *dir = make_dir (), *empty = make_dir (), *pattern, *missing;
  SimclrTrainer *t = small_trainer (0.25);
  SimclrError err = { 0 }, skipped = { 0 };
  char *p, *newest, *mid;

  for (int s = 0; s < 3; s++) {
    g_assert_cmpint (train_one (t, &err), ==, SIMCLR_OK);
    save_at (t, dir);           /* steps 1, 2, 3 */
  }
  newest = simclr_ckptdir_path (dir, 3);
  mid = simclr_ckptdir_path (dir, 2);

  /* A folder: its newest. */
  p = simclr_ckptdir_resolve (dir, &skipped, &err);
  g_assert_cmpstr (p, ==, newest);
  g_assert_cmpstr (skipped.message, ==, "");
  free (p);
  /* A file: itself. */
  p = simclr_ckptdir_resolve (mid, &skipped, &err);
  g_assert_cmpstr (p, ==, mid);
  free (p);

  /* A corrupt newest file (not one of ours can be, but disks fail): the
   * previous one, and the skipped file is named. */
  truncate_half (newest);
  p = simclr_ckptdir_resolve (dir, &skipped, &err);
  g_assert_cmpstr (p, ==, mid);
  assert_message (&skipped, newest);
  free (p);
  {
    SimclrTrainer *u = simclr_trainer_load (mid, 4, &err);
    g_assert_nonnull (u);
    g_assert_cmpint (simclr_trainer_get_step (u), ==, 2);
    simclr_trainer_free (u);
  }

  /* A pattern: the largest "step" among the matches that open, whatever
   * their names. */
  {
    gchar *other = g_build_filename (dir, "zz-final.safetensors", NULL);
    g_assert_cmpint (train_one (t, &err), ==, SIMCLR_OK);
    g_assert_cmpint (simclr_trainer_save (t, other, &err), ==, SIMCLR_OK);
    pattern = g_build_filename (dir, "*.safetensors", NULL);
    p = simclr_ckptdir_resolve (pattern, &skipped, &err);
    g_assert_cmpstr (p, ==, other);     /* step 4 */
    assert_message (&skipped, newest);  /* the truncated one */
    free (p);
    g_unlink (other);
    g_free (other);
  }

  /* Nothing opens: a format error naming the newest and why. */
  truncate_half (mid);
  {
    char *oldest = simclr_ckptdir_path (dir, 1);
    truncate_half (oldest);
    free (oldest);
  }
  g_assert_null (simclr_ckptdir_resolve (dir, &skipped, &err));
  g_assert_cmpint (err.status, ==, SIMCLR_ERROR_FORMAT);
  assert_message (&err, newest);

  /* An empty folder or a pattern without matches: SIMCLR_ERROR_END. */
  g_assert_null (simclr_ckptdir_resolve (empty, &skipped, &err));
  g_assert_cmpint (err.status, ==, SIMCLR_ERROR_END);
  assert_message (&err, empty);
  g_free (pattern);
  pattern = g_build_filename (empty, "*.safetensors", NULL);
  g_assert_null (simclr_ckptdir_resolve (pattern, &skipped, &err));
  g_assert_cmpint (err.status, ==, SIMCLR_ERROR_END);

  /* A missing name. */
  missing = g_build_filename (empty, "gone.safetensors", NULL);
  g_assert_null (simclr_ckptdir_resolve (missing, &skipped, &err));
  g_assert_cmpint (err.status, ==, SIMCLR_ERROR_IO);
  assert_message (&err, missing);
  g_assert_null (simclr_ckptdir_resolve ("", &skipped, &err));

  simclr_trainer_free (t);
  free (newest);
  free (mid);
  g_free (pattern);
  g_free (missing);
  remove_tree (dir);
  remove_tree (empty);
  g_free (dir);
  g_free (empty);
}

/* ---------------------------------------------------------------------------
 * kill -9.
 */
#define INTERVAL 2
#define KEEP 3
#define MORE_STEPS 10            /* the last child's steps after resuming */

/* The child: resume from the folder (or start anew), announce the starting
 * step, then train; announce every finished step on @fd; checkpoint every
 * INTERVAL steps with rotation. Exits 0 after @steps steps (-1: never), 3 on
 * any failure. */
static void
child_run (const gchar * dir, int fd, int64_t steps)
{
  int64_t end;
  SimclrError err = { 0 };
  SimclrTrainer *t;
  char *path = simclr_ckptdir_resolve (dir, NULL, &err);
  int64_t step;

  if (path) {
    t = simclr_trainer_load (path, 4, &err);
    free (path);
  } else if (err.status == SIMCLR_ERROR_END) {
    /* width 0.25: files of about 6 MB; the fsync makes a save take
     * milliseconds, long enough to be caught in progress */
    t = small_trainer (0.25);
  } else {
    _exit (3);
  }
  if (!t)
    _exit (3);
  /* As a writer does at start: remove what a killed writer left. */
  if (simclr_ckptdir_rotate (dir, KEEP, -1, NULL, &err) != SIMCLR_OK)
    _exit (3);
  step = simclr_trainer_get_step (t);
  end = steps < 0 ? INT64_MAX : step + steps;
  if (write (fd, &step, sizeof step) != sizeof step)
    _exit (3);
  while (step < end) {
    if (train_one (t, &err) != SIMCLR_OK)
      _exit (3);
    step = simclr_trainer_get_step (t);
    if (write (fd, &step, sizeof step) != sizeof step)
      _exit (3);
    if (step % INTERVAL == 0) {
      char *p = simclr_ckptdir_path (dir, step);
      if (simclr_trainer_save (t, p, &err) != SIMCLR_OK
          || simclr_ckptdir_rotate (dir, KEEP, step, NULL, &err) != SIMCLR_OK)
        _exit (3);
      free (p);
    }
  }
  simclr_trainer_free (t);
  _exit (0);
}

static gboolean
has_temp_file (const gchar * dir)
{
  DIR *d = opendir (dir);
  struct dirent *e;
  gboolean found = FALSE;
  if (!d)
    return FALSE;
  while (!found && (e = readdir (d)) != NULL)
    found = strstr (e->d_name, ".tmp-") != NULL;
  closedir (d);
  return found;
}

/* Reads every step announced on @fd (non-blocking); returns the last, or
 * @last if none came. *@first receives the first announcement of this child
 * if not yet known (-1). */
static int64_t
drain (int fd, int64_t last, int64_t * first)
{
  int64_t v;
  while (read (fd, &v, sizeof v) == sizeof v) {
    if (*first < 0)
      *first = v;
    last = v;
  }
  return last;
}

static void
test_kill9 (void)
{
  gchar *dir = make_dir ();
  /* ms after start for the timed kills; 0 = kill at the next save */
  static const int delays[] = { 0, 700, 0, 1300, 0, 400, 0 };
  int64_t expect_start = 0;
  int during_save = 0;

  for (guint round = 0; round <= G_N_ELEMENTS (delays); round++) {
    int fds[2], status;
    int64_t first = -1, last = -1, newest;
    pid_t pid;
    gboolean final = round == G_N_ELEMENTS (delays);

    g_assert_cmpint (pipe (fds), ==, 0);
    pid = fork ();
    g_assert_cmpint (pid, >=, 0);
    if (pid == 0) {
      close (fds[0]);
      child_run (dir, fds[1], final ? MORE_STEPS : -1);
    }
    close (fds[1]);
    g_assert_cmpint (fcntl (fds[0], F_SETFL, O_NONBLOCK), ==, 0);

    if (final) {
      g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
      g_assert_true (WIFEXITED (status));
      g_assert_cmpint (WEXITSTATUS (status), ==, 0);
      last = drain (fds[0], last, &first);
    } else if (delays[round] == 0) {
      /* Wait for the child's start (it has removed stale temporary files
       * by then), then for a save in progress, and kill it then. */
      gint64 deadline = g_get_monotonic_time () + 60 * G_TIME_SPAN_SECOND;
      gboolean hit = FALSE;
      while (g_get_monotonic_time () < deadline) {
        last = drain (fds[0], last, &first);
        if (first >= 0 && has_temp_file (dir)) {
          hit = TRUE;
          break;
        }
        if (waitpid (pid, &status, WNOHANG) == pid)
          g_error ("round %u: child ended (status %d) before a save was "
              "caught", round, status);
        g_usleep (100);
      }
      g_assert_true (hit);
      kill (pid, SIGKILL);
      during_save++;
      g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
      last = drain (fds[0], last, &first);
    } else {
      /* The delay counts from the child's start announcement (after its
       * checkpoint is loaded). */
      gint64 deadline = g_get_monotonic_time () + 60 * G_TIME_SPAN_SECOND;
      while (first < 0 && g_get_monotonic_time () < deadline) {
        last = drain (fds[0], last, &first);
        g_usleep (1000);
      }
      g_assert_cmpint (first, >=, 0);
      g_usleep ((gulong) delays[round] * 1000);
      kill (pid, SIGKILL);
      g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
      last = drain (fds[0], last, &first);
    }
    close (fds[0]);
    if (!final)
      g_assert_true (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);

    /* The child resumed from the newest complete checkpoint. */
    g_assert_cmpint (first, ==, expect_start);

    /* The newest checkpoint loads; at most one interval was lost. */
    {
      SimclrError err = { 0 };
      char *p = simclr_ckptdir_resolve (dir, NULL, &err);
      SimclrTrainer *t;
      int64_t *steps = NULL;
      int n = 0;
      if (!p && err.status == SIMCLR_ERROR_END) {
        /* Killed during the very first save: nothing to lose but the
         * steps since the start, a new run starts anew. */
        newest = 0;
      } else {
        if (!p)
          g_error ("round %u (last step %" G_GINT64_FORMAT "): %s", round,
              last, err.message);
        t = simclr_trainer_load (p, 4, &err);
        if (!t)
          g_error ("round %u: newest checkpoint %s does not load: %s", round,
              p, err.message);
        newest = simclr_trainer_get_step (t);
        simclr_trainer_free (t);
        free (p);
      }
      g_test_message ("round %u: %s, reached step %" G_GINT64_FORMAT
          ", newest checkpoint step %" G_GINT64_FORMAT, round,
          final ? "ran to the end" : delays[round] ? "timed kill"
          : "killed during a save", last, newest);
      g_assert_cmpint (last, >=, newest);
      g_assert_cmpint (last - newest, <=, INTERVAL);
      /* Rotation: at most KEEP files (KEEP + 1 if killed between the rename
       * and the rotation). */
      g_assert_cmpint (simclr_ckptdir_list (dir, &steps, &n, &err), ==,
          SIMCLR_OK);
      free (steps);
      g_assert_cmpint (n, <=, KEEP + 1);
      if (final) {
        g_assert_cmpint (newest, ==, expect_start + MORE_STEPS);
        g_assert_cmpint (n, ==, KEEP);
        g_assert_false (has_temp_file (dir));
      }
    }
    expect_start = newest;
  }
  g_assert_cmpint (during_save, ==, 4);
  remove_tree (dir);
  g_free (dir);
}

/* ---------------------------------------------------------------------------
 * simclr_trainer_save_run: a run's save (the element's): a file or a
 * rotating folder, never a model with non-finite weights.
 */
static void
test_save_run (void)
{
  gchar *dir = make_dir ();
  gchar *file = g_build_filename (dir, "one.safetensors", NULL);
  SimclrTrainer *t = small_trainer (0.25), *back;
  SimclrError err = { 0 }, rerr = { 0 };
  char *path = NULL, *want;
  int64_t *steps = NULL;
  int n = 0, removed = -1;
  size_t np = 0;
  float *params;

  /* A file: written as simclr_trainer_save writes it; loads back. */
  g_assert_cmpint (train_one (t, &err), ==, SIMCLR_OK);
  g_assert_cmpint (simclr_trainer_save_run (t, file, 0, &path, &removed,
          &rerr, &err), ==, SIMCLR_OK);
  g_assert_cmpstr (path, ==, file);
  g_assert_cmpint (removed, ==, 0);
  g_assert_cmpstr (rerr.message, ==, "");
  free (path);
  back = simclr_trainer_load (file, 4, &err);
  g_assert_nonnull (back);
  g_assert_cmpint (simclr_trainer_get_step (back), ==, 1);
  simclr_trainer_free (back);
  g_unlink (file);

  /* A folder with keep 2: ckpt-<step> files, the newest two stay. */
  for (int i = 0; i < 4; i++) {
    g_assert_cmpint (train_one (t, &err), ==, SIMCLR_OK);
    g_assert_cmpint (simclr_trainer_save_run (t, dir, 2, &path, &removed,
            &rerr, &err), ==, SIMCLR_OK);
    want = simclr_ckptdir_path (dir, simclr_trainer_get_step (t));
    g_assert_cmpstr (path, ==, want);
    g_assert_cmpint (removed, ==, i >= 2 ? 1 : 0);
    free (want);
    free (path);
  }
  g_assert_cmpint (simclr_ckptdir_list (dir, &steps, &n, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (n, ==, 2);
  g_assert_cmpint (steps[0], ==, 5);
  g_assert_cmpint (steps[1], ==, 4);
  free (steps);

  /* Non-finite weights: SIMCLR_ERROR_NUMERIC naming the file, nothing
   * written, nothing removed. */
  g_assert_cmpint (train_one (t, &err), ==, SIMCLR_OK);
  params = simclr_model_params (simclr_trainer_get_model (t), &np);
  g_assert_cmpuint (np, >, 3);
  params[3] = NAN;
  g_assert_cmpint (simclr_trainer_save_run (t, dir, 2, &path, &removed,
          &rerr, &err), ==, SIMCLR_ERROR_NUMERIC);
  assert_message (&err, "non-finite");
  assert_message (&err, "ckpt-000000000006");
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
  free (path);
  g_assert_cmpint (simclr_ckptdir_list (dir, &steps, &n, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (n, ==, 2);
  free (steps);

  /* A folder that cannot be written: an I/O error, path still named. */
  params[3] = 0.0f;
  g_assert_cmpint (simclr_trainer_save_run (t, "/nonexistent-simclr/x",
          0, &path, NULL, NULL, &err), !=, SIMCLR_OK);
  g_assert_cmpstr (path, ==, "/nonexistent-simclr/x");
  free (path);
  g_assert_cmpint (simclr_trainer_save_run (NULL, dir, 0, NULL, NULL, NULL,
          &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);

  simclr_trainer_free (t);
  remove_tree (dir);
  g_free (file);
  g_free (dir);
}

/* simclr_ckptdir_check_writable: a folder, a file's folder, and the three
 * failures with the folder and the reason named. */
static void
test_check_writable (void)
{
  gchar *dir = make_dir ();
  gchar *file = g_build_filename (dir, "run.safetensors", NULL);
  gchar *missing = g_build_filename (dir, "nope", "run.safetensors", NULL);
  gchar *under_file = g_build_filename (dir, "plain", "x.safetensors", NULL);
  gchar *want;
  SimclrError err = { 0 };
  int is_dir = -1;

  g_assert_cmpint (simclr_ckptdir_check_writable (dir, &is_dir, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (is_dir, ==, 1);
  g_assert_cmpint (simclr_ckptdir_check_writable (file, &is_dir, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (is_dir, ==, 0);
  g_assert_cmpint (simclr_ckptdir_check_writable ("run.safetensors", NULL,
          &err), ==, SIMCLR_OK);    /* the current folder */

  g_assert_cmpint (simclr_ckptdir_check_writable (missing, &is_dir, &err),
      ==, SIMCLR_ERROR_IO);
  want = g_strdup_printf ("folder \"%s/nope\": %s", dir, g_strerror (ENOENT));
  g_assert_cmpstr (err.message, ==, want);
  g_free (want);

  /* The folder as g_path_get_dirname gives it (what the element used):
   * repeated slashes before the name collapse. */
  g_free (missing);
  missing = g_strdup_printf ("%s/nope//run.safetensors", dir);
  g_assert_cmpint (simclr_ckptdir_check_writable (missing, &is_dir, &err),
      ==, SIMCLR_ERROR_IO);
  g_assert_cmpint (is_dir, ==, 0);
  want = g_strdup_printf ("folder \"%s/nope\": %s", dir, g_strerror (ENOENT));
  g_assert_cmpstr (err.message, ==, want);
  g_free (want);
  /* A folder named with a trailing slash is the folder itself. */
  want = g_strdup_printf ("%s/", dir);
  g_assert_cmpint (simclr_ckptdir_check_writable (want, &is_dir, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (is_dir, ==, 1);
  g_free (want);

  touch (dir, "plain", "not a folder");
  g_assert_cmpint (simclr_ckptdir_check_writable (under_file, &is_dir, &err),
      ==, SIMCLR_ERROR_IO);
  want = g_strdup_printf ("folder \"%s/plain\": %s", dir,
      g_strerror (ENOTDIR));
  g_assert_cmpstr (err.message, ==, want);
  g_free (want);

  /* A folder without write permission (root ignores the bits: skip). */
  if (geteuid () != 0) {
    g_assert_cmpint (g_chmod (dir, 0500), ==, 0);
    g_assert_cmpint (simclr_ckptdir_check_writable (dir, &is_dir, &err), ==,
        SIMCLR_ERROR_IO);
    assert_message (&err, dir);
    g_chmod (dir, 0700);
  }
  g_assert_cmpint (simclr_ckptdir_check_writable ("", NULL, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  assert_message (&err, "checkpoint location");
  is_dir = -1;
  g_assert_cmpint (simclr_ckptdir_check_writable (NULL, &is_dir, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (is_dir, ==, 0);

  remove_tree (dir);
  g_free (file);
  g_free (missing);
  g_free (under_file);
  g_free (dir);
}

/* The cadence as simclrencoder computed it before it moved into the core
 * (gstsimclrencodertrain.c at dc71f53: checkpoint_due and unsaved), the
 * reference the core's must match. */
static gboolean
old_due (guint64 interval, gdouble seconds, guint64 step, gint64 now,
    gint64 last_save_us)
{
  if (interval > 0 && step % interval == 0)
    return TRUE;
  return seconds > 0 && (now - last_save_us) >= seconds * 1e6;
}

static gboolean
old_unsaved (gboolean saved, guint64 last_saved_step, guint64 first_step,
    guint64 step)
{
  if (saved)
    return last_saved_step != step;
  return step > first_step;
}

/* simclr_ckpt_cadence_*: every interval steps, every so many seconds since
 * the start or the last attempt (a failed save too), unsaved steps. */
static void
test_cadence (void)
{
  static const struct
  {
    gint64 interval;
    gdouble seconds;
  } rows[] = {
    {0, 0}, {1, 0}, {3, 0}, {0, 2.5}, {4, 1.0}, {7, 1e-6}, {0, G_MAXDOUBLE},
  };
  SimclrCkptCadence c;

  for (guint r = 0; r < G_N_ELEMENTS (rows); r++) {
    const gint64 t0 = 1000000;  /* any monotonic origin */
    gint64 last = t0;
    gboolean saved = FALSE;
    guint64 saved_step = 0;

    simclr_ckpt_cadence_init (&c, rows[r].interval, rows[r].seconds, 5, t0);
    g_assert_cmpint (c.saved_step, ==, -1);
    g_assert_false (simclr_ckpt_cadence_unsaved (&c, 5));
    /* steps 6..40, 0.3 s apart; save whenever due, the 3rd save fails */
    for (gint64 step = 6, n = 0; step <= 40; step++) {
      const gint64 now = t0 + (step - 5) * 300000;
      const gboolean want = old_due ((guint64) rows[r].interval,
          rows[r].seconds, (guint64) step, now, last);
      const gboolean got = simclr_ckpt_cadence_due (&c, step, now);
      if (got != want)
        g_error ("row %u (interval %" G_GINT64_FORMAT ", %g s) step %"
            G_GINT64_FORMAT ": due %d, the element's rule says %d", r,
            rows[r].interval, rows[r].seconds, step, got, want);
      g_assert_cmpint (simclr_ckpt_cadence_unsaved (&c, step), ==,
          old_unsaved (saved, saved_step, 5, (guint64) step));
      if (!got)
        continue;
      simclr_ckpt_cadence_tried (&c, now);
      last = now;
      if (++n == 3) {
        g_assert_true (simclr_ckpt_cadence_unsaved (&c, step));
        continue;               /* a failed write: time resets, unsaved */
      }
      simclr_ckpt_cadence_saved (&c, step);
      saved = TRUE;
      saved_step = (guint64) step;
      g_assert_false (simclr_ckpt_cadence_unsaved (&c, step));
      g_assert_true (simclr_ckpt_cadence_unsaved (&c, step + 1));
    }
  }

  /* Interval 3: steps 3 and 6, not 4; no time cadence. */
  simclr_ckpt_cadence_init (&c, 3, 0, 0, 0);
  g_assert_true (simclr_ckpt_cadence_due (&c, 3, 0));
  g_assert_false (simclr_ckpt_cadence_due (&c, 4, G_MAXINT64 / 2));
  g_assert_true (simclr_ckpt_cadence_due (&c, 6, 0));
  /* 2 s: due at 2 s after the start, then 2 s after the attempt. */
  simclr_ckpt_cadence_init (&c, 0, 2.0, 0, 100);
  g_assert_false (simclr_ckpt_cadence_due (&c, 1, 100 + 1999999));
  g_assert_true (simclr_ckpt_cadence_due (&c, 1, 100 + 2000000));
  simclr_ckpt_cadence_tried (&c, 100 + 2000000);
  g_assert_false (simclr_ckpt_cadence_due (&c, 2, 100 + 3000000));
  g_assert_true (simclr_ckpt_cadence_due (&c, 2, 100 + 4000000));
  /* Negative or NaN settings count as none. */
  simclr_ckpt_cadence_init (&c, -4, -1.0, 0, 0);
  g_assert_cmpint (c.interval, ==, 0);
  g_assert_cmpfloat (c.seconds, ==, 0);
  g_assert_false (simclr_ckpt_cadence_due (&c, 8, G_MAXINT64 / 2));
  simclr_ckpt_cadence_init (&c, 0, NAN, 0, 0);
  g_assert_cmpfloat (c.seconds, ==, 0);
  g_assert_false (simclr_ckpt_cadence_due (&c, 8, G_MAXINT64 / 2));
  /* A resumed run at step 100 with nothing new to save. */
  simclr_ckpt_cadence_init (&c, 0, 0, 0, 0);
  c.first_step = 100;
  g_assert_false (simclr_ckpt_cadence_unsaved (&c, 100));
  g_assert_true (simclr_ckpt_cadence_unsaved (&c, 101));
  /* NULL is no cadence. */
  g_assert_false (simclr_ckpt_cadence_due (NULL, 3, 0));
  g_assert_false (simclr_ckpt_cadence_unsaved (NULL, 3));
  simclr_ckpt_cadence_init (NULL, 1, 1, 0, 0);
  simclr_ckpt_cadence_tried (NULL, 0);
  simclr_ckpt_cadence_saved (NULL, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/ckptdir/path", test_path);
  g_test_add_func ("/ckptdir/list", test_list);
  g_test_add_func ("/ckptdir/rotate", test_rotate);
  g_test_add_func ("/ckptdir/resolve", test_resolve);
  g_test_add_func ("/ckptdir/kill-9", test_kill9);
  g_test_add_func ("/ckptdir/save-run", test_save_run);
  g_test_add_func ("/ckptdir/check-writable", test_check_writable);
  g_test_add_func ("/ckptdir/cadence", test_cadence);
  return g_test_run ();
}
