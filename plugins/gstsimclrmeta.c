/* gstsimclrmeta.c: the frame and embedding metas of the simclr plugin. */
#include "gstsimclr.h"

#include <string.h>

/* A test program links this file and also loads the plugin, so both copies
 * look a registration up by name before making it: GLib refuses (with a
 * critical) to register one type name twice. */

/* ---- GstSimclrFrameMeta ------------------------------------------------- */

GType
gst_simclr_frame_meta_api_get_type (void)
{
  static GType type = 0;
  static const gchar *tags[] = { NULL };
  if (g_once_init_enter (&type)) {
    GType t = g_type_from_name ("GstSimclrFrameMetaAPI");
    if (t == 0)
      t = gst_meta_api_type_register ("GstSimclrFrameMetaAPI", tags);
    g_once_init_leave (&type, t);
  }
  return type;
}

static gboolean
frame_meta_init (GstMeta *meta, gpointer params, GstBuffer *buffer)
{
  GstSimclrFrameMeta *m = (GstSimclrFrameMeta *) meta;
  m->sample_id = 0;
  m->view = -1;
  m->label = -1;
  m->epoch = 0;
  return TRUE;
}

static gboolean
frame_meta_transform (GstBuffer *dest, GstMeta *meta, GstBuffer *buffer,
    GQuark type, gpointer data)
{
  /* The meta describes the whole frame, so every transform (copy, scale,
   * conversion) keeps it unchanged. */
  GstSimclrFrameMeta *m = (GstSimclrFrameMeta *) meta;
  return gst_buffer_add_simclr_frame_meta (dest, m->sample_id, m->view,
      m->label, m->epoch) != NULL;
}

const GstMetaInfo *
gst_simclr_frame_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;
  if (g_once_init_enter ((GstMetaInfo **) & info)) {
    const GstMetaInfo *mi = gst_meta_get_info ("GstSimclrFrameMeta");
    if (mi == NULL)
      mi = gst_meta_register (GST_SIMCLR_FRAME_META_API_TYPE,
        "GstSimclrFrameMeta", sizeof (GstSimclrFrameMeta), frame_meta_init,
        NULL, frame_meta_transform);
    g_once_init_leave ((GstMetaInfo **) & info, (GstMetaInfo *) mi);
  }
  return info;
}

GstSimclrFrameMeta *
gst_buffer_add_simclr_frame_meta (GstBuffer *buffer, guint64 sample_id,
    gint view, gint label, guint64 epoch)
{
  GstSimclrFrameMeta *m;
  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  m = (GstSimclrFrameMeta *) gst_buffer_add_meta (buffer,
      gst_simclr_frame_meta_get_info (), NULL);
  if (m) {
    m->sample_id = sample_id;
    m->view = view;
    m->label = label;
    m->epoch = epoch;
  }
  return m;
}

/* ---- GstSimclrEmbeddingMeta --------------------------------------------- */

GType
gst_simclr_embedding_meta_api_get_type (void)
{
  static GType type = 0;
  static const gchar *tags[] = { NULL };
  if (g_once_init_enter (&type)) {
    GType t = g_type_from_name ("GstSimclrEmbeddingMetaAPI");
    if (t == 0)
      t = gst_meta_api_type_register ("GstSimclrEmbeddingMetaAPI", tags);
    g_once_init_leave (&type, t);
  }
  return type;
}

static gboolean
embedding_meta_init (GstMeta *meta, gpointer params, GstBuffer *buffer)
{
  GstSimclrEmbeddingMeta *m = (GstSimclrEmbeddingMeta *) meta;
  m->step = 0;
  m->rows = 0;
  m->row = NULL;
  m->epoch = 0.0;
  m->lr = 0.0;
  m->has_counts = FALSE;
  m->frames_seen = m->frames_buffered = m->frames_trained = 0;
  m->frames_dropped = 0;
  m->replay_held = 0;
  return TRUE;
}

static void
embedding_meta_free (GstMeta *meta, GstBuffer *buffer)
{
  GstSimclrEmbeddingMeta *m = (GstSimclrEmbeddingMeta *) meta;
  g_free (m->row);
  m->row = NULL;
  m->rows = 0;
}

static gboolean
embedding_meta_transform (GstBuffer *dest, GstMeta *meta, GstBuffer *buffer,
    GQuark type, gpointer data)
{
  GstSimclrEmbeddingMeta *m = (GstSimclrEmbeddingMeta *) meta;
  /* Rows only make sense for the whole buffer: copy on a full copy, drop on a
   * partial one (a region copy no longer has the same rows). */
  if (GST_META_TRANSFORM_IS_COPY (type)) {
    GstMetaTransformCopy *copy = data;
    GstSimclrEmbeddingMeta *d;
    if (copy->region)
      return TRUE;
    d = gst_buffer_add_simclr_embedding_meta (dest, m->step, m->rows, m->row);
    if (d == NULL)
      return FALSE;
    d->epoch = m->epoch;
    d->lr = m->lr;
    d->has_counts = m->has_counts;
    d->frames_seen = m->frames_seen;
    d->frames_buffered = m->frames_buffered;
    d->frames_trained = m->frames_trained;
    d->frames_dropped = m->frames_dropped;
    d->replay_held = m->replay_held;
    return TRUE;
  }
  return TRUE;
}

const GstMetaInfo *
gst_simclr_embedding_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;
  if (g_once_init_enter ((GstMetaInfo **) & info)) {
    const GstMetaInfo *mi = gst_meta_get_info ("GstSimclrEmbeddingMeta");
    if (mi == NULL)
      mi = gst_meta_register (GST_SIMCLR_EMBEDDING_META_API_TYPE,
        "GstSimclrEmbeddingMeta", sizeof (GstSimclrEmbeddingMeta),
        embedding_meta_init, embedding_meta_free, embedding_meta_transform);
    g_once_init_leave ((GstMetaInfo **) & info, (GstMetaInfo *) mi);
  }
  return info;
}

GstSimclrEmbeddingMeta *
gst_buffer_add_simclr_embedding_meta (GstBuffer *buffer, guint64 step,
    guint rows, const GstSimclrEmbeddingRow *row)
{
  GstSimclrEmbeddingMeta *m;
  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  m = (GstSimclrEmbeddingMeta *) gst_buffer_add_meta (buffer,
      gst_simclr_embedding_meta_get_info (), NULL);
  if (m) {
    m->step = step;
    m->rows = rows;
    m->epoch = 0.0;
    m->lr = 0.0;
    m->has_counts = FALSE;
    m->frames_seen = m->frames_buffered = m->frames_trained = 0;
    m->frames_dropped = 0;
    m->replay_held = 0;
    m->row = g_new0 (GstSimclrEmbeddingRow, rows ? rows : 1);
    if (row && rows)
      memcpy (m->row, row, rows * sizeof *row);
  }
  return m;
}

/* ---- GstSimclrVectorMeta ------------------------------------------------ */

GType
gst_simclr_vector_meta_api_get_type (void)
{
  static GType type = 0;
  static const gchar *tags[] = { NULL };
  if (g_once_init_enter (&type)) {
    GType t = g_type_from_name ("GstSimclrVectorMetaAPI");
    if (t == 0)
      t = gst_meta_api_type_register ("GstSimclrVectorMetaAPI", tags);
    g_once_init_leave (&type, t);
  }
  return type;
}

static gboolean
vector_meta_init (GstMeta *meta, gpointer params, GstBuffer *buffer)
{
  GstSimclrVectorMeta *m = (GstSimclrVectorMeta *) meta;
  m->dimension = 0;
  m->data = NULL;
  m->output = 0;
  m->sample_id = 0;
  return TRUE;
}

static void
vector_meta_free (GstMeta *meta, GstBuffer *buffer)
{
  GstSimclrVectorMeta *m = (GstSimclrVectorMeta *) meta;
  g_free (m->data);
  m->data = NULL;
  m->dimension = 0;
}

static gboolean
vector_meta_transform (GstBuffer *dest, GstMeta *meta, GstBuffer *buffer,
    GQuark type, gpointer data)
{
  /* The vector describes the picture: every transform (copy, scale,
   * conversion) keeps it. */
  GstSimclrVectorMeta *m = (GstSimclrVectorMeta *) meta;
  return gst_buffer_add_simclr_vector_meta (dest, m->data, m->dimension,
      m->output, m->sample_id) != NULL;
}

const GstMetaInfo *
gst_simclr_vector_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;
  if (g_once_init_enter ((GstMetaInfo **) & info)) {
    const GstMetaInfo *mi = gst_meta_get_info ("GstSimclrVectorMeta");
    if (mi == NULL)
      mi = gst_meta_register (GST_SIMCLR_VECTOR_META_API_TYPE,
        "GstSimclrVectorMeta", sizeof (GstSimclrVectorMeta), vector_meta_init,
        vector_meta_free, vector_meta_transform);
    g_once_init_leave ((GstMetaInfo **) & info, (GstMetaInfo *) mi);
  }
  return info;
}

GstSimclrVectorMeta *
gst_buffer_add_simclr_vector_meta (GstBuffer *buffer, const gfloat *data,
    guint dimension, gint output, guint64 sample_id)
{
  GstSimclrVectorMeta *m;
  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (data != NULL && dimension > 0, NULL);
  m = (GstSimclrVectorMeta *) gst_buffer_add_meta (buffer,
      gst_simclr_vector_meta_get_info (), NULL);
  if (m) {
    m->dimension = dimension;
    m->data = g_memdup2 (data, (gsize) dimension * sizeof (gfloat));
    m->output = output;
    m->sample_id = sample_id;
  }
  return m;
}
