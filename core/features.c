/* features.c: frozen-feature extraction for linear evaluation (features.h).
 * Not a training path: the model runs in eval mode only and its state is
 * checked to be byte-identical afterwards. */
#include "simclr/features.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <time.h>

#include "simclr/linclf.h"

static uint64_t
fnv1a (uint64_t h, const void *data, size_t bytes)
{
  const unsigned char *p = data;
  for (size_t i = 0; i < bytes; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint64_t
simclr_model_state_hash (SimclrModel *m)
{
  size_t np = 0, nb = 0;
  const float *params = simclr_model_params (m, &np);
  const float *buffers = simclr_model_buffers (m, &nb);
  int64_t tracked = simclr_model_num_batches_tracked (m);
  uint64_t h = 0xcbf29ce484222325ULL;
  h = fnv1a (h, params, np * sizeof (float));
  h = fnv1a (h, buffers, nb * sizeof (float));
  return fnv1a (h, &tracked, sizeof tracked);
}

/* Validates the set against the model's input and returns the sample count. */
static SimclrStatus
check_dataset (const SimclrModelConfig *cfg, SimclrDataset *ds, int64_t limit,
    int64_t *n, SimclrError *err)
{
  int w = simclr_dataset_width (ds), h = simclr_dataset_height (ds);
  if (w != cfg->image_size || h != cfg->image_size)
    return simclr_error_set (err, SIMCLR_ERROR_MISMATCH,
        "data set images are %dx%d but the encoder takes %dx%d (set a "
        "target size for image folders)", w, h, cfg->image_size,
        cfg->image_size);
  if (simclr_dataset_channels (ds) != cfg->in_channels)
    return simclr_error_set (err, SIMCLR_ERROR_MISMATCH,
        "data set images have %d channels but the encoder takes %d",
        simclr_dataset_channels (ds), cfg->in_channels);
  *n = simclr_dataset_size (ds);
  if (limit > 0 && limit < *n)
    *n = limit;
  if (*n <= 0)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "the data set is empty");
  return SIMCLR_OK;
}

SimclrStatus
simclr_features_dim (const SimclrModel *m, SimclrFeatureKind kind, int *dim,
    SimclrError *err)
{
  const SimclrModelConfig *cfg = simclr_model_get_config (m);
  switch (kind) {
    case SIMCLR_FEATURES_REPRESENTATION:
      *dim = simclr_model_feature_dim (m);
      return SIMCLR_OK;
    case SIMCLR_FEATURES_PROJECTION:
      *dim = simclr_model_output_dim (m);
      return SIMCLR_OK;
    case SIMCLR_FEATURES_HEAD_HIDDEN:
      if (cfg->proj_layers == 0)
        return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
            "features: the encoder has no projection head, so no hidden "
            "layer to probe");
      *dim = cfg->proj_hidden > 0 ? cfg->proj_hidden
          : simclr_model_feature_dim (m);
      return SIMCLR_OK;
  }
  return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
      "features: unknown feature kind %d", (int) kind);
}

static const float *
tensor_data (SimclrModel *m, const char *name)
{
  int i = simclr_model_find_tensor (m, name);
  if (i < 0)
    return NULL;
  const SimclrTensorInfo *t = simclr_model_tensor (m, i);
  float *base = t->storage == SIMCLR_TENSOR_PARAM
      ? simclr_model_params (m, NULL) : simclr_model_buffers (m, NULL);
  return base + t->offset;
}

/* out (b, hid) = relu(BN_eval(h W0^T) ) for a v2 head, relu(h W0^T + b0)
 * for v1: the layer SimCLR v2 probes. Reads the model's tensors only. */
static SimclrStatus
head_hidden (SimclrModel *m, const float *h, int b, float *out,
    SimclrError *err)
{
  const SimclrModelConfig *cfg = simclr_model_get_config (m);
  int d = simclr_model_feature_dim (m), hid = 0;
  SimclrStatus s = simclr_features_dim (m, SIMCLR_FEATURES_HEAD_HIDDEN, &hid,
      err);
  if (s != SIMCLR_OK)
    return s;
  const float *w0 = tensor_data (m, "head.0.weight");
  if (!w0)
    return simclr_error_set (err, SIMCLR_ERROR_MISMATCH,
        "features: no head.0.weight");
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, b, hid, d, 1.0f, h,
      d, w0, d, 0.0f, out, hid);
  if (cfg->proj_layers == 2) {
    const float *b0 = tensor_data (m, "head.0.bias");
    if (!b0)
      return simclr_error_set (err, SIMCLR_ERROR_MISMATCH,
          "features: no head.0.bias");
    for (int i = 0; i < b; i++)
      for (int j = 0; j < hid; j++) {
        float v = out[(size_t) i * hid + j] + b0[j];
        out[(size_t) i * hid + j] = v > 0.0f ? v : 0.0f;
      }
    return SIMCLR_OK;
  }
  const float *gamma = tensor_data (m, "head.1.weight");
  const float *beta = tensor_data (m, "head.1.bias");
  const float *mean = tensor_data (m, "head.1.running_mean");
  const float *var = tensor_data (m, "head.1.running_var");
  if (!gamma || !beta || !mean || !var)
    return simclr_error_set (err, SIMCLR_ERROR_MISMATCH,
        "features: the v2 head has no head.1 batch norm");
  for (int j = 0; j < hid; j++) {
    float scale = gamma[j] / sqrtf (var[j] + (float) cfg->bn_eps);
    float shift = beta[j] - mean[j] * scale;
    for (int i = 0; i < b; i++) {
      float v = out[(size_t) i * hid + j] * scale + shift;
      out[(size_t) i * hid + j] = v > 0.0f ? v : 0.0f;
    }
  }
  return SIMCLR_OK;
}

SimclrStatus
simclr_features_extract (SimclrModel *m, SimclrDataset *ds, int64_t limit,
    SimclrFeatureKind kind, float **features, int **labels, int64_t *n,
    int *dim, SimclrError *err)
{
  if (!m || !ds || !features || !labels || !n || !dim)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "features: NULL argument");
  const SimclrModelConfig *cfg = simclr_model_get_config (m);
  int64_t count = 0;
  SimclrStatus s = check_dataset (cfg, ds, limit, &count, err);
  if (s != SIMCLR_OK)
    return s;
  int d = 0;
  s = simclr_features_dim (m, kind, &d, err);
  if (s != SIMCLR_OK)
    return s;
  size_t pixels = (size_t) cfg->image_size * cfg->image_size
      * cfg->in_channels;
  int batch = cfg->max_batch;
  float *out = malloc (sizeof (float) * (size_t) count * d);
  int *lab = malloc (sizeof (int) * (size_t) count);
  uint8_t *img = malloc (pixels * batch);
  SimclrFrame *frames = malloc (sizeof (SimclrFrame) * batch);
  float *rep = kind == SIMCLR_FEATURES_HEAD_HIDDEN
      ? malloc (sizeof (float) * (size_t) batch * simclr_model_feature_dim (m))
      : NULL;
  if (!out || !lab || !img || !frames
      || (kind == SIMCLR_FEATURES_HEAD_HIDDEN && !rep)) {
    s = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "features: out of memory for %lld x %d features", (long long) count,
        d);
    goto done;
  }

  uint64_t before = simclr_model_state_hash (m);
  simclr_frames_packed (frames, img, batch, cfg->image_size,
      cfg->in_channels);
  for (int64_t start = 0; start < count && s == SIMCLR_OK; start += batch) {
    int b = (int) (count - start < batch ? count - start : batch);
    for (int i = 0; i < b; i++) {
      int w, h;
      s = simclr_dataset_get (ds, start + i, img + (size_t) i * pixels,
          pixels, &w, &h, &lab[start + i], err);
      if (s != SIMCLR_OK)
        goto done;
    }
    float *dst = out + (size_t) start * d;
    /* train = 0: running statistics, no caches, no state change. */
    if (kind == SIMCLR_FEATURES_PROJECTION)
      s = simclr_model_forward_frames (m, frames, b, cfg->in_channels, 0,
          NULL, dst, err);
    else if (kind == SIMCLR_FEATURES_HEAD_HIDDEN) {
      s = simclr_model_forward_frames (m, frames, b, cfg->in_channels, 0,
          rep, NULL, err);
      if (s == SIMCLR_OK)
        s = head_hidden (m, rep, b, dst, err);
    } else
      s = simclr_model_forward_frames (m, frames, b, cfg->in_channels, 0,
          dst, NULL, err);
  }
  if (s == SIMCLR_OK && simclr_model_state_hash (m) != before)
    s = simclr_error_set (err, SIMCLR_ERROR_NUMERIC,
        "features: the encoder changed during evaluation (it must be frozen)");

done:
  free (frames);
  free (img);
  free (rep);
  if (s != SIMCLR_OK) {
    free (out);
    free (lab);
    return s;
  }
  *features = out;
  *labels = lab;
  *n = count;
  *dim = d;
  return SIMCLR_OK;
}

SimclrStatus
simclr_features_raw (SimclrDataset *ds, int64_t limit, float **features,
    int **labels, int64_t *n, int *dim, SimclrError *err)
{
  if (!ds || !features || !labels || !n || !dim)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "features: NULL argument");
  int w = simclr_dataset_width (ds), h = simclr_dataset_height (ds);
  int c = simclr_dataset_channels (ds);
  if (w <= 0 || h <= 0)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "raw features need images of one size (set a target size)");
  int64_t count = simclr_dataset_size (ds);
  if (limit > 0 && limit < count)
    count = limit;
  size_t pixels = (size_t) w * h * c;
  float *out = malloc (sizeof (float) * (size_t) count * pixels);
  int *lab = malloc (sizeof (int) * (size_t) count);
  uint8_t *img = malloc (pixels);
  SimclrStatus s = SIMCLR_OK;
  if (!out || !lab || !img) {
    s = simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
        "features: out of memory");
    goto done;
  }
  for (int64_t i = 0; i < count; i++) {
    int iw, ih;
    SimclrFrame frame = { img, w * c, w, h };
    s = simclr_dataset_get (ds, i, img, pixels, &iw, &ih, &lab[i], err);
    if (s != SIMCLR_OK)
      goto done;
    /* Raw features: the pixels as the model would take them. */
    simclr_frame_to_input (out + (size_t) i * pixels, &frame, w, h, c);
  }
done:
  free (img);
  if (s != SIMCLR_OK) {
    free (out);
    free (lab);
    return s;
  }
  *features = out;
  *labels = lab;
  *n = count;
  *dim = (int) pixels;
  return SIMCLR_OK;
}

/* ------------------------------------------------------------------------ */
/* kNN evaluation */

void
simclr_feature_set_clear (SimclrFeatureSet *fs)
{
  if (!fs)
    return;
  free (fs->x);
  free (fs->labels);
  memset (fs, 0, sizeof *fs);
}

void
simclr_knn_eval_config_default (SimclrKnnEvalConfig *cfg)
{
  memset (cfg, 0, sizeof *cfg);
  cfg->kind = SIMCLR_FEATURES_REPRESENTATION;
  cfg->k = SIMCLR_KNN_DEFAULT_K;
  cfg->temperature = SIMCLR_KNN_DEFAULT_TEMPERATURE;
}

static double
now_seconds (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static SimclrStatus
features_of (SimclrModel *m, SimclrDataset *ds, int64_t limit,
    SimclrFeatureKind kind, SimclrFeatureSet *fs, SimclrError *err)
{
  return m ? simclr_features_extract (m, ds, limit, kind, &fs->x,
      &fs->labels, &fs->n, &fs->dim, err)
      : simclr_features_raw (ds, limit, &fs->x, &fs->labels, &fs->n,
      &fs->dim, err);
}

SimclrStatus
simclr_knn_evaluate (SimclrModel *m, SimclrDataset *train,
    SimclrDataset *test, const SimclrKnnEvalConfig *cfg,
    SimclrKnnEvalResult *result, SimclrFeatureSet *train_out,
    SimclrFeatureSet *test_out, SimclrError *err)
{
  SimclrFeatureSet tr = { 0 }, te = { 0 };
  SimclrStatus s;
  double t0;

  if (!train || !test || !cfg || !result)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "kNN evaluation: NULL argument");
  if (cfg->k < 0 || !(cfg->temperature > 0))
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "kNN evaluation: k %d must be >= 0 and temperature %g > 0", cfg->k,
        cfg->temperature);
  memset (result, 0, sizeof *result);
  result->top1 = result->top5 = NAN;

  t0 = now_seconds ();
  s = features_of (m, train, cfg->train_limit, cfg->kind, &tr, err);
  if (s == SIMCLR_OK)
    s = features_of (m, test, cfg->test_limit, cfg->kind, &te, err);
  if (s == SIMCLR_OK && te.dim != tr.dim)
    s = simclr_error_set (err, SIMCLR_ERROR_MISMATCH,
        "kNN evaluation: train features of %d, test features of %d", tr.dim,
        te.dim);
  result->feature_seconds = now_seconds () - t0;
  if (s == SIMCLR_OK && cfg->k > 0) {
    /* kNN on the unstandardised features: the similarity is a cosine. */
    int k = cfg->k < tr.n ? cfg->k : (int) tr.n;
    t0 = now_seconds ();
    s = simclr_knn_classify (tr.x, tr.labels, (int) tr.n, te.x, te.labels,
        (int) te.n, tr.dim, simclr_dataset_n_classes (train), k,
        cfg->temperature, NULL, &result->top1, &result->top5, err);
    result->knn_seconds = now_seconds () - t0;
  }
  if (s != SIMCLR_OK) {
    simclr_feature_set_clear (&tr);
    simclr_feature_set_clear (&te);
    result->top1 = result->top5 = NAN;
    return s;
  }
  result->n_train = tr.n;
  result->n_test = te.n;
  result->dim = tr.dim;
  if (train_out)
    *train_out = tr;
  else
    simclr_feature_set_clear (&tr);
  if (test_out)
    *test_out = te;
  else
    simclr_feature_set_clear (&te);
  return SIMCLR_OK;
}
