/* plugin.c: registers the elements of the simclr plugin; nothing else. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/gst.h>

#include "gstsimclraugment.h"
#include "gstsimclrencoder.h"
#include "gstntxentsink.h"
#include "gstsimclrnpysink.h"
#include "gstsimclrdatasetsrc.h"
#include "gstsimclrnoveltyfilter.h"

static gboolean
plugin_init (GstPlugin *plugin)
{
  gboolean ret = FALSE;

  ret |= GST_ELEMENT_REGISTER (simclraugment, plugin);
  ret |= GST_ELEMENT_REGISTER (simclrencoder, plugin);
  ret |= GST_ELEMENT_REGISTER (ntxentsink, plugin);
  ret |= GST_ELEMENT_REGISTER (simclrnpysink, plugin);
  ret |= GST_ELEMENT_REGISTER (simclrdatasetsrc, plugin);
  ret |= GST_ELEMENT_REGISTER (simclrnoveltyfilter, plugin);

  return ret;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, simclr,
    "SimCLR contrastive self-supervised learning: augmentation, encoder "
    "training and embedding", plugin_init, VERSION, "LGPL", PACKAGE,
    "https://example.invalid/gst-simclr")
