/* gstsimclrencoderembed.c: simclrencoder's embed mode: frames in, one
 * embedding (h or z of a checkpoint's model, eval mode) per frame out, in
 * batches of embed-batch frames or max-latency of stream time. Each frame
 * is held (or, from a bounded pool, copied) until its batch goes through
 * the core's frame entry (frame.h), which converts it once into the
 * model's input. See gstsimclrencoder.c's SECTION comment.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstsimclrencoderpriv.h"
#include "gstsimclr.h"

#include <string.h>

#define GST_CAT_DEFAULT gst_simclr_encoder_debug

/* Allocates the batch of embed-batch frames and @dim-wide outputs. */
void
gst_simclr_encoder_embed_setup (GstSimclrEncoder * self, gint dim)
{
  gint k = self->run.embed_batch;

  self->embed_frames = g_new0 (EmbedFrame, k);
  self->embed_in = g_new0 (SimclrFrame, k);
  self->embed_copy = g_malloc ((gsize) k * self->size * self->size *
      self->channels);
  self->embed_out = g_malloc ((gsize) k * dim * sizeof (gfloat));
}

void
gst_simclr_encoder_embed_free (GstSimclrEncoder * self)
{
  if (self->embed_frames)
    gst_simclr_encoder_embed_drop (self);
  g_clear_pointer (&self->embed_frames, g_free);
  g_clear_pointer (&self->embed_in, g_free);
  g_clear_pointer (&self->embed_copy, g_free);
  g_clear_pointer (&self->embed_out, g_free);
  self->embed_batches = 0;
  self->frames_seen = 0;
}

/* Releases the frames embed mode holds. */
void
gst_simclr_encoder_embed_drop (GstSimclrEncoder * self)
{
  for (gint i = 0; i < self->embed_count; i++) {
    g_clear_pointer (&self->embed_frames[i].held, gst_simclr_held_frame_free);
    gst_clear_buffer (&self->embed_frames[i].pass);
  }
  self->embed_count = 0;
}

GstFlowReturn
gst_simclr_encoder_embed_flush (GstSimclrEncoder * self)
{
  const gint k = self->embed_count, dim = self->out_dim;
  const gboolean proj =
      self->run.output == GST_SIMCLR_ENCODER_OUTPUT_PROJECTION;
  SimclrError err = { 0 };
  GstFlowReturn ret = GST_FLOW_OK;
  guint64 batch = self->embed_batches;
  GstBuffer **pass = g_newa (GstBuffer *, k);
  SimclrStatus st;
  gint i;

  if (k == 0)
    return GST_FLOW_OK;
  self->embed_batches++;
  st = simclr_model_forward_frames (self->model, self->embed_in, k,
      self->channels, 0, proj ? NULL : self->embed_out,
      proj ? self->embed_out : NULL, &err);
  /* The frames to pass on (attach-meta) outlive the held maps. */
  for (i = 0; i < k; i++) {
    pass[i] = self->embed_frames[i].pass;
    self->embed_frames[i].pass = NULL;
  }
  gst_simclr_encoder_embed_drop (self);
  if (st != SIMCLR_OK) {
    for (i = 0; i < k; i++)
      gst_clear_buffer (&pass[i]);
    goto forward_failed;
  }

  if (self->run.attach_meta) {
    for (i = 0; i < k; i++) {
      const EmbedFrame *f = &self->embed_frames[i];
      GstBuffer *out = gst_buffer_make_writable (pass[i]);
      gst_buffer_add_simclr_vector_meta (out, self->embed_out + (gsize) i * dim,
          dim, proj ? 1 : 0, f->sample_id);
      pass[i] = NULL;
      if (ret == GST_FLOW_OK)
        ret = gst_pad_push (self->srcpad, out);
      else
        gst_buffer_unref (out);
    }
    return ret;
  }

  for (i = 0; i < k && ret == GST_FLOW_OK; i++) {
    const EmbedFrame *f = &self->embed_frames[i];
    GstSimclrEmbeddingRow r;
    GstBuffer *out = gst_buffer_new_memdup (self->embed_out + (gsize) i * dim,
        (gsize) dim * sizeof (gfloat));
    r.sample_id = f->sample_id;
    r.view = f->view;
    r.label = f->label;
    r.pts = f->pts;
    gst_buffer_add_simclr_embedding_meta (out, batch, 1, &r);
    GST_BUFFER_PTS (out) = f->pts;
    GST_BUFFER_DTS (out) = f->dts;
    GST_BUFFER_DURATION (out) = f->duration;
    GST_BUFFER_OFFSET (out) = f->offset;
    GST_BUFFER_OFFSET_END (out) = f->offset_end;
    ret = gst_pad_push (self->srcpad, out);
  }
  return ret;

  /* ERRORS */
forward_failed:
  {
    GST_ELEMENT_ERROR (self, LIBRARY, FAILED,
        ("Embedding forward pass failed: %s", err.message),
        ("%s", err.message));
    return GST_FLOW_ERROR;
  }
}

GstFlowReturn
gst_simclr_encoder_chain_embed (GstSimclrEncoder * self, GstBuffer * buf)
{
  GstSimclrFrameMeta *fm = gst_buffer_get_simclr_frame_meta (buf);
  const gint k = self->embed_count;
  EmbedFrame *f = &self->embed_frames[k];
  gboolean flush;

  f->pts = GST_BUFFER_PTS (buf);
  f->dts = GST_BUFFER_DTS (buf);
  f->duration = GST_BUFFER_DURATION (buf);
  f->offset = GST_BUFFER_OFFSET (buf);
  f->offset_end = GST_BUFFER_OFFSET_END (buf);
  f->sample_id = fm ? fm->sample_id : self->frames_seen;
  f->view = fm ? fm->view : -1;
  f->label = fm ? fm->label : -1;
  f->pass = self->run.attach_meta ? gst_buffer_ref (buf) : NULL;
  f->held = gst_simclr_held_frame_new (buf, &self->vinfo);
  if (f->held == NULL)
    goto map_failed;
  f->pixels = gst_simclr_held_frame_pixels (f->held);
  if (!gst_simclr_held_frame_may_keep (f->held)) {
    /* A bounded upstream pool would starve while the batch fills. */
    const gsize row = (gsize) self->size * self->channels;
    guint8 *dst = self->embed_copy + (gsize) k * row * self->size;
    for (gint y = 0; y < self->size; y++)
      memcpy (dst + y * row, f->pixels.data + (gsize) y * f->pixels.stride,
          row);
    g_clear_pointer (&f->held, gst_simclr_held_frame_free);
    if (f->pass) {
      /* Hold a copy, not the pool's buffer. */
      GstBuffer *c = gst_buffer_copy_deep (f->pass);
      gst_buffer_unref (f->pass);
      f->pass = c;
    }
    f->pixels.data = dst;
    f->pixels.stride = (gint) row;
  }
  self->embed_in[k] = f->pixels;
  self->frames_seen++;
  self->embed_count = k + 1;

  flush = self->embed_count >= self->run.embed_batch;
  if (!flush && self->run.max_latency > 0 && GST_CLOCK_TIME_IS_VALID (f->pts)
      && GST_CLOCK_TIME_IS_VALID (self->embed_frames[0].pts)
      && f->pts >= self->embed_frames[0].pts
      && f->pts - self->embed_frames[0].pts >= self->run.max_latency)
    flush = TRUE;
  return flush ? gst_simclr_encoder_embed_flush (self) : GST_FLOW_OK;

  /* ERRORS */
map_failed:
  {
    gst_clear_buffer (&f->pass);
    GST_ELEMENT_ERROR (self, STREAM, FAILED, (NULL),
        ("could not map a video frame"));
    return GST_FLOW_ERROR;
  }
}
