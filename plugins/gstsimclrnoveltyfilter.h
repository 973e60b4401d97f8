/* gstsimclrnoveltyfilter.h: simclrnoveltyfilter, passes only the frames
 * whose embedding is new. */
#pragma once

#include <gst/gst.h>
#include <gst/video/gstvideofilter.h>

G_BEGIN_DECLS

#define GST_TYPE_SIMCLR_NOVELTY_FILTER (gst_simclr_novelty_filter_get_type ())
G_DECLARE_FINAL_TYPE (GstSimclrNoveltyFilter, gst_simclr_novelty_filter, GST,
    SIMCLR_NOVELTY_FILTER, GstVideoFilter)

GST_ELEMENT_REGISTER_DECLARE (simclrnoveltyfilter);

G_END_DECLS
