/* gstsimclrencoderlive.c: simclrencoder's replay mode (replay-size > 0) and
 * its passes over a seekable input (issue 13: training from live sources and
 * long runs).
 *
 * Two threads share a replay buffer (the core's SimclrReplay, under
 * live.lock):
 * - the streaming thread (chain) pairs the views of each sample (a batcher
 *   of one sample) and files the complete sample in the buffer: a copy of
 *   two small views, then it returns. It never waits for training, unless
 *   replay-overflow=wait asks it to (files: every frame trains at least
 *   once);
 * - the training thread, a task on the source pad, draws each step's N
 *   samples uniformly from the whole buffer and runs the same step as the
 *   in-order mode (gst_simclr_encoder_train_batch: forward, gradient
 *   exchange with ntxentsink, optimiser step, checkpoint cadence).
 * Why a thread and not "drop while a step runs" in the streaming thread: a
 * step takes from tenths of a second to seconds, a camera delivers a frame
 * every 33 ms; a step on the streaming thread holds the source for its whole
 * length (a live source then drops or bursts frames, a v4l2 ring overflows,
 * a network source's queue grows), and dropping alone would leave each batch
 * made of the few frames that came just before it. With the thread the
 * capture path costs a copy of two views, memory is the buffer's fixed
 * size, and each batch mixes the whole window.
 *
 * Not here: the step itself (gstsimclrencodertrain.c), the buffer's
 * eviction and sampling (core/replay.c), the element's pads and state
 * (gstsimclrencoder.c) beyond the hooks below.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstsimclrencoderpriv.h"
#include "gstsimclr.h"

#define GST_CAT_DEFAULT gst_simclr_encoder_debug

gboolean
gst_simclr_encoder_live_enabled (GstSimclrEncoder * self)
{
  return self->run.mode == GST_SIMCLR_ENCODER_MODE_TRAIN
      && self->run.replay_size > 0;
}

void
gst_simclr_encoder_live_init (GstSimclrEncoder * self)
{
  g_mutex_init (&self->live.lock);
  g_cond_init (&self->live.cond);
}

void
gst_simclr_encoder_live_clear (GstSimclrEncoder * self)
{
  gst_simclr_encoder_live_free (self);
  g_mutex_clear (&self->live.lock);
  g_cond_clear (&self->live.cond);
}

/* Everything a run allocated (state changes only: the task is stopped). */
void
gst_simclr_encoder_live_free (GstSimclrEncoder * self)
{
  GstSimclrEncoderLive *l = &self->live;

  g_mutex_lock (&l->lock);
  g_clear_pointer (&l->replay, simclr_replay_free);
  l->flushing = l->eos = l->done = FALSE;
  l->task_running = l->stopped = FALSE;
  l->dropped_unpaired = 0;
  g_mutex_unlock (&l->lock);
  g_clear_pointer (&l->draw, simclr_replay_batch_free);
  l->passes_done = 0;
}

/* TRUE if upstream says it is live (a latency query), the default for
 * replay-overflow=auto; FALSE when it cannot tell (a file). */
static gboolean
upstream_is_live (GstSimclrEncoder * self)
{
  GstQuery *q = gst_query_new_latency ();
  gboolean live = FALSE;

  if (gst_pad_peer_query (self->sinkpad, q))
    gst_query_parse_latency (q, &live, NULL, NULL);
  gst_query_unref (q);
  return live;
}

/* At caps, train mode with a trainer: the buffer for replay-size samples of
 * two views of the negotiated frames, and the training thread's scratch.
 * The task starts at the next segment (gst_simclr_encoder_live_sink_event).
 */
gboolean
gst_simclr_encoder_live_setup (GstSimclrEncoder * self)
{
  GstSimclrEncoderLive *l = &self->live;
  const Settings *s = &self->run;
  const gint n = simclr_trainer_local_batch (self->trainer);
  const gint views = simclr_trainer_views (self->trainer);
  const gsize vb = (gsize) self->size * self->size * self->channels;
  SimclrReplayConfig cfg;
  SimclrError err = { 0 };
  SimclrReplay *replay;
  size_t bytes = 0;
  gboolean live;

  if (s->replay_size < n)
    goto too_small;
  if (views > SIMCLR_REPLAY_MAX_VIEWS)
    goto too_many_views;
  simclr_replay_config_default (&cfg);
  cfg.capacity = s->replay_size;
  cfg.views = views;
  cfg.view_bytes = vb;
  cfg.policy = s->replay_policy;
  cfg.seed = s->seed;
  cfg.max_bytes = s->replay_max_bytes > G_MAXSIZE ? G_MAXSIZE
      : (size_t) s->replay_max_bytes;
  replay = simclr_replay_new (&cfg, &err);
  if (replay == NULL)
    goto no_buffer;
  l->draw = simclr_replay_batch_new (replay, n, self->size, self->channels,
      &err);
  if (l->draw == NULL) {
    simclr_replay_free (replay);
    goto no_buffer;
  }
  simclr_replay_bytes (&cfg, &bytes, NULL);

  switch (s->replay_overflow) {
    case GST_SIMCLR_ENCODER_REPLAY_OVERFLOW_DROP:
      live = TRUE;
      break;
    case GST_SIMCLR_ENCODER_REPLAY_OVERFLOW_WAIT:
      live = FALSE;
      break;
    default:
      live = upstream_is_live (self);
      break;
  }

  g_mutex_lock (&l->lock);
  l->replay = replay;
  l->wait = !live;
  l->min_fill = s->replay_min > 0 ? MIN (s->replay_min, s->replay_size) : n;
  l->min_fill = MAX (l->min_fill, n);
  l->flushing = l->eos = l->done = FALSE;
  g_mutex_unlock (&l->lock);

  GST_INFO_OBJECT (self, "replay buffer: %d samples of %d views of %dx%dx%d, "
      "%" G_GSIZE_FORMAT " bytes (%.1f MiB), %s, %s when full; first step "
      "at %d samples", s->replay_size, views, self->size, self->size,
      self->channels, (gsize) bytes, bytes / 1048576.0,
      s->replay_policy == SIMCLR_REPLAY_RING ? "ring" : "reservoir",
      l->wait ? "waits" : "drops", l->min_fill);
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self),
          gst_structure_new ("simclr-replay",
              "capacity", G_TYPE_INT, s->replay_size,
              "bytes", G_TYPE_UINT64, (guint64) bytes,
              "policy", G_TYPE_STRING,
              s->replay_policy == SIMCLR_REPLAY_RING ? "ring" : "reservoir",
              "overflow", G_TYPE_STRING, l->wait ? "wait" : "drop",
              "min-fill", G_TYPE_INT, l->min_fill, NULL)));
  return TRUE;

  /* ERRORS */
too_small:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("replay-size (%d samples) must hold at least one batch (%d "
            "samples).", s->replay_size, n), (NULL));
    return FALSE;
  }
too_many_views:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
        ("views %d with replay-size %d: the replay buffer holds at most %d "
            "views per sample. Lower views or set replay-size 0.", views,
            s->replay_size, SIMCLR_REPLAY_MAX_VIEWS), (NULL));
    return FALSE;
  }
no_buffer:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT,
        ("Cannot make the replay buffer of replay-size %d (%dx%dx%d views): "
            "%s. Lower replay-size.", s->replay_size, self->size, self->size,
            self->channels, err.message), ("%s", err.message));
    return FALSE;
  }
}

/* Copies the replay buffer's counts into @meta (training thread). */
void
gst_simclr_encoder_live_counts (GstSimclrEncoder * self,
    GstSimclrEmbeddingMeta * meta)
{
  GstSimclrEncoderLive *l = &self->live;
  SimclrReplayStats st;
  guint64 unpaired;

  if (meta == NULL)
    return;
  g_mutex_lock (&l->lock);
  simclr_replay_get_stats (l->replay, &st);
  unpaired = l->dropped_unpaired;
  g_mutex_unlock (&l->lock);
  meta->has_counts = TRUE;
  meta->frames_seen = st.seen + unpaired;
  meta->frames_buffered = st.stored;
  meta->frames_trained = st.trained;
  meta->frames_dropped = st.rejected + st.evicted_unused + unpaired;
  meta->replay_held = (guint) st.held;
}

/* Samples in the replay buffer (0 without one). */
gint
gst_simclr_encoder_live_held (GstSimclrEncoder * self)
{
  gint n;
  g_mutex_lock (&self->live.lock);
  n = simclr_replay_held (self->live.replay);
  g_mutex_unlock (&self->live.lock);
  return n;
}

void
gst_simclr_encoder_live_count_unpaired (GstSimclrEncoder * self, gint n)
{
  if (!gst_simclr_encoder_live_enabled (self) || n <= 0)
    return;
  g_mutex_lock (&self->live.lock);
  self->live.dropped_unpaired += (guint64) n;
  g_mutex_unlock (&self->live.lock);
}

/* Streaming thread: files one complete sample (@sample: a batch of one,
 * rows view-major). Waits only with replay-overflow=wait, until the sample
 * about to be overwritten was drawn once (or a flush / the end). */
GstFlowReturn
gst_simclr_encoder_live_add (GstSimclrEncoder * self,
    const SimclrBatch * sample)
{
  GstSimclrEncoderLive *l = &self->live;
  SimclrError err = { 0 };
  GstFlowReturn ret = GST_FLOW_OK;

  g_mutex_lock (&l->lock);
  while (l->wait && !l->flushing && !l->done) {
    gint slot = simclr_replay_next_slot (l->replay);
    if (slot < 0 || simclr_replay_uses (l->replay, slot) != 0)
      break;
    g_cond_wait (&l->cond, &l->lock);
  }
  if (l->flushing)
    ret = GST_FLOW_FLUSHING;
  else if (l->done)
    ret = GST_FLOW_EOS;         /* the run ended (stop-at-end, an error) */
  else if (simclr_replay_add_sample (l->replay, sample, self->size *
          self->channels, NULL, &err) != SIMCLR_OK)
    ret = GST_FLOW_ERROR;
  else
    g_cond_broadcast (&l->cond);
  g_mutex_unlock (&l->lock);
  if (ret == GST_FLOW_ERROR)
    GST_ELEMENT_ERROR (self, LIBRARY, FAILED, (NULL), ("%s", err.message));
  return ret;
}

/* Training thread: the run is over (input ended, schedule complete, or a
 * fatal error): the final checkpoint and kNN unless @failed, then EOS
 * downstream; no more steps. */
static void
live_finish (GstSimclrEncoder * self, gboolean failed)
{
  GstSimclrEncoderLive *l = &self->live;

  if (!failed)
    gst_simclr_encoder_train_eos (self);
  g_mutex_lock (&l->lock);
  l->done = TRUE;
  g_cond_broadcast (&l->cond);
  g_mutex_unlock (&l->lock);
  gst_pad_push_event (self->srcpad, gst_event_new_eos ());
  gst_pad_pause_task (self->srcpad);
}

/* Training thread: one step per call; pauses itself on a flush or the end. */
static void
live_loop (gpointer user)
{
  GstSimclrEncoder *self = user;
  GstSimclrEncoderLive *l = &self->live;
  SimclrError err = { 0 };
  SimclrBatch batch;
  GstFlowReturn ret;
  gboolean ok;

  g_mutex_lock (&l->lock);
  while (!l->flushing && !l->done && !l->eos
      && simclr_replay_held (l->replay) < l->min_fill)
    g_cond_wait (&l->cond, &l->lock);
  if (l->flushing || l->done) {
    g_mutex_unlock (&l->lock);
    gst_pad_pause_task (self->srcpad);
    return;
  }
  if (l->eos) {
    g_mutex_unlock (&l->lock);
    live_finish (self, FALSE);
    return;
  }
  /* Draws are keyed by the step: the same buffer gives the same batch. */
  ok = simclr_replay_draw (l->replay, l->draw, (uint64_t)
      simclr_trainer_get_step (self->trainer), &batch, &err) == SIMCLR_OK;
  /* Draws changed the use counts a waiting streaming thread looks at. */
  g_cond_broadcast (&l->cond);
  g_mutex_unlock (&l->lock);
  if (!ok) {
    GST_ELEMENT_ERROR (self, LIBRARY, FAILED, (NULL), ("%s", err.message));
    live_finish (self, TRUE);
    return;
  }
  ret = gst_simclr_encoder_train_batch (self, &batch, TRUE);
  if (ret == GST_FLOW_OK)
    return;
  if (ret == GST_FLOW_EOS) {
    /* stop-at-end: the schedule is complete */
    live_finish (self, FALSE);
    return;
  }
  if (ret == GST_FLOW_FLUSHING) {
    GST_DEBUG_OBJECT (self, "training thread: flushing, pausing");
    gst_pad_pause_task (self->srcpad);
    return;
  }
  /* Errors of the step are posted where they happen; a failed push
   * (not linked, not negotiated) is posted here. */
  if (ret == GST_FLOW_NOT_LINKED || ret == GST_FLOW_NOT_NEGOTIATED)
    GST_ELEMENT_FLOW_ERROR (self, ret);
  live_finish (self, TRUE);
}

/* Under the lock, so that a state change to READY (live_stop) cannot stop
 * the thread between the test and the start: a FLUSH_STOP and a SEGMENT that
 * came while live_stop wrote its checkpoint restarted the thread behind its
 * back, and it then trained on during the pads' deactivation (the final
 * save raced with its step; with fewer samples than replay-min it held the
 * source pad's stream lock and the deactivation waited for the next sample).
 * Issue 15, tests/elements/test-state-races.c. */
static void
live_start_task (GstSimclrEncoder * self)
{
  GstSimclrEncoderLive *l = &self->live;
  g_mutex_lock (&l->lock);
  if (!l->task_running && !l->stopped && l->replay != NULL)
    l->task_running = gst_pad_start_task (self->srcpad, live_loop, self,
        NULL);
  g_mutex_unlock (&l->lock);
}

/* State change to READY (before the pads deactivate): wake and stop the
 * training thread, then write the final checkpoint of steps not saved yet:
 * a source that errored out or vanished (camera unplugged, network lost)
 * ends the run with its progress saved. */
void
gst_simclr_encoder_live_stop (GstSimclrEncoder * self)
{
  GstSimclrEncoderLive *l = &self->live;

  if (!gst_simclr_encoder_live_enabled (self))
    return;
  g_mutex_lock (&l->lock);
  l->flushing = TRUE;
  l->stopped = TRUE;            /* until reset: a FLUSH_STOP does not undo it */
  g_cond_broadcast (&l->cond);
  g_mutex_unlock (&l->lock);
  gst_pad_stop_task (self->srcpad);
  g_mutex_lock (&l->lock);
  l->task_running = FALSE;
  g_mutex_unlock (&l->lock);
  if (gst_simclr_encoder_unsaved (self)) {
    GST_INFO_OBJECT (self, "stopping with unsaved steps: final checkpoint");
    gst_simclr_encoder_save (self);
  }
}

/* ---- passes ---------------------------------------------------------------- */

static void
passes_seek (GstElement * element, gpointer user)
{
  GstSimclrEncoder *self = GST_SIMCLR_ENCODER (element);
  GstEvent *seek = gst_event_new_seek (1.0, GST_FORMAT_TIME,
      GST_SEEK_FLAG_FLUSH, GST_SEEK_TYPE_SET, 0, GST_SEEK_TYPE_NONE,
      GST_CLOCK_TIME_NONE);
  gboolean stopping;

  if (gst_pad_push_event (self->sinkpad, seek))
    return;
  GST_ELEMENT_WARNING (self, STREAM, FAILED,
      ("passes: the input cannot seek back to its start; ending after pass "
          "%u.", self->live.passes_done), (NULL));
  /* End as the EOS would have: serialised with the (idle) streaming
   * thread. Not once the sink pad is deactivating: the change to READY
   * then frees the trainer without the stream lock (this runs on another
   * thread, maybe after that change began). */
  GST_PAD_STREAM_LOCK (self->sinkpad);
  GST_OBJECT_LOCK (self->sinkpad);
  stopping = GST_PAD_MODE (self->sinkpad) == GST_PAD_MODE_NONE;
  GST_OBJECT_UNLOCK (self->sinkpad);
  if (stopping) {
    GST_PAD_STREAM_UNLOCK (self->sinkpad);
    return;
  }
  if (gst_simclr_encoder_live_enabled (self)) {
    g_mutex_lock (&self->live.lock);
    self->live.eos = TRUE;
    g_cond_broadcast (&self->live.cond);
    g_mutex_unlock (&self->live.lock);
  } else {
    gst_simclr_encoder_train_eos (self);
    gst_pad_push_event (self->srcpad, gst_event_new_eos ());
  }
  GST_PAD_STREAM_UNLOCK (self->sinkpad);
}

/* Streaming thread, at EOS in train mode: TRUE if another pass starts (the
 * EOS is then consumed and the element seeks back to the start from
 * another thread). An EOS well before the end of the input (the
 * application's, e.g. gst-launch-1.0 -e on Ctrl-C: the position more than
 * 5 s or 5 % short of the duration; frames held for temporal pairs make the
 * position at a true end trail by up to a second), a complete schedule with
 * stop-at-end, or the last pass end the run. */
gboolean
gst_simclr_encoder_passes_eos (GstSimclrEncoder * self)
{
  GstSimclrEncoderLive *l = &self->live;
  const guint passes = self->run.passes;
  gint64 pos = -1, dur = -1;

  if (self->run.mode != GST_SIMCLR_ENCODER_MODE_TRAIN || passes == 1)
    return FALSE;
  if (self->trainer && self->run.stop_at_end
      && simclr_trainer_schedule_complete (self->trainer))
    return FALSE;
  if (passes != 0 && l->passes_done + 1 >= passes)
    return FALSE;
  if (gst_pad_peer_query_position (self->sinkpad, GST_FORMAT_TIME, &pos)
      && gst_pad_peer_query_duration (self->sinkpad, GST_FORMAT_TIME, &dur)
      && pos >= 0 && dur > 0 && pos + MAX (5 * GST_SECOND, dur / 20) < dur) {
    GST_INFO_OBJECT (self, "EOS at %" GST_TIME_FORMAT " of %" GST_TIME_FORMAT
        ": not the end of the input, ending the run", GST_TIME_ARGS (pos),
        GST_TIME_ARGS (dur));
    return FALSE;
  }
  l->passes_done++;
  GST_INFO_OBJECT (self, "pass %u done: seeking back to the start",
      l->passes_done);
  gst_element_call_async (GST_ELEMENT (self), passes_seek, NULL, NULL);
  return TRUE;
}

/* ---- events ---------------------------------------------------------------- */

/* Replay mode's serialisation of the sink events with the training thread:
 * TRUE if the event was handled here (*@result is then the answer). */
gboolean
gst_simclr_encoder_live_sink_event (GstSimclrEncoder * self, GstEvent * event,
    gboolean * result)
{
  GstSimclrEncoderLive *l = &self->live;
  gboolean done, running;

  if (!gst_simclr_encoder_live_enabled (self))
    return FALSE;
  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_FLUSH_START:
      gst_simclr_gradient_wait_set_flushing (&self->grad, TRUE);
      g_mutex_lock (&l->lock);
      l->flushing = TRUE;
      running = l->task_running;
      g_cond_broadcast (&l->cond);
      g_mutex_unlock (&l->lock);
      *result = gst_pad_push_event (self->srcpad, event);
      /* Waits for the step in progress to end (its wait was woken). Only a
       * started thread: pausing a stopped task starts a thread (paused). */
      if (running) {
        gst_pad_pause_task (self->srcpad);
        g_mutex_lock (&l->lock);
        l->task_running = FALSE;
        g_mutex_unlock (&l->lock);
      }
      return TRUE;
    case GST_EVENT_FLUSH_STOP:
      gst_simclr_gradient_wait_set_flushing (&self->grad, FALSE);
      gst_simclr_encoder_train_drop (self, "flush");
      g_mutex_lock (&l->lock);
      /* Once stopped (going to READY) it stays flushing: the training thread
       * is gone, so a chain waiting for room would hold the stream lock the
       * pad deactivation needs, for good (harness fuzz: a burst of
       * flush-start, flush-stop and a buffer during PAUSED->READY). */
      l->flushing = l->stopped;
      l->eos = FALSE;
      l->done = FALSE;
      g_mutex_unlock (&l->lock);
      /* The replay buffer keeps its samples (passes, seeks); the training
       * thread restarts at the next segment, so nothing is pushed before
       * it. */
      *result = gst_pad_push_event (self->srcpad, event);
      return TRUE;
    case GST_EVENT_SEGMENT:
      *result = gst_pad_push_event (self->srcpad, event);
      live_start_task (self);
      return TRUE;
    case GST_EVENT_EOS:
      if (gst_simclr_encoder_passes_eos (self)) {
        gst_event_unref (event);
        *result = TRUE;
        return TRUE;
      }
      gst_simclr_encoder_train_drop (self, "EOS");
      g_mutex_lock (&l->lock);
      done = l->done;
      running = l->task_running;
      l->eos = TRUE;
      g_cond_broadcast (&l->cond);
      g_mutex_unlock (&l->lock);
      if (done || !running) {
        /* Nothing will push it: the run ended before, or never started. */
        if (!done && self->trainer)
          gst_simclr_encoder_train_eos (self);
        *result = done ? TRUE : gst_pad_push_event (self->srcpad,
            gst_event_ref (event));
        gst_event_unref (event);
        return TRUE;
      }
      /* The training thread ends the run after its step and pushes EOS. */
      gst_event_unref (event);
      *result = TRUE;
      return TRUE;
    default:
      return FALSE;
  }
}
