/* test-lineval.c: linear evaluation cannot change the encoder, its features
 * are the eval-mode forward's, and a tiny pretraining followed by evaluation
 * runs end to end with accuracy above chance. Uses the real Fashion-MNIST
 * (Debian dataset-fashion-mnist); skips when it is absent. */
#include <math.h>
#include <string.h>
#include <glib.h>

#include "simclr/simclr.h"
#include "simclr/features.h"
#include "simclr/linclf.h"

#define FMNIST "/usr/share/datasets/fashion-mnist"

static SimclrDataset *
open_split (const char *split)
{
  SimclrError err = { 0 };
  SimclrDataset *ds = simclr_dataset_open (FMNIST, split, SIMCLR_DATASET_AUTO,
      &err);
  if (!ds)
    g_test_skip_printf ("Fashion-MNIST not available: %s", err.message);
  return ds;
}

/* ResNet-18 w0.25 for 28x28x1 with the given head (proj_layers, hidden). */
static SimclrModel *
model_with_head (int max_batch, int proj_layers, int proj_hidden,
    uint64_t seed)
{
  SimclrModelConfig cfg;
  SimclrError err = { 0 };
  simclr_model_config_default (&cfg);
  cfg.width = 0.25;
  cfg.in_channels = 1;
  cfg.image_size = 28;
  cfg.max_batch = max_batch;
  cfg.proj_layers = proj_layers;
  cfg.proj_hidden = proj_hidden;
  SimclrModel *m = simclr_model_new (&cfg, seed, &err);
  g_assert_nonnull (m);
  return m;
}

static SimclrModel *
small_model (int max_batch)
{
  return model_with_head (max_batch, 2, 0, 3);
}

/* Byte-identical parameters, running statistics and batch count after
 * extraction, checked by copies (not only by the hash the code uses). */
static void
test_frozen (void)
{
  SimclrDataset *ds = open_split ("test");
  if (!ds)
    return;
  SimclrModel *m = small_model (64);
  SimclrError err = { 0 };
  size_t np, nb;
  float *params = simclr_model_params (m, &np);
  float *buffers = simclr_model_buffers (m, &nb);
  /* Non-trivial running statistics first, so eval and train modes differ. */
  float *x = g_new0 (float, 64 * 28 * 28);
  for (int i = 0; i < 64 * 28 * 28; i++)
    x[i] = (float) ((i * 37) % 255) / 255.0f;
  g_assert_cmpint (simclr_model_forward (m, x, 64, 1, NULL, NULL, &err), ==,
      SIMCLR_OK);
  float *p0 = g_memdup2 (params, np * sizeof (float));
  float *b0 = g_memdup2 (buffers, nb * sizeof (float));
  int64_t t0 = simclr_model_num_batches_tracked (m);
  uint64_t h0 = simclr_model_state_hash (m);

  float *f = NULL;
  int *y = NULL, dim = 0;
  int64_t n = 0;
  g_assert_cmpint (simclr_features_extract (m, ds, 150,
          SIMCLR_FEATURES_REPRESENTATION, &f, &y, &n, &dim, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (n, ==, 150);
  g_assert_cmpint (dim, ==, simclr_model_feature_dim (m));
  g_assert_cmpmem (params, np * sizeof (float), p0, np * sizeof (float));
  g_assert_cmpmem (buffers, nb * sizeof (float), b0, nb * sizeof (float));
  g_assert_cmpint (simclr_model_num_batches_tracked (m), ==, t0);
  g_assert_cmphex (simclr_model_state_hash (m), ==, h0);

  /* The features are the eval-mode forward of the same images. */
  uint8_t img[28 * 28];
  float h[512];
  for (int i = 0; i < 3; i++) {
    int w, hh, label;
    g_assert_cmpint (simclr_dataset_get (ds, 140 + i, img, sizeof img, &w, &hh,
            &label, &err), ==, SIMCLR_OK);
    g_assert_cmpint (label, ==, y[140 + i]);
    for (int k = 0; k < 28 * 28; k++)
      x[k] = img[k] / 255.0f;
    g_assert_cmpint (simclr_model_forward (m, x, 1, 0, h, NULL, &err), ==,
        SIMCLR_OK);
    for (int k = 0; k < dim; k++)
      g_assert_cmpfloat_with_epsilon (f[(140 + i) * dim + k], h[k],
          1e-5 * (1 + fabsf (h[k])));
  }

  /* The hash does see a change: a training forward updates BN statistics. */
  g_assert_cmpint (simclr_model_forward (m, x, 8, 1, NULL, NULL, &err), ==,
      SIMCLR_OK);
  g_assert_cmphex (simclr_model_state_hash (m), !=, h0);

  g_free (x);
  g_free (p0);
  g_free (b0);
  free (f);
  free (y);
  simclr_model_free (m);
  simclr_dataset_free (ds);
}

static const float *
tensor_of (SimclrModel *m, const char *name)
{
  int i = simclr_model_find_tensor (m, name);
  g_assert_cmpint (i, >=, 0);
  const SimclrTensorInfo *t = simclr_model_tensor (m, i);
  return (t->storage == SIMCLR_TENSOR_PARAM ? simclr_model_params (m, NULL)
      : simclr_model_buffers (m, NULL)) + t->offset;
}

/* The head's hidden layer (v1: relu(W0 h + b0); v2: relu(BN_eval(W0 h)))
 * against a double-precision reference built from h and the named tensors,
 * with a head narrower than h so a mix-up of sizes shows; no head: error. */
static void
test_head_hidden (void)
{
  SimclrDataset *ds = open_split ("test");
  if (!ds)
    return;
  for (int layers = 2; layers <= 3; layers++) {
    SimclrError err = { 0 };
    SimclrModel *m = model_with_head (16, layers, 48, 5);
    const double bn_eps = simclr_model_get_config (m)->bn_eps;
    /* Non-trivial head BN state (v2), and BN statistics everywhere. */
    if (layers == 3) {
      float *mean = (float *) tensor_of (m, "head.1.running_mean");
      float *var = (float *) tensor_of (m, "head.1.running_var");
      float *gamma = (float *) tensor_of (m, "head.1.weight");
      float *beta = (float *) tensor_of (m, "head.1.bias");
      for (int j = 0; j < 48; j++) {
        mean[j] = 0.05f * (j % 7) - 0.1f;
        var[j] = 0.5f + 0.03f * j;
        gamma[j] = 1.0f + 0.02f * (j % 5);
        beta[j] = 0.01f * (j % 9) - 0.04f;
      }
    }
    int dim = 0;
    g_assert_cmpint (simclr_features_dim (m, SIMCLR_FEATURES_HEAD_HIDDEN, &dim,
            &err), ==, SIMCLR_OK);
    g_assert_cmpint (dim, ==, 48);
    uint64_t h0 = simclr_model_state_hash (m);
    float *f = NULL;
    int *y = NULL;
    int64_t n = 0;
    g_assert_cmpint (simclr_features_extract (m, ds, 20,
            SIMCLR_FEATURES_HEAD_HIDDEN, &f, &y, &n, &dim, &err), ==,
        SIMCLR_OK);
    g_assert_cmpint (n, ==, 20);
    g_assert_cmpint (dim, ==, 48);
    g_assert_cmphex (simclr_model_state_hash (m), ==, h0);

    float *h = NULL;
    int *yh = NULL, d = 0;
    g_assert_cmpint (simclr_features_extract (m, ds, 20,
            SIMCLR_FEATURES_REPRESENTATION, &h, &yh, &n, &d, &err), ==,
        SIMCLR_OK);
    const float *w0 = tensor_of (m, "head.0.weight");
    int positive = 0;
    for (int i = 0; i < 20; i++)
      for (int j = 0; j < 48; j++) {
        double a = 0;
        for (int k = 0; k < d; k++)
          a += (double) w0[(size_t) j * d + k] * h[(size_t) i * d + k];
        if (layers == 2)
          a += tensor_of (m, "head.0.bias")[j];
        else
          a = (a - tensor_of (m, "head.1.running_mean")[j])
              / sqrt (tensor_of (m, "head.1.running_var")[j] + bn_eps)
              * tensor_of (m, "head.1.weight")[j]
              + tensor_of (m, "head.1.bias")[j];
        double ref = a > 0 ? a : 0;
        positive += ref > 0;
        g_assert_cmpfloat_with_epsilon (f[i * 48 + j], ref,
            1e-5 * (1 + fabs (ref)));
      }
    /* both sides of the ReLU are exercised */
    g_assert_cmpint (positive, >, 20 * 48 / 10);
    g_assert_cmpint (positive, <, 20 * 48 * 9 / 10);
    free (f);
    free (y);
    free (h);
    free (yh);
    simclr_model_free (m);
  }

  SimclrError err = { 0 };
  SimclrModel *m = model_with_head (16, 0, 0, 5);
  float *f = NULL;
  int *y = NULL, dim = 0;
  int64_t n = 0;
  g_assert_cmpint (simclr_features_extract (m, ds, 4,
          SIMCLR_FEATURES_HEAD_HIDDEN, &f, &y, &n, &dim, &err), ==,
      SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err.message, "no projection head"));
  simclr_model_free (m);
  simclr_dataset_free (ds);
}

/* Pretrain a few steps, then evaluate: accuracy well above chance (10 %). */
static void
test_pretrain_then_evaluate (void)
{
  SimclrDataset *train = open_split ("train");
  SimclrDataset *test = train ? open_split ("test") : NULL;
  if (!train || !test) {
    simclr_dataset_free (train);
    return;
  }
  const int N = 32, steps = 30, side = 28;
  SimclrTrainerConfig tc;
  SimclrAugmentConfig ac;
  SimclrError err = { 0 };
  simclr_trainer_config_default (&tc);
  tc.model.width = 0.25;
  tc.model.in_channels = 1;
  tc.model.image_size = side;
  tc.model.max_batch = 2 * N;
  tc.optim.batch_size = N;
  /* SimCLR's rule for small batches: 0.075 sqrt (N); linear scaling gives
   * LARS steps too small to see in 30 steps at N = 32. */
  tc.optim.lr_scaling = SIMCLR_LR_SCALING_SQRT;
  tc.optim.base_lr = 0.075;
  tc.optim.warmup_steps = 3;
  tc.optim.total_steps = steps;
  tc.seed = 1;
  simclr_augment_config_default (&ac);
  ac.size = side;
  SimclrTrainer *t = simclr_trainer_new (&tc, &err);
  SimclrAugmenter *aug = simclr_augmenter_new (&ac, &err);
  g_assert_nonnull (t);
  g_assert_nonnull (aug);

  uint8_t *views = g_malloc ((size_t) 2 * N * side * side);
  uint8_t img[28 * 28];
  double first_loss = 0, last_loss = 0;
  for (int s = 0; s < steps; s++) {
    for (int i = 0; i < N; i++) {
      int64_t sample = (int64_t) s * N + i;
      int w, h, label;
      g_assert_cmpint (simclr_dataset_get (train, sample, img, sizeof img, &w,
              &h, &label, &err), ==, SIMCLR_OK);
      for (int v = 0; v < 2; v++)
        g_assert_cmpint (simclr_augmenter_view (aug, 9, sample, v, img, side,
                side, side, 1, views + (size_t) (v * N + i) * side * side,
                side, NULL, &err), ==, SIMCLR_OK);
    }
    SimclrNtxentResult r;
    g_assert_cmpint (simclr_trainer_train_step (t, views, 2 * N, &r, &err), ==,
        SIMCLR_OK);
    if (s == 0)
      first_loss = r.loss;
    last_loss = r.loss;
  }
  g_test_message ("loss %.3f -> %.3f (ln(2N-1) = %.3f)", first_loss,
      last_loss, log (2.0 * N - 1));

  /* Frozen features of 2000 train / 1000 test images, then the probe. */
  SimclrModel *m = simclr_trainer_get_model (t);
  float *xtr, *xte;
  int *ytr, *yte, dim, dim2;
  int64_t ntr, nte;
  g_assert_cmpint (simclr_features_extract (m, train, 2000,
          SIMCLR_FEATURES_REPRESENTATION, &xtr, &ytr, &ntr, &dim, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_features_extract (m, test, 1000,
          SIMCLR_FEATURES_REPRESENTATION, &xte, &yte, &nte, &dim2, &err), ==,
      SIMCLR_OK);
  float *mean = g_new (float, dim), *std = g_new (float, dim);
  g_assert_cmpint (simclr_linclf_standardize_fit (xtr, (int) ntr, dim, mean,
          std, &err), ==, SIMCLR_OK);
  simclr_linclf_standardize_apply (xtr, (int) ntr, dim, mean, std);
  simclr_linclf_standardize_apply (xte, (int) nte, dim, mean, std);
  SimclrLinclf *clf = simclr_linclf_new (dim, 10, &err);
  SimclrLinclfConfig lc;
  SimclrLinclfReport rep;
  double top1, top5;
  simclr_linclf_config_default (&lc);
  lc.lambda = 1e-3;
  lc.max_iter = 200;
  g_assert_cmpint (simclr_linclf_train (clf, xtr, ytr, (int) ntr, &lc, &rep,
          &err), ==, SIMCLR_OK);
  g_assert_cmpint (simclr_linclf_evaluate (clf, xte, yte, (int) nte, NULL,
          &top1, &top5, &err), ==, SIMCLR_OK);
  g_test_message ("after %d steps of N=%d: linear-eval top-1 %.1f %%, top-5 "
      "%.1f %% on %lld test images", steps, N, 100 * top1, 100 * top5,
      (long long) nte);
  /* Chance is 10 %; even this short pretraining is far above it. */
  g_assert_cmpfloat (top1, >, 0.5);
  g_assert_cmpfloat (last_loss, <, first_loss);

  simclr_linclf_free (clf);
  g_free (mean);
  g_free (std);
  free (xtr);
  free (xte);
  free (ytr);
  free (yte);
  g_free (views);
  simclr_augmenter_free (aug);
  simclr_trainer_free (t);
  simclr_dataset_free (train);
  simclr_dataset_free (test);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/lineval/frozen", test_frozen);
  g_test_add_func ("/lineval/head-hidden", test_head_hidden);
  g_test_add_func ("/lineval/pretrain-then-evaluate",
      test_pretrain_then_evaluate);
  return g_test_run ();
}
