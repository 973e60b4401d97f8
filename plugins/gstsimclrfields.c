/* gstsimclrfields.c: core configuration fields -> element properties (see
 * gstsimclrfields.h). Not element code: two tables and a lookup. */
#include "gstsimclrfields.h"

#include <string.h>

typedef struct
{
  const gchar *field;
  const gchar *property;
} FieldProperty;

/* simclraugment: every SimclrAugmentConfig field is a property. */
static const FieldProperty augment_fields[] = {
  {"augment.size", "size"},
  {"augment.crop_scale_min", "crop-scale-min"},
  {"augment.crop_scale_max", "crop-scale-max"},
  {"augment.crop_ratio_min", "crop-ratio-min"},
  {"augment.crop_ratio_max", "crop-ratio-max"},
  {"augment.flip_probability", "flip-probability"},
  {"augment.jitter_strength", "jitter-strength"},
  {"augment.jitter_probability", "jitter-probability"},
  {"augment.grayscale_probability", "grayscale-probability"},
  {"augment.blur_probability", "blur-probability"},
  {"augment.blur_sigma_min", "blur-sigma-min"},
  {"augment.blur_sigma_max", "blur-sigma-max"},
  {"augment.solarize_probability", "solarize-probability"},
  {NULL, NULL}
};

/* simclrencoder: the SimclrTrainerConfig fields its properties set. The
 * input size and channels come from the caps (no property); batch norm's
 * constants, LARS's trust coefficient and the temperature (ntxentsink's)
 * are not encoder properties. model.max_batch is views x batch-size. */
static const FieldProperty encoder_fields[] = {
  {"model.arch", "arch"},
  {"model.width", "width"},
  {"model.stem", "stem"},
  {"model.proj_layers", "proj-layers"},
  {"model.proj_hidden", "proj-hidden"},
  {"model.proj_dim", "proj-dim"},
  {"model.threads", "threads"},
  {"model.max_batch", "batch-size"},
  {"optim.batch_size", "batch-size"},
  {"optim.kind", "optimizer"},
  {"optim.base_lr", "learning-rate"},
  {"optim.lr_scaling", "lr-scaling"},
  {"optim.momentum", "momentum"},
  {"optim.weight_decay", "weight-decay"},
  {"optim.warmup_steps", "warmup-steps"},
  {"optim.total_steps", "total-steps"},
  {"trainer.views", "views"},
  {NULL, NULL}
};

const gchar *
gst_simclr_field_property (const gchar * element_name, const gchar * field)
{
  const FieldProperty *t;

  if (!field || !element_name)
    return NULL;
  if (strcmp (element_name, "simclraugment") == 0)
    t = augment_fields;
  else if (strcmp (element_name, "simclrencoder") == 0)
    t = encoder_fields;
  else
    return NULL;
  for (; t->field; t++)
    if (strcmp (t->field, field) == 0)
      return t->property;
  return NULL;
}

gchar *
gst_simclr_settings_error_text (const gchar * element_name,
    const SimclrError * err)
{
  const gchar *a = gst_simclr_field_property (element_name, err->field);
  const gchar *b = gst_simclr_field_property (element_name, err->related);

  if (a && b && strcmp (a, b) != 0)
    return g_strdup_printf ("%s, %s (%s)", a, b, err->message);
  if (a || b)
    return g_strdup_printf ("%s (%s)", a ? a : b, err->message);
  return g_strdup (err->message);
}
