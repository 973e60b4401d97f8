/* gstsimclrnpysink.h: simclrnpysink, writes a stream of embeddings to a NumPy
 * .npy file plus a CSV sidecar naming each row. */
#pragma once

#include <gst/gst.h>
#include <gst/base/gstbasesink.h>

G_BEGIN_DECLS

#define GST_TYPE_SIMCLR_NPY_SINK (gst_simclr_npy_sink_get_type ())
G_DECLARE_FINAL_TYPE (GstSimclrNpySink, gst_simclr_npy_sink, GST,
    SIMCLR_NPY_SINK, GstBaseSink)

GST_ELEMENT_REGISTER_DECLARE (simclrnpysink);

G_END_DECLS
