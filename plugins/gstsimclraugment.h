/* gstsimclraugment.h: the simclraugment element (SimCLR views of video
 * frames). The augmentation math lives in libsimclr (simclr/augment.h); this
 * is only the GStreamer glue. */
#pragma once

#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS

/**
 * GstSimclrAugmentPairMode:
 * @GST_SIMCLR_AUGMENT_PAIR_INDEPENDENT: every view is made from the same
 *   input frame.
 * @GST_SIMCLR_AUGMENT_PAIR_TEMPORAL: view v of frame t is made from frame
 *   t + v * #GstSimclrAugment:temporal-offset.
 */
typedef enum
{
  GST_SIMCLR_AUGMENT_PAIR_INDEPENDENT,
  GST_SIMCLR_AUGMENT_PAIR_TEMPORAL,
} GstSimclrAugmentPairMode;

#define GST_TYPE_SIMCLR_AUGMENT_PAIR_MODE (gst_simclr_augment_pair_mode_get_type ())
GType gst_simclr_augment_pair_mode_get_type (void);

#define GST_TYPE_SIMCLR_AUGMENT (gst_simclr_augment_get_type ())
G_DECLARE_FINAL_TYPE (GstSimclrAugment, gst_simclr_augment, GST, SIMCLR_AUGMENT,
    GstBaseTransform)

GST_ELEMENT_REGISTER_DECLARE (simclraugment);

G_END_DECLS
