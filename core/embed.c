/* embed.c: images to embedding rows for the applications (embed.h): resize,
 * channel conversion, batched eval-mode forwards, optional flip averaging,
 * and the raw-pixel and average-hash baselines. Not a training path: the
 * model runs with train = 0 only. */
#include "simclr/embed.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "simclr/augment.h"

#define MAX_EMBED_BATCH 4096

struct SimclrEmbedder {
  SimclrEmbedConfig cfg;
  SimclrModel *model;           /* borrowed; NULL for the baselines */
  int size, channels, dim;      /* input side and channels, row length */
  size_t image_bytes;           /* size * size * channels */
  int pending;
  uint8_t *pix;                 /* (max_batch, size, size, channels) */
  uint8_t *scratch;             /* one resized image in the source's channels */
  float *in;                    /* model input (rows, size, size, channels) */
  float *out;                   /* model output (rows, dim) */
  SimclrAugmenter *resizer;     /* identity crop: a resize */
};

void
simclr_embed_config_default (SimclrEmbedConfig *cfg)
{
  memset (cfg, 0, sizeof *cfg);
  cfg->kind = SIMCLR_EMBED_H;
  cfg->max_batch = 16;
}

static const char *const kind_names[] = { "h", "z", "raw", "ahash" };

const char *
simclr_embed_kind_to_string (SimclrEmbedKind kind)
{
  if ((int) kind < 0 || (int) kind > SIMCLR_EMBED_AHASH)
    return NULL;
  return kind_names[kind];
}

int
simclr_embed_kind_from_string (const char *s)
{
  for (int i = 0; s && i <= SIMCLR_EMBED_AHASH; i++)
    if (strcmp (s, kind_names[i]) == 0)
      return i;
  return -1;
}

void
simclr_embedder_free (SimclrEmbedder *e)
{
  if (!e)
    return;
  simclr_augmenter_free (e->resizer);
  free (e->pix);
  free (e->scratch);
  free (e->in);
  free (e->out);
  free (e);
}

SimclrEmbedder *
simclr_embedder_new (const SimclrEmbedConfig *cfg, SimclrModel *model,
    SimclrError *err)
{
  SimclrEmbedder *e;
  SimclrAugmentConfig acfg;
  const int model_kind = cfg->kind == SIMCLR_EMBED_H
      || cfg->kind == SIMCLR_EMBED_Z;
  int rows;

  if (simclr_embed_kind_to_string (cfg->kind) == NULL) {
    simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "embedder: unknown kind %d", (int) cfg->kind);
    return NULL;
  }
  if (cfg->max_batch < 1 || cfg->max_batch > MAX_EMBED_BATCH) {
    simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "embedder: max_batch %d is outside [1, %d]", cfg->max_batch,
        MAX_EMBED_BATCH);
    return NULL;
  }
  if (model_kind && !model) {
    simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "embedder: kind %s needs a model", simclr_embed_kind_to_string
        (cfg->kind));
    return NULL;
  }
  if (!model_kind && (cfg->size < 0 || cfg->size > 1024)) {
    simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "embedder: size %d is outside [1, 1024] (0: default)", cfg->size);
    return NULL;
  }
  if (cfg->kind == SIMCLR_EMBED_RAW && cfg->channels != 0
      && cfg->channels != 1 && cfg->channels != 3) {
    simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "embedder: channels %d (1 or 3 expected)", cfg->channels);
    return NULL;
  }

  e = calloc (1, sizeof *e);
  if (!e)
    goto no_memory;
  e->cfg = *cfg;
  rows = cfg->max_batch * (cfg->flip_average ? 2 : 1);
  if (model_kind) {
    const SimclrModelConfig *mcfg = simclr_model_get_config (model);
    if (rows > mcfg->max_batch) {
      simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
          "embedder: max_batch %d%s needs %d model rows but the model was "
          "created for %d", cfg->max_batch, cfg->flip_average ?
          " with flip averaging" : "", rows, mcfg->max_batch);
      simclr_embedder_free (e);
      return NULL;
    }
    e->model = model;
    e->size = mcfg->image_size;
    e->channels = mcfg->in_channels;
    e->dim = cfg->kind == SIMCLR_EMBED_H ? simclr_model_feature_dim (model)
        : simclr_model_output_dim (model);
  } else if (cfg->kind == SIMCLR_EMBED_RAW) {
    e->size = cfg->size ? cfg->size : 32;
    e->channels = cfg->channels ? cfg->channels : 3;
    e->dim = e->size * e->size * e->channels;
  } else {
    e->size = cfg->size ? cfg->size : 8;
    e->channels = 1;
    e->dim = e->size * e->size;
  }
  e->image_bytes = (size_t) e->size * e->size * e->channels;
  e->pix = malloc ((size_t) cfg->max_batch * e->image_bytes);
  e->scratch = malloc ((size_t) e->size * e->size * 3);
  if (!e->pix || !e->scratch)
    goto no_memory;
  if (model_kind) {
    e->in = malloc ((size_t) rows * e->image_bytes * sizeof (float));
    e->out = malloc ((size_t) rows * e->dim * sizeof (float));
    if (!e->in || !e->out)
      goto no_memory;
  }
  simclr_augment_config_default (&acfg);
  acfg.size = e->size;
  e->resizer = simclr_augmenter_new (&acfg, err);
  if (!e->resizer) {
    simclr_embedder_free (e);
    return NULL;
  }
  return e;

no_memory:
  simclr_embedder_free (e);
  simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY, "embedder: out of memory");
  return NULL;
}

int
simclr_embedder_dim (const SimclrEmbedder *e)
{
  return e->dim;
}

int
simclr_embedder_max_batch (const SimclrEmbedder *e)
{
  return e->cfg.max_batch;
}

int
simclr_embedder_pending (const SimclrEmbedder *e)
{
  return e->pending;
}

SimclrStatus
simclr_embedder_push (SimclrEmbedder *e, const uint8_t *src, int w, int h,
    int stride, int channels, SimclrError *err)
{
  SimclrAugmentParams p;
  uint8_t *dst;
  const size_t npix = (size_t) e->size * e->size;
  SimclrStatus s;

  if (e->pending >= e->cfg.max_batch)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "embedder: the batch of %d images is full; flush first",
        e->cfg.max_batch);
  if (!src || w < 1 || h < 1 || (channels != 1 && channels != 3)
      || stride < w * channels)
    return simclr_error_set (err, SIMCLR_ERROR_INVALID_ARGUMENT,
        "embedder: bad image (%dx%d, %d channels, stride %d)", w, h, channels,
        stride);

  /* The identity view: the whole frame, nothing else. */
  memset (&p, 0, sizeof p);
  p.crop_w = w;
  p.crop_h = h;
  p.brightness = p.contrast = p.saturation = 1.0;
  p.blur_kernel = 3;
  p.blur_sigma = 1.0;
  p.order[0] = SIMCLR_JITTER_BRIGHTNESS;
  p.order[1] = SIMCLR_JITTER_CONTRAST;
  p.order[2] = SIMCLR_JITTER_SATURATION;
  p.order[3] = SIMCLR_JITTER_HUE;
  dst = e->pix + (size_t) e->pending * e->image_bytes;
  if (channels == e->channels) {
    s = simclr_augmenter_apply (e->resizer, &p, src, w, h, stride, channels,
        dst, e->size * channels, err);
    if (s == SIMCLR_OK)
      e->pending++;
    return s;
  }

  s = simclr_augmenter_apply (e->resizer, &p, src, w, h, stride, channels,
      e->scratch, e->size * channels, err);
  if (s != SIMCLR_OK)
    return s;
  if (channels == 3) {
    /* RGB to gray, ITU-R 601 luma (as the augmentation's grayscale). */
    for (size_t i = 0; i < npix; i++) {
      const uint8_t *c = e->scratch + 3 * i;
      float y = 0.299f * c[0] + 0.587f * c[1] + 0.114f * c[2];
      dst[i] = (uint8_t) (y + 0.5f > 255.0f ? 255.0f : y + 0.5f);
    }
  } else {
    for (size_t i = 0; i < npix; i++)
      dst[3 * i] = dst[3 * i + 1] = dst[3 * i + 2] = e->scratch[i];
  }
  e->pending++;
  return SIMCLR_OK;
}

/* dst (S,S,C) float = src (S,S,C) / 255, mirrored left-right if @flip. */
static void
to_float (float *dst, const uint8_t *src, int size, int channels, int flip)
{
  for (int y = 0; y < size; y++)
    for (int x = 0; x < size; x++) {
      const uint8_t *s = src + ((size_t) y * size + (flip ? size - 1 - x : x))
          * channels;
      float *d = dst + ((size_t) y * size + x) * channels;
      for (int c = 0; c < channels; c++)
        d[c] = s[c] * (1.0f / 255.0f);
    }
}

/* out (dim) for one resized image, a baseline kind; @flip mirrors it. */
static void
baseline_row (const SimclrEmbedder *e, const uint8_t *img, int flip,
    float *out)
{
  const int s = e->size, c = e->channels;
  double mean = 0.0;
  to_float (out, img, s, c, flip);
  for (int i = 0; i < e->dim; i++)
    mean += out[i];
  mean /= e->dim;
  for (int i = 0; i < e->dim; i++) {
    if (e->cfg.kind == SIMCLR_EMBED_RAW)
      out[i] = (float) (out[i] - mean);
    else
      out[i] = out[i] > mean ? 1.0f : -1.0f;
  }
}

SimclrStatus
simclr_embedder_flush (SimclrEmbedder *e, float *out, SimclrError *err)
{
  const int k = e->pending, d = e->dim, flip = e->cfg.flip_average;
  const size_t ib = e->image_bytes;
  SimclrStatus s;

  if (k == 0)
    return SIMCLR_OK;
  e->pending = 0;
  if (!e->model) {
    float *tmp = NULL;
    if (flip && !(tmp = malloc ((size_t) d * sizeof (float))))
      return simclr_error_set (err, SIMCLR_ERROR_NO_MEMORY,
          "embedder: out of memory");
    for (int i = 0; i < k; i++) {
      float *row = out + (size_t) i * d;
      baseline_row (e, e->pix + i * ib, 0, row);
      if (flip) {
        baseline_row (e, e->pix + i * ib, 1, tmp);
        for (int j = 0; j < d; j++)
          row[j] = 0.5f * (row[j] + tmp[j]);
      }
    }
    free (tmp);
    return SIMCLR_OK;
  }

  /* Rows 0..k-1 the images, k..2k-1 their mirrors: one forward. */
  for (int i = 0; i < k; i++) {
    to_float (e->in + i * ib, e->pix + i * ib, e->size, e->channels, 0);
    if (flip)
      to_float (e->in + (k + i) * ib, e->pix + i * ib, e->size, e->channels,
          1);
  }
  s = simclr_model_forward (e->model, e->in, flip ? 2 * k : k, 0,
      e->cfg.kind == SIMCLR_EMBED_H ? e->out : NULL,
      e->cfg.kind == SIMCLR_EMBED_Z ? e->out : NULL, err);
  if (s != SIMCLR_OK)
    return s;
  for (int i = 0; i < k; i++) {
    float *row = out + (size_t) i * d;
    const float *a = e->out + (size_t) i * d;
    if (flip) {
      const float *b = e->out + (size_t) (k + i) * d;
      for (int j = 0; j < d; j++)
        row[j] = 0.5f * (a[j] + b[j]);
    } else
      memcpy (row, a, (size_t) d * sizeof (float));
  }
  return SIMCLR_OK;
}
