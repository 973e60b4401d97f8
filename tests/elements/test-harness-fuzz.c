/* test-harness-fuzz.c: a seeded, time-bounded GstHarness fuzz of every
 * element (issue 15): random property values inside their pspec ranges,
 * random caps inside the pad templates (odd sizes), buffers of random bytes
 * with odd strides (a GstVideoMeta) or a wrong size, and state changes
 * (PLAYING / PAUSED / READY / NULL) while another thread pushes data.
 *
 * What is checked: no crash, no g_warning / g_critical (gst-check makes them
 * fatal), no hang (every round has a watchdog), no leak (the suite runs with
 * GST_TRACERS=leaks, which fails the test on objects alive at exit), no
 * temporary file left by simclrnpysink. Elements may refuse settings and
 * data with an element error: that is the contract.
 *
 * simclrencoder runs in embed mode on tiny checkpoints made here and in
 * train mode inside a bin with ntxentsink (which sends the gradients back);
 * ntxentsink also alone on random embedding rows (NaN among them).
 *
 * Environment: SIMCLR_HARNESS_FUZZ_SECONDS (default 3) per element,
 * SIMCLR_HARNESS_FUZZ_SEED (default 15; the seed of a failing round is
 * printed with the properties it set, so a failure reproduces).
 */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include <turbojpeg.h>

#include "gstsimclr.h"
#include "simclr/checkpoint.h"
#include "simclr/model.h"

static gchar *tmp_root;
static gdouble seconds_per_element = 3.0;
static guint64 base_seed = 15;

/* ---- Random values ------------------------------------------------------ */

static guint64
rand64 (GRand * r)
{
  return ((guint64) g_rand_int (r) << 32) | g_rand_int (r);
}

/* An offset in [0, span]: 0, span, a small one, or uniform (@pick 1..5). */
static guint64
pick_offset (GRand * r, gint pick, guint64 span)
{
  switch (pick) {
    case 1:
      return 0;
    case 2:
      return span;
    case 3:
      return rand64 (r) % (MIN (span, 64) + 1);
    default:
      return span == G_MAXUINT64 ? rand64 (r) : rand64 (r) % (span + 1);
  }
}

/* A value of @pspec inside its range: the default, min, max, near the
 * minimum, or uniform, so that the edges are hit often. */
static void
random_value (GRand * r, GParamSpec * p, GValue * v)
{
  GType t = G_PARAM_SPEC_VALUE_TYPE (p);
  gint pick = g_rand_int_range (r, 0, 6);

  g_value_init (v, t);
  g_param_value_set_default (p, v);
  if (pick == 0)
    return;                     /* default */
  if (t == G_TYPE_BOOLEAN) {
    g_value_set_boolean (v, g_rand_boolean (r));
  } else if (t == G_TYPE_INT) {
    GParamSpecInt *s = G_PARAM_SPEC_INT (p);
    g_value_set_int (v, (gint) ((gint64) s->minimum + (gint64) pick_offset (r,
                pick, (guint64) ((gint64) s->maximum - s->minimum))));
  } else if (t == G_TYPE_UINT) {
    GParamSpecUInt *s = G_PARAM_SPEC_UINT (p);
    g_value_set_uint (v, (guint) (s->minimum + pick_offset (r, pick,
                s->maximum - s->minimum)));
  } else if (t == G_TYPE_INT64) {
    GParamSpecInt64 *s = G_PARAM_SPEC_INT64 (p);
    g_value_set_int64 (v, (gint64) ((guint64) s->minimum + pick_offset (r,
                pick, (guint64) s->maximum - (guint64) s->minimum)));
  } else if (t == G_TYPE_UINT64) {
    GParamSpecUInt64 *s = G_PARAM_SPEC_UINT64 (p);
    g_value_set_uint64 (v, s->minimum + pick_offset (r, pick,
            s->maximum - s->minimum));
  } else if (t == G_TYPE_FLOAT || t == G_TYPE_DOUBLE) {
    gdouble lo, hi, val;
    if (t == G_TYPE_FLOAT) {
      lo = G_PARAM_SPEC_FLOAT (p)->minimum;
      hi = G_PARAM_SPEC_FLOAT (p)->maximum;
    } else {
      lo = G_PARAM_SPEC_DOUBLE (p)->minimum;
      hi = G_PARAM_SPEC_DOUBLE (p)->maximum;
    }
    switch (pick) {
      case 1:
        val = lo;
        break;
      case 2:
        val = hi;
        break;
      case 3:
        /* near the minimum: ranges up to 1e308 make uniform draws huge */
        val = lo + MIN (hi - lo, 4.0) * g_rand_double (r);
        break;
      default:
        val = lo + (hi / 2 - lo / 2) * 2 * g_rand_double (r);
        break;
    }
    if (t == G_TYPE_FLOAT)
      g_value_set_float (v, (gfloat) val);
    else
      g_value_set_double (v, val);
  } else if (G_TYPE_IS_ENUM (t)) {
    GEnumClass *ec = g_type_class_ref (t);
    g_value_set_enum (v, ec->values[g_rand_int_range (r, 0,
                ec->n_values)].value);
    g_type_class_unref (ec);
  }
  /* clamp what rounding pushed outside, as GLib would */
  g_param_value_validate (p, v);
}

/* Sets random values on the element's own writable properties (not those
 * of GstObject/GstElement/base classes, not strings, not those in @skip).
 * Appends "name=value" to @log. */
static void
randomize_properties (GRand * r, GstElement * e, const gchar * const *skip,
    GString * log)
{
  guint n;
  GParamSpec **ps = g_object_class_list_properties (G_OBJECT_GET_CLASS (e),
      &n);

  for (guint i = 0; i < n; i++) {
    GParamSpec *p = ps[i];
    GValue v = G_VALUE_INIT;
    gchar *s;
    gboolean skipped = FALSE;

    if (p->owner_type != G_OBJECT_TYPE (e)
        || !(p->flags & G_PARAM_WRITABLE)
        || (p->flags & G_PARAM_CONSTRUCT_ONLY)
        || G_PARAM_SPEC_VALUE_TYPE (p) == G_TYPE_STRING)
      continue;
    for (const gchar * const *k = skip; k && *k; k++)
      if (strcmp (*k, p->name) == 0)
        skipped = TRUE;
    if (skipped || g_rand_int_range (r, 0, 3) == 0)
      continue;
    random_value (r, p, &v);
    g_object_set_property (G_OBJECT (e), p->name, &v);
    s = gst_value_serialize (&v);
    g_string_append_printf (log, " %s=%s", p->name, s);
    g_free (s);
    g_value_unset (&v);
  }
  g_free (ps);
}

/* ---- Random video ------------------------------------------------------- */

static gint
random_side (GRand * r)
{
  switch (g_rand_int_range (r, 0, 4)) {
    case 0:
      return 1 + g_rand_int_range (r, 0, 3);    /* 1..3 */
    case 1:
      return 2 * g_rand_int_range (r, 1, 20) + 1;       /* odd */
    default:
      return g_rand_int_range (r, 1, 72);
  }
}

/* When set (> 0), half of the random caps are square frames of this side
 * (an element that takes one size only, e.g. a model's input). */
static gint bias_side;
static GstVideoFormat bias_format;       /* UNKNOWN: RGB or GRAY8 */
static gdouble bias_prob = 0.5;
/* When TRUE, most frames carry the metas of consecutive view pairs. */
static gboolean paired_views;
/* 1 in @calm pushes sends EOS or a flush; 1 in @calm / 5 steps of the
 * main loop changes state or caps (higher: more data flows between). */
static gint calm = 16;
/* Rounds of the train test in which ntxentsink saw a step. */
static guint64 rounds_with_steps;
/* Steps of the main loop per round (each sleeps up to 3 ms). */
static gint round_ops = 40;

static GstCaps *
random_video_caps (GRand * r, GstVideoInfo * info)
{
  GstVideoFormat f = g_rand_boolean (r) ? GST_VIDEO_FORMAT_RGB :
      GST_VIDEO_FORMAT_GRAY8;
  if (bias_side > 0 && g_rand_double (r) < bias_prob) {
    if (bias_format != GST_VIDEO_FORMAT_UNKNOWN)
      f = bias_format;
    gst_video_info_set_format (info, f, bias_side, bias_side);
  } else {
    gst_video_info_set_format (info, f, random_side (r), random_side (r));
  }
  if (g_rand_boolean (r)) {
    GST_VIDEO_INFO_FPS_N (info) = g_rand_int_range (r, 0, 61);
    GST_VIDEO_INFO_FPS_D (info) = 1;
  }
  return gst_video_info_to_caps (info);
}

/* A frame of @info with random bytes; usually a random row stride declared
 * in a GstVideoMeta, sometimes a buffer one byte short (must be refused,
 * never read past). */
static GstBuffer *
random_video_buffer (GRand * r, const GstVideoInfo * info, guint64 n)
{
  gint w = GST_VIDEO_INFO_WIDTH (info), h = GST_VIDEO_INFO_HEIGHT (info);
  gint c = GST_VIDEO_INFO_FORMAT (info) == GST_VIDEO_FORMAT_RGB ? 3 : 1;
  gint kind = g_rand_int_range (r, 0, 8);
  gsize stride = GST_VIDEO_INFO_PLANE_STRIDE (info, 0), size;
  GstBuffer *b;
  GstMapInfo map;

  if (kind <= 3)
    stride = (gsize) w * c + g_rand_int_range (r, 0, 14);
  size = stride * h;
  if (kind == 7 && size > 0)
    size--;                     /* short */
  b = gst_buffer_new_allocate (NULL, size, NULL);
  gst_buffer_map (b, &map, GST_MAP_WRITE);
  for (gsize i = 0; i < size; i++)
    map.data[i] = (guint8) g_rand_int (r);
  gst_buffer_unmap (b, &map);
  if (kind <= 3) {
    gsize offset[GST_VIDEO_MAX_PLANES] = { 0 };
    gint strides[GST_VIDEO_MAX_PLANES] = { (gint) stride };
    gst_buffer_add_video_meta_full (b, GST_VIDEO_FRAME_FLAG_NONE,
        GST_VIDEO_INFO_FORMAT (info), w, h, 1, offset, strides);
  }
  if (paired_views && g_rand_int_range (r, 0, 8))
    /* what simclraugment sends: view 0 then view 1 of each sample */
    gst_buffer_add_simclr_frame_meta (b, n / 2, (gint) (n % 2),
        (gint) (n / 2 % 10), 0);
  else if (g_rand_boolean (r))
    gst_buffer_add_simclr_frame_meta (b, g_rand_int_range (r, 0, 50),
        g_rand_int_range (r, -1, 3), g_rand_int_range (r, -1, 10),
        g_rand_int_range (r, 0, 3));
  GST_BUFFER_PTS (b) = n * GST_SECOND / 30;
  GST_BUFFER_DURATION (b) = GST_SECOND / 30;
  return b;
}

/* ---- The pusher thread and state changes ------------------------------- */

typedef struct
{
  GstHarness *h;
  GRand *r;                     /* the pusher's own generator */
  GMutex lock;                  /* guards the fields below */
  GstCaps *caps;
  GstVideoInfo info;
  gboolean video;               /* else embeddings of @dim */
  gint dim;
  gint running;
  guint64 pushed;
  gint need_events;             /* atomic */
  gint burst;                   /* atomic: the main thread changes state */
} Pusher;

static GstBuffer *
random_embedding_buffer (GRand * r, gint dim, guint64 n)
{
  gint rows = g_rand_int_range (r, 0, 6);
  gsize size = (gsize) rows * dim * 4;
  GstBuffer *b;
  GstMapInfo map;

  if (g_rand_int_range (r, 0, 8) == 0)
    size += g_rand_int_range (r, 1, 4);     /* not whole rows */
  b = gst_buffer_new_allocate (NULL, size, NULL);
  gst_buffer_map (b, &map, GST_MAP_WRITE);
  for (gsize i = 0; i + 4 <= size; i += 4) {
    float f = (float) g_rand_double_range (r, -3, 3);
    if (g_rand_int_range (r, 0, 50) == 0)
      f = g_rand_boolean (r) ? NAN : INFINITY;
    memcpy (map.data + i, &f, 4);
  }
  gst_buffer_unmap (b, &map);
  if (g_rand_int_range (r, 0, 3)) {
    GstSimclrEmbeddingRow rec[8];
    gint meta_rows = g_rand_int_range (r, 0, 8) == 0 ?
        g_rand_int_range (r, 0, 8) : rows;
    for (gint i = 0; i < meta_rows; i++) {
      rec[i].sample_id = n * 8 + i;
      rec[i].view = i % 2;
      rec[i].label = g_rand_int_range (r, -1, 10);
      rec[i].pts = g_rand_boolean (r) ? GST_CLOCK_TIME_NONE : n * GST_MSECOND;
    }
    gst_buffer_add_simclr_embedding_meta (b, n, meta_rows, rec);
  }
  GST_BUFFER_PTS (b) = n * GST_MSECOND;
  return b;
}

/* Pushes stream-start, the current caps and a segment; *@info gets the
 * video info of exactly those caps (buffers must match the caps they follow:
 * a GstVideoMeta wider than the caps is a bug of the pusher, and GStreamer
 * itself g_critical()s on it). */
static void
push_sticky_events (Pusher * p, GstVideoInfo * info)
{
  GstSegment seg;
  gchar *sid = g_strdup_printf ("fuzz-%p-%" G_GUINT64_FORMAT, p,
      p->pushed);
  GstCaps *caps;

  g_mutex_lock (&p->lock);
  caps = gst_caps_ref (p->caps);
  *info = p->info;
  g_mutex_unlock (&p->lock);
  gst_segment_init (&seg, GST_FORMAT_TIME);
  gst_pad_push_event (p->h->srcpad, gst_event_new_stream_start (sid));
  gst_pad_push_event (p->h->srcpad, gst_event_new_caps (caps));
  gst_pad_push_event (p->h->srcpad, gst_event_new_segment (&seg));
  gst_caps_unref (caps);
  g_free (sid);
}

static gpointer
pusher_func (gpointer data)
{
  Pusher *p = data;
  GstVideoInfo info;

  g_mutex_lock (&p->lock);
  info = p->info;
  g_mutex_unlock (&p->lock);
  while (g_atomic_int_get (&p->running)) {
    GstBuffer *b;
    GstFlowReturn ret;

    if (g_atomic_int_compare_and_exchange (&p->burst, 1, 0)) {
      /* What a flushing seek sends, while the main thread changes the
       * state: the events meet start/stop work half done (issue 15: this
       * restarted simclrencoder's training thread during its stop). */
      gst_pad_push_event (p->h->srcpad, gst_event_new_flush_start ());
      gst_pad_push_event (p->h->srcpad, gst_event_new_flush_stop (TRUE));
      push_sticky_events (p, &info);
    }
    if (g_atomic_int_compare_and_exchange (&p->need_events, 1, 0))
      push_sticky_events (p, &info);
    b = p->video ? random_video_buffer (p->r, &info, p->pushed) :
        random_embedding_buffer (p->r, p->dim, p->pushed);
    ret = gst_pad_push (p->h->srcpad, b);
    p->pushed++;
    if (ret != GST_FLOW_OK) {
      /* flushing (a state change), not-negotiated or an error: resend the
       * stream's events before the next buffer */
      g_atomic_int_set (&p->need_events, 1);
      g_usleep (200);
    }
    if (g_rand_int_range (p->r, 0, calm) == 0)
      gst_pad_push_event (p->h->srcpad, g_rand_boolean (p->r) ?
          gst_event_new_eos () : gst_event_new_flush_start ());
    if (g_rand_int_range (p->r, 0, calm) == 0) {
      gst_pad_push_event (p->h->srcpad, gst_event_new_flush_stop (TRUE));
      g_atomic_int_set (&p->need_events, 1);
    }
  }
  return NULL;
}

static void
drain (GstHarness * h)
{
  GstBuffer *b;
  GstEvent *e;
  while ((b = gst_harness_try_pull (h)))
    gst_buffer_unref (b);
  while ((e = gst_harness_try_pull_event (h)))
    gst_event_unref (e);
  while ((e = gst_harness_try_pull_upstream_event (h)))
    gst_event_unref (e);
}

static const GstState states[] = { GST_STATE_PLAYING, GST_STATE_PAUSED,
  GST_STATE_READY, GST_STATE_NULL
};

/* Drops the bus's messages (element errors and warnings are allowed). */
static void
flush_bus (GstBus * bus)
{
  GstMessage *m;
  while ((m = gst_bus_pop (bus))) {
    if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR
        || GST_MESSAGE_TYPE (m) == GST_MESSAGE_WARNING) {
      GError *err = NULL;
      if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR)
        gst_message_parse_error (m, &err, NULL);
      else
        gst_message_parse_warning (m, &err, NULL);
      GST_INFO ("%s from %s: %s", GST_MESSAGE_TYPE_NAME (m),
          GST_MESSAGE_SRC_NAME (m), err->message);
      g_error_free (err);
    }
    gst_message_unref (m);
  }
}

/* A watchdog: a round that does not finish in @limit seconds is a hang. */
typedef struct
{
  GMutex lock;
  GCond cond;
  gboolean done;
  gchar *what;
} Watchdog;

static gpointer
watchdog_func (gpointer data)
{
  Watchdog *w = data;
  gint64 end = g_get_monotonic_time () + 60 * G_TIME_SPAN_SECOND;
  g_mutex_lock (&w->lock);
  while (!w->done)
    if (!g_cond_wait_until (&w->cond, &w->lock, end)) {
      g_printerr ("HANG: %s did not finish in 60 s\n", w->what);
      abort ();
    }
  g_mutex_unlock (&w->lock);
  return NULL;
}

static GThread *
watchdog_start (Watchdog * w, const gchar * what)
{
  g_mutex_init (&w->lock);
  g_cond_init (&w->cond);
  w->done = FALSE;
  w->what = g_strdup (what);
  return g_thread_new ("watchdog", watchdog_func, w);
}

static void
watchdog_stop (Watchdog * w, GThread * t)
{
  g_mutex_lock (&w->lock);
  w->done = TRUE;
  g_cond_signal (&w->cond);
  g_mutex_unlock (&w->lock);
  g_thread_join (t);
  g_free (w->what);
  g_mutex_clear (&w->lock);
  g_cond_clear (&w->cond);
}

/* ---- A filter or sink: data pushed from a thread ------------------------ */

typedef void (*SetupFunc) (GRand * r, GstElement * e, GString * log);

/* randomize_properties on @e, or on each element of a bin. */
static void
randomize_all (GRand * r, GstElement * e, const gchar * const *skip,
    GString * log)
{
  if (GST_IS_BIN (e)) {
    GstIterator *it = gst_bin_iterate_elements (GST_BIN (e));
    GValue item = G_VALUE_INIT;
    while (gst_iterator_next (it, &item) == GST_ITERATOR_OK) {
      GstElement *child = g_value_get_object (&item);
      g_string_append_printf (log, " [%s]", GST_OBJECT_NAME (child));
      randomize_properties (r, child, skip, log);
      g_value_reset (&item);
    }
    g_value_unset (&item);
    gst_iterator_free (it);
  } else {
    randomize_properties (r, e, skip, log);
  }
}

/* One round on a filter/sink @factory: new element, random properties (plus
 * @setup), random caps, a pusher thread, random state changes and caps
 * changes from this thread for about @ops steps. */
/* @setup runs before the harness adds the element (it must then be
 * playable); @fixup after each random draw (to keep some properties within
 * what a test process can afford). */
static void
fuzz_filter_round (const gchar * factory, guint64 seed, gboolean video,
    const gchar * const *skip, SetupFunc setup, SetupFunc fixup, gint ops)
{
  GRand *r = g_rand_new_with_seed ((guint32) seed);
  GstElement *e = strchr (factory, '!') ?
      gst_parse_bin_from_description (factory, TRUE, NULL) :
      gst_element_factory_make (factory, NULL);
  GString *log = g_string_new (NULL);
  GstHarness *h;
  GstBus *bus = gst_bus_new ();
  Pusher p = { 0 };
  GThread *t, *wt;
  Watchdog wd;
  gchar *what;
  gboolean has_src;

  fail_unless (e != NULL, "no element %s", factory);
  g_string_append_printf (log, "%s seed %" G_GUINT64_FORMAT ":", factory,
      seed);
  if (setup)
    setup (r, e, log);
  {
    GstPad *src = gst_element_get_static_pad (e, "src");
    has_src = src != NULL;
    if (src)
      gst_object_unref (src);
  }
  gst_element_set_bus (e, bus);
  what = g_strdup (log->str);
  GST_INFO ("%s", what);
  wt = watchdog_start (&wd, what);

  /* The harness plays the element as it adds it (and asserts that this
   * works): add it with valid settings, then go down to NULL and draw. */
  h = gst_harness_new_with_element (e, "sink", has_src ? "src" : NULL);
  gst_object_unref (e);         /* the harness holds it until teardown */
  gst_element_set_state (e, GST_STATE_NULL);
  randomize_all (r, e, skip, log);
  if (fixup)
    fixup (r, e, log);
  g_free (what);
  what = g_strdup (log->str);
  GST_INFO ("%s", what);
  p.h = h;
  p.r = g_rand_new_with_seed ((guint32) (seed * 7 + 1));
  g_mutex_init (&p.lock);
  p.video = video;
  if (video) {
    p.caps = random_video_caps (r, &p.info);
  } else {
    p.dim = g_rand_int_range (r, 0, 4) == 0 ? g_rand_int_range (r, 1, 2049)
        : g_rand_int_range (r, 1, 9);
    p.caps = gst_caps_new_simple (SIMCLR_EMBEDDING_MEDIA_TYPE, "dimension",
        G_TYPE_INT, p.dim, NULL);
  }
  gst_element_set_state (h->element, GST_STATE_PLAYING);
  p.need_events = 1;
  p.running = 1;
  t = g_thread_new ("pusher", pusher_func, &p);

  for (gint i = 0; i < ops; i++) {
    gint op = g_rand_int_range (r, 0, 10 * calm / 16);
    if (op < 3) {
      GstState s = states[g_rand_int_range (r, 0, 4)];
      /* half of the time with a burst of flush and segment events from
       * the pusher at the same moment */
      if (g_rand_boolean (r))
        g_atomic_int_set (&p.burst, 1);
      gst_element_set_state (e, s);
      if (s != GST_STATE_PLAYING && g_rand_boolean (r))
        gst_element_set_state (e, GST_STATE_PLAYING);
      g_atomic_int_set (&p.need_events, 1);
    } else if (op == 3 && video) {
      GstVideoInfo info;
      GstCaps *caps = random_video_caps (r, &info);
      g_mutex_lock (&p.lock);
      gst_caps_replace (&p.caps, caps);
      p.info = info;
      g_mutex_unlock (&p.lock);
      gst_caps_unref (caps);
      g_atomic_int_set (&p.need_events, 1);
    } else if (op == 4) {
      /* a property change while data flows (mutable ones apply, others
       * are ignored by GLib's flags check or refused by the element) */
      randomize_all (r, e, skip, log);
      if (fixup)
        fixup (r, e, log);
    }
    drain (h);
    flush_bus (bus);
    g_usleep (g_rand_int_range (r, 0, 3000));
  }
  g_atomic_int_set (&p.running, 0);
  if (GST_IS_BIN (e)) {
    /* train mode: did steps happen? (ntxentsink's step is 0-based) */
    GstElement *sink = gst_bin_get_by_name (GST_BIN (e), "s");
    if (sink) {
      guint64 step = 0;
      gdouble loss = 0;
      g_object_get (sink, "step", &step, "last-loss", &loss, NULL);
      if (loss != 0 || step > 0)
        rounds_with_steps++;
      gst_object_unref (sink);
    }
  }
  /* a pusher blocked in the element is woken by the flush of going down */
  gst_element_set_state (e, GST_STATE_NULL);
  g_thread_join (t);
  drain (h);
  gst_element_set_bus (e, NULL);
  flush_bus (bus);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  watchdog_stop (&wd, wt);
  gst_caps_unref (p.caps);
  g_mutex_clear (&p.lock);
  g_rand_free (p.r);
  g_rand_free (r);
  g_string_free (log, TRUE);
  g_free (what);
}

static void
fuzz_element_for_a_while_full (const gchar * factory, gboolean video,
    const gchar * const *skip, SetupFunc setup, SetupFunc fixup)
{
  gint64 end = g_get_monotonic_time () +
      (gint64) (seconds_per_element * G_USEC_PER_SEC);
  guint64 round = 0;
  do {
    fuzz_filter_round (factory, base_seed * 1000003 + round, video, skip,
        setup, fixup, round_ops);
    round++;
  } while (g_get_monotonic_time () < end);
  GST_INFO ("%s: %" G_GUINT64_FORMAT " rounds", factory, round);
  if (strchr (factory, '!'))
    g_print ("# simclrencoder ! ntxentsink: %" G_GUINT64_FORMAT " rounds in "
        "%.1f s, %" G_GUINT64_FORMAT " with training steps\n", round,
        seconds_per_element, rounds_with_steps);
  else
    g_print ("# %s: %" G_GUINT64_FORMAT " rounds in %.1f s\n", factory,
        round, seconds_per_element);
}

static void
fuzz_element_for_a_while (const gchar * factory, gboolean video,
    const gchar * const *skip, SetupFunc setup)
{
  fuzz_element_for_a_while_full (factory, video, skip, setup, NULL);
}

/* ---- simclraugment ------------------------------------------------------ */

GST_START_TEST (test_fuzz_simclraugment)
{
  fuzz_element_for_a_while ("simclraugment", TRUE, NULL, NULL);
}

GST_END_TEST;

/* ---- simclrnpysink ------------------------------------------------------ */

static void
npysink_setup (GRand * r, GstElement * e, GString * log)
{
  gchar *dir = g_build_filename (tmp_root, "npy", NULL);
  gchar *loc;

  g_mkdir_with_parents (dir, 0755);
  loc = g_build_filename (dir, g_rand_boolean (r) ? "a.npy" : "b.npy", NULL);
  g_object_set (e, "location", loc, NULL);
  if (g_rand_int_range (r, 0, 4) == 0) {
    gchar *csv = g_build_filename (dir, "side.csv", NULL);
    g_object_set (e, "sidecar-location", csv, NULL);
    g_free (csv);
  }
  g_string_append_printf (log, " location=%s", loc);
  g_free (loc);
  g_free (dir);
}

/* Only *.npy and *.csv may remain: a temporary file left behind is a bug. */
static void
check_npy_dir (void)
{
  gchar *dir = g_build_filename (tmp_root, "npy", NULL);
  GDir *d = g_dir_open (dir, 0, NULL);
  const gchar *name;
  if (d) {
    while ((name = g_dir_read_name (d)))
      fail_unless (g_str_has_suffix (name, ".npy")
          || g_str_has_suffix (name, ".csv"), "left behind: %s/%s", dir,
          name);
    g_dir_close (d);
  }
  g_free (dir);
}

GST_START_TEST (test_fuzz_simclrnpysink)
{
  fuzz_element_for_a_while ("simclrnpysink", FALSE, NULL, npysink_setup);
  check_npy_dir ();
}

GST_END_TEST;

/* ---- simclrnoveltyfilter (checkpoint-free embeddings) ------------------- */

static void
novelty_setup (GRand * r, GstElement * e, GString * log)
{
  /* the checkpoint-based embeddings need a file: the baselines do not */
  GEnumClass *ec = g_type_class_ref (G_PARAM_SPEC_VALUE_TYPE
      (g_object_class_find_property (G_OBJECT_GET_CLASS (e), "embedding")));
  const gchar *nick = g_rand_boolean (r) ? "raw" : "ahash";
  GEnumValue *v = g_enum_get_value_by_nick (ec, nick);
  if (v) {
    g_object_set (e, "embedding", v->value, NULL);
    g_string_append_printf (log, " embedding=%s", nick);
  }
  g_type_class_unref (ec);
}

GST_START_TEST (test_fuzz_simclrnoveltyfilter)
{
  const gchar *skip[] = { "embedding", NULL };
  if (!gst_element_factory_find ("simclrnoveltyfilter")) {
    GST_INFO ("no simclrnoveltyfilter in this build");
    return;
  }
  gst_object_unref (gst_element_factory_find ("simclrnoveltyfilter"));
  fuzz_element_for_a_while ("simclrnoveltyfilter", TRUE, skip, novelty_setup);
}

GST_END_TEST;

/* ---- simclrencoder (embed) ---------------------------------------------- */

static gchar *ckpt_gray8, *ckpt_rgb12;

static void
encoder_embed_setup (GRand * r, GstElement * e, GString * log)
{
  gboolean rgb = g_rand_boolean (r);
  gst_util_set_object_arg (G_OBJECT (e), "mode", "embed");
  g_object_set (e, "checkpoint-location", rgb ? ckpt_rgb12 : ckpt_gray8,
      NULL);
  bias_side = rgb ? 12 : 8;
  bias_format = rgb ? GST_VIDEO_FORMAT_RGB : GST_VIDEO_FORMAT_GRAY8;
  g_string_append_printf (log, " mode=embed checkpoint=%s",
      rgb ? "rgb12" : "gray8");
}

GST_START_TEST (test_fuzz_simclrencoder_embed)
{
  const gchar *skip[] = { "mode", NULL };
  fuzz_element_for_a_while ("simclrencoder", TRUE, skip,
      encoder_embed_setup);
  bias_side = 0;
}

GST_END_TEST;

/* ---- simclrencoder ! ntxentsink (train) -------------------------------- */

static void
train_setup (GRand * r, GstElement * bin, GString * log)
{
  GstElement *e = gst_bin_get_by_name (GST_BIN (bin), "e");
  gchar *ckpt = g_build_filename (tmp_root, "train.safetensors", NULL);
  g_object_set (e, "batch-size", 2, "width", 0.25, "total-steps",
      (guint64) 20, "warmup-steps", (guint64) 1, "checkpoint-location",
      g_rand_boolean (r) ? ckpt : NULL, NULL);
  /* square frames of one side per round, most of the time: the model's
   * input is fixed once it exists */
  bias_side = 8 + g_rand_int_range (r, 0, 9);
  bias_format = g_rand_boolean (r) ? GST_VIDEO_FORMAT_RGB :
      GST_VIDEO_FORMAT_GRAY8;
  bias_prob = 0.95;
  paired_views = TRUE;
  calm = 64;
  round_ops = 300;
  g_string_append (log, " train");
  g_free (ckpt);
  gst_object_unref (e);
}

/* A training step must stay cheap here: small batches, models and heads
 * (large ones are legitimate settings, not absurd ones, and only cost
 * time and memory). */
static void
train_fixup (GRand * r, GstElement * bin, GString * log)
{
  GstElement *e = gst_bin_get_by_name (GST_BIN (bin), "e");
  gint batch = g_rand_int_range (r, 1, 5);
  g_object_set (e, "batch-size", batch, "proj-hidden",
      g_rand_int_range (r, 0, 33), "proj-dim", g_rand_int_range (r, 1, 33),
      "threads", g_rand_int_range (r, 0, 3), NULL);
  if (g_rand_int_range (r, 0, 4)) {
    /* mostly a valid schedule, so that steps happen */
    guint64 warm = g_rand_int_range (r, 0, 4);
    g_object_set (e, "warmup-steps", warm, "total-steps", warm + 1 +
        g_rand_int_range (r, 0, 50), NULL);
  }
  gst_util_set_object_arg (G_OBJECT (e), "arch", "resnet18");
  g_object_set (e, "width", 0.25, NULL);
  g_string_append_printf (log, " (fixed: batch-size=%d resnet18 w0.25)",
      batch);
  if (g_rand_int_range (r, 0, 3) == 0) {
    /* replay mode that trains at once (its thread steps on the buffer by
     * itself) and saves when it stops: state changes then meet a running
     * training thread and a final checkpoint write */
    gchar *ckpt = g_build_filename (tmp_root, "replay.safetensors", NULL);
    gint size = batch + g_rand_int_range (r, 0, 8);
    g_object_set (e, "views", 2, "replay-size", size, "replay-min", 0,
        "replay-max-bytes", (guint64) 0, "passes", 1,
        "checkpoint-location", ckpt, NULL);
    gst_util_set_object_arg (G_OBJECT (e), "replay-overflow",
        g_rand_boolean (r) ? "drop" : "wait");
    gst_util_set_object_arg (G_OBJECT (e), "lr-schedule", "constant");
    g_string_append_printf (log, " (replay: replay-size=%d)", size);
    g_free (ckpt);
  }
  gst_object_unref (e);
}

GST_START_TEST (test_fuzz_simclrencoder_train)
{
  /* strings are left alone; the mode stays train */
  const gchar *skip[] = { "mode", "monitor-samples", NULL };
  fuzz_element_for_a_while_full ("simclrencoder name=e ! ntxentsink name=s "
      "async=false",
      TRUE, skip, train_setup, train_fixup);
  bias_side = 0;
  bias_prob = 0.5;
  paired_views = FALSE;
  calm = 16;
  round_ops = 40;
}

GST_END_TEST;

/* ---- ntxentsink alone: random embedding rows --------------------------- */

static void
ntxent_setup (GRand * r, GstElement * e, GString * log)
{
  if (g_rand_boolean (r)) {
    gchar *csv = g_build_filename (tmp_root, "metrics.csv", NULL);
    g_object_set (e, "metrics-location", csv, NULL);
    g_free (csv);
    g_string_append (log, " metrics-location=...");
  }
}

GST_START_TEST (test_fuzz_ntxentsink)
{
  fuzz_element_for_a_while ("ntxentsink", FALSE, NULL, ntxent_setup);
}

GST_END_TEST;

/* ---- simclrdatasetsrc: a source, pulled -------------------------------- */

static void
put_be32 (GByteArray * a, guint32 v)
{
  guint8 b[4] = { v >> 24, v >> 16, v >> 8, v };
  g_byte_array_append (a, b, 4);
}

static gchar *idx_dir, *jpeg_dir, *cifar_dir;

static void
make_fixtures (void)
{
  GByteArray *a = g_byte_array_new ();
  gchar *p, *c0, *c1;
  tjhandle c = tjInitCompress ();

  /* IDX: 12 images 5x7, labels i % 4 */
  idx_dir = g_build_filename (tmp_root, "idx", NULL);
  g_mkdir_with_parents (idx_dir, 0755);
  put_be32 (a, 0x803);
  put_be32 (a, 12);
  put_be32 (a, 5);
  put_be32 (a, 7);
  for (gint i = 0; i < 12 * 35; i++) {
    guint8 v = (guint8) (i * 29);
    g_byte_array_append (a, &v, 1);
  }
  p = g_build_filename (idx_dir, "train-images-idx3-ubyte", NULL);
  g_file_set_contents (p, (gchar *) a->data, a->len, NULL);
  g_free (p);
  g_byte_array_set_size (a, 0);
  put_be32 (a, 0x801);
  put_be32 (a, 12);
  for (gint i = 0; i < 12; i++) {
    guint8 v = (guint8) (i % 4);
    g_byte_array_append (a, &v, 1);
  }
  p = g_build_filename (idx_dir, "train-labels-idx1-ubyte", NULL);
  g_file_set_contents (p, (gchar *) a->data, a->len, NULL);
  g_free (p);

  /* CIFAR-10 test_batch.bin: 5 records */
  cifar_dir = g_build_filename (tmp_root, "cifar", NULL);
  g_mkdir_with_parents (cifar_dir, 0755);
  g_byte_array_set_size (a, 0);
  for (gint rec = 0; rec < 5; rec++) {
    guint8 label = (guint8) rec;
    g_byte_array_append (a, &label, 1);
    for (gint i = 0; i < 3072; i++) {
      guint8 v = (guint8) (i + rec);
      g_byte_array_append (a, &v, 1);
    }
  }
  p = g_build_filename (cifar_dir, "test_batch.bin", NULL);
  g_file_set_contents (p, (gchar *) a->data, a->len, NULL);
  g_free (p);
  g_byte_array_unref (a);

  /* JPEG folder: sizes vary, one corrupt, one truncated */
  jpeg_dir = g_build_filename (tmp_root, "jpeg", NULL);
  c0 = g_build_filename (jpeg_dir, "c0", NULL);
  c1 = g_build_filename (jpeg_dir, "c1", NULL);
  g_mkdir_with_parents (c0, 0755);
  g_mkdir_with_parents (c1, 0755);
  for (gint k = 0; k < 6; k++) {
    gint w = 5 + 7 * k, hh = 3 + 5 * k;
    guint8 *src = g_malloc ((gsize) w * hh * 3);
    unsigned char *jpeg = NULL;
    unsigned long len = 0;
    gchar *name = g_strdup_printf ("img%d.jpg", k);
    for (gint i = 0; i < w * hh * 3; i++)
      src[i] = (guint8) (i * 3 + k);
    /* outside a test: g_assert, not fail_unless */
    g_assert_cmpint (tjCompress2 (c, src, w, 0, hh, TJPF_RGB, &jpeg, &len,
            TJSAMP_420, 85, 0), ==, 0);
    p = g_build_filename (k % 2 ? c1 : c0, name, NULL);
    g_file_set_contents (p, (gchar *) jpeg, k == 5 ? len / 3 : len, NULL);
    g_free (p);
    tjFree (jpeg);
    g_free (src);
    g_free (name);
  }
  p = g_build_filename (c1, "bad.jpg", NULL);
  g_file_set_contents (p, "not a jpeg", -1, NULL);
  g_free (p);

  /* tiny encoders for embed mode: 8x8 GRAY8 and 12x12 RGB */
  for (gint k = 0; k < 2; k++) {
    SimclrModelConfig cfg;
    SimclrModel *m;
    SimclrError err = { 0 };
    simclr_model_config_default (&cfg);
    cfg.width = 0.25;
    cfg.in_channels = k ? 3 : 1;
    cfg.image_size = k ? 12 : 8;
    cfg.proj_hidden = 16;
    cfg.proj_dim = 8;
    cfg.max_batch = 2;
    m = simclr_model_new (&cfg, 3, &err);
    g_assert_nonnull (m);
    p = g_build_filename (tmp_root, k ? "rgb12.safetensors" :
        "gray8.safetensors", NULL);
    g_assert_cmpint (simclr_checkpoint_save_model (m, p, &err), ==,
        SIMCLR_OK);
    simclr_model_free (m);
    if (k)
      ckpt_rgb12 = p;
    else
      ckpt_gray8 = p;
  }
  tjDestroy (c);
  g_free (c0);
  g_free (c1);
}

static void
datasetsrc_round (guint64 seed)
{
  GRand *r = g_rand_new_with_seed ((guint32) seed);
  GstElement *e = gst_element_factory_make ("simclrdatasetsrc", NULL);
  GString *log = g_string_new (NULL);
  const gchar *skip[] = { "format", NULL };
  const gchar *locs[3] = { idx_dir, jpeg_dir, cifar_dir };
  gint which = g_rand_int_range (r, 0, 3);
  GstHarness *h;
  GstBus *bus = gst_bus_new ();
  GThread *wt;
  Watchdog wd;

  g_string_append_printf (log, "simclrdatasetsrc seed %" G_GUINT64_FORMAT
      ": location=%s", seed, locs[which]);
  g_object_set (e, "location", locs[which], NULL);
  h = gst_harness_new_with_element (e, NULL, "src");
  gst_object_unref (e);         /* the harness holds it until teardown */
  gst_element_set_state (e, GST_STATE_NULL);
  drain (h);
  /* the right format, or auto, or sometimes a wrong one (an error) */
  if (g_rand_int_range (r, 0, 5) == 0) {
    gint f = g_rand_int_range (r, 0, 5);
    g_object_set (e, "format", f, NULL);
    g_string_append_printf (log, " format=%d", f);
  }
  randomize_properties (r, e, skip, log);
  /* huge epochs x num-samples are fine (pulled a few buffers only), but a
   * shard-index drawn near G_MAXINT is kept meaningful half of the time */
  if (g_rand_boolean (r))
    g_object_set (e, "shard-index", 0, "shard-count", 1 +
        g_rand_int_range (r, 0, 3), NULL);
  gst_element_set_bus (e, bus);
  wt = watchdog_start (&wd, log->str);
  GST_INFO ("%s", log->str);

  if (g_rand_int_range (r, 0, 4) == 0) {
    GstVideoInfo info;
    GstCaps *caps = random_video_caps (r, &info);
    /* a downstream restriction that may not match: refused at start */
    gst_harness_set_sink_caps (h, caps);
  }
  gst_element_set_state (h->element, GST_STATE_PLAYING);
  for (gint i = 0; i < 30; i++) {
    gint op = g_rand_int_range (r, 0, 8);
    if (op == 0) {
      GstState s = states[g_rand_int_range (r, 0, 4)];
      gst_element_set_state (e, s);
      if (g_rand_boolean (r))
        gst_element_set_state (e, GST_STATE_PLAYING);
    } else if (op == 1) {
      randomize_properties (r, e, skip, log);
    }
    drain (h);
    flush_bus (bus);
    g_usleep (g_rand_int_range (r, 0, 2000));
  }
  gst_element_set_state (e, GST_STATE_NULL);
  drain (h);
  gst_element_set_bus (e, NULL);
  flush_bus (bus);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  watchdog_stop (&wd, wt);
  g_string_free (log, TRUE);
  g_rand_free (r);
}

GST_START_TEST (test_fuzz_simclrdatasetsrc)
{
  gint64 end = g_get_monotonic_time () +
      (gint64) (seconds_per_element * G_USEC_PER_SEC);
  guint64 round = 0;
  do {
    datasetsrc_round (base_seed * 1000003 + round);
    round++;
  } while (g_get_monotonic_time () < end);
  g_print ("# simclrdatasetsrc: %" G_GUINT64_FORMAT " rounds\n", round);
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
harness_fuzz_suite (void)
{
  Suite *s = suite_create ("harness-fuzz");
  TCase *tc = tcase_create ("general");
  const gchar *env;

  if ((env = g_getenv ("SIMCLR_HARNESS_FUZZ_SECONDS")))
    seconds_per_element = g_ascii_strtod (env, NULL);
  if ((env = g_getenv ("SIMCLR_HARNESS_FUZZ_SEED")))
    base_seed = g_ascii_strtoull (env, NULL, 10);
  /* Each test runs its rounds for seconds_per_element, plus teardown. */
  tcase_set_timeout (tc, (guint) (seconds_per_element * 4) + 120);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_fuzz_simclrdatasetsrc);
  tcase_add_test (tc, test_fuzz_simclraugment);
  tcase_add_test (tc, test_fuzz_simclrnpysink);
  tcase_add_test (tc, test_fuzz_simclrnoveltyfilter);
  tcase_add_test (tc, test_fuzz_simclrencoder_embed);
  tcase_add_test (tc, test_fuzz_simclrencoder_train);
  tcase_add_test (tc, test_fuzz_ntxentsink);
  return s;
}

int
main (int argc, char **argv)
{
  Suite *s;
  int ret;

  gst_check_init (&argc, &argv);
  /* The pusher re-sends stream-start, caps and segment after each state
   * change it notices; a buffer it pushes in the instant between a change
   * on this thread and its next check meets a sink pad without sticky
   * events, and GstPad warns about our stream, not about the element under
   * test. Those two warnings alone are not fatal here. */
  gst_check_add_log_filter ("GStreamer", G_LOG_LEVEL_WARNING,
      g_regex_new ("Got data flow before (stream-start|segment) event", 0, 0,
          NULL), NULL, NULL, NULL);
  gst_check_add_log_filter ("GStreamer", G_LOG_LEVEL_WARNING,
      g_regex_new ("Sticky event misordering", 0, 0, NULL), NULL, NULL, NULL);
  tmp_root = g_dir_make_tmp ("harness-fuzz-XXXXXX", NULL);
  make_fixtures ();
  s = harness_fuzz_suite ();
  ret = gst_check_run_suite (s, "harness-fuzz", __FILE__);
  remove_tree (tmp_root);
  g_free (tmp_root);
  g_free (idx_dir);
  g_free (jpeg_dir);
  g_free (cifar_dir);
  g_free (ckpt_gray8);
  g_free (ckpt_rgb12);
  return ret;
}
