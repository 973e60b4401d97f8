/* test-settings-fields.c: every configuration field the core names in an
 * error maps to the property of the element that sets it
 * (plugins/gstsimclrfields.c), and the property exists on the element.
 *
 * The fields come from the core itself: each case makes one field of a
 * valid configuration invalid, runs the core's validation and reads
 * SimclrError.field / .related -- no message text is parsed. Then the
 * mapped property is looked up on simclraugment / simclrencoder, and a real
 * element run shows the property's name in the error it posts.
 */
#include <gst/check/gstcheck.h>
#include <math.h>
#include <string.h>

#include "gstsimclrfields.h"

#include "simclr/augment.h"
#include "simclr/trainer.h"

typedef struct
{
  const gchar *field;           /* what the core reports */
  const gchar *related;         /* ... and as related, or NULL */
  const gchar *property;        /* the element's property for field */
  const gchar *related_property;
} Expect;

static void
check_mapping (const gchar * element, const SimclrError * err,
    const Expect * e)
{
  GstElementFactory *f = gst_element_factory_find (element);
  GstElement *el;
  const gchar *p;

  fail_unless (f != NULL, "no %s factory", element);
  el = gst_element_factory_create (f, NULL);
  fail_unless_equals_string (err->field, e->field);
  fail_unless_equals_string (err->related, e->related);
  p = gst_simclr_field_property (element, err->field);
  fail_unless_equals_string (p, e->property);
  fail_unless (g_object_class_find_property (G_OBJECT_GET_CLASS (el), p)
      != NULL, "%s has no property %s", element, p);
  if (e->related) {
    p = gst_simclr_field_property (element, err->related);
    fail_unless_equals_string (p, e->related_property);
    fail_unless (g_object_class_find_property (G_OBJECT_GET_CLASS (el), p)
        != NULL, "%s has no property %s", element, p);
  }
  gst_object_unref (el);
  gst_object_unref (f);
}

/* ---- simclraugment: one case per SimclrAugmentConfig field ---------------- */

typedef void (*AugmentBreak) (SimclrAugmentConfig * c);

#define AUG_CASE(name, stmt) \
  static void name (SimclrAugmentConfig * c) { stmt; }
AUG_CASE (aug_size, c->size = 0)
AUG_CASE (aug_scale, c->crop_scale_min = 0.9; c->crop_scale_max = 0.5)
AUG_CASE (aug_ratio, c->crop_ratio_min = 2; c->crop_ratio_max = 1)
AUG_CASE (aug_flip, c->flip_probability = 1.5)
AUG_CASE (aug_jitter_p, c->jitter_probability = -0.1)
AUG_CASE (aug_gray, c->grayscale_probability = 2)
AUG_CASE (aug_blur_p, c->blur_probability = NAN)
AUG_CASE (aug_solarize, c->solarize_probability = 3)
AUG_CASE (aug_strength, c->jitter_strength = 3)
AUG_CASE (aug_sigma, c->blur_sigma_min = 3; c->blur_sigma_max = 1)
#undef AUG_CASE

static const struct
{
  AugmentBreak brk;
  Expect e;
} augment_cases[] = {
  {aug_size, {"augment.size", NULL, "size", NULL}},
  {aug_scale, {"augment.crop_scale_min", "augment.crop_scale_max",
          "crop-scale-min", "crop-scale-max"}},
  {aug_ratio, {"augment.crop_ratio_min", "augment.crop_ratio_max",
          "crop-ratio-min", "crop-ratio-max"}},
  {aug_flip, {"augment.flip_probability", NULL, "flip-probability", NULL}},
  {aug_jitter_p, {"augment.jitter_probability", NULL, "jitter-probability",
          NULL}},
  {aug_gray, {"augment.grayscale_probability", NULL,
          "grayscale-probability", NULL}},
  {aug_blur_p, {"augment.blur_probability", NULL, "blur-probability", NULL}},
  {aug_solarize, {"augment.solarize_probability", NULL,
          "solarize-probability", NULL}},
  {aug_strength, {"augment.jitter_strength", NULL, "jitter-strength", NULL}},
  {aug_sigma, {"augment.blur_sigma_min", "augment.blur_sigma_max",
          "blur-sigma-min", "blur-sigma-max"}},
};

GST_START_TEST (test_augment_fields)
{
  for (guint i = 0; i < G_N_ELEMENTS (augment_cases); i++) {
    SimclrAugmentConfig cfg;
    SimclrError err = { 0 };
    simclr_augment_config_default (&cfg);
    fail_unless_equals_int (simclr_augment_config_validate (&cfg, &err),
        SIMCLR_OK);
    augment_cases[i].brk (&cfg);
    fail_unless_equals_int (simclr_augment_config_validate (&cfg, &err),
        SIMCLR_ERROR_INVALID_ARGUMENT);
    check_mapping ("simclraugment", &err, &augment_cases[i].e);
  }
}

GST_END_TEST;

/* ---- simclrencoder: the trainer configuration fields it sets -------------- */

typedef void (*TrainerBreak) (SimclrTrainerConfig * c);

#define TR_CASE(name, stmt) \
  static void name (SimclrTrainerConfig * c) { stmt; }
TR_CASE (tr_arch, c->model.arch = 9)
TR_CASE (tr_width, c->model.width = 100)
TR_CASE (tr_stem, c->model.stem = 7)
TR_CASE (tr_proj_layers, c->model.proj_layers = 1)
TR_CASE (tr_proj_hidden, c->model.proj_hidden = -1)
TR_CASE (tr_proj_dim, c->model.proj_dim = 0)
TR_CASE (tr_threads, c->model.threads = 1000)
TR_CASE (tr_max_batch, c->model.max_batch = 0)
TR_CASE (tr_batch, c->optim.batch_size = 0)
TR_CASE (tr_kind, c->optim.kind = 5)
TR_CASE (tr_lr, c->optim.base_lr = 0)
TR_CASE (tr_scaling, c->optim.lr_scaling = 5)
TR_CASE (tr_momentum, c->optim.momentum = 1)
TR_CASE (tr_wd, c->optim.weight_decay = -1)
TR_CASE (tr_warmup, c->optim.warmup_steps = -1)
TR_CASE (tr_total, c->optim.warmup_steps = 50; c->optim.total_steps = 50)
TR_CASE (tr_views, c->views = 1)
#undef TR_CASE

static const struct
{
  TrainerBreak brk;
  Expect e;
} encoder_cases[] = {
  {tr_arch, {"model.arch", NULL, "arch", NULL}},
  {tr_width, {"model.width", NULL, "width", NULL}},
  {tr_stem, {"model.stem", NULL, "stem", NULL}},
  {tr_proj_layers, {"model.proj_layers", NULL, "proj-layers", NULL}},
  {tr_proj_hidden, {"model.proj_hidden", NULL, "proj-hidden", NULL}},
  {tr_proj_dim, {"model.proj_dim", NULL, "proj-dim", NULL}},
  {tr_threads, {"model.threads", NULL, "threads", NULL}},
  {tr_max_batch, {"model.max_batch", NULL, "batch-size", NULL}},
  {tr_batch, {"optim.batch_size", NULL, "batch-size", NULL}},
  {tr_kind, {"optim.kind", NULL, "optimizer", NULL}},
  {tr_lr, {"optim.base_lr", NULL, "learning-rate", NULL}},
  {tr_scaling, {"optim.lr_scaling", NULL, "lr-scaling", NULL}},
  {tr_momentum, {"optim.momentum", NULL, "momentum", NULL}},
  {tr_wd, {"optim.weight_decay", NULL, "weight-decay", NULL}},
  {tr_warmup, {"optim.warmup_steps", NULL, "warmup-steps", NULL}},
  {tr_total, {"optim.total_steps", "optim.warmup_steps", "total-steps",
          "warmup-steps"}},
  {tr_views, {"trainer.views", NULL, "views", NULL}},
};

GST_START_TEST (test_encoder_fields)
{
  for (guint i = 0; i < G_N_ELEMENTS (encoder_cases); i++) {
    SimclrTrainerConfig cfg;
    SimclrError err = { 0 };
    simclr_trainer_config_default (&cfg);
    fail_unless_equals_int (simclr_trainer_config_validate (&cfg, &err),
        SIMCLR_OK);
    encoder_cases[i].brk (&cfg);
    fail_unless (simclr_trainer_config_validate (&cfg, &err) != SIMCLR_OK,
        "case %u validated", i);
    check_mapping ("simclrencoder", &err, &encoder_cases[i].e);
  }
  /* fields no encoder property sets map to nothing (the message stays the
   * core's) */
  fail_unless (gst_simclr_field_property ("simclrencoder",
          "model.image_size") == NULL);
  fail_unless (gst_simclr_field_property ("simclrencoder",
          "trainer.temperature") == NULL);
  fail_unless (gst_simclr_field_property ("simclraugment", "model.width")
      == NULL);
  fail_unless (gst_simclr_field_property ("nosuchelement", "model.width")
      == NULL);
}

GST_END_TEST;

/* The property's name reaches the user: an encoder started with a setting
 * the pspec allows but the core refuses posts an error naming it. */
static void
check_start_names (const gchar * setting, const gchar * name,
    const gchar * value)
{
  GstElement *el = gst_element_factory_make ("simclrencoder", NULL);
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  GError *gerr = NULL;

  gst_element_set_bus (el, bus);
  gst_util_set_object_arg (G_OBJECT (el), setting, value);
  fail_unless_equals_int (gst_element_set_state (el, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_parse_error (msg, &gerr, NULL);
  fail_unless (g_error_matches (gerr, GST_LIBRARY_ERROR,
          GST_LIBRARY_ERROR_SETTINGS), "wrong error %s", gerr->message);
  fail_unless (strstr (gerr->message, name) != NULL,
      "\"%s\" does not name %s", gerr->message, name);
  g_error_free (gerr);
  gst_message_unref (msg);
  gst_element_set_state (el, GST_STATE_NULL);
  gst_element_set_bus (el, NULL);
  gst_object_unref (bus);
  gst_object_unref (el);
}

GST_START_TEST (test_encoder_start_errors)
{
  /* momentum 1.0 is outside the property's range now (issue 15: ranges
   * say what start accepts); a combination is still refused at start */
  check_start_names ("warmup-steps", "warmup-steps", "1000");
  check_start_names ("proj-layers", "proj-layers", "1");
}

GST_END_TEST;

static Suite *
settings_fields_suite (void)
{
  Suite *s = suite_create ("settings-fields");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_augment_fields);
  tcase_add_test (tc, test_encoder_fields);
  tcase_add_test (tc, test_encoder_start_errors);
  return s;
}

GST_CHECK_MAIN (settings_fields);
