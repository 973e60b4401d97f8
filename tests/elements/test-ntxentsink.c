/* test-ntxentsink.c: GstHarness tests of ntxentsink.
 *
 * The gradient event is checked against an independent call of the NT-Xent
 * core on the same embeddings; the loss against the closed form of identical
 * rows (ln (2N-1)); the messages, the metrics CSV, the interval, and the
 * errors for non-finite and malformed input.
 */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "gstsimclr.h"
#include "simclr/loss.h"
#include "simclr/ntxent.h"

/* The meta code (plugins/gstsimclrmeta.c) is linked into this test; it
 * shares the plugin's registration by name. */

/* ------------------------------------------------------------------------ */

#define CAPS_D8 SIMCLR_EMBEDDING_MEDIA_TYPE ", dimension=(int)8"
#define D 8
#define N 4                     /* samples: rows = 2N */

/* Deterministic, non-degenerate embeddings: view 1 of a sample is close to
 * view 0, other samples differ. */
static void
fill_embeddings (float *z, gint rows, gint dim, guint seed)
{
  gint n = rows / 2;
  for (gint i = 0; i < rows; i++) {
    gint s = i % n, view = i / n;
    for (gint k = 0; k < dim; k++)
      z[i * dim + k] = (float) (sin (1.3 * (s + 1) * (k + 1) + seed)
          + 0.2 * view * cos (0.7 * k + s + seed));
  }
}

static GstBuffer *
make_buffer (const float *z, gint rows, gint dim, guint meta_rows,
    guint64 step, gdouble epoch, gdouble lr)
{
  GstBuffer *buf = gst_buffer_new_memdup (z, (gsize) rows * dim * 4);
  GstSimclrEmbeddingRow *r = g_new0 (GstSimclrEmbeddingRow, MAX (meta_rows,
          1));
  GstSimclrEmbeddingMeta *meta;
  gint n = MAX (rows / 2, 1);

  for (guint i = 0; i < meta_rows; i++) {
    r[i].sample_id = 100 + i % n;
    r[i].view = i / n;
    r[i].label = i % 3;
    r[i].pts = i * GST_MSECOND;
  }
  meta = gst_buffer_add_simclr_embedding_meta (buf, step, meta_rows, r);
  meta->epoch = epoch;
  meta->lr = lr;
  GST_BUFFER_OFFSET (buf) = step;
  g_free (r);
  return buf;
}

static GstHarness *
setup (GstBus ** bus)
{
  GstHarness *h = gst_harness_new ("ntxentsink");
  gst_harness_set_src_caps_str (h, CAPS_D8);
  if (bus) {
    *bus = gst_bus_new ();
    gst_element_set_bus (h->element, *bus);
  }
  return h;
}

/* Queued messages keep the element alive: detach before teardown. */
static void
teardown (GstHarness * h, GstBus * bus)
{
  if (bus) {
    gst_element_set_bus (h->element, NULL);
    gst_bus_set_flushing (bus, TRUE);
    gst_object_unref (bus);
  }
  gst_harness_teardown (h);
}

/* The reference: an independent workspace of the core on the same z. */
static void
core_reference (const float *z, gint rows, gint dim, float tau,
    SimclrNtxentResult * res, float *dz)
{
  SimclrError err = { 0 };
  SimclrNtxent *nt = simclr_ntxent_new (rows, dim, &err);
  fail_unless (nt != NULL, "simclr_ntxent_new: %s", err.message);
  fail_unless_equals_int (simclr_ntxent_forward (nt, z, rows, dim, tau, NULL,
          res, &err), SIMCLR_OK);
  simclr_ntxent_backward (nt, dz);
  simclr_ntxent_free (nt);
}

/* The next simclr-gradient event, skipping others (the harness also sees
 * e.g. reconfigure); NULL if none is queued. */
static GstEvent *
pull_gradient_event (GstHarness * h)
{
  GstEvent *ev;
  while ((ev = gst_harness_try_pull_upstream_event (h))) {
    if (GST_EVENT_TYPE (ev) == GST_EVENT_CUSTOM_UPSTREAM
        && gst_event_has_name (ev, SIMCLR_GRADIENT_EVENT))
      return ev;
    GST_INFO ("skipping upstream %" GST_PTR_FORMAT, ev);
    gst_event_unref (ev);
  }
  return NULL;
}

/* Pulls and counts the queued gradient events. */
static guint
count_gradient_events (GstHarness * h)
{
  GstEvent *ev;
  guint n = 0;
  while ((ev = pull_gradient_event (h))) {
    gst_event_unref (ev);
    n++;
  }
  return n;
}

static GstMessage *
pop_train_message (GstBus * bus)
{
  GstMessage *msg;
  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT))) {
    if (gst_message_has_name (msg, SIMCLR_TRAIN_MESSAGE))
      return msg;
    gst_message_unref (msg);
  }
  return NULL;
}

GST_START_TEST (test_gradient_event)
{
  const gint rows = 2 * N;
  float z[2 * N * D], dz_ref[2 * N * D];
  SimclrNtxentResult ref;
  GstHarness *h = setup (NULL);
  GstEvent *ev;
  const GstStructure *s;
  GstBuffer *grad;
  GstMapInfo map;
  guint64 step;
  gint r, d;
  gdouble loss, top1, top5, last_loss;

  /* The default temperature is the recipe's 0.2 (issue 11). */
  {
    gfloat tau;
    g_object_get (h->element, "temperature", &tau, NULL);
    fail_unless_equals_float (tau, 0.2f);
  }
  fill_embeddings (z, rows, D, 1);
  core_reference (z, rows, D, 0.2f, &ref, dz_ref);

  fail_unless_equals_int (gst_harness_push (h, make_buffer (z, rows, D, rows,
              7, 0.0, 0.1)), GST_FLOW_OK);
  ev = pull_gradient_event (h);
  fail_unless (ev != NULL);
  fail_unless_equals_int (GST_EVENT_TYPE (ev), GST_EVENT_CUSTOM_UPSTREAM);
  s = gst_event_get_structure (ev);
  fail_unless (gst_structure_has_name (s, SIMCLR_GRADIENT_EVENT));
  fail_unless (gst_structure_get_uint64 (s, "step", &step));
  fail_unless_equals_uint64 (step, 7);
  fail_unless (gst_structure_get_int (s, "rows", &r));
  fail_unless_equals_int (r, rows);
  fail_unless (gst_structure_get_int (s, "dimension", &d));
  fail_unless_equals_int (d, D);
  fail_unless (gst_structure_get_double (s, "loss", &loss));
  fail_unless (gst_structure_get_double (s, "top1", &top1));
  fail_unless (gst_structure_get_double (s, "top5", &top5));
  fail_unless (loss == ref.loss, "loss %.17g, core %.17g", loss, ref.loss);
  fail_unless (top1 == ref.top1, "top1 %g, core %g", top1, ref.top1);
  fail_unless (top5 == ref.top5, "top5 %g, core %g", top5, ref.top5);
  fail_unless (gst_structure_get (s, "gradient", GST_TYPE_BUFFER, &grad,
          NULL));
  fail_unless_equals_uint64 (gst_buffer_get_size (grad), sizeof dz_ref);
  fail_unless (gst_buffer_map (grad, &map, GST_MAP_READ));
  for (gint i = 0; i < rows * D; i++) {
    float got = ((const float *) map.data)[i];
    fail_unless (got == dz_ref[i], "dz[%d][%d]: event %.9g, core %.9g",
        i / D, i % D, got, dz_ref[i]);
  }
  gst_buffer_unmap (grad, &map);
  gst_buffer_unref (grad);
  gst_event_unref (ev);

  g_object_get (h->element, "last-loss", &last_loss, "step", &step, NULL);
  fail_unless (last_loss == ref.loss);
  fail_unless_equals_uint64 (step, 7);

  teardown (h, NULL);
}

GST_END_TEST;

GST_START_TEST (test_message_fields)
{
  const gint rows = 2 * N;
  float z[2 * N * D], dz_ref[2 * N * D];
  SimclrNtxentResult ref;
  GstBus *bus;
  GstHarness *h = setup (&bus);
  GstMessage *msg;
  const GstStructure *s;
  static const struct
  {
    const gchar *name;
    GType type;
  } fields[] = {
    {"step", G_TYPE_UINT64}, {"epoch", G_TYPE_DOUBLE}, {"loss", G_TYPE_DOUBLE},
    {"top1", G_TYPE_DOUBLE}, {"top5", G_TYPE_DOUBLE}, {"lr", G_TYPE_DOUBLE},
    {"views-per-second", G_TYPE_DOUBLE},
  };
  guint64 step;
  gdouble v;

  g_object_set (h->element, "temperature", 0.2f, NULL);
  fill_embeddings (z, rows, D, 2);
  core_reference (z, rows, D, 0.2f, &ref, dz_ref);
  fail_unless_equals_int (gst_harness_push (h, make_buffer (z, rows, D, rows,
              3, 2.0, 0.075)), GST_FLOW_OK);

  msg = pop_train_message (bus);
  fail_unless (msg != NULL, "no " SIMCLR_TRAIN_MESSAGE " message");
  fail_unless (GST_MESSAGE_SRC (msg) == GST_OBJECT (h->element));
  s = gst_message_get_structure (msg);
  fail_unless_equals_int (gst_structure_n_fields (s), G_N_ELEMENTS (fields));
  for (guint i = 0; i < G_N_ELEMENTS (fields); i++)
    fail_unless (gst_structure_has_field_typed (s, fields[i].name,
            fields[i].type), "field %s missing or not a %s", fields[i].name,
        g_type_name (fields[i].type));
  gst_structure_get_uint64 (s, "step", &step);
  fail_unless_equals_uint64 (step, 3);
  gst_structure_get_double (s, "epoch", &v);
  fail_unless_equals_float (v, 2.0);
  gst_structure_get_double (s, "lr", &v);
  fail_unless_equals_float (v, 0.075);
  gst_structure_get_double (s, "loss", &v);
  fail_unless (v == ref.loss, "loss %.17g, core %.17g", v, ref.loss);
  gst_structure_get_double (s, "top1", &v);
  fail_unless (v == ref.top1);
  gst_structure_get_double (s, "top5", &v);
  fail_unless (v == ref.top5);
  gst_structure_get_double (s, "views-per-second", &v);
  fail_unless (v > 0 && isfinite (v), "views-per-second %g", v);
  gst_message_unref (msg);

  /* post-messages=FALSE: the step runs, no message. */
  g_object_set (h->element, "post-messages", FALSE, NULL);
  fail_unless_equals_int (gst_harness_push (h, make_buffer (z, rows, D, rows,
              4, 2.0, 0.075)), GST_FLOW_OK);
  fail_unless (pop_train_message (bus) == NULL);
  fail_unless_equals_int (count_gradient_events (h), 2);

  teardown (h, bus);
}

GST_END_TEST;

/* All 2N rows identical: every similarity is 1/tau, so each anchor's loss is
 * -1/tau + log ((2N-1) e^(1/tau)) = ln (2N-1), and the gradient is 0. */
GST_START_TEST (test_closed_form_identical)
{
  const gint rows = 2 * N;
  float z[2 * N * D];
  GstBus *bus;
  GstHarness *h = setup (&bus);
  GstMessage *msg;
  GstEvent *ev;
  GstBuffer *grad;
  GstMapInfo map;
  gdouble loss, expect = log (2 * N - 1);

  for (gint i = 0; i < rows; i++)
    for (gint k = 0; k < D; k++)
      z[i * D + k] = 0.25f * (k + 1);
  fail_unless_equals_int (gst_harness_push (h, make_buffer (z, rows, D, rows,
              0, 0.0, 0.0)), GST_FLOW_OK);

  msg = pop_train_message (bus);
  fail_unless (msg != NULL);
  gst_structure_get_double (gst_message_get_structure (msg), "loss", &loss);
  fail_unless (fabs (loss - expect) < 1e-5, "loss %.9g, ln (2N-1) = %.9g",
      loss, expect);
  gst_message_unref (msg);

  ev = pull_gradient_event (h);
  fail_unless (ev != NULL);
  fail_unless (gst_structure_get (gst_event_get_structure (ev), "gradient",
          GST_TYPE_BUFFER, &grad, NULL));
  fail_unless (gst_buffer_map (grad, &map, GST_MAP_READ));
  for (gint i = 0; i < rows * D; i++) {
    float g = ((const float *) map.data)[i];
    fail_unless (fabsf (g) < 1e-5f, "dz[%d] = %g, expected 0", i, g);
  }
  gst_buffer_unmap (grad, &map);
  gst_buffer_unref (grad);
  gst_event_unref (ev);

  teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_metrics_csv)
{
  const gint rows = 2 * N;
  float z[2 * N * D];
  gchar *dir = g_dir_make_tmp ("ntxentsink-XXXXXX", NULL);
  gchar *path = g_build_filename (dir, "metrics.csv", NULL);
  GstHarness *h = gst_harness_new ("ntxentsink");
  gchar *contents = NULL, **lines;
  gdouble losses[3];

  fail_unless (dir != NULL);
  /* Set before the harness starts the element: the file opens at start. */
  gst_harness_set_src_caps_str (h, CAPS_D8);
  gst_element_set_state (h->element, GST_STATE_NULL);
  g_object_set (h->element, "metrics-location", path, "post-messages", FALSE,
      NULL);
  gst_harness_play (h);

  for (guint step = 0; step < 3; step++) {
    fill_embeddings (z, rows, D, 10 + step);
    fail_unless_equals_int (gst_harness_push (h, make_buffer (z, rows, D, rows,
                step, 0.0, 0.5 * step)), GST_FLOW_OK);
    g_object_get (h->element, "last-loss", &losses[step], NULL);
  }

  /* Flushed per row: readable while the element runs. */
  fail_unless (g_file_get_contents (path, &contents, NULL, NULL));
  lines = g_strsplit (contents, "\n", -1);
  fail_unless_equals_int (g_strv_length (lines), 5);    /* 4 lines + "" */
  fail_unless_equals_string (lines[0],
      "step,epoch,loss,top1,top5,lr,views-per-second");
  for (guint step = 0; step < 3; step++) {
    gchar **f = g_strsplit (lines[step + 1], ",", -1);
    fail_unless_equals_int (g_strv_length (f), 7);
    fail_unless_equals_uint64 (g_ascii_strtoull (f[0], NULL, 10), step);
    fail_unless (g_ascii_strtod (f[2], NULL) == losses[step],
        "row %u loss %s, property %.17g", step, f[2], losses[step]);
    fail_unless_equals_float (g_ascii_strtod (f[5], NULL), 0.5 * step);
    fail_unless (g_ascii_strtod (f[6], NULL) > 0);
    g_strfreev (f);
  }
  fail_unless_equals_string (lines[4], "");
  g_strfreev (lines);
  g_free (contents);

  gst_harness_teardown (h);
  g_unlink (path);
  g_rmdir (dir);
  g_free (path);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_metrics_open_error)
{
  GstElement *sink = gst_element_factory_make ("ntxentsink", NULL);
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  GError *err = NULL;
  gchar *dbg = NULL;
  const gchar *path = "/nonexistent-dir-ntxentsink/metrics.csv";

  gst_element_set_bus (sink, bus);
  g_object_set (sink, "metrics-location", path, NULL);
  fail_unless_equals_int (gst_element_set_state (sink, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_parse_error (msg, &err, &dbg);
  fail_unless (g_error_matches (err, GST_RESOURCE_ERROR,
          GST_RESOURCE_ERROR_OPEN_WRITE), "%s", err->message);
  fail_unless (strstr (err->message, path) != NULL, "'%s' does not name %s",
      err->message, path);
  g_error_free (err);
  g_free (dbg);
  gst_message_unref (msg);

  gst_element_set_state (sink, GST_STATE_NULL);
  gst_element_set_bus (sink, NULL);
  gst_bus_set_flushing (bus, TRUE);
  gst_object_unref (bus);
  gst_object_unref (sink);
}

GST_END_TEST;

/* Pops the error message and checks its domain, code and a substring. */
static void
expect_error (GstBus * bus, GQuark domain, gint code, const gchar * needle)
{
  GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  GError *err = NULL;
  gchar *dbg = NULL;

  fail_unless (msg != NULL, "no error message");
  gst_message_parse_error (msg, &err, &dbg);
  fail_unless (g_error_matches (err, domain, code), "unexpected error %s %d: "
      "%s", g_quark_to_string (err->domain), err->code, err->message);
  if (needle)
    fail_unless (strstr (err->message, needle) != NULL,
        "'%s' does not contain '%s'", err->message, needle);
  g_error_free (err);
  g_free (dbg);
  gst_message_unref (msg);
}

GST_START_TEST (test_non_finite)
{
  const gint rows = 2 * N;
  float z[2 * N * D];
  GstBus *bus;
  GstHarness *h = setup (&bus);

  fill_embeddings (z, rows, D, 3);
  z[3 * D + 2] = NAN;
  fail_unless_equals_int (gst_harness_push (h, make_buffer (z, rows, D, rows,
              5, 0.0, 0.1)), GST_FLOW_ERROR);
  expect_error (bus, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED, "step 5");
  fail_unless_equals_int (count_gradient_events (h), 0);
  fail_unless (pop_train_message (bus) == NULL);

  teardown (h, bus);

  /* Infinite values too. */
  h = setup (&bus);
  fill_embeddings (z, rows, D, 3);
  z[0] = INFINITY;
  fail_unless_equals_int (gst_harness_push (h, make_buffer (z, rows, D, rows,
              12, 0.0, 0.1)), GST_FLOW_ERROR);
  expect_error (bus, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED, "step 12");
  fail_unless_equals_int (count_gradient_events (h), 0);
  teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_interval)
{
  const gint rows = 2 * N;
  float z[2 * N * D];
  GstBus *bus;
  GstHarness *h = setup (&bus);
  GstMessage *msg;
  guint64 posted[9], step;
  guint n_posted = 0;

  g_object_set (h->element, "interval", 3, NULL);
  for (guint64 i = 0; i < 9; i++) {
    fill_embeddings (z, rows, D, i);
    fail_unless_equals_int (gst_harness_push (h, make_buffer (z, rows, D,
                rows, i, 0.0, 0.1)), GST_FLOW_OK);
    while ((msg = pop_train_message (bus))) {
      gst_structure_get_uint64 (gst_message_get_structure (msg), "step",
          &step);
      fail_unless (step == i, "message for step %" G_GUINT64_FORMAT
          " after pushing step %" G_GUINT64_FORMAT, step, i);
      posted[n_posted++] = step;
      gst_message_unref (msg);
    }
  }
  fail_unless_equals_int (n_posted, 3);
  fail_unless_equals_uint64 (posted[0], 2);
  fail_unless_equals_uint64 (posted[1], 5);
  fail_unless_equals_uint64 (posted[2], 8);
  /* Every step still sends its gradient. */
  fail_unless_equals_int (count_gradient_events (h), 9);

  /* interval=0: never. */
  g_object_set (h->element, "interval", 0, NULL);
  fail_unless_equals_int (gst_harness_push (h, make_buffer (z, rows, D, rows,
              11, 0.0, 0.1)), GST_FLOW_OK);
  fail_unless (pop_train_message (bus) == NULL);

  teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_bad_buffers)
{
  float z[2 * N * D + 3];
  GstBus *bus;
  GstHarness *h;
  GstBuffer *buf;

  fill_embeddings (z, 2 * N, D, 4);

  /* Odd row count. */
  h = setup (&bus);
  fail_unless_equals_int (gst_harness_push (h, make_buffer (z, 3, D, 3, 1,
              0.0, 0.1)), GST_FLOW_ERROR);
  expect_error (bus, GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT, "3 rows");
  teardown (h, bus);

  /* Rows != meta rows. */
  h = setup (&bus);
  fail_unless_equals_int (gst_harness_push (h, make_buffer (z, 2 * N, D, 6, 1,
              0.0, 0.1)), GST_FLOW_ERROR);
  expect_error (bus, GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT, "meta");
  teardown (h, bus);

  /* Not a whole number of rows. */
  h = setup (&bus);
  buf = make_buffer (z, 2 * N, D, 2 * N, 1, 0.0, 0.1);
  gst_buffer_set_size (buf, gst_buffer_get_size (buf) - 4);
  fail_unless_equals_int (gst_harness_push (h, buf), GST_FLOW_ERROR);
  expect_error (bus, GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT, "size");
  teardown (h, bus);

  /* No meta. */
  h = setup (&bus);
  buf = gst_buffer_new_memdup (z, 2 * N * D * 4);
  fail_unless_equals_int (gst_harness_push (h, buf), GST_FLOW_ERROR);
  expect_error (bus, GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT, "Meta");
  fail_unless_equals_int (count_gradient_events (h), 0);
  teardown (h, bus);
}

GST_END_TEST;

/* Properties written from another thread while buffers flow: no crash, no
 * torn state (run under valgrind/ASan to see races bite). */
GST_START_TEST (test_stress_properties)
{
  const gint rows = 2 * N;
  float z[2 * N * D];
  GstHarness *h = setup (NULL);
  GValue tau = G_VALUE_INIT, ivl = G_VALUE_INIT;
  GstHarnessThread *t1, *t2;

  g_value_init (&tau, G_TYPE_FLOAT);
  g_value_set_float (&tau, 0.1f);
  g_value_init (&ivl, G_TYPE_UINT);
  g_value_set_uint (&ivl, 2);
  t1 = gst_harness_stress_property_start_full (h, "temperature", &tau, 100);
  t2 = gst_harness_stress_property_start_full (h, "interval", &ivl, 100);
  for (guint64 i = 0; i < 50; i++) {
    gdouble loss;
    fill_embeddings (z, rows, D, i);
    fail_unless_equals_int (gst_harness_push (h, make_buffer (z, rows, D,
                rows, i, 0.0, 0.1)), GST_FLOW_OK);
    g_object_get (h->element, "last-loss", &loss, NULL);
    fail_unless (isfinite (loss) && loss > 0);
  }
  gst_harness_stress_thread_stop (t1);
  gst_harness_stress_thread_stop (t2);
  g_value_unset (&tau);
  g_value_unset (&ivl);
  fail_unless_equals_int (count_gradient_events (h), 50);
  teardown (h, NULL);
}

GST_END_TEST;

/* queue-size=Q: the steps' losses, gradients and queue-length are the core
 * SimclrLoss's with the same queue, bit for bit; the default is no queue. */
GST_START_TEST (test_queue)
{
  const gint rows = 2 * N, Q = 12, S = 3;
  float z[2 * N * D], dz[2 * N * D];
  GstElement *e = gst_element_factory_make ("ntxentsink", NULL);
  GstHarness *h;
  GstBus *bus = gst_bus_new ();
  SimclrLossConfig cfg;
  SimclrLoss *ref;
  SimclrLossResult r;
  SimclrError err = { 0 };
  guint queue_size;

  g_object_get (e, "queue-size", &queue_size, NULL);
  fail_unless_equals_int (queue_size, 0);
  g_object_set (e, "queue-size", (guint) Q, NULL);
  h = gst_harness_new_with_element (e, "sink", NULL);
  gst_object_unref (e);
  gst_harness_set_src_caps_str (h, CAPS_D8);
  gst_element_set_bus (h->element, bus);

  simclr_loss_config_default (&cfg);
  cfg.temperature = 0.2f;       /* the float the element computes with */
  cfg.queue_size = Q;
  ref = simclr_loss_new (&cfg, NULL, &err);
  fail_unless (ref != NULL, "%s", err.message);
  for (gint s = 0; s < S; s++) {
    GstEvent *ev;
    GstMessage *msg;
    GstBuffer *grad;
    GstMapInfo map;
    gdouble loss;
    guint len;

    fill_embeddings (z, rows, D, 10 + s);
    fail_unless_equals_int (simclr_loss_forward (ref, z, rows, D, &r, &err),
        SIMCLR_OK);
    fail_unless_equals_int (simclr_loss_backward (ref, dz, &err), SIMCLR_OK);
    fail_unless_equals_int (gst_harness_push (h, make_buffer (z, rows, D,
                rows, s, 0.0, 0.1)), GST_FLOW_OK);
    ev = pull_gradient_event (h);
    fail_unless (ev != NULL);
    fail_unless (gst_structure_get_double (gst_event_get_structure (ev),
            "loss", &loss));
    fail_unless (loss == r.loss, "step %d: loss %.17g, core %.17g", s, loss,
        r.loss);
    fail_unless (gst_structure_get (gst_event_get_structure (ev), "gradient",
            GST_TYPE_BUFFER, &grad, NULL));
    fail_unless (gst_buffer_map (grad, &map, GST_MAP_READ));
    fail_unless (memcmp (map.data, dz, sizeof dz) == 0,
        "step %d: the gradient differs from the core's", s);
    gst_buffer_unmap (grad, &map);
    gst_buffer_unref (grad);
    gst_event_unref (ev);
    msg = pop_train_message (bus);
    fail_unless (msg != NULL);
    fail_unless (gst_structure_get_uint (gst_message_get_structure (msg),
            "queue-length", &len));
    fail_unless_equals_int (len, MIN (Q, (s + 1) * rows));
    fail_unless_equals_int (len, simclr_loss_queue_length (ref));
    gst_message_unref (msg);
  }
  /* with a queue the later steps' losses exceed the plain loss */
  {
    SimclrNtxentResult plain;
    float dz_plain[2 * N * D];
    core_reference (z, rows, D, 0.2f, &plain, dz_plain);
    fail_unless (r.loss > plain.loss, "queue %.9g, plain %.9g", r.loss,
        plain.loss);
  }
  simclr_loss_free (ref);
  teardown (h, bus);
}

GST_END_TEST;

static Suite *
ntxentsink_suite (void)
{
  Suite *s = suite_create ("ntxentsink");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_gradient_event);
  tcase_add_test (tc, test_message_fields);
  tcase_add_test (tc, test_queue);
  tcase_add_test (tc, test_closed_form_identical);
  tcase_add_test (tc, test_metrics_csv);
  tcase_add_test (tc, test_metrics_open_error);
  tcase_add_test (tc, test_non_finite);
  tcase_add_test (tc, test_interval);
  tcase_add_test (tc, test_bad_buffers);
  tcase_add_test (tc, test_stress_properties);
  return s;
}

int
main (int argc, char **argv)
{
  gst_check_init (&argc, &argv);
  return gst_check_run_suite (ntxentsink_suite (), "ntxentsink", __FILE__);
}
