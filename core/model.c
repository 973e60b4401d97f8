/* model.c: the ResNet encoder + projection head (see include/simclr/model.h).
 *
 * This file builds the parameter table (torchvision state_dict names and
 * order), initialises the weights, and chains the layer kernels of
 * layers-private.h into a forward and a backward pass. It does not implement
 * the kernels themselves (conv.c, batchnorm.c, layers.c) nor the loss.
 *
 * Network as a list of "units": convolution -> batch norm [-> ReLU]. A
 * residual block is 2 (basic) or 3 (bottleneck) units on the main path, an
 * optional downsample unit (1x1 conv + BN), then y = relu(main + shortcut).
 * Activations kept for backward, per unit: a = conv output (batch norm's
 * input) and b = BN output, rectified in place when the unit has a ReLU
 * (ReLU's backward only needs its output). The last unit's b becomes the
 * block output y (sum and ReLU in place).
 *
 * Backward uses four rotating gradient buffers of the largest activation
 * size instead of one gradient per activation: the kernels accumulate, so
 * each target buffer is zeroed right before it is written.
 */
#include "simclr/model.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "simclr/rng.h"
#include "layers-private.h"
#include "profile-private.h"

#define MAX_HEAD_LAYERS 3

typedef struct {
  int conv;              /* tensor index of the conv weight */
  SimclrConvShape cs;    /* B = max_batch here; set per call */
  int bn;                /* tensor index of the BN weight; bias, running_mean,
                          * running_var follow */
  int relu;
  int id;                /* index in build order (the profile's unit) */
  float *a;              /* conv output (B,OH,OW,OC) */
  float *b;              /* BN output, rectified in place if relu */
  float *mean, *rstd;    /* (OC) batch statistics for backward */
} Unit;

typedef struct {
  int n_units;
  Unit u[3];
  int has_ds;
  Unit ds;               /* downsample: conv 1x1 stride s + BN, no relu */
  const float *x;        /* block input (previous output), (B,H,W,C) */
} Block;

typedef struct {
  int w, b;              /* tensor indices (b = -1: no bias) */
  int in, out;
  int bn;                /* tensor index of BN1d weight, -1 if none */
  int relu;
  float *a;              /* linear output (B,out) */
  float *bo;             /* BN output (B,out), NULL without BN */
  float *mean, *rstd;
} HeadLayer;

struct SimclrModel {
  SimclrModelConfig cfg;
  int d, out_dim;

  SimclrTensorInfo *tensors;
  int n_tensors, cap_tensors;
  size_t n_params, n_buffers;
  float *params, *grads, *buffers;
  int64_t num_batches_tracked;
  int64_t *nbt;          /* &num_batches_tracked, or the owner's when shared */
  const SimclrModel *owner;      /* simclr_model_new_shared: the model whose
                                  * params, grads, buffers and counter these
                                  * are (borrowed, not freed); NULL if own */

  Unit stem;
  int has_pool;
  int pool_h, pool_w;    /* max-pool output size */
  float *pool_out;
  int32_t *pool_arg;
  int feat_h, feat_w;    /* spatial size of the last block */

  Block *blocks;
  int n_blocks;

  HeadLayer head[MAX_HEAD_LAYERS];
  int n_head;

  float *input;          /* (max_batch,H,W,C) copy of the last input */
  float *h;              /* (max_batch,d) */
  float *g[4];           /* gradient buffers, max_act floats each */
  float *hg[2];          /* head gradient buffers (max_batch, head width) */
  size_t max_act, max_head;
  float *conv_scratch;
  size_t conv_scratch_n;

  int cached_B;          /* B of the last train forward, 0 if none */

  SimclrAllreduceFn allreduce;
  void *allreduce_user;

  int n_units;           /* conv + BN units built */
  SimclrProfile *profile;        /* NULL unless a benchmark attached one */

  /* Allocation list for activation buffers. */
  void **allocs;
  int n_allocs, cap_allocs;
  int alloc_failed;
};

/* ------------------------------------------------------------------------ */
/* configuration */

void
simclr_model_config_default (SimclrModelConfig *cfg)
{
  memset (cfg, 0, sizeof *cfg);
  cfg->arch = SIMCLR_ARCH_RESNET18;
  cfg->width = 1.0;
  cfg->in_channels = 3;
  cfg->stem = SIMCLR_STEM_CIFAR;
  cfg->image_size = 32;
  cfg->max_batch = 256;
  cfg->proj_layers = 2;
  cfg->proj_hidden = 0;
  cfg->proj_dim = 128;
  cfg->zero_init_residual = 0;
  cfg->bn_momentum = 0.1;
  cfg->bn_eps = 1e-5;
  cfg->threads = 1;
}

const char *
simclr_arch_to_string (SimclrArch arch)
{
  switch (arch) {
    case SIMCLR_ARCH_RESNET18:
      return "resnet18";
    case SIMCLR_ARCH_RESNET34:
      return "resnet34";
    case SIMCLR_ARCH_RESNET50:
      return "resnet50";
  }
  return NULL;
}

int
simclr_arch_from_string (const char *s)
{
  for (int a = SIMCLR_ARCH_RESNET18; a <= SIMCLR_ARCH_RESNET50; a++)
    if (s && strcmp (s, simclr_arch_to_string ((SimclrArch) a)) == 0)
      return a;
  return -1;
}

const char *
simclr_stem_to_string (SimclrStem stem)
{
  switch (stem) {
    case SIMCLR_STEM_CIFAR:
      return "cifar";
    case SIMCLR_STEM_IMAGENET:
      return "imagenet";
    case SIMCLR_STEM_STRIDE2:
      return "stride2";
  }
  return NULL;
}

int
simclr_stem_from_string (const char *s)
{
  for (int a = SIMCLR_STEM_CIFAR; a <= SIMCLR_STEM_STRIDE2; a++)
    if (s && strcmp (s, simclr_stem_to_string ((SimclrStem) a)) == 0)
      return a;
  return -1;
}

SimclrStatus
simclr_model_config_validate (const SimclrModelConfig *cfg, SimclrError *err)
{
  const SimclrStatus E = SIMCLR_ERROR_INVALID_ARGUMENT;
  if (!cfg)
    return simclr_error_set (err, E, "model config is NULL");
  if (!simclr_arch_to_string (cfg->arch))
    return simclr_error_set_field (err, E, "model.arch", NULL,
        "model arch %d unknown", (int) cfg->arch);
  if (!(cfg->width >= 0.0625 && cfg->width <= 8))
    return simclr_error_set_field (err, E, "model.width", NULL,
        "model width %g out of range [0.0625, 8] (0.25 .. 4 intended)",
        cfg->width);
  if (cfg->in_channels != 1 && cfg->in_channels != 3)
    return simclr_error_set_field (err, E, "model.in_channels", NULL,
        "model in_channels %d: must be 1 or 3",
        cfg->in_channels);
  if (!simclr_stem_to_string (cfg->stem))
    return simclr_error_set_field (err, E, "model.stem", NULL,
        "model stem %d unknown", (int) cfg->stem);
  if (cfg->image_size < 1 || cfg->image_size > 4096)
    return simclr_error_set_field (err, E, "model.image_size", NULL,
        "model image_size %d out of range [1, 4096]",
        cfg->image_size);
  if (cfg->max_batch < 1 || cfg->max_batch > (1 << 20))
    return simclr_error_set_field (err, E, "model.max_batch", NULL,
        "model max_batch %d out of range",
        cfg->max_batch);
  if (cfg->proj_layers != 0 && cfg->proj_layers != 2 && cfg->proj_layers != 3)
    return simclr_error_set_field (err, E, "model.proj_layers", NULL,
        "model proj_layers %d: must be 0, 2 or 3",
        cfg->proj_layers);
  if (cfg->proj_hidden < 0 || cfg->proj_hidden > (1 << 16))
    return simclr_error_set_field (err, E, "model.proj_hidden", NULL,
        "model proj_hidden %d out of range",
        cfg->proj_hidden);
  if (cfg->proj_layers && (cfg->proj_dim < 1 || cfg->proj_dim > (1 << 16)))
    return simclr_error_set_field (err, E, "model.proj_dim", NULL,
        "model proj_dim %d out of range",
        cfg->proj_dim);
  if (!(cfg->bn_momentum >= 0 && cfg->bn_momentum <= 1))
    return simclr_error_set_field (err, E, "model.bn_momentum", NULL,
        "model bn_momentum %g out of [0, 1]",
        cfg->bn_momentum);
  if (!(cfg->bn_eps > 0 && cfg->bn_eps < 1))
    return simclr_error_set_field (err, E, "model.bn_eps", NULL,
        "model bn_eps %g out of (0, 1)",
        cfg->bn_eps);
  if (cfg->threads < 0 || cfg->threads > 256)
    return simclr_error_set_field (err, E, "model.threads", NULL,
        "model threads %d out of range [0, 256]",
        cfg->threads);
  /* The spatial size must survive every stride. */
  int s = cfg->image_size;
  if (cfg->stem == SIMCLR_STEM_IMAGENET)
    s = ((s + 6 - 7) / 2 + 1 + 2 - 3) / 2 + 1;
  else if (cfg->stem == SIMCLR_STEM_STRIDE2)
    s = (s + 2 - 3) / 2 + 1;
  if (cfg->stem == SIMCLR_STEM_IMAGENET && cfg->image_size < 7)
    return simclr_error_set_field (err, E, "model.image_size", "model.stem",
        "model image_size %d too small for the imagenet stem (>= 7)",
        cfg->image_size);
  if (s < 1)
    return simclr_error_set_field (err, E, "model.image_size", NULL,
        "model image_size %d too small",
        cfg->image_size);
  return SIMCLR_OK;
}

/* ------------------------------------------------------------------------ */
/* construction */

static int
scaled (int c, double width)
{
  int v = (int) lround (c * width);
  return v < 1 ? 1 : v;
}

/* Every buffer of the model (activations, gradients, scratch, parameters)
 * starts on a 64-byte boundary, so the kernels' 64-byte vector accesses do
 * not split cache lines: calloc's blocks start 16 bytes past one. The block
 * is over-allocated by calloc (keeping its zeroed, lazily committed pages)
 * and m->allocs keeps calloc's pointer, which simclr_model_free frees. */
#define MODEL_ALIGN 64

static void *
model_alloc (SimclrModel *m, size_t bytes)
{
  if (m->alloc_failed)
    return NULL;
  if (m->n_allocs == m->cap_allocs) {
    int cap = m->cap_allocs ? 2 * m->cap_allocs : 64;
    void **a = realloc (m->allocs, cap * sizeof *a);
    if (!a) {
      m->alloc_failed = 1;
      return NULL;
    }
    m->allocs = a;
    m->cap_allocs = cap;
  }
  if (bytes > SIZE_MAX - MODEL_ALIGN) {
    m->alloc_failed = 1;
    return NULL;
  }
  void *p = calloc (1, bytes + MODEL_ALIGN);
  if (!p) {
    m->alloc_failed = 1;
    return NULL;
  }
  m->allocs[m->n_allocs++] = p;
  uintptr_t a = ((uintptr_t) p + MODEL_ALIGN - 1)
      & ~(uintptr_t) (MODEL_ALIGN - 1);
  return (void *) a;
}

static int
add_tensor (SimclrModel *m, const char *name, SimclrTensorStorage storage,
    int ndim, const int64_t *shape, int ohwi, int adapt)
{
  if (m->alloc_failed)
    return -1;
  if (m->n_tensors == m->cap_tensors) {
    int cap = m->cap_tensors ? 2 * m->cap_tensors : 128;
    SimclrTensorInfo *t = realloc (m->tensors, cap * sizeof *t);
    if (!t) {
      m->alloc_failed = 1;
      return -1;
    }
    m->tensors = t;
    m->cap_tensors = cap;
  }
  char *copy = model_alloc (m, strlen (name) + 1);
  if (!copy)
    return -1;
  strcpy (copy, name);
  SimclrTensorInfo *t = &m->tensors[m->n_tensors];
  memset (t, 0, sizeof *t);
  t->name = copy;
  t->storage = storage;
  t->ndim = ndim;
  size_t numel = 1;
  for (int i = 0; i < ndim; i++) {
    t->shape[i] = shape[i];
    numel *= (size_t) shape[i];
  }
  t->ohwi = ohwi;
  t->adapt = adapt;
  if (storage == SIMCLR_TENSOR_PARAM) {
    t->offset = m->n_params;
    t->numel = numel;
    m->n_params += numel;
  } else if (storage == SIMCLR_TENSOR_BUFFER) {
    t->offset = m->n_buffers;
    t->numel = numel;
    m->n_buffers += numel;
  }
  return m->n_tensors++;
}

static void
note_act (SimclrModel *m, size_t n)
{
  if (n > m->max_act)
    m->max_act = n;
}

static int
add_bn (SimclrModel *m, const char *prefix, int C)
{
  char name[256];
  int64_t shape[1] = { C };
  snprintf (name, sizeof name, "%s.weight", prefix);
  int idx = add_tensor (m, name, SIMCLR_TENSOR_PARAM, 1, shape, 0, 0);
  snprintf (name, sizeof name, "%s.bias", prefix);
  add_tensor (m, name, SIMCLR_TENSOR_PARAM, 1, shape, 0, 0);
  snprintf (name, sizeof name, "%s.running_mean", prefix);
  add_tensor (m, name, SIMCLR_TENSOR_BUFFER, 1, shape, 0, 0);
  snprintf (name, sizeof name, "%s.running_var", prefix);
  add_tensor (m, name, SIMCLR_TENSOR_BUFFER, 1, shape, 0, 0);
  snprintf (name, sizeof name, "%s.num_batches_tracked", prefix);
  add_tensor (m, name, SIMCLR_TENSOR_COUNTER, 0, shape, 0, 0);
  return idx;
}

/* A conv (no bias) + BN unit reading (B,*H,*W,C); updates *H, *W to the
 * output size. conv_name/bn_name are full tensor prefixes. */
static void
add_unit (SimclrModel *m, Unit *u, const char *conv_name, const char *bn_name,
    int C, int OC, int k, int stride, int pad, int *H, int *W, int relu)
{
  char name[256];
  int64_t shape[4] = { OC, C, k, k };
  snprintf (name, sizeof name, "%s.weight", conv_name);
  u->conv = add_tensor (m, name, SIMCLR_TENSOR_PARAM, 4, shape, 1, 1);
  u->bn = add_bn (m, bn_name, OC);
  u->relu = relu;
  u->id = m->n_units++;
  memset (&u->cs, 0, sizeof u->cs);
  u->cs.B = m->cfg.max_batch;
  u->cs.H = *H;
  u->cs.W = *W;
  u->cs.C = C;
  u->cs.OC = OC;
  u->cs.KH = k;
  u->cs.KW = k;
  u->cs.stride = stride;
  u->cs.pad = pad;
  u->cs.threads = m->cfg.threads > 0 ? m->cfg.threads : 1;
  if (simclr_conv2d_shape_init (&u->cs) != 0) {
    /* Only reachable with an image too small for the strides; validate
     * rejects those, so treat as allocation failure to fail cleanly. */
    u->cs.OH = u->cs.OW = 0;
    m->alloc_failed = 1;
    return;
  }
  /* conv_shape_init may be a placeholder while conv.c lands: derive here. */
  u->cs.OH = (*H + 2 * pad - k) / stride + 1;
  u->cs.OW = (*W + 2 * pad - k) / stride + 1;
  *H = u->cs.OH;
  *W = u->cs.OW;
  size_t n = (size_t) m->cfg.max_batch * u->cs.OH * u->cs.OW * OC;
  note_act (m, n);
  size_t sc = simclr_conv2d_scratch_floats (&u->cs);
  if (sc > m->conv_scratch_n)
    m->conv_scratch_n = sc;
}

static void
alloc_unit (SimclrModel *m, Unit *u)
{
  size_t n = (size_t) m->cfg.max_batch * u->cs.OH * u->cs.OW * u->cs.OC;
  u->a = model_alloc (m, n * sizeof (float));
  u->b = model_alloc (m, n * sizeof (float));
  u->mean = model_alloc (m, u->cs.OC * sizeof (float));
  u->rstd = model_alloc (m, u->cs.OC * sizeof (float));
}

static int
add_linear (SimclrModel *m, const char *prefix, int in, int out, int bias,
    int *b_idx)
{
  char name[256];
  int64_t shape[2] = { out, in };
  snprintf (name, sizeof name, "%s.weight", prefix);
  int w = add_tensor (m, name, SIMCLR_TENSOR_PARAM, 2, shape, 0, 1);
  *b_idx = -1;
  if (bias) {
    snprintf (name, sizeof name, "%s.bias", prefix);
    *b_idx = add_tensor (m, name, SIMCLR_TENSOR_PARAM, 1, shape, 0, 0);
  }
  return w;
}

static void
build (SimclrModel *m)
{
  const SimclrModelConfig *c = &m->cfg;
  static const int blocks18[4] = { 2, 2, 2, 2 };
  static const int blocks34[4] = { 3, 4, 6, 3 };
  const int *nb = c->arch == SIMCLR_ARCH_RESNET18 ? blocks18 : blocks34;
  int bottleneck = c->arch == SIMCLR_ARCH_RESNET50;
  int expansion = bottleneck ? 4 : 1;
  int H = c->image_size, W = c->image_size;
  int inplanes = scaled (64, c->width);

  note_act (m, (size_t) c->max_batch * H * W * c->in_channels);
  if (c->stem == SIMCLR_STEM_CIFAR)
    add_unit (m, &m->stem, "conv1", "bn1", c->in_channels, inplanes, 3, 1, 1,
        &H, &W, 1);
  else if (c->stem == SIMCLR_STEM_STRIDE2)
    add_unit (m, &m->stem, "conv1", "bn1", c->in_channels, inplanes, 3, 2, 1,
        &H, &W, 1);
  else
    add_unit (m, &m->stem, "conv1", "bn1", c->in_channels, inplanes, 7, 2, 3,
        &H, &W, 1);
  if (m->alloc_failed)
    return;
  if (c->stem == SIMCLR_STEM_IMAGENET) {
    m->has_pool = 1;
    m->pool_h = (H + 2 - 3) / 2 + 1;
    m->pool_w = (W + 2 - 3) / 2 + 1;
    H = m->pool_h;
    W = m->pool_w;
    note_act (m, (size_t) c->max_batch * H * W * inplanes);
  }

  m->n_blocks = nb[0] + nb[1] + nb[2] + nb[3];
  m->blocks = model_alloc (m, m->n_blocks * sizeof (Block));
  if (!m->blocks)
    return;
  int bi = 0;
  for (int l = 0; l < 4; l++) {
    int planes = scaled (64 << l, c->width);
    for (int j = 0; j < nb[l]; j++, bi++) {
      Block *b = &m->blocks[bi];
      int stride = (l > 0 && j == 0) ? 2 : 1;
      char cn[64], bn[64];
      int in = inplanes;
      int H0 = H, W0 = W;
      if (!bottleneck) {
        b->n_units = 2;
        snprintf (cn, sizeof cn, "layer%d.%d.conv1", l + 1, j);
        snprintf (bn, sizeof bn, "layer%d.%d.bn1", l + 1, j);
        add_unit (m, &b->u[0], cn, bn, in, planes, 3, stride, 1, &H, &W, 1);
        snprintf (cn, sizeof cn, "layer%d.%d.conv2", l + 1, j);
        snprintf (bn, sizeof bn, "layer%d.%d.bn2", l + 1, j);
        add_unit (m, &b->u[1], cn, bn, planes, planes, 3, 1, 1, &H, &W, 0);
      } else {
        /* torchvision puts the stride on the 3x3 convolution (v1.5). */
        b->n_units = 3;
        snprintf (cn, sizeof cn, "layer%d.%d.conv1", l + 1, j);
        snprintf (bn, sizeof bn, "layer%d.%d.bn1", l + 1, j);
        add_unit (m, &b->u[0], cn, bn, in, planes, 1, 1, 0, &H, &W, 1);
        snprintf (cn, sizeof cn, "layer%d.%d.conv2", l + 1, j);
        snprintf (bn, sizeof bn, "layer%d.%d.bn2", l + 1, j);
        add_unit (m, &b->u[1], cn, bn, planes, planes, 3, stride, 1, &H, &W, 1);
        snprintf (cn, sizeof cn, "layer%d.%d.conv3", l + 1, j);
        snprintf (bn, sizeof bn, "layer%d.%d.bn3", l + 1, j);
        add_unit (m, &b->u[2], cn, bn, planes, planes * expansion, 1, 1, 0,
            &H, &W, 0);
      }
      if (stride != 1 || in != planes * expansion) {
        int Hd = H0, Wd = W0;
        b->has_ds = 1;
        snprintf (cn, sizeof cn, "layer%d.%d.downsample.0", l + 1, j);
        snprintf (bn, sizeof bn, "layer%d.%d.downsample.1", l + 1, j);
        add_unit (m, &b->ds, cn, bn, in, planes * expansion, 1, stride, 0,
            &Hd, &Wd, 0);
      }
      inplanes = planes * expansion;
      if (m->alloc_failed)
        return;
    }
  }
  m->feat_h = H;
  m->feat_w = W;
  m->d = inplanes;

  /* Head. */
  int hid = c->proj_hidden > 0 ? c->proj_hidden : m->d;
  m->max_head = m->d;
  if (c->proj_layers == 2) {
    m->n_head = 2;
    m->head[0].w = add_linear (m, "head.0", m->d, hid, 1, &m->head[0].b);
    m->head[0].in = m->d;
    m->head[0].out = hid;
    m->head[0].bn = -1;
    m->head[0].relu = 1;
    m->head[1].w = add_linear (m, "head.2", hid, c->proj_dim, 1,
        &m->head[1].b);
    m->head[1].in = hid;
    m->head[1].out = c->proj_dim;
    m->head[1].bn = -1;
    m->head[1].relu = 0;
  } else if (c->proj_layers == 3) {
    m->n_head = 3;
    m->head[0].w = add_linear (m, "head.0", m->d, hid, 0, &m->head[0].b);
    m->head[0].bn = add_bn (m, "head.1", hid);
    m->head[0].in = m->d;
    m->head[0].out = hid;
    m->head[0].relu = 1;
    m->head[1].w = add_linear (m, "head.3", hid, hid, 0, &m->head[1].b);
    m->head[1].bn = add_bn (m, "head.4", hid);
    m->head[1].in = hid;
    m->head[1].out = hid;
    m->head[1].relu = 1;
    m->head[2].w = add_linear (m, "head.6", hid, c->proj_dim, 1,
        &m->head[2].b);
    m->head[2].bn = -1;
    m->head[2].in = hid;
    m->head[2].out = c->proj_dim;
    m->head[2].relu = 0;
  }
  m->out_dim = m->n_head ? c->proj_dim : m->d;
  for (int i = 0; i < m->n_head; i++)
    if ((size_t) m->head[i].out > m->max_head)
      m->max_head = m->head[i].out;
}

static void
allocate (SimclrModel *m)
{
  const SimclrModelConfig *c = &m->cfg;
  size_t B = c->max_batch;
  if (!m->owner) {
    m->params = model_alloc (m, m->n_params * sizeof (float));
    m->grads = model_alloc (m, m->n_params * sizeof (float));
    m->buffers = model_alloc (m, m->n_buffers * sizeof (float));
  }
  m->input = model_alloc (m,
      B * c->image_size * c->image_size * c->in_channels * sizeof (float));
  alloc_unit (m, &m->stem);
  if (m->has_pool) {
    size_t n = B * m->pool_h * m->pool_w * m->stem.cs.OC;
    m->pool_out = model_alloc (m, n * sizeof (float));
    m->pool_arg = model_alloc (m, n * sizeof (int32_t));
  }
  for (int i = 0; i < m->n_blocks; i++) {
    Block *b = &m->blocks[i];
    for (int j = 0; j < b->n_units; j++)
      alloc_unit (m, &b->u[j]);
    if (b->has_ds)
      alloc_unit (m, &b->ds);
  }
  m->h = model_alloc (m, B * m->d * sizeof (float));
  for (int i = 0; i < m->n_head; i++) {
    HeadLayer *hl = &m->head[i];
    hl->a = model_alloc (m, B * hl->out * sizeof (float));
    if (hl->bn >= 0) {
      hl->bo = model_alloc (m, B * hl->out * sizeof (float));
      hl->mean = model_alloc (m, hl->out * sizeof (float));
      hl->rstd = model_alloc (m, hl->out * sizeof (float));
    }
  }
  for (int i = 0; i < 4; i++)
    m->g[i] = model_alloc (m, m->max_act * sizeof (float));
  for (int i = 0; i < 2; i++)
    m->hg[i] = model_alloc (m, B * m->max_head * sizeof (float));
  m->conv_scratch = model_alloc (m, m->conv_scratch_n * sizeof (float));
}

#define P(m, idx) ((m)->params + (m)->tensors[idx].offset)
#define G(m, idx) ((m)->grads + (m)->tensors[idx].offset)
#define BUF(m, idx) ((m)->buffers + (m)->tensors[idx].offset)

static void
fill_normal (float *p, size_t n, double std, uint64_t seed, uint64_t stream)
{
  for (size_t i = 0; i < n; i++)
    p[i] = (float) (std * simclr_rng_normal (seed, stream, i));
}

static void
fill_uniform (float *p, size_t n, double bound, uint64_t seed, uint64_t stream)
{
  for (size_t i = 0; i < n; i++)
    p[i] = (float) (bound * (2.0 * simclr_rng_uniform_double (seed, stream, i)
            - 1.0));
}

static void
init_bn (SimclrModel *m, int bn, int zero_gamma)
{
  const SimclrTensorInfo *t = &m->tensors[bn];
  for (size_t i = 0; i < t->numel; i++) {
    P (m, bn)[i] = zero_gamma ? 0.0f : 1.0f;
    P (m, bn + 1)[i] = 0.0f;
    BUF (m, bn + 2)[i] = 0.0f;
    BUF (m, bn + 3)[i] = 1.0f;
  }
}

static void
init_unit (SimclrModel *m, const Unit *u, uint64_t seed, int zero_gamma)
{
  /* Kaiming normal, mode fan_out, gain sqrt(2): std = sqrt(2 / (OC*KH*KW)). */
  double fan_out = (double) u->cs.OC * u->cs.KH * u->cs.KW;
  fill_normal (P (m, u->conv), m->tensors[u->conv].numel, sqrt (2.0 / fan_out),
      seed, u->conv);
  init_bn (m, u->bn, zero_gamma);
}

static void
initialise (SimclrModel *m, uint64_t seed)
{
  init_unit (m, &m->stem, seed, 0);
  for (int i = 0; i < m->n_blocks; i++) {
    Block *b = &m->blocks[i];
    for (int j = 0; j < b->n_units; j++)
      init_unit (m, &b->u[j], seed,
          m->cfg.zero_init_residual && j == b->n_units - 1);
    if (b->has_ds)
      init_unit (m, &b->ds, seed, 0);
  }
  for (int i = 0; i < m->n_head; i++) {
    HeadLayer *hl = &m->head[i];
    /* PyTorch's Linear default: kaiming_uniform(a=sqrt(5)) for the weight,
     * which is uniform(+-1/sqrt(in)), and the same bound for the bias. */
    double bound = 1.0 / sqrt ((double) hl->in);
    fill_uniform (P (m, hl->w), m->tensors[hl->w].numel, bound, seed, hl->w);
    if (hl->b >= 0)
      fill_uniform (P (m, hl->b), m->tensors[hl->b].numel, bound, seed, hl->b);
    if (hl->bn >= 0)
      init_bn (m, hl->bn, 0);
  }
}

/* The model's layout; with @with_memory also its buffers, initialised from
 * @seed. With @owner, the parameters, gradients, running statistics and
 * counter are @owner's (see simclr_model_new_shared): not allocated, not
 * initialised. */
static SimclrModel *
model_create (const SimclrModelConfig *cfg, uint64_t seed, int with_memory,
    SimclrModel *owner, SimclrError *err)
{
  if (simclr_model_config_validate (cfg, err) != SIMCLR_OK)
    return NULL;
  SimclrModel *m = calloc (1, sizeof *m);
  if (!m) {
    simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "model: out of memory");
    return NULL;
  }
  m->cfg = *cfg;
  if (m->cfg.threads == 0)
    m->cfg.threads = 1;
  m->nbt = &m->num_batches_tracked;
  if (owner) {
    m->owner = owner;
    m->params = owner->params;
    m->grads = owner->grads;
    m->buffers = owner->buffers;
    m->nbt = owner->nbt;
  }
  build (m);
  if (owner && !m->alloc_failed && (m->n_params != owner->n_params
          || m->n_buffers != owner->n_buffers
          || m->n_tensors != owner->n_tensors)) {
    /* Cannot happen for configurations that passed the check in
     * simclr_model_new_shared; kept so a future layer that depends on the
     * input size fails here rather than corrupting memory. */
    simclr_error_set_field (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "model.image_size", NULL, "shared model at %d pixels: %zu "
        "parameters, its owner at %d pixels %zu: the tensors depend on the "
        "input size", cfg->image_size, m->n_params, owner->cfg.image_size,
        owner->n_params);
    simclr_model_free (m);
    return NULL;
  }
  if (!m->alloc_failed && with_memory)
    allocate (m);
  if (m->alloc_failed) {
    simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "model %s width %g max_batch %d: out of memory (activations %zu "
        "floats per buffer)", simclr_arch_to_string (cfg->arch), cfg->width,
        cfg->max_batch, m->max_act);
    simclr_model_free (m);
    return NULL;
  }
  if (with_memory && !owner)
    initialise (m, seed);
  return m;
}

SimclrModel *
simclr_model_new (const SimclrModelConfig *cfg, uint64_t seed, SimclrError *err)
{
  return model_create (cfg, seed, 1, NULL, err);
}

SimclrModel *
simclr_model_layout_new (const SimclrModelConfig *cfg, SimclrError *err)
{
  return model_create (cfg, 0, 0, NULL, err);
}

SimclrModel *
simclr_model_new_shared (const SimclrModelConfig *cfg, SimclrModel *owner,
    SimclrError *err)
{
  const SimclrStatus E = SIMCLR_ERROR_INVALID_ARGUMENT;
  if (!cfg || !owner) {
    simclr_error_set (err, E, "shared model: NULL config or owner");
    return NULL;
  }
  if (owner->owner) {
    simclr_error_set (err, E, "shared model: the owner itself borrows its "
        "parameters: share the model that owns them");
    return NULL;
  }
  if (!owner->params) {
    simclr_error_set (err, E, "shared model: the owner is a layout without "
        "memory");
    return NULL;
  }
  const SimclrModelConfig *o = &owner->cfg;
  const char *field = NULL;
  if (cfg->arch != o->arch)
    field = "model.arch";
  else if (cfg->width != o->width)
    field = "model.width";
  else if (cfg->in_channels != o->in_channels)
    field = "model.in_channels";
  else if (cfg->stem != o->stem)
    field = "model.stem";
  else if (cfg->proj_layers != o->proj_layers)
    field = "model.proj_layers";
  else if (cfg->proj_hidden != o->proj_hidden)
    field = "model.proj_hidden";
  else if (cfg->proj_layers && cfg->proj_dim != o->proj_dim)
    field = "model.proj_dim";
  else if (cfg->bn_momentum != o->bn_momentum)
    field = "model.bn_momentum";
  else if (cfg->bn_eps != o->bn_eps)
    field = "model.bn_eps";
  if (field) {
    simclr_error_set_field (err, E, field, NULL, "shared model: %s differs "
        "from its owner's (only image_size, max_batch and threads may)",
        field);
    return NULL;
  }
  return model_create (cfg, 0, 1, owner, err);
}

const SimclrModel *
simclr_model_get_owner (const SimclrModel *m)
{
  return m->owner;
}

void
simclr_model_free (SimclrModel *m)
{
  if (!m)
    return;
  for (int i = 0; i < m->n_allocs; i++)
    free (m->allocs[i]);
  free (m->allocs);
  free (m->tensors);
  free (m);
}

/* ------------------------------------------------------------------------ */
/* accessors */

const SimclrModelConfig *
simclr_model_get_config (const SimclrModel *m)
{
  return &m->cfg;
}

int
simclr_model_feature_dim (const SimclrModel *m)
{
  return m->d;
}

int
simclr_model_output_dim (const SimclrModel *m)
{
  return m->out_dim;
}

float *
simclr_model_params (SimclrModel *m, size_t *n)
{
  if (n)
    *n = m->n_params;
  return m->params;
}

float *
simclr_model_grads (SimclrModel *m, size_t *n)
{
  if (n)
    *n = m->n_params;
  return m->grads;
}

float *
simclr_model_buffers (SimclrModel *m, size_t *n)
{
  if (n)
    *n = m->n_buffers;
  return m->buffers;
}

int64_t
simclr_model_num_batches_tracked (const SimclrModel *m)
{
  return *m->nbt;
}

void
simclr_model_set_num_batches_tracked (SimclrModel *m, int64_t n)
{
  *m->nbt = n;
}

int
simclr_model_n_tensors (const SimclrModel *m)
{
  return m->n_tensors;
}

const SimclrTensorInfo *
simclr_model_tensor (const SimclrModel *m, int i)
{
  if (i < 0 || i >= m->n_tensors)
    return NULL;
  return &m->tensors[i];
}

int
simclr_model_find_tensor (const SimclrModel *m, const char *name)
{
  for (int i = 0; i < m->n_tensors; i++)
    if (strcmp (m->tensors[i].name, name) == 0)
      return i;
  return -1;
}

void
simclr_model_set_allreduce (SimclrModel *m, SimclrAllreduceFn fn, void *user)
{
  m->allreduce = fn;
  m->allreduce_user = user;
}

void
simclr_model_zero_grad (SimclrModel *m)
{
  memset (m->grads, 0, m->n_params * sizeof (float));
}

/* ------------------------------------------------------------------------ */
/* forward */

/* The elementwise passes below run over blocks of RELU_VEC floats with a
 * constant trip count so GCC's -O2 vectoriser (very-cheap cost model) turns
 * them into compare + blend; the plain loops stayed scalar and branchy, and
 * a branch on a ReLU mask mispredicts about half the time: they took a
 * quarter of a training step. */
#define RELU_VEC 8

/* x (n) = max (x, 0) in place. */
static void
relu_inplace (float *x, size_t n)
{
  size_t i = 0;
  for (; i + RELU_VEC <= n; i += RELU_VEC) {
    float t[RELU_VEC];
    for (int j = 0; j < RELU_VEC; j++)
      t[j] = x[i + j] > 0.0f ? x[i + j] : 0.0f;
    for (int j = 0; j < RELU_VEC; j++)
      x[i + j] = t[j];
  }
  for (; i < n; i++)
    x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* dx (n) is masked in place by the ReLU output y: dx = y > 0 ? dx : 0.
 * Both operands are loaded unconditionally into temporaries, so the select
 * is branch-free. */
static void
relu_mask_inplace (float *restrict dx, const float *restrict y, size_t n)
{
  size_t i = 0;
  for (; i + RELU_VEC <= n; i += RELU_VEC) {
    float d[RELU_VEC], t[RELU_VEC];
    for (int j = 0; j < RELU_VEC; j++)
      d[j] = dx[i + j];
    for (int j = 0; j < RELU_VEC; j++)
      t[j] = y[i + j] > 0.0f ? d[j] : 0.0f;
    for (int j = 0; j < RELU_VEC; j++)
      dx[i + j] = t[j];
  }
  for (; i < n; i++)
    dx[i] = y[i] > 0.0f ? dx[i] : 0.0f;
}

/* dx (n) = y > 0 ? dx : 0 in place, and with copy also into copy (n):
 * the ReLU after a block's residual sum, whose gradient both the main
 * path and the identity shortcut take. Split over up to @threads threads
 * (elementwise: the same result on any count); one pass reads dx and y
 * once where a mask pass then a copy read dx twice. */
typedef struct {
  float *dx, *copy;
  const float *y;
  size_t n;
  int tasks;
} MaskJob;

/* Floats a mask task must have to be worth a thread (as batch norm's). */
#define MASK_MIN_TASK_FLOATS (128 * 1024)
#define MASK_BLOCK 2048

static void
mask_task (void *ctx, int task)
{
  MaskJob *j = ctx;
  /* ranges in whole RELU_VEC blocks, the tail to the last task */
  size_t blocks = j->n / RELU_VEC;
  size_t i0 = blocks * task / j->tasks * RELU_VEC;
  size_t i1 = task == j->tasks - 1 ? j->n :
      blocks * (task + 1) / j->tasks * RELU_VEC;
  /* blocks of a few KiB: masked, then copied while still in L1 */
  for (size_t b0 = i0; b0 < i1; b0 += MASK_BLOCK) {
    size_t n = i1 - b0 < MASK_BLOCK ? i1 - b0 : MASK_BLOCK;
    relu_mask_inplace (j->dx + b0, j->y + b0, n);
    if (j->copy)
      memcpy (j->copy + b0, j->dx + b0, n * sizeof (float));
  }
}

static void
relu_mask_copy (float *dx, float *copy, const float *y, size_t n,
    int threads)
{
  MaskJob j = { dx, copy, y, n, threads };
  if ((double) j.tasks > (double) n / MASK_MIN_TASK_FLOATS)
    j.tasks = (int) (n / MASK_MIN_TASK_FLOATS);
  if (j.tasks > SIMCLR_MAX_THREADS)
    j.tasks = SIMCLR_MAX_THREADS;
  if (j.tasks <= 1) {
    j.tasks = 1;
    mask_task (&j, 0);
  } else {
    simclr_parallel_for (j.tasks, mask_task, &j);
  }
}

/* ------------------------------------------------------------------------ */
/* profile (bench-train --profile): 0 and no clock read without one */

void
simclr_model_set_profile (SimclrModel *m, SimclrProfile *p)
{
  m->profile = p;
}

static double
prof_now (const SimclrModel *m)
{
  if (!m->profile)
    return 0.0;
  struct timespec ts;
  clock_gettime (m->profile->cpu_time ? CLOCK_PROCESS_CPUTIME_ID :
      CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Adds the time since t0 (and a conv pass's FLOPs) to @u's kind. */
static void
prof_add (SimclrModel *m, const Unit *u, const SimclrConvShape *cs,
    SimclrProfileKind kind, double t0)
{
  SimclrProfile *p = m->profile;
  if (!p)
    return;
  double dt = prof_now (m) - t0;
  double flops = kind == SIMCLR_PROFILE_BN ? 0.0 :
      2.0 * cs->B * cs->OH * cs->OW * cs->OC * cs->KH * cs->KW * cs->C;
  p->seconds[kind] += dt;
  p->flops[kind] += flops;
  if (u->id < SIMCLR_PROFILE_MAX_UNITS) {
    SimclrProfileUnit *pu = &p->unit[u->id];
    pu->name = m->tensors[u->conv].name;
    if (kind != SIMCLR_PROFILE_BN)
      pu->shape = *cs;
    pu->seconds[kind] += dt;
    pu->flops[kind] += flops;
    if (u->id >= p->n_units)
      p->n_units = u->id + 1;
  }
}

static size_t
unit_out_numel (const Unit *u, int B)
{
  return (size_t) B * u->cs.OH * u->cs.OW * u->cs.OC;
}

/* inp (B,H,W,C) -> u->a (B,OH,OW,OC) -> u->b (same) = BN (u->a),
 * rectified if the unit has a ReLU; with a residual (the block's shortcut,
 * same shape) u->b = relu (BN (u->a) + residual): batch norm, the sum and
 * the ReLU in one pass. Training with res_unit (a downsampling shortcut
 * that ran unit_forward_stats): the residual is BN (res_unit->a), made in
 * the same pass (residual is then only non-NULL, for the ReLU). */
static void
unit_forward (SimclrModel *m, Unit *u, const float *inp, int B, int train,
    const float *residual, const Unit *res_unit)
{
  SimclrConvShape cs = u->cs;
  cs.B = B;
  size_t M = (size_t) B * cs.OH * cs.OW;
  int relu = u->relu || residual;
  double t0 = prof_now (m);
  if (!train) {
    /* eval: batch norm (running statistics), the residual sum and the
     * ReLU run on each chunk of the convolution's output while it is in
     * cache, straight into u->b (same arithmetic as the separate pass) */
    float scale[cs.OC], shift[cs.OC];
    SimclrConvEpilogue ep = { scale, shift, residual, relu };
    simclr_batchnorm_eval_affine (scale, shift, P (m, u->bn),
        P (m, u->bn + 1), BUF (m, u->bn + 2), BUF (m, u->bn + 3), cs.OC,
        (float) m->cfg.bn_eps);
    simclr_conv2d_forward_epilogue (u->b, inp, P (m, u->conv), NULL, &ep,
        &cs, m->conv_scratch);
    prof_add (m, u, &cs, SIMCLR_PROFILE_CONV_FORWARD, t0);
    return;
  }
  simclr_conv2d_forward (u->a, inp, P (m, u->conv), NULL, &cs,
      m->conv_scratch);
  prof_add (m, u, &cs, SIMCLR_PROFILE_CONV_FORWARD, t0);
  t0 = prof_now (m);
  if (res_unit)
    simclr_batchnorm_act_forward_train_bn_residual (u->b, u->mean, u->rstd,
        BUF (m, u->bn + 2), BUF (m, u->bn + 3), u->a, res_unit->a,
        P (m, res_unit->bn), P (m, res_unit->bn + 1), res_unit->mean,
        res_unit->rstd, relu, P (m, u->bn), P (m, u->bn + 1), (int) M, cs.OC,
        (float) m->cfg.bn_momentum, (float) m->cfg.bn_eps, cs.threads,
        m->allreduce, m->allreduce_user);
  else
    simclr_batchnorm_act_forward_train (u->b, u->mean, u->rstd,
        BUF (m, u->bn + 2), BUF (m, u->bn + 3), u->a, residual, relu,
        P (m, u->bn), P (m, u->bn + 1), (int) M, cs.OC,
        (float) m->cfg.bn_momentum, (float) m->cfg.bn_eps, cs.threads,
        m->allreduce, m->allreduce_user);
  prof_add (m, u, &cs, SIMCLR_PROFILE_BN, t0);
}

/* Training forward of a downsampling shortcut: its convolution and batch
 * statistics only; the block's last unit normalises u->a as it adds it
 * (unit_forward's res_unit), so u->b is neither written nor read. */
static void
unit_forward_stats (SimclrModel *m, Unit *u, const float *inp, int B)
{
  SimclrConvShape cs = u->cs;
  cs.B = B;
  size_t M = (size_t) B * cs.OH * cs.OW;
  double t0 = prof_now (m);
  simclr_conv2d_forward (u->a, inp, P (m, u->conv), NULL, &cs,
      m->conv_scratch);
  prof_add (m, u, &cs, SIMCLR_PROFILE_CONV_FORWARD, t0);
  t0 = prof_now (m);
  simclr_batchnorm_stats_train (u->mean, u->rstd, BUF (m, u->bn + 2),
      BUF (m, u->bn + 3), u->a, (int) M, cs.OC, (float) m->cfg.bn_momentum,
      (float) m->cfg.bn_eps, cs.threads, m->allreduce, m->allreduce_user);
  prof_add (m, u, &cs, SIMCLR_PROFILE_BN, t0);
}

/* The forward of both entries: @input (B,H,W,C) float is copied into
 * m->input, or NULL when the frame entry already converted the frames
 * there. */
static SimclrStatus
forward (SimclrModel *m, const float *input, int B, int train, float *h,
    float *z, SimclrError *err)
{
  const SimclrModelConfig *c = &m->cfg;
  if (B < 1 || B > c->max_batch)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "model forward: batch %d out of range [1, max_batch %d]", B,
        c->max_batch);
  /* PyTorch refuses this too: one value per channel has no batch variance
   * (and the unbiased running variance would divide by zero). */
  if (train) {
    long min_rows = (long) B * m->feat_h * m->feat_w;
    if (m->cfg.proj_layers == 3)
      min_rows = B;
    if (min_rows < 2)
      return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "model forward: train mode with batch %d leaves batch norm one "
          "value per channel (final feature map %dx%d); use B >= 2", B,
          m->feat_h, m->feat_w);
  }
  m->cached_B = 0;
  size_t in_n = (size_t) B * c->image_size * c->image_size * c->in_channels;
  if (input)
    memcpy (m->input, input, in_n * sizeof (float));

  unit_forward (m, &m->stem, m->input, B, train, NULL, NULL);
  const float *x = m->stem.b;
  if (m->has_pool) {
    simclr_maxpool_forward (m->pool_out, m->pool_arg, m->stem.b, B,
        m->stem.cs.OH, m->stem.cs.OW, m->stem.cs.OC);
    x = m->pool_out;
  }
  for (int i = 0; i < m->n_blocks; i++) {
    Block *b = &m->blocks[i];
    b->x = x;
    /* the shortcut first, so the last unit can add it as it normalises */
    const float *sc = x;
    const Unit *sc_bn = NULL;   /* training: the shortcut's BN, fused */
    if (b->has_ds && train) {
      unit_forward_stats (m, &b->ds, x, B);
      sc_bn = &b->ds;
    } else if (b->has_ds) {
      unit_forward (m, &b->ds, x, B, train, NULL, NULL);
      sc = b->ds.b;
    }
    /* y = relu (main + shortcut), in the last unit's b. */
    const float *t = x;
    for (int j = 0; j < b->n_units; j++) {
      const int last = j == b->n_units - 1;
      unit_forward (m, &b->u[j], t, B, train, last ? sc : NULL,
          last ? sc_bn : NULL);
      t = b->u[j].b;
    }
    x = t;
  }
  simclr_avgpool_forward (m->h, x, B, m->feat_h * m->feat_w, m->d);

  const float *hx = m->h;
  for (int i = 0; i < m->n_head; i++) {
    HeadLayer *hl = &m->head[i];
    simclr_linear_forward (hl->a, hx, P (m, hl->w),
        hl->b >= 0 ? P (m, hl->b) : NULL, B, hl->in, hl->out);
    float *o = hl->a;
    if (hl->bn >= 0) {
      if (train)
        simclr_batchnorm_forward_train (hl->bo, hl->mean, hl->rstd,
            BUF (m, hl->bn + 2), BUF (m, hl->bn + 3), hl->a, P (m, hl->bn),
            P (m, hl->bn + 1), B, hl->out, (float) c->bn_momentum,
            (float) c->bn_eps, m->allreduce, m->allreduce_user);
      else
        simclr_batchnorm_forward_eval (hl->bo, hl->a, P (m, hl->bn),
            P (m, hl->bn + 1), BUF (m, hl->bn + 2), BUF (m, hl->bn + 3), B,
            hl->out, (float) c->bn_eps);
      o = hl->bo;
    }
    if (hl->relu)
      relu_inplace (o, (size_t) B * hl->out);
    hx = o;
  }
  if (h)
    memcpy (h, m->h, (size_t) B * m->d * sizeof (float));
  if (z)
    memcpy (z, hx, (size_t) B * m->out_dim * sizeof (float));
  if (train) {
    m->cached_B = B;
    (*m->nbt)++;
  }
  return SIMCLR_OK;
}

SimclrStatus
simclr_model_forward (SimclrModel *m, const float *input, int B, int train,
    float *h, float *z, SimclrError *err)
{
  if (!input)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "model forward: input is NULL");
  return forward (m, input, B, train, h, z, err);
}

SimclrStatus
simclr_model_forward_frames (SimclrModel *m, const SimclrFrame *frames,
    int B, int channels, int train, float *h, float *z, SimclrError *err)
{
  const SimclrModelConfig *c = &m->cfg;
  const size_t pixels = (size_t) c->image_size * c->image_size
      * c->in_channels;
  if (channels != c->in_channels)
    return simclr_error_set (err, SIMCLR_ERROR_MISMATCH,
        "model forward: frames of %d channel(s) for a model of %d",
        channels, c->in_channels);
  if (B < 1 || B > c->max_batch)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "model forward: batch %d out of range [1, max_batch %d]", B,
        c->max_batch);
  SimclrStatus s = simclr_frames_check (frames, B, c->image_size, channels,
      err);
  if (s != SIMCLR_OK)
    return s;
  /* The one conversion: each frame straight into the input buffer. */
  for (int b = 0; b < B; b++)
    simclr_frame_to_input (m->input + (size_t) b * pixels, &frames[b],
        c->image_size, c->image_size, channels);
  return forward (m, NULL, B, train, h, z, err);
}

/* ------------------------------------------------------------------------ */
/* backward */

/* dout (B,OH,OW,OC) = gradient wrt u->b: for a unit with a ReLU the
 * gradient wrt its output, masked here in the batch-norm pass; for a
 * block's last unit (ReLU after the residual sum) already masked by the
 * caller. Uses @tmp for the gradient wrt u->a; ACCUMULATES into the
 * parameter gradients and, with accumulate, into dinp (may be NULL);
 * without, writes dinp (its first term: no zeroing pass). */
static void
unit_backward_masked (SimclrModel *m, Unit *u, float *dinp, int accumulate,
    const float *dout, float *dmask, float *tmp, const float *inp, int B)
{
  SimclrConvShape cs = u->cs;
  cs.B = B;
  size_t M = (size_t) B * cs.OH * cs.OW;
  double t0 = prof_now (m);
  /* tmp is written, not accumulated */
  if (dmask)
    simclr_batchnorm_residual_relu_backward (tmp, dmask, G (m, u->bn),
        G (m, u->bn + 1), dout, u->b, u->a, P (m, u->bn), u->mean, u->rstd,
        0, (int) M, cs.OC, cs.threads, m->allreduce, m->allreduce_user);
  else
    simclr_batchnorm_act_backward (tmp, G (m, u->bn), G (m, u->bn + 1), dout,
        u->a, P (m, u->bn), P (m, u->bn + 1), u->mean, u->rstd, u->relu, 0,
        (int) M, cs.OC, cs.threads, m->allreduce, m->allreduce_user);
  prof_add (m, u, &cs, SIMCLR_PROFILE_BN, t0);
  t0 = prof_now (m);
  simclr_conv2d_backward_weight (G (m, u->conv), NULL, tmp, inp, &cs,
      m->conv_scratch);
  prof_add (m, u, &cs, SIMCLR_PROFILE_CONV_DWEIGHT, t0);
  if (dinp) {
    t0 = prof_now (m);
    if (accumulate)
      simclr_conv2d_backward_input (dinp, tmp, P (m, u->conv), &cs,
          m->conv_scratch);
    else
      simclr_conv2d_backward_input_set (dinp, tmp, P (m, u->conv), &cs,
          m->conv_scratch);
    prof_add (m, u, &cs, SIMCLR_PROFILE_CONV_DINPUT, t0);
  }
}

static void
unit_backward (SimclrModel *m, Unit *u, float *dinp, int accumulate,
    const float *dout, float *tmp, const float *inp, int B)
{
  unit_backward_masked (m, u, dinp, accumulate, dout, NULL, tmp, inp, B);
}

SimclrStatus
simclr_model_backward_input (SimclrModel *m, const float *dz, float *dinput,
    SimclrError *err)
{
  int B = m->cached_B;
  if (!B)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "model backward: no train forward to differentiate (call "
        "simclr_model_forward with train=1 first)");
  if (!dz)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "model backward: dz is NULL");

  /* Head, from the top: dcur is the gradient wrt the layer's output. */
  float *dcur = m->hg[0], *dother = m->hg[1];
  memcpy (dcur, dz, (size_t) B * m->out_dim * sizeof (float));
  float *dh = m->hg[0];
  if (m->n_head) {
    for (int i = m->n_head - 1; i >= 0; i--) {
      HeadLayer *hl = &m->head[i];
      size_t n = (size_t) B * hl->out;
      if (hl->relu)
        relu_mask_inplace (dcur, hl->bn >= 0 ? hl->bo : hl->a, n);
      if (hl->bn >= 0) {
        memset (dother, 0, n * sizeof (float));
        simclr_batchnorm_backward (dother, G (m, hl->bn), G (m, hl->bn + 1),
            dcur, hl->a, P (m, hl->bn), hl->mean, hl->rstd, B, hl->out,
            m->allreduce, m->allreduce_user);
        float *t = dcur;
        dcur = dother;
        dother = t;
      }
      const float *inp = i > 0 ? (m->head[i - 1].bn >= 0 ? m->head[i - 1].bo
          : m->head[i - 1].a) : m->h;
      memset (dother, 0, (size_t) B * hl->in * sizeof (float));
      simclr_linear_backward (dother, G (m, hl->w),
          hl->b >= 0 ? G (m, hl->b) : NULL, dcur, inp, P (m, hl->w), B,
          hl->in, hl->out);
      float *t = dcur;
      dcur = dother;
      dother = t;
    }
    dh = dcur;
  }

  /* Average pool: A = dy of the last block. */
  float *A = m->g[0], *D = m->g[1], *T = m->g[2], *N = m->g[3];
  Block *lastb = &m->blocks[m->n_blocks - 1];
  size_t nf = unit_out_numel (&lastb->u[lastb->n_units - 1], B);
  memset (A, 0, nf * sizeof (float));
  simclr_avgpool_backward (A, dh, B, m->feat_h * m->feat_w, m->d);

  /* Blocks, last first. A holds dy; dx is accumulated in D (shortcut first,
   * then the main path), T is BN's scratch, N and A alternate as the
   * gradients between main-path units. */
  for (int i = m->n_blocks - 1; i >= 0; i--) {
    Block *b = &m->blocks[i];
    Unit *last = &b->u[b->n_units - 1];
    /* dy masked by the block's ReLU. With more than one unit the mask
     * runs inside the last unit's batch-norm pass, which stores the
     * masked gradient where the shortcut takes it: into D for an identity
     * shortcut (its dx), back into A for a downsampling one, whose
     * backward then runs and writes D before unit 0 adds to it. With one
     * unit (whose backward adds to D at once) a pass of its own masks it
     * first. No zeroing passes either way. */
    const int fused = b->n_units > 1;
    float *dmask = b->has_ds ? A : D;
    if (!fused) {
      double t0 = prof_now (m);
      relu_mask_copy (A, b->has_ds ? NULL : D, last->b,
          unit_out_numel (last, B), last->cs.threads);
      prof_add (m, last, &last->cs, SIMCLR_PROFILE_BN, t0);
      if (b->has_ds)
        unit_backward (m, &b->ds, D, 0, A, T, b->x, B);
    }
    /* A two-unit block whose unit 0 is a 3x3 stride-2 convolution and
     * whose shortcut a 1x1 stride-2 one: where a kernel set takes the
     * pair, the two input gradients of x are written in one pass
     * (simclr_conv2d_backward_input_s2_shortcut) instead of the shortcut
     * writing D and unit 0 adding to it, two passes over the largest
     * tensor of the block. The shortcut's dout then waits in T while unit
     * 0's goes to the spare buffer; the pass counts as unit 0's input
     * gradient in the profile. */
    SimclrConvShape cs0 = b->u[0].cs, csd = b->ds.cs;
    cs0.B = csd.B = B;
    const int pair = fused && b->has_ds && b->n_units == 2 &&
        simclr_conv2d_s2_shortcut_fusable (&cs0, &csd);
    float *cur = A, *spare = N;
    for (int j = b->n_units - 1; j >= 0; j--) {
      Unit *u = &b->u[j];
      if (j > 0) {
        float *nxt = spare;
        /* nxt: the gradient wrt unit j-1's ReLU output (masked by
         * unit_backward of j-1), written */
        unit_backward_masked (m, u, nxt, 0, cur,
            fused && j == b->n_units - 1 ? dmask : NULL, T, b->u[j - 1].b,
            B);
        if (fused && j == b->n_units - 1 && b->has_ds)
          unit_backward (m, &b->ds, pair ? NULL : D, 0, A, T, b->x, B);
        spare = cur;
        cur = nxt;
      } else if (pair) {
        unit_backward (m, u, NULL, 0, cur, spare, b->x, B);
        double t0 = prof_now (m);
        simclr_conv2d_backward_input_s2_shortcut (D, spare, P (m, u->conv),
            &cs0, T, P (m, b->ds.conv), &csd, m->conv_scratch);
        prof_add (m, u, &cs0, SIMCLR_PROFILE_CONV_DINPUT, t0);
      } else {
        unit_backward (m, u, D, 1, cur, T, b->x, B);
      }
    }
    /* dx becomes the next dy. */
    float *t = A;
    A = D;
    D = t;
  }

  /* Stem: A = gradient wrt the stem output (after the max-pool if any),
   * masked by its ReLU in unit_backward. */
  if (m->has_pool) {
    memset (N, 0, unit_out_numel (&m->stem, B) * sizeof (float));
    simclr_maxpool_backward (N, A, m->pool_arg, B, m->pool_h, m->pool_w,
        m->stem.cs.OC);
    A = N;
  }
  unit_backward (m, &m->stem, dinput, 1, A, T, m->input, B);
  return SIMCLR_OK;
}

SimclrStatus
simclr_model_backward (SimclrModel *m, const float *dz, SimclrError *err)
{
  return simclr_model_backward_input (m, dz, NULL, err);
}
