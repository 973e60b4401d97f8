/* checkpoint-private.h: pieces of the model checkpoint that the trainer's
 * checkpoint reuses (private to libsimclr). */
#pragma once

#include "simclr/checkpoint.h"

/* Adds @m's tensors (conv weights converted to OIHW in owned copies; others
 * BORROWED from @m, which must outlive the writer) and the model metadata. */
SimclrStatus simclr_checkpoint_add_model (SimclrSafetensorsWriter *w,
    const SimclrModel *m, SimclrError *err);

/* Adds a float buffer of the parameter layout (gradients, velocity) as one
 * tensor per parameter, named @prefix + tensor name, PyTorch layout (copies). */
SimclrStatus simclr_checkpoint_add_param_like (SimclrSafetensorsWriter *w,
    const SimclrModel *m, const char *prefix, const float *buf,
    SimclrError *err);

/* Loads every model tensor of @st into @m (strict: all present, right dtype
 * and shape; unknown tensors outside names starting with @allowed_prefix
 * (may be NULL) are an error). */
SimclrStatus simclr_checkpoint_read_model (const SimclrSafetensors *st,
    SimclrModel *m, const char *allowed_prefix, SimclrError *err);

/* Reads a parameter-layout buffer saved by simclr_checkpoint_add_param_like. */
SimclrStatus simclr_checkpoint_read_param_like (const SimclrSafetensors *st,
    const SimclrModel *m, const char *prefix, float *buf, SimclrError *err);

/* Model configuration from the metadata (defaults for absent keys except
 * "arch"; max_batch left at the default). */
SimclrStatus simclr_checkpoint_config_from_metadata (const SimclrSafetensors *st,
    SimclrModelConfig *cfg, SimclrError *err);

/* Metadata helpers: parse a number (whole string), error naming key and file. */
SimclrStatus simclr_checkpoint_meta_double (const SimclrSafetensors *st,
    const char *key, int required, double *out, SimclrError *err);
SimclrStatus simclr_checkpoint_meta_int64 (const SimclrSafetensors *st,
    const char *key, int required, int64_t *out, SimclrError *err);
SimclrStatus simclr_checkpoint_set_meta_double (SimclrSafetensorsWriter *w,
    const char *key, double v, SimclrError *err);
SimclrStatus simclr_checkpoint_set_meta_int64 (SimclrSafetensorsWriter *w,
    const char *key, int64_t v, SimclrError *err);
