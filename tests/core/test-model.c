/* test-model.c: the ResNet + head model.
 *
 * - Parameter table vs torchvision: names, order and shapes of resnet18/34/50
 *   at width 1 (tests/data/resnet-state-dict.txt, written by the committed
 *   make-resnet-names.py) and the parameter counts (11,176,512 for resnet18
 *   without fc, ...).
 * - Whole-chain gradient check: narrow ResNet-18 (CIFAR stem, 2-layer head)
 *   and ResNet-50 (ImageNet stem with max-pool, 3-layer head with BN1d),
 *   NT-Xent on top. The analytic gradients (model backward from the
 *   library's NT-Xent gradient) are compared with central differences of a
 *   double-precision NT-Xent of the float forward, for a sample of
 *   parameters from every kind of layer and for input pixels (fd-check.c:
 *   the scheme and the bounds). A probe whose differences disagree at
 *   every step (a ReLU kink or max-pool switch inside the step) is skipped;
 *   at most half of the probes may be.
 * - Eval vs train mode, batch limits, error paths.
 * - Every buffer of a model (owned or shared) starts on a 64-byte boundary.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "cpu-level.h"
#include "fd-check.h"
#include "loss-ref.h"

#include "simclr/model.h"
#include "simclr/ntxent.h"
#include "simclr/rng.h"

#ifndef SIMCLR_TEST_DATA
#define SIMCLR_TEST_DATA "tests/data"
#endif

/* ------------------------------------------------------------------------ */
/* torchvision names */

static void
test_torchvision_table (gconstpointer data)
{
  const char *arch_name = data;
  SimclrModelConfig cfg;
  simclr_model_config_default (&cfg);
  cfg.arch = (SimclrArch) simclr_arch_from_string (arch_name);
  cfg.stem = SIMCLR_STEM_IMAGENET;
  cfg.image_size = 32;
  cfg.max_batch = 1;
  cfg.proj_layers = 0;
  SimclrError err = { 0 };
  SimclrModel *m = simclr_model_new (&cfg, 1, &err);
  g_assert_nonnull (m);

  char *path = g_build_filename (SIMCLR_TEST_DATA, "resnet-state-dict.txt",
      NULL);
  char *text = NULL;
  g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
  char **lines = g_strsplit (text, "\n", -1);
  int k = 0;
  long long want_params = -1;
  for (char **l = lines; *l; l++) {
    char a[32], name[128], dims[64];
    long long total, nofc;
    if (sscanf (*l, "# %31s params %lld, without fc %lld", a, &total,
            &nofc) == 3 && strcmp (a, arch_name) == 0)
      want_params = nofc;
    if (**l == '#' || sscanf (*l, "%31s %127s %63s", a, name, dims) != 3
        || strcmp (a, arch_name) != 0)
      continue;
    const SimclrTensorInfo *t = simclr_model_tensor (m, k);
    if (!t || strcmp (t->name, name) != 0)
      g_error ("%s tensor %d: torchvision has %s, we have %s", arch_name, k,
          name, t ? t->name : "(end)");
    char ours[64] = "-";
    int o = 0;
    for (int d = 0; d < t->ndim; d++)
      o += snprintf (ours + o, sizeof ours - o, "%s%lld", d ? "," : "",
          (long long) t->shape[d]);
    if (strcmp (ours, dims) != 0)
      g_error ("%s %s: torchvision shape %s, ours %s", arch_name, name, dims,
          ours);
    g_assert_cmpint (simclr_model_find_tensor (m, name), ==, k);
    k++;
  }
  g_assert_cmpint (k, ==, simclr_model_n_tensors (m));
  size_t np;
  simclr_model_params (m, &np);
  g_assert_cmpint (want_params, >, 0);
  g_assert_cmpint ((long long) np, ==, want_params);
  if (strcmp (arch_name, "resnet18") == 0)
    g_assert_cmpint (np, ==, 11176512);
  g_assert_cmpint (simclr_model_feature_dim (m), ==,
      strcmp (arch_name, "resnet50") == 0 ? 2048 : 512);
  g_strfreev (lines);
  g_free (text);
  g_free (path);
  simclr_model_free (m);
}

static void
test_width_and_head (void)
{
  /* The peer's widths: max(1, int(round(c * w))); head names and counts. */
  SimclrModelConfig cfg;
  simclr_model_config_default (&cfg);
  cfg.width = 0.25;
  cfg.in_channels = 1;
  cfg.image_size = 8;
  cfg.max_batch = 2;
  cfg.proj_layers = 2;
  cfg.proj_dim = 128;
  SimclrModel *m = simclr_model_new (&cfg, 1, NULL);
  g_assert_nonnull (m);
  g_assert_cmpint (simclr_model_feature_dim (m), ==, 128);
  g_assert_cmpint (simclr_model_output_dim (m), ==, 128);
  const SimclrTensorInfo *t = simclr_model_tensor (m,
      simclr_model_find_tensor (m, "conv1.weight"));
  g_assert_cmpint (t->shape[0], ==, 16);
  g_assert_cmpint (t->shape[1], ==, 1);
  g_assert_cmpint (t->shape[2], ==, 3);
  g_assert_true (t->ohwi && t->adapt);
  t = simclr_model_tensor (m, simclr_model_find_tensor (m, "head.2.weight"));
  g_assert_cmpint (t->shape[0], ==, 128);
  g_assert_cmpint (t->shape[1], ==, 128);
  t = simclr_model_tensor (m, simclr_model_find_tensor (m, "head.0.bias"));
  g_assert_true (t && !t->adapt);
  t = simclr_model_tensor (m, simclr_model_find_tensor (m, "bn1.weight"));
  g_assert_true (t && !t->adapt && t->storage == SIMCLR_TENSOR_PARAM);
  t = simclr_model_tensor (m, simclr_model_find_tensor (m,
          "layer2.0.downsample.1.running_var"));
  g_assert_true (t && t->storage == SIMCLR_TENSOR_BUFFER);
  g_assert_cmpint (simclr_model_find_tensor (m, "fc.weight"), ==, -1);
  /* Init: BN gamma 1, running var 1, Linear within +-1/sqrt(in). */
  size_t np;
  float *p = simclr_model_params (m, &np);
  float *bufs = simclr_model_buffers (m, NULL);
  t = simclr_model_tensor (m, simclr_model_find_tensor (m, "layer1.0.bn2.weight"));
  g_assert_cmpfloat (p[t->offset], ==, 1.0f);
  t = simclr_model_tensor (m, simclr_model_find_tensor (m, "bn1.running_var"));
  g_assert_cmpfloat (bufs[t->offset], ==, 1.0f);
  t = simclr_model_tensor (m, simclr_model_find_tensor (m, "head.0.weight"));
  double bound = 1.0 / sqrt (128.0), mx = 0;
  for (size_t i = 0; i < t->numel; i++)
    mx = fmax (mx, fabs (p[t->offset + i]));
  g_assert_cmpfloat (mx, <=, bound);
  g_assert_cmpfloat (mx, >, 0.9 * bound);
  /* Kaiming fan_out: std sqrt(2 / (OC*9)) for layer3.0.conv2 (64 out). */
  t = simclr_model_tensor (m, simclr_model_find_tensor (m, "layer3.0.conv2.weight"));
  double ss = 0;
  for (size_t i = 0; i < t->numel; i++)
    ss += (double) p[t->offset + i] * p[t->offset + i];
  double sd = sqrt (ss / t->numel), want = sqrt (2.0 / (64 * 9));
  g_assert_cmpfloat (fabs (sd / want - 1), <, 0.05);
  simclr_model_free (m);

  /* zero_init_residual; 3-layer head names. */
  cfg.zero_init_residual = 1;
  cfg.proj_layers = 3;
  cfg.proj_hidden = 32;
  cfg.arch = SIMCLR_ARCH_RESNET50;
  cfg.width = 0.0625;
  m = simclr_model_new (&cfg, 1, NULL);
  g_assert_nonnull (m);
  p = simclr_model_params (m, NULL);
  t = simclr_model_tensor (m, simclr_model_find_tensor (m, "layer1.0.bn3.weight"));
  g_assert_cmpfloat (p[t->offset], ==, 0.0f);
  t = simclr_model_tensor (m, simclr_model_find_tensor (m, "layer1.0.bn2.weight"));
  g_assert_cmpfloat (p[t->offset], ==, 1.0f);
  const char *names[] = { "head.0.weight", "head.1.weight", "head.1.bias",
    "head.1.running_mean", "head.3.weight", "head.4.num_batches_tracked",
    "head.6.weight", "head.6.bias" };
  for (unsigned i = 0; i < G_N_ELEMENTS (names); i++)
    g_assert_cmpint (simclr_model_find_tensor (m, names[i]), >=, 0);
  g_assert_cmpint (simclr_model_find_tensor (m, "head.0.bias"), ==, -1);
  g_assert_cmpint (simclr_model_feature_dim (m), ==, 128);
  simclr_model_free (m);
}

/* ------------------------------------------------------------------------ */
/* gradient check */

/* NT-Xent in double of the float rows, positives i <-> i +- R/2 (the
 * reference of the FD, loss-ref.h). */
static double
ntxent_double (const float *z, int R, int D, double tau)
{
  double *zd = g_new (double, (size_t) R * D);
  for (size_t i = 0; i < (size_t) R * D; i++)
    zd[i] = z[i];
  double loss = loss_ref_ntxent (zd, R, D, tau, NULL, NULL, NULL, 0);
  g_free (zd);
  return loss;
}

typedef struct {
  const char *label;
  SimclrArch arch;
  SimclrStem stem;
  double width;
  int in_channels, image_size, B, proj_layers, proj_hidden, proj_dim;
  const char *const *probe_tensors;
} GradCase;

static const char *const probes18[] = { "conv1.weight", "bn1.weight",
  "bn1.bias", "layer1.0.conv1.weight", "layer1.1.bn2.weight",
  "layer2.0.conv1.weight", "layer2.0.downsample.0.weight",
  "layer2.0.downsample.1.weight", "layer3.1.conv2.weight", "layer3.1.bn1.bias",
  "layer4.0.conv2.weight", "layer4.1.bn2.weight", "layer4.1.bn2.bias",
  "head.0.weight", "head.0.bias", "head.2.weight", "head.2.bias", NULL };

static const char *const probes50[] = { "conv1.weight", "bn1.bias",
  "layer1.0.conv1.weight", "layer1.0.conv3.weight", "layer1.0.bn3.weight",
  "layer1.0.downsample.0.weight", "layer2.0.conv2.weight",
  "layer3.0.downsample.1.bias", "layer4.2.conv3.weight", "layer4.2.bn3.weight",
  "head.0.weight", "head.1.weight", "head.1.bias", "head.3.weight",
  "head.4.weight", "head.6.weight", "head.6.bias", NULL };

static const GradCase grad_cases[] = {
  { "resnet18-cifar-v1", SIMCLR_ARCH_RESNET18, SIMCLR_STEM_CIFAR, 0.125, 3,
    8, 8, 2, 16, 8, probes18 },
  { "resnet50-imagenet-v2", SIMCLR_ARCH_RESNET50, SIMCLR_STEM_IMAGENET,
    0.125, 1, 16, 8, 3, 16, 8, probes50 },
  /* The stride-2 stem: 12x12 in, 6x6 after conv1, 1x1 at layer4. */
  { "resnet18-stride2-v1", SIMCLR_ARCH_RESNET18, SIMCLR_STEM_STRIDE2, 0.125,
    1, 12, 8, 2, 16, 8, probes18 },
};

#define TAU 0.5
#define EPS_SCALE 1.0

typedef struct {
  SimclrModel *m;
  const float *x;
  int B;
  float *z;
  int D;
} LossCtx;

/* The FD's loss: the float forward, NT-Xent in double. */
static double
eval_loss (void *data)
{
  LossCtx *c = data;
  SimclrError err = { 0 };
  if (simclr_model_forward (c->m, c->x, c->B, 1, NULL, c->z, &err)
      != SIMCLR_OK)
    g_error ("forward: %s", err.message);
  return ntxent_double (c->z, c->B, c->D, TAU);
}

static void
test_gradient_check (gconstpointer data)
{
  const GradCase *c = data;
  SimclrModelConfig cfg;
  simclr_model_config_default (&cfg);
  cfg.arch = c->arch;
  cfg.stem = c->stem;
  cfg.width = c->width;
  cfg.in_channels = c->in_channels;
  cfg.image_size = c->image_size;
  cfg.max_batch = c->B;
  cfg.proj_layers = c->proj_layers;
  cfg.proj_hidden = c->proj_hidden;
  cfg.proj_dim = c->proj_dim;
  SimclrError err = { 0 };
  SimclrModel *m = simclr_model_new (&cfg, 7, &err);
  g_assert_nonnull (m);
  int B = c->B, D = simclr_model_output_dim (m);
  size_t nin = (size_t) B * c->image_size * c->image_size * c->in_channels;
  float *x = g_new (float, nin);
  float *dx = g_new0 (float, nin);
  for (size_t i = 0; i < nin; i++)
    x[i] = simclr_rng_uniform (3, 0, i);
  /* Random BN affine parameters, so gamma/beta gradients are generic. */
  float *p = simclr_model_params (m, NULL);
  for (int i = 0; i < simclr_model_n_tensors (m); i++) {
    const SimclrTensorInfo *t = simclr_model_tensor (m, i);
    /* BN: weight, bias, then the running_mean buffer. */
    const SimclrTensorInfo *n1 = simclr_model_tensor (m, i + 1);
    const SimclrTensorInfo *n2 = simclr_model_tensor (m, i + 2);
    int is_w = n2 && n2->storage == SIMCLR_TENSOR_BUFFER;
    int is_b = n1 && n1->storage == SIMCLR_TENSOR_BUFFER;
    if (t->storage == SIMCLR_TENSOR_PARAM && t->ndim == 1 && (is_w || is_b)) {
      for (size_t k = 0; k < t->numel; k++)
        p[t->offset + k] = is_w ? 0.5f + simclr_rng_uniform (5, i, k)
            : 0.2f * (simclr_rng_uniform (5, i, k) - 0.5f);
    }
  }

  float *z = g_new (float, (size_t) B * D);
  float *dz = g_new (float, (size_t) B * D);
  SimclrNtxent *nt = simclr_ntxent_new (B, D, &err);
  g_assert_nonnull (nt);
  g_assert_cmpint (simclr_model_forward (m, x, B, 1, NULL, z, &err), ==,
      SIMCLR_OK);
  SimclrNtxentResult r;
  g_assert_cmpint (simclr_ntxent_forward (nt, z, B, D, TAU, NULL, &r, &err),
      ==, SIMCLR_OK);
  g_assert_cmpfloat (fabs (r.loss - ntxent_double (z, B, D, TAU)), <, 1e-5);
  simclr_ntxent_backward (nt, dz);
  simclr_model_zero_grad (m);
  g_assert_cmpint (simclr_model_backward_input (m, dz, dx, &err), ==,
      SIMCLR_OK);
  float *g = simclr_model_grads (m, NULL);

  LossCtx lc = { m, x, B, z, D };
  FdStats st = { 0 };
  for (const char *const *name = c->probe_tensors; *name; name++) {
    int ti = simclr_model_find_tensor (m, *name);
    if (ti < 0)
      g_error ("%s: no tensor %s", c->label, *name);
    const SimclrTensorInfo *t = simclr_model_tensor (m, ti);
    for (int k = 0; k < 3; k++) {
      size_t e = simclr_rng_below (11, ti, k, (uint32_t) t->numel);
      char what[160];
      snprintf (what, sizeof what, "%s %s[%zu]", c->label, t->name, e);
      double an = g[t->offset + e];
      double eps = (t->adapt ? 1e-2 : 2e-2) * EPS_SCALE;
      fd_probe (eval_loss, &lc, p + t->offset + e, an, eps, what, &st);
    }
  }
  for (int k = 0; k < 12; k++) {
    size_t e = simclr_rng_below (13, 0, k, (uint32_t) nin);
    char what[160];
    snprintf (what, sizeof what, "%s input[%zu]", c->label, e);
    fd_probe (eval_loss, &lc, x + e, dx[e], 2e-2 * EPS_SCALE, what, &st);
  }
  fd_stats_assert (&st, c->label);

  simclr_ntxent_free (nt);
  g_free (x);
  g_free (dx);
  g_free (z);
  g_free (dz);
  simclr_model_free (m);
}

/* ------------------------------------------------------------------------ */
/* modes and errors */

static void
test_eval_train (void)
{
  SimclrModelConfig cfg;
  simclr_model_config_default (&cfg);
  cfg.width = 0.125;
  cfg.image_size = 8;
  cfg.max_batch = 4;
  cfg.proj_layers = 2;
  cfg.proj_dim = 8;
  SimclrError err = { 0 };
  SimclrModel *m = simclr_model_new (&cfg, 2, &err);
  g_assert_nonnull (m);
  int D = simclr_model_output_dim (m), d = simclr_model_feature_dim (m);
  size_t per = 8 * 8 * 3;
  float *x = g_new (float, 4 * per);
  for (size_t i = 0; i < 4 * per; i++)
    x[i] = simclr_rng_uniform (9, 0, i);
  float z4[4 * 8], z1[8], h4[4 * 64], zt[4 * 8], zt2[4 * 8];
  g_assert_cmpint (d, ==, 64);

  /* Train forward moves the running statistics and the counter. */
  size_t nb;
  float *bufs = simclr_model_buffers (m, &nb);
  float *before = g_memdup2 (bufs, nb * sizeof (float));
  g_assert_cmpint (simclr_model_forward (m, x, 4, 1, h4, zt, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_model_num_batches_tracked (m), ==, 1);
  g_assert_true (memcmp (before, bufs, nb * sizeof (float)) != 0);
  /* Train mode: a row's output depends on the rest of the batch. */
  g_assert_cmpint (simclr_model_forward (m, x, 2, 1, NULL, zt2, &err), ==,
      SIMCLR_OK);
  g_assert_cmpfloat (fabs (zt2[0] - zt[0]), >, 1e-6);

  /* Eval: running statistics, rows independent, no state change. */
  g_free (before);
  before = g_memdup2 (bufs, nb * sizeof (float));
  g_assert_cmpint (simclr_model_forward (m, x, 4, 0, h4, z4, &err), ==,
      SIMCLR_OK);
  for (int i = 0; i < 4; i++) {
    g_assert_cmpint (simclr_model_forward (m, x + i * per, 1, 0, NULL, z1,
            &err), ==, SIMCLR_OK);
    for (int k = 0; k < D; k++)
      g_assert_cmpfloat_with_epsilon (z1[k], z4[i * D + k], 1e-5);
  }
  g_assert_cmpint (memcmp (before, bufs, nb * sizeof (float)), ==, 0);
  g_assert_cmpint (simclr_model_num_batches_tracked (m), ==, 2);
  for (int i = 0; i < 4 * d; i++)
    g_assert_cmpfloat (h4[i], >=, 0.0f);   /* average of ReLU outputs */
  /* Eval leaves no cache for backward. */
  float dz[4 * 8] = { 0 };
  g_assert_cmpint (simclr_model_backward (m, dz, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "train forward"));
  /* One row in train mode: batch norm over 1 value per channel (layer4 is
   * 1x1 here) is refused, as PyTorch does; eval mode is fine. */
  g_assert_cmpint (simclr_model_forward (m, x, 1, 1, NULL, NULL, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "one value per channel"));
  /* Oversized batch. */
  g_assert_cmpint (simclr_model_forward (m, x, 5, 1, NULL, NULL, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "max_batch"));
  g_free (before);
  g_free (x);
  simclr_model_free (m);
}

/* model_alloc aligns every block to 64 bytes (calloc's large blocks start 16
 * bytes past a page boundary); the parameter, gradient and buffer blocks are
 * the ones the API shows. A shared model borrows its owner's, and its
 * training pass must give the owner's result exactly (its own activations
 * are aligned the same way). */
static void
assert_aligned (const void *p, const char *what)
{
  if ((uintptr_t) p % 64 != 0)
    g_error ("%s at %p is not 64-byte aligned (offset %u)", what, p,
        (unsigned) ((uintptr_t) p % 64));
}

static void
test_aligned_buffers (void)
{
  SimclrModelConfig cfg;
  simclr_model_config_default (&cfg);
  cfg.width = 0.25;
  cfg.image_size = 16;
  cfg.max_batch = 6;
  cfg.proj_layers = 2;
  cfg.proj_dim = 8;
  SimclrError err = { 0 };
  /* Several models in a row, so the allocator's placements vary. */
  SimclrModel *m[3];
  for (int r = 0; r < 3; r++) {
    cfg.max_batch = 6 + r;
    m[r] = simclr_model_new (&cfg, 4, &err);
    g_assert_nonnull (m[r]);
    size_t n;
    assert_aligned (simclr_model_params (m[r], &n), "params");
    assert_aligned (simclr_model_grads (m[r], &n), "grads");
    assert_aligned (simclr_model_buffers (m[r], &n), "buffers");
  }
  cfg.max_batch = 4;
  SimclrModel *s = simclr_model_new_shared (&cfg, m[0], &err);
  g_assert_nonnull (s);
  size_t n;
  g_assert_true (simclr_model_params (s, &n) == simclr_model_params (m[0],
          &n));

  /* The shared model's train forward equals the owner's bit for bit. */
  size_t per = 16 * 16 * 3;
  float *x = g_new (float, 4 * per);
  for (size_t i = 0; i < 4 * per; i++)
    x[i] = simclr_rng_uniform (11, 0, i);
  float za[4 * 8], zb[4 * 8];
  g_assert_cmpint (simclr_model_forward (m[0], x, 4, 1, NULL, za, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_model_forward (s, x, 4, 1, NULL, zb, &err), ==,
      SIMCLR_OK);
  for (int i = 0; i < 4 * 8; i++)
    if (memcmp (&za[i], &zb[i], sizeof (float)) != 0)
      g_error ("z[%d]: owner %.9g, shared %.9g", i, za[i], zb[i]);
  g_free (x);
  simclr_model_free (s);
  for (int r = 0; r < 3; r++)
    simclr_model_free (m[r]);
}

static void
test_bad_config (void)
{
  SimclrModelConfig cfg;
  SimclrError err = { 0 };
  simclr_model_config_default (&cfg);
  g_assert_cmpint (simclr_model_config_validate (&cfg, &err), ==, SIMCLR_OK);
  cfg.in_channels = 2;
  g_assert_null (simclr_model_new (&cfg, 0, &err));
  g_assert_nonnull (strstr (err.message, "in_channels"));
  simclr_model_config_default (&cfg);
  cfg.proj_layers = 1;
  g_assert_cmpint (simclr_model_config_validate (&cfg, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  simclr_model_config_default (&cfg);
  cfg.width = 0;
  g_assert_cmpint (simclr_model_config_validate (&cfg, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  simclr_model_config_default (&cfg);
  cfg.stem = SIMCLR_STEM_IMAGENET;
  cfg.image_size = 4;
  g_assert_cmpint (simclr_model_config_validate (&cfg, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  simclr_model_free (NULL);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (cpu_level_unavailable ("model"))
    return g_test_run ();
  g_test_add_data_func ("/model/torchvision-table/resnet18", "resnet18",
      test_torchvision_table);
  g_test_add_data_func ("/model/torchvision-table/resnet34", "resnet34",
      test_torchvision_table);
  g_test_add_data_func ("/model/torchvision-table/resnet50", "resnet50",
      test_torchvision_table);
  g_test_add_func ("/model/width-and-head", test_width_and_head);
  for (unsigned i = 0; i < G_N_ELEMENTS (grad_cases); i++) {
    char *path = g_strdup_printf ("/model/gradient-check/%s",
        grad_cases[i].label);
    g_test_add_data_func (path, &grad_cases[i], test_gradient_check);
    g_free (path);
  }
  g_test_add_func ("/model/eval-train", test_eval_train);
  g_test_add_func ("/model/bad-config", test_bad_config);
  g_test_add_func ("/model/aligned-buffers", test_aligned_buffers);
  return g_test_run ();
}
