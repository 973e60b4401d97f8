/* test-state-races.c: state changes racing with data and events (issue 15:
 * a timing-dependent SIGSEGV in the harness fuzz of simclrencoder !
 * ntxentsink). Each test makes one race happen on purpose, at the moment
 * it is known to be open, and checks what must hold afterwards; the
 * harness fuzz (test-harness-fuzz.c) only meets them by chance.
 *
 * - replay mode: a FLUSH_STOP and a SEGMENT that reach simclrencoder while
 *   its change to READY writes the final checkpoint (a flushing seek racing
 *   with the shutdown) must not restart the training thread. Before the
 *   fix they did: the thread then trained on during the pads' deactivation
 *   and raced with the final save. A sample's views that follow the
 *   FLUSH_STOP are refused as flushing (46227ab: the FLUSH_STOP cleared the
 *   flag, so with replay-overflow=wait a view waited for room in the replay
 *   buffer with no training thread left, holding the stream lock the pads'
 *   deactivation needed).
 * - passes: the count of passes done does not leak from one run of the
 *   element into the next (a second run after READY also seeks back at
 *   the end of its first pass).
 * - simclraugment and simclrnoveltyfilter: buffers pushed from a thread
 *   while the element goes up and down (pad activation lets a buffer in
 *   before start () finished in GStreamer 1.22) give no crash and no
 *   warning.
 */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include <glib/gstdio.h>
#include <string.h>

#include "gstsimclr.h"

#define SIDE 8

static gchar *tmp_dir;

static gdouble
time_scale (void)
{
  const gchar *s = g_getenv ("SIMCLR_TEST_TIME_SCALE");
  gdouble v = s ? g_ascii_strtod (s, NULL) : 1.0;
  return v >= 1.0 ? v : 1.0;
}

/* A GRAY8 SIDE x SIDE view of @sample with its frame meta. */
static GstBuffer *
make_view (guint64 sample, gint view)
{
  GstBuffer *b = gst_buffer_new_allocate (NULL, SIDE * SIDE, NULL);
  GstMapInfo map;

  gst_buffer_map (b, &map, GST_MAP_WRITE);
  for (gint i = 0; i < SIDE * SIDE; i++)
    map.data[i] = (guint8) (sample * 37 + view * 101 + i * 13);
  gst_buffer_unmap (b, &map);
  gst_buffer_add_simclr_frame_meta (b, sample, view, (gint) (sample % 3), 0);
  GST_BUFFER_PTS (b) = sample * GST_MSECOND;
  GST_BUFFER_DURATION (b) = GST_MSECOND;
  return b;
}

/* ---- replay mode: no restart of the training thread while stopping ----- */

typedef struct
{
  GstHarness *h;
  GstPad *enc_src;              /* simclrencoder's source pad */
  gboolean armed;               /* set just before the change to READY */
  gboolean fired;
  GstTaskState task_after;      /* the training thread after our events */
  gboolean segment_ok;
  GstFlowReturn views_after[2]; /* a sample's views pushed after them */
} StopRace;

/* Runs on the thread that posts: here, the one changing the state, inside
 * simclrencoder's final save of replay mode (gst_simclr_encoder_live_stop),
 * after the training thread was stopped and before the pads deactivate. */
static GstBusSyncReply
stop_race_sync (GstBus * bus, GstMessage * m, gpointer data)
{
  StopRace *r = data;
  const GstStructure *s = gst_message_get_structure (m);
  GstSegment seg;

  if (!r->armed || r->fired || GST_MESSAGE_TYPE (m) != GST_MESSAGE_ELEMENT
      || !s || !gst_structure_has_name (s, SIMCLR_CHECKPOINT_MESSAGE))
    return GST_BUS_PASS;
  r->fired = TRUE;
  /* What a flushing seek sends downstream, arriving at that moment. */
  gst_pad_push_event (r->h->srcpad, gst_event_new_flush_start ());
  gst_pad_push_event (r->h->srcpad, gst_event_new_flush_stop (TRUE));
  gst_segment_init (&seg, GST_FORMAT_TIME);
  r->segment_ok = gst_pad_push_event (r->h->srcpad,
      gst_event_new_segment (&seg));
  r->task_after = gst_pad_get_task_state (r->enc_src);
  for (gint v = 0; v < 2; v++)
    r->views_after[v] = gst_pad_push (r->h->srcpad, make_view (100, v));
  return GST_BUS_PASS;
}

GST_START_TEST (test_replay_no_restart_while_stopping)
{
  gchar *ckpt = g_build_filename (tmp_dir, "replay.safetensors", NULL);
  gchar *desc = g_strdup_printf ("simclrencoder name=e width=0.25 "
      "batch-size=2 proj-hidden=8 proj-dim=8 threads=1 seed=3 "
      "replay-size=6 replay-overflow=drop lr-schedule=constant "
      "warmup-steps=0 checkpoint-location=%s ! ntxentsink name=s async=false",
      ckpt);
  GError *err = NULL;
  GstElement *bin = gst_parse_bin_from_description (desc, TRUE, &err);
  GstElement *enc;
  GstBus *bus = gst_bus_new ();
  StopRace r = { 0 };
  guint64 step = 0;
  gint64 deadline;

  fail_unless (bin != NULL, "%s", err ? err->message : "no bin");
  enc = gst_bin_get_by_name (GST_BIN (bin), "e");
  r.enc_src = gst_element_get_static_pad (enc, "src");
  r.task_after = GST_TASK_STARTED;
  gst_element_set_bus (bin, bus);
  gst_bus_set_sync_handler (bus, stop_race_sync, &r, NULL);
  r.h = gst_harness_new_with_element (bin, "sink", NULL);
  gst_object_unref (bin);       /* the harness holds it until teardown */
  gst_harness_set_src_caps_str (r.h, "video/x-raw,format=GRAY8,width=8,"
      "height=8,framerate=0/1");
  for (guint64 n = 0; n < 6; n++)
    for (gint v = 0; v < 2; v++)
      fail_unless_equals_int (gst_harness_push (r.h, make_view (n, v)),
          GST_FLOW_OK);

  /* The training thread steps on the replay buffer by itself. */
  deadline = g_get_monotonic_time () + (gint64) (60 * time_scale ()) *
      G_TIME_SPAN_SECOND;
  while (step < 2 && g_get_monotonic_time () < deadline) {
    g_usleep (5000);
    g_object_get (enc, "step", &step, NULL);
  }
  fail_unless (step >= 2, "no training step in replay mode (step %"
      G_GUINT64_FORMAT ")", step);

  r.armed = TRUE;
  fail_unless (gst_element_set_state (bin, GST_STATE_READY) ==
      GST_STATE_CHANGE_SUCCESS);
  fail_unless (r.fired, "the change to READY wrote no final checkpoint "
      "(the race window of this test)");
  fail_unless (r.segment_ok, "the segment after the flush was refused");
  /* stop_task left it STOPPED; a restart made it STARTED (or PAUSED once
   * its step met the flushing sink). */
  fail_unless (r.task_after == GST_TASK_STOPPED, "the training thread was "
      "restarted while the element went to READY (task state %d, 0 = "
      "started)", r.task_after);
  fail_unless (gst_pad_get_task_state (r.enc_src) != GST_TASK_STARTED);
  /* Stopped, it stays flushing after the FLUSH_STOP: the sample that
   * completes is refused, not filed in the replay buffer (46227ab). */
  fail_unless_equals_int (r.views_after[1], GST_FLOW_FLUSHING);
  fail_unless (g_file_test (ckpt, G_FILE_TEST_EXISTS));

  gst_element_set_state (bin, GST_STATE_NULL);
  gst_bus_set_sync_handler (bus, NULL, NULL, NULL);
  gst_element_set_bus (bin, NULL);
  gst_bus_set_flushing (bus, TRUE);
  gst_object_unref (bus);
  gst_object_unref (r.enc_src);
  gst_object_unref (enc);
  gst_harness_teardown (r.h);
  g_remove (ckpt);
  g_free (ckpt);
  g_free (desc);
}

GST_END_TEST;

/* ---- passes: one run's pass count does not leak into the next ---------- */

/* Pushes stream-start, caps and a segment, then one sample's two views (no
 * batch: batch-size 4) and EOS. */
static void
push_short_stream (GstHarness * h, guint run)
{
  GstSegment seg;
  gchar *id = g_strdup_printf ("passes-run-%u", run);
  GstCaps *caps = gst_caps_from_string ("video/x-raw,format=GRAY8,width=8,"
      "height=8,framerate=0/1");

  gst_segment_init (&seg, GST_FORMAT_TIME);
  fail_unless (gst_harness_push_event (h, gst_event_new_stream_start (id)));
  fail_unless (gst_harness_push_event (h, gst_event_new_caps (caps)));
  fail_unless (gst_harness_push_event (h, gst_event_new_segment (&seg)));
  gst_caps_unref (caps);
  for (gint v = 0; v < 2; v++)
    fail_unless_equals_int (gst_harness_push (h, make_view (run, v)),
        GST_FLOW_OK);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  g_free (id);
}

/* The seek back to the start that simclrencoder sends upstream (from
 * another thread) at the end of a pass; FALSE if none came in time. */
static gboolean
wait_for_seek (GstHarness * h)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) (10 * time_scale ())
      * G_TIME_SPAN_SECOND;
  while (g_get_monotonic_time () < deadline) {
    GstEvent *ev = gst_harness_try_pull_upstream_event (h);
    gboolean seek;
    if (!ev) {
      g_usleep (2000);
      continue;
    }
    seek = GST_EVENT_TYPE (ev) == GST_EVENT_SEEK;
    gst_event_unref (ev);
    if (seek)
      return TRUE;
  }
  return FALSE;
}

/* passes=2: the first pass's EOS is consumed and answered by a seek back
 * to the start. The count of passes done belongs to a run: after READY the
 * same element's next run starts at pass 1 again, so its EOS is consumed
 * and answered by a seek too, not forwarded as the last pass's. In order
 * and in replay mode. */
GST_START_TEST (test_passes_per_run)
{
  static const gchar *const modes[] = { "", "replay-size=6 "
        "replay-overflow=drop" };

  for (guint m = 0; m < G_N_ELEMENTS (modes); m++) {
    gchar *desc = g_strdup_printf ("simclrencoder width=0.25 batch-size=4 "
        "proj-hidden=8 proj-dim=8 threads=1 seed=3 passes=2 %s", modes[m]);
    GstHarness *h = gst_harness_new_parse (desc);
    GstEvent *ev;

    for (guint run = 0; run < 2; run++) {
      if (run > 0) {
        fail_unless (gst_element_set_state (h->element, GST_STATE_READY) ==
            GST_STATE_CHANGE_SUCCESS);
        gst_harness_play (h);
      }
      push_short_stream (h, run);
      fail_unless (wait_for_seek (h), "%s: run %u: no seek back to the "
          "start after the EOS of pass 1 of 2", desc, run);
      while ((ev = gst_harness_try_pull_event (h))) {
        fail_if (GST_EVENT_TYPE (ev) == GST_EVENT_EOS, "%s: run %u: the EOS "
            "of pass 1 of 2 was forwarded (the run ended)", desc, run);
        gst_event_unref (ev);
      }
    }
    gst_harness_teardown (h);
    g_free (desc);
  }
}

GST_END_TEST;

/* ---- filters: data from a thread while the element goes up and down ---- */

typedef struct
{
  GstHarness *h;
  const gchar *caps;
  gint bytes;
  gint running;                 /* atomic */
  guint64 pushed, flowing;
} Feeder;

static gpointer
feeder_func (gpointer data)
{
  Feeder *f = data;
  GstSegment seg;
  gboolean need_events = TRUE;

  gst_segment_init (&seg, GST_FORMAT_TIME);
  while (g_atomic_int_get (&f->running)) {
    GstBuffer *b;
    GstMapInfo map;
    if (need_events) {
      gchar *sid = g_strdup_printf ("race-%" G_GUINT64_FORMAT, f->pushed);
      GstCaps *caps = gst_caps_from_string (f->caps);
      gst_pad_push_event (f->h->srcpad, gst_event_new_stream_start (sid));
      gst_pad_push_event (f->h->srcpad, gst_event_new_caps (caps));
      gst_pad_push_event (f->h->srcpad, gst_event_new_segment (&seg));
      gst_caps_unref (caps);
      g_free (sid);
      need_events = FALSE;
    }
    b = gst_buffer_new_allocate (NULL, f->bytes, NULL);
    gst_buffer_map (b, &map, GST_MAP_WRITE);
    for (gint i = 0; i < f->bytes; i++)
      map.data[i] = (guint8) (f->pushed * 7 + i);
    gst_buffer_unmap (b, &map);
    gst_buffer_add_simclr_frame_meta (b, f->pushed / 2, f->pushed % 2, 0, 0);
    GST_BUFFER_PTS (b) = f->pushed * GST_MSECOND;
    if (gst_pad_push (f->h->srcpad, b) == GST_FLOW_OK)
      f->flowing++;
    else
      need_events = TRUE;
    f->pushed++;
  }
  return NULL;
}

/* Pushes from a thread while this one cycles the element READY <-> PLAYING
 * @cycles times (every activation is a window for a buffer before start ()
 * finished); then checks that data flowed at all. */
static void
cycle_while_feeding (const gchar * factory, const gchar * props,
    const gchar * caps, gint bytes, gint cycles)
{
  GstElement *e = gst_element_factory_make (factory, NULL);
  GstBus *bus = gst_bus_new ();
  Feeder f = { 0 };
  GThread *t;

  fail_unless (e != NULL, "no %s", factory);
  if (props) {
    gchar **kv = g_strsplit (props, " ", -1);
    for (gchar ** p = kv; *p; p++) {
      gchar **pair = g_strsplit (*p, "=", 2);
      gst_util_set_object_arg (G_OBJECT (e), pair[0], pair[1]);
      g_strfreev (pair);
    }
    g_strfreev (kv);
  }
  gst_element_set_bus (e, bus);
  f.h = gst_harness_new_with_element (e, "sink", "src");
  gst_object_unref (e);
  f.caps = caps;
  f.bytes = bytes;
  f.running = 1;
  t = g_thread_new ("feeder", feeder_func, &f);
  for (gint i = 0; i < cycles; i++) {
    GstBuffer *b;
    gst_element_set_state (e, i % 3 == 2 ? GST_STATE_NULL : GST_STATE_READY);
    gst_element_set_state (e, GST_STATE_PLAYING);
    g_usleep (g_random_int_range (0, 300));
    while ((b = gst_harness_try_pull (f.h)))
      gst_buffer_unref (b);
    gst_bus_set_flushing (bus, TRUE);   /* drops queued messages */
    gst_bus_set_flushing (bus, FALSE);
  }
  g_atomic_int_set (&f.running, 0);
  gst_element_set_state (e, GST_STATE_NULL);
  g_thread_join (t);
  GST_INFO ("%s: %" G_GUINT64_FORMAT " pushed, %" G_GUINT64_FORMAT
      " accepted", factory, f.pushed, f.flowing);
  fail_unless (f.flowing > 0, "%s never accepted a buffer", factory);
  gst_element_set_bus (e, NULL);
  gst_bus_set_flushing (bus, TRUE);
  gst_object_unref (bus);
  gst_harness_teardown (f.h);
}

GST_START_TEST (test_augment_activation_race)
{
  cycle_while_feeding ("simclraugment", "size=8 seed=1",
      "video/x-raw,format=GRAY8,width=12,height=12,framerate=0/1", 144, 300);
}

GST_END_TEST;

GST_START_TEST (test_novelty_activation_race)
{
  cycle_while_feeding ("simclrnoveltyfilter", "embedding=ahash",
      "video/x-raw,format=GRAY8,width=16,height=16,framerate=0/1", 256, 300);
}

GST_END_TEST;

static Suite *
state_races_suite (void)
{
  Suite *s = suite_create ("state-races");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, (guint) (120 * time_scale ()));
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_replay_no_restart_while_stopping);
  tcase_add_test (tc, test_passes_per_run);
  tcase_add_test (tc, test_augment_activation_race);
  tcase_add_test (tc, test_novelty_activation_race);
  return s;
}

int
main (int argc, char **argv)
{
  Suite *s;
  int ret;

  gst_check_init (&argc, &argv);
  /* The feeder resends stream-start, caps and segment after a refused push;
   * one pushed in the instant after a state change meets a pad without
   * them, and GstPad warns about our stream, not about the element. */
  gst_check_add_log_filter ("GStreamer", G_LOG_LEVEL_WARNING,
      g_regex_new ("Got data flow before (stream-start|segment) event", 0, 0,
          NULL), NULL, NULL, NULL);
  gst_check_add_log_filter ("GStreamer", G_LOG_LEVEL_WARNING,
      g_regex_new ("Sticky event misordering", 0, 0, NULL), NULL, NULL, NULL);
  tmp_dir = g_dir_make_tmp ("state-races-XXXXXX", NULL);
  s = state_races_suite ();
  ret = gst_check_run_suite (s, "state-races", __FILE__);
  g_rmdir (tmp_dir);
  g_free (tmp_dir);
  return ret;
}
