/* gstsimclrframe.h: a video frame kept mapped until the core has read it.
 *
 * simclrencoder hands frames to the core's frame entry (frame.h), which
 * converts each pixel once, straight into the model's input. Between the
 * frame's arrival and the forward of its batch the frame is held: the
 * buffer stays referenced and mapped, so no copy is made. Holding a buffer
 * keeps it out of its pool; a bounded pool (v4l2src has a handful of
 * buffers) would starve, so gst_simclr_held_frame_may_keep tells the caller
 * when it must copy the pixels instead.
 */
#pragma once

#include <gst/gst.h>
#include <gst/video/video.h>

#include "simclr/frame.h"

G_BEGIN_DECLS

typedef struct
{
  GstVideoFrame vframe;         /* mapped for reading; holds a buffer ref */
} GstSimclrHeldFrame;

/* Maps @buf (taken: its reference passes to the frame) for reading as
 * @info. NULL (and @buf unreffed) if it cannot be mapped. */
GstSimclrHeldFrame *gst_simclr_held_frame_new (GstBuffer * buf,
    const GstVideoInfo * info);

/* Unmaps and drops the buffer; a SimclrReleaseFn. NULL is a no-op. */
void gst_simclr_held_frame_free (gpointer held);

/* The pixels of plane 0 (first row and stride), valid while @h lives. */
SimclrFrame gst_simclr_held_frame_pixels (const GstSimclrHeldFrame * h);

/* TRUE if the buffer may stay held until its batch is computed without
 * starving its pool: it has no pool, or a pool without a maximum number of
 * buffers (simclraugment's). */
gboolean gst_simclr_held_frame_may_keep (const GstSimclrHeldFrame * h);

G_END_DECLS
