/* gstsimclrgradient.c: the gradient event and the encoder's wait for it
 * (see gstsimclrgradient.h). */
#include "gstsimclrgradient.h"
#include "gstsimclr.h"

#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_simclr_gradient_debug);
#define GST_CAT_DEFAULT gst_simclr_gradient_debug

/* How long the encoder waits for a gradient before it warns (once) that
 * nothing seems to send one. */
#define GRADIENT_WARN_SECONDS 30

GstEvent *
gst_simclr_gradient_event_new (const GstSimclrGradient * g)
{
  return gst_event_new_custom (GST_EVENT_CUSTOM_UPSTREAM,
      gst_structure_new (SIMCLR_GRADIENT_EVENT,
          "step", G_TYPE_UINT64, g->step,
          "rows", G_TYPE_INT, g->rows,
          "dimension", G_TYPE_INT, g->dimension,
          "loss", G_TYPE_DOUBLE, g->loss,
          "top1", G_TYPE_DOUBLE, g->top1,
          "top5", G_TYPE_DOUBLE, g->top5,
          "temperature", G_TYPE_DOUBLE, g->temperature,
          "gradient", GST_TYPE_BUFFER, g->gradient, NULL));
}

gboolean
gst_simclr_gradient_event_parse (GstEvent * event, GstSimclrGradient * g)
{
  const GstStructure *s;

  memset (g, 0, sizeof *g);
  g->rows = g->dimension = -1;
  if (GST_EVENT_TYPE (event) != GST_EVENT_CUSTOM_UPSTREAM)
    return FALSE;
  s = gst_event_get_structure (event);
  if (s == NULL || !gst_structure_has_name (s, SIMCLR_GRADIENT_EVENT))
    return FALSE;
  if (!gst_structure_get_uint64 (s, "step", &g->step)
      || !gst_structure_get (s, "gradient", GST_TYPE_BUFFER, &g->gradient,
          NULL)) {
    gst_clear_buffer (&g->gradient);
    return TRUE;
  }
  gst_structure_get_int (s, "rows", &g->rows);
  gst_structure_get_int (s, "dimension", &g->dimension);
  gst_structure_get_double (s, "loss", &g->loss);
  gst_structure_get_double (s, "top1", &g->top1);
  gst_structure_get_double (s, "top5", &g->top5);
  gst_structure_get_double (s, "temperature", &g->temperature);
  return TRUE;
}

void
gst_simclr_gradient_clear (GstSimclrGradient * g)
{
  gst_clear_buffer (&g->gradient);
}

void
gst_simclr_gradient_wait_init (GstSimclrGradientWait * w)
{
  static gsize debug_once = 0;

  if (g_once_init_enter (&debug_once)) {
    GST_DEBUG_CATEGORY_INIT (gst_simclr_gradient_debug, "simclrgradient", 0,
        "SimCLR gradient rendezvous");
    g_once_init_leave (&debug_once, 1);
  }
  memset (w, 0, sizeof *w);
  g_mutex_init (&w->lock);
  g_cond_init (&w->cond);
}

void
gst_simclr_gradient_wait_clear (GstSimclrGradientWait * w)
{
  gst_simclr_gradient_clear (&w->got);
  g_mutex_clear (&w->lock);
  g_cond_clear (&w->cond);
}

GstFlowReturn
gst_simclr_gradient_wait_exchange (GstSimclrGradientWait * w,
    GstElement * element, GstPad * srcpad, GstBuffer * z, guint64 step,
    GstSimclrGradient * out)
{
  gboolean warned = FALSE;
  GstFlowReturn ret;

  memset (out, 0, sizeof *out);
  g_mutex_lock (&w->lock);
  gst_simclr_gradient_clear (&w->got);
  w->step = step;
  w->waiting = TRUE;
  g_mutex_unlock (&w->lock);

  GST_LOG_OBJECT (element, "pushing step %" G_GUINT64_FORMAT, step);
  ret = gst_pad_push (srcpad, z);

  g_mutex_lock (&w->lock);
  if (ret == GST_FLOW_OK) {
    gint64 deadline = g_get_monotonic_time () +
        GRADIENT_WARN_SECONDS * G_TIME_SPAN_SECOND;
    while (w->got.gradient == NULL && !w->flushing && !w->shutdown) {
      if (!g_cond_wait_until (&w->cond, &w->lock, deadline) && !warned) {
        warned = TRUE;
        g_mutex_unlock (&w->lock);
        GST_ELEMENT_WARNING (element, STREAM, FAILED,
            ("No gradient for step %" G_GUINT64_FORMAT " after %d s: train "
                "mode needs ntxentsink (or another element sending "
                "\"" SIMCLR_GRADIENT_EVENT "\") downstream.", step,
                GRADIENT_WARN_SECONDS), (NULL));
        g_mutex_lock (&w->lock);
      }
    }
  }
  *out = w->got;
  memset (&w->got, 0, sizeof w->got);
  w->waiting = FALSE;
  g_mutex_unlock (&w->lock);

  if (ret != GST_FLOW_OK) {
    gst_simclr_gradient_clear (out);
    return ret;
  }
  /* A gradient that arrived is applied even if a flush raced with it: the
   * sink has already accounted for this step. */
  if (out->gradient == NULL) {
    GST_DEBUG_OBJECT (element, "wait for step %" G_GUINT64_FORMAT " ended "
        "without gradient (flush or shutdown)", step);
    return GST_FLOW_FLUSHING;
  }
  return GST_FLOW_OK;
}

gboolean
gst_simclr_gradient_wait_offer (GstSimclrGradientWait * w,
    GstSimclrGradient * g)
{
  gboolean accepted = FALSE;

  g_mutex_lock (&w->lock);
  if (w->waiting && g->step == w->step && w->got.gradient == NULL) {
    w->got = *g;
    g->gradient = NULL;
    accepted = TRUE;
    g_cond_broadcast (&w->cond);
  }
  g_mutex_unlock (&w->lock);
  return accepted;
}

void
gst_simclr_gradient_wait_set_flushing (GstSimclrGradientWait * w,
    gboolean flushing)
{
  g_mutex_lock (&w->lock);
  w->flushing = flushing;
  g_cond_broadcast (&w->cond);
  g_mutex_unlock (&w->lock);
}

void
gst_simclr_gradient_wait_set_shutdown (GstSimclrGradientWait * w,
    gboolean shutdown)
{
  g_mutex_lock (&w->lock);
  w->shutdown = shutdown;
  g_cond_broadcast (&w->cond);
  g_mutex_unlock (&w->lock);
}

void
gst_simclr_gradient_wait_reset (GstSimclrGradientWait * w)
{
  g_mutex_lock (&w->lock);
  gst_simclr_gradient_clear (&w->got);
  w->waiting = FALSE;
  g_mutex_unlock (&w->lock);
}
