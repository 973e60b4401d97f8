/* gstsimclrfields.h: the core's configuration fields as element properties.
 *
 * A core validation error names the field at fault by identifier
 * (SimclrError.field, e.g. "augment.crop_scale_min", "optim.total_steps"),
 * so an element can tell the user which PROPERTY to change without reading
 * the core's English. The tables live in gstsimclrfields.c, one row per
 * field an element's properties set.
 */
#pragma once

#include <gst/gst.h>

#include "simclr/error.h"

G_BEGIN_DECLS

/* The property of @element_name ("simclraugment", "simclrencoder") that
 * sets core field @field, or NULL if no property does (a field fixed by the
 * caps, or not exposed). */
const gchar *gst_simclr_field_property (const gchar * element_name,
    const gchar * field);

/* Text for a settings error: "prop (core message)" or "prop1, prop2 (core
 * message)" when the fields map to properties, else the core message.
 * Free with g_free. */
gchar *gst_simclr_settings_error_text (const gchar * element_name,
    const SimclrError * err);

G_END_DECLS
