/* ckptdir.c: rotating checkpoints in a folder, and what `resume-from` names
 * (see include/simclr/ckptdir.h).
 *
 * Not here: writing a checkpoint (the safetensors writer does it atomically)
 * or deciding when (the caller's cadence).
 */
#include "simclr/ckptdir.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "simclr/checkpoint.h"

#define STEP_DIGITS 12

char *
simclr_ckptdir_path (const char *dir, int64_t step)
{
  size_t n;
  char *p;

  if (!dir || step < 0)
    return NULL;
  n = strlen (dir) + sizeof SIMCLR_CKPTDIR_PREFIX + sizeof SIMCLR_CKPTDIR_SUFFIX
      + 24;
  p = malloc (n);
  if (!p)
    return NULL;
  snprintf (p, n, "%s%s" SIMCLR_CKPTDIR_PREFIX "%0*" PRId64
      SIMCLR_CKPTDIR_SUFFIX, dir,
      dir[0] && dir[strlen (dir) - 1] == '/' ? "" : "/", STEP_DIGITS, step);
  return p;
}

/* The step of a checkpoint name "ckpt-<digits>.safetensors", -1 otherwise. */
static int64_t
parse_name (const char *name)
{
  const size_t lp = strlen (SIMCLR_CKPTDIR_PREFIX),
      ls = strlen (SIMCLR_CKPTDIR_SUFFIX);
  size_t n = strlen (name);
  int64_t step = 0;

  if (n <= lp + ls || strncmp (name, SIMCLR_CKPTDIR_PREFIX, lp) != 0
      || strcmp (name + n - ls, SIMCLR_CKPTDIR_SUFFIX) != 0)
    return -1;
  for (size_t i = lp; i < n - ls; i++) {
    if (name[i] < '0' || name[i] > '9' || step > (INT64_MAX - 9) / 10)
      return -1;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

/* A temporary file of the writer for a checkpoint name:
 * "ckpt-<digits>.safetensors.tmp-XXXXXX". */
static int
is_temp_name (const char *name)
{
  const char *t = strstr (name, SIMCLR_CKPTDIR_SUFFIX ".tmp-");
  char base[256];
  size_t n;

  if (!t)
    return 0;
  n = (size_t) (t - name) + strlen (SIMCLR_CKPTDIR_SUFFIX);
  if (n >= sizeof base)
    return 0;
  memcpy (base, name, n);
  base[n] = '\0';
  return parse_name (base) >= 0;
}

static int
cmp_desc (const void *a, const void *b)
{
  int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
  return x < y ? 1 : x > y ? -1 : 0;
}

SimclrStatus
simclr_ckptdir_list (const char *dir, int64_t **steps, int *n,
    SimclrError *err)
{
  DIR *d;
  struct dirent *e;
  int64_t *v = NULL;
  int count = 0, cap = 0;

  if (!dir || !steps || !n)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "checkpoint folder: NULL argument");
  *steps = NULL;
  *n = 0;
  d = opendir (dir);
  if (!d)
    return simclr_error_set (err, SIMCLR_ERROR_IO,
        "checkpoint folder %s: cannot read it: %s", dir, strerror (errno));
  while ((e = readdir (d)) != NULL) {
    int64_t s = parse_name (e->d_name);
    if (s < 0)
      continue;
    if (count == cap) {
      int64_t *w = realloc (v, (size_t) (cap ? 2 * cap : 16) * sizeof *v);
      if (!w) {
        free (v);
        closedir (d);
        return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
            "checkpoint folder %s: out of memory", dir);
      }
      v = w;
      cap = cap ? 2 * cap : 16;
    }
    v[count++] = s;
  }
  closedir (d);
  if (count > 1)
    qsort (v, (size_t) count, sizeof *v, cmp_desc);
  *steps = v;
  *n = count;
  return SIMCLR_OK;
}

static char *
join (const char *dir, const char *name)
{
  size_t n = strlen (dir) + strlen (name) + 2;
  char *p = malloc (n);
  if (p)
    snprintf (p, n, "%s/%s", dir, name);
  return p;
}

SimclrStatus
simclr_ckptdir_rotate (const char *dir, int keep, int64_t protect_step,
    int *removed, SimclrError *err)
{
  int64_t *steps = NULL;
  int n = 0, gone = 0;
  SimclrStatus status = SIMCLR_OK;
  DIR *d;
  struct dirent *e;

  if (removed)
    *removed = 0;
  if (keep < 1)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "checkpoint folder %s: keep %d must be >= 1", dir ? dir : "(null)",
        keep);
  status = simclr_ckptdir_list (dir, &steps, &n, err);
  if (status != SIMCLR_OK)
    return status;
  for (int i = keep; i < n; i++) {
    char *p;
    if (steps[i] == protect_step)
      continue;
    p = simclr_ckptdir_path (dir, steps[i]);
    if (!p)
      continue;
    if (unlink (p) == 0 || errno == ENOENT)
      gone++;
    else if (status == SIMCLR_OK)
      status = simclr_error_set (err, SIMCLR_ERROR_IO,
          "%s: cannot remove an old checkpoint: %s", p, strerror (errno));
    free (p);
  }
  free (steps);

  /* Temporary files of a writer killed mid-save (kill -9, power loss). */
  d = opendir (dir);
  if (d) {
    while ((e = readdir (d)) != NULL) {
      char *p;
      if (!is_temp_name (e->d_name))
        continue;
      p = join (dir, e->d_name);
      if (!p)
        continue;
      if (unlink (p) == 0 || errno == ENOENT)
        gone++;
      else if (status == SIMCLR_OK)
        status = simclr_error_set (err, SIMCLR_ERROR_IO,
            "%s: cannot remove a stale temporary file: %s", p,
            strerror (errno));
      free (p);
    }
    closedir (d);
  }
  if (removed)
    *removed = gone;
  return status;
}

/* Opens @path as a checkpoint: 0 and its step on success, else the status
 * with the reason in @why. */
static SimclrStatus
probe (const char *path, int64_t *step, SimclrError *why)
{
  SimclrSafetensors *st = simclr_safetensors_open (path, why);
  const char *s;
  char *end;

  if (!st)
    return why ? why->status : SIMCLR_ERROR_FORMAT;
  s = simclr_safetensors_metadata (st, "step");
  *step = -1;
  if (s) {
    long long v;
    errno = 0;
    v = strtoll (s, &end, 10);
    if (end != s && *end == '\0' && errno == 0 && v >= 0)
      *step = v;
  }
  simclr_safetensors_free (st);
  return SIMCLR_OK;
}

static void
note_skipped (SimclrError *skipped, const char *path, const SimclrError *why)
{
  size_t used;
  if (!skipped)
    return;
  used = strlen (skipped->message);
  if (used + 8 >= sizeof skipped->message)
    return;
  /* Truncation is fine: the message is for a human. */
  if (snprintf (skipped->message + used, sizeof skipped->message - used,
          "%s%s does not open (%s)", used ? "; " : "", path,
          why->message) < 0)
    return;
  skipped->status = why->status;
}

static char *
resolve_dir (const char *dir, SimclrError *skipped, SimclrError *err)
{
  int64_t *steps = NULL;
  int n = 0;
  SimclrError why = { 0 }, first = { 0 };
  char *first_path = NULL;

  if (simclr_ckptdir_list (dir, &steps, &n, err) != SIMCLR_OK)
    return NULL;
  if (n == 0) {
    free (steps);
    simclr_error_set (err, SIMCLR_ERROR_END, "checkpoint folder %s holds no "
        "checkpoint (" SIMCLR_CKPTDIR_PREFIX "<step>" SIMCLR_CKPTDIR_SUFFIX
        ")", dir);
    return NULL;
  }
  for (int i = 0; i < n; i++) {
    char *p = simclr_ckptdir_path (dir, steps[i]);
    int64_t step;
    if (!p)
      break;
    simclr_error_clear (&why);
    if (probe (p, &step, &why) == SIMCLR_OK) {
      free (steps);
      free (first_path);
      return p;
    }
    note_skipped (skipped, p, &why);
    if (!first_path) {
      first_path = p;
      first = why;
    } else {
      free (p);
    }
  }
  free (steps);
  simclr_error_set (err, SIMCLR_ERROR_FORMAT, "checkpoint folder %s: none of "
      "its %d checkpoints opens; the newest, %s: %s", dir, n,
      first_path ? first_path : "?", first.message);
  free (first_path);
  return NULL;
}

static char *
resolve_glob (const char *pattern, SimclrError *skipped, SimclrError *err)
{
  glob_t g;
  int rc = glob (pattern, 0, NULL, &g);
  char *best = NULL;
  int64_t best_step = -1;
  size_t opened = 0;
  SimclrError why = { 0 }, last = { 0 };

  if (rc == GLOB_NOMATCH) {
    simclr_error_set (err, SIMCLR_ERROR_END, "no file matches the checkpoint "
        "pattern %s", pattern);
    return NULL;
  }
  if (rc != 0) {
    simclr_error_set (err, SIMCLR_ERROR_IO, "checkpoint pattern %s: glob "
        "failed (%s)", pattern, rc == GLOB_NOSPACE ? "out of memory"
        : "read error");
    return NULL;
  }
  for (size_t i = 0; i < g.gl_pathc; i++) {
    int64_t step;
    simclr_error_clear (&why);
    if (probe (g.gl_pathv[i], &step, &why) != SIMCLR_OK) {
      note_skipped (skipped, g.gl_pathv[i], &why);
      last = why;
      continue;
    }
    opened++;
    if (!best || step > best_step) {
      free (best);
      best = strdup (g.gl_pathv[i]);
      best_step = step;
    }
  }
  if (!best && opened == 0)
    simclr_error_set (err, SIMCLR_ERROR_FORMAT, "checkpoint pattern %s: none "
        "of the %zu matching files opens; the last: %s", pattern, g.gl_pathc,
        last.message);
  else if (!best)
    simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory");
  globfree (&g);
  return best;
}

char *
simclr_ckptdir_resolve (const char *spec, SimclrError *skipped,
    SimclrError *err)
{
  struct stat sb;
  char *p;

  simclr_error_clear (skipped);
  if (!spec || !spec[0]) {
    simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "resume: empty checkpoint name");
    return NULL;
  }
  if (stat (spec, &sb) == 0) {
    if (S_ISDIR (sb.st_mode))
      return resolve_dir (spec, skipped, err);
    p = strdup (spec);
    if (!p)
      simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory");
    return p;
  }
  if (strpbrk (spec, "*?["))
    return resolve_glob (spec, skipped, err);
  simclr_error_set (err, SIMCLR_ERROR_IO, "%s: %s", spec, strerror (errno));
  return NULL;
}

SimclrStatus
simclr_ckptdir_check_writable (const char *location, int *is_dir,
    SimclrError *err)
{
  struct stat sb;
  const char *base;
  char *dir;
  size_t len;
  int errsv = 0;

  if (is_dir)
    *is_dir = 0;
  if (!location || !location[0])
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "checkpoint location: NULL or empty");
  if (stat (location, &sb) == 0 && S_ISDIR (sb.st_mode)) {
    if (is_dir)
      *is_dir = 1;
    len = strlen (location);
  } else {
    /* the parent folder, as dirname(3) without touching @location */
    base = strrchr (location, '/');
    if (!base) {
      location = ".";
      len = 1;
    } else {
      while (base > location && *base == '/')
        base--;
      len = (size_t) (base - location) + 1;
    }
  }
  dir = strndup (location, len);
  if (!dir)
    return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "out of memory");
  if (access (dir, F_OK) != 0)
    errsv = ENOENT;
  else if (stat (dir, &sb) != 0 || !S_ISDIR (sb.st_mode))
    errsv = ENOTDIR;
  else if (access (dir, W_OK | X_OK) != 0)
    errsv = errno;
  if (errsv) {
    simclr_error_set (err, SIMCLR_ERROR_IO, "folder \"%s\": %s", dir,
        strerror (errsv));
    free (dir);
    return SIMCLR_ERROR_IO;
  }
  free (dir);
  return SIMCLR_OK;
}

/* ---------------------------------------------------------------------------
 * The cadence of a run's saves.
 */
void
simclr_ckpt_cadence_init (SimclrCkptCadence *c, int64_t interval,
    double seconds, int64_t first_step, int64_t now_us)
{
  if (!c)
    return;
  c->interval = interval > 0 ? interval : 0;
  c->seconds = seconds > 0 ? seconds : 0;       /* NaN compares false */
  c->first_step = first_step;
  c->saved_step = -1;
  c->last_try_us = now_us;
}

int
simclr_ckpt_cadence_due (const SimclrCkptCadence *c, int64_t step,
    int64_t now_us)
{
  if (!c)
    return 0;
  if (c->interval > 0 && step % c->interval == 0)
    return 1;
  /* as a double, as the element compared it: seconds may be huge */
  return c->seconds > 0 && (double) (now_us - c->last_try_us)
      >= c->seconds * 1e6;
}

void
simclr_ckpt_cadence_tried (SimclrCkptCadence *c, int64_t now_us)
{
  if (c)
    c->last_try_us = now_us;
}

void
simclr_ckpt_cadence_saved (SimclrCkptCadence *c, int64_t step)
{
  if (c)
    c->saved_step = step;
}

int
simclr_ckpt_cadence_unsaved (const SimclrCkptCadence *c, int64_t step)
{
  if (!c)
    return 0;
  if (c->saved_step >= 0)
    return c->saved_step != step;
  return step > c->first_step;
}
