/* torch-crosscheck-helper.c: the C side of torch-crosscheck.py.
 *
 *   torch-crosscheck-helper train DIR ARCH STEM WIDTH PROJ_LAYERS IN_CHANNELS
 *                                 IMAGE_SIZE SEED
 *     Builds the model (e.g. resnet18 cifar 0.25 2: head 2 layers to 32;
 *     hidden = d) from SEED (weights and batch), writes DIR/model.safetensors (initial checkpoint) and
 *     DIR/batch.safetensors ("input" (B,H,W,C) NHWC, B = 8 views), runs one
 *     train forward, NT-Xent (tau 0.5), backward and one LARS step (lr 0.8,
 *     momentum 0.9, weight decay 1e-4, eta 1e-3), and writes
 *     DIR/out.safetensors: "h", "z", "loss" (F64), "grad.<param>" (PyTorch
 *     layout) and DIR/updated.safetensors (the model after the step,
 *     running statistics included).
 *   torch-crosscheck-helper eval DIR
 *     Loads DIR/torch.safetensors (written by PyTorch), runs an eval
 *     forward on DIR/batch.safetensors, writes DIR/eval.safetensors ("h",
 *     "z").
 *   torch-crosscheck-helper multicrop DIR SEED
 *     One multi-crop training step of a SimclrTrainer (ResNet-18 w0.25
 *     cifar, 1 channel, head 3 layers to 32; 4 views per sample of which
 *     the last 2 are small: MC_N samples, views 0-1 at 12x12, views 2-3 at
 *     6x6; multi-positive NT-Xent, tau 0.5): writes DIR/model.safetensors
 *     (initial), DIR/batch.safetensors ("full" (2N,12,12,1), "small"
 *     (2N,6,6,1): the model's input, pixel / 255), DIR/out.safetensors ("z"
 *     (4N,32) in the loss's row order, "loss" F64, "grad.<param>") and
 *     DIR/updated.safetensors (running statistics after a forward of the
 *     rows and the step's own forward: full, small, full, small).
 * Exits 0 on success, 1 with a message on stderr otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simclr/checkpoint.h"
#include "simclr/model.h"
#include "simclr/ntxent.h"
#include "simclr/optim.h"
#include "simclr/rng.h"
#include "simclr/trainer.h"
#include "checkpoint-private.h"

#define B 8

static int
fail (const char *what, const SimclrError *err)
{
  fprintf (stderr, "torch-crosscheck-helper: %s: %s\n", what,
      err ? err->message : "");
  return 1;
}

static char *
join (const char *dir, const char *name)
{
  size_t n = strlen (dir) + strlen (name) + 2;
  char *p = malloc (n);
  snprintf (p, n, "%s/%s", dir, name);
  return p;
}

/* Saves @m (parameters and running statistics) as DIR/@file. */
static int
save_model (SimclrModel *m, const char *dir, const char *file)
{
  SimclrError err = { 0 };
  char *path = join (dir, file);
  SimclrStatus s = simclr_checkpoint_save_model (m, path, &err);
  free (path);
  return s ? fail (file, &err) : 0;
}

/* One tensor of a dump: F32 or F64, at most 4 dimensions. */
typedef struct {
  const char *name;
  SimclrDtype dtype;
  int ndim;
  int64_t shape[4];
  const void *data;
} Dump;

/* Writes DIR/@file with the @n tensors of @dump, then (@grads_of not NULL)
 * "grad.<param>" of that model's gradient buffer in PyTorch layout. */
static int
write_tensors (const char *dir, const char *file, const Dump *dump, int n,
    SimclrModel *grads_of)
{
  SimclrError err = { 0 };
  SimclrSafetensorsWriter *w = simclr_safetensors_writer_new ();
  SimclrStatus s = SIMCLR_OK;
  for (int i = 0; i < n && s == SIMCLR_OK; i++)
    s = simclr_safetensors_writer_add (w, dump[i].name, dump[i].dtype,
        dump[i].ndim, dump[i].shape, dump[i].data, &err);
  if (s == SIMCLR_OK && grads_of)
    s = simclr_checkpoint_add_param_like (w, grads_of, "grad.",
        simclr_model_grads (grads_of, NULL), &err);
  if (s == SIMCLR_OK) {
    char *path = join (dir, file);
    s = simclr_safetensors_writer_write (w, path, &err);
    free (path);
  }
  simclr_safetensors_writer_free (w);
  return s ? fail (file, &err) : 0;
}

static int
train (const char *dir, const char *arch, const char *stem, double width,
    int proj_layers, int in_ch, int size, uint64_t seed)
{
  SimclrError err = { 0 };
  SimclrModelConfig cfg;
  simclr_model_config_default (&cfg);
  if (simclr_arch_from_string (arch) < 0 || simclr_stem_from_string (stem) < 0)
    return fail ("unknown arch or stem", NULL);
  cfg.arch = (SimclrArch) simclr_arch_from_string (arch);
  cfg.width = width;
  cfg.stem = (SimclrStem) simclr_stem_from_string (stem);
  cfg.in_channels = in_ch;
  cfg.image_size = size;
  cfg.max_batch = B;
  cfg.proj_layers = proj_layers;
  cfg.proj_hidden = 0;
  cfg.proj_dim = 32;
  SimclrModel *m = simclr_model_new (&cfg, seed, &err);
  if (!m)
    return fail ("model", &err);
  if (save_model (m, dir, "model.safetensors"))
    return 1;

  size_t nin = (size_t) B * size * size * in_ch;
  float *x = malloc (nin * sizeof (float));
  for (size_t i = 0; i < nin; i++)
    x[i] = simclr_rng_uniform (seed + 1000, 0, i);
  /* Views 0 and 1 of a sample share structure, like augmented pairs. */
  for (size_t i = 0; i < nin / 2; i++)
    x[nin / 2 + i] = 0.5f * x[nin / 2 + i] + 0.5f * x[i];
  const Dump batch[] = {
    { "input", SIMCLR_DTYPE_F32, 4, { B, size, size, in_ch }, x },
  };
  if (write_tensors (dir, "batch.safetensors", batch, 1, NULL))
    return 1;

  int d = simclr_model_feature_dim (m), D = simclr_model_output_dim (m);
  float *h = malloc ((size_t) B * d * sizeof (float));
  float *z = malloc ((size_t) B * D * sizeof (float));
  float *dz = malloc ((size_t) B * D * sizeof (float));
  if (simclr_model_forward (m, x, B, 1, h, z, &err))
    return fail ("forward", &err);
  SimclrNtxent *nt = simclr_ntxent_new (B, D, &err);
  SimclrNtxentResult r;
  if (!nt || simclr_ntxent_forward (nt, z, B, D, 0.5f, NULL, &r, &err))
    return fail ("ntxent", &err);
  simclr_ntxent_backward (nt, dz);
  simclr_model_zero_grad (m);
  if (simclr_model_backward (m, dz, &err))
    return fail ("backward", &err);

  double loss = r.loss;
  const Dump out[] = {
    { "h", SIMCLR_DTYPE_F32, 2, { B, d }, h },
    { "z", SIMCLR_DTYPE_F32, 2, { B, D }, z },
    { "loss", SIMCLR_DTYPE_F64, 0, { 0 }, &loss },
  };
  if (write_tensors (dir, "out.safetensors", out, 3, m))
    return 1;

  /* One LARS step. */
  SimclrOptimConfig oc;
  simclr_optim_config_default (&oc);
  oc.kind = SIMCLR_OPTIM_LARS;
  oc.momentum = 0.9;
  oc.weight_decay = 1e-4;
  oc.trust_coefficient = 1e-3;
  size_t np;
  float *p = simclr_model_params (m, &np);
  float *vel = calloc (np, sizeof (float));
  int nt_ = simclr_model_n_tensors (m), ng = 0;
  SimclrParamGroup *groups = calloc (nt_, sizeof *groups);
  for (int i = 0; i < nt_; i++) {
    const SimclrTensorInfo *t = simclr_model_tensor (m, i);
    if (t->storage != SIMCLR_TENSOR_PARAM)
      continue;
    groups[ng].offset = t->offset;
    groups[ng].numel = t->numel;
    groups[ng].adapt = t->adapt;
    ng++;
  }
  if (simclr_optim_step (&oc, 0.8, p, simclr_model_grads (m, NULL), vel,
          groups, ng, &err))
    return fail ("optim", &err);
  if (save_model (m, dir, "updated.safetensors"))
    return 1;
  free (groups);
  free (vel);
  free (x);
  free (h);
  free (z);
  free (dz);
  simclr_ntxent_free (nt);
  simclr_model_free (m);
  return 0;
}

static int
eval (const char *dir)
{
  SimclrError err = { 0 };
  char *path = join (dir, "torch.safetensors");
  SimclrModel *m = simclr_checkpoint_load_model (path, B, &err);
  free (path);
  if (!m)
    return fail ("load torch checkpoint", &err);
  path = join (dir, "batch.safetensors");
  SimclrSafetensors *st = simclr_safetensors_open (path, &err);
  free (path);
  if (!st)
    return fail ("batch", &err);
  const SimclrSafetensorsTensor *in = simclr_safetensors_find (st, "input");
  const SimclrModelConfig *c = simclr_model_get_config (m);
  if (!in || in->dtype != SIMCLR_DTYPE_F32 || in->ndim != 4
      || in->shape[0] != B || in->shape[1] != c->image_size
      || in->shape[3] != c->in_channels)
    return fail ("batch does not fit the checkpoint's model", NULL);
  int d = simclr_model_feature_dim (m), D = simclr_model_output_dim (m);
  float *h = malloc ((size_t) B * d * sizeof (float));
  float *z = malloc ((size_t) B * D * sizeof (float));
  if (simclr_model_forward (m, in->data, B, 0, h, z, &err))
    return fail ("eval forward", &err);
  const Dump out[] = {
    { "h", SIMCLR_DTYPE_F32, 2, { B, d }, h },
    { "z", SIMCLR_DTYPE_F32, 2, { B, D }, z },
  };
  if (write_tensors (dir, "eval.safetensors", out, 2, NULL))
    return 1;
  simclr_safetensors_free (st);
  free (h);
  free (z);
  simclr_model_free (m);
  return 0;
}

#define MC_N 3
#define MC_BIG 12
#define MC_SMALL 6

static int
multicrop (const char *dir, uint64_t seed)
{
  SimclrError err = { 0 };
  SimclrTrainerConfig cfg;
  simclr_trainer_config_default (&cfg);
  cfg.model.arch = SIMCLR_ARCH_RESNET18;
  cfg.model.width = 0.25;
  cfg.model.stem = SIMCLR_STEM_CIFAR;
  cfg.model.in_channels = 1;
  cfg.model.image_size = MC_BIG;
  cfg.model.proj_layers = 3;
  cfg.model.proj_dim = 32;
  cfg.model.threads = 1;
  cfg.views = 4;
  cfg.small_views = 2;
  cfg.small_size = MC_SMALL;
  cfg.temperature = 0.5;
  cfg.seed = seed;
  cfg.optim.kind = SIMCLR_OPTIM_SGD;
  cfg.optim.warmup_steps = 0;
  if (simclr_trainer_config_set_batch (&cfg, MC_N, 1, &err))
    return fail ("batch", &err);
  SimclrTrainer *t = simclr_trainer_new (&cfg, &err);
  if (!t)
    return fail ("trainer", &err);
  SimclrModel *m = simclr_trainer_get_model (t);
  if (save_model (m, dir, "model.safetensors"))
    return 1;

  const int full = 2 * MC_N, small = 2 * MC_N, rows = full + small;
  size_t nb = (size_t) full * MC_BIG * MC_BIG;
  size_t ns = (size_t) small * MC_SMALL * MC_SMALL;
  uint8_t *u8 = malloc (nb + ns);
  float *xb = malloc (nb * sizeof (float)), *xs = malloc (ns * sizeof (float));
  /* a per-sample pattern (sampled on each view's grid) plus view noise */
  for (int r = 0; r < rows; r++) {
    int side = r < full ? MC_BIG : MC_SMALL;
    uint8_t *dst = r < full ? u8 + (size_t) r * MC_BIG * MC_BIG
        : u8 + nb + (size_t) (r - full) * MC_SMALL * MC_SMALL;
    int sample = r % MC_N;
    for (int y = 0; y < side; y++)
      for (int x = 0; x < side; x++) {
        int bi = (y * MC_BIG / side) * MC_BIG + x * MC_BIG / side;
        float v = 0.6f * simclr_rng_uniform (seed + 1000, sample, bi)
            + 0.4f * simclr_rng_uniform (seed + 2000, r, y * side + x);
        dst[y * side + x] = (uint8_t) (255.0f * v);
      }
  }
  for (int r = 0; r < rows; r++) {
    SimclrFrame f;
    if (r < full) {
      simclr_frames_packed (&f, u8 + (size_t) r * MC_BIG * MC_BIG, 1,
          MC_BIG, 1);
      simclr_frame_to_input (xb + (size_t) r * MC_BIG * MC_BIG, &f, MC_BIG,
          MC_BIG, 1);
    } else {
      simclr_frames_packed (&f, u8 + nb + (size_t) (r - full) * MC_SMALL
          * MC_SMALL, 1, MC_SMALL, 1);
      simclr_frame_to_input (xs + (size_t) (r - full) * MC_SMALL * MC_SMALL,
          &f, MC_SMALL, MC_SMALL, 1);
    }
  }
  const Dump batch[] = {
    { "full", SIMCLR_DTYPE_F32, 4, { full, MC_BIG, MC_BIG, 1 }, xb },
    { "small", SIMCLR_DTYPE_F32, 4, { small, MC_SMALL, MC_SMALL, 1 }, xs },
  };
  if (write_tensors (dir, "batch.safetensors", batch, 2, NULL))
    return 1;

  int D = simclr_model_output_dim (m);
  float *z = malloc ((size_t) rows * D * sizeof (float));
  if (simclr_trainer_forward_u8 (t, u8, rows, z, &err))
    return fail ("forward", &err);
  /* The step itself runs its own forward of the same rows: the running
   * statistics see full, small, full, small (4 batches counted). The SGD
   * step leaves the gradient buffer as the backward wrote it. */
  SimclrNtxentResult r;
  if (simclr_trainer_train_step (t, u8, rows, &r, &err))
    return fail ("train step", &err);
  double loss = r.loss;
  const Dump out[] = {
    { "z", SIMCLR_DTYPE_F32, 2, { rows, D }, z },
    { "loss", SIMCLR_DTYPE_F64, 0, { 0 }, &loss },
  };
  if (write_tensors (dir, "out.safetensors", out, 2, m)
      || save_model (m, dir, "updated.safetensors"))
    return 1;
  free (u8);
  free (xb);
  free (xs);
  free (z);
  simclr_trainer_free (t);
  return 0;
}

int
main (int argc, char **argv)
{
  if (argc == 4 && strcmp (argv[1], "multicrop") == 0)
    return multicrop (argv[2], strtoull (argv[3], NULL, 10));
  if (argc == 10 && strcmp (argv[1], "train") == 0)
    return train (argv[2], argv[3], argv[4], atof (argv[5]), atoi (argv[6]),
        atoi (argv[7]), atoi (argv[8]), strtoull (argv[9], NULL, 10));
  if (argc == 3 && strcmp (argv[1], "eval") == 0)
    return eval (argv[2]);
  fprintf (stderr, "usage: %s train DIR ARCH STEM WIDTH PROJ_LAYERS "
      "IN_CHANNELS IMAGE_SIZE SEED | eval DIR | multicrop DIR SEED\n",
      argv[0]);
  return 2;
}
