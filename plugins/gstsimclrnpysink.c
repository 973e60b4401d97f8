/* gstsimclrnpysink.c: writes embeddings to a NumPy .npy file and a CSV
 * sidecar naming each row.
 *
 * Not a training element and no math: it only stores what simclrencoder
 * (mode embed) emits, so applications can read it with numpy.load.
 */

/**
 * SECTION:element-simclrnpysink
 * @title: simclrnpysink
 *
 * simclrnpysink stores a stream of embeddings as one NumPy array. The input
 * is `application/x-simclr-embedding, dimension=(int)D`: each buffer holds
 * rows x D float32, row-major, native endianness, and (optionally) a
 * #GstSimclrEmbeddingMeta with one record per row (sample id, view, label,
 * timestamp of the frame the row came from). The same layout is what an
 * appsink receives: map the buffer, read `gst_buffer_get_size () / (4 * D)`
 * rows of D floats, and take each row's identity from
 * `gst_buffer_get_simclr_embedding_meta (buffer)->row[i]`.
 *
 * At EOS the sink writes:
 *
 * * #GstSimclrNpySink:location: a .npy file (format version 1.0, dtype
 *   `<f4`, C order, shape (rows, D)) holding every row of the stream in
 *   arrival order. Its header is padded to 128 bytes, so the data starts
 *   at byte 128.
 * * #GstSimclrNpySink:sidecar-location (default: location + ".csv"): a CSV
 *   file with the header `index,pts_ns,sample_id,view,label` and one line per
 *   row: the row index in the array, the frame timestamp in nanoseconds
 *   (empty if unknown), and the sample id, view and label from the meta
 *   (empty when the buffer has no meta).
 *
 * Both files are written to temporary files beside their destination and
 * renamed into place at EOS, so a reader never sees a half-written array; a
 * stream stopped without EOS leaves no file behind (use `gst-launch-1.0 -e`
 * to stop a live pipeline with EOS).
 *
 * A stream that ends without a single row writes nothing: the sink posts a
 * RESOURCE/WRITE warning naming the file and leaves any existing file (and
 * its sidecar) as it was. Such an EOS usually follows an upstream failure
 * (e.g. caps that did not negotiate), and an empty array must not replace
 * the result of an earlier, good run (issue 15).
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=/usr/share/doc/opencv-doc/examples/data/vtest.avi \
 *     ! decodebin ! videoscale ! video/x-raw,pixel-aspect-ratio=1/1 ! videoconvert \
 *     ! simclrencoder mode=embed checkpoint-location=video.safetensors \
 *     ! simclrnpysink location=embeddings.npy
 * ]| writes one embedding per video frame to embeddings.npy and their
 * timestamps to embeddings.npy.csv (video.safetensors from
 * pipelines/pretrain-video.sh; the encoder's caps set the frame size);
 * `python3 -c "import numpy; print (numpy.load ('embeddings.npy').shape)"`
 * prints (frames, D).
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstsimclrnpysink.h"
#include "gstsimclr.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

GST_DEBUG_CATEGORY_STATIC (gst_simclr_npy_sink_debug);
#define GST_CAT_DEFAULT gst_simclr_npy_sink_debug

#define DEFAULT_LOCATION NULL
#define DEFAULT_SIDECAR_LOCATION NULL

/* magic (6) + version (2) + header length (2) + dict padded with spaces and
 * ending in '\n': a multiple of 64 as the format asks, with room for any
 * 64-bit row count, so the header can be rewritten in place at EOS. */
#define NPY_HEADER_SIZE 128

enum
{
  PROP_0,
  PROP_LOCATION,
  PROP_SIDECAR_LOCATION,
};

struct _GstSimclrNpySink
{
  GstBaseSink parent;

  gboolean prepared;            /* change_state did start ()'s work */
  /* Properties (object lock). */
  gchar *location;
  gchar *sidecar_location;

  /* Streaming thread only; set in start (). */
  gchar *npy_path;              /* destinations */
  gchar *csv_path;
  gchar *npy_tmp;               /* temporary files beside them */
  gchar *csv_tmp;
  FILE *npy;
  FILE *csv;
  gint dim;                     /* 0 until the first caps */
  guint64 rows;                 /* rows written so far */
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (SIMCLR_EMBEDDING_CAPS));

#define gst_simclr_npy_sink_parent_class parent_class
G_DEFINE_TYPE (GstSimclrNpySink, gst_simclr_npy_sink, GST_TYPE_BASE_SINK);
GST_ELEMENT_REGISTER_DEFINE (simclrnpysink, "simclrnpysink", GST_RANK_NONE,
    GST_TYPE_SIMCLR_NPY_SINK);

static void gst_simclr_npy_sink_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
static void gst_simclr_npy_sink_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);
static void gst_simclr_npy_sink_finalize (GObject * object);
static gboolean gst_simclr_npy_sink_start (GstBaseSink * sink);
static GstStateChangeReturn gst_simclr_npy_sink_change_state (GstElement *
    element, GstStateChange transition);
static gboolean gst_simclr_npy_sink_stop (GstBaseSink * sink);
static gboolean gst_simclr_npy_sink_set_caps (GstBaseSink * sink,
    GstCaps * caps);
static gboolean gst_simclr_npy_sink_event (GstBaseSink * sink,
    GstEvent * event);
static GstFlowReturn gst_simclr_npy_sink_render (GstBaseSink * sink,
    GstBuffer * buffer);

static void
gst_simclr_npy_sink_class_init (GstSimclrNpySinkClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseSinkClass *basesink_class = GST_BASE_SINK_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_simclr_npy_sink_debug, "simclrnpysink", 0,
      "embeddings to .npy sink");

  gobject_class->set_property = gst_simclr_npy_sink_set_property;
  gobject_class->get_property = gst_simclr_npy_sink_get_property;
  gobject_class->finalize = gst_simclr_npy_sink_finalize;

  /**
   * GstSimclrNpySink:location:
   *
   * The .npy file to write.
   */
  g_object_class_install_property (gobject_class, PROP_LOCATION,
      g_param_spec_string ("location", "Location",
          "The .npy file receiving all rows as a (rows, dimension) float32 "
          "array; written at EOS (replaced atomically)", DEFAULT_LOCATION,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  /**
   * GstSimclrNpySink:sidecar-location:
   *
   * The CSV file naming each row; NULL means location + ".csv".
   */
  g_object_class_install_property (gobject_class, PROP_SIDECAR_LOCATION,
      g_param_spec_string ("sidecar-location", "Sidecar location",
          "CSV file with one line per row (index, pts_ns, sample_id, view, "
          "label); NULL = location + \".csv\"", DEFAULT_SIDECAR_LOCATION,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_set_static_metadata (element_class,
      "SimCLR embeddings to NumPy file", "Sink/File",
      "Writes embedding rows to a NumPy .npy file with a CSV sidecar of "
      "timestamps, sample ids, views and labels",
      "gst-simclr developers");

  basesink_class->start = GST_DEBUG_FUNCPTR (gst_simclr_npy_sink_start);
  basesink_class->stop = GST_DEBUG_FUNCPTR (gst_simclr_npy_sink_stop);
  element_class->change_state =
      GST_DEBUG_FUNCPTR (gst_simclr_npy_sink_change_state);
  basesink_class->set_caps = GST_DEBUG_FUNCPTR (gst_simclr_npy_sink_set_caps);
  basesink_class->event = GST_DEBUG_FUNCPTR (gst_simclr_npy_sink_event);
  basesink_class->render = GST_DEBUG_FUNCPTR (gst_simclr_npy_sink_render);
}

static void
gst_simclr_npy_sink_init (GstSimclrNpySink * self)
{
  self->location = g_strdup (DEFAULT_LOCATION);
  self->sidecar_location = g_strdup (DEFAULT_SIDECAR_LOCATION);
  /* A file writer: as fast as it can, not at the stream's clock. */
  gst_base_sink_set_sync (GST_BASE_SINK (self), FALSE);
}

/* Closes and removes the temporary files, if any (no EOS, or an error). */
static void
gst_simclr_npy_sink_discard (GstSimclrNpySink * self)
{
  if (self->npy) {
    fclose (self->npy);
    self->npy = NULL;
  }
  if (self->csv) {
    fclose (self->csv);
    self->csv = NULL;
  }
  if (self->npy_tmp) {
    g_unlink (self->npy_tmp);
    g_clear_pointer (&self->npy_tmp, g_free);
  }
  if (self->csv_tmp) {
    g_unlink (self->csv_tmp);
    g_clear_pointer (&self->csv_tmp, g_free);
  }
}

static void
gst_simclr_npy_sink_finalize (GObject * object)
{
  GstSimclrNpySink *self = GST_SIMCLR_NPY_SINK (object);

  gst_simclr_npy_sink_discard (self);
  g_free (self->npy_path);
  g_free (self->csv_path);
  g_free (self->location);
  g_free (self->sidecar_location);

  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_simclr_npy_sink_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstSimclrNpySink *self = GST_SIMCLR_NPY_SINK (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      g_free (self->location);
      self->location = g_value_dup_string (value);
      break;
    case PROP_SIDECAR_LOCATION:
      g_free (self->sidecar_location);
      self->sidecar_location = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_simclr_npy_sink_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstSimclrNpySink *self = GST_SIMCLR_NPY_SINK (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      g_value_set_string (value, self->location);
      break;
    case PROP_SIDECAR_LOCATION:
      g_value_set_string (value, self->sidecar_location);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* Opens a temporary file beside @path; sets *tmp_path. */
static FILE *
open_temp_beside (const gchar * path, gchar ** tmp_path)
{
  gchar *tmpl = g_strconcat (path, ".XXXXXX", NULL);
  FILE *f;
  gint fd = g_mkstemp (tmpl);

  if (fd < 0) {
    g_free (tmpl);
    return NULL;
  }
  /* mkstemp makes 0600; the result is an ordinary data file. */
  if (fchmod (fd, 0644) != 0)
    GST_DEBUG ("could not chmod %s: %s", tmpl, g_strerror (errno));
  f = fdopen (fd, "wb");
  if (!f) {
    int saved = errno;
    close (fd);
    g_unlink (tmpl);
    g_free (tmpl);
    errno = saved;
    return NULL;
  }
  *tmp_path = tmpl;
  return f;
}

/* The .npy v1.0 header for a (rows, dim) little-endian float32 array,
 * exactly NPY_HEADER_SIZE bytes. */
static void
npy_header (guint8 * out, guint64 rows, gint dim)
{
  gchar *dict = g_strdup_printf ("{'descr': '<f4', 'fortran_order': False, "
      "'shape': (%" G_GUINT64_FORMAT ", %d), }", rows, dim);
  gsize dict_len = strlen (dict);
  guint16 hlen = NPY_HEADER_SIZE - 10;

  /* At most 53 + 20 + 5 characters: always fits in 118. */
  g_assert (dict_len + 1 <= hlen);
  memcpy (out, "\x93NUMPY", 6);
  out[6] = 1;                   /* major */
  out[7] = 0;                   /* minor */
  out[8] = hlen & 0xff;         /* little-endian uint16 */
  out[9] = hlen >> 8;
  memset (out + 10, ' ', hlen);
  memcpy (out + 10, dict, dict_len);
  out[NPY_HEADER_SIZE - 1] = '\n';
  g_free (dict);
}

static gboolean
gst_simclr_npy_sink_prepare (GstBaseSink * sink)
{
  GstSimclrNpySink *self = GST_SIMCLR_NPY_SINK (sink);
  guint8 header[NPY_HEADER_SIZE];

  g_clear_pointer (&self->npy_path, g_free);
  g_clear_pointer (&self->csv_path, g_free);
  GST_OBJECT_LOCK (self);
  self->npy_path = g_strdup (self->location);
  if (self->sidecar_location && self->sidecar_location[0] != '\0')
    self->csv_path = g_strdup (self->sidecar_location);
  else if (self->location)
    self->csv_path = g_strconcat (self->location, ".csv", NULL);
  GST_OBJECT_UNLOCK (self);

  if (!self->npy_path || self->npy_path[0] == '\0')
    goto no_location;
  /* A folder would only fail at EOS, after the whole stream: refuse now. */
  if (g_file_test (self->npy_path, G_FILE_TEST_IS_DIR))
    goto is_folder;
  if (g_file_test (self->csv_path, G_FILE_TEST_IS_DIR))
    goto csv_is_folder;

  self->dim = 0;
  self->rows = 0;

  self->npy = open_temp_beside (self->npy_path, &self->npy_tmp);
  if (!self->npy)
    goto open_npy_failed;
  self->csv = open_temp_beside (self->csv_path, &self->csv_tmp);
  if (!self->csv)
    goto open_csv_failed;

  /* A placeholder header; the real row count is written at EOS. */
  npy_header (header, 0, 1);
  if (fwrite (header, 1, sizeof header, self->npy) != sizeof header)
    goto write_npy_failed;
  if (fputs ("index,pts_ns,sample_id,view,label\n", self->csv) < 0)
    goto write_csv_failed;
  return TRUE;

  /* ERRORS */
no_location:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
        ("No file name specified for writing."),
        ("set the location property to the .npy file"));
    return FALSE;
  }
is_folder:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
        ("Property location = \"%s\" is a folder, not a file name.",
            self->npy_path), (NULL));
    return FALSE;
  }
csv_is_folder:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
        ("The sidecar \"%s\" is a folder, not a file name (set "
            "sidecar-location).", self->csv_path), (NULL));
    return FALSE;
  }
open_npy_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
        ("Could not open a temporary file beside \"%s\" for writing.",
            self->npy_path), GST_ERROR_SYSTEM);
    return FALSE;
  }
open_csv_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
        ("Could not open a temporary file beside \"%s\" for writing.",
            self->csv_path), GST_ERROR_SYSTEM);
    gst_simclr_npy_sink_discard (self);
    return FALSE;
  }
write_npy_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("Could not write to \"%s\" (for \"%s\").", self->npy_tmp,
            self->npy_path), GST_ERROR_SYSTEM);
    gst_simclr_npy_sink_discard (self);
    return FALSE;
  }
write_csv_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("Could not write to \"%s\" (for \"%s\").", self->csv_tmp,
            self->csv_path), GST_ERROR_SYSTEM);
    gst_simclr_npy_sink_discard (self);
    return FALSE;
  }
}

/* The work of start() runs in change_state, before the base class's
 * NULL->READY (where GstBaseSink calls start ()): when it fails, ours is
 * the only error posted (gst_simclr_change_state_prepared, issue 15). */
static gboolean
gst_simclr_npy_sink_start (GstBaseSink * base)
{
  return gst_simclr_prepared_start (GST_ELEMENT (base),
      (GstSimclrPrepareFunc) gst_simclr_npy_sink_prepare,
      &GST_SIMCLR_NPY_SINK (base)->prepared);
}

static GstStateChangeReturn
gst_simclr_npy_sink_change_state (GstElement * element, GstStateChange transition)
{
  return gst_simclr_change_state_prepared (element, transition,
      GST_STATE_CHANGE_NULL_TO_READY, GST_ELEMENT_CLASS (parent_class),
      (GstSimclrPrepareFunc) gst_simclr_npy_sink_prepare,
      (GstSimclrPrepareFunc) gst_simclr_npy_sink_stop,
      &GST_SIMCLR_NPY_SINK (element)->prepared);
}

static gboolean
gst_simclr_npy_sink_stop (GstBaseSink * sink)
{
  GstSimclrNpySink *self = GST_SIMCLR_NPY_SINK (sink);

  /* Without EOS the array is incomplete: leave nothing behind. */
  if (self->npy_tmp)
    GST_INFO_OBJECT (self, "stopped before EOS: discarding %" G_GUINT64_FORMAT
        " rows, \"%s\" not written", self->rows, self->npy_path);
  gst_simclr_npy_sink_discard (self);
  return TRUE;
}

static gboolean
gst_simclr_npy_sink_set_caps (GstBaseSink * sink, GstCaps * caps)
{
  GstSimclrNpySink *self = GST_SIMCLR_NPY_SINK (sink);
  GstStructure *s = gst_caps_get_structure (caps, 0);
  gint dim;

  if (!gst_structure_get_int (s, "dimension", &dim) || dim < 1) {
    GST_ERROR_OBJECT (self, "caps without a dimension: %" GST_PTR_FORMAT,
        caps);
    return FALSE;
  }
  /* One array has one row length. */
  if (self->dim != 0 && dim != self->dim && self->rows > 0) {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
        ("The embedding dimension changed from %d to %d; \"%s\" can hold "
            "only one.", self->dim, dim, self->npy_path), (NULL));
    return FALSE;
  }
  self->dim = dim;
  return TRUE;
}

/* Fills the header, closes both files and renames them into place. */
static gboolean
gst_simclr_npy_sink_finish (GstSimclrNpySink * self)
{
  guint8 header[NPY_HEADER_SIZE];
  FILE *f;

  if (!self->npy)
    return TRUE;                /* already finished, or never started */

  if (self->rows == 0)
    goto no_rows;

  npy_header (header, self->rows, self->dim > 0 ? self->dim : 1);
  if (fseek (self->npy, 0, SEEK_SET) != 0
      || fwrite (header, 1, sizeof header, self->npy) != sizeof header
      || fflush (self->npy) != 0 || fsync (fileno (self->npy)) != 0)
    goto write_npy_failed;
  f = self->npy;
  self->npy = NULL;
  if (fclose (f) != 0)
    goto write_npy_failed;

  if (fflush (self->csv) != 0 || fsync (fileno (self->csv)) != 0)
    goto write_csv_failed;
  f = self->csv;
  self->csv = NULL;
  if (fclose (f) != 0)
    goto write_csv_failed;

  if (g_rename (self->npy_tmp, self->npy_path) != 0)
    goto rename_npy_failed;
  g_clear_pointer (&self->npy_tmp, g_free);
  if (g_rename (self->csv_tmp, self->csv_path) != 0)
    goto rename_csv_failed;
  g_clear_pointer (&self->csv_tmp, g_free);

  GST_INFO_OBJECT (self, "wrote %" G_GUINT64_FORMAT " x %d to \"%s\"",
      self->rows, self->dim, self->npy_path);
  return TRUE;

  /* ERRORS */
no_rows:
  {
    /* Not an error: EOS goes on, the pipeline ends normally. */
    GST_ELEMENT_WARNING (self, RESOURCE, WRITE,
        ("No embedding reached the sink: \"%s\" was not written%s.",
            self->npy_path, g_file_test (self->npy_path, G_FILE_TEST_EXISTS) ?
            " (the existing file is left as it was)" : ""),
        ("end of stream after 0 rows; an empty array is never written"));
    gst_simclr_npy_sink_discard (self);
    return TRUE;
  }
write_npy_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("Could not write \"%s\".", self->npy_path), GST_ERROR_SYSTEM);
    gst_simclr_npy_sink_discard (self);
    return FALSE;
  }
write_csv_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("Could not write \"%s\".", self->csv_path), GST_ERROR_SYSTEM);
    gst_simclr_npy_sink_discard (self);
    return FALSE;
  }
rename_npy_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("Could not rename \"%s\" to \"%s\".", self->npy_tmp, self->npy_path),
        GST_ERROR_SYSTEM);
    gst_simclr_npy_sink_discard (self);
    return FALSE;
  }
rename_csv_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("Could not rename \"%s\" to \"%s\".", self->csv_tmp, self->csv_path),
        GST_ERROR_SYSTEM);
    gst_simclr_npy_sink_discard (self);
    return FALSE;
  }
}

static gboolean
gst_simclr_npy_sink_event (GstBaseSink * sink, GstEvent * event)
{
  GstSimclrNpySink *self = GST_SIMCLR_NPY_SINK (sink);

  if (GST_EVENT_TYPE (event) == GST_EVENT_EOS) {
    if (!gst_simclr_npy_sink_finish (self)) {
      gst_event_unref (event);
      return FALSE;
    }
  }
  return GST_BASE_SINK_CLASS (parent_class)->event (sink, event);
}

/* Appends the value as a CSV field, or nothing when @known is FALSE. */
static void
append_u64 (GString * line, gboolean known, guint64 v)
{
  if (known)
    g_string_append_printf (line, "%" G_GUINT64_FORMAT, v);
}

static GstFlowReturn
gst_simclr_npy_sink_render (GstBaseSink * sink, GstBuffer * buffer)
{
  GstSimclrNpySink *self = GST_SIMCLR_NPY_SINK (sink);
  GstSimclrEmbeddingMeta *meta;
  GstMapInfo map;
  GString *lines;
  gsize size, row_bytes;
  guint64 rows, i;
  gboolean ok;

  if (self->dim < 1)
    goto no_caps;
  if (!self->npy)
    goto not_open;

  size = gst_buffer_get_size (buffer);
  row_bytes = (gsize) self->dim * sizeof (float);
  if (size % row_bytes != 0)
    goto wrong_size;
  rows = size / row_bytes;
  meta = gst_buffer_get_simclr_embedding_meta (buffer);
  if (meta && meta->rows != rows)
    goto meta_mismatch;
  if (rows == 0)
    return GST_FLOW_OK;

  if (!gst_buffer_map (buffer, &map, GST_MAP_READ))
    goto map_failed;
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
  ok = fwrite (map.data, 1, size, self->npy) == size;
#else
  {
    /* The file is '<f4': swap each float on big-endian hosts. */
    guint32 *tmp = g_malloc (size);
    memcpy (tmp, map.data, size);
    for (i = 0; i < size / 4; i++)
      tmp[i] = GUINT32_SWAP_LE_BE (tmp[i]);
    ok = fwrite (tmp, 1, size, self->npy) == size;
    g_free (tmp);
  }
#endif
  gst_buffer_unmap (buffer, &map);
  if (!ok)
    goto write_npy_failed;

  lines = g_string_new (NULL);
  for (i = 0; i < rows; i++) {
    const GstSimclrEmbeddingRow *r = meta ? &meta->row[i] : NULL;
    GstClockTime pts = r ? r->pts : GST_CLOCK_TIME_NONE;

    /* A single-row buffer without meta still has the buffer's timestamp. */
    if (!r && rows == 1)
      pts = GST_BUFFER_PTS (buffer);
    g_string_append_printf (lines, "%" G_GUINT64_FORMAT ",", self->rows + i);
    append_u64 (lines, GST_CLOCK_TIME_IS_VALID (pts), pts);
    g_string_append_c (lines, ',');
    append_u64 (lines, r != NULL, r ? r->sample_id : 0);
    if (r)
      g_string_append_printf (lines, ",%d,%d\n", r->view, r->label);
    else
      g_string_append (lines, ",,\n");
  }
  ok = fwrite (lines->str, 1, lines->len, self->csv) == lines->len;
  g_string_free (lines, TRUE);
  if (!ok)
    goto write_csv_failed;

  self->rows += rows;
  return GST_FLOW_OK;

  /* ERRORS */
no_caps:
  {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
        ("received a buffer before caps with a dimension"));
    return GST_FLOW_NOT_NEGOTIATED;
  }
not_open:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("\"%s\" is no longer open for writing.", self->npy_path),
        ("a buffer arrived after EOS or a failed write"));
    return GST_FLOW_ERROR;
  }
wrong_size:
  {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
        ("Embedding buffer for \"%s\" has a wrong size.", self->npy_path),
        ("%" G_GSIZE_FORMAT " bytes is not a whole number of rows of %d "
            "float32", size, self->dim));
    return GST_FLOW_ERROR;
  }
meta_mismatch:
  {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
        ("Embedding buffer for \"%s\" has %" G_GUINT64_FORMAT " rows but its "
            "meta names %u.", self->npy_path, rows, meta->rows), (NULL));
    return GST_FLOW_ERROR;
  }
map_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED, (NULL),
        ("could not map a buffer for \"%s\"", self->npy_path));
    return GST_FLOW_ERROR;
  }
write_npy_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("Could not write to \"%s\" (for \"%s\").", self->npy_tmp,
            self->npy_path), GST_ERROR_SYSTEM);
    gst_simclr_npy_sink_discard (self);
    return GST_FLOW_ERROR;
  }
write_csv_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("Could not write to \"%s\" (for \"%s\").", self->csv_tmp,
            self->csv_path), GST_ERROR_SYSTEM);
    gst_simclr_npy_sink_discard (self);
    return GST_FLOW_ERROR;
  }
}
