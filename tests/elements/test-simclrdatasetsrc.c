/* test-simclrdatasetsrc.c: GstHarness tests of simclrdatasetsrc.
 *
 * Synthetic data sets (IDX, CIFAR-10, JPEG folder) are written at run time
 * into a temp dir. Buffer pixels are compared with the core's
 * simclr_dataset_get of the sample id in the meta, row by row through the
 * negotiated stride; the order with simclr_dataset_epoch_order. Also: caps,
 * meta, shuffle per seed and epoch, disjoint shards, num-samples and epochs
 * -> EOS after the right count, start-position (resume), caps changes for JPEGs of varying size, a
 * corrupt JPEG skipped with a warning, and errors naming the missing or
 * malformed file.
 */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include <glib/gstdio.h>
#include <string.h>
#include <turbojpeg.h>

#include "gstsimclr.h"
#include "simclr/dataset.h"

static gchar *tmp_root;

/* ---- Fixtures ---------------------------------------------------------- */

#define IDX_N 10
#define IDX_H 4
#define IDX_W 6      /* GRAY8 rows of 6 bytes: stride 8 in the frame */

static void
put_be32 (GByteArray * a, guint32 v)
{
  guint8 b[4] = { v >> 24, v >> 16, v >> 8, v };
  g_byte_array_append (a, b, 4);
}

/* An IDX set of IDX_N images IDX_H x IDX_W, labels i % 3; returns its dir. */
static gchar *
make_idx (const gchar * name, guint32 magic)
{
  gchar *dir = g_build_filename (tmp_root, name, NULL);
  GByteArray *a = g_byte_array_new ();
  gchar *path;

  g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
  put_be32 (a, magic);
  put_be32 (a, IDX_N);
  put_be32 (a, IDX_H);
  put_be32 (a, IDX_W);
  for (gint i = 0; i < IDX_N * IDX_H * IDX_W; i++) {
    guint8 v = (guint8) (i * 37 + i / 7);
    g_byte_array_append (a, &v, 1);
  }
  path = g_build_filename (dir, "train-images-idx3-ubyte", NULL);
  g_assert_true (g_file_set_contents (path, (gchar *) a->data, a->len, NULL));
  g_free (path);
  g_byte_array_set_size (a, 0);
  put_be32 (a, 0x801);
  put_be32 (a, IDX_N);
  for (gint i = 0; i < IDX_N; i++) {
    guint8 v = (guint8) (i % 3);
    g_byte_array_append (a, &v, 1);
  }
  path = g_build_filename (dir, "train-labels-idx1-ubyte", NULL);
  g_assert_true (g_file_set_contents (path, (gchar *) a->data, a->len, NULL));
  g_free (path);
  g_byte_array_unref (a);
  return dir;
}

static void
write_jpeg (const gchar * dir, const gchar * name, gint w, gint h, gint seed)
{
  tjhandle c = tjInitCompress ();
  guint8 *src = g_malloc ((gsize) w * h * 3);
  unsigned char *jpeg = NULL;
  unsigned long len = 0;
  gchar *path = g_build_filename (dir, name, NULL);

  for (gint i = 0; i < w * h * 3; i++)
    src[i] = (guint8) (seed * 50 + i);
  fail_unless_equals_int (tjCompress2 (c, src, w, 0, h, TJPF_RGB, &jpeg, &len,
          TJSAMP_444, 95, 0), 0);
  g_assert_true (g_file_set_contents (path, (gchar *) jpeg, len, NULL));
  tjFree (jpeg);
  tjDestroy (c);
  g_free (src);
  g_free (path);
}

/* cls0/{a 5x3, b 5x3}, cls1/{c 9x7, d_bad (not JPEG), e 5x3} */
static gchar *
make_jpeg_folder (void)
{
  gchar *dir = g_build_filename (tmp_root, "jpeg", NULL);
  gchar *c0 = g_build_filename (dir, "cls0", NULL);
  gchar *c1 = g_build_filename (dir, "cls1", NULL);
  gchar *bad = g_build_filename (c1, "d_bad.jpg", NULL);

  g_assert_cmpint (g_mkdir_with_parents (c0, 0755), ==, 0);
  g_assert_cmpint (g_mkdir_with_parents (c1, 0755), ==, 0);
  write_jpeg (c0, "a.jpg", 5, 3, 0);
  write_jpeg (c0, "b.jpg", 5, 3, 1);
  write_jpeg (c1, "c.jpg", 9, 7, 2);
  g_assert_true (g_file_set_contents (bad, "garbage, not a JPEG", -1, NULL));
  write_jpeg (c1, "e.jpg", 5, 3, 3);
  g_free (c0);
  g_free (c1);
  g_free (bad);
  return dir;
}

/* ---- Helpers ------------------------------------------------------------ */

/* The frame meta API is registered by the plugin (hidden symbols): look it
 * up by name once a buffer went through. */
static GstSimclrFrameMeta *
frame_meta (GstBuffer * buf)
{
  GType api = g_type_from_name ("GstSimclrFrameMetaAPI");
  fail_unless (api != 0, "frame meta API not registered");
  return (GstSimclrFrameMeta *) gst_buffer_get_meta (buf, api);
}

static GstHarness *
start_src (const gchar * location, const gchar * first_prop, ...)
{
  GstHarness *h = gst_harness_new ("simclrdatasetsrc");
  va_list ap;

  g_object_set (h->element, "location", location, NULL);
  if (first_prop) {
    va_start (ap, first_prop);
    g_object_set_valist (G_OBJECT (h->element), first_prop, ap);
    va_end (ap);
  }
  gst_harness_play (h);
  return h;
}

/* Pulls buffers until EOS; returns them (in order). */
static GPtrArray *
pull_all (GstHarness * h)
{
  GPtrArray *bufs = g_ptr_array_new_with_free_func (
      (GDestroyNotify) gst_buffer_unref);
  for (;;) {
    GstEvent *ev;
    GstBuffer *b;
    /* Buffers and events are queued separately: drain buffers, then look
     * for EOS among the events. */
    while ((b = gst_harness_try_pull (h)))
      g_ptr_array_add (bufs, b);
    ev = gst_harness_try_pull_event (h);
    if (ev) {
      gboolean eos = GST_EVENT_TYPE (ev) == GST_EVENT_EOS;
      gst_event_unref (ev);
      if (eos) {
        while ((b = gst_harness_try_pull (h)))
          g_ptr_array_add (bufs, b);
        return bufs;
      }
      continue;
    }
    g_usleep (1000);
  }
}

/* Checks that each buffer equals the core's get() of its sample id, through
 * the caps' stride. */
static void
check_pixels (GstHarness * h, GPtrArray * bufs, const gchar * location,
    SimclrDatasetFormat format, gint target_w, gint target_h)
{
  SimclrError err = { 0 };
  SimclrDataset *ds = simclr_dataset_open (location, "train", format, &err);
  GstCaps *caps = gst_pad_get_current_caps (h->sinkpad);
  GstVideoInfo info;
  guint8 *ref;
  size_t cap;

  fail_unless (ds != NULL, "%s", err.message);
  if (target_w)
    fail_unless_equals_int (simclr_dataset_set_target_size (ds, target_w,
            target_h, &err), SIMCLR_OK);
  cap = simclr_dataset_max_image_bytes (ds);
  ref = g_malloc (cap);
  fail_unless (gst_video_info_from_caps (&info, caps));
  for (guint i = 0; i < bufs->len; i++) {
    GstBuffer *b = g_ptr_array_index (bufs, i);
    GstSimclrFrameMeta *m = frame_meta (b);
    GstVideoFrame frame;
    gint w, hh, label, c = simclr_dataset_channels (ds);

    fail_unless (m != NULL);
    fail_unless_equals_int (simclr_dataset_get (ds, (gint64) m->sample_id, ref,
            cap, &w, &hh, &label, &err), SIMCLR_OK);
    fail_unless_equals_int (w, GST_VIDEO_INFO_WIDTH (&info));
    fail_unless_equals_int (hh, GST_VIDEO_INFO_HEIGHT (&info));
    fail_unless_equals_int (m->label, label);
    fail_unless_equals_int (m->view, -1);
    fail_unless (gst_video_frame_map (&frame, &info, b, GST_MAP_READ));
    for (gint y = 0; y < hh; y++) {
      const guint8 *row = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&frame,
          0) + y * GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0);
      for (gint x = 0; x < w * c; x++)
        fail_unless (row[x] == ref[y * w * c + x],
            "buffer %u (sample %" G_GUINT64_FORMAT ") row %d byte %d: got %d, "
            "core %d", i, m->sample_id, y, x, row[x], ref[y * w * c + x]);
    }
    gst_video_frame_unmap (&frame);
  }
  g_free (ref);
  gst_caps_unref (caps);
  simclr_dataset_free (ds);
}

/* Sample ids of @bufs, and checks the epoch of each against @per_epoch. */
static gint64 *
sample_ids (GPtrArray * bufs, gint per_epoch)
{
  gint64 *ids = g_new (gint64, bufs->len + 1);
  for (guint i = 0; i < bufs->len; i++) {
    GstSimclrFrameMeta *m = frame_meta (g_ptr_array_index (bufs, i));
    ids[i] = (gint64) m->sample_id;
    fail_unless_equals_uint64 (m->epoch, i / per_epoch);
    fail_unless_equals_uint64 (GST_BUFFER_OFFSET (g_ptr_array_index (bufs,
                i)), i);
  }
  return ids;
}

/* ---- Tests -------------------------------------------------------------- */

GST_START_TEST (test_idx_caps_and_contents)
{
  gchar *dir = make_idx ("idx", 0x803);
  GstHarness *h = start_src (dir, NULL);
  GPtrArray *bufs = pull_all (h);
  GstCaps *caps = gst_pad_get_current_caps (h->sinkpad);
  GstCaps *want = gst_caps_from_string ("video/x-raw, format=GRAY8, width=6, "
      "height=4, framerate=0/1, pixel-aspect-ratio=1/1");
  gint64 *ids;

  fail_unless (gst_caps_is_equal (caps, want), "caps %" GST_PTR_FORMAT, caps);
  fail_unless_equals_int (bufs->len, IDX_N);
  ids = sample_ids (bufs, IDX_N);
  for (gint i = 0; i < IDX_N; i++) {
    GstBuffer *b = g_ptr_array_index (bufs, i);
    fail_unless_equals_int64 (ids[i], i);       /* no shuffle: stored order */
    fail_unless_equals_int (frame_meta (b)->label, i % 3);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (b),
        gst_util_uint64_scale_int (i, GST_SECOND, 30));
    fail_unless (GST_BUFFER_DURATION_IS_VALID (b));
  }
  /* stride 8 for 6-byte rows: compared row by row */
  check_pixels (h, bufs, dir, SIMCLR_DATASET_IDX, 0, 0);
  g_free (ids);
  gst_caps_unref (caps);
  gst_caps_unref (want);
  g_ptr_array_unref (bufs);
  gst_harness_teardown (h);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_cifar_rgb)
{
  gchar *dir = g_build_filename (tmp_root, "cifar10", NULL);
  const gint counts[5] = { 1, 2, 1, 1, 2 };
  GstHarness *h;
  GPtrArray *bufs;
  GstCaps *caps;
  GstStructure *s;

  g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
  for (gint f = 0; f < 5; f++) {
    gchar *name = g_strdup_printf ("data_batch_%d.bin", f + 1);
    gchar *path = g_build_filename (dir, name, NULL);
    guint8 *d = g_malloc (3073 * counts[f]);
    for (gint i = 0; i < 3073 * counts[f]; i++)
      d[i] = (guint8) (i * 13 + f);
    for (gint r = 0; r < counts[f]; r++)
      d[r * 3073] = (guint8) ((f + r) % 10);
    g_assert_true (g_file_set_contents (path, (gchar *) d, 3073 * counts[f],
            NULL));
    g_free (d);
    g_free (path);
    g_free (name);
  }
  h = start_src (dir, "shuffle", TRUE, "seed", (guint64) 3, NULL);
  bufs = pull_all (h);
  fail_unless_equals_int (bufs->len, 7);
  caps = gst_pad_get_current_caps (h->sinkpad);
  s = gst_caps_get_structure (caps, 0);
  fail_unless_equals_string (gst_structure_get_string (s, "format"), "RGB");
  check_pixels (h, bufs, dir, SIMCLR_DATASET_CIFAR10, 0, 0);
  gst_caps_unref (caps);
  g_ptr_array_unref (bufs);
  gst_harness_teardown (h);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_shuffle_epochs)
{
  gchar *dir = make_idx ("idx-shuffle", 0x803);
  GstHarness *h;
  GPtrArray *a, *b, *c;
  gint64 *ia, *ib, *ic, order[IDX_N];

  h = start_src (dir, "shuffle", TRUE, "seed", (guint64) 5, "epochs", 2, NULL);
  a = pull_all (h);
  gst_harness_teardown (h);
  h = start_src (dir, "shuffle", TRUE, "seed", (guint64) 5, "epochs", 2, NULL);
  b = pull_all (h);
  gst_harness_teardown (h);
  h = start_src (dir, "shuffle", TRUE, "seed", (guint64) 6, "epochs", 1, NULL);
  c = pull_all (h);
  gst_harness_teardown (h);

  fail_unless_equals_int (a->len, 2 * IDX_N);
  fail_unless_equals_int (b->len, 2 * IDX_N);
  fail_unless_equals_int (c->len, IDX_N);
  ia = sample_ids (a, IDX_N);
  ib = sample_ids (b, IDX_N);
  ic = sample_ids (c, IDX_N);
  /* reproducible for a seed, and the core's order epoch by epoch */
  fail_unless (memcmp (ia, ib, 2 * IDX_N * sizeof *ia) == 0);
  for (gint e = 0; e < 2; e++) {
    simclr_dataset_epoch_order (IDX_N, 5, e, 1, 0, 1, order);
    for (gint i = 0; i < IDX_N; i++)
      fail_unless_equals_int64 (ia[e * IDX_N + i], order[i]);
  }
  /* a new order each epoch, another for another seed */
  fail_unless (memcmp (ia, ia + IDX_N, IDX_N * sizeof *ia) != 0);
  fail_unless (memcmp (ia, ic, IDX_N * sizeof *ia) != 0);

  g_free (ia);
  g_free (ib);
  g_free (ic);
  g_ptr_array_unref (a);
  g_ptr_array_unref (b);
  g_ptr_array_unref (c);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_shards_disjoint)
{
  gchar *dir = make_idx ("idx-shards", 0x803);
  gboolean seen[IDX_N] = { FALSE };
  gint total = 0;

  /* 10 samples over 3 shards: 3 each, one left out, disjoint. */
  for (guint r = 0; r < 3; r++) {
    GstHarness *h = start_src (dir, "shuffle", TRUE, "seed", (guint64) 9,
        "shard-index", r, "shard-count", 3, NULL);
    GPtrArray *bufs = pull_all (h);
    gint64 *ids, order[3];
    fail_unless_equals_int (bufs->len, 3);
    ids = sample_ids (bufs, 3);
    simclr_dataset_epoch_order (IDX_N, 9, 0, 1, (int) r, 3, order);
    for (gint i = 0; i < 3; i++) {
      fail_unless_equals_int64 (ids[i], order[i]);
      fail_if (seen[ids[i]], "sample %" G_GINT64_FORMAT " in two shards",
          ids[i]);
      seen[ids[i]] = TRUE;
      total++;
    }
    g_free (ids);
    g_ptr_array_unref (bufs);
    gst_harness_teardown (h);
  }
  fail_unless_equals_int (total, 9);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_num_samples_epochs)
{
  gchar *dir = make_idx ("idx-count", 0x803);
  GstHarness *h = start_src (dir, "num-samples", (guint64) 4, "epochs", 3,
      NULL);
  GPtrArray *bufs = pull_all (h);
  gint64 *ids;

  fail_unless_equals_int (bufs->len, 12);
  ids = sample_ids (bufs, 4);          /* epochs 0,0,0,0,1,1,1,1,2,... */
  for (gint i = 0; i < 12; i++)
    fail_unless_equals_int64 (ids[i], i % 4);
  g_free (ids);
  g_ptr_array_unref (bufs);
  gst_harness_teardown (h);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_start_position)
{
  gchar *dir = make_idx ("idx-resume", 0x803);
  GstHarness *h;
  GPtrArray *full, *tail;
  gint64 *ids;

  /* A resumed run continues with the samples, epochs, offsets and
   * timestamps of the uninterrupted one. */
  h = start_src (dir, "shuffle", TRUE, "seed", (guint64) 5, "epochs", 2, NULL);
  full = pull_all (h);
  gst_harness_teardown (h);
  h = start_src (dir, "shuffle", TRUE, "seed", (guint64) 5, "epochs", 2,
      "start-position", (guint64) 13, NULL);
  tail = pull_all (h);
  gst_harness_teardown (h);

  fail_unless_equals_int (full->len, 2 * IDX_N);
  fail_unless_equals_int (tail->len, 2 * IDX_N - 13);
  ids = sample_ids (full, IDX_N);
  for (guint i = 0; i < tail->len; i++) {
    GstBuffer *b = g_ptr_array_index (tail, i);
    GstBuffer *f = g_ptr_array_index (full, 13 + i);
    GstSimclrFrameMeta *m = frame_meta (b);
    fail_unless_equals_int64 ((gint64) m->sample_id, ids[13 + i]);
    fail_unless_equals_uint64 (m->epoch, 1);
    fail_unless_equals_uint64 (GST_BUFFER_OFFSET (b), GST_BUFFER_OFFSET (f));
    fail_unless_equals_uint64 (GST_BUFFER_PTS (b), GST_BUFFER_PTS (f));
  }
  g_free (ids);
  g_ptr_array_unref (full);
  g_ptr_array_unref (tail);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_jpeg_caps_change_and_corrupt)
{
  gchar *dir = make_jpeg_folder ();
  GstHarness *h = gst_harness_new ("simclrdatasetsrc");
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  GError *gerr = NULL;
  gchar *debug = NULL;
  GstBuffer *b;
  GstEvent *ev;
  const gint sizes[4][2] = { {5, 3}, {5, 3}, {9, 7}, {5, 3} };
  const gint caps_sizes[3][2] = { {5, 3}, {9, 7}, {5, 3} };
  gint n = 0, caps_events = 0;

  gst_element_set_bus (h->element, bus);
  g_object_set (h->element, "location", dir, NULL);
  gst_harness_play (h);

  /* The harness queues events and buffers separately, so the caps events
   * are checked as a sequence (one per size change) and the buffers by
   * their sizes. */
  for (;;) {
    if ((b = gst_harness_try_pull (h))) {
      GstVideoInfo info;
      fail_unless (n < 4);
      gst_video_info_set_format (&info, GST_VIDEO_FORMAT_RGB, sizes[n][0],
          sizes[n][1]);
      fail_unless_equals_int (gst_buffer_get_size (b),
          GST_VIDEO_INFO_SIZE (&info));
      fail_unless_equals_int (frame_meta (b)->label, n < 2 ? 0 : 1);
      gst_buffer_unref (b);
      n++;
      continue;
    }
    if ((ev = gst_harness_try_pull_event (h))) {
      gboolean eos = GST_EVENT_TYPE (ev) == GST_EVENT_EOS;
      if (GST_EVENT_TYPE (ev) == GST_EVENT_CAPS) {
        GstCaps *caps;
        GstStructure *s;
        gint w, hh;
        gst_event_parse_caps (ev, &caps);
        s = gst_caps_get_structure (caps, 0);
        fail_unless (gst_structure_get_int (s, "width", &w));
        fail_unless (gst_structure_get_int (s, "height", &hh));
        fail_unless (caps_events < 3);
        fail_unless_equals_int (w, caps_sizes[caps_events][0]);
        fail_unless_equals_int (hh, caps_sizes[caps_events][1]);
        caps_events++;
      }
      gst_event_unref (ev);
      if (eos)
        break;
      continue;
    }
    g_usleep (1000);
  }
  while ((b = gst_harness_try_pull (h))) {
    n++;
    gst_buffer_unref (b);
  }
  /* 5 files, the corrupt one skipped: 4 buffers; sizes 5x3, 9x7, 5x3 */
  fail_unless_equals_int (n, 4);
  fail_unless_equals_int (caps_events, 3);

  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING);
  fail_unless (msg != NULL, "no warning for the corrupt JPEG");
  gst_message_parse_warning (msg, &gerr, &debug);
  fail_unless (gerr->domain == GST_STREAM_ERROR);
  fail_unless_equals_int (gerr->code, GST_STREAM_ERROR_DECODE);
  fail_unless (strstr (gerr->message, "d_bad.jpg") != NULL, "%s",
      gerr->message);
  g_error_free (gerr);
  g_free (debug);
  gst_message_unref (msg);

  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  g_free (dir);
}

GST_END_TEST;

/* Issue 15: a folder of valid JPEGs plus one cut to a third of its bytes
 * (here the cut falls inside the Huffman tables, as it does for any small
 * image) plays every valid image in every epoch and posts exactly one
 * warning, naming the truncated file. Before the fix the broken file left the
 * decoder unusable and the whole epoch was skipped ("No image of epoch 0
 * could be decoded"). */
GST_START_TEST (test_jpeg_truncated_plays_the_rest)
{
  gchar *dir = g_build_filename (tmp_root, "jpeg-truncated", NULL);
  gchar *c0 = g_build_filename (dir, "cls0", NULL);
  gchar *c1 = g_build_filename (dir, "cls1", NULL);
  gchar *victim = g_build_filename (c0, "c_cut.jpg", NULL);
  gchar *contents;
  gsize len;
  GstHarness *h;
  GstBus *bus = gst_bus_new ();
  GPtrArray *bufs;
  GstMessage *msg;
  GError *gerr = NULL;
  gchar *debug = NULL;
  gint per_sample[8] = { 0 };
  gint warnings = 0;

  g_assert_cmpint (g_mkdir_with_parents (c0, 0755), ==, 0);
  g_assert_cmpint (g_mkdir_with_parents (c1, 0755), ==, 0);
  /* sorted: cls0/{a, b, c_cut, d}, cls1/{e, f, g} */
  write_jpeg (c0, "a.jpg", 16, 16, 0);
  write_jpeg (c0, "b.jpg", 16, 16, 1);
  write_jpeg (c0, "c_cut.jpg", 16, 16, 2);
  write_jpeg (c0, "d.jpg", 16, 16, 3);
  write_jpeg (c1, "e.jpg", 16, 16, 4);
  write_jpeg (c1, "f.jpg", 16, 16, 5);
  write_jpeg (c1, "g.jpg", 16, 16, 6);
  g_assert_true (g_file_get_contents (victim, &contents, &len, NULL));
  g_assert_true (g_file_set_contents (victim, contents, len / 3, NULL));
  g_free (contents);

  h = gst_harness_new ("simclrdatasetsrc");
  gst_element_set_bus (h->element, bus);
  g_object_set (h->element, "location", dir, "format", 4 /* jpeg-folder */ ,
      "shuffle", TRUE, "epochs", 3, NULL);
  gst_harness_play (h);
  bufs = pull_all (h);
  /* 6 valid images x 3 epochs, each exactly once per epoch */
  fail_unless_equals_int (bufs->len, 18);
  for (guint i = 0; i < bufs->len; i++) {
    GstSimclrFrameMeta *m = frame_meta (g_ptr_array_index (bufs, i));
    fail_unless (m->sample_id < 7 && m->sample_id != 2,
        "buffer %u is sample %" G_GUINT64_FORMAT, i, m->sample_id);
    fail_unless_equals_uint64 (m->epoch, i / 6);
    per_sample[m->sample_id]++;
  }
  for (gint i = 0; i < 7; i++)
    fail_unless_equals_int (per_sample[i], i == 2 ? 0 : 3);
  check_pixels (h, bufs, dir, SIMCLR_DATASET_JPEG_FOLDER, 0, 0);

  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING |
              GST_MESSAGE_ERROR))) {
    fail_unless (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_WARNING,
        "an error was posted");
    gst_message_parse_warning (msg, &gerr, &debug);
    fail_unless (gerr->domain == GST_STREAM_ERROR);
    fail_unless_equals_int (gerr->code, GST_STREAM_ERROR_DECODE);
    fail_unless (strstr (gerr->message, "c_cut.jpg") != NULL, "%s",
        gerr->message);
    g_clear_error (&gerr);
    g_clear_pointer (&debug, g_free);
    gst_message_unref (msg);
    warnings++;
  }
  fail_unless_equals_int (warnings, 1);

  g_ptr_array_unref (bufs);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  g_free (victim);
  g_free (c0);
  g_free (c1);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_jpeg_target_size)
{
  gchar *dir = g_build_filename (tmp_root, "jpeg-target", NULL);
  gchar *c0 = g_build_filename (dir, "only", NULL);
  GstHarness *h;
  GPtrArray *bufs;
  GstCaps *caps, *want;

  g_assert_cmpint (g_mkdir_with_parents (c0, 0755), ==, 0);
  write_jpeg (c0, "a.jpg", 12, 9, 0);
  write_jpeg (c0, "b.jpg", 20, 16, 1);
  /* 7 x 5 RGB: 21-byte rows in a 24-byte stride */
  h = start_src (dir, "target-width", 7, "target-height", 5, NULL);
  bufs = pull_all (h);
  fail_unless_equals_int (bufs->len, 2);
  caps = gst_pad_get_current_caps (h->sinkpad);
  want = gst_caps_from_string ("video/x-raw, format=RGB, width=7, height=5, "
      "framerate=0/1, pixel-aspect-ratio=1/1");
  fail_unless (gst_caps_is_equal (caps, want), "caps %" GST_PTR_FORMAT, caps);
  check_pixels (h, bufs, dir, SIMCLR_DATASET_JPEG_FOLDER, 7, 5);
  gst_caps_unref (caps);
  gst_caps_unref (want);
  g_ptr_array_unref (bufs);
  gst_harness_teardown (h);
  g_free (c0);
  g_free (dir);
}

GST_END_TEST;

/* Sets up the element alone, expects PAUSED to fail with an error of
 * @domain/@code whose message contains @needle. */
static void
expect_start_error (const gchar * location, GQuark domain, gint code,
    const gchar * needle)
{
  GstElement *src = gst_element_factory_make ("simclrdatasetsrc", NULL);
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  GError *gerr = NULL;
  gchar *debug = NULL;

  gst_element_set_bus (src, bus);
  g_object_set (src, "location", location, NULL);
  fail_unless_equals_int (gst_element_set_state (src, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_parse_error (msg, &gerr, &debug);
  GST_INFO ("error: %s (%s)", gerr->message, debug);
  fail_unless (gerr->domain == domain, "domain %s",
      g_quark_to_string (gerr->domain));
  fail_unless_equals_int (gerr->code, code);
  fail_unless (strstr (gerr->message, needle) != NULL, "\"%s\" lacks \"%s\"",
      gerr->message, needle);
  g_error_free (gerr);
  g_free (debug);
  gst_message_unref (msg);
  gst_element_set_state (src, GST_STATE_NULL);
  gst_element_set_bus (src, NULL);
  gst_object_unref (bus);
  gst_object_unref (src);
}

GST_START_TEST (test_errors)
{
  gchar *missing = g_build_filename (tmp_root, "no-such-set", NULL);
  gchar *bad = make_idx ("idx-bad-magic", 0x804);
  gchar *half = g_build_filename (tmp_root, "idx-labels-missing", NULL);
  gchar *images;

  expect_start_error (missing, GST_RESOURCE_ERROR,
      GST_RESOURCE_ERROR_NOT_FOUND, "no-such-set");
  expect_start_error (bad, GST_STREAM_ERROR, GST_STREAM_ERROR_DECODE,
      "train-images-idx3-ubyte");

  /* images present, labels file missing: names the labels file */
  g_assert_cmpint (g_mkdir_with_parents (half, 0755), ==, 0);
  images = g_build_filename (half, "train-images-idx3-ubyte", NULL);
  g_assert_true (g_file_set_contents (images, "x", 1, NULL));
  expect_start_error (half, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND,
      "train-labels-idx1-ubyte");

  g_free (images);
  g_free (half);
  g_free (missing);
  g_free (bad);
}

GST_END_TEST;

/* Issue 15, absurd values: a resize target far larger than every image is
 * refused at start naming target-width/target-height (no 800 MB frames);
 * num-samples beyond the set and a start-position past the run play what
 * there is with a warning naming the property. */
GST_START_TEST (test_absurd_values)
{
  gchar *dir = make_jpeg_folder ();
  gchar *idx = make_idx ("idx-absurd", 0x803);
  GstElement *src;
  GstBus *bus;
  GstMessage *msg;
  GError *gerr = NULL;
  GstHarness *h;
  GPtrArray *bufs;

  /* largest image 9x7: 16 x 16 x 63 pixels at most */
  src = gst_element_factory_make ("simclrdatasetsrc", NULL);
  bus = gst_bus_new ();
  gst_element_set_bus (src, bus);
  g_object_set (src, "location", dir, "target-width", 4096, "target-height",
      4096, NULL);
  fail_unless_equals_int (gst_element_set_state (src, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_parse_error (msg, &gerr, NULL);
  fail_unless (g_error_matches (gerr, GST_LIBRARY_ERROR,
          GST_LIBRARY_ERROR_SETTINGS), "%s", gerr->message);
  fail_unless (strstr (gerr->message, "target-width") != NULL, "%s",
      gerr->message);
  g_clear_error (&gerr);
  gst_message_unref (msg);
  gst_element_set_state (src, GST_STATE_NULL);
  gst_element_set_bus (src, NULL);
  gst_object_unref (bus);
  gst_object_unref (src);

  /* 16 x 9 = 144 wide, 16 x 7 = 112 high: just inside (a = 9x7 area) */
  h = start_src (dir, "target-width", 144, "target-height", 112, NULL);
  bufs = pull_all (h);
  fail_unless_equals_int (bufs->len, 4);
  g_ptr_array_unref (bufs);
  gst_harness_teardown (h);

  /* num-samples 1000 on 10 samples, and start-position past the run */
  for (gint k = 0; k < 2; k++) {
    gint warned = 0;
    h = gst_harness_new ("simclrdatasetsrc");
    bus = gst_bus_new ();
    gst_element_set_bus (h->element, bus);
    g_object_set (h->element, "location", idx, NULL);
    if (k == 0)
      g_object_set (h->element, "num-samples", (guint64) 1000, NULL);
    else
      g_object_set (h->element, "start-position", (guint64) 10, NULL);
    gst_element_set_state (h->element, GST_STATE_PLAYING);
    bufs = pull_all (h);
    fail_unless_equals_int (bufs->len, k == 0 ? IDX_N : 0);
    while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING))) {
      gst_message_parse_warning (msg, &gerr, NULL);
      fail_unless (strstr (gerr->message, k == 0 ? "num-samples" :
              "start-position") != NULL, "%s", gerr->message);
      warned++;
      g_clear_error (&gerr);
      gst_message_unref (msg);
    }
    fail_unless_equals_int (warned, 1);
    g_ptr_array_unref (bufs);
    gst_element_set_bus (h->element, NULL);
    gst_object_unref (bus);
    gst_harness_teardown (h);
  }
  g_free (dir);
  g_free (idx);
}

GST_END_TEST;

/* ---- Suite -------------------------------------------------------------- */

static void
remove_tree (const gchar * path)
{
  GDir *d = g_dir_open (path, 0, NULL);
  const gchar *name;
  if (d) {
    while ((name = g_dir_read_name (d))) {
      gchar *p = g_build_filename (path, name, NULL);
      if (g_file_test (p, G_FILE_TEST_IS_DIR))
        remove_tree (p);
      else
        g_remove (p);
      g_free (p);
    }
    g_dir_close (d);
  }
  g_rmdir (path);
}

static Suite *
simclrdatasetsrc_suite (void)
{
  Suite *s = suite_create ("simclrdatasetsrc");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_idx_caps_and_contents);
  tcase_add_test (tc, test_cifar_rgb);
  tcase_add_test (tc, test_shuffle_epochs);
  tcase_add_test (tc, test_shards_disjoint);
  tcase_add_test (tc, test_num_samples_epochs);
  tcase_add_test (tc, test_start_position);
  tcase_add_test (tc, test_jpeg_caps_change_and_corrupt);
  tcase_add_test (tc, test_jpeg_truncated_plays_the_rest);
  tcase_add_test (tc, test_jpeg_target_size);
  tcase_add_test (tc, test_errors);
  tcase_add_test (tc, test_absurd_values);
  return s;
}

int
main (int argc, char **argv)
{
  Suite *s;
  int ret;

  gst_check_init (&argc, &argv);
  tmp_root = g_dir_make_tmp ("test-simclrdatasetsrc-XXXXXX", NULL);
  g_assert_nonnull (tmp_root);
  s = simclrdatasetsrc_suite ();
  ret = gst_check_run_suite (s, "simclrdatasetsrc", __FILE__);
  remove_tree (tmp_root);
  g_free (tmp_root);
  return ret;
}
