/* fuzz-checkpoint.c: the checkpoint loader (model configuration from the
 * safetensors metadata, then every tensor checked against the model).
 * Input: the whole file. Checks: read_config and load_model agree (both fail
 * or the loaded model has the configuration read), a loaded model holds the
 * file's tensors by name, and failures carry a message. A file claiming an
 * absurd model must be refused before gigabytes are allocated (libFuzzer's
 * -malloc_limit_mb reports it otherwise). */
#include <string.h>

#include "simclr/checkpoint.h"
#include "simclr/model.h"

#include "fuzz-common.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  SimclrError err = { 0 }, err2 = { 0 };
  SimclrModelConfig cfg;
  SimclrModel *m;
  SimclrStatus cs;
  char *p;

  fuzz_clear ();
  p = fuzz_path ("in.safetensors");
  fuzz_write (p, data, size);
  cs = simclr_checkpoint_read_config (p, &cfg, &err);
  m = simclr_checkpoint_load_model (p, 2, &err2);
  if (cs != SIMCLR_OK) {
    FUZZ_CHECK (m == NULL, "load_model accepted what read_config refused "
        "(%s)", err.message);
    FUZZ_CHECK (err.message[0] != '\0' && err2.message[0] != '\0',
        "failure without a message");
    free (p);
    return 0;
  }
  if (!m) {
    FUZZ_CHECK (err2.status != SIMCLR_OK && err2.message[0] != '\0',
        "load failed without a message");
    free (p);
    return 0;
  }
  {
    const SimclrModelConfig *mc = simclr_model_get_config (m);
    SimclrSafetensors *st = simclr_safetensors_open (p, &err);
    FUZZ_CHECK (st != NULL, "%s", err.message);
    FUZZ_CHECK (mc->arch == cfg.arch && mc->width == cfg.width
        && mc->in_channels == cfg.in_channels && mc->image_size ==
        cfg.image_size && mc->proj_dim == cfg.proj_dim, "configuration "
        "differs between read_config and load_model");
    for (int i = 0; i < simclr_model_n_tensors (m); i++) {
      const SimclrTensorInfo *ti = simclr_model_tensor (m, i);
      const SimclrSafetensorsTensor *t = simclr_safetensors_find (st,
          ti->name);
      FUZZ_CHECK (t != NULL, "model tensor \"%s\" loaded from nowhere",
          ti->name);
    }
    simclr_safetensors_free (st);
  }
  simclr_model_free (m);
  free (p);
  return 0;
}
