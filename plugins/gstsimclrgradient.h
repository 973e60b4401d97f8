/* gstsimclrgradient.h: the gradient rendezvous between simclrencoder and
 * ntxentsink.
 *
 * In train mode the encoder pushes the projections z of step k downstream
 * and waits; ntxentsink computes the loss and sends dL/dz back upstream as a
 * custom event named SIMCLR_GRADIENT_EVENT (gstsimclr.h). Upstream events
 * pass a queue at once, so the gradient reaches the encoder on the sink's
 * thread (through a queue) or inside its own gst_pad_push. This file is
 * both sides of that protocol: the event's fields (built by the sink, read
 * by the encoder) and the encoder's wait, which a flush or a shutdown ends.
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

/* One step's gradient, as the event carries it. */
typedef struct
{
  guint64 step;
  gint rows;                    /* -1 if the event had none */
  gint dimension;               /* -1 if the event had none */
  gdouble loss, top1, top5;
  gdouble temperature;          /* the loss's; 0 if the event had none */
  GstBuffer *gradient;          /* rows x dimension float32, owned */
} GstSimclrGradient;

/* The upstream event for @g (its gradient buffer is reffed, not taken). */
GstEvent *gst_simclr_gradient_event_new (const GstSimclrGradient * g);

/* TRUE if @event is a gradient event; then @g is filled (its gradient a
 * new reference, or NULL when the event is malformed: no step or buffer). */
gboolean gst_simclr_gradient_event_parse (GstEvent * event,
    GstSimclrGradient * g);

/* Drops the gradient buffer. */
void gst_simclr_gradient_clear (GstSimclrGradient * g);

/* The encoder's side: one step in flight at a time. */
typedef struct
{
  GMutex lock;
  GCond cond;
  gboolean waiting;
  guint64 step;
  GstSimclrGradient got;        /* got.gradient != NULL once it came */
  gboolean flushing;
  gboolean shutdown;
} GstSimclrGradientWait;

void gst_simclr_gradient_wait_init (GstSimclrGradientWait * w);
void gst_simclr_gradient_wait_clear (GstSimclrGradientWait * w);

/* Pushes @z (taken) of @step on @srcpad, then waits until the gradient of
 * @step arrives (gst_simclr_gradient_wait_offer), a flush starts or the
 * element shuts down. GST_FLOW_OK with @out filled (caller clears it), the
 * push's failure, or GST_FLOW_FLUSHING when the wait ended without a
 * gradient. After GRADIENT_WARN_SECONDS a warning on @element says that
 * nothing seems to send gradients. */
GstFlowReturn gst_simclr_gradient_wait_exchange (GstSimclrGradientWait * w,
    GstElement * element, GstPad * srcpad, GstBuffer * z, guint64 step,
    GstSimclrGradient * out);

/* From the thread the event arrives on: hands @g (its buffer taken when
 * accepted) to a waiting exchange of the same step. FALSE if nobody waits
 * for that step (the caller then drops @g). */
gboolean gst_simclr_gradient_wait_offer (GstSimclrGradientWait * w,
    GstSimclrGradient * g);

/* Flush start (TRUE) / stop (FALSE) and shutdown (state change to READY;
 * FALSE again when the element starts) end or allow the wait. */
void gst_simclr_gradient_wait_set_flushing (GstSimclrGradientWait * w,
    gboolean flushing);
void gst_simclr_gradient_wait_set_shutdown (GstSimclrGradientWait * w,
    gboolean shutdown);

/* Drops a gradient that came for nobody (reset between runs). */
void gst_simclr_gradient_wait_reset (GstSimclrGradientWait * w);

G_END_DECLS
