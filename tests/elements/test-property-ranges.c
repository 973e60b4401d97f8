/* test-property-ranges.c: the ranges gst-inspect shows tell the truth
 * (issue 15). For every element and every numeric property of its own, the
 * minimum and the maximum of its GParamSpec, set alone on an element that
 * otherwise starts, must be accepted when the element starts, or refused
 * with an error naming another property as well (a combination: warmup-steps
 * at its maximum exceeds the default total-steps) or for a reason listed
 * below that depends on the input (a shard count above the samples of the
 * data set). Before the fix simclrencoder showed learning-rate 0 - 1.8e308
 * and refused 0 at start, and momentum 1. Also: an element that cannot
 * start posts exactly one error.
 */
#include <gst/check/gstcheck.h>

#include <glib/gstdio.h>
#include <string.h>

#include "simclr/checkpoint.h"
#include "simclr/model.h"

static gchar *tmp_root, *idx_dir, *ckpt;

typedef struct
{
  const gchar *prop;
  const gchar *edge;            /* "min" or "max" */
  const gchar *why;
} Allowed;

typedef void (*Setup) (GstElement * e);

/* TRUE if @msg names a property of @e other than @prop. */
static gboolean
names_another (GstElement * e, const gchar * prop, const gchar * msg)
{
  guint n;
  GParamSpec **ps = g_object_class_list_properties (G_OBJECT_GET_CLASS (e),
      &n);
  gboolean found = FALSE;
  for (guint i = 0; i < n && !found; i++)
    if (ps[i]->owner_type == G_OBJECT_TYPE (e)
        && strcmp (ps[i]->name, prop) != 0 && strstr (msg, ps[i]->name))
      found = TRUE;
  g_free (ps);
  return found;
}

static void
set_edge (GstElement * e, GParamSpec * p, gboolean max)
{
  GValue v = G_VALUE_INIT;
  GType t = G_PARAM_SPEC_VALUE_TYPE (p);
  g_value_init (&v, t);
  if (t == G_TYPE_INT)
    g_value_set_int (&v, max ? G_PARAM_SPEC_INT (p)->maximum :
        G_PARAM_SPEC_INT (p)->minimum);
  else if (t == G_TYPE_UINT)
    g_value_set_uint (&v, max ? G_PARAM_SPEC_UINT (p)->maximum :
        G_PARAM_SPEC_UINT (p)->minimum);
  else if (t == G_TYPE_INT64)
    g_value_set_int64 (&v, max ? G_PARAM_SPEC_INT64 (p)->maximum :
        G_PARAM_SPEC_INT64 (p)->minimum);
  else if (t == G_TYPE_UINT64)
    g_value_set_uint64 (&v, max ? G_PARAM_SPEC_UINT64 (p)->maximum :
        G_PARAM_SPEC_UINT64 (p)->minimum);
  else if (t == G_TYPE_FLOAT)
    g_value_set_float (&v, max ? G_PARAM_SPEC_FLOAT (p)->maximum :
        G_PARAM_SPEC_FLOAT (p)->minimum);
  else
    g_value_set_double (&v, max ? G_PARAM_SPEC_DOUBLE (p)->maximum :
        G_PARAM_SPEC_DOUBLE (p)->minimum);
  g_object_set_property (G_OBJECT (e), p->name, &v);
  g_value_unset (&v);
}

static gint
check_ranges (const gchar * factory, Setup setup, const Allowed * allowed)
{
  GstElement *probe = gst_element_factory_make (factory, NULL);
  guint n;
  GParamSpec **ps;
  gint checked = 0;

  fail_unless (probe != NULL, "no %s", factory);
  ps = g_object_class_list_properties (G_OBJECT_GET_CLASS (probe), &n);
  for (guint i = 0; i < n; i++) {
    GParamSpec *p = ps[i];
    GType t = G_PARAM_SPEC_VALUE_TYPE (p);
    if (p->owner_type != G_OBJECT_TYPE (probe)
        || !(p->flags & G_PARAM_WRITABLE)
        || !(t == G_TYPE_INT || t == G_TYPE_UINT || t == G_TYPE_INT64
            || t == G_TYPE_UINT64 || t == G_TYPE_FLOAT || t == G_TYPE_DOUBLE))
      continue;
    for (gint max = 0; max < 2; max++) {
      GstElement *e = gst_element_factory_make (factory, NULL);
      GstBus *bus = gst_bus_new ();
      GstStateChangeReturn ret;
      gboolean ok = TRUE;
      gchar *text = NULL;

      gst_element_set_bus (e, bus);
      if (setup)
        setup (e);
      set_edge (e, p, max);
      ret = gst_element_set_state (e, GST_STATE_PAUSED);
      if (ret == GST_STATE_CHANGE_FAILURE) {
        GstMessage *m = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
        GError *err = NULL;
        ok = FALSE;
        if (m) {
          gst_message_parse_error (m, &err, NULL);
          text = g_strdup (err->message);
          g_error_free (err);
          gst_message_unref (m);
        }
        if (text && names_another (e, p->name, text))
          ok = TRUE;            /* a combination, named as such */
        for (const Allowed * a = allowed; a && a->prop; a++)
          if (strcmp (a->prop, p->name) == 0 && strcmp (a->edge,
                  max ? "max" : "min") == 0)
            ok = TRUE;
      }
      GST_INFO ("%s %s=%s: %s%s", factory, p->name, max ? "max" : "min",
          ret == GST_STATE_CHANGE_FAILURE ? "refused: " : "accepted",
          text ? text : "");
      fail_unless (ok, "%s: %s at its %s (the range gst-inspect shows) is "
          "refused at start: %s", factory, p->name, max ? "maximum" :
          "minimum", text ? text : "(no error message)");
      g_free (text);
      gst_element_set_state (e, GST_STATE_NULL);
      gst_element_set_bus (e, NULL);
      gst_bus_set_flushing (bus, TRUE);
      gst_object_unref (bus);
      gst_object_unref (e);
      checked++;
    }
  }
  g_free (ps);
  gst_object_unref (probe);
  return checked;
}

static void
encoder_embed (GstElement * e)
{
  gst_util_set_object_arg (G_OBJECT (e), "mode", "embed");
  g_object_set (e, "checkpoint-location", ckpt, NULL);
}

static void
datasetsrc_idx (GstElement * e)
{
  g_object_set (e, "location", idx_dir, NULL);
}

static void
npysink_location (GstElement * e)
{
  gchar *p = g_build_filename (tmp_root, "out.npy", NULL);
  g_object_set (e, "location", p, NULL);
  g_free (p);
}

GST_START_TEST (test_encoder_train)
{
  fail_unless (check_ranges ("simclrencoder", NULL, NULL) > 20);
}

GST_END_TEST;

GST_START_TEST (test_encoder_embed)
{
  fail_unless (check_ranges ("simclrencoder", encoder_embed, NULL) > 20);
}

GST_END_TEST;

GST_START_TEST (test_ntxentsink)
{
  /* temperature, queue-size, interval: both ends each */
  fail_unless (check_ranges ("ntxentsink", NULL, NULL) >= 6);
}

GST_END_TEST;

GST_START_TEST (test_augment)
{
  fail_unless (check_ranges ("simclraugment", NULL, NULL) > 20);
}

GST_END_TEST;

/* Multi-crop on: every edge of the small-view properties again, with the
 * others set (small-views=2 small-size=16 on size 32). */
static void
augment_multicrop (GstElement * e)
{
  g_object_set (e, "small-views", 2, "small-size", 16, NULL);
}

GST_START_TEST (test_augment_multicrop)
{
  fail_unless (check_ranges ("simclraugment", augment_multicrop, NULL) > 20);
}

GST_END_TEST;

GST_START_TEST (test_datasetsrc)
{
  static const Allowed allowed[] = {
    {"shard-count", "max", "more shards than the 12 samples of the set"},
    {NULL, NULL, NULL}
  };
  fail_unless (check_ranges ("simclrdatasetsrc", datasetsrc_idx, allowed)
      > 10);
}

GST_END_TEST;

GST_START_TEST (test_npysink)
{
  /* no numeric property of its own: the check runs on nothing */
  fail_unless (check_ranges ("simclrnpysink", npysink_location, NULL) == 0);
}

GST_END_TEST;

GST_START_TEST (test_noveltyfilter)
{
  GstElementFactory *f = gst_element_factory_find ("simclrnoveltyfilter");
  if (!f)
    return;
  gst_object_unref (f);
  fail_unless (check_ranges ("simclrnoveltyfilter", NULL, NULL) >= 4);
}

GST_END_TEST;

/* Issue 15, each error once: an element that cannot start posts exactly
 * one ERROR (GstBaseSrc and GstBaseSink used to add a generic "state change
 * failed and some element failed to post a proper error message"). */
GST_START_TEST (test_each_error_once)
{
  static const struct
  {
    const gchar *factory, *props, *needle;
  } cases[] = {
    {"simclrdatasetsrc", "location=/nonexistent-set", "nonexistent-set"},
    {"simclrnpysink", "location=/nonexistent-dir/a.npy", "nonexistent-dir"},
    {"ntxentsink", "metrics-location=/nonexistent-dir/m.csv",
        "nonexistent-dir"},
    {"simclrencoder", "mode=embed", "checkpoint-location"},
    {"simclraugment", "crop-scale-min=0.9 crop-scale-max=0.5",
        "crop-scale"},
    /* multi-crop: small views larger than the views, or without a size */
    {"simclraugment", "size=28 small-views=2 small-size=40", "small-size"},
    {"simclraugment", "small-views=4", "small-size"},
    {"simclraugment", "small-views=2 small-size=8 small-crop-scale-min=0.5 "
          "small-crop-scale-max=0.2", "small-crop-scale-min"},
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    GstElement *e = gst_element_factory_make (cases[i].factory, NULL);
    GstBus *bus = gst_bus_new ();
    gchar **kv = g_strsplit (cases[i].props, " ", -1);
    GstMessage *m;
    gint errors = 0;

    for (gchar ** p = kv; *p; p++) {
      gchar **pair = g_strsplit (*p, "=", 2);
      gst_util_set_object_arg (G_OBJECT (e), pair[0], pair[1]);
      g_strfreev (pair);
    }
    g_strfreev (kv);
    gst_element_set_bus (e, bus);
    fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
        GST_STATE_CHANGE_FAILURE);
    while ((m = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR))) {
      GError *err = NULL;
      gst_message_parse_error (m, &err, NULL);
      GST_INFO ("%s: %s", cases[i].factory, err->message);
      if (errors == 0)
        fail_unless (strstr (err->message, cases[i].needle) != NULL,
            "%s: \"%s\" does not name %s", cases[i].factory, err->message,
            cases[i].needle);
      else
        fail ("%s: a second error: %s", cases[i].factory, err->message);
      errors++;
      g_error_free (err);
      gst_message_unref (m);
    }
    fail_unless_equals_int (errors, 1);
    gst_element_set_state (e, GST_STATE_NULL);
    gst_element_set_bus (e, NULL);
    gst_bus_set_flushing (bus, TRUE);
    gst_object_unref (bus);
    gst_object_unref (e);
  }
}

GST_END_TEST;

/* ---- fixtures ----------------------------------------------------------- */

static void
put_be32 (GByteArray * a, guint32 v)
{
  guint8 b[4] = { v >> 24, v >> 16, v >> 8, v };
  g_byte_array_append (a, b, 4);
}

static void
make_fixtures (void)
{
  GByteArray *a = g_byte_array_new ();
  SimclrModelConfig cfg;
  SimclrModel *m;
  SimclrError err = { 0 };
  gchar *p;

  idx_dir = g_build_filename (tmp_root, "idx", NULL);
  g_mkdir_with_parents (idx_dir, 0755);
  put_be32 (a, 0x803);
  put_be32 (a, 12);
  put_be32 (a, 6);
  put_be32 (a, 6);
  for (gint i = 0; i < 12 * 36; i++) {
    guint8 v = (guint8) (i * 11);
    g_byte_array_append (a, &v, 1);
  }
  p = g_build_filename (idx_dir, "train-images-idx3-ubyte", NULL);
  g_assert_true (g_file_set_contents (p, (gchar *) a->data, a->len, NULL));
  g_free (p);
  g_byte_array_set_size (a, 0);
  put_be32 (a, 0x801);
  put_be32 (a, 12);
  for (gint i = 0; i < 12; i++) {
    guint8 v = (guint8) (i % 3);
    g_byte_array_append (a, &v, 1);
  }
  p = g_build_filename (idx_dir, "train-labels-idx1-ubyte", NULL);
  g_assert_true (g_file_set_contents (p, (gchar *) a->data, a->len, NULL));
  g_free (p);
  g_byte_array_unref (a);

  simclr_model_config_default (&cfg);
  cfg.width = 0.25;
  cfg.in_channels = 1;
  cfg.image_size = 8;
  cfg.max_batch = 2;
  m = simclr_model_new (&cfg, 1, &err);
  g_assert_nonnull (m);
  ckpt = g_build_filename (tmp_root, "enc.safetensors", NULL);
  g_assert_cmpint (simclr_checkpoint_save_model (m, ckpt, &err), ==,
      SIMCLR_OK);
  simclr_model_free (m);
}

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
ranges_suite (void)
{
  Suite *s = suite_create ("property-ranges");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_encoder_train);
  tcase_add_test (tc, test_encoder_embed);
  tcase_add_test (tc, test_ntxentsink);
  tcase_add_test (tc, test_augment);
  tcase_add_test (tc, test_augment_multicrop);
  tcase_add_test (tc, test_datasetsrc);
  tcase_add_test (tc, test_npysink);
  tcase_add_test (tc, test_noveltyfilter);
  tcase_add_test (tc, test_each_error_once);
  return s;
}

int
main (int argc, char **argv)
{
  int ret;

  gst_check_init (&argc, &argv);
  tmp_root = g_dir_make_tmp ("ranges-XXXXXX", NULL);
  make_fixtures ();
  ret = gst_check_run_suite (ranges_suite (), "property-ranges", __FILE__);
  remove_tree (tmp_root);
  g_free (tmp_root);
  g_free (idx_dir);
  g_free (ckpt);
  return ret;
}
