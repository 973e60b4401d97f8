/* gstsimclrencodertrain.c: simclrencoder's train mode. Views go to the
 * core's batcher as they come; a complete batch is one training step, read
 * top to bottom in gst_simclr_encoder_train_step: assemble, forward,
 * exchange the gradient with ntxentsink, apply, checkpoint. The arithmetic
 * (batch sizes of the ranks, the schedule, the kNN of the monitor, the
 * loss) is the core's; this file translates properties, buffers and
 * messages. See gstsimclrencoder.c's SECTION comment for the behaviour.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstsimclrencoderpriv.h"
#include "gstsimclr.h"
#include "gstsimclrfields.h"
#include "gstsimclrmpi.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "simclr/ckptdir.h"
#include "simclr/features.h"

#define GST_CAT_DEFAULT gst_simclr_encoder_debug

/* Declared by OpenBLAS (not in cblas.h). */
extern int openblas_get_num_threads (void);

/* Posts a configuration error of the core, naming the property at fault
 * (SimclrError.field, see gstsimclrfields.h). */
static void
post_settings_error (GstSimclrEncoder * self, const SimclrError * err)
{
  gchar *text = gst_simclr_settings_error_text ("simclrencoder", err);
  GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
      ("Invalid encoder settings: %s", text), ("%s", err->message));
  g_free (text);
}

/* The trainer configuration the properties describe, for @size x @size
 * frames of @channels channels: a translation, field by field. */
static SimclrStatus
gst_simclr_encoder_trainer_config (GstSimclrEncoder * self, gint size,
    gint channels, SimclrTrainerConfig * cfg, SimclrError * err)
{
  const Settings *s = &self->run;

  simclr_trainer_config_default (cfg);
  cfg->model.arch = s->arch;
  cfg->model.width = s->width;
  cfg->model.in_channels = channels;
  if (s->stem == GST_SIMCLR_ENCODER_STEM_AUTO)
    cfg->model.stem = size <= 64 ? SIMCLR_STEM_CIFAR : SIMCLR_STEM_IMAGENET;
  else if (s->stem == GST_SIMCLR_ENCODER_STEM_CIFAR)
    cfg->model.stem = SIMCLR_STEM_CIFAR;
  else if (s->stem == GST_SIMCLR_ENCODER_STEM_STRIDE2)
    cfg->model.stem = SIMCLR_STEM_STRIDE2;
  else
    cfg->model.stem = SIMCLR_STEM_IMAGENET;
  cfg->model.image_size = size;
  cfg->model.proj_layers = s->proj_layers;
  cfg->model.proj_hidden = s->proj_hidden;
  cfg->model.proj_dim = s->proj_dim;
  cfg->model.threads = s->threads > 0 ? s->threads :
      openblas_get_num_threads ();
  cfg->optim.kind = s->optimizer;
  cfg->optim.base_lr = s->learning_rate;
  cfg->optim.lr_scaling = s->lr_scaling;
  cfg->optim.momentum = s->momentum;
  cfg->optim.weight_decay = s->weight_decay;
  cfg->optim.warmup_steps = (int64_t) s->warmup_steps;
  cfg->optim.total_steps = (int64_t) s->total_steps;
  cfg->optim.schedule = s->lr_schedule;
  cfg->optim.restart_period = (int64_t) s->restart_period;
  cfg->seed = s->seed;
  /* Multi-crop: the small views follow the views full-size ones */
  cfg->views = s->views + self->small_views;
  cfg->small_views = self->small_views;
  cfg->small_size = self->small_views > 0 ? self->small_size : 0;
  /* batch-size is per rank; the trainer makes it the global batch */
  return simclr_trainer_config_set_batch (cfg, s->batch_size,
      gst_simclr_mpi_size (), err);
}

/* Data-parallel under mpirun (a no-op otherwise): the trainer joins the
 * other ranks' replicas through the MPI hooks (gstsimclrmpi.h). */
static gboolean
gst_simclr_encoder_join (GstSimclrEncoder * self)
{
  SimclrComm comm;
  SimclrError err = { 0 };

  gst_simclr_mpi_comm (GST_SIMCLR_MPI_ENCODER, &comm);
  if (simclr_trainer_join (self->trainer, &comm, TRUE, &err) == SIMCLR_OK)
    return TRUE;
  GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS, ("%s", err.message), (NULL));
  return FALSE;
}

/* What resume-from names, as one file (ckptdir.h: a file, a folder's newest
 * complete checkpoint, a pattern's largest step). NULL with *@anew TRUE when
 * a folder or pattern holds no checkpoint yet (a first run), NULL after an
 * error otherwise. Called again on every start, so resume-from keeps naming
 * the folder, not the file it resolved to. */
static gchar *
gst_simclr_encoder_resolve_resume (GstSimclrEncoder * self, gboolean * anew)
{
  const gchar *spec = self->run.resume_from;
  SimclrError err = { 0 }, skipped = { 0 };
  char *path;
  gchar *ret;

  *anew = FALSE;
  path = simclr_ckptdir_resolve (spec, &skipped, &err);
  if (skipped.message[0])
    GST_ELEMENT_WARNING (self, RESOURCE, READ,
        ("resume-from \"%s\": skipped checkpoints that do not open: %s",
            spec, skipped.message), (NULL));
  if (path == NULL && err.status == SIMCLR_ERROR_END) {
    *anew = TRUE;
    GST_ELEMENT_WARNING (self, RESOURCE, NOT_FOUND,
        ("resume-from \"%s\" holds no checkpoint yet: starting a new run.",
            spec), ("%s", err.message));
    return NULL;
  }
  if (path == NULL) {
    gst_simclr_encoder_post_load_error (self, "resume-from", spec, &err);
    return NULL;
  }
  if (g_strcmp0 (path, spec) != 0)
    GST_INFO_OBJECT (self, "resume-from %s: resuming %s", spec, path);
  ret = g_strdup (path);
  free (path);
  return ret;
}

/* The trainer of @s->resume_from, split over the MPI ranks. */
static gboolean
gst_simclr_encoder_resume (GstSimclrEncoder * self)
{
  const Settings *s = &self->run;
  SimclrError err = { 0 };
  gboolean anew;
  gchar *file = gst_simclr_encoder_resolve_resume (self, &anew);

  if (file == NULL)
    return anew;                /* a new trainer at caps, or the error */
  /* From here on resume_from is the file the folder or pattern named. */
  g_free (self->run.resume_from);
  self->run.resume_from = file;
  s = &self->run;
  self->trainer = simclr_trainer_load_replica (s->resume_from,
      gst_simclr_mpi_size (), &err);
  if (self->trainer == NULL && g_strcmp0 (err.field, "optim.batch_size") == 0) {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS, ("%s.", err.message), (NULL));
    return FALSE;
  }
  if (self->trainer == NULL) {
    gst_simclr_encoder_post_load_error (self, "resume-from", s->resume_from,
        &err);
    return FALSE;
  }
  self->ckpt.first_step = simclr_trainer_get_step (self->trainer);
  if (simclr_trainer_local_batch (self->trainer) != s->batch_size)
    GST_INFO_OBJECT (self, "%s was trained with batch-size %d: using it "
        "instead of %d", s->resume_from,
        simclr_trainer_local_batch (self->trainer), s->batch_size);
  if (!gst_simclr_encoder_join (self))
    return FALSE;
  self->model_origin = s->resume_from;
  GST_INFO_OBJECT (self, "resuming from %s at step %" G_GINT64_FORMAT,
      s->resume_from, simclr_trainer_get_step (self->trainer));
  gst_simclr_encoder_update_progress (self);
  gst_simclr_encoder_publish_input (self,
      simclr_trainer_get_model (self->trainer));
  return TRUE;
}

static gboolean gst_simclr_encoder_checkpoint_check (GstSimclrEncoder * self);
static void gst_simclr_encoder_profile_reset (GstSimclrEncoder * self);

/* Train mode's part of start: MPI (never in plugin_init), the monitor's
 * data set, the settings (the core checks what the pspec ranges cannot),
 * the trainer to resume. */
gboolean
gst_simclr_encoder_train_start (GstSimclrEncoder * self)
{
  const Settings *s = &self->run;
  SimclrError err = { 0 };
  SimclrTrainerConfig cfg;

  gst_simclr_encoder_profile_reset (self);
  {
    /* Data-parallel under mpirun: initialise MPI here, never in plugin_init */
    GError *mpi_error = NULL;
    gst_simclr_mpi_start (GST_ELEMENT (self), &mpi_error);
    if (mpi_error) {
      GST_ELEMENT_ERROR (self, LIBRARY, INIT, ("%s", mpi_error->message),
          (NULL));
      g_clear_error (&mpi_error);
      return FALSE;
    }
  }

  if (gst_simclr_encoder_str_set (s->monitor_location)
      && gst_simclr_mpi_rank () == 0) {
    self->monitor_train = simclr_dataset_open (s->monitor_location, "train",
        SIMCLR_DATASET_AUTO, &err);
    if (self->monitor_train)
      self->monitor_test = simclr_dataset_open (s->monitor_location, "test",
          SIMCLR_DATASET_AUTO, &err);
    if (self->monitor_test == NULL) {
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
          ("Could not open the labelled data set \"%s\" of monitor-location: "
              "%s", s->monitor_location, err.message), (NULL));
      return FALSE;
    }
  }

  /* The caps fix the input later; any valid size checks the rest now. */
  if (gst_simclr_encoder_trainer_config (self, 224, 3, &cfg, &err)
      != SIMCLR_OK
      || simclr_trainer_config_validate (&cfg, &err) != SIMCLR_OK) {
    post_settings_error (self, &err);
    return FALSE;
  }
  if (!gst_simclr_encoder_checkpoint_check (self))
    return FALSE;
  if (gst_simclr_encoder_str_set (s->resume_from))
    return gst_simclr_encoder_resume (self);
  return TRUE;
}

/* The run's checkpoint cadence starts; checks that checkpoints can be
 * written where checkpoint-location says, for a folder (rotation) or in
 * replay mode, so a long run does not find out at its first save. Rank 0
 * alone writes under MPI. */
static gboolean
gst_simclr_encoder_checkpoint_check (GstSimclrEncoder * self)
{
  const gchar *loc = self->run.checkpoint_location;
  SimclrError err = { 0 };
  SimclrStatus st;
  int is_dir = 0;

  simclr_ckpt_cadence_init (&self->ckpt,
      (int64_t) MIN (self->run.checkpoint_interval, G_MAXINT64),
      self->run.checkpoint_seconds, 0, g_get_monotonic_time ());
  self->ckpt_rotate = FALSE;
  if (!gst_simclr_encoder_str_set (loc) || gst_simclr_mpi_rank () != 0)
    return TRUE;
  st = simclr_ckptdir_check_writable (loc, &is_dir, &err);
  self->ckpt_rotate = is_dir;
  /* A file in the in-order mode: found out at its first save, as it
   * always was. */
  if (st == SIMCLR_OK || (!is_dir && !gst_simclr_encoder_live_enabled (self)))
    return TRUE;
  GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
      ("Cannot write checkpoints to \"%s\": %s.", loc, err.message),
      ("checkpoint-location %s", loc));
  return FALSE;
}

/* Creates a new trainer from the properties for @size x @size frames of
 * @channels channels. */
gboolean
gst_simclr_encoder_train_new (GstSimclrEncoder * self, gint size,
    gint channels)
{
  SimclrTrainerConfig cfg;
  SimclrError err = { 0 };

  if (gst_simclr_encoder_trainer_config (self, size, channels, &cfg, &err)
      == SIMCLR_OK)
    self->trainer = simclr_trainer_new (&cfg, &err);
  if (self->trainer == NULL && err.field
      && g_str_has_prefix (err.field, "trainer.small_")) {
    /* The caps' multi-crop fields come from simclraugment's properties. */
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("Cannot train on %d small views of %d pixels with %dx%d frames "
            "(simclraugment small-views, small-size): %s", self->small_views,
            self->small_size, size, size, err.message), (NULL));
    return FALSE;
  }
  if (self->trainer == NULL) {
    post_settings_error (self, &err);
    return FALSE;
  }
  self->ckpt.first_step = 0;
  if (!gst_simclr_encoder_join (self))
    return FALSE;
  GST_INFO_OBJECT (self, "new %s width %g %s stem, %dx%dx%d, N %d",
      simclr_arch_to_string (cfg.model.arch), cfg.model.width,
      simclr_stem_to_string (cfg.model.stem), size, size, channels,
      simclr_trainer_local_batch (self->trainer));
  gst_simclr_encoder_update_progress (self);
  gst_simclr_encoder_publish_input (self,
      simclr_trainer_get_model (self->trainer));
  return TRUE;
}

/* The batcher for the trainer's batch, once the caps are known. */
gboolean
gst_simclr_encoder_train_setup (GstSimclrEncoder * self)
{
  SimclrError err = { 0 };

  const SimclrDataset *mon = self->monitor_train;
  const SimclrTrainerConfig *tc = simclr_trainer_get_config (self->trainer);

  if (mon && (simclr_dataset_width (mon) != self->size
          || simclr_dataset_height (mon) != self->size
          || simclr_dataset_channels (mon) != self->channels))
    goto monitor_mismatch;
  /* The caps and the trainer (a resumed one: its checkpoint) must agree
   * on multi-crop. */
  if (tc->small_views != self->small_views || (tc->small_views > 0
          && tc->small_size != self->small_size))
    goto small_mismatch;
  if (tc->small_views > 0 && gst_simclr_encoder_live_enabled (self))
    goto small_replay;
  /* Replay mode pairs the views of one sample at a time; the buffer makes
   * the batches. */
  self->batcher = simclr_batcher_new_mixed
      (gst_simclr_encoder_live_enabled (self) ? 1 :
      simclr_trainer_local_batch (self->trainer),
      simclr_trainer_views (self->trainer), self->size, tc->small_views,
      tc->small_size, self->channels, &err);
  if (!self->batcher)
    goto no_batcher;
  if (gst_simclr_encoder_live_enabled (self))
    return gst_simclr_encoder_live_setup (self);
  return TRUE;

  /* ERRORS */
small_mismatch:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("The input has %d small views of %d pixels per sample "
            "(simclraugment small-views, small-size), but the model of "
            "\"%s\" was trained with %d of %d.", self->small_views,
            self->small_size, self->model_origin ? self->model_origin : "",
            tc->small_views, tc->small_size), (NULL));
    return FALSE;
  }
small_replay:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("Replay mode (replay-size > 0) does not take small views: set "
            "simclraugment small-views=0, or replay-size=0."), (NULL));
    return FALSE;
  }
monitor_mismatch:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("monitor-location \"%s\" has %dx%d images of %d channels, but the "
            "encoder trains on %dx%d frames of %d.", self->run.monitor_location,
            simclr_dataset_width (self->monitor_train),
            simclr_dataset_height (self->monitor_train),
            simclr_dataset_channels (self->monitor_train), self->size,
            self->size, self->channels), (NULL));
    return FALSE;
  }
no_batcher:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, INIT, (NULL), ("%s", err.message));
    return FALSE;
  }
}

/* Everything train mode allocated (state changes only). */
void
gst_simclr_encoder_train_free (GstSimclrEncoder * self)
{
  gst_simclr_encoder_live_free (self);
  g_clear_pointer (&self->batcher, simclr_batcher_free);
  g_clear_pointer (&self->trainer, simclr_trainer_free);
  g_clear_pointer (&self->monitor_train, simclr_dataset_free);
  g_clear_pointer (&self->monitor_test, simclr_dataset_free);
  self->monitor_epoch = G_MAXUINT64;
  simclr_ckpt_cadence_init (&self->ckpt, 0, 0, 0, 0);
  self->warned_horizon = FALSE;
  self->warned_unpaired = FALSE;
  self->warned_view = FALSE;
  gst_simclr_encoder_profile_reset (self);
}

static gboolean
all_finite (const gfloat * x, gsize n)
{
  gsize i;
  for (i = 0; i < n; i++)
    if (!isfinite (x[i]))
      return FALSE;
  return TRUE;
}

/* Writes the trainer checkpoint (atomic in the core) and posts
 * SIMCLR_CHECKPOINT_MESSAGE. A model with non-finite weights is never
 * written, so the last good file stays. checkpoint-location a folder: the
 * file is FOLDER/ckpt-<step>.safetensors, and after the save the folder
 * keeps the newest checkpoint-keep files. @warn_only: a failed write is a
 * warning (a long live run goes on and tries again at the next save; what
 * was saved stays), else an error. */
static gboolean
gst_simclr_encoder_save_full (GstSimclrEncoder * self, gboolean warn_only)
{
  const gchar *loc = self->run.checkpoint_location;
  SimclrError err = { 0 }, rerr = { 0 };
  char *path = NULL;
  int removed = 0;
  guint64 step;
  SimclrStatus st;

  if (!gst_simclr_encoder_str_set (loc) || self->trainer == NULL)
    return TRUE;
  if (gst_simclr_mpi_rank () != 0)
    return TRUE;                /* MPI: replicas are identical; rank 0 writes */
  step = (guint64) simclr_trainer_get_step (self->trainer);
  simclr_ckpt_cadence_tried (&self->ckpt, g_get_monotonic_time ());
  st = simclr_trainer_save_run (self->trainer, loc, self->ckpt_rotate ?
      (int) self->run.checkpoint_keep : 0, &path, &removed, &rerr, &err);
  if (st == SIMCLR_ERROR_NUMERIC)
    goto not_finite;
  if (st != SIMCLR_OK)
    goto write_failed;
  simclr_ckpt_cadence_saved (&self->ckpt, (int64_t) step);
  GST_INFO_OBJECT (self, "wrote %s at step %" G_GUINT64_FORMAT, path, step);
  if (rerr.message[0])
    GST_ELEMENT_WARNING (self, RESOURCE, WRITE,
        ("Could not remove an old checkpoint in \"%s\": %s", loc,
            rerr.message), (NULL));
  else if (removed > 0)
    GST_DEBUG_OBJECT (self, "rotation removed %d file(s) in %s", removed, loc);
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self),
          gst_structure_new (SIMCLR_CHECKPOINT_MESSAGE,
              "step", G_TYPE_UINT64, step,
              "location", G_TYPE_STRING, path,
              "samples-seen", G_TYPE_UINT64,
              (guint64) simclr_trainer_samples_seen (self->trainer),
              "rank-samples-seen", G_TYPE_UINT64,
              (guint64) simclr_trainer_local_samples_seen (self->trainer),
              NULL)));
  free (path);
  return TRUE;

  /* ERRORS */
not_finite:
  {
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("The model has non-finite weights at step %" G_GUINT64_FORMAT
            ": not writing checkpoint \"%s\" (the previous one stays).", step,
            path), (NULL));
    free (path);
    return FALSE;
  }
write_failed:
  {
    if (warn_only) {
      GST_ELEMENT_WARNING (self, RESOURCE, WRITE,
          ("Could not write checkpoint \"%s\" at step %" G_GUINT64_FORMAT
              ": %s. Training goes on; the checkpoints saved before stay "
              "and the next save tries again.", path, step, err.message),
          ("%s", err.message));
      free (path);
      return TRUE;
    }
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("Could not write checkpoint \"%s\": %s", path, err.message),
        ("%s", err.message));
    free (path);
    return FALSE;
  }
}

gboolean
gst_simclr_encoder_save (GstSimclrEncoder * self)
{
  return gst_simclr_encoder_save_full (self, FALSE);
}

/* TRUE if the trainer took steps that no checkpoint holds yet. */
gboolean
gst_simclr_encoder_unsaved (GstSimclrEncoder * self)
{
  return self->trainer && simclr_ckpt_cadence_unsaved (&self->ckpt,
      simclr_trainer_get_step (self->trainer));
}

/* kNN accuracy of the frozen encoder on the monitor set, posted as
 * "simclr-monitor" (the core's simclr_knn_evaluate: eval-mode forwards
 * only, the model's bytes checked unchanged, so training continues exactly
 * as without). */
static gboolean
gst_simclr_encoder_monitor (GstSimclrEncoder * self, guint64 epoch)
{
  SimclrKnnEvalConfig cfg;
  SimclrKnnEvalResult res;
  SimclrError err = { 0 };
  gint64 t0 = g_get_monotonic_time ();

  simclr_knn_eval_config_default (&cfg);
  cfg.train_limit = cfg.test_limit = self->run.monitor_samples;
  if (simclr_knn_evaluate (simclr_trainer_get_model (self->trainer),
          self->monitor_train, self->monitor_test, &cfg, &res, NULL, NULL,
          &err) != SIMCLR_OK) {
    GST_ELEMENT_ERROR (self, LIBRARY, FAILED,
        ("kNN monitor on \"%s\" failed after epoch %" G_GUINT64_FORMAT ": %s",
            self->run.monitor_location, epoch, err.message), (NULL));
    return FALSE;
  }
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self),
          gst_structure_new ("simclr-monitor",
              "step", G_TYPE_UINT64,
              (guint64) simclr_trainer_get_step (self->trainer),
              "epoch", G_TYPE_UINT64, epoch,
              "knn-top1", G_TYPE_DOUBLE, res.top1,
              "knn-top5", G_TYPE_DOUBLE, res.top5,
              "samples", G_TYPE_INT, (gint) res.n_test,
              "seconds", G_TYPE_DOUBLE,
              (g_get_monotonic_time () - t0) / 1e6, NULL)));
  return TRUE;
}


/* The step profile (GstSimclrStepProfile): clocks, phase marks, report. */
/* Resets the profile; enabled when the debug category logs INFO. */
static void
gst_simclr_encoder_profile_reset (GstSimclrEncoder * self)
{
  memset (&self->profile, 0, sizeof self->profile);
  self->profile.enabled =
      gst_debug_category_get_threshold (GST_CAT_DEFAULT) >= GST_LEVEL_INFO;
}

/* Ends phase @ph of the current step now (the next one starts). */
static void
gst_simclr_encoder_profile_mark (GstSimclrEncoder * self, GstSimclrPhase ph)
{
  GstSimclrStepProfile *p = &self->profile;
  gdouble wall, cpu, coll, coll_cpu;

  if (!p->enabled)
    return;
  gst_simclr_thread_clocks (&wall, &cpu);
  coll = gst_simclr_mpi_collective_seconds (&coll_cpu);
  if (p->mark_wall > 0) {
    p->step_wall[ph] += wall - p->mark_wall;
    p->step_cpu[ph] += cpu - p->mark_cpu;
    p->step_coll[ph] += coll - p->mark_coll;
    p->step_coll_cpu[ph] += coll_cpu - p->mark_coll_cpu;
  }
  p->mark_wall = wall;
  p->mark_cpu = cpu;
  p->mark_coll = coll;
  p->mark_coll_cpu = coll_cpu;
}

/* A step ended: its phases count unless it is one of the first two
 * (set-up, first touches of memory). */
static void
gst_simclr_encoder_profile_step (GstSimclrEncoder * self)
{
  GstSimclrStepProfile *p = &self->profile;

  if (!p->enabled)
    return;
  if (++p->seen == 2) {
    struct rusage ru;
    p->setup_coll = p->mark_coll;
    p->setup_coll_cpu = p->mark_coll_cpu;
    if (getrusage (RUSAGE_THREAD, &ru) == 0) {
      p->minflt0 = ru.ru_minflt;
      p->majflt0 = ru.ru_majflt;
    }
  } else if (p->seen > 2) {
    gdouble waited = 0;
    for (gint i = 0; i < GST_SIMCLR_N_PHASES; i++) {
      p->wall[i] += p->step_wall[i];
      p->cpu[i] += p->step_cpu[i];
      p->coll[i] += p->step_coll[i];
      p->coll_cpu[i] += p->step_coll_cpu[i];
      waited += p->step_coll_cpu[i];
    }
    if (p->steps < GST_SIMCLR_PROFILE_STEPS)
      p->wait_steps[p->steps] = (gfloat) waited;
    p->steps++;
  }
  memset (p->step_wall, 0, sizeof p->step_wall);
  memset (p->step_cpu, 0, sizeof p->step_cpu);
  memset (p->step_coll, 0, sizeof p->step_coll);
  memset (p->step_coll_cpu, 0, sizeof p->step_coll_cpu);
}

static gint
profile_cmp_float (gconstpointer a, gconstpointer b)
{
  gfloat x = *(const gfloat *) a, y = *(const gfloat *) b;
  return (x > y) - (x < y);
}

/* The CPU seconds of every thread of this process so far
 * (/proc/self/task/TID/stat, user + system), one "name tid seconds" each. */
static gchar *
profile_thread_times (void)
{
  GDir *dir = g_dir_open ("/proc/self/task", 0, NULL);
  GString *out = g_string_new (NULL);
  const gchar *tid;
  glong tick = sysconf (_SC_CLK_TCK);

  while (dir && tick > 0 && (tid = g_dir_read_name (dir))) {
    gchar *path = g_strdup_printf ("/proc/self/task/%s/stat", tid);
    gchar *text = NULL, *open_paren, *close_paren;
    guint64 ut = 0, st = 0;

    if (g_file_get_contents (path, &text, NULL, NULL)
        && (open_paren = strchr (text, '('))
        && (close_paren = strrchr (text, ')')) && close_paren > open_paren) {
      *close_paren = '\0';
      /* after "(comm)": state ppid pgrp session tty tpgid flags minflt
       * cminflt majflt cmajflt utime stime */
      if (sscanf (close_paren + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u "
              "%*u %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT, &ut, &st) == 2
          && ut + st > 0)
        g_string_append_printf (out, " [%s %s %.2f s]", open_paren + 1, tid,
            (gdouble) (ut + st) / tick);
    }
    g_free (text);
    g_free (path);
  }
  if (dir)
    g_dir_close (dir);
  return g_string_free (out, FALSE);
}

static void
gst_simclr_encoder_profile_report (GstSimclrEncoder * self)
{
  static const gchar *names[GST_SIMCLR_N_PHASES] = { "input", "forward",
    "exchange", "apply", "after"
  };
  GstSimclrStepProfile *p = &self->profile;
  GString *line;
  gdouble tw = 0, tc = 0;
  gchar *threads;

  if (!p->enabled || p->steps == 0)
    return;
  line = g_string_new (NULL);
  for (gint i = 0; i < GST_SIMCLR_N_PHASES; i++) {
    g_string_append_printf (line, " %s %.1f/%.1f", names[i],
        1e3 * p->wall[i] / p->steps, 1e3 * p->cpu[i] / p->steps);
    tw += p->wall[i];
    tc += p->cpu[i];
  }
  {
    struct rusage ru;
    if (getrusage (RUSAGE_THREAD, &ru) != 0)
      memset (&ru, 0, sizeof ru);
    GST_INFO_OBJECT (self, "step profile, rank %d of %d, %" G_GUINT64_FORMAT
        " steps after the first 2, ms per step wall/thread-CPU: total "
        "%.1f/%.1f:%s; page faults per step %.1f minor, %.1f major",
        gst_simclr_mpi_rank (), gst_simclr_mpi_size (), p->steps,
        1e3 * tw / p->steps, 1e3 * tc / p->steps, line->str,
        (gdouble) (ru.ru_minflt - p->minflt0) / p->steps,
        (gdouble) (ru.ru_majflt - p->majflt0) / p->steps);
  }
  if (gst_simclr_mpi_active ()) {
    /* Open MPI polls while it waits, so a phase's CPU includes its wait:
     * CPU minus the collectives' CPU is the rank's own work. */
    guint64 n = MIN (p->steps, GST_SIMCLR_PROFILE_STEPS);
    gdouble tcoll = 0, tcoll_cpu = 0;
    g_string_truncate (line, 0);
    for (gint i = 0; i < GST_SIMCLR_N_PHASES; i++) {
      g_string_append_printf (line, " %s %.1f/%.1f", names[i],
          1e3 * p->coll[i] / p->steps, 1e3 * p->coll_cpu[i] / p->steps);
      tcoll += p->coll[i];
      tcoll_cpu += p->coll_cpu[i];
    }
    qsort (p->wait_steps, n, sizeof p->wait_steps[0], profile_cmp_float);
    GST_INFO_OBJECT (self, "step profile, rank %d of %d, inside MPI "
        "collectives (waits for the other ranks + transfers), ms per step "
        "wall/thread-CPU: total %.1f/%.1f (CPU median %.1f, max %.1f):%s; "
        "own work (thread CPU outside them) %.1f ms per step; before "
        "them, set-up and the first 2 steps: %.3f/%.3f s in collectives",
        gst_simclr_mpi_rank (), gst_simclr_mpi_size (),
        1e3 * tcoll / p->steps, 1e3 * tcoll_cpu / p->steps,
        1e3 * p->wait_steps[n / 2], 1e3 * p->wait_steps[n - 1], line->str,
        1e3 * (tc - tcoll_cpu) / p->steps, p->setup_coll, p->setup_coll_cpu);
  }
  threads = profile_thread_times ();
  GST_INFO_OBJECT (self, "thread CPU, rank %d of %d:%s",
      gst_simclr_mpi_rank (), gst_simclr_mpi_size (), threads);
  g_free (threads);
  g_string_free (line, TRUE);
}

/* A step, in the order train_step calls them:
 *   assemble        the batcher's first N complete samples, rows view-major
 *   monitor_epoch   the kNN monitor when a new epoch starts
 *   forward         z of the batch (the frames go once into the model's
 *                   input) in the buffer for the sink
 *   exchange        push z, wait for the sink's dL/dz ("simclr-gradient",
 *                   gstsimclrgradient.h)
 *   apply           backward pass and optimiser step
 *   after_step      checkpoint cadence and the end of the schedule
 */

static gboolean
gst_simclr_encoder_assemble (GstSimclrEncoder * self, SimclrBatch * batch)
{
  SimclrError err = { 0 };

  if (simclr_batcher_take (self->batcher, batch, &err) == SIMCLR_OK)
    return TRUE;
  GST_ELEMENT_ERROR (self, LIBRARY, FAILED, (NULL), ("%s", err.message));
  return FALSE;
}

/* The first batch of a later epoch: the previous epoch is done, and the
 * model has trained on it alone. */
static gboolean
gst_simclr_encoder_monitor_epoch (GstSimclrEncoder * self, guint64 epoch)
{
  if (self->monitor_train && self->monitor_epoch != G_MAXUINT64
      && epoch > self->monitor_epoch
      && !gst_simclr_encoder_monitor (self, self->monitor_epoch))
    return FALSE;
  self->monitor_epoch = epoch;
  return TRUE;
}

static GstFlowReturn
gst_simclr_encoder_forward (GstSimclrEncoder * self, const SimclrBatch * batch,
    GstBuffer ** out)
{
  const gint rows = batch->rows, dim = self->out_dim;
  const guint64 step = (guint64) simclr_trainer_get_step (self->trainer);
  GstSimclrEmbeddingRow *meta_rows = g_new0 (GstSimclrEmbeddingRow, rows);
  GstSimclrEmbeddingMeta *meta;
  SimclrError err = { 0 };
  GstMapInfo map;
  SimclrStatus st;
  gboolean finite;
  GstBuffer *z;

  for (gint i = 0; i < rows; i++) {
    meta_rows[i].sample_id = batch->row[i].sample_id;
    meta_rows[i].view = batch->row[i].view;
    meta_rows[i].label = batch->row[i].label;
    meta_rows[i].pts = batch->row[i].timestamp;   /* NONE is NONE */
  }
  if (!self->warned_horizon && simclr_trainer_schedule_complete
      (self->trainer)) {
    self->warned_horizon = TRUE;
    GST_ELEMENT_WARNING (self, LIBRARY, SETTINGS,
        ("Step %" G_GUINT64_FORMAT " is past total-steps: the learning rate "
            "is 0 and training no longer changes the model.", step), (NULL));
  }

  z = gst_buffer_new_allocate (NULL, (gsize) rows * dim * sizeof (gfloat),
      NULL);
  gst_buffer_map (z, &map, GST_MAP_WRITE);
  st = simclr_trainer_forward_frames (self->trainer, batch->frames, rows,
      self->channels, (gfloat *) map.data, &err);
  finite = st == SIMCLR_OK && all_finite ((const gfloat *) map.data,
      (gsize) rows * dim);
  gst_buffer_unmap (z, &map);
  if (st != SIMCLR_OK)
    goto forward_failed;
  if (!finite)
    goto not_finite;

  meta = gst_buffer_add_simclr_embedding_meta (z, step, rows, meta_rows);
  meta->epoch = (gdouble) batch->max_epoch;
  meta->lr = simclr_trainer_get_lr (self->trainer);
  g_free (meta_rows);
  GST_BUFFER_OFFSET (z) = step;
  GST_BUFFER_PTS (z) = batch->min_timestamp;
  *out = z;
  return GST_FLOW_OK;

  /* ERRORS */
forward_failed:
  {
    gst_buffer_unref (z);
    g_free (meta_rows);
    GST_ELEMENT_ERROR (self, LIBRARY, FAILED,
        ("Forward pass of step %" G_GUINT64_FORMAT " failed: %s", step,
            err.message), ("%s", err.message));
    return GST_FLOW_ERROR;
  }
not_finite:
  {
    gst_buffer_unref (z);
    g_free (meta_rows);
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("Non-finite embeddings at step %" G_GUINT64_FORMAT ": training "
            "diverged (lower learning-rate).", step), (NULL));
    return GST_FLOW_ERROR;
  }
}

/* Backward and optimiser step from @g (cleared). */
static GstFlowReturn
gst_simclr_encoder_apply (GstSimclrEncoder * self, GstSimclrGradient * g)
{
  const gint rows = simclr_trainer_local_rows (self->trainer);
  const gint dim = self->out_dim;
  const guint64 step = (guint64) simclr_trainer_get_step (self->trainer);
  SimclrError err = { 0 };
  GstMapInfo map;
  SimclrStatus st;

  if ((g->rows >= 0 && g->rows != rows) || (g->dimension >= 0
          && g->dimension != dim) || gst_buffer_get_size (g->gradient) !=
      (gsize) rows * dim * sizeof (gfloat))
    goto bad_gradient;
  if (!gst_buffer_map (g->gradient, &map, GST_MAP_READ))
    goto bad_gradient;
  st = simclr_trainer_backward_and_step (self->trainer,
      (const gfloat *) map.data, &err);
  gst_buffer_unmap (g->gradient, &map);
  if (st != SIMCLR_OK)
    goto step_failed;
  /* The checkpoint records the temperature the loss really used. */
  if (g->temperature > 0)
    simclr_trainer_set_temperature (self->trainer, g->temperature, NULL);
  gst_simclr_gradient_clear (g);
  gst_simclr_encoder_update_progress (self);
  return GST_FLOW_OK;

  /* ERRORS */
bad_gradient:
  {
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("The gradient of step %" G_GUINT64_FORMAT " does not fit the batch "
            "(%d x %d float32 expected, got rows %d, dimension %d, %"
            G_GSIZE_FORMAT " bytes).", step, rows, dim, g->rows, g->dimension,
            gst_buffer_get_size (g->gradient)), (NULL));
    gst_simclr_gradient_clear (g);
    return GST_FLOW_ERROR;
  }
step_failed:
  {
    gst_simclr_gradient_clear (g);
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("Optimiser step %" G_GUINT64_FORMAT " failed: %s", step, err.message),
        ("%s", err.message));
    return GST_FLOW_ERROR;
  }
}

static GstFlowReturn
gst_simclr_encoder_after_step (GstSimclrEncoder * self)
{
  const guint64 step = (guint64) simclr_trainer_get_step (self->trainer);

  /* The cadence: checkpoint-interval, checkpoint-seconds. Replay mode
   * (long live runs): a failed periodic save is a warning. */
  if (simclr_ckpt_cadence_due (&self->ckpt, (int64_t) step,
          g_get_monotonic_time ())
      && !gst_simclr_encoder_save_full (self,
          gst_simclr_encoder_live_enabled (self)))
    return GST_FLOW_ERROR;
  if (self->run.stop_at_end && simclr_trainer_schedule_complete
      (self->trainer)) {
    /* The schedule is done: tell upstream to stop; its EOS then writes the
     * final checkpoint (see stop-at-end). */
    GST_INFO_OBJECT (self, "schedule complete at step %" G_GUINT64_FORMAT
        ": returning EOS upstream", step);
    return GST_FLOW_EOS;
  }
  return GST_FLOW_OK;
}

/* One training step on @batch: the batcher's N ready samples, or N samples
 * drawn from the replay buffer (@from_replay: the buffer's counts go into
 * the embedding meta; the batcher is the streaming thread's, not ours). */
GstFlowReturn
gst_simclr_encoder_train_batch (GstSimclrEncoder * self,
    const SimclrBatch * batch, gboolean from_replay)
{
  GstSimclrGradient grad = { 0 };
  GstBuffer *z = NULL;
  GstFlowReturn ret;

  gst_simclr_encoder_profile_mark (self, GST_SIMCLR_PHASE_INPUT);
  if (!gst_simclr_encoder_monitor_epoch (self, batch->max_epoch)) {
    if (!from_replay)
      simclr_batcher_release_batch (self->batcher);
    return GST_FLOW_ERROR;
  }
  ret = gst_simclr_encoder_forward (self, batch, &z);
  /* The frames are in the model now: let their buffers go. */
  if (!from_replay)
    simclr_batcher_release_batch (self->batcher);
  if (ret == GST_FLOW_OK && from_replay)
    gst_simclr_encoder_live_counts (self,
        gst_buffer_get_simclr_embedding_meta (z));
  gst_simclr_encoder_profile_mark (self, GST_SIMCLR_PHASE_FORWARD);
  if (ret == GST_FLOW_OK)
    ret = gst_simclr_gradient_wait_exchange (&self->grad, GST_ELEMENT (self),
        self->srcpad, z, GST_BUFFER_OFFSET (z), &grad);
  gst_simclr_encoder_profile_mark (self, GST_SIMCLR_PHASE_EXCHANGE);
  if (ret == GST_FLOW_OK)
    ret = gst_simclr_encoder_apply (self, &grad);
  gst_simclr_encoder_profile_mark (self, GST_SIMCLR_PHASE_APPLY);
  if (ret == GST_FLOW_OK)
    ret = gst_simclr_encoder_after_step (self);
  gst_simclr_encoder_profile_mark (self, GST_SIMCLR_PHASE_AFTER);
  gst_simclr_encoder_profile_step (self);
  return ret;
}

/* One training step on the batcher's N ready samples. */
static GstFlowReturn
gst_simclr_encoder_train_step (GstSimclrEncoder * self)
{
  SimclrBatch batch;

  if (!gst_simclr_encoder_assemble (self, &batch))
    return GST_FLOW_ERROR;
  return gst_simclr_encoder_train_batch (self, &batch, FALSE);
}

/* Hands one view to the batcher, then steps when a batch is complete. */
GstFlowReturn
gst_simclr_encoder_chain_train (GstSimclrEncoder * self, GstBuffer * buf)
{
  GstSimclrFrameMeta *fm = gst_buffer_get_simclr_frame_meta (buf);
  SimclrBatcherView v = { 0 };
  GstSimclrHeldFrame *held;
  SimclrError err = { 0 };
  gboolean keep;
  unsigned flags = 0;

  if (fm == NULL)
    goto no_meta;
  v.sample_id = fm->sample_id;
  v.epoch = fm->epoch;
  v.view = fm->view;
  v.label = fm->label;
  v.timestamp = GST_BUFFER_PTS (buf);
  /* A small view (multi-crop) is mapped at its own size (its GstVideoMeta
   * gives the stride). */
  held = gst_simclr_held_frame_new (buf, self->small_views > 0
      && fm->view >= simclr_trainer_views (self->trainer) - self->small_views
      && fm->view < simclr_trainer_views (self->trainer) ?
      &self->small_vinfo : &self->vinfo);
  if (held == NULL)
    goto map_failed;
  /* Held until its batch's forward, or copied now if its pool is bounded.
   * Replay mode copies: a live source's buffers go back at once. */
  keep = !gst_simclr_encoder_live_enabled (self)
      && gst_simclr_held_frame_may_keep (held);
  v.frame = gst_simclr_held_frame_pixels (held);
  v.owner = keep ? held : NULL;
  v.release = keep ? gst_simclr_held_frame_free : NULL;
  if (simclr_batcher_add (self->batcher, &v, &flags, &err) != SIMCLR_OK) {
    if (!keep)
      gst_simclr_held_frame_free (held);
    goto add_failed;
  }
  if (!keep)
    gst_simclr_held_frame_free (held);

  if ((flags & SIMCLR_BATCHER_BAD_VIEW) && !self->warned_view) {
    self->warned_view = TRUE;
    GST_ELEMENT_WARNING (self, STREAM, FORMAT,
        ("Dropping frames of view %d: train mode uses views 0 to %d "
            "(property views).", v.view,
            simclr_trainer_views (self->trainer) - 1), (NULL));
  }
  if (flags & SIMCLR_BATCHER_DUPLICATE)
    GST_WARNING_OBJECT (self, "view %d of sample %" G_GUINT64_FORMAT
        " epoch %" G_GUINT64_FORMAT " came twice: keeping the last", v.view,
        v.sample_id, v.epoch);
  /* Views whose partner never comes pile up: say so once. */
  if (!(flags & SIMCLR_BATCHER_COMPLETED) && !self->warned_unpaired
      && simclr_batcher_backlogged (self->batcher)) {
    self->warned_unpaired = TRUE;
    GST_ELEMENT_WARNING (self, STREAM, FORMAT,
        ("%d samples wait for their second view: does upstream drop "
            "frames?", simclr_batcher_n_pending (self->batcher)), (NULL));
  }
  if (!simclr_batcher_batch_ready (self->batcher))
    return GST_FLOW_OK;
  if (gst_simclr_encoder_live_enabled (self)) {
    /* A batcher of one sample: file the completed sample in the buffer. */
    SimclrBatch sample;
    GstFlowReturn ret;
    if (!gst_simclr_encoder_assemble (self, &sample))
      return GST_FLOW_ERROR;
    ret = gst_simclr_encoder_live_add (self, &sample);
    simclr_batcher_release_batch (self->batcher);
    return ret;
  }
  return gst_simclr_encoder_train_step (self);

  /* ERRORS */
no_meta:
  {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
        ("Train mode needs views tagged with GstSimclrFrameMeta (sample id, "
            "view): put simclraugment upstream."), (NULL));
    return GST_FLOW_ERROR;
  }
map_failed:
  {
    GST_ELEMENT_ERROR (self, STREAM, FAILED, (NULL),
        ("could not map a video frame"));
    return GST_FLOW_ERROR;
  }
add_failed:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, FAILED, (NULL), ("%s", err.message));
    return GST_FLOW_ERROR;
  }
}

/* Drops the views of an incomplete batch (EOS, flush). */
/* Returns the samples dropped (complete and unpaired). */
gint
gst_simclr_encoder_train_drop (GstSimclrEncoder * self, const gchar * why)
{
  gint complete = 0, unpaired = 0;

  if (!self->batcher)
    return 0;
  simclr_batcher_clear (self->batcher, &complete, &unpaired);
  if (complete > 0)
    GST_INFO_OBJECT (self, "%s: dropping a partial batch of %d samples "
        "(%d views)", why, complete, complete *
        simclr_trainer_views (self->trainer));
  if (unpaired > 0)
    GST_WARNING_OBJECT (self, "%s: dropping %d samples whose views did not "
        "all come", why, unpaired);
  gst_simclr_encoder_live_count_unpaired (self, unpaired);
  return complete + unpaired;
}

/* EOS: the partial batch goes (replay mode: its streaming thread dropped
 * it already, and what came is in the buffer), the final checkpoint is
 * written (unless the interval just wrote this step), then the last
 * epoch's kNN. A run that
 * took no step writes no checkpoint: it would hold an untrained model (or
 * the resumed one unchanged) and could replace a good file; when samples
 * came but fewer than a batch, that is an error naming batch-size (issue
 * 15: batch-size larger than the data set used to end silently). */
void
gst_simclr_encoder_train_eos (GstSimclrEncoder * self)
{
  gint dropped = gst_simclr_encoder_live_enabled (self) ?
      gst_simclr_encoder_live_held (self) :
      gst_simclr_encoder_train_drop (self, "EOS");

  gst_simclr_encoder_profile_report (self);

  if (self->trainer && simclr_trainer_get_step (self->trainer) ==
      self->ckpt.first_step) {
    if (dropped > 0 && gst_simclr_encoder_live_enabled (self))
      GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
          ("The stream ended after %d samples, before a first training "
              "step (the replay buffer waits for %d, replay-min). No "
              "checkpoint was written.", dropped, self->live.min_fill),
          (NULL));
    else if (dropped > 0)
      GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
          ("Property batch-size = %d is larger than the stream: it ended "
              "after %d samples, before a first training step. No "
              "checkpoint was written. Lower batch-size, or give the "
              "source more samples (num-samples, epochs).",
              self->run.batch_size, dropped), (NULL));
    else
      GST_ELEMENT_WARNING (self, STREAM, FAILED,
          ("No training sample reached simclrencoder before the end of the "
              "stream: no step, no checkpoint written."), (NULL));
    return;
  }
  if (gst_simclr_encoder_unsaved (self))
    gst_simclr_encoder_save (self);
  if (self->trainer && self->monitor_train
      && self->monitor_epoch != G_MAXUINT64)
    gst_simclr_encoder_monitor (self, self->monitor_epoch);
}
