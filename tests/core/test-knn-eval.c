/* test-knn-eval.c: simclr_knn_evaluate, the kNN accuracy the encoder's
 * monitor posts and simclr-lineval prints, against the sequence both ran
 * before it existed (simclr_features_extract of each split, then
 * simclr_knn_classify with k = min (n_train, 200), T = 0.1): the same
 * features bit for bit and the same top-1/top-5. Also: the frozen features
 * through the frame entry equal the old float input path (pixel / 255 into
 * a float batch, simclr_model_forward), raw pixels, k = 0 (features only),
 * the model left untouched, bad arguments. Uses the real Fashion-MNIST
 * (Debian dataset-fashion-mnist); skips when it is absent.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "simclr/features.h"
#include "simclr/linclf.h"

#define FMNIST "/usr/share/datasets/fashion-mnist"
#define NTRAIN 300
#define NTEST 120

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

static SimclrModel *
small_model (int max_batch)
{
  SimclrModelConfig cfg;
  SimclrError err = { 0 };
  simclr_model_config_default (&cfg);
  cfg.width = 0.25;
  cfg.in_channels = 1;
  cfg.image_size = 28;
  cfg.max_batch = max_batch;
  cfg.threads = 1;
  SimclrModel *m = simclr_model_new (&cfg, 5, &err);
  g_assert_nonnull (m);
  return m;
}

/* The features as the old code computed them: uint8 -> float / 255 into a
 * batch, then the float forward (eval mode, h). */
static float *
old_features (SimclrModel *m, SimclrDataset *ds, int n, int **labels)
{
  const int d = simclr_model_feature_dim (m), B = 64;
  const size_t pix = 28 * 28;
  float *out = g_new (float, (size_t) n * d), *x = g_new (float, pix * B);
  uint8_t img[28 * 28];
  SimclrError err = { 0 };
  *labels = g_new (int, n);
  for (int start = 0; start < n; start += B) {
    int b = MIN (B, n - start), w, h;
    for (int i = 0; i < b; i++) {
      g_assert_cmpint (simclr_dataset_get (ds, start + i, img, sizeof img, &w,
              &h, &(*labels)[start + i], &err), ==, SIMCLR_OK);
      for (size_t k = 0; k < pix; k++)
        x[i * pix + k] = img[k] * (1.0f / 255.0f);
    }
    g_assert_cmpint (simclr_model_forward (m, x, b, 0,
            out + (size_t) start * d, NULL, &err), ==, SIMCLR_OK);
  }
  g_free (x);
  return out;
}

static void
test_against_old_sequence (void)
{
  SimclrDataset *train = open_split ("train"), *test = NULL;
  if (!train)
    return;
  test = open_split ("test");
  SimclrModel *m = small_model (64);
  SimclrError err = { 0 };
  const int d = simclr_model_feature_dim (m);
  uint64_t before = simclr_model_state_hash (m);

  /* the old monitor's sequence */
  float *xtr, *xte;
  int *ytr, *yte, dim, dim_te;
  int64_t ntr, nte;
  double top1 = -1, top5 = -1;
  g_assert_cmpint (simclr_features_extract (m, train, NTRAIN,
          SIMCLR_FEATURES_REPRESENTATION, &xtr, &ytr, &ntr, &dim, &err), ==,
      SIMCLR_OK);
  g_assert_cmpint (simclr_features_extract (m, test, NTEST,
          SIMCLR_FEATURES_REPRESENTATION, &xte, &yte, &nte, &dim_te, &err),
      ==, SIMCLR_OK);
  g_assert_cmpint (simclr_knn_classify (xtr, ytr, (int) ntr, xte, yte,
          (int) nte, dim, simclr_dataset_n_classes (train),
          (int) MIN (ntr, SIMCLR_KNN_DEFAULT_K),
          SIMCLR_KNN_DEFAULT_TEMPERATURE, NULL, &top1, &top5, &err), ==,
      SIMCLR_OK);

  /* the frame entry's features are the old float path's, bit for bit */
  int *yold;
  float *xold = old_features (m, train, NTRAIN, &yold);
  g_assert_cmpint (memcmp (xold, xtr, sizeof (float) * NTRAIN * d), ==, 0);
  g_assert_cmpint (memcmp (yold, ytr, sizeof (int) * NTRAIN), ==, 0);

  /* the core call */
  SimclrKnnEvalConfig cfg;
  SimclrKnnEvalResult res;
  SimclrFeatureSet ftr = { 0 }, fte = { 0 };
  simclr_knn_eval_config_default (&cfg);
  g_assert_cmpint (cfg.k, ==, SIMCLR_KNN_DEFAULT_K);
  cfg.train_limit = NTRAIN;
  cfg.test_limit = NTEST;
  g_assert_cmpint (simclr_knn_evaluate (m, train, test, &cfg, &res, &ftr,
          &fte, &err), ==, SIMCLR_OK);
  g_test_message ("kNN top-1 %.4f top-5 %.4f (old sequence %.4f %.4f)",
      res.top1, res.top5, top1, top5);
  g_assert_cmpfloat (res.top1, ==, top1);
  g_assert_cmpfloat (res.top5, ==, top5);
  g_assert_cmpint (res.n_train, ==, NTRAIN);
  g_assert_cmpint (res.n_test, ==, NTEST);
  g_assert_cmpint (res.dim, ==, d);
  g_assert_cmpfloat (res.feature_seconds, >, 0);
  g_assert_cmpint (ftr.n, ==, NTRAIN);
  g_assert_cmpint (memcmp (ftr.x, xtr, sizeof (float) * NTRAIN * d), ==, 0);
  g_assert_cmpint (memcmp (fte.x, xte, sizeof (float) * NTEST * d), ==, 0);
  g_assert_cmpint (memcmp (fte.labels, yte, sizeof (int) * NTEST), ==, 0);
  /* a random encoder is above chance on Fashion-MNIST */
  g_assert_cmpfloat (res.top1, >, 0.15);      /* chance is 0.1 (seen: 0.27) */
  g_assert_cmpuint (simclr_model_state_hash (m), ==, before);

  /* k = 0: the features only */
  SimclrFeatureSet only = { 0 };
  cfg.k = 0;
  g_assert_cmpint (simclr_knn_evaluate (m, train, test, &cfg, &res, &only,
          NULL, &err), ==, SIMCLR_OK);
  g_assert_true (isnan (res.top1));
  g_assert_cmpint (memcmp (only.x, xtr, sizeof (float) * NTRAIN * d), ==, 0);

  /* raw pixels: simclr_features_raw + the same kNN */
  float *rtr, *rte;
  int *rytr, *ryte, rdim;
  int64_t rntr, rnte;
  double rtop1, rtop5;
  g_assert_cmpint (simclr_features_raw (train, NTRAIN, &rtr, &rytr, &rntr,
          &rdim, &err), ==, SIMCLR_OK);
  g_assert_cmpint (simclr_features_raw (test, NTEST, &rte, &ryte, &rnte,
          &rdim, &err), ==, SIMCLR_OK);
  g_assert_cmpint (simclr_knn_classify (rtr, rytr, NTRAIN, rte, ryte, NTEST,
          rdim, 10, NTRAIN < 200 ? NTRAIN : 200, 0.1, NULL, &rtop1, &rtop5,
          &err), ==, SIMCLR_OK);
  cfg.k = SIMCLR_KNN_DEFAULT_K;
  g_assert_cmpint (simclr_knn_evaluate (NULL, train, test, &cfg, &res, NULL,
          NULL, &err), ==, SIMCLR_OK);
  g_assert_cmpint (res.dim, ==, 28 * 28);
  g_assert_cmpfloat (res.top1, ==, rtop1);
  g_assert_cmpfloat (res.top5, ==, rtop5);
  /* raw features are the pixels / 255 */
  {
    uint8_t img[28 * 28];
    int w, h, label;
    g_assert_cmpint (simclr_dataset_get (train, 7, img, sizeof img, &w, &h,
            &label, &err), ==, SIMCLR_OK);
    for (int k = 0; k < 28 * 28; k++)
      g_assert_cmpfloat (rtr[7 * 28 * 28 + k], ==, img[k] * (1.0f / 255.0f));
  }

  /* refusals */
  cfg.k = -1;
  g_assert_cmpint (simclr_knn_evaluate (m, train, test, &cfg, &res, NULL,
          NULL, &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  cfg.k = 5;
  cfg.temperature = 0;
  g_assert_cmpint (simclr_knn_evaluate (m, train, test, &cfg, &res, NULL,
          NULL, &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (simclr_knn_evaluate (m, NULL, test, &cfg, &res, NULL,
          NULL, &err), ==, SIMCLR_ERROR_INVALID_ARGUMENT);

  simclr_feature_set_clear (&ftr);
  simclr_feature_set_clear (&fte);
  simclr_feature_set_clear (&only);
  simclr_feature_set_clear (&only);     /* a cleared set: no-op */
  free (xtr);
  free (xte);
  free (ytr);
  free (yte);
  free (rtr);
  free (rte);
  free (rytr);
  free (ryte);
  g_free (xold);
  g_free (yold);
  simclr_model_free (m);
  simclr_dataset_free (train);
  simclr_dataset_free (test);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/knn-eval/against-old-sequence",
      test_against_old_sequence);
  return g_test_run ();
}
