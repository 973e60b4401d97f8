/* test-simclraugment.c: GstHarness tests of the simclraugment element.
 *
 * Pixels are checked against libsimclr's simclr_augmenter_view run by the
 * test on a tightly packed copy of the frame that the test builds from a
 * formula, so stride handling, caps, metas and timestamps of the element are
 * checked independently of its own frame mapping. Temporal pairing is checked
 * with constant frames (every augmentation of a constant frame is that
 * constant when jitter, grayscale, blur and solarize are off).
 */
#include <string.h>

#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include "simclr/augment.h"
#include "simclr/rng.h"
#include "gstsimclr.h"

/* ------------------------------------------------------------------------ */
/* Helpers */

/* The meta functions live in the plugin (hidden symbols): reach the meta
 * through its registered names, as an application would. */
static GType
frame_meta_api (void)
{
  GType t = g_type_from_name ("GstSimclrFrameMetaAPI");
  fail_unless (t != 0, "GstSimclrFrameMetaAPI not registered");
  return t;
}

static GstSimclrFrameMeta *
get_frame_meta (GstBuffer * buf)
{
  return (GstSimclrFrameMeta *) gst_buffer_get_meta (buf, frame_meta_api ());
}

static void
add_frame_meta (GstBuffer * buf, guint64 sample_id, gint label, guint64 epoch)
{
  const GstMetaInfo *info = gst_meta_get_info ("GstSimclrFrameMeta");
  GstSimclrFrameMeta *m;

  fail_unless (info != NULL);
  m = (GstSimclrFrameMeta *) gst_buffer_add_meta (buf, info, NULL);
  m->sample_id = sample_id;
  m->view = -1;
  m->label = label;
  m->epoch = epoch;
}

/* Creates the element with "name=value ..." settings, then the harness
 * (which starts it). */
static GstHarness *
new_harness (const gchar * settings)
{
  GstElement *e = gst_element_factory_make ("simclraugment", NULL);
  gchar **kv, **p;
  GstHarness *h;

  fail_unless (e != NULL, "simclraugment not found: is GST_PLUGIN_PATH_1_0 "
      "pointing at the build's plugins folder?");
  kv = g_strsplit (settings ? settings : "", " ", -1);
  for (p = kv; *p; p++) {
    gchar **pair;
    if (**p == '\0')
      continue;
    pair = g_strsplit (*p, "=", 2);
    fail_unless (pair[1] != NULL, "bad setting %s", *p);
    gst_util_set_object_arg (G_OBJECT (e), pair[0], pair[1]);
    g_strfreev (pair);
  }
  g_strfreev (kv);
  h = gst_harness_new_with_element (e, "sink", "src");
  gst_object_unref (e);
  return h;
}

/* The element's settings as a core config, read property by property. */
static void
config_of (GstElement * e, SimclrAugmentConfig * cfg, guint64 * seed)
{
  guint size;

  simclr_augment_config_default (cfg);
  g_object_get (e, "size", &size, "seed", seed,
      "crop-scale-min", &cfg->crop_scale_min,
      "crop-scale-max", &cfg->crop_scale_max,
      "crop-ratio-min", &cfg->crop_ratio_min,
      "crop-ratio-max", &cfg->crop_ratio_max,
      "flip-probability", &cfg->flip_probability,
      "jitter-strength", &cfg->jitter_strength,
      "jitter-probability", &cfg->jitter_probability,
      "grayscale-probability", &cfg->grayscale_probability,
      "blur-probability", &cfg->blur_probability,
      "blur-sigma-min", &cfg->blur_sigma_min,
      "blur-sigma-max", &cfg->blur_sigma_max,
      "solarize-probability", &cfg->solarize_probability, NULL);
  cfg->size = (int) size;
}

/* Pixel (x, y, c) of test frame @salt. */
static guint8
pattern (gint x, gint y, gint c, gint salt)
{
  return (guint8) ((x * 7 + y * 13 + c * 71 + salt * 29 + ((x * y) >> 2)) &
      0xff);
}

/* A frame filled with pattern(@salt), or with the constant @salt when
 * @constant. @stride 0 uses the default layout; otherwise the buffer gets a
 * GstVideoMeta with that stride. */
static GstBuffer *
make_frame (GstVideoFormat format, gint w, gint h, gint stride, gint salt,
    gboolean constant, GstClockTime pts)
{
  GstVideoInfo info;
  GstVideoFrame frame;
  GstBuffer *buf;
  gint ch = format == GST_VIDEO_FORMAT_GRAY8 ? 1 : 3;

  gst_video_info_set_format (&info, format, w, h);
  if (stride == 0) {
    buf = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&info), NULL);
  } else {
    gsize offset[GST_VIDEO_MAX_PLANES] = { 0 };
    gint strides[GST_VIDEO_MAX_PLANES] = { stride };

    buf = gst_buffer_new_allocate (NULL, (gsize) stride * h, NULL);
    gst_buffer_add_video_meta_full (buf, GST_VIDEO_FRAME_FLAG_NONE, format, w,
        h, 1, offset, strides);
    info.stride[0] = stride;
    info.size = (gsize) stride *h;
  }
  /* Poison everything (padding too) so reading padding shows. */
  gst_buffer_memset (buf, 0, 0xa5, gst_buffer_get_size (buf));
  fail_unless (gst_video_frame_map (&frame, &info, buf, GST_MAP_WRITE));
  for (gint y = 0; y < h; y++) {
    guint8 *row = (guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&frame, 0) +
        y * GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0);
    for (gint x = 0; x < w; x++)
      for (gint c = 0; c < ch; c++)
        row[x * ch + c] = constant ? (guint8) salt : pattern (x, y, c, salt);
  }
  gst_video_frame_unmap (&frame);
  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DURATION (buf) = GST_SECOND / 30;
  return buf;
}

/* What view @view of sample @sample must look like: the core on a packed
 * copy built from the formula. Returns size * size * ch bytes (g_free). */
static guint8 *
expected_view (const SimclrAugmentConfig * cfg, guint64 seed, guint64 sample,
    gint view, gint ch, gint w, gint h, gint salt)
{
  guint8 *src = g_malloc ((gsize) w * h * ch);
  guint8 *dst = g_malloc0 ((gsize) cfg->size * cfg->size * ch);
  SimclrError err = { 0 };
  SimclrAugmenter *a = simclr_augmenter_new (cfg, &err);

  fail_unless (a != NULL, "augmenter: %s", err.message);
  for (gint y = 0; y < h; y++)
    for (gint x = 0; x < w; x++)
      for (gint c = 0; c < ch; c++)
        src[(y * w + x) * ch + c] = pattern (x, y, c, salt);
  fail_unless_equals_int (simclr_augmenter_view (a, seed, sample, view, src,
          w, h, w * ch, ch, dst, cfg->size * ch, NULL, &err), SIMCLR_OK);
  simclr_augmenter_free (a);
  g_free (src);
  return dst;
}

/* Checks @buf's caps (the harness sink pad's current caps), then its pixels
 * against @expected, naming the first mismatch. */
static void
check_view (GstHarness * h, GstBuffer * buf, const gchar * format, gint size,
    const guint8 * expected)
{
  GstCaps *caps = gst_pad_get_current_caps (h->sinkpad);
  GstVideoInfo info;
  GstVideoFrame frame;
  gint ch;

  fail_unless (caps != NULL);
  fail_unless (gst_video_info_from_caps (&info, caps));
  fail_unless_equals_string (GST_VIDEO_INFO_NAME (&info), format);
  fail_unless_equals_int (GST_VIDEO_INFO_WIDTH (&info), size);
  fail_unless_equals_int (GST_VIDEO_INFO_HEIGHT (&info), size);
  fail_unless_equals_int (GST_VIDEO_INFO_PAR_N (&info), 1);
  fail_unless_equals_int (GST_VIDEO_INFO_PAR_D (&info), 1);
  gst_caps_unref (caps);
  if (expected == NULL)
    return;

  ch = GST_VIDEO_INFO_FORMAT (&info) == GST_VIDEO_FORMAT_GRAY8 ? 1 : 3;
  fail_unless (gst_video_frame_map (&frame, &info, buf, GST_MAP_READ));
  for (gint y = 0; y < size; y++) {
    const guint8 *row = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&frame,
        0) + y * GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0);
    for (gint i = 0; i < size * ch; i++) {
      if (row[i] != expected[y * size * ch + i]) {
        gst_video_frame_unmap (&frame);
        fail ("pixel (x %d, y %d, c %d): element %u, core %u", i / ch, y,
            i % ch, row[i], expected[y * size * ch + i]);
      }
    }
  }
  gst_video_frame_unmap (&frame);
}

static void
check_meta (GstBuffer * buf, guint64 sample, gint view, gint label,
    guint64 epoch)
{
  GstSimclrFrameMeta *m = get_frame_meta (buf);

  fail_unless (m != NULL, "view without GstSimclrFrameMeta");
  fail_unless_equals_uint64 (m->sample_id, sample);
  fail_unless_equals_int (m->view, view);
  fail_unless_equals_int (m->label, label);
  fail_unless_equals_uint64 (m->epoch, epoch);
}

/* Mean of the first plane's first row (constant frames). */
static gint
first_pixel (GstHarness * h, GstBuffer * buf)
{
  GstCaps *caps = gst_pad_get_current_caps (h->sinkpad);
  GstVideoInfo info;
  GstVideoFrame frame;
  gint v;

  fail_unless (gst_video_info_from_caps (&info, caps));
  gst_caps_unref (caps);
  fail_unless (gst_video_frame_map (&frame, &info, buf, GST_MAP_READ));
  v = ((const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&frame, 0))[0];
  /* A constant frame stays constant: check the last pixel too. */
  fail_unless_equals_int (((const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&frame,
              0))[(GST_VIDEO_INFO_HEIGHT (&info) - 1) *
          GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0) +
          GST_VIDEO_INFO_WIDTH (&info) - 1], v);
  gst_video_frame_unmap (&frame);
  return v;
}

#define IDENTITY "crop-scale-min=1 crop-scale-max=1 crop-ratio-min=1 " \
  "crop-ratio-max=1 flip-probability=0 jitter-probability=0 " \
  "grayscale-probability=0 blur-probability=0 solarize-probability=0"

/* ------------------------------------------------------------------------ */
/* Tests */

GST_START_TEST (test_defaults_match_core)
{
  GstElement *e = gst_element_factory_make ("simclraugment", NULL);
  SimclrAugmentConfig cfg, core;
  guint64 seed;
  guint views;

  fail_unless (e != NULL);
  config_of (e, &cfg, &seed);
  simclr_augment_config_default (&core);
  fail_unless_equals_int (cfg.size, core.size);
  fail_unless_equals_float (cfg.crop_scale_min, core.crop_scale_min);
  fail_unless_equals_float (cfg.crop_scale_max, core.crop_scale_max);
  fail_unless_equals_float (cfg.crop_ratio_min, core.crop_ratio_min);
  fail_unless_equals_float (cfg.crop_ratio_max, core.crop_ratio_max);
  fail_unless_equals_float (cfg.flip_probability, core.flip_probability);
  fail_unless_equals_float (cfg.jitter_strength, core.jitter_strength);
  fail_unless_equals_float (cfg.jitter_probability, core.jitter_probability);
  fail_unless_equals_float (cfg.grayscale_probability,
      core.grayscale_probability);
  fail_unless_equals_float (cfg.blur_probability, core.blur_probability);
  fail_unless_equals_float (cfg.blur_sigma_min, core.blur_sigma_min);
  fail_unless_equals_float (cfg.blur_sigma_max, core.blur_sigma_max);
  fail_unless_equals_float (cfg.solarize_probability,
      core.solarize_probability);
  g_object_get (e, "views", &views, NULL);
  fail_unless_equals_int (views, 2);
  gst_object_unref (e);
}

GST_END_TEST;

/* One RGB 33x17 frame (rows padded from 99 to 100 bytes) with an upstream
 * meta gives two 24x24 views with the frame's meta and timestamps, equal to
 * the core's views; a frame without meta gets the running frame count. */
GST_START_TEST (test_two_views_rgb_odd)
{
  GstHarness *h = new_harness ("size=24 seed=5");
  SimclrAugmentConfig cfg;
  guint64 seed;

  config_of (h->element, &cfg, &seed);
  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=33,"
      "height=17,framerate=30/1");

  GstBuffer *in = make_frame (GST_VIDEO_FORMAT_RGB, 33, 17, 0, 1, FALSE,
      GST_SECOND);
  add_frame_meta (in, 41, 7, 3);
  fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 2);
  for (gint v = 0; v < 2; v++) {
    GstBuffer *out = gst_harness_pull (h);
    /* Epoch 3: the draws are keyed by (sample 41, epoch 3). */
    guint8 *exp = expected_view (&cfg, 5, simclr_rng_stream2 (41, 3), v, 3,
        33, 17, 1);

    check_view (h, out, "RGB", 24, exp);
    check_meta (out, 41, v, 7, 3);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (out), GST_SECOND);
    fail_unless_equals_uint64 (GST_BUFFER_DURATION (out), GST_SECOND / 30);
    g_free (exp);
    gst_buffer_unref (out);
  }

  /* Second input frame, no meta: sample id = frame count = 1. */
  fail_unless_equals_int (gst_harness_push (h, make_frame (GST_VIDEO_FORMAT_RGB,
              33, 17, 0, 2, FALSE, 2 * GST_SECOND)), GST_FLOW_OK);
  for (gint v = 0; v < 2; v++) {
    GstBuffer *out = gst_harness_pull (h);
    guint8 *exp = expected_view (&cfg, 5, 1, v, 3, 33, 17, 2);

    check_view (h, out, "RGB", 24, exp);
    check_meta (out, 1, v, -1, 0);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 2 * GST_SECOND);
    g_free (exp);
    gst_buffer_unref (out);
  }
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Multi-crop: views=2 small-views=3 small-size=9 on RGB 33x17 (rows of 27
 * bytes: the small buffers' stride is padded to 28) gives 5 buffers per
 * frame: views 0-1 at 24x24 as without small views, views 2-4 of 9x9 in
 * their own buffers with a GstVideoMeta, equal to the core's views with
 * size 9 and the small crop-scale range (keyed by seed, sample, view);
 * the caps carry small-views and small-size. */
GST_START_TEST (test_small_views)
{
  GstHarness *h = new_harness ("size=24 seed=5 small-views=3 small-size=9 "
      "small-crop-scale-min=0.1 small-crop-scale-max=0.3");
  SimclrAugmentConfig cfg, small;
  guint64 seed;
  gint sv = 0, ss = 0;

  config_of (h->element, &cfg, &seed);
  small = cfg;
  small.size = 9;
  small.crop_scale_min = 0.1;
  small.crop_scale_max = 0.3;
  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=33,"
      "height=17,framerate=30/1");
  GstBuffer *in = make_frame (GST_VIDEO_FORMAT_RGB, 33, 17, 0, 1, FALSE,
      GST_SECOND);
  add_frame_meta (in, 41, 7, 0);
  fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 5);
  GstCaps *caps = gst_pad_get_current_caps (h->sinkpad);
  GstStructure *st = gst_caps_get_structure (caps, 0);
  fail_unless (gst_structure_get_int (st, "small-views", &sv));
  fail_unless (gst_structure_get_int (st, "small-size", &ss));
  fail_unless_equals_int (sv, 3);
  fail_unless_equals_int (ss, 9);
  gst_caps_unref (caps);
  for (gint v = 0; v < 5; v++) {
    GstBuffer *out = gst_harness_pull (h);
    check_meta (out, 41, v, 7, 0);
    if (v < 2) {
      guint8 *exp = expected_view (&cfg, 5, 41, v, 3, 33, 17, 1);
      check_view (h, out, "RGB", 24, exp);
      g_free (exp);
    } else {
      guint8 *exp = expected_view (&small, 5, 41, v, 3, 33, 17, 1);
      GstVideoMeta *vm = gst_buffer_get_video_meta (out);
      fail_unless (vm != NULL, "small view %d without a GstVideoMeta", v);
      fail_unless_equals_int (vm->width, 9);
      fail_unless_equals_int (vm->height, 9);
      fail_unless_equals_int (vm->stride[0], 28);
      GstMapInfo map;
      fail_unless (gst_buffer_map (out, &map, GST_MAP_READ));
      for (gint y = 0; y < 9; y++)
        for (gint i = 0; i < 27; i++)
          if (map.data[y * 28 + i] != exp[y * 27 + i])
            fail ("small view %d pixel (x %d, y %d, c %d): element %u, core "
                "%u", v, i / 3, y, i % 3, map.data[y * 28 + i],
                exp[y * 27 + i]);
      gst_buffer_unmap (out, &map);
      g_free (exp);
    }
    fail_unless_equals_uint64 (GST_BUFFER_PTS (out), GST_SECOND);
    gst_buffer_unref (out);
  }
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* A stride from a GstVideoMeta (128 bytes for 99 used) is honoured. */
GST_START_TEST (test_meta_stride)
{
  GstHarness *h = new_harness ("size=20 seed=11 views=3");
  SimclrAugmentConfig cfg;
  guint64 seed;

  config_of (h->element, &cfg, &seed);
  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=33,"
      "height=17,framerate=30/1");
  fail_unless_equals_int (gst_harness_push (h, make_frame (GST_VIDEO_FORMAT_RGB,
              33, 17, 128, 4, FALSE, 0)), GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 3);
  for (gint v = 0; v < 3; v++) {
    GstBuffer *out = gst_harness_pull (h);
    guint8 *exp = expected_view (&cfg, 11, 0, v, 3, 33, 17, 4);

    check_view (h, out, "RGB", 20, exp);
    check_meta (out, 0, v, -1, 0);
    g_free (exp);
    gst_buffer_unref (out);
  }
  gst_harness_teardown (h);
}

GST_END_TEST;

/* A data set revisited in a later epoch gets new views of the same sample:
 * epoch e > 0 keys the draws by simclr_rng_stream2 (sample id, e). */
GST_START_TEST (test_new_views_each_epoch)
{
  GstHarness *h = new_harness ("size=16 seed=5");
  SimclrAugmentConfig cfg;
  guint64 seed;
  GstBuffer *in, *out[2][2];

  config_of (h->element, &cfg, &seed);
  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=24,"
      "height=24,framerate=30/1");
  for (guint64 epoch = 0; epoch < 2; epoch++) {
    in = make_frame (GST_VIDEO_FORMAT_RGB, 24, 24, 0, 9, FALSE, 0);
    add_frame_meta (in, 42, 3, epoch);
    fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_OK);
    for (gint v = 0; v < 2; v++) {
      guint64 key = epoch == 0 ? 42 : simclr_rng_stream2 (42, epoch);
      guint8 *exp = expected_view (&cfg, 5, key, v, 3, 24, 24, 9);

      out[epoch][v] = gst_harness_pull (h);
      check_view (h, out[epoch][v], "RGB", 16, exp);
      check_meta (out[epoch][v], 42, v, 3, epoch);
      g_free (exp);
    }
  }
  /* And the two epochs really differ. */
  {
    GstMapInfo a, b;
    fail_unless (gst_buffer_map (out[0][0], &a, GST_MAP_READ));
    fail_unless (gst_buffer_map (out[1][0], &b, GST_MAP_READ));
    fail_if (a.size == b.size && memcmp (a.data, b.data, a.size) == 0,
        "epoch 1 repeated the views of epoch 0");
    gst_buffer_unmap (out[0][0], &a);
    gst_buffer_unmap (out[1][0], &b);
  }
  for (gint e = 0; e < 2; e++)
    for (gint v = 0; v < 2; v++)
      gst_buffer_unref (out[e][v]);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_gray8)
{
  GstHarness *h = new_harness ("size=16 seed=3 blur-probability=1");
  SimclrAugmentConfig cfg;
  guint64 seed;

  config_of (h->element, &cfg, &seed);
  gst_harness_set_src_caps_str (h, "video/x-raw,format=GRAY8,width=31,"
      "height=9,framerate=25/1");
  for (gint f = 0; f < 3; f++) {
    fail_unless_equals_int (gst_harness_push (h,
            make_frame (GST_VIDEO_FORMAT_GRAY8, 31, 9, 0, 10 + f, FALSE,
                f * GST_SECOND / 25)), GST_FLOW_OK);
    for (gint v = 0; v < 2; v++) {
      GstBuffer *out = gst_harness_pull (h);
      guint8 *exp = expected_view (&cfg, 3, f, v, 1, 31, 9, 10 + f);

      check_view (h, out, "GRAY8", 16, exp);
      check_meta (out, f, v, -1, 0);
      g_free (exp);
      gst_buffer_unref (out);
    }
  }
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Temporal pairs with k = 2: view 1 of frame t shows frame t + 2; at EOS the
 * last two frames pair with the last frame; then EOS goes downstream. */
GST_START_TEST (test_temporal_pairs_and_eos)
{
  const gint k = 2, n = 6;
  GstHarness *h = new_harness ("size=16 pair-mode=temporal temporal-offset=2 "
      IDENTITY);
  GstEvent *ev;
  gint t;

  gst_harness_set_src_caps_str (h, "video/x-raw,format=GRAY8,width=16,"
      "height=16,framerate=30/1");
  for (t = 0; t < n; t++) {
    fail_unless_equals_int (gst_harness_push (h,
            make_frame (GST_VIDEO_FORMAT_GRAY8, 16, 16, 0, 10 + 20 * t, TRUE,
                t * GST_SECOND)), GST_FLOW_OK);
    /* Frames are held until their partner k frames later arrives. */
    fail_unless_equals_int (gst_harness_buffers_in_queue (h),
        t >= k ? 2 : 0);
    for (gint v = 0; v < 2 && t >= k; v++) {
      gint anchor = t - k;
      GstBuffer *out = gst_harness_pull (h);

      check_view (h, out, "GRAY8", 16, NULL);
      check_meta (out, anchor, v, -1, 0);
      fail_unless_equals_uint64 (GST_BUFFER_PTS (out), anchor * GST_SECOND);
      fail_unless_equals_int (first_pixel (h, out),
          10 + 20 * (anchor + v * k));
      gst_buffer_unref (out);
    }
  }

  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 2 * k);
  for (t = n - k; t < n; t++) {
    for (gint v = 0; v < 2; v++) {
      GstBuffer *out = gst_harness_pull (h);

      check_meta (out, t, v, -1, 0);
      fail_unless_equals_uint64 (GST_BUFFER_PTS (out), t * GST_SECOND);
      /* The partner never came: the last frame stands in. */
      fail_unless_equals_int (first_pixel (h, out),
          10 + 20 * (v == 0 ? t : n - 1));
      gst_buffer_unref (out);
    }
  }
  /* EOS after the drained views. */
  while ((ev = gst_harness_try_pull_event (h)) != NULL) {
    gboolean eos = GST_EVENT_TYPE (ev) == GST_EVENT_EOS;
    gst_event_unref (ev);
    if (eos)
      break;
  }
  fail_unless (ev != NULL, "no EOS downstream");
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Three views, offset 1: view v from frame t + v. */
GST_START_TEST (test_temporal_three_views)
{
  GstHarness *h = new_harness ("size=8 views=3 pair-mode=temporal "
      "temporal-offset=1 " IDENTITY);

  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=8,"
      "height=8,framerate=30/1");
  for (gint t = 0; t < 4; t++)
    fail_unless_equals_int (gst_harness_push (h,
            make_frame (GST_VIDEO_FORMAT_RGB, 8, 8, 0, 5 + t, TRUE, t)),
        GST_FLOW_OK);
  /* Frames 0 and 1 have their partners (up to t + 2). */
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 6);
  for (gint t = 0; t < 2; t++)
    for (gint v = 0; v < 3; v++) {
      GstBuffer *out = gst_harness_pull (h);
      check_meta (out, t, v, -1, 0);
      fail_unless_equals_int (first_pixel (h, out), 5 + t + v);
      gst_buffer_unref (out);
    }
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Temporal mode across caps changes: a new input size keeps the held frame
 * (each frame keeps its layout); a new format drains it first, under the old
 * output caps. */
GST_START_TEST (test_temporal_caps_change)
{
  GstHarness *h = new_harness ("size=12 pair-mode=temporal temporal-offset=1 "
      IDENTITY);
  GstCaps *caps;
  GstBuffer *out;

  gst_harness_set_src_caps_str (h, "video/x-raw,format=GRAY8,width=16,"
      "height=16,framerate=30/1");
  gst_harness_push (h, make_frame (GST_VIDEO_FORMAT_GRAY8, 16, 16, 0, 10,
          TRUE, 0));
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);

  /* Size change only (no new segment): frame 0 pairs with frame 1. */
  caps = gst_caps_from_string ("video/x-raw,format=GRAY8,width=40,height=24,"
      "framerate=30/1");
  fail_unless (gst_harness_push_event (h, gst_event_new_caps (caps)));
  gst_caps_unref (caps);
  gst_harness_push (h, make_frame (GST_VIDEO_FORMAT_GRAY8, 40, 24, 0, 30,
          TRUE, 1));
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 2);
  for (gint v = 0; v < 2; v++) {
    out = gst_harness_pull (h);
    check_view (h, out, "GRAY8", 12, NULL);
    check_meta (out, 0, v, -1, 0);
    fail_unless_equals_int (first_pixel (h, out), v == 0 ? 10 : 30);
    gst_buffer_unref (out);
  }

  /* Format change: frame 1 is drained (paired with itself) as GRAY8. */
  caps = gst_caps_from_string ("video/x-raw,format=RGB,width=16,height=16,"
      "framerate=30/1");
  fail_unless (gst_harness_push_event (h, gst_event_new_caps (caps)));
  gst_caps_unref (caps);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 2);
  for (gint v = 0; v < 2; v++) {
    out = gst_harness_pull (h);
    check_meta (out, 1, v, -1, 0);
    /* GRAY8 12 x 12 (RGB would be 432 bytes). */
    fail_unless_equals_int (gst_buffer_get_size (out), 12 * 12);
    gst_buffer_unref (out);
  }
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Input size and format change mid-stream; output stays size x size. */
GST_START_TEST (test_renegotiate)
{
  GstHarness *h = new_harness ("size=24 seed=9");
  SimclrAugmentConfig cfg;
  guint64 seed;
  const struct
  {
    const gchar *format;
    GstVideoFormat f;
    gint w, hh, ch;
  } steps[] = {
    {"RGB", GST_VIDEO_FORMAT_RGB, 33, 17, 3},
    {"RGB", GST_VIDEO_FORMAT_RGB, 64, 48, 3},
    {"GRAY8", GST_VIDEO_FORMAT_GRAY8, 13, 50, 1},
    {"RGB", GST_VIDEO_FORMAT_RGB, 7, 5, 3},
  };

  config_of (h->element, &cfg, &seed);
  for (guint s = 0; s < G_N_ELEMENTS (steps); s++) {
    gchar *caps = g_strdup_printf ("video/x-raw,format=%s,width=%d,height=%d,"
        "framerate=30/1", steps[s].format, steps[s].w, steps[s].hh);
    gst_harness_set_src_caps_str (h, caps);
    g_free (caps);
    fail_unless_equals_int (gst_harness_push (h, make_frame (steps[s].f,
                steps[s].w, steps[s].hh, 0, (gint) s, FALSE, s)), GST_FLOW_OK);
    for (gint v = 0; v < 2; v++) {
      GstBuffer *out = gst_harness_pull (h);
      guint8 *exp = expected_view (&cfg, 9, s, v, steps[s].ch, steps[s].w,
          steps[s].hh, (gint) s);

      check_view (h, out, steps[s].format, 24, exp);
      g_free (exp);
      gst_buffer_unref (out);
    }
  }
  gst_harness_teardown (h);
}

GST_END_TEST;

/* size and seed changed while playing take effect at the next frame. */
GST_START_TEST (test_property_while_playing)
{
  GstHarness *h = new_harness ("size=24 seed=1");
  SimclrAugmentConfig cfg;
  guint64 seed;
  GstBuffer *out;
  guint8 *exp;

  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=40,"
      "height=30,framerate=30/1");
  gst_harness_push (h, make_frame (GST_VIDEO_FORMAT_RGB, 40, 30, 0, 0, FALSE,
          0));
  gst_buffer_unref (gst_harness_pull (h));
  gst_buffer_unref (gst_harness_pull (h));

  g_object_set (h->element, "size", 16, "seed", (guint64) 77,
      "flip-probability", 1.0, NULL);
  config_of (h->element, &cfg, &seed);
  fail_unless_equals_int (cfg.size, 16);
  gst_harness_push (h, make_frame (GST_VIDEO_FORMAT_RGB, 40, 30, 0, 1, FALSE,
          1));
  for (gint v = 0; v < 2; v++) {
    out = gst_harness_pull (h);
    exp = expected_view (&cfg, 77, 1, v, 3, 40, 30, 1);
    check_view (h, out, "RGB", 16, exp);
    g_free (exp);
    gst_buffer_unref (out);
  }

  /* An impossible combination while playing: warning, old settings kept. */
  g_object_set (h->element, "blur-sigma-min", 5.0, "blur-sigma-max", 1.0,
      NULL);
  gst_harness_push (h, make_frame (GST_VIDEO_FORMAT_RGB, 40, 30, 0, 2, FALSE,
          2));
  for (gint v = 0; v < 2; v++) {
    out = gst_harness_pull (h);
    exp = expected_view (&cfg, 77, 2, v, 3, 40, 30, 2);
    check_view (h, out, "RGB", 16, exp);
    g_free (exp);
    gst_buffer_unref (out);
  }
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Properties hammered from another thread while frames flow. */
GST_START_TEST (test_stress_properties)
{
  GstHarness *h = new_harness ("size=16");
  GstHarnessThread *t1, *t2;
  GValue seed = G_VALUE_INIT, flip = G_VALUE_INIT;

  g_value_init (&seed, G_TYPE_UINT64);
  g_value_set_uint64 (&seed, 123);
  g_value_init (&flip, G_TYPE_DOUBLE);
  g_value_set_double (&flip, 0.25);
  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=20,"
      "height=20,framerate=30/1");
  t1 = gst_harness_stress_property_start_full (h, "seed", &seed, 0);
  t2 = gst_harness_stress_property_start_full (h, "flip-probability", &flip,
      0);
  for (gint f = 0; f < 50; f++) {
    fail_unless_equals_int (gst_harness_push (h,
            make_frame (GST_VIDEO_FORMAT_RGB, 20, 20, 0, f, FALSE, f)),
        GST_FLOW_OK);
    for (gint v = 0; v < 2; v++) {
      GstBuffer *out = gst_harness_pull (h);
      check_meta (out, f, v, -1, 0);
      gst_buffer_unref (out);
    }
  }
  gst_harness_stress_thread_stop (t2);
  gst_harness_stress_thread_stop (t1);
  g_value_unset (&seed);
  g_value_unset (&flip);
  gst_harness_teardown (h);
}

GST_END_TEST;

static void
check_settings_error (const gchar * a, gdouble va, const gchar * b,
    gdouble vb)
{
  GstHarness *h = new_harness (NULL);
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  GError *error = NULL;
  gchar *debug = NULL;

  gst_element_set_bus (h->element, bus);
  fail_unless_equals_int (gst_element_set_state (h->element, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  g_object_set (h->element, a, va, b, vb, NULL);
  fail_unless_equals_int (gst_element_set_state (h->element,
          GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no error message");
  gst_message_parse_error (msg, &error, &debug);
  fail_unless (g_error_matches (error, GST_LIBRARY_ERROR,
          GST_LIBRARY_ERROR_SETTINGS), "wrong error %s", error->message);
  fail_unless (strstr (error->message, a) != NULL
      && strstr (error->message, b) != NULL,
      "message does not name %s and %s: %s", a, b, error->message);
  GST_INFO ("error: %s (%s)", error->message, debug);
  g_error_free (error);
  g_free (debug);
  gst_message_unref (msg);

  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_element_set_state (h->element, GST_STATE_NULL);
  gst_harness_teardown (h);
}

GST_START_TEST (test_bad_settings)
{
  check_settings_error ("crop-scale-min", 0.9, "crop-scale-max", 0.5);
  check_settings_error ("blur-sigma-min", 3.0, "blur-sigma-max", 1.0);
  check_settings_error ("crop-ratio-min", 2.0, "crop-ratio-max", 1.0);
}

GST_END_TEST;

GST_START_TEST (test_unsupported_caps)
{
  GstHarness *h = new_harness (NULL);
  GstPad *sink = gst_element_get_static_pad (h->element, "sink");
  GstCaps *caps = gst_caps_from_string ("video/x-raw,format=I420,width=32,"
      "height=32,framerate=30/1");
  GstSegment segment;

  fail_if (gst_pad_query_accept_caps (sink, caps));
  /* A refused sticky caps event stays pending on the harness pad (the push
   * of a sticky event reports whether it was stored), so the refusal shows
   * on the next buffer. */
  gst_harness_push_event (h, gst_event_new_caps (caps));
  gst_segment_init (&segment, GST_FORMAT_TIME);
  gst_harness_push_event (h, gst_event_new_segment (&segment));
  fail_unless_equals_int (gst_harness_push (h, gst_buffer_new_allocate (NULL,
              32 * 32 * 3 / 2, NULL)), GST_FLOW_NOT_NEGOTIATED);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
  gst_caps_unref (caps);
  gst_object_unref (sink);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Issue 15, absurd values: size=4096 on a 20x10 input and views x
 * temporal-offset holding gigabytes of frames are refused with an element
 * error naming the properties, before any view is made (no crash, no large
 * allocation); the edge just inside each limit still works. */
static gchar *
push_expect_error (const gchar * settings, const gchar * caps, gint w, gint hh)
{
  GstHarness *h = new_harness (settings);
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  GError *err = NULL;
  gchar *text;

  gst_element_set_bus (h->element, bus);
  gst_harness_set_src_caps_str (h, caps);
  fail_if (gst_harness_push (h, make_frame (GST_VIDEO_FORMAT_GRAY8, w, hh, 0,
              1, FALSE, 0)) == GST_FLOW_OK, "%s on %s was accepted", settings,
      caps);
  fail_unless_equals_int (gst_harness_buffers_received (h), 0);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no error for %s", settings);
  gst_message_parse_error (msg, &err, NULL);
  fail_unless (g_error_matches (err, GST_LIBRARY_ERROR,
          GST_LIBRARY_ERROR_SETTINGS), "%s", err->message);
  text = g_strdup (err->message);
  g_error_free (err);
  gst_message_unref (msg);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  return text;
}

GST_START_TEST (test_absurd_sizes_refused)
{
  gchar *m;
  GstHarness *h;

  m = push_expect_error ("size=4096", "video/x-raw,format=GRAY8,width=20,"
      "height=10,framerate=30/1", 20, 10);
  fail_unless (strstr (m, "size = 4096") && strstr (m, "20x10"), "%s", m);
  g_free (m);
  /* 64 views, 1000 frames apart: 63001 frames of 1920x1080 held (124 GiB) */
  m = push_expect_error ("size=32 views=64 pair-mode=temporal "
      "temporal-offset=1000", "video/x-raw,format=GRAY8,width=1920,"
      "height=1080,framerate=30/1", 1920, 1080);
  fail_unless (strstr (m, "views = 64") && strstr (m, "temporal-offset = "
          "1000"), "%s", m);
  g_free (m);

  /* exactly 16 times the larger side is fine */
  h = new_harness ("size=320 views=1");
  gst_harness_set_src_caps_str (h, "video/x-raw,format=GRAY8,width=20,"
      "height=10,framerate=30/1");
  fail_unless_equals_int (gst_harness_push (h, make_frame
          (GST_VIDEO_FORMAT_GRAY8, 20, 10, 0, 1, FALSE, 0)), GST_FLOW_OK);
  gst_buffer_unref (gst_harness_pull (h));
  gst_harness_teardown (h);
}

GST_END_TEST;

static Suite *
simclraugment_suite (void)
{
  Suite *s = suite_create ("simclraugment");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_defaults_match_core);
  tcase_add_test (tc, test_two_views_rgb_odd);
  tcase_add_test (tc, test_small_views);
  tcase_add_test (tc, test_meta_stride);
  tcase_add_test (tc, test_gray8);
  tcase_add_test (tc, test_new_views_each_epoch);
  tcase_add_test (tc, test_temporal_pairs_and_eos);
  tcase_add_test (tc, test_temporal_three_views);
  tcase_add_test (tc, test_temporal_caps_change);
  tcase_add_test (tc, test_renegotiate);
  tcase_add_test (tc, test_property_while_playing);
  tcase_add_test (tc, test_stress_properties);
  tcase_add_test (tc, test_bad_settings);
  tcase_add_test (tc, test_unsupported_caps);
  tcase_add_test (tc, test_absurd_sizes_refused);
  return s;
}

GST_CHECK_MAIN (simclraugment);
