/* test-multicrop.c: multi-crop training (issue 11) -- a model sharing
 * another's parameters at another input size (simclr_model_new_shared) and
 * the trainer's mixed-size step (SimclrTrainerConfig.small_views).
 *
 * - the shared model's gradient is the sum of the gradients of two
 *   independent models with equal parameters, its running statistics are
 *   updated by both forwards in order, num_batches_tracked counts both;
 * - the trainer's step equals the two models + SimclrLoss driven by hand
 *   (row order, split of dz, one gradient buffer);
 * - finite differences of the mixed-size loss (a float64 multi-positive
 *   NT-Xent written here) against the trainer's gradient;
 * - a checkpoint resumes a multi-crop run bit for bit;
 * - K = 2 replicas (threads, replica-harness.h) of N equal one trainer of 2N
 *   (in lockstep, within a noise floor measured beside: see test_replicas);
 * - bad configurations fail with the field named;
 * - rows that are not whole samples (or too many) and small frames with
 *   no data or a short stride are refused before either model runs:
 *   weights, running statistics, num_batches_tracked and step unchanged
 *   (the frame arrays are exactly the rows' size, so under
 *   AddressSanitizer a count check that is missing reads past them).
 * The PyTorch cross-check of one mixed-size step is torch-crosscheck.py's
 * multi-crop case (torch-crosscheck-helper multicrop).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "simclr/frame.h"
#include "simclr/loss.h"
#include "simclr/model.h"
#include "simclr/rng.h"
#include "simclr/trainer.h"

#include "fd-check.h"
#include "loss-ref.h"
#include "replica-harness.h"
#include "cpu-private.h"

#define BIG 12
#define SMALL 6
#define V 4                     /* views per sample */
#define KS 2                    /* of which small */
#define TAU 0.5

static void
model_config (SimclrModelConfig *c, int size, int max_batch)
{
  simclr_model_config_default (c);
  c->arch = SIMCLR_ARCH_RESNET18;
  c->width = 0.25;
  c->in_channels = 1;
  c->image_size = size;
  c->max_batch = max_batch;
  c->proj_layers = 3;            /* BN in the head too */
  c->proj_dim = 16;
  c->threads = 1;
}

static void
fill (float *x, size_t n, uint64_t seed)
{
  for (size_t i = 0; i < n; i++)
    x[i] = simclr_rng_uniform (seed, 0, i);
}

static double
max_abs (const float *x, size_t n)
{
  double m = 0;
  for (size_t i = 0; i < n; i++)
    m = fmax (m, fabs (x[i]));
  return m;
}

/* ------------------------------------------------------------------------ */
/* the shared model */

static void
test_shared_equals_sum (void)
{
  SimclrError err = { 0 };
  SimclrModelConfig cb, cs;
  const int B = 6;
  model_config (&cb, BIG, B);
  model_config (&cs, SMALL, B);
  SimclrModel *owner = simclr_model_new (&cb, 5, &err);
  g_assert_nonnull (owner);
  SimclrModel *shared = simclr_model_new_shared (&cs, owner, &err);
  if (!shared)
    g_error ("shared: %s", err.message);
  g_assert_true (simclr_model_get_owner (shared) == owner);
  g_assert_null (simclr_model_get_owner (owner));
  /* independent twins with the same parameters */
  SimclrModel *a = simclr_model_new (&cb, 5, &err);
  SimclrModel *b = simclr_model_new (&cs, 5, &err);
  g_assert_nonnull (a);
  g_assert_nonnull (b);
  size_t np, nb, np2, nb2;
  float *p = simclr_model_params (owner, &np);
  simclr_model_buffers (owner, &nb);
  g_assert_true (simclr_model_params (shared, &np2) == p);
  g_assert_true (simclr_model_grads (shared, NULL)
      == simclr_model_grads (owner, NULL));
  g_assert_true (simclr_model_buffers (shared, &nb2)
      == simclr_model_buffers (owner, NULL));
  g_assert_cmpuint (np2, ==, np);
  g_assert_cmpuint (nb2, ==, nb);
  g_assert_cmpint (memcmp (simclr_model_params (a, NULL), p,
          np * sizeof (float)), ==, 0);
  g_assert_cmpint (memcmp (simclr_model_params (b, NULL), p,
          np * sizeof (float)), ==, 0);
  float *r0 = g_memdup2 (simclr_model_buffers (owner, NULL),
      nb * sizeof (float));

  int D = simclr_model_output_dim (owner);
  size_t nxb = (size_t) B * BIG * BIG, nxs = (size_t) B * SMALL * SMALL;
  float *xb = g_new (float, nxb), *xs = g_new (float, nxs);
  fill (xb, nxb, 1);
  fill (xs, nxs, 2);
  float *z1 = g_new (float, B * D), *z2 = g_new (float, B * D);
  float *za = g_new (float, B * D), *zb = g_new (float, B * D);
  float *dz1 = g_new (float, B * D), *dz2 = g_new (float, B * D);
  fill (dz1, B * D, 3);
  fill (dz2, B * D, 4);
  for (int i = 0; i < B * D; i++) {
    dz1[i] -= 0.5f;
    dz2[i] -= 0.5f;
  }
  g_assert_cmpint (simclr_model_forward (owner, xb, B, 1, NULL, z1, &err),
      ==, SIMCLR_OK);
  g_assert_cmpint (simclr_model_forward (shared, xs, B, 1, NULL, z2, &err),
      ==, SIMCLR_OK);
  g_assert_cmpint (simclr_model_forward (a, xb, B, 1, NULL, za, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_model_forward (b, xs, B, 1, NULL, zb, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (memcmp (z1, za, B * D * sizeof (float)), ==, 0);
  g_assert_cmpint (memcmp (z2, zb, B * D * sizeof (float)), ==, 0);
  /* one batch counted per train forward of either, as PyTorch counts a
   * module run twice per step */
  g_assert_cmpint (simclr_model_num_batches_tracked (owner), ==, 2);
  g_assert_cmpint (simclr_model_num_batches_tracked (shared), ==, 2);
  g_assert_cmpint (simclr_model_num_batches_tracked (a), ==, 1);

  simclr_model_zero_grad (owner);
  g_assert_cmpint (simclr_model_backward (owner, dz1, &err), ==, SIMCLR_OK);
  g_assert_cmpint (simclr_model_backward (shared, dz2, &err), ==, SIMCLR_OK);
  simclr_model_zero_grad (a);
  simclr_model_zero_grad (b);
  g_assert_cmpint (simclr_model_backward (a, dz1, &err), ==, SIMCLR_OK);
  g_assert_cmpint (simclr_model_backward (b, dz2, &err), ==, SIMCLR_OK);
  const float *g = simclr_model_grads (owner, NULL);
  const float *ga = simclr_model_grads (a, NULL);
  const float *gb = simclr_model_grads (b, NULL);
  double scale = fmax (max_abs (ga, np), max_abs (gb, np));
  g_assert_cmpfloat (scale, >, 0);
  for (size_t i = 0; i < np; i++) {
    double want = (double) ga[i] + gb[i];
    if (fabs (g[i] - want) > 1e-5 * scale)
      g_error ("gradient %zu: shared %.9g, sum of the twins' %.9g (%.9g + "
          "%.9g)", i, g[i], want, ga[i], gb[i]);
  }
  /* Running statistics: r = (1-m) r + m batch, owner's batch first, then
   * the shared model's: r2 = (1-m) rA + (rB - (1-m) r0). */
  const float *r2 = simclr_model_buffers (owner, NULL);
  const float *ra = simclr_model_buffers (a, NULL);
  const float *rb = simclr_model_buffers (b, NULL);
  const double m = cb.bn_momentum;
  for (size_t i = 0; i < nb; i++) {
    double want = (1 - m) * ra[i] + (rb[i] - (1 - m) * r0[i]);
    if (fabs (r2[i] - want) > 1e-5 * (1 + fabs (want)))
      g_error ("running statistic %zu: %.9g after both forwards, expected "
          "%.9g", i, r2[i], want);
  }
  /* freeing the shared model leaves the owner's buffers alone */
  simclr_model_free (shared);
  g_assert_cmpint (simclr_model_forward (owner, xb, B, 0, NULL, z1, &err),
      ==, SIMCLR_OK);
  g_assert_cmpint (simclr_model_num_batches_tracked (owner), ==, 2);

  simclr_model_free (owner);
  simclr_model_free (a);
  simclr_model_free (b);
  g_free (r0);
  g_free (xb);
  g_free (xs);
  g_free (z1);
  g_free (z2);
  g_free (za);
  g_free (zb);
  g_free (dz1);
  g_free (dz2);
}

static void
test_shared_refusals (void)
{
  SimclrError err = { 0 };
  SimclrModelConfig cb, cs;
  model_config (&cb, BIG, 4);
  SimclrModel *owner = simclr_model_new (&cb, 1, &err);
  g_assert_nonnull (owner);
  model_config (&cs, SMALL, 4);
  cs.width = 0.5;
  g_assert_null (simclr_model_new_shared (&cs, owner, &err));
  g_assert_cmpstr (err.field, ==, "model.width");
  g_assert_nonnull (strstr (err.message, "model.width"));
  model_config (&cs, SMALL, 4);
  cs.proj_dim = 8;
  g_assert_null (simclr_model_new_shared (&cs, owner, &err));
  g_assert_cmpstr (err.field, ==, "model.proj_dim");
  model_config (&cs, SMALL, 4);
  cs.in_channels = 3;
  g_assert_null (simclr_model_new_shared (&cs, owner, &err));
  g_assert_cmpstr (err.field, ==, "model.in_channels");
  /* a share of a share, a layout */
  model_config (&cs, SMALL, 4);
  SimclrModel *shared = simclr_model_new_shared (&cs, owner, &err);
  g_assert_nonnull (shared);
  g_assert_null (simclr_model_new_shared (&cs, shared, &err));
  g_assert_nonnull (strstr (err.message, "owner"));
  SimclrModel *layout = simclr_model_layout_new (&cb, &err);
  g_assert_nonnull (layout);
  g_assert_null (simclr_model_new_shared (&cs, layout, &err));
  g_assert_null (simclr_model_new_shared (&cs, NULL, &err));
  simclr_model_free (layout);
  simclr_model_free (shared);
  simclr_model_free (owner);
}

/* ------------------------------------------------------------------------ */
/* the trainer's mixed-size step */

static void
trainer_config (SimclrTrainerConfig *cfg, int local_batch, int replicas,
    uint64_t seed)
{
  SimclrError err = { 0 };
  simclr_trainer_config_default (cfg);
  model_config (&cfg->model, BIG, 1);
  cfg->views = V;
  cfg->small_views = KS;
  cfg->small_size = SMALL;
  cfg->temperature = TAU;
  cfg->optim.kind = SIMCLR_OPTIM_SGD;
  cfg->optim.base_lr = 0.05;
  cfg->optim.warmup_steps = 0;
  cfg->optim.total_steps = 100;
  cfg->optim.weight_decay = 1e-4;
  cfg->seed = seed;
  g_assert_cmpint (simclr_trainer_config_set_batch (cfg, local_batch,
          replicas, &err), ==, SIMCLR_OK);
}

/* Bytes of the packed uint8 rows of @n samples. */
static size_t
packed_bytes (int n)
{
  return (size_t) n * ((V - KS) * BIG * BIG + KS * SMALL * SMALL);
}

/* Packed rows of global samples first..first+n-1 at @step: the full-size
 * views (view-major), then the small ones; pixels a pure function of
 * (step, sample, view), a shared structure per sample so views agree. */
static void
views_of (uint8_t *dst, int step, int first, int n)
{
  for (int v = 0; v < V; v++)
    for (int j = 0; j < n; j++) {
      int side = v < V - KS ? BIG : SMALL;
      size_t off = v < V - KS ? (size_t) (v * n + j) * BIG * BIG
          : (size_t) (V - KS) * n * BIG * BIG
          + (size_t) ((v - (V - KS)) * n + j) * SMALL * SMALL;
      uint64_t s = (uint64_t) (first + j);
      uint64_t stream = ((uint64_t) step << 32) | (s << 4) | (uint64_t) v;
      for (int y = 0; y < side; y++)
        for (int x = 0; x < side; x++) {
          /* the sample's pattern at the view's resolution */
          int bi = (y * BIG / side) * BIG + x * BIG / side;
          float base = simclr_rng_uniform (21, s << 4, bi);
          float noise = simclr_rng_uniform (22, stream, y * side + x);
          dst[off + y * side + x] = (uint8_t) (255.0f * (0.7f * base
                  + 0.3f * noise));
        }
    }
}

/* The trainer's step against its two models and a SimclrLoss by hand. */
static void
test_trainer_step_by_hand (void)
{
  SimclrError err = { 0 };
  SimclrTrainerConfig cfg;
  const int n = 3, rows = V * n, full = (V - KS) * n;
  trainer_config (&cfg, n, 1, 9);
  SimclrTrainer *t = simclr_trainer_new (&cfg, &err);
  if (!t)
    g_error ("trainer: %s", err.message);
  g_assert_cmpint (simclr_trainer_local_rows (t), ==, rows);
  g_assert_cmpint (simclr_trainer_full_rows (t, n), ==, full);
  SimclrModel *tm = simclr_trainer_get_model (t);
  SimclrModel *ts = simclr_trainer_get_small_model (t);
  g_assert_nonnull (ts);
  g_assert_cmpint (simclr_model_get_config (ts)->image_size, ==, SMALL);
  g_assert_cmpint (simclr_model_get_config (ts)->max_batch, ==, KS * n);
  g_assert_cmpint (simclr_model_get_config (tm)->max_batch, ==, full);
  g_assert_cmpint (simclr_trainer_get_config (t)->model.max_batch, ==, rows);

  /* the same weights, driven by hand */
  SimclrModelConfig cb, cs;
  model_config (&cb, BIG, full);
  model_config (&cs, SMALL, KS * n);
  SimclrModel *hb = simclr_model_new (&cb, 9, &err);
  SimclrModel *hs = simclr_model_new_shared (&cs, hb, &err);
  g_assert_nonnull (hs);
  size_t np;
  const float *tp = simclr_model_params (tm, &np);
  g_assert_cmpint (memcmp (tp, simclr_model_params (hb, NULL),
          np * sizeof (float)), ==, 0);

  uint8_t *u8 = g_malloc (packed_bytes (n));
  views_of (u8, 0, 0, n);
  size_t nfull = (size_t) full * BIG * BIG, nsmall = (size_t) KS * n * SMALL
      * SMALL;
  float *xb = g_new (float, nfull), *xs = g_new (float, nsmall);
  /* the model's own conversion (frame.h), so z can match bit for bit */
  for (int r = 0; r < rows; r++) {
    SimclrFrame f;
    int side = r < full ? BIG : SMALL;
    const uint8_t *src = r < full ? u8 + (size_t) r * BIG * BIG
        : u8 + nfull + (size_t) (r - full) * SMALL * SMALL;
    float *dst = r < full ? xb + (size_t) r * BIG * BIG
        : xs + (size_t) (r - full) * SMALL * SMALL;
    simclr_frames_packed (&f, src, 1, side, 1);
    simclr_frame_to_input (dst, &f, side, side, 1);
  }
  int D = simclr_model_output_dim (hb);
  float *z = g_new (float, rows * D), *dz = g_new (float, rows * D);
  float *zt = g_new (float, rows * D);
  g_assert_cmpint (simclr_model_forward (hb, xb, full, 1, NULL, z, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_model_forward (hs, xs, KS * n, 1, NULL,
          z + (size_t) full * D, &err), ==, SIMCLR_OK);
  SimclrLossConfig lc;
  simclr_loss_config_default (&lc);
  lc.views = V;
  lc.temperature = TAU;
  SimclrLoss *loss = simclr_loss_new (&lc, NULL, &err);
  SimclrLossResult lr;
  g_assert_cmpint (simclr_loss_forward (loss, z, rows, D, &lr, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_loss_backward (loss, dz, &err), ==, SIMCLR_OK);
  simclr_model_zero_grad (hb);
  g_assert_cmpint (simclr_model_backward (hb, dz, &err), ==, SIMCLR_OK);
  g_assert_cmpint (simclr_model_backward (hs, dz + (size_t) full * D, &err),
      ==, SIMCLR_OK);

  /* the trainer: forward (z), then the convenience step on the same rows */
  g_assert_cmpint (simclr_trainer_forward_u8 (t, u8, rows, zt, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (memcmp (zt, z, (size_t) rows * D * sizeof (float)), ==, 0);
  SimclrNtxentResult res;
  if (simclr_trainer_train_step (t, u8, rows, &res, &err) != SIMCLR_OK)
    g_error ("train step: %s", err.message);
  g_assert_cmpfloat (res.loss, ==, lr.loss);
  const float *gt = simclr_model_grads (tm, NULL);
  const float *gh = simclr_model_grads (hb, NULL);
  g_assert_cmpint (memcmp (gt, gh, np * sizeof (float)), ==, 0);
  g_assert_cmpint (simclr_trainer_get_step (t), ==, 1);
  /* two forwards above, two in the step: four batches on one counter */
  g_assert_cmpint (simclr_model_num_batches_tracked (tm), ==, 4);

  /* rows that are not whole samples */
  g_assert_cmpint (simclr_trainer_forward_u8 (t, u8, rows - 1, NULL, &err),
      ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "small views"));

  simclr_loss_free (loss);
  simclr_model_free (hs);
  simclr_model_free (hb);
  simclr_trainer_free (t);
  g_free (u8);
  g_free (xb);
  g_free (xs);
  g_free (z);
  g_free (zt);
  g_free (dz);
}

/* The multi-positive NT-Xent in float64 (loss-ref.h): anchor i,
 * positives the other views of its sample (row v * n + s is view v of
 * sample s), L_i = -1/|P| sum_p log softmax_{k != i} (sim_ik / tau)[p]; the
 * mean over anchors (loss.h). */
static double
multi_positive_double (const float *z, int rows, int D, int views)
{
  int n = rows / views;
  double *zd = g_new (double, (size_t) rows * D);
  int *group = g_new (int, rows);
  for (size_t i = 0; i < (size_t) rows * D; i++)
    zd[i] = z[i];
  for (int i = 0; i < rows; i++)
    group[i] = i % n;
  double loss = loss_ref_ntxent (zd, rows, D, TAU, NULL, group, NULL, 0);
  g_free (zd);
  g_free (group);
  return loss;
}

typedef struct {
  SimclrTrainer *t;
  const uint8_t *u8;
  int rows;
  float *z;
  int D;
} FdCtx;

static double
fd_loss (void *data)
{
  FdCtx *c = data;
  SimclrError err = { 0 };
  if (simclr_trainer_forward_u8 (c->t, c->u8, c->rows, c->z, &err))
    g_error ("forward: %s", err.message);
  return multi_positive_double (c->z, c->rows, c->D, V);
}

static void
test_finite_differences (void)
{
  SimclrError err = { 0 };
  SimclrTrainerConfig cfg;
  const int n = 3, rows = V * n;
  trainer_config (&cfg, n, 1, 13);
  SimclrTrainer *t = simclr_trainer_new (&cfg, &err);
  g_assert_nonnull (t);
  SimclrModel *m = simclr_trainer_get_model (t);
  size_t np;
  float *p = simclr_model_params (m, &np);
  /* generic BN affine parameters (as test-model.c) */
  for (int i = 0; i < simclr_model_n_tensors (m); i++) {
    const SimclrTensorInfo *ti = simclr_model_tensor (m, i);
    const SimclrTensorInfo *n2 = simclr_model_tensor (m, i + 2);
    if (ti->storage == SIMCLR_TENSOR_PARAM && ti->ndim == 1 && n2
        && n2->storage == SIMCLR_TENSOR_BUFFER && strstr (ti->name, "weight"))
      for (size_t k = 0; k < ti->numel; k++)
        p[ti->offset + k] = 0.5f + simclr_rng_uniform (5, i, k);
  }
  float *p0 = g_memdup2 (p, np * sizeof (float));
  uint8_t *u8 = g_malloc (packed_bytes (n));
  views_of (u8, 0, 0, n);
  int D = simclr_model_output_dim (m);
  FdCtx c = { t, u8, rows, g_new (float, rows * D), D };

  /* the analytic gradient: the trainer's own step (SGD keeps the gradient
   * buffer), then the weights put back */
  SimclrNtxentResult res;
  g_assert_cmpint (simclr_trainer_train_step (t, u8, rows, &res, &err), ==,
      SIMCLR_OK);
  float *g = g_memdup2 (simclr_model_grads (m, NULL), np * sizeof (float));
  memcpy (p, p0, np * sizeof (float));
  double l64 = fd_loss (&c);
  if (fabs (l64 - res.loss) > 1e-5 * fabs (l64))
    g_error ("multi-positive loss: the step's %.9g, float64 %.9g", res.loss,
        l64);

  /* The probes: the stem (sees both sizes), a layer-4 conv, BN, the head. */
  static const char *const names[] = { "conv1.weight", "bn1.weight",
    "layer1.0.conv2.weight", "layer4.1.conv2.weight", "layer4.1.bn2.bias",
    "head.0.weight", "head.4.weight", "head.6.bias", NULL
  };
  FdStats st = { 0 };
  for (const char *const *name = names; *name; name++) {
    int ti = simclr_model_find_tensor (m, *name);
    if (ti < 0)
      g_error ("no tensor %s", *name);
    const SimclrTensorInfo *info = simclr_model_tensor (m, ti);
    for (int k = 0; k < 3; k++) {
      size_t e = simclr_rng_below (17, ti, k, (uint32_t) info->numel);
      char what[160];
      snprintf (what, sizeof what, "%s[%zu]", *name, e);
      fd_probe (fd_loss, &c, p + info->offset + e, g[info->offset + e],
          info->adapt ? 1e-2 : 2e-2, what, &st);
    }
  }
  fd_stats_assert (&st, "mixed-size step");

  simclr_trainer_free (t);
  g_free (c.z);
  g_free (g);
  g_free (p0);
  g_free (u8);
}

/* Save after 2 steps, continue 2; a trainer loaded from the file makes the
 * same 2 steps bit for bit. */
static void
test_resume (void)
{
  SimclrError err = { 0 };
  SimclrTrainerConfig cfg;
  const int n = 3, rows = V * n;
  trainer_config (&cfg, n, 1, 3);
  cfg.optim.kind = SIMCLR_OPTIM_LARS;
  cfg.optim.momentum = 0.9;
  cfg.model.threads = 1;
  SimclrTrainer *t = simclr_trainer_new (&cfg, &err);
  g_assert_nonnull (t);
  uint8_t *u8 = g_malloc (packed_bytes (n));
  SimclrNtxentResult r;
  for (int s = 0; s < 2; s++) {
    views_of (u8, s, 0, n);
    g_assert_cmpint (simclr_trainer_train_step (t, u8, rows, &r, &err), ==,
        SIMCLR_OK);
  }
  char *dir = g_dir_make_tmp ("multicrop-XXXXXX", NULL);
  char *path = g_build_filename (dir, "ckpt.safetensors", NULL);
  g_assert_cmpint (simclr_trainer_save (t, path, &err), ==, SIMCLR_OK);
  double want[2];
  for (int s = 2; s < 4; s++) {
    views_of (u8, s, 0, n);
    g_assert_cmpint (simclr_trainer_train_step (t, u8, rows, &r, &err), ==,
        SIMCLR_OK);
    want[s - 2] = r.loss;
  }
  SimclrTrainer *l = simclr_trainer_load (path, rows, &err);
  if (!l)
    g_error ("load: %s", err.message);
  const SimclrTrainerConfig *lc = simclr_trainer_get_config (l);
  g_assert_cmpint (lc->views, ==, V);
  g_assert_cmpint (lc->small_views, ==, KS);
  g_assert_cmpint (lc->small_size, ==, SMALL);
  g_assert_nonnull (simclr_trainer_get_small_model (l));
  g_assert_cmpint (simclr_model_num_batches_tracked (
          simclr_trainer_get_model (l)), ==, 4);
  for (int s = 2; s < 4; s++) {
    views_of (u8, s, 0, n);
    g_assert_cmpint (simclr_trainer_train_step (l, u8, rows, &r, &err), ==,
        SIMCLR_OK);
    if (r.loss != want[s - 2])
      g_error ("resumed step %d: loss %.17g, the uninterrupted run's "
          "%.17g", s, r.loss, want[s - 2]);
  }
  size_t np, nb;
  const float *pt = simclr_model_params (simclr_trainer_get_model (t), &np);
  const float *bt = simclr_model_buffers (simclr_trainer_get_model (t), &nb);
  g_assert_cmpint (memcmp (pt, simclr_model_params (simclr_trainer_get_model
              (l), NULL), np * sizeof (float)), ==, 0);
  g_assert_cmpint (memcmp (bt, simclr_model_buffers (simclr_trainer_get_model
              (l), NULL), nb * sizeof (float)), ==, 0);
  /* a pair-trained reader of this file still sees its multi-crop config:
   * a replica load keeps it too */
  SimclrTrainer *rep = simclr_trainer_load_replica (path, 1, &err);
  g_assert_nonnull (rep);
  g_assert_cmpint (simclr_trainer_get_config (rep)->small_views, ==, KS);
  g_assert_cmpint (simclr_trainer_local_rows (rep), ==, rows);
  simclr_trainer_free (rep);
  g_unlink (path);
  g_rmdir (dir);
  g_free (path);
  g_free (dir);
  simclr_trainer_free (t);
  simclr_trainer_free (l);
  g_free (u8);
}

/* ------------------------------------------------------------------------ */
/* K replicas == one trainer
 *
 * A free run of RSTEPS steps (replica 1 starts from other weights, so
 * join's broadcast is needed): the replicas hold bitwise identical losses
 * and weights, and step 0 (one state, no chaos yet) is one trainer's loss
 * within the loss tolerance; the later steps are printed, not checked.
 * Then RLOCK steps in lockstep (replica_lockstep): each step's loss within
 * TOL_LOSS, fewer than half the steps with an update error above
 * TOL_STEP_UPDATE (ReLU flips: measured 1e-5 to 5e-5 per step, a flip
 * 3e-3 to 6e-3, about one step in 8 at every kernel setting), the BN
 * running statistics within TOL_BUF after every step.
 * Each tolerance is max(fixed, FLOOR_FACTOR x floor), the floor measured
 * in the same run: one trainer under another kernel table
 * (simclr_cpu_kernels_other) makes the reference's step from the same
 * state, as in tests/mpi/test-mpi-equivalence.c. Why not the free run:
 * 4 steps at rate 0.05 are chaotic (a ReLU input within rounding noise of
 * 0 flips; the update moves by a few percent of one row's share and the
 * next steps amplify it). With Winograd F(4x4, 3x3) in the forward
 * (SIMCLR_WINOGRAD=f43), one trainer against itself with its batch merely
 * reordered drifted 2e-3 apart in loss and 6% in the 4-step update, as
 * the replicas did (1.8e-3, 6.2%), while a 1% gradient scale moves the
 * step-1 loss by 2e-4: the free run could no longer see such a fault. */

#define RN 4                    /* samples per replica */
#define RK 2
#define RSTEPS 4
#define RLOCK 8
#define TOL_LOSS 1e-5
#define TOL_UPDATE 5e-3                /* the free run's (test-replica.c's) */
#define TOL_STEP_UPDATE 1e-3           /* one step's, in lockstep */
#define TOL_BUF 1e-3
#define FLOOR_FACTOR 4
#define FLOOR_CEILING 20.0

static const ReplicaPlan replica_plan = {
  .replicas = RK, .samples = RN, .steps = RSTEPS, .sample_bytes = (V - KS) * BIG * BIG
      + KS * SMALL * SMALL,
  .views_of = views_of, .tol_loss = TOL_LOSS, .tol_update = TOL_UPDATE,
};

static double
max_of (const double *v, int n)
{
  double m = 0;
  for (int i = 0; i < n; i++)
    m = fmax (m, isnan (v[i]) ? INFINITY : v[i]);
  return m;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static double
median_of (const double *v, int n)
{
  double s[REPLICA_MAX_STEPS];
  for (int i = 0; i < n; i++)
    s[i] = isnan (v[i]) ? INFINITY : v[i];
  qsort (s, n, sizeof (double), cmp_double);
  return s[n / 2];
}

static int
count_above (const double *v, int n, double tol)
{
  int k = 0;
  for (int i = 0; i < n; i++)
    k += !(v[i] <= tol);
  return k;
}

/* max (@fixed, FLOOR_FACTOR x @floor); a floor lifting it above
 * FLOOR_CEILING x @fixed fails the test (the floor run is broken; it must
 * never make a check vacuous). */
static double
floored (double fixed, double floor, const char *what)
{
  double t = fmax (fixed, FLOOR_FACTOR * floor);
  if (!(t <= FLOOR_CEILING * fixed))
    g_error ("%s: the noise floor %.3g would lift the tolerance %g above "
        "%g x itself", what, floor, fixed, FLOOR_CEILING);
  return t;
}

static void
test_replicas (void)
{
  SimclrError err = { 0 };
  SimclrTrainerConfig cfg;
  const char *floor_name = NULL;
  const SimclrKernels *other = simclr_cpu_kernels_other (&floor_name);
  trainer_config (&cfg, RN * RK, 1, 7);
  SimclrTrainer *ref = simclr_trainer_new (&cfg, &err);
  g_assert_nonnull (ref);
  SimclrTrainer *alt = NULL;
  if (other) {
    /* created and run under the other table (its scratch is sized so) */
    const SimclrKernels *was = simclr_cpu_force_kernels (other);
    alt = simclr_trainer_new (&cfg, &err);
    simclr_cpu_force_kernels (was);
    g_assert_nonnull (alt);
  }
  Replica reps[RK];
  SimclrTrainer *t[RK];
  for (int q = 0; q < RK; q++) {
    trainer_config (&cfg, RN, RK, q == 0 ? 7 : 107);
    t[q] = simclr_trainer_new (&cfg, &err);
    g_assert_nonnull (t[q]);
  }

  /* lockstep, with the noise floor */
  ReplicaSteps r, fl;
  ReplicaPlan lock = replica_plan;
  lock.steps = RLOCK;
  replica_lockstep (&lock, t, ref, alt, other, &r, other ? &fl : NULL);
  double tl = TOL_LOSS, tu = TOL_STEP_UPDATE, tb = TOL_BUF;
  int flips = (RLOCK - 1) / 2;  /* the median step within tu */
  if (other) {
    tl = floored (TOL_LOSS, max_of (fl.loss, RLOCK), "losses");
    tu = floored (TOL_STEP_UPDATE, median_of (fl.update, RLOCK), "update");
    tb = floored (TOL_BUF, max_of (fl.buffers, RLOCK), "BN statistics");
    /* FLOOR_FACTOR x the floor run's flips, at most 3/4 of the steps (a
     * fault of every step still fails) */
    flips = MAX (flips, MIN (FLOOR_FACTOR * count_above (fl.update, RLOCK,
                tu), 3 * RLOCK / 4));
    g_test_message ("noise floor (one trainer under %s, in lockstep): "
        "losses %.3g, median update %.3g, BN statistics %.3g, %d steps' "
        "update above %.3g", floor_name, max_of (fl.loss, RLOCK),
        median_of (fl.update, RLOCK), max_of (fl.buffers, RLOCK),
        count_above (fl.update, RLOCK, tu), tu);
  }
  g_test_message ("%d replicas vs one trainer, %d steps in lockstep: losses "
      "%.3g (<= %.3g), %d steps' update error above %.3g (<= %d; median "
      "%.3g), BN statistics %.3g (<= %.3g)", RK, RLOCK,
      max_of (r.loss, RLOCK), tl, count_above (r.update, RLOCK, tu), tu,
      flips, median_of (r.update, RLOCK), max_of (r.buffers, RLOCK), tb);
  if (!(max_of (r.loss, RLOCK) <= tl))
    g_error ("%d replicas in lockstep: a loss %.3g from one trainer's (> "
        "%.3g)", RK, max_of (r.loss, RLOCK), tl);
  if (count_above (r.update, RLOCK, tu) > flips)
    g_error ("%d replicas in lockstep: %d steps' update more than %.3g "
        "(relative) from one trainer's (at most %d; median %.3g)", RK,
        count_above (r.update, RLOCK, tu), tu, flips,
        median_of (r.update, RLOCK));
  if (!(max_of (r.buffers, RLOCK) <= tb))
    g_error ("%d replicas in lockstep: running statistics %.3g from one "
        "trainer's (> %.3g)", RK, max_of (r.buffers, RLOCK), tb);
  for (int q = 0; q < RK; q++)
    simclr_trainer_free (t[q]);
  simclr_trainer_free (ref);
  simclr_trainer_free (alt);

  /* the free run, from fresh trainers (replica 1 from other weights) */
  double ref_losses[RSTEPS];
  trainer_config (&cfg, RN * RK, 1, 7);
  ref = simclr_trainer_new (&cfg, &err);
  g_assert_nonnull (ref);
  float *init = replica_reference (&replica_plan, ref, ref_losses);
  for (int q = 0; q < RK; q++) {
    trainer_config (&cfg, RN, RK, q == 0 ? 7 : 107);
    t[q] = simclr_trainer_new (&cfg, &err);
    g_assert_nonnull (t[q]);
  }
  replica_run (&replica_plan, t, reps);
  replica_assert_identical (&replica_plan, reps);
  for (int s = 0; s < RSTEPS; s++)
    g_test_message ("free run, step %d: %d replicas loss %.9g, one trainer "
        "%.9g%s", s, RK, reps[0].losses[s], ref_losses[s],
        s ? " (not checked: chaotic)" : "");
  if (!(fabs (reps[0].losses[0] - ref_losses[0]) <= tl))
    g_error ("free run, step 0: %d replicas loss %.9g, one trainer %.9g "
        "(> %.3g apart)", RK, reps[0].losses[0], ref_losses[0], tl);
  for (int q = 0; q < RK; q++)
    simclr_trainer_free (t[q]);
  simclr_trainer_free (ref);
  g_free (init);
}

/* Replicas configured with different small views refuse to join. */
static void
test_replicas_differ (void)
{
  SimclrError err = { 0 };
  SimclrTrainerConfig cfg;
  const ReplicaPlan join_plan = { .replicas = RK, .samples = RN, .steps = 0 };
  Replica reps[RK];
  SimclrTrainer *t[RK];
  for (int q = 0; q < RK; q++) {
    trainer_config (&cfg, RN, RK, 7);
    if (q == 1)
      cfg.small_size = SMALL + 2;
    t[q] = simclr_trainer_new (&cfg, &err);
    g_assert_nonnull (t[q]);
  }
  replica_run (&join_plan, t, reps);
  for (int q = 0; q < RK; q++) {
    g_assert_cmpint (reps[q].status, ==, SIMCLR_ERROR_INVALID_ARGUMENT);
    g_assert_cmpstr (reps[q].err.field, ==, "trainer.small_views");
    simclr_trainer_free (t[q]);
  }
}

/* ------------------------------------------------------------------------ */

static void
test_config_refusals (void)
{
  SimclrError err = { 0 };
  SimclrTrainerConfig cfg;
  trainer_config (&cfg, 2, 1, 1);
  cfg.small_views = V;
  g_assert_null (simclr_trainer_new (&cfg, &err));
  g_assert_cmpstr (err.field, ==, "trainer.small_views");
  cfg.small_views = -1;
  g_assert_cmpint (simclr_trainer_config_validate (&cfg, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpstr (err.field, ==, "trainer.small_views");
  trainer_config (&cfg, 2, 1, 1);
  cfg.small_size = BIG + 1;
  g_assert_null (simclr_trainer_new (&cfg, &err));
  g_assert_cmpstr (err.field, ==, "trainer.small_size");
  g_assert_nonnull (strstr (err.message, "small views of 13 pixels"));
  cfg.small_size = 0;
  g_assert_null (simclr_trainer_new (&cfg, &err));
  g_assert_cmpstr (err.field, ==, "trainer.small_size");
  /* too small for the ImageNet stem */
  trainer_config (&cfg, 2, 1, 1);
  cfg.model.stem = SIMCLR_STEM_IMAGENET;
  cfg.small_size = 5;
  g_assert_null (simclr_trainer_new (&cfg, &err));
  g_assert_cmpstr (err.field, ==, "trainer.small_size");
  /* small_size without small views is ignored; 0 small views = pairs */
  trainer_config (&cfg, 2, 1, 1);
  cfg.views = 2;
  cfg.small_views = 0;
  cfg.small_size = 0;
  SimclrTrainer *t = simclr_trainer_new (&cfg, &err);
  g_assert_nonnull (t);
  g_assert_null (simclr_trainer_get_small_model (t));
  simclr_trainer_free (t);
}

/* ------------------------------------------------------------------------ */
/* bad input to the mixed-size forward */

typedef struct {
  SimclrTrainer *t;
  float *params, *buffers;
  size_t np, nb;
  int64_t nbt, step;
} Snapshot;

static void
snapshot_take (Snapshot *sn, SimclrTrainer *t)
{
  SimclrModel *m = simclr_trainer_get_model (t);
  const float *p = simclr_model_params (m, &sn->np);
  const float *b = simclr_model_buffers (m, &sn->nb);
  sn->t = t;
  sn->params = g_memdup2 (p, sn->np * sizeof (float));
  sn->buffers = g_memdup2 (b, sn->nb * sizeof (float));
  sn->nbt = simclr_model_num_batches_tracked (m);
  sn->step = simclr_trainer_get_step (t);
}

/* The refusal left the trainer as it was, and no forward pending. */
static void
snapshot_check (const Snapshot *sn, const char *what)
{
  SimclrError err = { 0 };
  SimclrModel *m = simclr_trainer_get_model (sn->t);
  float dz[V * 2 * 16] = { 0 };
  if (memcmp (simclr_model_params (m, NULL), sn->params,
          sn->np * sizeof (float)) != 0)
    g_error ("%s: the parameters changed", what);
  if (memcmp (simclr_model_buffers (m, NULL), sn->buffers,
          sn->nb * sizeof (float)) != 0)
    g_error ("%s: the running statistics changed", what);
  g_assert_cmpint (simclr_model_num_batches_tracked (m), ==, sn->nbt);
  g_assert_cmpint (simclr_model_num_batches_tracked
      (simclr_trainer_get_small_model (sn->t)), ==, sn->nbt);
  g_assert_cmpint (simclr_trainer_get_step (sn->t), ==, sn->step);
  g_assert_cmpint (simclr_trainer_backward_and_step (sn->t, dz, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpstr (err.message, ==,
      "trainer: backward_and_step without a forward");
}

static void
expect_refusal (SimclrStatus s, const SimclrError *err, SimclrStatus want,
    const char *message, const Snapshot *sn, const char *what)
{
  if (s != want)
    g_error ("%s: status %d, want %d (%s)", what, s, want, err->message);
  snapshot_check (sn, what);
  g_assert_cmpstr (err->message, ==, message);
}

static void
test_bad_input (void)
{
  SimclrError err = { 0 };
  SimclrTrainerConfig cfg;
  const int n = 2, rows = V * n, full = (V - KS) * n;
  Snapshot sn;
  SimclrStatus s;
  trainer_config (&cfg, n, 1, 5);
  g_assert_cmpint (cfg.model.max_batch, ==, rows);
  SimclrTrainer *t = simclr_trainer_new (&cfg, &err);
  g_assert_nonnull (t);
  g_assert_cmpint (simclr_model_output_dim (simclr_trainer_get_model (t)),
      <=, 16);
  uint8_t *u8 = g_malloc (packed_bytes (n));
  views_of (u8, 0, 0, n);
  /* exactly the rows of one batch */
  SimclrFrame *frames = g_new (SimclrFrame, rows);
  simclr_frames_packed (frames, u8, full, BIG, 1);
  simclr_frames_packed (frames + full, u8 + (size_t) full * BIG * BIG,
      rows - full, SMALL, 1);
  /* one good step first: running statistics that are not the initial
   * ones, so a forward that ran would show */
  g_assert_cmpint (simclr_trainer_train_step (t, u8, rows, NULL, &err), ==,
      SIMCLR_OK);
  snapshot_take (&sn, t);

  /* counts */
  static const int bad_rows[] = { 7, 12, 3, 0, -4, 9 };
  for (size_t k = 0; k < G_N_ELEMENTS (bad_rows); k++) {
    char want[256], what[64];
    g_snprintf (what, sizeof what, "forward_frames of %d rows", bad_rows[k]);
    g_snprintf (want, sizeof want, "trainer forward: %d rows: with %d small "
        "views the rows must be whole samples of %d views, at most "
        "max_batch %d", bad_rows[k], KS, V, rows);
    s = simclr_trainer_forward_frames (t, frames, bad_rows[k], 1, NULL,
        &err);
    expect_refusal (s, &err, SIMCLR_ERROR_INVALID_ARGUMENT, want, &sn, what);
    g_snprintf (what, sizeof what, "forward_u8 of %d rows", bad_rows[k]);
    if (bad_rows[k] < 1 || bad_rows[k] > rows)
      g_snprintf (want, sizeof want, "trainer forward: %d rows out of range "
          "[1, max_batch %d]", bad_rows[k], rows);
    s = simclr_trainer_forward_u8 (t, u8, bad_rows[k], NULL, &err);
    expect_refusal (s, &err, SIMCLR_ERROR_INVALID_ARGUMENT, want, &sn, what);
  }
  s = simclr_trainer_train_step (t, u8, 6, NULL, &err);
  expect_refusal (s, &err, SIMCLR_ERROR_INVALID_ARGUMENT,
      "trainer train step: 6 rows: need a multiple of the 4 views per "
      "sample, at least 4 (V x N views)", &sn, "train_step of 6 rows");

  /* strides and data: the small rows, then a full one */
  frames[full + 1].stride = SMALL - 1;
  s = simclr_trainer_forward_frames (t, frames, rows, 1, NULL, &err);
  expect_refusal (s, &err, SIMCLR_ERROR_INVALID_ARGUMENT,
      "trainer forward: row 5 of 8, a small view of 6 x 6 x 1, has a "
      "stride of 5 bytes, less than a row of 6", &sn, "small stride");
  frames[full + 1].stride = SMALL;
  frames[full + 2].height = SMALL - 1;
  s = simclr_trainer_forward_frames (t, frames, rows, 1, NULL, &err);
  expect_refusal (s, &err, SIMCLR_ERROR_INVALID_ARGUMENT,
      "trainer forward: row 6 of 8 is a 6 x 5 frame; small views are 6 x 6",
      &sn, "small frame one row short");
  frames[full + 2].height = SMALL;
  frames[0].width = BIG + 1;
  s = simclr_trainer_forward_frames (t, frames, rows, 1, NULL, &err);
  expect_refusal (s, &err, SIMCLR_ERROR_INVALID_ARGUMENT,
      "frames: frame 0 of 4 is 13 x 12 pixels; the model takes 12 x 12", &sn,
      "full frame of another size");
  frames[0].width = BIG;
  const uint8_t *keep = frames[rows - 1].data;
  frames[rows - 1].data = NULL;
  s = simclr_trainer_forward_frames (t, frames, rows, 1, NULL, &err);
  expect_refusal (s, &err, SIMCLR_ERROR_INVALID_ARGUMENT,
      "trainer forward: row 7 of 8, a small view of 6 x 6, has no data",
      &sn, "small without data");
  frames[rows - 1].data = keep;
  frames[1].stride = BIG - 1;
  s = simclr_trainer_forward_frames (t, frames, rows, 1, NULL, &err);
  expect_refusal (s, &err, SIMCLR_ERROR_INVALID_ARGUMENT,
      "frames: frame 1 has a stride of 11 bytes, less than its 12 x 12 "
      "pixels of 1 channel(s)", &sn, "full stride");
  frames[1].stride = BIG;
  s = simclr_trainer_forward_frames (t, frames, rows, 3, NULL, &err);
  expect_refusal (s, &err, SIMCLR_ERROR_MISMATCH,
      "model forward: frames of 3 channel(s) for a model of 1", &sn,
      "3 channels");

  /* the same frames, repaired, are taken */
  g_assert_cmpint (simclr_trainer_forward_frames (t, frames, rows, 1, NULL,
          &err), ==, SIMCLR_OK);
  g_assert_cmpint (simclr_model_num_batches_tracked
      (simclr_trainer_get_model (t)), ==, sn.nbt + 2);
  g_free (sn.params);
  g_free (sn.buffers);
  g_free (frames);
  g_free (u8);
  simclr_trainer_free (t);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/multicrop/shared-equals-sum", test_shared_equals_sum);
  g_test_add_func ("/multicrop/shared-refusals", test_shared_refusals);
  g_test_add_func ("/multicrop/step-by-hand", test_trainer_step_by_hand);
  g_test_add_func ("/multicrop/finite-differences",
      test_finite_differences);
  g_test_add_func ("/multicrop/resume", test_resume);
  g_test_add_func ("/multicrop/replicas", test_replicas);
  g_test_add_func ("/multicrop/replicas-differ", test_replicas_differ);
  g_test_add_func ("/multicrop/config-refusals", test_config_refusals);
  g_test_add_func ("/multicrop/bad-input", test_bad_input);
  return g_test_run ();
}
