/* test-simclrencoder-meta.c: simclrencoder mode=embed attach-meta=true
 * passes the input frames through unchanged with their embedding as a
 * GstSimclrVectorMeta, equal to the embedding buffers of attach-meta=false
 * on the same frames; the meta survives buffer copies; simclrnoveltyfilter
 * embedding=meta reads it, and refuses a frame without one. */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>

#include <glib/gstdio.h>
#include <string.h>

#include "gstsimclr.h"
#include "simclr/simclr.h"

#define S 16
#define FRAMES 6
#define CAPS "video/x-raw,format=RGB,width=16,height=16,framerate=25/1"

static gchar *ckpt_dir, *ckpt;

static void
write_checkpoint (void)
{
  SimclrModelConfig cfg;
  SimclrError err = { 0 };
  SimclrModel *m;
  ckpt_dir = g_dir_make_tmp ("encmeta-XXXXXX", NULL);
  ckpt = g_build_filename (ckpt_dir, "random.safetensors", NULL);
  simclr_model_config_default (&cfg);
  cfg.width = 0.25;
  cfg.image_size = S;
  cfg.max_batch = 4;
  m = simclr_model_new (&cfg, 5, &err);
  fail_unless (m != NULL, "%s", err.message);
  fail_unless_equals_int (simclr_checkpoint_save_model (m, ckpt, &err),
      SIMCLR_OK);
  simclr_model_free (m);
}

static void
remove_checkpoint (void)
{
  g_unlink (ckpt);
  g_rmdir (ckpt_dir);
  g_free (ckpt);
  g_free (ckpt_dir);
}

/* Frame i: seeded noise; RGB rows of 48 bytes (already 4-aligned). */
static GstBuffer *
make_frame (gint i)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, S * S * 3, NULL);
  GstMapInfo map;
  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  for (gint j = 0; j < S * S * 3; j++)
    map.data[j] = (guint8) simclr_rng_u64 (31, i, j);
  gst_buffer_unmap (buf, &map);
  GST_BUFFER_PTS (buf) = i * 40 * GST_MSECOND;
  GST_BUFFER_DURATION (buf) = 40 * GST_MSECOND;
  return buf;
}

static GstHarness *
encoder (gboolean attach)
{
  GstElement *e = gst_element_factory_make ("simclrencoder", NULL);
  GstHarness *h;
  g_object_set (e, "mode", 1 /* embed */ , "checkpoint-location", ckpt,
      "embed-batch", 4, "attach-meta", attach, NULL);
  h = gst_harness_new_with_element (e, "sink", "src");
  gst_object_unref (e);
  gst_harness_set_src_caps_str (h, CAPS);
  return h;
}

GST_START_TEST (test_meta_round_trip)
{
  GstHarness *hb, *hm;
  gfloat rows[FRAMES][128];
  gint dim = 0;

  write_checkpoint ();
  /* Embedding buffers first. */
  hb = encoder (FALSE);
  for (gint i = 0; i < FRAMES; i++)
    fail_unless_equals_int (gst_harness_push (hb, make_frame (i)),
        GST_FLOW_OK);
  fail_unless (gst_harness_push_event (hb, gst_event_new_eos ()));
  for (gint i = 0; i < FRAMES; i++) {
    GstBuffer *b = gst_harness_pull (hb);
    dim = (gint) (gst_buffer_get_size (b) / sizeof (gfloat));
    fail_unless (dim > 0 && dim <= 128);
    gst_buffer_extract (b, 0, rows[i], dim * sizeof (gfloat));
    gst_buffer_unref (b);
  }
  gst_harness_teardown (hb);

  /* The same frames with attach-meta: video out, pixels untouched, the
   * vector equal to the buffer's row. */
  hm = encoder (TRUE);
  for (gint i = 0; i < FRAMES; i++)
    fail_unless_equals_int (gst_harness_push (hm, make_frame (i)),
        GST_FLOW_OK);
  fail_unless (gst_harness_push_event (hm, gst_event_new_eos ()));
  {
    GstCaps *caps = gst_pad_get_current_caps (hm->sinkpad);
    GstCaps *want = gst_caps_from_string (CAPS);
    fail_unless (caps != NULL && gst_caps_is_equal (caps, want),
        "source caps are not the frames' caps");
    gst_caps_unref (caps);
    gst_caps_unref (want);
  }
  for (gint i = 0; i < FRAMES; i++) {
    GstBuffer *b = gst_harness_pull (hm), *expect = make_frame (i), *copy;
    GstSimclrVectorMeta *vm = gst_buffer_get_simclr_vector_meta (b);
    GstMapInfo a, e;
    fail_unless (vm != NULL, "frame %d has no vector meta", i);
    fail_unless_equals_int (vm->dimension, dim);
    fail_unless_equals_int (vm->output, 0);
    fail_unless_equals_uint64 (vm->sample_id, (guint64) i);
    for (gint j = 0; j < dim; j++)
      fail_unless (fabsf (vm->data[j] - rows[i][j]) <= 1e-6f,
          "frame %d value %d: meta %g, buffer %g", i, j, vm->data[j],
          rows[i][j]);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (b), GST_BUFFER_PTS (expect));
    gst_buffer_map (b, &a, GST_MAP_READ);
    gst_buffer_map (expect, &e, GST_MAP_READ);
    fail_unless (a.size == e.size && memcmp (a.data, e.data, a.size) == 0,
        "frame %d was changed", i);
    gst_buffer_unmap (b, &a);
    gst_buffer_unmap (expect, &e);
    /* A copy carries an equal vector (its own storage). */
    copy = gst_buffer_copy (b);
    {
      GstSimclrVectorMeta *cm = gst_buffer_get_simclr_vector_meta (copy);
      fail_unless (cm != NULL && cm->dimension == vm->dimension
          && cm->data != vm->data
          && memcmp (cm->data, vm->data, dim * sizeof (gfloat)) == 0);
    }
    gst_buffer_unref (copy);
    gst_buffer_unref (b);
    gst_buffer_unref (expect);
  }
  gst_harness_teardown (hm);
  remove_checkpoint ();
}

GST_END_TEST;

/* encoder attach-meta ! simclrnoveltyfilter embedding=meta: a run of
 * repeated frames keeps its first; a frame without the meta is an error. */
GST_START_TEST (test_novelty_reads_meta)
{
  GstHarness *h;
  gchar *launch;

  write_checkpoint ();
  launch = g_strdup_printf ("simclrencoder mode=embed embed-batch=1 "
      "attach-meta=true checkpoint-location=%s ! simclrnoveltyfilter "
      "embedding=meta threshold=0.99999", ckpt);
  h = gst_harness_new_parse (launch);
  g_free (launch);
  gst_harness_set_src_caps_str (h, CAPS);
  for (gint i = 0; i < FRAMES; i++)
    fail_unless_equals_int (gst_harness_push (h, make_frame (i / 3)),
        GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_buffers_received (h), 2);
  gst_harness_teardown (h);

  h = gst_harness_new_parse ("simclrnoveltyfilter embedding=meta");
  gst_harness_set_src_caps_str (h, CAPS);
  fail_unless_equals_int (gst_harness_push (h, make_frame (0)),
      GST_FLOW_ERROR);
  gst_harness_teardown (h);
  remove_checkpoint ();
}

GST_END_TEST;

static Suite *
simclrencoder_meta_suite (void)
{
  Suite *s = suite_create ("simclrencoder-meta");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_meta_round_trip);
  tcase_add_test (tc, test_novelty_reads_meta);
  return s;
}

GST_CHECK_MAIN (simclrencoder_meta);
