/* test-simclrnpysink.c: GstHarness tests of simclrnpysink.
 *
 * Buffers of known floats go in; the .npy file is checked twice: by a C
 * parse of its header and data, and by numpy.load in /usr/bin/python3 (the
 * test exits 77, a skip, when numpy is missing and everything else passed).
 * The CSV sidecar is checked line by line, and nothing may appear before EOS.
 */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "gstsimclr.h"

/* The meta code (plugins/gstsimclrmeta.c) is linked into this test; it
 * shares the plugin's registration by name. */

/* ------------------------------------------------------------------------ */

#define D 5
#define TOTAL_ROWS 6

static gboolean have_numpy = FALSE;

/* Row r of the expected array: values that are exact in float32 and
 * distinguishable (sign, fraction, magnitude), plus a denormal and a huge
 * value to catch any text round trip. */
static float
expected_value (gint r, gint k)
{
  if (r == 4 && k == 0)
    return 1e-40f;
  if (r == 5 && k == 4)
    return -3.4e38f;
  return (float) ((r + 1) * (k % 2 ? -1 : 1)) * 0.375f + k * 1024.0f;
}

/* A buffer of rows r0 .. r0+rows-1 of the expected array. Row r has sample id
 * 1000 + r, view r % 2, label r % 10 (row 3: -1), pts r ms (row 2: none). */
static GstBuffer *
make_rows (gint r0, gint rows, gboolean with_meta)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, (gsize) rows * D * 4, NULL);
  GstSimclrEmbeddingRow rec[TOTAL_ROWS];
  GstMapInfo map;

  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  for (gint i = 0; i < rows; i++)
    for (gint k = 0; k < D; k++)
      ((float *) map.data)[i * D + k] = expected_value (r0 + i, k);
  gst_buffer_unmap (buf, &map);

  for (gint i = 0; i < rows; i++) {
    gint r = r0 + i;
    rec[i].sample_id = 1000 + r;
    rec[i].view = r % 2;
    rec[i].label = r == 3 ? -1 : r % 10;
    rec[i].pts = r == 2 ? GST_CLOCK_TIME_NONE : (GstClockTime) r * GST_MSECOND;
  }
  if (with_meta)
    gst_buffer_add_simclr_embedding_meta (buf, r0, rows, rec);
  GST_BUFFER_PTS (buf) = r0 * GST_MSECOND;
  return buf;
}

static GstHarness *
setup (const gchar * npy, const gchar * csv)
{
  GstElement *sink = gst_element_factory_make ("simclrnpysink", NULL);
  GstHarness *h;

  /* The files open at start: set the locations before the harness plays. */
  g_object_set (sink, "location", npy, NULL);
  if (csv)
    g_object_set (sink, "sidecar-location", csv, NULL);
  h = gst_harness_new_with_element (sink, "sink", NULL);
  gst_object_unref (sink);
  gst_harness_set_src_caps_str (h, SIMCLR_EMBEDDING_MEDIA_TYPE
      ", dimension=(int)5");
  return h;
}

/* Parses the .npy header in C and compares the data bit for bit. */
static void
check_npy_c (const gchar * path, gint rows)
{
  gchar *data;
  gsize len;
  guint hlen;
  gchar *dict;
  gchar *shape;

  fail_unless (g_file_get_contents (path, &data, &len, NULL), "cannot read "
      "%s", path);
  fail_unless (len >= 10);
  fail_unless (memcmp (data, "\x93NUMPY", 6) == 0, "bad magic");
  fail_unless_equals_int (data[6], 1);
  fail_unless_equals_int (data[7], 0);
  hlen = (guint8) data[8] | ((guint8) data[9] << 8);
  fail_unless ((10 + hlen) % 64 == 0, "header of %u bytes is not padded to "
      "64", 10 + hlen);
  fail_unless_equals_int (data[10 + hlen - 1], '\n');
  dict = g_strndup (data + 10, hlen);
  fail_unless (strstr (dict, "'descr': '<f4'") != NULL, "%s", dict);
  fail_unless (strstr (dict, "'fortran_order': False") != NULL, "%s", dict);
  shape = g_strdup_printf ("'shape': (%d, %d)", rows, D);
  fail_unless (strstr (dict, shape) != NULL, "%s lacks %s", dict, shape);
  fail_unless_equals_uint64 (len, 10 + hlen + (gsize) rows * D * 4);
  for (gint i = 0; i < rows * D; i++) {
    float got, want = expected_value (i / D, i % D);
    guint32 bits;
    memcpy (&bits, data + 10 + hlen + 4 * i, 4);
    bits = GUINT32_FROM_LE (bits);
    memcpy (&got, &bits, 4);
    fail_unless (memcmp (&got, &want, 4) == 0, "row %d col %d: file %.9g, "
        "pushed %.9g", i / D, i % D, got, want);
  }
  g_free (shape);
  g_free (dict);
  g_free (data);
}

/* numpy.load must read the file with the same dtype, shape and bits. */
static void
check_npy_numpy (const gchar * path, gint rows)
{
  const gchar *script =
      "import sys, numpy as np\n"
      "a = np.load(sys.argv[1])\n"
      "print(a.dtype.str, a.shape[0], a.shape[1], int(a.flags.c_contiguous))\n"
      "print(a.astype('<f4').tobytes().hex())\n";
  gchar *argv[] = { (gchar *) "/usr/bin/python3", (gchar *) "-c",
    (gchar *) script, (gchar *) path, NULL
  };
  gchar *out = NULL, *err = NULL, *want_head, *want_hex;
  gchar **lines;
  gint status;
  GString *hex = g_string_new (NULL);

  if (!have_numpy)
    return;
  fail_unless (g_spawn_sync (NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
          &out, &err, &status, NULL));
  fail_unless (g_spawn_check_wait_status (status, NULL), "numpy.load "
      "failed: %s", err);
  lines = g_strsplit (out, "\n", -1);
  want_head = g_strdup_printf ("<f4 %d %d 1", rows, D);
  fail_unless_equals_string (lines[0], want_head);
  for (gint i = 0; i < rows * D; i++) {
    float v = expected_value (i / D, i % D);
    guint32 bits;
    memcpy (&bits, &v, 4);
    bits = GUINT32_TO_LE (bits);
    for (gint b = 0; b < 4; b++)
      g_string_append_printf (hex, "%02x", (bits >> (8 * b)) & 0xff);
  }
  want_hex = hex->str;
  for (gint i = 0; want_hex[i] || lines[1][i]; i++)
    fail_unless (want_hex[i] == lines[1][i], "numpy differs at float %d: "
        "numpy %.8s, pushed %.8s", i / 8, lines[1] + (i / 8) * 8,
        want_hex + (i / 8) * 8);
  g_string_free (hex, TRUE);
  g_free (want_head);
  g_strfreev (lines);
  g_free (out);
  g_free (err);
}

static void
check_csv (const gchar * path, gint rows, gboolean with_meta)
{
  gchar *contents;
  gchar **lines;

  fail_unless (g_file_get_contents (path, &contents, NULL, NULL),
      "cannot read %s", path);
  lines = g_strsplit (contents, "\n", -1);
  fail_unless_equals_int (g_strv_length (lines), rows + 2);
  fail_unless_equals_string (lines[0], "index,pts_ns,sample_id,view,label");
  for (gint r = 0; r < rows; r++) {
    gchar *want;
    if (with_meta)
      want = r == 2 ? g_strdup_printf ("%d,,%d,%d,%d", r, 1000 + r, r % 2,
          r % 10) : g_strdup_printf ("%d,%" G_GUINT64_FORMAT ",%d,%d,%d", r,
          (guint64) r * GST_MSECOND, 1000 + r, r % 2, r == 3 ? -1 : r % 10);
    else
      want = g_strdup_printf ("%d,%" G_GUINT64_FORMAT ",,,", r,
          (guint64) r * GST_MSECOND);
    fail_unless_equals_string (lines[r + 1], want);
    g_free (want);
  }
  fail_unless_equals_string (lines[rows + 1], "");
  g_strfreev (lines);
  g_free (contents);
}

/* Removes the files of @dir and @dir; fails on leftovers named *.XXXXXX. */
static void
clean_dir (gchar * dir, gint expect_files)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const gchar *name;
  gint n = 0;

  while ((name = g_dir_read_name (d))) {
    gchar *p = g_build_filename (dir, name, NULL);
    fail_unless (g_str_has_suffix (name, ".npy")
        || g_str_has_suffix (name, ".csv"), "leftover file %s", name);
    g_unlink (p);
    g_free (p);
    n++;
  }
  g_dir_close (d);
  fail_unless_equals_int (n, expect_files);
  g_rmdir (dir);
  g_free (dir);
}

GST_START_TEST (test_npy_and_sidecar)
{
  gchar *dir = g_dir_make_tmp ("npysink-XXXXXX", NULL);
  gchar *npy = g_build_filename (dir, "emb.npy", NULL);
  gchar *csv = g_strconcat (npy, ".csv", NULL);
  GstHarness *h = setup (npy, NULL);
  gchar *loc;

  /* 2 + 1 + 3 rows in three buffers. */
  fail_unless_equals_int (gst_harness_push (h, make_rows (0, 2, TRUE)),
      GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_push (h, make_rows (2, 1, TRUE)),
      GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_push (h, make_rows (3, 3, TRUE)),
      GST_FLOW_OK);
  /* Atomic: nothing at the destination before EOS. */
  fail_if (g_file_test (npy, G_FILE_TEST_EXISTS));
  fail_if (g_file_test (csv, G_FILE_TEST_EXISTS));
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));

  check_npy_c (npy, TOTAL_ROWS);
  check_npy_numpy (npy, TOTAL_ROWS);
  check_csv (csv, TOTAL_ROWS, TRUE);

  g_object_get (h->element, "location", &loc, NULL);
  fail_unless_equals_string (loc, npy);
  g_free (loc);
  gst_harness_teardown (h);
  clean_dir (dir, 2);
  g_free (npy);
  g_free (csv);
}

GST_END_TEST;

/* Without metas: buffer timestamps for single rows, empty identity fields;
 * the sidecar goes where sidecar-location says. */
GST_START_TEST (test_no_meta_sidecar_location)
{
  gchar *dir = g_dir_make_tmp ("npysink-XXXXXX", NULL);
  gchar *npy = g_build_filename (dir, "frames.npy", NULL);
  gchar *csv = g_build_filename (dir, "rows.csv", NULL);
  GstHarness *h = setup (npy, csv);

  for (gint r = 0; r < TOTAL_ROWS; r++)
    fail_unless_equals_int (gst_harness_push (h, make_rows (r, 1, FALSE)),
        GST_FLOW_OK);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  check_npy_c (npy, TOTAL_ROWS);
  check_csv (csv, TOTAL_ROWS, FALSE);
  gst_harness_teardown (h);
  clean_dir (dir, 2);
  g_free (npy);
  g_free (csv);
}

GST_END_TEST;

/* Pops the bus's messages; returns how many warnings name @needle, and fails
 * on any error. */
static gint
count_warnings (GstBus * bus, const gchar * needle)
{
  GstMessage *msg;
  gint n = 0;

  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING |
              GST_MESSAGE_ERROR))) {
    GError *err = NULL;
    gchar *dbg = NULL;
    fail_unless (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_WARNING,
        "an error was posted");
    gst_message_parse_warning (msg, &err, &dbg);
    fail_unless (g_error_matches (err, GST_RESOURCE_ERROR,
            GST_RESOURCE_ERROR_WRITE), "%s", err->message);
    if (strstr (err->message, needle))
      n++;
    g_clear_error (&err);
    g_free (dbg);
    gst_message_unref (msg);
  }
  return n;
}

/* An empty stream writes no file (an empty array is never written) and says
 * so in a warning naming it. */
GST_START_TEST (test_empty_stream)
{
  gchar *dir = g_dir_make_tmp ("npysink-XXXXXX", NULL);
  gchar *npy = g_build_filename (dir, "empty.npy", NULL);
  GstHarness *h = setup (npy, NULL);
  GstBus *bus = gst_bus_new ();

  gst_element_set_bus (h->element, bus);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  fail_if (g_file_test (npy, G_FILE_TEST_EXISTS));
  fail_unless_equals_int (count_warnings (bus, npy), 1);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  clean_dir (dir, 0);
  g_free (npy);
}

GST_END_TEST;

/* Issue 15: a failed run must not destroy a good file. A first run writes
 * 6 rows; then runs that end without a row (EOS right after caps, and EOS
 * before any caps, as after an upstream not-negotiated error) leave the
 * .npy and its sidecar byte for byte as they were, with a warning. Before
 * the fix the second run replaced the file with an empty (0, 1) array. */
GST_START_TEST (test_failed_run_keeps_good_file)
{
  gchar *dir = g_dir_make_tmp ("npysink-XXXXXX", NULL);
  gchar *npy = g_build_filename (dir, "good.npy", NULL);
  gchar *csv = g_strconcat (npy, ".csv", NULL);
  gchar *npy_before, *csv_before, *npy_after, *csv_after;
  gsize npy_len, csv_len, len;
  GstHarness *h = setup (npy, NULL);

  fail_unless_equals_int (gst_harness_push (h, make_rows (0, TOTAL_ROWS,
              TRUE)), GST_FLOW_OK);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  gst_harness_teardown (h);
  check_npy_c (npy, TOTAL_ROWS);
  fail_unless (g_file_get_contents (npy, &npy_before, &npy_len, NULL));
  fail_unless (g_file_get_contents (csv, &csv_before, &csv_len, NULL));

  for (gint with_caps = 1; with_caps >= 0; with_caps--) {
    GstElement *sink = gst_element_factory_make ("simclrnpysink", NULL);
    GstBus *bus = gst_bus_new ();

    g_object_set (sink, "location", npy, NULL);
    gst_element_set_bus (sink, bus);
    h = gst_harness_new_with_element (sink, "sink", NULL);
    gst_object_unref (sink);
    if (with_caps)
      gst_harness_set_src_caps_str (h, SIMCLR_EMBEDDING_MEDIA_TYPE
          ", dimension=(int)128");
    else
      gst_harness_play (h);
    fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
    fail_unless_equals_int (count_warnings (bus, npy), 1);
    gst_element_set_bus (h->element, NULL);
    gst_object_unref (bus);
    gst_harness_teardown (h);

    fail_unless (g_file_get_contents (npy, &npy_after, &len, NULL));
    fail_unless (len == npy_len && memcmp (npy_after, npy_before, len) == 0,
        "run %d without rows changed %s (%" G_GSIZE_FORMAT " bytes, was %"
        G_GSIZE_FORMAT ")", 2 - with_caps, npy, len, npy_len);
    g_free (npy_after);
    fail_unless (g_file_get_contents (csv, &csv_after, &len, NULL));
    fail_unless (len == csv_len && memcmp (csv_after, csv_before, len) == 0,
        "run %d without rows changed %s", 2 - with_caps, csv);
    g_free (csv_after);
  }
  check_npy_numpy (npy, TOTAL_ROWS);

  g_free (npy_before);
  g_free (csv_before);
  clean_dir (dir, 2);
  g_free (npy);
  g_free (csv);
}

GST_END_TEST;

/* Stopped without EOS: no file and no temporary file is left behind. */
GST_START_TEST (test_no_eos_leaves_nothing)
{
  gchar *dir = g_dir_make_tmp ("npysink-XXXXXX", NULL);
  gchar *npy = g_build_filename (dir, "cut.npy", NULL);
  GstHarness *h = setup (npy, NULL);

  fail_unless_equals_int (gst_harness_push (h, make_rows (0, 2, TRUE)),
      GST_FLOW_OK);
  gst_harness_teardown (h);
  fail_if (g_file_test (npy, G_FILE_TEST_EXISTS));
  clean_dir (dir, 0);
  g_free (npy);
}

GST_END_TEST;

GST_START_TEST (test_errors)
{
  GstElement *sink = gst_element_factory_make ("simclrnpysink", NULL);
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  GError *err = NULL;
  gchar *dbg = NULL;
  const gchar *path = "/nonexistent-dir-npysink/emb.npy";

  gst_element_set_bus (sink, bus);
  g_object_set (sink, "location", path, NULL);
  fail_unless_equals_int (gst_element_set_state (sink, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_parse_error (msg, &err, &dbg);
  fail_unless (g_error_matches (err, GST_RESOURCE_ERROR,
          GST_RESOURCE_ERROR_OPEN_WRITE), "%s", err->message);
  fail_unless (strstr (err->message, path) != NULL, "'%s' does not name %s",
      err->message, path);
  g_clear_error (&err);
  g_free (dbg);
  gst_message_unref (msg);

  /* No location at all. The core may add its own generic state-change
   * error after ours: drop what is queued, then look for ours. */
  gst_element_set_state (sink, GST_STATE_NULL);
  gst_bus_set_flushing (bus, TRUE);
  gst_bus_set_flushing (bus, FALSE);
  g_object_set (sink, "location", NULL, NULL);
  fail_unless_equals_int (gst_element_set_state (sink, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_parse_error (msg, &err, &dbg);
  fail_unless (g_error_matches (err, GST_RESOURCE_ERROR,
          GST_RESOURCE_ERROR_NOT_FOUND), "%s: %s (%s)",
      g_quark_to_string (err->domain), err->message, dbg);
  g_clear_error (&err);
  g_free (dbg);
  gst_message_unref (msg);

  /* Issue 15: a folder as location is refused at start, not at EOS after
   * the whole stream. */
  {
    gchar *dir = g_dir_make_tmp ("npysink-XXXXXX", NULL);
    gst_element_set_state (sink, GST_STATE_NULL);
    gst_bus_set_flushing (bus, TRUE);
    gst_bus_set_flushing (bus, FALSE);
    g_object_set (sink, "location", dir, NULL);
    fail_unless_equals_int (gst_element_set_state (sink, GST_STATE_PAUSED),
        GST_STATE_CHANGE_FAILURE);
    msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
    fail_unless (msg != NULL);
    gst_message_parse_error (msg, &err, &dbg);
    fail_unless (g_error_matches (err, GST_RESOURCE_ERROR,
            GST_RESOURCE_ERROR_OPEN_WRITE), "%s", err->message);
    fail_unless (strstr (err->message, "location") && strstr (err->message,
            dir), "%s", err->message);
    g_clear_error (&err);
    g_free (dbg);
    gst_message_unref (msg);
    gst_element_set_state (sink, GST_STATE_NULL);
    clean_dir (dir, 0);
  }

  gst_element_set_state (sink, GST_STATE_NULL);
  gst_element_set_bus (sink, NULL);
  gst_bus_set_flushing (bus, TRUE);
  gst_object_unref (bus);
  gst_object_unref (sink);
}

GST_END_TEST;

GST_START_TEST (test_bad_buffer)
{
  gchar *dir = g_dir_make_tmp ("npysink-XXXXXX", NULL);
  gchar *npy = g_build_filename (dir, "bad.npy", NULL);
  GstHarness *h = setup (npy, NULL);
  GstBus *bus = gst_bus_new ();
  GstBuffer *buf;
  GstMessage *msg;
  GError *err = NULL;

  gst_element_set_bus (h->element, bus);
  buf = make_rows (0, 2, TRUE);
  gst_buffer_set_size (buf, 2 * D * 4 - 4);
  fail_unless_equals_int (gst_harness_push (h, buf), GST_FLOW_ERROR);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_parse_error (msg, &err, NULL);
  fail_unless (g_error_matches (err, GST_STREAM_ERROR,
          GST_STREAM_ERROR_FORMAT), "%s", err->message);
  fail_unless (strstr (err->message, npy) != NULL, "'%s' does not name %s",
      err->message, npy);
  g_clear_error (&err);
  gst_message_unref (msg);

  gst_element_set_bus (h->element, NULL);
  gst_bus_set_flushing (bus, TRUE);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  clean_dir (dir, 0);
  g_free (npy);
}

GST_END_TEST;

static Suite *
simclrnpysink_suite (void)
{
  Suite *s = suite_create ("simclrnpysink");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_npy_and_sidecar);
  tcase_add_test (tc, test_no_meta_sidecar_location);
  tcase_add_test (tc, test_empty_stream);
  tcase_add_test (tc, test_failed_run_keeps_good_file);
  tcase_add_test (tc, test_no_eos_leaves_nothing);
  tcase_add_test (tc, test_errors);
  tcase_add_test (tc, test_bad_buffer);
  return s;
}

int
main (int argc, char **argv)
{
  gint failed, status;
  gchar *argv_py[] = { (gchar *) "/usr/bin/python3", (gchar *) "-c",
    (gchar *) "import numpy", NULL
  };

  gst_check_init (&argc, &argv);
  have_numpy = g_spawn_sync (NULL, argv_py, NULL,
      G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL,
      NULL, NULL, &status, NULL) && g_spawn_check_wait_status (status, NULL);
  failed = gst_check_run_suite (simclrnpysink_suite (), "simclrnpysink",
      __FILE__);
  if (failed)
    return 1;
  if (!have_numpy) {
    g_printerr ("numpy (for /usr/bin/python3) missing: the numpy.load check "
        "did not run\n");
    return 77;
  }
  return 0;
}
