#pragma once
#include <gst/gst.h>
G_BEGIN_DECLS
GST_ELEMENT_REGISTER_DECLARE (simclraugment);
G_END_DECLS
