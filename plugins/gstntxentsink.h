/* gstntxentsink.h: ntxentsink, the NT-Xent loss sink of SimCLR training
 * (issue 4). The loss itself lives in libsimclr (include/simclr/ntxent.h). */
#pragma once

#include <gst/gst.h>
#include <gst/base/gstbasesink.h>

G_BEGIN_DECLS

#define GST_TYPE_NTXENT_SINK (gst_ntxent_sink_get_type ())
G_DECLARE_FINAL_TYPE (GstNtxentSink, gst_ntxent_sink, GST, NTXENT_SINK,
    GstBaseSink)

GST_ELEMENT_REGISTER_DECLARE (ntxentsink);

G_END_DECLS
