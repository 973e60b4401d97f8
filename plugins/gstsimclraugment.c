/* placeholder until simclraugment lands: registers nothing */
#include "gstsimclraugment.h"
gboolean gst_element_register_simclraugment (GstPlugin * plugin);
gboolean
gst_element_register_simclraugment (GstPlugin * plugin)
{
  return TRUE;
}
