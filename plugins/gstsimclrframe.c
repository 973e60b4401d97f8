/* gstsimclrframe.c: held video frames (see gstsimclrframe.h). */
#include "gstsimclrframe.h"

GstSimclrHeldFrame *
gst_simclr_held_frame_new (GstBuffer * buf, const GstVideoInfo * info)
{
  GstSimclrHeldFrame *h = g_new0 (GstSimclrHeldFrame, 1);

  /* The map takes its own reference on the buffer. */
  if (!gst_video_frame_map (&h->vframe, info, buf, GST_MAP_READ)) {
    g_free (h);
    h = NULL;
  }
  gst_buffer_unref (buf);
  return h;
}

void
gst_simclr_held_frame_free (gpointer held)
{
  GstSimclrHeldFrame *h = held;

  if (!h)
    return;
  gst_video_frame_unmap (&h->vframe);
  g_free (h);
}

SimclrFrame
gst_simclr_held_frame_pixels (const GstSimclrHeldFrame * h)
{
  SimclrFrame f;

  f.data = GST_VIDEO_FRAME_PLANE_DATA (&h->vframe, 0);
  f.stride = GST_VIDEO_FRAME_PLANE_STRIDE (&h->vframe, 0);
  f.width = GST_VIDEO_FRAME_WIDTH (&h->vframe);
  f.height = GST_VIDEO_FRAME_HEIGHT (&h->vframe);
  return f;
}

gboolean
gst_simclr_held_frame_may_keep (const GstSimclrHeldFrame * h)
{
  GstBufferPool *pool = h->vframe.buffer->pool;
  GstStructure *config;
  guint max_buffers = 1;
  gboolean ok;

  if (pool == NULL)
    return TRUE;
  config = gst_buffer_pool_get_config (pool);
  ok = gst_buffer_pool_config_get_params (config, NULL, NULL, NULL,
      &max_buffers) && max_buffers == 0;
  gst_structure_free (config);
  return ok;
}
