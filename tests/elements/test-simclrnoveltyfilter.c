/* test-simclrnoveltyfilter.c: GstHarness tests of simclrnoveltyfilter.
 *
 * A "video" of repeated frames (each of a few distinct patterns shown
 * several times in a row) keeps exactly the first frame of each run, with
 * the checkpoint-free pixel embedding and with a random encoder checkpoint;
 * kept frames pass unchanged with their timestamps; one message per kept
 * frame and a summary at EOS; keep-ratio passes about that fraction; a
 * threshold and keep-ratio ranges are [-1, 1] and [0, 1], a missing checkpoint
 * and bad caps are refused.
 */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "gstsimclr.h"
#include "simclr/simclr.h"

#define W 40
#define H 30
#define STRIDE 120              /* RGB, 40 * 3: already a multiple of 4 */
#define PATTERNS 5
#define REPEAT 4

/* Distinct synthetic frames: gradients, stripes, a checkerboard, a disc. */
static guint8
pattern_value (gint p, gint x, gint y, gint c)
{
  switch (p) {
    case 0:
      return (guint8) (x * 255 / (W - 1));
    case 1:
      return (guint8) (y * 255 / (H - 1));
    case 2:
      return ((x / 5 + y / 5) % 2) ? 230 : 20;
    case 3:
      return (((x + y) / 4) % 2) ? (c == 0 ? 250 : 40) : 10;
    default:{
      gint dx = x - W / 2, dy = y - H / 2;
      return dx * dx + dy * dy < 100 ? 240 : (c == 2 ? 160 : 30);
    }
  }
}

static GstBuffer *
make_frame (gint p, gint index)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, STRIDE * H, NULL);
  GstMapInfo map;
  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  for (gint y = 0; y < H; y++)
    for (gint x = 0; x < W; x++)
      for (gint c = 0; c < 3; c++)
        map.data[y * STRIDE + x * 3 + c] = pattern_value (p, x, y, c);
  gst_buffer_unmap (buf, &map);
  GST_BUFFER_PTS (buf) = index * 40 * GST_MSECOND;
  GST_BUFFER_DURATION (buf) = 40 * GST_MSECOND;
  return buf;
}

static GstHarness *
setup (GstElement * filter, GstBus ** bus)
{
  GstHarness *h = gst_harness_new_with_element (filter, "sink", "src");
  gst_object_unref (filter);
  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=40,"
      "height=30,framerate=25/1");
  *bus = gst_bus_new ();
  gst_element_set_bus (h->element, *bus);
  return h;
}

/* Pushes PATTERNS runs of REPEAT identical frames, then EOS; checks the
 * first frame of each run (and only it) comes out unchanged, and the
 * messages. */
static void
check_repeated_frames (GstElement * filter)
{
  GstBus *bus;
  GstHarness *h = setup (filter, &bus);
  GstMessage *msg;
  gint kept = 0, index = 0;
  guint64 frames = 0, summary_kept = 0;
  gboolean summary = FALSE;

  for (gint p = 0; p < PATTERNS; p++)
    for (gint r = 0; r < REPEAT; r++, index++)
      fail_unless_equals_int (gst_harness_push (h, make_frame (p, index)),
          GST_FLOW_OK);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));

  for (gint p = 0; p < PATTERNS; p++) {
    GstBuffer *out = gst_harness_try_pull (h);
    GstBuffer *expect = make_frame (p, p * REPEAT);
    GstMapInfo a, b;
    fail_unless (out != NULL, "pattern %d: no frame passed", p);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (out), GST_BUFFER_PTS (expect));
    gst_buffer_map (out, &a, GST_MAP_READ);
    gst_buffer_map (expect, &b, GST_MAP_READ);
    fail_unless_equals_int (a.size, b.size);
    fail_unless (memcmp (a.data, b.data, a.size) == 0,
        "pattern %d: the kept frame was changed", p);
    gst_buffer_unmap (out, &a);
    gst_buffer_unmap (expect, &b);
    gst_buffer_unref (out);
    gst_buffer_unref (expect);
  }
  fail_unless (gst_harness_try_pull (h) == NULL,
      "a repeated frame passed the filter");

  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT))) {
    const GstStructure *s = gst_message_get_structure (msg);
    if (gst_structure_has_name (s, SIMCLR_NOVELTY_MESSAGE)) {
      guint64 frame, k;
      gdouble score;
      fail_unless (gst_structure_get_uint64 (s, "frame", &frame));
      fail_unless (gst_structure_get_uint64 (s, "kept", &k));
      fail_unless (gst_structure_get_double (s, "score", &score));
      fail_unless_equals_uint64 (frame, (guint64) kept * REPEAT);
      fail_unless_equals_uint64 (k, (guint64) kept + 1);
      fail_unless (score >= -1.0 && score <= 1.0 + 1e-6);
      if (kept == 0)
        fail_unless_equals_float (score, -1.0);
      kept++;
    } else if (gst_structure_has_name (s, SIMCLR_NOVELTY_SUMMARY_MESSAGE)) {
      fail_unless (gst_structure_get_uint64 (s, "frames", &frames));
      fail_unless (gst_structure_get_uint64 (s, "kept", &summary_kept));
      summary = TRUE;
    }
    gst_message_unref (msg);
  }
  fail_unless_equals_int (kept, PATTERNS);
  fail_unless (summary, "no summary at EOS");
  fail_unless_equals_uint64 (frames, PATTERNS * REPEAT);
  fail_unless_equals_uint64 (summary_kept, PATTERNS);

  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
}

GST_START_TEST (test_repeated_frames_raw)
{
  GstElement *f = gst_element_factory_make ("simclrnoveltyfilter", NULL);
  g_object_set (f, "embedding", 2 /* raw */ , "threshold", 0.9, NULL);
  check_repeated_frames (f);
}

GST_END_TEST;

/* A random ResNet's embeddings of different images are close (all
 * non-negative pooled features), but a repeated frame gives the same
 * embedding exactly: a threshold just below 1 separates them. */
GST_START_TEST (test_repeated_frames_checkpoint)
{
  gchar *dir = g_dir_make_tmp ("novelty-XXXXXX", NULL);
  gchar *path = g_build_filename (dir, "random.safetensors", NULL);
  SimclrModelConfig cfg;
  SimclrError err = { 0 };
  SimclrModel *m;
  GstElement *f;

  simclr_model_config_default (&cfg);
  cfg.width = 0.25;
  cfg.image_size = 16;
  cfg.max_batch = 2;
  m = simclr_model_new (&cfg, 3, &err);
  fail_unless (m != NULL, "%s", err.message);
  fail_unless_equals_int (simclr_checkpoint_save_model (m, path, &err),
      SIMCLR_OK);
  simclr_model_free (m);

  f = gst_element_factory_make ("simclrnoveltyfilter", NULL);
  g_object_set (f, "checkpoint-location", path, "threshold", 0.99999,
      "flip-average", TRUE, NULL);
  check_repeated_frames (f);
  g_unlink (path);
  g_rmdir (dir);
  g_free (path);
  g_free (dir);
}

GST_END_TEST;

/* Frames of independent noise: keep-ratio 0.25 passes about a quarter of
 * them (the threshold tracks the scores' quantile). */
GST_START_TEST (test_keep_ratio)
{
  GstElement *f = gst_element_factory_make ("simclrnoveltyfilter", NULL);
  GstBus *bus;
  GstHarness *h;
  const gint n = 400;
  guint64 kept = 0;

  g_object_set (f, "embedding", 2, "keep-ratio", 0.25, "memory", 8, NULL);
  h = setup (f, &bus);
  for (gint i = 0; i < n; i++) {
    GstBuffer *buf = gst_buffer_new_allocate (NULL, STRIDE * H, NULL);
    GstMapInfo map;
    gst_buffer_map (buf, &map, GST_MAP_WRITE);
    for (gint j = 0; j < STRIDE * H; j++)
      map.data[j] = (guint8) (simclr_rng_u64 (9, i, j) & 0xff);
    gst_buffer_unmap (buf, &map);
    fail_unless_equals_int (gst_harness_push (h, buf), GST_FLOW_OK);
  }
  g_object_get (f, "kept", &kept, NULL);
  fail_unless (kept >= 0.18 * n && kept <= 0.32 * n,
      "keep-ratio 0.25 kept %" G_GUINT64_FORMAT " of %d", kept, n);
  fail_unless_equals_int (gst_harness_buffers_received (h), (guint) kept);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Runs @launch to the first error and returns its message (to free). */
static gchar *
first_error (const gchar * launch)
{
  GError *perr = NULL;
  GstElement *pipe = gst_parse_launch (launch, &perr);
  GstBus *bus;
  GstMessage *msg;
  GError *e = NULL;
  gchar *text;

  fail_unless (pipe != NULL, "%s", perr ? perr->message : "?");
  bus = gst_element_get_bus (pipe);
  gst_element_set_state (pipe, GST_STATE_PLAYING);
  msg = gst_bus_timed_pop_filtered (bus, 30 * GST_SECOND,
      GST_MESSAGE_ERROR | GST_MESSAGE_EOS);
  fail_unless (msg != NULL && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR,
      "%s: no error", launch);
  gst_message_parse_error (msg, &e, NULL);
  text = g_strdup (e->message);
  g_error_free (e);
  gst_message_unref (msg);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (pipe);
  return text;
}

GST_START_TEST (test_bad_settings)
{
  gchar *m;

  /* threshold and keep-ratio: the ranges gst-inspect shows are the valid
   * ones (GLib refuses anything else when it is set; issue 15) */
  {
    GstElement *e = gst_element_factory_make ("simclrnoveltyfilter", NULL);
    GParamSpecDouble *t = G_PARAM_SPEC_DOUBLE (g_object_class_find_property
        (G_OBJECT_GET_CLASS (e), "threshold"));
    GParamSpecDouble *k = G_PARAM_SPEC_DOUBLE (g_object_class_find_property
        (G_OBJECT_GET_CLASS (e), "keep-ratio"));
    fail_unless (t->minimum == -1.0 && t->maximum == 1.0);
    fail_unless (k->minimum == 0.0 && k->maximum == 1.0);
    gst_object_unref (e);
  }
  m = first_error ("videotestsrc num-buffers=2 ! simclrnoveltyfilter "
      "checkpoint-location=/nonexistent/enc.safetensors ! fakesink");
  fail_unless (strstr (m, "/nonexistent/enc.safetensors") != NULL, "%s", m);
  g_free (m);
  m = first_error ("videotestsrc num-buffers=2 ! simclrnoveltyfilter ! "
      "fakesink");
  fail_unless (strstr (m, "checkpoint-location") != NULL, "%s", m);
  g_free (m);
}

GST_END_TEST;

GST_START_TEST (test_bad_caps)
{
  static const gchar *bad[] = {
    "video/x-raw,format=I420,width=40,height=30,framerate=25/1",
    "audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved",
    "application/x-simclr-embedding,dimension=4",
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    GstHarness *h = gst_harness_new_parse ("simclrnoveltyfilter "
        "embedding=raw");
    GstCaps *caps = gst_caps_from_string (bad[i]);
    GstBuffer *buf = gst_buffer_new_allocate (NULL, 2400, NULL);
    gst_harness_set_src_caps (h, caps);
    fail_unless_equals_int (gst_harness_push (h, buf),
        GST_FLOW_NOT_NEGOTIATED);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

/* GRAY8 frames of any size are accepted too (resized by the embedder). */
GST_START_TEST (test_gray)
{
  GstHarness *h = gst_harness_new_parse ("simclrnoveltyfilter embedding=ahash "
      "threshold=0.5");
  gst_harness_set_src_caps_str (h, "video/x-raw,format=GRAY8,width=7,"
      "height=5,framerate=25/1");
  for (gint i = 0; i < 3; i++) {
    GstBuffer *buf = gst_buffer_new_allocate (NULL, 8 * 5, NULL);
    gst_buffer_memset (buf, 0, 0, 8 * 5);
    gst_buffer_memset (buf, 0, 200, 4 + 8 * i);
    fail_unless_equals_int (gst_harness_push (h, buf), GST_FLOW_OK);
  }
  fail_unless (gst_harness_buffers_received (h) >= 1);
  gst_harness_teardown (h);
}

GST_END_TEST;

static Suite *
simclrnoveltyfilter_suite (void)
{
  Suite *s = suite_create ("simclrnoveltyfilter");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_repeated_frames_raw);
  tcase_add_test (tc, test_repeated_frames_checkpoint);
  tcase_add_test (tc, test_keep_ratio);
  tcase_add_test (tc, test_bad_settings);
  tcase_add_test (tc, test_bad_caps);
  tcase_add_test (tc, test_gray);
  return s;
}

GST_CHECK_MAIN (simclrnoveltyfilter);
