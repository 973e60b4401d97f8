/* pipeline-common.c: see pipeline-common.h. */
#include <stdlib.h>
#include "pipeline-common.h"

#include <math.h>
#include <string.h>

#include <glib/gstdio.h>

#include "simclr/checkpoint.h"

gboolean
pt_have_fashion_mnist (void)
{
  return g_file_test (PT_FASHION_MNIST "/train-images-idx3-ubyte.gz",
      G_FILE_TEST_EXISTS)
      || g_file_test (PT_FASHION_MNIST "/train-images-idx3-ubyte",
      G_FILE_TEST_EXISTS);
}

void
pt_write_idx (const gchar * dir, guint n, guint side, const guint8 * pixels)
{
  /* big-endian headers: magic, count (, rows, columns) */
  const guint32 images_hdr[4] = { GUINT32_TO_BE (0x803), GUINT32_TO_BE (n),
    GUINT32_TO_BE (side), GUINT32_TO_BE (side)
  };
  const guint32 labels_hdr[2] = { GUINT32_TO_BE (0x801), GUINT32_TO_BE (n) };
  const gsize npix = (gsize) n * side * side;
  guint8 *images = g_malloc (sizeof images_hdr + npix);
  guint8 *labels = g_malloc (sizeof labels_hdr + n);
  gchar *path;

  g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
  memcpy (images, images_hdr, sizeof images_hdr);
  memcpy (images + sizeof images_hdr, pixels, npix);
  memcpy (labels, labels_hdr, sizeof labels_hdr);
  for (guint i = 0; i < n; i++)
    labels[sizeof labels_hdr + i] = (guint8) (i % 10);
  path = g_build_filename (dir, "train-images-idx3-ubyte", NULL);
  g_assert_true (g_file_set_contents (path, (const gchar *) images,
          sizeof images_hdr + npix, NULL));
  g_free (path);
  path = g_build_filename (dir, "train-labels-idx1-ubyte", NULL);
  g_assert_true (g_file_set_contents (path, (const gchar *) labels,
          sizeof labels_hdr + n, NULL));
  g_free (path);
  g_free (images);
  g_free (labels);
}

void
pt_remove_tree (const gchar * dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const gchar *name;

  while (d && (name = g_dir_read_name (d))) {
    gchar *p = g_build_filename (dir, name, NULL);
    if (g_file_test (p, G_FILE_TEST_IS_DIR)
        && !g_file_test (p, G_FILE_TEST_IS_SYMLINK))
      pt_remove_tree (p);
    else
      g_remove (p);
    g_free (p);
  }
  if (d)
    g_dir_close (d);
  g_rmdir (dir);
}

/* Runs in the encoder's streaming thread while it waits for us: the file is
 * exactly what the save wrote. */
static GstBusSyncReply
sync_handler (GstBus * bus, GstMessage * msg, gpointer user)
{
  PtRun *run = user;
  const GstStructure *s;
  const gchar *location;
  gchar *contents = NULL;
  gsize len = 0;

  if (GST_MESSAGE_TYPE (msg) != GST_MESSAGE_ELEMENT)
    return GST_BUS_PASS;
  s = gst_message_get_structure (msg);
  if (!gst_structure_has_name (s, "simclr-checkpoint"))
    return GST_BUS_PASS;
  location = gst_structure_get_string (s, "location");
  g_assert_nonnull (location);
  g_assert_true (g_file_get_contents (location, &contents, &len, NULL));
  g_clear_pointer (&run->last_checkpoint_bytes, g_bytes_unref);
  run->last_checkpoint_bytes = g_bytes_new_take (contents, len);
  return GST_BUS_PASS;
}

PtRun *
pt_run_pipeline (const gchar * description, guint timeout_s)
{
  PtRun *run = g_new0 (PtRun, 1);
  GError *parse_error = NULL;
  GstElement *pipeline;
  GstBus *bus;
  GstStateChangeReturn sret;
  gint64 deadline;

  run->train = g_array_new (FALSE, TRUE, sizeof (PtTrainRow));
  run->monitor = g_array_new (FALSE, TRUE, sizeof (PtMonitorRow));
  g_test_message ("pipeline: %s", description);
  pipeline = gst_parse_launch (description, &parse_error);
  g_assert_no_error (parse_error);
  g_assert_nonnull (pipeline);
  bus = gst_element_get_bus (pipeline);
  gst_bus_set_sync_handler (bus, sync_handler, run, NULL);

  /* Sanitizer builds run several times slower: scripts/run-tests.sh sets
   * SIMCLR_TEST_TIME_SCALE there, as it sets meson's timeout multiplier. */
  const gchar *scale_env = g_getenv ("SIMCLR_TEST_TIME_SCALE");
  guint scale = scale_env ? (guint) MAX (1, atoi (scale_env)) : 1;
  timeout_s *= scale;
  sret = gst_element_set_state (pipeline, GST_STATE_PLAYING);
  deadline = g_get_monotonic_time () + (gint64) timeout_s * G_TIME_SPAN_SECOND;
  /* A failed state change still posts its ERROR: read the bus either way. */
  (void) sret;
  while (!run->eos && run->error == NULL) {
    gint64 left = deadline - g_get_monotonic_time ();
    GstMessage *msg;

    if (left <= 0)
      g_error ("pipeline did not finish within %u s: %s", timeout_s,
          description);
    msg = gst_bus_timed_pop_filtered (bus, left * GST_USECOND,
        GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_ELEMENT);
    if (msg == NULL)
      continue;
    switch (GST_MESSAGE_TYPE (msg)) {
      case GST_MESSAGE_EOS:
        run->eos = TRUE;
        break;
      case GST_MESSAGE_ERROR:
        gst_message_parse_error (msg, &run->error, &run->error_debug);
        if (GST_IS_ELEMENT (GST_MESSAGE_SRC (msg))
            && gst_element_get_factory (GST_ELEMENT (GST_MESSAGE_SRC (msg))))
          run->error_source = g_strdup (GST_OBJECT_NAME (gst_element_get_factory
                  (GST_ELEMENT (GST_MESSAGE_SRC (msg)))));
        else
          run->error_source = gst_object_get_name (GST_MESSAGE_SRC (msg));
        g_test_message ("ERROR from %s: %s (%s)", run->error_source,
            run->error->message, GST_STR_NULL (run->error_debug));
        break;
      case GST_MESSAGE_ELEMENT:{
        const GstStructure *s = gst_message_get_structure (msg);
        if (gst_structure_has_name (s, "simclr-train")) {
          PtTrainRow row = { 0 };
          g_assert_true (gst_structure_get (s, "step", G_TYPE_UINT64,
                  &row.step, "loss", G_TYPE_DOUBLE, &row.loss, "top1",
                  G_TYPE_DOUBLE, &row.top1, "top5", G_TYPE_DOUBLE, &row.top5,
                  "lr", G_TYPE_DOUBLE, &row.lr, NULL));
          g_array_append_val (run->train, row);
        } else if (gst_structure_has_name (s, "simclr-monitor")) {
          PtMonitorRow row = { 0 };
          g_assert_true (gst_structure_get (s, "step", G_TYPE_UINT64,
                  &row.step, "epoch", G_TYPE_UINT64, &row.epoch, "knn-top1",
                  G_TYPE_DOUBLE, &row.knn_top1, "knn-top5", G_TYPE_DOUBLE,
                  &row.knn_top5, "samples", G_TYPE_INT, &row.samples, NULL));
          g_array_append_val (run->monitor, row);
        } else if (gst_structure_has_name (s, "simclr-checkpoint")) {
          run->n_checkpoints++;
          g_assert_true (gst_structure_get_uint64 (s, "step",
                  &run->last_checkpoint_step));
          g_free (run->last_checkpoint_location);
          run->last_checkpoint_location =
              g_strdup (gst_structure_get_string (s, "location"));
        }
        break;
      }
      default:
        break;
    }
    gst_message_unref (msg);
  }
  g_assert_cmpint (gst_element_set_state (pipeline, GST_STATE_NULL), !=,
      GST_STATE_CHANGE_FAILURE);
  gst_bus_set_sync_handler (bus, NULL, NULL, NULL);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
  return run;
}

void
pt_run_free (PtRun * run)
{
  if (run == NULL)
    return;
  g_array_unref (run->train);
  g_array_unref (run->monitor);
  g_free (run->last_checkpoint_location);
  g_clear_pointer (&run->last_checkpoint_bytes, g_bytes_unref);
  g_clear_error (&run->error);
  g_free (run->error_debug);
  g_free (run->error_source);
  g_free (run);
}

gdouble
pt_run_loss (const PtRun * run, guint64 step)
{
  guint i;
  for (i = 0; i < run->train->len; i++) {
    const PtTrainRow *r = &g_array_index (run->train, PtTrainRow, i);
    if (r->step == step)
      return r->loss;
  }
  return NAN;
}

void
pt_assert_same_losses (const PtRun * ref, const PtRun * run, guint64 first,
    guint64 count)
{
  g_assert_cmpuint (run->train->len, ==, count);
  for (guint i = 0; i < count; i++) {
    const PtTrainRow *r = &g_array_index (run->train, PtTrainRow, i);
    gdouble want = pt_run_loss (ref, first + i);
    g_assert_cmpuint (r->step, ==, first + i);
    if (r->loss != want)
      g_error ("step %" G_GUINT64_FORMAT ": loss %.17g, uninterrupted run "
          "%.17g", r->step, r->loss, want);
  }
}

void
pt_assert_same_tensors (const gchar * path_a, const gchar * path_c)
{
  SimclrError err = { 0 };
  SimclrSafetensors *a = simclr_safetensors_open (path_a, &err);
  SimclrSafetensors *c;
  int i, n_velocity = 0;

  if (a == NULL)
    g_error ("%s", err.message);
  c = simclr_safetensors_open (path_c, &err);
  if (c == NULL)
    g_error ("%s", err.message);
  g_assert_cmpint (simclr_safetensors_n_tensors (a), ==,
      simclr_safetensors_n_tensors (c));
  g_assert_cmpint (simclr_safetensors_n_tensors (a), >, 0);
  for (i = 0; i < simclr_safetensors_n_tensors (a); i++) {
    const SimclrSafetensorsTensor *ta = simclr_safetensors_tensor (a, i);
    const SimclrSafetensorsTensor *tc = simclr_safetensors_find (c, ta->name);
    gsize bytes = ta->numel * simclr_dtype_size (ta->dtype);
    gsize j;

    if (tc == NULL)
      g_error ("tensor %s of %s missing in %s", ta->name, path_a, path_c);
    g_assert_cmpint (ta->dtype, ==, tc->dtype);
    g_assert_cmpint (ta->ndim, ==, tc->ndim);
    g_assert_true (memcmp (ta->shape, tc->shape, sizeof ta->shape) == 0);
    g_assert_cmpuint (ta->numel, ==, tc->numel);
    if (memcmp (ta->data, tc->data, bytes) != 0) {
      for (j = 0; ta->dtype == SIMCLR_DTYPE_F32 && j < ta->numel; j++) {
        gfloat x = ((const gfloat *) ta->data)[j];
        gfloat y = ((const gfloat *) tc->data)[j];
        if (memcmp (&x, &y, sizeof x) != 0)
          g_error ("tensor %s element %" G_GSIZE_FORMAT ": %s "
              "%.9g, %s %.9g", ta->name, j, path_a, x, path_c, y);
      }
      g_error ("tensor %s differs", ta->name);
    }
    if (g_str_has_prefix (ta->name, "optim.velocity."))
      n_velocity++;
  }
  /* The optimiser state is part of the comparison. */
  g_assert_cmpint (n_velocity, >, 0);
  g_assert_cmpstr (simclr_safetensors_metadata (a, "step"), ==,
      simclr_safetensors_metadata (c, "step"));
  simclr_safetensors_free (a);
  simclr_safetensors_free (c);
}
