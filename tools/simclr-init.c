/* simclr-init: writes a freshly initialised (random) encoder checkpoint.
 *
 *   simclr-init --out random.safetensors [--arch resnet18] [--width 0.25]
 *               [--channels 3] [--size 32] [--stem cifar] [--proj-layers 2]
 *               [--proj-hidden 0] [--proj-dim 128] [--seed 0]
 *
 * The weights are the model's initialisation (torchvision's: Kaiming normal
 * convolutions, BN 1/0, PyTorch's default Linear) from --seed, and the
 * batch-norm running statistics are PyTorch's initial ones (mean 0, var 1).
 * Every benchmark can then show the random-encoder baseline by the same
 * code path as a trained checkpoint (simclrencoder mode=embed, the tools).
 * Not a trainer: no optimiser state is written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simclr/simclr.h"

static void
usage (FILE *f)
{
  fprintf (f,
      "usage: simclr-init --out FILE [options]\n"
      "  --arch A          resnet18 (default), resnet34, resnet50\n"
      "  --width W         width multiplier (0.25)\n"
      "  --channels C      input channels, 1 or 3 (3)\n"
      "  --size S          input side in pixels (32)\n"
      "  --stem S          cifar (default) or imagenet\n"
      "  --proj-layers L   projection head layers: 0, 2 (default) or 3\n"
      "  --proj-hidden H   head hidden units (0: the feature size)\n"
      "  --proj-dim D      projection size (128)\n"
      "  --seed N          initialisation seed (0)\n");
}

int
main (int argc, char **argv)
{
  SimclrModelConfig cfg;
  SimclrError err = { 0 };
  SimclrModel *m;
  const char *out = NULL;
  unsigned long long seed = 0;

  simclr_model_config_default (&cfg);
  cfg.width = 0.25;
  cfg.max_batch = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp (a, "-h") || !strcmp (a, "--help")) {
      usage (stdout);
      return 0;
    }
    if (i + 1 >= argc) {
      fprintf (stderr, "simclr-init: %s needs a value (or is unknown; see "
          "--help)\n", a);
      return 2;
    }
    const char *v = argv[++i];
    if (!strcmp (a, "--out"))
      out = v;
    else if (!strcmp (a, "--arch")) {
      int x = simclr_arch_from_string (v);
      if (x < 0) {
        fprintf (stderr, "simclr-init: --arch %s is unknown\n", v);
        return 2;
      }
      cfg.arch = x;
    } else if (!strcmp (a, "--stem")) {
      int x = simclr_stem_from_string (v);
      if (x < 0) {
        fprintf (stderr, "simclr-init: --stem %s is unknown\n", v);
        return 2;
      }
      cfg.stem = x;
    } else if (!strcmp (a, "--width"))
      cfg.width = atof (v);
    else if (!strcmp (a, "--channels"))
      cfg.in_channels = atoi (v);
    else if (!strcmp (a, "--size"))
      cfg.image_size = atoi (v);
    else if (!strcmp (a, "--proj-layers"))
      cfg.proj_layers = atoi (v);
    else if (!strcmp (a, "--proj-hidden"))
      cfg.proj_hidden = atoi (v);
    else if (!strcmp (a, "--proj-dim"))
      cfg.proj_dim = atoi (v);
    else if (!strcmp (a, "--seed"))
      seed = strtoull (v, NULL, 10);
    else {
      fprintf (stderr, "simclr-init: unknown option %s (see --help)\n", a);
      return 2;
    }
  }
  if (!out) {
    usage (stderr);
    return 2;
  }
  m = simclr_model_new (&cfg, seed, &err);
  if (!m || simclr_checkpoint_save_model (m, out, &err) != SIMCLR_OK) {
    fprintf (stderr, "simclr-init: %s\n", err.message);
    simclr_model_free (m);
    return 1;
  }
  printf ("wrote %s: random %s width %g, %d channels, %dx%d, seed %llu\n", out,
      simclr_arch_to_string (cfg.arch), cfg.width, cfg.in_channels,
      cfg.image_size, cfg.image_size, seed);
  simclr_model_free (m);
  return 0;
}
