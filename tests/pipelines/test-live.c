/* test-live.c: simclrencoder's replay mode and stream features on whole
 * pipelines (issue 13).
 *
 * - counts: a live run posts frames-seen/buffered/trained/dropped and
 *   replay-held that add up, the replay buffer states its bytes as the core
 *   computes them, checkpoints rotate in a folder;
 * - no stall: with slow steps, the frames of a live source leave it on time
 *   in replay mode, and are late by about a step in the in-order mode;
 * - bad input: a replay buffer beyond the available memory, above
 *   replay-max-bytes or smaller than a batch; a source that errors out (the
 *   final checkpoint is still written); a renegotiating source (rescaled
 *   before simclraugment: training goes on; a format change reaching the
 *   encoder: a clear error); a checkpoint folder that cannot be written; a
 *   disk that fills up (a file-size limit: warnings, training goes on, the
 *   saved checkpoint stays);
 * - passes over a seekable input in one pipeline, in order and in replay
 *   mode; resume-from a folder (empty: a new run; else its newest);
 * - the stream schedules as the messages report them, against the core.
 * All sources are videotestsrc: no data set needed.
 */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <glib/gstdio.h>
#include <gst/gst.h>

#include "simclr/ckptdir.h"
#include "simclr/optim.h"
#include "simclr/replay.h"
#include "simclr/trainer.h"

static guint time_scale = 1;

typedef struct
{
  GPtrArray *train;             /* GstStructure* of simclr-train */
  GPtrArray *checkpoints;       /* GstStructure* of simclr-checkpoint */
  GstStructure *replay;         /* simclr-replay */
  GPtrArray *warnings;          /* gchar* */
  GError *error;
  gchar *error_source;
  gboolean eos;
  gdouble *train_t;             /* arrival (s since start) of each train msg */
  /* capture probe */
  gdouble max_late;
  guint64 frames;
  /* a callback on the first simclr-checkpoint (streaming thread) */
  void (*on_checkpoint) (void);
  gboolean checkpoint_seen;
} Run;

static void
run_free (Run * r)
{
  g_ptr_array_unref (r->train);
  g_ptr_array_unref (r->checkpoints);
  g_ptr_array_unref (r->warnings);
  if (r->replay)
    gst_structure_free (r->replay);
  g_clear_error (&r->error);
  g_free (r->error_source);
  g_free (r->train_t);
  g_free (r);
}

static GstPadProbeReturn
probe_cb (GstPad * pad, GstPadProbeInfo * info, gpointer user)
{
  Run *r = user;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  GstElement *el = GST_ELEMENT (gst_pad_get_parent (pad));
  GstClock *clock = gst_element_get_clock (el);
  if (clock && GST_BUFFER_PTS_IS_VALID (buf)) {
    GstClockTime now = gst_clock_get_time (clock) -
        gst_element_get_base_time (el);
    gdouble late = GST_CLOCK_DIFF (GST_BUFFER_PTS (buf), now) / 1e9;
    if (late > r->max_late)
      r->max_late = late;
  }
  if (clock)
    gst_object_unref (clock);
  gst_object_unref (el);
  r->frames++;
  return GST_PAD_PROBE_OK;
}

static GstBusSyncReply
sync_cb (GstBus * bus, GstMessage * msg, gpointer user)
{
  Run *r = user;
  const GstStructure *s = gst_message_get_structure (msg);
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ELEMENT && s
      && gst_structure_has_name (s, "simclr-checkpoint")
      && !r->checkpoint_seen) {
    r->checkpoint_seen = TRUE;
    if (r->on_checkpoint)
      r->on_checkpoint ();
  }
  return GST_BUS_PASS;
}

/* Runs @desc until EOS or an ERROR, sending EOS after @eos_after seconds
 * if > 0; then to NULL (which writes replay mode's final checkpoint). The
 * element named "capture", if any, is probed for frame lateness. */
static Run *
run_pipeline (const gchar * desc, gdouble eos_after, guint timeout_s,
    void (*on_checkpoint) (void))
{
  Run *r = g_new0 (Run, 1);
  GError *perr = NULL;
  GstElement *p, *cap;
  GstBus *bus;
  gint64 t0, deadline;
  gboolean eos_sent = FALSE;
  GArray *times = g_array_new (FALSE, FALSE, sizeof (gdouble));

  r->train = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_structure_free);
  r->checkpoints = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_structure_free);
  r->warnings = g_ptr_array_new_with_free_func (g_free);
  r->on_checkpoint = on_checkpoint;
  g_test_message ("pipeline: %s", desc);
  p = gst_parse_launch (desc, &perr);
  g_assert_no_error (perr);
  cap = gst_bin_get_by_name (GST_BIN (p), "capture");
  if (cap) {
    GstPad *pad = gst_element_get_static_pad (cap, "src");
    gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, probe_cb, r, NULL);
    gst_object_unref (pad);
    gst_object_unref (cap);
  }
  bus = gst_element_get_bus (p);
  gst_bus_set_sync_handler (bus, sync_cb, r, NULL);
  t0 = g_get_monotonic_time ();
  deadline = t0 + (gint64) timeout_s * time_scale * G_TIME_SPAN_SECOND;
  gst_element_set_state (p, GST_STATE_PLAYING);
  while (!r->eos && !r->error) {
    GstMessage *m = gst_bus_timed_pop (bus, 50 * GST_MSECOND);
    gdouble now = (g_get_monotonic_time () - t0) / 1e6;
    if (eos_after > 0 && !eos_sent && now >= eos_after) {
      gst_element_send_event (p, gst_event_new_eos ());
      eos_sent = TRUE;
    }
    if (g_get_monotonic_time () > deadline)
      g_error ("pipeline did not end within %u s: %s", timeout_s * time_scale,
          desc);
    if (!m)
      continue;
    switch (GST_MESSAGE_TYPE (m)) {
      case GST_MESSAGE_EOS:
        r->eos = TRUE;
        break;
      case GST_MESSAGE_ERROR:{
        gchar *dbg = NULL;
        gst_message_parse_error (m, &r->error, &dbg);
        r->error_source = g_strdup (GST_MESSAGE_SRC_NAME (m));
        g_test_message ("error from %s: %s (%s)", r->error_source,
            r->error->message, dbg ? dbg : "");
        g_free (dbg);
        break;
      }
      case GST_MESSAGE_WARNING:{
        GError *e = NULL;
        gst_message_parse_warning (m, &e, NULL);
        g_ptr_array_add (r->warnings, g_strdup (e->message));
        g_test_message ("warning: %s", e->message);
        g_error_free (e);
        break;
      }
      case GST_MESSAGE_ELEMENT:{
        const GstStructure *s = gst_message_get_structure (m);
        if (gst_structure_has_name (s, "simclr-train")) {
          g_ptr_array_add (r->train, gst_structure_copy (s));
          g_array_append_val (times, now);
        } else if (gst_structure_has_name (s, "simclr-checkpoint")) {
          g_ptr_array_add (r->checkpoints, gst_structure_copy (s));
        } else if (gst_structure_has_name (s, "simclr-replay")) {
          r->replay = gst_structure_copy (s);
        }
        break;
      }
      default:
        break;
    }
    gst_message_unref (m);
  }
  gst_element_set_state (p, GST_STATE_NULL);
  gst_bus_set_sync_handler (bus, NULL, NULL, NULL);
  gst_object_unref (bus);
  gst_object_unref (p);
  r->train_t = (gdouble *) g_array_free (times, FALSE);
  return r;
}

static guint64
u64 (const GstStructure * s, const gchar * f)
{
  guint64 v = 0;
  if (!gst_structure_get_uint64 (s, f, &v))
    g_error ("field %s missing in %" GST_PTR_FORMAT, f, s);
  return v;
}

static gboolean
has_warning (const Run * r, const gchar * part)
{
  for (guint i = 0; i < r->warnings->len; i++)
    if (strstr (g_ptr_array_index (r->warnings, i), part))
      return TRUE;
  return FALSE;
}

static void
assert_error (const Run * r, const gchar * source, const gchar * part)
{
  if (!r->error)
    g_error ("expected an error containing \"%s\", the run ended without",
        part);
  if (source && !g_str_has_prefix (r->error_source, source))
    g_error ("error from %s, expected from %s: %s", r->error_source, source,
        r->error->message);
  if (!strstr (r->error->message, part))
    g_error ("error \"%s\" lacks \"%s\"", r->error->message, part);
}

static gchar *
tmp_dir (void)
{
  gchar *d = g_dir_make_tmp ("pt-live-XXXXXX", NULL);
  g_assert_nonnull (d);
  return d;
}

static void
rm_dir (gchar * dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const gchar *name;
  while (d && (name = g_dir_read_name (d))) {
    gchar *p = g_build_filename (dir, name, NULL);
    g_remove (p);
    g_free (p);
  }
  if (d)
    g_dir_close (d);
  g_rmdir (dir);
  g_free (dir);
}

/* Newest checkpoint step of @dir (-1 if none), loaded as a trainer. */
static gint64
newest_step (const gchar * dir)
{
  SimclrError err = { 0 };
  char *p = simclr_ckptdir_resolve (dir, NULL, &err);
  SimclrTrainer *t;
  gint64 k;
  if (!p)
    return -1;
  t = simclr_trainer_load (p, 16, &err);
  if (!t)
    g_error ("%s does not load: %s", p, err.message);
  k = simclr_trainer_get_step (t);
  simclr_trainer_free (t);
  free (p);
  return k;
}

static gint
n_checkpoints (const gchar * dir)
{
  int64_t *s = NULL;
  int n = 0;
  SimclrError err = { 0 };
  g_assert_cmpint (simclr_ckptdir_list (dir, &s, &n, &err), ==, SIMCLR_OK);
  free (s);
  return n;
}

#define LIVE_SRC "videotestsrc is-live=true pattern=ball ! " \
  "video/x-raw,format=RGB,width=32,height=32,framerate=30/1"
#define AUG "simclraugment size=16 pair-mode=temporal temporal-offset=2"
#define ENC "simclrencoder batch-size=8 width=0.25 threads=1"

/* ---------------------------------------------------------------------------
 */
static void
test_counts_rotation (void)
{
  gchar *dir = tmp_dir ();
  gchar *desc = g_strdup_printf ("videotestsrc is-live=true pattern=ball "
      "num-buffers=120 ! video/x-raw,format=RGB,width=32,height=32,"
      "framerate=30/1 ! " AUG " ! " ENC " replay-size=40 lr-schedule=constant "
      "checkpoint-location=%s checkpoint-interval=3 checkpoint-keep=2 ! "
      "ntxentsink interval=1", dir);
  Run *r = run_pipeline (desc, 0, 120, NULL);
  SimclrReplayConfig cfg;
  size_t bytes = 0;
  guint64 prev_seen = 0;
  const GstStructure *last;

  g_assert_no_error (r->error);
  g_assert_true (r->eos);
  g_assert_cmpuint (r->train->len, >=, 3);
  /* The buffer's stated bytes are the core's for 40 samples of two 16x16
   * RGB views. */
  g_assert_nonnull (r->replay);
  simclr_replay_config_default (&cfg);
  cfg.capacity = 40;
  cfg.views = 2;
  cfg.view_bytes = 16 * 16 * 3;
  g_assert_cmpint (simclr_replay_bytes (&cfg, &bytes, NULL), ==, SIMCLR_OK);
  g_assert_cmpuint (u64 (r->replay, "bytes"), ==, bytes);
  g_assert_cmpstr (gst_structure_get_string (r->replay, "overflow"), ==,
      "drop");
  for (guint i = 0; i < r->train->len; i++) {
    const GstStructure *s = g_ptr_array_index (r->train, i);
    guint64 seen = u64 (s, "frames-seen"), buf = u64 (s, "frames-buffered"),
        tr = u64 (s, "frames-trained"), dr = u64 (s, "frames-dropped");
    guint held = 0;
    g_assert_true (gst_structure_get_uint (s, "replay-held", &held));
    g_assert_cmpuint (seen, >=, prev_seen);
    prev_seen = seen;
    g_assert_cmpuint (buf, <=, seen);   /* ring: all but unpaired views */
    g_assert_cmpuint (tr, <=, buf);
    g_assert_cmpuint (tr, >=, 8);
    g_assert_cmpuint (held, <=, 40);
    g_assert_cmpuint (held, ==, MIN (buf, 40));
    /* dropped: never trained on, so never more than what was not trained */
    g_assert_cmpuint (dr, <=, seen - tr);
  }
  /* 120 frames give 120 samples (temporal pairs at the end pair with the
   * last frame); all reached the buffer by the last step or were dropped
   * unpaired at EOS. */
  last = g_ptr_array_index (r->train, r->train->len - 1);
  g_assert_cmpuint (u64 (last, "frames-seen"), <=, 120);
  /* Rotation: two files, the newest the final checkpoint. */
  g_assert_cmpint (n_checkpoints (dir), ==, 2);
  g_assert_cmpint (newest_step (dir), ==, u64 (last, "step") + 1);
  run_free (r);
  g_free (desc);
  rm_dir (dir);
}

/* Slow steps (width 1): the in-order mode holds the source for a step; the
 * replay mode does not. */
static void
test_no_stall (void)
{
#define NO_STALL(extra) "videotestsrc is-live=true pattern=ball ! " \
      "video/x-raw,format=RGB,width=32,height=32,framerate=30/1 ! " \
      "identity name=capture ! " AUG " ! simclrencoder batch-size=8 width=1 " \
      "threads=1 lr-schedule=constant " extra " ! ntxentsink interval=1"
  gchar *d_replay = g_strdup (NO_STALL ("replay-size=64"));
  gchar *d_inorder = g_strdup (NO_STALL (""));
  Run *a = run_pipeline (d_replay, 12.0 * time_scale, 120, NULL);
  Run *b = run_pipeline (d_inorder, 12.0 * time_scale, 120, NULL);
  gdouble step_s;

  g_assert_no_error (a->error);
  g_assert_no_error (b->error);
  g_assert_cmpuint (a->train->len, >=, 2);
  g_assert_cmpuint (b->train->len, >=, 1);
  /* a step's duration, from the replay run's messages */
  step_s = (a->train_t[a->train->len - 1] - a->train_t[0])
      / (a->train->len - 1);
  g_print ("# no stall: step %.2f s; largest lateness at capture: replay "
      "mode %.3f s (%" G_GUINT64_FORMAT " frames), in-order mode %.3f s (%"
      G_GUINT64_FORMAT " frames)\n", step_s, a->max_late, a->frames,
      b->max_late, b->frames);
  /* In order, the source waits for whole steps. */
  g_assert_cmpfloat (b->max_late, >, 0.5 * step_s);
  /* In replay mode it never waits for one. */
  g_assert_cmpfloat (a->max_late, <, 0.25 * step_s);
  g_assert_cmpfloat (a->max_late, <, 0.2 * time_scale);
  run_free (a);
  run_free (b);
  g_free (d_replay);
  g_free (d_inorder);
}

static void
test_replay_refused (void)
{
  Run *r;

  r = run_pipeline (LIVE_SRC " ! " AUG " ! " ENC " replay-size=2000000000 ! "
      "ntxentsink", 0, 60, NULL);
  assert_error (r, "simclrencoder", "replay-size 2000000000");
  assert_error (r, "simclrencoder", "available");
  run_free (r);
  r = run_pipeline (LIVE_SRC " ! " AUG " ! " ENC " replay-size=1000 "
      "replay-max-bytes=100000 ! ntxentsink", 0, 60, NULL);
  assert_error (r, "simclrencoder", "above the limit of 100000 bytes");
  run_free (r);
  r = run_pipeline (LIVE_SRC " ! " AUG " ! " ENC " replay-size=4 ! "
      "ntxentsink", 0, 60, NULL);
  assert_error (r, "simclrencoder", "at least one batch");
  run_free (r);
}

/* views=V (3 here) in replay mode: the buffer holds V views per sample (its
 * bytes are the core's for 3 views), every step trains on 3N rows with a
 * finite loss; more views than the buffer holds is refused by name. */
static void
test_views (void)
{
  Run *r = run_pipeline ("videotestsrc is-live=true pattern=ball "
      "num-buffers=90 ! video/x-raw,format=RGB,width=32,height=32,"
      "framerate=30/1 ! simclraugment size=16 pair-mode=temporal "
      "temporal-offset=2 views=3 ! " ENC " views=3 replay-size=24 "
      "lr-schedule=constant ! ntxentsink interval=1", 0, 120, NULL);
  SimclrReplayConfig cfg;
  size_t bytes = 0;

  g_assert_no_error (r->error);
  g_assert_true (r->eos);
  g_assert_cmpuint (r->train->len, >=, 2);
  g_assert_nonnull (r->replay);
  simclr_replay_config_default (&cfg);
  cfg.capacity = 24;
  cfg.views = 3;
  cfg.view_bytes = 16 * 16 * 3;
  g_assert_cmpint (simclr_replay_bytes (&cfg, &bytes, NULL), ==, SIMCLR_OK);
  g_assert_cmpuint (u64 (r->replay, "bytes"), ==, bytes);
  for (guint i = 0; i < r->train->len; i++) {
    const GstStructure *s = g_ptr_array_index (r->train, i);
    gdouble loss = NAN;
    g_assert_true (gst_structure_get_double (s, "loss", &loss));
    g_assert_true (isfinite (loss));
    g_assert_cmpfloat (loss, >, 0.0);
    /* 3 views of 8 samples: each row has 22 negatives, 2 positives */
    g_assert_cmpfloat (loss, <, 2.0 * log (23.0));
  }
  run_free (r);
  r = run_pipeline (LIVE_SRC " ! " AUG " ! " ENC " views=17 replay-size=64 ! "
      "ntxentsink", 0, 60, NULL);
  assert_error (r, "simclrencoder", "views 17 with replay-size 64");
  run_free (r);
}

/* The source fails after a while (a camera unplugged): the run ends with
 * the error, and the steps since the last checkpoint are saved. */
static void
test_source_error (void)
{
  gchar *dir = tmp_dir ();
  gchar *desc = g_strdup_printf (LIVE_SRC " ! identity error-after=150 ! "
      AUG " ! " ENC " replay-size=64 lr-schedule=constant "
      "checkpoint-location=%s checkpoint-interval=1000 ! ntxentsink "
      "interval=1", dir);
  Run *r = run_pipeline (desc, 0, 120, NULL);
  const GstStructure *last;

  assert_error (r, "identity", "");
  g_assert_cmpuint (r->train->len, >=, 1);
  last = g_ptr_array_index (r->train, r->train->len - 1);
  /* no periodic checkpoint: the one in the folder is the shutdown's */
  g_assert_cmpuint (r->checkpoints->len, ==, 0);
  g_assert_cmpint (newest_step (dir), >=, (gint64) u64 (last, "step"));
  g_assert_cmpint (newest_step (dir), <=, (gint64) u64 (last, "step") + 1);
  run_free (r);
  g_free (desc);
  rm_dir (dir);
}

static void
test_renegotiate (void)
{
  /* Resolution changes are rescaled before simclraugment: the capsfilter
   * toggles the source's size, training goes on. */
  const gchar *desc = "videotestsrc is-live=true pattern=ball ! "
      "capsfilter name=cf caps=video/x-raw,width=64,height=48,framerate=30/1 "
      "! videoconvert ! videoscale ! video/x-raw,format=RGB,width=32,"
      "height=32,pixel-aspect-ratio=1/1 ! " AUG " ! " ENC " replay-size=64 "
      "lr-schedule=constant ! ntxentsink interval=1";
  GError *perr = NULL;
  GstElement *p = gst_parse_launch (desc, &perr), *cf;
  GstBus *bus = gst_element_get_bus (p);
  guint steps_before = 0, steps_after = 0;
  gboolean changed = FALSE;
  gint64 t0 = g_get_monotonic_time ();

  g_assert_no_error (perr);
  cf = gst_bin_get_by_name (GST_BIN (p), "cf");
  gst_element_set_state (p, GST_STATE_PLAYING);
  while (steps_after < 3) {
    GstMessage *m = gst_bus_timed_pop (bus, 100 * GST_MSECOND);
    g_assert_cmpint (g_get_monotonic_time () - t0, <,
        (gint64) 120 * time_scale * G_TIME_SPAN_SECOND);
    if (!m)
      continue;
    if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR) {
      GError *e = NULL;
      gst_message_parse_error (m, &e, NULL);
      g_error ("renegotiation: %s", e->message);
    }
    if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ELEMENT
        && gst_structure_has_name (gst_message_get_structure (m),
            "simclr-train")) {
      if (changed)
        steps_after++;
      else if (++steps_before == 3) {
        GstCaps *caps = gst_caps_from_string ("video/x-raw,width=80,"
            "height=60,framerate=30/1");
        g_object_set (cf, "caps", caps, NULL);
        gst_caps_unref (caps);
        changed = TRUE;
      }
    }
    gst_message_unref (m);
  }
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (cf);
  gst_object_unref (bus);
  gst_object_unref (p);

  g_print ("# renegotiation: 3 steps at 64x48, 3 more after the source "
      "switched to 80x60\n");
}

/* A format change mid-stream without a converter before simclraugment:
 * the encoder's caps query lets only its model's format through, so the
 * source's renegotiation fails (GStreamer's not-negotiated, from the
 * source); no step is taken on frames of the wrong format. */
static void
test_format_change (void)
{
  const gchar *desc = "videotestsrc is-live=true pattern=ball ! "
      "capsfilter name=cf caps=video/x-raw,format=RGB,width=32,height=32,"
      "framerate=30/1 ! " AUG " ! " ENC " replay-size=64 ! ntxentsink "
      "interval=1";
  GError *perr = NULL;
  GstElement *p = gst_parse_launch (desc, &perr), *cf;
  GstBus *bus = gst_element_get_bus (p);
  gboolean changed = FALSE;
  GError *e = NULL;
  gchar *dbg = NULL, *src = NULL;
  gint64 t0 = g_get_monotonic_time ();

  g_assert_no_error (perr);
  cf = gst_bin_get_by_name (GST_BIN (p), "cf");
  gst_element_set_state (p, GST_STATE_PLAYING);
  while (e == NULL) {
    GstMessage *m = gst_bus_timed_pop (bus, 100 * GST_MSECOND);
    g_assert_cmpint (g_get_monotonic_time () - t0, <,
        (gint64) 120 * time_scale * G_TIME_SPAN_SECOND);
    if (!m)
      continue;
    if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR) {
      gst_message_parse_error (m, &e, &dbg);
      src = g_strdup (GST_MESSAGE_SRC_NAME (m));
    }
    if (!changed && GST_MESSAGE_TYPE (m) == GST_MESSAGE_ELEMENT
        && gst_structure_has_name (gst_message_get_structure (m),
            "simclr-train")) {
      GstCaps *caps = gst_caps_from_string ("video/x-raw,format=GRAY8,"
          "width=32,height=32,framerate=30/1");
      g_object_set (cf, "caps", caps, NULL);
      gst_caps_unref (caps);
      changed = TRUE;
    }
    gst_message_unref (m);
  }
  gst_element_set_state (p, GST_STATE_NULL);
  g_assert_true (changed);
  if (!g_str_has_prefix (src, "videotestsrc") || !dbg
      || !strstr (dbg, "not-negotiated"))
    g_error ("format change: error from %s: %s (%s), expected the source's "
        "not-negotiated", src, e->message, dbg ? dbg : "");
  g_error_free (e);
  g_free (dbg);
  g_free (src);
  gst_object_unref (cf);
  gst_object_unref (bus);
  gst_object_unref (p);
}

static void
test_checkpoint_not_writable (void)
{
  /* a folder that is a file: checked at start in replay mode */
  Run *r = run_pipeline (LIVE_SRC " ! " AUG " ! " ENC " replay-size=64 "
      "checkpoint-location=/etc/hostname/ck.safetensors ! ntxentsink", 0, 60,
      NULL);
  /* The whole text, as before the check moved into the core (ckptdir.h
   * simclr_ckptdir_check_writable). */
  assert_error (r, "simclrencoder", "Cannot write checkpoints to "
      "\"/etc/hostname/ck.safetensors\": folder \"/etc/hostname\": "
      "Not a directory.");
  g_assert_cmpuint (r->train->len, ==, 0);
  run_free (r);
}

/* The disk fills up: a file-size limit from the first checkpoint on. */
static void
limit_file_size (void)
{
  struct rlimit rl = { 200000, RLIM_INFINITY };
  setrlimit (RLIMIT_FSIZE, &rl);
}

static void
test_disk_full (void)
{
  gchar *dir = tmp_dir ();
  gchar *desc = g_strdup_printf ("videotestsrc is-live=true pattern=ball "
      "num-buffers=150 ! video/x-raw,format=RGB,width=32,height=32,"
      "framerate=30/1 ! " AUG " ! " ENC " replay-size=64 lr-schedule=constant "
      "checkpoint-location=%s checkpoint-interval=2 checkpoint-keep=2 ! "
      "ntxentsink interval=1", dir);
  struct rlimit old;
  Run *r;
  gint64 first;

  signal (SIGXFSZ, SIG_IGN);    /* EFBIG instead of a signal */
  getrlimit (RLIMIT_FSIZE, &old);
  r = run_pipeline (desc, 0, 120, limit_file_size);
  setrlimit (RLIMIT_FSIZE, &old);
  /* The first save worked; the later ones warned and training went on;
   * the final one, at EOS, is an error. */
  g_assert_cmpuint (r->checkpoints->len, ==, 1);
  first = (gint64) u64 (g_ptr_array_index (r->checkpoints, 0), "step");
  g_assert_true (has_warning (r, "Could not write checkpoint"));
  g_assert_true (has_warning (r, "File too large"));
  g_assert_cmpuint (u64 (g_ptr_array_index (r->train, r->train->len - 1),
          "step"), >, (guint64) first + 2);
  assert_error (r, "simclrencoder", "File too large");
  /* What was saved stays, and nothing half-written is left. */
  g_assert_cmpint (newest_step (dir), ==, first);
  g_assert_cmpint (n_checkpoints (dir), ==, 1);
  run_free (r);
  g_free (desc);
  rm_dir (dir);
}

static void
test_passes (void)
{
  gchar *dir = tmp_dir ();
  gchar *ck = g_build_filename (dir, "p.safetensors", NULL);
  gchar *avi = g_build_filename (dir, "clip.avi", NULL);
  gchar *desc;
  Run *r;

  /* A seekable input: a 24-frame clip (videotestsrc with num-buffers does
   * not start again after a seek). */
  desc = g_strdup_printf ("videotestsrc num-buffers=24 pattern=ball ! "
      "video/x-raw,format=I420,width=32,height=32,framerate=30/1 ! "
      "avenc_mpeg4 ! avimux ! filesink location=%s", avi);
  r = run_pipeline (desc, 0, 60, NULL);
  g_assert_no_error (r->error);
  run_free (r);
  g_free (desc);

  /* In order: 24 frames per pass, 3 passes, 3 steps of 8 per pass. */
  desc = g_strdup_printf ("filesrc location=%s ! decodebin ! videoconvert ! "
      "video/x-raw,format=RGB ! simclraugment size=16 ! " ENC " passes=3 "
      "total-steps=100 checkpoint-location=%s ! ntxentsink interval=1", avi,
      ck);
  r = run_pipeline (desc, 0, 120, NULL);
  g_assert_no_error (r->error);
  g_assert_true (r->eos);
  g_assert_cmpuint (r->train->len, ==, 9);
  g_assert_cmpuint (r->checkpoints->len, ==, 1);
  g_assert_cmpuint (u64 (g_ptr_array_index (r->checkpoints, 0), "step"), ==,
      9);
  run_free (r);
  g_free (desc);

  /* Replay mode, waiting: every sample of the two passes reaches the
   * buffer; the run ends at the end of the second pass. */
  desc = g_strdup_printf ("filesrc location=%s ! decodebin ! videoconvert ! "
      "video/x-raw,format=RGB ! simclraugment size=16 ! " ENC " passes=2 "
      "replay-size=32 replay-min=16 lr-schedule=constant "
      "checkpoint-location=%s ! ntxentsink interval=1", avi, ck);
  r = run_pipeline (desc, 0, 120, NULL);
  g_assert_no_error (r->error);
  g_assert_true (r->eos);
  g_assert_cmpstr (gst_structure_get_string (r->replay, "overflow"), ==,
      "wait");
  {
    const GstStructure *last = g_ptr_array_index (r->train, r->train->len - 1);
    g_assert_cmpuint (u64 (last, "frames-seen"), <=, 48);
    g_assert_cmpuint (u64 (last, "frames-seen"), >=, 33);
    /* waiting: nothing was overwritten before it trained */
    g_assert_cmpuint (u64 (last, "frames-dropped"), ==, 0);
  }
  run_free (r);
  g_free (desc);
  g_remove (ck);
  g_free (ck);
  g_free (avi);
  rm_dir (dir);
}

static void
test_resume_folder (void)
{
  gchar *dir = tmp_dir ();
  gchar *desc = g_strdup_printf ("videotestsrc is-live=true pattern=ball "
      "num-buffers=60 ! video/x-raw,format=RGB,width=32,height=32,"
      "framerate=30/1 ! " AUG " ! " ENC " replay-size=32 lr-schedule=constant "
      "checkpoint-location=%s checkpoint-interval=2 resume-from=%s ! "
      "ntxentsink interval=1", dir, dir);
  Run *a = run_pipeline (desc, 0, 120, NULL), *b;
  gint64 k;

  /* An empty folder: a new run, with a warning. */
  g_assert_no_error (a->error);
  g_assert_true (has_warning (a, "holds no checkpoint yet"));
  g_assert_cmpuint (u64 (g_ptr_array_index (a->train, 0), "step"), ==, 0);
  k = newest_step (dir);
  g_assert_cmpint (k, ==, (gint64) u64 (g_ptr_array_index (a->train,
              a->train->len - 1), "step") + 1);
  /* Again: it continues from the folder's newest. */
  b = run_pipeline (desc, 0, 120, NULL);
  g_assert_no_error (b->error);
  g_assert_false (has_warning (b, "holds no checkpoint yet"));
  g_assert_cmpuint (u64 (g_ptr_array_index (b->train, 0), "step"), ==, k);
  g_assert_cmpint (newest_step (dir), >, k);
  run_free (a);
  run_free (b);
  g_free (desc);
  rm_dir (dir);
}

/* The learning rates the messages report follow the core's schedules. */
static void
test_schedules (void)
{
  static const struct
  {
    const gchar *props;
    SimclrLrSchedule sched;
  } cases[] = {
    {"lr-schedule=constant", SIMCLR_LR_SCHEDULE_CONSTANT},
    {"lr-schedule=cosine-restarts restart-period=3",
        SIMCLR_LR_SCHEDULE_COSINE_RESTARTS},
  };
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    gchar *desc = g_strdup_printf ("videotestsrc num-buffers=80 ! "
        "video/x-raw,format=RGB,width=32,height=32 ! simclraugment size=16 ! "
        ENC " warmup-steps=2 total-steps=5 learning-rate=0.1 lr-scaling=sqrt "
        "%s ! ntxentsink interval=1", cases[c].props);
    Run *r = run_pipeline (desc, 0, 120, NULL);
    SimclrOptimConfig o;
    g_assert_no_error (r->error);
    /* The stream schedules never complete: all 10 steps, past
     * total-steps, without the "past total-steps" warning. */
    g_assert_cmpuint (r->train->len, ==, 10);
    g_assert_false (has_warning (r, "past total-steps"));
    simclr_optim_config_default (&o);
    o.base_lr = 0.1;
    o.lr_scaling = SIMCLR_LR_SCALING_SQRT;
    o.batch_size = 8;
    o.warmup_steps = 2;
    o.total_steps = 5;
    o.schedule = cases[c].sched;
    o.restart_period = 3;
    for (guint i = 0; i < r->train->len; i++) {
      const GstStructure *s = g_ptr_array_index (r->train, i);
      gdouble lr = 0;
      g_assert_true (gst_structure_get_double (s, "lr", &lr));
      g_assert_cmpfloat_with_epsilon (lr, simclr_optim_lr (&o, i), 1e-12);
    }
    run_free (r);
    g_free (desc);
  }
}

int
main (int argc, char **argv)
{
  const gchar *scale = g_getenv ("SIMCLR_TEST_TIME_SCALE");
  if (scale)
    time_scale = (guint) MAX (1, atoi (scale));
  gst_init (&argc, &argv);
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/live/counts-rotation", test_counts_rotation);
  g_test_add_func ("/live/no-stall", test_no_stall);
  g_test_add_func ("/live/replay-refused", test_replay_refused);
  g_test_add_func ("/live/views", test_views);
  g_test_add_func ("/live/source-error", test_source_error);
  g_test_add_func ("/live/renegotiate", test_renegotiate);
  g_test_add_func ("/live/format-change", test_format_change);
  g_test_add_func ("/live/checkpoint-not-writable",
      test_checkpoint_not_writable);
  g_test_add_func ("/live/disk-full", test_disk_full);
  g_test_add_func ("/live/passes", test_passes);
  g_test_add_func ("/live/resume-folder", test_resume_folder);
  g_test_add_func ("/live/schedules", test_schedules);
  return g_test_run ();
}
