/* live-monitor.c: runs a live training pipeline for a given time and records
 * what issue 13 asks to show: resident memory every few seconds, the arrival
 * of every captured frame (to see stalls), and every bus message of the
 * simclr elements. It measures; it asserts nothing.
 *
 *   live-monitor --pipeline DESC --seconds S --out DIR [--probe NAME]
 *                [--rss-interval SECONDS]
 *
 * DESC is a gst-launch description. The element named by --probe (default
 * "capture": name the source, or an identity right after it) gets a buffer
 * probe on its src pad: for each buffer, DIR/arrivals.csv receives the
 * running time it passed the pad (the pipeline clock), its PTS, the
 * lateness (running time - PTS; for a live source the PTS is the capture
 * time, so a frame held up behind a training step shows as late) and the
 * gap since the previous buffer. DIR/rss.csv: seconds since start, VmRSS and
 * VmHWM (bytes), load average. DIR/messages.csv: seconds, element, message
 * name and every field (key=value;...) of element messages (simclr-train,
 * simclr-checkpoint, ...), warnings and errors. After S seconds the
 * pipeline gets EOS (the encoder writes its final checkpoint); the program
 * then prints a summary and exits 0, or 1 on an ERROR message.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gst/gst.h>

typedef struct
{
  GstElement *pipeline;
  FILE *arrivals, *rss, *messages;
  GMainLoop *loop;
  gint64 t0;                    /* monotonic start, us */
  guint64 frames;
  GstClockTime last_arrival;
  GstClockTime max_gap, max_late;
  gdouble sum_late;
  guint64 late_100ms;           /* frames more than 100 ms late */
  gboolean error;
  gboolean eos_sent;
  guint64 rss_max, rss_first_after_warmup, rss_last;
  gdouble rss_warmup;
  gchar *last_train;            /* the last simclr-train message, serialized */
} Monitor;

static gdouble
now_s (Monitor * m)
{
  return (g_get_monotonic_time () - m->t0) / 1e6;
}

static GstPadProbeReturn
on_buffer (GstPad * pad, GstPadProbeInfo * info, gpointer user)
{
  Monitor *m = user;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  GstElement *el = GST_ELEMENT (gst_pad_get_parent (pad));
  GstClock *clock = el ? gst_element_get_clock (el) : NULL;
  GstClockTime running = GST_CLOCK_TIME_NONE, pts = GST_BUFFER_PTS (buf);
  GstClockTimeDiff late = 0;
  GstClockTime gap = 0;

  if (clock) {
    running = gst_clock_get_time (clock) - gst_element_get_base_time (el);
    gst_object_unref (clock);
  }
  if (el)
    gst_object_unref (el);
  if (GST_CLOCK_TIME_IS_VALID (running) && GST_CLOCK_TIME_IS_VALID (pts))
    late = GST_CLOCK_DIFF (pts, running);
  if (GST_CLOCK_TIME_IS_VALID (running)
      && GST_CLOCK_TIME_IS_VALID (m->last_arrival)
      && running >= m->last_arrival)
    gap = running - m->last_arrival;
  m->last_arrival = running;
  m->frames++;
  if (gap > m->max_gap)
    m->max_gap = gap;
  if (late > 0 && (GstClockTime) late > m->max_late)
    m->max_late = (GstClockTime) late;
  m->sum_late += (gdouble) late;
  if (late > 100 * GST_MSECOND)
    m->late_100ms++;
  fprintf (m->arrivals, "%" G_GUINT64_FORMAT ",%.6f,%.6f,%.6f,%.6f\n",
      m->frames - 1, running / 1e9, GST_CLOCK_TIME_IS_VALID (pts) ? pts / 1e9
      : NAN, late / 1e9, gap / 1e9);
  return GST_PAD_PROBE_OK;
}

static guint64
status_bytes (const gchar * key)
{
  gchar *text = NULL, *p;
  guint64 v = 0;
  if (!g_file_get_contents ("/proc/self/status", &text, NULL, NULL))
    return 0;
  p = strstr (text, key);
  if (p)
    v = g_ascii_strtoull (p + strlen (key), NULL, 10) * 1024;
  g_free (text);
  return v;
}

static gboolean
sample_rss (gpointer user)
{
  Monitor *m = user;
  gchar *load = NULL;
  guint64 rss = status_bytes ("VmRSS:"), hwm = status_bytes ("VmHWM:");
  gdouble t = now_s (m);

  g_file_get_contents ("/proc/loadavg", &load, NULL, NULL);
  if (load)
    g_strdelimit (load, "\n", ' ');
  fprintf (m->rss, "%.3f,%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT ",%.*s\n",
      t, rss, hwm, load ? 14 : 0, load ? load : "");
  fflush (m->rss);
  g_free (load);
  if (rss > m->rss_max)
    m->rss_max = rss;
  if (t >= m->rss_warmup && m->rss_first_after_warmup == 0)
    m->rss_first_after_warmup = rss;
  m->rss_last = rss;
  return G_SOURCE_CONTINUE;
}

static gboolean
field_cb (GQuark field, const GValue * value, gpointer user)
{
  GString *s = user;
  gchar *v = gst_value_serialize (value);
  g_string_append_printf (s, "%s%s=%s", s->len ? ";" : "",
      g_quark_to_string (field), v ? v : "?");
  g_free (v);
  return TRUE;
}

static gboolean
on_message (GstBus * bus, GstMessage * msg, gpointer user)
{
  Monitor *m = user;
  const gchar *src = GST_MESSAGE_SRC_NAME (msg);
  GString *fields = g_string_new (NULL);
  const gchar *name = NULL;

  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ELEMENT:{
      const GstStructure *s = gst_message_get_structure (msg);
      if (!s)
        break;
      name = gst_structure_get_name (s);
      gst_structure_foreach (s, field_cb, fields);
      if (g_str_equal (name, "simclr-train")) {
        g_free (m->last_train);
        m->last_train = g_strdup (fields->str);
      }
      break;
    }
    case GST_MESSAGE_WARNING:
    case GST_MESSAGE_ERROR:{
      GError *e = NULL;
      gchar *dbg = NULL;
      if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
        gst_message_parse_error (msg, &e, &dbg);
        name = "ERROR";
        m->error = TRUE;
      } else {
        gst_message_parse_warning (msg, &e, &dbg);
        name = "WARNING";
      }
      g_string_append_printf (fields, "message=\"%s\"", e ? e->message : "");
      g_printerr ("%s from %s: %s\n", name, src, e ? e->message : "");
      g_clear_error (&e);
      g_free (dbg);
      if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR)
        g_main_loop_quit (m->loop);
      break;
    }
    case GST_MESSAGE_EOS:
      name = "EOS";
      g_main_loop_quit (m->loop);
      break;
    default:
      break;
  }
  if (name) {
    fprintf (m->messages, "%.3f,%s,%s,\"%s\"\n", now_s (m), src ? src : "",
        name, fields->str);
    fflush (m->messages);
  }
  g_string_free (fields, TRUE);
  return TRUE;
}

static gboolean
on_deadline (gpointer user)
{
  Monitor *m = user;
  g_print ("live-monitor: %.0f s: sending EOS\n", now_s (m));
  m->eos_sent = TRUE;
  gst_element_send_event (m->pipeline, gst_event_new_eos ());
  return G_SOURCE_REMOVE;
}

static gboolean
on_eos_timeout (gpointer user)
{
  Monitor *m = user;
  g_printerr ("live-monitor: no EOS 120 s after the deadline: stopping\n");
  m->error = TRUE;
  g_main_loop_quit (m->loop);
  return G_SOURCE_REMOVE;
}

int
main (int argc, char **argv)
{
  gchar *desc = NULL, *out = NULL, *probe_name = NULL;
  gdouble seconds = 60, rss_interval = 10, warmup = 60;
  GOptionEntry entries[] = {
    {"pipeline", 0, 0, G_OPTION_ARG_STRING, &desc, "gst-launch description",
        "DESC"},
    {"seconds", 0, 0, G_OPTION_ARG_DOUBLE, &seconds, "run time (60)", "S"},
    {"out", 0, 0, G_OPTION_ARG_FILENAME, &out, "output folder", "DIR"},
    {"probe", 0, 0, G_OPTION_ARG_STRING, &probe_name,
        "element whose src pad is probed (capture)", "NAME"},
    {"rss-interval", 0, 0, G_OPTION_ARG_DOUBLE, &rss_interval,
        "seconds between memory samples (10)", "S"},
    {"warmup", 0, 0, G_OPTION_ARG_DOUBLE, &warmup,
        "seconds before the memory bound is measured (60)", "S"},
    {NULL}
  };
  GOptionContext *ctx = g_option_context_new ("- record a live run");
  GError *error = NULL;
  Monitor m = { 0 };
  GstElement *probe_el;
  GstPad *pad;
  GstBus *bus;
  gchar *path;

  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || !desc || !out) {
    g_printerr ("live-monitor: %s\n", error ? error->message :
        "--pipeline and --out are required");
    return 2;
  }
  g_option_context_free (ctx);
  if (!probe_name)
    probe_name = g_strdup ("capture");
  g_mkdir_with_parents (out, 0755);
  m.t0 = g_get_monotonic_time ();
  m.last_arrival = GST_CLOCK_TIME_NONE;
  m.rss_warmup = warmup;
  m.pipeline = gst_parse_launch (desc, &error);
  if (!m.pipeline) {
    g_printerr ("live-monitor: bad pipeline: %s\n", error->message);
    return 2;
  }
  path = g_build_filename (out, "arrivals.csv", NULL);
  m.arrivals = fopen (path, "w");
  g_free (path);
  path = g_build_filename (out, "rss.csv", NULL);
  m.rss = fopen (path, "w");
  g_free (path);
  path = g_build_filename (out, "messages.csv", NULL);
  m.messages = fopen (path, "w");
  g_free (path);
  if (!m.arrivals || !m.rss || !m.messages) {
    g_printerr ("live-monitor: cannot write in %s\n", out);
    return 2;
  }
  fprintf (m.arrivals, "frame,running_s,pts_s,late_s,gap_s\n");
  fprintf (m.rss, "t_s,rss_bytes,hwm_bytes,loadavg\n");
  fprintf (m.messages, "t_s,element,name,fields\n");

  probe_el = gst_bin_get_by_name (GST_BIN (m.pipeline), probe_name);
  if (!probe_el) {
    g_printerr ("live-monitor: no element named \"%s\" to probe\n",
        probe_name);
    return 2;
  }
  pad = gst_element_get_static_pad (probe_el, "src");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, on_buffer, &m, NULL);
  gst_object_unref (pad);
  gst_object_unref (probe_el);

  m.loop = g_main_loop_new (NULL, FALSE);
  bus = gst_element_get_bus (m.pipeline);
  gst_bus_add_watch (bus, on_message, &m);
  gst_object_unref (bus);
  sample_rss (&m);
  g_timeout_add ((guint) (rss_interval * 1000), sample_rss, &m);
  g_timeout_add ((guint) (seconds * 1000), on_deadline, &m);
  g_timeout_add ((guint) ((seconds + 120) * 1000), on_eos_timeout, &m);
  gst_element_set_state (m.pipeline, GST_STATE_PLAYING);
  g_main_loop_run (m.loop);
  sample_rss (&m);
  gst_element_set_state (m.pipeline, GST_STATE_NULL);
  gst_object_unref (m.pipeline);
  fclose (m.arrivals);
  fclose (m.rss);
  fclose (m.messages);

  g_print ("live-monitor: %.1f s, %" G_GUINT64_FORMAT " frames captured; "
      "largest gap between frames %.3f s; lateness mean %.3f s, max %.3f s; "
      "%" G_GUINT64_FORMAT " frames more than 100 ms late\n", now_s (&m),
      m.frames, m.max_gap / 1e9, m.frames ? m.sum_late / m.frames / 1e9 : 0,
      m.max_late / 1e9, m.late_100ms);
  g_print ("live-monitor: resident memory %.1f MiB after %.0f s, %.1f MiB at "
      "the end, %.1f MiB at most\n", m.rss_first_after_warmup / 1048576.0,
      warmup, m.rss_last / 1048576.0, m.rss_max / 1048576.0);
  if (m.last_train)
    g_print ("live-monitor: last simclr-train: %s\n", m.last_train);
  g_free (m.last_train);
  g_free (desc);
  g_free (out);
  g_free (probe_name);
  return m.error ? 1 : 0;
}
